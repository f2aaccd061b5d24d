/* SPDX-License-Identifier: Apache-2.0 */
#pragma once

/*
 * Content-defined chunks in pack files: the part of the snapshot store that
 * stores bytes.  A part (a file: the writable layer's tar, one of CRIU's
 * images) is cut into chunks where a rolling hash says so, each chunk named
 * by its sha256; the chunks a new snapshot adds go into one pack of its
 * own, packs/ID.pack; chunks its parent's lineage already holds are shared,
 * after a byte-for-byte comparison.  A part is described by a JSON object,
 * {name, storage, size, sha256, chunks: [[sha256, length, pack, offset], ...]},
 * which the caller keeps (snapshot.json) and hands back to read the part.
 *
 * It knows a directory (the store's) and its packs/ and chunks/, nothing
 * of snapshots' records or of sandboxes; the caller serialises access.
 */

#include <stdbool.h>
#include <stdint.h>

#include <cjson/cJSON.h>

#include "error.h"

struct chunk_store;

/* Open the chunks and packs below store_fd (packs/ must exist). */
int chunk_store_open(int store_fd, struct chunk_store **out, struct al_error *err);
/* Close; a pack begun and not kept is removed. */
void chunk_store_free(struct chunk_store *cs);

/* Share the packed chunks of part (a parent's): new parts refer to them
 * instead of storing them again.  Malformed chunks are skipped. */
int chunk_store_index_part(struct chunk_store *cs, const cJSON *part, struct al_error *err);

/* Write new chunks into packs/.tmp-NAME.pack from now on. */
int chunk_store_begin_pack(struct chunk_store *cs, const char *name, struct al_error *err);

/* Cut the regular file in fd into chunks, store the new ones, and append
 * the part's description to the array parts; *written grows by the bytes
 * of new chunks. */
int chunk_store_add_part(struct chunk_store *cs, const char *name, int fd, cJSON *parts,
                         uint64_t *written, struct al_error *err);

/* Give the pack its final name (before the snapshot that names it commits),
 * then, once committed, keep it; chunk_store_sync makes the names durable. */
int chunk_store_seal_pack(struct chunk_store *cs, struct al_error *err);
void chunk_store_keep_pack(struct chunk_store *cs);
int chunk_store_sync(struct chunk_store *cs);

/* Part into out_fd, every chunk and the whole checked against their sha256
 * (out_fd -1: check only).  A part of storage "file" is the file of its
 * name in files_fd.  -EIO names the damaged chunk or part. */
int chunk_store_read_part(struct chunk_store *cs, int files_fd, const cJSON *part, int out_fd,
                          struct al_error *err);

/* The sha256 (lowercase hex) and size of what fd reads to its end. */
int chunk_file_sha256(int fd, char hex[65], uint64_t *size, struct al_error *err);

/* ---- garbage collection --------------------------------------------------------------------- */

/* The packs and chunk files some snapshot still names. */
struct chunk_live;
struct chunk_live *chunk_live_new(void);
int chunk_live_add_parts(struct chunk_live *l, const cJSON *parts);
void chunk_live_free(struct chunk_live *l);

/* Remove every pack and chunk file below store_fd that l does not name;
 * returns how many went. */
uint64_t chunk_store_sweep(int store_fd, struct chunk_live *l);

/* ---- repacking ------------------------------------------------------------------------------ */

/*
 * The live chunks of mostly dead packs, copied into one new pack
 * (packs/repack-HEX.pack) so that the old packs can go.  The caller feeds
 * it every committed snapshot's parts, has it copy, then rewrites each
 * snapshot's parts with chunk_repack_remap and makes them durable before it
 * sweeps: until then the old packs are still named, and a crash leaves the
 * new pack to the next sweep (chunkstore.c says why that is safe).
 */
struct chunk_repack;
int chunk_repack_new(int store_fd, struct chunk_repack **out, struct al_error *err);
void chunk_repack_free(struct chunk_repack *rp);
/* Count the chunks parts (a committed snapshot's) name as live. */
int chunk_repack_add_parts(struct chunk_repack *rp, const cJSON *parts, struct al_error *err);
/* Choose the packs worth repacking (the deadest, once the packs hold over
 * 5/4 of their live bytes) and copy their live chunks, each checked against
 * its sha256, into the new pack, durable under its final name; a chunk a
 * pack that stays already holds (checked too) is not copied but pointed at.
 * 1: done; 0: nothing worth doing (no pack written). */
int chunk_repack_copy(struct chunk_repack *rp, struct al_error *err);
/* Point the chunks of parts that were copied at the copies; returns how many
 * (0: parts unchanged), or -ENOMEM. */
int chunk_repack_remap(struct chunk_repack *rp, cJSON *parts);
/* The new pack's name, or NULL when nothing had to be copied. */
const char *chunk_repack_name(const struct chunk_repack *rp);
/* The packs chosen, their bytes, and the bytes copied out of them. */
void chunk_repack_stats(const struct chunk_repack *rp, size_t *packs, uint64_t *bytes,
                        uint64_t *copied);

/* For tests only: when set, called with the name of each step of a repack,
 * so that a test can kill the process there as a crash would. */
extern void (*chunk_store_step_hook)(const char *step);
