#!/bin/bash
# The valgrind tier: a named subset of the integration tests, with the
# plain (non-sanitizer) daemon under valgrind memcheck (VCD_WRAPPER, which
# vcdtest.Daemon and t-daemon.sh honour).  TAP out.  For each test:
#   - its own checks all pass under valgrind;
#   - every daemon it ran left a complete valgrind report, i.e. it exited
#     normally (SIGTERM, or its own exit), not by SIGKILL;
#   - 0 memcheck errors (invalid read/write, uninitialised use, bad free,
#     overlap..., and definitely lost blocks: --errors-for-leak-kinds);
#   - no definitely or indirectly lost block with a frame in src/*.c.
# A self-test first proves the checker flags each kind on a small program,
# and tests/valgrind.supp may name no function of the daemon.
#
# Usage: tests/valgrind.sh [TEST...]     TEST: a file in tests/integration/
#   or a path (default: the subset below).  Env: VCD_BUILD (a plain build, default
#   TOP/build), LAB_DIR and LAB_URI (the lab), CI, VCD_VALGRIND_LOGS (a
#   directory to keep the logs in; by default a temp dir, removed when all
#   passed and kept, with its path printed, when not).
set -u
TOP=$(cd "$(dirname "$0")/.." && pwd)
VCD_BUILD=${VCD_BUILD:-$TOP/build}
case $VCD_BUILD in /*) ;; *) VCD_BUILD=$TOP/$VCD_BUILD ;; esac
VCD=$VCD_BUILD/virtconsoled
SUPP=$TOP/tests/valgrind.supp
# The daemon's life (connect, reconnect, reload, SIGTERM), the control
# socket and reloads under live sessions, and the web front door (HTTP,
# WebSocket, TLS, hostile input, and its authentication: the state_dir
# store of used tokens and revocations, a restart).  t-sessions.py (the sessions' failure
# modes) is the second part of the tier, run on its own:
#   tests/valgrind.sh t-sessions.py
SUBSET="t-daemon.sh t-control.py t-web.py t-webauth.py"
[ $# -gt 0 ] && SUBSET="$*"
VG_STATUS=86    # valgrind's exit status when it found an error
# --fullpath-after= (empty): frames name whole paths, so that src/*.c of
# this tree is told from a library's file of the same name.
VG="valgrind --tool=memcheck --leak-check=full"
VG="$VG --show-leak-kinds=definite,indirect --errors-for-leak-kinds=definite"
VG="$VG --track-fds=no --track-origins=yes --num-callers=40 --fullpath-after="
VG="$VG --error-exitcode=$VG_STATUS --suppressions=$SUPP"

N=0
FAILED=0
ok() { N=$((N + 1)); echo "ok $N - $*"; }
notok() { N=$((N + 1)); FAILED=$((FAILED + 1)); echo "not ok $N - $*"; }
diag() { printf '%s\n' "$@" | sed 's/^/# /'; }
# check DESCRIPTION COMMAND...: passes when the command exits 0.
check() {
	local d=$1; shift
	if "$@"; then ok "$d"; else notok "$d"; fi
}
# all TEST...: every test(1) expression, each one word list, separated
# by "--", holds: all 1 -eq 1 -- 2 -gt 0
all() {
	local a=()
	while [ $# -gt 0 ]; do
		if [ "$1" = -- ]; then
			test "${a[@]}" || return 1
			a=()
		else
			a+=("$1")
		fi
		shift
	done
	test "${a[@]}"
}
finish() {
	echo "1..$N"
	if [ "$FAILED" -eq 0 ] && [ "$N" -gt 0 ]; then
		[ -n "${KEEP:-}" ] || rm -rf "$W"
		exit 0
	fi
	echo "# valgrind logs kept in $W"
	exit 1
}
cannot() {
	if [ "${CI:-}" = true ] || [ "$2" = fail ]; then
		notok "cannot run: $1"
		finish
	fi
	echo "1..0 # SKIP $1"
	exit 0
}

if [ -n "${VCD_VALGRIND_LOGS:-}" ]; then
	W=$VCD_VALGRIND_LOGS
	KEEP=1
	mkdir -p "$W" && rm -rf "${W:?}"/*
else
	W=$(mktemp -d /tmp/vcd-valgrind.XXXXXX)
fi

command -v valgrind > /dev/null ||
    cannot "valgrind is not installed (apt-get install valgrind)" fail
[ -x "$VCD" ] || cannot "no daemon binary at $VCD" fail
if readelf -d "$VCD" 2>/dev/null | grep -q 'NEEDED.*libasan'; then
	cannot "$VCD is a sanitizer build; valgrind needs the plain one" fail
fi
if [ -z "${LAB_URI:-}" ] || [ -z "${LAB_DIR:-}" ]; then
	cannot "no lab (LAB_URI and LAB_DIR are not set)" skip
fi

# vg_check SRCDIR BINARY LOG...: read valgrind logs.  A frame is "own"
# when it is in SRCDIR/*.c, or in a file of the same name holding a
# function defined in BINARY (a copy of the tree built elsewhere).  Prints
# "# " diagnostics, then one line:
#   runs incomplete errors own_bytes own_records definite_bytes indirect_bytes
vg_check() {
	/usr/bin/python3 - "$@" <<'EOF'
import glob, os, re, subprocess, sys

own = {os.path.realpath(p) for p in glob.glob(os.path.join(sys.argv[1], "*.c"))}
names = {os.path.basename(p) for p in own}
nm = subprocess.run(["nm", "--defined-only", sys.argv[2]], capture_output=True,
                    text=True).stdout
funcs = {w[2] for w in (line.split() for line in nm.splitlines())
         if len(w) == 3 and w[1] in "tT"}
LOSS = re.compile(r"^([\d,]+) (?:\(([\d,]+) direct, ([\d,]+) indirect\) )?"
                  r"bytes in ([\d,]+) blocks are (definitely|indirectly|possibly) lost")
FRAME = re.compile(r"(?:at|by) 0x[0-9A-Fa-f]+: (\S+) \((/[^():]+):\d+\)")
num = lambda s: int(s.replace(",", ""))
tot = dict(runs=0, incomplete=0, errors=0, own_bytes=0, own_records=0,
           definite=0, indirect=0)
shown = 0


def show(log, block):
    global shown
    if shown < 6:
        print("# %s:" % os.path.basename(log))
        for line in block[:30]:
            print("#   " + line)
    shown += 1


for log in sys.argv[3:]:
    tot["runs"] += 1
    blocks, cur = [], []
    summary = None
    for raw in open(log, errors="replace"):
        m = re.match(r"^==\d+== ?(.*)$", raw.rstrip("\n"))
        if not m:
            continue
        line = m.group(1)
        s = re.match(r"ERROR SUMMARY: ([\d,]+) errors", line)
        if s:
            summary = num(s.group(1))
        if line.strip():
            cur.append(line)
        elif cur:
            blocks.append(cur)
            cur = []
    if cur:
        blocks.append(cur)
    if summary is None:
        tot["incomplete"] += 1
        print("# %s: no ERROR SUMMARY (the daemon did not exit normally)" % log)
        continue
    tot["errors"] += summary
    for b in blocks:
        frames = [(fn, os.path.normpath(f)) for line in b for fn, f in FRAME.findall(line)]
        mine = any(f in own or (os.path.basename(f) in names and fn in funcs)
                   for fn, f in frames)
        m = LOSS.match(b[0])
        if m:
            kind = m.group(5)
            direct = num(m.group(2) or m.group(1))
            if kind == "definitely":
                tot["definite"] += direct
            elif kind == "indirectly":
                tot["indirect"] += direct
            if kind != "possibly" and mine:
                tot["own_bytes"] += direct
                tot["own_records"] += 1
                show(log, b)
            elif kind == "definitely":
                show(log, b)
        elif any(line.lstrip().startswith("at 0x") for line in b):
            show(log, b)        # an error: invalid access, uninitialised...
print("%(runs)d %(incomplete)d %(errors)d %(own_bytes)d %(own_records)d "
      "%(definite)d %(indirect)d" % tot)
EOF
}

# ---------------------------------------------------------------- self-test
# A program with each kind of finding, under the same valgrind options.
ST=$W/selftest
mkdir -p "$ST/src" "$ST/build"
cat > "$ST/src/vgself.c" <<'EOF'
#include <stdlib.h>
struct pair { char *p; };
static int use(const char *q) { return q[3] ? 1 : 2; }
int main(void)
{
	struct pair *lost = malloc(sizeof *lost);  /* definitely lost */
	char *q = malloc(8);                      /* read uninitialised */
	int r;

	lost->p = malloc(16);                     /* indirectly lost */
	lost = NULL;
	r = use(q);
	free(q);
	free(q);                                  /* invalid free */
	return r == 7;
}
EOF
if (cd "$ST/build" && gcc -g -O0 -o vgself ../src/vgself.c) > "$ST/cc.log" 2>&1; then
	$VG --log-file="$ST/vg.%p.log" "$ST/build/vgself"
	rc=$?
	read -r runs inc errs obytes orecs _ _ < <(vg_check "$ST/src" "$ST/build/vgself" "$ST"/vg.*.log | tail -n 1)
	check "self-test: the checker flags an uninitialised read, a double free, a definite and an indirect leak from own code (exit $rc, $errs errors, $obytes bytes in $orecs own records)" \
	    all "$rc" -eq "$VG_STATUS" -- "$runs" -eq 1 -- "$inc" -eq 0 -- \
	    "$errs" -eq 3 -- "$obytes" -eq 24 -- "$orecs" -eq 2
else
	notok "self-test: cannot compile it"
	diag "$(cat "$ST/cc.log")"
fi

# tests/valgrind.supp may not hide the daemon's own functions.
bad=""
for f in $(sed -n 's/^[[:space:]]*fun:\([A-Za-z_][A-Za-z0-9_]*\)[[:space:]]*$/\1/p' "$SUPP"); do
	nm --defined-only "$VCD" 2>/dev/null | grep -qE " [tT] $f\$" && bad="$bad $f"
done
check "tests/valgrind.supp names no function of the daemon${bad:+:$bad}" \
    test -z "$bad"

# ---------------------------------------------------------------- the tests
RUNS=0 ERRS=0 OWN=0 DEF=0 IND=0
T0=$SECONDS
for t in $SUBSET; do
	case $t in
	*/*) path=$t; t=$(basename "$t") ;;
	*) path=$TOP/tests/integration/$t ;;
	esac
	d=$W/${t%.*}
	mkdir -p "$d"
	case $t in
	*.py) cmd=(/usr/bin/python3 "$path") ;;
	*.sh) cmd=(bash "$path") ;;
	*) cmd=(false) ;;
	esac
	if [ ! -f "$path" ]; then
		notok "$t: no such test in tests/integration"
		continue
	fi
	t1=$SECONDS
	VCD_BUILD=$VCD_BUILD VCD_WRAPPER="$VG --log-file=$d/vg.%p.log" \
	    timeout 900 "${cmd[@]}" > "$d/tap.log" 2>&1
	rc=$?
	secs=$((SECONDS - t1))
	p=$(grep -c '^ok ' "$d/tap.log")
	f=$(grep -c '^not ok ' "$d/tap.log")
	if grep -q '^1\.\.0 # SKIP' "$d/tap.log" && [ "${CI:-}" != true ]; then
		ok "$t under valgrind # SKIP $(sed -n 's/^1\.\.0 # SKIP //p' "$d/tap.log")"
		continue
	fi
	check "$t under valgrind: its own checks pass ($p ok, $f not ok, status $rc, $secs s)" \
	    all "$rc" -eq 0 -- "$f" -eq 0 -- "$p" -gt 0
	if [ "$rc" -ne 0 ] || [ "$f" -ne 0 ]; then
		diag "$(grep -E '^not ok' "$d/tap.log" | head -n 20)" \
		    "$(tail -n 5 "$d/tap.log")"
	fi
	echo "# figure: valgrind_wall_${t%.*} = $secs s"
	logs=("$d"/vg.*.log)
	[ -e "${logs[0]}" ] || logs=()
	out=$(vg_check "$TOP/src" "$VCD" "${logs[@]}")
	read -r runs inc errs obytes orecs def ind <<< "$(tail -n 1 <<< "$out")"
	printf '%s\n' "$out" | sed '$d'
	check "$t: $runs daemon run(s) under valgrind, each exited normally with a full report ($inc incomplete)" \
	    all "$runs" -gt 0 -- "$inc" -eq 0
	check "$t: 0 memcheck errors ($errs)" test "$errs" -eq 0
	check "$t: no definitely or indirectly lost block from src/ ($obytes bytes in $orecs records; in all: $def bytes definitely, $ind indirectly lost)" \
	    test "$orecs" -eq 0
	RUNS=$((RUNS + runs)) ERRS=$((ERRS + errs)) OWN=$((OWN + obytes))
	DEF=$((DEF + def)) IND=$((IND + ind))
done
secs=$((SECONDS - T0))
echo "# figure: valgrind_runs = $RUNS runs"
echo "# figure: valgrind_errors = $ERRS errors"
echo "# figure: valgrind_own_lost_bytes = $OWN bytes"
echo "# figure: valgrind_definitely_lost_bytes = $DEF bytes"
echo "# figure: valgrind_indirectly_lost_bytes = $IND bytes"
echo "# figure: valgrind_wall_total = $secs s"
finish
