#!/usr/bin/python3
"""t-deb.sh's console client: reach a lab guest through one of the
packaged daemon's doors and prove a round trip through its shell.

    debdoors.py unix SOCKET        the guest's own unix socket
    debdoors.py web URL            ws://.../console/GUEST?token=TOKEN

Waits for the busybox prompt (pressing Enter), then types an echo with a
fresh nonce and waits for its answer.  Exit 0 on success; on failure the
last bytes read go to stderr."""

import sys

from vcdtest import Client, run_cleanups, show
from webtest import Loop, WSClient


def main():
    kind, where = sys.argv[1], sys.argv[2]
    loop = None
    if kind == "unix":
        c = Client(where, timeout=10)
    else:
        loop = Loop()
        c = WSClient(loop, where, ["binary"], timeout=10)
        if not c.connected():
            sys.stderr.write("handshake refused: HTTP %s\n" % c.status)
            return 1
    ok = c.wait_prompt(timeout=60) and c.echo_check(timeout=15)
    if not ok:
        sys.stderr.write("no prompt or echo; read: %s\n" % show(bytes(c.buf)))
    c.close()
    if loop is not None:
        loop.stop()
    return 0 if ok else 1


if __name__ == "__main__":
    try:
        rc = main()
    finally:
        run_cleanups()
    sys.exit(rc)
