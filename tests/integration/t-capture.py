#!/usr/bin/python3
"""capture = always against the lab's real libvirtd and one real guest:
boot output read with nobody attached (and what is lost before libvirt
lets the daemon open the console, measured against QEMU's own log of the
serial port), a steal by `virsh console --force` and the capture taken
back without force once virsh leaves, reloads attached <-> always under a
live session, and a guest restart (a new run in the history).
"""

import json
import os
import re
import subprocess
import sys
import time

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from vcdtest import (TAP, Client, Daemon, Lab, VirshConsole, log_time,  # noqa: E402
                     make_tmpdir, no_sanitizer_report, nonce, notices, show, vcd_binary,
                     wait_for)

t = TAP()
lab = Lab(t)
CTL = os.path.join(os.path.dirname(vcd_binary()), "virtconsolectl")
if not os.access(vcd_binary(), os.X_OK) or not os.access(CTL, os.X_OK):
    t.skip_all("no daemon or virtconsolectl binary next to %s" % vcd_binary())

TMP = make_tmpdir("vcd-cap.")
G = "cap-g"
BOOTED = b"VCD-LAB-BOOTED"
SERIAL_LOG = os.path.join(TMP, "serial.log")     # QEMU's, the truth
lab.remove_leftovers([G])
d = Daemon(lab.uri, {"capture": "always", "log_level": "debug", "idle_timeout": 300},
           name="cap", tmpdir=TMP)


def ctl(*args):
    return subprocess.run([CTL, "-f", d.conf_path] + list(args), capture_output=True,
                          text=True, timeout=30, stdin=subprocess.DEVNULL)


def hist(*args):
    """virtconsolectl history: (rc, stdout bytes, stderr text); the losses
    and new runs are told on stderr when stdout is not a terminal."""
    r = subprocess.run([CTL, "-f", d.conf_path, "history"] + list(args),
                       capture_output=True, timeout=60, stdin=subprocess.DEVNULL)
    return r.returncode, r.stdout, r.stderr.decode(errors="replace")


def hist_inline():
    """virtconsolectl history on a terminal (script(1)): the losses told in
    line, where they happened."""
    r = subprocess.run(["script", "-qec", "%s -f %s history %s" % (CTL, d.conf_path, G),
                        "/dev/null"], capture_output=True, timeout=60,
                       stdin=subprocess.DEVNULL)
    return r.stdout


def define_guest():
    """The lab's guest with the kernel's messages on (no `quiet`: it prints
    from its first instant), and QEMU logging its serial port to a file,
    whoever holds the console."""
    return lab.define_serial_logged(G, SERIAL_LOG, TMP, quiet=False)


def captured_line(since, again=False):
    return d.wait_log(r"console \d+ guest=%s dev=serial0: captured%s$" % (G, " again" if again else ""),
                      20, since=since)


def open_after(since, began):
    """Seconds from `began` (wall clock) to the capture's open in the log."""
    lines = d.find_log(r"^(\S+) .* console \d+ guest=%s dev=serial0: captured$" % G, since=since)
    when = log_time(lines[0]) if lines else None
    return when - began if when is not None else None


def measure_loss(what):
    """What the guest printed before the capture's open, against QEMU's own
    log of the serial port: a check that the history is exactly what the
    guest printed from some byte on, and that byte as a figure."""
    rc, out, err = hist("--raw", G)
    runs = re.findall(r"run ([0-9a-f]+): the guest started again", err)
    if runs:                            # this run only
        rc, out, err = hist("--raw", "--from", "%s:0" % runs[-1], G)
    with open(SERIAL_LOG, "rb") as f:
        serial = f.read()
    lost = serial.find(out[:256]) if out else -1
    n = min(len(out), len(serial) - lost) if lost >= 0 else 0
    t.ok(rc == 0 and lost >= 0 and n > 1000 and out[:n] == serial[lost:lost + n],
         "%s: the history is exactly what the guest printed, from byte %d of it on (%d bytes "
         "compared)" % (what, lost, n), show(out[:300]), show(serial[:300]))
    t.figure("bytes the guest printed before the capture's open, lost (%s)" % what, lost, "bytes")
    if lost > 0:
        t.diag("the last line lost: %r" % serial[:lost].splitlines()[-1][:120])
    t.diag("the first line read: %r" % (out.splitlines()[0][:120] if out else b""))


with t.case("boot output with nobody attached"):
    t.ok(d.start(), "the daemon starts with capture = always", d.log_tail())
    r = define_guest()
    t.ok(r.returncode == 0, "define %s (kernel messages on; QEMU logs its serial port)" % G, r.stderr)
    m0 = d.mark()
    t0 = time.monotonic()
    began = time.time()
    r = lab.start(G)
    t.ok(r.returncode == 0, "start %s after the daemon" % G, r.stderr)
    t.ok(captured_line(m0), "its console is captured on its STARTED event", d.log_tail(10, m0))
    t.figure("capture's open after virsh start began (first run)", "%.3f" % (open_after(m0, began) or -1), "s")
    ok = wait_for(lambda: BOOTED in hist(G)[1], 60, 0.2)
    late = time.monotonic() - t0
    t.ok(ok and late >= 1.0, "virtconsolectl history shows the guest's boot marker, printed %.1f s "
         "after its start (at least 1 s) with nobody attached" % late, hist(G)[2])
    t.figure("boot marker in the history, after virsh start", "%.1f" % late, "s")
    r = ctl("list", "--json")
    try:
        ls = json.loads(r.stdout)
    except ValueError:
        ls = None
    t.ok(r.returncode == 0 and ls == [], "list --json: the capture is no session", r.stdout, r.stderr)
    r = ctl("status", "--json")
    try:
        st = json.loads(r.stdout)
    except ValueError:
        st = {}
    t.ok(r.returncode == 0 and st.get("sessions") == 0, "status: no session", r.stdout)
    measure_loss("first run")
    rc, out, err = hist(G)
    t.ok(re.search(r"output the daemon did not read \(at 0, run [0-9a-f]+\)", err),
         "the open is recorded as a loss at offset 0 (what came before it is not known)", err)
    v = VirshConsole(lab.uri, G, force=False)
    t.ok(v.read_until(rb"Active console session exists", 20),
         "while the daemon holds the console, virsh console without --force is refused",
         show(v.out))
    v.kill()

with t.case("stolen by virsh console --force"):
    c = Client(d.sock(G))
    t.ok(c.wait_prompt(40) and c.echo_check(), "a session joins the captured console",
         show(c.pending()))
    m1 = d.mark()
    v = VirshConsole(lab.uri, G, force=True)
    held = v.holds_console(20)
    t_steal = time.monotonic()
    t.ok(held, "virsh console --force takes the console", show(v.out))
    e = c.expect_end("disconnected", "console taken by another client", 10)
    t.ok(e, "the session gets 'console taken by another client'", e.why)
    t.ok(d.wait_log(r"console \d+ guest=%s dev=serial0: OPEN -> STOLEN" % G, 10, since=m1),
         "the console is STOLEN (the transition is logged)", d.log_tail(10, m1))
    time.sleep(max(0.0, 10 - (time.monotonic() - t_steal)))
    waits = d.find_log(r"guest=%s dev=serial0: capture: (?:taken|held) by another client; "
                       r"trying again without force in (\d+) s" % G, since=m1)
    t.ok(waits[:4] == ["1", "2", "4", "8"],
         "virsh holds it 10 s: the capture tries without force after 1, 2, 4 s (%s)" % waits,
         d.log_tail(15, m1))
    t.ok(not d.find_log(r"guest=%s dev=serial0: captured again" % G, since=m1),
         "and never takes it back while virsh holds it")
    v.send(b"echo vi-$((6*7))\r")
    t.ok(v.alive() and v.read_until(rb"vi-42", 10), "virsh still holds the console after 10 s",
         show(v.out[-200:]))
    left = time.time()
    v.kill()
    m = captured_line(m1, again=True)
    back = d.find_log(r"^(\S+).* console \d+ guest=%s dev=serial0: captured again$" % G, since=m1)
    when = log_time(back[0]) if back else None
    t.ok(m and when is not None and when >= left,
         "virsh leaves: the capture takes the console back, without force (%.1f s after)"
         % ((when or 0) - left), d.log_tail(10, m1))
    mark = "AFTER-" + nonce()
    c = Client(d.sock(G))
    ok = c.wait_prompt(40)
    c.send(("echo %s''%s\r" % (mark[:4], mark[4:])).encode())
    ok = ok and c.read_until(mark.encode(), 15) is not None
    c.escape()
    t.ok(ok, "a session prints %s on the console taken back" % mark, show(c.pending()))
    inline = hist_inline()
    gap = re.search(rb"\[virtconsoled\] output the daemon did not read \(at ([1-9]\d*)", inline)
    t.ok(gap and inline.find(BOOTED) < gap.start() < inline.find(mark.encode()),
         "history: the boot output, the loss while virsh held it (at %s), then %s"
         % (gap.group(1).decode() if gap else "?", mark), show(inline[-600:]))

with t.case("reloads attached <-> always under a live session"):
    c = Client(d.sock(G))
    t.ok(c.wait_prompt(40) and c.echo_check(), "a live session", show(c.pending()))
    m2 = d.mark()
    t.ok(d.reload({"capture": "attached", "history": "128K"}),
         "reload: capture = attached, history = 128K")
    t.ok(c.echo_check(), "the session goes on", show(c.pending()))
    t.ok(d.reload({"capture": "always", "history": None}), "reload: capture = always, history back")
    t.ok(c.echo_check(), "the session goes on", show(c.pending()))
    t.ok(d.reload({"capture": "attached"}), "reload: capture = attached")
    t.ok(c.echo_check() and not c.closed and not notices(c.buf),
         "the session goes on, no notice", show(c.pending()))
    t.ok(not d.find_log(r"session \d+ guest=%s dev=\S+: ended" % G, since=m2) and
         len(d.find_log(r"guest=%s dev=serial0: capture ends \(capture = attached\)" % G,
                        since=m2)) == 2,
         "no session ended; the capture was let go of twice", d.log_tail(10, m2))
    c.escape()
    v = VirshConsole(lab.uri, G, force=False)
    t.ok(v.holds_console(20), "capture = attached, the client gone: the console is free "
         "(virsh console without --force gets it)", show(v.out))
    v.kill()

with t.case("guest restart: a new run"):
    m3 = d.mark()
    t.ok(d.reload({"capture": "always"}) and captured_line(m3),
         "reload: capture = always: the running guest is captured again")
    m3 = d.mark()
    t.ok(lab.destroy(G).returncode == 0, "%s stopped" % G)
    began = time.time()
    t.ok(lab.start(G).returncode == 0, "and started again")
    t.ok(captured_line(m3), "captured on its start", d.log_tail(10, m3))
    t.figure("capture's open after virsh start began (second run)", "%.3f" % (open_after(m3, began) or -1), "s")
    ok = wait_for(lambda: hist(G)[1].count(BOOTED) >= 2, 60, 0.2)
    rc, out, err = hist(G)
    t.ok(ok and rc == 0 and len(re.findall(r"run [0-9a-f]+: the guest started again", err)) == 1 and
         out.count(BOOTED) == 2,
         "history: the previous run, a RUN record ('the guest started again'), then the new run's "
         "boot output, read with nobody attached", err)
    measure_loss("second run")
    runs = re.findall(r"run ([0-9a-f]+): the guest started again", err)
    old_runs = [r for r in re.findall(r"run ([0-9a-f]+)\)", err) if r not in runs]
    rc0, out0, err0 = hist("--from", "%s:0" % old_runs[0], G) if old_runs else (None, b"", "")
    t.ok(old_runs and rc0 == 0 and out0.count(BOOTED) == 2 and "the guest started again" in err0,
         "the previous run is still readable by its id from offset 0 (--from %s:0): its boot output, "
         "then the new run's" % (old_runs[:1] or ["?"])[0], err0, show(out0[:200]))

with t.case("daemon restart: old runs are not mixed with new ones"):
    rc, out, err = hist(G)
    before = re.findall(r"run ([0-9a-f]+): the guest started again", err)
    t.ok(d.stop() == 0 and d.start(), "the daemon restarts (capture = always)", d.log_tail())
    t.ok(wait_for(lambda: hist(G)[0] == 0, 20, 0.2), "it captures the running guest again")
    last = before[-1] if before else "0"
    rc, out, err = hist("--from", "%s:0" % last, G)
    t.ok(rc != 0 and "run %s is not kept" % last in err,
         "the run id from before the restart is refused, not taken for the new one: %s" % err.strip())
    rc, out, err = hist("--raw", G)
    t.ok(rc == 0 and "run %s" % last not in err and re.search(r"run [0-9a-f]+\)", err),
         "the new history is a new run: none of the old run's records", err)

with t.case("exit"):
    rc = d.stop()
    t.ok(rc == 0, "SIGTERM: the daemon exits 0 (%s)" % rc, d.log_tail())
    no_sanitizer_report(t, [d])

t.done()
