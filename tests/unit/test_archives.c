/* SPDX-License-Identifier: Apache-2.0 */
#include "test.h"

#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/wait.h>
#include <sys/xattr.h>
#include <unistd.h>

#include "archives.h"
#include "cleanup.h"
#include "util.h"

static char base[] = "/tmp/airlock-test-archives-XXXXXX";

static void put(const char *dir, const char *name, const char *text)
{
	char path[512];
	snprintf(path, sizeof(path), "%s/%s", dir, name);
	CHECK_INT(al_write_file_atomic(path, text, strlen(text), 0640, NULL), 0);
}

/* tar_extract() changes the working directory: run it in a child. */
static int extract_in_child(int tar_fd, const char *dir, enum archive_kind kind, uid_t base_id,
                            const struct tar_limits *lim, char *msg, size_t len)
{
	int p[2], status;
	pid_t pid;

	if (pipe(p) < 0)
		return -errno;
	pid = fork();
	if (pid == 0) {
		struct al_error err = AL_ERROR_INIT;
		struct archive_tree_opts o = {.kind = kind, .id_base = base_id};
		int dfd = open(dir, O_RDONLY | O_DIRECTORY);
		int r = tar_extract(tar_fd, dfd, &o, lim, &err);
		if (al_write_all(p[1], err.msg, strlen(err.msg)) < 0)
			_exit(2);
		_exit(r < 0 ? -r : 0);
	}
	close(p[1]);
	msg[0] = '\0';
	ssize_t n = read(p[0], msg, len - 1);
	msg[n > 0 ? n : 0] = '\0';
	close(p[0]);
	waitpid(pid, &status, 0);
	return WIFEXITED(status) ? -WEXITSTATUS(status) : -EIO;
}

TEST(layer_roundtrip)
{
	char src[600], dst[600], path[700], target[64], msg[1024];
	struct al_error err = AL_ERROR_INIT;
	_cleanup_close_ int tar = -1;
	uint64_t bytes = 0;
	struct stat st;
	ssize_t n;

	if (geteuid() != 0)
		SKIP("needs root (chown, whiteouts, trusted xattrs)");
	snprintf(src, sizeof(src), "%s/src", base);
	snprintf(dst, sizeof(dst), "%s/dst", base);
	CHECK_INT(mkdir(src, 0755), 0);
	CHECK_INT(mkdir(dst, 0755), 0);
	snprintf(path, sizeof(path), "%s/etc", src);
	CHECK_INT(mkdir(path, 0755), 0);
	put(src, "etc/motd", "hello\n");
	snprintf(path, sizeof(path), "%s/etc/motd", src);
	CHECK_INT(chown(path, 1000000000 + 1000, 1000000000 + 1000), 0);
	snprintf(path, sizeof(path), "%s/gone", src);
	CHECK_INT(mknod(path, S_IFCHR | 0, makedev(0, 0)), 0); /* an overlay whiteout */
	snprintf(path, sizeof(path), "%s/etc", src);
	CHECK_INT(setxattr(path, "trusted.overlay.opaque", "y", 1, 0), 0);
	snprintf(path, sizeof(path), "%s/link", src);
	CHECK_INT(symlink("etc/motd", path), 0);

	tar = open(base, O_TMPFILE | O_RDWR, 0600);
	CHECK(tar >= 0);
	CHECK_INT(tar_write_layer(src, tar, 1000000000, NULL, UINT64_MAX, &bytes, &err), 0);
	CHECK(bytes > 0);
	CHECK_INT(lseek(tar, 0, SEEK_SET), 0);
	/* Into another uid range: owners move with it. */
	CHECK_INT(extract_in_child(tar, dst, ARCHIVE_LAYER, 2000000000, NULL, msg, sizeof(msg)), 0);

	snprintf(path, sizeof(path), "%s/etc/motd", dst);
	CHECK_INT(stat(path, &st), 0);
	CHECK_INT(st.st_uid, 2000000000 + 1000);
	CHECK_INT(st.st_mode & 07777, 0640);
	snprintf(path, sizeof(path), "%s/gone", dst);
	CHECK_INT(lstat(path, &st), 0);
	CHECK(S_ISCHR(st.st_mode) && st.st_rdev == makedev(0, 0));
	snprintf(path, sizeof(path), "%s/etc", dst);
	n = getxattr(path, "trusted.overlay.opaque", target, sizeof(target));
	CHECK_INT(n, 1);
	snprintf(path, sizeof(path), "%s/link", dst);
	n = readlink(path, target, sizeof(target) - 1);
	CHECK_INT(n, 8);
}

TEST(workspace_refuses_whiteouts_and_limits)
{
	char src[600], dst[600], path[700], msg[1024];
	struct al_error err = AL_ERROR_INIT;
	struct tar_limits lim;
	_cleanup_close_ int tar = -1;

	if (geteuid() != 0)
		SKIP("needs root (mknod)");
	snprintf(src, sizeof(src), "%s/src", base);
	snprintf(dst, sizeof(dst), "%s/dst2", base);
	CHECK_INT(mkdir(dst, 0755), 0);
	tar = open(base, O_TMPFILE | O_RDWR, 0600);
	/* The layer tar has a device node: as a workspace archive it is refused. */
	CHECK_INT(tar_write_layer(src, tar, 1000000000, NULL, UINT64_MAX, NULL, &err), 0);
	tar_limits_default(&lim);
	CHECK_INT(lseek(tar, 0, SEEK_SET), 0);
	CHECK_INT(extract_in_child(tar, dst, ARCHIVE_WORKSPACE, 0, &lim, msg, sizeof(msg)),
	          -EINVAL);
	CHECK(strstr(msg, "device nodes") != NULL);
	/* Refused from the headers alone: nothing was written. */
	snprintf(path, sizeof(path), "%s/etc", dst);
	CHECK(access(path, F_OK) != 0);

	lim.max_members = 2;
	CHECK_INT(lseek(tar, 0, SEEK_SET), 0);
	CHECK_INT(extract_in_child(tar, dst, ARCHIVE_WORKSPACE, 0, &lim, msg, sizeof(msg)), -EFBIG);
	CHECK(strstr(msg, "more than the limit of 2 members") != NULL);
}

TEST(ephemeral_paths)
{
	_cleanup_strv_ char **v = tar_manifest_ephemeral_paths(
	    "{\"entries\": {\"a\": {\"type\": \"file\"}, \"./tmp/x\": {\"type\": \"dir\", "
	    "\"ephemeral\": true}, \"../bad\": {\"ephemeral\": true}}}");

	CHECK(v != NULL);
	CHECK_STR(v[0], "tmp/x");
	CHECK(v[1] == NULL);
}

/* Links stay links and holes are charged: a small tree cannot make a big tar. */
TEST(links_once_and_holes_bounded)
{
	char src[600], dst[600], path[700], other[700], msg[1024];
	struct al_error err = AL_ERROR_INIT;
	struct archive_tree_opts o = {.kind = ARCHIVE_WORKSPACE, .max_hole_bytes = 1 << 20};
	_cleanup_close_ int tar = -1, big = -1, dfd = -1;
	struct tar_limits lim;
	char data[65536];
	uint64_t bytes = 0;
	struct stat st, st2;

	snprintf(src, sizeof(src), "%s/links", base);
	snprintf(dst, sizeof(dst), "%s/links-out", base);
	CHECK_INT(mkdir(src, 0755), 0);
	CHECK_INT(mkdir(dst, 0755), 0);
	memset(data, 'x', sizeof(data));
	snprintf(path, sizeof(path), "%s/data", src);
	big = open(path, O_WRONLY | O_CREAT | O_EXCL, 0644);
	CHECK(big >= 0);
	for (int i = 0; i < 16; i++) /* 1 MiB */
		CHECK_INT(al_write_all(big, data, sizeof(data)), 0);
	for (int i = 0; i < 64; i++) {
		snprintf(other, sizeof(other), "%s/name%02d", src, i);
		CHECK_INT(link(path, other), 0);
	}
	dfd = open(src, O_RDONLY | O_DIRECTORY);
	tar = open(base, O_TMPFILE | O_RDWR, 0600);
	CHECK(dfd >= 0 && tar >= 0);
	CHECK_INT(tar_write_tree(dfd, tar, &o, &bytes, &err), 0);
	/* 65 names of 1 MiB: one copy, not 65. */
	CHECK(bytes < 2 << 20);
	tar_limits_default(&lim);
	CHECK_INT(lseek(tar, 0, SEEK_SET), 0);
	CHECK_INT(extract_in_child(tar, dst, ARCHIVE_WORKSPACE, 0, &lim, msg, sizeof(msg)), 0);
	snprintf(path, sizeof(path), "%s/data", dst);
	snprintf(other, sizeof(other), "%s/name63", dst);
	CHECK_INT(stat(path, &st), 0);
	CHECK_INT(stat(other, &st2), 0);
	CHECK(st.st_ino == st2.st_ino && st.st_size == 1 << 20);

	/* A hole within the budget is written out; one beyond it is refused, named. */
	snprintf(path, sizeof(path), "%s/sparse", src);
	close(open(path, O_WRONLY | O_CREAT, 0644));
	CHECK_INT(truncate(path, 512 << 10), 0);
	CHECK_INT(ftruncate(tar, 0), 0);
	CHECK_INT(lseek(tar, 0, SEEK_SET), 0);
	CHECK_INT(tar_write_tree(dfd, tar, &o, NULL, &err), 0);
	CHECK_INT(truncate(path, (off_t)1 << 40), 0);
	CHECK_INT(ftruncate(tar, 0), 0);
	CHECK_INT(lseek(tar, 0, SEEK_SET), 0);
	CHECK_INT(tar_write_tree(dfd, tar, &o, NULL, &err), -EFBIG);
	CHECK(strstr(err.msg, "sparse is sparse") != NULL);
	CHECK_INT(fstat(tar, &st), 0);
	CHECK(st.st_size < 4 << 20);
}

int main(void)
{
	struct al_error err = AL_ERROR_INIT;

	if (!mkdtemp(base))
		return 1;
	RUN(layer_roundtrip);
	RUN(workspace_refuses_whiteouts_and_limits);
	RUN(ephemeral_paths);
	RUN(links_once_and_holes_bounded);
	al_rm_rf(base, &err);
	return test_main_result();
}
