#!/usr/bin/python3
"""Several hypervisors in one daemon (the several-hypervisors issue), against
two private libvirt daemons: the lab's, and a second one this test starts
(its own namespace, its own guests) and stops.

1. g1 on each: a guest named g1 on each hypervisor, reachable and distinct
   through the unix door (socket_dir/a/g1, socket_dir/b/g1), the attach
   socket (hv=), the web door (tokens bound to their hypervisor, ?hv=) and
   the CLI (-H): a mark written into one guest's file system is found
   through every door of that hypervisor and through none of the other's.
2. ambiguous: a bare g1 names no guest: the attach socket refuses it
   naming both hypervisors, the web door answers 409 naming them, the CLI
   says so; `token g1` without -H too.
3. scope: a credential for one hypervisor sees and names only that one
   (/api/guests, the 409 that does not happen, a ?hv= outside it: 404); no
   URI is ever shown to a token holder.
4. one libvirtd killed three times while a session on the other echoes
   every keystroke: that session never ends, its worst echo stays within
   its usual range (figures beside a baseline of the same run); the killed
   hypervisor's own session ends 'hypervisor connection lost', and it
   reconnects each time.
5. silent: a qemu+tcp:// hypervisor whose server accepts and never
   answers is added by reload: the other hypervisor's session keeps
   echoing and the control socket answers within 0.2 s while the silent
   one tries to connect; a reload removes it.
6. reload: removing hypervisor b ends its session 'hypervisor removed' (and
   its socket goes) while a's session echoes on; adding it back brings its
   socket back.
"""

import json
import os
import re
import socket
import subprocess
import sys
import threading
import time

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from vcdtest import (LAB_SH, TAP, Client, Lab, defer, make_tmpdir,  # noqa: E402
                     show, vcd_binary, wait_for)

t = TAP()
labA = Lab(t)
if not os.access(vcd_binary(), os.X_OK):
    t.skip_all("no daemon binary at %s" % vcd_binary())

from webtest import Loop, WSClient, WebDaemon, ctl_binary, http  # noqa: E402

G = "g1"
TMP = make_tmpdir("vcd-hv.")
CTL = ctl_binary()
KILLS = 3


def start_second_lab():
    """tests/lab/lab.sh start: (LAB_DIR, LAB_URI) of a new private libvirtd,
    stopped at the end; (None, output) when it cannot start."""
    env = {k: v for k, v in os.environ.items()
           if k not in ("LAB_DIR", "LAB_URI")}      # a new one, not ours
    r = subprocess.run([LAB_SH, "start"], stdin=subprocess.DEVNULL, env=env,
                       capture_output=True, text=True, timeout=300)
    env = dict(re.findall(r"^(LAB_DIR|LAB_URI)='?([^'\n]*)'?$", r.stdout, re.M))
    if r.returncode != 0 or "LAB_DIR" not in env or "LAB_URI" not in env:
        return None, r.stdout + r.stderr
    defer(subprocess.run, [LAB_SH, "stop", env["LAB_DIR"]],
          stdin=subprocess.DEVNULL, capture_output=True, timeout=120)
    return env["LAB_DIR"], env["LAB_URI"]


def ctl(*args, hv=None):
    """virtconsolectl -f CONF [-H hv] ARGS: (rc, stdout, stderr)."""
    argv = [CTL, "-f", d.conf_path] + (["-H", hv] if hv else []) + list(args)
    r = subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True,
                       text=True, timeout=60)
    return r.returncode, r.stdout, r.stderr


def token(guest=None, hv=None):
    """A token for guest (None: every guest, --all) from virtconsolectl
    [-H hv] token."""
    rc, out, err = ctl("token", *([guest] if guest else ["--all"]), hv=hv)
    if rc != 0:
        raise RuntimeError("token %s (-H %s): %d %s" % (guest, hv, rc, err))
    return out.strip()


def marked(client):
    """Whether the guest behind client has the mark: 'yes', 'no' or None."""
    m = client.run("[ -e /tmp/hvmark ] && echo HAS-$((40+2)) || echo NONE-$((40+2))",
                   rb"(HAS|NONE)-42", 15)
    return None if m is None else ("yes" if m.group(1) == b"HAS" else "no")


def attach(line):
    c = Client(d.conf["attach_socket"])
    c.send(line)
    return c


def ws(path):
    return WSClient(loop, "ws://127.0.0.1:%d%s" % (P, path))


def echo_rtts(client, stop, out):
    """Type one key at a time and wait for its echo until stop is set; the
    round trips (s) into out; out ends with None if the session failed."""
    n = 0
    while not stop.is_set():
        key = b"abcdefghijklmnop"[n % 16:n % 16 + 1]
        t0 = time.monotonic()
        if not client.send(key) or client.read_until(re.escape(key), 5) is None:
            out.append(None)
            return
        out.append(time.monotonic() - t0)
        n += 1
        if n % 40 == 0:
            client.send(b"\x15")        # ^U: clear the line
        time.sleep(0.02)


def worst(values):
    v = [x for x in values if x is not None]
    return max(v) if v else None


def median(values):
    v = sorted(x for x in values if x is not None)
    return v[len(v) // 2] if v else None


def status_times(seconds):
    """`status` asked of the control socket every 100 ms: the times (s)."""
    times = []
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        t0 = time.monotonic()
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.settimeout(5)
        try:
            s.connect(d.conf["control_socket"])
            s.sendall(b"status\n")
            data = b""
            while not data.endswith(b"\n") or b"hypervisors:" not in data:
                chunk = s.recv(4096)
                if not chunk:
                    break
                data += chunk
        except OSError:
            data = b""
        finally:
            s.close()
        times.append(time.monotonic() - t0 if b"hypervisors:" in data else 99.0)
        time.sleep(0.1)
    return times


class Silent(threading.Thread):
    """A TCP server that accepts and never answers (a remote libvirtd that
    hangs): counts its connections."""

    def __init__(self):
        super().__init__(daemon=True)
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.port = self.sock.getsockname()[1]
        self.conns = []
        defer(self.close)

    def run(self):
        while True:
            try:
                c, _ = self.sock.accept()
            except OSError:
                return
            self.conns.append(c)

    def close(self):
        for c in self.conns:
            c.close()
        self.sock.close()


with t.case("setup"):
    B_DIR, B_URI = start_second_lab()
    if B_DIR is None:
        t.ok(False, "a second private libvirtd starts", B_URI)
        t.done()
    t.ok(True, "a second private libvirtd starts (%s)" % B_URI)
    labB = Lab(t, lab_dir=B_DIR, uri=B_URI)
    labA.remove_leftovers([G])
    ra, rb = labA.create(G), labB.create(G)
    t.ok(ra.returncode == 0 and rb.returncode == 0,
         "a guest %s on each libvirtd" % G, ra.stderr + rb.stderr)
    UUID = {"a": labA.virsh("domuuid", G).stdout.strip(),
            "b": labB.virsh("domuuid", G).stdout.strip()}
    t.ok(UUID["a"] and UUID["b"] and UUID["a"] != UUID["b"],
         "two guests, two UUIDs (%s)" % UUID)
    loop = Loop()
    d = WebDaemon(labA.uri, {"idle_timeout": 0, "ping_interval": 0,
                             "policy": "takeover"}, name="hv", tmpdir=TMP)
    d.conf.pop("uri")
    d.conf["hypervisor"] = ["a " + labA.uri, "b " + labB.uri]
    d.conf["listen"] = ["127.0.0.1:0"]
    ok = d.start()
    t.ok(ok, "the daemon starts with hypervisors a and b", d.log_tail())
    if not ok:
        t.done()
    P = d.port()
    SOCK = {h: os.path.join(d.socket_dir, h, G) for h in ("a", "b")}
    t.ok(wait_for(lambda: all(os.path.exists(p) for p in SOCK.values()), 20),
         "the guest sockets are socket_dir/a/%s and socket_dir/b/%s" % (G, G),
         d.log_tail())
    t.ok(not os.path.exists(os.path.join(d.socket_dir, G)),
         "and no socket_dir/%s" % G)

with t.case("1 g1 on each"):
    ca = Client(SOCK["a"])
    t.ok(ca.wait_prompt(60), "unix a/%s: the shell prompt" % G)
    t.ok(ca.run("echo MARK > /tmp/hvmark; echo DONE-$((40+2))", rb"DONE-42", 15),
         "unix a/%s: the mark is written" % G)
    t.ok(marked(ca) == "yes", "unix a/%s: the mark is there" % G)
    cb = Client(SOCK["b"])
    t.ok(cb.wait_prompt(60), "unix b/%s: the shell prompt" % G)
    t.ok(marked(cb) == "no", "unix b/%s: no mark (another guest)" % G)
    ca.close()
    cb.close()
    time.sleep(0.3)

    for hv, want in (("a", "yes"), ("b", "no")):
        c = attach(b"ATTACH %s hv=%s\n" % (G.encode(), hv.encode()))
        t.ok(c.wait_prompt(30) and marked(c) == want,
             "attach socket, hv=%s: mark %s" % (hv, want), show(bytes(c.buf)))
        c.close()
        time.sleep(0.3)

    for hv, want in (("a", "yes"), ("b", "no")):
        c = ws("/console/%s?token=%s" % (G, token(G, hv=hv)))
        t.ok(c.status is None and c.wait_prompt(30) and marked(c) == want,
             "web, a token for %s on %s: mark %s" % (G, hv, want),
             "status %s" % c.status)
        c.close()
        time.sleep(0.3)
        c = ws("/console/%s?hv=%s&token=%s" % (G, hv, token()))
        t.ok(c.status is None and c.wait_prompt(30) and marked(c) == want,
             "web, a token for every guest, ?hv=%s: mark %s" % (hv, want),
             "status %s" % c.status)
        c.close()
        time.sleep(0.3)

    rc, out, err = ctl("history", G, hv="a")
    rcb, outb, errb = ctl("history", G, hv="b")
    t.ok(rc == 0 and "MARK" in out and "HAS-42" in out and rcb == 0
         and "NONE-42" in outb and "HAS-42" not in outb,
         "CLI: -H a history %s shows a's session, -H b history %s b's" % (G, G),
         err, errb)

with t.case("2 ambiguous"):
    c = attach(b"ATTACH %s\n" % G.encode())
    r = c.expect_end("refused", "ambiguous guest: on hypervisors a, b; add hv=NAME",
                     10, exact=True)
    t.ok(r.ok, "attach socket: ATTACH %s is refused, naming a and b" % G, r.why)
    c = attach(b"ATTACH %s hv=nope\n" % G.encode())
    r = c.expect_end("refused", "unknown hypervisor", 10, exact=True)
    t.ok(r.ok, "attach socket: hv=nope: unknown hypervisor", r.why)
    resp = http(P, "/api/console/%s?token=%s" % (G, token()))
    t.ok(resp.status == 409 and b"a, b" in resp.body,
         "web: /api/console/%s with a token for every guest: 409 naming a, b" % G,
         "%s %s" % (resp.status, show(resp.body)))
    resp = http(P, "/api/console/%s?token=%s" % (UUID["b"], token()))
    t.ok(resp.status == 200 and b'"busy"' in resp.body,
         "web: by b's UUID: found (a UUID names one guest)",
         "%s %s" % (resp.status, show(resp.body)))
    resp = http(P, "/api/console/%s?hv=no%%20pe&token=%s" % (G, token()))
    t.ok(resp.status == 400, "web: a bad ?hv=: 400 (%s)" % resp.status)
    rc, out, err = ctl("history", G)
    t.ok(rc == 1 and "ambiguous guest %s: on hypervisors a, b" % G in err,
         "CLI: history %s without -H: ambiguous, naming a and b" % G, err)
    rc, out, err = ctl("token", G)
    t.ok(rc == 1 and "several hypervisors: a, b" in err,
         "CLI: token %s without -H: says it is on a and b" % G, err)
    rc, out, err = ctl("list", hv="nope")
    t.ok(rc == 1 and "unknown hypervisor nope" in err, "CLI: -H nope: unknown", err)
    # A migration leaves an inactive copy behind: the same UUID on b,
    # defined, not running.  The UUID names the running guest, a's.
    xml = labA.virsh("dumpxml", G).stdout
    xml = re.sub(r"<name>[^<]*</name>", "<name>%s-copy</name>" % G, xml, count=1)
    path = os.path.join(TMP, "copy.xml")
    with open(path, "w") as f:
        f.write(xml)
    r = labB.virsh("define", path)
    defer(labB.virsh, "undefine", G + "-copy")
    t.ok(r.returncode == 0 and wait_for(
        lambda: os.path.exists(os.path.join(d.socket_dir, "b", G + "-copy")), 20),
        "a's %s defined on b too, same UUID, not running" % G, r.stderr)
    c = attach(b"ATTACH %s\n" % UUID["a"].encode())
    t.ok(c.wait_prompt(30) and marked(c) == "yes",
         "attach socket: the UUID on both names the running guest (a's: the mark)",
         show(bytes(c.buf)))
    c.close()
    time.sleep(0.3)

with t.case("3 scope"):
    tok_a = token(hv="a")
    resp = http(P, "/api/guests?token=" + tok_a)
    try:
        j = json.loads(resp.body)
    except ValueError:
        j = {}
    t.ok(resp.status == 200 and [h["name"] for h in j.get("hypervisors", [])] == ["a"]
         and {g["hypervisor"] for g in j.get("guests", [])} == {"a"},
         "a token for a's guests: /api/guests names hypervisor a only",
         show(resp.body))
    resp = http(P, "/api/console/%s?token=%s" % (G, token(hv="a")))
    t.ok(resp.status == 200, "a's token: a bare %s is a's (no 409) (%s)" % (G, resp.status))
    resp = http(P, "/api/console/%s?hv=b&token=%s" % (G, token(hv="a")))
    t.ok(resp.status == 404 and b"a, b" not in resp.body and b'"b"' not in resp.body,
         "a's token, ?hv=b: 404, b not named (%s %s)" % (resp.status, show(resp.body)))
    resp = http(P, "/api/guests?token=" + token())
    j = json.loads(resp.body) if resp.status == 200 else {}
    names = sorted((g["name"], g["hypervisor"]) for g in j.get("guests", []) if g["name"] == G)
    t.ok(names == [(G, "a"), (G, "b")] and
         sorted(h["name"] for h in j.get("hypervisors", [])) == ["a", "b"],
         "a token for every guest: both %s, each with its hypervisor" % G, show(resp.body))
    t.ok(labA.uri.encode() not in resp.body and labB.uri.encode() not in resp.body
         and b"qemu" not in resp.body,
         "no URI in /api/guests")
    rc, out, err = ctl("status", "--json")
    st = json.loads(out) if rc == 0 else {}
    t.ok(st.get("hypervisor") == "connected" and
         st.get("hypervisors") == [{"name": "a", "state": "connected"},
                                   {"name": "b", "state": "connected"}],
         "status --json: hypervisors a and b, connected", out)

with t.case("4 one libvirtd killed three times"):
    ca = Client(SOCK["a"])
    t.ok(ca.wait_prompt(30), "a session on a")
    base, stop = [], threading.Event()
    th = threading.Thread(target=echo_rtts, args=(ca, stop, base))
    th.start()
    time.sleep(4)
    stop.set()
    th.join()
    during, stop = [], threading.Event()
    th = threading.Thread(target=echo_rtts, args=(ca, stop, during))
    th.start()
    lost_ok, back = 0, 0
    for i in range(KILLS):
        cb = Client(SOCK["b"])
        cb_ok = cb.wait_prompt(30)
        m = d.mark()
        labB.libvirtd_kill()
        r = cb.expect_end("disconnected", "hypervisor connection lost", 20)
        lost_ok += cb_ok and r.ok
        labB.libvirtd_start()
        back += d.wait_log(r"hv: connected uri=\S+ after_failures=\d+ hypervisor=b$",
                           30, since=m) is not None
        wait_for(lambda: os.path.exists(SOCK["b"]), 20)
    stop.set()
    th.join()
    t.ok(None not in base and None not in during and not ca.closed,
         "the session on a never ended (%d echoes before, %d during)" % (len(base), len(during)))
    t.ok(lost_ok == KILLS, "each time b's session ended 'hypervisor connection lost' (%d/%d)"
         % (lost_ok, KILLS))
    t.ok(back == KILLS, "b reconnected each time (%d/%d)" % (back, KILLS), d.log_tail())
    wb, wd = worst(base), worst(during)
    t.figure("echo_worst_baseline", round(wb * 1000, 1) if wb else None, "ms")
    t.figure("echo_worst_while_b_killed", round(wd * 1000, 1) if wd else None, "ms")
    t.figure("echo_median_baseline", round(median(base) * 1000, 1) if base else None, "ms")
    t.figure("echo_median_while_b_killed", round(median(during) * 1000, 1) if during else None, "ms")
    # Its usual range: what the same session showed just before.
    t.ok(wb is not None and wd is not None and wd <= 3 * wb + 0.05,
         "a's worst echo while b died %d times: %.1f ms, within its usual range "
         "(worst %.1f ms before; at most 3x + 50 ms)" % (KILLS, (wd or 0) * 1000, (wb or 0) * 1000))
    ca.close()

with t.case("5 silent"):
    srv = Silent()
    srv.start()
    ca = Client(SOCK["a"])
    t.ok(ca.wait_prompt(30), "a session on a")
    m = d.mark()
    t.ok(d.reload({"hypervisor": ["a " + labA.uri, "b " + labB.uri,
                                  "silent qemu+tcp://127.0.0.1:%d/system" % srv.port]}),
         "reload adds hypervisor silent (qemu+tcp to a server that never answers)")
    echoes, stop = [], threading.Event()
    th = threading.Thread(target=echo_rtts, args=(ca, stop, echoes))
    th.start()
    times = status_times(3)
    stop.set()
    th.join()
    ca.send(b"\x15")                     # ^U: the keys typed, gone
    t.ok(wait_for(lambda: len(srv.conns) >= 1, 5),
         "the daemon connected to the silent server (%d connection(s))" % len(srv.conns))
    t.ok(times and max(times) < 0.2,
         "the control socket answered %d times, each within 0.2 s (worst %.1f ms)"
         % (len(times), max(times or [0]) * 1000))
    t.figure("status_worst_while_silent_connects", round(max(times or [0]) * 1000, 1), "ms")
    t.ok(echoes and None not in echoes and worst(echoes) < 1.0,
         "a's session echoed every key meanwhile (%d, worst %.1f ms)"
         % (len(echoes), (worst(echoes) or 0) * 1000))
    rc, out, err = ctl("status", "--json")
    st = json.loads(out) if rc == 0 else {}
    t.ok({"name": "silent", "state": "disconnected"} in st.get("hypervisors", [])
         and st.get("hypervisor") == "disconnected",
         "status: silent disconnected, so the daemon's hypervisor state too", out)
    m = d.mark()
    t.ok(d.reload({"hypervisor": ["a " + labA.uri, "b " + labB.uri]}) and
         d.wait_log(r"hv: removed uri=\S+ hypervisor=silent$", 5, since=m),
         "reload removes it while its open still waits")
    t.ok(ca.echo_check(), "a's session still echoes")
    ca.close()

with t.case("6 reload removes and adds a hypervisor under live sessions"):
    ca = Client(SOCK["a"])
    cb = Client(SOCK["b"])
    t.ok(ca.wait_prompt(30) and cb.wait_prompt(30), "a session on each")
    t.ok(d.reload({"hypervisor": ["a " + labA.uri]}), "reload: only a")
    r = cb.expect_end("disconnected", "hypervisor removed", 10)
    t.ok(r.ok, "b's session ends 'hypervisor removed'", r.why)
    t.ok(wait_for(lambda: not os.path.exists(SOCK["b"]), 10), "b's socket is gone")
    t.ok(ca.echo_check() and not ca.closed, "a's session echoes on")
    t.ok(d.reload({"hypervisor": ["a " + labA.uri, "b " + labB.uri]}), "reload: a and b")
    t.ok(wait_for(lambda: os.path.exists(SOCK["b"]), 20), "b's socket is back")
    cb = Client(SOCK["b"])
    t.ok(cb.wait_prompt(30) and cb.echo_check(), "a new session on b works")
    # A credential for a hypervisor the daemon no longer serves.
    tok_b = token(hv="b")
    t.ok(d.reload({"hypervisor": ["a " + labA.uri]}), "reload: only a, again")
    resp = http(P, "/api/guests?token=" + tok_b)
    t.ok(resp.status == 403 and b"not for this hypervisor" in resp.body,
         "a token for b's guests after b is removed: 403 not for this hypervisor",
         "%s %s" % (resp.status, show(resp.body)))
    t.ok(d.reload({"hypervisor": ["a " + labA.uri, "b " + labB.uri]}), "reload: a and b")
    cb.close()
    cb = Client(SOCK["b"]) if wait_for(lambda: os.path.exists(SOCK["b"]), 20) else cb
    t.ok(ca.echo_check(), "and a's still does")
    ca.close()
    cb.close()

with t.case("the end"):
    t.ok(d.stop() == 0, "the daemon stops (status 0)", d.log_tail())
    t.no_state_bug()
loop.stop()
t.done()
