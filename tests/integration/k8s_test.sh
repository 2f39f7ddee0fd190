#!/usr/bin/env bash
# The Kubernetes source end to end: a Service and its EndpointSlice appear in a test API server
# (tests/support/fake_apiserver.py, HTTPS) -> xlbd watches them and programs socket-LB -> a client
# in a test cgroup reaches the endpoints through the ClusterIP.
#
#   client ns c (in cgroup xlb-test-*) --- 10.214.K.1 / 10.214.K.2 --- bK (K = 1, 2)
#   xlbd in the host namespace: no XDP, socket-LB on the test cgroup, [kubernetes] enabled
#
# The client namespace has no route to 10.96.0.0/12: a connect() socket-LB does not translate
# fails there instead of leaving the machine.
set -euo pipefail
build=${1:?usage: k8s_test.sh BUILD_DIR}
here=$(cd "$(dirname "$0")" && pwd)
. "$here/netns_lib.sh"
require_root
netns_setup

xlbd=$build/src/xlbd/xlbd
lbtool=$build/tests/integration/lbtool
cluster_ip=10.96.0.10

ns_create c && client="c-$suffix"
for k in 1 2; do
  ns_create "b$k"
  veth "$client" "eth$k" "10.214.$k.1/24" "b$k-$suffix" eth0 "10.214.$k.2/24"
  bg "b$k-$suffix" "$workdir/b$k.log" "$lbtool" serve "b$k" 8080
  wait_for_line "$workdir/b$k.log" serving
done
cg=$(cgroup_create)

apiserver_start
d=$workdir

service='{"apiVersion": "v1", "kind": "Service",
  "metadata": {"name": "web", "namespace": "default", "uid": "0e0c5d8e-1111-4000-8000-000000000001"},
  "spec": {"type": "ClusterIP", "clusterIP": "'$cluster_ip'", "clusterIPs": ["'$cluster_ip'"],
           "ipFamilies": ["IPv4"], "ipFamilyPolicy": "SingleStack", "sessionAffinity": "None",
           "internalTrafficPolicy": "Cluster",
           "ports": [{"name": "http", "port": 80, "protocol": "TCP", "targetPort": 8080}],
           "selector": {"app": "web"}},
  "status": {"loadBalancer": {}}}'

xlbctl=$build/src/xlbctl/xlbctl
api_listen_port=$((20000 + RANDOM % 10000))
sources() { "$xlbctl" --config "$d/xlb.toml" --state-dir "$d/state" status | sed -n '/^Sources:/,$p'; }
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
watch_silence_timeout = 5
TOML

log=$d/xlbd.log
"$xlbd" --config "$d/xlb.toml" --state-dir "$d/state" --pin-dir "$pin_dir" >"$log" 2>&1 &
xlbd_pid=$!
pids+=("$xlbd_pid")
wait_for_line "$log" "ready:"

run_client() {  # run_client OUT lbtool-args...: in the client namespace and the test cgroup
  local out=$1
  shift
  in_cgroup "$cg" ip netns exec "$client" "$lbtool" "$@" >"$out"
  cat "$out"
}

echo "== the Service and its EndpointSlice appear: the ClusterIP reaches both endpoints"
api_apply services "$service"
api_apply endpointslices "$(slice 10.214.1.2 10.214.2.2)"
wait_for_line "$log" "1 frontends, 2 backends" 15
grep "kubernetes: applied revision" "$log"
run_client "$d/tcp1" tcp $cluster_ip 80 200
check "no failed connection" test "$(count failed "$d/tcp1")" -eq 0
check "b1 takes connections" test "$(count b1 "$d/tcp1")" -gt 20
check "b2 takes connections" test "$(count b2 "$d/tcp1")" -gt 20
sources | tee "$d/sources1"
check "xlbctl status: kubernetes ok, 1 service" grep -q "kubernetes ok (1 services) https://127.0.0.1:$api_port" "$d/sources1"

echo "== b1's endpoint is removed: no new connection reaches it"
api_apply endpointslices "$(slice 10.214.2.2)"
wait_for_line "$log" "1 frontends, 1 backends" 15
run_client "$d/tcp2" tcp $cluster_ip 80 200
check "no connection reaches b1" test "$(count b1 "$d/tcp2")" -eq 0
check "every connection reaches b2" test "$(count b2 "$d/tcp2")" -eq 200

echo "== the API server goes away: the last known good state keeps serving"
kill -KILL "$api_pid"
wait "$api_pid" 2>/dev/null || true
wait_for_line "$log" "Couldn't connect to server" 20
run_client "$d/tcp3" tcp $cluster_ip 80 100
check "b2 still serves the ClusterIP" test "$(count b2 "$d/tcp3")" -eq 100
sources | tee "$d/sources2"
# The error is the services watch's last: its cut stream, or the reconnection refused after it
# (the log's first "Couldn't connect" may be the EndpointSlice watch's).
check "xlbctl status: kubernetes stale, with the error" \
  grep -Eq "kubernetes stale \(1 services\).*(Couldn't connect|Transferred a partial file)" "$d/sources2"

echo "== a restart without the API server keeps the services Kubernetes gave"
kill -TERM "$xlbd_pid"
wait "$xlbd_pid" || true
"$xlbd" --config "$d/xlb.toml" --state-dir "$d/state" --pin-dir "$pin_dir" >"$d/xlbd2.log" 2>&1 &
xlbd_pid=$!
pids+=("$xlbd_pid")
wait_for_line "$d/xlbd2.log" "ready:"
check "restored services announced" grep -q "services it gave before stay in force" "$d/xlbd2.log"
run_client "$d/tcp4" tcp $cluster_ip 80 100
check "b2 still serves the ClusterIP after the restart" test "$(count b2 "$d/tcp4")" -eq 100

kill -TERM "$xlbd_pid"
wait "$xlbd_pid" || true
if ((failures > 0)); then
  echo "$failures checks failed; xlbd's log:" >&2
  cat "$log" >&2
  exit 1
fi
echo "PASS"
