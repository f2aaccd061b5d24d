/* SPDX-License-Identifier: Apache-2.0 */
#include "hosted.h"

#include "cleanup.h"
#include "json.h"
#include "strv.h"
#include "util.h"

#include <errno.h>
#include <limits.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <archive.h>
#include <curl/curl.h>
#include <archive_entry.h>

const char *al_hosted_manifest_root(const cJSON *manifest, const char *def)
{
	const char *root = al_json_str(manifest, "root");

	return root && root[0] == '/' ? root : def;
}

char *al_hosted_abs(const char *root, const char *path)
{
	char *out;

	if (path[0] == '/')
		return strdup(path);
	while (path[0] == '.' && path[1] == '/')
		path += 2;
	if (!strcmp(path, ".") || !*path)
		return strdup(root);
	if (asprintf(&out, "%s%s%s", root, root[strlen(root) - 1] == '/' ? "" : "/", path) < 0)
		return NULL;
	return out;
}

int al_hosted_run(struct al_provider *p, struct al_sandbox *sb, const char *const *argv,
                  int *exit_code, char **out, struct al_error *err)
{
	struct al_exec_request req = {.argv = argv, .max_output_bytes = 1u << 20};
	struct al_exec_result res = {0};
	int r = p->ops->exec(p, sb, &req, &res, err);

	if (r < 0)
		return r;
	if (res.running) {
		al_exec_result_free(&res);
		return al_error_set(err, EIO, "%s: still running after a wait without yield",
		                    argv[0]);
	}
	*exit_code = res.signal ? 128 + res.signal : res.exit_code;
	if (*exit_code != 0 && !out)
		al_error_set(err, EIO, "%s: exit %d: %.*s", argv[0], *exit_code,
		             (int)(res.err_len > 300 ? 300 : res.err_len), res.err ? res.err : "");
	if (out) {
		*out = res.out;
		res.out = NULL;
	}
	al_exec_result_free(&res);
	return 0;
}

/* Run a shell script; a non-zero exit is an error naming what. */
static int sh(struct al_provider *p, struct al_sandbox *sb, const char *script, const char *what,
              struct al_error *err)
{
	const char *argv[] = {"/bin/sh", "-c", script, NULL};
	int code = 0;
	int r = al_hosted_run(p, sb, argv, &code, NULL, err);

	if (r < 0)
		return r;
	return code ? al_error_prefix(err, "%s", what) : 0;
}

/* 'text' quoted for sh: every ' becomes '\''. */
static char *shell_quote(const char *text)
{
	struct al_buf b = {0};

	al_buf_append(&b, "'", 1);
	for (const char *c = text; *c; c++) {
		if (*c == '\'')
			al_buf_append(&b, "'\\''", 4);
		else
			al_buf_append(&b, c, 1);
	}
	if (al_buf_append(&b, "'", 2) < 0) {
		al_buf_free(&b);
		return NULL;
	}
	return b.data;
}

static int mkdir_p(struct al_provider *p, struct al_sandbox *sb, const char *dir,
                   struct al_error *err)
{
	const char *argv[] = {"mkdir", "-p", "--", dir, NULL};
	int code = 0;
	int r = al_hosted_run(p, sb, argv, &code, NULL, err);

	return r < 0 ? r : code ? al_error_prefix(err, "mkdir %s", dir) : 0;
}

static bool is_mount_entry(const char *type)
{
	size_t n = strlen(type);

	return !strcmp(type, "mount") || (n > 6 && !strcmp(type + n - 6, "_mount"));
}

const char *al_hosted_mount_kind(const cJSON *entry, const cJSON **fields)
{
	static const char *const typed[] = {"s3", "r2", "gcs", "azure_blob", "box", "s3_files"};
	const cJSON *type = cJSON_GetObjectItemCaseSensitive(entry, "type");
	const cJSON *v;

	*fields = entry;
	if (!cJSON_IsString(type) || !is_mount_entry(type->valuestring))
		return NULL;
	if (!strcmp(type->valuestring, "mount")) {
		v = cJSON_GetObjectItemCaseSensitive(entry, "config");
		if (cJSON_IsObject(v))
			*fields = v;
		v = cJSON_GetObjectItemCaseSensitive(entry, "provider");
		return cJSON_IsString(v) ? v->valuestring : "";
	}
	for (size_t i = 0; i < AL_ARRAY_SIZE(typed); i++) {
		size_t n = strlen(typed[i]);
		if (!strncmp(type->valuestring, typed[i], n) &&
		    !strcmp(type->valuestring + n, "_mount"))
			return typed[i];
	}
	return "";
}

/*
 * The services' own bucket mounts that keep the keys out of the sandbox, as
 * airlock-harness uses them (docs/providers.md): Modal's cloud bucket mounts (S3, R2
 * and GCS with HMAC keys; the keys in a Modal secret, the mount made by Modal), the
 * Cloudflare bridge's mount with credentialProxy (S3, R2, GCS's S3 API; the keys kept
 * by the Worker).  The others are refused in al_hosted_refuse_mount, with what each
 * service has.
 */
bool al_hosted_native_mount(const char *provider, const char *kind)
{
	static const struct {
		const char *provider, *kinds[4];
	} native[] = {
	    {"modal", {"s3", "r2", "gcs"}},
	    {"cloudflare", {"s3", "r2", "gcs"}},
	};

	for (size_t i = 0; i < AL_ARRAY_SIZE(native); i++) {
		if (strcmp(native[i].provider, provider))
			continue;
		for (size_t k = 0; k < AL_ARRAY_SIZE(native[i].kinds) && native[i].kinds[k]; k++)
			if (!strcmp(native[i].kinds[k], kind))
				return true;
	}
	return false;
}

/*
 * A bucket mount a hosted provider cannot make with the keys outside the sandbox: the
 * entry is refused, before anything in the sandbox depends on it, saying why and what
 * would make it work.  "credentials_in_sandbox" (the SDK's rclone inside the sandbox,
 * keys there too) is refused as well: the SDK's way needs /dev/fuse, the right to mount
 * FUSE and an rclone binary (or apt-get and the network to fetch one) inside the
 * sandbox, and airlock-harness does not ship keys into a sandbox.
 */
int al_hosted_refuse_mount(struct al_provider *p, const cJSON *e, const char *type,
                           struct al_error *err)
{
	static const struct {
		const char *provider, *own;
	} own_mounts[] = {
	    {"modal", "its cloud bucket mounts take S3, R2 and GCS with HMAC keys only"},
	    {"cloudflare", "the bridge's mount takes S3, R2 and GCS's S3 API only"},
	    {"blaxel", "drives are Blaxel's own volumes, not buckets; its SDK mounts buckets "
	               "with s3fs/gcsfuse inside the sandbox"},
	    {"e2b", "its SDK's e2b_cloud_bucket strategy is rclone inside the sandbox"},
	    {"daytona", "its SDK's daytona_cloud_bucket strategy is rclone inside the sandbox"},
	    {"runloop", "its SDK's runloop_cloud_bucket strategy is rclone inside the sandbox"},
	    {"vercel", "its SDK's vercel_cloud_bucket strategy is mount-s3 inside the sandbox"},
	};
	const char *own = "it has no bucket mount";

	for (size_t i = 0; i < AL_ARRAY_SIZE(own_mounts); i++)
		if (!strcmp(own_mounts[i].provider, p->ops->type))
			own = own_mounts[i].own;
	if (cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(e, "credentials_in_sandbox")))
		return al_error_set(
		    err, ENOTSUP,
		    "manifest entry %s: %s with \"credentials_in_sandbox\" is refused on provider "
		    "%s: rclone inside the sandbox (the SDK's way) needs /dev/fuse, the right to "
		    "mount FUSE and rclone inside it, and airlock-harness does not put keys into "
		    "a sandbox; use the local provider (airlockd mounts on the host, the keys "
		    "stay out of the sandbox)",
		    e->string, type, p->ops->type);
	return al_error_set(err, ENOTSUP,
	                    "manifest entry %s: %s is refused on provider %s: no mount of the "
	                    "service keeps the keys outside the sandbox for it (%s); use the "
	                    "local provider (airlockd mounts on the host, the keys stay out of "
	                    "the sandbox)",
	                    e->string, type, p->ops->type, own);
}

static int materialise_entries(struct al_provider *p, struct al_sandbox *sb, const cJSON *entries,
                               const char *dir, struct al_error *err)
{
	const cJSON *e;
	int r;

	cJSON_ArrayForEach(e, entries)
	{
		const cJSON *type = cJSON_GetObjectItemCaseSensitive(e, "type");
		_cleanup_free_ char *path = NULL;
		if (!cJSON_IsString(type))
			return al_error_set(err, EINVAL, "manifest entry %s has no type",
			                    e->string);
		if (e->string[0] == '/' || strstr(e->string, ".."))
			return al_error_set(err, EINVAL,
			                    "manifest entry %s: keys are relative and without ..",
			                    e->string);
		if (asprintf(&path, "%s/%s", dir, e->string) < 0)
			return al_error_set(err, ENOMEM, "out of memory");
		if (!strcmp(type->valuestring, "dir")) {
			if ((r = mkdir_p(p, sb, path, err)) < 0)
				return r;
			r = materialise_entries(
			    p, sb, cJSON_GetObjectItemCaseSensitive(e, "children"), path, err);
			if (r < 0)
				return r;
		} else if (!strcmp(type->valuestring, "file")) {
			const cJSON *content = cJSON_GetObjectItemCaseSensitive(e, "content");
			const char *text = cJSON_IsString(content) ? content->valuestring : "";
			_cleanup_free_ char *parent = strdup(path);
			if (!parent)
				return al_error_set(err, ENOMEM, "out of memory");
			*strrchr(parent, '/') = '\0';
			if ((r = mkdir_p(p, sb, parent, err)) < 0 ||
			    (r = p->ops->write(p, sb, path, text, strlen(text), err)) < 0)
				return r;
		} else if (is_mount_entry(type->valuestring)) {
			const cJSON *fields;
			const char *kind = al_hosted_mount_kind(e, &fields);
			/* Made by the service at create, with its keys outside the sandbox
			 * (also when "credentials_in_sandbox" would allow them inside). */
			if (al_hosted_native_mount(p->ops->type, kind))
				continue;
			return al_hosted_refuse_mount(p, e, type->valuestring, err);
		} else {
			return al_error_set(
			    err, ENOTSUP,
			    "manifest entry %s: type %s is not supported by provider %s "
			    "(only file and dir)",
			    e->string, type->valuestring, p->ops->type);
		}
	}
	return 0;
}

static int native_mounts_below(struct al_provider *p, const cJSON *entries, const char *parent,
                               al_hosted_mount_fn fn, void *ctx, struct al_error *err)
{
	const cJSON *e;
	int r;

	cJSON_ArrayForEach(e, entries)
	{
		_cleanup_free_ char *key = NULL;
		const char *type = al_json_str(e, "type");
		const cJSON *fields;
		const char *kind = al_hosted_mount_kind(e, &fields);

		if (parent ? asprintf(&key, "%s/%s", parent, e->string) < 0
		           : !(key = strdup(e->string)))
			return al_error_set(err, ENOMEM, "out of memory");
		if (type && !strcmp(type, "dir"))
			r = native_mounts_below(p, cJSON_GetObjectItemCaseSensitive(e, "children"),
			                        key, fn, ctx, err);
		else if (!kind)
			r = 0;
		else if (!al_hosted_native_mount(p->ops->type, kind))
			r = al_hosted_refuse_mount(p, e, type, err);
		else
			r = fn(ctx, e, key, kind, fields, err);
		if (r < 0)
			return r;
	}
	return 0;
}

int al_hosted_for_each_native_mount(struct al_provider *p, const cJSON *entries,
                                    al_hosted_mount_fn fn, void *ctx, struct al_error *err)
{
	return native_mounts_below(p, entries, NULL, fn, ctx, err);
}

int al_hosted_materialise(struct al_provider *p, struct al_sandbox *sb, const cJSON *manifest,
                          const char *root, struct al_error *err)
{
	int r = mkdir_p(p, sb, root, err);

	if (r < 0)
		return r;
	return materialise_entries(p, sb, cJSON_GetObjectItemCaseSensitive(manifest, "entries"),
	                           root, err);
}

/* A scratch name in the sandbox's /tmp, as the Agents SDK makes them. */
static int scratch_name(const char *provider, char *out, size_t size, struct al_error *err)
{
	char hex[17];
	int r = al_random_hex(hex, 16, err);

	if (r < 0)
		return r;
	snprintf(out, size, "/tmp/airlock-%s-%llu-%s.tar", provider,
	         (unsigned long long)al_now_ms(), hex);
	return 0;
}

int al_hosted_persist(struct al_provider *p, struct al_sandbox *sb, const char *root,
                      const char *archive_path, struct al_error *err)
{
	_cleanup_free_ char *qroot = shell_quote(root);
	_cleanup_free_ char *qtmp = NULL;
	_cleanup_free_ char *script = NULL;
	_cleanup_free_ char *data = NULL;
	_cleanup_free_ char *part = NULL;
	_cleanup_close_ int fd = -1;
	char tmp[128];
	size_t len = 0;
	int r;

	if ((r = scratch_name(p->ops->type, tmp, sizeof(tmp), err)) < 0)
		return r;
	qtmp = shell_quote(tmp);
	if (!qroot || !qtmp ||
	    asprintf(&script, "mkdir -p -- %s && tar -C %s -cf %s .", qroot, qroot, qtmp) < 0)
		return al_error_set(err, ENOMEM, "out of memory");
	r = sh(p, sb, script, "persist workspace: tar in the sandbox", err);
	if (r >= 0)
		r = p->ops->read(p, sb, tmp, AL_HOSTED_MAX_ARCHIVE, &data, &len, err);
	{
		struct al_error ignored = AL_ERROR_INIT;
		p->ops->remove(p, sb, tmp, &ignored);
	}
	if (r < 0)
		return al_error_prefix(err, "persist workspace");
	if (asprintf(&part, "%s.part", archive_path) < 0)
		return al_error_set(err, ENOMEM, "out of memory");
	fd = open(part, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0)
		return al_error_errno(err, "create %s", part);
	if (al_write_all(fd, data, len) < 0 || fsync(fd) < 0) {
		r = al_error_errno(err, "write %s", part);
		unlink(part);
		return r;
	}
	if (rename(part, archive_path) < 0) {
		r = al_error_errno(err, "rename %s", part);
		unlink(part);
		return r;
	}
	return 0;
}

int al_hosted_hydrate(struct al_provider *p, struct al_sandbox *sb, const char *root,
                      const char *archive_path, struct al_error *err)
{
	_cleanup_free_ char *qroot = shell_quote(root);
	_cleanup_free_ char *qtmp = NULL;
	_cleanup_free_ char *script = NULL;
	_cleanup_free_ char *data = NULL;
	char tmp[128];
	size_t len = 0;
	int r;

	r = al_hosted_check_archive(archive_path, err);
	if (r < 0)
		return al_error_prefix(err, "hydrate workspace from %s", archive_path);
	r = al_read_file(archive_path, AL_HOSTED_MAX_ARCHIVE, &data, &len, err);
	if (r < 0)
		return r;
	if ((r = scratch_name(p->ops->type, tmp, sizeof(tmp), err)) < 0)
		return r;
	qtmp = shell_quote(tmp);
	if (!qroot || !qtmp ||
	    asprintf(&script,
	             "mkdir -p -- %s && find %s -mindepth 1 -maxdepth 1 -exec rm -rf -- {} + && "
	             "tar -C %s -xf %s",
	             qroot, qroot, qroot, qtmp) < 0)
		return al_error_set(err, ENOMEM, "out of memory");
	r = p->ops->write(p, sb, tmp, data, len, err);
	if (r >= 0)
		r = sh(p, sb, script, "hydrate workspace: untar in the sandbox", err);
	{
		struct al_error ignored = AL_ERROR_INIT;
		p->ops->remove(p, sb, tmp, &ignored);
	}
	return r < 0 ? r : 0;
}

/* ---- remove and list through commands ---- */

int al_hosted_shell_remove(struct al_provider *p, struct al_sandbox *sb, const char *abs,
                           struct al_error *err)
{
	_cleanup_free_ char *q = shell_quote(abs);
	_cleanup_free_ char *script = NULL;
	_cleanup_free_ char *out = NULL;
	const char *argv[] = {"/bin/sh", "-c", NULL, NULL};
	int code = 0, r;

	if (!q || asprintf(&script,
	                   "if [ -e %s ] || [ -L %s ]; then rm -rf -- %s; else echo missing; "
	                   "fi",
	                   q, q, q) < 0)
		return al_error_set(err, ENOMEM, "out of memory");
	argv[2] = script;
	r = al_hosted_run(p, sb, argv, &code, &out, err);
	if (r < 0)
		return r;
	if (out && !strncmp(out, "missing", 7))
		return al_error_set(err, ENOENT, "%s: no such file or directory", abs);
	if (code)
		return al_error_set(err, EIO, "remove %s: exit %d", abs, code);
	return 0;
}

/* One line per entry: type letter, size, name (names with a newline are not listed). */
static const char shell_list_script[] =
    "cd -- \"$1\" || exit 3; for f in .* *; do "
    "case $f in .|..) continue;; *\"\n\"*) continue;; esac; "
    "if [ -L \"$f\" ]; then t=l; elif [ -d \"$f\" ]; then t=d; elif [ -f \"$f\" ]; then t=f; "
    "elif [ -e \"$f\" ]; then t=o; else continue; fi; "
    "s=0; [ $t = f ] && s=$(stat -c %s -- \"$f\"); printf '%s %s %s\\n' $t $s \"$f\"; done";

int al_hosted_shell_list(struct al_provider *p, struct al_sandbox *sb, const char *abs,
                         struct al_dir_entry **entries, size_t *n, struct al_error *err)
{
	_cleanup_free_ char *out = NULL;
	const char *argv[] = {"/bin/sh", "-c", shell_list_script, "sh", NULL, NULL};
	struct al_dir_entry *list = NULL;
	size_t count = 0, cap = 0;
	int code = 0, r;

	argv[4] = abs;
	r = al_hosted_run(p, sb, argv, &code, &out, err);
	if (r < 0)
		return r;
	if (code == 3)
		return al_error_set(err, ENOENT, "%s: no such directory", abs);
	if (code)
		return al_error_set(err, EIO, "list %s: exit %d", abs, code);
	for (char *save = NULL, *line = strtok_r(out, "\n", &save); line;
	     line = strtok_r(NULL, "\n", &save)) {
		char type;
		unsigned long long size;
		int name_at = 0;
		if (sscanf(line, "%c %llu %n", &type, &size, &name_at) < 2 || !name_at)
			continue;
		if (count == cap) {
			struct al_dir_entry *v =
			    realloc(list, (cap = cap ? cap * 2 : 16) * sizeof(*v));
			if (!v) {
				al_dir_entries_free(list, count);
				return al_error_set(err, ENOMEM, "out of memory");
			}
			list = v;
		}
		list[count].name = strdup(line + name_at);
		if (!list[count].name) {
			al_dir_entries_free(list, count);
			return al_error_set(err, ENOMEM, "out of memory");
		}
		list[count].type = type;
		list[count].size = size;
		count++;
	}
	*entries = list ? list : calloc(1, sizeof(*list));
	*n = count;
	return *entries ? 0 : al_error_set(err, ENOMEM, "out of memory");
}

/* ---- archive checks ---- */

static void archive_freep(struct archive **a)
{
	if (*a)
		archive_read_free(*a);
}

static const char *strip_dot(const char *name)
{
	while (name[0] == '.' && name[1] == '/')
		name += 2;
	return name;
}

/* The symlink among links that name is written through (a path prefix), or NULL. */
static const char *through_symlink(char *const *links, const char *name)
{
	name = strip_dot(name);
	for (; links && *links; links++) {
		size_t n = strlen(*links);
		if (!strncmp(name, *links, n) && name[n] == '/')
			return *links;
	}
	return NULL;
}

static bool has_dotdot(const char *path)
{
	_cleanup_free_ char *copy = strdup(path);

	if (!copy)
		return true;
	for (char *save = NULL, *c = strtok_r(copy, "/", &save); c; c = strtok_r(NULL, "/", &save))
		if (!strcmp(c, ".."))
			return true;
	return false;
}

int al_hosted_check_archive(const char *path, struct al_error *err)
{
	_cleanup_(archive_freep) struct archive *a = archive_read_new();
	_cleanup_strv_ char **regular = NULL; /* regular files seen, for hardlinks */
	_cleanup_strv_ char **links = NULL;   /* symlinks seen, never written through */
	struct archive_entry *e;
	struct stat st;
	uint64_t total = 0;
	size_t members = 0;
	int r;

	if (!a)
		return al_error_set(err, ENOMEM, "out of memory");
	if (stat(path, &st) < 0)
		return al_error_errno(err, "%s", path);
	if ((uint64_t)st.st_size > AL_HOSTED_MAX_ARCHIVE)
		return al_error_set(err, EFBIG, "%s is larger than %llu bytes", path,
		                    (unsigned long long)AL_HOSTED_MAX_ARCHIVE);
	archive_read_support_format_tar(a);
	archive_read_support_filter_gzip(a);
	if (archive_read_open_filename(a, path, 65536) != ARCHIVE_OK)
		return al_error_set(err, EINVAL, "%s: %s", path, archive_error_string(a));
	while ((r = archive_read_next_header(a, &e)) == ARCHIVE_OK) {
		const char *name = archive_entry_pathname(e);
		const char *link = archive_entry_symlink(e);
		const char *hard = archive_entry_hardlink(e);
		mode_t type = archive_entry_filetype(e);

		if (!name || !*name)
			return al_error_set(err, EINVAL, "a member has no name");
		if (++members > AL_HOSTED_MAX_MEMBERS)
			return al_error_set(err, EFBIG, "more than %d members",
			                    AL_HOSTED_MAX_MEMBERS);
		if (name[0] == '/' || has_dotdot(name))
			return al_error_set(err, EINVAL, "member %s: absolute or with ..", name);
		if (archive_entry_mode(e) & (S_ISUID | S_ISGID))
			return al_error_set(err, EINVAL, "member %s: setuid or setgid", name);
		if (archive_entry_sparse_count(e) > 0)
			return al_error_set(err, EINVAL, "member %s: sparse", name);
		if (through_symlink(links, name))
			return al_error_set(err, EINVAL,
			                    "member %s: written through the symlink %s", name,
			                    through_symlink(links, name));
		if (hard) {
			bool earlier = false;
			for (char **f = regular; f && *f && !earlier; f++)
				earlier = !strcmp(*f, hard);
			if (!earlier)
				return al_error_set(
				    err, EINVAL,
				    "member %s: hard link to %s, not a regular file "
				    "extracted before it",
				    name, hard);
			continue;
		}
		if (type == AE_IFLNK) {
			/* Any target, as airlockd takes them (archives.c): it is the
			 * sandbox's to resolve, inside its root; a venv has absolute
			 * ones.  What matters is that nothing is written through one. */
			if (!link || !*link)
				return al_error_set(err, EINVAL,
				                    "member %s: symlink without a target", name);
			if (al_strv_push(&links, strip_dot(name)) < 0)
				return al_error_set(err, ENOMEM, "out of memory");
		} else if (type == AE_IFREG) {
			size_t n = 0;
			char **v;
			total += (uint64_t)archive_entry_size(e);
			if (total > AL_HOSTED_MAX_EXTRACTED)
				return al_error_set(err, EFBIG, "more than %llu bytes extracted",
				                    (unsigned long long)AL_HOSTED_MAX_EXTRACTED);
			while (regular && regular[n])
				n++;
			v = realloc(regular, (n + 2) * sizeof(*v));
			if (!v)
				return al_error_set(err, ENOMEM, "out of memory");
			regular = v;
			regular[n] = strdup(name);
			regular[n + 1] = NULL;
			if (!regular[n])
				return al_error_set(err, ENOMEM, "out of memory");
		} else if (type != AE_IFDIR) {
			return al_error_set(err, EINVAL,
			                    "member %s: only files, directories and links may be "
			                    "unpacked",
			                    name);
		}
	}
	if (r != ARCHIVE_EOF)
		return al_error_set(err, EINVAL, "%s: %s", path, archive_error_string(a));
	return 0;
}

/* ---- exec sessions ---- */

#define SESSIONS_DIR "/tmp/airlock-sessions"
#define POLL_STEP_MS 100

static bool valid_session_id(const char *id)
{
	if (!id || strlen(id) != 16)
		return false;
	for (const char *c = id; *c; c++)
		if (!strchr("0123456789abcdef", *c))
			return false;
	return true;
}

/* The poll script: new output of both streams as base64 between markers, then the exit
 * status or "running".  It waits up to yield_ms for the end. */
static char *poll_script(const char *id, uint64_t yield_ms, size_t max)
{
	char *s;
	unsigned long steps = (unsigned long)(yield_ms / POLL_STEP_MS);

	if (asprintf(&s,
	             "d=" SESSIONS_DIR "/%s; [ -d \"$d\" ] || { echo '==gone'; exit 0; }\n"
	             "i=0; while [ ! -f \"$d/exit\" ] && [ $i -lt %lu ]; do sleep 0.1; "
	             "i=$((i+1)); done\n"
	             "e=; [ -f \"$d/exit\" ] && e=$(cat \"$d/exit\")\n"
	             "for s in out err; do o=$(cat \"$d/$s.off\" 2>/dev/null || echo 0); "
	             "n=$(wc -c <\"$d/$s\"); echo \"==$s $o $n\"; "
	             "if [ \"$n\" -gt \"$o\" ]; then tail -c +$((o+1)) \"$d/$s\" | head -c "
	             "$((n-o)) | head -c %zu | base64; fi; "
	             "echo \"$n\" >\"$d/$s.off.tmp\" && mv \"$d/$s.off.tmp\" \"$d/$s.off\"; done\n"
	             "if [ -n \"$e\" ]; then echo \"==exit $e\"; rm -rf \"$d\"; else echo "
	             "'==running'; fi\n",
	             id, steps, max ? max : (size_t)64 << 20) < 0)
		return NULL;
	return s;
}

static int decode_section(const char *b64, size_t len, struct al_buf *into)
{
	_cleanup_free_ char *text = strndup(b64, len);
	_cleanup_free_ char *raw = NULL;
	struct al_error e = AL_ERROR_INIT;
	size_t n = 0;

	if (!text)
		return -ENOMEM;
	if (al_base64_decode(text, &raw, &n, &e) < 0)
		return -EPROTO;
	return al_buf_append(into, raw, n);
}

/* Parse the poll script's answer into res. */
static int parse_poll(const char *id, const char *out, size_t max, struct al_exec_result *res,
                      struct al_error *err)
{
	struct al_buf streams[2] = {{0}, {0}};
	const char *p = out;
	bool running = false, ended = false, truncated = false;
	int status = 0;

	memset(res, 0, sizeof(*res));
	if (strstr(out, "==gone"))
		return al_error_set(err, ENOENT, "process %s: no such session", id);
	while (p && *p) {
		const char *line_end = strchr(p, '\n');
		size_t len = line_end ? (size_t)(line_end - p) : strlen(p);
		if (!strncmp(p, "==out ", 6) || !strncmp(p, "==err ", 6)) {
			int which = p[2] == 'e';
			unsigned long long from = 0, to = 0;
			const char *body = line_end ? line_end + 1 : p + len;
			/* The base64 lines, if any, run up to the next marker line. */
			const char *next =
			    !strncmp(body, "==", 2) ? body - 1 : strstr(body, "\n==");
			size_t blen = next ? (size_t)(next - body + (next < body)) : strlen(body);
			sscanf(p + 6, "%llu %llu", &from, &to);
			if (max && to - from > max)
				truncated = true;
			if (blen && decode_section(body, blen, &streams[which]) < 0) {
				al_buf_free(&streams[0]);
				al_buf_free(&streams[1]);
				return al_error_set(err, EPROTO, "process %s: unreadable output",
				                    id);
			}
			p = next ? next + 1 : NULL;
			continue;
		}
		if (!strncmp(p, "==exit ", 7)) {
			ended = true;
			status = atoi(p + 7);
		} else if (!strncmp(p, "==running", 9)) {
			running = true;
		}
		p = line_end ? line_end + 1 : NULL;
	}
	if (!running && !ended) {
		al_buf_free(&streams[0]);
		al_buf_free(&streams[1]);
		return al_error_set(err, EPROTO, "process %s: the poll gave no status", id);
	}
	res->running = running;
	res->truncated = truncated;
	if (running) {
		res->process_id = strdup(id);
		res->exit_code = -1;
	} else if (status > 128 && status < 128 + 65) {
		res->signal = status - 128;
		res->exit_code = -1;
	} else {
		res->exit_code = status;
	}
	if (al_buf_append(&streams[0], "", 1) < 0 || al_buf_append(&streams[1], "", 1) < 0 ||
	    (running && !res->process_id)) {
		al_buf_free(&streams[0]);
		al_buf_free(&streams[1]);
		free(res->process_id);
		return al_error_set(err, ENOMEM, "out of memory");
	}
	res->out = streams[0].data;
	res->out_len = streams[0].len - 1;
	res->err = streams[1].data;
	res->err_len = streams[1].len - 1;
	return 0;
}

static int session_poll(struct al_provider *p, struct al_sandbox *sb,
                        const struct al_session_runner *runner, const char *id, uint64_t yield_ms,
                        size_t max, struct al_exec_result *res, struct al_error *err)
{
	_cleanup_free_ char *script = poll_script(id, yield_ms, max);
	_cleanup_free_ char *out = NULL;
	int code = 0, r;

	if (!script)
		return al_error_set(err, ENOMEM, "out of memory");
	r = runner->run(p, sb, script, (long)yield_ms + 120000, &out, &code, err);
	if (r < 0)
		return r;
	if (code != 0)
		return al_error_set(err, EIO, "process %s: poll failed (exit %d): %.200s", id, code,
		                    out ? out : "");
	return parse_poll(id, out ? out : "", max, res, err);
}

int al_session_exec(struct al_provider *p, struct al_sandbox *sb,
                    const struct al_session_runner *runner, const char *root,
                    const struct al_exec_request *req, struct al_exec_result *res,
                    struct al_error *err)
{
	_cleanup_free_ char *cwd = al_hosted_abs(root, req->workdir ? req->workdir : ".");
	_cleanup_free_ char *qcwd = cwd ? shell_quote(cwd) : NULL;
	_cleanup_free_ char *cmd = NULL;
	_cleanup_free_ char *qcmd = NULL;
	_cleanup_free_ char *script = NULL;
	_cleanup_free_ char *out = NULL;
	struct al_buf argv = {0};
	char id[17];
	int code = 0, r;

	if (!qcwd)
		return al_error_set(err, ENOMEM, "out of memory");
	for (const char *const *a = req->argv; *a; a++) {
		_cleanup_free_ char *q = shell_quote(*a);
		if (!q || al_buf_append(&argv, " ", 1) < 0 ||
		    al_buf_append(&argv, q, strlen(q)) < 0) {
			al_buf_free(&argv);
			return al_error_set(err, ENOMEM, "out of memory");
		}
	}
	if (al_buf_append(&argv, "", 1) < 0)
		return al_error_set(err, ENOMEM, "out of memory");
	cmd = argv.data;
	if ((r = al_random_hex(id, 16, err)) < 0)
		return r;
	qcmd = shell_quote(cmd);
	/* The wrapper holds the FIFO open read-write, so that writers never block and the
	 * command never sees an early end of input; setsid gives the command its own process
	 * group for kill. */
	if (!qcmd ||
	    asprintf(&script,
	             "d=" SESSIONS_DIR "/%s; mkdir -p \"$d\" && mkfifo \"$d/in\" && : >\"$d/out\" "
	             "&& : >\"$d/err\" && cd %s || exit 111\n"
	             "nohup sh -c 'd=$1; exec 3<>\"$d/in\"; setsid sh -c \"$2\" <\"$d/in\" "
	             ">\"$d/out\" 2>\"$d/err\" 3<&- & echo $! >\"$d/pid\"; wait $!; echo $? "
	             ">\"$d/exit.tmp\"; mv \"$d/exit.tmp\" \"$d/exit\"' sh \"$d\" %s >/dev/null "
	             "2>&1 </dev/null &\n"
	             "i=0; while [ ! -f \"$d/pid\" ] && [ $i -lt 100 ]; do sleep 0.05; "
	             "i=$((i+1)); done; [ -f \"$d/pid\" ]\n",
	             id, qcwd, qcmd) < 0)
		return al_error_set(err, ENOMEM, "out of memory");
	r = runner->run(p, sb, script, 120000, &out, &code, err);
	if (r < 0)
		return r;
	if (code == 111)
		return al_error_set(err, ENOENT, "exec: cannot start in %s: %.200s", cwd,
		                    out ? out : "");
	if (code != 0)
		return al_error_set(err, EIO, "exec: the session did not start (exit %d): %.200s",
		                    code, out ? out : "");
	if (req->yield_ms == 0) {
		/* No yield: to the end, however long it takes, gathering what each poll adds. */
		struct al_buf o = {0}, e = {0};
		bool truncated = false;
		for (;;) {
			struct al_exec_result more = {0};
			r = session_poll(p, sb, runner, id, 30000, req->max_output_bytes, &more,
			                 err);
			if (r < 0 || al_buf_append(&o, more.out, more.out_len) < 0 ||
			    al_buf_append(&e, more.err, more.err_len) < 0) {
				al_exec_result_free(&more);
				al_buf_free(&o);
				al_buf_free(&e);
				return r < 0 ? r : al_error_set(err, ENOMEM, "out of memory");
			}
			truncated |= more.truncated;
			if (!more.running) {
				if (al_buf_append(&o, "", 1) < 0 || al_buf_append(&e, "", 1) < 0) {
					al_exec_result_free(&more);
					al_buf_free(&o);
					al_buf_free(&e);
					return al_error_set(err, ENOMEM, "out of memory");
				}
				free(more.out);
				free(more.err);
				*res = more;
				res->out = o.data;
				res->out_len = o.len - 1;
				res->err = e.data;
				res->err_len = e.len - 1;
				res->truncated = truncated;
				return 0;
			}
			al_exec_result_free(&more);
		}
	}
	return session_poll(p, sb, runner, id, req->yield_ms, req->max_output_bytes, res, err);
}

int al_session_write(struct al_provider *p, struct al_sandbox *sb,
                     const struct al_session_runner *runner, const char *process_id,
                     const char *data, size_t len, uint64_t yield_ms, size_t max,
                     struct al_exec_result *res, struct al_error *err)
{
	int r;

	if (!valid_session_id(process_id))
		return al_error_set(err, ENOENT, "process %s: no such session", process_id);
	if (len) {
		_cleanup_free_ char *b64 = al_base64_encode(data, len);
		_cleanup_free_ char *script = NULL;
		_cleanup_free_ char *out = NULL;
		int code = 0;
		if (!b64 ||
		    asprintf(&script,
		             "d=" SESSIONS_DIR "/%s; [ -p \"$d/in\" ] && [ ! -f \"$d/exit\" ] "
		             "|| exit 3; printf '%%s' '%s' | base64 -d >\"$d/in\"",
		             process_id, b64) < 0)
			return al_error_set(err, ENOMEM, "out of memory");
		r = runner->run(p, sb, script, 120000, &out, &code, err);
		if (r < 0)
			return r;
		if (code == 3)
			return al_error_set(err, ENOENT, "process %s has ended", process_id);
		if (code != 0)
			return al_error_set(err, EIO, "write stdin of %s: exit %d", process_id,
			                    code);
	}
	return session_poll(p, sb, runner, process_id, yield_ms, max, res, err);
}

int al_session_kill(struct al_provider *p, struct al_sandbox *sb,
                    const struct al_session_runner *runner, const char *process_id,
                    const char *signame, struct al_error *err)
{
	_cleanup_free_ char *script = NULL;
	_cleanup_free_ char *out = NULL;
	int code = 0, r;

	if (!valid_session_id(process_id))
		return al_error_set(err, ENOENT, "process %s: no such session", process_id);
	if (strcmp(signame, "KILL") && strcmp(signame, "TERM") && strcmp(signame, "INT") &&
	    strcmp(signame, "HUP"))
		return al_error_set(err, EINVAL, "signal %s: KILL, TERM, INT or HUP", signame);
	if (asprintf(&script,
	             "d=" SESSIONS_DIR "/%s; [ -f \"$d/pid\" ] || exit 3; [ -f \"$d/exit\" ] && "
	             "exit 0; kill -%s -- -$(cat \"$d/pid\") 2>/dev/null || kill -%s $(cat "
	             "\"$d/pid\")",
	             process_id, signame, signame) < 0)
		return al_error_set(err, ENOMEM, "out of memory");
	r = runner->run(p, sb, script, 60000, &out, &code, err);
	if (r < 0)
		return r;
	if (code == 3)
		return al_error_set(err, ENOENT, "process %s: no such session", process_id);
	return 0;
}

const char *al_hosted_option(const cJSON *options, const char *key, const char *env)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(options, key);
	const char *from_env = env ? getenv(env) : NULL;

	if (cJSON_IsString(v) && *v->valuestring)
		return v->valuestring;
	return from_env && *from_env ? from_env : NULL;
}

char *al_hosted_url_escape(const char *s, int len)
{
	char *e = curl_easy_escape(NULL, s, len);
	char *copy = e ? strdup(e) : NULL;

	curl_free(e);
	return copy;
}

int al_hosted_ms_option(const cJSON *options, const char *key, long def, long *ms,
                        struct al_error *err)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(options, key);

	if (!v) {
		*ms = def;
		return 0;
	}
	/* Below a second no call of a hosted API can be expected to answer. */
	if (!cJSON_IsNumber(v) || v->valuedouble < 1000 || v->valuedouble > (double)LONG_MAX)
		return al_error_set(err, EINVAL, "provider.%s must be a number of at least 1000",
		                    key);
	*ms = (long)v->valuedouble;
	return 0;
}

static bool is_http_url(const char *url)
{
	return !strncmp(url, "http://", 7) || !strncmp(url, "https://", 8);
}

void al_hosted_client_close(struct al_hosted_client *c)
{
	al_http_close(&c->http);
	if (c->auth_header)
		explicit_bzero(c->auth_header, strlen(c->auth_header));
	free(c->auth_header);
	free(c->base_url);
	memset(c, 0, sizeof(*c));
}

int al_hosted_client_open(struct al_hosted_client *c, const struct al_hosted_config *cfg,
                          const cJSON *options, const char *api_key, struct al_error *err)
{
	const char *url = al_hosted_option(options, cfg->url_key, cfg->url_env);
	/* Retried with backoff: hosted APIs answer 429 and 5xx under load. */
	struct al_http_config hc = {.max_retries = 4,
	                            .retry_base_ms = 500,
	                            .ca_bundle = al_hosted_option(options, "ca_bundle", NULL)};
	bool keyed = api_key && *api_key;
	int r;

	memset(c, 0, sizeof(*c));
	if (!keyed && !cfg->key_optional)
		return al_error_set(
		    err, EPERM, "provider %s needs a key: set %s, or %s in the credentials file",
		    cfg->type, al_provider_key_env(cfg->type), al_provider_key_field(cfg->type));
	if (!url && !cfg->default_url)
		return al_error_set(err, EINVAL, "provider %s needs %s", cfg->type, cfg->url_key);
	if (url && !is_http_url(url))
		return al_error_set(err, EINVAL, "provider.%s must be an http(s) URL",
		                    cfg->url_key);
	r = al_hosted_ms_option(options, "request_timeout_ms", 60 * 1000L, &c->request_timeout_ms,
	                        err);
	if (r < 0)
		return r;
	hc.timeout_ms = c->request_timeout_ms;
	r = al_http_open(&c->http, &hc, err);
	if (r < 0)
		return r;
	c->base_url = al_hosted_base_url(url ? url : cfg->default_url);
	if (!c->base_url || (keyed && asprintf(&c->auth_header, "%s%s", cfg->auth, api_key) < 0)) {
		c->auth_header = NULL;
		al_hosted_client_close(c);
		return al_error_set(err, ENOMEM, "out of memory");
	}
	return 0;
}

void *al_hosted_provider_new(size_t size, const struct al_hosted_config *cfg, const cJSON *options,
                             const char *api_key, struct al_error *err)
{
	struct al_hosted_provider *h = calloc(1, size);

	if (!h) {
		al_error_set(err, ENOMEM, "out of memory");
		return NULL;
	}
	h->base.ops = cfg->ops;
	h->runner = cfg->runner;
	if (al_hosted_client_open(&h->c, cfg, options, api_key, err) < 0) {
		free(h);
		return NULL;
	}
	return h;
}

void al_hosted_provider_free(struct al_hosted_provider *h)
{
	al_hosted_client_close(&h->c);
	free(h);
}

int al_hosted_status_errno(long status)
{
	switch (status) {
	case 401:
	case 403:
		return EPERM;
	case 404:
		return ENOENT;
	case 409:
		return EEXIST;
	case 400:
	case 422:
		return EINVAL;
	default:
		return EIO;
	}
}

int al_hosted_send(struct al_hosted_client *c, const struct al_http_request *rq,
                   al_hosted_errno_fn errnum, bool plane, struct al_buf *out, cJSON **json,
                   struct al_error *err)
{
	struct al_http_response resp;
	int r = al_http_do(&c->http, rq, &resp, err);

	if (r < 0) {
		al_http_response_free(&resp);
		return r;
	}
	if (resp.status < 200 || resp.status >= 300) {
		r = al_http_status_error(
		    &resp, errnum ? errnum(&resp, plane) : al_hosted_status_errno(resp.status),
		    rq->what, err);
		al_http_response_free(&resp);
		return r;
	}
	if (json) {
		*json = cJSON_ParseWithLength(resp.body.data ? resp.body.data : "", resp.body.len);
		al_http_response_free(&resp);
		return *json ? 0 : al_error_set(err, EIO, "%s: the answer is not JSON", rq->what);
	}
	if (out) {
		/* Callers read the body as a string. */
		if (al_buf_append(&resp.body, "", 1) < 0) {
			al_http_response_free(&resp);
			return al_error_set(err, ENOMEM, "out of memory");
		}
		resp.body.len--;
		*out = resp.body;
		return 0;
	}
	al_http_response_free(&resp);
	return 0;
}

char *al_hosted_base_url(const char *url)
{
	char *s = strdup(url);
	size_t n = s ? strlen(s) : 0;

	while (n > 1 && s[n - 1] == '/')
		s[--n] = '\0';
	return s;
}

int al_hosted_exec(struct al_provider *p, struct al_sandbox *sb, const struct al_exec_request *req,
                   struct al_exec_result *res, struct al_error *err)
{
	const struct al_session_runner *runner = ((struct al_hosted_provider *)p)->runner;

	return al_session_exec(p, sb, runner, runner->root(sb), req, res, err);
}

int al_hosted_write_stdin(struct al_provider *p, struct al_sandbox *sb, const char *process_id,
                          const char *data, size_t len, uint64_t yield_ms,
                          struct al_exec_result *res, struct al_error *err)
{
	return al_session_write(p, sb, ((struct al_hosted_provider *)p)->runner, process_id, data,
	                        len, yield_ms, 0, res, err);
}

int al_hosted_kill(struct al_provider *p, struct al_sandbox *sb, const char *process_id,
                   const char *signame, struct al_error *err)
{
	return al_session_kill(p, sb, ((struct al_hosted_provider *)p)->runner, process_id, signame,
	                       err);
}
