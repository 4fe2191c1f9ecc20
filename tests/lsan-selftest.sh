#!/bin/bash
# LeakSanitizer, proved as the other detectors are: tests/lsan_selftest.c,
# built with build-asan's sanitizer flags and run with tests/lsan.supp
# (as every ASan run of the suite is), must stay silent when it frees
# everything, and must report a string libvirt allocated for it (through
# GLib) that it forgets.  (The slow unwinder gives the whole stack: the
# fast one stops inside GLib, which has no frame pointers.)  TAP out.
set -u
TOP=$(cd "$(dirname "$0")/.." && pwd)
OUT=${1:-$TOP/tests/out/lsan-selftest}
mkdir -p "$OUT"
N=0
FAILED=0
ok() { N=$((N + 1)); echo "ok $N - $*"; }
notok() { N=$((N + 1)); FAILED=$((FAILED + 1)); echo "not ok $N - $*"; }
check() {
	local d=$1; shift
	if "$@"; then ok "$d"; else notok "$d"; fi
}

# shellcheck disable=SC2046
if ! gcc -fsanitize=address,undefined -fno-sanitize-recover=undefined \
    -fno-omit-frame-pointer -g -O1 -Wall -Wextra -Werror \
    "$TOP/tests/lsan_selftest.c" $(pkg-config --cflags --libs libvirt) \
    -o "$OUT/lsan_selftest" > "$OUT/build.log" 2>&1; then
	notok "build the self-test"
	sed 's/^/# /' "$OUT/build.log" | tail -n 20
	echo "1..$N"
	exit 1
fi
ok "build the self-test (gcc -fsanitize=address,undefined, linked with libvirt)"

# The options of tests/run.sh's ASan runs.
run() {
	ASAN_OPTIONS="detect_leaks=1:halt_on_error=1:exitcode=99:fast_unwind_on_malloc=0" \
	    LSAN_OPTIONS="suppressions=$TOP/tests/lsan.supp:print_suppressions=0" \
	    "$OUT/lsan_selftest" "$1" > "$OUT/$1.log" 2>&1
}
run clean; rc=$?
check "everything freed: exit 0, no report with tests/lsan.supp (exit $rc)" \
    test "$rc" -eq 0 -a -z "$(grep -l 'LeakSanitizer' "$OUT/clean.log")"
run leak-xml; rc=$?
check "a forgotten virDomainGetXMLDesc() string is reported (exit $rc)" \
    test "$rc" -eq 99
check "as a direct leak whose stack names virDomainGetXMLDesc" \
    grep -q 'in virDomainGetXMLDesc' "$OUT/leak-xml.log"
grep -E '^(Direct|Indirect) leak|SUMMARY' "$OUT/leak-xml.log" | sed 's/^/# /'
run leak-saved-error; rc=$?
check "a forgotten virSaveLastError() copy (libvirt's close race, tests/lsan.supp) is suppressed (exit $rc)" \
    test "$rc" -eq 0 -a -z "$(grep -l 'LeakSanitizer' "$OUT/leak-saved-error.log")"
# tests/lsan.supp's one line (and valgrind.supp's one entry) hides leaks
# whose stack holds virSaveLastError: libvirt's own saved errors, as long
# as the daemon never saves one itself.
check "src/ never calls virSaveLastError() or virErrorPreserveLast() (what the suppressions name is libvirt's alone)" \
    test -z "$(grep -rlE '\b(virSaveLastError|virErrorPreserveLast)\b' "$TOP/src")"
echo "1..$N"
[ "$FAILED" -eq 0 ]
