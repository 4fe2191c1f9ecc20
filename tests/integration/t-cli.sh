#!/bin/bash
# The daemon shell without libvirt: options, config check, pid file rules,
# daemonizing, signals, and an unreachable libvirt that must not stop it.
. "$(dirname "$0")/../lib.sh"

D=$T_TMP
NOSOCK="qemu:///system?socket=$D/no-such-dir/libvirt-sock"
write_conf "$D/good.conf" "uri = $NOSOCK" "pid_file = $D/run/vcd.pid" \
    "socket_dir = $D/run/guests" "control_socket = $D/run/control"

# -V and usage
out=$("$VCD" -V)
check "-V prints the version" test "$out" = "virtconsoled $(sed -n 's/^AC_INIT(\[virtconsoled\], \[\([^]]*\)\].*/\1/p' "$TOP/configure.ac")"
"$VCD" -x > "$D/out" 2>&1; rc=$?
check "an unknown option exits 2" test "$rc" -eq 2
check "with a usage line" grep -q '^usage: virtconsoled' "$D/out"

# -n
out=$("$VCD" -n -f "$D/good.conf" 2>&1); rc=$?
check "-n on a good config prints 'configuration OK'" test "$rc" -eq 0 -a "$out" = "configuration OK"
out=$("$VCD" -n -f "$TOP/etc/virtconsoled.conf" 2>&1); rc=$?
check "-n accepts the shipped default config" test "$rc" -eq 0 -a "$out" = "configuration OK"
write_conf "$D/bad.conf" "# comment" "uri = qemu:///system" "" "idle_timeout = soon"
out=$("$VCD" -n -f "$D/bad.conf" 2>&1); rc=$?
check "-n on a bad value fails with exit 1 (rc $rc)" test "$rc" -eq 1
check "naming file:line ($out)" grep -q "^virtconsoled: $D/bad.conf:4: " <<< "$out"
check "as one line" test "$(printf '%s\n' "$out" | wc -l)" -eq 1
write_conf "$D/bad2.conf" "uri = qemu:///system" "no_such_key = 1"
out=$("$VCD" -n -f "$D/bad2.conf" 2>&1); rc=$?
check "-n on an unknown key fails: exit 1 (rc $rc)" test "$rc" -eq 1
check "with file:line" grep -qx "virtconsoled: $D/bad2.conf:2: unknown key 'no_such_key'" <<< "$out"
out=$("$VCD" -n -f "$D/missing.conf" 2>&1); rc=$?
check "a missing config file fails clearly: exit 1 (rc $rc) naming it ($out)" \
    test "$rc" -eq 1 -a "$out" = "virtconsoled: $D/missing.conf: No such file or directory"
"$VCD" -d -f "$D/bad.conf" -p "$D/x.pid" > "$D/out" 2>&1; rc=$?
check "the daemon refuses to start on a bad config: exit 1 (rc $rc)" test "$rc" -eq 1
check "with the file:line message" grep -q "^virtconsoled: $D/bad.conf:4: " "$D/out"
check "and does not leave a pid file" test ! -e "$D/x.pid"

# Foreground start with unreachable libvirt: stays up and retries.
start_fg "$D/good.conf" "$D/fg.log"
check "unreachable libvirt is logged" wait_log "$D/fg.log" 'hv: cannot connect uri=.*retry_ms=' 10
check "the daemon reports it started" wait_log "$D/fg.log" 'virtconsoled .* started pid=' 10
check "pid file written with the daemon's pid" test "$(cat "$D/run/vcd.pid")" = "$DPID"
sleep 2
check "still running after failed connection attempts" kill -0 "$DPID"
check "attempts are not logged every time (1 in 10)" test "$(grep -c 'cannot connect' "$D/fg.log")" -le 2

# A second instance while the first runs.
out=$("$VCD" -d -f "$D/good.conf" 2>&1); rc=$?
check "a second instance is refused: exit 1 (rc $rc)" test "$rc" -eq 1
check "with a one-line message naming the running pid ($out)" \
    grep -q "already running (pid $DPID holds the pid file $D/run/vcd.pid)" <<< "$out"
check "the first instance is untouched: alive and answering status" \
    answers_status "$DPID" "$D/run/control"
check "its pid file too" test "$(cat "$D/run/vcd.pid")" = "$DPID"

# SIGHUP with a broken file keeps the old config; SIGTERM exits 0.
cp "$D/good.conf" "$D/good.conf.orig"
echo "policy = maybe" >> "$D/good.conf"
n=$(wc -l < "$D/good.conf")
kill -HUP "$DPID"
check "a reload with errors is refused" wait_log "$D/fg.log" "config has errors, not reloading: $D/good.conf:$n: " 5
check "and the daemon keeps running and answering status" \
    answers_status "$DPID" "$D/run/control"
cp "$D/good.conf.orig" "$D/good.conf"
echo "log_level = debug" >> "$D/good.conf"
kill -HUP "$DPID"
check "a good reload is applied" wait_log "$D/fg.log" "configuration reloaded" 5
stop_daemon "$DPID"
check "SIGTERM: exit status 0" test "$RC" -eq 0
check "a shutdown line is logged" grep -q "received SIGTERM, shutting down" "$D/fg.log"
check "the pid file is removed at exit" test ! -e "$D/run/vcd.pid"

# SIGINT too.
start_fg "$D/good.conf" "$D/int.log"
wait_log "$D/int.log" 'started pid=' 10 >/dev/null
kill -INT "$DPID"; wait "$DPID"; rc=$?
check "SIGINT: exit status 0" test "$rc" -eq 0

# A stale pid file is replaced with a warning.
mkdir -p "$D/run"
echo 99999 > "$D/run/vcd.pid"
start_fg "$D/good.conf" "$D/stale.log"
check "a stale pid file is not a refusal" wait_log "$D/stale.log" 'started pid=' 10
check "it is replaced with a warning" grep -q "warn: replacing stale pid file $D/run/vcd.pid (pid 99999 no longer holds it)" "$D/stale.log"
check "and holds the new pid" test "$(cat "$D/run/vcd.pid")" = "$DPID"
stop_daemon "$DPID"

# -p overrides pid_file.
start_fg "$D/good.conf" "$D/p.log" -p "$D/other.pid"
wait_log "$D/p.log" 'started pid=' 10 >/dev/null
check "-p overrides pid_file" test "$(cat "$D/other.pid" 2>/dev/null)" = "$DPID" -a ! -e "$D/run/vcd.pid"
stop_daemon "$DPID"

# The reconnect backoff (README, virtconsoled(8)): 0.5 s doubling to 10 s.
# Each scheduled attempt is logged at debug level with its delay; the
# delays must be exactly the schedule, and the time between attempts
# must match them (the log's own timestamps).
write_conf "$D/backoff.conf" "uri = $NOSOCK" "pid_file = $D/run/b.pid" \
    "socket_dir = $D/run/bguests" "control_socket = $D/run/bcontrol" \
    "log_level = debug"
start_fg "$D/backoff.conf" "$D/backoff.log"
BPID=$DPID
check "backoff: the sixth attempt is scheduled 10 s out (15.5 s in)" \
    wait_log "$D/backoff.log" "hv: next attempt in 10000 ms" 25
out=$(/usr/bin/python3 - "$D/backoff.log" <<'PY'
import datetime, re, sys
pts = []
for line in open(sys.argv[1]):
    m = re.match(r"(\S+) .*hv: next attempt in (\d+) ms uri=", line)
    if m:
        t = datetime.datetime.strptime(m.group(1), "%Y-%m-%dT%H:%M:%S.%fZ")
        pts.append((t.timestamp(), int(m.group(2))))
delays = [d for _, d in pts][:6]
gaps = [round(b[0] - a[0], 2) for a, b in zip(pts, pts[1:])][:5]
print(" ".join(map(str, delays)), "|", " ".join(map(str, gaps)))
ok = delays == [500, 1000, 2000, 4000, 8000, 10000] and len(gaps) == 5 and all(
    d / 1000 - 0.02 <= g <= d / 1000 + 0.5 for d, g in zip(delays, gaps))
sys.exit(0 if ok else 1)
PY
); rc=$?
check "backoff: delays 500 1000 2000 4000 8000 10000 ms, each waited (scheduled | seconds between attempts: $out)" \
    test "$rc" -eq 0
check "backoff: only the first failure is logged at warn level (1 of 10)" \
    test "$(grep -c 'hv: cannot connect' "$D/backoff.log")" -eq 1
stop_daemon "$BPID"

# Daemon mode: the parent returns once the daemon is up; logs go to log_file.
write_conf "$D/daemon.conf" "uri = $NOSOCK" "pid_file = $D/run/d.pid" \
    "log_file = $D/daemon.log" "socket_dir = $D/run/dguests" \
    "control_socket = $D/run/dcontrol"
"$VCD" -f "$D/daemon.conf" > "$D/dout" 2>&1; rc=$?
check "daemon mode: the starting command exits 0" test "$rc" -eq 0
dpid=$(cat "$D/run/d.pid" 2>/dev/null)
T_PIDS="$T_PIDS $dpid"
check "the pid file names a live daemon (pid '$dpid')" alive_pid "$dpid"
check "it is detached (its own session, no terminal)" test "$(ps -o sid= -p "$dpid" | tr -d ' ')" != "$(ps -o sid= -p $$ | tr -d ' ')"
check "it logs to log_file" wait_log "$D/daemon.log" "started pid=$dpid config=" 5
# Start-up warnings also reach the terminal that started the daemon; here
# the only one is the unreachable libvirt.
check "the starting command printed only start-up warnings" \
    test -z "$(grep -v '^virtconsoled: hv: cannot connect' "$D/dout")"
check "including the unreachable libvirt" grep -q 'hv: cannot connect' "$D/dout"
out=$("$VCD" -f "$D/daemon.conf" 2>&1); rc=$?
check "daemon mode: a second instance exits 1 (rc $rc)" test "$rc" -eq 1
check "and says so on the terminal ($out)" grep -q "already running (pid $dpid holds " <<< "$out"
check "the running daemon is untouched: alive and answering status" \
    answers_status "$dpid" "$D/run/dcontrol"
mv "$D/daemon.log" "$D/daemon.log.1"
kill -USR1 "$dpid"
check "SIGUSR1 reopens log_file" wait_log "$D/daemon.log" "log file reopened" 5
kill -TERM "$dpid"
check "the daemon exits on SIGTERM" wait_gone "$dpid" 10
check "and removes its pid file" test ! -e "$D/run/d.pid"
check "logging its exit" grep -q "virtconsoled exiting" "$D/daemon.log"

done_testing
