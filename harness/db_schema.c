/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The run queue's schema (docs/deploy.md, "The database").  Migrations are applied in
 * order by the first worker that starts after an upgrade, under an advisory lock so that
 * workers starting together do it once; airlock_schema_version says how far it went.
 * A migration once released is never edited: a change is a new entry at the end.
 */
#include "db.h"

#include "cleanup.h"
#include "log.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Any constant of our own: the key of the advisory lock migrations hold. */
#define MIGRATION_LOCK_KEY "7361027155"

static const char *const migrations[] = {
    /* 1: runs, their audit records and small files. */
    "CREATE TABLE airlock_runs ("
    "  run_id text PRIMARY KEY,"
    "  task text NOT NULL,"
    "  task_dir text NOT NULL,"
    /* queued, running, completed, failed, cancelled */
    "  status text NOT NULL DEFAULT 'queued',"
    "  cancel_requested boolean NOT NULL DEFAULT false,"
    /* The lease: its generation fences every write of the run. */
    "  lease_gen bigint NOT NULL DEFAULT 0,"
    "  leased_by text,"
    "  lease_expires timestamptz,"
    "  attempts integer NOT NULL DEFAULT 0,"
    "  submitted_at timestamptz NOT NULL DEFAULT now(),"
    "  started_at timestamptz,"
    "  finished_at timestamptz,"
    "  state text,"
    /* The audit head: record count and the sha256 of the last record's line. */
    "  audit_seq bigint NOT NULL DEFAULT 0,"
    "  audit_head text NOT NULL DEFAULT "
    "'0000000000000000000000000000000000000000000000000000000000000000',"
    "  error text"
    ");"
    "CREATE INDEX airlock_runs_claim ON airlock_runs (status, submitted_at);"
    "CREATE TABLE airlock_audit ("
    "  run_id text NOT NULL REFERENCES airlock_runs ON DELETE CASCADE,"
    "  seq bigint NOT NULL,"
    "  line text NOT NULL,"
    "  PRIMARY KEY (run_id, seq)"
    ");"
    "CREATE TABLE airlock_run_files ("
    "  run_id text NOT NULL REFERENCES airlock_runs ON DELETE CASCADE,"
    "  name text NOT NULL,"
    "  content bytea NOT NULL,"
    "  PRIMARY KEY (run_id, name)"
    ");",
};

int al_db_schema_version(void)
{
	return (int)(sizeof(migrations) / sizeof(migrations[0]));
}

static int exec_simple(struct al_db *db, const char *sql, PGresult **out, struct al_error *err)
{
	PGresult *r = PQexec(db->conn, sql);
	ExecStatusType st = r ? PQresultStatus(r) : PGRES_FATAL_ERROR;

	if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK) {
		const char *m = r ? PQresultErrorMessage(r) : PQerrorMessage(db->conn);
		al_error_set(err, EIO, "database migration: %.*s", (int)strcspn(m, "\n"), m);
		PQclear(r);
		PQclear(PQexec(db->conn, "ROLLBACK"));
		return -EIO;
	}
	if (out)
		*out = r;
	else
		PQclear(r);
	return 0;
}

int al_db_migrate(struct al_db *db, struct al_error *err)
{
	_cleanup_pgresult_ PGresult *v = NULL;
	int have, want = al_db_schema_version(), rc;

	if ((rc = exec_simple(db,
	                      "BEGIN;"
	                      "SELECT pg_advisory_xact_lock(" MIGRATION_LOCK_KEY ");"
	                      "CREATE TABLE IF NOT EXISTS airlock_schema_version ("
	                      "  version integer NOT NULL,"
	                      "  applied_at timestamptz NOT NULL DEFAULT now());",
	                      NULL, err)) < 0)
		return rc;
	if ((rc = exec_simple(db, "SELECT coalesce(max(version), 0) FROM airlock_schema_version",
	                      &v, err)) < 0)
		return rc;
	have = atoi(PQgetvalue(v, 0, 0));
	if (have > want) {
		PQclear(PQexec(db->conn, "ROLLBACK"));
		return al_error_set(err, EPROTO,
		                    "the database schema is version %d, newer than this "
		                    "airlock-harness knows (%d): upgrade the harness",
		                    have, want);
	}
	for (int i = have; i < want; i++) {
		char bump[96];

		if ((rc = exec_simple(db, migrations[i], NULL, err)) < 0)
			return al_error_prefix(err, "schema version %d", i + 1);
		snprintf(bump, sizeof(bump),
		         "INSERT INTO airlock_schema_version (version) VALUES (%d)", i + 1);
		if ((rc = exec_simple(db, bump, NULL, err)) < 0)
			return rc;
		log_info("database schema migrated to version %d", i + 1);
	}
	return exec_simple(db, "COMMIT", NULL, err);
}
