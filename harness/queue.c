/* SPDX-License-Identifier: Apache-2.0 */
#include "queue.h"

#include "cleanup.h"
#include "util.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

void al_claim_clear(struct al_claim *c)
{
	free(c->run_id);
	memset(c, 0, sizeof(*c));
}

int al_queue_submit(struct al_db *db, const char *task_text, const char *task_dir, char run_id[40],
                    struct al_error *err)
{
	char hex[13];
	time_t now = time(NULL);
	struct tm tm;
	const char *params[] = {run_id, task_text, task_dir};
	int rc = al_random_hex(hex, 12, err);

	if (rc < 0)
		return rc;
	gmtime_r(&now, &tm);
	strftime(run_id, 40, "%Y%m%d-%H%M%S", &tm);
	strcat(run_id, "-");
	strcat(run_id, hex);
	/* The notification goes out when the insert commits, in the same statement. */
	return al_db_exec(db,
	                  "WITH r AS (INSERT INTO airlock_runs (run_id, task, task_dir)"
	                  "  VALUES ($1, $2, $3) RETURNING run_id)"
	                  " SELECT pg_notify('" AL_QUEUE_CHANNEL "', run_id) FROM r",
	                  3, params, NULL, NULL, 0, NULL, err);
}

int al_queue_claim(struct al_db *db, const char *worker, long lease_ms, struct al_claim *c,
                   struct al_error *err)
{
	_cleanup_pgresult_ PGresult *res = NULL;
	char ms[24];
	const char *params[] = {worker, ms};
	int rc;

	snprintf(ms, sizeof(ms), "%ld", lease_ms);
	/* SKIP LOCKED: workers claiming together each get a different row, none waits. */
	rc = al_db_exec(
	    db,
	    "UPDATE airlock_runs r SET status = 'running', lease_gen = r.lease_gen + 1,"
	    "  leased_by = $1, attempts = r.attempts + 1,"
	    "  lease_expires = clock_timestamp() + $2::bigint * interval '1 millisecond',"
	    "  started_at = coalesce(r.started_at, clock_timestamp())"
	    " FROM (SELECT run_id FROM airlock_runs"
	    "   WHERE status = 'queued'"
	    "      OR (status = 'running' AND lease_expires < clock_timestamp())"
	    "   ORDER BY submitted_at LIMIT 1 FOR UPDATE SKIP LOCKED) pick"
	    " WHERE r.run_id = pick.run_id"
	    " RETURNING r.run_id, r.lease_gen, r.attempts, r.cancel_requested,"
	    "  extract(epoch FROM clock_timestamp() - r.submitted_at)",
	    2, params, NULL, NULL, 0, &res, err);
	if (rc < 0)
		return rc;
	if (PQntuples(res) != 1)
		return 0;
	c->run_id = strdup(PQgetvalue(res, 0, 0));
	if (!c->run_id)
		return al_error_set(err, ENOMEM, "out of memory");
	c->lease_gen = strtoll(PQgetvalue(res, 0, 1), NULL, 10);
	c->attempts = atoi(PQgetvalue(res, 0, 2));
	c->cancel = PQgetvalue(res, 0, 3)[0] == 't';
	c->queued_seconds = strtod(PQgetvalue(res, 0, 4), NULL);
	return 1;
}

int al_queue_give_up(struct al_db *db, int max_attempts,
                     void (*on_failed)(void *ctx, const char *run_id, int attempts), void *ctx,
                     struct al_error *err)
{
	_cleanup_pgresult_ PGresult *res = NULL;
	char max[24];
	const char *params[] = {max};
	int rc;

	if (max_attempts <= 0)
		return 0;
	snprintf(max, sizeof(max), "%d", max_attempts);
	/* lease_gen moves on: a late executor of the last attempt is fenced off as after
	 * a take-over. */
	rc = al_db_exec(db,
	                "UPDATE airlock_runs SET status = 'failed', lease_gen = lease_gen + 1,"
	                "  finished_at = clock_timestamp(), lease_expires = NULL, leased_by = NULL,"
	                "  error = format('gave up after %s attempts: the executor died or lost "
	                "its lease each time', attempts)"
	                " WHERE status = 'running' AND lease_expires < clock_timestamp()"
	                "   AND attempts >= $1::integer"
	                " RETURNING run_id, attempts",
	                1, params, NULL, NULL, 0, &res, err);
	if (rc < 0)
		return rc;
	for (int i = 0; i < PQntuples(res); i++)
		if (on_failed)
			on_failed(ctx, PQgetvalue(res, i, 0), atoi(PQgetvalue(res, i, 1)));
	return PQntuples(res);
}

int al_queue_renew(struct al_db *db, const char *run_id, long long gen, long lease_ms, bool *cancel,
                   struct al_error *err)
{
	_cleanup_pgresult_ PGresult *res = NULL;
	char g[24], ms[24];
	const char *params[] = {run_id, g, ms};
	int rc;

	snprintf(g, sizeof(g), "%lld", gen);
	snprintf(ms, sizeof(ms), "%ld", lease_ms);
	/* The generation alone decides: a lease that ran out but was not taken is still ours
	 * to extend (nothing was recorded meanwhile: writes check the expiry too). */
	rc = al_db_exec(db,
	                "UPDATE airlock_runs SET lease_expires = clock_timestamp() +"
	                "  $3::bigint * interval '1 millisecond'"
	                " WHERE run_id = $1 AND lease_gen = $2 AND status = 'running'"
	                " RETURNING cancel_requested",
	                3, params, NULL, NULL, 0, &res, err);
	if (rc < 0)
		return rc;
	if (PQntuples(res) != 1)
		return 0;
	*cancel = PQgetvalue(res, 0, 0)[0] == 't';
	return 1;
}

int al_queue_finish(struct al_db *db, const char *run_id, long long gen, const char *status,
                    struct al_error *err)
{
	_cleanup_pgresult_ PGresult *res = NULL;
	char g[24];
	const char *params[] = {run_id, g, status};
	int rc;

	snprintf(g, sizeof(g), "%lld", gen);
	rc = al_db_exec(db,
	                "UPDATE airlock_runs SET status = $3, finished_at = clock_timestamp(),"
	                "  lease_expires = NULL, leased_by = NULL,"
	                "  error = CASE WHEN $3 = 'failed' THEN state::jsonb ->> 'error' END"
	                " WHERE run_id = $1 AND lease_gen = $2 AND status = 'running'",
	                3, params, NULL, NULL, 0, &res, err);
	return rc < 0 ? rc : al_db_rows(res) == 1;
}

int al_queue_release(struct al_db *db, const char *run_id, long long gen, struct al_error *err)
{
	char g[24];
	const char *params[] = {run_id, g};

	snprintf(g, sizeof(g), "%lld", gen);
	/* Released: claimable at once, and said so. */
	return al_db_exec(db,
	                  "WITH r AS (UPDATE airlock_runs SET lease_expires = clock_timestamp(),"
	                  "  leased_by = NULL WHERE run_id = $1 AND lease_gen = $2 AND "
	                  "  status = 'running' RETURNING run_id)"
	                  " SELECT pg_notify('" AL_QUEUE_CHANNEL "', run_id) FROM r",
	                  2, params, NULL, NULL, 0, NULL, err);
}

int al_queue_give_back(struct al_db *db, const char *run_id, long long gen, struct al_error *err)
{
	char g[24];
	const char *params[] = {run_id, g};

	snprintf(g, sizeof(g), "%lld", gen);
	return al_db_exec(db,
	                  "UPDATE airlock_runs SET lease_expires = clock_timestamp(),"
	                  "  leased_by = NULL, attempts = greatest(attempts - 1, 0)"
	                  " WHERE run_id = $1 AND lease_gen = $2 AND status = 'running'",
	                  2, params, NULL, NULL, 0, NULL, err);
}

int al_queue_cancel(struct al_db *db, const char *run_id, const char **status, struct al_error *err)
{
	_cleanup_pgresult_ PGresult *res = NULL;
	const char *params[] = {run_id};
	const char *now;
	int rc =
	    al_db_exec(db,
	               "UPDATE airlock_runs SET cancel_requested = true,"
	               "  status = CASE WHEN status = 'queued' THEN 'cancelled' ELSE status END,"
	               "  finished_at = CASE WHEN status = 'queued' THEN clock_timestamp()"
	               "    ELSE finished_at END"
	               " WHERE run_id = $1 RETURNING status",
	               1, params, NULL, NULL, 0, &res, err);

	if (rc < 0)
		return rc;
	if (PQntuples(res) != 1)
		return al_error_set(err, ENOENT, "no run %s in the database", run_id);
	now = PQgetvalue(res, 0, 0);
	*status = !strcmp(now, "cancelled")   ? "cancelled"
	          : !strcmp(now, "running")   ? "running"
	          : !strcmp(now, "completed") ? "completed"
	                                      : "failed";
	return 0;
}

int al_queue_counts(struct al_db *db, long *queued, long *running, struct al_error *err)
{
	_cleanup_pgresult_ PGresult *res = NULL;
	int rc = al_db_exec(db,
	                    "SELECT count(*) FILTER (WHERE status = 'queued'),"
	                    "  count(*) FILTER (WHERE status = 'running') FROM airlock_runs",
	                    0, NULL, NULL, NULL, 0, &res, err);

	if (rc < 0)
		return rc;
	*queued = strtol(PQgetvalue(res, 0, 0), NULL, 10);
	*running = strtol(PQgetvalue(res, 0, 1), NULL, 10);
	return 0;
}
