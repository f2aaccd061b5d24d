/* SPDX-License-Identifier: Apache-2.0 */
/*
 * airlock-harness: the control plane.  It holds the credentials, runs the agent loop
 * against a sandbox through a provider, keeps the RunState and the audit trail, and
 * resumes a run after any crash.  Contract: docs/harness.md.
 */
#include "audit.h"
#include "cleanup.h"
#include "credentials.h"
#include "db.h"
#include "log.h"
#include "queue.h"
#include "run.h"
#include "runstore_pg.h"
#include "store.h"
#include "task.h"
#include "util.h"
#include "worker.h"

#include <errno.h>
#include <getopt.h>
#include <libgen.h>
#include <limits.h>
#include <unistd.h>
#include <stdbool.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <curl/curl.h>

static void usage(FILE *f)
{
	fputs("usage: airlock-harness run TASK.json [--run-dir DIR] [--credentials FILE]\n"
	      "              [--quiet | --events-json]\n"
	      "       airlock-harness resume DIR [--credentials FILE] [--provider FILE.json]\n"
	      "              [--quiet | --events-json]\n"
	      "  (run and resume print a line per model turn and per tool call on stderr;\n"
	      "   --quiet: none, --events-json: one JSON object a line.  The model's base URL\n"
	      "   and name default to $OPENAI_BASE_URL and $AIRLOCK_MODEL.)\n"
	      "       airlock-harness audit verify DIR | audit verify RUN_ID --db URL\n"
	      "       airlock-harness store put|get|delete TASK.json NAME [FILE] [--credentials "
	      "FILE]\n"
	      "       airlock-harness submit TASK.json --db URL\n"
	      "       airlock-harness worker --db URL --provider-socket SOCK [--concurrency N]\n"
	      "              [--work-dir DIR] [--node NAME] [--lease-ms MS] [--metrics-port PORT]\n"
	      "              [--max-attempts N (default 5; 0: no limit)]\n"
	      "              [--credentials FILE]\n"
	      "       airlock-harness status [RUN_ID] --db URL\n"
	      "       airlock-harness cancel RUN_ID --db URL\n"
	      "       airlock-harness gc [--socket PATH]   (remove airlockd's sandboxes of runs\n"
	      "                 gone, completed or failed)\n"
	      "       airlock-harness --version\n",
	      f);
}

static int parse_options(int argc, char **argv, struct al_run_options *o, bool allow_run_dir,
                         bool allow_progress)
{
	static const struct option longopts[] = {
	    {"run-dir", required_argument, NULL, 'd'},
	    {"credentials", required_argument, NULL, 'c'},
	    {"provider", required_argument, NULL, 'p'},
	    {"quiet", no_argument, NULL, 'q'},
	    {"events-json", no_argument, NULL, 'j'},
	    {"help", no_argument, NULL, 'h'},
	    {NULL, 0, NULL, 0},
	};
	int c;

	optind = 1;
	while ((c = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
		switch (c) {
		case 'd':
			if (!allow_run_dir) {
				fprintf(stderr, "airlock-harness: --run-dir is only for run\n");
				return -EINVAL;
			}
			o->run_dir = optarg;
			break;
		case 'c':
			o->credentials = optarg;
			break;
		case 'q':
		case 'j':
			if (!allow_progress) {
				fprintf(stderr,
				        "airlock-harness: --%s is only for run and resume\n",
				        c == 'q' ? "quiet" : "events-json");
				return -EINVAL;
			}
			o->progress = c == 'q' ? AL_PROGRESS_NONE : AL_PROGRESS_JSON;
			break;
		case 'p':
			if (allow_run_dir) {
				fprintf(stderr, "airlock-harness: --provider is only for resume\n");
				return -EINVAL;
			}
			o->provider = optarg;
			break;
		case 'h':
			usage(stdout);
			exit(0);
		default:
			usage(stderr);
			return -EINVAL;
		}
	}
	return optind;
}

/* Options of the queue commands; what a command does not take is refused. */
struct queue_options {
	const char *db;
	struct al_worker_options w;
	struct al_execute_options x;
};

enum {
	OPT_DB = 256,
	OPT_SOCKET,
	OPT_CONCURRENCY,
	OPT_WORK_DIR,
	OPT_NODE,
	OPT_LEASE_MS,
	OPT_METRICS_PORT,
	OPT_CREDENTIALS,
	OPT_LEASE_GEN,
	OPT_CANCEL,
	OPT_MAX_ATTEMPTS
};

static int parse_long(const char *opt, const char *v, long min, long max, long *out)
{
	char *end;
	long n;

	errno = 0;
	n = strtol(v, &end, 10);
	if (errno || *end || !*v || n < min || n > max) {
		fprintf(stderr, "airlock-harness: %s %s: expected a number from %ld to %ld\n", opt,
		        v, min, max);
		return -EINVAL;
	}
	*out = n;
	return 0;
}

/* Parses argv (argv[0] is the command); the positional arguments stay in argv[optind..]. */
static int parse_queue_options(int argc, char **argv, const char *allowed, struct queue_options *q)
{
	static const struct option longopts[] = {
	    {"db", required_argument, NULL, OPT_DB},
	    {"provider-socket", required_argument, NULL, OPT_SOCKET},
	    {"concurrency", required_argument, NULL, OPT_CONCURRENCY},
	    {"work-dir", required_argument, NULL, OPT_WORK_DIR},
	    {"node", required_argument, NULL, OPT_NODE},
	    {"lease-ms", required_argument, NULL, OPT_LEASE_MS},
	    {"metrics-port", required_argument, NULL, OPT_METRICS_PORT},
	    {"credentials", required_argument, NULL, OPT_CREDENTIALS},
	    {"lease-gen", required_argument, NULL, OPT_LEASE_GEN},
	    {"cancel", no_argument, NULL, OPT_CANCEL},
	    {"max-attempts", required_argument, NULL, OPT_MAX_ATTEMPTS},
	    {"help", no_argument, NULL, 'h'},
	    {NULL, 0, NULL, 0},
	};
	int c, idx = 0;
	long n;

	optind = 1;
	while ((c = getopt_long(argc, argv, "h", longopts, &idx)) != -1) {
		char key[4];

		if (c == 'h') {
			usage(stdout);
			exit(0);
		}
		if (c == '?') {
			usage(stderr);
			return -EINVAL;
		}
		snprintf(key, sizeof(key), "%c", 'a' + (c - OPT_DB));
		if (!strchr(allowed, key[0])) {
			fprintf(stderr, "airlock-harness: --%s is not an option of %s\n",
			        longopts[c - OPT_DB].name, argv[0]);
			return -EINVAL;
		}
		switch (c) {
		case OPT_DB:
			q->db = optarg;
			break;
		case OPT_SOCKET:
			q->w.provider_socket = q->x.provider_socket = optarg;
			break;
		case OPT_CONCURRENCY:
			if (parse_long("--concurrency", optarg, 1, 256, &n) < 0)
				return -EINVAL;
			q->w.concurrency = (int)n;
			break;
		case OPT_WORK_DIR:
			q->w.work_dir = q->x.work_dir = optarg;
			break;
		case OPT_NODE:
			q->w.node = q->x.node = optarg;
			break;
		case OPT_LEASE_MS:
			if (parse_long("--lease-ms", optarg, 500, 24L * 3600 * 1000, &n) < 0)
				return -EINVAL;
			q->w.lease_ms = n;
			break;
		case OPT_METRICS_PORT:
			if (parse_long("--metrics-port", optarg, 1, 65535, &n) < 0)
				return -EINVAL;
			q->w.metrics_port = (int)n;
			break;
		case OPT_CREDENTIALS:
			q->w.credentials = q->x.credentials = optarg;
			break;
		case OPT_LEASE_GEN:
			if (parse_long("--lease-gen", optarg, 1, LONG_MAX, &n) < 0)
				return -EINVAL;
			q->x.lease_gen = n;
			break;
		case OPT_CANCEL:
			q->x.cancel = 1;
			break;
		case OPT_MAX_ATTEMPTS:
			if (parse_long("--max-attempts", optarg, 0, 1000000, &n) < 0)
				return -EINVAL;
			q->w.max_attempts = (int)n;
			break;
		}
	}
	if (!q->db) {
		fprintf(stderr, "airlock-harness %s: --db URL is required\n", argv[0]);
		return -EINVAL;
	}
	return optind;
}

static int connect_db(struct al_db *db, const char *url, const char *who)
{
	struct al_error err = AL_ERROR_INIT;

	if (al_db_connect(db, url, who, &err) < 0) {
		fprintf(stderr, "airlock-harness: %s\n", err.msg);
		al_db_close(db);
		return -1;
	}
	/* A command line tool fails at once when the database is away. */
	db->reconnect_ms = 0;
	return 0;
}

/* status, cancel and verify read a queue some worker or submit made: say so plainly. */
static int connect_queue(struct al_db *db, const char *url, const char *who)
{
	struct al_error err = AL_ERROR_INIT;
	_cleanup_pgresult_ PGresult *res = NULL;

	if (connect_db(db, url, who) < 0)
		return -1;
	if (al_db_exec(db, "SELECT to_regclass('airlock_runs') IS NOT NULL", 0, NULL, NULL, NULL, 0,
	               &res, &err) < 0) {
		fprintf(stderr, "airlock-harness: %s\n", err.msg);
		al_db_close(db);
		return -1;
	}
	if (PQgetvalue(res, 0, 0)[0] != 't') {
		fprintf(stderr, "airlock-harness: no run queue in this database yet (a worker or "
		                "submit makes it)\n");
		al_db_close(db);
		return -1;
	}
	return 0;
}

static int cmd_audit(int argc, char **argv)
{
	struct al_error err = AL_ERROR_INIT;
	uint64_t n = 0;
	int r;

	if (argc >= 2 && !strcmp(argv[1], "verify") && argc != 3) {
		/* audit verify RUN_ID --db URL */
		struct queue_options q = {0};
		_cleanup_(al_run_store_freep) struct al_run_store *store = NULL;
		struct al_db db;
		int i = parse_queue_options(argc - 1, argv + 1, "a", &q);

		if (i < 0)
			return AL_EXIT_USAGE;
		if (argc - 1 - i != 1) {
			usage(stderr);
			return AL_EXIT_USAGE;
		}
		if (connect_queue(&db, q.db, "airlock-harness audit") < 0)
			return AL_EXIT_FAILED;
		r = al_run_store_pg_open(&db, argv[1 + i], 0, "/", &store, &err);
		if (r == 0)
			r = al_audit_verify_store(store, &n, &err);
		al_run_store_free(TAKE_PTR(store));
		al_db_close(&db);
		if (r == -ENOENT) {
			/* No such run: a wrong argument, not a broken trail. */
			fprintf(stderr, "airlock-harness: %s\n", err.msg);
			return AL_EXIT_USAGE;
		}
	} else if (argc == 3 && !strcmp(argv[1], "verify")) {
		r = al_audit_verify(argv[2], &n, &err);
	} else {
		usage(stderr);
		return AL_EXIT_USAGE;
	}
	if (r < 0) {
		printf("audit: %s\n", err.msg);
		return AL_EXIT_FAILED;
	}
	printf("audit: OK (%" PRIu64 " records)\n", n);
	return AL_EXIT_OK;
}

/* The task's snapshot.store by hand: what the harness writes there can be checked, and an
 * object can be put or fetched with the same verification (docs/storage.md). */
static int cmd_store(int argc, char **argv)
{
	struct al_run_options o = {0};
	struct al_error err = AL_ERROR_INIT;
	struct al_task task = {0};
	struct al_credentials creds = {0};
	_cleanup_(al_store_closep) struct al_store *st = NULL;
	_cleanup_free_ char *base = NULL;
	_cleanup_free_ char *where = NULL;
	const char *op, *file = NULL;
	char sha[65];
	int i, n, r;

	i = parse_options(argc, argv, &o, false, false);
	if (i < 0)
		return AL_EXIT_USAGE;
	n = argc - i;
	op = n >= 1 ? argv[i] : "";
	if (!((!strcmp(op, "put") || !strcmp(op, "get")) && n == 4) &&
	    !(!strcmp(op, "delete") && n == 3)) {
		usage(stderr);
		return AL_EXIT_USAGE;
	}
	if (n == 4)
		file = argv[i + 3];
	if (al_task_load(argv[i + 1], &task, &base, NULL, NULL, &err) < 0 ||
	    al_credentials_load(o.credentials, &creds, &err) < 0) {
		fprintf(stderr, "airlock-harness: %s\n", err.msg);
		if (task.json)
			al_task_free(&task);
		return AL_EXIT_USAGE;
	}
	r = al_store_open(&task.store, &creds, &st, &err);
	if (r == 0) {
		where = al_store_describe(st, argv[i + 2]);
		if (!strcmp(op, "put"))
			r = al_store_put_file(st, argv[i + 2], file, sha, &err);
		else if (!strcmp(op, "get"))
			r = al_store_get_file(st, argv[i + 2], file, NULL, &err);
		else
			r = al_store_delete(st, argv[i + 2], &err);
	}
	if (r < 0)
		fprintf(stderr, "airlock-harness: store %s: %s\n", op, err.msg);
	else if (!strcmp(op, "put"))
		printf("%s sha256 %s\n", where ? where : argv[i + 2], sha);
	else
		printf("%s: %s\n", where ? where : argv[i + 2],
		       !strcmp(op, "get") ? "verified" : "deleted");
	al_store_close(TAKE_PTR(st));
	al_credentials_free(&creds);
	al_task_free(&task);
	return r < 0 ? AL_EXIT_FAILED : AL_EXIT_OK;
}

static int cmd_submit(int argc, char **argv)
{
	struct queue_options q = {0};
	struct al_error err = AL_ERROR_INIT;
	struct al_task task = {0};
	_cleanup_free_ char *task_dir = NULL;
	_cleanup_free_ char *text = NULL;
	struct al_db db;
	char run_id[40];
	size_t len = 0;
	int i = parse_queue_options(argc, argv, "a", &q), r;

	if (i < 0)
		return AL_EXIT_USAGE;
	if (argc - i != 1) {
		usage(stderr);
		return AL_EXIT_USAGE;
	}
	/* Refused here, not by a worker later: the task must parse as `run` takes it. */
	if (al_task_load(argv[i], &task, &task_dir, &text, &len, &err) < 0) {
		fprintf(stderr, "airlock-harness: %s\n", err.msg);
		return AL_EXIT_USAGE;
	}
	al_task_free(&task);
	if (strlen(text) != len) {
		fprintf(stderr, "airlock-harness: %s: contains a NUL byte\n", argv[i]);
		return AL_EXIT_USAGE;
	}
	if (connect_db(&db, q.db, "airlock-harness submit") < 0)
		return AL_EXIT_FAILED;
	r = al_db_migrate(&db, &err);
	if (r == 0)
		r = al_queue_submit(&db, text, task_dir, run_id, &err);
	al_db_close(&db);
	if (r < 0) {
		fprintf(stderr, "airlock-harness: %s\n", err.msg);
		return AL_EXIT_FAILED;
	}
	printf("%s\n", run_id);
	return AL_EXIT_OK;
}

static int cmd_status(int argc, char **argv)
{
	struct queue_options q = {0};
	struct al_error err = AL_ERROR_INIT;
	_cleanup_pgresult_ PGresult *res = NULL;
	struct al_db db;
	int i = parse_queue_options(argc, argv, "a", &q), r;
	const char *params[1];

	if (i < 0)
		return AL_EXIT_USAGE;
	if (argc - i > 1) {
		usage(stderr);
		return AL_EXIT_USAGE;
	}
	if (connect_queue(&db, q.db, "airlock-harness status") < 0)
		return AL_EXIT_FAILED;
	params[0] = argc - i == 1 ? argv[i] : NULL;
	/* One JSON object a line: for people and for scripts alike. */
	r = al_db_exec(&db,
	               "SELECT json_build_object('run_id', run_id, 'status', status,"
	               "  'attempts', attempts, 'lease_gen', lease_gen, 'leased_by', leased_by,"
	               "  'lease_expires', lease_expires, 'cancel_requested', cancel_requested,"
	               "  'submitted_at', submitted_at, 'started_at', started_at,"
	               "  'finished_at', finished_at, 'audit_records', audit_seq, 'error', error,"
	               "  'final_output', state::jsonb ->> 'final_output')"
	               " FROM airlock_runs WHERE $1::text IS NULL OR run_id = $1"
	               " ORDER BY submitted_at",
	               1, params, NULL, NULL, 0, &res, &err);
	if (r == 0 && params[0] && PQntuples(res) == 0)
		r = al_error_set(&err, ENOENT, "no run %s in the database", params[0]);
	if (r < 0) {
		fprintf(stderr, "airlock-harness: %s\n", err.msg);
		PQclear(TAKE_PTR(res));
		al_db_close(&db);
		return AL_EXIT_FAILED;
	}
	for (int n = 0; n < PQntuples(res); n++)
		printf("%s\n", PQgetvalue(res, n, 0));
	PQclear(TAKE_PTR(res));
	al_db_close(&db);
	return AL_EXIT_OK;
}

static int cmd_cancel(int argc, char **argv)
{
	struct queue_options q = {0};
	struct al_error err = AL_ERROR_INIT;
	struct al_db db;
	const char *now = NULL;
	int i = parse_queue_options(argc, argv, "a", &q), r;

	if (i < 0)
		return AL_EXIT_USAGE;
	if (argc - i != 1) {
		usage(stderr);
		return AL_EXIT_USAGE;
	}
	if (connect_queue(&db, q.db, "airlock-harness cancel") < 0)
		return AL_EXIT_FAILED;
	r = al_queue_cancel(&db, argv[i], &now, &err);
	al_db_close(&db);
	if (r < 0) {
		fprintf(stderr, "airlock-harness: %s\n", err.msg);
		return err.code == ENOENT ? AL_EXIT_USAGE : AL_EXIT_FAILED;
	}
	if (!strcmp(now, "running"))
		printf("%s: cancel requested; its worker stops it\n", argv[i]);
	else if (!strcmp(now, "cancelled"))
		printf("%s: cancelled\n", argv[i]);
	else
		printf("%s: already %s\n", argv[i], now);
	return AL_EXIT_OK;
}

static int cmd_worker(int argc, char **argv)
{
	struct queue_options q = {.w = {.concurrency = 1,
	                                .lease_ms = 30000,
	                                .work_dir = "/var/lib/airlock/harness",
	                                .max_attempts = AL_QUEUE_MAX_ATTEMPTS}};
	char host[HOST_NAME_MAX + 1] = "";
	int i = parse_queue_options(argc, argv, "abcdefghk", &q);

	if (i < 0)
		return AL_EXIT_USAGE;
	if (i != argc) {
		usage(stderr);
		return AL_EXIT_USAGE;
	}
	if (!q.w.node) {
		gethostname(host, sizeof(host) - 1);
		q.w.node = host;
	}
	q.w.db_url = q.db;
	if (access(q.w.work_dir, W_OK) < 0) {
		fprintf(stderr, "airlock-harness: --work-dir %s: %s\n", q.w.work_dir,
		        strerror(errno));
		return AL_EXIT_USAGE;
	}
	return al_worker_main(&q.w);
}

/* The worker's child for one run (worker.c); not for people. */
static int cmd_execute(int argc, char **argv)
{
	struct queue_options q = {0};
	int i = parse_queue_options(argc, argv, "abdehij", &q);

	if (i < 0 || argc - i != 1 || !q.x.lease_gen || !q.x.work_dir || !q.x.node) {
		fprintf(stderr, "airlock-harness execute: started by the worker only\n");
		return AL_EXIT_USAGE;
	}
	q.x.db_url = q.db;
	q.x.run_id = argv[i];
	return al_execute_main(&q.x);
}

int main(int argc, char **argv)
{
	struct al_run_options o = {0};
	int i, rc;

	al_log_set_ident("airlock-harness");
	if (argc < 2) {
		usage(stderr);
		return AL_EXIT_USAGE;
	}
	if (!strcmp(argv[1], "-h") || !strcmp(argv[1], "--help")) {
		usage(stdout);
		return AL_EXIT_OK;
	}
	if (!strcmp(argv[1], "--version")) {
		printf("airlock-harness %s\n", AIRLOCK_VERSION);
		return AL_EXIT_OK;
	}
	if (!strcmp(argv[1], "audit"))
		return cmd_audit(argc - 1, argv + 1);
	if (!strcmp(argv[1], "gc")) {
		if (argc == 4 && !strcmp(argv[2], "--socket"))
			o.socket = argv[3];
		else if (argc != 2) {
			usage(stderr);
			return AL_EXIT_USAGE;
		}
		if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
			fprintf(stderr, "airlock-harness: cannot initialise libcurl\n");
			return AL_EXIT_FAILED;
		}
		rc = al_run_gc(&o);
		curl_global_cleanup();
		return rc;
	}
	if (!strcmp(argv[1], "store")) {
		if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
			return AL_EXIT_FAILED;
		rc = cmd_store(argc - 1, argv + 1);
		curl_global_cleanup();
		return rc;
	}
	if (!strcmp(argv[1], "submit"))
		return cmd_submit(argc - 1, argv + 1);
	if (!strcmp(argv[1], "status"))
		return cmd_status(argc - 1, argv + 1);
	if (!strcmp(argv[1], "cancel"))
		return cmd_cancel(argc - 1, argv + 1);
	if (!strcmp(argv[1], "worker") || !strcmp(argv[1], "execute")) {
		int rc;
		if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
			fprintf(stderr, "airlock-harness: cannot initialise libcurl\n");
			return AL_EXIT_FAILED;
		}
		rc = !strcmp(argv[1], "worker") ? cmd_worker(argc - 1, argv + 1)
		                                : cmd_execute(argc - 1, argv + 1);
		curl_global_cleanup();
		return rc;
	}
	if (strcmp(argv[1], "run") && strcmp(argv[1], "resume")) {
		fprintf(stderr, "airlock-harness: unknown command %s\n", argv[1]);
		usage(stderr);
		return AL_EXIT_USAGE;
	}
	o.progress = AL_PROGRESS_TEXT;
	i = parse_options(argc - 1, argv + 1, &o, !strcmp(argv[1], "run"), true);
	if (i < 0)
		return AL_EXIT_USAGE;
	if (argc - 1 - i != 1) {
		usage(stderr);
		return AL_EXIT_USAGE;
	}
	if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
		fprintf(stderr, "airlock-harness: cannot initialise libcurl\n");
		return AL_EXIT_FAILED;
	}
	if (!strcmp(argv[1], "run")) {
		o.task_path = argv[1 + i];
		rc = al_run_start(&o);
	} else {
		o.run_dir = argv[1 + i];
		rc = al_run_resume(&o);
	}
	curl_global_cleanup();
	return rc;
}
