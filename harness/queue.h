/* SPDX-License-Identifier: Apache-2.0 */
#pragma once

/*
 * The run queue in PostgreSQL: submit, claim under a lease, renew, finish, cancel.
 * A lease is (run, generation, expiry); each claim makes a new generation, and every
 * write of a run names the generation it holds (runstore_pg.c), so at most one worker
 * records anything for a run at a time.  docs/deploy.md has the whole protocol.
 */

#include <stdbool.h>

#include "db.h"

struct al_claim {
	char *run_id;
	long long lease_gen;
	int attempts;          /* this claim included: > 1 is a retry */
	bool cancel;           /* cancelled while its lease had expired: only clean up */
	double queued_seconds; /* from submission to this claim */
};

void al_claim_clear(struct al_claim *c);

/* The channel a run that became claimable is announced on (NOTIFY): workers LISTEN
 * there instead of asking for work over and over. */
#define AL_QUEUE_CHANNEL "airlock_runs"

/* Queue a run of task_text (its relative paths relative to task_dir); run_id[40] out. */
int al_queue_submit(struct al_db *db, const char *task_text, const char *task_dir, char run_id[40],
                    struct al_error *err);

/* Default of the worker's --max-attempts. */
#define AL_QUEUE_MAX_ATTEMPTS 5

/*
 * Runs whose lease expired (their executor died, or their worker) after max_attempts
 * claims are failed instead of claimed again: a run that kills its executor every time
 * would otherwise go round the workers for ever.  Each one failed is passed to
 * on_failed (run id, attempts); returns how many, or a negative errno.
 */
int al_queue_give_up(struct al_db *db, int max_attempts,
                     void (*on_failed)(void *ctx, const char *run_id, int attempts), void *ctx,
                     struct al_error *err);

/* The oldest queued run, or a running one whose lease expired: 1 when claimed. */
int al_queue_claim(struct al_db *db, const char *worker, long lease_ms, struct al_claim *c,
                   struct al_error *err);

/* Extend a lease: 1 when still ours (*cancel: a cancel was asked), 0 when lost. */
int al_queue_renew(struct al_db *db, const char *run_id, long long gen, long lease_ms, bool *cancel,
                   struct al_error *err);

/* The run ended with status (completed, failed, cancelled): 1 recorded, 0 lease lost. */
int al_queue_finish(struct al_db *db, const char *run_id, long long gen, const char *status,
                    struct al_error *err);

/* Give the run back (its executor died): another worker may take it at once. */
int al_queue_release(struct al_db *db, const char *run_id, long long gen, struct al_error *err);

/* As al_queue_release, for a run the worker gives back of its own accord (it stops, or
 * could not start the executor): that claim does not count against --max-attempts. */
int al_queue_give_back(struct al_db *db, const char *run_id, long long gen, struct al_error *err);

/* Ask for a run to stop: a queued one is cancelled at once, a running one by its worker.
 * *status: what the run is now (static string). */
int al_queue_cancel(struct al_db *db, const char *run_id, const char **status,
                    struct al_error *err);

/* The counts by status, for the worker's metrics. */
int al_queue_counts(struct al_db *db, long *queued, long *running, struct al_error *err);
