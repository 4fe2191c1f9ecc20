# How tests/run.sh counts results; sourced by it (and by
# tests/integration/t-count.sh, which feeds it planted TAP).  Needs OUT (the
# log directory) and PASSED, FAILED and SKIPPED (totals, start at 0); CI=true
# makes every skip a failure as well.
# shellcheck shell=bash

say() { printf '== %s\n' "$*"; }

# record NAME PASSED FAILED [SKIPPED]: a skip is not a pass.  Under
# CI=true every skip is also counted as a failure: nothing may go untested
# there.
record() {
	local skipped=${4:-0} failed=$3 note=""
	if [ "$skipped" -gt 0 ] && [ "${CI:-}" = true ]; then
		failed=$((failed + skipped))
		note=" (CI=true: a skip is a failure)"
	fi
	PASSED=$((PASSED + $2))
	FAILED=$((FAILED + failed))
	SKIPPED=$((SKIPPED + skipped))
	if [ "$skipped" -gt 0 ]; then
		printf '%-40s %4d passed, %d failed, %d skipped%s\n' "$1" "$2" \
		    "$failed" "$skipped" "$note"
	else
		printf '%-40s %4d passed, %d failed\n' "$1" "$2" "$failed"
	fi
}

# A step that is one test: pass when the command succeeds.
step() {
	local name=$1; shift
	if "$@" > "$OUT/$name.log" 2>&1; then
		record "$name" 1 0
	else
		record "$name" 0 1
		tail -n 30 "$OUT/$name.log" | sed 's/^/    /'
		return 1
	fi
}

# run_tap NAME COMMAND...: count a TAP producer's ok / not ok lines; an
# "ok ... # SKIP" line or a "1..0 # SKIP" plan is a skip, not a pass.  A
# crash, a non-zero exit without a "not ok", or no test at all is a
# failure.  TAP_TIMEOUT (seconds, default 600) bounds one producer.
run_tap() {
	local name=$1 log rc p f s; shift
	log=$OUT/$name.log
	timeout "${TAP_TIMEOUT:-600}" "$@" > "$log" 2>&1
	rc=$?
	s=$(grep -ciE '^ok [^#]*# *skip' "$log")
	p=$(($(grep -c '^ok ' "$log") - s))
	f=$(grep -c '^not ok ' "$log")
	if [ "$rc" -ne 0 ] && [ "$f" -eq 0 ]; then
		f=1
		echo "not ok - $name exited with status $rc" >> "$log"
	fi
	if [ $((p + f + s)) -eq 0 ]; then
		if grep -qi '^1\.\.0 *# *skip' "$log"; then
			s=1
		else
			f=1
		fi
	fi
	record "$name" "$p" "$f" "$s"
	if [ "$s" -gt 0 ]; then
		{ grep -iE '^ok [^#]*# *skip' "$log"
		  grep -i '^1\.\.0 *# *skip' "$log"; } | head -n 20 |
		    sed 's/^/    skipped: /'
	fi
	if [ "$f" -gt 0 ]; then
		grep -E '^not ok|^#' "$log" | head -n 40 | sed 's/^/    /'
		tail -n 5 "$log" | sed 's/^/    /'
	fi
}

# Count automake's per-test results (.trs files) of one build.
count_trs() {
	local name=$1 dir=$2 p f s
	p=$(cat "$dir"/tests/unit/*.trs 2>/dev/null | grep -c '^:test-result: PASS')
	f=$(cat "$dir"/tests/unit/*.trs 2>/dev/null | grep -cE '^:test-result: (FAIL|ERROR|XPASS)')
	s=$(cat "$dir"/tests/unit/*.trs 2>/dev/null | grep -cE '^:test-result: (SKIP|XFAIL)')
	[ $((p + f + s)) -eq 0 ] && f=1
	record "$name" "$p" "$f" "$s"
	if [ "$f" -gt 0 ]; then
		grep -h -B2 -A3 '^not ok' "$dir"/tests/unit/*.log 2>/dev/null |
		    head -n 40 | sed 's/^/    /'
	fi
}

