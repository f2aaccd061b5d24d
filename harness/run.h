/* SPDX-License-Identifier: Apache-2.0 */
#pragma once

/*
 * The agent loop: model -> tool calls -> sandbox -> results, with the RunState written
 * after every model response and tool result so that `resume` can pick up after a crash.
 */

#include "error.h"
#include "runstore.h"

/* Exit statuses of airlock-harness (docs/harness.md). */
#define AL_EXIT_OK 0
#define AL_EXIT_FAILED 1
#define AL_EXIT_USAGE 2

/* What run and resume print on stderr as they go (docs/harness.md, "Progress"). */
enum al_progress {
	AL_PROGRESS_NONE, /* the worker's runs, --quiet */
	AL_PROGRESS_TEXT, /* a line per model turn and per tool call */
	AL_PROGRESS_JSON, /* --events-json: the same as one JSON object a line */
};

struct al_run_options {
	const char *task_path;   /* run */
	const char *run_dir;     /* run: NULL for ./runs/<run-id>; resume: the directory */
	const char *credentials; /* NULL: AIRLOCK_CREDENTIALS, then OPENAI_API_KEY */
	const char *provider;    /* resume: a JSON file with a provider block to go on with */
	/* A run of the worker's queue (worker.c); all NULL for run and resume. */
	struct al_run_store *store;  /* where the records go (the caller's); NULL: run_dir */
	const char *run_id;          /* run: the id the queue gave it */
	const char *task_text;       /* run: the task as submitted, instead of task_path */
	const char *task_dir;        /* run: what its relative paths are relative to */
	const char *provider_socket; /* a local provider's socket on this node, for the task's */
	const char *node;            /* this node's name, recorded with the sandbox */
	const char *socket; /* gc: airlockd's socket (NULL: $AIRLOCK_SOCKET, the default) */
	enum al_progress progress;
};

/* Both return one of the AL_EXIT_* statuses and print what the contract says. */
int al_run_start(const struct al_run_options *opts);
int al_run_resume(const struct al_run_options *opts);
/* Stop a run for good: its sandbox deleted, "cancelled" in its state and trail. */
int al_run_cancel(const struct al_run_options *opts);

/* Remove airlockd's sandboxes of runs that are gone, completed or failed (found by the
 * labels the harness gives them); prints one line per sandbox removed. */
int al_run_gc(const struct al_run_options *opts);
