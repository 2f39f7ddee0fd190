#!/usr/bin/env bash
# Sets up, builds and runs every test of xlb: once in a normal build, once under ASan + UBSan,
# then the fuzz targets briefly (clang).
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

# The fuzz targets (tests/fuzz): libFuzzer is clang's, so they get a clang build directory that
# builds only them and the parts they link; ctest runs each for a few seconds from its seeds.
echo "== build build-fuzz (clang, libFuzzer, ASan + UBSan)"
CC=clang CXX=clang++ cmake -S . -B build-fuzz -G Ninja -DCMAKE_BUILD_TYPE=Debug -DXLB_FUZZ=ON \
  -DXLB_BUILD_TESTS=OFF -DXLB_BUILD_BENCH=OFF >/dev/null
cmake --build build-fuzz -j"$jobs" --target fuzz
echo "== test build-fuzz"
(cd build-fuzz && ctest --output-on-failure -j"$jobs" -L fuzz)
echo "== all tests passed"
