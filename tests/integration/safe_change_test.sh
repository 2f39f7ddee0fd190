#!/usr/bin/env bash
# Changes under a steady client load, with real servers between namespaces:
#
#   client 10.215.0.2 ---- 10.215.0.1 lb 10.216.K.1 ---- 10.216.K.2 bK   (K = 1..3)
#                                    (xlbd: XDP + tc, nat; API on lb's loopback)
#
# 1. b1 drained (xlbctl backend drain) while a client loop opens connections and others are held
#    open: no connection fails or resets, no new connection reaches b1, held ones to b1 continue.
# 2. xlbd killed with SIGKILL under the same loop, then started again: the client counts no failed
#    connection (the pinned datapath forwards while no xlbd runs), and the state database is
#    intact: integrity check ok, the history readable and complete, the drain still in force.
set -euo pipefail
build=${1:?usage: safe_change_test.sh BUILD_DIR}
here=$(cd "$(dirname "$0")" && pwd)
. "$here/netns_lib.sh"
require_root
netns_setup

xlbd=$build/src/xlbd/xlbd
xlbctl=$build/src/xlbctl/xlbctl
lbtool=$build/tests/integration/lbtool
vip=198.18.0.30
port=80

lb_topology 10.215.0 10.216 3

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
mode = "nat"
[[service.frontend]]
address = "$vip"
port = $port
$(for k in 1 2 3; do printf '[[service.backend]]\naddress = "10.216.%s.2"\nport = 8080\n' "$k"; done)
TOML

start_xlbd() {  # start_xlbd LOG: xlbd in lb's network namespace (it must see the host's bpffs)
  nsenter --net="/run/netns/$lb" "$xlbd" --config "$workdir/xlb.toml" --state-dir "$workdir/state" \
    --pin-dir "$pin_dir" >"$1" 2>&1 &
  xlbd_pid=$!
  pids+=("$xlbd_pid")
  wait_for_line "$1" "ready:"
}
ctl() { ip netns exec "$lb" "$xlbctl" --api http://127.0.0.1:9180 --state-dir "$workdir/state" "$@"; }
start_xlbd "$workdir/xlbd.1.log"

echo "== drain b1 under a steady load"
ip netns exec "$client" "$lbtool" hold "$vip" $port 24 8 >"$workdir/hold" &
hold_pid=$!
pids+=("$hold_pid")
wait_for_line "$workdir/hold" held
ip netns exec "$client" "$lbtool" loop "$vip" $port 6 2 >"$workdir/loop1" &
loop_pid=$!
pids+=("$loop_pid")
sleep 1
ctl backend drain web 10.216.1.2:8080 --reason "safe change test" | tee "$workdir/drain"
ip netns exec "$client" "$lbtool" tcp "$vip" $port 300 | tee "$workdir/after_drain"
wait "$loop_pid"
cat "$workdir/loop1"
wait "$hold_pid"
cat "$workdir/hold"
check "drained, says xlbctl" grep -q "drained" "$workdir/drain"
check "no connection of the loop failed during the drain" test "$(count failed "$workdir/loop1")" -eq 0
check "the loop made connections" test "$(count ok "$workdir/loop1")" -gt 100
check "no new connection reaches b1 after the drain" test "$(count b1 "$workdir/after_drain")" -eq 0
check "no new connection fails after the drain" test "$(count failed "$workdir/after_drain")" -eq 0
check "no held connection broke, b1's included" test "$(count broken "$workdir/hold")" -eq 0

echo "== kill -9 xlbd under load, then start it again"
revisions_before=$(ctl -o json history | python3 -c 'import json,sys; print(len(json.load(sys.stdin)["revisions"]))')
ip netns exec "$client" "$lbtool" loop "$vip" $port 6 2 >"$workdir/loop2" &
loop_pid=$!
pids+=("$loop_pid")
sleep 1
kill -KILL "$xlbd_pid"
wait "$xlbd_pid" 2>/dev/null || true
sleep 1
start_xlbd "$workdir/xlbd.2.log"
wait "$loop_pid"
cat "$workdir/loop2"
check "no connection failed across the kill and the restart" test "$(count failed "$workdir/loop2")" -eq 0
check "the loop made connections" test "$(count ok "$workdir/loop2")" -gt 100
python3 - "$workdir/state/state.db" >"$workdir/integrity" <<'PY'
import sqlite3, sys
db = sqlite3.connect(sys.argv[1])
print(db.execute("PRAGMA integrity_check").fetchone()[0])
PY
check "state database intact after SIGKILL" grep -qx ok "$workdir/integrity"
revisions_after=$(ctl -o json history | python3 -c 'import json,sys; print(len(json.load(sys.stdin)["revisions"]))')
check "history readable and complete ($revisions_before -> $revisions_after revisions)" test "$revisions_after" -eq "$revisions_before"
ip netns exec "$client" "$lbtool" tcp "$vip" $port 200 >"$workdir/after_restart"
check "the drain survived the kill: no new connection reaches b1" test "$(count b1 "$workdir/after_restart")" -eq 0

kill -TERM "$xlbd_pid"
wait "$xlbd_pid" || true
nsenter --net="/run/netns/$lb" "$xlbd" --config "$workdir/xlb.toml" --pin-dir "$pin_dir" --cleanup >/dev/null
if ((failures)); then
  echo "xlbd logs:" >&2
  cat "$workdir"/xlbd.*.log >&2
  echo "$failures checks failed" >&2
  exit 1
fi
echo "all checks passed"
