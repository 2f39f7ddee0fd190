#!/usr/bin/env bash
# Sets up, builds and starts xlbd on the shipped default config (config/xlb.toml) with its
# SQLite state, then says where to look. A second run is harmless; `scripts/demo.sh stop`
# stops it and removes what it made.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
demo=/run/xlb-demo
pidfile=$demo/xlbd.pid

running_pid() {
  [[ -f $pidfile ]] || return 1
  local pid
  pid=$(<"$pidfile")
  [[ -n $pid ]] && kill -0 "$pid" 2>/dev/null && [[ $(readlink "/proc/$pid/exe") == "$root/build/src/xlbd/xlbd" ]] &&
    echo "$pid"
}

stop() {
  local pid
  if pid=$(running_pid); then
    kill -TERM "$pid"
    for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    echo "xlbd ($pid) stopped"
  fi
  rm -rf "$demo"
}

where_to_look() {
  local pid=$1
  cat <<MSG

xlbd is running (pid $pid) on $root/config/xlb.toml
  log:          $demo/xlbd.log
  state:        $demo/state/state.db (SQLite; revisions, events)
  history:      sqlite3 $demo/state/state.db 'select id, created_at, summary from revisions'
  check config: $root/build/src/xlbctl/xlbctl validate $root/config/xlb.toml
  reload:       kill -HUP $pid      (edit config/xlb.toml first; a bad file keeps the old config)
  stop:         scripts/demo.sh stop
MSG
}

if [[ ${1:-} == stop ]]; then
  stop
  exit 0
fi
[[ $(id -u) -eq 0 ]] || { echo "demo: run as root (it installs packages and, later, attaches BPF programs)" >&2; exit 1; }

if pid=$(running_pid); then
  echo "demo: already running"
  where_to_look "$pid"
  exit 0
fi

scripts/setup-deps.sh
cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build build -j"$(nproc)" --target xlbd xlbctl

mkdir -p "$demo/state"
build/src/xlbd/xlbd --config config/xlb.toml --state-dir "$demo/state" >"$demo/xlbd.log" 2>&1 &
pid=$!
echo "$pid" >"$pidfile"
for _ in $(seq 100); do
  grep -q "ready:" "$demo/xlbd.log" && break
  kill -0 "$pid" 2>/dev/null || { echo "demo: xlbd exited:" >&2; cat "$demo/xlbd.log" >&2; rm -f "$pidfile"; exit 1; }
  sleep 0.1
done
cat "$demo/xlbd.log"
where_to_look "$pid"
