/* SPDX-License-Identifier: Apache-2.0 */
#pragma once

/*
 * File operations on a sandbox's filesystem from the (host) daemon.
 *
 * rootfd is an fd (O_PATH is enough) of the sandbox's root directory, e.g.
 * /proc/<init pid>/root.  Every lookup goes through openat2() with
 * RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS, so '..' and symlinks, absolute or
 * relative, resolve as they would inside the sandbox and never leave it.
 * The last component of a path that is created, replaced or removed is handled
 * with *at() calls on its parent and is never followed.
 *
 * Relative paths are relative to cwd, an absolute path inside the sandbox
 * (usually "/workspace").  Errors are negative errno codes (-ENOENT, -EINVAL,
 * -EISDIR, -ELOOP, -EFBIG, ...) with a message naming the path.
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include <cjson/cJSON.h>

#include "error.h"

/* For a process that acts with a sandbox's credentials in its namespaces
 * (helper.h): paths may cross the sandbox's mounts (its /dev/shm, a bound
 * bucket).  Without it, every path stays on rootfd's filesystem (-EXDEV). */
void fsops_cross_mounts(void);

/* Open a regular file of at most max bytes (-EFBIG beyond) for reading, as
 * fsops_read does: *out_fd (O_RDONLY|O_NONBLOCK, close-on-exec) and its size
 * when opened. */
int fsops_open_read(int rootfd, const char *cwd, const char *path, uint64_t max, int *out_fd,
                    uint64_t *size, struct al_error *err);

/* Read a regular file of at most max bytes (-EFBIG beyond).  FIFOs, devices and
 * directories are refused with -EINVAL without being opened for reading.
 * *data is malloc'd and NUL-terminated. */
int fsops_read(int rootfd, const char *cwd, const char *path, size_t max, char **data, size_t *len,
               struct al_error *err);

/* Replace or create a regular file atomically (temp file in the same directory,
 * fsync, renameat).  parents creates missing directories (0755).  New files and
 * directories are owned by uid:gid; setuid/setgid bits of mode are dropped.  An
 * existing target that is a symlink gives -ELOOP, a directory -EISDIR, anything
 * else that is not a regular file -EINVAL. */
int fsops_write(int rootfd, const char *cwd, const char *path, const void *data, size_t len,
                mode_t mode, bool parents, uid_t uid, gid_t gid, struct al_error *err);
/* The same with the len bytes of the file src_fd as the content (an
 * upload spooled to disk: copied by the kernel, never in our memory). */
int fsops_write_from_fd(int rootfd, const char *cwd, const char *path, int src_fd, uint64_t len,
                        mode_t mode, bool parents, uid_t uid, gid_t gid, struct al_error *err);

/* Remove a file, symlink (never its target) or empty directory; recursive removes
 * a directory tree without following symlinks or crossing into other mounts.
 * Refuses the root itself. */
/* As fsops_write_from_fd, with the next len bytes read from src_fd (a socket or a
 * pipe): fewer (the writer went away) publish nothing. */
int fsops_write_from_stream(int rootfd, const char *cwd, const char *path, int src_fd, uint64_t len,
                            mode_t mode, bool parents, uid_t uid, gid_t gid, struct al_error *err);

int fsops_remove(int rootfd, const char *cwd, const char *path, bool recursive,
                 struct al_error *err);

/* mkdir, or mkdir -p with parents (an existing directory is then fine). */
int fsops_mkdir(int rootfd, const char *cwd, const char *path, bool parents, mode_t mode, uid_t uid,
                gid_t gid, struct al_error *err);

/* {"path": "...", "entries": [{"name", "type": "file|dir|symlink|other", "size",
 * "mode": "0644"}]} sorted by name; a symlink to a directory is listed through. */
int fsops_list(int rootfd, const char *cwd, const char *path, cJSON **out, struct al_error *err);
