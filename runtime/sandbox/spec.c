/* SPDX-License-Identifier: Apache-2.0 */
#include "spec.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "cleanup.h"
#include "images.h"
#include "json.h"
#include "bucket_mounts.h"
#include "manifest.h"
#include "netspec.h"
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
	free(s->image);
	al_strv_free(s->lowers);
	free(s->cwd);
	al_strv_free(s->env);
	al_strv_free(s->labels);
	free(s->workspace);
	cJSON_Delete(s->manifest);
	if (s->parsed)
		manifest_free(s->parsed);
	if (s->mounts)
		manifest_free(s->mounts);
	*s = (struct sandbox_spec){0};
}

/* ---- from a request ------------------------------------------------------------------------ */

/*
 * The keys of a create request, each with the JSON types it may have: the
 * one list a new create setting is added to (docs/api.md, docs/openapi.yaml
 * describe them).  "snapshot", "exec" and "remove" are read by the API
 * (api.c), the rest here.
 */
#define NULLABLE AL_JSON_NULL
static const struct al_json_key create_keys[] = {
    {"name", AL_JSON_STRING | NULLABLE},
    {"rootfs", AL_JSON_STRING | NULLABLE},
    {"image", AL_JSON_STRING | NULLABLE},
    {"image_id", AL_JSON_STRING | NULLABLE},
    {"seccomp_profile", AL_JSON_STRING | NULLABLE},
    {"network", AL_JSON_STRING | AL_JSON_OBJECT | NULLABLE},
    {"ports", AL_JSON_ARRAY | NULLABLE},
    {"limits", AL_JSON_OBJECT | NULLABLE},
    {"manifest", AL_JSON_OBJECT | NULLABLE},
    {"mount_credentials", AL_JSON_OBJECT | NULLABLE},
    {"env", AL_JSON_OBJECT | NULLABLE},
    {"ttl", AL_JSON_NUMBER | NULLABLE},
    {"idle_timeout", AL_JSON_NUMBER | NULLABLE},
    {"labels", AL_JSON_OBJECT | NULLABLE},
    {"snapshot", AL_JSON_STRING},
    {"exec", AL_JSON_OBJECT},
    {"remove", AL_JSON_BOOL},
};

/* What a restore (a create with "snapshot") takes besides: everything else
 * comes from the snapshot's record (sandbox_spec_restore_request). */
static const struct al_json_key restore_keys[] = {
    {"snapshot", AL_JSON_STRING},
    {"name", AL_JSON_STRING | NULLABLE},
    {"limits", AL_JSON_OBJECT | NULLABLE},
    {"ttl", AL_JSON_NUMBER | NULLABLE},
    {"idle_timeout", AL_JSON_NUMBER | NULLABLE},
    {"labels", AL_JSON_OBJECT | NULLABLE},
    {"mount_credentials", AL_JSON_OBJECT | NULLABLE},
    /* Mount entries that replace the recorded ones (sandbox_spec_replace_mounts). */
    {"mounts", AL_JSON_OBJECT | NULLABLE},
    /* A restore keeps the network mode; ports are its own (the original's
     * may still be bound). */
    {"ports", AL_JSON_ARRAY | NULLABLE},
    {"exec", AL_JSON_OBJECT},
    {"remove", AL_JSON_BOOL},
};

/* "memory" and "disk" are short for "memory_bytes" and "disk_bytes". */
static const struct al_json_key limits_keys[] = {
    {"memory", AL_JSON_NUMBER | AL_JSON_STRING | NULLABLE},
    {"memory_bytes", AL_JSON_NUMBER | AL_JSON_STRING | NULLABLE},
    {"disk", AL_JSON_NUMBER | AL_JSON_STRING | NULLABLE},
    {"disk_bytes", AL_JSON_NUMBER | AL_JSON_STRING | NULLABLE},
    {"pids", AL_JSON_NUMBER | NULLABLE},
    {"cpus", AL_JSON_NUMBER | NULLABLE},
};

int sandbox_spec_check_request(const cJSON *req, struct al_error *err)
{
	const cJSON *snap = cJSON_GetObjectItemCaseSensitive(req, "snapshot");
	const cJSON *lim;
	int r;

	if (snap)
		r = al_json_check(req, restore_keys, "create request (from a snapshot)", err);
	else
		r = al_json_check(req, create_keys, "create request", err);
	if (r < 0)
		return r;
	lim = cJSON_GetObjectItemCaseSensitive(req, "limits");
	if (cJSON_IsObject(lim))
		return al_json_check(lim, limits_keys, "limits", err);
	return 0;
}

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

	if (!v || cJSON_IsNull(v))
		v = cJSON_GetObjectItemCaseSensitive(o, b);
	return v && !cJSON_IsNull(v) ? v : NULL;
}

/* A member that is there and not null. */
static const cJSON *given(const cJSON *o, const char *key)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);

	return v && !cJSON_IsNull(v) ? v : NULL;
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
	if ((v = given(lim, "pids"))) {
		if (!cJSON_IsNumber(v) || v->valuedouble < 0 || v->valuedouble > MAX_PIDS)
			return al_error_set(err, EINVAL, "limits.pids must be 0..%d", MAX_PIDS);
		s->limits.pids = (uint64_t)v->valuedouble;
		if (s->limits.pids && s->limits.pids < 2)
			return al_error_set(err, EINVAL, "limits.pids must be at least 2");
	}
	if ((v = given(lim, "cpus"))) {
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

static int lowers_of_rootfs(struct sandbox_spec *s, struct al_error *err)
{
	s->lowers = calloc(2, sizeof(char *));
	if (!s->lowers || !(s->lowers[0] = strdup(s->rootfs)))
		return al_error_set(err, ENOMEM, "out of memory");
	return 0;
}

/* The image named by v: its layers, user, working directory, and its Env
 * over the defaults (the manifest's and the request's come after). */
static int parse_image(const cJSON *v, const cJSON *want_id,
                       const struct sandbox_spec_policy *policy, struct sandbox_spec *s,
                       struct al_error *err)
{
	_cleanup_(image_free) struct image img = {0};
	bool has_home = false;
	int r;

	if (!cJSON_IsString(v) || !image_name_valid(v->valuestring))
		return al_error_set(err, EINVAL, "image must be the name of an imported image");
	if (!policy->images_dir)
		return al_error_set(err, EINVAL, "this airlockd has no image store");
	r = image_load(policy->images_dir, v->valuestring, &img, err);
	if (r < 0) {
		err->code = r == -ENOENT ? ENOENT : EINVAL;
		return -err->code;
	}
	if (want_id && !cJSON_IsNull(want_id) &&
	    (!cJSON_IsString(want_id) || strcmp(want_id->valuestring, img.id)))
		return al_error_set(err, EINVAL,
		                    "image '%s' is %s now, not %s (it was removed and imported "
		                    "again)",
		                    img.name, img.id,
		                    cJSON_IsString(want_id) ? want_id->valuestring : "that");
	s->image = strdup(img.name);
	s->rootfs = strdup(img.lowers[0]);
	s->lowers = TAKE_PTR(img.lowers);
	s->cwd = TAKE_PTR(img.workdir);
	snprintf(s->image_id, sizeof(s->image_id), "%s", img.id);
	s->uid = img.uid;
	s->gid = img.gid;
	if (!s->image || !s->rootfs)
		return al_error_set(err, ENOMEM, "out of memory");
	for (char **e = img.env; e && *e; e++) {
		char *eq = strchr(*e, '=');
		if (!eq || eq == *e)
			continue;
		*eq = '\0';
		has_home |= !strcmp(*e, "HOME");
		r = al_strv_env_set(&s->env, *e, eq + 1);
		*eq = '=';
		if (r < 0)
			return al_error_set(err, ENOMEM, "out of memory");
	}
	/* As docker does: the user's home, unless Env names one. */
	if (!has_home && img.home && al_strv_env_set(&s->env, "HOME", img.home) < 0)
		return al_error_set(err, ENOMEM, "out of memory");
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

/* Seconds, a whole number up to SANDBOX_MAX_LIFETIME_S; 0 or absent: none. */
static int parse_seconds(const cJSON *req, const char *key, uint64_t *out, struct al_error *err)
{
	const cJSON *v = given(req, key);

	*out = 0;
	if (!v)
		return 0;
	if (!al_json_is_count(v, (double)SANDBOX_MAX_LIFETIME_S))
		return al_error_set(err, EINVAL,
		                    "%s must be a whole number of seconds, 0 to %llu (got %g)", key,
		                    (unsigned long long)SANDBOX_MAX_LIFETIME_S, v->valuedouble);
	*out = (uint64_t)v->valuedouble;
	return 0;
}

/* A label key: like a name, and "/" too ("airlock.run/id"). */
static bool valid_label_key(const char *k)
{
	size_t n = strlen(k);

	if (n == 0 || n > SANDBOX_LABEL_KEY_MAX ||
	    !((k[0] >= 'a' && k[0] <= 'z') || (k[0] >= 'A' && k[0] <= 'Z') ||
	      (k[0] >= '0' && k[0] <= '9')))
		return false;
	for (const char *p = k; *p; p++)
		if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
		      (*p >= '0' && *p <= '9') || *p == '_' || *p == '.' || *p == '-' || *p == '/'))
			return false;
	return true;
}

int sandbox_spec_parse_labels(const cJSON *v, char ***out, struct al_error *err)
{
	_cleanup_strv_ char **labels = calloc(1, sizeof(char *));
	const cJSON *it;
	size_t n = 0;

	if (!labels)
		return al_error_set(err, ENOMEM, "out of memory");
	if (v && !cJSON_IsNull(v) && !cJSON_IsObject(v))
		return al_error_set(err, EINVAL, "labels must be an object of strings");
	cJSON_ArrayForEach(it, v)
	{
		if (++n > SANDBOX_LABELS_MAX)
			return al_error_set(err, EINVAL, "labels: at most %d", SANDBOX_LABELS_MAX);
		if (!valid_label_key(it->string))
			return al_error_set(err, EINVAL,
			                    "labels: invalid key \"%.64s\" (1 to %d of "
			                    "[a-zA-Z0-9_.-/], starting with a letter or digit)",
			                    it->string, SANDBOX_LABEL_KEY_MAX);
		if (!cJSON_IsString(it))
			return al_error_set(err, EINVAL, "labels.%s must be a string (got %s)",
			                    it->string, al_json_type_name(it));
		if (strlen(it->valuestring) > SANDBOX_LABEL_VALUE_MAX)
			return al_error_set(err, EINVAL, "labels.%s: at most %d bytes", it->string,
			                    SANDBOX_LABEL_VALUE_MAX);
		for (const char *p = it->valuestring; *p; p++)
			if ((unsigned char)*p < 0x20 || *p == 0x7f)
				return al_error_set(err, EINVAL,
				                    "labels.%s: control characters are not allowed",
				                    it->string);
		if (al_strv_env_set(&labels, it->string, it->valuestring) < 0)
			return al_error_set(err, ENOMEM, "out of memory");
	}
	*out = TAKE_PTR(labels);
	return 0;
}

int sandbox_spec_parse_lifetime(const cJSON *req, struct sandbox_spec *s, struct al_error *err)
{
	int r = parse_seconds(req, "ttl", &s->ttl_s, err);

	if (r == 0)
		r = parse_seconds(req, "idle_timeout", &s->idle_timeout_s, err);
	if (r == 0) {
		al_strv_free(s->labels);
		s->labels = NULL;
		r = sandbox_spec_parse_labels(cJSON_GetObjectItemCaseSensitive(req, "labels"),
		                              &s->labels, err);
	}
	return r;
}

static int parse_request(const cJSON *req, const struct sandbox_spec_policy *policy,
                         struct sandbox_spec *s, struct al_error *err)
{
	const cJSON *v, *image;
	int r;

	if (req && (r = sandbox_spec_check_request(req, err)) < 0)
		return r;
	r = sandbox_spec_parse_lifetime(req, s, err);
	if (r < 0)
		return r;
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
	image = cJSON_GetObjectItemCaseSensitive(req, "image");
	if (image && cJSON_IsNull(image))
		image = NULL;
	v = cJSON_GetObjectItemCaseSensitive(req, "rootfs");
	if (image && v && !cJSON_IsNull(v))
		return al_error_set(err, EINVAL, "give rootfs or image, not both");
	if (!image) {
		r = parse_rootfs(v, policy, s, err);
		if (r == 0)
			r = lowers_of_rootfs(s, err);
		if (r < 0)
			return r;
	}
	if ((v = cJSON_GetObjectItemCaseSensitive(req, "seccomp_profile")) && !cJSON_IsNull(v)) {
		if (!cJSON_IsString(v) || !al_valid_name(v->valuestring))
			return al_error_set(err, EINVAL, "invalid seccomp_profile");
		snprintf(s->profile, sizeof(s->profile), "%s", v->valuestring);
	}
	r = netspec_parse(cJSON_GetObjectItemCaseSensitive(req, "network"),
	                  cJSON_GetObjectItemCaseSensitive(req, "ports"), &s->net, err);
	if (r < 0)
		return r;
	/* airlockd binds published ports as root: a client that is not may
	 * not have it take a port its own uid could not. */
	for (size_t i = 0; !policy->trusted && i < s->net.n_ports; i++)
		if (s->net.ports[i].host_port &&
		    s->net.ports[i].host_port < NETSPEC_UNPRIVILEGED_PORT)
			return al_error_set(
			    err, EPERM, "ports: host port %u is privileged (below %u): root only",
			    (unsigned)s->net.ports[i].host_port, NETSPEC_UNPRIVILEGED_PORT);
	r = parse_limits(cJSON_GetObjectItemCaseSensitive(req, "limits"), s, err);
	if (r < 0)
		return r;
	if (al_strv_env_set(&s->env, "PATH",
	                    "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin") < 0 ||
	    al_strv_env_set(&s->env, "HOME", "/root") < 0 ||
	    al_strv_env_set(&s->env, "LANG", "C.UTF-8") < 0)
		return al_error_set(err, ENOMEM, "out of memory");
	if (image) {
		r = parse_image(image, cJSON_GetObjectItemCaseSensitive(req, "image_id"), policy, s,
		                err);
		if (r < 0)
			return r;
	}
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
	    !cJSON_AddItemToObject(o, "labels", env_object(s->labels)) ||
	    !cJSON_AddNumberToObject(o, "ttl", (double)s->ttl_s) ||
	    !cJSON_AddNumberToObject(o, "idle_timeout", (double)s->idle_timeout_s) ||
	    !cJSON_AddNumberToObject(o, "owner_uid", (double)s->owner) ||
	    !cJSON_AddItemToObject(o, "network", netspec_network_json(&s->net)) ||
	    !cJSON_AddItemToObject(o, "ports", netspec_ports_json(&s->net)))
		return NULL;
	if (s->image) {
		cJSON *lowers = cJSON_AddArrayToObject(o, "lowers");
		if (!lowers || !cJSON_AddStringToObject(o, "image", s->image) ||
		    !cJSON_AddStringToObject(o, "image_id", s->image_id) ||
		    !cJSON_AddNumberToObject(o, "uid", (double)s->uid) ||
		    !cJSON_AddNumberToObject(o, "gid", (double)s->gid) ||
		    (s->cwd && !cJSON_AddStringToObject(o, "cwd", s->cwd)))
			return NULL;
		for (char **l = s->lowers; l && *l; l++)
			if (!cJSON_AddItemToArray(lowers, cJSON_CreateString(*l)))
				return NULL;
	}
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
	s->ttl_s = (uint64_t)al_json_num(rec, "ttl", 0);
	s->idle_timeout_s = (uint64_t)al_json_num(rec, "idle_timeout", 0);
	/* Records from before networks have neither key: "none". */
	if (netspec_parse(cJSON_GetObjectItemCaseSensitive(rec, "network"),
	                  cJSON_GetObjectItemCaseSensitive(rec, "ports"), &s->net, err) < 0)
		return al_error_prefix(err, "sandbox record");
	if (!s->rootfs || !s->workspace ||
	    env_from_record(cJSON_GetObjectItemCaseSensitive(rec, "env"), &s->env) < 0 ||
	    env_from_record(cJSON_GetObjectItemCaseSensitive(rec, "labels"), &s->labels) < 0)
		return al_error_set(err, ENOMEM, "out of memory");
	if (!al_json_str(rec, "image"))
		return lowers_of_rootfs(s, err);
	s->image = strdup(al_json_str(rec, "image"));
	snprintf(s->image_id, sizeof(s->image_id), "%s",
	         al_json_str(rec, "image_id") ? al_json_str(rec, "image_id") : "");
	s->uid = (uid_t)al_json_num(rec, "uid", 0);
	s->gid = (gid_t)al_json_num(rec, "gid", 0);
	s->cwd = al_json_str(rec, "cwd") ? strdup(al_json_str(rec, "cwd")) : NULL;
	s->lowers = al_json_to_strv(cJSON_GetObjectItemCaseSensitive(rec, "lowers"));
	if (!s->image || !s->lowers || (al_json_str(rec, "cwd") && !s->cwd))
		return al_error_set(err, ENOMEM, "out of memory");
	if (!s->lowers[0])
		return al_error_set(err, EINVAL, "sandbox record of an image without its layers");
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
	static const char *const copied[] = {"rootfs", "image", "image_id", "seccomp_profile",
	                                     "limits", "env",   "network"};
	bool image = al_json_str(record, "image") != NULL;
	_cleanup_cjson_ cJSON *o = cJSON_CreateObject();
	const cJSON *v, *it;
	cJSON *lim;

	if (!o)
		return NULL;
	for (size_t i = 0; i < AL_ARRAY_SIZE(copied); i++)
		if (!(image && !strcmp(copied[i], "rootfs")) &&
		    (v = cJSON_GetObjectItemCaseSensitive(record, copied[i])) &&
		    !cJSON_AddItemToObject(o, copied[i], cJSON_Duplicate(v, true)))
			return NULL;
	for (size_t i = 0; i < AL_ARRAY_SIZE(restore_keys); i++) {
		const char *k = restore_keys[i].name;
		/* The request's own settings of the new sandbox; limits are laid
		 * over the record's below, the rest is the API's. */
		if (!strcmp(k, "limits") || !strcmp(k, "snapshot") || !strcmp(k, "exec") ||
		    !strcmp(k, "remove"))
			continue;
		/* Checked against the recorded manifest's mounts by
		 * sandbox_spec_restore_mounts, not against a manifest the
		 * restore request does not have. */
		if (!strcmp(k, "mount_credentials") || !strcmp(k, "mounts"))
			continue;
		if ((v = cJSON_GetObjectItemCaseSensitive(req, k)) &&
		    !cJSON_AddItemToObject(o, k, cJSON_Duplicate(v, true)))
			return NULL;
	}
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
	return !s->name[0] && !s->manifest && !s->image && !base->image && !s->net.allowlist &&
	       !s->net.n_ports && !strcmp(s->rootfs, base->rootfs) &&
	       !strcmp(s->profile, base->profile) &&
	       s->limits.memory_bytes == base->limits.memory_bytes &&
	       s->limits.pids == base->limits.pids && s->limits.cpus == base->limits.cpus &&
	       s->disk_bytes == base->disk_bytes && !strcmp(s->workspace, base->workspace);
}

/*
 * The mount entries of entries, into kept, keyed by their full path: those in
 * a dir's children too, flattened (a key may hold '/'), so the restore mounts
 * them where the create did and their credentials keep the same keys.
 */
static int keep_mount_entries(const cJSON *entries, const char *prefix, cJSON *kept, int depth)
{
	const cJSON *e;

	if (depth > 64)
		return -ELOOP;
	cJSON_ArrayForEach(e, entries)
	{
		_cleanup_free_ char *key = NULL;
		const char *t = al_json_str(e, "type");
		int r;

		if (!t || !e->string)
			continue;
		if (prefix ? asprintf(&key, "%s/%s", prefix, e->string) < 0
		           : !(key = strdup(e->string)))
			return -ENOMEM;
		if (!strcmp(t, "dir")) {
			r = keep_mount_entries(cJSON_GetObjectItemCaseSensitive(e, "children"), key,
			                       kept, depth + 1);
			if (r < 0)
				return r;
			continue;
		}
		if (!manifest_type_is_mount(t))
			continue;
		if (!cJSON_AddItemToObject(kept, key, cJSON_Duplicate(e, true)))
			return -ENOMEM;
	}
	return 0;
}

/* Drop the mount entries of entries, and of the children of its dirs. */
static int drop_mount_entries(cJSON *entries, int depth)
{
	cJSON *e = entries ? entries->child : NULL;

	if (depth > 64)
		return -ELOOP;
	while (e) {
		cJSON *next = e->next;
		const char *t = al_json_str(e, "type");
		int r;

		if (manifest_type_is_mount(t)) {
			cJSON_Delete(cJSON_DetachItemViaPointer(entries, e));
		} else if (t && !strcmp(t, "dir")) {
			r = drop_mount_entries(cJSON_GetObjectItemCaseSensitive(e, "children"),
			                       depth + 1);
			if (r < 0)
				return r;
		}
		e = next;
	}
	return 0;
}

int sandbox_spec_replace_mounts(const cJSON *manifest, const cJSON *mounts, cJSON **out,
                                struct al_error *err)
{
	_cleanup_cjson_ cJSON *m = NULL;
	const cJSON *e;
	cJSON *entries;
	int r;

	if (!cJSON_IsObject(mounts))
		return al_error_set(err, EINVAL, "mounts must be an object of mount entries");
	m = cJSON_IsObject(manifest) ? cJSON_Duplicate(manifest, true) : cJSON_CreateObject();
	if (!m || (!cJSON_IsObject(manifest) && !cJSON_AddNumberToObject(m, "version", 1)))
		return al_error_set(err, ENOMEM, "out of memory");
	entries = cJSON_GetObjectItemCaseSensitive(m, "entries");
	if (!entries && !(entries = cJSON_AddObjectToObject(m, "entries")))
		return al_error_set(err, ENOMEM, "out of memory");
	if (!cJSON_IsObject(entries))
		return al_error_set(err, EIO, "the snapshot's manifest has no entries object");
	r = drop_mount_entries(entries, 0);
	if (r < 0)
		return al_error_set(err, -r, "the snapshot's manifest: %s", strerror(-r));
	cJSON_ArrayForEach(e, mounts)
	{
		if (!manifest_type_is_mount(al_json_str(e, "type")))
			return al_error_set(err, EINVAL,
			                    "mounts: '%s' is not a mount entry (a restore's other "
			                    "files come from the snapshot)",
			                    e->string);
		if (cJSON_GetObjectItemCaseSensitive(entries, e->string))
			return al_error_set(err, EINVAL,
			                    "mounts: '%s' is already an entry of the snapshot's "
			                    "manifest",
			                    e->string);
		if (!cJSON_AddItemToObject(entries, e->string, cJSON_Duplicate(e, true)))
			return al_error_set(err, ENOMEM, "out of memory");
	}
	*out = TAKE_PTR(m);
	return 0;
}

int sandbox_spec_restore_mounts(struct sandbox_spec *s, const cJSON *manifest,
                                const cJSON *credentials, struct al_error *err)
{
	_cleanup_cjson_ cJSON *only = NULL;
	const cJSON *entries, *root;
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
	r = keep_mount_entries(entries, NULL, kept, 0);
	if (r < 0)
		return al_error_set(err, -r, "manifest: mount entries: %s", strerror(-r));
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
