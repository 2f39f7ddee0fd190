#!/usr/bin/env bash
# Makes the .deb from a built tree with the project's CMake install rules:
#   packaging/build-deb.sh BUILD_DIR OUT_DIR [VERSION]
# BUILD_DIR is a configured and built tree (scripts/test.sh's `build`, or any other); VERSION
# defaults to the project's version with Debian revision 1 (0.1.0-1). Prints the .deb's path.
# Needs dpkg-dev (dpkg-shlibdeps, dpkg-gencontrol); no root: file owners are set by dpkg-deb.
set -euo pipefail

build=$(realpath "${1:?usage: build-deb.sh BUILD_DIR OUT_DIR [VERSION]}")
out=$(realpath -m "${2:?usage: build-deb.sh BUILD_DIR OUT_DIR [VERSION]}")
src=$(cd "$(dirname "$0")/.." && pwd)
upstream=$(sed -n 's/^CMAKE_PROJECT_VERSION:STATIC=//p' "$build/CMakeCache.txt")
version=${3:-$upstream-1}
arch=$(dpkg --print-architecture)

for tool in dpkg-shlibdeps dpkg-gencontrol dpkg-deb; do
  command -v "$tool" >/dev/null || { echo "build-deb: $tool is missing (apt-get install dpkg-dev)" >&2; exit 1; }
done
[[ -x $build/src/xlbd/xlbd && -x $build/src/xlbctl/xlbctl ]] ||
  { echo "build-deb: $build has no built xlbd and xlbctl (cmake --build $build)" >&2; exit 1; }

work=$(mktemp -d "${TMPDIR:-/tmp}/xlb-deb.XXXXXX")
trap 'rm -rf "$work"' EXIT
stage=$work/root
mkdir -p "$work/debian" "$out"

# The files: exactly what `cmake --install` puts under /usr and /etc, binaries stripped.
DESTDIR=$stage cmake --install "$build" --prefix /usr --strip >/dev/null
strip --remove-section=.comment --remove-section=.note "$stage/usr/sbin/xlbd" "$stage/usr/bin/xlbctl"
doc=$stage/usr/share/doc/xlb
install -D -m 0644 "$src/packaging/deb/copyright" "$doc/copyright"
find "$stage/usr/share/man" -type f -name '*.[0-9]' -exec gzip -9n {} +
install -D -m 0644 "$src/packaging/deb/lintian-overrides" "$stage/usr/share/lintian/overrides/xlb"

# debian/changelog, also shipped as changelog.Debian.gz: one entry for this version.
{
  echo "xlb ($version) unstable; urgency=medium"
  echo
  echo "  * Package of xlb $upstream built from $(git -C "$src" rev-parse --short HEAD 2>/dev/null || echo 'a source tree')."
  echo
  echo " -- xlb maintainers <maintainers@users.noreply.r-seed-9b528fc8.example>  $(date -R -d "@${SOURCE_DATE_EPOCH:-$(git -C "$src" log -1 --format=%ct 2>/dev/null || date +%s)}")"
} > "$work/debian/changelog"
gzip -9nc "$work/debian/changelog" > "$doc/changelog.Debian.gz"
chmod 0644 "$doc/changelog.Debian.gz"

# DEBIAN/: control with the shared-library dependencies dpkg-shlibdeps finds, maintainer
# scripts, conffiles, md5sums.
cp "$src/packaging/deb/control" "$work/debian/control"
mkdir -p "$stage/DEBIAN"
(
  cd "$work"
  dpkg-shlibdeps -Tdebian/substvars "$stage/usr/sbin/xlbd" "$stage/usr/bin/xlbctl" 2>/dev/null
  dpkg-gencontrol -pxlb -v"$version" -P"$stage" -Tdebian/substvars -fdebian/files
)
for script in postinst prerm postrm; do
  install -m 0755 "$src/packaging/deb/$script" "$stage/DEBIAN/$script"
done
(cd "$stage" && find etc -type f | sed 's|^|/|' | sort) > "$stage/DEBIAN/conffiles"
(cd "$stage" && find usr -type f -print0 | sort -z | xargs -0 md5sum) > "$stage/DEBIAN/md5sums"
chmod 0644 "$stage/DEBIAN/conffiles" "$stage/DEBIAN/md5sums" "$stage/DEBIAN/control"
find "$stage" -type d -exec chmod 0755 {} +

deb=$out/xlb_${version}_${arch}.deb
dpkg-deb --root-owner-group -Zxz --build "$stage" "$deb" >/dev/null
echo "$deb"
