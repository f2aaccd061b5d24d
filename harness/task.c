/* SPDX-License-Identifier: Apache-2.0 */
#include "task.h"

#include "providers/provider.h"

#include "cleanup.h"
#include "json.h"
#include "util.h"

#include <ctype.h>
#include <errno.h>
#include <libgen.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define MAX_TASK_BYTES (16u << 20)
#define DEFAULT_BASE_URL "https://api.openai.com/v1"

bool al_task_key_is_credential(const char *key)
{
	static const char *const suffixes[] = {
	    "apikey",    "token",      "authorization", "password",   "passwd",      "secret",
	    "secretkey", "privatekey", "accesskey",     "credential", "credentials",
	};
	char norm[128];
	size_t n = 0, len;

	for (const char *p = key; *p && n < sizeof(norm) - 1; p++)
		if (*p != '_' && *p != '-' && *p != '.' && *p != ' ')
			norm[n++] = (char)tolower((unsigned char)*p);
	norm[n] = '\0';
	for (size_t i = 0; i < AL_ARRAY_SIZE(suffixes); i++) {
		len = strlen(suffixes[i]);
		if (n >= len && !strcmp(norm + n - len, suffixes[i]))
			return true;
	}
	return false;
}

/* Refuse credential-like keys anywhere, except the file names of manifest.entries. */
static int scan_credentials(const cJSON *o, const char *where, bool names_are_paths,
                            struct al_error *err)
{
	const cJSON *c;
	int r;

	cJSON_ArrayForEach(c, o)
	{
		char sub[512];
		if (cJSON_IsObject(o) && !names_are_paths && al_task_key_is_credential(c->string))
			return al_error_set(
			    err, EPERM,
			    "task key %s%s%s looks like a credential; credentials come only "
			    "from the harness's environment or its credentials file",
			    where, *where ? "." : "", c->string);
		if (cJSON_IsObject(o))
			snprintf(sub, sizeof(sub), "%s%s%s", where, *where ? "." : "", c->string);
		else
			snprintf(sub, sizeof(sub), "%s[]", where);
		r = scan_credentials(c, sub, !strcmp(sub, "manifest.entries"), err);
		if (r < 0)
			return r;
	}
	return 0;
}

static int check_keys(const cJSON *o, const char *const *allowed, const char *where,
                      struct al_error *err)
{
	const cJSON *c;

	if (!cJSON_IsObject(o))
		return al_error_set(err, EINVAL, "task: %s must be an object", where);
	cJSON_ArrayForEach(c, o)
	{
		bool ok = false;
		for (const char *const *a = allowed; *a && !ok; a++)
			ok = !strcmp(*a, c->string);
		if (!ok)
			return al_error_set(err, EINVAL, "task: unknown key %s%s%s", where,
			                    *where ? "." : "", c->string);
	}
	return 0;
}

static int opt_string(const cJSON *o, const char *key, const char *where, const char *def,
                      char **out, struct al_error *err)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);

	if (v && !cJSON_IsString(v))
		return al_error_set(err, EINVAL, "task: %s.%s must be a string", where, key);
	if (!v && !def) {
		*out = NULL;
		return 0;
	}
	/* def may be *out itself (a default inherited from the main model). */
	char *copy = strdup(v ? v->valuestring : def);
	if (!copy)
		return al_error_set(err, ENOMEM, "out of memory");
	free(*out);
	*out = copy;
	return 0;
}

static int opt_int(const cJSON *o, const char *key, const char *where, long min, long max,
                   long *out, struct al_error *err)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);

	if (!v)
		return 0;
	if (!cJSON_IsNumber(v) || v->valuedouble != floor(v->valuedouble) ||
	    v->valuedouble < (double)min || v->valuedouble > (double)max)
		return al_error_set(err, EINVAL, "task: %s.%s must be an integer from %ld to %ld",
		                    where, key, min, max);
	*out = (long)v->valuedouble;
	return 0;
}

static int opt_bool(const cJSON *o, const char *key, const char *where, bool *out,
                    struct al_error *err)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);

	if (!v)
		return 0;
	if (!cJSON_IsBool(v))
		return al_error_set(err, EINVAL, "task: %s.%s must be true or false", where, key);
	*out = cJSON_IsTrue(v);
	return 0;
}

static void model_config_free(struct al_model_config *m)
{
	free(m->name);
	free(m->base_url);
	free(m->script);
	free(m->ca_bundle);
	memset(m, 0, sizeof(*m));
}

static int model_config_copy(struct al_model_config *dst, const struct al_model_config *src)
{
	*dst = *src;
	dst->name = src->name ? strdup(src->name) : NULL;
	dst->base_url = src->base_url ? strdup(src->base_url) : NULL;
	dst->script = src->script ? strdup(src->script) : NULL;
	dst->ca_bundle = src->ca_bundle ? strdup(src->ca_bundle) : NULL;
	if ((src->name && !dst->name) || (src->base_url && !dst->base_url) ||
	    (src->script && !dst->script) || (src->ca_bundle && !dst->ca_bundle))
		return -ENOMEM;
	return 0;
}

/* A path from the task, relative to its directory, that must be readable now. */
static int resolve_readable(const char *base_dir, const char *path, const char *where,
                            const char *key, char **out, struct al_error *err)
{
	free(*out);
	if (path[0] == '/')
		*out = strdup(path);
	else if (asprintf(out, "%s/%s", base_dir, path) < 0)
		*out = NULL;
	if (!*out)
		return al_error_set(err, ENOMEM, "out of memory");
	if (access(*out, R_OK) < 0)
		return al_error_errno(err, "task: %s.%s %s", where, key, *out);
	return 0;
}

/* Parse a model block over defaults (the main model's settings for the memory phases). */
static int parse_model(const cJSON *o, const char *where, const char *base_dir,
                       struct al_model_config *m, struct al_error *err)
{
	static const char *const keys[] = {
	    "api",         "name",          "base_url",           "script",    "timeout_ms",
	    "max_retries", "retry_base_ms", "max_response_bytes", "ca_bundle", NULL};
	_cleanup_free_ char *api = NULL;
	_cleanup_free_ char *ca = NULL;
	_cleanup_free_ char *script = NULL;
	long v;
	int r;

	r = check_keys(o, keys, where, err);
	if (r < 0)
		return r;
	r = opt_string(o, "api", where, NULL, &api, err);
	if (r < 0)
		return r;
	if (api) {
		if (!strcmp(api, "responses"))
			m->api = AL_API_RESPONSES;
		else if (!strcmp(api, "chat"))
			m->api = AL_API_CHAT;
		else if (!strcmp(api, "replay"))
			m->api = AL_API_REPLAY;
		else
			return al_error_set(
			    err, EINVAL,
			    "task: %s.api must be \"responses\", \"chat\" or \"replay\", "
			    "not \"%s\"",
			    where, api);
	}
	if ((r = opt_string(o, "name", where, m->name, &m->name, err)) < 0 ||
	    (r = opt_string(o, "base_url", where, m->base_url ? m->base_url : DEFAULT_BASE_URL,
	                    &m->base_url, err)) < 0 ||
	    (r = opt_string(o, "script", where, NULL, &script, err)) < 0 ||
	    (r = opt_string(o, "ca_bundle", where, NULL, &ca, err)) < 0)
		return r;
	if (ca) {
		r = resolve_readable(base_dir, ca, where, "ca_bundle", &m->ca_bundle, err);
		if (r < 0)
			return r;
	}
	v = m->timeout_ms;
	if ((r = opt_int(o, "timeout_ms", where, 1, 3600 * 1000L, &v, err)) < 0)
		return r;
	m->timeout_ms = v;
	v = m->max_retries;
	if ((r = opt_int(o, "max_retries", where, 0, 100, &v, err)) < 0)
		return r;
	m->max_retries = (int)v;
	v = m->retry_base_ms;
	if ((r = opt_int(o, "retry_base_ms", where, 1, 600 * 1000L, &v, err)) < 0)
		return r;
	m->retry_base_ms = v;
	v = (long)m->max_response_bytes;
	if ((r = opt_int(o, "max_response_bytes", where, 1024, 1L << 30, &v, err)) < 0)
		return r;
	m->max_response_bytes = (size_t)v;
	if (script) {
		free(m->script);
		if (script[0] == '/')
			m->script = strdup(script);
		else if (asprintf(&m->script, "%s/%s", base_dir, script) < 0)
			m->script = NULL;
		if (!m->script)
			return al_error_set(err, ENOMEM, "out of memory");
	}
	if (m->api == AL_API_REPLAY) {
		if (!m->script)
			return al_error_set(err, EINVAL,
			                    "task: %s: the replay api needs \"script\"", where);
		if (access(m->script, R_OK) < 0)
			return al_error_errno(err, "task: %s.script %s", where, m->script);
	} else if (!m->name || !*m->name) {
		return al_error_set(
		    err, EINVAL, "task: %s.name is required%s", where,
		    strcmp(where, "model") ? "" : " (or AIRLOCK_MODEL in the environment)");
	}
	return 0;
}

static int parse_limits(const cJSON *o, struct al_task *t, struct al_error *err)
{
	static const char *const keys[] = {"memory", "pids", "cpus", NULL};
	const cJSON *v;
	long pids = 0;
	int r;

	r = check_keys(o, keys, "limits", err);
	if (r < 0)
		return r;
	v = cJSON_GetObjectItemCaseSensitive(o, "memory");
	if (cJSON_IsString(v)) {
		r = al_parse_size(v->valuestring, &t->memory_bytes, err);
		if (r < 0)
			return al_error_prefix(err, "task: limits.memory");
	} else if (cJSON_IsNumber(v) && v->valuedouble >= 1 &&
	           v->valuedouble <= AL_JSON_COUNT_MAX) {
		/* Bounded: a larger double has no exact (or, from 2^64, any) uint64_t. */
		t->memory_bytes = (uint64_t)v->valuedouble;
	} else if (v) {
		return al_error_set(err, EINVAL, "task: limits.memory must be a size (\"512M\")");
	}
	if ((r = opt_int(o, "pids", "limits", 1, 1L << 22, &pids, err)) < 0)
		return r;
	t->pids = pids;
	v = cJSON_GetObjectItemCaseSensitive(o, "cpus");
	if (v && (!cJSON_IsNumber(v) || v->valuedouble <= 0 || v->valuedouble > 4096))
		return al_error_set(err, EINVAL, "task: limits.cpus must be a positive number");
	t->cpus = v ? v->valuedouble : 0;
	return 0;
}

/* A directory inside the workspace: relative, not leaving it, and not the workspace itself
 * ("", "." or "./" would put memory files beside the user's, or at "/" once joined). */
static bool workspace_subdir_ok(const char *p)
{
	return p[0] != '/' && !strstr(p, "..") && p[strspn(p, "./")] != '\0';
}

static int parse_memory(const cJSON *o, const char *base_dir, struct al_task *t,
                        struct al_error *err)
{
	static const char *const keys[] = {"enabled",
	                                   "read",
	                                   "generate",
	                                   "summary_budget_chars",
	                                   "memories_dir",
	                                   "sessions_dir",
	                                   "max_raw_memories",
	                                   "extra_prompt",
	                                   "phase1_model",
	                                   "phase2_model",
	                                   NULL};
	struct al_memory_config *m = &t->memory;
	bool enabled = false;
	long v;
	int r;

	if ((r = model_config_copy(&m->phase1, &t->model)) < 0 ||
	    (r = model_config_copy(&m->phase2, &t->model)) < 0)
		return al_error_set(err, ENOMEM, "out of memory");
	m->summary_budget_chars = 4000;
	m->max_raw_memories = 256;
	if ((r = opt_string(o, "memories_dir", "memory", "memories", &m->memories_dir, err)) < 0 ||
	    (r = opt_string(o, "sessions_dir", "memory", "sessions", &m->sessions_dir, err)) < 0)
		return r;
	if (!o)
		return 0;
	if ((r = check_keys(o, keys, "memory", err)) < 0 ||
	    (r = opt_bool(o, "enabled", "memory", &enabled, err)) < 0)
		return r;
	m->read = m->generate = enabled;
	if ((r = opt_bool(o, "read", "memory", &m->read, err)) < 0 ||
	    (r = opt_bool(o, "generate", "memory", &m->generate, err)) < 0 ||
	    (r = opt_string(o, "extra_prompt", "memory", NULL, &m->extra_prompt, err)) < 0)
		return r;
	if (!enabled)
		m->read = m->generate = false;
	v = (long)m->summary_budget_chars;
	if ((r = opt_int(o, "summary_budget_chars", "memory", 0, 1000000, &v, err)) < 0)
		return r;
	m->summary_budget_chars = (size_t)v;
	v = m->max_raw_memories;
	if ((r = opt_int(o, "max_raw_memories", "memory", 1, 4096, &v, err)) < 0)
		return r;
	m->max_raw_memories = (int)v;
	if (!workspace_subdir_ok(m->memories_dir))
		return al_error_set(
		    err, EINVAL,
		    "task: memory.memories_dir must be relative and name a directory "
		    "inside the workspace");
	if (!workspace_subdir_ok(m->sessions_dir))
		return al_error_set(
		    err, EINVAL,
		    "task: memory.sessions_dir must be relative and name a directory "
		    "inside the workspace");
	if (cJSON_GetObjectItemCaseSensitive(o, "phase1_model") &&
	    (r = parse_model(cJSON_GetObjectItemCaseSensitive(o, "phase1_model"),
	                     "memory.phase1_model", base_dir, &m->phase1, err)) < 0)
		return r;
	if (cJSON_GetObjectItemCaseSensitive(o, "phase2_model") &&
	    (r = parse_model(cJSON_GetObjectItemCaseSensitive(o, "phase2_model"),
	                     "memory.phase2_model", base_dir, &m->phase2, err)) < 0)
		return r;
	return 0;
}

/* snapshot.store: "local", or {"type": "s3"|"r2"|"gcs"|"azure_blob", "bucket" (or
 * "container"), "prefix", "endpoint", "region", "part_size_mb", "ca_bundle"}.  Its secrets
 * are the credentials file's, never the task's. */
static int parse_store(const cJSON *o, const char *base_dir, struct al_store_config *st,
                       struct al_error *err)
{
	static const char *const keys[] = {"type",      "bucket",       "container",
	                                   "prefix",    "region",       "endpoint",
	                                   "ca_bundle", "part_size_mb", NULL};
	_cleanup_free_ char *type = NULL;
	_cleanup_free_ char *container = NULL;
	_cleanup_free_ char *ca = NULL;
	long part_mb = AL_STORE_DEFAULT_PART >> 20;
	int r, kind;

	st->type = AL_STORE_LOCAL;
	if (!o)
		return 0;
	if (cJSON_IsString(o)) {
		if (strcmp(o->valuestring, "local"))
			return al_error_set(err, EINVAL,
			                    "task: snapshot.store \"%s\" needs an object with its "
			                    "bucket (or only \"local\")",
			                    o->valuestring);
		return 0;
	}
	if ((r = check_keys(o, keys, "snapshot.store", err)) < 0 ||
	    (r = opt_string(o, "type", "snapshot.store", NULL, &type, err)) < 0 ||
	    (r = opt_string(o, "bucket", "snapshot.store", NULL, &st->bucket, err)) < 0 ||
	    (r = opt_string(o, "container", "snapshot.store", NULL, &container, err)) < 0 ||
	    (r = opt_string(o, "prefix", "snapshot.store", "", &st->prefix, err)) < 0 ||
	    (r = opt_string(o, "region", "snapshot.store", NULL, &st->region, err)) < 0 ||
	    (r = opt_string(o, "endpoint", "snapshot.store", NULL, &st->endpoint, err)) < 0 ||
	    (r = opt_string(o, "ca_bundle", "snapshot.store", NULL, &ca, err)) < 0 ||
	    (r = opt_int(o, "part_size_mb", "snapshot.store", AL_STORE_MIN_PART >> 20,
	                 AL_STORE_MAX_PART >> 20, &part_mb, err)) < 0)
		return r;
	kind = al_store_type_from_name(type);
	if (kind < 0)
		return al_error_set(err, EINVAL,
		                    "task: snapshot.store.type must be local, s3, r2, gcs or "
		                    "azure_blob");
	st->type = (enum al_store_type)kind;
	if (st->type == AL_STORE_LOCAL)
		return 0;
	if (container && st->bucket)
		return al_error_set(err, EINVAL,
		                    "task: snapshot.store takes a bucket or a container, not both");
	if (container)
		st->bucket = TAKE_PTR(container);
	if (!st->bucket || !*st->bucket || strchr(st->bucket, '/'))
		return al_error_set(err, EINVAL, "task: snapshot.store.%s must name one %s",
		                    st->type == AL_STORE_AZURE ? "container" : "bucket",
		                    st->type == AL_STORE_AZURE ? "container" : "bucket");
	/* "a/b/" and "/a/b" are the prefix "a/b"; keys are PREFIX/RUN_ID/… */
	while (st->prefix[0] == '/')
		memmove(st->prefix, st->prefix + 1, strlen(st->prefix));
	for (size_t n = strlen(st->prefix); n && st->prefix[n - 1] == '/'; n--)
		st->prefix[n - 1] = '\0';
	if (strstr(st->prefix, "//") || strstr(st->prefix, ".."))
		return al_error_set(
		    err, EINVAL, "task: snapshot.store.prefix %s is not a plain path", st->prefix);
	if (st->endpoint && strncmp(st->endpoint, "https://", 8) &&
	    strncmp(st->endpoint, "http://", 7))
		return al_error_set(err, EINVAL,
		                    "task: snapshot.store.endpoint must be an http(s) URL");
	if (st->type == AL_STORE_R2 && !st->endpoint)
		return al_error_set(err, EINVAL,
		                    "task: snapshot.store of type r2 needs its endpoint "
		                    "(https://ACCOUNT_ID.r2.cloudflarestorage.com)");
	if (ca && (r = resolve_readable(base_dir, ca, "snapshot.store", "ca_bundle", &st->ca_bundle,
	                                err)) < 0)
		return r;
	st->part_size = (size_t)part_mb << 20;
	return 0;
}

static int parse_snapshot(const cJSON *o, const char *base_dir, struct al_task *t,
                          struct al_error *err)
{
	static const char *const keys[] = {"every_turns", "processes", "workspace_archive", "store",
	                                   NULL};
	long every = 0;
	int r;

	t->snapshot_processes = true;
	t->workspace_archive = true;
	if (!o)
		return 0;
	if ((r = check_keys(o, keys, "snapshot", err)) < 0 ||
	    (r = opt_int(o, "every_turns", "snapshot", 0, 1000000, &every, err)) < 0 ||
	    (r = opt_bool(o, "processes", "snapshot", &t->snapshot_processes, err)) < 0 ||
	    (r = opt_bool(o, "workspace_archive", "snapshot", &t->workspace_archive, err)) < 0 ||
	    (r = parse_store(cJSON_GetObjectItemCaseSensitive(o, "store"), base_dir, &t->store,
	                     err)) < 0)
		return r;
	t->snapshot_every_turns = (int)every;
	return 0;
}

/* Where the sandbox starts: a snapshot, or a workspace archive (an earlier run's). */
static int parse_start(const cJSON *o, const char *base_dir, struct al_task *t,
                       struct al_error *err)
{
	static const char *const keys[] = {"snapshot", "workspace_archive", NULL};
	_cleanup_free_ char *archive = NULL;
	int r;

	if (!o)
		return 0;
	if ((r = check_keys(o, keys, "start", err)) < 0 ||
	    (r = opt_string(o, "snapshot", "start", NULL, &t->start_snapshot, err)) < 0 ||
	    (r = opt_string(o, "workspace_archive", "start", NULL, &archive, err)) < 0)
		return r;
	if (t->start_snapshot && archive)
		return al_error_set(err, EINVAL,
		                    "task: start takes a snapshot or a workspace_archive");
	if (archive) {
		if (archive[0] == '/')
			t->start_archive = TAKE_PTR(archive);
		else if (asprintf(&t->start_archive, "%s/%s", base_dir, archive) < 0)
			return al_error_set(err, ENOMEM, "out of memory");
		if (access(t->start_archive, R_OK) < 0)
			return al_error_errno(err, "task: start.workspace_archive %s",
			                      t->start_archive);
	}
	return 0;
}

/* provider.exposed_ports: [PORT, ...], for a provider that can publish them. */
static int parse_exposed_ports(const cJSON *o, const struct al_provider_ops *ops, struct al_task *t,
                               struct al_error *err)
{
	const cJSON *ports = cJSON_GetObjectItemCaseSensitive(o, "exposed_ports"), *p;

	t->n_exposed_ports = 0;
	if (!ports)
		return 0;
	if (!(ops->caps & AL_CAP_EXPOSED_PORTS))
		return al_error_set(
		    err, EINVAL, "task: provider %s cannot expose ports (provider.exposed_ports)",
		    t->provider_type);
	if (!cJSON_IsArray(ports) || cJSON_GetArraySize(ports) > AL_TASK_MAX_EXPOSED_PORTS)
		return al_error_set(
		    err, EINVAL,
		    "task: provider.exposed_ports must be an array of at most %d ports",
		    AL_TASK_MAX_EXPOSED_PORTS);
	cJSON_ArrayForEach(p, ports)
	{
		if (!cJSON_IsNumber(p) || p->valuedouble < 1 || p->valuedouble > 65535 ||
		    p->valuedouble != floor(p->valuedouble))
			return al_error_set(
			    err, EINVAL,
			    "task: provider.exposed_ports: ports are integers from 1 to 65535");
		for (size_t i = 0; i < t->n_exposed_ports; i++)
			if (t->exposed_ports[i] == (uint16_t)p->valuedouble)
				return al_error_set(
				    err, EINVAL,
				    "task: provider.exposed_ports: port %d given twice",
				    (int)p->valuedouble);
		t->exposed_ports[t->n_exposed_ports++] = (uint16_t)p->valuedouble;
	}
	return 0;
}

static int parse_provider(const cJSON *o, struct al_task *t, struct al_error *err)
{
	const struct al_provider_ops *ops;
	const cJSON *c;
	int r;

	if (o && !cJSON_IsObject(o))
		return al_error_set(err, EINVAL, "task: provider must be an object");
	if ((r = opt_string(o, "type", "provider", "local", &t->provider_type, err)) < 0)
		return r;
	ops = al_provider_lookup(t->provider_type);
	if (!ops && al_provider_key_env(t->provider_type))
		return al_error_set(err, EINVAL,
		                    "task: provider %s is not built in yet (built in: %s)",
		                    t->provider_type, al_provider_names());
	if (!ops)
		return al_error_set(err, EINVAL,
		                    "task: provider.type \"%s\" is unknown (built in: %s)",
		                    t->provider_type, al_provider_names());
	t->provider = (cJSON *)o;
	if (!o)
		return 0;
	cJSON_ArrayForEach(c, o)
	{
		/* exposed_ports for every provider: one that cannot is told so below. */
		bool ok = !strcmp(c->string, "type") || !strcmp(c->string, "keep_sandbox") ||
		          !strcmp(c->string, "exposed_ports");
		for (const char *const *k = ops->option_keys; k && *k && !ok; k++)
			ok = !strcmp(*k, c->string);
		if (!ok)
			return al_error_set(
			    err, EINVAL, "task: unknown key provider.%s (provider %s takes %s)",
			    c->string, t->provider_type, al_provider_option_list(ops));
	}
	if ((r = opt_string(o, "rootfs", "provider", NULL, &t->rootfs, err)) < 0 ||
	    (r = opt_string(o, "image", "provider", NULL, &t->image, err)) < 0 ||
	    (r = opt_bool(o, "keep_sandbox", "provider", &t->keep_sandbox, err)) < 0 ||
	    (r = parse_exposed_ports(o, ops, t, err)) < 0)
		return r;
	if (t->rootfs && t->image)
		return al_error_set(err, EINVAL,
		                    "task: give provider.rootfs or provider.image, not both");
	/* Every other option is a string, or a number of milliseconds. */
	cJSON_ArrayForEach(c, o)
	{
		bool ms =
		    strlen(c->string) > 3 && !strcmp(c->string + strlen(c->string) - 3, "_ms");
		if (!strcmp(c->string, "keep_sandbox") || !strcmp(c->string, "exposed_ports"))
			continue;
		if (ms && (!cJSON_IsNumber(c) || c->valuedouble < 1 || c->valuedouble > 86400e3 ||
		           c->valuedouble != floor(c->valuedouble)))
			return al_error_set(
			    err, EINVAL, "task: provider.%s must be an integer from 1 to 86400000",
			    c->string);
		if (!ms && (!cJSON_IsString(c) || !*c->valuestring))
			return al_error_set(
			    err, EINVAL, "task: provider.%s must be a non-empty string", c->string);
	}
	return 0;
}

int al_task_set_provider(struct al_task *t, const cJSON *block, struct al_error *err)
{
	cJSON *copy = cJSON_Duplicate(block, 1);
	int r;

	if (!copy)
		return al_error_set(err, ENOMEM, "out of memory");
	if (!cJSON_IsObject(copy)) {
		cJSON_Delete(copy);
		return al_error_set(err, EINVAL, "the provider block must be a JSON object");
	}
	r = scan_credentials(copy, "provider", false, err);
	if (r < 0) {
		cJSON_Delete(copy);
		return r;
	}
	if (cJSON_GetObjectItemCaseSensitive(t->json, "provider"))
		cJSON_ReplaceItemInObjectCaseSensitive(t->json, "provider", copy);
	else
		cJSON_AddItemToObject(t->json, "provider", copy);
	free(t->provider_type);
	free(t->rootfs);
	free(t->image);
	t->provider_type = NULL;
	t->rootfs = NULL;
	t->image = NULL;
	t->keep_sandbox = false;
	t->n_exposed_ports = 0;
	return parse_provider(copy, t, err);
}

static int parse_task(const char *text, size_t len, const char *base_dir, struct al_task *t,
                      struct al_error *err)
{
	static const char *const keys[] = {"instructions", "input",     "model",  "provider",
	                                   "manifest",     "max_turns", "limits", "memory",
	                                   "snapshot",     "env",       "start",  NULL};
	_cleanup_cjson_ cJSON *empty_model = NULL;
	const cJSON *v;
	long turns = 20;
	int r;

	memset(t, 0, sizeof(*t));
	t->json = cJSON_ParseWithLength(text, len);
	if (!cJSON_IsObject(t->json))
		return al_error_set(err, EINVAL, "task: not a JSON object");
	/* Before anything else: a credential in a task file is refused outright. */
	r = scan_credentials(t->json, "", false, err);
	if (r < 0)
		return r;
	if ((r = check_keys(t->json, keys, "", err)) < 0 ||
	    (r = opt_string(t->json, "instructions", "task", "", &t->instructions, err)) < 0 ||
	    (r = opt_string(t->json, "input", "task", NULL, &t->input, err)) < 0)
		return r;
	if (!t->input)
		return al_error_set(err, EINVAL, "task: \"input\" is required");
	v = cJSON_GetObjectItemCaseSensitive(t->json, "model");
	/* The environment names the model where the task does not, as the
	 * OpenAI SDKs take OPENAI_BASE_URL: the task's own values win. */
	if (getenv("AIRLOCK_MODEL") && *getenv("AIRLOCK_MODEL") &&
	    !(t->model.name = strdup(getenv("AIRLOCK_MODEL"))))
		return al_error_set(err, ENOMEM, "out of memory");
	if (getenv("OPENAI_BASE_URL") && *getenv("OPENAI_BASE_URL") &&
	    !(t->model.base_url = strdup(getenv("OPENAI_BASE_URL"))))
		return al_error_set(err, ENOMEM, "out of memory");
	if (!v && !t->model.name)
		return al_error_set(err, EINVAL,
		                    "task: \"model\" is required (or AIRLOCK_MODEL in the "
		                    "environment)");
	if (!v)
		v = empty_model = cJSON_CreateObject();
	t->model.timeout_ms = 120000;
	t->model.max_retries = 5;
	t->model.retry_base_ms = 500;
	t->model.max_response_bytes = 32u << 20;
	if ((r = parse_model(v, "model", base_dir, &t->model, err)) < 0)
		return r;
	if ((r = parse_provider(cJSON_GetObjectItemCaseSensitive(t->json, "provider"), t, err)) < 0)
		return r;
	v = cJSON_GetObjectItemCaseSensitive(t->json, "manifest");
	if (v && !cJSON_IsObject(v))
		return al_error_set(err, EINVAL, "task: manifest must be an object");
	t->manifest = (cJSON *)v;
	v = cJSON_GetObjectItemCaseSensitive(t->json, "env");
	if (v) {
		const cJSON *e;
		if (!cJSON_IsObject(v))
			return al_error_set(err, EINVAL, "task: env must be an object of strings");
		cJSON_ArrayForEach(e, v) if (!cJSON_IsString(e)) return al_error_set(
		    err, EINVAL, "task: env.%s must be a string", e->string);
	}
	t->env = (cJSON *)v;
	if ((r = opt_int(t->json, "max_turns", "task", 1, 100000, &turns, err)) < 0)
		return r;
	t->max_turns = (int)turns;
	v = cJSON_GetObjectItemCaseSensitive(t->json, "limits");
	if (v && (r = parse_limits(v, t, err)) < 0)
		return r;
	if ((r = parse_memory(cJSON_GetObjectItemCaseSensitive(t->json, "memory"), base_dir, t,
	                      err)) < 0)
		return r;
	if ((r = parse_start(cJSON_GetObjectItemCaseSensitive(t->json, "start"), base_dir, t,
	                     err)) < 0)
		return r;
	return parse_snapshot(cJSON_GetObjectItemCaseSensitive(t->json, "snapshot"), base_dir, t,
	                      err);
}

int al_task_parse(const char *text, size_t len, const char *base_dir, struct al_task *t,
                  struct al_error *err)
{
	int r = parse_task(text, len, base_dir, t, err);

	/* A task that is refused leaves nothing to free. */
	if (r < 0)
		al_task_free(t);
	return r;
}

int al_task_load(const char *path, struct al_task *t, char **base_dir_out, char **text_out,
                 size_t *len_out, struct al_error *err)
{
	_cleanup_free_ char *text = NULL;
	_cleanup_free_ char *copy = NULL;
	_cleanup_free_ char *dir = NULL;
	size_t len = 0;
	int r;

	memset(t, 0, sizeof(*t));
	r = al_read_file(path, MAX_TASK_BYTES, &text, &len, err);
	if (r < 0)
		return r;
	copy = strdup(path);
	if (!copy)
		return al_error_set(err, ENOMEM, "out of memory");
	dir = realpath(dirname(copy), NULL);
	if (!dir)
		return al_error_errno(err, "resolve the directory of %s", path);
	r = al_task_parse(text, len, dir, t, err);
	if (r < 0)
		return al_error_prefix(err, "%s", path);
	if (base_dir_out)
		*base_dir_out = TAKE_PTR(dir);
	if (text_out) {
		*text_out = TAKE_PTR(text);
		*len_out = len;
	}
	return 0;
}

void al_task_free(struct al_task *t)
{
	cJSON_Delete(t->json);
	free(t->instructions);
	free(t->input);
	model_config_free(&t->model);
	free(t->provider_type);
	free(t->rootfs);
	free(t->image);
	free(t->start_snapshot);
	free(t->start_archive);
	free(t->store.bucket);
	free(t->store.prefix);
	free(t->store.endpoint);
	free(t->store.region);
	free(t->store.ca_bundle);
	free(t->memory.memories_dir);
	free(t->memory.sessions_dir);
	free(t->memory.extra_prompt);
	model_config_free(&t->memory.phase1);
	model_config_free(&t->memory.phase2);
	memset(t, 0, sizeof(*t));
}
