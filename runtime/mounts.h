/* SPDX-License-Identifier: Apache-2.0 */
#pragma once

#include <sys/types.h>

#include "error.h"

/*
 * The filesystem of one sandbox, built by airlock-init while it is still
 * real root in a fresh mount namespace (owned by the initial user
 * namespace, so nothing in the sandbox can later change these mounts).
 */
struct mounts_config {
	const char *rootfs;      /* base rootfs on the host, shared, never written */
	const char *sandbox_dir; /* host state dir of this sandbox: lower/ upper/ work/ root/ */
	int userns_fd;           /* the sandbox's user namespace, for the idmapped lower layer */
	uid_t uid;               /* host uid of sandbox root */
	gid_t gid;               /* host gid of sandbox root */
	const char *workspace;   /* absolute path inside the sandbox, e.g. /workspace */
	/* /proc/self/cgroup as read before the cgroup namespace was made: the
	 * hierarchies where the sandbox has a cgroup of its own (path not "/"). */
	const char *cgroup_membership;
};

/* Make every mount private and mount a /proc of our pid namespace. */
int mounts_detach_from_host(struct al_error *err);

/*
 * Mount the overlay root (idmapped, read-only base + private upper layer),
 * /proc, read-only /sys, a minimal /dev, /dev/pts, /dev/shm, and mask the
 * dangerous /proc entries.  On success newroot (PATH_MAX) holds the path to
 * pivot into.
 */
int mounts_prepare_root(const struct mounts_config *c, char *newroot, struct al_error *err);

/* pivot_root into newroot and detach the old root entirely. */
int mounts_pivot_root(const char *newroot, struct al_error *err);
