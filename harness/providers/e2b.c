/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The e2b provider: E2B's REST control plane (X-API-KEY) and envd in each sandbox, spoken
 * as the official `e2b` SDK speaks them (docs/providers.md): processes as Connect-protocol
 * server streams (5-byte envelopes of JSON), stdin and signals as unary Connect calls,
 * files through envd's /files.  Any service with that wire works: E2B itself, or
 * airlock-gateway in front of an airlockd.
 *
 * An exec that yields reads its Start stream until the yield passes and lets it go; the
 * process runs on (envd keeps processes of a closed stream), and write_stdin reads what
 * came since through a Connect stream of the same pid.
 */
#include "hosted.h"
#include "provider.h"

#include "cleanup.h"
#include "json.h"
#include "http.h"
#include "log.h"
#include "util.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <curl/curl.h>

#define DEFAULT_API_URL "https://api.e2b.app"
#define DEFAULT_DOMAIN "e2b.app"
#define ENVD_PORT 49983
#define DEFAULT_SANDBOX_TIMEOUT_MS (3600 * 1000L)
#define WORKSPACE_ROOT "/workspace"
#define MAX_FILE (1u << 30)
#define METADATA_NAME "airlock_name"

struct e2b_provider {
	struct al_hosted_provider h;
	char *sandbox_url; /* NULL: per sandbox, from its domain */
	char *template_id;
	long sandbox_timeout_s;
};

/* Terminal processes of a sandbox remembered at once: their input goes as pty bytes. */
#define E2B_MAX_PTYS 32
/* The terminal of a tty exec, as the SDK's PTY sessions. */
#define E2B_PTY_ROWS 24
#define E2B_PTY_COLS 80

struct e2b_conn {
	char *envd_url;
	char *token_header; /* "X-Access-Token: …" or NULL */
	char *id_header;    /* "E2b-Sandbox-Id: …" */
	char *root;
	uint32_t ptys[E2B_MAX_PTYS]; /* pids of its PTY processes (0: free), oldest replaced */
	unsigned next_pty;
};

static void remember_pty(struct e2b_conn *conn, uint32_t pid)
{
	conn->ptys[conn->next_pty++ % E2B_MAX_PTYS] = pid;
}

static bool is_pty(const struct e2b_conn *conn, uint32_t pid)
{
	for (size_t i = 0; conn && pid && i < E2B_MAX_PTYS; i++)
		if (conn->ptys[i] == pid)
			return true;
	return false;
}

static void conn_free(void *c)
{
	struct e2b_conn *conn = c;

	if (!conn)
		return;
	free(conn->envd_url);
	if (conn->token_header)
		explicit_bzero(conn->token_header, strlen(conn->token_header));
	free(conn->token_header);
	free(conn->id_header);
	free(conn->root);
	free(conn);
}

static void e2b_close(struct al_provider *p)
{
	struct e2b_provider *ep = (struct e2b_provider *)p;

	if (!ep)
		return;
	free(ep->sandbox_url);
	free(ep->template_id);
	al_hosted_provider_free(&ep->h);
}

static const struct al_hosted_config e2b_config = {.type = "e2b",
                                                   .ops = &al_provider_e2b,
                                                   .url_key = "api_url",
                                                   .url_env = "E2B_API_URL",
                                                   .default_url = DEFAULT_API_URL,
                                                   .auth = "X-API-KEY: "};

static int e2b_open(const cJSON *options, const char *api_key, struct al_provider **out,
                    struct al_error *err)
{
	const char *sbx = al_hosted_option(options, "sandbox_url", "E2B_SANDBOX_URL");
	const char *tmpl = al_hosted_option(options, "template", NULL);
	struct e2b_provider *ep =
	    al_hosted_provider_new(sizeof(*ep), &e2b_config, options, api_key, err);
	long sandbox_timeout_ms = 0;
	int r;

	if (!ep)
		return -err->code;
	if (sbx && strncmp(sbx, "http://", 7) && strncmp(sbx, "https://", 8))
		r = al_error_set(err, EINVAL, "provider.sandbox_url must be an http(s) URL");
	else
		r = al_hosted_ms_option(options, "sandbox_timeout_ms", DEFAULT_SANDBOX_TIMEOUT_MS,
		                        &sandbox_timeout_ms, err);
	if (r == 0) {
		/* E2B counts its timeout in seconds. */
		ep->sandbox_timeout_s = sandbox_timeout_ms / 1000;
		ep->sandbox_url = sbx ? al_hosted_base_url(sbx) : NULL;
		ep->template_id = strdup(tmpl ? tmpl : "base");
		if ((sbx && !ep->sandbox_url) || !ep->template_id)
			r = al_error_set(err, ENOMEM, "out of memory");
	}
	if (r < 0) {
		e2b_close(&ep->h.base);
		return r;
	}
	*out = &ep->h.base;
	return 0;
}

/* ---- the control plane ---- */

static int api_errno(const struct al_http_response *resp, bool plane)
{
	(void)plane; /* the control plane only: envd has envd_error */
	switch (resp->status) {
	case 429:
	case 502:
	case 503:
	case 504:
		/* E2B's API sheds load so; the sandbox is not gone. */
		return EAGAIN;
	default:
		return al_hosted_status_errno(resp->status);
	}
}

/* A control-plane call; *out gets the JSON answer (when out is set). */
static int api(struct e2b_provider *ep, const char *method, const char *path, const cJSON *body,
               bool idempotent, cJSON **out, const char *what, struct al_error *err)
{
	_cleanup_free_ char *url = NULL;
	_cleanup_free_ char *text = body ? cJSON_PrintUnformatted(body) : NULL;
	const char *headers[] = {ep->h.c.auth_header, "Content-Type: application/json",
	                         "Accept: application/json", NULL};
	struct al_http_request rq = {.method = method,
	                             .headers = headers,
	                             .body = text,
	                             .body_len = text ? strlen(text) : 0,
	                             .idempotent = idempotent,
	                             .what = what};

	if ((body && !text) || asprintf(&url, "%s%s", ep->h.c.base_url, path) < 0)
		return al_error_set(err, ENOMEM, "out of memory");
	rq.url = url;
	return al_hosted_send(&ep->h.c, &rq, api_errno, false, NULL, out, err);
}

/* The handle for a create or connect answer. */
static int handle_from(struct e2b_provider *ep, const cJSON *answer, const char *root,
                       struct al_sandbox **out, struct al_error *err)
{
	const char *id = al_json_str(answer, "sandboxID");
	const char *domain = al_json_str(answer, "domain");
	const char *token = al_json_str(answer, "envdAccessToken");
	_cleanup_(al_sandbox_freep) struct al_sandbox *sb = NULL;
	struct e2b_conn *c;

	if (!id || !*id)
		return al_error_set(err, EIO, "E2B's answer has no sandboxID");
	sb = al_sandbox_new(id);
	c = calloc(1, sizeof(*c));
	if (!sb || !c) {
		free(c);
		return al_error_set(err, ENOMEM, "out of memory");
	}
	sb->conn = c;
	sb->conn_free = conn_free;
	if (ep->sandbox_url)
		c->envd_url = strdup(ep->sandbox_url);
	else if (asprintf(&c->envd_url, "https://%d-%s.%s", ENVD_PORT, id,
	                  domain && *domain ? domain : DEFAULT_DOMAIN) < 0)
		c->envd_url = NULL;
	if (token && *token && asprintf(&c->token_header, "X-Access-Token: %s", token) < 0)
		c->token_header = NULL;
	if (asprintf(&c->id_header, "E2b-Sandbox-Id: %s", id) < 0)
		c->id_header = NULL;
	c->root = strdup(root);
	if (!c->envd_url || (token && *token && !c->token_header) || !c->id_header || !c->root)
		return al_error_set(err, ENOMEM, "out of memory");
	/* What a resumed run needs to find it again; the token is not kept (connect gives
	 * a fresh one). */
	cJSON_AddStringToObject(sb->saved, "root", root);
	if (domain && *domain)
		cJSON_AddStringToObject(sb->saved, "domain", domain);
	*out = TAKE_PTR(sb);
	return 0;
}

static int e2b_delete(struct al_provider *p, struct al_sandbox *sb, struct al_error *err);
static int e2b_resume(struct al_provider *p, const char *id, const cJSON *saved, const char *name,
                      struct al_sandbox **out, bool *running, struct al_error *err);

static int e2b_create(struct al_provider *p, const struct al_sandbox_spec *spec,
                      struct al_sandbox **out, struct al_error *err)
{
	struct e2b_provider *ep = (struct e2b_provider *)p;
	_cleanup_cjson_ cJSON *body = cJSON_CreateObject();
	_cleanup_cjson_ cJSON *answer = NULL;
	_cleanup_(al_sandbox_freep) struct al_sandbox *sb = NULL;
	const char *root = al_hosted_manifest_root(spec->manifest, WORKSPACE_ROOT);
	cJSON *meta;
	int r;

	if (!body)
		return al_error_set(err, ENOMEM, "out of memory");
	/* A name is the run's: one already there was made by a harness killed before it
	 * could record it, and is the run's to adopt (as airlockd's name conflict says). */
	if (spec->name) {
		_cleanup_(al_sandbox_freep) struct al_sandbox *found = NULL;
		bool running = false;
		struct al_error e = AL_ERROR_INIT;
		r = e2b_resume(p, NULL, NULL, spec->name, &found, &running, &e);
		if (r == 0)
			return al_error_set(err, EEXIST, "an E2B sandbox named %s exists: %s",
			                    spec->name, found->id);
		if (r != -ENOENT) {
			*err = e;
			return r;
		}
	}
	cJSON_AddStringToObject(body, "templateID",
	                        spec->snapshot_id ? spec->snapshot_id : ep->template_id);
	cJSON_AddNumberToObject(body, "timeout", (double)ep->sandbox_timeout_s);
	if (spec->env)
		cJSON_AddItemToObject(body, "envVars", cJSON_Duplicate(spec->env, 1));
	meta = cJSON_AddObjectToObject(body, "metadata");
	if (spec->name)
		cJSON_AddStringToObject(meta, METADATA_NAME, spec->name);
	r = api(ep, "POST", "/v2/sandboxes", body, false, &answer, "create E2B sandbox", err);
	if (r < 0)
		return r;
	r = handle_from(ep, answer, root, &sb, err);
	if (r < 0)
		return r;
	/* A snapshot brings its workspace; a fresh sandbox gets the manifest. */
	if (!spec->snapshot_id && spec->manifest) {
		r = al_hosted_materialise(p, sb, spec->manifest, root, err);
		if (r < 0) {
			struct al_error ignored = AL_ERROR_INIT;
			e2b_delete(p, sb, &ignored);
			return al_error_prefix(err, "materialise the manifest in E2B sandbox %s",
			                       sb->id);
		}
	}
	*out = TAKE_PTR(sb);
	return 0;
}

static int connect_sandbox(struct e2b_provider *ep, const char *id, const char *root,
                           struct al_sandbox **out, struct al_error *err)
{
	_cleanup_cjson_ cJSON *body = cJSON_CreateObject();
	_cleanup_cjson_ cJSON *answer = NULL;
	_cleanup_free_ char *eid = al_hosted_url_escape(id, 0);
	_cleanup_free_ char *path = NULL;
	int r;

	if (!body || !eid || asprintf(&path, "/v2/sandboxes/%s/connect", eid) < 0)
		return al_error_set(err, ENOMEM, "out of memory");
	cJSON_AddNumberToObject(body, "timeout", (double)ep->sandbox_timeout_s);
	r = api(ep, "POST", path, body, true, &answer, "connect to E2B sandbox", err);
	if (r < 0)
		return r;
	if (!al_json_str(answer, "sandboxID"))
		cJSON_AddStringToObject(answer, "sandboxID", id);
	return handle_from(ep, answer, root, out, err);
}

static int e2b_resume(struct al_provider *p, const char *id, const cJSON *saved, const char *name,
                      struct al_sandbox **out, bool *running, struct al_error *err)
{
	struct e2b_provider *ep = (struct e2b_provider *)p;
	const char *root = al_json_str(saved, "root") ? al_json_str(saved, "root") : WORKSPACE_ROOT;
	_cleanup_cjson_ cJSON *list = NULL;
	const cJSON *sb;
	int r;

	*running = false;
	if (!id) {
		/* By the name the run gave it at create, kept in its metadata. */
		r = api(ep, "GET", "/v2/sandboxes", NULL, true, &list, "list E2B sandboxes", err);
		if (r < 0)
			return r;
		cJSON_ArrayForEach(sb, list)
		{
			const cJSON *meta = cJSON_GetObjectItemCaseSensitive(sb, "metadata");
			if (name && al_json_str(meta, METADATA_NAME) &&
			    !strcmp(al_json_str(meta, METADATA_NAME), name))
				id = al_json_str(sb, "sandboxID");
		}
		if (!id)
			return al_error_set(err, ENOENT, "no E2B sandbox named %s",
			                    name ? name : "(none)");
	}
	r = connect_sandbox(ep, id, root, out, err);
	if (r == -ENOENT)
		return al_error_set(err, ENOENT, "E2B sandbox %s: not found", id);
	if (r < 0)
		return r;
	*running = true;
	return 0;
}

static int e2b_delete(struct al_provider *p, struct al_sandbox *sb, struct al_error *err)
{
	struct e2b_provider *ep = (struct e2b_provider *)p;
	_cleanup_free_ char *eid = al_hosted_url_escape(sb->id, 0);
	_cleanup_free_ char *path = NULL;
	int r;

	if (!eid || asprintf(&path, "/sandboxes/%s", eid) < 0)
		return al_error_set(err, ENOMEM, "out of memory");
	r = api(ep, "DELETE", path, NULL, true, NULL, "delete E2B sandbox", err);
	return r == -ENOENT ? 0 : r;
}

static int e2b_snapshot(struct al_provider *p, struct al_sandbox *sb, bool processes,
                        char **snapshot_id, struct al_error *err)
{
	struct e2b_provider *ep = (struct e2b_provider *)p;
	_cleanup_cjson_ cJSON *body = cJSON_CreateObject();
	_cleanup_cjson_ cJSON *answer = NULL;
	_cleanup_free_ char *eid = al_hosted_url_escape(sb->id, 0);
	_cleanup_free_ char *path = NULL;
	int r;

	(void)processes; /* AL_CAP_PROCESS_SNAPSHOT is not claimed: the loop never asks */
	if (!body || !eid || asprintf(&path, "/sandboxes/%s/snapshots", eid) < 0)
		return al_error_set(err, ENOMEM, "out of memory");
	r = api(ep, "POST", path, body, false, &answer, "snapshot E2B sandbox", err);
	if (r < 0)
		return r;
	if (!al_json_str(answer, "snapshotID"))
		return al_error_set(err, EIO, "snapshot E2B sandbox: the answer has no snapshotID");
	*snapshot_id = strdup(al_json_str(answer, "snapshotID"));
	return *snapshot_id ? 0 : al_error_set(err, ENOMEM, "out of memory");
}

static int e2b_delete_snapshot(struct al_provider *p, const char *snapshot_id, struct al_error *err)
{
	struct e2b_provider *ep = (struct e2b_provider *)p;
	_cleanup_free_ char *eid = al_hosted_url_escape(snapshot_id, 0);
	_cleanup_free_ char *path = NULL;
	int r;

	if (!eid || asprintf(&path, "/templates/%s", eid) < 0)
		return al_error_set(err, ENOMEM, "out of memory");
	r = api(ep, "DELETE", path, NULL, true, NULL, "delete E2B snapshot", err);
	return r == -ENOENT ? 0 : r;
}

/* ---- envd ---- */

static const char *connect_code_error(const char *code, int *errnum)
{
	if (!strcmp(code, "not_found"))
		*errnum = ENOENT;
	else if (!strcmp(code, "already_exists"))
		*errnum = EEXIST;
	else if (!strcmp(code, "invalid_argument") || !strcmp(code, "failed_precondition"))
		*errnum = EINVAL;
	else if (!strcmp(code, "unauthenticated") || !strcmp(code, "permission_denied"))
		*errnum = EPERM;
	else if (!strcmp(code, "unimplemented"))
		*errnum = ENOTSUP;
	else if (!strcmp(code, "unavailable"))
		*errnum = EHOSTDOWN;
	else if (!strcmp(code, "deadline_exceeded"))
		*errnum = ETIMEDOUT;
	else
		*errnum = EIO;
	return code;
}

/* A non-2xx envd answer: 502 means the sandbox is gone (what E2B's edge says). */
static int envd_error(const struct al_http_response *resp, const char *what, struct al_error *err)
{
	_cleanup_cjson_ cJSON *j =
	    resp->body.len ? cJSON_ParseWithLength(resp->body.data, resp->body.len) : NULL;
	const cJSON *code = cJSON_GetObjectItemCaseSensitive(j, "code");
	int e = EIO;

	if (resp->status == 502)
		return al_http_status_error(resp, EHOSTDOWN, what, err);
	if (cJSON_IsString(code))
		connect_code_error(code->valuestring, &e);
	else if (resp->status == 404)
		e = ENOENT;
	else if (resp->status == 400)
		e = EINVAL;
	else if (resp->status == 401 || resp->status == 403)
		e = EPERM;
	/* An unknown sandbox is E2B's not_found on the sandbox, not on a file. */
	if (e == ENOENT && cJSON_IsString(cJSON_GetObjectItemCaseSensitive(j, "message")) &&
	    strstr(cJSON_GetObjectItemCaseSensitive(j, "message")->valuestring, "sandbox"))
		e = EHOSTDOWN;
	return al_http_status_error(resp, e, what, err);
}

struct envd_call {
	const char *method;
	const char *path; /* with query */
	const char *content_type;
	const void *body;
	size_t body_len;
	void *mime;
	long timeout_ms;
	int (*on_data)(void *ctx, const char *data, size_t len);
	void *ctx;
	size_t max_response;
	bool idempotent;
};

static int envd(struct e2b_provider *ep, struct al_sandbox *sb, const struct envd_call *c,
                struct al_http_response *resp, const char *what, struct al_error *err)
{
	struct e2b_conn *conn = sb->conn;
	_cleanup_free_ char *url = NULL;
	_cleanup_free_ char *ct = NULL;
	char port[64];
	const char *headers[8];
	size_t n = 0;
	struct al_http_request rq = {.method = c->method,
	                             .body = c->body,
	                             .body_len = c->body_len,
	                             .mime = c->mime,
	                             .timeout_ms = c->timeout_ms,
	                             .on_data = c->on_data,
	                             .ctx = c->ctx,
	                             .max_response = c->max_response,
	                             .idempotent = c->idempotent,
	                             .what = what};
	int r;

	if (!conn)
		return al_error_set(err, EHOSTDOWN, "%s: E2B sandbox %s is not connected", what,
		                    sb->id);
	snprintf(port, sizeof(port), "E2b-Sandbox-Port: %d", ENVD_PORT);
	headers[n++] = conn->id_header;
	headers[n++] = port;
	if (conn->token_header)
		headers[n++] = conn->token_header;
	headers[n++] = "Connect-Protocol-Version: 1";
	if (c->content_type) {
		if (asprintf(&ct, "Content-Type: %s", c->content_type) < 0)
			return al_error_set(err, ENOMEM, "out of memory");
		headers[n++] = ct;
	}
	headers[n] = NULL;
	rq.headers = headers;
	if (asprintf(&url, "%s%s", conn->envd_url, c->path) < 0)
		return al_error_set(err, ENOMEM, "out of memory");
	rq.url = url;
	r = al_http_do(&ep->h.c.http, &rq, resp, err);
	if (r == -ECONNREFUSED)
		return al_error_set(err, ECONNREFUSED, "%s: cannot reach E2B sandbox %s at %s",
		                    what, sb->id, conn->envd_url);
	return r;
}

/* A unary Connect call with a JSON message; *out gets the answer when out is set. */
static int rpc(struct e2b_provider *ep, struct al_sandbox *sb, const char *method, const cJSON *msg,
               cJSON **out, const char *what, struct al_error *err)
{
	_cleanup_free_ char *text = cJSON_PrintUnformatted(msg);
	struct envd_call c = {.method = "POST",
	                      .path = method,
	                      .content_type = "application/json",
	                      .body = text,
	                      .body_len = text ? strlen(text) : 0};
	struct al_http_response resp;
	int r;

	if (!text)
		return al_error_set(err, ENOMEM, "out of memory");
	r = envd(ep, sb, &c, &resp, what, err);
	if (r >= 0 && (resp.status < 200 || resp.status >= 300))
		r = envd_error(&resp, what, err);
	if (r >= 0 && out) {
		*out = cJSON_ParseWithLength(resp.body.data ? resp.body.data : "{}",
		                             resp.body.len ? resp.body.len : 2);
		if (!*out)
			r = al_error_set(err, EIO, "%s: the answer is not JSON", what);
	}
	al_http_response_free(&resp);
	return r < 0 ? r : 0;
}

/* ---- process streams ---- */

struct stream {
	struct al_buf raw; /* bytes not yet parsed into envelopes */
	bool started, ended, trailer;
	uint32_t pid;
	int exit_code, signal;
	struct al_buf out, err;
	size_t max; /* per stream */
	bool truncated;
	char error_code[64];
	char error_msg[256];
};

static void keep(struct stream *st, struct al_buf *b, const char *b64)
{
	_cleanup_free_ char *raw = NULL;
	struct al_error e = AL_ERROR_INIT;
	size_t len = 0, room;

	if (!b64 || al_base64_decode(b64, &raw, &len, &e) < 0)
		return;
	room = st->max && b->len < st->max ? st->max - b->len : st->max ? 0 : len;
	if (len > room) {
		st->truncated = true;
		len = room;
	}
	al_buf_append(b, raw, len);
}

static int signal_of(const char *status)
{
	static const struct {
		const char *name;
		int sig;
	} names[] = {{"killed", 9}, {"terminated", 15}, {"interrupt", 2}, {"hangup", 1}};

	if (!status || strncmp(status, "signal: ", 8))
		return 0;
	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
		if (!strcmp(status + 8, names[i].name))
			return names[i].sig;
	return 9;
}

static void on_message(struct stream *st, uint8_t flags, const cJSON *m)
{
	const cJSON *ev = cJSON_GetObjectItemCaseSensitive(m, "event");
	const cJSON *v;

	if (flags & 0x02) {
		const cJSON *e = cJSON_GetObjectItemCaseSensitive(m, "error");
		st->trailer = true;
		if (e) {
			snprintf(st->error_code, sizeof(st->error_code), "%s",
			         al_json_str(e, "code") ? al_json_str(e, "code") : "unknown");
			snprintf(st->error_msg, sizeof(st->error_msg), "%s",
			         al_json_str(e, "message") ? al_json_str(e, "message") : "");
		}
		return;
	}
	if ((v = cJSON_GetObjectItemCaseSensitive(ev, "start"))) {
		const cJSON *pid = cJSON_GetObjectItemCaseSensitive(v, "pid");
		st->started = true;
		st->pid = cJSON_IsNumber(pid)   ? (uint32_t)pid->valuedouble
		          : cJSON_IsString(pid) ? (uint32_t)strtoul(pid->valuestring, NULL, 10)
		                                : 0;
	} else if ((v = cJSON_GetObjectItemCaseSensitive(ev, "data"))) {
		keep(st, &st->out, al_json_str(v, "stdout"));
		keep(st, &st->err, al_json_str(v, "stderr"));
		keep(st, &st->out, al_json_str(v, "pty")); /* a terminal's one stream */
	} else if ((v = cJSON_GetObjectItemCaseSensitive(ev, "end"))) {
		const cJSON *code = cJSON_GetObjectItemCaseSensitive(v, "exitCode");
		st->ended = true;
		st->signal = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(v, "exited"))
		                 ? 0
		                 : signal_of(al_json_str(v, "status"));
		st->exit_code = cJSON_IsNumber(code) ? code->valueint : 0;
		if (st->signal)
			st->exit_code = -1;
	}
}

static int stream_data(void *ctx, const char *data, size_t len)
{
	struct stream *st = ctx;
	size_t off = 0;

	if (al_buf_append(&st->raw, data, len) < 0)
		return -ENOMEM;
	while (st->raw.len - off >= 5) {
		const uint8_t *h = (const uint8_t *)st->raw.data + off;
		size_t n = (size_t)h[1] << 24 | (size_t)h[2] << 16 | (size_t)h[3] << 8 | h[4];
		_cleanup_cjson_ cJSON *m = NULL;
		if (n > (64u << 20))
			return -EPROTO;
		if (st->raw.len - off - 5 < n)
			break;
		m = cJSON_ParseWithLength((const char *)h + 5, n);
		if (!m)
			return -EPROTO;
		on_message(st, h[0], m);
		off += 5 + n;
	}
	memmove(st->raw.data, st->raw.data + off, st->raw.len - off);
	st->raw.len -= off;
	return 0;
}

static void stream_free(struct stream *st)
{
	al_buf_free(&st->raw);
	al_buf_free(&st->out);
	al_buf_free(&st->err);
}

/* Run a Start or Connect stream for up to yield_ms (0: to the end); fill res. */
static int run_stream(struct e2b_provider *ep, struct al_sandbox *sb, const char *method,
                      const cJSON *msg, uint64_t yield_ms, size_t max, struct al_exec_result *res,
                      const char *what, struct al_error *err)
{
	_cleanup_free_ char *text = cJSON_PrintUnformatted(msg);
	_cleanup_buf_ struct al_buf body = {0};
	struct stream st = {.max = max};
	struct envd_call c = {.method = "POST",
	                      .path = method,
	                      .content_type = "application/connect+json",
	                      .on_data = stream_data,
	                      .ctx = &st,
	                      /* a stream without yield may run for as long as the command */
	                      .timeout_ms = yield_ms ? (long)yield_ms : 24 * 3600 * 1000L};
	struct al_http_response resp;
	uint8_t head[5];
	size_t len;
	int r;

	if (!text)
		return al_error_set(err, ENOMEM, "out of memory");
	len = strlen(text);
	head[0] = 0;
	head[1] = (uint8_t)(len >> 24);
	head[2] = (uint8_t)(len >> 16);
	head[3] = (uint8_t)(len >> 8);
	head[4] = (uint8_t)len;
	if (al_buf_append(&body, head, 5) < 0 || al_buf_append(&body, text, len) < 0)
		return al_error_set(err, ENOMEM, "out of memory");
	c.body = body.data;
	c.body_len = body.len;
	r = envd(ep, sb, &c, &resp, what, err);
	/* The yield passing ends the transfer; the process runs on (or has ended, if its end
	 * event came before the stream's own end).  A Connect that saw no event before the
	 * yield (a busy service) says nothing new about the process: it still counts as
	 * running, and the caller polls again. */
	if (r == -ETIMEDOUT && yield_ms &&
	    (st.started || !strcmp(method, "/process.Process/Connect"))) {
		r = 0;
		if (!st.started) {
			st.started = true;
			st.pid = (uint32_t)cJSON_GetNumberValue(cJSON_GetObjectItemCaseSensitive(
			    cJSON_GetObjectItemCaseSensitive(msg, "process"), "pid"));
		}
	}
	if (r >= 0 && (resp.status < 200 || resp.status >= 300))
		r = envd_error(&resp, what, err);
	al_http_response_free(&resp);
	if (r >= 0 && st.error_code[0]) {
		int e;
		connect_code_error(st.error_code, &e);
		r = al_error_set(err, e, "%s: %s: %s", what, st.error_code, st.error_msg);
	}
	if (r >= 0 && !st.started)
		r = al_error_set(err, EIO, "%s: the stream has no start event", what);
	if (r < 0) {
		stream_free(&st);
		return r;
	}
	memset(res, 0, sizeof(*res));
	res->running = !st.ended;
	if (res->running && asprintf(&res->process_id, "%u", st.pid) < 0)
		res->process_id = NULL;
	res->exit_code = st.ended ? st.exit_code : -1;
	res->signal = st.signal;
	res->truncated = st.truncated;
	if (al_buf_append(&st.out, "", 1) < 0 || al_buf_append(&st.err, "", 1) < 0 ||
	    (res->running && !res->process_id)) {
		stream_free(&st);
		free(res->process_id);
		return al_error_set(err, ENOMEM, "out of memory");
	}
	res->out = st.out.data;
	res->out_len = st.out.len - 1;
	res->err = st.err.data;
	res->err_len = st.err.len - 1;
	al_buf_free(&st.raw);
	return 0;
}

static int e2b_exec(struct al_provider *p, struct al_sandbox *sb, const struct al_exec_request *req,
                    struct al_exec_result *res, struct al_error *err)
{
	struct e2b_provider *ep = (struct e2b_provider *)p;
	struct e2b_conn *conn = sb->conn;
	_cleanup_cjson_ cJSON *msg = cJSON_CreateObject();
	cJSON *proc, *args;
	_cleanup_free_ char *cwd = NULL;
	int r;

	if (!msg || !req->argv[0])
		return al_error_set(err, msg ? EINVAL : ENOMEM, "exec: empty argv");
	cwd = al_hosted_abs(conn ? conn->root : WORKSPACE_ROOT, req->workdir ? req->workdir : ".");
	if (!cwd)
		return al_error_set(err, ENOMEM, "out of memory");
	proc = cJSON_AddObjectToObject(msg, "process");
	cJSON_AddStringToObject(proc, "cmd", req->argv[0]);
	args = cJSON_AddArrayToObject(proc, "args");
	for (const char *const *a = req->argv + 1; *a; a++)
		cJSON_AddItemToArray(args, cJSON_CreateString(*a));
	cJSON_AddStringToObject(proc, "cwd", cwd);
	if (req->tty) {
		/* envd's PTY: what the model types is its input, ^C included. */
		cJSON *size = cJSON_AddObjectToObject(cJSON_AddObjectToObject(msg, "pty"), "size");
		cJSON_AddStringToObject(cJSON_AddObjectToObject(proc, "envs"), "TERM",
		                        "xterm-256color");
		cJSON_AddNumberToObject(size, "cols", E2B_PTY_COLS);
		cJSON_AddNumberToObject(size, "rows", E2B_PTY_ROWS);
	} else {
		cJSON_AddBoolToObject(msg, "stdin", req->keep_stdin_open);
	}
	r = run_stream(ep, sb, "/process.Process/Start", msg, req->yield_ms, req->max_output_bytes,
	               res, "exec", err);
	if (r == 0 && req->tty && res->running && res->process_id && conn)
		remember_pty(conn, (uint32_t)strtoul(res->process_id, NULL, 10));
	return r;
}

static cJSON *selector(const char *process_id)
{
	cJSON *msg = cJSON_CreateObject();
	cJSON_AddNumberToObject(cJSON_AddObjectToObject(msg, "process"), "pid",
	                        (double)strtoul(process_id, NULL, 10));
	return msg;
}

static int e2b_write_stdin(struct al_provider *p, struct al_sandbox *sb, const char *process_id,
                           const char *data, size_t len, uint64_t yield_ms,
                           struct al_exec_result *res, struct al_error *err)
{
	struct e2b_provider *ep = (struct e2b_provider *)p;
	_cleanup_cjson_ cJSON *msg = selector(process_id);
	int r;

	if (len) {
		_cleanup_cjson_ cJSON *in = selector(process_id);
		_cleanup_free_ char *b64 = al_base64_encode(data, len);
		if (!b64 || !in)
			return al_error_set(err, ENOMEM, "out of memory");
		cJSON_AddStringToObject(
		    cJSON_AddObjectToObject(in, "input"),
		    is_pty(sb->conn, (uint32_t)strtoul(process_id, NULL, 10)) ? "pty" : "stdin",
		    b64);
		r = rpc(ep, sb, "/process.Process/SendInput", in, NULL, "write stdin", err);
		if (r < 0)
			return r;
	}
	/* Long enough for the start event of the Connect stream to come back. */
	return run_stream(ep, sb, "/process.Process/Connect", msg, yield_ms > 250 ? yield_ms : 250,
	                  0, res, "read process output", err);
}

static int e2b_kill(struct al_provider *p, struct al_sandbox *sb, const char *process_id,
                    const char *signame, struct al_error *err)
{
	struct e2b_provider *ep = (struct e2b_provider *)p;
	_cleanup_cjson_ cJSON *msg = selector(process_id);

	if (!msg)
		return al_error_set(err, ENOMEM, "out of memory");
	/* envd knows SIGKILL and SIGTERM only; an interrupt asks it to end as TERM does. */
	cJSON_AddStringToObject(msg, "signal",
	                        !strcmp(signame, "KILL") ? "SIGNAL_SIGKILL" : "SIGNAL_SIGTERM");
	return rpc(ep, sb, "/process.Process/SendSignal", msg, NULL, "signal process", err);
}

/* ---- files ---- */

static int file_path(struct al_sandbox *sb, const char *path, char **abs, char **query)
{
	struct e2b_conn *conn = sb->conn;
	_cleanup_free_ char *e = NULL;

	*abs = al_hosted_abs(conn ? conn->root : WORKSPACE_ROOT, path);
	if (!*abs)
		return -ENOMEM;
	e = al_hosted_url_escape(*abs, 0);
	if (!e || asprintf(query, "/files?path=%s&username=root", e) < 0)
		return -ENOMEM;
	return 0;
}

static int e2b_read(struct al_provider *p, struct al_sandbox *sb, const char *path, size_t max,
                    char **data, size_t *len, struct al_error *err)
{
	struct e2b_provider *ep = (struct e2b_provider *)p;
	_cleanup_free_ char *abs = NULL;
	_cleanup_free_ char *q = NULL;
	struct envd_call c = {
	    .method = "GET", .max_response = max ? max : MAX_FILE, .idempotent = true};
	struct al_http_response resp;
	int r;

	if (file_path(sb, path, &abs, &q) < 0)
		return al_error_set(err, ENOMEM, "out of memory");
	c.path = q;
	r = envd(ep, sb, &c, &resp, abs, err);
	if (r >= 0 && resp.status != 200)
		r = envd_error(&resp, abs, err);
	if (r >= 0 && al_buf_append(&resp.body, "", 1) < 0)
		r = al_error_set(err, ENOMEM, "out of memory");
	if (r < 0) {
		al_http_response_free(&resp);
		return r;
	}
	*len = resp.body.len - 1;
	*data = resp.body.data;
	return 0;
}

static int e2b_write(struct al_provider *p, struct al_sandbox *sb, const char *path,
                     const void *data, size_t len, struct al_error *err)
{
	struct e2b_provider *ep = (struct e2b_provider *)p;
	_cleanup_free_ char *abs = NULL;
	_cleanup_free_ char *q = NULL;
	_cleanup_(al_hosted_mime_freep) curl_mime *mime = NULL;
	curl_mimepart *part;
	struct envd_call c = {.method = "POST", .idempotent = true};
	struct al_http_response resp;
	int r;

	if (file_path(sb, path, &abs, &q) < 0)
		return al_error_set(err, ENOMEM, "out of memory");
	/* A mime body outlives no handle: it is tied to the one that sends it. */
	mime = curl_mime_init(ep->h.c.http.curl);
	part = mime ? curl_mime_addpart(mime) : NULL;
	if (!part || curl_mime_name(part, "file") != CURLE_OK ||
	    curl_mime_filename(part, abs) != CURLE_OK ||
	    curl_mime_type(part, "application/octet-stream") != CURLE_OK ||
	    curl_mime_data(part, data ? data : "", len) != CURLE_OK)
		return al_error_set(err, ENOMEM, "out of memory");
	c.path = q;
	c.mime = mime;
	r = envd(ep, sb, &c, &resp, abs, err);
	if (r >= 0 && (resp.status < 200 || resp.status >= 300))
		r = envd_error(&resp, abs, err);
	al_http_response_free(&resp);
	return r < 0 ? r : 0;
}

static int e2b_remove(struct al_provider *p, struct al_sandbox *sb, const char *path,
                      struct al_error *err)
{
	struct e2b_provider *ep = (struct e2b_provider *)p;
	struct e2b_conn *conn = sb->conn;
	_cleanup_cjson_ cJSON *msg = cJSON_CreateObject();
	_cleanup_free_ char *abs = al_hosted_abs(conn ? conn->root : WORKSPACE_ROOT, path);

	if (!msg || !abs)
		return al_error_set(err, ENOMEM, "out of memory");
	cJSON_AddStringToObject(msg, "path", abs);
	return rpc(ep, sb, "/filesystem.Filesystem/Remove", msg, NULL, abs, err);
}

static int e2b_list(struct al_provider *p, struct al_sandbox *sb, const char *path,
                    struct al_dir_entry **entries, size_t *n, struct al_error *err)
{
	struct e2b_provider *ep = (struct e2b_provider *)p;
	struct e2b_conn *conn = sb->conn;
	_cleanup_cjson_ cJSON *msg = cJSON_CreateObject();
	_cleanup_cjson_ cJSON *answer = NULL;
	_cleanup_free_ char *abs = al_hosted_abs(conn ? conn->root : WORKSPACE_ROOT, path);
	const cJSON *arr, *e;
	struct al_dir_entry *out;
	size_t i = 0;
	int r;

	if (!msg || !abs)
		return al_error_set(err, ENOMEM, "out of memory");
	cJSON_AddStringToObject(msg, "path", abs);
	cJSON_AddNumberToObject(msg, "depth", 1);
	r = rpc(ep, sb, "/filesystem.Filesystem/ListDir", msg, &answer, abs, err);
	if (r < 0)
		return r;
	arr = cJSON_GetObjectItemCaseSensitive(answer, "entries");
	out = calloc((size_t)cJSON_GetArraySize(arr) + 1, sizeof(*out));
	if (!out)
		return al_error_set(err, ENOMEM, "out of memory");
	cJSON_ArrayForEach(e, arr)
	{
		const char *name = al_json_str(e, "name"), *type = al_json_str(e, "type");
		const cJSON *size = cJSON_GetObjectItemCaseSensitive(e, "size");
		if (!name)
			continue;
		out[i].name = strdup(name);
		if (!out[i].name) {
			al_dir_entries_free(out, i);
			return al_error_set(err, ENOMEM, "out of memory");
		}
		out[i].type = !type                                  ? 'o'
		              : !strcmp(type, "FILE_TYPE_FILE")      ? 'f'
		              : !strcmp(type, "FILE_TYPE_DIRECTORY") ? 'd'
		              : !strcmp(type, "FILE_TYPE_SYMLINK")   ? 'l'
		                                                     : 'o';
		out[i].size = cJSON_IsNumber(size)   ? (uint64_t)size->valuedouble
		              : cJSON_IsString(size) ? strtoull(size->valuestring, NULL, 10)
		                                     : 0;
		i++;
	}
	*entries = out;
	*n = i;
	return 0;
}

static int e2b_persist(struct al_provider *p, struct al_sandbox *sb, const char *archive_path,
                       struct al_error *err)
{
	struct e2b_conn *conn = sb->conn;
	return al_hosted_persist(p, sb, conn ? conn->root : WORKSPACE_ROOT, archive_path, err);
}

static int e2b_hydrate(struct al_provider *p, struct al_sandbox *sb, const char *archive_path,
                       struct al_error *err)
{
	struct e2b_conn *conn = sb->conn;
	return al_hosted_hydrate(p, sb, conn ? conn->root : WORKSPACE_ROOT, archive_path, err);
}

static const char *const e2b_option_keys[] = {
    "api_url",   "sandbox_url", "template", "request_timeout_ms", "sandbox_timeout_ms",
    "ca_bundle", NULL};

const struct al_provider_ops al_provider_e2b = {
    .type = "e2b",
    .caps = AL_CAP_FS_SNAPSHOT | AL_CAP_WORKSPACE_ARCHIVE | AL_CAP_PTY,
    .option_keys = e2b_option_keys,
    .open = e2b_open,
    .close = e2b_close,
    .create = e2b_create,
    .resume = e2b_resume,
    .exec = e2b_exec,
    .write_stdin = e2b_write_stdin,
    .kill = e2b_kill,
    .read = e2b_read,
    .write = e2b_write,
    .remove = e2b_remove,
    .list = e2b_list,
    .persist_workspace = e2b_persist,
    .hydrate_workspace = e2b_hydrate,
    .snapshot = e2b_snapshot,
    .delete_snapshot = e2b_delete_snapshot,
    .delete = e2b_delete,
};
