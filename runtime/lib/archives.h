/* SPDX-License-Identifier: Apache-2.0 */
#pragma once

/*
 * Tar archives of directory trees, written and read with libarchive.
 *
 * Two kinds:
 *  - the portable workspace archive (the OpenAI Agents SDK's format): a tar of
 *    the workspace root, member paths relative to it ("dir/", "dir/file"),
 *    holding directories, regular files and symlinks, owners as the sandbox
 *    sees them.  Any provider can hydrate it, so on the way in it is hostile
 *    input: see tar_extract().
 *  - the writable layer of a sandbox (an overlayfs upper directory), which also
 *    holds overlay whiteouts (0:0 character devices) and trusted.overlay.*
 *    xattrs.  Only airlockd reads it back, from its own checksummed snapshot
 *    store; owners are stored relative to the sandbox's uid base so a layer
 *    restores into any uid range.
 */

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "error.h"

/* The SDK's DEFAULT_SANDBOX_ARCHIVE_LIMITS. */
#define ARCHIVE_DEFAULT_MAX_INPUT_BYTES (1ULL << 30)
#define ARCHIVE_DEFAULT_MAX_EXTRACTED_BYTES (4ULL << 30)
#define ARCHIVE_DEFAULT_MAX_MEMBERS 100000ULL

struct tar_limits {
	uint64_t max_input_bytes;     /* size of the tar itself */
	uint64_t max_extracted_bytes; /* sum of the (logical) sizes of its files */
	uint64_t max_members;         /* entries of any type */
};

void tar_limits_default(struct tar_limits *l);

enum archive_kind {
	ARCHIVE_WORKSPACE, /* portable, hostile on input */
	ARCHIVE_LAYER,     /* overlay upper dir: whiteouts, xattrs, shifted owners */
	/* A layer of an OCI or docker image: hostile like a workspace, and its
	 * OCI whiteouts (.wh.NAME, .wh..wh..opq) become overlayfs's own. */
	ARCHIVE_IMAGE_LAYER,
};

struct archive_tree_opts {
	enum archive_kind kind;
	/* Host uid/gid of the sandbox's root; owners are stored minus it (layer only). */
	uid_t id_base;
	/* Paths relative to the root that are left out, with everything below
	 * them (the manifest's ephemeral entries).  NULL-terminated, may be NULL. */
	char *const *exclude;
	/* Writing: bytes of holes in sparse files that may be written out as
	 * zeros, all files together; beyond it the write fails with -EFBIG. */
	uint64_t max_hole_bytes;
	/* Image layers: the directories their whiteouts make opaque, listed
	 * here (relative paths, "" for the root) for the caller to mark. */
	char ***opaque;
};

/*
 * Write the tree below dirfd to out_fd as a tar.  Mount points below dirfd are
 * left out (mounts are not part of a workspace).  Walks with *at() calls on
 * directory fds and never follows a symlink, so a tree that changes under it
 * cannot make it read anything outside.  A file with several names is stored
 * once, its other names as hardlink members; holes of sparse files are
 * written as zeros up to o->max_hole_bytes in all.  *bytes (may be NULL) gets
 * the size written.
 */
int tar_write_tree(int dirfd, int out_fd, const struct archive_tree_opts *o, uint64_t *bytes,
                   struct al_error *err);

/*
 * Extract the tar read from in_fd into the empty directory dirfd.  Changes the
 * working directory of the calling process: call it in a child process.
 *
 * A workspace archive is refused (-EINVAL, -EFBIG for limits) on: absolute
 * member paths, '..' components, a member written through a symlink (a
 * symlink itself may point anywhere: only the sandbox resolves it, in its root),
 * hardlinks to anything but a regular file extracted earlier from the same
 * archive, device nodes, FIFOs and sockets, setuid/setgid bits, sparse members,
 * more than limits->max_members members, more than max_extracted_bytes of file
 * data, more than max_input_bytes of input.  What was extracted before a
 * refusal stays in dirfd: the caller extracts into a staging directory.
 */
int tar_extract(int in_fd, int dirfd, const struct archive_tree_opts *o,
                const struct tar_limits *limits, struct al_error *err);

/*
 * The workspace of a running sandbox, read or replaced from inside it: a child
 * process enters the sandbox's mount and user namespaces (as the sandbox's root,
 * not dumpable) so every path resolves in the sandbox and nothing it does can
 * touch the host.  ns_pid is a host pid whose namespaces are the sandbox's.
 * cgroup_fds (n_cgroup_fds of them, may be 0): the sandbox's cgroup files
 * the child joins first (helper.h), so that the work is charged to it.
 * cancel_fd: a client's connection whose hang-up ends the work (-ECANCELED;
 * helper.h), or -1.
 */
int tar_persist_workspace(pid_t ns_pid, const char *workspace, char *const *exclude, int out_fd,
                          uint64_t max_hole_bytes, const int *cgroup_fds, size_t n_cgroup_fds,
                          int cancel_fd, uint64_t *bytes, struct al_error *err);

/*
 * Hydrate: extract into a staging directory next to the workspace (same
 * filesystem, the sandbox's writable layer), and only when the whole archive
 * was accepted replace the workspace's contents with it.  A refused archive
 * leaves the workspace exactly as it was.
 */
int tar_hydrate_workspace(pid_t ns_pid, const char *workspace, int in_fd,
                          const struct tar_limits *limits, const int *cgroup_fds,
                          size_t n_cgroup_fds, struct al_error *err);

/* Extract a layer tar into the (empty) host directory path, owners shifted to id_base. */
int tar_extract_layer(const char *path, int in_fd, uid_t id_base, struct al_error *err);

/* Write the host directory path as a layer tar, owners shifted down by id_base. */
int tar_write_layer(const char *path, int out_fd, uid_t id_base, char *const *exclude,
                    uint64_t max_hole_bytes, uint64_t *bytes, struct al_error *err);
/* The same in a helper (helper.h) in the cgroups of cgroup_fds, so that the
 * sandbox whose layer it is pays for the work; cancel_fd as above. */
int tar_write_layer_charged(const char *path, int out_fd, uid_t id_base, char *const *exclude,
                            uint64_t max_hole_bytes, const int *cgroup_fds, size_t n_cgroup_fds,
                            int cancel_fd, uint64_t *bytes, struct al_error *err);

/* Top-level ephemeral entries of a manifest (JSON object), as relative paths;
 * NULL-terminated, never NULL unless out of memory. */
char **tar_manifest_ephemeral_paths(const char *manifest_json);

/* Normalize a member path into out: no leading "./", no empty or "."
 * components; -EINVAL for an absolute path or a '..' component. */
int tar_normalize_member(const char *in, char *out, size_t len, struct al_error *err);

/*
 * Extract one image layer (a tar, uncompressed, gzip or zstd) into the empty
 * directory dirfd, changing the working directory (call it in a helper).
 * Refused as a workspace archive is (escaping paths, writes through
 * symlinks, hardlinks outside what it extracted, device nodes, FIFOs,
 * sockets, the limits), except that setuid/setgid bits are dropped, not
 * refused, and sparse members are allowed; xattrs are dropped, owners
 * beyond 0..65535 become 65534.  Whiteouts become overlayfs whiteouts
 * (0:0 character devices); the directories they make opaque are added to
 * *opaque (NULL-terminated), for a caller that may set trusted.* xattrs
 * to mark (the helper holds no CAP_SYS_ADMIN).
 */
int tar_extract_image_layer(int in_fd, int dirfd, const struct tar_limits *limits, char ***opaque,
                            struct al_error *err);
