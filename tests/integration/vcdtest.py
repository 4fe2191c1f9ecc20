"""Shared helpers for virtconsoled's Python integration tests.

Used by tests/integration/t-*.py, which drive the real daemon against the
real guests of the test lab (tests/lab/README.md).  Only /usr/bin/python3
and its standard library are needed here (python3-websockets only by the
websockify test).

    TAP        numbered ok / not ok lines, "# " diagnostics, the plan at the
               end, cases that raise recorded as failures, cleanups
    Daemon     a virtconsoled -d on a generated configuration in a temp
               dir: start, wait_log, reload (SIGHUP), rss_kib, stop
    Client     one connection to a guest's unix socket: send, read_until,
               wait_prompt, echo_check, expect_end (the closing notice)
    Lab        the lab's guests through lab.sh and virsh
    VirshConsole   `virsh console` under script(1), which needs a tty

Environment: VCD_BUILD (build directory, default TOP/build), LAB_DIR and
LAB_URI (the lab; without them the test is skipped, or fails under
CI=true), VCD_TEST_LOG_LEVEL (the daemon's log_level, default info),
VCD_WRAPPER (a command the daemon runs under, e.g. valgrind).
"""

import atexit
import contextlib
import datetime
import grp
import json
import os
import re
import secrets
import select
import shlex
import signal
import socket
import stat
import subprocess
import sys
import tempfile
import threading
import time
import traceback

HERE = os.path.dirname(os.path.abspath(__file__))
TOP = os.path.dirname(os.path.dirname(HERE))
LAB_SH = os.path.join(TOP, "tests", "lab", "lab.sh")


def wrapped():
    """Whether the daemon runs under VCD_WRAPPER (e.g. valgrind)."""
    return bool(os.environ.get("VCD_WRAPPER"))


def vcd_binary():
    build = os.environ.get("VCD_BUILD") or os.path.join(TOP, "build")
    if not os.path.isabs(build):
        build = os.path.join(TOP, build)
    return os.path.join(build, "virtconsoled")


# ------------------------------------------------------------ cleanups

_cleanups = []


def defer(fn, *args, **kwargs):
    """Run fn(*args) at exit (last registered, first run)."""
    _cleanups.append((fn, args, kwargs))


def run_cleanups():
    while _cleanups:
        fn, args, kwargs = _cleanups.pop()
        try:
            fn(*args, **kwargs)
        except Exception as e:          # cleanup must go on
            print("# cleanup %s failed: %s" % (getattr(fn, "__name__", fn), e))
    sys.stdout.flush()


def _on_signal(signum, _frame):
    print("# killed by signal %d, cleaning up" % signum)
    sys.exit(128 + signum)


atexit.register(run_cleanups)
signal.signal(signal.SIGTERM, _on_signal)
signal.signal(signal.SIGHUP, _on_signal)


def wait_for(pred, timeout, interval=0.05):
    """Poll pred() until it is true or timeout seconds pass; its last value."""
    deadline = time.monotonic() + timeout
    while True:
        v = pred()
        if v or time.monotonic() >= deadline:
            return v
        time.sleep(interval)


def log_time(line):
    """The wall-clock time (epoch seconds) of a daemon log line, from its
    ISO timestamp; None for a line without one."""
    m = re.match(r"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d+)Z", line)
    if not m:
        return None
    return datetime.datetime.strptime(m.group(1), "%Y-%m-%dT%H:%M:%S.%f").replace(
        tzinfo=datetime.timezone.utc).timestamp()


def free_port():
    """A TCP port of 127.0.0.1 free now (for a server the test starts)."""
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def nonce():
    return secrets.token_hex(3)


def show(data, limit=400):
    """The tail of some bytes, printable, for a diagnostic."""
    data = bytes(data)
    if len(data) > limit:
        return "...(%d bytes) %r" % (len(data), data[-limit:])
    return repr(data)


# ------------------------------------------------------------ TAP

class TAP:
    def __init__(self):
        self.n = 0
        self.failed = 0
        self.t0 = time.monotonic()
        sys.stdout.reconfigure(line_buffering=True)

    def ok(self, cond, desc, *diags):
        self.n += 1
        if cond:
            print("ok %d - %s" % (self.n, desc))
        else:
            self.failed += 1
            print("not ok %d - %s" % (self.n, desc))
            for d in diags:
                if d:
                    self.diag(d)
            self.hang_report()
        return bool(cond)

    def hang_report(self):
        """After a failure: a daemon of this test that runs but does not
        answer its control socket within 5 s is hung; its threads' stacks
        (gdb) go into the output, once per daemon, so that a hang CI
        catches once can be understood from its log alone."""
        for d in _daemons:
            if d.stacks_shown or not d.hung(5):
                continue
            d.stacks_shown = True
            self.diag("daemon %s (pid %s) does not answer its control socket; "
                      "its threads:" % (d.name, d.pid))
            self.diag(d.stacks())

    def diag(self, msg):
        for line in str(msg).splitlines() or [""]:
            print("# " + line)

    def figure(self, name, value, unit):
        """A measured figure, as '# figure: NAME = VALUE UNIT' (what
        docs/RELIABILITY.md quotes)."""
        self.diag("figure: %s = %s %s" % (name, value, unit))

    def elapsed(self):
        return time.monotonic() - self.t0

    @contextlib.contextmanager
    def case(self, name):
        """A group of checks; an exception in it is one failed test."""
        t = time.monotonic()
        self.diag("--- %s" % name)
        try:
            yield
        except Exception as e:
            self.ok(False, "%s: unexpected %s: %s" % (name, type(e).__name__, e),
                    traceback.format_exc())
        self.diag("    (%s: %.1f s)" % (name, time.monotonic() - t))

    def no_state_bug(self):
        """One check over the logs of every daemon this test started: no
        illegal state transition (fsm.c logs each as 'BUG:')."""
        bad = [line for d in _daemons for line in d.log().splitlines()
               if STATE_BUG in line]
        return self.ok(not bad, "no daemon of this test logged an illegal state "
                       "transition (BUG:)", *bad[:5])

    def skip(self, reason):
        """One check that cannot run here: 'ok N # SKIP reason' (a skip,
        never a pass); under CI=true a failure."""
        if os.environ.get("CI") == "true":
            return self.ok(False, "cannot run: " + reason)
        self.n += 1
        print("ok %d # SKIP %s" % (self.n, reason))
        return None

    def skip_all(self, reason):
        if os.environ.get("CI") == "true":
            self.ok(False, "cannot run: " + reason)
            self.done()
        print("1..0 # SKIP " + reason)
        sys.exit(0)

    def done(self):
        if _daemons:
            self.no_state_bug()
        run_cleanups()
        self.diag("runtime %.1f s" % self.elapsed())
        print("1..%d" % self.n)
        sys.exit(0 if self.failed == 0 and self.n > 0 else 1)


# ------------------------------------------------------------ the loop

class StatusProbe(threading.Thread):
    """Asks a daemon's control socket for its status every `interval`
    seconds while it runs: the longest wait for an answer (a refused or
    failed connection counts as an infinite one), how many answers, and
    how many were missing or wrong (no `want` in them)."""

    def __init__(self, control_socket, interval=0.2, want=b"hypervisor:", timeout=300):
        super().__init__(daemon=True)
        self.path = control_socket
        self.interval = interval
        self.want = want
        self.timeout = timeout
        self.worst = 0.0
        self.count = 0
        self.errors = 0
        self.stop_ = False
        self.start()

    def run(self):
        while not self.stop_:
            t0 = time.monotonic()
            s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            s.settimeout(self.timeout)
            try:
                s.connect(self.path)
                s.sendall(b"status\n")
                answer = b""
                while True:
                    b = s.recv(4096)
                    if not b:
                        break
                    answer += b
                waited = time.monotonic() - t0
                if self.want not in answer:
                    self.errors += 1
            except OSError:
                # A daemon that does not answer is not a fast answer.
                waited = float("inf")
                self.errors += 1
            finally:
                s.close()
            self.worst = max(self.worst, waited)
            self.count += 1
            time.sleep(max(0.0, self.interval - (time.monotonic() - t0)))

    def stop(self):
        self.stop_ = True
        self.join(self.timeout + 10)
        return self.worst


# ------------------------------------------------------------ the daemon

SANITIZER_RE = r"ERROR: (Address|Leak)Sanitizer|runtime error:"
STATE_BUG = ": BUG: "           # fsm.c: an illegal transition, refused
_daemons = []                   # every Daemon made, for TAP.done()


def no_sanitizer_report(t, daemons, desc="no ASan/UBSan report"):
    """'No ASan/UBSan report in the logs of daemons': a check only when
    each of them ran as an ASan build (which also has UBSan); in any other
    build nothing could write such a report, so it is a diag line and not
    counted.  None when not counted, else the check's result."""
    daemons = list(daemons)
    if not all(d.asan() for d in daemons):
        t.diag("%s: not counted, the daemon under test is not an ASan build "
               "(no libasan in its maps)" % desc)
        return None
    logs = "".join(d.log() for d in daemons)
    found = [m.group(0) for m in re.finditer(SANITIZER_RE, logs)]
    return t.ok(not found, desc, *["found: %s" % f for f in found[:5]])


class Daemon:
    """A virtconsoled -d -f CONF, its config and log in a temp dir."""

    STARTED_RE = r"virtconsoled \S+ started pid=(\d+)"
    # The daemon's binary: None for vcd_binary() (VCD_BUILD's); the bench
    # sets another build's for its prev-* paths.
    binary = None

    def __init__(self, lab_uri, conf=None, name="vcd", tmpdir=None):
        _daemons.append(self)
        self.name = name
        self.dir = tmpdir or make_tmpdir()
        self.conf_path = os.path.join(self.dir, name + ".conf")
        self.log_path = os.path.join(self.dir, name + ".log")
        self.conf = {
            "uri": lab_uri,
            "pid_file": os.path.join(self.dir, name + ".pid"),
            "socket_dir": os.path.join(self.dir, name + "-sock"),
            "control_socket": os.path.join(self.dir, name + ".control"),
            "attach_socket": os.path.join(self.dir, name + ".attach"),
            "state_dir": os.path.join(self.dir, name + "-state"),
            "log_level": os.environ.get("VCD_TEST_LOG_LEVEL", "info"),
            # Said explicitly: a test daemon holds a console only while
            # its own client uses it, so that two test daemons on one lab
            # never fight over a console (t-capture opts in to always).
            "capture": "attached",
        }
        if conf:
            self.conf.update(conf)
        self.proc = None
        self.rc = None
        self._asan = None       # asan() as last seen while it ran
        self.stacks_shown = False
        defer(self.kill)

    @property
    def socket_dir(self):
        return self.conf["socket_dir"]

    @property
    def pid(self):
        return self.proc.pid if self.proc else None

    def sock(self, guest):
        return os.path.join(self.socket_dir, guest)

    def write_config(self, changes=None):
        """Merge changes (a value None removes the key) and write the file."""
        for k, v in (changes or {}).items():
            if v is None:
                self.conf.pop(k, None)
            else:
                self.conf[k] = v
        lines = []
        for k, vals in self.conf.items():
            # A list: the key once per item (hypervisor, listen...).
            for v in (vals if isinstance(vals, list) else [vals]):
                v = str(v)
                if re.search(r"[\s#\"]", v) and k != "hypervisor":
                    v = '"%s"' % v
                lines.append("%s = %s\n" % (k, v))
        tmp = self.conf_path + ".tmp"
        with open(tmp, "w") as f:
            f.writelines(lines)
        os.rename(tmp, self.conf_path)

    def start(self, wait=True, timeout=20, argv_prefix=None):
        """Start it; with wait, until its 'started' line (True) or its exit
        (False).  argv_prefix wraps the command (e.g. unshare)."""
        self.write_config()
        # The log is appended to: on a restart, the last run's 'started'
        # line is in it already; only one after this point is this run's.
        since = self.mark()
        log = open(self.log_path, "ab")
        argv = [self.binary or vcd_binary(), "-d", "-f", self.conf_path]
        # VCD_WRAPPER runs the daemon under a tool (valgrind, strace...):
        # the daemon itself, inside any argv_prefix.
        if wrapped():
            argv = shlex.split(os.environ["VCD_WRAPPER"]) + argv
            timeout *= 10
        if argv_prefix:
            argv = list(argv_prefix) + argv
        self.proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL,
                                     stdout=log, stderr=subprocess.STDOUT)
        log.close()
        self.rc = None
        if not wait:
            return True
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.find_log(self.STARTED_RE, since):
                # Sockets of the guests known at start are made before it.
                self.asan()     # remembered for after its exit
                return True
            if self.proc.poll() is not None:
                self.rc = self.proc.returncode
                return False
            time.sleep(0.05)
        return False

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def mark(self):
        """A position in the log, for wait_log(since=...)."""
        try:
            return os.path.getsize(self.log_path)
        except OSError:
            return 0

    def log(self, since=0):
        try:
            with open(self.log_path, "rb") as f:
                f.seek(since)
                return f.read().decode("utf-8", "replace")
        except OSError:
            return ""

    def find_log(self, regex, since=0):
        return re.findall(regex, self.log(since), re.M)

    def wait_log(self, regex, timeout=20, count=1, since=0):
        """Wait until regex matches at least count times in the log after
        position since; the list of matches, or None on timeout."""
        deadline = time.monotonic() + timeout
        while True:
            m = self.find_log(regex, since)
            if len(m) >= count:
                return m
            if time.monotonic() >= deadline:
                return None
            time.sleep(0.05)

    def log_tail(self, n=15, since=0):
        lines = self.log(since).splitlines()
        return "\n".join("  " + line for line in lines[-n:])

    def rss_kib(self):
        try:
            with open("/proc/%d/status" % self.pid) as f:
                for line in f:
                    if line.startswith("VmRSS:"):
                        return int(line.split()[1])
        except (OSError, TypeError):
            pass
        return None

    def asan(self):
        """Whether the daemon is a sanitizer build: libasan in its
        /proc/PID/maps while it runs (gcc links libasan dynamically); once
        it has exited, what was seen while it ran (start, stop and
        wait_exit look), else False."""
        if self.alive():
            try:
                with open("/proc/%d/maps" % self.pid) as f:
                    self._asan = "libasan" in f.read()
            except (OSError, TypeError):
                pass
        return bool(self._asan)

    def answers(self, timeout=10):
        """Alive and serving: the process runs and answers
        'virtconsolectl -s CONTROL status --json' with its own pid (a
        refusal or a closed connection is also what a dead daemon gives)."""
        if not self.alive():
            return False
        ctl = os.path.join(os.path.dirname(self.binary or vcd_binary()), "virtconsolectl")
        try:
            r = subprocess.run([ctl, "-s", self.conf["control_socket"], "status", "--json"],
                               capture_output=True, text=True, timeout=timeout,
                               stdin=subprocess.DEVNULL)
            return r.returncode == 0 and json.loads(r.stdout).get("pid") == self.pid
        except (OSError, ValueError, subprocess.TimeoutExpired):
            return False

    def hung(self, timeout=5):
        """Running, yet its control socket takes no status request within
        timeout seconds (a refusal or an error is not a hang)."""
        if not self.alive() or not os.path.exists(self.conf["control_socket"]):
            return False
        ctl = os.path.join(os.path.dirname(self.binary or vcd_binary()), "virtconsolectl")
        try:
            subprocess.run([ctl, "-s", self.conf["control_socket"], "status"],
                           capture_output=True, timeout=timeout,
                           stdin=subprocess.DEVNULL)
        except subprocess.TimeoutExpired:
            return True
        except OSError:
            pass
        return False

    def stacks(self):
        """Every thread's stack, from gdb attached for a moment."""
        try:
            r = subprocess.run(["gdb", "-batch", "-nx", "-p", str(self.pid),
                                "-ex", "thread apply all bt 40"],
                               capture_output=True, text=True, timeout=120,
                               stdin=subprocess.DEVNULL)
        except (OSError, subprocess.TimeoutExpired) as e:
            return "(no stacks: %s)" % e
        return "\n".join(l for l in r.stdout.splitlines()
                         if l.startswith(("#", "Thread")))

    def signal(self, sig):
        if self.alive():
            self.proc.send_signal(sig)

    def reload(self, changes=None, timeout=10):
        """Rewrite the config and SIGHUP; True once it says it reloaded."""
        self.write_config(changes)
        m = self.mark()
        self.signal(signal.SIGHUP)
        return self.wait_log(r"configuration reloaded", timeout, since=m) is not None

    def wait_exit(self, timeout=15):
        if self.proc is None:
            return None
        self.asan()
        if wrapped():
            timeout *= 4        # valgrind's leak check at exit
        try:
            self.rc = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            return None
        return self.rc

    def stop(self, timeout=15):
        """SIGTERM, wait; its exit status, or None if it had to be killed."""
        if self.proc is None:
            return None
        if self.proc.poll() is not None:
            self.rc = self.proc.returncode
            return self.rc
        self.asan()
        self.proc.send_signal(signal.SIGTERM)
        rc = self.wait_exit(timeout)
        if rc is None:
            self.kill()
        return rc

    def kill(self):
        # Under a wrapper, SIGTERM first: valgrind reports leaks only when
        # the daemon exits normally.
        if self.alive() and wrapped():
            self.proc.send_signal(signal.SIGTERM)
            self.wait_exit(15)
        if self.alive():
            self.proc.kill()
            self.proc.wait()

    def children(self):
        """Pids whose parent is the daemon (it should never fork)."""
        kids = []
        for p in os.listdir("/proc"):
            if not p.isdigit():
                continue
            try:
                with open("/proc/%s/stat" % p) as f:
                    s = f.read()
            except OSError:
                continue
            fields = s[s.rindex(")") + 2:].split()
            if int(fields[1]) == self.pid:
                kids.append(int(p))
        return kids


def make_tmpdir(prefix="vcd-pytest."):
    import shutil
    d = tempfile.mkdtemp(prefix=prefix, dir="/tmp")
    defer(shutil.rmtree, d, ignore_errors=True)
    return d


# ------------------------------------------------------------ clients

NOTICE_RE = re.compile(rb"\r\n\[virtconsoled\] (disconnected|refused): ([^\r\n]*)\r\n")


def notice(kind, reason):
    """The exact notice line: kind is 'disconnected' or 'refused'."""
    return b"\r\n[virtconsoled] %s: %s\r\n" % (kind.encode(), reason.encode())


def notices(data):
    return [(k.decode(), r.decode()) for k, r in NOTICE_RE.findall(bytes(data))]


class EndResult:
    def __init__(self, ok, data, closed, elapsed, why):
        self.ok, self.data, self.closed = ok, data, closed
        self.elapsed, self.why = elapsed, why

    def __bool__(self):
        return self.ok


class ShellClient:
    """Typing into a guest's shell, for any client with send(bytes) and
    read_until(pattern, timeout)."""

    ECHO_TAG = "rt"

    def run(self, cmd, expect, timeout=10):
        """Type cmd and Enter; the match of expect (regex bytes) or None."""
        if isinstance(cmd, str):
            cmd = cmd.encode()
        if not self.send(cmd + b"\r"):
            return None
        return self.read_until(expect, timeout)

    def echo_check(self, timeout=10):
        """A round trip through the guest's shell with a fresh nonce."""
        n = nonce()
        tag = self.ECHO_TAG
        return self.run("echo %s-%s-$((6*7))" % (tag, n),
                        b"%s-%s-42" % (tag.encode(), n.encode()),
                        timeout) is not None


class Client(ShellClient):
    """One connection to a guest's unix socket (raw bytes both ways)."""

    def __init__(self, path, timeout=5):
        self.path = path
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(timeout)
        self.sock.connect(path)
        self.sock.setblocking(False)
        self.t_connect = time.monotonic()
        self.buf = bytearray()
        self.pos = 0            # what read_until has consumed
        self.closed = False
        self.t_closed = None
        self.t_data = None      # last time bytes arrived
        self.send_error = None
        defer(self.close)

    def fileno(self):
        return self.sock.fileno()

    def send(self, data):
        """False if the daemon has closed the connection."""
        try:
            self.sock.setblocking(True)
            self.sock.settimeout(5)
            self.sock.sendall(data)
            return True
        except OSError as e:
            self.send_error = e
            return False
        finally:
            if self.sock.fileno() >= 0:
                self.sock.setblocking(False)

    def recv_some(self):
        """What the connection has (b"" at its end), or None for nothing
        yet; subclasses read other things the same way."""
        try:
            return self.sock.recv(1 << 16)
        except BlockingIOError:
            return None
        except OSError:
            return b""

    def fill(self, timeout):
        """Wait up to timeout for bytes; True if some came or it closed."""
        if self.closed:
            return False
        r, _, _ = select.select([self], [], [], max(0.0, timeout))
        if not r:
            return False
        data = self.recv_some()
        if data is None:
            return False
        if not data:
            self.closed = True
            self.t_closed = time.monotonic()
        else:
            self.buf += data
            self.t_data = time.monotonic()
        return True

    def read_until(self, pattern, timeout=10):
        """Read until pattern (regex bytes, or a compiled one) matches what
        was not consumed yet; the match (consumed), or None."""
        if isinstance(pattern, bytes):
            pattern = re.compile(pattern)
        deadline = time.monotonic() + timeout
        while True:
            m = pattern.search(self.buf, self.pos)
            if m:
                self.pos = m.end()
                return m
            left = deadline - time.monotonic()
            if left <= 0 or self.closed:
                return None
            self.fill(left)

    def read_for(self, seconds):
        """Read whatever comes for that long (or until it closes)."""
        deadline = time.monotonic() + seconds
        while not self.closed:
            left = deadline - time.monotonic()
            if left <= 0:
                break
            self.fill(left)
        return bytes(self.buf[self.pos:])

    def read_all_until_close(self, timeout=10):
        """(everything not consumed yet, closed?) once it closes or timeout."""
        deadline = time.monotonic() + timeout
        while not self.closed:
            left = deadline - time.monotonic()
            if left <= 0:
                break
            self.fill(left)
        data = bytes(self.buf[self.pos:])
        self.pos = len(self.buf)
        return data, self.closed

    def pending(self):
        return bytes(self.buf[self.pos:])

    def wait_prompt(self, timeout=30, every=0.5, prompt=rb"# "):
        """Press Enter every `every` seconds until the shell prompt shows
        (keystrokes typed while the guest boots are eaten)."""
        deadline = time.monotonic() + timeout
        next_send = time.monotonic()
        while True:
            now = time.monotonic()
            if now >= deadline or self.closed:
                return False
            if now >= next_send:
                if not self.send(b"\r"):
                    return False
                next_send = now + every
            if self.read_until(prompt, min(next_send, deadline) - now):
                return True

    def expect_end(self, kind, reason, timeout=10, exact=False):
        """Read until the daemon closes; ok if the stream ends with exactly
        that notice and holds no other (exact: and nothing else)."""
        t0 = time.monotonic()
        data, closed = self.read_all_until_close(timeout)
        want = notice(kind, reason)
        seen = notices(data)
        if not closed:
            why = "not closed after %.1f s; got %s" % (timeout, show(data))
        elif not data.endswith(want):
            why = "closed, but the stream does not end with %r: %s" % (want, show(data))
        elif len(seen) != 1:
            why = "more than one notice: %r" % (seen,)
        elif exact and data != want:
            why = "more than the notice: %s" % show(data)
        else:
            why = ""
        elapsed = (self.t_closed or time.monotonic()) - t0
        return EndResult(not why, data, closed, elapsed, why)

    def escape(self, key=b"\x11", timeout=5):
        """End the session with the escape key; True on the right notice."""
        self.send(key)
        return self.expect_end("disconnected", "escape key", timeout).ok

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass
        self.closed = True


def connect_retry(path, timeout=10):
    """A Client once the socket accepts connections."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            return Client(path)
        except OSError:
            if time.monotonic() >= deadline:
                raise
            time.sleep(0.1)


def sock_info(path):
    """(mode bits, gid) of a unix socket, or None if it is not one."""
    try:
        st = os.lstat(path)
    except OSError:
        return None
    if not stat.S_ISSOCK(st.st_mode):
        return None
    return stat.S_IMODE(st.st_mode), st.st_gid


def plant_stale_socket(path):
    """A socket file nobody listens on: bound, then closed, not unlinked."""
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.bind(path)
    s.close()


def group_gid(name):
    try:
        return grp.getgrnam(name).gr_gid
    except KeyError:
        return None


# ------------------------------------------------------------ the lab

class Lab:
    def __init__(self, tap, lab_dir=None, uri=None):
        """The lab of LAB_DIR and LAB_URI, or another one (lab_dir, uri:
        a second private libvirtd that a test started itself)."""
        self.dir = lab_dir or os.environ.get("LAB_DIR")
        self.uri = uri or os.environ.get("LAB_URI")
        if not self.dir or not self.uri:
            tap.skip_all("no lab (LAB_DIR and LAB_URI are not set)")
        self.guests = []
        defer(self.cleanup)

    def env(self):
        e = dict(os.environ)
        e["LAB_DIR"] = self.dir
        e["LAB_URI"] = self.uri
        return e

    def sh(self, *args, timeout=120):
        return subprocess.run([LAB_SH] + list(args), env=self.env(),
                              stdin=subprocess.DEVNULL, capture_output=True,
                              text=True, timeout=timeout)

    def virsh(self, *args, timeout=60):
        return subprocess.run(["virsh", "-q", "-c", self.uri] + list(args),
                              stdin=subprocess.DEVNULL, capture_output=True,
                              text=True, timeout=timeout)

    def _track(self, name):
        if name not in self.guests:
            self.guests.append(name)

    def create(self, name, consoles=0):
        self._track(name)
        return self.sh("create", name, "--consoles", str(consoles))

    def define(self, name, consoles=0):
        self._track(name)
        return self.sh("define", name, "--consoles", str(consoles))

    def create_many(self, specs):
        """Create or define several guests at once: specs is a list of
        (verb, name, consoles).  A list of (name, returncode, output).

        Creates started together answer late: of 25 (t-load) the last took
        20 s here and more than 30 s (lab_virsh's default, then timeout(1)
        killed it) in a CI run on a busier 2-core host, so each virsh is
        given 30 s plus 4 s per guest."""
        procs = []
        env = self.env()
        wait = 30 + 4 * len(specs)
        env["VIRSH_TIMEOUT"] = str(wait)
        for verb, name, consoles in specs:
            self._track(name)
            p = subprocess.Popen([LAB_SH, verb, name, "--consoles", str(consoles)],
                                 env=env, stdin=subprocess.DEVNULL,
                                 stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                 text=True)
            procs.append((name, p))
        out = []
        for name, p in procs:
            o, _ = p.communicate(timeout=wait + 30)
            out.append((name, p.returncode, o))
        return out

    def define_named(self, name, template="ts-template"):
        """Define a guest whose name lab.sh would refuse (spaces, a dot...)."""
        self._track(name)
        r = self.sh("xml", template)
        if r.returncode != 0:
            return r
        xml = r.stdout.replace("<name>%s</name>" % template,
                               "<name>%s</name>" % name)
        path = os.path.join(self.dir, "xml", "odd-%s.xml" % nonce())
        with open(path, "w") as f:
            f.write(xml)
        return self.virsh("define", path)

    def define_serial_logged(self, name, serial_log, xml_dir, quiet=True):
        """Define the lab's guest with QEMU logging its serial port to
        serial_log whoever holds the console (the truth a console's
        history or log is compared against); quiet=False: the kernel's
        messages on too, so that it prints from its first instant."""
        r = self.sh("xml", name)
        if r.returncode != 0:
            return r
        xml = r.stdout.replace(
            "<serial type='pty'><target port='0'/></serial>",
            "<serial type='pty'><log file='%s' append='off'/><target port='0'/></serial>"
            % serial_log)
        if not quiet:
            xml = xml.replace(" quiet", "")
        path = os.path.join(xml_dir, name + ".xml")
        with open(path, "w") as f:
            f.write(xml)
        self._track(name)
        return self.virsh("define", path)

    def start(self, name):
        return self.virsh("start", name)

    def destroy(self, name):
        return self.virsh("destroy", name)

    def reset(self, name):
        return self.virsh("reset", name)

    def undefine(self, name):
        return self.virsh("undefine", name)

    def state(self, name):
        r = self.virsh("domstate", name)
        return r.stdout.strip() if r.returncode == 0 else None

    def exists(self, name):
        return self.virsh("dominfo", name).returncode == 0

    def virt_admin(self, *args):
        """virt-admin on the lab libvirtd's admin socket."""
        sock = os.path.join(self.dir, "sock", "libvirt-admin-sock")
        return subprocess.run(["virt-admin", "-c", "libvirtd:///system?socket=%s" % sock]
                              + list(args), capture_output=True, text=True, timeout=30)

    def libvirtd_clients(self):
        """(count, text) of the lab libvirtd's clients, by `virt-admin
        srv-clients-list libvirtd` on its admin socket; (None, stderr) if
        virt-admin fails."""
        r = self.virt_admin("srv-clients-list", "libvirtd")
        if r.returncode != 0:
            return None, r.stderr
        rows = [l for l in r.stdout.splitlines() if re.match(r"\s*\d+\s", l)]
        return len(rows), r.stdout

    def libvirtd_client_ids(self):
        """The ids of the lab libvirtd's clients (an empty set if virt-admin
        fails)."""
        n, out = self.libvirtd_clients()
        if n is None:
            return set()
        return {int(l.split()[0]) for l in out.splitlines() if re.match(r"\s*\d+\s", l)}

    def libvirtd_kill(self):
        return self.sh("libvirtd-kill")

    def libvirtd_start(self):
        return self.sh("libvirtd-start")

    def remove_leftovers(self, names):
        """Guests of these names from an earlier, crashed run."""
        for n in names:
            if self.exists(n):
                self.destroy(n)
                self.undefine(n)

    def cleanup(self):
        if os.path.exists(os.path.join(self.dir, "hold")):
            self.libvirtd_start()
        for n in reversed(self.guests):
            self.destroy(n)
            self.undefine(n)


class VirshConsole:
    """`virsh console` under script(1), which gives it the tty it needs."""

    def __init__(self, uri, name, force=True):
        cmd = "exec virsh -c %s console %s%s" % (
            shlex.quote(uri), "--force " if force else "", shlex.quote(name))
        # stdin stays an open pipe: script ends its session at EOF.
        self.p = subprocess.Popen(["script", "-qfc", cmd, "/dev/null"],
                                  stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                  stderr=subprocess.STDOUT, start_new_session=True)
        self.out = bytearray()
        os.set_blocking(self.p.stdout.fileno(), False)
        defer(self.kill)

    def read_until(self, pattern, timeout=10):
        pattern = re.compile(pattern)
        deadline = time.monotonic() + timeout
        while True:
            m = pattern.search(self.out)
            if m:
                return m
            left = deadline - time.monotonic()
            if left <= 0:
                return None
            r, _, _ = select.select([self.p.stdout], [], [], left)
            if r:
                try:
                    data = os.read(self.p.stdout.fileno(), 65536)
                except BlockingIOError:
                    continue
                if not data:
                    return pattern.search(self.out)
                self.out += data

    def send(self, data):
        """Type into virsh's terminal."""
        self.p.stdin.write(data)
        self.p.stdin.flush()

    def holds_console(self, timeout=20):
        """True once the guest answers through virsh: its stream is open.

        virsh prints "Escape character" before it opens the stream, so
        that line alone does not prove it holds the console."""
        if not self.read_until(rb"Escape character", timeout):
            return False
        start = len(self.out)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.send(b"\r")
            if self.read_until(rb"# ", 0.5) and b"# " in self.out[start:]:
                return True
        return False

    def alive(self):
        return self.p.poll() is None

    def kill(self):
        """End script and virsh: the process group this object started."""
        if self.p.poll() is None:
            for sig in (signal.SIGTERM, signal.SIGKILL):
                try:
                    os.killpg(self.p.pid, sig)
                except ProcessLookupError:
                    break
                try:
                    self.p.wait(3)
                    break
                except subprocess.TimeoutExpired:
                    continue
        else:
            # virsh may outlive script; the group is still ours to end.
            try:
                os.killpg(self.p.pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
        for f in (self.p.stdin, self.p.stdout):
            try:
                f.close()
            except OSError:
                pass
