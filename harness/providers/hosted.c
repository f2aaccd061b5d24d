/* SPDX-License-Identifier: Apache-2.0 */
#include "hosted.h"

#include "cleanup.h"
#include "util.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <archive.h>
#include <archive_entry.h>

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

/* ---- archive checks ---- */

static void archive_freep(struct archive **a)
{
	if (*a)
		archive_read_free(*a);
}

/* Whether "dir/target" stays inside the root, by components ("" dir: the root). */
static bool stays_inside(const char *member, const char *target)
{
	_cleanup_free_ char *joined = NULL;
	int depth = 0;
	const char *slash = strrchr(member, '/');

	if (target[0] == '/')
		return false;
	if (asprintf(&joined, "%.*s%s%s", slash ? (int)(slash - member) : 0, member,
	             slash ? "/" : "", target) < 0)
		return false;
	for (char *save = NULL, *c = strtok_r(joined, "/", &save); c;
	     c = strtok_r(NULL, "/", &save)) {
		if (!strcmp(c, ".."))
			depth--;
		else if (strcmp(c, "."))
			depth++;
		if (depth < 0)
			return false;
	}
	return true;
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
			if (!link || !stays_inside(name, link))
				return al_error_set(err, EINVAL,
				                    "member %s: symlink leaves the root", name);
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
