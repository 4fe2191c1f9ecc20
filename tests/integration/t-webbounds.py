#!/usr/bin/python3
"""Web door resources (the web-bounds issue, docs/SECURITY.md): what the
daemon queues for one client is bounded, pongs included; per-address
limits count IPv6 clients per ipv6_prefix; an over-limit TLS connection is
closed before any TLS byte; a reload that would leave a tls listener
without an SSL context is refused as a whole.

One daemon ("wb"): a token listener on 127.0.0.1, one on [::1], no TLS at
start (the reload case adds one); a lab guest whose console the ping flood
holds.  IPv6 client addresses come from fd00:7663:0:1::/64 and
fd00:7663:0:2::/64, added to lo for the test and removed after.
"""

import os
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

from webtest import (OP_PING, WebDaemon, client_ssl_context, connect,  # noqa: E402
                     frame, http, make_cert, request_bytes, web_root)

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
    t.ok(got == b"", "the second TLS client of one address (max_clients_per_address = 1): "
         "closed with 0 bytes, no ServerHello (%d bytes)" % len(got))
    t.ok(d.find_log(r"status=429 why=too many clients from this address \(closed before TLS\)"),
         "and logged as a 429 closed before TLS")
    held.close()
    r = http(PT, "/", tls=client_ssl_context())
    t.ok(r.status == 200, "once the slot is free, a TLS client is served (%s)" % r.status)


with t.case("the end"):
    t.ok(d.alive(), "the daemon is still up")
    t.ok(d.stop() == 0, "and exits 0 on SIGTERM")

t.done()
