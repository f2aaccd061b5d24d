/* SPDX-License-Identifier: Apache-2.0 */
#include "json.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "cleanup.h"
#include "strv.h"

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
