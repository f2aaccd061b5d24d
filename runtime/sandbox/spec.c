/* SPDX-License-Identifier: Apache-2.0 */
#include "spec.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "cleanup.h"
#include "json.h"
#include "bucket_mounts.h"
#include "manifest.h"
#include "strv.h"
#include "util.h"

#define MIN_MEMORY (4ULL << 20)
#define MIN_DISK (1ULL << 20)
#define MAX_PIDS 4194304
#define MAX_CPUS 1024
/* 512 TiB: beyond any host, and a size the record reads back exactly
 * (parse_size_field). */
#define MAX_SIZE (1ULL << 49)

static void wipe_strings(cJSON *j)
{
	cJSON *c;

	cJSON_ArrayForEach(c, j)
	{
		if (cJSON_IsString(c) && c->valuestring)
			explicit_bzero(c->valuestring, strlen(c->valuestring));
		else
			wipe_strings(c);
	}
}

void sandbox_spec_wipe_credentials(struct sandbox_spec *s)
{
	if (!s->mount_credentials)
		return;
	wipe_strings(s->mount_credentials);
	cJSON_Delete(s->mount_credentials);
	s->mount_credentials = NULL;
}

void sandbox_spec_free(struct sandbox_spec *s)
{
	sandbox_spec_wipe_credentials(s);
	free(s->rootfs);
	al_strv_free(s->env);
	free(s->workspace);
	cJSON_Delete(s->manifest);
	if (s->parsed)
		manifest_free(s->parsed);
	if (s->mounts)
		manifest_free(s->mounts);
	*s = (struct sandbox_spec){0};
}

/* ---- from a request ------------------------------------------------------------------------ */

static int parse_size_field(const cJSON *v, const char *what, uint64_t *out, struct al_error *err)
{
	/* The record keeps sizes as JSON numbers, which cJSON prints with 15
	 * significant digits whenever those read back within its tolerance:
	 * only sizes below 10^15 come back exactly (beyond 2^53 not even as
	 * given, and near 2^64 not as any uint64_t). */
	if (cJSON_IsNumber(v)) {
		if (v->valuedouble < 0 || v->valuedouble > (double)MAX_SIZE)
			return al_error_set(err, EINVAL, "%s must be 0 to 512 TiB", what);
		*out = (uint64_t)v->valuedouble;
		return 0;
	}
	if (cJSON_IsString(v)) {
		int r = al_parse_size(v->valuestring, out, err);
		if (r < 0)
			return al_error_prefix(err, "%s", what);
		if (*out > MAX_SIZE)
			return al_error_set(err, EINVAL, "%s must be at most 512 TiB", what);
		return 0;
	}
	return al_error_set(err, EINVAL, "%s must be a number of bytes or a size string", what);
}

/* "memory_bytes", or its short form "memory" (the same for disk). */
static const cJSON *either(const cJSON *o, const char *a, const char *b)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, a);

	return v ? v : cJSON_GetObjectItemCaseSensitive(o, b);
}

/*
 * The writable layer is a tmpfs: what it holds is RAM charged to the
 * sandbox's memory limit.  A disk cap at or above that limit would end a
 * full disk in an OOM kill instead of "no space"; so the default is half
 * the memory limit (at most SANDBOX_DEFAULT_DISK), and a larger one asked
 * for is refused.
 */
static int check_disk(struct sandbox_spec *s, bool disk_given, struct al_error *err)
{
	uint64_t mem = s->limits.memory_bytes;

	if (!disk_given) {
		if (mem && mem / 2 < s->disk_bytes)
			s->disk_bytes = mem / 2 > MIN_DISK ? mem / 2 : MIN_DISK;
		return 0;
	}
	if (mem && s->disk_bytes >= mem)
		return al_error_set(
		    err, EINVAL,
		    "limits.disk (%llu MiB) must be below limits.memory (%llu MiB): "
		    "the disk is RAM charged to the memory limit, so filling it "
		    "would end in an OOM kill rather than 'no space'",
		    (unsigned long long)(s->disk_bytes >> 20), (unsigned long long)(mem >> 20));
	return 0;
}

static int parse_limits(const cJSON *lim, struct sandbox_spec *s, struct al_error *err)
{
	const cJSON *v;
	int r;

	if (!lim || cJSON_IsNull(lim))
		return check_disk(s, false, err);
	if (!cJSON_IsObject(lim))
		return al_error_set(err, EINVAL, "limits must be an object");
	if ((v = either(lim, "memory_bytes", "memory"))) {
		r = parse_size_field(v, "limits.memory", &s->limits.memory_bytes, err);
		if (r < 0)
			return r;
		if (s->limits.memory_bytes && s->limits.memory_bytes < MIN_MEMORY)
			return al_error_set(err, EINVAL, "limits.memory must be at least 4 MiB");
	}
	if ((v = cJSON_GetObjectItemCaseSensitive(lim, "pids"))) {
		if (!cJSON_IsNumber(v) || v->valuedouble < 0 || v->valuedouble > MAX_PIDS)
			return al_error_set(err, EINVAL, "limits.pids must be 0..%d", MAX_PIDS);
		s->limits.pids = (uint64_t)v->valuedouble;
		if (s->limits.pids && s->limits.pids < 2)
			return al_error_set(err, EINVAL, "limits.pids must be at least 2");
	}
	if ((v = cJSON_GetObjectItemCaseSensitive(lim, "cpus"))) {
		if (!cJSON_IsNumber(v) || v->valuedouble < 0 || v->valuedouble > MAX_CPUS)
			return al_error_set(err, EINVAL, "limits.cpus must be 0..%d", MAX_CPUS);
		s->limits.cpus = v->valuedouble;
		if (s->limits.cpus > 0 && s->limits.cpus < 0.01)
			return al_error_set(err, EINVAL, "limits.cpus must be at least 0.01");
	}
	if ((v = either(lim, "disk_bytes", "disk"))) {
		r = parse_size_field(v, "limits.disk", &s->disk_bytes, err);
		if (r < 0)
			return r;
		if (s->disk_bytes < MIN_DISK)
			return al_error_set(err, EINVAL, "limits.disk must be at least 1 MiB");
	}
	return check_disk(s, v != NULL, err);
}

/* True when path is dir itself or below it (both canonical). */
static bool path_within(const char *path, const char *dir)
{
	size_t n = strlen(dir);

	return !strncmp(path, dir, n) && (path[n] == '/' || path[n] == '\0' || !strcmp(dir, "/"));
}

static int parse_rootfs(const cJSON *v, const struct sandbox_spec_policy *policy,
                        struct sandbox_spec *s, struct al_error *err)
{
	const char *given;
	struct stat st;

	if (v && !cJSON_IsNull(v) && (!cJSON_IsString(v) || v->valuestring[0] != '/'))
		return al_error_set(err, EINVAL, "rootfs must be an absolute path");
	given = cJSON_IsString(v) ? v->valuestring : policy->default_rootfs;
	s->rootfs = realpath(given, NULL);
	if (!s->rootfs)
		return al_error_set(err, EINVAL, "rootfs %s: %s", given, strerror(errno));
	if (stat(s->rootfs, &st) < 0 || !S_ISDIR(st.st_mode))
		return al_error_set(err, EINVAL, "rootfs %s is not a directory", s->rootfs);
	if (!policy->trusted) {
		/* The directory that holds the default rootfs, and every rootfs
		 * the administrator put beside it. */
		_cleanup_free_ char *def = realpath(policy->default_rootfs, NULL);
		char *slash = def ? strrchr(def, '/') : NULL;

		if (slash && slash != def)
			*slash = '\0';
		if (!def || !path_within(s->rootfs, def))
			return al_error_set(err, EPERM,
			                    "rootfs %s: only root may use a rootfs outside %s",
			                    s->rootfs, def ? def : "the default rootfs directory");
	}
	return 0;
}

static int parse_manifest(const cJSON *v, const struct sandbox_spec_policy *policy,
                          struct sandbox_spec *s, struct al_error *err)
{
	int r;

	if (!v || cJSON_IsNull(v))
		return 0;
	r = manifest_parse(v, 0, 0, &s->parsed, err);
	if (r < 0) {
		err->code = EINVAL; /* a missing local source is bad input too */
		return al_error_prefix(err, "manifest");
	}
	if (!policy->trusted && manifest_first_host_source(s->parsed))
		return al_error_set(err, EPERM,
		                    "manifest entry '%s': only root may copy host files",
		                    manifest_first_host_source(s->parsed));
	s->manifest = cJSON_Duplicate(v, true);
	if (!s->manifest)
		return al_error_set(err, ENOMEM, "out of memory");
	/* The manifest's environment comes before the request's own. */
	for (char *const *e = manifest_environment(s->parsed); e && *e; e++) {
		_cleanup_free_ char *k = strdup(*e);
		char *eq = k ? strchr(k, '=') : NULL;

		if (!k)
			return al_error_set(err, ENOMEM, "out of memory");
		if (!eq)
			continue;
		*eq = '\0';
		if (al_strv_env_set(&s->env, k, eq + 1) < 0)
			return al_error_set(err, ENOMEM, "out of memory");
	}
	return 0;
}

static int parse_env(const cJSON *v, struct sandbox_spec *s, struct al_error *err)
{
	const cJSON *it;

	if (!v || cJSON_IsNull(v))
		return 0;
	if (!cJSON_IsObject(v))
		return al_error_set(err, EINVAL, "env must be an object of strings");
	cJSON_ArrayForEach(it, v)
	{
		if (!cJSON_IsString(it) || !it->string[0] || strchr(it->string, '='))
			return al_error_set(err, EINVAL, "env: invalid entry '%s'", it->string);
		if (al_strv_env_set(&s->env, it->string, it->valuestring) < 0)
			return al_error_set(err, ENOMEM, "out of memory");
	}
	return 0;
}

static int parse_request(const cJSON *req, const struct sandbox_spec_policy *policy,
                         struct sandbox_spec *s, struct al_error *err)
{
	const cJSON *v;
	int r;

	if (req && !cJSON_IsObject(req))
		return al_error_set(err, EINVAL, "request body must be a JSON object");
	snprintf(s->profile, sizeof(s->profile), "default");
	s->limits.memory_bytes = SANDBOX_DEFAULT_MEMORY;
	s->limits.pids = SANDBOX_DEFAULT_PIDS;
	s->disk_bytes = SANDBOX_DEFAULT_DISK;

	if ((v = cJSON_GetObjectItemCaseSensitive(req, "name")) && !cJSON_IsNull(v)) {
		if (!cJSON_IsString(v) || !al_valid_name(v->valuestring))
			return al_error_set(err, EINVAL,
			                    "name must match [a-zA-Z0-9][a-zA-Z0-9_.-]{0,62}");
		snprintf(s->name, sizeof(s->name), "%s", v->valuestring);
	}
	r = parse_rootfs(cJSON_GetObjectItemCaseSensitive(req, "rootfs"), policy, s, err);
	if (r < 0)
		return r;
	if ((v = cJSON_GetObjectItemCaseSensitive(req, "seccomp_profile")) && !cJSON_IsNull(v)) {
		if (!cJSON_IsString(v) || !al_valid_name(v->valuestring))
			return al_error_set(err, EINVAL, "invalid seccomp_profile");
		snprintf(s->profile, sizeof(s->profile), "%s", v->valuestring);
	}
	if ((v = cJSON_GetObjectItemCaseSensitive(req, "network")) && !cJSON_IsNull(v)) {
		if (!cJSON_IsString(v) ||
		    (strcmp(v->valuestring, "loopback") && strcmp(v->valuestring, "none")))
			return al_error_set(err, EINVAL,
			                    "network: only \"loopback\" is supported (got %s)",
			                    cJSON_IsString(v) ? v->valuestring : "a non-string");
	}
	r = parse_limits(cJSON_GetObjectItemCaseSensitive(req, "limits"), s, err);
	if (r < 0)
		return r;
	if (al_strv_env_set(&s->env, "PATH",
	                    "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin") < 0 ||
	    al_strv_env_set(&s->env, "HOME", "/root") < 0 ||
	    al_strv_env_set(&s->env, "LANG", "C.UTF-8") < 0)
		return al_error_set(err, ENOMEM, "out of memory");
	r = parse_manifest(cJSON_GetObjectItemCaseSensitive(req, "manifest"), policy, s, err);
	if (r < 0)
		return r;
	v = cJSON_GetObjectItemCaseSensitive(req, "mount_credentials");
	r = bucket_mounts_check_credentials(s->parsed, v, err);
	if (r < 0)
		return r;
	if (v && !cJSON_IsNull(v)) {
		s->mount_credentials = cJSON_Duplicate(v, true);
		if (!s->mount_credentials)
			return al_error_set(err, ENOMEM, "out of memory");
	}
	r = parse_env(cJSON_GetObjectItemCaseSensitive(req, "env"), s, err);
	if (r < 0)
		return r;
	s->workspace = strdup(s->parsed ? manifest_root(s->parsed) : "/workspace");
	if (!s->workspace)
		return al_error_set(err, ENOMEM, "out of memory");
	return 0;
}

int sandbox_spec_from_request(const cJSON *req, const struct sandbox_spec_policy *policy,
                              struct sandbox_spec *out, struct al_error *err)
{
	struct sandbox_spec s = {0};
	int r = parse_request(req, policy, &s, err);

	if (r < 0) {
		sandbox_spec_free(&s);
		return r;
	}
	*out = s;
	return 0;
}

/* ---- records ------------------------------------------------------------------------------- */

static cJSON *env_object(char *const *env)
{
	cJSON *o = cJSON_CreateObject();

	for (; o && env && *env; env++) {
		const char *eq = strchr(*env, '=');
		_cleanup_free_ char *key = eq ? strndup(*env, (size_t)(eq - *env)) : NULL;

		if (!eq)
			continue;
		if (!key || !cJSON_AddStringToObject(o, key, eq + 1)) {
			cJSON_Delete(o);
			return NULL;
		}
	}
	return o;
}

cJSON *sandbox_spec_to_json(const struct sandbox_spec *s)
{
	_cleanup_cjson_ cJSON *o = cJSON_CreateObject();
	cJSON *lim = o ? cJSON_AddObjectToObject(o, "limits") : NULL;

	if (!lim || !cJSON_AddStringToObject(o, "name", s->name) ||
	    !cJSON_AddStringToObject(o, "rootfs", s->rootfs) ||
	    !cJSON_AddStringToObject(o, "workspace", s->workspace) ||
	    !cJSON_AddStringToObject(o, "seccomp_profile", s->profile) ||
	    !cJSON_AddNumberToObject(lim, "memory_bytes", (double)s->limits.memory_bytes) ||
	    !cJSON_AddNumberToObject(lim, "pids", (double)s->limits.pids) ||
	    !cJSON_AddNumberToObject(lim, "cpus", s->limits.cpus) ||
	    !cJSON_AddNumberToObject(lim, "disk_bytes", (double)s->disk_bytes) ||
	    !cJSON_AddItemToObject(o, "env", env_object(s->env)) ||
	    !cJSON_AddNumberToObject(o, "owner_uid", (double)s->owner))
		return NULL;
	return TAKE_PTR(o);
}

static int env_from_record(const cJSON *v, char ***env)
{
	const cJSON *it;

	/* Records before the spec kept env as an array of "K=V". */
	if (cJSON_IsArray(v)) {
		*env = al_json_to_strv(v);
		return *env ? 0 : -ENOMEM;
	}
	*env = calloc(1, sizeof(char *));
	if (!*env)
		return -ENOMEM;
	if (!cJSON_IsObject(v))
		return 0;
	cJSON_ArrayForEach(it, v)
	{
		if (cJSON_IsString(it) && al_strv_env_set(env, it->string, it->valuestring) < 0)
			return -ENOMEM;
	}
	return 0;
}

static int read_record(const cJSON *rec, struct sandbox_spec *s, struct al_error *err)
{
	const cJSON *lim = cJSON_GetObjectItemCaseSensitive(rec, "limits");
	const char *name = al_json_str(rec, "name"), *profile = al_json_str(rec, "seccomp_profile");
	const char *rootfs = al_json_str(rec, "rootfs"), *ws = al_json_str(rec, "workspace");

	if (!cJSON_IsObject(rec) || !rootfs)
		return al_error_set(err, EINVAL, "sandbox record without a rootfs");
	snprintf(s->name, sizeof(s->name), "%s", name ? name : "");
	snprintf(s->profile, sizeof(s->profile), "%s", profile ? profile : "default");
	s->limits.memory_bytes = (uint64_t)al_json_num(lim, "memory_bytes", 0);
	s->limits.pids = (uint64_t)al_json_num(lim, "pids", 0);
	s->limits.cpus = al_json_num(lim, "cpus", 0);
	/* Earlier state.json files kept it beside limits. */
	s->disk_bytes = (uint64_t)al_json_num(lim, "disk_bytes", al_json_num(rec, "disk_bytes", 0));
	/* Records from before owners belong to root. */
	s->owner = (uid_t)al_json_num(rec, "owner_uid", 0);
	s->rootfs = strdup(rootfs);
	s->workspace = strdup(ws ? ws : "/workspace");
	if (!s->rootfs || !s->workspace ||
	    env_from_record(cJSON_GetObjectItemCaseSensitive(rec, "env"), &s->env) < 0)
		return al_error_set(err, ENOMEM, "out of memory");
	return 0;
}

int sandbox_spec_from_record(const cJSON *rec, struct sandbox_spec *out, struct al_error *err)
{
	struct sandbox_spec s = {0};
	int r = read_record(rec, &s, err);

	if (r < 0) {
		sandbox_spec_free(&s);
		return r;
	}
	*out = s;
	return 0;
}

/* The member of limits object lim that parse_limits reads for the field
 * called name: the first of a name given twice, the long form of one given
 * in both forms. */
static const cJSON *limits_member_read(const cJSON *lim, const char *name)
{
	if (!strcmp(name, "memory") || !strcmp(name, "memory_bytes"))
		return either(lim, "memory_bytes", "memory");
	if (!strcmp(name, "disk") || !strcmp(name, "disk_bytes"))
		return either(lim, "disk_bytes", "disk");
	return cJSON_GetObjectItemCaseSensitive(lim, name);
}

cJSON *sandbox_spec_restore_request(const cJSON *record, const cJSON *req)
{
	static const char *const copied[] = {"rootfs", "seccomp_profile", "limits", "env"};
	_cleanup_cjson_ cJSON *o = cJSON_CreateObject();
	const cJSON *v, *it;
	cJSON *lim;

	if (!o)
		return NULL;
	for (size_t i = 0; i < AL_ARRAY_SIZE(copied); i++)
		if ((v = cJSON_GetObjectItemCaseSensitive(record, copied[i])) &&
		    !cJSON_AddItemToObject(o, copied[i], cJSON_Duplicate(v, true)))
			return NULL;
	if ((v = cJSON_GetObjectItemCaseSensitive(req, "name")) &&
	    !cJSON_AddItemToObject(o, "name", cJSON_Duplicate(v, true)))
		return NULL;
	v = cJSON_GetObjectItemCaseSensitive(req, "limits");
	if (!v)
		return TAKE_PTR(o);
	lim = cJSON_GetObjectItemCaseSensitive(o, "limits");
	if (!cJSON_IsObject(v) || !cJSON_IsObject(lim)) {
		/* Not an object (the parser says why), or nothing recorded. */
		cJSON_DeleteItemFromObjectCaseSensitive(o, "limits");
		if (!cJSON_AddItemToObject(o, "limits", cJSON_Duplicate(v, true)))
			return NULL;
		return TAKE_PTR(o);
	}
	/* Field by field; a short form given replaces the recorded long one.
	 * Only what a create with the same limits would read is laid over: a
	 * later duplicate, or a short form beside its long one, would otherwise
	 * win here where it loses in parse_limits. */
	cJSON_ArrayForEach(it, v)
	{
		if (it != limits_member_read(v, it->string))
			continue;
		if (!strcmp(it->string, "memory"))
			cJSON_DeleteItemFromObjectCaseSensitive(lim, "memory_bytes");
		if (!strcmp(it->string, "disk"))
			cJSON_DeleteItemFromObjectCaseSensitive(lim, "disk_bytes");
		cJSON_DeleteItemFromObjectCaseSensitive(lim, it->string);
		if (!cJSON_AddItemToObject(lim, it->string, cJSON_Duplicate(it, true)))
			return NULL;
	}
	return TAKE_PTR(o);
}

bool sandbox_spec_poolable(const struct sandbox_spec *s, const struct sandbox_spec *base)
{
	return !s->name[0] && !s->manifest && !strcmp(s->rootfs, base->rootfs) &&
	       !strcmp(s->profile, base->profile) &&
	       s->limits.memory_bytes == base->limits.memory_bytes &&
	       s->limits.pids == base->limits.pids && s->limits.cpus == base->limits.cpus &&
	       s->disk_bytes == base->disk_bytes && !strcmp(s->workspace, base->workspace);
}

int sandbox_spec_restore_mounts(struct sandbox_spec *s, const cJSON *manifest,
                                const cJSON *credentials, struct al_error *err)
{
	_cleanup_cjson_ cJSON *only = NULL;
	const cJSON *entries, *e, *root;
	cJSON *kept;
	int r;

	if (!cJSON_IsObject(manifest))
		return bucket_mounts_check_credentials(NULL, credentials, err);
	/* Only the mount entries: the rest came back in the layer, and a
	 * local_file's source may be gone from the host by now. */
	only = cJSON_CreateObject();
	kept = only ? cJSON_AddObjectToObject(only, "entries") : NULL;
	if (!kept)
		return al_error_set(err, ENOMEM, "out of memory");
	root = cJSON_GetObjectItemCaseSensitive(manifest, "root");
	if (cJSON_IsString(root) && !cJSON_AddStringToObject(only, "root", root->valuestring))
		return al_error_set(err, ENOMEM, "out of memory");
	entries = cJSON_GetObjectItemCaseSensitive(manifest, "entries");
	cJSON_ArrayForEach(e, entries)
	{
		const char *t = al_json_str(e, "type");
		size_t len = t ? strlen(t) : 0;
		if (!t || (strcmp(t, "mount") && (len < 6 || strcmp(t + len - 6, "_mount"))))
			continue;
		if (!cJSON_AddItemToObject(kept, e->string, cJSON_Duplicate(e, true)))
			return al_error_set(err, ENOMEM, "out of memory");
	}
	r = manifest_parse(only, 0, 0, &s->mounts, err);
	if (r < 0)
		return al_error_prefix(err, "manifest");
	r = bucket_mounts_check_credentials(s->mounts, credentials, err);
	if (r < 0)
		return r;
	if (credentials && !cJSON_IsNull(credentials)) {
		s->mount_credentials = cJSON_Duplicate(credentials, true);
		if (!s->mount_credentials)
			return al_error_set(err, ENOMEM, "out of memory");
	}
	return 0;
}
