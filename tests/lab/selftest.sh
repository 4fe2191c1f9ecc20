#!/bin/bash
# selftest.sh: proves the lab works on this machine, end to end, and prints
# the timings. Needs root; installs what is missing (lab.sh deps).
#   tests/lab/selftest.sh [--no-deps]
set -eu

LAB=$(cd "$(dirname "$0")" && pwd)/lab.sh
unset LAB_DIR LAB_URI
labs=

now() { date +%s.%N; }
since() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.2f", b - a }'; }
step() { echo "selftest: $*" >&2; }
fail() { echo "selftest: FAIL: $*" >&2; exit 1; }

cleanup() {
    local d
    for d in $labs; do "$LAB" stop "$d" >/dev/null 2>&1 || true; done
}
trap cleanup EXIT

# qemu_of DIR: pids of the QEMU processes of the lab in DIR.
qemu_of() { LAB_DIR=$1 "$LAB" pids 2>/dev/null | while read -r p; do
    [ "$(cat "/proc/$p/comm" 2>/dev/null)" = qemu-system-x86 ] && echo "$p"; done; }

[ "${1:-}" = --no-deps ] || "$LAB" deps
"$LAB" image

t=$(now)
eval "$("$LAB" start)"
labs="$labs $LAB_DIR"
step "lab A up in $(since "$t") s: $LAB_DIR"

t=$(now)
"$LAB" create g1 --consoles 2
virsh -q -c "$LAB_URI" list --name | grep -qx g1 || fail "g1 not listed as running"
"$LAB" wait-boot g1 60 >&2 || fail "no shell on g1's serial console"
step "g1: create to shell prompt on ttyS0 in $(since "$t") s"
for dev in console1 console2; do
    "$LAB" probe g1 --dev "$dev" >&2 || fail "no shell on g1 $dev"
done
out=$("$LAB" probe g1 --dev console2 --run tty)
[ "$out" = /dev/hvc1 ] || fail "console2 should be the guest's /dev/hvc1, got '$out'"

# A second lab at the same time, with a guest of the same name.
dir_a=$LAB_DIR
t=$(now)
dir_b=$(LAB_DIR='' "$LAB" start | sed -n "s/^LAB_DIR='\(.*\)'$/\1/p")
labs="$labs $dir_b"
step "lab B up in $(since "$t") s: $dir_b"
LAB_DIR=$dir_b "$LAB" create g1
LAB_DIR=$dir_b "$LAB" wait-boot g1 60 >&2 || fail "no shell on lab B's g1"
qb=$(qemu_of "$dir_b")
[ -n "$qb" ] || fail "lab B has no QEMU"
"$LAB" stop "$dir_b"
for p in $qb; do [ ! -d "/proc/$p" ] || fail "lab B's QEMU $p survived its stop"; done
[ ! -e "$dir_b" ] || fail "$dir_b still exists"
"$LAB" probe g1 --dev console1 >&2 || fail "lab A's g1 died with lab B"

# libvirtd killed and restarted under the same tini: the guest lives on.
qa=$(qemu_of "$dir_a")
"$LAB" libvirtd-kill
if virsh -q -c "$LAB_URI" list >/dev/null 2>&1; then fail "libvirtd still answers"; fi
for p in $qa; do [ -d "/proc/$p" ] || fail "QEMU $p died with libvirtd"; done
t=$(now)
"$LAB" libvirtd-start
step "libvirtd back in $(since "$t") s"
virsh -q -c "$LAB_URI" list --name | grep -qx g1 || fail "g1 not listed after the restart"
"$LAB" probe g1 --dev console1 >&2 || fail "no shell on console1 after the restart"
"$LAB" probe g1 >&2 || fail "no shell on the serial console after the restart"

"$LAB" define g2 --consoles 1
virsh -q -c "$LAB_URI" list --all --name --persistent | grep -qx g2 || fail "g2 not defined"

t=$(now)
"$LAB" stop
step "lab A stopped in $(since "$t") s"
"$LAB" stop >/dev/null 2>&1 || fail "a second stop fails"
[ ! -e "$dir_a" ] || fail "$dir_a still exists"
for p in $qa; do [ ! -d "/proc/$p" ] || fail "lab A's QEMU $p survived its stop"; done
if pgrep -a qemu-system >&2; then
    step "warning: QEMU processes above belong to other labs or other users"
fi
labs=
step "PASS"
