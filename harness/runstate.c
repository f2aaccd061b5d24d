/* SPDX-License-Identifier: Apache-2.0 */
#include "runstate.h"

#include "cleanup.h"
#include "killpoint.h"
#include "util.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

cJSON *al_runstate_new(const char *run_id, const char *task_dir)
{
	cJSON *s = cJSON_CreateObject();
	cJSON *usage;

	if (!s)
		return NULL;
	cJSON_AddNumberToObject(s, "version", AL_RUNSTATE_VERSION);
	cJSON_AddStringToObject(s, "run_id", run_id);
	cJSON_AddStringToObject(s, "status", "running");
	cJSON_AddStringToObject(s, "task_dir", task_dir);
	cJSON_AddNumberToObject(s, "turn", 0);
	cJSON_AddNumberToObject(s, "model_calls", 0);
	cJSON_AddArrayToObject(s, "items");
	cJSON_AddArrayToObject(s, "pending_calls");
	cJSON_AddObjectToObject(s, "sandbox");
	cJSON_AddObjectToObject(s, "sessions");
	cJSON_AddNumberToObject(s, "next_session_id", 1);
	usage = cJSON_AddObjectToObject(s, "usage");
	cJSON_AddNumberToObject(usage, "input_tokens", 0);
	cJSON_AddNumberToObject(usage, "output_tokens", 0);
	cJSON_AddArrayToObject(usage, "per_turn");
	return s;
}

int al_runstate_load(struct al_run_store *store, cJSON **state, struct al_error *err)
{
	_cleanup_free_ char *path = NULL;
	_cleanup_free_ char *text = NULL;
	cJSON *s, *v;
	size_t len = 0;
	int r;

	if (asprintf(&path, "%s/" AL_RUNSTATE_FILE, store->dir) < 0)
		return al_error_set(err, ENOMEM, "out of memory");
	r = store->ops->state_load(store, &text, &len, err);
	if (r < 0)
		return r;
	s = cJSON_ParseWithLength(text, len);
	if (!cJSON_IsObject(s)) {
		cJSON_Delete(s);
		return al_error_set(err, EINVAL, "%s is not valid JSON", path);
	}
	v = cJSON_GetObjectItemCaseSensitive(s, "version");
	if (!cJSON_IsNumber(v) || v->valueint != AL_RUNSTATE_VERSION ||
	    !cJSON_IsArray(cJSON_GetObjectItemCaseSensitive(s, "items")) ||
	    !cJSON_IsArray(cJSON_GetObjectItemCaseSensitive(s, "pending_calls")) ||
	    !cJSON_IsObject(cJSON_GetObjectItemCaseSensitive(s, "sandbox")) ||
	    !cJSON_IsString(cJSON_GetObjectItemCaseSensitive(s, "run_id"))) {
		cJSON_Delete(s);
		return al_error_set(err, EINVAL, "%s: not a RunState of version %d", path,
		                    AL_RUNSTATE_VERSION);
	}
	if (!cJSON_IsObject(cJSON_GetObjectItemCaseSensitive(s, "sessions")))
		cJSON_AddObjectToObject(s, "sessions");
	*state = s;
	return 0;
}

int al_runstate_save(struct al_run_store *store, const cJSON *state, struct al_error *err)
{
	_cleanup_free_ char *text = cJSON_PrintUnformatted(state);
	int r;

	if (!text)
		return al_error_set(err, ENOMEM, "out of memory");
	r = store->ops->state_save(store, text, strlen(text), err);
	if (r < 0)
		return r;
	al_killpoint();
	return 0;
}

const char *al_runstate_str(const cJSON *o, const char *key)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
	return cJSON_IsString(v) ? v->valuestring : NULL;
}

long al_runstate_long(const cJSON *o, const char *key)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
	return cJSON_IsNumber(v) ? (long)v->valuedouble : 0;
}

void al_runstate_set_str(cJSON *o, const char *key, const char *value)
{
	cJSON_DeleteItemFromObjectCaseSensitive(o, key);
	if (value)
		cJSON_AddStringToObject(o, key, value);
}

void al_runstate_set_long(cJSON *o, const char *key, long value)
{
	cJSON_DeleteItemFromObjectCaseSensitive(o, key);
	cJSON_AddNumberToObject(o, key, (double)value);
}
