#!/bin/bash
# How tests/run.sh counts (tests/count.sh), fed planted TAP: "ok ... # SKIP"
# and "1..0 # SKIP" are skips, not passes; under CI=true each skip is a
# failure too; a crash, an exit without "not ok" and an empty producer
# fail.  Needs no lab and no daemon.
. "$(dirname "$0")/../lib.sh"

# counts CI PRODUCER-BODY: run one planted producer through run_tap in a
# subshell; prints "PASSED FAILED SKIPPED" and the recorded line.  (This
# file's own descriptions never hold a hash sign: run.sh would read one
# followed by "skip" as a directive.)
counts() {
	local ci=$1 body=$2
	printf '%s\n' "$body" > "$T_TMP/producer.sh"
	(
		OUT=$T_TMP/out
		mkdir -p "$OUT"
		PASSED=0 FAILED=0 SKIPPED=0
		CI=$ci
		. "$TOP/tests/count.sh"
		run_tap planted bash "$T_TMP/producer.sh" > "$T_TMP/record.txt" \
		    2> /dev/null
		echo "$PASSED $FAILED $SKIPPED"
	)
}

expect() {
	local what=$1 ci=$2 body=$3 want=$4 got
	got=$(counts "$ci" "$body")
	check "$what (CI=${ci:-unset}): passed failed skipped = $want (got $got)" \
	    test "$got" = "$want"
}

TWO='echo "ok 1 - a"; echo "ok 2 - b # SKIP no tool"; echo "1..2"'
expect "an ok with a SKIP directive is a skip, not a pass" "" "$TWO" "1 0 1"
expect "and a failure under CI=true" true "$TWO" "1 1 1"
check "the record line names the skip" grep -q "1 passed, 1 failed, 1 skipped (CI=true: a skip is a failure)" "$T_TMP/record.txt"
LOWER='echo "ok 1 - a # skip lower case"; echo "1..1"'
expect "a skip directive in lower case is a skip too" "" "$LOWER" "0 0 1"
HASH='echo "ok 1 - issue #12 fixed"; echo "1..1"'
expect "a hash sign in a description is not a directive" "" "$HASH" "1 0 0"
PLAN='echo "1..0 # SKIP no lab"'
expect "a 1..0 plan with a SKIP directive is one skip" "" "$PLAN" "0 0 1"
expect "and a failure under CI=true" true "$PLAN" "0 1 1"
CRASH='echo "ok 1 - a"; kill -SEGV $$'
expect "a crash after an ok is a failure" "" "$CRASH" "1 1 0"
EXIT='echo "ok 1 - a"; echo "1..1"; exit 3'
expect "a non-zero exit without not ok is a failure" "" "$EXIT" "1 1 0"
EMPTY='true'
expect "a producer with no test at all is a failure" "" "$EMPTY" "0 1 0"
FAIL='echo "ok 1 - a"; echo "not ok 2 - b"; echo "1..2"; exit 1'
expect "not ok counts once" "" "$FAIL" "1 1 0"

done_testing
