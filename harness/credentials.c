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

static const char *const hosted_types[] = {"e2b",     "daytona", "cloudflare", "blaxel",
                                           "runloop", "vercel",  "modal"};
#define N_HOSTED (sizeof(hosted_types) / sizeof(hosted_types[0]))

static const char *const store_types[AL_CREDENTIALS_STORES] = {"s3", "r2", "gcs", "azure_blob"};

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

/* The "stores" object: {"s3": {"access_key_id": …, "secret_access_key": …}, …}. */
static int load_stores(cJSON *stores, const char *path, struct al_credentials *c,
                       struct al_error *err)
{
	static const char *const fields[] = {"access_key_id", "secret_access_key",
	                                     "account_name",  "account_key",
	                                     "sas_token",     "service_account_file"};
	const cJSON *entry;

	if (!stores)
		return 0;
	if (!cJSON_IsObject(stores))
		return al_error_set(err, EINVAL, "credentials file %s: stores must be an object",
		                    path);
	cJSON_ArrayForEach(entry, stores)
	{
		struct al_store_secret *st = NULL;
		const cJSON *f;
		_cleanup_free_ char *where = NULL;

		for (size_t i = 0; i < AL_CREDENTIALS_STORES; i++)
			if (!strcmp(entry->string, store_types[i]))
				st = &c->stores[i];
		if (!st)
			return al_error_set(err, EINVAL,
			                    "credentials file %s: stores has unknown store type "
			                    "\"%s\" (s3, r2, gcs, azure_blob)",
			                    path, entry->string);
		if (!cJSON_IsObject(entry))
			return al_error_set(err, EINVAL,
			                    "credentials file %s: stores.%s must be an object",
			                    path, entry->string);
		cJSON_ArrayForEach(f, entry)
		{
			bool known = false;
			for (size_t i = 0; i < sizeof(fields) / sizeof(fields[0]); i++)
				known = known || !strcmp(f->string, fields[i]);
			if (!known)
				return al_error_set(err, EINVAL,
				                    "credentials file %s: stores.%s: unknown key "
				                    "\"%s\"",
				                    path, entry->string, f->string);
		}
		if (asprintf(&where, "%s (stores.%s)", path, entry->string) < 0)
			return al_error_set(err, ENOMEM, "out of memory");
		char **outs[] = {&st->access_key_id, &st->secret_access_key,
		                 &st->account_name,  &st->account_key,
		                 &st->sas_token,     &st->service_account_file};
		for (size_t i = 0; i < sizeof(fields) / sizeof(fields[0]); i++) {
			int r = take_string((cJSON *)entry, fields[i], where, outs[i], err);
			if (r < 0)
				return r;
		}
	}
	return 0;
}

static void wipe_json_strings(cJSON *j)
{
	cJSON *c;

	cJSON_ArrayForEach(c, j)
	{
		if (cJSON_IsString(c) && c->valuestring)
			explicit_bzero(c->valuestring, strlen(c->valuestring));
		else
			wipe_json_strings(c);
	}
}

/* "mounts": {entry key: {field: "value"}}; airlockd checks the fields against the
 * manifest's entries, here only the shape. */
static int load_mounts(cJSON *j, const char *path, struct al_credentials *c, struct al_error *err)
{
	cJSON *mounts = cJSON_GetObjectItemCaseSensitive(j, "mounts");
	const cJSON *entry, *field;

	if (!mounts)
		return 0;
	if (!cJSON_IsObject(mounts))
		return al_error_set(err, EINVAL, "credentials file %s: mounts must be an object",
		                    path);
	cJSON_ArrayForEach(entry, mounts)
	{
		if (!cJSON_IsObject(entry))
			return al_error_set(err, EINVAL,
			                    "credentials file %s: mounts.%s must be an object",
			                    path, entry->string);
		cJSON_ArrayForEach(field, entry)
		{
			if (!cJSON_IsString(field))
				return al_error_set(
				    err, EINVAL,
				    "credentials file %s: mounts.%s.%s must be a string", path,
				    entry->string, field->string);
		}
	}
	c->mounts = cJSON_DetachItemViaPointer(j, mounts);
	return 0;
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
		bool known = !strcmp(key->string, "openai_api_key") ||
		             !strcmp(key->string, "stores") || !strcmp(key->string, "mounts");
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
	r = load_stores(cJSON_GetObjectItemCaseSensitive(j, "stores"), path, c, err);
	if (r < 0)
		return r;
	r = load_mounts(j, path, c, err);
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
	for (size_t i = 0; i < AL_CREDENTIALS_STORES; i++)
		c->stores[i].type = store_types[i];
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
	if (c->mounts) {
		wipe_json_strings(c->mounts);
		cJSON_Delete(c->mounts);
		c->mounts = NULL;
	}
	wipe_free(c->openai_api_key);
	c->openai_api_key = NULL;
	for (size_t i = 0; i < AL_CREDENTIALS_MAX_PROVIDERS; i++) {
		wipe_free(c->providers[i].key);
		c->providers[i].key = NULL;
	}
	for (size_t i = 0; i < AL_CREDENTIALS_STORES; i++) {
		struct al_store_secret *st = &c->stores[i];
		char **fields[] = {&st->access_key_id, &st->secret_access_key,
		                   &st->account_name,  &st->account_key,
		                   &st->sas_token,     &st->service_account_file};
		for (size_t k = 0; k < sizeof(fields) / sizeof(fields[0]); k++) {
			wipe_free(*fields[k]);
			*fields[k] = NULL;
		}
	}
}

const struct al_store_secret *al_credentials_store(const struct al_credentials *c, const char *type)
{
	for (size_t i = 0; type && i < AL_CREDENTIALS_STORES; i++)
		if (!strcmp(store_types[i], type))
			return &c->stores[i];
	return NULL;
}

const char *al_credentials_provider_key(const struct al_credentials *c)
{
	for (size_t i = 0; c->provider_type && i < AL_CREDENTIALS_MAX_PROVIDERS; i++)
		if (c->providers[i].type && !strcmp(c->providers[i].type, c->provider_type))
			return c->providers[i].key;
	return NULL;
}
