"""The benchmark's guests: lab guests with a shell on the serial port and
on each virtio console (tests/lab/README.md), booted a few at a time.
"""

import os
import subprocess
import time

HERE = os.path.dirname(os.path.abspath(__file__))
TOP = os.path.dirname(HERE)
LAB_SH = os.path.join(TOP, "tests", "lab", "lab.sh")


def aliases(consoles):
    """A lab guest's console aliases: the serial port first."""
    return ["serial0"] + ["console%d" % k for k in range(1, consoles + 1)]


class Guests:
    """N lab guests named PREFIX01.., each with `consoles` virtio consoles."""

    def __init__(self, lab_env, prefix, count, consoles, log):
        self.env = dict(os.environ, **lab_env)
        self.uri = lab_env["LAB_URI"]
        self.names = ["%s%02d" % (prefix, i + 1) for i in range(count)]
        self.consoles = consoles
        self.log = log

    def virsh(self, *args, timeout=60):
        return subprocess.run(["virsh", "-q", "-c", self.uri] + list(args),
                              stdin=subprocess.DEVNULL, capture_output=True,
                              text=True, timeout=timeout, env=self.env)

    def destroy_all(self):
        for n in self.names:
            self.virsh("destroy", n)

    def running(self):
        """Whether every guest runs already (a run with --reuse-guests)."""
        r = self.virsh("list", "--name")
        up = set(r.stdout.split())
        return all(n in up for n in self.names)

    def boot(self, timeout=300, parallel=6):
        """Create every guest (a few at a time: creation is mostly libvirt
        and QEMU start-up), then wait until each answers on its serial
        console.  Seconds it took; raises if one did not come up."""
        t0 = time.monotonic()
        self.destroy_all()          # leftovers of a crashed run
        procs = []
        for n in self.names:
            while sum(p.poll() is None for _, p in procs) >= parallel:
                time.sleep(0.05)
            procs.append((n, subprocess.Popen(
                [LAB_SH, "create", n, "--consoles", str(self.consoles)],
                env=self.env, stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)))
        bad = []
        for n, p in procs:
            out, _ = p.communicate(timeout=120)
            if p.returncode != 0:
                bad.append("%s: %s" % (n, out.strip()[-300:]))
        if bad:
            raise RuntimeError("lab.sh create failed: " + "; ".join(bad))
        self.log("created %d guests in %.1f s" % (len(self.names), time.monotonic() - t0))
        # Boot is CPU bound: probing them all at once only slows it down.
        waits = []
        for n in self.names:
            while sum(p.poll() is None for _, p in waits) >= parallel:
                time.sleep(0.1)
            waits.append((n, subprocess.Popen(
                [LAB_SH, "wait-boot", n, str(timeout)], env=self.env,
                stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT, text=True)))
        for n, p in waits:
            out, _ = p.communicate(timeout=timeout + 30)
            if p.returncode != 0:
                bad.append("%s: %s" % (n, out.strip()[-300:]))
        if bad:
            raise RuntimeError("guests did not boot: " + "; ".join(bad))
        return time.monotonic() - t0

    def cleanup(self):
        self.destroy_all()
