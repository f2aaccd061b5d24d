/* SPDX-License-Identifier: Apache-2.0 */
#pragma once

/*
 * The local snapshot store, state/snapshots/ (format: docs/snapshot-format.md).
 *
 *   ID/snapshot.json     versioned description, written last; a directory
 *                        without it is never listed
 *   ID/workspace.tar     the portable workspace archive, a plain file any
 *                        provider can take
 *   packs/ID.pack        the chunks snapshot ID added: content-defined
 *                        chunks of the other parts (the writable layer, the
 *                        CRIU images), shared along a sandbox's lineage, so
 *                        a second snapshot writes only the chunks that changed
 *   packs/repack-HEX.pack  live chunks of mostly dead packs, copied there by
 *                        the garbage collector, which then rewrites every
 *                        snapshot.json naming them (atomically, one by one)
 *   chunks/ab/<sha256>   one file per chunk, as earlier versions stored them (read)
 *   .tmp-ID/             a snapshot being written; removed at start-up
 *
 * Every part carries its sha256, and every chunk is named by its own: both are
 * checked before anything of a snapshot is used.
 *
 * The store knows files and chunks, not sandboxes: what goes into a
 * snapshot, and what a restore does with it, is daemon/lifecycle.c's.  One
 * writer or reader at a time holds the store (the garbage collector too).
 */

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include <cjson/cJSON.h>

#include "error.h"

/* Make the store under state_dir if need be, remove what an interrupted
 * snapshot or repack left, collect unreferenced packs, repack if worth it. */
int snapshot_store_init(const char *state_dir, struct al_error *err);

/* {"snapshots": [summary, ...]}, oldest first; a damaged one as {"id", "error"}. */
int snapshot_list(const char *state_dir, cJSON **out, struct al_error *err);

/* Remove snapshot id, collect what no other snapshot names and repack if
 * worth it; -ENOENT. */
int snapshot_remove(const char *state_dir, const char *id, struct al_error *err);

/* ---- writing ------------------------------------------------------------------------------- */

struct snapshot_writer;

/* A new snapshot whose chunks are shared with parent's lineage (parent may
 * be NULL, or a snapshot removed since: then none). */
int snapshot_writer_begin(const char *state_dir, const char *parent, struct snapshot_writer **out,
                          struct al_error *err);
const char *snapshot_writer_id(const struct snapshot_writer *w);
/* A path inside the snapshot being written, for scratch data (removed with it). */
void snapshot_writer_scratch_path(const struct snapshot_writer *w, const char *name, char *buf,
                                  size_t len);
/* Every regular file of dir_fd as a chunked part "<prefix><name>"; adds their bytes to *size. */
int snapshot_writer_add_dir(struct snapshot_writer *w, const char *prefix, int dir_fd,
                            uint64_t *size, struct al_error *err);
/* A plain file part: create it (an fd), fill it, then add it (hashed). */
int snapshot_writer_create_file(struct snapshot_writer *w, const char *name, struct al_error *err);
int snapshot_writer_add_file(struct snapshot_writer *w, const char *name, int fd, uint64_t *size,
                             struct al_error *err);
/* A chunked part: an unlinked temp file in the store, filled, then added. */
int snapshot_writer_tmpfile(struct snapshot_writer *w, struct al_error *err);
int snapshot_writer_add_chunked(struct snapshot_writer *w, const char *name, int fd,
                                struct al_error *err);
/* Make it durable and visible: snapshot.json gets the members of meta (taken
 * out of it) and sizes (each of sizes_in, their total, and what was written);
 * *summary is the listing's entry. */
int snapshot_writer_commit(struct snapshot_writer *w, cJSON *meta, const cJSON *sizes_in,
                           cJSON **summary, struct al_error *err);
/* Release; a snapshot not committed is removed. */
void snapshot_writer_free(struct snapshot_writer *w);

/* ---- reading ------------------------------------------------------------------------------- */

struct snapshot_reader;

int snapshot_reader_open(const char *state_dir, const char *id, struct snapshot_reader **out,
                         struct al_error *err);
/* snapshot.json, checked for format and version. */
const cJSON *snapshot_reader_record(const struct snapshot_reader *rd);
/* Part (one of the record's "parts") into out_fd, verified chunk by chunk
 * and whole; out_fd -1: verify only. */
int snapshot_reader_read_part(struct snapshot_reader *rd, const cJSON *part, int out_fd,
                              struct al_error *err);
void snapshot_reader_free(struct snapshot_reader *rd);

/* ---- one stream (snapshot_stream.c; docs/snapshot-format.md, "Export and import") ------ */

/* Snapshot id as a tar into out_fd: snapshot.json, then parts/<name> for each part, every
 * part verified as it is read.  Temp files go in tmp_dir_fd. */
int snapshot_export(const char *state_dir, const char *id, int tmp_dir_fd, int out_fd,
                    struct al_error *err);
/* A stream snapshot_export made, as a new snapshot owned by owner; *summary is its listing
 * entry.  -EBADMSG: damaged, truncated or not such a stream (nothing is left behind). */
int snapshot_import(const char *state_dir, int in_fd, uid_t owner, cJSON **summary,
                    struct al_error *err);
