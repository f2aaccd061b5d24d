/* SPDX-License-Identifier: Apache-2.0 */
#include "audit.h"

#include "cleanup.h"
#include "json.h"
#include "killpoint.h"
#include "util.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define HASH_KEY ",\"hash\":\""
#define ZERO_HASH "0000000000000000000000000000000000000000000000000000000000000000"
/* An audit trail is read whole; this bounds it. */
#define MAX_AUDIT_BYTES (1ull << 30)

void al_audit_timestamp(char out[32])
{
	struct timespec ts;
	struct tm tm;
	char base[24];

	clock_gettime(CLOCK_REALTIME, &ts);
	gmtime_r(&ts.tv_sec, &tm);
	strftime(base, sizeof(base), "%Y-%m-%dT%H:%M:%S", &tm);
	snprintf(out, 32, "%s.%03ldZ", base, ts.tv_nsec / 1000000);
}

static bool is_hex64(const char *s, size_t len)
{
	if (len != 64)
		return false;
	for (size_t i = 0; i < 64; i++)
		if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
			return false;
	return true;
}

/* Check a line's own hash; false when it does not match its content. */
static bool self_hash_ok(const char *line, size_t len)
{
	_cleanup_free_ char *body = NULL;
	const char *k = NULL, *p = line;
	char hex[65];
	size_t blen;

	while ((p = memmem(p, len - (size_t)(p - line), HASH_KEY, strlen(HASH_KEY)))) {
		k = p;
		p += strlen(HASH_KEY);
	}
	if (!k)
		return false;
	p = k + strlen(HASH_KEY);
	if ((size_t)(line + len - p) != 66 || !is_hex64(p, 64) || p[64] != '"' || p[65] != '}')
		return false;
	blen = (size_t)(k - line);
	body = malloc(blen + 1);
	if (!body)
		return false;
	memcpy(body, line, blen);
	body[blen] = '}';
	al_sha256_hex(body, blen + 1, hex);
	return memcmp(hex, p, 64) == 0;
}

static int write_head(struct al_audit *a, struct al_error *err)
{
	_cleanup_free_ char *path = NULL;
	_cleanup_free_ char *text = NULL;

	if (asprintf(&path, "%s/" AL_AUDIT_HEAD_FILE, a->dir) < 0 ||
	    asprintf(&text, "{\"seq\":%" PRIu64 ",\"sha256\":\"%s\"}\n", a->seq, a->prev) < 0)
		return al_error_set(err, ENOMEM, "out of memory");
	return al_write_file_atomic(path, text, strlen(text), 0600, err);
}

int al_audit_open(struct al_audit *a, const char *dir, struct al_error *err)
{
	_cleanup_free_ char *path = NULL;
	_cleanup_free_ char *data = NULL;
	_cleanup_close_ int fd = -1;
	size_t len = 0, end;
	int r;

	memset(a, 0, sizeof(*a));
	a->fd = -1;
	strcpy(a->prev, ZERO_HASH);
	a->dir = strdup(dir);
	if (!a->dir || asprintf(&path, "%s/" AL_AUDIT_FILE, dir) < 0)
		return al_error_set(err, ENOMEM, "out of memory");
	fd = open(path, O_RDWR | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
	if (fd < 0)
		return al_error_errno(err, "open %s", path);
	r = al_read_fd(fd, MAX_AUDIT_BYTES, &data, &len, err);
	if (r < 0)
		return al_error_prefix(err, "read %s", path);
	/* A record is whole once its newline is written; anything after the last is torn. */
	end = len;
	while (end > 0 && data[end - 1] != '\n')
		end--;
	if (end < len && ftruncate(fd, (off_t)end) < 0)
		return al_error_errno(err, "truncate torn record of %s", path);
	if (end > 0) {
		size_t start = end - 1;
		const char *s;
		while (start > 0 && data[start - 1] != '\n')
			start--;
		al_sha256_hex(data + start, end - 1 - start, a->prev);
		s = memmem(data + start, end - start, "{\"seq\":", 7);
		a->seq = s ? strtoull(s + 7, NULL, 10) : 0;
	}
	a->fd = TAKE_FD(fd);
	/* Keep the head in step with the file, whatever a crash left between the two. */
	if (end > 0)
		return write_head(a, err);
	return 0;
}

void al_audit_close(struct al_audit *a)
{
	if (a->fd >= 0)
		close(a->fd);
	a->fd = -1;
	free(a->dir);
	a->dir = NULL;
}

int al_audit_append(struct al_audit *a, const char *kind, cJSON *data, struct al_error *err)
{
	_cleanup_cjson_ cJSON *rec = cJSON_CreateObject();
	_cleanup_free_ char *body = NULL;
	_cleanup_free_ char *line = NULL;
	char ts[32], hash[65];
	size_t blen;
	int n, r;

	if (!rec) {
		cJSON_Delete(data);
		return al_error_set(err, ENOMEM, "out of memory");
	}
	al_audit_timestamp(ts);
	cJSON_AddNumberToObject(rec, "seq", (double)(a->seq + 1));
	cJSON_AddStringToObject(rec, "ts", ts);
	cJSON_AddStringToObject(rec, "kind", kind);
	cJSON_AddItemToObject(rec, "data", data ? data : cJSON_CreateObject());
	cJSON_AddStringToObject(rec, "prev", a->prev);
	body = cJSON_PrintUnformatted(rec);
	if (!body)
		return al_error_set(err, ENOMEM, "out of memory");
	blen = strlen(body);
	al_sha256_hex(body, blen, hash);
	body[blen - 1] = '\0'; /* drop the closing brace; the hash member closes the record */
	n = asprintf(&line, "%s" HASH_KEY "%s\"}\n", body, hash);
	if (n < 0)
		return al_error_set(err, ENOMEM, "out of memory");
	r = al_write_all(a->fd, line, (size_t)n);
	if (r < 0) {
		errno = -r;
		return al_error_errno(err, "append to %s/" AL_AUDIT_FILE, a->dir);
	}
	if (fsync(a->fd) < 0)
		return al_error_errno(err, "fsync %s/" AL_AUDIT_FILE, a->dir);
	a->seq++;
	al_sha256_hex(line, (size_t)n - 1, a->prev);
	r = write_head(a, err);
	if (r == 0)
		al_killpoint();
	return r;
}

int al_audit_count(struct al_audit *a, const char *kind, const char *key, const char *value,
                   struct al_error *err)
{
	_cleanup_free_ char *path = NULL;
	_cleanup_free_ char *data = NULL;
	size_t len = 0;
	int n = 0, r;

	if (asprintf(&path, "%s/" AL_AUDIT_FILE, a->dir) < 0)
		return al_error_set(err, ENOMEM, "out of memory");
	r = al_read_file(path, MAX_AUDIT_BYTES, &data, &len, err);
	if (r < 0)
		return r;
	for (char *line = data, *nl; line < data + len; line = nl + 1) {
		_cleanup_cjson_ cJSON *rec = NULL;
		const cJSON *k, *v;
		nl = memchr(line, '\n', (size_t)(data + len - line));
		if (!nl)
			break;
		rec = cJSON_ParseWithLength(line, (size_t)(nl - line));
		k = cJSON_GetObjectItemCaseSensitive(rec, "kind");
		if (!cJSON_IsString(k) || strcmp(k->valuestring, kind))
			continue;
		v = cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(rec, "data"),
		                                     key);
		if (value ? (cJSON_IsString(v) && !strcmp(v->valuestring, value)) : !v)
			n++;
	}
	return n;
}

int al_audit_verify(const char *dir, uint64_t *records, struct al_error *err)
{
	_cleanup_free_ char *path = NULL;
	_cleanup_free_ char *head_path = NULL;
	_cleanup_free_ char *data = NULL;
	_cleanup_free_ char *head_text = NULL;
	_cleanup_cjson_ cJSON *head = NULL;
	char prev[65] = ZERO_HASH, line_hash[65];
	size_t len = 0, pos = 0;
	uint64_t lineno = 0;
	const cJSON *hseq, *hsha;
	int r = 0;

	if (asprintf(&path, "%s/" AL_AUDIT_FILE, dir) < 0 ||
	    asprintf(&head_path, "%s/" AL_AUDIT_HEAD_FILE, dir) < 0)
		return al_error_set(err, ENOMEM, "out of memory");
	r = al_read_file(path, MAX_AUDIT_BYTES, &data, &len, err);
	if (r < 0)
		return r;
	while (pos < len) {
		const char *line = data + pos;
		const char *nl = memchr(line, '\n', len - pos);
		size_t llen;
		_cleanup_cjson_ cJSON *rec = NULL;
		const cJSON *seq, *ts, *kind, *d, *pv, *h;

		lineno++;
		if (!nl)
			return al_error_set(err, EBADMSG,
			                    "line %" PRIu64 ": incomplete record (no newline)",
			                    lineno);
		llen = (size_t)(nl - line);
		pos += llen + 1;
		rec = cJSON_ParseWithLength(line, llen);
		if (!cJSON_IsObject(rec))
			return al_error_set(err, EBADMSG, "line %" PRIu64 ": not a JSON object",
			                    lineno);
		seq = cJSON_GetObjectItemCaseSensitive(rec, "seq");
		ts = cJSON_GetObjectItemCaseSensitive(rec, "ts");
		kind = cJSON_GetObjectItemCaseSensitive(rec, "kind");
		d = cJSON_GetObjectItemCaseSensitive(rec, "data");
		pv = cJSON_GetObjectItemCaseSensitive(rec, "prev");
		h = cJSON_GetObjectItemCaseSensitive(rec, "hash");
		if (!cJSON_IsNumber(seq) || !cJSON_IsString(ts) || !cJSON_IsString(kind) ||
		    !cJSON_IsObject(d) || !cJSON_IsString(pv) || !cJSON_IsString(h))
			return al_error_set(
			    err, EBADMSG,
			    "line %" PRIu64 ": not an audit record (a field is missing)", lineno);
		if (!self_hash_ok(line, llen))
			return al_error_set(err, EBADMSG,
			                    "line %" PRIu64
			                    ": record was edited (its hash does not match "
			                    "its content)",
			                    lineno);
		if (seq->valuedouble != (double)lineno)
			return al_error_set(
			    err, EBADMSG,
			    "line %" PRIu64 ": seq %.0f where %" PRIu64
			    " was expected (a record was deleted, inserted or reordered)",
			    lineno, seq->valuedouble, lineno);
		if (strcmp(pv->valuestring, prev))
			return al_error_set(
			    err, EBADMSG,
			    "line %" PRIu64 ": prev does not match the hash of line %" PRIu64
			    " (a record was edited, deleted, inserted or reordered)",
			    lineno, lineno - 1);
		al_sha256_hex(line, llen, line_hash);
		memcpy(prev, line_hash, sizeof(prev));
	}
	/* The head catches what the chain cannot: records cut off the end. */
	r = al_read_file(head_path, 4096, &head_text, NULL, err);
	if (r < 0)
		return al_error_set(err, EBADMSG, "line %" PRIu64 ": %s is missing or unreadable",
		                    lineno + 1, AL_AUDIT_HEAD_FILE);
	head = cJSON_Parse(head_text);
	hseq = cJSON_GetObjectItemCaseSensitive(head, "seq");
	hsha = cJSON_GetObjectItemCaseSensitive(head, "sha256");
	if (!cJSON_IsNumber(hseq) || !cJSON_IsString(hsha))
		return al_error_set(err, EBADMSG, "%s is not valid", AL_AUDIT_HEAD_FILE);
	if (hseq->valuedouble > (double)lineno)
		return al_error_set(err, EBADMSG,
		                    "line %" PRIu64 ": missing (%s records %.0f records; records "
		                    "were deleted at the end)",
		                    lineno + 1, AL_AUDIT_HEAD_FILE, hseq->valuedouble);
	if (hseq->valuedouble < (double)lineno)
		return al_error_set(
		    err, EBADMSG, "line %.0f: not written by the harness (%s ends at record %.0f)",
		    hseq->valuedouble + 1, AL_AUDIT_HEAD_FILE, hseq->valuedouble);
	if (lineno > 0 && strcmp(hsha->valuestring, prev))
		return al_error_set(err, EBADMSG,
		                    "line %" PRIu64
		                    ": does not match the hash in %s (the last record "
		                    "was replaced)",
		                    lineno, AL_AUDIT_HEAD_FILE);
	*records = lineno;
	return 0;
}
