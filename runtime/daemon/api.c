/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The v1 HTTP API of airlockd (docs/api.md) on libmicrohttpd.
 *
 * One thread per connection: an exec blocks its connection's thread until
 * the command ends or yields, and never anyone else's.  Every request is
 * bounded: headers by MHD's connection memory limit, bodies by the caps
 * below (checked against Content-Length up front and again as data comes).
 */
#include "api.h"

#include <errno.h>
#include <limits.h>
#include <microhttpd.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#include <seccomp.h>

#include "admission.h"
#include "api_snapshots.h"
#include "api_events.h"
#include "api_stream.h"
#include "bucket_mounts.h"
#include "cleanup.h"
#include "json.h"
#include "events.h"
#include "execstream.h"
#include "images.h"
#include "log.h"
#include "lifecycle.h"
#include "metrics.h"
#include "pool.h"
#include "process.h"
#include "reaper.h"
#include "sandbox.h"
#include "strv.h"
#include "util.h"

#define MAX_JSON_BODY (16u << 20)
#define MAX_FILE_BODY (256u << 20)
/* A file upload announced this large or larger is streamed into its sandbox,
 * bounded by the sandbox's disk cap rather than MAX_FILE_BODY; a smaller one
 * is spooled and written by the sandbox's file server, which is cheaper
 * than a helper of its own. */
#define STREAMED_UPLOAD_MIN (1u << 20)
#define DEFAULT_MAX_OUTPUT (1u << 20)
#define MAX_OUTPUT_CAP PROCESS_MAX_OUTPUT
#define BACKPRESSURE_MIN_OUTPUT (64u << 10)
/* An image import's bounds: the archive, the unpacked image, and the members
 * of each layer (each may be raised by a query parameter, by root). */
#define IMAGE_MAX_INPUT (16ULL << 30)
#define IMAGE_MAX_EXTRACTED (64ULL << 30)
#define IMAGE_MAX_MEMBERS 1000000ULL

struct api_server {
	struct MHD_Daemon *mhd;
	struct admission *admission;
	int listen_fd; /* ours: libmicrohttpd does not listen (admission.c accepts) */
	struct daemon *ctx;
	gid_t allowed_gid;
	uint64_t started_ms;
};

struct request {
	struct al_buf body;
	size_t limit;
	bool rejected; /* a response was queued before the body arrived */
	/* Over its limit: the rest is read and dropped, and the 413 sent at its
	 * end.  Sent at once, the kernel would reset a connection with unread
	 * data, and the client, still sending, would see the reset instead. */
	bool too_large;
	uint64_t dropped;
	size_t held; /* bytes of body in memory, counted in bodies_held */
	uid_t peer_uid;
	int spool_fd; /* body goes to this temp file instead (workspace tars), or -1 */
	uint64_t spooled;
	/* Or (a large file) straight into its sandbox, which is held meanwhile. */
	struct sandbox_upload *upload;
	struct sandbox *upload_sb;
	/* A workspace tar goes straight to its extraction instead
	 * (api_hydrate_start); hydrate_gone once that stopped reading. */
	struct api_hydrate *hydrate;
	bool hydrate_gone;
	char sandbox[16];          /* the id of the sandbox it is about, for the log */
	struct api_stream *stream; /* a streamed exec's, freed with the connection */
	/* A persist answered 200 as its archive began: its method and path,
	 * to log how it ended should it not reach its end (on_completed). */
	char *streamed_method, *streamed_url;
	uint64_t started_us;
	bool file_send_buffer; /* its connection's send buffer is FILE_SEND_BUFFER */
};

/* JSON bodies in memory, all requests together. */
#define MAX_BODIES_HELD (256u << 20)
static size_t bodies_held;

/*
 * The send buffer of a connection while it answers a file with sendfile.
 * Each time the buffer is full, the sending thread sleeps until the client
 * drained most of it, and on a busy host each wake-up waits for a CPU: with
 * the 2 MiB of every connection, `airlock read` of 256 MiB took a median
 * 0.21 s, with 16 MiB 0.15 s (21 reads each, load 10 on 2 cores).  sendfile
 * queues references to the file's pages rather than copies, so the larger
 * buffer costs little memory of its own; it is back to
 * ADMISSION_SEND_BUFFER once the answer is sent.
 */
#define FILE_SEND_BUFFER (16 << 20)

/* What of a body over its limit is read and dropped before the 413. */
#define MAX_DROPPED_BODY (64ULL << 20)

/* Set by api_stop(): requests waiting on a command answer at once. */
static bool api_stopping;
#define WAIT_SLICE_MS 250

struct reply {
	unsigned status;
	char *body; /* owned */
	size_t len;
	const char *content_type;
	bool has_fd;                 /* send fd_len bytes of fd (owned) instead of body */
	struct api_persist *persist; /* or a tar made as it is sent (owned) */
	int fd;
	uint64_t fd_len;
	bool keep_json; /* reply_json keeps the object in json (owned) unprinted */
	cJSON *json;
	int client_fd; /* the request's connection, to notice its client leave; or -1 */
	/* For the request's log line: the command an exec ran, and when it started. */
	char command[256];
	uint64_t exec_started_us;
	bool want_stream;          /* an exec asked for "Upgrade: airlock-exec/1" */
	struct api_stream *stream; /* set: answer 101 and relay (api_stream.c) */

	/* Set: sent as it is (GET /v1/events?follow=1, api_events.c). */
	struct MHD_Response *response;
};

/* ---- replies ------------------------------------------------------------------------------ */

static void reply_json(struct reply *rp, unsigned status, cJSON *o)
{
	rp->status = status;
	if (rp->keep_json) {
		rp->json = o;
		return;
	}
	rp->body = cJSON_PrintUnformatted(o);
	rp->len = rp->body ? strlen(rp->body) : 0;
	rp->content_type = "application/json";
	cJSON_Delete(o);
}

static void reply_error(struct reply *rp, unsigned status, const char *code, const char *msg)
{
	cJSON *o = cJSON_CreateObject();
	cJSON *e = cJSON_AddObjectToObject(o, "error");

	cJSON_AddStringToObject(e, "code", code);
	cJSON_AddStringToObject(e, "message", msg);
	reply_json(rp, status, o);
}

/* Map the one error contract onto HTTP. */
static void reply_al_error(struct reply *rp, const struct al_error *err)
{
	switch (err->code) {
	case EINVAL:
	case ENOTSUP:
	case ELOOP:
	case EISDIR:
	case ENOTDIR:
	case EXDEV:
	case ENAMETOOLONG:
	case ENOTEMPTY:
		reply_error(rp, 400, "invalid_argument", err->msg);
		break;
	case ENOENT:
		reply_error(rp, 404, "not_found", err->msg);
		break;
	case EEXIST:
	case EBUSY:
		reply_error(rp, 409, "conflict", err->msg);
		break;
	case EFBIG:
	case E2BIG:
	case ENOBUFS:
		reply_error(rp, 413, "too_large", err->msg);
		break;
	case EACCES:
	case EPERM:
		reply_error(rp, 403, "forbidden", err->msg);
		break;
	case ESRCH:
	case EPIPE:
	case ECONNREFUSED:
		reply_error(rp, 503, "unavailable", err->msg);
		break;
	case ENOSPC:
	case EDQUOT:
		reply_error(rp, 507, "no_space", err->msg);
		break;
	case EROFS:
		reply_error(rp, 409, "read_only", err->msg);
		break;
	case ENOMEM:
		reply_error(rp, 500, "out_of_memory", err->msg);
		break;
	case EAGAIN:
	case EMFILE:
	case ENFILE:
		reply_error(rp, 429, "busy", err->msg);
		break;
	case ETIMEDOUT:
		reply_error(rp, 504, "timeout", err->msg);
		break;
	case ECANCELED: /* nobody reads it: for the log (nginx's "client closed") */
		reply_error(rp, 499, "cancelled", err->msg);
		break;
	case EIO:
		reply_error(rp, 500, "io_error", err->msg);
		break;
	default:
		reply_error(rp, 500, "internal", err->msg);
		break;
	}
}

/* ---- request helpers ---------------------------------------------------------------------- */

static cJSON *parse_body(struct request *rq, struct reply *rp, bool required)
{
	size_t bad_at = 0;
	cJSON *j;

	if (rq->body.len == 0) {
		if (required)
			reply_error(rp, 400, "invalid_argument", "request body (JSON) is required");
		return required ? NULL : cJSON_CreateObject();
	}
	j = al_json_parse_exact(rq->body.data, rq->body.len, &bad_at);
	if (!j) {
		char msg[96];
		snprintf(msg, sizeof(msg), "request body is not one JSON value (at byte %zu)",
		         bad_at);
		reply_error(rp, 400, "invalid_argument", msg);
		return NULL;
	}
	if (!cJSON_IsObject(j)) {
		cJSON_Delete(j);
		reply_error(rp, 400, "invalid_argument", "request body is not a JSON object");
		return NULL;
	}
	return j;
}

static const char *query(struct MHD_Connection *c, const char *key)
{
	return MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, key);
}

static bool query_bool(struct MHD_Connection *c, const char *key)
{
	const char *v = query(c, key);
	return v && (!strcmp(v, "1") || !strcmp(v, "true") || !strcmp(v, "yes"));
}

static int query_u64(struct MHD_Connection *c, const char *key, uint64_t def, uint64_t *out,
                     struct al_error *err)
{
	const char *v = query(c, key);
	char *end;

	*out = def;
	if (!v)
		return 0;
	errno = 0;
	*out = strtoull(v, &end, 10);
	if (errno || end == v || *end || v[0] == '-')
		return al_error_set(err, EINVAL, "query parameter %s: not a number", key);
	return 0;
}

static int json_u64(const cJSON *o, const char *key, uint64_t def, uint64_t max, uint64_t *out,
                    struct al_error *err)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);

	*out = def;
	if (!v || cJSON_IsNull(v))
		return 0;
	if (!cJSON_IsNumber(v) || v->valuedouble < 0 || v->valuedouble > (double)max)
		return al_error_set(err, EINVAL, "%s must be a number between 0 and %llu", key,
		                    (unsigned long long)max);
	*out = (uint64_t)v->valuedouble;
	return 0;
}

static bool json_bool(const cJSON *o, const char *key)
{
	return cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(o, key));
}

/* ---- handlers ---------------------------------------------------------------------------- */

static void handle_info(struct api_server *s, uid_t client, struct reply *rp)
{
	cJSON *o = cJSON_CreateObject(), *sec, *criu;
	const struct scmp_version *v = seccomp_version();
	size_t n = 0;
	char buf[32];

	cJSON_AddStringToObject(o, "version", AIRLOCK_VERSION);
	cJSON_AddStringToObject(o, "cgroup_mode",
	                        cgroup_mode_name(cgroup_manager_mode(s->ctx->host.cgroups)));
	cJSON_AddBoolToObject(o, "userns", true);
	sec = cJSON_AddObjectToObject(o, "seccomp");
	snprintf(buf, sizeof(buf), "%u.%u.%u", v->major, v->minor, v->micro);
	cJSON_AddStringToObject(sec, "libseccomp", buf);
	criu = cJSON_AddObjectToObject(o, "criu");
	if (s->ctx->host.criu_version)
		cJSON_AddStringToObject(criu, "version", s->ctx->host.criu_version);
	else
		cJSON_AddNullToObject(criu, "version");
	cJSON_AddStringToObject(o, "default_rootfs", s->ctx->host.default_rootfs);
	n = registry_count_visible(&s->ctx->registry, client);
	cJSON_AddNumberToObject(o, "sandboxes", (double)n);
	/* Destroyed, still being torn down (reaper.h). */
	cJSON_AddNumberToObject(o, "reaping",
	                        (double)(s->ctx->reaper ? reaper_pending(s->ctx->reaper) : 0));
	{
		/* What processes' output holds of airlockd's memory, and its bound. */
		cJSON *out = cJSON_AddObjectToObject(o, "output");
		cJSON_AddNumberToObject(out, "held_bytes", (double)output_budget_total_used());
		cJSON_AddNumberToObject(out, "max_bytes", (double)output_budget_total_max());
	}
	if (s->ctx->pool)
		cJSON_AddItemToObject(o, "warm_pool", pool_stats_json(s->ctx->pool));
	reply_json(rp, 200, o);
}

/* Cheap on purpose (a load balancer's or systemd's probe): no lock of the
 * registry or a sandbox, no file read. */
static void handle_health(struct api_server *s, struct reply *rp)
{
	cJSON *o = cJSON_CreateObject();

	cJSON_AddStringToObject(o, "status", "ok");
	cJSON_AddStringToObject(o, "version", AIRLOCK_VERSION);
	cJSON_AddNumberToObject(o, "uptime_seconds",
	                        (double)((al_now_ms() - s->started_ms) / 1000));
	reply_json(rp, 200, o);
}

static void handle_metrics(struct api_server *s, struct reply *rp)
{
	struct al_buf text = {0};

	if (metrics_render(s->ctx, &text) < 0 || al_buf_append(&text, "", 1) < 0) {
		al_buf_free(&text);
		reply_error(rp, 500, "internal", "out of memory");
		return;
	}
	rp->status = 200;
	rp->body = text.data; /* owned by the reply now */
	rp->len = text.len - 1;
	rp->content_type = "text/plain; version=0.0.4; charset=utf-8";
}

/* The filters of a list (?label=K=V, repeatable: all must match; ?state=). */
struct list_filter {
	char **labels; /* "K=V" */
	const char *state;
	struct al_error err;
};

static enum MHD_Result collect_filter(void *cls, enum MHD_ValueKind kind, const char *key,
                                      const char *value)
{
	struct list_filter *f = cls;

	(void)kind;
	if (f->err.code)
		return MHD_NO;
	if (!strcmp(key, "label")) {
		if (!value || !strchr(value, '=') || value[0] == '=')
			al_error_set(&f->err, EINVAL,
			             "label filter must be KEY=VALUE (got \"%.64s\")",
			             value ? value : "");
		else if (al_strv_push(&f->labels, value) < 0)
			al_error_set(&f->err, ENOMEM, "out of memory");
	} else if (!strcmp(key, "state")) {
		if (!value || (strcmp(value, "running") && strcmp(value, "stopped")))
			al_error_set(&f->err, EINVAL, "state filter must be running or stopped");
		f->state = value;
	} else {
		al_error_set(&f->err, EINVAL,
		             "unknown query parameter \"%.64s\" of a list (label, state)", key);
	}
	return f->err.code ? MHD_NO : MHD_YES;
}

static bool matches(const cJSON *summary, const struct list_filter *f)
{
	const cJSON *labels = cJSON_GetObjectItemCaseSensitive(summary, "labels");

	if (f->state &&
	    strcmp(al_json_str(summary, "state") ? al_json_str(summary, "state") : "", f->state))
		return false;
	for (char **l = f->labels; l && *l; l++) {
		_cleanup_free_ char *key = strndup(*l, (size_t)(strchr(*l, '=') - *l));
		const char *have = key ? al_json_str(labels, key) : NULL;
		if (!have || strcmp(have, strchr(*l, '=') + 1))
			return false;
	}
	return true;
}

static void handle_list(struct api_server *s, struct MHD_Connection *c, uid_t client,
                        struct reply *rp)
{
	struct list_filter f = {.err = AL_ERROR_INIT};
	cJSON *o = cJSON_CreateObject(), *a;

	MHD_get_connection_values(c, MHD_GET_ARGUMENT_KIND, collect_filter, &f);
	if (f.err.code) {
		al_strv_freep(&f.labels);
		cJSON_Delete(o);
		reply_al_error(rp, &f.err);
		return;
	}
	a = registry_list_json(&s->ctx->registry, client);
	for (int i = cJSON_GetArraySize(a) - 1; i >= 0; i--)
		if (!matches(cJSON_GetArrayItem(a, i), &f))
			cJSON_DeleteItemFromArray(a, i);
	al_strv_freep(&f.labels);
	if (!o || !cJSON_AddItemToObject(o, "sandboxes", a)) {
		cJSON_Delete(o);
		reply_error(rp, 500, "internal", "out of memory");
		return;
	}
	reply_json(rp, 200, o);
}

static void exec_and_reply(struct daemon *d, struct sandbox *sb, const cJSON *req,
                           struct reply *rp);

/* A terminal's size in an exec or resize request: both or neither; *rows
 * and *cols stay 0 when neither. */
static int json_winsize(const cJSON *o, unsigned *rows, unsigned *cols, struct al_error *err)
{
	uint64_t r = 0, c = 0;

	if (json_u64(o, "rows", 0, 0xffff, &r, err) < 0 ||
	    json_u64(o, "cols", 0, 0xffff, &c, err) < 0)
		return -err->code;
	if (!r != !c)
		return al_error_set(err, EINVAL, "rows and cols go together, each 1 to 65535");
	*rows = (unsigned)r;
	*cols = (unsigned)c;
	return 0;
}

/*
 * A create request with "exec": the command runs in the new sandbox and the
 * answer carries both, {sandbox summary..., "exec": exec result}.  With
 * "remove", a command that finished within its yield takes the sandbox with
 * it (as DELETE ?wait=0 does; "removed": true); one still running leaves it
 * to the client, which polls the process and deletes the sandbox after.  A
 * command that could not be started removes the sandbox and is the answer.
 * One round trip instead of three for `airlock run`.
 */
static void create_exec_and_reply(struct api_server *s, struct sandbox *sb, const cJSON *exec,
                                  bool remove, struct reply *rp)
{
	struct al_error err = AL_ERROR_INIT;
	struct reply erp = {.fd = -1, .keep_json = true, .client_fd = rp->client_fd};
	cJSON *o, *result;
	bool removed = false;

	exec_and_reply(s->ctx, sb, exec, &erp);
	memcpy(rp->command, erp.command, sizeof(rp->command));
	result = erp.json;
	if (erp.status != 200 || !result) {
		/* The sandbox was made for this command only. */
		if (lifecycle_destroy(s->ctx, sb, false, &err) < 0)
			log_warn("%s", err.msg);
		if (result)
			reply_json(rp, erp.status, result); /* the exec's own error */
		else
			reply_error(rp, 500, "internal", "out of memory");
		return;
	}
	if (remove && !cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(result, "running"))) {
		if (lifecycle_destroy(s->ctx, sb, false, &err) < 0)
			log_warn("%s", err.msg);
		else
			removed = true;
	}
	o = sandbox_summary_json(sb);
	if (!o || !cJSON_AddItemToObject(o, "exec", result)) {
		cJSON_Delete(result);
		cJSON_Delete(o);
		reply_error(rp, 500, "internal", "out of memory");
		return;
	}
	/* Killed and on its way out, as after DELETE ?wait=0. */
	if (removed)
		cJSON_ReplaceItemInObjectCaseSensitive(o, "state", cJSON_CreateString("removed"));
	cJSON_AddBoolToObject(o, "removed", removed);
	reply_json(rp, 201, o);
}

/* The request's settings are parsed here, at the edge, into the one typed
 * shape the layers below take. */
static int create(struct api_server *s, const cJSON *req, uid_t client, struct sandbox **out,
                  struct al_error *err)
{
	bool trusted = client == 0;
	struct sandbox_spec_policy policy = {.default_rootfs = s->ctx->host.default_rootfs,
	                                     .trusted = trusted,
	                                     .images_dir = s->ctx->host.images_dir};
	struct sandbox_spec spec = {0};
	int r = sandbox_spec_from_request(req, &policy, &spec, err);

	if (r < 0)
		return r;
	spec.owner = client;
	return lifecycle_create(s->ctx, &spec, out, err);
}

static void handle_create(struct api_server *s, struct request *rq, struct MHD_Connection *c,
                          struct reply *rp)
{
	const char *view = query(c, "view");
	struct al_error err = AL_ERROR_INIT;
	_cleanup_cjson_ cJSON *req = parse_body(rq, rp, false);
	_cleanup_cjson_ cJSON *exec = NULL, *remove = NULL;
	struct sandbox *sb = NULL;
	cJSON *o = NULL;

	if (!req)
		return;
	if (sandbox_spec_check_request(req, &err) < 0) {
		reply_al_error(rp, &err);
		return;
	}
	/* "exec" and "remove" are about the command, not the sandbox: taken
	 * out before the create sees the request (a warm pool's sandbox still
	 * serves it). */
	exec = cJSON_DetachItemFromObjectCaseSensitive(req, "exec");
	remove = cJSON_DetachItemFromObjectCaseSensitive(req, "remove");
	if ((exec && !cJSON_IsObject(exec)) || (remove && !cJSON_IsBool(remove)) ||
	    (cJSON_IsTrue(remove) && !exec)) {
		reply_error(rp, 400, "invalid_argument",
		            "exec must be an exec request object, and remove a boolean that "
		            "comes with an exec");
		return;
	}
	if (cJSON_IsString(cJSON_GetObjectItemCaseSensitive(req, "snapshot"))) {
		const char *id = cJSON_GetObjectItemCaseSensitive(req, "snapshot")->valuestring;
		if (lifecycle_restore(s->ctx, id, req, rq->peer_uid, &sb, &err) < 0) {
			log_warn("create from snapshot: %s", err.msg);
			reply_al_error(rp, &err);
			return;
		}
	} else if (create(s, req, rq->peer_uid, &sb, &err) < 0) {
		log_warn("create: %s", err.msg);
		reply_al_error(rp, &err);
		return;
	}
	if (exec) {
		create_exec_and_reply(s, sb, exec, cJSON_IsTrue(remove), rp);
		sandbox_unref(sb);
		return;
	}
	/* ?view=summary: a client that only needs the id (`airlock run`) is
	 * spared the inspect's ~30 reads of /proc and cgroup files. */
	if ((view && !strcmp(view, "summary")) ||
	    sandbox_inspect_json(&s->ctx->host, sb, &o, &err) < 0)
		o = sandbox_summary_json(sb);
	sandbox_unref(sb);
	reply_json(rp, 201, o);
}

static void handle_inspect(struct api_server *s, struct sandbox *sb, struct reply *rp)
{
	struct al_error err = AL_ERROR_INIT;
	cJSON *o;

	if (sandbox_inspect_json(&s->ctx->host, sb, &o, &err) < 0)
		reply_al_error(rp, &err);
	else
		reply_json(rp, 200, o);
}

static void handle_destroy(struct api_server *s, struct sandbox *sb, struct MHD_Connection *c,
                           struct reply *rp)
{
	struct al_error err = AL_ERROR_INIT;
	cJSON *o;

	/* ?wait=0: answer once killed, teardown in the background (reaper.h). */
	const char *w = query(c, "wait");

	if (lifecycle_destroy(s->ctx, sb, !w || query_bool(c, "wait"), &err) < 0) {
		reply_al_error(rp, &err);
		return;
	}
	o = cJSON_CreateObject();
	cJSON_AddStringToObject(o, "id", sb->id);
	cJSON_AddBoolToObject(o, "deleted", true);
	reply_json(rp, 200, o);
}

static int env_merge(char **base, const cJSON *extra, char ***out, struct al_error *err)
{
	size_t n = 0, m = 0, k = 0;
	const cJSON *it;
	char **v;

	for (char **e = base; e && *e; e++)
		n++;
	cJSON_ArrayForEach(it, extra) m++;
	v = calloc(n + m + 1, sizeof(char *));
	if (!v)
		return al_error_set(err, ENOMEM, "out of memory");
	for (size_t i = 0; i < n; i++) {
		const char *eq = strchr(base[i], '=');
		bool overridden = false;
		cJSON_ArrayForEach(it, extra)
		{
			if (eq && strlen(it->string) == (size_t)(eq - base[i]) &&
			    !strncmp(it->string, base[i], (size_t)(eq - base[i])))
				overridden = true;
		}
		if (!overridden)
			v[k++] = strdup(base[i]);
	}
	cJSON_ArrayForEach(it, extra)
	{
		if (!cJSON_IsString(it) || !it->string[0] || strchr(it->string, '=')) {
			al_strv_freep(&v);
			return al_error_set(err, EINVAL, "env: invalid entry '%s'", it->string);
		}
		if (asprintf(&v[k++], "%s=%s", it->string, it->valuestring) < 0) {
			v[k - 1] = NULL;
			al_strv_freep(&v);
			return al_error_set(err, ENOMEM, "out of memory");
		}
	}
	*out = v;
	return 0;
}

static bool want_base64(const cJSON *req, struct reply *rp)
{
	const cJSON *enc = cJSON_GetObjectItemCaseSensitive(req, "encoding");

	if (!enc || cJSON_IsNull(enc) || (cJSON_IsString(enc) && !strcmp(enc->valuestring, "utf8")))
		return false;
	if (cJSON_IsString(enc) && !strcmp(enc->valuestring, "base64"))
		return true;
	reply_error(rp, 400, "invalid_argument", "encoding must be \"utf8\" or \"base64\"");
	return false;
}

/* True when the peer of a request's connection hung up. */
static bool client_gone(int fd)
{
	struct pollfd pfd = {.fd = fd, .events = POLLRDHUP};

	return fd >= 0 && poll(&pfd, 1, 0) > 0 && (pfd.revents & (POLLRDHUP | POLLHUP | POLLERR));
}

/*
 * Wait for the process up to yield_ms and reply with its result.  For a new
 * exec, yield_ms 0 means "until it ends"; for a poll or stdin write on a
 * known process it means "do not wait".
 */
/*
 * A command that ended by SIGKILL (not airlockd's timeout) while its
 * sandbox had an OOM kill not yet blamed on another: the memory limit
 * killed it, and the answer says so ("oom_killed"), so that a client can
 * say "out of memory" instead of "signal 9".
 */
static void note_oom_kill(struct daemon *d, struct sandbox *sb, cJSON *result)
{
	const cJSON *sig = cJSON_GetObjectItemCaseSensitive(result, "signal");
	uint64_t n;
	bool oom = false;

	if (!d || !cJSON_IsNumber(sig) || sig->valueint != SIGKILL ||
	    cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(result, "timed_out")) ||
	    cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(result, "running")))
		return;
	n = events_oom_kills(d, sb->id);
	pthread_mutex_lock(&sb->lock);
	if (n > sb->oom_kills_reported) {
		sb->oom_kills_reported = n;
		oom = true;
	}
	pthread_mutex_unlock(&sb->lock);
	if (oom) {
		cJSON_AddTrueToObject(result, "oom_killed");
		cJSON_AddNumberToObject(result, "memory_limit_bytes",
		                        (double)sb->spec.limits.memory_bytes);
	}
}

static void reply_process(struct daemon *d, struct sandbox *sb, struct al_process *p,
                          const char *known_id, uint64_t yield_ms, bool base64, struct reply *rp)
{
	char id[16];
	cJSON *o;
	int r;

	if (yield_ms || !known_id) {
		uint64_t deadline = yield_ms ? al_now_ms() + yield_ms : 0;
		/* In slices, so that an exec waiting for its command's end lets a
		 * stopping airlockd go: it is answered as still running. */
		for (;;) {
			uint64_t slice = al_now_ms() + WAIT_SLICE_MS;
			process_wait(p, deadline && deadline < slice ? deadline : slice);
			if (process_ended(p) || process_output_full(p) ||
			    (deadline && al_now_ms() >= deadline) ||
			    __atomic_load_n(&api_stopping, __ATOMIC_SEQ_CST))
				break;
			/* A command whose client left waits for nobody: without a
			 * process id, nobody could collect it either. */
			if (!known_id && !yield_ms && client_gone(rp->client_fd)) {
				struct al_error err = AL_ERROR_INIT;
				process_kill(p, SIGKILL, &err);
				log_info(
				    "sandbox %s: client left a waiting exec; its command is killed",
				    sb->id);
				return;
			}
		}
	}
	o = process_take_result(p, base64);
	note_oom_kill(d, sb, o);
	if (cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(o, "running"))) {
		if (known_id) {
			snprintf(id, sizeof(id), "%s", known_id);
		} else if ((r = sandbox_add_process(sb, p, id, sizeof(id))) < 0) {
			struct al_error err = AL_ERROR_INIT;
			char msg[160];
			process_kill(p, SIGKILL, &err);
			cJSON_Delete(o);
			if (r != -EAGAIN) {
				reply_error(rp, 503, "unavailable",
				            "the sandbox is being destroyed");
				return;
			}
			snprintf(
			    msg, sizeof(msg),
			    "sandbox %s keeps %d processes for clients already: collect or kill "
			    "some (the command was killed)",
			    sb->id, SANDBOX_MAX_PROCESSES);
			reply_error(rp, 429, "busy", msg);
			return;
		}
		/* From here it outlives airlockd (process.h). */
		if (!known_id)
			process_hold(p, (unsigned)strtoul(id + 1, NULL, 10), rp->command);
		cJSON_AddStringToObject(o, "process_id", id);
	} else if (known_id) {
		/* Final result delivered: forget the process. */
		struct al_process *q = sandbox_take_process(sb, known_id, true);
		process_release(q);
		process_unref(q);
	}
	reply_json(rp, 200, o);
}

/* "user": "UID" or "UID:GID", numeric (the sandbox's ids, 0..65535).  A
 * uid alone gets the image user's gid when it is the image's uid, else 0
 * (as docker does for a uid its image's /etc/passwd does not name). */
static int parse_exec_user(const cJSON *v, uid_t *uid, gid_t *gid, struct al_error *err)
{
	unsigned long u, g;
	char *end = NULL;
	const char *s;

	if (!v || cJSON_IsNull(v))
		return 0;
	if (!cJSON_IsString(v) || !v->valuestring[0])
		return al_error_set(err, EINVAL, "user must be a string \"UID\" or \"UID:GID\"");
	s = v->valuestring;
	errno = 0;
	u = strtoul(s, &end, 10);
	g = 0;
	if (!errno && end != s && *end == ':') {
		const char *gs = end + 1;
		g = strtoul(gs, &end, 10);
		if (end == gs)
			end = (char *)"x";
	}
	if (errno || end == s || *end || s[0] == '-' || u > 65535 || g > 65535)
		return al_error_set(err, EINVAL,
		                    "user '%s': expected UID or UID:GID, numbers 0..65535", s);
	if (u != *uid || strchr(s, ':'))
		*gid = (gid_t)g;
	*uid = (uid_t)u;
	return 0;
}

/* The keys of an exec request (also the "exec" of a create request): the
 * one list a new exec option is added to. */
static const struct al_json_key exec_keys[] = {
    {"argv", AL_JSON_ARRAY | AL_JSON_NULL},
    {"command", AL_JSON_STRING | AL_JSON_NULL},
    {"env", AL_JSON_OBJECT | AL_JSON_NULL},
    {"cwd", AL_JSON_STRING | AL_JSON_NULL},
    {"stdin", AL_JSON_STRING | AL_JSON_NULL},
    {"stdin_base64", AL_JSON_STRING | AL_JSON_NULL},
    {"keep_stdin_open", AL_JSON_BOOL | AL_JSON_NULL},
    {"timeout_ms", AL_JSON_NUMBER | AL_JSON_NULL},
    {"yield_ms", AL_JSON_NUMBER | AL_JSON_NULL},
    {"max_output_bytes", AL_JSON_NUMBER | AL_JSON_NULL},
    {"backpressure", AL_JSON_BOOL | AL_JSON_NULL},
    {"encoding", AL_JSON_STRING | AL_JSON_NULL},
    {"user", AL_JSON_STRING | AL_JSON_NULL},
    {"tty", AL_JSON_BOOL | AL_JSON_NULL},
    {"rows", AL_JSON_NUMBER | AL_JSON_NULL},
    {"cols", AL_JSON_NUMBER | AL_JSON_NULL},
};

/* The keys of a write to a process's stdin. */
static const struct al_json_key stdin_keys[] = {
    {"data", AL_JSON_STRING | AL_JSON_NULL},     {"data_base64", AL_JSON_STRING | AL_JSON_NULL},
    {"close", AL_JSON_BOOL | AL_JSON_NULL},      {"yield_ms", AL_JSON_NUMBER | AL_JSON_NULL},
    {"encoding", AL_JSON_STRING | AL_JSON_NULL},
};

/* argv as one line for the log, bounded. */
static void command_text(char *const *argv, char *buf, size_t len)
{
	size_t used = 0;

	buf[0] = '\0';
	for (char *const *a = argv; a && *a && used + 1 < len; a++) {
		int w = snprintf(buf + used, len - used, "%s%s", a == argv ? "" : " ", *a);
		if (w < 0)
			break;
		used += (size_t)w;
	}
}

/* Start the command an exec request (req) describes and reply with its result. */
static void exec_and_reply(struct daemon *d, struct sandbox *sb, const cJSON *req, struct reply *rp)
{
	struct al_error err = AL_ERROR_INIT;
	_cleanup_strv_ char **argv = NULL, **env = NULL;
	_cleanup_free_ char *stdin_buf = NULL, *cwd_buf = NULL;
	struct exec_request x = {0};
	struct al_process *p = NULL;
	uint64_t yield_ms, max_out;
	const cJSON *v, *it;
	size_t n = 0, i = 0;
	bool base64;

	if (al_json_check(req, exec_keys, "exec request", &err) < 0) {
		reply_al_error(rp, &err);
		return;
	}
	base64 = want_base64(req, rp);
	if (rp->status)
		return;
	if ((v = cJSON_GetObjectItemCaseSensitive(req, "argv")) && !cJSON_IsNull(v)) {
		if (!cJSON_IsArray(v) || cJSON_GetArraySize(v) == 0) {
			reply_error(rp, 400, "invalid_argument", "argv must be a non-empty array");
			return;
		}
		n = (size_t)cJSON_GetArraySize(v);
		argv = calloc(n + 1, sizeof(char *));
		if (!argv) {
			reply_error(rp, 500, "internal", "out of memory");
			return;
		}
		cJSON_ArrayForEach(it, v)
		{
			if (!cJSON_IsString(it)) {
				reply_error(rp, 400, "invalid_argument", "argv must hold strings");
				return;
			}
			if (!(argv[i++] = strdup(it->valuestring))) {
				reply_error(rp, 500, "internal", "out of memory");
				return;
			}
		}
		if (!argv[0][0]) {
			reply_error(rp, 400, "invalid_argument", "argv[0] is empty");
			return;
		}
	} else if ((v = cJSON_GetObjectItemCaseSensitive(req, "command")) && cJSON_IsString(v)) {
		argv = calloc(4, sizeof(char *));
		if (!argv || !(argv[0] = strdup("/bin/sh")) || !(argv[1] = strdup("-c")) ||
		    !(argv[2] = strdup(v->valuestring))) {
			reply_error(rp, 500, "internal", "out of memory");
			return;
		}
	} else {
		reply_error(rp, 400, "invalid_argument",
		            "one of argv (array) or command (string) is required");
		return;
	}
	if (env_merge(sb->spec.env, cJSON_GetObjectItemCaseSensitive(req, "env"), &env, &err) < 0) {
		reply_al_error(rp, &err);
		return;
	}
	v = cJSON_GetObjectItemCaseSensitive(req, "cwd");
	if (v && !cJSON_IsNull(v) && (!cJSON_IsString(v) || !v->valuestring[0])) {
		reply_error(rp, 400, "invalid_argument", "cwd must be a non-empty string");
		return;
	}
	if (cJSON_IsString(v) && v->valuestring[0] != '/') {
		if (asprintf(&cwd_buf, "%s/%s", sb->spec.workspace, v->valuestring) < 0)
			cwd_buf = NULL;
		x.cwd = cwd_buf;
	} else if (cJSON_IsString(v)) {
		x.cwd = v->valuestring;
	} else {
		/* An image's WorkingDir, else the workspace. */
		x.cwd = sb->spec.cwd ? sb->spec.cwd : sb->spec.workspace;
	}
	x.uid = sb->spec.uid;
	x.gid = sb->spec.gid;
	if (parse_exec_user(cJSON_GetObjectItemCaseSensitive(req, "user"), &x.uid, &x.gid, &err) <
	    0) {
		reply_al_error(rp, &err);
		return;
	}
	if ((v = cJSON_GetObjectItemCaseSensitive(req, "stdin_base64")) && cJSON_IsString(v)) {
		if (al_base64_decode(v->valuestring, &stdin_buf, &x.stdin_len, &err) < 0) {
			al_error_prefix(&err, "stdin_base64");
			reply_al_error(rp, &err);
			return;
		}
		x.stdin_data = stdin_buf;
	} else if ((v = cJSON_GetObjectItemCaseSensitive(req, "stdin")) && cJSON_IsString(v)) {
		x.stdin_data = v->valuestring;
		x.stdin_len = strlen(v->valuestring);
	}
	/* A streamed exec's stdin is the connection's: open until it says so. */
	x.keep_stdin_open = json_bool(req, "keep_stdin_open") || rp->want_stream;
	v = cJSON_GetObjectItemCaseSensitive(req, "tty");
	if (v && !cJSON_IsBool(v) && !cJSON_IsNull(v)) {
		reply_error(rp, 400, "invalid_argument", "tty must be a boolean");
		return;
	}
	x.tty = cJSON_IsTrue(v);
	if (json_winsize(req, &x.rows, &x.cols, &err) < 0) {
		reply_al_error(rp, &err);
		return;
	}
	if (x.rows && !x.tty) {
		reply_error(rp, 400, "invalid_argument", "rows and cols are for a tty exec");
		return;
	}
	if (json_u64(req, "timeout_ms", 0, 86400000ULL * 7, &x.timeout_ms, &err) < 0 ||
	    json_u64(req, "yield_ms", 0, 3600000, &yield_ms, &err) < 0 ||
	    json_u64(req, "max_output_bytes", DEFAULT_MAX_OUTPUT, MAX_OUTPUT_CAP, &max_out, &err) <
	        0) {
		reply_al_error(rp, &err);
		return;
	}
	x.max_output = (size_t)max_out;
	/* A stream's output goes out as bytes, not JSON text: counted as bytes. */
	x.output_base64 = base64 || rp->want_stream;
	x.backpressure = json_bool(req, "backpressure");
	/* A stream that may hold nothing would never be read again. */
	if (x.backpressure && x.max_output < BACKPRESSURE_MIN_OUTPUT) {
		reply_error(rp, 400, "invalid_argument",
		            "backpressure needs max_output_bytes of at least 65536");
		return;
	}
	if (x.backpressure && !base64 && !rp->want_stream) {
		reply_error(
		    rp, 400, "invalid_argument",
		    "backpressure needs \"encoding\": \"base64\" (output is held as bytes)");
		return;
	}
	x.argv = argv;
	x.env = env;
	/* A stream on pipes is relayed by splice, never read into airlockd. */
	x.direct = rp->want_stream && !x.tty && x.stdin_len == 0;
	if (!x.cwd) {
		reply_error(rp, 500, "internal", "out of memory");
		return;
	}
	command_text(argv, rp->command, sizeof(rp->command));
	rp->exec_started_us = al_now_ns() / 1000;
	if (process_start(sb, &x, &p, &err) < 0) {
		reply_al_error(rp, &err);
		return;
	}
	if (rp->want_stream) {
		rp->stream = api_stream_new(sb, p, &api_stopping);
		if (rp->stream) {
			rp->status = MHD_HTTP_SWITCHING_PROTOCOLS;
		} else {
			process_kill(p, SIGKILL, &err);
			reply_error(rp, 500, "out_of_memory", "out of memory");
		}
		process_unref(p);
		return;
	}
	reply_process(d, sb, p, NULL, yield_ms, base64, rp);
	process_unref(p);
	metrics_count_exec(al_now_ns() / 1000 - rp->exec_started_us);
}

/*
 * "Upgrade: airlock-exec/1" asks for a streamed exec (api_stream.h): any
 * other protocol is refused rather than answered as a plain exec, which
 * the client would wait on for a 101 that never comes.
 */
static void handle_exec(struct daemon *d, struct sandbox *sb, struct MHD_Connection *c,
                        struct request *rq, struct reply *rp)
{
	const char *upgrade = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Upgrade");
	_cleanup_cjson_ cJSON *req = NULL;

	if (upgrade && strcasecmp(upgrade, EXECSTREAM_PROTOCOL)) {
		reply_error(rp, 400, "invalid_argument",
		            "an exec upgrades only to " EXECSTREAM_PROTOCOL);
		return;
	}
	rp->want_stream = upgrade != NULL;
	req = parse_body(rq, rp, true);
	if (req)
		exec_and_reply(d, sb, req, rp);
}

static void handle_process(struct daemon *d, struct sandbox *sb, const char *pid, const char *sub,
                           struct MHD_Connection *c, const char *method, struct request *rq,
                           struct reply *rp)
{
	struct al_error err = AL_ERROR_INIT;
	struct al_process *p = sandbox_take_process(sb, pid, false);
	uint64_t yield_ms = 0;

	if (!p) {
		reply_error(rp, 404, "not_found",
		            "no such process (one that ended is forgotten once its result was "
		            "taken, or 10 minutes after its end if it never was)");
		return;
	}
	if (!sub && !strcmp(method, "GET")) {
		const char *enc = query(c, "encoding");
		if (query_u64(c, "yield_ms", 0, &yield_ms, &err) < 0)
			reply_al_error(rp, &err);
		else
			reply_process(d, sb, p, pid, yield_ms, enc && !strcmp(enc, "base64"), rp);
	} else if (!sub && !strcmp(method, "DELETE")) {
		const char *name = query(c, "signal");
		int sig = SIGKILL;
		if (name && !strcmp(name, "TERM"))
			sig = SIGTERM;
		else if (name && !strcmp(name, "INT"))
			sig = SIGINT;
		else if (name && !strcmp(name, "HUP"))
			sig = SIGHUP;
		else if (name && strcmp(name, "KILL"))
			sig = 0;
		if (!sig) {
			reply_error(rp, 400, "invalid_argument",
			            "signal must be KILL, TERM, INT or HUP");
		} else if (process_kill(p, sig, &err) < 0) {
			reply_al_error(rp, &err);
		} else {
			cJSON *o = cJSON_CreateObject();
			cJSON_AddBoolToObject(o, "killed", true);
			reply_json(rp, 200, o);
		}
	} else if (sub && !strcmp(sub, "resize") && !strcmp(method, "POST")) {
		_cleanup_cjson_ cJSON *req = parse_body(rq, rp, true);
		unsigned rows = 0, cols = 0;

		if (req && (json_winsize(req, &rows, &cols, &err) < 0 ||
		            (!rows && al_error_set(&err, EINVAL, "rows and cols are required")) ||
		            process_resize(p, rows, cols, &err) < 0)) {
			reply_al_error(rp, &err);
		} else if (req) {
			cJSON *o = cJSON_CreateObject();
			cJSON_AddNumberToObject(o, "rows", rows);
			cJSON_AddNumberToObject(o, "cols", cols);
			reply_json(rp, 200, o);
		}
	} else if (sub && !strcmp(sub, "stdin") && !strcmp(method, "POST")) {
		_cleanup_cjson_ cJSON *req = parse_body(rq, rp, true);
		_cleanup_free_ char *data = NULL;
		const cJSON *v;
		size_t len = 0;
		bool base64;

		if (req && al_json_check(req, stdin_keys, "stdin request", &err) < 0)
			reply_al_error(rp, &err);
		else if (req) {
			base64 = want_base64(req, rp);
			if ((v = cJSON_GetObjectItemCaseSensitive(req, "data_base64")) &&
			    cJSON_IsString(v)) {
				if (al_base64_decode(v->valuestring, &data, &len, &err) < 0)
					reply_al_error(rp, &err);
			} else if ((v = cJSON_GetObjectItemCaseSensitive(req, "data")) &&
			           cJSON_IsString(v)) {
				data = strdup(v->valuestring);
				len = strlen(v->valuestring);
			}
			if (!rp->status &&
			    json_u64(req, "yield_ms", 0, 3600000, &yield_ms, &err) < 0)
				reply_al_error(rp, &err);
			if (!rp->status &&
			    process_write_stdin(p, data, len, json_bool(req, "close"), &err) < 0)
				reply_al_error(rp, &err);
			if (!rp->status)
				reply_process(d, sb, p, pid, yield_ms, base64, rp);
		}
	} else {
		reply_error(rp, 405, "method_not_allowed", "method not allowed on a process");
	}
	process_unref(p);
}

/* ?mode= of a file write: octal, 0644 when absent; false when malformed. */
static bool file_mode(struct MHD_Connection *c, mode_t *mode)
{
	const char *mode_s = query(c, "mode");
	unsigned long m = 0644;
	char *end;

	if (mode_s) {
		m = strtoul(mode_s, &end, 8);
		if (*end || end == mode_s || m > 07777)
			return false;
	}
	*mode = (mode_t)m;
	return true;
}

static void handle_files(struct sandbox *sb, bool dirs, struct MHD_Connection *c,
                         const char *method, struct request *rq, struct reply *rp)
{
	struct al_error err = AL_ERROR_INIT;
	const char *path = query(c, "path");
	cJSON *o = NULL;
	int r;

	if (!path || !path[0]) {
		reply_error(rp, 400, "invalid_argument", "query parameter path is required");
		return;
	}
	if (!dirs && !strcmp(method, "GET")) {
		char *data = NULL;
		size_t len = 0;
		uint64_t fd_len = 0;
		int fd = -1;
		r = sandbox_file_open_read(sb, path, MAX_FILE_BODY, &fd, &fd_len, &data, &len,
		                           &err);
		if (r < 0) {
			reply_al_error(rp, &err);
			return;
		}
		rp->status = 200;
		rp->content_type = "application/octet-stream";
		if (fd >= 0) {
			/* Sent by the kernel, at any size (sendfile). */
			if (fd_len > ADMISSION_SEND_BUFFER && rp->client_fd >= 0 &&
			    setsockopt(rp->client_fd, SOL_SOCKET, SO_SNDBUFFORCE,
			               &(int){FILE_SEND_BUFFER}, sizeof(int)) == 0)
				rq->file_send_buffer = true;
			rp->has_fd = true;
			rp->fd = fd;
			rp->fd_len = fd_len;
			return;
		}
		rp->body = data;
		rp->len = len;
		return;
	}
	if (!dirs && !strcmp(method, "PUT")) {
		mode_t mode;
		if (!file_mode(c, &mode)) {
			reply_error(rp, 400, "invalid_argument", "mode must be octal, e.g. 0644");
			return;
		}
		if (rq->upload && rq->upload_sb == sb)
			r = sandbox_upload_end(rq->upload, &err);
		else /* The spooled upload, copied from its file by the kernel. */
			r = sandbox_file_write(sb, path, rq->spool_fd, rq->spooled, mode,
			                       query_bool(c, "parents"), &err);
		if (r < 0) {
			reply_al_error(rp, &err);
			return;
		}
		o = cJSON_CreateObject();
		cJSON_AddStringToObject(o, "path", path);
		cJSON_AddNumberToObject(o, "size", (double)rq->spooled);
		reply_json(rp, 200, o);
		return;
	}
	if (!dirs && !strcmp(method, "DELETE")) {
		r = sandbox_file_remove(sb, path, query_bool(c, "recursive"), &err);
		if (r < 0) {
			reply_al_error(rp, &err);
			return;
		}
		o = cJSON_CreateObject();
		cJSON_AddBoolToObject(o, "deleted", true);
		reply_json(rp, 200, o);
		return;
	}
	if (dirs && !strcmp(method, "GET")) {
		r = sandbox_dir_list(sb, path, &o, &err);
		if (r < 0)
			reply_al_error(rp, &err);
		else
			reply_json(rp, 200, o);
		return;
	}
	if (dirs && !strcmp(method, "POST")) {
		r = sandbox_dir_make(sb, path, query_bool(c, "parents"), &err);
		if (r < 0) {
			reply_al_error(rp, &err);
			return;
		}
		o = cJSON_CreateObject();
		cJSON_AddStringToObject(o, "path", path);
		reply_json(rp, 201, o);
		return;
	}
	reply_error(rp, 405, "method_not_allowed", "method not allowed here");
}

static void handle_events(struct api_server *s, struct sandbox *sb, struct MHD_Connection *c,
                          const char *method, struct reply *rp)
{
	struct al_error err = AL_ERROR_INIT;
	uint64_t since = 0;
	cJSON *o;

	if (strcmp(method, "GET")) {
		reply_error(rp, 405, "method_not_allowed", "use GET");
		return;
	}
	if (query_u64(c, "since", 0, &since, &err) < 0 ||
	    events_json(s->ctx, sb, since, &o, &err) < 0)
		reply_al_error(rp, &err);
	else
		reply_json(rp, 200, o);
}

/* ---- workspace archives and snapshots (api_snapshots.c) ------------------------------------- */

static void reply_out(struct reply *rp, int r, struct api_out *out, const struct al_error *err)
{
	if (r < 0) {
		if (out->fd >= 0)
			close(out->fd);
		api_persist_free(out->persist);
		cJSON_Delete(out->json);
		reply_al_error(rp, err);
	} else if (out->persist) {
		rp->status = out->status;
		rp->persist = out->persist;
		rp->content_type = "application/x-tar";
	} else if (out->fd >= 0) {
		rp->status = out->status;
		rp->has_fd = true;
		rp->fd = out->fd;
		rp->fd_len = out->fd_len;
		rp->content_type = "application/x-tar";
	} else {
		reply_json(rp, out->status, out->json);
	}
}

static void handle_workspace(struct api_server *s, struct sandbox *sb, struct MHD_Connection *c,
                             const char *method, struct request *rq, struct reply *rp)
{
	struct al_error err = AL_ERROR_INIT;
	struct api_out out = API_OUT_INIT;
	struct tar_limits lim;
	int r;

	tar_limits_default(&lim);
	if (!strcmp(method, "GET")) {
		r = api_workspace_get(s->ctx, sb, rp->client_fd, &out, &err);
	} else if (!strcmp(method, "PUT")) {
		r = query_u64(c, "max_input_bytes", lim.max_input_bytes, &lim.max_input_bytes,
		              &err);
		if (r == 0)
			r = query_u64(c, "max_extracted_bytes", lim.max_extracted_bytes,
			              &lim.max_extracted_bytes, &err);
		if (r == 0)
			r = query_u64(c, "max_members", lim.max_members, &lim.max_members, &err);
		if (r == 0 && rq->hydrate)
			r = api_hydrate_finish(rq->hydrate, rq->spooled, &out, &err);
		else if (r == 0)
			r = api_workspace_put(s->ctx, sb, rq->spool_fd, &lim, &out, &err);
	} else {
		reply_error(rp, 405, "method_not_allowed", "use GET or PUT");
		return;
	}
	reply_out(rp, r, &out, &err);
}

/* The keys of a request that mounts a bucket into a running sandbox. */
static const struct al_json_key mount_keys[] = {
    {"entry", AL_JSON_OBJECT},
    {"credentials", AL_JSON_OBJECT | AL_JSON_NULL},
};

static void wipe_json_strings(cJSON *j)
{
	cJSON *c;

	if (cJSON_IsString(j) && j->valuestring)
		explicit_bzero(j->valuestring, strlen(j->valuestring));
	cJSON_ArrayForEach(c, j)
	{
		wipe_json_strings(c);
	}
}

static void wipe_cjsonp(cJSON **j)
{
	if (*j)
		wipe_json_strings(*j);
	cJSON_Delete(*j);
}

/*
 * POST /v1/sandboxes/{id}/mounts {entry, credentials}: one more bucket mount,
 * made on the host as the manifest's are (a hosted service's "mount a bucket
 * now", as airlock-gateway serves it); the keys are used and forgotten.
 */
static void handle_mount_add(struct sandbox *sb, struct request *rq, struct reply *rp)
{
	struct al_error err = AL_ERROR_INIT;
	_cleanup_(wipe_cjsonp) cJSON *req = parse_body(rq, rp, true);
	_cleanup_free_ char *path = NULL;
	cJSON *out;

	/* Parsed: the body held the keys, no copy of it stays behind. */
	if (rq->body.data)
		explicit_bzero(rq->body.data, rq->body.len);
	if (!req)
		return;
	if (al_json_check(req, mount_keys, "mount request", &err) < 0 ||
	    bucket_mounts_add(sb, cJSON_GetObjectItemCaseSensitive(req, "entry"),
	                      cJSON_GetObjectItemCaseSensitive(req, "credentials"), &path,
	                      &err) < 0) {
		reply_al_error(rp, &err);
		return;
	}
	log_info("sandbox %s: bucket mounted at %s", sb->id, path);
	out = cJSON_CreateObject();
	if (out)
		cJSON_AddStringToObject(out, "path", path);
	reply_json(rp, 201, out);
}

/* DELETE /v1/sandboxes/{id}/mounts?path=P: the bucket mounted at P, unmounted. */
static void handle_mount_remove(struct sandbox *sb, struct MHD_Connection *c, struct reply *rp)
{
	struct al_error err = AL_ERROR_INIT;
	const char *path = query(c, "path");
	cJSON *out;

	if (!path || !*path) {
		reply_error(rp, 400, "invalid_argument", "query parameter path is required");
		return;
	}
	if (bucket_mounts_remove_one(sb, path, &err) < 0) {
		reply_al_error(rp, &err);
		return;
	}
	log_info("sandbox %s: bucket at %s unmounted", sb->id, path);
	out = cJSON_CreateObject();
	if (out) {
		cJSON_AddStringToObject(out, "path", path);
		cJSON_AddTrueToObject(out, "unmounted");
	}
	reply_json(rp, 200, out);
}

static void handle_snapshot_create(struct api_server *s, struct sandbox *sb, struct request *rq,
                                   struct reply *rp)
{
	struct al_error err = AL_ERROR_INIT;
	struct api_out out = API_OUT_INIT;
	_cleanup_cjson_ cJSON *req = parse_body(rq, rp, false);

	if (!req)
		return;
	reply_out(rp, api_snapshot_create(s->ctx, sb, req, rp->client_fd, &out, &err), &out, &err);
}

static void handle_snapshots(struct api_server *s, char **seg, size_t n, const char *method,
                             struct request *rq, struct reply *rp)
{
	struct al_error err = AL_ERROR_INIT;
	struct api_out out = API_OUT_INIT;
	uid_t client = rq->peer_uid;

	if (n == 3 && !strcmp(seg[2], "import")) {
		if (strcmp(method, "POST"))
			reply_error(rp, 405, "method_not_allowed", "use POST");
		else
			reply_out(rp, api_snapshot_import(s->ctx, rq->spool_fd, client, &out, &err),
			          &out, &err);
	} else if (n == 4 && !strcmp(seg[3], "export")) {
		if (strcmp(method, "GET"))
			reply_error(rp, 405, "method_not_allowed", "use GET");
		else
			reply_out(rp, api_snapshot_export(s->ctx, seg[2], client, &out, &err), &out,
			          &err);
	} else if (n == 2 && !strcmp(method, "GET"))
		reply_out(rp, api_snapshots_list(s->ctx, client, &out, &err), &out, &err);
	else if (n == 3 && !strcmp(method, "DELETE"))
		reply_out(rp, api_snapshot_delete(s->ctx, seg[2], client, &out, &err), &out, &err);
	else if (n == 2 || n == 3)
		reply_error(rp, 405, "method_not_allowed", n == 2 ? "use GET" : "use DELETE");
	else
		reply_error(rp, 404, "not_found", "unknown path");
}

/* ---- images -------------------------------------------------------------------------------- */

/* True when some sandbox (running, pooled or being made) uses image name. */
static bool image_in_use(struct api_server *s, const char *name, char id_out[64])
{
	_cleanup_strv_ char **ids = registry_ids(&s->ctx->registry);
	bool used = false;

	for (char **id = ids; id && *id && !used; id++) {
		struct sandbox *sb = registry_get(&s->ctx->registry, *id);
		if (!sb)
			continue;
		if (sb->spec.image && !strcmp(sb->spec.image, name)) {
			used = true;
			snprintf(id_out, 64, "%s", *id);
		}
		sandbox_unref(sb);
	}
	return used;
}

static void handle_image_import(struct api_server *s, struct MHD_Connection *c, struct request *rq,
                                struct reply *rp)
{
	struct al_error err = AL_ERROR_INIT;
	const char *name = query(c, "name");
	struct tar_limits lim;
	cJSON *rec = NULL;

	tar_limits_default(&lim);
	lim.max_input_bytes = IMAGE_MAX_INPUT;
	lim.max_extracted_bytes = IMAGE_MAX_EXTRACTED;
	lim.max_members = IMAGE_MAX_MEMBERS;
	if (rq->peer_uid != 0) {
		reply_error(rp, 403, "forbidden", "only root may import images");
		return;
	}
	if (!name) {
		reply_error(rp, 400, "invalid_argument", "?name=NAME is required");
		return;
	}
	if (query_u64(c, "max_extracted_bytes", lim.max_extracted_bytes, &lim.max_extracted_bytes,
	              &err) < 0 ||
	    query_u64(c, "max_members", lim.max_members, &lim.max_members, &err) < 0) {
		reply_al_error(rp, &err);
		return;
	}
	if (rq->spool_fd < 0 || lseek(rq->spool_fd, 0, SEEK_SET) != 0) {
		reply_error(rp, 500, "internal", "no spooled archive");
		return;
	}
	if (image_import(s->ctx->images, name, rq->spool_fd, &lim, &rec, &err) < 0) {
		log_warn("%s", err.msg);
		if (err.code == EEXIST)
			reply_error(rp, 409, "conflict", err.msg);
		else
			reply_al_error(rp, &err);
		return;
	}
	log_info("imported image %s (%s)", name, al_json_str(rec, "id"));
	reply_json(rp, 201, rec);
}

static void handle_images(struct api_server *s, char **seg, size_t n, struct MHD_Connection *c,
                          const char *method, struct request *rq, struct reply *rp)
{
	struct al_error err = AL_ERROR_INIT;
	char user[64];
	unsigned removed = 0;
	cJSON *o;

	if (n == 2 && !strcmp(method, "GET")) {
		o = cJSON_CreateObject();
		cJSON_AddItemToObject(o, "images", image_list_json(s->ctx->images));
		reply_json(rp, 200, o);
	} else if (n == 2 && !strcmp(method, "POST")) {
		handle_image_import(s, c, rq, rp);
	} else if (n == 3 && !strcmp(method, "GET")) {
		if (image_json(s->ctx->images, seg[2], &o, &err) < 0)
			reply_al_error(rp, &err);
		else
			reply_json(rp, 200, o);
	} else if (n == 3 && !strcmp(method, "DELETE")) {
		char msg[256];
		if (rq->peer_uid != 0) {
			reply_error(rp, 403, "forbidden", "only root may remove images");
			return;
		}
		if (!image_name_valid(seg[2])) {
			reply_error(rp, 400, "invalid_argument", "invalid image name");
			return;
		}
		if (image_in_use(s, seg[2], user)) {
			snprintf(msg, sizeof(msg),
			         "image '%s' is in use by sandbox %s: remove it first", seg[2],
			         user);
			reply_error(rp, 409, "conflict", msg);
			return;
		}
		if (image_remove(s->ctx->images, seg[2], &removed, &err) < 0) {
			reply_al_error(rp, &err);
			return;
		}
		o = cJSON_CreateObject();
		cJSON_AddStringToObject(o, "removed", seg[2]);
		cJSON_AddNumberToObject(o, "layers_removed", removed);
		reply_json(rp, 200, o);
	} else if (n == 2 || n == 3) {
		reply_error(rp, 405, "method_not_allowed",
		            n == 2 ? "use GET or POST" : "use GET or DELETE");
	} else {
		reply_error(rp, 404, "not_found", "unknown path");
	}
}

/* ---- routing ------------------------------------------------------------------------------- */

/* Split "/v1/sandboxes/ID/processes/PID/stdin" into at most 6 segments after /v1. */
static size_t split_path(char *url, char **seg, size_t max)
{
	size_t n = 0;
	char *save = NULL;

	for (char *t = strtok_r(url, "/", &save); t && n < max; t = strtok_r(NULL, "/", &save))
		seg[n++] = t;
	return n;
}

/* GET /v1/events[?since=CURSOR][&follow=1] (api_events.c). */
static void handle_all_events(struct api_server *s, struct MHD_Connection *c, const char *method,
                              const struct request *rq, struct reply *rp)
{
	struct al_error err = AL_ERROR_INIT;
	bool follow = query_bool(c, "follow");
	uint64_t since;
	cJSON *o = NULL;
	int r;

	if (strcmp(method, "GET")) {
		reply_error(rp, 405, "method_not_allowed", "use GET");
		return;
	}
	/* A follow starts with what comes next unless told where. */
	if (query_u64(c, "since", follow ? UINT64_MAX : 0, &since, &err) < 0) {
		reply_al_error(rp, &err);
		return;
	}
	if (follow) {
		rp->response = api_events_follow(s->ctx, rq->peer_uid, since, &api_stopping);
		rp->status = 200;
		if (!rp->response)
			reply_error(rp, 500, "internal", "out of memory");
		return;
	}
	r = api_events_list(s->ctx, rq->peer_uid, since, &o);
	if (r < 0)
		reply_error(rp, r == -EAGAIN ? 503 : 500, r == -EAGAIN ? "unavailable" : "internal",
		            r == -EAGAIN ? "airlockd is stopping" : "out of memory");
	else
		reply_json(rp, 200, o);
}

static void route(struct api_server *s, struct MHD_Connection *c, const char *url,
                  const char *method, struct request *rq, struct reply *rp)
{
	_cleanup_free_ char *copy = strdup(url);
	char *seg[8] = {0};
	struct sandbox *sb;
	size_t n;

	if (!copy) {
		reply_error(rp, 500, "internal", "out of memory");
		return;
	}
	n = split_path(copy, seg, 8);
	if (n < 2 || strcmp(seg[0], "v1")) {
		reply_error(rp, 404, "not_found", "unknown path");
		return;
	}
	if (n == 2 &&
	    (!strcmp(seg[1], "info") || !strcmp(seg[1], "health") || !strcmp(seg[1], "metrics"))) {
		if (strcmp(method, "GET"))
			reply_error(rp, 405, "method_not_allowed", "use GET");
		else if (!strcmp(seg[1], "health"))
			handle_health(s, rp);
		else if (!strcmp(seg[1], "metrics"))
			handle_metrics(s, rp);
		else
			handle_info(s, rq->peer_uid, rp);
		return;
	}
	if (n == 2 && !strcmp(seg[1], "events")) {
		handle_all_events(s, c, method, rq, rp);
		return;
	}
	if (!strcmp(seg[1], "snapshots")) {
		handle_snapshots(s, seg, n, method, rq, rp);
		return;
	}
	if (!strcmp(seg[1], "images")) {
		handle_images(s, seg, n, c, method, rq, rp);
		return;
	}
	if (strcmp(seg[1], "sandboxes")) {
		reply_error(rp, 404, "not_found", "unknown path");
		return;
	}
	if (n == 2) {
		if (!strcmp(method, "GET"))
			handle_list(s, c, rq->peer_uid, rp);
		else if (!strcmp(method, "POST"))
			handle_create(s, rq, c, rp);
		else
			reply_error(rp, 405, "method_not_allowed", "use GET or POST");
		return;
	}
	sb = registry_get_for(&s->ctx->registry, seg[2], rq->peer_uid);
	if (!sb) {
		char msg[160];
		snprintf(msg, sizeof(msg), "no sandbox '%.100s'", seg[2]);
		reply_error(rp, 404, "not_found", msg);
		return;
	}
	pthread_mutex_lock(&sb->lock);
	bool busy = sb->destroying;
	pthread_mutex_unlock(&sb->lock);
	snprintf(rq->sandbox, sizeof(rq->sandbox), "%s", sb->id);
	/* Exec, processes, files and the workspace are activity (idle_timeout,
	 * lifecycle_expire); inspecting it, its events or its processes is not. */
	bool activity = n >= 4 && strcmp(seg[3], "events") && strcmp(seg[3], "snapshots") &&
	                strcmp(seg[3], "top");
	if (activity) {
		__atomic_add_fetch(&sb->requests, 1, __ATOMIC_RELAXED);
		sandbox_touch(sb);
	}
	if (busy) {
		reply_error(rp, 404, "not_found", "sandbox is being created or destroyed");
	} else if (n == 3) {
		if (!strcmp(method, "GET"))
			handle_inspect(s, sb, rp);
		else if (!strcmp(method, "DELETE"))
			handle_destroy(s, sb, c, rp);
		else
			reply_error(rp, 405, "method_not_allowed", "use GET or DELETE");
	} else if (n == 4 && !strcmp(seg[3], "exec")) {
		if (strcmp(method, "POST"))
			reply_error(rp, 405, "method_not_allowed", "use POST");
		else
			handle_exec(s->ctx, sb, c, rq, rp);
	} else if ((n == 5 || n == 6) && !strcmp(seg[3], "processes")) {
		handle_process(s->ctx, sb, seg[4], n == 6 ? seg[5] : NULL, c, method, rq, rp);
	} else if (n == 4 && !strcmp(seg[3], "events")) {
		handle_events(s, sb, c, method, rp);
	} else if (n == 4 && !strcmp(seg[3], "top")) {
		cJSON *o = NULL;
		struct al_error err = AL_ERROR_INIT;
		if (strcmp(method, "GET"))
			reply_error(rp, 405, "method_not_allowed", "use GET");
		else if (sandbox_processes_json(sb, &o, &err) < 0)
			reply_al_error(rp, &err);
		else
			reply_json(rp, 200, o);
	} else if (n == 4 && !strcmp(seg[3], "workspace")) {
		handle_workspace(s, sb, c, method, rq, rp);
	} else if (n == 4 && !strcmp(seg[3], "snapshots")) {
		if (strcmp(method, "POST"))
			reply_error(rp, 405, "method_not_allowed", "use POST");
		else
			handle_snapshot_create(s, sb, rq, rp);
	} else if (n == 4 && (!strcmp(seg[3], "files") || !strcmp(seg[3], "dirs"))) {
		handle_files(sb, !strcmp(seg[3], "dirs"), c, method, rq, rp);
	} else if (n == 4 && !strcmp(seg[3], "mounts")) {
		if (!strcmp(method, "POST"))
			handle_mount_add(sb, rq, rp);
		else if (!strcmp(method, "DELETE"))
			handle_mount_remove(sb, c, rp);
		else
			reply_error(rp, 405, "method_not_allowed", "use POST or DELETE");
	} else {
		reply_error(rp, 404, "not_found", "unknown path");
	}
	if (activity) {
		sandbox_touch(sb);
		__atomic_sub_fetch(&sb->requests, 1, __ATOMIC_RELAXED);
	}
	sandbox_unref(sb);
}

/* The template of a request's path for metrics ("/v1/sandboxes/{id}/exec"). */
/*
 * PUT /v1/sandboxes/{id}/workspace: the extraction starts now, in the
 * sandbox the client may use, and reads the body as it comes.  Nothing is
 * started for a sandbox that is not there (or not the client's): the
 * request then goes the way of any, and is answered by route().
 */
static int hydrate_begin(struct api_server *s, struct MHD_Connection *c, const char *url,
                         struct request *rq, struct al_error *err)
{
	static const char prefix[] = "/v1/sandboxes/";
	struct tar_limits lim;
	struct sandbox *sb;
	char id[64];
	size_t len;
	bool busy;
	int r;

	if (strncmp(url, prefix, strlen(prefix)))
		return 0;
	len = strlen(url) - strlen(prefix) - strlen("/workspace");
	if (len == 0 || len >= sizeof(id) || memchr(url + strlen(prefix), '/', len))
		return 0;
	memcpy(id, url + strlen(prefix), len);
	id[len] = '\0';
	tar_limits_default(&lim);
	r = query_u64(c, "max_input_bytes", lim.max_input_bytes, &lim.max_input_bytes, err);
	if (r == 0)
		r = query_u64(c, "max_extracted_bytes", lim.max_extracted_bytes,
		              &lim.max_extracted_bytes, err);
	if (r == 0)
		r = query_u64(c, "max_members", lim.max_members, &lim.max_members, err);
	if (r < 0)
		return r;
	sb = registry_get_for(&s->ctx->registry, id, rq->peer_uid);
	if (!sb)
		return 0;
	pthread_mutex_lock(&sb->lock);
	busy = sb->destroying;
	pthread_mutex_unlock(&sb->lock);
	r = busy ? 0 : api_hydrate_start(s->ctx, sb, &lim, &rq->hydrate, err);
	sandbox_unref(sb);
	return r;
}

static void route_template(const char *url, char *buf, size_t len)
{
	_cleanup_free_ char *copy = strdup(url);
	char *seg[8] = {0};
	size_t n = copy ? split_path(copy, seg, 8) : 0;

	snprintf(buf, len, "other");
	if (n < 2 || strcmp(seg[0], "v1"))
		return;
	if (n == 2)
		snprintf(buf, len, "/v1/%s", seg[1]);
	else if (!strcmp(seg[1], "snapshots") && n == 3 && !strcmp(seg[2], "import"))
		snprintf(buf, len, "/v1/snapshots/import");
	else if (!strcmp(seg[1], "snapshots") && n == 3)
		snprintf(buf, len, "/v1/snapshots/{id}");
	else if (!strcmp(seg[1], "snapshots") && n == 4 && !strcmp(seg[3], "export"))
		snprintf(buf, len, "/v1/snapshots/{id}/export");
	else if (!strcmp(seg[1], "images") && n == 3)
		snprintf(buf, len, "/v1/images/{name}");
	else if (!strcmp(seg[1], "sandboxes") && n == 3)
		snprintf(buf, len, "/v1/sandboxes/{id}");
	else if (!strcmp(seg[1], "sandboxes") && n == 4)
		snprintf(buf, len, "/v1/sandboxes/{id}/%s", seg[3]);
	else if (!strcmp(seg[1], "sandboxes") && (n == 5 || n == 6) && !strcmp(seg[3], "processes"))
		snprintf(buf, len, "/v1/sandboxes/{id}/processes/{pid}%s%s", n == 6 ? "/" : "",
		         n == 6 ? seg[5] : "");
}

/*
 * Every operation of the API with the query parameters it reads: the one
 * list a new one is added to.  Any other parameter is refused (a
 * "?parent=1" would otherwise silently mean "no parents").  A method not
 * listed for a route is left to route(), which answers 405 (or 404).
 */
static const struct {
	const char *route; /* route_template() */
	const char *method;
	const char *params[4];
} query_params[] = {
    {"/v1/health", "GET", {NULL}},
    {"/v1/metrics", "GET", {NULL}},
    {"/v1/info", "GET", {NULL}},
    {"/v1/events", "GET", {"since", "follow"}},
    {"/v1/sandboxes", "GET", {"label", "state"}},
    {"/v1/sandboxes", "POST", {"view"}},
    {"/v1/sandboxes/{id}", "GET", {NULL}},
    {"/v1/sandboxes/{id}", "DELETE", {"wait"}},
    {"/v1/sandboxes/{id}/exec", "POST", {NULL}},
    {"/v1/sandboxes/{id}/processes/{pid}", "GET", {"yield_ms", "encoding"}},
    {"/v1/sandboxes/{id}/processes/{pid}", "DELETE", {"signal"}},
    {"/v1/sandboxes/{id}/processes/{pid}/stdin", "POST", {NULL}},
    {"/v1/sandboxes/{id}/processes/{pid}/resize", "POST", {NULL}},
    {"/v1/sandboxes/{id}/events", "GET", {"since"}},
    {"/v1/sandboxes/{id}/top", "GET", {NULL}},
    {"/v1/sandboxes/{id}/workspace", "GET", {NULL}},
    {"/v1/sandboxes/{id}/workspace",
     "PUT",
     {"max_input_bytes", "max_extracted_bytes", "max_members"}},
    {"/v1/sandboxes/{id}/snapshots", "POST", {NULL}},
    {"/v1/sandboxes/{id}/files", "GET", {"path"}},
    {"/v1/sandboxes/{id}/files", "PUT", {"path", "mode", "parents"}},
    {"/v1/sandboxes/{id}/files", "DELETE", {"path", "recursive"}},
    {"/v1/sandboxes/{id}/dirs", "GET", {"path"}},
    {"/v1/sandboxes/{id}/dirs", "POST", {"path", "parents"}},
    {"/v1/sandboxes/{id}/mounts", "POST", {NULL}},
    {"/v1/sandboxes/{id}/mounts", "DELETE", {"path"}},
    {"/v1/snapshots", "GET", {NULL}},
    {"/v1/snapshots/{id}", "DELETE", {NULL}},
    {"/v1/snapshots/{id}/export", "GET", {NULL}},
    {"/v1/snapshots/import", "POST", {"max_input_bytes"}},
    {"/v1/images", "GET", {NULL}},
    {"/v1/images", "POST", {"name", "max_extracted_bytes", "max_members"}},
    {"/v1/images/{name}", "GET", {NULL}},
    {"/v1/images/{name}", "DELETE", {NULL}},
};

struct query_check {
	const char *const *params; /* NULL-terminated (at most 4) */
	const char *route;
	struct al_error err;
};

static enum MHD_Result check_query_param(void *cls, enum MHD_ValueKind kind, const char *key,
                                         const char *value)
{
	struct query_check *q = cls;
	struct al_json_key known[4];
	size_t n = 0;
	const char *hint;

	(void)kind;
	(void)value;
	for (; n < 4 && q->params[n]; n++) {
		if (!strcmp(q->params[n], key))
			return MHD_YES;
		known[n] = (struct al_json_key){q->params[n], 0};
	}
	hint = al_json_suggest_key(key, known, n);
	if (hint)
		al_error_set(&q->err, EINVAL,
		             "unknown query parameter \"%.64s\" of %s (did you mean \"%s\"?)", key,
		             q->route, hint);
	else
		al_error_set(&q->err, EINVAL, "unknown query parameter \"%.64s\" of %s", key,
		             q->route);
	return MHD_NO;
}

/* -EINVAL naming a query parameter that route (a template) does not take. */
static int check_query(struct MHD_Connection *c, const char *route, const char *method,
                       struct al_error *err)
{
	struct query_check q = {.route = route, .err = AL_ERROR_INIT};

	for (size_t i = 0; i < AL_ARRAY_SIZE(query_params); i++)
		if (!strcmp(query_params[i].route, route) &&
		    !strcmp(query_params[i].method, method))
			q.params = query_params[i].params;
	if (!q.params)
		return 0; /* not an operation: route() answers 405 or 404 */
	MHD_get_connection_values(c, MHD_GET_ARGUMENT_KIND, check_query_param, &q);
	if (q.err.code)
		*err = q.err;
	return -q.err.code;
}

/* One line per request: in the JSON log format for every request (an access
 * log for collectors), in text only at debug level, and failures at warn. */
static void log_request(const struct request *rq, const char *method, const char *url,
                        const struct reply *rp, uint64_t duration_us)
{
	enum al_log_level level = rp->status >= 500  ? AL_LOG_WARN
	                          : al_log_is_json() ? AL_LOG_INFO
	                                             : AL_LOG_DEBUG;
	char uid[16], status[8], dur[24];
	const struct al_log_field fields[] = {
	    {"uid", uid},
	    {"method", method},
	    {"path", url},
	    {"status", status},
	    {"sandbox", rq->sandbox[0] ? rq->sandbox : NULL},
	    {"command", rp->command[0] ? rp->command : NULL},
	    {"duration_ms", dur},
	};

	snprintf(uid, sizeof(uid), "%u", (unsigned)rq->peer_uid);
	snprintf(status, sizeof(status), "%u", rp->status);
	snprintf(dur, sizeof(dur), "%.3f", (double)duration_us / 1000.0);
	al_log_fields(level, fields, AL_ARRAY_SIZE(fields), "%s %s -> %u", method, url, rp->status);
}

/* ---- libmicrohttpd glue ------------------------------------------------------------------- */

static bool peer_allowed(struct api_server *s, struct MHD_Connection *c, uid_t *uid)
{
	const union MHD_ConnectionInfo *ci =
	    MHD_get_connection_info(c, MHD_CONNECTION_INFO_CONNECTION_FD);
	struct ucred cred;
	socklen_t len = sizeof(cred);
	_cleanup_free_ char *status = NULL;
	char path[64];

	if (!ci || getsockopt(ci->connect_fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) < 0)
		return false;
	*uid = cred.uid;
	if (cred.uid == 0)
		return true;
	if (s->allowed_gid == (gid_t)-1)
		return false;
	if (cred.gid == s->allowed_gid)
		return true;
	/* Supplementary groups are not in SO_PEERCRED; read them from /proc. */
	snprintf(path, sizeof(path), "/proc/%d/status", (int)cred.pid);
	if (al_read_file(path, 65536, &status, NULL, NULL) < 0)
		return false;
	for (char *line = strstr(status, "\nGroups:"); line;) {
		char *p = line + 8, *end;
		while (*p && *p != '\n') {
			unsigned long g = strtoul(p, &end, 10);
			if (end == p)
				break;
			if ((gid_t)g == s->allowed_gid)
				return true;
			p = end;
			while (*p == ' ' || *p == '\t')
				p++;
		}
		break;
	}
	return false;
}

static enum MHD_Result send_reply(struct MHD_Connection *c, struct reply *rp)
{
	struct MHD_Response *resp;
	enum MHD_Result ret;

	if (!rp->status)
		reply_error(rp, 500, "internal", "no response");
	if (rp->stream) {
		/* The stream is freed with the connection (on_completed). */
		resp = api_stream_response(rp->stream);
		if (!resp)
			return MHD_NO;
		ret = MHD_queue_response(c, MHD_HTTP_SWITCHING_PROTOCOLS, resp);
		MHD_destroy_response(resp);
		return ret;
	}
	if (rp->response) {
		ret = MHD_queue_response(c, rp->status, rp->response);
		MHD_destroy_response(rp->response);
		return ret;
	}
	if (rp->persist) {
		resp = api_persist_response(rp->persist);
		if (!resp)
			return MHD_NO;
	} else if (rp->has_fd) {
		/* MHD owns the fd from here, also when it fails. */
		resp = MHD_create_response_from_fd64(rp->fd_len, rp->fd);
		if (!resp) {
			close(rp->fd);
			return MHD_NO;
		}
	} else {
		resp = MHD_create_response_from_buffer(rp->len, rp->body ? rp->body : (void *)"",
		                                       rp->body ? MHD_RESPMEM_MUST_FREE
		                                                : MHD_RESPMEM_PERSISTENT);
	}
	if (!resp) {
		free(rp->body);
		return MHD_NO;
	}
	MHD_add_response_header(resp, "Content-Type", rp->content_type);
	ret = MHD_queue_response(c, rp->status, resp);
	MHD_destroy_response(resp);
	return ret;
}

/*
 * PUT /v1/sandboxes/ID/files of an announced length of STREAMED_UPLOAD_MIN or
 * more, into a running sandbox the client may use: started here, before the
 * body comes, so that it goes into the sandbox as it arrives.  1 when
 * started, 0 when this upload takes the spooled way (whatever is wrong with
 * it is then answered where every request's errors are), or an error.
 */
static int begin_streamed_upload(struct api_server *s, struct MHD_Connection *c, const char *url,
                                 struct request *rq, struct al_error *err)
{
	const char *cl =
	    MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_LENGTH);
	const char *path = query(c, "path");
	_cleanup_sandbox_ struct sandbox *sb = NULL;
	char id[32];
	uint64_t len;
	mode_t mode;
	char *end;
	int n = 0, r;

	char tmpl[64];
	struct al_error ignored = AL_ERROR_INIT;

	/* Anything the request would be refused for is refused before a byte is
	 * written: it goes the spooled way and is answered there. */
	route_template(url, tmpl, sizeof(tmpl));
	if (!cl || !path || !path[0] || !file_mode(c, &mode) ||
	    check_query(c, tmpl, "PUT", &ignored) < 0)
		return 0;
	len = strtoull(cl, &end, 10);
	if (*end || len < STREAMED_UPLOAD_MIN)
		return 0;
	if (sscanf(url, "/v1/sandboxes/%31[^/]/files%n", id, &n) != 1 || url[n])
		return 0;
	sb = registry_get_for(&s->ctx->registry, id, rq->peer_uid);
	if (!sb || !sandbox_running(sb))
		return 0;
	pthread_mutex_lock(&sb->lock);
	bool busy = sb->destroying;
	pthread_mutex_unlock(&sb->lock);
	if (busy)
		return 0;
	/* More than its disk holds: the spooled way reads it (up to its bound)
	 * and answers 507 or 413 after, rather than reset a client still sending. */
	if (sb->spec.disk_bytes && len > sb->spec.disk_bytes)
		return 0;
	r = sandbox_upload_begin(sb, path, len, mode, query_bool(c, "parents"), &rq->upload, err);
	if (r < 0)
		return r;
	rq->limit = len;
	rq->upload_sb = TAKE_PTR(sb);
	return 1;
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *c, const char *url,
                                  const char *method, const char *version, const char *upload,
                                  size_t *upload_size, void **con_cls)
{
	struct api_server *s = cls;
	struct request *rq = *con_cls;
	const union MHD_ConnectionInfo *ci =
	    MHD_get_connection_info(c, MHD_CONNECTION_INFO_CONNECTION_FD);
	struct reply rp = {.client_fd = ci ? ci->connect_fd : -1};

	(void)version;
	if (!rq) {
		const char *cl;
		rq = calloc(1, sizeof(*rq));
		if (!rq)
			return MHD_NO;
		*con_cls = rq;
		rq->spool_fd = -1;
		rq->limit = strstr(url, "/files") ? MAX_FILE_BODY : MAX_JSON_BODY;
		if (!peer_allowed(s, c, &rq->peer_uid)) {
			rq->rejected = true;
			reply_error(&rp, 403, "forbidden", "peer is not allowed to use airlockd");
			return send_reply(c, &rp);
		}
		if (!admission_request(s->admission, rq->peer_uid)) {
			rq->rejected = true;
			reply_error(&rp, 429, "busy", "too many requests from this uid; slow down");
			return send_reply(c, &rp);
		}
		if (!strcmp(method, "PUT") && strlen(url) > 6 &&
		    !strcmp(url + strlen(url) - 6, "/files")) {
			/* A file's bytes go to disk too, not into our memory: eight
			 * concurrent uploads of 256 MiB took 2.2 GB of it. */
			struct al_error err = AL_ERROR_INIT;
			int r = begin_streamed_upload(s, c, url, rq, &err);
			if (r < 0) {
				rq->rejected = true;
				reply_al_error(&rp, &err);
				return send_reply(c, &rp);
			}
			if (r > 0)
				return MHD_YES;
			rq->spool_fd = api_spool_open(s->ctx, &err);
			if (rq->spool_fd < 0) {
				rq->rejected = true;
				reply_al_error(&rp, &err);
				return send_reply(c, &rp);
			}
		} else if (!strcmp(method, "POST") && !strcmp(url, "/v1/images")) {
			/* An image archive: spooled to disk, read twice by the import. */
			struct al_error err = AL_ERROR_INIT;
			uint64_t lim = IMAGE_MAX_INPUT;
			if (rq->peer_uid != 0) {
				rq->rejected = true;
				reply_error(&rp, 403, "forbidden", "only root may import images");
				return send_reply(c, &rp);
			}
			if (query_u64(c, "max_input_bytes", lim, &lim, &err) < 0 ||
			    (rq->spool_fd = api_spool_open(s->ctx, &err)) < 0) {
				rq->rejected = true;
				reply_al_error(&rp, &err);
				return send_reply(c, &rp);
			}
			rq->limit = lim;
		} else if (!strcmp(method, "PUT") && strlen(url) > 10 &&
		           !strcmp(url + strlen(url) - 10, "/workspace")) {
			/* A workspace tar may be large: extracted as it comes, bounded
			 * by the archive input limit (or, for a sandbox that is not
			 * there, spooled to be answered like any request to it). */
			struct al_error err = AL_ERROR_INIT;
			uint64_t lim = ARCHIVE_DEFAULT_MAX_INPUT_BYTES;
			if (query_u64(c, "max_input_bytes", lim, &lim, &err) < 0 ||
			    hydrate_begin(s, c, url, rq, &err) < 0 ||
			    (!rq->hydrate && (rq->spool_fd = api_spool_open(s->ctx, &err)) < 0)) {
				rq->rejected = true;
				reply_al_error(&rp, &err);
				return send_reply(c, &rp);
			}
			rq->limit = lim;
		} else if (!strcmp(method, "POST") && !strncmp(url, "/v1/snapshots/import", 20) &&
		           (!url[20] || url[20] == '?')) {
			/* A snapshot stream: spooled to disk, read from there by the import. */
			struct al_error err = AL_ERROR_INIT;
			uint64_t lim = API_SNAPSHOT_IMPORT_MAX;
			if (query_u64(c, "max_input_bytes", lim, &lim, &err) < 0 ||
			    (rq->spool_fd = api_spool_open(s->ctx, &err)) < 0) {
				rq->rejected = true;
				reply_al_error(&rp, &err);
				return send_reply(c, &rp);
			}
			rq->limit = lim;
		}
		cl =
		    MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_LENGTH);
		if (cl && strtoull(cl, NULL, 10) > rq->limit + MAX_DROPPED_BODY) {
			/* Not worth reading: answered now. */
			rq->rejected = true;
			reply_error(&rp, 413, "too_large",
			            rq->spool_fd >= 0 ? "archive input exceeds the limit"
			                              : "request body too large");
			return send_reply(c, &rp);
		}
		rq->too_large = cl && strtoull(cl, NULL, 10) > rq->limit;
		return MHD_YES;
	}
	if (rq->rejected) {
		*upload_size = 0; /* discard */
		return MHD_YES;
	}
	if (!rq->too_large && *upload_size && rq->body.len + rq->spooled + *upload_size > rq->limit)
		rq->too_large = true;
	if (rq->too_large) {
		rq->dropped += *upload_size;
		/* Up to a point: past it, the reset is the client's problem. */
		if (*upload_size && rq->dropped <= MAX_DROPPED_BODY) {
			*upload_size = 0;
			return MHD_YES;
		}
		*upload_size = 0;
		rq->rejected = true;
		reply_error(&rp, 413, "too_large",
		            rq->spool_fd >= 0 || rq->hydrate ? "archive input exceeds the limit"
		                                             : "request body too large");
		return send_reply(c, &rp);
	}
	if (*upload_size) {
		if (rq->upload) {
			sandbox_upload_write(rq->upload, upload, *upload_size);
			rq->spooled += *upload_size;
		} else if (rq->hydrate) {
			/* Blocks while the extraction is behind: the client waits. */
			if (!rq->hydrate_gone &&
			    al_write_all(api_hydrate_fd(rq->hydrate), upload, *upload_size) < 0)
				rq->hydrate_gone = true; /* it stopped: its error is the answer */
			rq->spooled += *upload_size;
		} else if (rq->spool_fd >= 0) {
			if (al_write_all(rq->spool_fd, upload, *upload_size) < 0)
				return MHD_NO;
			rq->spooled += *upload_size;
		} else if (__atomic_add_fetch(&bodies_held, *upload_size, __ATOMIC_SEQ_CST) >
		           MAX_BODIES_HELD) {
			/* JSON bodies are in memory: all of them together bounded,
			 * not 16 MiB times every connection. */
			__atomic_sub_fetch(&bodies_held, *upload_size, __ATOMIC_SEQ_CST);
			*upload_size = 0;
			rq->rejected = true;
			reply_error(&rp, 429, "busy",
			            "airlockd holds too many request bodies; retry");
			return send_reply(c, &rp);
		} else if (al_buf_append(&rq->body, upload, *upload_size) < 0) {
			__atomic_sub_fetch(&bodies_held, *upload_size, __ATOMIC_SEQ_CST);
			return MHD_NO;
		} else {
			rq->held += *upload_size;
		}
		*upload_size = 0;
		return MHD_YES;
	}
	{
		uint64_t start = al_now_ns() / 1000;
		char tmpl[64];

		struct al_error err = AL_ERROR_INIT;

		route_template(url, tmpl, sizeof(tmpl));
		if (check_query(c, tmpl, method, &err) < 0)
			reply_al_error(&rp, &err);
		else
			route(s, c, url, method, rq, &rp);
		if (!rp.status)
			reply_error(&rp, 500, "internal", "no response");
		metrics_count_request(tmpl, method, rp.status);
		log_request(rq, method, url, &rp, al_now_ns() / 1000 - start);
		if (rp.persist) {
			rq->streamed_method = strdup(method);
			rq->streamed_url = strdup(url);
			rq->started_us = start;
		}
	}
	rq->stream = rp.stream;
	return send_reply(c, &rp);
}

static void on_completed(void *cls, struct MHD_Connection *c, void **con_cls,
                         enum MHD_RequestTerminationCode toe)
{
	struct request *rq = *con_cls;

	(void)cls;
	if (rq) {
		const union MHD_ConnectionInfo *ci =
		    MHD_get_connection_info(c, MHD_CONNECTION_INFO_CONNECTION_FD);
		/* Its 200 was logged when the archive began; an archive cut short
		 * gets a second line: 499 (nginx's "client closed request") when
		 * its client had gone, 500 when the archive failed (the reason is
		 * in the log already). */
		if (rq->streamed_method && rq->streamed_url &&
		    toe != MHD_REQUEST_TERMINATED_COMPLETED_OK) {
			struct reply cut = {.status =
			                        !ci || client_gone(ci->connect_fd) ? 499 : 500};
			log_request(rq, rq->streamed_method, rq->streamed_url, &cut,
			            al_now_ns() / 1000 - rq->started_us);
		}
		free(rq->streamed_method);
		free(rq->streamed_url);
		if (rq->file_send_buffer && ci)
			setsockopt(ci->connect_fd, SOL_SOCKET, SO_SNDBUFFORCE,
			           &(int){ADMISSION_SEND_BUFFER}, sizeof(int));
		__atomic_sub_fetch(&bodies_held, rq->held, __ATOMIC_SEQ_CST);
		al_buf_free(&rq->body);
		if (rq->spool_fd >= 0)
			close(rq->spool_fd);
		sandbox_upload_free(rq->upload);
		if (rq->upload_sb)
			sandbox_unref(rq->upload_sb);
		api_hydrate_free(rq->hydrate);
		api_stream_free(rq->stream);
		free(rq);
		*con_cls = NULL;
	}
}

static void mhd_log(void *cls, const char *fmt, va_list ap)
{
	char line[512];

	(void)cls;
	vsnprintf(line, sizeof(line), fmt, ap);
	line[strcspn(line, "\n")] = '\0';
	log_debug("http: %s", line);
}

int api_start(struct daemon *ctx, int listen_fd, gid_t allowed_gid, struct api_server **out,
              struct al_error *err)
{
	struct api_server *s = calloc(1, sizeof(*s));

	if (!s)
		return al_error_set(err, ENOMEM, "out of memory");
	s->ctx = ctx;
	s->allowed_gid = allowed_gid;
	s->started_ms = al_now_ms();
	if (admission_new(listen_fd, ctx->client_rate, &s->admission, err) < 0) {
		free(s);
		return -err->code;
	}
	/* Connections come from admission.c, which accepts them itself. */
	s->mhd = MHD_start_daemon(
	    MHD_USE_THREAD_PER_CONNECTION | MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_POLL |
	        MHD_USE_ERROR_LOG | MHD_USE_NO_LISTEN_SOCKET | MHD_ALLOW_UPGRADE,
	    0, NULL, NULL, on_request, s, MHD_OPTION_EXTERNAL_LOGGER, mhd_log, NULL,
	    MHD_OPTION_NOTIFY_COMPLETED, on_completed, s, MHD_OPTION_NOTIFY_CONNECTION,
	    admission_notify, s->admission, MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)(64 * 1024),
	    MHD_OPTION_CONNECTION_TIMEOUT, (unsigned int)60, MHD_OPTION_CONNECTION_LIMIT,
	    (unsigned int)2048, MHD_OPTION_END);
	if (!s->mhd || admission_start(s->admission, s->mhd, err) < 0) {
		if (s->mhd)
			MHD_stop_daemon(s->mhd);
		else
			al_error_set(err, EIO, "cannot start the HTTP server");
		admission_free(s->admission);
		free(s);
		return -err->code;
	}
	s->listen_fd = listen_fd;
	*out = s;
	return 0;
}

void api_stop(struct api_server *srv)
{
	if (!srv)
		return;
	__atomic_store_n(&api_stopping, true, __ATOMIC_SEQ_CST);
	admission_stop(srv->admission);
	MHD_stop_daemon(srv->mhd);
	admission_free(srv->admission);
	close(srv->listen_fd);
	free(srv);
}
