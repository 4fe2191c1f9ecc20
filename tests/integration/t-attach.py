#!/usr/bin/python3
"""The attach socket (asock.c, docs/SESSIONS.md "The attach socket") and
virtconsolectl attach through it, against one real guest with a serial
port and 8 virtio consoles: by name, by UUID, every alias, replay=BYTES,
from=RUN:OFFSET, input in the request line's packet, each refusal, the
bounds, and virtconsolectl's usage errors.  Viewers beside a writer:
attach --view, list's ROLE and LABEL, kick --viewers, history --follow (to a
kick, a signal and the guest's stop).
"""

import json
import os
import re
import select
import signal
import socket
import stat
import subprocess
import sys
import termios
import time

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from vcdtest import (TAP, Client, Daemon, Lab, defer, group_gid, make_tmpdir,  # noqa: E402
                     no_sanitizer_report, nonce, notice, plant_stale_socket, show,
                     sock_info, vcd_binary, wait_for)

t = TAP()
lab = Lab(t)
CTL = os.path.join(os.path.dirname(vcd_binary()), "virtconsolectl")
if not os.access(vcd_binary(), os.X_OK) or not os.access(CTL, os.X_OK):
    t.skip_all("no daemon or virtconsolectl binary next to %s" % vcd_binary())

TMP = make_tmpdir("vcd-ta.")
G = "ta-eight"
ALIASES = ["serial0"] + ["console%d" % k for k in range(1, 9)]
lab.remove_leftovers([G])
d = Daemon(lab.uri, {"idle_timeout": 300}, name="att", tmpdir=TMP)
AS = d.conf["attach_socket"]


def ctl(*args, stdin=b""):
    """virtconsolectl -f CONF ARGS with stdin bytes: (rc, stdout, stderr)."""
    r = subprocess.run([CTL, "-f", d.conf_path] + list(args), input=stdin,
                       capture_output=True, timeout=60)
    return r.returncode, r.stdout, r.stderr.decode(errors="replace")


def attach(line):
    """A client of the attach socket that sent line (bytes) at once."""
    c = Client(AS)
    c.send(line)
    return c


def refused(line, reason, desc):
    """line gets exactly the refusal for reason, then the close."""
    c = attach(line)
    r = c.expect_end("refused", reason, 15, exact=True)
    t.ok(r.ok, desc, r.why)


def connect_as(groups):
    """Connect to the attach socket as nobody with these supplementary
    groups and ask for no such guest: what came back, or the error."""
    code = ("import socket,sys\ns=socket.socket(socket.AF_UNIX)\ns.settimeout(5)\n"
            "try:\n s.connect(sys.argv[1])\nexcept OSError as e:\n print(type(e).__name__); sys.exit(0)\n"
            "s.sendall(b'ATTACH ta-no-such-guest\\n')\nprint(repr(s.recv(200)))\n")
    r = subprocess.run(["setpriv", "--reuid=65534", "--regid=65534",
                        "--groups=%s" % groups if groups else "--clear-groups",
                        sys.executable, "-c", code, AS], capture_output=True, text=True, timeout=30)
    return (r.stdout + r.stderr).strip()


class CtlProc(Client):
    """virtconsolectl -f CONF ARGS as a child, read (and typed to) like a
    Client: its stdout is what it prints, its stdin what is typed; closed
    means its stdout ended."""

    def __init__(self, args, stdin=subprocess.PIPE, conf=None):
        self.p = subprocess.Popen([CTL, "-f", conf or d.conf_path] + list(args), stdin=stdin,
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        os.set_blocking(self.p.stdout.fileno(), False)
        self.buf = bytearray()
        self.pos = 0
        self.closed = False
        self.t_closed = self.t_data = self.send_error = None
        defer(self.close)

    def fileno(self):
        return self.p.stdout.fileno()

    def send(self, data):
        try:
            self.p.stdin.write(data)
            self.p.stdin.flush()
            return True
        except (OSError, ValueError) as e:
            self.send_error = e
            return False

    def recv_some(self):
        try:
            return os.read(self.p.stdout.fileno(), 1 << 16)
        except BlockingIOError:
            return None

    def finish(self, timeout=10):
        """(exit status, stderr) once it exits; status None if it does not."""
        try:
            rc = self.p.wait(timeout)
        except subprocess.TimeoutExpired:
            return None, ""
        return rc, self.p.stderr.read().decode(errors="replace")

    def close(self):
        if self.p.poll() is None:
            self.p.kill()
            self.p.wait()


def sessions(conf=None):
    """list --json's objects (None if it fails), of d or of the daemon
    of the config file conf."""
    r = subprocess.run([CTL, "-f", conf or d.conf_path, "list", "--json"],
                       capture_output=True, timeout=60, stdin=subprocess.DEVNULL)
    try:
        return json.loads(r.stdout) if r.returncode == 0 else None
    except ValueError:
        return None


def attached(writers, viewers, conf=None):
    """list --json once it shows that many ATTACHED writers and viewers and
    nothing else (None if it does not within 15 s)."""
    def want():
        ls = sessions(conf)
        if ls is None or any(x.get("state") != "ATTACHED" for x in ls):
            return None
        roles = [x.get("role") for x in ls]
        ok = roles.count("writer") == writers and roles.count("viewer") == viewers
        return ls if ok and len(ls) == writers + viewers else None
    return wait_for(want, 15)


def pty_read(fd, buf, pattern, timeout):
    """Read a pty's master into buf until pattern (regex bytes) matches
    buf, or the other side is gone (None then)."""
    deadline = time.monotonic() + timeout
    while not re.search(pattern, buf):
        r, _, _ = select.select([fd], [], [], max(0.0, deadline - time.monotonic()))
        if not r:
            return None
        try:
            data = os.read(fd, 1 << 16)
        except OSError:         # EIO: the other side is closed
            return None
        if not data:
            return None
        buf += data
    return re.search(pattern, buf)


def says(c, text):
    """Make the guest print text (typed split, so that the echo of the
    command line does not match) and wait for it."""
    half = len(text) // 2
    c.send(("echo %s''%s\r" % (text[:half], text[half:])).encode())
    return c.read_until(text.encode(), 15) is not None


with t.case("setup"):
    r = lab.create(G, consoles=8)
    t.ok(r.returncode == 0, "create %s with a serial port and 8 virtio consoles" % G, r.stderr)
    t.ok(d.start(), "the daemon starts", d.log_tail())
    info = sock_info(AS)
    t.ok(info is not None and info[0] == 0o600,
         "attach_socket is a socket, mode 0600 without socket_group", repr(info))
    t.ok(d.find_log(r"asock: listening on %s" % re.escape(AS)), "its path is logged")
    os.chmod(TMP, 0o755)    # others may reach the socket: its mode decides
    GID = group_gid("libvirt-qemu")
    out = connect_as(str(GID))
    t.ok(out == "PermissionError", "mode 0600: another user cannot connect, whatever its groups", out)
    UUID = lab.virsh("domuuid", G).stdout.strip()
    t.ok(re.fullmatch(r"[0-9a-f-]{36}", UUID), "the guest's UUID (%s)" % UUID)

with t.case("by name"):
    c = attach(b"ATTACH %s\n" % G.encode())
    ok = c.wait_prompt(60) and c.echo_check()
    t.ok(ok, "ATTACH GUEST: the serial console's shell answers", show(c.pending()))
    rc, out, err = ctl("-s", d.conf["control_socket"], "list", "--json")
    try:
        ls = json.loads(out)
    except ValueError:
        ls = []
    t.ok(rc == 0 and len(ls) == 1 and ls[0].get("console") == "serial0" and
         re.fullmatch(r"attach:pid=\d+,uid=\d+", ls[0].get("client", "")),
         "list: console serial0, client attach:pid=..,uid=..", out, err)
    M1 = "M1-" + nonce()
    M2 = "M2-" + nonce()
    ok = says(c, M1)
    c.send(b"seq 1000 1100\r")
    ok = ok and c.read_until(rb"1100\r\n", 15) is not None
    ok = ok and says(c, M2)
    # Everything the shell prints for it (the line's end, the prompt and
    # what busybox sends after it) must be in before this client leaves:
    # a byte that comes after, with the console closed, is read at the
    # next open, after that open's loss, and a raw replay never reaches
    # across a loss (session_tail()): replay=300 below would stop there.
    ok = ok and c.read_until(rb"# ", 15) is not None
    c.read_for(0.5)
    t.ok(ok, "the guest prints %s, 101 numbers, then %s, then its prompt" % (M1, M2),
         show(c.pending()))
    refused(b"ATTACH %s\n" % G.encode(), "console busy",
            "a second client of the same console: refused: console busy")
    t.ok(c.escape(), "the escape key ends it with the usual notice")

with t.case("replay=BYTES"):
    c = attach(b"ATTACH %s replay=150\n" % G.encode())
    got = c.read_until(M2.encode(), 10)
    t.ok(got is not None and M1.encode() not in c.buf,
         "replay=150: the last lines (%s), not %s 300 bytes before" % (M2, M1), show(c.buf[:400]))
    t.ok(c.escape(), "escape")
    rc, out, err = ctl("attach", "--replay", "300", G, stdin=b"")
    if not t.ok(rc == 0 and M2.encode() in out and M1.encode() not in out,
                "virtconsolectl attach --replay 300: the last lines, then the end at stdin's EOF",
                "rc %d" % rc, show(out[:400]), err):
        # What the daemon kept, and what it did: for the cause.
        hrc, hout, herr = ctl("-s", d.conf["control_socket"], "history", G)
        t.diag("history: %s" % show(hout[-600:]))
        t.diag(d.log_tail(40))
    c = attach(b"ATTACH %s\n" % G.encode())
    data = c.read_for(1.5)
    t.ok(M2.encode() not in data, "without replay= (attach_replay 0): live only", show(data))
    t.ok(c.escape(), "escape")

with t.case("from=RUN:OFFSET"):
    rc, out, err = ctl("history", G)
    runs = re.findall(r"run ([0-9a-f]+)", err)
    off = out.find(M1.encode())
    t.ok(rc == 0 and runs and off > 0, "virtconsolectl history %s: the run (%s) and where %s is" %
         (G, runs[-1] if runs else None, M1), err)
    c = attach(b"ATTACH %s from=%s:%d\n" % (G.encode(), (runs[-1] if runs else "0").encode(), off))
    c.read_until(M2.encode(), 10)
    t.ok(bytes(c.buf).startswith(M1.encode()) and M2.encode() in c.buf,
         "from=RUN:OFFSET: the bytes from exactly there (%s first), %s after" % (M1, M2),
         show(c.buf[:200]))
    t.ok(c.escape(), "escape")

VIEW_ONLY = b"\r\n[virtconsoled] view only: input is not sent to the guest\r\n"

with t.case("viewers: attach --view, list, kick --viewers"):
    w = attach(b"ATTACH %s\n" % G.encode())
    t.ok(w.wait_prompt(30) and w.echo_check(), "a writer on serial0", show(w.pending()))
    v = CtlProc(["attach", "--view", G])
    # Listed as ATTACHED: it gets all output from here on.
    ls = attached(1, 1)
    t.ok(ls and all(x.get("console") == "serial0" and x.get("label") == "" and
                    x.get("hypervisor") == "default" and x.get("bytes_ignored") == 0
                    for x in ls),
         "list --json: the writer and the viewer (role), label \"\", hypervisor default, "
         "bytes_ignored 0", json.dumps(ls))
    rc, out, err = ctl("list")
    rows = [ln.split() for ln in out.decode(errors="replace").splitlines()]
    t.ok(rc == 0 and rows and rows[0][-4:] == ["CLIENT", "ROLE", "LABEL", "REC"] and
         sorted(r[-3:] for r in rows[1:]) == [["viewer", "-", "-"], ["writer", "-", "-"]],
         "list: ROLE, LABEL and REC are the last columns: writer - -, viewer - - (not recorded)",
         show(out), err)
    V1 = "V1-" + nonce()
    t.ok(says(w, V1) and v.read_until(V1.encode(), 15) is not None,
         "the viewer sees the output of the writer's command (%s)" % V1, show(v.pending()))
    typed = [b"touch /tmp/viewer-wrote-ctl\r", b"echo again\r"]
    v.send(typed[0])
    t.ok(v.read_until(re.escape(VIEW_ONLY), 10) is not None,
         "the viewer types: it is told 'view only: input is not sent to the guest'",
         show(v.pending()))
    v.send(typed[1])
    nbytes = len(b"".join(typed))
    ls = wait_for(lambda: [x for x in sessions() or [] if x.get("role") == "viewer" and
                           x.get("bytes_ignored") == nbytes], 10)
    t.ok(ls, "list --json: the viewer's bytes_ignored counts what it typed (%d)" % nbytes,
         json.dumps(sessions()))
    t.ok(w.run("ls /tmp/viewer-wrote-ctl", rb"No such file", 10) is not None,
         "the viewer's touch never ran: the writer's ls finds no such file", show(w.pending()))
    V2 = "V2-" + nonce()
    t.ok(says(w, V2) and v.read_until(V2.encode(), 15) is not None,
         "the viewer sees the writer's next output (%s)" % V2, show(v.pending()))
    t.ok(v.buf.count(VIEW_ONLY) == 1 and v.send_error is None,
         "the view-only line came once for two lines typed, and the viewer stays",
         show(v.buf[-400:]))
    raw = attach(b"ATTACH %s view\n" % G.encode())
    t.ok(attached(1, 2), "a second viewer through the attach socket's view", json.dumps(sessions()))
    t.ok(raw.escape(), "a viewer's escape key ends it: disconnected: escape key")

    # history --follow: the history, then live output from right after it.
    f = CtlProc(["history", "--follow", G], stdin=subprocess.DEVNULL)
    t.ok(f.read_until(V2.encode(), 15) is not None and attached(1, 2),
         "history --follow prints the history (up to %s), then is listed as a viewer" % V2,
         show(f.pending()), json.dumps(sessions()))
    F1 = "F1-" + nonce()
    t.ok(says(w, F1) and f.read_until(F1.encode(), 15) is not None,
         "history --follow prints live output written after it started (%s)" % F1,
         show(f.pending()))

    def same():
        rc, out, _ = ctl("history", G)
        f.fill(0.2)
        return rc == 0 and bytes(f.buf) == out
    t.ok(wait_for(same, 10) and f.buf.count(M1.encode()) == 1 and f.buf.count(V1.encode()) == 1,
         "what it printed is exactly what history prints now: no byte twice, none skipped "
         "(%s and %s once)" % (M1, V1), show(f.buf[-300:]))

    rc, out, err = ctl("kick", "--viewers", G)
    t.ok(rc == 0 and out == b"kicked 2 sessions\n", "kick --viewers %s: kicked 2 sessions" % G,
         "rc %d" % rc, show(out), err)
    r = v.expect_end("disconnected", "kicked by administrator", 10)
    rc, err = v.finish()
    t.ok(r.ok and rc == 0, "attach --view ends: disconnected: kicked by administrator, exit 0",
         r.why, "rc %s" % rc, err)
    r = f.expect_end("disconnected", "kicked by administrator", 10)
    rc, err = f.finish()
    t.ok(r.ok and rc == 0, "history --follow ends with the same notice, exit 0", r.why,
         "rc %s" % rc, err)
    t.ok(not w.closed and w.echo_check() and attached(1, 0),
         "the writer stays, and is the only session", show(w.pending()))
    rc, out, err = ctl("kick", "--viewers", G)
    t.ok(rc == 1 and "no viewer for %s" % G in err, "kick --viewers with no viewer: exit 1",
         "rc %d" % rc, err)

    # On a terminal the live part is shown as the history is (cat -v).
    mfd, sfd = os.openpty()
    tio = termios.tcgetattr(sfd)
    tio[1] &= ~termios.OPOST        # the bytes as written, no CR added
    termios.tcsetattr(sfd, termios.TCSANOW, tio)
    tp = subprocess.Popen([CTL, "-f", d.conf_path, "history", "--follow", G],
                          stdin=subprocess.DEVNULL, stdout=sfd, stderr=subprocess.PIPE)
    defer(lambda: tp.poll() is None and tp.kill())
    os.close(sfd)
    tty_out = bytearray()
    t.ok(attached(1, 1), "history --follow on a terminal: a viewer", json.dumps(sessions()))
    F2 = "F2-" + nonce()
    # The prompt after F2's output begins with ESC [ 6 n, live.
    t.ok(says(w, F2) and pty_read(mfd, tty_out, rb"\n%s\n[^\n]*# \^\[\[6n" % F2.encode(), 15),
         "it prints %s live, and the prompt's ESC after it as ^[" % F2, show(tty_out[-300:]))
    rc, out, err = ctl("kick", "--viewers", G)
    pty_read(mfd, tty_out, rb"\Z.", 10)    # to the end: no match
    os.close(mfd)
    rc = tp.wait(10)
    t.ok(rc == 0 and b"\r" not in tty_out and b"\x1b" not in tty_out and
         tty_out.count(b"\n%s\n" % F2.encode()) == 1 and
         tty_out.endswith(b"\n[virtconsoled] disconnected: kicked by administrator\n"),
         "no CR or ESC reached the terminal, the notice ends the output, exit 0",
         "rc %s" % rc, show(tty_out[-300:]), tp.stderr.read().decode(errors="replace"))

    f = CtlProc(["history", "--follow", "--raw", G], stdin=subprocess.DEVNULL)
    t.ok(attached(1, 1), "history --follow --raw: a viewer", json.dumps(sessions()))
    # Its stderr has the history's loss lines: those of history --raw.
    _, _, losses = ctl("history", "--raw", G)
    f.p.send_signal(signal.SIGINT)
    rc, err = f.finish()
    t.ok(rc == -signal.SIGINT and err == losses and attached(1, 0),
         "SIGINT ends history --follow by SIGINT, with nothing more said; its session ends",
         "rc %s" % rc, err, losses)

    raw = attach(b"ATTACH %s view\n" % G.encode())
    t.ok(attached(1, 1), "a viewer again", json.dumps(sessions()))
    rc, out, err = ctl("kick", "--revoke", "--viewers", G, "--json")
    try:
        k = json.loads(out)
    except ValueError:
        k = None
    t.ok(rc == 0 and k == {"kicked": 1, "revoked": 0},
         "kick --revoke --viewers --json: the viewer only, no browser session",
         "rc %d" % rc, show(out), err)
    r = raw.expect_end("disconnected", "kicked by administrator", 10)
    t.ok(r.ok and not w.closed, "the viewer is kicked, the writer stays", r.why)

    raw = attach(b"ATTACH %s view\n" % G.encode())
    t.ok(attached(1, 1), "a viewer again", json.dumps(sessions()))
    rc, out, err = ctl("kick", G)
    t.ok(rc == 0 and out == b"kicked 2 sessions\n",
         "kick without --viewers: the writer and its viewer", "rc %d" % rc, show(out), err)
    for c, who in ((w, "writer"), (raw, "viewer")):
        r = c.expect_end("disconnected", "kicked by administrator", 10)
        t.ok(r.ok, "the %s: disconnected: kicked by administrator" % who, r.why)

with t.case("by UUID, another alias, CRLF, hv=default"):
    c = attach(b"ATTACH %s console1 hv=default\r\n" % UUID.encode())
    ok = c.wait_prompt(60) and c.echo_check()
    t.ok(ok, "ATTACH UUID console1 hv=default (CRLF): the first virtio console's shell answers",
         show(c.pending()))
    c.send(b"tty\r")
    t.ok(c.read_until(rb"/dev/hvc0", 10) is not None, "and it is /dev/hvc0", show(c.pending()))
    t.ok(c.escape(), "escape")

with t.case("input in the request line's packet"):
    n = nonce()
    c = Client(AS)
    c.send(b"ATTACH %s\necho sp-%s-$((6*7))\r" % (G.encode(), n.encode()))
    t.ok(c.read_until(b"sp-%s-42" % n.encode(), 15) is not None,
         "bytes after the line in the same send reach the guest's shell", show(c.pending()))
    t.ok(c.escape(), "escape")

with t.case("every alias through virtconsolectl attach"):
    procs = {}
    for a in ALIASES:
        cmd = "echo al-%s-$((6*7))\r" % a
        procs[a] = subprocess.Popen([CTL, "-f", d.conf_path, "attach", G, a],
                                    stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                    stderr=subprocess.PIPE)
        procs[a].stdin.write(cmd.encode())
        procs[a].stdin.close()
    for a, p in procs.items():
        p.wait(60)
        out, err = p.stdout.read(), p.stderr.read()
        t.ok(p.returncode == 0 and (b"al-%s-42" % a.encode()) in out,
             "virtconsolectl attach %s %s: its shell answers, exit 0" % (G, a),
             "rc %s" % p.returncode, show(out[-300:]), err.decode(errors="replace"))

with t.case("bounds"):
    waiting = [Client(AS) for _ in range(64)]
    time.sleep(0.3)
    extra = Client(AS)
    r = extra.expect_end("refused", "too many clients", 10, exact=True)
    t.ok(r.ok, "64 connections waiting for their line: the 65th is refused: too many clients", r.why)
    last = waiting[-1].read_for(0.3)
    t.ok(not waiting[-1].closed and last == b"", "while the 64th still waits", show(last))
    for w in waiting:
        w.close()
    time.sleep(0.3)
    c = attach(b"ATTACH %s\n" % G.encode())
    t.ok(c.wait_prompt(30), "once they are gone, a client gets its console again", show(c.pending()))
    t.ok(c.escape(), "escape")

# Started now: it takes 10 s, while the refusals run.
slow = Client(AS)
slow.send(b"ATTACH " + G.encode())
slow_t0 = time.monotonic()


with t.case("refusals"):
    WANT = ("bad request: want ATTACH GUEST [ALIAS] [hv=NAME] [view] "
            "[replay=BYTES] [from=RUN:OFFSET]")
    refused(b"HELLO %s\n" % G.encode(), WANT, "a line that is not ATTACH: " + WANT)
    refused(b"ATTACH\n", WANT, "ATTACH without GUEST: the same")
    refused(b"ATTACH %s serial0 bogus\n" % G.encode(), "bad request: unknown word",
            "an unknown word: bad request: unknown word")
    refused(b"ATTACH %s replay=12Q\n" % G.encode(),
            "bad request: replay= wants BYTES (K, M or G suffix, at most 1G)",
            "a bad number: bad request: replay= wants BYTES ...")
    refused(b"ATTACH %s from=zz\n" % G.encode(), "bad request: from= wants RUN:OFFSET (RUN in hex)",
            "a bad position: bad request: from= wants RUN:OFFSET ...")
    refused(b"ATTACH %s replay=1K from=1:0\n" % G.encode(), "bad request: one replay= or from= only",
            "replay= and from= together: bad request: one replay= or from= only")
    refused(b"ATTACH " + b"x" * 2000, "bad request: line too long",
            "2000 bytes and no newline: bad request: line too long")
    refused(b"ATTACH ta-no-such-guest\n", "unknown guest", "an unknown guest: unknown guest")
    refused(b"ATTACH %s console9\n" % G.encode(), "unknown guest",
            "an unknown console alias: unknown guest")
    refused(b"ATTACH %s view view\n" % G.encode(), "bad request: view twice",
            "view twice: bad request: view twice")
    refused(b"ATTACH %s hv=other\n" % G.encode(), "unknown hypervisor",
            "hv=other: unknown hypervisor")
    rc, out, err = ctl("attach", "--view", G, "console9", stdin=b"")
    t.ok(rc == 1 and out.endswith(notice("refused", "unknown guest")),
         "virtconsolectl attach --view of an unknown console: the refusal shown, exit 1",
         "rc %d" % rc, show(out), err)
    t.ok(d.alive(), "the daemon is still up")

with t.case("request line timeout"):
    r = slow.expect_end("refused", "bad request: no request line within 10 s",
                        max(1.0, slow_t0 + 14 - time.monotonic()), exact=True)
    took = (slow.t_closed or time.monotonic()) - slow_t0
    t.ok(r.ok and 9.5 <= took <= 13,
         "a line not finished in 10 s: refused: bad request: no request line within 10 s (%.1f s)" % took,
         r.why)


with t.case("virtconsolectl usage"):
    guest_sock = d.sock(G)
    for args, what in (([G, "console1"], "an ALIAS"), (["--replay", "1K", G], "--replay"),
                       (["--view", G], "--view")):
        rc, out, err = ctl("-s", guest_sock, "attach", *args)
        t.ok(rc == 2 and "need the attach socket" in err,
             "-s SOCKET attach with %s: usage error, status 2" % what, "rc %d" % rc, err)
    rc, out, err = ctl("attach", "--replay", "lots", G)
    t.ok(rc == 2 and "--replay wants BYTES" in err, "--replay lots: status 2", "rc %d" % rc, err)
    rc, out, err = ctl("-s", guest_sock, "attach", G, stdin=b"echo sk-$((6*7))\r")
    t.ok(rc == 0 and b"sk-42" in out, "-s SOCKET attach GUEST: still raw to the guest's own socket",
         "rc %d" % rc, show(out[-200:]), err)
    rc, out, err = ctl("attach", "-x", G)
    t.ok(rc == 2, "an unknown attach option: status 2", err)
    rc, out, err = ctl("kick", "--viewer", G)
    t.ok(rc == 2 and "unknown kick option --viewer" in err, "an unknown kick option: status 2",
         "rc %d" % rc, err)
    rc, out, err = ctl("history", "--follow")
    t.ok(rc == 2 and "usage" in err, "history --follow without GUEST: status 2", "rc %d" % rc, err)

with t.case("restart: stale socket, socket_group, shutdown"):
    rc = d.stop()
    t.ok(rc == 0 and not os.path.lexists(AS), "at exit the daemon removes its attach socket",
         "rc %s" % rc)
    plant_stale_socket(AS)
    gname = "libvirt-qemu"
    gid = group_gid(gname)
    # A new name: a new log, where "started" is this run's.
    d2 = Daemon(lab.uri, {"socket_group": gname, "attach_socket": AS}, name="att2", tmpdir=TMP)
    t.ok(d2.start(), "it starts over a stale attach socket", d2.log_tail())
    info = sock_info(AS)
    t.ok(info is not None and info == (0o660, gid),
         "with socket_group = %s: 0660 and that group, as the guest sockets" % gname, repr(info))
    out = connect_as(str(gid))
    t.ok("refused: unknown guest" in out, "a user in socket_group connects (and is answered)", out)
    out = connect_as(None)
    t.ok(out == "PermissionError", "a user not in it cannot connect", out)
    c = attach(b"ATTACH %s console8\n" % G.encode())
    t.ok(c.wait_prompt(60) and c.echo_check(), "and it serves: console8 answers", show(c.pending()))
    t.ok(c.escape(), "escape")
    # The last use of the guest: it is stopped here.
    f = CtlProc(["history", "--follow", G, "console8"], stdin=subprocess.DEVNULL,
                conf=d2.conf_path)
    t.ok(attached(0, 1, d2.conf_path), "history --follow of console8: a viewer, alone",
         json.dumps(sessions(d2.conf_path)))
    r = lab.destroy(G)
    res = f.expect_end("disconnected", "guest stopped", 30)
    rc, err = f.finish()
    t.ok(r.returncode == 0 and res.ok and rc == 0,
         "the guest is destroyed: history --follow ends with disconnected: guest stopped, exit 0",
         res.why, "rc %s" % rc, err)
    other = Daemon(lab.uri, {"attach_socket": AS}, name="other", tmpdir=TMP)
    ok = other.start()
    t.ok(not ok and other.find_log(r"attach_socket %s is in use by another running daemon" %
                                   re.escape(AS)),
         "a second daemon on the same attach_socket refuses to start", other.log_tail())
    n = d2.mark()
    d2.reload({"attach_socket": os.path.join(TMP, "moved.attach")})
    t.ok(d2.wait_log(r"attach_socket changes take effect at the next start", 5, since=n) and
         os.path.exists(AS) and not os.path.exists(os.path.join(TMP, "moved.attach")),
         "a reload that moves attach_socket says it needs a restart; the socket stays",
         d2.log_tail(5, n))
    t.ok(d2.stop() == 0, "it stops")
    d3 = Daemon(lab.uri, {"attach_socket": "none"}, name="att3", tmpdir=TMP)
    t.ok(d3.start() and not os.path.lexists(AS) and d3.find_log(r"asock: no attach socket"),
         "attach_socket = none: no socket", d3.log_tail())
    r = subprocess.run([CTL, "-f", d3.conf_path, "attach", G, "console1"], capture_output=True,
                       text=True, timeout=30, stdin=subprocess.DEVNULL)
    t.ok(r.returncode == 2 and "attach_socket is none" in r.stderr,
         "virtconsolectl attach GUEST ALIAS with attach_socket none: status 2", r.stderr)
    r = subprocess.run([CTL, "-f", d3.conf_path, "history", "--follow", G], capture_output=True,
                       text=True, timeout=30, stdin=subprocess.DEVNULL)
    t.ok(r.returncode == 2 and r.stdout == "" and
         "history --follow needs the attach socket (attach_socket is none)" in r.stderr,
         "history --follow with attach_socket none: status 2 before any output", r.stderr)
    t.ok(d3.stop() == 0, "the daemon stops")

no_sanitizer_report(t, [d, d2, d3], "no ASan/UBSan report in the daemons' logs")
t.done()
