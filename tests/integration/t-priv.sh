#!/bin/bash
# Least privilege: with `user` set, the daemon binds and reads its secrets
# as root, then becomes that user for good, and still serves consoles
# (the user reaches libvirt's socket through its group), creates guest
# sockets made later, and removes its files at exit.
. "$(dirname "$0")/../lib.sh"
need_lab

D=$T_TMP
U=vcd-test-priv
priv_user "$U"
uid=$(id -u "$U")
gid=$(id -g "$U")
G=vcd-priv-$$

# The test user's group reaches the lab's libvirt socket; restored at the
# end.
lab_open_to "$gid"
restore_lab() {
	lab_close
	virsh -c "$LAB_URI" destroy "$G" > /dev/null 2>&1
}

# As on a host: /run and /etc are traversable, the config readable.
chmod 0755 "$D"
mkdir -p "$D/run"
write_conf "$D/vcd.conf" "uri = $LAB_URI" "pid_file = $D/run/vcd.pid" \
    "socket_dir = $D/run/guests" "control_socket = $D/run/control" \
    "token_secret_file = $D/secret" "listen = 127.0.0.1:0" \
    "user = $U" "start_wait = 30"
start_fg "$D/vcd.conf" "$D/vcd.log"
check "it drops privileges" wait_log "$D/vcd.log" "dropped privileges to user=$U uid=$uid gid=$gid\$" 10
check "after binding its listener as root" grep -q "web: listening on 127.0.0.1:" "$D/vcd.log"
check "and reading its secret as root (0600, root's)" test "$(stat -c '%a %u' "$D/secret")" = "600 0"
ids=$(awk '/^Uid:|^Gid:/ {print $2, $3, $4, $5}' "/proc/$DPID/status" | tr '\n' ' ')
check "real, effective, saved and fs ids are all the user's ($ids)" \
    test "$ids" = "$uid $uid $uid $uid $gid $gid $gid $gid "
check "no supplementary root group" sh -c "! awk '/^Groups:/' /proc/$DPID/status | grep -qw 0"
check "it still reaches libvirt (connected as the user)" wait_log "$D/vcd.log" "hv: connected uri=" 20

"$LAB" create "$G" > "$D/create.log" 2>&1 || diag "$(cat "$D/create.log")"
check "a guest started later gets its socket (socket_dir is the user's)" \
    wait_log "$D/vcd.log" "usock: guest=$G socket=" 30
cat > "$D/echo.py" <<'PY'
import socket, sys, time
s = socket.socket(socket.AF_UNIX)
s.connect(sys.argv[1])
s.settimeout(0.5)
buf = b""
end = time.time() + 60
sent = False
while time.time() < end and b"hello-42" not in buf:
    if b"# " not in buf:
        s.send(b"\r")
    elif not sent:
        s.send(b"echo hello-$((6*7))\r")
        sent = True
    try:
        buf += s.recv(4096)
    except socket.timeout:
        pass
sys.exit(0 if b"hello-42" in buf else 1)
PY
check "its console echoes through the unprivileged daemon" \
    /usr/bin/python3 "$D/echo.py" "$D/run/guests/$G"
out=$("$VCD_BUILD/virtconsolectl" -f "$D/vcd.conf" status 2>&1)
check "the control socket answers root" grep -q "hypervisor: connected" <<< "$out"
kill -HUP "$DPID"
check "a reload works after the drop" wait_log "$D/vcd.log" "configuration reloaded" 10
stop_daemon "$DPID"
check "SIGTERM: exit 0" test "$RC" -eq 0
check "the pid file is removed" test ! -e "$D/run/vcd.pid"
check "the control socket is removed" test ! -e "$D/run/control"
check "the guest sockets are removed" test -z "$(ls -A "$D/run/guests")"

# A restart over the user's socket_dir works (it is the daemon's own).
start_fg "$D/vcd.conf" "$D/vcd2.log"
check "a restart accepts the socket_dir it gave the user" wait_log "$D/vcd2.log" "dropped privileges" 10
stop_daemon "$DPID"
restore_lab

write_conf "$D/bad.conf" "uri = $LAB_URI" "pid_file = $D/b.pid" \
    "socket_dir = $D/bguests" "control_socket = $D/bcontrol" "user = no-such-user-x"
"$VCD" -d -f "$D/bad.conf" > "$D/bad.log" 2>&1; rc=$?
check "an unknown user: refused at start, exit 1 ($(tail -1 "$D/bad.log"))" test "$rc" -eq 1
check "with a clear message" grep -q "user no-such-user-x: no such user" "$D/bad.log"
check "and no pid file left" test ! -e "$D/b.pid"
write_conf "$D/root.conf" "uri = $LAB_URI" "pid_file = $D/r.pid" \
    "socket_dir = $D/rguests" "control_socket = $D/rcontrol" "user = root"
"$VCD" -d -f "$D/root.conf" > "$D/root.log" 2>&1; rc=$?
check "user = root is refused: exit 1 (rc $rc)" test "$rc" -eq 1 -a -n "$(grep 'is root' "$D/root.log")"

done_testing
