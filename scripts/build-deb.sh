#!/usr/bin/env bash
# Build Airlock's Debian package from this tree: a release build configured
# for /usr, staged with `meson install --destdir`, its dependencies computed
# by dpkg-shlibdeps, packed with dpkg-deb.  (No debian/ source package: the
# static cJSON and HTTP-only libcurl it links are built by scripts/setup.sh,
# outside any Debian build dependency.)  docs/operations.md says more.
#
# usage: build-deb.sh [--version VERSION] [--build-dir DIR] [--out DIR]
#   --version    package version (default: meson's project version)
#   --build-dir  meson build directory to (re)use (default build-deb)
#   --out        where the .deb goes (default .)
set -euo pipefail

top=$(cd "$(dirname "$0")/.." && pwd)
version="" builddir=$top/build-deb out=.
while [ $# -gt 0 ]; do
	case $1 in
	--version) version=$2; shift 2 ;;
	--build-dir) builddir=$2; shift 2 ;;
	--out) out=$2; shift 2 ;;
	-h | --help) sed -n '2,12p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
	*) echo "build-deb: unknown argument '$1' (see --help)" >&2; exit 2 ;;
	esac
done
for tool in meson ninja dpkg-deb dpkg-shlibdeps; do
	command -v "$tool" >/dev/null || { echo "build-deb: $tool not found (scripts/setup.sh installs it)" >&2; exit 1; }
done
mkdir -p "$out"
out=$(cd "$out" && pwd)

if [ ! -f "$builddir/build.ninja" ]; then
	meson setup "$builddir" "$top" --prefix=/usr --sysconfdir=/etc --localstatedir=/var \
		--buildtype=release -Db_ndebug=false >/dev/null
fi
[ -n "$version" ] || version=$(meson introspect --projectinfo "$builddir" |
	python3 -c 'import json, sys; print(json.load(sys.stdin)["version"])')
arch=$(dpkg --print-architecture)

# Only what gets installed is built (the tests and benchmarks are not).
mapfile -t targets < <(meson introspect --targets "$builddir" | python3 -c '
import json, os, sys
for t in json.load(sys.stdin):
    if t["installed"]:
        for f in t["filename"]:
            print(os.path.relpath(f, sys.argv[1]))' "$builddir")
ninja -C "$builddir" "${targets[@]}" >/dev/null

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
stage=$work/airlock
meson install -C "$builddir" --no-rebuild --strip --destdir "$stage" >/dev/null

# dpkg-shlibdeps wants to run in a source tree: a minimal one.
mkdir -p "$work/src/debian"
printf 'Source: airlock\n\nPackage: airlock\nArchitecture: any\n' >"$work/src/debian/control"
mapfile -t elves < <(find "$stage" -type f \( -perm -u+x -o -name '*.so' \) -exec sh -c \
	'head -c4 "$1" | grep -q "ELF" && echo "$1"' _ {} \;)
shlibs=$(cd "$work/src" && dpkg-shlibdeps -O "${elves[@]}" 2>/dev/null |
	sed -n 's/^shlibs:Depends=//p')

# Debian's place for the license (the full text is LICENSE, next to it).
install -m 0644 "$top/packaging/debian/copyright" "$stage/usr/share/doc/airlock/copyright"
mkdir -p "$stage/DEBIAN"
install -m 0755 "$top/packaging/debian/postinst" "$top/packaging/debian/prerm" \
	"$top/packaging/debian/postrm" "$stage/DEBIAN/"
(cd "$stage" && find etc -type f | sed 's|^|/|') >"$stage/DEBIAN/conffiles"
size=$(du -sk --exclude=DEBIAN "$stage" | cut -f1)
cat >"$stage/DEBIAN/control" <<CONTROL
Package: airlock
Version: $version
Architecture: $arch
Maintainer: Airlock developers <airlock@localhost>
Section: admin
Priority: optional
Installed-Size: $size
Depends: ${shlibs:+$shlibs, }criu (>= 4.1), passwd
Description: self-hosted sandbox runtime
 airlockd runs sandboxes (namespaces, cgroups, seccomp, capabilities, CRIU
 checkpoints) behind an HTTP API on a Unix socket, started by systemd
 through airlockd.socket.  The airlock CLI, airlock-harness and
 airlock-gateway are its clients.
CONTROL
deb=$out/airlock_${version}_${arch}.deb
dpkg-deb --root-owner-group --build -Zxz "$stage" "$deb" >/dev/null
echo "$deb"
