#!/usr/bin/python3
"""The websockify path: Debian's websockify (0.10) in front of the guest
sockets, with a TokenFile line `TOKEN: unix_socket:SOCKET_DIR/GUEST`, driven
by a real WebSocket client (Debian's python3-websockets).

Echo round trip, the escape key's notice coming back over the WebSocket,
with the `binary` subprotocol and without one, and a second WebSocket
client refused with `console busy` while the first keeps working.
"""

import asyncio
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time

sys.dont_write_bytecode = True     # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from vcdtest import (TAP, Daemon, Lab, defer, free_port, make_tmpdir, nonce, notice,  # noqa: E402
                     no_sanitizer_report, notices, show, sock_info, vcd_binary,
                     wait_for)

t = TAP()
lab = Lab(t)
if not os.access(vcd_binary(), os.X_OK):
    t.skip_all("no daemon binary at %s" % vcd_binary())


def have_tools():
    try:
        import websockets  # noqa: F401
    except ImportError:
        return False
    return shutil.which("websockify") is not None


if not have_tools() and os.geteuid() == 0:
    # Debian packages only; the test installs what it needs.
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    cmd = ["apt-get", "install", "-y", "-q", "--no-install-recommends",
           "websockify", "python3-websockets"]
    r = subprocess.run(cmd, env=env, capture_output=True, text=True)
    if r.returncode != 0:
        subprocess.run(["apt-get", "update", "-q"], env=env, capture_output=True)
        r = subprocess.run(cmd, env=env, capture_output=True, text=True)
    t.diag("apt-get install websockify python3-websockets: status %d" % r.returncode)
if not have_tools():
    t.skip_all("websockify or python3-websockets missing")

import websockets  # noqa: E402
import websockets.exceptions  # noqa: E402

TMP = make_tmpdir("vcd-tw.")
G = "tw-a"
lab.remove_leftovers([G])
d = Daemon(lab.uri, {"start_wait": 20}, name="ws", tmpdir=TMP)


class WS:
    """A WebSocket client of websockify, with a byte buffer like Client."""

    def __init__(self, ws):
        self.ws = ws
        self.buf = bytearray()
        self.pos = 0
        self.closed = False
        self.close_info = None
        self.text_frames = 0

    @classmethod
    async def open(cls, url, subprotocols):
        ws = await websockets.connect(url, subprotocols=subprotocols,
                                      open_timeout=10, close_timeout=2,
                                      max_size=None)
        return cls(ws)

    async def _fill(self, timeout):
        if self.closed:
            return
        try:
            m = await asyncio.wait_for(self.ws.recv(), max(0.01, timeout))
        except asyncio.TimeoutError:
            return
        except websockets.exceptions.ConnectionClosed as e:
            self.closed = True
            self.close_info = "code %s reason %r" % (e.code, e.reason)
            return
        if isinstance(m, str):
            self.text_frames += 1
            m = m.encode("latin-1")
        self.buf += m

    async def send(self, data):
        try:
            await self.ws.send(data)
            return True
        except websockets.exceptions.ConnectionClosed:
            self.closed = True
            return False

    async def read_until(self, pattern, timeout=10):
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
            await self._fill(left)

    async def wait_prompt(self, timeout=30):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and not self.closed:
            if not await self.send(b"\r"):
                return False
            if await self.read_until(rb"# ", 0.5):
                return True
        return False

    async def echo_check(self, timeout=10):
        n = nonce()
        await self.send(b"echo ws-%s-$((6*7))\r" % n.encode())
        return await self.read_until(b"ws-%s-42" % n.encode(), timeout) is not None

    async def read_until_close(self, timeout=10):
        deadline = time.monotonic() + timeout
        while not self.closed and time.monotonic() < deadline:
            await self._fill(deadline - time.monotonic())
        data = bytes(self.buf[self.pos:])
        self.pos = len(self.buf)
        return data, self.closed

    async def close(self):
        try:
            await self.ws.close()
        except Exception:
            pass


def end_check(data, closed, kind, reason, exact=False):
    want = notice(kind, reason)
    if not closed:
        return "WebSocket not closed; got %s" % show(data)
    if not data.endswith(want):
        return "closed, but the data does not end with %r: %s" % (want, show(data))
    if len(notices(data)) != 1:
        return "notices: %r" % notices(data)
    if exact and data != want:
        return "more than the notice: %s" % show(data)
    return ""



def port_open(port):
    try:
        socket.create_connection(("127.0.0.1", port), 0.5).close()
        return True
    except OSError:
        return False


class Websockify:
    def __init__(self, token_file, port, log_path):
        self.log_path = log_path
        log = open(log_path, "ab")
        self.p = subprocess.Popen(
            ["websockify", "--token-plugin", "TokenFile", "--token-source",
             token_file, "127.0.0.1:%d" % port],
            stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
            start_new_session=True)
        log.close()
        defer(self.stop)

    def log(self):
        try:
            with open(self.log_path, errors="replace") as f:
                return f.read()
        except OSError:
            return ""

    def stop(self):
        """websockify forks per connection: end the group it leads."""
        if self.p.poll() is None:
            try:
                os.killpg(self.p.pid, signal.SIGTERM)
                self.p.wait(5)
            except (ProcessLookupError, subprocess.TimeoutExpired):
                pass
        try:
            os.killpg(self.p.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        self.p.wait()


with t.case("setup"):
    ok = d.start()
    t.ok(ok, "the daemon starts", d.log_tail())
    if not ok:
        t.done()
    r = lab.create(G)
    t.ok(r.returncode == 0, "guest %s created" % G, r.stderr)
    t.ok(wait_for(lambda: sock_info(d.sock(G)), 10), "its socket appears")
    token = "tok-" + nonce()
    token_file = os.path.join(TMP, "tokens")
    with open(token_file, "w") as f:
        f.write("# one line per guest\n%s: unix_socket:%s\n" % (token, d.sock(G)))
    port = free_port()
    wsf = Websockify(token_file, port, os.path.join(TMP, "websockify.log"))
    ok = wait_for(lambda: port_open(port) or wsf.p.poll() is not None, 15) and wsf.p.poll() is None
    t.ok(ok, "websockify listens on 127.0.0.1:%d (TokenFile %s)" % (port, token_file), wsf.log())
    URL = "ws://127.0.0.1:%d/?token=%s" % (port, token)


async def round_trip(subprotocols, label):
    m0 = d.mark()
    c = await WS.open(URL, subprotocols)
    want = subprotocols[0] if subprotocols else None
    t.ok(c.ws.subprotocol == want, "%s: handshake, subprotocol %r" % (label, c.ws.subprotocol))
    ok = await c.wait_prompt(40)
    t.ok(ok, "%s: the shell prompt arrives over the WebSocket" % label, show(c.buf))
    m = await c.read_until(b"hello-42", 10) if await c.send(b"echo hello-$((6*7))\r") else None
    t.ok(m is not None, "%s: echo hello-$((6*7)) -> hello-42" % label, show(c.buf[c.pos:]))
    t.ok(await c.echo_check(), "%s: a second round trip" % label)
    await c.send(b"\x11")
    data, closed = await c.read_until_close(10)
    why = end_check(data, closed, "disconnected", "escape key")
    t.ok(not why, "%s: Ctrl+Q: 'disconnected: escape key' comes back over the WebSocket, then it closes (%s)"
         % (label, c.close_info), why)
    t.ok(d.wait_log(r'guest=%s dev=serial0: ended reason="escape key"' % G, 5, since=m0),
         "%s: the daemon logs ended reason=\"escape key\"" % label, d.log_tail(5, m0))
    await c.close()


async def busy():
    c1 = await WS.open(URL, ["binary"])
    ok = await c1.wait_prompt(20) and await c1.echo_check()
    t.ok(ok, "busy: a first WebSocket client is attached", show(c1.buf))
    c2 = await WS.open(URL, ["binary"])
    data, closed = await c2.read_until_close(10)
    why = end_check(data, closed, "refused", "console busy", exact=True)
    t.ok(not why, "busy: a second WebSocket client gets only 'refused: console busy', then it closes", why)
    t.ok(await c1.echo_check() and not c1.closed, "busy: the first keeps working")
    await c1.send(b"\x11")
    data, closed = await c1.read_until_close(10)
    why = end_check(data, closed, "disconnected", "escape key")
    t.ok(not why, "busy: the first leaves with the escape key", why)
    await c2.close()
    await c1.close()


with t.case("subprotocol binary"):
    asyncio.run(round_trip(["binary"], "subprotocol binary"))

with t.case("no subprotocol"):
    asyncio.run(round_trip(None, "no subprotocol"))

with t.case("console busy"):
    asyncio.run(busy())

with t.case("teardown"):
    t.ok(re.search(r"connecting to unix socket: %s" % re.escape(d.sock(G)), wsf.log()),
         "websockify connected to the guest's unix socket", wsf.log()[-1500:])
    wsf.stop()
    rc = d.stop()
    t.ok(rc == 0, "the daemon exits 0 on SIGTERM", "rc %s" % rc, d.log_tail())
    no_sanitizer_report(t, [d])

t.done()
