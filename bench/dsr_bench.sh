#!/usr/bin/env bash
# Direct server return against nat, side by side in one run, through the same namespaces:
#
#   client 10.211.0.2/.3 ┐
#   lb     10.211.0.1, 10.210.0.1 ──┼── br0    lb: xlbd, XDP on eth0 (nat, then dsr)
#   bK     10.210.0.1K ─┘  (K = 1..3)          bK: xlbd with decap = true (tc), servers
#
# nat: the backends route the client's subnet through lb, which translates the replies back.
# dsr: the backends reach the client's subnet on the segment and answer it themselves.
# For each mode it measures:
#   - new connections per second to VIP:80 (lbtool loop: connect, read a greeting, close);
#   - a download of COUNT x 1 MiB from VIP:81 (one connection each, the server sends and
#     closes): bytes through lb's link (received + sent, from its counters) against the bytes
#     the client received, and the download's throughput.
#
#   sudo bench/dsr_bench.sh BUILD_DIR [SECONDS] [COUNT]
#
# Nothing leaves the machine (the rules of tests/integration).
set -euo pipefail
build=${1:?usage: dsr_bench.sh BUILD_DIR [SECONDS] [COUNT]}
seconds=${2:-5}
downloads=${3:-200}
here=$(cd "$(dirname "$0")" && pwd)
. "$here/../tests/integration/netns_lib.sh"
require_root
netns_setup
xlbd=$build/src/xlbd/xlbd
lbtool=$build/tests/integration/lbtool
xdp_pass=$build/bench/xlb_xdp_pass.bpf.o
vip=198.18.0.10

ns_create sw && sw="sw-$suffix"
ip -n "$sw" link add br0 type bridge
ip -n "$sw" link set br0 up
on_segment() {  # on_segment NS PORT ADDRESS...: NS's eth0 on the bridge, through port pPORT
  local ns=$1 port=$2
  shift 2
  ip link add eth0 netns "$ns" type veth peer name "p$port" netns "$sw"
  for a in "$@"; do ip -n "$ns" addr add "$a" dev eth0; done
  ip -n "$ns" link set eth0 up
  ip -n "$sw" link set "p$port" master br0 up
}

# A client of its own per mode (10.211.0.2 for nat, .3 for dsr), so that one mode's sockets in
# TIME_WAIT do not slow the next one's choice of source ports.
new_client() {  # new_client NAME HOST: sets $client
  ns_create "$1" && client="$1-$suffix"
  on_segment "$client" "$2" "10.211.0.$2/24"
  ip -n "$client" route add 198.18.0.0/24 via 10.211.0.1
  ip -n "$client" route add 10.210.0.0/24 dev eth0  # the backends' answers (dsr) come on the segment
  native_xdp_ready "$client" eth0
}
ns_create lb && lb="lb-$suffix"
on_segment "$lb" 1 10.210.0.1/24 10.211.0.1/24
ip netns exec "$lb" sysctl -qw net.ipv4.ip_forward=1
# lb's XDP_TX frames reach the bridge through p1, which needs an XDP program to take them.
native_xdp_ready "$sw" p1
ip -n "$sw" link set dev p1 xdpdrv obj "$xdp_pass" sec xdp

bulk_server='
import socket
data = b"x" * (1 << 20)
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("", 81))
s.listen(128)
print("serving bulk", flush=True)
while True:
    c, _ = s.accept()
    try:
        c.sendall(data)
    except OSError:
        pass
    c.close()
'
for k in 1 2 3; do
  ns_create "b$k"
  on_segment "b$k-$suffix" "1$k" "10.210.0.1$k/24"
  ip netns exec "b$k-$suffix" sysctl -qw net.ipv4.conf.all.arp_ignore=1 net.ipv4.conf.all.arp_announce=2
  bg "b$k-$suffix" "$workdir/b$k.log" "$lbtool" serve "b$k" 80
  bg "b$k-$suffix" "$workdir/bulk$k.log" python3 -c "$bulk_server"
done

services() {  # services MODE
  for svc in "conn 80" "bulk 81"; do
    set -- "$1" $svc
    printf '[[service]]\nname = "%s"\nmode = "%s"\n[[service.frontend]]\naddress = "%s"\nport = %s\n' "$2" "$1" "$vip" "$3"
    for k in 1 2 3; do printf '[[service.backend]]\naddress = "10.210.0.1%s"\nport = %s\n' "$k" "$3"; done
  done
}
cat >"$workdir/backend.toml" <<TOML
[node]
interfaces = ["eth0"]
xdp_mode = "off"
cgroup = "off"
decap = true
[api]
listen = "off"
$(services dsr)
TOML
for k in 1 2 3; do
  nsenter --net="/run/netns/b$k-$suffix" "$xlbd" --config "$workdir/backend.toml" --state-dir "$workdir/state.b$k" \
    --pin-dir "$pin_dir/b$k" >"$workdir/xlbd.b$k.log" 2>&1 &
  pids+=("$!")
  wait_for_line "$workdir/xlbd.b$k.log" "ready:"
  wait_for_line "$workdir/bulk$k.log" "serving bulk"
done

link_bytes() {  # bytes lb's link received and sent
  echo $(($(ip netns exec "$lb" cat /sys/class/net/eth0/statistics/rx_bytes) +
          $(ip netns exec "$lb" cat /sys/class/net/eth0/statistics/tx_bytes)))
}
download() {  # download COUNT: "BYTES SECONDS" the client received from VIP:81
  ip netns exec "$client" python3 -c '
import socket, sys, time
total, start = 0, time.monotonic()
for _ in range(int(sys.argv[2])):
    c = socket.create_connection((sys.argv[1], 81), timeout=5)
    c.settimeout(5)
    while True:
        b = c.recv(1 << 16)
        if not b:
            break
        total += len(b)
    c.close()
print(total, time.monotonic() - start)' "$vip" "$1"
}

run_mode() {  # run_mode MODE CLIENT_HOST: fills rate[MODE], lb_bytes[MODE], got[MODE], mbps[MODE]
  local mode=$1
  new_client "c$mode" "$2"
  for k in 1 2 3; do
    ip -n "b$k-$suffix" route del 10.211.0.0/24 2>/dev/null || true
    if [[ $mode == nat ]]; then
      ip -n "b$k-$suffix" route add 10.211.0.0/24 via 10.210.0.1
    else
      ip -n "b$k-$suffix" route add 10.211.0.0/24 dev eth0
    fi
  done
  cat >"$workdir/lb.$mode.toml" <<TOML
[node]
interfaces = ["eth0"]
xdp_mode = "native"
cgroup = "off"
dsr_source_ipv4 = "10.99.0.0/16"
[api]
listen = "off"
$(services "$mode")
TOML
  nsenter --net="/run/netns/$lb" "$xlbd" --config "$workdir/lb.$mode.toml" --state-dir "$workdir/state.lb.$mode" \
    --pin-dir "$pin_dir/lb" >"$workdir/xlbd.lb.$mode.log" 2>&1 &
  local pid=$!
  pids+=("$pid")
  wait_for_line "$workdir/xlbd.lb.$mode.log" "ready:"

  ip netns exec "$client" "$lbtool" loop "$vip" 80 1 0 >/dev/null  # warm up ARP and caches
  ip netns exec "$client" "$lbtool" loop "$vip" 80 "$seconds" 0 >"$workdir/loop.$mode"
  local failed
  failed=$(count failed "$workdir/loop.$mode")
  ((failed == 0)) || echo "warning: $mode: $failed failed connections" >&2
  rate[$mode]=$(($(count ok "$workdir/loop.$mode") / seconds))

  local before after result
  before=$(link_bytes)
  result=$(download "$downloads")
  after=$(link_bytes)
  lb_bytes[$mode]=$((after - before))
  got[$mode]=${result% *}
  mbps[$mode]=$(awk -v b="${result% *}" -v s="${result#* }" 'BEGIN { printf "%.0f", b * 8 / s / 1e6 }')

  kill -TERM "$pid"
  wait "$pid" || true
  nsenter --net="/run/netns/$lb" "$xlbd" --config "$workdir/lb.$mode.toml" --pin-dir "$pin_dir/lb" --cleanup >/dev/null
}

declare -A rate lb_bytes got mbps
run_mode nat 2
run_mode dsr 3

printf '\nnat vs dsr through one load balancer (XDP native), %ss of new connections, %d downloads of 1 MiB:\n' \
  "$seconds" "$downloads"
printf '  %-34s %14s %14s\n' "" nat dsr
printf '  %-34s %14s %14s\n' "new connections per second" "${rate[nat]}" "${rate[dsr]}"
printf '  %-34s %14s %14s\n' "bytes the client downloaded" "${got[nat]}" "${got[dsr]}"
printf '  %-34s %14s %14s\n' "bytes through lb's link (rx+tx)" "${lb_bytes[nat]}" "${lb_bytes[dsr]}"
printf '  %-34s %14s %14s\n' "download throughput (Mbit/s)" "${mbps[nat]}" "${mbps[dsr]}"
awk -v n="${rate[nat]}" -v d="${rate[dsr]}" -v bn="${lb_bytes[nat]}" -v bd="${lb_bytes[dsr]}" \
  -v gn="${got[nat]}" -v gd="${got[dsr]}" 'BEGIN {
    printf "  dsr / nat: connection rate %.2f, bytes through lb %.3f\n", d / n, bd / bn
    printf "  lb carried %.2f bytes per downloaded byte with nat, %.3f with dsr\n", bn / gn, bd / gd }'
