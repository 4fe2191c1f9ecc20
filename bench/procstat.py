"""Process accounting for the benchmark: CPU, RSS and PSS of a server and
its descendants, read from /proc (no external tools).

A "tree" is a list of root pids plus every live descendant of them.  CPU
is utime+stime of the live processes plus cutime+cstime of the roots (the
children a root reaped), in seconds; memory is in KiB.
"""

import os

HZ = os.sysconf("SC_CLK_TCK")


def _stat_fields(pid):
    """The fields of /proc/PID/stat after the command name, or None."""
    try:
        with open("/proc/%d/stat" % pid) as f:
            s = f.read()
    except OSError:
        return None
    return s[s.rindex(")") + 2:].split()


def children_map():
    """{ppid: [pid, ...]} of every process, zombies included (their CPU
    time is not yet in their parent's cutime)."""
    kids = {}
    for p in os.listdir("/proc"):
        if not p.isdigit():
            continue
        f = _stat_fields(int(p))
        if f is None:
            continue
        kids.setdefault(int(f[1]), []).append(int(p))
    return kids


def tree(roots):
    """The roots (alive) and all their descendants."""
    kids = children_map()
    out, todo = [], [r for r in roots if r]
    seen = set()
    while todo:
        p = todo.pop()
        if p in seen:
            continue
        seen.add(p)
        if _stat_fields(p) is None:
            continue
        out.append(p)
        todo.extend(kids.get(p, []))
    return sorted(out)


def live(pids):
    """The pids that are running (not zombies)."""
    return [p for p in pids if (_stat_fields(p) or ["Z"])[0] != "Z"]


def cpu_seconds(roots):
    """CPU time (s) used so far by the tree of roots, reaped children of the
    roots included."""
    total = 0
    pids = tree(roots)
    # The roots last: a child reaped meanwhile has moved into their cutime.
    for p in [p for p in pids if p not in roots] + [p for p in pids if p in roots]:
        f = _stat_fields(p)
        if f is None:
            continue
        # fields after ")": state ppid ... utime=11 stime=12 cutime=13 cstime=14
        total += int(f[11]) + int(f[12])
        if p in roots:
            total += int(f[13]) + int(f[14])
    return total / HZ


def sched(roots):
    """(on a CPU, waiting for one, timeslices) of the tree of roots so far,
    every thread (/proc/PID/task/TID/schedstat: ns, ns, count): how long
    its threads were runnable but not running.  None when the kernel does
    not keep schedstat."""
    run = wait = slices = 0
    seen = False
    for p in tree(roots):
        try:
            tids = os.listdir("/proc/%d/task" % p)
        except OSError:
            continue
        for t in tids:
            try:
                with open("/proc/%d/task/%s/schedstat" % (p, t)) as f:
                    a, b, c = (int(x) for x in f.read().split()[:3])
            except (OSError, ValueError):
                continue
            run, wait, slices, seen = run + a, wait + b, slices + c, True
    return (run / 1e9, wait / 1e9, slices) if seen else None


def _kib(path, key):
    """The KiB figure of the line "KEY: N kB" of a /proc file, or None."""
    try:
        with open(path) as f:
            for line in f:
                if line.startswith(key):
                    return int(line.split()[1])
    except OSError:
        pass
    return None


def rss_kib(pid):
    return _kib("/proc/%d/status" % pid, "VmRSS:")


def pss_kib(pid):
    """Proportional set size: shared pages divided among their users."""
    return _kib("/proc/%d/smaps_rollup" % pid, "Pss:")


def memory(roots):
    """{'procs': n, 'rss_kib': sum of RSS, 'pss_kib': sum of PSS} of the
    tree of roots (zombies left out).  RSS double-counts what processes
    share; PSS does not."""
    pids = live(tree(roots))
    rss = pss = 0
    for p in pids:
        rss += rss_kib(p) or 0
        pss += pss_kib(p) or 0
    return {"procs": len(pids), "rss_kib": rss, "pss_kib": pss}


def loadavg():
    with open("/proc/loadavg") as f:
        a = f.read().split()
    return [float(a[0]), float(a[1]), float(a[2])]
