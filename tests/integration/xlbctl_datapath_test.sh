#!/usr/bin/env bash
# xlbctl drops and xlbctl trace against the real xlbd and its XDP datapath, with real traffic:
#
#   client 10.201.0.2 ---- 10.201.0.1 lb 10.202.K.1 ---- 10.202.K.2 bK   (K = 1..3)
#
# drops: packets the test makes xlb drop (to a frontend whose only backend is drained: "no
# backend"; fragments to a frontend address: "fragment") are listed with their reason, source,
# destination and link, and tailed live by --follow; a flood beyond the events' rate limit is
# counted: every drop is either reported or in the "not reported" count.
# trace: for flows of the test's choosing (fixed source ports), the backend trace names is the
# backend that answers when the flow is sent, for a new flow (ring slot) and an established one
# (conntrack), also once its backend is draining and the ring would send a new flow elsewhere.
set -euo pipefail
build=${1:?usage: xlbctl_datapath_test.sh BUILD_DIR}
here=$(cd "$(dirname "$0")" && pwd)
. "$here/netns_lib.sh"
require_root
command -v python3 >/dev/null || { echo "FAIL: needs python3 (to read JSON)" >&2; exit 1; }
netns_setup

xlbd=$build/src/xlbd/xlbd
xlbctl_bin=$build/src/xlbctl/xlbctl
lbtool=$build/tests/integration/lbtool
vip=198.18.0.10
void_vip=198.18.0.20
client_ip=10.201.0.2

ns_create c && client="c-$suffix"
ns_create lb && lb="lb-$suffix"
veth "$client" eth0 "$client_ip/24" "$lb" lbc 10.201.0.1/24
native_xdp_ready "$client" eth0
ip -n "$client" route add 198.18.0.0/24 via 10.201.0.1
ip netns exec "$lb" sysctl -qw net.ipv4.ip_forward=1
for k in 1 2 3; do
  ns_create "b$k"
  veth "$lb" "lb$k" "10.202.$k.1/24" "b$k-$suffix" eth0 "10.202.$k.2/24"
  ip -n "b$k-$suffix" route add 10.201.0.0/24 via "10.202.$k.1"
  native_xdp_ready "b$k-$suffix" eth0
  bg "b$k-$suffix" "$workdir/b$k.log" "$lbtool" serve "b$k" 8080
done

cat >"$workdir/xlb.toml" <<TOML
[node]
interfaces = ["lbc", "lb1", "lb2", "lb3"]
xdp_mode = "native"
cgroup = "off"
[api]
listen = "127.0.0.1:9180"
[maglev]
seed = "test"
[[service]]
name = "web"
[[service.frontend]]
address = "$vip"
port = 80
$(for k in 1 2 3; do printf '[[service.backend]]\naddress = "10.202.%s.2"\nport = 8080\n' "$k"; done)
[[service]]
name = "void"
[[service.frontend]]
address = "$void_vip"
port = 80
[[service.backend]]
address = "10.202.1.2"
port = 8080
weight = 0
TOML

# xlbd sees the host's bpffs: it enters only lb's network namespace (not `ip netns exec`), and so
# does xlbctl, to reach the API on lb's loopback.
nsenter --net="/run/netns/$lb" "$xlbd" --config "$workdir/xlb.toml" --state-dir "$workdir/state" \
  --pin-dir "$pin_dir" >"$workdir/xlbd.log" 2>&1 &
xlbd_pid=$!
pids+=("$xlbd_pid")
wait_for_line "$workdir/xlbd.log" "ready:"
for k in 1 2 3; do wait_for_line "$workdir/b$k.log" serving; done

xlbctl() { nsenter --net="/run/netns/$lb" "$xlbctl_bin" --api http://127.0.0.1:9180 --state-dir "$workdir/state" "$@"; }
# json_get FILE EXPR: a value from a JSON document (EXPR in Python over `d`).
json_get() { python3 -c "import json,sys; d=json.load(open(sys.argv[1])); print($2)" "$1"; }
# backend_of NAME: the backend key of lbtool's server NAME (b2 -> 10.202.2.2:8080).
backend_of() { echo "10.202.${1#b}.2:8080"; }
# send SPORT: one TCP connection from the client's port SPORT to web; prints who answered.
send() { ip netns exec "$client" "$lbtool" from "$1" "$vip" 80 | awk '{ print $1 }' || true; }

echo "== drops: a drop with its reason, source, destination and link"
ip netns exec "$client" "$lbtool" from 41000 "$void_vip" 80 >"$workdir/void" || true
check "the connection to a frontend without a backend failed" grep -q '^failed' "$workdir/void"
# The event comes through the ring buffer and xlbd's reader: give it a moment.
for _ in $(seq 50); do
  xlbctl drops >"$workdir/drops" || true
  grep -q "no backend" "$workdir/drops" && break
  sleep 0.1
done
cat "$workdir/drops"
check "drops lists the drop with its reason" grep -q "no backend" "$workdir/drops"
check "... and the flow and link it came on" \
  grep -qE "no backend +tcp +$client_ip:41000 +$void_vip:80 +lbc" "$workdir/drops"
xlbctl -o json drops >"$workdir/drops.json"
check "-o json: reason, source, destination" test "$(json_get "$workdir/drops.json" \
  "[x['reason'] for x in d['drops'] if x['source'] == '$client_ip:41000' and x['destination'] == '$void_vip:80'][0]")" = "no backend"

echo "== drops --follow: a live tail"
xlbctl -o json drops --follow --count 1 >"$workdir/follow" 2>"$workdir/follow.err" &
follow_pid=$!
pids+=("$follow_pid")
wait_for_line "$workdir/follow.err" "following drops"
# A datagram too large for the link leaves the client in fragments: xlb cannot balance them
# (no ports past the first) and drops them, to a frontend address.
ip netns exec "$client" python3 -c '
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.setsockopt(socket.IPPROTO_IP, 10, 0)  # IP_MTU_DISCOVER: IP_PMTUDISC_DONT, fragment here
s.sendto(b"x" * 3000, (sys.argv[1], 80))' "$vip"
for _ in $(seq 100); do kill -0 "$follow_pid" 2>/dev/null || break; sleep 0.1; done
check "drops --follow --count 1 ended after one drop" bash -c "! kill -0 $follow_pid 2>/dev/null"
cat "$workdir/follow"
check "... a fragment to the VIP, with its reason" test "$(json_get "$workdir/follow" "d['reason'] + ' ' + d['destination']")" = "fragment $vip"

echo "== drops: a flood is rate-limited, and what was not reported is counted"
ip netns exec "$client" python3 -c '
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.setsockopt(socket.IPPROTO_IP, 10, 0)
for _ in range(400):
    s.sendto(b"x" * 3000, (sys.argv[1], 80))' "$vip"
sleep 1  # the reader's next look at the ring buffer
xlbctl -o json drops >"$workdir/flood.json"
xlbctl -o json status >"$workdir/status.json"
xlbctl drops >"$workdir/flood.txt"
reported=$(json_get "$workdir/flood.json" "d['last_id']")
unreported=$(json_get "$workdir/flood.json" "d['unreported']")
counted=$(json_get "$workdir/status.json" "sum(d['drops'].values())")
echo "counted $counted drops: $reported reported, $unreported not"
check "1200 fragments in a burst (3 a datagram) exceed the events' rate limit" test "$unreported" -gt 0
check "every drop counted was reported or counted as not reported" test $((reported + unreported)) -eq "$counted"
check "drops says how many it does not show" grep -q "^$unreported more drops were counted but not reported" "$workdir/flood.txt"

echo "== trace: new flows take the ring slot trace names"
traced=0 agreed=0
for sport in $(seq 42000 42011); do
  xlbctl -o json trace "$client_ip:$sport" "$vip:80/tcp" >"$workdir/trace.json" || true
  verdict=$(json_get "$workdir/trace.json" "d['verdict']")
  said=$(json_get "$workdir/trace.json" "d['backend']")
  answered=$(send "$sport")
  traced=$((traced + 1))
  if [[ $verdict == ring && $(backend_of "$answered") == "$said" ]]; then agreed=$((agreed + 1)); else
    echo "flow from port $sport: trace said $verdict $said, $answered answered" >&2; fi
done
check "every new flow went where trace said ($agreed of $traced)" test "$agreed" -eq "$traced"
check "... and they did not all go to one backend" test "$(for s in $(seq 42000 42011); do xlbctl -o json trace \
  "$client_ip:$s" "$vip:80/tcp" | python3 -c 'import json,sys; print(json.load(sys.stdin)["backend"])'; done | sort -u | wc -l)" -gt 1

echo "== trace: an established flow keeps its backend, draining or not; a new connection does not"
sport=42000
xlbctl trace "$client_ip:$sport" "$vip:80/tcp" >"$workdir/trace.txt" || true
cat "$workdir/trace.txt"
first=$(backend_of "$(send $sport)")
check "trace names conntrack for a flow already sent" grep -q "^Decided by: conntrack" "$workdir/trace.txt"
check "... with the backend that answered" grep -q "^Backend: *$first\$" "$workdir/trace.txt"
xlbctl backend drain web "$first" >/dev/null
xlbctl -o json trace "$client_ip:$sport" "$vip:80/tcp" >"$workdir/trace.json" || true
check "drained: trace still says conntrack, same backend" \
  test "$(json_get "$workdir/trace.json" "d['verdict'] + ' ' + d['backend']")" = "conntrack $first"
check "... and that a new connection from the port goes by the ring" \
  grep -q "a new connection from this port (a SYN) goes by the ring" <(json_get "$workdir/trace.json" "d['why']")
# The port used again for a new connection (its SYN): the drained backend takes no new ones.
again=$(send $sport)
check "... which it does" bash -c '[[ $1 == b[0-9] && $2 != "$3" ]]' - "$again" "$(backend_of "$again")" "$first"
# A new flow that the ring sent to the drained backend before now goes elsewhere.
for s in $(seq 43000 43100); do
  xlbctl -o json trace "$client_ip:$s" "$vip:80/tcp" >"$workdir/new.json" || true
  [[ $(json_get "$workdir/new.json" "d['verdict']") == ring ]] && break
done
new_backend=$(json_get "$workdir/new.json" "d['backend']")
check "a new flow is traced away from the drained backend" test "$new_backend" != "$first"
check "... and goes there" test "$(backend_of "$(send "$s")")" = "$new_backend"

echo "== trace: not a frontend, bad usage"
set +e
xlbctl trace "$client_ip:42000" "198.18.0.99:80/tcp" >"$workdir/nf" 2>&1
nf=$?
xlbctl trace "$client_ip" "$vip:80" >"$workdir/usage" 2>&1
usage=$?
set -e
check "not a frontend: exit 1, said" bash -c "[[ $nf == 1 ]] && grep -q 'no frontend at 198.18.0.99:80/tcp' '$workdir/nf'"
check "bad usage: exit 2" test "$usage" -eq 2

echo "== xlbd not running"
kill -TERM "$xlbd_pid"
wait "$xlbd_pid" || true
for cmd in drops trace; do
  set +e
  if [[ $cmd == trace ]]; then xlbctl trace "$client_ip:1" "$vip:80" >"$workdir/down" 2>&1; else xlbctl drops >"$workdir/down" 2>&1; fi
  code=$?
  set -e
  check "$cmd without xlbd: exit 3, one line" bash -c "[[ $code == 3 && \$(wc -l <'$workdir/down') == 1 ]]"
done
cat "$workdir/down"
nsenter --net="/run/netns/$lb" "$xlbd" --config "$workdir/xlb.toml" --pin-dir "$pin_dir" --cleanup >/dev/null

if ((failures)); then
  echo "xlbd log:" >&2
  cat "$workdir/xlbd.log" >&2
  echo "$failures checks failed" >&2
  exit 1
fi
echo "all checks passed"
