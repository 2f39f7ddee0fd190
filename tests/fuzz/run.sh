#!/usr/bin/env bash
# Runs the fuzz targets for longer than the test suite does:
#
#   tests/fuzz/run.sh [SECONDS] [TARGET...]     # default: 300 s for each target of this directory
#   tests/fuzz/run.sh packets [FRAMES] [SEED]   # the XDP/tc packet fuzzing (root; the normal build)
#
# `packets` runs tests/bpf/packet_fuzz_test of the normal build (build, or $XLB_BUILD_DIR) with
# FRAMES frames per program (default 1000000) from SEED (default: a new one, printed); the same
# FRAMES and SEED replay a failure.
#
# Builds build-fuzz (clang) first. Inputs that reach new code collect in
# build-fuzz/tests/fuzz/corpus/TARGET/ (copy the ones worth keeping to tests/fuzz/corpus/TARGET/);
# a crash stops the run with the target's report and leaves the input in
# build-fuzz/tests/fuzz/artifacts/. Replay one input: build-fuzz/tests/fuzz/fuzz_TARGET FILE.
set -euo pipefail
cd "$(dirname "$0")/../.."

if [[ ${1:-} == packets ]]; then
  frames=${2:-1000000}
  seed=${3:-$(od -An -N4 -tu4 /dev/urandom | tr -d ' ')}
  build=${XLB_BUILD_DIR:-build}
  cmake --build "$build" --target packet_fuzz_test
  echo "== packet fuzz: $frames frames per program, seed $seed"
  exec env XLB_PACKET_FUZZ_FRAMES="$frames" XLB_PACKET_FUZZ_SEED="$seed" "$build/tests/bpf/packet_fuzz_test"
fi

seconds=${1:-300}
shift || true
build=build-fuzz

CC=clang CXX=clang++ cmake -S . -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Debug -DXLB_FUZZ=ON \
  -DXLB_BUILD_TESTS=OFF -DXLB_BUILD_BENCH=OFF >/dev/null
cmake --build "$build" --target fuzz

targets=("$@")
if ((${#targets[@]} == 0)); then
  for f in tests/fuzz/*_fuzz.cpp; do
    f=${f##*/}
    targets+=("${f%_fuzz.cpp}")
  done
fi

out=$build/tests/fuzz
for t in "${targets[@]}"; do
  echo "== fuzz $t for $seconds s"
  mkdir -p "$out/corpus/$t" "$out/artifacts"
  # The progress lines (NEW, REDUCE, pulse) would bury the report.
  set +e
  "$out/fuzz_$t" -max_total_time="$seconds" -rss_limit_mb=2048 -timeout=10 -print_final_stats=1 \
    -artifact_prefix="$out/artifacts/$t-" "$out/corpus/$t" "tests/fuzz/corpus/$t" 2>&1 |
    grep -v -E '^#[0-9]+[[:space:]]+(NEW|REDUCE|pulse)'
  status=${PIPESTATUS[0]}
  set -e
  if ((status != 0)); then
    echo "== fuzz $t failed (exit $status); the input is in $out/artifacts/" >&2
    exit "$status"
  fi
done
echo "== fuzzed ${targets[*]}: no crash"
