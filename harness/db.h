/* SPDX-License-Identifier: Apache-2.0 */
#pragma once

/*
 * The harness's PostgreSQL connection (libpq): statements with parameters, and a
 * reconnect when the server went away (restarted, failed over) that keeps trying for
 * a while instead of failing the run.  The schema and its migrations: db_schema.c.
 */

#include <libpq-fe.h>
#include <stdint.h>

#include "error.h"

struct al_db {
	PGconn *conn;
	char *url;
	/* How long a statement keeps trying to reconnect before it fails. */
	uint64_t reconnect_ms;
	/* The application_name it shows in pg_stat_activity. */
	const char *who;
	/* A channel this connection LISTENs on, again after every reconnect (al_db_listen). */
	const char *channel;
};

int al_db_connect(struct al_db *db, const char *url, const char *who, struct al_error *err);
void al_db_close(struct al_db *db);

/*
 * One statement with text parameters (lengths/binary: NULL for text; binary_result for a
 * bytea column read whole).  *res (may be NULL when not wanted) is a command or tuples
 * result; on a lost connection the statement is sent again once reconnected, so a caller
 * whose statement is not idempotent checks what the first attempt did.
 */
int al_db_exec(struct al_db *db, const char *sql, int nparams, const char *const *params,
               const int *lengths, const int *binary, int binary_result, PGresult **res,
               struct al_error *err);

/* The same, sent once: -EPIPE when the connection was lost (nothing is retried), for a
 * caller that sends a transaction again whole. */
int al_db_exec_once(struct al_db *db, const char *sql, int nparams, const char *const *params,
                    const int *lengths, const int *binary, int binary_result, PGresult **res,
                    struct al_error *err);
/* Get the connection back before deadline (al_now_ms() time). */
int al_db_reconnect(struct al_db *db, uint64_t deadline, struct al_error *err);

/* LISTEN on channel from now on, reconnects included. */
int al_db_listen(struct al_db *db, const char *channel, struct al_error *err);
/* Wait up to timeout_ms for a notification on the LISTENed channel: 1 when at least one
 * came (all that came are consumed), 0 when none, or a negative errno (the connection
 * broke: the next statement reconnects). */
int al_db_wait_notify(struct al_db *db, int timeout_ms, struct al_error *err);

/* Rows a command changed or returned. */
long al_db_rows(PGresult *res);

/* Create or migrate the schema to the version this harness knows (db_schema.c). */
int al_db_migrate(struct al_db *db, struct al_error *err);
/* The schema version this harness knows. */
int al_db_schema_version(void);

static inline void al_pgresult_clearp(PGresult **r)
{
	if (*r)
		PQclear(*r);
}
#define _cleanup_pgresult_ __attribute__((cleanup(al_pgresult_clearp)))
