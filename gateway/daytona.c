/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Daytona's wire API over airlockd, as `@daytonaio/sdk` speaks it (docs/gateway.md; the
 * reference's §4): the control plane under /daytona/api (DAYTONA_API_URL) and each
 * sandbox's toolbox under /daytona/toolbox/<id>, the toolboxProxyUrl the sandbox DTO
 * names.  Keys come as "Authorization: Bearer", on both planes.
 *
 * Stop keeps the sandbox as an airlockd snapshot (with its processes where CRIU can) and
 * start brings it back, as Daytona's own stop/start keep the filesystem.
 */
#include "registry.h"
#include "server.h"

#include "cleanup.h"
#include "json.h"
#include "log.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#define API_PREFIX "/daytona/api"
#define TOOLBOX_PREFIX "/daytona/toolbox/"
#define DEFAULT_EXEC_TIMEOUT_S 600
/* A Daytona sandbox's user home and working directory (the image's WORKDIR, else the
 * home): commands without a cwd start there and relative paths of the file routes are
 * resolved there, as the toolbox resolves them against its own working directory.  The
 * Agents SDK's Daytona client puts its workspace below it (/home/daytona/workspace). */
#define WORK_DIR "/home/daytona"
#define TOOLBOX_VERSION "airlock-gateway"

struct dsbx {
	struct gw_entry entry; /* first: the registry's part, found by id or name */
	char id[40];
	char *name;
	char *backend_id;
	char *stopped_snapshot; /* set while stopped */
	cJSON *env;
	cJSON *labels;
	time_t created;
};

static struct gw_registry registry;
static struct gw_server *server;

/* Daytona's (NestJS) error shape: {statusCode, message, error}. */
static void dt_shape(cJSON *j, unsigned status, const char *code, const char *msg)
{
	(void)code;
	cJSON_AddNumberToObject(j, "statusCode", status);
	cJSON_AddStringToObject(j, "message", msg);
	cJSON_AddStringToObject(j, "error",
	                        status == 401   ? "Unauthorized"
	                        : status == 404 ? "Not Found"
	                        : status == 400 ? "Bad Request"
	                        : status == 409 ? "Conflict"
	                                        : "Internal Server Error");
}
#define dt_error(rq, status, ...) gw_reply_error(rq, status, dt_shape, NULL, __VA_ARGS__)

static void dsbx_free(struct dsbx *sb)
{
	free(sb->name);
	free(sb->backend_id);
	gw_entry_done(&sb->entry);
	free(sb->stopped_snapshot);
	cJSON_Delete(sb->env);
	cJSON_Delete(sb->labels);
	free(sb);
}

static void entry_free(struct gw_entry *e)
{
	dsbx_free((struct dsbx *)e);
}

static void releasep(struct dsbx **sb)
{
	gw_registry_release(&registry, (struct gw_entry *)*sb);
}

/* By id or name, the tenant's only; with a reference. */
static struct dsbx *find(const char *id_or_name, const char *tenant)
{
	return (struct dsbx *)gw_registry_find(&registry, id_or_name, tenant);
}

/* ---- the registry's records (--state-dir; registry.h) ---- */

static cJSON *entry_save(const struct gw_entry *e)
{
	const struct dsbx *sb = (const struct dsbx *)e;
	cJSON *o = cJSON_CreateObject();

	cJSON_AddStringToObject(o, "id", sb->id);
	if (sb->name)
		cJSON_AddStringToObject(o, "name", sb->name);
	cJSON_AddStringToObject(o, "backend_id", sb->backend_id);
	cJSON_AddStringToObject(o, "tenant", e->tenant);
	if (sb->stopped_snapshot)
		cJSON_AddStringToObject(o, "stopped_snapshot", sb->stopped_snapshot);
	if (sb->env)
		cJSON_AddItemToObject(o, "env", cJSON_Duplicate(sb->env, 1));
	if (sb->labels)
		cJSON_AddItemToObject(o, "labels", cJSON_Duplicate(sb->labels, 1));
	cJSON_AddNumberToObject(o, "created", (double)sb->created);
	return o;
}

static struct gw_entry *entry_load(const cJSON *o)
{
	const char *id = al_json_str(o, "id"), *bid = al_json_str(o, "backend_id");
	const char *tenant = al_json_str(o, "tenant"), *name = al_json_str(o, "name");
	const char *stopped = al_json_str(o, "stopped_snapshot");
	const cJSON *env = cJSON_GetObjectItemCaseSensitive(o, "env");
	const cJSON *labels = cJSON_GetObjectItemCaseSensitive(o, "labels");
	struct dsbx *sb;

	if (!id || strlen(id) >= sizeof(sb->id) || !bid || !tenant)
		return NULL;
	sb = calloc(1, sizeof(*sb));
	if (!sb)
		return NULL;
	snprintf(sb->id, sizeof(sb->id), "%s", id);
	if (gw_entry_init(&sb->entry, tenant) < 0 || !(sb->backend_id = strdup(bid)) ||
	    (name && !(sb->name = strdup(name))) ||
	    (stopped && !(sb->stopped_snapshot = strdup(stopped)))) {
		dsbx_free(sb);
		return NULL;
	}
	sb->entry.id = sb->id;
	sb->entry.name = sb->name;
	sb->env = cJSON_IsObject(env) ? cJSON_Duplicate(env, 1) : cJSON_CreateObject();
	sb->labels = cJSON_IsObject(labels) ? cJSON_Duplicate(labels, 1) : NULL;
	sb->created = (time_t)cJSON_GetNumberValue(cJSON_GetObjectItemCaseSensitive(o, "created"));
	return &sb->entry;
}

static const struct gw_registry_ops registry_ops = {
    .service = GW_DAYTONA,
    .what = "daytona",
    .free = entry_free,
    .save = entry_save,
    .load = entry_load,
};

int gw_daytona_init(struct gw_server *s, struct al_error *err)
{
	server = s;
	return gw_registry_open(&registry, &registry_ops, &s->state, err);
}

static cJSON *dto(const struct dsbx *sb, struct gw_request *rq)
{
	cJSON *o = cJSON_CreateObject();
	const char *host = gw_header(rq, "Host");
	char when[64], url[512];
	struct tm tm;

	gmtime_r(&sb->created, &tm);
	strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%S.000Z", &tm);
	/* The toolbox is this gateway, as the client reached it. */
	snprintf(url, sizeof(url), "http://%s%.*s", host ? host : "127.0.0.1",
	         (int)strlen(TOOLBOX_PREFIX) - 1, TOOLBOX_PREFIX);
	cJSON_AddStringToObject(o, "id", sb->id);
	cJSON_AddStringToObject(o, "organizationId", sb->entry.tenant);
	cJSON_AddStringToObject(o, "name", sb->name ? sb->name : sb->id);
	cJSON_AddStringToObject(o, "user", "root");
	cJSON_AddItemToObject(o, "env",
	                      sb->env ? cJSON_Duplicate(sb->env, 1) : cJSON_CreateObject());
	cJSON_AddItemToObject(o, "labels",
	                      sb->labels ? cJSON_Duplicate(sb->labels, 1) : cJSON_CreateObject());
	cJSON_AddBoolToObject(o, "public", false);
	cJSON_AddBoolToObject(o, "networkBlockAll", true);
	cJSON_AddStringToObject(o, "target", "airlock");
	cJSON_AddNumberToObject(o, "cpu", 1);
	cJSON_AddNumberToObject(o, "gpu", 0);
	cJSON_AddNumberToObject(o, "memory", 1);
	cJSON_AddNumberToObject(o, "disk", 4);
	cJSON_AddStringToObject(o, "state", sb->stopped_snapshot ? "stopped" : "started");
	cJSON_AddStringToObject(o, "desiredState", sb->stopped_snapshot ? "stopped" : "started");
	cJSON_AddStringToObject(o, "createdAt", when);
	cJSON_AddStringToObject(o, "updatedAt", when);
	cJSON_AddStringToObject(o, "toolboxProxyUrl", url);
	return o;
}

static cJSON *show(const struct gw_entry *e, void *rq)
{
	return dto((const struct dsbx *)e, rq);
}

static enum MHD_Result reply_dto(struct gw_request *rq, unsigned status, const struct dsbx *sb)
{
	_cleanup_cjson_ cJSON *o = dto(sb, rq);
	return gw_reply_json(rq, status, o);
}

static int backend_new(struct dsbx *sb, const char *snapshot, struct al_error *err)
{
	char name[64];
	struct gw_new_sandbox ns = {.name = name,
	                            .snapshot = snapshot,
	                            .rootfs = server->rootfs,
	                            .image = server->image,
	                            .env = sb->env};
	char *id;
	int r;

	snprintf(name, sizeof(name), "daytona-%s", sb->id);
	r = gw_backend_create(&server->backend, &ns, &id, NULL, err);
	if (r < 0)
		return r;
	/* A save reads the registry's strings under its lock. */
	gw_registry_lock(&registry);
	free(sb->backend_id);
	sb->backend_id = id;
	gw_registry_unlock(&registry);
	return 0;
}

/* A toolbox path as airlockd needs it: relative ones from the working directory. */
static char *work_path(const char *path)
{
	char *out;

	if (path[0] == '/')
		return strdup(path);
	if (asprintf(&out, WORK_DIR "/%s", path) < 0)
		return NULL;
	return out;
}

/* A fresh sandbox gets the working directory the toolbox reports. */
static int make_work_dir(const struct dsbx *sb, struct al_error *err)
{
	_cleanup_(gw_result_freep) struct gw_result res = {0};
	_cleanup_free_ char *q = gw_path_query("/dirs", WORK_DIR, "&parents=1");
	int r;

	if (!q)
		return al_error_set(err, ENOMEM, "out of memory");
	r = gw_sandbox_call(&server->backend, "POST", sb->backend_id, q, NULL, NULL, 0, 0, &res,
	                    err);
	if (r < 0)
		return r;
	if (res.status >= 300 && res.status != 409)
		return al_error_set(err, EIO, "mkdir " WORK_DIR ": %s", gw_result_message(&res));
	return 0;
}

static void backend_gone(struct dsbx *sb)
{
	if (sb->stopped_snapshot)
		gw_backend_discard_snapshot(&server->backend, sb->stopped_snapshot);
	else
		gw_backend_discard(&server->backend, sb->backend_id);
}

static enum MHD_Result create(struct gw_request *rq, const char *tenant)
{
	_cleanup_cjson_ cJSON *body = cJSON_ParseWithLength(rq->body.data ? rq->body.data : "{}",
	                                                    rq->body.len ? rq->body.len : 2);
	struct al_error e = AL_ERROR_INIT;
	const cJSON *env;
	struct dsbx *sb;
	char hex[33];

	if (!cJSON_IsObject(body))
		return dt_error(rq, 400, "the body must be a JSON object");
	env = cJSON_GetObjectItemCaseSensitive(body, "env");
	if (env && !cJSON_IsObject(env))
		return dt_error(rq, 400, "env must be an object");
	if (al_json_str(body, "name")) {
		_cleanup_(releasep) struct dsbx *same = find(al_json_str(body, "name"), tenant);
		if (same)
			return dt_error(rq, 409, "sandbox with name %s already exists",
			                al_json_str(body, "name"));
	}
	sb = calloc(1, sizeof(*sb));
	if (!sb || al_random_hex(hex, 32, &e) < 0) {
		free(sb);
		return dt_error(rq, 500, "cannot make an id");
	}
	snprintf(sb->id, sizeof(sb->id), "%.8s-%.4s-%.4s-%.4s-%.12s", hex, hex + 8, hex + 12,
	         hex + 16, hex + 20);
	if (gw_entry_init(&sb->entry, tenant) < 0) {
		free(sb);
		return MHD_NO;
	}
	sb->entry.id = sb->id;
	sb->name = al_json_str(body, "name") ? strdup(al_json_str(body, "name")) : NULL;
	sb->entry.name = sb->name;
	sb->env = env ? cJSON_Duplicate(env, 1) : cJSON_CreateObject();
	sb->labels = cJSON_Duplicate(cJSON_GetObjectItemCaseSensitive(body, "labels"), 1);
	sb->created = time(NULL);
	if (backend_new(sb, NULL, &e) < 0) {
		dsbx_free(sb);
		return dt_error(rq, 500, "cannot create the sandbox: %s", e.msg);
	}
	if (make_work_dir(sb, &e) < 0) {
		backend_gone(sb);
		dsbx_free(sb);
		return dt_error(rq, 500, "cannot create the sandbox: %s", e.msg);
	}
	gw_registry_add(&registry, &sb->entry);
	log_info("tenant %s: daytona sandbox %s is airlockd's %s", tenant, sb->id, sb->backend_id);
	{
		_cleanup_(releasep) struct dsbx *mine = sb; /* the creation's reference */
		return reply_dto(rq, 200, mine);
	}
}

static enum MHD_Result stop(struct gw_request *rq, struct dsbx *sb)
{
	struct al_error e = AL_ERROR_INIT;

	if (!sb->stopped_snapshot) {
		for (int processes = 1; processes >= 0 && !sb->stopped_snapshot; processes--) {
			_cleanup_cjson_ cJSON *body = cJSON_CreateObject();
			_cleanup_(gw_result_freep) struct gw_result res = {0};
			cJSON_AddBoolToObject(body, "processes", processes);
			if (gw_sandbox_call(&server->backend, "POST", sb->backend_id, "/snapshots",
			                    body, NULL, 0, 0, &res, &e) == 0 &&
			    res.status == 201 && al_json_str(res.json, "id")) {
				gw_registry_lock(&registry);
				sb->stopped_snapshot = strdup(al_json_str(res.json, "id"));
				gw_registry_unlock(&registry);
			} else if (processes)
				log_warn(
				    "stop %s with processes failed; keeping its filesystem only",
				    sb->id);
		}
		if (!sb->stopped_snapshot)
			return dt_error(rq, 500, "cannot stop sandbox %s", sb->id);
		gw_registry_save(&registry);
		gw_backend_discard(&server->backend, sb->backend_id);
	}
	return reply_dto(rq, 200, sb);
}

static enum MHD_Result start(struct gw_request *rq, struct dsbx *sb)
{
	struct al_error e = AL_ERROR_INIT;

	if (sb->stopped_snapshot) {
		_cleanup_free_ char *snap = sb->stopped_snapshot;
		if (backend_new(sb, snap, &e) < 0)
			return dt_error(rq, 500, "cannot start sandbox %s: %s", sb->id, e.msg);
		gw_registry_lock(&registry);
		sb->stopped_snapshot = NULL;
		gw_registry_unlock(&registry);
		gw_registry_save(&registry);
		gw_backend_discard_snapshot(&server->backend, snap);
	}
	return reply_dto(rq, 200, sb);
}

static enum MHD_Result control(struct gw_request *rq, const char *tenant, const char *rest)
{
	char id[128];
	const char *slash, *action;
	bool post = !strcmp(rq->method, "POST");

	if (!strcmp(rest, "/sandbox") && post)
		return create(rq, tenant);
	if (!strcmp(rest, "/sandbox") && !strcmp(rq->method, "GET")) {
		_cleanup_cjson_ cJSON *list = gw_registry_list(&registry, tenant, show, rq);
		return gw_reply_json(rq, 200, list);
	}
	if (strncmp(rest, "/sandbox/", 9))
		return dt_error(rq, 404, "Cannot %s %s", rq->method, rq->url);
	slash = strchr(rest + 9, '/');
	snprintf(id, sizeof(id), "%.*s", slash ? (int)(slash - rest - 9) : (int)strlen(rest + 9),
	         rest + 9);
	action = slash ? slash : "";
	{
		_cleanup_(releasep) struct dsbx *sb = find(id, tenant);
		if (!sb)
			return dt_error(rq, 404, "Sandbox with ID or name %s not found", id);
		if (!*action && !strcmp(rq->method, "GET"))
			return reply_dto(rq, 200, sb);
		if (!*action && !strcmp(rq->method, "DELETE")) {
			if (gw_registry_remove(&registry, &sb->entry))
				backend_gone(sb);
			return reply_dto(rq, 200, sb);
		}
		if (!strcmp(action, "/stop") && post)
			return stop(rq, sb);
		if (!strcmp(action, "/start") && post)
			return start(rq, sb);
		if (!strcmp(action, "/toolbox-proxy-url") && !strcmp(rq->method, "GET")) {
			_cleanup_cjson_ cJSON *o = dto(sb, rq);
			_cleanup_cjson_ cJSON *out = cJSON_CreateObject();
			cJSON_AddStringToObject(out, "url", al_json_str(o, "toolboxProxyUrl"));
			return gw_reply_json(rq, 200, out);
		}
		/* A clear refusal, not "not found": the SDK would report a missing sandbox. */
		if (!strncmp(action, "/ports/", 7))
			return dt_error(rq, 400,
			                "preview URLs are not supported: airlockd sandboxes expose "
			                "no ports");
	}
	return dt_error(rq, 404, "Cannot %s %s", rq->method, rq->url);
}

/* ---- toolbox ---- */

static cJSON *file_info(const char *name, const cJSON *e)
{
	cJSON *o = cJSON_CreateObject();
	const cJSON *size = cJSON_GetObjectItemCaseSensitive(e, "size");
	const char *type = al_json_str(e, "type");
	const char *mode = al_json_str(e, "mode") ? al_json_str(e, "mode") : "0644";
	unsigned long m = strtoul(mode, NULL, 8);
	char perms[11];
	bool dir = type && !strcmp(type, "dir");

	snprintf(perms, sizeof(perms), "%c%c%c%c%c%c%c%c%c%c", dir ? 'd' : '-',
	         m & 0400 ? 'r' : '-', m & 0200 ? 'w' : '-', m & 0100 ? 'x' : '-',
	         m & 040 ? 'r' : '-', m & 020 ? 'w' : '-', m & 010 ? 'x' : '-', m & 04 ? 'r' : '-',
	         m & 02 ? 'w' : '-', m & 01 ? 'x' : '-');
	cJSON_AddStringToObject(o, "name", name);
	cJSON_AddBoolToObject(o, "isDir", dir);
	cJSON_AddNumberToObject(o, "size", cJSON_IsNumber(size) ? size->valuedouble : 0);
	cJSON_AddStringToObject(o, "mode", mode);
	cJSON_AddStringToObject(o, "modTime", "");
	cJSON_AddStringToObject(o, "permissions", perms);
	cJSON_AddStringToObject(o, "owner", "root");
	cJSON_AddStringToObject(o, "group", "root");
	return o;
}

static enum MHD_Result backend_failure(struct gw_request *rq, int r, const struct al_error *e,
                                       const struct gw_result *res, const char *path)
{
	if (r < 0)
		return dt_error(rq, 502, "%s", e->msg);
	if (res->status == 404)
		return dt_error(rq, 404, "%s: no such file or directory", path);
	return dt_error(rq, res->status >= 400 && res->status < 500 ? 400 : 500, "%s: %s", path,
	                gw_result_message(res));
}

static enum MHD_Result execute(struct gw_request *rq, struct dsbx *sb)
{
	_cleanup_cjson_ cJSON *req =
	    cJSON_ParseWithLength(rq->body.data ? rq->body.data : "", rq->body.len);
	_cleanup_cjson_ cJSON *body = cJSON_CreateObject();
	_cleanup_cjson_ cJSON *out = cJSON_CreateObject();
	_cleanup_(gw_result_freep) struct gw_result res = {0};
	_cleanup_free_ char *combined = NULL;
	struct al_error e = AL_ERROR_INIT;
	const cJSON *timeout = cJSON_GetObjectItemCaseSensitive(req, "timeout");
	const char *cmd = al_json_str(req, "command");
	const cJSON *code;
	double t = cJSON_IsNumber(timeout) && timeout->valuedouble > 0 ? timeout->valuedouble
	                                                               : DEFAULT_EXEC_TIMEOUT_S;
	int r;

	if (!cmd)
		return dt_error(rq, 400, "command is required");
	cJSON_AddStringToObject(body, "command", cmd);
	if (al_json_str(req, "cwd") && *al_json_str(req, "cwd")) {
		_cleanup_free_ char *cwd = work_path(al_json_str(req, "cwd"));
		if (!cwd)
			return MHD_NO;
		cJSON_AddStringToObject(body, "cwd", cwd);
	} else {
		cJSON_AddStringToObject(body, "cwd", WORK_DIR);
	}
	cJSON_AddNumberToObject(body, "timeout_ms", t * 1000);
	cJSON_AddNumberToObject(body, "max_output_bytes", 16 << 20);
	r = gw_sandbox_call(&server->backend, "POST", sb->backend_id, "/exec", body, NULL, 0,
	                    (long)(t * 1000) + 60000, &res, &e);
	if (r < 0 || res.status != 200)
		return backend_failure(rq, r, &e, &res, "execute");
	/* Daytona answers one text: what the command wrote to either stream. */
	if (asprintf(&combined, "%s%s",
	             al_json_str(res.json, "stdout") ? al_json_str(res.json, "stdout") : "",
	             al_json_str(res.json, "stderr") ? al_json_str(res.json, "stderr") : "") < 0)
		return MHD_NO;
	code = cJSON_GetObjectItemCaseSensitive(res.json, "exit_code");
	cJSON_AddNumberToObject(
	    out, "exitCode",
	    cJSON_IsNumber(code) ? code->valuedouble
	    : cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(res.json, "timed_out"))
	        ? -1
	        : 128 + cJSON_GetNumberValue(cJSON_GetObjectItemCaseSensitive(res.json, "signal")));
	cJSON_AddStringToObject(out, "result", combined);
	return gw_reply_json(rq, 200, out);
}

static enum MHD_Result bulk_upload(struct gw_request *rq, struct dsbx *sb)
{
	struct al_error e = AL_ERROR_INIT;
	char dest_buf[4096];
	size_t done = 0;

	if (!rq->multipart)
		return dt_error(rq, 400, "expected multipart/form-data");
	for (size_t i = 0; i < rq->n_parts; i++) {
		const struct gw_part *file = &rq->parts[i];
		const char *dest = NULL;
		_cleanup_free_ char *q = NULL;
		_cleanup_(gw_result_freep) struct gw_result res = {0};
		char want[64];
		size_t idx;
		int r;
		/* files[i].file pairs with files[i].path */
		if (sscanf(file->name, "files[%zu].file", &idx) != 1)
			continue;
		snprintf(want, sizeof(want), "files[%zu].path", idx);
		for (size_t j = 0; j < rq->n_parts; j++)
			if (!strcmp(rq->parts[j].name, want) && rq->parts[j].data.len) {
				snprintf(dest_buf, sizeof(dest_buf), "%.*s",
				         (int)rq->parts[j].data.len, rq->parts[j].data.data);
				dest = dest_buf;
			}
		if (!dest)
			return dt_error(rq, 400, "%s has no %s", file->name, want);
		_cleanup_free_ char *abs = work_path(dest);
		q = abs ? gw_path_query("/files", abs, "&mode=0644&parents=1") : NULL;
		if (!q)
			return MHD_NO;
		r = gw_sandbox_call(&server->backend, "PUT", sb->backend_id, q, NULL,
		                    file->data.data ? file->data.data : "", file->data.len, 0, &res,
		                    &e);
		if (r < 0 || res.status != 200)
			return backend_failure(rq, r, &e, &res, dest);
		done++;
	}
	if (!done)
		return dt_error(rq, 400, "no files[i].file part");
	return gw_reply(rq, 200, NULL, "", 0);
}

static enum MHD_Result bulk_download(struct gw_request *rq, struct dsbx *sb)
{
	_cleanup_cjson_ cJSON *req =
	    cJSON_ParseWithLength(rq->body.data ? rq->body.data : "", rq->body.len);
	_cleanup_buf_ struct al_buf out = {0};
	const cJSON *p;
	char boundary[40], hex[17];
	struct al_error e = AL_ERROR_INIT;

	if (!cJSON_IsArray(cJSON_GetObjectItemCaseSensitive(req, "paths")))
		return dt_error(rq, 400, "paths is required");
	if (al_random_hex(hex, 16, &e) < 0)
		return MHD_NO;
	snprintf(boundary, sizeof(boundary), "airlock-%s", hex);
	cJSON_ArrayForEach(p, cJSON_GetObjectItemCaseSensitive(req, "paths"))
	{
		_cleanup_(gw_result_freep) struct gw_result res = {0};
		_cleanup_free_ char *q = NULL;
		_cleanup_free_ char *head = NULL;
		int r;
		if (!cJSON_IsString(p))
			continue;
		_cleanup_free_ char *abs = work_path(p->valuestring);
		q = abs ? gw_path_query("/files", abs, NULL) : NULL;
		if (!q)
			return MHD_NO;
		r = gw_sandbox_call(&server->backend, "GET", sb->backend_id, q, NULL, NULL, 0, 0,
		                    &res, &e);
		if (r == 0 && res.status == 200) {
			if (asprintf(
			        &head,
			        "--%s\r\nContent-Disposition: form-data; name=\"file\"; "
			        "filename=\"%s\"\r\nContent-Type: application/octet-stream\r\n\r\n",
			        boundary, p->valuestring) < 0)
				return MHD_NO;
			al_buf_append(&out, head, strlen(head));
			al_buf_append(&out, res.body.data ? res.body.data : "", res.body.len);
		} else {
			_cleanup_cjson_ cJSON *ej = cJSON_CreateObject();
			_cleanup_free_ char *etext = NULL;
			long status = r < 0 ? 502 : res.status == 404 ? 404 : 400;
			cJSON_AddStringToObject(ej, "message",
			                        r < 0               ? e.msg
			                        : res.status == 404 ? "no such file or directory"
			                                            : gw_result_message(&res));
			cJSON_AddNumberToObject(ej, "statusCode", (double)status);
			cJSON_AddStringToObject(ej, "code", status == 404 ? "NOT_FOUND" : "ERROR");
			etext = cJSON_PrintUnformatted(ej);
			if (!etext ||
			    asprintf(&head,
			             "--%s\r\nContent-Disposition: form-data; name=\"error\"; "
			             "filename=\"%s\"\r\nContent-Type: application/json\r\n\r\n%s",
			             boundary, p->valuestring, etext) < 0)
				return MHD_NO;
			al_buf_append(&out, head, strlen(head));
		}
		al_buf_append(&out, "\r\n", 2);
	}
	{
		char tail[64], ctype[96];
		snprintf(tail, sizeof(tail), "--%s--\r\n", boundary);
		snprintf(ctype, sizeof(ctype), "multipart/form-data; boundary=%s", boundary);
		if (al_buf_append(&out, tail, strlen(tail)) < 0)
			return MHD_NO;
		return gw_reply(rq, 200, ctype, out.data, out.len);
	}
}

static enum MHD_Result toolbox(struct gw_request *rq, struct dsbx *sb, const char *rest)
{
	_cleanup_(gw_result_freep) struct gw_result res = {0};
	_cleanup_free_ char *q = NULL;
	struct al_error e = AL_ERROR_INIT;
	const char *given = gw_query(rq, "path");
	_cleanup_free_ char *abs = given && *given ? work_path(given) : NULL;
	const char *path = abs;
	bool get = !strcmp(rq->method, "GET");
	int r;

	if (sb->stopped_snapshot)
		return dt_error(rq, 400, "sandbox %s is stopped", sb->id);
	if ((!strcmp(rest, "/user-home-dir") || !strcmp(rest, "/work-dir")) && get) {
		_cleanup_cjson_ cJSON *o = cJSON_CreateObject();
		cJSON_AddStringToObject(o, "dir", WORK_DIR);
		return gw_reply_json(rq, 200, o);
	}
	if (!strcmp(rest, "/version") && get) {
		_cleanup_cjson_ cJSON *o = cJSON_CreateObject();
		cJSON_AddStringToObject(o, "version", TOOLBOX_VERSION);
		return gw_reply_json(rq, 200, o);
	}
	if (!strcmp(rest, "/process/execute") && !strcmp(rq->method, "POST"))
		return execute(rq, sb);
	if (!strncmp(rest, "/process/pty", 12))
		return dt_error(rq, 400,
		                "PTY sessions are not supported: airlockd has no terminals");
	if (!strcmp(rest, "/files/bulk-upload") && !strcmp(rq->method, "POST"))
		return bulk_upload(rq, sb);
	if (!strcmp(rest, "/files/bulk-download") && !strcmp(rq->method, "POST"))
		return bulk_download(rq, sb);
	if (!path || !*path)
		return dt_error(rq, 404, "Cannot %s %s", rq->method, rq->url);
	if (!strcmp(rest, "/files/folder") && !strcmp(rq->method, "POST")) {
		q = gw_path_query("/dirs", path, "&parents=1");
		r = q ? gw_sandbox_call(&server->backend, "POST", sb->backend_id, q, NULL, NULL, 0,
		                        0, &res, &e)
		      : -ENOMEM;
		if (r < 0 || res.status >= 300)
			return backend_failure(rq, r, &e, &res, path);
		return gw_reply(rq, 201, NULL, "", 0);
	}
	if (!strcmp(rest, "/files") && !strcmp(rq->method, "DELETE")) {
		const char *rec = gw_query(rq, "recursive");
		q = gw_path_query("/files", path,
		                  rec && !strcmp(rec, "true") ? "&recursive=1" : NULL);
		r = q ? gw_sandbox_call(&server->backend, "DELETE", sb->backend_id, q, NULL, NULL,
		                        0, 0, &res, &e)
		      : -ENOMEM;
		if (r < 0 || res.status >= 300)
			return backend_failure(rq, r, &e, &res, path);
		return gw_reply(rq, 204, NULL, "", 0);
	}
	if (!strcmp(rest, "/files/download") && get) {
		q = gw_path_query("/files", path, NULL);
		r = q ? gw_sandbox_call(&server->backend, "GET", sb->backend_id, q, NULL, NULL, 0,
		                        0, &res, &e)
		      : -ENOMEM;
		if (r < 0 || res.status != 200)
			return backend_failure(rq, r, &e, &res, path);
		return gw_reply(rq, 200, "application/octet-stream", res.body.data, res.body.len);
	}
	if (!strcmp(rest, "/files") && get) {
		_cleanup_cjson_ cJSON *list = cJSON_CreateArray();
		const cJSON *ent;
		q = gw_path_query("/dirs", path, NULL);
		r = q ? gw_sandbox_call(&server->backend, "GET", sb->backend_id, q, NULL, NULL, 0,
		                        0, &res, &e)
		      : -ENOMEM;
		if (r < 0 || res.status != 200)
			return backend_failure(rq, r, &e, &res, path);
		cJSON_ArrayForEach(ent, cJSON_GetObjectItemCaseSensitive(res.json, "entries"))
		    cJSON_AddItemToArray(
		        list,
		        file_info(al_json_str(ent, "name") ? al_json_str(ent, "name") : "", ent));
		return gw_reply_json(rq, 200, list);
	}
	if (!strcmp(rest, "/files/info") && get) {
		_cleanup_free_ char *copy = strdup(path);
		char *slash = copy ? strrchr(copy, '/') : NULL;
		const char *name = slash ? slash + 1 : copy;
		const cJSON *ent;
		if (!copy)
			return MHD_NO;
		if (slash)
			*slash = '\0';
		q = gw_path_query("/dirs", slash ? (slash == copy ? "/" : copy) : ".", NULL);
		r = q ? gw_sandbox_call(&server->backend, "GET", sb->backend_id, q, NULL, NULL, 0,
		                        0, &res, &e)
		      : -ENOMEM;
		if (r < 0 || res.status != 200)
			return backend_failure(rq, r, &e, &res, path);
		cJSON_ArrayForEach(ent, cJSON_GetObjectItemCaseSensitive(res.json, "entries"))
		{
			if (al_json_str(ent, "name") && !strcmp(al_json_str(ent, "name"), name)) {
				_cleanup_cjson_ cJSON *o = file_info(name, ent);
				return gw_reply_json(rq, 200, o);
			}
		}
		return dt_error(rq, 404, "%s: no such file or directory", path);
	}
	return dt_error(rq, 404, "Cannot %s %s", rq->method, rq->url);
}

bool gw_daytona_handle(struct gw_server *s, struct gw_request *rq, enum MHD_Result *result)
{
	const char *url = rq->url;
	const char *tenant;

	server = s;
	if (strncmp(url, "/daytona/", 9))
		return false;
	tenant = gw_bearer_tenant(server, rq, "Authorization");
	if (!tenant) {
		*result = dt_error(rq, 401, "Unauthorized");
		return true;
	}
	if (!strncmp(url, API_PREFIX "/", strlen(API_PREFIX) + 1)) {
		*result = control(rq, tenant, url + strlen(API_PREFIX));
		return true;
	}
	if (!strncmp(url, TOOLBOX_PREFIX, strlen(TOOLBOX_PREFIX))) {
		const char *id = url + strlen(TOOLBOX_PREFIX);
		const char *slash = strchr(id, '/');
		char idbuf[128];
		snprintf(idbuf, sizeof(idbuf), "%.*s", slash ? (int)(slash - id) : (int)strlen(id),
		         id);
		{
			_cleanup_(releasep) struct dsbx *sb = find(idbuf, tenant);
			if (!sb)
				*result = dt_error(rq, 404, "Sandbox with ID %s not found", idbuf);
			else
				*result = toolbox(rq, sb, slash ? slash : "");
		}
		return true;
	}
	*result = dt_error(rq, 404, "Cannot %s %s", rq->method, url);
	return true;
}

static void discard(struct gw_entry *e)
{
	backend_gone((struct dsbx *)e);
}

void gw_daytona_shutdown(void)
{
	gw_registry_close(&registry, discard);
}
