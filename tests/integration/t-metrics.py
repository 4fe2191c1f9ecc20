#!/usr/bin/python3
"""The metrics door (the metrics issue, docs/OPERATIONS.md): `GET
/metrics` in the Prometheus text format, checked by promtool and scraped
by a real Prometheus (Debian's 2.42, run from its binary with a temporary
configuration and storage, never as the packaged service); the session
count read back through Prometheus's query API while sessions open and
close; the process_* values against /proc; counters that move with what
the test does; per-guest labels only with metrics_guest_labels = yes; the
door under the web door's hostile input (other paths, other methods,
forged or missing Host, a head that never ends, a flood from one address);
and docs/virtconsoled-alerts.yml through `promtool check rules` and
loaded into that Prometheus.

One daemon ("met"): metrics_listen = 127.0.0.1:0, web listeners on
127.0.0.1:0 (plain and tls), the attach socket; one lab guest, whose
console gets a writer on its unix socket and viewers through the attach
socket, ws and wss.  A second daemon ("met6") has only a metrics door, on
[::1]:0.  The numbers in the case names are the issue's checks (1 the
exposition, 2 Prometheus, 3 /proc, 4 counters, 5 guest labels, 6 hostile
input, 7 the rules).
"""

import json
import os
import re
import socket
import subprocess
import sys
import time
import urllib.parse
import urllib.request

sys.dont_write_bytecode = True     # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from vcdtest import (TAP, Client, Lab, defer, free_port, make_tmpdir, no_sanitizer_report,  # noqa: E402
                     nonce, show, vcd_binary, wait_for)

t = TAP()
lab = Lab(t)
if not os.access(vcd_binary(), os.X_OK):
    t.skip_all("no daemon binary at %s" % vcd_binary())

from webtest import (OP_CLOSE, Loop, RawWS, Response, WebDaemon, WSClient,  # noqa: E402
                     client_ssl_context, connect, ctl_binary, http, make_cert,
                     recv_until_close, request_bytes, web_root)

HERE = os.path.dirname(os.path.abspath(__file__))
TOP = os.path.dirname(os.path.dirname(HERE))
ALERTS = os.path.join(TOP, "docs", "virtconsoled-alerts.yml")
PROMETHEUS = "/usr/bin/prometheus"
PROMTOOL = "/usr/bin/promtool"
if not (os.access(PROMETHEUS, os.X_OK) and os.access(PROMTOOL, os.X_OK)):
    t.skip_all("no %s and %s (Debian's prometheus package; tests/deps.sh installs it)" % (PROMETHEUS, PROMTOOL))
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

TMP = make_tmpdir("vcd-met.")
G = "tmet-a"
lab.remove_leftovers([G])

CERT, KEY = make_cert(TMP)
d = WebDaemon(lab.uri, {
    "listen": ["127.0.0.1:0", "127.0.0.1:0 tls"],
    "tls_cert": CERT,
    "tls_key": KEY,
    "metrics_listen": "127.0.0.1:0",
    "token_secret_file": os.path.join(TMP, "secret"),
    "web_root": web_root(),
    "idle_timeout": 0,
    "ping_interval": 0,
}, name="met", tmpdir=TMP)

DOORS = ("unix", "attach", "ws", "wss")
ROLES = ("writer", "viewer")
ENDED = ("escape_key", "idle_timeout", "guest_stopped", "guest_migrated",
         "console_taken_by_another_client", "taken_over_by_a_new_client",
         "hypervisor_connection_lost", "hypervisor_removed", "daemon_shutting_down",
         "client_too_slow",
         "kicked_by_administrator", "listener_removed", "session_expired",
         "console_connection_lost", "client_closed", "client_error")
REFUSALS = ("console_busy", "guest_not_running", "unknown_guest", "too_many_clients",
            "recording_failed")
FAMILIES = {
    "virtconsoled_build_info": "gauge",
    "virtconsoled_hypervisor_up": "gauge",
    "virtconsoled_guests": "gauge",
    "virtconsoled_consoles": "gauge",
    "virtconsoled_sessions": "gauge",
    "virtconsoled_sessions_started_total": "counter",
    "virtconsoled_sessions_ended_total": "counter",
    "virtconsoled_refusals_total": "counter",
    "virtconsoled_bytes_total": "counter",
    "virtconsoled_bytes_dropped_total": "counter",
    "virtconsoled_web_requests_total": "counter",
    "virtconsoled_history_bytes": "gauge",
    "virtconsoled_state_errors_total": "counter",
    "virtconsoled_console_log_errors_total": "counter",
    "virtconsoled_recording_errors_total": "counter",
    "virtconsoled_forward_seconds": "histogram",
    "virtconsoled_stream_send_seconds": "histogram",
    "process_resident_memory_bytes": "gauge",
    "process_virtual_memory_bytes": "gauge",
    "process_cpu_seconds_total": "counter",
    "process_open_fds": "gauge",
    "process_max_fds": "gauge",
    "process_start_time_seconds": "gauge",
}


# ------------------------------------------------------------ the text format

SAMPLE_RE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?[ \t]+(\S+)(?:[ \t]+-?\d+)?$")
LABEL_RE = re.compile(r'\s*([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\\n]|\\.)*)"\s*(?:,|$)')


class Metrics:
    """A scrape, parsed: samples [(name, {label: value}, float)], the TYPE
    of each family, and the lines this parser could not read."""

    def __init__(self, text):
        self.text = text
        self.samples = []
        self.types = {}
        self.bad = []
        for line in text.splitlines():
            if line.startswith("# TYPE "):
                parts = line.split()
                if len(parts) == 4:
                    self.types[parts[2]] = parts[3]
                else:
                    self.bad.append(line)
                continue
            if not line or line.startswith("#"):
                continue
            m = SAMPLE_RE.match(line)
            if not m:
                self.bad.append(line)
                continue
            labels = {}
            rest = m.group(2) or ""
            pos = 0
            while pos < len(rest):
                lm = LABEL_RE.match(rest, pos)
                if not lm or lm.end() == pos:
                    self.bad.append(line)
                    break
                labels[lm.group(1)] = lm.group(2)
                pos = lm.end()
            try:
                value = float(m.group(3))
            except ValueError:
                self.bad.append(line)
                continue
            self.samples.append((m.group(1), labels, value))

    def names(self):
        return {n for n, _, _ in self.samples}

    def series(self, name, **labels):
        return [(lab_, v) for n, lab_, v in self.samples
                if n == name and all(lab_.get(k) == w for k, w in labels.items())]

    def get(self, name, **labels):
        """The value of the one series of name with these labels (others
        may exist), or None when there is not exactly one."""
        s = self.series(name, **labels)
        return s[0][1] if len(s) == 1 else None

    def sum(self, name, **labels):
        return sum(v for _, v in self.series(name, **labels))


def family_of(name):
    """The family a sample belongs to (histogram and summary suffixes)."""
    for suffix in ("_bucket", "_sum", "_count"):
        if name.endswith(suffix) and name[:-len(suffix)] in FAMILIES:
            return name[:-len(suffix)]
    return name


def scrape(timeout=10):
    """(Response, Metrics) of a GET /metrics on a new connection."""
    r = http(MP, "/metrics", timeout=timeout)
    return r, Metrics(r.text())


def metrics():
    return scrape()[1]


def promtool(*args, text=None):
    return subprocess.run([PROMTOOL] + list(args), input=text, capture_output=True,
                          text=True, timeout=60)


def ctl(*args):
    return subprocess.run([ctl_binary(), "-f", d.conf_path] + list(args), capture_output=True,
                          text=True, timeout=30, stdin=subprocess.DEVNULL)


def delta(before, after, name, **labels):
    a, b = after.get(name, **labels), before.get(name, **labels)
    return None if a is None or b is None else a - b


def moved(before, after):
    """The series whose value changed between two scrapes (a diagnostic)."""
    def key(n, labels):
        return n, tuple(sorted(labels.items()))
    old = {key(n, lab_): v for n, lab_, v in before.samples}
    return ["%s%s %s -> %s" % (n, lab_, old.get(key(n, lab_)), v) for n, lab_, v in after.samples
            if old.get(key(n, lab_)) != v and not n.startswith("process_")]


def attach(line):
    """A client of the attach socket that sent line (bytes) at once."""
    c = Client(d.conf["attach_socket"])
    c.send(line)
    return c



# ------------------------------------------------------------ setup

with t.case("setup"):
    r = lab.create(G)
    t.ok(r.returncode == 0, "guest %s created" % G, r.stderr)
    ok = d.start()
    t.ok(ok, "the daemon starts", d.log_tail())
    if not ok:
        t.done()
    m = d.wait_log(r"metrics: listening on 127\.0\.0\.1:(\d+)$", 5)
    MP = int(m[0]) if m else None
    t.ok(MP, "logged 'metrics: listening on 127.0.0.1:%s' (port 0 picked one)" % MP, d.log_tail(10))
    if not MP:
        t.done()
    WP = d.port()
    WPT = d.port(tls=True)
    t.ok(WP and WPT and MP not in (WP, WPT), "the web listeners have ports of their own (%s, tls %s)" % (WP, WPT))
    t.ok(wait_for(lambda: os.path.exists(d.sock(G)), 20), "the guest's socket is there")
    # The guest's shell answers before any count is taken.
    c = Client(d.sock(G))
    ok = c.wait_prompt(60) and c.echo_check()
    t.ok(ok, "the guest's shell answers through the daemon", show(c.pending()))
    t.ok(c.escape(), "and that session ends with the escape key")
    c.close()


# ------------------------------------------------------------ 1 the exposition

with t.case("1 GET /metrics, promtool check metrics, virtconsolectl metrics"):
    r, M = scrape()
    t.ok(r.status == 200, "GET /metrics: 200 (%s)" % r.status, r.raw[:300])
    t.ok(r.header("Content-Type") == CONTENT_TYPE, "Content-Type: %s (%r)" % (CONTENT_TYPE, r.header("Content-Type")))
    t.ok(not M.bad and len(M.samples) > 20, "the body parses as the text format (%d samples)" % len(M.samples),
         *["unreadable: %r" % b for b in M.bad[:5]])
    p = promtool("check", "metrics", text=r.text())
    t.ok(p.returncode == 0, "promtool check metrics passes on it (status %d)" % p.returncode, p.stdout, p.stderr)
    # The check can fail: the same text with a counter named without
    # _total and a family given twice.
    broken = r.text() + "# HELP vcd_broken A counter.\n# TYPE vcd_broken counter\nvcd_broken 1\n" \
        "# TYPE virtconsoled_state_errors_total counter\nvirtconsoled_state_errors_total 0\n"
    p = promtool("check", "metrics", text=broken)
    t.ok(p.returncode != 0, "and fails on a broken copy (status %d: %s)" % (p.returncode, (p.stdout + p.stderr).strip()[:200]))
    missing = [f for f in FAMILIES if f not in M.types]
    wrong = ["%s is %s" % (f, M.types[f]) for f, ty in FAMILIES.items() if f in M.types and M.types[f] != ty]
    t.ok(not missing and not wrong, "every family of the contract has its TYPE (%d families)" % len(FAMILIES),
         "missing: %s" % missing, "wrong type: %s" % wrong)
    untyped = sorted({family_of(n) for n in M.names()} - set(M.types))
    t.ok(not untyped, "every sample belongs to a typed family", "untyped: %s" % untyped)
    t.ok(all(n.endswith("_total") for n, ty in M.types.items() if ty == "counter"),
         "every counter's name ends in _total", [n for n, ty in M.types.items() if ty == "counter"])
    have = {(s.get("door"), s.get("role")) for s, _ in M.series("virtconsoled_sessions")}
    want = {(a, b) for a in DOORS for b in ROLES}
    t.ok(have == want and M.sum("virtconsoled_sessions") == 0,
         "virtconsoled_sessions: the 8 door x role series, all 0 with no session",
         "series: %s" % sorted(have, key=str), "sum: %s" % M.sum("virtconsoled_sessions"))
    have = {s.get("reason") for s, _ in M.series("virtconsoled_sessions_ended_total")}
    t.ok(have == set(ENDED), "virtconsoled_sessions_ended_total: the %d reasons, in snake case" % len(ENDED),
         "missing: %s" % sorted(set(ENDED) - have), "extra: %s" % sorted(have - set(ENDED), key=str))
    t.ok(M.get("virtconsoled_sessions_ended_total", reason="escape_key") == 1,
         "escape_key is 1: the setup's session (%s)" % M.get("virtconsoled_sessions_ended_total", reason="escape_key"))
    have = {s.get("reason") for s, _ in M.series("virtconsoled_refusals_total")}
    t.ok(set(REFUSALS) <= have, "virtconsoled_refusals_total: %s" % ", ".join(REFUSALS), "present: %s" % sorted(have, key=str))
    have = {s.get("door") for s, _ in M.series("virtconsoled_sessions_started_total")}
    t.ok(have == set(DOORS), "virtconsoled_sessions_started_total: one series per door", sorted(have, key=str))
    have = {(s.get("door"), s.get("direction")) for s, _ in M.series("virtconsoled_bytes_total")}
    t.ok(have == {(a, b) for a in DOORS for b in ("to_guest", "to_client")},
         "virtconsoled_bytes_total: door x direction (to_guest, to_client)", sorted(have, key=str))
    t.ok(M.get("virtconsoled_hypervisor_up", hypervisor="default") == 1,
         "virtconsoled_hypervisor_up{hypervisor=\"default\"} 1", M.series("virtconsoled_hypervisor_up"))
    states = {s.get("state"): v for s, v in M.series("virtconsoled_guests", hypervisor="default")}
    t.ok(set(states) == {"running", "stopped"} and states["running"] >= 1,
         "virtconsoled_guests{hypervisor=\"default\",state}: running and stopped, running >= 1 (%s)" % states)
    states = {s.get("state") for s, _ in M.series("virtconsoled_consoles", hypervisor="default")}
    t.ok(states == {"closed", "opening", "open", "parked", "stolen", "backoff"},
         "virtconsoled_consoles{hypervisor=\"default\",state}: the 6 states", sorted(states, key=str))
    t.ok(M.get("virtconsoled_state_errors_total") == 0, "virtconsoled_state_errors_total 0")
    st = ctl("status", "--json")
    try:
        version = json.loads(st.stdout).get("version")
    except ValueError:
        version = None
    bi = M.series("virtconsoled_build_info")
    t.ok(version and len(bi) == 1 and bi[0][0].get("version") == version and bi[0][1] == 1,
         "virtconsoled_build_info{version=\"%s\"} 1 (status --json says %r)" % (bi and bi[0][0].get("version"), version))
    t.ok(not any("guest" in s for _, s, _ in M.samples) and G not in M.text,
         "metrics_guest_labels = no (the default): no guest label, no guest name anywhere")

    h = http(MP, "/metrics", method="HEAD")
    t.ok(h.status == 200 and h.header("Content-Type") == CONTENT_TYPE and h.body == b"",
         "HEAD /metrics: 200, the same Content-Type, no body (%s, %d bytes)" % (h.status, len(h.body)))

    # web_requests_total has a series per code seen so far: the scrape
    # above adds its 200 after its text was made, so compare with the
    # scrape after the command.
    c = ctl("metrics")
    CM = Metrics(c.stdout)
    M = metrics()
    t.ok(c.returncode == 0 and not CM.bad and set(CM.types) == set(M.types) and CM.names() == M.names(),
         "virtconsolectl metrics: the same families and series names as the door (%d families)" % len(CM.types),
         "status %d, stderr %r, unreadable lines %r" % (c.returncode, c.stderr, CM.bad[:3]),
         "families only in ctl: %s" % sorted(set(CM.types) - set(M.types)),
         "families only on the door: %s" % sorted(set(M.types) - set(CM.types)),
         "series names only in ctl: %s" % sorted(CM.names() - M.names()),
         "series names only on the door: %s" % sorted(M.names() - CM.names()))
    p = promtool("check", "metrics", text=c.stdout)
    t.ok(p.returncode == 0, "promtool check metrics passes on virtconsolectl metrics too", p.stdout, p.stderr)


# ------------------------------------------------------------ 2, 4 Prometheus

def prom_start(port, rules):
    """Prometheus from its binary, scraping the door every second, with
    the rules file loaded: (Popen, log path, base URL)."""
    cfg = os.path.join(TMP, "prom.yml")
    with open(cfg, "w") as f:
        f.write("global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n  evaluation_interval: 1s\n"
                "rule_files:\n  - %s\n"
                "scrape_configs:\n  - job_name: virtconsoled\n    static_configs:\n"
                "      - targets: ['127.0.0.1:%d']\n" % (rules, MP))
    log = os.path.join(TMP, "prometheus.log")
    with open(log, "wb") as lf:
        p = subprocess.Popen([PROMETHEUS, "--config.file=" + cfg,
                              "--storage.tsdb.path=" + os.path.join(TMP, "prom-data"),
                              "--web.listen-address=127.0.0.1:%d" % port],
                             stdin=subprocess.DEVNULL, stdout=lf, stderr=subprocess.STDOUT,
                             cwd=TMP)
    defer(prom_stop, p)
    return p, log, "http://127.0.0.1:%d" % port


def prom_stop(p):
    if p.poll() is None:
        p.terminate()
        try:
            p.wait(15)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()
    return p.returncode


def prom_get(base, path, **params):
    url = base + path + ("?" + urllib.parse.urlencode(params) if params else "")
    with urllib.request.urlopen(url, timeout=5) as f:
        return json.loads(f.read())


def prom_value(base, query):
    """The value of an instant query whose result is one sample, or None."""
    try:
        j = prom_get(base, "/api/v1/query", query=query)
    except (OSError, ValueError):
        return None
    res = j.get("data", {}).get("result", [])
    if j.get("status") != "success" or len(res) != 1:
        return None
    return float(res[0]["value"][1])


def prom_wait(base, query, want, timeout=20):
    """Wait until query gives want; (ok, last value, seconds waited)."""
    t0 = time.monotonic()
    last = [None]

    def check():
        last[0] = prom_value(base, query)
        return last[0] == want
    ok = wait_for(check, timeout, 0.25)
    return ok, last[0], time.monotonic() - t0


with t.case("2 a real Prometheus scrapes the door; 4 counters move"):
    pp, plog, base = prom_start(free_port(), ALERTS)
    try:
        ready = wait_for(lambda: pp.poll() is None and os.path.exists(plog) and
                         "Server is ready to receive web requests" in open(plog, errors="replace").read(), 30)
        t.ok(ready, "prometheus %s runs from its binary (pid %d), temporary config and storage"
             % (base, pp.pid), open(plog, errors="replace").read()[-1500:])
        ok, v, waited = prom_wait(base, 'up{job="virtconsoled"}', 1)
        t.ok(ok, "up{job=\"virtconsoled\"} is 1 (after %.1f s; %s)" % (waited, v))
        ok, v, _ = prom_wait(base, 'virtconsoled_hypervisor_up{hypervisor="default"}', 1)
        t.ok(ok, "virtconsoled_hypervisor_up{hypervisor=\"default\"} is 1 through Prometheus (%s)" % v)
        ok, v, _ = prom_wait(base, "sum(virtconsoled_sessions)", 0)
        t.ok(ok, "sum(virtconsoled_sessions) is 0 before any session (%s)" % v)

        before = metrics()
        w = Client(d.sock(G))
        ok = w.wait_prompt(30)
        viewer = attach(b"ATTACH %s view\n" % G.encode())
        # A token opens one session (the replay cache): one each.
        ws = RawWS(WP, "/console/%s?token=%s&mode=view" % (G, d.token(G)))
        wss = RawWS(WPT, "/console/%s?token=%s&mode=view" % (G, d.token(G)), tls=client_ssl_context())
        t.ok(ok and ws.accepted() and wss.accepted(), "a unix-socket writer, viewers on the attach socket, "
             "ws and wss (%s, %s)" % (ws.response, wss.response))
        ok, v, waited = prom_wait(base, "sum(virtconsoled_sessions)", 4)
        t.ok(ok, "Prometheus reads sum(virtconsoled_sessions) 4 (%.1f s; %s)" % (waited, v))
        t.figure("metrics: time until Prometheus shows 4 new sessions (scrape_interval 1s)", "%.1f" % waited, "s")
        by = {(door, role): prom_value(base, 'virtconsoled_sessions{door="%s",role="%s"}' % (door, role))
              for door in DOORS for role in ROLES}
        t.ok(by == {(a, b): float((a, b) in (("unix", "writer"), ("attach", "viewer"), ("ws", "viewer"),
                                             ("wss", "viewer"))) for a in DOORS for b in ROLES},
             "by door and role: unix writer 1, attach, ws and wss viewer 1 each, the other 4 series 0", by)
        mid = metrics()
        t.ok(mid.get("virtconsoled_consoles", hypervisor="default", state="open") == 1,
             "virtconsoled_consoles{state=\"open\"} 1 while they are attached (%s)"
             % mid.series("virtconsoled_consoles"))

        # 4: what the writer types, then its escape key; the viewer closes.
        n = nonce()
        cmd = b"echo mt-%s-$((6*7))\r" % n.encode()
        w.send(cmd)
        got = w.read_until(b"mt-%s-42" % n.encode(), 10)
        t.ok(got, "the writer's command ran in the guest", show(w.pending()))
        seen = viewer.read_until(b"mt-%s-42" % n.encode(), 10)
        t.ok(seen, "and the viewer saw its output", show(viewer.pending()))
        t.ok(ws.read_until(b"mt-%s-42" % n.encode(), 10) and wss.read_until(b"mt-%s-42" % n.encode(), 10),
             "so did the ws and wss viewers", show(ws.data), show(wss.data))
        # What a viewer types is dropped (and told once), not counted.
        viewer.send(b"typed-by-the-viewer\r")
        t.ok(viewer.read_until(rb"view only: input is not sent to the guest", 5),
             "the viewer types: 'view only: input is not sent to the guest'", show(viewer.pending()))
        ok = w.escape()
        t.ok(ok, "the writer ends with the escape key", show(w.pending()))
        # The viewer leaves with a FIN (shutdown), not by close(): a close
        # with output still unread sends a reset, which ends the session
        # "client error" instead.
        viewer.sock.shutdown(socket.SHUT_WR)
        _, closed = viewer.read_all_until_close(5)
        t.ok(closed, "the viewer shuts its side: the daemon closes it")
        viewer.close()
        # The web viewers leave with a close frame, and read to the end.
        for c in (ws, wss):
            c.send_frame(OP_CLOSE, b"\x03\xe8")
            t.ok(c.wait_eof(5), "a %s viewer sends a close frame: the daemon closes it"
                 % ("wss" if c is wss else "ws"))
            c.close()
        ok, v, waited = prom_wait(base, "sum(virtconsoled_sessions)", 0)
        t.ok(ok, "both gone: Prometheus reads sum(virtconsoled_sessions) 0 (%.1f s; %s)" % (waited, v))
        after = metrics()
        for what, name, labels, want in [
                ("sessions_started_total{door=\"unix\"}", "virtconsoled_sessions_started_total", {"door": "unix"}, 1),
                ("sessions_started_total{door=\"attach\"}", "virtconsoled_sessions_started_total", {"door": "attach"}, 1),
                ("sessions_started_total{door=\"ws\"}", "virtconsoled_sessions_started_total", {"door": "ws"}, 1),
                ("sessions_started_total{door=\"wss\"}", "virtconsoled_sessions_started_total", {"door": "wss"}, 1),
                ("sessions_ended_total{reason=\"escape_key\"}", "virtconsoled_sessions_ended_total",
                 {"reason": "escape_key"}, 1),
                ("sessions_ended_total{reason=\"client_closed\"}", "virtconsoled_sessions_ended_total",
                 {"reason": "client_closed"}, 3)]:
            dv = delta(before, after, name, **labels)
            t.ok(dv == want, "%s went up by %d (%s)" % (what, want, dv), "what moved: %s" % moved(before, after))
        t.ok(after.sum("virtconsoled_sessions_ended_total") - before.sum("virtconsoled_sessions_ended_total") == 4,
             "and the ended counters went up by 4 in all (%s)"
             % (after.sum("virtconsoled_sessions_ended_total") - before.sum("virtconsoled_sessions_ended_total")))
        dv = delta(before, after, "virtconsoled_bytes_total", door="unix", direction="to_guest")
        t.ok(dv is not None and dv >= len(cmd), "bytes_total{door=\"unix\",direction=\"to_guest\"} went up by at "
             "least the %d bytes typed (%s)" % (len(cmd), dv))
        dv = delta(before, after, "virtconsoled_bytes_total", door="unix", direction="to_client")
        t.ok(dv is not None and dv >= len(n) + 6, "bytes_total{door=\"unix\",direction=\"to_client\"} went up by "
             "at least the output read (%s)" % dv)
        for door in ("attach", "ws", "wss"):
            dv = delta(before, after, "virtconsoled_bytes_total", door=door, direction="to_client")
            t.ok(dv is not None and dv > 0, "bytes_total{door=\"%s\",direction=\"to_client\"} went up: its viewer "
                 "got output (%s)" % (door, dv))
        dv = delta(before, after, "virtconsoled_bytes_total", door="attach", direction="to_guest")
        t.ok(dv == 0, "bytes_total{door=\"attach\",direction=\"to_guest\"} did not: the viewer's input went "
             "nowhere (%s)" % dv)
        # Every client a door took is started; it ends, is refused, or is
        # still there.
        live = after.sum("virtconsoled_sessions")
        started = after.sum("virtconsoled_sessions_started_total")
        gone = after.sum("virtconsoled_sessions_ended_total") + after.sum("virtconsoled_refusals_total")
        t.ok(started == gone + live, "sessions started (%s) = ended + refused (%s) + live now (%s)"
             % (started, gone, live))
        hb = after.get("virtconsoled_history_bytes")
        t.ok(hb is not None and hb > 0, "virtconsoled_history_bytes > 0 after output (%s)" % hb)

        # The alert rules, loaded into this Prometheus and evaluated.
        def rules():
            try:
                groups = prom_get(base, "/api/v1/rules")["data"]["groups"]
            except (OSError, ValueError, KeyError):
                return None
            rs = [r for g in groups for r in g.get("rules", [])]
            return rs if rs and all(r.get("health") == "ok" for r in rs) else None
        rs = wait_for(rules, 15, 0.25)
        names = sorted(r.get("name") for r in rs or [])
        t.ok(rs and len(rs) >= 2 and all(r.get("type") == "alerting" for r in rs),
             "Prometheus loaded docs/virtconsoled-alerts.yml and evaluates its alerts, health ok (%s)" % names)
        firing = [r.get("name") for r in rs or [] if r.get("state") != "inactive"]
        t.ok(rs and not firing, "none is pending or firing with the hypervisor up and no slow client (%s)" % firing)
    finally:
        rc = prom_stop(pp)
    t.ok(pp.poll() is not None, "prometheus stopped (status %s)" % rc)
    t.diag("prometheus log tail:\n" + open(plog, errors="replace").read()[-600:])


# ------------------------------------------------------------ 3 /proc

def proc_status(pid, key):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1]) * 1024
    return None


with t.case("3 process_* agree with /proc"):
    pid = d.pid
    # The scrape's own connection is an open fd of the daemon while it
    # makes the text: count /proc/PID/fd with the connection accepted and
    # its request not sent yet.
    s = connect(MP)
    time.sleep(0.3)
    fds = len(os.listdir("/proc/%d/fd" % pid))
    rss = proc_status(pid, "VmRSS")
    vsz = proc_status(pid, "VmSize")
    s.sendall(request_bytes("GET", "/metrics", MP))
    data, closed = recv_until_close(s)
    s.close()
    rss2 = proc_status(pid, "VmRSS")
    fds_after = len(os.listdir("/proc/%d/fd" % pid))
    with open("/proc/%d/stat" % pid) as f:
        stat = f.read()
    fields = stat[stat.rindex(")") + 2:].split()
    tck = os.sysconf("SC_CLK_TCK")
    cpu = (int(fields[11]) + int(fields[12])) / tck
    with open("/proc/stat") as f:
        btime = int(re.search(r"^btime (\d+)", f.read(), re.M).group(1))
    start = btime + int(fields[19]) / tck
    with open("/proc/%d/limits" % pid) as f:
        m = re.search(r"^Max open files\s+(\d+)\s+(\d+|unlimited)", f.read(), re.M)
    soft = int(m.group(1))
    r = Response(data)
    P = Metrics(r.text())
    t.ok(r.status == 200 and closed, "a scrape on a connection held open first (%s)" % r.status)
    v = P.get("process_open_fds")
    t.ok(v is not None and abs(v - fds) <= 1,
         "process_open_fds %s: /proc/%d/fd had %d with the scrape's connection open (%d after it closed)"
         % (v, pid, fds, fds_after))
    v = P.get("process_resident_memory_bytes")
    t.ok(v is not None and min(abs(v - rss), abs(v - rss2)) <= 0.1 * rss,
         "process_resident_memory_bytes %s within 10%% of VmRSS (%d / %d)" % (v, rss, rss2))
    v = P.get("process_virtual_memory_bytes")
    t.ok(v is not None and abs(v - vsz) <= 0.1 * vsz,
         "process_virtual_memory_bytes %s within 10%% of VmSize (%d)" % (v, vsz))
    v = P.get("process_max_fds")
    t.ok(v == soft, "process_max_fds %s is the soft RLIMIT_NOFILE from /proc/%d/limits (%d)" % (v, pid, soft))
    v = P.get("process_start_time_seconds")
    t.ok(v is not None and abs(v - start) <= 2,
         "process_start_time_seconds %s within 2 s of btime + starttime (%.2f)" % (v, start))
    v = P.get("process_cpu_seconds_total")
    t.ok(v is not None and 0 < v <= cpu + 0.05 and v >= cpu - 0.5,
         "process_cpu_seconds_total %s agrees with utime + stime read after it (%.2f)" % (v, cpu))


# ------------------------------------------------------------ 5 guest labels

with t.case("5 metrics_guest_labels"):
    w = Client(d.sock(G))
    t.ok(w.wait_prompt(30), "a writer on %s" % G, show(w.pending()))
    before = metrics()
    busy = Client(d.sock(G))
    t.ok(busy.expect_end("refused", "console busy"), "a second writer is refused 'console busy'")
    busy.close()
    M = metrics()
    dv = delta(before, M, "virtconsoled_refusals_total", reason="console_busy")
    t.ok(dv == 1, "refusals_total{reason=\"console_busy\"} went up by 1 (%s)" % dv, "what moved: %s" % moved(before, M))
    dv = delta(before, M, "virtconsoled_sessions_started_total", door="unix")
    dn = M.sum("virtconsoled_sessions_ended_total") - before.sum("virtconsoled_sessions_ended_total")
    t.ok(dv == 1 and dn == 0, "the refused client counts as started (+%s), not as ended (+%s)" % (dv, dn))
    t.ok(not any("guest" in s for _, s, _ in M.samples) and G not in M.text,
         "with a session open and metrics_guest_labels unset: no guest label, no guest name")
    t.ok("virtconsoled_console_sessions" not in M.types and "virtconsoled_console_history_bytes" not in M.types,
         "and no per-console families")
    mark = d.mark()
    d.write_config({"metrics_guest_labels": "yes"})
    r = ctl("reload")
    ok = r.returncode == 0 and d.wait_log(r"configuration reloaded", 10, since=mark)
    t.ok(ok, "virtconsolectl reload with metrics_guest_labels = yes", r.stdout, r.stderr, d.log_tail(5, since=mark))
    r, M = scrape()
    v = M.get("virtconsoled_console_sessions", hypervisor="default", guest=G, console="serial0", role="writer")
    t.ok(v == 1, "virtconsoled_console_sessions{hypervisor=\"default\",guest=\"%s\",console=\"serial0\","
         "role=\"writer\"} 1 (%s)" % (G, v), M.series("virtconsoled_console_sessions"))
    v = M.get("virtconsoled_console_history_bytes", hypervisor="default", guest=G, console="serial0")
    t.ok(v is not None and v > 0, "virtconsoled_console_history_bytes{...guest=\"%s\"...} > 0 (%s)" % (G, v))
    p = promtool("check", "metrics", text=r.text())
    t.ok(p.returncode == 0, "promtool check metrics passes with the guest labels", p.stdout, p.stderr)
    t.ok(w.escape(), "the writer leaves")
    ok = d.reload({"metrics_guest_labels": "no"})
    M = metrics()
    t.ok(ok and not any("guest" in s for _, s, _ in M.samples) and G not in M.text,
         "reloaded to metrics_guest_labels = no: the guest labels are gone")


# ------------------------------------------------------------ 6 hostile input

def status_of(path="/metrics", method="GET", **kw):
    try:
        r = http(MP, path, method, **kw)
        return r.status, r
    except Exception as e:      # noqa: BLE001 - what happened, for the message
        return repr(e), None


def hold(n):
    """n connections to the door that send nothing."""
    out = []
    for _ in range(n):
        c = connect(MP)
        defer(c.close)
        out.append(c)
    time.sleep(0.3)
    return out


with t.case("6 the door under hostile input"):
    for path in ("/", "/api/guests", "/console/%s" % G, "/index.html", "/metricsx", "/metrics/x",
                 "/xterm.js"):
        st, r = status_of(path)
        t.ok(st == 404 and b"virtconsoled_" not in r.body, "GET %s: 404 (%s)" % (path, st))
    for method in ("POST", "PUT", "DELETE"):
        st, r = status_of("/metrics", method, headers=[("Content-Length", "0")])
        t.ok(st == 405 and b"virtconsoled_" not in r.body, "%s /metrics: 405 (%s)" % (method, st))
    st, r = status_of(host="evil.example")
    t.ok(st == 421 and b"virtconsoled_" not in r.body, "Host: evil.example: 421 (%s)" % st)
    st, r = status_of(host="evil.example:%d" % MP)
    t.ok(st == 421, "Host: evil.example:%d: 421 (%s)" % (MP, st))
    st, r = status_of(host="127.0.0.1:%d" % WP)
    t.ok(st == 421, "Host: 127.0.0.1:%d (the web listener's port): 421 (%s)" % (WP, st))
    st, r = status_of(host=False)
    t.ok(st == 400, "no Host: 400 (%s)" % st)
    st, r = status_of(host="localhost:%d" % MP)
    t.ok(st == 200, "Host: localhost:%d on loopback: 200 (%s)" % (MP, st))
    st, r = status_of("/metrics", raw=b"\x16\x03\x01\x00\x05hello\r\n\r\n")
    t.ok(st != 200 and (r is None or b"virtconsoled_" not in r.body), "a TLS ClientHello: no metrics (%s)" % st)
    st, r = status_of("/metrics", raw=b"GET /metrics HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nX: %s\r\n\r\n"
                      % (MP, b"a" * 70000))
    t.ok(st == 431, "a 70 KB head (one 70 KB header line): 431 (%s)" % st)

    ok = d.reload({"handshake_timeout": 2, "max_clients_per_address": 4})
    t.ok(ok, "reload: handshake_timeout = 2, max_clients_per_address = 4")
    # A head that never ends, and a connection that sends nothing.
    half = connect(MP)
    half.sendall(b"GET /metrics HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nAcc" % MP)
    idle = connect(MP)
    t0 = time.monotonic()
    data, closed = recv_until_close(half, 8)
    took = time.monotonic() - t0
    t.ok(closed and 1.5 <= took <= 4.5 and b"virtconsoled_" not in data,
         "half a head: closed by handshake_timeout (after %.1f s, %d bytes)" % (took, len(data)))
    data, closed = recv_until_close(idle, 8)
    took = time.monotonic() - t0
    t.ok(closed and took <= 4.5 and data == b"", "a connection that sends nothing: closed too (%.1f s)" % took)
    half.close()
    idle.close()

    held = hold(4)
    st, r = status_of()
    t.ok(st == 429, "4 connections of one address held: the 5th gets 429 (%s)" % st)
    # The flood: 60 more at once.
    flood = []
    for _ in range(60):
        try:
            c = connect(MP, timeout=5)
        except OSError:
            continue
        flood.append(c)
        try:
            c.sendall(request_bytes("GET", "/metrics", MP))
        except OSError:
            pass
    codes = {}
    for c in flood:
        data, _ = recv_until_close(c, 5)
        st = Response(data).status if data else None
        codes[st] = codes.get(st, 0) + 1
        c.close()
    t.ok(codes == {429: 60}, "a flood of 60 more connections from that address: each 429 (%s)" % codes)
    # The counts are the web door's: a flood of one door is felt at the other.
    try:
        st = http(WP, "/").status
    except Exception as e:      # noqa: BLE001 - what happened, for the message
        st = repr(e)
    t.ok(st == 429, "with those 4 held on the metrics door, the web door answers that address 429 too (%s)" % st)
    for c in held:
        c.close()
    t.ok(wait_for(lambda: status_of()[0] == 200, 5), "the held connections closed: a scrape is served again")
    webheld = []
    for _ in range(4):
        c = connect(WP)
        defer(c.close)
        webheld.append(c)
    time.sleep(0.3)
    st, r = status_of()
    t.ok(st == 429, "4 connections held on the web door: a scrape from that address gets 429 (%s)" % st)
    for c in webheld:
        c.close()
    t.ok(wait_for(lambda: status_of()[0] == 200, 5), "once they close, a scrape is served again")
    t.ok(d.reload({"max_clients": 4, "max_clients_per_address": None}), "reload: max_clients = 4")
    held = hold(4)
    st, r = status_of()
    t.ok(st == 503, "4 connections held: the next one gets 503 (%s)" % st)
    for c in held:
        c.close()
    t.ok(wait_for(lambda: status_of()[0] == 200, 5), "and once they close, 200 again")
    ok = d.reload({"max_clients": None, "handshake_timeout": None})
    t.ok(ok and d.answers(), "the daemon answers status after all this")
    after = metrics()
    codes = {s.get("code"): v for s, v in after.series("virtconsoled_web_requests_total")}
    want = {"200": 5, "400": 2, "404": 7, "405": 3, "421": 3, "429": 61, "431": 1, "503": 1}
    t.ok(all(codes.get(k, 0) >= v for k, v in want.items()),
         "virtconsoled_web_requests_total counts the door's answers by code (at least %s: %s)" % (want, codes))


# ------------------------------------------------------------ the key

with t.case("1 metrics_listen by reload"):
    mark = d.mark()
    ok = d.reload({"metrics_listen": None})
    try:
        http(MP, "/metrics", timeout=3)
        gone = "it still answers"
    except OSError as e:
        gone = e.__class__.__name__
    t.ok(ok and gone == "ConnectionRefusedError", "a reload without metrics_listen closes the door (%s)" % gone,
         d.log_tail(4, since=mark))
    c = ctl("metrics")
    CM = Metrics(c.stdout)
    t.ok(c.returncode == 0 and not CM.bad and set(FAMILIES) <= set(CM.types),
         "virtconsolectl metrics works without a metrics door (status %d, %d families)"
         % (c.returncode, len(CM.types)), c.stderr)
    mark = d.mark()
    ok = d.reload({"metrics_listen": "127.0.0.1:0"})
    m = d.wait_log(r"metrics: listening on 127\.0\.0\.1:(\d+)$", 5, since=mark)
    t.ok(ok and m, "a reload that adds it back opens it, logged 'metrics: listening on 127.0.0.1:%s'"
         % (m and m[0]), d.log_tail(4, since=mark))
    if m:
        MP = int(m[0])
    r = http(MP, "/metrics")
    t.ok(r.status == 200 and Metrics(r.text()).get("virtconsoled_hypervisor_up", hypervisor="default") == 1,
         "and it serves (%s)" % r.status)

def check_conf(lines):
    """virtconsoled -n on a configuration of these lines: (status, stderr)."""
    path = os.path.join(TMP, "check-%s.conf" % nonce())
    with open(path, "w") as f:
        f.write("uri = %s\ncontrol_socket = %s\n" % (lab.uri, os.path.join(TMP, "n.control")))
        f.writelines(line + "\n" for line in lines)
    r = subprocess.run([vcd_binary(), "-n", "-f", path], capture_output=True, text=True, timeout=30,
                       stdin=subprocess.DEVNULL)
    return r.returncode, r.stderr.strip()


d6 = None
with t.case("1 metrics_listen: its forms; a daemon with only the metrics door"):
    for value in ("127.0.0.1:9321", "[::1]:0", "*:9321", "[::]:0"):
        rc, err = check_conf(["metrics_listen = " + value])
        t.ok(rc == 0, "metrics_listen = %s is accepted (%s)" % (value, err))
    for value, why in (("127.0.0.1:0 tls", "an option"), ("127.0.0.1:0 auth=none", "an option"),
                       ("127.0.0.1", "no port"), ("localhost:9321", "a name"), ("127.0.0.1:65536", "port > 65535")):
        rc, err = check_conf(["metrics_listen = " + value])
        t.ok(rc != 0 and "metrics_listen" in err, "metrics_listen = %s is refused: %s (%s)" % (value, why, err))
    rc, err = check_conf(["listen = 127.0.0.1:9321", "token_secret_file = %s" % os.path.join(TMP, "secret"),
                          "metrics_listen = 127.0.0.1:9321"])
    t.ok(rc != 0, "metrics_listen on a 'listen' address is refused (%s)" % err)
    # No web listener, no token_secret_file: the door needs neither.
    d6 = WebDaemon(lab.uri, {"metrics_listen": "[::1]:0", "attach_socket": "none"}, name="met6", tmpdir=TMP)
    ok = d6.start()
    t.ok(ok, "a daemon with metrics_listen = [::1]:0 and no web listener starts", d6.log_tail())
    m = d6.wait_log(r"metrics: listening on \[::1\]:(\d+)$", 5)
    p6 = int(m[0]) if m else None
    t.ok(p6, "logged 'metrics: listening on [::1]:%s'" % p6, d6.log_tail(8))
    if p6:
        r = http(p6, "/metrics", addr="::1")
        t.ok(r.status == 200 and Metrics(r.text()).get("virtconsoled_hypervisor_up", hypervisor="default") == 1,
             "GET /metrics over IPv6 (Host: [::1]:%d): 200, hypervisor_up 1 (%s)" % (p6, r.status))
        r = http(p6, "/metrics", addr="::1", host="localhost:%d" % p6)
        t.ok(r.status == 200, "Host: localhost:%d on [::1]: 200 (%s)" % (p6, r.status))
        r = http(p6, "/metrics", addr="::1", host="127.0.0.1:%d" % p6)
        t.ok(r.status == 421, "Host: 127.0.0.1:%d, not the address dialled: 421 (%s)" % (p6, r.status))
    t.ok(d6.stop() == 0, "it stops with status 0")


# ------------------------------------------------------------ 7 the alert rules

with t.case("7 promtool check rules docs/virtconsoled-alerts.yml"):
    p = promtool("check", "rules", ALERTS)
    t.ok(p.returncode == 0 and re.search(r"SUCCESS: [2-9]\d* rules found", p.stdout),
         "promtool check rules passes on docs/virtconsoled-alerts.yml", p.stdout, p.stderr)
    with open(ALERTS) as f:
        text = f.read()
    used = set(re.findall(r"\b(virtconsoled_[a-z_]+|process_[a-z_]+)", text))
    M = metrics()
    t.ok(used and used <= set(M.types), "its rules name only families the daemon exports (%s)" % sorted(used),
         "unknown: %s" % sorted(used - set(M.types)))
    t.ok(re.search(r"virtconsoled_hypervisor_up\s*==\s*0", text) and re.search(r"for:\s*1m", text) and
         'reason="client_too_slow"' in text,
         "a hypervisor down for 1m and sessions ended client_too_slow are among them")
    broken = os.path.join(TMP, "broken-alerts.yml")
    with open(broken, "w") as f:
        f.write(re.sub(r"virtconsoled_hypervisor_up\s*==\s*0", "virtconsoled_hypervisor_up ==", text, count=1))
    p = promtool("check", "rules", broken)
    t.ok(p.returncode != 0, "and fails on a copy with a broken expression (status %d)" % p.returncode,
         p.stdout[-300:])


# ------------------------------------------------------------ 8 residence time

def stats_json():
    """{(door, direction): histogram} of `stats --json`, and the
    virStreamSend() calls as (door, "virStreamSend")."""
    c = ctl("stats", "--json")
    try:
        doc = json.loads(c.stdout)
        out = {(f["door"], f["direction"]): f for f in doc["forward"]}
        out.update({(f["door"], f["call"]): f for f in doc["send_call"]})
        return out
    except (ValueError, KeyError, TypeError):
        return {}


def bucket_bound(k):
    return float("inf") if k >= 25 else (1 << k) / 1e6


def quantile(buckets, q):
    """The bound of the bucket holding the q-quantile of a delta."""
    n = sum(buckets)
    rank, seen = max(1, -(-int(q * n * 1000) // 1000)), 0
    for k, b in enumerate(buckets):
        seen += b
        if seen >= rank:
            return bucket_bound(k)
    return None


with t.case("8 residence time: every door and direction, below the echo round trip"):
    # One writer per door in turn (the same console), ECHOES round trips
    # each: the daemon's residence time of those chunks, both ways, must
    # be recorded for that door and lie below the round trip the client
    # saw (the guest's shell and the kernel are in the round trip, not in
    # the residence).
    ECHOES = 20
    loop = Loop()
    st = ctl("stats")
    lines = st.stdout.splitlines()
    t.ok(st.returncode == 0 and len(lines) == 15 and lines[0].split() == ["DOOR", "DIRECTION", "CHUNKS", "P50_S",
                                                                        "P99_S", "MEAN_S"]
         and lines[9] == "" and lines[10].split() == ["DOOR", "CALL", "CALLS", "P50_S", "P99_S", "MEAN_S"]
         and [x.split()[:2] for x in lines[11:]] == [[dr, "virStreamSend"] for dr in DOORS],
         "virtconsolectl stats: a header and 8 rows, door x direction; then a header and the "
         "virStreamSend() calls of each door", st.stdout, st.stderr)
    M0 = metrics()
    series = {(s.get("door"), s.get("direction")) for s, _ in M0.series("virtconsoled_forward_seconds_count")}
    t.ok(series == {(a, b) for a in DOORS for b in ("to_client", "to_guest")},
         "virtconsoled_forward_seconds: one histogram per door and direction", sorted(series, key=str))
    series = [s for s, _ in M0.series("virtconsoled_stream_send_seconds_count")]
    t.ok(sorted(s.get("door") for s in series) == sorted(DOORS) and all(len(s) == 1 for s in series),
         "virtconsoled_stream_send_seconds: one histogram per door, labelled door alone", series)
    les = [s.get("le") for s, _ in M0.series("virtconsoled_forward_seconds_bucket", door="unix",
                                              direction="to_client")]
    t.ok(les[:1] == ["0.000001"] and les[-2:] == ["16.777216", "+Inf"] and len(les) == 26,
         "its buckets: le=\"0.000001\" .. le=\"16.777216\", then +Inf (26)", les)
    for door in DOORS:
        if door == "unix":
            c = Client(d.sock(G))
        elif door == "attach":
            c = attach(b"ATTACH %s\n" % G.encode())
        elif door == "ws":
            c = WSClient(loop, "ws://127.0.0.1:%d/console/%s?token=%s" % (WP, G, d.token(G)), ["binary"])
        else:
            c = WSClient(loop, "wss://127.0.0.1:%d/console/%s?token=%s" % (WPT, G, d.token(G)), ["binary"],
                         ssl_ctx=client_ssl_context())
        before = stats_json()
        n = nonce()
        rtts = []
        c.send(b"\r")
        ok = c.read_until(rb"# ", 10) is not None
        for i in range(ECHOES):
            t0 = time.monotonic()
            if not c.send(b"echo rt-%s-$((%d+1))\r" % (n.encode(), i)) or \
                    c.read_until(b"rt-%s-%d\r" % (n.encode(), i + 1), 10) is None or \
                    c.read_until(rb"# ", 10) is None:
                ok = False
                break
            rtts.append(time.monotonic() - t0)
        after = stats_json()
        t.ok(ok and len(rtts) == ECHOES, "%s: a writer, %d echo round trips" % (door, len(rtts)),
             show(bytes(c.buf[c.pos:])))
        rtts.sort()
        echo50 = rtts[len(rtts) // 2] if rtts else None
        echo99 = rtts[-1] if rtts else None
        for direction in ("to_guest", "to_client"):
            a, b = after.get((door, direction)), before.get((door, direction))
            if not a or not b:
                t.ok(False, "%s %s: in stats --json" % (door, direction), after)
                continue
            dn = a["count"] - b["count"]
            delta_b = [x - y for x, y in zip(a["buckets"], b["buckets"])]
            dsum = a["sum_seconds"] - b["sum_seconds"]
            p50, p99 = quantile(delta_b, 0.5), quantile(delta_b, 0.99)
            # Input: one chunk per keystroke line at least; output: the
            # echo, the result and the prompt, in one chunk or several.
            t.ok(dn >= ECHOES and dsum > 0,
                 "%s %s: %d chunks timed (>= %d), %.6f s in all (> 0)" % (door, direction, dn, ECHOES, dsum))
            t.ok(echo50 is not None and p50 is not None and p50 < echo50 and p99 <= max(echo99, 2 * p50),
                 "%s %s: residence p50 <= %.6f s below the echo p50 %.6f s (p99 <= %s, echo max %.6f)"
                 % (door, direction, p50 or 0, echo50 or 0, p99, echo99 or 0), delta_b)
            t.figure("residence p50 %s %s (bucket bound)" % (door, direction), "%.6f" % (p50 or 0), "s")
            if direction != "to_guest":
                continue
            # The calls that carried that input: part of its residence.
            a, b = after.get((door, "virStreamSend")), before.get((door, "virStreamSend"))
            if not a or not b:
                t.ok(False, "%s virStreamSend: in stats --json" % door, after)
                continue
            cn, csum = a["count"] - b["count"], a["sum_seconds"] - b["sum_seconds"]
            cb = [x - y for x, y in zip(a["buckets"], b["buckets"])]
            c50 = quantile(cb, 0.5)
            t.ok(cn >= ECHOES and 0 < csum <= dsum and c50 is not None and p50 is not None and c50 <= p50,
                 "%s: %d virStreamSend() calls timed (>= %d), %.6f s in all, within the to_guest residence "
                 "(%.6f s); p50 <= %s s, not past the residence's %s s" % (door, cn, ECHOES, csum, dsum, c50, p50),
                 cb)
            t.figure("virStreamSend share of to_guest residence %s" % door,
                     "%.1f" % (100.0 * csum / dsum if dsum else 0), "%")
        t.figure("echo p50 %s" % door, "%.6f" % (echo50 or 0), "s")
        if door in ("ws", "wss"):
            c.close()
            t.ok(wait_for(lambda: metrics().sum("virtconsoled_sessions") == 0, 10),
                 "%s: the writer closes: no session left" % door)
        else:
            t.ok(c.escape(), "%s: the writer leaves with the escape key" % door, show(bytes(c.buf[c.pos:])))
            c.close()
    M1 = metrics()
    p = promtool("check", "metrics", text=M1.text)
    t.ok(p.returncode == 0, "promtool check metrics passes with the histograms filled", p.stdout, p.stderr)
    cnt = M1.get("virtconsoled_forward_seconds_count", door="wss", direction="to_client")
    inf = M1.get("virtconsoled_forward_seconds_bucket", door="wss", direction="to_client", le="+Inf")
    t.ok(cnt and cnt == inf, "the +Inf bucket is the count (wss to_client: %s, %s)" % (inf, cnt))
    loop.stop()


# ------------------------------------------------------------ 9 a stuck console

def loop_thread(pid):
    """CPU seconds of the daemon, and the voluntary context switches of its
    loop's thread (the main one): each wake-up of the loop from a blocking
    epoll_wait is one."""
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    cpu = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    with open("/proc/%d/task/%d/status" % (pid, pid)) as f:
        sw = int(re.search(r"^voluntary_ctxt_switches:\s*(\d+)", f.read(), re.M).group(1))
    return cpu, sw


with t.case("9 a stuck console holding input: the pump backs off (<= 1% of a core, <= 20 wake-ups/s)"):
    # The guest is paused: its UART takes nothing, QEMU stops reading the
    # pty, libvirtd queues the stream's packets and then stops reading the
    # daemon's connection.  The writer's paste waits in the daemon for the
    # connection's send window, which the pump asks about less and less
    # often while nothing moves (5 ms doubling up to 200 ms).  Measured over STUCK s, well inside
    # libvirtd's default keepalive (5 s x 5), which would drop the link.
    STUCK, PASTE = 10, 64 * 1024
    r = lab.virsh("suspend", G)
    t.ok(r.returncode == 0, "guest %s paused" % G, r.stderr)
    w = Client(d.sock(G))
    t.ok(w.send(b"\x15"), "a writer on its unix socket")
    sent = {"n": 0}

    def paste():
        try:
            w.sock.setblocking(True)
            w.sock.settimeout(STUCK + 60)
            for _ in range(0, PASTE, 4096):
                w.sock.sendall(b"x" * 4096)
                sent["n"] += 4096
        except OSError:
            pass
    import threading
    threading.Thread(target=paste, daemon=True).start()

    def bytes_in():
        c = ctl("list", "--json")
        try:
            return sum(x.get("bytes_in", 0) for x in json.loads(c.stdout))
        except (ValueError, AttributeError):
            return None
    # Stuck once what the guest has taken stops moving for 1 s.
    last, still = bytes_in(), 0
    for _ in range(100):
        time.sleep(0.5)
        now = bytes_in()
        still = still + 1 if now == last else 0
        last = now
        if still >= 2:
            break
    t.ok(still >= 2 and last is not None and last < PASTE,
         "the paste is stuck: %s of %d bytes reached the guest and no more for 1 s" % (last, PASTE))
    cpu0, sw0 = loop_thread(d.pid)
    t0 = time.monotonic()
    time.sleep(STUCK)
    cpu1, sw1 = loop_thread(d.pid)
    secs = time.monotonic() - t0
    moved_in = bytes_in()
    # libvirtd may take a packet now and then (its keepalive wakes it):
    # what matters is that input waited all along.
    t.ok(moved_in is not None and moved_in < PASTE,
         "input still waiting after %.1f s: %s of %d bytes in (%s more meanwhile)"
         % (secs, moved_in, PASTE, None if moved_in is None else moved_in - last))
    share, rate = (cpu1 - cpu0) / secs, (sw1 - sw0) / secs
    t.ok(share <= 0.01, "the daemon used %.2f%% of a core meanwhile (<= 1%%)" % (100 * share))
    t.ok(rate <= 20, "its loop woke %.1f times a second (<= 20; polling every 5 ms without backing off, it woke 359 times)" % rate)
    t.figure("stuck console: daemon CPU while it waits", "%.3f" % (100 * share), "%")
    t.figure("stuck console: loop wake-ups", "%.1f" % rate, "/s")
    r = lab.virsh("resume", G)
    t.ok(r.returncode == 0, "guest %s resumed" % G, r.stderr)
    # The paste flows once the guest runs: the window opens and the next
    # poll sends the rest.
    t.ok(wait_for(lambda: (bytes_in() or 0) >= PASTE, 60),
         "the whole paste reaches the guest once it runs again (%s of %d)" % (bytes_in(), PASTE))
    t.ok(w.send(b"\x15\r") and w.escape(), "the writer leaves with the escape key")
    w.close()
    c = Client(d.sock(G))
    t.ok(c.wait_prompt(30) and c.echo_check(), "the guest's shell answers a new client", show(c.pending()))
    t.ok(c.escape(), "which leaves")
    c.close()


with t.case("the end"):
    t.ok(d.alive(), "the daemon is still up")
    t.ok(d.stop() == 0, "and exits 0 on SIGTERM")
    no_sanitizer_report(t, [x for x in (d, d6) if x is not None])

t.done()
