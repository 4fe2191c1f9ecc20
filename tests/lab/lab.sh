#!/bin/bash
# lab.sh: a private libvirt daemon and tiny busybox guests, so that
# virtconsoled's tests run against real consoles on a plain CI machine.
# Usage and measured facts: README.md beside this file.
set -eu

PROG=${0##*/}
HERE=$(cd "$(dirname "$0")" && pwd)
LAB_CACHE=${LAB_CACHE:-/var/tmp/virtconsoled-lab}

# Everything the lab (and the project's build) needs from Debian 12.
# Never libvirt-daemon-system: it pulls in systemd.
LAB_PACKAGES="libvirt-daemon libvirt-daemon-driver-qemu libvirt-clients
  qemu-system-x86 busybox-static tini python3-libvirt libvirt-dev
  libevent-dev pkg-config util-linux procps"

# Loaded in this order: busybox's insmod knows no dependencies.
GUEST_MODULES="virtio_ring virtio virtio_pci_modern_dev virtio_pci_legacy_dev
  virtio_pci virtio_console"

# Bump when the image layout changes in a way the hash below cannot see.
IMAGE_FORMAT=1

note() { echo "$PROG: $*" >&2; }
die() { echo "$PROG: error: $*" >&2; exit 1; }

usage() {
    cat >&2 <<EOF
usage: $PROG deps
       $PROG image
       $PROG start                      (prints the env file; eval it)
       $PROG stop [LAB_DIR]
       $PROG libvirtd-kill [SIGNAL]     (default KILL; keeps it down)
       $PROG libvirtd-start
       $PROG xml NAME [--consoles N] [--memory MiB]
       $PROG create NAME [--consoles N] [--memory MiB]
       $PROG define NAME [--consoles N] [--memory MiB]
       $PROG probe NAME [--dev ALIAS] [--timeout S] [--force] [--run CMD]
       $PROG wait-boot NAME [TIMEOUT]
       $PROG pids                       (the lab's processes, one a line)
EOF
    exit 2
}

now() { date +%s.%N; }
since() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.2f", b - a }'; }

# Paths end up in config files, XML and a sourced env file: keep them plain.
check_path() {
    case $2 in
    /*) ;;
    *) die "$1 must be an absolute path: $2" ;;
    esac
    case $2 in
    *[!A-Za-z0-9._/+-]*) die "$1 has characters this script does not quote: $2" ;;
    esac
}

check_name() {
    case $1 in
    '' | *[!A-Za-z0-9._-]*) die "bad guest name '$1' (letters, digits, . _ - only)" ;;
    esac
}

# The lab's env file sets LAB_DIR, LAB_URI and LAB_CACHE; subcommands that
# talk to a running lab need only LAB_DIR (or the three from the env).
load_env() {
    [ -n "${LAB_DIR:-}" ] || die "LAB_DIR is not set: eval \"\$($PROG start)\" first"
    [ -f "$LAB_DIR/env" ] || die "$LAB_DIR/env missing: no lab started there"
    # shellcheck disable=SC1091
    . "$LAB_DIR/env"
}

# lab_virsh ARGS: virsh on the lab, given VIRSH_TIMEOUT seconds (30); a
# timeout says so (timeout(1) itself exits 124 without a word).
lab_virsh() {
    local rc=0
    timeout "${VIRSH_TIMEOUT:-30}" virsh -q -c "$LAB_URI" "$@" || rc=$?
    [ "$rc" != 124 ] || note "virsh $1: no answer within ${VIRSH_TIMEOUT:-30} s (VIRSH_TIMEOUT)"
    return "$rc"
}

# ---------------------------------------------------------------- deps

cmd_deps() {
    local p missing=
    for p in $LAB_PACKAGES; do
        if [ "$(dpkg-query -W -f='${db:Status-Status}' "$p" 2>/dev/null)" != installed ]; then
            missing="$missing $p"
        fi
    done
    if [ -n "$missing" ]; then
        note "installing:$missing"
        export DEBIAN_FRONTEND=noninteractive
        apt-get update -q >&2
        # shellcheck disable=SC2086
        apt-get install -y -q --no-install-recommends $missing >&2
    fi
    # libvirtd looks the user up before it reads qemu.conf; the package that
    # normally creates it (libvirt-daemon-system) is the one we avoid.
    getent group libvirt-qemu >/dev/null || groupadd --system libvirt-qemu
    getent passwd libvirt-qemu >/dev/null ||
        useradd --system --gid libvirt-qemu --no-create-home \
            --home-dir /var/lib/libvirt --shell /usr/sbin/nologin libvirt-qemu
    note "deps ok"
}

# ---------------------------------------------------------------- image

# The guest's /init. Its text is part of the image hash: edit it and the
# next 'image' rebuilds the initramfs.
guest_init() {
    cat <<'EOF'
#!/bin/sh
# /init of the virtconsoled lab guest (written by tests/lab/lab.sh).
export PATH=/bin:/sbin:/usr/bin:/usr/sbin HOME=/root
/bin/busybox mkdir -p /proc /sys /dev /tmp /root /sbin /usr/bin /usr/sbin
/bin/busybox --install -s
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
hostname vcd-lab
cd /root

# virtio_console is a module in Debian's cloud kernel; a missing file or a
# failing insmod means the driver is built in, which is fine too.
for m in $(cat /lib/modules/order); do
    [ -f /lib/modules/$m.ko ] && insmod /lib/modules/$m.ko 2>/dev/null
done

# The ports of a virtio console device appear shortly after the insmod, and
# devtmpfs creates hvc0..7 whether or not a port backs them: only an open
# tells. Wait until the backed set is non-empty and stable (at most ~3 s),
# and only when the guest has a virtio console device at all. Test -c
# first: on a busy host the nodes may not exist yet, and <> would create a
# regular file in their place (the shell then reads its own prompt back and
# respawns forever).
backed_hvcs() {
    for n in 0 1 2 3 4 5 6 7; do
        [ -c /dev/hvc$n ] && (: <>/dev/hvc$n) 2>/dev/null && echo -n "$n "
    done
}
hvcs=
if grep -qx 0x0003 /sys/bus/virtio/devices/*/device 2>/dev/null; then
    prev=none
    i=0
    while [ $i -lt 30 ]; do
        hvcs=$(backed_hvcs)
        [ -n "$hvcs" ] && [ "$hvcs" = "$prev" ] && break
        prev=$hvcs
        sleep 0.1
        i=$((i + 1))
    done
fi

# A shell on each backed hvc, respawned when it exits. Not cttyhack: it
# follows console= and would put every shell on ttyS0.
for n in $hvcs; do
    (while :; do
        setsid sh -c "exec /bin/sh -i </dev/hvc$n >/dev/hvc$n 2>&1"
        sleep 0.1
    done) &
done

echo "vcd-lab: shells on ttyS0 and hvc: ${hvcs:-none}"
echo VCD-LAB-BOOTED
# A shell on ttyS0 forever: 'exit' respawns it, and /init never returns.
while :; do
    setsid cttyhack /bin/sh -i
    sleep 0.1
done
EOF
}

# Download the cloud kernel package once and keep only what the guest
# needs: vmlinuz and the virtio modules.
fetch_kernel() {
    local pkg tmp deb vmlinuz m f
    pkg=${LAB_KERNEL_PKG:-}
    if [ -z "$pkg" ]; then
        pkg=$(apt-cache depends linux-image-cloud-amd64 2>/dev/null |
            awk '/Depends: linux-image-/ { print $2; exit }')
        if [ -z "$pkg" ]; then
            note "apt lists do not know linux-image-cloud-amd64: apt-get update"
            apt-get update -q >&2
            pkg=$(apt-cache depends linux-image-cloud-amd64 2>/dev/null |
                awk '/Depends: linux-image-/ { print $2; exit }')
        fi
    fi
    [ -n "$pkg" ] || die "cannot find the Debian cloud kernel package"
    note "fetching kernel $pkg"
    tmp=$(mktemp -d "$LAB_CACHE/.kernel.XXXXXX")
    # Sandbox user root: the _apt user cannot write our temp dir.
    (cd "$tmp" && apt-get download -q -o APT::Sandbox::User=root "$pkg") >&2 ||
        { rm -rf "$tmp"; die "apt-get download $pkg failed"; }
    deb=$(ls "$tmp"/*.deb)
    mkdir "$tmp/x" "$tmp/kernel"
    dpkg-deb --fsys-tarfile "$deb" | tar -x -C "$tmp/x" --wildcards \
        './boot/vmlinuz-*' './lib/modules/*/kernel/drivers/virtio/*' \
        './lib/modules/*/kernel/drivers/char/virtio_console.ko*'
    vmlinuz=$(ls "$tmp"/x/boot/vmlinuz-* | head -n 1)
    [ -f "$vmlinuz" ] || { rm -rf "$tmp"; die "no vmlinuz in $deb"; }
    cp "$vmlinuz" "$tmp/kernel/vmlinuz"
    mkdir "$tmp/kernel/modules"
    for m in $GUEST_MODULES; do
        f=$(find "$tmp/x/lib/modules" -name "$m.ko*" | head -n 1)
        case $f in
        '') note "module $m not in $pkg (built in?)" ;;
        *.ko) cp "$f" "$tmp/kernel/modules/$m.ko" ;;
        *.ko.xz) xz -dc "$f" >"$tmp/kernel/modules/$m.ko" ;;
        *.ko.zst) zstd -qdc "$f" >"$tmp/kernel/modules/$m.ko" ;;
        *) die "cannot unpack module $f" ;;
        esac
    done
    echo "$pkg $(basename "$deb")" >"$tmp/kernel/version"
    rm -rf "$LAB_CACHE/kernel"
    mv "$tmp/kernel" "$LAB_CACHE/kernel"
    rm -rf "$tmp"
}

image_hash() {
    {
        echo "format $IMAGE_FORMAT"
        echo "modules" $GUEST_MODULES
        cat "$LAB_CACHE/kernel/version"
        sha256sum </bin/busybox
        guest_init
    } | sha256sum | cut -d' ' -f1
}

cmd_image() {
    local t0 hash root m
    t0=$(now)
    check_path LAB_CACHE "$LAB_CACHE"
    [ -x /bin/busybox ] || die "/bin/busybox missing: run '$PROG deps'"
    mkdir -p "$LAB_CACHE"
    # Several labs may build at once; one builds, the others reuse.
    exec 9>"$LAB_CACHE/.image.lock"
    flock -w 600 9 || die "another build holds $LAB_CACHE/.image.lock for 600 s"
    # The kernel is fetched once per cache; remove $LAB_CACHE/kernel to
    # pick up a newer one.
    [ -f "$LAB_CACHE/kernel/vmlinuz" ] && [ -f "$LAB_CACHE/kernel/version" ] ||
        fetch_kernel
    hash=$(image_hash)
    if [ -f "$LAB_CACHE/initrd.img" ] &&
        [ "$(cat "$LAB_CACHE/initrd.hash" 2>/dev/null)" = "$hash" ]; then
        note "image up to date in $LAB_CACHE ($(since "$t0") s)"
        exec 9>&-
        return 0
    fi
    root=$(mktemp -d "$LAB_CACHE/.initrd.XXXXXX")
    mkdir -p "$root/bin" "$root/lib/modules"
    cp /bin/busybox "$root/bin/busybox"
    ln -s busybox "$root/bin/sh"
    for m in $GUEST_MODULES; do
        [ -f "$LAB_CACHE/kernel/modules/$m.ko" ] &&
            cp "$LAB_CACHE/kernel/modules/$m.ko" "$root/lib/modules/"
    done
    echo $GUEST_MODULES >"$root/lib/modules/order"
    guest_init >"$root/init"
    chmod 755 "$root/init"
    # Renamed into place: guests starting meanwhile read a whole file.
    (cd "$root" && find . | /bin/busybox cpio -o -H newc 2>/dev/null) |
        gzip -9 >"$root.img"
    mv "$root.img" "$LAB_CACHE/initrd.img"
    echo "$hash" >"$LAB_CACHE/initrd.hash"
    rm -rf "$root"
    exec 9>&-
    note "image built in $LAB_CACHE ($(cut -d' ' -f1 "$LAB_CACHE/kernel/version"), initrd $(du -k "$LAB_CACHE/initrd.img" | cut -f1) KiB, $(since "$t0") s)"
}

# ---------------------------------------------------------------- start

write_configs() {
    cat >"$LAB_DIR/etc/libvirtd.conf" <<EOF
# Private libvirtd of a virtconsoled test lab (tests/lab/lab.sh).
# Edit, then 'lab.sh libvirtd-kill; lab.sh libvirtd-start' to apply.
unix_sock_dir = "$LAB_DIR/sock"
unix_sock_ro_perms = "0777"
unix_sock_rw_perms = "0770"
unix_sock_admin_perms = "0700"
auth_unix_ro = "none"
auth_unix_rw = "none"
log_outputs = "${LAB_LIBVIRTD_LOG_LEVEL:-3}:file:$LAB_DIR/libvirtd.log"
EOF
    # Root without a security driver: no labelling, no chown of our files.
    # stdio_handler "file" keeps virtlogd out. namespaces [] keeps QEMU in
    # the lab's mount namespace (no private /dev to build per guest).
    cat >"$LAB_DIR/etc/qemu.conf" <<EOF
# Private QEMU driver config of a virtconsoled test lab (tests/lab/lab.sh).
user = "root"
group = "root"
dynamic_ownership = 0
remember_owner = 0
security_driver = "none"
stdio_handler = "file"
namespaces = [ ]
cgroup_controllers = [ ]
EOF
}

# Runs as tini's only child inside the lab's mount namespace. It restarts
# libvirtd whenever it exits, unless $D/hold exists, and ends once $D/stop
# exists. Pid and state files are renamed into place so readers never see
# them half-written.
write_supervisor() {
    cat >"$LAB_DIR/supervise.sh" <<'EOF'
D=$1
put() { echo "$2" >"$D/$1.tmp" && mv "$D/$1.tmp" "$D/$1"; }
log() { echo "$(date +%T.%N | cut -c1-12) supervisor: $*"; }
put supervisor.pid $$
state=
while [ ! -e "$D/stop" ]; do
    if [ -e "$D/hold" ]; then
        [ "$state" = held ] || { state=held; put libvirtd.state held; }
        sleep 0.1
        continue
    fi
    libvirtd --config "$D/etc/libvirtd.conf" --pid-file "$D/run/libvirtd.pid" &
    pid=$!
    put libvirtd.pid $pid
    state=running
    put libvirtd.state running
    log "libvirtd $pid started"
    wait $pid && rc=0 || rc=$?
    rm -f "$D/libvirtd.pid"
    log "libvirtd $pid exited (status $rc)"
    # Do not spin on a libvirtd that dies at once (bad config).
    [ -e "$D/hold" ] || [ -e "$D/stop" ] || sleep 1
done
put libvirtd.state stopped
log "stop requested, exiting"
EOF
}

# Prints the pids of the processes of this lab: those whose /run/libvirt is
# the lab's run directory. That tells labs apart even when their QEMUs are
# orphaned or live in a mount namespace of their own.
lab_pids() {
    local ref self
    ref=$(stat -c %d:%i "$LAB_DIR/run" 2>/dev/null) || return 0
    self=$(readlink /proc/self/ns/mnt)
    find /proc/[0-9]*/ns/mnt -maxdepth 0 -printf '%h %l\n' 2>/dev/null |
        awk -v self="$self" '$2 != self { sub("/ns$", "", $1); print $1 "/root/run/libvirt" }' |
        xargs -r stat -c '%n %d:%i' 2>/dev/null |
        awk -v ref="$ref" '$2 == ref { split($1, p, "/"); print p[3] }'
}

# alive PID: the process exists and is not a zombie (no fork: tests call
# this in tight loops).
alive() {
    local s
    [ -n "$1" ] && read -r s 2>/dev/null <"/proc/$1/stat" || return 1
    s=${s##*) }
    [ "${s%% *}" != Z ]
}

# wait_gone SECONDS PID...: true once none of the pids is alive.
wait_gone() {
    local end p left
    end=$(($(date +%s) + $1))
    shift
    while :; do
        left=
        for p in "$@"; do alive "$p" && left="$left $p"; done
        [ -z "$left" ] && return 0
        [ "$(date +%s)" -lt "$end" ] || return 1
        sleep 0.05
    done
}

virsh_answers() { VIRSH_TIMEOUT=10 lab_virsh version >/dev/null 2>&1; }

libvirtd_exits() { grep -c ' exited ' "$LAB_DIR/supervisor.log" 2>/dev/null || true; }

# wait_libvirtd SECONDS: until the lab's libvirtd answers. Fails early when
# libvirtd exits meanwhile (it would only be restarted to fail again) or
# the supervisor is gone.
wait_libvirtd() {
    local end exits
    end=$(($(date +%s) + $1))
    exits=$(libvirtd_exits)
    while :; do
        virsh_answers && return 0
        if [ "$(libvirtd_exits)" != "$exits" ]; then
            note "libvirtd exited while starting"
            return 1
        fi
        if [ -f "$LAB_DIR/tini.pid" ] && ! alive "$(cat "$LAB_DIR/tini.pid")"; then
            note "the lab's tini/supervisor exited"
            return 1
        fi
        [ "$(date +%s)" -lt "$end" ] || { note "libvirtd did not answer within $1 s"; return 1; }
        sleep 0.1
    done
}

start_failed() {
    local f
    note "lab start FAILED in $LAB_DIR"
    for f in supervisor.log libvirtd.log; do
        [ -s "$LAB_DIR/$f" ] || continue
        echo "---- tail of $LAB_DIR/$f" >&2
        tail -n 25 "$LAB_DIR/$f" >&2
    done
    if [ "${LAB_KEEP:-0}" = 1 ]; then
        note "LAB_KEEP=1: leaving $LAB_DIR; '$PROG stop $LAB_DIR' cleans up"
    else
        cmd_stop "$LAB_DIR" || true
    fi
}

cmd_start() {
    local t0 cachedir c
    t0=$(now)
    for c in libvirtd virsh unshare tini setsid flock timeout; do
        command -v "$c" >/dev/null || die "$c not found: run '$PROG deps'"
    done
    getent passwd libvirt-qemu >/dev/null || die "no libvirt-qemu user: run '$PROG deps'"
    check_path LAB_CACHE "$LAB_CACHE"
    if [ -n "${LAB_DIR:-}" ]; then
        check_path LAB_DIR "$LAB_DIR"
        # sun_path holds 108 bytes.
        [ ${#LAB_DIR} -le 80 ] || die "LAB_DIR too long for a unix socket path: $LAB_DIR"
        if [ -e "$LAB_DIR" ]; then
            [ -d "$LAB_DIR" ] && [ -z "$(ls -A "$LAB_DIR")" ] ||
                die "LAB_DIR=$LAB_DIR exists and is not an empty directory"
        fi
        mkdir -p "$LAB_DIR"
        LAB_DIR=$(cd "$LAB_DIR" && pwd -P)
    else
        LAB_DIR=$(mktemp -d /tmp/vcd-lab.XXXXXX)
    fi
    LAB_URI="qemu:///system?socket=$LAB_DIR/sock/libvirt-sock"
    # The marker lets 'stop' remove this directory, and nothing else.
    : >"$LAB_DIR/.vcd-lab"
    trap start_failed EXIT

    mkdir -p "$LAB_DIR/etc" "$LAB_DIR/run" "$LAB_DIR/lib" "$LAB_DIR/log" "$LAB_DIR/sock" "$LAB_DIR/xml"
    cachedir=$LAB_CACHE/libvirt-cache
    mkdir -p "$cachedir"
    # Mount points on the host; the binds themselves stay in the namespace.
    mkdir -p /etc/libvirt /run/libvirt /var/lib/libvirt /var/log/libvirt /var/cache/libvirt
    write_configs
    write_supervisor

    # Labs share the QEMU capabilities cache; let one probe at a time write it.
    exec 8>"$LAB_CACHE/.libvirt-cache.lock"
    flock -w 300 8 || die "another lab holds $LAB_CACHE/.libvirt-cache.lock for 300 s"
    # setsid: a Ctrl-C or hangup of the caller does not reach the lab.
    # tini -s: one subreaper that outlives libvirtd restarts and reaps QEMU
    # at once. All fds go to the log, so $(lab.sh start) does not hang.
    setsid unshare --mount --propagation private -- /bin/sh -c '
        set -e
        D=$1 C=$2
        mount --bind "$D/etc" /etc/libvirt
        mount --bind "$D/run" /run/libvirt
        mount --bind "$D/lib" /var/lib/libvirt
        mount --bind "$D/log" /var/log/libvirt
        mount --bind "$C" /var/cache/libvirt
        echo $$ >"$D/tini.pid"
        exec tini -s -- /bin/sh "$D/supervise.sh" "$D"
    ' vcd-lab "$LAB_DIR" "$cachedir" </dev/null >>"$LAB_DIR/supervisor.log" 2>&1 8>&- 9>&- &

    wait_libvirtd "${LAB_START_TIMEOUT:-60}" || exit 1
    exec 8>&-

    cat >"$LAB_DIR/env" <<EOF
LAB_DIR='$LAB_DIR'
LAB_URI='$LAB_URI'
LAB_CACHE='$LAB_CACHE'
export LAB_DIR LAB_URI LAB_CACHE
EOF
    trap - EXIT
    note "lab started in $LAB_DIR ($(since "$t0") s)"
    cat "$LAB_DIR/env"
}

# ---------------------------------------------------------------- libvirtd

cmd_libvirtd_kill() {
    local sig=${1:-KILL} end pid
    load_env
    : >"$LAB_DIR/hold"
    # The supervisor may be between "hold?" and starting a new libvirtd:
    # keep killing whatever libvirtd it names until it reports "held".
    end=$(($(date +%s) + 20))
    while [ "$(cat "$LAB_DIR/libvirtd.state" 2>/dev/null)" != held ]; do
        pid=$(cat "$LAB_DIR/libvirtd.pid" 2>/dev/null || true)
        if alive "$pid"; then
            kill -s "$sig" "$pid" 2>/dev/null || true
            wait_gone 15 "$pid" || note "libvirtd $pid survives SIG$sig"
        fi
        alive "$(cat "$LAB_DIR/supervisor.pid" 2>/dev/null)" || die "the lab's supervisor is gone"
        [ "$(date +%s)" -lt "$end" ] || die "libvirtd of $LAB_DIR did not go down"
        sleep 0.05
    done
    note "libvirtd of $LAB_DIR is down (held)"
}

cmd_libvirtd_start() {
    local t0 end
    t0=$(now)
    load_env
    rm -f "$LAB_DIR/hold"
    # "running" first: an old libvirtd must not be the one that answers.
    end=$(($(date +%s) + 10))
    until [ "$(cat "$LAB_DIR/libvirtd.state" 2>/dev/null)" = running ]; do
        [ "$(date +%s)" -lt "$end" ] || die "the lab's supervisor did not restart libvirtd"
        sleep 0.05
    done
    wait_libvirtd "${LAB_START_TIMEOUT:-60}" ||
        { tail -n 25 "$LAB_DIR/libvirtd.log" >&2 2>/dev/null; die "libvirtd did not come back"; }
    note "libvirtd of $LAB_DIR answers again ($(since "$t0") s)"
}

# ---------------------------------------------------------------- guests

cmd_xml() {
    local name consoles=0 memory=96 type=qemu k
    [ $# -ge 1 ] || usage
    name=$1
    shift
    check_name "$name"
    while [ $# -gt 0 ]; do
        case $1 in
        --consoles) [ $# -ge 2 ] || usage; consoles=$2; shift 2 ;;
        --consoles=*) consoles=${1#*=}; shift ;;
        --memory) [ $# -ge 2 ] || usage; memory=$2; shift 2 ;;
        --memory=*) memory=${1#*=}; shift ;;
        *) usage ;;
        esac
    done
    case $consoles in [0-8]) ;; *) die "--consoles must be 0 to 8 (the guest has hvc0..7 only)" ;; esac
    case $memory in '' | *[!0-9]*) die "--memory must be a number of MiB" ;; esac
    # The cloud kernel silently reboots in a loop below ~96 MiB.
    [ "$memory" -ge 96 ] || note "warning: $memory MiB is below the 96 MiB the guest needs"
    check_path LAB_CACHE "$LAB_CACHE"
    [ -f "$LAB_CACHE/kernel/vmlinuz" ] && [ -f "$LAB_CACHE/initrd.img" ] ||
        die "no guest image in $LAB_CACHE: run '$PROG image'"
    # KVM guests never finish booting on these machines: opt in only.
    [ "${LAB_KVM:-0}" = 1 ] && type=kvm
    echo "<domain type='$type'>"
    echo "  <name>$name</name>"
    echo "  <memory unit='MiB'>$memory</memory>"
    echo "  <vcpu>1</vcpu>"
    echo "  <os>"
    echo "    <type arch='x86_64' machine='pc'>hvm</type>"
    echo "    <kernel>$LAB_CACHE/kernel/vmlinuz</kernel>"
    echo "    <initrd>$LAB_CACHE/initrd.img</initrd>"
    echo "    <cmdline>console=ttyS0 quiet panic=-1</cmdline>"
    echo "  </os>"
    if [ "$type" = qemu ]; then
        # The default TCG translation cache costs ~1 GiB of RSS per guest.
        echo "  <features>"
        echo "    <tcg><tb-cache unit='MiB'>16</tb-cache></tcg>"
        echo "  </features>"
    fi
    echo "  <on_poweroff>destroy</on_poweroff>"
    echo "  <on_reboot>restart</on_reboot>"
    echo "  <on_crash>destroy</on_crash>"
    echo "  <devices>"
    echo "    <serial type='pty'><target port='0'/></serial>"
    echo "    <console type='pty'><target type='serial' port='0'/></console>"
    k=1
    while [ "$k" -le "$consoles" ]; do
        echo "    <console type='pty'><target type='virtio' port='$k'/></console>"
        k=$((k + 1))
    done
    echo "    <controller type='usb' model='none'/>"
    echo "    <memballoon model='none'/>"
    echo "  </devices>"
    echo "</domain>"
}

# create|define NAME [options]: the XML is kept in $LAB_DIR/xml/ for reading.
guest_from_xml() {
    local verb=$1 name
    shift
    [ $# -ge 1 ] || usage
    name=$1
    load_env
    cmd_xml "$@" >"$LAB_DIR/xml/$name.xml"
    lab_virsh "$verb" "$LAB_DIR/xml/$name.xml" >&2
}

cmd_probe() {
    load_env
    /usr/bin/python3 "$HERE/console-probe.py" "$LAB_URI" "$@"
}

cmd_wait_boot() {
    [ $# -ge 1 ] || usage
    cmd_probe "$1" --timeout "${2:-60}"
}

# ---------------------------------------------------------------- stop

ppid_of() {
    local s
    read -r s 2>/dev/null <"/proc/$1/stat" || return 0
    s=${s##*) }
    s=${s#* }
    echo "${s%% *}"
}

# kill_lab SIGNAL [TINI SUPERVISOR]: signal the lab's processes and wait for
# them, sparing tini, the supervisor and its children (its sleep).
kill_lab() {
    local sig=$1 tini=${2:-} sup=${3:-} p pids=
    for p in $(lab_pids); do
        if [ -n "$sup" ]; then
            case $p in "$tini" | "$sup") continue ;; esac
            [ "$(ppid_of "$p")" = "$sup" ] && continue
        fi
        pids="$pids $p"
    done
    [ -n "$pids" ] || return 0
    note "SIG$sig to lab processes:$pids"
    # shellcheck disable=SC2086
    kill -s "$sig" $pids 2>/dev/null || true
    # shellcheck disable=SC2086
    wait_gone 5 $pids
}

cmd_stop() {
    local dir=${1:-${LAB_DIR:-}} pid tini sup d t0
    t0=$(now)
    [ -n "$dir" ] || die "stop: give LAB_DIR (argument or environment)"
    if [ ! -d "$dir" ]; then
        note "stop: $dir is gone already"
        return 0
    fi
    [ -e "$dir/.vcd-lab" ] || die "stop: $dir is not a lab directory (no .vcd-lab); not touching it"
    LAB_DIR=$(cd "$dir" && pwd -P)
    LAB_URI="qemu:///system?socket=$LAB_DIR/sock/libvirt-sock"

    # Guests first: libvirtd leaves QEMU running when it exits.
    if [ "$(cat "$LAB_DIR/libvirtd.state" 2>/dev/null)" = running ] && virsh_answers; then
        for d in $(lab_virsh list --name 2>/dev/null); do
            lab_virsh destroy "$d" >/dev/null 2>&1 || note "destroy $d failed"
        done
        for d in $(lab_virsh list --all --name --persistent 2>/dev/null); do
            lab_virsh undefine "$d" >/dev/null 2>&1 || note "undefine $d failed"
        done
    fi

    # Then libvirtd, held down so the supervisor does not restart it.
    : >"$LAB_DIR/hold"
    pid=$(cat "$LAB_DIR/libvirtd.pid" 2>/dev/null || true)
    if alive "$pid"; then
        kill -TERM "$pid" 2>/dev/null || true
        wait_gone 15 "$pid" || { kill -KILL "$pid" 2>/dev/null || true; wait_gone 5 "$pid" || true; }
    fi

    # Whatever else is left (QEMU of a guest libvirtd no longer knew about),
    # while tini still lives to reap it.
    tini=$(cat "$LAB_DIR/tini.pid" 2>/dev/null || true)
    sup=$(cat "$LAB_DIR/supervisor.pid" 2>/dev/null || true)
    kill_lab TERM "$tini" "$sup" || kill_lab KILL "$tini" "$sup" || true

    # The supervisor leaves its loop, and tini ends with it.
    : >"$LAB_DIR/stop"
    if alive "$tini" && ! wait_gone 5 "$tini"; then
        note "tini $tini did not exit: killing it"
        kill -KILL "$sup" "$tini" 2>/dev/null || true
    fi
    kill_lab KILL || note "some lab processes would not die"

    rm -rf "$LAB_DIR"
    note "lab $LAB_DIR stopped ($(since "$t0") s)"
}

# ---------------------------------------------------------------- main

[ $# -ge 1 ] || usage
cmd=$1
shift
case $cmd in
deps) cmd_deps ;;
image) cmd_image ;;
start) cmd_start ;;
stop) cmd_stop "$@" ;;
libvirtd-kill) cmd_libvirtd_kill "$@" ;;
libvirtd-start) cmd_libvirtd_start ;;
xml) cmd_xml "$@" ;;
create) guest_from_xml create "$@" ;;
define) guest_from_xml define "$@" ;;
probe) cmd_probe "$@" ;;
wait-boot) cmd_wait_boot "$@" ;;
pids) load_env; lab_pids ;;
-h | --help | help) usage ;;
*) note "unknown subcommand '$cmd'"; usage ;;
esac
