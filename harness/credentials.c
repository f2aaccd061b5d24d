/* SPDX-License-Identifier: Apache-2.0 */
#include "credentials.h"

#include "cleanup.h"
#include "json.h"
#include "providers/provider.h"
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

static const char *const hosted_types[] = {"e2b",    "daytona", "cloudflare",
                                           "blaxel", "runloop", "vercel"};
#define N_HOSTED (sizeof(hosted_types) / sizeof(hosted_types[0]))

/* A string field of the file, copied and wiped in the parsed tree; NULL when absent. */
static int take_string(cJSON *j, const char *field, const char *path, char **out,
                       struct al_error *err)
{
	cJSON *v = cJSON_GetObjectItemCaseSensitive(j, field);

	*out = NULL;
	if (!v)
		return 0;
	if (!cJSON_IsString(v))
		return al_error_set(err, EINVAL, "credentials file %s: %s must be a string", path,
		                    field);
	if (!*v->valuestring)
		return 0;
	*out = strdup(v->valuestring);
	explicit_bzero(v->valuestring, strlen(v->valuestring));
	return *out ? 0 : al_error_set(err, ENOMEM, "out of memory");
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
	cJSON_ArrayForEach(key, j)
	{
		bool known = !strcmp(key->string, "openai_api_key");
		for (size_t i = 0; i < N_HOSTED; i++)
			known =
			    known || !strcmp(key->string, al_provider_key_field(hosted_types[i]));
		if (!known)
			return al_error_set(err, EINVAL, "credentials file %s: unknown key \"%s\"",
			                    path, key->string);
	}
	r = take_string(j, "openai_api_key", path, &c->openai_api_key, err);
	if (r < 0)
		return r;
	if (c->openai_api_key)
		c->source = "credentials file";
	for (size_t i = 0; i < N_HOSTED; i++) {
		struct al_provider_key *pk = &c->providers[i];
		r = take_string(j, al_provider_key_field(hosted_types[i]), path, &pk->key, err);
		if (r < 0)
			return r;
		if (pk->key)
			pk->source = "credentials file";
	}
	return 0;
}

int al_credentials_load(const char *file, struct al_credentials *c, struct al_error *err)
{
	const char *env;

	memset(c, 0, sizeof(*c));
	for (size_t i = 0; i < N_HOSTED; i++)
		c->providers[i].type = hosted_types[i];
	if (!file)
		file = getenv("AIRLOCK_CREDENTIALS");
	if (file && *file) {
		int r = load_file(file, c, err);
		if (r < 0) {
			al_credentials_free(c);
			return r;
		}
	}
	/* The file wins; otherwise the variable each SDK reads. */
	for (size_t i = 0; i < N_HOSTED; i++) {
		struct al_provider_key *pk = &c->providers[i];
		const char *var = al_provider_key_env(pk->type);
		env = getenv(var);
		if (pk->key || !env || !*env)
			continue;
		pk->key = strdup(env);
		if (!pk->key) {
			al_credentials_free(c);
			return al_error_set(err, ENOMEM, "out of memory");
		}
		pk->source = var;
	}
	if (c->openai_api_key)
		return 0;
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
	for (size_t i = 0; i < AL_CREDENTIALS_MAX_PROVIDERS; i++) {
		wipe_free(c->providers[i].key);
		c->providers[i].key = NULL;
	}
}

const char *al_credentials_provider_key(const struct al_credentials *c)
{
	for (size_t i = 0; c->provider_type && i < AL_CREDENTIALS_MAX_PROVIDERS; i++)
		if (c->providers[i].type && !strcmp(c->providers[i].type, c->provider_type))
			return c->providers[i].key;
	return NULL;
}
