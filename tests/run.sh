#!/bin/bash
# The test command (README; .ci/run calls it).  As root on Debian 12 it:
#   1. installs the build and lab packages that are missing (tests/deps.sh);
#   2. builds twice out of tree: build/ (plain) and build-asan/
#      (--enable-sanitizers), both with -Werror;
#   3. runs the unit tests of both builds (make check);
#   4. static analysis (cppcheck, clang-tidy) and the fuzz corpora;
#   5. builds the lab guest, starts the PRIVATE libvirt daemon, and runs the
#      integration tests against real QEMU guests, with the plain build,
#      a subset again with the sanitizer build and a subset under valgrind;
#   6. stops the lab and prints "N passed, N failed, N skipped" as its last
#      line.
# Every TAP line counts as one test; "ok ... # SKIP" is a skip, not a pass.
# Under CI=true a test that cannot run (a skip) is also counted as a
# failure.  Logs go to tests/out/.
set -u
TOP=$(cd "$(dirname "$0")/.." && pwd)
OUT=$TOP/tests/out
PASSED=0
FAILED=0
SKIPPED=0
LAB=$TOP/tests/lab/lab.sh
export DEBIAN_FRONTEND=noninteractive

# say, record, step, run_tap, count_trs: how results are counted.
. "$TOP/tests/count.sh"

configure_build() {
	local dir=$1; shift
	mkdir -p "$dir" &&
	    (cd "$dir" && "$TOP/configure" --enable-werror "$@" &&
	    make -j"$(nproc)")
}

rm -rf "$OUT"
mkdir -p "$OUT"
say "virtconsoled test suite, $(date -u +%Y-%m-%dT%H:%M:%SZ), CI=${CI:-}"

say "dependencies"
step deps "$TOP/tests/deps.sh"

say "build"
# Out-of-tree builds need a source tree that was not configured in place.
[ -f "$TOP/config.status" ] && make -C "$TOP" distclean > /dev/null 2>&1
(cd "$TOP" && autoreconf -fi) > "$OUT/autoreconf.log" 2>&1 ||
    { record autoreconf 0 1; cat "$OUT/autoreconf.log"; }
rm -rf "$TOP/build" "$TOP/build-asan"
step build configure_build "$TOP/build"
step build-asan configure_build "$TOP/build-asan" --enable-sanitizers

# Sanitizers: any report fails the test that triggered it.  libvirt keeps a
# few one-time global allocations for the life of the process.  The slow
# unwinder for allocation stacks: the fast one stops inside GLib (no frame
# pointers), so a leak report would name g_malloc0 and nothing of libvirt
# or of the daemon, and tests/lsan.supp could not tell libvirt's own race
# (the one line it has) from a leak of ours.
export ASAN_OPTIONS="detect_leaks=1:halt_on_error=1:abort_on_error=0:exitcode=99:fast_unwind_on_malloc=0"
export LSAN_OPTIONS="suppressions=$TOP/tests/lsan.supp:print_suppressions=0"
export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1"

say "unit tests"
make -C "$TOP/build" check > "$OUT/unit.log" 2>&1
count_trs unit "$TOP/build"
make -C "$TOP/build-asan" check > "$OUT/unit-asan.log" 2>&1
count_trs unit-asan "$TOP/build-asan"
# LeakSanitizer with tests/lsan.supp reports a libvirt allocation we leak.
run_tap lsan-selftest "$TOP/tests/lsan-selftest.sh" "$OUT/lsan-selftest"

say "static analysis"
run_tap cppcheck "$TOP/tests/cppcheck.sh"
run_tap clang-tidy env VCD_BUILD="$TOP/build" "$TOP/tests/clang-tidy.sh"

say "fuzz corpora"
run_tap fuzz-replay "$TOP/tests/fuzz/replay.sh" "$OUT/fuzz"

say "lab"
# Shell tests that need no libvirt first.
run_tap t-cli env VCD_BUILD="$TOP/build" "$TOP/tests/integration/t-cli.sh"
run_tap t-init env VCD_BUILD="$TOP/build" "$TOP/tests/integration/t-init.sh"
run_tap t-tls env VCD_BUILD="$TOP/build" "$TOP/tests/integration/t-tls.sh"
run_tap t-count "$TOP/tests/integration/t-count.sh"

LAB_OK=0
if step lab-image "$LAB" image &&
    "$LAB" start > "$OUT/lab-start.log" 2>&1; then
	eval "$(grep -E '^LAB_(DIR|URI)=' "$OUT/lab-start.log")"
	export LAB_DIR LAB_URI
	trap '"$LAB" stop > "$OUT/lab-stop.log" 2>&1' EXIT
	record lab-start 1 0
	LAB_OK=1
else
	record lab-start 0 1
	tail -n 30 "$OUT/lab-start.log" 2>/dev/null | sed 's/^/    /'
fi

say "integration tests"
if [ "$LAB_OK" = 1 ]; then
	"$LAB" xml vcd-glue > "$OUT/vcd-glue.xml"
	run_tap glue-console "$TOP/build/tests/integration/glue_console" \
	    "$LAB_URI" "$OUT/vcd-glue.xml"
	run_tap glue-console-asan \
	    "$TOP/build-asan/tests/integration/glue_console" \
	    "$LAB_URI" "$OUT/vcd-glue.xml"
	for t in "$TOP"/tests/integration/t-*.sh \
	    "$TOP"/tests/integration/t-*.py; do
		[ -e "$t" ] || continue
		n=$(basename "$t")
		n=${n%.*}
		case $n in t-cli|t-init|t-tls|t-count) continue ;; esac
		case $t in
		*.py) run_tap "$n" env VCD_BUILD="$TOP/build" \
		    /usr/bin/python3 "$t" ;;
		*) run_tap "$n" env VCD_BUILD="$TOP/build" "$t" ;;
		esac
	done
	# One integration pass of the daemon itself under ASan/UBSan.
	run_tap t-daemon-asan env VCD_BUILD="$TOP/build-asan" \
	    "$TOP/tests/integration/t-daemon.sh"
	run_tap t-cli-asan env VCD_BUILD="$TOP/build-asan" \
	    "$TOP/tests/integration/t-cli.sh"
	# Sessions and the unix front door under ASan/UBSan.
	run_tap t-websockify-asan env VCD_BUILD="$TOP/build-asan" \
	    /usr/bin/python3 "$TOP/tests/integration/t-websockify.py"
	run_tap t-sessions-asan env VCD_BUILD="$TOP/build-asan" \
	    /usr/bin/python3 "$TOP/tests/integration/t-sessions.py"
	# The control socket and virtconsolectl (history: its pages, the
	# terminal escaping, attach_replay, reloads of its limits).
	run_tap t-control-asan env VCD_BUILD="$TOP/build-asan" \
	    /usr/bin/python3 "$TOP/tests/integration/t-control.py"
	# The attach socket (request lines from local users) and capture =
	# always (consoles held with nobody attached, stolen, taken back).
	run_tap t-attach-asan env VCD_BUILD="$TOP/build-asan" \
	    /usr/bin/python3 "$TOP/tests/integration/t-attach.py"
	run_tap t-capture-asan env VCD_BUILD="$TOP/build-asan" \
	    /usr/bin/python3 "$TOP/tests/integration/t-capture.py"
	# Console logs and recordings (file creation through directory
	# descriptors, rotation, a full disk, the UTF-8 decoder on guest bytes).
	run_tap t-logs-asan env VCD_BUILD="$TOP/build-asan" \
	    /usr/bin/python3 "$TOP/tests/integration/t-logs.py"
	# Viewers beside a writer (a stalled one ended alone, kicks).
	run_tap t-viewers-asan env VCD_BUILD="$TOP/build-asan" \
	    /usr/bin/python3 "$TOP/tests/integration/t-viewers.py"
	# Several hypervisors: the opening and closing threads, a hypervisor
	# removed with its open under way, one killed under live sessions.
	run_tap t-hv-asan env VCD_BUILD="$TOP/build-asan" \
	    /usr/bin/python3 "$TOP/tests/integration/t-hv.py"
	# The web front door (HTTP, tokens, WebSocket, TLS, bad input, the
	# virtconsole.v1 subprotocol) and its authentication.
	run_tap t-web-asan env VCD_BUILD="$TOP/build-asan" \
	    /usr/bin/python3 "$TOP/tests/integration/t-web.py"
	run_tap t-webauth-asan env VCD_BUILD="$TOP/build-asan" \
	    /usr/bin/python3 "$TOP/tests/integration/t-webauth.py"
	# The metrics door (the web door's accept path, limits and Host
	# check) under hostile input, scraped by a real Prometheus.
	run_tap t-metrics-asan env VCD_BUILD="$TOP/build-asan" \
	    /usr/bin/python3 "$TOP/tests/integration/t-metrics.py"
	# Hypervisor faults and hostile input under ASan/UBSan too.
	run_tap t-faults-asan env VCD_BUILD="$TOP/build-asan" \
	    /usr/bin/python3 "$TOP/tests/integration/t-faults.py"
	run_tap t-hostile-asan env VCD_BUILD="$TOP/build-asan" \
	    /usr/bin/python3 "$TOP/tests/integration/t-hostile.py"
	# The valgrind tier: the plain daemon under memcheck (no errors, no
	# leak from src/) through a named subset of the integration tests.
	run_tap valgrind env VCD_BUILD="$TOP/build" \
	    VCD_VALGRIND_LOGS="$OUT/valgrind" "$TOP/tests/valgrind.sh"
	run_tap valgrind-sessions env VCD_BUILD="$TOP/build" \
	    VCD_VALGRIND_LOGS="$OUT/valgrind-sessions" \
	    "$TOP/tests/valgrind.sh" t-sessions.py
else
	record integration 0 1
fi

if [ "$LAB_OK" = 1 ]; then
	# QEMU's command line does not name the lab: remember its processes.
	lab_pids=$("$LAB" pids 2>/dev/null)
	"$LAB" stop > "$OUT/lab-stop.log" 2>&1
	trap - EXIT
	left=""
	for p in $lab_pids; do
		[ -d "/proc/$p" ] && [ "$(cat "/proc/$p/stat" 2>/dev/null |
		    awk '{print $3}')" != Z ] && left="$left $p"
	done
	if [ -z "$left" ]; then
		record lab-stop 1 0
	else
		record lab-stop 0 1
		echo "    lab processes left running:$left"
	fi
fi

echo "$PASSED passed, $FAILED failed, $SKIPPED skipped"
[ "$FAILED" -eq 0 ]
