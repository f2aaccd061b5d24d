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

/* Where the chain stands after the records in data[0..len) (each ending in '\n'). */
static void chain_tail(const char *data, size_t len, uint64_t *seq, char prev[65])
{
	size_t start;
	const char *s;

	*seq = 0;
	strcpy(prev, ZERO_HASH);
	if (len == 0)
		return;
	start = len - 1;
	while (start > 0 && data[start - 1] != '\n')
		start--;
	al_sha256_hex(data + start, len - 1 - start, prev);
	s = memmem(data + start, len - start, "{\"seq\":", 7);
	*seq = s ? strtoull(s + 7, NULL, 10) : 0;
}

int al_audit_open_store(struct al_audit *a, struct al_run_store *store, struct al_error *err)
{
	_cleanup_free_ char *data = NULL;
	size_t len = 0;
	int r;

	memset(a, 0, sizeof(*a));
	strcpy(a->prev, ZERO_HASH);
	a->store = store;
	r = store->ops->audit_load(store, &data, &len, err);
	if (r < 0)
		return r;
	chain_tail(data, len, &a->seq, a->prev);
	/* Keep the head in step with the records, whatever a crash left between the two. */
	if (len > 0 && store->ops->audit_sync_head)
		return store->ops->audit_sync_head(store, a->seq, a->prev, err);
	return 0;
}

int al_audit_open(struct al_audit *a, const char *dir, struct al_error *err)
{
	struct al_run_store *store = NULL;
	int r = al_run_store_dir_open(dir, &store, err);

	if (r < 0)
		return r;
	r = al_audit_open_store(a, store, err);
	a->store = store;
	a->own_store = true;
	return r;
}

void al_audit_close(struct al_audit *a)
{
	if (a->own_store)
		al_run_store_free(a->store);
	a->store = NULL;
	a->own_store = false;
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
	al_sha256_hex(line, (size_t)n - 1, hash);
	r = a->store->ops->audit_append(a->store, a->seq + 1, line, (size_t)n, hash, err);
	if (r < 0)
		return r;
	a->seq++;
	memcpy(a->prev, hash, sizeof(a->prev));
	al_killpoint();
	return 0;
}

int al_audit_count(struct al_audit *a, const char *kind, const char *key, const char *value,
                   struct al_error *err)
{
	_cleanup_free_ char *data = NULL;
	size_t len = 0;
	int n = 0, r;

	r = a->store->ops->audit_load(a->store, &data, &len, err);
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

static int verify_records(struct al_run_store *store, const char *data, size_t len,
                          uint64_t *records, struct al_error *err);

int al_audit_verify(const char *dir, uint64_t *records, struct al_error *err)
{
	_cleanup_(al_run_store_freep) struct al_run_store *store = NULL;
	_cleanup_free_ char *path = NULL;
	_cleanup_free_ char *data = NULL;
	size_t len = 0;
	int r;

	/* Read-only: the records as they are, a torn end included (which verify names). */
	if (asprintf(&path, "%s/" AL_AUDIT_FILE, dir) < 0)
		return al_error_set(err, ENOMEM, "out of memory");
	r = al_read_file(path, MAX_AUDIT_BYTES, &data, &len, err);
	if (r < 0)
		return r;
	r = al_run_store_dir_open(dir, &store, err);
	if (r < 0)
		return r;
	return verify_records(store, data, len, records, err);
}

int al_audit_verify_store(struct al_run_store *store, uint64_t *records, struct al_error *err)
{
	_cleanup_free_ char *data = NULL;
	size_t len = 0;
	uint64_t seq;
	char sha[65];
	/* A run the store does not have is not a broken trail. */
	int r = store->ops->audit_head(store, &seq, sha, err);

	if (r == -ENOENT)
		return r;
	r = store->ops->audit_load(store, &data, &len, err);
	if (r < 0)
		return r;
	return verify_records(store, data, len, records, err);
}

static int verify_records(struct al_run_store *store, const char *data, size_t len,
                          uint64_t *records, struct al_error *err)
{
	char prev[65] = ZERO_HASH, line_hash[65], head_sha[65];
	size_t pos = 0;
	uint64_t lineno = 0, head_seq = 0;
	int r = 0;

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
	r = store->ops->audit_head(store, &head_seq, head_sha, err);
	if (r == -EBADMSG)
		return r;
	if (r < 0)
		return al_error_set(err, EBADMSG, "line %" PRIu64 ": %s is missing or unreadable",
		                    lineno + 1, AL_AUDIT_HEAD_FILE);
	if (head_seq > lineno)
		return al_error_set(err, EBADMSG,
		                    "line %" PRIu64 ": missing (%s records %" PRIu64
		                    " records; records were deleted at the end)",
		                    lineno + 1, AL_AUDIT_HEAD_FILE, head_seq);
	if (head_seq < lineno)
		return al_error_set(err, EBADMSG,
		                    "line %" PRIu64 ": not written by the harness (%s ends at "
		                    "record %" PRIu64 ")",
		                    head_seq + 1, AL_AUDIT_HEAD_FILE, head_seq);
	if (lineno > 0 && strcmp(head_sha, prev))
		return al_error_set(err, EBADMSG,
		                    "line %" PRIu64
		                    ": does not match the hash in %s (the last record "
		                    "was replaced)",
		                    lineno, AL_AUDIT_HEAD_FILE);
	*records = lineno;
	return 0;
}
