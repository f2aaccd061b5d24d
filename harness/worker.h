/* SPDX-License-Identifier: Apache-2.0 */
#pragma once

/*
 * airlock-harness worker: takes runs from the PostgreSQL queue (queue.h) and executes
 * each in a child process (`airlock-harness execute`), renewing its lease meanwhile;
 * a Prometheus text endpoint on loopback.  docs/deploy.md.
 */

struct al_worker_options {
	const char *db_url;
	const char *provider_socket; /* this node's airlockd */
	const char *work_dir;        /* runs' workspace archives: WORK_DIR/RUN_ID */
	const char *node;            /* this node's name (default: the host name) */
	const char *credentials;
	int concurrency;
	long lease_ms;
	int metrics_port; /* 0: none; on 127.0.0.1 */
	int max_attempts; /* claims of one run before it is failed; 0: no limit */
};

/* Runs until SIGTERM or SIGINT; an AL_EXIT_* status. */
int al_worker_main(const struct al_worker_options *o);

/* The child's side: execute (or, cancel, clean up after) one claimed run. */
struct al_execute_options {
	const char *db_url;
	const char *run_id;
	long long lease_gen;
	const char *provider_socket;
	const char *work_dir;
	const char *node;
	const char *credentials;
	int cancel;
};

/* Exit statuses of `execute` beyond AL_EXIT_*: what the worker makes of them. */
#define AL_EXIT_LEASE_LOST 75
#define AL_EXIT_CANCELLED 76

int al_execute_main(const struct al_execute_options *o);
