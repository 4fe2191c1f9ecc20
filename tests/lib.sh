# Shared helpers for the shell tests: TAP output, waiting on log lines,
# and starting the daemon.  Sourced by tests/integration/t-*.sh.
#
# Environment:
#   VCD_BUILD   build directory holding virtconsoled (default: build)
#   LAB_DIR, LAB_URI   the private lab, for tests that need libvirt
#   CI          when "true", a test that cannot run is a failure

set -u
TOP=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
VCD_BUILD=${VCD_BUILD:-$TOP/build}
case $VCD_BUILD in /*) ;; *) VCD_BUILD=$TOP/$VCD_BUILD ;; esac
VCD=$VCD_BUILD/virtconsoled
LAB=$TOP/tests/lab/lab.sh
T_N=0
T_FAILED=0
T_TMP=$(mktemp -d /tmp/vcd-test.XXXXXX)
T_PIDS=""

t_cleanup() {
	local p
	for p in $T_PIDS; do
		kill -TERM "$p" 2>/dev/null || true
	done
	sleep 0.2
	for p in $T_PIDS; do
		kill -KILL "$p" 2>/dev/null || true
	done
	rm -rf "$T_TMP"
}
trap t_cleanup EXIT

pass() { T_N=$((T_N + 1)); echo "ok $T_N - $*"; }
fail() { T_N=$((T_N + 1)); T_FAILED=$((T_FAILED + 1)); echo "not ok $T_N - $*"; }
diag() { echo "# $*"; }

# check DESCRIPTION COMMAND...: passes when the command exits 0.
check() {
	local d=$1; shift
	if "$@"; then pass "$d"; else fail "$d"; fi
}

# A test that cannot run: skipped locally, a failure under CI=true.
skip_all() {
	if [ "${CI:-}" = true ]; then
		fail "cannot run: $*"
	else
		echo "1..0 # SKIP $*"
		exit 0
	fi
	done_testing
}

# no_state_bug: one check over every daemon log this test left in T_TMP
# (lines "... virtconsoled[PID]: LEVEL: ..."), when there is any: no
# illegal state transition (fsm.c logs each one as "BUG:").
no_state_bug() {
	local logs
	logs=$(grep -rlE 'virtconsoled\[[0-9]+\]: (error|warn|info|debug): ' \
	    "$T_TMP" 2>/dev/null) || return 0
	if printf '%s\n' "$logs" | xargs -d '\n' grep -qF ': BUG: '; then
		fail "no daemon of this test logged an illegal state transition (BUG:)"
		printf '%s\n' "$logs" | xargs -d '\n' grep -hF ': BUG: ' |
		    head -n 5 | sed 's/^/#   /'
	else
		pass "no daemon of this test logged an illegal state transition (BUG:)"
	fi
}

done_testing() {
	no_state_bug
	echo "1..$T_N"
	[ "$T_FAILED" -eq 0 ] && [ "$T_N" -gt 0 ]
	exit $?
}

# asan_build: whether $VCD is an ASan (and UBSan) build, i.e. linked with
# libasan (gcc links it dynamically).
asan_build() {
	ldd "$VCD" 2>/dev/null | grep -q 'libasan'
}

# no_sanitizer_report DESCRIPTION LOG...: a check that no ASan/UBSan report
# is in the logs, counted only in an ASan build (elsewhere nothing could
# write one): else a diag line.
no_sanitizer_report() {
	local d=$1; shift
	if ! asan_build; then
		diag "$d: not counted, $VCD is not an ASan build (no libasan)"
		return 0
	fi
	if grep -qE 'ERROR: (Address|Leak)Sanitizer|runtime error:' "$@"; then
		fail "$d"
		grep -hE 'ERROR: (Address|Leak)Sanitizer|runtime error:' "$@" |
		    head -n 5 | sed 's/^/#   /'
	else
		pass "$d"
	fi
}

# is_pid VALUE: VALUE is a pid (a positive number); "kill -0 ''" or
# "kill -0 0" would otherwise pass on an empty or missing pid.
is_pid() {
	[[ ${1:-} =~ ^[1-9][0-9]*$ ]]
}

# alive_pid PID: PID is a pid and that process runs.
alive_pid() {
	is_pid "${1:-}" && kill -0 "$1" 2>/dev/null
}

# answers_status PID SOCKET: the daemon PID runs and answers
# "virtconsolectl -s SOCKET status" with its own pid: alive and serving,
# not merely not yet reaped.
answers_status() {
	local out
	alive_pid "$1" || return 1
	out=$("$VCD_BUILD/virtconsolectl" -s "$2" status 2>&1) || {
		diag "virtconsolectl status: $out"
		return 1
	}
	grep -qE "^virtconsoled [^ ]+, pid $1, up [0-9]+ s$" <<< "$out" || {
		diag "virtconsolectl status: $out"
		return 1
	}
}

# priv_user NAME: the unprivileged user the privilege tests drop to, made
# if missing (a system user without home or shell).
priv_user() {
	id "$1" > /dev/null 2>&1 ||
	    useradd -r -M -s /usr/sbin/nologin "$1" ||
	    skip_all "cannot create user $1"
}

# lab_open_to GID: the lab's libvirt socket is root's (0770): let GID in,
# as a libvirt group would on a real host.  lab_close puts it back.
lab_open_to() {
	LAB_MODE=$(stat -c %a "$LAB_DIR")
	LAB_SOCK_MODE=$(stat -c %a "$LAB_DIR/sock")
	chmod o+x "$LAB_DIR" "$LAB_DIR/sock"
	chgrp "$1" "$LAB_DIR/sock/libvirt-sock"
}

lab_close() {
	chgrp 0 "$LAB_DIR/sock/libvirt-sock" 2>/dev/null
	chmod "$LAB_MODE" "$LAB_DIR"
	chmod "$LAB_SOCK_MODE" "$LAB_DIR/sock"
}

need_lab() {
	if [ -z "${LAB_URI:-}" ] || [ -z "${LAB_DIR:-}" ]; then
		skip_all "no lab (LAB_URI and LAB_DIR are not set)"
	fi
}

# wait_log FILE REGEX [SECONDS [COUNT]]: wait until REGEX matches at least
# COUNT lines (default 1) of FILE.
wait_log() {
	local file=$1 re=$2 secs=${3:-20} count=${4:-1} i=0
	while [ "$i" -lt $((secs * 10)) ]; do
		if [ -f "$file" ] &&
		    [ "$(grep -cE -- "$re" "$file")" -ge "$count" ]; then
			return 0
		fi
		sleep 0.1
		i=$((i + 1))
	done
	diag "timed out after ${secs}s waiting for /$re/ x$count in $file"
	tail -n 15 "$file" 2>/dev/null | sed 's/^/#   /'
	return 1
}

# wait_gone PID [SECONDS]: wait for a process to exit.
wait_gone() {
	local pid=$1 secs=${2:-10} i=0
	while kill -0 "$pid" 2>/dev/null; do
		[ "$i" -ge $((secs * 10)) ] && return 1
		sleep 0.1
		i=$((i + 1))
	done
	return 0
}

# write_conf FILE LINE...: a config file; state_dir defaults to a
# directory beside it (never the host's /var/lib/virtconsoled), and capture
# to attached, said explicitly (two test daemons on one lab never fight
# over a console).
write_conf() {
	local f=$1 l sd=1 cap=1; shift
	printf '%s\n' "$@" > "$f"
	for l in "$@"; do
		case $l in
		state_dir*) sd=0 ;;
		capture*) cap=0 ;;
		esac
	done
	[ $sd -eq 0 ] || printf 'state_dir = %s/state\n' "$(dirname "$f")" >> "$f"
	[ $cap -eq 0 ] || printf 'capture = attached\n' >> "$f"
}

# start_fg CONF LOG [ARGS...]: run the daemon in the foreground (-d) in the
# background of this shell; sets DPID.
start_fg() {
	local conf=$1 log=$2; shift 2
	"$VCD" -d -f "$conf" "$@" > "$log" 2>&1 &
	DPID=$!
	T_PIDS="$T_PIDS $DPID"
}

# stop_daemon PID: SIGTERM a daemon started by start_fg and wait for it;
# sets RC to its exit status.
stop_daemon() {
	kill -TERM "$1" 2>/dev/null
	wait "$1"
	RC=$?
}
