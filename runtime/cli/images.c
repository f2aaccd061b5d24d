/* SPDX-License-Identifier: Apache-2.0 */
/* airlock CLI: image import, ls, rm. */
#include "cli.h"

#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <archive.h>
#include <archive_entry.h>

/* ---- images ---- */

/*
 * libarchive, loaded by an import of a directory only.  Linked, it and the
 * ~15 libraries it needs (ICU among them, for formats the CLI never writes)
 * would cost every `airlock` invocation ~5 ms of loading.  Its types and
 * prototypes still come from archive.h: each pointer has its function's type.
 */
#define LIBARCHIVE_SONAME "libarchive.so.13" /* libarchive 3.x */
static struct {
	bool loaded;
	__typeof__(&archive_read_disk_new) read_disk_new;
	__typeof__(&archive_read_disk_set_symlink_physical) read_disk_set_symlink_physical;
	__typeof__(&archive_read_disk_open) read_disk_open;
	__typeof__(&archive_read_disk_descend) read_disk_descend;
	__typeof__(&archive_read_next_header2) read_next_header2;
	__typeof__(&archive_read_data) read_data;
	__typeof__(&archive_read_free) read_free;
	__typeof__(&archive_write_new) write_new;
	__typeof__(&archive_write_set_format_pax_restricted) write_set_format_pax_restricted;
	__typeof__(&archive_write_open_fd) write_open_fd;
	__typeof__(&archive_write_header) write_header;
	__typeof__(&archive_write_data) write_data;
	__typeof__(&archive_write_close) write_close;
	__typeof__(&archive_write_free) write_free;
	__typeof__(&archive_entry_new) entry_new;
	__typeof__(&archive_entry_free) entry_free;
	__typeof__(&archive_entry_pathname) entry_pathname;
	__typeof__(&archive_entry_set_pathname) entry_set_pathname;
	__typeof__(&archive_entry_size) entry_size;
	__typeof__(&archive_error_string) error_string;
} la;

static int load_libarchive(struct al_error *err)
{
	void *h;

	if (la.loaded)
		return 0;
	h = dlopen(LIBARCHIVE_SONAME, RTLD_NOW | RTLD_LOCAL);
	if (!h)
		return al_error_set(err, ENOTSUP, "importing a directory needs %s: %s",
		                    LIBARCHIVE_SONAME, dlerror());
#define LOAD(field, symbol)                                                                        \
	do {                                                                                       \
		if (!(*(void **)&la.field = dlsym(h, #symbol)))                                    \
			return al_error_set(err, ENOTSUP, "%s has no %s", LIBARCHIVE_SONAME,       \
			                    #symbol);                                              \
	} while (0)
	LOAD(read_disk_new, archive_read_disk_new);
	LOAD(read_disk_set_symlink_physical, archive_read_disk_set_symlink_physical);
	LOAD(read_disk_open, archive_read_disk_open);
	LOAD(read_disk_descend, archive_read_disk_descend);
	LOAD(read_next_header2, archive_read_next_header2);
	LOAD(read_data, archive_read_data);
	LOAD(read_free, archive_read_free);
	LOAD(write_new, archive_write_new);
	LOAD(write_set_format_pax_restricted, archive_write_set_format_pax_restricted);
	LOAD(write_open_fd, archive_write_open_fd);
	LOAD(write_header, archive_write_header);
	LOAD(write_data, archive_write_data);
	LOAD(write_close, archive_write_close);
	LOAD(write_free, archive_write_free);
	LOAD(entry_new, archive_entry_new);
	LOAD(entry_free, archive_entry_free);
	LOAD(entry_pathname, archive_entry_pathname);
	LOAD(entry_set_pathname, archive_entry_set_pathname);
	LOAD(entry_size, archive_entry_size);
	LOAD(error_string, archive_error_string);
#undef LOAD
	la.loaded = true; /* the handle stays open for the CLI's life */
	return 0;
}

static void archive_read_freep(struct archive **a)
{
	if (*a)
		la.read_free(*a);
}

static void archive_write_freep(struct archive **a)
{
	if (*a)
		la.write_free(*a);
}

static void archive_entry_freep(struct archive_entry **e)
{
	if (*e)
		la.entry_free(*e);
}

/* One member of the directory walk: written to a, its data too. */
static int tar_one(struct archive *disk, struct archive *a, struct archive_entry *e, size_t prefix,
                   struct al_error *err)
{
	const char *name = la.entry_pathname(e) + prefix;
	char buf[65536];

	while (*name == '/')
		name++;
	if (!*name)
		return 0; /* the directory itself */
	la.entry_set_pathname(e, name);
	if (la.write_header(a, e) < ARCHIVE_WARN)
		return al_error_set(err, EIO, "%s: %s", name, la.error_string(a));
	while (la.entry_size(e) > 0) {
		la_ssize_t n = la.read_data(disk, buf, sizeof(buf));
		if (n < 0)
			return al_error_set(err, EIO, "%s: %s", name, la.error_string(disk));
		if (n == 0)
			break;
		if (la.write_data(a, buf, (size_t)n) < 0)
			return al_error_set(err, EIO, "%s: %s", name, la.error_string(a));
	}
	return 0;
}

/* Write the directory dir (an OCI image layout) to out_fd as a tar. */
static int tar_directory(const char *dir, int out_fd, struct al_error *err)
{
	_cleanup_(archive_read_freep) struct archive *disk = NULL;
	_cleanup_(archive_write_freep) struct archive *a = NULL;
	size_t prefix = strlen(dir);
	int r = load_libarchive(err);

	if (r < 0)
		return r;
	disk = la.read_disk_new();
	a = la.write_new();
	if (!disk || !a)
		return al_error_set(err, ENOMEM, "out of memory");
	la.read_disk_set_symlink_physical(disk);
	if (la.write_set_format_pax_restricted(a) != ARCHIVE_OK ||
	    la.write_open_fd(a, out_fd) != ARCHIVE_OK)
		return al_error_set(err, EIO, "tar: %s", la.error_string(a));
	if (la.read_disk_open(disk, dir) != ARCHIVE_OK)
		return al_error_set(err, EIO, "%s: %s", dir, la.error_string(disk));
	for (;;) {
		_cleanup_(archive_entry_freep) struct archive_entry *e = la.entry_new();
		int r = e ? la.read_next_header2(disk, e) : ARCHIVE_FATAL;

		if (r == ARCHIVE_EOF)
			break;
		if (r < ARCHIVE_WARN)
			return al_error_set(err, EIO, "%s: %s", dir,
			                    e ? la.error_string(disk) : "out of memory");
		la.read_disk_descend(disk);
		r = tar_one(disk, a, e, prefix, err);
		if (r < 0)
			return r;
	}
	if (la.write_close(a) != ARCHIVE_OK)
		return al_error_set(err, EIO, "tar: %s", la.error_string(a));
	return 0;
}

struct upload {
	int fd;
	uint64_t sent, total; /* total 0: unknown (a pipe) */
	uint64_t shown_ms;
	bool progress; /* stderr is a terminal */
	const char *name;
};

static void show_upload(struct upload *u, bool done)
{
	uint64_t now = al_now_ms();

	if (!u->progress || (!done && now - u->shown_ms < 200))
		return;
	u->shown_ms = now;
	if (u->total)
		fprintf(stderr, "\r\033[Kimport %s: %.1f of %.1f MiB sent (%u%%)%s", u->name,
		        (double)u->sent / 1048576.0, (double)u->total / 1048576.0,
		        (unsigned)(u->sent * 100 / u->total), done ? "; unpacking layers..." : "");
	else
		fprintf(stderr, "\r\033[Kimport %s: %.1f MiB sent%s", u->name,
		        (double)u->sent / 1048576.0, done ? "; unpacking layers..." : "");
}

static size_t upload_read(char *buf, size_t size, size_t nitems, void *userdata)
{
	struct upload *u = userdata;
	ssize_t n;

	if (pending_signal)
		return CURL_READFUNC_ABORT;
	do
		n = read(u->fd, buf, size * nitems);
	while (n < 0 && errno == EINTR && !pending_signal);
	if (n < 0)
		return CURL_READFUNC_ABORT;
	u->sent += (uint64_t)n;
	/* With a known length libcurl stops reading at it: no read of EOF. */
	show_upload(u, n == 0 || (u->total && u->sent >= u->total));
	return (size_t)n;
}

/* POST the archive in u->fd to path; the JSON answer goes to *out. */
static int upload_image(struct client *c, const char *path, struct upload *u, cJSON **out,
                        struct al_error *err)
{
	int r = api_call(c,
	                 &(struct request){.method = "POST",
	                                   .path = path,
	                                   .content_type = "application/x-tar",
	                                   .stream_fd = -1,
	                                   .read = upload_read,
	                                   .read_data = u,
	                                   .read_size = u->total},
	                 NULL, out, err);
	if (u->progress)
		fputs("\r\033[K", stderr);
	return r;
}

static int image_import_verb(struct verb_ctx *ctx, int argc, char **argv, bool json)
{
	_cleanup_free_ char *escaped_path = NULL;
	_cleanup_close_ int fd = -1;
	_cleanup_cjson_ cJSON *res = NULL;
	struct al_error err = AL_ERROR_INIT;
	struct upload u = {.progress = isatty(STDERR_FILENO)};
	struct client c = {0};
	const char *src = argc > 2 ? argv[2] : "-";
	struct stat st;
	int r;

	if (argc < 2 || argc > 3)
		return usage_error(usage_image, argc < 2 ? "import: missing NAME"
		                                         : "import: unexpected argument");
	u.name = argv[1];
	if (!strcmp(src, "-")) {
		if (isatty(STDIN_FILENO))
			return usage_error(usage_image,
			                   "import: expected an archive on stdin, not a terminal");
		fd = dup(STDIN_FILENO);
	} else {
		fd = open(src, O_RDONLY | O_CLOEXEC);
	}
	if (fd < 0) {
		al_error_errno(&err, "%s", src);
		return runtime_error(&err);
	}
	if (fstat(fd, &st) == 0 && S_ISDIR(st.st_mode)) {
		/* An OCI layout directory: sent as the tar airlockd takes. */
		close(fd);
		fd = open(".", O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
		if (fd < 0)
			fd = open("/tmp", O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
		if (fd < 0) {
			al_error_errno(&err, "temporary file");
			return runtime_error(&err);
		}
		r = tar_directory(src, fd, &err);
		if (r < 0 || fstat(fd, &st) < 0 || lseek(fd, 0, SEEK_SET) != 0)
			return runtime_error(&err);
	}
	u.fd = fd;
	u.total = S_ISREG(st.st_mode) ? (uint64_t)st.st_size : 0;
	if (client_open(&c, ctx->socket_path, &err) < 0)
		return runtime_error(&err);
	{
		_cleanup_curl_free_ char *q = curl_easy_escape(c.curl, argv[1], 0);
		if (!q || asprintf(&escaped_path, "/v1/images?name=%s", q) < 0) {
			escaped_path = NULL;
			client_close(&c);
			al_error_set(&err, ENOMEM, "out of memory");
			return runtime_error(&err);
		}
	}
	r = upload_image(&c, escaped_path, &u, &res, &err);
	client_close(&c);
	if (r < 0) {
		al_error_prefix(&err, "import %s", argv[1]);
		return runtime_error(&err);
	}
	if (json) {
		print_json(res);
		return 0;
	}
	printf("%s %s (%d layers)\n", argv[1], json_string(res, "id"),
	       cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(res, "layers")));
	return 0;
}

static int image_ls_verb(struct verb_ctx *ctx, int argc, char **argv, bool json)
{
	_cleanup_cjson_ cJSON *res = NULL;
	const cJSON *img;
	int status;

	if (argc > 1)
		return usage_error(usage_image, "ls: unexpected argument '%s'", argv[1]);
	status = verb_json(ctx, "GET", "/v1/images", NULL, &res);
	if (status || json) {
		if (!status)
			print_json(res);
		return status;
	}
	printf("%-32s %-19s %-6s %s\n", "NAME", "ID", "LAYERS", "IMPORTED");
	cJSON_ArrayForEach(img, cJSON_GetObjectItemCaseSensitive(res, "images"))
	{
		const char *id = json_string(img, "id");
		printf("%-32s %-19.19s %-6d %s\n", json_string(img, "name"),
		       strncmp(id, "sha256:", 7) ? id : id + 7,
		       cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(img, "layers")),
		       json_string(img, "imported"));
	}
	return 0;
}

static int image_rm_verb(struct verb_ctx *ctx, int argc, char **argv, bool json)
{
	_cleanup_cjson_ cJSON *out = cJSON_CreateObject();
	cJSON *removed = out ? cJSON_AddArrayToObject(out, "removed") : NULL;
	int status = 0;

	if (argc < 2)
		return usage_error(usage_image, "rm: missing NAME");
	if (!removed)
		return usage_error(usage_image, "out of memory");
	/* Like rm: go on with the others when one fails. */
	for (int i = 1; i < argc; i++) {
		_cleanup_free_ char *path = api_path("/v1/images", argv[i], "");
		_cleanup_cjson_ cJSON *res = NULL;
		if (verb_call(ctx,
		              &(struct request){.method = "DELETE", .path = path, .stream_fd = -1},
		              &res, "image rm %s", argv[i]))
			status = EXIT_RUNTIME;
		else
			cJSON_AddItemToArray(removed, cJSON_CreateString(argv[i]));
	}
	if (json)
		print_json(out);
	return status;
}

int verb_image(struct verb_ctx *ctx, int argc, char **argv)
{
	bool json = false;
	int n = 0;

	/* --json anywhere after the command, for each of them. */
	for (int i = 0; i < argc; i++) {
		if (i >= 2 && !strcmp(argv[i], "--json"))
			json = true;
		else
			argv[n++] = argv[i];
	}
	argc = n;
	if (argc < 2)
		return usage_error(usage_image, "missing command (import, ls or rm)");
	if (!strcmp(argv[1], "-h") || !strcmp(argv[1], "--help"))
		return show_usage(usage_image);
	if (!strcmp(argv[1], "import"))
		return image_import_verb(ctx, argc - 1, argv + 1, json);
	if (!strcmp(argv[1], "ls"))
		return image_ls_verb(ctx, argc - 1, argv + 1, json);
	if (!strcmp(argv[1], "rm"))
		return image_rm_verb(ctx, argc - 1, argv + 1, json);
	return usage_error(usage_image, "unknown image command '%s'", argv[1]);
}
