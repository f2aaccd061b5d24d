/* SPDX-License-Identifier: Apache-2.0 */
#include "db.h"

#include "cleanup.h"
#include "log.h"
#include "util.h"

#include <errno.h>
#include <poll.h>
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

/* A new server session forgot what the old one listened to. */
static bool relisten(struct al_db *db)
{
	_cleanup_free_ char *sql = NULL;
	char *quoted;
	PGresult *res;
	bool ok;

	if (!db->channel)
		return true;
	quoted = PQescapeIdentifier(db->conn, db->channel, strlen(db->channel));
	if (!quoted)
		return false;
	if (asprintf(&sql, "LISTEN %s", quoted) < 0)
		sql = NULL;
	PQfreemem(quoted);
	if (!sql)
		return false;
	res = PQexec(db->conn, sql);
	ok = PQresultStatus(res) == PGRES_COMMAND_OK;
	PQclear(res);
	return ok;
}

/* Try to get a working connection back until the deadline. */
static bool reconnect(struct al_db *db, uint64_t deadline)
{
	bool said = false;

	for (;;) {
		PQreset(db->conn);
		if (PQstatus(db->conn) == CONNECTION_OK && relisten(db)) {
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

int al_db_listen(struct al_db *db, const char *channel, struct al_error *err)
{
	db->channel = channel;
	if (relisten(db))
		return 0;
	return pq_error(err, EIO, "listen on the database", PQerrorMessage(db->conn));
}

/* Read what the server sent (libpq's socket never blocks): 1 when it held a
 * notification, all of them consumed, else 0. */
static int take_notifies(struct al_db *db, struct al_error *err)
{
	bool any = false;
	PGnotify *n;

	if (PQconsumeInput(db->conn) == 0)
		return pq_error(err, EPIPE, "read from the database", PQerrorMessage(db->conn));
	while ((n = PQnotifies(db->conn))) {
		any = true;
		PQfreemem(n);
	}
	return any;
}

int al_db_wait_notify(struct al_db *db, int timeout_ms, struct al_error *err)
{
	struct pollfd p = {.fd = PQsocket(db->conn), .events = POLLIN};
	int r;

	if (p.fd < 0)
		return al_error_set(err, EPIPE, "the database connection is closed");
	/* One may already be in libpq's buffer, read along with a result. */
	r = take_notifies(db, err);
	if (r != 0)
		return r;
	if (poll(&p, 1, timeout_ms) < 0 && errno != EINTR)
		return al_error_errno(err, "poll the database connection");
	return p.revents ? take_notifies(db, err) : 0;
}
