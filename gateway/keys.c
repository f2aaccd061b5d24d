/* SPDX-License-Identifier: Apache-2.0 */
#include "keys.h"

#include "cleanup.h"
#include "json.h"
#include "util.h"

#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#define MAX_KEYS_FILE (1u << 20)
#define MIN_KEY_LEN 16

static void wipe_freep(char **s)
{
	if (*s) {
		explicit_bzero(*s, strlen(*s));
		free(*s);
	}
}

int gw_keys_load(const char *path, struct gw_keys *keys, struct al_error *err)
{
	_cleanup_close_ int fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NOCTTY);
	_cleanup_(wipe_freep) char *text = NULL;
	_cleanup_cjson_ cJSON *j = NULL;
	const cJSON *e;
	struct stat st;
	size_t len = 0, i = 0;
	int r;

	memset(keys, 0, sizeof(*keys));
	if (fd < 0)
		return al_error_errno(err, "keys file %s", path);
	if (fstat(fd, &st) < 0)
		return al_error_errno(err, "stat keys file %s", path);
	if (!S_ISREG(st.st_mode))
		return al_error_set(err, EPERM, "keys file %s is not a regular file", path);
	if (st.st_uid != geteuid())
		return al_error_set(err, EPERM, "keys file %s is not owned by uid %u", path,
		                    (unsigned)geteuid());
	if (st.st_mode & 077)
		return al_error_set(err, EPERM,
		                    "keys file %s has mode %04o; it must be 0600 or stricter", path,
		                    (unsigned)(st.st_mode & 07777));
	r = al_read_fd(fd, MAX_KEYS_FILE, &text, &len, err);
	if (r < 0)
		return al_error_prefix(err, "keys file %s", path);
	j = cJSON_ParseWithLength(text, len);
	if (!cJSON_IsObject(j))
		return al_error_set(
		    err, EINVAL, "keys file %s must be a JSON object mapping each key to a tenant",
		    path);
	if (cJSON_GetArraySize(j) == 0)
		return al_error_set(err, EINVAL, "keys file %s holds no key", path);
	keys->v = calloc((size_t)cJSON_GetArraySize(j), sizeof(*keys->v));
	if (!keys->v)
		return al_error_set(err, ENOMEM, "out of memory");
	cJSON_ArrayForEach(e, j)
	{
		/* Name the entry by position: the key itself must not reach a log. */
		if (strlen(e->string) < MIN_KEY_LEN) {
			gw_keys_free(keys);
			return al_error_set(
			    err, EINVAL,
			    "keys file %s: key number %zu is shorter than %d characters", path,
			    i + 1, MIN_KEY_LEN);
		}
		if (!cJSON_IsString(e) || !*e->valuestring) {
			gw_keys_free(keys);
			return al_error_set(err, EINVAL,
			                    "keys file %s: the tenant of key number %zu must be a "
			                    "non-empty string",
			                    path, i + 1);
		}
		keys->v[i].key = strdup(e->string);
		keys->v[i].tenant = strdup(e->valuestring);
		explicit_bzero(e->string, strlen(e->string));
		keys->n = ++i;
		if (!keys->v[i - 1].key || !keys->v[i - 1].tenant) {
			gw_keys_free(keys);
			return al_error_set(err, ENOMEM, "out of memory");
		}
	}
	return 0;
}

void gw_keys_free(struct gw_keys *keys)
{
	for (size_t i = 0; i < keys->n; i++) {
		wipe_freep(&keys->v[i].key);
		free(keys->v[i].tenant);
	}
	free(keys->v);
	memset(keys, 0, sizeof(*keys));
}

static bool same(const char *a, const char *b)
{
	size_t la = strlen(a), lb = strlen(b);
	unsigned char d = la != lb;

	for (size_t i = 0; i < la; i++)
		d |= (unsigned char)(a[i] ^ b[i % (lb ? lb : 1)]);
	return d == 0;
}

const char *gw_keys_tenant(const struct gw_keys *keys, const char *key)
{
	const char *found = NULL;

	if (!key || !*key)
		return NULL;
	for (size_t i = 0; i < keys->n; i++)
		if (same(keys->v[i].key, key))
			found = keys->v[i].tenant;
	return found;
}
