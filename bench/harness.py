#!/usr/bin/python3
"""The benchmark harness behind bench/run.sh: boots lab guests, starts the
servers of every path and drives bench/vcdload against them, interleaving
the paths so that each figure has a floor measured minutes, not hours,
apart.  Writes one JSON document (bench/report.py turns it into
docs/BENCHMARKS.md and docs/bench.png).

Phases, in this order:
  memory   per path, on a freshly started server: its memory with no
           session, with N idle sessions (N growing), its CPU over a
           window with the most idle sessions, then its memory while N
           sessions type and read echoes (active);
  echo     keystroke echo round trips at each count, every path in turn,
           repeated with the path order rotated;
  tput     guest-to-client throughput of one console, then of one console
           on every guest at once, with the server's CPU per MB;
  capture  (first; in the quick profile only unless --phases names it:
           filling 225 histories takes minutes) a virtconsoled of its own with capture = always
           and small history limits: its RSS with every console captured
           and nothing kept, then with every console's history full
           (each console printed more than history + history_head), against
           the bound consoles x (history + history_head) x history_runs;
           then its CPU with every console captured and nobody printing.

Run it through bench/run.sh; alone it needs LAB_DIR and LAB_URI (a running
lab), VCD_BUILD (the daemon) and VCDLOAD (the load generator).
"""

import argparse
import datetime
import json
import os
import platform
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time

sys.dont_write_bytecode = True
HERE = os.path.dirname(os.path.abspath(__file__))
TOP = os.path.dirname(HERE)
sys.path.insert(0, HERE)

import malloccount  # noqa: E402
import procstat  # noqa: E402
import servers  # noqa: E402
from guests import Guests, aliases  # noqa: E402
from servers import FIRST_CONSOLE_ONLY, PATHS, PREV_PATHS  # noqa: E402
from webtest import ctl_binary  # noqa: E402  (servers put its directory on the path)

FORMAT = 1

# Counts and windows.  "full" is what the issue asks for; "quick" proves
# that every piece works, in the test suite.
PROFILES = {
    "full": {
        "guests": 25, "consoles": 8,
        "mem_counts": [10, 100, 200],
        "idle_cpu_secs": 6,
        # The counts of the targets first: a run that runs out of time
        # loses 10 and 100 (active memory only) before them.
        "echo_counts": [1, 50, 200, 10, 100],
        "echo_reps": {"1": 2, "50": 2, "200": 2},
        "echo_secs": 3, "echo_secs_one": 4, "echo_rate": 20, "echo_total_rate": 200,
        # The old design's echo runs stop at 50 sessions: through it, 200
        # sessions take minutes to attach on 2 cores (and some fail).
        "old_max": 50,
        "mem_step_max_s": 45,
        # The throughput runs and the side-by-side one after them are
        # required: this reserve keeps them inside the budget.  On a busy
        # day (2026-12-04: guests booted in 66 s) they took 290 + 42 s.
        "est_tput_s": 340,
        "budget_s": 1340,
        "tput_secs": 5, "tput_reps": 2,
        # Issue 22: the side-by-side figures are medians of >= 3 runs.
        "side_reps": 3, "side_secs": 8, "est_side_echo_s": 70,
        "agg_secs": 6, "agg_reps": 1,
        # Allocations per chunk over 10 MB per door (issue 22), the guests
        # printing 400 KB each: ~12 KB/s per guest with all 25 printing on
        # a busy host (2026-12-06), so 35 s; the window leaves room.  Its
        # reserve doubles with the previous build's doors.
        "alloc_bytes": 10000000, "alloc_secs": 50, "est_alloc_s": 200,
        # The capture phase: history limits small enough that 225
        # consoles fill them in a minute (a guest prints ~0.2 MB/s on one
        # console, far less with 9 consoles on 25 guests printing at once).
        "cap_history": "32K", "cap_history_head": "8K", "cap_history_runs": 1,
        "cap_print": 42000, "cap_full_timeout_s": 900, "cap_idle_cpu_secs": 30,
        "cap_settle_s": 3,
        # The capture phase takes ~10 minutes on a shared 2-core machine
        # (filling 225 histories): not in the 20-minute run; run alone.
        "phases": "memory,echo,side,tput,alloc",
    },
    "quick": {
        "guests": 2, "consoles": 4,
        "mem_counts": [5],
        "idle_cpu_secs": 2,
        "echo_counts": [1, 5],
        "echo_reps": {},
        "echo_secs": 1, "echo_secs_one": 2, "echo_rate": 20, "echo_total_rate": 200,
        "old_max": 5,
        "mem_step_max_s": 60,
        "est_tput_s": 60,
        "budget_s": 600,
        "tput_secs": 2, "tput_reps": 0,
        "side_reps": 1, "side_secs": 2, "est_side_echo_s": 20,
        "agg_secs": 2, "agg_reps": 1,
        "alloc_bytes": 200000, "alloc_secs": 4, "est_alloc_s": 60,
        "cap_history": "16K", "cap_history_head": "4K", "cap_history_runs": 1,
        "cap_print": 24000, "cap_full_timeout_s": 90, "cap_idle_cpu_secs": 3,
        "cap_settle_s": 1,
        "phases": "capture,memory,echo,side,tput,alloc",
    },
}


# Every phase --phases knows, in the order they run.
PHASES = ("capture", "memory", "echo", "side", "tput", "alloc")


def size_bytes(v):
    """virtconsoled.conf's size syntax (a number, K, M or G suffix)."""
    v = str(v).strip()
    mult = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30}.get(v[-1:].upper(), 1)
    return int(v[:-1] if mult > 1 else v) * mult

T0 = time.monotonic()


def log(msg):
    sys.stderr.write("[%6.1f] %s\n" % (time.monotonic() - T0, msg))
    sys.stderr.flush()


def cmd_out(argv):
    try:
        return subprocess.run(argv, capture_output=True, text=True,
                              timeout=30).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return ""


def machine(uri):
    cpu = ""
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    mem = 0
    with open("/proc/meminfo") as f:
        for line in f:
            if line.startswith("MemTotal:"):
                mem = int(line.split()[1]) // 1024
    ver = cmd_out(["virsh", "-c", uri, "version"])
    m = {}
    for key, pat in (("libvirt", r"Using library: libvirt (\S+)"),
                     ("libvirtd", r"Running against daemon: (\S+)"),
                     ("qemu", r"Running hypervisor: QEMU (\S+)")):
        mm = re.search(pat, ver)
        m[key] = mm.group(1) if mm else None
    debian = ""
    try:
        with open("/etc/debian_version") as f:
            debian = f.read().strip()
    except OSError:
        pass
    return {
        "cpu_model": cpu,
        "cores": os.cpu_count(),
        "mem_total_mib": mem,
        "kernel": platform.release(),
        "debian": debian,
        "libvirt": m["libvirt"], "libvirtd": m["libvirtd"], "qemu": m["qemu"],
        "libevent": cmd_out(["pkg-config", "--modversion", "libevent"]),
        "openssl": cmd_out(["openssl", "version"]),
        "python3": platform.python_version(),
        "websockify": cmd_out(["dpkg-query", "-W", "-f", "${Version}", "websockify"]),
        "python3_libvirt": cmd_out(["dpkg-query", "-W", "-f", "${Version}", "python3-libvirt"]),
    }


class LoadSampler(threading.Thread):
    """The 1-minute load average every few seconds: how busy the shared
    machine was during the run."""

    def __init__(self, every=5):
        super().__init__(daemon=True)
        self.every = every
        self.samples = []
        self.stopping = threading.Event()

    def run(self):
        while not self.stopping.is_set():
            self.samples.append([round(time.monotonic() - T0, 1), procstat.loadavg()[0]])
            self.stopping.wait(self.every)

    def summary(self):
        vals = [s[1] for s in self.samples] or [0]
        return {"samples": self.samples, "mean_1min": round(sum(vals) / len(vals), 2),
                "max_1min": max(vals)}


# ------------------------------------------------------------ vcdload

class Vcdload:
    """Runs bench/vcdload: one process, N sessions on one path."""

    def __init__(self, binary, tmpdir):
        self.binary = binary
        self.tmp = tmpdir
        self.seq = 0
        self.live = set()       # running vcdload processes, ended at exit
        self.cafile = None

    MODES = {"floor": "libvirt", "vcd-unix": "unix", "old-unix": "unix",
             "vcd-ws": "ws", "old-ws": "ws", "vcd-wss": "wss",
             "prev-unix": "unix", "prev-ws": "ws", "prev-wss": "wss"}

    def argv(self, path, targets, test, secs, ready_file, targets_file, rate=None):
        """The command line; targets are endpoint() dicts, written one a
        line to targets_file."""
        mode = self.MODES[path]
        lines = []
        for t in targets:
            if mode == "libvirt":
                lines.append("%s:%s" % (t["guest"], t["alias"]))
            elif mode == "unix":
                lines.append(t["socket"])
            else:
                lines.append(t["url"])
        with open(targets_file, "w") as f:
            f.write("\n".join(lines) + "\n")
        argv = [self.binary, mode, "--" + test, str(secs),
                "--targets-file", targets_file, "--ready-file", ready_file,
                "--attach-timeout", "60", "--prepare-timeout", "60",
                # Connecting 16 at a time (vcdload's default) makes a run
                # of 200 through the old design last minutes.
                "--parallel", "50"]
        if mode == "libvirt":
            # virtconsoled opens with force too (its default).
            argv += ["--uri", targets[0]["uri"], "--force"]
        if mode == "wss":
            argv += ["--cafile", self.cafile]
        if test == "echo" and rate:
            argv += ["--rate", "%g" % rate]
        if test == "idle":
            # Attached means the shell's prompt came back through the path.
            argv += ["--prepare", "prompt"]
        return argv

    def start(self, path, targets, test, secs, sink_cmd=None, rate=None, extra=()):
        """Start a run: the Popen, with bench_files (ready, out, err)."""
        self.seq += 1
        ready = os.path.join(self.tmp, "ready.%d" % self.seq)
        out = os.path.join(self.tmp, "vcdload.%d.json" % self.seq)
        err = os.path.join(self.tmp, "vcdload.%d.err" % self.seq)
        argv = self.argv(path, targets, test, secs, ready,
                         os.path.join(self.tmp, "targets.%d" % self.seq), rate)
        if sink_cmd:
            argv += ["--sink-cmd", sink_cmd]
        argv += list(extra)
        with open(out, "wb") as fo, open(err, "wb") as fe:
            p = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=fo, stderr=fe)
        p.bench_files = (ready, out, err)
        p.bench_argv = argv
        p.bench_t0 = time.monotonic()
        self.live.add(p)
        return p

    @staticmethod
    def wait_ready(p, timeout):
        """True once vcdload says every session is attached and prepared
        (or has failed: its own timeouts); False if it exited or timed out."""
        ready = p.bench_files[0]
        return servers.wait_until(lambda: os.path.exists(ready) or p.poll() is not None,
                                  timeout) and os.path.exists(ready)

    def finish(self, p, timeout):
        """Wait for the run to end (SIGTERM, then SIGKILL, when it takes
        longer: vcdload reports what it has on SIGTERM); (exit status,
        parsed JSON or None, stderr tail)."""
        for sig, t in ((None, timeout), (signal.SIGTERM, 15), (signal.SIGKILL, 10)):
            if sig is not None:
                p.send_signal(sig)
            try:
                p.wait(t)
                break
            except subprocess.TimeoutExpired:
                continue
        self.live.discard(p)
        _, out, err = p.bench_files
        try:
            with open(out) as f:
                doc = json.load(f)
        except (OSError, ValueError):
            doc = None
        try:
            with open(err, errors="replace") as f:
                etail = f.read()[-2000:]
        except OSError:
            etail = ""
        return p.returncode, doc, etail


def slim(doc):
    """vcdload's JSON without the per-session list, except the sessions
    that did not end the way the client ended them (kept for diagnosis)."""
    if not isinstance(doc, dict):
        return doc
    doc = dict(doc)
    per = doc.pop("per_session", None) or []
    bad = [ps for ps in per if not ps.get("ready")
           or (ps.get("end") or {}).get("by") not in (None, "client")]
    if bad:
        doc["per_session_bad"] = bad[:20]
    return doc


# ------------------------------------------------------------ the bench

class Bench:
    def __init__(self, args, prof):
        self.args = args
        self.prof = prof
        self.tmp = tempfile.mkdtemp(prefix="vcd-bench.", dir="/tmp")
        self.lab_env = {"LAB_DIR": os.environ["LAB_DIR"], "LAB_URI": os.environ["LAB_URI"]}
        self.uri = self.lab_env["LAB_URI"]
        self.guests = Guests(self.lab_env, args.prefix, prof["guests"], prof["consoles"], log)
        self.names = self.guests.names
        self.load = Vcdload(args.vcdload, self.tmp)
        self.floor = servers.Floor(self.uri)
        self.vcd = servers.Vcd(self.uri, self.tmp, log)
        if args.nice is not None:
            self.vcd.run_nice(args.nice)
        self.load.cafile = self.vcd.cert
        self.prev = self.prev_daemon()
        self.old = servers.Old(self.uri, self.tmp, log, args.oldconsole)
        self.wsfy = servers.Websockify(self.old, self.tmp, log)
        self.paths = args.paths
        self.runs = []
        self.errors = []
        self.costs = {}         # (phase, path, n) or ("side", kind): seconds it took
        self.res = {
            "format": FORMAT,
            "fixture": False,
            "profile": args.profile,
            "config": dict(prof, paths=self.paths, phases=args.phases),
            "started": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
            "machine": machine(self.uri),
            "runs": self.runs,
            "memory": {},
            "idle_cpu": {},
            "errors": self.errors,
        }
        if self.prev:
            self.res["prev"] = {"rev": args.prev_rev, "sha": args.prev_sha,
                                "build": args.prev_vcd}
        if args.nice is not None:
            self.res["vcd_nice"] = args.nice

    # ---------------------------------------------------------- servers

    def prev_daemon(self):
        """The previous build's virtconsoled (--prev-vcd DIR), or None: a
        directory, sockets, control socket and ports of its own, the same
        configuration as the current daemon's and the same certificate.
        Like it, it opens a guest's console only while a session of its own
        is attached (capture = attached, the test daemons' setting), so the
        two never take a console from each other as long as their sessions
        are on different consoles: the runs alone have one server kind up at
        a time (start_servers), and side by side gives every path consoles
        of its own, as it does the floor."""
        if not self.args.prev_vcd:
            return None
        tmp = os.path.join(self.tmp, "prev")
        os.makedirs(tmp, exist_ok=True)
        return servers.Vcd(self.uri, tmp, log, build=self.args.prev_vcd,
                           cert=(self.vcd.cert, self.vcd.key), name="prev")

    def start_prev_beside(self, paths):
        """Side by side: the previous build's daemon up beside the current
        one when a prev-* path is among paths."""
        if self.prev and any(p.startswith("prev-") for p in paths):
            if not self.prev.roots():
                self.prev.start()
            self.prev.wait_sockets(self.names)

    def server_roots(self, path):
        if path == "floor":
            return []
        if path.startswith("vcd-"):
            return self.vcd.roots()
        if path.startswith("prev-"):
            return self.prev.roots()
        if path == "old-unix":
            return self.old.roots()
        return self.old.roots() + self.wsfy.roots()

    def start_servers(self, which):
        """Start (or restart, fresh) what path `which` needs, and stop the
        rest so that nothing else is measured."""
        need_vcd = which.startswith("vcd-")
        need_old = which.startswith("old-")
        need_wsfy = which == "old-ws"
        if self.wsfy.proc:
            self.wsfy.stop()
        if self.old.proc:
            self.old.stop()
        if self.vcd.roots():
            self.vcd.stop()
        if self.prev and self.prev.roots():
            self.prev.stop()
        if need_vcd:
            self.vcd.start()
            self.vcd.wait_sockets(self.names)
        if which.startswith("prev-"):
            self.prev.start()
            self.prev.wait_sockets(self.names)
        if need_old:
            self.old.start(self.names)
        if need_wsfy:
            self.wsfy.start(self.names, self.prof["consoles"])
        self.current = which

    def ensure_servers(self, path):
        """Like start_servers, but keeps a running server of the right
        kind (the vcd-* paths share one daemon)."""
        cur = getattr(self, "current", None)
        if cur is not None:
            same = (cur == path or any(cur.startswith(k) and path.startswith(k)
                                       for k in ("vcd-", "prev-")))
            alive = self.server_roots(path) or path == "floor"
            if same and alive:
                self.current = path
                return
        self.start_servers(path)

    def stop_servers(self):
        self.wsfy.stop()
        self.old.stop()
        if self.vcd.roots():
            self.vcd.stop()
        if self.prev and self.prev.roots():
            self.prev.stop()
        self.current = None

    # ---------------------------------------------------------- sessions

    def capacity(self, path):
        if path in FIRST_CONSOLE_ONLY:
            return len(self.names)
        return len(self.names) * (1 + self.prof["consoles"])

    def targets(self, path, n):
        """n (guest, alias) pairs, spread over the guests: every guest's
        serial port first, then their console1, and so on."""
        n = min(n, self.capacity(path))
        al = aliases(self.prof["consoles"])
        out = []
        for k in range(n):
            g = self.names[k % len(self.names)]
            a = al[0] if path in FIRST_CONSOLE_ONLY else al[k // len(self.names)]
            out.append((g, a))
        return out

    def endpoint(self, path, guest, alias):
        """The address vcdload uses for one console on one path."""
        if path == "floor":
            return {"uri": self.uri, "guest": guest, "alias": alias}
        if path.startswith(("vcd-", "prev-")):
            # The current build's daemon, or the previous one's.
            d = self.daemon(path)
            door = path.split("-", 1)[1]
            if door == "unix":
                return {"socket": os.path.join(d.socket_dir, guest)}
            return {"url": "%s://127.0.0.1:%d/console/%s/%s" % (
                door, d.tls_port if door == "wss" else d.port, guest, alias)}
        if path == "old-unix":
            return {"socket": self.old.sock(guest, alias)}
        if path == "old-ws":
            return {"url": self.wsfy.url(guest, alias)}
        raise ValueError(path)

    # ---------------------------------------------------------- one run

    def ready_timeout(self, n):
        # vcdload's own: 60 s to attach, 60 s to prepare, and it says so.
        return 150 + 0.2 * n

    def record(self, rec):
        self.runs.append(rec)
        if rec.get("error"):
            self.errors.append("%s %s n=%s: %s" % (rec["phase"], rec["path"], rec["n"], rec["error"]))
            log("  ERROR %s" % rec["error"][:300])
        self.checkpoint()

    def rate(self, n):
        """Keystrokes per second per session: echo_rate, but at most
        echo_total_rate over all sessions, so that the guests and libvirtd
        are not driven into overload (a queue would then measure the
        machine, not the path)."""
        return min(self.prof["echo_rate"], self.prof["echo_total_rate"] / float(n))

    def begin(self, phase, path, n, test, secs, rep=0, sink_cmd=None, first=0):
        """Start vcdload on sessions first..n-1 of the path (capped); wait
        until they are attached and prepared.  (rec, Popen) with rec
        recorded and p None if that failed."""
        tg = self.targets(path, n)[first:]
        rec, p = self.launch(phase, path, tg, test, secs, rep, sink_cmd, n_asked=n)
        return (rec, p) if self.ready(rec, p) else (rec, None)

    def launch(self, phase, path, tg, test, secs, rep=0, sink_cmd=None, n_asked=None,
               rate=None, extra=()):
        """Start vcdload on these (guest, alias) consoles; (rec, Popen)."""
        rec = {"phase": phase, "path": path, "n": len(tg), "n_asked": n_asked or len(tg),
               "rep": rep, "test": test, "secs": secs, "t": round(time.monotonic() - T0, 1),
               "load1": procstat.loadavg()[0]}
        if test == "echo":
            rate = rate or self.rate(len(tg))
            rec["rate"] = round(rate, 3)
        p = self.load.start(path, [self.endpoint(path, g, a) for g, a in tg], test, secs,
                            sink_cmd, rate, extra)
        return rec, p

    # The door whose residence times a path's run reads (in its own
    # daemon's stats: the previous build's for prev-*).
    DOORS = {"vcd-unix": "unix", "vcd-ws": "ws", "vcd-wss": "wss",
             "prev-unix": "unix", "prev-ws": "ws", "prev-wss": "wss"}

    def daemon(self, path):
        """The virtconsoled serving a vcd-* or prev-* path."""
        return self.prev if path.startswith("prev-") else self.vcd

    def door_pairs(self):
        """The daemons' paths, each door of the current build beside the
        previous build's: vcd-unix, prev-unix, vcd-ws..., those measured."""
        return [p for d in ("unix", "ws", "wss") for p in ("vcd-" + d, "prev-" + d)
                if p in self.paths]

    # The histograms of a door that a run keeps: residence both ways, and
    # the virStreamSend() calls inside to_guest (send_call).
    RES_KEYS = ("to_guest", "to_client", "send_call")

    def residence(self, d=None):
        """`virtconsolectl stats --json` of a bench virtconsoled (the
        current build's by default): {(door, key): (buckets, sum in
        seconds)} for RES_KEYS, or None."""
        d = d or self.vcd
        if not d.roots():
            return None
        try:
            r = subprocess.run([ctl_binary(), "-f", d.conf_path, "stats", "--json"],
                               capture_output=True, text=True, timeout=20)
            doc = json.loads(r.stdout)
            out = {(f["door"], f["direction"]): (f["buckets"], f["sum_seconds"])
                   for f in doc["forward"]}
            out.update({(f["door"], "send_call"): (f["buckets"], f["sum_seconds"])
                        for f in doc.get("send_call") or []})
            return out
        except (OSError, subprocess.SubprocessError, ValueError, KeyError, TypeError):
            return None

    def ready(self, rec, p):
        """Wait until p's sessions are attached and prepared; False (and rec
        recorded as failed) if they did not."""
        if not self.load.wait_ready(p, self.ready_timeout(rec["n"])):
            rc, doc, etail = self.load.finish(p, 0)
            rec.update(ok=False, rc=rc, vcdload=slim(doc),
                       error="sessions not attached (status %s%s): %s" % (
                           rc, ", %s" % self.vcdload_errors(doc) if doc else "",
                           etail.strip()[-300:]))
            self.record(rec)
            return False
        rec["attach_s"] = round(time.monotonic() - p.bench_t0, 2)
        if rec["path"] in self.DOORS and rec["phase"] != "side-prep":
            rec["res0"] = self.residence(self.daemon(rec["path"]))
        rec["cpu0"] = procstat.cpu_seconds(self.server_roots(rec["path"]))
        rec["sched0"] = procstat.sched(self.server_roots(rec["path"]))
        rec["t0"] = time.monotonic()
        return True

    def end(self, rec, p, timeout):
        """Wait for vcdload (SIGTERM after timeout); the server's CPU since
        begin(), vcdload's report, errors.  Records rec."""
        rc, doc, etail = self.load.finish(p, timeout)
        roots = self.server_roots(rec["path"])
        cpu0, t0 = rec.pop("cpu0"), rec.pop("t0")
        rec["cpu_s"] = round(procstat.cpu_seconds(roots) - cpu0, 3) if roots else None
        # How long the server's threads waited for a CPU in the window
        # (runnable, not running), and over how many timeslices: what the
        # scheduler adds to the residence times, which is not the work.
        s0, s1 = rec.pop("sched0", None), procstat.sched(roots) if roots else None
        if s0 and s1:
            rec["sched"] = {"run_s": round(s1[0] - s0[0], 4), "wait_s": round(s1[1] - s0[1], 4),
                            "slices": s1[2] - s0[2]}
        rec["window_s"] = round(time.monotonic() - t0, 2)
        res0 = rec.pop("res0", None)
        res1 = self.residence(self.daemon(rec["path"])) if res0 else None
        if res0 and res1:
            # The daemon's residence times of this run's chunks: the
            # buckets' growth over the run (2^k us, k = 0..24, then +Inf).
            # residence_s: their sums' growth (seconds).
            door = self.DOORS[rec["path"]]
            keys = [k for k in self.RES_KEYS if (door, k) in res0 and (door, k) in res1]
            rec["residence"] = {k: [b - a for a, b in zip(res0[(door, k)][0], res1[(door, k)][0])]
                                for k in keys}
            rec["residence_s"] = {k: round(res1[(door, k)][1] - res0[(door, k)][1], 6)
                                  for k in keys}
        rec.update(rc=rc, vcdload=slim(doc))
        rec["wall_s"] = round(time.monotonic() - p.bench_t0, 1)
        self.costs[(rec["phase"], rec["path"], rec["n"])] = rec["wall_s"]
        bad = self.vcdload_errors(doc)
        if doc is None:
            rec["error"] = "vcdload status %s, no JSON: %s" % (rc, etail.strip()[-300:])
        elif bad:
            rec["error"] = "vcdload status %s, counted %s" % (rc, bad)
        rec["ok"] = "error" not in rec
        self.record(rec)
        return rec

    def run_load(self, phase, path, n, test, secs, rep=0, during=None, sink_cmd=None):
        """One vcdload run; during(p, rec, roots) runs once every session is
        ready (sampling the server); the server's CPU is taken around it."""
        rec, p = self.begin(phase, path, n, test, secs, rep, sink_cmd)
        if p is None:
            return rec
        if during:
            during(p, rec, self.server_roots(path))
        return self.end(rec, p, secs + 60 + 0.2 * rec["n"])

    @staticmethod
    def vcdload_errors(doc):
        """What vcdload counted as going wrong ({} if nothing)."""
        if not isinstance(doc, dict):
            return {"no_json": 1}
        bad = {k: v for k, v in (doc.get("errors") or {}).items() if v}
        if doc.get("ok") is False and not bad:
            bad["not_ok"] = 1
        if doc.get("failed"):
            bad["failed_sessions"] = doc["failed"]
        return bad

    # ---------------------------------------------------------- side by side

    def side_by_side(self, kind, rep):
        """The floor and virtconsoled's paths at the same time, on disjoint
        consoles spread over the same guests: the machine's drifting speed
        then hits every path alike, and their ratios are robust.
          echo-1    one session per path, each on a guest of its own;
          echo-max  the most sessions of the profile in all, shared by the
                    floor, vcd-ws and vcd-wss (the unix door serves only
                    the serial ports);
          tput      the serial port of every guest, shared round robin by
                    the floor and the three vcd paths, every guest printing.
        One virtconsoled serves all three front doors, as in a deployment.
        With --prev-vcd, the previous build's daemon runs beside it and its
        doors join each kind, each next to the same door of the current
        build (vcd-unix, prev-unix, vcd-ws...: tput keeps the first paths
        that have a guest each, the pairs whole)."""
        prof = self.prof
        # Each door of the current build beside the previous build's.
        vcd = self.door_pairs()
        if kind == "echo-1":
            paths = ["floor"] + vcd
            # A guest each when there are enough: serial ports first, and
            # the first to the unix doors, which serve no other console.
            cons = self.targets("floor", len(paths))
            paths.sort(key=lambda p: p not in FIRST_CONSOLE_ONLY)
        elif kind == "echo-max":
            paths = ["floor"] + [p for p in vcd if p not in FIRST_CONSOLE_ONLY]
            cons = self.targets("floor", max(prof["echo_counts"]))
        else:
            paths = (["floor"] + vcd)[:len(self.names)]
            cons = [(g, "serial0") for g in self.names]
        if kind == "echo-1":
            alloc = {p: [cons[i]] for i, p in enumerate(paths)}
        else:
            alloc = {p: cons[i::len(paths)] for i, p in enumerate(paths)}
        total = sum(len(v) for v in alloc.values())
        group = "%s rep %d" % (kind, rep)
        self.start_servers("vcd-ws")
        self.start_prev_beside(paths)
        log("side by side %s: %s" % (group, ", ".join("%s x%d" % (p, len(alloc[p])) for p in paths)))
        if kind == "tput":
            test, secs = "sink", prof["agg_secs"]
            extra = {"sink_cmd": "timeout %d yes 0123456789abcdef" % secs}
        else:
            test, secs = "echo", prof["side_secs"]
            extra = {"rate": min(prof["echo_rate"], prof["echo_total_rate"] / float(total))}
        t_side = time.monotonic()
        extra["extra"] = ()
        if test == "sink":
            # The same for the prompt the sink command is typed at: guests
            # that printed flat out in the run before take long to answer.
            prep, proc = self.launch("side-prep", "floor", [c for p in paths for c in alloc[p]],
                                     "idle", 1, rep)
            prep["group"] = group
            if self.ready(prep, proc):
                self.end(prep, proc, 60)
            extra["extra"] = ("--prepare", "none", "--settle", "2")
        elif test == "echo":
            # vcdload's own preparation of a tty takes seconds, and longer
            # on some paths: the windows would not line up.  So the ttys
            # are prepared first, all at once, directly (and left in the
            # echo loop), and the measured runs skip it: they start within
            # the two seconds they wait for after connecting.
            prep, proc = self.launch("side-prep", "floor", [c for p in paths for c in alloc[p]],
                                     "echo", 1, rep, rate=1, extra=("--no-restore",))
            prep["group"] = group
            if self.ready(prep, proc):
                self.end(prep, proc, 60)
            extra["extra"] = ("--prepare", "none", "--settle", "2", "--no-restore")
        runs = []
        for p in paths:
            rec, proc = self.launch("side-" + kind.split("-")[0], p, alloc[p], test, secs, rep,
                                    **extra)
            rec["group"], rec["total"] = group, total
            runs.append((rec, proc))
        runs = [(rec, proc) for rec, proc in runs if self.ready(rec, proc)]
        if runs:
            t0s = [rec["t0"] for rec, _ in runs]
            runs[0][0]["start_skew_s"] = round(max(t0s) - min(t0s), 2)
        mem = None
        if test == "echo":
            time.sleep(secs * 0.6)
            mem = {k: procstat.memory(d.roots()) for k, d in (("vcd", self.vcd), ("prev", self.prev))
                   if d and d.roots()}
        for rec, proc in runs:
            if rec["path"] != "floor":
                rec["server_shared"] = True     # one daemon for the three doors
                rec["mem_active"] = (mem or {}).get(rec["path"].split("-")[0])
            self.end(rec, proc, secs + 60 + 0.2 * rec["n"])
        if self.prev and self.prev.roots():
            self.prev.stop()        # the runs alone keep one server kind up
        self.costs[("side", kind)] = time.monotonic() - t_side

    # ---------------------------------------------------------- time

    def elapsed(self):
        return time.monotonic() - T0

    def skip(self, what):
        log("skipped (time budget): %s" % what)
        self.res.setdefault("skipped", []).append(what)

    # ---------------------------------------------------------- phases

    def expected_procs(self, path, n):
        """How many server processes n attached sessions make: one forked
        per session by oldconsole.py, and one more by websockify."""
        return {"old-unix": 1 + n, "old-ws": 2 + 2 * n}.get(path, 1)

    def parts(self, path):
        """{path: roots} measured in one phase_memory(path): the old-ws run
        also measures old-unix, whose processes (oldconsole.py and its
        children) are the same whether websockify or a unix client is in
        front: one attach of 200 sessions through the old design less."""
        out = {path: lambda: self.server_roots(path)}
        if path == "old-ws" and "old-unix" in self.paths:
            out["old-unix"] = self.old.roots
        return out

    def phase_memory(self, path):
        """Fresh server; its memory with no session, then with N idle
        sessions for each count (added to those already held: vcdload
        --idle, after each session's shell prompt came back through the
        path); its CPU over a window with the most."""
        prof = self.prof
        self.start_servers(path)
        time.sleep(1)
        parts = self.parts(path)
        mem = {}
        for name, roots in parts.items():
            mem[name] = {"base": procstat.memory(roots()), "idle": {}}
            if name != path:
                mem[name]["measured_in"] = path
            self.res["memory"][name] = mem[name]
        counts = sorted({min(c, self.capacity(path)) for c in prof["mem_counts"]})
        held, have = [], 0
        for c in counts:
            log("memory %s: %d idle" % (path, c))
            rec, p = self.begin("idle", path, c, "idle", 3600, first=have)
            if p is None:
                break
            held.append((rec, p))
            have = c
            # A unix client is "connected" once queued in the listen
            # backlog: wait for the processes of the old design to exist.
            want = self.expected_procs(path, c)
            if not servers.wait_until(lambda: len(procstat.live(procstat.tree(
                    self.server_roots(path)))) >= want, 30, 0.5):
                rec["procs_short"] = "fewer than %d server processes after 30 s" % want
            time.sleep(1)
            for name, roots in parts.items():
                mem[name]["idle"][str(c)] = procstat.memory(roots())
            rec["mem"] = mem[path]["idle"][str(c)]
            if (rec["attach_s"] > prof["mem_step_max_s"] or rec.get("procs_short")) \
                    and c != counts[-1]:
                # The old design on a busy 2-core machine: more would take
                # minutes, and fail.
                why = "%d more sessions took %.0f s to attach%s: no more added" % (
                    rec["n"], rec["attach_s"],
                    " (%s)" % rec["procs_short"] if rec.get("procs_short") else "")
                for name in parts:
                    mem[name]["stopped"] = why
                log("memory %s: %s" % (path, why))
                break
        if held:
            time.sleep(2)       # the last sessions' start-up is not idling
            cpu0 = {name: procstat.cpu_seconds(roots()) for name, roots in parts.items()}
            l0, t0 = procstat.loadavg()[0], time.monotonic()
            time.sleep(prof["idle_cpu_secs"])
            dt = time.monotonic() - t0
            for name, roots in parts.items():
                cpu = procstat.cpu_seconds(roots()) - cpu0[name]
                self.res["idle_cpu"][name] = {
                    "n": have, "window_s": round(dt, 2), "cpu_s": round(cpu, 3),
                    "cpu_pct": round(100 * cpu / dt, 3), "load1": l0}
                if name != path:
                    self.res["idle_cpu"][name]["measured_in"] = path
        for rec, p in reversed(held):
            self.end(rec, p, 0)

    def phase_conn(self, path):
        """What one guest connection costs, apart from the sessions: since
        each guest's consoles are opened over a libvirt connection of its
        own (with its thread), a session's memory depends on whether its
        guest already had one.  A fresh server; A: k idle sessions on every
        console of one guest (one connection); B: m more, one on each of m
        other guests (m connections).  With a connection costing C and a
        session S: A = C + kS and B = m(C + S), so S = (A - B/m) / (k - 1)
        and C = B/m - S.  RSS growth, KiB.  res["conn"][path]."""
        prof = self.prof
        al = aliases(prof["consoles"])
        k, m = len(al), min(len(self.names) - 1, len(al))
        if k < 2 or m < 1:
            log("guest connection %s: needs 2 consoles and 2 guests: skipped" % path)
            return
        self.start_servers(path)
        time.sleep(1)
        roots = self.server_roots(path)
        out = {"k": k, "m": m, "base": procstat.memory(roots)}
        self.res.setdefault("conn", {})[path] = out
        held = []
        for step, tg in (("one_guest", [(self.names[0], a) for a in al]),
                         ("other_guests", [(g, al[0]) for g in self.names[1:1 + m]])):
            log("guest connection %s: %s, %d idle" % (path, step, len(tg)))
            rec, p = self.launch("conn", path, tg, "idle", 3600)
            if not self.ready(rec, p):
                out["error"] = "%s: %s" % (step, rec.get("error"))
                break
            held.append((rec, p))
            time.sleep(1)
            out[step] = procstat.memory(roots)
        if "other_guests" in out:
            base, one, other = (out[x]["rss_kib"] for x in ("base", "one_guest", "other_guests"))
            a, b = one - base, other - one
            out["session_kib"] = round((a - b / m) / (k - 1), 1)
            out["conn_kib"] = round(b / m - out["session_kib"], 1)
            log("guest connection %s: %.1f KiB a connection, %.1f KiB a session"
                % (path, out["conn_kib"], out["session_kib"]))
        for rec, p in reversed(held):
            self.end(rec, p, 0)

    def echo_run(self, path, n, rep):
        prof = self.prof
        if path.startswith(("vcd-", "prev-")):
            self.start_servers(path)
        else:
            self.ensure_servers(path)
        secs = prof["echo_secs_one"] if n == 1 else prof["echo_secs"]
        log("echo rep %d: %s x%d" % (rep, path, n))
        time.sleep(0.5)
        before = procstat.memory(self.server_roots(path)) if path != "floor" else None

        def sample(p, rec, roots):
            rec["mem_before"] = before
            time.sleep(secs * 0.6)
            if roots:
                rec["mem_active"] = procstat.memory(roots)
        self.run_load("echo", path, n, "echo", secs, rep=rep, during=sample)

    def phase_echo(self, rep, counts, reserve, repeat=False):
        """Every count, every path in turn (the order rotates with the
        count and the repetition).  A count is skipped whole when the run
        is late (its ratios need its floor).  virtconsoled is restarted
        before each of its runs, so that its memory before and during the
        run tell the growth per active session; the old design's
        per-session processes are new in each run anyway."""
        for n in counts:
            paths = [p for p in self.rotated(rep + n, repeat)
                     if n <= self.capacity(p)          # the unix door: one per guest
                     and not (p.startswith("old-") and n > self.prof["old_max"])]
            cost = sum(self.costs.get(("echo", p, n), 15) for p in paths)
            if not self.fits(cost, reserve):
                self.skip("echo rep %d x%d (%s)" % (rep, n, ", ".join(paths)))
                continue
            for path in paths:
                self.echo_run(path, n, rep)

    def rotated(self, k, repeat=False):
        """The paths, starting at the k-th; for a repetition, the floor and
        virtconsoled only."""
        paths = [p for p in self.paths if not (repeat and p.startswith("old-"))]
        k %= len(paths)
        return paths[k:] + paths[:k]

    def tput_run(self, phase, path, guests, secs, rep):
        """A session on the serial port of each guest; vcdload types
        `timeout SECS yes ...` there and counts what comes back for SECS:
        each guest prints as fast as it can, or as fast as the path lets it
        (the guest blocks when the pty is full).  The server's CPU is taken
        over the window, and virtconsoled's allocations (alloc_window)."""
        self.ensure_servers(path)
        log("throughput rep %d: %s, %d console(s)" % (rep, path, len(guests)))
        return self.run_load(phase, path, len(guests), "sink", secs, rep=rep,
                             sink_cmd="timeout %d yes 0123456789abcdef" % secs,
                             during=self.alloc_window if path.startswith("vcd-") else None)

    # ---------------------------------------------------------- allocations

    def setup_malloccount(self):
        """Count the bench daemons' allocations (bench/malloccount.so
        preloaded, each daemon's counters in a file of ours: the current
        build's and, with --prev-vcd, the previous build's); what the
        results say about it: {so, file}, or None when not counting."""
        so = self.args.malloccount
        if not so:
            return None
        if malloccount.sanitized(os.path.join(os.path.dirname(ctl_binary()), "virtconsoled")):
            log("malloccount: not with a sanitizer build of the daemon")
            return None
        self.vcd.count_allocations(so, os.path.join(self.tmp, "malloccount"))
        if self.prev:
            self.prev.count_allocations(so, os.path.join(self.tmp, "malloccount.prev"))
        return {"so": so, "file": self.vcd.mc_file}

    def alloc_window(self, p, rec, roots, share=0.85):
        """During a throughput run of a door: the daemon's allocations from
        the moment every session is ready (just after ready() read the
        residence histograms) to `share` of the window, against the chunks
        that door forwarded meanwhile (the histograms' counts).  Session
        set-up and teardown are outside: what is left is the hot path
        (with libvirt's client inside it).  rec["allocs"]."""
        srv = self.daemon(rec["path"])
        mc = srv.mc_file
        if not mc or not rec.get("res0") or not srv.roots():
            return
        a = malloccount.read(mc)
        if not a or a["pid"] != srv.d.pid:
            rec["allocs"] = {"error": "no counters of the daemon (pid %s) in %s"
                             % (srv.d.pid, mc)}
            return
        t0 = time.monotonic()
        time.sleep(rec["secs"] * share)
        b = malloccount.read(mc)
        res1 = self.residence(srv)
        d = malloccount.delta(a, b)
        if d is None or not res1:
            rec["allocs"] = {"error": "the daemon restarted or did not answer stats"}
            return
        door = self.DOORS[rec["path"]]
        d["chunks"] = {dr: sum(res1[(door, dr)][0]) - sum(rec["res0"][(door, dr)][0])
                       for dr in ("to_client", "to_guest")}
        d["window_s"] = round(time.monotonic() - t0, 2)
        rec["allocs"] = d

    def phase_alloc(self):
        """Allocations per chunk over alloc_bytes through each door, the
        previous build's too (issue 22: an LD_PRELOAD malloc counter over
        10 MB per door).  Every guest's serial port prints its share with
        `yes ... | head -c N`, which ends by itself however slowly a
        starved guest runs (a `timeout` in the guest counts guest seconds
        and outlives the window), and the window, alloc_secs, is sized for
        the slowest: allocations are counted over all of it but its last
        5 %, so that every byte is in the count and the idle tail costs
        nothing but the timers'."""
        if not self.vcd.mc_file:
            log("allocations: no malloc counter (bench/malloccount.so): skipped")
            return
        prof = self.prof
        per_guest = -(-prof["alloc_bytes"] // len(self.names))
        cmd = "yes 0123456789abcdef | head -c %d" % per_guest
        for path in [p for p in self.door_pairs() if self.daemon(p).mc_file]:
            self.ensure_servers(path)
            log("allocations: %s, %d console(s), %d bytes each" % (path, len(self.names),
                                                                    per_guest))
            self.run_load("alloc", path, len(self.names), "sink", prof["alloc_secs"],
                          sink_cmd=cmd,
                          during=lambda p, rec, roots: self.alloc_window(p, rec, roots, 0.95))

    def phase_tput(self, phase, rep, repeat=False):
        prof = self.prof
        guests = self.names if phase == "tput-all" else self.names[:1]
        secs = prof["agg_secs"] if phase == "tput-all" else prof["tput_secs"]
        for path in self.rotated(rep + (3 if phase == "tput-all" else 0), repeat):
            self.tput_run(phase, path, guests, secs, rep)

    # ---------------------------------------------------------- capture

    def history_bytes(self, d, guest, alias):
        """Bytes of output the daemon keeps for one console (`virtconsolectl
        history --raw`: the output on stdout, the lines telling losses and
        gaps on stderr); None if it has no history (yet)."""
        try:
            r = subprocess.run([ctl_binary(), "-f", d.conf_path, "history", "--raw",
                                guest, alias], stdin=subprocess.DEVNULL,
                               capture_output=True, timeout=60)
        except (OSError, subprocess.SubprocessError):
            return None
        return len(r.stdout) if r.returncode == 0 else None

    def phase_capture(self):
        """A virtconsoled of its own with capture = always and small history
        limits, no other server running: (1) every console of every guest
        captured, nobody attached: its memory (the baseline; the guests
        booted before it started, so their histories hold next to nothing);
        then again after a round of sessions, one per console, that type
        `:` (the baseline: what sessions leave in the allocator is in it);
        (2) each console prints more than history + history_head (a session
        per console through the ws door types `yes ... | head -c N` and
        leaves at once; the capture keeps reading), until every console's
        history is full; its memory against the bound consoles x (history +
        history_head) x history_runs; (3) its CPU over a window with every
        console captured and nothing printing."""
        prof = self.prof
        self.stop_servers()
        h, hh = size_bytes(prof["cap_history"]), size_bytes(prof["cap_history_head"])
        runs = int(prof["cap_history_runs"])
        cons = [(g, a) for a in aliases(prof["consoles"]) for g in self.names]
        cap = {"guests": len(self.names), "consoles": len(cons),
               "history": prof["cap_history"], "history_head": prof["cap_history_head"],
               "history_runs": runs, "history_bytes": h, "history_head_bytes": hh,
               "print_bytes": prof["cap_print"],
               "bound_kib": len(cons) * (h + hh) * runs / 1024.0,
               "started": datetime.datetime.now(datetime.timezone.utc).isoformat(
                   timespec="seconds"),
               "load_start": procstat.loadavg()}
        self.res["capture"] = cap
        tmp = os.path.join(self.tmp, "capture")
        os.makedirs(tmp, exist_ok=True)
        vcd = servers.Vcd(self.uri, tmp, log)
        d = vcd.d
        d.conf.update({"capture": "always", "history": prof["cap_history"],
                       "history_head": prof["cap_history_head"],
                       "history_runs": runs})
        cap["conf"] = {k: d.conf[k] for k in ("capture", "history", "history_head",
                                               "history_runs", "log_level", "idle_timeout")}
        cap_re = re.compile(r"console \d+ guest=(\S+) dev=(\S+): captured")
        want = set(cons)
        try:
            t0 = time.monotonic()
            vcd.start()
            root = vcd.roots()

            def captured():
                got = set()
                for ln in d.log().splitlines():
                    m = cap_re.search(ln)
                    if m and (m.group(1), m.group(2)) in want:
                        got.add((m.group(1), m.group(2)))
                return got
            ok = servers.wait_until(lambda: captured() >= want, 120, 0.5)
            cap["captured"] = len(captured())
            cap["captured_s"] = round(time.monotonic() - t0, 1)
            log("capture: %d of %d consoles captured in %.1f s"
                % (cap["captured"], len(cons), cap["captured_s"]))
            if not ok:
                raise RuntimeError("capture: only %d of %d consoles captured after 120 s"
                                   % (cap["captured"], len(cons)))
            settle = prof["cap_settle_s"]
            time.sleep(settle)
            cap["captured_rss"] = procstat.memory(root)
            tg = [{"url": "ws://127.0.0.1:%d/console/%s/%s" % (vcd.port, g, a)}
                  for g, a in cons]

            def type_everywhere(cmd, what):
                """One short session per console through the ws door: it
                types cmd at the prompt and leaves (--sink 1); the capture
                keeps the console.  {rc, ready, errors, s}."""
                t = time.monotonic()
                p = self.load.start("vcd-ws", tg, "sink", 1, cmd, extra=("--no-restore",))
                rc, doc, etail = self.load.finish(p, 150 + 0.2 * len(cons))
                out = {"cmd": cmd, "rc": rc, "ready": (doc or {}).get("ready"),
                       "errors": self.vcdload_errors(doc), "s": round(time.monotonic() - t, 1)}
                if out["ready"] != len(cons):
                    raise RuntimeError("capture: %s: typed on %s of %d consoles (vcdload "
                                       "status %s): %s" % (what, out["ready"], len(cons), rc,
                                                           etail[-300:]))
                return out

            # The baseline: after one round of sessions that print nothing
            # (`:`), so that what sessions leave behind in the allocator
            # (freed, not returned) is in it, not counted as history.
            cap["warmup"] = type_everywhere(":", "warm-up")
            time.sleep(settle)
            cap["kept_before"] = sum(self.history_bytes(d, g, a) or 0 for g, a in cons)
            cap["baseline"] = procstat.memory(root)
            log("capture: RSS %d KiB captured, %d KiB after a round of sessions (the "
                "baseline), %d bytes kept" % (cap["captured_rss"]["rss_kib"],
                                              cap["baseline"]["rss_kib"], cap["kept_before"]))

            # Every console prints more than its history keeps.
            cmd = "yes 0123456789abcdef | head -c %d" % prof["cap_print"]
            cap["print_cmd"] = cmd
            t1 = time.monotonic()
            cap["typed"] = type_everywhere(cmd, "print")
            log("capture: typed on %d consoles in %.1f s; waiting for full histories"
                % (len(cons), cap["typed"]["s"]))

            # Until every history holds history + history_head bytes.
            left, kept = set(cons), {}
            deadline = time.monotonic() + prof["cap_full_timeout_s"]
            while left and time.monotonic() < deadline:
                for g, a in sorted(left):
                    n = self.history_bytes(d, g, a)
                    if n is not None:
                        kept[(g, a)] = n
                    if n is not None and n >= h + hh:
                        left.discard((g, a))
                if left:
                    time.sleep(2)
            cap["full_s"] = round(time.monotonic() - t1, 1)
            cap["full"] = len(cons) - len(left)
            cap["not_full"] = ["%s:%s=%s" % (g, a, kept.get((g, a))) for g, a in sorted(left)][:20]
            log("capture: %d of %d histories full after %.1f s"
                % (cap["full"], len(cons), cap["full_s"]))
            time.sleep(settle)  # the last output's buffers settle
            cap["kept"] = sum(self.history_bytes(d, g, a) or 0 for g, a in cons)
            cap["measured"] = procstat.memory(root)
            grow = cap["measured"]["rss_kib"] - cap["baseline"]["rss_kib"]
            cap["growth_kib"] = grow
            cap["growth_over_bound"] = round(grow / cap["bound_kib"], 3)
            cap["measured_over_bound"] = round(cap["measured"]["rss_kib"] / cap["bound_kib"], 3)
            log("capture: RSS %d KiB (baseline %d), bound %.0f KiB: growth / bound %.3f"
                % (cap["measured"]["rss_kib"], cap["baseline"]["rss_kib"], cap["bound_kib"],
                   cap["growth_over_bound"]))

            # Idle: every console captured, nothing printing, nobody attached.
            time.sleep(min(2, settle))
            secs = prof["cap_idle_cpu_secs"]
            c0, l0, t2 = procstat.cpu_seconds(root), procstat.loadavg()[0], time.monotonic()
            time.sleep(secs)
            dt = time.monotonic() - t2
            cpu = procstat.cpu_seconds(root) - c0
            cap["idle_cpu"] = {"window_s": round(dt, 2), "cpu_s": round(cpu, 3),
                               "cpu_pct": round(100 * cpu / dt, 3), "load1": l0,
                               "load1_end": procstat.loadavg()[0]}
            cap["after_idle"] = procstat.memory(root)
            log("capture: idle CPU %.3f s over %.1f s (%.2f%% of one core)"
                % (cpu, dt, 100 * cpu / dt))
            if left:
                raise RuntimeError("capture: %d histories not full after %d s: %s" % (
                    len(left), prof["cap_full_timeout_s"], ", ".join(cap["not_full"][:5])))
            cap["ok"] = True
        except Exception as e:
            cap["ok"] = False
            cap["error"] = "%s: %s" % (type(e).__name__, e)
            self.errors.append("capture vcd: %s" % cap["error"])
            log("  ERROR %s" % cap["error"])
        finally:
            cap["log_errors"] = vcd.errors()[:20]
            if vcd.roots():
                vcd.stop()
            cap["finished"] = datetime.datetime.now(datetime.timezone.utc).isoformat(
                timespec="seconds")
            cap["load_end"] = procstat.loadavg()
            self.checkpoint()

    # ---------------------------------------------------------- the run

    def checkpoint(self):
        """Write what we have so far (a run cut short keeps its figures)."""
        out = self.args.out
        tmp = out + ".tmp"
        with open(tmp, "w") as f:
            json.dump(self.res, f, indent=1, sort_keys=True)
            f.write("\n")
        os.rename(tmp, out)

    def schedule(self):
        """[(what, function, estimate)]: the steps in order.  A step with an
        estimate (a function giving seconds, or None for "unknown") is a
        repetition: it runs only if the budget leaves it that much plus the
        reserve kept for the required steps after it (the throughput runs
        come last: guests that have printed flat out take long to answer
        again).  Steps without one are required and always run; within the
        first echo pass, whole counts are dropped when the run is late."""
        prof = self.prof
        ph = self.args.phases
        reps = prof["echo_reps"]
        steps = []
        if "capture" in ph:
            # First, alone: its own daemon captures every console.
            steps.append(("capture", self.phase_capture, None))
        if "memory" in ph:
            # Not the floor: it has no server.  old-unix is measured with
            # old-ws when both run (parts()).
            for path in self.paths:
                if path == "floor" or (path == "old-unix" and "old-ws" in self.paths):
                    continue
                steps.append(("memory " + path, lambda p=path: self.phase_memory(p), None))
        if "memory" in ph:
            for path in ("vcd-ws", "prev-ws"):
                if path in self.paths:
                    steps.append(("guest connection " + path,
                                  lambda p=path: self.phase_conn(p), None))
        tput_after = (prof["est_tput_s"] if "tput" in ph else 0) + \
            (prof["est_alloc_s"] if "alloc" in ph else 0)
        side_echo = [k for k in ("echo-1", "echo-max") if "side" in ph]
        if "echo" in ph:
            steps.append(("echo rep 0",
                          lambda: self.phase_echo(0, prof["echo_counts"],
                                                  tput_after + prof["est_side_echo_s"]), None))
        for k in side_echo:
            steps.append(("side by side %s rep 0" % k, lambda k=k: self.side_by_side(k, 0), None))
        # Repetitions of the echo runs, the floor and virtconsoled only
        # (the targets are theirs; the old design is far off either way).
        for rep in range(1, prof["side_reps"]):
            for k in side_echo:
                steps.append(("side by side %s rep %d" % (k, rep),
                              lambda k=k, r=rep: self.side_by_side(k, r),
                              (lambda k=k: self.costs.get(("side", k)), tput_after)))
        if "echo" in ph:
            for rep in range(1, max([int(v) for v in reps.values()] or [1])):
                counts = [n for n in prof["echo_counts"] if int(reps.get(str(n), 1)) > rep]
                steps.append(("echo rep %d" % rep,
                              lambda r=rep, c=counts: self.phase_echo(r, c, tput_after,
                                                                       repeat=True),
                              (lambda: 0, tput_after)))     # it checks count by count
        if "tput" in ph:
            if prof["tput_reps"] > 0:
                steps.append(("tput-one rep 0", lambda: self.phase_tput("tput-one", 0), None))
            for rep in range(prof["agg_reps"]):
                steps.append(("tput-all rep %d" % rep,
                              lambda r=rep: self.phase_tput("tput-all", r), None))
        if "alloc" in ph:
            steps.append(("allocations", self.phase_alloc, None))
        if "side" in ph:
            steps.append(("side by side tput rep 0", lambda: self.side_by_side("tput", 0), None))
            for rep in range(1, prof["side_reps"]):
                steps.append(("side by side tput rep %d" % rep,
                              lambda r=rep: self.side_by_side("tput", r),
                              (lambda: self.costs.get(("side", "tput")), 0)))
        if "tput" in ph:
            for rep in range(1, prof["tput_reps"]):
                steps.append(("tput-one rep %d" % rep,
                              lambda r=rep: self.phase_tput("tput-one", r, repeat=True),
                              (lambda: sum(v for k, v in self.costs.items()
                                           if k[0] == "tput-one" and not k[1].startswith("old-")),
                               0)))
        return steps

    def fits(self, seconds, reserve=0):
        """Whether something that takes seconds (None: unknown, 30 assumed)
        still fits in the budget, keeping reserve seconds."""
        return self.elapsed() + (30 if seconds is None else seconds) <= self.args.budget - reserve

    def run(self):
        a = self.args
        sampler = LoadSampler()
        sampler.start()
        self.res["load_before"] = procstat.loadavg()
        self.res["budget_s"] = a.budget
        self.res["malloccount"] = self.setup_malloccount()
        try:
            log("booting %d guests with %d virtio consoles each"
                % (len(self.names), self.prof["consoles"]))
            if a.reuse_guests and self.guests.running():
                self.res["boot_s"] = None
            else:
                self.res["boot_s"] = round(self.guests.boot(), 1)
            log("guests up in %s s" % self.res["boot_s"])
            for what, fn, est in self.schedule():
                if est is not None and not self.fits(est[0](), est[1]):
                    self.skip(what)
                    continue
                fn()
        except Exception as e:
            import traceback
            self.errors.append("harness: %s: %s" % (type(e).__name__, e))
            log(traceback.format_exc())
        finally:
            for p in list(self.load.live):
                self.load.finish(p, 0)
            self.stop_servers()
            if not a.keep_guests:
                self.guests.cleanup()
            sampler.stopping.set()
            self.res["load"] = sampler.summary()
            self.res["load_after"] = procstat.loadavg()
            self.res["finished"] = datetime.datetime.now(
                datetime.timezone.utc).isoformat(timespec="seconds")
            self.res["wall_s"] = round(time.monotonic() - T0, 1)
            if a.nice is not None:
                self.res["vcd_nice_seen"] = self.vcd.nice_seen
            self.checkpoint()
            if not a.keep_tmp:
                shutil.rmtree(self.tmp, ignore_errors=True)
        # The old design failing under load is a finding, not a failure of
        # the harness; anything else is.
        fatal = [e for e in self.errors if not e.split(" ")[1].startswith("old-")]
        log("done in %.1f s, %d runs, %d errors (%d on the floor or virtconsoled, or "
            "the harness's)" % (self.res["wall_s"], len(self.runs), len(self.errors), len(fatal)))
        return 1 if fatal else 0


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--profile", choices=sorted(PROFILES), default="full")
    ap.add_argument("--out", required=True)
    ap.add_argument("--vcdload", default=os.environ.get("VCDLOAD"))
    ap.add_argument("--oldconsole", default=os.path.join(HERE, "oldconsole.py"))
    ap.add_argument("--prefix", default="bench")
    ap.add_argument("--guests", type=int)
    ap.add_argument("--consoles", type=int)
    ap.add_argument("--paths", help="default: every path (%s; with --prev-vcd also %s)"
                    % (",".join(PATHS), ",".join(PREV_PATHS)))
    ap.add_argument("--prev-vcd", metavar="DIR",
                    help="a previous build of virtconsoled (DIR/virtconsoled): the paths "
                    "prev-unix, prev-ws, prev-wss, measured beside the current build's")
    ap.add_argument("--prev-rev", help="what --prev-vcd was built from (for the report)")
    ap.add_argument("--prev-sha", help="its commit")
    ap.add_argument("--phases",
                    help="which of capture, memory, echo, side (side by side), tput, alloc "
                    "(default: the profile's: all but capture in full, whose filling takes "
                    "minutes: run it alone and merge it, bench/README.md; all in quick)")
    ap.add_argument("--budget", type=float,
                    help="seconds: repetitions (and, when very late, runs) that would "
                    "end after this are skipped (default: the profile's)")
    ap.add_argument("--keep-guests", action="store_true",
                    help="leave the guests running at the end")
    ap.add_argument("--reuse-guests", action="store_true",
                    help="use the guests of an earlier --keep-guests run")
    ap.add_argument("--keep-tmp", action="store_true")
    ap.add_argument("--nice", type=int, metavar="N",
                    help="run this build's virtconsoled (the vcd-* paths; not the previous "
                    "build's, not the capture phase's) at nice N: what the figures become "
                    "when the daemon does not wait behind the guests for a CPU")
    ap.add_argument("--malloccount",
                    help="bench/malloccount.so, preloaded into virtconsoled to count its "
                    "allocations per chunk in the throughput runs (default: beside "
                    "vcdload if built there; '' for none)")
    a = ap.parse_args()
    known = PATHS + (PREV_PATHS if a.prev_vcd else [])
    a.paths = [p for p in (a.paths or ",".join(known)).split(",") if p]
    if a.phases is None:
        a.phases = PROFILES[a.profile]["phases"]
    a.phases = [p for p in a.phases.split(",") if p]
    if not set(a.phases) <= set(PHASES):
        ap.error("--phases: known phases are " + ", ".join(PHASES))
    bad = [p for p in a.paths if p not in known]
    if bad or "floor" not in a.paths:
        ap.error("--paths: known paths are %s (prev-* with --prev-vcd), and floor is needed"
                 % ",".join(known))
    if a.prev_vcd:
        a.prev_vcd = os.path.abspath(a.prev_vcd)
        if not os.access(os.path.join(a.prev_vcd, "virtconsoled"), os.X_OK):
            ap.error("--prev-vcd: no virtconsoled in %s" % a.prev_vcd)
    if not a.vcdload or not os.access(a.vcdload, os.X_OK):
        ap.error("no vcdload binary (--vcdload or VCDLOAD)")
    for v in ("LAB_DIR", "LAB_URI"):
        if not os.environ.get(v):
            ap.error("%s is not set: a running lab is needed" % v)
    prof = dict(PROFILES[a.profile])
    if a.budget is None:
        a.budget = prof["budget_s"]
    if a.guests:
        prof["guests"] = a.guests
    # The throughput runs' reserve grows with the paths (the previous
    # build's three).
    prof["est_tput_s"] = prof["est_tput_s"] * max(len(a.paths), len(PATHS)) // len(PATHS)
    if a.prev_vcd:
        prof["est_alloc_s"] *= 2
    if a.consoles is not None:
        prof["consoles"] = a.consoles
    if prof["consoles"] < 1:
        ap.error("--consoles: at least 1 (console1 drives the throughput runs)")
    if a.malloccount is None:
        so = os.path.join(os.path.dirname(os.path.abspath(a.vcdload)), "malloccount.so")
        a.malloccount = so if os.path.exists(so) else ""
    a.out = os.path.abspath(a.out)
    os.makedirs(os.path.dirname(a.out), exist_ok=True)
    return Bench(a, prof).run()


if __name__ == "__main__":
    sys.exit(main())
