#!/usr/bin/env bash
# Migration from kube-proxy on one node, in namespaces:
#   - kube-proxy's rules (written by kube_proxy_rules from the same objects the test API server
#     serves, loaded with iptables-restore into the node namespace's nat table) carry a Service;
#   - xlbd --shadow watches the test API server: the nat table and the packets are the same before,
#     during and after (every connection still DNATed by kube-proxy's rules, counted by them);
#   - xlbctl diff kube-proxy, run on the node, agrees; after an endpoint change that only xlb sees,
#     it names the difference and exits 1; a saved rule set (--rules) of another port is named too;
#   - xlbctl takeover while a client connects all along: no connection fails, xlb serves (socket-LB
#     on the client's cgroup), kube-proxy's rules are gone; xlbctl rollback: no connection fails,
#     the nat table is as before and the old rules serve again, xlb's datapath has left.
#
#   node ns: client (in cgroup xlb-test-*), xlbd, test API server, kube-proxy's nat rules
#     eth1 10.214.1.1 --- b1 10.214.1.2:8080     eth2 10.214.2.1 --- b2 10.214.2.2:8080
# The node has no default route: 10.96.0.0/12 leads to b1's link, where an address that nobody
# translated dies unanswered.
set -euo pipefail
build=${1:?usage: kube_proxy_migration_test.sh BUILD_DIR}
here=$(cd "$(dirname "$0")" && pwd)
. "$here/netns_lib.sh"
require_root
for tool in iptables-save iptables-restore nft nsenter openssl bpftool; do
  command -v $tool >/dev/null && continue
  [[ ${CI:-} == true ]] && { echo "FAIL: needs $tool (CI=true)" >&2; exit 1; }
  echo "SKIP: needs $tool" >&2
  exit $XLB_SKIP
done
netns_setup

xlbd=$build/src/xlbd/xlbd
xlbctl=$build/src/xlbctl/xlbctl
lbtool=$build/tests/integration/lbtool
rulegen=$build/tests/integration/kube_proxy_rules
cluster_ip=10.96.0.10
d=$workdir

ns_create node && node="node-$suffix"
on_node() { nsenter --net="/run/netns/$node" "$@"; }
for k in 1 2; do
  ns_create "b$k"
  veth "$node" "eth$k" "10.214.$k.1/24" "b$k-$suffix" eth0 "10.214.$k.2/24"
  ip -n "b$k-$suffix" route add 10.214.0.0/16 via "10.214.$k.1"
  bg "b$k-$suffix" "$d/b$k.log" "$lbtool" serve "b$k" 8080
  wait_for_line "$d/b$k.log" serving
done
ip -n "$node" route add 10.96.0.0/12 dev eth1
cg=$(cgroup_create)

apiserver_start "$node"  # on the node, with its own CA; $d/kubeconfig for xlbd
api_apply() {  # api_apply RESOURCE FILE: the object in FILE into the test API server
  on_node python3 - "$api_port" "$d/ca.crt" "$1" "$2" <<'PY'
import json, ssl, sys, urllib.request
port, ca, resource, path = sys.argv[1:]
body = json.dumps({"resource": resource, "object": json.load(open(path))}).encode()
ctx = ssl.create_default_context(cafile=ca)
req = urllib.request.Request(f"https://127.0.0.1:{port}/_test/apply", data=body, method="POST")
urllib.request.urlopen(req, context=ctx, timeout=10).read()
PY
}

cat >"$d/service.json" <<JSON
{"apiVersion": "v1", "kind": "Service",
 "metadata": {"name": "web", "namespace": "default", "uid": "0e0c5d8e-2222-4000-8000-000000000001"},
 "spec": {"type": "ClusterIP", "clusterIP": "$cluster_ip", "clusterIPs": ["$cluster_ip"],
          "ipFamilies": ["IPv4"], "ipFamilyPolicy": "SingleStack", "sessionAffinity": "None",
          "internalTrafficPolicy": "Cluster",
          "ports": [{"name": "http", "port": 80, "protocol": "TCP", "targetPort": 8080}],
          "selector": {"app": "web"}},
 "status": {"loadBalancer": {}}}
JSON
slice() {  # slice FILE ADDRESS...: the service's EndpointSlice with these ready endpoints on node-a
  local out=$1 eps="" a
  shift
  for a in "$@"; do
    eps+="${eps:+,}{\"addresses\": [\"$a\"], \"conditions\": {\"ready\": true, \"serving\": true, \"terminating\": false}, \"nodeName\": \"node-a\"}"
  done
  cat >"$out" <<JSON
{"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
 "metadata": {"name": "web-x7k2p", "namespace": "default",
              "labels": {"kubernetes.io/service-name": "web", "endpointslice.kubernetes.io/managed-by": "endpointslice-controller.k8s.io"}},
 "addressType": "IPv4", "endpoints": [$eps],
 "ports": [{"name": "http", "port": 8080, "protocol": "TCP"}]}
JSON
}
slice "$d/slice.json" 10.214.1.2 10.214.2.2
api_apply services "$d/service.json"
api_apply endpointslices "$d/slice.json"

echo "== kube-proxy's rules for the same objects, in the node's nat table"
"$rulegen" iptables node-a "$d/service.json" "$d/slice.json" >"$d/kube-proxy.rules"
on_node iptables-restore <"$d/kube-proxy.rules"
# The rules and chains, without comments and counters (a chain's policy counters move with traffic).
nat_table() { on_node iptables-save -t nat | grep -v '^#' | sed 's/ \[[0-9]*:[0-9]*\]$//'; }
dnat_packets() {  # connections kube-proxy's rules translated so far: the packet counters of the DNAT rules
  on_node iptables-save -c -t nat | sed -n 's/^\[\([0-9]*\):[0-9]*\] .*-j DNAT .*/\1/p' | awk '{ s += $1 } END { print s + 0 }'
}
run_client() {  # run_client OUT COUNT: COUNT connections to the ClusterIP from the node, in the test cgroup
  in_cgroup "$cg" ip netns exec "$node" "$lbtool" tcp $cluster_ip 80 "$2" >"$1"
  cat "$1"
}
nat_table >"$d/nat.before"
check "the rule set has kube-proxy's hashed chains" grep -q '^:KUBE-SVC-[A-Z2-7]\{16\} ' "$d/nat.before"
run_client "$d/tcp.before" 100
check "before xlb: kube-proxy's rules serve every connection" test "$(count failed "$d/tcp.before")" -eq 0
check "before xlb: both endpoints take connections" test "$(count b1 "$d/tcp.before")" -gt 10 -a "$(count b2 "$d/tcp.before")" -gt 10
check "before xlb: kube-proxy's rules translated 100 connections" test "$(dnat_packets)" -eq 100

echo "== xlbd --shadow on the node: it watches Kubernetes and changes nothing"
api_listen_port=$((20000 + RANDOM % 10000))
cat >"$d/xlb.toml" <<TOML
[node]
interfaces = []
xdp_mode = "off"
cgroup = "$cg"
[api]
listen = "127.0.0.1:$api_listen_port"
[kubernetes]
enabled = true
kubeconfig = "$d/kubeconfig"
node_name = "node-a"
TOML
ctl() { on_node "$xlbctl" --config "$d/xlb.toml" --state-dir "$d/state" "$@"; }
log=$d/xlbd.log
# nsenter itself, not through on_node: $! is then xlbd's own PID (a function in the background is a subshell).
nsenter --net="/run/netns/$node" "$xlbd" --shadow --config "$d/xlb.toml" --state-dir "$d/state" --pin-dir "$pin_dir" >"$log" 2>&1 &
xlbd_pid=$!
pids+=("$xlbd_pid")
wait_for_line "$log" "ready:"
wait_for_line "$log" "1 frontends, 2 backends" 15
check "xlbd says it is in shadow mode" grep -q "shadow mode" "$log"
ctl status >"$d/status" || true
check "xlbctl status: shadow" grep -qi "shadow" "$d/status"
run_client "$d/tcp.shadow" 100
check "in shadow: every connection still served" test "$(count failed "$d/tcp.shadow")" -eq 0
check "in shadow: kube-proxy's rules translated every one (200 in all)" test "$(dnat_packets)" -eq 200
nat_table >"$d/nat.shadow"
check "in shadow: the nat table is as before" diff "$d/nat.before" "$d/nat.shadow"
check "in shadow: nothing attached to the test cgroup" test -z "$(bpftool cgroup show "$cg" 2>/dev/null)"

echo "== xlbctl diff kube-proxy on the node: they agree"
set +e
ctl diff kube-proxy >"$d/diff1"
status=$?
set -e
cat "$d/diff1"
check "diff exits 0 when they agree" test $status -eq 0
check "diff says they agree" grep -q "^agree:" "$d/diff1"
check "diff read the iptables layout" grep -q "kube-proxy (iptables rules): 1 frontends" "$d/diff1"

echo "== an endpoint only xlb sees (kube-proxy has not synced it): named, exit 1"
slice "$d/slice3.json" 10.214.1.2 10.214.2.2 10.214.1.3
api_apply endpointslices "$d/slice3.json"
wait_for_line "$log" "1 frontends, 3 backends" 15
set +e
ctl diff kube-proxy >"$d/diff2"
status=$?
ctl -o json diff kube-proxy >"$d/diff2.json"
set -e
cat "$d/diff2"
check "diff exits 1 on a difference" test $status -eq 1
check "diff names the endpoint" grep -q "endpoints only xlb has: 10.214.1.3:8080" "$d/diff2"
check "diff names the service and frontend" grep -q "default/web:http  $cluster_ip:80/tcp" "$d/diff2"
check "-o json: agree false, one endpoints finding" python3 -c '
import json, sys
r = json.load(open(sys.argv[1]))
assert r["agree"] is False and r["layout"] == "iptables", r
assert [f["kind"] for f in r["findings"]] == ["endpoints"], r' "$d/diff2.json"
api_apply endpointslices "$d/slice.json"
wait_for_line "$log" "1 frontends, 2 backends" 15

echo "== a saved rule set with another port (--rules FILE, nft layout too)"
sed 's/"port": 80,/"port": 81,/' "$d/service.json" >"$d/service81.json"
"$rulegen" iptables node-a "$d/service81.json" "$d/slice.json" >"$d/rules81"
"$rulegen" nft node-a "$d/service.json" "$d/slice.json" >"$d/rules.nft"
# The nftables layout as the kernel lists it back (sets' sizes, blank lines), from a scratch namespace.
ns_create scratch
ip netns exec "scratch-$suffix" nft -f "$d/rules.nft"
ip netns exec "scratch-$suffix" nft list table ip kube-proxy >"$d/rules.listed.nft"
set +e
ctl diff kube-proxy --rules "$d/rules81" >"$d/diff3"
status3=$?
ctl diff kube-proxy --rules - <"$d/rules.listed.nft" >"$d/diff4"
status4=$?
set -e
cat "$d/diff3" "$d/diff4"
check "another port: exit 1, named" test $status3 -eq 1
check "another port: words" grep -q "port differs: kube-proxy serves $cluster_ip:81/tcp, xlb $cluster_ip:80/tcp" "$d/diff3"
check "nft layout as nft lists it, from stdin, agrees" test $status4 -eq 0
check "nft layout named" grep -q "kube-proxy (nftables rules)" "$d/diff4"

echo "== xlbd stops: the nat table is still kube-proxy's, untouched"
kill -TERM "$xlbd_pid"
wait "$xlbd_pid" || true
check "xlbd stopped" test ! -e "/proc/$xlbd_pid"
nat_table >"$d/nat.after"
check "after shadow: the nat table is as before" diff "$d/nat.before" "$d/nat.after"
run_client "$d/tcp.after" 50
check "after shadow: every connection served by kube-proxy's rules" test "$(count failed "$d/tcp.after")" -eq 0 -a "$(dnat_packets)" -eq 250

start_xlbd() {  # start_xlbd LOG: xlbd on the node, --shadow as before (the mode xlbctl leaves comes first)
  nsenter --net="/run/netns/$node" "$xlbd" --shadow --config "$d/xlb.toml" --state-dir "$d/state" --pin-dir "$pin_dir" \
    >"$1" 2>&1 &
  xlbd_pid=$!
  pids+=("$xlbd_pid")
  wait_for_line "$1" "ready:" 20
}
stop_xlbd() {
  kill -TERM "$xlbd_pid"
  wait "$xlbd_pid" || true
}
loop_start() {  # loop_start OUT SECONDS: new connections to the ClusterIP, 10 ms apart, in the background
  in_cgroup "$cg" ip netns exec "$node" "$lbtool" loop $cluster_ip 80 "$2" 10 >"$1" 2>&1 &
  loop_pid=$!
  pids+=("$loop_pid")
}

echo "== takeover: with a client connecting all along, xlb serves and kube-proxy's rules go"
start_xlbd "$d/xlbd.2.log"
wait_for_line "$d/xlbd.2.log" "1 frontends, 2 backends" 15
loop_start "$d/loop.takeover" 12
sleep 1
ctl takeover --pin-dir "$pin_dir" --wait 30 >"$d/takeover" 2>&1 &
takeover_pid=$!
pids+=("$takeover_pid")
wait_for_line "$d/takeover" "restart xlbd now" 30
stop_xlbd
start_xlbd "$d/xlbd.3.log"
set +e
wait "$takeover_pid"
status=$?
wait "$loop_pid"
set -e
cat "$d/takeover" "$d/loop.takeover"
check "takeover exits 0" test $status -eq 0
check "takeover checked preflight, kube-proxy, the diff" grep -q "^agree:" "$d/takeover"
check "xlbd serves after the restart despite --shadow (the mode takeover left)" grep -q "ready:" "$d/xlbd.3.log"
check "xlbd is not in shadow mode" test -z "$(grep 'shadow mode' "$d/xlbd.3.log")"
check "socket-LB attached to the cgroup" test -n "$(bpftool cgroup show "$cg" 2>/dev/null)"
nat_table >"$d/nat.takeover"
check "kube-proxy's rules are gone" test -z "$(grep -E '^:KUBE-(SERVICES|SVC-|SEP-|NODEPORTS|POSTROUTING)' "$d/nat.takeover")"
check "the jumps to them are gone" test -z "$(grep -E -- '-j KUBE-(SERVICES|POSTROUTING)' "$d/nat.takeover")"
check "kubelet's KUBE-MARK-MASQ stays" grep -q '^:KUBE-MARK-MASQ' "$d/nat.takeover"
check "through the takeover: no connection failed" test "$(count failed "$d/loop.takeover")" -eq 0
check "through the takeover: connections kept going" test "$(count ok "$d/loop.takeover")" -gt 100
run_client "$d/tcp.xlb" 100
check "after takeover: xlb serves every connection" test "$(count failed "$d/tcp.xlb")" -eq 0
check "after takeover: both endpoints" test "$(count b1 "$d/tcp.xlb")" -gt 10 -a "$(count b2 "$d/tcp.xlb")" -gt 10

echo "== rollback: kube-proxy's rules come back first, then xlb's datapath leaves"
loop_start "$d/loop.rollback" 8
sleep 1
ctl rollback --pin-dir "$pin_dir" --wait 30 >"$d/rollback" 2>&1 &
rollback_pid=$!
pids+=("$rollback_pid")
wait_for_line "$d/rollback" "stop xlbd now" 30
stop_xlbd
set +e
wait "$rollback_pid"
status=$?
wait "$loop_pid"
set -e
cat "$d/rollback" "$d/loop.rollback"
check "rollback exits 0" test $status -eq 0
nat_table >"$d/nat.rollback"
check "after rollback: the nat table is as before the takeover" diff "$d/nat.before" "$d/nat.rollback"
check "after rollback: nothing attached to the cgroup" test -z "$(bpftool cgroup show "$cg" 2>/dev/null)"
check "after rollback: the pins are gone" test ! -e "$pin_dir"
check "through the rollback: no connection failed" test "$(count failed "$d/loop.rollback")" -eq 0
before=$(dnat_packets)
run_client "$d/tcp.rolledback" 50
check "after rollback: kube-proxy's old rules serve every connection again" \
  test "$(count failed "$d/tcp.rolledback")" -eq 0 -a "$(dnat_packets)" -eq $((before + 50))
start_xlbd "$d/xlbd.4.log"
check "xlbd starts in shadow mode again (the mode rollback left)" grep -q "shadow mode" "$d/xlbd.4.log"
python3 -c 'import sqlite3,sys; [print(m) for (m,) in sqlite3.connect(sys.argv[1]).execute("SELECT message FROM events WHERE kind = \x27mode\x27 ORDER BY id")]' \
  "$d/state/state.db" >"$d/mode_events"
cat "$d/mode_events"
check "the takeover is in the history" grep -q "^xlbd starts in serve mode (was shadow): set by xlbctl takeover/rollback" "$d/mode_events"
check "and the rollback" grep -q "^xlbd starts in shadow mode (was serve): set by xlbctl takeover/rollback" "$d/mode_events"
stop_xlbd

if ((failures > 0)); then
  echo "$failures checks failed; xlbd's logs:" >&2
  cat "$log" "$d"/xlbd.*.log >&2
  exit 1
fi
echo "PASS"
