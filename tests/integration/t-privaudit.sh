#!/bin/bash
# Least privilege, the file side: once a run has handed its runtime
# directories to `user`, that user can rename, replace and symlink
# anything inside them, so root must never reach into them by path on
# the next start (a swap between two path-based calls is a race to root).
# A race cannot be won on demand in a test, so this one audits the system
# calls instead: over a root start with `user` set, a restart over the
# user's directories with stale sockets to remove, a guest socket made and
# removed, a reload and an exit, strace shows no chown, lchown, chmod or
# unlink at all, and every fchownat, fchmodat and unlinkat works relative
# to a directory descriptor, never AT_FDCWD.
. "$(dirname "$0")/../lib.sh"
need_lab
command -v strace > /dev/null || skip_all "no strace (tests/deps.sh installs it)"

D=$T_TMP
U=vcd-test-priv
priv_user "$U"
gid=$(id -g "$U")
G=vcd-audit-$$

# As in t-priv.sh: the test user's group reaches the lab's libvirt socket.
lab_open_to "$gid"
restore_lab() {
	lab_close
	virsh -c "$LAB_URI" destroy "$G" > /dev/null 2>&1
}

chmod 0755 "$D"
mkdir -p "$D/run"
write_conf "$D/vcd.conf" "uri = $LAB_URI" "pid_file = $D/run/vcd.pid" \
    "socket_dir = $D/run/guests" "control_socket = $D/run/control" \
    "token_secret_file = $D/secret" "listen = 127.0.0.1:0" \
    "user = $U" "socket_group = $gid" "start_wait = 30"

# A first run hands the directories to the user and dies without cleaning
# up: its control socket and pid file stay behind.
start_fg "$D/vcd.conf" "$D/vcd1.log"
check "a first run drops privileges" wait_log "$D/vcd1.log" "dropped privileges to user=$U" 10
kill -KILL "$DPID"
wait "$DPID" 2> /dev/null
check "and leaves its directories to the user after kill -9" \
    test "$(stat -c %u "$D/run/guests")" = "$(id -u "$U")" -a -S "$D/run/control"
# A guest socket of a crashed run, as the user could have left it.
/usr/bin/python3 -c 'import socket, sys; socket.socket(socket.AF_UNIX).bind(sys.argv[1])' \
    "$D/run/guests/ts-stale"
chown "$U" "$D/run/guests/ts-stale"

strace -f -qq -o "$D/trace" \
    -e trace=chown,lchown,chmod,fchownat,fchmodat,unlink,unlinkat \
    "$VCD" -d -f "$D/vcd.conf" > "$D/vcd2.log" 2>&1 &
SPID=$!
T_PIDS="$T_PIDS $SPID"
check "a restart under strace drops privileges" wait_log "$D/vcd2.log" "dropped privileges to user=$U" 20
check "and removes the stale guest socket" \
    grep -q "usock: removed stale socket $D/run/guests/ts-stale" "$D/vcd2.log"
DPID=$(cat "$D/run/vcd.pid")
T_PIDS="$T_PIDS $DPID"
check "it reaches libvirt" wait_log "$D/vcd2.log" "hv: connected uri=" 20
"$LAB" create "$G" > "$D/create.log" 2>&1 || diag "$(cat "$D/create.log")"
check "a guest started later gets its socket" \
    wait_log "$D/vcd2.log" "usock: guest=$G socket=" 30
check "in socket_group" test "$(stat -c %g "$D/run/guests/$G")" = "$gid"
kill -HUP "$DPID"
check "a reload works" wait_log "$D/vcd2.log" "configuration reloaded" 10
virsh -c "$LAB_URI" destroy "$G" > /dev/null 2>&1
check "the guest's socket goes with the guest" \
    wait_log "$D/vcd2.log" "usock: guest=$G socket .* closed" 30
kill -TERM "$DPID"
wait "$SPID"
RC=$?
check "SIGTERM: exit 0" test "$RC" -eq 0
check "the pid file, control socket and guest sockets are removed" \
    test ! -e "$D/run/vcd.pid" -a ! -e "$D/run/control" -a -z "$(ls -A "$D/run/guests")"
restore_lab

bad=$(grep -E '^[0-9]+ +(chown|lchown|chmod|unlink)\(' "$D/trace")
check "no chown, lchown, chmod or unlink by path" test -z "$bad"
[ -z "$bad" ] || sed 's/^/#   /' <<< "$bad"
bad=$(grep -E '^[0-9]+ +(fchownat|fchmodat|unlinkat)\(AT_FDCWD' "$D/trace")
check "no fchownat, fchmodat or unlinkat relative to AT_FDCWD" test -z "$bad"
[ -z "$bad" ] || sed 's/^/#   /' <<< "$bad"
n=$(grep -cE '^[0-9]+ +unlinkat\([0-9]+,' "$D/trace")
check "unlinkat on a directory descriptor removed the stale files ($n calls)" \
    test "$n" -ge 3
diag "the audited calls:"
sed 's/^/#   /' "$D/trace"

# The directory of the control socket is checked like socket_dir, but may
# be a shared one such as /run.
# refused NAME LABEL MESSAGE: control_socket = $D/NAME/control is refused.
refused() {
	local n=$1 label=$2 msg=$3 rc
	write_conf "$D/$n.conf" "uri = $LAB_URI" "pid_file = $D/$n.pid" \
	    "socket_dir = $D/$n-guests" "control_socket = $D/$n/control"
	# A daemon that wrongly starts is stopped after 10 s (status 124).
	timeout 10 "$VCD" -d -f "$D/$n.conf" > "$D/$n.log" 2>&1
	rc=$?
	check "control_socket in $label: refused ($(tail -1 "$D/$n.log"))" \
	    test "$rc" -ne 0 -a "$rc" -ne 124
	check "with a message naming it" grep -qF -- "$msg" "$D/$n.log"
	check "and never bound there" sh -c "! grep -q 'control: listening' '$D/$n.log' && test ! -e '$D/$n/control'"
}
mkdir -m 1777 "$D/ww"
refused ww "a world-writable directory" \
    "the directory of control_socket $D/ww/control is world-writable"
mkdir "$D/real"
ln -s real "$D/link"
refused link "a symlinked directory" \
    "the directory of control_socket $D/link/control: it is a symbolic link"
mkdir "$D/nob"
chown nobody "$D/nob"
refused nob "a directory of another user" \
    "the directory of control_socket $D/nob/control is owned by uid $(id -u nobody), not by root or the daemon"

done_testing
