#!/usr/bin/env bash
# Every benchmark of the project in one command, with bounded sizes, and one report:
#
#   sudo bench/report.sh BUILD_DIR [OUT_DIR]          (OUT_DIR default: bench/results)
#
# Writes OUT_DIR/report-DATE.md (the tables), report-DATE.csv (every figure: bench,metric,value,unit),
# report-DATE-connect.csv (every run of connect_bench), report-DATE.svg (connect() p50 against
# catalog size per mode, drawn by gnuplot: the picture of the decision rule) and report-DATE.log
# (each bench's own output), and prints the markdown. About 8 minutes on the 2-core build VM.
#
# The benches, each under a time limit; one that fails or overruns is reported as such and the
# others go on:
#   maglev_bench     Maglev table build time, ring memory for 10,000 services of 4 backends
#   xdp_bench        XDP ns/packet, 10 vs 100,000 frontends (BPF_PROG_TEST_RUN)
#   connect_bench.sh connect() from the node: socket-LB vs iptables vs nftables vs direct, at
#                    CONNECT_SIZES services (default "100 1000 5000 10000"), 3 runs of 2 s
#   sync_bench       full sync of 10,000 Services x 4 backends, xlb's maps vs iptables-restore, and
#                    one Service more (incremental) vs kube-proxy's partial iptables-restore
#   k8s_bench        EndpointSlice change -> maps, 100 vs 10,000 services (30 changes each)
#   k8s_sustained    100 changes/s for 20 s into 2,000 services x 10 endpoints: lag, loss, RSS
#   conn_rate.sh     new connections/s through the load balancer (XDP) vs iptables, 1,000 services
#   dsr_bench.sh     dsr vs nat: connection rate and bytes through the load balancer
#
# Needs root (the benches load BPF and make namespaces), the build's bench targets, xlbd, lbtool,
# iptables, nftables, python3 and gnuplot (scripts/setup-deps.sh installs them).
set -euo pipefail
build=${1:?usage: report.sh BUILD_DIR [OUT_DIR]}
here=$(cd "$(dirname "$0")" && pwd)
out=$(mkdir -p "${2:-$here/results}" && cd "${2:-$here/results}" && pwd)
build=$(cd "$build" && pwd)
connect_sizes=${CONNECT_SIZES:-100 1000 5000 10000}
[[ $(id -u) -eq 0 ]] || { echo "report: run as root (the benches load BPF and make namespaces)" >&2; exit 1; }
for tool in python3 gnuplot iptables-restore nft; do
  command -v "$tool" >/dev/null || { echo "report: needs $tool (scripts/setup-deps.sh installs it)" >&2; exit 1; }
done
for b in bench/maglev_bench bench/xdp_bench bench/connect_bench bench/sync_bench bench/k8s_bench bench/k8s_sustained \
         src/xlbd/xlbd tests/integration/lbtool; do
  [[ -x $build/$b ]] || { echo "report: build $build/$b first (cmake --build $build)" >&2; exit 1; }
done

date=$(date -u +%Y-%m-%d)
base=$out/report-$date
work=$(mktemp -d /tmp/xlb-report.XXXXXX)
trap 'rm -rf "$work"' EXIT
start=$SECONDS
: >"$base.log"

# step NAME LIMIT_S COMMAND...: runs one bench with its output in $work/NAME.out and the log, and a
# line per step on stderr; its exit status in $work/NAME.status (124: over its time limit).
step() {
  local name=$1 limit=$2 status=0 t0=$SECONDS
  shift 2
  echo "report: $name ($*), at most ${limit}s" >&2
  timeout --kill-after=10 "$limit" "$@" >"$work/$name.out" 2>&1 || status=$?
  echo "$status" >"$work/$name.status"
  echo "$((SECONDS - t0))" >"$work/$name.seconds"
  { echo "===== $name: $* (exit $status, $((SECONDS - t0)) s)"; cat "$work/$name.out"; echo; } >>"$base.log"
  ((status == 0)) || echo "report: $name failed (exit $status); its output is in $base.log" >&2
}

step maglev 120 "$build/bench/maglev_bench" --benchmark_format=json --benchmark_min_time=0.2
step xdp 300 "$build/bench/xdp_bench"
step connect 900 env CSV="$work/connect.csv" "$here/connect_bench.sh" "$build" "$connect_sizes" 2 3
step sync 300 "$build/bench/sync_bench" 10000 4 20
step k8s 400 "$build/bench/k8s_bench" 30
step k8s_sustained 300 "$build/bench/k8s_sustained" 20 2000
step conn_rate 300 "$here/conn_rate.sh" "$build" 1000 5
step dsr 300 "$here/dsr_bench.sh" "$build" 5 50
[[ -f $work/connect.csv ]] && cp "$work/connect.csv" "$base-connect.csv"
wall=$((SECONDS - start))

python3 - "$work" "$base" "$wall" "$(uname -r)" "$(nproc)" "$connect_sizes" <<'PY'
import csv, json, re, statistics, sys
work, base, wall, kernel, cpus, sizes = sys.argv[1:7]
rows = []  # (bench, metric, value, unit)

def out(name):
    try:
        return open(f"{work}/{name}.out").read()
    except OSError:
        return ""

def ok(name):
    try:
        return open(f"{work}/{name}.status").read().strip() == "0"
    except OSError:
        return False

def why(name):
    try:
        s = open(f"{work}/{name}.status").read().strip()
    except OSError:
        return "not run"
    return "over its time limit" if s == "124" else f"failed (exit {s})"

def num(v):
    return f"{v:,.0f}" if abs(v) >= 100 else f"{v:,.1f}" if abs(v) >= 10 else f"{v:,.2f}" if abs(v) >= 0.1 else f"{v:.3f}"

md = []  # the summary table: what | result | command

# Maglev.
if ok("maglev"):
    j = json.loads(out("maglev")[out("maglev").index("{"):])
    for b in j["benchmarks"]:
        if b["name"].startswith("BM_Build/"):
            m, n = b["name"].split("/")[1:3]
            rows.append(("maglev", f"build_M{m}_N{n}", b["real_time"], "us"))
        if b["name"].startswith("BM_RingMemory"):
            rows.append(("maglev", "ring_memory_right_sized_10000x4", b["right_sized_MiB"], "MiB"))
            rows.append(("maglev", "ring_memory_fixed_16381_10000x4", b["fixed_16381_MiB"], "MiB"))
    get = {r[1]: r[2] for r in rows if r[0] == "maglev"}
    md.append(("Maglev table build, M=65521 / N=1000; ring memory for 10,000 services x 4 backends",
               f"{num(get.get('build_M65521_N1000', 0) / 1000)} ms; rings {num(get.get('ring_memory_right_sized_10000x4', 0))} MiB "
               f"right-sized vs {num(get.get('ring_memory_fixed_16381_10000x4', 0))} MiB at M=16381",
               "build/bench/maglev_bench"))
else:
    md.append(("Maglev table build", why("maglev"), "build/bench/maglev_bench"))

# XDP.
if ok("xdp"):
    paths = {}
    for line in out("xdp").splitlines():
        m = re.match(r"(established \(ct hit\)|new flow \(pick \+ inserts\)|new flow, flow tables full|not a frontend)\s+"
                     r"([\d.]+) ns \[.*?\]\s+([\d.]+) ns", line)
        if m:
            key = {"established (ct hit)": "established", "new flow (pick + inserts)": "new_flow",
                   "new flow, flow tables full": "new_flow_full", "not a frontend": "not_frontend"}[m.group(1)]
            paths[key] = (float(m.group(2)), float(m.group(3)))
            rows.append(("xdp", f"{key}_10_frontends", float(m.group(2)), "ns"))
            rows.append(("xdp", f"{key}_100000_frontends", float(m.group(3)), "ns"))
    text = "; ".join(f"{k.replace('_', ' ')} {num(a)} / {num(b)} ns" for k, (a, b) in paths.items())
    md.append(("XDP ns/packet (net of XDP_PASS), 10 / 100,000 frontends", text, "sudo build/bench/xdp_bench"))
else:
    md.append(("XDP ns/packet", why("xdp"), "sudo build/bench/xdp_bench"))

# connect(): medians of the runs per size and mode.
modes = ["direct", "xlb", "iptables", "nft"]
label = {"direct": "direct", "xlb": "socket-LB (xlb)", "iptables": "iptables (kube-proxy)", "nft": "nftables (kube-proxy)"}
p50, load = {}, {}
try:
    runs = {}
    for r in csv.DictReader(open(f"{work}/connect.csv")):
        if int(r["run"]) > 0:
            runs.setdefault((int(r["services"]), r["mode"]), []).append(float(r["p50_us"]))
            load[(int(r["services"]), r["mode"])] = r["load_s"]
    p50 = {k: statistics.median(v) for k, v in runs.items()}
except OSError:
    pass
measured_sizes = sorted({s for s, _ in p50})
for (s, m), v in sorted(p50.items()):
    rows.append(("connect", f"p50_{m}_{s}", v, "us"))
with open(f"{work}/connect.dat", "w") as f:
    f.write("# services " + " ".join(modes) + "\n")
    for s in measured_sizes:
        f.write(f"{s} " + " ".join(f"{p50[(s, m)]:.2f}" if (s, m) in p50 else "NaN" for m in modes) + "\n")
if measured_sizes:
    top = measured_sizes[-1]
    a, b = p50.get((top, "xlb")), p50.get((top, "iptables"))
    md.append((f"connect() p50 from the node at {top:,} services: socket-LB vs kube-proxy's iptables",
               f"{num(a)} vs {num(b)} µs (**{b / a:.1f}x**); table and chart below" if a and b else "incomplete, see below",
               f'sudo bench/connect_bench.sh build "{sizes}" 2 3'))
else:
    md.append(("connect() from the node", why("connect"), "sudo bench/connect_bench.sh build"))

# Full sync and one Service more.
sync = dict(l.split(" ", 1) for l in out("sync").splitlines() if re.match(r"^[a-z_0-9]+ \S", l))
if ok("sync"):
    for k in ["xlb_full_sync_maps_ms", "xlb_full_sync_ms", "iptables_restore_ms", "full_sync_ratio", "xlb_add_one_ms_p50", "xlb_add_one_ms_p99",
              "xlb_add_one_maps_ms_p50", "xlb_add_one_maps_ms_p99",
              "xlb_add_one_cpu_ms_p50", "iptables_add_one_ms_p50", "iptables_add_one_ms_p99", "add_one_ratio"]:
        if k in sync:
            rows.append(("sync", k, float(sync[k]), "ms" if k.endswith(("_ms", "_p50", "_p99")) else "x"))
    md.append(("full sync, 10,000 Services x 4 backends: xlb's maps vs iptables-restore of kube-proxy's layout (target: 10x)",
               f"{num(float(sync['xlb_full_sync_maps_ms']))} ms in the maps ({num(float(sync['xlb_full_sync_ms']))} committed) "
               f"vs {num(float(sync['iptables_restore_ms']))} ms (**{float(sync['full_sync_ratio']):.1f}x**)",
               "sudo build/bench/sync_bench 10000 4 20"))
    md.append((f"one Service added to 10,000: into the maps ({sync['xlb_add_one_api'].strip()}) vs kube-proxy's partial "
               "iptables-restore (target: < 1 ms)",
               f"in the maps p50 {num(float(sync['xlb_add_one_maps_ms_p50']))} ms (p99 {num(float(sync['xlb_add_one_maps_ms_p99']))}); "
               f"committed p50 {num(float(sync['xlb_add_one_ms_p50']))} ms (p99 {num(float(sync['xlb_add_one_ms_p99']))}; CPU "
               f"{num(float(sync.get('xlb_add_one_cpu_ms_p50', 'nan')))} ms) vs "
               f"{num(float(sync['iptables_add_one_ms_p50']))} ms (**{float(sync['add_one_ratio']):.0f}x**)",
               "sudo build/bench/sync_bench 10000 4 20"))
else:
    md.append(("full sync and one Service more", why("sync"), "sudo build/bench/sync_bench 10000 4 20"))

# EndpointSlice change -> maps.
k8s = re.findall(r"^\s*(\d+)\s+([\d.]+)\s+([\d.]+)\s+([\d.]+)\s+([\d.]+)\s+([\d.]+) s", out("k8s"), re.M)
if ok("k8s") and k8s:
    for n, e50, e99, w50, w99, sync_s in k8s:
        rows += [("k8s", f"event_to_maps_p50_{n}", float(e50), "ms"), ("k8s", f"event_to_maps_p99_{n}", float(e99), "ms"),
                 ("k8s", f"initial_sync_{n}", float(sync_s), "s")]
    md.append(("EndpointSlice change -> maps, " + " / ".join(f"{int(n):,}" for n, *_ in k8s) + " services",
               "p50 " + " / ".join(num(float(x[1])) for x in k8s) + " ms, p99 " + " / ".join(num(float(x[2])) for x in k8s) + " ms",
               "sudo build/bench/k8s_bench 30"))
else:
    md.append(("EndpointSlice change -> maps", why("k8s"), "sudo build/bench/k8s_bench 30"))

# Sustained churn.
m = re.search(r"lag write->maps p50 ([\d.]+) ms, p99 ([\d.]+) ms", out("k8s_sustained"))
lost = re.search(r"no change lost: (\w+)", out("k8s_sustained"))
if ok("k8s_sustained") and m:
    rows += [("k8s_sustained", "lag_p50_2000x10", float(m.group(1)), "ms"), ("k8s_sustained", "lag_p99_2000x10", float(m.group(2)), "ms")]
    md.append(("100 EndpointSlice changes/s for 20 s, 2,000 services x 10 endpoints: lag write -> maps",
               f"p50 {num(float(m.group(1)))} ms, p99 {num(float(m.group(2)))} ms; no change lost: {lost.group(1) if lost else '?'}",
               "sudo build/bench/k8s_sustained 20 2000"))
else:
    md.append(("sustained churn", why("k8s_sustained"), "sudo build/bench/k8s_sustained 20 2000"))

# New connections through the load balancer.
x = re.search(r"xlb \(XDP\)\s+(\d+)", out("conn_rate"))
i = re.search(r"^\s*iptables\s+(\d+)", out("conn_rate"), re.M)
if ok("conn_rate") and x and i:
    rows += [("conn_rate", "xlb_xdp_1000", float(x.group(1)), "conn/s"), ("conn_rate", "iptables_1000", float(i.group(1)), "conn/s")]
    md.append(("new connections/s through the load balancer, 1,000 services: xlb XDP vs iptables",
               f"{int(x.group(1)):,} vs {int(i.group(1)):,} (**{int(x.group(1)) / int(i.group(1)):.2f}x**)",
               "sudo bench/conn_rate.sh build 1000 5"))
else:
    md.append(("new connections/s through the load balancer", why("conn_rate"), "sudo bench/conn_rate.sh build 1000 5"))

# dsr vs nat.
d = re.search(r"dsr / nat: connection rate ([\d.]+), bytes through lb ([\d.]+)", out("dsr"))
c = re.search(r"lb carried ([\d.]+) bytes per downloaded byte with nat, ([\d.]+) with dsr", out("dsr"))
if ok("dsr") and d and c:
    rows += [("dsr", "connection_rate_dsr_over_nat", float(d.group(1)), "x"),
             ("dsr", "lb_bytes_per_byte_nat", float(c.group(1)), "B/B"), ("dsr", "lb_bytes_per_byte_dsr", float(c.group(2)), "B/B")]
    md.append(("dsr vs nat: connection rate, bytes through the load balancer per downloaded byte",
               f"rate dsr/nat {float(d.group(1)):.2f}; {c.group(1)} (nat) vs {c.group(2)} (dsr)", "sudo bench/dsr_bench.sh build 5 50"))
else:
    md.append(("dsr vs nat", why("dsr"), "sudo bench/dsr_bench.sh build 5 50"))

with open(f"{base}.csv", "w", newline="") as f:
    w = csv.writer(f)
    w.writerow(["bench", "metric", "value", "unit"])
    for r in rows:
        w.writerow([r[0], r[1], f"{r[2]:.4g}", r[3]])

name = base.rsplit("/", 1)[1]
lines = [f"## Benchmark report {name[len('report-'):]}", "",
         f"Kernel {kernel}, {cpus} CPUs; `sudo bench/report.sh build` took {int(wall) // 60} min {int(wall) % 60} s. "
         f"Every figure is in [{name}.csv]({name}.csv), each bench's output in [{name}.log]({name}.log).", "",
         "| what | result | command |", "|---|---|---|"]
lines += [f"| {a} | {b} | `{c}` |" for a, b, c in md]
if measured_sizes:
    lines += ["", "connect() to a random ClusterIP from the node, p50 µs (median of 3 runs of 2 s; load: seconds to load the catalog)", "",
              "| services | " + " | ".join(label[m] for m in modes) + " | iptables ÷ socket-LB | load s: xlb · iptables · nft |",
              "|---" * (len(modes) + 3) + "|"]
    for s in measured_sizes:
        cells = [num(p50[(s, m)]) if (s, m) in p50 else "–" for m in modes]
        ratio = f"{p50[(s, 'iptables')] / p50[(s, 'xlb')]:.2f}x" if (s, "iptables") in p50 and (s, "xlb") in p50 else "–"
        loads = " · ".join(load.get((s, m), "–") for m in ["xlb", "iptables", "nft"])
        lines.append(f"| {s:,} | " + " | ".join(cells) + f" | {ratio} | {loads} |")
    lines += ["", f"![connect() p50 against catalog size per mode]({name}.svg)"]
open(f"{base}.md", "w").write("\n".join(lines) + "\n")
PY

# The chart: p50 against catalog size, one line per mode (log-scale catalog).
if [[ -s $work/connect.dat ]] && (($(wc -l <"$work/connect.dat") > 1)); then
  gnuplot <<GNUPLOT
set terminal svg size 760,440 dynamic font "sans,12" background rgb "white"
set output "$base.svg"
set title "connect() to a ClusterIP from the node: p50 against catalog size ($(uname -r), $(date -u +%Y-%m-%d))"
set xlabel "Services in the catalog"
set ylabel "connect() p50 (µs)"
set logscale x
set offsets graph 0.04, graph 0.04, 0, 0
set xtics (100, 1000, 5000, 10000, 50000)
set yrange [0:*]
set grid
set key top left
set datafile missing "NaN"
plot "$work/connect.dat" using 1:2 with linespoints lw 2 pt 7 title "direct (no translation)", \
     "" using 1:3 with linespoints lw 2 pt 5 title "socket-LB (xlb)", \
     "" using 1:4 with linespoints lw 2 pt 9 title "iptables (kube-proxy)", \
     "" using 1:5 with linespoints lw 2 pt 11 title "nftables (kube-proxy)"
GNUPLOT
fi
cat "$base.md"
echo
echo "report: $base.md, .csv, -connect.csv, .svg, .log ($((SECONDS - start)) s)" >&2
