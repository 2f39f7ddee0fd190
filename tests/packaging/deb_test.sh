#!/usr/bin/env bash
# The .deb as a file: lintian clean, the files and conffiles an operator expects, dependencies
# declared; and the unit's sandbox as systemd-analyze scores it (printed; at most 3.0).
#   deb_test.sh BUILD_DIR
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
src=$(cd "$here/../.." && pwd)
build=$(realpath "${1:?usage: deb_test.sh BUILD_DIR}")
source "$here/packaging_lib.sh"
require "dpkg-dev" "command -v dpkg-shlibdeps"
require lintian "command -v lintian"
require "systemd-analyze" "command -v systemd-analyze"
require_built "$build"

work=$(mktemp -d /tmp/xlb-debtest.XXXXXX)
trap 'rm -rf "$work"' EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }

deb=$("$src/packaging/build-deb.sh" "$build" "$work")
echo "== $deb"
dpkg-deb --info "$deb"

echo "== lintian"
# Errors and warnings fail; overrides (each with its reason) are in packaging/deb/lintian-overrides.
lintian --info --display-level '>=info' --fail-on error,warning "$deb" 2>&1 | grep -v '^N:' |
  grep -v 'running with root privileges' || true
lintian --fail-on error,warning "$deb" >/dev/null 2>&1 || fail "lintian reports errors or warnings (above)"

echo "== contents"
dpkg-deb --contents "$deb" | awk '{print $6}' | sed 's|^\./|/|' | grep -v '/$' | sort >"$work/files"
cat >"$work/expected" <<'LIST'
/etc/xlb/xlb.toml
/usr/bin/xlbctl
/usr/lib/systemd/system/xlb.service
/usr/sbin/xlbd
/usr/share/bash-completion/completions/xlbctl
/usr/share/doc/xlb/README.md
/usr/share/doc/xlb/changelog.Debian.gz
/usr/share/doc/xlb/copyright
/usr/share/doc/xlb/examples/xlb.toml
/usr/share/lintian/overrides/xlb
/usr/share/man/man1/xlbctl.1.gz
/usr/share/man/man8/xlbd.8.gz
LIST
diff -u "$work/expected" "$work/files" || fail "the package's files differ from the list above"
mkdir "$work/control"
dpkg-deb --control "$deb" "$work/control"
[[ $(cat "$work/control/conffiles") == /etc/xlb/xlb.toml ]] || fail "conffiles: $(cat "$work/control/conffiles")"
depends=$(dpkg-deb --field "$deb" Depends)
for lib in libbpf1 libsystemd0 libsqlite3-0 libcurl4 libboost-program-options1.74.0; do
  [[ $depends == *"$lib"* ]] || fail "Depends lacks $lib: $depends"
done
for script in postinst prerm postrm; do [[ -x $work/control/$script ]] || fail "no $script"; done
grep -q 'deb-systemd-helper enable' "$work/control/postinst" || fail "postinst does not enable the unit"
grep -q 'rm -rf /var/lib/xlb' "$work/control/postrm" || fail "postrm does not remove the state on purge"

echo "== the unit"
mkdir "$work/root"
dpkg-deb --extract "$deb" "$work/root"
unit=$work/root/usr/lib/systemd/system/xlb.service
grep -E '^(Type|ExecStartPre|ExecStart|ExecReload|Restart)=' "$unit"
grep -qx 'Type=notify' "$unit" || fail "the unit is not Type=notify"
grep -qx 'ExecStart=/usr/sbin/xlbd --config /etc/xlb/xlb.toml --state-dir /var/lib/xlb' "$unit" || fail "ExecStart"
echo "== systemd-analyze security xlb.service (exposure at most 3.0; every point left is explained in the unit)"
systemd-analyze security --no-pager --offline=yes --root="$work/root" --threshold=30 xlb.service ||
  fail "systemd-analyze security: exposure above 3.0"
echo PASS
