/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The runloop provider: Runloop's REST API as `@runloop/api-client` speaks it
 * (docs/providers.md; the reference's §6).  One host for everything.  A command is run to
 * its end by execute and, past the server's hold, by wait_for_status long polls that
 * answer 408 ("keep waiting") until it completes; exec sessions — yield, stdin, kill —
 * are hosted.c's shared building block over that.  Files go through upload_file and
 * download_file; listing and removal through commands, as Runloop has no routes for
 * them.  Snapshots are Runloop's disk snapshots; a devbox is created from one.
 *
 * Over https:// libcurl negotiates HTTP/2 or 1.1 by ALPN; to an http:// base URL (a
 * gateway) it speaks HTTP/1.1, which airlock-gateway serves beside the SDK's h2c:
 * libcurl 7.88 (Debian 12's) fails requests after the first on a reused cleartext
 * HTTP/2 connection, and stalls on bodies that are a multiple of 16 KiB on a reused
 * handle (both seen against Node's HTTP/2 server too).
 */
#include "hosted.h"
#include "provider.h"

#include "cleanup.h"
#include "json.h"
#include "http.h"
#include "util.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <curl/curl.h>

#define DEFAULT_BASE_URL "https://api.runloop.ai"
/* The devbox user's home: where a manifest without a root goes (the Agents SDK's
 * Runloop workspace root). */
#define WORKSPACE_ROOT "/home/user"
#define MAX_FILE (1u << 30)
#define START_WAIT_MS (300 * 1000L)
#define SNAPSHOT_WAIT_MS (600 * 1000L)
/* A long poll's request must outlast the server's hold (25-30 s) so its 408 arrives. */
#define LONG_POLL_REQUEST_MS (120 * 1000L)
#define LABEL_NAME "airlock_name"

struct runloop_provider {
	struct al_hosted_provider h;
	char *blueprint;
};

struct runloop_conn {
	char *root;
};

static void conn_free(void *c)
{
	struct runloop_conn *conn = c;

	if (!conn)
		return;
	free(conn->root);
	free(conn);
}

static void runloop_close(struct al_provider *p)
{
	struct runloop_provider *rp = (struct runloop_provider *)p;

	if (!rp)
		return;
	free(rp->blueprint);
	al_hosted_provider_free(&rp->h);
}

/* Defined after run_script. */
static const struct al_session_runner runner;

static const struct al_hosted_config runloop_config = {.type = "runloop",
                                                       .ops = &al_provider_runloop,
                                                       .runner = &runner,
                                                       .url_key = "base_url",
                                                       .url_env = "RUNLOOP_BASE_URL",
                                                       .default_url = DEFAULT_BASE_URL,
                                                       .auth = "Authorization: Bearer "};

static int runloop_open(const cJSON *options, const char *api_key, struct al_provider **out,
                        struct al_error *err)
{
	const char *blueprint = al_hosted_option(options, "blueprint_id", NULL);
	struct runloop_provider *rp =
	    al_hosted_provider_new(sizeof(*rp), &runloop_config, options, api_key, err);

	if (!rp)
		return -err->code;
	rp->blueprint = blueprint ? strdup(blueprint) : NULL;
	if (blueprint && !rp->blueprint) {
		runloop_close(&rp->h.base);
		return al_error_set(err, ENOMEM, "out of memory");
	}
	*out = &rp->h.base;
	return 0;
}

/* ---- requests ---- */

static int status_code(const struct al_http_response *resp, bool plane)
{
	(void)plane; /* one host for everything */
	/* A long poll's "keep waiting". */
	return resp->status == 408 ? ETIMEDOUT : al_hosted_status_errno(resp->status);
}

struct call {
	const char *method;
	const char *url;
	const cJSON *json;
	void *mime;
	bool idempotent;
	size_t max;
	long timeout_ms;
	const char *accept;
};

/* One request: *out gets a 2xx body (NUL-terminated), or *json the parsed one (when set). */
static int send_call(struct runloop_provider *rp, const struct call *c, struct al_buf *out,
                     cJSON **json, const char *what, struct al_error *err)
{
	_cleanup_free_ char *text = c->json ? cJSON_PrintUnformatted(c->json) : NULL;
	const char *headers[] = {rp->h.c.auth_header,
	                         c->accept ? c->accept : "Accept: application/json",
	                         c->mime ? NULL : "Content-Type: application/json", NULL};
	struct al_http_request rq = {.method = c->method,
	                             .url = c->url,
	                             .headers = headers,
	                             .body = text,
	                             .body_len = text ? strlen(text) : 0,
	                             .mime = c->mime,
	                             .idempotent = c->idempotent,
	                             .max_response = c->max,
	                             .timeout_ms = c->timeout_ms,
	                             .what = what};

	if (c->json && !text)
		return al_error_set(err, ENOMEM, "out of memory");
	return al_hosted_send(&rp->h.c, &rq, status_code, false, out, json, err);
}

/* One request; *out gets a 2xx body (NUL-terminated, when out is set). */
static int request(struct runloop_provider *rp, const struct call *c, struct al_buf *out,
                   const char *what, struct al_error *err)
{
	return send_call(rp, c, out, NULL, what, err);
}

static int request_json(struct runloop_provider *rp, const struct call *c, cJSON **out,
                        const char *what, struct al_error *err)
{
	return send_call(rp, c, NULL, out, what, err);
}

/* base/v1/devboxes[/<id>][suffix] */
static char *devbox_url(struct runloop_provider *rp, const char *id, const char *suffix)
{
	_cleanup_free_ char *e = id ? al_hosted_url_escape(id, 0) : NULL;
	char *url;

	if ((id && !e) || asprintf(&url, "%s/v1/devboxes%s%s%s", rp->h.c.base_url, id ? "/" : "",
	                           id ? e : "", suffix ? suffix : "") < 0)
		return NULL;
	return url;
}

/*
 * A long poll: POST url {statuses} until the answer's status is one of them.  408 is the
 * server's "keep waiting" and is asked again at once (its hold paces the loop), until
 * wait_ms is up.  *out is the last answer.
 */
static int long_poll(struct runloop_provider *rp, const char *url, const char *const *statuses,
                     long wait_ms, cJSON **out, const char *what, struct al_error *err)
{
	_cleanup_cjson_ cJSON *body = cJSON_CreateObject();
	cJSON *list = cJSON_AddArrayToObject(body, "statuses");
	uint64_t end = al_now_ms() + (uint64_t)wait_ms;
	/* Not "idempotent": the HTTP layer would retry a 408 with backoff, where the
	 * server's hold already paced it. */
	struct call c = {.method = "POST",
	                 .url = url,
	                 .json = body,
	                 .timeout_ms = LONG_POLL_REQUEST_MS,
	                 .max = 256u << 20};

	if (!list)
		return al_error_set(err, ENOMEM, "out of memory");
	for (const char *const *s = statuses; *s; s++)
		cJSON_AddItemToArray(list, cJSON_CreateString(*s));
	for (;;) {
		int r = request_json(rp, &c, out, what, err);
		if (r == 0)
			return 0;
		if (r != -ETIMEDOUT || al_now_ms() > end)
			return r;
		/* 408: the answer of a hold that ended; ask again. */
	}
}

static bool status_is(const cJSON *view, const char *status)
{
	const char *s = al_json_str(view, "status");
	return s && !strcmp(s, status);
}

/* Wait until the devbox leaves its booting states; -EHOSTDOWN unless it ends running. */
static int await_running(struct runloop_provider *rp, const char *id, cJSON **view,
                         struct al_error *err)
{
	static const char *const wanted[] = {"running", "failure", "shutdown", NULL};
	_cleanup_free_ char *url = devbox_url(rp, id, "/wait_for_status");
	int r;

	if (!url)
		return al_error_set(err, ENOMEM, "out of memory");
	if (!status_is(*view, "running")) {
		cJSON_Delete(*view);
		*view = NULL;
		r = long_poll(rp, url, wanted, START_WAIT_MS, view, "wait for Runloop devbox", err);
		if (r == -ETIMEDOUT)
			return al_error_set(err, ETIMEDOUT, "Runloop devbox %s did not start", id);
		if (r < 0)
			return r;
	}
	if (!status_is(*view, "running"))
		return al_error_set(
		    err, EHOSTDOWN, "Runloop devbox %s is %s%s%s", id,
		    al_json_str(*view, "status") ? al_json_str(*view, "status") : "?",
		    al_json_str(*view, "failure_reason") ? ": " : "",
		    al_json_str(*view, "failure_reason") ? al_json_str(*view, "failure_reason")
		                                         : "");
	return 0;
}

/* ---- the session runner: execute, then wait_for_status ---- */

static int run_script(struct al_provider *p, struct al_sandbox *sb, const char *script,
                      long timeout_ms, char **out, int *exit_code, struct al_error *err)
{
	static const char *const completed[] = {"completed", NULL};
	struct runloop_provider *rp = (struct runloop_provider *)p;
	_cleanup_free_ char *url = devbox_url(rp, sb->id, "/execute");
	_cleanup_cjson_ cJSON *body = cJSON_CreateObject();
	_cleanup_cjson_ cJSON *view = NULL;
	const cJSON *code;
	char command_id[33];
	struct call c = {.method = "POST",
	                 .url = url,
	                 .json = body,
	                 .timeout_ms = LONG_POLL_REQUEST_MS,
	                 .max = 256u << 20};
	int r;

	if (!url || !body)
		return al_error_set(err, ENOMEM, "out of memory");
	/* The command id makes a resent execute the same execution. */
	if ((r = al_random_hex(command_id, 32, err)) < 0)
		return r;
	cJSON_AddStringToObject(body, "command", script);
	cJSON_AddStringToObject(body, "command_id", command_id);
	c.idempotent = true;
	r = request_json(rp, &c, &view, "execute", err);
	if (r == -ENOENT)
		return al_error_set(err, EHOSTDOWN, "Runloop devbox %s is gone", sb->id);
	if (r < 0)
		return r;
	if (!status_is(view, "completed")) {
		_cleanup_free_ char *eid =
		    al_json_str(view, "execution_id")
		        ? al_hosted_url_escape(al_json_str(view, "execution_id"), 0)
		        : NULL;
		_cleanup_free_ char *suffix = NULL;
		_cleanup_free_ char *wait_url = NULL;
		if (!eid)
			return al_error_set(err, EIO, "execute: the answer has no execution_id");
		if (asprintf(&suffix, "/executions/%s/wait_for_status", eid) < 0 ||
		    !(wait_url = devbox_url(rp, sb->id, suffix)))
			return al_error_set(err, ENOMEM, "out of memory");
		cJSON_Delete(view);
		view = NULL;
		r = long_poll(rp, wait_url, completed, timeout_ms + 60000, &view,
		              "wait for the execution", err);
		if (r < 0)
			return r;
	}
	code = cJSON_GetObjectItemCaseSensitive(view, "exit_status");
	/* As the Agents SDK reads it: no exit status is a failure. */
	*exit_code = cJSON_IsNumber(code) ? code->valueint : 1;
	*out = strdup(al_json_str(view, "stdout") ? al_json_str(view, "stdout") : "");
	return *out ? 0 : al_error_set(err, ENOMEM, "out of memory");
}

static const char *root_of(struct al_sandbox *sb)
{
	struct runloop_conn *c = sb->conn;
	return c ? c->root : WORKSPACE_ROOT;
}

static const struct al_session_runner runner = {.run = run_script, .root = root_of};

/* ---- lifecycle ---- */

static int handle_from(const cJSON *view, const char *root, struct al_sandbox **out,
                       struct al_error *err)
{
	const char *id = al_json_str(view, "id");
	_cleanup_(al_sandbox_freep) struct al_sandbox *sb = NULL;
	struct runloop_conn *c;

	if (!id)
		return al_error_set(err, EIO, "Runloop's devbox has no id");
	sb = al_sandbox_new(id);
	c = calloc(1, sizeof(*c));
	if (!sb || !c) {
		free(c);
		return al_error_set(err, ENOMEM, "out of memory");
	}
	sb->conn = c;
	sb->conn_free = conn_free;
	c->root = strdup(root);
	if (!c->root)
		return al_error_set(err, ENOMEM, "out of memory");
	cJSON_AddStringToObject(sb->saved, "root", root);
	*out = TAKE_PTR(sb);
	return 0;
}

/* The devbox of that name that is not shut down, by listing them. */
static int find_by_name(struct runloop_provider *rp, const char *name, cJSON **view,
                        struct al_error *err)
{
	_cleanup_free_ char *url = devbox_url(rp, NULL, NULL);
	_cleanup_cjson_ cJSON *list = NULL;
	struct call c = {.method = "GET", .url = url, .idempotent = true, .max = 64u << 20};
	const cJSON *d;
	int r;

	if (!url)
		return al_error_set(err, ENOMEM, "out of memory");
	r = request_json(rp, &c, &list, "list Runloop devboxes", err);
	if (r < 0)
		return r;
	cJSON_ArrayForEach(d, cJSON_GetObjectItemCaseSensitive(list, "devboxes"))
	{
		const char *n = al_json_str(d, "name");
		if (n && !strcmp(n, name) && !status_is(d, "shutdown") &&
		    !status_is(d, "failure")) {
			*view = cJSON_Duplicate(d, 1);
			return *view ? 0 : al_error_set(err, ENOMEM, "out of memory");
		}
	}
	return al_error_set(err, ENOENT, "no Runloop devbox named %s", name);
}

static int runloop_delete(struct al_provider *p, struct al_sandbox *sb, struct al_error *err);

static int runloop_create(struct al_provider *p, const struct al_sandbox_spec *spec,
                          struct al_sandbox **out, struct al_error *err)
{
	struct runloop_provider *rp = (struct runloop_provider *)p;
	_cleanup_free_ char *url = devbox_url(rp, NULL, "/create_and_await_running");
	_cleanup_cjson_ cJSON *body = cJSON_CreateObject();
	_cleanup_cjson_ cJSON *view = NULL;
	_cleanup_(al_sandbox_freep) struct al_sandbox *sb = NULL;
	const char *root = al_hosted_manifest_root(spec->manifest, WORKSPACE_ROOT);
	struct call c = {.method = "POST", .url = url, .json = body, .timeout_ms = START_WAIT_MS};
	int r;

	if (!url || !body)
		return al_error_set(err, ENOMEM, "out of memory");
	if (spec->name) {
		/* Runloop's names need not be unique; the run's must be, so that a harness
		 * killed between this create and its record adopts that devbox (-EEXIST)
		 * instead of leaving it behind. */
		_cleanup_cjson_ cJSON *same = NULL;
		r = find_by_name(rp, spec->name, &same, err);
		if (r == 0)
			return al_error_set(err, EEXIST, "a Runloop devbox named %s exists: %s",
			                    spec->name, al_json_str(same, "id"));
		if (r != -ENOENT)
			return r;
		al_error_clear(err);
		cJSON_AddStringToObject(body, "name", spec->name);
		cJSON_AddStringToObject(cJSON_AddObjectToObject(body, "metadata"), LABEL_NAME,
		                        spec->name);
	}
	if (spec->snapshot_id)
		cJSON_AddStringToObject(body, "snapshot_id", spec->snapshot_id);
	else if (rp->blueprint)
		cJSON_AddStringToObject(body, "blueprint_id", rp->blueprint);
	cJSON_AddItemToObject(body, "environment_variables",
	                      spec->env ? cJSON_Duplicate(spec->env, 1) : cJSON_CreateObject());
	r = request_json(rp, &c, &view, "create Runloop devbox", err);
	if (r == -ENOENT && spec->snapshot_id)
		return al_error_set(err, ENOENT, "Runloop snapshot %s: not found",
		                    spec->snapshot_id);
	if (r < 0)
		return r;
	if (!al_json_str(view, "id"))
		return al_error_set(err, EIO, "create Runloop devbox: the answer has no id");
	r = await_running(rp, al_json_str(view, "id"), &view, err);
	if (r == 0)
		r = handle_from(view, root, &sb, err);
	/* A devbox from a snapshot has its workspace already. */
	if (r == 0 && spec->manifest && !spec->snapshot_id) {
		r = al_hosted_materialise(p, sb, spec->manifest, root, err);
		if (r < 0) {
			struct al_error ignored = AL_ERROR_INIT;
			runloop_delete(p, sb, &ignored);
			return al_error_prefix(err, "materialise the manifest in Runloop devbox %s",
			                       sb->id);
		}
	}
	if (r < 0)
		return r;
	*out = TAKE_PTR(sb);
	return 0;
}

static int runloop_resume(struct al_provider *p, const char *id, const cJSON *saved,
                          const char *name, struct al_sandbox **out, bool *running,
                          struct al_error *err)
{
	struct runloop_provider *rp = (struct runloop_provider *)p;
	const char *root = al_json_str(saved, "root") ? al_json_str(saved, "root") : WORKSPACE_ROOT;
	_cleanup_cjson_ cJSON *view = NULL;
	int r;

	*running = false;
	if (id) {
		_cleanup_free_ char *url = devbox_url(rp, id, NULL);
		struct call c = {.method = "GET", .url = url, .idempotent = true};
		if (!url)
			return al_error_set(err, ENOMEM, "out of memory");
		r = request_json(rp, &c, &view, "get Runloop devbox", err);
		if (r == -ENOENT)
			return al_error_set(err, ENOENT, "Runloop devbox %s: not found", id);
	} else if (name) {
		r = find_by_name(rp, name, &view, err);
	} else {
		return al_error_set(err, ENOENT, "no Runloop devbox to look for");
	}
	if (r < 0)
		return r;
	if (status_is(view, "shutdown") || status_is(view, "failure"))
		return al_error_set(err, ENOENT, "Runloop devbox %s is %s", al_json_str(view, "id"),
		                    al_json_str(view, "status"));
	if (status_is(view, "suspended") || status_is(view, "suspending")) {
		/* Suspended keeps the disk: resume rather than rebuild. */
		_cleanup_free_ char *url = devbox_url(rp, al_json_str(view, "id"), "/resume");
		_cleanup_cjson_ cJSON *ignored = NULL;
		struct call c = {.method = "POST", .url = url};
		if (!url)
			return al_error_set(err, ENOMEM, "out of memory");
		r = request_json(rp, &c, &ignored, "resume Runloop devbox", err);
		if (r < 0)
			return r;
	}
	r = await_running(rp, al_json_str(view, "id"), &view, err);
	if (r < 0)
		return r;
	r = handle_from(view, root, out, err);
	if (r < 0)
		return r;
	*running = true;
	return 0;
}

static int runloop_delete(struct al_provider *p, struct al_sandbox *sb, struct al_error *err)
{
	struct runloop_provider *rp = (struct runloop_provider *)p;
	_cleanup_free_ char *url = devbox_url(rp, sb->id, "/shutdown");
	struct call c = {.method = "POST", .url = url, .idempotent = true};
	int r;

	if (!url)
		return al_error_set(err, ENOMEM, "out of memory");
	r = request(rp, &c, NULL, "shut down Runloop devbox", err);
	return r == -ENOENT ? 0 : r;
}

/* ---- files (processes: al_hosted_exec over the runner) ---- */

static int file_call(struct runloop_provider *rp, struct al_sandbox *sb, const char *route,
                     struct call *c, struct al_buf *out, const char *what, struct al_error *err)
{
	_cleanup_free_ char *url = devbox_url(rp, sb->id, route);
	int r;

	if (!url)
		return al_error_set(err, ENOMEM, "out of memory");
	c->url = url;
	r = request(rp, c, out, what, err);
	c->url = NULL;
	return r;
}

static int runloop_read(struct al_provider *p, struct al_sandbox *sb, const char *path, size_t max,
                        char **data, size_t *len, struct al_error *err)
{
	struct runloop_provider *rp = (struct runloop_provider *)p;
	_cleanup_free_ char *abs = al_hosted_abs(root_of(sb), path);
	_cleanup_cjson_ cJSON *body = cJSON_CreateObject();
	struct call c = {.method = "POST",
	                 .json = body,
	                 .idempotent = true,
	                 .accept = "Accept: application/octet-stream",
	                 .max = max ? max : MAX_FILE};
	struct al_buf out = {0};
	int r;

	if (!abs || !body)
		return al_error_set(err, ENOMEM, "out of memory");
	cJSON_AddStringToObject(body, "path", abs);
	r = file_call(rp, sb, "/download_file", &c, &out, abs, err);
	if (r < 0)
		return r;
	*data = out.data ? out.data : strdup("");
	*len = out.len;
	return *data ? 0 : al_error_set(err, ENOMEM, "out of memory");
}

static int runloop_write(struct al_provider *p, struct al_sandbox *sb, const char *path,
                         const void *data, size_t len, struct al_error *err)
{
	struct runloop_provider *rp = (struct runloop_provider *)p;
	_cleanup_free_ char *abs = al_hosted_abs(root_of(sb), path);
	_cleanup_(al_hosted_mime_freep) curl_mime *mime = curl_mime_init(rp->h.c.http.curl);
	const char *base;
	curl_mimepart *part;
	struct call c = {.method = "POST", .idempotent = true};

	if (!abs || !mime)
		return al_error_set(err, ENOMEM, "out of memory");
	base = strrchr(abs, '/') ? strrchr(abs, '/') + 1 : abs;
	/* The SDK's shape: the path part, then the file part named after its base name. */
	part = curl_mime_addpart(mime);
	if (!part || curl_mime_name(part, "path") != CURLE_OK ||
	    curl_mime_data(part, abs, CURL_ZERO_TERMINATED) != CURLE_OK)
		return al_error_set(err, ENOMEM, "out of memory");
	part = curl_mime_addpart(mime);
	if (!part || curl_mime_name(part, "file") != CURLE_OK ||
	    curl_mime_filename(part, *base ? base : "file") != CURLE_OK ||
	    curl_mime_type(part, "application/octet-stream") != CURLE_OK ||
	    curl_mime_data(part, data ? data : "", len) != CURLE_OK)
		return al_error_set(err, ENOMEM, "out of memory");
	c.mime = mime;
	return file_call(rp, sb, "/upload_file", &c, NULL, abs, err);
}

static int runloop_remove(struct al_provider *p, struct al_sandbox *sb, const char *path,
                          struct al_error *err)
{
	_cleanup_free_ char *abs = al_hosted_abs(root_of(sb), path);

	if (!abs)
		return al_error_set(err, ENOMEM, "out of memory");
	return al_hosted_shell_remove(p, sb, abs, err);
}

static int runloop_list(struct al_provider *p, struct al_sandbox *sb, const char *path,
                        struct al_dir_entry **entries, size_t *n, struct al_error *err)
{
	_cleanup_free_ char *abs = al_hosted_abs(root_of(sb), path);

	if (!abs)
		return al_error_set(err, ENOMEM, "out of memory");
	return al_hosted_shell_list(p, sb, abs, entries, n, err);
}

static int runloop_persist(struct al_provider *p, struct al_sandbox *sb, const char *archive_path,
                           struct al_error *err)
{
	return al_hosted_persist(p, sb, root_of(sb), archive_path, err);
}

static int runloop_hydrate(struct al_provider *p, struct al_sandbox *sb, const char *archive_path,
                           struct al_error *err)
{
	return al_hosted_hydrate(p, sb, root_of(sb), archive_path, err);
}

/* ---- disk snapshots ---- */

static char *snapshot_url(struct runloop_provider *rp, const char *id, const char *suffix)
{
	_cleanup_free_ char *e = id ? al_hosted_url_escape(id, 0) : NULL;
	char *url;

	if ((id && !e) || asprintf(&url, "%s/v1/devboxes/disk_snapshots%s%s%s", rp->h.c.base_url,
	                           id ? "/" : "", id ? e : "", suffix ? suffix : "") < 0)
		return NULL;
	return url;
}

static int runloop_snapshot(struct al_provider *p, struct al_sandbox *sb, bool processes,
                            char **snapshot_id, struct al_error *err)
{
	struct runloop_provider *rp = (struct runloop_provider *)p;
	_cleanup_free_ char *url = devbox_url(rp, sb->id, "/snapshot_disk_async");
	_cleanup_free_ char *status_url = NULL;
	_cleanup_cjson_ cJSON *body = cJSON_CreateObject();
	_cleanup_cjson_ cJSON *view = NULL;
	struct call c = {
	    .method = "POST", .url = url, .json = body, .timeout_ms = SNAPSHOT_WAIT_MS};
	uint64_t end = al_now_ms() + SNAPSHOT_WAIT_MS;
	char name[160];
	int r;

	if (processes)
		return al_error_set(err, ENOTSUP,
		                    "provider runloop keeps disks, not processes, in snapshots");
	if (!url || !body)
		return al_error_set(err, ENOMEM, "out of memory");
	snprintf(name, sizeof(name), "airlock-%s", sb->id);
	cJSON_AddStringToObject(body, "name", name);
	cJSON_AddStringToObject(cJSON_AddObjectToObject(body, "metadata"), "airlock_devbox_id",
	                        sb->id);
	r = request_json(rp, &c, &view, "snapshot Runloop devbox", err);
	if (r < 0)
		return r;
	if (!al_json_str(view, "id"))
		return al_error_set(err, EIO, "snapshot Runloop devbox: the answer has no id");
	*snapshot_id = strdup(al_json_str(view, "id"));
	status_url = snapshot_url(rp, *snapshot_id, "/status");
	if (!*snapshot_id || !status_url) {
		free(*snapshot_id);
		*snapshot_id = NULL;
		return al_error_set(err, ENOMEM, "out of memory");
	}
	/* Until it is complete: the SDK's own polling of the status. */
	for (;;) {
		_cleanup_cjson_ cJSON *st = NULL;
		struct call s = {.method = "GET", .url = status_url, .idempotent = true};
		r = request_json(rp, &s, &st, "Runloop snapshot status", err);
		if (r == 0 && status_is(st, "complete"))
			return 0;
		if (r == 0 && (status_is(st, "error") || status_is(st, "deleted")))
			r = al_error_set(
			    err, EIO, "Runloop snapshot %s: %s%s%s", *snapshot_id,
			    al_json_str(st, "status"), al_json_str(st, "error_message") ? ": " : "",
			    al_json_str(st, "error_message") ? al_json_str(st, "error_message")
			                                     : "");
		else if (r == 0 && al_now_ms() > end)
			r = al_error_set(err, ETIMEDOUT, "Runloop snapshot %s did not complete",
			                 *snapshot_id);
		if (r < 0) {
			free(*snapshot_id);
			*snapshot_id = NULL;
			return r;
		}
		usleep(500 * 1000);
	}
}

static int runloop_list_snapshots(struct al_provider *p, const char *sandbox_id, char ***ids,
                                  struct al_error *err)
{
	struct runloop_provider *rp = (struct runloop_provider *)p;
	_cleanup_free_ char *e = al_hosted_url_escape(sandbox_id, 0);
	_cleanup_free_ char *more = NULL;
	_cleanup_free_ char *url = NULL;
	_cleanup_cjson_ cJSON *list = NULL;
	const cJSON *s;
	char **out;
	size_t n = 0;
	int r;

	if (!e || asprintf(&more, "?devbox_id=%s", e) < 0 || !(url = snapshot_url(rp, NULL, more)))
		return al_error_set(err, ENOMEM, "out of memory");
	{
		struct call c = {.method = "GET", .url = url, .idempotent = true, .max = 64u << 20};
		r = request_json(rp, &c, &list, "list Runloop snapshots", err);
	}
	if (r < 0)
		return r;
	out = calloc(
	    (size_t)cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(list, "snapshots")) + 1,
	    sizeof(*out));
	if (!out)
		return al_error_set(err, ENOMEM, "out of memory");
	cJSON_ArrayForEach(s, cJSON_GetObjectItemCaseSensitive(list, "snapshots"))
	{
		const char *src = al_json_str(s, "source_devbox_id");
		if (!al_json_str(s, "id") || !src || strcmp(src, sandbox_id))
			continue;
		if (!(out[n++] = strdup(al_json_str(s, "id")))) {
			for (size_t i = 0; out[i]; i++)
				free(out[i]);
			free(out);
			return al_error_set(err, ENOMEM, "out of memory");
		}
	}
	*ids = out;
	return 0;
}

static int runloop_delete_snapshot(struct al_provider *p, const char *snapshot_id,
                                   struct al_error *err)
{
	struct runloop_provider *rp = (struct runloop_provider *)p;
	_cleanup_free_ char *url = snapshot_url(rp, snapshot_id, "/delete");
	struct call c = {.method = "POST", .url = url, .idempotent = true};
	int r;

	if (!url)
		return al_error_set(err, ENOMEM, "out of memory");
	r = request(rp, &c, NULL, "delete Runloop snapshot", err);
	return r == -ENOENT ? 0 : r;
}

static const char *const runloop_option_keys[] = {"base_url", "blueprint_id", "request_timeout_ms",
                                                  "ca_bundle", NULL};

const struct al_provider_ops al_provider_runloop = {
    .type = "runloop",
    .caps = AL_CAP_FS_SNAPSHOT | AL_CAP_WORKSPACE_ARCHIVE,
    .option_keys = runloop_option_keys,
    .open = runloop_open,
    .close = runloop_close,
    .create = runloop_create,
    .resume = runloop_resume,
    .exec = al_hosted_exec,
    .write_stdin = al_hosted_write_stdin,
    .kill = al_hosted_kill,
    .read = runloop_read,
    .write = runloop_write,
    .remove = runloop_remove,
    .list = runloop_list,
    .persist_workspace = runloop_persist,
    .hydrate_workspace = runloop_hydrate,
    .snapshot = runloop_snapshot,
    .list_snapshots = runloop_list_snapshots,
    .delete_snapshot = runloop_delete_snapshot,
    .delete = runloop_delete,
};
