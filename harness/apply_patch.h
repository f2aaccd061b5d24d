/* SPDX-License-Identifier: Apache-2.0 */
#pragma once

/*
 * The apply_patch tool's patch language, as the Agents SDK defines it: a freeform
 * "*** Begin Patch" ... "*** End Patch" envelope holding Add File, Delete File and
 * Update File (optionally "*** Move to:") sections, the update bodies being V4A diffs
 * ("@@" anchors, then ' ', '-', '+' lines, optionally "*** End of File").
 *
 * Files are reached only through struct al_patch_fs, so the same code edits a local
 * sandbox, a hosted one, or (in the unit tests) a table in memory.
 */

#include <stdbool.h>
#include <stddef.h>

#include "error.h"

enum al_patch_kind { AL_PATCH_ADD, AL_PATCH_UPDATE, AL_PATCH_DELETE };

struct al_patch_op {
	enum al_patch_kind kind;
	char *path;
	char *move_to; /* update only; NULL when not moving */
	char *diff;    /* add: the "+" lines; update: the V4A body; delete: NULL */
};

/* Parse a freeform patch.  -EINVAL with the SDK's wording on malformed input. */
int al_patch_parse(const char *text, struct al_patch_op **ops, size_t *n, struct al_error *err);
void al_patch_ops_free(struct al_patch_op *ops, size_t n);

/* Ops with their count, owned by one variable: _cleanup_(al_patch_op_list_free). */
struct al_patch_op_list {
	struct al_patch_op *v;
	size_t n;
};

static inline void al_patch_op_list_free(struct al_patch_op_list *l)
{
	if (l->v)
		al_patch_ops_free(l->v, l->n);
	l->v = NULL;
	l->n = 0;
}

/* Apply one V4A diff to input (create: build a new file from "+" lines).  Line endings
 * of input are kept (CRLF files stay CRLF).  -EINVAL when the diff does not apply. */
int al_apply_diff(const char *input, const char *diff, bool create, char **out,
                  struct al_error *err);

struct al_patch_fs {
	void *ctx;
	/* -ENOENT when the file does not exist. *data is NUL-terminated. */
	int (*read)(void *ctx, const char *path, char **data, size_t *len, struct al_error *err);
	int (*write)(void *ctx, const char *path, const char *data, size_t len,
	             struct al_error *err);
	int (*remove)(void *ctx, const char *path, struct al_error *err);
};

/*
 * Apply ops in order.  Every operation is first worked out against a copy of the files it
 * touches; only when all of them apply are the results written, so a patch that fails
 * part-way changes nothing.  *summary (malloc'd) lists what was done.
 */
int al_patch_apply(const struct al_patch_fs *fs, const struct al_patch_op *ops, size_t n,
                   char **summary, struct al_error *err);
