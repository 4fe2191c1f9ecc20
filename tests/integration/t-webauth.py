#!/usr/bin/python3
"""Web door authentication (the web-auth issue, docs/SECURITY.md) against
the real daemon and lab guests: tokens and cookies v2 (audience, claims,
v1 refused), auth=none minting nothing, the Host check (421) before any
route, session_ttl as a maximum, tokens consumed only on success, one
answer for out-of-scope and nonexistent consoles (and UUIDs resolved as
UUIDs only), the replay cache and revocations surviving a restart,
/logout, `kick --revoke`, cookie names and attributes, HSTS and the
security headers of the 101; and GET /api/history (the history issue):
the bytes two sessions saw, its headers, paging with from=RUN:NEXT across
a loss, max=, the history claim (403), 400, 404 and 410, smaller limits.

Daemons: "A" (a token listener on 127.0.0.1, one on *, a TLS one;
server_name console.example.com), "N" (auth=none, allowed_origins
http://mgmt.example), and "B", which shares A's secret but not its
state_dir (another audience).
"""

import base64
import hashlib
import hmac
import json
import os
import re
import signal
import stat
import struct
import subprocess
import sys
import time

sys.dont_write_bytecode = True     # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from vcdtest import TAP, Client, Lab, make_tmpdir, nonce, vcd_binary, wait_for, wrapped  # noqa: E402

t = TAP()
lab = Lab(t)
if not os.access(vcd_binary(), os.X_OK):
    t.skip_all("no daemon binary at %s" % vcd_binary())

from webtest import (Loop, RawWS, V1Client, WebDaemon,  # noqa: E402
                     client_ssl_context, ctl_binary, http, make_cert,
                     web_root)

TMP = make_tmpdir("vcd-webauth.")
GA, GB = "twa-a", "twa-b"
lab.remove_leftovers([GA, GB])
SECRET = os.path.join(TMP, "secret")
NO_CONSOLE = "404 Not Found: no such console\n"
SECRETS = []


def b64u_decode(s):
    return base64.urlsafe_b64decode(s + "=" * (-len(s) % 4))


def b64u_encode(b):
    return base64.urlsafe_b64encode(b).decode().rstrip("=")


def body_is(r, status, text):
    return r is not None and r.status == status and \
        r.body.decode("utf-8", "replace") == text


def resign(text, flags=None, iat=None, exp=None):
    """A v2 token or session re-signed with A's secret after changing its
    flags byte (offset 34), iat (51) or exp (59): docs/WEB.md's layout."""
    raw = bytearray(b64u_decode(text)[:-32])
    if flags is not None:
        raw[34] = flags
    if iat is not None:
        raw[51:59] = struct.pack(">q", iat)
    if exp is not None:
        raw[59:67] = struct.pack(">q", exp)
    raw = bytes(raw)
    out = b64u_encode(raw + hmac.new(open(SECRET, "rb").read(), raw, hashlib.sha256).digest())
    SECRETS.append(out)
    return out


def claims(text):
    raw = b64u_decode(text)
    return {"version": raw[0], "flags": raw[34], "iat": struct.unpack(">q", raw[51:59])[0],
            "exp": struct.unpack(">q", raw[59:67])[0]}


def cookie_of(r, name="vcd_session"):
    m = re.match(r"%s=([^;]+)" % re.escape(name), r.header("Set-Cookie") or "")
    return m.group(1) if m else None


def ctl(conf, *args):
    return subprocess.run([ctl_binary(), "-f", conf] + list(args),
                          capture_output=True, text=True, timeout=30,
                          stdin=subprocess.DEVNULL)


cert, key = make_cert(TMP)
A = WebDaemon(lab.uri, {
    "listen": ["127.0.0.1:0", "*:0", "127.0.0.1:0 tls"],
    "tls_cert": cert, "tls_key": key,
    "server_name": "console.example.com",
    "token_secret_file": SECRET,
    "web_root": web_root(),
    "start_wait": 20,
    "idle_timeout": 0,
}, name="A", tmpdir=TMP)
N = WebDaemon(lab.uri, {
    "listen": ["127.0.0.1:0 auth=none"],
    "allowed_origins": "http://mgmt.example",
    "token_secret_file": os.path.join(TMP, "secret-n"),
    "web_root": web_root(),
}, name="N", tmpdir=TMP)
# B: A's secret, its own state_dir: another daemon's credentials.
B = WebDaemon(lab.uri, dict(A.conf, listen="127.0.0.1:0"), name="B",
              tmpdir=TMP)
B.write_config({"state_dir": os.path.join(TMP, "B-state"),
                "pid_file": os.path.join(TMP, "B.pid"),
                "socket_dir": os.path.join(TMP, "B-sock"),
                "control_socket": os.path.join(TMP, "B.control")})


def mint(d, *a, **kw):
    tok = d.token(*a, **kw)
    SECRETS.append(tok)
    return tok


def login(port, token, tls=None, headers=None):
    """GET /?token=T as a browser's navigation; the Response."""
    h = {"Sec-Fetch-Mode": "navigate", "Sec-Fetch-Dest": "document",
         "Sec-Fetch-Site": "none"}
    h.update(headers or {})
    return http(port, "/?token=" + token, headers=h, tls=tls)


with t.case("setup"):
    out = lab.create_many([("create", GA, 1), ("define", GB, 0)])
    t.ok(all(rc == 0 for _, rc, _ in out), "guests %s (running, 2 consoles) and %s (defined)" % (GA, GB),
         "\n".join(o for _, rc, o in out if rc != 0))
    r = lab.virsh("domuuid", GB)
    UB = r.stdout.strip()
    # A guest named like GB's UUID: it must never shadow GB.
    r = lab.define_named(UB)
    t.ok(r.returncode == 0 and re.match(r"^[0-9a-f-]{36}$", UB),
         "a guest named %s (GB's UUID) is defined too" % UB, r.stderr)
    UU = lab.virsh("domuuid", UB).stdout.strip()
    ok = A.start() and N.start()
    t.ok(ok, "daemons A and N start", A.log_tail(), N.log_tail())
    if not ok:
        t.done()
    P = A.port()
    PT = A.port(tls=True)
    PS = A.port(address="0.0.0.0")
    PN = N.port(auth_none=True)
    t.ok(P and PT and PS and PN, "ports: A %s, A * %s, A tls %s, N %s" % (P, PS, PT, PN))
    TLS = client_ssl_context()
    wait_for(lambda: A.find_log(r"guest=%s .*console" % GA) or True, 1)


with t.case("tokens and cookies v2"):
    tok = mint(A, GA)
    raw = b64u_decode(tok)
    t.ok(raw[0] == 2, "virtconsolectl token prints a version 2 token (first byte %d, %d bytes)" % (raw[0], len(raw)))
    aud = os.path.join(A.conf["state_dir"], "audience")
    st = os.stat(aud)
    t.ok(stat.S_IMODE(st.st_mode) == 0o600 and st.st_size == 16,
         "state_dir/audience: 16 bytes, mode 0600 (%o, %d)" % (stat.S_IMODE(st.st_mode), st.st_size))
    t.ok(raw[18:34] == open(aud, "rb").read(), "the token carries that audience (bytes 18-33)")
    # A version 1 token, signed with the right secret.
    key_bytes = open(SECRET, "rb").read()
    v1 = bytes([1, 1]) + os.urandom(16) + bytes([1]) + bytes(16) + \
        struct.pack(">q", int(time.time()) + 60) + bytes([3]) + b"any"
    v1 = b64u_encode(v1 + hmac.new(key_bytes, v1, hashlib.sha256).digest())
    r = login(P, v1)
    t.ok(r.status == 403 and "version 1" in r.text() and not r.header("Set-Cookie"),
         "a version 1 token (valid MAC) is refused: %r" % r.text())
    # B shares the secret; its audience differs.
    tb = ctl(B.conf_path, "token", "--all")
    t.ok(tb.returncode == 0, "a token from daemon B's configuration (same secret, other state_dir)", tb.stderr)
    r = login(P, tb.stdout.strip())
    t.ok(body_is(r, 403, "403 Forbidden: wrong audience\n"), "A refuses it: wrong audience", repr(r))
    r = ctl(A.conf_path, "token", GA, "--label", "bad\x01label")
    t.ok(r.returncode == 2 and "label" in r.stderr, "--label with a control character: status 2, says why (%d %r)"
         % (r.returncode, r.stderr.strip()))
    r = ctl(A.conf_path, "token", GA, "--label", "x" * 65)
    t.ok(r.returncode == 2, "--label longer than 64 bytes: status 2 (%d)" % r.returncode)
    tl = mint(A, GA, extra=["--view", "--label", "alice on call"])
    r = login(P, tl)
    t.ok(r.status == 302 and cookie_of(r), "a --view --label token signs in (%s)" % r.status)
    t.ok(A.find_log(r'login token=[0-9a-f]{32} session=[0-9a-f]{32} label="alice on call"'),
         "the login is logged with the session id and the label")
    w = RawWS(P, "/console/%s" % GA, headers={"Cookie": "vcd_session=" + cookie_of(r),
                                              "Origin": "http://127.0.0.1:%d" % P})
    t.ok(body_is(w.response, 403, "403 Forbidden: a view-only credential cannot write\n"),
         "its view-only session cannot open a writer's console (no mode=view): 403", repr(w.response))
    w.close()


with t.case("auth=none mints nothing"):
    tok = mint(A, GA)
    r = login(PN, tok)
    t.ok(r.status == 404 and r.header("Set-Cookie") is None,
         "N (auth=none): /?token=T answers 404 and sets no cookie (%s, %r)" % (r.status, r.header("Set-Cookie")))
    r = http(PN, "/api/guests")
    t.ok(r.status == 200, "N still serves /api/guests without credentials (%s)" % r.status)
    # A session whose 'checked' claim is clear: re-signed with the secret,
    # it must still be refused where tokens are checked.
    C = cookie_of(login(P, mint(A)))
    forged = resign(C, flags=claims(C)["flags"] & ~0x08)
    r = http(P, "/api/guests", headers={"Cookie": "vcd_session=" + forged, "Sec-Fetch-Site": "same-origin"})
    t.ok(body_is(r, 401, "401 Unauthorized: session not from a token login\n"),
         "a session without the 'checked' claim is refused on a token listener", repr(r))
    r = http(P, "/api/guests", headers={"Cookie": "vcd_session=" + C, "Sec-Fetch-Site": "same-origin"})
    t.ok(r.status == 200, "the same session as minted is accepted (%s)" % r.status)


with t.case("Host check"):
    m = A.find_log(r"web: listener 127\.0\.0\.1:%d accepts Host: (.*)$" % P)
    t.ok(m and "console.example.com" in m[-1] and "localhost" in m[-1],
         "A logs the Host values each listener accepts: %s" % (m[-1] if m else None))
    C = cookie_of(login(P, mint(A)))
    for host, want in [("evil.example", 421), ("evil.example:%d" % P, 421),
                       ("console.example.com", 200), ("CONSOLE.Example.COM.", 200),
                       ("console.example.com:80", 200), ("console.example.com:8080", 200),
                       ("localhost:%d" % P, 200), ("LOCALHOST.:%d" % P, 200),
                       ("localhost:1", 421), ("127.0.0.1", 421), ("127.0.0.2:%d" % P, 421),
                       ("127.0.0.1:%d" % P, 200)]:
        r = http(P, "/", host=host)
        t.ok(r.status == want, "GET / with Host %s -> %d (%s)" % (host, want, r.status))
    r = http(P, "/app.js", host="evil.example")
    t.ok(body_is(r, 421, "421 Misdirected Request: misdirected request\n"),
         "a static file with a forged Host -> 421 misdirected request", repr(r))
    r = http(P, "/", host=False)
    t.ok(r.status == 400, "no Host at all -> 400, as HTTP/1.1 requires (%s)" % r.status)
    w = RawWS(P, "/console/%s" % GA, headers={"Cookie": "vcd_session=" + C, "Origin": "http://evil.example"},
              host="evil.example")
    t.ok(w.response and w.response.status == 421,
         "A: WebSocket with a session cookie, Host evil.example and Origin http://evil.example -> 421 (%s)"
         % (w.response and w.response.status))
    w.close()
    w = RawWS(PN, "/console/%s" % GA, headers={"Origin": "http://mgmt.example"}, host="rebound.example")
    t.ok(w.response and w.response.status == 421,
         "N (auth=none): a WebSocket through a rebound name -> 421 before the Origin rule (%s)"
         % (w.response and w.response.status))
    w.close()
    r = http(PS, "/", addr="127.0.0.2", host="127.0.0.2:%d" % PS)
    t.ok(r.status == 200, "the * listener: Host 127.0.0.2:%d on a connection to 127.0.0.2 -> 200 (%s)" % (PS, r.status))
    r = http(PS, "/", addr="127.0.0.2", host="127.0.0.3:%d" % PS)
    t.ok(r.status == 421, "... Host 127.0.0.3:%d on that connection -> 421 (%s)" % (PS, r.status))
    r = http(PT, "/", tls=TLS, host="console.example.com:443")
    t.ok(r.status == 200, "TLS: Host console.example.com:443 (default port) -> 200 (%s)" % r.status)
    r = http(PT, "/", tls=TLS, host="127.0.0.1:%d" % PT)
    t.ok(r.status == 200, "TLS: Host 127.0.0.1:%d -> 200 (%s)" % (PT, r.status))
    # auth=none without allowed_origins: a configuration error at its line.
    bad = os.path.join(TMP, "bad.conf")
    with open(bad, "w") as f:
        f.write("uri = %s\nlisten = 127.0.0.1:0\nlisten = 127.0.0.1:0 auth=none\n" % lab.uri)
    r = subprocess.run([vcd_binary(), "-n", "-f", bad], capture_output=True, text=True, timeout=30)
    t.ok(r.returncode != 0 and "%s:3: 'listen' with auth=none needs allowed_origins" % bad in r.stderr,
         "virtconsoled -n: auth=none without allowed_origins is an error at its line", r.stderr)
    mark = N.mark()
    N.write_config({"allowed_origins": None})
    N.signal(signal.SIGHUP)
    t.ok(N.wait_log(r"config has errors, not reloading.*auth=none needs allowed_origins",
                    10, since=mark) and N.alive(),
         "a reload of N without allowed_origins is refused; N keeps running", N.log_tail(5))
    N.write_config({"allowed_origins": "http://mgmt.example"})


with t.case("session_ttl is a maximum"):
    tok = mint(A)
    r = login(P, tok)
    C = cookie_of(r)
    t.ok(re.search(r"; Max-Age=28800;", r.header("Set-Cookie") or ""),
         "the cookie lives session_ttl (28800) seconds: %s" % re.sub(r"=[^;]{20,}", "=...", r.header("Set-Cookie") or ""))
    h = {"Cookie": "vcd_session=" + C, "Sec-Fetch-Site": "same-origin"}
    for q in ("x" * 600, "garbage", ""):
        r = http(P, "/api/guests?token=" + q, headers=h)
        t.ok(r.status == 403 and r.header("Set-Cookie") is None,
             "a valid cookie plus ?token= of %d bad bytes -> 403, no fallback to the cookie, no new cookie (%s)"
             % (len(q), r.status))
    r = http(P, "/?token=" + "x" * 600, headers=dict(h, **{"Sec-Fetch-Mode": "navigate", "Sec-Fetch-Dest": "document"}))
    t.ok(r.status == 403 and r.header("Set-Cookie") is None,
         "/?token=<600 bytes> with a valid cookie -> 403, not re-minted (%s)" % r.status)
    c = claims(C)
    now = time.time()
    t.ok(c["version"] == 2 and abs(c["iat"] - now) < 60 and c["exp"] - c["iat"] == 28800,
         "the session's claims: iat is the login time, exp = iat + session_ttl (%r)" % c)
    # A session whose exp was pushed out (as a renewal would) is still
    # bounded by its login time plus session_ttl.
    old = resign(C, iat=int(now) - 28800 - 5, exp=int(now) + 3600)
    r = http(P, "/api/guests", headers={"Cookie": "vcd_session=" + old, "Sec-Fetch-Site": "same-origin"})
    t.ok(body_is(r, 401, "401 Unauthorized: expired\n"),
         "a session that logged in more than session_ttl ago is expired, whatever its exp says", repr(r))
    ok = A.reload({"session_ttl": 60})
    r = http(P, "/api/guests", headers={"Cookie": "vcd_session=" + resign(C, iat=int(now) - 61),
                                        "Sec-Fetch-Site": "same-origin"})
    t.ok(ok and body_is(r, 401, "401 Unauthorized: expired\n"),
         "session_ttl lowered to 60 by a reload: a 61 s old session is expired at once", repr(r))
    A.reload({"session_ttl": None})
    r = http(P, "/api/guests", headers=h)
    t.ok(r.status == 200, "the fresh session is still valid (%s)" % r.status)


def ws_open(port, path, headers=None, **kw):
    w = RawWS(port, path, headers=headers, **kw)
    st = w.response.status if w.response else None
    w.close()
    return st


with t.case("consumed only on success"):
    tok = mint(A)
    st = ws_open(P, "/console/%s?token=%s" % (GA, tok), {"Origin": "http://evil.example"})
    t.ok(st == 403, "a token at /console with a wrong Origin -> 403 (%s)" % st)
    st = ws_open(P, "/console/no-such-guest?token=" + tok)
    t.ok(st == 404, "the same token at a console that does not exist -> 404 (%s)" % st)
    st = ws_open(P, "/console/%s?token=%s" % (GA, tok), host="evil.example")
    t.ok(st == 421, "the same token with a forged Host -> 421 (%s)" % st)
    r = http(P, "/api/guests?token=" + tok, method="HEAD")
    t.ok(r.status == 200, "HEAD /api/guests with it -> 200 (%s)" % r.status)
    st = ws_open(P, "/console/%s?token=%s" % (GA, tok))
    t.ok(st == 101, "none of that spent it: the console opens (%s)" % st)
    st = ws_open(P, "/console/%s?token=%s" % (GA, tok))
    t.ok(st == 403, "the 101 did: again -> 403 (%s)" % st)
    tok = mint(A)
    r = http(P, "/?token=" + tok, method="HEAD",
             headers={"Sec-Fetch-Mode": "navigate", "Sec-Fetch-Dest": "document"})
    t.ok(r.status == 200 and r.header("Set-Cookie") is None, "HEAD /?token=T -> 200, no cookie (%s)" % r.status)
    r = login(P, tok, headers={"Sec-Fetch-Mode": "no-cors", "Sec-Fetch-Dest": "image"})
    t.ok(r.status == 403 and r.header("Set-Cookie") is None,
         "/?token=T fetched as an image (Sec-Fetch-Dest: image) -> 403, no cookie (%s %r)" % (r.status, r.text()))
    r = login(P, tok, headers={"Sec-Fetch-Mode": "navigate", "Sec-Fetch-Dest": "iframe"})
    t.ok(r.status == 403, "... in a frame (Sec-Fetch-Dest: iframe) -> 403 (%s)" % r.status)
    r = http(P, "/?token=" + tok, headers={"Sec-Fetch-Site": "cross-site"})
    t.ok(r.status == 403, "... with only Sec-Fetch-Site (no Mode, no Dest) -> 403 (%s)" % r.status)
    r = login(P, tok)
    t.ok(r.status == 302 and cookie_of(r), "a top-level navigation still signs in with it (%s)" % r.status)
    r = login(P, tok)
    t.ok(body_is(r, 403, "403 Forbidden: token already used\n"), "and then it is used", repr(r))
    r = http(P, "/?token=" + mint(A))
    t.ok(r.status == 302, "a client that sends no Sec-Fetch headers (not a browser, or an old one) signs in (%s)"
         % r.status)


with t.case("one answer for out of scope and nonexistent"):
    ts = mint(A, GA)
    C = cookie_of(login(P, ts))
    h = {"Cookie": "vcd_session=" + C, "Origin": "http://127.0.0.1:%d" % P}
    bodies = {}
    for path in ("/console/%s" % GB, "/console/no-such-guest", "/console/%s/no-such-alias" % GA,
                 "/console/%s" % UB, "/console/%s" % UU):
        w = RawWS(P, path, headers=h)
        bodies[path] = (w.response.status, w.response.text()) if w.response else None
        w.close()
    t.ok(set(bodies.values()) == {(404, NO_CONSOLE)},
         "a cookie for %s: another guest, a missing guest, a missing alias: one answer, 404 no such console"
         % GA, repr(bodies))
    hs = {"Cookie": "vcd_session=" + C, "Sec-Fetch-Site": "same-origin"}
    api = {p: (lambda r: (r.status, r.text()))(http(P, "/api/console/" + p, headers=hs))
           for p in (GB, "no-such-guest", GA + "/no-such-alias")}
    t.ok(set(api.values()) == {(404, NO_CONSOLE)}, "the same at /api/console/...", repr(api))
    r = http(P, "/api/console/" + GA, headers=hs)
    t.ok(r.status == 200 and '"guest":"%s"' % GA in r.text() and '"state":"running"' in r.text(),
         "/api/console/%s in scope: its state (%r)" % (GA, r.text()))
    Call = cookie_of(login(P, mint(A)))
    hs = {"Cookie": "vcd_session=" + Call, "Sec-Fetch-Site": "same-origin"}
    r = http(P, "/api/console/" + UB, headers=hs)
    t.ok(r.status == 200 and '"guest":"%s"' % GB in r.text(),
         "a UUID-shaped segment resolves by UUID only: /api/console/%s is %s, not the guest named so (%r)"
         % (UB, GB, r.text()))
    r = http(P, "/api/console/" + UU, headers=hs)
    t.ok(r.status == 200 and '"guest":"%s"' % UB in r.text(),
         "the guest named like a UUID is reached by its own UUID (%r)" % r.text())
    r = ctl(A.conf_path, "token", UB)
    tu = r.stdout.strip()
    SECRETS.append(tu)
    hs = {"Cookie": "vcd_session=" + cookie_of(login(P, tu)), "Sec-Fetch-Site": "same-origin"}
    r1 = http(P, "/api/console/" + UB, headers=hs)
    r2 = http(P, "/api/console/" + UU, headers=hs)
    t.ok(r1.status == 200 and '"guest":"%s"' % GB in r1.text() and r2.status == 404,
         "virtconsolectl token %s: a token for %s (by UUID), not for the guest named so (%s, %s)"
         % (UB, GB, r1.status, r2.status))


with t.case("replay cache and revocations survive a restart"):
    used = mint(A)
    r1 = login(P, used)
    C = cookie_of(r1)
    r = http(P, "/logout", headers={"Cookie": "vcd_session=" + C})
    sc = r.header("Set-Cookie") or ""
    t.ok(r.status == 302 and r.header("Location") == "./" and re.match(r"vcd_session=[^;]*; Max-Age=0;", sc),
         "GET /logout: 302 to ./, the cookie cleared (%s, %r)" % (r.status, sc))
    t.ok(A.find_log(r"logout session=[0-9a-f]{32}$"), "the logout is logged with the session id")
    hs = {"Cookie": "vcd_session=" + C, "Sec-Fetch-Site": "same-origin"}
    r = http(P, "/api/guests", headers=hs)
    t.ok(body_is(r, 401, "401 Unauthorized: session revoked\n"), "the logged-out cookie -> 401 session revoked", repr(r))
    # kick --revoke: the browser session behind a web client.
    C2 = cookie_of(login(P, mint(A)))
    w = RawWS(P, "/console/%s" % GA, headers={"Cookie": "vcd_session=" + C2, "Origin": "http://127.0.0.1:%d" % P})
    t.ok(w.accepted(), "a web client of %s with a session cookie" % GA)
    r = ctl(A.conf_path, "kick", "--revoke", GA)
    t.ok(r.returncode == 0 and "kicked 1 session, revoked 1 browser session" in r.stdout,
         "virtconsolectl kick --revoke %s: %r" % (GA, r.stdout.strip() or r.stderr.strip()))
    w.close()
    r = http(P, "/api/guests", headers={"Cookie": "vcd_session=" + C2, "Sec-Fetch-Site": "same-origin"})
    t.ok(body_is(r, 401, "401 Unauthorized: session revoked\n"), "its cookie -> 401 session revoked", repr(r))
    st = os.stat(os.path.join(A.conf["state_dir"], "tokens"))
    t.ok(stat.S_IMODE(st.st_mode) == 0o600, "state_dir/tokens is mode 0600 (%o)" % stat.S_IMODE(st.st_mode))
    rc = A.stop()
    mark = A.mark()
    A.start(wait=False)
    ok = A.wait_log(A.STARTED_RE, 200 if wrapped() else 20, since=mark) is not None
    P = A.port(since=mark)
    PT = A.port(tls=True, since=mark)
    t.ok(rc == 0 and ok and P, "A restarts (%s)" % rc)
    r = login(P, used)
    t.ok(body_is(r, 403, "403 Forbidden: token already used\n"), "a token used before the restart is still used", repr(r))
    for c in (C, C2):
        r = http(P, "/api/guests", headers={"Cookie": "vcd_session=" + c, "Sec-Fetch-Site": "same-origin"})
        t.ok(body_is(r, 401, "401 Unauthorized: session revoked\n"), "a revoked session stays revoked", repr(r))
    t.ok(A.find_log(r"state_dir .*: [1-9][0-9]* used token\(s\) and revoked session\(s\) remembered"),
         "A says at start how many it remembers")


with t.case("cookies and headers"):
    r = login(P, mint(A))
    sc = r.header("Set-Cookie") or ""
    t.ok(re.match(r"vcd_session=[A-Za-z0-9_-]+; Max-Age=\d+; HttpOnly; SameSite=Strict$", sc),
         "plain: vcd_session, HttpOnly, SameSite=Strict, no Path, no Secure (%s)" % re.sub(r"=[^;]{20,}", "=...", sc))
    t.ok(r.header("Strict-Transport-Security") is None, "no HSTS over plain HTTP")
    r = login(PT, mint(A), tls=TLS)
    sc = r.header("Set-Cookie") or ""
    CT = cookie_of(r, "__Host-vcd_session")
    t.ok(re.match(r"__Host-vcd_session=[A-Za-z0-9_-]+; Path=/; Max-Age=\d+; HttpOnly; SameSite=Strict; Secure$", sc),
         "TLS: __Host-vcd_session; Path=/; Secure (%s)" % re.sub(r"=[^;]{20,}", "=...", sc))
    t.ok(r.header("Strict-Transport-Security") == "max-age=31536000", "TLS: HSTS max-age=31536000 on the 302")
    r = http(PT, "/nope", tls=TLS)
    t.ok(r.header("Strict-Transport-Security") == "max-age=31536000", "and on a 404")
    w = RawWS(PT, "/console/%s" % GA, tls=TLS, headers={"Cookie": "__Host-vcd_session=" + CT,
                                                       "Origin": "https://127.0.0.1:%d" % PT})
    h = w.response
    t.ok(w.accepted() and h.header("Strict-Transport-Security") == "max-age=31536000" and
         "frame-ancestors 'none'" in (h.header("Content-Security-Policy") or "") and
         h.header("X-Content-Type-Options") == "nosniff" and h.header("Referrer-Policy") == "no-referrer",
         "TLS: the 101 carries HSTS, CSP, nosniff and Referrer-Policy", h and h.headers)
    w.close()
    r = http(PT, "/api/guests", tls=TLS, headers={"Cookie": "vcd_session=" + CT, "Sec-Fetch-Site": "same-origin"})
    t.ok(r.status == 401, "TLS: the session under the plain name (not __Host-) is not read (%s)" % r.status)
    ok = A.reload({"cookie_name": "vcdA"})
    r = login(P, mint(A))
    t.ok(ok and re.match(r"vcdA=", r.header("Set-Cookie") or ""), "cookie_name = vcdA: the cookie is vcdA (%r)"
         % (r.header("Set-Cookie") or "")[:12])
    r = http(P, "/api/guests", headers={"Cookie": "vcd_session=" + cookie_of(login(P, mint(A)), "vcdA"),
                                        "Sec-Fetch-Site": "same-origin"})
    t.ok(r.status == 401, "a session sent under another daemon's cookie name is not read (%s)" % r.status)
    bad = os.path.join(TMP, "badck.conf")
    with open(bad, "w") as f:
        f.write("uri = %s\ncookie_name = __Host-x\n" % lab.uri)
    r = subprocess.run([vcd_binary(), "-n", "-f", bad], capture_output=True, text=True, timeout=30)
    t.ok(r.returncode != 0 and ":2: bad value for 'cookie_name'" in r.stderr,
         "cookie_name = __Host-x is a configuration error: %s" % r.stderr.strip())
    A.reload({"cookie_name": None})


def hist(port, guest, query="", cookie=None, token=None, method="GET", headers=None):
    """GET /api/history/GUEST[/ALIAS]?QUERY with a session cookie or a
    ?token=; the Response."""
    q = "&".join(x for x in ("token=" + token if token else "", query) if x)
    h = dict(headers or {})
    if cookie:
        h.update({"Cookie": "vcd_session=" + cookie, "Sec-Fetch-Site": "same-origin"})
    return http(port, "/api/history/%s%s" % (guest, "?" + q if q else ""), method=method, headers=h)


def hist_walk(port, guest, cookie, query=""):
    """Page through a console's history from query (default: the oldest
    byte kept) with from=RUN:NEXT until an answer brings nothing, tells no
    loss and names no next run: ([Response], the refusal or None)."""
    out = []
    for _ in range(100):
        r = hist(port, guest, query, cookie=cookie)
        if r.status != 200:
            return out, r
        out.append(r)
        if not r.body and not r.header("X-Virtconsole-Gap") and not r.header("X-Virtconsole-Next-Run"):
            return out, None
        query = "from=%s:%s" % (r.header("X-Virtconsole-Run"), r.header("X-Virtconsole-Next"))
    return out, "more than 100 answers"


def stretches(answers):
    """The answers' bodies joined between losses: [(first offset, bytes)],
    plus the problems with their offsets (each body must start where the
    answer before it said to go on, or later after bytes no longer kept,
    and end at its own Next unless a loss stopped it)."""
    out, bad, want = [], [], None
    for r in answers:
        off = int(r.header("X-Virtconsole-Offset"))
        nxt = r.header("X-Virtconsole-Next")
        end = int(nxt.split(":")[0])
        lost = r.header("X-Virtconsole-Gap") == "unknown"
        if want is not None and off < want:
            bad.append("Offset %d before the Next %d of the answer before" % (off, want))
        if not lost and (off + len(r.body) != end or nxt.endswith(":1") and r.body):
            bad.append("Offset %d + %d bytes != Next %s" % (off, len(r.body), nxt))
        if r.body:
            if out and want == off and not out[-1][2]:
                out[-1][1].extend(r.body)
            else:
                out.append([off, bytearray(r.body), False])
        if lost and out:
            out[-1][2] = True
        want = end
    return [(o, bytes(b)) for o, b, _ in out], bad


with t.case("history over HTTP"):
    # Two sessions on GA's first console, each printing known lines; the
    # console closes between them, so the second open is a loss.
    UA = lab.virsh("domuuid", GA).stdout.strip()
    n = nonce()
    W = 10 if wrapped() else 1      # valgrind's daemon is slower
    c1 = Client(A.sock(GA))
    ok = c1.wait_prompt(40 * W) and c1.run("for i in $(seq 200); do echo ha-%s-$i; done" % n,
                                           rb"ha-%s-200\r\n" % n.encode(), 10 * W) and c1.read_until(rb"# ", 10 * W)
    # The shell asks for the cursor (ESC[6n) just after its prompt, maybe
    # in a later read: everything the console sent goes in sent1.
    c1.read_for(0.3 * W)
    mark = A.mark()
    sent1 = bytes(c1.buf)
    ok = ok and c1.escape(timeout=5 * W) and \
        A.wait_log(r"session \d+ guest=%s dev=serial0: .* -> DEAD" % GA, 10 * W, since=mark)
    c2 = Client(A.sock(GA))
    ok = ok and c2.wait_prompt(40 * W) and \
        c2.run("seq 6000 | sed s/^/hb-%s-/" % n, rb"hb-%s-6000\r\n" % n.encode(), 30 * W) and \
        c2.read_until(rb"# ", 10 * W)
    c2.read_for(0.3 * W)
    sent2 = bytes(c2.buf)
    t.ok(ok and len(sent2) > 65536, "two sessions on %s print 200 and 6000 numbered lines (%d and %d bytes seen)"
         % (GA, len(sent1), len(sent2)))

    tok = mint(A, GA)
    h = hist(P, GA, token=tok, method="HEAD")
    r0 = r = hist(P, GA, token=tok)
    run = r.header("X-Virtconsole-Run") or ""
    nxt = r.header("X-Virtconsole-Next") or ""
    t.ok(r.status == 200 and r.body and r.header("Content-Length") == str(len(r.body)),
         "GET /api/history/%s with a writer's token (history by default): 200 (%s, %d bytes)"
         % (GA, r.status, len(r.body)))
    t.ok(h.status == 200 and h.body == b"" and h.header("Content-Length") == str(len(r.body)),
         "HEAD before it, with the same token (HEAD spends nothing): 200, the same Content-Length, no body "
         "(%s, %s)" % (h.status, h.header("Content-Length")))
    t.ok(re.match(r"^[0-9a-f]{1,16}$", run) and r.header("X-Virtconsole-Offset") == "0" and
         nxt == "%d:1" % len(r.body) and r.header("X-Virtconsole-Gap") == "unknown",
         "X-Virtconsole-Run %r, Offset 0 (the loss there, at the first open, is not told: nothing came before), "
         "up to the next loss: Gap: unknown, Next %r" % (run, nxt), r.headers)
    want = 'attachment; filename="%s-serial0-%s.log"' % (UA, run)
    t.ok(r.header("Content-Type") == "application/octet-stream" and r.header("Content-Disposition") == want and
         r.header("X-Content-Type-Options") == "nosniff" and "sandbox" in r.all("Content-Security-Policy") and
         "frame-ancestors 'none'" in " ".join(r.all("Content-Security-Policy")),
         "application/octet-stream, Content-Disposition %s, nosniff, CSP sandbox beside the usual CSP" % want,
         r.headers)
    t.ok(not [v for _, v in r.headers if GA in v], "no header names the guest (%s)" % GA)
    r = hist(P, GA, token=tok)
    t.ok(body_is(r, 403, "403 Forbidden: token already used\n"), "the 200 spent the token", repr(r))

    CH = cookie_of(login(P, mint(A, GA)))
    answers, refused = hist_walk(P, GA, CH)
    parts, bad = stretches(answers)
    runs = {a.header("X-Virtconsole-Run") for a in answers}
    t.ok(refused is None and runs == {run} and not bad,
         "paging with a session cookie and from=RUN:NEXT through the whole run: %d answers, every body where "
         "its headers say" % len(answers), repr(refused), *bad[:5])
    t.ok(answers and answers[0].body == r0.body, "the walk began with the token's answer")
    t.ok(len(parts) >= 2 and parts[-1][1] == sent2 and parts[-2][1].endswith(sent1),
         "the last stretch is exactly what the second session saw, the one before it ends with what the first saw",
         "stretches at %s" % [(o, len(b)) for o, b in parts])
    gaps = [a for a in answers if a.header("X-Virtconsole-Gap")]
    stop = [a for a in gaps if a.body.endswith(sent1[-200:])]
    t.ok(stop and stop[0].header("X-Virtconsole-Gap") == "unknown" and
         re.match(r"^\d+:1$", stop[0].header("X-Virtconsole-Next")),
         "the answer that reaches the end of the first session stops there: X-Virtconsole-Gap: unknown, Next N:1",
         [a.headers for a in gaps])
    total = parts[-1][0] + len(parts[-1][1]) if parts else 0
    last = answers[-1] if answers else r0
    t.ok(last.body == b"" and last.header("X-Virtconsole-Offset") == str(total) and
         last.header("X-Virtconsole-Next") == str(total),
         "at the end: an empty body, Offset = Next = %d" % total, last.headers)
    lost_at = s2 = parts[-1][0] if parts else 0
    r = hist(P, GA, "from=%s:%d:1" % (run, lost_at), cookie=CH)
    t.ok(r.status == 200 and r.body == sent2[:65536] and r.header("X-Virtconsole-Offset") == str(lost_at) and
         r.header("X-Virtconsole-Next") == str(lost_at + 65536),
         "from=RUN:%d:1 (past the second open's loss): its first 65536 bytes (max's default), "
         "Next = Offset + 65536 (%s, %d)" % (lost_at, r.status, len(r.body)), r.headers)

    # from= and max= against what the walk read.
    k = sent2.index(b"hb-%s-3000\r\n" % n.encode())
    r1 = hist(P, GA, "from=%s:%d&max=1000" % (run, s2 + k), cookie=CH)
    r2 = hist(P, GA, "from=%s:%s&max=1000" % (run, r1.header("X-Virtconsole-Next")), cookie=CH)
    t.ok(r1.status == 200 and r1.body == sent2[k:k + 1000] and r1.header("X-Virtconsole-Offset") == str(s2 + k) and
         r1.header("X-Virtconsole-Next") == str(s2 + k + 1000) and r1.header("Content-Length") == "1000",
         "from=RUN:OFFSET of line 3000 with max=1000: exactly those 1000 bytes, Next = Offset + 1000", r1.headers)
    t.ok(r2.status == 200 and r2.body == sent2[k + 1000:k + 2000],
         "from=RUN:NEXT goes on with the next 1000 bytes", r2.headers)
    r = hist(P, GA, "from=%s:%d:1&max=%d" % (run, s2, 10 ** 15), cookie=CH)
    t.ok(r.status == 200 and r.body == sent2, "max=10^15 is cut to what is kept: the whole second session, %d bytes "
         "(%s, %d)" % (len(sent2), r.status, len(r.body)))
    r = hist(P, GA, "from=%s:%d" % (run, lost_at), cookie=CH)
    t.ok(r.status == 200 and r.body == b"" and r.header("X-Virtconsole-Gap") == "unknown" and
         r.header("X-Virtconsole-Next") == "%d:1" % lost_at,
         "from=RUN:%d, where the second open lost bytes: the loss first (empty, Gap: unknown, Next %d:1)"
         % (lost_at, lost_at), r.headers)
    r = hist(P, GA, "from=%s:%d:1&max=100" % (run, lost_at), cookie=CH)
    t.ok(r.status == 200 and r.body == sent2[:100] and r.header("X-Virtconsole-Next") == str(lost_at + 100),
         "from=RUN:%d:1&max=100: the 100 bytes after it" % lost_at, r.headers)

    # Refusals.
    for q, why in (("from=zz:0", "from="), ("from=%s" % run, "from="), ("from=%s:12x" % run, "from="),
                   ("from=", "from="), ("from=%s:5:2" % run, "from="), ("from=-1:0", "from="),
                   ("max=0", "max="), ("max=-1", "max="), ("max=1e3", "max="), ("max=", "max="),
                   ("max=99999999999999999999999", "max=")):
        r = hist(P, GA, q, cookie=CH)
        t.ok(r.status == 400 and r.text().startswith("400 Bad Request: %s wants " % why),
             "?%s -> 400 %r" % (q, r.text()))
    r = hist(P, GA, "from=%s:%d" % (run, total + 1), cookie=CH)
    t.ok(body_is(r, 400, "400 Bad Request: offset past the end of the run\n"), "an offset past the end -> 400", repr(r))
    other = "%x" % (int(run, 16) ^ 1)
    r = hist(P, GA, "from=%s:0" % other, cookie=CH)
    t.ok(r.status == 410 and "run is not kept" in r.text(), "a run not kept (%s) -> 410 %r" % (other, r.text()))
    for cred, what in ((mint(A, GA, extra=["--view"]), "a --view token"),
                       (resign(mint(A, GA), flags=0), "a writer's token re-signed without the history bit")):
        r = hist(P, GA, token=cred)
        t.ok(body_is(r, 403, "403 Forbidden: this credential may not read history\n"), "%s -> 403" % what, repr(r))
    CV = cookie_of(login(P, mint(A, GA, extra=["--view"])))
    r = hist(P, GA, cookie=CV)
    t.ok(body_is(r, 403, "403 Forbidden: this credential may not read history\n"), "a --view session -> 403", repr(r))
    r = hist(P, "no-such-guest", cookie=CV)
    t.ok(r.status == 403, "... before any lookup: for a guest that does not exist too (%s)" % r.status)
    r = hist(P, GA, token=mint(A, GA, extra=["--view", "--history"]), query="max=10")
    t.ok(r.status == 200 and len(r.body) == 10,
         "a --view --history token may read it (%s, %d bytes)" % (r.status, len(r.body)))
    bodies = {p: (lambda x: (x.status, x.text()))(hist(P, p, cookie=CH))
              for p in (GB, "no-such-guest", GA + "/no-such-alias", UU)}
    t.ok(set(bodies.values()) == {(404, NO_CONSOLE)},
         "a session for %s: another guest, a missing guest, a missing alias: 404 no such console" % GA, repr(bodies))
    r = hist(P, GB, cookie=cookie_of(login(P, mint(A))))
    t.ok(body_is(r, 404, "404 Not Found: nothing kept of this console\n"),
         "an --all session, %s (never opened): 404 nothing kept" % GB, repr(r))

    # Smaller limits: what is kept is the first 4 KiB and the last 8 KiB.
    ok = A.reload({"history": "8K", "history_head": "4K"})
    head = [p for p in parts if p[0] < 4096 < p[0] + len(p[1])]
    o = max(head[0][0] + 1, 4000) if head else 4000
    r = hist(P, GA, "from=%s:%d" % (run, o), cookie=CH)
    t.ok(ok and head and r.status == 200 and r.body == head[0][1][o - head[0][0]:4096 - head[0][0]] and
         r.header("X-Virtconsole-Next") == "4096" and r.header("X-Virtconsole-Gap") is None,
         "history_head = 4K, history = 8K: from=RUN:%d stops at the head's end, before the bytes no longer kept "
         "(Next 4096)" % o, r.headers)
    r = hist(P, GA, "from=%s:4096" % run, cookie=CH)
    t.ok(r.status == 200 and r.header("X-Virtconsole-Offset") == str(total - 8192) and r.body == sent2[-8192:],
         "from=RUN:4096: the answer starts at the next byte kept, Offset %d, the last 8 KiB" % (total - 8192),
         r.headers)
    r = hist(P, GA, "from=%s:%d&max=100000" % (run, s2 + k), cookie=CH)
    t.ok(r.status == 200 and r.header("X-Virtconsole-Offset") == str(total - 8192) and len(r.body) == 8192,
         "max=100000 from line 3000: no more than what is kept (%s, %d)" % (r.status, len(r.body)))
    A.reload({"history": None, "history_head": None})
    mark = A.mark()
    c2.close()
    # A's stream must be closed before N opens the same console.
    A.wait_log(r"session \d+ guest=%s dev=serial0: .* -> DEAD" % GA, 10 * W, since=mark)

    # auth=none: every credential is a writer's, history included.
    c3 = Client(N.sock(GA))
    ok = c3.wait_prompt(40 * W) and c3.run("echo hn-%s" % n, rb"hn-%s\r\n" % n.encode(), 10 * W)
    r = http(PN, "/api/history/%s" % GA)
    t.ok(ok and r.status == 200 and (b"hn-%s\r\n" % n.encode()) in r.body,
         "N (auth=none): /api/history/%s answers the console's bytes (%s)" % (GA, r.status))
    mark_n = N.mark()
    c3.close()


with t.case("view-only credentials and mode=view"):
    # N's stream must be closed before A opens the same console.
    N.wait_log(r"session \d+ guest=%s dev=serial0: .* -> DEAD" % GA, 10 * W, since=mark_n)
    loop = Loop()
    origin = "http://127.0.0.1:%d" % P

    def url(tok, query=""):
        return "ws://127.0.0.1:%d/console/%s?token=%s%s" % (P, GA, tok, query)

    def clients_is(c, writer, viewers, timeout=10):
        """Wait for c's latest clients message to say that."""
        deadline = time.monotonic() + timeout
        while True:
            got = c.messages("clients")
            if got and got[-1].get("writer") is writer and got[-1].get("viewers") == viewers:
                return True
            left = deadline - time.monotonic()
            if left <= 0 or c.closed:
                return False
            c.fill(min(left, 0.5))

    n = nonce()
    wr = V1Client(loop, url(mint(A, GA)))
    hw = wr.hello or {}
    ok = hw.get("role") == "writer" and wr.wait_prompt(40 * W) and \
        wr.run("echo before-%s-$((6*7))" % n, rb"before-%s-42\r\n" % n.encode(), 10 * W) and wr.read_until(rb"# ", 10 * W)
    t.ok(ok, "a writer's token opens a writer (hello role %r) and runs a command" % hw.get("role"))
    t.ok(clients_is(wr, True, 0), "the writer is told: writer true, viewers 0", wr.messages("clients"))

    tv = mint(A, GA, extra=["--view", "--label", "watcher %s" % n])
    w = RawWS(P, "/console/%s?token=%s" % (GA, tv))
    t.ok(body_is(w.response, 403, "403 Forbidden: a view-only credential cannot write\n"),
         "a view-only token without mode=view (a write) -> 403 before the upgrade", repr(w.response))
    w.close()
    for q in ("mode=bogus", "mode=", "mode=VIEW"):
        w = RawWS(P, "/console/%s?token=%s&%s" % (GA, tv, q))
        t.ok(body_is(w.response, 400, "400 Bad Request: mode= is view (or absent, to write)\n"),
             "?%s -> 400 with the reason" % q, repr(w.response))
        w.close()
    mark = A.mark()
    v1 = V1Client(loop, url(tv, "&mode=view&tail=65536"))
    hv = v1.hello or {}
    t.ok(hv.get("role") == "viewer",
         "none of those spent the token: with mode=view it opens a viewer (hello role %r)" % hv.get("role"))
    t.ok(A.wait_log(r'session \d+ guest=%s dev=serial0: client peer=.* role=viewer label="watcher %s"' % (GA, n),
                    5, since=mark),
         "the daemon logs the viewer with the credential's label")
    r = ctl(A.conf_path, "list", "--json")
    try:
        ls = [(x["role"], x["label"]) for x in json.loads(r.stdout) if x["guest"] == GA]
    except (ValueError, KeyError):
        ls = []
    t.ok(sorted(ls) == [("viewer", "watcher %s" % n), ("writer", "")],
         "virtconsolectl list --json: the writer unlabelled, the viewer with its credential's label",
         ls, r.stdout[-600:])
    r = ctl(A.conf_path, "list")
    t.ok(re.search(r" viewer +watcher %s +-$" % n, r.stdout, re.M) is not None,
         "virtconsolectl list: the viewer's ROLE, LABEL and REC (none) columns", r.stdout[-600:])
    t.ok(clients_is(wr, True, 1) and clients_is(v1, True, 1),
         "writer and viewer are told: writer true, viewers 1", wr.messages("clients")[-1:], v1.messages("clients")[-1:])
    r = http(P, "/api/guests?token=" + mint(A, GA))
    cons = {}
    try:
        for g in json.loads(r.text())["guests"]:
            if g["name"] == GA:
                cons = {c["alias"]: c for c in g["consoles"]}
    except (ValueError, KeyError):
        pass
    t.ok(cons.get("serial0", {}).get("busy") is True and cons.get("serial0", {}).get("viewers") == 1 and
         cons.get("console1", {}).get("busy") is False and cons.get("console1", {}).get("viewers") == 0,
         "/api/guests: serial0 busy (its writer) with viewers 1, console1 not busy with viewers 0", cons)

    wr.run("echo live-%s-$((6*7))" % n, rb"live-%s-42\r\n" % n.encode(), 10 * W)
    got = v1.read_until(rb"live-%s-42\r\n" % n.encode(), 10 * W)
    t.ok(got, "the viewer sees the writer's command output live")
    t.ok(b"before-%s-42" % n.encode() not in v1.buf and not v1.messages("gap"),
         "without the history claim, tail= is ignored: none of the output from before it attached, no gap")

    v1.send(b"touch /tmp/viewer-wrote-%s\r" % n.encode())
    v1.send(b"x")
    note = v1.wait_message("notice", 5)
    t.ok(note == {"type": "notice", "text": "view only: input is not sent to the guest"},
         "the viewer types: told once with the notice message", note)
    wr.run("ls /tmp/viewer-wrote-%s; echo ls-done-$?" % n, rb"ls-done-\d+\r\n", 10 * W)
    m = re.search(rb"No such file.*\r\n.*ls-done-(\d+)", bytes(wr.buf[-600:]), re.S)
    t.ok(m and m.group(1) != b"0", "the writer then finds no /tmp/viewer-wrote-%s: the input never reached the guest"
         % n, bytes(wr.buf[-300:]))
    v1.read_until(rb"ls-done-\d+\r\n", 10 * W)
    t.ok(len(v1.messages("notice")) == 1 and v1.connected() and not v1.closed,
         "one notice only, and the viewer stays attached (%d notices)" % len(v1.messages("notice")))

    # Through the cookie the view token logs in to.
    CV = cookie_of(login(P, mint(A, GA, extra=["--view"])))
    w = RawWS(P, "/console/%s" % GA, headers={"Cookie": "vcd_session=" + CV, "Origin": origin})
    t.ok(body_is(w.response, 403, "403 Forbidden: a view-only credential cannot write\n"),
         "its cookie cannot open a writer either: 403", repr(w.response))
    w.close()
    v2 = V1Client(loop, "ws://127.0.0.1:%d/console/%s?mode=view" % (P, GA), origin=origin,
                  headers={"Cookie": "vcd_session=" + CV})
    t.ok((v2.hello or {}).get("role") == "viewer" and clients_is(wr, True, 2),
         "the cookie with mode=view opens a second viewer; the writer is told viewers 2",
         v2.hello, wr.messages("clients")[-1:])
    r = hist(P, GA, cookie=CV)
    t.ok(body_is(r, 403, "403 Forbidden: this credential may not read history\n"),
         "that viewer's cookie may not read /api/history: 403", repr(r))

    # A writer's credential may ask to view; a view one with --history reads back.
    v3 = V1Client(loop, url(mint(A, GA, extra=["--view", "--history"]), "&mode=view&tail=65536"))
    t.ok((v3.hello or {}).get("role") == "viewer" and v3.read_until(rb"live-%s-42\r\n" % n.encode(), 10 * W),
         "a --view --history token: tail= gives the output from before it attached", v3.hello)
    v4 = V1Client(loop, url(mint(A, GA), "&mode=view"))
    t.ok((v4.hello or {}).get("role") == "viewer" and clients_is(wr, True, 4),
         "a writer's token with mode=view gets a viewer (hello role %r), viewers 4"
         % (v4.hello or {}).get("role"), wr.messages("clients")[-1:])
    # A viewer's resume id: matched against that console's viewers.
    mark = A.mark()
    v5 = V1Client(loop, url(mint(A, GA), "&mode=view&resume=%s" % (v4.hello or {}).get("resume")))
    end4 = v4.wait_message("end", 10)
    t.ok((v5.hello or {}).get("role") == "viewer" and end4 and end4.get("code") == 4004 and
         A.wait_log(r"guest=%s dev=serial0: resumes session \d+$" % GA, 5, since=mark),
         "mode=view with the last viewer's resume id: a viewer that takes that one's place (its end: %s)" % end4)
    t.ok(clients_is(wr, True, 4), "the writer is told viewers 4 still", wr.messages("clients")[-1:])
    t.ok(wr.connected() and not wr.closed, "the writer kept its session through it all")
    for c in (v1, v2, v3, v4, v5):
        c.close()
    t.ok(clients_is(wr, True, 0), "the viewers left: the writer is told viewers 0", wr.messages("clients")[-1:])
    mark = A.mark()
    wr.close()
    A.wait_log(r"session \d+ guest=%s dev=serial0: .* -> DEAD" % GA, 10 * W, since=mark)
    loop.stop()


with t.case("the logs"):
    logs = A.log() + N.log()
    leaked = [s for s in SECRETS if s and s in logs]
    t.ok(not leaked, "no token or cookie text in the daemons' logs (%d checked)" % len(SECRETS))
    t.ok(A.alive() and N.alive(), "A and N are still up")
    t.ok(A.stop() == 0 and N.stop() == 0, "and exit 0 on SIGTERM")

t.done()
