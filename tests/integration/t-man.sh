#!/bin/bash
# The man pages: mandoc -T lint finds nothing, man(1) renders them, and
# they agree with the code: every configuration key of src/config.c with
# its default, range and reload behaviour, every daemon option, signal,
# notice and close code, every virtconsolectl command and option, the
# SYNOPSIS with the usage lines, and the configuration examples with the
# parser.  Needs no libvirt.
. "$(dirname "$0")/../lib.sh"

MAN=$TOP/man
SRC=$TOP/src
D=$T_TMP
DAEMON=$MAN/virtconsoled.8
CONF=$MAN/virtconsoled.conf.5
CTL=$MAN/virtconsolectl.1
PAGES="$DAEMON $CONF $CTL"

# A tool this test needs: installed with apt-get when missing (as root),
# else its checks are skipped locally and fail under CI=true.
need_tool() {
	local tool=$1 pkg=$2
	command -v "$tool" > /dev/null && return 0
	if [ "$(id -u)" = 0 ] && command -v apt-get > /dev/null; then
		diag "installing $pkg for $tool"
		{ DEBIAN_FRONTEND=noninteractive apt-get install -y -q \
		    --no-install-recommends "$pkg" ||
		    { apt-get update -q && DEBIAN_FRONTEND=noninteractive \
		    apt-get install -y -q --no-install-recommends "$pkg"; }
		} > "$D/apt-$pkg.log" 2>&1
		command -v "$tool" > /dev/null && return 0
		sed 's/^/#   /' "$D/apt-$pkg.log" | tail -n 5
	fi
	if [ "${CI:-}" = true ]; then
		fail "$tool is missing and could not be installed ($pkg)"
	else
		diag "SKIP: $tool is missing ($pkg); its checks do not run"
	fi
	return 1
}

# The source of one list entry (.It) of a page whose head matches the
# extended regex $2, up to the next .It, .El or .Sh.
entry() {
	awk -v re="$2" '
	    on && /^\.(It|El|Sh)( |$)/ { exit }
	    on { print }
	    !on && $0 ~ re { on = 1; print }' "$1"
}

# The source of section $2 of page $1.
section() {
	awk -v s=".Sh $2" '
	    on && /^\.Sh / { exit }
	    $0 == s { on = 1 }
	    on { print }' "$1"
}

# A page rendered as plain text, 80 columns.
render() {
	MANWIDTH=80 LC_ALL=C.UTF-8 man -l "$1" 2> /dev/null | col -bx
}

for p in $PAGES; do
	check "$(basename "$p") exists" test -s "$p"
done

# 1. mandoc -T lint: nothing at style level or above, except references
# to pages that are not installed here (websockify(1), libvirtd(8), ...),
# which depend on the machine, not on the page.
if need_tool mandoc mandoc; then
	for p in $PAGES; do
		out=$(mandoc -T lint -W style "$p" 2>&1 |
		    grep -v -e 'referenced manual not found' -e 'mandoc\.db')
		check "mandoc -T lint: $(basename "$p") is clean" test -z "$out"
		[ -n "$out" ] && printf '%s\n' "$out" | sed 's/^/#   /'
	done
fi

# 2. man -l renders each page, without a groff warning.
if need_tool man man-db; then
	for p in $PAGES; do
		b=$(basename "$p")
		MANWIDTH=80 man --warnings=all -l "$p" > "$D/$b.txt" 2> "$D/$b.err"
		rc=$?
		check "man -l renders $b (rc=$rc)" test "$rc" -eq 0 -a -s "$D/$b.txt"
		check "without warnings ($(head -c 200 "$D/$b.err"))" \
		    test ! -s "$D/$b.err"
		check "$b has NAME, SYNOPSIS or DESCRIPTION, SEE ALSO" \
		    sh -c "col -bx < '$D/$b.txt' | grep -q '^NAME' &&
		    col -bx < '$D/$b.txt' | grep -q '^DESCRIPTION' &&
		    col -bx < '$D/$b.txt' | grep -q '^SEE ALSO'"
	done
fi

# 3. virtconsoled.conf(5) against src/config.c.
# The key table: name, type, min, max (one entry may span two lines).
tr '\n\t' '  ' < "$SRC/config.c" |
    sed 's/config_keys\[\] = {/\n&/; s/};/\n/g' |
    sed -n '/^config_keys/p' |
    grep -o '{ *"[a-z0-9_]*", *CONFIG_[A-Z_]*, *CONFIG_OFF([a-z0-9_]*), *[^,]*, *[^,]*,' |
    sed 's/{ *"\([a-z0-9_]*\)", *CONFIG_\([A-Z_]*\), *CONFIG_OFF([a-z0-9_]*), *\([^,]*[^ ,]\) *, *\([^,]*[^ ,]\) *,/\1|\2|\3|\4/' \
    > "$D/keys"
nkeys=$(wc -l < "$D/keys")
check "src/config.c's key table read ($nkeys keys)" test "$nkeys" -ge 25

# Defaults: cfg->KEY = VALUE; in config_new().
sed -n '/^config_new(void)/,/^}/p' "$SRC/config.c" |
    sed -n 's/^[[:space:]]*cfg->\([a-z0-9_]*\) = \(.*\);.*/\1 \2/p' > "$D/defaults"

# A number of bytes as virtconsoled.conf writes sizes: 4K, 1M, 1G.
size_name() {
	local v=$1
	if [ "$v" -eq 0 ]; then echo 0
	elif [ $((v % (1 << 30))) -eq 0 ]; then echo "$((v >> 30))G"
	elif [ $((v % (1 << 20))) -eq 0 ]; then echo "$((v >> 20))M"
	elif [ $((v % (1 << 10))) -eq 0 ]; then echo "$((v >> 10))K"
	else echo "$v"; fi
}
# A C integer expression of the table (4ULL << 10, 1024 * 1024, 0x11).
c_int() {
	echo $(( $(printf '%s' "$1" | sed 's/\([0-9]\)[UL]*\b/\1/g') ))
}

while IFS='|' read -r key type min max; do
	e=$(entry "$CONF" "^\\.It Ic $key( |\$)")
	if [ -z "$e" ]; then
		fail "virtconsoled.conf(5) has an entry for $key"
		continue
	fi
	pass "virtconsoled.conf(5) has an entry for $key"
	# Flattened, without mdoc macros, for the sentences below.
	flat=$(printf '%s\n' "$e" |
	    sed 's/^\.[A-Z][a-z][a-z]* *//; s/ Ns //g; s/\\&//g' | tr '\n' ' ')
	check "$key: says what a reload does" grep -q 'Reload: ' <<< "$flat"
	# The default.
	def=$(awk -v k="$key" '$1 == k { $1 = ""; sub(/^ /, ""); print }' \
	    "$D/defaults")
	want=""
	case $type:$def in
	*:NULL) want=none ;;
	BOOL:1) want=yes ;;
	BOOL:0) want=no ;;
	LEVEL:LOG_LEVEL_*) want=$(echo "${def#LOG_LEVEL_}" | tr '[:upper:]' '[:lower:]') ;;
	POLICY:POLICY_*) want=$(echo "${def#POLICY_}" | tr '[:upper:]' '[:lower:]') ;;
	CAPTURE:CAPTURE_*) want=$(echo "${def#CAPTURE_}" | tr '[:upper:]' '[:lower:]') ;;
	STAMPS:0) want=none ;;
	STAMPS:1) want=line ;;
	ESCAPE:0x*)
		# ^ and the byte + 64: 0x11 is ^Q.
		want="^$(printf '%b' "\\x$(printf %x $(($(c_int "$def") + 64)))")" ;;
	SIZE:*) want=$(size_name "$(c_int "$def")") ;;
	SECONDS:* | COUNT:*) want=$def ;;
	*:*xstrdup*) want=$(sed -n 's/.*"\([^"]*\)".*/\1/p' <<< "$def") ;;
	esac
	case $type in
	LISTEN | ORIGINS | NAMES | HV)
		# Lists; their default is none listed.
		check "$key: default is none" grep -q 'The default is none' <<< "$flat" ;;
	*)
		if [ -z "$want" ]; then
			fail "$key: cannot read its default ($def) in config_new()"
		elif [ "$key" = escape ]; then
			check "$key: default is $want" grep -qF "The default is $want" <<< "$flat"
		else
			# Paths built from SYSCONFDIR or DATADIR: their tail.
			check "$key: default is $want" \
			    grep -qE "The default is [^ ]*$(printf '%s' "$want" |
			    sed 's/[.^$*[]/\\&/g')( |\\.|,)" <<< "$flat"
		fi ;;
	esac
	# The range.
	case $type in
	SECONDS | COUNT)
		check "$key: range $min to $max" grep -q "From $min to $max\\." <<< "$flat" ;;
	SIZE)
		lo=$(size_name "$(c_int "$min")")
		hi=$(size_name "$(c_int "$max")")
		check "$key: range $lo to $hi" grep -q "From $lo to $hi\\." <<< "$flat" ;;
	esac
done < "$D/keys"

# No entry for a key that does not exist.
grep -o '^\.It Ic [a-z0-9_]*' "$CONF" | awk '{ print $3 }' | sort -u > "$D/doc-keys"
cut -d'|' -f1 "$D/keys" | sort -u > "$D/code-keys"
extra=$(comm -23 "$D/doc-keys" "$D/code-keys" | tr '\n' ' ')
check "virtconsoled.conf(5) documents no key the parser lacks (${extra:-none})" \
    test -z "$extra"

# Parsed but not used yet: a key that no file but config.c reads must say
# so (e.g. "parsed and checked; not used yet by this version").
others=()
for f in "$SRC"/*.c; do
	[ "$(basename "$f")" = config.c ] || others+=("$f")
done
while IFS='|' read -r key _; do
	field=$key
	case $key in listen) field=listens ;; server_name) field=server_names ;;
	metrics_listen) field=metrics_listens ;;
	uri | hypervisor) field=hvs ;; esac
	if ! grep -qE "(conf|cfg)->$field\\b" "${others[@]}"; then
		check "$key is not used by the code: the page says so" \
		    grep -q 'not used yet' <<< "$(entry "$CONF" "^\\.It Ic $key( |\$)")"
	fi
done < "$D/keys"

# 4. The configuration examples pass the parser, and the error example is
# the parser's own message.
if [ -x "$VCD" ]; then
	section "$CONF" EXAMPLES |
	    awk -v d="$D" '/^\.Bd -literal/ { n++; on = 1; next }
		/^\.Ed/ { on = 0; next }
		on { gsub(/\\e/, "\\"); gsub(/\\&/, ""); print > (d "/ex" n ".conf") }'
	n=0
	for f in "$D"/ex*.conf; do
		[ -e "$f" ] || continue
		n=$((n + 1))
		out=$("$VCD" -n -f "$f" 2>&1)
		check "virtconsoled.conf(5) example $n passes virtconsoled -n ($out)" \
		    test "$out" = "configuration OK"
	done
	check "virtconsoled.conf(5) has configuration examples" test "$n" -ge 1
	# The listen lines of virtconsoled(8)'s examples.
	section "$DAEMON" EXAMPLES | grep -E '^[a-z0-9_]+ = ' > "$D/ex8.conf"
	out=$("$VCD" -n -f "$D/ex8.conf" 2>&1)
	check "virtconsoled(8)'s configuration lines pass virtconsoled -n ($out)" \
	    test -s "$D/ex8.conf" -a "$out" = "configuration OK"
	# The error shown in Errors: rebuild its file and compare.
	msg=$(awk '/^\.Ss Errors/ { s = 1 } s && /^\.Bd -literal/ { on = 1; next }
	    on && /^\.Ed/ { exit } on { sub(/^ +/, " "); printf "%s", $0 }' "$CONF")
	line=$(sed -n 's/^[^:]*:\([0-9]*\): .*/\1/p' <<< "$msg")
	key=$(sed -n "s/.*bad value for '\\([a-z0-9_]*\\)': '\\([^']*\\)'.*/\\1/p" <<< "$msg")
	val=$(sed -n "s/.*bad value for '\\([a-z0-9_]*\\)': '\\([^']*\\)'.*/\\2/p" <<< "$msg")
	if [ -n "$line" ] && [ -n "$key" ]; then
		{ for _ in $(seq 2 "$line"); do echo; done
		  echo "$key = $val"; } > "$D/err.conf"
		got=$("$VCD" -n -f "$D/err.conf" 2>&1)
		check "the error example is the parser's message ($got)" \
		    test "${got#"virtconsoled: $D/err.conf"}" = "${msg#*.conf}"
	else
		fail "virtconsoled.conf(5) shows an error message example"
	fi
else
	if [ "${CI:-}" = true ]; then
		fail "no $VCD to check the examples with"
	else
		diag "SKIP: no $VCD; the examples are not checked"
	fi
fi

# 5. virtconsoled(8) against src/virtconsoled.c.
opts=$(sed -n 's/.*getopt(argc, argv, "\([^"]*\)").*/\1/p' \
    "$SRC/virtconsoled.c" | tr -d ':+')
check "virtconsoled's getopt string read ($opts)" test -n "$opts"
for o in $(grep -o . <<< "$opts"); do
	check "virtconsoled(8) documents -$o" grep -q "^\\.It Fl $o\\b" "$DAEMON"
done
for o in $(grep -o '^\.It Fl [A-Za-z]' "$DAEMON" | awk '{ print $3 }'); do
	check "virtconsoled(8)'s -$o is an option of the code" \
	    grep -q "$o" <<< "$opts"
done
usage=$(sed -n 's/.*"usage: \(virtconsoled [^"]*\)".*/\1/p' \
    "$SRC/virtconsoled.c" | tr -d '\n')
usage="$usage$(grep -A1 '"usage: virtconsoled' "$SRC/virtconsoled.c" |
    sed -n '2s/^[[:space:]]*"\([^\\"]*\).*/\1/p')"
if command -v man > /dev/null; then
	syn=$(render "$DAEMON" | sed -n '/^SYNOPSIS/,/^[A-Z]/p' |
	    sed -n '2p' | sed 's/^ *//')
	check "virtconsoled(8)'s SYNOPSIS is the usage line ($syn)" \
	    test "$syn" = "$usage"
fi

# Signals: every one the daemon handles, and SIGPIPE, it ignores.
for s in $(grep -o 'vcd_signal_add(&v, SIG[A-Z0-9]*)' "$SRC/virtconsoled.c" |
    sed 's/.*, \(SIG[A-Z0-9]*\))/\1/') SIGPIPE; do
	check "virtconsoled(8) SIGNALS has $s" \
	    sh -c "awk '/^\\.Sh SIGNALS/,/^\\.Sh SESSION/' '$DAEMON' |
	    grep -q '^\\.It .*Dv $s\\b'"
done
check "virtconsoled.c ignores SIGPIPE" grep -q 'sigaction(SIGPIPE' "$SRC/virtconsoled.c"

# Notices: every text the session table sends, with its WebSocket close
# code; texts of sessions that end without a notice are log-only.
sed -n 's/^[[:space:]]*\[\(REASON_[A-Z_]*\)\] = { "\([^"]*\)", \(-\{0,1\}[01]\) },.*/\1|\2|\3/p' \
    "$SRC/session.c" > "$D/reasons"
sed -n 's/^[[:space:]]*\[\(REASON_[A-Z_]*\)\] = \([0-9]*\),.*/\1 \2/p' \
    "$SRC/wsock.c" > "$D/codes"
check "session.c's reasons read ($(wc -l < "$D/reasons"))" \
    test "$(wc -l < "$D/reasons")" -ge 15
while IFS='|' read -r r text kind; do
	[ "$kind" = -1 ] && [ "$r" = REASON_NONE ] && continue
	code=$(awk -v r="$r" '$1 == r { print $2 }' "$D/codes")
	if [ "$kind" = -1 ]; then
		check "virtconsoled(8) names the log-only reason \"$text\"" \
		    grep -qF "$text" "$DAEMON"
	elif grep -q "^\\.It Li $text Pq" "$DAEMON"; then
		check "notice \"$text\": close code $code" \
		    grep -q "^\\.It Li $text Pq $code\$" "$DAEMON"
	else
		# Defined but not sent: the page must say so, with its code.
		if grep -q "$r" <(grep -hv '^[[:space:]]*\[REASON_' "$SRC"/*.c); then
			fail "notice \"$text\" is sent but has no entry in virtconsoled(8)"
		else
			check "notice \"$text\" ($code) is listed as not sent" \
			    sh -c "awk '/^\\.Sh SESSION NOTICES/,/^\\.Sh FILES/' \
			    '$DAEMON' | tr '\\n' ' ' | grep -q \"$text.*not sent\" &&
			    grep -q '^($code)' '$DAEMON'"
		fi
	fi
done < "$D/reasons"

# 6. virtconsolectl(1) against src/virtconsolectl.c.
sed -n '/^static const struct ctl_command ctl_commands\[\]/,/^};/p' \
    "$SRC/virtconsolectl.c" |
    sed -n 's/^[[:space:]]*{ "\([a-z]*\)", ".*/\1/p' > "$D/cmds"
check "virtconsolectl's command table read ($(tr '\n' ' ' < "$D/cmds"))" \
    test "$(wc -l < "$D/cmds")" -ge 2
syn=$(section "$CTL" SYNOPSIS)
while read -r c; do
	check "virtconsolectl(1) documents the command $c" \
	    grep -q "^\\.It Cm $c\\b" "$CTL"
	check "virtconsolectl(1)'s SYNOPSIS has $c" \
	    grep -qE "^\\.Cm (.* )?$c( |\$)" <<< "$syn"
done < "$D/cmds"
for c in $(grep -o '^\.It Cm [a-z]*' "$CTL" | awk '{ print $3 }' | sort -u); do
	check "virtconsolectl(1)'s $c is a command of the code" \
	    grep -qx "$c" "$D/cmds"
done
copts=$(sed -n 's/.*getopt(argc, argv, "\([^"]*\)").*/\1/p' \
    "$SRC/virtconsolectl.c" | tr -d ':+' | tr -d '\n')
check "virtconsolectl's getopt strings read ($copts)" test -n "$copts"
for o in $(grep -o . <<< "$copts"); do
	check "virtconsolectl(1) documents -$o" grep -q "^\\.It Fl $o\\b" "$CTL"
done
for o in $(grep -o '"--[a-z]*"' "$SRC/virtconsolectl.c" | tr -d '"' | sort -u); do
	check "virtconsolectl(1) documents $o" grep -q "Fl -${o#--}\\b" "$CTL"
done

# 7. The pages are installed: listed in Makefile.am's man pages.
mans=$(awk '/^(dist_)?man_MANS[[:space:]]*\+?=/ { on = 1 }
    on { print; if (!/\\$/) on = 0 }' "$TOP/Makefile.am" | tr '\n' ' ')
for p in $PAGES; do
	b=$(basename "$p")
	check "Makefile.am installs man/$b" grep -q "man/$b" <<< "$mans"
done

done_testing
