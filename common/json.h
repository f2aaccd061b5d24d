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

/*
 * Strict request bodies: every parser of a JSON object declares the keys it
 * reads in one table of struct al_json_key, and al_json_check_keys() refuses
 * any other key (with the nearest known one as a suggestion), a key given
 * twice, and a value of a type the table does not allow.  A new key is one
 * line in its parser's table.  A JSON null counts as "absent" only where
 * the key's types include AL_JSON_NULL.
 */
enum al_json_type {
	AL_JSON_STRING = 1u << 0,
	AL_JSON_NUMBER = 1u << 1,
	AL_JSON_BOOL = 1u << 2,
	AL_JSON_OBJECT = 1u << 3,
	AL_JSON_ARRAY = 1u << 4,
	AL_JSON_NULL = 1u << 5,
};

struct al_json_key {
	const char *name;
	unsigned types; /* a mask of enum al_json_type */
};

/* The most keys one table may hold (duplicates are found with a bit mask). */
#define AL_JSON_KEYS_MAX 64
/* The longest name a suggestion is looked for (longer unknown keys get none). */
#define AL_JSON_KEY_NAME_MAX 64

struct al_error;

/* Check object o against the n keys of table; where names the object in the
 * message ("create request", "limits").  -EINVAL with a message such as
 * `unknown key "limit" in create request (did you mean "limits"?)` or
 * `"timeout_ms" in exec request must be a number (got a string)`; also when
 * o is not an object. */
int al_json_check_keys(const cJSON *o, const struct al_json_key *table, size_t n, const char *where,
                       struct al_error *err);

/* The same for a table that is an array in scope. */
#define al_json_check(o, table, where, err)                                                        \
	al_json_check_keys((o), (table), sizeof(table) / sizeof((table)[0]), (where), (err))

/* The known key of table nearest to name (a typo's likely meaning), or NULL. */
const char *al_json_suggest_key(const char *name, const struct al_json_key *table, size_t n);

/* "a string", "a number", ... for a message about v's type. */
const char *al_json_type_name(const cJSON *v);
