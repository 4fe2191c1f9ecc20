#!/usr/bin/python3
"""The benchmark's tools against the lab: bench/vcdload in each of its
modes (libvirt, unix, ws, wss) measures keystroke echo round trips on a
real guest console and reports them in its JSON, counts a refusal (and
fails its exit status), holds its sessions until SIGUSR1; bench/oldconsole.py
(the old design) serves a console with one forked process per client,
alone and behind Debian's websockify; bench/malloccount.so counts a
process's allocations by the object that called, in a file read from
outside, and traces them on request.

Also a regression check found with vcdload: virtconsoled answers a
client's WebSocket close frame with its own (RFC 6455 5.5.1) instead of
dropping the connection with the reply unsent.
"""

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import types

sys.dont_write_bytecode = True     # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from vcdtest import TAP, Daemon, Lab, TOP, defer, free_port, make_tmpdir, vcd_binary, wait_for  # noqa: E402
from webtest import WebDaemon, make_cert, web_root  # noqa: E402

t = TAP()
lab = Lab(t)
VCDLOAD = os.path.join(os.path.dirname(vcd_binary()), "bench", "vcdload")
OLDCONSOLE = os.path.join(TOP, "bench", "oldconsole.py")
if not os.access(vcd_binary(), os.X_OK) or not os.access(VCDLOAD, os.X_OK):
    t.skip_all("no daemon or no bench/vcdload in %s" % os.path.dirname(vcd_binary()))

TMP = make_tmpdir("vcd-tb.")
G = "tb-a"
lab.remove_leftovers([G])
ECHO_S = "2"


def vcdload(mode, *args, timeout=120):
    """Run vcdload; (exit status, its JSON or None, stderr)."""
    argv = [VCDLOAD, mode] + list(args)
    r = subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True,
                       text=True, timeout=timeout)
    try:
        doc = json.loads(r.stdout)
    except ValueError:
        doc = None
    return r.returncode, doc, r.stderr


def echo_ok(name, rc, doc, err):
    """The checks every good one-session echo run passes; its RTT p50."""
    if doc is None:
        t.ok(False, "%s: vcdload printed JSON" % name, "status %d, stderr: %s" % (rc, err[-800:]))
        return None
    rtt = doc["rtt_us"]
    bad = {k: v for k, v in doc["errors"].items() if v}
    t.ok(rc == 0 and doc["ok"] and doc["ready"] == 1 and not bad,
         "%s: one session attached, prepared, no errors (status %d)" % (name, rc),
         json.dumps({k: doc[k] for k in ("errors", "ends", "ready")}),
         json.dumps(doc.get("per_session"))[:1500])
    t.ok(rtt["count"] > 0 and rtt["count"] == doc["echo"]["echoed"] and
         doc["echo"]["sent"] - doc["echo"]["echoed"] <= 1 and
         0 < rtt["min"] <= rtt["p50"] <= rtt["p99"] <= rtt["max"],
         "%s: every keystroke's echo came back and was timed (%d)" % (name, rtt["count"]),
         json.dumps(rtt), json.dumps(doc["echo"]))
    if rtt["p50"]:
        t.diag("figure: benchtools %s echo rtt p50 = %d us" % (name, rtt["p50"]))
    return rtt["p50"]


def children(pid):
    """Pids whose parent is pid (Daemon.children, for any process)."""
    return Daemon.children(types.SimpleNamespace(pid=pid))



def stop_group(p):
    if p.poll() is None:
        try:
            os.killpg(p.pid, signal.SIGTERM)
            p.wait(10)
        except (ProcessLookupError, subprocess.TimeoutExpired):
            os.killpg(p.pid, signal.SIGKILL)
            p.wait()


def start(argv, log_name):
    log = open(os.path.join(TMP, log_name), "ab")
    p = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=log,
                         stderr=subprocess.STDOUT, start_new_session=True)
    log.close()
    defer(stop_group, p)
    return p


def log_tail(name, n=15):
    try:
        with open(os.path.join(TMP, name), errors="replace") as f:
            return "".join(f.readlines()[-n:])
    except OSError:
        return ""


d = WebDaemon(lab.uri, {
    "listen": ["127.0.0.1:0", "127.0.0.1:0 tls"],
    "token_secret_file": os.path.join(TMP, "secret"),
    "web_root": web_root(),
    "ping_interval": 1,
    "start_wait": 20,
}, name="tb", tmpdir=TMP)

with t.case("setup"):
    r = lab.create(G, consoles=0)
    t.ok(r.returncode == 0, "guest %s created" % G, r.stderr)
    r = lab.sh("wait-boot", G, "90", timeout=150)
    t.ok(r.returncode == 0, "guest %s boots to a shell" % G, r.stdout + r.stderr)
    cert, key = make_cert(TMP)
    d.write_config({"tls_cert": cert, "tls_key": key})
    t.ok(d.start(), "virtconsoled starts", d.log_tail())
    PORT, TLS_PORT = d.port(), d.port(tls=True)
    t.ok(PORT and TLS_PORT, "web listeners, plain and TLS", d.log_tail())

with t.case("libvirt mode: the floor"):
    # The serial port, like the other modes (a virtio console echoes
    # about ten times faster here).
    echo_ok("libvirt", *vcdload("libvirt", "--uri", lab.uri, "--echo", ECHO_S,
                                "%s:serial0" % G))

with t.case("unix mode: a refusal is counted and fails the status"):
    rc, doc, err = vcdload("unix", "--echo", ECHO_S, d.sock(G), d.sock(G))
    t.ok(doc is not None and rc == 1, "two sessions on one console: status 1 (got %d)" % rc, err[-500:])
    if doc:
        ps = doc["per_session"]
        t.ok(doc["ready"] == 1 and doc["failed"] == 1 and doc["errors"]["refused"] == 1
             and doc["errors"]["attach_failed"] == 1 and not doc["ok"],
             "one ready, one refused, both counted",
             json.dumps({k: doc[k] for k in ("ready", "failed", "errors", "ends")}))
        refused = [s for s in ps if not s["ready"]]
        t.ok(len(refused) == 1 and refused[0]["end"]["notice"] ==
             {"kind": "refused", "reason": "console busy"},
             "the refused session carries the daemon's notice", json.dumps(refused)[:800])
        good = [s for s in ps if s["ready"]]
        t.ok(len(good) == 1 and good[0]["rtt_us"]["count"] > 0 and
             good[0]["end"]["by"] == "client",
             "the other one measured its echoes", json.dumps(good)[:800])

with t.case("ws mode, and the close handshake"):
    rc, doc, err = vcdload("ws", "--echo", ECHO_S,
                           "127.0.0.1:%d/console/%s?token=%s" % (PORT, G, d.token(G)))
    echo_ok("vcd-ws", rc, doc, err)
    if doc:
        s = doc["per_session"][0]
        t.ok("token=" not in json.dumps(doc), "the report does not show the token")
        t.ok(s["end"]["close_code"] == 1000 and s["end"]["detail"] == "close frames exchanged",
             "virtconsoled answers the client's close frame", json.dumps(s["end"]))
        t.ok(s["pings"] > 0, "the daemon's pings were answered (%d)" % s["pings"])

with t.case("wss mode"):
    echo_ok("vcd-wss", *vcdload("wss", "--echo", ECHO_S, "--cafile", cert,
                                "wss://127.0.0.1:%d/console/%s?token=%s" % (TLS_PORT, G, d.token(G))))
    rc, doc, err = vcdload("wss", "--idle", "1", "--cafile", cert,
                           "127.0.0.1:%d/console/%s?token=not-a-token" % (TLS_PORT, G))
    t.ok(rc == 1 and doc and doc["errors"]["refused"] == 1 and
         doc["per_session"][0]["end"]["http_status"] == 403,
         "a bad token: HTTP 403, counted as refused, status 1",
         json.dumps(doc and doc["per_session"])[:800], err[-300:])

with t.case("the old design, alone"):
    d.stop()        # its sockets are not the old design's, but free the console
    old_dir = os.path.join(TMP, "old")
    old = start(["/usr/bin/python3", OLDCONSOLE, "--socket-dir", old_dir, "--uri", lab.uri, G],
                "oldconsole.log")
    sock = os.path.join(old_dir, G)
    t.ok(wait_for(lambda: os.path.exists(sock) or old.poll() is not None, 30)
         and old.poll() is None, "oldconsole.py makes its socket", log_tail("oldconsole.log"))
    echo_ok("old-unix", *vcdload("unix", "--echo", ECHO_S, sock))
    ready = os.path.join(TMP, "ready")
    hold = subprocess.Popen([VCDLOAD, "unix", "--idle", "0.5", "--hold-until-signal",
                             "--ready-file", ready, sock], stdin=subprocess.DEVNULL,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    defer(lambda: hold.poll() is None and hold.kill())
    t.ok(wait_for(lambda: os.path.exists(ready) or hold.poll() is not None, 60)
         and os.path.exists(ready), "vcdload writes its ready file once attached")
    time.sleep(1)
    kids = children(old.pid)
    t.ok(len(kids) == 1 and hold.poll() is None,
         "one client, one forked process (%d), and vcdload holds it" % len(kids))
    hold.send_signal(signal.SIGUSR1)
    out, err = hold.communicate(timeout=30)
    doc = json.loads(out) if out.strip() else None
    t.ok(hold.returncode == 0 and doc and doc["ok"] and doc["ends"] == {"client/closed": 1},
         "SIGUSR1 ends the hold; the session was closed by vcdload", out[-800:] + err[-300:])
    t.ok(wait_for(lambda: not children(old.pid), 20),
         "the client's process is gone once it leaves", log_tail("oldconsole.log"))

with t.case("the old design behind websockify"):
    if shutil.which("websockify") is None:
        t.skip("websockify is not installed (tests/deps.sh): the old design behind websockify")
    else:
        port = free_port()
        wsfy = start(["websockify", "--unix-target=" + sock, "127.0.0.1:%d" % port],
                     "websockify.log")

        def listening():
            try:
                socket.create_connection(("127.0.0.1", port), 0.5).close()
                return True
            except OSError:
                return False
        t.ok(wait_for(listening, 20), "websockify listens", log_tail("websockify.log"))
        rc, doc, err = vcdload("ws", "--echo", ECHO_S, "127.0.0.1:%d/" % port)
        echo_ok("old-ws", rc, doc, err)
        if doc:
            t.ok(doc["per_session"][0]["end"]["close_code"] == 1000,
                 "websockify answers the close frame", json.dumps(doc["per_session"][0]["end"]))
        stop_group(wsfy)
    stop_group(old)

with t.case("bench/malloccount.so: allocations by calling object, read from outside"):
    so = os.path.join(os.path.dirname(VCDLOAD), "malloccount.so")
    mcf, trf = os.path.join(TMP, "mc"), os.path.join(TMP, "mc.trace")
    # python3 allocates from its executable (it links libpython in), and
    # each strdup() it calls through ctypes from libc; it asks for the
    # backtraces of 3 of libc's first.
    prog = ("import ctypes, sys\n"
            "sys.path.insert(0, %r)\n"
            "import malloccount\n"
            "malloccount.trace(%r, 3, ['libc'])\n"
            "libc = ctypes.CDLL(None)\n"
            "libc.strdup.restype = ctypes.c_void_p\n"
            "libc.free.argtypes = [ctypes.c_void_p]\n"
            "for i in range(1000):\n"
            "    libc.free(libc.strdup(b'x' * 100))\n" % (os.path.join(TOP, "bench"), mcf))
    r = subprocess.run(["/usr/bin/python3", "-c", prog], capture_output=True, text=True,
                       timeout=60, env=dict(os.environ, LD_PRELOAD=so, MALLOCCOUNT_FILE=mcf,
                                            MALLOCCOUNT_TRACE=trf))
    sys.path.insert(0, os.path.join(TOP, "bench"))
    import malloccount
    c = malloccount.read(mcf)
    t.ok(r.returncode == 0 and c is not None, "a process runs with it preloaded and its "
         "counters are in MALLOCCOUNT_FILE (status %d)" % r.returncode, r.stderr[-500:])
    if c:
        t.ok(c["allocs"]["libc"] >= 1000 and c["bytes"]["libc"] >= 101000 and
             c["allocs"]["main"] > 0 and c["frees"] >= 1000 and c["pid"] > 0,
             "1000 strdup() counted as libc's, python's own as main's, the frees",
             json.dumps(c))
    try:
        with open(trf) as f:
            tr = f.read()
    except OSError:
        tr = ""
    t.ok(tr.count("malloccount: malloc(") == 3 and tr.count("by libc") == 3 and "strdup" in tr,
         "3 backtraces of libc's allocations, on request, through strdup", tr[:1500])
    os.unlink(mcf)
    r = subprocess.run(["/usr/bin/python3", "-c", "print(sum(range(10)))"], capture_output=True,
                       text=True, timeout=60, env=dict(os.environ, LD_PRELOAD=so))
    t.ok(r.returncode == 0 and r.stdout == "45\n" and not os.path.exists(mcf),
         "without MALLOCCOUNT_FILE it counts nothing and the process runs", r.stderr[-500:])

t.done()
