#!/usr/bin/env bash
# xlbctl advise --measure with a small catalog: it completes, reports a p50 per mode and size, saves
# what xlbd's API shows, and leaves nothing behind: not its network namespaces, not its cgroup, not
# an iptables rule in this node's tables, not a pin, not a process, not its scratch directory; also
# when it is stopped halfway (SIGTERM). And it refuses to run beside a live kube-proxy (its
# KUBE-SERVICES chain in the nat table of the namespace it runs in).
#
#   sudo tests/integration/advise_measure_test.sh BUILD_DIR
set -euo pipefail
build=${1:?usage: advise_measure_test.sh BUILD_DIR}
here=$(cd "$(dirname "$0")" && pwd)
. "$here/netns_lib.sh"
require_root
for tool in iptables-restore iptables-save lsns bpftool; do
  if ! command -v "$tool" >/dev/null; then
    [[ ${CI:-} == true ]] && { echo "FAIL: needs $tool (CI=true)" >&2; exit 1; }
    echo "SKIP: needs $tool" >&2
    exit $XLB_SKIP
  fi
done
xlbctl=$(cd "$build" && pwd)/src/xlbctl/xlbctl
[[ -x $xlbctl ]] || { echo "FAIL: build $xlbctl first" >&2; exit 1; }
netns_setup
state=$workdir/state
fail() { echo "FAIL: $*" >&2; exit 1; }
ctl() { "$xlbctl" --config "$workdir/none.toml" --state-dir "$state" --api http://127.0.0.1:1 "$@"; }

host_nat_before=$(iptables-save -t nat | grep -v '^#' | sort | md5sum)

# Everything a run said it made (namespaces, cgroup, scratch directory) is gone, and this node's
# nat table and pins are as before.
check_nothing_left() {  # check_nothing_left LOG WHAT
  local log=$1 what=$2 ns inode cgroup scratch
  grep -q "made network namespaces" "$log" || fail "$what: no line naming what it made in $log"
  for ns in $(grep -o 'net:\[[0-9]*\]' "$log" | sort -u); do
    inode=${ns//[!0-9]/}
    # A namespace lives while a process is in it or holds it open: look at both.
    if find /proc/[0-9]*/ns/net /proc/[0-9]*/fd -maxdepth 1 -lname "net:\[$inode\]" 2>/dev/null | grep -q .; then
      fail "$what: network namespace $ns is still held: $(find /proc/[0-9]*/ns/net /proc/[0-9]*/fd -maxdepth 1 -lname "net:\[$inode\]" 2>/dev/null | head -3)"
    fi
    # The kernel tears a namespace down in a work queue after the last reference goes: give it a
    # moment (bounded) before calling it left behind.
    for _ in $(seq 50); do lsns -t net -n -o NS | grep -qx "$inode" || break; sleep 0.2; done
    lsns -t net -n -o NS | grep -qx "$inode" && fail "$what: lsns still lists $ns 10 s after the run"
  done
  cgroup=$(grep -o 'cgroup [^ ,]*' "$log" | head -1 | cut -d' ' -f2)
  [[ -n $cgroup && $cgroup == */xlb-measure-* ]] || fail "$what: no cgroup named in $log"
  [[ ! -e $cgroup ]] || fail "$what: cgroup $cgroup is still there"
  scratch=$(grep -o 'scratch directory [^ ]*' "$log" | head -1 | cut -d' ' -f3)
  [[ -n $scratch && ! -e $scratch ]] || fail "$what: scratch directory '$scratch' is still there"
  [[ $(iptables-save -t nat | grep -v '^#' | sort | md5sum) == "$host_nat_before" ]] || fail "$what: this node's nat table changed"
  iptables-save -t nat | grep -q 'measure/svc' && fail "$what: a measurement rule is in this node's nat table"
  # It pins nothing (other tests' and benches' pins come and go meanwhile: look for its own).
  ls /sys/fs/bpf | grep -q measure && fail "$what: a pin under /sys/fs/bpf: $(ls /sys/fs/bpf | grep measure)"
  return 0
}

# The BPF programs and maps a running xlbctl holds (from its descriptors' fdinfo), to check after
# it has gone that none of them is still loaded.
bpf_ids_of() {  # bpf_ids_of PID: lines "prog ID" and "map ID"
  local f
  for f in /proc/"$1"/fdinfo/*; do
    awk '$1 == "prog_id:" { print "prog", $2 } $1 == "map_id:" { print "map", $2 }' "$f" 2>/dev/null || true
  done | sort -u
}
check_bpf_gone() {  # check_bpf_gone IDS_FILE WHAT
  local kind id
  (($(wc -l <"$1") > 0)) || fail "$2: no BPF program or map seen while it ran"
  # The kernel frees them after a grace period, not at the exit itself: allow it 5 s.
  while read -r kind id; do
    for _ in $(seq 1 50); do bpftool "$kind" show id "$id" >/dev/null 2>&1 || continue 2; sleep 0.1; done
    fail "$2: BPF $kind $id is still loaded: $(bpftool "$kind" show id "$id" | head -1)"
  done <"$1"
  return 0
}

echo "== a small catalog, -o json: completes, a p50 per mode and size, saved for xlbd"
# Exit 0: replacing pays off, 1: it does not; anything else is a failure to measure.
status=0
ctl -o json advise --measure --sizes 10,50 --run-seconds 0.3 >"$workdir/out.json" 2>"$workdir/progress.log" || status=$?
if ((status > 1)) || ! grep -q '"measured"' "$workdir/out.json"; then
  cat "$workdir/progress.log" "$workdir/out.json" >&2
  fail "advise --measure did not complete (exit $status)"
fi
cat "$workdir/progress.log"
python3 - "$workdir/out.json" "$state/advise.json" <<'EOF'
import json, sys
out = json.load(open(sys.argv[1]))
saved = json.load(open(sys.argv[2]))
m = out["measured"]
sizes = [p["services"] for p in m["points"]]
assert sizes == [10, 50], sizes
for p in m["points"]:
    assert p["socket_lb_p50_us"] > 0 and p["iptables_p50_us"] > 0, p
assert out["verdict"] in ("keep kube-proxy", "replace kube-proxy with xlb"), out["verdict"]
assert any(i["input"] == "crossover" for i in out["inputs"]), out["inputs"]
assert out["saved"].endswith("/advise.json"), out["saved"]
assert saved["measured"]["points"] == m["points"], (saved, m)
assert saved["measured"]["crossover"] == m["crossover"]
print("measured:", [(p["services"], p["socket_lb_p50_us"], p["iptables_p50_us"]) for p in m["points"]],
      "crossover", m["crossover"])
EOF
# Progress: one line per step on stderr, the runs among them.
grep -q "measure: 50 services: iptables  run 3/3: p50" "$workdir/progress.log" || fail "no progress line for the last run"
check_nothing_left "$workdir/progress.log" "a complete run"

echo "== stopped halfway (SIGTERM): exits with the reason, and still leaves nothing"
# Not through ctl(): a function in the background is a subshell, and the signal would reach it, not xlbctl.
"$xlbctl" --config "$workdir/none.toml" --state-dir "$state" --api http://127.0.0.1:1 \
  advise --measure --sizes 10,20,30 --run-seconds 1 >"$workdir/stopped.out" 2>"$workdir/stopped.log" &
pid=$!
pids+=("$pid")
for _ in $(seq 1 200); do grep -q "run 1/3" "$workdir/stopped.log" && break; sleep 0.05; done
grep -q "run 1/3" "$workdir/stopped.log" || fail "the run never started: $(cat "$workdir/stopped.log")"
bpf_ids_of "$pid" >"$workdir/stopped.bpf"
kill -TERM "$pid"
status=0
wait "$pid" || status=$?
((status != 0)) || fail "a stopped measurement exited 0"
grep -q "interrupted" "$workdir/stopped.log" || fail "no word of the interruption: $(tail -2 "$workdir/stopped.log")"
check_nothing_left "$workdir/stopped.log" "a stopped run"
check_bpf_gone "$workdir/stopped.bpf" "a stopped run"

echo "== a live kube-proxy (KUBE-SERVICES in the nat table): refused, nothing made"
ns_create kp
ip netns exec "kp-$suffix" iptables -t nat -N KUBE-SERVICES
status=0
ip netns exec "kp-$suffix" "$xlbctl" --config "$workdir/none.toml" --state-dir "$workdir/kp-state" \
  --api http://127.0.0.1:1 advise --measure --sizes 10 >"$workdir/kp.out" 2>&1 || status=$?
((status == 1)) || fail "beside kube-proxy's chain: exit $status, not 1: $(cat "$workdir/kp.out")"
grep -q "refused: kube-proxy's KUBE-SERVICES chain is in this node's nat table" "$workdir/kp.out" ||
  fail "the refusal does not say why: $(cat "$workdir/kp.out")"
grep -q "made network namespaces" "$workdir/kp.out" && fail "it refused only after making namespaces"
[[ ! -e $workdir/kp-state/advise.json ]] || fail "a refused measurement saved a result"

echo "PASS: advise --measure completes, saves its result, refuses beside kube-proxy, and leaves nothing behind"
