#!/usr/bin/env bash
# Faults around a running xlbd, each with its expected outcome, under real traffic between
# namespaces (client -> lb -> b1, b2 through XDP in nat mode):
#
#   client 10.219.0.2 ---- 10.219.0.1 lb 10.220.K.1 ---- 10.220.K.2 bK   (K = 1, 2)
#
# 1. The client-side link is deleted and made again, then its XDP program is taken off:
#    xlbd puts its programs back, and traffic flows again.
# 2. The state database is locked by another process during a reload: the reload is refused
#    with the reason, nothing of it is applied (no half-written state), traffic goes on.
# 3. The state directory's filesystem is full during a reload: the same.
# 4. The state database is corrupted while xlbd is stopped: xlbd refuses to start and says why;
#    the pinned datapath keeps forwarding all the while.
# 5. SIGTERM while xlbd applies a large catalog: it finishes the plan, stops cleanly, and the
#    next start finds the database and the maps consistent (no new revision).
# 6. bpffs unmounted under a running xlbd (in a mount namespace of its own): the attached
#    programs keep forwarding and a reload still reaches the maps (xlbd holds their fds).
set -euo pipefail
build=${1:?usage: faults_test.sh BUILD_DIR}
here=$(cd "$(dirname "$0")" && pwd)
. "$here/../integration/netns_lib.sh"
require_root
netns_setup

xlbd=$build/src/xlbd/xlbd
lbtool=$build/tests/integration/lbtool
vip=198.18.0.50
port=80
state=$workdir/state
mounted=""
cleanup_faults() {
  [[ -n $mounted ]] && umount -l "$mounted" 2>/dev/null || true
}
trap 'cleanup_faults; netns_cleanup' EXIT

lb_topology 10.219.0 10.220 2
# The client-side link as lb_topology makes it, to make it again in case 1.
client_link() {
  veth "$client" eth0 10.219.0.2/24 "$lb" lbc 10.219.0.1/24
  native_xdp_ready "$client" eth0
  ip -n "$client" route add 198.18.0.0/24 via 10.219.0.1
}

write_config() {  # write_config BACKENDS [EXTRA_SERVICES]: the web service on b1..bBACKENDS
  local tmp=$workdir/xlb.toml.tmp
  {
    printf '[node]\ninterfaces = ["lbc", "lb1", "lb2"]\nxdp_mode = "native"\ncgroup = "off"\n[api]\nlisten = "off"\n'
    printf '[[service]]\nname = "web"\nmode = "nat"\n[[service.frontend]]\naddress = "%s"\nport = %s\n' "$vip" $port
    for ((k = 1; k <= $1; k++)); do printf '[[service.backend]]\naddress = "10.220.%s.2"\nport = 8080\n' "$k"; done
    [[ -n ${2:-} ]] && cat "$2"
  } >"$tmp"
  mv "$tmp" "$workdir/xlb.toml"
}
start_xlbd() {  # start_xlbd LOG
  nsenter --net="/run/netns/$lb" "$xlbd" --config "$workdir/xlb.toml" --state-dir "$state" --pin-dir "$pin_dir" \
    >"$1" 2>&1 &
  xlbd_pid=$!
  pids+=("$xlbd_pid")
}
traffic() {  # traffic NAME COUNT: COUNT connections from the client, tallied in $workdir/NAME
  ip netns exec "$client" "$lbtool" tcp "$vip" $port "$2" >"$workdir/$1" || true
  echo "$1: $(tr '\n' ' ' <"$workdir/$1")"
}
revisions() {
  python3 -c 'import sqlite3,sys; print(sqlite3.connect(sys.argv[1]).execute("SELECT count(*) FROM revisions").fetchone()[0])' \
    "$state/state.db"
}

# The state directory on a small filesystem of its own, for the full-disk case.
mkdir -p "$state"
mount -t tmpfs -o size=8m tmpfs "$state"
mounted=$state

write_config 1
log=$workdir/xlbd.1.log
start_xlbd "$log"
wait_for_line "$log" "ready:"
traffic t0 100
check "b1 serves" test "$(count b1 "$workdir/t0")" -eq 100

echo "== 1. the client-side link deleted and made again; its XDP program taken off"
ip -n "$lb" link del lbc
client_link
wait_for_line "$log" "lbc lost xlb's programs" 10
traffic t1 100
check "traffic flows through the re-created link" test "$(count b1 "$workdir/t1")" -eq 100
ip -n "$lb" link set dev lbc xdp off
wait_for_line "$log" "datapath: attached to lbc" 10
sleep 0.2
check "xlb's XDP program is back on lbc" bash -c "ip -n '$lb' link show lbc | grep -q 'prog/xdp'"
traffic t1b 100
check "traffic flows after the XDP program came back" test "$(count b1 "$workdir/t1b")" -eq 100

echo "== 2. the state database locked by another process during a reload"
python3 - "$state/state.db" >"$workdir/locker.log" 2>&1 <<'PY' &
import sqlite3, sys, time
db = sqlite3.connect(sys.argv[1], isolation_level=None)
db.execute("BEGIN EXCLUSIVE")
print("locked", flush=True)
time.sleep(9)  # longer than xlbd's 5 s busy timeout
db.execute("ROLLBACK")
PY
locker=$!
pids+=("$locker")
wait_for_line "$workdir/locker.log" locked
before=$(grep -c "stays in force" "$log" || true)
write_config 2
wait_for_line "$log" "database is locked" 15
check "the reload was refused" test "$(grep -c "stays in force" "$log")" -gt "$before"
traffic t2 100
check "nothing of it applied: b2 takes no connection" test "$(count b2 "$workdir/t2")" -eq 0
check "traffic goes on" test "$(count b1 "$workdir/t2")" -eq 100
wait "$locker"
write_config 2 /dev/null
echo "# touched" >>"$workdir/xlb.toml"
wait_for_line "$log" "reload: applied revision 2" 15
traffic t2b 200
check "once unlocked, the reload applies: b2 serves" test "$(count b2 "$workdir/t2b")" -gt 20

echo "== 3. the state directory's filesystem full during a reload"
dd if=/dev/zero of="$state/filler" bs=64k 2>/dev/null || true
before=$(grep -c "stays in force" "$log" || true)
write_config 1
wait_for_line "$log" "database or disk is full" 15
check "the reload was refused" test "$(grep -c "stays in force" "$log")" -gt "$before"
traffic t3 200
check "nothing of it applied: b2 still serves" test "$(count b2 "$workdir/t3")" -gt 20
check "no connection failed" test "$(count failed "$workdir/t3")" -eq 0
rm -f "$state/filler"
echo "# touched" >>"$workdir/xlb.toml"
wait_for_line "$log" "reload: applied revision 3" 15
traffic t3b 100
check "with room again, the reload applies: only b1" test "$(count b1 "$workdir/t3b")" -eq 100

echo "== 4. the state database corrupted while xlbd is stopped"
kill -TERM "$xlbd_pid"
wait "$xlbd_pid" || true
cp "$state/state.db" "$workdir/state.db.good"
rm -f "$state/state.db-wal" "$state/state.db-shm"
printf 'this is not an SQLite database, it was overwritten' | dd of="$state/state.db" conv=notrunc 2>/dev/null
start_xlbd "$workdir/xlbd.4.log"
wait "$xlbd_pid" && code=0 || code=$?
cat "$workdir/xlbd.4.log"
check "xlbd refuses to start" test "$code" -ne 0
check "and says why, naming the file" grep -q "$state/state.db.*is it an SQLite database" "$workdir/xlbd.4.log"
traffic t4 100
check "the pinned datapath forwards while no xlbd runs" test "$(count b1 "$workdir/t4")" -eq 100
mv "$workdir/state.db.good" "$state/state.db"

echo "== 5. SIGTERM while xlbd applies a large catalog"
for i in $(seq 1 3000); do
  printf '[[service]]\nname = "s%d"\n[[service.frontend]]\naddress = "198.19.%d.%d"\nport = 80\n[[service.backend]]\naddress = "10.220.1.2"\nport = 8080\n' \
    "$i" $((i / 250)) $((i % 250 + 1))
done >"$workdir/many.toml"
write_config 1 "$workdir/many.toml"
log5=$workdir/xlbd.5.log
start_xlbd "$log5"
wait_for_line "$log5" "datapath: loaded" 20
kill -TERM "$xlbd_pid"
wait "$xlbd_pid" && code=0 || code=$?
check "stopped cleanly (exit 0)" test "$code" -eq 0
revisions_after_stop=$(revisions)
start_xlbd "$workdir/xlbd.6.log"
wait_for_line "$workdir/xlbd.6.log" "ready:" 60
check "the next start finds the catalog in force: no new revision" grep -q "config unchanged" "$workdir/xlbd.6.log"
check "revisions unchanged ($revisions_after_stop)" test "$(revisions)" -eq "$revisions_after_stop"
traffic t5 100
check "traffic flows" test "$(count b1 "$workdir/t5")" -eq 100

echo "== 6. bpffs unmounted under a running xlbd"
kill -TERM "$xlbd_pid"
wait "$xlbd_pid" || true
write_config 1
log6=$workdir/xlbd.7.log
unshare --mount --propagation private bash -c \
  'mount -t bpf bpf /sys/fs/bpf && exec nsenter --net="$0" "$1" --config "$2" --state-dir "$3" --pin-dir "$4"' \
  "/run/netns/$lb" "$xlbd" "$workdir/xlb.toml" "$state" "$pin_dir" >"$log6" 2>&1 &
xlbd_pid=$!
pids+=("$xlbd_pid")
wait_for_line "$log6" "ready:" 30
# Every bpffs under it, the host's copy included: xlbd's namespace has none left.
nsenter --mount --target "$xlbd_pid" bash -c 'while mountpoint -q /sys/fs/bpf; do umount -l /sys/fs/bpf; done'
check "bpffs is gone for xlbd" bash -c "! nsenter --mount --target $xlbd_pid test -e '$pin_dir'"
traffic t6 100
check "traffic flows without bpffs" test "$(count b1 "$workdir/t6")" -eq 100
write_config 2
wait_for_line "$log6" "reload: applied revision" 15
traffic t6b 200
check "a reload still reaches the maps: b2 serves" test "$(count b2 "$workdir/t6b")" -gt 20

kill -TERM "$xlbd_pid"
wait "$xlbd_pid" || true
nsenter --net="/run/netns/$lb" "$xlbd" --config "$workdir/xlb.toml" --pin-dir "$pin_dir" --cleanup >/dev/null
if ((failures)); then
  cat "$workdir"/xlbd.*.log >&2
  echo "$failures checks failed" >&2
  exit 1
fi
echo "all checks passed"
