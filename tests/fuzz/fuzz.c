/* SPDX-License-Identifier: Apache-2.0 */
#include "fuzz.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <unistd.h>

#include "cleanup.h"
#include "util.h"

/* The target's directory, removed when the fuzzer exits normally (run.sh
 * removes it in any case: a crash does not get here). */
static char *temp_dir;

static void remove_temp_dir(void)
{
	struct al_error err = AL_ERROR_INIT;

	if (temp_dir && al_rm_rf(temp_dir, &err) < 0)
		fprintf(stderr, "fuzz: cannot remove %s: %s\n", temp_dir, err.msg);
}

char *fuzz_make_temp_dir(const char *what)
{
	const char *tmp = getenv("TMPDIR");
	char *path = NULL;

	if (temp_dir)
		abort(); /* one per target */

	if (asprintf(&path, "%s/airlock-fuzz-%s-XXXXXX", tmp && *tmp ? tmp : "/tmp", what) < 0)
		abort();
	if (!mkdtemp(path)) {
		fprintf(stderr, "fuzz: mkdtemp %s: %s\n", path, strerror(errno));
		abort();
	}
	temp_dir = strdup(path);
	if (!temp_dir || atexit(remove_temp_dir) != 0)
		abort();
	return path;
}

void fuzz_empty_dir(const char *dir)
{
	_cleanup_close_ int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	DIR *d;
	struct dirent *de;

	if (fd < 0)
		abort();
	d = fdopendir(dup(fd));
	if (!d)
		abort();
	while ((de = readdir(d))) {
		struct al_error err = AL_ERROR_INIT;

		if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
			continue;
		if (al_rm_rf_at(fd, de->d_name, &err) < 0) {
			fprintf(stderr, "fuzz: cannot clear %s: %s\n", dir, err.msg);
			abort();
		}
	}
	closedir(d);
}

char *fuzz_strndup(const uint8_t *data, size_t size)
{
	char *s = malloc(size + 1);

	if (!s)
		abort();
	memcpy(s, data, size);
	s[size] = '\0';
	return s;
}

void fuzz_check_error(int r, const struct al_error *err)
{
	if (r >= 0)
		return;
	FUZZ_ASSERT(memchr(err->msg, '\0', sizeof(err->msg)) != NULL);
	FUZZ_ASSERT(err->msg[0] != '\0');
	FUZZ_ASSERT(err->code == -r);
}
