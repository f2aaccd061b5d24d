# shellcheck shell=bash disable=SC2154
# Shared by the rootfs build scripts; sourced, never run.
#
# A flavour lives in $AIRLOCK_ROOTFS_DIR/<flavour>.  It is built in a temp
# directory next to it and renamed into place only when complete, so airlockd
# can never pick up a half-built tree.  A stamp inside it records a hash of
# everything the build depends on; when the hash still matches, the build is
# skipped.  The caller sets rootfs_prog and rootfs_flavour before sourcing.

rootfs_root=${AIRLOCK_ROOTFS_DIR:-/var/lib/airlock/rootfs}
rootfs_target=$rootfs_root/$rootfs_flavour
rootfs_stamp_name=.airlock-rootfs.json
rootfs_tmp=""
rootfs_old=""
rootfs_cleanup_hook=""

rootfs_log() {
	printf '%s: %s\n' "$rootfs_prog" "$*"
}

rootfs_die() {
	printf '%s: error: %s\n' "$rootfs_prog" "$*" >&2
	exit 1
}

# rootfs_parse_args "$@": the one option both scripts take (--force sets
# force=1); the caller defines usage().
rootfs_parse_args() {
	force=0
	while [ $# -gt 0 ]; do
		case $1 in
		--force) force=1 ;;
		-h | --help)
			usage
			exit 0
			;;
		*)
			usage >&2
			exit 2
			;;
		esac
		shift
	done
}

rootfs_need_root() {
	[ "$(id -u)" = 0 ] || rootfs_die "must run as root (the tree is owned by root and contains other uids)"
}

# rootfs_inputs_hash TEXT FILE...: one sha256 over TEXT and the contents of
# every FILE, in order.  Each part is hashed on its own first so that moving
# bytes from one part to the next changes the result.
rootfs_inputs_hash() {
	local text=$1 f
	shift
	{
		printf '%s' "$text" | sha256sum
		for f in "$@"; do
			sha256sum <"$f" || return 1
		done
	} | sha256sum | cut -d' ' -f1
}

# Serialise builds of one flavour: two concurrent setup runs would otherwise
# both build and race on the final rename.  The lock fd stays open until the
# script exits.
rootfs_lock() {
	mkdir -p "$rootfs_root"
	chmod 0755 "$rootfs_root"
	exec {rootfs_lock_fd}>"$rootfs_root/.$rootfs_flavour.lock"
	if ! flock -n "$rootfs_lock_fd"; then
		rootfs_log "waiting for another build of $rootfs_target"
		flock "$rootfs_lock_fd"
	fi
}

# rootfs_is_current HASH: the installed tree was built from these inputs.
rootfs_is_current() {
	local stamp=$rootfs_target/$rootfs_stamp_name
	[ -d "$rootfs_target" ] && [ -f "$stamp" ] &&
		grep -q "\"inputs_sha256\": \"$1\"" "$stamp"
}

# rootfs_skip_if_current HASH FORCE: exit 0 with a line saying so when there
# is nothing to do.
rootfs_skip_if_current() {
	local built
	if [ "$2" != 1 ] && rootfs_is_current "$1"; then
		built=$(sed -n 's/^ *"built": "\(.*\)",\{0,1\}$/\1/p' "$rootfs_target/$rootfs_stamp_name")
		rootfs_log "$rootfs_target is up to date (built ${built:-at an unknown time}); --force rebuilds"
		exit 0
	fi
}

# Unmount whatever is still mounted inside DIR, deepest first, so that
# removing DIR can only ever touch the tree itself.  The builds mount nothing
# in the host's namespace (debootstrap's proc and sys live in its own), so
# this is a safety net, e.g. for a tree someone bind-mounted while exploring.
rootfs_unmount_below() {
	local dir=$1 mnt
	# mountinfo escapes blanks in paths as octal; %b undoes it.
	awk '{print $5}' /proc/self/mountinfo | while read -r mnt; do
		mnt=$(printf '%b' "$mnt")
		case $mnt in
		"$dir" | "$dir"/*) printf '%s\n' "$mnt" ;;
		esac
	done | sort -r | while read -r mnt; do
		umount -l "$mnt" || true
	done
}

rootfs_remove_tree() {
	[ -n "$1" ] && [ -e "$1" ] || return 0
	rootfs_unmount_below "$1"
	# --one-file-system: should an unmount have failed, never descend into
	# a host filesystem mounted in the tree.
	rm -rf --one-file-system -- "$1"
}

rootfs_cleanup() {
	local rc=$?
	trap - EXIT
	# Lets the flavour stop what may still be writing into the tree.
	"${rootfs_cleanup_hook:-:}"
	if [ -n "$rootfs_tmp" ]; then
		rootfs_log "build failed or interrupted; removing $rootfs_tmp"
		rootfs_remove_tree "$rootfs_tmp"
	fi
	if [ -n "$rootfs_old" ]; then
		# Interrupted between the two renames of rootfs_install: put the
		# previous tree back rather than leave none.
		if [ -e "$rootfs_target" ]; then
			rootfs_remove_tree "$rootfs_old"
		else
			mv -T -- "$rootfs_old" "$rootfs_target"
		fi
	fi
	exit "$rc"
}

# Create the temp directory the tree is built in and arm the cleanup.  It is
# a sibling of the target so that the final rename stays on one filesystem.
rootfs_begin() {
	local stale
	# Leftovers of a build killed too hard to clean up after itself.  The
	# lock is held (and inherited by that build's children, so they are
	# gone), hence nothing is still using them.
	for stale in "$rootfs_root/.$rootfs_flavour".tmp.* "$rootfs_root/.$rootfs_flavour".old.*; do
		[ -e "$stale" ] || continue
		case $stale in
		*.old.*)
			# Killed between the two renames: this is the last good tree.
			if [ ! -e "$rootfs_target" ]; then
				rootfs_log "restoring $rootfs_target from leftover $stale"
				mv -T -- "$stale" "$rootfs_target"
				continue
			fi
			;;
		esac
		rootfs_log "removing leftover $stale"
		rootfs_remove_tree "$stale"
	done
	rootfs_tmp=$(mktemp -d "$rootfs_root/.$rootfs_flavour.tmp.XXXXXX")
	trap rootfs_cleanup EXIT
	trap 'exit 130' INT
	trap 'exit 143' TERM
}

# rootfs_write_stamp HASH EXTRA_JSON: EXTRA_JSON is a fragment of further
# members, each line ending with a comma.
rootfs_write_stamp() {
	local hash=$1 extra=$2
	cat >"$rootfs_tmp/$rootfs_stamp_name" <<EOF
{
  "format": 1,
  "flavour": "$rootfs_flavour",
${extra}  "built": "$(date -u +%Y-%m-%dT%H:%M:%SZ)",
  "inputs_sha256": "$hash"
}
EOF
	chmod 0644 "$rootfs_tmp/$rootfs_stamp_name"
}

# Move the finished tree into place.  rename(2) cannot replace a non-empty
# directory, so an existing tree is first renamed aside (the path is missing
# for an instant, but is never half-built) and removed afterwards.  Running
# sandboxes keep their already-mounted lower layer either way.
rootfs_install() {
	chmod 0755 "$rootfs_tmp"
	chown 0:0 "$rootfs_tmp"
	if [ -e "$rootfs_target" ]; then
		rootfs_old=$(mktemp -u "$rootfs_root/.$rootfs_flavour.old.XXXXXX")
		mv -T -- "$rootfs_target" "$rootfs_old"
	fi
	mv -T -- "$rootfs_tmp" "$rootfs_target"
	rootfs_tmp=""
	if [ -n "$rootfs_old" ]; then
		rootfs_remove_tree "$rootfs_old"
		rootfs_old=""
	fi
	sync -f "$rootfs_target" 2>/dev/null || true
}

rootfs_print_size() {
	local size files
	size=$(du -sh --apparent-size "$rootfs_target" | cut -f1)
	files=$(find "$rootfs_target" -xdev | wc -l)
	rootfs_log "installed $rootfs_target ($size, $files entries)"
}

# rootfs_find_mirror SUITE: the first URI of an enabled "deb" source for SUITE, from the deb822
# .sources files and then the one-line sources.list format.  Reusing the
# machine's own mirror keeps any registry host name out of this repository.
rootfs_find_mirror() {
	local suite=$1 f uri=""
	for f in /etc/apt/sources.list.d/*.sources; do
		[ -f "$f" ] || continue
		uri=$(awk -v suite="$suite" '
			function flush() {
				if (uri == "" && enabled != "no" &&
				    (" " types " ") ~ / deb / && (" " suites " ") ~ (" " suite " ")) {
					split(uris, u, " ")
					uri = u[1]
				}
				types = uris = suites = enabled = field = ""
			}
			/^#/ { next }
			/^[ \t]*$/ { flush(); next }
			/^[ \t]/ {
				if (field == "uris") uris = uris " " $0
				else if (field == "suites") suites = suites " " $0
				else if (field == "types") types = types " " $0
				next
			}
			{
				i = index($0, ":")
				if (i == 0) next
				field = tolower(substr($0, 1, i - 1))
				val = substr($0, i + 1)
				gsub(/[ \t]+/, " ", val)
				if (field == "types") types = val
				else if (field == "uris") uris = val
				else if (field == "suites") suites = val
				else if (field == "enabled") { gsub(/ /, "", val); enabled = tolower(val) }
			}
			END { flush(); if (uri != "") print uri }
		' "$f")
		[ -z "$uri" ] || break
	done
	if [ -z "$uri" ]; then
		for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
			[ -f "$f" ] || continue
			uri=$(sed -e 's/#.*//' -e 's/\[[^]]*\]//' "$f" |
				awk -v suite="$suite" '$1 == "deb" && $3 == suite { print $2; exit }')
			[ -z "$uri" ] || break
		done
	fi
	printf '%s\n' "$uri"
}
