#!/usr/bin/python3
"""The control socket and virtconsolectl status/list/kick/reload, against
the lab's real guests; and reloads that keep live sessions: 50 reloads
(SIGHUP and virtconsolectl reload, alternating, each changing values)
under live sessions, and a broken config that is refused with file:line.
"""

import json
import os
import re
import signal
import pwd
import socket
import stat
import subprocess
import sys
import time

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from vcdtest import (TAP, Client, Daemon, Lab, make_tmpdir, no_sanitizer_report,  # noqa: E402
                     nonce, show, vcd_binary, wait_for)

t = TAP()
lab = Lab(t)
CTL = os.path.join(os.path.dirname(vcd_binary()), "virtconsolectl")
if not os.access(vcd_binary(), os.X_OK) or not os.access(CTL, os.X_OK):
    t.skip_all("no daemon or virtconsolectl binary next to %s" % vcd_binary())

TMP = make_tmpdir("vcd-tc.")
A, B, H = "tc-a", "tc-b", "tc-h"
lab.remove_leftovers([A, B, H])
d = Daemon(lab.uri, {"idle_timeout": 300}, name="ctl", tmpdir=TMP)


def ctl(*args, user=None):
    cmd = [CTL, "-f", d.conf_path] + list(args)
    if user is not None:
        cmd = ["setpriv", "--reuid=%d" % user, "--regid=%d" % user,
               "--clear-groups"] + cmd
    return subprocess.run(cmd, capture_output=True, text=True, timeout=30,
                          stdin=subprocess.DEVNULL)


with t.case("setup"):
    for g in (A, B):
        r = lab.create(g)
        t.ok(r.returncode == 0, "create guest %s" % g, r.stderr)
    t.ok(d.start(), "the daemon starts", d.log_tail())
    st = os.lstat(d.conf["control_socket"])
    t.ok(stat.S_ISSOCK(st.st_mode) and stat.S_IMODE(st.st_mode) == 0o600,
         "the control socket is a socket, mode 0600 (%o)" % stat.S_IMODE(st.st_mode))
    t.ok(d.find_log(r"control: listening on %s" % d.conf["control_socket"]),
         "its path is logged")

clients = {}
with t.case("sessions"):
    for g in (A, B):
        ok = wait_for(lambda: os.path.exists(d.sock(g)), 20)
        c = Client(d.sock(g))
        ok = ok and c.wait_prompt(40) and c.echo_check()
        t.ok(ok, "a live session on %s" % g, show(c.pending()))
        clients[g] = c

with t.case("status and list"):
    r = ctl("status")
    t.ok(r.returncode == 0 and re.search(r"^hypervisor: connected$", r.stdout, re.M) and
         re.search(r"^sessions: 2 \(0 over WebSocket\)$", r.stdout, re.M) and
         re.search(r"^state_errors: 0$", r.stdout, re.M), "status (human)", r.stdout, r.stderr)
    r = ctl("status", "--json")
    try:
        s = json.loads(r.stdout)
    except ValueError:
        s = {}
    t.ok(r.returncode == 0 and s.get("hypervisor") == "connected" and
         s.get("sessions") == 2 and s.get("pid") == d.pid and
         s.get("guests", 0) >= 2 and isinstance(s.get("uptime"), int) and
         s.get("state_errors") == 0,
         "status --json: version, pid, uptime, hypervisor, counts, state_errors 0", r.stdout)
    r = ctl("list", "--json")
    try:
        ls = json.loads(r.stdout)
    except ValueError:
        ls = []
    mine = sorted(x.get("guest") for x in ls)
    t.ok(r.returncode == 0 and mine == [A, B] and
         all(x.get("state") == "ATTACHED" and x.get("console") == "serial0" and
             x.get("bytes_in", 0) > 0 and x.get("bytes_out", 0) > 0 and
             x.get("client", "").startswith("unix:pid=") and "idle" in x
             for x in ls),
         "list --json: guest, console, state, client, bytes each way, idle", r.stdout)
    r = ctl("list")
    t.ok(r.returncode == 0 and A in r.stdout and B in r.stdout and
         "ATTACHED" in r.stdout and "BYTES_IN" in r.stdout, "list (human)", r.stdout)
    r = subprocess.run([CTL, "-s", d.conf["control_socket"], "status"],
                       capture_output=True, text=True, timeout=30)
    t.ok(r.returncode == 0 and "hypervisor: connected" in r.stdout,
         "-s names the control socket directly", r.stderr)

with t.case("reload 50 times under live sessions"):
    m0 = d.mark()
    ok_all = True
    not_in_force = []
    for i in range(50):
        # Alternate the two ways, and change what reload applies live.
        policy = "takeover" if i % 2 else "refuse"
        d.write_config({"idle_timeout": 300 + i, "max_buffer": "%dK" % (256 + i),
                        "policy": policy})
        if i % 2:
            r = ctl("reload")
            ok = r.returncode == 0 and "configuration reloaded" in r.stdout
        else:
            m = d.mark()
            d.signal(signal.SIGHUP)
            ok = d.wait_log(r"configuration reloaded", 10, since=m) is not None
        ok_all = ok_all and ok
        # status and list show none of the reloaded keys: the policy is seen
        # in force by behaviour.  A second client on A is refused under
        # refuse (A's client stays); under takeover it takes A over (the
        # old client is told so) and is A's client from then on.
        p = Client(d.sock(A))
        if policy == "refuse":
            res = p.expect_end("refused", "console busy", 10)
            seen = res.ok and not clients[A].closed
            p.close()
        else:
            res = clients[A].expect_end("disconnected", "taken over by a new client", 10)
            seen = res.ok and not p.closed
            clients[A].close()
            clients[A] = p
        if not seen:
            not_in_force.append("reload %d (policy = %s): %s" % (i + 1, policy, res.why))
    t.ok(ok_all, "50 reloads, each answered or logged as reloaded", d.log_tail(5, m0))
    t.ok(not not_in_force, "each reload's policy is in force right after it: a second client "
         "on %s is refused after the 25 'refuse' ones and takes over after the 25 'takeover' ones" % A,
         *not_in_force[:5])
    n = d.log(since=m0).count("configuration reloaded")
    t.ok(n == 50, "the log says so 50 times (%d)" % n)
    closing = d.find_log(r"ATTACHED -> CLOSING", since=m0)
    taken = d.find_log(r'guest=%s dev=serial0: ended reason="taken over by a new client"' % A, since=m0)
    t.ok(len(closing) == 25 and len(taken) == 25,
         "no session was dropped by the reloads: the only ends are the 25 takeovers (%d, %d)"
         % (len(closing), len(taken)), d.log_tail(5, m0))
    for g in (A, B):
        t.ok(clients[g].echo_check(), "the session on %s still echoes" % g,
             show(clients[g].pending()))
    r = ctl("list", "--json")
    t.ok(r.returncode == 0 and len(json.loads(r.stdout)) == 2,
         "both sessions are still listed")

with t.case("a broken config is refused and the old one kept"):
    good = open(d.conf_path).read()
    # The broken file also sets policy = refuse: the running takeover must
    # stay (nothing of a refused file is applied).
    with open(d.conf_path, "w") as f:
        f.write(good.replace("policy = takeover\n", "policy = refuse\n") +
                "idle_timeout = forever\n")
    nlines = good.count("\n") + 1
    r = subprocess.run([CTL, "-s", d.conf["control_socket"], "reload"],
                       capture_output=True, text=True, timeout=30)
    t.ok(r.returncode == 1 and
         ("config has errors, not reloading: %s:%d:" % (d.conf_path, nlines)) in r.stderr,
         "virtconsolectl -s SOCKET reload: the daemon refuses, exit 1, file:line", r.stderr)
    r = ctl("reload")
    t.ok(r.returncode == 1 and ("%s:%d:" % (d.conf_path, nlines)) in r.stderr and
         "keeps its running configuration" in r.stderr,
         "virtconsolectl -f CONFIG reload: exit 1 with file:line", r.stderr)
    m = d.mark()
    d.signal(signal.SIGHUP)
    t.ok(d.wait_log(r"config has errors, not reloading: .*:%d: " % nlines, 10, since=m),
         "SIGHUP: logged with file:line", d.log_tail(3, m))
    for g in (A, B):
        t.ok(clients[g].echo_check(), "the session on %s survives" % g)
    # The -f text is virtconsolectl's own (it parsed the file and never
    # asked the daemon), and a dead daemon has no log line either: after
    # the three refusals the daemon must be alive, answering, and still run the
    # last good config, whose policy (takeover) is not the file's default.
    r = subprocess.run([CTL, "-s", d.conf["control_socket"], "status", "--json"],
                       capture_output=True, text=True, timeout=30)
    try:
        s = json.loads(r.stdout)
    except ValueError:
        s = {}
    t.ok(d.alive() and r.returncode == 0 and s.get("pid") == d.pid and
         s.get("sessions") == 2, "the daemon is alive and answers status after the refusals",
         r.stdout, r.stderr, d.log_tail(5))
    p = Client(d.sock(A))
    res = clients[A].expect_end("disconnected", "taken over by a new client", 10)
    ok = res.ok and not p.closed and p.echo_check()
    clients[A].close()
    clients[A] = p
    t.ok("policy = takeover\n" in good and ok,
         "the old config is kept: policy = takeover, not the refused file's refuse, is in force "
         "(a new client takes %s over)" % A,
         res.why, show(p.pending()))
    with open(d.conf_path, "w") as f:
        f.write(good)

with t.case("kick"):
    r = ctl("kick", A)
    t.ok(r.returncode == 0 and "kicked 1 session" in r.stdout, "kick %s" % A, r.stdout, r.stderr)
    res = clients[A].expect_end("disconnected", "kicked by administrator", 10)
    t.ok(res.ok, "its client gets 'disconnected: kicked by administrator'", res.why)
    t.ok(d.find_log(r'guest=%s dev=serial0: ended reason="kicked by administrator"' % A),
         "logged with the reason")
    t.ok(clients[B].echo_check(), "the other session is untouched")
    r = ctl("kick", A)
    t.ok(r.returncode == 1 and "no session for %s" % A in r.stderr,
         "kick with no session: exit 1 and a clear error", r.stderr)
    r = ctl("kick", B, "console9")
    t.ok(r.returncode == 1, "kick of a console without a session: exit 1", r.stderr)
    r = ctl("kick", B, "serial0", "--json")
    t.ok(r.returncode == 0 and json.loads(r.stdout) == {"kicked": 1},
         "kick GUEST ALIAS --json", r.stdout)
    res = clients[B].expect_end("disconnected", "kicked by administrator", 10)
    t.ok(res.ok, "that client is kicked too", res.why)

with t.case("bad commands and hostile input"):
    r = ctl("bogus")
    t.ok(r.returncode == 2 and "unknown command" in r.stderr, "unknown subcommand: exit 2")
    r = ctl("kick")
    t.ok(r.returncode == 2 and "usage" in r.stderr, "kick without a guest: usage, exit 2")
    r = ctl("status", "extra")
    t.ok(r.returncode == 2, "status with an argument: usage, exit 2")
    path = d.conf["control_socket"]
    answers = []
    for junk in (b"frobnicate\n", b"\x00\x01\x02\xff\n", b"kick\n",
                 b"status " + b"x " * 20 + b"\n", b"A" * 5000 + b"\n",
                 b"\x1b[2Jstatus\n", b"\n"):
        s = socket.socket(socket.AF_UNIX)
        s.settimeout(5)
        s.connect(path)
        s.sendall(junk)
        data = b""
        try:
            while True:
                chunk = s.recv(4096)
                if not chunk:
                    break
                data += chunk
        except OSError:
            pass
        s.close()
        answers.append(data)
    t.ok(all(a.startswith(b"ERR ") for a in answers),
         "garbage on the control socket gets ERR lines", repr(answers))
    t.ok(not any(b"\x1b" in a for a in answers) and not d.find_log(r"\x1b"),
         "escape sequences are never echoed raw (answers or log)")
    s = socket.socket(socket.AF_UNIX)
    s.connect(path)
    t0 = time.monotonic()
    s.settimeout(10)
    try:
        gone = s.recv(10) == b""
    except OSError:
        gone = True
    s.close()
    t.ok(gone and time.monotonic() - t0 < 8,
         "a client that sends nothing is closed after the timeout (%.1f s)" % (time.monotonic() - t0))
    t.ok(d.alive() and ctl("status").returncode == 0, "the daemon still answers")
    nobody = pwd.getpwnam("nobody").pw_uid
    r = ctl("status", user=nobody)
    t.ok(r.returncode == 1 and "Permission denied" in r.stderr,
         "another user cannot use it (mode 0600)", r.stderr)

with t.case("the token path is not reachable through it"):
    # virtconsolectl token signs locally with the secret file; the
    # control socket has no command that opens a console or mints a token.
    s = socket.socket(socket.AF_UNIX)
    s.settimeout(5)
    s.connect(d.conf["control_socket"])
    s.sendall(b"token --all\n")
    a = s.recv(4096)
    s.close()
    t.ok(a.startswith(b"ERR unknown command"), "no token or console command on the control socket", a)

def hist(*args):
    """virtconsolectl history, its stdout as bytes (not a terminal)."""
    r = subprocess.run([CTL, "-f", d.conf_path, "history"] + list(args),
                       capture_output=True, timeout=60, stdin=subprocess.DEVNULL)
    return r.returncode, r.stdout, r.stderr.decode(errors="replace")


def session_says(guest, text, inverse=False):
    """A client types echo of text (split so the echo of the command line
    does not match), waits for it, and leaves with the escape key; with
    inverse, the guest prints it between ESC [7m and ESC [0m."""
    c = Client(d.sock(guest))
    ok = c.wait_prompt(40)
    half = len(text) // 2
    if inverse:
        c.send(("printf '\\033[7m%%s\\033[0m\\n' %s''%s\r" % (text[:half], text[half:])).encode())
    else:
        c.send(("echo %s''%s\r" % (text[:half], text[half:])).encode())
    ok = ok and c.read_until(text.encode(), 15) is not None
    c.escape()
    c.expect_end("disconnected", "escape key", 10)
    return ok


with t.case("history"):
    r = lab.define(H)
    t.ok(r.returncode == 0 and lab.start(H).returncode == 0, "define and start %s" % H, r.stderr)
    t.ok(wait_for(lambda: os.path.exists(d.sock(H)), 20), "its socket appears")
    m1 = "HIST1-" + nonce()
    t.ok(session_says(H, m1, inverse=True), "a session on %s prints %s (in inverse video) and leaves" % (H, m1))
    rc, out, err = hist(H)
    t.ok(rc == 0 and m1.encode() in out, "history %s: what that session saw is kept after it left" % H,
         "rc %d" % rc, show(out[-300:]), err)
    runs = re.findall(r"run ([0-9a-f]+)", err)
    t.ok(re.search(r"output the daemon did not read \(at 0, run [0-9a-f]+\)", err) and runs,
         "not a terminal: the bytes exactly on stdout, the loss before the first open on stderr", err)
    run1 = runs[0] if runs else "0"
    # On a terminal (script(1) gives one): control bytes made visible.
    r = subprocess.run(["script", "-qec", "%s -f %s history %s" % (CTL, d.conf_path, H), "/dev/null"],
                       capture_output=True, timeout=60, stdin=subprocess.DEVNULL)
    t.ok(r.returncode == 0 and b"\x1b[7m" + m1.encode() in out and b"\x1b" not in r.stdout and
         b"^[[7m" + m1.encode() in r.stdout
         and m1.encode() in r.stdout and b"[virtconsoled] output the daemon did not read" in r.stdout,
         "on a terminal: ESC shown as ^[ (the guest's escape sequences cannot drive it), "
         "the loss told in line", show(r.stdout[-300:]))
    rc, raw, err2 = hist("--raw", H)
    t.ok(rc == 0 and raw == out, "--raw gives the same bytes", show(raw[-200:]))
    m2 = "HIST2-" + nonce()
    t.ok(session_says(H, m2), "a second session prints %s" % m2)
    rc, out, err = hist(H, "serial0")
    t.ok(rc == 0 and out.find(m1.encode()) < out.find(m2.encode()) and
         len(re.findall(r"did not read", err)) == 2,
         "GUEST ALIAS: both, in order, with the loss between the two sessions told", err)
    rc, out2, err = hist("--from", "%s:%d" % (run1, len(out)), H)
    t.ok(rc == 0 and out2 == b"", "--from the end of the run: nothing, exit 0", show(out2), err)
    rc, out, err = hist("--from", "%s:%d" % (run1, len(out) + 1000), H)
    t.ok(rc == 1 and "past the end" in err, "--from past the end: exit 1, a clear error", err)
    rc, out, err = hist("--from", "1234:0", H)
    t.ok(rc == 1 and "not kept" in err, "--from an unknown run: exit 1, a clear error", err)
    rc, out, err = hist("--from", "nonsense", H)
    t.ok(rc == 1 and "RUN:OFFSET" in err, "--from that is not RUN:OFFSET: exit 1", err)
    rc, out, err = hist("tc-no-such-guest")
    t.ok(rc == 1 and "unknown guest" in err, "an unknown guest: exit 1", err)
    t.ok(d.reload({"attach_replay": "4K"}), "reload with attach_replay = 4K")
    m0 = d.mark()
    c = Client(d.sock(H))
    got = c.read_until(m2.encode(), 10)
    t.ok(got is not None and m1.encode() not in c.buf,
         "attach_replay: a new client of the per-guest socket first gets the last session's "
         "output, not what came before the loss between the sessions", show(c.buf[-300:]))
    t.ok(d.wait_log(r"session \d+ guest=%s dev=serial0: \d+ bytes of history replayed" % H, since=m0),
         "the replay is logged with its size", d.log_tail(5, m0))
    c.escape()
    c.expect_end("disconnected", "escape key", 10)
    t.ok(d.reload({"attach_replay": None}), "reload back to attach_replay = 0")
    # 400 KB through a 1M history: the answer comes in several pages.
    t.ok(d.reload({"history": "1M"}), "reload with history = 1M")
    c = Client(d.sock(H))
    ok = c.wait_prompt(40)
    c.send(b"yes 0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXY | head -c 400000; echo BIG-$((6*7))\r")
    ok = ok and c.read_until(rb"BIG-42", 60) is not None
    c.escape()
    rc, out, err = hist(H)
    t.ok(ok and rc == 0 and b"BIG-42" in out and out.count(b"0123456789abcdefghij") >= 6000 and m1.encode() in out,
         "400 KB of output: all of it and the earlier sessions' (answers of 256 KiB, paged)",
         "rc %d, %d bytes" % (rc, len(out)), err)
    # A new run: the guest stops and starts again.
    t.ok(lab.destroy(H).returncode == 0 and lab.start(H).returncode == 0, "%s stopped and started again" % H)
    m3 = "HIST3-" + nonce()
    t.ok(session_says(H, m3), "a session in the new run prints %s" % m3)
    rc, out, err = hist(H)
    runs2 = re.findall(r"run ([0-9a-f]+): the guest started again", err)
    t.ok(rc == 0 and m1.encode() in out and m3.encode() in out and len(runs2) == 1 and runs2[0] != run1,
         "history: the previous run, then 'the guest started again' with a new run id, then the new one", err)
    t.ok(d.reload({"history_runs": 1}), "reload with history_runs = 1")
    rc, out, err = hist(H)
    t.ok(rc == 0 and m1.encode() not in out and m3.encode() in out,
         "history_runs = 1: only the current run is kept", err)
    rc, out, err = hist("--from", "%s:0" % run1, H)
    t.ok(rc == 1 and "not kept" in err, "the dropped run's offsets: 'not kept'", err)
    t.ok(d.reload({"history": None, "history_runs": None}), "reload back to the defaults")

with t.case("exit"):
    rc = d.stop()
    t.ok(rc == 0 and not os.path.exists(d.conf["control_socket"]),
         "SIGTERM: exit 0, the control socket is removed", "rc %s" % rc)
    no_sanitizer_report(t, [d], "no ASan/UBSan report in the daemon's log")

t.done()
