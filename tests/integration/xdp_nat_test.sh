#!/usr/bin/env bash
# North-south balancing by xlbd's XDP/tc datapath, with real traffic between namespaces:
#
#   client 10.201.0.2 ---- 10.201.0.1 lb 10.202.K.1 ---- 10.202.K.2 bK   (K = 1..4)
#                                    (xlbd: XDP + tc on every link of lb)
#
# The client has only a route to the VIP range, through lb. In nat mode the backends route the
# client's subnet back through lb; in snat mode they have no route to it at all, only to lb's own
# address 10.203.0.1, which xlb puts as the source of the flows it sends them. A TCP connection
# only completes when every answer comes from the VIP (the client's kernel takes no segment from
# another source), and lbtool udp counts an answer from another source as failed: the client's
# peer is always the VIP.
#
# With a second argument "tc", lb balances with its tc ingress balancer ([node] xdp_mode = "tc",
# for links where XDP cannot attach) instead of XDP, after a first start with XDP (a node that
# changes mode); every check is the same.
set -euo pipefail
build=${1:?usage: xdp_nat_test.sh BUILD_DIR [tc]}
lb_mode=${2:-xdp}
here=$(cd "$(dirname "$0")" && pwd)
. "$here/netns_lib.sh"
require_root
netns_setup

xlbd=$build/src/xlbd/xlbd
lbtool=$build/tests/integration/lbtool
vip=198.18.0.10
port=80

ns_create c && client="c-$suffix"
ns_create lb && lb="lb-$suffix"
veth "$client" eth0 10.201.0.2/24 "$lb" lbc 10.201.0.1/24
native_xdp_ready "$client" eth0
ip -n "$client" route add 198.18.0.0/24 via 10.201.0.1
ip -n "$lb" addr add 10.203.0.1/32 dev lo
ip netns exec "$lb" sysctl -qw net.ipv4.ip_forward=1
for k in 1 2 3 4; do
  ns_create "b$k"
  veth "$lb" "lb$k" "10.202.$k.1/24" "b$k-$suffix" eth0 "10.202.$k.2/24"
  ip -n "b$k-$suffix" route add 10.203.0.1/32 via "10.202.$k.1"
  native_xdp_ready "b$k-$suffix" eth0
  bg "b$k-$suffix" "$workdir/b$k.log" "$lbtool" serve "b$k" 8080
done

backends() {  # backends N: TOML for backends b1..bN
  for k in $(seq "$1"); do printf '[[service.backend]]\naddress = "10.202.%s.2"\nport = 8080\n' "$k"; done
}
write_config() {  # write_config MODE BACKEND_COUNT
  cat >"$workdir/xlb.toml" <<TOML
[node]
interfaces = ["lbc", "lb1", "lb2", "lb3", "lb4"]
xdp_mode = "$xdp_mode"
cgroup = "off"
snat_ipv4 = "10.203.0.1"
[maglev]
seed = "test"
[[service]]
name = "web"
mode = "$1"
[[service.frontend]]
address = "$vip"
port = $port
[[service.frontend]]
address = "$vip"
port = $port
protocol = "udp"
$(backends "$2")
TOML
}
route_back() {  # route_back add|del: the backends' route to the client's subnet
  for k in 1 2 3 4; do ip -n "b$k-$suffix" route "$1" 10.201.0.0/24 via "10.202.$k.1"; done
}

# xlbd must see the host's bpffs, so it enters only lb's network namespace (not `ip netns exec`).
start_xlbd() {
  local log=$workdir/xlbd.$1.log
  nsenter --net="/run/netns/$lb" "$xlbd" --config "$workdir/xlb.toml" --state-dir "$workdir/state" \
    --pin-dir "$pin_dir" >"$log" 2>&1 &
  xlbd_pid=$!
  pids+=("$xlbd_pid")
  wait_for_line "$log" "ready:"
}
stop_xlbd() {
  kill -TERM "$xlbd_pid"
  wait "$xlbd_pid"
}
reload_xlbd() {
  local before
  before=$(grep -c "reload:" "$workdir/xlbd.$1.log" || true)
  kill -HUP "$xlbd_pid"
  for _ in $(seq 100); do
    (($(grep -c "reload:" "$workdir/xlbd.$1.log" || true) > before)) && return 0
    sleep 0.05
  done
  return 1
}
run_client() {  # run_client OUT lbtool-args...: in the client namespace
  local out=$1
  shift
  ip netns exec "$client" "$lbtool" "$@" >"$out"
  cat "$out"
}

route_back add
if [[ $lb_mode == tc ]]; then
  echo "== from XDP to tc: a node that ran XDP restarts with xdp_mode = \"tc\""
  xdp_mode=generic
  write_config nat 3
  start_xlbd 0
  check "XDP on lbc first" bash -c "ip -n '$lb' link show lbc | grep -q xdp"
  stop_xlbd
  xdp_mode=tc
  write_config nat 3
  start_xlbd 1
  check "xlbd says tc balancing is in use" grep -q "tc ingress balancer" "$workdir/xlbd.1.log"
  check "no XDP on lb's links" bash -c "! ip -n '$lb' link show | grep -q xdp"
  check "xlb_tc_lb at tc ingress of lbc" bash -c "tc -n '$lb' filter show dev lbc ingress | grep -q xlb_tc_lb"
else
  xdp_mode=native
  write_config nat 3
  start_xlbd 1
fi
for k in 1 2 3; do wait_for_line "$workdir/b$k.log" serving; done

echo "== nat: 3000 TCP connections over 3 backends"
run_client "$workdir/tcp1" tcp "$vip" $port 3000
check "no failed TCP connection" test "$(count failed "$workdir/tcp1")" -eq 0
check "3 backends within 10% of even" within 10 "$(count b1 "$workdir/tcp1")" "$(count b2 "$workdir/tcp1")" "$(count b3 "$workdir/tcp1")"
check "backends see the client's own address" grep -q "^b1 10.201.0.2 " "$workdir/tcp1"

echo "== nat: 300 UDP datagrams, answers only ever from the VIP"
run_client "$workdir/udp1" udp "$vip" $port 300
check "no UDP answer lost or from elsewhere" test "$(count failed "$workdir/udp1")" -eq 0
check "UDP reaches all 3 backends" test "$(grep -c '^b[123] ' "$workdir/udp1")" -eq 3

echo "== a 4th backend: held connections keep theirs, new ones reach it"
ip netns exec "$client" "$lbtool" hold "$vip" $port 30 4 >"$workdir/hold" &
hold_pid=$!
pids+=("$hold_pid")
wait_for_line "$workdir/hold" held
write_config nat 4
reload_xlbd 1
wait "$hold_pid"
cat "$workdir/hold"
check "no held connection broke" test "$(count broken "$workdir/hold")" -eq 0
run_client "$workdir/tcp2" tcp "$vip" $port 2000
# 2,000 connections over 4 backends: about 19 per backend is one standard deviation, so 10 % (2.6
# of them) fails a correct run now and then (CI saw it twice under load); 15 % is 3.9.
check "new connections reach b4 (about a quarter)" within 15 "$(count b1 "$workdir/tcp2")" "$(count b2 "$workdir/tcp2")" "$(count b3 "$workdir/tcp2")" "$(count b4 "$workdir/tcp2")"

echo "== restart: xlbd stopped and started while a client keeps connecting"
ip netns exec "$client" "$lbtool" loop "$vip" $port 4 >"$workdir/loop" &
loop_pid=$!
pids+=("$loop_pid")
sleep 1
stop_xlbd
sleep 0.5
start_xlbd 2
check "maps adopted from the pins" grep -q "maps adopted" "$workdir/xlbd.2.log"
wait "$loop_pid"
cat "$workdir/loop"
check "no failed connection across the restart" test "$(count failed "$workdir/loop")" -eq 0
check "connections went on during the restart" test "$(count ok "$workdir/loop")" -gt 100

echo "== snat: backends with no route to the client"
route_back del
write_config snat 3
reload_xlbd 2
run_client "$workdir/tcp3" tcp "$vip" $port 1500
check "no failed snat connection" test "$(count failed "$workdir/tcp3")" -eq 0
check "backends see lb's address, not the client's" test "$(grep -c ' 10.203.0.1 ' "$workdir/tcp3")" -eq 3
# 1,500 connections over 3 backends: about 18 per backend is one standard deviation, so 10 % (2.7
# of them) failed a correct run in CI (561 of 1,500); 15 % is 4.1.
check "snat spreads over 3 backends" within 15 "$(count b1 "$workdir/tcp3")" "$(count b2 "$workdir/tcp3")" "$(count b3 "$workdir/tcp3")"
run_client "$workdir/udp3" udp "$vip" $port 300
check "snat UDP answers come from the VIP" test "$(count failed "$workdir/udp3")" -eq 0

echo "== cleanup"
stop_xlbd
nsenter --net="/run/netns/$lb" "$xlbd" --config "$workdir/xlb.toml" --pin-dir "$pin_dir" --cleanup
check "no XDP left on lb's links" bash -c "! ip -n '$lb' link show | grep -q xdp"
check "no tc filter left on lbc" bash -c "! tc -n '$lb' filter show dev lbc ingress | grep -q xlb_tc"
check "pins removed" test ! -e "$pin_dir"

if ((failures)); then
  echo "xlbd logs:" >&2
  cat "$workdir"/xlbd.*.log >&2
  echo "$failures checks failed" >&2
  exit 1
fi
echo "all checks passed"
