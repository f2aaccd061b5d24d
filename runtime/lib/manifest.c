/* SPDX-License-Identifier: Apache-2.0 */
#include "manifest.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <linux/openat2.h>
#include <sys/syscall.h>

#include "cleanup.h"
#include "gitclone.h"
#include "util.h"

/* local_dir trees deeper than this are refused: each level holds two fds. */
#define COPY_MAX_DEPTH 256

enum entry_type {
	ENTRY_FILE,
	ENTRY_DIR,
	ENTRY_LOCAL_FILE,
	ENTRY_LOCAL_DIR,
	ENTRY_GIT_REPO,
	ENTRY_MOUNT,
};

struct manifest_entry {
	char *path; /* relative to the root, exactly as given (parents joined with '/') */
	enum entry_type type;
	char *src;     /* local_file, local_dir */
	char *content; /* file */
	size_t content_len;
	mode_t mode;
	bool mode_set;
	bool ephemeral;
	/* git_repo: url is repo resolved against host as the SDK does */
	char *url, *ref, *subpath;
	/* mounts */
	struct manifest_mount mount;
};

struct manifest {
	char *root;
	struct manifest_entry *entries;
	size_t n_entries;
	size_t cap_entries;
	char **env;
	size_t n_env;
	size_t max_file_bytes;
	size_t max_total_bytes;
	size_t total_bytes;
};

static const char *type_name(enum entry_type t)
{
	switch (t) {
	case ENTRY_FILE:
		return "file";
	case ENTRY_DIR:
		return "dir";
	case ENTRY_LOCAL_FILE:
		return "local_file";
	case ENTRY_LOCAL_DIR:
		return "local_dir";
	case ENTRY_GIT_REPO:
		return "git_repo";
	case ENTRY_MOUNT:
		return "mount";
	}
	return "?";
}

static void mount_clear(struct manifest_mount *mt)
{
	free(mt->provider);
	free(mt->bucket);
	free(mt->prefix);
	free(mt->region);
	free(mt->endpoint);
	free(mt->account);
	free(mt->s3_provider);
	free(mt->path);
}

void manifest_free(struct manifest *m)
{
	if (!m)
		return;
	for (size_t i = 0; i < m->n_entries; i++) {
		free(m->entries[i].path);
		free(m->entries[i].src);
		free(m->entries[i].content);
		free(m->entries[i].url);
		free(m->entries[i].ref);
		free(m->entries[i].subpath);
		mount_clear(&m->entries[i].mount);
	}
	free(m->entries);
	for (size_t i = 0; i < m->n_env; i++)
		free(m->env[i]);
	free(m->env);
	free(m->root);
	free(m);
}

static inline void manifest_freep(struct manifest **m)
{
	manifest_free(*m);
}

const char *manifest_root(const struct manifest *m)
{
	return m->root;
}

char *const *manifest_environment(const struct manifest *m)
{
	return m->env;
}

/* ---- validation ---------------------------------------------------------- */

static bool is_integer(const cJSON *j, double lo, double hi)
{
	return cJSON_IsNumber(j) && isfinite(j->valuedouble) &&
	       floor(j->valuedouble) == j->valuedouble && j->valuedouble >= lo &&
	       j->valuedouble <= hi;
}

/*
 * A key must name a path strictly below the root without any interpretation:
 * relative, no empty, '.' or '..' components, no backslash (the SDK refuses it
 * as a Windows separator).
 */
static int check_key(const char *key, const char *shown, struct al_error *err)
{
	size_t len = strlen(key);
	const char *p = key;

	if (len == 0)
		return al_error_set(err, EINVAL, "manifest entry '%s': empty keys are not allowed",
		                    shown);
	if (len > MANIFEST_MAX_KEY_LEN)
		return al_error_set(err, EINVAL,
		                    "manifest entry '%.64s...': key longer than %d bytes", shown,
		                    MANIFEST_MAX_KEY_LEN);
	if (key[0] == '/')
		return al_error_set(err, EINVAL,
		                    "manifest entry '%s': absolute keys are not allowed", shown);
	if (strchr(key, '\\'))
		return al_error_set(err, EINVAL,
		                    "manifest entry '%s': keys must use '/' separators", shown);
	while (*p) {
		size_t n = strcspn(p, "/");
		if (n == 0)
			return al_error_set(
			    err, EINVAL,
			    "manifest entry '%s': empty path components are not allowed", shown);
		if ((n == 1 && p[0] == '.') || (n == 2 && p[0] == '.' && p[1] == '.'))
			return al_error_set(
			    err, EINVAL, "manifest entry '%s': '%.*s' components are not allowed",
			    shown, (int)n, p);
		if (n > NAME_MAX)
			return al_error_set(
			    err, EINVAL, "manifest entry '%s': path component longer than %d bytes",
			    shown, NAME_MAX);
		p += n;
		if (*p == '/') {
			p++;
			if (!*p)
				return al_error_set(
				    err, EINVAL,
				    "manifest entry '%s': empty path components are not allowed",
				    shown);
		}
	}
	return 0;
}

/* The root must be absolute and free of '..'; it is returned with '.', empty
 * components and trailing slashes removed. */
static int normalize_root(const char *root, char **out, struct al_error *err)
{
	_cleanup_free_ char *norm = NULL;
	size_t len = strlen(root), n = 0;
	const char *p = root;

	if (root[0] != '/')
		return al_error_set(err, EINVAL, "manifest root '%s' must be absolute", root);
	if (len > MANIFEST_MAX_KEY_LEN)
		return al_error_set(err, EINVAL, "manifest root longer than %d bytes",
		                    MANIFEST_MAX_KEY_LEN);
	if (strchr(root, '\\'))
		return al_error_set(err, EINVAL, "manifest root '%s' must use '/' separators",
		                    root);
	norm = malloc(len + 2);
	if (!norm)
		return al_error_set(err, ENOMEM, "out of memory");
	while (*p) {
		size_t c;
		while (*p == '/')
			p++;
		c = strcspn(p, "/");
		if (c == 0 || (c == 1 && p[0] == '.')) {
			p += c;
			continue;
		}
		if (c == 2 && p[0] == '.' && p[1] == '.')
			return al_error_set(err, EINVAL,
			                    "manifest root '%s' must not contain '..' components",
			                    root);
		norm[n++] = '/';
		memcpy(norm + n, p, c);
		n += c;
		p += c;
	}
	if (n == 0)
		norm[n++] = '/';
	norm[n] = '\0';
	*out = TAKE_PTR(norm);
	return 0;
}

/* ---- permissions ----------------------------------------------------------- */

static int parse_triplet(const char *s, const char *exec_special, mode_t *bits, bool *special)
{
	*bits = 0;
	*special = false;
	if (s[0] == 'r')
		*bits |= 4;
	else if (s[0] != '-')
		return -EINVAL;
	if (s[1] == 'w')
		*bits |= 2;
	else if (s[1] != '-')
		return -EINVAL;
	if (s[2] == 'x')
		*bits |= 1;
	else if (s[2] == exec_special[0]) {
		*bits |= 1;
		*special = true;
	} else if (s[2] == exec_special[1])
		*special = true;
	else if (s[2] != '-')
		return -EINVAL;
	return 0;
}

/* "-rwxr-x---" (optionally with a trailing ACL/SELinux marker, as ls prints it). */
static int parse_ls_mode(const char *s, mode_t *mode)
{
	size_t len = strlen(s);
	mode_t u, g, o;
	bool su, sg, sticky;

	if (len == 11 && strchr(".@+", s[10]))
		len = 10;
	if (len != 10 || (s[0] != '-' && s[0] != 'd'))
		return -EINVAL;
	if (parse_triplet(s + 1, "sS", &u, &su) < 0 || parse_triplet(s + 4, "sS", &g, &sg) < 0 ||
	    parse_triplet(s + 7, "tT", &o, &sticky) < 0)
		return -EINVAL;
	/* setuid/setgid are dropped, as the SDK does: a workspace never carries them. */
	*mode = (sticky ? S_ISVTX : 0) | u << 6 | g << 3 | o;
	return 0;
}

static int parse_octal_mode(const char *s, mode_t *mode)
{
	size_t len = strlen(s);
	unsigned long v = 0;

	if (len < 3 || len > 4 || strspn(s, "01234567") != len)
		return -EINVAL;
	v = strtoul(s, NULL, 8);
	*mode = (mode_t)v & 01777;
	return 0;
}

static int permission_bits(const cJSON *obj, const char *name, unsigned dflt, mode_t *out)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, name);

	if (!v) {
		*out = dflt;
		return 0;
	}
	if (!is_integer(v, 0, 7))
		return -EINVAL;
	*out = (mode_t)v->valuedouble;
	return 0;
}

static int parse_permissions(const cJSON *p, const char *path, mode_t *mode, struct al_error *err)
{
	if (is_integer(p, 0, 0177777)) {
		*mode = (mode_t)p->valuedouble & 01777;
		return 0;
	}
	if (cJSON_IsString(p)) {
		if (parse_ls_mode(p->valuestring, mode) == 0 ||
		    parse_octal_mode(p->valuestring, mode) == 0)
			return 0;
		return al_error_set(err, EINVAL, "manifest entry '%s': invalid permissions '%s'",
		                    path, p->valuestring);
	}
	if (cJSON_IsObject(p)) {
		const cJSON *sticky = cJSON_GetObjectItemCaseSensitive(p, "sticky");
		const cJSON *dir = cJSON_GetObjectItemCaseSensitive(p, "directory");
		mode_t u, g, o;

		/* Defaults of an explicit object are the SDK's: owner rwx, nothing else. */
		if (permission_bits(p, "owner", 7, &u) < 0 ||
		    permission_bits(p, "group", 0, &g) < 0 ||
		    permission_bits(p, "other", 0, &o) < 0 || (sticky && !cJSON_IsBool(sticky)) ||
		    (dir && !cJSON_IsBool(dir)))
			return al_error_set(
			    err, EINVAL, "manifest entry '%s': invalid permissions object", path);
		*mode = (cJSON_IsTrue(sticky) ? S_ISVTX : 0) | u << 6 | g << 3 | o;
		return 0;
	}
	return al_error_set(err, EINVAL, "manifest entry '%s': invalid permissions", path);
}

/* ---- entries --------------------------------------------------------------- */

static bool field_allowed(const char *field, enum entry_type t)
{
	static const char *const common[] = {"type", "description", "ephemeral", "permissions",
	                                     "group"};

	for (size_t i = 0; i < AL_ARRAY_SIZE(common); i++)
		if (!strcmp(field, common[i]))
			return true;
	switch (t) {
	case ENTRY_FILE:
		return !strcmp(field, "content");
	case ENTRY_DIR:
		return !strcmp(field, "children");
	case ENTRY_LOCAL_FILE:
	case ENTRY_LOCAL_DIR:
		return !strcmp(field, "src");
	case ENTRY_GIT_REPO:
		return !strcmp(field, "repo") || !strcmp(field, "host") || !strcmp(field, "ref") ||
		       !strcmp(field, "subpath");
	case ENTRY_MOUNT:
		/* Checked by parse_mount, which knows the type's own fields. */
		return true;
	}
	return false;
}

bool manifest_type_is_mount(const char *type)
{
	size_t len = type ? strlen(type) : 0;

	return len && (!strcmp(type, "mount") || (len > 6 && !strcmp(type + len - 6, "_mount")));
}

static int parse_type(const cJSON *json, const char *path, enum entry_type *t, struct al_error *err)
{
	const cJSON *type = cJSON_GetObjectItemCaseSensitive(json, "type");
	const char *s;

	if (!cJSON_IsString(type))
		return al_error_set(err, EINVAL, "manifest entry '%s': missing \"type\"", path);
	s = type->valuestring;
	if (!strcmp(s, "file"))
		*t = ENTRY_FILE;
	else if (!strcmp(s, "dir"))
		*t = ENTRY_DIR;
	else if (!strcmp(s, "local_file"))
		*t = ENTRY_LOCAL_FILE;
	else if (!strcmp(s, "local_dir"))
		*t = ENTRY_LOCAL_DIR;
	else if (!strcmp(s, "git_repo"))
		*t = ENTRY_GIT_REPO;
	else if (!strcmp(s, "mount") || !strcmp(s, "s3_mount") || !strcmp(s, "gcs_mount") ||
	         !strcmp(s, "r2_mount") || !strcmp(s, "azure_blob_mount"))
		*t = ENTRY_MOUNT;
	else if (manifest_type_is_mount(s))
		return al_error_set(
		    err, ENOTSUP, "manifest entry '%s': type '%s' is not supported by airlockd yet",
		    path, s);
	else
		return al_error_set(err, EINVAL, "manifest entry '%s': unknown type '%s'", path, s);
	return 0;
}

static int content_too_large(const struct manifest *m, const struct manifest_entry *e,
                             struct al_error *err)
{
	return al_error_set(err, EINVAL, "manifest entry '%s': content larger than %zu bytes",
	                    e->path, m->max_file_bytes);
}

static int parse_content(struct manifest *m, const cJSON *content, struct manifest_entry *e,
                         struct al_error *err)
{
	if (cJSON_IsString(content)) {
		/* cJSON keeps strings NUL-terminated, so a "\u0000" inside ends the
		 * string: binary content has to come as base64. */
		e->content_len = strlen(content->valuestring);
		if (e->content_len > m->max_file_bytes)
			return content_too_large(m, e, err);
		e->content = strdup(content->valuestring);
		if (!e->content)
			return al_error_set(err, ENOMEM, "out of memory");
	} else if (cJSON_IsObject(content)) {
		const cJSON *type = cJSON_GetObjectItemCaseSensitive(content, "type");
		const cJSON *data = cJSON_GetObjectItemCaseSensitive(content, "data");
		size_t enc_len;

		if (!cJSON_IsString(type) || strcmp(type->valuestring, "base64") ||
		    !cJSON_IsString(data))
			return al_error_set(err, EINVAL,
			                    "manifest entry '%s': content must be a string or "
			                    "{\"type\": \"base64\", \"data\": \"...\"}",
			                    e->path);
		/* Check before decoding so an oversized upload costs no allocation. */
		enc_len = strlen(data->valuestring);
		if (enc_len / 4 * 3 > m->max_file_bytes + 3)
			return content_too_large(m, e, err);
		if (al_base64_decode(data->valuestring, &e->content, &e->content_len, err) < 0)
			return al_error_prefix(err, "manifest entry '%s'", e->path);
		if (e->content_len > m->max_file_bytes)
			return content_too_large(m, e, err);
	} else {
		return al_error_set(err, EINVAL,
		                    "manifest entry '%s': file entries need \"content\"", e->path);
	}
	m->total_bytes += e->content_len;
	if (m->total_bytes > m->max_total_bytes)
		return al_error_set(err, EINVAL,
		                    "manifest entry '%s': file contents exceed %zu bytes in total",
		                    e->path, m->max_total_bytes);
	return 0;
}

static int parse_src(const cJSON *src, struct manifest_entry *e, struct al_error *err)
{
	struct stat st;

	if (!cJSON_IsString(src))
		return al_error_set(err, EINVAL, "manifest entry '%s': %s entries need \"src\"",
		                    e->path, type_name(e->type));
	if (src->valuestring[0] != '/')
		return al_error_set(err, EINVAL,
		                    "manifest entry '%s': src '%s' must be an absolute host path",
		                    e->path, src->valuestring);
	if (stat(src->valuestring, &st) < 0)
		return al_error_errno(err, "manifest entry '%s': src %s", e->path,
		                      src->valuestring);
	if (e->type == ENTRY_LOCAL_FILE && !S_ISREG(st.st_mode))
		return al_error_set(err, EINVAL,
		                    "manifest entry '%s': src %s is not a regular file", e->path,
		                    src->valuestring);
	if (e->type == ENTRY_LOCAL_DIR && !S_ISDIR(st.st_mode))
		return al_error_set(err, EINVAL, "manifest entry '%s': src %s is not a directory",
		                    e->path, src->valuestring);
	e->src = strdup(src->valuestring);
	if (!e->src)
		return al_error_set(err, ENOMEM, "out of memory");
	return 0;
}

static int dup_string_field(const cJSON *obj, const char *name, const char *path, char **out,
                            struct al_error *err)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, name);

	if (!v || cJSON_IsNull(v))
		return 0;
	if (!cJSON_IsString(v) || !v->valuestring[0])
		return al_error_set(
		    err, EINVAL, "manifest entry '%s': %s must be a non-empty string", path, name);
	/* These reach git and rclone's configuration, which are line-oriented. */
	if (strpbrk(v->valuestring, "\n\r"))
		return al_error_set(err, EINVAL, "manifest entry '%s': %s must be one line", path,
		                    name);
	free(*out);
	*out = strdup(v->valuestring);
	return *out ? 0 : al_error_set(err, ENOMEM, "out of memory");
}

/* The SDK's resolution: a bare "owner/name" is on host (github.com by
 * default) over https; full URLs, scp-style "git@" and local paths as given. */
static int parse_git_repo(const cJSON *json, struct manifest_entry *e, struct al_error *err)
{
	_cleanup_free_ char *repo = NULL, *host = NULL;
	int r;

	r = dup_string_field(json, "repo", e->path, &repo, err);
	if (r == 0)
		r = dup_string_field(json, "host", e->path, &host, err);
	if (r == 0)
		r = dup_string_field(json, "ref", e->path, &e->ref, err);
	if (r == 0)
		r = dup_string_field(json, "subpath", e->path, &e->subpath, err);
	if (r < 0)
		return r;
	if (!repo)
		return al_error_set(err, EINVAL,
		                    "manifest entry '%s': git_repo entries need \"repo\"", e->path);
	if (repo[0] == '-' || (e->ref && e->ref[0] == '-'))
		return al_error_set(err, EINVAL,
		                    "manifest entry '%s': repo and ref must not start with '-'",
		                    e->path);
	if (e->subpath) {
		r = check_key(e->subpath, e->path, err);
		if (r < 0)
			return al_error_prefix(err, "subpath");
	}
	if (strstr(repo, "://") || !strncmp(repo, "git@", 4) || repo[0] == '/') {
		e->url = TAKE_PTR(repo);
		return 0;
	}
	if (asprintf(&e->url, "https://%s/%s.git", host ? host : "github.com", repo) < 0) {
		e->url = NULL;
		return al_error_set(err, ENOMEM, "out of memory");
	}
	return 0;
}

struct mount_kind {
	const char *type;     /* entry type, or the generic mount's provider */
	const char *provider; /* rclone's view of it */
	const char *bucket;   /* the field naming the bucket or container */
	const char *fields[6];
	const char *secrets[6];
};

static const struct mount_kind mount_kinds[] = {
    {"s3",
     "s3",
     "bucket",
     {"prefix", "region", "endpointUrl", "s3Provider"},
     {"accessKeyId", "secretAccessKey", "sessionToken"}},
    {"gcs",
     "gcs",
     "bucket",
     {"prefix", "region", "endpointUrl"},
     {"accessId", "secretAccessKey", "serviceAccountCredentials", "serviceAccountFile",
      "accessToken"}},
    {"r2",
     "r2",
     "bucket",
     {"prefix", "accountId", "customDomain", "endpointUrl"},
     {"accessKeyId", "secretAccessKey"}},
    {"azure_blob",
     "azure_blob",
     "container",
     {"prefix", "account", "accountName", "endpoint", "endpointUrl", "identityClientId"},
     {"accountKey", "sasToken"}},
};

static bool in_list(const char *const *list, size_t n, const char *s)
{
	for (size_t i = 0; i < n && list[i]; i++)
		if (!strcmp(list[i], s))
			return true;
	return false;
}

/*
 * Mount entries: the typed ones keep their fields at the top, the generic
 * "mount" in "config" with "provider" naming the kind.  Credentials are
 * refused here: they travel in the create request, never in a manifest that
 * is stored and shown.
 */
static int parse_mount(struct manifest *m, const cJSON *json, const char *type_str,
                       struct manifest_entry *e, struct al_error *err)
{
	static const char *const base[] = {
	    "type", "description", "ephemeral", "permissions", "group", "source", "mountPath",
	    "readOnly", "mountStrategy", "provider", "config",
	    /* For hosted providers; airlockd always mounts on the host. */
	    "credentials_in_sandbox"};
	const struct mount_kind *kind = NULL;
	const cJSON *spec = json, *field;
	struct manifest_mount *mt = &e->mount;
	_cleanup_free_ char *kind_name = NULL, *mount_path = NULL;
	int r;

	if (!strcmp(type_str, "mount")) {
		r = dup_string_field(json, "provider", e->path, &kind_name, err);
		if (r < 0)
			return r;
		if (!kind_name)
			return al_error_set(err, EINVAL,
			                    "manifest entry '%s': mount entries need \"provider\"",
			                    e->path);
		spec = cJSON_GetObjectItemCaseSensitive(json, "config");
		if (spec && !cJSON_IsObject(spec))
			return al_error_set(
			    err, EINVAL, "manifest entry '%s': config must be an object", e->path);
	} else {
		kind_name = strndup(type_str, strlen(type_str) - strlen("_mount"));
		if (!kind_name)
			return al_error_set(err, ENOMEM, "out of memory");
	}
	for (size_t i = 0; i < AL_ARRAY_SIZE(mount_kinds) && !kind; i++)
		if (!strcmp(mount_kinds[i].type, kind_name))
			kind = &mount_kinds[i];
	if (!kind)
		return al_error_set(err, ENOTSUP,
		                    "manifest entry '%s': mount provider '%s' is not supported by "
		                    "airlockd (s3, gcs, r2, azure_blob are)",
		                    e->path, kind_name);
	for (int pass = 0; pass < 2; pass++) {
		const cJSON *obj = pass == 0 ? json : spec;
		if (!obj || (pass == 1 && obj == json))
			continue;
		cJSON_ArrayForEach(field, obj)
		{
			const char *f = field->string;
			if (in_list(kind->secrets, AL_ARRAY_SIZE(kind->secrets), f))
				return al_error_set(
				    err, EINVAL,
				    "manifest entry '%s': '%s' is a credential: pass it in the "
				    "create request's \"mount_credentials\", never in the manifest",
				    e->path, f);
			if ((pass == 0 && in_list(base, AL_ARRAY_SIZE(base), f)) ||
			    !strcmp(f, kind->bucket) ||
			    in_list(kind->fields, AL_ARRAY_SIZE(kind->fields), f))
				continue;
			return al_error_set(
			    err, EINVAL, "manifest entry '%s': unknown field '%s' for a %s mount",
			    e->path, f, kind->type);
		}
	}
	if (!spec)
		spec = json;
	mt->provider = strdup(kind->provider);
	if (!mt->provider)
		return al_error_set(err, ENOMEM, "out of memory");
	r = dup_string_field(spec, kind->bucket, e->path, &mt->bucket, err);
	if (r == 0)
		r = dup_string_field(spec, "prefix", e->path, &mt->prefix, err);
	if (r == 0)
		r = dup_string_field(spec, "region", e->path, &mt->region, err);
	if (r == 0)
		r = dup_string_field(spec, "endpointUrl", e->path, &mt->endpoint, err);
	if (r == 0 && !mt->endpoint)
		r = dup_string_field(spec, "endpoint", e->path, &mt->endpoint, err);
	if (r == 0)
		r = dup_string_field(spec, "s3Provider", e->path, &mt->s3_provider, err);
	if (r == 0)
		r = dup_string_field(spec, "accountId", e->path, &mt->account, err);
	if (r == 0 && !mt->account)
		r = dup_string_field(spec, "accountName", e->path, &mt->account, err);
	if (r == 0 && !mt->account)
		r = dup_string_field(spec, "account", e->path, &mt->account, err);
	if (r == 0)
		r = dup_string_field(json, "mountPath", e->path, &mount_path, err);
	if (r < 0)
		return r;
	if (!mt->bucket)
		return al_error_set(err, EINVAL, "manifest entry '%s': %s mounts need \"%s\"",
		                    e->path, kind->type, kind->bucket);
	/* Buckets and containers are single names; a '/' would move the mount. */
	if (strchr(mt->bucket, '/') || strchr(mt->bucket, ':'))
		return al_error_set(err, EINVAL, "manifest entry '%s': invalid %s '%s'", e->path,
		                    kind->bucket, mt->bucket);
	if (!strcmp(kind->type, "r2") && !mt->account && !mt->endpoint)
		return al_error_set(err, EINVAL,
		                    "manifest entry '%s': r2 mounts need \"accountId\"", e->path);
	field = cJSON_GetObjectItemCaseSensitive(json, "readOnly");
	if (field && !cJSON_IsBool(field))
		return al_error_set(err, EINVAL, "manifest entry '%s': readOnly must be a boolean",
		                    e->path);
	mt->read_only = cJSON_IsTrue(field);
	field = cJSON_GetObjectItemCaseSensitive(json, "mountStrategy");
	if (field && !cJSON_IsNull(field)) {
		const cJSON *st = cJSON_GetObjectItemCaseSensitive(field, "type");
		/* airlockd always mounts on the host: an in-sandbox mount would put
		 * the keys inside, which is what this design avoids. */
		if (!cJSON_IsObject(field) || !cJSON_IsString(st))
			return al_error_set(err, EINVAL,
			                    "manifest entry '%s': mountStrategy must be an object "
			                    "with a \"type\"",
			                    e->path);
		if (!strcmp(st->valuestring, "in_container"))
			return al_error_set(err, ENOTSUP,
			                    "manifest entry '%s': airlockd mounts on the host; "
			                    "mountStrategy 'in_container' is not supported",
			                    e->path);
	}
	if (mount_path && mount_path[0] == '/') {
		r = normalize_root(mount_path, &mt->path, err);
		if (r < 0)
			return al_error_prefix(err, "manifest entry '%s': mountPath", e->path);
	} else {
		const char *rel = mount_path ? mount_path : e->path;
		if (mount_path) {
			r = check_key(mount_path, e->path, err);
			if (r < 0)
				return al_error_prefix(err, "mountPath");
		}
		if (asprintf(&mt->path, "%s%s%s", m->root, strcmp(m->root, "/") ? "/" : "", rel) <
		    0) {
			mt->path = NULL;
			return al_error_set(err, ENOMEM, "out of memory");
		}
	}
	if (!strcmp(mt->path, "/"))
		return al_error_set(err, EINVAL, "manifest entry '%s': cannot mount over '/'",
		                    e->path);
	return 0;
}

static struct manifest_entry *append_entry(struct manifest *m)
{
	if (m->n_entries == m->cap_entries) {
		size_t cap = m->cap_entries ? m->cap_entries * 2 : 16;
		struct manifest_entry *p = reallocarray(m->entries, cap, sizeof(*p));
		if (!p)
			return NULL;
		m->entries = p;
		m->cap_entries = cap;
	}
	memset(&m->entries[m->n_entries], 0, sizeof(m->entries[0]));
	return &m->entries[m->n_entries++];
}

static int parse_entries(struct manifest *m, const cJSON *entries, const char *prefix,
                         struct al_error *err);

static int parse_entry(struct manifest *m, const cJSON *json, char *path, struct al_error *err)
{
	_cleanup_free_ char *owned_path = path;
	const cJSON *field, *children = NULL;
	struct manifest_entry *e;
	enum entry_type type = ENTRY_FILE;
	int r;

	if (!cJSON_IsObject(json))
		return al_error_set(err, EINVAL, "manifest entry '%s': must be an object", path);
	r = parse_type(json, path, &type, err);
	if (r < 0)
		return r;
	cJSON_ArrayForEach(field, json)
	{
		if (!field_allowed(field->string, type))
			return al_error_set(err, EINVAL,
			                    "manifest entry '%s': unknown field '%s' for type '%s'",
			                    path, field->string, type_name(type));
	}
	e = append_entry(m);
	if (!e)
		return al_error_set(err, ENOMEM, "out of memory");
	e->path = TAKE_PTR(owned_path);
	e->type = type;

	field = cJSON_GetObjectItemCaseSensitive(json, "group");
	if (field)
		return al_error_set(
		    err, ENOTSUP,
		    "manifest entry '%s': group ownership is not supported by airlockd yet",
		    e->path);
	field = cJSON_GetObjectItemCaseSensitive(json, "description");
	if (field && !cJSON_IsString(field))
		return al_error_set(err, EINVAL,
		                    "manifest entry '%s': description must be a string", e->path);
	field = cJSON_GetObjectItemCaseSensitive(json, "ephemeral");
	if (field && !cJSON_IsBool(field))
		return al_error_set(err, EINVAL, "manifest entry '%s': ephemeral must be a boolean",
		                    e->path);
	e->ephemeral = cJSON_IsTrue(field);
	field = cJSON_GetObjectItemCaseSensitive(json, "permissions");
	if (field) {
		r = parse_permissions(field, e->path, &e->mode, err);
		if (r < 0)
			return r;
		e->mode_set = true;
	}

	switch (type) {
	case ENTRY_FILE:
		return parse_content(m, cJSON_GetObjectItemCaseSensitive(json, "content"), e, err);
	case ENTRY_DIR:
		children = cJSON_GetObjectItemCaseSensitive(json, "children");
		if (!children || cJSON_IsNull(children))
			return 0;
		if (!cJSON_IsObject(children))
			return al_error_set(err, EINVAL,
			                    "manifest entry '%s': children must be an object",
			                    e->path);
		/* e may move when the array grows: recurse with a copy of the path. */
		{
			_cleanup_free_ char *prefix = strdup(e->path);
			if (!prefix)
				return al_error_set(err, ENOMEM, "out of memory");
			return parse_entries(m, children, prefix, err);
		}
	case ENTRY_LOCAL_FILE:
	case ENTRY_LOCAL_DIR:
		return parse_src(cJSON_GetObjectItemCaseSensitive(json, "src"), e, err);
	case ENTRY_GIT_REPO:
		return parse_git_repo(json, e, err);
	case ENTRY_MOUNT:
		return parse_mount(
		    m, json, cJSON_GetObjectItemCaseSensitive(json, "type")->valuestring, e, err);
	}
	return 0;
}

static int parse_entries(struct manifest *m, const cJSON *entries, const char *prefix,
                         struct al_error *err)
{
	const cJSON *item;

	cJSON_ArrayForEach(item, entries)
	{
		const char *key = item->string;
		char *path = NULL;
		int r;

		if (asprintf(&path, "%s%s%s", prefix ? prefix : "", prefix ? "/" : "", key) < 0)
			return al_error_set(err, ENOMEM, "out of memory");
		/* Nested keys are checked alone (so '..' cannot hide behind a parent),
		 * the joined path for its length. */
		r = check_key(key, path, err);
		if (r == 0 && strlen(path) > MANIFEST_MAX_KEY_LEN)
			r = al_error_set(err, EINVAL,
			                 "manifest entry '%.64s...': path longer than %d bytes",
			                 path, MANIFEST_MAX_KEY_LEN);
		if (r < 0) {
			free(path);
			return r;
		}
		r = parse_entry(m, item, path, err);
		if (r < 0)
			return r;
	}
	return 0;
}

static int compare_entries(const void *a, const void *b)
{
	return strcmp(((const struct manifest_entry *)a)->path,
	              ((const struct manifest_entry *)b)->path);
}

static const struct manifest_entry *find_entry(const struct manifest *m, const char *path)
{
	struct manifest_entry key = {.path = (char *)path};

	if (m->n_entries == 0)
		return NULL;
	return bsearch(&key, m->entries, m->n_entries, sizeof(key), compare_entries);
}

/*
 * Sorting by path puts every ancestor before its descendants (a prefix sorts
 * first), which is also the order materialization needs.  Two entries for one
 * path, or an entry below anything but a dir, cannot both be honoured.
 */
static int check_conflicts(struct manifest *m, struct al_error *err)
{
	if (m->n_entries == 0)
		return 0;
	qsort(m->entries, m->n_entries, sizeof(m->entries[0]), compare_entries);
	for (size_t i = 0; i < m->n_entries; i++) {
		const struct manifest_entry *e = &m->entries[i];
		_cleanup_free_ char *ancestor = NULL;

		if (i > 0 && !strcmp(m->entries[i - 1].path, e->path))
			return al_error_set(err, EINVAL, "manifest entry '%s': duplicate path",
			                    e->path);
		ancestor = strdup(e->path);
		if (!ancestor)
			return al_error_set(err, ENOMEM, "out of memory");
		for (char *slash = strrchr(ancestor, '/'); slash; slash = strrchr(ancestor, '/')) {
			const struct manifest_entry *a;

			*slash = '\0';
			a = find_entry(m, ancestor);
			if (a && a->type != ENTRY_DIR)
				return al_error_set(
				    err, EINVAL,
				    "manifest entry '%s': conflicts with %s entry '%s'", e->path,
				    type_name(a->type), a->path);
		}
	}
	return 0;
}

/* ---- environment ----------------------------------------------------------- */

static int parse_environment(struct manifest *m, const cJSON *env, struct al_error *err)
{
	const cJSON *item;
	size_t n = (size_t)cJSON_GetArraySize(env);

	m->env = calloc(n + 1, sizeof(char *));
	if (!m->env)
		return al_error_set(err, ENOMEM, "out of memory");
	cJSON_ArrayForEach(item, env)
	{
		const char *key = item->string, *value;

		if (!key[0] || strchr(key, '='))
			return al_error_set(err, EINVAL, "manifest environment: invalid name '%s'",
			                    key);
		for (size_t i = 0; i < m->n_env; i++) {
			size_t klen = strlen(key);
			if (!strncmp(m->env[i], key, klen) && m->env[i][klen] == '=')
				return al_error_set(
				    err, EINVAL, "manifest environment: duplicate name '%s'", key);
		}
		if (cJSON_IsString(item)) {
			value = item->valuestring;
		} else if (cJSON_IsObject(item)) {
			const cJSON *type = cJSON_GetObjectItemCaseSensitive(item, "type");
			const cJSON *v = cJSON_GetObjectItemCaseSensitive(item, "value");
			const cJSON *eph = cJSON_GetObjectItemCaseSensitive(item, "ephemeral");
			const cJSON *desc = cJSON_GetObjectItemCaseSensitive(item, "description");

			/* Serialized references are resolved by the SDK process that
			 * registered them; a daemon has nothing to resolve them with. */
			if (cJSON_IsString(type))
				return al_error_set(
				    err, ENOTSUP,
				    "manifest environment '%s': value references of "
				    "type '%s' are not supported by airlockd",
				    key, type->valuestring);
			if (!cJSON_IsString(v) || (eph && !cJSON_IsBool(eph)) ||
			    (desc && !cJSON_IsString(desc)))
				return al_error_set(
				    err, EINVAL,
				    "manifest environment '%s': expected a string or "
				    "{\"value\": \"...\"}",
				    key);
			value = v->valuestring;
		} else {
			return al_error_set(
			    err, EINVAL, "manifest environment '%s': expected a string value", key);
		}
		if (asprintf(&m->env[m->n_env], "%s=%s", key, value) < 0) {
			m->env[m->n_env] = NULL;
			return al_error_set(err, ENOMEM, "out of memory");
		}
		m->n_env++;
	}
	return 0;
}

/* users, groups and host path grants change who can do what: refuse rather than ignore. */
static int check_unsupported_list(const cJSON *v, const char *name, struct al_error *err)
{
	if (!cJSON_IsArray(v))
		return al_error_set(err, EINVAL, "manifest %s must be an array", name);
	if (cJSON_GetArraySize(v) > 0)
		return al_error_set(err, ENOTSUP, "manifest %s are not supported by airlockd yet",
		                    name);
	return 0;
}

int manifest_parse(const cJSON *json, size_t max_file_bytes, size_t max_total_bytes,
                   struct manifest **out, struct al_error *err)
{
	_cleanup_(manifest_freep) struct manifest *m = NULL;
	const cJSON *field;
	int r;

	if (!cJSON_IsObject(json))
		return al_error_set(err, EINVAL, "manifest must be a JSON object");
	m = calloc(1, sizeof(*m));
	if (!m)
		return al_error_set(err, ENOMEM, "out of memory");
	m->max_file_bytes = max_file_bytes ? max_file_bytes : MANIFEST_DEFAULT_MAX_FILE_BYTES;
	m->max_total_bytes = max_total_bytes ? max_total_bytes : MANIFEST_DEFAULT_MAX_TOTAL_BYTES;

	/* A misspelt top-level field would silently give an empty workspace. */
	cJSON_ArrayForEach(field, json)
	{
		static const char *const known[] = {
		    "version", "root",   "entries",         "environment",
		    "users",   "groups", "extraPathGrants", "remoteMountCommandAllowlist"};
		bool ok = false;
		for (size_t i = 0; i < AL_ARRAY_SIZE(known) && !ok; i++)
			ok = !strcmp(field->string, known[i]);
		if (!ok)
			return al_error_set(err, EINVAL, "manifest: unknown field '%s'",
			                    field->string);
	}

	field = cJSON_GetObjectItemCaseSensitive(json, "version");
	if (field && !is_integer(field, 1, 1)) {
		if (cJSON_IsNumber(field))
			return al_error_set(err, EINVAL,
			                    "manifest version %g is not supported (expected 1)",
			                    field->valuedouble);
		return al_error_set(err, EINVAL, "manifest version must be the number 1");
	}

	field = cJSON_GetObjectItemCaseSensitive(json, "root");
	if (field && !cJSON_IsString(field))
		return al_error_set(err, EINVAL, "manifest root must be a string");
	r = normalize_root(field ? field->valuestring : "/workspace", &m->root, err);
	if (r < 0)
		return r;

	field = cJSON_GetObjectItemCaseSensitive(json, "entries");
	if (field && !cJSON_IsNull(field)) {
		if (!cJSON_IsObject(field))
			return al_error_set(err, EINVAL, "manifest entries must be an object");
		r = parse_entries(m, field, NULL, err);
		if (r < 0)
			return r;
	}
	r = check_conflicts(m, err);
	if (r < 0)
		return r;

	field = cJSON_GetObjectItemCaseSensitive(json, "environment");
	if (field && !cJSON_IsNull(field) && !cJSON_IsObject(field))
		return al_error_set(err, EINVAL, "manifest environment must be an object");
	r = parse_environment(m, cJSON_IsObject(field) ? field : NULL, err);
	if (r < 0)
		return r;

	static const char *const lists[] = {"users", "groups", "extraPathGrants"};
	for (size_t i = 0; i < AL_ARRAY_SIZE(lists); i++) {
		field = cJSON_GetObjectItemCaseSensitive(json, lists[i]);
		if (field && !cJSON_IsNull(field)) {
			r = check_unsupported_list(field, lists[i], err);
			if (r < 0)
				return r;
		}
	}
	/* Only consulted for remote mounts, which are refused above. */
	field = cJSON_GetObjectItemCaseSensitive(json, "remoteMountCommandAllowlist");
	if (field && !cJSON_IsNull(field) && !cJSON_IsArray(field))
		return al_error_set(err, EINVAL,
		                    "manifest remoteMountCommandAllowlist must be an array");

	*out = TAKE_PTR(m);
	return 0;
}

/* ---- materialization ------------------------------------------------------- */

/* Ownership first: chown may clear mode bits that fchmod then sets for good. */
static int finish_node(int fd, uid_t uid, gid_t gid, mode_t mode, const struct stat *times,
                       const char *what, struct al_error *err)
{
	if ((uid != (uid_t)-1 || gid != (gid_t)-1) && fchown(fd, uid, gid) < 0)
		return al_error_errno(err, "chown '%s'", what);
	if (fchmod(fd, mode) < 0)
		return al_error_errno(err, "chmod '%s'", what);
	if (times) {
		struct timespec ts[2] = {times->st_atim, times->st_mtim};
		if (futimens(fd, ts) < 0)
			return al_error_errno(err, "set times of '%s'", what);
	}
	return 0;
}

/* mkdir + open without following: a symlink planted at name gives ELOOP. */
static int make_dir(int parent, const char *name, const char *what, struct al_error *err)
{
	int fd;

	if (mkdirat(parent, name, 0700) < 0 && errno != EEXIST)
		return al_error_errno(err, "mkdir '%s'", what);
	fd = openat(parent, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0)
		return al_error_errno(err, "open directory '%s'", what);
	return fd;
}

static int create_file(int parent, const char *name, const char *what, struct al_error *err)
{
	int fd = openat(parent, name, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);

	if (fd < 0)
		return al_error_errno(err, "create '%s'", what);
	return fd;
}

static int copy_data(int in, int out, const char *what, struct al_error *err)
{
	bool use_cfr = true;
	char buf[65536];

	for (;;) {
		ssize_t n;

		if (use_cfr) {
			n = copy_file_range(in, NULL, out, NULL, SSIZE_MAX, 0);
			if (n < 0 && (errno == EXDEV || errno == EINVAL || errno == ENOSYS ||
			              errno == EOPNOTSUPP || errno == EPERM)) {
				/* Offsets have advanced by what was copied; carry on by hand. */
				use_cfr = false;
				continue;
			}
		} else {
			n = read(in, buf, sizeof(buf));
			if (n > 0) {
				int r = al_write_all(out, buf, (size_t)n);
				if (r < 0) {
					errno = -r;
					return al_error_errno(err, "write '%s'", what);
				}
			}
		}
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return al_error_errno(err, "copy '%s'", what);
		}
		if (n == 0)
			return 0;
	}
}

/*
 * Walk every component of path but the last below dirfd, creating missing
 * directories (mode 0755, owned by uid:gid).  Returns an fd of the parent and
 * points *name at the last component.
 */
static int open_parent(int dirfd, const char *path, uid_t uid, gid_t gid, const char **name,
                       struct al_error *err)
{
	_cleanup_free_ char *walk = strdup(path);
	_cleanup_close_ int cur = -1;
	char *comp, *slash;

	if (!walk)
		return al_error_set(err, ENOMEM, "out of memory");
	cur = fcntl(dirfd, F_DUPFD_CLOEXEC, 3);
	if (cur < 0)
		return al_error_errno(err, "dup");
	comp = walk;
	while ((slash = strchr(comp, '/'))) {
		int next;

		*slash = '\0';
		next = openat(cur, comp, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		if (next < 0 && errno == ENOENT) {
			int r;
			next = make_dir(cur, comp, walk, err);
			if (next < 0)
				return next;
			r = finish_node(next, uid, gid, 0755, NULL, walk, err);
			if (r < 0) {
				close(next);
				return r;
			}
		} else if (next < 0) {
			return al_error_errno(err, "open directory '%s'", walk);
		}
		close(cur);
		cur = next;
		*slash = '/';
		comp = slash + 1;
	}
	*name = path + (comp - walk);
	return TAKE_FD(cur);
}

struct copy_ctx {
	uid_t uid;
	gid_t gid;
	char rel[PATH_MAX];   /* path below the entry, for messages */
	const char *skip_top; /* a name left out at the top level, or NULL */
};

static int copy_tree(struct copy_ctx *c, int src, int dst, unsigned depth, struct al_error *err);

static int copy_child(struct copy_ctx *c, int src, int dst, const char *name, unsigned depth,
                      struct al_error *err)
{
	_cleanup_close_ int sfd = -1, dfd = -1;
	struct stat st;
	int r;

	if (fstatat(src, name, &st, AT_SYMLINK_NOFOLLOW) < 0)
		return al_error_errno(err, "stat '%s'", c->rel);
	if (S_ISDIR(st.st_mode)) {
		if (depth >= COPY_MAX_DEPTH)
			return al_error_set(err, ELOOP, "'%s': more than %d directory levels",
			                    c->rel, COPY_MAX_DEPTH);
		sfd = openat(src, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		if (sfd < 0)
			return al_error_errno(err, "open '%s'", c->rel);
		dfd = make_dir(dst, name, c->rel, err);
		if (dfd < 0)
			return dfd;
		r = copy_tree(c, sfd, dfd, depth + 1, err);
		if (r < 0)
			return r;
		/* Mode last, so a read-only source dir could still be filled. */
		return finish_node(dfd, c->uid, c->gid, st.st_mode & 01777, &st, c->rel, err);
	}
	if (S_ISREG(st.st_mode)) {
		struct stat now;
		/* O_NONBLOCK: if the source became a FIFO since fstatat, do not hang. */
		sfd = openat(src, name, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_NOCTTY | O_CLOEXEC);
		if (sfd < 0)
			return al_error_errno(err, "open '%s'", c->rel);
		if (fstat(sfd, &now) < 0)
			return al_error_errno(err, "stat '%s'", c->rel);
		if (!S_ISREG(now.st_mode))
			return 0;
		dfd = create_file(dst, name, c->rel, err);
		if (dfd < 0)
			return dfd;
		r = copy_data(sfd, dfd, c->rel, err);
		if (r < 0)
			return r;
		return finish_node(dfd, c->uid, c->gid, now.st_mode & 0777, &now, c->rel, err);
	}
	if (S_ISLNK(st.st_mode)) {
		char target[PATH_MAX];
		struct timespec ts[2] = {st.st_atim, st.st_mtim};
		ssize_t n = readlinkat(src, name, target, sizeof(target));

		if (n < 0)
			return al_error_errno(err, "readlink '%s'", c->rel);
		if ((size_t)n >= sizeof(target))
			return al_error_set(err, ENAMETOOLONG, "readlink '%s': target too long",
			                    c->rel);
		target[n] = '\0';
		if (symlinkat(target, dst, name) < 0)
			return al_error_errno(err, "symlink '%s'", c->rel);
		if ((c->uid != (uid_t)-1 || c->gid != (gid_t)-1) &&
		    fchownat(dst, name, c->uid, c->gid, AT_SYMLINK_NOFOLLOW) < 0)
			return al_error_errno(err, "chown '%s'", c->rel);
		if (utimensat(dst, name, ts, AT_SYMLINK_NOFOLLOW) < 0)
			return al_error_errno(err, "set times of '%s'", c->rel);
		return 0;
	}
	/* Devices, FIFOs and sockets have no place in a workspace. */
	return 0;
}

static int copy_tree(struct copy_ctx *c, int src, int dst, unsigned depth, struct al_error *err)
{
	_cleanup_closedir_ DIR *d = NULL;
	size_t base = strlen(c->rel);
	struct dirent *de;
	int fd;

	fd = fcntl(src, F_DUPFD_CLOEXEC, 3);
	if (fd < 0)
		return al_error_errno(err, "dup");
	d = fdopendir(fd);
	if (!d) {
		close(fd);
		return al_error_errno(err, "opendir '%s'", c->rel);
	}
	for (;;) {
		int r;

		errno = 0;
		de = readdir(d);
		if (!de) {
			if (errno)
				return al_error_errno(err, "readdir '%s'", c->rel);
			break;
		}
		if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
			continue;
		if (depth == 0 && c->skip_top && !strcmp(de->d_name, c->skip_top))
			continue;
		if (base + 1 + strlen(de->d_name) >= sizeof(c->rel))
			return al_error_set(err, ENAMETOOLONG, "'%s/%s': path too long", c->rel,
			                    de->d_name);
		snprintf(c->rel + base, sizeof(c->rel) - base, "%s%s", base ? "/" : "", de->d_name);
		r = copy_child(c, src, dst, de->d_name, depth, err);
		if (r < 0)
			return r;
		c->rel[base] = '\0';
	}
	return 0;
}

static int materialize_local_dir(const struct manifest_entry *e, int parent, const char *name,
                                 uid_t uid, gid_t gid, struct al_error *err)
{
	_cleanup_close_ int src = -1, dst = -1;
	struct copy_ctx c = {.uid = uid, .gid = gid};
	struct stat st;
	int r;

	src = open(e->src, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (src < 0)
		return al_error_errno(err, "open %s", e->src);
	if (fstat(src, &st) < 0)
		return al_error_errno(err, "stat %s", e->src);
	dst = make_dir(parent, name, e->path, err);
	if (dst < 0)
		return dst;
	r = copy_tree(&c, src, dst, 0, err);
	if (r < 0)
		return al_error_prefix(err, "copy from %s", e->src);
	return finish_node(dst, uid, gid, e->mode_set ? e->mode : st.st_mode & 01777, &st, e->path,
	                   err);
}

/*
 * Clone into scratch as uid:gid (an unprivileged host uid: whatever the
 * repository's checkout does, it cannot write outside its own directory),
 * then copy the tree, or its subpath, with the copier that never follows a
 * symlink.  Symlinks are copied as symlinks: they point wherever they
 * point inside the sandbox, never on the host.
 */
static int materialize_git_repo(const struct manifest_entry *e, int parent, const char *name,
                                uid_t uid, gid_t gid, const char *scratch, struct al_error *err)
{
	struct open_how how = {.flags = O_RDONLY | O_DIRECTORY | O_CLOEXEC,
	                       .resolve = RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS |
	                                  RESOLVE_NO_MAGICLINKS | RESOLVE_NO_XDEV};
	_cleanup_close_ int clone_fd = -1, src = -1, dst = -1;
	struct copy_ctx c = {.uid = uid, .gid = gid, .skip_top = ".git"};
	char dir[PATH_MAX];
	struct al_error rm_err = {0};
	int r;

	if (!scratch)
		return al_error_set(err, ENOTSUP, "git_repo entries need a scratch directory");
	if ((size_t)snprintf(dir, sizeof(dir), "%s/git-XXXXXX", scratch) >= sizeof(dir))
		return al_error_set(err, ENAMETOOLONG, "scratch path too long");
	if (!mkdtemp(dir))
		return al_error_errno(err, "mkdtemp %s", dir);
	r = git_clone_at(e->url, e->ref, dir, uid, gid, err);
	if (r < 0) {
		(void)al_rm_rf(dir, &rm_err);
		return al_error_prefix(err, "clone %s", e->url);
	}
	clone_fd = openat(AT_FDCWD, dir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (clone_fd >= 0) {
		int tree =
		    openat(clone_fd, "tree", O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		close(clone_fd);
		clone_fd = tree;
	}
	if (clone_fd < 0)
		r = al_error_errno(err, "open %s/tree", dir);
	if (r == 0) {
		src = (int)syscall(SYS_openat2, clone_fd, e->subpath ? e->subpath : ".", &how,
		                   sizeof(how));
		if (src < 0)
			r = al_error_errno(err, "subpath '%s' of %s", e->subpath ? e->subpath : ".",
			                   e->url);
	}
	if (r == 0) {
		dst = make_dir(parent, name, e->path, err);
		r = dst < 0 ? dst : 0;
	}
	if (r == 0)
		r = copy_tree(&c, src, dst, 0, err);
	if (r == 0)
		r = finish_node(dst, uid, gid, e->mode_set ? e->mode : 0755, NULL, e->path, err);
	(void)al_rm_rf(dir, &rm_err);
	return r;
}

static int materialize_local_file(const struct manifest_entry *e, int parent, const char *name,
                                  uid_t uid, gid_t gid, struct al_error *err)
{
	_cleanup_close_ int src = -1, dst = -1;
	struct stat st;
	int r;

	src = open(e->src, O_RDONLY | O_NONBLOCK | O_NOCTTY | O_CLOEXEC);
	if (src < 0)
		return al_error_errno(err, "open %s", e->src);
	if (fstat(src, &st) < 0)
		return al_error_errno(err, "stat %s", e->src);
	if (!S_ISREG(st.st_mode))
		return al_error_set(err, EINVAL, "%s is not a regular file", e->src);
	dst = create_file(parent, name, e->path, err);
	if (dst < 0)
		return dst;
	r = copy_data(src, dst, e->path, err);
	if (r < 0)
		return r;
	return finish_node(dst, uid, gid, e->mode_set ? e->mode : st.st_mode & 0777, &st, e->path,
	                   err);
}

static int materialize_entry(const struct manifest_entry *e, int dirfd, uid_t uid, gid_t gid,
                             const char *scratch, struct al_error *err)
{
	_cleanup_close_ int parent = -1, fd = -1;
	const char *name = NULL;
	int r;

	if (e->type == ENTRY_MOUNT)
		return 0;
	parent = open_parent(dirfd, e->path, uid, gid, &name, err);
	if (parent < 0)
		return parent;
	switch (e->type) {
	case ENTRY_FILE:
		fd = create_file(parent, name, e->path, err);
		if (fd < 0)
			return fd;
		r = al_write_all(fd, e->content, e->content_len);
		if (r < 0) {
			errno = -r;
			return al_error_errno(err, "write '%s'", e->path);
		}
		return finish_node(fd, uid, gid, e->mode_set ? e->mode : 0644, NULL, e->path, err);
	case ENTRY_DIR:
		fd = make_dir(parent, name, e->path, err);
		if (fd < 0)
			return fd;
		return finish_node(fd, uid, gid, e->mode_set ? e->mode : 0755, NULL, e->path, err);
	case ENTRY_LOCAL_FILE:
		return materialize_local_file(e, parent, name, uid, gid, err);
	case ENTRY_LOCAL_DIR:
		return materialize_local_dir(e, parent, name, uid, gid, err);
	case ENTRY_GIT_REPO:
		return materialize_git_repo(e, parent, name, uid, gid, scratch, err);
	case ENTRY_MOUNT:
		return 0;
	}
	return 0;
}

int manifest_materialize(const struct manifest *m, int dirfd, uid_t uid, gid_t gid,
                         const char *scratch, struct al_error *err)
{
	/* Entries are sorted, so every explicit dir exists before its children. */
	for (size_t i = 0; i < m->n_entries; i++) {
		const struct manifest_entry *e = &m->entries[i];
		int r = materialize_entry(e, dirfd, uid, gid, scratch, err);
		if (r < 0)
			return al_error_prefix(err, "manifest entry '%s'", e->path);
	}
	return 0;
}

const char *manifest_first_host_source(const struct manifest *m)
{
	for (size_t i = 0; i < m->n_entries; i++)
		if (m->entries[i].type == ENTRY_LOCAL_FILE ||
		    m->entries[i].type == ENTRY_LOCAL_DIR ||
		    (m->entries[i].type == ENTRY_GIT_REPO &&
		     (m->entries[i].url[0] == '/' || !strncmp(m->entries[i].url, "file:", 5))))
			return m->entries[i].path;
	return NULL;
}

const struct manifest_mount *manifest_next_mount(const struct manifest *m, size_t *iter,
                                                 const char **key)
{
	for (; *iter < m->n_entries; (*iter)++) {
		const struct manifest_entry *e = &m->entries[*iter];
		if (e->type == ENTRY_MOUNT) {
			(*iter)++;
			if (key)
				*key = e->path;
			return &e->mount;
		}
	}
	return NULL;
}

const char *manifest_first_git_repo(const struct manifest *m)
{
	for (size_t i = 0; i < m->n_entries; i++)
		if (m->entries[i].type == ENTRY_GIT_REPO)
			return m->entries[i].path;
	return NULL;
}
