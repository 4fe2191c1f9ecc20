#!/usr/bin/python3
"""Web door resources (the web-bounds issue, docs/SECURITY.md): what the
daemon queues for one client is bounded, pongs included; per-address
limits count IPv6 clients per ipv6_prefix; an over-limit TLS connection is
closed before any TLS byte; a reload that would leave a tls listener
without an SSL context is refused as a whole; a response that makes no
progress, or a connection that does not upgrade, loses its slot within
handshake_timeout (twice that in all); at most three quarters of
max_clients are connections that have not upgraded; a head that arrives a
byte at a time costs linear work; static files are only real files under
web_root (no symlinked directory, no dot file).

One daemon ("wb"): a token listener on 127.0.0.1, one on [::1], no TLS at
start (the reload case adds one); a lab guest whose console the ping flood
holds.  IPv6 client addresses come from fd00:7663:0:1::/64 and
fd00:7663:0:2::/64, added to lo for the test and removed after.
"""

import datetime
import os
import re
import socket
import ssl
import subprocess
import sys
import time

sys.dont_write_bytecode = True     # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from vcdtest import TAP, Lab, defer, make_tmpdir, vcd_binary  # noqa: E402

t = TAP()
lab = Lab(t)
if not os.access(vcd_binary(), os.X_OK):
    t.skip_all("no daemon binary at %s" % vcd_binary())

from webtest import (OP_PING, RawWS, WebDaemon, client_ssl_context,  # noqa: E402
                     connect, frame, http, make_cert, request_bytes, web_root)

TMP = make_tmpdir("vcd-wb.")
G = "twb-a"
lab.remove_leftovers([G])
V6 = ["fd00:7663:0:1::2", "fd00:7663:0:1::3", "fd00:7663:0:2::2"]


def ip(*args):
    return subprocess.run(["ip"] + list(args), capture_output=True, text=True, timeout=10)


cert, key = make_cert(TMP)
d = WebDaemon(lab.uri, {
    "listen": ["127.0.0.1:0", "[::1]:0"],
    "token_secret_file": os.path.join(TMP, "secret"),
    "web_root": web_root(),
    "start_wait": 20,
    "idle_timeout": 0,
    "ping_interval": 0,
}, name="wb", tmpdir=TMP)


with t.case("setup"):
    out = lab.create_many([("create", G, 0)])
    t.ok(all(rc == 0 for _, rc, _ in out), "guest %s created" % G, "\n".join(o for _, _, o in out))
    added = []
    for a in V6:
        r = ip("-6", "addr", "add", a + "/128", "dev", "lo", "nodad")
        if r.returncode == 0:
            added.append(a)
            defer(ip, "-6", "addr", "del", a + "/128", "dev", "lo")
    t.ok(len(added) == len(V6), "IPv6 client addresses %s on lo" % ", ".join(V6),
         *[ip("-6", "addr", "add", a + "/128", "dev", "lo", "nodad").stderr for a in V6 if a not in added])
    ok = d.start()
    t.ok(ok, "the daemon starts", d.log_tail())
    if not ok:
        t.done()
    P = d.port()
    P6 = d.port(address="[::1]")
    t.ok(P and P6, "ports %s and [::1]:%s" % (P, P6))


with t.case("1 a client that pings and never reads"):
    tok = d.token(G)
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    s.connect(("127.0.0.1", P))
    s.sendall(request_bytes("GET", "/console/%s?token=%s" % (G, tok), P, [
        ("Upgrade", "websocket"), ("Connection", "Upgrade"),
        ("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ=="),
        ("Sec-WebSocket-Version", "13"), ("Sec-WebSocket-Protocol", "binary")]))
    s.settimeout(10)
    head = b""
    while b"\r\n\r\n" not in head:
        c = s.recv(1)
        if not c:
            break
        head += c
    t.ok(head.startswith(b"HTTP/1.1 101 "), "upgraded (%r)" % head[:40])
    rss0 = d.rss_kib()
    ping = frame(OP_PING, b"p" * 125)
    s.setblocking(False)
    sent = blocked_at = 0
    peak = rss0
    t0 = time.monotonic()
    while time.monotonic() - t0 < 10:
        try:
            n = s.send(ping)
            sent += n
            if n < len(ping):
                s.setblocking(True)
                s.settimeout(0.5)
                try:
                    s.sendall(ping[n:])
                    sent += len(ping) - n
                except (socket.timeout, OSError):
                    blocked_at = blocked_at or time.monotonic() - t0
                s.setblocking(False)
        except BlockingIOError:
            blocked_at = blocked_at or time.monotonic() - t0
            time.sleep(0.05)
        except OSError as e:
            t.diag("send: %s after %.1f s (the daemon closed the connection)" % (e, time.monotonic() - t0))
            break
        r = d.rss_kib()
        peak = max(peak, r or 0)
    grew = peak - rss0
    t.figure("ping flood: bytes of pings the client got sent", sent, "bytes")
    t.figure("ping flood: daemon RSS growth", grew, "KiB")
    t.ok(grew < 1024, "the daemon's RSS grew less than 1 MiB over 10 s of pings (%d KiB, %d bytes of pings sent)"
         % (grew, sent))
    t.ok(blocked_at > 0, "the client's send() blocked (after %.2f s): the daemon stopped reading it" % blocked_at)
    t.ok(d.wait_log(r"guest=%s dev=serial0: ended reason=\"client too slow\"" % G, 10),
         "its session ended 'client too slow' (the queue stayed above the mark for 5 s)", d.log_tail(8))
    s.close()
    t.ok(d.alive(), "the daemon is up")


def hold(port, addr="127.0.0.1", source=None):
    """A connection that sends nothing (it holds a slot until the
    handshake timeout)."""
    c = connect(port, addr, source)
    defer(c.close)
    return c


with t.case("3 IPv6 clients are counted per ipv6_prefix"):
    ok = d.reload({"max_clients_per_address": 1})
    t.ok(ok, "reload: max_clients_per_address = 1, ipv6_prefix = 64 (the default)")
    a = hold(P6, "::1", V6[0])
    time.sleep(0.2)
    r = http(P6, "/", addr="::1", source=V6[1])
    t.ok(r.status == 429, "%s holds a slot: %s (same /64) gets 429 (%s)" % (V6[0], V6[1], r.status))
    r = http(P6, "/", addr="::1", source=V6[2])
    t.ok(r.status == 200, "%s (another /64) gets the page (%s)" % (V6[2], r.status))
    ok = d.reload({"ipv6_prefix": 128})
    r = http(P6, "/", addr="::1", source=V6[1])
    t.ok(ok and r.status == 200, "ipv6_prefix = 128: %s is an address of its own again (%s)" % (V6[1], r.status))
    a.close()
    d.reload({"ipv6_prefix": None})
    bad = os.path.join(TMP, "bad.conf")
    with open(bad, "w") as f:
        f.write("uri = %s\nipv6_prefix = 16\n" % lab.uri)
    r = subprocess.run([vcd_binary(), "-n", "-f", bad], capture_output=True, text=True, timeout=30)
    t.ok(r.returncode != 0 and "bad value for 'ipv6_prefix': '16' (expected a number 32..128)" in r.stderr,
         "ipv6_prefix = 16 is refused: %s" % r.stderr.strip())


with t.case("4 a reload that would leave a tls listener without a context"):
    mark = d.mark()
    d.write_config({"listen": ["127.0.0.1:0", "[::1]:0", "127.0.0.1:0 tls"],
                    "tls_cert": os.path.join(TMP, "missing-cert.pem"),
                    "tls_key": os.path.join(TMP, "missing-key.pem")})
    d.signal(__import__("signal").SIGHUP)
    m = d.wait_log(r"config has errors, not reloading: .*wb\.conf: TLS: cannot load .*missing-cert\.pem", 10,
                   since=mark)
    t.ok(m, "refused as a whole: 'config has errors, not reloading: FILE: TLS: cannot load ...'", d.log_tail(5))
    bad_port = d.port(tls=True, since=mark, timeout=0.5)
    t.ok(bad_port is None, "no tls listener was opened")
    if bad_port:
        # What a daemon that opened it anyway does at its first TLS client.
        try:
            client_ssl_context().wrap_socket(socket.create_connection(("127.0.0.1", bad_port), timeout=5))
        except (ssl.SSLError, OSError) as e:
            t.diag("a TLS client of the listener opened without a context: %s" % e)
        time.sleep(0.5)
    t.ok(d.alive() and http(P, "/").status == 200, "the daemon is up and the old configuration serves on")
    # The same with a key that exists: the reload goes through, TLS works.
    mark = d.mark()
    ok = d.reload({"tls_cert": cert, "tls_key": key})
    PT = d.port(tls=True, since=mark)
    r = http(PT, "/", tls=client_ssl_context()) if PT else None
    t.ok(ok and r is not None and r.status == 200, "with a readable pair the reload opens it and TLS serves (%s)"
         % (r and r.status))


with t.case("3 an over-limit TLS connection is closed before any TLS byte"):
    held = hold(PT)
    time.sleep(0.2)
    c = socket.create_connection(("127.0.0.1", PT), timeout=5)
    got = b""
    try:
        c.sendall(b"\x16\x03\x01\x00\x05hello")    # the start of a ClientHello
        while True:
            b = c.recv(4096)
            if not b:
                break
            got += b
    except (ConnectionResetError, BrokenPipeError, socket.timeout):
        pass
    c.close()
    try:
        client_ssl_context().wrap_socket(socket.create_connection(("127.0.0.1", PT), timeout=5))
        handshake = "completed"
    except (ssl.SSLError, OSError) as e:
        handshake = "failed: %s" % e.__class__.__name__
    t.ok(handshake.startswith("failed"), "a real TLS client over the limit gets no handshake (%s)" % handshake)
    # A dead daemon gives no handshake and no byte either.
    t.ok(d.answers(), "the daemon that refused them is alive and answers status", d.log_tail(5))
    t.ok(got == b"", "the second TLS client of one address (max_clients_per_address = 1): "
         "closed with 0 bytes, no ServerHello (%d bytes)" % len(got))
    t.ok(d.find_log(r"status=429 why=too many clients from this address \(closed before TLS\)"),
         "and logged as a 429 closed before TLS")
    held.close()
    r = http(PT, "/", tls=client_ssl_context())
    t.ok(r.status == 200, "once the slot is free, a TLS client is served (%s)" % r.status)


def count_calls(pid, func, action):
    """How many times the daemon calls func while action() runs: gdb
    attaches with a breakpoint that counts and continues, then detaches.
    Returns (count or None, gdb's output)."""
    cmds = os.path.join(TMP, "count.gdb")
    with open(cmds, "w") as f:
        f.write("set pagination off\nset confirm off\nbreak %s\ncommands 1\nsilent\ncontinue\nend\n"
                "echo ATTACHED\\n\ncontinue\ninfo breakpoints\n" % func)
    p = subprocess.Popen(["gdb", "-q", "-nx", "-batch", "-p", str(pid), "-x", cmds],
                         stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    out = ""
    while "ATTACHED" not in out:
        line = p.stdout.readline()
        if not line:
            break
        out += line
    if "ATTACHED" in out:
        time.sleep(0.2)
        action()
        time.sleep(0.2)
    p.send_signal(__import__("signal").SIGINT)
    rest, _ = p.communicate(timeout=60)
    out += rest
    m = re.search(r"breakpoint already hit (\d+) time", out)
    if m:
        return int(m.group(1)), out
    # gdb says nothing of a breakpoint that was never hit.
    return (0 if "ATTACHED" in out and re.search(r"^1 +breakpoint", out, re.M) else None), out


with t.case("6 a request head that arrives a byte at a time is parsed once"):
    # A head of 16 KiB (34 headers of 490 bytes): the first 8 KiB at once,
    # the rest a byte at a time (TCP_NODELAY).  A parser that starts over
    # on each read past 8 KiB runs once per read (under gdb's breakpoint
    # the daemon is slow and a read gathers many bytes, so "once per read"
    # is tens of times, not thousands); the scan looks at each new byte
    # once and the parse runs once, at the blank line.  gdb counts.
    filler = "X-Fill-%02d: " + "f" * 480 + "\r\n"
    head = "GET / HTTP/1.1\r\nHost: 127.0.0.1:%d\r\n" % P
    n = 0
    while len(head) < 8300:
        head += filler % n
        n += 1
    first = head.encode()
    tail = b""
    while len(first) + len(tail) < 16000:
        tail += (filler % n).encode()
        n += 1
    tail += b"\r\n"
    got = {}

    def send_head():
        c = connect(P)
        c.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        c.sendall(first)
        time.sleep(0.1)
        for i in range(len(tail)):
            c.send(tail[i:i + 1])
        c.settimeout(20)
        got["status"] = c.recv(64)[:12]
        c.close()

    calls, out = count_calls(d.pid, "http_parse", send_head)
    t.ok(got.get("status") == b"HTTP/1.1 200", "a %d-byte head, %d headers, its last %d bytes a byte at a time: "
         "served (%r)" % (len(first) + len(tail), n + 1, len(tail), got.get("status")), out[-600:])
    t.figure("http_parse calls for one 16 KiB head whose last 8 KiB came a byte at a time", calls, "calls")
    t.ok(calls == 1, "the head is parsed once (http_parse ran %s times)" % calls,
         out[-600:])
    t.ok(d.alive(), "the daemon runs on after gdb detached")


with t.case("6 static files are real files under web_root"):
    import shutil
    root = os.path.join(TMP, "webroot")
    shutil.copytree(web_root(), root, symlinks=True)
    outside = os.path.join(TMP, "outside")
    os.mkdir(outside)
    with open(os.path.join(outside, "secret.txt"), "w") as f:
        f.write("outside web_root\n")
    os.symlink(outside, os.path.join(root, "linked"))
    with open(os.path.join(root, ".hidden.txt"), "w") as f:
        f.write("a dot file\n")
    os.mkdir(os.path.join(root, "sub"))
    os.mkdir(os.path.join(root, ".git"))
    with open(os.path.join(root, ".git", "config.txt"), "w") as f:
        f.write("a file in a dot directory\n")
    with open(os.path.join(root, "sub", "real.txt"), "w") as f:
        f.write("a real file\n")
    os.symlink(os.path.join(outside, "secret.txt"), os.path.join(root, "sub", "link.txt"))
    # For the deadlines below: a response larger than the kernel's
    # socket buffers can hold (tcp_wmem's maximum is 4 MiB).
    with open(os.path.join(root, "big.bin"), "wb") as f:
        f.truncate(8 << 20)
    ok = d.reload({"web_root": root})
    t.ok(ok, "reload: web_root = a copy of the page with traps in it")
    for path, want, what in [
            ("/sub/real.txt", 200, "a real file in a real subdirectory"),
            ("/", 200, "the page"),
            ("/linked/secret.txt", 404, "a file through a symlinked directory"),
            ("/sub/link.txt", 404, "a symlinked file"),
            ("/.hidden.txt", 404, "a dot file"),
            ("/.git/config.txt", 404, "a file in a dot directory"),
            ("/%2Ehidden.txt", 404, "a dot file, its dot escaped")]:
        r = http(P, path)
        t.ok(r.status == want and (want != 404 or b"outside" not in r.body and b"dot" not in r.body),
             "%s: %s (%s)" % (what, want, r.status))
    t.ok(http(P, "/").header("Content-Type").startswith("text/html"), "the page is still text/html")


def slow_reader(port, path, wait=0.0, rate=None):
    """Ask for path after wait seconds: rate None never reads (for 6 s,
    with a 4 KiB receive buffer), else reads rate bytes/s.  Returns
    (body bytes received, Content-Length, seconds from connect to the
    daemon's close or None)."""
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    # A fixed receive buffer: autotuned, it could take the whole file.
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096 if rate is None else 65536)
    t0 = time.monotonic()
    s.connect(("127.0.0.1", port))
    time.sleep(wait)
    s.sendall(request_bytes("GET", path, port))
    got = bytearray()
    closed = None
    s.settimeout(0.2)
    if rate is None:
        time.sleep(6)
    while time.monotonic() - t0 < 15:
        try:
            b = s.recv(65536)
        except socket.timeout:
            continue
        except OSError:
            b = b""
        if not b:
            closed = time.monotonic() - t0
            break
        got += b
        if rate:
            time.sleep(len(b) / rate)
    s.close()
    head, _, body = bytes(got).partition(b"\r\n\r\n")
    length = None
    for line in head.split(b"\r\n"):
        if line.lower().startswith(b"content-length:"):
            length = int(line.split(b":")[1])
    return len(body), length, closed


with t.case("2 deadlines: a response that makes no progress, a connection that does not upgrade"):
    ok = d.reload({"handshake_timeout": 2, "max_clients": 8, "max_clients_per_address": None})
    t.ok(ok, "reload: handshake_timeout = 2, max_clients = 8; /big.bin is 8 MiB")
    mark = d.mark()
    body, length, closed = slow_reader(P, "/big.bin")
    t.ok(length == 8 << 20 and body < length and closed is not None,
         "a client that does not read its response for 6 s: cut off (then %s of %s bytes came, and the close)"
         % (body, length))
    t.ok(d.wait_log(r"response made no progress in 2s, closing", 5, since=mark),
         "logged: 'response made no progress in 2s, closing'", d.log_tail(5))
    mark = d.mark()
    t_connect = time.time()
    # Reading 1.5 MB/s, the daemon's writes progress about every second
    # (the kernel wakes a writer when a third of its buffer is free); the
    # 8 MiB cannot all be read or buffered (about 3 MiB) by 4 s.
    body, length, closed = slow_reader(P, "/big.bin", wait=1.5, rate=1.5e6)
    m = d.wait_log(r"^(\S+) .*response not taken in 4s, closing", 5, since=mark)
    at = None
    if m:
        at = datetime.datetime.strptime(m[0], "%Y-%m-%dT%H:%M:%S.%fZ").replace(
            tzinfo=datetime.timezone.utc).timestamp() - t_connect
    t.ok(m, "a client that asks after 1.5 s and reads 1.5 MB/s: logged 'response not taken in 4s, closing'",
         d.log_tail(5))
    t.ok(at is not None and 3.8 <= at <= 4.8 and length == 8 << 20 and body < length and closed,
         "the daemon closed it %s s after its connect (2 x handshake_timeout), %s of %s bytes reached it"
         % (at and "%.2f" % at, body, length))

    # The slow-read flood: 6 clients that never read an 8 MiB response.
    flood = []
    for _ in range(6):
        c = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        c.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        c.connect(("127.0.0.1", P))
        c.sendall(request_bytes("GET", "/big.bin", P))
        defer(c.close)
        flood.append(c)

    def held():
        """The daemon's established connections on port P."""
        r = subprocess.run(["ss", "-tnpH", "state", "established", "( sport = :%d )" % P],
                           capture_output=True, text=True, timeout=10)
        return sum("pid=%d," % d.pid in line for line in r.stdout.splitlines())
    time.sleep(0.5)
    n0 = held()
    time.sleep(3.0)
    n1 = held()
    t.figure("slow-read flood: slots held 0.5 s / 3.5 s after 6 requests that are never read "
             "(handshake_timeout = 2)", "%d / %d" % (n0, n1), "slots")
    t.ok(n0 == 6 and n1 == 0, "6 clients that never read an 8 MiB response hold their slots for "
         "handshake_timeout, not for ever (%d held after 0.5 s, %d after 3.5 s)" % (n0, n1))
    for c in flood:
        c.close()


with t.case("2 at most three quarters of max_clients have not upgraded"):
    tok = d.token(G)
    ws = RawWS(P, "/console/%s?token=%s" % (G, tok))
    defer(ws.close)
    t.ok(ws.accepted(), "a console is open (1 of max_clients = 8)")
    held = [hold(P) for _ in range(6)]
    time.sleep(0.3)
    t0 = time.monotonic()
    try:
        r = http(P, "/", timeout=3)
        status, text = r.status, r.text()
    except Exception as e:     # noqa: BLE001 - what came back, for the message
        status, text = None, repr(e)
    t.ok(status == 503 and "too many clients" in text,
         "6 connections that sent nothing hold 6 slots (3/4 of 8): the 7th connection gets 503 at once "
         "although only 7 of 8 slots are taken (%s in %.1f s: %s)" % (status, time.monotonic() - t0, text.strip()))
    eofs = 0
    for c in held:
        c.settimeout(4)
        try:
            eofs += c.recv(16) == b""
        except OSError:
            eofs += 1
    t.ok(eofs == 6, "the 6 are closed after handshake_timeout (%d of 6)" % eofs)
    # A dead daemon closes them too.
    r = http(P, "/")
    t.ok(d.answers() and r.status == 200,
         "then the daemon is alive, answers status, and a client is served (%s)" % r.status)
    ws.close()
    d.reload({"handshake_timeout": None, "max_clients": None, "web_root": web_root()})


with t.case("the end"):
    t.ok(d.alive(), "the daemon is still up")
    t.ok(d.stop() == 0, "and exits 0 on SIGTERM")

t.done()
