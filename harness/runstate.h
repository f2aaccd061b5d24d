/* SPDX-License-Identifier: Apache-2.0 */
#pragma once

/*
 * RunState: DIR/state.json, everything needed to continue a run after any crash.
 * It is replaced atomically (write, fsync, rename) after every model response and
 * every tool result; see docs/harness.md for its fields.
 */

#include <cjson/cJSON.h>

#include "error.h"
#include "runstore.h"

#define AL_RUNSTATE_FILE "state.json"
#define AL_RUNSTATE_VERSION 1

cJSON *al_runstate_new(const char *run_id, const char *task_dir);
/* From the run's store (runstore.h): DIR/state.json, or the database's copy. */
int al_runstate_load(struct al_run_store *store, cJSON **state, struct al_error *err);

/* Write state atomically (a durable write for the crash-test hook, killpoint.h). */
int al_runstate_save(struct al_run_store *store, const cJSON *state, struct al_error *err);

/* Small accessors for the loop. */
const char *al_runstate_str(const cJSON *o, const char *key);
long al_runstate_long(const cJSON *o, const char *key);
void al_runstate_set_str(cJSON *o, const char *key, const char *value); /* NULL: remove */
void al_runstate_set_long(cJSON *o, const char *key, long value);
