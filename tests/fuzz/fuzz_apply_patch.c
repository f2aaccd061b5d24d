/* SPDX-License-Identifier: Apache-2.0 */
/*
 * apply_patch (harness/apply_patch.c), the model's tool for editing files.
 * The input is "FILE\0PATCH": FILE is the text of a.txt (and, reversed in
 * line order, of b.txt) in a file table in memory; PATCH is parsed with
 * al_patch_parse and applied with al_patch_apply, and PATCH alone is also
 * applied to FILE as one V4A diff with al_apply_diff.  A patch that fails
 * part-way must leave every file as it was.
 */
#include "fuzz.h"

#include <errno.h>
#include <string.h>

#include "apply_patch.h"
#include "cleanup.h"

#define N_FILES 4

struct table {
	char *path[N_FILES];
	char *data[N_FILES]; /* NULL: absent */
	unsigned writes, removes;
};

static int slot(struct table *t, const char *path, bool make)
{
	for (int i = 0; i < N_FILES; i++)
		if (t->path[i] && !strcmp(t->path[i], path))
			return i;
	if (!make)
		return -1;
	for (int i = 0; i < N_FILES; i++)
		if (!t->path[i]) {
			t->path[i] = strdup(path);
			FUZZ_ASSERT(t->path[i]);
			return i;
		}
	return -1;
}

static int t_read(void *ctx, const char *path, char **data, size_t *len, struct al_error *err)
{
	struct table *t = ctx;
	int i = slot(t, path, false);

	if (i < 0 || !t->data[i])
		return al_error_set(err, ENOENT, "%s: no such file", path);
	*data = strdup(t->data[i]);
	FUZZ_ASSERT(*data);
	*len = strlen(*data);
	return 0;
}

static int t_write(void *ctx, const char *path, const char *data, size_t len, struct al_error *err)
{
	struct table *t = ctx;
	int i = slot(t, path, true);

	FUZZ_ASSERT(strlen(data) == len);
	t->writes++;
	if (i < 0)
		return al_error_set(err, ENOSPC, "%s: the table is full", path);
	free(t->data[i]);
	t->data[i] = strdup(data);
	FUZZ_ASSERT(t->data[i]);
	return 0;
}

static int t_remove(void *ctx, const char *path, struct al_error *err)
{
	struct table *t = ctx;
	int i = slot(t, path, false);

	t->removes++;
	if (i < 0 || !t->data[i])
		return al_error_set(err, ENOENT, "%s: no such file", path);
	free(t->data[i]);
	t->data[i] = NULL;
	return 0;
}

static char *reversed_lines(const char *text)
{
	size_t len = strlen(text), used = 0;
	char *out = malloc(len + 2);
	const char *end = text + len;

	FUZZ_ASSERT(out);
	while (end > text) {
		const char *start = end;
		while (start > text && start[-1] != '\n')
			start--;
		memcpy(out + used, start, (size_t)(end - start));
		used += (size_t)(end - start);
		out[used++] = '\n';
		end = start > text ? start - 1 : text;
	}
	out[used] = '\0';
	return out;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const uint8_t *sep = memchr(data, '\0', size);
	_cleanup_free_ char *file = fuzz_strndup(data, sep ? (size_t)(sep - data) : 0);
	_cleanup_free_ char *patch =
	    sep ? fuzz_strndup(sep + 1, size - (size_t)(sep - data) - 1) : fuzz_strndup(data, size);
	_cleanup_(al_patch_op_list_free) struct al_patch_op_list ops = {0};
	struct table t = {0};
	const struct al_patch_fs fs = {
	    .ctx = &t, .read = t_read, .write = t_write, .remove = t_remove};
	struct al_error err = AL_ERROR_INIT;
	_cleanup_free_ char *summary = NULL, *out = NULL;
	int r;

	/* The V4A diff alone, against the file, and as a new file. */
	r = al_apply_diff(file, patch, false, &out, &err);
	fuzz_check_error(r, &err);
	free(out);
	out = NULL;
	al_error_clear(&err);
	r = al_apply_diff("", patch, true, &out, &err);
	fuzz_check_error(r, &err);

	al_error_clear(&err);
	r = al_patch_parse(patch, &ops.v, &ops.n, &err);
	fuzz_check_error(r, &err);
	if (r < 0)
		return 0;
	FUZZ_ASSERT(ops.n > 0);
	for (size_t i = 0; i < ops.n; i++)
		FUZZ_ASSERT(ops.v[i].path && *ops.v[i].path &&
		            (ops.v[i].kind == AL_PATCH_DELETE) == !ops.v[i].diff);

	t.path[0] = strdup("a.txt");
	t.data[0] = strdup(file);
	t.path[1] = strdup("b.txt");
	t.data[1] = reversed_lines(file);
	FUZZ_ASSERT(t.path[0] && t.data[0] && t.path[1]);
	al_error_clear(&err);
	r = al_patch_apply(&fs, ops.v, ops.n, &summary, &err);
	fuzz_check_error(r, &err);
	if (r < 0 && r != -ENOSPC) {
		/* Worked out in memory first: a refused patch wrote nothing. */
		FUZZ_ASSERT(t.writes == 0 && t.removes == 0);
	}
	if (r == 0)
		FUZZ_ASSERT(summary);
	for (int i = 0; i < N_FILES; i++) {
		free(t.path[i]);
		free(t.data[i]);
	}
	return 0;
}
