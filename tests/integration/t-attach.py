#!/usr/bin/python3
"""The attach socket (asock.c, docs/SESSIONS.md "The attach socket") and
virtconsolectl attach through it, against one real guest with a serial
port and 8 virtio consoles: by name, by UUID, every alias, replay=BYTES,
from=RUN:OFFSET, input in the request line's packet, each refusal, the
bounds, and virtconsolectl's usage errors.
"""

import json
import os
import re
import socket
import stat
import subprocess
import sys
import time

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from vcdtest import (TAP, Client, Daemon, Lab, group_gid, make_tmpdir,  # noqa: E402
                     no_sanitizer_report, nonce, notice, plant_stale_socket, show,
                     sock_info, vcd_binary)

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
    t.ok(ok, "the guest prints %s, 101 numbers, then %s" % (M1, M2), show(c.pending()))
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
    t.ok(rc == 0 and M2.encode() in out and M1.encode() not in out,
         "virtconsolectl attach --replay 300: the last lines, then the end at stdin's EOF",
         "rc %d" % rc, show(out[:400]), err)
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
    refused(b"ATTACH %s view\n" % G.encode(), "view only is not supported yet",
            "view: view only is not supported yet")
    refused(b"ATTACH %s hv=other\n" % G.encode(), "unknown hypervisor",
            "hv=other: unknown hypervisor")
    rc, out, err = ctl("attach", "--view", G, stdin=b"")
    t.ok(rc == 1 and out.endswith(notice("refused", "view only is not supported yet")),
         "virtconsolectl attach --view: sent as view, the refusal shown, exit 1",
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
    t.ok(d3.stop() == 0, "the daemon stops")

no_sanitizer_report(t, [d, d2, d3], "no ASan/UBSan report in the daemons' logs")
t.done()
