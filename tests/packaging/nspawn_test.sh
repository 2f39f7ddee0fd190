#!/usr/bin/env bash
# The .deb on a real Debian 12 booted with systemd as PID 1 (systemd-nspawn): install, enable and
# start, web UI and xlbctl, reload, upgrade keeping the edited config, remove, purge. The checks
# themselves are in inside.sh, run there as a oneshot unit whose exit status becomes nspawn's.
#   nspawn_test.sh BUILD_DIR
# The Debian root is made by debootstrap once per machine and reused (read-only, with a
# throw-away overlay) from /var/cache/xlb-test/; the first run needs deb.debian.org.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
src=$(cd "$here/../.." && pwd)
build=$(realpath "${1:?usage: nspawn_test.sh BUILD_DIR}")
source "$here/packaging_lib.sh"

require root "test \$(id -u) -eq 0"
require "systemd-nspawn (systemd-container)" "command -v systemd-nspawn"
require debootstrap "command -v debootstrap"
require "dpkg-dev" "command -v dpkg-shlibdeps"
require "bpffs" "grep -qw bpf /proc/filesystems"
require_built "$build"

cache=${XLB_TEST_CACHE:-/var/cache/xlb-test}
mirror=${XLB_DEBIAN_MIRROR:-http://deb.debian.org/debian}
work=$(mktemp -d /tmp/xlb-pkgtest.XXXXXX)
machine=xlbpkg-$(basename "$work" | cut -d. -f2 | tr 'A-Z' 'a-z')
nspawn_pid=
cleanup() {
  local status=$?
  if [[ -n $nspawn_pid ]]; then kill -TERM "$nspawn_pid" 2>/dev/null || true; wait "$nspawn_pid" 2>/dev/null || true; fi
  mountpoint -q "$work/bpffs" && umount "$work/bpffs"
  rm -rf "$work"
  exit $status
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# The packages: this tree's, and the same rebuilt with a higher version for the upgrade.
upstream=$(sed -n 's/^CMAKE_PROJECT_VERSION:STATIC=//p' "$build/CMakeCache.txt")
v1=$upstream-1 v2=$upstream-2
mkdir -p "$work/share"
deb1=$("$src/packaging/build-deb.sh" "$build" "$work/share" "$v1")
deb2=$("$src/packaging/build-deb.sh" "$build" "$work/share" "$v2")
cp "$here/inside.sh" "$work/share/"
echo "== packages: $(basename "$deb1") $(basename "$deb2")"

# The Debian 12 root: systemd, curl for the web UI check, man-db (systemd-analyze verify opens
# the manual pages of Documentation=), iproute2 (a dummy link for XDP and tc), and the package's
# dependencies (the container has no network, so apt must find them installed). Its name carries a hash of that
# list, so a new dependency makes a new root; roots of older lists are removed.
deps=$(dpkg-deb -f "$deb1" Depends | sed 's/([^)]*)//g; s/[ ,]\+/ /g; s/^ //; s/ $//' | tr ' ' '\n' | sort -u | tr '\n' ',')
include="systemd,systemd-sysv,dbus,curl,ca-certificates,man-db,iproute2,${deps%,}"
key=$(echo "bookworm $include" | sha256sum | cut -c1-12)
root=$cache/debian12-$key
mkdir -p "$cache"
# Exclusive while a root is made or old ones removed; shared while one is in use, so that a run
# with other dependencies never removes the root under a running container.
exec 9>"$cache/lock"
flock -x -w 900 9 || { echo "FAIL: $cache/lock is held by another run for 15 minutes" >&2; exit 1; }
if [[ ! -f $root/.complete ]]; then
  echo "== debootstrap a Debian 12 root into $root (once per machine; needs $mirror)"
  for old in "$cache"/debian12-*; do [[ -e $old ]] && rm -rf --one-file-system "$old"; done
  start=$SECONDS
  timeout 900 debootstrap --variant=minbase --include="$include" bookworm "$root.tmp" "$mirror" \
    >"$work/debootstrap.log" 2>&1 || { tail -n 30 "$work/debootstrap.log" >&2; rm -rf "$root.tmp"; echo "FAIL: debootstrap" >&2; exit 1; }
  # No network in the container: apt must not try to fetch anything.
  rm -f "$root.tmp"/var/cache/apt/archives/*.deb
  touch "$root.tmp/.complete"
  mv "$root.tmp" "$root"
  echo "== debootstrap took $((SECONDS - start)) s"
else
  echo "== cached Debian 12 root: $root"
fi
flock -s 9

# The test unit: after the system is up, run inside.sh; its exit status ends the container.
cat >"$work/xlb-pkgtest.service" <<UNIT
[Unit]
Description=xlb package test
After=multi-user.target
[Service]
Type=oneshot
# Its output goes straight to a file of the host's: nothing is lost at the container's exit.
ExecStart=/bin/bash -c '/bin/bash /xlb-test/inside.sh $(basename "$deb1") $(basename "$deb2") $v2 >/xlb-result/inside.log 2>&1'
ExecStopPost=/bin/sh -c 'case "\$EXIT_STATUS" in ""|*[!0-9]*) code=99;; *) code=\$EXIT_STATUS;; esac; systemctl exit \$code'
StandardOutput=journal+console
StandardError=journal+console
TimeoutStartSec=500
UNIT

# A bpffs of its own: the container's pins never meet the host's or another test's.
mkdir -p "$work/bpffs" "$work/result"
mount -t bpf bpf "$work/bpffs"

echo "== boot the container ($machine)"
start=$SECONDS
set +e
timeout --kill-after=15 600 systemd-nspawn --quiet --boot --console=read-only --register=no --keep-unit \
  --machine="$machine" --private-users=no --private-network --volatile=overlay \
  --system-call-filter=bpf --capability=CAP_BPF,CAP_PERFMON,CAP_NET_ADMIN \
  --bind="$work/bpffs:/sys/fs/bpf" --bind-ro="$work/share:/xlb-test" --bind="$work/result:/xlb-result" \
  --bind-ro="$work/xlb-pkgtest.service:/etc/systemd/system/xlb-pkgtest.service" \
  -D "$root" systemd.wants=xlb-pkgtest.service >"$work/console.log" 2>&1 &
nspawn_pid=$!
wait "$nspawn_pid"
rc=$?
nspawn_pid=
set -e
# The test's own lines, then the verdict; the console's end only when it failed.
touch "$work/result/inside.log"
sed 's/^/inside| /' "$work/result/inside.log"
echo "== container exited with $rc after $((SECONDS - start)) s"
if [[ $rc -ne 0 ]] || [[ $(tail -n 1 "$work/result/inside.log") != PASS ]]; then
  echo "---- console" >&2
  tail -n 150 "$work/console.log" >&2
  echo "FAIL: the package test in the container failed (exit $rc)" >&2
  exit 1
fi
echo "PASS"
