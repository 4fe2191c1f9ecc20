#!/bin/bash
# bench/run.sh: the benchmark of issue 7, in one command.  As root on
# Debian 12 it:
#   1. installs what is missing (tests/deps.sh);
#   2. builds virtconsoled and bench/vcdload if needed: $VCD_BUILD if set,
#      else the tree if it is configured in place, else build/ (configured
#      there, as tests/run.sh does);
#   3. starts a private lab (tests/lab/lab.sh), unless --lab-from-env;
#   4. runs bench/harness.py: boots the guests (25 with 8 virtio consoles
#      each, 2 with --quick) and measures every path in one run, the paths
#      interleaved (bench/README.md); with --quick, first the capture
#      phase: a daemon with capture = always and every console's history
#      full (its RSS against the history bound, its idle CPU).  Filling
#      225 histories takes minutes: `-- --phases capture` runs it alone
#      (then merge it: bench/report.py --merge);
#   4b. with --prev REV, builds that revision of virtconsoled too (out of
#      tree, in bench/out/prev-SHA/, kept for the next run) and measures
#      it beside the current build in the same run: the paths prev-unix,
#      prev-ws, prev-wss (bench/README.md);
#   5. writes the raw results (JSON) and, from them, the report
#      (bench/report.py: BENCHMARKS.md and bench.png beside the JSON);
#   6. stops the lab.
#
# usage: bench/run.sh [--quick] [--out FILE] [--lab-from-env] [--no-deps]
#                     [--no-report] [--prefix NAME] [--prev REV | --prev-vcd DIR]
#                     [-- HARNESS-OPTIONS...]
#   --quick          small counts (1 and 5 sessions, 2 guests, 10 captured
#                    consoles, short windows): proves every piece works (tests/integration/
#                    t-bench.sh); its figures mean little
#   --out FILE       the JSON (default bench/out/results.json, or
#                    bench/out/quick.json with --quick)
#   --lab-from-env   use the running lab of LAB_DIR and LAB_URI (the test
#                    suite's) instead of starting one
#   --no-deps        do not run tests/deps.sh
#   --no-report      only the JSON
#   --prefix NAME    guest names NAME01, NAME02... (default bench)
#   --prev REV       also measure the virtconsoled of git revision REV (the
#                    build before a change): built once in bench/out/prev-SHA/
#                    (git archive, configure, make virtconsoled
#                    virtconsolectl; ~1-2 min), reused while that directory
#                    holds it
#   --prev-vcd DIR   the same with a build already made: DIR holds its
#                    virtconsoled (t-bench.sh passes the current build)
# Exit status 0 when every run of the harness succeeded.
set -eu
TOP=$(cd "$(dirname "$0")/.." && pwd)
LAB=$TOP/tests/lab/lab.sh
PY=/usr/bin/python3

QUICK=0 OUT='' LAB_FROM_ENV=0 DEPS=1 REPORT=1 PREFIX=bench PREV_REV='' PREV_VCD=''
while [ $# -gt 0 ]; do
	case $1 in
	--quick) QUICK=1 ;;
	--out) OUT=$2; shift ;;
	--out=*) OUT=${1#*=} ;;
	--lab-from-env) LAB_FROM_ENV=1 ;;
	--no-deps) DEPS=0 ;;
	--no-report) REPORT=0 ;;
	--prefix) PREFIX=$2; shift ;;
	--prev) PREV_REV=$2; shift ;;
	--prev=*) PREV_REV=${1#*=} ;;
	--prev-vcd) PREV_VCD=$2; shift ;;
	--prev-vcd=*) PREV_VCD=${1#*=} ;;
	--) shift; break ;;
	-h | --help) sed -n '2,/^set -eu/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
	*) echo "bench/run.sh: unknown option $1 (--help)" >&2; exit 2 ;;
	esac
	shift
done
if [ -z "$OUT" ]; then
	if [ "$QUICK" = 1 ]; then OUT=$TOP/bench/out/quick.json; else OUT=$TOP/bench/out/results.json; fi
fi
case $OUT in /*) ;; *) OUT=$PWD/$OUT ;; esac
if [ -n "$PREV_REV" ] && [ -n "$PREV_VCD" ]; then
	echo "bench/run.sh: --prev and --prev-vcd exclude each other" >&2
	exit 2
fi
OUTDIR=$(dirname "$OUT")
mkdir -p "$OUTDIR"
T0=$(date +%s)
say() { printf '== %s (%d s)\n' "$*" $(($(date +%s) - T0)) >&2; }

[ "$(id -u)" = 0 ] || { echo "bench/run.sh: run it as root (the lab runs libvirtd)" >&2; exit 2; }

if [ "$DEPS" = 1 ]; then
	say "dependencies (tests/deps.sh)"
	"$TOP/tests/deps.sh" > "$OUTDIR/deps.log" 2>&1 ||
	    { tail -n 20 "$OUTDIR/deps.log" >&2; exit 1; }
fi

# The build: one given, one configured in place, or build/.
if [ -n "${VCD_BUILD:-}" ]; then
	case $VCD_BUILD in /*) ;; *) VCD_BUILD=$TOP/$VCD_BUILD ;; esac
	[ -x "$VCD_BUILD/virtconsoled" ] || { echo "bench/run.sh: no virtconsoled in VCD_BUILD=$VCD_BUILD" >&2; exit 1; }
	if [ ! -x "$VCD_BUILD/bench/vcdload" ]; then
		say "building bench/vcdload in $VCD_BUILD"
		make -C "$VCD_BUILD" bench/vcdload > "$OUTDIR/build.log" 2>&1 ||
		    { tail -n 20 "$OUTDIR/build.log" >&2; exit 1; }
	fi
	# The allocation counter: without it, the run counts no allocations.
	[ -f "$VCD_BUILD/bench/malloccount.so" ] ||
	    make -C "$VCD_BUILD" bench/malloccount.so >> "$OUTDIR/build.log" 2>&1 ||
	    say "no bench/malloccount.so in $VCD_BUILD: allocations not counted"
else
	if [ -f "$TOP/config.status" ]; then
		VCD_BUILD=$TOP
	else
		VCD_BUILD=$TOP/build
		if [ ! -f "$VCD_BUILD/config.status" ]; then
			say "configuring in $VCD_BUILD"
			if ! { { [ -x "$TOP/configure" ] || (cd "$TOP" && autoreconf -fi); } &&
			    mkdir -p "$VCD_BUILD" &&
			    (cd "$VCD_BUILD" && "$TOP/configure"); } > "$OUTDIR/build.log" 2>&1; then
				tail -n 20 "$OUTDIR/build.log" >&2
				exit 1
			fi
		fi
	fi
	say "building in $VCD_BUILD"
	make -C "$VCD_BUILD" -j"$(nproc)" >> "$OUTDIR/build.log" 2>&1 ||
	    { tail -n 20 "$OUTDIR/build.log" >&2; exit 1; }
fi
export VCD_BUILD

# The previous build: REV built out of tree once, or a build given.
PREV=()
if [ -n "$PREV_REV" ]; then
	PREV_SHA=$(git -C "$TOP" rev-parse --verify --quiet "$PREV_REV^{commit}") ||
	    { echo "bench/run.sh: --prev $PREV_REV: no such revision in $TOP" >&2; exit 2; }
	PDIR=$TOP/bench/out/prev-$PREV_SHA
	PREV_VCD=$PDIR/build
	if [ ! -x "$PREV_VCD/virtconsoled" ] || [ ! -x "$PREV_VCD/virtconsolectl" ]; then
		say "building $PREV_REV ($PREV_SHA) in $PDIR, log in $PDIR.log"
		rm -rf "$PDIR"
		if ! { mkdir -p "$PDIR/src" "$PREV_VCD" &&
		    git -C "$TOP" archive "$PREV_SHA" | tar -x -C "$PDIR/src" &&
		    (cd "$PDIR/src" && autoreconf -fi) &&
		    (cd "$PREV_VCD" && ../src/configure) &&
		    make -C "$PREV_VCD" -j2 virtconsoled virtconsolectl; } > "$PDIR.log" 2>&1; then
			tail -n 20 "$PDIR.log" >&2
			rm -rf "$PDIR"
			exit 1
		fi
		printf '%s %s\n' "$PREV_SHA" "$PREV_REV" > "$PREV_VCD/prev.rev"
	fi
	PREV=(--prev-vcd "$PREV_VCD" --prev-rev "$PREV_REV" --prev-sha "$PREV_SHA")
elif [ -n "$PREV_VCD" ]; then
	case $PREV_VCD in /*) ;; *) PREV_VCD=$PWD/$PREV_VCD ;; esac
	[ -x "$PREV_VCD/virtconsoled" ] || { echo "bench/run.sh: no virtconsoled in --prev-vcd $PREV_VCD" >&2; exit 2; }
	if [ -f "$PREV_VCD/prev.rev" ]; then
		read -r PREV_SHA PREV_REV < "$PREV_VCD/prev.rev"
	else
		# A build of a git tree (its HEAD, maybe with changes), or unknown.
		PREV_REV="the build in $PREV_VCD"
		PREV_SHA=$(git -C "$PREV_VCD" rev-parse --verify --quiet HEAD 2> /dev/null) || PREV_SHA=''
	fi
	PREV=(--prev-vcd "$PREV_VCD" --prev-rev "$PREV_REV" --prev-sha "$PREV_SHA")
fi

if [ "$LAB_FROM_ENV" = 1 ]; then
	if [ -z "${LAB_DIR:-}" ] || [ -z "${LAB_URI:-}" ]; then
		echo "bench/run.sh: --lab-from-env needs LAB_DIR and LAB_URI" >&2
		exit 2
	fi
else
	say "lab"
	"$LAB" image > "$OUTDIR/lab.log" 2>&1 || { tail -n 20 "$OUTDIR/lab.log" >&2; exit 1; }
	ENVF=$(mktemp /tmp/vcd-bench-lab.XXXXXX)
	"$LAB" start > "$ENVF" 2>> "$OUTDIR/lab.log" || { tail -n 20 "$OUTDIR/lab.log" >&2; rm -f "$ENVF"; exit 1; }
	eval "$(grep -E '^LAB_(DIR|URI)=' "$ENVF")"
	rm -f "$ENVF"
	export LAB_DIR LAB_URI
	trap '"$LAB" stop "$LAB_DIR" >> "$OUTDIR/lab.log" 2>&1' EXIT
fi

PROFILE=full
[ "$QUICK" = 1 ] && PROFILE=quick
# The whole command within 30 minutes (issue 22: the side-by-side
# figures are medians of 3 repetitions): what building and the lab took
# comes off the harness's budget (it drops repetitions when late), and
# ~40 s are kept for its clean-up, the report and stopping the lab.
# Three paths more with a previous build: 50 minutes.  On 2026-12-06 a
# run with --prev took 29 minutes up to its first side-by-side throughput
# run and skipped its other two for lack of time (budget 37 minutes);
# the allocation runs (10 MB through each door, 50 s windows) have since
# added ~3 minutes per build.  The budget is a bound: a run ends when its
# steps are done.
BUDGET=()
WHOLE=1800
[ "${#PREV[@]}" = 0 ] || WHOLE=3000
[ "$QUICK" = 1 ] || BUDGET=(--budget $((WHOLE - 40 - ($(date +%s) - T0))))
say "harness ($PROFILE), log in $OUTDIR/harness.log"
rc=0
"$PY" "$TOP/bench/harness.py" --profile "$PROFILE" "${BUDGET[@]}" \
    --out "$OUT" --vcdload "$VCD_BUILD/bench/vcdload" --prefix "$PREFIX" "${PREV[@]}" "$@" \
    2> >(tee "$OUTDIR/harness.log" >&2) || rc=$?

if [ "$REPORT" = 1 ] && [ -s "$OUT" ]; then
	base=$(basename "$OUT" .json)
	"$PY" "$TOP/bench/report.py" "$OUT" --md "$OUTDIR/$base.md" --png "$OUTDIR/$base.png" || rc=1
	say "report: $OUTDIR/$base.md, $OUTDIR/$base.png"
fi
say "done: $OUT (status $rc)"
exit $rc
