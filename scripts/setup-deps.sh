#!/usr/bin/env bash
# Installs every build, run and test dependency of xlb from Debian 12's packages.
# Idempotent: when everything is present it checks and returns in well under a second.
set -euo pipefail

packages=(
  # build
  cmake ninja-build g++ pkg-config make
  # BPF: compiler, skeleton generator, loader library
  clang llvm bpftool libbpf-dev libelf-dev zlib1g-dev linux-libc-dev
  # libraries of the user-space parts
  libnl-3-dev libnl-route-3-dev libnl-genl-3-dev libboost-program-options-dev libtomlplusplus-dev
  libcivetweb-dev libsqlite3-dev sqlite3 libxxhash-dev nlohmann-json3-dev
  libyaml-cpp-dev libcurl4-openssl-dev libssl-dev libsystemd-dev
  # tests and benchmarks; the fuzz targets (tests/fuzz) need clang's libFuzzer and sanitizer runtimes
  googletest libgtest-dev libgmock-dev libbenchmark-dev libclang-rt-14-dev
  # the hosts tests build and the tools they drive
  iproute2 ethtool procps util-linux iptables nftables conntrack
  # the BGP daemon xlb drives to announce VIPs (src/bgp), and the routers of tests/integration/bgp_test.sh
  bird2
  # the benchmark report's chart (bench/report.sh)
  gnuplot-nox
  # the Kubernetes API server of the tests (tests/support/fake_apiserver.py) and its certificates
  python3 openssl
  # browser tests of the web UI (tests/e2e): Chromium; npm brings playwright-core, no browser
  chromium
  # packages (packaging/, tests/packaging): .deb and .rpm tools, lintian, and a Debian 12 root
  # booted with systemd-nspawn
  dpkg-dev rpm lintian debootstrap systemd-container
)
# Node.js and npm for the browser tests: the machine's own when it has them (a newer Node.js may
# come from elsewhere, and Debian's npm would conflict with it), else Debian's.
if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
  packages+=(nodejs npm)
fi

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done

if ((${#missing[@]})); then
  if [[ $(id -u) -ne 0 ]]; then
    echo "setup-deps: missing packages: ${missing[*]}" >&2
    echo "setup-deps: run as root (or: sudo apt-get install ${missing[*]})" >&2
    exit 1
  fi
  echo "setup-deps: installing ${#missing[@]} packages: ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  echo "setup-deps: done"
fi
