/* SPDX-License-Identifier: Apache-2.0 */
#include "db.h"

#include "cleanup.h"
#include "log.h"
#include "util.h"

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define DEFAULT_RECONNECT_MS (60 * 1000)
#define RECONNECT_PAUSE_US (250 * 1000)

/* libpq's messages end in a newline; ours do not. */
static int pq_error(struct al_error *err, int code, const char *what, const char *msg)
{
	size_t n;

	/* libpq's continuation lines are hints; the first line says it. */
	n = strcspn(msg, "\n");
	return al_error_set(err, code, "%s: %.*s", what, (int)n, msg);
}

/* The server's notices (a migration's "already exists, skipping") are for debugging. */
static void on_notice(void *arg, const char *msg)
{
	(void)arg;
	log_debug("database: %.*s", (int)strcspn(msg, "\n"), msg);
}

static PGconn *open_conn(struct al_db *db)
{
	const char *keys[] = {"dbname", "application_name", "connect_timeout", NULL};
	const char *vals[] = {db->url, db->who ? db->who : "airlock-harness", "10", NULL};

	/* expand_dbname: the URL (or key=value string) gives everything else. */
	return PQconnectdbParams(keys, vals, 1);
}

int al_db_connect(struct al_db *db, const char *url, const char *who, struct al_error *err)
{
	memset(db, 0, sizeof(*db));
	db->reconnect_ms = DEFAULT_RECONNECT_MS;
	db->who = who;
	db->url = strdup(url);
	if (!db->url)
		return al_error_set(err, ENOMEM, "out of memory");
	db->conn = open_conn(db);
	if (!db->conn)
		return al_error_set(err, ENOMEM, "out of memory");
	PQsetNoticeProcessor(db->conn, on_notice, NULL);
	if (PQstatus(db->conn) != CONNECTION_OK)
		return pq_error(err, ECONNREFUSED, "connect to the database",
		                PQerrorMessage(db->conn));
	return 0;
}

void al_db_close(struct al_db *db)
{
	if (db->conn)
		PQfinish(db->conn);
	db->conn = NULL;
	free(db->url);
	db->url = NULL;
}

/* Try to get a working connection back until the deadline. */
static bool reconnect(struct al_db *db, uint64_t deadline)
{
	bool said = false;

	for (;;) {
		PQreset(db->conn);
		if (PQstatus(db->conn) == CONNECTION_OK) {
			if (said)
				log_info("database connection is back");
			return true;
		}
		if (!said) {
			const char *m = PQerrorMessage(db->conn);
			log_warn("database connection lost, reconnecting: %.*s",
			         (int)strcspn(m, "\n"), m);
			said = true;
		}
		if (al_now_ms() >= deadline)
			return false;
		usleep(RECONNECT_PAUSE_US);
	}
}

int al_db_exec_once(struct al_db *db, const char *sql, int nparams, const char *const *params,
                    const int *lengths, const int *binary, int binary_result, PGresult **res,
                    struct al_error *err)
{
	PGresult *r =
	    PQexecParams(db->conn, sql, nparams, NULL, params, lengths, binary, binary_result);
	ExecStatusType st = r ? PQresultStatus(r) : PGRES_FATAL_ERROR;
	int rc;

	if (res)
		*res = NULL;
	if (st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK) {
		if (res)
			*res = r;
		else
			PQclear(r);
		return 0;
	}
	if (PQstatus(db->conn) == CONNECTION_OK)
		rc = pq_error(err, EIO, "database",
		              r ? PQresultErrorMessage(r) : PQerrorMessage(db->conn));
	else
		rc = pq_error(err, EPIPE, "database connection lost", PQerrorMessage(db->conn));
	PQclear(r);
	return rc;
}

int al_db_reconnect(struct al_db *db, uint64_t deadline, struct al_error *err)
{
	if (reconnect(db, deadline))
		return 0;
	return pq_error(err, ECONNREFUSED, "database unreachable", PQerrorMessage(db->conn));
}

int al_db_exec(struct al_db *db, const char *sql, int nparams, const char *const *params,
               const int *lengths, const int *binary, int binary_result, PGresult **res,
               struct al_error *err)
{
	uint64_t deadline = al_now_ms() + db->reconnect_ms;

	for (;;) {
		int rc = al_db_exec_once(db, sql, nparams, params, lengths, binary, binary_result,
		                         res, err);

		if (rc != -EPIPE)
			return rc;
		if ((rc = al_db_reconnect(db, deadline, err)) < 0)
			return rc;
	}
}

long al_db_rows(PGresult *res)
{
	const char *n = PQcmdTuples(res);

	if (PQresultStatus(res) == PGRES_TUPLES_OK)
		return PQntuples(res);
	return n && *n ? strtol(n, NULL, 10) : 0;
}
