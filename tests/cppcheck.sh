#!/bin/bash
# Static analysis in the suite: cppcheck over src/, TAP out.  Any finding
# fails; a finding judged wrong is suppressed inline where it stands
# (cppcheck-suppress with a comment saying why), never here.
set -u
TOP=$(cd "$(dirname "$0")/.." && pwd)
if ! command -v cppcheck > /dev/null; then
	echo "not ok 1 - cppcheck is not installed (apt-get install cppcheck)"
	echo "1..1"
	exit 1
fi
# sys/queue.h is given explicitly: without it cppcheck cannot see through
# the TAILQ macros and reports nonsense.
out=$(cppcheck --enable=warning,performance,portability --std=c11 \
    --inline-suppr -q --error-exitcode=1 -I"$TOP/include" -D_GNU_SOURCE \
    --include=/usr/include/x86_64-linux-gnu/sys/queue.h \
    --suppress=missingIncludeSystem "$TOP/src" 2>&1)
rc=$?
if [ "$rc" -eq 0 ] && [ -z "$out" ]; then
	echo "ok 1 - cppcheck: no findings in src/ ($(cppcheck --version))"
else
	echo "not ok 1 - cppcheck findings in src/"
	printf '%s\n' "$out" | sed 's/^/# /'
fi
echo "1..1"
[ "$rc" -eq 0 ] && [ -z "$out" ]
