/* SPDX-License-Identifier: Apache-2.0 */
/* The image store (runtime/lib/images.c): imports of OCI layouts built here
 * with libarchive, whiteouts and users, layer sharing and collection, and
 * refusals that leave nothing. */
#include "test.h"

#include <archive.h>
#include <archive_entry.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/xattr.h>
#include <unistd.h>

#include "cleanup.h"
#include "helper.h"
#include "images.h"
#include "strv.h"
#include "util.h"

static char base[] = "/tmp/airlock-test-images-XXXXXX";

struct blob {
	char *data;
	size_t len;
	char hex[65];
};

struct member {
	const char *name;
	const char *data; /* NULL: a directory */
	mode_t mode;
};

/* A tar of members into b (hashed). */
static void make_tar(struct blob *b, const struct member *m, size_t n)
{
	size_t cap = 1 << 20;
	struct archive *a = archive_write_new();

	b->data = calloc(1, cap);
	archive_write_set_format_pax_restricted(a);
	archive_write_set_bytes_in_last_block(a, 1);
	archive_write_open_memory(a, b->data, cap, &b->len);
	for (size_t i = 0; i < n; i++) {
		struct archive_entry *e = archive_entry_new();
		archive_entry_set_pathname(e, m[i].name);
		archive_entry_set_filetype(e, m[i].data ? AE_IFREG : AE_IFDIR);
		archive_entry_set_perm(e, m[i].mode ? m[i].mode : (m[i].data ? 0644 : 0755));
		archive_entry_set_size(e, m[i].data ? (la_int64_t)strlen(m[i].data) : 0);
		archive_write_header(a, e);
		if (m[i].data)
			archive_write_data(a, m[i].data, strlen(m[i].data));
		archive_entry_free(e);
	}
	archive_write_close(a);
	archive_write_free(a);
	al_sha256_hex(b->data, b->len, b->hex);
}

static void make_json(struct blob *b, const char *text)
{
	b->data = strdup(text);
	b->len = strlen(text);
	al_sha256_hex(b->data, b->len, b->hex);
}

/*
 * An OCI layout of two layers into a file in base; returns its fd.  With
 * tamper, layer 2's blob is not what its digest says.
 */
static int make_image(const char *user, bool tamper)
{
	static const struct member l1[] = {
	    {"etc/", NULL, 0},
	    {"etc/passwd", "root:x:0:0:root:/root:/bin/sh\napp:x:1234:4321:app:/home/app:/bin/sh\n",
	     0},
	    {"etc/group", "root:x:0:\ngrp:x:777:app\n", 0},
	    {"data/", NULL, 0},
	    {"data/old/", NULL, 0},
	    {"data/old/a", "a", 0},
	    {"gone", "doomed", 0},
	};
	static const struct member l2[] = {
	    {"data/old/.wh..wh..opq", "", 0},
	    {"data/old/c", "c", 0},
	    {".wh.gone", "", 0},
	    {"bin/", NULL, 0},
	    {"bin/suid", "#!/bin/sh\n", 04755},
	};
	struct blob layer1 = {0}, layer2 = {0}, config = {0}, manifest = {0}, index = {0};
	struct blob *blobs[] = {&layer1, &layer2, &config, &manifest};
	char text[4096], path[256];
	struct archive *a = archive_write_new();
	int fd;

	make_tar(&layer1, l1, AL_ARRAY_SIZE(l1));
	make_tar(&layer2, l2, AL_ARRAY_SIZE(l2));
	snprintf(text, sizeof(text),
	         "{\"architecture\":\"amd64\",\"os\":\"linux\",\"config\":{\"Env\":[\"A=1\","
	         "\"PATH=/bin\"],\"WorkingDir\":\"/srv\",\"User\":\"%s\",\"Cmd\":[\"sh\"]},"
	         "\"rootfs\":{\"type\":\"layers\",\"diff_ids\":[\"sha256:%s\",\"sha256:%s\"]}}",
	         user, layer1.hex, layer2.hex);
	make_json(&config, text);
	snprintf(
	    text, sizeof(text),
	    "{\"schemaVersion\":2,\"config\":{\"digest\":\"sha256:%s\"},\"layers\":["
	    "{\"mediaType\":\"application/vnd.oci.image.layer.v1.tar\",\"digest\":\"sha256:%s\"},"
	    "{\"mediaType\":\"application/vnd.oci.image.layer.v1.tar\",\"digest\":\"sha256:%s\"}]}",
	    config.hex, layer1.hex, layer2.hex);
	make_json(&manifest, text);
	snprintf(text, sizeof(text),
	         "{\"schemaVersion\":2,\"manifests\":[{\"mediaType\":"
	         "\"application/vnd.oci.image.manifest.v1+json\",\"digest\":\"sha256:%s\"}]}",
	         manifest.hex);
	make_json(&index, text);
	if (tamper)
		layer2.data[layer2.len - 1024 - 1] ^= 1; /* in the end-of-archive padding */

	snprintf(path, sizeof(path), "%s/image.tar", base);
	fd = open(path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	unlink(path);
	archive_write_set_format_pax_restricted(a);
	archive_write_open_fd(a, fd);
	for (size_t i = 0; i <= AL_ARRAY_SIZE(blobs); i++) {
		struct blob *b = i < AL_ARRAY_SIZE(blobs) ? blobs[i] : &index;
		struct archive_entry *e = archive_entry_new();
		if (b == &index)
			snprintf(path, sizeof(path), "index.json");
		else
			snprintf(path, sizeof(path), "blobs/sha256/%s", b->hex);
		archive_entry_set_pathname(e, path);
		archive_entry_set_filetype(e, AE_IFREG);
		archive_entry_set_perm(e, 0644);
		archive_entry_set_size(e, (la_int64_t)b->len);
		archive_write_header(a, e);
		archive_write_data(a, b->data, b->len);
		archive_entry_free(e);
		free(b->data);
	}
	archive_write_close(a);
	archive_write_free(a);
	lseek(fd, 0, SEEK_SET);
	return fd;
}

static size_t entries(const char *sub)
{
	char path[512];
	DIR *d;
	struct dirent *de;
	size_t n = 0;

	snprintf(path, sizeof(path), "%s/store/%s", base, sub);
	d = opendir(path);
	if (!d)
		return (size_t)-1;
	while ((de = readdir(d)))
		n += strcmp(de->d_name, ".") && strcmp(de->d_name, "..");
	closedir(d);
	return n;
}

static void limits(struct tar_limits *l)
{
	tar_limits_default(l);
}

TEST(names)
{
	CHECK(image_name_valid("python:3.11"));
	CHECK(image_name_valid("a"));
	CHECK(image_name_valid("A-b_c.d"));
	CHECK(!image_name_valid(""));
	CHECK(!image_name_valid(".hidden"));
	CHECK(!image_name_valid("a/b"));
	CHECK(!image_name_valid("../x"));
	CHECK(!image_name_valid("a b"));
	CHECK(!image_name_valid(NULL));
}

TEST(import_load_share_remove)
{
	struct al_error err = AL_ERROR_INIT;
	struct image_store *st = NULL;
	struct image img = {0};
	struct tar_limits l;
	_cleanup_close_ int fd = -1, fd2 = -1;
	char path[512], store[300], value[8];
	cJSON *rec = NULL;
	struct stat s;
	unsigned removed = 99;

	if (geteuid() != 0)
		SKIP("needs root (whiteouts, trusted xattrs, chroot)");
	limits(&l);
	snprintf(store, sizeof(store), "%s/store", base);
	CHECK_INT(image_store_open(store, &st, &err), 0);
	fd = make_image("app:grp", false);
	CHECK_INT(image_import(st, "one", fd, &l, &rec, &err), 0);
	if (err.msg[0])
		fprintf(stderr, "%s\n", err.msg);
	CHECK_INT(cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(rec, "layers")), 2);
	cJSON_Delete(rec);
	CHECK_INT(entries("layers/sha256"), 2);
	CHECK_INT(entries("tmp"), 0);

	CHECK_INT(image_load(store, "one", &img, &err), 0);
	CHECK_INT(al_strv_length(img.lowers), 2);
	CHECK_INT(img.uid, 1234);
	CHECK_INT(img.gid, 777); /* the group named, not the user's own */
	CHECK_STR(img.home, "/home/app");
	CHECK_STR(img.workdir, "/srv");
	CHECK_STR(img.env ? img.env[0] : NULL, "A=1");
	CHECK_STR(img.cmd ? img.cmd[0] : NULL, "sh");
	/* The top layer: the whiteout, the opaque directory, no setuid bit. */
	snprintf(path, sizeof(path), "%s/gone", img.lowers[0]);
	CHECK(lstat(path, &s) == 0 && S_ISCHR(s.st_mode) && s.st_rdev == makedev(0, 0));
	snprintf(path, sizeof(path), "%s/data/old", img.lowers[0]);
	CHECK(getxattr(path, "trusted.overlay.opaque", value, sizeof(value)) == 1 &&
	      value[0] == 'y');
	snprintf(path, sizeof(path), "%s/bin/suid", img.lowers[0]);
	CHECK(stat(path, &s) == 0 && (s.st_mode & 07777) == 0755);
	snprintf(path, sizeof(path), "%s/gone", img.lowers[1]);
	CHECK(lstat(path, &s) == 0 && S_ISREG(s.st_mode));
	image_free(&img);

	/* The same name again: refused; another name: its layers shared. */
	lseek(fd, 0, SEEK_SET);
	CHECK_INT(image_import(st, "one", fd, &l, NULL, &err), -EEXIST);
	al_error_clear(&err);
	lseek(fd, 0, SEEK_SET);
	CHECK_INT(image_import(st, "two", fd, &l, NULL, &err), 0);
	CHECK_INT(entries("layers/sha256"), 2);
	CHECK_INT(entries("images"), 2);

	CHECK_INT(image_remove(st, "two", &removed, &err), 0);
	CHECK_INT(removed, 0);
	CHECK_INT(image_remove(st, "one", &removed, &err), 0);
	CHECK_INT(removed, 2);
	CHECK_INT(entries("layers/sha256"), 0);
	CHECK_INT(image_remove(st, "one", NULL, &err), -ENOENT);
	al_error_clear(&err);
	CHECK_INT(image_load(store, "one", &img, &err), -ENOENT);
	al_error_clear(&err);

	/* A numeric user the image does not list: gid 0. */
	fd2 = make_image("4242", false);
	CHECK_INT(image_import(st, "num", fd2, &l, NULL, &err), 0);
	CHECK_INT(image_load(store, "num", &img, &err), 0);
	CHECK_INT(img.uid, 4242);
	CHECK_INT(img.gid, 0);
	image_free(&img);
	CHECK_INT(image_remove(st, "num", NULL, &err), 0);
	image_store_free(st);
}

TEST(refusals_leave_nothing)
{
	struct al_error err = AL_ERROR_INIT;
	struct image_store *st = NULL;
	struct tar_limits l;
	char store[300];
	int fd;

	if (geteuid() != 0)
		SKIP("needs root (whiteouts, trusted xattrs, chroot)");
	limits(&l);
	snprintf(store, sizeof(store), "%s/store", base);
	CHECK_INT(image_store_open(store, &st, &err), 0);

	fd = make_image("app", true);
	CHECK_INT(image_import(st, "bad", fd, &l, NULL, &err), -EINVAL);
	CHECK(strstr(err.msg, "does not match its digest") != NULL);
	close(fd);
	al_error_clear(&err);

	fd = make_image("nobody-here", false);
	CHECK_INT(image_import(st, "bad", fd, &l, NULL, &err), -EINVAL);
	CHECK(strstr(err.msg, "no such user") != NULL);
	close(fd);
	al_error_clear(&err);

	/* Over the unpacked size: the layer's one file is bigger. */
	fd = make_image("app", false);
	l.max_extracted_bytes = 8;
	CHECK_INT(image_import(st, "bad", fd, &l, NULL, &err), -EFBIG);
	close(fd);
	al_error_clear(&err);

	CHECK_INT(image_import(st, "bad/name", -1, &l, NULL, &err), -EINVAL);
	al_error_clear(&err);
	CHECK_INT(entries("layers/sha256"), 0);
	CHECK_INT(entries("images"), 0);
	CHECK_INT(entries("tmp"), 0);
	image_store_free(st);
}

/* In a confined helper: only 0:0 character devices, no trusted.* xattrs. */
static int confined_child(void *arg, int out_fd, struct al_error *err)
{
	const char *root = arg;
	int r = helper_confine_to(root, err);

	(void)out_fd;
	if (r < 0)
		return r;
	if (mknodat(AT_FDCWD, "blk", S_IFBLK | 0600, makedev(8, 0)) == 0 || errno != EPERM)
		return al_error_set(err, EIO, "a block device was made (or not EPERM)");
	if (mknodat(AT_FDCWD, "mem", S_IFCHR | 0600, makedev(1, 1)) == 0 || errno != EPERM)
		return al_error_set(err, EIO, "a character device was made (or not EPERM)");
	if (mknodat(AT_FDCWD, "wh", S_IFCHR | 0600, makedev(0, 0)) < 0)
		return al_error_errno(err, "no whiteout");
	if (setxattr("/", "trusted.overlay.opaque", "y", 1, 0) == 0)
		return al_error_set(err, EIO, "a trusted xattr was set");
	if (access("/etc/passwd", F_OK) == 0)
		return al_error_set(err, EIO, "not chrooted");
	return 0;
}

TEST(helper_confinement)
{
	struct al_error err = AL_ERROR_INIT;
	char root[300], path[320];
	struct stat s;

	if (geteuid() != 0)
		SKIP("needs root");
	snprintf(root, sizeof(root), "%s/confined", base);
	CHECK_INT(mkdir(root, 0700), 0);
	struct helper_opts opts = HELPER_OPTS_INIT;

	CHECK_INT(helper_run(confined_child, root, &opts, &err), 0);
	if (err.msg[0])
		fprintf(stderr, "%s\n", err.msg);
	snprintf(path, sizeof(path), "%s/wh", root);
	CHECK(lstat(path, &s) == 0 && S_ISCHR(s.st_mode) && s.st_rdev == makedev(0, 0));
	snprintf(path, sizeof(path), "%s/blk", root);
	CHECK(lstat(path, &s) < 0);
}

int main(void)
{
	struct al_error err = AL_ERROR_INIT;

	if (!mkdtemp(base))
		return 1;
	RUN(names);
	RUN(import_load_share_remove);
	RUN(refusals_leave_nothing);
	RUN(helper_confinement);
	al_rm_rf(base, &err);
	return test_main_result();
}
