#!/usr/bin/env bash
# The .rpm, built on Debian with rpmbuild: its files, config files, modes, requirements and
# scriptlets, read back with rpm -qp.
#   rpm_test.sh BUILD_DIR
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
src=$(cd "$here/../.." && pwd)
build=$(realpath "${1:?usage: rpm_test.sh BUILD_DIR}")
source "$here/packaging_lib.sh"
require "rpmbuild (Debian's rpm package)" "command -v rpmbuild"
require_built "$build"

work=$(mktemp -d /tmp/xlb-rpmtest.XXXXXX)
trap 'rm -rf "$work"' EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }

rpm=$("$src/packaging/build-rpm.sh" "$build" "$work")
echo "== $rpm"
rpm -qpi "$rpm"

echo "== rpm -qpl"
rpm -qpl "$rpm" | tee "$work/files"
cat >"$work/expected" <<'LIST'
/etc/xlb
/etc/xlb/xlb.toml
/usr/bin/xlbctl
/usr/lib/systemd/system/xlb.service
/usr/sbin/xlbd
/usr/share/bash-completion/completions/xlbctl
/usr/share/doc/xlb
/usr/share/doc/xlb/README.md
/usr/share/doc/xlb/copyright
/usr/share/doc/xlb/examples
/usr/share/doc/xlb/examples/xlb.toml
/usr/share/man/man1/xlbctl.1.gz
/usr/share/man/man8/xlbd.8.gz
/var/lib/xlb
LIST
diff -u "$work/expected" "$work/files" || fail "the rpm's files differ from the list above"
[[ $(rpm -qpc "$rpm") == /etc/xlb/xlb.toml ]] || fail "config files: $(rpm -qpc "$rpm")"
rpm -qp --qf '[%{FILEMODES:perms} %{FILEUSERNAME} %{FILENAMES}\n]' "$rpm" | grep -qx 'drwx------ root /var/lib/xlb' ||
  fail "/var/lib/xlb is not root 0700"
rpm -qp --qf '[%{FILEFLAGS:fflags} %{FILENAMES}\n]' "$rpm" | grep -q '^cn /etc/xlb/xlb.toml$' ||
  fail "/etc/xlb/xlb.toml is not %config(noreplace)"

echo "== rpm -qpR"
rpm -qpR "$rpm" | sort -u | tee "$work/requires"
for req in 'libbpf.so.1()(64bit)' 'libsystemd.so.0()(64bit)' 'libsqlite3.so.0()(64bit)' 'libcurl.so.4()(64bit)' \
  'libtomlplusplus.so.3()(64bit)' 'systemd' '/bin/sh'; do
  grep -qxF "$req" "$work/requires" || fail "requirements lack $req"
done

echo "== scriptlets"
rpm -qp --scripts "$rpm" | tee "$work/scripts"
grep -q 'preset xlb.service' "$work/scripts" || fail "%post does not apply the preset"
grep -q 'disable --now xlb.service' "$work/scripts" || fail "%preun does not stop the unit"
grep -q 'try-restart xlb.service' "$work/scripts" || fail "%postun does not restart on upgrade"
echo PASS
