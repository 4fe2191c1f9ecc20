#!/usr/bin/python3
"""Hypervisor faults against the real lab (issue 6, item 1).

1. libvirtd killed and restarted CYCLES times (10; VCD_SOAK=1: 50) while
   24 sessions are live: 3 guests with the serial port and 7 virtio
   consoles each.  The unix-socket front door serves a guest's first
   console only, so each guest's serial port is a unix-socket client and
   its console1..console7 are WebSocket clients (an auth=none listener on
   127.0.0.1).  Each cycle: every client gets `hypervisor connection
   lost` (WebSocket: close code 1011 too), the daemon stays the same
   process, reconnects once libvirtd is back, and 24 new clients attach
   and echo.  Per cycle: reconnect time, RSS and open descriptors; the
   descriptors must not grow from the first cycle to the last.
2. A persistent guest destroyed, crashed (its QEMU SIGKILLed) and reset
   mid-session: `guest stopped` for the first two, the console serves
   again once the guest is started; a reset keeps the session (serial
   and virtio console alike) and the guest's new shell answers in it.
3. The console stolen with `virsh console --force`: `console taken by
   another client`; once virsh exits, a new client gets the console.
4. The persistent guest undefined while it runs (the session and socket
   stay until it stops), then defined again and undefined while a client
   waits for it (start_wait): `refused: unknown guest`, the socket goes
   away, the daemon and a bystander session carry on.

A bystander session on another guest lives through parts 2-4.  The
daemon must never fork.  Figures: `# figure: NAME = VALUE UNIT`.
"""

import concurrent.futures
import importlib.util
import os
import re
import signal
import sys
import time

sys.dont_write_bytecode = True     # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from vcdtest import (TAP, Client, Lab, VirshConsole, connect_retry,  # noqa: E402
                     log_time, no_sanitizer_report, show, sock_info, vcd_binary, wait_for)
from webtest import Loop, WebDaemon, WSClient, web_root  # noqa: E402

t = TAP()
lab = Lab(t)
if not os.access(vcd_binary(), os.X_OK):
    t.skip_all("no daemon binary at %s" % vcd_binary())
if importlib.util.find_spec("websockets") is None:
    t.skip_all("python3-websockets is not installed")

SOAK = os.environ.get("VCD_SOAK") == "1"
CYCLES = 50 if SOAK else 10
VIRTIO = 7                          # virtio consoles per cycle guest
CYC = ["fa-g0", "fa-g1", "fa-g2"]   # transient, serial + 7 virtio consoles
P = "fa-p"                          # persistent: destroy, crash, steal, undefine
BYST = CYC[1]                       # its serial port: the bystander in 2-4
lab.remove_leftovers(CYC + [P])

HV_LOST = "hypervisor connection lost"
WS_CODES = {HV_LOST: 1011}          # docs/WEB.md, close codes
loop = Loop()
d = WebDaemon(lab.uri, {
    "listen": "127.0.0.1:0 auth=none",
    "allowed_origins": "http://127.0.0.1",    # auth=none needs the rule
    "web_root": web_root(),
    "start_wait": 20,
    "idle_timeout": 0,
    "ping_interval": 30,
}, name="faults")
d.conf["token_secret_file"] = os.path.join(d.dir, "secret")
served = 0                          # sessions that echoed, in all parts


# ---------------------------------------------------------------- helpers

def endpoints():
    """(guest, alias) of every console of the cycle guests; alias None is
    the guest's first console, through its unix socket."""
    return [(g, None) for g in CYC] + [(g, "console%d" % i)
                                       for g in CYC for i in range(1, VIRTIO + 1)]


def open_client(guest, alias):
    if alias is None:
        return connect_retry(d.sock(guest))
    return WSClient(loop, "ws://127.0.0.1:%d/console/%s/%s" % (PORT, guest, alias),
                    ["binary"])


def label(ep):
    return "%s/%s" % (ep[0], ep[1] or "serial0(unix)")


def serve(ep, timeout=60):
    """A new client of ep that has a prompt and an echo: (client, why)."""
    try:
        c = open_client(*ep)
    except Exception as e:
        return None, "%s: cannot connect: %s" % (label(ep), e)
    if getattr(c, "status", None):
        return c, "%s: handshake refused with %s" % (label(ep), c.status)
    if not c.wait_prompt(timeout):
        return c, "%s: no prompt: %s" % (label(ep), show(c.buf[c.pos:]))
    if not c.echo_check(15):
        return c, "%s: no echo: %s" % (label(ep), show(c.buf[c.pos:]))
    return c, ""


def serve_all(eps, timeout=60):
    """New clients of every endpoint at once: ({ep: client}, [why...])."""
    with concurrent.futures.ThreadPoolExecutor(len(eps)) as ex:
        res = list(ex.map(lambda ep: serve(ep, timeout), eps))
    return {ep: c for ep, (c, _) in zip(eps, res)}, [w for _, w in res if w]


def end_why(c, kind, reason, timeout=15):
    """'' if the client's stream ends with exactly that notice (and, for a
    WebSocket, the close frame of that reason), else why not."""
    if isinstance(c, WSClient):
        return c.expect_end(kind, reason, WS_CODES[reason], timeout)
    return c.expect_end(kind, reason, timeout).why


def ends_all(clients, kind, reason, timeout=15):
    """end_why for every client at once: [why...] of those that failed."""
    with concurrent.futures.ThreadPoolExecutor(len(clients)) as ex:
        res = list(ex.map(lambda ep: (ep, end_why(clients[ep], kind, reason, timeout)),
                          list(clients)))
    return ["%s: %s" % (label(ep), w) for ep, w in res if w]


def fd_count():
    try:
        return len(os.listdir("/proc/%d/fd" % d.pid))
    except (OSError, TypeError):
        return None


def log_line(regex, since):
    """The first log line after since that matches regex, or None."""
    for line in d.log(since).splitlines():
        if re.search(regex, line):
            return line
    return None


def qemu_pid(name):
    """The pid of the lab's QEMU that runs guest name."""
    want = b"guest=%s," % name.encode()
    for p in lab.sh("pids").stdout.split():
        try:
            with open("/proc/%s/cmdline" % p, "rb") as f:
                argv = f.read().split(b"\0")
        except OSError:
            continue
        if any(a.startswith(want) for a in argv):
            return int(p)
    return None


def drain(c, seconds=0.3):
    """Read for a moment and consume it all (an old prompt must not count
    as a new one)."""
    c.read_until(rb"(?!)", seconds)
    c.pos = len(c.buf)


def echo_within(c, timeout):
    """Echo round trips until one works (keystrokes typed while a guest
    boots are eaten)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and not c.closed:
        if c.echo_check(3):
            return True
    return False


def uptime(c):
    """The guest's uptime in seconds, read through its serial shell."""
    m = c.run("cat /proc/uptime", rb"\n(\d+\.\d+) \d+\.\d+", 10)
    return float(m.group(1)) if m else None


def pct(values, q):
    v = sorted(values)
    return v[min(len(v) - 1, int(round(q * (len(v) - 1))))] if v else float("nan")


class Bystander:
    """A session on another guest that must live through every fault."""

    def __init__(self):
        self.c = None

    def open(self):
        global served
        self.c, why = serve((BYST, None))
        t.ok(not why, "a bystander session on %s" % BYST, why)
        served += not why

    def check(self, what):
        ok = self.c is not None and not self.c.closed and self.c.echo_check(10)
        t.ok(ok, "%s: the bystander session on %s is still served" % (what, BYST),
             None if ok else show(self.c.pending() if self.c else b""))

    def close(self):
        if self.c is not None and not self.c.closed:
            self.c.escape()


by = Bystander()


def same_daemon(what, pid0):
    t.ok(d.alive() and d.pid == pid0 and not d.children(),
         "%s: the daemon is the same process (pid %d), no child process" % (what, pid0),
         "alive %s pid %s children %s" % (d.alive(), d.pid, d.children()), d.log_tail(8))


# ---------------------------------------------------------------- setup

with t.case("setup"):
    ok = d.start()
    t.ok(ok, "the daemon starts (config: %s)" % d.conf_path, d.log_tail())
    if not ok:
        t.done()
    PID0 = d.pid
    PORT = d.port(auth_none=True)
    t.ok(PORT, "its auth=none web listener is logged", d.log_tail())
    t0 = time.monotonic()
    res = lab.create_many([("create", g, VIRTIO) for g in CYC] + [("define", P, 0)])
    bad = ["%s: %s" % (n, o) for n, rc, o in res if rc != 0]
    r = lab.start(P)
    t.ok(not bad and r.returncode == 0,
         "lab: %s created with %d virtio consoles each, %s defined and started (%.1f s)"
         % (", ".join(CYC), VIRTIO, P, time.monotonic() - t0), *bad, r.stderr)
    ok = wait_for(lambda: all(sock_info(d.sock(g)) for g in CYC + [P]), 15)
    t.ok(ok, "a socket for each guest", "socket_dir: %s" % os.listdir(d.socket_dir))
    if not (ok and PORT):
        t.done()

# ---------------------------------------------------------------- 1 libvirtd killed, CYCLES times

EPS = endpoints()
stats = []          # per cycle: dict
with t.case("1 libvirtd killed and restarted %d times with %d live sessions" % (CYCLES, len(EPS))):
    t0 = time.monotonic()
    clients, whys = serve_all(EPS, 120)
    t.ok(not whys, "1 %d sessions (%d unix, %d WebSocket) attached and echoing (%.1f s, guests booting)"
         % (len(EPS), len(CYC), len(EPS) - len(CYC), time.monotonic() - t0), *whys)
    served += len(EPS) - len(whys)
    survived = 0
    for cycle in range(1, CYCLES + 1):
        st = {"cycle": cycle, "fds": fd_count(), "rss": d.rss_kib()}
        m0 = d.mark()
        t_kill = time.monotonic()
        r = lab.libvirtd_kill()
        if not t.ok(r.returncode == 0, "1.%d lab.sh libvirtd-kill" % cycle, r.stderr):
            break
        whys = ends_all(clients, "disconnected", HV_LOST)
        t.ok(not whys, "1.%d all %d clients get 'disconnected: %s'" % (cycle, len(clients), HV_LOST),
             *whys[:6], d.log_tail(6, m0))
        ended = d.find_log(r'ended reason="%s"' % HV_LOST, m0)
        st["fds_idle"] = fd_count()
        lost = d.wait_log(r"hv: connection lost", 5, since=m0)
        t_start = time.time()
        r = lab.libvirtd_start()
        t_started = time.time()
        t.ok(r.returncode == 0, "1.%d lab.sh libvirtd-start" % cycle, r.stderr)
        conn = d.wait_log(r"hv: connected uri=", 60, since=m0)
        if conn:
            # Log times have milliseconds; libvirtd was down until t_start.
            t_conn = log_time(log_line(r"hv: connected uri=", m0))
            st["reconnect"] = t_conn - t_start
            st["libvirtd_start"] = t_started - t_start
            st["outage"] = time.monotonic() - t_kill
            # The backoff after a loss (README): attempts 0.5 s after it,
            # then 1, 2, 4, 8 and 10 s apart.  The reconnect must be the
            # first attempt once libvirtd accepts again (lab.sh returns
            # then), not a later one.
            t_lost = log_time(log_line(r"hv: connection lost", m0))
            at, gap = 0.5, 1.0
            while t_lost is not None and t_lost + at < t_started - 0.05:
                at, gap = at + gap, min(gap * 2, 10.0)
            st["due"] = (t_lost + at - t_start) if t_lost is not None else None
        t.ok(d.alive() and d.pid == PID0 and lost and conn and len(ended) == len(clients)
             and st["reconnect"] > -0.002 and st.get("due") is not None
             and st["reconnect"] <= st["due"] + 0.3,
             "1.%d the daemon (pid %d) logs the loss, ends %d sessions, and reconnects %.2f s after "
             "libvirtd is started, at the first attempt of its backoff once libvirtd is up "
             "(due %.2f s, 0.3 s allowed)" % (cycle, PID0, len(ended), st.get("reconnect", -1),
                                                st.get("due") or -1),
             "alive %s pid %s lost %s connected %s ended %d" % (d.alive(), d.pid, bool(lost),
                                                                bool(conn), len(ended)),
             d.log_tail(10, m0))
        if not (d.alive() and conn):
            break
        t1 = time.monotonic()
        clients, whys = serve_all(EPS)
        st["attach"] = time.monotonic() - t1
        t.ok(not whys, "1.%d %d new clients attach and echo (%.1f s)" % (cycle, len(EPS), st["attach"]),
             *whys[:6])
        served += len(EPS) - len(whys)
        if whys:
            break
        survived += 1
        stats.append(st)
        t.diag("    cycle %d: reconnect %.2f s, outage %.2f s, attach %.1f s, rss %s KiB, fds %s "
               "(%s with no session)" % (cycle, st["reconnect"], st["outage"], st["attach"],
                                         st["rss"], st["fds"], st["fds_idle"]))
    same_daemon("1 after %d cycles" % survived, PID0)
    t.ok(survived == CYCLES, "1 %d of %d restarts survived" % (survived, CYCLES))
    if stats:
        first, last = stats[0], stats[-1]
        fds_now = fd_count()
        # One descriptor per session plus the daemon's own: the same live
        # sessions must hold the same count whatever the cycle.
        t.ok(last["fds"] is not None and last["fds"] <= first["fds"] + 2 and
             last["fds_idle"] <= first["fds_idle"] + 2,
             "1 open descriptors do not grow: %s with %d sessions in cycle 1, %s in cycle %d "
             "(%s and %s with none)" % (first["fds"], len(EPS), last["fds"], last["cycle"],
                                        first["fds_idle"], last["fds_idle"]))
        # RSS: what ten restarts with 24 sessions each leave behind.  The
        # bound is 1 MiB over the first restart's level (measured: +0.1 to
        # +0.2 MiB over 10 cycles, +228 KiB over 50): a leak of 5 KiB per
        # session (240 sessions in 10 cycles) would exceed it.
        rss_bound = 1024
        if d.asan():
            # ASan's quarantine holds freed memory: RSS means little here.
            t.diag("not counted under ASan: RSS %+d KiB over cycle 1" % (last["rss"] - first["rss"]))
        else:
            t.ok(last["rss"] - first["rss"] <= rss_bound,
                 "1 daemon RSS after %d restarts: %d KiB, %+d KiB over cycle 1 (bound +%d KiB)"
                 % (len(stats), last["rss"], last["rss"] - first["rss"], rss_bound),
                 "per cycle: %s" % " ".join(str(x["rss"]) for x in stats))
        rec = [s["reconnect"] for s in stats]
        print("# figure: restarts_survived = %d" % survived)
        print("# figure: sessions_per_restart = %d" % len(EPS))
        print("# figure: reconnect_p50 = %.2f s" % pct(rec, 0.5))
        print("# figure: reconnect_max = %.2f s" % max(rec))
        print("# figure: libvirtd_start_p50 = %.2f s" % pct([s["libvirtd_start"] for s in stats], 0.5))
        print("# figure: outage_p50 = %.2f s" % pct([s["outage"] for s in stats], 0.5))
        print("# figure: attach_%d_p50 = %.1f s" % (len(EPS), pct([s["attach"] for s in stats], 0.5)))
        print("# figure: rss_before = %d KiB" % first["rss"])
        print("# figure: rss_after = %d KiB" % last["rss"])
        print("# figure: rss_growth = %d KiB" % (last["rss"] - first["rss"]))
        print("# figure: fds_before = %d" % first["fds"])
        print("# figure: fds_after = %d" % last["fds"])
        print("# figure: fds_now = %s" % fds_now)
    for c in clients.values():
        c.close()

# ---------------------------------------------------------------- 2 reset

with t.case("2 guest reset"):
    by.open()
    g = CYC[0]
    m0 = d.mark()
    (cs, why_s), (cv, why_v) = serve((g, None)), serve((g, "console1"))
    t.ok(not why_s and not why_v, "2 sessions on %s's serial port (unix) and console1 (WebSocket)" % g,
         why_s, why_v)
    served += (not why_s) + (not why_v)
    up0 = uptime(cs)
    drain(cs)
    drain(cv)
    r = lab.reset(g)
    t.ok(r.returncode == 0, "2 virsh reset %s" % g, r.stderr)
    ok_s = echo_within(cs, 60)
    up1 = uptime(cs) if ok_s else None
    t.ok(ok_s and up0 is not None and up1 is not None and up1 < up0,
         "2 reset: the serial session stays and the rebooted guest's shell answers in it "
         "(uptime %s s before, %s s after)" % (up0, up1), show(cs.pending()))
    t.ok(b"VCD-LAB-BOOTED" in cs.buf, "2 reset: the boot output flows to the serial session",
         show(cs.buf))
    ok_v = echo_within(cv, 60)
    t.ok(ok_v, "2 reset: the virtio console1 session stays and its new shell answers in it",
         show(cv.buf[cv.pos:]))
    t.ok(not d.find_log(r"guest=%s dev=\S+: ATTACHED -> CLOSING" % g, m0),
         "2 reset: no session of %s left ATTACHED" % g, d.log_tail(6, m0))
    cs.escape()
    cv.close()
    by.check("2 reset")

# ---------------------------------------------------------------- 2 destroy

with t.case("2 guest destroyed"):
    c, why = serve((P, None))
    t.ok(not why, "2 a session on %s" % P, why)
    r = lab.destroy(P)
    t.ok(r.returncode == 0, "2 virsh destroy %s" % P, r.stderr)
    why = end_why(c, "disconnected", "guest stopped")
    t.ok(not why, "2 destroyed: the client gets 'disconnected: guest stopped'", why)
    t.ok(sock_info(d.sock(P)) is not None, "2 the persistent guest keeps its socket")
    m0 = d.mark()
    c = Client(d.sock(P))
    waiting = d.wait_log(r"guest=%s dev=serial0: NEW -> WAITING" % P, 5, since=m0)
    t.ok(waiting and not c.closed, "2 a new client waits for the stopped guest", d.log_tail(4, m0))
    r = lab.start(P)
    ok = r.returncode == 0 and c.wait_prompt(60) and c.echo_check()
    t.ok(ok, "2 once the guest is started again, the waiting client gets its console",
         r.stderr, show(c.pending()))
    served += bool(ok)
    by.check("2 destroy")

# ---------------------------------------------------------------- 2 crash

with t.case("2 guest crashed"):
    pid = qemu_pid(P)
    t.ok(pid, "2 the QEMU process of %s (pid %s)" % (P, pid))
    if pid and not c.closed:
        m0 = d.mark()
        os.kill(pid, signal.SIGKILL)
        why = end_why(c, "disconnected", "guest stopped")
        t.ok(not why, "2 QEMU SIGKILLed: the client gets 'disconnected: guest stopped'", why,
             d.log_tail(6, m0))
        down = wait_for(lambda: lab.state(P) == "shut off", 30, 0.2)
        ev = d.wait_log(r"guest event guest=%s \S+ event=STOPPED detail=(\d+)" % P, 10, since=m0)
        t.ok(down and ev, "2 libvirt sees the crash: %s is shut off (STOPPED detail %s)"
             % (P, ev[0] if ev else None), d.log_tail(6, m0))
        r = lab.start(P)
        c, why = serve((P, None))
        t.ok(r.returncode == 0 and not why,
             "2 once the guest is started again, a new client gets its console", r.stderr, why)
        served += not why
    by.check("2 crash")

# ---------------------------------------------------------------- 3 virsh console --force

with t.case("3 console stolen"):
    v = VirshConsole(lab.uri, P, force=True)
    why = end_why(c, "disconnected", "console taken by another client")
    t.ok(not why, "3 virsh console --force: the client gets 'disconnected: console taken by another "
         "client'", why)
    t.ok(v.holds_console(20), "3 virsh holds the console (its shell answers)", show(v.out))
    v.kill()
    t.ok(not v.alive(), "3 virsh console has exited")
    c, why = serve((P, None))
    t.ok(not why, "3 after virsh exits, a new client gets the console", why)
    served += not why
    by.check("3 console stolen")

# ---------------------------------------------------------------- 4 undefined while waiting

with t.case("4 running guest undefined"):
    # It becomes a running transient guest: the session and the socket stay
    # until it stops.
    r = lab.undefine(P)
    t.ok(r.returncode == 0, "4 virsh undefine %s while it runs" % P, r.stderr)
    ok = not c.closed and c.echo_check(10)
    t.ok(ok and sock_info(d.sock(P)) is not None,
         "4 the attached session and the socket stay while the guest runs",
         show(c.pending()))
    r = lab.destroy(P)
    why = end_why(c, "disconnected", "guest stopped")
    t.ok(r.returncode == 0 and not why, "4 %s destroyed: 'guest stopped'" % P, r.stderr, why)
    gone = wait_for(lambda: not os.path.lexists(d.sock(P)), 10)
    t.ok(gone, "4 the socket goes away once the now transient guest stops")

with t.case("4 guest undefined while a client waits"):
    r = lab.define(P)
    ok = r.returncode == 0 and wait_for(lambda: sock_info(d.sock(P)), 10)
    t.ok(ok, "4 %s defined again (shut off): its socket is back" % P, r.stderr)
    m0 = d.mark()
    c = Client(d.sock(P))
    waiting = d.wait_log(r"guest=%s dev=serial0: NEW -> WAITING" % P, 5, since=m0)
    t.ok(waiting and not c.closed, "4 a client waits for the stopped %s" % P, d.log_tail(4, m0))
    r = lab.undefine(P)
    t.ok(r.returncode == 0, "4 virsh undefine %s" % P, r.stderr)
    res = c.expect_end("refused", "unknown guest", 10, exact=True)
    t.ok(res, "4 the waiting client gets exactly 'refused: unknown guest' and EOF", res.why)
    gone = wait_for(lambda: not os.path.lexists(d.sock(P)), 10)
    t.ok(gone, "4 the guest's socket goes away")
    t.ok(d.find_log(r'guest=%s dev=serial0: ended reason="unknown guest"' % P, m0),
         "4 the log says why", d.log_tail(6, m0))
    same_daemon("4 undefine", PID0)
    by.check("4 undefine")
    by.close()

# ---------------------------------------------------------------- the end

with t.case("end"):
    print("# figure: sessions_served = %d" % served)
    rc = d.stop()
    t.ok(rc == 0, "SIGTERM: the daemon exits with status 0", "rc %s" % rc, d.log_tail())
    no_sanitizer_report(t, [d], "no ASan/UBSan report in the daemon's log")
    loop.stop()

t.done()
