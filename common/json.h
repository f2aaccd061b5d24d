/* SPDX-License-Identifier: Apache-2.0 */
#pragma once

/*
 * Small readers over cJSON that every program needs the same way.  Kept
 * apart from cleanup.h so that code without JSON (airlock-pid1, the CRIU
 * hook) does not pull cJSON's header in.
 */

#include <stdbool.h>
#include <stddef.h>

#include <cjson/cJSON.h>

/* The largest integer a JSON number (a double) holds exactly: 2^53. */
#define AL_JSON_COUNT_MAX 9007199254740992.0

static inline void al_cjson_deletep(cJSON **j)
{
	if (*j)
		cJSON_Delete(*j);
}

#define _cleanup_cjson_ __attribute__((cleanup(al_cjson_deletep)))

/* Parse exactly one JSON value from text[0, len): trailing bytes other than
 * whitespace make it fail, where cJSON alone would ignore them (a request
 * "{...}garbage" must not pass for "{...}").  NULL on bad input; then *bad_at
 * (if given) is the byte offset of the first problem. */
cJSON *al_json_parse_exact(const char *text, size_t len, size_t *bad_at);

/* The string member key of object o, or NULL when absent or not a string. */
const char *al_json_str(const cJSON *o, const char *key);

/* The number member key of object o, or fallback when absent or not a number. */
double al_json_num(const cJSON *o, const char *key, double fallback);

/* True when v is a whole number in [0, max]. */
bool al_json_is_count(const cJSON *v, double max);

/* A JSON array of the strings of the NULL-terminated v (NULL: empty); NULL on ENOMEM. */
cJSON *al_json_from_strv(char *const *v);

/* The strings of array a as a NULL-terminated vector (other items are left
 * out; a non-array gives an empty vector); NULL on ENOMEM. */
char **al_json_to_strv(const cJSON *a);
