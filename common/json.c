/* SPDX-License-Identifier: Apache-2.0 */
#include "json.h"

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cleanup.h"
#include "error.h"
#include "strv.h"
#include "util.h"

cJSON *al_json_parse_exact(const char *text, size_t len, size_t *bad_at)
{
	const char *end = NULL;
	cJSON *j = cJSON_ParseWithLengthOpts(text, len, &end, false);
	size_t at;

	if (!j) {
		end = cJSON_GetErrorPtr();
		if (bad_at)
			*bad_at =
			    end && end >= text && end <= text + len ? (size_t)(end - text) : 0;
		return NULL;
	}
	for (at = (size_t)(end - text); at < len; at++) {
		if (text[at] != ' ' && text[at] != '\t' && text[at] != '\n' && text[at] != '\r') {
			cJSON_Delete(j);
			if (bad_at)
				*bad_at = at;
			return NULL;
		}
	}
	return j;
}

const char *al_json_str(const cJSON *o, const char *key)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);

	return cJSON_IsString(v) ? v->valuestring : NULL;
}

double al_json_num(const cJSON *o, const char *key, double fallback)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);

	return cJSON_IsNumber(v) ? v->valuedouble : fallback;
}

bool al_json_is_count(const cJSON *v, double max)
{
	return cJSON_IsNumber(v) && v->valuedouble >= 0 && v->valuedouble <= max &&
	       (double)(uint64_t)v->valuedouble == v->valuedouble;
}

cJSON *al_json_from_strv(char *const *v)
{
	cJSON *a = cJSON_CreateArray();

	for (; a && v && *v; v++) {
		cJSON *s = cJSON_CreateString(*v);
		if (!s || !cJSON_AddItemToArray(a, s)) {
			cJSON_Delete(s);
			cJSON_Delete(a);
			return NULL;
		}
	}
	return a;
}

char **al_json_to_strv(const cJSON *a)
{
	_cleanup_strv_ char **v = calloc(1, sizeof(char *));
	const cJSON *it;

	if (!v)
		return NULL;
	if (!cJSON_IsArray(a))
		return TAKE_PTR(v);
	cJSON_ArrayForEach(it, a)
	{
		if (cJSON_IsString(it) && al_strv_push(&v, it->valuestring) < 0)
			return NULL;
	}
	return TAKE_PTR(v);
}

/* ---- strict objects ---------------------------------------------------------------------- */

const char *al_json_type_name(const cJSON *v)
{
	if (cJSON_IsString(v))
		return "a string";
	if (cJSON_IsNumber(v))
		return "a number";
	if (cJSON_IsBool(v))
		return "a boolean";
	if (cJSON_IsObject(v))
		return "an object";
	if (cJSON_IsArray(v))
		return "an array";
	if (cJSON_IsNull(v))
		return "null";
	return "an invalid value";
}

static unsigned type_bit(const cJSON *v)
{
	if (cJSON_IsString(v))
		return AL_JSON_STRING;
	if (cJSON_IsNumber(v))
		return AL_JSON_NUMBER;
	if (cJSON_IsBool(v))
		return AL_JSON_BOOL;
	if (cJSON_IsObject(v))
		return AL_JSON_OBJECT;
	if (cJSON_IsArray(v))
		return AL_JSON_ARRAY;
	if (cJSON_IsNull(v))
		return AL_JSON_NULL;
	return 0;
}

/* "a string or a number" for a mask (null is left out: it is "absent"). */
static void types_text(unsigned types, char *buf, size_t len)
{
	static const struct {
		unsigned bit;
		const char *name;
	} names[] = {{AL_JSON_STRING, "a string"},
	             {AL_JSON_NUMBER, "a number"},
	             {AL_JSON_BOOL, "a boolean"},
	             {AL_JSON_OBJECT, "an object"},
	             {AL_JSON_ARRAY, "an array"}};
	size_t used = 0;

	buf[0] = '\0';
	for (size_t i = 0; i < AL_ARRAY_SIZE(names) && used < len; i++) {
		if (!(types & names[i].bit))
			continue;
		int w = snprintf(buf + used, len - used, "%s%s", used ? " or " : "", names[i].name);
		if (w < 0)
			break;
		used += (size_t)w;
	}
}

/* Levenshtein distance, capped: names are short (keys of a table). */
static size_t edit_distance(const char *a, const char *b)
{
	size_t la = strlen(a), lb = strlen(b);
	size_t row[AL_JSON_KEY_NAME_MAX + 1];

	if (la > AL_JSON_KEY_NAME_MAX || lb > AL_JSON_KEY_NAME_MAX)
		return SIZE_MAX;
	for (size_t j = 0; j <= lb; j++)
		row[j] = j;
	for (size_t i = 1; i <= la; i++) {
		size_t diag = row[0];
		row[0] = i;
		for (size_t j = 1; j <= lb; j++) {
			size_t up = row[j];
			size_t best = diag + (a[i - 1] != b[j - 1]);
			if (up + 1 < best)
				best = up + 1;
			if (row[j - 1] + 1 < best)
				best = row[j - 1] + 1;
			row[j] = best;
			diag = up;
		}
	}
	return row[lb];
}

const char *al_json_suggest_key(const char *name, const struct al_json_key *table, size_t n)
{
	const char *best = NULL;
	size_t best_d = SIZE_MAX, len = strlen(name);

	for (size_t i = 0; i < n; i++) {
		size_t kl = strlen(table[i].name), d = edit_distance(name, table[i].name);
		size_t shorter = kl < len ? kl : len;
		/* A typo (at most two edits, and fewer than half the name), or
		 * one name the start of the other ("mem", "timeout" for
		 * "timeout_ms"). */
		bool near = d <= 2 && d * 2 <= (kl > len ? kl : len);
		bool prefix = shorter >= 3 && !strncmp(name, table[i].name, shorter);

		if ((near || prefix) && d < best_d) {
			best = table[i].name;
			best_d = d;
		}
	}
	return best;
}

int al_json_check_keys(const cJSON *o, const struct al_json_key *table, size_t n, const char *where,
                       struct al_error *err)
{
	uint64_t seen = 0;
	const cJSON *it;

	if (!cJSON_IsObject(o))
		return al_error_set(err, EINVAL, "%s must be a JSON object (got %s)", where,
		                    al_json_type_name(o));
	if (n > AL_JSON_KEYS_MAX)
		return al_error_set(err, EINVAL, "%s: too many keys in its table", where);
	cJSON_ArrayForEach(it, o)
	{
		size_t i = 0;
		char want[96];

		while (i < n && strcmp(table[i].name, it->string))
			i++;
		if (i == n) {
			const char *hint = al_json_suggest_key(it->string, table, n);
			if (hint)
				return al_error_set(
				    err, EINVAL,
				    "unknown key \"%.64s\" in %s (did you mean \"%s\"?)",
				    it->string, where, hint);
			return al_error_set(err, EINVAL, "unknown key \"%.64s\" in %s", it->string,
			                    where);
		}
		if (seen & (1ULL << i))
			return al_error_set(err, EINVAL, "key \"%s\" given twice in %s",
			                    table[i].name, where);
		seen |= 1ULL << i;
		if (!(type_bit(it) & table[i].types)) {
			types_text(table[i].types, want, sizeof(want));
			return al_error_set(err, EINVAL, "\"%s\" in %s must be %s (got %s)",
			                    table[i].name, where, want, al_json_type_name(it));
		}
	}
	return 0;
}
