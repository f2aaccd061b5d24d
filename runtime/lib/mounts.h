/* SPDX-License-Identifier: Apache-2.0 */
#pragma once

#include <sys/types.h>

#include "error.h"

/*
 * The filesystem of one sandbox.  airlockd, real root on the host, makes the
 * root overlay as a detached mount (mounts_make_root); airlock-init, uid 0 of
 * the sandbox's user namespace, which owns its mount namespace, moves it into
 * that namespace and builds the rest there (mounts_prepare_root).  Nothing is
 * ever mounted in the host's mount namespace.
 */

/*
 * The root: an overlay made in the host's user namespace (so it uses the
 * trusted.* xattrs of the writable layer) whose read-only lower layers (the
 * base rootfs, or an image's layers, the top one first) are idmapped clones
 * mapped through the sandbox's user namespace userns_fd; its writable layer
 * and work directory are upper/ and work/ of layers_dir.  Returns the fd of
 * the detached mount.
 */
#define MOUNTS_MAX_LOWERS 500 /* overlayfs's own bound */
int mounts_make_root(char *const *lowers, const char *layers_dir, int userns_fd,
                     struct al_error *err);

/* A small tmpfs (size as for mount(8), e.g. "1m"), nosuid, nodev, noexec, as
 * a detached mount: its fd, to be moved where it is needed. */
int mounts_make_tmpfs(const char *size, struct al_error *err);

struct mounts_config {
	int root_fd;           /* the detached root mount, from mounts_make_root() */
	int target_fd;         /* O_PATH fd of the directory to attach it on */
	const char *pid1_path; /* host path of airlock-pid1, bound at /dev/.init */
	uid_t uid;             /* uid of sandbox root, as seen by the caller */
	gid_t gid;             /* gid of sandbox root, as seen by the caller */
	const char *workspace; /* absolute path inside the sandbox, e.g. /workspace */
	/* /proc/self/cgroup as read before the cgroup namespace was made: the
	 * hierarchies where the sandbox has a cgroup of its own (path not "/"). */
	const char *cgroup_membership;
};

/* Make every mount private: nothing we mount may propagate to the host. */
int mounts_detach_from_host(struct al_error *err);

/* Host device nodes bound into the sandbox's /dev (mknod is not allowed in a
 * user namespace).  CRIU is told they are external mounts. */
extern const char *const mounts_dev_nodes[];

/*
 * Attach the root and mount /proc, read-only /sys, a minimal /dev, /dev/pts,
 * /dev/shm on it, and mask the dangerous /proc entries.  On success the
 * current directory is the new root, and newroot (PATH_MAX) holds the path
 * to pivot into.
 */
int mounts_prepare_root(const struct mounts_config *c, char *newroot, struct al_error *err);

/* pivot_root into newroot and detach the old root entirely. */
int mounts_pivot_root(const char *newroot, struct al_error *err);
