/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Runloop's REST API over airlockd, as `@runloop/api-client` speaks it (docs/gateway.md;
 * the reference's §6): devboxes under /v1/devboxes at the gateway's root
 * (RUNLOOP_BASE_URL=http://gateway:port), over HTTP/1.1 or cleartext HTTP/2 (h2c.c; the
 * SDK's default transport).  Keys come as "Authorization: Bearer".
 *
 * A command runs in airlockd until it ends or the long poll's hold (25 s) is up; then
 * the execution stays "running" and wait_for_status polls it again, answering 408
 * ("keep waiting", which the SDK re-issues at once) while it runs.  Suspend keeps the
 * devbox as an airlockd snapshot (with its processes where CRIU can), and disk snapshots
 * are airlockd snapshots of the filesystem, from which a devbox can be created.
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

#define PREFIX "/v1/devboxes"
/* The devbox user's home, Runloop's working directory: commands start there and relative
 * file paths are resolved there. */
#define HOME_DIR "/home/user"
/* How long a long poll holds before answering 408 (Runloop's own: 25 s). */
#define LONG_POLL_MS 25000
#define MAX_OUTPUT (16u << 20)
/* Finished executions kept per devbox for later reads. */
#define KEEP_EXECUTIONS 64

struct rexec {
	struct rexec *next;
	pthread_mutex_t lock; /* one poll of airlockd at a time */
	int users;            /* requests holding it (under the devbox's exec_lock) */
	char id[40];
	char *command_id; /* the client's, so that a resent execute is the same execution */
	char *process_id; /* airlockd's, while it runs */
	bool completed;
	int exit_status;
	struct al_buf out, err;
};

struct rdbx {
	struct gw_entry entry; /* first: the registry's part */
	char id[40];
	char *name;
	char *backend_id;
	char *suspended_snapshot; /* set while suspended */
	char *snapshot_id;        /* the disk snapshot it was created from */
	cJSON *env;
	cJSON *metadata;
	double created_ms;
	pthread_mutex_t exec_lock;
	struct rexec *execs;
};

struct rsnap {
	struct rsnap *next;
	char id[40];
	char *tenant;
	char *backend_snapshot;
	char *name;
	char *source;
	cJSON *metadata;
	double created_ms;
};

static struct gw_registry registry;
static struct gw_server *server;
static pthread_mutex_t snaps_lock = PTHREAD_MUTEX_INITIALIZER;
static struct rsnap *snaps;

/* Runloop's error shape: {message, status}. */
static void rl_shape(cJSON *j, unsigned status, const char *code, const char *msg)
{
	(void)code;
	cJSON_AddStringToObject(j, "message", msg);
	cJSON_AddNumberToObject(j, "status", status);
}
#define rl_error(rq, status, ...) gw_reply_error(rq, status, rl_shape, NULL, __VA_ARGS__)

static void rexec_free(struct rexec *x)
{
	free(x->command_id);
	free(x->process_id);
	al_buf_free(&x->out);
	al_buf_free(&x->err);
	pthread_mutex_destroy(&x->lock);
	free(x);
}

static void rdbx_free(struct rdbx *d)
{
	while (d->execs) {
		struct rexec *x = d->execs;
		d->execs = x->next;
		rexec_free(x);
	}
	free(d->name);
	free(d->backend_id);
	free(d->suspended_snapshot);
	free(d->snapshot_id);
	cJSON_Delete(d->env);
	cJSON_Delete(d->metadata);
	gw_entry_done(&d->entry);
	pthread_mutex_destroy(&d->exec_lock);
	free(d);
}

static void rsnap_free(struct rsnap *s)
{
	free(s->tenant);
	free(s->backend_snapshot);
	free(s->name);
	free(s->source);
	cJSON_Delete(s->metadata);
	free(s);
}

static void entry_free(struct gw_entry *e)
{
	rdbx_free((struct rdbx *)e);
}

static void releasep(struct rdbx **d)
{
	gw_registry_release(&registry, (struct gw_entry *)*d);
}

static struct rdbx *rdbx_new(const char *tenant)
{
	struct rdbx *d = calloc(1, sizeof(*d));

	if (!d)
		return NULL;
	pthread_mutex_init(&d->exec_lock, NULL);
	if (gw_entry_init(&d->entry, tenant) < 0) {
		pthread_mutex_destroy(&d->exec_lock);
		free(d);
		return NULL;
	}
	d->entry.id = d->id;
	return d;
}

/* ---- the registry's records (--state-dir) ---- */

static cJSON *entry_save(const struct gw_entry *e)
{
	const struct rdbx *d = (const struct rdbx *)e;
	cJSON *o = cJSON_CreateObject();

	cJSON_AddStringToObject(o, "id", d->id);
	cJSON_AddStringToObject(o, "tenant", e->tenant);
	cJSON_AddStringToObject(o, "backend_id", d->backend_id);
	if (d->name)
		cJSON_AddStringToObject(o, "name", d->name);
	if (d->suspended_snapshot)
		cJSON_AddStringToObject(o, "suspended_snapshot", d->suspended_snapshot);
	if (d->snapshot_id)
		cJSON_AddStringToObject(o, "snapshot_id", d->snapshot_id);
	if (d->env)
		cJSON_AddItemToObject(o, "env", cJSON_Duplicate(d->env, 1));
	if (d->metadata)
		cJSON_AddItemToObject(o, "metadata", cJSON_Duplicate(d->metadata, 1));
	cJSON_AddNumberToObject(o, "created_ms", d->created_ms);
	return o;
}

static struct gw_entry *entry_load(const cJSON *o)
{
	const char *id = al_json_str(o, "id"), *bid = al_json_str(o, "backend_id");
	const char *tenant = al_json_str(o, "tenant");
	struct rdbx *d;

	if (!id || strlen(id) >= sizeof(d->id) || !bid || !tenant || !(d = rdbx_new(tenant)))
		return NULL;
	snprintf(d->id, sizeof(d->id), "%s", id);
	if (gw_dup_opt(&d->backend_id, bid) < 0 ||
	    gw_dup_opt(&d->name, al_json_str(o, "name")) < 0 ||
	    gw_dup_opt(&d->suspended_snapshot, al_json_str(o, "suspended_snapshot")) < 0 ||
	    gw_dup_opt(&d->snapshot_id, al_json_str(o, "snapshot_id")) < 0) {
		rdbx_free(d);
		return NULL;
	}
	d->env = cJSON_Duplicate(cJSON_GetObjectItemCaseSensitive(o, "env"), 1);
	d->metadata = cJSON_Duplicate(cJSON_GetObjectItemCaseSensitive(o, "metadata"), 1);
	d->created_ms = al_json_num(o, "created_ms", 0);
	return &d->entry;
}

static cJSON *snap_record(const struct rsnap *s)
{
	cJSON *o = cJSON_CreateObject();

	cJSON_AddStringToObject(o, "id", s->id);
	cJSON_AddStringToObject(o, "tenant", s->tenant);
	cJSON_AddStringToObject(o, "backend_snapshot", s->backend_snapshot);
	if (s->name)
		cJSON_AddStringToObject(o, "name", s->name);
	if (s->source)
		cJSON_AddStringToObject(o, "source", s->source);
	if (s->metadata)
		cJSON_AddItemToObject(o, "metadata", cJSON_Duplicate(s->metadata, 1));
	cJSON_AddNumberToObject(o, "created_ms", s->created_ms);
	return o;
}

/* The disk snapshots go in the same file (under the registry's lock). */
static void save_snapshots(cJSON *doc)
{
	cJSON *list = cJSON_AddArrayToObject(doc, "snapshots");

	pthread_mutex_lock(&snaps_lock);
	for (const struct rsnap *s = snaps; s; s = s->next)
		cJSON_AddItemToArray(list, snap_record(s));
	pthread_mutex_unlock(&snaps_lock);
}

static int load_snapshots(const cJSON *doc, struct al_error *err)
{
	const cJSON *o;

	cJSON_ArrayForEach(o, cJSON_GetObjectItemCaseSensitive(doc, "snapshots"))
	{
		const char *id = al_json_str(o, "id");
		struct rsnap *s;
		if (!id || strlen(id) >= sizeof(s->id) || !al_json_str(o, "tenant") ||
		    !al_json_str(o, "backend_snapshot")) {
			log_warn("runloop: a snapshot record without id, tenant or backend is "
			         "skipped");
			continue;
		}
		s = calloc(1, sizeof(*s));
		if (!s)
			return al_error_set(err, ENOMEM, "out of memory");
		snprintf(s->id, sizeof(s->id), "%s", id);
		if (gw_dup_opt(&s->tenant, al_json_str(o, "tenant")) < 0 ||
		    gw_dup_opt(&s->backend_snapshot, al_json_str(o, "backend_snapshot")) < 0 ||
		    gw_dup_opt(&s->name, al_json_str(o, "name")) < 0 ||
		    gw_dup_opt(&s->source, al_json_str(o, "source")) < 0) {
			rsnap_free(s);
			return al_error_set(err, ENOMEM, "out of memory");
		}
		s->metadata = cJSON_Duplicate(cJSON_GetObjectItemCaseSensitive(o, "metadata"), 1);
		s->created_ms = al_json_num(o, "created_ms", 0);
		s->next = snaps;
		snaps = s;
	}
	return 0;
}

static const struct gw_registry_ops registry_ops = {
    .service = GW_RUNLOOP,
    .what = "runloop",
    .free = entry_free,
    .save = entry_save,
    .load = entry_load,
    .save_more = save_snapshots,
    .load_more = load_snapshots,
};

int gw_runloop_init(struct gw_server *s, struct al_error *err)
{
	server = s;
	return gw_registry_open(&registry, &registry_ops, &s->state, err);
}

/* ---- views ---- */

static const char *status_of(const struct rdbx *d)
{
	return d->suspended_snapshot ? "suspended" : "running";
}

static cJSON *devbox_view(const struct rdbx *d, const char *status)
{
	cJSON *o = cJSON_CreateObject();

	cJSON_AddStringToObject(o, "id", d->id);
	if (d->name)
		cJSON_AddStringToObject(o, "name", d->name);
	else
		cJSON_AddNullToObject(o, "name");
	cJSON_AddStringToObject(o, "status", status ? status : status_of(d));
	cJSON_AddArrayToObject(o, "capabilities");
	cJSON_AddNumberToObject(o, "create_time_ms", d->created_ms);
	cJSON_AddNullToObject(o, "end_time_ms");
	cJSON_AddObjectToObject(o, "launch_parameters");
	cJSON_AddItemToObject(o, "metadata",
	                      d->metadata ? cJSON_Duplicate(d->metadata, 1) : cJSON_CreateObject());
	cJSON_AddArrayToObject(o, "state_transitions");
	cJSON_AddNullToObject(o, "blueprint_id");
	if (d->snapshot_id)
		cJSON_AddStringToObject(o, "snapshot_id", d->snapshot_id);
	else
		cJSON_AddNullToObject(o, "snapshot_id");
	cJSON_AddNullToObject(o, "failure_reason");
	cJSON_AddNullToObject(o, "shutdown_reason");
	cJSON_AddNullToObject(o, "tunnel");
	return o;
}

static cJSON *show(const struct gw_entry *e, void *ctx)
{
	(void)ctx;
	return devbox_view((const struct rdbx *)e, NULL);
}

static enum MHD_Result reply_view(struct gw_request *rq, unsigned status, const struct rdbx *d,
                                  const char *state)
{
	_cleanup_cjson_ cJSON *o = devbox_view(d, state);
	return gw_reply_json(rq, status, o);
}

static cJSON *snap_view(const struct rsnap *s)
{
	cJSON *o = cJSON_CreateObject();

	cJSON_AddStringToObject(o, "id", s->id);
	cJSON_AddNumberToObject(o, "create_time_ms", s->created_ms);
	cJSON_AddItemToObject(o, "metadata",
	                      s->metadata ? cJSON_Duplicate(s->metadata, 1) : cJSON_CreateObject());
	if (s->name)
		cJSON_AddStringToObject(o, "name", s->name);
	else
		cJSON_AddNullToObject(o, "name");
	cJSON_AddStringToObject(o, "source_devbox_id", s->source ? s->source : "");
	return o;
}

static cJSON *execution_view(const struct rdbx *d, const struct rexec *x)
{
	cJSON *o = cJSON_CreateObject();

	cJSON_AddStringToObject(o, "devbox_id", d->id);
	cJSON_AddStringToObject(o, "execution_id", x->id);
	cJSON_AddStringToObject(o, "status", x->completed ? "completed" : "running");
	if (x->completed)
		cJSON_AddNumberToObject(o, "exit_status", x->exit_status);
	else
		cJSON_AddNullToObject(o, "exit_status");
	cJSON_AddStringToObject(o, "shell_name", "sh");
	/* Each stream whole: nothing is left out, so no *_updates stream is needed. */
	{
		_cleanup_free_ char *out = strndup(x->out.data ? x->out.data : "", x->out.len);
		_cleanup_free_ char *err = strndup(x->err.data ? x->err.data : "", x->err.len);
		cJSON_AddStringToObject(o, "stdout", out ? out : "");
		cJSON_AddStringToObject(o, "stderr", err ? err : "");
	}
	cJSON_AddBoolToObject(o, "stdout_truncated", false);
	cJSON_AddBoolToObject(o, "stderr_truncated", false);
	return o;
}

/* ---- airlockd ---- */

static int backend_new(struct rdbx *d, const char *snapshot, struct al_error *err)
{
	char name[64];
	struct gw_new_sandbox ns = {.name = name,
	                            .snapshot = snapshot,
	                            .rootfs = server->rootfs,
	                            .image = server->image,
	                            .env = d->env};
	char *id;
	int r;

	snprintf(name, sizeof(name), "runloop-%.40s", d->id);
	r = gw_backend_create(&server->backend, &ns, &id, NULL, err);
	if (r < 0)
		return r;
	gw_registry_lock(&registry);
	free(d->backend_id);
	d->backend_id = id;
	gw_registry_unlock(&registry);
	return 0;
}

static int make_home(const struct rdbx *d, struct al_error *err)
{
	_cleanup_(gw_result_freep) struct gw_result res = {0};
	_cleanup_free_ char *q = gw_path_query("/dirs", HOME_DIR, "&parents=1");
	int r;

	if (!q)
		return al_error_set(err, ENOMEM, "out of memory");
	r = gw_sandbox_call(&server->backend, "POST", d->backend_id, q, NULL, NULL, 0, 0, &res,
	                    err);
	if (r < 0)
		return r;
	if (res.status >= 300 && res.status != 409)
		return al_error_set(err, EIO, "mkdir " HOME_DIR ": %s", gw_result_message(&res));
	return 0;
}

static void backend_gone(struct rdbx *d)
{
	if (d->suspended_snapshot)
		gw_backend_discard_snapshot(&server->backend, d->suspended_snapshot);
	else
		gw_backend_discard(&server->backend, d->backend_id);
}

/* An airlockd snapshot of d; its id, or NULL with err set. */
static char *take_snapshot(struct rdbx *d, bool processes, struct al_error *err)
{
	_cleanup_cjson_ cJSON *body = cJSON_CreateObject();
	_cleanup_(gw_result_freep) struct gw_result res = {0};
	char *id;

	cJSON_AddBoolToObject(body, "processes", processes);
	if (gw_sandbox_call(&server->backend, "POST", d->backend_id, "/snapshots", body, NULL, 0, 0,
	                    &res, err) < 0)
		return NULL;
	if (res.status != 201 || !al_json_str(res.json, "id")) {
		al_error_set(err, EIO, "snapshot: %s", gw_result_message(&res));
		return NULL;
	}
	id = strdup(al_json_str(res.json, "id"));
	if (!id)
		al_error_set(err, ENOMEM, "out of memory");
	return id;
}

static char *home_path(const char *path)
{
	char *out;

	if (path[0] == '/')
		return strdup(path);
	if (asprintf(&out, HOME_DIR "/%s", path) < 0)
		return NULL;
	return out;
}

static enum MHD_Result backend_failure(struct gw_request *rq, int r, const struct al_error *e,
                                       const struct gw_result *res, const char *what)
{
	if (r < 0)
		return rl_error(rq, 502, "%s: %s", what, e->msg);
	if (res->status == 404)
		return rl_error(rq, 404, "%s: no such file or directory", what);
	return rl_error(rq, res->status >= 400 && res->status < 500 ? 400 : 500, "%s: %s", what,
	                gw_result_message(res));
}

/* ---- create ---- */

static struct rsnap *snap_find(const char *id, const char *tenant)
{
	for (struct rsnap *s = snaps; s; s = s->next)
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
	const cJSON *env, *meta;
	const char *snapshot_id;
	struct rdbx *d;

	if (!cJSON_IsObject(body))
		return rl_error(rq, 400, "the body must be a JSON object");
	env = cJSON_GetObjectItemCaseSensitive(body, "environment_variables");
	if (env && !cJSON_IsNull(env) && !cJSON_IsObject(env))
		return rl_error(rq, 400, "environment_variables must be an object");
	meta = cJSON_GetObjectItemCaseSensitive(body, "metadata");
	if (al_json_str(body, "blueprint_id") || al_json_str(body, "blueprint_name"))
		return rl_error(rq, 400,
		                "blueprints are not supported: devboxes start from the gateway's "
		                "root filesystem or from a disk snapshot");
	snapshot_id = al_json_str(body, "snapshot_id");
	if (snapshot_id) {
		struct rsnap *s;
		pthread_mutex_lock(&snaps_lock);
		s = snap_find(snapshot_id, tenant);
		backend_snapshot = s ? strdup(s->backend_snapshot) : NULL;
		pthread_mutex_unlock(&snaps_lock);
		if (!backend_snapshot)
			return rl_error(rq, 404, "snapshot %s not found", snapshot_id);
	}
	d = rdbx_new(tenant);
	if (!d || gw_new_id(d->id, sizeof(d->id), "dbx") < 0) {
		if (d)
			rdbx_free(d);
		return rl_error(rq, 500, "cannot make a devbox");
	}
	if (gw_dup_opt(&d->name, al_json_str(body, "name")) < 0 ||
	    gw_dup_opt(&d->snapshot_id, snapshot_id) < 0) {
		rdbx_free(d);
		return MHD_NO;
	}
	d->env = cJSON_IsObject(env) ? cJSON_Duplicate(env, 1) : cJSON_CreateObject();
	d->metadata = cJSON_IsObject(meta) ? cJSON_Duplicate(meta, 1) : NULL;
	d->created_ms = (double)al_now_ms();
	if (backend_new(d, backend_snapshot, &e) < 0 || make_home(d, &e) < 0) {
		if (d->backend_id)
			backend_gone(d);
		rdbx_free(d);
		return rl_error(rq, 500, "cannot create the devbox: %s", e.msg);
	}
	gw_registry_add(&registry, &d->entry);
	log_info("tenant %s: runloop devbox %s is airlockd's %s", tenant, d->id, d->backend_id);
	{
		_cleanup_(releasep) struct rdbx *mine = d; /* the creation's reference */
		return reply_view(rq, 200, mine, NULL);
	}
}

/* ---- executions ---- */

/* x's process polled (or, with the result of the exec that started it, res): its output
 * added, completed once it ended.  Under x->lock. */
static void take_result(struct rexec *x, const cJSON *res)
{
	const cJSON *code = cJSON_GetObjectItemCaseSensitive(res, "exit_code");
	const char *out = al_json_str(res, "stdout"), *err = al_json_str(res, "stderr");

	if (out)
		al_buf_append(&x->out, out, strlen(out));
	if (err)
		al_buf_append(&x->err, err, strlen(err));
	if (cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(res, "running"))) {
		if (!x->process_id && al_json_str(res, "process_id"))
			x->process_id = strdup(al_json_str(res, "process_id"));
		return;
	}
	x->completed = true;
	if (cJSON_IsNumber(code))
		x->exit_status = code->valueint;
	else
		x->exit_status =
		    128 + (int)al_json_num(res, "signal", 0); /* killed, as a shell reports it */
	free(x->process_id);
	x->process_id = NULL;
}

/* Poll x's process in airlockd, waiting up to wait_ms for its end.  Under x->lock. */
static int poll_exec(struct rdbx *d, struct rexec *x, long wait_ms, struct al_error *err)
{
	_cleanup_(gw_result_freep) struct gw_result res = {0};
	_cleanup_free_ char *eid = NULL;
	_cleanup_free_ char *suffix = NULL;
	int r;

	if (x->completed || !x->process_id)
		return 0;
	eid = gw_escape(x->process_id);
	if (!eid || asprintf(&suffix, "/processes/%s?yield_ms=%ld", eid, wait_ms) < 0)
		return al_error_set(err, ENOMEM, "out of memory");
	r = gw_sandbox_call(&server->backend, "GET", d->backend_id, suffix, NULL, NULL, 0,
	                    wait_ms + 60000, &res, err);
	if (r < 0)
		return r;
	if (res.status == 404) {
		/* airlockd forgot it (restarted): its end was not seen. */
		x->completed = true;
		x->exit_status = -1;
		free(x->process_id);
		x->process_id = NULL;
		return 0;
	}
	if (res.status != 200)
		return al_error_set(err, EIO, "poll: %s", gw_result_message(&res));
	take_result(x, res.json);
	return 0;
}

/* The execution of that id (or, with by_command, of that command id), held for the
 * caller until exec_release: trimming leaves it alone meanwhile. */
static struct rexec *exec_find(struct rdbx *d, const char *id, bool by_command)
{
	struct rexec *found = NULL;

	pthread_mutex_lock(&d->exec_lock);
	for (struct rexec *x = d->execs; x && !found; x = x->next)
		if (by_command ? x->command_id && !strcmp(x->command_id, id) : !strcmp(x->id, id))
			found = x;
	if (found)
		found->users++;
	pthread_mutex_unlock(&d->exec_lock);
	return found;
}

static void exec_release(struct rdbx *d, struct rexec *x)
{
	pthread_mutex_lock(&d->exec_lock);
	x->users--;
	pthread_mutex_unlock(&d->exec_lock);
}

/* Keep the newest finished executions only (running ones all stay). */
static void exec_trim(struct rdbx *d)
{
	int kept = 0;

	pthread_mutex_lock(&d->exec_lock);
	for (struct rexec **p = &d->execs; *p;) {
		struct rexec *x = *p;
		if (x->completed && ++kept > KEEP_EXECUTIONS &&
		    pthread_mutex_trylock(&x->lock) == 0) {
			*p = x->next;
			pthread_mutex_unlock(&x->lock);
			rexec_free(x);
			continue;
		}
		p = &x->next;
	}
	pthread_mutex_unlock(&d->exec_lock);
}

static enum MHD_Result execute(struct gw_request *rq, struct rdbx *d, long wait_ms)
{
	_cleanup_cjson_ cJSON *req =
	    cJSON_ParseWithLength(rq->body.data ? rq->body.data : "", rq->body.len);
	_cleanup_cjson_ cJSON *body = cJSON_CreateObject();
	_cleanup_cjson_ cJSON *view = NULL;
	_cleanup_(gw_result_freep) struct gw_result res = {0};
	struct al_error e = AL_ERROR_INIT;
	const char *cmd = al_json_str(req, "command");
	struct rexec *x;
	int r;

	if (!cmd)
		return rl_error(rq, 400, "command is required");
	if (cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(req, "attach_stdin")))
		return rl_error(rq, 400, "attach_stdin is not supported");
	if (al_json_str(req, "command_id")) {
		struct rexec *same = exec_find(d, al_json_str(req, "command_id"), true);
		if (same) {
			/* A resend (the client's retry): the execution it started. */
			pthread_mutex_lock(&same->lock);
			r = poll_exec(d, same, wait_ms, &e);
			view = execution_view(d, same);
			pthread_mutex_unlock(&same->lock);
			exec_release(d, same);
			if (r < 0)
				return rl_error(rq, 502, "execution %s: %s", same->id, e.msg);
			return gw_reply_json(rq, 200, view);
		}
	}
	x = calloc(1, sizeof(*x));
	if (!x || gw_new_id(x->id, sizeof(x->id), "exe") < 0 ||
	    gw_dup_opt(&x->command_id, al_json_str(req, "command_id")) < 0) {
		if (x)
			free(x->command_id);
		free(x);
		return rl_error(rq, 500, "cannot make an execution");
	}
	pthread_mutex_init(&x->lock, NULL);
	cJSON_AddStringToObject(body, "command", cmd);
	cJSON_AddStringToObject(body, "cwd", HOME_DIR);
	cJSON_AddNumberToObject(body, "yield_ms", (double)wait_ms);
	cJSON_AddNumberToObject(body, "max_output_bytes", MAX_OUTPUT);
	r = gw_sandbox_call(&server->backend, "POST", d->backend_id, "/exec", body, NULL, 0,
	                    wait_ms + 60000, &res, &e);
	if (r < 0 || res.status != 200) {
		rexec_free(x);
		return backend_failure(rq, r, &e, &res, "execute");
	}
	take_result(x, res.json);
	pthread_mutex_lock(&x->lock);
	view = execution_view(d, x);
	pthread_mutex_unlock(&x->lock);
	pthread_mutex_lock(&d->exec_lock);
	x->next = d->execs;
	d->execs = x;
	pthread_mutex_unlock(&d->exec_lock);
	exec_trim(d);
	return gw_reply_json(rq, 200, view);
}

static bool listed(const cJSON *statuses, const char *status)
{
	const cJSON *s;

	cJSON_ArrayForEach(s, statuses) if (cJSON_IsString(s) &&
	                                    !strcmp(s->valuestring, status)) return true;
	return false;
}

static enum MHD_Result execution_action(struct gw_request *rq, struct rdbx *d, struct rexec *x,
                                        const char *id, const char *action)
{
	_cleanup_cjson_ cJSON *view = NULL;
	struct al_error e = AL_ERROR_INIT;
	long wait_ms = 0;
	int r = 0;

	if (!strcmp(action, "/wait_for_status") && !strcmp(rq->method, "POST")) {
		_cleanup_cjson_ cJSON *req =
		    cJSON_ParseWithLength(rq->body.data ? rq->body.data : "", rq->body.len);
		const cJSON *statuses = cJSON_GetObjectItemCaseSensitive(req, "statuses");
		if (!cJSON_IsArray(statuses))
			return rl_error(rq, 400, "statuses is required");
		pthread_mutex_lock(&x->lock);
		if (!listed(statuses, x->completed ? "completed" : "running"))
			r = poll_exec(d, x, LONG_POLL_MS, &e);
		if (r >= 0 && listed(statuses, x->completed ? "completed" : "running"))
			view = execution_view(d, x);
		pthread_mutex_unlock(&x->lock);
		if (r < 0)
			return rl_error(rq, 502, "execution %s: %s", id, e.msg);
		if (!view)
			/* Runloop's "keep waiting": the SDK asks again at once. */
			return rl_error(rq, 408, "execution %s is still running", id);
		return gw_reply_json(rq, 200, view);
	}
	if (!strcmp(action, "/kill") && !strcmp(rq->method, "POST")) {
		pthread_mutex_lock(&x->lock);
		if (!x->completed && x->process_id) {
			_cleanup_(gw_result_freep) struct gw_result res = {0};
			_cleanup_free_ char *eid = gw_escape(x->process_id);
			_cleanup_free_ char *suffix = NULL;
			if (eid && asprintf(&suffix, "/processes/%s?signal=KILL", eid) >= 0)
				r = gw_sandbox_call(&server->backend, "DELETE", d->backend_id,
				                    suffix, NULL, NULL, 0, 0, &res, &e);
			wait_ms = 5000;
			if (r >= 0)
				r = poll_exec(d, x, wait_ms, &e);
		}
		view = execution_view(d, x);
		pthread_mutex_unlock(&x->lock);
		if (r < 0)
			return rl_error(rq, 502, "kill %s: %s", id, e.msg);
		return gw_reply_json(rq, 200, view);
	}
	if (!*action && !strcmp(rq->method, "GET")) {
		pthread_mutex_lock(&x->lock);
		r = poll_exec(d, x, 0, &e);
		view = execution_view(d, x);
		pthread_mutex_unlock(&x->lock);
		if (r < 0)
			return rl_error(rq, 502, "execution %s: %s", id, e.msg);
		return gw_reply_json(rq, 200, view);
	}
	if (!strncmp(action, "/stream_", 8))
		return rl_error(rq, 400,
		                "output streams are not served: every execution view carries "
		                "its whole output (never truncated)");
	return rl_error(rq, 404, "Cannot %s %s", rq->method, rq->url);
}

static enum MHD_Result execution(struct gw_request *rq, struct rdbx *d, const char *rest)
{
	const char *slash = strchr(rest, '/');
	const char *action = slash ? slash : "";
	enum MHD_Result result;
	struct rexec *x;
	char id[64];

	snprintf(id, sizeof(id), "%.*s", slash ? (int)(slash - rest) : (int)strlen(rest), rest);
	x = exec_find(d, id, false);
	if (!x)
		return rl_error(rq, 404, "execution %s not found", id);
	result = execution_action(rq, d, x, id, action);
	exec_release(d, x);
	return result;
}

/* ---- files ---- */

static enum MHD_Result read_file(struct gw_request *rq, struct rdbx *d, const char *key,
                                 const char *content_type)
{
	_cleanup_cjson_ cJSON *req =
	    cJSON_ParseWithLength(rq->body.data ? rq->body.data : "", rq->body.len);
	_cleanup_(gw_result_freep) struct gw_result res = {0};
	struct al_error e = AL_ERROR_INIT;
	const char *given = al_json_str(req, key);
	_cleanup_free_ char *path = given && *given ? home_path(given) : NULL;
	_cleanup_free_ char *q = path ? gw_path_query("/files", path, NULL) : NULL;
	int r;

	if (!given || !*given)
		return rl_error(rq, 400, "%s is required", key);
	if (!q)
		return MHD_NO;
	r = gw_sandbox_call(&server->backend, "GET", d->backend_id, q, NULL, NULL, 0, 0, &res, &e);
	if (r < 0 || res.status != 200)
		return backend_failure(rq, r, &e, &res, given);
	return gw_reply(rq, 200, content_type, res.body.data ? res.body.data : "", res.body.len);
}

static int put_file(struct rdbx *d, const char *given, const void *data, size_t len,
                    struct gw_result *res, struct al_error *err)
{
	_cleanup_free_ char *path = home_path(given);
	_cleanup_free_ char *q =
	    path ? gw_path_query("/files", path, "&mode=0644&parents=1") : NULL;

	if (!q)
		return al_error_set(err, ENOMEM, "out of memory");
	return gw_sandbox_call(&server->backend, "PUT", d->backend_id, q, NULL, data ? data : "",
	                       len, 0, res, err);
}

static enum MHD_Result write_contents(struct gw_request *rq, struct rdbx *d)
{
	_cleanup_cjson_ cJSON *req =
	    cJSON_ParseWithLength(rq->body.data ? rq->body.data : "", rq->body.len);
	_cleanup_cjson_ cJSON *out = cJSON_CreateObject();
	_cleanup_(gw_result_freep) struct gw_result res = {0};
	struct al_error e = AL_ERROR_INIT;
	const char *path = al_json_str(req, "file_path");
	const char *contents = al_json_str(req, "contents");
	int r;

	if (!path || !*path || !contents)
		return rl_error(rq, 400, "file_path and contents are required");
	r = put_file(d, path, contents, strlen(contents), &res, &e);
	if (r < 0 || res.status != 200)
		return backend_failure(rq, r, &e, &res, path);
	cJSON_AddStringToObject(out, "devbox_id", d->id);
	cJSON_AddNumberToObject(out, "exit_status", 0);
	cJSON_AddStringToObject(out, "stdout", "");
	cJSON_AddStringToObject(out, "stderr", "");
	return gw_reply_json(rq, 200, out);
}

static enum MHD_Result upload(struct gw_request *rq, struct rdbx *d)
{
	_cleanup_(gw_result_freep) struct gw_result res = {0};
	struct al_error e = AL_ERROR_INIT;
	const struct gw_part *file = NULL;
	char path[4096] = "";
	int r;

	if (!rq->multipart)
		return rl_error(rq, 400, "expected multipart/form-data");
	for (size_t i = 0; i < rq->n_parts; i++) {
		if (!strcmp(rq->parts[i].name, "path"))
			snprintf(path, sizeof(path), "%.*s", (int)rq->parts[i].data.len,
			         rq->parts[i].data.data ? rq->parts[i].data.data : "");
		else if (!strcmp(rq->parts[i].name, "file"))
			file = &rq->parts[i];
	}
	if (!*path || !file)
		return rl_error(rq, 400, "the path and file parts are required");
	r = put_file(d, path, file->data.data, file->data.len, &res, &e);
	if (r < 0 || res.status != 200)
		return backend_failure(rq, r, &e, &res, path);
	return gw_reply(rq, 200, "application/json", "{}", 2);
}

/* ---- lifecycle ---- */

static enum MHD_Result suspend(struct gw_request *rq, struct rdbx *d)
{
	struct al_error e = AL_ERROR_INIT;
	char *snap = NULL;

	if (d->suspended_snapshot)
		return reply_view(rq, 200, d, NULL);
	snap = take_snapshot(d, true, &e);
	if (!snap) {
		log_warn("suspend %s with processes failed (%s); keeping its filesystem only",
		         d->id, e.msg);
		snap = take_snapshot(d, false, &e);
	}
	if (!snap)
		return rl_error(rq, 500, "cannot suspend devbox %s: %s", d->id, e.msg);
	{
		_cleanup_(gw_result_freep) struct gw_result res = {0};
		gw_registry_lock(&registry);
		d->suspended_snapshot = snap;
		gw_registry_unlock(&registry);
		gw_registry_save(&registry);
		gw_sandbox_call(&server->backend, "DELETE", d->backend_id, "", NULL, NULL, 0, 0,
		                &res, &e);
	}
	return reply_view(rq, 200, d, NULL);
}

static enum MHD_Result resume(struct gw_request *rq, struct rdbx *d)
{
	struct al_error e = AL_ERROR_INIT;

	if (d->suspended_snapshot) {
		_cleanup_free_ char *snap = d->suspended_snapshot;
		if (backend_new(d, snap, &e) < 0)
			return rl_error(rq, 500, "cannot resume devbox %s: %s", d->id, e.msg);
		gw_registry_lock(&registry);
		d->suspended_snapshot = NULL;
		gw_registry_unlock(&registry);
		gw_registry_save(&registry);
		gw_backend_discard_snapshot(&server->backend, snap);
	}
	return reply_view(rq, 200, d, NULL);
}

static enum MHD_Result wait_for_status(struct gw_request *rq, struct rdbx *d)
{
	_cleanup_cjson_ cJSON *req =
	    cJSON_ParseWithLength(rq->body.data ? rq->body.data : "", rq->body.len);
	const cJSON *statuses = cJSON_GetObjectItemCaseSensitive(req, "statuses");
	uint64_t until = al_now_ms() + LONG_POLL_MS;

	if (!cJSON_IsArray(statuses))
		return rl_error(rq, 400, "statuses is required");
	/* A devbox changes state only by a call of this API: wait for one. */
	while (!listed(statuses, status_of(d)) && al_now_ms() < until)
		al_sleep_ms(250);
	if (!listed(statuses, status_of(d)))
		return rl_error(rq, 408, "devbox %s is %s", d->id, status_of(d));
	return reply_view(rq, 200, d, NULL);
}

static enum MHD_Result snapshot_disk(struct gw_request *rq, struct rdbx *d, const char *tenant)
{
	_cleanup_cjson_ cJSON *req = cJSON_ParseWithLength(rq->body.data ? rq->body.data : "{}",
	                                                   rq->body.len ? rq->body.len : 2);
	_cleanup_cjson_ cJSON *view = NULL;
	struct al_error e = AL_ERROR_INIT;
	const cJSON *meta = cJSON_GetObjectItemCaseSensitive(req, "metadata");
	struct rsnap *s;

	if (d->suspended_snapshot)
		return rl_error(rq, 400, "devbox %s is suspended", d->id);
	s = calloc(1, sizeof(*s));
	if (!s || gw_new_id(s->id, sizeof(s->id), "snp") < 0 ||
	    gw_dup_opt(&s->tenant, tenant) < 0 || gw_dup_opt(&s->source, d->id) < 0 ||
	    gw_dup_opt(&s->name, al_json_str(req, "name")) < 0) {
		if (s)
			rsnap_free(s);
		return rl_error(rq, 500, "cannot make a snapshot");
	}
	s->metadata = cJSON_IsObject(meta) ? cJSON_Duplicate(meta, 1) : NULL;
	s->created_ms = (double)al_now_ms();
	/* The filesystem, as Runloop's disk snapshots are; taken before the answer, so its
	 * status is "complete" at the first look. */
	s->backend_snapshot = take_snapshot(d, false, &e);
	if (!s->backend_snapshot) {
		rsnap_free(s);
		return rl_error(rq, 500, "cannot snapshot devbox %s: %s", d->id, e.msg);
	}
	view = snap_view(s);
	pthread_mutex_lock(&snaps_lock);
	s->next = snaps;
	snaps = s;
	pthread_mutex_unlock(&snaps_lock);
	gw_registry_save(&registry);
	return gw_reply_json(rq, 200, view);
}

/* /v1/devboxes/disk_snapshots... */
static enum MHD_Result disk_snapshots(struct gw_request *rq, const char *tenant, const char *rest)
{
	_cleanup_cjson_ cJSON *out = cJSON_CreateObject();
	char id[64];
	const char *slash;

	if (!*rest && !strcmp(rq->method, "GET")) {
		cJSON *list = cJSON_AddArrayToObject(out, "snapshots");
		pthread_mutex_lock(&snaps_lock);
		for (const struct rsnap *s = snaps; s; s = s->next)
			if (!strcmp(s->tenant, tenant))
				cJSON_AddItemToArray(list, snap_view(s));
		pthread_mutex_unlock(&snaps_lock);
		cJSON_AddBoolToObject(out, "has_more", false);
		cJSON_AddNumberToObject(out, "total_count", cJSON_GetArraySize(list));
		cJSON_AddNumberToObject(out, "remaining_count", 0);
		return gw_reply_json(rq, 200, out);
	}
	if (rest[0] != '/')
		return rl_error(rq, 404, "Cannot %s %s", rq->method, rq->url);
	rest++;
	slash = strchr(rest, '/');
	snprintf(id, sizeof(id), "%.*s", slash ? (int)(slash - rest) : (int)strlen(rest), rest);
	if (slash && !strcmp(slash, "/status") && !strcmp(rq->method, "GET")) {
		struct rsnap *s;
		pthread_mutex_lock(&snaps_lock);
		s = snap_find(id, tenant);
		if (s) {
			cJSON_AddStringToObject(out, "status", "complete");
			cJSON_AddItemToObject(out, "snapshot", snap_view(s));
		}
		pthread_mutex_unlock(&snaps_lock);
		if (!s)
			return rl_error(rq, 404, "snapshot %s not found", id);
		return gw_reply_json(rq, 200, out);
	}
	if (slash && !strcmp(slash, "/delete") && !strcmp(rq->method, "POST")) {
		struct rsnap *found = NULL;
		pthread_mutex_lock(&snaps_lock);
		for (struct rsnap **p = &snaps; *p; p = &(*p)->next)
			if (!strcmp((*p)->id, id) && !strcmp((*p)->tenant, tenant)) {
				found = *p;
				*p = found->next;
				break;
			}
		pthread_mutex_unlock(&snaps_lock);
		if (!found)
			return rl_error(rq, 404, "snapshot %s not found", id);
		gw_registry_save(&registry);
		gw_backend_discard_snapshot(&server->backend, found->backend_snapshot);
		rsnap_free(found);
		return gw_reply_json(rq, 200, out);
	}
	return rl_error(rq, 404, "Cannot %s %s", rq->method, rq->url);
}

static enum MHD_Result devbox(struct gw_request *rq, const char *tenant, struct rdbx *d,
                              const char *action)
{
	bool post = !strcmp(rq->method, "POST");

	if (!*action && !strcmp(rq->method, "GET"))
		return reply_view(rq, 200, d, NULL);
	if (!strcmp(action, "/shutdown") && post) {
		if (gw_registry_remove(&registry, &d->entry))
			backend_gone(d);
		return reply_view(rq, 200, d, "shutdown");
	}
	if (!strcmp(action, "/wait_for_status") && post)
		return wait_for_status(rq, d);
	if (!strcmp(action, "/suspend") && post)
		return suspend(rq, d);
	if (!strcmp(action, "/resume") && post)
		return resume(rq, d);
	if (!strcmp(action, "/keep_alive") && post)
		return gw_reply(rq, 200, "application/json", "{}", 2);
	if (d->suspended_snapshot)
		return rl_error(rq, 400, "devbox %s is suspended", d->id);
	if (!strcmp(action, "/execute") && post)
		return execute(rq, d, LONG_POLL_MS);
	if (!strcmp(action, "/execute_async") && post)
		return execute(rq, d, 1);
	if (!strcmp(action, "/execute_sync") && post)
		return execute(rq, d, 0);
	if (!strncmp(action, "/executions/", 12))
		return execution(rq, d, action + 12);
	if (!strcmp(action, "/read_file_contents") && post)
		return read_file(rq, d, "file_path", "text/plain; charset=utf-8");
	if (!strcmp(action, "/download_file") && post)
		return read_file(rq, d, "path", "application/octet-stream");
	if (!strcmp(action, "/write_file_contents") && post)
		return write_contents(rq, d);
	if (!strcmp(action, "/upload_file") && post)
		return upload(rq, d);
	if ((!strcmp(action, "/snapshot_disk_async") || !strcmp(action, "/snapshot_disk")) && post)
		return snapshot_disk(rq, d, tenant);
	/* Clear refusals, not "not found": the SDK would report a missing devbox. */
	if (!strcmp(action, "/enable_tunnel") || !strcmp(action, "/create_ssh_key") ||
	    !strcmp(action, "/create_pty_tunnel") || !strcmp(action, "/remove_tunnel"))
		return rl_error(rq, 400,
		                "%s is not supported: airlockd devboxes expose no ports and no "
		                "terminals",
		                action + 1);
	return rl_error(rq, 404, "Cannot %s %s", rq->method, rq->url);
}

bool gw_runloop_handle(struct gw_server *s, struct gw_request *rq, enum MHD_Result *result)
{
	const char *url = rq->url, *rest, *slash;
	const char *tenant;
	char id[64];

	server = s;
	if (strncmp(url, PREFIX, strlen(PREFIX)) ||
	    (url[strlen(PREFIX)] != '/' && url[strlen(PREFIX)] != '\0'))
		return false;
	tenant = gw_bearer_tenant(server, rq, "Authorization");
	if (!tenant) {
		*result = rl_error(rq, 401, "Unauthorized: a valid API key is required");
		return true;
	}
	rest = url + strlen(PREFIX);
	if ((!*rest || !strcmp(rest, "/create_and_await_running")) && !strcmp(rq->method, "POST")) {
		*result = create(rq, tenant);
		return true;
	}
	if (!*rest && !strcmp(rq->method, "GET")) {
		_cleanup_cjson_ cJSON *out = cJSON_CreateObject();
		cJSON *list = gw_registry_list(&registry, tenant, show, NULL);
		cJSON_AddItemToObject(out, "devboxes", list);
		cJSON_AddBoolToObject(out, "has_more", false);
		cJSON_AddNumberToObject(out, "total_count", cJSON_GetArraySize(list));
		cJSON_AddNumberToObject(out, "remaining_count", 0);
		*result = gw_reply_json(rq, 200, out);
		return true;
	}
	if (!strncmp(rest, "/disk_snapshots", 15)) {
		*result = disk_snapshots(rq, tenant, rest + 15);
		return true;
	}
	rest++;
	slash = strchr(rest, '/');
	snprintf(id, sizeof(id), "%.*s", slash ? (int)(slash - rest) : (int)strlen(rest), rest);
	{
		_cleanup_(releasep) struct rdbx *d =
		    (struct rdbx *)gw_registry_find(&registry, id, tenant);
		if (!d)
			*result = rl_error(rq, 404, "devbox %s not found", id);
		else
			*result = devbox(rq, tenant, d, slash ? slash : "");
	}
	return true;
}

static void discard(struct gw_entry *e)
{
	backend_gone((struct rdbx *)e);
}

void gw_runloop_shutdown(void)
{
	bool keep = server && gw_state_persistent(&server->state);

	gw_registry_close(&registry, discard);
	/* Without a state directory the snapshots go with the devboxes. */
	pthread_mutex_lock(&snaps_lock);
	while (snaps) {
		struct rsnap *s = snaps;
		snaps = s->next;
		if (!keep)
			gw_backend_discard_snapshot(&server->backend, s->backend_snapshot);
		rsnap_free(s);
	}
	pthread_mutex_unlock(&snaps_lock);
}
