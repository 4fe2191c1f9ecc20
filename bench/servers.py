"""The servers under test, each behind one "path" of the benchmark:

    floor      no server: vcdload opens the libvirt console itself
    vcd-unix   virtconsoled, its unix socket per guest
    vcd-ws     virtconsoled, its WebSocket listener (auth=none)
    vcd-wss    virtconsoled, its WebSocket listener over TLS (auth=none)
    old-unix   bench/oldconsole.py, the old design: a socket per guest
               console, one forked process per client
    old-ws     the old design behind Debian's websockify (one, with a
               TokenFile, as the old deployments ran it)
    prev-unix  with --prev-vcd DIR: the previous build of virtconsoled
    prev-ws    (DIR/virtconsoled, bench/run.sh --prev REV), its three
    prev-wss   doors, on the same configuration as the current one's

Each server knows the processes to account for (roots(): the tree of
them is measured) and the address of each console for vcdload.
"""

import os
import signal
import socket
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
TOP = os.path.dirname(HERE)
sys.path.insert(0, os.path.join(TOP, "tests", "integration"))
from vcdtest import wait_for as wait_until  # noqa: E402
from webtest import WebDaemon, make_cert, web_root  # noqa: E402

import procstat  # noqa: E402

PATHS = ["floor", "vcd-unix", "vcd-ws", "vcd-wss", "old-unix", "old-ws"]
# The previous build's doors (only with --prev-vcd): prev-X is vcd-X
# before the change.
PREV_PATHS = ["prev-unix", "prev-ws", "prev-wss"]
# Front doors that serve one console per guest: its first (the serial
# port).  virtconsoled's unix door does; its web door serves every console.
FIRST_CONSOLE_ONLY = {"vcd-unix", "prev-unix"}


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


def stop_tree(roots, timeout=10):
    """SIGTERM the roots, then SIGKILL whatever of their tree is left."""
    pids = procstat.tree(roots)
    for p in roots:
        try:
            os.kill(p, signal.SIGTERM)
        except ProcessLookupError:
            pass
    wait_until(lambda: not procstat.live(procstat.tree(roots)), timeout)
    for p in procstat.live(procstat.tree(pids)):
        try:
            os.kill(p, signal.SIGKILL)
        except ProcessLookupError:
            pass


class Floor:
    name = "floor"

    def __init__(self, uri):
        self.uri = uri

    def start(self):
        pass

    def stop(self):
        pass

    def roots(self):
        return []


class Vcd:
    """One virtconsoled serving the three vcd-* paths (one path is measured
    at a time).  With build (a directory holding a virtconsoled), that
    build's instead (the prev-* paths), on the same configuration and, with
    cert (a (cert, key) pair), the same certificate."""

    def __init__(self, uri, tmpdir, log, build=None, cert=None, name="bench"):
        self.tmp = tmpdir
        self.log = log
        self.build = build
        self.cert, self.key = cert or make_cert(tmpdir)
        self.d = WebDaemon(uri, {
            "listen": ["127.0.0.1:0 auth=none", "127.0.0.1:0 tls auth=none"],
            "tls_cert": self.cert,
            "tls_key": self.key,
            "token_secret_file": os.path.join(tmpdir, "secret"),
            # auth=none needs an explicit Origin rule; the bench clients
            # send no Origin at all.
            "allowed_origins": "http://127.0.0.1",
            "web_root": web_root(),
            "idle_timeout": 0,
            "start_wait": 20,
            "max_clients": 100000,
            "max_clients_per_address": 100000,
            # At info, every session start and end is logged: a deployment
            # logs that too.
            "log_level": "info",
        }, name=name, tmpdir=tmpdir)
        self.what = "virtconsoled"
        if build:
            self.d.binary = os.path.join(build, "virtconsoled")
            self.what = self.d.binary
        self.port = self.tls_port = None
        self.mc_file = None         # count_allocations()
        self.argv_prefix = []       # count_allocations(), run_nice()
        self.nice_seen = None       # run_nice(): its nice value when last started

    @property
    def socket_dir(self):
        return self.d.socket_dir

    @property
    def conf_path(self):
        return self.d.conf_path

    def start(self):
        m = self.d.mark()
        if not self.d.start(timeout=30, argv_prefix=self.argv_prefix or None):
            raise RuntimeError(self.what + " did not start:\n" + self.d.log_tail(20))
        if "nice" in self.argv_prefix:
            with open("/proc/%d/stat" % self.d.pid) as f:
                # The fields after the command's closing parenthesis: the
                # 19th of the line, nice, is the 17th of those.
                self.nice_seen = int(f.read().rsplit(")", 1)[1].split()[16])
            self.log("%s (pid %d) at nice %d" % (self.what, self.d.pid, self.nice_seen))
        self.port = self.d.port(tls=False, auth_none=True, since=m)
        self.tls_port = self.d.port(tls=True, auth_none=True, since=m)
        if not self.port or not self.tls_port:
            raise RuntimeError(self.what + ": no listener ports:\n" + self.d.log_tail(20))

    def wait_sockets(self, guests, timeout=30):
        ok = wait_until(lambda: all(os.path.exists(os.path.join(self.socket_dir, g))
                                    for g in guests), timeout)
        if not ok:
            raise RuntimeError(self.what + " made no socket for every guest")

    def stop(self):
        rc = self.d.stop()
        if rc not in (0, None):
            self.log("%s exited with status %s" % (self.what, rc))
        return rc

    def roots(self):
        return [self.d.pid] if self.d.alive() else []

    def errors(self):
        """Warnings and errors in its log (a bench run should have none
        but the expected ones)."""
        return [ln for ln in self.d.log().splitlines()
                if " error " in ln.lower() or "error:" in ln.lower()]

    def count_allocations(self, so, path):
        """From its next start on, the daemon runs with so
        (bench/malloccount.so) preloaded, its counters in the file path:
        `env LD_PRELOAD=so MALLOCCOUNT_FILE=path` before its command (env
        execs it: the pid is the daemon's).  mc_file: that file."""
        self.mc_file = path
        self.argv_prefix += ["env", "LD_PRELOAD=" + so, "MALLOCCOUNT_FILE=" + path]

    def run_nice(self, n):
        """From its next start on, the daemon (every thread of it) runs at
        nice n: `nice -n N` first in its command (nice execs it too)."""
        self.argv_prefix[:0] = ["nice", "-n", str(int(n))]


class Proc:
    """A server process of ours, its log in a file."""

    proc = None
    log_path = None

    def log_tail(self, n=20):
        try:
            with open(self.log_path, errors="replace") as f:
                return "".join(f.readlines()[-n:])
        except OSError:
            return ""

    def stop(self):
        """SIGTERM, and whatever it forked goes too."""
        if self.proc is None:
            return
        stop_tree([self.proc.pid])
        try:
            self.proc.wait(5)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.proc = None

    def roots(self):
        return [self.proc.pid] if self.proc and self.proc.poll() is None else []


class Old(Proc):
    """bench/oldconsole.py, the old design: a unix socket per guest (its
    first console), and with --all-consoles one per console (GUEST:ALIAS),
    so that it can serve as many sessions as the other paths."""

    def __init__(self, uri, tmpdir, log, script=None):
        self.uri = uri
        self.dir = os.path.join(tmpdir, "old-sock")
        self.log_path = os.path.join(tmpdir, "oldconsole.log")
        self.script = script or os.path.join(HERE, "oldconsole.py")
        self.log = log

    def start(self, guests):
        os.makedirs(self.dir, exist_ok=True)
        logf = open(self.log_path, "ab")
        self.proc = subprocess.Popen(
            ["/usr/bin/python3", self.script, "--socket-dir", self.dir,
             "--uri", self.uri, "--all-consoles"], stdin=subprocess.DEVNULL,
            stdout=logf, stderr=subprocess.STDOUT)
        logf.close()
        ok = wait_until(lambda: self.proc.poll() is not None or all(
            os.path.exists(self.sock(g, "console1")) for g in guests), 60)
        if not ok or self.proc.poll() is not None:
            raise RuntimeError("oldconsole.py did not make its sockets:\n" + self.log_tail())

    def sock(self, guest, alias="serial0"):
        if alias == "serial0":
            return os.path.join(self.dir, guest)
        return os.path.join(self.dir, "%s:%s" % (guest, alias))


class Websockify(Proc):
    """Debian's websockify in front of the old design's sockets, as the old
    deployments ran it: one websockify, a TokenFile with a line
    `TOKEN: unix_socket:PATH` per console; it forks per connection."""

    def __init__(self, old, tmpdir, log):
        self.old = old
        self.log_path = os.path.join(tmpdir, "websockify.log")
        self.token_file = os.path.join(tmpdir, "websockify.tokens")
        self.log = log
        self.port = None

    @staticmethod
    def token(guest, alias):
        return "%s-%s" % (guest, alias)

    def start(self, guests, consoles):
        from guests import aliases
        # websockify's TokenFile takes the path after the last ':', and
        # oldconsole.py names a console's socket GUEST:ALIAS: a symlink
        # without the colon (connect() follows it).
        links = os.path.join(os.path.dirname(self.token_file), "wsfy-links")
        os.makedirs(links, exist_ok=True)
        with open(self.token_file, "w") as f:
            for g in guests:
                for a in aliases(consoles):
                    path = self.old.sock(g, a)
                    if ":" in path:
                        link = os.path.join(links, self.token(g, a))
                        if not os.path.lexists(link):
                            os.symlink(path, link)
                        path = link
                    f.write("%s: unix_socket:%s\n" % (self.token(g, a), path))
        self.port = free_port()
        logf = open(self.log_path, "ab")
        self.proc = subprocess.Popen(
            ["websockify", "--token-plugin", "TokenFile", "--token-source",
             self.token_file, "127.0.0.1:%d" % self.port],
            stdin=subprocess.DEVNULL, stdout=logf, stderr=subprocess.STDOUT)
        logf.close()

        def listening():
            if self.proc.poll() is not None:
                raise RuntimeError("websockify exited:\n" + self.log_tail())
            try:
                socket.create_connection(("127.0.0.1", self.port), 1).close()
                return True
            except OSError:
                return False
        if not wait_until(listening, 60, 0.2):
            raise RuntimeError("websockify does not listen")

    def url(self, guest, alias):
        return "ws://127.0.0.1:%d/?token=%s" % (self.port, self.token(guest, alias))
