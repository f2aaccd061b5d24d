/* SPDX-License-Identifier: Apache-2.0 */
#include "state.h"

#include "cleanup.h"
#include "log.h"
#include "util.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define MAX_STATE_FILE (64u << 20)

static const char *const file_names[GW_N_SERVICES] = {
    [GW_E2B] = "e2b.json",       [GW_DAYTONA] = "daytona.json", [GW_CLOUDFLARE] = "cloudflare.json",
    [GW_BLAXEL] = "blaxel.json", [GW_RUNLOOP] = "runloop.json", [GW_VERCEL] = "vercel.json",
    [GW_MODAL] = "modal.json",
};

/* One writer at a time: the temporary file's name is per process, not per thread. */
static pthread_mutex_t save_lock = PTHREAD_MUTEX_INITIALIZER;

int gw_state_open(struct gw_state *st, const char *dir, uid_t owner, gid_t group,
                  struct al_error *err)
{
	_cleanup_close_ int fd = -1;
	struct stat sb;

	memset(st, 0, sizeof(*st));
	if (mkdir(dir, 0700) < 0 && errno != EEXIST)
		return al_error_errno(err, "--state-dir %s: cannot create it", dir);
	fd = open(dir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0)
		return al_error_errno(err, "--state-dir %s: not a directory", dir);
	if (fstat(fd, &sb) < 0)
		return al_error_errno(err, "--state-dir %s", dir);
	/* Someone else's directory would let them read the tokens or plant a registry. */
	if (sb.st_uid != owner && sb.st_uid != geteuid())
		return al_error_set(err, EPERM,
		                    "--state-dir %s belongs to uid %u, not the gateway's", dir,
		                    (unsigned)sb.st_uid);
	if ((sb.st_uid != owner || sb.st_gid != group) && fchown(fd, owner, group) < 0)
		return al_error_errno(err, "--state-dir %s: cannot give it to uid %u", dir,
		                      (unsigned)owner);
	if ((sb.st_mode & 07777) != 0700 && fchmod(fd, 0700) < 0)
		return al_error_errno(err, "--state-dir %s: chmod 0700", dir);
	/* Absolute: the confined gateway's working directory is its own root. */
	st->dir = realpath(dir, NULL);
	if (!st->dir)
		return al_error_errno(err, "--state-dir %s", dir);
	return 0;
}

void gw_state_close(struct gw_state *st)
{
	free(st->dir);
	st->dir = NULL;
}

int gw_state_load(const struct gw_state *st, enum gw_service svc, cJSON **out, struct al_error *err)
{
	_cleanup_free_ char *path = NULL;
	_cleanup_free_ char *text = NULL;
	size_t len = 0;
	int r;

	*out = NULL;
	if (!st->dir)
		return 0;
	if (asprintf(&path, "%s/%s", st->dir, file_names[svc]) < 0)
		return al_error_set(err, ENOMEM, "out of memory");
	r = al_read_file(path, MAX_STATE_FILE, &text, &len, err);
	if (r == -ENOENT)
		return 0;
	if (r < 0)
		return r;
	*out = cJSON_ParseWithLength(text, len);
	if (!cJSON_IsObject(*out)) {
		cJSON_Delete(*out);
		*out = NULL;
		return al_error_set(err, EINVAL, "%s: not a JSON object (a damaged registry)",
		                    path);
	}
	return 0;
}

void gw_state_freeze(struct gw_state *st)
{
	pthread_mutex_lock(&save_lock);
	st->frozen = true;
	pthread_mutex_unlock(&save_lock);
}

uint64_t gw_state_generation(struct gw_state *st, enum gw_service svc)
{
	return ++st->next_gen[svc];
}

int gw_state_save(struct gw_state *st, enum gw_service svc, uint64_t gen, const cJSON *doc,
                  struct al_error *err)
{
	_cleanup_free_ char *path = NULL;
	_cleanup_free_ char *text = NULL;
	_cleanup_close_ int dfd = -1;
	int r = 0;

	if (!st || !st->dir)
		return 0;
	text = cJSON_Print(doc);
	if (!text || asprintf(&path, "%s/%s", st->dir, file_names[svc]) < 0)
		return al_error_set(err, ENOMEM, "out of memory");
	pthread_mutex_lock(&save_lock);
	if (!st->frozen && gen > st->saved_gen[svc]) {
		r = al_write_file_atomic(path, text, strlen(text), 0600, err);
		/* The rename is durable only once the directory is. */
		if (r == 0) {
			dfd = open(st->dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
			if (dfd < 0 || fsync(dfd) < 0)
				r = al_error_errno(err, "fsync %s", st->dir);
		}
		if (r == 0)
			st->saved_gen[svc] = gen;
	}
	pthread_mutex_unlock(&save_lock);
	return r;
}
