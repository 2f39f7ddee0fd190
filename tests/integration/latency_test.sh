#!/usr/bin/env bash
# Latency awareness through xlbd's XDP datapath: three backends answer the same, but b3's health
# endpoint answers 80 ms late, as an overloaded pod's does. With slow_factor = 3 xlbd reports it
# slow and gives it a quarter of its share of the ring: it takes measurably fewer new flows.
#
#   client 10.217.0.2 ---- 10.217.0.1 lb 10.218.K.1 ---- 10.218.K.2 bK   (K = 1..3)
#   bK: lbtool serve on 8080 (the traffic), lbtool http on 8081 (the health endpoint)
set -euo pipefail
build=${1:?usage: latency_test.sh BUILD_DIR}
here=$(cd "$(dirname "$0")" && pwd)
. "$here/netns_lib.sh"
require_root
netns_setup

xlbd=$build/src/xlbd/xlbd
lbtool=$build/tests/integration/lbtool
vip=198.18.0.40
port=80

lb_topology 10.217.0 10.218 3
# Each backend's health endpoint on 8081; b3's answers 80 ms late.
for k in 1 2 3; do
  delay=0
  ((k == 3)) && delay=80
  bg "b$k-$suffix" "$workdir/h$k.log" "$lbtool" http 8081 $delay
  wait_for_line "$workdir/h$k.log" serving
done

cat >"$workdir/xlb.toml" <<TOML
[node]
interfaces = ["lbc", "lb1", "lb2", "lb3"]
xdp_mode = "native"
cgroup = "off"
[api]
listen = "off"
[[service]]
name = "web"
mode = "nat"
[[service.frontend]]
address = "$vip"
port = $port
$(for k in 1 2 3; do printf '[[service.backend]]\naddress = "10.218.%s.2"\nport = 8080\n' "$k"; done)
[service.health]
type = "http"
port = 8081
path = "/healthz"
interval = "200ms"
timeout = "200ms"
slow_factor = 3
TOML

log=$workdir/xlbd.log
nsenter --net="/run/netns/$lb" "$xlbd" --config "$workdir/xlb.toml" --state-dir "$workdir/state" \
  --pin-dir "$pin_dir" >"$log" 2>&1 &
pids+=($!)
wait_for_line "$log" "ready:"
wait_for_line "$log" "health: web/10.218.3.2:8080 slow: probes take" 20
grep "slow:" "$log"

ip netns exec "$client" "$lbtool" tcp "$vip" $port 900 | tee "$workdir/tcp"
b1=$(count b1 "$workdir/tcp") b2=$(count b2 "$workdir/tcp") b3=$(count b3 "$workdir/tcp")
check "no connection failed" test "$(count failed "$workdir/tcp")" -eq 0
check "the slow b3 takes less than half of each peer's new flows ($b3 vs $b1, $b2)" \
  test $((b3 * 2)) -lt "$b1" -a $((b3 * 2)) -lt "$b2"
check "b3 still takes some: slow is not down" test "$b3" -gt 0

nsenter --net="/run/netns/$lb" "$xlbd" --config "$workdir/xlb.toml" --pin-dir "$pin_dir" --cleanup >/dev/null
if ((failures)); then
  cat "$log" >&2
  echo "$failures checks failed" >&2
  exit 1
fi
echo "all checks passed"
