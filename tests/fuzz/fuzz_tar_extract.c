/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Workspace archives (PUT /v1/sandboxes/ID/workspace): tar_extract of a
 * hostile ARCHIVE_WORKSPACE tar, with airlockd's default limits, from a
 * seekable file (airlockd spools the body to one) into an empty directory.
 * Whatever it accepts, nothing may land outside that directory, and no
 * extracted file may keep a setuid/setgid bit, be a device, FIFO or socket,
 * or be a symlink that leads out.
 */
#include "fuzz.h"

#include <dirent.h>
#include <fcntl.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "archives.h"
#include "cleanup.h"
#include "util.h"

static char *root;     /* holds the two below, and nothing else */
static char *target;   /* where archives are extracted */
static char *sentinel; /* a neighbour: anything in it came from an escape */
static int cwd_fd = -1;

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	root = fuzz_make_temp_dir("tar");
	if (asprintf(&target, "%s/workspace", root) < 0 ||
	    asprintf(&sentinel, "%s/outside", root) < 0 || mkdir(target, 0755) < 0 ||
	    mkdir(sentinel, 0755) < 0)
		abort();
	cwd_fd = open(".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (cwd_fd < 0)
		abort();
	/* hydrate_child extracts with this umask (enter_sandbox). */
	umask(022);
	return 0;
}

static size_t entries_of(const char *dir)
{
	DIR *d = opendir(dir);
	struct dirent *de;
	size_t n = 0;

	FUZZ_ASSERT(d);
	while ((de = readdir(d)))
		if (strcmp(de->d_name, ".") && strcmp(de->d_name, ".."))
			n++;
	closedir(d);
	return n;
}

/* Every node below dirfd is a directory, a regular file without setuid or
 * setgid, or a symlink; depth counts the levels below the target. */
static void check_tree(int dirfd, int depth)
{
	DIR *d = fdopendir(dup(dirfd));
	struct dirent *de;

	FUZZ_ASSERT(d);
	FUZZ_ASSERT(depth < 4096);
	while ((de = readdir(d))) {
		struct stat st;

		if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
			continue;
		FUZZ_ASSERT(fstatat(dirfd, de->d_name, &st, AT_SYMLINK_NOFOLLOW) == 0);
		FUZZ_ASSERT(S_ISDIR(st.st_mode) || S_ISREG(st.st_mode) || S_ISLNK(st.st_mode));
		FUZZ_ASSERT(!(st.st_mode & (S_ISUID | S_ISGID)) || S_ISDIR(st.st_mode));
		if (S_ISDIR(st.st_mode)) {
			_cleanup_close_ int sub = openat(
			    dirfd, de->d_name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
			FUZZ_ASSERT(sub >= 0);
			check_tree(sub, depth + 1);
		}
	}
	closedir(d);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct archive_tree_opts o = {.kind = ARCHIVE_WORKSPACE};
	struct al_error err = AL_ERROR_INIT;
	struct tar_limits lim;
	_cleanup_close_ int in = memfd_create("fuzz-tar", MFD_CLOEXEC);
	_cleanup_close_ int dfd = -1;
	int r;

	FUZZ_ASSERT(in >= 0);
	FUZZ_ASSERT(al_write_all(in, data, size) == 0 && lseek(in, 0, SEEK_SET) == 0);
	dfd = open(target, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	FUZZ_ASSERT(dfd >= 0);
	tar_limits_default(&lim);
	r = tar_extract(in, dfd, &o, &lim, &err);
	/* tar_extract works from the target directory: come back. */
	FUZZ_ASSERT(fchdir(cwd_fd) == 0);
	fuzz_check_error(r, &err);
	FUZZ_ASSERT(entries_of(root) == 2 && entries_of(sentinel) == 0);
	check_tree(dfd, 0);
	fuzz_empty_dir(target);
	return 0;
}
