#!/usr/bin/env bash
# Build the "busybox" base rootfs: a static busybox and its applet links plus
# the few files a shell and the tests expect.  It builds in about a second,
# which is why tests use it.  See rootfs/README.md.
#
# usage: build-busybox.sh [--force]
set -euo pipefail
umask 022

rootfs_prog=build-busybox
rootfs_flavour=busybox
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source-path=SCRIPTDIR source=common.sh
. "$here/common.sh"

busybox_bin=${AIRLOCK_BUSYBOX:-/bin/busybox}
sandbox_uid=1000

usage() {
	echo "usage: $0 [--force]"
	echo "  builds ${rootfs_target} (AIRLOCK_ROOTFS_DIR sets the parent directory)"
}

rootfs_parse_args "$@"

rootfs_need_root
[ -x "$busybox_bin" ] || rootfs_die "$busybox_bin not found (install busybox-static)"
# The dynamically linked busybox package also installs /bin/busybox; its
# links would fail in a tree without a libc.
if command -v readelf >/dev/null 2>&1 && readelf -lW "$busybox_bin" 2>/dev/null | grep -q 'INTERP'; then
	rootfs_die "$busybox_bin is dynamically linked (install busybox-static)"
fi

hash=$(rootfs_inputs_hash "$rootfs_flavour" "$here/build-busybox.sh" "$here/common.sh" "$busybox_bin")
rootfs_skip_if_current "$hash" "$force"
rootfs_lock
# Another build may have finished while we waited for the lock.
rootfs_skip_if_current "$hash" "$force"

start=$(date +%s.%N)
rootfs_begin
t=$rootfs_tmp

mkdir -p "$t"/{bin,sbin,usr/bin,usr/sbin,etc,proc,sys,dev,tmp,workspace,root,run,var/tmp,home/sandbox}
chmod 1777 "$t/tmp" "$t/var/tmp"
chmod 0700 "$t/root"
install -m 0755 "$busybox_bin" "$t/bin/busybox"

# --list-full names each applet with its usual directory; the links are
# relative so the tree reads the same from the host as from inside.
n=0
while read -r applet; do
	case $applet in
	bin/busybox) continue ;;
	bin/* | sbin/* | usr/bin/* | usr/sbin/*) ;;
	*) continue ;; # linuxrc and the like: not for a sandbox
	esac
	dir=${applet%/*}
	up=${dir//[^\/]/}
	up=${up//\//../}../
	ln -s "${up}bin/busybox" "$t/$applet"
	n=$((n + 1))
done < <("$t/bin/busybox" --list-full)
[ "$n" -gt 100 ] || rootfs_die "$busybox_bin --list-full gave only $n applets"
[ -L "$t/bin/sh" ] || rootfs_die "$busybox_bin has no sh applet"

cat >"$t/etc/passwd" <<EOF
root:x:0:0:root:/root:/bin/sh
sandbox:x:$sandbox_uid:$sandbox_uid:sandbox:/home/sandbox:/bin/sh
nobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin
EOF
# tty: devpts is mounted with gid=5 in the sandbox's /dev.
cat >"$t/etc/group" <<EOF
root:x:0:
tty:x:5:
sandbox:x:$sandbox_uid:
nogroup:x:65534:
EOF
# Accounts are locked: nothing logs in, commands are spawned by airlock-init.
cat >"$t/etc/shadow" <<EOF
root:*:0:0:99999:7:::
sandbox:*:0:0:99999:7:::
nobody:*:0:0:99999:7:::
EOF
chmod 0640 "$t/etc/shadow"
# Placeholder: airlockd sets the hostname of each sandbox.
echo airlock >"$t/etc/hostname"
cat >"$t/etc/hosts" <<EOF
127.0.0.1	localhost
::1	localhost ip6-localhost ip6-loopback
EOF

chown -hR 0:0 "$t"
chown "$sandbox_uid:$sandbox_uid" "$t/home/sandbox"

bb_version=$("$t/bin/busybox" 2>/dev/null | head -n1 | sed 's/"/\\"/g' || true)
rootfs_write_stamp "$hash" "  \"busybox\": \"$bb_version\",
  \"applets\": $n,
"
rootfs_install
end=$(date +%s.%N)
rootfs_print_size
rootfs_log "built in $(awk -v a="$start" -v b="$end" 'BEGIN { printf "%.1f", b - a }')s"
