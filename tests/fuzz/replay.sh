#!/bin/bash
# Build each libFuzzer target with clang (ASan + UBSan) and replay its seed
# corpus deterministically (-runs=0 executes every file once; fixed seed).
# Prints TAP.  With FUZZ_SECONDS=N, each target also fuzzes for N seconds
# (opt-in; the suite does not).
#
# usage: tests/fuzz/replay.sh [OUTDIR]
set -u
TOP=$(cd "$(dirname "$0")/../.." && pwd)
OUT=${1:-$TOP/tests/out/fuzz}
mkdir -p "$OUT"
n=0
failed=0
if ! command -v clang > /dev/null; then
	echo "not ok 1 - clang is not installed (apt-get install clang)"
	echo "1..1"
	exit 1
fi
# shellcheck disable=SC2046
FLAGS="-g -O1 -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined -D_GNU_SOURCE -I$TOP/include"
LIBS=$(pkg-config --cflags --libs libvirt libevent libevent_pthreads libcrypto)
for t in config http json token ws; do
	n=$((n + 1))
	src=$TOP/tests/fuzz/${t}_fuzzer.c
	extra=""
	case $t in
	config) extra="$TOP/src/config.c" ;;
	http) extra="$TOP/src/http.c" ;;
	json) extra="$TOP/src/json.c" ;;
	token) extra="$TOP/src/token.c" ;;
	ws) extra="$TOP/src/ws.c" ;;
	esac
	# shellcheck disable=SC2086
	if ! clang $FLAGS "$src" $extra "$TOP/src/util.c" "$TOP/src/lat.c" "$TOP/src/log.c" \
	    $LIBS -o "$OUT/${t}_fuzzer" > "$OUT/$t.build.log" 2>&1; then
		echo "not ok $n - build the $t fuzzer"
		sed 's/^/# /' "$OUT/$t.build.log" | tail -n 20
		failed=$((failed + 1))
		continue
	fi
	echo "ok $n - build the $t fuzzer"
	n=$((n + 1))
	corpus=$TOP/tests/fuzz/corpus/$t
	if "$OUT/${t}_fuzzer" -runs=0 -seed=1 "$corpus" \
	    > "$OUT/$t.replay.log" 2>&1; then
		echo "ok $n - replay the $t corpus ($(ls "$corpus" | wc -l) inputs)"
	else
		echo "not ok $n - replay the $t corpus"
		tail -n 30 "$OUT/$t.replay.log" | sed 's/^/# /'
		failed=$((failed + 1))
	fi
	if [ -n "${FUZZ_SECONDS:-}" ]; then
		n=$((n + 1))
		mkdir -p "$OUT/new-$t"
		if "$OUT/${t}_fuzzer" -max_total_time="$FUZZ_SECONDS" \
		    "$OUT/new-$t" "$corpus" > "$OUT/$t.fuzz.log" 2>&1; then
			echo "ok $n - fuzz $t for ${FUZZ_SECONDS}s"
		else
			echo "not ok $n - fuzz $t for ${FUZZ_SECONDS}s"
			tail -n 30 "$OUT/$t.fuzz.log" | sed 's/^/# /'
			failed=$((failed + 1))
		fi
	fi
done
echo "1..$n"
[ "$failed" -eq 0 ]
