/* SPDX-License-Identifier: Apache-2.0 */
/*
 * apply_patch: parser and applier of the Agents SDK's patch format.  The matching rules
 * (anchors searched forward, context matched exactly, then ignoring trailing blanks, then
 * ignoring surrounding blanks; "*** End of File" pinning a hunk to the end) follow the
 * SDK's applyDiff so a patch that applies there applies here, and one that fails there
 * fails here.
 */
#include "apply_patch.h"

#include "cleanup.h"
#include "util.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define BEGIN_PATCH "*** Begin Patch"
#define END_PATCH "*** End Patch"
#define ADD_FILE "*** Add File: "
#define DELETE_FILE "*** Delete File: "
#define UPDATE_FILE "*** Update File: "
#define MOVE_TO "*** Move to: "
#define END_FILE "*** End of File"

static bool starts_with(const char *s, const char *prefix)
{
	return strncmp(s, prefix, strlen(prefix)) == 0;
}

/* ---- lines ---- */

/* Lines borrowed from one mutable copy of a text. */
struct lines {
	char *text;
	const char **v;
	size_t n, cap;
};

static void lines_free(struct lines *l)
{
	free(l->text);
	free(l->v);
	memset(l, 0, sizeof(*l));
}

static int lines_push(struct lines *l, const char *s)
{
	if (l->n == l->cap) {
		size_t cap = l->cap ? 2 * l->cap : 16;
		const char **v = realloc(l->v, cap * sizeof(*v));
		if (!v)
			return -ENOMEM;
		l->v = v;
		l->cap = cap;
	}
	l->v[l->n++] = s;
	return 0;
}

/* Split on "\n"; with strip_cr also drop one "\r" before each "\n" (and at the end). */
static int lines_split(struct lines *l, const char *text, bool strip_cr)
{
	char *p;

	memset(l, 0, sizeof(*l));
	l->text = strdup(text);
	if (!l->text)
		return -ENOMEM;
	p = l->text;
	for (;;) {
		char *nl = strchr(p, '\n');
		if (nl)
			*nl = '\0';
		if (strip_cr) {
			size_t len = strlen(p);
			if (len && p[len - 1] == '\r')
				p[len - 1] = '\0';
		}
		if (lines_push(l, p) < 0)
			return -ENOMEM;
		if (!nl)
			break;
		p = nl + 1;
	}
	return 0;
}

static void lines_drop_trailing_empty(struct lines *l)
{
	if (l->n && l->v[l->n - 1][0] == '\0')
		l->n--;
}

static int join(const char *const *v, size_t n, const char *sep, char **out)
{
	_cleanup_buf_ struct al_buf b = {0};
	size_t seplen = strlen(sep);

	for (size_t i = 0; i < n; i++)
		if ((i && al_buf_append(&b, sep, seplen) < 0) ||
		    al_buf_append(&b, v[i], strlen(v[i])) < 0)
			return -ENOMEM;
	if (al_buf_append(&b, "", 1) < 0)
		return -ENOMEM;
	*out = TAKE_PTR(b.data);
	return 0;
}

/* ---- the freeform envelope ---- */

void al_patch_ops_free(struct al_patch_op *ops, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		free(ops[i].path);
		free(ops[i].move_to);
		free(ops[i].diff);
	}
	free(ops);
}

static bool is_file_header(const char *line)
{
	return starts_with(line, ADD_FILE) || starts_with(line, DELETE_FILE) ||
	       starts_with(line, UPDATE_FILE);
}

/* The path after a header prefix, trimmed; NULL when empty. */
static char *header_path(const char *line, const char *prefix)
{
	const char *s = line + strlen(prefix);
	size_t len;

	while (isspace((unsigned char)*s))
		s++;
	len = strlen(s);
	while (len && isspace((unsigned char)s[len - 1]))
		len--;
	return len ? strndup(s, len) : NULL;
}

static int diff_from_lines(const char *const *v, size_t n, char **out)
{
	_cleanup_free_ char *body = NULL;

	if (join(v, n, "\n", &body) < 0 || asprintf(out, "%s\n", body) < 0)
		return -ENOMEM;
	return 0;
}

int al_patch_parse(const char *text, struct al_patch_op **ops_out, size_t *n_out,
                   struct al_error *err)
{
	_cleanup_(lines_free) struct lines l = {0};
	_cleanup_(al_patch_op_list_free) struct al_patch_op_list ops = {0};
	size_t i;

	while (isspace((unsigned char)*text))
		text++;
	if (lines_split(&l, text, true) < 0)
		return al_error_set(err, ENOMEM, "out of memory");
	lines_drop_trailing_empty(&l);
	if (l.n == 0 || strcmp(l.v[0], BEGIN_PATCH))
		return al_error_set(err, EINVAL, "apply_patch input must start with \"%s\".",
		                    BEGIN_PATCH);
	if (l.n < 2 || strcmp(l.v[l.n - 1], END_PATCH))
		return al_error_set(err, EINVAL, "apply_patch input must end with \"%s\".",
		                    END_PATCH);
	ops.v = calloc(l.n, sizeof(*ops.v));
	if (!ops.v)
		return al_error_set(err, ENOMEM, "out of memory");
	i = 1;
	while (i < l.n - 1) {
		const char *line = l.v[i];
		struct al_patch_op *op = &ops.v[ops.n];
		size_t start;

		if (starts_with(line, ADD_FILE)) {
			op->kind = AL_PATCH_ADD;
			op->path = header_path(line, ADD_FILE);
		} else if (starts_with(line, DELETE_FILE)) {
			op->kind = AL_PATCH_DELETE;
			op->path = header_path(line, DELETE_FILE);
		} else if (starts_with(line, UPDATE_FILE)) {
			op->kind = AL_PATCH_UPDATE;
			op->path = header_path(line, UPDATE_FILE);
		} else {
			return al_error_set(err, EINVAL,
			                    "Invalid apply_patch file operation header: %s", line);
		}
		ops.n++;
		if (!op->path)
			return al_error_set(err, EINVAL, "Missing path in apply_patch header: %s",
			                    line);
		i++;
		if (op->kind == AL_PATCH_UPDATE && i < l.n - 1 && starts_with(l.v[i], MOVE_TO)) {
			op->move_to = header_path(l.v[i], MOVE_TO);
			if (!op->move_to)
				return al_error_set(
				    err, EINVAL, "Missing path in apply_patch header: %s", l.v[i]);
			i++;
		}
		start = i;
		while (i < l.n - 1 && !is_file_header(l.v[i])) {
			if (op->kind == AL_PATCH_ADD && l.v[i][0] != '+')
				return al_error_set(err, EINVAL, "Invalid Add File line: %s",
				                    l.v[i]);
			i++;
		}
		if (op->kind == AL_PATCH_DELETE && i > start)
			return al_error_set(err, EINVAL,
			                    "Delete File patch for %s must not include a diff.",
			                    op->path);
		if (op->kind == AL_PATCH_ADD && i == start)
			return al_error_set(
			    err, EINVAL, "Add File patch for %s must include at least one + line.",
			    op->path);
		if (op->kind == AL_PATCH_UPDATE && i == start && !op->move_to)
			return al_error_set(
			    err, EINVAL, "Update File patch for %s must include a hunk.", op->path);
		if (op->kind != AL_PATCH_DELETE &&
		    (i > start ? diff_from_lines(l.v + start, i - start, &op->diff) < 0
		               : !(op->diff = strdup(""))))
			return al_error_set(err, ENOMEM, "out of memory");
	}
	if (ops.n == 0)
		return al_error_set(err, EINVAL,
		                    "apply_patch input must include at least one file operation.");
	*n_out = ops.n;
	*ops_out = TAKE_PTR(ops.v);
	return 0;
}

/* ---- V4A diffs ---- */

struct chunk {
	size_t orig_index;
	const char **del;
	size_t ndel;
	const char **ins;
	size_t nins;
};

struct chunks {
	struct chunk *v;
	size_t n, cap;
};

static void chunks_free(struct chunks *c)
{
	for (size_t i = 0; i < c->n; i++) {
		free(c->v[i].del);
		free(c->v[i].ins);
	}
	free(c->v);
}

enum cmp_mode { CMP_EXACT, CMP_TRIM_END, CMP_TRIM };

static bool line_eq(const char *a, const char *b, enum cmp_mode mode)
{
	size_t la, lb;

	if (mode == CMP_EXACT)
		return strcmp(a, b) == 0;
	if (mode == CMP_TRIM) {
		while (isspace((unsigned char)*a))
			a++;
		while (isspace((unsigned char)*b))
			b++;
	}
	la = strlen(a);
	lb = strlen(b);
	while (la && isspace((unsigned char)a[la - 1]))
		la--;
	while (lb && isspace((unsigned char)b[lb - 1]))
		lb--;
	return la == lb && memcmp(a, b, la) == 0;
}

/* Where context matches lines at or after start: index, or -1.  fuzz grows with leniency. */
static long find_context_core(const char *const *lines, size_t n, const char *const *ctx,
                              size_t nctx, size_t start, int *fuzz)
{
	static const int fuzz_of[] = {0, 1, 100};

	*fuzz = 0;
	if (nctx == 0)
		return (long)start;
	for (int mode = CMP_EXACT; mode <= CMP_TRIM; mode++) {
		for (size_t i = start; i + nctx <= n; i++) {
			size_t k = 0;
			while (k < nctx && line_eq(lines[i + k], ctx[k], (enum cmp_mode)mode))
				k++;
			if (k == nctx) {
				*fuzz = fuzz_of[mode];
				return (long)i;
			}
		}
	}
	return -1;
}

static long find_context(const char *const *lines, size_t n, const char *const *ctx, size_t nctx,
                         size_t start, bool eof, int *fuzz)
{
	long i;

	if (!eof)
		return find_context_core(lines, n, ctx, nctx, start, fuzz);
	/* A final empty "line" is only the file's last newline. */
	if (n > 1 && lines[n - 1][0] == '\0')
		n--;
	i = find_context_core(lines, n, ctx, nctx, n > nctx ? n - nctx : 0, fuzz);
	if (i >= 0)
		return i;
	i = find_context_core(lines, n, ctx, nctx, start < n ? start : n, fuzz);
	*fuzz += 10000;
	return i;
}

/* Move the cursor past the line matching an "@@ anchor". */
static int advance_to_anchor(const char *anchor, const char *const *lines, size_t n, size_t *cursor,
                             bool require, bool forward_only, struct al_error *err)
{
	for (int mode = CMP_EXACT; mode <= CMP_TRIM; mode += CMP_TRIM) {
		if (!forward_only)
			for (size_t i = 0; i < *cursor && i < n; i++)
				if (line_eq(lines[i], anchor, (enum cmp_mode)mode))
					return 0;
		for (size_t i = *cursor; i < n; i++)
			if (line_eq(lines[i], anchor, (enum cmp_mode)mode)) {
				*cursor = i + 1;
				return 0;
			}
	}
	if (require)
		return al_error_set(err, EINVAL, "Invalid Anchor %zu:\n%s", *cursor, anchor);
	return 0;
}

static int push_ptr(const char ***v, size_t *n, const char *s)
{
	const char **nv = realloc(*v, (*n + 1) * sizeof(**v));
	if (!nv)
		return -ENOMEM;
	nv[(*n)++] = s;
	*v = nv;
	return 0;
}

static int push_chunk(struct chunks *c, size_t orig_index, const char ***del, size_t *ndel,
                      const char ***ins, size_t *nins)
{
	if (c->n == c->cap) {
		size_t cap = c->cap ? 2 * c->cap : 8;
		struct chunk *v = realloc(c->v, cap * sizeof(*v));
		if (!v)
			return -ENOMEM;
		c->v = v;
		c->cap = cap;
	}
	c->v[c->n++] = (struct chunk){orig_index, *del, *ndel, *ins, *nins};
	*del = *ins = NULL;
	*ndel = *nins = 0;
	return 0;
}

/* One section: context and changes up to the next "@@", header or end marker. */
struct section {
	const char **ctx;
	size_t nctx;
	struct chunks chunks;
	size_t end;
	bool eof;
};

static void section_free(struct section *s)
{
	free(s->ctx);
	chunks_free(&s->chunks);
	memset(s, 0, sizeof(*s));
}

static int read_section(const char *const *lines, size_t n, size_t start, struct section *s,
                        struct al_error *err)
{
	_cleanup_free_ const char **del = NULL;
	_cleanup_free_ const char **ins = NULL;
	size_t ndel = 0, nins = 0, i = start;
	char mode = ' ';

	memset(s, 0, sizeof(*s));
	while (i < n) {
		const char *raw = lines[i];
		const char *line;
		char last = mode;

		if (starts_with(raw, "@@") || starts_with(raw, END_PATCH) ||
		    starts_with(raw, "*** Update File:") || starts_with(raw, "*** Delete File:") ||
		    starts_with(raw, "*** Add File:") || starts_with(raw, END_FILE))
			break;
		if (!strcmp(raw, "***"))
			break;
		if (starts_with(raw, "***"))
			return al_error_set(err, EINVAL, "Invalid Line: %s", raw);
		i++;
		line = raw[0] ? raw : " ";
		if (line[0] != '+' && line[0] != '-' && line[0] != ' ')
			return al_error_set(err, EINVAL, "Invalid Line: %s", line);
		mode = line[0];
		line++;
		if (mode == ' ' && last != ' ' && (nins || ndel) &&
		    push_chunk(&s->chunks, s->nctx - ndel, &del, &ndel, &ins, &nins) < 0)
			return al_error_set(err, ENOMEM, "out of memory");
		if ((mode == '-' &&
		     (push_ptr(&del, &ndel, line) < 0 || push_ptr(&s->ctx, &s->nctx, line) < 0)) ||
		    (mode == '+' && push_ptr(&ins, &nins, line) < 0) ||
		    (mode == ' ' && push_ptr(&s->ctx, &s->nctx, line) < 0))
			return al_error_set(err, ENOMEM, "out of memory");
	}
	if ((nins || ndel) && push_chunk(&s->chunks, s->nctx - ndel, &del, &ndel, &ins, &nins) < 0)
		return al_error_set(err, ENOMEM, "out of memory");
	if (i < n && !strcmp(lines[i], END_FILE)) {
		s->end = i + 1;
		s->eof = true;
		return 0;
	}
	if (i == start)
		return al_error_set(err, EINVAL, "Nothing in this section - index=%zu %s", i,
		                    i < n ? lines[i] : "");
	s->end = i;
	return 0;
}

static int parse_update(const struct lines *d, const struct lines *in, struct chunks *out,
                        struct al_error *err)
{
	static const char *const section_end[] = {
	    END_PATCH, "*** Update File:", "*** Delete File:", "*** Add File:", END_FILE};
	size_t idx = 0, cursor = 0;
	int r;

	for (;;) {
		_cleanup_free_ const char **anchors = NULL;
		_cleanup_(section_free) struct section s = {0};
		size_t nanchors = 0, count = 0;
		bool done = idx >= d->n;
		long found;
		int fuzz;

		for (size_t k = 0; !done && k < AL_ARRAY_SIZE(section_end); k++)
			done = starts_with(d->v[idx], section_end[k]);
		if (done)
			return 0;
		for (;;) {
			if (starts_with(d->v[idx], "@@ ")) {
				const char *a = d->v[idx] + 3;
				const char *t = a;
				while (isspace((unsigned char)*t))
					t++;
				if (*t && push_ptr(&anchors, &nanchors, a) < 0)
					return al_error_set(err, ENOMEM, "out of memory");
			} else if (strcmp(d->v[idx], "@@")) {
				break;
			}
			idx++;
			count++;
		}
		if (count == 0 && cursor != 0)
			return al_error_set(err, EINVAL, "Invalid Line:\n%s", d->v[idx]);
		for (size_t k = 0; k < nanchors; k++) {
			r = advance_to_anchor(anchors[k], in->v, in->n, &cursor, count > 1, k > 0,
			                      err);
			if (r < 0)
				return r;
		}
		r = read_section(d->v, d->n, idx, &s, err);
		if (r < 0)
			return r;
		found = find_context(in->v, in->n, s.ctx, s.nctx, cursor, s.eof, &fuzz);
		if (found < 0) {
			_cleanup_free_ char *ctx = NULL;
			if (join(s.ctx, s.nctx, "\n", &ctx) < 0)
				ctx = NULL;
			return al_error_set(err, EINVAL, "Invalid %sContext %zu:\n%s",
			                    s.eof ? "EOF " : "", cursor, ctx ? ctx : "");
		}
		for (size_t k = 0; k < s.chunks.n; k++) {
			struct chunk *c = &s.chunks.v[k];
			if (push_chunk(out, c->orig_index + (size_t)found, &c->del, &c->ndel,
			               &c->ins, &c->nins) < 0)
				return al_error_set(err, ENOMEM, "out of memory");
		}
		cursor = (size_t)found + s.nctx;
		idx = s.end;
	}
}

/* A new file is its "+" lines joined by newlines (the SDK adds no final one). */
static int added_file(const struct lines *d, char **out, struct al_error *err)
{
	_cleanup_free_ const char **v = calloc(d->n, sizeof(*v));
	size_t k = 0;

	if (!v)
		return al_error_set(err, ENOMEM, "out of memory");
	for (; k + 1 < d->n && !starts_with(d->v[k], END_PATCH); k++) {
		if (d->v[k][0] != '+')
			return al_error_set(err, EINVAL, "Invalid Add File Line: %s", d->v[k]);
		v[k] = d->v[k] + 1;
	}
	if (join(v, k, "\n", out) < 0)
		return al_error_set(err, ENOMEM, "out of memory");
	return 0;
}

int al_apply_diff(const char *input, const char *diff, bool create, char **out,
                  struct al_error *err)
{
	_cleanup_(lines_free) struct lines d = {0};
	_cleanup_(lines_free) struct lines in = {0};
	_cleanup_(chunks_free) struct chunks chunks = {0};
	_cleanup_free_ const char **dest = NULL;
	size_t ndest = 0, oi = 0;
	bool crlf = false, any_nl = false;
	int r;

	if (lines_split(&d, diff, true) < 0)
		return al_error_set(err, ENOMEM, "out of memory");
	lines_drop_trailing_empty(&d);
	if (lines_push(&d, END_PATCH) < 0)
		return al_error_set(err, ENOMEM, "out of memory");
	if (create)
		return added_file(&d, out, err);
	/* Keep the file's line ending: CRLF only when every newline is one. */
	for (const char *p = input; *p; p++) {
		if (*p != '\n')
			continue;
		any_nl = true;
		if (p == input || p[-1] != '\r') {
			any_nl = false;
			crlf = false;
			break;
		}
		crlf = true;
	}
	crlf = crlf && any_nl;
	if (lines_split(&in, input, crlf) < 0)
		return al_error_set(err, ENOMEM, "out of memory");
	r = parse_update(&d, &in, &chunks, err);
	if (r < 0)
		return r;
	for (size_t k = 0; k < chunks.n; k++) {
		const struct chunk *c = &chunks.v[k];
		if (c->orig_index > in.n)
			return al_error_set(err, EINVAL,
			                    "applyDiff: chunk.origIndex %zu > input length %zu",
			                    c->orig_index, in.n);
		if (oi > c->orig_index)
			return al_error_set(err, EINVAL,
			                    "applyDiff: overlapping chunk at %zu (cursor %zu)",
			                    c->orig_index, oi);
		for (; oi < c->orig_index; oi++)
			if (push_ptr(&dest, &ndest, in.v[oi]) < 0)
				return al_error_set(err, ENOMEM, "out of memory");
		for (size_t j = 0; j < c->nins; j++)
			if (push_ptr(&dest, &ndest, c->ins[j]) < 0)
				return al_error_set(err, ENOMEM, "out of memory");
		oi += c->ndel;
	}
	for (; oi < in.n; oi++)
		if (push_ptr(&dest, &ndest, in.v[oi]) < 0)
			return al_error_set(err, ENOMEM, "out of memory");
	if (join(dest, ndest, crlf ? "\r\n" : "\n", out) < 0)
		return al_error_set(err, ENOMEM, "out of memory");
	return 0;
}

/* ---- applying a patch through a file table ---- */

struct staged {
	char *path;
	char *data; /* NULL: absent */
	size_t len;
	bool dirty;
};

struct stage {
	const struct al_patch_fs *fs;
	struct staged *v;
	size_t n;
};

static void stage_free(struct stage *s)
{
	for (size_t i = 0; i < s->n; i++) {
		free(s->v[i].path);
		free(s->v[i].data);
	}
	free(s->v);
}

/* The staged copy of path, reading it through fs the first time. */
static int stage_get(struct stage *s, const char *path, struct staged **out, struct al_error *err)
{
	struct staged *v, *e;
	int r;

	for (size_t i = 0; i < s->n; i++)
		if (!strcmp(s->v[i].path, path)) {
			*out = &s->v[i];
			return 0;
		}
	v = realloc(s->v, (s->n + 1) * sizeof(*v));
	if (!v)
		return al_error_set(err, ENOMEM, "out of memory");
	s->v = v;
	e = &v[s->n];
	memset(e, 0, sizeof(*e));
	e->path = strdup(path);
	if (!e->path)
		return al_error_set(err, ENOMEM, "out of memory");
	r = s->fs->read(s->fs->ctx, path, &e->data, &e->len, err);
	if (r < 0 && r != -ENOENT) {
		free(e->path);
		return r;
	}
	if (r == -ENOENT)
		e->data = NULL;
	s->n++;
	*out = e;
	return 0;
}

static int stage_set(struct staged *e, char *data)
{
	free(e->data);
	e->data = data;
	e->len = data ? strlen(data) : 0;
	e->dirty = true;
	return 0;
}

int al_patch_apply(const struct al_patch_fs *fs, const struct al_patch_op *ops, size_t n,
                   char **summary, struct al_error *err)
{
	_cleanup_(stage_free) struct stage s = {.fs = fs};
	_cleanup_buf_ struct al_buf sum = {0};
	int r;

	for (size_t i = 0; i < n; i++) {
		const struct al_patch_op *op = &ops[i];
		_cleanup_free_ char *result = NULL;
		struct staged *e, *dst;
		char line[4200];

		r = stage_get(&s, op->path, &e, err);
		if (r < 0)
			return r;
		switch (op->kind) {
		case AL_PATCH_ADD:
			if (e->data)
				return al_error_set(
				    err, EEXIST, "Add File %s: the file already exists", op->path);
			r = al_apply_diff("", op->diff, true, &result, err);
			if (r < 0)
				return al_error_prefix(err, "Add File %s", op->path);
			stage_set(e, TAKE_PTR(result));
			snprintf(line, sizeof(line), "A %s\n", op->path);
			break;
		case AL_PATCH_DELETE:
			if (!e->data)
				return al_error_set(err, ENOENT, "Delete File %s: no such file",
				                    op->path);
			stage_set(e, NULL);
			snprintf(line, sizeof(line), "D %s\n", op->path);
			break;
		case AL_PATCH_UPDATE:
			if (!e->data)
				return al_error_set(err, ENOENT, "Update File %s: no such file",
				                    op->path);
			r = al_apply_diff(e->data, op->diff, false, &result, err);
			if (r < 0)
				return al_error_prefix(err, "Update File %s", op->path);
			if (op->move_to && strcmp(op->move_to, op->path)) {
				r = stage_get(&s, op->move_to, &dst, err);
				if (r < 0)
					return r;
				/* stage_get may have moved the table. */
				r = stage_get(&s, op->path, &e, err);
				if (r < 0)
					return r;
				stage_set(dst, TAKE_PTR(result));
				stage_set(e, NULL);
				snprintf(line, sizeof(line), "M %s -> %s\n", op->path, op->move_to);
			} else {
				stage_set(e, TAKE_PTR(result));
				snprintf(line, sizeof(line), "M %s\n", op->path);
			}
			break;
		}
		if (al_buf_append(&sum, line, strlen(line)) < 0)
			return al_error_set(err, ENOMEM, "out of memory");
	}
	/* Everything applied in memory: now write, then remove. */
	for (size_t i = 0; i < s.n; i++) {
		if (s.v[i].dirty && s.v[i].data) {
			r = fs->write(fs->ctx, s.v[i].path, s.v[i].data, s.v[i].len, err);
			if (r < 0)
				return r;
		}
	}
	for (size_t i = 0; i < s.n; i++) {
		if (s.v[i].dirty && !s.v[i].data) {
			r = fs->remove(fs->ctx, s.v[i].path, err);
			/* Added and deleted again within the patch: nothing was there. */
			if (r < 0 && r != -ENOENT)
				return r;
		}
	}
	if (al_buf_append(&sum, "", 1) < 0)
		return al_error_set(err, ENOMEM, "out of memory");
	*summary = TAKE_PTR(sum.data);
	return 0;
}
