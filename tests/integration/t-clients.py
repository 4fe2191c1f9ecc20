#!/usr/bin/python3
"""Client faults (issue 6, item 2) against the real daemon and the lab:

1. clients killed mid-write: a process pasting into a console over the
   unix socket, and one over WebSocket, are SIGKILLed while blocked in
   write(); the daemon stays up, delivers what they had written, logs the
   end, frees the console, and its descriptor count comes back;
2. half-open TCP: a WebSocket client in a network namespace loses its
   path (the namespace's end of a veth pair goes down: no FIN, no RST);
   the daemon drops it by its pings (ping_interval), and with pings off by
   the idle timer, as it does a silent (stopped) unix-socket client; the
   console is free again and the per-address slot released;
3. clients that never read: 8 sessions on the 8 consoles of one guest
   that prints on all of them; each is held at max_buffer, dropped with
   'client too slow' (notice and close 4005), the daemon's RSS stays
   bounded, and a reading client of another guest is served meanwhile;
4. clients that send faster than the console takes: 256 KiB pasted over
   the unix socket and over WebSocket into `head -c N > FILE` in a raw,
   no-echo terminal; the daemon leaves the excess in its socket queue
   (backpressure), its RSS stays bounded, and the guest's md5sum matches.

   Meanwhile the daemon's loop keeps answering its control socket and a
   client of another guest keeps getting its keystrokes echoed (libvirt's
   remote virStreamSend() blocks while libvirtd holds max_client_requests
   packets for a slow console: the daemon sends only while the libvirt
   socket has room, a small packet per session in turn).

5. a console that takes nothing (the guest paused) while a client pastes:
   the daemon's loop keeps answering; libvirtd, which then reads nothing
   more from that guest's own connection, drops it after its keepalive;
   the session ends with 'console connection lost', the hypervisor
   connection stays up (tests/integration/t-isolation.py goes further).
6. an idle console whose guest connection libvirtd drops (virt-admin
   client-disconnect): libvirt raises no event on the console's stream
   when its connection closes, yet the session ends with 'console
   connection lost' at once, and a new client gets the console.

Input floods (1, 4, 5) go to the serial port: the lab guest's virtio
consoles (hvc) stop taking input after one, even through a bare libvirt
stream without the daemon.

Needs root (ip netns, a veth pair) and iproute2 (ip, ss).  VCD_SOAK=1:
bigger pastes, default socket buffers for the killed clients, more kills.
Measured figures are printed as '# figure: NAME = VALUE UNIT'.
"""

import ast
import contextlib
import hashlib
import importlib.util
import os
import random
import re
import select
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time

sys.dont_write_bytecode = True     # no __pycache__ in the source tree
HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from vcdtest import (TAP, Client, Lab, StatusProbe, defer, make_tmpdir, notice,  # noqa: E402
                     show, log_time, vcd_binary, wait_for)

t = TAP()
lab = Lab(t)
if not os.access(vcd_binary(), os.X_OK):
    t.skip_all("no daemon binary at %s" % vcd_binary())
if importlib.util.find_spec("websockets") is None:
    t.skip_all("python3-websockets missing (tests/deps.sh installs it)")
if os.geteuid() != 0:
    t.skip_all("needs root for network namespaces")
for tool in ("ip", "ss"):
    if shutil.which(tool) is None:
        t.skip_all("%s missing (Debian package iproute2)" % tool)

import webtest  # noqa: E402
from webtest import OP_BINARY, Loop, RawWS, WebDaemon, WSClient, web_root  # noqa: E402

SOAK = os.environ.get("VCD_SOAK") == "1"
PING = 1                    # ping_interval for the half-open case
IDLE = 4                    # idle_timeout for the silent clients
HISTORY_PER_RUN = (256 + 64) * 1024    # history + history_head, the defaults
MAX_BUFFER = 64 * 1024
PASTE = (2048 if SOAK else 256) * 1024
KILL_ROUNDS = 3 if SOAK else 1
FLOOD_CONSOLES = 8          # serial0 + console1..7: the most a lab guest has
PY = "/usr/bin/python3"

TMP = make_tmpdir("vcd-clients.")
GA, GF = "tcl-a", "tcl-f"   # GA: serial0 + console1; GF: 8 consoles, floods
lab.remove_leftovers([GA, GF])


def log_lines(regex, since=0):
    """[(time, match)] of the daemon log lines that match regex."""
    out = []
    for line in d.log(since).splitlines():
        m = re.search(regex, line)
        if m:
            out.append((log_time(line), m))
    return out


def wait_lines(regex, timeout, count=1, since=0):
    return wait_for(lambda: (lambda r: r if len(r) >= count else None)(
        log_lines(regex, since)), timeout, 0.05)


def fd_count():
    return len(os.listdir("/proc/%d/fd" % d.pid))


def ended(dev, guest, since):
    """[(time, reason, bytes_in, bytes_out, bytes_dropped)] of the session
    ends of guest/dev logged after since."""
    return [(ts, m.group(1), int(m.group(2)), int(m.group(3)), int(m.group(4)))
            for ts, m in log_lines(r'guest=%s dev=%s: ended reason="([^"]*)" .* bytes_in=(\d+) '
                                   r'bytes_out=(\d+) bytes_dropped=(\d+)' % (guest, dev), since)]


# ------------------------------------------------------------ the netns

def ip(*args, check=True):
    r = subprocess.run(["ip"] + list(args), capture_output=True, text=True, timeout=30)
    if check and r.returncode != 0:
        raise RuntimeError("ip %s: %s" % (" ".join(args), r.stderr.strip()))
    return r


class NetNS:
    """A network namespace joined to the host by a veth pair, HOST_IP on
    the host's end and NS_IP inside.  cut() takes the inner end down:
    from then on packets are dropped both ways and nobody is told (no
    FIN, no RST, no ICMP), which leaves the daemon a half-open TCP
    connection.  Removed (with its processes' sockets) at exit."""

    def __init__(self):
        tag = str(os.getpid() % 100000)
        self.name = "vcd-clients-" + tag
        self.host_if, self.ns_if = "vclh" + tag, "vcln" + tag
        used = ip("-4", "-o", "addr").stdout
        for third in range(256):
            self.host_ip, self.ns_ip = "10.231.%d.1" % third, "10.231.%d.2" % third
            if " 10.231.%d." % third not in used:
                break
        self.remove()               # a crashed run's, by the same pid
        ip("netns", "add", self.name)
        defer(self.remove)
        ip("link", "add", self.host_if, "type", "veth", "peer", "name", self.ns_if,
           "netns", self.name)
        ip("addr", "add", self.host_ip + "/30", "dev", self.host_if)
        ip("link", "set", self.host_if, "up")
        ip("-n", self.name, "addr", "add", self.ns_ip + "/30", "dev", self.ns_if)
        ip("-n", self.name, "link", "set", "lo", "up")
        self.mend()

    def cut(self):
        ip("-n", self.name, "link", "set", self.ns_if, "down")

    def mend(self):
        ip("-n", self.name, "link", "set", self.ns_if, "up")
        # Usable once the host's end has its carrier back.
        wait_for(lambda: "NO-CARRIER" not in ip("link", "show", self.host_if).stdout, 10)

    def argv(self, argv):
        return ["ip", "netns", "exec", self.name] + list(argv)

    def remove(self):
        ip("link", "del", self.host_if, check=False)
        ip("netns", "del", self.name, check=False)


def tcp_peers(local_port, state="established"):
    """Remote 'addr:port' of the host's TCP sockets on local_port in state."""
    r = subprocess.run(["ss", "-Htn", "state", state, "( sport = :%d )" % local_port],
                       capture_output=True, text=True, timeout=30)
    return [line.split()[-1] for line in r.stdout.splitlines() if line.split()]


def recv_queue(client_sock):
    """Bytes waiting in the daemon's end of a client's connection (its
    receive queue): what the daemon has not read."""
    if client_sock.family == socket.AF_UNIX:
        ino = str(os.fstat(client_sock.fileno()).st_ino)
        r = subprocess.run(["ss", "-Hx"], capture_output=True, text=True, timeout=30)
        for line in r.stdout.splitlines():
            f = line.split()
            if len(f) >= 8 and f[7] == ino:
                return int(f[2])
        return None
    port = client_sock.getsockname()[1]
    r = subprocess.run(["ss", "-Htn", "( dport = :%d )" % port], capture_output=True,
                       text=True, timeout=30)
    for line in r.stdout.splitlines():
        f = line.split()
        if len(f) >= 5:
            return int(f[1])
    return None


# ------------------------------------------------------------ helper processes

class Child:
    """A helper process, /usr/bin/python3 -c CODE HERE ARGS (in a network
    namespace when netns is given): its stdout lines, and signals."""

    def __init__(self, code, *args, netns=None):
        argv = [PY, "-c", code, HERE] + [str(a) for a in args]
        if netns is not None:
            argv = netns.argv(argv)
        self.p = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                  stderr=subprocess.STDOUT)
        os.set_blocking(self.p.stdout.fileno(), False)
        self.buf = b""
        self.lines = []
        defer(self.kill)

    @property
    def pid(self):
        return self.p.pid

    def pump(self, timeout=0.0):
        """Collect what it printed (waiting up to timeout for something);
        False once nothing more can come."""
        r, _, _ = select.select([self.p.stdout], [], [], timeout)
        if not r:
            return True
        try:
            chunk = os.read(self.p.stdout.fileno(), 1 << 16)
        except BlockingIOError:
            return True
        self.buf += chunk
        *done, self.buf = self.buf.split(b"\n")
        self.lines += [x.decode("utf-8", "replace") for x in done]
        return bool(chunk)

    def wait_line(self, prefix, timeout):
        """The first line starting with prefix (its words after it), or
        None after timeout or once the process has ended without it."""
        deadline = time.monotonic() + timeout
        while True:
            for line in self.lines:
                if line.startswith(prefix):
                    return line[len(prefix):].split()
            left = deadline - time.monotonic()
            if left <= 0:
                return None
            if self.p.poll() is not None:
                if not self.pump(0):
                    return None
            else:
                self.pump(min(left, 0.2))

    def output(self):
        self.pump(0)
        return "\n".join(self.lines[-10:] + [self.buf.decode("utf-8", "replace")])

    def syscall(self):
        """(state letter, syscall number, first argument) from /proc."""
        try:
            with open("/proc/%d/stat" % self.pid) as f:
                state = f.read().rsplit(") ", 1)[1][0]
            with open("/proc/%d/syscall" % self.pid) as f:
                sc = f.read().split()
        except OSError:
            return None, None, None
        if len(sc) < 2 or not sc[0].isdigit():
            return state, None, None
        return state, int(sc[0]), int(sc[1], 16)

    def signal(self, sig):
        if self.p.poll() is None:
            os.kill(self.pid, sig)

    def kill(self):
        if self.p.poll() is None:
            self.p.kill()
        try:
            self.p.wait(10)
        except subprocess.TimeoutExpired:
            pass
        self.p.stdout.close()


# A WebSocket client that attaches, waits for the shell prompt, then only
# answers pings.  argv: HERE ADDR PORT PATH.  Prints READY LOCALPORT
# TIME_OF_LAST_INPUT.
CHILD_WS_ATTACH = r'''
import sys, time
sys.dont_write_bytecode = True
sys.path.insert(0, sys.argv[1])
from webtest import RawWS, OP_BINARY
addr, port, path = sys.argv[2], int(sys.argv[3]), sys.argv[4]
w = RawWS(port, path, addr=addr, timeout=60)
if not w.accepted():
    print("REFUSED", w.response and w.response.status, flush=True)
    sys.exit(1)
w.answer_pings = True
deadline = time.monotonic() + 150
while True:
    w.send_frame(OP_BINARY, b"\r")
    last = time.time()
    if w.read_until(rb"# ", 1):
        break
    if time.monotonic() > deadline or w.closed:
        print("NOPROMPT", flush=True)
        sys.exit(1)
print("READY %d %.3f" % (w.sock.getsockname()[1], last), flush=True)
while not w.closed:
    w.read_frame(1)
print("CLOSED", w.close_frame, flush=True)
'''

# One HTTP request; prints STATUS N.  argv: HERE ADDR PORT.
CHILD_HTTP = r'''
import sys
sys.dont_write_bytecode = True
sys.path.insert(0, sys.argv[1])
from webtest import http
print("STATUS", http(int(sys.argv[3]), "/", addr=sys.argv[2], timeout=60).status, flush=True)
'''

# A unix-socket client that types Enter, then stops itself (SIGSTOP); once
# continued, it reads until EOF and prints what came last.  argv: HERE SOCK.
CHILD_UNIX_SILENT = r'''
import os, signal, socket, sys, time
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
s.connect(sys.argv[2])
s.sendall(b"\r")
print("READY %.3f" % time.time(), flush=True)
os.kill(os.getpid(), signal.SIGSTOP)
s.settimeout(10)
data = b""
try:
    while True:
        chunk = s.recv(65536)
        if not chunk:
            break
        data += chunk
except OSError:
    pass
print("TAIL", repr(data[-120:]), flush=True)
'''

# A client that writes lines of x into a console for ever: over the unix
# socket (argv: HERE unix SOCK SNDBUF) or as WebSocket binary frames
# (argv: HERE ws ADDR PORT PATH SNDBUF).  SNDBUF > 0 makes its socket
# buffer that small (and, for TCP, its MSS 536): less is queued in the
# kernel when it dies.  Prints READY FD, then the total payload written
# after each complete write.
CHILD_WRITER = r'''
import base64, os, socket, sys
sys.dont_write_bytecode = True
sys.path.insert(0, sys.argv[1])
from webtest import OP_BINARY, frame, request_bytes
payload = (b"x" * 99 + b"\n") * 160
if sys.argv[2] == "unix":
    sndbuf = int(sys.argv[4])
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    if sndbuf:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, sndbuf)
    s.connect(sys.argv[3])
    out = payload
else:
    addr, port, path, sndbuf = sys.argv[3], int(sys.argv[4]), sys.argv[5], int(sys.argv[6])
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    if sndbuf:
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_MAXSEG, 536)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, sndbuf)
    s.connect((addr, port))
    s.sendall(request_bytes("GET", path, port, [
        ("Upgrade", "websocket"), ("Connection", "Upgrade"),
        ("Sec-WebSocket-Key", base64.b64encode(os.urandom(16)).decode()),
        ("Sec-WebSocket-Version", "13"), ("Sec-WebSocket-Protocol", "binary")],
        addr=addr))
    head = b""
    while not head.endswith(b"\r\n\r\n"):
        c = s.recv(1)
        if not c:
            break
        head += c
    if b" 101 " not in head.split(b"\r\n")[0]:
        print("REFUSED", repr(head[:80]), flush=True)
        sys.exit(1)
    out = frame(OP_BINARY, payload)
print("READY", s.fileno(), flush=True)
total = 0
while True:
    s.sendall(out)
    total += len(payload)
    print(total, flush=True)
'''


# ------------------------------------------------------------ setup

d = WebDaemon(lab.uri, {
    "token_secret_file": os.path.join(TMP, "secret"),
    "web_root": web_root(),
    "ping_interval": PING,
    "idle_timeout": 0,
    "start_wait": 30,
    "max_buffer": "%dK" % (MAX_BUFFER // 1024),
    "log_level": "debug",
}, name="clients", tmpdir=TMP)
loop = Loop()
P = PN = None


def ws_url(guest, alias):
    return "ws://127.0.0.1:%d/console/%s/%s" % (P, guest, alias)


with t.case("setup"):
    try:
        ns = NetNS()
    except (RuntimeError, OSError) as e:
        t.skip_all("cannot make a network namespace with a veth pair: %s" % e)
    r = subprocess.run(["ip", "-n", ns.name, "-o", "-4", "addr", "show", "dev", ns.ns_if],
                       capture_output=True, text=True)
    t.ok(r.returncode == 0 and (" %s/" % ns.ns_ip) in r.stdout,
         "network namespace %s, veth %s (%s) <-> %s (%s)" %
         (ns.name, ns.host_if, ns.host_ip, ns.ns_if, ns.ns_ip), r.stdout + r.stderr)
    d.conf["listen"] = ["127.0.0.1:0 auth=none", "%s:0 auth=none" % ns.host_ip]
    d.conf["allowed_origins"] = "http://127.0.0.1"    # auth=none needs the rule
    t0 = time.monotonic()
    res = lab.create_many([("create", GA, 1), ("create", GF, FLOOD_CONSOLES - 1)])
    bad = [(n, o) for n, rc, o in res if rc != 0]
    t.ok(not bad, "guests %s (2 consoles) and %s (%d consoles) created" %
         (GA, GF, FLOOD_CONSOLES), *["%s: %s" % b for b in bad])
    ok = d.start()
    t.ok(ok, "the daemon starts, listening on 127.0.0.1 and %s" % ns.host_ip, d.log_tail())
    if not ok or bad:
        t.done()
    P = d.port("127.0.0.1", auth_none=True)
    PN = d.port(ns.host_ip, auth_none=True)
    t.ok(P and PN, "web listeners: 127.0.0.1:%s, %s:%s" % (P, ns.host_ip, PN))

    # Both consoles of GA answer (the guest has booted).
    c = Client(d.sock(GA))
    ok = c.wait_prompt(150) and c.echo_check(30)
    t.ok(ok, "%s serial0 answers over the unix socket" % GA, show(c.pending()))
    c.escape()
    w = WSClient(loop, ws_url(GA, "console1"))
    ok = w.connected() and w.wait_prompt(60) and w.echo_check(30)
    t.ok(ok, "%s console1 answers over WebSocket" % GA, show(w.buf))
    w.send(b"\x11")
    w.read_until_close(5)
    t.figure("setup time", round(time.monotonic() - t0, 1), "s")


def attach(dev, transport):
    """A new client of GA's console dev: a unix Client (serial0 only) or a
    WSClient."""
    if transport == "unix":
        return Client(d.sock(GA))
    return WSClient(loop, ws_url(GA, dev))


def leave(c):
    """End a client's session with the escape key."""
    if isinstance(c, Client):
        c.escape()
    else:
        c.send(b"\x11")
        c.read_until_close(5)


def free_check(what, dev, transport, prep=b""):
    """A new client gets GA's console at once (no 'console busy') and a
    working shell; prep is typed first (e.g. ^C to stop a command)."""
    t0 = time.monotonic()
    c = attach(dev, transport)
    if prep:
        c.send(prep)
    ok = c.wait_prompt(60) and c.run("stty sane; echo fr-$((3*3))", rb"fr-9", 30)
    t.ok(ok and b"busy" not in c.buf,
         "%s: a new %s client gets %s %s (prompt after %.1f s)" %
         (what, transport, GA, dev, time.monotonic() - t0), show(c.buf))
    leave(c)


# ------------------------------------------------------------ 2 half-open

with t.case("2 half-open TCP: pings"):
    t.ok(d.reload({"max_clients_per_address": 1}), "reload with max_clients_per_address = 1")
    m0 = d.mark()
    ch = Child(CHILD_WS_ATTACH, ns.host_ip, PN, "/console/%s/console1" % GA, netns=ns)
    ready = ch.wait_line("READY ", 180)
    t.ok(ready, "a WebSocket client in the namespace (%s) attaches to %s console1" %
         (ns.ns_ip, GA), ch.output())
    if not ready:
        raise RuntimeError("no client in the namespace")
    peer = "%s:%s" % (ns.ns_ip, ready[0])
    h = Child(CHILD_HTTP, ns.host_ip, PN, netns=ns)
    st = h.wait_line("STATUS ", 60)
    t.ok(st == ["429"], "a second connection from %s gets 429 (max_clients_per_address = 1)"
         % ns.ns_ip, h.output())
    time.sleep(3 * PING)
    t.ok(not d.find_log(r"peer=%s: no answer" % re.escape(peer), m0) and
         ch.p.poll() is None and peer in tcp_peers(PN),
         "after 3 ping intervals it is still attached (it answers pings)", d.log_tail(5, m0))
    t_cut = time.time()
    ns.cut()
    estab = peer in tcp_peers(PN)
    t.ok(estab, "the namespace's end of the veth goes down: the daemon's connection "
         "is still ESTABLISHED (no FIN, no RST)")
    drop = wait_lines(r"wsock: peer=%s: no answer to pings, dropping" % re.escape(peer),
                      20 * PING + 30, since=m0)
    det = drop[0][0] - t_cut if drop else None
    t.figure("half-open detection by pings (ping_interval %d s)" % PING,
           det is not None and round(det, 2), "s")
    ratio = det / PING if det is not None else None
    t.figure("half-open detection / ping_interval", ratio and round(ratio, 2), "")
    # The last pong came at most one interval before the cut; the daemon
    # drops at the first ping two intervals after it: 1..2 intervals.
    t.ok(ratio is not None and 0.7 <= ratio <= 3.5,
         "the daemon drops it by its pings %.2f s after the cut (%.2f intervals; "
         "expected 1..2, allowed 0.7..3.5)" % (det or -1, ratio or -1), d.log_tail(8, m0))
    end = wait_lines(r'guest=%s dev=console1: ended reason="(client closed|client error)"' % GA,
                     15, since=m0)
    t.ok(end and peer in d.log(m0), "the session ends (%s) and is logged" %
         (end and end[0][1].group(1)), d.log_tail(5, m0))
    t.ok(wait_for(lambda: peer not in tcp_peers(PN), 10),
         "the daemon's end of the dead connection is closed", "ESTABLISHED: %s" % tcp_peers(PN))
    t.ok(d.alive(), "the daemon is running")
    ch.kill()

with t.case("2 half-open TCP and a stopped unix client: the idle timer"):
    # Pings off for the connections that come now; the idle timer must do.
    t.ok(d.reload({"ping_interval": 0, "idle_timeout": IDLE}),
         "reload with ping_interval = 0, idle_timeout = %d" % IDLE)
    ns.mend()
    m0 = d.mark()
    ch = Child(CHILD_WS_ATTACH, ns.host_ip, PN, "/console/%s/console1" % GA, netns=ns)
    un = Child(CHILD_UNIX_SILENT, d.sock(GA))
    ready = ch.wait_line("READY ", 180)
    t.ok(ready, "with the link back, a new client from %s attaches to %s console1: the "
         "dead one's address slot and console were released" % (ns.ns_ip, GA), ch.output())
    if not ready:
        raise RuntimeError("no client in the namespace")
    ns.cut()
    t_cut = time.time()
    t_last_ws = float(ready[1])
    u_ready = un.wait_line("READY ", 30)
    t.ok(u_ready and wait_for(lambda: un.syscall()[0] == "T", 10),
         "a unix-socket client of %s serial0 types Enter and stops (SIGSTOP)" % GA, un.output())
    t_last_u = float(u_ready[0]) if u_ready else time.time()
    ends = {}
    for dev in ("console1", "serial0"):
        e = wait_lines(r"guest=%s dev=%s: ATTACHED -> CLOSING \(([^)]*)\)" % (GA, dev),
                       IDLE * 10 + 30, since=m0)
        ends[dev] = (e[0][0], e[0][1].group(1)) if e else (None, None)
    for dev, last, who in (("console1", t_last_ws, "the half-open WebSocket client"),
                           ("serial0", t_last_u, "the stopped unix client")):
        ts, why = ends[dev]
        el = ts - last if ts else None
        t.figure("idle detection of %s (idle_timeout %d s)" % (who.split(" ", 2)[-1], IDLE),
               el and round(el, 2), "s")
        ratio = el / IDLE if el is not None else None
        t.ok(why == "idle timeout" and ratio is not None and 0.9 <= ratio <= 2.5,
             "%s is ended for 'idle timeout' %.2f s after its last input (%.2f x idle_timeout; "
             "allowed 0.9..2.5)" % (who, el or -1, ratio or -1), d.log_tail(6, m0))
    t.ok(ends["console1"][0] is not None and ends["console1"][0] > t_cut,
         "the WebSocket session outlived the cut (nothing told the daemon)")
    un.signal(signal.SIGCONT)
    tail = un.wait_line("TAIL ", 30)
    tail = ast.literal_eval(" ".join(tail)) if tail else b""
    t.ok(tail.endswith(notice("disconnected", "idle timeout")),
         "continued, the unix client finds 'disconnected: idle timeout' and EOF", show(tail))
    ch.kill()
    un.kill()
    t.ok(d.reload({"idle_timeout": 0, "max_clients_per_address": None}),
         "reload with idle_timeout = 0, max_clients_per_address back to its default")
    free_check("2 after the idle timeouts", "serial0", "unix")
    free_check("2 after the idle timeouts", "console1", "WebSocket")


# ------------------------------------------------------------ 1 killed

def kill_writer(rnd, transport):
    """A writer pasting into serial0 over transport is killed while its
    write() is blocked; the daemon delivers what it wrote and lets go."""
    m0 = d.mark()
    # The console swallows input without echo, so nothing flows back.
    c = attach("serial0", transport)
    ok = c.wait_prompt(60) and c.run("stty -echo; cat >/dev/null", rb"cat >/dev/null", 30)
    t.ok(ok, "1.%d %s serial0 runs 'cat >/dev/null' without echo" % (rnd, GA), show(c.buf))
    time.sleep(0.5)
    leave(c)
    wait_lines(r"guest=%s dev=serial0: CLOSING -> DEAD" % GA, 10, since=m0)
    time.sleep(0.5)
    fd0 = fd_count()
    small = 0 if SOAK else 16384
    m1 = d.mark()
    if transport == "unix":
        k = Child(CHILD_WRITER, "unix", d.sock(GA), small)
    else:
        k = Child(CHILD_WRITER, "ws", "127.0.0.1", P, "/console/%s/serial0" % GA, small)
    fd = k.wait_line("READY ", 30)
    t.ok(fd, "1.%d a %s writer attaches to serial0" % (rnd, transport), k.output())
    if not fd:
        k.kill()
        return
    try:
        kill_blocked_writer(rnd, transport, k, int(fd[0]), m1, fd0)
    finally:
        k.kill()


def kill_blocked_writer(rnd, transport, k, fd, m1, fd0):
    def blocked():
        k.pump(0)
        st, sc, arg = k.syscall()
        return st == "S" and sc in (1, 44, 46) and arg == fd and len(k.lines) > 2
    ok = wait_for(blocked, 120, 0.1)
    k.pump(0)
    t.ok(ok, "1.%d the %s writer is blocked in write() (backpressure) after %s bytes" %
         (rnd, transport, k.lines[-1]), "syscall: %s" % (k.syscall(),))
    t_kill = time.time()
    k.signal(signal.SIGKILL)
    k.p.wait(10)
    k.pump(0.05)
    written = max([int(x) for x in k.lines if x.isdigit()] + [0])
    e = wait_for(lambda: ended("serial0", GA, m1), 900 if SOAK else 180, 0.1)
    if not e:
        t.ok(False, "1.%d the %s session ends after its writer was killed" % (rnd, transport),
             d.log_tail(8, m1))
        return
    ts, why, bin_, _, _ = e[0]
    t.figure("killed %s writer: session end after the kill" % transport, round(ts - t_kill, 2), "s")
    t.figure("killed %s writer: bytes written / delivered to the console" % transport,
           "%d/%d" % (written, bin_), "")
    t.ok(why in ("client closed", "client error") and d.alive(),
         "1.%d the %s session ends ('%s', %.1f s after the SIGKILL, once what it had written "
         "was delivered); the daemon stays up" % (rnd, transport, why, ts - t_kill),
         d.log_tail(6, m1))
    t.ok(written <= bin_ <= written + 16000,
         "1.%d nothing the %s writer wrote is lost: the console got %d bytes, it had "
         "written %d (+ at most the write it died in)" % (rnd, transport, bin_, written))
    free_check("1.%d after the kill" % rnd, "serial0", transport, prep=b"\x03")
    fd1 = wait_for(lambda: fd_count() == fd0 and fd0, 15, 0.2) or fd_count()
    t.figure("daemon descriptors before/after a killed %s writer" % transport,
           "%d/%d" % (fd0, fd1), "")
    t.ok(fd1 == fd0, "1.%d the daemon's descriptor count is back to %d (now %d)" %
         (rnd, fd0, fd1), "fds: %s" % sorted(os.listdir("/proc/%d/fd" % d.pid)))


with t.case("1 clients killed mid-write"):
    t.ok(d.reload({"ping_interval": 0, "idle_timeout": 0}),
         "reload with ping_interval = 0, idle_timeout = 0")
    for rnd in range(1, KILL_ROUNDS + 1):
        for transport in ("unix", "WebSocket"):
            kill_writer(rnd, transport)


# ------------------------------------------------------------ 4 paste

class RSSWatch:
    """The daemon's VmRSS sampled in a thread: max growth over start."""

    def __init__(self):
        self.start = d.rss_kib()
        self.max = self.start
        self.stop_ = False
        self.th = threading.Thread(target=self.run, daemon=True)
        self.th.start()

    def run(self):
        while not self.stop_:
            r = d.rss_kib()
            if r:
                self.max = max(self.max, r)
            time.sleep(0.1)

    def stop(self):
        self.stop_ = True
        self.th.join()
        return self.max - self.start


def LoopProbe():
    """The control socket asked every 0.2 s: how long the daemon's one
    event loop takes to answer (the longest wait)."""
    return StatusProbe(d.conf["control_socket"], 0.2)


class Bystander(threading.Thread):
    """A reading client of a guest's serial0 (GA by default): echo round
    trips in a loop, timed."""

    def __init__(self, guest=None):
        super().__init__(daemon=True)
        self.c = Client(d.sock(guest or GA))
        self.results = []           # (start, end, ok)
        self.stop_ = False

    def ready(self):
        return self.c.wait_prompt(60) and self.c.echo_check(30)

    def run(self):
        while not self.stop_:
            t0 = time.time()
            ok = self.c.echo_check(30)
            self.results.append((t0, time.time(), ok))
            time.sleep(0.2)

    def stop(self):
        """Stop; the longest round trip and the count of failed ones."""
        self.stop_ = True
        self.join(60)
        return (max([e - s for s, e, ok in self.results] or [0.0]),
                sum(1 for r in self.results if not r[2]))


def paste_data(n, seed):
    """n pseudo-random bytes without the escape byte (^Q)."""
    data = bytearray(random.Random(seed).randbytes(n))
    return bytes(data.replace(b"\x11", b"\x12"))


def paste(transport, seed):
    """Paste PASTE bytes into `head -c N > FILE` in a raw, no-echo
    terminal on GA serial0, as fast as the transport takes them; check
    what the guest got, the daemon's RSS and its socket's queue."""
    data = paste_data(PASTE, seed)
    want = (hashlib.md5(data).hexdigest(), len(data))
    path = "/tmp/in-%s" % transport
    m0 = d.mark()
    c = attach("serial0", transport)
    ok = c.wait_prompt(60) and c.run(
        "stty raw -echo; echo RAW-$((2+2)); head -c %d >%s; stty sane; echo PASTE-DONE-$((1+1))"
        % (len(data), path), rb"RAW-4", 30)
    t.ok(ok, "4 %s: serial0's terminal is raw, without echo, running head -c %d" %
         (transport, len(data)), show(c.buf))
    if not ok:
        leave(c)
        return
    if transport == "unix":
        sock = c.sock

        def send(chunk):
            c.sock.setblocking(True)
            c.sock.settimeout(600)
            try:
                c.sock.sendall(chunk)
            finally:
                c.sock.setblocking(False)
    else:
        sock = c.ws.transport.get_extra_info("socket")

        def send(chunk):
            c.loop.run(c.ws.send(chunk), 600)
    state = {"sent": 0, "err": None, "t_sent": None}

    def sender():
        try:
            for i in range(0, len(data), 16384):
                send(data[i:i + 16384])
                state["sent"] = min(len(data), i + 16384)
        except Exception as e:      # reported by the check below
            state["err"] = "send failed after %d bytes: %r" % (state["sent"], e)
        state["t_sent"] = time.monotonic()

    # Another guest's console, typed into during the paste: the same
    # libvirt connection carries its input.
    other = Bystander(GF)
    t.ok(other.ready(), "4 %s: a client of %s serial0 echoes before the paste" %
         (transport, GF), show(other.c.pending()))
    before = []
    for _ in range(5):
        t1 = time.monotonic()
        other.c.echo_check(30)
        before.append(time.monotonic() - t1)
    rss = RSSWatch()
    probe = LoopProbe()
    other.start()
    t0 = time.monotonic()
    th = threading.Thread(target=sender, daemon=True)
    th.start()
    # What the daemon leaves unread in its socket until the guest has it all.
    queue = []
    timeout = max(300, len(data) / 1000)
    done = None
    while not done and not state["err"] and time.monotonic() - t0 < timeout:
        q = recv_queue(sock)
        if q is not None:
            queue.append(q)
        if state["t_sent"] is None:
            time.sleep(0.2)
        else:
            done = c.read_until(rb"PASTE-DONE-2", 0.2)
    el = time.monotonic() - t0
    growth = rss.stop()
    stall = probe.stop()
    other_worst, other_failed = other.stop()
    other.c.escape()
    m = done and c.run("md5sum %s; wc -c <%s" % (path, path),
                       rb"([0-9a-f]{32})\s+\S+\r\n\s*(\d+)\r\n", 30)
    got = (m.group(1).decode(), int(m.group(2))) if m else None
    t.figure("paste over %s: bytes sent / received by the guest" % transport,
           "%d/%s" % (len(data), got[1] if got else "?"), "")
    kibps = len(data) / 1024 / el
    t.figure("paste over %s: throughput" % transport, round(kibps, 1), "KiB/s")
    # Measured 103-108 KiB/s on an idle machine: the TCG guest's console is
    # the bottleneck, so the figure follows the CPU the guest gets (48.8
    # KiB/s once, with a build running beside the suite).  The bound is for
    # a send pump that stalls (one packet per 100 ms timer tick or worse is
    # 10 KiB/s), not a speed target: those live in bench/.
    t.ok(kibps >= 16, "4 %s: paste throughput %.1f KiB/s (bound: at least 16: the send pump "
         "never stalls)" % (transport, kibps))
    t.ok(got == want,
         "4 %s: %d bytes in %.1f s, the guest's md5sum and size match (%s)" %
         (transport, len(data), el, want[0]), state["err"], show(c.buf), "guest: %r" % (got,))
    # Backpressure: the daemon leaves the excess in its socket's receive
    # queue (and the client's kernel) instead of reading it into memory.
    held = [q for q in queue if q >= 4096]
    t.figure("paste over %s: unread in the daemon's socket during the paste (max)" % transport,
           max(queue or [0]), "bytes")
    t.ok(queue and max(queue) >= 16384,
         "4 %s: backpressure: input waited unread in the daemon's socket (up to %d bytes; "
         "4 KiB or more in %d of %d samples)" %
         (transport, max(queue or [0]), len(held), len(queue)))
    bound = (2 * MAX_BUFFER + 64 * 1024) // 1024 + 1024
    t.figure("paste over %s: daemon RSS growth" % transport, growth, "KiB")
    # RSS means little under ASan: not run, nor counted, there.
    if not d.asan():
        t.ok(growth < bound,
             "4 %s: daemon RSS growth %d KiB (bound: 2 x max_buffer + a 64 KiB chunk + 1 MiB = "
             "%d KiB; pasted %d KiB)" % (transport, growth, bound, len(data) // 1024))
    # The daemon's loop keeps serving everyone else meanwhile: libvirt's
    # remote virStreamSend() blocks until libvirtd reads, and libvirtd
    # reads only as the console takes the input, so the daemon sends only
    # while the guest's libvirt socket has room (console_pump).
    t.figure("paste over %s: longest wait for the control socket (event loop blocked)" % transport,
           round(stall, 2), "s")
    # Measured 0.01 s; the bound does not grow with the paste's length.
    t.ok(stall < 0.5 and probe.errors == 0, "4 %s: the event loop keeps answering during the paste "
         "(longest wait for the control socket %.2f s, bound 0.5 s; %d bad answers)"
         % (transport, stall, probe.errors))
    t.figure("paste over %s: another guest's keystroke echo, longest before / during the paste"
           % transport, "%.2f/%.2f" % (max(before), other_worst), "s")
    # The other guest's keystrokes do not wait for the paste: the longest
    # round trip during it, against the longest before it in the same run
    # (floored at 0.05 s), at most 10 times (measured: 0.08 s during; before
    # the send queue they waited 0.64 s, most of a 2.1 s paste).
    ref = max(max(before), 0.05)
    t.ok(other.results and not other_failed and other_worst <= 10 * ref,
         "4 %s: %s serial0 echoed %d keystrokes during the paste, none failed, the longest "
         "round trip %.2f s, %.1f x the longest before it (%.2f s; bound 10 x)" %
         (transport, GF, len(other.results), other_worst, other_worst / ref, max(before)))
    if transport != "unix":
        t.ok(not d.find_log(r"no answer to pings", m0) and not c.closed,
             "4 %s: held back for %.0f s by backpressure, the client is not taken for dead "
             "by the pings (ping_interval = %d)" % (transport, el, PING), d.log_tail(5, m0))
    leave(c)


with t.case("4 pasting faster than the console takes"):
    # Pings on: a paste held back by backpressure must not look like a
    # dead client (the daemon does not read while the console is full).
    t.ok(d.reload({"ping_interval": PING}), "reload with ping_interval = %d" % PING)
    paste("unix", 1)
    paste("WebSocket", 2)
    t.ok(d.reload({"ping_interval": 0}), "reload with ping_interval = 0")


# ------------------------------------------------------------ 3 slow readers

@contextlib.contextmanager
def narrow_tcp():
    """RawWS clients connected inside hold as little as TCP allows:
    before connecting they ask for the smallest receive buffer and an MSS
    of 536, as a client on a real network would have; on loopback the
    kernel would otherwise queue megabytes for a client that never reads
    before the daemon's own buffer even starts to fill."""
    plain = webtest.connect

    def connect(port, addr="127.0.0.1", source=None, tls=None, timeout=10):
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_MAXSEG, 536)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1)
        s.settimeout(timeout)
        s.connect((addr, port))
        return s

    webtest.connect = connect
    try:
        yield
    finally:
        webtest.connect = plain


with t.case("3 clients that never read"):
    t.ok(d.reload({"ping_interval": 0}), "reload with ping_interval = 0 (they would not answer)")
    aliases = ["serial0"] + ["console%d" % i for i in range(1, FLOOD_CONSOLES)]
    m0 = d.mark()
    by = Bystander()
    t.ok(by.ready(), "a reading client of %s" % GA, show(by.c.buf))
    rtt0 = []
    for _ in range(3):
        t0 = time.monotonic()
        by.c.echo_check(30)
        rtt0.append(time.monotonic() - t0)
    with narrow_tcp():
        slow = {a: RawWS(P, "/console/%s/%s" % (GF, a), timeout=30) for a in aliases}
    t.ok(all(s.accepted() for s in slow.values()),
         "%d WebSocket clients attach to the %d consoles of %s" %
         (len(slow), len(slow), GF), *["%s: %r" % (a, s.response) for a, s in slow.items()
                                       if not s.accepted()])
    # serial0's client waits for the prompt, then starts the flood on every
    # console and reads no more; the others never read at all.
    s0 = slow["serial0"]
    ok = False
    for _ in range(150):
        s0.send_frame(OP_BINARY, b"\r")
        if s0.read_until(rb"# ", 1):
            ok = True
            break
    t.ok(ok, "%s serial0 gives a prompt" % GF, show(s0.data))
    ids = dict((m.group(2), m.group(1)) for _, m in log_lines(
        r"session (\d+) guest=%s dev=(\S+): OPENING -> ATTACHED" % GF, m0))
    t.ok(set(ids) == set(aliases), "all %d sessions are attached" % len(aliases),
         "attached: %s" % sorted(ids))
    line = "yes %s" % ("z" * 70)
    cmd = "for i in %s; do %s >/dev/hvc$i & done; %s\r" % (
        " ".join(str(i) for i in range(FLOOD_CONSOLES - 1)), line, line)
    rss = RSSWatch()
    by.start()
    t_flood = time.time()
    s0.send_frame(OP_BINARY, cmd.encode())
    # Wait for each session's end; read a client only once its session
    # is closing, to see the notice and the close frame.
    closing = {}
    deadline = time.monotonic() + 600
    while time.monotonic() < deadline and len(closing) < len(aliases):
        for ts, m in log_lines(r"session (\d+) guest=%s dev=(\S+): ATTACHED -> CLOSING \(([^)]*)\)"
                               % GF, m0):
            a = m.group(2)
            if a in slow and a not in closing:
                closing[a] = (ts, m.group(3))
                slow[a].sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
        reading = [s for a, s in slow.items() if a in closing and not s.closed and
                   s.close_frame is None]
        if reading:
            r, _, _ = select.select([s.sock for s in reading], [], [], 0.1)
            for s in reading:
                if s.sock in r:
                    while s.close_frame is None and s.read_frame(0.005) is not None:
                        pass
        else:
            time.sleep(0.1)
    for s in slow.values():
        s.wait_close(10)
    by.stop_ = True
    growth = rss.stop()
    by.join(60)
    caps = dict((m.group(1), ts) for ts, m in log_lines(
        r"session (\d+): client output at max_buffer", m0))
    t.ok(all(ids.get(a) in caps for a in aliases),
         "3 every session reaches max_buffer (%d of %d), and output is dropped" %
         (len([a for a in aliases if ids.get(a) in caps]), len(aliases)))
    reasons = {a: r for a, (_, r) in closing.items()}
    t.ok(len(reasons) == len(aliases) and set(reasons.values()) == {"client too slow"},
         "3 all %d sessions end with 'client too slow'" % len(aliases),
         "reasons: %s" % reasons, d.log_tail(10, m0))
    stuck = [closing[a][0] - caps[ids[a]] for a in aliases if a in closing and ids.get(a) in caps]
    if stuck:
        t.figure("slow readers: time held at max_buffer before 'client too slow'",
               "%.1f..%.1f" % (min(stuck), max(stuck)), "s")
    # The grace is 5 s (SESSION_SLOW_GRACE): not ended before it, nor long
    # after it.
    t.ok(len(stuck) == len(aliases) and 4.8 <= min(stuck) and max(stuck) <= 6.5,
         "3 each slow client is held at max_buffer for the 5 s grace, then ended (%s s; bounds 4.8-6.5)"
         % (" ".join("%.2f" % x for x in stuck)))
    if closing:
        t.figure("slow readers: flood start to the last 'client too slow'",
               round(max(ts for ts, _ in closing.values()) - t_flood, 1), "s")
    want = notice("disconnected", "client too slow")
    bad = ["%s: close %r, text %s" % (a, s.close_frame, show(s.data[-80:]))
           for a, s in slow.items()
           if s.close_frame != (4005, "client too slow") or not bytes(s.data).endswith(want)]
    t.ok(not bad, "3 each client finds 'disconnected: client too slow' at the end of its text "
         "and close 4005 'client too slow'", *bad)
    ends = {a: ended(a, GF, m0) for a in aliases}
    dropped = {a: e[0][4] for a, e in ends.items() if e}
    t.ok(len(dropped) == len(aliases) and all(v > 0 for v in dropped.values()),
         "3 each session's end line counts dropped output (bytes_dropped > 0)",
         "bytes_dropped: %s" % dropped)
    got = sum(e[0][3] + e[0][4] for e in ends.values() if e)
    t.figure("slow readers: guest output read by the daemon (bytes_out + bytes_dropped)", got, "bytes")
    t.figure("slow readers: output handed to each client (bytes_out)",
           "%d..%d" % (min(e[0][3] for e in ends.values() if e),
                       max(e[0][3] for e in ends.values() if e)) if all(ends.values()) else "?",
           "bytes")
    # Per session the daemon holds at most max_buffer of output, plus the
    # WebSocket's socket-side queue (64 KiB and one frame of 64 KiB); per
    # console, its history: history + history_head of the current run (the
    # defaults, 256K + 64K, virtconsoled.conf(5)).
    per = MAX_BUFFER + 128 * 1024 + HISTORY_PER_RUN
    bound = (len(aliases) * per) // 1024 + 2048
    t.figure("slow readers: daemon RSS growth", growth, "KiB")
    if not d.asan():
        t.ok(growth < bound,
             "3 daemon RSS growth with %d stuck clients: %d KiB (bound: %d x (max_buffer + 128 KiB "
             "WebSocket queue + 320 KiB history) + 2 MiB = %d KiB)" % (len(aliases), growth, len(aliases), bound))
    # The reading client was served while the slow ones were stuck.
    lo = min(caps.values()) if caps else None
    hi = max(ts for ts, _ in closing.values()) if closing else None
    during = [(a, b, ok) for a, b, ok in by.results if lo and hi and a >= lo and b <= hi]
    fails = [r for r in by.results if not r[2]]
    t.ok(during and not fails,
         "3 the reading client of %s is served meanwhile: %d echo round trips while clients "
         "were stuck, %d failed" % (GA, len(during), len(fails)))
    if during:
        rtt = sorted(b - a for a, b, _ in during)
        med0, med = sorted(rtt0)[len(rtt0) // 2], rtt[len(rtt) // 2]
        t.figure("reading client echo, before / during the flood (median)", "%.3f/%.3f" % (med0, med), "s")
        # Measured 0.036 s before, 0.034 s during: the ratio in this run,
        # the reference floored at 0.02 s, at most 5 x.
        t.ok(med <= 5 * max(med0, 0.02),
             "3 the reading client's median echo during the flood is %.3f s, %.1f x the %.3f s before "
             "(bound 5 x)" % (med, med / max(med0, 0.02), med0))
    t.ok(d.alive(), "3 the daemon is running")
    lab.destroy(GF)
    by.c.escape()

# ------------------------------------------------------------ 5 stuck console

with t.case("5 pasting into a console that takes nothing (guest paused)"):
    # libvirtd holds max_client_requests packets for the paused guest's
    # console and reads nothing more from that guest's own connection,
    # until its keepalive drops it (docs/ARCHITECTURE.md, "Connections per
    # guest").  The daemon's loop must not wait, the hypervisor connection
    # stays up, and the session ends with 'console connection lost'.
    c = Client(d.sock(GA))
    ok = c.wait_prompt(60) and c.run(
        "stty -echo -icanon; echo RAW-$((2+2)); cat >/dev/null; stty sane",
        rb"RAW-4", 30)
    t.ok(ok, "5 %s serial0 runs cat in a terminal without echo" % GA, show(c.buf))
    r = lab.virsh("suspend", GA)
    t.ok(r.returncode == 0, "5 %s paused" % GA, r.stderr)
    m0 = d.mark()
    state = {"sent": 0}

    def stuck_sender():
        c.sock.setblocking(True)
        c.sock.settimeout(120)
        try:
            for i in range(0, 256 * 1024, 4096):
                c.sock.sendall(b"x" * 4096)
                state["sent"] = i + 4096
        except OSError:
            pass
    threading.Thread(target=stuck_sender, daemon=True).start()
    probe = LoopProbe()
    t0 = time.monotonic()
    lost = wait_lines(r"hv: guest connection lost", 90, since=m0)
    el = time.monotonic() - t0
    time.sleep(1)
    stall = probe.stop()
    t.figure("stuck console: the guest's libvirt connection dropped after",
             round(el, 1) if lost else "no", "s")
    t.figure("stuck console: longest wait for the control socket", round(stall, 2), "s")
    t.ok(d.alive(), "5 the daemon is running")
    t.ok(stall < 0.5 and probe.errors == 0, "5 the event loop keeps answering while the console takes "
         "nothing (longest wait for the control socket %.2f s over %.1f s, bound 0.5 s; %d bad answers)"
         % (stall, el, probe.errors))
    if lost:
        t.diag("libvirtd stopped reading the guest's connection; it was dropped after %.1f s" % el)
        t.ok(d.find_log(r"session \d+: \d+ bytes of input not delivered", m0),
             "5 the input the console never took is counted in the log", d.log_tail(10, m0))
    r = lab.virsh("resume", GA)
    t.ok(r.returncode == 0, "5 %s resumed" % GA, r.stderr)
    if lost:
        e = wait_for(lambda: ended("serial0", GA, m0), 10, 0.1)
        t.ok(e and e[0][1] == "console connection lost" and
             not d.find_log(r"hv: connection lost", m0),
             "5 the session ended with 'console connection lost'; the hypervisor connection "
             "stayed up", d.log_tail(10, m0))
    c.close()
    c2 = Client(d.sock(GA))
    c2.send(b"\x03")       # ^C: the end of cat
    ok = c2.wait_prompt(60) and c2.echo_check(30)
    t.ok(ok, "5 afterwards a new client of %s serial0 gets its console and echoes" % GA,
         show(c2.buf), d.log_tail(10, m0))
    c2.escape()

# ------------------------------------------------------------ 6 idle, dropped

with t.case("6 an idle console whose guest connection libvirtd drops"):
    # libvirt 9.0 tells a remote stream nothing when its connection closes
    # (no stream event; a non-blocking recv says "nothing yet" for ever):
    # hv.c's close callback fails the link's streams itself.  An idle
    # console has no send of its own that would find the connection gone.
    ids0 = lab.libvirtd_client_ids()
    c = Client(d.sock(GA))
    c.send(b"\r")
    ok = c.wait_prompt(60)
    t.ok(ok, "6 %s serial0 answers" % GA, show(c.buf))
    new = sorted(lab.libvirtd_client_ids() - ids0)
    t.ok(len(new) == 1, "6 libvirtd has one new client, the guest's own connection (%s)" % new)
    if len(new) == 1:
        m0 = d.mark()
        t1 = time.monotonic()
        r = lab.virt_admin("client-disconnect", "libvirtd", str(new[0]))
        t.ok(r.returncode == 0, "6 virt-admin client-disconnect %d" % new[0], r.stderr)
        e = wait_for(lambda: ended("serial0", GA, m0), 10, 0.1)
        t.ok(e and e[0][1] == "console connection lost" and
             not d.find_log(r"hv: connection lost", m0),
             "6 the idle session ended with 'console connection lost' (after %s s); "
             "the hypervisor connection stayed up"
             % (round(time.monotonic() - t1, 1) if e else "10: never"), d.log_tail(10, m0))
    c.close()
    c2 = Client(d.sock(GA))
    c2.send(b"\r")
    ok = c2.wait_prompt(60) and c2.echo_check(30)
    t.ok(ok, "6 afterwards a new client of %s serial0 gets its console and echoes" % GA,
         show(c2.buf))
    c2.escape()

with t.case("exit"):
    rc = d.stop()
    t.ok(rc == 0, "the daemon exits 0 on SIGTERM (%s)" % rc, d.log_tail(5))

t.done()
