#!/usr/bin/python3
"""Two daemons, one per lab libvirtd, behind one nginx (issue 19, several
hypervisors: "Several daemons behind one front end", docs/ARCHITECTURE.md
"Beyond one host").

Lab A is the lab of LAB_DIR/LAB_URI; lab B is a second private libvirtd
this test starts (tests/lab/lab.sh start) and stops.  A guest on each
(tngx1 on A, tngx2 on B).  Daemon A serves lab A, daemon B lab B, each on
its own web listener (127.0.0.1:0), with its own cookie_name (vcd_a,
vcd_b) and state_dir (so its own audience); they share one
token_secret_file, so that what tells their credentials apart is the
audience alone.  Both have server_name = 127.0.0.1 and allowed_origins =
nginx's origin.  nginx (Debian's 1.22, run from its binary on a
temporary config, never the packaged service) listens on 127.0.0.1:PORT
and routes /a/ to A and /b/ to B, with the WebSocket upgrade headers and
`proxy_set_header Host $host`.

Checked: a real Chromium (browser-nginx.mjs) signs in to A through
/a/?token= and to B through /b/?token=, holds both cookies (each scoped
to its prefix), types into both consoles at once and sees the echoes;
A's token is refused on /b/ (403 wrong audience) and A's cookie too (401),
in the browser and over raw HTTP and WebSocket through nginx (B's to A
likewise); the daemons' Host and Origin checks still work behind nginx
(421, 403); nginx's access log shows both upgrades (101) and no token;
nginx and both daemons stop cleanly.
"""

import os
import re
import signal
import socket
import subprocess
import sys
import time

sys.dont_write_bytecode = True     # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from vcdtest import (LAB_SH, TAP, Lab, defer, free_port, make_tmpdir, vcd_binary,  # noqa: E402
                     wait_for)

t = TAP()
lab_a = Lab(t)
if not os.access(vcd_binary(), os.X_OK):
    t.skip_all("no daemon binary at %s" % vcd_binary())

from webtest import OP_BINARY, RawWS, WebDaemon, http, web_root  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
NGINX = "/usr/sbin/nginx"
if not os.access(NGINX, os.X_OK):
    t.skip_all("no %s (Debian's nginx package; tests/deps.sh installs it)" % NGINX)
BUILD = os.path.dirname(vcd_binary())
NODE_MODULES = os.path.join(BUILD, "web-npm", "node_modules")
CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")

TMP = make_tmpdir("vcd-nginx.")
GA, GB = "tngx1", "tngx2"
lab_a.remove_leftovers([GA, GB])
SECRET = os.path.join(TMP, "secret")
HOST = "127.0.0.1"              # the public name the browser uses
TOKENS = []                     # never printed



def scrub(text):
    for i, tok in enumerate(TOKENS):
        text = text.replace(tok, "T%d" % i)
    return text


def lab_stop(directory):
    r = subprocess.run([LAB_SH, "stop", directory], stdin=subprocess.DEVNULL,
                       capture_output=True, text=True, timeout=120)
    if r.returncode != 0:
        print("# lab.sh stop %s: status %d: %s" % (directory, r.returncode, r.stderr.strip()))


def mint(d, guest, ttl=300):
    tok = d.token(guest, ttl=ttl)
    TOKENS.append(tok)
    return tok


def nav(port, path, host=None, cookie=None):
    """GET path on nginx as a browser's top-level navigation."""
    h = {"Sec-Fetch-Mode": "navigate", "Sec-Fetch-Dest": "document",
         "Sec-Fetch-Site": "none"}
    if cookie:
        h["Cookie"] = cookie
    return http(port, path, headers=h, host=host or "%s:%d" % (HOST, port))


def api(port, path, cookie):
    """The page's own GET (same-origin fetch) with a Cookie header."""
    return http(port, path, headers={"Sec-Fetch-Site": "same-origin", "Sec-Fetch-Mode": "cors",
                                     "Sec-Fetch-Dest": "empty", "Cookie": cookie},
                host="%s:%d" % (HOST, port))


def cookie_of(r, name):
    m = re.match(r"%s=([^;]+)" % re.escape(name), r.header("Set-Cookie") or "")
    return m.group(1) if m else None


def brief(r):
    return "%s %r" % (r.status, r.text().strip()) if r is not None else "no response"


# ------------------------------------------------------------ nginx

NGINX_CONF = """\
# t-nginx: nginx in the foreground on a temporary prefix.
daemon off;
worker_processes 1;
pid {dir}/nginx.pid;
error_log {dir}/error.log info;
events {{ worker_connections 256; }}

http {{
    client_body_temp_path {dir}/tmp/body;
    proxy_temp_path {dir}/tmp/proxy;
    fastcgi_temp_path {dir}/tmp/fastcgi;
    uwsgi_temp_path {dir}/tmp/uwsgi;
    scgi_temp_path {dir}/tmp/scgi;

    # The first request carries ?token=T: no query strings in the log.
    log_format consoles '$remote_addr [$time_local] '
                        '"$request_method $uri $server_protocol" '
                        '$status $body_bytes_sent';
    access_log {dir}/access.log consoles;
    # (For this test's raw clients, which read a response until the close.)
    keepalive_timeout 0;

    server {{
        listen 127.0.0.1:{port};
        server_name {host};

        # Nothing else here (not even /favicon.ico from a file).
        location / {{
            return 404;
        }}
        # Daemon A (lab A): /a/ stripped, so A sees /, /api/..., /console/...
        location /a/ {{
            proxy_pass http://127.0.0.1:{port_a}/;
            proxy_http_version 1.1;
            proxy_set_header Upgrade $http_upgrade;
            proxy_set_header Connection "upgrade";
            proxy_set_header Host $host;
            proxy_read_timeout 1h;
        }}
        # Daemon B (lab B).
        location /b/ {{
            proxy_pass http://127.0.0.1:{port_b}/;
            proxy_http_version 1.1;
            proxy_set_header Upgrade $http_upgrade;
            proxy_set_header Connection "upgrade";
            proxy_set_header Host $host;
            proxy_read_timeout 1h;
        }}
    }}
}}
"""


class Nginx:
    """nginx -p DIR -c DIR/nginx.conf -e DIR/error.log, daemon off: our
    child in a session of its own, stopped with SIGQUIT (graceful), then
    SIGTERM."""

    def __init__(self, port, port_a, port_b):
        self.dir = make_tmpdir("vcd-ngx.")
        # Its worker (nobody, when started by root) writes proxy buffers
        # under DIR/tmp, which nginx makes and gives to it.
        os.chmod(self.dir, 0o711)
        self.port = port
        self.conf = os.path.join(self.dir, "nginx.conf")
        with open(self.conf, "w") as f:
            f.write(NGINX_CONF.format(dir=self.dir, port=port, host=HOST,
                                      port_a=port_a, port_b=port_b))
        os.mkdir(os.path.join(self.dir, "tmp"), 0o755)
        self.errlog = os.path.join(self.dir, "error.log")
        self.access = os.path.join(self.dir, "access.log")
        self.proc = None
        self.stopped = False
        defer(self.kill)

    def argv(self, *extra):
        return [NGINX, "-p", self.dir + "/", "-c", self.conf, "-e", self.errlog] + list(extra)

    def test_config(self):
        return subprocess.run(self.argv("-t"), capture_output=True, text=True,
                              timeout=30, stdin=subprocess.DEVNULL)

    def start(self, timeout=15):
        out = open(os.path.join(self.dir, "nginx.out"), "wb")
        self.proc = subprocess.Popen(self.argv(), stdin=subprocess.DEVNULL,
                                     stdout=out, stderr=subprocess.STDOUT,
                                     start_new_session=True)
        out.close()

        def up():
            if self.proc.poll() is not None:
                return True
            try:
                socket.create_connection(("127.0.0.1", self.port), 1).close()
                return True
            except OSError:
                return False
        return wait_for(up, timeout) and self.proc.poll() is None

    def log(self, path=None):
        try:
            with open(path or self.errlog, errors="replace") as f:
                return f.read()
        except OSError:
            return ""

    def stop(self, timeout=10):
        """SIGQUIT (graceful shutdown), then SIGTERM; its exit status, or
        None if it had to be killed."""
        if self.proc is None:
            return None
        for sig in (signal.SIGQUIT, signal.SIGTERM):
            if self.proc.poll() is not None:
                break
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                continue
        if self.proc.poll() is None:
            self.kill()
            return None
        self.stopped = True     # its group is gone: nothing to kill
        return self.proc.returncode

    def kill(self):
        """SIGKILL to its process group (its own session): the master and
        any worker, which a killed master would leave serving."""
        if self.proc is None or self.stopped:
            return
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        if self.proc.poll() is None:
            self.proc.wait()


# ------------------------------------------------------------ setup

A = B = ng = lab_b = None
PORT = free_port()
ORIGIN = "http://%s:%d" % (HOST, PORT)

with t.case("setup: lab B, a guest on each lab, daemons A and B, nginx"):
    # Lab B starts (tens of seconds at most) while lab A makes its guest.
    env = dict(os.environ)
    env.pop("LAB_DIR", None)
    env.pop("LAB_URI", None)
    start_log = os.path.join(TMP, "lab-b-start.log")
    with open(start_log, "w") as err:
        p = subprocess.Popen([LAB_SH, "start"], env=env, stdin=subprocess.DEVNULL,
                             stdout=subprocess.PIPE, stderr=err, text=True)
    t_lab = time.monotonic()
    ra = lab_a.create(GA)
    out, _ = p.communicate(timeout=360)
    m_dir = re.search(r"^LAB_DIR='([^']+)'$", out, re.M)
    m_uri = re.search(r"^LAB_URI='([^']+)'$", out, re.M)
    if m_dir:
        defer(lab_stop, m_dir.group(1))
    ok_b = t.ok(p.returncode == 0 and m_dir and m_uri,
                "a second lab started by this test: %s (%.1f s)"
                % (m_dir.group(1) if m_dir else "?", time.monotonic() - t_lab),
                open(start_log).read()[-1500:])
    t.ok(ra.returncode == 0, "guest %s created on lab A" % GA, ra.stdout + ra.stderr)
    if not ok_b:
        t.done()
    lab_b = Lab(t, lab_dir=m_dir.group(1), uri=m_uri.group(1))
    rb = lab_b.create(GB)
    t.ok(rb.returncode == 0, "guest %s created on lab B" % GB, rb.stdout + rb.stderr)
    t.ok(not lab_a.exists(GB) and not lab_b.exists(GA),
         "the labs are two libvirtds: %s only on A, %s only on B" % (GA, GB))

    common = {
        "listen": "127.0.0.1:0",
        "token_secret_file": SECRET,
        "web_root": web_root(),
        "server_name": HOST,
        "allowed_origins": ORIGIN,
        "start_wait": 20,
        "idle_timeout": 0,
    }
    A = WebDaemon(lab_a.uri, dict(common, cookie_name="vcd_a"), name="A", tmpdir=TMP)
    B = WebDaemon(lab_b.uri, dict(common, cookie_name="vcd_b"), name="B", tmpdir=TMP)
    # One after the other: A makes the shared secret, B reads it.
    ok = A.start() and B.start()
    t.ok(ok, "daemons A (lab A) and B (lab B) start", A.log_tail(), B.log_tail())
    if not ok:
        t.done()
    PA, PB = A.port(), B.port()
    aud_a = open(os.path.join(A.conf["state_dir"], "audience"), "rb").read()
    aud_b = open(os.path.join(B.conf["state_dir"], "audience"), "rb").read()
    t.ok(PA and PB and len(aud_a) == 16 and aud_a != aud_b,
         "A listens on 127.0.0.1:%s, B on 127.0.0.1:%s; one secret, two audiences (%s, %s)"
         % (PA, PB, aud_a.hex()[:8], aud_b.hex()[:8]))
    ng = Nginx(PORT, PA, PB)
    r = ng.test_config()
    t.ok(r.returncode == 0, "nginx -t accepts the configuration", r.stdout + r.stderr)
    ok = ng.start()
    t.ok(ok, "nginx %s runs from its binary (pid %s) on %s, /a/ -> :%s, /b/ -> :%s"
         % (NGINX, ng.proc.pid, ORIGIN, PA, PB), ng.log()[-1500:])
    if not ok:
        t.done()


if ng is None or ng.proc is None or ng.proc.poll() is not None:
    t.done()

# ------------------------------------------------------------ the browser

TA, TA2, TB = mint(A, GA), mint(A, GA), mint(B, GB)

with t.case("a browser signs in to both through nginx"):
    missing = [w for w, c in (
        (CHROMIUM, os.access(CHROMIUM, os.X_OK)),
        ("node", subprocess.run(["sh", "-c", "command -v node"], capture_output=True).returncode == 0),
        (os.path.join(NODE_MODULES, "playwright-core"), os.path.isdir(os.path.join(NODE_MODULES, "playwright-core"))),
        (os.path.join(web_root(), "vendor", "xterm.js"), os.path.exists(os.path.join(web_root(), "vendor", "xterm.js"))),
    ) if not c]
    if missing:
        t.skip("the browser part needs %s" % ", ".join(missing))
    else:
        profile = os.path.join(TMP, "profile")
        os.mkdir(profile)
        benv = dict(os.environ, VCD_BUILD=BUILD, NGX_URL=ORIGIN + "/", TOKEN_A=TA, TOKEN_A2=TA2,
                    TOKEN_B=TB, GUEST_A=GA, GUEST_B=GB, COOKIE_A="vcd_a", COOKIE_B="vcd_b",
                    VCD_PROFILE=profile, CHROMIUM=CHROMIUM)
        bout = os.path.join(TMP, "browser.out")
        with open(bout, "wb") as f:
            # Its own session: node and the chromium it starts are one
            # group, ended at cleanup if left behind.
            node = subprocess.Popen(["node", os.path.join(HERE, "browser-nginx.mjs")], env=benv,
                                    stdin=subprocess.DEVNULL, stdout=f, stderr=subprocess.STDOUT,
                                    start_new_session=True)

        def end_group(p=node):
            if p.poll() is None:
                try:
                    os.killpg(p.pid, signal.SIGTERM)
                    p.wait(5)
                except (ProcessLookupError, subprocess.TimeoutExpired):
                    pass
            try:
                os.killpg(p.pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
        defer(end_group)
        try:
            rc = node.wait(240)
        except subprocess.TimeoutExpired:
            rc = None
            end_group()
        seen = 0
        for line in scrub(open(bout, errors="replace").read()).splitlines():
            if line.startswith("ok - "):
                t.ok(True, line[5:])
                seen += 1
            elif line.startswith("not ok - "):
                t.ok(False, line[9:])
                seen += 1
            elif line.startswith("#"):
                print(line)
            else:
                print("# " + line)
        t.ok(rc == 0 and seen > 0, "browser-nginx.mjs ran its checks and exited 0 (status %s, %d checks)"
             % (rc, seen))


# ------------------------------------------------------------ refusals

with t.case("one daemon's tokens and cookies are refused by the other (raw HTTP through nginx)"):
    TA3, TB2 = mint(A, GA), mint(B, GB)
    # A's token on B's path: not spent by the refusal, so it then signs in to A.
    r = nav(PORT, "/b/?token=" + TA3)
    t.ok(r.status == 403 and r.text() == "403 Forbidden: wrong audience\n" and not r.header("Set-Cookie"),
         "A's token on /b/?token=: B answers %s, no cookie" % brief(r))
    r = nav(PORT, "/a/?token=" + TA3)
    ca = cookie_of(r, "vcd_a")
    t.ok(r.status == 302 and r.header("Location") == "./" and ca,
         "the same token on /a/?token=: A signs in: %s, Location %r, Set-Cookie vcd_a (%s)"
         % (r.status, r.header("Location"), re.sub(r"=[^;]+", "=...", r.header("Set-Cookie") or "", 1)))
    t.ok(ca and "path=" not in (r.header("Set-Cookie") or "").lower(),
         "A's Set-Cookie has no Path (the browser scopes it to /a)")
    r = nav(PORT, "/a/?token=" + TB2)
    t.ok(r.status == 403 and r.text() == "403 Forbidden: wrong audience\n",
         "B's token on /a/?token=: A answers %s" % brief(r))
    r = nav(PORT, "/b/?token=" + TB2)
    cb = cookie_of(r, "vcd_b")
    t.ok(r.status == 302 and cb, "B's token on /b/?token=: B signs in (%s, Set-Cookie vcd_b)" % r.status)

    r = api(PORT, "/a/api/guests", "vcd_a=%s" % ca)
    t.ok(r.status == 200 and '"name":"%s"' % GA in r.text() and GB not in r.text(),
         "A's cookie on /a/api/guests: %s, lists %s only" % (r.status, GA), brief(r))
    r = api(PORT, "/b/api/guests", "vcd_b=%s" % cb)
    t.ok(r.status == 200 and '"name":"%s"' % GB in r.text() and GA not in r.text(),
         "B's cookie on /b/api/guests: %s, lists %s only" % (r.status, GB), brief(r))
    r = api(PORT, "/b/api/guests", "vcd_b=%s" % ca)
    t.ok(r.status == 401 and r.text() == "401 Unauthorized: wrong audience\n",
         "A's cookie value sent to B as vcd_b: %s" % brief(r))
    r = api(PORT, "/b/api/guests", "vcd_a=%s" % ca)
    t.ok(r.status == 401 and "no token or session cookie" in r.text(),
         "A's cookie under its own name sent to /b/: %s" % brief(r))
    r = api(PORT, "/a/api/guests", "vcd_a=%s" % cb)
    t.ok(r.status == 401 and r.text() == "401 Unauthorized: wrong audience\n",
         "B's cookie value sent to A as vcd_a: %s" % brief(r))

    host = "%s:%d" % (HOST, PORT)
    w = RawWS(PORT, "/b/console/%s" % GB, headers={"Cookie": "vcd_b=" + ca, "Origin": ORIGIN}, host=host)
    t.ok(w.response is not None and w.response.status == 401,
         "a WebSocket to /b/console/%s with A's cookie as vcd_b: %s" % (GB, brief(w.response)))
    w.close()
    TA4 = mint(A, GA)
    w = RawWS(PORT, "/b/console/%s?token=%s" % (GB, TA4), headers={"Origin": ORIGIN}, host=host)
    t.ok(w.response is not None and w.response.status == 403,
         "a WebSocket to /b/console/%s?token=<A's token>: %s" % (GB, brief(w.response)))
    w.close()
    # And the right credential upgrades through nginx (101), the guest answers.
    w = RawWS(PORT, "/a/console/%s" % GA, headers={"Cookie": "vcd_a=" + ca, "Origin": ORIGIN}, host=host,
              protocol="binary")
    ok = w.accepted()
    t.ok(ok, "a WebSocket to /a/console/%s with A's cookie: %s" % (GA, brief(w.response) if not ok else "101"))
    if ok:
        w.answer_pings = True
        seen = None
        # (Without the browser part the guest may still be booting.)
        deadline = time.monotonic() + 40
        while seen is None and time.monotonic() < deadline:
            w.send_frame(OP_BINARY, b"echo raw-$((6*7))\r")
            seen = w.read_until(rb"raw-42", 2)
        t.ok(seen is not None, "through nginx, the raw client's echo comes back (raw-42)",
             repr(bytes(w.data[-300:])))
    w.close()

    # The daemons' own checks still hold behind nginx.
    r = http(PORT, "/a/api/guests", headers={"Cookie": "vcd_a=" + ca, "Sec-Fetch-Site": "same-origin"},
             host="evil.example")
    t.ok(r.status == 421, "Host: evil.example through nginx ($host passed on): A answers %s" % brief(r))
    w = RawWS(PORT, "/a/console/%s" % GA, headers={"Cookie": "vcd_a=" + ca, "Origin": "http://evil.example"},
              host=host)
    t.ok(w.response is not None and w.response.status == 403,
         "a WebSocket to /a/ with Origin http://evil.example: %s" % brief(w.response))
    w.close()


with t.case("logs"):
    acc = ng.log(ng.access)
    up_a = re.findall(r'"GET /a/console/%s/serial0 HTTP/1\.1" 101 ' % GA, acc)
    up_b = re.findall(r'"GET /b/console/%s/serial0 HTTP/1\.1" 101 ' % GB, acc)
    if os.path.exists(os.path.join(TMP, "browser.out")):
        t.ok(up_a and up_b, "nginx's access log has the page's upgrades: /a/console/%s/serial0 101 (%d), "
             "/b/console/%s/serial0 101 (%d)" % (GA, len(up_a), GB, len(up_b)), acc[-1500:])
    t.ok("token" not in acc and not any(tok in acc for tok in TOKENS),
         "and no token, nor any query string (%d lines)" % len(acc.splitlines()))
    refusals_b = B.find_log(r"web: peer=127\.0\.0\.1:\d+ listener=\S+ status=(\d+) why=wrong audience")
    t.ok("403" in refusals_b and "401" in refusals_b,
         "B logged its refusals of A's credentials: status=403 and status=401 why=wrong audience (%s)"
         % ", ".join(refusals_b))
    t.ok(not any(tok in A.log() + B.log() for tok in TOKENS), "no token in either daemon's log")
    t.ok(not re.search(r"\[(error|crit|alert|emerg)\]", ng.log()),
         "nginx's error log has no error", ng.log()[-1500:])


with t.case("stop"):
    rc = ng.stop()
    t.ok(rc == 0, "nginx stops on SIGQUIT (status %s)" % rc, ng.log()[-800:])
    ra, rb = A.stop(), B.stop()
    t.ok(ra == 0 and rb == 0, "daemons A and B exit 0 on SIGTERM (%s, %s)" % (ra, rb),
         "A's log:\n" + A.log_tail(20), "B's log:\n" + B.log_tail(20))
    r = subprocess.run([LAB_SH, "stop", lab_b.dir], stdin=subprocess.DEVNULL, capture_output=True,
                       text=True, timeout=120)
    t.ok(r.returncode == 0 and not os.path.exists(lab_b.dir),
         "lab B stopped (lab.sh stop %s: status %d)" % (lab_b.dir, r.returncode), r.stderr[-800:])
    lab_b.guests = []           # gone with it

t.done()
