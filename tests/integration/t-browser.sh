#!/bin/bash
# The page in a real browser (issue 4): Debian's chromium, driven by
# playwright-core from the build's web-npm/node_modules (browser.mjs), never
# a downloaded browser.  A daemon with a token listener and a lab guest;
# open /?token=T (from `virtconsolectl token --all`), pick the guest's
# serial0 console, type `echo hi-$((6*7))`, see hi-42; reload (the cookie
# keeps the session) and attach again, the Reconnect button, the escape
# key, no CSP complaints; the screenshot goes to tests/out/browser.png.
# Then (issue web-auth, items 8 and 10): without the cookie the page says
# why a console cannot be opened; Sign out (token T4) revokes the session;
# a page on another site (localhost) offering token T2 to an image, a
# frame and a script spends nothing, and its link (T3) signs the person in.
# And (issue history, the page): text a unix-socket client printed before
# the page opened is replayed, its ESC[6n is not answered (bytes_in=0),
# the unknown-gap marker shows, Download history saves the bytes; a TCP
# proxy cuts the page's WebSocket while the guest prints numbered lines,
# the page reconnects by itself and holds every line once.  And (issue
# viewers, the page): a second page watches the console (mode=view): it
# shows the writer's output and role/viewer counts, sends nothing when
# typed into (the guest never runs it; the daemon logs bytes_in=0 and
# bytes_ignored=0 for it) and says so once.
. "$(dirname "$0")/../lib.sh"
need_lab

CTL=$VCD_BUILD/virtconsolectl
NODE_MODULES=$VCD_BUILD/web-npm/node_modules
CHROMIUM=${CHROMIUM:-/usr/bin/chromium}
D=$T_TMP
G=vcd-br-$$
CONF=$D/vcd.conf
OUT_DIR=$TOP/tests/out
SHOT=$OUT_DIR/browser.png
NODE_PGID=""

cleanup() {
	# The node process group: node, and chromium if it is left behind.
	local i=0
	if [ -n "$NODE_PGID" ]; then
		# playwright closes the browser on SIGTERM; give it 3 s.
		kill -TERM -- "-$NODE_PGID" 2>/dev/null
		while kill -0 -- "-$NODE_PGID" 2>/dev/null && [ "$i" -lt 30 ]; do
			sleep 0.1
			i=$((i + 1))
		done
		kill -KILL -- "-$NODE_PGID" 2>/dev/null
		wait "$NODE_PGID" 2>/dev/null
	fi
	if [ -n "${LAB_URI:-}" ]; then
		# When a test run by hand beside this one restarts the lab's
		# libvirtd, wait (up to 10 s) rather than leave the guest behind;
		# no check depends on it.
		i=0
		while ! virsh -q -c "$LAB_URI" domstate "$G" > "$D/virsh.err" 2>&1 &&
		    grep -q 'failed to connect' "$D/virsh.err" && [ "$i" -lt 50 ]; do
			sleep 0.2
			i=$((i + 1))
		done
		virsh -q -c "$LAB_URI" destroy "$G" > /dev/null 2>&1
		virsh -q -c "$LAB_URI" undefine "$G" > /dev/null 2>&1
	fi
	t_cleanup
}
trap cleanup EXIT
trap 'echo "# killed by a signal, cleaning up"; exit 143' TERM INT HUP

[ -x "$VCD" ] || skip_all "no daemon binary at $VCD"
if [ ! -x "$CHROMIUM" ] && [ "$(id -u)" = 0 ]; then
	# Debian's package only; never a browser download.
	export DEBIAN_FRONTEND=noninteractive
	apt-get install -y -q --no-install-recommends chromium > "$D/apt.log" 2>&1 ||
	    { apt-get update -q > /dev/null 2>&1 &&
	      apt-get install -y -q --no-install-recommends chromium >> "$D/apt.log" 2>&1; }
	diag "apt-get install chromium: status $?"
fi
[ -x "$CHROMIUM" ] || skip_all "no $CHROMIUM (Debian's chromium package)"
command -v node > /dev/null || skip_all "no node"
[ -d "$NODE_MODULES/playwright-core" ] ||
    skip_all "no playwright-core in $NODE_MODULES (the build installs it with npm ci)"
[ -f "$VCD_BUILD/webroot/index.html" ] || skip_all "no web_root at $VCD_BUILD/webroot"

T0=$EPOCHREALTIME
r=$("$LAB" create "$G" 2>&1)
rc=$?
check "lab guest $G created" test "$rc" -eq 0
# Without the guest every browser check would only time out.
[ "$rc" -eq 0 ] || { diag "$r"; done_testing; }

write_conf "$CONF" "uri = $LAB_URI" "pid_file = $D/vcd.pid" \
    "socket_dir = $D/sock" "control_socket = $D/control" \
    "listen = 127.0.0.1:0" "token_secret_file = $D/secret" \
    "web_root = $VCD_BUILD/webroot" "start_wait = 20" "idle_timeout = 0"
start_fg "$CONF" "$D/vcd.log"
check "the daemon starts" wait_log "$D/vcd.log" 'virtconsoled .* started pid=' 20
PORT=$(sed -n 's/.*web: listening on 127\.0\.0\.1:\([0-9][0-9]*\)$/\1/p' "$D/vcd.log" | tail -n 1)
check "it listens on 127.0.0.1:${PORT:-?}" test -n "$PORT"
TOKEN=$("$CTL" -f "$CONF" token --all 2> "$D/token.err")
rc=$?
check "virtconsolectl token --all prints one token line" \
    test "$rc" -eq 0 -a -n "$TOKEN" -a "$(printf '%s\n' "$TOKEN" | wc -l)" -eq 1
[ "$rc" -eq 0 ] || sed 's/^/# /' "$D/token.err"
# More single-use tokens: T2 (offered cross-site, then opened), T3 (the
# cross-site link), T4 (signed in, then signed out).  They are used late
# in the run: 300 s to live rather than token_ttl's 60, so that a slow run
# shows its real failure, not "token expired".
TOKEN2=$("$CTL" -f "$CONF" token --all --ttl 300 2>> "$D/token.err")
TOKEN3=$("$CTL" -f "$CONF" token --all --ttl 300 2>> "$D/token.err")
TOKEN4=$("$CTL" -f "$CONF" token --all --ttl 300 2>> "$D/token.err")
n=0
for t in "$TOKEN2" "$TOKEN3" "$TOKEN4"; do
	[ -n "$t" ] && [ "$(printf '%s\n' "$t" | wc -l)" -eq 1 ] && n=$((n + 1))
done
check "three more tokens, one line each (T2 T3 T4)" test "$n" -eq 3 \
    -a "$(printf '%s\n' "$TOKEN" "$TOKEN2" "$TOKEN3" "$TOKEN4" | sort -u | wc -l)" -eq 4
[ "$n" -eq 3 ] || sed 's/^/# /' "$D/token.err"
[ -n "$PORT" ] && [ -n "$TOKEN" ] && [ "$n" -eq 3 ] || done_testing

mkdir -p "$OUT_DIR" "$D/profile"
rm -f "$SHOT"
# setsid: node and the browser it starts form one group, ended at cleanup.
VCD_BUILD=$VCD_BUILD VCD_URL="http://127.0.0.1:$PORT/" VCD_TOKEN=$TOKEN \
    VCD_TOKEN2=$TOKEN2 VCD_TOKEN3=$TOKEN3 VCD_TOKEN4=$TOKEN4 VCD_LOG=$D/vcd.log \
    VCD_CONF=$CONF VCD_PID=$DPID VCD_GUEST=$G VCD_SOCK_DIR=$D/sock VCD_PROFILE=$D/profile VCD_SHOT=$SHOT CHROMIUM=$CHROMIUM \
    setsid node "$TOP/tests/integration/browser.mjs" > "$D/browser.out" 2>&1 &
NODE_PID=$!
NODE_PGID=$NODE_PID
# Bounded: the browser part normally takes 30-60 s (minutes on a loaded machine).
i=0
while kill -0 "$NODE_PID" 2>/dev/null && [ "$i" -lt 4200 ]; do
	sleep 0.1
	i=$((i + 1))
done
if kill -0 "$NODE_PID" 2>/dev/null; then
	fail "browser.mjs finished within 420 s"
	kill -TERM -- "-$NODE_PGID" 2>/dev/null
fi
wait "$NODE_PID"
NODE_RC=$?
NODE_PGID=""

# browser.mjs says "ok - ..." / "not ok - ..."; number them here.
seen=0
while IFS= read -r line; do
	case $line in
	"ok - "*) pass "${line#ok - }"; seen=$((seen + 1)) ;;
	"not ok - "*) fail "${line#not ok - }"; seen=$((seen + 1)) ;;
	"#"*) echo "$line" ;;
	*) echo "# $line" ;;
	esac
done < "$D/browser.out"
check "browser.mjs ran its checks and exited 0 (status $NODE_RC, $seen checks)" \
    test "$NODE_RC" -eq 0 -a "$seen" -gt 0
check "the screenshot is a PNG ($SHOT)" \
    test "$(head -c 8 "$SHOT" 2>/dev/null | od -An -tx1 | tr -d ' \n')" = 89504e470d0a1a0a

LOGIN_RE='web: peer=127\.0\.0\.1:[0-9]+ login token=[0-9a-f]{32} session=[0-9a-f]{32}$'
n=$(grep -cE "$LOGIN_RE" "$D/vcd.log")
check "the daemon logged four logins, T T2 T3 T4 (token and session ids only): $n" \
    test "$n" -eq 4
check "four distinct token ids and session ids among them" test \
    "$(grep -E "$LOGIN_RE" "$D/vcd.log" | sed 's/.* login token=\([0-9a-f]*\) .*/\1/' | sort -u | wc -l)" -eq 4 -a \
    "$(grep -E "$LOGIN_RE" "$D/vcd.log" | sed 's/.* session=//' | sort -u | wc -l)" -eq 4
# Sign out: the session revoked is T4's, the second login (T, T4, T2, T3).
OUT_SID=$(sed -n 's/.* web: peer=127\.0\.0\.1:[0-9]* logout session=\([0-9a-f]\{32\}\)$/\1/p' "$D/vcd.log")
check "the daemon logged one logout session=<id> (${OUT_SID:-none})" \
    test -n "$OUT_SID" -a "$(printf '%s\n' "$OUT_SID" | wc -l)" -eq 1
check "and it is the session T4's login made (the second login)" test "${OUT_SID:-x}" = \
    "$(grep -E "$LOGIN_RE" "$D/vcd.log" | sed -n '2s/.* session=//p')"
check "the cross-site image/frame/script were refused as not a page" \
    grep -qF 'a token link must be opened as a page' "$D/vcd.log"
check "two or more sessions of $G ended (reload, Reconnect, escape key)" \
    test "$(grep -cE "guest=$G dev=serial0: ended reason=" "$D/vcd.log")" -ge 2
n=0
for t in "$TOKEN" "$TOKEN2" "$TOKEN3" "$TOKEN4"; do
	n=$((n + $(grep -cF -- "$t" "$D/vcd.log")))
done
check "no token (T T2 T3 T4) ever reached the log" test "$n" -eq 0
check "nor any query string" test "$(grep -c '?token' "$D/vcd.log")" -eq 0
kill -0 "$DPID" 2>/dev/null
check "the daemon is still up" test $? -eq 0
stop_daemon "$DPID"
check "and exits 0 on SIGTERM (status $RC)" test "$RC" -eq 0
if [ "$T_FAILED" -gt 0 ]; then
	diag "daemon log (last 30 lines):"
	tail -n 30 "$D/vcd.log" | sed 's/^/#   /'
fi
diag "runtime $(awk -v a="$T0" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.1f", b - a }') s"
done_testing
