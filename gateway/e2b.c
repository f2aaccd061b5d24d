/* SPDX-License-Identifier: Apache-2.0 */
/*
 * E2B's wire API over airlockd: the control plane (REST, X-API-KEY) and envd, the
 * in-sandbox daemon (REST /files and Connect-protocol RPCs, routed by the E2b-Sandbox-Id
 * header since every sandbox shares one E2B_SANDBOX_URL), as the official `e2b` SDK
 * speaks them (docs/gateway.md; the reference's §3).
 *
 * A sandbox here is a gateway id (what the tenant sees), its airlockd sandbox, the tenant
 * that made it and the envd access token handed out at create.  A process is an airlockd
 * process under a small numeric pid (envd's are uint32).  Output that airlockd returns to
 * any call (a poll of the stream, a stdin write) is kept with the process until a stream
 * hands it on, so that nothing is lost between a Start that ends early and a later
 * Connect.
 */
#include "registry.h"
#include "server.h"

#include "cleanup.h"
#include "json.h"
#include "log.h"

#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#define ENVD_VERSION "0.5.7"
#define DEFAULT_TIMEOUT_S 300
#define MAX_TIMEOUT_S 86400
#define POLL_YIELD_MS 200
#define START_YIELD_MS 30
#define KEEPALIVE_MS 10000
#define MAX_OUTPUT_PER_CALL (8u << 20)
#define FRAME_CHUNK (1u << 20)

struct proc {
	uint32_t pid;
	char backend_pid[32]; /* "" once airlockd has reported the end */
	char *tag;
	cJSON *config;
	struct al_buf out, err; /* from airlockd, not yet streamed */
	bool pty; /* on airlockd's terminal: out is the terminal's, sent as data.pty */
	bool done;
	int exit_code;
	int signal;
	/* Held across each airlockd call that takes this process's output or end (a
	 * stream's poll, a stdin write).  Streams of one process overlap (a yielding
	 * client's Start stream still polls while its Connect begins), and airlockd
	 * forgets a process once it has reported the end: two calls at once could
	 * take output out of order, or the second would get 404 for a process whose
	 * exit status the first had just taken. */
	pthread_mutex_t io;
	struct proc *next;
};

struct sbx {
	struct gw_entry entry; /* first: the registry's part */
	char id[24];
	char *backend_id;
	char token[33];
	char *template_id;
	cJSON *metadata;
	time_t started;
	time_t end_at;
	char *paused_snapshot; /* set while paused: the snapshot to come back from */
	uint32_t next_pid;
	struct proc *procs;
	pthread_mutex_t lock; /* procs and their buffers */
};

struct snap {
	char *id;
	char *tenant;
	struct snap *next;
};

static struct gw_registry registry;
static struct snap *snaps; /* under the registry's lock */
static struct gw_server *server;
static pthread_t reaper;
static bool reaper_started;
static volatile bool stopping;

/* ---- small helpers ---- */

/* The control plane's error shape: {code: <status>, message}. */
static void api_shape(cJSON *j, unsigned status, const char *code, const char *msg)
{
	(void)code;
	cJSON_AddNumberToObject(j, "code", status);
	cJSON_AddStringToObject(j, "message", msg);
}
#define api_error(rq, status, ...) gw_reply_error(rq, status, api_shape, NULL, __VA_ARGS__)

/* Not inlined: where a caller passes a literal code, gcc's release build
 * (-Wstring-compare) would flag every other row's compare as always unequal. */
static __attribute__((noinline)) unsigned connect_status(const char *code)
{
	static const struct {
		const char *code;
		unsigned status;
	} map[] = {{"invalid_argument", 400},  {"unauthenticated", 401},
	           {"permission_denied", 403}, {"not_found", 404},
	           {"already_exists", 409},    {"resource_exhausted", 429},
	           {"unimplemented", 501},     {"unavailable", 503},
	           {"deadline_exceeded", 504}, {"failed_precondition", 400}};

	for (size_t i = 0; i < sizeof(map) / sizeof(map[0]); i++)
		if (!strcmp(map[i].code, code))
			return map[i].status;
	return 500;
}

/* A unary Connect error: {code: "<name>", message}. */
static void rpc_shape(cJSON *j, unsigned status, const char *code, const char *msg)
{
	(void)status;
	cJSON_AddStringToObject(j, "code", code);
	cJSON_AddStringToObject(j, "message", msg);
}
#define rpc_error(rq, code, ...)                                                                   \
	gw_reply_error(rq, connect_status(code), rpc_shape, code, __VA_ARGS__)

/* airlockd's status as a Connect code. */
static const char *code_of(long status)
{
	switch (status) {
	case 400:
		return "invalid_argument";
	case 403:
		return "permission_denied";
	case 404:
		return "not_found";
	case 409:
		return "already_exists";
	case 413:
		return "resource_exhausted";
	case 503:
		return "unavailable";
	default:
		return "internal";
	}
}

/* A Connect envelope: flags, 32-bit big-endian length, the JSON message. */
static int frame(struct al_buf *b, uint8_t flags, const cJSON *msg)
{
	_cleanup_free_ char *text = cJSON_PrintUnformatted(msg);
	uint8_t head[5];
	size_t len;

	if (!text)
		return -ENOMEM;
	len = strlen(text);
	head[0] = flags;
	head[1] = (uint8_t)(len >> 24);
	head[2] = (uint8_t)(len >> 16);
	head[3] = (uint8_t)(len >> 8);
	head[4] = (uint8_t)len;
	if (al_buf_append(b, head, 5) < 0 || al_buf_append(b, text, len) < 0)
		return -ENOMEM;
	return 0;
}

/* The message of a one-envelope Connect streaming request. */
static cJSON *parse_envelope(const struct gw_request *rq)
{
	const uint8_t *p = (const uint8_t *)rq->body.data;
	size_t len;

	if (rq->body.len < 5)
		return NULL;
	len = (size_t)p[1] << 24 | (size_t)p[2] << 16 | (size_t)p[3] << 8 | p[4];
	if (p[0] != 0 || len > rq->body.len - 5)
		return NULL;
	return cJSON_ParseWithLength((const char *)p + 5, len);
}

static char *join_path(const char *dir, const char *name)
{
	char *out;
	size_t n = strlen(dir);

	if (asprintf(&out, "%s%s%s", dir, n && dir[n - 1] == '/' ? "" : "/", name) < 0)
		return NULL;
	return out;
}

/* ---- the registry ---- */

static void mutex_unlockp(pthread_mutex_t **m)
{
	if (*m)
		pthread_mutex_unlock(*m);
}

static void proc_free(struct proc *p)
{
	pthread_mutex_destroy(&p->io);
	free(p->tag);
	cJSON_Delete(p->config);
	al_buf_free(&p->out);
	al_buf_free(&p->err);
	free(p);
}

static void sbx_free(struct sbx *sb)
{
	while (sb->procs) {
		struct proc *n = sb->procs->next;
		proc_free(sb->procs);
		sb->procs = n;
	}
	gw_entry_done(&sb->entry);
	free(sb->backend_id);
	free(sb->template_id);
	free(sb->paused_snapshot);
	cJSON_Delete(sb->metadata);
	pthread_mutex_destroy(&sb->lock);
	free(sb);
}

static void sbx_release(struct sbx *sb)
{
	gw_registry_release(&registry, (struct gw_entry *)sb);
}

static void sbx_releasep(struct sbx **sb)
{
	sbx_release(*sb);
}

/* The sandbox id, with a reference; tenant NULL: any (envd checks the token instead). */
static struct sbx *sbx_get(const char *id, const char *tenant)
{
	return (struct sbx *)gw_registry_find(&registry, id, tenant);
}

/* Forget a tenant's snapshot; false when it has none of that id. */
static bool snap_take(const char *id, const char *tenant)
{
	struct snap *found = NULL;

	gw_registry_lock(&registry);
	for (struct snap **pp = &snaps; *pp; pp = &(*pp)->next)
		if (!strcmp((*pp)->id, id) && !strcmp((*pp)->tenant, tenant)) {
			found = *pp;
			*pp = found->next;
			break;
		}
	gw_registry_unlock(&registry);
	if (!found)
		return false;
	free(found->id);
	free(found->tenant);
	free(found);
	return true;
}

static bool snap_owned(const char *id, const char *tenant)
{
	bool ok = false;

	gw_registry_lock(&registry);
	for (struct snap *s = snaps; s; s = s->next)
		if (!strcmp(s->id, id) && !strcmp(s->tenant, tenant))
			ok = true;
	gw_registry_unlock(&registry);
	return ok;
}

static int snap_add(const char *id, const char *tenant)
{
	struct snap *s = calloc(1, sizeof(*s));

	if (!s || !(s->id = strdup(id)) || !(s->tenant = strdup(tenant))) {
		if (s)
			free(s->id);
		free(s);
		return -ENOMEM;
	}
	gw_registry_lock(&registry);
	s->next = snaps;
	snaps = s;
	gw_registry_unlock(&registry);
	return 0;
}

/* ---- the registry's records (--state-dir; registry.h) ---- */

static cJSON *entry_save(const struct gw_entry *e)
{
	const struct sbx *sb = (const struct sbx *)e;
	cJSON *o = cJSON_CreateObject();

	cJSON_AddStringToObject(o, "id", sb->id);
	cJSON_AddStringToObject(o, "backend_id", sb->backend_id);
	cJSON_AddStringToObject(o, "tenant", e->tenant);
	cJSON_AddStringToObject(o, "token", sb->token);
	cJSON_AddStringToObject(o, "template_id", sb->template_id);
	if (sb->metadata)
		cJSON_AddItemToObject(o, "metadata", cJSON_Duplicate(sb->metadata, 1));
	cJSON_AddNumberToObject(o, "started", (double)sb->started);
	cJSON_AddNumberToObject(o, "end_at", (double)sb->end_at);
	if (sb->paused_snapshot)
		cJSON_AddStringToObject(o, "paused_snapshot", sb->paused_snapshot);
	return o;
}

/* The tenants' snapshots go in the same file (under the registry's lock). */
static void save_snapshots(cJSON *doc)
{
	cJSON *list = cJSON_AddArrayToObject(doc, "snapshots");

	for (struct snap *sn = snaps; sn; sn = sn->next) {
		cJSON *o = cJSON_CreateObject();
		cJSON_AddStringToObject(o, "id", sn->id);
		cJSON_AddStringToObject(o, "tenant", sn->tenant);
		cJSON_AddItemToArray(list, o);
	}
}

static struct gw_entry *entry_load(const cJSON *o)
{
	const char *id = al_json_str(o, "id"), *bid = al_json_str(o, "backend_id");
	const char *tenant = al_json_str(o, "tenant"), *token = al_json_str(o, "token");
	const char *tmpl = al_json_str(o, "template_id");
	const char *paused = al_json_str(o, "paused_snapshot");
	const cJSON *meta = cJSON_GetObjectItemCaseSensitive(o, "metadata");
	struct sbx *sb;

	if (!id || strlen(id) >= sizeof(sb->id) || !bid || !tenant || !token ||
	    strlen(token) != sizeof(sb->token) - 1 || !tmpl)
		return NULL;
	sb = calloc(1, sizeof(*sb));
	if (!sb)
		return NULL;
	pthread_mutex_init(&sb->lock, NULL);
	snprintf(sb->id, sizeof(sb->id), "%s", id);
	snprintf(sb->token, sizeof(sb->token), "%s", token);
	if (gw_entry_init(&sb->entry, tenant) < 0 || !(sb->backend_id = strdup(bid)) ||
	    !(sb->template_id = strdup(tmpl)) ||
	    (paused && !(sb->paused_snapshot = strdup(paused)))) {
		sbx_free(sb);
		return NULL;
	}
	sb->entry.id = sb->id;
	sb->metadata = cJSON_IsObject(meta) ? cJSON_Duplicate(meta, 1) : NULL;
	sb->started = (time_t)cJSON_GetNumberValue(cJSON_GetObjectItemCaseSensitive(o, "started"));
	sb->end_at = (time_t)cJSON_GetNumberValue(cJSON_GetObjectItemCaseSensitive(o, "end_at"));
	return &sb->entry;
}

static int load_snapshots(const cJSON *doc, struct al_error *err)
{
	const cJSON *o;

	cJSON_ArrayForEach(o, cJSON_GetObjectItemCaseSensitive(doc, "snapshots"))
	{
		if (al_json_str(o, "id") && al_json_str(o, "tenant") &&
		    snap_add(al_json_str(o, "id"), al_json_str(o, "tenant")) < 0)
			return al_error_set(err, ENOMEM, "out of memory");
	}
	return 0;
}

static void entry_free(struct gw_entry *e)
{
	sbx_free((struct sbx *)e);
}

static const struct gw_registry_ops registry_ops = {
    .service = GW_E2B,
    .what = "e2b",
    .free = entry_free,
    .save = entry_save,
    .load = entry_load,
    .save_more = save_snapshots,
    .load_more = load_snapshots,
};

static struct proc *proc_find(struct sbx *sb, const cJSON *selector)
{
	const cJSON *pid = cJSON_GetObjectItemCaseSensitive(selector, "pid");
	const char *tag = al_json_str(selector, "tag");

	for (struct proc *p = sb->procs; p; p = p->next) {
		if (cJSON_IsNumber(pid) && p->pid == (uint32_t)pid->valuedouble)
			return p;
		if (cJSON_IsString(pid) && p->pid == (uint32_t)strtoul(pid->valuestring, NULL, 10))
			return p;
		if (tag && p->tag && !strcmp(tag, p->tag))
			return p;
	}
	return NULL;
}

/* Keep what airlockd answered about a process (under sb->lock). */
static void absorb(struct proc *p, const cJSON *res)
{
	static const char *const streams[] = {"stdout", "stderr"};

	for (int i = 0; i < 2; i++) {
		const char *b64 = al_json_str(res, streams[i]);
		_cleanup_free_ char *raw = NULL;
		struct al_error e = AL_ERROR_INIT;
		size_t len = 0;

		if (!b64 || !*b64 || al_base64_decode(b64, &raw, &len, &e) < 0)
			continue;
		if (al_buf_append(i ? &p->err : &p->out, raw, len) < 0)
			log_warn("process %u: output dropped: out of memory", p->pid);
	}
	if (!cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(res, "running"))) {
		const cJSON *code = cJSON_GetObjectItemCaseSensitive(res, "exit_code");
		const cJSON *sig = cJSON_GetObjectItemCaseSensitive(res, "signal");
		p->done = true;
		p->exit_code = cJSON_IsNumber(code) ? code->valueint : -1;
		p->signal = cJSON_IsNumber(sig) ? sig->valueint : 0;
		p->backend_pid[0] = '\0';
	}
}

/* A process airlockd no longer knows: it ended and its result went elsewhere. */
static void mark_lost(struct proc *p)
{
	p->done = true;
	p->exit_code = -1;
	p->backend_pid[0] = '\0';
}

/* ---- airlockd calls ---- */

static int backend(const char *method, const char *fmt_path, const char *id, const char *extra,
                   const cJSON *body, const void *raw, size_t raw_len, long timeout_ms,
                   struct gw_result *res, struct al_error *err)
{
	_cleanup_free_ char *eid = gw_escape(id);
	_cleanup_free_ char *path = NULL;

	if (!eid || asprintf(&path, fmt_path, eid, extra ? extra : "") < 0)
		return al_error_set(err, ENOMEM, "out of memory");
	return gw_backend_call(&server->backend, method, path, body, raw, raw_len, timeout_ms, res,
	                       err);
}

static int file_query(const char *path, const char *more, char **out)
{
	_cleanup_free_ char *e = gw_escape(path);

	if (!e || asprintf(out, "?path=%s%s", e, more ? more : "") < 0)
		return -ENOMEM;
	return 0;
}

/* ---- streams (Process/Start, Process/Connect) ---- */

struct stream {
	struct sbx *sb;
	struct proc *p;
	int fd; /* the client's socket, to see it hang up */
	struct al_buf pending;
	size_t sent;
	bool finished;
	uint64_t deadline_ms;
	uint64_t quiet_since;
};

static void stream_end(struct stream *st, const char *code, const char *msg)
{
	_cleanup_cjson_ cJSON *end = cJSON_CreateObject();

	if (code) {
		cJSON *e = cJSON_AddObjectToObject(end, "error");
		cJSON_AddStringToObject(e, "code", code);
		cJSON_AddStringToObject(e, "message", msg);
	}
	frame(&st->pending, 0x02, end);
	st->finished = true;
}

static void event(struct stream *st, cJSON *ev)
{
	_cleanup_cjson_ cJSON *msg = cJSON_CreateObject();

	cJSON_AddItemToObject(msg, "event", ev);
	frame(&st->pending, 0, msg);
	st->quiet_since = al_now_ms();
}

static void data_events(struct stream *st, struct al_buf *b, const char *which)
{
	for (size_t off = 0; off < b->len; off += FRAME_CHUNK) {
		size_t n = b->len - off < FRAME_CHUNK ? b->len - off : FRAME_CHUNK;
		_cleanup_free_ char *b64 = al_base64_encode(b->data + off, n);
		cJSON *ev = cJSON_CreateObject();
		cJSON *data = cJSON_AddObjectToObject(ev, "data");
		cJSON_AddStringToObject(data, which, b64 ? b64 : "");
		event(st, ev);
	}
	b->len = 0;
}

static void end_event(struct stream *st, const struct proc *p)
{
	cJSON *ev = cJSON_CreateObject();
	cJSON *end = cJSON_AddObjectToObject(ev, "end");
	char status[64];

	if (p->signal) {
		/* As envd reports a process a signal ended: no exit status of its own. */
		cJSON_AddNumberToObject(end, "exitCode", -1);
		cJSON_AddBoolToObject(end, "exited", false);
		snprintf(status, sizeof(status), "signal: %s", strsignal(p->signal));
	} else {
		cJSON_AddNumberToObject(end, "exitCode", p->exit_code);
		cJSON_AddBoolToObject(end, "exited", true);
		snprintf(status, sizeof(status), "exit status %d", p->exit_code);
	}
	cJSON_AddStringToObject(end, "status", status);
	event(st, ev);
}

/*
 * Whether the client has gone (a caller that yields closes its stream).  Output must
 * stay with the process then, for the next Connect: once drained into this stream's
 * frames it would be written to a dead socket and lost.
 */
static bool peer_gone(const struct stream *st)
{
	struct pollfd pfd = {.fd = st->fd, .events = POLLRDHUP};

	if (st->fd < 0)
		return false;
	return poll(&pfd, 1, 0) > 0 && (pfd.revents & (POLLRDHUP | POLLHUP | POLLERR));
}

/* Move what the process has into frames; true when there was something to move. */
static bool drain(struct stream *st)
{
	bool any = false;

	pthread_mutex_lock(&st->sb->lock);
	if (st->p->out.len || st->p->err.len) {
		data_events(st, &st->p->out, st->p->pty ? "pty" : "stdout");
		data_events(st, &st->p->err, "stderr");
		any = true;
	} else if (st->p->done) {
		end_event(st, st->p);
		stream_end(st, NULL, NULL);
		any = true;
	}
	pthread_mutex_unlock(&st->sb->lock);
	return any;
}

static void poll_backend(struct stream *st)
{
	_cleanup_(gw_result_freep) struct gw_result res = {0};
	struct al_error e = AL_ERROR_INIT;
	_cleanup_free_ char *extra = NULL;
	bool gone;
	char bpid[32];
	int r;

	pthread_mutex_lock(&st->p->io);
	pthread_mutex_lock(&st->sb->lock);
	snprintf(bpid, sizeof(bpid), "%s", st->p->backend_pid);
	pthread_mutex_unlock(&st->sb->lock);
	if (!bpid[0] || asprintf(&extra, "/processes/%s?yield_ms=%d&encoding=base64", bpid,
	                         POLL_YIELD_MS) < 0) {
		pthread_mutex_unlock(&st->p->io);
		return;
	}
	r = backend("GET", "/v1/sandboxes/%s%s", st->sb->backend_id, extra, NULL, NULL, 0, 0, &res,
	            &e);
	pthread_mutex_lock(&st->sb->lock);
	if (r == 0 && res.status == 200 && res.json)
		absorb(st->p, res.json);
	else if (r == 0 && res.status == 404 && strstr(gw_result_message(&res), "process"))
		mark_lost(st->p);
	gone = !st->p->done;
	pthread_mutex_unlock(&st->sb->lock);
	pthread_mutex_unlock(&st->p->io);
	if (r < 0)
		stream_end(st, "unavailable", e.msg);
	else if (res.status == 404 && gone)
		stream_end(st, "not_found", "the sandbox is gone");
	else if (res.status >= 300 && res.status != 404)
		stream_end(st, code_of(res.status), gw_result_message(&res));
}

static void deadline_kill(struct stream *st)
{
	_cleanup_(gw_result_freep) struct gw_result res = {0};
	struct al_error e = AL_ERROR_INIT;
	_cleanup_free_ char *extra = NULL;

	pthread_mutex_lock(&st->sb->lock);
	if (st->p->backend_pid[0] &&
	    asprintf(&extra, "/processes/%s?signal=KILL", st->p->backend_pid) < 0)
		extra = NULL;
	pthread_mutex_unlock(&st->sb->lock);
	if (extra)
		backend("DELETE", "/v1/sandboxes/%s%s", st->sb->backend_id, extra, NULL, NULL, 0, 0,
		        &res, &e);
	stream_end(st, "deadline_exceeded", "the command ran past its Connect-Timeout-Ms");
}

static ssize_t stream_read(void *cls, uint64_t pos, char *buf, size_t max)
{
	struct stream *st = cls;

	(void)pos;
	for (;;) {
		if (st->sent < st->pending.len) {
			size_t n = st->pending.len - st->sent;
			if (n > max)
				n = max;
			memcpy(buf, st->pending.data + st->sent, n);
			st->sent += n;
			if (st->sent == st->pending.len)
				st->sent = st->pending.len = 0;
			return (ssize_t)n;
		}
		if (st->finished)
			return MHD_CONTENT_READER_END_OF_STREAM;
		if (stopping) {
			stream_end(st, "unavailable", "the gateway is stopping");
			continue;
		}
		if (peer_gone(st))
			return MHD_CONTENT_READER_END_WITH_ERROR;
		if (drain(st))
			continue;
		if (st->deadline_ms && al_now_ms() >= st->deadline_ms) {
			deadline_kill(st);
			continue;
		}
		if (al_now_ms() - st->quiet_since >= KEEPALIVE_MS) {
			cJSON *ev = cJSON_CreateObject();
			cJSON_AddObjectToObject(ev, "keepalive");
			event(st, ev);
			continue;
		}
		poll_backend(st);
	}
}

static void stream_free(void *cls)
{
	struct stream *st = cls;

	al_buf_free(&st->pending);
	sbx_release(st->sb);
	free(st);
}

/* Answer with a stream of p's events; takes the reference on sb. */
static enum MHD_Result start_stream(struct gw_request *rq, struct sbx *sb, struct proc *p)
{
	struct stream *st = calloc(1, sizeof(*st));
	const char *timeout = gw_header(rq, "Connect-Timeout-Ms");
	struct MHD_Response *resp;
	cJSON *ev;

	if (!st) {
		sbx_release(sb);
		return MHD_NO;
	}
	st->sb = sb;
	st->p = p;
	st->quiet_since = al_now_ms();
	{
		const union MHD_ConnectionInfo *ci =
		    MHD_get_connection_info(rq->conn, MHD_CONNECTION_INFO_CONNECTION_FD);
		st->fd = ci ? ci->connect_fd : -1;
	}
	if (timeout && strtoull(timeout, NULL, 10) > 0)
		st->deadline_ms = al_now_ms() + strtoull(timeout, NULL, 10);
	ev = cJSON_CreateObject();
	cJSON_AddNumberToObject(cJSON_AddObjectToObject(ev, "start"), "pid", p->pid);
	event(st, ev);
	resp = MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, 64 * 1024, stream_read, st,
	                                         stream_free);
	if (!resp) {
		stream_free(st);
		return MHD_NO;
	}
	MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, "application/connect+json");
	return gw_reply_response(rq, 200, resp);
}

/* A streaming call that fails before it starts: 200 and an end-stream error. */
static enum MHD_Result stream_error(struct gw_request *rq, const char *code, const char *msg)
{
	_cleanup_buf_ struct al_buf b = {0};
	_cleanup_cjson_ cJSON *end = cJSON_CreateObject();
	cJSON *e = cJSON_AddObjectToObject(end, "error");

	cJSON_AddStringToObject(e, "code", code);
	cJSON_AddStringToObject(e, "message", msg);
	if (frame(&b, 0x02, end) < 0)
		return MHD_NO;
	return gw_reply(rq, 200, "application/connect+json", b.data, b.len);
}

/* ---- envd: processes ---- */

static enum MHD_Result process_start(struct gw_request *rq, struct sbx *sb)
{
	_cleanup_(sbx_releasep) _unused_ struct sbx *held = sb;
	_cleanup_cjson_ cJSON *req = parse_envelope(rq);
	_cleanup_cjson_ cJSON *body = cJSON_CreateObject();
	_cleanup_(gw_result_freep) struct gw_result res = {0};
	struct al_error e = AL_ERROR_INIT;
	const cJSON *cfg = cJSON_GetObjectItemCaseSensitive(req, "process");
	const cJSON *a, *envs, *pty;
	const char *cmd = al_json_str(cfg, "cmd");
	struct proc *p;
	cJSON *argv;
	int r;

	if (!req || !cmd || !*cmd)
		return stream_error(rq, "invalid_argument",
		                    "expected one Connect envelope with process.cmd");
	pty = cJSON_GetObjectItemCaseSensitive(req, "pty");
	if (pty && !cJSON_IsObject(pty))
		return stream_error(rq, "invalid_argument", "pty must be an object");
	argv = cJSON_AddArrayToObject(body, "argv");
	cJSON_AddItemToArray(argv, cJSON_CreateString(cmd));
	cJSON_ArrayForEach(a, cJSON_GetObjectItemCaseSensitive(cfg, "args"))
	{
		if (!cJSON_IsString(a))
			return stream_error(rq, "invalid_argument", "process.args must be strings");
		cJSON_AddItemToArray(argv, cJSON_CreateString(a->valuestring));
	}
	envs = cJSON_GetObjectItemCaseSensitive(cfg, "envs");
	if (cJSON_IsObject(envs) && cJSON_GetArraySize(envs) > 0)
		cJSON_AddItemToObject(body, "env", cJSON_Duplicate(envs, 1));
	if (al_json_str(cfg, "cwd") && *al_json_str(cfg, "cwd"))
		cJSON_AddStringToObject(body, "cwd", al_json_str(cfg, "cwd"));
	cJSON_AddBoolToObject(body, "keep_stdin_open",
	                      pty || cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(req, "stdin")));
	if (pty) {
		/* airlockd's terminal: what is typed comes by SendInput's pty,
		 * the screen goes out as data.pty, Update resizes it. */
		const cJSON *size = cJSON_GetObjectItemCaseSensitive(pty, "size");
		double rows = al_json_num(size, "rows", 0), cols = al_json_num(size, "cols", 0);
		cJSON_AddTrueToObject(body, "tty");
		if (rows >= 1 && rows <= 65535 && cols >= 1 && cols <= 65535) {
			cJSON_AddNumberToObject(body, "rows", (int)rows);
			cJSON_AddNumberToObject(body, "cols", (int)cols);
		}
	}
	cJSON_AddNumberToObject(body, "timeout_ms", 0);
	cJSON_AddNumberToObject(body, "yield_ms", START_YIELD_MS);
	cJSON_AddNumberToObject(body, "max_output_bytes", MAX_OUTPUT_PER_CALL);
	cJSON_AddStringToObject(body, "encoding", "base64");
	r = backend("POST", "/v1/sandboxes/%s/exec%s", sb->backend_id, NULL, body, NULL, 0, 0, &res,
	            &e);
	if (r < 0)
		return stream_error(rq, "unavailable", e.msg);
	if (res.status != 200 || !res.json)
		return stream_error(rq, code_of(res.status), gw_result_message(&res));
	p = calloc(1, sizeof(*p));
	if (!p)
		return MHD_NO;
	pthread_mutex_init(&p->io, NULL);
	p->config = cJSON_Duplicate(cfg, 1);
	p->pty = pty != NULL;
	if (al_json_str(req, "tag"))
		p->tag = strdup(al_json_str(req, "tag"));
	pthread_mutex_lock(&sb->lock);
	p->pid = ++sb->next_pid;
	if (al_json_str(res.json, "process_id"))
		snprintf(p->backend_pid, sizeof(p->backend_pid), "%s",
		         al_json_str(res.json, "process_id"));
	absorb(p, res.json);
	p->next = sb->procs;
	sb->procs = p;
	pthread_mutex_unlock(&sb->lock);
	return start_stream(rq, TAKE_PTR(held), p);
}

static enum MHD_Result process_connect(struct gw_request *rq, struct sbx *sb)
{
	_cleanup_(sbx_releasep) _unused_ struct sbx *held = sb;
	_cleanup_cjson_ cJSON *req = parse_envelope(rq);
	struct proc *p;

	pthread_mutex_lock(&sb->lock);
	p = proc_find(sb, cJSON_GetObjectItemCaseSensitive(req, "process"));
	pthread_mutex_unlock(&sb->lock);
	if (!p)
		return stream_error(rq, "not_found", "no such process");
	return start_stream(rq, TAKE_PTR(held), p);
}

/* Unary calls that act on one running process. */
static enum MHD_Result process_unary(struct gw_request *rq, struct sbx *sb, const char *method)
{
	_cleanup_(sbx_releasep) _unused_ struct sbx *held = sb;
	_cleanup_cjson_ cJSON *req =
	    cJSON_ParseWithLength(rq->body.data ? rq->body.data : "", rq->body.len);
	_cleanup_cjson_ cJSON *body = cJSON_CreateObject();
	_cleanup_cjson_ cJSON *ok = cJSON_CreateObject();
	_cleanup_(gw_result_freep) struct gw_result res = {0};
	_cleanup_free_ char *extra = NULL;
	struct al_error e = AL_ERROR_INIT;
	_cleanup_(mutex_unlockp) pthread_mutex_t *io = NULL;
	char bpid[32];
	struct proc *p;
	const char *http_method = "POST";
	int r;

	if (!strcmp(method, "List")) {
		cJSON *list = cJSON_AddArrayToObject(ok, "processes");
		pthread_mutex_lock(&sb->lock);
		for (p = sb->procs; p; p = p->next) {
			cJSON *o;
			if (p->done)
				continue;
			o = cJSON_CreateObject();
			cJSON_AddItemToObject(o, "config", cJSON_Duplicate(p->config, 1));
			cJSON_AddNumberToObject(o, "pid", p->pid);
			if (p->tag)
				cJSON_AddStringToObject(o, "tag", p->tag);
			cJSON_AddItemToArray(list, o);
		}
		pthread_mutex_unlock(&sb->lock);
		return gw_reply_json(rq, 200, ok);
	}
	if (!req)
		return rpc_error(rq, "invalid_argument", "the body is not JSON");
	pthread_mutex_lock(&sb->lock);
	p = proc_find(sb, cJSON_GetObjectItemCaseSensitive(req, "process"));
	pthread_mutex_unlock(&sb->lock);
	if (!p)
		return rpc_error(rq, "not_found", "no such process");
	/* Unlocked when this function returns (struct proc). */
	io = &p->io;
	pthread_mutex_lock(io);
	pthread_mutex_lock(&sb->lock);
	snprintf(bpid, sizeof(bpid), "%s", p->backend_pid);
	pthread_mutex_unlock(&sb->lock);
	if (!bpid[0])
		return rpc_error(rq, "not_found", "process %u has ended", p->pid);
	if (!strcmp(method, "SendSignal")) {
		const cJSON *sig = cJSON_GetObjectItemCaseSensitive(req, "signal");
		const char *name = "KILL";
		if ((cJSON_IsString(sig) && !strcmp(sig->valuestring, "SIGNAL_SIGTERM")) ||
		    (cJSON_IsNumber(sig) && sig->valueint == 15))
			name = "TERM";
		else if (!(cJSON_IsString(sig) && !strcmp(sig->valuestring, "SIGNAL_SIGKILL")) &&
		         !(cJSON_IsNumber(sig) && sig->valueint == 9))
			return rpc_error(rq, "invalid_argument",
			                 "signal must be SIGNAL_SIGKILL or SIGNAL_SIGTERM");
		if (asprintf(&extra, "/processes/%s?signal=%s", bpid, name) < 0)
			return MHD_NO;
		http_method = "DELETE";
		cJSON_Delete(body);
		body = NULL;
	} else if (!strcmp(method, "SendInput") || !strcmp(method, "CloseStdin")) {
		const cJSON *in = cJSON_GetObjectItemCaseSensitive(req, "input");
		if (!strcmp(method, "SendInput")) {
			/* A terminal's input is typed into it: the same stdin. */
			const char *data = al_json_str(in, "pty") ? al_json_str(in, "pty")
			                                          : al_json_str(in, "stdin");
			cJSON_AddStringToObject(body, "data_base64", data ? data : "");
		} else {
			cJSON_AddBoolToObject(body, "close", true);
		}
		cJSON_AddNumberToObject(body, "yield_ms", 0);
		cJSON_AddStringToObject(body, "encoding", "base64");
		if (asprintf(&extra, "/processes/%s/stdin", bpid) < 0)
			return MHD_NO;
	} else if (!strcmp(method, "Update")) {
		const cJSON *size = cJSON_GetObjectItemCaseSensitive(
		    cJSON_GetObjectItemCaseSensitive(req, "pty"), "size");
		if (!size)
			return rpc_error(rq, "invalid_argument", "Update needs pty.size");
		cJSON_AddNumberToObject(body, "rows", al_json_num(size, "rows", 0));
		cJSON_AddNumberToObject(body, "cols", al_json_num(size, "cols", 0));
		if (asprintf(&extra, "/processes/%s/resize", bpid) < 0)
			return MHD_NO;
	} else {
		return rpc_error(rq, "unimplemented", "process.Process/%s is not served here",
		                 method);
	}
	r = backend(http_method, "/v1/sandboxes/%s%s", sb->backend_id, extra, body, NULL, 0, 0,
	            &res, &e);
	if (r < 0)
		return rpc_error(rq, "unavailable", "%s", e.msg);
	if (res.status == 404) {
		pthread_mutex_lock(&sb->lock);
		if (!p->done)
			mark_lost(p);
		pthread_mutex_unlock(&sb->lock);
		return rpc_error(rq, "not_found", "process %u has ended", p->pid);
	}
	if (res.status != 200)
		return rpc_error(rq, code_of(res.status), "%s", gw_result_message(&res));
	/* A stdin write answers like a poll; a kill and a resize say nothing of output. */
	if (res.json && strcmp(http_method, "DELETE") && strcmp(method, "Update")) {
		pthread_mutex_lock(&sb->lock);
		absorb(p, res.json);
		pthread_mutex_unlock(&sb->lock);
	}
	return gw_reply_json(rq, 200, ok);
}

/* ---- envd: files ---- */

static cJSON *entry_info(const char *path, const char *name, const char *type, double size,
                         const char *mode)
{
	cJSON *o = cJSON_CreateObject();
	unsigned long m = mode ? strtoul(mode, NULL, 8) : 0;

	cJSON_AddStringToObject(o, "name", name);
	cJSON_AddStringToObject(o, "type",
	                        !strcmp(type, "dir")       ? "FILE_TYPE_DIRECTORY"
	                        : !strcmp(type, "symlink") ? "FILE_TYPE_SYMLINK"
	                        : !strcmp(type, "file")    ? "FILE_TYPE_FILE"
	                                                   : "FILE_TYPE_UNSPECIFIED");
	cJSON_AddStringToObject(o, "path", path);
	cJSON_AddNumberToObject(o, "size", size);
	cJSON_AddNumberToObject(o, "mode", (double)m);
	cJSON_AddStringToObject(o, "owner", "root");
	cJSON_AddStringToObject(o, "group", "root");
	return o;
}

/* What airlockd's listing of the parent says about path; -ENOENT when absent. */
static int stat_path(struct sbx *sb, const char *path, cJSON **entry, struct al_error *err)
{
	_cleanup_free_ char *copy = strdup(path);
	_cleanup_free_ char *q = NULL;
	_cleanup_(gw_result_freep) struct gw_result res = {0};
	const cJSON *e;
	char *slash, *name;
	const char *dir;
	int r;

	if (!copy)
		return -ENOMEM;
	while (strlen(copy) > 1 && copy[strlen(copy) - 1] == '/')
		copy[strlen(copy) - 1] = '\0';
	if (!strcmp(copy, "/")) {
		*entry = entry_info("/", "/", "dir", 0, "0755");
		return 0;
	}
	slash = strrchr(copy, '/');
	if (slash) {
		*slash = '\0';
		dir = slash == copy ? "/" : copy;
		name = slash + 1;
	} else {
		dir = ".";
		name = copy;
	}
	if (file_query(dir, NULL, &q) < 0)
		return -ENOMEM;
	r = backend("GET", "/v1/sandboxes/%s/dirs%s", sb->backend_id, q, NULL, NULL, 0, 0, &res,
	            err);
	if (r < 0)
		return r;
	if (res.status != 200)
		return al_error_set(err, res.status == 404 ? ENOENT : EIO, "%s: %s", path,
		                    gw_result_message(&res));
	cJSON_ArrayForEach(e, cJSON_GetObjectItemCaseSensitive(res.json, "entries"))
	{
		const cJSON *size = cJSON_GetObjectItemCaseSensitive(e, "size");
		if (!al_json_str(e, "name") || strcmp(al_json_str(e, "name"), name))
			continue;
		*entry = entry_info(
		    path, name, al_json_str(e, "type") ? al_json_str(e, "type") : "other",
		    cJSON_IsNumber(size) ? size->valuedouble : 0, al_json_str(e, "mode"));
		return 0;
	}
	return al_error_set(err, ENOENT, "%s: no such file or directory", path);
}

static int list_into(struct sbx *sb, const char *path, int depth, cJSON *out, struct al_error *err)
{
	_cleanup_free_ char *q = NULL;
	_cleanup_(gw_result_freep) struct gw_result res = {0};
	const cJSON *e;
	int r;

	if (file_query(path, NULL, &q) < 0)
		return -ENOMEM;
	r = backend("GET", "/v1/sandboxes/%s/dirs%s", sb->backend_id, q, NULL, NULL, 0, 0, &res,
	            err);
	if (r < 0)
		return r;
	if (res.status != 200)
		return al_error_set(err,
		                    res.status == 404   ? ENOENT
		                    : res.status == 400 ? ENOTDIR
		                                        : EIO,
		                    "%s: %s", path, gw_result_message(&res));
	cJSON_ArrayForEach(e, cJSON_GetObjectItemCaseSensitive(res.json, "entries"))
	{
		const cJSON *size = cJSON_GetObjectItemCaseSensitive(e, "size");
		const char *name = al_json_str(e, "name"), *type = al_json_str(e, "type");
		_cleanup_free_ char *full = NULL;
		if (!name || !type)
			continue;
		full = join_path(path, name);
		if (!full)
			return -ENOMEM;
		cJSON_AddItemToArray(out, entry_info(full, name, type,
		                                     cJSON_IsNumber(size) ? size->valuedouble : 0,
		                                     al_json_str(e, "mode")));
		if (depth > 1 && !strcmp(type, "dir") &&
		    (r = list_into(sb, full, depth - 1, out, err)) < 0)
			return r;
	}
	return 0;
}

static enum MHD_Result filesystem_rpc(struct gw_request *rq, struct sbx *sb, const char *method)
{
	_cleanup_(sbx_releasep) _unused_ struct sbx *held = sb;
	_cleanup_cjson_ cJSON *req =
	    cJSON_ParseWithLength(rq->body.data ? rq->body.data : "", rq->body.len);
	_cleanup_cjson_ cJSON *ok = cJSON_CreateObject();
	_cleanup_(gw_result_freep) struct gw_result res = {0};
	_cleanup_free_ char *q = NULL;
	struct al_error e = AL_ERROR_INIT;
	const char *path = al_json_str(req, "path");
	cJSON *entry = NULL;
	int r;

	if (!req)
		return rpc_error(rq, "invalid_argument", "the body is not JSON");
	if (!strcmp(method, "Move")) {
		_cleanup_cjson_ cJSON *body = cJSON_CreateObject();
		cJSON *argv = cJSON_AddArrayToObject(body, "argv");
		const char *src = al_json_str(req, "source"),
		           *dst = al_json_str(req, "destination");
		if (!src || !dst)
			return rpc_error(rq, "invalid_argument",
			                 "Move needs source and destination");
		cJSON_AddItemToArray(argv, cJSON_CreateString("mv"));
		cJSON_AddItemToArray(argv, cJSON_CreateString("--"));
		cJSON_AddItemToArray(argv, cJSON_CreateString(src));
		cJSON_AddItemToArray(argv, cJSON_CreateString(dst));
		r = backend("POST", "/v1/sandboxes/%s/exec%s", sb->backend_id, NULL, body, NULL, 0,
		            0, &res, &e);
		if (r < 0)
			return rpc_error(rq, "unavailable", "%s", e.msg);
		if (res.status != 200)
			return rpc_error(rq, code_of(res.status), "%s", gw_result_message(&res));
		if (cJSON_GetObjectItemCaseSensitive(res.json, "exit_code")->valueint != 0)
			return rpc_error(
			    rq, "not_found", "move %s: %s", src,
			    al_json_str(res.json, "stderr") ? al_json_str(res.json, "stderr") : "");
		path = dst;
	}
	if (!path || !*path)
		return rpc_error(rq, "invalid_argument", "path is required");
	if (!strcmp(method, "MakeDir")) {
		if (stat_path(sb, path, &entry, &e) == 0) {
			cJSON_Delete(entry);
			return rpc_error(rq, "already_exists", "%s already exists", path);
		}
		if (file_query(path, "&parents=1", &q) < 0)
			return MHD_NO;
		r = backend("POST", "/v1/sandboxes/%s/dirs%s", sb->backend_id, q, NULL, NULL, 0, 0,
		            &res, &e);
		if (r < 0)
			return rpc_error(rq, "unavailable", "%s", e.msg);
		if (res.status >= 300)
			return rpc_error(rq, code_of(res.status), "%s", gw_result_message(&res));
	} else if (!strcmp(method, "Remove")) {
		if (file_query(path, "&recursive=1", &q) < 0)
			return MHD_NO;
		r = backend("DELETE", "/v1/sandboxes/%s/files%s", sb->backend_id, q, NULL, NULL, 0,
		            0, &res, &e);
		if (r < 0)
			return rpc_error(rq, "unavailable", "%s", e.msg);
		if (res.status >= 300)
			return rpc_error(rq, code_of(res.status), "%s: %s", path,
			                 gw_result_message(&res));
		return gw_reply_json(rq, 200, ok);
	} else if (!strcmp(method, "ListDir")) {
		const cJSON *depth = cJSON_GetObjectItemCaseSensitive(req, "depth");
		cJSON *entries = cJSON_AddArrayToObject(ok, "entries");
		int d = cJSON_IsNumber(depth) && depth->valueint > 0 ? depth->valueint : 1;
		r = list_into(sb, path, d > 16 ? 16 : d, entries, &e);
		if (r < 0)
			return rpc_error(rq,
			                 r == -ENOENT    ? "not_found"
			                 : r == -ENOTDIR ? "invalid_argument"
			                                 : "internal",
			                 "%s", e.msg);
		return gw_reply_json(rq, 200, ok);
	} else if (strcmp(method, "Stat") && strcmp(method, "Move")) {
		return rpc_error(rq, "unimplemented", "filesystem.Filesystem/%s is not served here",
		                 method);
	}
	r = stat_path(sb, path, &entry, &e);
	if (r < 0)
		return rpc_error(rq, r == -ENOENT ? "not_found" : "internal", "%s", e.msg);
	cJSON_AddItemToObject(ok, "entry", entry);
	return gw_reply_json(rq, 200, ok);
}

static enum MHD_Result files_get(struct gw_request *rq, struct sbx *sb)
{
	_cleanup_(sbx_releasep) _unused_ struct sbx *held = sb;
	_cleanup_(gw_result_freep) struct gw_result res = {0};
	_cleanup_free_ char *q = NULL;
	struct al_error e = AL_ERROR_INIT;
	const char *path = gw_query(rq, "path");
	int r;

	if (!path || !*path)
		return api_error(rq, 400, "path is required");
	if (file_query(path, NULL, &q) < 0)
		return MHD_NO;
	r = backend("GET", "/v1/sandboxes/%s/files%s", sb->backend_id, q, NULL, NULL, 0, 0, &res,
	            &e);
	if (r < 0)
		return api_error(rq, 502, "%s", e.msg);
	if (res.status == 404)
		return api_error(rq, 404, "path '%s' does not exist", path);
	if (res.status != 200)
		return api_error(rq, (unsigned)res.status, "%s: %s", path, gw_result_message(&res));
	return gw_reply(rq, 200, "application/octet-stream", res.body.data, res.body.len);
}

static int put_file(struct sbx *sb, const char *path, const struct al_buf *data,
                    struct al_error *err)
{
	_cleanup_(gw_result_freep) struct gw_result res = {0};
	_cleanup_free_ char *q = NULL;
	int r;

	if (file_query(path, "&mode=0644&parents=1", &q) < 0)
		return al_error_set(err, ENOMEM, "out of memory");
	r = backend("PUT", "/v1/sandboxes/%s/files%s", sb->backend_id, q, NULL,
	            data->data ? data->data : "", data->len, 0, &res, err);
	if (r < 0)
		return r;
	if (res.status != 200)
		return al_error_set(err, res.status == 404 ? ENOENT : EIO, "%s: %s", path,
		                    gw_result_message(&res));
	return 0;
}

static enum MHD_Result files_post(struct gw_request *rq, struct sbx *sb)
{
	_cleanup_(sbx_releasep) _unused_ struct sbx *held = sb;
	_cleanup_cjson_ cJSON *out = cJSON_CreateArray();
	struct al_error e = AL_ERROR_INIT;
	const char *qpath = gw_query(rq, "path");
	size_t files = 0;

	for (size_t i = 0; i < rq->n_parts; i++)
		files += rq->parts[i].filename != NULL;
	if (!rq->multipart && !qpath)
		return api_error(rq, 400, "path is required");
	if (rq->multipart && files == 0)
		return api_error(rq, 400, "the multipart body has no file part");
	for (size_t i = 0; i < (rq->multipart ? rq->n_parts : 1); i++) {
		const char *dest = qpath;
		const struct al_buf *data = &rq->body;
		const char *base;
		cJSON *o;
		if (rq->multipart) {
			if (!rq->parts[i].filename)
				continue;
			/* One file: the query names it; several: each part's file name does. */
			if (files > 1 || !dest)
				dest = rq->parts[i].filename;
			data = &rq->parts[i].data;
		}
		if (!dest || !*dest)
			return api_error(rq, 400, "a file part has no destination path");
		if (put_file(sb, dest, data, &e) < 0)
			return api_error(rq, e.code == ENOENT ? 404 : 500, "%s", e.msg);
		base = strrchr(dest, '/') ? strrchr(dest, '/') + 1 : dest;
		o = cJSON_CreateObject();
		cJSON_AddStringToObject(o, "name", base);
		cJSON_AddStringToObject(o, "type", "file");
		cJSON_AddStringToObject(o, "path", dest);
		cJSON_AddItemToArray(out, o);
	}
	return gw_reply_json(rq, 200, out);
}

/* ---- the control plane ---- */

/* X-API-KEY, as the SDK sends it, or else a Bearer key (docs/gateway.md). */
static const char *tenant_of(struct gw_request *rq)
{
	const char *key = gw_header(rq, "X-API-KEY");

	if (key && *key)
		return gw_keys_tenant(&server->keys, key);
	return gw_bearer_tenant(server, rq, "Authorization");
}

static cJSON *sandbox_json(const struct sbx *sb, bool with_token)
{
	cJSON *o = cJSON_CreateObject();
	char when[64];
	struct tm tm;

	cJSON_AddStringToObject(o, "templateID", sb->template_id);
	cJSON_AddStringToObject(o, "sandboxID", sb->id);
	cJSON_AddStringToObject(o, "clientID", "airlock");
	cJSON_AddStringToObject(o, "envdVersion", ENVD_VERSION);
	if (with_token)
		cJSON_AddStringToObject(o, "envdAccessToken", sb->token);
	gmtime_r(&sb->started, &tm);
	strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%SZ", &tm);
	cJSON_AddStringToObject(o, "startedAt", when);
	gmtime_r(&sb->end_at, &tm);
	strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%SZ", &tm);
	cJSON_AddStringToObject(o, "endAt", when);
	cJSON_AddStringToObject(o, "state", sb->paused_snapshot ? "paused" : "running");
	cJSON_AddNumberToObject(o, "cpuCount", 1);
	cJSON_AddNumberToObject(o, "memoryMB", 1024);
	cJSON_AddNumberToObject(o, "diskSizeMB", 4096);
	cJSON_AddItemToObject(
	    o, "metadata", sb->metadata ? cJSON_Duplicate(sb->metadata, 1) : cJSON_CreateObject());
	return o;
}

static int timeout_of(const cJSON *body, int def)
{
	const cJSON *t = cJSON_GetObjectItemCaseSensitive(body, "timeout");
	int v = cJSON_IsNumber(t) ? t->valueint : def;

	return v < 1 ? 1 : v > MAX_TIMEOUT_S ? MAX_TIMEOUT_S : v;
}

/* A new airlockd sandbox, from a snapshot when snapshot is set. */
static int backend_create(const char *name, const cJSON *env, const char *snapshot,
                          char **backend_id, struct gw_result *res, struct al_error *err)
{
	struct gw_new_sandbox ns = {.name = name,
	                            .snapshot = snapshot,
	                            .rootfs = server->rootfs,
	                            .image = server->image,
	                            .env = env};

	return gw_backend_create(&server->backend, &ns, backend_id, res, err);
}

static enum MHD_Result sandbox_create(struct gw_request *rq, const char *tenant)
{
	_cleanup_cjson_ cJSON *body = cJSON_ParseWithLength(rq->body.data ? rq->body.data : "{}",
	                                                    rq->body.len ? rq->body.len : 2);
	_cleanup_(gw_result_freep) struct gw_result res = {0};
	struct al_error e = AL_ERROR_INIT;
	const char *tmpl;
	const cJSON *env;
	struct sbx *sb;
	char name[40];
	int r;

	if (!cJSON_IsObject(body))
		return api_error(rq, 400, "the body must be a JSON object");
	tmpl = al_json_str(body, "templateID");
	if (!tmpl || !*tmpl)
		tmpl = "base";
	if (strcmp(tmpl, "base") && !snap_owned(tmpl, tenant))
		return api_error(rq, 404, "template '%s' not found", tmpl);
	env = cJSON_GetObjectItemCaseSensitive(body, "envVars");
	if (env && !cJSON_IsNull(env) && !cJSON_IsObject(env))
		return api_error(rq, 400, "envVars must be an object");
	sb = calloc(1, sizeof(*sb));
	if (!sb)
		return MHD_NO;
	pthread_mutex_init(&sb->lock, NULL);
	sb->id[0] = 'i';
	if (al_random_hex(sb->id + 1, 20, &e) < 0 || al_random_hex(sb->token, 32, &e) < 0) {
		sbx_free(sb);
		return api_error(rq, 500, "%s", e.msg);
	}
	snprintf(name, sizeof(name), "e2b-%s", sb->id);
	r = backend_create(name, env, strcmp(tmpl, "base") ? tmpl : NULL, &sb->backend_id, &res,
	                   &e);
	if (r < 0) {
		sbx_free(sb);
		return api_error(rq, res.status == 400 ? 400 : 500, "cannot create the sandbox: %s",
		                 e.msg);
	}
	if (gw_entry_init(&sb->entry, tenant) < 0 || !(sb->template_id = strdup(tmpl))) {
		gw_backend_discard(&server->backend, sb->backend_id);
		sbx_free(sb);
		return MHD_NO;
	}
	sb->entry.id = sb->id;
	sb->metadata = cJSON_Duplicate(cJSON_GetObjectItemCaseSensitive(body, "metadata"), 1);
	sb->started = time(NULL);
	sb->end_at = sb->started + timeout_of(body, DEFAULT_TIMEOUT_S);
	gw_registry_add(&registry, &sb->entry);
	log_info("tenant %s: sandbox %s is airlockd's %s", tenant, sb->id, sb->backend_id);
	{
		_cleanup_(sbx_releasep) struct sbx *mine = sb; /* the creation's reference */
		_cleanup_cjson_ cJSON *out = sandbox_json(mine, true);
		return gw_reply_json(rq, 201, out);
	}
}

/* What the sandbox holds in airlockd goes (a registry's discard). */
static void sandbox_discard(struct gw_entry *e)
{
	struct sbx *sb = (struct sbx *)e;

	if (sb->paused_snapshot)
		gw_backend_discard_snapshot(&server->backend, sb->paused_snapshot);
	else
		gw_backend_discard(&server->backend, sb->backend_id);
}

static void sandbox_remove(struct sbx *sb)
{
	if (gw_registry_remove(&registry, &sb->entry))
		sandbox_discard(&sb->entry);
}

/* A snapshot of sb in airlockd; its id, or NULL with err set. */
static char *take_snapshot(struct sbx *sb, bool processes, struct al_error *err)
{
	_cleanup_cjson_ cJSON *body = cJSON_CreateObject();
	_cleanup_(gw_result_freep) struct gw_result res = {0};
	int r;

	cJSON_AddBoolToObject(body, "processes", processes);
	r = backend("POST", "/v1/sandboxes/%s/snapshots%s", sb->backend_id, NULL, body, NULL, 0, 0,
	            &res, err);
	if (r < 0)
		return NULL;
	if (res.status != 201 || !al_json_str(res.json, "id")) {
		al_error_set(err, EIO, "snapshot: %s", gw_result_message(&res));
		return NULL;
	}
	return strdup(al_json_str(res.json, "id"));
}

/* Pause: a snapshot (with processes where CRIU can) replaces the running sandbox. */
static enum MHD_Result sandbox_pause(struct gw_request *rq, struct sbx *sb)
{
	struct al_error e = AL_ERROR_INIT;
	char *snap;

	if (sb->paused_snapshot)
		return api_error(rq, 409, "sandbox %s is already paused", sb->id);
	snap = take_snapshot(sb, true, &e);
	if (!snap) {
		log_warn("pause %s with processes: %s; pausing the filesystem only", sb->id, e.msg);
		snap = take_snapshot(sb, false, &e);
	}
	if (!snap)
		return api_error(rq, 500, "cannot pause: %s", e.msg);
	gw_backend_discard(&server->backend, sb->backend_id);
	gw_registry_lock(&registry);
	sb->paused_snapshot = snap;
	gw_registry_unlock(&registry);
	gw_registry_save(&registry);
	return gw_reply(rq, 204, NULL, "", 0);
}

static enum MHD_Result sandbox_connect(struct gw_request *rq, struct sbx *sb)
{
	_cleanup_cjson_ cJSON *body = cJSON_ParseWithLength(rq->body.data ? rq->body.data : "{}",
	                                                    rq->body.len ? rq->body.len : 2);
	_cleanup_(gw_result_freep) struct gw_result res = {0};
	_cleanup_cjson_ cJSON *out = NULL;
	struct al_error e = AL_ERROR_INIT;
	time_t end;

	if (sb->paused_snapshot) {
		char name[40], *id = NULL;
		snprintf(name, sizeof(name), "e2b-%s", sb->id);
		if (backend_create(name, NULL, sb->paused_snapshot, &id, &res, &e) < 0)
			return api_error(rq, 500, "cannot resume: %s", e.msg);
		/* The old snapshot is the sandbox's no more: the registry names the new one. */
		gw_backend_discard_snapshot(&server->backend, sb->paused_snapshot);
		gw_registry_lock(&registry);
		free(sb->backend_id);
		sb->backend_id = id;
		free(sb->paused_snapshot);
		sb->paused_snapshot = NULL;
		gw_registry_unlock(&registry);
	}
	end = time(NULL) + timeout_of(body, DEFAULT_TIMEOUT_S);
	if (end > sb->end_at)
		sb->end_at = end;
	gw_registry_save(&registry);
	out = sandbox_json(sb, true);
	return gw_reply_json(rq, 200, out);
}

static bool path_is(const char *url, const char *prefix, const char **id, const char **rest)
{
	size_t n = strlen(prefix);
	const char *slash;

	if (strncmp(url, prefix, n) || !url[n])
		return false;
	*id = url + n;
	slash = strchr(*id, '/');
	*rest = slash ? slash : "";
	return true;
}

static cJSON *show(const struct gw_entry *e, void *ctx)
{
	(void)ctx;
	return sandbox_json((const struct sbx *)e, false);
}

static enum MHD_Result control_plane(struct gw_request *rq, const char *tenant)
{
	const char *url = rq->url, *id = NULL, *rest = "";
	char idbuf[64];
	bool post = !strcmp(rq->method, "POST"), get = !strcmp(rq->method, "GET");

	if ((!strcmp(url, "/sandboxes") || !strcmp(url, "/v2/sandboxes")) && post)
		return sandbox_create(rq, tenant);
	if ((!strcmp(url, "/sandboxes") || !strcmp(url, "/v2/sandboxes")) && get) {
		_cleanup_cjson_ cJSON *list = gw_registry_list(&registry, tenant, show, NULL);
		return gw_reply_json(rq, 200, list);
	}
	if (path_is(url, "/templates/", &id, &rest) && !*rest && !strcmp(rq->method, "DELETE")) {
		/* Snapshots are templates to E2B: Sandbox.deleteSnapshot() lands here. */
		if (!snap_take(id, tenant))
			return api_error(rq, 404, "template '%s' not found", id);
		gw_registry_save(&registry);
		gw_backend_discard_snapshot(&server->backend, id);
		return gw_reply(rq, 204, NULL, "", 0);
	}
	if (!path_is(url, "/v2/sandboxes/", &id, &rest) && !path_is(url, "/sandboxes/", &id, &rest))
		return api_error(rq, 404, "no such route: %s %s", rq->method, url);
	snprintf(idbuf, sizeof(idbuf), "%.*s", (int)(rest - id), id);
	{
		_cleanup_(sbx_releasep) struct sbx *sb = sbx_get(idbuf, tenant);
		struct al_error e = AL_ERROR_INIT;
		if (!sb)
			return api_error(
			    rq, 404, "sandbox \"%s\" doesn't exist or you don't have access to it",
			    idbuf);
		if (!*rest && get) {
			_cleanup_cjson_ cJSON *out = sandbox_json(sb, false);
			return gw_reply_json(rq, 200, out);
		}
		if (!*rest && !strcmp(rq->method, "DELETE")) {
			sandbox_remove(sb);
			return gw_reply(rq, 204, NULL, "", 0);
		}
		if (!strcmp(rest, "/connect") && post)
			return sandbox_connect(rq, sb);
		if (!strcmp(rest, "/resume") && post)
			return sandbox_connect(rq, sb);
		if (!strcmp(rest, "/pause") && post)
			return sandbox_pause(rq, sb);
		if (!strcmp(rest, "/timeout") && post) {
			_cleanup_cjson_ cJSON *body = cJSON_ParseWithLength(
			    rq->body.data ? rq->body.data : "{}", rq->body.len ? rq->body.len : 2);
			sb->end_at = time(NULL) + timeout_of(body, DEFAULT_TIMEOUT_S);
			gw_registry_save(&registry);
			return gw_reply(rq, 204, NULL, "", 0);
		}
		if (!strcmp(rest, "/snapshots") && post) {
			_cleanup_cjson_ cJSON *out = cJSON_CreateObject();
			_cleanup_free_ char *snap = NULL;
			if (sb->paused_snapshot)
				return api_error(rq, 409, "sandbox %s is paused", sb->id);
			snap = take_snapshot(sb, false, &e);
			if (!snap || snap_add(snap, tenant) < 0)
				return api_error(rq, 500, "cannot snapshot: %s", e.msg);
			gw_registry_save(&registry);
			cJSON_AddStringToObject(out, "snapshotID", snap);
			cJSON_AddItemToObject(out, "names", cJSON_CreateArray());
			return gw_reply_json(rq, 201, out);
		}
	}
	return api_error(rq, 404, "no such route: %s %s", rq->method, url);
}

/* ---- dispatch ---- */

static bool is_envd(const char *url)
{
	return !strncmp(url, "/process.Process/", 17) ||
	       !strncmp(url, "/filesystem.Filesystem/", 23) || !strcmp(url, "/files") ||
	       !strcmp(url, "/health");
}

bool gw_e2b_handle(struct gw_server *s, struct gw_request *rq, enum MHD_Result *result)
{
	const char *url = rq->url;

	(void)s;
	if (is_envd(url)) {
		const char *id = gw_header(rq, "E2b-Sandbox-Id");
		const char *token = gw_header(rq, "X-Access-Token");
		bool stream = !strcmp(url, "/process.Process/Start") ||
		              !strcmp(url, "/process.Process/Connect");
		struct sbx *sb;

		if (!strcmp(url, "/health")) {
			*result = gw_reply(rq, 204, NULL, "", 0);
			return true;
		}
		sb = sbx_get(id, NULL);
		/* The token alone proves access; a wrong one looks like no sandbox at all. */
		if (sb &&
		    (!token || strlen(token) != strlen(sb->token) || strcmp(token, sb->token))) {
			sbx_release(sb);
			*result = stream
			              ? stream_error(rq, "unauthenticated", "invalid access token")
			              : rpc_error(rq, "unauthenticated", "invalid access token");
			return true;
		}
		if (!sb || sb->paused_snapshot) {
			/* What E2B's edge answers for a sandbox that is not running: 502, which
			 * the SDK turns into "sandbox not found" after a health check. */
			sbx_release(sb);
			*result = api_error(rq, 502, "The sandbox %s was not found", id ? id : "");
			return true;
		}
		if (!strcmp(url, "/files"))
			*result =
			    !strcmp(rq->method, "GET") ? files_get(rq, sb) : files_post(rq, sb);
		else if (!strcmp(url, "/process.Process/Start"))
			*result = process_start(rq, sb);
		else if (!strcmp(url, "/process.Process/Connect"))
			*result = process_connect(rq, sb);
		else if (!strncmp(url, "/process.Process/", 17))
			*result = process_unary(rq, sb, url + 17);
		else
			*result = filesystem_rpc(rq, sb, url + 23);
		return true;
	}
	{
		const char *tenant = tenant_of(rq);
		if (!tenant) {
			*result = api_error(rq, 401, "Invalid API key");
			return true;
		}
		*result = control_plane(rq, tenant);
	}
	return true;
}

/* ---- lifetime ---- */

static bool has_expired(const struct gw_entry *e, void *now)
{
	return ((const struct sbx *)e)->end_at <= *(time_t *)now;
}

static void *reap(void *arg)
{
	(void)arg;
	while (!stopping) {
		time_t now = time(NULL);
		struct sbx *expired =
		    (struct sbx *)gw_registry_find_if(&registry, has_expired, &now);

		if (expired) {
			log_info("sandbox %s reached its timeout", expired->id);
			sandbox_remove(expired);
			sbx_release(expired);
			continue;
		}
		usleep(500 * 1000);
	}
	return NULL;
}

int gw_e2b_init(struct gw_server *s, struct al_error *err)
{
	server = s;
	return gw_registry_open(&registry, &registry_ops, &s->state, err);
}

void gw_e2b_start(void)
{
	reaper_started = pthread_create(&reaper, NULL, reap, NULL) == 0;
	if (!reaper_started)
		log_warn("cannot start the timeout reaper: sandboxes will not expire");
}

/*
 * With a state directory the registry outlives the gateway: its sandboxes stay for the
 * next one.  Without, they would be unreachable after a restart, so they go with it.
 */
void gw_e2b_shutdown(void)
{
	bool keep = server && gw_state_persistent(&server->state);

	stopping = true;
	if (reaper_started)
		pthread_join(reaper, NULL);
	gw_registry_close(&registry, sandbox_discard);
	while (snaps) {
		struct snap *n = snaps->next;
		if (!keep)
			gw_backend_discard_snapshot(&server->backend, snaps->id);
		free(snaps->id);
		free(snaps->tenant);
		free(snaps);
		snaps = n;
	}
}
