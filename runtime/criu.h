/* SPDX-License-Identifier: Apache-2.0 */
#pragma once

/*
 * Checkpoint/restore of a sandbox's process tree with CRIU (>= 4.1), driven
 * through the `criu` binary (see criu.c for why not swrk).
 */

#include <stdint.h>

#include "error.h"
#include "sandbox.h"

/* Dump the process tree of sb (airlock-init and everything below it) into
 * images_dir; the sandbox keeps running.  A failure names CRIU's own error. */
int criu_checkpoint(struct daemon_ctx *ctx, struct sandbox *sb, const char *images_dir,
                    struct al_error *err);

/* Restore the tree of images_dir as the PID 1 of sandbox sb, whose state
 * directory, writable layer and cgroups are ready; sets sb->init_pid/pidfd. */
int criu_restore(struct daemon_ctx *ctx, struct sandbox *sb, const char *images_dir,
                 struct al_error *err);
