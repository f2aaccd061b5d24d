/* SPDX-License-Identifier: Apache-2.0 */
#pragma once

/*
 * Where a run keeps its records: the RunState, the audit trail (records and head) and
 * the run's small files (task.json, output.txt).  runstate.c and audit.c own the
 * formats; a backend only stores bytes.  Two backends:
 *   runstore_dir.c  the run directory (state.json, audit.jsonl, audit.head), the default;
 *   runstore_pg.c   PostgreSQL (airlock-harness worker --db), every write fenced by the
 *                   run's lease generation so a worker that lost its lease records nothing.
 * Workspace archives stay files under store->dir in both (docs/deploy.md).
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "error.h"

struct al_run_store;

struct al_run_store_ops {
	const char *name;
	/* The RunState's text; -ENOENT when none was saved yet. */
	int (*state_load)(struct al_run_store *s, char **text, size_t *len, struct al_error *err);
	int (*state_save)(struct al_run_store *s, const char *text, size_t len,
	                  struct al_error *err);
	/* The complete audit records, each ending in '\n' (a torn last record from a crash is
	 * dropped for good here), and the head kept in step with them: the count of records
	 * and the sha256 of the last record's line. */
	int (*audit_load)(struct al_run_store *s, char **data, size_t *len, struct al_error *err);
	int (*audit_head)(struct al_run_store *s, uint64_t *seq, char sha[65],
	                  struct al_error *err);
	/* Append record seq (line ends in '\n'; line_sha: the sha256 of the line without it)
	 * and move the head to it, durably. */
	int (*audit_append)(struct al_run_store *s, uint64_t seq, const char *line, size_t len,
	                    const char *line_sha, struct al_error *err);
	/* Optional: called after audit_load with its last record, for a backend whose head
	 * can fall behind its records (the dir backend: two files). */
	int (*audit_sync_head)(struct al_run_store *s, uint64_t seq, const char *line_sha,
	                       struct al_error *err);
	/* A small named file of the run (task.json, output.txt). */
	int (*file_write)(struct al_run_store *s, const char *name, const char *data, size_t len,
	                  struct al_error *err);
	int (*file_read)(struct al_run_store *s, const char *name, char **data, size_t *len,
	                 struct al_error *err);
	/* Optional: the writes between begin and end(commit) are recorded all or none (one
	 * database transaction); end(!commit) drops them.  A backend without them writes
	 * each at once, and resume repairs what a crash left between two (docs/harness.md). */
	int (*begin)(struct al_run_store *s, struct al_error *err);
	int (*end)(struct al_run_store *s, bool commit, struct al_error *err);
	void (*free)(struct al_run_store *s);
};

struct al_run_store {
	const struct al_run_store_ops *ops;
	char *dir; /* local directory of the run: workspace archives, and the dir backend */
	/* Set once a write was refused because the run's lease is no longer ours: nothing
	 * more is written, and the process says so in its exit status. */
	bool lease_lost;
	/* Added to the names of workspace archives written under this store (NULL: none). */
	const char *archive_tag;
};

/* The run directory dir (made absolute by the caller) as a store. */
int al_run_store_dir_open(const char *dir, struct al_run_store **out, struct al_error *err);

void al_run_store_free(struct al_run_store *s);
static inline void al_run_store_freep(struct al_run_store **s)
{
	al_run_store_free(*s);
}
