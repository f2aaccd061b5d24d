/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Vercel Sandbox's REST API over airlockd, as `@vercel/sandbox` speaks it (docs/gateway.md;
 * the reference's §7), under /vercel/api.  The SDK has its base URL built in and no
 * option to change it: a client reaches the gateway through a fetch that rewrites the
 * SDK's URLs (tests/gateway/vercel_fetch.cjs).  Keys come as "Authorization: Bearer";
 * the teamId query every call carries is not checked.
 *
 * A command runs in airlockd; one started with wait answers NDJSON (the command, then the
 * command with its exit code), its logs are NDJSON lines of stdout and stderr once it has
 * ended.  File writes are a gzip tar unpacked (libarchive) into the sandbox through
 * airlockd's file API.  A snapshot is an airlockd snapshot of the filesystem, and
 * stops its sandbox, as Vercel's does.
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

#include <archive.h>
#include <archive_entry.h>

#define PREFIX "/vercel/api/v1/sandboxes"
/* Vercel's working directory: commands start there and relative paths resolve there. */
#define WORK_DIR "/vercel/sandbox"
#define MAX_OUTPUT (16u << 20)
#define DEFAULT_TIMEOUT_MS (5 * 60 * 1000)
#define KEEP_COMMANDS 64

struct vcmd {
	struct vcmd *next;
	pthread_mutex_t lock; /* one poll of airlockd at a time */
	int users;            /* requests holding it (under the sandbox's cmd_lock) */
	char id[40];
	cJSON *view; /* the Command object, exitCode null while it runs */
	char *process_id;
	bool finished;
	struct al_buf out, err;
};

struct vsbx {
	struct gw_entry entry; /* first: the registry's part */
	char id[40];
	char *backend_id; /* NULL once stopped */
	char *source_snapshot;
	double created_ms, stopped_ms;
	double timeout_ms;
	cJSON *env;
	pthread_mutex_t cmd_lock;
	struct vcmd *cmds;
};

struct vsnap {
	struct vsnap *next;
	char id[40];
	char *tenant;
	char *backend_snapshot;
	char *source;
	double created_ms;
	double expires_ms; /* 0: none */
};

static struct gw_registry registry;
static struct gw_server *server;
static pthread_mutex_t snaps_lock = PTHREAD_MUTEX_INITIALIZER;
static struct vsnap *snaps;

/* Vercel's error shape: {"error": {"code", "message"}}. */
static void vc_shape(cJSON *j, unsigned status, const char *code, const char *msg)
{
	cJSON *e = cJSON_AddObjectToObject(j, "error");

	(void)status;
	cJSON_AddStringToObject(e, "code", code);
	cJSON_AddStringToObject(e, "message", msg);
}
#define vc_error(rq, status, code, ...) gw_reply_error(rq, status, vc_shape, code, __VA_ARGS__)

static void vcmd_free(struct vcmd *c)
{
	cJSON_Delete(c->view);
	free(c->process_id);
	al_buf_free(&c->out);
	al_buf_free(&c->err);
	pthread_mutex_destroy(&c->lock);
	free(c);
}

static void vsbx_free(struct vsbx *s)
{
	while (s->cmds) {
		struct vcmd *c = s->cmds;
		s->cmds = c->next;
		vcmd_free(c);
	}
	free(s->backend_id);
	free(s->source_snapshot);
	cJSON_Delete(s->env);
	gw_entry_done(&s->entry);
	pthread_mutex_destroy(&s->cmd_lock);
	free(s);
}

static void vsnap_free(struct vsnap *s)
{
	free(s->tenant);
	free(s->backend_snapshot);
	free(s->source);
	free(s);
}

static void entry_free(struct gw_entry *e)
{
	vsbx_free((struct vsbx *)e);
}

static void releasep(struct vsbx **s)
{
	gw_registry_release(&registry, (struct gw_entry *)*s);
}

static struct vsbx *vsbx_new(const char *tenant)
{
	struct vsbx *s = calloc(1, sizeof(*s));

	if (!s)
		return NULL;
	pthread_mutex_init(&s->cmd_lock, NULL);
	if (gw_entry_init(&s->entry, tenant) < 0) {
		pthread_mutex_destroy(&s->cmd_lock);
		free(s);
		return NULL;
	}
	s->entry.id = s->id;
	return s;
}

/* ---- the registry's records (--state-dir) ---- */

static cJSON *entry_save(const struct gw_entry *e)
{
	const struct vsbx *s = (const struct vsbx *)e;
	cJSON *o = cJSON_CreateObject();

	cJSON_AddStringToObject(o, "id", s->id);
	cJSON_AddStringToObject(o, "tenant", e->tenant);
	if (s->backend_id)
		cJSON_AddStringToObject(o, "backend_id", s->backend_id);
	if (s->source_snapshot)
		cJSON_AddStringToObject(o, "source_snapshot", s->source_snapshot);
	if (s->env)
		cJSON_AddItemToObject(o, "env", cJSON_Duplicate(s->env, 1));
	cJSON_AddNumberToObject(o, "created_ms", s->created_ms);
	cJSON_AddNumberToObject(o, "stopped_ms", s->stopped_ms);
	cJSON_AddNumberToObject(o, "timeout_ms", s->timeout_ms);
	return o;
}

static struct gw_entry *entry_load(const cJSON *o)
{
	const char *id = al_json_str(o, "id"), *tenant = al_json_str(o, "tenant");
	struct vsbx *s;

	if (!id || strlen(id) >= sizeof(s->id) || !tenant || !(s = vsbx_new(tenant)))
		return NULL;
	snprintf(s->id, sizeof(s->id), "%s", id);
	if (gw_dup_opt(&s->backend_id, al_json_str(o, "backend_id")) < 0 ||
	    gw_dup_opt(&s->source_snapshot, al_json_str(o, "source_snapshot")) < 0) {
		vsbx_free(s);
		return NULL;
	}
	s->env = cJSON_Duplicate(cJSON_GetObjectItemCaseSensitive(o, "env"), 1);
	s->created_ms = al_json_num(o, "created_ms", 0);
	s->stopped_ms = al_json_num(o, "stopped_ms", 0);
	s->timeout_ms = al_json_num(o, "timeout_ms", DEFAULT_TIMEOUT_MS);
	return &s->entry;
}

static void save_snapshots(cJSON *doc)
{
	cJSON *list = cJSON_AddArrayToObject(doc, "snapshots");

	pthread_mutex_lock(&snaps_lock);
	for (const struct vsnap *s = snaps; s; s = s->next) {
		cJSON *o = cJSON_CreateObject();
		cJSON_AddStringToObject(o, "id", s->id);
		cJSON_AddStringToObject(o, "tenant", s->tenant);
		cJSON_AddStringToObject(o, "backend_snapshot", s->backend_snapshot);
		cJSON_AddStringToObject(o, "source", s->source);
		cJSON_AddNumberToObject(o, "created_ms", s->created_ms);
		cJSON_AddNumberToObject(o, "expires_ms", s->expires_ms);
		cJSON_AddItemToArray(list, o);
	}
	pthread_mutex_unlock(&snaps_lock);
}

static int load_snapshots(const cJSON *doc, struct al_error *err)
{
	const cJSON *o;

	cJSON_ArrayForEach(o, cJSON_GetObjectItemCaseSensitive(doc, "snapshots"))
	{
		const char *id = al_json_str(o, "id");
		struct vsnap *s;
		if (!id || strlen(id) >= sizeof(s->id) || !al_json_str(o, "tenant") ||
		    !al_json_str(o, "backend_snapshot") || !al_json_str(o, "source")) {
			log_warn("vercel: a snapshot record without id, tenant, source or backend "
			         "is skipped");
			continue;
		}
		s = calloc(1, sizeof(*s));
		if (!s)
			return al_error_set(err, ENOMEM, "out of memory");
		snprintf(s->id, sizeof(s->id), "%s", id);
		if (gw_dup_opt(&s->tenant, al_json_str(o, "tenant")) < 0 ||
		    gw_dup_opt(&s->backend_snapshot, al_json_str(o, "backend_snapshot")) < 0 ||
		    gw_dup_opt(&s->source, al_json_str(o, "source")) < 0) {
			vsnap_free(s);
			return al_error_set(err, ENOMEM, "out of memory");
		}
		s->created_ms = al_json_num(o, "created_ms", 0);
		s->expires_ms = al_json_num(o, "expires_ms", 0);
		s->next = snaps;
		snaps = s;
	}
	return 0;
}

static const struct gw_registry_ops registry_ops = {
    .service = GW_VERCEL,
    .what = "vercel",
    .free = entry_free,
    .save = entry_save,
    .load = entry_load,
    .save_more = save_snapshots,
    .load_more = load_snapshots,
};

int gw_vercel_init(struct gw_server *s, struct al_error *err)
{
	server = s;
	return gw_registry_open(&registry, &registry_ops, &s->state, err);
}

/* ---- views ---- */

static cJSON *sandbox_view(const struct vsbx *s, const char *status)
{
	cJSON *o = cJSON_CreateObject();

	cJSON_AddStringToObject(o, "id", s->id);
	cJSON_AddNumberToObject(o, "memory", 2048);
	cJSON_AddNumberToObject(o, "vcpus", 1);
	cJSON_AddStringToObject(o, "region", "airlock");
	cJSON_AddStringToObject(o, "runtime", "airlock");
	cJSON_AddNumberToObject(o, "timeout", s->timeout_ms);
	cJSON_AddStringToObject(o, "status",
	                        status          ? status
	                        : s->backend_id ? "running"
	                                        : "stopped");
	cJSON_AddNumberToObject(o, "requestedAt", s->created_ms);
	cJSON_AddNumberToObject(o, "startedAt", s->created_ms);
	if (s->stopped_ms)
		cJSON_AddNumberToObject(o, "stoppedAt", s->stopped_ms);
	if (s->source_snapshot)
		cJSON_AddStringToObject(o, "sourceSnapshotId", s->source_snapshot);
	cJSON_AddNumberToObject(o, "createdAt", s->created_ms);
	cJSON_AddStringToObject(o, "cwd", WORK_DIR);
	cJSON_AddNumberToObject(o, "updatedAt", s->stopped_ms ? s->stopped_ms : s->created_ms);
	return o;
}

static cJSON *show(const struct gw_entry *e, void *ctx)
{
	(void)ctx;
	return sandbox_view((const struct vsbx *)e, NULL);
}

static enum MHD_Result reply_sandbox(struct gw_request *rq, unsigned status, const struct vsbx *s,
                                     bool routes)
{
	_cleanup_cjson_ cJSON *o = cJSON_CreateObject();

	cJSON_AddItemToObject(o, "sandbox", sandbox_view(s, NULL));
	if (routes)
		cJSON_AddArrayToObject(o, "routes");
	return gw_reply_json(rq, status, o);
}

static cJSON *snap_view(const struct vsnap *s, const char *status)
{
	cJSON *o = cJSON_CreateObject();

	cJSON_AddStringToObject(o, "id", s->id);
	cJSON_AddStringToObject(o, "sourceSandboxId", s->source);
	cJSON_AddStringToObject(o, "region", "airlock");
	cJSON_AddStringToObject(o, "status", status);
	cJSON_AddNumberToObject(o, "sizeBytes", 0);
	if (s->expires_ms)
		cJSON_AddNumberToObject(o, "expiresAt", s->expires_ms);
	cJSON_AddNumberToObject(o, "createdAt", s->created_ms);
	cJSON_AddNumberToObject(o, "updatedAt", s->created_ms);
	return o;
}

/* ---- airlockd ---- */

static char *work_path(const char *path, const char *cwd)
{
	char *out;

	if (path[0] == '/')
		return strdup(path);
	if (asprintf(&out, "%s/%s", cwd && cwd[0] == '/' ? cwd : WORK_DIR, path) < 0)
		return NULL;
	return out;
}

/* The airlockd sandbox of s deleted; s is stopped from then on. */
static void backend_stop(struct vsbx *s)
{
	char *bid;

	gw_registry_lock(&registry);
	bid = s->backend_id;
	s->backend_id = NULL;
	if (bid)
		s->stopped_ms = (double)al_now_ms();
	gw_registry_unlock(&registry);
	if (!bid)
		return;
	gw_registry_save(&registry);
	gw_backend_discard(&server->backend, bid);
	free(bid);
}

static int backend_new(struct vsbx *s, const char *snapshot, struct al_error *err)
{
	_cleanup_(gw_result_freep) struct gw_result dir = {0};
	_cleanup_free_ char *q = gw_path_query("/dirs", WORK_DIR, "&parents=1");
	char name[64];
	struct gw_new_sandbox ns = {.name = name,
	                            .snapshot = snapshot,
	                            .rootfs = server->rootfs,
	                            .image = server->image,
	                            .env = s->env};
	int r;

	snprintf(name, sizeof(name), "vercel-%.40s", s->id);
	r = gw_backend_create(&server->backend, &ns, &s->backend_id, NULL, err);
	if (r < 0)
		return r;
	if (!q)
		return al_error_set(err, ENOMEM, "out of memory");
	r = gw_sandbox_call(&server->backend, "POST", s->backend_id, q, NULL, NULL, 0, 0, &dir,
	                    err);
	if (r == 0 && dir.status >= 300 && dir.status != 409)
		r = al_error_set(err, EIO, "mkdir " WORK_DIR ": %s", gw_result_message(&dir));
	return r;
}

/* ---- create, stop, snapshot ---- */

static struct vsnap *snap_find(const char *id, const char *tenant)
{
	for (struct vsnap *s = snaps; s; s = s->next)
		if (!strcmp(s->id, id) && !strcmp(s->tenant, tenant))
			return s;
	return NULL;
}

static enum MHD_Result create(struct gw_request *rq, const char *tenant)
{
	_cleanup_cjson_ cJSON *body = cJSON_ParseWithLength(rq->body.data ? rq->body.data : "{}",
	                                                    rq->body.len ? rq->body.len : 2);
	_cleanup_free_ char *backend_snapshot = NULL;
	struct al_error e = AL_ERROR_INIT;
	const cJSON *env, *source, *timeout;
	const char *snapshot_id = NULL;
	struct vsbx *s;

	if (!cJSON_IsObject(body))
		return vc_error(rq, 400, "bad_request", "the body must be a JSON object");
	env = cJSON_GetObjectItemCaseSensitive(body, "env");
	if (env && !cJSON_IsObject(env))
		return vc_error(rq, 400, "bad_request", "env must be an object");
	if (cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(body, "ports")) > 0)
		return vc_error(rq, 400, "bad_request",
		                "ports are not supported: airlockd sandboxes expose no ports");
	source = cJSON_GetObjectItemCaseSensitive(body, "source");
	if (source) {
		const char *type = al_json_str(source, "type");
		if (!type || strcmp(type, "snapshot"))
			return vc_error(rq, 400, "bad_request",
			                "source %s is not supported: only snapshots (no git or "
			                "tarball sources: sandboxes have no network)",
			                type ? type : "(none)");
		snapshot_id = al_json_str(source, "snapshotId");
		pthread_mutex_lock(&snaps_lock);
		{
			struct vsnap *sn = snapshot_id ? snap_find(snapshot_id, tenant) : NULL;
			backend_snapshot = sn ? strdup(sn->backend_snapshot) : NULL;
		}
		pthread_mutex_unlock(&snaps_lock);
		if (!backend_snapshot)
			return vc_error(rq, 404, "not_found", "snapshot %s not found",
			                snapshot_id ? snapshot_id : "(none)");
	}
	s = vsbx_new(tenant);
	if (!s || gw_new_id(s->id, sizeof(s->id), "sbx") < 0) {
		if (s)
			vsbx_free(s);
		return vc_error(rq, 500, "internal_error", "cannot make a sandbox");
	}
	timeout = cJSON_GetObjectItemCaseSensitive(body, "timeout");
	s->timeout_ms = cJSON_IsNumber(timeout) ? timeout->valuedouble : DEFAULT_TIMEOUT_MS;
	s->env = cJSON_IsObject(env) ? cJSON_Duplicate(env, 1) : cJSON_CreateObject();
	s->created_ms = (double)al_now_ms();
	if (gw_dup_opt(&s->source_snapshot, snapshot_id) < 0 ||
	    backend_new(s, backend_snapshot, &e) < 0) {
		if (s->backend_id)
			backend_stop(s);
		vsbx_free(s);
		return vc_error(rq, 500, "internal_error", "cannot create the sandbox: %s", e.msg);
	}
	gw_registry_add(&registry, &s->entry);
	log_info("tenant %s: vercel sandbox %s is airlockd's %s", tenant, s->id, s->backend_id);
	{
		_cleanup_(releasep) struct vsbx *mine = s;
		return reply_sandbox(rq, 200, mine, true);
	}
}

static enum MHD_Result snapshot(struct gw_request *rq, struct vsbx *s, const char *tenant)
{
	_cleanup_cjson_ cJSON *req = cJSON_ParseWithLength(rq->body.data ? rq->body.data : "{}",
	                                                   rq->body.len ? rq->body.len : 2);
	_cleanup_cjson_ cJSON *body = cJSON_CreateObject();
	_cleanup_cjson_ cJSON *out = cJSON_CreateObject();
	_cleanup_(gw_result_freep) struct gw_result res = {0};
	struct al_error e = AL_ERROR_INIT;
	const cJSON *exp = cJSON_GetObjectItemCaseSensitive(req, "expiration");
	struct vsnap *sn;
	int r;

	cJSON_AddBoolToObject(body, "processes", false);
	r = gw_sandbox_call(&server->backend, "POST", s->backend_id, "/snapshots", body, NULL, 0, 0,
	                    &res, &e);
	if (r < 0 || res.status != 201 || !al_json_str(res.json, "id"))
		return vc_error(rq, 500, "internal_error", "cannot snapshot sandbox %s: %s", s->id,
		                r < 0 ? e.msg : gw_result_message(&res));
	sn = calloc(1, sizeof(*sn));
	if (!sn || gw_new_id(sn->id, sizeof(sn->id), "snap") < 0 ||
	    gw_dup_opt(&sn->tenant, tenant) < 0 || gw_dup_opt(&sn->source, s->id) < 0 ||
	    gw_dup_opt(&sn->backend_snapshot, al_json_str(res.json, "id")) < 0) {
		gw_backend_discard_snapshot(&server->backend, al_json_str(res.json, "id"));
		if (sn)
			vsnap_free(sn);
		return vc_error(rq, 500, "internal_error", "out of memory");
	}
	sn->created_ms = (double)al_now_ms();
	if (cJSON_IsNumber(exp) && exp->valuedouble > 0)
		sn->expires_ms = sn->created_ms + exp->valuedouble;
	pthread_mutex_lock(&snaps_lock);
	sn->next = snaps;
	snaps = sn;
	cJSON_AddItemToObject(out, "snapshot", snap_view(sn, "created"));
	pthread_mutex_unlock(&snaps_lock);
	/* As Vercel's: snapshotting stops the sandbox. */
	backend_stop(s);
	cJSON_AddItemToObject(out, "sandbox", sandbox_view(s, NULL));
	return gw_reply_json(rq, 201, out);
}

/* /vercel/api/v1/sandboxes/snapshots[/<id>] */
static enum MHD_Result snapshots(struct gw_request *rq, const char *tenant, const char *rest)
{
	_cleanup_cjson_ cJSON *out = cJSON_CreateObject();
	struct vsnap *found = NULL;

	if (!*rest && !strcmp(rq->method, "GET")) {
		cJSON *list = cJSON_AddArrayToObject(out, "snapshots");
		cJSON *page = cJSON_AddObjectToObject(out, "pagination");
		pthread_mutex_lock(&snaps_lock);
		for (const struct vsnap *s = snaps; s; s = s->next)
			if (!strcmp(s->tenant, tenant))
				cJSON_AddItemToArray(list, snap_view(s, "created"));
		pthread_mutex_unlock(&snaps_lock);
		cJSON_AddNumberToObject(page, "count", cJSON_GetArraySize(list));
		cJSON_AddNullToObject(page, "next");
		cJSON_AddNullToObject(page, "prev");
		return gw_reply_json(rq, 200, out);
	}
	if (rest[0] != '/' || strchr(rest + 1, '/'))
		return vc_error(rq, 404, "not_found", "Cannot %s %s", rq->method, rq->url);
	rest++;
	pthread_mutex_lock(&snaps_lock);
	if (!strcmp(rq->method, "GET")) {
		found = snap_find(rest, tenant);
		if (found)
			cJSON_AddItemToObject(out, "snapshot", snap_view(found, "created"));
	} else if (!strcmp(rq->method, "DELETE")) {
		for (struct vsnap **p = &snaps; *p; p = &(*p)->next)
			if (!strcmp((*p)->id, rest) && !strcmp((*p)->tenant, tenant)) {
				found = *p;
				*p = found->next;
				cJSON_AddItemToObject(out, "snapshot", snap_view(found, "deleted"));
				break;
			}
	}
	pthread_mutex_unlock(&snaps_lock);
	if (!found)
		return vc_error(rq, 404, "not_found", "snapshot %s not found", rest);
	if (!strcmp(rq->method, "DELETE")) {
		gw_registry_save(&registry);
		gw_backend_discard_snapshot(&server->backend, found->backend_snapshot);
		vsnap_free(found);
	}
	return gw_reply_json(rq, 200, out);
}

/* ---- commands ---- */

static void take_result(struct vcmd *c, const cJSON *res)
{
	const cJSON *code = cJSON_GetObjectItemCaseSensitive(res, "exit_code");
	const char *out = al_json_str(res, "stdout"), *err = al_json_str(res, "stderr");

	if (out)
		al_buf_append(&c->out, out, strlen(out));
	if (err)
		al_buf_append(&c->err, err, strlen(err));
	if (cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(res, "running"))) {
		if (!c->process_id && al_json_str(res, "process_id"))
			c->process_id = strdup(al_json_str(res, "process_id"));
		return;
	}
	c->finished = true;
	cJSON_ReplaceItemInObject(c->view, "exitCode",
	                          cJSON_CreateNumber(cJSON_IsNumber(code)
	                                                 ? code->valuedouble
	                                                 : 128 + al_json_num(res, "signal", 0)));
	free(c->process_id);
	c->process_id = NULL;
}

/* Poll c's process, waiting up to wait_ms for its end (under c->lock). */
static int poll_cmd(struct vsbx *s, struct vcmd *c, long wait_ms, struct al_error *err)
{
	_cleanup_(gw_result_freep) struct gw_result res = {0};
	_cleanup_free_ char *eid = NULL;
	_cleanup_free_ char *suffix = NULL;
	int r;

	if (c->finished || !c->process_id)
		return 0;
	if (!s->backend_id)
		return al_error_set(err, EHOSTDOWN, "sandbox %s is stopped", s->id);
	eid = gw_escape(c->process_id);
	if (!eid || asprintf(&suffix, "/processes/%s?yield_ms=%ld", eid, wait_ms) < 0)
		return al_error_set(err, ENOMEM, "out of memory");
	r = gw_sandbox_call(&server->backend, "GET", s->backend_id, suffix, NULL, NULL, 0,
	                    wait_ms + 60000, &res, err);
	if (r < 0)
		return r;
	if (res.status != 200)
		return al_error_set(err, EIO, "poll: %s", gw_result_message(&res));
	take_result(c, res.json);
	return 0;
}

/* Until c has ended (under c->lock). */
static int wait_cmd(struct vsbx *s, struct vcmd *c, struct al_error *err)
{
	while (!c->finished) {
		int r = poll_cmd(s, c, 30000, err);
		if (r < 0)
			return r;
	}
	return 0;
}

static struct vcmd *cmd_find(struct vsbx *s, const char *id)
{
	struct vcmd *found = NULL;

	pthread_mutex_lock(&s->cmd_lock);
	for (struct vcmd *c = s->cmds; c && !found; c = c->next)
		if (!strcmp(c->id, id))
			found = c;
	if (found)
		found->users++;
	pthread_mutex_unlock(&s->cmd_lock);
	return found;
}

static void cmd_release(struct vsbx *s, struct vcmd *c)
{
	pthread_mutex_lock(&s->cmd_lock);
	c->users--;
	pthread_mutex_unlock(&s->cmd_lock);
}

static void cmd_trim(struct vsbx *s)
{
	int kept = 0;

	pthread_mutex_lock(&s->cmd_lock);
	for (struct vcmd **p = &s->cmds; *p;) {
		struct vcmd *c = *p;
		if (c->finished && ++kept > KEEP_COMMANDS && c->users == 0) {
			*p = c->next;
			vcmd_free(c);
			continue;
		}
		p = &c->next;
	}
	pthread_mutex_unlock(&s->cmd_lock);
}

static enum MHD_Result reply_command(struct gw_request *rq, struct vcmd *c)
{
	_cleanup_cjson_ cJSON *o = cJSON_CreateObject();

	cJSON_AddItemToObject(o, "command", cJSON_Duplicate(c->view, 1));
	return gw_reply_json(rq, 200, o);
}

static enum MHD_Result run_command(struct gw_request *rq, struct vsbx *s)
{
	_cleanup_cjson_ cJSON *req =
	    cJSON_ParseWithLength(rq->body.data ? rq->body.data : "", rq->body.len);
	_cleanup_cjson_ cJSON *body = cJSON_CreateObject();
	_cleanup_(gw_result_freep) struct gw_result res = {0};
	_cleanup_free_ char *cwd = NULL;
	struct al_error e = AL_ERROR_INIT;
	const char *command = al_json_str(req, "command");
	const cJSON *args = cJSON_GetObjectItemCaseSensitive(req, "args");
	const cJSON *env = cJSON_GetObjectItemCaseSensitive(req, "env");
	const cJSON *a;
	bool wait = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(req, "wait"));
	cJSON *argv;
	struct vcmd *c;
	int r;

	if (!command || !*command)
		return vc_error(rq, 400, "bad_request", "command is required");
	if (args && !cJSON_IsArray(args))
		return vc_error(rq, 400, "bad_request", "args must be an array of strings");
	if (env && !cJSON_IsNull(env) && !cJSON_IsObject(env))
		return vc_error(rq, 400, "bad_request", "env must be an object");
	cwd = al_json_str(req, "cwd") ? work_path(al_json_str(req, "cwd"), NULL) : strdup(WORK_DIR);
	c = calloc(1, sizeof(*c));
	if (!cwd || !c || gw_new_id(c->id, sizeof(c->id), "cmd") < 0) {
		free(c);
		return vc_error(rq, 500, "internal_error", "cannot make a command");
	}
	pthread_mutex_init(&c->lock, NULL);
	argv = cJSON_AddArrayToObject(body, "argv");
	cJSON_AddItemToArray(argv, cJSON_CreateString(command));
	cJSON_ArrayForEach(a, args)
	{
		if (!cJSON_IsString(a)) {
			vcmd_free(c);
			return vc_error(rq, 400, "bad_request", "args must be an array of strings");
		}
		cJSON_AddItemToArray(argv, cJSON_CreateString(a->valuestring));
	}
	cJSON_AddStringToObject(body, "cwd", cwd);
	if (cJSON_IsObject(env))
		cJSON_AddItemToObject(body, "env", cJSON_Duplicate(env, 1));
	/* With wait the answer comes at the end; without, at once (the process goes on). */
	cJSON_AddNumberToObject(body, "yield_ms", wait ? 0 : 1);
	cJSON_AddNumberToObject(body, "max_output_bytes", MAX_OUTPUT);
	c->view = cJSON_CreateObject();
	cJSON_AddStringToObject(c->view, "id", c->id);
	cJSON_AddStringToObject(c->view, "name", command);
	cJSON_AddItemToObject(c->view, "args",
	                      cJSON_IsArray(args) ? cJSON_Duplicate(args, 1) : cJSON_CreateArray());
	cJSON_AddStringToObject(c->view, "cwd", cwd);
	cJSON_AddStringToObject(c->view, "sandboxId", s->id);
	cJSON_AddNullToObject(c->view, "exitCode");
	cJSON_AddNumberToObject(c->view, "startedAt", (double)al_now_ms());
	r = gw_sandbox_call(&server->backend, "POST", s->backend_id, "/exec", body, NULL, 0, 0,
	                    &res, &e);
	if (r < 0 || res.status != 200) {
		vcmd_free(c);
		if (r == 0 && res.status == 400)
			return vc_error(rq, 400, "bad_request", "%s", gw_result_message(&res));
		return vc_error(rq, 500, "internal_error", "cannot run the command: %s",
		                r < 0 ? e.msg : gw_result_message(&res));
	}
	/* The view as it started, for the first line. */
	{
		_cleanup_cjson_ cJSON *first = cJSON_Duplicate(c->view, 1);
		take_result(c, res.json);
		pthread_mutex_lock(&s->cmd_lock);
		c->next = s->cmds;
		s->cmds = c;
		pthread_mutex_unlock(&s->cmd_lock);
		cmd_trim(s);
		if (wait) {
			_cleanup_cjson_ cJSON *l1 = cJSON_CreateObject();
			_cleanup_cjson_ cJSON *l2 = cJSON_CreateObject();
			_cleanup_free_ char *t1 = NULL;
			_cleanup_free_ char *t2 = NULL;
			_cleanup_free_ char *text = NULL;
			cJSON_AddItemToObject(l1, "command", TAKE_PTR(first));
			cJSON_AddItemToObject(l2, "command", cJSON_Duplicate(c->view, 1));
			t1 = cJSON_PrintUnformatted(l1);
			t2 = cJSON_PrintUnformatted(l2);
			if (!t1 || !t2 || asprintf(&text, "%s\n%s\n", t1, t2) < 0)
				return MHD_NO;
			return gw_reply(rq, 200, "application/x-ndjson", text, strlen(text));
		}
		return reply_command(rq, c);
	}
}

static void add_log_lines(struct al_buf *out, const char *stream, const struct al_buf *data)
{
	_cleanup_cjson_ cJSON *o = cJSON_CreateObject();
	_cleanup_free_ char *text = NULL;
	_cleanup_free_ char *copy = NULL;

	if (!data->len)
		return;
	copy = strndup(data->data, data->len);
	cJSON_AddStringToObject(o, "stream", stream);
	cJSON_AddStringToObject(o, "data", copy ? copy : "");
	text = cJSON_PrintUnformatted(o);
	if (text) {
		al_buf_append(out, text, strlen(text));
		al_buf_append(out, "\n", 1);
	}
}

static const char *signal_name(int n)
{
	switch (n) {
	case 1:
		return "HUP";
	case 2:
		return "INT";
	case 9:
		return "KILL";
	case 15:
		return "TERM";
	default:
		return NULL;
	}
}

static enum MHD_Result command(struct gw_request *rq, struct vsbx *s, struct vcmd *c,
                               const char *action)
{
	struct al_error e = AL_ERROR_INIT;
	int r = 0;

	if (!*action && !strcmp(rq->method, "GET")) {
		const char *wait = gw_query(rq, "wait");
		pthread_mutex_lock(&c->lock);
		r = wait && !strcmp(wait, "true") ? wait_cmd(s, c, &e) : poll_cmd(s, c, 0, &e);
		pthread_mutex_unlock(&c->lock);
		if (r < 0)
			return vc_error(rq, 500, "internal_error", "command %s: %s", c->id, e.msg);
		return reply_command(rq, c);
	}
	if (!strcmp(action, "/logs") && !strcmp(rq->method, "GET")) {
		_cleanup_buf_ struct al_buf out = {0};
		/* The stream ends when the command has: its output is whole then. */
		pthread_mutex_lock(&c->lock);
		r = wait_cmd(s, c, &e);
		if (r == 0) {
			add_log_lines(&out, "stdout", &c->out);
			add_log_lines(&out, "stderr", &c->err);
		}
		pthread_mutex_unlock(&c->lock);
		if (r < 0) {
			_cleanup_cjson_ cJSON *o = cJSON_CreateObject();
			_cleanup_free_ char *text = NULL;
			cJSON *d;
			cJSON_AddStringToObject(o, "stream", "error");
			d = cJSON_AddObjectToObject(o, "data");
			cJSON_AddStringToObject(d, "code", "sandbox_error");
			cJSON_AddStringToObject(d, "message", e.msg);
			text = cJSON_PrintUnformatted(o);
			al_buf_append(&out, text ? text : "", text ? strlen(text) : 0);
			al_buf_append(&out, "\n", 1);
		}
		return gw_reply(rq, 200, "application/x-ndjson", out.data ? out.data : "", out.len);
	}
	return vc_error(rq, 404, "not_found", "Cannot %s %s", rq->method, rq->url);
}

static enum MHD_Result kill_command(struct gw_request *rq, struct vsbx *s, struct vcmd *c)
{
	_cleanup_cjson_ cJSON *req = cJSON_ParseWithLength(rq->body.data ? rq->body.data : "{}",
	                                                   rq->body.len ? rq->body.len : 2);
	struct al_error e = AL_ERROR_INIT;
	int n = (int)al_json_num(req, "signal", 15);
	const char *name = signal_name(n);
	int r = 0;

	if (!name)
		return vc_error(rq, 400, "bad_request", "signal %d is not supported (1, 2, 9, 15)",
		                n);
	pthread_mutex_lock(&c->lock);
	if (!c->finished && c->process_id) {
		_cleanup_(gw_result_freep) struct gw_result res = {0};
		_cleanup_free_ char *eid = gw_escape(c->process_id);
		_cleanup_free_ char *suffix = NULL;
		if (eid && asprintf(&suffix, "/processes/%s?signal=%s", eid, name) >= 0)
			r = gw_sandbox_call(&server->backend, "DELETE", s->backend_id, suffix, NULL,
			                    NULL, 0, 0, &res, &e);
		if (r == 0)
			r = poll_cmd(s, c, 2000, &e);
	}
	pthread_mutex_unlock(&c->lock);
	if (r < 0)
		return vc_error(rq, 500, "internal_error", "kill %s: %s", c->id, e.msg);
	return reply_command(rq, c);
}

/* ---- files ---- */

static void archive_freep(struct archive **a)
{
	if (*a)
		archive_read_free(*a);
}

/* The gzip tar of the body unpacked under x-cwd: files through airlockd's file API
 * (parents made), directories made; nothing else is taken. */
static enum MHD_Result write_files(struct gw_request *rq, struct vsbx *s)
{
	_cleanup_(archive_freep) struct archive *a = archive_read_new();
	const char *base = gw_header(rq, "x-cwd");
	struct archive_entry *ent;
	struct al_error e = AL_ERROR_INIT;
	int r;

	if (!a)
		return MHD_NO;
	if (!base || base[0] != '/')
		base = "/";
	archive_read_support_filter_gzip(a);
	archive_read_support_format_tar(a);
	if (archive_read_open_memory(a, rq->body.data ? rq->body.data : "", rq->body.len) !=
	    ARCHIVE_OK)
		return vc_error(rq, 400, "bad_request", "the body is not a gzip tar: %s",
		                archive_error_string(a));
	while ((r = archive_read_next_header(a, &ent)) == ARCHIVE_OK) {
		const char *name = archive_entry_pathname(ent);
		mode_t type = archive_entry_filetype(ent);
		_cleanup_(gw_result_freep) struct gw_result res = {0};
		_cleanup_free_ char *path = NULL;
		_cleanup_free_ char *q = NULL;
		_cleanup_buf_ struct al_buf data = {0};
		char more[48];
		int c;

		while (name && name[0] == '.' && name[1] == '/')
			name += 2;
		if (!name || !*name)
			continue;
		if (asprintf(&path, "%s%s%s", base, base[strlen(base) - 1] == '/' ? "" : "/",
		             name) < 0)
			return MHD_NO;
		if (type == AE_IFDIR) {
			q = gw_path_query("/dirs", path, "&parents=1");
			c = q ? gw_sandbox_call(&server->backend, "POST", s->backend_id, q, NULL,
			                        NULL, 0, 0, &res, &e)
			      : -ENOMEM;
			if (c < 0 || (res.status >= 300 && res.status != 409))
				return vc_error(rq, 400, "file_error", "%s: %s", path,
				                c < 0 ? e.msg : gw_result_message(&res));
			continue;
		}
		if (type != AE_IFREG)
			return vc_error(rq, 400, "bad_request",
			                "%s: only files and directories are written", name);
		for (;;) {
			char buf[65536];
			la_ssize_t n = archive_read_data(a, buf, sizeof(buf));
			if (n < 0)
				return vc_error(rq, 400, "bad_request", "%s: %s", name,
				                archive_error_string(a));
			if (n == 0)
				break;
			if (al_buf_append(&data, buf, (size_t)n) < 0)
				return MHD_NO;
		}
		snprintf(more, sizeof(more), "&mode=%04o&parents=1",
		         (unsigned)(archive_entry_perm(ent) & 0777));
		q = gw_path_query("/files", path, more);
		c = q ? gw_sandbox_call(&server->backend, "PUT", s->backend_id, q, NULL,
		                        data.data ? data.data : "", data.len, 0, &res, &e)
		      : -ENOMEM;
		if (c < 0 || res.status != 200)
			return vc_error(rq, c < 0 ? 502 : 400, "file_error", "%s: %s", path,
			                c < 0 ? e.msg : gw_result_message(&res));
	}
	if (r != ARCHIVE_EOF)
		return vc_error(rq, 400, "bad_request", "the tar is damaged: %s",
		                archive_error_string(a));
	return gw_reply(rq, 200, "application/json", "{}", 2);
}

static enum MHD_Result file_op(struct gw_request *rq, struct vsbx *s, bool mkdir)
{
	_cleanup_cjson_ cJSON *req =
	    cJSON_ParseWithLength(rq->body.data ? rq->body.data : "", rq->body.len);
	_cleanup_(gw_result_freep) struct gw_result res = {0};
	struct al_error e = AL_ERROR_INIT;
	const char *given = al_json_str(req, "path");
	_cleanup_free_ char *path =
	    given && *given ? work_path(given, al_json_str(req, "cwd")) : NULL;
	_cleanup_free_ char *q = NULL;
	int r;

	if (!path)
		return vc_error(rq, 400, "bad_request", "path is required");
	q = mkdir ? gw_path_query("/dirs", path, NULL) : gw_path_query("/files", path, NULL);
	if (!q)
		return MHD_NO;
	r = gw_sandbox_call(&server->backend, mkdir ? "POST" : "GET", s->backend_id, q, NULL, NULL,
	                    0, 0, &res, &e);
	if (r < 0)
		return vc_error(rq, 502, "internal_error", "%s: %s", path, e.msg);
	if (mkdir) {
		if (res.status == 409)
			return vc_error(rq, 400, "file_error", "mkdir %s: File exists", path);
		if (res.status >= 300)
			return vc_error(rq, 400, "file_error", "mkdir %s: %s", path,
			                gw_result_message(&res));
		return gw_reply(rq, 200, "application/json", "{}", 2);
	}
	if (res.status == 404)
		return vc_error(rq, 404, "file_not_found", "%s: no such file", path);
	if (res.status != 200)
		return vc_error(rq, 400, "file_error", "%s: %s", path, gw_result_message(&res));
	return gw_reply(rq, 200, "application/octet-stream", res.body.data ? res.body.data : "",
	                res.body.len);
}

/* ---- routing ---- */

static enum MHD_Result sandbox(struct gw_request *rq, const char *tenant, struct vsbx *s,
                               const char *action)
{
	bool post = !strcmp(rq->method, "POST");

	if (!*action && !strcmp(rq->method, "GET"))
		return reply_sandbox(rq, 200, s, true);
	if (!strcmp(action, "/stop") && post) {
		backend_stop(s);
		return reply_sandbox(rq, 200, s, false);
	}
	if (!strcmp(action, "/extend-timeout") && post) {
		_cleanup_cjson_ cJSON *req = cJSON_ParseWithLength(
		    rq->body.data ? rq->body.data : "{}", rq->body.len ? rq->body.len : 2);
		gw_registry_lock(&registry);
		s->timeout_ms += al_json_num(req, "duration", 0);
		gw_registry_unlock(&registry);
		gw_registry_save(&registry);
		return reply_sandbox(rq, 200, s, false);
	}
	if (!s->backend_id)
		return vc_error(rq, 410, "sandbox_stopped", "sandbox %s is stopped", s->id);
	if (!strcmp(action, "/cmd") && post)
		return run_command(rq, s);
	if (!strcmp(action, "/fs/write") && post)
		return write_files(rq, s);
	if (!strcmp(action, "/fs/mkdir") && post)
		return file_op(rq, s, true);
	if (!strcmp(action, "/fs/read") && post)
		return file_op(rq, s, false);
	if (!strcmp(action, "/snapshot") && post)
		return snapshot(rq, s, tenant);
	if (!strcmp(action, "/network-policy"))
		return vc_error(rq, 400, "bad_request",
		                "network policies are not supported: airlockd sandboxes have no "
		                "network");
	{
		/* /cmd/<id>[/logs] and /<id>/kill */
		const char *id = !strncmp(action, "/cmd/", 5) ? action + 5 : action + 1;
		const char *slash = strchr(id, '/');
		char cid[64];
		struct vcmd *c;
		enum MHD_Result result;
		snprintf(cid, sizeof(cid), "%.*s", slash ? (int)(slash - id) : (int)strlen(id), id);
		if (strncmp(action, "/cmd/", 5) && !(slash && !strcmp(slash, "/kill") && post))
			return vc_error(rq, 404, "not_found", "Cannot %s %s", rq->method, rq->url);
		c = cmd_find(s, cid);
		if (!c)
			return vc_error(rq, 404, "not_found", "command %s not found", cid);
		result = strncmp(action, "/cmd/", 5) ? kill_command(rq, s, c)
		                                     : command(rq, s, c, slash ? slash : "");
		cmd_release(s, c);
		return result;
	}
}

bool gw_vercel_handle(struct gw_server *s, struct gw_request *rq, enum MHD_Result *result)
{
	const char *url = rq->url, *rest, *slash;
	const char *tenant;
	char id[64];

	server = s;
	if (strncmp(url, "/vercel/", 8))
		return false;
	tenant = gw_bearer_tenant(server, rq, "Authorization");
	if (!tenant) {
		*result =
		    vc_error(rq, 401, "forbidden", "Not authorized: a valid token is required");
		return true;
	}
	if (strncmp(url, PREFIX, strlen(PREFIX)) ||
	    (url[strlen(PREFIX)] != '/' && url[strlen(PREFIX)] != '\0')) {
		*result = vc_error(rq, 404, "not_found", "Cannot %s %s", rq->method, url);
		return true;
	}
	rest = url + strlen(PREFIX);
	if (!*rest && !strcmp(rq->method, "POST")) {
		*result = create(rq, tenant);
		return true;
	}
	if (!*rest && !strcmp(rq->method, "GET")) {
		_cleanup_cjson_ cJSON *out = cJSON_CreateObject();
		cJSON *list = gw_registry_list(&registry, tenant, show, NULL);
		cJSON *page;
		cJSON_AddItemToObject(out, "sandboxes", list);
		page = cJSON_AddObjectToObject(out, "pagination");
		cJSON_AddNumberToObject(page, "count", cJSON_GetArraySize(list));
		cJSON_AddNullToObject(page, "next");
		cJSON_AddNullToObject(page, "prev");
		*result = gw_reply_json(rq, 200, out);
		return true;
	}
	if (!strncmp(rest, "/snapshots", 10) && (rest[10] == '\0' || rest[10] == '/')) {
		*result = snapshots(rq, tenant, rest + 10);
		return true;
	}
	rest++;
	slash = strchr(rest, '/');
	snprintf(id, sizeof(id), "%.*s", slash ? (int)(slash - rest) : (int)strlen(rest), rest);
	{
		_cleanup_(releasep) struct vsbx *sb =
		    (struct vsbx *)gw_registry_find(&registry, id, tenant);
		if (!sb)
			*result = vc_error(rq, 404, "not_found", "sandbox %s not found", id);
		else
			*result = sandbox(rq, tenant, sb, slash ? slash : "");
	}
	return true;
}

static void discard(struct gw_entry *e)
{
	backend_stop((struct vsbx *)e);
}

void gw_vercel_shutdown(void)
{
	bool keep = server && gw_state_persistent(&server->state);

	gw_registry_close(&registry, discard);
	pthread_mutex_lock(&snaps_lock);
	while (snaps) {
		struct vsnap *s = snaps;
		snaps = s->next;
		if (!keep)
			gw_backend_discard_snapshot(&server->backend, s->backend_snapshot);
		vsnap_free(s);
	}
	pthread_mutex_unlock(&snaps_lock);
}
