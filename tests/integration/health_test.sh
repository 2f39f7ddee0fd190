#!/usr/bin/env bash
# Health probes through xlbd's XDP datapath, with real servers between namespaces:
#
#   client 10.211.0.2 ---- 10.211.0.1 lb 10.212.K.1 ---- 10.212.K.2 bK   (K = 1..3)
#                                    (xlbd: XDP + tc, TCP probes every 200 ms, fall 3, rise 2)
#
# b1's server is killed: new connections stop reaching it within interval x fall (+ slack), and
# none fails after that; it is started again: it takes new connections within interval x rise
# (+ slack). Connections held open to b2 and b3 the whole time never break.
set -euo pipefail
build=${1:?usage: health_test.sh BUILD_DIR}
here=$(cd "$(dirname "$0")" && pwd)
. "$here/netns_lib.sh"
require_root
netns_setup

xlbd=$build/src/xlbd/xlbd
lbtool=$build/tests/integration/lbtool
vip=198.18.0.20
port=80
interval_ms=200
fall=3
rise=2
slack_ms=1500  # scheduling, the probe in flight, the plan's map writes

lb_topology 10.211.0 10.212 3

cat >"$workdir/xlb.toml" <<TOML
[node]
interfaces = ["lbc", "lb1", "lb2", "lb3"]
xdp_mode = "native"
cgroup = "off"
[maglev]
seed = "test"
[[service]]
name = "web"
mode = "nat"
[[service.frontend]]
address = "$vip"
port = $port
$(for k in 1 2 3; do printf '[[service.backend]]\naddress = "10.212.%s.2"\nport = 8080\n' "$k"; done)
[service.health]
type = "tcp"
interval = "${interval_ms}ms"
timeout = "150ms"
fall = $fall
rise = $rise
TOML

# xlbd must see the host's bpffs, so it enters only lb's network namespace (not `ip netns exec`).
log=$workdir/xlbd.log
nsenter --net="/run/netns/$lb" "$xlbd" --config "$workdir/xlb.toml" --state-dir "$workdir/state" \
  --pin-dir "$pin_dir" >"$log" 2>&1 &
xlbd_pid=$!
pids+=("$xlbd_pid")
wait_for_line "$log" "ready:"
for k in 1 2 3; do wait_for_line "$log" "health: web/10.212.$k.2:8080 up: connected"; done

run_client() {  # run_client OUT lbtool-args...: in the client namespace
  local out=$1
  shift
  ip netns exec "$client" "$lbtool" "$@" >"$out"
  cat "$out"
}
now_ms() { date +%s%3N; }
# seen_by MS FILE TEXT: TEXT appears in FILE before the clock (now_ms) reaches MS.
seen_by() {
  until grep -qF -- "$3" "$2"; do
    (($(now_ms) < $1)) || return 1
    sleep 0.02
  done
}
# held_on K: established connections from the client that bK's server holds (its dual-stack
# socket shows the client as [::ffff:10.211.0.2]).
held_on() { ip netns exec "b$1-$suffix" ss -Htn state established '( sport = :8080 )' | grep -c '10\.211\.0\.2\]*:' || true; }

echo "== all 3 backends up: 300 connections reach each of them"
run_client "$workdir/tcp1" tcp "$vip" $port 300
check "no failed connection" test "$(count failed "$workdir/tcp1")" -eq 0
check "b1 takes new connections" test "$(count b1 "$workdir/tcp1")" -gt 50

echo "== connections held open across everything that follows"
hold_count=24
ip netns exec "$client" "$lbtool" hold "$vip" $port $hold_count 12 >"$workdir/hold" &
hold_pid=$!
pids+=("$hold_pid")
wait_for_line "$workdir/hold" held
held_b1=$(held_on 1)
echo "held: $held_b1 on b1, $(held_on 2) on b2, $(held_on 3) on b3"

echo "== b1's server killed: out within interval x fall"
killed_at=$(now_ms)
kill -KILL "${server_pid[1]}"
wait "${server_pid[1]}" 2>/dev/null || true
# xlbd logs the transition once the maps have it: from then on no new connection may reach b1.
down="health: web/10.212.1.2:8080 down: connection refused; applied revision"
check "b1 marked down with its reason, and out of the maps, within interval x fall" \
  seen_by $((killed_at + interval_ms * fall + slack_ms)) "$log" "$down"
wait_for_line "$log" "$down" 30
run_client "$workdir/tcp2" tcp "$vip" $port 300
check "no new connection reaches b1" test "$(count b1 "$workdir/tcp2")" -eq 0
check "no new connection fails" test "$(count failed "$workdir/tcp2")" -eq 0

echo "== b1's server started again: back within interval x rise"
start_server 1
restarted_at=$(now_ms)
up="health: web/10.212.1.2:8080 up: connected; applied revision"
check "b1 marked up, and back in the maps, within interval x rise" \
  seen_by $((restarted_at + interval_ms * rise + slack_ms)) "$log" "$up"
wait_for_line "$log" "$up" 30
run_client "$workdir/tcp3" tcp "$vip" $port 300
check "b1 takes new connections again" test "$(count b1 "$workdir/tcp3")" -gt 50
check "no new connection fails" test "$(count failed "$workdir/tcp3")" -eq 0

echo "== held connections: only those b1's killed server held broke"
wait "$hold_pid"
cat "$workdir/hold"
check "connections to b2 and b3 never broke" test "$(count broken "$workdir/hold")" -eq "$held_b1"
check "b2 and b3 still hold theirs" test $(($(count b2 "$workdir/hold") + $(count b3 "$workdir/hold"))) -eq $((hold_count - held_b1))

echo "== both transitions are events in the state database"
kill -TERM "$xlbd_pid"
wait "$xlbd_pid"
python3 - "$workdir/state/state.db" >"$workdir/events" <<'PY'
import sqlite3, sys
db = sqlite3.connect(sys.argv[1])
for subject, message in db.execute("SELECT subject, message FROM events WHERE kind = 'health' ORDER BY id"):
    print(subject, message)
PY
cat "$workdir/events"
check "down event with reason and disruption" grep -q "^web/10.212.1.2:8080 down: connection refused; [0-9.]*% of ring slots moved" "$workdir/events"
check "up event" grep -q "^web/10.212.1.2:8080 up: connected; " "$workdir/events"

nsenter --net="/run/netns/$lb" "$xlbd" --config "$workdir/xlb.toml" --pin-dir "$pin_dir" --cleanup

if ((failures)); then
  echo "xlbd log:" >&2
  cat "$log" >&2
  echo "$failures checks failed" >&2
  exit 1
fi
echo "all checks passed"
