#!/usr/bin/python3
"""Check that a lab guest's console has a shell that answers.

Usage: console-probe.py URI NAME [--dev ALIAS] [--timeout S] [--force]
                        [--run COMMAND]

Opens the console (the serial one by default, or an alias such as
console1), types `echo vcd-probe-<nonce>-$((6*7))` every half second until
`vcd-probe-<nonce>-42` comes back, then closes the console. Keystrokes typed
while the guest boots are eaten, hence the repetition; the computed value
proves a shell ran the line (its mere echo would not contain it). With
--run, then types COMMAND once and prints its output.

Exit 0 on success (prints the time it took), 1 on timeout or error (prints
the tail of what the console showed). Run it with /usr/bin/python3: that is
the interpreter python3-libvirt is installed for.
"""

import argparse
import os
import sys
import time

import libvirt


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("uri")
    ap.add_argument("name")
    ap.add_argument("--dev", default=None,
                    help="console alias (default: the first console)")
    ap.add_argument("--timeout", type=float, default=60.0)
    ap.add_argument("--force", action="store_true",
                    help="take the console from whoever holds it")
    ap.add_argument("--run", metavar="COMMAND",
                    help="once the shell answers, run COMMAND, print its output")
    args = ap.parse_args()

    # Without an event implementation registered before the connection is
    # opened, stream callbacks and keepalive silently do nothing.
    libvirt.virEventRegisterDefaultImpl()
    libvirt.registerErrorHandler(lambda ctx, err: None, None)

    nonce = os.urandom(4).hex()
    command = ("echo vcd-probe-%s-$((6*7))\r" % nonce).encode()
    expect = ("vcd-probe-%s-42" % nonce).encode()
    what = "%s console %s" % (args.name, args.dev or "(first)")

    t0 = time.monotonic()
    conn = libvirt.open(args.uri)
    dom = conn.lookupByName(args.name)
    stream = conn.newStream(libvirt.VIR_STREAM_NONBLOCK)
    flags = libvirt.VIR_DOMAIN_CONSOLE_FORCE if args.force else 0
    dom.openConsole(args.dev, stream, flags)

    seen = bytearray()
    state = {"error": None}

    def on_stream(st, events, _opaque):
        if events & libvirt.VIR_STREAM_EVENT_READABLE:
            while True:
                try:
                    data = st.recv(4096)
                except libvirt.libvirtError as e:
                    state["error"] = "recv failed: %s" % e
                    return
                if data == -2:          # would block
                    break
                if not data:            # guest gone
                    state["error"] = "console closed (end of stream)"
                    return
                seen.extend(data)
        if events & (libvirt.VIR_STREAM_EVENT_ERROR |
                     libvirt.VIR_STREAM_EVENT_HANGUP):
            state["error"] = "stream error or hangup"

    stream.eventAddCallback(libvirt.VIR_STREAM_EVENT_READABLE |
                            libvirt.VIR_STREAM_EVENT_ERROR |
                            libvirt.VIR_STREAM_EVENT_HANGUP, on_stream, None)
    # A periodic timer so the loop below wakes up to resend and time out.
    libvirt.virEventAddTimeout(100, lambda timer, opaque: None, None)

    deadline = t0 + args.timeout

    def type_until(line, marker, resend):
        """Send line (again every 0.5 s if resend) until marker is seen."""
        next_send = 0.0
        while True:
            if marker in seen:
                return True
            now = time.monotonic()
            if state["error"] or now > deadline:
                return False
            if now >= next_send:
                try:
                    stream.send(line)
                except libvirt.libvirtError as e:
                    state["error"] = "send failed: %s" % e
                    return False
                next_send = now + 0.5 if resend else deadline + 1
            libvirt.virEventRunDefaultImpl()

    ok = type_until(command, expect, True)
    answered = time.monotonic() - t0
    output = None
    if ok and args.run is not None:
        begin = ("vcd-probe-%s-begin" % nonce).encode()
        end = ("vcd-probe-%s-end" % nonce).encode()
        # Let the answers to repeated probe lines drain, then start clean.
        quiet_until = time.monotonic() + 0.3
        while time.monotonic() < quiet_until:
            libvirt.virEventRunDefaultImpl()
        del seen[:]
        # The quotes keep the echo of the typed line from matching the
        # markers; only what the shell prints does. The line editor's
        # wrapping of a long echo then cannot confuse us either.
        line = ("echo vcd-probe-%s-be''gin; %s; echo vcd-probe-%s-e''nd\r"
                % (nonce, args.run, nonce)).encode()
        ok = type_until(line, end, False)
        if ok:
            text = bytes(seen[:seen.index(end)])
            text = text[text.index(begin) + len(begin):]
            output = text.decode("utf-8", "replace").replace("\r", "")
            output = output[1:] if output.startswith("\n") else output

    try:
        stream.eventRemoveCallback()
        stream.abort()
    except libvirt.libvirtError:
        pass
    conn.close()

    elapsed = time.monotonic() - t0
    if ok:
        if output is not None:
            sys.stdout.write(output)
        else:
            print("%s: shell answered in %.2f s" % (what, answered))
        return 0
    tail = bytes(seen[-400:]).decode("utf-8", "replace")
    print("%s: no shell answer (%s) after %.2f s; console showed:\n%s"
          % (what, state["error"] or "timeout", elapsed, tail),
          file=sys.stderr)
    return 1


if __name__ == "__main__":
    try:
        sys.exit(main())
    except libvirt.libvirtError as e:
        print("console-probe: %s" % e, file=sys.stderr)
        sys.exit(1)
