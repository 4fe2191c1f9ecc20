#!/bin/bash
# The Debian package from a clean clone of HEAD, built, checked by lintian,
# installed into a throwaway Debian 12 root (mmdebstrap, cached), started
# there with its LSB init script on a configuration pointing at the lab,
# reached through the unix door and the web door, reloaded, stopped,
# upgraded in place over an operator's edit of the conffile, and purged.
#
# The root: `mmdebstrap --variant=minbase` of bookworm with the package's
# Depends and Pre-Depends, from the host's Debian apt sources (the files of
# /etc/apt/sources.list{,.d} that name bookworm), kept as a tarball in
# /var/cache/virtconsoled-tests/ whose name holds a hash of those
# dependencies and sources: a second run only unpacks it.  The package is
# installed with apt inside the root (its dependencies are there already,
# so no network is needed then).
#
# The root is a chroot: /proc, /dev, /dev/pts and the directory of the
# lab's libvirt socket are bind-mounted into it, in a mount namespace of
# this test's own (the mounts cannot outlive it); the daemon runs in the
# chroot and listens on the host's network, so the clients run here, on
# the host, through the root's /run/virtconsoled.
#
# During the install steps a policy-rc.d that allows every action stands
# in for the init system a chroot does not have (invoke-rc.d blocks
# everything when it finds neither): that is how the test sees the
# package start its service at install with the shipped configuration.
#
# Environment: LAB_DIR, LAB_URI (the suite's lab); VCD_DEB_CACHE, the
# cache directory (default /var/cache/virtconsoled-tests).

if [ -z "${VCD_DEB_NS:-}" ] && command -v unshare > /dev/null; then
	exec env VCD_DEB_NS=1 unshare --mount --propagation private \
	    /bin/bash "$0" "$@"
fi

. "$(dirname "$0")/../lib.sh"

D=$T_TMP
CACHE=${VCD_DEB_CACHE:-/var/cache/virtconsoled-tests}
G=vcd-deb-$$
START=$(date +%s)
R=
MOUNTS=""
LAB_OPENED=0
PY=/usr/bin/python3

need_lab
[ "${VCD_DEB_NS:-}" = 1 ] || skip_all "unshare(1) is missing"
[ "$(id -u)" = 0 ] || skip_all "needs root (chroot, mounts)"
for c in git dpkg-buildpackage lintian mmdebstrap chroot; do
	command -v "$c" > /dev/null || skip_all "$c is missing (tests/deps.sh)"
done
git -C "$TOP" rev-parse --verify -q HEAD > /dev/null ||
    skip_all "$TOP is not a git checkout"

# elapsed: seconds since the test started.
elapsed() { echo $(($(date +%s) - START)); }

# inroot CMD...: run CMD in the root, with a plain environment.
inroot() {
	env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin LANG=C.UTF-8 \
	    DEBIAN_FRONTEND=noninteractive chroot "$R" "$@"
}

# bind SRC DST: a bind mount, remembered for the cleanup.
bind() {
	mkdir -p "$2" && mount --bind "$1" "$2" && MOUNTS="$2 $MOUNTS"
}

# The daemon's pid in the root, if it runs.
root_pid() {
	[ -n "$R" ] && head -n 1 "$R/run/virtconsoled/virtconsoled.pid" \
	    2>/dev/null | tr -cd 0-9
}

deb_cleanup() {
	local pid m
	pid=$(root_pid)
	if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then
		kill -TERM "$pid" 2>/dev/null
		wait_gone "$pid" 15 || kill -KILL "$pid" 2>/dev/null
	fi
	virsh -c "$LAB_URI" destroy "$G" > /dev/null 2>&1
	[ "$LAB_OPENED" = 1 ] && lab_close
	for m in $MOUNTS; do
		umount "$m" 2>/dev/null || umount -l "$m" 2>/dev/null
	done
	# Never remove the root while anything is still mounted in it.
	if [ -n "$R" ] && [ -d "$R" ]; then
		if findmnt -rn -o TARGET | grep -qF "$R"; then
			echo "# t-deb: mounts left under $R; not removing it" >&2
		else
			rm -rf --one-file-system "$R"
		fi
	fi
}
trap 'deb_cleanup; t_cleanup' EXIT
# Killed (run_tap's timeout, Ctrl-C): the EXIT trap still cleans up.
trap 'exit 143' TERM
trap 'exit 130' INT

VERSION=$(sed -n 's/^AC_INIT(\[virtconsoled\], \[\([^]]*\)\].*/\1/p' \
    "$TOP/configure.ac")
ARCH=$(dpkg --print-architecture)
DEB=virtconsoled_${VERSION}_${ARCH}.deb
diag "version $VERSION (configure.ac), architecture $ARCH"

# ---- 1. the package, from a clean clone of HEAD ----
HEAD=$(git -C "$TOP" rev-parse HEAD)
mkdir -p "$D/pkg"
git clone -q --no-checkout "$TOP" "$D/pkg/virtconsoled" &&
    git -C "$D/pkg/virtconsoled" checkout -q "$HEAD"
check "a clean clone of HEAD ($(git -C "$TOP" rev-parse --short HEAD))" \
    test -f "$D/pkg/virtconsoled/debian/control"
check "debian/changelog has configure.ac's version ($VERSION)" test \
    "$(cd "$D/pkg/virtconsoled" && dpkg-parsechangelog -S Version)" = \
    "$VERSION"
t0=$(date +%s)
(cd "$D/pkg/virtconsoled" &&
    DEB_BUILD_OPTIONS="parallel=$(nproc)" dpkg-buildpackage -us -uc -b) \
    > "$D/build.log" 2>&1
brc=$?
diag "dpkg-buildpackage: exit $brc in $(($(date +%s) - t0)) s"
[ "$brc" = 0 ] || tail -n 25 "$D/build.log" | sed 's/^/#   /'
if ! check "dpkg-buildpackage -us -uc -b builds $DEB" \
    test "$brc" = 0 -a -f "$D/pkg/$DEB"; then
	done_testing
fi
warn=$(grep -E '^[^ ]+\.[ch]:[0-9]+:[0-9]+: warning:|^dpkg-[a-z]+: warning:' \
    "$D/build.log")
check "the build has no compiler or dpkg warning" test -z "$warn"
[ -z "$warn" ] || printf '%s\n' "$warn" | head -n 5 | sed 's/^/#   /'

# lintian: no error; every warning kept is listed in debian/README.source.
lintian --fail-on error "$D/pkg/virtconsoled_${VERSION}_${ARCH}.changes" \
    > "$D/lintian.log" 2>&1
lrc=$?
sed 's/^/#   lintian: /' "$D/lintian.log"
check "lintian reports no error (exit $lrc)" \
    test "$lrc" = 0 -a -z "$(grep '^E: ' "$D/lintian.log")"
unlisted=""
for tag in $(sed -n 's/^W: [^ ]* \([^ ]*\).*/\1/p' "$D/lintian.log" |
    sort -u); do
	grep -qF -- "$tag" "$D/pkg/virtconsoled/debian/README.source" ||
	    unlisted="$unlisted $tag"
done
check "every lintian warning is listed in debian/README.source${unlisted:+ (not:$unlisted)}" \
    test -z "$unlisted"

# What the package holds.
contents=$(dpkg-deb -c "$D/pkg/$DEB" | awk '{print $6}' | sed 's|^\.||')
missing=""
for f in /usr/sbin/virtconsoled /usr/bin/virtconsolectl \
    /usr/share/man/man8/virtconsoled.8.gz \
    /usr/share/man/man5/virtconsoled.conf.5.gz \
    /usr/share/man/man1/virtconsolectl.1.gz \
    /usr/share/virtconsoled/web/index.html \
    /usr/share/virtconsoled/web/vendor/xterm.js \
    /etc/virtconsoled/virtconsoled.conf /lib/systemd/system/virtconsoled.service \
    /etc/init.d/virtconsoled /etc/logrotate.d/virtconsoled \
    /usr/share/doc/virtconsoled/NEWS.gz; do
	grep -qxF "$f" <<< "$contents" || missing="$missing $f"
done
check "it holds the daemon, virtconsolectl, the man pages, the web root, the conffile, the unit, the init script, logrotate and NEWS${missing:+ (missing:$missing)}" \
    test -z "$missing"
check "/etc/virtconsoled/virtconsoled.conf is a conffile" \
    grep -qxF /etc/virtconsoled/virtconsoled.conf \
    <(dpkg-deb -I "$D/pkg/$DEB" conffiles)

# ---- 2. the throwaway root ----
# Its packages: the first of each alternative of Depends and Pre-Depends.
rdeps=$( (dpkg-deb -f "$D/pkg/$DEB" Pre-Depends; dpkg-deb -f "$D/pkg/$DEB" \
    Depends) | tr ',' '\n' | sed -e 's/|.*//' -e 's/(.*)//' -e 's/:.*//' \
    -e 's/[[:space:]]//g' | grep -v '^$' | sort -u | paste -sd, -)
sources=$(grep -lw bookworm /etc/apt/sources.list \
    /etc/apt/sources.list.d/*.list /etc/apt/sources.list.d/*.sources \
    2>/dev/null)
# shellcheck disable=SC2086
key=$( { echo "bookworm minbase $rdeps"; cat $sources; } | sha256sum |
    cut -c1-16)
# No Debian sources file here: mmdebstrap's own default mirror.
[ -n "$sources" ] || sources=http://deb.debian.org/debian
TARBALL=$CACHE/root-bookworm-$key.tar
diag "root: $rdeps; sources: $(echo $sources)"
if [ -s "$TARBALL" ]; then
	diag "root: cached, $TARBALL"
else
	t0=$(date +%s)
	mkdir -p "$CACHE"
	# shellcheck disable=SC2086
	tmp=$CACHE/.root-bookworm-$key.$$.tar
	mmdebstrap --quiet --variant=minbase --format=tar \
	    --include="$rdeps" bookworm "$tmp" $sources \
	    < /dev/null > "$D/mmdebstrap.log" 2>&1 && mv "$tmp" "$TARBALL"
	mrc=$?
	rm -f "$tmp"
	# Roots of other dependencies or sources are not used any more.
	[ "$mrc" = 0 ] && find "$CACHE" -maxdepth 1 -name 'root-bookworm-*.tar' \
	    ! -name "${TARBALL##*/}" -delete
	diag "root: mmdebstrap exit $mrc in $(($(date +%s) - t0)) s, $TARBALL"
	[ "$mrc" = 0 ] || tail -n 15 "$D/mmdebstrap.log" | sed 's/^/#   /'
fi
R=$(mktemp -d /var/tmp/vcd-deb-root.XXXXXX)
t0=$(date +%s)
if ! check "a throwaway bookworm root (cached tarball unpacked)" \
    tar -C "$R" --numeric-owner -xpf "$TARBALL"; then
	done_testing
fi
diag "root unpacked in $(($(date +%s) - t0)) s: $R"
mount -t proc proc "$R/proc" && MOUNTS="$R/proc $MOUNTS"
bind /dev "$R/dev"
bind /dev/pts "$R/dev/pts"
bind "$LAB_DIR/sock" "$R$LAB_DIR/sock"
if ! check "/proc, /dev and the lab's socket directory are mounted in the root" \
    test -S "$R$LAB_DIR/sock/libvirt-sock" -a -e "$R/proc/self/stat"; then
	done_testing
fi

# The group libvirt-daemon-system would have made: the postinst puts the
# new user in it.
inroot groupadd --system libvirt

# A manifest of the root before the package, to compare after the purge.
manifest() {
	inroot find / -xdev \( -path /tmp -o -path /proc -o -path /dev \
	    -o -path "$LAB_DIR" -o -path /var/cache/apt -o -path /var/lib/apt \
	    -o -path /var/lib/dpkg -o -path /var/cache/debconf \
	    -o -path /var/log/apt -o -path /var/log/dpkg.log \) -prune \
	    -o -print | sort
}
manifest > "$D/manifest.before"
inroot getent passwd > "$D/passwd.before"

ALLOW='#!/bin/sh\n# t-deb: the chroot has no init system; allow every action\nexit 0\n'
# install ARGS...: apt-get install inside the root, with the allowing
# policy-rc.d; output in $D/install.log, exit status in IRC.
install_pkg() {
	cp "$D/pkg/$DEB" "$R/tmp/$DEB"
	printf "$ALLOW" > "$R/usr/sbin/policy-rc.d"
	chmod 755 "$R/usr/sbin/policy-rc.d"
	inroot apt-get install -y -q --no-install-recommends "$@" "/tmp/$DEB" \
	    > "$D/install.log" 2>&1
	IRC=$?
	rm -f "$R/usr/sbin/policy-rc.d"
	[ "$IRC" = 0 ] || tail -n 15 "$D/install.log" | sed 's/^/#   /'
}

# ---- 3. install: the service starts with the shipped configuration ----
install_pkg
if ! check "apt-get install ./$DEB in the root" test "$IRC" = 0; then
	done_testing
fi
check "dpkg: installed" test "$(inroot dpkg-query -W -f='${Status}' \
    virtconsoled)" = "install ok installed"
pw=$(inroot getent passwd virtconsoled)
check "the system user virtconsoled exists, no login, no home ($pw)" \
    grep -qE '^virtconsoled:x:[0-9]+:[0-9]+:[^:]*:/nonexistent:/usr/sbin/nologin$' \
    <<< "$pw"
groups=$(inroot id -nG virtconsoled 2>&1)
check "the new user joined the existing libvirt group ($groups)" \
    grep -qw libvirt <<< "$groups"
check "the token secret: 32 bytes, 0600, root's" test \
    "$(stat -c '%s %a %u' "$R/etc/virtconsoled/secret" 2>&1)" = "32 600 0"
check "the state directory /var/lib/virtconsoled: 0700" \
    test "$(stat -c %a "$R/var/lib/virtconsoled" 2>&1)" = 700
CONF=$R/etc/virtconsoled/virtconsoled.conf
check "the shipped configuration says capture = attached and user = virtconsoled" \
    test "$(grep -cxE 'capture = attached|user = virtconsoled' "$CONF")" = 2
check "and it is valid (virtconsoled -n)" \
    eval "inroot /usr/sbin/virtconsoled -n -f /etc/virtconsoled/virtconsoled.conf > /dev/null"
out=$(inroot /etc/init.d/virtconsoled status 2>&1)
src=$?
diag "after install: status -> $src: $out"
check "the install started the service (init status: running)" \
    test "$src" = 0
pid=$(root_pid)
ids=$(awk '/^Uid:|^Gid:/ {print $2}' "/proc/${pid:-0}/status" 2>/dev/null |
    tr '\n' ' ')
vuid=$(cut -d: -f3 <<< "$pw")
vgid=$(cut -d: -f4 <<< "$pw")
check "it runs as virtconsoled after the drop (uid gid: $ids)" \
    test "$ids" = "$vuid $vgid "
if command -v systemd-analyze > /dev/null; then
	out=$(SYSTEMD_COLORS=0 systemd-analyze verify --man=no \
	    --recursive-errors=no --root="$R" \
	    /lib/systemd/system/virtconsoled.service 2>&1)
	vrc=$?
	[ -z "$out" ] || printf '%s\n' "$out" | sed 's/^/#   verify: /'
	check "systemd-analyze verify passes on the installed unit" \
	    test "$vrc" = 0 -a -z "$(grep -F virtconsoled.service <<< "$out")"
else
	fail "systemd-analyze is missing (tests/deps.sh installs systemd)"
fi
out=$(inroot /etc/init.d/virtconsoled stop 2>&1)
check "init stop: exit 0" test $? = 0
check "the daemon is gone" wait_gone "${pid:-0}" 30

# ---- 4. an operator's configuration pointing at the lab ----
PORT=$($PY -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
sed -i -e "s|^#uri = qemu:///system\$|uri = $LAB_URI|" \
    -e 's|^#log_file = none$|log_file = /var/log/virtconsoled.log|' \
    -e "s|^#listen = 127.0.0.1:8080\$|listen = 127.0.0.1:$PORT|" \
    -e 's|^#console_log_dir = none$|console_log_dir = /var/log/virtconsoled/consoles|' \
    "$CONF"
echo "# t-deb: edited by the operator ($$)" >> "$CONF"
edits=0
for l in "uri = $LAB_URI" "log_file = /var/log/virtconsoled.log" \
    "listen = 127.0.0.1:$PORT" \
    "console_log_dir = /var/log/virtconsoled/consoles"; do
	grep -qxF -- "$l" "$CONF" && edits=$((edits + 1))
done
check "the operator's edits are in place (uri, log_file, listen, console_log_dir)" \
    test "$edits" = 4
EDITED=$(md5sum < "$CONF")
SECRET=$(md5sum < "$R/etc/virtconsoled/secret")
# The lab's socket is root's, 0770: let the root's virtconsoled group in,
# as membership of the libvirt group would on a real host.
lab_open_to "$vgid" && LAB_OPENED=1
"$LAB" create "$G" > "$D/create.log" 2>&1 || sed 's/^/#   /' "$D/create.log"

LOG=$R/var/log/virtconsoled.log
out=$(inroot /etc/init.d/virtconsoled start 2>&1)
src=$?
diag "start -> $src: $(tr '\n' '|' <<< "$out")"
if ! check "init start on the lab's configuration: exit 0" test "$src" = 0
then
	sed 's/^/#   /' "$R/var/log/virtconsoled.log" 2>/dev/null | tail -n 15
	done_testing
fi
check "it connects to the lab's libvirtd (as virtconsoled)" \
    wait_log "$LOG" "hv: connected uri=" 30
check "the guest gets its unix socket" \
    wait_log "$LOG" "usock: guest=$G socket=" 60
check "the web door listens on 127.0.0.1:$PORT" \
    wait_log "$LOG" "web: listening on 127.0.0.1:$PORT" 10
out=$(inroot /etc/init.d/virtconsoled status 2>&1)
check "init status: exit 0, running ($out)" test $? = 0

# ---- 5. the doors ----
export PYTHONPATH=$TOP/tests/integration
t0=$(date +%s)
check "unix door: the guest's shell answers an echo through /run/virtconsoled/guests/$G" \
    $PY "$TOP/tests/integration/debdoors.py" unix \
    "$R/run/virtconsoled/guests/$G"
diag "unix door: $(($(date +%s) - t0)) s"
tok=$(inroot virtconsolectl token "$G" 2>"$D/token.err")
check "virtconsolectl token $G in the root prints a token" test -n "$tok"
[ -n "$tok" ] || sed 's/^/#   /' "$D/token.err"
check "web door: the same through a WebSocket with that token" \
    $PY "$TOP/tests/integration/debdoors.py" web \
    "ws://127.0.0.1:$PORT/console/$G?token=$tok"
clog=$(find "$R/var/log/virtconsoled/consoles" -name '*.log' -size +0 \
    2>/dev/null | head -n 1)
check "the console was logged (${clog#"$R"})" test -n "$clog"

# ---- 6. status, reload, stop ----
out=$(inroot virtconsolectl status 2>&1)
check "virtconsolectl status: hypervisor connected" \
    grep -q "hypervisor: connected" <<< "$out"
out=$(inroot /etc/init.d/virtconsoled reload 2>&1)
rrc=$?
check "init reload: exit 0 ($(tr '\n' '|' <<< "$out"))" test "$rrc" = 0
check "the daemon reloaded its configuration" \
    wait_log "$LOG" "configuration reloaded" 10
pid=$(root_pid)
out=$(inroot /etc/init.d/virtconsoled stop 2>&1)
check "init stop: exit 0" test $? = 0
check "the daemon exited" wait_gone "${pid:-0}" 30
out=$(inroot /etc/init.d/virtconsoled status 2>&1)
check "init status after stop: exit 3 ($out)" test $? = 3

# ---- 7. upgrade in place over the operator's edit ----
inroot /etc/init.d/virtconsoled start > /dev/null 2>&1
oldpid=$(root_pid)
install_pkg --reinstall
check "apt-get install --reinstall ./$DEB (an upgrade in place)" \
    test "$IRC" = 0
check "no conffile prompt, the operator's file kept as it was" \
    test "$(md5sum < "$CONF")" = "$EDITED"
check "the token secret kept" \
    test "$(md5sum < "$R/etc/virtconsoled/secret" 2>&1)" = "$SECRET"
newpid=$(root_pid)
out=$(inroot /etc/init.d/virtconsoled status 2>&1)
src=$?
check "the service was restarted and runs (pid $oldpid -> $newpid)" \
    test "$src" = 0 -a -n "$newpid" -a "$newpid" != "$oldpid"
check "it serves the guest again" \
    $PY "$TOP/tests/integration/debdoors.py" unix \
    "$R/run/virtconsoled/guests/$G"
cp "$LOG" "$D/daemon.log" 2>/dev/null

# ---- 8. purge ----
pid=$(root_pid)
printf "$ALLOW" > "$R/usr/sbin/policy-rc.d"
chmod 755 "$R/usr/sbin/policy-rc.d"
inroot apt-get purge -y -q virtconsoled > "$D/purge.log" 2>&1
prc=$?
rm -f "$R/usr/sbin/policy-rc.d"
[ "$prc" = 0 ] || tail -n 15 "$D/purge.log" | sed 's/^/#   /'
check "apt-get purge virtconsoled" test "$prc" = 0
check "the purge stopped the daemon" wait_gone "${pid:-0}" 30
check "dpkg: not installed" test -z "$(inroot dpkg-query -W \
    -f='${Status}' virtconsoled 2>/dev/null | grep -v not-installed)"
check "/etc/virtconsoled is gone (the secret with it)" \
    test ! -e "$R/etc/virtconsoled"
check "/var/lib/virtconsoled is gone" test ! -e "$R/var/lib/virtconsoled"
check "/run/virtconsoled is gone" test ! -e "$R/run/virtconsoled"
check "the console log is kept" test -s "$clog"
check "the system user is kept" eval "inroot getent passwd virtconsoled > /dev/null"
manifest > "$D/manifest.after"
remains=$(comm -13 "$D/manifest.before" "$D/manifest.after")
gone=$(comm -23 "$D/manifest.before" "$D/manifest.after")
printf '%s\n' "$remains" | sed 's/^/#   remains: /'
# Expected: the console logs and the daemon's log_file, the user's
# entries (adduser's backups of the files it edited, its lock directory).
unexpected=$(grep -vE '^/var/log/virtconsoled(\.log.*|/.*)?$|^/etc/(passwd|group|shadow|gshadow)-$|^/run/adduser$' \
    <<< "$remains")
check "what remains: only console logs, the daemon's log file and the user${unexpected:+ (also: $(echo $unexpected))}" \
    test -z "$unexpected"
check "nothing that was there before is gone${gone:+ ($(echo $gone))}" \
    test -z "$gone"
check "no user but virtconsoled was added" test \
    "$(inroot getent passwd | grep -v '^virtconsoled:')" = \
    "$(cat "$D/passwd.before")"

diag "t-deb: $(elapsed) s"
done_testing
