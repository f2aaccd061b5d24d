/* SPDX-License-Identifier: Apache-2.0 */
#include "api_snapshots.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

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

int api_workspace_get(struct daemon *ctx, struct sandbox *sb, int client_fd, struct api_out *out,
                      struct al_error *err)
{
	int cg[HELPER_MAX_CGROUP_FDS], n_cg;
	_cleanup_strv_ char **ephemeral = sandbox_ephemeral(sb);
	_cleanup_close_ int fd = -1;
	uint64_t bytes = 0;
	int r;

	if (!sandbox_running(sb))
		return al_error_set(err, ESRCH, "sandbox %s is not running", sb->id);
	fd = api_spool_open(ctx, err);
	if (fd < 0)
		return fd;
	n_cg = sandbox_open_cgroup_joins(&ctx->host, sb, cg, AL_ARRAY_SIZE(cg), err);
	if (n_cg < 0)
		return n_cg;
	/* In its cgroups: the sandbox pays for the archive it asked for. */
	r = tar_persist_workspace(sb->init_pid, sb->spec.workspace, ephemeral, fd,
	                          sb->spec.disk_bytes, cg, (size_t)n_cg, client_fd, &bytes, err);
	close_fds(cg, n_cg);
	if (r < 0)
		return al_error_prefix(err, "sandbox %s", sb->id);
	if (lseek(fd, 0, SEEK_SET) != 0)
		return al_error_errno(err, "seek");
	out->status = 200;
	out->fd_len = bytes;
	out->fd = TAKE_FD(fd);
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
