/* SPDX-License-Identifier: Apache-2.0 */
/*
 * A run's records in PostgreSQL (schema: db_schema.c).  Every write is one statement
 * whose WHERE clause holds the fence: the run's lease generation is still ours and the
 * lease has not expired.  A worker paused or cut off past its lease therefore records
 * nothing once it comes back, whatever it was doing; the worker that took the run over
 * resumes from what is recorded, as `resume` does from a run directory.
 */
#include "runstore_pg.h"

#include "audit.h"
#include "cleanup.h"
#include "json.h"
#include "util.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define FENCE "run_id = $1 AND lease_gen = $2 AND lease_expires > clock_timestamp()"

/* One fenced write: it must change exactly one row. */
struct stmt {
	const char *what;
	const char *sql;
	int n;
	char *params[5];
	bool audit; /* an audit record: params[2] its seq, params[3] its line */
};

#define MAX_BATCH 4

struct pg_store {
	struct al_run_store base;
	struct al_db *db;
	char *run_id;
	char gen[24];
	char tag[32]; /* "-g<gen>": archive names (runstore.h) */
	/* Between begin and end, writes wait here and go in one transaction. */
	bool batching;
	struct stmt batch[MAX_BATCH];
	int nbatch;
};

static void stmt_clear(struct stmt *st)
{
	for (int i = 0; i < st->n; i++)
		free(st->params[i]);
	memset(st, 0, sizeof(*st));
}

/* A structured line on stderr: the worker's log takes the child's stderr as it is. */
static int refused(struct pg_store *p, const char *what, struct al_error *err)
{
	_cleanup_cjson_ cJSON *j = cJSON_CreateObject();
	_cleanup_free_ char *line = NULL;
	char ts[32];

	p->base.lease_lost = true;
	al_audit_timestamp(ts);
	cJSON_AddStringToObject(j, "ts", ts);
	cJSON_AddStringToObject(j, "level", "warn");
	cJSON_AddStringToObject(j, "event", "write_refused");
	cJSON_AddStringToObject(j, "run_id", p->run_id);
	cJSON_AddNumberToObject(j, "lease_gen", strtod(p->gen, NULL));
	cJSON_AddStringToObject(j, "write", what);
	cJSON_AddStringToObject(j, "reason", "the run's lease is no longer held by this worker");
	line = cJSON_PrintUnformatted(j);
	if (line)
		fprintf(stderr, "%s\n", line);
	return al_error_set(err, ESTALE,
	                    "run %s: lease generation %s is no longer held; %s not recorded",
	                    p->run_id, p->gen, what);
}

/* Did an earlier attempt, whose answer the lost connection took, write this record? */
static int audit_written(struct pg_store *p, const struct stmt *st, bool *yes, struct al_error *err)
{
	_cleanup_pgresult_ PGresult *res = NULL;
	const char *params[] = {p->run_id, st->params[2], st->params[3]};
	int rc = al_db_exec(
	    p->db, "SELECT 1 FROM airlock_audit WHERE run_id = $1 AND seq = $2 AND line = $3", 3,
	    params, NULL, NULL, 0, &res, err);

	if (rc < 0)
		return rc;
	*yes = PQntuples(res) == 1;
	return 0;
}

/* Send sts once, in one transaction when more than one: 0 done, 1 refused (rolled back,
 * *refused_at: which), -EPIPE connection lost, < 0 other errors. */
static int try_once(struct pg_store *p, struct stmt *sts, int n, int *refused_at,
                    struct al_error *err)
{
	int rc;

	if (n > 1 && (rc = al_db_exec_once(p->db, "BEGIN", 0, NULL, NULL, NULL, 0, NULL, err)) < 0)
		return rc;
	for (int i = 0; i < n; i++) {
		_cleanup_pgresult_ PGresult *res = NULL;

		rc = al_db_exec_once(p->db, sts[i].sql, sts[i].n,
		                     (const char *const *)sts[i].params, NULL, NULL, 0, &res, err);
		if (rc == 0 && al_db_rows(res) == 1)
			continue;
		if (rc != -EPIPE && n > 1)
			al_db_exec_once(p->db, "ROLLBACK", 0, NULL, NULL, NULL, 0, NULL,
			                &(struct al_error){0});
		if (rc < 0)
			return rc;
		*refused_at = i;
		return 1;
	}
	if (n > 1)
		return al_db_exec_once(p->db, "COMMIT", 0, NULL, NULL, NULL, 0, NULL, err);
	return 0;
}

/* Write sts, all or none, fenced by the lease; reconnects and sends them again whole. */
static int write_all(struct pg_store *p, struct stmt *sts, int n, struct al_error *err)
{
	uint64_t deadline = al_now_ms() + p->db->reconnect_ms;
	int at = 0, rc;

	if (p->base.lease_lost || !strcmp(p->gen, "0"))
		return refused(p, sts[0].what, err);
	for (;;) {
		rc = try_once(p, sts, n, &at, err);
		if (rc == -EPIPE) {
			if ((rc = al_db_reconnect(p->db, deadline, err)) < 0)
				break;
			continue;
		}
		break;
	}
	if (rc == 1) {
		/* Sent again after a reconnect: the first attempt may have been the one
		 * (its audit record is there, and being one transaction, all of it). */
		for (int i = 0; i < n; i++) {
			bool yes = false;
			if (!sts[i].audit)
				continue;
			if ((rc = audit_written(p, &sts[i], &yes, err)) < 0)
				return al_error_prefix(err, "record %s of run %s", sts[at].what,
				                       p->run_id);
			return yes ? 0 : refused(p, sts[at].what, err);
		}
		return refused(p, sts[at].what, err);
	}
	return rc < 0 ? al_error_prefix(err, "record %s of run %s", sts[at].what, p->run_id) : 0;
}

/* A write now, or at the end of the batch. */
static int submit(struct pg_store *p, struct stmt *st, struct al_error *err)
{
	int rc;

	if (p->batching) {
		if (p->nbatch == MAX_BATCH) {
			stmt_clear(st);
			return al_error_set(err, E2BIG, "too many writes in one transaction");
		}
		p->batch[p->nbatch++] = *st;
		return 0;
	}
	rc = write_all(p, st, 1, err);
	stmt_clear(st);
	return rc;
}

static int pg_begin(struct al_run_store *s, struct al_error *err)
{
	struct pg_store *p = (struct pg_store *)s;

	(void)err;
	p->batching = true;
	return 0;
}

static int pg_end(struct al_run_store *s, bool commit, struct al_error *err)
{
	struct pg_store *p = (struct pg_store *)s;
	int rc = 0;

	p->batching = false;
	if (commit && p->nbatch > 0)
		rc = write_all(p, p->batch, p->nbatch, err);
	for (int i = 0; i < p->nbatch; i++)
		stmt_clear(&p->batch[i]);
	p->nbatch = 0;
	return rc;
}

static int pg_state_load(struct al_run_store *s, char **text, size_t *len, struct al_error *err)
{
	struct pg_store *p = (struct pg_store *)s;
	const char *params[] = {p->run_id};
	_cleanup_pgresult_ PGresult *res = NULL;
	int rc = al_db_exec(p->db, "SELECT state FROM airlock_runs WHERE run_id = $1", 1, params,
	                    NULL, NULL, 0, &res, err);

	if (rc < 0)
		return rc;
	if (PQntuples(res) != 1)
		return al_error_set(err, ENOENT, "no run %s in the database", p->run_id);
	if (PQgetisnull(res, 0, 0))
		return al_error_set(err, ENOENT, "run %s has no RunState yet", p->run_id);
	*len = (size_t)PQgetlength(res, 0, 0);
	*text = strndup(PQgetvalue(res, 0, 0), *len);
	return *text ? 0 : al_error_set(err, ENOMEM, "out of memory");
}

static int pg_state_save(struct al_run_store *s, const char *text, size_t len, struct al_error *err)
{
	struct pg_store *p = (struct pg_store *)s;
	struct stmt st = {
	    .what = "RunState", .sql = "UPDATE airlock_runs SET state = $3 WHERE " FENCE, .n = 3};

	st.params[0] = strdup(p->run_id);
	st.params[1] = strdup(p->gen);
	st.params[2] = strndup(text, len);
	if (!st.params[0] || !st.params[1] || !st.params[2]) {
		stmt_clear(&st);
		return al_error_set(err, ENOMEM, "out of memory");
	}
	return submit(p, &st, err);
}

static int pg_audit_load(struct al_run_store *s, char **data, size_t *len, struct al_error *err)
{
	struct pg_store *p = (struct pg_store *)s;
	const char *params[] = {p->run_id};
	_cleanup_pgresult_ PGresult *res = NULL;
	int rc = al_db_exec(p->db,
	                    "SELECT coalesce(string_agg(line, '' ORDER BY seq), '') FROM "
	                    "airlock_audit WHERE run_id = $1",
	                    1, params, NULL, NULL, 0, &res, err);

	if (rc < 0)
		return rc;
	*len = (size_t)PQgetlength(res, 0, 0);
	*data = strndup(PQgetvalue(res, 0, 0), *len);
	return *data ? 0 : al_error_set(err, ENOMEM, "out of memory");
}

static int pg_audit_head(struct al_run_store *s, uint64_t *seq, char sha[65], struct al_error *err)
{
	struct pg_store *p = (struct pg_store *)s;
	const char *params[] = {p->run_id};
	_cleanup_pgresult_ PGresult *res = NULL;
	int rc =
	    al_db_exec(p->db, "SELECT audit_seq, audit_head FROM airlock_runs WHERE run_id = $1", 1,
	               params, NULL, NULL, 0, &res, err);

	if (rc < 0)
		return rc;
	if (PQntuples(res) != 1)
		return al_error_set(err, ENOENT, "no run %s in the database", p->run_id);
	if (PQgetlength(res, 0, 1) != 64)
		return al_error_set(err, EBADMSG, "the audit head of run %s is not valid",
		                    p->run_id);
	*seq = strtoull(PQgetvalue(res, 0, 0), NULL, 10);
	memcpy(sha, PQgetvalue(res, 0, 1), 65);
	return 0;
}

static int pg_audit_append(struct al_run_store *s, uint64_t seq, const char *line, size_t len,
                           const char *line_sha, struct al_error *err)
{
	struct pg_store *p = (struct pg_store *)s;
	/* Record and head move together, and only from the head this worker saw. */
	struct stmt st = {.what = "audit record",
	                  .sql = "WITH head AS (UPDATE airlock_runs SET audit_seq = $3,"
	                         "  audit_head = $5 WHERE " FENCE " AND audit_seq = $3::bigint - 1"
	                         "  RETURNING run_id)"
	                         " INSERT INTO airlock_audit (run_id, seq, line)"
	                         " SELECT run_id, $3, $4 FROM head",
	                  .n = 5,
	                  .audit = true};

	st.params[0] = strdup(p->run_id);
	st.params[1] = strdup(p->gen);
	if (asprintf(&st.params[2], "%" PRIu64, seq) < 0)
		st.params[2] = NULL;
	st.params[3] = strndup(line, len);
	st.params[4] = strdup(line_sha);
	for (int i = 0; i < 5; i++)
		if (!st.params[i]) {
			stmt_clear(&st);
			return al_error_set(err, ENOMEM, "out of memory");
		}
	return submit(p, &st, err);
}

static int pg_file_write(struct al_run_store *s, const char *name, const char *data, size_t len,
                         struct al_error *err)
{
	struct pg_store *p = (struct pg_store *)s;
	const char *params[] = {p->run_id, p->gen, name, data};
	const int lengths[] = {0, 0, 0, (int)len};
	const int binary[] = {0, 0, 0, 1};
	_cleanup_pgresult_ PGresult *res = NULL;
	int rc;

	if (len > INT32_MAX)
		return al_error_set(err, EFBIG, "%s of run %s is too large", name, p->run_id);
	if (p->base.lease_lost || !strcmp(p->gen, "0"))
		return refused(p, name, err);
	/* Idempotent: sent again after a reconnect as it is. */
	rc = al_db_exec(p->db,
	                "INSERT INTO airlock_run_files (run_id, name, content)"
	                " SELECT run_id, $3, $4 FROM airlock_runs WHERE " FENCE
	                " ON CONFLICT (run_id, name) DO UPDATE SET content = EXCLUDED.content",
	                4, params, lengths, binary, 0, &res, err);
	if (rc < 0)
		return al_error_prefix(err, "record %s of run %s", name, p->run_id);
	return al_db_rows(res) == 1 ? 0 : refused(p, name, err);
}

static int pg_file_read(struct al_run_store *s, const char *name, char **data, size_t *len,
                        struct al_error *err)
{
	struct pg_store *p = (struct pg_store *)s;
	const char *params[] = {p->run_id, name};
	_cleanup_pgresult_ PGresult *res = NULL;
	int rc = al_db_exec(p->db,
	                    "SELECT content FROM airlock_run_files WHERE run_id = $1 AND name = $2",
	                    2, params, NULL, NULL, 1, &res, err);

	if (rc < 0)
		return rc;
	if (PQntuples(res) != 1)
		return al_error_set(err, ENOENT, "run %s has no %s in the database", p->run_id,
		                    name);
	*len = (size_t)PQgetlength(res, 0, 0);
	*data = malloc(*len + 1);
	if (!*data)
		return al_error_set(err, ENOMEM, "out of memory");
	memcpy(*data, PQgetvalue(res, 0, 0), *len);
	(*data)[*len] = '\0';
	return 0;
}

static void pg_free(struct al_run_store *s)
{
	struct pg_store *p = (struct pg_store *)s;

	for (int i = 0; i < p->nbatch; i++)
		stmt_clear(&p->batch[i]);
	free(p->run_id);
}

static const struct al_run_store_ops pg_ops = {
    .name = "postgresql",
    .state_load = pg_state_load,
    .state_save = pg_state_save,
    .audit_load = pg_audit_load,
    .audit_head = pg_audit_head,
    .audit_append = pg_audit_append,
    .file_write = pg_file_write,
    .file_read = pg_file_read,
    .begin = pg_begin,
    .end = pg_end,
    .free = pg_free,
};

int al_run_store_pg_open(struct al_db *db, const char *run_id, long long lease_gen, const char *dir,
                         struct al_run_store **out, struct al_error *err)
{
	struct pg_store *p = calloc(1, sizeof(*p));

	if (!p || !(p->run_id = strdup(run_id)) || !(p->base.dir = strdup(dir))) {
		if (p)
			free(p->run_id);
		free(p);
		return al_error_set(err, ENOMEM, "out of memory");
	}
	p->base.ops = &pg_ops;
	p->db = db;
	snprintf(p->gen, sizeof(p->gen), "%lld", lease_gen);
	snprintf(p->tag, sizeof(p->tag), "-g%lld", lease_gen);
	p->base.archive_tag = p->tag;
	*out = &p->base;
	return 0;
}
