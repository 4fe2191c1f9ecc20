#!/usr/bin/python3
"""bench/report.py: the benchmark report from bench/run.sh's JSON.

usage: report.py RESULTS.json [--merge PART.json] [--md FILE] [--png FILE] [--check]

Writes FILE.md (the tables: absolute figures and ratios to the floor
measured in the same run, the machine, the targets of issue 7 met or
missed) and FILE.png (echo latency and memory against the number of
sessions, per path; needs python3-matplotlib).  A hand-written analysis in
an existing FILE.md, between the lines

    <!-- analysis:begin -->
    <!-- analysis:end -->

is kept when the file is written again.  --check prints what is missing
or insane in the results (every path measured, no errors, RTTs above 0,
sessions attached) and exits 1 if anything is; t-bench.sh uses it.

--merge PART.json copies the capture phase's results from PART.json (a
run of `harness.py --phases capture`) into RESULTS.json, which is written
back, with where they came from (PART's date, machine and load): the other
phases' results are kept as they were, and the report says so.
"""

import argparse
import json
import math
import os
import statistics
import sys

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from servers import PATHS, PREV_PATHS  # noqa: E402

WHAT = {
    "floor": "no daemon: vcdload opens each console itself with "
             "virDomainOpenConsole (the floor)",
    "vcd-unix": "virtconsoled, unix socket per guest (first console only)",
    "vcd-ws": "virtconsoled, WebSocket (ws://, auth=none listener)",
    "vcd-wss": "virtconsoled, WebSocket over TLS (wss://, self-signed "
               "P-256 certificate, verified)",
    "old-unix": "the old design (bench/oldconsole.py): a unix socket per "
                "console, a forked Python process per client",
    "old-ws": "the old design behind Debian's websockify (one websockify, "
              "TokenFile; it forks per connection too)",
    "prev-unix": "the previous build of virtconsoled (%s), unix socket per guest",
    "prev-ws": "the previous build of virtconsoled (%s), WebSocket",
    "prev-wss": "the previous build of virtconsoled (%s), WebSocket over TLS",
}
VCD = ["vcd-unix", "vcd-ws", "vcd-wss"]
# The order of the tables: each door of the previous build (--prev) next
# to the current build's.
ORDER = ["floor", "vcd-unix", "prev-unix", "vcd-ws", "prev-ws", "vcd-wss", "prev-wss",
         "old-unix", "old-ws"]
BEGIN, END = "<!-- analysis:begin -->", "<!-- analysis:end -->"

# The targets of issue 7.
T_P50, T_P99 = 1.05, 1.5          # echo at 200 sessions, ratio to the floor
T_TPUT = 0.90                     # aggregate throughput, ratio to the floor
T_TPUT_CPU = 25                   # % of one core: the daemon's during it
T_IDLE_KIB = 64                   # daemon memory per idle session
T_IDLE_CPU = 1.0                  # % of one core with 200 idle sessions
# Issue 22: the daemon's residence time against the echo round trip.
T_RES50, T_RES99 = 0.02, 0.10      # residence p50 / p99 over echo p50 / p99
# Issue 22: allocations per chunk forwarded, by the daemon's own code.
T_ALLOC = 0.01
# bench/malloccount.so's buckets (the caller's object), grouped: the
# daemon's own code, libvirt's client (it allocates through glib), the rest.
ALLOC_OWN = ("main", "libevent", "openssl")
ALLOC_LV = ("libvirt", "glib")
ALLOC_PHASES = ("tput-one", "tput-all")
# The allocation runs proper (10 MB per door): when a door has any, its
# figure is theirs alone.
ALLOC_RUN = "alloc"


def res_q(buckets, q):
    """The q-quantile (ms) of residence buckets (2^k us, k = 0..24, then
    +Inf): the bound of the bucket holding it, so at most 2x the truth."""
    n = sum(buckets or [])
    if not n:
        return None
    rank, seen = max(1, math.ceil(q * n)), 0
    for k, b in enumerate(buckets):
        seen += b
        if seen >= rank:
            return float("inf") if k >= 25 else (1 << k) / 1000.0
    return None


def med(xs):
    xs = [x for x in xs if x is not None]
    return statistics.median(xs) if xs else None


def fmt(x, nd=1, unit=""):
    if x is None:
        return "n/a"
    if isinstance(x, float):
        s = "%.*f" % (nd, x)
    else:
        s = str(x)
    return s + unit


def ratio(x, nd=2):
    return "n/a" if x is None else "%.*fx" % (nd, x)


class Results:
    def __init__(self, doc):
        self.doc = doc
        self.runs = doc.get("runs", [])
        self.paths = [p for p in ORDER if p in doc.get("config", {}).get("paths", PATHS)]

    def select(self, phase, path=None, n=None):
        return [r for r in self.runs if r["phase"] == phase
                and (path is None or r["path"] == path)
                and (n is None or r["n"] == n) and r.get("ok")]

    # ------------------------------------------------ echo

    def echo_counts(self):
        return sorted({r["n"] for r in self.runs if r["phase"] == "echo"})

    def rate(self, n):
        rs = [r.get("rate") for r in self.runs if r["phase"] == "echo" and r["n"] == n]
        return med(rs)

    @staticmethod
    def rtt(r, q):
        v = ((r.get("vcdload") or {}).get("rtt_us") or {}).get(q)
        return v / 1000.0 if v is not None else None

    def echo(self, path, n):
        """{p50, p99 (ms, median over reps), r50, r99 (ratios to the floor
        of the same rep, median), reps, samples}."""
        runs = self.select("echo", path, n)
        if not runs:
            return None
        out = {"p50": med(self.rtt(r, "p50") for r in runs),
               "p99": med(self.rtt(r, "p99") for r in runs),
               "reps": len(runs),
               "samples": sum(((r.get("vcdload") or {}).get("rtt_us") or {}).get("count") or 0
                              for r in runs)}
        r50, r99 = [], []
        for r in runs:
            fl = [f for f in self.select("echo", "floor", n) if f["rep"] == r["rep"]]
            if fl and path != "floor":
                f50, f99 = self.rtt(fl[0], "p50"), self.rtt(fl[0], "p99")
                if f50 and self.rtt(r, "p50") is not None:
                    r50.append(self.rtt(r, "p50") / f50)
                if f99 and self.rtt(r, "p99") is not None:
                    r99.append(self.rtt(r, "p99") / f99)
        out["r50"], out["r99"] = med(r50), med(r99)
        return out

    # ------------------------------------------------ residence

    def residence(self, runs):
        """The daemon's residence times over these runs (their buckets
        added): {to_guest: (p50, p99, chunks), to_client: (...)} in ms, and
        the runs' echo p50 / p99 (ms, median), or None.  send_call: the
        virStreamSend() calls inside to_guest, (p50, p99, calls), and
        send_share: their time over to_guest's (sums), when recorded."""
        runs = [r for r in runs if r.get("residence")]
        if not runs:
            return None
        out = {}
        for dr in ("to_guest", "to_client", "send_call"):
            if not all(dr in r["residence"] for r in runs):
                continue
            b = [sum(x) for x in zip(*[r["residence"][dr] for r in runs])]
            out[dr] = (res_q(b, 0.5), res_q(b, 0.99), sum(b))
        sums = [r.get("residence_s") or {} for r in runs]
        if all("send_call" in s and "to_guest" in s for s in sums):
            g = sum(s["to_guest"] for s in sums)
            out["send_share"] = sum(s["send_call"] for s in sums) / g if g > 0 else None
            out["to_guest_mean"] = g * 1000.0 / out["to_guest"][2] if out["to_guest"][2] else None
        # The daemon's threads in those runs: CPU per chunk (both ways), and
        # how long each of their timeslices waited for a CPU (schedstat).
        sch = [r.get("sched") for r in runs]
        chunks = sum(out[dr][2] for dr in ("to_guest", "to_client") if dr in out)
        if all(sch) and chunks:
            out["cpu_per_chunk"] = sum(s["run_s"] for s in sch) * 1000.0 / chunks
            n = sum(s["slices"] for s in sch)
            out["wait_per_slice"] = sum(s["wait_s"] for s in sch) * 1000.0 / n if n else None
        out["echo"] = (med(self.rtt(r, "p50") for r in runs), med(self.rtt(r, "p99") for r in runs))
        out["n"], out["reps"] = runs[0]["n"], len(runs)
        return out

    def residence_side(self, kind, path):
        return self.residence([r for r in self.runs if r["phase"] == "side-echo" and r.get("ok")
                               and r["path"] == path
                               and r["group"].rsplit(" rep ", 1)[0] == kind])

    def residence_echo(self, path, n):
        return self.residence([r for r in self.select("echo", path, n) if r.get("ok")])

    # ------------------------------------------------ allocations

    def allocs(self, path):
        """The daemon's allocations over the throughput runs of a door
        (their counts added): {total, chunks, own, lv, other (per chunk),
        by_object (counts), mb (MB the runs moved), runs}, or None."""
        runs = []
        for phases in ((ALLOC_RUN,), ALLOC_PHASES):
            runs = [r for p in phases for r in self.select(p, path)
                    if (r.get("allocs") or {}).get("total") is not None]
            if runs:
                break
        if not runs:
            return None
        by = {}
        for r in runs:
            for k, v in r["allocs"]["by_object"].items():
                by[k] = by.get(k, 0) + v
        chunks = sum(sum(r["allocs"]["chunks"].values()) for r in runs)
        out = {"by_object": by, "chunks": chunks, "total": sum(by.values()), "runs": len(runs),
               "to_client": sum(r["allocs"]["chunks"]["to_client"] for r in runs),
               "mb": sum(((r.get("vcdload") or {}).get("bytes") or {}).get("in_test") or 0
                         for r in runs) / 1e6}
        for key, names in (("own", ALLOC_OWN), ("lv", ALLOC_LV), ("other", None)):
            n = sum(v for k, v in by.items()
                    if (k in names if names else k not in ALLOC_OWN + ALLOC_LV))
            out[key] = n / chunks if chunks else None
        out["per_chunk"] = out["total"] / chunks if chunks else None
        return out

    # ------------------------------------------------ side by side

    def side_groups(self, phase):
        """{group kind: [group name, ...]} of the side-by-side runs."""
        out = {}
        for r in self.runs:
            if r["phase"] == phase:
                kind = r["group"].rsplit(" rep ", 1)[0]
                out.setdefault(kind, [])
                if r["group"] not in out[kind]:
                    out[kind].append(r["group"])
        return out

    def side(self, kind, path):
        """A path in the side-by-side runs of this kind (echo-1, echo-max,
        tput), median over repetitions: {n, total, p50, p99 (ms), r50, r99
        (ratios to the floor of the same run), Bps (per session), rB, reps}."""
        phase = "side-tput" if kind == "tput" else "side-echo"
        runs = [r for r in self.runs if r["phase"] == phase and r.get("ok")
                and r["group"].rsplit(" rep ", 1)[0] == kind]
        mine = [r for r in runs if r["path"] == path]
        if not mine:
            return None
        out = {"n": mine[0]["n"], "total": mine[0]["total"], "reps": len(mine),
               "rate": mine[0].get("rate")}
        r50, r99, rb = [], [], []
        for r in mine:
            fl = [f for f in runs if f["group"] == r["group"] and f["path"] == "floor"]
            f = fl[0] if fl else None
            if phase == "side-echo":
                if f and path != "floor" and self.rtt(f, "p50") and self.rtt(r, "p50") is not None:
                    r50.append(self.rtt(r, "p50") / self.rtt(f, "p50"))
                    r99.append(self.rtt(r, "p99") / self.rtt(f, "p99"))
            elif f and path != "floor" and self.bps(f) and self.bps(r) is not None:
                rb.append((self.bps(r) / r["n"]) / (self.bps(f) / f["n"]))
        out.update(p50=med(self.rtt(r, "p50") for r in mine),
                   p99=med(self.rtt(r, "p99") for r in mine),
                   Bps=med(self.bps(r) / r["n"] for r in mine if self.bps(r) is not None),
                   r50=med(r50), r99=med(r99), rB=med(rb),
                   samples=sum(((r.get("vcdload") or {}).get("rtt_us") or {}).get("count") or 0
                               for r in mine),
                   cpu_pct=med([100.0 * r["cpu_s"] / r["window_s"] for r in mine
                                if r.get("cpu_s") is not None and r.get("window_s")]))
        return out

    def side_pair(self, kind, cur, prev):
        """cur over prev in the side-by-side runs of this kind, run by run
        (the two measured at the same moment), median over the runs:
        {p50, p99, Bps (per console), runs}, or None."""
        phase = "side-tput" if kind == "tput" else "side-echo"
        groups = {}
        for r in self.runs:
            if r["phase"] == phase and r.get("ok") and r["path"] in (cur, prev) \
                    and r["group"].rsplit(" rep ", 1)[0] == kind:
                groups.setdefault(r["group"], {})[r["path"]] = r
        pairs = [(g[cur], g[prev]) for g in groups.values() if len(g) == 2]
        if not pairs:
            return None
        q = {"p50": [], "p99": [], "Bps": []}
        for a, b in pairs:
            for k in ("p50", "p99"):
                if self.rtt(a, k) is not None and self.rtt(b, k):
                    q[k].append(self.rtt(a, k) / self.rtt(b, k))
            if self.bps(a) is not None and self.bps(b):
                q["Bps"].append((self.bps(a) / a["n"]) / (self.bps(b) / b["n"]))
        return dict({k: med(v) for k, v in q.items()}, runs=len(pairs))

    # ------------------------------------------------ throughput

    @staticmethod
    def bps(r):
        return ((r.get("vcdload") or {}).get("throughput") or {}).get("total_Bps")

    @staticmethod
    def cpu_per_mb(r):
        # The bytes of the test window (in_test), which the CPU window
        # (from the sessions' readiness to vcdload's end) covers: not
        # "in", which also holds what came before, such as the history
        # a daemon replays when a session attaches (8 MB over 25 consoles
        # late in a run: the figure fell 4-5x on 2026-12-06).
        b = ((r.get("vcdload") or {}).get("bytes") or {}).get("in_test")
        if r.get("cpu_s") is None or not b:
            return None
        return r["cpu_s"] / (b / 1e6)

    def tput(self, phase, path):
        runs = self.select(phase, path)
        if not runs:
            return None
        rs = []
        for r in runs:
            # The floor of the same repetition (the mean of its runs: the
            # aggregate measures the floor before and after the others).
            fl = [self.bps(f) for f in self.select(phase, "floor")
                  if f["rep"] == r["rep"] and self.bps(f)]
            if fl and path != "floor":
                rs.append(self.bps(r) / statistics.mean(fl))
        cpu_pct = [100.0 * r["cpu_s"] / r["window_s"] for r in runs
                   if r.get("cpu_s") is not None and r.get("window_s")]
        return {"Bps": med(self.bps(r) for r in runs), "ratio": med(rs),
                "cpu_s_per_mb": med(self.cpu_per_mb(r) for r in runs),
                "cpu_pct": med(cpu_pct), "n": runs[0]["n"], "reps": len(runs)}

    # ------------------------------------------------ memory

    @staticmethod
    def metric(path):
        """virtconsoled is one process: its RSS.  The old design is many
        forked processes sharing pages: the sum of their PSS."""
        return "rss_kib" if path in VCD + PREV_PATHS else "pss_kib"

    def mem_base(self, path):
        m = (self.doc.get("memory") or {}).get(path) or {}
        return m.get("base")

    def idle_per_session(self, path):
        """{n: KiB per idle session} (growth over the fresh server)."""
        m = (self.doc.get("memory") or {}).get(path) or {}
        base, k = m.get("base"), self.metric(path)
        if not base:
            return {}
        return {int(n): (v[k] - base[k]) / int(n) for n, v in (m.get("idle") or {}).items()
                if int(n) > 0}

    def active_per_session(self, path):
        """{n: KiB per active session}: memory during an echo run over the
        memory just before it (virtconsoled freshly started), median over
        reps."""
        k = self.metric(path)
        out = {}
        for n in self.echo_counts():
            vals = [(r["mem_active"][k] - r["mem_before"][k]) / n
                    for r in self.select("echo", path, n)
                    if r.get("mem_active") and r.get("mem_before")]
            if vals:
                out[n] = med(vals)
        return out

    def mem_total(self, path, n, kind):
        """KiB of the server at n sessions (kind idle|active), or None."""
        k = self.metric(path)
        if kind == "idle":
            m = (self.doc.get("memory") or {}).get(path) or {}
            v = (m.get("idle") or {}).get(str(n))
            return v[k] if v else None
        vals = [r["mem_active"][k] for r in self.select("echo", path, n) if r.get("mem_active")]
        return med(vals)

    # ------------------------------------------------ capture

    def capture(self):
        return self.doc.get("capture")

    def capture_problems(self):
        c = self.capture()
        if not c:
            return ["capture: no results"]
        bad = []
        if not c.get("ok"):
            bad.append("capture: not ok: %s" % c.get("error"))
        if c.get("captured") != c.get("consoles"):
            bad.append("capture: %s of %s consoles captured" % (c.get("captured"), c.get("consoles")))
        if c.get("full") != c.get("consoles"):
            bad.append("capture: %s of %s histories full (%s)" % (
                c.get("full"), c.get("consoles"), ", ".join(c.get("not_full") or [])))
        for k in ("baseline", "measured"):
            if not (c.get(k) or {}).get("rss_kib"):
                bad.append("capture: no %s RSS" % k)
        if not c.get("bound_kib"):
            bad.append("capture: no bound")
        want = (c.get("consoles") or 0) * ((c.get("history_bytes") or 0)
                                           + (c.get("history_head_bytes") or 0))
        if c.get("kept") is not None and c["kept"] < want:
            bad.append("capture: %d bytes kept, below consoles x (history + history_head) = %d"
                       % (c["kept"], want))
        if (c.get("idle_cpu") or {}).get("cpu_pct") is None:
            bad.append("capture: no idle CPU figure")
        return bad

    # ------------------------------------------------ checks

    def problems(self):
        """What makes these results incomplete or insane."""
        bad = []
        if self.doc.get("fixture"):
            bad.append("this is a fixture, not a measurement")
        for e in self.doc.get("errors") or []:
            bad.append("error: %s" % e)
        # Results from before --phases was recorded had every phase but
        # capture.
        phases = self.doc.get("config", {}).get("phases") or ["memory", "echo", "side", "tput"]
        if "capture" in phases or self.doc.get("capture"):
            bad.extend(self.capture_problems())
        for path in self.paths:
            for phase in ("echo", "tput-all", ALLOC_RUN):
                if phase not in phases and phase.split("-")[0] not in phases:
                    continue
                if phase == ALLOC_RUN and (not self.doc.get("malloccount")
                                           or path not in VCD):
                    continue
                if phase == "tput-all" and self.doc.get("config", {}).get("agg_reps") == 0:
                    continue
                if not self.select(phase, path):
                    bad.append("%s: no successful %s run" % (path, phase))
            for r in self.runs:
                if r["path"] != path:
                    continue
                v = r.get("vcdload") or {}
                tag = "%s %s n=%d" % (r["phase"], path, r["n"])
                if not r.get("ok"):
                    bad.append("%s: not ok: %s" % (tag, r.get("error")))
                    continue
                if v.get("ready") != r["n"] or v.get("attached") != r["n"]:
                    bad.append("%s: %s of %d sessions attached and ready"
                               % (tag, v.get("ready"), r["n"]))
                if r["phase"] in ("echo", "side-echo"):
                    rt = v.get("rtt_us") or {}
                    if not rt.get("count") or not rt.get("p50") or rt["p50"] <= 0:
                        bad.append("%s: no round trip measured (%r)" % (tag, rt))
                    elif not (0 < rt["p50"] <= rt["p99"] <= rt["max"]):
                        bad.append("%s: percentiles out of order (%r)" % (tag, rt))
                    # virtconsoled timed both directions of these echoes.
                    rz = r.get("residence") or {}
                    if path in VCD and not all(sum(rz.get(dr) or []) > 0
                                               for dr in ("to_guest", "to_client", "send_call")):
                        bad.append("%s: no residence time read from the daemon (%r)"
                                   % (tag, {dr: sum(rz.get(dr) or []) for dr in rz}))
                if r["phase"] in ("tput-one", "tput-all", "side-tput") and not self.bps(r):
                    bad.append("%s: no bytes counted" % tag)
                # bench/malloccount.so was preloaded: the allocations per chunk.
                al = r.get("allocs") or {}
                if self.doc.get("malloccount") and path in VCD \
                        and r["phase"] in ALLOC_PHASES + (ALLOC_RUN,) \
                        and (al.get("total") is None or not sum((al.get("chunks") or {}).values())):
                    bad.append("%s: no allocations per chunk counted (%s)"
                               % (tag, al.get("error") or "no chunks"))
                if path != "floor" and r.get("cpu_s") is None:
                    bad.append("%s: no CPU figure for the server" % tag)
            if path != "floor" and "memory" in phases:
                if not self.mem_base(path):
                    bad.append("%s: no base memory" % path)
                if not self.idle_per_session(path):
                    bad.append("%s: no idle memory figure" % path)
                ic = (self.doc.get("idle_cpu") or {}).get(path)
                if not ic or ic.get("cpu_pct") is None:
                    bad.append("%s: no idle CPU figure" % path)
        return bad


# ---------------------------------------------------------------- markdown

def machine_lines(doc):
    m = doc.get("machine") or {}
    cfg = doc.get("config") or {}
    load = doc.get("load") or {}
    cores = m.get("cores") or 1
    lines = [
        "| | |", "|---|---|",
        "| date (UTC) | %s to %s (%s s) |" % (doc.get("started"), doc.get("finished"), doc.get("wall_s")),
        "| profile | %s |" % doc.get("profile"),
        "| CPU | %s, %s cores |" % (m.get("cpu_model"), cores),
        "| memory | %s MiB |" % m.get("mem_total_mib"),
        "| kernel | Linux %s, Debian %s |" % (m.get("kernel"), m.get("debian")),
        "| libvirt | %s (libvirtd %s), QEMU %s (TCG) |" % (m.get("libvirt"), m.get("libvirtd") or m.get("libvirt"), m.get("qemu")),
        "| libevent, OpenSSL | %s, %s |" % (m.get("libevent"), m.get("openssl")),
        "| old design | Python %s, python3-libvirt %s, websockify %s |" % (
            m.get("python3"), m.get("python3_libvirt"), m.get("websockify")),
        "| guests | %s, each with a serial console and %s virtio consoles (%s consoles); booted in %s s |" % (
            cfg.get("guests"), cfg.get("consoles"),
            (cfg.get("guests") or 0) * (1 + (cfg.get("consoles") or 0)), doc.get("boot_s")),
        "| load average (1 min) | mean %s, max %s during the run, on %s cores |" % (
            load.get("mean_1min"), load.get("max_1min"), cores),
    ]
    if doc.get("prev"):
        lines.append("| previous build (prev-*) | %s |" % prev_label(doc))
    if doc.get("vcd_nice") is not None:
        lines.append("| this build's daemon (vcd-*) | at nice %d (`--nice`); every other "
                     "process at its own |" % doc["vcd_nice"])
    note = None
    if (load.get("mean_1min") or 0) > cores:
        note = ("**The machine was shared and busy during this run** (mean 1-minute "
                "load average %s on %s cores, max %s; the run's own guests account "
                "for part of it): absolute times are inflated and noisy, and only "
                "the ratios to the floor measured minutes apart in the same run are "
                "meant to be compared." % (load.get("mean_1min"), cores, load.get("max_1min")))
    return lines, note


def prev_label(doc):
    """The previous build, as the report names it."""
    p = doc.get("prev") or {}
    rev, sha = p.get("rev"), p.get("sha")
    if sha and rev and not sha.startswith(rev):
        return "%s (%s)" % (rev, sha[:12])
    return rev or (sha or "")[:12] or "unknown"


def before_after(res):
    """## Before and after: each door of the current build against the
    same door of the previous one (--prev), as current / previous."""
    doors = [d for d in ("unix", "ws", "wss")
             if "vcd-" + d in res.paths and "prev-" + d in res.paths]
    if not doors:
        return []
    L = []
    A = L.append
    A("## Before and after: this build against %s" % prev_label(res.doc))
    A("")
    A("Each door of this build (vcd-*) against the same door of the previous "
      "build (prev-*, `bench/run.sh --prev REV`), measured in the same run on the "
      "same configuration.  Side by side, the two ran at the same moment on "
      "disjoint consoles, and the ratio is taken run by run: the machine's noise "
      "hits both alike.  Alone, each ran in its turn, and the ratio is that of "
      "their ratios to the floor of the same repetition (their raw figures when "
      "there is none).  Below 1 is better for times, CPU and memory, above 1 for "
      "throughput.")
    A("")
    A("| door | measure | this build | previous | this / previous |")
    A("|---|---|---:|---:|---:|")

    def row(door, what, cur, prev, r, nd=2):
        if cur is None and prev is None:
            return
        A("| %s | %s | %s | %s | %s |" % (door, what, fmt(cur, nd), fmt(prev, nd), ratio(r)))

    def over(a, b):
        return a / b if a is not None and b else None
    for d in doors:
        cur, prv = "vcd-" + d, "prev-" + d
        for kind in ("echo-max", "echo-1"):
            a, b = res.side(kind, cur), res.side(kind, prv)
            pr = res.side_pair(kind, cur, prv)
            if a and b and pr:
                where = "side by side, %s (%d sessions each, %d in all, %d runs)" % (
                    kind, a["n"], a["total"], pr["runs"])
                row(d, "echo p50 ms, " + where, a["p50"], b["p50"], pr["p50"])
                row(d, "echo p99 ms, " + where, a["p99"], b["p99"], pr["p99"])
                break
        ns = [n for n in res.echo_counts() if res.echo(cur, n) and res.echo(prv, n)]
        if ns:
            n = max(ns)
            a, b = res.echo(cur, n), res.echo(prv, n)
            for q in ("50", "99"):
                r = over(a["r" + q], b["r" + q])
                row(d, "echo p%s ms, alone, %d sessions" % (q, n), a["p" + q], b["p" + q],
                    r if r is not None else over(a["p" + q], b["p" + q]))
        a, b, pr = res.side("tput", cur), res.side("tput", prv), res.side_pair("tput", cur, prv)
        if a and b and pr:
            row(d, "KB/s per console, side by side (%d runs)" % pr["runs"],
                a["Bps"] / 1000.0 if a["Bps"] else None,
                b["Bps"] / 1000.0 if b["Bps"] else None, pr["Bps"], 1)
        a, b = res.tput("tput-all", cur), res.tput("tput-all", prv)
        if a and b:
            r = over(a["ratio"], b["ratio"])
            row(d, "KB/s per console, alone, %d consoles" % a["n"],
                a["Bps"] / 1000.0 / a["n"] if a["Bps"] else None,
                b["Bps"] / 1000.0 / b["n"] if b["Bps"] else None,
                r if r is not None else over(a["Bps"], b["Bps"]), 1)
            row(d, "server CPU s per MB, alone, %d consoles" % a["n"],
                a["cpu_s_per_mb"], b["cpu_s_per_mb"], over(a["cpu_s_per_mb"], b["cpu_s_per_mb"]), 3)
        a, b = res.allocs(cur), res.allocs(prv)
        if a and b and a["own"] is not None and b["own"] is not None:
            row(d, "allocations per chunk, own code (%s / %s MB)" % (
                fmt(a["mb"], 1), fmt(b["mb"], 1)), a["own"], b["own"],
                over(a["own"], b["own"]), 3)
        a, b = res.idle_per_session(cur), res.idle_per_session(prv)
        ns = sorted(set(a) & set(b))
        if ns:
            row(d, "KiB per idle session, %d sessions" % ns[-1], a[ns[-1]], b[ns[-1]],
                over(a[ns[-1]], b[ns[-1]]), 1)
    A("")
    return L


def targets(res):
    """[(target, measured text, met: True/False/None, path)].  The echo and
    throughput targets are judged on the side-by-side runs (the floor
    measured at the same moment), when the results have them."""
    out = []
    top = max(res.echo_counts() or [0])
    have_side = bool(res.side_groups("side-echo").get("echo-max"))
    for path in VCD:
        if path not in res.paths:
            continue
        if have_side:
            e = res.side("echo-max", path)
            if e is None:
                one = res.side("echo-1", path)
                txt = "%s: n/a (it serves one console per guest); side by side with one " \
                      "session each: p50 %s, p99 %s" % (
                          path, ratio(one and one["r50"]), ratio(one and one["r99"]))
                out.append(("echo p50 / p99 within %.2fx / %.1fx of the floor at %d sessions"
                            % (T_P50, T_P99, top), txt, None, path))
                continue
            where = "side by side, %d sessions in all (%d on %s), median of %d runs" % (
                e["total"], e["n"], path, e["reps"])
        else:
            ns = [n for n in res.echo_counts() if res.echo(path, n)]
            if not ns:
                continue
            e = res.echo(path, max(ns))
            where = "%d sessions, alone" % max(ns)
            if max(ns) < top:
                e = dict(e, r50=None, r99=None)
                where += "; it serves one console per guest"
        out.append(("echo p50 within %.2fx of the floor at %d sessions" % (T_P50, top),
                    "%s: %s (%s)" % (path, ratio(e["r50"]), where),
                    None if e["r50"] is None else e["r50"] <= T_P50, path))
        out.append(("echo p99 within %.1fx of the floor at %d sessions" % (T_P99, top),
                    "%s: %s (%s)" % (path, ratio(e["r99"]), where),
                    None if e["r99"] is None else e["r99"] <= T_P99, path))
    for path in VCD:
        t = res.side("tput", path)
        a = res.tput("tput-all", path)
        if t and a:
            # The daemon is one thread: if it were what limits the guests,
            # it would be near a whole core.
            ok = None
            if t["rB"] is not None and a.get("cpu_pct") is not None:
                ok = t["rB"] >= T_TPUT and a["cpu_pct"] <= T_TPUT_CPU
            out.append(("throughput limited by the guests (per console >= %.0f%% of the floor's "
                        "side by side, and the daemon far from a whole core: <= %d%%)"
                        % (100 * T_TPUT, T_TPUT_CPU),
                        "%s: %s of the floor's per console side by side over %d consoles "
                        "(median of %d runs); alone over %s consoles: %s of the floor's, the "
                        "daemon using %s%% of one core" % (
                            path, ratio(t["rB"]), t["total"], t["reps"], a["n"],
                            ratio(a["ratio"]), fmt(a["cpu_pct"], 1)),
                        ok, path))
        elif a:
            out.append(("aggregate throughput limited by the guests (>= %.0f%% of the floor's)"
                        % (100 * T_TPUT),
                        "%s: %s of the floor, %s KB/s over %d consoles; the daemon used %s%% of "
                        "a core" % (path, ratio(a["ratio"]),
                                    fmt(a["Bps"] / 1000.0 if a["Bps"] else None, 1),
                                    a["n"], fmt(a["cpu_pct"], 1)),
                        None if a["ratio"] is None else a["ratio"] >= T_TPUT, path))
    for path in VCD:
        ips = res.idle_per_session(path)
        if ips:
            n = max(ips)
            out.append(("at most %d KiB of daemon memory per idle session" % T_IDLE_KIB,
                        "%s: %s KiB per session at %d idle sessions (RSS growth)" % (path, fmt(ips[n], 1), n),
                        ips[n] <= T_IDLE_KIB, path))
    for path in VCD:
        ic = (res.doc.get("idle_cpu") or {}).get(path)
        if ic and ic.get("cpu_pct") is not None:
            out.append(("~0 CPU with idle sessions (<= %.1f%% of one core)" % T_IDLE_CPU,
                        "%s: %s%% of one core with %d idle sessions over %s s" % (
                            path, fmt(ic["cpu_pct"], 2), ic["n"], ic["window_s"]),
                        ic["cpu_pct"] <= T_IDLE_CPU, path))
    return out



# Issue 22's targets (besides residence, in targets()): repetitions, the
# throughput ratio, CPU per MB against the unix door, the captured
# consoles' idle CPU, and idle memory against the run of 2026-12-04.
T22_REPS = 3                     # side-by-side repetitions the medians need
T22_TPUT = 0.95                  # per-console throughput side by side
T22_CPU_MB = {"vcd-wss": 2.0, "vcd-ws": 1.1}   # CPU per MB / the unix door's
T22_CAP_CPU = 1.0                # % of one core, captured quiet consoles
# KiB per idle session in docs/BENCHMARKS.md of 2026-12-04 (issue 22: "unchanged or better").
T22_IDLE_KIB = {"vcd-unix": 1.9, "vcd-ws": 14.8, "vcd-wss": 44.8}
T22_IDLE_SLACK = 1.10            # RSS growth is page-granular: 10% is noise


def targets22(res):
    """Issue 22's targets: [(target, measured text, met: True/False/None,
    path)].  A median of fewer than T22_REPS runs is not judged (n/a)."""
    out = []
    have_side = bool(res.side_groups("side-echo").get("echo-max"))
    for path in VCD:
        rz = res.residence_side("echo-max", path) if have_side else None
        where = "side by side"
        if rz is None:
            ns = [n for n in res.echo_counts() if res.residence_echo(path, n)]
            rz = res.residence_echo(path, max(ns)) if ns else None
            where = "alone"
        if rz is None or not rz["echo"][0]:
            continue
        e50, e99 = rz["echo"]
        txt, ok = [], True
        for dr in ("to_guest", "to_client"):
            r50, r99, _ = rz[dr]
            if r50 is None:
                ok = None
                txt.append("%s: none timed" % dr)
                continue
            s50, s99 = r50 / e50, r99 / e99
            txt.append("%s p50 %s ms = %.2f%%, p99 %s ms = %.2f%%" % (dr, fmt(r50, 3), 100 * s50,
                                                                     fmt(r99, 3), 100 * s99))
            if dr == "to_guest" and rz.get("send_share") is not None:
                txt[-1] += " (%.0f%% of its time in virStreamSend())" % (100 * rz["send_share"])
            if ok is not None:
                ok = ok and s50 <= T_RES50 and s99 <= T_RES99
        out.append(("daemon residence p50 / p99 <= %d%% / %d%% of the echo p50 / p99, every "
                    "direction, at the most sessions" % (100 * T_RES50, 100 * T_RES99),
                    "%s (%d sessions, %s, echo p50 %s ms, p99 %s ms): %s" % (
                        path, rz["n"], where, fmt(e50, 2), fmt(e99, 2), "; ".join(txt)),
                    ok, path))
    for path in VCD:
        if path not in res.paths:
            continue
        e = res.side("echo-max", path)
        if e is not None and e["r50"] is not None:
            enough = e["reps"] >= T22_REPS
            out.append(("echo p50 / p99 side by side at the most sessions <= %.2fx / %.1fx "
                        "of the floor, median of >= %d runs" % (T_P50, T_P99, T22_REPS),
                        "%s: p50 %s, p99 %s (%d sessions in all, median of %d runs)" % (
                            path, ratio(e["r50"]), ratio(e["r99"]), e["total"], e["reps"]),
                        (e["r50"] <= T_P50 and e["r99"] <= T_P99) if enough else None, path))
        t = res.side("tput", path)
        if t is not None and t["rB"] is not None:
            enough = t["reps"] >= T22_REPS
            out.append(("per-console throughput side by side >= %.2fx of the floor, median of "
                        ">= %d runs" % (T22_TPUT, T22_REPS),
                        "%s: %s over %d consoles (median of %d runs)" % (
                            path, ratio(t["rB"]), t["total"], t["reps"]),
                        t["rB"] >= T22_TPUT if enough else None, path))
    for path in VCD:
        a = res.allocs(path) if path in res.paths else None
        if a and a["chunks"]:
            out.append(("fewer than %s allocations per chunk forwarded by the daemon's own code "
                        "(its executable, libevent, OpenSSL)" % T_ALLOC,
                        "%s: %s (main / libevent / OpenSSL: %s) over %s chunks, %s MB; "
                        "libvirt's client adds %s" % (
                            path, fmt(a["own"], 3), alloc_split(a), a["chunks"],
                            fmt(a["mb"], 2), fmt(a["lv"], 2)),
                        a["own"] < T_ALLOC, path))
    unix = res.tput("tput-all", "vcd-unix")
    for path, lim in sorted(T22_CPU_MB.items()):
        a = res.tput("tput-all", path)
        if not (a and unix and a.get("cpu_s_per_mb") and unix.get("cpu_s_per_mb")):
            continue
        r = a["cpu_s_per_mb"] / unix["cpu_s_per_mb"]
        out.append(("CPU per MB forwarded at %d consoles <= %.1fx the unix door's" % (a["n"], lim),
                    "%s: %s s/MB against vcd-unix %s s/MB = %s" % (
                        path, fmt(a["cpu_s_per_mb"], 3), fmt(unix["cpu_s_per_mb"], 3), ratio(r)),
                    r <= lim, path))
    c = res.capture() or {}
    ic = c.get("idle_cpu") or {}
    if ic.get("cpu_pct") is not None:
        out.append(("idle CPU with %s captured consoles, no clients <= %.1f%% of one core"
                    % (c.get("consoles"), T22_CAP_CPU),
                    "%s%% of one core over %s s" % (fmt(ic["cpu_pct"], 3), ic.get("window_s")),
                    ic["cpu_pct"] <= T22_CAP_CPU, None))
    for path in VCD:
        ips = res.idle_per_session(path)
        if ips and path in T22_IDLE_KIB:
            n = max(ips)
            was = T22_IDLE_KIB[path]
            c = (res.doc.get("conn") or {}).get("vcd-ws") or {}
            out.append(("memory per idle session unchanged or better (2026-12-04: %s KiB; "
                        "within %d%%); a guest connection's cost on its own"
                        % (was, round(100 * (T22_IDLE_SLACK - 1))),
                        "%s: %s KiB per session at %d idle sessions%s" % (
                            path, fmt(ips[n], 1), n,
                            "; a guest connection %s KiB, a session on a guest already "
                            "connected %s KiB (vcd-ws)" % (fmt(c["conn_kib"], 1),
                                                           fmt(c["session_kib"], 1))
                            if c.get("conn_kib") is not None else ""),
                        ips[n] <= was * T22_IDLE_SLACK, path))
    return out


def markdown(res, png_name, analysis):
    doc = res.doc
    L = []
    A = L.append
    A("# Benchmarks")
    A("")
    A("Generated by `bench/report.py` from the JSON that `bench/run.sh` wrote; "
      "only the Analysis section is written by hand.  Issue 7: what one event "
      "loop costs against a direct libvirt console client (the floor) and "
      "against the old design (a forked Python process per client), "
      "measured side by side in one run.")
    A("")
    if doc.get("fixture"):
        A("> **FIXTURE: these numbers are made up to test bench/report.py. "
          "They were not measured.**")
        A("")
    A("## The run")
    A("")
    lines, note = machine_lines(doc)
    L.extend(lines)
    A("")
    if note:
        A(note)
        A("")
    errs = doc.get("errors") or []
    A("Runs: %d; errors: %d.%s" % (len(res.runs), len(errs),
                                    "" if not errs else " " + "; ".join(errs[:5])))
    A("")
    A("| path | what |")
    A("|---|---|")
    for p in res.paths:
        A("| %s | %s |" % (p, WHAT[p] % prev_label(doc) if p in PREV_PATHS else WHAT[p]))
    A("")

    A("## Targets (issue 7)")
    A("")
    A("| target | measured | |")
    A("|---|---|---|")
    for t, m, ok, _ in targets(res):
        A("| %s | %s | %s |" % (t, m, {True: "met", False: "**missed**", None: "n/a"}[ok]))
    A("")
    t22 = targets22(res)
    if t22:
        A("## Targets (issue 22)")
        A("")
        A("What the daemon itself adds (residence, from its own histograms), the "
          "side-by-side ratios as medians of at least %d repetitions, CPU per MB "
          "against the unix door, captured consoles at rest, and idle memory "
          "against the run of 2026-12-04." % T22_REPS)
        A("")
        A("| target | measured | |")
        A("|---|---|---|")
        for t, m, ok, _ in t22:
            A("| %s | %s | %s |" % (t, m, {True: "met", False: "**missed**", None: "n/a"}[ok]))
        A("")
    L.extend(before_after(res))

    side_kinds = [k for k in ("echo-1", "echo-max", "tput")
                  if res.side(k, "floor")]
    if side_kinds:
        A("## Side by side with the floor")
        A("")
        A("The floor and virtconsoled's doors at the same moment, on disjoint "
          "consoles spread over the same guests (one virtconsoled serves the "
          "three doors, as in a deployment%s): whatever the shared machine does "
          "then hits every path alike, so these ratios are the robust ones; "
          "the targets are judged on them.  The runs of each path alone, "
          "below, drift with the machine between runs."
          % ("; the previous build's daemon runs beside it, each of its doors "
             "next to the same door of this build" if doc.get("prev") else ""))
        A("")
        for k in side_kinds:
            if k == "tput":
                A("Throughput, every guest printing on its serial port (`timeout S "
                  "yes`), the ports shared round robin by the paths:")
                A("")
                A("| path | consoles | KB/s per console | / floor | runs |")
                A("|---|---:|---:|---:|---:|")
                for p in res.paths:
                    t = res.side(k, p)
                    if t:
                        A("| %s | %d | %s | %s | %d |" % (
                            p, t["n"], fmt(t["Bps"] / 1000.0 if t["Bps"] else None, 1),
                            "1" if p == "floor" else ratio(t["rB"]), t["reps"]))
            else:
                t0 = res.side(k, "floor")
                A("Echo, %s: %d sessions in all, %s keystrokes per second each:" % (
                    "one session per path, each on a guest of its own" if k == "echo-1"
                    else "%s sharing the consoles" % " and ".join(", ".join(
                        "the floor" if p == "floor" else p for p in res.paths
                        if res.side(k, p)).rsplit(", ", 1)),
                    t0["total"], fmt(t0["rate"], 2)))
                A("")
                A("| path | sessions | p50 ms | p99 ms | p50 / floor | p99 / floor | keystrokes | runs |")
                A("|---|---:|---:|---:|---:|---:|---:|---:|")
                for p in res.paths:
                    t = res.side(k, p)
                    if t:
                        A("| %s | %d | %s | %s | %s | %s | %d | %d |" % (
                            p, t["n"], fmt(t["p50"], 2), fmt(t["p99"], 2),
                            "1" if p == "floor" else ratio(t["r50"]),
                            "1" if p == "floor" else ratio(t["r99"]), t["samples"], t["reps"]))
            A("")

    rows = []
    for kind in ("echo-1", "echo-max"):
        for p in VCD:
            rz = res.residence_side(kind, p)
            if rz:
                rows.append(("side by side, %s" % kind, p, rz))
    for n in res.echo_counts():
        for p in VCD:
            rz = res.residence_echo(p, n)
            if rz:
                rows.append(("alone", p, rz))
    if rows:
        A("## Residence time in the daemon")
        A("")
        A("What virtconsoled itself adds, measured from inside "
          "(`virtconsoled_forward_seconds`, read with `virtconsolectl stats "
          "--json` before and after each run): to_guest from the client read "
          "to the `virStreamSend()` of the packet holding a chunk's last byte, "
          "to_client from the stream read to the write (or `SSL_write()`) "
          "that took its last byte.  A percentile is the upper bound of its "
          "histogram bucket (2^k us): at most twice the truth.  The share is "
          "both directions' residence over the echo round trip of the same "
          "runs; the rest of the round trip is the guest, libvirtd, the "
          "kernel and the client.  Milliseconds.")
        A("")
        A("| runs | path | sessions | to_guest p50 | p99 | to_client p50 | p99 | echo p50 | p99 | "
          "share of p50 | of p99 | chunks in / out |")
        A("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
        for what, p, rz in rows:
            g, c, (e50, e99) = rz["to_guest"], rz["to_client"], rz["echo"]
            sh50 = (g[0] + c[0]) / e50 if None not in (g[0], c[0]) and e50 else None
            sh99 = (g[1] + c[1]) / e99 if None not in (g[1], c[1]) and e99 else None
            A("| %s | %s | %d | %s | %s | %s | %s | %s | %s | %s | %s | %d / %d |" % (
                what, p, rz["n"], fmt(g[0], 3), fmt(g[1], 3), fmt(c[0], 3), fmt(c[1], 3),
                fmt(e50, 2), fmt(e99, 2),
                "%.2f%%" % (100 * sh50) if sh50 is not None else "-",
                "%.2f%%" % (100 * sh99) if sh99 is not None else "-", g[2], c[2]))
        A("")
        split = [(what, p, rz) for what, p, rz in rows if rz.get("send_call")]
        if split:
            A("Where to_guest's time goes: the `virStreamSend()` calls alone "
              "(`virtconsoled_stream_send_seconds`: libvirt's client writing "
              "the packet to its socket, which it takes from the event loop "
              "for the call), and their share of to_guest's total time (the "
              "histograms' sums); the rest is the daemon's own: reading the "
              "client, decoding, queueing, and waiting for the guest's send "
              "window, or for a CPU.  The last two columns tell work from "
              "waiting: the daemon's CPU time per chunk (both directions; "
              "side by side, the daemon serves every door at once), and how "
              "long each of its threads' timeslices waited, runnable, for a "
              "CPU (`/proc/PID/task/TID/schedstat`; n/a in runs without it).  "
              "Milliseconds.")
            A("")
            A("| runs | path | sessions | to_guest p50 | p99 | mean | virStreamSend p50 | p99 | "
              "calls | share of to_guest time | the daemon's own, mean | CPU per chunk | "
              "wait for a CPU per timeslice |")
            A("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
            for what, p, rz in split:
                g, sc, sh, mean = (rz["to_guest"], rz["send_call"], rz.get("send_share"),
                                   rz.get("to_guest_mean"))
                A("| %s | %s | %d | %s | %s | %s | %s | %s | %d | %s | %s | %s | %s |" % (
                    what, p, rz["n"], fmt(g[0], 3), fmt(g[1], 3), fmt(mean, 3),
                    fmt(sc[0], 3), fmt(sc[1], 3), sc[2],
                    "%.1f%%" % (100 * sh) if sh is not None else "-",
                    fmt(mean * (1 - sh), 3) if None not in (mean, sh) else "-",
                    fmt(rz.get("cpu_per_chunk"), 3), fmt(rz.get("wait_per_slice"), 2)))
            A("")

    A("## 1. Keystroke echo round trip")
    A("")
    cfg = doc.get("config") or {}
    A("Each session types one byte, waits for its echo and types the next "
      "at a steady pace (a phase of its own each): %s keystrokes per second "
      "per session, but at most %s per second in all, so that the guests "
      "and libvirtd are not driven into overload (a queue would measure the "
      "machine, not the path).  The guest's tty echoes in its kernel.  "
      "Milliseconds; the ratio is to the floor at the same number of "
      "sessions in the same repetition (median over repetitions)."
      % (cfg.get("echo_rate"), cfg.get("echo_total_rate")))
    A("")
    A("| sessions | keys/s each | path | p50 ms | p99 ms | p50 / floor | p99 / floor | keystrokes | reps |")
    A("|---:|---:|---|---:|---:|---:|---:|---:|---:|")
    for n in res.echo_counts():
        for p in res.paths:
            e = res.echo(p, n)
            if not e:
                continue
            A("| %d | %s | %s | %s | %s | %s | %s | %d | %d |" % (
                n, fmt(res.rate(n), 2), p, fmt(e["p50"], 2), fmt(e["p99"], 2),
                "1" if p == "floor" else ratio(e["r50"]),
                "1" if p == "floor" else ratio(e["r99"]), e["samples"], e["reps"]))
    unix = [p for p in ("vcd-unix", "prev-unix") if p in res.paths]
    if unix:
        A("")
        A("%s stop%s at %s sessions: virtconsoled's unix door serves each "
          "guest's first console only (one socket per guest); its web door "
          "serves every console." % (" and ".join(unix), "" if len(unix) > 1 else "s",
                                     cfg.get("guests")))
    if cfg.get("old_max") and max(res.echo_counts() or [0]) > cfg["old_max"]:
        A("")
        A("The old design's echo runs stop at %d sessions: through it, 200 "
          "sessions take minutes to attach on this machine, and some fail "
          "(its memory and idle CPU are measured at 200, below)." % cfg["old_max"])
    skipped = doc.get("skipped") or []
    if skipped:
        A("")
        A("Skipped for lack of time (the run's budget is %s s; repetitions "
          "come last): %s." % (doc.get("budget_s"), "; ".join(skipped)))
    A("")

    A("## 2. Throughput, guest to client")
    A("")
    A("Each session's guest runs `timeout S yes 0123456789abcdef` on the "
      "session's console (the serial port) and the client counts what "
      "arrives for S seconds.  KB/s is 1000 bytes per second of console "
      "bytes received; server CPU is utime+stime of its processes "
      "(`/proc/PID/stat`) over the window, per MB received.")
    A("")
    for phase, title in (("tput-one", "One console"), ("tput-all", "One console on every guest at once")):
        if not res.select(phase):
            continue
        A("%s:" % title)
        A("")
        A("| path | sessions | KB/s | / floor | server CPU % of a core | server CPU s per MB |")
        A("|---|---:|---:|---:|---:|---:|")
        for p in res.paths:
            t = res.tput(phase, p)
            if not t:
                continue
            A("| %s | %d | %s | %s | %s | %s |" % (
                p, t["n"], fmt(t["Bps"] / 1000.0 if t["Bps"] else None, 1),
                "1" if p == "floor" else ratio(t["ratio"]),
                "-" if p == "floor" else fmt(t["cpu_pct"], 1),
                "-" if p == "floor" else fmt(t["cpu_s_per_mb"], 3)))
        A("")

    rows = [(p, res.allocs(p)) for p in ORDER
            if p.split("-")[0] in ("vcd", "prev") and p in res.paths and res.allocs(p)]
    if rows:
        A("### Allocations per chunk")
        A("")
        A("virtconsoled run with `bench/malloccount.so` preloaded: every "
          "malloc, calloc, growing realloc and memalign is counted by the "
          "object that called it.  In each allocation run of a door (the "
          "`alloc` phase: every guest prints its share of 10 MB, `yes | "
          "head -c N`; without such runs, the throughput runs of the door), "
          "the allocations from the moment every session is ready to the "
          "end of the window (95%%; 85%% in a throughput run: session set-up "
          "and teardown are outside; not the side-by-side runs, where one "
          "daemon serves the three doors at once), over the chunks that "
          "door forwarded meanwhile (the counts of `virtconsolectl stats "
          "--json`), all runs of the door added; prev-* rows are the "
          "previous build's daemon, counted the same way.  "
          "*Own* is the daemon's code: its executable, libevent and OpenSSL, "
          "which it drives; the target (< %s per chunk) is judged on it.  "
          "*libvirt client* is libvirt and glib (libvirt allocates through "
          "g_malloc): it allocates for every stream message it reads, so "
          "the floor (a bare libvirt client) pays that too.  *Other*: libc "
          "(strdup, printf...), libxml2 and the rest.  MB: what the runs "
          "moved to the clients." % T_ALLOC)
        A("")
        A("| door | runs | chunks (to client) | MB | allocations | per chunk | own | "
          "main / libevent / OpenSSL | libvirt client | other |")
        A("|---|---:|---:|---:|---:|---:|---:|---|---:|---:|")
        for p, a in rows:
            A("| %s | %d | %d (%d) | %s | %d | %s | %s | %s | %s | %s |" % (
                p, a["runs"], a["chunks"], a["to_client"], fmt(a["mb"], 2), a["total"],
                fmt(a["per_chunk"], 3), fmt(a["own"], 3), alloc_split(a), fmt(a["lv"], 3),
                fmt(a["other"], 3)))
        A("")

    A("## 3. Memory")
    A("")
    A("virtconsoled is one process: its RSS.  The old design forks: the sum "
      "of the PSS (`/proc/PID/smaps_rollup`) of all its processes "
      "(oldconsole.py, and websockify for old-ws), which shares fairly what "
      "the forked processes share.  Base: the server freshly started, no "
      "session.  Per session: the growth over the base (idle: sessions "
      "attached and silent; active: during an echo run, over the memory "
      "just before it) divided by the number of sessions.")
    for p in res.paths:
        m = (doc.get("memory") or {}).get(p) or {}
        if m.get("measured_in"):
            A("")
            A("%s's figures are those of its processes (oldconsole.py and its "
              "children) during the %s run: they are the same processes whether "
              "websockify or a unix client is in front." % (p, m["measured_in"]))
    A("")
    idle_ns = sorted({n for p in res.paths for n in res.idle_per_session(p)})
    act_ns = sorted({n for p in res.paths for n in res.active_per_session(p)})
    head = ["path", "base MiB (RSS / PSS)"] + ["idle KiB/session @%d" % n for n in idle_ns] + \
        ["active KiB/session @%d" % n for n in act_ns] + ["processes"]
    A("| " + " | ".join(head) + " |")
    A("|---|" + "---:|" * (len(head) - 1))
    for p in res.paths:
        if p == "floor":
            continue
        b = res.mem_base(p)
        ips, aps = res.idle_per_session(p), res.active_per_session(p)
        m = (doc.get("memory") or {}).get(p) or {}
        procs = max([v.get("procs", 0) for v in (m.get("idle") or {}).values()] or [0])
        row = [p, "%s / %s" % (fmt(b["rss_kib"] / 1024.0, 1), fmt(b["pss_kib"] / 1024.0, 1)) if b else "n/a"]
        row += [fmt(ips.get(n), 1) for n in idle_ns] + [fmt(aps.get(n), 1) for n in act_ns]
        row.append(str(procs))
        A("| " + " | ".join(row) + " |")
    A("")
    conn = {p: c for p, c in (doc.get("conn") or {}).items() if c.get("conn_kib") is not None}
    if conn:
        A("### A guest connection on its own")
        A("")
        A("Each guest's consoles are opened over a libvirt connection of its "
          "own, with its thread, so a session costs more when it is its "
          "guest's first.  A fresh daemon; A: k idle sessions on every "
          "console of one guest (one connection); B: m more, one on each of "
          "m other guests (m connections).  With a connection costing C and "
          "a session S: A = C + kS, B = m(C + S), solved for both (RSS "
          "growth, KiB).")
        A("")
        A("| path | k | m | A KiB | B KiB | connection KiB | session KiB |")
        A("|---|---:|---:|---:|---:|---:|---:|")
        for p in ORDER:
            c = conn.get(p)
            if c:
                A("| %s | %d | %d | %d | %d | %s | %s |" % (
                    p, c["k"], c["m"], c["one_guest"]["rss_kib"] - c["base"]["rss_kib"],
                    c["other_guests"]["rss_kib"] - c["one_guest"]["rss_kib"],
                    fmt(c["conn_kib"], 1), fmt(c["session_kib"], 1)))
        A("")

    A("## 4. CPU with idle sessions")
    A("")
    A("| path | idle sessions | window s | server CPU s | % of one core |")
    A("|---|---:|---:|---:|---:|")
    for p in res.paths:
        ic = (doc.get("idle_cpu") or {}).get(p)
        if not ic or p == "floor":
            continue
        A("| %s | %s | %s | %s | %s |" % (p, ic["n"], ic["window_s"], fmt(ic["cpu_s"], 2),
                                        fmt(ic["cpu_pct"], 2)))
    A("")
    c = res.capture()
    if c:
        L.extend(capture_section(doc, c))
    if png_name:
        A("## Plot")
        A("")
        A("![echo round trip and memory against sessions](%s)" % png_name)
        A("")
    A("## Analysis")
    A("")
    A(BEGIN)
    A(analysis.strip("\n") if analysis else "(Not written for this run.)")
    A(END)
    A("")
    A("## How it is measured")
    A("")
    A(METHOD.strip())
    A("")
    return "\n".join(L)


def alloc_split(a):
    """main / libevent / OpenSSL allocations per chunk."""
    return " / ".join(fmt(a["by_object"].get(k, 0) / a["chunks"], 3) if a["chunks"] else "-"
                      for k in ALLOC_OWN)


def kib_mib(k):
    return "n/a" if k is None else "%s KiB (%.1f MiB)" % (format(int(round(k)), ","), k / 1024.0)


def capture_section(doc, c):
    """## 5: a virtconsoled with capture = always and every console's
    history full: its RSS against the bound, and its idle CPU."""
    L = []
    A = L.append
    n = c.get("consoles")
    h, hh, runs = c.get("history_bytes") or 0, c.get("history_head_bytes") or 0, c.get("history_runs")
    A("## 5. Capture: %s consoles with full history" % n)
    A("")
    m = c.get("merged_from")
    if m:
        load = m.get("load") or {}
        cores = (m.get("machine") or {}).get("cores") or 1
        A("Measured in a run of its own (`bench/run.sh -- --phases capture`, %s to %s, "
          "profile %s, %s guests booted in %s s), on the same machine, and merged into the "
          "results of the run above (`bench/report.py RESULTS.json --merge PART.json`): "
          "the other sections are that run's, unchanged.  1-minute load average during "
          "it: mean %s, max %s on %s cores%s." % (
              m.get("started"), m.get("finished"), m.get("profile"), c.get("guests"),
              m.get("boot_s"), load.get("mean_1min"), load.get("max_1min"), cores,
              " (**the machine was shared and busy**: the CPU figure is the daemon's own "
              "time, which contention inflates little, but its windows are not quiet)"
              if (load.get("mean_1min") or 0) > cores else ""))
        A("")
    A("A virtconsoled of its own, no other server running, configured with "
      "`capture = always`, `history = %s`, `history_head = %s`, `history_runs = %s` "
      "(small limits, so that every console fills them in a few minutes: the guests "
      "print about 0.2 MB/s on one console, much less with %s consoles printing at "
      "once; the defaults, 256K + 64K, would need 320 KiB of output per console), "
      "on %s guests with a serial port and %s virtio consoles each (%s consoles), "
      "booted before the daemon started, nobody attached:" % (
          c.get("history"), c.get("history_head"), runs, n, c.get("guests"),
          (n // c["guests"] - 1) if c.get("guests") else "?", n))
    A("")
    wu = c.get("warmup")
    A("1. **Baseline**: every console captured (its `captured` line in the log, "
      "%s s after the start; the daemon's RSS, `VmRSS` of `/proc/PID/status`, then: "
      "%s)%s, then the daemon's RSS: the baseline.  The histories then hold %s bytes "
      "in all: what the guests printed before the daemon started was not read." % (
          c.get("captured_s"), kib_mib((c.get("captured_rss") or {}).get("rss_kib")),
          ("; then a round of sessions, one per console through the ws door, that typed "
           "`%s` (which prints nothing but the prompt) and left (%s s), so that what "
           "sessions leave in the allocator, freed but not returned, is in the baseline "
           "and not counted as history" % (wu.get("cmd"), wu.get("s"))) if wu else "",
          format(c.get("kept_before") or 0, ",")))
    A("2. **Full history**: one short session per console through the ws door "
      "typed `%s` and left at once (%s s for all %s; the capture keeps reading), "
      "then each console's `virtconsolectl history --raw GUEST ALIAS` was read until "
      "it held history + history_head = %s bytes: every console's head and tail full, "
      "and bytes dropped in the hole between them.  %s full %s s after the "
      "typing began (the slowest consoles printed %s bytes/s); then the daemon's "
      "RSS again." % (
          c.get("print_cmd"), (c.get("typed") or {}).get("s"), n,
          format(h + hh, ","),
          ("All %s were" % n) if c.get("full") == n else
          ("**Only %s of %s were**" % (c.get("full"), n)), c.get("full_s"),
          fmt((h + hh) / c["full_s"], 0) if c.get("full_s") else "n/a"))
    A("3. **Idle CPU**: with every console captured, nothing printing and nobody "
      "attached, the daemon's utime + stime (`/proc/PID/stat`) over a window.")
    A("")
    bound = c.get("bound_kib")
    base = (c.get("baseline") or {}).get("rss_kib")
    meas = (c.get("measured") or {}).get("rss_kib")
    after = (c.get("after_idle") or {}).get("rss_kib")
    grow = c.get("growth_kib")
    A("| | |")
    A("|---|---:|")
    A("| bound: consoles x (history + history_head) x history_runs = %s x (%s + %s) x %s "
      "| %s |" % (n, format(h, ","), format(hh, ","), runs, kib_mib(bound)))
    A("| output kept in the histories, full (`history --raw`, all consoles) | %s bytes |"
      % format(c.get("kept") or 0, ","))
    if c.get("captured_rss"):
        A("| RSS, every console captured, before any session | %s |"
          % kib_mib(c["captured_rss"].get("rss_kib")))
    A("| RSS, baseline (every console captured, histories empty%s) | %s |" % (
        ", after the round of sessions" if wu else "", kib_mib(base)))
    A("| RSS, every history full | %s |" % kib_mib(meas))
    A("| RSS after the idle window | %s |" % kib_mib(after))
    A("| RSS growth over the baseline (full - baseline) | %s |" % kib_mib(grow))
    A("| **growth over the baseline / bound** | **%s** |" % ratio(c.get("growth_over_bound"), 3))
    cap0 = (c.get("captured_rss") or {}).get("rss_kib")
    grow0 = meas - cap0 if (meas and cap0) else None
    if grow0 is not None and bound:
        A("| RSS growth over the capture alone (full - captured, before any session) | %s |"
          % kib_mib(grow0))
        A("| growth over the capture alone / bound | %s |" % ratio(grow0 / bound, 3))
    A("| RSS full / bound | %s |" % ratio(c.get("measured_over_bound"), 2))
    ic = c.get("idle_cpu") or {}
    A("| idle CPU: %s consoles captured, nothing printing, over %s s | %s s, **%s%% of one core** |"
      % (n, ic.get("window_s"), fmt(ic.get("cpu_s"), 3), fmt(ic.get("cpu_pct"), 3)))
    A("")
    if grow is not None and bound:
        A("The bound counts the history bytes; the daemon's RSS also holds the "
          "allocator's slack and the streams' and sessions' buffers.  Two growths "
          "bracket what the full histories cost: over the baseline (%s, %s KiB per "
          "console against %s KiB of history each) the history chunks partly reuse "
          "heap that the round of sessions freed but the allocator kept, so it can "
          "read below the bound; over the capture alone (%s) it includes what those "
          "sessions left behind (%s)." % (
              ratio(c.get("growth_over_bound"), 2), fmt(grow / float(n), 1) if n else "n/a",
              fmt((h + hh) * (runs or 1) / 1024.0, 1),
              ratio(grow0 / bound, 2) if grow0 is not None else "n/a",
              kib_mib(base - cap0) if (base and cap0) else "n/a"))
        A("")
    if not c.get("ok"):
        A("**The phase failed**: %s." % c.get("error"))
        A("")
    if c.get("log_errors"):
        A("Errors in the daemon's log: %s." % "; ".join(c["log_errors"][:5]))
        A("")
    return L


def merge(results_path, part_path):
    """Copy part's capture results into results (written back)."""
    with open(results_path) as f:
        doc = json.load(f)
    with open(part_path) as f:
        part = json.load(f)
    cap = part.get("capture")
    if not cap:
        raise SystemExit("report.py: no capture results in %s" % part_path)
    cap = dict(cap)
    cap["merged_from"] = {k: part.get(k) for k in (
        "started", "finished", "wall_s", "profile", "boot_s", "machine", "load",
        "load_before", "load_after", "errors")}
    doc["capture"] = cap
    tmp = results_path + ".tmp"
    with open(tmp, "w") as f:
        json.dump(doc, f, indent=1, sort_keys=True)
        f.write("\n")
    os.rename(tmp, results_path)


METHOD = """
`bench/run.sh` (one command, as root on Debian 12) installs what is
missing, builds, starts a private lab (`tests/lab/lab.sh`: its own
libvirtd, tiny busybox guests under QEMU/TCG) and runs `bench/harness.py`,
which boots the guests and drives `bench/vcdload` (C, one libvirt event
loop for every mode, so every path pays the same client costs) against
each path.  Every server is started by the harness: virtconsoled on a
generated configuration (unix sockets, a `ws` and a `wss` listener with
`auth=none`, `idle_timeout = 0`, log level info), `bench/oldconsole.py
--all-consoles`, and one websockify with a TokenFile for old-ws.

* Memory and idle CPU, per path: the server freshly started; its memory
  with no session; then with 10, 100 and 200 idle sessions (fewer where a
  path serves fewer consoles); its CPU over a window with the most.
* Echo: every path in turn at each number of sessions (1 to 200), the
  order rotated between repetitions, so that each path's floor is measured
  within a minute or two of it: the machine is shared and its speed drifts.
  virtconsoled is restarted before each of its runs (its memory before and
  during a run give the growth per active session).  vcdload prepares each
  guest tty first (`stty -icanon` and a shell loop that reads and drops the
  input), then counts the round trip of every keystroke.
* Throughput: one console, then one console on every guest at once.
  virtconsoled runs with `bench/malloccount.so` preloaded (an allocation
  counter by calling object, in a file the harness reads): its
  allocations per chunk forwarded are taken in these runs.
* Capture (section 5): a daemon of its own with `capture = always`,
  before the other phases (or in a run of its own, merged): its RSS with
  every console captured, then with every console's history full, against
  the bound consoles x (history + history_head) x history_runs; then its
  CPU with nothing printing.
* With `--prev REV`, the previous build's virtconsoled (REV built out of
  tree, the same configuration) is measured too, in every phase: its
  doors are the prev-* paths, side by side next to this build's, and the
  "Before and after" table divides this build's figures by its.
* Ratios are taken per repetition against the floor of the same
  repetition, then the median over repetitions is reported.  Absolute
  times on a 2-core machine running 25 TCG guests (and other work) are
  inflated by the guests themselves; compare the ratios.
"""


# ---------------------------------------------------------------- the plot

COLORS = {"floor": "black", "vcd-unix": "tab:blue", "vcd-ws": "tab:green",
          "vcd-wss": "tab:olive", "old-unix": "tab:red", "old-ws": "tab:orange",
          "prev-unix": "tab:cyan", "prev-ws": "tab:purple", "prev-wss": "tab:brown"}


def ticks(ax, xs):
    """Ticks at exactly these x values, as plain numbers, on both axes."""
    from matplotlib.ticker import FormatStrFormatter, NullLocator, ScalarFormatter
    ax.set_xticks(xs)
    ax.xaxis.set_major_formatter(ScalarFormatter())
    ax.xaxis.set_minor_locator(NullLocator())
    ax.yaxis.set_major_formatter(FormatStrFormatter("%g"))
    ax.yaxis.set_minor_formatter(FormatStrFormatter("%g"))


def plot(res, path):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(12, 4.8))
    for p in res.paths:
        ns = [n for n in res.echo_counts() if res.echo(p, n)]
        if not ns:
            continue
        c = COLORS.get(p)
        ax1.plot(ns, [res.echo(p, n)["p50"] for n in ns], "o-", color=c, label="%s p50" % p)
        ax1.plot(ns, [res.echo(p, n)["p99"] for n in ns], "x--", color=c, alpha=0.6,
                 label="%s p99" % p)
    counts = res.echo_counts()
    ax1.set_xscale("log")
    ax1.set_yscale("log")
    ticks(ax1, counts)
    ax1.set_xlabel("concurrent active sessions")
    ax1.set_ylabel("echo round trip, ms")
    ax1.set_title("Keystroke echo (p50 solid, p99 dashed)")
    ax1.grid(True, which="both", alpha=0.3)
    ax1.legend(fontsize=7, ncol=2)
    for p in res.paths:
        if p == "floor" or not res.mem_base(p):
            continue
        c = COLORS.get(p)
        k = res.metric(p)
        base = res.mem_base(p)[k]
        m = (res.doc.get("memory") or {}).get(p) or {}
        idle = sorted((int(n), v[k]) for n, v in (m.get("idle") or {}).items())
        xs = [0] + [n for n, _ in idle]
        ys = [base / 1024.0] + [v / 1024.0 for _, v in idle]
        ax2.plot(xs, ys, "o-", color=c, label="%s idle (%s)" % (p, "RSS" if k == "rss_kib" else "PSS sum"))
        act = [(n, res.mem_total(p, n, "active")) for n in res.echo_counts()]
        act = [(n, v) for n, v in act if v]
        if act:
            ax2.plot([n for n, _ in act], [v / 1024.0 for _, v in act], "x--", color=c, alpha=0.6,
                     label="%s active" % p)
    ax2.set_xscale("symlog", linthresh=1)
    ax2.set_yscale("log")
    ticks(ax2, [0] + sorted(set(counts) | {int(n) for p in res.paths for n in
                                             ((res.doc.get("memory") or {}).get(p) or {}).get("idle", {})}))
    ax2.set_xlabel("sessions")
    ax2.set_ylabel("server memory, MiB")
    ax2.set_title("Server memory (idle solid, active dashed)")
    ax2.grid(True, which="both", alpha=0.3)
    ax2.legend(fontsize=7)
    title = "virtconsoled benchmarks, %s" % (res.doc.get("started") or "")
    if res.doc.get("fixture"):
        title = "FIXTURE (not measured) - " + title
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("results")
    ap.add_argument("--md")
    ap.add_argument("--png")
    ap.add_argument("--check", action="store_true")
    ap.add_argument("--merge", metavar="PART.json")
    a = ap.parse_args()
    if a.merge:
        merge(a.results, a.merge)
    with open(a.results) as f:
        res = Results(json.load(f))
    rc = 0
    if a.check:
        bad = res.problems()
        for b in bad:
            print("problem: %s" % b)
        rc = 1 if bad else 0
    if a.png:
        plot(res, a.png)
    if a.md:
        analysis = None
        try:
            with open(a.md) as f:
                old = f.read()
            if BEGIN in old and END in old:
                analysis = old.split(BEGIN, 1)[1].split(END, 1)[0]
                if analysis.strip() == "(Not written for this run.)":
                    analysis = None
        except OSError:
            pass
        png_name = None
        if a.png:
            png_name = os.path.relpath(os.path.abspath(a.png), os.path.dirname(os.path.abspath(a.md)))
        text = markdown(res, png_name, analysis)
        tmp = a.md + ".tmp"
        with open(tmp, "w") as f:
            f.write(text)
        os.rename(tmp, a.md)
    return rc


if __name__ == "__main__":
    sys.exit(main())
