#!/usr/bin/env bash
# Makes the .rpm from a built tree with the project's CMake install rules (as build-deb.sh):
#   packaging/build-rpm.sh BUILD_DIR OUT_DIR [VERSION [RELEASE]]
# Works on Debian with its rpm package (rpmbuild). Prints the .rpm's path.
set -euo pipefail

build=$(realpath "${1:?usage: build-rpm.sh BUILD_DIR OUT_DIR [VERSION [RELEASE]]}")
out=$(realpath -m "${2:?usage: build-rpm.sh BUILD_DIR OUT_DIR [VERSION [RELEASE]]}")
src=$(cd "$(dirname "$0")/.." && pwd)
version=${3:-$(sed -n 's/^CMAKE_PROJECT_VERSION:STATIC=//p' "$build/CMakeCache.txt")}
release=${4:-1}

command -v rpmbuild >/dev/null || { echo "build-rpm: rpmbuild is missing (apt-get install rpm)" >&2; exit 1; }
[[ -x $build/src/xlbd/xlbd && -x $build/src/xlbctl/xlbctl ]] ||
  { echo "build-rpm: $build has no built xlbd and xlbctl (cmake --build $build)" >&2; exit 1; }

work=$(mktemp -d "${TMPDIR:-/tmp}/xlb-rpm.XXXXXX")
trap 'rm -rf "$work"' EXIT
stage=$work/stage
mkdir -p "$out" "$work"/{BUILD,RPMS,SOURCES,SPECS,SRPMS,BUILDROOT}

DESTDIR=$stage cmake --install "$build" --prefix /usr --strip >/dev/null
strip --remove-section=.comment --remove-section=.note "$stage/usr/sbin/xlbd" "$stage/usr/bin/xlbctl"
install -D -m 0644 "$src/packaging/deb/copyright" "$stage/usr/share/doc/xlb/copyright"
find "$stage/usr/share/man" -type f -name '*.[0-9]' -exec gzip -9n {} +

sed -e "s/@VERSION@/$version/" -e "s/@RELEASE@/$release/" "$src/packaging/rpm/xlb.spec.in" >"$work/SPECS/xlb.spec"
rpmbuild -bb --quiet --define "_topdir $work" --define "xlb_stage $stage" \
  --define "_build_id_links none" "$work/SPECS/xlb.spec" >"$work/rpmbuild.log" 2>&1 ||
  { cat "$work/rpmbuild.log" >&2; echo "build-rpm: rpmbuild failed" >&2; exit 1; }
rpm=$(find "$work/RPMS" -name 'xlb-*.rpm' | head -n 1)
cp "$rpm" "$out/"
echo "$out/$(basename "$rpm")"
