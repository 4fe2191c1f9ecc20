#!/bin/bash
# Install what building and testing virtconsoled needs on Debian 12, when
# it is missing: the build tools and libraries here, the lab's packages
# through tests/lab/lab.sh deps.
set -eu
export DEBIAN_FRONTEND=noninteractive
# Build; then the tools the tests drive (the tests also install their own
# when run alone).
BUILD_PKGS="gcc make autoconf automake libtool pkg-config libc6-dev
	libvirt-dev libevent-dev libssl-dev libxml2-dev
	tmux clang mandoc man-db cppcheck logrotate
	chromium websockify python3-websockets
	valgrind clang-tidy iproute2 python3-libvirt python3-matplotlib"
missing=""
for p in $BUILD_PKGS; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null |
	    grep -q 'install ok installed' || missing="$missing $p"
done
# npm (for xterm.js): Debian's, unless one is on PATH already.
command -v npm > /dev/null || missing="$missing npm"
if [ -n "$missing" ]; then
	apt-get update -q
	# shellcheck disable=SC2086
	apt-get install -y -q --no-install-recommends $missing
fi
exec "$(dirname "$0")/lab/lab.sh" deps
