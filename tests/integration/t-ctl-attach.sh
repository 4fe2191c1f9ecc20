#!/bin/bash
# virtconsolectl attach: command-line errors, then a real daemon and a real
# guest: a pipe client (stdin EOF, then output until quiet), a terminal
# client under tmux (raw mode, echo round trip, Ctrl-Q, terminal restored),
# a signal while attached, a refused second client, the local escape
# against a stopped daemon, and another escape key.
. "$(dirname "$0")/../lib.sh"
need_lab

CTL=$VCD_BUILD/virtconsolectl
D=$T_TMP
G=vcd-ctl-$$
SD=$D/guests
CONF=$D/vcd.conf
write_conf "$CONF" "uri = $LAB_URI" "pid_file = $D/vcd.pid" \
    "socket_dir = $SD" "control_socket = $D/control" "log_level = debug" \
    "idle_timeout = 0" "attach_socket = none"

# run_ctl ARGS...: run the client with stdin from /dev/null; sets RC, OUT
# (stdout) and ERR (stderr).
run_ctl() {
	"$CTL" "$@" < /dev/null > "$D/ctl.out" 2> "$D/ctl.err"
	RC=$?
	OUT=$(cat "$D/ctl.out")
	ERR=$(cat "$D/ctl.err")
}

# Command-line errors: usage on stderr, status 2.
run_ctl
check "no command: status 2" test "$RC" -eq 2
check "with a usage line on stderr" grep -q '^usage: virtconsolectl' <<< "$ERR"
check "listing attach" grep -q 'attach \[--view\] \[--replay BYTES\] GUEST \[ALIAS\]' <<< "$ERR"
check "and nothing on stdout" test -z "$OUT"
run_ctl -f "$CONF" frobnicate
check "an unknown command: status 2" test "$RC" -eq 2
check "named in the error ($(head -n1 <<< "$ERR"))" grep -q "^virtconsolectl: unknown command 'frobnicate'" <<< "$ERR"
run_ctl -f "$CONF" attach
check "attach without GUEST: status 2" test "$RC" -eq 2 -a -n "$ERR"
run_ctl -f "$CONF" attach one two
check "attach with two guests: status 2" test "$RC" -eq 2
run_ctl -x attach web1
check "an unknown option: status 2" test "$RC" -eq 2
check "named in the error" grep -q '^virtconsolectl: unknown option -x' <<< "$ERR"
run_ctl -f "$CONF" attach -q web1
check "an unknown attach option: status 2" test "$RC" -eq 2

# Guest names: the daemon's socket name rule.
for bad in .hidden 'two words' 'a/b' 'x;y' "$(printf 'esc\033[2J')"; do
	run_ctl -f "$CONF" attach "$bad"
	check "guest name '$(printf %q "$bad")' refused with status 1" \
	    test "$RC" -eq 1
	check "as an invalid name" grep -q "^virtconsolectl: invalid guest name '.*': use letters, digits and \. _ + - only" <<< "$ERR"
done
check "a terminal escape in a name is not echoed raw" \
    test "$(grep -c $'\033' "$D/ctl.err")" -eq 0
run_ctl -f "$CONF" attach "$(printf 'x%.0s' $(seq 120))"
check "a name too long for sun_path is refused ($ERR)" \
    test "$RC" -eq 1 -a -n "$(grep 'too long for a unix socket path' <<< "$ERR")"
run_ctl -f "$CONF" attach web_1.a+b-c
check "a name of every allowed character gets to connect ($ERR)" \
    test "$RC" -eq 1 -a -n "$(grep 'cannot connect' <<< "$ERR")"

# Missing socket, missing config.
run_ctl -f "$CONF" attach nosuchguest
check "no socket: status 1" test "$RC" -eq 1
check "with the path and a hint ($ERR)" test "$ERR" = "virtconsolectl: cannot connect to $SD/nosuchguest: No such file or directory (is virtconsoled running, and is the guest defined?)"
run_ctl -f "$D/missing.conf" attach web1
check "a missing -f file: status 1 ($ERR)" test "$RC" -eq 1 -a "$ERR" = "virtconsolectl: $D/missing.conf: No such file or directory"
run_ctl -f "$CONF" -s "$D/elsewhere" attach
check "-s names the socket; GUEST is optional ($ERR)" test "$RC" -eq 1 -a "$ERR" = "virtconsolectl: cannot connect to $D/elsewhere: No such file or directory (is virtconsoled running, and is the guest defined?)"

# The daemon and a guest.
start_fg "$CONF" "$D/vcd.log"
check "the daemon connects to the lab" wait_log "$D/vcd.log" "hv: connected uri=" 20
"$LAB" create "$G" > "$D/create.out" 2>&1 || diag "$(cat "$D/create.out")"
"$LAB" wait-boot "$G" > "$D/boot.out" 2>&1 || diag "$(cat "$D/boot.out")"
check "the guest has its socket" wait_log "$D/vcd.log" "usock: guest=$G socket=" 20

# Pipe mode: stdin EOF, then the output until 2 s of quiet.
start=$(date +%s%N)
printf 'echo x-$((2+3))\r' | "$CTL" -f "$CONF" attach "$G" > "$D/pipe.out" 2> "$D/pipe.err"
rc=$?
ms=$((($(date +%s%N) - start) / 1000000))
check "pipe mode: status 0 ($(cat "$D/pipe.err"))" test "$rc" -eq 0
check "the command's output came back" grep -q 'x-5' "$D/pipe.out"
check "no hint when stdin is not a terminal" test ! -s "$D/pipe.err"
check "it ended after the output went quiet (${ms} ms)" test "$ms" -ge 2000 -a "$ms" -lt 10000
check "the daemon saw the client close" wait_log "$D/vcd.log" "guest=$G dev=serial0: ended reason=\"client closed\"" 5

# A terminal: tmux gives the client a real pty.
if ! command -v tmux > /dev/null; then
	fail "tmux is not installed (tests/deps.sh)"
	done_testing
fi
TM="tmux -L vcd-ctl-$$ -f /dev/null"
tm_cleanup() { $TM kill-server 2>/dev/null; t_cleanup; }
trap tm_cleanup EXIT
$TM new-session -d -x 100 -y 30 -s t "env -i PATH=$PATH TERM=xterm PS1='$ ' bash --norc --noprofile --noediting"
PTY=$($TM display-message -p -t t '#{pane_tty}')

# wait_pane REGEX [SECONDS]: wait until the pane shows REGEX.
wait_pane() {
	local re=$1 secs=${2:-20} i=0
	while [ "$i" -lt $((secs * 10)) ]; do
		$TM capture-pane -p -t t -S -100 | grep -qE -- "$re" && return 0
		sleep 0.1
		i=$((i + 1))
	done
	diag "timed out after ${secs}s waiting for /$re/ in the pane:"
	$TM capture-pane -p -t t -S -100 | sed -e '/^$/d' -e 's/^/#   /'
	return 1
}

# tty_mode FLAG: whether stty shows FLAG set (and not -FLAG) on the pane.
tty_mode() {
	stty -a -F "$PTY" | grep -qE "(^| )$1( |\$)"
}

# attached: how many sessions attached so far.
attached() { grep -c "guest=$G dev=serial0: OPENING -> ATTACHED" "$D/vcd.log"; }

check "the pane's terminal starts cooked" tty_mode icanon
n=$(attached)
$TM send-keys -t t "$CTL -f $CONF attach $G; echo rc=\$? > $D/tty.rc; stty -a > $D/tty.stty" Enter
check "the hint names the guest and the escape key" wait_pane "^Connected to $G \(escape: \^Q\)\$" 10
check "the session attaches" wait_log "$D/vcd.log" "guest=$G dev=serial0: OPENING -> ATTACHED" 10 $((n + 1))
check "attached: the terminal is raw (-icanon)" tty_mode -icanon
check "attached: no local echo (-echo)" tty_mode -echo
check "attached: no signals from keys (-isig)" tty_mode -isig
$TM send-keys -t t -l 'echo hi-$((6*7))'
$TM send-keys -t t Enter
check "echo round trip: hi-42" wait_pane '^hi-42' 15
$TM send-keys -t t C-c
sleep 0.5
check "Ctrl-C goes to the guest, the client stays" test ! -e "$D/tty.rc"
start=$(date +%s%N)
$TM send-keys -t t C-q
check "Ctrl-Q ends the client" wait_log "$D/tty.rc" "^rc=" 10
ms=$((($(date +%s%N) - start) / 1000000))
check "with status 0 ($(cat "$D/tty.rc" 2>/dev/null))" grep -qx "rc=0" "$D/tty.rc"
check "promptly (${ms} ms)" test "$ms" -lt 2000
check "the daemon's notice is shown" wait_pane '^\[virtconsoled\] disconnected: escape key$' 5
check "the daemon logged the escape key" wait_log "$D/vcd.log" "guest=$G dev=serial0: ended reason=\"escape key\"" 5
wait_log "$D/tty.stty" "speed" 5 > /dev/null
check "the terminal is restored: icanon" grep -qE '(^| )icanon( |$)' "$D/tty.stty"
check "the terminal is restored: echo" grep -qE '(^| )echo( |$)' "$D/tty.stty"
check "the terminal is restored: isig" grep -qE '(^| )isig( |$)' "$D/tty.stty"
check "the terminal is restored: opost" grep -qE '(^| )opost( |$)' "$D/tty.stty"

# A signal while attached: the terminal is restored, then the client dies
# of that signal.
rm -f "$D/tty.rc" "$D/tty.stty"
n=$(attached)
$TM send-keys -t t "clear; $CTL -f $CONF attach $G; echo rc=\$? > $D/tty.rc; stty -a > $D/tty.stty" Enter
wait_pane "^Connected to $G" 10 > /dev/null
wait_log "$D/vcd.log" "guest=$G dev=serial0: OPENING -> ATTACHED" 10 $((n + 1)) > /dev/null
check "attached again: raw" tty_mode -icanon
pid=$(pgrep -f -n "^$CTL -f $CONF attach $G\$")
check "the client runs (pid $pid)" test -n "$pid"
[ -n "$pid" ] && kill -TERM "$pid"
check "SIGTERM ends the client" wait_log "$D/tty.rc" "^rc=" 10
check "by SIGTERM (status 143: $(cat "$D/tty.rc" 2>/dev/null))" grep -qx "rc=143" "$D/tty.rc"
wait_log "$D/tty.stty" "speed" 5 > /dev/null
check "the terminal is restored after the signal" grep -qE '(^| )icanon( |$)' "$D/tty.stty"
check "echo too" grep -qE '(^| )echo( |$)' "$D/tty.stty"
$TM kill-server 2>/dev/null

# A second client while one holds the console: refused, status 1.
n=$(attached)
mkfifo "$D/hold.in"
"$CTL" -f "$CONF" attach "$G" < "$D/hold.in" > /dev/null 2>&1 &
hold=$!
exec 7> "$D/hold.in"
check "a pipe client holds the console" wait_log "$D/vcd.log" "guest=$G dev=serial0: OPENING -> ATTACHED" 10 $((n + 1))
run_ctl -f "$CONF" attach "$G"
check "a second client is refused with status 1 ($RC)" test "$RC" -eq 1
check "it printed the daemon's notice" grep -q '^\[virtconsoled\] refused: console busy' <<< "$OUT"
check "and nothing on stderr ($ERR)" test -z "$ERR"
kill -TERM "$hold" 2>/dev/null
wait "$hold"
check "the holder dies of SIGTERM" test "$?" -eq 143
exec 7>&-
check "and its session ends" wait_log "$D/vcd.log" "guest=$G dev=serial0: ended reason=\"client closed\"" 10 2

# The local escape works when the daemon does not answer.
kill -STOP "$DPID"
start=$(date +%s%N)
printf '\021' | "$CTL" -f "$CONF" attach "$G" > "$D/stop.out" 2> "$D/stop.err"
rc=$?
ms=$((($(date +%s%N) - start) / 1000000))
kill -CONT "$DPID"
check "escape with a stopped daemon: status 0" test "$rc" -eq 0
check "after about 1 s (${ms} ms)" test "$ms" -ge 900 -a "$ms" -lt 3000
check "saying the daemon did not answer" grep -qx 'virtconsolectl: no answer from the daemon; detached' "$D/stop.err"
check "the daemon runs on" kill -0 "$DPID"

# Another escape key, from the same config file as the daemon.
sed -i '/^escape/d' "$CONF"
echo 'escape = ^]' >> "$CONF"
kill -HUP "$DPID"
check "the daemon reloads escape = ^]" wait_log "$D/vcd.log" "configuration reloaded" 10
n=$(grep -c 'ended reason="escape key"' "$D/vcd.log")
printf 'echo q-$((4+5))\r\021' | "$CTL" -f "$CONF" attach "$G" > "$D/q.out" 2>&1
rc=$?
check "^Q is an ordinary byte now: status 0" test "$rc" -eq 0
check "the command still ran" grep -q 'q-9' "$D/q.out"
check "and no escape notice" test "$(grep -c 'escape key' "$D/q.out")" -eq 0
(printf 'echo r-$((5+5))\r'; sleep 3; printf '\035') | "$CTL" -f "$CONF" attach "$G" > "$D/r.out" 2>&1
rc=$?
check "^] ends the session: status 0" test "$rc" -eq 0
check "the command ran before it" grep -q 'r-10' "$D/r.out"
check "the notice came" grep -q '^\[virtconsoled\] disconnected: escape key' "$D/r.out"
check "the daemon logged it" wait_log "$D/vcd.log" 'ended reason="escape key"' 5 $((n + 1))

stop_daemon "$DPID"
check "the daemon exits 0" test "$RC" -eq 0
virsh -c "$LAB_URI" destroy "$G" > /dev/null 2>&1
done_testing
