"""Helpers for the web front door's integration tests (t-web.py).

Built on vcdtest.py (TAP, Daemon, Lab, cleanups), with the standard library
and Debian's python3-websockets (10.4, asyncio API) only:

    WebDaemon   a Daemon whose config may repeat keys (listen =, one line
                each), that knows its bound ports and mints tokens with
                virtconsolectl
    http()      one HTTP/1.1 request on a raw socket (so malformed and
                hostile requests can be sent too), optionally over TLS or
                from another loopback source address; a Response
    RawWS       a WebSocket client written by hand on a socket: any frame,
                masked or not, any header; reads frames, answers pings
                only when told to
    Loop        an asyncio loop in a background thread: websockets clients
                live there and answer the daemon's pings while the test's
                main thread blocks on anything else
    WSClient    a python3-websockets client driven synchronously through
                Loop: read_until, wait_prompt, echo_check, the close frame
"""

import asyncio
import base64
import json
import os
import re
import socket
import ssl
import struct
import subprocess
import threading
import time

from vcdtest import (Daemon, ShellClient, defer, nonce, notice, notices, show,  # noqa: F401
                     vcd_binary)


def ctl_binary():
    return os.path.join(os.path.dirname(vcd_binary()), "virtconsolectl")


def web_root():
    return os.path.join(os.path.dirname(vcd_binary()), "webroot")


# ------------------------------------------------------------ the daemon

LISTEN_RE = r"web: listening on (\[[0-9a-fA-F:]+\]|[0-9.]+):(\d+)( tls)?( auth=none)?$"


class WebDaemon(Daemon):
    """A Daemon with web settings.  A list value writes its key once per
    item (listen = ...); values are written as they are (no quoting), so
    they must not hold '#' or '"'."""

    def write_config(self, changes=None):
        for k, v in (changes or {}).items():
            if v is None:
                self.conf.pop(k, None)
            else:
                self.conf[k] = v
        lines = []
        for k, v in self.conf.items():
            for item in (v if isinstance(v, (list, tuple)) else [v]):
                lines.append("%s = %s\n" % (k, item))
        tmp = self.conf_path + ".tmp"
        with open(tmp, "w") as f:
            f.writelines(lines)
        os.rename(tmp, self.conf_path)

    def listeners(self, since=0):
        """[(address, port, tls, auth_none)] from the log's listening lines."""
        return [(a, int(p), bool(t), bool(n))
                for a, p, t, n in self.find_log(LISTEN_RE, since)]

    def port(self, address="127.0.0.1", tls=False, auth_none=False, since=0,
             timeout=5):
        """The port of the last listener logged with these options."""
        deadline = time.monotonic() + timeout
        while True:
            for a, p, t, n in reversed(self.listeners(since)):
                if a == address and t == tls and n == auth_none:
                    return p
            if time.monotonic() >= deadline:
                return None
            time.sleep(0.05)

    def token(self, guest=None, alias=None, ttl=None, extra=()):
        """A fresh token from `virtconsolectl -f CONF token`: GUEST [ALIAS],
        or --all when guest is None, with extra options (--view, --label
        TEXT...).  Raises with its stderr on failure."""
        argv = [ctl_binary(), "-f", self.conf_path, "token"]
        argv += [guest] if guest is not None else ["--all"]
        if alias is not None:
            argv.append(alias)
        if ttl is not None:
            argv += ["--ttl", str(ttl)]
        argv += list(extra)
        r = subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True,
                           text=True, timeout=30)
        lines = r.stdout.splitlines()
        if r.returncode != 0 or len(lines) != 1 or not lines[0]:
            raise RuntimeError("%s: status %d, stdout %r, stderr %r"
                               % (" ".join(argv[3:]), r.returncode, r.stdout,
                                  r.stderr))
        return lines[0]


def make_cert(directory, cn="127.0.0.1"):
    """A self-signed certificate and key (openssl CLI); (cert, key) paths."""
    cert = os.path.join(directory, "cert.pem")
    key = os.path.join(directory, "key.pem")
    r = subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
         "ec_paramgen_curve:prime256v1", "-nodes", "-days", "2", "-subj",
         "/CN=" + cn, "-addext", "subjectAltName=IP:" + cn, "-keyout", key,
         "-out", cert], stdin=subprocess.DEVNULL, capture_output=True,
        text=True, timeout=60)
    if r.returncode != 0:
        raise RuntimeError("openssl req: %s" % r.stderr)
    os.chmod(key, 0o600)
    return cert, key


def client_ssl_context(max_version=None, min_version=None, seclevel0=False):
    """A client context that does not verify (the cert is self-signed)."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    if seclevel0:
        ctx.set_ciphers("DEFAULT:@SECLEVEL=0")
    if min_version is not None:
        ctx.minimum_version = min_version
    if max_version is not None:
        ctx.maximum_version = max_version
    return ctx


# ------------------------------------------------------------ HTTP

class Response:
    def __init__(self, raw):
        self.raw = raw
        head, _, self.body = raw.partition(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        parts = lines[0].split(" ", 2)
        self.version = parts[0]
        self.status = int(parts[1]) if len(parts) > 1 and parts[1].isdigit() else None
        self.reason = parts[2] if len(parts) > 2 else ""
        self.headers = []
        for line in lines[1:]:
            name, _, value = line.partition(":")
            self.headers.append((name.strip(), value.strip()))

    def header(self, name):
        for n, v in self.headers:
            if n.lower() == name.lower():
                return v
        return None

    def all(self, name):
        return [v for n, v in self.headers if n.lower() == name.lower()]

    def text(self):
        return self.body.decode("utf-8", "replace")

    def __repr__(self):
        return "<%s %s %r>" % (self.status, self.reason, self.body[:200])


def connect(port, addr="127.0.0.1", source=None, tls=None, timeout=10):
    """A TCP connection (from source, an IP address, when given); over TLS
    when tls is an SSLContext."""
    s = socket.socket(socket.AF_INET6 if ":" in addr else socket.AF_INET,
                      socket.SOCK_STREAM)
    s.settimeout(timeout)
    try:
        if source:
            s.bind((source, 0))
        s.connect((addr, port))
        if tls is not None:
            s = tls.wrap_socket(s, server_hostname=None)
    except BaseException:
        s.close()
        raise
    return s


def recv_until_close(s, timeout=10, limit=1 << 24):
    """Everything until the peer closes (or timeout); (data, closed)."""
    deadline = time.monotonic() + timeout
    data = bytearray()
    while len(data) < limit:
        left = deadline - time.monotonic()
        if left <= 0:
            return bytes(data), False
        s.settimeout(left)
        try:
            chunk = s.recv(65536)
        except socket.timeout:
            return bytes(data), False
        except (ConnectionResetError, ssl.SSLError, OSError):
            return bytes(data), True
        if not chunk:
            return bytes(data), True
        data += chunk
    return bytes(data), False


def request_bytes(method, path, port, headers=None, host=True, addr="127.0.0.1"):
    """The bytes of a request head; headers is a list of (name, value) or a
    dict; host True adds Host: ADDR:PORT (the address dialled, which the
    daemon's Host check accepts), a string that Host."""
    out = "%s %s HTTP/1.1\r\n" % (method, path)
    if host is True:
        out += "Host: %s:%d\r\n" % ("[%s]" % addr if ":" in addr else addr, port)
    elif host:
        out += "Host: %s\r\n" % host
    items = headers.items() if isinstance(headers, dict) else (headers or [])
    for n, v in items:
        out += "%s: %s\r\n" % (n, v)
    return (out + "\r\n").encode("latin-1")


def http(port, path="/", method="GET", headers=None, host=True, raw=None,
         addr="127.0.0.1", source=None, tls=None, timeout=10):
    """One request (or raw bytes) on a new connection; the Response once
    the daemon closes (every response says Connection: close).  Raises
    if nothing came back."""
    s = connect(port, addr, source, tls, timeout)
    try:
        s.sendall(raw if raw is not None else
                  request_bytes(method, path, port, headers, host, addr))
        data, _ = recv_until_close(s, timeout)
    finally:
        s.close()
    if not data:
        raise RuntimeError("no response to %r" % (raw or path)[:80])
    return Response(data)


SECURITY_HEADERS = [
    ("Content-Security-Policy", "frame-ancestors 'none'"),
    ("Referrer-Policy", "no-referrer"),
    ("Cache-Control", "no-store"),
]


def security_problems(resp):
    """What the response lacks of the headers every response must carry."""
    bad = []
    for name, want in SECURITY_HEADERS:
        v = resp.header(name)
        if v is None or want not in v:
            bad.append("%s: %r" % (name, v))
    return bad


# ------------------------------------------------------------ raw WebSocket

OP_CONT, OP_TEXT, OP_BINARY, OP_CLOSE, OP_PING, OP_PONG = 0, 1, 2, 8, 9, 10


def frame(opcode, payload=b"", fin=True, mask=True, rsv=0, length=None,
          mask_key=None):
    """A client frame; length overrides the length field (payload is sent
    as given), rsv is the 3 reserved bits (0..7)."""
    b0 = (0x80 if fin else 0) | (rsv & 7) << 4 | (opcode & 0x0f)
    n = len(payload) if length is None else length
    mbit = 0x80 if mask else 0
    if n < 126:
        hdr = struct.pack("!BB", b0, mbit | n)
    elif n < 1 << 16:
        hdr = struct.pack("!BBH", b0, mbit | 126, n)
    else:
        hdr = struct.pack("!BBQ", b0, mbit | 127, n)
    if not mask:
        return hdr + payload
    key = mask_key or os.urandom(4)
    masked = bytes(c ^ key[i & 3] for i, c in enumerate(payload))
    return hdr + key + masked


class RawWS:
    """A hand-made WebSocket client on a socket.  The handshake is sent as
    given; .response is the daemon's answer (a Response).  Frames are read
    with read_frame; pings are answered only with answer_pings."""

    def __init__(self, port, path, headers=None, addr="127.0.0.1",
                 source=None, tls=None, key=None, version="13",
                 protocol="binary", timeout=10, extra=None, host=True):
        self.sock = connect(port, addr, source, tls, timeout)
        defer(self.close)
        self.key = key if key is not None else base64.b64encode(os.urandom(16)).decode()
        hdrs = [("Upgrade", "websocket"), ("Connection", "Upgrade")]
        if self.key:
            hdrs.append(("Sec-WebSocket-Key", self.key))
        if version:
            hdrs.append(("Sec-WebSocket-Version", version))
        if protocol:
            hdrs.append(("Sec-WebSocket-Protocol", protocol))
        hdrs += list((headers or {}).items()) if isinstance(headers, dict) else list(headers or [])
        self.sock.sendall(request_bytes("GET", path, port, hdrs, host, addr) + (extra or b""))
        self.buf = bytearray()
        self.closed = False
        self.pings = 0
        self.answer_pings = False
        self.data = bytearray()       # payloads of data frames
        self.close_frame = None       # (code, reason) from the daemon
        self.t_close = None
        self.t_open = time.monotonic()
        self.t_eof = None
        self.response = self._read_head(timeout)

    def _fill(self, timeout):
        if self.closed:
            return False
        self.sock.settimeout(max(0.001, timeout))
        try:
            chunk = self.sock.recv(65536)
        except socket.timeout:
            return False
        except (ConnectionResetError, ssl.SSLError, OSError):
            chunk = b""
        if not chunk:
            self.closed = True
            self.t_eof = time.monotonic()
            return False
        self.buf += chunk
        return True

    def _read_head(self, timeout):
        deadline = time.monotonic() + timeout
        while b"\r\n\r\n" not in self.buf:
            left = deadline - time.monotonic()
            if left <= 0 or self.closed:
                break
            self._fill(left)
        head, sep, rest = bytes(self.buf).partition(b"\r\n\r\n")
        if not sep:
            return Response(bytes(self.buf)) if self.buf else None
        resp = Response(head + sep)
        if resp.status == 101:
            self.buf = bytearray(rest)
        else:
            # Not upgraded: the rest is a body, up to the close.
            more, _ = recv_until_close(self.sock, 2)
            resp = Response(head + sep + rest + more)
            self.buf = bytearray()
        return resp

    def accepted(self):
        return self.response is not None and self.response.status == 101

    def send(self, data):
        try:
            self.sock.sendall(data)
            return True
        except OSError:
            return False

    def send_frame(self, opcode, payload=b"", **kw):
        return self.send(frame(opcode, payload, **kw))

    def _parse(self):
        """One whole frame from buf: (fin, rsv, opcode, payload) or None."""
        b = self.buf
        if len(b) < 2:
            return None
        fin, rsv, op = b[0] >> 7, (b[0] >> 4) & 7, b[0] & 15
        masked, n, off = b[1] >> 7, b[1] & 127, 2
        if n == 126:
            if len(b) < 4:
                return None
            n, off = struct.unpack("!H", b[2:4])[0], 4
        elif n == 127:
            if len(b) < 10:
                return None
            n, off = struct.unpack("!Q", b[2:10])[0], 10
        key = None
        if masked:
            if len(b) < off + 4:
                return None
            key, off = bytes(b[off:off + 4]), off + 4
        if len(b) < off + n:
            return None
        payload = bytes(b[off:off + n])
        if key:
            payload = bytes(c ^ key[i & 3] for i, c in enumerate(payload))
        del b[:off + n]
        return fin, rsv, op, payload, bool(masked)

    def read_frame(self, timeout=5):
        """The next frame (fin, rsv, opcode, payload, masked), or None on
        timeout or EOF.  Pings are counted (and answered if asked)."""
        deadline = time.monotonic() + timeout
        while True:
            f = self._parse()
            if f is not None:
                fin, rsv, op, payload, masked = f
                if op == OP_PING:
                    self.pings += 1
                    if self.answer_pings:
                        self.send_frame(OP_PONG, payload)
                elif op in (OP_TEXT, OP_BINARY, OP_CONT):
                    self.data += payload
                elif op == OP_CLOSE:
                    self.t_close = time.monotonic()
                    code = struct.unpack("!H", payload[:2])[0] if len(payload) >= 2 else None
                    self.close_frame = (code, payload[2:].decode("utf-8", "replace"))
                return f
            left = deadline - time.monotonic()
            if left <= 0 or self.closed:
                return None
            self._fill(left)

    def read_until(self, pattern, timeout=10):
        """Read frames until the data frames' bytes match; the match."""
        pattern = re.compile(pattern)
        deadline = time.monotonic() + timeout
        while True:
            m = pattern.search(self.data)
            if m:
                return m
            left = deadline - time.monotonic()
            if left <= 0:
                return None
            if self.read_frame(left) is None and self.closed:
                return pattern.search(self.data)

    def wait_close(self, timeout=5, reply=True):
        """Read until the daemon's close frame (replying with a close
        frame if reply); its (code, reason), or None."""
        deadline = time.monotonic() + timeout
        while self.close_frame is None:
            left = deadline - time.monotonic()
            if left <= 0:
                break
            if self.read_frame(left) is None and self.closed:
                break
        if self.close_frame is not None and reply and not self.closed:
            payload = struct.pack("!H", self.close_frame[0]) if self.close_frame[0] else b""
            self.send_frame(OP_CLOSE, payload)
        return self.close_frame

    def wait_eof(self, timeout=5):
        """Read (and discard) until the daemon closes; True if it did."""
        deadline = time.monotonic() + timeout
        while not self.closed:
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            if not self._fill(left) and not self.closed:
                continue
            while self._parse() is not None:
                pass
        return True

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass
        self.closed = True


# ------------------------------------------------------------ websockets

class Loop:
    """An asyncio loop running in a daemon thread."""

    def __init__(self):
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()

    def run(self, coro, timeout=60):
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def stop(self):
        self.loop.call_soon_threadsafe(self.loop.stop)


class WSClient(ShellClient):
    """A python3-websockets client, driven synchronously.  mode "base64"
    encodes what it sends and decodes what it gets (text frames); else raw
    bytes.  self.status is the HTTP status of a refused handshake."""

    ECHO_TAG = "ws"

    def __init__(self, loop, url, subprotocols=None, mode="binary",
                 origin=None, headers=None, ssl_ctx=None, timeout=10):
        import websockets
        import websockets.exceptions
        self.websockets = websockets
        self.loop = loop
        self.mode = mode
        self.buf = bytearray()
        self.pos = 0
        self.closed = False
        self.code = None
        self.reason = None
        self.text_frames = 0
        self.binary_frames = 0
        self.status = None
        self.ws = None
        kw = dict(subprotocols=subprotocols, open_timeout=timeout,
                  close_timeout=2, max_size=None, ping_interval=None)
        if origin is not None:
            kw["origin"] = origin
        if headers:
            kw["extra_headers"] = headers
        if ssl_ctx is not None:
            kw["ssl"] = ssl_ctx
        try:
            self.ws = loop.run(self._connect(url, kw), timeout + 5)
        except websockets.exceptions.InvalidStatusCode as e:
            self.status = e.status_code
            self.closed = True
        defer(self.close)

    async def _connect(self, url, kw):
        return await self.websockets.connect(url, **kw)

    @property
    def subprotocol(self):
        return self.ws.subprotocol if self.ws else None

    def connected(self):
        return self.ws is not None

    def _closed(self, e):
        self.closed = True
        rcvd = getattr(e, "rcvd", None)
        if rcvd is not None:
            self.code, self.reason = rcvd.code, rcvd.reason
        else:
            self.code, self.reason = e.code, e.reason

    async def _recv(self, timeout):
        try:
            return await asyncio.wait_for(self.ws.recv(), max(0.01, timeout))
        except asyncio.TimeoutError:
            return None

    def fill(self, timeout):
        if self.closed:
            return False
        try:
            m = self.loop.run(self._recv(timeout), timeout + 10)
        except self.websockets.exceptions.ConnectionClosed as e:
            self._closed(e)
            return False
        if m is None:
            return False
        self._take(m)
        return True

    def _take(self, m):
        if isinstance(m, str):
            self.text_frames += 1
            if self.mode == "base64":
                self.buf += base64.b64decode(m, validate=True)
            else:
                self.buf += m.encode("utf-8")
        else:
            self.binary_frames += 1
            self.buf += m

    def send(self, data):
        """data: bytes (a binary frame; in base64 mode a base64 text
        frame), or str (a text frame as it is)."""
        if self.closed:
            return False
        if self.mode == "base64" and isinstance(data, bytes):
            msg = base64.b64encode(data).decode()
        else:
            msg = data
        try:
            self.loop.run(self.ws.send(msg), 15)
            return True
        except self.websockets.exceptions.ConnectionClosed as e:
            self._closed(e)
            return False

    def read_until(self, pattern, timeout=10):
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

    def wait_prompt(self, timeout=40, every=0.5):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and not self.closed:
            if not self.send(b"\r"):
                return False
            if self.read_until(rb"# ", every):
                return True
        return False

    def read_until_close(self, timeout=10):
        """(bytes not consumed yet, closed?) once it closes or timeout."""
        deadline = time.monotonic() + timeout
        while not self.closed and time.monotonic() < deadline:
            self.fill(deadline - time.monotonic())
        data = bytes(self.buf[self.pos:])
        self.pos = len(self.buf)
        return data, self.closed

    def expect_end(self, kind, reason, code, timeout=10, exact=False):
        """The session's end: the terminal text ends with exactly that
        notice (and holds no other), then a close frame with that code and
        reason.  '' if so, else why not."""
        data, closed = self.read_until_close(timeout)
        want = notice(kind, reason)
        if not closed:
            return "not closed after %.0f s; got %s" % (timeout, show(data))
        if not data.endswith(want):
            return "closed (%s %r), but the text does not end with %r: %s" % (
                self.code, self.reason, want, show(data))
        if len(notices(data)) != 1:
            return "notices: %r" % notices(data)
        if exact and data != want:
            return "more than the notice: %s" % show(data)
        if (self.code, self.reason) != (code, reason):
            return "close frame %s %r, want %s %r" % (self.code, self.reason,
                                                      code, reason)
        return ""

    def close(self):
        if self.ws is not None and not self.closed and self.loop.loop.is_running():
            try:
                self.loop.run(self.ws.close(), 5)
            except Exception:
                pass
        self.closed = True

    def abort(self):
        """Drop the TCP connection without a close frame."""
        if self.ws is not None:
            self.loop.loop.call_soon_threadsafe(self.ws.transport.abort)
        self.closed = True


class V1Client(WSClient):
    """A python3-websockets client of the virtconsole.v1 subprotocol.
    self.events: what came, in order: a dict per text message (JSON), the
    bytes of each binary frame; self.buf: the bytes alone (so read_until
    and wait_prompt work as for WSClient)."""

    def __init__(self, loop, url, subprotocols=("virtconsole.v1",), **kw):
        self.events = []
        self.bad_text = []
        super().__init__(loop, url, list(subprotocols), **kw)

    def _take(self, m):
        if isinstance(m, str):
            self.text_frames += 1
            try:
                self.events.append(json.loads(m))
            except ValueError:
                self.bad_text.append(m)
        else:
            self.binary_frames += 1
            self.events.append(bytes(m))
            self.buf += m

    def messages(self, kind=None):
        return [e for e in self.events if isinstance(e, dict) and
                (kind is None or e.get("type") == kind)]

    def wait_message(self, kind, timeout=10):
        """The first message of that type, once it came (None if not)."""
        deadline = time.monotonic() + timeout
        while True:
            got = self.messages(kind)
            if got:
                return got[0]
            left = deadline - time.monotonic()
            if left <= 0 or self.closed:
                return None
            self.fill(left)

    @property
    def hello(self):
        return self.wait_message("hello", 10)

    def reset(self):
        """Cut the TCP connection with a reset (SO_LINGER 0), no close
        frame, as a network failure would."""
        if self.ws is not None:
            sock = self.ws.transport.get_extra_info("socket")
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER,
                            struct.pack("ii", 1, 0))
            self.loop.loop.call_soon_threadsafe(self.ws.transport.abort)
        self.closed = True
