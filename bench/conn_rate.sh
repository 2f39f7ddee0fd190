#!/usr/bin/env bash
# New-connection rate through one load balancer namespace, side by side in one run:
#   xlb      xlbd's XDP/tc datapath (nat mode) with SERVICES services in its catalog
#   iptables kube-proxy's iptables layout for the same catalog in the same namespace
#            (KUBE-SERVICES -> KUBE-SVC-* -> KUBE-SEP-* with statistic random, DNAT)
# Traffic goes to the last service of the catalog, the worst case for a rule walk.
#
#   sudo bench/conn_rate.sh BUILD_DIR [SERVICES] [SECONDS]
#
# Prints connections per second for each and their ratio. Nothing leaves the machine.
set -euo pipefail
build=${1:?usage: conn_rate.sh BUILD_DIR [SERVICES] [SECONDS]}
services=${2:-1000}
seconds=${3:-5}
here=$(cd "$(dirname "$0")" && pwd)
. "$here/../tests/integration/netns_lib.sh"
require_root
netns_setup
xlbd=$build/src/xlbd/xlbd
lbtool=$build/tests/integration/lbtool

vip_of() { echo "198.18.$(($1 / 250)).$(($1 % 250 + 1))"; }
target=$(vip_of $((services - 1)))

ns_create c && client="c-$suffix"
ns_create lb && lb="lb-$suffix"
veth "$client" eth0 10.201.0.2/24 "$lb" lbc 10.201.0.1/24
native_xdp_ready "$client" eth0
ip -n "$client" route add 198.18.0.0/16 via 10.201.0.1
ip netns exec "$lb" sysctl -qw net.ipv4.ip_forward=1
for k in 1 2 3; do
  ns_create "b$k"
  veth "$lb" "lb$k" "10.202.$k.1/24" "b$k-$suffix" eth0 "10.202.$k.2/24"
  ip -n "b$k-$suffix" route add 10.201.0.0/24 via "10.202.$k.1"
  native_xdp_ready "b$k-$suffix" eth0
  bg "b$k-$suffix" "$workdir/b$k.log" "$lbtool" serve "b$k" 8080
done

measure() {  # measure NAME: connections per second from the client to the target VIP
  ip netns exec "$client" "$lbtool" loop "$target" 80 1 0 >/dev/null  # warm up ARP and caches
  ip netns exec "$client" "$lbtool" loop "$target" 80 "$seconds" 0 >"$workdir/$1"
  local ok failed
  ok=$(count ok "$workdir/$1")
  failed=$(count failed "$workdir/$1")
  ((failed == 0)) || echo "warning: $1: $failed failed connections" >&2
  echo $((ok / seconds))
}

# xlb: one config with the whole catalog.
{
  printf '[node]\ninterfaces = ["lbc", "lb1", "lb2", "lb3"]\ncgroup = "off"\n'
  for i in $(seq 0 $((services - 1))); do
    printf '[[service]]\nname = "svc-%d"\n[[service.frontend]]\naddress = "%s"\nport = 80\n' "$i" "$(vip_of "$i")"
    for k in 1 2 3; do printf '[[service.backend]]\naddress = "10.202.%d.2"\nport = 8080\n' "$k"; done
  done
} >"$workdir/xlb.toml"
nsenter --net="/run/netns/$lb" "$xlbd" --config "$workdir/xlb.toml" --state-dir "$workdir/state" \
  --pin-dir "$pin_dir" >"$workdir/xlbd.log" 2>&1 &
xlbd_pid=$!
pids+=("$xlbd_pid")
wait_for_line "$workdir/xlbd.log" "ready:" 60
xlb_rate=$(measure xlb)
kill -TERM "$xlbd_pid"
wait "$xlbd_pid" || true
nsenter --net="/run/netns/$lb" "$xlbd" --config "$workdir/xlb.toml" --pin-dir "$pin_dir" --cleanup >/dev/null

# iptables: kube-proxy's layout for the same catalog.
{
  echo "*nat"
  echo ":PREROUTING ACCEPT [0:0]"
  echo ":KUBE-SERVICES - [0:0]"
  for i in $(seq 0 $((services - 1))); do echo ":KUBE-SVC-$i - [0:0]"; for k in 1 2 3; do echo ":KUBE-SEP-$i-$k - [0:0]"; done; done
  echo "-A PREROUTING -j KUBE-SERVICES"
  for i in $(seq 0 $((services - 1))); do
    echo "-A KUBE-SERVICES -d $(vip_of "$i")/32 -p tcp --dport 80 -j KUBE-SVC-$i"
    echo "-A KUBE-SVC-$i -m statistic --mode random --probability 0.33333333349 -j KUBE-SEP-$i-1"
    echo "-A KUBE-SVC-$i -m statistic --mode random --probability 0.50000000000 -j KUBE-SEP-$i-2"
    echo "-A KUBE-SVC-$i -j KUBE-SEP-$i-3"
    for k in 1 2 3; do echo "-A KUBE-SEP-$i-$k -p tcp -j DNAT --to-destination 10.202.$k.2:8080"; done
  done
  echo "COMMIT"
} >"$workdir/rules"
ip netns exec "$lb" iptables-restore <"$workdir/rules"
iptables_rate=$(measure iptables)

printf '\nnew connections per second through the load balancer, %d services in the catalog, %ss each:\n' "$services" "$seconds"
printf '  %-10s %8s\n' "xlb (XDP)" "$xlb_rate" "iptables" "$iptables_rate"
awk -v a="$xlb_rate" -v b="$iptables_rate" 'BEGIN { printf "  xlb / iptables = %.2f\n", a / b }'
