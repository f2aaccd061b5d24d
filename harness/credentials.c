/* SPDX-License-Identifier: Apache-2.0 */
#include "credentials.h"

#include "cleanup.h"
#include "json.h"
#include "util.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#define MAX_CREDENTIALS_BYTES (64u << 10)

static void wipe_free(char *s)
{
	if (s) {
		explicit_bzero(s, strlen(s));
		free(s);
	}
}

static void wipe_freep(char **s)
{
	wipe_free(*s);
}

static int load_file(const char *path, struct al_credentials *c, struct al_error *err)
{
	_cleanup_close_ int fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NOCTTY);
	_cleanup_(wipe_freep) char *text = NULL;
	_cleanup_cjson_ cJSON *j = NULL;
	const cJSON *key;
	struct stat st;
	size_t len = 0;
	int r;

	if (fd < 0)
		return al_error_errno(err, "credentials file %s", path);
	if (fstat(fd, &st) < 0)
		return al_error_errno(err, "stat credentials file %s", path);
	if (!S_ISREG(st.st_mode))
		return al_error_set(err, EPERM, "credentials file %s is not a regular file", path);
	if (st.st_uid != geteuid())
		return al_error_set(err, EPERM, "credentials file %s is not owned by uid %u", path,
		                    (unsigned)geteuid());
	if (st.st_mode & 077)
		return al_error_set(
		    err, EPERM, "credentials file %s has mode %04o; it must be 0600 or stricter",
		    path, (unsigned)(st.st_mode & 07777));
	r = al_read_fd(fd, MAX_CREDENTIALS_BYTES, &text, &len, err);
	if (r < 0)
		return al_error_prefix(err, "credentials file %s", path);
	j = cJSON_ParseWithLength(text, len);
	if (!cJSON_IsObject(j))
		return al_error_set(err, EINVAL, "credentials file %s is not a JSON object", path);
	key = cJSON_GetObjectItemCaseSensitive(j, "openai_api_key");
	if (key && !cJSON_IsString(key))
		return al_error_set(err, EINVAL,
		                    "credentials file %s: openai_api_key must be a string", path);
	if (cJSON_IsString(key) && *key->valuestring) {
		c->openai_api_key = strdup(key->valuestring);
		explicit_bzero(key->valuestring, strlen(key->valuestring));
		if (!c->openai_api_key)
			return al_error_set(err, ENOMEM, "out of memory");
		c->source = "credentials file";
	}
	return 0;
}

int al_credentials_load(const char *file, struct al_credentials *c, struct al_error *err)
{
	const char *env;

	memset(c, 0, sizeof(*c));
	if (!file)
		file = getenv("AIRLOCK_CREDENTIALS");
	if (file && *file) {
		int r = load_file(file, c, err);
		if (r < 0)
			return r;
		if (c->openai_api_key)
			return 0;
	}
	env = getenv("OPENAI_API_KEY");
	if (env && *env) {
		c->openai_api_key = strdup(env);
		if (!c->openai_api_key)
			return al_error_set(err, ENOMEM, "out of memory");
		c->source = "OPENAI_API_KEY";
	}
	return 0;
}

void al_credentials_free(struct al_credentials *c)
{
	wipe_free(c->openai_api_key);
	c->openai_api_key = NULL;
}
