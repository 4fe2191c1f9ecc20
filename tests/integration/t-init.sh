#!/bin/bash
# Init integration without a lab: the LSB init script run for real (start,
# status, reload, restart, stop and their LSB exit codes), and the sd_notify
# messages the daemon sends to a fake $NOTIFY_SOCKET, as systemd would
# receive them.  libvirt is a socket that does not exist.
. "$(dirname "$0")/../lib.sh"

D=$T_TMP
NOSOCK="qemu:///system?socket=$D/no-such-dir/libvirt-sock"
PY=/usr/bin/python3
CTL=$VCD_BUILD/virtconsolectl
# Run under a service manager, this shell may have one of its own.
unset NOTIFY_SOCKET CONFIG PIDFILE VCD_NO_SSD

# The script as make installs it, pointing at this build and at a private
# sysconfdir and /etc/default.
mkdir -p "$D/etc/virtconsoled" "$D/default"
INIT=$D/virtconsoled.init
sed -e "s|@sbindir@|$VCD_BUILD|g" -e "s|@sysconfdir@|$D/etc|g" \
    -e "s|/etc/default/|$D/default/|g" \
    "$TOP/init/virtconsoled.init.in" > "$INIT"
chmod +x "$INIT"
CONF=$D/etc/virtconsoled/virtconsoled.conf
PIDF=$D/run/vcd.pid
LOG=$D/vcd.log
write_conf "$CONF" "uri = $NOSOCK" "pid_file = $PIDF  # from the config" \
    "log_file = $LOG" "socket_dir = $D/run/guests" \
    "control_socket = $D/run/control"

# initcmd ARGS...: run the init script with /bin/sh, as init would; its
# output in OUT, its exit status in RC.
OUT=
initcmd() {
	OUT=$(/bin/sh "$INIT" "$@" 2>&1)
	RC=$?
	diag "$* -> $RC: $(printf '%s' "$OUT" | tr '\n' '|')"
}

check "the script is valid sh" /bin/sh -n "$INIT"
check "it has an LSB header" grep -q '^### BEGIN INIT INFO' "$INIT"
check "no placeholder is left" test -z "$(grep -n '@[a-z]*@' "$INIT")"

# Not running.
initcmd status
check "status when not running: exit 3" test "$RC" -eq 3
check "and says so" grep -q "virtconsoled is not running" <<< "$OUT"
initcmd stop
check "stop when not running: exit 0" test "$RC" -eq 0
initcmd reload
check "reload when not running: exit 7" test "$RC" -eq 7
initcmd bogus
check "an unknown command: exit 2 with a usage line" \
    test "$RC" -eq 2 -a -n "$(grep usage: <<< "$OUT")"

# start
initcmd start
check "start: exit 0" test "$RC" -eq 0
pid=$(cat "$PIDF" 2>/dev/null)
T_PIDS="$T_PIDS $pid"
check "the pid file (the config's pid_file) names a live daemon (pid '$pid')" \
    alive_pid "$pid"
check "it is the daemon" test "$(readlink "/proc/$pid/exe")" = "$VCD"
check "detached: not a child of this shell" \
    test "$(ps -o ppid= -p "$pid" | tr -d ' ')" != $$
check "it logs to log_file" wait_log "$LOG" "started pid=$pid config=" 5
initcmd status
check "status when running: exit 0" test "$RC" -eq 0
check "naming the pid" grep -q "virtconsoled is running (pid $pid)" <<< "$OUT"

# start again: LSB wants 0, and the daemon is not even asked.
before=$(grep -c 'already running' "$LOG")
initcmd start
check "start when running: exit 0" test "$RC" -eq 0
check "reports 'virtconsoled is already running'" \
    grep -q "^virtconsoled is already running (pid $pid)" <<< "$OUT"
check "without starting a second daemon" \
    test "$(grep -c 'already running' "$LOG")" -eq "$before"
check "the first daemon is untouched" test "$(cat "$PIDF")" = "$pid"

# The daemon itself still refuses a second instance.
out=$("$VCD" -f "$CONF" 2>&1); rc=$?
check "the daemon itself refuses a second instance: exit 1 (rc $rc)" test "$rc" -eq 1
check "with 'already running' ($out)" \
    grep -q "already running (pid $pid holds the pid file $PIDF)" <<< "$out"
check "the first daemon still runs and answers status" \
    answers_status "$pid" "$D/run/control"

# reload
initcmd reload
check "reload: exit 0" test "$RC" -eq 0
check "the daemon reloaded its configuration" \
    wait_log "$LOG" "configuration reloaded" 5 1
initcmd force-reload
check "force-reload: exit 0" test "$RC" -eq 0
check "the daemon reloaded again" \
    wait_log "$LOG" "configuration reloaded" 5 2
check "same process" test "$(cat "$PIDF")" = "$pid"

# A reload with a broken file: the error shows here, no signal is sent.
cp "$CONF" "$CONF.good"
echo "policy = maybe" >> "$CONF"
bad=$(wc -l < "$CONF")	# its line: write_conf may have added state_dir
n=$(grep -c "reloading configuration" "$LOG")
initcmd reload
check "reload with a broken config: exit 1" test "$RC" -eq 1
check "showing FILE:LINE" grep -q "$CONF:$bad: " <<< "$OUT"
sleep 0.5
check "and not signalling the daemon" \
    test "$(grep -c "reloading configuration" "$LOG")" -eq "$n"
check "which keeps running and answers status" \
    answers_status "$pid" "$D/run/control"
cp "$CONF.good" "$CONF"

# restart
initcmd restart
check "restart: exit 0" test "$RC" -eq 0
new=$(cat "$PIDF" 2>/dev/null)
T_PIDS="$T_PIDS $new"
check "a new daemon ($pid -> $new)" \
    eval 'is_pid "$new" && test "$new" != "$pid"'
check "the old one is gone" wait_gone "$pid" 5
check "the new one runs" alive_pid "$new"
check "the old one exited cleanly" grep -q "received SIGTERM" "$LOG"
pid=$new
initcmd try-restart
new=$(cat "$PIDF" 2>/dev/null)
T_PIDS="$T_PIDS $new"
check "try-restart when running: exit 0 and a new daemon" \
    eval 'test "$RC" -eq 0 && is_pid "$new" && test "$new" != "$pid"'
pid=$new

# The logrotate snippet, run for real against this daemon's log_file.
if command -v logrotate > /dev/null; then
	sed -e "s|/var/log/virtconsoled.log|$LOG|" \
	    -e "s|/run/virtconsoled/virtconsoled.pid|$PIDF|" \
	    "$TOP/init/virtconsoled.logrotate" > "$D/logrotate.conf"
	logrotate -f -s "$D/logrotate.state" "$D/logrotate.conf" \
	    > "$D/logrotate.out" 2>&1
	check "logrotate runs the snippet" test $? -eq 0
	check "it rotated log_file" test -s "$LOG.1"
	check "the daemon reopened a new log_file" \
	    wait_log "$LOG" "log file reopened" 5
	check "with the old file's mode" \
	    test "$(stat -c %a "$LOG")" = "$(stat -c %a "$LOG.1")"
	check "still the same daemon" test "$(cat "$PIDF")" = "$pid"
elif [ "${CI:-}" = true ]; then
	fail "logrotate is not installed: the snippet is not tested"
else
	diag "logrotate is not installed: the snippet is not tested"
fi

# stop
initcmd stop
check "stop: exit 0" test "$RC" -eq 0
# wait_gone: an orphan lingers as a zombie until init reaps it.
check "the daemon is gone" wait_gone "$pid" 10
check "its pid file too" test ! -e "$PIDF"
check "it logged its exit" grep -q "virtconsoled exiting" "$LOG"
initcmd status
check "status after stop: exit 3" test "$RC" -eq 3
initcmd stop
check "stop again: exit 0" test "$RC" -eq 0
check "saying it is not running" grep -q "virtconsoled is not running" <<< "$OUT"
initcmd try-restart
check "try-restart when stopped: exit 0, nothing started" \
    test "$RC" -eq 0 -a ! -e "$PIDF"

# A daemon killed hard leaves its pid file: LSB status 1, and start works.
initcmd start
pid=$(cat "$PIDF" 2>/dev/null)
T_PIDS="$T_PIDS $pid"
kill -KILL "$pid"
wait_gone "$pid" 5
initcmd status
check "status of a killed daemon with its pid file left: exit 1" \
    test "$RC" -eq 1
initcmd start
new=$(cat "$PIDF" 2>/dev/null)
T_PIDS="$T_PIDS $new"
check "start after that: exit 0, a new daemon" \
    test "$RC" -eq 0 -a "$new" != "$pid" -a -n "$new"
check "which replaced the stale pid file" \
    grep -q "replacing stale pid file $PIDF" "$LOG"
initcmd stop
check "stop: exit 0" test "$RC" -eq 0

# A start that fails reports it.
echo "policy = maybe" >> "$CONF"
bad=$(wc -l < "$CONF")	# its line: write_conf may have added state_dir
initcmd start
check "start with a broken config: exit 1" test "$RC" -eq 1
check "with the daemon's own error" grep -q "$CONF:$bad: " <<< "$OUT"
cp "$CONF.good" "$CONF"

# CONFIG and PIDFILE from the environment, and from /etc/default.
write_conf "$D/other.conf" "uri = $NOSOCK" "log_file = $D/other.log" \
    "socket_dir = $D/run/oguests" "control_socket = $D/run/ocontrol"
export CONFIG=$D/other.conf PIDFILE=$D/run/other.pid
initcmd start
opid=$(cat "$PIDFILE" 2>/dev/null)
T_PIDS="$T_PIDS $opid"
check "CONFIG and PIDFILE from the environment: start, pid file there" \
    test "$RC" -eq 0 -a -n "$opid"
check "the daemon uses that config" \
    wait_log "$D/other.log" "started pid=$opid config=$D/other.conf" 5
initcmd status
check "status finds it" test "$RC" -eq 0
initcmd stop
check "stop: exit 0, pid file gone" test "$RC" -eq 0 -a ! -e "$PIDFILE"
unset CONFIG PIDFILE
printf 'CONFIG=%s\nDAEMON_ARGS="-p %s"\nPIDFILE=%s\n' "$D/other.conf" \
    "$D/run/dflt.pid" "$D/run/dflt.pid" > "$D/default/virtconsoled"
initcmd start
check "CONFIG, PIDFILE and DAEMON_ARGS from /etc/default: start" \
    test "$RC" -eq 0 -a -s "$D/run/dflt.pid"
T_PIDS="$T_PIDS $(cat "$D/run/dflt.pid" 2>/dev/null)"
initcmd status
check "status finds it" test "$RC" -eq 0
initcmd stop
check "stop: exit 0" test "$RC" -eq 0 -a ! -e "$D/run/dflt.pid"
rm -f "$D/default/virtconsoled"

# Without start-stop-daemon.
export VCD_NO_SSD=1
initcmd start
pid=$(cat "$PIDF" 2>/dev/null)
T_PIDS="$T_PIDS $pid"
check "without start-stop-daemon: start (pid '$pid')" eval 'test "$RC" -eq 0 && alive_pid "$pid"'
initcmd start
check "start again: 'already running', exit 0" \
    test "$RC" -eq 0 -a -n "$(grep 'already running' <<< "$OUT")"
initcmd status
check "status: 0" test "$RC" -eq 0
n=$(grep -c "configuration reloaded" "$LOG")
initcmd reload
check "reload: 0" test "$RC" -eq 0
check "and reloaded" wait_log "$LOG" "configuration reloaded" 5 $((n + 1))
initcmd stop
check "stop: 0, the daemon and its pid file gone" \
    test "$RC" -eq 0 -a ! -e "$PIDF"
check "the daemon is gone" wait_gone "$pid" 10
initcmd status
check "status: 3" test "$RC" -eq 3
unset VCD_NO_SSD

# ---- the systemd unit, through `systemd-analyze verify` ----
# systemd is not running here (not PID 1): verify loads the unit into an
# offline manager and reports unknown sections and keys, values it cannot
# parse, required units that do not exist, an ExecStart= command that is
# not executable, and Documentation= man pages that man cannot find.
#
# It checks commands as they would run, so it verifies a copy filled in as
# make fills the unit in, but naming this build's daemon ($VCD_BUILD) and a
# private sysconfdir: the installed paths need not exist on a test machine.
# The copy keeps the name virtconsoled.service (verify takes the unit's name
# from the file) in a directory of its own (verify prefers the units found
# beside its arguments).  Its man pages are the project's own (man/), in a
# private MANPATH.
#
# What counts:
#  - every line of a plain (recursive) run that names virtconsoled: every
#    message about this unit does ("FILE:LINE: ..." for keys and values,
#    "virtconsoled.service: ..." for commands, required units, man pages);
#  - the exit status of a run with --recursive-errors=no, non-zero on a
#    warning about this unit only (a plain run exits 0 on a misspelt key or
#    a bad value, and non-zero on a fault in another unit);
#  - ExecReload= commands, which verify does not look at: each must be
#    executable.
# Any other line is about another unit verify loaded on the way
# (network.target, libvirtd.service, the default dependencies: they come
# from the host, may be missing or be written for another systemd version);
# it is shown, not counted.  The check is itself checked: broken copies of
# the unit must be flagged.
UD=$D/systemd
UNIT=$UD/virtconsoled.service
mkdir -p "$UD" "$D/man/man1" "$D/man/man5" "$D/man/man8"
sed -e "s|@sbindir@|$VCD_BUILD|g" -e "s|@sysconfdir@|$D/etc|g" \
    "$TOP/init/virtconsoled.service.in" > "$UNIT"
for m in "$TOP"/man/*.[158]; do
	ln -sf "$m" "$D/man/man${m##*.}/"
done

# unit_verify FILE: VRC, the exit status of verify --recursive-errors=no;
# VOWN, the lines about virtconsoled of a plain verify and the Exec*=
# commands that are not executable; VNOISE, the plain run's other lines.
unit_verify() {
	local out man=--man=no c
	command -v man > /dev/null && man=--man=yes
	MANPATH=$D/man SYSTEMD_COLORS=0 systemd-analyze verify "$man" \
	    --recursive-errors=no "$1" > /dev/null 2>&1
	VRC=$?
	out=$(MANPATH=$D/man SYSTEMD_COLORS=0 systemd-analyze verify "$man" \
	    "$1" 2>&1)
	VOWN=$(grep -F virtconsoled <<< "$out")
	VNOISE=$(grep -vF virtconsoled <<< "$out")
	# Exec*=[-@:+!]PATH ...: the command's path.
	while read -r c; do
		[ -x "$c" ] || VOWN="${VOWN:+$VOWN
}$1: command $c is not executable"
	done < <(sed -n 's/^Exec[A-Za-z]*=[-@:+!]*\([^[:space:]]*\).*/\1/p' "$1")
}

# unit_fails DESCRIPTION SED-EXPRESSION: the check flags a broken copy.
unit_fails() {
	mkdir -p "$D/broken"
	sed -e "$2" "$UNIT" > "$D/broken/virtconsoled.service"
	if cmp -s "$UNIT" "$D/broken/virtconsoled.service"; then
		fail "the check flags $1 (the edit '$2' changed nothing)"
		return
	fi
	unit_verify "$D/broken/virtconsoled.service"
	if [ "$VRC" -ne 0 ] || [ -n "$VOWN" ]; then
		pass "the check flags $1 (exit $VRC: $(paste -sd'|' <<< "$VOWN"))"
	else
		fail "the check flags $1 (exit 0, nothing about the unit)"
	fi
}

if command -v systemd-analyze > /dev/null; then
	check "the unit has StateDirectory=virtconsoled" \
	    grep -qx 'StateDirectory=virtconsoled' "$UNIT"
	check "mode 0700" grep -qx 'StateDirectoryMode=0700' "$UNIT"
	command -v man > /dev/null ||
	    diag "no man command: Documentation= is not checked"
	unit_verify "$UNIT"
	if [ -n "$VNOISE" ]; then
		diag "verify, about other units (not counted):"
		printf '%s\n' "$VNOISE" | sed 's/^/#   /'
	fi
	[ -n "$VOWN" ] && printf '%s\n' "$VOWN" | sed 's/^/#   /'
	check "systemd-analyze verify: no warning or error about the unit" \
	    test "$VRC" -eq 0 -a -z "$VOWN"
	# The check itself: it must catch a broken unit.
	unit_fails "a misspelt key" 's/^ProtectSystem=/ProtectSytem=/'
	unit_fails "a bad value" \
	    's/^StateDirectoryMode=0700/StateDirectoryMode=0999/'
	unit_fails "a misspelt section" 's/^\[Install\]/[Instal]/'
	unit_fails "a required unit that does not exist" \
	    's/^After=/Requires=no-such-unit.service\nAfter=/'
	unit_fails "an ExecStart= command that is not there" \
	    "s|^ExecStart=$VCD_BUILD/|ExecStart=$D/nowhere/|"
	unit_fails "an ExecReload= command that is not there" \
	    's|^ExecReload=/bin/kill |ExecReload=/bin/kil |'
elif [ "${CI:-}" = true ]; then
	fail "systemd-analyze is not installed: the unit is not verified"
else
	diag "systemd-analyze is not installed: the unit is not verified"
fi

# ---- sd_notify, end to end, against a fake $NOTIFY_SOCKET ----
if [ ! -x "$PY" ]; then
	fail "cannot test sd_notify: no $PY"
	done_testing
fi

# notify_listen ADDRESS FILE: receive datagrams at ADDRESS (a path, or
# @name), one line per message in FILE, newlines as spaces.
notify_listen() {
	"$PY" -u -c '
import socket, sys
addr = sys.argv[1]
if addr.startswith("@"):
    addr = "\0" + addr[1:]
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.bind(addr)
out = open(sys.argv[2], "w", buffering=1)
out.write("#listening\n")
while True:
    out.write(s.recv(4096).decode().replace("\n", " ") + "\n")
' "$1" "$2" &
	T_PIDS="$T_PIDS $!"
	wait_log "$2" '^#listening' 5 > /dev/null
}

write_conf "$D/n.conf" "uri = $NOSOCK" "pid_file = $D/run/n.pid" \
    "socket_dir = $D/run/nguests" "control_socket = $D/run/ncontrol" \
    "listen = 127.0.0.1:0"
NS=$D/notify
N=$D/notify.out
notify_listen "$NS" "$N"
NOTIFY_SOCKET=$NS "$VCD" -d -f "$D/n.conf" > "$D/n.log" 2>&1 &
DPID=$!
T_PIDS="$T_PIDS $DPID"
check "READY=1 with MAINPID after start" \
    wait_log "$N" "^READY=1 MAINPID=$DPID( |$)" 10
check "after the listeners are up" grep -q "started pid=$DPID config=" "$D/n.log"
check "READY=1 carries a STATUS" grep -q "^READY=1 MAINPID=$DPID STATUS=." "$N"
check "one message so far" test "$(grep -vc '^#' "$N")" -eq 1

kill -HUP "$DPID"
check "SIGHUP: RELOADING=1 with MONOTONIC_USEC" \
    wait_log "$N" '^RELOADING=1 MONOTONIC_USEC=[0-9]+( |$)' 5
check "then READY=1 again" wait_log "$N" "^READY=1 MAINPID=$DPID( |$)" 5 2
check "in that order" test "$(grep -v '^#' "$N" | cut -d' ' -f1 | tr '\n' ,)" \
    = "READY=1,RELOADING=1,READY=1,"
check "after the reload is done" grep -q "configuration reloaded" "$D/n.log"
u1=$(sed -n 's/^RELOADING=1 MONOTONIC_USEC=\([0-9]*\).*/\1/p' "$N")
up=$(cut -d. -f1 /proc/uptime)
check "MONOTONIC_USEC is the monotonic clock (${u1}us, uptime ${up}s)" \
    test "${u1:-0}" -gt 0 -a "$(( ${u1:-0} / 1000000 ))" -le "$up"

# A reload with errors still ends the reload: systemd must not wait.
cp "$D/n.conf" "$D/n.conf.good"
echo "policy = maybe" >> "$D/n.conf"
kill -HUP "$DPID"
check "a reload with errors: RELOADING=1" \
    wait_log "$N" '^RELOADING=1 ' 5 2
check "and READY=1 all the same" wait_log "$N" "^READY=1 MAINPID=$DPID" 5 3
cp "$D/n.conf.good" "$D/n.conf"
if [ -x "$CTL" ]; then
	"$CTL" -f "$D/n.conf" reload > /dev/null 2>&1
	check "virtconsolectl reload: RELOADING=1" \
	    wait_log "$N" '^RELOADING=1 ' 5 3
	check "and READY=1" wait_log "$N" "^READY=1 MAINPID=$DPID" 5 4
fi

kill -TERM "$DPID"
check "SIGTERM: STOPPING=1" wait_log "$N" '^STOPPING=1( |$)' 5
wait "$DPID"; rc=$?
check "the daemon exits 0" test "$rc" -eq 0
check "nothing after STOPPING=1" \
    test "$(grep -v '^#' "$N" | tail -n 1 | cut -d' ' -f1)" = STOPPING=1

# Detached: MAINPID names the daemon, not the command that started it.
: > "$N.2"
notify_listen "$D/notify2" "$N.2"
NOTIFY_SOCKET=$D/notify2 "$VCD" -f "$D/n.conf" > /dev/null 2>&1; rc=$?
dpid=$(cat "$D/run/n.pid" 2>/dev/null)
T_PIDS="$T_PIDS $dpid"
check "detached with NOTIFY_SOCKET: starts (pid '$dpid')" eval 'test "$rc" -eq 0 && is_pid "$dpid"'
check "READY=1 with MAINPID of the detached daemon ($dpid)" \
    wait_log "$N.2" "^READY=1 MAINPID=$dpid " 5
kill -TERM "$dpid"
check "STOPPING=1" wait_log "$N.2" '^STOPPING=1' 5
wait_gone "$dpid" 10

# The abstract namespace.
AB=@vcd-t-init-$$
notify_listen "$AB" "$N.3"
NOTIFY_SOCKET=$AB "$VCD" -d -f "$D/n.conf" > "$D/n3.log" 2>&1 &
DPID=$!
T_PIDS="$T_PIDS $DPID"
check "abstract NOTIFY_SOCKET=$AB: READY=1" \
    wait_log "$N.3" "^READY=1 MAINPID=$DPID " 10
kill -TERM "$DPID"
check "STOPPING=1" wait_log "$N.3" '^STOPPING=1' 5
wait "$DPID"

# Without NOTIFY_SOCKET nothing is sent, and nothing breaks.
: > "$N.4"
notify_listen "$D/notify4" "$N.4"
env -u NOTIFY_SOCKET "$VCD" -d -f "$D/n.conf" > "$D/n4.log" 2>&1 &
DPID=$!
T_PIDS="$T_PIDS $DPID"
wait_log "$D/n4.log" "started pid=$DPID config=" 10 > /dev/null
kill -HUP "$DPID"
wait_log "$D/n4.log" "configuration reloaded" 5 > /dev/null
stop_daemon "$DPID"
check "without NOTIFY_SOCKET: runs, reloads and exits 0" test "$RC" -eq 0
check "sending nothing" test "$(grep -vc '^#' "$N.4")" -eq 0

done_testing
