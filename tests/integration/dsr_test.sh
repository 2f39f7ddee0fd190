#!/usr/bin/env bash
# Direct server return with real traffic between namespaces, all on one L2 segment (a bridge):
#
#   client 10.210.0.2,  fd00:210::2  ──┐
#   lb     10.210.0.1,  fd00:210::1  ──┼── br0 (namespace sw)   lb: xlbd, XDP on eth0, dsr from
#   bK     10.210.0.1K, fd00:210::1K ─┘   (K = 1..4)           10.99.0.0/16 and fd00:99::/64
#                                                               bK: xlbd with decap = true, tc on
#                                                               eth0, no XDP
#
# The client routes the VIP ranges through lb, and nothing else off the segment. lb encapsulates
# each packet to a VIP (IPv4 in IPv4, IPv6 in IPv6) toward the flow's backend, which decapsulates it with
# xlb's tc program (this kernel has no ipip module) and answers from the VIP, which its xlbd put
# on lo, straight to the client: replies never cross lb.
#
# With a second argument "tc", lb balances and encapsulates with its tc ingress balancer
# ([node] xdp_mode = "tc", for links where XDP cannot attach) instead of XDP; every check is
# the same.
set -euo pipefail
build=${1:?usage: dsr_test.sh BUILD_DIR [tc]}
lb_mode=${2:-xdp}
here=$(cd "$(dirname "$0")" && pwd)
. "$here/netns_lib.sh"
require_root
netns_setup

xlbd=$build/src/xlbd/xlbd
lbtool=$build/tests/integration/lbtool
vip=198.18.0.10
vip6=2001:db8:18::10
port=80
command -v bpftool >/dev/null || PATH=$PATH:/usr/sbin

ns_create sw && sw="sw-$suffix"
ip -n "$sw" link add br0 type bridge
ip -n "$sw" link set br0 up
# on_segment NS ADDRESS: NS's eth0 on the bridge.
on_segment() {
  ip link add eth0 netns "$1" type veth peer name "p$2" netns "$sw"
  ip -n "$1" addr add "10.210.0.$2/24" dev eth0
  ip -n "$1" addr add "fd00:210::$2/64" dev eth0 nodad
  ip -n "$1" link set eth0 up
  ip -n "$sw" link set "p$2" master br0 up
}

ns_create c && client="c-$suffix"
on_segment "$client" 2
ip -n "$client" route add 198.18.0.0/24 via 10.210.0.1
ip -n "$client" route add 2001:db8:18::/64 via fd00:210::1
native_xdp_ready "$client" eth0  # full checksums: XDP on lb forwards the client's frames as they are

ns_create lb && lb="lb-$suffix"
on_segment "$lb" 1
ip netns exec "$lb" sysctl -qw net.ipv4.ip_forward=1 net.ipv6.conf.all.forwarding=1
# The bridge port that receives lb's XDP_TX frames: native XDP hands them over as XDP frames,
# which a veth that is a bridge port takes only with an XDP program of its own (GRO alone, as in
# native_xdp_ready, is not enough there on this kernel). Without the benchmarks' pass program
# (a build without bench/), lb runs XDP in generic mode instead.
xdp_pass=$build/bench/xlb_xdp_pass.bpf.o
if [[ $lb_mode == tc ]]; then
  xdp_mode=tc
elif [[ -f $xdp_pass ]]; then
  xdp_mode=native
  native_xdp_ready "$sw" p1
  ip -n "$sw" link set dev p1 xdpdrv obj "$xdp_pass" sec xdp
else
  xdp_mode=generic
  echo "note: no $xdp_pass; XDP on lb in generic mode"
fi

for k in 1 2 3 4; do
  ns_create "b$k"
  on_segment "b$k-$suffix" "1$k"
  # The VIP is on lo there: do not answer ARP for it on the segment.
  ip netns exec "b$k-$suffix" sysctl -qw net.ipv4.conf.all.arp_ignore=1 net.ipv4.conf.all.arp_announce=2
  # GRO on, as on a real NIC: decapsulation also sees trains of IP-in-IP segments merged into one.
  ip netns exec "b$k-$suffix" ethtool -K eth0 gro on >/dev/null
  bg "b$k-$suffix" "$workdir/b$k.log" "$lbtool" serve "b$k" $port
done

services() {  # services BACKEND_COUNT: the dsr service, TCP and UDP, with backends b1..bN
  printf '[[service]]\nname = "web"\nmode = "dsr"\n'
  printf '[[service.frontend]]\naddress = "%s"\nport = %s\n' "$vip" "$port"
  printf '[[service.frontend]]\naddress = "%s"\nport = %s\nprotocol = "udp"\n' "$vip" "$port"
  printf '[[service.frontend]]\naddress = "%s"\nport = %s\n' "$vip6" "$port"
  printf '[[service.frontend]]\naddress = "%s"\nport = %s\nprotocol = "udp"\n' "$vip6" "$port"
  for k in $(seq "$1"); do
    printf '[[service.backend]]\naddress = "10.210.0.1%s"\nport = %s\n' "$k" "$port"
    printf '[[service.backend]]\naddress = "fd00:210::1%s"\nport = %s\n' "$k" "$port"
  done
}
write_lb_config() {  # write_lb_config BACKEND_COUNT
  cat >"$workdir/lb.toml" <<TOML
[node]
interfaces = ["eth0"]
xdp_mode = "$xdp_mode"
cgroup = "off"
dsr_source_ipv4 = "10.99.0.0/16"
dsr_source_ipv6 = "fd00:99::/64"
[api]
listen = "off"
[maglev]
seed = "test"
$(services "$1")
TOML
}
# A backend node: the same services, only decapsulation (no XDP, no socket-LB).
cat >"$workdir/backend.toml" <<TOML
[node]
interfaces = ["eth0"]
xdp_mode = "off"
cgroup = "off"
decap = true
[api]
listen = "off"
$(services 4)
TOML

# start_xlbd NS NAME CONFIG: xlbd in NS's network namespace (it must see the host's bpffs).
start_xlbd() {
  local log=$workdir/xlbd.$2.log
  nsenter --net="/run/netns/$1" "$xlbd" --config "$3" --state-dir "$workdir/state.$2" \
    --pin-dir "$pin_dir/$2" >"$log" 2>&1 &
  last_xlbd=$!
  pids+=("$last_xlbd")
  wait_for_line "$log" "ready:"
}
reload_xlbd() {  # reload_xlbd PID LOG
  local before
  before=$(grep -c "reload:" "$2" || true)
  kill -HUP "$1"
  for _ in $(seq 100); do
    (($(grep -c "reload:" "$2" || true) > before)) && return 0
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
# lb_packets [MAP]: packets lb's datapath counted, summed over CPUs and entries (default: every
# packet its XDP program saw, by reason).
# reason_packets NODE [REASON]: packets NODE's datapath counted under REASON (a number of enum
# xlb_reason), or under any reason: every packet its XDP program saw. Summed over CPUs; bpftool
# prints struct xlb_stats as bytes (packets first, little-endian) when it has no BTF for it.
reason_packets() {
  bpftool -j map dump pinned "$pin_dir/$1/xlb_reason_stats" | python3 -c '
import json, sys
def number(raw, size):
    return raw if isinstance(raw, int) else int.from_bytes(bytes(int(b, 16) for b in raw[:size]), "little")
def packets(value):
    return value["packets"] if isinstance(value, dict) else number(value, 8)
want = int(sys.argv[1]) if len(sys.argv) > 1 else None
print(sum(packets(v["value"]) for e in json.load(sys.stdin) if want is None or number(e["key"], 4) == want
          for v in e.get("values", [])))' "${@:2}"
}
lb_packets() { reason_packets lb; }
client_stat() { ip netns exec "$client" cat "/sys/class/net/eth0/statistics/$1"; }

for k in 1 2 3 4; do
  start_xlbd "b$k-$suffix" "b$k" "$workdir/backend.toml"
  wait_for_line "$workdir/b$k.log" serving
done
write_lb_config 3
start_xlbd "$lb" lb "$workdir/lb.toml"
lb_pid=$last_xlbd

echo "== backends: the VIP made local by xlbd, decapsulation on"
check "b1 has the VIP on lo" bash -c "ip -n 'b1-$suffix' address show dev lo | grep -q '$vip/32'"
check "b1 has the IPv6 VIP on lo" bash -c "ip -n 'b1-$suffix' address show dev lo | grep -q '$vip6/128'"
check "lb does not" bash -c "! ip -n '$lb' address show dev lo | grep -q '$vip'"

echo "== dsr: 3000 TCP connections over 3 backends"
before_lb=$(lb_packets)
before_tx=$(client_stat tx_packets)
before_rx=$(client_stat rx_packets)
run_client "$workdir/tcp1" tcp "$vip" $port 3000
lb_seen=$(($(lb_packets) - before_lb))
client_tx=$(($(client_stat tx_packets) - before_tx))
client_rx=$(($(client_stat rx_packets) - before_rx))
echo "client sent $client_tx packets and received $client_rx; lb's datapath saw $lb_seen"
check "no failed TCP connection" test "$(count failed "$workdir/tcp1")" -eq 0
check "3 backends within 10% of even" within 10 "$(count b1 "$workdir/tcp1")" "$(count b2 "$workdir/tcp1")" "$(count b3 "$workdir/tcp1")"
check "backends see the client's own address" grep -q "^b1 10.210.0.2 " "$workdir/tcp1"
# At least a SYN-ACK and the greeting per connection came back, and not through lb.
check "the client got its answers" test "$client_rx" -ge $((3000 * 2))
# Replies crossing lb would double what it sees: the client's sent packets plus its received ones.
check "lb saw the forward direction only" test "$lb_seen" -le $((client_tx + client_tx / 10))
check "lb saw all of the forward direction" test "$lb_seen" -ge $((client_tx * 9 / 10))
decapsulated=0
for k in 1 2 3; do
  decapsulated=$((decapsulated + $(reason_packets "b$k" 17)))  # XLB_DECAPSULATED (bpf/include/xlb_abi.h)
done
echo "backends decapsulated $decapsulated packets"
check "the backends decapsulated what lb forwarded" test "$decapsulated" -ge $((lb_seen * 9 / 10))

echo "== dsr: 300 UDP datagrams, answers only ever from the VIP"
run_client "$workdir/udp1" udp "$vip" $port 300
check "no UDP answer lost or from elsewhere" test "$(count failed "$workdir/udp1")" -eq 0
check "UDP reaches all 3 backends" test "$(grep -c '^b[123] ' "$workdir/udp1")" -eq 3

echo "== MTU: full-size segments no longer fit once encapsulated; ICMP makes the client shrink them"
# The client sends 64 KiB over one connection in segments of its link's MTU (1500); wrapped,
# they would be 1520 on lb's link. lb answers with "fragmentation needed" (MTU 1480), the
# client's path MTU discovery takes it, and the echo comes back whole.
before_icmp=$(reason_packets lb 14)  # XLB_TX_ICMP_TOO_BIG (bpf/include/xlb_abi.h)
check "64 KiB echoed over a connection with full-size segments" ip netns exec "$client" python3 -c '
import socket, sys
c = socket.create_connection((sys.argv[1], 80), timeout=10)
c.settimeout(10)
greeting = b""
while not greeting.endswith(b"\n"):
    greeting += c.recv(1)
data = bytes(range(256)) * 256
c.sendall(data)
echoed = b""
while len(echoed) < len(data):
    chunk = c.recv(65536)
    if not chunk:
        break
    echoed += chunk
sys.exit(0 if echoed == data else 1)' "$vip"
check "lb answered with ICMP fragmentation needed" test "$(reason_packets lb 14)" -gt "$before_icmp"
check "the client learned the MTU left inside the tunnel" bash -c "ip -n '$client' route get '$vip' | grep -q 'mtu 1480'"

echo "== dsr over IPv6: 300 TCP connections and 100 UDP datagrams"
run_client "$workdir/tcp6" tcp "$vip6" $port 300
check "no failed IPv6 TCP connection" test "$(count failed "$workdir/tcp6")" -eq 0
check "IPv6 TCP reaches all 3 backends" test "$(grep -c '^b[123] ' "$workdir/tcp6")" -eq 3
check "backends see the client's own IPv6 address" grep -q "^b1 fd00:210::2 " "$workdir/tcp6"
run_client "$workdir/udp6" udp "$vip6" $port 100
check "no IPv6 UDP answer lost or from elsewhere" test "$(count failed "$workdir/udp6")" -eq 0

echo "== a 4th backend: held connections keep theirs, new ones reach it"
ip netns exec "$client" "$lbtool" hold "$vip" $port 30 4 >"$workdir/hold" &
hold_pid=$!
pids+=("$hold_pid")
wait_for_line "$workdir/hold" held
write_lb_config 4
reload_xlbd "$lb_pid" "$workdir/xlbd.lb.log"
wait "$hold_pid"
cat "$workdir/hold"
check "no held connection broke" test "$(count broken "$workdir/hold")" -eq 0
run_client "$workdir/tcp2" tcp "$vip" $port 2000
# 2,000 connections over 4 backends: about 19 per backend is one standard deviation, so 10 % (2.6
# of them) fails a correct run now and then (CI saw it twice under load); 15 % is 3.9.
check "new connections reach b4 (about a quarter)" within 15 "$(count b1 "$workdir/tcp2")" "$(count b2 "$workdir/tcp2")" "$(count b3 "$workdir/tcp2")" "$(count b4 "$workdir/tcp2")"

echo "== cleanup: a backend's xlbd removes the VIP it added"
kill -TERM "$lb_pid" && wait "$lb_pid"
nsenter --net="/run/netns/b1-$suffix" "$xlbd" --config "$workdir/backend.toml" --pin-dir "$pin_dir/b1" --cleanup
check "b1's VIPs are gone from lo" bash -c "! ip -n 'b1-$suffix' address show dev lo | grep -q '$vip\\|$vip6'"

if ((failures)); then
  echo "xlbd logs:" >&2
  cat "$workdir"/xlbd.*.log >&2
  echo "$failures checks failed" >&2
  exit 1
fi
echo "all checks passed"
