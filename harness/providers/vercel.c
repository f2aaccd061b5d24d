/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The vercel provider: Vercel Sandbox's REST API as `@vercel/sandbox` speaks it
 * (docs/providers.md; the reference's §7).  Every call carries ?teamId=.  A command run
 * with wait answers NDJSON (the command, then the command with its exit code) and its
 * output is read from its NDJSON logs; exec sessions — yield, stdin, kill — are hosted.c's
 * shared building block over that.  Files are written as a gzip tar (libarchive) and read
 * with fs/read; listing and removal go through commands.
 *
 * Vercel's snapshots stop the sandbox they are taken of, which the provider contract's
 * snapshot must not do: the workspace archive is this provider's snapshot.
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

#include <archive.h>
#include <archive_entry.h>

#define DEFAULT_API_URL "https://vercel.com/api"
#define DEFAULT_SANDBOX_TIMEOUT_MS (45 * 60 * 1000L)
/* Vercel's working directory: where a manifest without a root goes. */
#define WORKSPACE_ROOT "/vercel/sandbox"
#define MAX_FILE (1u << 30)
#define START_WAIT_MS (120 * 1000L)

struct vercel_provider {
	struct al_hosted_provider h;
	char *team;
	char *project;
	long sandbox_timeout_ms;
};

struct vercel_conn {
	char *root;
};

static void conn_free(void *c)
{
	struct vercel_conn *conn = c;

	if (!conn)
		return;
	free(conn->root);
	free(conn);
}

static void vercel_close(struct al_provider *p)
{
	struct vercel_provider *vp = (struct vercel_provider *)p;

	if (!vp)
		return;
	free(vp->team);
	free(vp->project);
	al_hosted_provider_free(&vp->h);
}

/* Defined after run_script. */
static const struct al_session_runner runner;

static const struct al_hosted_config vercel_config = {.type = "vercel",
                                                      .ops = &al_provider_vercel,
                                                      .runner = &runner,
                                                      .url_key = "api_url",
                                                      .default_url = DEFAULT_API_URL,
                                                      .auth = "Authorization: Bearer "};

static int vercel_open(const cJSON *options, const char *api_key, struct al_provider **out,
                       struct al_error *err)
{
	const char *team = al_hosted_option(options, "team_id", "VERCEL_TEAM_ID");
	const char *project = al_hosted_option(options, "project_id", "VERCEL_PROJECT_ID");
	struct vercel_provider *vp =
	    al_hosted_provider_new(sizeof(*vp), &vercel_config, options, api_key, err);
	int r;

	if (!vp)
		return -err->code;
	if (!team || !project)
		r = al_error_set(err, EINVAL,
		                 "provider vercel needs a team and a project: set team_id and "
		                 "project_id (or VERCEL_TEAM_ID and VERCEL_PROJECT_ID)");
	else
		r = al_hosted_ms_option(options, "sandbox_timeout_ms", DEFAULT_SANDBOX_TIMEOUT_MS,
		                        &vp->sandbox_timeout_ms, err);
	if (r == 0) {
		vp->team = al_hosted_url_escape(team, 0);
		vp->project = strdup(project);
		if (!vp->team || !vp->project)
			r = al_error_set(err, ENOMEM, "out of memory");
	}
	if (r < 0) {
		vercel_close(&vp->h.base);
		return r;
	}
	*out = &vp->h.base;
	return 0;
}

/* ---- requests ---- */

static int status_code(const struct al_http_response *resp, bool plane)
{
	(void)plane; /* one host for everything */
	/* Vercel's answer for a sandbox that has stopped. */
	return resp->status == 410 ? EHOSTDOWN : al_hosted_status_errno(resp->status);
}

struct call {
	const char *method;
	const char *url;
	const cJSON *json;
	const void *raw; /* a body of its own (the gzip tar), with raw_len */
	size_t raw_len;
	const char *const *extra_headers; /* two at most */
	bool idempotent;
	size_t max;
	long timeout_ms;
};

/* One request: *out gets a 2xx body (NUL-terminated), or *json the parsed one (when set). */
static int send_call(struct vercel_provider *vp, const struct call *c, struct al_buf *out,
                     cJSON **json, const char *what, struct al_error *err)
{
	_cleanup_free_ char *text = c->json ? cJSON_PrintUnformatted(c->json) : NULL;
	const char *headers[5] = {vp->h.c.auth_header};
	size_t n = 1;
	struct al_http_request rq = {.method = c->method,
	                             .url = c->url,
	                             .headers = headers,
	                             .body = c->raw ? c->raw : text,
	                             .body_len = c->raw ? c->raw_len
	                                         : text ? strlen(text)
	                                                : 0,
	                             .idempotent = c->idempotent,
	                             .max_response = c->max,
	                             .timeout_ms = c->timeout_ms,
	                             .what = what};

	if (c->json && !text)
		return al_error_set(err, ENOMEM, "out of memory");
	if (c->extra_headers)
		for (size_t i = 0; i < 2 && c->extra_headers[i]; i++)
			headers[n++] = c->extra_headers[i];
	else
		headers[n++] = "Content-Type: application/json";
	return al_hosted_send(&vp->h.c, &rq, status_code, false, out, json, err);
}

static int request(struct vercel_provider *vp, const struct call *c, struct al_buf *out,
                   const char *what, struct al_error *err)
{
	return send_call(vp, c, out, NULL, what, err);
}

static int request_json(struct vercel_provider *vp, const struct call *c, cJSON **out,
                        const char *what, struct al_error *err)
{
	return send_call(vp, c, NULL, out, what, err);
}

/* api/v1/sandboxes[/<id>][suffix]?teamId=T[&more] */
static char *sandbox_url(struct vercel_provider *vp, const char *id, const char *suffix,
                         const char *more)
{
	_cleanup_free_ char *e = id ? al_hosted_url_escape(id, 0) : NULL;
	char *url;

	if ((id && !e) ||
	    asprintf(&url, "%s/v1/sandboxes%s%s%s?teamId=%s%s", vp->h.c.base_url, id ? "/" : "",
	             id ? e : "", suffix ? suffix : "", vp->team, more ? more : "") < 0)
		return NULL;
	return url;
}

/* The JSON lines of an NDJSON body, each handed to fn until it returns non-zero. */
static int each_line(char *body, int (*fn)(const cJSON *line, void *ctx, struct al_error *err),
                     void *ctx, const char *what, struct al_error *err)
{
	for (char *save = NULL, *line = strtok_r(body, "\n", &save); line;
	     line = strtok_r(NULL, "\n", &save)) {
		_cleanup_cjson_ cJSON *j = cJSON_Parse(line);
		int r;
		if (!j)
			return al_error_set(err, EIO, "%s: a line of the answer is not JSON", what);
		if ((r = fn(j, ctx, err)) != 0)
			return r;
	}
	return 0;
}

/* ---- the session runner: a command with wait, then its logs ---- */

struct finished {
	char id[128];
	bool ended;
	int exit_code;
};

static int take_command(const cJSON *line, void *ctx, struct al_error *err)
{
	struct finished *f = ctx;
	const cJSON *cmd = cJSON_GetObjectItemCaseSensitive(line, "command");
	const cJSON *code = cJSON_GetObjectItemCaseSensitive(cmd, "exitCode");

	(void)err;
	if (al_json_str(cmd, "id"))
		snprintf(f->id, sizeof(f->id), "%s", al_json_str(cmd, "id"));
	if (cJSON_IsNumber(code)) {
		f->ended = true;
		f->exit_code = code->valueint;
	}
	return 0;
}

static int take_stdout(const cJSON *line, void *ctx, struct al_error *err)
{
	struct al_buf *out = ctx;
	const char *stream = al_json_str(line, "stream");
	const cJSON *data = cJSON_GetObjectItemCaseSensitive(line, "data");

	if (stream && !strcmp(stream, "error"))
		return al_error_set(err, EIO, "command logs: %s",
		                    al_json_str(data, "message") ? al_json_str(data, "message")
		                                                 : "an error");
	if (stream && !strcmp(stream, "stdout") && cJSON_IsString(data) &&
	    al_buf_append(out, data->valuestring, strlen(data->valuestring)) < 0)
		return al_error_set(err, ENOMEM, "out of memory");
	return 0;
}

static int run_script(struct al_provider *p, struct al_sandbox *sb, const char *script,
                      long timeout_ms, char **out, int *exit_code, struct al_error *err)
{
	struct vercel_provider *vp = (struct vercel_provider *)p;
	_cleanup_free_ char *url = sandbox_url(vp, sb->id, "/cmd", NULL);
	_cleanup_free_ char *logs_url = NULL;
	_cleanup_free_ char *suffix = NULL;
	_cleanup_free_ char *eid = NULL;
	_cleanup_cjson_ cJSON *body = cJSON_CreateObject();
	_cleanup_buf_ struct al_buf answer = {0};
	_cleanup_buf_ struct al_buf logs = {0};
	struct al_buf text = {0};
	struct finished f = {0};
	cJSON *args;
	struct call c = {.method = "POST",
	                 .url = url,
	                 .json = body,
	                 .timeout_ms = timeout_ms + 60000,
	                 .max = 16u << 20};
	int r;

	if (!url || !body)
		return al_error_set(err, ENOMEM, "out of memory");
	cJSON_AddStringToObject(body, "command", "/bin/sh");
	args = cJSON_AddArrayToObject(body, "args");
	cJSON_AddItemToArray(args, cJSON_CreateString("-c"));
	cJSON_AddItemToArray(args, cJSON_CreateString(script));
	cJSON_AddStringToObject(body, "cwd", "/");
	cJSON_AddObjectToObject(body, "env");
	cJSON_AddBoolToObject(body, "sudo", false);
	cJSON_AddBoolToObject(body, "wait", true);
	r = request(vp, &c, &answer, "run a command", err);
	if (r == -ENOENT)
		return al_error_set(err, EHOSTDOWN, "Vercel sandbox %s is gone", sb->id);
	if (r < 0)
		return r;
	r = each_line(answer.data, take_command, &f, "run a command", err);
	if (r < 0)
		return r;
	if (!f.ended || !f.id[0])
		return al_error_set(err, EIO, "run a command: the answer has no exit code");
	eid = al_hosted_url_escape(f.id, 0);
	if (!eid || asprintf(&suffix, "/cmd/%s/logs", eid) < 0 ||
	    !(logs_url = sandbox_url(vp, sb->id, suffix, NULL)))
		return al_error_set(err, ENOMEM, "out of memory");
	{
		struct call l = {.method = "GET",
		                 .url = logs_url,
		                 .idempotent = true,
		                 .timeout_ms = timeout_ms + 60000,
		                 .max = 256u << 20};
		r = request(vp, &l, &logs, "command logs", err);
	}
	if (r < 0)
		return r;
	r = each_line(logs.data, take_stdout, &text, "command logs", err);
	if (r < 0 || al_buf_append(&text, "", 1) < 0) {
		al_buf_free(&text);
		return r < 0 ? r : al_error_set(err, ENOMEM, "out of memory");
	}
	*exit_code = f.exit_code;
	*out = text.data;
	return 0;
}

static const char *root_of(struct al_sandbox *sb)
{
	struct vercel_conn *c = sb->conn;
	return c ? c->root : WORKSPACE_ROOT;
}

static const struct al_session_runner runner = {.run = run_script, .root = root_of};

/* ---- lifecycle ---- */

static int handle_from(const cJSON *sandbox, const char *root, struct al_sandbox **out,
                       struct al_error *err)
{
	const char *id = al_json_str(sandbox, "id");
	_cleanup_(al_sandbox_freep) struct al_sandbox *sb = NULL;
	struct vercel_conn *c;

	if (!id)
		return al_error_set(err, EIO, "Vercel's sandbox has no id");
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

static bool status_is(const cJSON *sandbox, const char *status)
{
	const char *s = al_json_str(sandbox, "status");
	return s && !strcmp(s, status);
}

/* Until the sandbox is running (pending: wait); *answer is its last {sandbox}. */
static int wait_running(struct vercel_provider *vp, const char *id, cJSON **answer,
                        struct al_error *err)
{
	_cleanup_free_ char *url = sandbox_url(vp, id, NULL, NULL);
	uint64_t end = al_now_ms() + START_WAIT_MS;
	struct call c = {.method = "GET", .url = url, .idempotent = true};

	if (!url)
		return al_error_set(err, ENOMEM, "out of memory");
	for (;;) {
		const cJSON *s = cJSON_GetObjectItemCaseSensitive(*answer, "sandbox");
		int r;
		if (status_is(s, "running"))
			return 0;
		if (!status_is(s, "pending"))
			return al_error_set(err, EHOSTDOWN, "Vercel sandbox %s is %s", id,
			                    al_json_str(s, "status") ? al_json_str(s, "status")
			                                             : "?");
		if (al_now_ms() > end)
			return al_error_set(err, ETIMEDOUT, "Vercel sandbox %s did not start", id);
		usleep(250 * 1000);
		cJSON_Delete(*answer);
		*answer = NULL;
		r = request_json(vp, &c, answer, "get Vercel sandbox", err);
		if (r < 0)
			return r;
	}
}

static int vercel_delete(struct al_provider *p, struct al_sandbox *sb, struct al_error *err);

static int vercel_create(struct al_provider *p, const struct al_sandbox_spec *spec,
                         struct al_sandbox **out, struct al_error *err)
{
	struct vercel_provider *vp = (struct vercel_provider *)p;
	_cleanup_free_ char *url = sandbox_url(vp, NULL, NULL, NULL);
	_cleanup_cjson_ cJSON *body = cJSON_CreateObject();
	_cleanup_cjson_ cJSON *answer = NULL;
	_cleanup_(al_sandbox_freep) struct al_sandbox *sb = NULL;
	const char *root = al_hosted_manifest_root(spec->manifest, WORKSPACE_ROOT);
	struct call c = {.method = "POST", .url = url, .json = body, .timeout_ms = START_WAIT_MS};
	const char *id;
	int r;

	if (!url || !body)
		return al_error_set(err, ENOMEM, "out of memory");
	if (spec->snapshot_id)
		return al_error_set(err, ENOTSUP,
		                    "provider vercel takes no snapshots (they stop the sandbox)");
	cJSON_AddStringToObject(body, "projectId", vp->project);
	cJSON_AddArrayToObject(body, "ports");
	cJSON_AddNumberToObject(body, "timeout", (double)vp->sandbox_timeout_ms);
	cJSON_AddItemToObject(body, "env",
	                      spec->env ? cJSON_Duplicate(spec->env, 1) : cJSON_CreateObject());
	r = request_json(vp, &c, &answer, "create Vercel sandbox", err);
	if (r < 0)
		return r;
	id = al_json_str(cJSON_GetObjectItemCaseSensitive(answer, "sandbox"), "id");
	if (!id)
		return al_error_set(err, EIO, "create Vercel sandbox: the answer has no id");
	r = wait_running(vp, id, &answer, err);
	if (r == 0)
		r = handle_from(cJSON_GetObjectItemCaseSensitive(answer, "sandbox"), root, &sb,
		                err);
	if (r == 0 && spec->manifest) {
		r = al_hosted_materialise(p, sb, spec->manifest, root, err);
		if (r < 0) {
			struct al_error ignored = AL_ERROR_INIT;
			vercel_delete(p, sb, &ignored);
			return al_error_prefix(err, "materialise the manifest in Vercel sandbox %s",
			                       sb->id);
		}
	}
	if (r < 0)
		return r;
	*out = TAKE_PTR(sb);
	return 0;
}

static int vercel_resume(struct al_provider *p, const char *id, const cJSON *saved,
                         const char *name, struct al_sandbox **out, bool *running,
                         struct al_error *err)
{
	struct vercel_provider *vp = (struct vercel_provider *)p;
	const char *root = al_json_str(saved, "root") ? al_json_str(saved, "root") : WORKSPACE_ROOT;
	_cleanup_free_ char *url = id ? sandbox_url(vp, id, NULL, NULL) : NULL;
	_cleanup_cjson_ cJSON *answer = NULL;
	struct call c = {.method = "GET", .url = url, .idempotent = true};
	const cJSON *s;
	int r;

	(void)name;
	*running = false;
	/* Vercel's sandboxes have no names: only the saved id finds one. */
	if (!id)
		return al_error_set(err, ENOENT, "Vercel sandboxes cannot be found by name");
	if (!url)
		return al_error_set(err, ENOMEM, "out of memory");
	r = request_json(vp, &c, &answer, "get Vercel sandbox", err);
	if (r == -ENOENT)
		return al_error_set(err, ENOENT, "Vercel sandbox %s: not found", id);
	if (r < 0)
		return r;
	s = cJSON_GetObjectItemCaseSensitive(answer, "sandbox");
	/* Stopping is Vercel's delete: a stopped sandbox never runs again. */
	if (!status_is(s, "running") && !status_is(s, "pending"))
		return al_error_set(err, ENOENT, "Vercel sandbox %s is %s", id,
		                    al_json_str(s, "status") ? al_json_str(s, "status") : "?");
	if (status_is(s, "pending") && (r = wait_running(vp, id, &answer, err)) < 0)
		return r;
	s = cJSON_GetObjectItemCaseSensitive(answer, "sandbox");
	r = handle_from(s, root, out, err);
	if (r < 0)
		return r;
	*running = true;
	return 0;
}

static int vercel_delete(struct al_provider *p, struct al_sandbox *sb, struct al_error *err)
{
	struct vercel_provider *vp = (struct vercel_provider *)p;
	_cleanup_free_ char *url = sandbox_url(vp, sb->id, "/stop", NULL);
	struct call c = {.method = "POST", .url = url, .idempotent = true};
	int r;

	if (!url)
		return al_error_set(err, ENOMEM, "out of memory");
	r = request(vp, &c, NULL, "stop Vercel sandbox", err);
	return r == -ENOENT ? 0 : r;
}

/* ---- files (processes: al_hosted_exec over the runner) ---- */

static int vercel_read(struct al_provider *p, struct al_sandbox *sb, const char *path, size_t max,
                       char **data, size_t *len, struct al_error *err)
{
	struct vercel_provider *vp = (struct vercel_provider *)p;
	_cleanup_free_ char *abs = al_hosted_abs(root_of(sb), path);
	_cleanup_free_ char *url = sandbox_url(vp, sb->id, "/fs/read", NULL);
	_cleanup_cjson_ cJSON *body = cJSON_CreateObject();
	struct call c = {.method = "POST",
	                 .url = url,
	                 .json = body,
	                 .idempotent = true,
	                 .max = max ? max : MAX_FILE};
	struct al_buf out = {0};
	int r;

	if (!abs || !url || !body)
		return al_error_set(err, ENOMEM, "out of memory");
	cJSON_AddStringToObject(body, "path", abs);
	r = request(vp, &c, &out, abs, err);
	if (r < 0)
		return r;
	*data = out.data ? out.data : strdup("");
	*len = out.len;
	return *data ? 0 : al_error_set(err, ENOMEM, "out of memory");
}

static la_ssize_t to_buf(struct archive *a, void *ctx, const void *data, size_t len)
{
	(void)a;
	return al_buf_append(ctx, data, len) < 0 ? -1 : (la_ssize_t)len;
}

static void archive_write_freep(struct archive **a)
{
	if (*a)
		archive_write_free(*a);
}

static void entry_freep(struct archive_entry **e)
{
	if (*e)
		archive_entry_free(*e);
}

/* A gzip tar of one file, its name relative to "/" (the SDK's x-cwd). */
static int gzip_tar(const char *abs, const void *data, size_t len, struct al_buf *out,
                    struct al_error *err)
{
	_cleanup_(archive_write_freep) struct archive *a = archive_write_new();
	_cleanup_(entry_freep) struct archive_entry *e = archive_entry_new();

	if (!a || !e)
		return al_error_set(err, ENOMEM, "out of memory");
	archive_entry_set_pathname(e, abs + 1);
	archive_entry_set_filetype(e, AE_IFREG);
	archive_entry_set_perm(e, 0644);
	archive_entry_set_size(e, (la_int64_t)len);
	if (archive_write_add_filter_gzip(a) != ARCHIVE_OK ||
	    archive_write_set_format_pax_restricted(a) != ARCHIVE_OK ||
	    archive_write_open(a, out, NULL, to_buf, NULL) != ARCHIVE_OK ||
	    archive_write_header(a, e) != ARCHIVE_OK ||
	    (len && archive_write_data(a, data, len) != (la_ssize_t)len) ||
	    archive_write_close(a) != ARCHIVE_OK)
		return al_error_set(err, EIO, "%s: cannot make its tar: %s", abs,
		                    archive_error_string(a) ? archive_error_string(a) : "?");
	return 0;
}

static int vercel_write(struct al_provider *p, struct al_sandbox *sb, const char *path,
                        const void *data, size_t len, struct al_error *err)
{
	static const char *const headers[] = {"Content-Type: application/gzip", "x-cwd: /", NULL};
	struct vercel_provider *vp = (struct vercel_provider *)p;
	_cleanup_free_ char *abs = al_hosted_abs(root_of(sb), path);
	_cleanup_free_ char *url = sandbox_url(vp, sb->id, "/fs/write", NULL);
	_cleanup_buf_ struct al_buf tar = {0};
	struct call c = {
	    .method = "POST", .url = url, .extra_headers = headers, .idempotent = true};
	int r;

	if (!abs || !url)
		return al_error_set(err, ENOMEM, "out of memory");
	if (abs[0] != '/' || !abs[1])
		return al_error_set(err, EINVAL, "%s: not a file path", abs);
	r = gzip_tar(abs, data, len, &tar, err);
	if (r < 0)
		return r;
	c.raw = tar.data;
	c.raw_len = tar.len;
	return request(vp, &c, NULL, abs, err);
}

static int vercel_remove(struct al_provider *p, struct al_sandbox *sb, const char *path,
                         struct al_error *err)
{
	_cleanup_free_ char *abs = al_hosted_abs(root_of(sb), path);

	if (!abs)
		return al_error_set(err, ENOMEM, "out of memory");
	return al_hosted_shell_remove(p, sb, abs, err);
}

static int vercel_list(struct al_provider *p, struct al_sandbox *sb, const char *path,
                       struct al_dir_entry **entries, size_t *n, struct al_error *err)
{
	_cleanup_free_ char *abs = al_hosted_abs(root_of(sb), path);

	if (!abs)
		return al_error_set(err, ENOMEM, "out of memory");
	return al_hosted_shell_list(p, sb, abs, entries, n, err);
}

static int vercel_persist(struct al_provider *p, struct al_sandbox *sb, const char *archive_path,
                          struct al_error *err)
{
	return al_hosted_persist(p, sb, root_of(sb), archive_path, err);
}

static int vercel_hydrate(struct al_provider *p, struct al_sandbox *sb, const char *archive_path,
                          struct al_error *err)
{
	return al_hosted_hydrate(p, sb, root_of(sb), archive_path, err);
}

static int vercel_snapshot(struct al_provider *p, struct al_sandbox *sb, bool processes,
                           char **snapshot_id, struct al_error *err)
{
	(void)p;
	(void)processes;
	(void)snapshot_id;
	return al_error_set(err, ENOTSUP,
	                    "provider vercel cannot snapshot sandbox %s: Vercel's snapshots stop "
	                    "the sandbox (the workspace archive is this provider's snapshot)",
	                    sb->id);
}

static const char *const vercel_option_keys[] = {
    "api_url",   "team_id", "project_id", "request_timeout_ms", "sandbox_timeout_ms",
    "ca_bundle", NULL};

const struct al_provider_ops al_provider_vercel = {
    .type = "vercel",
    .caps = AL_CAP_WORKSPACE_ARCHIVE,
    .option_keys = vercel_option_keys,
    .open = vercel_open,
    .close = vercel_close,
    .create = vercel_create,
    .resume = vercel_resume,
    .exec = al_hosted_exec,
    .write_stdin = al_hosted_write_stdin,
    .kill = al_hosted_kill,
    .read = vercel_read,
    .write = vercel_write,
    .remove = vercel_remove,
    .list = vercel_list,
    .persist_workspace = vercel_persist,
    .hydrate_workspace = vercel_hydrate,
    .snapshot = vercel_snapshot,
    .delete_snapshot = NULL,
    .delete = vercel_delete,
};
