#!/usr/bin/env bash
# Sets up, builds and runs every test of xlb: once in a normal build, once under ASan + UBSan.
# This is the README's test command and what CI runs (.ci/run). Needs root for the kernel tests.
set -euo pipefail
cd "$(dirname "$0")/.."

jobs=$(nproc)
scripts/setup-deps.sh

run_suite() {
  local dir=$1; shift
  echo "== build $dir ($*)"
  cmake -S . -B "$dir" -G Ninja "$@" >/dev/null
  cmake --build "$dir" -j"$jobs"
  echo "== test $dir"
  (cd "$dir" && ctest --output-on-failure --timeout 600 -j"$jobs")
}

run_suite build -DCMAKE_BUILD_TYPE=RelWithDebInfo
run_suite build-asan -DCMAKE_BUILD_TYPE=Debug -DXLB_SANITIZE=ON -DXLB_BUILD_BENCH=OFF
echo "== all tests passed"
