#!/usr/bin/env bash
# connect() rate and latency to ClusterIPs for traffic that starts on the node, side by side in one
# run, for each catalog size:
#   direct    connect() to the backends' own addresses: the floor, nothing translates
#   xlb       xlbd's socket-LB (cgroup connect4 hook; no XDP, no tc) on a test cgroup
#   iptables  kube-proxy's iptables layout (KUBE-SERVICES -> KUBE-SVC-* -> KUBE-SEP-*, statistic
#             random, DNAT; iptables-restore) in the client namespace's own nat table: the OUTPUT path
#   nft       kube-proxy's nftables layout (table ip kube-proxy: service-ips verdict map, numgen
#             random; nft -f) in the client namespace
# The rule sets come from tests/support/kube_proxy_rules.h, the same catalog as xlb's config.
# Each connect() goes to a random Service of the catalog (an iptables walk is linear in it).
# The load time of each catalog is printed too: iptables-restore, nft -f, and xlbd from start to
# "ready:" (program load, attach and the maps' full sync).
#
#   sudo bench/connect_bench.sh BUILD_DIR [SIZES] [SECONDS] [REPEATS]
#        defaults: "100 1000 10000 50000", 3 s per run, 3 runs per point
#   env: LOAD_TIMEOUT (s, per load, default 300), BACKENDS (default 3), CSV (default ./connect_bench.csv),
#        MODES (default "direct xlb iptables nft": a subset runs only those)
#
# Topology: one client namespace per mode (no default route; 10.96.0.0/16 routed toward its b1 only,
# so that the kube-proxy layouts can route the ClusterIP before OUTPUT's DNAT; an untranslated SYN
# dies in b1, which does not forward), each with a veth to backends of its own, bK (10.202.K.1 /
# 10.202.K.2, lbtool serve on 8080). Every rule set stays loaded while the modes' runs take turns
# (direct, xlb, iptables, nft, direct, ...), so the noise of a shared machine falls on all alike.
# The xlb client runs in the cgroup socket-LB is attached to, the others in a sibling cgroup.
# Nothing leaves the machine; a trap removes namespaces, the cgroup, pins and processes.
set -euo pipefail
build=${1:?usage: connect_bench.sh BUILD_DIR [SIZES] [SECONDS] [REPEATS]}
sizes=${2:-100 1000 10000 50000}
seconds=${3:-3}
repeats=${4:-3}
backends=${BACKENDS:-3}
load_timeout=${LOAD_TIMEOUT:-300}
csv=${CSV:-$PWD/connect_bench.csv}
max_connects=2000000
here=$(cd "$(dirname "$0")" && pwd)
. "$here/../tests/integration/netns_lib.sh"
require_root
for tool in iptables-restore nft nsenter; do
  command -v "$tool" >/dev/null || { echo "connect_bench: needs $tool (apt install iptables nftables util-linux)" >&2; exit 1; }
done
build=$(cd "$build" && pwd)
xlbd=$build/src/xlbd/xlbd
lbtool=$build/tests/integration/lbtool
cb=$build/bench/connect_bench
for b in "$xlbd" "$lbtool" "$cb"; do [[ -x $b ]] || { echo "connect_bench: build $b first" >&2; exit 1; }; done
netns_setup
echo "namespaces, cgroups and pins of this run: *-$suffix"

modes=${MODES:-direct xlb iptables nft}
# One client namespace per mode, each with backends of its own, so that every rule set stays loaded
# while the runs of the four modes take turns (the machine's noise then falls on all of them alike).
declare -A client cgroup_of
for mode in $modes; do
  ns_create "c$mode" && client[$mode]="c$mode-$suffix"
  for k in $(seq 1 "$backends"); do
    ns_create "b$k$mode"
    veth "${client[$mode]}" "eth$k" "10.202.$k.1/24" "b$k$mode-$suffix" eth0 "10.202.$k.2/24"
    ip -n "b$k$mode-$suffix" route add 10.202.0.0/16 via "10.202.$k.1"
    bg "b$k$mode-$suffix" "$workdir/b$k$mode.log" "$lbtool" serve "b$k" 8080
    wait_for_line "$workdir/b$k$mode.log" serving
  done
  ip -n "${client[$mode]}" route add 10.96.0.0/16 via 10.202.1.2
done
# Two sibling cgroups: socket-LB on one (the xlb client's), the other clients in the other.
cg_xlb=$(cgroup_create)
cg_other=$cg_xlb-other
mkdir "$cg_other"
# cgroup_create ran in a subshell: its entry in `cgroups` (what the trap removes) did not reach us.
cgroups+=("$cg_xlb" "$cg_other")
cgroup_of=([direct]=$cg_other [xlb]=$cg_xlb [iptables]=$cg_other [nft]=$cg_other)

now() { date +%s.%N; }
since() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.2f", b - a }'; }
client_run() {  # client_run MODE TARGETS SECONDS: one connect_bench run in MODE's namespace and cgroup
  in_cgroup "${cgroup_of[$1]}" ip netns exec "${client[$1]}" "$cb" run "$2" "$3" "$max_connects"
}
field() { awk -v k="$1" '{ for (i = 1; i < NF; i++) if ($i == k) print $(i + 1) }' <<<"$2"; }

echo "services,mode,run,ok,failed,seconds,rate,mean_us,p50_us,p99_us,load_s" >"$csv"
skipped() {  # skipped SIZE MODE WHY: a point that could not be measured
  printf '%s,%s,0,0,0,0,0,0,0,0,%s\n' "$1" "$2" "$3" >>"$csv"
  echo "  $2 $1 services: $3" >&2
}
wait_ready() {  # wait_ready LOG TEXT [COUNT]: until LOG holds COUNT (1) lines with TEXT (0), an error or xlbd's exit (1)
  local deadline=$((SECONDS + load_timeout))
  while ((SECONDS < deadline)); do
    (($(grep -cF "$2" "$1" || true) >= ${3:-1})) && return 0
    grep -q '^[^ ]* error ' "$1" && return 1
    kill -0 "$xlbd_pid" 2>/dev/null || return 1
    sleep 0.05
  done
  return 1
}
stop_xlbd() {
  [[ -n ${xlbd_pid:-} ]] || return 0
  kill -TERM "$xlbd_pid" 2>/dev/null || true
  wait "$xlbd_pid" || true
  local keep=() p
  for p in "${pids[@]}"; do [[ $p == "$xlbd_pid" ]] || keep+=("$p"); done
  pids=("${keep[@]}")
  nsenter --net="/run/netns/${client[xlb]}" "$xlbd" --config "$dir/xlb.toml" --pin-dir "$pin_dir" --cleanup >/dev/null 2>&1
  xlbd_pid=
}

for size in $sizes; do
  echo "== $size services: catalog, then each load timed alone"
  dir=$workdir/catalog-$size
  mkdir -p "$dir"
  "$cb" catalog "$size" "$backends" "$dir"
  declare -A load=([direct]=0) targets=([direct]=$dir/backends [xlb]=$dir/clusterips [iptables]=$dir/clusterips [nft]=$dir/clusterips)
  live=""
  [[ " $modes " != *" direct "* ]] || live="direct"

  # xlb: socket-LB only, on the xlb client's cgroup; xlbd in that client's namespace (API off).
  # Its load time: from start to "ready:" (programs loaded and attached, every map written).
  xlbd_pid=
  per_service=$((6 + 3 * backends))  # lines of one [[service]] in services.toml
  # Ring room for the whole catalog (each ring is the smallest Maglev size >= 100 slots per backend,
  # maglev.h), which 50,000 Services need beyond the default of 16,777,216 slots.
  ring_size=251
  for t in 251 509 1021 2039 4093 8191 16381; do ring_size=$t; ((t >= 100 * backends)) && break; done
  ring_slots=$((size * ring_size > 16777216 ? size * ring_size : 16777216))
  xlb_config() {  # xlb_config N: xlb.toml with the first N services
    {
      printf '[node]\ninterfaces = []\nxdp_mode = "off"\ncgroup = "%s"\nmax_ring_slots = %d\n[api]\nlisten = "off"\n' \
        "$cg_xlb" "$ring_slots"
      head -n $(($1 * per_service)) "$dir/services.toml"
    } >"$dir/xlb.toml.new"
    mv "$dir/xlb.toml.new" "$dir/xlb.toml"
  }
  if [[ " $modes " == *" xlb "* ]]; then
    xlb_config "$size"
    t0=$(now)
    nsenter --net="/run/netns/${client[xlb]}" "$xlbd" --config "$dir/xlb.toml" \
      --state-dir "$dir/state" --pin-dir "$pin_dir" >"$dir/xlbd.log" 2>&1 &
    xlbd_pid=$!
    pids+=("$xlbd_pid")
    ok=true
    wait_ready "$dir/xlbd.log" "ready:" || ok=false
    if $ok; then
      load[xlb]=$(since "$t0") && live+=" xlb"
    else
      skipped "$size" xlb "not ready in ${load_timeout}s or failed (see its log below)"
      tail -3 "$dir/xlbd.log" >&2
    fi
    echo "  load xlb: ${load[xlb]:-failed}s"
  fi
  # kube-proxy's layouts in their clients' own nat tables (the OUTPUT path).
  for mode in iptables nft; do
    [[ " $modes " == *" $mode "* ]] || continue
    t0=$(now)
    if [[ $mode == iptables ]]; then
      cmd=(timeout "$load_timeout" ip netns exec "${client[$mode]}" iptables-restore "$dir/iptables.rules")
    else
      cmd=(timeout "$load_timeout" ip netns exec "${client[$mode]}" nft -f "$dir/nft.rules")
    fi
    if "${cmd[@]}"; then
      load[$mode]=$(since "$t0") && live+=" $mode"
    else
      skipped "$size" "$mode" "load failed or took over ${load_timeout}s"
    fi
    echo "  load $mode: ${load[$mode]:-failed}s"
  done

  for mode in $live; do  # a short warm-up each, and a check that the ClusterIPs are served
    line=$(client_run "$mode" "${targets[$mode]}" 0.5)
    (($(field failed "$line") == 0)) || echo "warning: $mode, $size services: failed connections in the warm-up: $line" >&2
  done
  for r in $(seq 1 "$repeats"); do
    for mode in $live; do
      line=$(client_run "$mode" "${targets[$mode]}" "$seconds")
      printf '%s,%s,%d,%s,%s,%s,%s,%s,%s,%s,%s\n' "$size" "$mode" "$r" "$(field ok "$line")" "$(field failed "$line")" \
        "$(field seconds "$line")" "$(field rate "$line")" "$(field mean_us "$line")" "$(field p50_us "$line")" \
        "$(field p99_us "$line")" "${load[$mode]}" >>"$csv"
      printf '  %-8s %6s services  run %d: %s\n' "$mode" "$size" "$r" "$line"
    done
  done

  stop_xlbd
  for mode in iptables nft; do [[ -z ${client[$mode]:-} ]] || ip netns exec "${client[$mode]}" nft flush ruleset; done
  unset load targets
  rm -rf "$dir"
done

# The table: per point the median of the runs; ratios against iptables at the same size.
echo
echo "connect() to a random ClusterIP from the node, $backends backends per Service; median of $repeats runs of ${seconds}s"
echo "(ratios: against kube-proxy's iptables layout at the same size; load: seconds to load the catalog)"
awk -F, 'NR > 1 && $3 > 0 { k = $1 SUBSEP $2; n[k]++; rate[k, n[k]] = $7; mean[k, n[k]] = $8; p50[k, n[k]] = $9; p99[k, n[k]] = $10; load[k] = $11 }
  NR > 1 && $3 == 0 { skip[$1, $2] = $11 }
  NR > 1 { if (!($1 in seen)) { seen[$1] = 1; sizes[++ns] = $1 } }
  function med(a, k, m,   v, i, j, t) {
    for (i = 1; i <= m; i++) v[i] = a[k, i]
    for (i = 1; i <= m; i++) for (j = i + 1; j <= m; j++) if (v[j] < v[i]) { t = v[i]; v[i] = v[j]; v[j] = t }
    return m % 2 ? v[(m + 1) / 2] : (v[m / 2] + v[m / 2 + 1]) / 2
  }
  function ratio(a, b) { return b > 0 ? sprintf("%.2fx", a / b) : "-" }
  END {
    printf "%-9s %-9s %8s %9s %7s %8s %7s %8s %7s %8s %7s\n", "services", "mode", "load_s", "conn/s", "vs ipt", "mean_us", "vs ipt", "p50_us", "vs ipt", "p99_us", "vs ipt"
    split("direct xlb iptables nft", modes, " ")
    for (s = 1; s <= ns; s++) {
      size = sizes[s]; b = size SUBSEP "iptables"
      br = n[b] ? med(rate, b, n[b]) : 0; bm = n[b] ? med(mean, b, n[b]) : 0; b50 = n[b] ? med(p50, b, n[b]) : 0; b99 = n[b] ? med(p99, b, n[b]) : 0
      for (m = 1; m <= 4; m++) {
        k = size SUBSEP modes[m]
        if (!n[k]) { printf "%-9s %-9s %s\n", size, modes[m], ((size, modes[m]) in skip) ? skip[size, modes[m]] : "not run"; continue }
        r = med(rate, k, n[k]); mu = med(mean, k, n[k]); a = med(p50, k, n[k]); c = med(p99, k, n[k])
        printf "%-9s %-9s %8s %9.0f %7s %8.1f %7s %8.1f %7s %8.1f %7s\n", size, modes[m], modes[m] == "direct" ? "-" : load[k],
          r, ratio(r, br), mu, ratio(mu, bm), a, ratio(a, b50), c, ratio(c, b99)
      }
    }
  }' "$csv"
echo "CSV (every run): $csv"
# A cgroup whose last process has just exited can refuse rmdir for a moment: retry here, so that
# the trap's one attempt finds nothing left to do.
for c in "${cgroups[@]}"; do
  for _ in $(seq 1 50); do rmdir "$c" 2>/dev/null && break; [[ -d $c ]] || break; sleep 0.1; done
done
