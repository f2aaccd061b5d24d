/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The run directory as a run store: DIR/state.json (replaced atomically), DIR/audit.jsonl
 * (appended and fsync'd, a torn last line cut on load) with DIR/audit.head, and the run's
 * small files beside them.  The layout is docs/harness.md's.
 */
#include "runstore.h"

#include "cleanup.h"
#include "json.h"
#include "util.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define STATE_FILE "state.json"
#define AUDIT_FILE "audit.jsonl"
#define AUDIT_HEAD_FILE "audit.head"
#define MAX_STATE_BYTES (1ull << 30)
/* An audit trail is read whole; this bounds it. */
#define MAX_AUDIT_BYTES (1ull << 30)

struct dir_store {
	struct al_run_store base;
	int audit_fd; /* opened by the first audit_load, kept for appends */
};

static char *path_of(struct al_run_store *s, const char *name)
{
	char *p = NULL;
	return asprintf(&p, "%s/%s", s->dir, name) < 0 ? NULL : p;
}

static int dir_state_load(struct al_run_store *s, char **text, size_t *len, struct al_error *err)
{
	_cleanup_free_ char *path = path_of(s, STATE_FILE);

	if (!path)
		return al_error_set(err, ENOMEM, "out of memory");
	return al_read_file(path, MAX_STATE_BYTES, text, len, err);
}

static int dir_file_write(struct al_run_store *s, const char *name, const char *data, size_t len,
                          struct al_error *err)
{
	_cleanup_free_ char *path = path_of(s, name);

	if (!path)
		return al_error_set(err, ENOMEM, "out of memory");
	return al_write_file_atomic(path, data, len, 0600, err);
}

static int dir_file_read(struct al_run_store *s, const char *name, char **data, size_t *len,
                         struct al_error *err)
{
	_cleanup_free_ char *path = path_of(s, name);

	if (!path)
		return al_error_set(err, ENOMEM, "out of memory");
	return al_read_file(path, 16u << 20, data, len, err);
}

static int dir_state_save(struct al_run_store *s, const char *text, size_t len,
                          struct al_error *err)
{
	return dir_file_write(s, STATE_FILE, text, len, err);
}

static int write_head(struct al_run_store *s, uint64_t seq, const char *sha, struct al_error *err)
{
	_cleanup_free_ char *text = NULL;

	if (asprintf(&text, "{\"seq\":%" PRIu64 ",\"sha256\":\"%s\"}\n", seq, sha) < 0)
		return al_error_set(err, ENOMEM, "out of memory");
	return dir_file_write(s, AUDIT_HEAD_FILE, text, strlen(text), err);
}

static int dir_audit_load(struct al_run_store *s, char **out, size_t *out_len, struct al_error *err)
{
	struct dir_store *d = (struct dir_store *)s;
	_cleanup_free_ char *path = path_of(s, AUDIT_FILE);
	_cleanup_free_ char *data = NULL;
	size_t len = 0, end;
	int r;

	if (!path)
		return al_error_set(err, ENOMEM, "out of memory");
	if (d->audit_fd < 0) {
		d->audit_fd = open(path, O_RDWR | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
		if (d->audit_fd < 0)
			return al_error_errno(err, "open %s", path);
	}
	if (lseek(d->audit_fd, 0, SEEK_SET) < 0)
		return al_error_errno(err, "seek %s", path);
	r = al_read_fd(d->audit_fd, MAX_AUDIT_BYTES, &data, &len, err);
	if (r < 0)
		return al_error_prefix(err, "read %s", path);
	/* A record is whole once its newline is written; anything after the last is torn. */
	end = len;
	while (end > 0 && data[end - 1] != '\n')
		end--;
	if (end < len && ftruncate(d->audit_fd, (off_t)end) < 0)
		return al_error_errno(err, "truncate torn record of %s", path);
	*out_len = end;
	*out = TAKE_PTR(data);
	return 0;
}

static int dir_audit_head(struct al_run_store *s, uint64_t *seq, char sha[65], struct al_error *err)
{
	_cleanup_free_ char *path = path_of(s, AUDIT_HEAD_FILE);
	_cleanup_free_ char *text = NULL;
	_cleanup_cjson_ cJSON *head = NULL;
	const cJSON *hseq, *hsha;
	int r;

	if (!path)
		return al_error_set(err, ENOMEM, "out of memory");
	r = al_read_file(path, 4096, &text, NULL, err);
	if (r < 0)
		return r;
	head = cJSON_Parse(text);
	hseq = cJSON_GetObjectItemCaseSensitive(head, "seq");
	hsha = cJSON_GetObjectItemCaseSensitive(head, "sha256");
	if (!cJSON_IsNumber(hseq) || hseq->valuedouble < 0 || !cJSON_IsString(hsha) ||
	    strlen(hsha->valuestring) != 64)
		return al_error_set(err, EBADMSG, "%s is not valid", AUDIT_HEAD_FILE);
	*seq = (uint64_t)hseq->valuedouble;
	memcpy(sha, hsha->valuestring, 65);
	return 0;
}

/* A crash between appending a record and moving the head leaves the head behind. */
static int dir_audit_sync_head(struct al_run_store *s, uint64_t seq, const char *line_sha,
                               struct al_error *err)
{
	return write_head(s, seq, line_sha, err);
}

static int dir_audit_append(struct al_run_store *s, uint64_t seq, const char *line, size_t len,
                            const char *line_sha, struct al_error *err)
{
	struct dir_store *d = (struct dir_store *)s;
	int r;

	if (d->audit_fd < 0)
		return al_error_set(err, EBADF, "%s/" AUDIT_FILE " was not loaded", s->dir);
	r = al_write_all(d->audit_fd, line, len);
	if (r < 0) {
		errno = -r;
		return al_error_errno(err, "append to %s/" AUDIT_FILE, s->dir);
	}
	if (fsync(d->audit_fd) < 0)
		return al_error_errno(err, "fsync %s/" AUDIT_FILE, s->dir);
	return write_head(s, seq, line_sha, err);
}

static void dir_free(struct al_run_store *s)
{
	struct dir_store *d = (struct dir_store *)s;

	if (d->audit_fd >= 0)
		close(d->audit_fd);
}

static const struct al_run_store_ops dir_ops = {
    .name = "dir",
    .state_load = dir_state_load,
    .state_save = dir_state_save,
    .audit_load = dir_audit_load,
    .audit_head = dir_audit_head,
    .audit_append = dir_audit_append,
    .audit_sync_head = dir_audit_sync_head,
    .file_write = dir_file_write,
    .file_read = dir_file_read,
    .free = dir_free,
};

int al_run_store_dir_open(const char *dir, struct al_run_store **out, struct al_error *err)
{
	struct dir_store *d = calloc(1, sizeof(*d));

	if (!d || !(d->base.dir = strdup(dir))) {
		free(d);
		return al_error_set(err, ENOMEM, "out of memory");
	}
	d->base.ops = &dir_ops;
	d->audit_fd = -1;
	*out = &d->base;
	return 0;
}

void al_run_store_free(struct al_run_store *s)
{
	if (!s)
		return;
	if (s->ops->free)
		s->ops->free(s);
	free(s->dir);
	free(s);
}
