#!/bin/bash
# The page in a real browser (issue 4): Debian's chromium, driven by
# playwright-core from the build's web-npm/node_modules (browser.mjs), never
# a downloaded browser.  A daemon with a token listener and a lab guest;
# open /?token=T (from `virtconsolectl token --all`), pick the guest's
# serial0 console, type `echo hi-$((6*7))`, see hi-42; reload (the cookie
# keeps the session) and attach again, the Reconnect button, the escape
# key, no CSP complaints; the screenshot goes to tests/out/browser.png.
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
[ "$rc" -eq 0 ] || diag "$r"

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
[ -n "$PORT" ] && [ -n "$TOKEN" ] || done_testing

mkdir -p "$OUT_DIR" "$D/profile"
rm -f "$SHOT"
# setsid: node and the browser it starts form one group, ended at cleanup.
VCD_BUILD=$VCD_BUILD VCD_URL="http://127.0.0.1:$PORT/" VCD_TOKEN=$TOKEN \
    VCD_GUEST=$G VCD_PROFILE=$D/profile VCD_SHOT=$SHOT CHROMIUM=$CHROMIUM \
    setsid node "$TOP/tests/integration/browser.mjs" > "$D/browser.out" 2>&1 &
NODE_PID=$!
NODE_PGID=$NODE_PID
# Bounded: the browser part normally takes 10-20 s.
i=0
while kill -0 "$NODE_PID" 2>/dev/null && [ "$i" -lt 1500 ]; do
	sleep 0.1
	i=$((i + 1))
done
if kill -0 "$NODE_PID" 2>/dev/null; then
	fail "browser.mjs finished within 150 s"
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

check "the daemon logged the login (token id only)" \
    grep -qE "web: peer=127\.0\.0\.1:[0-9]+ login token=[0-9a-f]{32}$" "$D/vcd.log"
check "two or more sessions of $G ended (reload, Reconnect, escape key)" \
    test "$(grep -cE "guest=$G dev=serial0: ended reason=" "$D/vcd.log")" -ge 2
check "the token never reached the log" test "$(grep -cF -- "$TOKEN" "$D/vcd.log")" -eq 0
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
