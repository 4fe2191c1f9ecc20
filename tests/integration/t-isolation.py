#!/usr/bin/python3
"""One stuck console holds up no other guest (the connection-isolation
issue), against the lab's real libvirtd and guests.

libvirtd stops reading a client connection while stream packets wait for a
console that does not take them.  The daemon opens a libvirt connection per
guest with an open console, beside the one that watches lifecycle events,
and runs every call that waits for libvirtd on a guest's connection on that
connection's own thread: a stuck guest stops only itself.

1. the stuck serial console: guest iso-s is paused and 256 KiB are pasted
   into its serial console.  For the next STUCK_SECS seconds, sessions on
   five other guests echo every keystroke (their p99 is reported beside a
   baseline taken before, in the same run) and none ends; meanwhile the
   stuck guest's second console is opened, the stuck session is kicked, and
   the control socket is asked for its status every 100 ms: every answer
   comes in under 0.2 s.  libvirtd drops the stuck guest's connection (the
   lab's libvirtd runs with keepalive_interval 2, keepalive_count 3 here):
   that guest's second console ends with 'console connection lost', never
   'hypervisor connection lost', and the hypervisor stays connected.  After
   `virsh resume`, the guest's console works for a new client.
2. the same with a virtio console that no process in the guest reads
   (isolation and loop responsiveness only: the lab's virtio console may
   stop taking input after a large paste even without the daemon).
3. libvirtd's clients: `virt-admin srv-clients-list libvirtd` counts one
   client per guest with an open console, plus the daemon's own.
"""

import os
import re
import subprocess
import sys
import threading
import time

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from vcdtest import (TAP, Client, Lab, StatusProbe, defer, log_time, make_tmpdir,  # noqa: E402
                     notice, show, vcd_binary, wait_for)

t = TAP()
lab = Lab(t)
if not os.access(vcd_binary(), os.X_OK):
    t.skip_all("no daemon binary at %s" % vcd_binary())

from webtest import Loop, WSClient, WebDaemon  # noqa: E402

STUCK_SECS = 60             # the "for the next 60 s"
PASTE = 256 * 1024
S, V = "iso-s", "iso-v"     # the stuck guests: serial, virtio
OTHERS = ["iso-%d" % i for i in range(1, 6)]
KEEPALIVE = (2, 3)          # libvirtd's keepalive_interval, _count here

TMP = make_tmpdir("vcd-iso.")
lab.remove_leftovers([S, V] + OTHERS)
loop = Loop()
d = WebDaemon(lab.uri, {"idle_timeout": 0, "ping_interval": 0,
                        "log_level": "debug"}, name="iso", tmpdir=TMP)
d.conf["listen"] = ["127.0.0.1:0 auth=none"]
d.conf["allowed_origins"] = "http://127.0.0.1"
CTL = os.path.join(os.path.dirname(vcd_binary()), "virtconsolectl")
LIBVIRTD_CONF = os.path.join(os.environ.get("LAB_DIR", ""), "etc", "libvirtd.conf")


def ws_url(guest, dev):
    return "ws://127.0.0.1:%d/console/%s/%s" % (P, guest, dev)


def libvirtd_keepalive(values):
    """Restart the lab's libvirtd with keepalive_interval, _count set (or
    back to its defaults with None).  The guests keep running."""
    with open(LIBVIRTD_CONF) as f:
        lines = [l for l in f if not l.startswith("keepalive_")]
    if values is not None:
        lines.append("keepalive_interval = %d\nkeepalive_count = %d\n" % values)
    with open(LIBVIRTD_CONF, "w") as f:
        f.writelines(lines)
    lab.libvirtd_kill()
    r = lab.libvirtd_start()
    return r.returncode == 0


def echo_rtts(clients, seconds):
    """Round robin over clients: type one key, wait for its echo.  The
    round trips (s) per client, and the clients that failed."""
    rtts = {c: [] for c in clients}
    failed = set()
    deadline = time.monotonic() + seconds
    n = 0
    while time.monotonic() < deadline:
        for c in clients:
            if c in failed:
                continue
            key = b"abcdefghijklmnop"[n % 16:n % 16 + 1]
            t0 = time.monotonic()
            if not c.send(key) or c.read_until(re.escape(key), 5) is None:
                failed.add(c)
                continue
            rtts[c].append(time.monotonic() - t0)
        n += 1
        if n % 40 == 0:
            for c in clients:
                if c not in failed:
                    c.send(b"\x15")         # ^U: clear the line
            time.sleep(0.05)
    return rtts, failed


def p99(values):
    v = sorted(values)
    return v[min(len(v) - 1, int(len(v) * 0.99))] if v else None


with t.case("setup"):
    t.ok(os.path.exists(LIBVIRTD_CONF), "the lab's libvirtd.conf (%s)" % LIBVIRTD_CONF)
    defer(libvirtd_keepalive, None)
    t.ok(libvirtd_keepalive(KEEPALIVE),
         "the lab's libvirtd restarted with keepalive_interval %d, keepalive_count %d" % KEEPALIVE)
    res = lab.create_many([("create", S, 1), ("create", V, 1)] +
                          [("create", g, 0) for g in OTHERS])
    bad = [(n, o) for n, rc, o in res if rc != 0]
    t.ok(not bad, "guests %s and %s (2 consoles each), %s" % (S, V, ", ".join(OTHERS)),
         *["%s: %s" % b for b in bad])
    ok = d.start()
    t.ok(ok, "the daemon starts", d.log_tail())
    if not ok or bad:
        t.done()
    P = d.port("127.0.0.1", auth_none=True)
    others = []
    for g in OTHERS:
        c = Client(d.sock(g))
        ok = c.wait_prompt(150) and c.echo_check(30)
        t.ok(ok, "%s serial0 answers" % g, show(c.pending()))
        others.append(c)


def stuck_case(name, guest, dev, pause, kick):
    """Fill guest's console dev until libvirtd stops reading its
    connection; the other guests' sessions and the loop go on."""
    m0 = d.mark()
    if dev == "serial0":
        stuck = Client(d.sock(guest))
    else:
        stuck = WSClient(loop, ws_url(guest, dev))
    ok = stuck.wait_prompt(150) if dev == "serial0" else True
    if dev == "serial0":
        ok = ok and stuck.run("stty -echo -icanon; echo RAW-$((2+2)); cat >/dev/null; stty sane",
                              rb"RAW-4", 30)
    t.ok(ok, "%s %s %s attached%s" % (name, guest, dev,
                                       ", runs cat without echo" if dev == "serial0" else ""),
         show(stuck.buf))
    base, bfail = echo_rtts(others, 3)
    base_all = [x for v in base.values() for x in v]
    t.ok(not bfail and base_all, "%s baseline: the five other guests echo (%d keystrokes)" %
         (name, len(base_all)))
    if pause:
        r = lab.virsh("suspend", guest)
        t.ok(r.returncode == 0, "%s %s paused" % (name, guest), r.stderr)
    state = {"sent": 0}

    def paste():
        try:
            for i in range(0, PASTE, 4096):
                if isinstance(stuck, Client):
                    stuck.sock.setblocking(True)
                    stuck.sock.settimeout(STUCK_SECS + 60)
                    stuck.sock.sendall(b"x" * 4096)
                else:
                    stuck.send(b"x" * 4096)
                state["sent"] = i + 4096
        except OSError:
            pass
    wall0 = time.time()
    threading.Thread(target=paste, daemon=True).start()
    probe = StatusProbe(d.conf["control_socket"], 0.1, want=b"hypervisor: connected")
    t0 = time.monotonic()
    # The other guests echo meanwhile; a second console and a kick in it.
    rtts, failed = {}, set()
    second = None
    kick_s = None
    # Both before libvirtd drops the connection (keepalive: about 6-8 s).
    other_dev = "console1" if dev == "serial0" else "serial0"
    phases = [(1, None), (1, "second"), (1, "kick"), (STUCK_SECS - 3, None)]
    for secs, action in phases:
        if action == "second":
            second = WSClient(loop, ws_url(guest, other_dev), timeout=5)
        elif action == "kick" and kick:
            k0 = time.monotonic()
            r = subprocess.run([CTL, "-f", d.conf_path, "kick", guest, other_dev],
                               capture_output=True, text=True, timeout=30)
            kick_s = time.monotonic() - k0
            t.ok(r.returncode == 0 and kick_s < 0.5,
                 "%s the second console's session, its open waiting on the stuck connection, is "
                 "kicked (virtconsolectl answered in %.2f s)" % (name, kick_s),
                 r.stdout + r.stderr)
        r, f = echo_rtts([c for c in others if c not in failed], secs)
        for c, v in r.items():
            rtts.setdefault(c, []).extend(v)
        failed |= f
    worst = probe.stop()
    el = time.monotonic() - t0
    all_rtts = [x for v in rtts.values() for x in v]
    t.figure("%s other guests' echo p99: baseline / stuck" % name,
             "%.4f / %s" % (p99(base_all), "%.4f" % p99(all_rtts) if all_rtts else "-"), "s")
    t.figure("%s pasted bytes the daemon took" % name, state["sent"], "B")
    t.figure("%s control socket: worst answer over %d" % (name, probe.count), round(worst, 3), "s")
    t.ok(not failed and len(all_rtts) > 100,
         "%s for %.0f s, the five other guests echoed every keystroke (%d; p99 %.4f s, baseline "
         "%.4f s)" % (name, el, len(all_rtts), p99(all_rtts) or -1, p99(base_all)),
         "failed: %d clients" % len(failed))
    ends = d.find_log(r"guest=iso-\d dev=serial0: ended", m0)
    t.ok(not ends, "%s no session of another guest ended" % name, str(ends))
    t.ok(worst < 0.2 and probe.errors == 0 and probe.count >= 10 * STUCK_SECS * 0.8,
         "%s the control socket answered every 100 ms in under 0.2 s (%d answers, worst %.3f s, "
         "%d bad)" % (name, probe.count, worst, probe.errors))
    t.ok(not d.find_log(r"hv: connection lost", m0), "%s the hypervisor stayed connected" % name)
    drops = [log_time(l) for l in d.log(m0).splitlines()
             if "hv: guest connection lost" in l]
    t.figure("%s the stuck guest's connection dropped, after the paste began" % name,
             "%.1f" % (drops[0] - wall0) if drops and drops[0] else "never", "s")
    return stuck, second, m0


with t.case("1 a paused guest's serial console"):
    stuck, second, m0 = stuck_case("1", S, "serial0", pause=True, kick=True)
    lost = d.find_log(r"hv: guest connection lost uuid=\S+", m0)
    t.ok(lost, "1 libvirtd dropped the stuck guest's connection (keepalive)", d.log_tail(20, m0))
    end = stuck.expect_end("disconnected", "console connection lost", 10)
    t.ok(end, "1 the stuck session ends with 'console connection lost' (not 'hypervisor "
         "connection lost')", end.why)
    t.ok(d.find_log(r"session \d+: \d+ bytes of input not delivered", m0),
         "1 the input it held is dropped and counted in the log", d.log_tail(10, m0))
    second.read_until_close(10)
    data = bytes(second.buf)
    t.ok(second.closed and notice("disconnected", "kicked by administrator") in data and
         second.code == 1008,
         "1 the kicked second console was told 'kicked by administrator' (1008) at once",
         "code %s reason %s; %s" % (second.code, second.reason, show(data)))
    r = lab.virsh("resume", S)
    t.ok(r.returncode == 0, "1 %s resumed" % S, r.stderr)
    stuck.close()
    c = Client(d.sock(S))
    c.send(b"\x03")
    ok = c.wait_prompt(60) and c.run("stty sane; echo back-$((5*5))", rb"back-25", 30)
    t.ok(ok, "1 afterwards a new client of %s serial0 gets its console and echoes" % S,
         show(c.buf), d.log_tail(10, m0))
    c.escape()

with t.case("2 a virtio console nobody reads"):
    stuck, second, m0 = stuck_case("2", V, "console1", pause=False, kick=False)
    stuck.close()
    if second is not None:
        second.close()

with t.case("3 libvirtd's clients"):
    # The stuck guests' connections close once their last call is back.
    wait_for(lambda: lab.libvirtd_clients()[0] == len(OTHERS) + 1, 30, 0.5)
    n, out = lab.libvirtd_clients()
    t.diag(out)
    t.ok(n == len(OTHERS) + 1,
         "3 virt-admin counts %s clients: one per guest with an open console (%d) and the "
         "daemon's own" % (n, len(OTHERS)), out)

with t.case("exit"):
    for c in others:
        c.escape()
    rc = d.stop()
    t.ok(rc == 0, "the daemon exits 0 on SIGTERM (%s)" % rc, d.log_tail(5))

t.done()
