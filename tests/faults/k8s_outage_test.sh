#!/usr/bin/env bash
# Fault: the Kubernetes API server unreachable for minutes, under real traffic through XDP.
#
#   client 10.221.0.2 ---- 10.221.0.1 lb 10.222.K.1 ---- 10.222.K.2 bK   (K = 1..3)
#   lb: xlbd (XDP, nat) with [kubernetes], and the test API server on lb's 127.0.0.1
#
# Service web (LoadBalancer 198.18.0.50:80 -> bK:8080) comes from the API server, on b1 and b2.
# Then for OUTAGE seconds (default 150) xlbd cannot reach the API server: first a black hole (an
# nftables rule in lb drops its packets: the open watches go silent, new connections hang), for the
# second half a refused connection (the rule answers with a TCP reset; half, because a request
# caught in the black hole first has to time out, and the next one waits out its backoff, before
# the refusal can show: a fifth, 30 s, was too short once in CI). Meanwhile:
#   - a client opens one connection a second through the VIP: none fails;
#   - xlbctl status says the kubernetes source is stale, with an error, in each part; its service
#     stays, and xlbd commits no revision (nothing withdrawn);
#   - the EndpointSlice changes on the server (b1 out, b3 in);
#   - xlbd's RSS grows by at most 6 MiB.
# When the server is reachable again, the change is applied (b3 serves, b1 gets nothing) and the
# source is ok again, within seconds (bounded by xlbd's 30 s retry backoff).
set -euo pipefail
build=${1:?usage: k8s_outage_test.sh BUILD_DIR [OUTAGE_SECONDS]}
outage=${2:-150}
here=$(cd "$(dirname "$0")" && pwd)
. "$here/../integration/netns_lib.sh"
require_root
if ! command -v nft >/dev/null || ! command -v openssl >/dev/null; then
  [[ ${CI:-} == true ]] && { echo "FAIL: needs nft and openssl (CI=true: a kernel test must not skip)" >&2; exit 1; }
  echo "SKIP: needs nft and openssl" >&2
  exit $XLB_SKIP
fi
((outage >= 20)) || { echo "OUTAGE_SECONDS must be at least 20" >&2; exit 2; }
netns_setup

xlbd=$build/src/xlbd/xlbd
xlbctl=$build/src/xlbctl/xlbctl
lbtool=$build/tests/integration/lbtool
vip=198.18.0.50
lb_topology 10.221.0 10.222 3
apiserver_start "$lb"

api_listen=127.0.0.1:$((20000 + RANDOM % 10000))
cat >"$workdir/xlb.toml" <<TOML
[node]
interfaces = ["lbc", "lb1", "lb2", "lb3"]
xdp_mode = "native"
cgroup = "off"
[api]
listen = "$api_listen"
[kubernetes]
enabled = true
kubeconfig = "$workdir/kubeconfig"
node_name = "node-a"
watch_silence_timeout = 5
TOML
log=$workdir/xlbd.log
nsenter --net="/run/netns/$lb" "$xlbd" --config "$workdir/xlb.toml" --state-dir "$workdir/state" \
  --pin-dir "$pin_dir" >"$log" 2>&1 &
xlbd_pid=$!
pids+=("$xlbd_pid")
wait_for_line "$log" "ready:" 30

# source: "STATE SERVICES DETAIL" of the kubernetes source, from xlbctl status -o json.
source_line() {
  ip netns exec "$lb" "$xlbctl" --config "$workdir/xlb.toml" --state-dir "$workdir/state" status -o json 2>&1 |
    python3 -c 'import json, sys
try:
    node = json.load(sys.stdin)
except ValueError:
    print("unreadable - -"); sys.exit()
for s in node.get("sources", []):
    if s.get("name") == "kubernetes":
        print(s.get("state"), s.get("services"), s.get("detail"))'
}
rss_kib() { awk '/^VmRSS:/ { print $2 }' "/proc/$xlbd_pid/status"; }
revisions() { grep -c "applied revision" "$log" || true; }
traffic() {  # traffic NAME COUNT: COUNT connections from the client, tallied in $workdir/NAME
  ip netns exec "$client" "$lbtool" tcp "$vip" 80 "$2" >"$workdir/$1" || true
  echo "$1: $(tr '\n' ' ' <"$workdir/$1")"
}

echo "== Service web (LoadBalancer $vip) on b1 and b2"
api_apply services '{"apiVersion": "v1", "kind": "Service",
  "metadata": {"name": "web", "namespace": "default", "uid": "0e0c5d8e-2222-4000-8000-000000000001"},
  "spec": {"type": "LoadBalancer", "clusterIP": "10.96.0.10", "clusterIPs": ["10.96.0.10"],
           "ipFamilies": ["IPv4"], "ipFamilyPolicy": "SingleStack", "sessionAffinity": "None",
           "internalTrafficPolicy": "Cluster", "externalTrafficPolicy": "Cluster",
           "allocateLoadBalancerNodePorts": false,
           "ports": [{"name": "http", "port": 80, "protocol": "TCP", "targetPort": 8080}],
           "selector": {"app": "web"}},
  "status": {"loadBalancer": {"ingress": [{"ip": "'$vip'"}]}}}'
api_apply endpointslices "$(slice 10.222.1.2 10.222.2.2)"
wait_for_line "$log" "2 backends" 20
traffic t0 200
check "b1 and b2 serve the VIP" test "$(count b1 "$workdir/t0")" -gt 20 -a "$(count b2 "$workdir/t0")" -gt 20
check "no connection failed" test "$(count failed "$workdir/t0")" -eq 0
read -r state services detail < <(source_line) || true
echo "kubernetes: $state ($services services) $detail"
check "kubernetes source ok with 1 service" test "$state $services" = "ok 1"

# Let the watches settle (bookmarks flow) before the outage.
sleep 3
revisions_before=$(revisions)
rss_before=$(rss_kib)
black_hole=$((outage / 2))
echo "== the API server unreachable for $outage s: a black hole for $black_hole s, then refused"
ip netns exec "$lb" nft -f - <<NFT
table inet xlbtest {
  chain out {
    type filter hook output priority 0; policy accept;
    ip saddr 127.0.0.1 tcp dport $api_port drop
    ip daddr 127.0.0.1 tcp sport $api_port drop
  }
}
NFT
start=$SECONDS
# One connection a second through the VIP for the whole outage (bounded: $outage connections).
(
  for ((i = 0; i < outage && SECONDS - start < outage; i++)); do
    ip netns exec "$client" "$lbtool" tcp "$vip" 80 1 | sed "s/^/$((SECONDS - start))s /"
    sleep 1
  done
) >"$workdir/clients" &
client_loop=$!
pids+=("$client_loop")

rss_shown=0 changed="" stale_hole="" stale_refused="" refusing="" rss_max=$rss_before services_min=1 last=""
while ((SECONDS - start < outage)); do
  t=$((SECONDS - start))
  if [[ -z $changed ]] && ((t >= 10)); then
    api_apply endpointslices "$(slice 10.222.2.2 10.222.3.2)"
    changed=$t
    echo "  ${t}s: on the server, the EndpointSlice now holds b2 and b3 (b1 out)"
  fi
  if [[ -z $refusing ]] && ((t >= black_hole)); then
    ip netns exec "$lb" nft flush chain inet xlbtest out
    ip netns exec "$lb" nft add rule inet xlbtest out ip saddr 127.0.0.1 tcp dport "$api_port" reject with tcp reset
    refusing=$t
    echo "  ${t}s: the API server's port now refuses connections"
  fi
  read -r state services detail < <(source_line) || true
  line="kubernetes $state ($services services) $detail"
  [[ $line != "$last" ]] && echo "  ${t}s: $line"
  last=$line
  # Stale with an error after the server's address: "https://127.0.0.1:PORT: ERROR".
  if [[ $state == stale && $detail == *": "?* ]]; then
    if [[ -z $refusing ]]; then
      stale_hole=${stale_hole:-"${t}s: $detail"}
    elif [[ $detail == *"Couldn't connect"* ]]; then  # the current error, not the black hole's
      stale_refused=${stale_refused:-"${t}s: $detail"}
    fi
  fi
  [[ $services =~ ^[0-9]+$ ]] && ((services < services_min)) && services_min=$services
  [[ $services =~ ^[0-9]+$ ]] || services_min=0
  rss=$(rss_kib)
  ((rss > rss_max)) && rss_max=$rss
  ((t / 30 > rss_shown)) && rss_shown=$((t / 30)) && echo "  ${t}s: xlbd RSS $rss KiB (+$((rss - rss_before)))"
  sleep 1
done
wait "$client_loop" || true
rss_after=$(rss_kib)
# Lines "Ts NAME [PEER] N" (lbtool's tally for one connection): the count is the last field.
tally() { awk -v n="$1" '$2 == n { s += $NF } END { print s + 0 }' "$workdir/clients"; }
connections=$(($(tally failed) + $(tally b1) + $(tally b2) + $(tally b3)))
failed=$(tally failed)
echo "outage over: $connections connections (b1 $(tally b1), b2 $(tally b2), b3 $(tally b3)), $failed failed; RSS ${rss_before} -> ${rss_after} KiB (max ${rss_max})"
check "a connection every second during the outage ($connections >= $((outage * 3 / 4)))" test "$connections" -ge $((outage * 3 / 4))
check "no connection failed during the outage" test "$failed" -eq 0
check "stale with an error while black-holed (${stale_hole:-never})" test -n "$stale_hole"
check "stale with the refused connection's error while refused (${stale_refused:-never})" test -n "$stale_refused"
check "the service stayed in the kubernetes source (min $services_min)" test "$services_min" -eq 1
check "nothing applied, nothing withdrawn: no revision during the outage" test "$(revisions)" -eq "$revisions_before"
check "RSS grew by at most 6 MiB ($((rss_max - rss_before)) KiB)" test $((rss_max - rss_before)) -le 6144
check "b1 still served until the server came back (no early change)" \
  test "$(tally b1)" -gt 0

echo "== the API server reachable again"
ip netns exec "$lb" nft delete table inet xlbtest
back=$SECONDS
ok=""
until ((SECONDS - back > 45)); do
  read -r state services detail < <(source_line) || true
  if [[ $state == ok ]] && (($(revisions) > revisions_before)); then ok=$((SECONDS - back)); break; fi
  sleep 0.5
done
echo "kubernetes: $state ($services services) $detail; applied after ${ok:-more than 45 }s"
grep "applied revision" "$log" | tail -1
check "the source is ok again and the change applied within 45 s" test -n "$ok"
traffic t1 200
check "b3 (added during the outage) serves" test "$(count b3 "$workdir/t1")" -gt 20
check "b1 (removed during the outage) gets nothing" test "$(count b1 "$workdir/t1")" -eq 0
check "no connection failed" test "$(count failed "$workdir/t1")" -eq 0

kill -TERM "$xlbd_pid"
wait "$xlbd_pid" || true
nsenter --net="/run/netns/$lb" "$xlbd" --config "$workdir/xlb.toml" --pin-dir "$pin_dir" --cleanup >/dev/null 2>&1 || true
if ((failures)); then
  cat "$log" >&2
  echo "$failures checks failed" >&2
  exit 1
fi
echo "all checks passed"
