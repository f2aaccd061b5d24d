#!/usr/bin/env bash
# Build the "debian" base rootfs: Debian 12 (bookworm) minbase plus bash,
# coreutils, python3, git and ca-certificates, from the bookworm mirror this
# machine's apt already uses.  Takes a few minutes; see rootfs/README.md.
#
# usage: build-debian.sh [--force]
set -euo pipefail
umask 022

rootfs_prog=build-debian
rootfs_flavour=debian
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source-path=SCRIPTDIR source=common.sh
. "$here/common.sh"

suite=bookworm
variant=minbase
packages=(bash coreutils python3 git ca-certificates)
sandbox_uid=1000

usage() {
	echo "usage: $0 [--force]"
	echo "  builds ${rootfs_target} (AIRLOCK_ROOTFS_DIR sets the parent directory;"
	echo "  AIRLOCK_DEBIAN_MIRROR overrides the mirror taken from apt's sources)"
}

rootfs_parse_args "$@"

rootfs_need_root
command -v debootstrap >/dev/null 2>&1 || rootfs_die "debootstrap not found (install debootstrap)"

hash=$(rootfs_inputs_hash "$rootfs_flavour $suite $variant ${packages[*]}" \
	"$here/build-debian.sh" "$here/common.sh")
rootfs_skip_if_current "$hash" "$force"

mirror=${AIRLOCK_DEBIAN_MIRROR:-$(rootfs_find_mirror "$suite")}
[ -n "$mirror" ] || rootfs_die "no apt source for $suite found in /etc/apt; set AIRLOCK_DEBIAN_MIRROR"

rootfs_lock
rootfs_skip_if_current "$hash" "$force"

start=$(date +%s)
rootfs_begin
t=$rootfs_tmp
log=$rootfs_root/.$rootfs_flavour.debootstrap.log

include=$(IFS=,; echo "${packages[*]}")
rootfs_log "debootstrap --variant=$variant $suite from $mirror (log: $log)"
# debootstrap runs in its own mount and pid namespaces: whatever it mounts in
# the target vanishes with it, and killing the namespace's init kills every
# process it left behind, so none can still be writing into the tree while
# the cleanup removes it.  It runs in the background because its init, like
# any pid 1, ignores Ctrl-C; wait is interruptible, so the INT/TERM traps run
# at once and the cleanup hook below ends it.
bootstrap_pid=""
stop_bootstrap() {
	[ -n "$bootstrap_pid" ] || return 0
	# SIGKILL to the child of unshare (the namespace's init) tears down the
	# namespace; unshare exits only once it has reaped it.  If it has not
	# forked yet, --kill-child passes a SIGKILL to unshare on to it.
	pkill -KILL -P "$bootstrap_pid" || kill -KILL "$bootstrap_pid" 2>/dev/null || true
	wait "$bootstrap_pid" 2>/dev/null || true
	bootstrap_pid=""
}
rootfs_cleanup_hook=stop_bootstrap

unshare --mount --propagation private --pid --fork --kill-child \
	debootstrap --variant="$variant" --include="$include" "$suite" "$t" "$mirror" >"$log" 2>&1 &
bootstrap_pid=$!
bootstrap_rc=0
wait "$bootstrap_pid" || bootstrap_rc=$?
bootstrap_pid=""
if [ "$bootstrap_rc" != 0 ]; then
	tail -n 20 "$log" >&2
	rootfs_die "debootstrap failed (exit $bootstrap_rc); full log in $log"
fi

# Caches and package lists would only make the shared layer bigger and stale;
# apt-get update inside a sandbox fetches fresh ones.  debconf's database
# lives in /var/cache/debconf but is state, not cache: keep it.
chroot "$t" apt-get clean
rm -rf "${t:?}"/var/lib/apt/lists/*
find "$t/var/cache" -mindepth 1 -maxdepth 1 ! -name debconf -exec rm -rf {} +
rm -f "$t"/var/cache/debconf/*-old

# debootstrap copied the host's identity and resolver in; a sandbox has its
# own hostname (set by airlockd) and no network by default.
echo airlock >"$t/etc/hostname"
cat >"$t/etc/hosts" <<EOF
127.0.0.1	localhost
::1	localhost ip6-localhost ip6-loopback
EOF
rm -f "$t/etc/resolv.conf"
# An empty machine-id means "not yet assigned": sandboxes must not share one.
if [ -e "$t/etc/machine-id" ]; then
	: >"$t/etc/machine-id"
fi
rm -f "$t/var/lib/dbus/machine-id"
# The build log names the host's mirror and is of no use inside a sandbox.
rm -f "$t/var/log/bootstrap.log"

mkdir -p "$t/workspace"
chmod 0755 "$t/workspace"
chmod 1777 "$t/tmp" "$t/var/tmp"

if chroot "$t" getent passwd "$sandbox_uid" >/dev/null; then
	rootfs_die "uid $sandbox_uid is already taken in the $suite tree"
fi
chroot "$t" useradd --uid "$sandbox_uid" --user-group --create-home \
	--shell /bin/bash --comment sandbox sandbox

# Whatever debootstrap left in /dev (nodes it made, or an empty mount point
# when it bind-mounted them) is replaced by the same fixed set it makes: the
# harmless pseudo-devices that also make up a sandbox's own /dev.  Sandboxes
# mount their /dev over this one, so these only serve chroot-style use of the
# tree (git, for one, refuses to run without /dev/null).  Any other node,
# anywhere in the tree, is removed.
rm -rf "${t:?}/dev"
mkdir -m 0755 "$t/dev" "$t/dev/pts" "$t/dev/shm"
chmod 1777 "$t/dev/shm"
mknod -m 0666 "$t/dev/null" c 1 3
mknod -m 0666 "$t/dev/zero" c 1 5
mknod -m 0666 "$t/dev/full" c 1 7
mknod -m 0666 "$t/dev/random" c 1 8
mknod -m 0666 "$t/dev/urandom" c 1 9
mknod -m 0666 "$t/dev/tty" c 5 0
ln -s /proc/self/fd "$t/dev/fd"
ln -s /proc/self/fd/0 "$t/dev/stdin"
ln -s /proc/self/fd/1 "$t/dev/stdout"
ln -s /proc/self/fd/2 "$t/dev/stderr"
ln -s pts/ptmx "$t/dev/ptmx"
stray=$(find "$t" -xdev \( -type b -o -type c \) ! -path "$t/dev/*" -print -delete | wc -l)
[ "$stray" = 0 ] || rootfs_log "removed $stray device nodes outside /dev"

debian_version=$(cat "$t/etc/debian_version")
rootfs_write_stamp "$hash" "  \"suite\": \"$suite\",
  \"debian_version\": \"$debian_version\",
  \"variant\": \"$variant\",
  \"include\": \"$include\",
"
rootfs_install
rm -f "$log"
rootfs_print_size
rootfs_log "built in $(($(date +%s) - start))s"
