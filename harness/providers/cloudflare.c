/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The cloudflare provider: a Cloudflare Sandbox bridge Worker (`@cloudflare/sandbox`'s
 * bridge(), the contract `@openai/agents-extensions`' CloudflareSandboxClient speaks; the
 * reference's §8) at `worker_url`: create, exec as a server-sent-event stream, files
 * inside /workspace, persist/hydrate as tar, delete.  Its exec runs a command to its
 * end, so yield, stdin and kill are hosted.c's exec sessions over it.
 */
#include "hosted.h"
#include "provider.h"

#include "cleanup.h"
#include "json.h"
#include "http.h"
#include "util.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <curl/curl.h>

#define WORKSPACE_ROOT "/workspace"
#define MAX_FILE (32u << 20) /* the bridge's cap */

struct cf_provider {
	struct al_hosted_provider h;
};

static void cf_close(struct al_provider *p)
{
	struct cf_provider *cp = (struct cf_provider *)p;

	if (!cp)
		return;
	al_hosted_provider_free(&cp->h);
}

/* Defined after run_script. */
static const struct al_session_runner runner;

static const struct al_hosted_config cf_config = {.type = "cloudflare",
                                                  .ops = &al_provider_cloudflare,
                                                  .runner = &runner,
                                                  .url_key = "worker_url",
                                                  .auth = "Authorization: Bearer ",
                                                  .key_optional = true};

static int cf_open(const cJSON *options, const char *api_key, struct al_provider **out,
                   struct al_error *err)
{
	const cJSON *url = cJSON_GetObjectItemCaseSensitive(options, "worker_url");
	struct cf_provider *cp;

	/* Paths are appended to it. */
	if (!cJSON_IsString(url) ||
	    (strncmp(url->valuestring, "http://", 7) && strncmp(url->valuestring, "https://", 8)) ||
	    strpbrk(url->valuestring, "?#"))
		return al_error_set(err, EINVAL,
		                    "provider cloudflare needs worker_url: the bridge Worker's "
		                    "http(s) URL, without query or fragment");
	cp = al_hosted_provider_new(sizeof(*cp), &cf_config, options, api_key, err);
	if (!cp)
		return -err->code;
	*out = &cp->h.base;
	return 0;
}

/* ---- requests ---- */

/* The bridge's own statuses, not the REST APIs' of al_hosted_status_errno (its 409 is no
 * name conflict). */
static int bridge_code(const struct al_http_response *resp, bool plane)
{
	const struct al_buf *body = &resp->body;

	(void)plane; /* the Worker serves both */
	switch (resp->status) {
	case 401:
	case 403:
		return EPERM;
	case 404:
		/* A route of an unknown sandbox, or a file that is not there. */
		return body->data && memmem(body->data, body->len, "workspace_read_not_found", 24)
		           ? ENOENT
		           : EHOSTDOWN;
	case 400:
		return EINVAL;
	case 413:
		return EFBIG;
	case 502:
	case 503:
		return EHOSTDOWN;
	default:
		return EIO;
	}
}

struct call {
	const char *method;
	const char *path; /* after worker_url */
	const void *body;
	size_t body_len;
	const char *content_type;
	bool idempotent;
	size_t max;
	long timeout_ms;
};

static int request(struct cf_provider *cp, const struct call *c, struct al_buf *out,
                   const char *what, struct al_error *err)
{
	_cleanup_free_ char *url = NULL;
	_cleanup_free_ char *ct = NULL;
	const char *headers[3] = {0};
	size_t n = 0;
	struct al_http_request rq = {.method = c->method,
	                             .headers = headers,
	                             .body = c->body,
	                             .body_len = c->body_len,
	                             .idempotent = c->idempotent,
	                             .max_response = c->max,
	                             .timeout_ms = c->timeout_ms,
	                             .what = what};

	if (asprintf(&url, "%s%s", cp->h.c.base_url, c->path) < 0 ||
	    asprintf(&ct, "Content-Type: %s",
	             c->content_type ? c->content_type : "application/json") < 0)
		return al_error_set(err, ENOMEM, "out of memory");
	if (cp->h.c.auth_header)
		headers[n++] = cp->h.c.auth_header;
	headers[n++] = ct;
	rq.url = url;
	return al_hosted_send(&cp->h.c, &rq, bridge_code, false, out, NULL, err);
}

static char *sandbox_path(struct al_sandbox *sb, const char *suffix)
{
	char *p;
	_cleanup_free_ char *e = NULL;
	char *raw = curl_easy_escape(NULL, sb->id, 0);

	e = raw ? strdup(raw) : NULL;
	curl_free(raw);
	if (!e || asprintf(&p, "/v1/sandbox/%s%s", e, suffix) < 0)
		return NULL;
	return p;
}

/* /file/<path without its leading slash, each segment URI-encoded>, as the client does. */
static char *file_route(struct al_sandbox *sb, const char *abs)
{
	struct al_buf b = {0};
	_cleanup_free_ char *copy = strdup(abs);
	_cleanup_free_ char *base = sandbox_path(sb, "/file");
	char *out = NULL;

	if (!copy || !base)
		return NULL;
	al_buf_append(&b, base, strlen(base));
	for (char *save = NULL, *seg = strtok_r(copy, "/", &save); seg;
	     seg = strtok_r(NULL, "/", &save)) {
		char *e = curl_easy_escape(NULL, seg, 0);
		if (!e || al_buf_append(&b, "/", 1) < 0 || al_buf_append(&b, e, strlen(e)) < 0) {
			curl_free(e);
			al_buf_free(&b);
			return NULL;
		}
		curl_free(e);
	}
	if (al_buf_append(&b, "", 1) == 0)
		out = b.data;
	else
		al_buf_free(&b);
	return out;
}

/* ---- exec: the bridge's SSE ---- */

struct sse_result {
	struct al_buf out, err;
	int exit_code;
	bool exited;
	char error[256];
};

static void sse_event(struct sse_result *res, const char *event, const char *data)
{
	if (!strcmp(event, "stdout") || !strcmp(event, "stderr")) {
		_cleanup_free_ char *raw = NULL;
		struct al_error e = AL_ERROR_INIT;
		size_t n = 0;
		if (al_base64_decode(data, &raw, &n, &e) == 0)
			al_buf_append(event[3] == 'o' ? &res->out : &res->err, raw, n);
	} else if (!strcmp(event, "exit")) {
		_cleanup_cjson_ cJSON *j = cJSON_Parse(data);
		const cJSON *code = cJSON_GetObjectItemCaseSensitive(j, "exit_code");
		res->exited = true;
		res->exit_code = cJSON_IsNumber(code) ? code->valueint : 1;
	} else if (!strcmp(event, "error")) {
		snprintf(res->error, sizeof(res->error), "%s", data);
	}
}

/* Events are blank-line separated; "data:" lines of one event join with newlines. */
static void sse_parse(char *text, struct sse_result *res)
{
	struct al_buf data = {0};
	char event[32] = "message";

	for (char *save = NULL, *line = strtok_r(text, "\n", &save);;
	     line = strtok_r(NULL, "\n", &save)) {
		size_t len = line ? strlen(line) : 0;
		if (line && len && line[len - 1] == '\r')
			line[--len] = '\0';
		/* strtok_r skips empty lines: an event ends where the next "event:" starts. */
		if (!line || !strncmp(line, "event:", 6)) {
			if (data.len && al_buf_append(&data, "", 1) == 0)
				sse_event(res, event, data.data);
			data.len = 0;
			if (!line)
				break;
			snprintf(event, sizeof(event), "%s", line + 6 + (line[6] == ' '));
		} else if (!strncmp(line, "data:", 5)) {
			if (data.len)
				al_buf_append(&data, "\n", 1);
			al_buf_append(&data, line + 5 + (line[5] == ' '),
			              len - 5 - (line[5] == ' '));
		}
	}
	al_buf_free(&data);
}

static int run_argv(struct cf_provider *cp, struct al_sandbox *sb, const char *const *argv,
                    long timeout_ms, struct sse_result *res, struct al_error *err)
{
	_cleanup_cjson_ cJSON *body = cJSON_CreateObject();
	_cleanup_free_ char *text = NULL;
	_cleanup_free_ char *path = sandbox_path(sb, "/exec");
	_cleanup_buf_ struct al_buf answer = {0};
	cJSON *a = cJSON_AddArrayToObject(body, "argv");
	struct call c = {
	    .method = "POST", .path = path, .max = 256u << 20, .timeout_ms = timeout_ms + 30000};
	int r;

	for (const char *const *v = argv; *v; v++)
		cJSON_AddItemToArray(a, cJSON_CreateString(*v));
	cJSON_AddNumberToObject(body, "timeout_ms", (double)timeout_ms);
	text = cJSON_PrintUnformatted(body);
	if (!text || !path)
		return al_error_set(err, ENOMEM, "out of memory");
	c.body = text;
	c.body_len = strlen(text);
	r = request(cp, &c, &answer, "exec", err);
	if (r < 0)
		return r;
	memset(res, 0, sizeof(*res));
	sse_parse(answer.data ? answer.data : (char[]){0}, res);
	if (res->error[0])
		return al_error_set(err, EIO, "exec: the bridge reports %s", res->error);
	if (!res->exited)
		res->exit_code = 1; /* the client's rule: no exit event, exit 1 */
	return 0;
}

/* The task's env, as the client applies it: exported by the script itself (the bridge
 * takes no environment). */
static char *with_env(struct al_sandbox *sb, const char *script)
{
	const cJSON *env = cJSON_GetObjectItemCaseSensitive(sb->saved, "env");
	const cJSON *v;
	struct al_buf b = {0};

	cJSON_ArrayForEach(v, env)
	{
		if (!cJSON_IsString(v))
			continue;
		al_buf_append(&b, "export ", 7);
		al_buf_append(&b, v->string, strlen(v->string));
		al_buf_append(&b, "='", 2);
		for (const char *c = v->valuestring; *c; c++)
			al_buf_append(&b, *c == '\'' ? "'\\''" : c, *c == '\'' ? 4 : 1);
		al_buf_append(&b, "'\n", 2);
	}
	if (al_buf_append(&b, script, strlen(script) + 1) < 0) {
		al_buf_free(&b);
		return NULL;
	}
	return b.data;
}

static int run_script(struct al_provider *p, struct al_sandbox *sb, const char *script,
                      long timeout_ms, char **out, int *exit_code, struct al_error *err)
{
	_cleanup_free_ char *full = with_env(sb, script);
	const char *argv[] = {"/bin/sh", "-c", full, NULL};
	struct sse_result res;
	int r;

	if (!full)
		return al_error_set(err, ENOMEM, "out of memory");
	r = run_argv((struct cf_provider *)p, sb, argv, timeout_ms, &res, err);

	if (r < 0)
		return r;
	al_buf_free(&res.err);
	if (al_buf_append(&res.out, "", 1) < 0) {
		al_buf_free(&res.out);
		return al_error_set(err, ENOMEM, "out of memory");
	}
	*out = res.out.data;
	*exit_code = res.exit_code;
	return 0;
}

static const char *root_of(struct al_sandbox *sb)
{
	(void)sb; /* the bridge's sandboxes all have it */
	return WORKSPACE_ROOT;
}

static const struct al_session_runner runner = {.run = run_script, .root = root_of};

/* A script whose exit status says it all: 3 means "no such path". */
static int path_script(struct al_provider *p, struct al_sandbox *sb, const char *fmt,
                       const char *abs, char **out, struct al_error *err)
{
	_cleanup_free_ char *q = NULL;
	_cleanup_free_ char *script = NULL;
	struct al_buf b = {0};
	int code = 0, r;

	al_buf_append(&b, "'", 1);
	for (const char *c = abs; *c; c++)
		al_buf_append(&b, *c == '\'' ? "'\\''" : c, *c == '\'' ? 4 : 1);
	if (al_buf_append(&b, "'", 2) < 0) {
		al_buf_free(&b);
		return al_error_set(err, ENOMEM, "out of memory");
	}
	q = b.data;
	if (asprintf(&script, fmt, q, q, q, q) < 0)
		return al_error_set(err, ENOMEM, "out of memory");
	r = run_script(p, sb, script, 120000, out, &code, err);
	if (r < 0)
		return r;
	if (code == 3)
		return al_error_set(err, ENOENT, "%s: no such file or directory", abs);
	if (code != 0)
		return al_error_set(err, EIO, "%s: exit %d", abs, code);
	return 0;
}

/* ---- lifecycle ---- */

static int cf_delete(struct al_provider *p, struct al_sandbox *sb, struct al_error *err)
{
	_cleanup_free_ char *path = sandbox_path(sb, "");
	struct call c = {.method = "DELETE", .path = path, .idempotent = true};
	int r;

	if (!path)
		return al_error_set(err, ENOMEM, "out of memory");
	r = request((struct cf_provider *)p, &c, NULL, "delete Cloudflare sandbox", err);
	return r == -EHOSTDOWN || r == -ENOENT ? 0 : r;
}

/* Frees a printed request body after zeroing it (it holds a bucket's keys). */
static void free_zeroedp(char **p)
{
	if (*p)
		explicit_bzero(*p, strlen(*p));
	free(*p);
}

static void wipe_cjsonp(cJSON **j)
{
	cJSON *o = cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(*j, "options"),
	                                            "credentials");
	const cJSON *v;

	cJSON_ArrayForEach(v, o)
	{
		if (cJSON_IsString(v))
			explicit_bzero(v->valuestring, strlen(v->valuestring));
	}
	cJSON_Delete(*j);
}

/*
 * One bucket mount entry through the bridge's own mount, POST /v1/sandbox/{id}/mount
 * {bucket, mountPath, options: {endpoint, provider, prefix, readOnly, credentials,
 * credentialProxy: true}}: with credentialProxy the keys stay in the Worker's Durable
 * Object, which signs s3fs's requests, and never enter the container (without it the
 * SDK writes an s3fs password file inside); airlock-gateway mounts on the host.
 */
static int cf_mount(struct cf_provider *cp, struct al_sandbox *sb, const cJSON *e, const char *key,
                    const char *kind, const cJSON *fields, const cJSON *creds, struct al_error *err)
{
	_cleanup_(wipe_cjsonp) cJSON *body = cJSON_CreateObject();
	_cleanup_(free_zeroedp) char *text = NULL;
	_cleanup_free_ char *path = NULL, *mount_path = NULL, *endpoint = NULL, *prefix = NULL;
	const char *bucket = al_json_str(fields, "bucket");
	const char *mp = al_json_str(e, "mountPath");
	const char *ep = al_json_str(fields, "endpointUrl");
	const char *pfx = al_json_str(fields, "prefix");
	const char *region = al_json_str(fields, "region");
	cJSON *options, *c;
	const cJSON *f;
	struct call call = {.method = "POST"};

	if (!body || !(path = sandbox_path(sb, "/mount")))
		return al_error_set(err, ENOMEM, "out of memory");
	if (!bucket || !*bucket)
		return al_error_set(err, EINVAL, "manifest entry %s: a bucket name is needed", key);
	if (mp && mp[0] == '/')
		mount_path = strdup(mp);
	else if (asprintf(&mount_path, "%s/%s", WORKSPACE_ROOT, mp ? mp : key) < 0)
		mount_path = NULL;
	if (!ep)
		ep = al_json_str(fields, "endpoint");
	/* The endpoints the Agents SDK's client picks when the entry names none. */
	if (ep) {
		endpoint = strdup(ep);
	} else if (!strcmp(kind, "s3") && region) {
		if (asprintf(&endpoint, "https://s3.%s.amazonaws.com", region) < 0)
			endpoint = NULL;
	} else if (!strcmp(kind, "s3")) {
		endpoint = strdup("https://s3.amazonaws.com");
	} else if (!strcmp(kind, "gcs")) {
		endpoint = strdup("https://storage.googleapis.com");
	} else if (al_json_str(fields, "customDomain")) {
		endpoint = strdup(al_json_str(fields, "customDomain"));
	} else if (!al_json_str(fields, "accountId")) {
		return al_error_set(err, EINVAL, "manifest entry %s: r2 mounts need accountId",
		                    key);
	} else if (asprintf(&endpoint, "https://%s.r2.cloudflarestorage.com",
	                    al_json_str(fields, "accountId")) < 0) {
		endpoint = NULL;
	}
	/* The bridge's prefix is a path in the bucket that starts with '/'. */
	while (pfx && *pfx == '/')
		pfx++;
	if (pfx && *pfx && asprintf(&prefix, "/%s", pfx) < 0)
		prefix = NULL;
	if (!mount_path || !endpoint || (pfx && *pfx && !prefix))
		return al_error_set(err, ENOMEM, "out of memory");
	if (strstr(mount_path, "/../") ||
	    (strlen(mount_path) >= 3 && !strcmp(mount_path + strlen(mount_path) - 3, "/..")))
		return al_error_set(err, EINVAL, "manifest entry %s: mountPath has ..", key);
	options = cJSON_AddObjectToObject(body, "options");
	if (!options || !cJSON_AddStringToObject(body, "bucket", bucket) ||
	    !cJSON_AddStringToObject(body, "mountPath", mount_path) ||
	    !cJSON_AddStringToObject(options, "endpoint", endpoint) ||
	    !cJSON_AddStringToObject(options, "provider", kind) ||
	    !cJSON_AddBoolToObject(options, "readOnly",
	                           cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(e, "readOnly"))) ||
	    !cJSON_AddBoolToObject(options, "credentialProxy", true) ||
	    (prefix && !cJSON_AddStringToObject(options, "prefix", prefix)))
		return al_error_set(err, ENOMEM, "out of memory");
	if (creds) {
		const char *id_field = !strcmp(kind, "gcs") ? "accessId" : "accessKeyId";
		if (!cJSON_IsObject(creds))
			return al_error_set(err, EINVAL, "mount credentials of %s: not an object",
			                    key);
		cJSON_ArrayForEach(f, creds)
		{
			if (strcmp(f->string, id_field) && strcmp(f->string, "secretAccessKey"))
				return al_error_set(
				    err, ENOTSUP,
				    "manifest entry %s: credential %s is not taken by the "
				    "Cloudflare bridge's mount (an access key pair only)",
				    key, f->string);
		}
		if (!al_json_str(creds, id_field) || !al_json_str(creds, "secretAccessKey"))
			return al_error_set(
			    err, EINVAL,
			    "mount credentials of %s: %s and secretAccessKey are needed", key,
			    id_field);
		c = cJSON_AddObjectToObject(options, "credentials");
		if (!c ||
		    !cJSON_AddStringToObject(c, "accessKeyId", al_json_str(creds, id_field)) ||
		    !cJSON_AddStringToObject(c, "secretAccessKey",
		                             al_json_str(creds, "secretAccessKey")))
			return al_error_set(err, ENOMEM, "out of memory");
	}
	text = cJSON_PrintUnformatted(body);
	if (!text)
		return al_error_set(err, ENOMEM, "out of memory");
	call.path = path;
	call.body = text;
	call.body_len = strlen(text);
	return request(cp, &call, NULL, "mount a bucket in the Cloudflare sandbox", err);
}

/* The manifest's bucket mounts (files and dirs are made first), keyed by full path. */
struct cf_mounting {
	struct cf_provider *cp;
	struct al_sandbox *sb;
	const cJSON *credentials;
};

static int cf_mount_one(void *ctx, const cJSON *e, const char *key, const char *kind,
                        const cJSON *fields, struct al_error *err)
{
	struct cf_mounting *m = ctx;

	return cf_mount(m->cp, m->sb, e, key, kind, fields,
	                cJSON_GetObjectItemCaseSensitive(m->credentials, key), err);
}

static int cf_create(struct al_provider *p, const struct al_sandbox_spec *spec,
                     struct al_sandbox **out, struct al_error *err)
{
	struct cf_provider *cp = (struct cf_provider *)p;
	_cleanup_buf_ struct al_buf answer = {0};
	_cleanup_cjson_ cJSON *j = NULL;
	_cleanup_(al_sandbox_freep) struct al_sandbox *sb = NULL;
	const cJSON *root = cJSON_GetObjectItemCaseSensitive(spec->manifest, "root");
	const cJSON *id;
	struct call c = {.method = "POST", .path = "/v1/sandbox", .body = "{}", .body_len = 2};
	int r;

	if (spec->snapshot_id)
		return al_error_set(err, ENOTSUP, "provider cloudflare keeps no snapshots");
	if (cJSON_IsString(root) && strcmp(root->valuestring, WORKSPACE_ROOT))
		return al_error_set(
		    err, EINVAL,
		    "provider cloudflare: the manifest root must be /workspace (the "
		    "bridge serves no other), not %s",
		    root->valuestring);
	r = request(cp, &c, &answer, "create Cloudflare sandbox", err);
	if (r < 0)
		return r;
	j = cJSON_ParseWithLength(answer.data ? answer.data : "", answer.len);
	id = cJSON_GetObjectItemCaseSensitive(j, "id");
	if (!cJSON_IsString(id) || !*id->valuestring ||
	    strspn(id->valuestring,
	           "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-") !=
	        strlen(id->valuestring))
		return al_error_set(err, EIO,
		                    "create Cloudflare sandbox: the answer has no usable id");
	sb = al_sandbox_new(id->valuestring);
	if (!sb)
		return al_error_set(err, ENOMEM, "out of memory");
	if (spec->env)
		cJSON_AddItemToObject(sb->saved, "env", cJSON_Duplicate(spec->env, 1));
	if (spec->manifest &&
	    ((r = al_hosted_materialise(p, sb, spec->manifest, WORKSPACE_ROOT, err)) < 0 ||
	     (r = al_hosted_for_each_native_mount(
	          p, cJSON_GetObjectItemCaseSensitive(spec->manifest, "entries"), cf_mount_one,
	          &(struct cf_mounting){cp, sb, spec->mount_credentials}, err)) < 0)) {
		struct al_error ignored = AL_ERROR_INIT;
		cf_delete(p, sb, &ignored);
		return al_error_prefix(err, "materialise the manifest in Cloudflare sandbox %s",
		                       sb->id);
	}
	*out = TAKE_PTR(sb);
	return 0;
}

static int cf_resume(struct al_provider *p, const char *id, const cJSON *saved, const char *name,
                     struct al_sandbox **out, bool *running, struct al_error *err)
{
	_cleanup_(al_sandbox_freep) struct al_sandbox *sb = NULL;
	_cleanup_buf_ struct al_buf answer = {0};
	_cleanup_cjson_ cJSON *j = NULL;
	_cleanup_free_ char *path = NULL;
	struct call c = {.method = "GET", .idempotent = true};
	int r;

	(void)name; /* the bridge has no names to find a sandbox by */
	*running = false;
	if (!id)
		return al_error_set(err, ENOENT,
		                    "the Cloudflare bridge finds sandboxes by id only");
	sb = al_sandbox_new(id);
	path = sb ? sandbox_path(sb, "/running") : NULL;
	if (!path)
		return al_error_set(err, ENOMEM, "out of memory");
	c.path = path;
	if (cJSON_GetObjectItemCaseSensitive(saved, "env"))
		cJSON_AddItemToObject(
		    sb->saved, "env",
		    cJSON_Duplicate(cJSON_GetObjectItemCaseSensitive(saved, "env"), 1));
	r = request((struct cf_provider *)p, &c, &answer, "check Cloudflare sandbox", err);
	if (r == -EHOSTDOWN || r == -ENOENT)
		return al_error_set(err, ENOENT, "Cloudflare sandbox %s: not found", id);
	if (r < 0)
		return r;
	j = cJSON_ParseWithLength(answer.data ? answer.data : "", answer.len);
	*running = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(j, "running"));
	*out = TAKE_PTR(sb);
	return 0;
}

/* ---- processes and files ---- */

static int cf_read(struct al_provider *p, struct al_sandbox *sb, const char *path, size_t max,
                   char **data, size_t *len, struct al_error *err)
{
	_cleanup_free_ char *abs = al_hosted_abs(WORKSPACE_ROOT, path);
	_cleanup_free_ char *route = abs ? file_route(sb, abs) : NULL;
	struct call c = {
	    .method = "GET", .path = route, .idempotent = true, .max = max ? max : MAX_FILE};
	struct al_buf body = {0};
	int r;

	if (!route)
		return al_error_set(err, ENOMEM, "out of memory");
	r = request((struct cf_provider *)p, &c, &body, abs, err);
	if (r < 0)
		return r;
	*data = body.data ? body.data : strdup("");
	*len = body.len;
	return *data ? 0 : al_error_set(err, ENOMEM, "out of memory");
}

static int cf_write(struct al_provider *p, struct al_sandbox *sb, const char *path,
                    const void *data, size_t len, struct al_error *err)
{
	_cleanup_free_ char *abs = al_hosted_abs(WORKSPACE_ROOT, path);
	_cleanup_free_ char *route = abs ? file_route(sb, abs) : NULL;
	_cleanup_free_ char *ignored = NULL;
	struct call c = {.method = "PUT",
	                 .path = route,
	                 .body = data ? data : "",
	                 .body_len = len,
	                 .content_type = "application/octet-stream",
	                 .idempotent = true};
	int r;

	if (!route)
		return al_error_set(err, ENOMEM, "out of memory");
	if (len > MAX_FILE)
		return al_error_set(err, EFBIG, "%s: the bridge takes at most 32 MiB", abs);
	/* As the client does: the parent first (the bridge does not make it). */
	r = path_script(p, sb, "mkdir -p -- \"$(dirname -- %s)\"", abs, &ignored, err);
	if (r < 0)
		return r;
	return request((struct cf_provider *)p, &c, NULL, abs, err);
}

static int cf_remove(struct al_provider *p, struct al_sandbox *sb, const char *path,
                     struct al_error *err)
{
	_cleanup_free_ char *abs = al_hosted_abs(WORKSPACE_ROOT, path);
	_cleanup_free_ char *ignored = NULL;

	if (!abs)
		return al_error_set(err, ENOMEM, "out of memory");
	return path_script(p, sb, "{ [ -e %s ] || [ -L %s ]; } || exit 3; rm -rf -- %s", abs,
	                   &ignored, err);
}

static int cf_list(struct al_provider *p, struct al_sandbox *sb, const char *path,
                   struct al_dir_entry **entries, size_t *n, struct al_error *err)
{
	_cleanup_free_ char *abs = al_hosted_abs(WORKSPACE_ROOT, path);
	_cleanup_free_ char *text = NULL;
	struct al_dir_entry *out;
	size_t cap = 16, i = 0;
	int r;

	if (!abs)
		return al_error_set(err, ENOMEM, "out of memory");
	/* One line per entry: type, size, name (a name with a newline is not listed). */
	r = path_script(p, sb,
	                "[ -d %s ] || exit 3; cd %s || exit 3; for f in * .[!.]* ..?*; do "
	                "{ [ -e \"$f\" ] || [ -L \"$f\" ]; } || continue; "
	                "if [ -L \"$f\" ]; then t=l; elif [ -d \"$f\" ]; then t=d; "
	                "elif [ -f \"$f\" ]; then t=f; else t=o; fi; s=0; "
	                "[ $t = f ] && s=$(wc -c <\"$f\"); printf '%%s %%s %%s\\n' $t $s \"$f\"; "
	                "done",
	                abs, &text, err);
	if (r < 0)
		return r;
	out = calloc(cap, sizeof(*out));
	if (!out)
		return al_error_set(err, ENOMEM, "out of memory");
	for (char *save = NULL, *line = strtok_r(text, "\n", &save); line;
	     line = strtok_r(NULL, "\n", &save)) {
		char type = line[0];
		unsigned long long size = 0;
		char *name = strchr(line, ' ');
		name = name ? strchr(name + 1, ' ') : NULL;
		if (!name || sscanf(line + 2, "%llu", &size) != 1)
			continue;
		if (i + 1 >= cap) {
			struct al_dir_entry *v = realloc(out, 2 * cap * sizeof(*v));
			if (!v) {
				al_dir_entries_free(out, i);
				return al_error_set(err, ENOMEM, "out of memory");
			}
			out = v;
			cap *= 2;
		}
		out[i].name = strdup(name + 1);
		out[i].type = type;
		out[i].size = size;
		if (!out[i].name) {
			al_dir_entries_free(out, i);
			return al_error_set(err, ENOMEM, "out of memory");
		}
		i++;
	}
	*entries = out;
	*n = i;
	return 0;
}

static int cf_persist(struct al_provider *p, struct al_sandbox *sb, const char *archive_path,
                      struct al_error *err)
{
	_cleanup_free_ char *path = sandbox_path(sb, "/persist");
	_cleanup_free_ char *part = NULL;
	_cleanup_buf_ struct al_buf tar = {0};
	_cleanup_close_ int fd = -1;
	struct call c = {
	    .method = "POST", .path = path, .body = "", .max = 1u << 30, .timeout_ms = 600000};
	int r;

	if (!path || asprintf(&part, "%s.part", archive_path) < 0)
		return al_error_set(err, ENOMEM, "out of memory");
	r = request((struct cf_provider *)p, &c, &tar, "persist workspace", err);
	if (r < 0)
		return r;
	fd = open(part, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0)
		return al_error_errno(err, "create %s", part);
	if (al_write_all(fd, tar.data, tar.len) < 0 || fsync(fd) < 0 ||
	    rename(part, archive_path) < 0) {
		r = al_error_errno(err, "write %s", archive_path);
		unlink(part);
		return r;
	}
	return 0;
}

static int cf_hydrate(struct al_provider *p, struct al_sandbox *sb, const char *archive_path,
                      struct al_error *err)
{
	_cleanup_free_ char *path = sandbox_path(sb, "/hydrate");
	_cleanup_free_ char *data = NULL;
	struct call c = {.method = "POST",
	                 .path = path,
	                 .content_type = "application/octet-stream",
	                 .timeout_ms = 600000};
	size_t len = 0;
	int r;

	if (!path)
		return al_error_set(err, ENOMEM, "out of memory");
	r = al_hosted_check_archive(archive_path, err);
	if (r < 0)
		return al_error_prefix(err, "hydrate workspace from %s", archive_path);
	r = al_read_file(archive_path, MAX_FILE, &data, &len, err);
	if (r < 0)
		return r;
	c.body = data;
	c.body_len = len;
	return request((struct cf_provider *)p, &c, NULL, "hydrate workspace", err);
}

static int cf_snapshot(struct al_provider *p, struct al_sandbox *sb, bool processes,
                       char **snapshot_id, struct al_error *err)
{
	(void)p;
	(void)processes;
	(void)snapshot_id;
	return al_error_set(err, ENOTSUP, "provider cloudflare cannot snapshot sandbox %s", sb->id);
}

static const char *const cf_option_keys[] = {"worker_url", "request_timeout_ms", "ca_bundle", NULL};

const struct al_provider_ops al_provider_cloudflare = {
    .type = "cloudflare",
    .caps = AL_CAP_WORKSPACE_ARCHIVE,
    .option_keys = cf_option_keys,
    .open = cf_open,
    .close = cf_close,
    .create = cf_create,
    .resume = cf_resume,
    .exec = al_hosted_exec,
    .write_stdin = al_hosted_write_stdin,
    .kill = al_hosted_kill,
    .read = cf_read,
    .write = cf_write,
    .remove = cf_remove,
    .list = cf_list,
    .persist_workspace = cf_persist,
    .hydrate_workspace = cf_hydrate,
    .snapshot = cf_snapshot,
    .delete_snapshot = NULL,
    .delete = cf_delete,
};
