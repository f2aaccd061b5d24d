/* SPDX-License-Identifier: Apache-2.0 */
/*
 * airlock cp: files and directories between the host and a sandbox, both
 * ways, through the files API (docs/api.md, "Files"): a directory is walked
 * here, entry by entry (GET/POST .../dirs, GET/PUT .../files), so a copy
 * holds one file's transfer at a time and no archive.  File contents are
 * streamed: to the local file as they come, from it as they are sent.
 * Only directories and regular files are copied, as the API only knows
 * those; a symlink or special file is reported and left out.
 */
#include "cli.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

struct cp {
	struct client c;
	const char *id;
	unsigned skipped; /* entries left out (symlinks, special files) */
	unsigned copied;  /* files */
};

/* ID:PATH splits into id and path; a local path has no ':' before its first '/'. */
static bool remote_arg(const char *arg, char **id, const char **path)
{
	const char *colon = strchr(arg, ':');
	const char *slash = strchr(arg, '/');

	if (!colon || colon == arg || (slash && slash < colon))
		return false;
	*id = strndup(arg, (size_t)(colon - arg));
	*path = colon[1] ? colon + 1 : ".";
	return *id != NULL;
}

/* "/v1/sandboxes/ID/<what>?path=P<extra>"; NULL when out of memory. */
static char *entry_path(const char *id, const char *what, const char *path, const char *extra)
{
	_cleanup_curl_free_ char *escaped = curl_easy_escape(NULL, path, 0);
	_cleanup_free_ char *suffix = NULL;

	if (!escaped || asprintf(&suffix, "/%s?path=%s%s", what, escaped, extra) < 0)
		return NULL;
	return sandbox_path(id, suffix);
}

static char *join(const char *dir, const char *name)
{
	char *out = NULL;
	size_t n = strlen(dir);

	if (asprintf(&out, "%s%s%s", dir, n && dir[n - 1] == '/' ? "" : "/", name) < 0)
		return NULL;
	return out;
}

/* The listing of directory path in the sandbox: 0, or 1 when path is no directory. */
static int list_remote(struct cp *cp, const char *path, cJSON **out, struct al_error *err)
{
	_cleanup_free_ char *p = entry_path(cp->id, "dirs", path, "");
	long status = 0;
	int r;

	if (!p)
		return al_error_set(err, ENOMEM, "out of memory");
	r = api_call(&cp->c, &(struct request){.method = "GET", .path = p, .stream_fd = -1},
	             &status, out, err);
	if (r < 0 && status == 400) {
		al_error_clear(err);
		return 1;
	}
	return r;
}

/* ---- from the sandbox ---- */

static int get_file(struct cp *cp, const char *src, const char *dst, unsigned mode,
                    struct al_error *err)
{
	_cleanup_free_ char *p = entry_path(cp->id, "files", src, "");
	_cleanup_close_ int fd = -1;
	int r;

	if (!p)
		return al_error_set(err, ENOMEM, "out of memory");
	fd = open(dst, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode & 0777);
	if (fd < 0)
		return al_error_errno(err, "%s", dst);
	r = api_raw(
	    &cp->c,
	    &(struct request){.method = "GET", .path = p, .stream_fd = fd, .splice_body = true},
	    err);
	if (r < 0) {
		unlink(dst);
		return al_error_prefix(err, "%s:%s", cp->id, src);
	}
	/* O_CREAT's mode applies only to a new file; umask aside, the sandbox's mode wins. */
	(void)fchmod(fd, mode & 0777);
	cp->copied++;
	return 0;
}

static int get_tree(struct cp *cp, const char *src, const char *dst, struct al_error *err)
{
	_cleanup_cjson_ cJSON *listing = NULL;
	const cJSON *e;
	int r = list_remote(cp, src, &listing, err);

	if (r < 0)
		return al_error_prefix(err, "%s:%s", cp->id, src);
	if (r == 1)
		return get_file(cp, src, dst, 0644, err);
	if (mkdir(dst, 0755) < 0 && errno != EEXIST)
		return al_error_errno(err, "%s", dst);
	cJSON_ArrayForEach(e, cJSON_GetObjectItemCaseSensitive(listing, "entries"))
	{
		const char *name = json_string(e, "name"), *type = json_string(e, "type");
		_cleanup_free_ char *from = join(src, name), *to = join(dst, name);
		unsigned mode = (unsigned)strtoul(json_string(e, "mode"), NULL, 8);

		if (!from || !to)
			return al_error_set(err, ENOMEM, "out of memory");
		if (!strcmp(type, "dir"))
			r = get_tree(cp, from, to, err);
		else if (!strcmp(type, "file"))
			r = get_file(cp, from, to, mode ? mode : 0644, err);
		else {
			fprintf(stderr, "airlock: cp: %s:%s: a %s, left out\n", cp->id, from, type);
			cp->skipped++;
			r = 0;
		}
		if (r < 0)
			return r;
	}
	return 0;
}

/* ---- to the sandbox ---- */

static size_t read_fd(char *buf, size_t size, size_t nmemb, void *userdata)
{
	ssize_t n;

	do
		n = read(*(int *)userdata, buf, size * nmemb);
	while (n < 0 && errno == EINTR && !pending_signal);
	return n < 0 ? CURL_READFUNC_ABORT : (size_t)n;
}

static int put_file(struct cp *cp, const char *src, const char *dst, struct al_error *err)
{
	_cleanup_close_ int fd = open(src, O_RDONLY | O_CLOEXEC);
	_cleanup_free_ char *p = NULL;
	char extra[32];
	struct stat st;
	int r;

	if (fd < 0 || fstat(fd, &st) < 0)
		return al_error_errno(err, "%s", src);
	/* No setuid/setgid/sticky bits: the sandbox's root would own the file. */
	snprintf(extra, sizeof(extra), "&parents=1&mode=%04o", (unsigned)st.st_mode & 0777);
	p = entry_path(cp->id, "files", dst, extra);
	if (!p)
		return al_error_set(err, ENOMEM, "out of memory");
	r = api_raw(&cp->c,
	            &(struct request){.method = "PUT",
	                              .path = p,
	                              .content_type = "application/octet-stream",
	                              .stream_fd = -1,
	                              .read = read_fd,
	                              .read_data = &fd,
	                              .read_size = (uint64_t)st.st_size},
	            err);
	if (r < 0)
		return al_error_prefix(err, "%s:%s", cp->id, dst);
	cp->copied++;
	return 0;
}

static int put_dir(struct cp *cp, const char *dst, struct al_error *err)
{
	_cleanup_free_ char *p = entry_path(cp->id, "dirs", dst, "&parents=1");
	long status = 0;
	int r;

	if (!p)
		return al_error_set(err, ENOMEM, "out of memory");
	r = api_call(&cp->c, &(struct request){.method = "POST", .path = p, .stream_fd = -1},
	             &status, NULL, err);
	/* An existing directory is fine: cp merges into it. */
	if (r < 0 && status == 409) {
		al_error_clear(err);
		return 0;
	}
	return r < 0 ? al_error_prefix(err, "%s:%s", cp->id, dst) : 0;
}

static int put_tree(struct cp *cp, const char *src, const char *dst, struct al_error *err)
{
	_cleanup_closedir_ DIR *d = NULL;
	struct dirent *de;
	struct stat st;
	int r;

	if (lstat(src, &st) < 0)
		return al_error_errno(err, "%s", src);
	if (S_ISREG(st.st_mode))
		return put_file(cp, src, dst, err);
	if (!S_ISDIR(st.st_mode)) {
		fprintf(stderr, "airlock: cp: %s: not a regular file or directory, left out\n",
		        src);
		cp->skipped++;
		return 0;
	}
	r = put_dir(cp, dst, err);
	if (r < 0)
		return r;
	d = opendir(src);
	if (!d)
		return al_error_errno(err, "%s", src);
	while ((errno = 0, de = readdir(d))) {
		_cleanup_free_ char *from = NULL, *to = NULL;
		if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
			continue;
		from = join(src, de->d_name);
		to = join(dst, de->d_name);
		if (!from || !to)
			return al_error_set(err, ENOMEM, "out of memory");
		r = put_tree(cp, from, to, err);
		if (r < 0)
			return r;
		if (pending_signal)
			return al_error_set(err, EINTR, "interrupted");
	}
	return errno ? al_error_errno(err, "%s", src) : 0;
}

/* The last component of path ("/a/b/" → "b"), malloc'd. */
static char *base_name(const char *path)
{
	_cleanup_free_ char *copy = strdup(path);

	return copy ? strdup(basename(copy)) : NULL;
}

int verb_cp(struct verb_ctx *ctx, int argc, char **argv)
{
	_cleanup_free_ char *src_id = NULL, *dst_id = NULL, *full_id = NULL, *name = NULL;
	_cleanup_free_ char *target = NULL;
	struct al_error err = AL_ERROR_INIT;
	struct cp cp = {0};
	const char *src, *dst, *src_path = NULL, *dst_path = NULL;
	bool from_sandbox, json = false;
	struct stat st;
	int status, r;

	if (verb_args(&(struct verb_spec){.usage = usage_cp, .min = 2, .max = 2, .json = &json},
	              argc, argv, &status) < 0)
		return status;
	src = argv[optind];
	dst = argv[optind + 1];
	from_sandbox = remote_arg(src, &src_id, &src_path);
	if (from_sandbox == remote_arg(dst, &dst_id, &dst_path))
		return usage_error(usage_cp, "exactly one of SRC and DEST is ID:PATH");
	if (client_open(&cp.c, ctx->socket_path, &err) < 0)
		return runtime_error(&err);
	r = resolve_id(&cp.c, "/v1/sandboxes", from_sandbox ? src_id : dst_id, &full_id, &err);
	cp.id = full_id;
	name = base_name(from_sandbox ? src_path : src);
	if (r >= 0 && !name)
		r = al_error_set(&err, ENOMEM, "out of memory");
	if (r >= 0 && from_sandbox) {
		/* As cp and docker cp: into DEST when it is a directory. */
		if (stat(dst, &st) == 0 && S_ISDIR(st.st_mode))
			target = join(dst, name);
		else
			target = strdup(dst);
		r = target ? get_tree(&cp, src_path, target, &err)
		           : al_error_set(&err, ENOMEM, "out of memory");
	} else if (r >= 0) {
		_cleanup_cjson_ cJSON *listing = NULL;
		/* As cp and docker cp: into DEST when it is a directory. */
		r = list_remote(&cp, dst_path, &listing, &err);
		if (r < 0 && err.code == ENOENT) {
			al_error_clear(&err);
			r = 1;
		}
		if (r >= 0) {
			target = r == 0 ? join(dst_path, name) : strdup(dst_path);
			r = target ? put_tree(&cp, src, target, &err)
			           : al_error_set(&err, ENOMEM, "out of memory");
		}
	}
	client_close(&cp.c);
	if (r < 0)
		return runtime_error(&err);
	if (json)
		printf("{\"sandbox\": \"%s\", \"files\": %u, \"skipped\": %u}\n", cp.id, cp.copied,
		       cp.skipped);
	return 0;
}
