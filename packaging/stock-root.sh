#!/usr/bin/env bash
# Make (once) the tarball of a stock Debian 12 root that the install test
# unpacks for each run: `debootstrap bookworm` with its default variant
# (every "required" and "important" package, systemd included: what a plain
# Debian 12 server has), from the bookworm mirror this machine's apt uses.
# Kept under /var/lib/airlock, next to the base rootfs; rebuilt only when
# what it is made of (the suite, the variant, the steps below: bump
# "format" when they change) changes.
#
# usage: stock-root.sh [--force]   (AIRLOCK_STOCK_ROOT sets the tarball path)
set -euo pipefail
umask 022

# shellcheck disable=SC2034 # read by common.sh
rootfs_prog=stock-root
# shellcheck disable=SC2034
rootfs_flavour=stock-root
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=/dev/null # rootfs/common.sh
. "$here/../rootfs/common.sh"

suite=bookworm
tarball=${AIRLOCK_STOCK_ROOT:-/var/lib/airlock/stock-root/debian12.tar}
force=0
[ "${1:-}" = --force ] && force=1

rootfs_need_root
command -v debootstrap >/dev/null 2>&1 || rootfs_die "debootstrap not found (install debootstrap)"
format=1
hash=$(printf '%s default %s' "$suite" "$format" | sha256sum | cut -d' ' -f1)
if [ "$force" = 0 ] && [ -f "$tarball" ] && [ "$(cat "$tarball.inputs" 2>/dev/null)" = "$hash" ]; then
	rootfs_log "$tarball is up to date"
	exit 0
fi
mirror=${AIRLOCK_DEBIAN_MIRROR:-$(rootfs_find_mirror "$suite")}
[ -n "$mirror" ] || rootfs_die "no apt source for $suite found in /etc/apt; set AIRLOCK_DEBIAN_MIRROR"

mkdir -p "$(dirname "$tarball")"
exec {lock_fd}>"$tarball.lock"
flock "$lock_fd"
start=$(date +%s)
tmp=$(mktemp -d "$(dirname "$tarball")/.build.XXXXXX")
# Whatever happens, nothing of the build stays (rootfs_remove_tree unmounts
# anything left mounted below it first).
trap 'rootfs_remove_tree "$tmp"; rm -f "$tarball.tmp"' EXIT
rootfs_log "debootstrap $suite (default variant) from $mirror"
# In its own mount and pid namespaces, as rootfs/build-debian.sh does: its
# mounts and processes go with it.
if ! unshare --mount --propagation private --pid --fork --kill-child \
	debootstrap "$suite" "$tmp/root" "$mirror" >"$tmp/log" 2>&1; then
	tail -n 20 "$tmp/log" >&2
	rootfs_die "debootstrap failed"
fi
chroot "$tmp/root" apt-get clean
rm -rf "$tmp"/root/var/lib/apt/lists/* "$tmp/root/var/log/bootstrap.log"
tar -C "$tmp/root" --numeric-owner --xattrs -cf "$tarball.tmp" .
mv "$tarball.tmp" "$tarball"
echo "$hash" >"$tarball.inputs"
rootfs_log "$tarball: $(du -h "$tarball" | cut -f1), built in $(($(date +%s) - start))s"
