/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The blaxel provider: Blaxel's control plane (sandboxes by name) and each sandbox's own
 * URL (metadata.url: process, filesystem), as `@blaxel/core` speaks them
 * (docs/providers.md).  Its process call runs a command to its end, so yield, stdin and
 * kill are hosted.c's exec sessions over it.
 */
#include "hosted.h"
#include "provider.h"

#include "cleanup.h"
#include "json.h"
#include "http.h"
#include "util.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <curl/curl.h>

#define DEFAULT_API_URL "https://api.blaxel.ai/v0"
#define WORKSPACE_ROOT "/workspace"
#define MAX_FILE (1u << 30)

struct blaxel_provider {
	struct al_hosted_provider h;
	char *workspace_header;
	char *image;
};

struct blaxel_conn {
	char *url; /* metadata.url */
	char *root;
};

static void conn_free(void *c)
{
	struct blaxel_conn *conn = c;

	if (!conn)
		return;
	free(conn->url);
	free(conn->root);
	free(conn);
}

static void blaxel_close(struct al_provider *p)
{
	struct blaxel_provider *bp = (struct blaxel_provider *)p;

	if (!bp)
		return;
	free(bp->workspace_header);
	free(bp->image);
	al_hosted_provider_free(&bp->h);
}

/* Defined after run_script. */
static const struct al_session_runner runner;

static const struct al_hosted_config blaxel_config = {.type = "blaxel",
                                                      .ops = &al_provider_blaxel,
                                                      .runner = &runner,
                                                      .url_key = "api_url",
                                                      .url_env = "BL_API_URL",
                                                      .default_url = DEFAULT_API_URL,
                                                      .auth = "x-blaxel-authorization: Bearer "};

static int blaxel_open(const cJSON *options, const char *api_key, struct al_provider **out,
                       struct al_error *err)
{
	const char *ws = al_hosted_option(options, "workspace", "BL_WORKSPACE");
	const char *image = al_hosted_option(options, "image", NULL);
	struct blaxel_provider *bp =
	    al_hosted_provider_new(sizeof(*bp), &blaxel_config, options, api_key, err);
	int r = 0;

	if (!bp)
		return -err->code;
	bp->image = image ? strdup(image) : NULL;
	if (!ws)
		r = al_error_set(err, EINVAL,
		                 "provider blaxel needs a workspace: provider.workspace or "
		                 "BL_WORKSPACE");
	else if ((image && !bp->image) ||
	         asprintf(&bp->workspace_header, "x-blaxel-workspace: %s", ws) < 0) {
		bp->workspace_header = NULL;
		r = al_error_set(err, ENOMEM, "out of memory");
	}
	if (r < 0) {
		blaxel_close(&bp->h.base);
		return r;
	}
	*out = &bp->h.base;
	return 0;
}

/* ---- requests ---- */

static int status_code(const struct al_http_response *resp, bool data_plane)
{
	switch (resp->status) {
	case 404:
		/* The data plane of a sandbox that is gone says so about the sandbox. */
		if (data_plane && resp->body.data &&
		    memmem(resp->body.data, resp->body.len, "sandbox", 7))
			return EHOSTDOWN;
		return ENOENT;
	case 400:
		/* Blaxel answers some lookups of what is not there with 400. */
		return resp->body.data &&
		               (memmem(resp->body.data, resp->body.len, "not found", 9) ||
		                memmem(resp->body.data, resp->body.len, "NOT_FOUND", 9))
		           ? ENOENT
		           : EINVAL;
	case 502:
	case 503:
		return data_plane ? EHOSTDOWN : EAGAIN;
	default:
		return al_hosted_status_errno(resp->status);
	}
}

struct call {
	const char *method;
	const char *url;
	const cJSON *json;
	void *mime;
	const char *accept;
	bool idempotent;
	size_t max;
	long timeout_ms;
	bool data_plane;
};

/* One request: *out gets a 2xx body (NUL-terminated), or *json the parsed one (when set). */
static int send_call(struct blaxel_provider *bp, const struct call *c, struct al_buf *out,
                     cJSON **json, const char *what, struct al_error *err)
{
	_cleanup_free_ char *text = c->json ? cJSON_PrintUnformatted(c->json) : NULL;
	_cleanup_free_ char *accept = NULL;
	const char *headers[5];
	size_t n = 0;
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

	if ((c->json && !text) ||
	    asprintf(&accept, "Accept: %s", c->accept ? c->accept : "application/json") < 0)
		return al_error_set(err, ENOMEM, "out of memory");
	headers[n++] = bp->h.c.auth_header;
	headers[n++] = bp->workspace_header;
	headers[n++] = accept;
	if (!c->mime)
		headers[n++] = "Content-Type: application/json";
	headers[n] = NULL;
	return al_hosted_send(&bp->h.c, &rq, status_code, c->data_plane, out, json, err);
}

static int request(struct blaxel_provider *bp, const struct call *c, struct al_buf *out,
                   const char *what, struct al_error *err)
{
	return send_call(bp, c, out, NULL, what, err);
}

static int request_json(struct blaxel_provider *bp, const struct call *c, cJSON **out,
                        const char *what, struct al_error *err)
{
	return send_call(bp, c, NULL, out, what, err);
}

static char *api_url(struct blaxel_provider *bp, const char *name)
{
	_cleanup_free_ char *e = name ? al_hosted_url_escape(name, 0) : NULL;
	char *url;

	if ((name && !e) || asprintf(&url, "%s/sandboxes%s%s", bp->h.c.base_url, name ? "/" : "",
	                             name ? e : "") < 0)
		return NULL;
	return url;
}

/* {url}/filesystem/<the absolute path, %2F-escaped as the SDK's JSON calls send it> */
static char *fs_url(struct al_sandbox *sb, const char *abs, const char *query)
{
	struct blaxel_conn *c = sb->conn;
	_cleanup_free_ char *e = al_hosted_url_escape(abs, 0);
	char *url;

	if (!c || !e || asprintf(&url, "%s/filesystem/%s%s", c->url, e, query ? query : "") < 0)
		return NULL;
	return url;
}

/* ---- the session runner: POST {url}/process ---- */

static int run_script(struct al_provider *p, struct al_sandbox *sb, const char *script,
                      long timeout_ms, char **out, int *exit_code, struct al_error *err)
{
	struct blaxel_provider *bp = (struct blaxel_provider *)p;
	struct blaxel_conn *conn = sb->conn;
	_cleanup_free_ char *url = NULL;
	_cleanup_cjson_ cJSON *body = cJSON_CreateObject();
	_cleanup_cjson_ cJSON *answer = NULL;
	const cJSON *code;
	struct call c = {.method = "POST",
	                 .json = body,
	                 .timeout_ms = timeout_ms + 30000,
	                 .data_plane = true,
	                 .max = 256u << 20};
	int r;

	if (!conn || !body || asprintf(&url, "%s/process", conn->url) < 0)
		return al_error_set(err, conn ? ENOMEM : EHOSTDOWN, "sandbox %s has no URL",
		                    sb->id);
	c.url = url;
	cJSON_AddStringToObject(body, "command", script);
	cJSON_AddBoolToObject(body, "waitForCompletion", true);
	cJSON_AddNumberToObject(body, "timeout", (double)(timeout_ms / 1000 + 1));
	r = request_json(bp, &c, &answer, "process", err);
	if (r < 0)
		return r;
	code = cJSON_GetObjectItemCaseSensitive(answer, "exitCode");
	*exit_code = cJSON_IsNumber(code) ? code->valueint : 1;
	*out = strdup(al_json_str(answer, "stdout") ? al_json_str(answer, "stdout") : "");
	return *out ? 0 : al_error_set(err, ENOMEM, "out of memory");
}

static const char *root_of(struct al_sandbox *sb)
{
	struct blaxel_conn *c = sb->conn;
	return c ? c->root : WORKSPACE_ROOT;
}

static const struct al_session_runner runner = {.run = run_script, .root = root_of};

/* ---- lifecycle ---- */

static int handle_from(const cJSON *sandbox, const char *root, struct al_sandbox **out,
                       struct al_error *err)
{
	const cJSON *meta = cJSON_GetObjectItemCaseSensitive(sandbox, "metadata");
	const char *name = al_json_str(meta, "name");
	const char *url = al_json_str(meta, "url");
	_cleanup_(al_sandbox_freep) struct al_sandbox *sb = NULL;
	struct blaxel_conn *c;

	if (!name || !url)
		return al_error_set(err, EIO, "Blaxel's sandbox has no metadata.name or url");
	sb = al_sandbox_new(name);
	c = calloc(1, sizeof(*c));
	if (!sb || !c) {
		free(c);
		return al_error_set(err, ENOMEM, "out of memory");
	}
	sb->conn = c;
	sb->conn_free = conn_free;
	c->url = al_hosted_base_url(url);
	c->root = strdup(root);
	if (!c->url || !c->root)
		return al_error_set(err, ENOMEM, "out of memory");
	cJSON_AddStringToObject(sb->saved, "root", root);
	*out = TAKE_PTR(sb);
	return 0;
}

/* Blaxel names: [a-z0-9-], at most 63. */
static void blaxel_name(const char *run, char *out, size_t size)
{
	size_t n = 0;

	n = (size_t)snprintf(out, size, "airlock-");
	for (const char *c = run; *c && n + 1 < size && n < 63; c++)
		out[n++] = isalnum((unsigned char)*c) ? (char)tolower((unsigned char)*c) : '-';
	out[n] = '\0';
}

static int blaxel_delete(struct al_provider *p, struct al_sandbox *sb, struct al_error *err);

static int blaxel_create(struct al_provider *p, const struct al_sandbox_spec *spec,
                         struct al_sandbox **out, struct al_error *err)
{
	struct blaxel_provider *bp = (struct blaxel_provider *)p;
	_cleanup_free_ char *url = api_url(bp, NULL);
	_cleanup_cjson_ cJSON *body = cJSON_CreateObject();
	_cleanup_cjson_ cJSON *answer = NULL;
	_cleanup_(al_sandbox_freep) struct al_sandbox *sb = NULL;
	const char *root = al_json_str(spec->manifest, "root") ? al_json_str(spec->manifest, "root")
	                                                       : WORKSPACE_ROOT;
	struct call c = {.method = "POST", .url = url, .json = body};
	cJSON *meta, *runtime, *envs;
	const cJSON *v;
	char name[72], hex[9];
	int r;

	if (!url || !body)
		return al_error_set(err, ENOMEM, "out of memory");
	if (spec->snapshot_id)
		return al_error_set(err, ENOTSUP, "provider blaxel keeps no snapshots");
	if (spec->name) {
		blaxel_name(spec->name, name, sizeof(name));
	} else {
		if ((r = al_random_hex(hex, 8, err)) < 0)
			return r;
		snprintf(name, sizeof(name), "airlock-%s", hex);
	}
	meta = cJSON_AddObjectToObject(body, "metadata");
	cJSON_AddStringToObject(meta, "name", name);
	runtime = cJSON_AddObjectToObject(cJSON_AddObjectToObject(body, "spec"), "runtime");
	cJSON_AddStringToObject(runtime, "image",
	                        bp->image ? bp->image : "blaxel/base-image:latest");
	cJSON_AddNumberToObject(runtime, "memory", 4096);
	cJSON_AddStringToObject(runtime, "generation", "mk3");
	envs = cJSON_AddArrayToObject(runtime, "envs");
	cJSON_ArrayForEach(v, spec->env)
	{
		cJSON *e = cJSON_CreateObject();
		cJSON_AddStringToObject(e, "name", v->string);
		cJSON_AddStringToObject(e, "value", cJSON_IsString(v) ? v->valuestring : "");
		cJSON_AddItemToArray(envs, e);
	}
	/* The run's name: a second create of the run is a 409, and the run adopts the first. */
	r = request_json(bp, &c, &answer, "create Blaxel sandbox", err);
	if (r < 0)
		return r;
	r = handle_from(answer, root, &sb, err);
	if (r == 0 && spec->manifest &&
	    (r = al_hosted_materialise(p, sb, spec->manifest, root, err)) < 0) {
		struct al_error ignored = AL_ERROR_INIT;
		blaxel_delete(p, sb, &ignored);
		return al_error_prefix(err, "materialise the manifest in Blaxel sandbox %s",
		                       sb->id);
	}
	if (r < 0)
		return r;
	*out = TAKE_PTR(sb);
	return 0;
}

static int blaxel_resume(struct al_provider *p, const char *id, const cJSON *saved,
                         const char *name, struct al_sandbox **out, bool *running,
                         struct al_error *err)
{
	struct blaxel_provider *bp = (struct blaxel_provider *)p;
	const char *root = al_json_str(saved, "root") ? al_json_str(saved, "root") : WORKSPACE_ROOT;
	char bname[72];
	_cleanup_free_ char *url = NULL;
	_cleanup_cjson_ cJSON *answer = NULL;
	struct call c = {.method = "GET", .idempotent = true};
	const char *status;
	int r;

	*running = false;
	if (!id && !name)
		return al_error_set(err, ENOENT, "no Blaxel sandbox to look for");
	if (!id) {
		blaxel_name(name, bname, sizeof(bname));
		id = bname;
	}
	url = api_url(bp, id);
	if (!url)
		return al_error_set(err, ENOMEM, "out of memory");
	c.url = url;
	r = request_json(bp, &c, &answer, "get Blaxel sandbox", err);
	if (r == -ENOENT)
		return al_error_set(err, ENOENT, "Blaxel sandbox %s: not found", id);
	if (r < 0)
		return r;
	r = handle_from(answer, root, out, err);
	if (r < 0)
		return r;
	status = al_json_str(answer, "status");
	*running = !status || !strcmp(status, "DEPLOYED") || !strcmp(status, "STANDBY");
	return 0;
}

static int blaxel_delete(struct al_provider *p, struct al_sandbox *sb, struct al_error *err)
{
	struct blaxel_provider *bp = (struct blaxel_provider *)p;
	_cleanup_free_ char *url = api_url(bp, sb->id);
	struct call c = {.method = "DELETE", .url = url, .idempotent = true};
	int r;

	if (!url)
		return al_error_set(err, ENOMEM, "out of memory");
	r = request(bp, &c, NULL, "delete Blaxel sandbox", err);
	return r == -ENOENT ? 0 : r;
}

/* ---- files (processes: al_hosted_exec over the runner) ---- */

static int blaxel_read(struct al_provider *p, struct al_sandbox *sb, const char *path, size_t max,
                       char **data, size_t *len, struct al_error *err)
{
	_cleanup_free_ char *abs = al_hosted_abs(root_of(sb), path);
	_cleanup_free_ char *url = abs ? fs_url(sb, abs, NULL) : NULL;
	struct call c = {.method = "GET",
	                 .url = url,
	                 .accept = "application/octet-stream",
	                 .idempotent = true,
	                 .data_plane = true,
	                 .max = max ? max : MAX_FILE};
	struct al_buf body = {0};
	int r;

	if (!url)
		return al_error_set(err, ENOMEM, "out of memory");
	r = request((struct blaxel_provider *)p, &c, &body, abs, err);
	if (r < 0)
		return r;
	*data = body.data ? body.data : strdup("");
	*len = body.len;
	return *data ? 0 : al_error_set(err, ENOMEM, "out of memory");
}

static int blaxel_write(struct al_provider *p, struct al_sandbox *sb, const char *path,
                        const void *data, size_t len, struct al_error *err)
{
	struct blaxel_provider *bp = (struct blaxel_provider *)p;
	_cleanup_free_ char *abs = al_hosted_abs(root_of(sb), path);
	_cleanup_free_ char *url = abs ? fs_url(sb, abs, NULL) : NULL;
	_cleanup_(al_hosted_mime_freep) curl_mime *mime = curl_mime_init(bp->h.c.http.curl);
	curl_mimepart *part;
	struct call c = {.method = "PUT", .url = url, .idempotent = true, .data_plane = true};

	if (!url || !mime)
		return al_error_set(err, ENOMEM, "out of memory");
	/* The SDK's writeBinary shape: file, permissions, path. */
	part = curl_mime_addpart(mime);
	if (!part || curl_mime_name(part, "file") != CURLE_OK ||
	    curl_mime_filename(part, "file.bin") != CURLE_OK ||
	    curl_mime_type(part, "application/octet-stream") != CURLE_OK ||
	    curl_mime_data(part, data ? data : "", len) != CURLE_OK)
		return al_error_set(err, ENOMEM, "out of memory");
	part = curl_mime_addpart(mime);
	if (!part || curl_mime_name(part, "permissions") != CURLE_OK ||
	    curl_mime_data(part, "0644", CURL_ZERO_TERMINATED) != CURLE_OK)
		return al_error_set(err, ENOMEM, "out of memory");
	part = curl_mime_addpart(mime);
	if (!part || curl_mime_name(part, "path") != CURLE_OK ||
	    curl_mime_data(part, abs, CURL_ZERO_TERMINATED) != CURLE_OK)
		return al_error_set(err, ENOMEM, "out of memory");
	c.mime = mime;
	return request(bp, &c, NULL, abs, err);
}

static int blaxel_remove(struct al_provider *p, struct al_sandbox *sb, const char *path,
                         struct al_error *err)
{
	_cleanup_free_ char *abs = al_hosted_abs(root_of(sb), path);
	_cleanup_free_ char *url = abs ? fs_url(sb, abs, "?recursive=true") : NULL;
	struct call c = {.method = "DELETE", .url = url, .data_plane = true};

	if (!url)
		return al_error_set(err, ENOMEM, "out of memory");
	return request((struct blaxel_provider *)p, &c, NULL, abs, err);
}

static int blaxel_list(struct al_provider *p, struct al_sandbox *sb, const char *path,
                       struct al_dir_entry **entries, size_t *n, struct al_error *err)
{
	_cleanup_free_ char *abs = al_hosted_abs(root_of(sb), path);
	_cleanup_free_ char *url = abs ? fs_url(sb, abs, NULL) : NULL;
	_cleanup_cjson_ cJSON *dir = NULL;
	struct call c = {.method = "GET", .url = url, .idempotent = true, .data_plane = true};
	const cJSON *files, *subdirs, *e;
	struct al_dir_entry *out;
	size_t i = 0;
	int r;

	if (!url)
		return al_error_set(err, ENOMEM, "out of memory");
	r = request_json((struct blaxel_provider *)p, &c, &dir, abs, err);
	if (r < 0)
		return r;
	files = cJSON_GetObjectItemCaseSensitive(dir, "files");
	subdirs = cJSON_GetObjectItemCaseSensitive(dir, "subdirectories");
	if (!files && !subdirs)
		return al_error_set(err, ENOTDIR, "%s: not a directory", abs);
	out = calloc((size_t)(cJSON_GetArraySize(files) + cJSON_GetArraySize(subdirs)) + 1,
	             sizeof(*out));
	if (!out)
		return al_error_set(err, ENOMEM, "out of memory");
	cJSON_ArrayForEach(e, subdirs)
	{
		if (!al_json_str(e, "name") || !(out[i].name = strdup(al_json_str(e, "name"))))
			continue;
		out[i++].type = 'd';
	}
	cJSON_ArrayForEach(e, files)
	{
		const cJSON *size = cJSON_GetObjectItemCaseSensitive(e, "size");
		if (!al_json_str(e, "name") || !(out[i].name = strdup(al_json_str(e, "name"))))
			continue;
		out[i].type = 'f';
		out[i++].size = cJSON_IsNumber(size) ? (uint64_t)size->valuedouble : 0;
	}
	*entries = out;
	*n = i;
	return 0;
}

static int blaxel_persist(struct al_provider *p, struct al_sandbox *sb, const char *archive_path,
                          struct al_error *err)
{
	return al_hosted_persist(p, sb, root_of(sb), archive_path, err);
}

static int blaxel_hydrate(struct al_provider *p, struct al_sandbox *sb, const char *archive_path,
                          struct al_error *err)
{
	return al_hosted_hydrate(p, sb, root_of(sb), archive_path, err);
}

static int blaxel_snapshot(struct al_provider *p, struct al_sandbox *sb, bool processes,
                           char **snapshot_id, struct al_error *err)
{
	(void)p;
	(void)processes;
	(void)snapshot_id;
	return al_error_set(err, ENOTSUP, "provider blaxel cannot snapshot sandbox %s", sb->id);
}

static const char *const blaxel_option_keys[] = {
    "api_url", "workspace", "image", "request_timeout_ms", "ca_bundle", NULL};

const struct al_provider_ops al_provider_blaxel = {
    .type = "blaxel",
    .caps = AL_CAP_WORKSPACE_ARCHIVE,
    .option_keys = blaxel_option_keys,
    .open = blaxel_open,
    .close = blaxel_close,
    .create = blaxel_create,
    .resume = blaxel_resume,
    .exec = al_hosted_exec,
    .write_stdin = al_hosted_write_stdin,
    .kill = al_hosted_kill,
    .read = blaxel_read,
    .write = blaxel_write,
    .remove = blaxel_remove,
    .list = blaxel_list,
    .persist_workspace = blaxel_persist,
    .hydrate_workspace = blaxel_hydrate,
    .snapshot = blaxel_snapshot,
    .delete_snapshot = NULL,
    .delete = blaxel_delete,
};
