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
	valgrind clang-tidy iproute2 python3-libvirt python3-matplotlib strace
	openssl systemd gdb prometheus nginx asciinema
	debhelper dpkg-dev fakeroot lintian mmdebstrap git"
# systemd is here for its tools (t-init runs `systemd-analyze verify` on the
# unit), not as init: the machine keeps its own PID 1.  Its maintainer
# scripts only talk to a running systemd when /run/systemd/system exists,
# so it installs non-interactively on a host or in a container booted
# without it; systemd-sysv, the package that makes it init, is not pulled
# in (nor, with --no-install-recommends, dbus or systemd-timesyncd).
# openssl is the command the TLS tests make certificates and probe with;
# strace is t-privaudit's auditor of the file system calls a root start
# makes; gdb counts calls in the running daemon (t-webbounds: one parse
# per head).
# prometheus: t-metrics runs its binary and promtool, not the packaged
# service: the install runs with a policy-rc.d that refuses service starts
# (invoke-rc.d's documented switch), unless the machine has its own, so
# that nothing is left running on :9090.
# asciinema: t-logs replays recordings with `asciinema cat` (the format's
# reference player, Debian's 2.2).
# debhelper, dpkg-dev, fakeroot, lintian, mmdebstrap, git: t-deb builds
# the Debian package from a clone, checks it and installs it into a
# throwaway root.
# nginx: t-nginx runs its binary on a temporary config (two daemons behind
# one front end); the same policy-rc.d keeps the packaged one off :80.
missing=""
for p in $BUILD_PKGS; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null |
	    grep -q 'install ok installed' || missing="$missing $p"
done
# npm (for xterm.js): Debian's, unless one is on PATH already.
command -v npm > /dev/null || missing="$missing npm"
if [ -n "$missing" ]; then
	apt-get update -q
	policy=""
	if [ ! -e /usr/sbin/policy-rc.d ]; then
		policy=/usr/sbin/policy-rc.d
		printf '#!/bin/sh\n# tests/deps.sh: no service starts\nexit 101\n' \
		    > "$policy"
		chmod 755 "$policy"
		trap 'rm -f "$policy"' EXIT
	fi
	# shellcheck disable=SC2086
	apt-get install -y -q --no-install-recommends $missing
	[ -z "$policy" ] || rm -f "$policy"
	trap - EXIT
fi
exec "$(dirname "$0")/lab/lab.sh" deps
