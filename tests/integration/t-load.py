#!/usr/bin/python3
"""Load (issue 6, item 3): hundreds of live consoles in one daemon, and a
flood of connections that never authenticate at its web front door.

1. 25 guests with a serial port and 8 virtio consoles each: 225 sessions in
   ONE daemon process.  A unix socket serves only its guest's first console
   (serial0), so the virtio consoles (console1..8) are reached over
   WebSocket; serial0 goes through the unix socket for even guests and over
   WebSocket for odd ones (the same console through both doors): 13 unix
   and 212 WebSocket clients, multiplexed in this one process with
   selectors.  They attach at once and all echo for a fixed window: each
   types `echo TAG-N-$((6*7))` and waits for `TAG-N-42`.  Every session
   attaches, none gets a notice, no echo is lost or lands in another
   session's stream, none is starved, and the daemon stays one process
   without children.  Then 24 of the guests are destroyed at once under
   their 216 sessions: each ends with "guest stopped", and libvirtd keeps
   answering (it deadlocked here once: see src/session.c, parked streams).
   Figures: attach time, round trips, per session rounds, the daemon's RSS
   and CPU.

2. 2,000 TCP connections (silent, half a request head, half a head with
   a bad token) from 127.0.0.2 and up, held open, plus bursts of complete
   requests with bad tokens.  Meanwhile a client on 127.0.0.1 with a valid
   token attaches over WebSocket and gets an echo; its attach time (connect
   to first echo) with the flood is compared with the same measured before
   and after it, in this run.  Once the flood is gone the daemon's
   descriptors return to where they were.

VCD_SOAK=1: a 240 s echo window, a 10,000-connection flood, more samples
(about 7 minutes, within tests/run.sh's 600 s).
"""

import base64
import concurrent.futures
import os
import re
import resource
import selectors
import statistics
import subprocess
import struct
import sys
import time
import tty

sys.dont_write_bytecode = True     # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from vcdtest import (TAP, Client, Lab, make_tmpdir, no_sanitizer_report, nonce, show,  # noqa: E402
                     vcd_binary, wait_for)
from webtest import (OP_BINARY, OP_CLOSE, RawWS, Response, WebDaemon, connect, http,  # noqa: E402
                     recv_until_close, request_bytes, web_root)

t = TAP()
lab = Lab(t)
if not os.access(vcd_binary(), os.X_OK):
    t.skip_all("no daemon binary at %s" % vcd_binary())

SOAK = os.environ.get("VCD_SOAK") == "1"
NGUESTS = 25
NVIRTIO = 8                         # console1..8: the guest's hvc0..7
WINDOW = 240 if SOAK else 30        # seconds of echoing
FLOOD = 10000 if SOAK else 2000     # connections held open
PER_ADDR = 20                       # flood connections per source address
BURST = 20                          # complete bad-token requests per sample
SAMPLES = 15 if SOAK else 7         # legitimate attaches per phase
# No session may do fewer round trips than this share of the median: see
# the "no session starved" check for why.
FAIR = 0.25
# The attach time with the flood over the one without: see that check.
RATIO_MAX = 5.0
RTT_LOST = 60                       # an echo not back by then is lost

GUESTS = ["tl-g%02d" % i for i in range(NGUESTS)]
G0 = GUESTS[0]                      # the flood part's guest
lab.remove_leftovers(GUESTS)
TMP = make_tmpdir("vcd-load.")
CLK = os.sysconf("SC_CLK_TCK")


# ---------------------------------------------------------------- descriptors

# The flood needs a descriptor per connection here and in the daemon, which
# inherits this process's hard limit (it raises its soft limit to it).
NEED = FLOOD + 2048
soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
if hard != resource.RLIM_INFINITY and hard < NEED:
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (NEED, NEED))
    except (ValueError, OSError) as e:
        t.skip_all("RLIMIT_NOFILE hard limit %d < %d and cannot be raised: %s"
                   % (hard, NEED, e))
elif soft != resource.RLIM_INFINITY and soft < NEED:
    resource.setrlimit(resource.RLIMIT_NOFILE, (NEED, hard))


def proc_cpu(pid):
    """utime + stime of a process, in seconds."""
    with open("/proc/%d/stat" % pid) as f:
        s = f.read()
    fields = s[s.rindex(")") + 2:].split()
    return (int(fields[11]) + int(fields[12])) / CLK


FDS_BASE_MAX = 64          # the daemon's descriptors with no session


def fd_count(pid):
    return len(os.listdir("/proc/%d/fd" % pid))


def settled_fd_count(pid, quiet=0.5, timeout=10):
    """The descriptor count once it has not changed for `quiet` seconds: a
    client that just left may still be closing in the daemon."""
    end = time.monotonic() + timeout
    n, since = fd_count(pid), time.monotonic()
    while time.monotonic() < end:
        time.sleep(0.05)
        m = fd_count(pid)
        if m != n:
            n, since = m, time.monotonic()
        elif time.monotonic() - since >= quiet:
            break
    return n


def nofile(pid):
    """The soft open files limit of a process."""
    with open("/proc/%d/limits" % pid) as f:
        for line in f:
            if line.startswith("Max open files"):
                v = line.split()[3]
                return float("inf") if v == "unlimited" else int(v)
    return None


def pct(xs, p):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(p / 100.0 * (len(xs) - 1))))] if xs else None


def ms(x):
    return "%.0f" % (x * 1000) if x is not None else "n/a"


def same_daemon(d, pid0):
    """Alive, the pid it started with (also in its pid file), no children."""
    try:
        with open(d.conf["pid_file"]) as f:
            filed = int(f.read().split()[0])
    except (OSError, ValueError, IndexError):
        filed = None
    kids = d.children() if d.alive() else None
    return d.alive() and d.pid == pid0 and filed == pid0 and kids == [], \
        "alive %s, pid %s (started %s), pid file %s, children %s" % (
            d.alive(), d.pid, pid0, filed, kids)


# ---------------------------------------------------------------- sessions

class MuxWS(RawWS):
    """A RawWS whose handshake answer is read by the selector loop: the
    constructor connects and sends the request, nothing more."""

    def _read_head(self, timeout):
        return None


class Echo:
    """One console session driven by the selector loop.

    Phases: "head" (WebSocket: waiting for 101), "prompt" (Enter every
    second until the shell's prompt: QEMU polls a disconnected pty once a
    second, and keystrokes before that wait), "echo" (a round trip in
    flight), "idle" (none in flight), "bye" (escape key sent, waiting for
    the notice and the end), "done", "failed"."""

    MARK_RE = re.compile(rb"L(\d+)x([0-9a-f]{6})")

    def __init__(self, sid, guest, alias):
        self.sid, self.guest, self.alias = sid, guest, alias
        self.name = "%s/%s" % (guest, alias)
        self.own = (b"%d" % sid, nonce().encode())
        self.mark = b"L%sx%s" % self.own
        self.phase = "prompt"
        self.pos = 0
        self.seq = 0
        self.rounds = 0
        self.rtts = []
        self.errors = []
        self.t_start = time.monotonic()
        self.t_conn = None          # connected (unix) or 101 (WebSocket)
        self.t_ready = None         # first echo back
        self.t_sent = None
        self.next_enter = 0
        self.want = None
        self.eof = False

    def fail(self, why):
        if self.phase not in ("done", "failed"):
            self.errors.append(why)
            self.phase = "failed"

    def type_echo(self):
        self.seq += 1
        tag = b"%s-%d" % (self.mark, self.seq)
        self.want = tag + b"-42"
        self.t_sent = time.monotonic()
        self.phase = "echo"
        if not self.send(b"echo %s-$((6*7))\r" % tag):
            self.fail("send failed")

    def step(self, now, looping):
        """Act on what came in and on the clock.  looping: start a new
        round trip when one is done."""
        term = self.term()
        if self.phase not in ("bye", "done") and b"[virtconsoled]" in term:
            self.fail("notice: %s" % show(term[-200:]))
        if self.phase == "prompt":
            if term.find(b"# ", self.pos) >= 0:
                self.pos = len(term)
                self.type_echo()
            elif now >= self.next_enter:
                self.next_enter = now + 1.0
                if not self.send(b"\r"):
                    self.fail("send failed")
        if self.phase == "echo":
            i = term.find(self.want, self.pos)
            if i >= 0:
                self.pos = i + len(self.want)
                rtt = now - self.t_sent
                if self.t_ready is None:
                    self.t_ready = now
                else:
                    self.rtts.append(rtt)
                    self.rounds += 1
                self.phase = "idle"
            elif now - self.t_sent > RTT_LOST:
                self.fail("echo %d lost (%d s)" % (self.seq, RTT_LOST))
        if self.phase == "idle" and looping:
            self.type_echo()
        if self.eof and self.phase not in ("bye", "done"):
            self.fail("closed by the daemon: %s" % show(term[-200:]))

    def expect_end(self, reason, code):
        """From now on, the session must end with this notice (and on a
        WebSocket this close frame)."""
        self.phase = "bye"
        self.bye_from = len(self.term())
        self.end_want = (reason.encode(), code)

    def bye(self):
        self.expect_end("escape key", 1000)
        if not self.send(b"\x11"):
            self.fail("send failed")

    def marks(self):
        """Every session mark seen in this session's stream."""
        return set(self.MARK_RE.findall(bytes(self.term())))

    def recv(self, sock):
        """What the socket has (b"" at its end), or None for nothing yet."""
        try:
            data = sock.recv(65536)
        except BlockingIOError:
            return None
        except OSError:
            data = b""
        if not data:
            self.eof = True
        return data

    def end(self, data, close_frame):
        """The session ended: check its last words against expect_end."""
        reason, code = self.end_want
        want = b"\r\n[virtconsoled] disconnected: %s\r\n" % reason
        if not bytes(data).endswith(want) or data.count(b"[virtconsoled]") != 1:
            self.fail("end: %s close %r" % (show(data[-200:]), close_frame))
        elif close_frame is not None and close_frame != (code, reason.decode()):
            self.fail("close frame %r" % (close_frame,))
        else:
            self.phase = "done"


class UnixEcho(Echo):
    """A client of a guest's unix socket: its serial0."""

    def __init__(self, sid, guest, path):
        super().__init__(sid, guest, "serial0")
        self.c = Client(path)
        self.t_conn = time.monotonic()

    def fileno(self):
        return self.c.fileno()

    def term(self):
        return self.c.buf

    def send(self, data):
        return self.c.send(data)

    def readable(self, now):
        data = self.recv(self.c.sock)
        if data is None:
            return
        self.c.buf += data
        self.c.closed = self.eof
        if self.phase == "bye" and self.eof:
            self.end(self.c.buf[self.bye_from:], None)

    def close(self):
        self.c.close()


class WSEcho(Echo):
    """A WebSocket client of any console, its handshake sent at once and
    answered in the selector loop."""

    def __init__(self, sid, guest, alias, port, headers, source):
        super().__init__(sid, guest, alias)
        self.phase = "head"
        self.ws = MuxWS(port, "/console/%s/%s" % (guest, alias), headers=headers,
                        source=source, timeout=30)
        self.ws.sock.setblocking(False)
        self.ws.answer_pings = True

    def fileno(self):
        return self.ws.sock.fileno()

    def term(self):
        return self.ws.data

    def send(self, data):
        return self.ws.send_frame(OP_BINARY, data)

    def readable(self, now):
        data = self.recv(self.ws.sock)
        if data is None:
            return
        self.ws.closed = self.eof
        self.ws.buf += data
        if self.phase == "head":
            head, sep, rest = bytes(self.ws.buf).partition(b"\r\n\r\n")
            if not sep:
                if self.eof:
                    self.fail("closed before the handshake answer: %s" % show(head))
                return
            self.ws.response = Response(head + sep)
            if self.ws.response.status != 101:
                self.fail("handshake: %s" % self.ws.response.raw[:200])
                return
            self.ws.buf = bytearray(rest)
            self.t_conn = now
            self.phase = "prompt"
        # Whole frames only; pings are answered (answer_pings).
        while self.ws.read_frame(0) is not None:
            pass
        if self.phase == "bye" and (self.eof or self.ws.close_frame):
            self.end(self.ws.data[self.bye_from:], self.ws.close_frame or (None, None))
            if self.ws.close_frame and not self.ws.closed:
                self.ws.send_frame(OP_CLOSE, struct.pack("!H", self.ws.close_frame[0]))

    def close(self):
        self.ws.close()


def drive(sessions, until, deadline, looping=lambda: False):
    """Run the selector loop until until() or the deadline; True if until()."""
    sel = selectors.DefaultSelector()
    for s in sessions:
        if s.phase not in ("done", "failed"):
            sel.register(s.fileno(), selectors.EVENT_READ, s)
    try:
        while True:
            now = time.monotonic()
            for s in sessions:
                if s.phase not in ("head", "done", "failed"):
                    s.step(now, looping())
            if until():
                return True
            if now >= deadline:
                return False
            for key, _ in sel.select(0.1):
                s = key.data
                if s.phase in ("done", "failed"):
                    continue
                s.readable(time.monotonic())
                if s.phase in ("done", "failed"):
                    sel.unregister(key.fd)
    finally:
        sel.close()


def phase_in(sessions, *phases):
    return all(s.phase in phases for s in sessions)


def failures(sessions, limit=20):
    bad = [s for s in sessions if s.errors]
    return ["%s (session %d): %s" % (s.name, s.sid, "; ".join(s.errors))
            for s in bad[:limit]] + (["... and %d more" % (len(bad) - limit)]
                                      if len(bad) > limit else [])


def say_bye(sessions, timeout=30):
    """Escape key to every live session; True if all ended with the notice."""
    live = [s for s in sessions if s.phase not in ("done", "failed")]
    for s in live:
        s.bye()
    return wait_end(live, timeout)


def wait_end(sessions, timeout):
    """Run until every session ended; True if all as expected."""
    return drive(sessions, lambda: phase_in(sessions, "done", "failed"),
                 time.monotonic() + timeout) and phase_in(sessions, "done")


def guest_shells(guest):
    """What the guest says about its console shells, through its serial
    console (a diagnostic for consoles that never answer)."""
    c = UnixEcho(999, guest, d.sock(guest))
    ok = drive([c], lambda: c.t_ready or c.errors, time.monotonic() + 60)
    if not ok or not c.t_ready:
        return "%s: serial0 does not answer either: %s" % (guest, show(c.term()))
    c.send(b"ps | grep hvc | grep -v grep; echo SHELLS-$((6*7))\r")
    drive([c], lambda: b"SHELLS-42" in c.term()[c.pos:], time.monotonic() + 30)
    out = bytes(c.term()[c.pos:]).decode("utf-8", "replace")
    c.close()
    return "%s: %s" % (guest, out[-1500:])


# ---------------------------------------------------------------- the daemon

d = WebDaemon(lab.uri, {
    "listen": ["127.0.0.1:0"],
    "token_secret_file": os.path.join(TMP, "secret"),
    "web_root": web_root(),
    # What 225 sessions and the flood need, set explicitly: the unix door
    # has no client limit; the web door allows max_clients at once (default
    # 1024) and max_clients_per_address (default 32) from one address; at
    # most three quarters of max_clients may be connections not upgraded
    # (the flood and the clients attaching during it).
    "max_clients": FLOOD * 4 // 3 + 1024,
    "max_clients_per_address": 32,
    "policy": "refuse",             # a session given twice would be refused
    "idle_timeout": 0,              # sessions idle between phases
    "handshake_timeout": 600,       # the flood stays while we measure
    "ping_interval": 10,            # pings flow (and are answered) under load
    "start_wait": 30,
}, name="load", tmpdir=TMP)

with t.case("setup"):
    ok = d.start()
    t.ok(ok, "the daemon starts (max_clients %d, max_clients_per_address 32)"
         % (FLOOD + 1024), d.log_tail())
    if not ok:
        t.done()
    P = d.port()
    PID = d.pid
    lim = nofile(PID)
    t.ok(lim is not None and lim >= NEED, "its open files limit (%s) is at least %d" % (lim, NEED))
    rss_empty = d.rss_kib()
    LIBVIRTD_LOG = os.path.join(lab.dir, "libvirtd.log")
    libvirtd_log0 = os.path.getsize(LIBVIRTD_LOG) if os.path.exists(LIBVIRTD_LOG) else 0
    t0 = time.monotonic()
    res = lab.create_many([("create", g, NVIRTIO) for g in GUESTS])
    bad = ["%s: %s" % (n, o) for n, rc, o in res if rc != 0]
    t.ok(not bad, "%d guests with a serial port and %d virtio consoles created in %.1f s"
         % (NGUESTS, NVIRTIO, time.monotonic() - t0), *bad)
    if bad:
        t.done()
    ok = wait_for(lambda: all(os.path.exists(d.sock(g)) for g in GUESTS), 30)
    t.ok(ok, "their %d unix sockets appear" % NGUESTS)

    # Boot: probe each guest's serial port through its unix socket until
    # its shell echoes (the serial shell starts after the virtio ones).
    probes = [UnixEcho(i, g, d.sock(g)) for i, g in enumerate(GUESTS)]
    ok = drive(probes, lambda: all(s.t_ready or s.errors for s in probes),
               time.monotonic() + 300)
    t_boot = time.monotonic() - t0
    t.ok(ok and all(s.t_ready for s in probes),
         "all %d guests answer on serial0 %.1f s after their creation" % (NGUESTS, t_boot),
         *failures(probes) + ["not booted: %s" % ", ".join(s.guest for s in probes if not s.t_ready)])
    t.figure("load boot of %d guests" % NGUESTS, "%.1f" % t_boot, "s")
    ok = say_bye(probes)
    t.ok(ok, "the probes leave with the escape key", *failures(probes))
    if not all(s.t_ready for s in probes):
        t.done()
    time.sleep(1)
    rss_guests = d.rss_kib()
    # Once the probes' guest connections have closed (on their threads).
    fds_guests = wait_for(lambda: (lambda n: n if n <= FDS_BASE_MAX else None)(
        settled_fd_count(PID)), 20) or settled_fd_count(PID)


# ---------------------------------------------------------------- 1. 225 sessions

with t.case("%d sessions echo at once" % (NGUESTS * (1 + NVIRTIO))):
    # One token for every guest, turned into a session cookie, opens all the
    # WebSockets; they come from 127.1.0.N (N = the guest's number + 1),
    # 8 per address, under max_clients_per_address.
    r = http(P, "/?token=" + d.token())
    m = re.match(r"vcd_session=([^;]+)", r.header("Set-Cookie") or "")
    t.ok(r.status == 302 and m, "a token for all guests gives a session cookie", repr(r))
    hdrs = {"Cookie": "vcd_session=" + (m.group(1) if m else ""),
            "Origin": "http://127.0.0.1:%d" % P}
    cpu0 = proc_cpu(PID)
    t0 = time.monotonic()
    sessions = []
    for i, g in enumerate(GUESTS):
        # serial0 through the unix socket for even guests, over WebSocket
        # for odd ones: the same console through both doors.
        if i % 2 == 0:
            sessions.append(UnixEcho(len(sessions), g, d.sock(g)))
        else:
            sessions.append(WSEcho(len(sessions), g, "serial0", P, hdrs, "127.1.0.%d" % (i + 1)))
        for k in range(1, NVIRTIO + 1):
            sessions.append(WSEcho(len(sessions), g, "console%d" % k, P, hdrs,
                                   "127.1.0.%d" % (i + 1)))
    NUNIX = sum(isinstance(s, UnixEcho) for s in sessions)
    t_opened = time.monotonic() - t0
    N = len(sessions)
    drive(sessions, lambda: all(s.t_ready or s.errors for s in sessions),
          time.monotonic() + 180)
    ready = [s for s in sessions if s.t_ready]
    t_conn = max(s.t_conn or float("inf") for s in sessions) - t0
    t_all = max(s.t_ready or float("inf") for s in sessions) - t0
    t.ok(len(ready) == N, "all %d sessions (%d unix, %d WebSocket) attach and echo: connected in %.1f s, "
         "last first echo after %.1f s" % (N, NUNIX, N - NUNIX, t_conn, t_all),
         *failures(sessions) + ["no first echo: %s" % ", ".join(s.name for s in sessions
                                                                 if not s.t_ready and not s.errors)])
    t.figure("load sessions", N, "")
    t.diag("%d connections opened in %.1f s" % (N, t_opened))
    t.figure("load all connected (unix connect, WebSocket 101)", "%.1f" % t_conn, "s")
    t.figure("load all attached (first connect to the last first echo)", "%.1f" % t_all, "s")
    n_attached = len(d.find_log(r"session \d+ guest=tl-g\d+ dev=\S+: OPENING -> ATTACHED"))
    t.ok(n_attached >= N + NGUESTS and not d.find_log(r"refused|too many clients"),
         "the daemon logged %d ATTACHED transitions (%d probes + %d) and no refusal"
         % (n_attached, NGUESTS, N), d.log_tail())
    fds_sessions = fd_count(PID)
    t.figure("load daemon descriptors with %d sessions" % N, fds_sessions, "")
    # Each session holds its client's descriptor; each guest with an open
    # console its libvirt connection (docs/ARCHITECTURE.md, "Costs": the
    # socket, and libvirt's wakeup pipe).
    per_guest = (fds_sessions - fds_guests - N) / NGUESTS
    t.figure("load daemon descriptors per guest connection", "%.1f" % per_guest, "")
    t.ok(per_guest <= 3, "descriptors: %d with %d sessions on %d guests, %d before: %.1f per guest "
         "connection beside the clients' (bound 3)" % (fds_sessions, N, NGUESTS, fds_guests, per_guest))
    nclients, out = lab.libvirtd_clients()
    t.ok(nclients == NGUESTS + 1, "libvirtd has %s clients of the daemon: one per guest with an open "
         "console (%d) and the hypervisor's own" % (nclients, NGUESTS), out)
    if len(ready) != N:
        for s in [s for s in sessions if not s.t_ready][:10]:
            t.diag("%s got %s" % (s.name, show(s.term())))
        say_bye(sessions)
        for g in sorted({s.guest for s in sessions if not s.t_ready})[:5]:
            t.diag(guest_shells(g))
        raise RuntimeError("not every session attached")

    # The window: every session echoes as fast as its shell answers.
    cpu1 = proc_cpu(PID)
    w0 = time.monotonic()
    w_end = w0 + WINDOW
    ok = drive(sessions, lambda: time.monotonic() >= w_end and phase_in(sessions, "idle", "failed"),
               w_end + RTT_LOST + 10, looping=lambda: time.monotonic() < w_end)
    w1 = time.monotonic()
    cpu_win = proc_cpu(PID) - cpu1
    rss_sessions = d.rss_kib()
    bad = failures(sessions)
    t.ok(ok and not bad, "%.0f s window: no session lost an echo, got a notice or was closed" % WINDOW, *bad)
    rounds = sorted(s.rounds for s in sessions)
    rtts = [x for s in sessions for x in s.rtts]
    total = sum(rounds)
    med = statistics.median(rounds)
    t.ok(total > 0 and all(r > 0 for r in rounds),
         "every session completed round trips: %d in all, %.1f per second" % (total, total / (w1 - w0)))
    t.figure("load round trips in %d s, all sessions" % WINDOW, total, "")
    t.figure("load echo round trip p50", ms(pct(rtts, 50)), "ms")
    t.figure("load echo round trip p99", ms(pct(rtts, 99)), "ms")
    t.figure("load echo round trip max", ms(max(rtts) if rtts else None), "ms")
    t.figure("load rounds per session min", rounds[0], "")
    t.figure("load rounds per session median", med, "")
    t.figure("load rounds per session max", rounds[-1], "")
    classes = {
        "serial0 unix": [s for s in sessions if s.alias == "serial0" and not isinstance(s, WSEcho)],
        "serial0 WebSocket": [s for s in sessions if s.alias == "serial0" and isinstance(s, WSEcho)],
        "virtio WebSocket": [s for s in sessions if s.alias != "serial0"],
    }
    for name, group in classes.items():
        r = [s.rounds for s in group]
        t.figure("load rounds per session, %s, min/median/max" % name,
               "%d/%g/%d" % (min(r), statistics.median(r), max(r)), "")
    per_guest = {}
    for s in sessions:
        per_guest[s.guest] = per_guest.get(s.guest, 0) + s.rounds
    t.diag("rounds per guest min/median/max %d/%g/%d" % (
        min(per_guest.values()), statistics.median(per_guest.values()), max(per_guest.values())))
    # Fairness.  The daemon serves every session from one loop, in turn, with
    # a per-event budget, whatever its door.  What differs is the guest side:
    # in each guest one vCPU runs nine shells, and a serial shell answers
    # several times as many echoes as a virtio one (in trial runs, 20-40 per
    # 30 s against 5-6, through either door), while 25 TCG guests (and
    # whatever else runs here) get uneven host CPU.  So sessions are
    # compared with the median of their console type.  In trial runs on a
    # loaded machine the slowest session of a type did 0.5-0.85 x its
    # median; a session the daemon forgets (an event not re-armed, a stream
    # left paused) does a handful or none.  A quarter of the median
    # separates the two (it is coarse with 5-6 rounds: VCD_SOAK=1 gives ten
    # times as many).
    slow, worst = [], []
    for kind in ("serial0", "virtio"):
        group = [s for s in sessions if (s.alias == "serial0") == (kind == "serial0")]
        m = statistics.median(s.rounds for s in group)
        low = min(group, key=lambda s: s.rounds)
        worst.append("%s %d of median %g" % (kind, low.rounds, m))
        slow += [s for s in group if s.rounds < FAIR * m]
    t.ok(not slow, "no session starved: in each console type the fewest round trips are at least %.2f x "
         "the type's median (%s)" % (FAIR, "; ".join(worst)),
         *["%s: %d rounds" % (s.name, s.rounds) for s in slow[:20]])
    leaks = ["%s: %r" % (s.name, sorted(s.marks())) for s in sessions
             if s.marks() != {s.own}]
    t.ok(not leaks, "every session's stream holds its own echoes only (no cross-talk)", *leaks[:10])
    ok, why = same_daemon(d, PID)
    t.ok(ok, "one daemon process, no children, during the load", why)
    # libvirtd counts every stream packet it has not written to its console
    # yet against max_client_requests (default 5) of the connection; at the
    # limit it stops reading the daemon's connection, every console at once.
    try:
        with open(LIBVIRTD_LOG, errors="replace") as f:
            f.seek(libvirtd_log0)
            hit = [line for line in f if "max requests limit" in line]
    except OSError:
        hit = []
    t.diag("libvirtd %s its max_client_requests limit on the daemon's connection during the load%s"
           % ("hit" if hit else "did not log", (": " + hit[0].strip()) if hit else ""))
    t.figure("load daemon CPU during the %d s window" % WINDOW, "%.2f" % cpu_win, "s")
    t.figure("load daemon CPU share during the window", "%.1f" % (100 * cpu_win / (w1 - w0)), "% of a core")
    t.figure("load daemon CPU per round trip", "%.0f" % (1e6 * cpu_win / max(total, 1)), "us")
    t.figure("load daemon CPU from the first connect to the window", "%.2f" % (cpu1 - cpu0), "s")
    t.figure("load daemon RSS before any guest", rss_empty, "KiB")
    t.figure("load daemon RSS with %d guests, 0 sessions" % NGUESTS, rss_guests, "KiB")
    t.figure("load daemon RSS with %d sessions" % N, rss_sessions, "KiB")
    # Bounds from measured values (docs/RELIABILITY.md): about 15-20 KiB
    # per session (each holds a libvirt stream and two buffers) and 3 % of
    # a core for 225 echoing sessions; the bounds are 4 and 8 times that.
    per_session = (rss_sessions - rss_guests) / N if rss_sessions and rss_guests else None
    t.ok(per_session is not None and per_session <= 64,
         "daemon RSS per session: %s KiB ((%s - %s) / %d; bound 64 KiB)"
         % (per_session and "%.1f" % per_session, rss_sessions, rss_guests, N))
    share = 100 * cpu_win / (w1 - w0)
    t.ok(share <= 25, "daemon CPU with %d echoing sessions: %.1f %% of a core (bound 25 %%)" % (N, share))
    pings = sum(s.ws.pings for s in sessions if isinstance(s, WSEcho))
    t.figure("load WebSocket pings answered", pings, "")
    t.ok(pings >= N - NGUESTS, "the daemon pinged the WebSockets under load (%d pings, answered)" % pings)

    # The sessions of G0 leave with the escape key; the other 24 guests are
    # destroyed at once under their 216 live sessions, as a host shutting
    # its guests down does.  This once hung libvirtd (see src/session.c,
    # parked streams): the daemon finished the streams at their end of file,
    # while libvirtd was freeing the guests.
    mine = [s for s in sessions if s.guest == G0]
    others = [s for s in sessions if s.guest != G0]
    ok = say_bye(mine)
    t.ok(ok, "the %d sessions of %s leave with the escape key: the notice (and close 1000 on "
         "WebSockets)" % (len(mine), G0), *failures(mine))
    m0 = d.mark()
    for s in others:
        s.expect_end("guest stopped", 4001)
    # The sessions are served while virsh works: a loaded machine has taken
    # 15 s to destroy them (CI, 2026-12-05), more than a ping interval, and
    # a client that stops answering pings meanwhile is rightly dropped.
    t0 = time.monotonic()
    with concurrent.futures.ThreadPoolExecutor(NGUESTS - 1) as ex:
        futs = [ex.submit(lab.virsh, "destroy", g, timeout=120) for g in GUESTS[1:]]
        drive(others, lambda: all(f.done() for f in futs), t0 + 130)
        res = [f.result() for f in futs]
    t_destroy = time.monotonic() - t0
    t.ok(all(r.returncode == 0 for r in res), "%d guests destroyed at once under %d sessions in %.1f s"
         % (NGUESTS - 1, len(others), t_destroy), *[r.stderr for r in res if r.returncode][:5])
    ok = wait_end(others, 60)
    t.ok(ok, "each of their %d sessions ends with 'disconnected: guest stopped' (close 4001 on WebSockets)"
         % len(others), *failures(others))
    try:
        r = lab.virsh("list", "--all", timeout=60)
        answers = r.returncode == 0 and all(g not in r.stdout for g in GUESTS[1:])
    except subprocess.TimeoutExpired:
        answers = False
    t.ok(answers, "libvirtd still answers afterwards, without those guests (it deadlocked when the daemon "
         "closed the streams while libvirtd freed the guests)")
    ok = wait_for(lambda: len(d.find_log(r'guest=tl-g\d+ dev=\S+: ended reason="guest stopped"', m0))
                  >= len(others), 20)
    t.ok(ok, "the daemon logged %d sessions ended with reason \"guest stopped\""
         % len(d.find_log(r'guest=tl-g\d+ dev=\S+: ended reason="guest stopped"', m0)))
    ok, why = same_daemon(d, PID)
    ok = ok and wait_for(lambda: fd_count(PID) < fds_sessions - len(others) + 10, 20)
    t.ok(ok,
         "the daemon is up, one process, and released their descriptors (%d, %d with them)"
         % (fd_count(PID), fds_sessions), why)
    for s in sessions:
        s.close()


# ---------------------------------------------------------------- 2. the flood

def free_guests():
    """Only G0 is needed from here on: give the machine back the others
    (destroyed already, unless the first part failed)."""
    running = lab.virsh("list", "--name").stdout.split()
    with concurrent.futures.ThreadPoolExecutor(8) as ex:
        list(ex.map(lab.destroy, [g for g in GUESTS[1:] if g in running]))


def hold_pty(guest):
    """Open the pty of the guest's serial console and keep it open (raw).

    QEMU's pty backend polls a disconnected pty once a second: every time a
    console is opened after it was closed, keystrokes wait up to 1 s (in a
    sequence of attaches, almost exactly 1 s after the last close).  That
    would be most of the attach time measured below, and none of it the
    daemon's.  While this descriptor is open, QEMU sees the pty connected;
    libvirt still opens and closes its own descriptor per session, and this
    one is never read."""
    xml = lab.virsh("dumpxml", guest).stdout
    m = re.search(r"<serial type='pty'>\s*<source path='(/dev/pts/\d+)'", xml)
    if not m:
        return None
    fd = os.open(m.group(1), os.O_RDWR | os.O_NOCTTY | os.O_NONBLOCK)
    tty.setraw(fd)
    return fd


def legit_attach(tok):
    """Connect, 101, type an echo, see it: (to 101, to the echo) or a reason."""
    t0 = time.monotonic()
    w = RawWS(P, "/console/%s/serial0?token=%s" % (G0, tok), timeout=60)
    try:
        t_101 = time.monotonic() - t0
        if not w.accepted():
            return None, "handshake: %r" % w.response
        tag = "F%s" % nonce()
        w.send_frame(OP_BINARY, b"echo %s-$((6*7))\r" % tag.encode())
        if not w.read_until(("%s-42" % tag).encode(), 60):
            return None, "no echo: %s" % show(w.data)
        t_echo = time.monotonic() - t0
        w.send_frame(OP_BINARY, b"\x11")
        if w.wait_close(10) != (1000, "escape key"):
            return None, "close: %r" % (w.close_frame,)
        return (t_101, t_echo), None
    finally:
        w.close()


def measure(toks, label, before_each=None):
    """Attach once per token; [(to 101, to echo)] and the failures."""
    out, bad = [], []
    for tok in toks:
        extra = before_each() if before_each else None
        r, why = legit_attach(tok)
        if r:
            out.append(r)
        else:
            bad.append("%s: %s" % (label, why))
        if extra is not None:
            bad += extra()
    return out, bad


def flood_source(k):
    """127.0.0.2 and up, PER_ADDR connections each."""
    a = k // PER_ADDR
    return "127.0.%d.%d" % (a // 250, 2 + a % 250)


def bad_tokens(good):
    """Tokens that must be refused: garbage, forged, truncated."""
    i = len(good) // 2
    forged = good[:i] + ("A" if good[i] != "A" else "B") + good[i + 1:]
    return [base64.urlsafe_b64encode(os.urandom(48)).decode().rstrip("="), forged, good[:-3]]


def upgrade(path):
    return request_bytes("GET", path, P, [
        ("Upgrade", "websocket"), ("Connection", "Upgrade"),
        ("Sec-WebSocket-Key", base64.b64encode(os.urandom(16)).decode()),
        ("Sec-WebSocket-Version", "13"), ("Sec-WebSocket-Protocol", "binary")])


with t.case("flood of %d connections that never authenticate" % FLOOD):
    free_guests()
    ok = wait_for(lambda: not any(os.path.exists(d.sock(g)) for g in GUESTS[1:]), 30)
    t.ok(ok, "the other %d guests are destroyed; %s stays" % (NGUESTS - 1, G0))
    pty_fd = hold_pty(G0)
    t.ok(pty_fd is not None, "the pty of %s serial0 is held open (QEMU's 1 s reconnect poll out of the "
         "measurement)" % G0)
    # Tokens first: minting is not part of an attach.
    toks = [d.token(G0, "serial0", ttl=3600) for _ in range(4 * SAMPLES + 1)]
    r, why = legit_attach(toks.pop())
    t.ok(r, "a legitimate WebSocket client on 127.0.0.1 with a token for %s serial0 gets an echo" % G0, why)
    fd0 = settled_fd_count(PID)
    rss0 = d.rss_kib()

    before, bad = measure(toks[:SAMPLES], "before")
    t.ok(len(before) == SAMPLES, "%d attaches before the flood" % SAMPLES, *bad)

    cpu0 = proc_cpu(PID)
    t0 = time.monotonic()
    flood, err = [], None
    partial = b"GET /console/%s/serial0 HTTP/1.1\r\nHost: 127.0.0.1:%d\r\n" % (G0.encode(), P)
    try:
        for k in range(FLOOD):
            s = connect(P, source=flood_source(k), timeout=10)
            flood.append(s)
            if k % 3 == 1:
                s.sendall(partial)
            elif k % 3 == 2:
                # Half a head, with a bad token: it never ends.
                tok = bad_tokens(toks[0])[k // 3 % 3]
                s.sendall(upgrade("/console/%s/serial0?token=%s" % (G0, tok))[:-2])
    except OSError as e:
        err = e
    t_flood = time.monotonic() - t0
    t.ok(len(flood) == FLOOD and err is None,
         "%d connections from %s-%s opened in %.1f s (a third silent, a third half a request head, "
         "a third half a head with a bad token)" % (FLOOD, flood_source(0), flood_source(FLOOD - 1), t_flood),
         repr(err))
    t.figure("flood connections", FLOOD, "")
    t.figure("flood open time", "%.1f" % t_flood, "s")
    n_fd = wait_for(lambda: fd_count(PID) >= fd0 + len(flood), 30) and fd_count(PID)
    t.ok(n_fd, "the daemon holds them all (%s descriptors, %d before)" % (n_fd or fd_count(PID), fd0))
    t.figure("flood daemon descriptors", fd_count(PID), "")
    rss_flood = d.rss_kib()
    t.figure("flood daemon RSS with the flood", rss_flood, "KiB")
    t.figure("flood daemon RSS before the flood", rss0, "KiB")
    # About 1.7 KiB per connection that never finishes its head (its
    # bufferevent and head buffer); bound 8 KiB.
    per_conn = (rss_flood - rss0) / len(flood) if rss_flood and rss0 and flood else None
    t.ok(per_conn is not None and per_conn <= 8,
         "daemon RSS per flood connection: %s KiB ((%s - %s) / %d; bound 8 KiB)"
         % (per_conn and "%.2f" % per_conn, rss_flood, rss0, len(flood)))

    burst_status = []

    def burst():
        """BURST complete requests with bad tokens from 127.3.0.x, answered
        while the legitimate client attaches."""
        socks = []
        for j in range(BURST):
            s = connect(P, source="127.3.0.%d" % (1 + j), timeout=10)
            s.sendall(upgrade("/console/%s/serial0?token=%s" % (G0, bad_tokens(toks[0])[j % 3])))
            socks.append(s)

        def collect():
            bad = []
            for s in socks:
                data, closed = recv_until_close(s, 30)
                s.close()
                st = Response(data).status if data else None
                burst_status.append(st)
                if st != 403 or not closed:
                    bad.append("bad token -> %s, closed %s: %s" % (st, closed, show(data, 120)))
            return bad
        return collect

    flood_only, bad0 = measure(toks[3 * SAMPLES:], "flood only")
    t.ok(len(flood_only) == SAMPLES, "%d attaches with the flood alone" % SAMPLES, *bad0)
    during, bad = measure(toks[SAMPLES:2 * SAMPLES], "during", burst)
    t.ok(len(during) == SAMPLES and not bad,
         "%d attaches during the flood, each with %d complete bad-token requests: all attach and echo, "
         "every bad token gets 403" % (SAMPLES, BURST), *bad[:10])
    sel = selectors.DefaultSelector()
    for s in flood:
        sel.register(s, selectors.EVENT_READ)
    early = len(sel.select(0))
    sel.close()
    t.ok(early == 0, "none of the %d flood connections was closed or answered meanwhile (%d)"
         % (FLOOD, early))
    cpu_flood = proc_cpu(PID) - cpu0
    t.figure("flood bad-token requests answered 403", "%d of %d" % (burst_status.count(403), len(burst_status)), "")
    ok, why = same_daemon(d, PID)
    t.ok(ok, "one daemon process, no children, under the flood", why)
    for s in flood:
        s.close()
    n = wait_for(lambda: fd_count(PID) <= fd0 + 2, 30)
    t.ok(n, "the flood closed, the daemon's descriptors return to %d (%d)" % (fd0, fd_count(PID)))
    t.figure("flood daemon descriptors after", fd_count(PID), "")
    t.figure("flood daemon CPU, flood open to closed", "%.2f" % cpu_flood, "s")

    after, bad = measure(toks[2 * SAMPLES:3 * SAMPLES], "after")
    t.ok(len(after) == SAMPLES, "%d attaches after the flood" % SAMPLES, *bad)

    quiet = [e for _, e in before + after]
    loud = [e for _, e in during]
    if quiet and loud:
        mq, ml = statistics.median(quiet), statistics.median(loud)
        ratio = ml / mq
        t.figure("flood legit attach (connect to first echo) median without", ms(mq), "ms")
        t.figure("flood legit attach median with the flood", ms(ml), "ms")
        t.figure("flood legit attach ratio with/without", "%.2f" % ratio, "")
        t.figure("flood legit handshake (connect to 101) median without", ms(statistics.median(
            [h for h, _ in before + after])), "ms")
        t.figure("flood legit handshake median with the flood", ms(statistics.median([h for h, _ in during])), "ms")
        t.figure("flood legit attach median with the flood alone (no bad-token bursts)",
               ms(statistics.median([e for _, e in flood_only])) if flood_only else "n/a", "ms")
        t.diag("attach ms before %s; flood only %s; flood and bursts %s; after %s" % (
            [ms(e) for _, e in before], [ms(e) for _, e in flood_only],
            [ms(e) for _, e in during], [ms(e) for _, e in after]))
        # Idle connections cost an epoll registration and a timer each, no
        # work per event; the bursts of bad tokens ahead of each attach cost
        # their verification and answer.  In trial runs on this shared 2-core
        # machine (load average 13 to 40) the ratio of medians was 1.1-1.9
        # (about 45-70 ms without, 50-90 ms with).  5x leaves room for that
        # noise and still catches work proportional to the flood on the
        # legitimate path (a scan of the 2,000 connections per event, a
        # blocking read, a queue behind the flood's heads).
        t.ok(ratio < RATIO_MAX, "the flood slows a legitimate attach by %.2fx (median %s ms with it, %s ms "
             "without, before and after), under %gx" % (ratio, ms(ml), ms(mq), RATIO_MAX))
    else:
        t.ok(False, "no attach times to compare")
    ok, why = same_daemon(d, PID)
    t.ok(ok, "the daemon is the same process, without children, after the flood", why)
    if pty_fd is not None:
        os.close(pty_fd)

with t.case("shutdown"):
    rc = d.stop()
    t.ok(rc == 0, "the daemon exits 0 on SIGTERM (rc %s)" % rc, d.log_tail())
    no_sanitizer_report(t, [d])

t.done()
