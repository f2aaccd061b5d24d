/* SPDX-License-Identifier: Apache-2.0 */
#pragma once

/*
 * Checkpoint/restore of a sandbox's process tree with CRIU (>= 4.1), driven
 * through the `criu` binary (see criu.c for why not swrk).
 */

#include <stdint.h>
#include <sys/types.h>

#include "error.h"
#include "sandbox.h"

/* Written next to CRIU's images: what a restore needs besides them (the
 * sandbox's uid range, PID 1's connections to airlockd). */
#define CRIU_AIRLOCK_META "airlock-criu.json"

/* Dump the process tree of sb (PID 1 and everything below it); the sandbox
 * keeps running.  The images go to a tmpfs of their own when the sandbox is
 * small (criu_images_scratch), else to disk_dir, which this makes; either
 * way *images_fd gets their directory.  freezer, if not NULL, is the
 * directory of the sandbox's freezer cgroup, already frozen by the caller
 * (CRIU leaves it frozen).  A failure names CRIU's own error.  Once the
 * peer of cancel_fd (a client's connection, or -1) hangs up, criu is killed
 * and this fails with -ECANCELED; the sandbox keeps running (the caller
 * thaws it). */
int criu_checkpoint(const struct sandbox_host *host, struct sandbox *sb, const char *disk_dir,
                    const char *freezer, int cancel_fd, int *images_fd, struct al_error *err);

#define CRIU_SCRATCH_PATH 32

/* A directory for about expected bytes of CRIU images: when they are small
 * (see criu.c), a tmpfs of its own that nothing else reaches, as an open fd
 * in *fd and as a path through it in path ("/proc/self/fd/N", good while the
 * fd is open); else *fd is -1, and the images are for the disk. */
int criu_images_scratch(uint64_t expected, int *fd, char path[CRIU_SCRATCH_PATH],
                        struct al_error *err);
/* Images of at most this many bytes go to a tmpfs (airlockd --criu-tmpfs-max;
 * 64 MiB by default). */
void criu_set_images_tmpfs_max(uint64_t bytes);

/* Whether this airlockd can restore the processes of images_dir (CRIU and,
 * for images made without their network namespace, airlock-criu-hook are
 * installed), before anything is made for the restore. */
int criu_restore_check(const struct sandbox_host *host, const char *images_dir,
                       struct al_error *err);

/* Restore the tree of images_dir as the PID 1 of sandbox sb, whose state
 * directory, writable layer and cgroups are ready; sets sb->init_pid/pidfd. */
int criu_restore(const struct sandbox_host *host, struct sandbox *sb, const char *images_dir,
                 struct al_error *err);

/* The uid range (its first host uid) the images were taken in: a restore
 * must use the same one (CRIU re-creates the user namespace from them). */
int criu_images_uid_base(const char *images_dir, uid_t *out, struct al_error *err);
