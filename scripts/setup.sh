#!/usr/bin/env bash
# Set up a fresh Debian 12 machine for Airlock: packages, CRIU >= 4.1 from
# trixie (pinned low so nothing else moves to trixie), the meson build and the
# base root filesystems.  Idempotent: a second run only rebuilds what changed.
set -euo pipefail

top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top"

need_root() {
	if [ "$(id -u)" != 0 ]; then
		echo "setup: must run as root (installs packages)" >&2
		exit 1
	fi
}

PACKAGES=(
	build-essential meson ninja-build pkg-config clang-format
	libseccomp-dev libcap-dev libnl-3-dev libnl-route-3-dev libcjson-dev
	libmicrohttpd-dev libcurl4-openssl-dev libarchive-dev libssl-dev libauparse-dev
	busybox-static debootstrap iproute2 iptables curl python3
	crun runc bubblewrap util-linux hyperfine
)

missing_packages() {
	local p
	for p in "${PACKAGES[@]}"; do
		dpkg-query -W -f='${Status}\n' "$p" 2>/dev/null | grep -q '^install ok installed' || echo "$p"
	done
}

# The trixie source reuses the mirror URI this machine already uses for
# bookworm, so nothing here names a registry host.
setup_trixie_source() {
	local src=/etc/apt/sources.list.d/airlock-trixie.sources
	local pin=/etc/apt/preferences.d/airlock-trixie.pref
	[ -f "$src" ] && [ -f "$pin" ] && return 1
	local uri=""
	if [ -f /etc/apt/sources.list.d/debian.sources ]; then
		uri=$(awk '/^URIs:/ && $2 !~ /security/ {print $2; exit}' /etc/apt/sources.list.d/debian.sources)
	fi
	if [ -z "$uri" ] && [ -f /etc/apt/sources.list ]; then
		uri=$(awk '$1 == "deb" && $3 == "bookworm" {print $2; exit}' /etc/apt/sources.list)
	fi
	if [ -z "$uri" ]; then
		echo "setup: cannot find the bookworm mirror URI to reuse for trixie" >&2
		exit 1
	fi
	cat >"$pin.tmp" <<PIN
Package: *
Pin: release n=trixie
Pin-Priority: 100
PIN
	mv "$pin.tmp" "$pin"
	cat >"$src.tmp" <<SRC
Types: deb
URIs: $uri
Suites: trixie
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
SRC
	mv "$src.tmp" "$src"
	return 0
}

criu_ok() {
	command -v criu >/dev/null 2>&1 || return 1
	local v
	v=$(criu --version 2>/dev/null | awk '/^Version:/ {print $2}')
	[ -n "$v" ] || return 1
	# >= 4.1
	[ "$(printf '%s\n4.1\n' "$v" | sort -V | head -n1)" = "4.1" ]
}

install_packages() {
	local miss
	miss=$(missing_packages)
	local updated=0
	if setup_trixie_source; then
		apt-get update -q
		updated=1
	fi
	if [ -n "$miss" ]; then
		[ $updated = 1 ] || apt-get update -q
		updated=1
		# shellcheck disable=SC2086
		DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends $miss
	fi
	if ! criu_ok; then
		[ $updated = 1 ] || apt-get update -q
		DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends -t trixie criu
	fi
}

build() {
	if [ ! -f build/build.ninja ]; then
		meson setup build --buildtype=debugoptimized
	fi
	ninja -C build
	if [ ! -f build-asan/build.ninja ]; then
		meson setup build-asan -Db_sanitize=address,undefined -Db_lundef=false --buildtype=debug
	fi
	ninja -C build-asan
}

# Docker's own default seccomp profile (moby profiles/seccomp/default.json),
# for the security battery's "Docker's profile loads unchanged" test.  Debian
# ships it in golang-github-docker-docker-dev, whose Go build dependencies
# cannot be installed beside trixie's libzstd1 (pulled in by CRIU), so the
# package is fetched with apt and only that one file is unpacked from it.
DOCKER_PROFILE=/var/lib/airlock/docker-seccomp/default.json
install_docker_profile() {
	[ -s "$DOCKER_PROFILE" ] && return 0
	local tmp member=./usr/share/gocode/src/github.com/docker/docker/profiles/seccomp/default.json
	tmp=$(mktemp -d)
	chmod 755 "$tmp" # apt downloads as _apt
	(cd "$tmp" && apt-get download -q golang-github-docker-docker-dev >/dev/null)
	mkdir -p "$tmp/x" "$(dirname "$DOCKER_PROFILE")"
	dpkg-deb --fsys-tarfile "$tmp"/golang-github-docker-docker-dev_*.deb | tar -x -C "$tmp/x" "$member"
	install -m 0644 "$tmp/x/$member" "$DOCKER_PROFILE.tmp"
	mv "$DOCKER_PROFILE.tmp" "$DOCKER_PROFILE"
	rm -rf "$tmp"
}

need_root
install_packages
install_docker_profile
build
"$top/rootfs/build-busybox.sh"
if [ "${AIRLOCK_SKIP_DEBIAN_ROOTFS:-0}" != 1 ]; then
	"$top/rootfs/build-debian.sh"
fi
echo "setup: done"
