/* SPDX-License-Identifier: Apache-2.0 */
#pragma once

/*
 * The local snapshot store, state/snapshots/ (format: docs/snapshot-format.md).
 *
 *   ID/snapshot.json     versioned description, written last; a directory
 *                        without it is never listed
 *   ID/workspace.tar     the portable workspace archive, a plain file any
 *                        provider can take
 *   chunks/ab/<sha256>   content-addressed chunks of the other parts (the
 *                        writable layer, the CRIU images), shared by every
 *                        snapshot: a second snapshot of a sandbox writes only
 *                        the chunks that changed
 *   .tmp-ID/             a snapshot being written; removed at start-up
 *
 * Every part carries its sha256, and every chunk is named by its own: both are
 * checked before anything of a snapshot is used.
 */

#include <stdbool.h>
#include <stdint.h>

#include <cjson/cJSON.h>

#include "error.h"
#include "sandbox.h"

/* Create the store if needed and remove what a crash left half-written. */
int snapshot_store_init(struct daemon_ctx *ctx, struct al_error *err);

/*
 * Snapshot a running sandbox; it keeps running.  With processes, CRIU
 * checkpoints its process tree too (see criu.h).  *out gets the summary of
 * the new snapshot (as listed).
 */
int snapshot_take(struct daemon_ctx *ctx, struct sandbox *sb, bool processes, cJSON **out,
                  struct al_error *err);

/* {"snapshots": [summary, ...]}, oldest first. */
int snapshot_list(struct daemon_ctx *ctx, cJSON **out, struct al_error *err);

/* Remove a snapshot and every chunk no other snapshot uses. */
int snapshot_remove(struct daemon_ctx *ctx, const char *id, struct al_error *err);

/*
 * Create a new sandbox from snapshot `id` (every part verified first).  req
 * may carry "name" and "limits" overriding the snapshot's.  Processes are
 * restored when the snapshot has them.
 */
int snapshot_restore(struct daemon_ctx *ctx, const char *id, const cJSON *req, bool trusted,
                     struct sandbox **out, struct al_error *err);
