#!/usr/bin/env bash
# The install suite: Airlock's Debian package and offline bundle on a fresh
# Debian 12, with no network.
#
#   1. build the package (scripts/build-deb.sh; its build directory is kept
#      in the meson build tree, so a second run only relinks) and a newer
#      version of it, and the offline bundle (scripts/offline-bundle.sh);
#   2. unpack a stock Debian 12 root (packaging/stock-root.sh made it; the
#      suite is skipped without it) and, in a mount and network namespace of
#      its own (no network at all), chroot into it:
#   3. install the bundle with its install.sh; airlockd --version and --help
#      show the installed paths; the group, the configuration file and the
#      enabled units are there;
#   4. start the installed airlockd the way airlockd.socket does (socket
#      activation, by systemd-socket-activate), with its own state
#      directory: GET /v1/info answers, the configuration file's group is
#      in force, a sandbox is created and runs a command;
#   5. upgrade to the newer package while that airlockd runs; restart it:
#      the sandbox is still there and still runs commands;
#   6. remove the sandbox, stop airlockd, purge the package: nothing of it
#      is left in /usr, /etc or /var/lib/airlock.
# Everything (the root, the mounts in it, the daemon, cgroups) is removed at
# the end, whatever happened.
#
# usage: test_install.sh   (AIRLOCK_BUILD_DIR: the meson build directory)
# shellcheck disable=SC2317,SC2016 # the traps' functions are called indirectly; '$x' is for the inner shells
set -euo pipefail

top=$(cd "$(dirname "$0")/../.." && pwd)
stock=${AIRLOCK_STOCK_ROOT:-/var/lib/airlock/stock-root/debian12.tar}
busybox=${AIRLOCK_TEST_ROOTFS:-/var/lib/airlock/rootfs/busybox}

log() { printf 'install-test: %s\n' "$*"; }
fail() {
	printf 'install-test: FAIL: %s\n' "$*" >&2
	exit 1
}

# ---- inside the namespaces: everything that touches the root ----

inside() {
	local work=$1 root=$1/root
	local state=/var/lib/airlock/install-test-state
	local sock=/run/airlock-test/airlockd.sock
	# Globals, not locals: the EXIT trap reads them after inside() returned.
	daemon_pid="" sid="" anchor_pid=""

	# The root's own /proc, /sys (cgroups), /dev, and the host's
	# /run/airlock: uid ranges are claimed host-wide there, so the
	# sandboxes of this airlockd never share uids with other daemons'.
	# /run is a fresh tmpfs, as at boot, without /run/systemd/system: no
	# systemd runs here, and the package's scripts must see that.
	mount -t proc proc "$root/proc"
	mount --rbind /sys "$root/sys"
	mount --rbind /dev "$root/dev"
	mount -t tmpfs tmpfs "$root/run"
	mount -t tmpfs tmpfs "$root/tmp"
	mkdir -p /run/airlock "$root/run/airlock"
	mount --bind /run/airlock "$root/run/airlock"

	stop_daemon() {
		[ -n "$daemon_pid" ] || return 0
		kill -TERM "$daemon_pid" 2>/dev/null || true
		wait "$daemon_pid" 2>/dev/null || true
		daemon_pid=""
	}
	cleanup_inside() {
		local rc=$?
		# A sandbox left by a failure goes first, by the installed CLI if
		# it is still there, so that no cgroup or uid range stays behind.
		if [ -n "$sid" ] && [ -n "$daemon_pid" ]; then
			chroot "$root" airlock --socket "$sock" rm "$sid" >/dev/null 2>&1 || true
		fi
		stop_daemon
		if [ -n "$anchor_pid" ]; then
			kill "$anchor_pid" 2>/dev/null || true
			wait "$anchor_pid" 2>/dev/null || true
		fi
		exit "$rc"
	}
	trap cleanup_inside EXIT

	in_root() { chroot "$root" "$@"; }
	# airlockd does not run chrooted: the kernel refuses user namespaces to
	# a chrooted process.  The root becomes the root of a mount namespace
	# (pivot_root), as on a real machine, held by this process; every
	# airlockd runs in it (nsenter), so that what one mounts the next sees.
	unshare --mount --propagation private /bin/sh -c \
		'mount --rbind "$1" "$1" && cd "$1" && pivot_root . . && umount -l . && cd / &&
		exec sleep infinity' sh "$root" </dev/null >/dev/null 2>&1 &
	anchor_pid=$!
	for _ in $(seq 100); do
		[ "$(cat "/proc/$anchor_pid/comm" 2>/dev/null)" = sleep ] && break
		sleep 0.1
	done
	[ "$(cat "/proc/$anchor_pid/comm" 2>/dev/null)" = sleep ] || fail "could not pivot_root into the root"
	start_daemon() {
		# airlockd.socket's way: systemd-socket-activate binds the socket
		# and execs airlockd on the first connection with LISTEN_FDS=1.
		mkdir -p "$root/run/airlock-test"
		rm -f "$root$sock"
		nsenter --target "$anchor_pid" --mount -- systemd-socket-activate -l "$sock" \
			/usr/sbin/airlockd --state-dir "$state" --rootfs /var/lib/airlock/rootfs/busybox \
			>>"$work/airlockd.log" 2>&1 &
		daemon_pid=$!
		for _ in $(seq 100); do
			[ -S "$root$sock" ] && break
			sleep 0.1
		done
		[ -S "$root$sock" ] || fail "airlockd's socket did not appear: $(cat "$work/airlockd.log")"
	}

	# No network here: only lo, down.
	if [ "$(ip -o link show | grep -vc ': lo:')" != 0 ]; then
		fail "the test namespace has a network interface"
	fi

	# ---- 3. install ----
	log "installing the offline bundle with no network"
	cp -a "$work/bundle" "$root/tmp/bundle"
	in_root /tmp/bundle/install.sh >"$work/install.log" 2>&1 ||
		fail "install.sh failed: $(tail -n 30 "$work/install.log")"
	[ "$(in_root dpkg-query -W -f='${Version}' airlock)" = "$version" ] ||
		fail "airlock $version is not installed"
	in_root criu --version | grep -q '^Version: 4\.' || fail "criu 4 is not installed"
	[ "$(in_root airlockd --version)" = "airlockd ${version%%[+~]*}" ] ||
		fail "airlockd --version: $(in_root airlockd --version)"
	help=$(in_root airlockd --help)
	for path in /etc/airlock/airlockd.conf /usr/share/airlock/seccomp-profiles \
		/usr/libexec/airlock/airlock-init /var/lib/airlock/state; do
		grep -q "$path" <<<"$help" || fail "airlockd --help does not name $path"
	done
	for f in /usr/libexec/airlock/airlock-init /usr/libexec/airlock/airlock-pid1 \
		/usr/libexec/airlock/airlock-criu-hook /usr/libexec/airlock/airlock-criu-shim.so \
		/usr/share/airlock/seccomp-profiles/default.json /etc/airlock/airlockd.conf \
		/usr/lib/systemd/system/airlockd.service /usr/lib/systemd/system/airlockd.socket \
		/etc/systemd/system/sockets.target.wants/airlockd.socket \
		/etc/systemd/system/multi-user.target.wants/airlockd.service \
		/usr/share/man/man1/airlock.1 /usr/share/bash-completion/completions/airlock \
		/usr/share/doc/airlock/copyright /usr/share/doc/airlock/LICENSE; do
		# (the enabled units are absolute symlinks into the root)
		[ -e "$root$f" ] || [ -L "$root$f" ] || fail "$f is missing after the install"
	done
	in_root getent group airlock >/dev/null || fail "no airlock group"
	# The completion made from the help texts at build time works in bash.
	[ "$(in_root bash -c 'source /usr/share/bash-completion/completions/airlock &&
		COMP_WORDS=(airlock exe); COMP_CWORD=1; _airlock; echo "${COMPREPLY[*]}"')" = exec ] ||
		fail "the installed bash completion does not complete 'airlock exe'"
	# The units as systemd reads them (no running systemd needed).
	in_root systemd-analyze verify /usr/lib/systemd/system/airlockd.socket \
		/usr/lib/systemd/system/airlockd.service >"$work/verify.log" 2>&1 ||
		fail "systemd-analyze verify: $(cat "$work/verify.log")"

	# ---- 4. run ----
	log "starting the installed airlockd (socket activation)"
	mkdir -p "$root/var/lib/airlock/rootfs"
	cp -a "$busybox" "$root/var/lib/airlock/rootfs/busybox"
	start_daemon
	# GET /v1/info, from the host side of the socket.
	info=$(curl -sf --max-time 20 --unix-socket "$root$sock" http://airlockd/v1/info) ||
		fail "GET /v1/info failed: $(cat "$work/airlockd.log")"
	python3 -c 'import json, sys; i = json.loads(sys.argv[1]); assert i["version"] == sys.argv[2], i; assert i["criu"]["version"].startswith("4."), i' \
		"$info" "${version%%[+~]*}" || fail "unexpected /v1/info: $info"
	grep -q "serving $sock from systemd" "$work/airlockd.log" ||
		fail "airlockd did not take the socket from systemd: $(cat "$work/airlockd.log")"
	in_root airlock --socket "$sock" info >/dev/null || fail "airlock info failed"
	# The configuration file's group=airlock is in force: a member of the
	# group may use the API, anyone else may not.  (The socket is opened to
	# all here: airlockd.socket's SocketMode=0660 and SocketGroup=airlock
	# would let only the group connect at all; airlockd's own check of the
	# group is what this tests.)
	in_root useradd --no-create-home --groups airlock member
	in_root useradd --no-create-home outsider
	chmod 0666 "$root$sock"
	member=$(in_root id -u member) outsider=$(in_root id -u outsider)
	group=$(in_root getent group airlock | cut -d: -f3)
	chroot --userspec="$member:$member" --groups="$group" "$root" airlock --socket "$sock" info >/dev/null ||
		fail "a member of the airlock group may not use the API"
	if chroot --userspec="$outsider:$outsider" "$root" airlock --socket "$sock" info >/dev/null 2>&1; then
		fail "a user outside the airlock group may use the API"
	fi
	in_root userdel member
	in_root userdel outsider
	sid=$(in_root airlock --socket "$sock" create --name install-test) ||
		fail "create failed: $(tail -n 20 "$work/airlockd.log")"
	out=$(in_root airlock --socket "$sock" exec "$sid" -- echo hello from the installed airlock) ||
		fail "exec failed: $(tail -n 20 "$work/airlockd.log")"
	[ "$out" = "hello from the installed airlock" ] || fail "exec printed '$out'"
	log "sandbox $sid runs commands"

	# ---- 5. upgrade ----
	log "upgrading to $new_version while airlockd runs"
	cp -a "$work/upgrade" "$root/tmp/upgrade"
	in_root /tmp/upgrade/install.sh >"$work/upgrade.log" 2>&1 ||
		fail "upgrade failed: $(tail -n 30 "$work/upgrade.log")"
	[ "$(in_root dpkg-query -W -f='${Version}' airlock)" = "$new_version" ] ||
		fail "airlock $new_version is not installed after the upgrade"
	kill -0 "$daemon_pid" || fail "airlockd died during the upgrade"
	# What systemctl restart does: the old airlockd stops (SIGTERM), the new
	# one starts on the same state; the sandbox keeps running meanwhile.
	stop_daemon
	start_daemon
	ls=$(in_root airlock --socket "$sock" ls 2>&1) || fail "ls after the upgrade: $ls"
	grep -q "${sid:0:12}" <<<"$ls" ||
		fail "sandbox $sid is gone after the upgrade: $ls; $(tail -n 20 "$work/airlockd.log")"
	out=$(in_root airlock --socket "$sock" exec "$sid" -- cat /proc/1/comm) ||
		fail "exec after the upgrade failed: $(tail -n 20 "$work/airlockd.log")"
	[ "$out" = airlock-init ] || fail "the sandbox's PID 1 is '$out' after the upgrade"
	log "sandbox $sid survived the upgrade"

	# ---- 6. uninstall ----
	in_root airlock --socket "$sock" rm "$sid" >/dev/null || fail "rm $sid failed"
	sid=""
	stop_daemon
	rm -rf "${root:?}$state" "$root/var/lib/airlock/rootfs" "$root/run/airlock-test"
	in_root dpkg -L airlock >"$work/files" || fail "dpkg -L airlock"
	log "purging"
	in_root env DEBIAN_FRONTEND=noninteractive apt-get purge -y -q airlock >"$work/purge.log" 2>&1 ||
		fail "purge failed: $(tail -n 30 "$work/purge.log")"
	in_root dpkg-query -W -f='${Status}' airlock 2>/dev/null | grep -q installed &&
		fail "airlock is still installed after the purge"
	left=""
	while read -r f; do
		# Directories shared with other packages (/usr/bin, ...) stay.
		if [ -L "$root$f" ] || { [ -e "$root$f" ] && [ ! -d "$root$f" ]; }; then left+=" $f"; fi
	done <"$work/files"
	for d in /etc/airlock /var/lib/airlock /usr/libexec/airlock /usr/share/airlock /usr/share/doc/airlock; do
		if [ -e "$root$d" ]; then left+=" $d"; fi
	done
	left+=$(cd "$root" && find usr etc var/lib run -xdev -name '*airlock*' ! -path run/airlock -printf ' /%p')
	[ -z "$left" ] || fail "left after the purge:$left"
	log "purge left nothing behind"
}

# ---- outside: the builds, the root, the namespaces ----

if [ "${1:-}" = --inside ]; then
	version=$2 new_version=$3
	inside "$4"
	exit 0
fi

if [ "$(id -u)" != 0 ]; then
	echo "install-test: SKIP: needs root" >&2
	exit 77
fi
if [ ! -f "$stock" ]; then
	echo "install-test: SKIP: no stock Debian 12 root at $stock (packaging/stock-root.sh makes it)" >&2
	exit 77
fi
[ -d "$busybox" ] || fail "no busybox rootfs at $busybox (scripts/setup.sh builds it)"
build=${AIRLOCK_BUILD_DIR:-$top/build}
start=$(date +%s)
work=$(mktemp -d /var/tmp/airlock-install-test.XXXXXX)
cleanup() {
	local rc=$?
	# The namespaces' mounts went with them; --one-file-system in case
	# anything was still mounted.
	rm -rf --one-file-system "$work"
	exit "$rc"
}
trap cleanup EXIT

log "building the package"
version=$(meson introspect --projectinfo "$build" | python3 -c 'import json, sys; print(json.load(sys.stdin)["version"])')
new_version=$version+upgrade1
"$top/scripts/build-deb.sh" --build-dir "$build/install-test-deb" --out "$work/debs" >/dev/null
"$top/scripts/build-deb.sh" --build-dir "$build/install-test-deb" --version "$new_version" \
	--out "$work/newdebs" >/dev/null
log "making the offline bundle"
tar -xOf "$stock" ./var/lib/dpkg/status >"$work/stock-status"
"$top/scripts/offline-bundle.sh" --stock-status "$work/stock-status" \
	--out "$work/bundle" "$work/debs"/airlock_*.deb >"$work/bundle.log" 2>&1 ||
	fail "offline-bundle.sh: $(cat "$work/bundle.log")"
# The upgrade is a bundle of the new package alone: its dependencies are
# installed already.
mkdir "$work/upgrade"
cp "$work/newdebs"/airlock_*.deb "$work/upgrade/"
install -m 0755 "$top/packaging/offline-install.sh" "$work/upgrade/install.sh"
(cd "$work/upgrade" && sha256sum -- *.deb >SHA256SUMS)

log "unpacking a stock Debian 12 root"
mkdir "$work/root"
tar -C "$work/root" --numeric-owner -xf "$stock"

unshare --mount --propagation private --net --fork \
	"$0" --inside "$version" "$new_version" "$work"
# The test airlockd's cgroups (airlock-<sha256 of its state directory>,
# airlockd.c) went with its last sandbox and its stop.
cg=airlock-$(printf %s /var/lib/airlock/install-test-state | sha256sum | cut -c1-12)
for d in /sys/fs/cgroup/"$cg" /sys/fs/cgroup/*/"$cg"; do
	[ ! -e "$d" ] || fail "cgroup $d is left behind"
done
log "passed in $(($(date +%s) - start))s"
