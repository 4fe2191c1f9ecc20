#!/bin/bash
# The daemon against the lab's real libvirt daemon: it connects, gets
# lifecycle events, survives libvirtd being killed and restarted (reconnects
# and gets events again), reloads on SIGHUP, and exits 0 on SIGTERM after
# draining libvirt's deferred free callbacks.
. "$(dirname "$0")/../lib.sh"
need_lab

D=$T_TMP
G=vcd-daemon-$$
write_conf "$D/vcd.conf" "uri = $LAB_URI" "pid_file = $D/vcd.pid" \
    "socket_dir = $D/guests" "control_socket = $D/control" \
    "log_level = debug"
START_WAIT=20
if [ -n "${VCD_WRAPPER:-}" ]; then
	# Under a tool (tests/valgrind.sh): VCD_WRAPPER is a command prefix,
	# and starting takes up to 10 times longer (as in vcdtest.Daemon).
	read -r -a wrap <<< "$VCD_WRAPPER"
	"${wrap[@]}" "$VCD" -d -f "$D/vcd.conf" > "$D/vcd.log" 2>&1 &
	DPID=$!
	T_PIDS="$T_PIDS $DPID"
	START_WAIT=200
else
	start_fg "$D/vcd.conf" "$D/vcd.log"
fi
check "connects to the lab's libvirt" wait_log "$D/vcd.log" "hv: connected uri=" "$START_WAIT"
check "libvirt's keepalive is accepted with the glue" test "$(grep -c 'keepalive not available' "$D/vcd.log")" -eq 0

"$LAB" create "$G" > "$D/create.out" 2>&1 || { diag "$(cat "$D/create.out")"; }
check "STARTED event for a new guest" wait_log "$D/vcd.log" "guest event guest=$G uuid=.* event=STARTED" 30

"$LAB" libvirtd-kill > "$D/kill.out" 2>&1
check "libvirtd killed: connection loss is noticed" wait_log "$D/vcd.log" "hv: connection lost uri=.* reason=" 30
sleep 1
check "the daemon is still running without libvirt" kill -0 "$DPID"
"$LAB" libvirtd-start > "$D/start.out" 2>&1 || diag "$(cat "$D/start.out")"
check "it reconnects once libvirtd is back" wait_log "$D/vcd.log" "hv: connected uri=" 30 2
virsh -c "$LAB_URI" destroy "$G" > /dev/null 2>&1
check "and gets lifecycle events again (STOPPED)" wait_log "$D/vcd.log" "guest event guest=$G uuid=.* event=STOPPED" 30
"$LAB" create "$G" > /dev/null 2>&1
check "STARTED again on the new connection" wait_log "$D/vcd.log" "guest event guest=$G uuid=.* event=STARTED" 30 2

# Reload: a broken file is refused, a good one applied; the connection stays.
cp "$D/vcd.conf" "$D/vcd.conf.good"
echo "max_buffer = lots" >> "$D/vcd.conf"
n=$(wc -l < "$D/vcd.conf")
kill -HUP "$DPID"
check "SIGHUP with errors: old config kept" wait_log "$D/vcd.log" "config has errors, not reloading: $D/vcd.conf:$n: bad value for 'max_buffer'" 10
cp "$D/vcd.conf.good" "$D/vcd.conf"
kill -HUP "$DPID"
check "SIGHUP: configuration reloaded" wait_log "$D/vcd.log" "configuration reloaded" 10
check "a reload with the same uri keeps the connection" test "$(grep -c 'hv: connected uri=' "$D/vcd.log")" -eq 2
virsh -c "$LAB_URI" destroy "$G" > /dev/null 2>&1
check "events still arrive after the reload" wait_log "$D/vcd.log" "guest event guest=$G uuid=.* event=STOPPED" 30 2

# A reload that changes uri reconnects; back again, it reconnects again.
cp "$D/vcd.conf" "$D/vcd.conf.lab"
sed -i "s|^uri = .*|uri = qemu:///system?socket=$D/no-such-socket|" "$D/vcd.conf"
kill -HUP "$DPID"
check "a changed uri: the daemon reconnects to it" wait_log "$D/vcd.log" "hv: uri changed from .* to .*no-such-socket, reconnecting" 10
check "and reports the new one unreachable" wait_log "$D/vcd.log" "hv: cannot connect uri=.*no-such-socket" 10
cp "$D/vcd.conf.lab" "$D/vcd.conf"
kill -HUP "$DPID"
check "changed back: connected to the lab again" wait_log "$D/vcd.log" "hv: connected uri=" 20 3

# SIGTERM: libvirt's handles and timers are removed and their deferred
# free callbacks drained before exit.
stop_daemon "$DPID"
check "SIGTERM: exit status 0" test "$RC" -eq 0
check "libvirt removed its handles at shutdown" grep -q "evglue: remove handle" "$D/vcd.log"
check "no free callback left pending" test "$(grep -c 'free callbacks pending' "$D/vcd.log")" -eq 0
no_sanitizer_report "no ASan/UBSan report" "$D/vcd.log"
check "the pid file is removed" test ! -e "$D/vcd.pid"

done_testing
