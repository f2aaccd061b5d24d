/* SPDX-License-Identifier: Apache-2.0 */
#include "api_snapshots.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <microhttpd.h>

#include "cleanup.h"
#include "log.h"
#include "daemon.h"
#include "helper.h"
#include "json.h"
#include "lifecycle.h"
#include "sandbox.h"
#include "snapshot.h"
#include "util.h"

int api_spool_open(struct daemon *ctx, struct al_error *err)
{
	/* O_TMPFILE: never visible, gone with the last fd whatever happens. */
	int fd = open(ctx->host.state_dir, O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);

	if (fd < 0)
		return al_error_errno(err, "temp file in %s", ctx->host.state_dir);
	return fd;
}

static char **sandbox_ephemeral(const struct sandbox *sb)
{
	_cleanup_free_ char *text = sandbox_read_manifest(sb);

	return tar_manifest_ephemeral_paths(text);
}

static void close_fds(const int *fds, int n)
{
	for (int i = 0; i < n; i++)
		close(fds[i]);
}

struct api_persist {
	struct sandbox *sb;
	char **ephemeral;
	int cg[HELPER_MAX_CGROUP_FDS], n_cg;
	int rfd, wfd;
	/* The client's connection: the helper ends when it hangs up (it also
	 * ends when the response stops reading the pipe). */
	int client_fd;
	pthread_t thread;
	bool started;
	int result;
	struct al_error err;
};

static void *persist_thread(void *arg)
{
	struct api_persist *p = arg;

	/* In its cgroups: the sandbox pays for the archive it asked for. */
	p->result = tar_persist_workspace(p->sb->init_pid, p->sb->spec.workspace, p->ephemeral,
	                                  p->wfd, p->sb->spec.disk_bytes, p->cg, (size_t)p->n_cg,
	                                  p->client_fd, NULL, &p->err);
	if (p->result < 0)
		log_info("sandbox %s: persist: %s", p->sb->id, p->err.msg);
	/* The reader's EOF: the end of the archive, or of a failed one. */
	close(p->wfd);
	p->wfd = -1;
	return NULL;
}

void api_persist_free(struct api_persist *p)
{
	if (!p)
		return;
	/* A client that left: the helper's next write fails and it ends. */
	if (p->rfd >= 0)
		close(p->rfd);
	if (p->started)
		pthread_join(p->thread, NULL);
	if (p->wfd >= 0)
		close(p->wfd);
	close_fds(p->cg, p->n_cg);
	al_strv_freep(&p->ephemeral);
	if (p->sb)
		sandbox_unref(p->sb);
	free(p);
}

static ssize_t persist_read(void *cls, uint64_t pos, char *buf, size_t max)
{
	struct api_persist *p = cls;
	ssize_t n;

	(void)pos;
	do
		n = read(p->rfd, buf, max);
	while (n < 0 && errno == EINTR);
	if (n > 0)
		return n;
	pthread_join(p->thread, NULL);
	p->started = false;
	return n == 0 && p->result == 0 ? MHD_CONTENT_READER_END_OF_STREAM
	                                : MHD_CONTENT_READER_END_WITH_ERROR;
}

static void api_persist_freep(struct api_persist **p)
{
	api_persist_free(*p);
}

static void persist_done(void *cls)
{
	api_persist_free(cls);
}

struct MHD_Response *api_persist_response(struct api_persist *p)
{
	struct MHD_Response *r = MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, 256 << 10,
	                                                           persist_read, p, persist_done);

	if (!r)
		api_persist_free(p);
	return r;
}

int api_workspace_get(struct daemon *ctx, struct sandbox *sb, int client_fd, struct api_out *out,
                      struct al_error *err)
{
	_cleanup_(api_persist_freep) struct api_persist *p = NULL;
	struct pollfd pfd;
	int fds[2];

	if (!sandbox_running(sb))
		return al_error_set(err, ESRCH, "sandbox %s is not running", sb->id);
	p = calloc(1, sizeof(*p));
	if (!p)
		return al_error_set(err, ENOMEM, "out of memory");
	p->rfd = p->wfd = -1;
	p->client_fd = client_fd;
	sandbox_ref(sb);
	p->sb = sb;
	p->err = (struct al_error)AL_ERROR_INIT;
	p->ephemeral = sandbox_ephemeral(sb);
	p->n_cg = sandbox_open_cgroup_joins(&ctx->host, sb, p->cg, AL_ARRAY_SIZE(p->cg), err);
	if (p->n_cg < 0) {
		int r = p->n_cg;
		p->n_cg = 0;
		return r;
	}
	if (pipe2(fds, O_CLOEXEC) < 0)
		return al_error_errno(err, "pipe");
	p->rfd = fds[0];
	p->wfd = fds[1];
	fcntl(p->wfd, F_SETPIPE_SZ, 1 << 20);
	if (pthread_create(&p->thread, NULL, persist_thread, p) != 0)
		return al_error_set(err, EAGAIN, "cannot start the archive thread");
	p->started = true;
	/* The first byte, or the end: an archive that cannot even begin (no
	 * workspace, say) is an error answer, not a cut 200. */
	pfd = (struct pollfd){.fd = p->rfd, .events = POLLIN};
	while (poll(&pfd, 1, -1) < 0 && errno == EINTR)
		;
	if (!(pfd.revents & POLLIN)) {
		pthread_join(p->thread, NULL);
		p->started = false;
		if (p->result < 0) {
			*err = p->err;
			return al_error_prefix(err, "sandbox %s", sb->id);
		}
	}
	out->status = 200;
	out->persist = TAKE_PTR(p);
	return 0;
}

int api_workspace_put(struct daemon *ctx, struct sandbox *sb, int spool_fd,
                      const struct tar_limits *limits, struct api_out *out, struct al_error *err)
{
	int cg[HELPER_MAX_CGROUP_FDS], n_cg;
	struct stat st;
	int r;

	if (!sandbox_running(sb))
		return al_error_set(err, ESRCH, "sandbox %s is not running", sb->id);
	if (spool_fd < 0 || fstat(spool_fd, &st) < 0 || lseek(spool_fd, 0, SEEK_SET) != 0)
		return al_error_set(err, EINVAL, "request body (a tar archive) is required");
	n_cg = sandbox_open_cgroup_joins(&ctx->host, sb, cg, AL_ARRAY_SIZE(cg), err);
	if (n_cg < 0)
		return n_cg;
	r = tar_hydrate_workspace(sb->init_pid, sb->spec.workspace, spool_fd, limits, cg,
	                          (size_t)n_cg, err);
	close_fds(cg, n_cg);
	if (r < 0) {
		log_info("sandbox %s: archive refused: %s", sb->id, err->msg);
		return al_error_prefix(err, "sandbox %s", sb->id);
	}
	out->status = 200;
	out->json = cJSON_CreateObject();
	cJSON_AddStringToObject(out->json, "workspace", sb->spec.workspace);
	cJSON_AddNumberToObject(out->json, "bytes", (double)st.st_size);
	cJSON_AddBoolToObject(out->json, "hydrated", true);
	return 0;
}

struct api_hydrate {
	struct sandbox *sb;
	struct tar_limits limits;
	int cg[HELPER_MAX_CGROUP_FDS], n_cg;
	int rfd, wfd; /* the pipe: the extraction reads rfd, the body goes into wfd */
	pthread_t thread;
	bool started;
	int result;
	struct al_error err;
};

static void *hydrate_thread(void *arg)
{
	struct api_hydrate *h = arg;

	h->result = tar_hydrate_workspace(h->sb->init_pid, h->sb->spec.workspace, h->rfd,
	                                  &h->limits, h->cg, (size_t)h->n_cg, &h->err);
	/* Whatever is still sent fails at once (EPIPE) and is dropped. */
	close(h->rfd);
	h->rfd = -1;
	return NULL;
}

void api_hydrate_free(struct api_hydrate *h)
{
	if (!h)
		return;
	if (h->wfd >= 0) {
		/* Not finished: the body did not all come (the client left, or it
		 * was over its limit).  The archive must not be taken for whole
		 * where it stops: what follows it is no tar header and no tar data
		 * either, so the extraction refuses it and the workspace stays. */
		char junk[4096];
		memset(junk, 0xff, sizeof(junk));
		(void)al_write_all(h->wfd, junk, sizeof(junk));
		close(h->wfd);
	}
	if (h->started)
		pthread_join(h->thread, NULL);
	if (h->rfd >= 0)
		close(h->rfd);
	close_fds(h->cg, h->n_cg);
	sandbox_unref(h->sb);
	free(h);
}

int api_hydrate_start(struct daemon *ctx, struct sandbox *sb, const struct tar_limits *limits,
                      struct api_hydrate **out, struct al_error *err)
{
	_cleanup_free_ struct api_hydrate *h = calloc(1, sizeof(*h));
	int p[2];

	if (!h)
		return al_error_set(err, ENOMEM, "out of memory");
	if (!sandbox_running(sb))
		return al_error_set(err, ESRCH, "sandbox %s is not running", sb->id);
	h->n_cg = sandbox_open_cgroup_joins(&ctx->host, sb, h->cg, AL_ARRAY_SIZE(h->cg), err);
	if (h->n_cg < 0)
		return h->n_cg;
	if (pipe2(p, O_CLOEXEC) < 0) {
		close_fds(h->cg, h->n_cg);
		return al_error_errno(err, "pipe");
	}
	h->rfd = p[0];
	h->wfd = p[1];
	/* A pipe's worth per wake-up of the extraction. */
	fcntl(h->wfd, F_SETPIPE_SZ, 1 << 20);
	h->limits = *limits;
	h->err = (struct al_error)AL_ERROR_INIT;
	sandbox_ref(sb);
	h->sb = sb;
	if (pthread_create(&h->thread, NULL, hydrate_thread, h) != 0) {
		api_hydrate_free(TAKE_PTR(h));
		return al_error_set(err, EAGAIN, "cannot start the extraction thread");
	}
	h->started = true;
	*out = TAKE_PTR(h);
	return 0;
}

int api_hydrate_fd(struct api_hydrate *h)
{
	return h->wfd;
}

int api_hydrate_finish(struct api_hydrate *h, uint64_t bytes, struct api_out *out,
                       struct al_error *err)
{
	/* The end of the body is the end of the archive. */
	close(h->wfd);
	h->wfd = -1;
	pthread_join(h->thread, NULL);
	h->started = false;
	if (h->result < 0) {
		*err = h->err;
		log_info("sandbox %s: archive refused: %s", h->sb->id, err->msg);
		return al_error_prefix(err, "sandbox %s", h->sb->id);
	}
	out->status = 200;
	out->json = cJSON_CreateObject();
	cJSON_AddStringToObject(out->json, "workspace", h->sb->spec.workspace);
	cJSON_AddNumberToObject(out->json, "bytes", (double)bytes);
	cJSON_AddBoolToObject(out->json, "hydrated", true);
	return 0;
}

/* The keys of a snapshot request: the one list a new option is added to. */
static const struct al_json_key snapshot_keys[] = {
    {"processes", AL_JSON_BOOL | AL_JSON_NULL},
};

int api_snapshot_create(struct daemon *ctx, struct sandbox *sb, const cJSON *req, int client_fd,
                        struct api_out *out, struct al_error *err)
{
	const cJSON *p = cJSON_GetObjectItemCaseSensitive(req, "processes");
	bool processes = true;
	cJSON *o = NULL;
	int r;

	r = al_json_check(req, snapshot_keys, "snapshot request", err);
	if (r < 0)
		return r;
	if (cJSON_IsBool(p))
		processes = cJSON_IsTrue(p);
	r = lifecycle_snapshot(ctx, sb, processes, client_fd, &o, err);
	if (r < 0)
		return r;
	out->status = 201;
	out->json = o;
	return 0;
}

int api_snapshots_list(struct daemon *ctx, uid_t client, struct api_out *out, struct al_error *err)
{
	int r = snapshot_list(ctx->host.state_dir, &out->json, err);
	cJSON *a = cJSON_GetObjectItemCaseSensitive(out->json, "snapshots");

	/* Another client's snapshots are not there for it (a summary carries
	 * its record, owner_uid included; a damaged one only root sees). */
	for (int i = cJSON_GetArraySize(a) - 1; r == 0 && client != 0 && i >= 0; i--)
		if (!cJSON_GetObjectItemCaseSensitive(cJSON_GetArrayItem(a, i), "sandbox") ||
		    !lifecycle_snapshot_visible(cJSON_GetArrayItem(a, i), client))
			cJSON_DeleteItemFromArray(a, i);
	out->status = 200;
	return r;
}

int api_snapshot_delete(struct daemon *ctx, const char *id, uid_t client, struct api_out *out,
                        struct al_error *err)
{
	int r = lifecycle_snapshot_remove(ctx, id, client, err);

	if (r < 0)
		return r;
	out->status = 200;
	out->json = cJSON_CreateObject();
	cJSON_AddStringToObject(out->json, "id", id);
	cJSON_AddBoolToObject(out->json, "deleted", true);
	return 0;
}

int api_snapshot_export(struct daemon *ctx, const char *id, uid_t client, struct api_out *out,
                        struct al_error *err)
{
	_cleanup_close_ int fd = -1, dir_fd = -1;
	struct stat st;
	int r;

	/* Another client's snapshot is one that does not exist. */
	if (client != 0) {
		struct snapshot_reader *rd = NULL;
		bool mine;
		r = snapshot_reader_open(ctx->host.state_dir, id, &rd, err);
		if (r < 0)
			return r;
		mine = lifecycle_snapshot_visible(snapshot_reader_record(rd), client);
		snapshot_reader_free(rd);
		if (!mine)
			return al_error_set(err, ENOENT, "no snapshot '%s'", id);
	}
	fd = api_spool_open(ctx, err);
	if (fd < 0)
		return fd;
	dir_fd = open(ctx->host.state_dir, O_DIRECTORY | O_RDONLY | O_CLOEXEC);
	if (dir_fd < 0)
		return al_error_errno(err, "open %s", ctx->host.state_dir);
	r = snapshot_export(ctx->host.state_dir, id, dir_fd, fd, err);
	if (r < 0)
		return r;
	if (fstat(fd, &st) < 0 || lseek(fd, 0, SEEK_SET) != 0)
		return al_error_errno(err, "export %s", id);
	out->status = 200;
	out->fd_len = (uint64_t)st.st_size;
	out->fd = TAKE_FD(fd);
	return 0;
}

int api_snapshot_import(struct daemon *ctx, int spool_fd, uid_t client, struct api_out *out,
                        struct al_error *err)
{
	int r;

	if (spool_fd < 0 || lseek(spool_fd, 0, SEEK_SET) != 0)
		return al_error_set(err, EINVAL, "request body (a snapshot stream) is required");
	r = snapshot_import(ctx->host.state_dir, spool_fd, client, &out->json, err);
	if (r < 0) {
		log_info("snapshot import refused: %s", err->msg);
		/* A bad stream is the client's error (400), whatever the store called it. */
		if (r == -EBADMSG) {
			err->code = EINVAL;
			return -EINVAL;
		}
		return r;
	}
	out->status = 201;
	return 0;
}
