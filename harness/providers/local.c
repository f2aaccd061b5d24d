/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The local provider: airlockd on this machine, reached with libcurl over its Unix
 * socket (docs/api.md).  Requests carry only what the sandbox spec names; the harness's
 * environment never travels (no env forwarding, no proxy: a Unix socket has none).
 */
#include "provider.h"

#include "cleanup.h"
#include "json.h"
#include "strv.h"
#include "http.h"
#include "util.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <curl/curl.h>

#define DEFAULT_SOCKET "/run/airlock/airlockd.sock"
#define MAX_JSON_RESPONSE (64u << 20)
/* The window of a tty exec_command. */
#define LOCAL_TTY_ROWS 24
#define LOCAL_TTY_COLS 80

/* Quick operations; exec adds its own yield on top. */
#define REQUEST_TIMEOUT_MS (300 * 1000L)
#define EXEC_GRACE_MS (120 * 1000L)

struct local_provider {
	struct al_provider base;
	char *socket_path;
	struct al_http http;
	CURL *escaper; /* for curl_easy_escape only */
};

struct http_req {
	const char *method;
	const char *path; /* starting with /v1 */
	const char *body;
	size_t body_len;
	FILE *upload; /* PUT body from a file */
	curl_off_t upload_size;
	FILE *download; /* 2xx body to a file */
	size_t max_response;
	long timeout_ms;
};

/* Map airlockd's answer to the provider error codes of provider.h. */
static int status_error(long status, const struct al_buf *body, const char *what,
                        struct al_error *err)
{
	_cleanup_cjson_ cJSON *j = NULL;
	const char *msg = "no message";
	cJSON *e;
	int code;

	if (body->data)
		j = cJSON_ParseWithLength(body->data, body->len);
	e = cJSON_GetObjectItemCaseSensitive(j, "error");
	if (cJSON_IsString(cJSON_GetObjectItemCaseSensitive(e, "message")))
		msg = cJSON_GetObjectItemCaseSensitive(e, "message")->valuestring;
	switch (status) {
	case 400:
		code = EINVAL;
		break;
	case 403:
		code = EPERM;
		break;
	case 404:
		if (!strcmp(msg, "unknown path"))
			code = ENOTSUP;
		else if (!strncmp(msg, "no sandbox", 10) ||
		         strstr(msg, "being created or destroyed"))
			code = EHOSTDOWN;
		else
			code = ENOENT;
		break;
	case 405:
		code = ENOTSUP;
		break;
	case 409:
		code = EEXIST;
		break;
	case 413:
		code = EFBIG;
		break;
	case 503:
		code = EHOSTDOWN;
		break;
	default:
		code = EIO;
	}
	if (code == ENOTSUP)
		return al_error_set(err, code, "%s: airlockd does not support this (HTTP %ld: %s)",
		                    what, status, msg);
	return al_error_set(err, code, "%s: HTTP %ld: %s", what, status, msg);
}

static int http(struct local_provider *lp, const struct http_req *rq, struct al_buf *resp,
                const char *what, struct al_error *err)
{
	_cleanup_free_ char *url = NULL;
	const char *headers[] = {rq->upload ? "Content-Type: application/x-tar"
	                                    : "Content-Type: application/json",
	                         NULL};
	struct al_http_request hr = {
	    .method = rq->method,
	    .headers = headers,
	    .body = rq->body,
	    .body_len = rq->body_len,
	    .upload = rq->upload,
	    .upload_size = rq->upload_size,
	    .download = rq->download,
	    .max_response = rq->max_response ? rq->max_response : MAX_JSON_RESPONSE,
	    .timeout_ms = rq->timeout_ms ? rq->timeout_ms : REQUEST_TIMEOUT_MS,
	    .what = what};
	struct al_http_response hresp;
	int r;

	if (asprintf(&url, "http://localhost%s", rq->path) < 0)
		return al_error_set(err, ENOMEM, "out of memory");
	hr.url = url;
	r = al_http_do(&lp->http, &hr, &hresp, err);
	if (r == -ECONNREFUSED)
		return al_error_set(err, ECONNREFUSED, "%s: cannot reach airlockd at %s", what,
		                    lp->socket_path);
	if (r == -ETIMEDOUT)
		return al_error_set(err, ETIMEDOUT, "%s: airlockd did not answer in time", what);
	if (r < 0) {
		al_http_response_free(&hresp);
		return r;
	}
	*resp = hresp.body;
	if (hresp.status < 200 || hresp.status >= 300)
		return status_error(hresp.status, resp, what, err);
	return (int)hresp.status;
}

/* A request with a JSON body (or none) whose answer is JSON. */
static int http_json(struct local_provider *lp, const char *method, const char *path,
                     const cJSON *body, long timeout_ms, cJSON **out, const char *what,
                     struct al_error *err)
{
	_cleanup_free_ char *text = NULL;
	_cleanup_buf_ struct al_buf resp = {0};
	struct http_req rq = {.method = method, .path = path, .timeout_ms = timeout_ms};
	int r;

	if (body) {
		text = cJSON_PrintUnformatted(body);
		if (!text)
			return al_error_set(err, ENOMEM, "out of memory");
		rq.body = text;
		rq.body_len = strlen(text);
	}
	r = http(lp, &rq, &resp, what, err);
	if (r < 0)
		return r;
	if (out) {
		*out = resp.data ? cJSON_ParseWithLength(resp.data, resp.len) : NULL;
		if (!*out)
			return al_error_set(err, EIO, "%s: airlockd's answer is not JSON", what);
	}
	return 0;
}

static char *escape(struct local_provider *lp, const char *s)
{
	char *e = curl_easy_escape(lp->escaper, s, 0);
	char *copy = e ? strdup(e) : NULL;
	curl_free(e);
	return copy;
}

static int sandbox_path(struct local_provider *lp, const char *id, const char *suffix,
                        const char *file_path, const char *extra_query, char **out,
                        struct al_error *err)
{
	_cleanup_free_ char *eid = escape(lp, id);
	_cleanup_free_ char *epath = file_path ? escape(lp, file_path) : NULL;
	int n;

	if (!eid || (file_path && !epath))
		return al_error_set(err, ENOMEM, "out of memory");
	n = asprintf(out, "/v1/sandboxes/%s%s%s%s%s%s", eid, suffix, file_path ? "?path=" : "",
	             file_path ? epath : "", extra_query ? (file_path ? "&" : "?") : "",
	             extra_query ? extra_query : "");
	if (n < 0)
		return al_error_set(err, ENOMEM, "out of memory");
	return 0;
}

/* ---- lifecycle ---- */

static void local_close(struct al_provider *p)
{
	struct local_provider *lp = (struct local_provider *)p;

	if (!lp)
		return;
	al_http_close(&lp->http);
	if (lp->escaper)
		curl_easy_cleanup(lp->escaper);
	free(lp->socket_path);
	free(lp);
}

static int local_open(const cJSON *options, const char *api_key, struct al_provider **out,
                      struct al_error *err)
{
	struct local_provider *lp;
	const cJSON *sock = cJSON_GetObjectItemCaseSensitive(options, "socket");
	const char *path = cJSON_IsString(sock) ? sock->valuestring : getenv("AIRLOCK_SOCKET");
	struct al_http_config hc = {.timeout_ms = REQUEST_TIMEOUT_MS,
	                            .connect_timeout_ms = 10000,
	                            /* airlockd is on this host: a retry would not help, and
	                             * its 503 means "sandbox not running", not "busy" */
	                            .max_retries = 0};
	int r;

	(void)api_key; /* airlockd's socket is guarded by its mode and SO_PEERCRED */
	if (!path || !*path)
		path = DEFAULT_SOCKET;
	hc.unix_socket = path;
	lp = calloc(1, sizeof(*lp));
	if (!lp)
		return al_error_set(err, ENOMEM, "out of memory");
	lp->base.ops = &al_provider_local;
	lp->socket_path = strdup(path);
	lp->escaper = curl_easy_init();
	r = al_http_open(&lp->http, &hc, err);
	if (r < 0 || !lp->socket_path || !lp->escaper) {
		local_close(&lp->base);
		return r < 0 ? r : al_error_set(err, ENOMEM, "cannot set up a libcurl handle");
	}
	*out = &lp->base;
	return 0;
}

/* Whether entries has one at path: a key, or a key of a dir's children below it
 * (a nested mount's credentials are keyed by its full path, "dir/entry"). */
static bool has_entry(const cJSON *entries, const char *path, int depth)
{
	const cJSON *e;

	if (cJSON_GetObjectItemCaseSensitive(entries, path))
		return true;
	if (depth > 64)
		return false;
	cJSON_ArrayForEach(e, entries)
	{
		size_t n = strlen(e->string);
		const char *t = al_json_str(e, "type");
		if (t && !strcmp(t, "dir") && !strncmp(path, e->string, n) && path[n] == '/' &&
		    has_entry(cJSON_GetObjectItemCaseSensitive(e, "children"), path + n + 1,
		              depth + 1))
			return true;
	}
	return false;
}

static int local_create(struct al_provider *p, const struct al_sandbox_spec *spec,
                        struct al_sandbox **out, struct al_error *err)
{
	struct local_provider *lp = (struct local_provider *)p;
	_cleanup_cjson_ cJSON *body = cJSON_CreateObject();
	_cleanup_cjson_ cJSON *resp = NULL;
	cJSON *limits, *v;
	int r;

	if (!body)
		return al_error_set(err, ENOMEM, "out of memory");
	if (spec->name)
		cJSON_AddStringToObject(body, "name", spec->name);
	if (spec->labels)
		cJSON_AddItemToObject(body, "labels", cJSON_Duplicate(spec->labels, 1));
	/* Each on a free port of the host's loopback, as the SDK's Docker client does; a
	 * restore takes its own (the original may still hold its ports). */
	if (spec->n_exposed_ports) {
		cJSON *ports = cJSON_AddArrayToObject(body, "ports");
		for (size_t i = 0; ports && i < spec->n_exposed_ports; i++) {
			char one[16];
			snprintf(one, sizeof(one), "0:%u", (unsigned)spec->exposed_ports[i]);
			cJSON_AddItemToArray(ports, cJSON_CreateString(one));
		}
	}
	if (spec->snapshot_id) {
		cJSON_AddStringToObject(body, "snapshot", spec->snapshot_id);
	} else {
		if (spec->rootfs)
			cJSON_AddStringToObject(body, "rootfs", spec->rootfs);
		if (spec->image)
			cJSON_AddStringToObject(body, "image", spec->image);
		if (spec->manifest)
			cJSON_AddItemToObject(body, "manifest", cJSON_Duplicate(spec->manifest, 1));
		/* Only the entries of this manifest: airlockd refuses keys it does not have. */
		if (spec->mount_credentials && spec->manifest) {
			const cJSON *entries =
			    cJSON_GetObjectItemCaseSensitive(spec->manifest, "entries");
			cJSON *mc = NULL, *e;
			cJSON_ArrayForEach(e, spec->mount_credentials)
			{
				if (!has_entry(entries, e->string, 0))
					continue;
				if (!mc)
					mc = cJSON_AddObjectToObject(body, "mount_credentials");
				if (mc)
					cJSON_AddItemToObject(mc, e->string, cJSON_Duplicate(e, 1));
			}
		}
		limits = cJSON_AddObjectToObject(body, "limits");
		if (spec->memory_bytes)
			cJSON_AddNumberToObject(limits, "memory_bytes", (double)spec->memory_bytes);
		if (spec->pids)
			cJSON_AddNumberToObject(limits, "pids", (double)spec->pids);
		if (spec->cpus > 0)
			cJSON_AddNumberToObject(limits, "cpus", spec->cpus);
		if (spec->env)
			cJSON_AddItemToObject(body, "env", cJSON_Duplicate(spec->env, 1));
	}
	r = http_json(lp, "POST", "/v1/sandboxes", body, 0, &resp, "create sandbox", err);
	if (r < 0)
		return r;
	v = cJSON_GetObjectItemCaseSensitive(resp, "id");
	if (!cJSON_IsString(v))
		return al_error_set(err, EIO, "create sandbox: airlockd's answer has no id");
	*out = al_sandbox_new(v->valuestring);
	return *out ? 0 : al_error_set(err, ENOMEM, "out of memory");
}

int al_local_list(struct al_provider *p, const char *query, cJSON **out, struct al_error *err)
{
	struct local_provider *lp = (struct local_provider *)p;
	_cleanup_cjson_ cJSON *resp = NULL;
	_cleanup_free_ char *path = NULL;
	int r;

	if (p->ops != &al_provider_local)
		return al_error_set(err, ENOTSUP, "only airlockd's sandboxes can be listed");
	if (asprintf(&path, "/v1/sandboxes%s%s", query ? "?" : "", query ? query : "") < 0)
		return al_error_set(err, ENOMEM, "out of memory");
	r = http_json(lp, "GET", path, NULL, 0, &resp, "list sandboxes", err);
	if (r < 0)
		return r;
	*out = cJSON_DetachItemFromObjectCaseSensitive(resp, "sandboxes");
	if (!cJSON_IsArray(*out)) {
		cJSON_Delete(*out);
		*out = NULL;
		return al_error_set(err, EIO, "list sandboxes: airlockd's answer has no list");
	}
	return 0;
}

static int local_resume(struct al_provider *p, const char *id, const cJSON *saved, const char *name,
                        struct al_sandbox **out, bool *running, struct al_error *err)
{
	struct local_provider *lp = (struct local_provider *)p;
	_cleanup_cjson_ cJSON *resp = NULL;
	_cleanup_free_ char *path = NULL;
	const cJSON *sb = NULL, *v;
	int r;

	if (id) {
		r = sandbox_path(lp, id, "", NULL, NULL, &path, err);
		if (r < 0)
			return r;
		r = http_json(lp, "GET", path, NULL, 0, &resp, "inspect sandbox", err);
		if (r == -EHOSTDOWN)
			return al_error_set(err, ENOENT, "sandbox %s: not found", id);
		if (r < 0)
			return r;
		sb = resp;
	} else {
		r = http_json(lp, "GET", "/v1/sandboxes", NULL, 0, &resp, "list sandboxes", err);
		if (r < 0)
			return r;
		cJSON_ArrayForEach(v, cJSON_GetObjectItemCaseSensitive(resp, "sandboxes"))
		{
			const cJSON *n = cJSON_GetObjectItemCaseSensitive(v, "name");
			if (name && cJSON_IsString(n) && !strcmp(n->valuestring, name))
				sb = v;
		}
		if (!sb)
			return al_error_set(err, ENOENT, "no sandbox named %s",
			                    name ? name : "(none)");
	}
	v = cJSON_GetObjectItemCaseSensitive(sb, "id");
	if (!cJSON_IsString(v))
		return al_error_set(err, EIO, "airlockd's sandbox has no id");
	(void)saved; /* the id is all airlockd needs */
	*out = al_sandbox_new(v->valuestring);
	if (!*out)
		return al_error_set(err, ENOMEM, "out of memory");
	v = cJSON_GetObjectItemCaseSensitive(sb, "state");
	*running = cJSON_IsString(v) && !strcmp(v->valuestring, "running");
	return 0;
}

static int local_delete(struct al_provider *p, struct al_sandbox *sb, struct al_error *err)
{
	const char *id = sb->id;
	struct local_provider *lp = (struct local_provider *)p;
	_cleanup_free_ char *path = NULL;
	int r = sandbox_path(lp, id, "", NULL, NULL, &path, err);

	if (r < 0)
		return r;
	r = http_json(lp, "DELETE", path, NULL, 0, NULL, "delete sandbox", err);
	return r == -EHOSTDOWN ? 0 : r;
}

/* ---- processes ---- */

static char *json_strdup(const cJSON *o, const char *key, size_t *len)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
	const char *s = cJSON_IsString(v) ? v->valuestring : "";

	if (len)
		*len = strlen(s);
	return strdup(s);
}

static int parse_process(const cJSON *o, struct al_exec_result *res, struct al_error *err)
{
	const cJSON *v;

	memset(res, 0, sizeof(*res));
	res->running = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(o, "running"));
	v = cJSON_GetObjectItemCaseSensitive(o, "process_id");
	if (res->running) {
		if (!cJSON_IsString(v))
			return al_error_set(err, EIO,
			                    "airlockd reports a running process without id");
		res->process_id = strdup(v->valuestring);
	}
	v = cJSON_GetObjectItemCaseSensitive(o, "exit_code");
	res->exit_code = cJSON_IsNumber(v) ? v->valueint : -1;
	v = cJSON_GetObjectItemCaseSensitive(o, "signal");
	res->signal = cJSON_IsNumber(v) ? v->valueint : 0;
	res->out = json_strdup(o, "stdout", &res->out_len);
	res->err = json_strdup(o, "stderr", &res->err_len);
	res->truncated = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(o, "stdout_truncated")) ||
	                 cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(o, "stderr_truncated"));
	if (!res->out || !res->err || (res->running && !res->process_id)) {
		al_exec_result_free(res);
		return al_error_set(err, ENOMEM, "out of memory");
	}
	return 0;
}

static int local_exec(struct al_provider *p, struct al_sandbox *sb,
                      const struct al_exec_request *req, struct al_exec_result *res,
                      struct al_error *err)
{
	const char *id = sb->id;
	struct local_provider *lp = (struct local_provider *)p;
	_cleanup_cjson_ cJSON *body = cJSON_CreateObject();
	_cleanup_cjson_ cJSON *resp = NULL;
	_cleanup_free_ char *path = NULL;
	cJSON *argv;
	int r;

	if (!body)
		return al_error_set(err, ENOMEM, "out of memory");
	argv = cJSON_AddArrayToObject(body, "argv");
	for (const char *const *a = req->argv; *a; a++)
		cJSON_AddItemToArray(argv, cJSON_CreateString(*a));
	if (req->workdir)
		cJSON_AddStringToObject(body, "cwd", req->workdir);
	cJSON_AddBoolToObject(body, "keep_stdin_open", req->keep_stdin_open);
	cJSON_AddNumberToObject(body, "timeout_ms", 0);
	cJSON_AddNumberToObject(body, "yield_ms", (double)req->yield_ms);
	if (req->max_output_bytes)
		cJSON_AddNumberToObject(body, "max_output_bytes", (double)req->max_output_bytes);
	if (req->tty) {
		/* airlockd's pty, of a conventional size: programs that lay out
		 * for a terminal (pagers, progress bars) get one. */
		cJSON_AddTrueToObject(body, "tty");
		cJSON_AddNumberToObject(body, "rows", LOCAL_TTY_ROWS);
		cJSON_AddNumberToObject(body, "cols", LOCAL_TTY_COLS);
	}
	r = sandbox_path(lp, id, "/exec", NULL, NULL, &path, err);
	if (r < 0)
		return r;
	r = http_json(lp, "POST", path, body, (long)req->yield_ms + EXEC_GRACE_MS, &resp, "exec",
	              err);
	if (r < 0)
		return r;
	return parse_process(resp, res, err);
}

static int local_write_stdin(struct al_provider *p, struct al_sandbox *sb, const char *process_id,
                             const char *data, size_t len, uint64_t yield_ms,
                             struct al_exec_result *res, struct al_error *err)
{
	const char *id = sb->id;
	struct local_provider *lp = (struct local_provider *)p;
	_cleanup_cjson_ cJSON *body = cJSON_CreateObject();
	_cleanup_cjson_ cJSON *resp = NULL;
	_cleanup_free_ char *path = NULL;
	_cleanup_free_ char *suffix = NULL;
	_cleanup_free_ char *epid = escape(lp, process_id);
	_cleanup_free_ char *b64 = NULL;
	int r;

	if (!body || !epid || asprintf(&suffix, "/processes/%s/stdin", epid) < 0)
		return al_error_set(err, ENOMEM, "out of memory");
	if (len) {
		b64 = al_base64_encode(data, len);
		if (!b64)
			return al_error_set(err, ENOMEM, "out of memory");
		cJSON_AddStringToObject(body, "data_base64", b64);
	}
	cJSON_AddNumberToObject(body, "yield_ms", (double)yield_ms);
	r = sandbox_path(lp, id, suffix, NULL, NULL, &path, err);
	if (r < 0)
		return r;
	r = http_json(lp, "POST", path, body, (long)yield_ms + EXEC_GRACE_MS, &resp, "write stdin",
	              err);
	if (r < 0)
		return r;
	return parse_process(resp, res, err);
}

static int local_kill(struct al_provider *p, struct al_sandbox *sb, const char *process_id,
                      const char *signame, struct al_error *err)
{
	const char *id = sb->id;
	struct local_provider *lp = (struct local_provider *)p;
	_cleanup_free_ char *path = NULL;
	_cleanup_free_ char *suffix = NULL;
	_cleanup_free_ char *epid = escape(lp, process_id);
	int r;

	if (!epid || asprintf(&suffix, "/processes/%s?signal=%s", epid, signame) < 0)
		return al_error_set(err, ENOMEM, "out of memory");
	r = sandbox_path(lp, id, suffix, NULL, NULL, &path, err);
	if (r < 0)
		return r;
	return http_json(lp, "DELETE", path, NULL, 0, NULL, "signal process", err);
}

/* ---- files ---- */

static int local_read(struct al_provider *p, struct al_sandbox *sb, const char *path, size_t max,
                      char **data, size_t *len, struct al_error *err)
{
	const char *id = sb->id;
	struct local_provider *lp = (struct local_provider *)p;
	_cleanup_free_ char *url = NULL;
	struct al_buf resp = {0};
	struct http_req rq = {.method = "GET", .max_response = max};
	int r;

	r = sandbox_path(lp, id, "/files", path, NULL, &url, err);
	if (r < 0)
		return r;
	rq.path = url;
	r = http(lp, &rq, &resp, path, err);
	if (r < 0) {
		al_buf_free(&resp);
		return r;
	}
	if (al_buf_append(&resp, "", 1) < 0) {
		al_buf_free(&resp);
		return al_error_set(err, ENOMEM, "out of memory");
	}
	*len = resp.len - 1;
	*data = resp.data;
	return 0;
}

static int local_write(struct al_provider *p, struct al_sandbox *sb, const char *path,
                       const void *data, size_t len, struct al_error *err)
{
	const char *id = sb->id;
	struct local_provider *lp = (struct local_provider *)p;
	_cleanup_free_ char *url = NULL;
	_cleanup_buf_ struct al_buf resp = {0};
	struct http_req rq = {.method = "PUT", .body = data ? data : "", .body_len = len};
	int r;

	r = sandbox_path(lp, id, "/files", path, "mode=0644&parents=1", &url, err);
	if (r < 0)
		return r;
	rq.path = url;
	r = http(lp, &rq, &resp, path, err);
	return r < 0 ? r : 0;
}

static int local_remove(struct al_provider *p, struct al_sandbox *sb, const char *path,
                        struct al_error *err)
{
	const char *id = sb->id;
	struct local_provider *lp = (struct local_provider *)p;
	_cleanup_free_ char *url = NULL;
	int r = sandbox_path(lp, id, "/files", path, NULL, &url, err);

	if (r < 0)
		return r;
	return http_json(lp, "DELETE", url, NULL, 0, NULL, path, err);
}

static int local_list(struct al_provider *p, struct al_sandbox *sb, const char *path,
                      struct al_dir_entry **entries, size_t *n, struct al_error *err)
{
	const char *id = sb->id;
	struct local_provider *lp = (struct local_provider *)p;
	_cleanup_free_ char *url = NULL;
	_cleanup_cjson_ cJSON *resp = NULL;
	const cJSON *arr, *e;
	struct al_dir_entry *out;
	size_t i = 0;
	int r;

	r = sandbox_path(lp, id, "/dirs", path, NULL, &url, err);
	if (r < 0)
		return r;
	r = http_json(lp, "GET", url, NULL, 0, &resp, path, err);
	if (r < 0)
		return r;
	arr = cJSON_GetObjectItemCaseSensitive(resp, "entries");
	out = calloc((size_t)cJSON_GetArraySize(arr) + 1, sizeof(*out));
	if (!out)
		return al_error_set(err, ENOMEM, "out of memory");
	cJSON_ArrayForEach(e, arr)
	{
		const cJSON *name = cJSON_GetObjectItemCaseSensitive(e, "name");
		const cJSON *type = cJSON_GetObjectItemCaseSensitive(e, "type");
		const cJSON *size = cJSON_GetObjectItemCaseSensitive(e, "size");
		if (!cJSON_IsString(name))
			continue;
		out[i].name = strdup(name->valuestring);
		if (!out[i].name) {
			al_dir_entries_free(out, i);
			return al_error_set(err, ENOMEM, "out of memory");
		}
		out[i].type = cJSON_IsString(type) ? type->valuestring[0] : 'o';
		out[i].size = cJSON_IsNumber(size) ? (uint64_t)size->valuedouble : 0;
		i++;
	}
	*entries = out;
	*n = i;
	return 0;
}

/* ---- workspace and snapshots ---- */

static int local_persist(struct al_provider *p, struct al_sandbox *sb, const char *archive_path,
                         struct al_error *err)
{
	const char *id = sb->id;
	struct local_provider *lp = (struct local_provider *)p;
	_cleanup_free_ char *url = NULL;
	_cleanup_free_ char *tmp = NULL;
	_cleanup_buf_ struct al_buf resp = {0};
	struct http_req rq = {.method = "GET"};
	FILE *f;
	int r;

	r = sandbox_path(lp, id, "/workspace", NULL, NULL, &url, err);
	if (r < 0)
		return r;
	if (asprintf(&tmp, "%s.part", archive_path) < 0)
		return al_error_set(err, ENOMEM, "out of memory");
	f = fopen(tmp, "wxe");
	if (!f && errno == EEXIST) {
		unlink(tmp);
		f = fopen(tmp, "wxe");
	}
	if (!f)
		return al_error_errno(err, "create %s", tmp);
	rq.path = url;
	rq.download = f;
	r = http(lp, &rq, &resp, "persist workspace", err);
	if (r >= 0 && (fflush(f) != 0 || fsync(fileno(f)) < 0))
		r = al_error_errno(err, "write %s", tmp);
	if (fclose(f) != 0 && r >= 0)
		r = al_error_errno(err, "close %s", tmp);
	if (r >= 0 && rename(tmp, archive_path) < 0)
		r = al_error_errno(err, "rename %s", tmp);
	if (r < 0) {
		unlink(tmp);
		return r;
	}
	return 0;
}

static int local_hydrate(struct al_provider *p, struct al_sandbox *sb, const char *archive_path,
                         struct al_error *err)
{
	const char *id = sb->id;
	struct local_provider *lp = (struct local_provider *)p;
	_cleanup_free_ char *url = NULL;
	_cleanup_buf_ struct al_buf resp = {0};
	_cleanup_fclose_ FILE *f = NULL;
	struct http_req rq = {.method = "PUT"};
	struct stat st;
	int r;

	r = sandbox_path(lp, id, "/workspace", NULL, NULL, &url, err);
	if (r < 0)
		return r;
	f = fopen(archive_path, "re");
	if (!f)
		return al_error_errno(err, "open %s", archive_path);
	if (fstat(fileno(f), &st) < 0)
		return al_error_errno(err, "stat %s", archive_path);
	rq.path = url;
	rq.upload = f;
	rq.upload_size = st.st_size;
	r = http(lp, &rq, &resp, "hydrate workspace", err);
	return r < 0 ? r : 0;
}

static int local_snapshot(struct al_provider *p, struct al_sandbox *sb, bool processes,
                          char **snapshot_id, struct al_error *err)
{
	const char *id = sb->id;
	struct local_provider *lp = (struct local_provider *)p;
	_cleanup_cjson_ cJSON *body = cJSON_CreateObject();
	_cleanup_cjson_ cJSON *resp = NULL;
	_cleanup_free_ char *url = NULL;
	const cJSON *v;
	int r;

	if (!body)
		return al_error_set(err, ENOMEM, "out of memory");
	cJSON_AddBoolToObject(body, "processes", processes);
	r = sandbox_path(lp, id, "/snapshots", NULL, NULL, &url, err);
	if (r < 0)
		return r;
	r = http_json(lp, "POST", url, body, 0, &resp, "snapshot", err);
	if (r < 0)
		return r;
	v = cJSON_GetObjectItemCaseSensitive(resp, "id");
	if (!cJSON_IsString(v))
		v = cJSON_GetObjectItemCaseSensitive(resp, "snapshot_id");
	if (!cJSON_IsString(v))
		return al_error_set(err, EIO, "snapshot: airlockd's answer has no id");
	*snapshot_id = strdup(v->valuestring);
	return *snapshot_id ? 0 : al_error_set(err, ENOMEM, "out of memory");
}

static int local_delete_snapshot(struct al_provider *p, const char *snapshot_id,
                                 struct al_error *err)
{
	struct local_provider *lp = (struct local_provider *)p;
	_cleanup_free_ char *esc = escape(lp, snapshot_id);
	_cleanup_free_ char *path = NULL;
	int r;

	if (!esc || asprintf(&path, "/v1/snapshots/%s", esc) < 0) {
		path = NULL;
		return al_error_set(err, ENOMEM, "out of memory");
	}
	r = http_json(lp, "DELETE", path, NULL, 0, NULL, "delete snapshot", err);
	return r == -ENOENT ? 0 : r;
}

static int local_list_snapshots(struct al_provider *p, const char *sandbox_id, char ***ids,
                                struct al_error *err)
{
	struct local_provider *lp = (struct local_provider *)p;
	_cleanup_cjson_ cJSON *resp = NULL;
	_cleanup_strv_ char **found = calloc(1, sizeof(char *));
	const cJSON *it;
	int r;

	if (!found)
		return al_error_set(err, ENOMEM, "out of memory");
	r = http_json(lp, "GET", "/v1/snapshots", NULL, 0, &resp, "list snapshots", err);
	if (r < 0)
		return r;
	cJSON_ArrayForEach(it, cJSON_GetObjectItemCaseSensitive(resp, "snapshots"))
	{
		const cJSON *of = cJSON_GetObjectItemCaseSensitive(it, "sandbox");
		const char *id = al_json_str(it, "id"), *sid = al_json_str(of, "id");

		if (id && sid && !strcmp(sid, sandbox_id) && al_strv_push(&found, id) < 0)
			return al_error_set(err, ENOMEM, "out of memory");
	}
	*ids = TAKE_PTR(found);
	return 0;
}

static int local_export_snapshot(struct al_provider *p, const char *snapshot_id, const char *path,
                                 struct al_error *err)
{
	struct local_provider *lp = (struct local_provider *)p;
	_cleanup_free_ char *esc = escape(lp, snapshot_id);
	_cleanup_free_ char *url = NULL;
	_cleanup_free_ char *tmp = NULL;
	_cleanup_buf_ struct al_buf resp = {0};
	struct http_req rq = {.method = "GET"};
	FILE *f;
	int r;

	if (!esc || asprintf(&url, "/v1/snapshots/%s/export", esc) < 0 ||
	    asprintf(&tmp, "%s.part", path) < 0)
		return al_error_set(err, ENOMEM, "out of memory");
	unlink(tmp);
	f = fopen(tmp, "wxe");
	if (!f)
		return al_error_errno(err, "create %s", tmp);
	rq.path = url;
	rq.download = f;
	rq.timeout_ms = 30L * 60 * 1000;
	r = http(lp, &rq, &resp, "export snapshot", err);
	if (r >= 0 && (fflush(f) != 0 || fsync(fileno(f)) < 0))
		r = al_error_errno(err, "write %s", tmp);
	if (fclose(f) != 0 && r >= 0)
		r = al_error_errno(err, "close %s", tmp);
	if (r >= 0 && rename(tmp, path) < 0)
		r = al_error_errno(err, "rename %s", tmp);
	if (r < 0)
		unlink(tmp);
	return r < 0 ? r : 0;
}

static int local_import_snapshot(struct al_provider *p, const char *path, char **snapshot_id,
                                 struct al_error *err)
{
	struct local_provider *lp = (struct local_provider *)p;
	_cleanup_buf_ struct al_buf resp = {0};
	_cleanup_fclose_ FILE *f = fopen(path, "re");
	_cleanup_cjson_ cJSON *j = NULL;
	struct http_req rq = {.method = "POST", .path = "/v1/snapshots/import"};
	struct stat st;
	int r;

	if (!f || fstat(fileno(f), &st) < 0)
		return al_error_errno(err, "open %s", path);
	rq.upload = f;
	rq.upload_size = st.st_size;
	rq.timeout_ms = 30L * 60 * 1000;
	r = http(lp, &rq, &resp, "import snapshot", err);
	if (r < 0)
		return r;
	j = cJSON_ParseWithLength(resp.data ? resp.data : "", resp.len);
	if (!al_json_str(j, "id"))
		return al_error_set(err, EIO, "import snapshot: airlockd's answer has no id");
	*snapshot_id = strdup(al_json_str(j, "id"));
	return *snapshot_id ? 0 : al_error_set(err, ENOMEM, "out of memory");
}

/* airlockd's inspect lists the published ports with the host port it bound. */
static int local_resolve_exposed_port(struct al_provider *p, struct al_sandbox *sb, uint16_t port,
                                      cJSON **endpoint, struct al_error *err)
{
	struct local_provider *lp = (struct local_provider *)p;
	_cleanup_cjson_ cJSON *resp = NULL;
	_cleanup_free_ char *path = NULL;
	const cJSON *e;
	int r;

	r = sandbox_path(lp, sb->id, "", NULL, NULL, &path, err);
	if (r < 0)
		return r;
	r = http_json(lp, "GET", path, NULL, 0, &resp, "inspect sandbox", err);
	if (r < 0)
		return r;
	cJSON_ArrayForEach(e, cJSON_GetObjectItemCaseSensitive(resp, "ports"))
	{
		const cJSON *pn = cJSON_GetObjectItemCaseSensitive(e, "port");
		const cJSON *hp = cJSON_GetObjectItemCaseSensitive(e, "host_port");
		const char *host = al_json_str(e, "host_address"), *url = al_json_str(e, "url");
		cJSON *o;

		const char *proto = al_json_str(e, "protocol");

		/* An exposed port is a TCP one: a UDP port of the same number is not it. */
		if (!cJSON_IsNumber(pn) || pn->valueint != port || (proto && strcmp(proto, "tcp")))
			continue;
		if (!host || !url || !cJSON_IsNumber(hp))
			return al_error_set(
			    err, EIO, "sandbox %s: airlockd reports port %u without its address",
			    sb->id, (unsigned)port);
		o = cJSON_CreateObject();
		if (!o || !cJSON_AddStringToObject(o, "host", host) ||
		    !cJSON_AddNumberToObject(o, "port", hp->valuedouble) ||
		    !cJSON_AddFalseToObject(o, "tls") || !cJSON_AddStringToObject(o, "query", "") ||
		    !cJSON_AddStringToObject(o, "url", url)) {
			cJSON_Delete(o);
			return al_error_set(err, ENOMEM, "out of memory");
		}
		*endpoint = o;
		return 0;
	}
	return al_error_set(err, ENOENT, "sandbox %s does not publish port %u", sb->id,
	                    (unsigned)port);
}

static const char *const local_option_keys[] = {"socket", "rootfs", "image", NULL};

const struct al_provider_ops al_provider_local = {
    .type = "local",
    .caps = AL_CAP_PROCESS_SNAPSHOT | AL_CAP_FS_SNAPSHOT | AL_CAP_WORKSPACE_ARCHIVE |
            AL_CAP_MOUNTS | AL_CAP_PTY | AL_CAP_EXPOSED_PORTS,
    .option_keys = local_option_keys,
    .open = local_open,
    .close = local_close,
    .create = local_create,
    .resume = local_resume,
    .exec = local_exec,
    .write_stdin = local_write_stdin,
    .kill = local_kill,
    .read = local_read,
    .write = local_write,
    .remove = local_remove,
    .list = local_list,
    .persist_workspace = local_persist,
    .hydrate_workspace = local_hydrate,
    .snapshot = local_snapshot,
    .list_snapshots = local_list_snapshots,
    .delete_snapshot = local_delete_snapshot,
    .export_snapshot = local_export_snapshot,
    .import_snapshot = local_import_snapshot,
    .delete = local_delete,
    .resolve_exposed_port = local_resolve_exposed_port,
};
