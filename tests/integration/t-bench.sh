#!/bin/bash
# The benchmark harness, short (bench/run.sh --quick) against the suite's
# running lab: 2 guests, 1 and 5 sessions on every path (the floor,
# virtconsoled unix/ws/wss, the old design alone and behind websockify),
# and the capture phase (a daemon with capture = always, every console's
# history filled, its RSS against the bound, its idle CPU).  The previous
# build's path (bench/run.sh --prev) is measured too, with this build as
# the "previous" one (--prev-vcd: no second build): prev-ws only, its
# second daemon beside the first side by side (~25 s more).
# It checks that the harness works and its results are complete and sane,
# not performance targets: every path measured, every session attached,
# no error counted, round trips above 0, memory and CPU figures present,
# virtconsoled's allocations per chunk counted (bench/malloccount.so) in
# every door's throughput run and allocation run (the previous build's
# too), and the report and plot written.  One
# target is checked, because it is a count and not a time: libevent and
# OpenSSL in the daemon allocate less than 0.01 times per chunk it
# forwards through the unix and plain WebSocket doors.  The full run is bench/run.sh
# (README).
. "$(dirname "$0")/../lib.sh"
need_lab
[ -x "$VCD" ] || skip_all "no daemon binary at $VCD"
PY=/usr/bin/python3
"$PY" -c 'import libvirt, matplotlib' 2> /dev/null ||
    skip_all "python3-libvirt or python3-matplotlib missing (tests/deps.sh)"
command -v websockify > /dev/null || skip_all "websockify missing (tests/deps.sh)"

# Pass on the checks a helper wrote as "ok - ..." / "not ok - ..." lines,
# numbered in this test's plan; other lines (diagnostics) as they are.
relay_tap() {
	local line
	while IFS= read -r line; do
		case $line in
		"ok - "*) pass "${line#ok - }" ;;
		"not ok - "*) fail "${line#not ok - }" ;;
		*) echo "$line" ;;
		esac
	done < "$1"
}

OUT=$T_TMP/out
J=$OUT/quick.json
t0=$(date +%s)
"$TOP/bench/run.sh" --quick --lab-from-env --no-deps --prefix tbench \
    --out "$J" --prev-vcd "$VCD_BUILD" \
    -- --paths floor,vcd-unix,vcd-ws,vcd-wss,old-unix,old-ws,prev-ws --nice 1 > "$T_TMP/run.log" 2>&1
rc=$?
diag "bench/run.sh --quick: status $rc in $(($(date +%s) - t0)) s"
check "bench/run.sh --quick succeeds" test "$rc" -eq 0
[ "$rc" -eq 0 ] || tail -n 30 "$T_TMP/run.log" | sed 's/^/#   /'
check "it wrote the results as JSON" "$PY" -c 'import json, sys; json.load(open(sys.argv[1]))' "$J"

# One line per path: measured, attached, no errors, RTT > 0; then the
# report's own completeness check (the same rules, all paths at once).
"$PY" - "$J" > "$T_TMP/paths.tap" 2>&1 <<'EOF'
import json, sys
d = json.load(open(sys.argv[1]))
runs = d.get("runs", [])
for path in ["floor", "vcd-unix", "vcd-ws", "vcd-wss", "old-unix", "old-ws", "prev-ws"]:
    mine = [r for r in runs if r["path"] == path]
    why = []
    phases = {r["phase"] for r in mine}
    for ph in ("echo", "tput-all") + (("side-echo",) if path in ("floor", "vcd-ws", "vcd-wss", "prev-ws")
                                      else ()) + (("alloc",) if path[:4] in ("vcd-", "prev")
                                                  else ()):
        if ph not in phases:
            why.append("no %s run" % ph)
    for r in mine:
        v = r.get("vcdload") or {}
        tag = "%s n=%d" % (r["phase"], r["n"])
        if not r.get("ok"):
            why.append("%s: %s" % (tag, r.get("error")))
        if v.get("ready") != r["n"]:
            why.append("%s: %s of %d sessions ready" % (tag, v.get("ready"), r["n"]))
        if any((v.get("errors") or {}).values()):
            why.append("%s: errors %r" % (tag, v.get("errors")))
        if r["phase"] in ("echo", "side-echo"):
            rt = v.get("rtt_us") or {}
            if not rt.get("count") or not (rt.get("p50") or 0) > 0:
                why.append("%s: no round trip" % tag)
            elif r["phase"] == "echo":
                print("# figure: bench-quick %s echo p50 at %d = %.2f ms"
                      % (path, r["n"], rt["p50"] / 1000.0))
        if r["phase"] == "side-tput" and not (v.get("throughput") or {}).get("total_Bps"):
            why.append("%s: no bytes" % tag)
        if r["phase"] in ("tput-all", "alloc"):
            bps = (v.get("throughput") or {}).get("total_Bps")
            if not bps:
                why.append("%s: no bytes" % tag)
            elif r["phase"] == "tput-all":
                print("# figure: bench-quick %s throughput over %d consoles = %.1f KB/s"
                      % (path, r["n"], bps / 1000.0))
            # bench/malloccount.so in virtconsoled: its allocations per
            # chunk (the previous build's daemon: in the alloc runs).
            al = r.get("allocs") or {}
            ch = sum((al.get("chunks") or {}).values())
            counted = path.startswith("vcd-") or r["phase"] == "alloc"
            if counted and not ((al.get("total") or 0) > 0 and ch > 0):
                why.append("%s: no allocations per chunk counted (%r)" % (tag, al))
            elif counted:
                own = sum(al["by_object"].get(k, 0) for k in ("main", "libevent", "openssl"))
                print("# figure: bench-quick %s allocations per chunk%s = %.3f (the daemon's "
                      "own code %.3f, %d chunks)" % (
                          path, " (alloc run)" if r["phase"] == "alloc" else "",
                          al["total"] / ch, own / ch, ch))
    if path != "floor":
        m = (d.get("memory") or {}).get(path) or {}
        if not m.get("base") or not m.get("idle"):
            why.append("no memory figures")
        ic = (d.get("idle_cpu") or {}).get(path) or {}
        if ic.get("cpu_pct") is None:
            why.append("no idle CPU figure")
    print("%s - %s: measured, every session attached, no errors, RTT > 0"
          % ("ok" if mine and not why else "not ok", path))
    for w in why[:10]:
        print("#   " + w)
EOF
relay_tap "$T_TMP/paths.tap"

"$PY" - "$J" > "$T_TMP/capture.tap" 2>&1 <<'EOF'
import json, sys
c = json.load(open(sys.argv[1])).get("capture") or {}
why = []
if not c.get("ok"):
    why.append("not ok: %s" % c.get("error"))
if not c.get("consoles") or c.get("captured") != c["consoles"] or c.get("full") != c["consoles"]:
    why.append("%s captured, %s full, of %s consoles" % (c.get("captured"), c.get("full"),
                                                        c.get("consoles")))
for k in ("baseline", "measured"):
    if not (c.get(k) or {}).get("rss_kib"):
        why.append("no %s RSS" % k)
if (c.get("idle_cpu") or {}).get("cpu_pct") is None:
    why.append("no idle CPU figure")
if not why:
    print("# figure: bench-quick capture RSS growth / bound over %d consoles = %.2f"
          % (c["consoles"], c["growth_over_bound"]))
    print("# figure: bench-quick capture idle CPU = %.3f %% of one core" % c["idle_cpu"]["cpu_pct"])
print("%s - capture: every console captured and its history full, RSS and idle CPU measured"
      % ("not ok" if why else "ok"))
for w in why:
    print("#   " + w)
EOF
relay_tap "$T_TMP/capture.tap"

"$PY" - "$J" > "$T_TMP/conn.tap" 2>&1 <<'EOF'
import json, sys
conn = json.load(open(sys.argv[1])).get("conn") or {}
for path in ("vcd-ws", "prev-ws"):
    c = conn.get(path) or {}
    ok = all(isinstance(c.get(k), (int, float)) for k in ("conn_kib", "session_kib"))
    if ok:
        print("# figure: bench-quick %s guest connection = %.1f KiB (a session %.1f KiB)"
              % (path, c["conn_kib"], c["session_kib"]))
    print("%s - %s: a guest connection's memory measured on its own (%s)"
          % ("ok" if ok else "not ok", path, c.get("error") or "k %s, m %s" % (c.get("k"), c.get("m"))))
EOF
relay_tap "$T_TMP/conn.tap"

check "the results name the previous build (--prev-vcd)" \
    "$PY" -c 'import json, os, sys; sys.exit(json.load(open(sys.argv[1])).get("prev", {}).get("build") != os.path.abspath(sys.argv[2]))' \
    "$J" "$VCD_BUILD"
# --nice (bench/README.md): nice 1 costs the quick run nothing and proves
# the daemon is started under it (its nice read from /proc).
check "the current build's daemon ran at the --nice asked (1, read from /proc)" \
    "$PY" -c 'import json, sys; r = json.load(open(sys.argv[1])); sys.exit((r.get("vcd_nice"), r.get("vcd_nice_seen")) != (1, 1))' "$J"
check "report.py --check finds the results complete and sane" \
    "$PY" "$TOP/bench/report.py" "$J" --check
check "the report was written (targets, echo, throughput, memory, CPU, capture tables)" \
    sh -c 'for s in "## Targets" "## 1. Keystroke" "## 2. Throughput" "## 3. Memory" "## 4. CPU" "## 5. Capture"; do grep -q "^$s" "$1" || exit 1; done' sh "$OUT/quick.md"
check "the report says the daemon ran at nice 1" \
    grep -q "^| this build's daemon (vcd-\*) | at nice 1 " "$OUT/quick.md"
check "the report sets the ws door against the previous build's (Before and after)" \
    sh -c 'grep -q "^## Before and after" "$1" && grep -q "^| ws | echo p50 ms, side by side" "$1" &&
           grep -q "^| prev-ws |" "$1"' sh "$OUT/quick.md"
check "the plot was written (a PNG)" \
    "$PY" -c 'import sys; sys.exit(open(sys.argv[1], "rb").read(8) != b"\x89PNG\r\n\x1a\n")' "$OUT/quick.png"
check "the report has the allocations per chunk of the three doors and the previous build's" \
    sh -c 'sed -n "/^### Allocations per chunk/,/^## /p" "$1" > "$1.alloc" &&
           for p in vcd-unix vcd-ws vcd-wss prev-ws; do grep -q "^| $p | [0-9]" "$1.alloc" || exit 1; done' sh "$OUT/quick.md"
# Issue 22's target, a count and not a time: the daemon's buffers
# (libevent's, OpenSSL's) take no allocation per chunk forwarded to a
# unix or plain WebSocket client that keeps up (the build before the
# WebSocket door's own write: ~1.85 per chunk on ws, libevent's chains).
# The executable's own allocations are shown, not checked: while a
# console's history fills it takes 16 KiB blocks, up to `history`, a
# count per byte and not per chunk (larger chunks on a loaded machine
# would make it look larger).  Over TLS libevent's and OpenSSL's record
# buffers still allocate: shown by the report, not checked.
"$PY" - "$J" > "$T_TMP/allocs.tap" 2>&1 <<'EOF'
import json, sys
d = json.load(open(sys.argv[1]))
for path in ("vcd-unix", "vcd-ws"):
    own = main = ch = 0
    for r in d.get("runs", []):
        al = r.get("allocs") or {}
        if r["path"] == path and r["phase"] in ("tput-one", "tput-all", "alloc") \
                and al.get("chunks"):
            own += sum(al["by_object"].get(k, 0) for k in ("libevent", "openssl"))
            main += al["by_object"].get("main", 0)
            ch += sum(al["chunks"].values())
    per = own / ch if ch else None
    print("%s - %s: libevent and OpenSSL allocate < 0.01 times per chunk forwarded "
          "(%s over %d chunks; the executable %s)"
          % ("ok" if per is not None and per < 0.01 else "not ok", path,
             "none" if per is None else "%.4f" % per, ch,
             "%.4f" % (main / ch) if ch else "-"))
EOF
relay_tap "$T_TMP/allocs.tap"
check "no guest of the run is left in the lab" \
    sh -c '! virsh -q -c "$LAB_URI" list --name | grep -q "^tbench"'
done_testing
