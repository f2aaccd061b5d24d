/* SPDX-License-Identifier: Apache-2.0 */
#pragma once

/*
 * The agent loop: model -> tool calls -> sandbox -> results, with the RunState written
 * after every model response and tool result so that `resume` can pick up after a crash.
 */

#include "error.h"

/* Exit statuses of airlock-harness (docs/harness.md). */
#define AL_EXIT_OK 0
#define AL_EXIT_FAILED 1
#define AL_EXIT_USAGE 2

struct al_run_options {
	const char *task_path;   /* run */
	const char *run_dir;     /* run: NULL for ./runs/<run-id>; resume: the directory */
	const char *credentials; /* NULL: AIRLOCK_CREDENTIALS, then OPENAI_API_KEY */
	const char *provider;    /* resume: a JSON file with a provider block to go on with */
	const char *socket;      /* gc: airlockd's socket (NULL: $AIRLOCK_SOCKET, the default) */
};

/* Both return one of the AL_EXIT_* statuses and print what the contract says. */
int al_run_start(const struct al_run_options *opts);
int al_run_resume(const struct al_run_options *opts);

/* Remove airlockd's sandboxes of runs that are gone, completed or failed (found by the
 * labels the harness gives them); prints one line per sandbox removed. */
int al_run_gc(const struct al_run_options *opts);
