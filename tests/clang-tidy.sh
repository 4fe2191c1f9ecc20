#!/bin/bash
# Static analysis in the suite: clang-tidy (the checks of .clang-tidy at the
# top of the tree) over src/*.c, with the configured build's compile flags.
# TAP out: one line per source file.  Any finding fails; a finding judged
# wrong is silenced where it stands (NOLINT(check) with a comment saying
# why) or excluded in .clang-tidy with the reason.  A self-test first proves
# the configuration flags a leak and an unchecked atoi().
#
# Env: VCD_BUILD (a configured build directory, default TOP/build: its
# config.h and WARN_CFLAGS are used).
set -u
TOP=$(cd "$(dirname "$0")/.." && pwd)
BUILD=${VCD_BUILD:-$TOP/build}
case $BUILD in /*) ;; *) BUILD=$TOP/$BUILD ;; esac
CONF=$TOP/.clang-tidy
N=0
FAILED=0
ok() { N=$((N + 1)); echo "ok $N - $*"; }
notok() { N=$((N + 1)); FAILED=$((FAILED + 1)); echo "not ok $N - $*"; }
finish() {
	rm -rf "$W"
	echo "1..$N"
	[ "$FAILED" -eq 0 ] && [ "$N" -gt 0 ]
	exit $?
}
W=$(mktemp -d /tmp/vcd-clang-tidy.XXXXXX)

if ! command -v clang-tidy > /dev/null; then
	notok "clang-tidy is not installed (apt-get install clang-tidy)"
	finish
fi
if [ ! -f "$BUILD/config.h" ] || [ ! -f "$BUILD/Makefile" ]; then
	notok "no configured build in $BUILD (config.h, Makefile)"
	finish
fi

# The flags of the build (Makefile.am's AM_CPPFLAGS and AM_CFLAGS; the
# directory names only matter as strings) without -Werror: a clang warning
# is a finding here, reported as such.
read -r -a warn <<< "$(sed -n 's/^WARN_CFLAGS = //p' "$BUILD/Makefile" |
    sed 's/-Werror//')"
read -r -a pkg <<< "$(pkg-config --cflags libvirt libevent libxml-2.0 openssl)"
FLAGS=(-include "$BUILD/config.h" -I"$TOP/include"
	-DSYSCONFDIR='"/etc"' -DDATADIR='"/usr/share"' -DRUNSTATEDIR='"/run"'
	"${pkg[@]}" "${warn[@]}")

# findings [FILE]: clang-tidy's warnings and errors (not its notes).
findings() {
	grep -E '^[^ ].*:[0-9]+:[0-9]+: (warning|error): ' "$@"
}

# ---------------------------------------------------------------- self-test
cat > "$W/selftest.c" <<'EOF'
#include <stdlib.h>
int
selftest(const char *s)
{
	char	*p = malloc(16);

	if (p == NULL)
		return -1;
	p[0] = (char)atoi(s);
	return p[0];
}
EOF
clang-tidy --quiet --config-file="$CONF" "$W/selftest.c" -- "${FLAGS[@]}" \
    > "$W/selftest.out" 2>&1
if grep -q 'clang-analyzer-unix.Malloc' "$W/selftest.out" &&
    grep -q 'cert-err34-c' "$W/selftest.out"; then
	ok "self-test: the configuration flags a leak (clang-analyzer-unix.Malloc) and atoi (cert-err34-c)"
else
	notok "self-test: the configuration does not flag a leak and atoi"
	sed 's/^/# /' "$W/selftest.out" | head -n 20
fi

# ---------------------------------------------------------------- src/
T0=$SECONDS
# shellcheck disable=SC2016
printf '%s\n' "$TOP"/src/*.c | xargs -P "$(nproc)" -I{} sh -c \
    'c=$1 f=$2; shift 2; o=$0/$(basename "$f")
    clang-tidy --quiet --config-file="$c" "$f" -- "$@" > "$o.out" 2>&1
    echo $? > "$o.rc"' \
    "$W" "$CONF" {} "${FLAGS[@]}"
TOTAL=0
for f in "$TOP"/src/*.c; do
	b=$(basename "$f")
	rc=$(cat "$W/$b.rc" 2>/dev/null || echo missing)
	n=$(findings "$W/$b.out" | wc -l)
	TOTAL=$((TOTAL + n))
	if [ "$rc" = 0 ] && [ "$n" -eq 0 ]; then
		ok "clang-tidy: src/$b: no findings"
	else
		notok "clang-tidy: src/$b: $n finding(s), status $rc"
		sed 's/^/# /' "$W/$b.out" | head -n 40
	fi
done
if [ "$TOTAL" -gt 0 ]; then
	echo "# findings by check:"
	cat "$W"/*.c.out | findings | grep -o '\[[^],]*' | tr -d '[' |
	    sort | uniq -c | sort -rn | sed 's/^/#   /'
fi
echo "# figure: clang_tidy_files = $(printf '%s\n' "$TOP"/src/*.c | wc -l) files"
echo "# figure: clang_tidy_findings = $TOTAL findings"
echo "# figure: clang_tidy_nolint = $(cat "$TOP"/src/*.c | grep -cE 'NOLINT(NEXTLINE|BEGIN)?\(') NOLINT places"
echo "# figure: clang_tidy_wall = $((SECONDS - T0)) s"
echo "# $(clang-tidy --version | grep -m1 -i version | sed 's/^ *//')"
finish
