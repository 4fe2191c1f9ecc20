#!/usr/bin/python3
"""oldconsole.py: the OLD design, for the benchmark (bench/run.sh).

A small, faithful Python 3 port of the console server virtconsoled
replaces: Kimchi's serialconsole.py (one unix socket per guest, one process
per client, a libvirt event loop thread in each process), run with Debian's
/usr/bin/python3 and python3-libvirt.  Debian's websockify in front of a
socket (`websockify --unix-target=SOCKET PORT`) makes the old web path.

usage: oldconsole.py --socket-dir DIR [--uri URI] [options] [GUEST[:ALIAS]...]

  --socket-dir DIR       one listening socket per guest here, named after
                         the guest (GUEST:ALIAS for a named console)
  --uri URI              libvirt connection (default: libvirt's)
  --no-force             open consoles without VIR_DOMAIN_CONSOLE_FORCE
  --all-consoles         also a socket GUEST:ALIAS for every console alias
                         of every running guest (the original had the
                         first console only)
  --probe-timeout S      how long the newline probe waits for the guest
                         (default 10; the original: 1)
  --session-timeout MIN  a client that types nothing for that long is
                         dropped (default 10, the original's; 0: never)
  --no-state-poll        do not ask libvirt for the guest's state on every
                         turn of the event loop (the original did)
  GUEST[:ALIAS]          serve these (default: every guest known at start,
                         first console)

The parent listens on every socket and, for each client it accepts, forks
a process that:
  1. registers libvirt's default event implementation and opens its own
     libvirt connection (the original's LibvirtGuest);
  2. waits up to 10 s for the guest to run, then opens the console on a
     non-blocking stream with VIR_DOMAIN_CONSOLE_FORCE | _SAFE;
  3. types a newline and waits for the guest to answer, with an event loop
     in a thread (_is_vm_listening_serial);
  4. registers a READABLE stream callback that reads at most 1024 bytes per
     event and sends them to the client (_send_to_client), runs
     `while guest is running: virEventRunDefaultImpl()` in a thread
     (libvirt_event_loop), and in the main thread reads the client 1024
     bytes at a time and sends them to the stream;
  5. on the escape key (^Q alone in one read), the client leaving, an idle
     client (session timeout) or the guest stopping: says
     "\\r\\n\\r\\nClient disconnected\\r\\n" and exits.
The parent keeps accepting and reaps its children.

Deviations from the original, each because the original's behaviour would
break or skew the benchmark (its faults are listed in FIELD.md):
  - One parent owns each guest's socket and forks per client, instead of a
    socket made per web request by a multiprocessing.Process; the per
    client cost (a forked Python process with its own libvirt connection
    and event loop thread) is the same.
  - A socket file left by a crash is removed at start instead of locking
    the guest out ("There is an existing connection").
  - The probe waits --probe-timeout (10 s) instead of 1 s: the first byte
    after an open can take QEMU up to 1 s here, so a 1 s probe drops
    clients at random.  A guest that never answers still drops the client.
  - Bytes are never lost: sendall() to the client (send() could write part
    of a chunk), a stream send that would block (-2) is retried, and a
    non-blocking recv() that has nothing (-2) is ignored instead of raising
    in the callback.
  - The escape key is compared as bytes (the Python 3 original compared
    bytes to a str and never matched).
  - A stream error or EOF (console taken, guest gone) ends the session at
    once; the original kept calling back on a failed stream until its
    state poll noticed the guest stopped, or forever.
  - A process exits with os._exit() after its cleanup, so its event loop
    thread (still inside virEventRunDefaultImpl) cannot keep it alive.
"""

import argparse
import errno
import os
import select
import signal
import socket
import sys
import threading
import time
import xml.etree.ElementTree as ET

import libvirt

CTRL_Q = b"\x11"
GOODBYE = b"\r\n\r\nClient disconnected\r\n"
CHUNK = 1024
BACKLOG = 128
RUN_WAIT = 10           # the original's counter: 10 tries, 1 s apart


def log(msg):
    sys.stderr.write("oldconsole[%d]: %s\n" % (os.getpid(), msg))
    sys.stderr.flush()


def quiet_libvirt(_ctx, _err):
    """Errors are logged where they are handled, not by libvirt."""


# ------------------------------------------------------------ the guest

class LibvirtGuest:
    """The original's LibvirtGuest: a connection and a domain, per process."""

    def __init__(self, uri, name):
        self.conn = libvirt.open(uri)
        self.dom = self.conn.lookupByName(name)
        self.name = name
        self.stream = None

    def is_running(self):
        state = self.dom.state(0)[0]
        return state in (libvirt.VIR_DOMAIN_RUNNING, libvirt.VIR_DOMAIN_PAUSED)

    def get_console(self, alias, force):
        """Wait for the guest to run, then open its console."""
        counter = RUN_WAIT
        while not self.is_running():
            counter -= 1
            if counter <= 0:
                return None
            time.sleep(1)
        flags = libvirt.VIR_DOMAIN_CONSOLE_SAFE
        if force:
            flags |= libvirt.VIR_DOMAIN_CONSOLE_FORCE
        self.stream = self.conn.newStream(libvirt.VIR_STREAM_NONBLOCK)
        self.dom.openConsole(alias, self.stream, flags)
        return self.stream

    def close(self):
        try:
            self.conn.close()
        except libvirt.libvirtError:
            pass


# ------------------------------------------------------------ one client

class Session:
    """One client, in its own forked process."""

    def __init__(self, client, guest, alias, args):
        self.client = client
        self.guest_name = guest
        self.alias = alias
        self.args = args
        self.guest = None
        self.console = None
        self.ended = threading.Event()

    def is_vm_listening(self, console):
        """The original's probe: type a newline, wait for any output."""
        listening = threading.Event()

        def test_output(_stream, _events, _opaque):
            listening.set()

        def event_loop():
            while not listening.is_set():
                libvirt.virEventRunDefaultImpl()

        console.eventAddCallback(libvirt.VIR_STREAM_EVENT_READABLE, test_output, None)
        loop = threading.Thread(target=event_loop, daemon=True)
        loop.start()
        self.stream_send(b"\n")
        loop.join(self.args.probe_timeout)
        console.eventRemoveCallback()
        return not loop.is_alive()

    def stream_send(self, data):
        """All of data to the console; False if the stream failed."""
        while data:
            n = self.console.send(data)
            if n == -2:
                time.sleep(0.001)
                continue
            if n < 0:
                return False
            data = data[n:]
        return True

    def end_client_reads(self):
        """Unblock the main thread's recv()."""
        self.ended.set()
        try:
            self.client.shutdown(socket.SHUT_RD)
        except OSError:
            pass

    def send_to_client(self, stream, events, _opaque):
        """The original's _send_to_client: one read of 1024 per event."""
        try:
            data = stream.recv(CHUNK)
        except libvirt.libvirtError as e:
            log("%s: error when reading from console: %s" % (self.guest_name, e))
            stream.eventRemoveCallback()
            self.end_client_reads()
            return
        if data == -2:
            return
        if not data:
            log("%s: console closed" % self.guest_name)
            stream.eventRemoveCallback()
            self.end_client_reads()
            return
        try:
            self.client.sendall(data)
        except OSError:
            self.end_client_reads()

    def libvirt_event_loop(self):
        """The original's event loop thread: it polls the guest's state on
        every turn, and ends the client when the guest stops."""
        try:
            while not self.ended.is_set():
                if self.args.state_poll and not self.guest.is_running():
                    break
                libvirt.virEventRunDefaultImpl()
        except libvirt.libvirtError:
            pass
        self.end_client_reads()

    def run(self):
        libvirt.virEventRegisterDefaultImpl()
        libvirt.registerErrorHandler(quiet_libvirt, None)
        try:
            self.guest = LibvirtGuest(self.args.uri, self.guest_name)
            self.console = self.guest.get_console(self.alias, self.args.force)
        except libvirt.libvirtError as e:
            log("%s: cannot open the console: %s" % (self.guest_name, e))
            return 1
        if self.console is None:
            log("%s: guest not running" % self.guest_name)
            return 1
        if not self.is_vm_listening(self.console):
            log("%s: guest did not answer the probe in %g s"
                % (self.guest_name, self.args.probe_timeout))
            return 1
        if self.args.session_timeout > 0:
            self.client.settimeout(self.args.session_timeout * 60)
        log("%s: client connected" % self.guest_name)
        self.console.eventAddCallback(
            libvirt.VIR_STREAM_EVENT_READABLE | libvirt.VIR_STREAM_EVENT_ERROR
            | libvirt.VIR_STREAM_EVENT_HANGUP, self.send_to_client, None)
        threading.Thread(target=self.libvirt_event_loop, daemon=True).start()
        while not self.ended.is_set():
            try:
                data = self.client.recv(CHUNK)
            except (OSError, socket.timeout) as e:
                log("%s: client disconnected: %s" % (self.guest_name, e))
                break
            if not data or data == CTRL_Q:
                break
            try:
                if not self.stream_send(data):
                    break
            except libvirt.libvirtError:
                log("%s: console is not accessible" % self.guest_name)
                break
        try:
            self.client.sendall(GOODBYE)
        except OSError:
            pass
        log("%s: client gone" % self.guest_name)
        return 0

    def cleanup(self):
        self.ended.set()
        if self.console is not None:
            try:
                self.console.eventRemoveCallback()
            except libvirt.libvirtError:
                pass
            try:
                self.console.abort()
            except libvirt.libvirtError:
                pass
        if self.guest is not None:
            self.guest.close()
        try:
            self.client.close()
        except OSError:
            pass


def child_main(client, guest, alias, args):
    rc = 1
    s = Session(client, guest, alias, args)
    try:
        rc = s.run()
    except Exception as e:      # a child must never return to the parent's loop
        log("%s: %s: %s" % (guest, type(e).__name__, e))
    finally:
        s.cleanup()
        os._exit(rc)


# ------------------------------------------------------------ the parent

def console_aliases(dom):
    """The console aliases of a running guest, in XML order."""
    try:
        root = ET.fromstring(dom.XMLDesc(0))
    except (libvirt.libvirtError, ET.ParseError):
        return []
    out = []
    for dev in root.findall("./devices/console"):
        a = dev.find("alias")
        if a is not None and a.get("name") and a.get("name") not in out:
            out.append(a.get("name"))
    return out


def targets_from_libvirt(args):
    """(guest, alias) pairs; the connection is closed before any fork."""
    conn = libvirt.open(args.uri)
    try:
        out = []
        for dom in conn.listAllDomains(0):
            out.append((dom.name(), None))
            if args.all_consoles and dom.isActive():
                out += [(dom.name(), a) for a in console_aliases(dom)]
        return out
    finally:
        conn.close()


def parse_targets(args):
    if not args.targets:
        return targets_from_libvirt(args)
    out = []
    for t in args.targets:
        g, _, a = t.partition(":")
        out.append((g, a or None))
    return out


def listen(path):
    if os.path.exists(path) or os.path.islink(path):
        os.unlink(path)         # left by a crash (the original refused)
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.bind(path)
    s.listen(BACKLOG)
    return s


class Parent:
    def __init__(self, args, targets):
        self.args = args
        self.listeners = {}     # fd -> (socket, path, guest, alias)
        self.children = set()
        for guest, alias in targets:
            name = guest if alias is None else "%s:%s" % (guest, alias)
            path = os.path.join(args.socket_dir, name)
            s = listen(path)
            self.listeners[s.fileno()] = (s, path, guest, alias)

    def reap(self):
        while self.children:
            try:
                pid, _ = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                self.children.clear()
                return
            if pid == 0:
                return
            self.children.discard(pid)

    def accept(self, fd):
        s, _, guest, alias = self.listeners[fd]
        try:
            client, _ = s.accept()
        except OSError as e:
            if e.errno not in (errno.EAGAIN, errno.EINTR, errno.ECONNABORTED):
                log("accept %s: %s" % (guest, e))
            return
        pid = os.fork()
        if pid == 0:
            for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGCHLD):
                signal.signal(sig, signal.SIG_DFL)
            for ls, _, _, _ in self.listeners.values():
                ls.close()
            child_main(client, guest, alias, self.args)
        self.children.add(pid)
        client.close()

    def serve(self):
        stop = []
        signal.signal(signal.SIGTERM, lambda *_: stop.append(1))
        signal.signal(signal.SIGINT, lambda *_: stop.append(1))
        signal.signal(signal.SIGCHLD, lambda *_: None)  # wakes poll
        poller = select.poll()
        for fd in self.listeners:
            poller.register(fd, select.POLLIN)
        log("serving %d sockets in %s" % (len(self.listeners), self.args.socket_dir))
        while not stop:
            try:
                ready = poller.poll(1000)
            except InterruptedError:
                ready = []
            self.reap()
            for fd, _ in ready:
                self.accept(fd)
        self.shutdown()

    def shutdown(self):
        for s, path, _, _ in self.listeners.values():
            s.close()
            try:
                os.unlink(path)
            except OSError:
                pass
        for pid in list(self.children):
            try:
                os.kill(pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
        deadline = time.monotonic() + 5
        while self.children and time.monotonic() < deadline:
            self.reap()
            time.sleep(0.05)
        log("stopped")


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--socket-dir", required=True)
    ap.add_argument("--uri", default=None)
    ap.add_argument("--no-force", dest="force", action="store_false")
    ap.add_argument("--all-consoles", action="store_true")
    ap.add_argument("--probe-timeout", type=float, default=10.0)
    ap.add_argument("--session-timeout", type=float, default=10.0)
    ap.add_argument("--no-state-poll", dest="state_poll", action="store_false")
    ap.add_argument("targets", nargs="*", metavar="GUEST[:ALIAS]")
    args = ap.parse_args()
    os.makedirs(args.socket_dir, exist_ok=True)
    libvirt.registerErrorHandler(quiet_libvirt, None)
    try:
        targets = parse_targets(args)
    except libvirt.libvirtError as e:
        log("cannot list guests: %s" % e)
        return 1
    if not targets:
        log("no guests")
        return 1
    Parent(args, targets).serve()
    return 0


if __name__ == "__main__":
    sys.exit(main())
