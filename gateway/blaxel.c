/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Blaxel's wire API over airlockd, as `@blaxel/core` speaks it (docs/gateway.md; the
 * reference's §9): the control plane under /blaxel/v0 (BL_API_URL) and each sandbox's
 * data plane under /blaxel/run/<name>, the metadata.url the sandbox object names.  Keys
 * come as "x-blaxel-authorization: Bearer" on both planes.  Files travel as JSON text, a
 * multipart PUT, or Blaxel's multipart-upload protocol (initiate, parts, complete) for
 * the SDK's files over 5 MiB.
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

#define API_PREFIX "/blaxel/v0"
#define RUN_PREFIX "/blaxel/run/"
#define DEFAULT_EXEC_TIMEOUT_S 600

struct upload {
	char id[33];
	char *path;
	struct al_buf *parts; /* by part number - 1 */
	size_t n_parts;
	struct upload *next;
};

struct bsbx {
	struct gw_entry entry; /* first: the registry's part; its id is the name */
	char *name;
	char *backend_id;
	cJSON *spec;
	time_t created;
	struct upload *uploads;
	pthread_mutex_t lock; /* uploads */
};

static struct gw_registry registry;
static struct gw_server *server;

/* The control plane's error body: the SDK branches on code and error. */
static void bl_shape(cJSON *j, unsigned status, const char *code, const char *msg)
{
	cJSON_AddNumberToObject(j, "code", status);
	cJSON_AddStringToObject(j, "error", code);
	cJSON_AddStringToObject(j, "message", msg);
	cJSON_AddNumberToObject(j, "status", status);
}
#define bl_error(rq, status, code, ...) gw_reply_error(rq, status, bl_shape, code, __VA_ARGS__)

static void upload_free(struct upload *u)
{
	for (size_t i = 0; i < u->n_parts; i++)
		al_buf_free(&u->parts[i]);
	free(u->parts);
	free(u->path);
	free(u);
}

static void bsbx_free(struct bsbx *sb)
{
	while (sb->uploads) {
		struct upload *n = sb->uploads->next;
		upload_free(sb->uploads);
		sb->uploads = n;
	}
	gw_entry_done(&sb->entry);
	free(sb->name);
	free(sb->backend_id);
	cJSON_Delete(sb->spec);
	pthread_mutex_destroy(&sb->lock);
	free(sb);
}

static void entry_free(struct gw_entry *e)
{
	bsbx_free((struct bsbx *)e);
}

static void releasep(struct bsbx **sb)
{
	gw_registry_release(&registry, (struct gw_entry *)*sb);
}

static struct bsbx *find(const char *name, const char *tenant)
{
	return (struct bsbx *)gw_registry_find(&registry, name, tenant);
}

static cJSON *sandbox_json(const struct bsbx *sb, struct gw_request *rq)
{
	cJSON *o = cJSON_CreateObject();
	cJSON *meta = cJSON_AddObjectToObject(o, "metadata");
	const char *host = gw_header(rq, "Host");
	char when[64], url[512];
	struct tm tm;

	gmtime_r(&sb->created, &tm);
	strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%SZ", &tm);
	snprintf(url, sizeof(url), "http://%s" RUN_PREFIX "%s", host ? host : "127.0.0.1",
	         sb->name);
	cJSON_AddStringToObject(meta, "name", sb->name);
	cJSON_AddStringToObject(meta, "url", url);
	cJSON_AddStringToObject(meta, "createdAt", when);
	cJSON_AddStringToObject(meta, "workspace", sb->entry.tenant);
	cJSON_AddStringToObject(meta, "createdBy", sb->entry.tenant);
	cJSON_AddItemToObject(o, "spec",
	                      sb->spec ? cJSON_Duplicate(sb->spec, 1) : cJSON_CreateObject());
	/* No spec.region: the SDK then speaks HTTP/1.1 to metadata.url. */
	cJSON_DeleteItemFromObjectCaseSensitive(cJSON_GetObjectItemCaseSensitive(o, "spec"),
	                                        "region");
	cJSON_AddStringToObject(o, "status", "DEPLOYED");
	return o;
}

/* ---- the registry on disk (--state-dir; state.h); uploads in progress are not kept ---- */

static cJSON *entry_save(const struct gw_entry *e)
{
	const struct bsbx *sb = (const struct bsbx *)e;
	cJSON *o = cJSON_CreateObject();

	cJSON_AddStringToObject(o, "name", sb->name);
	cJSON_AddStringToObject(o, "backend_id", sb->backend_id);
	cJSON_AddStringToObject(o, "tenant", e->tenant);
	if (sb->spec)
		cJSON_AddItemToObject(o, "spec", cJSON_Duplicate(sb->spec, 1));
	cJSON_AddNumberToObject(o, "created", (double)sb->created);
	return o;
}

static struct gw_entry *entry_load(const cJSON *o)
{
	const char *name = al_json_str(o, "name"), *bid = al_json_str(o, "backend_id");
	const char *tenant = al_json_str(o, "tenant");
	const cJSON *spec = cJSON_GetObjectItemCaseSensitive(o, "spec");
	struct bsbx *sb;

	if (!name || !bid || !tenant)
		return NULL;
	sb = calloc(1, sizeof(*sb));
	if (!sb)
		return NULL;
	pthread_mutex_init(&sb->lock, NULL);
	if (gw_entry_init(&sb->entry, tenant) < 0 || !(sb->name = strdup(name)) ||
	    !(sb->backend_id = strdup(bid))) {
		bsbx_free(sb);
		return NULL;
	}
	sb->entry.id = sb->name;
	sb->spec = cJSON_IsObject(spec) ? cJSON_Duplicate(spec, 1) : NULL;
	sb->created = (time_t)cJSON_GetNumberValue(cJSON_GetObjectItemCaseSensitive(o, "created"));
	return &sb->entry;
}

static const struct gw_registry_ops registry_ops = {
    .service = GW_BLAXEL,
    .what = "blaxel",
    .free = entry_free,
    .save = entry_save,
    .load = entry_load,
};

int gw_blaxel_init(struct gw_server *s, struct al_error *err)
{
	server = s;
	return gw_registry_open(&registry, &registry_ops, &s->state, err);
}

static enum MHD_Result reply_sandbox(struct gw_request *rq, unsigned status, const struct bsbx *sb)
{
	_cleanup_cjson_ cJSON *o = sandbox_json(sb, rq);
	return gw_reply_json(rq, status, o);
}

static enum MHD_Result create(struct gw_request *rq, const char *tenant)
{
	_cleanup_cjson_ cJSON *body = cJSON_ParseWithLength(rq->body.data ? rq->body.data : "{}",
	                                                    rq->body.len ? rq->body.len : 2);
	_cleanup_cjson_ cJSON *env = cJSON_CreateObject();
	_cleanup_(gw_result_freep) struct gw_result res = {0};
	_cleanup_free_ char *backend_id = NULL;
	struct al_error e = AL_ERROR_INIT;
	const cJSON *meta = cJSON_GetObjectItemCaseSensitive(body, "metadata");
	const cJSON *spec = cJSON_GetObjectItemCaseSensitive(body, "spec");
	const cJSON *envs = cJSON_GetObjectItemCaseSensitive(
	    cJSON_GetObjectItemCaseSensitive(spec, "runtime"), "envs");
	const char *name = al_json_str(meta, "name");
	const cJSON *v;
	struct bsbx *sb;
	char bname[96];
	struct gw_new_sandbox ns = {
	    .name = bname, .rootfs = server->rootfs, .image = server->image, .env = env};
	int r;

	if (!name || !*name || strlen(name) > 63 ||
	    strspn(name, "abcdefghijklmnopqrstuvwxyz0123456789-") != strlen(name))
		return bl_error(rq, 400, "INVALID_NAME", "metadata.name must be 1-63 of [a-z0-9-]");
	{
		_cleanup_(releasep) struct bsbx *same = find(name, tenant);
		if (same)
			return bl_error(rq, 409, "SANDBOX_ALREADY_EXISTS",
			                "sandbox %s already exists", name);
	}
	/* Blaxel's envs are [{name, value}]. */
	cJSON_ArrayForEach(v, envs) if (al_json_str(v, "name") && al_json_str(v, "value"))
	    cJSON_AddStringToObject(env, al_json_str(v, "name"), al_json_str(v, "value"));
	snprintf(bname, sizeof(bname), "blaxel-%s", name);
	r = gw_backend_create(&server->backend, &ns, &backend_id, &res, &e);
	if (r < 0)
		return bl_error(rq, res.status == 409 ? 409 : 500,
		                res.status == 409 ? "SANDBOX_ALREADY_EXISTS" : "INTERNAL",
		                "cannot create the sandbox: %s", e.msg);
	sb = calloc(1, sizeof(*sb));
	if (!sb)
		return MHD_NO;
	pthread_mutex_init(&sb->lock, NULL);
	sb->backend_id = TAKE_PTR(backend_id);
	if (gw_entry_init(&sb->entry, tenant) < 0 || !(sb->name = strdup(name))) {
		bsbx_free(sb);
		return MHD_NO;
	}
	sb->entry.id = sb->name;
	sb->spec = spec ? cJSON_Duplicate(spec, 1) : NULL;
	sb->created = time(NULL);
	gw_registry_add(&registry, &sb->entry);
	log_info("tenant %s: blaxel sandbox %s is airlockd's %s", tenant, name, sb->backend_id);
	{
		_cleanup_(releasep) struct bsbx *mine = sb; /* the creation's reference */
		return reply_sandbox(rq, 200, mine);
	}
}

static cJSON *show(const struct gw_entry *e, void *rq)
{
	return sandbox_json((const struct bsbx *)e, rq);
}

static enum MHD_Result control(struct gw_request *rq, const char *tenant, const char *rest)
{
	if (!strcmp(rest, "/sandboxes") && !strcmp(rq->method, "POST"))
		return create(rq, tenant);
	if (!strcmp(rest, "/sandboxes") && !strcmp(rq->method, "GET")) {
		_cleanup_cjson_ cJSON *list = gw_registry_list(&registry, tenant, show, rq);
		return gw_reply_json(rq, 200, list);
	}
	if (!strncmp(rest, "/sandboxes/", 11) && !strchr(rest + 11, '/')) {
		_cleanup_(releasep) struct bsbx *sb = find(rest + 11, tenant);
		if (!sb)
			return bl_error(rq, 404, "SANDBOX_NOT_FOUND", "sandbox %s not found",
			                rest + 11);
		if (!strcmp(rq->method, "GET"))
			return reply_sandbox(rq, 200, sb);
		if (!strcmp(rq->method, "DELETE")) {
			if (gw_registry_remove(&registry, &sb->entry))
				gw_backend_discard(&server->backend, sb->backend_id);
			return reply_sandbox(rq, 200, sb);
		}
	}
	if (!strncmp(rest, "/sandboxes/", 11) && strstr(rest + 11, "/previews")) {
		/* Not a 404: the SDK's createIfNotExists would take it for "make one". */
		_cleanup_(releasep) struct bsbx *sb = NULL;
		char name[128];
		snprintf(name, sizeof(name), "%.*s", (int)strcspn(rest + 11, "/"), rest + 11);
		sb = find(name, tenant);
		if (!sb)
			return bl_error(rq, 404, "SANDBOX_NOT_FOUND", "sandbox %s not found", name);
		return bl_error(rq, 400, "PREVIEWS_NOT_SUPPORTED",
		                "previews are not supported: airlockd sandboxes expose no ports");
	}
	return bl_error(rq, 404, "NOT_FOUND", "no route %s %s", rq->method, rq->url);
}

/* ---- data plane ---- */

/* The data plane's errors: {error, status, statusText}. */
static void run_shape(cJSON *j, unsigned status, const char *code, const char *msg)
{
	(void)status;
	(void)code;
	cJSON_AddStringToObject(j, "error", msg);
}
#define run_error(rq, status, ...) gw_reply_error(rq, status, run_shape, NULL, __VA_ARGS__)

static enum MHD_Result process(struct gw_request *rq, struct bsbx *sb)
{
	_cleanup_cjson_ cJSON *req =
	    cJSON_ParseWithLength(rq->body.data ? rq->body.data : "", rq->body.len);
	_cleanup_cjson_ cJSON *body = cJSON_CreateObject();
	_cleanup_cjson_ cJSON *out = cJSON_CreateObject();
	_cleanup_(gw_result_freep) struct gw_result res = {0};
	struct al_error e = AL_ERROR_INIT;
	const cJSON *timeout = cJSON_GetObjectItemCaseSensitive(req, "timeout");
	const cJSON *env = cJSON_GetObjectItemCaseSensitive(req, "env");
	const cJSON *code;
	const char *cmd = al_json_str(req, "command");
	double t = cJSON_IsNumber(timeout) && timeout->valuedouble > 0 ? timeout->valuedouble
	                                                               : DEFAULT_EXEC_TIMEOUT_S;
	char when[64], pid[32];
	time_t now = time(NULL);
	struct tm tm;
	int r, exit_code;

	if (!cmd)
		return run_error(rq, 400, "command is required");
	if (cJSON_IsFalse(cJSON_GetObjectItemCaseSensitive(req, "waitForCompletion")) ||
	    !cJSON_GetObjectItemCaseSensitive(req, "waitForCompletion"))
		return run_error(rq, 400,
		                 "airlock-gateway runs processes with waitForCompletion only");
	cJSON_AddStringToObject(body, "command", cmd);
	if (al_json_str(req, "workingDir") && *al_json_str(req, "workingDir"))
		cJSON_AddStringToObject(body, "cwd", al_json_str(req, "workingDir"));
	if (cJSON_IsObject(env) && cJSON_GetArraySize(env) > 0)
		cJSON_AddItemToObject(body, "env", cJSON_Duplicate(env, 1));
	cJSON_AddNumberToObject(body, "timeout_ms", t * 1000);
	cJSON_AddNumberToObject(body, "max_output_bytes", 16 << 20);
	r = gw_sandbox_call(&server->backend, "POST", sb->backend_id, "/exec", body, NULL, 0,
	                    (long)(t * 1000) + 60000, &res, &e);
	if (r < 0)
		return run_error(rq, 502, "%s", e.msg);
	if (res.status != 200)
		return run_error(rq, res.status == 400 ? 400 : 500, "%s", gw_result_message(&res));
	code = cJSON_GetObjectItemCaseSensitive(res.json, "exit_code");
	exit_code = cJSON_IsNumber(code)
	                ? code->valueint
	                : 128 + (int)cJSON_GetNumberValue(
	                            cJSON_GetObjectItemCaseSensitive(res.json, "signal"));
	gmtime_r(&now, &tm);
	strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%SZ", &tm);
	snprintf(pid, sizeof(pid), "%ld", (long)now);
	cJSON_AddStringToObject(out, "pid", pid);
	cJSON_AddStringToObject(out, "name",
	                        al_json_str(req, "name") ? al_json_str(req, "name") : pid);
	cJSON_AddStringToObject(out, "command", cmd);
	cJSON_AddStringToObject(out, "status", exit_code == 0 ? "completed" : "failed");
	cJSON_AddNumberToObject(out, "exitCode", exit_code);
	cJSON_AddStringToObject(
	    out, "stdout", al_json_str(res.json, "stdout") ? al_json_str(res.json, "stdout") : "");
	cJSON_AddStringToObject(
	    out, "stderr", al_json_str(res.json, "stderr") ? al_json_str(res.json, "stderr") : "");
	{
		_cleanup_free_ char *logs = NULL;
		if (asprintf(&logs, "%s%s",
		             al_json_str(res.json, "stdout") ? al_json_str(res.json, "stdout") : "",
		             al_json_str(res.json, "stderr") ? al_json_str(res.json, "stderr")
		                                             : "") < 0)
			return MHD_NO;
		cJSON_AddStringToObject(out, "logs", logs);
	}
	cJSON_AddStringToObject(out, "workingDir",
	                        al_json_str(req, "workingDir") ? al_json_str(req, "workingDir")
	                                                       : "/");
	cJSON_AddStringToObject(out, "startedAt", when);
	cJSON_AddStringToObject(out, "completedAt", when);
	return gw_reply_json(rq, 200, out);
}

static cJSON *file_json(const char *path, const char *name, const cJSON *e)
{
	cJSON *o = cJSON_CreateObject();
	const cJSON *size = cJSON_GetObjectItemCaseSensitive(e, "size");

	cJSON_AddStringToObject(o, "name", name);
	cJSON_AddStringToObject(o, "path", path);
	cJSON_AddNumberToObject(o, "size", cJSON_IsNumber(size) ? size->valuedouble : 0);
	cJSON_AddStringToObject(o, "permissions",
	                        al_json_str(e, "mode") ? al_json_str(e, "mode") : "0644");
	cJSON_AddStringToObject(o, "owner", "root");
	cJSON_AddStringToObject(o, "group", "root");
	cJSON_AddStringToObject(o, "lastModified", "");
	return o;
}

static enum MHD_Result put_bytes(struct gw_request *rq, struct bsbx *sb, const char *path,
                                 const void *data, size_t len)
{
	_cleanup_free_ char *q = gw_path_query("/files", path, "&mode=0644&parents=1");
	_cleanup_(gw_result_freep) struct gw_result res = {0};
	_cleanup_cjson_ cJSON *ok = cJSON_CreateObject();
	struct al_error e = AL_ERROR_INIT;
	int r;

	if (!q)
		return MHD_NO;
	r = gw_sandbox_call(&server->backend, "PUT", sb->backend_id, q, NULL, data ? data : "", len,
	                    0, &res, &e);
	if (r < 0 || res.status != 200)
		return run_error(rq,
		                 r < 0               ? 502
		                 : res.status == 404 ? 404
		                                     : 400,
		                 "%s: %s", path, r < 0 ? e.msg : gw_result_message(&res));
	cJSON_AddStringToObject(ok, "message", "File created successfully");
	cJSON_AddStringToObject(ok, "path", path);
	return gw_reply_json(rq, 200, ok);
}

static enum MHD_Result filesystem(struct gw_request *rq, struct bsbx *sb, const char *path)
{
	_cleanup_(gw_result_freep) struct gw_result res = {0};
	_cleanup_free_ char *q = NULL;
	struct al_error e = AL_ERROR_INIT;
	int r;

	if (!strcmp(rq->method, "PUT")) {
		_cleanup_cjson_ cJSON *req = NULL;
		if (rq->multipart) {
			for (size_t i = 0; i < rq->n_parts; i++)
				if (!strcmp(rq->parts[i].name, "file"))
					return put_bytes(rq, sb, path, rq->parts[i].data.data,
					                 rq->parts[i].data.len);
			return run_error(rq, 400, "the multipart body has no file part");
		}
		req = cJSON_ParseWithLength(rq->body.data ? rq->body.data : "", rq->body.len);
		if (cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(req, "isDirectory"))) {
			_cleanup_cjson_ cJSON *ok = cJSON_CreateObject();
			q = gw_path_query("/dirs", path, "&parents=1");
			r = q ? gw_sandbox_call(&server->backend, "POST", sb->backend_id, q, NULL,
			                        NULL, 0, 0, &res, &e)
			      : -ENOMEM;
			if (r < 0 || res.status >= 300)
				return run_error(rq, 400, "%s: %s", path,
				                 r < 0 ? e.msg : gw_result_message(&res));
			cJSON_AddStringToObject(ok, "message", "Directory created successfully");
			cJSON_AddStringToObject(ok, "path", path);
			return gw_reply_json(rq, 200, ok);
		}
		if (!al_json_str(req, "content"))
			return run_error(rq, 400, "content or isDirectory is required");
		return put_bytes(rq, sb, path, al_json_str(req, "content"),
		                 strlen(al_json_str(req, "content")));
	}
	if (!strcmp(rq->method, "DELETE")) {
		_cleanup_cjson_ cJSON *ok = cJSON_CreateObject();
		const char *rec = gw_query(rq, "recursive");
		q = gw_path_query("/files", path,
		                  rec && !strcmp(rec, "true") ? "&recursive=1" : NULL);
		r = q ? gw_sandbox_call(&server->backend, "DELETE", sb->backend_id, q, NULL, NULL,
		                        0, 0, &res, &e)
		      : -ENOMEM;
		if (r == 0 && res.status == 404)
			return run_error(rq, 404, "%s: no such file or directory (not found)",
			                 path);
		if (r < 0 || res.status >= 300)
			return run_error(rq, 400, "%s: %s", path,
			                 r < 0 ? e.msg : gw_result_message(&res));
		cJSON_AddStringToObject(ok, "message", "File deleted successfully");
		return gw_reply_json(rq, 200, ok);
	}
	if (strcmp(rq->method, "GET"))
		return run_error(rq, 405, "method not allowed");
	/* A directory lists; a file reads. */
	q = gw_path_query("/dirs", path, NULL);
	r = q ? gw_sandbox_call(&server->backend, "GET", sb->backend_id, q, NULL, NULL, 0, 0, &res,
	                        &e)
	      : -ENOMEM;
	if (r == 0 && res.status == 200) {
		_cleanup_cjson_ cJSON *dir = cJSON_CreateObject();
		cJSON *files = cJSON_AddArrayToObject(dir, "files");
		cJSON *subdirs = cJSON_AddArrayToObject(dir, "subdirectories");
		const char *base = strrchr(path, '/');
		const cJSON *ent;
		cJSON_AddStringToObject(dir, "name", base && base[1] ? base + 1 : path);
		cJSON_AddStringToObject(dir, "path", path);
		cJSON_ArrayForEach(ent, cJSON_GetObjectItemCaseSensitive(res.json, "entries"))
		{
			_cleanup_free_ char *full = NULL;
			const char *name = al_json_str(ent, "name");
			if (!name || asprintf(&full, "%s%s%s", path,
			                      path[strlen(path) - 1] == '/' ? "" : "/", name) < 0)
				continue;
			if (al_json_str(ent, "type") && !strcmp(al_json_str(ent, "type"), "dir")) {
				cJSON *s = cJSON_CreateObject();
				cJSON_AddStringToObject(s, "name", name);
				cJSON_AddStringToObject(s, "path", full);
				cJSON_AddItemToArray(subdirs, s);
			} else {
				cJSON_AddItemToArray(files, file_json(full, name, ent));
			}
		}
		return gw_reply_json(rq, 200, dir);
	}
	gw_result_free(&res);
	free(q);
	q = gw_path_query("/files", path, NULL);
	r = q ? gw_sandbox_call(&server->backend, "GET", sb->backend_id, q, NULL, NULL, 0, 0, &res,
	                        &e)
	      : -ENOMEM;
	if (r < 0)
		return run_error(rq, 502, "%s", e.msg);
	if (res.status == 404)
		return run_error(rq, 404, "%s: no such file or directory (not found)", path);
	if (res.status != 200)
		return run_error(rq, 400, "%s: %s", path, gw_result_message(&res));
	{
		const char *accept = gw_header(rq, "Accept");
		_cleanup_cjson_ cJSON *o = NULL;
		_cleanup_free_ char *text = NULL;
		const char *base = strrchr(path, '/');
		if (accept && strstr(accept, "application/octet-stream"))
			return gw_reply(rq, 200, "application/octet-stream", res.body.data,
			                res.body.len);
		text = strndup(res.body.data ? res.body.data : "", res.body.len);
		o = cJSON_CreateObject();
		if (!text || !o)
			return MHD_NO;
		cJSON_AddStringToObject(o, "content", text);
		cJSON_AddStringToObject(o, "path", path);
		cJSON_AddStringToObject(o, "name", base ? base + 1 : path);
		cJSON_AddNumberToObject(o, "size", (double)res.body.len);
		cJSON_AddStringToObject(o, "permissions", "0644");
		cJSON_AddStringToObject(o, "owner", "root");
		cJSON_AddStringToObject(o, "group", "root");
		cJSON_AddStringToObject(o, "lastModified", "");
		return gw_reply_json(rq, 200, o);
	}
}

/* ---- multipart uploads (files over 5 MiB) ---- */

static struct upload *upload_find(struct bsbx *sb, const char *id, bool take)
{
	struct upload *found = NULL;

	pthread_mutex_lock(&sb->lock);
	for (struct upload **pp = &sb->uploads; *pp; pp = &(*pp)->next)
		if (!strcmp((*pp)->id, id)) {
			found = *pp;
			if (take)
				*pp = found->next;
			break;
		}
	pthread_mutex_unlock(&sb->lock);
	return found;
}

static enum MHD_Result multipart(struct gw_request *rq, struct bsbx *sb, const char *rest)
{
	_cleanup_cjson_ cJSON *ok = cJSON_CreateObject();
	struct al_error e = AL_ERROR_INIT;

	if (!strncmp(rest, "/initiate/", 10) && !strcmp(rq->method, "POST")) {
		struct upload *u = calloc(1, sizeof(*u));
		const char *path = rest + 9; /* keeps the leading slash */
		if (!u || al_random_hex(u->id, 32, &e) < 0) {
			free(u);
			return MHD_NO;
		}
		while (path[0] == '/' && path[1] == '/')
			path++;
		u->path = strdup(path);
		pthread_mutex_lock(&sb->lock);
		u->next = sb->uploads;
		sb->uploads = u;
		pthread_mutex_unlock(&sb->lock);
		cJSON_AddStringToObject(ok, "uploadId", u->id);
		cJSON_AddStringToObject(ok, "path", path);
		return gw_reply_json(rq, 200, ok);
	}
	{
		char id[64];
		const char *slash = strchr(rest + 1, '/');
		struct upload *u;
		snprintf(id, sizeof(id), "%.*s", slash ? (int)(slash - rest - 1) : 0, rest + 1);
		if (!slash)
			return run_error(rq, 404, "no such upload");
		if (!strcmp(slash, "/part") && !strcmp(rq->method, "PUT")) {
			const char *n = gw_query(rq, "partNumber");
			unsigned long part = n ? strtoul(n, NULL, 10) : 0;
			const struct gw_part *file = NULL;
			u = upload_find(sb, id, false);
			if (!u)
				return run_error(rq, 404, "upload %s not found", id);
			for (size_t i = 0; i < rq->n_parts; i++)
				if (!strcmp(rq->parts[i].name, "file"))
					file = &rq->parts[i];
			if (!file || part < 1 || part > 10000)
				return run_error(rq, 400, "a part needs partNumber and a file");
			pthread_mutex_lock(&sb->lock);
			if (part > u->n_parts) {
				struct al_buf *v = realloc(u->parts, part * sizeof(*v));
				if (v) {
					memset(v + u->n_parts, 0, (part - u->n_parts) * sizeof(*v));
					u->parts = v;
					u->n_parts = part;
				}
			}
			if (part <= u->n_parts) {
				u->parts[part - 1].len = 0;
				al_buf_append(&u->parts[part - 1], file->data.data, file->data.len);
			}
			pthread_mutex_unlock(&sb->lock);
			cJSON_AddNumberToObject(ok, "partNumber", (double)part);
			cJSON_AddStringToObject(ok, "etag", id);
			cJSON_AddNumberToObject(ok, "size", (double)file->data.len);
			return gw_reply_json(rq, 200, ok);
		}
		if (!strcmp(slash, "/complete") && !strcmp(rq->method, "POST")) {
			_cleanup_buf_ struct al_buf all = {0};
			enum MHD_Result result;
			u = upload_find(sb, id, true);
			if (!u)
				return run_error(rq, 404, "upload %s not found", id);
			for (size_t i = 0; i < u->n_parts; i++)
				al_buf_append(&all, u->parts[i].data ? u->parts[i].data : "",
				              u->parts[i].len);
			result = put_bytes(rq, sb, u->path, all.data, all.len);
			upload_free(u);
			return result;
		}
		if (!strcmp(slash, "/abort") && !strcmp(rq->method, "DELETE")) {
			u = upload_find(sb, id, true);
			if (u)
				upload_free(u);
			cJSON_AddStringToObject(ok, "message", "upload aborted");
			return gw_reply_json(rq, 200, ok);
		}
	}
	return run_error(rq, 404, "no such route");
}

bool gw_blaxel_handle(struct gw_server *s, struct gw_request *rq, enum MHD_Result *result)
{
	const char *url = rq->url, *tenant;

	server = s;
	if (strncmp(url, "/blaxel/", 8))
		return false;
	tenant = gw_bearer_tenant(server, rq, "x-blaxel-authorization");
	if (!tenant) {
		*result = bl_error(rq, 401, "UNAUTHORIZED", "invalid or missing API key");
		return true;
	}
	if (!strncmp(url, API_PREFIX "/", strlen(API_PREFIX) + 1)) {
		*result = control(rq, tenant, url + strlen(API_PREFIX));
		return true;
	}
	if (!strncmp(url, RUN_PREFIX, strlen(RUN_PREFIX))) {
		const char *name = url + strlen(RUN_PREFIX);
		const char *slash = strchr(name, '/');
		char nbuf[128];
		snprintf(nbuf, sizeof(nbuf), "%.*s",
		         slash ? (int)(slash - name) : (int)strlen(name), name);
		{
			_cleanup_(releasep) struct bsbx *sb = find(nbuf, tenant);
			const char *rest = slash ? slash : "";
			if (!sb)
				*result = run_error(rq, 404, "sandbox %s not found", nbuf);
			else if (!strcmp(rest, "/process") && !strcmp(rq->method, "POST"))
				*result = process(rq, sb);
			else if (!strncmp(rest, "/filesystem-multipart/", 22))
				*result = multipart(rq, sb, rest + 21);
			else if (!strncmp(rest, "/filesystem/", 12)) {
				/* Both encodings the SDK uses: %2F-escaped (decoded by MHD) and
				 * raw. */
				const char *p = rest + 12;
				_cleanup_free_ char *path = NULL;
				while (p[0] == '/' && p[1] == '/')
					p++;
				if (asprintf(&path, "%s%s", p[0] == '/' ? "" : "/", p) < 0)
					*result = MHD_NO;
				else
					*result = filesystem(rq, sb, path);
			} else
				*result = run_error(rq, 404, "no such route");
		}
		return true;
	}
	*result = bl_error(rq, 404, "NOT_FOUND", "no route %s %s", rq->method, url);
	return true;
}

static void discard(struct gw_entry *e)
{
	gw_backend_discard(&server->backend, ((struct bsbx *)e)->backend_id);
}

void gw_blaxel_shutdown(void)
{
	gw_registry_close(&registry, discard);
}
