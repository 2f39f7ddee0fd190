#!/usr/bin/env bash
# Browser tests of the web UI: starts xlbd (shadow mode: no root, nothing in the kernel) on a demo
# config with a free loopback port and a temporary state directory, runs ui.test.mjs in headless
# Chromium, and stops xlbd by its PID on every exit. Screenshots go to ARTIFACT_DIR.
#
#   tests/e2e/run.sh XLBD ARTIFACT_DIR
#
# Needs node, npm and /usr/bin/chromium (scripts/setup-deps.sh installs them): without them it
# skips (exit 77), or fails under CI=true. npm ci fills tests/e2e/node_modules when it is missing.
set -euo pipefail
xlbd=$1
artifacts=$2
here=$(cd "$(dirname "$0")" && pwd)

unavailable() {
  if [[ ${CI:-} == true ]]; then
    echo "e2e: FAILED: $1 (scripts/setup-deps.sh installs it)" >&2
    exit 1
  fi
  echo "e2e: skipped: $1 (scripts/setup-deps.sh installs it)" >&2
  exit 77
}
command -v node >/dev/null || unavailable "node is not installed"
command -v npm >/dev/null || unavailable "npm is not installed"
[[ -x /usr/bin/chromium ]] || unavailable "/usr/bin/chromium is not installed"

# Two builds may run this at once: one npm ci at a time.
if [[ ! -d $here/node_modules/playwright-core ]]; then
  (
    flock 9
    [[ -d $here/node_modules/playwright-core ]] ||
      (cd "$here" && npm ci --ignore-scripts --no-audit --no-fund --loglevel=error)
  ) 9>/tmp/xlb-e2e-npm.lock
fi

work=$(mktemp -d /tmp/xlb-e2e.XXXXXX)
xlbd_pid=
cleanup() {
  if [[ -n $xlbd_pid ]]; then
    kill -TERM "$xlbd_pid" 2>/dev/null || true
    wait "$xlbd_pid" 2>/dev/null || true
  fi
  rm -rf "$work"
}
trap cleanup EXIT

port=$(node -e 'const s = require("net").createServer().listen(0, "127.0.0.1", () => { console.log(s.address().port); s.close(); });')

# Services whose names are markup: the UI must show them as text.
cat >"$work/xlb.toml" <<TOML
[node]
mode = "shadow"

[api]
listen = "127.0.0.1:$port"

[[service]]
name = "web"
  [[service.frontend]]
  address = "198.18.0.10"
  port = 80
  [[service.backend]]
  address = "10.200.1.2"
  port = 8080
  [[service.backend]]
  address = "10.200.2.2"
  port = 8080
  [[service.backend]]
  address = "10.200.3.2"
  port = 8080
  weight = 2

[[service]]
name = "dns"
  [[service.frontend]]
  address = "198.18.0.10"
  port = 53
  protocol = "udp"
  [[service.backend]]
  address = "10.200.1.2"
  port = 5353
  [[service.backend]]
  address = "10.200.2.2"
  port = 5353

[[service]]
name = "<script>alert(1)</script>"
  [[service.frontend]]
  address = "198.18.0.11"
  port = 443
  [[service.backend]]
  address = "10.200.4.2"
  port = 8443

[[service]]
name = "<img/src/onerror=alert(2)>"
  [[service.frontend]]
  address = "198.18.0.12"
  port = 443
TOML

"$xlbd" --config "$work/xlb.toml" --state-dir "$work/state" >"$work/xlbd.log" 2>&1 &
xlbd_pid=$!
for _ in $(seq 100); do
  grep -q "api: dashboard and REST API at" "$work/xlbd.log" && break
  kill -0 "$xlbd_pid" 2>/dev/null || break
  sleep 0.1
done
if ! grep -q "api: dashboard and REST API at" "$work/xlbd.log"; then
  echo "e2e: xlbd did not start its API; its log:" >&2
  cat "$work/xlbd.log" >&2
  exit 1
fi

mkdir -p "$artifacts"
status=0
XLB_URL="http://127.0.0.1:$port" XLB_TOKEN_FILE="$work/state/api.token" XLB_ARTIFACTS="$artifacts" \
  node --test --test-reporter=spec --test-concurrency=1 "$here/ui.test.mjs" || status=$?
if ((status != 0)); then
  echo "e2e: xlbd's log:" >&2
  cat "$work/xlbd.log" >&2
fi
exit "$status"
