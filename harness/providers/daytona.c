/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The daytona provider: Daytona's REST control plane and each sandbox's toolbox, as
 * `@daytonaio/sdk` speaks them (docs/providers.md).  The toolbox runs a command only to
 * its end (process/execute), so exec sessions — yield, stdin, kill — are the shared
 * building block of hosted.c over it; files go through bulk-upload and files/download.
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

#define DEFAULT_API_URL "https://app.daytona.io/api"
#define WORKSPACE_ROOT "/workspace"
#define MAX_FILE (1u << 30)
#define START_WAIT_MS (120 * 1000L)
#define LABEL_NAME "airlock_name"

struct daytona_provider {
	struct al_hosted_provider h;
	char *target;
	char *image;
};

struct daytona_conn {
	char *toolbox; /* toolboxProxyUrl/<id> */
	char *root;
};

static void conn_free(void *c)
{
	struct daytona_conn *conn = c;

	if (!conn)
		return;
	free(conn->toolbox);
	free(conn->root);
	free(conn);
}

static void daytona_close(struct al_provider *p)
{
	struct daytona_provider *dp = (struct daytona_provider *)p;

	if (!dp)
		return;
	free(dp->target);
	free(dp->image);
	al_hosted_provider_free(&dp->h);
}

/* Defined after run_script. */
static const struct al_session_runner runner;

static const struct al_hosted_config daytona_config = {.type = "daytona",
                                                       .ops = &al_provider_daytona,
                                                       .runner = &runner,
                                                       .url_key = "api_url",
                                                       .url_env = "DAYTONA_API_URL",
                                                       .default_url = DEFAULT_API_URL,
                                                       .auth = "Authorization: Bearer "};

static int daytona_open(const cJSON *options, const char *api_key, struct al_provider **out,
                        struct al_error *err)
{
	const char *target = al_hosted_option(options, "target", "DAYTONA_TARGET");
	const char *image = al_hosted_option(options, "image", NULL);
	struct daytona_provider *dp =
	    al_hosted_provider_new(sizeof(*dp), &daytona_config, options, api_key, err);

	if (!dp)
		return -err->code;
	dp->target = target ? strdup(target) : NULL;
	dp->image = image ? strdup(image) : NULL;
	if ((target && !dp->target) || (image && !dp->image)) {
		daytona_close(&dp->h.base);
		return al_error_set(err, ENOMEM, "out of memory");
	}
	*out = &dp->h.base;
	return 0;
}

/* ---- requests ---- */

static int status_code(const struct al_http_response *resp, bool toolbox)
{
	switch (resp->status) {
	case 404:
		/* The toolbox of a sandbox that is gone says so about the sandbox. */
		if (toolbox && resp->body.data &&
		    memmem(resp->body.data, resp->body.len, "andbox", 6))
			return EHOSTDOWN;
		return ENOENT;
	case 502:
	case 503:
		return toolbox ? EHOSTDOWN : EAGAIN;
	default:
		return al_hosted_status_errno(resp->status);
	}
}

struct call {
	const char *method;
	const char *url;
	const cJSON *json;
	void *mime;
	bool idempotent;
	size_t max;
	long timeout_ms;
	bool toolbox;
};

/* One request: *out gets a 2xx body (NUL-terminated), or *json the parsed one (when set). */
static int send_call(struct daytona_provider *dp, const struct call *c, struct al_buf *out,
                     cJSON **json, const char *what, struct al_error *err)
{
	_cleanup_free_ char *text = c->json ? cJSON_PrintUnformatted(c->json) : NULL;
	const char *headers[] = {dp->h.c.auth_header, "X-Daytona-Source: airlock-harness",
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
	return al_hosted_send(&dp->h.c, &rq, status_code, c->toolbox, out, json, err);
}

static int request(struct daytona_provider *dp, const struct call *c, struct al_buf *out,
                   const char *what, struct al_error *err)
{
	return send_call(dp, c, out, NULL, what, err);
}

static int request_json(struct daytona_provider *dp, const struct call *c, cJSON **out,
                        const char *what, struct al_error *err)
{
	return send_call(dp, c, NULL, out, what, err);
}

static char *api_url(struct daytona_provider *dp, const char *id, const char *suffix)
{
	_cleanup_free_ char *e = id ? al_hosted_url_escape(id, 0) : NULL;
	char *url;

	if ((id && !e) || asprintf(&url, "%s/sandbox%s%s%s", dp->h.c.base_url, id ? "/" : "",
	                           id ? e : "", suffix ? suffix : "") < 0)
		return NULL;
	return url;
}

static char *toolbox_url(struct al_sandbox *sb, const char *route, const char *path,
                         const char *more)
{
	struct daytona_conn *c = sb->conn;
	_cleanup_free_ char *e = path ? al_hosted_url_escape(path, 0) : NULL;
	char *url;

	if (!c || (path && !e) ||
	    asprintf(&url, "%s%s%s%s%s", c->toolbox, route, path ? "?path=" : "", path ? e : "",
	             more ? more : "") < 0)
		return NULL;
	return url;
}

/* ---- the session runner: process/execute ---- */

static int run_script(struct al_provider *p, struct al_sandbox *sb, const char *script,
                      long timeout_ms, char **out, int *exit_code, struct al_error *err)
{
	struct daytona_provider *dp = (struct daytona_provider *)p;
	_cleanup_free_ char *url = toolbox_url(sb, "/process/execute", NULL, NULL);
	_cleanup_cjson_ cJSON *body = cJSON_CreateObject();
	_cleanup_cjson_ cJSON *answer = NULL;
	const cJSON *code;
	struct call c = {.method = "POST",
	                 .url = url,
	                 .json = body,
	                 .timeout_ms = timeout_ms + 30000,
	                 .toolbox = true,
	                 .max = 256u << 20};
	int r;

	if (!url || !body)
		return al_error_set(err, url ? ENOMEM : EHOSTDOWN, "sandbox %s has no toolbox",
		                    sb->id);
	cJSON_AddStringToObject(body, "command", script);
	cJSON_AddNumberToObject(body, "timeout", (double)(timeout_ms / 1000 + 1));
	r = request_json(dp, &c, &answer, "process/execute", err);
	if (r < 0)
		return r;
	code = cJSON_GetObjectItemCaseSensitive(answer, "exitCode");
	if (!cJSON_IsNumber(code))
		code = cJSON_GetObjectItemCaseSensitive(answer, "code");
	*exit_code = cJSON_IsNumber(code) ? code->valueint : 0;
	*out = strdup(al_json_str(answer, "result") ? al_json_str(answer, "result") : "");
	return *out ? 0 : al_error_set(err, ENOMEM, "out of memory");
}

static const char *root_of(struct al_sandbox *sb)
{
	struct daytona_conn *c = sb->conn;
	return c ? c->root : WORKSPACE_ROOT;
}

static const struct al_session_runner runner = {.run = run_script, .root = root_of};

/* ---- lifecycle ---- */

static int handle_from(const cJSON *dto, const char *root, struct al_sandbox **out,
                       struct al_error *err)
{
	const char *id = al_json_str(dto, "id");
	const char *tb = al_json_str(dto, "toolboxProxyUrl");
	_cleanup_(al_sandbox_freep) struct al_sandbox *sb = NULL;
	struct daytona_conn *c;

	if (!id || !tb)
		return al_error_set(err, EIO, "Daytona's sandbox has no id or toolboxProxyUrl");
	sb = al_sandbox_new(id);
	c = calloc(1, sizeof(*c));
	if (!sb || !c) {
		free(c);
		return al_error_set(err, ENOMEM, "out of memory");
	}
	sb->conn = c;
	sb->conn_free = conn_free;
	if (asprintf(&c->toolbox, "%s%s%s", tb, tb[strlen(tb) - 1] == '/' ? "" : "/", id) < 0)
		c->toolbox = NULL;
	c->root = strdup(root);
	if (!c->toolbox || !c->root)
		return al_error_set(err, ENOMEM, "out of memory");
	cJSON_AddStringToObject(sb->saved, "root", root);
	*out = TAKE_PTR(sb);
	return 0;
}

/* Poll until the sandbox is started; the answer is its DTO. */
static int wait_started(struct daytona_provider *dp, const char *id, cJSON **dto,
                        struct al_error *err)
{
	_cleanup_free_ char *url = api_url(dp, id, NULL);
	uint64_t end = al_now_ms() + START_WAIT_MS;
	struct call c = {.method = "GET", .url = url, .idempotent = true};

	if (!url)
		return al_error_set(err, ENOMEM, "out of memory");
	for (;;) {
		const char *state;
		int r = request_json(dp, &c, dto, "get Daytona sandbox", err);
		if (r < 0)
			return r;
		state = al_json_str(*dto, "state");
		if (state && !strcmp(state, "started"))
			return 0;
		if (state && (!strcmp(state, "error") || !strcmp(state, "build_failed") ||
		              !strcmp(state, "destroyed")))
			return al_error_set(err, EHOSTDOWN, "Daytona sandbox %s is %s", id, state);
		cJSON_Delete(*dto);
		*dto = NULL;
		if (al_now_ms() > end)
			return al_error_set(err, ETIMEDOUT, "Daytona sandbox %s did not start", id);
		usleep(200 * 1000);
	}
}

static int daytona_delete(struct al_provider *p, struct al_sandbox *sb, struct al_error *err);

static int daytona_create(struct al_provider *p, const struct al_sandbox_spec *spec,
                          struct al_sandbox **out, struct al_error *err)
{
	struct daytona_provider *dp = (struct daytona_provider *)p;
	_cleanup_free_ char *url = api_url(dp, NULL, NULL);
	_cleanup_cjson_ cJSON *body = cJSON_CreateObject();
	_cleanup_cjson_ cJSON *dto = NULL;
	_cleanup_cjson_ cJSON *started = NULL;
	_cleanup_(al_sandbox_freep) struct al_sandbox *sb = NULL;
	const char *root = al_hosted_manifest_root(spec->manifest, WORKSPACE_ROOT);
	struct call c = {.method = "POST", .url = url, .json = body};
	cJSON *labels;
	int r;

	if (!url || !body)
		return al_error_set(err, ENOMEM, "out of memory");
	if (spec->snapshot_id)
		return al_error_set(err, ENOTSUP, "provider daytona keeps no snapshots");
	/* The run's name makes a second create of the same run a 409: it adopts the first. */
	if (spec->name)
		cJSON_AddStringToObject(body, "name", spec->name);
	if (dp->target)
		cJSON_AddStringToObject(body, "target", dp->target);
	if (dp->image) {
		_cleanup_free_ char *df = NULL;
		if (asprintf(&df, "FROM %s\n", dp->image) < 0)
			return al_error_set(err, ENOMEM, "out of memory");
		cJSON_AddStringToObject(cJSON_AddObjectToObject(body, "buildInfo"),
		                        "dockerfileContent", df);
	}
	cJSON_AddItemToObject(body, "env",
	                      spec->env ? cJSON_Duplicate(spec->env, 1) : cJSON_CreateObject());
	labels = cJSON_AddObjectToObject(body, "labels");
	if (spec->name)
		cJSON_AddStringToObject(labels, LABEL_NAME, spec->name);
	r = request_json(dp, &c, &dto, "create Daytona sandbox", err);
	if (r < 0)
		return r;
	if (!al_json_str(dto, "id"))
		return al_error_set(err, EIO, "create Daytona sandbox: the answer has no id");
	r = wait_started(dp, al_json_str(dto, "id"), &started, err);
	if (r == 0)
		r = handle_from(started, root, &sb, err);
	if (r == 0 && spec->manifest) {
		r = al_hosted_materialise(p, sb, spec->manifest, root, err);
		if (r < 0) {
			struct al_error ignored = AL_ERROR_INIT;
			daytona_delete(p, sb, &ignored);
			return al_error_prefix(
			    err, "materialise the manifest in Daytona sandbox %s", sb->id);
		}
	}
	if (r < 0)
		return r;
	*out = TAKE_PTR(sb);
	return 0;
}

static int daytona_resume(struct al_provider *p, const char *id, const cJSON *saved,
                          const char *name, struct al_sandbox **out, bool *running,
                          struct al_error *err)
{
	struct daytona_provider *dp = (struct daytona_provider *)p;
	const char *key = id ? id : name;
	const char *root = al_json_str(saved, "root") ? al_json_str(saved, "root") : WORKSPACE_ROOT;
	_cleanup_free_ char *url = key ? api_url(dp, key, NULL) : NULL;
	_cleanup_cjson_ cJSON *dto = NULL;
	struct call c = {.method = "GET", .url = url, .idempotent = true};
	const char *state;
	int r;

	*running = false;
	if (!key)
		return al_error_set(err, ENOENT, "no Daytona sandbox to look for");
	if (!url)
		return al_error_set(err, ENOMEM, "out of memory");
	r = request_json(dp, &c, &dto, "get Daytona sandbox", err);
	if (r == -ENOENT)
		return al_error_set(err, ENOENT, "Daytona sandbox %s: not found", key);
	if (r < 0)
		return r;
	state = al_json_str(dto, "state");
	if (state && !strcmp(state, "stopped") && al_json_str(dto, "id")) {
		/* Stopped keeps the filesystem: start it again rather than rebuild. */
		_cleanup_free_ char *start = api_url(dp, al_json_str(dto, "id"), "/start");
		_cleanup_cjson_ cJSON *ignored = NULL;
		struct call s = {.method = "POST", .url = start};
		if (!start)
			return al_error_set(err, ENOMEM, "out of memory");
		r = request_json(dp, &s, &ignored, "start Daytona sandbox", err);
		if (r < 0)
			return r;
		cJSON_Delete(dto);
		dto = NULL;
		r = wait_started(dp, al_json_str(ignored, "id") ? al_json_str(ignored, "id") : key,
		                 &dto, err);
		if (r < 0)
			return r;
		state = "started";
	}
	r = handle_from(dto, root, out, err);
	if (r < 0)
		return r;
	*running = state && !strcmp(state, "started");
	return 0;
}

static int daytona_delete(struct al_provider *p, struct al_sandbox *sb, struct al_error *err)
{
	struct daytona_provider *dp = (struct daytona_provider *)p;
	_cleanup_free_ char *url = api_url(dp, sb->id, NULL);
	struct call c = {.method = "DELETE", .url = url, .idempotent = true};
	int r;

	if (!url)
		return al_error_set(err, ENOMEM, "out of memory");
	r = request(dp, &c, NULL, "delete Daytona sandbox", err);
	return r == -ENOENT ? 0 : r;
}

/* ---- files (processes: al_hosted_exec over the runner) ---- */

static int daytona_read(struct al_provider *p, struct al_sandbox *sb, const char *path, size_t max,
                        char **data, size_t *len, struct al_error *err)
{
	struct daytona_provider *dp = (struct daytona_provider *)p;
	_cleanup_free_ char *abs = al_hosted_abs(root_of(sb), path);
	_cleanup_free_ char *url = abs ? toolbox_url(sb, "/files/download", abs, NULL) : NULL;
	struct call c = {.method = "GET",
	                 .url = url,
	                 .idempotent = true,
	                 .toolbox = true,
	                 .max = max ? max : MAX_FILE};
	struct al_buf body = {0};
	int r;

	if (!url)
		return al_error_set(err, ENOMEM, "out of memory");
	r = request(dp, &c, &body, abs, err);
	if (r < 0)
		return r;
	*data = body.data ? body.data : strdup("");
	*len = body.len;
	return *data ? 0 : al_error_set(err, ENOMEM, "out of memory");
}

static int daytona_write(struct al_provider *p, struct al_sandbox *sb, const char *path,
                         const void *data, size_t len, struct al_error *err)
{
	struct daytona_provider *dp = (struct daytona_provider *)p;
	_cleanup_free_ char *abs = al_hosted_abs(root_of(sb), path);
	_cleanup_free_ char *url = toolbox_url(sb, "/files/bulk-upload", NULL, NULL);
	_cleanup_(al_hosted_mime_freep) curl_mime *mime = curl_mime_init(dp->h.c.http.curl);
	curl_mimepart *part;
	struct call c = {.method = "POST", .url = url, .idempotent = true, .toolbox = true};

	if (!abs || !url || !mime)
		return al_error_set(err, ENOMEM, "out of memory");
	/* The SDK's shape: files[i].path names where files[i].file goes. */
	part = curl_mime_addpart(mime);
	if (!part || curl_mime_name(part, "files[0].path") != CURLE_OK ||
	    curl_mime_data(part, abs, CURL_ZERO_TERMINATED) != CURLE_OK)
		return al_error_set(err, ENOMEM, "out of memory");
	part = curl_mime_addpart(mime);
	if (!part || curl_mime_name(part, "files[0].file") != CURLE_OK ||
	    curl_mime_filename(part, abs) != CURLE_OK ||
	    curl_mime_type(part, "application/octet-stream") != CURLE_OK ||
	    curl_mime_data(part, data ? data : "", len) != CURLE_OK)
		return al_error_set(err, ENOMEM, "out of memory");
	c.mime = mime;
	return request(dp, &c, NULL, abs, err);
}

static int daytona_remove(struct al_provider *p, struct al_sandbox *sb, const char *path,
                          struct al_error *err)
{
	struct daytona_provider *dp = (struct daytona_provider *)p;
	_cleanup_free_ char *abs = al_hosted_abs(root_of(sb), path);
	_cleanup_free_ char *url = abs ? toolbox_url(sb, "/files", abs, "&recursive=true") : NULL;
	struct call c = {.method = "DELETE", .url = url, .toolbox = true};

	if (!url)
		return al_error_set(err, ENOMEM, "out of memory");
	return request(dp, &c, NULL, abs, err);
}

static int daytona_list(struct al_provider *p, struct al_sandbox *sb, const char *path,
                        struct al_dir_entry **entries, size_t *n, struct al_error *err)
{
	struct daytona_provider *dp = (struct daytona_provider *)p;
	_cleanup_free_ char *abs = al_hosted_abs(root_of(sb), path);
	_cleanup_free_ char *url = abs ? toolbox_url(sb, "/files", abs, NULL) : NULL;
	_cleanup_cjson_ cJSON *list = NULL;
	struct call c = {.method = "GET", .url = url, .idempotent = true, .toolbox = true};
	struct al_dir_entry *out;
	const cJSON *e;
	size_t i = 0;
	int r;

	if (!url)
		return al_error_set(err, ENOMEM, "out of memory");
	r = request_json(dp, &c, &list, abs, err);
	if (r < 0)
		return r;
	out = calloc((size_t)cJSON_GetArraySize(list) + 1, sizeof(*out));
	if (!out)
		return al_error_set(err, ENOMEM, "out of memory");
	cJSON_ArrayForEach(e, list)
	{
		const cJSON *size = cJSON_GetObjectItemCaseSensitive(e, "size");
		const char *mode = al_json_str(e, "permissions");
		if (!al_json_str(e, "name"))
			continue;
		out[i].name = strdup(al_json_str(e, "name"));
		if (!out[i].name) {
			al_dir_entries_free(out, i);
			return al_error_set(err, ENOMEM, "out of memory");
		}
		out[i].type = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(e, "isDir")) ? 'd'
		              : mode && mode[0] == 'l'                                   ? 'l'
		              : mode && mode[0] == '-'                                   ? 'f'
		                                                                         : 'o';
		out[i].size = cJSON_IsNumber(size) ? (uint64_t)size->valuedouble : 0;
		i++;
	}
	*entries = out;
	*n = i;
	return 0;
}

static int daytona_persist(struct al_provider *p, struct al_sandbox *sb, const char *archive_path,
                           struct al_error *err)
{
	return al_hosted_persist(p, sb, root_of(sb), archive_path, err);
}

static int daytona_hydrate(struct al_provider *p, struct al_sandbox *sb, const char *archive_path,
                           struct al_error *err)
{
	return al_hosted_hydrate(p, sb, root_of(sb), archive_path, err);
}

static int daytona_snapshot(struct al_provider *p, struct al_sandbox *sb, bool processes,
                            char **snapshot_id, struct al_error *err)
{
	(void)p;
	(void)processes;
	(void)snapshot_id;
	/* Daytona's snapshots are images to create from, not copies of a sandbox: the
	 * workspace archive is this provider's snapshot (AL_CAP_WORKSPACE_ARCHIVE). */
	return al_error_set(err, ENOTSUP, "provider daytona cannot snapshot sandbox %s", sb->id);
}

static const char *const daytona_option_keys[] = {
    "api_url", "target", "image", "request_timeout_ms", "ca_bundle", NULL};

const struct al_provider_ops al_provider_daytona = {
    .type = "daytona",
    .caps = AL_CAP_WORKSPACE_ARCHIVE,
    .option_keys = daytona_option_keys,
    .open = daytona_open,
    .close = daytona_close,
    .create = daytona_create,
    .resume = daytona_resume,
    .exec = al_hosted_exec,
    .write_stdin = al_hosted_write_stdin,
    .kill = al_hosted_kill,
    .read = daytona_read,
    .write = daytona_write,
    .remove = daytona_remove,
    .list = daytona_list,
    .persist_workspace = daytona_persist,
    .hydrate_workspace = daytona_hydrate,
    .snapshot = daytona_snapshot,
    .delete_snapshot = NULL,
    .delete = daytona_delete,
};
