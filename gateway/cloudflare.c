/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The Cloudflare Sandbox bridge Worker's contract (`@cloudflare/sandbox/bridge`, the
 * routes `@openai/agents-extensions`' CloudflareSandboxClient calls; the reference's §8)
 * over airlockd, under /cloudflare: the client's workerUrl is http://HOST:PORT/cloudflare.
 * Keys come as "Authorization: Bearer".  As the bridge does, file routes reach only
 * /workspace, and bodies are capped at 32 MiB.
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

#define PREFIX "/cloudflare/v1/sandbox"
#define WORKSPACE "/workspace"
#define MAX_BRIDGE_BODY (32u << 20)
#define DEFAULT_EXEC_TIMEOUT_MS (600 * 1000L)

#define MAX_ID 128

struct csbx {
	struct gw_entry entry; /* first: the registry's part */
	char id[MAX_ID + 1];   /* base32 characters: 26 when the gateway issues them */
	char *backend_id;
};

static struct gw_registry registry;
static struct gw_server *server;

/* The bridge's error shape: {error, code}. */
static void cf_shape(cJSON *j, unsigned status, const char *code, const char *msg)
{
	(void)status;
	cJSON_AddStringToObject(j, "error", msg);
	cJSON_AddStringToObject(j, "code", code);
}
#define cf_error(rq, status, code, ...) gw_reply_error(rq, status, cf_shape, code, __VA_ARGS__)

static enum MHD_Result ok(struct gw_request *rq)
{
	static const char body[] = "{\"ok\":true}";
	return gw_reply(rq, 200, "application/json", body, sizeof(body) - 1);
}

/* The bridge's ids: [a-z2-7]{1,128}; it mints 26 of them from 16 random bytes. */
static bool valid_id(const char *id)
{
	size_t n = strlen(id);

	return n >= 1 && n <= MAX_ID && strspn(id, "abcdefghijklmnopqrstuvwxyz234567") == n;
}

static void csbx_free(struct csbx *sb)
{
	gw_entry_done(&sb->entry);
	free(sb->backend_id);
	free(sb);
}

static void entry_free(struct gw_entry *e)
{
	csbx_free((struct csbx *)e);
}

static void releasep(struct csbx **sb)
{
	gw_registry_release(&registry, (struct gw_entry *)*sb);
}

static struct csbx *find(const char *id, const char *tenant)
{
	return (struct csbx *)gw_registry_find(&registry, id, tenant);
}

/* ---- the registry's records (--state-dir; registry.h) ---- */

static cJSON *entry_save(const struct gw_entry *e)
{
	const struct csbx *sb = (const struct csbx *)e;
	cJSON *o = cJSON_CreateObject();

	cJSON_AddStringToObject(o, "id", sb->id);
	cJSON_AddStringToObject(o, "backend_id", sb->backend_id);
	cJSON_AddStringToObject(o, "tenant", e->tenant);
	return o;
}

static struct gw_entry *entry_load(const cJSON *o)
{
	const char *id = al_json_str(o, "id"), *bid = al_json_str(o, "backend_id");
	const char *tenant = al_json_str(o, "tenant");
	struct csbx *sb;

	if (!id || !valid_id(id) || !bid || !tenant)
		return NULL;
	sb = calloc(1, sizeof(*sb));
	if (!sb)
		return NULL;
	if (gw_entry_init(&sb->entry, tenant) < 0 || !(sb->backend_id = strdup(bid))) {
		csbx_free(sb);
		return NULL;
	}
	snprintf(sb->id, sizeof(sb->id), "%s", id);
	sb->entry.id = sb->id;
	return &sb->entry;
}

static const struct gw_registry_ops registry_ops = {
    .service = GW_CLOUDFLARE,
    .what = "cloudflare",
    .free = entry_free,
    .save = entry_save,
    .load = entry_load,
};

int gw_cloudflare_init(struct gw_server *s, struct al_error *err)
{
	server = s;
	return gw_registry_open(&registry, &registry_ops, &s->state, err);
}

/* A new airlockd sandbox registered as the tenant's id; *out holds a reference. */
static int csbx_create(const char *id, const char *tenant, struct csbx **out, struct al_error *err)
{
	struct csbx *sb = calloc(1, sizeof(*sb));
	char name[48];
	struct gw_new_sandbox ns = {.name = name, .rootfs = server->rootfs, .image = server->image};
	int r;

	if (!sb || gw_entry_init(&sb->entry, tenant) < 0) {
		free(sb);
		return al_error_set(err, ENOMEM, "out of memory");
	}
	snprintf(sb->id, sizeof(sb->id), "%s", id);
	sb->entry.id = sb->id;
	snprintf(name, sizeof(name), "cf-%.40s", id);
	r = gw_backend_create(&server->backend, &ns, &sb->backend_id, NULL, err);
	if (r < 0) {
		csbx_free(sb);
		return r;
	}
	gw_registry_add(&registry, &sb->entry);
	log_info("tenant %s: cloudflare sandbox %s is airlockd's %s", tenant, sb->id,
	         sb->backend_id);
	*out = sb;
	return 0;
}

static enum MHD_Result create(struct gw_request *rq, const char *tenant)
{
	static const char base32[] = "abcdefghijklmnopqrstuvwxyz234567";
	_cleanup_cjson_ cJSON *out = cJSON_CreateObject();
	_cleanup_(releasep) struct csbx *sb = NULL;
	struct al_error e = AL_ERROR_INIT;
	char hex[33], id[27];

	if (al_random_hex(hex, 32, &e) < 0)
		return cf_error(rq, 500, "pool_error", "cannot make an id");
	for (int i = 0; i < 26; i++)
		id[i] = base32[(unsigned)(hex[i] <= '9' ? hex[i] - '0' : hex[i] - 'a' + 10) * 2 +
		               (hex[i + 6] & 1)];
	id[26] = '\0';
	if (csbx_create(id, tenant, &sb, &e) < 0)
		return cf_error(rq, 503, "capacity_exceeded", "cannot create a sandbox: %s", e.msg);
	cJSON_AddStringToObject(out, "id", sb->id);
	return gw_reply_json(rq, 200, out);
}

static void sse(struct al_buf *b, const char *event, const char *data)
{
	al_buf_append(b, "event: ", 7);
	al_buf_append(b, event, strlen(event));
	al_buf_append(b, "\ndata: ", 7);
	al_buf_append(b, data, strlen(data));
	al_buf_append(b, "\n\n", 2);
}

/* Run argv to its end; the answer is the bridge's SSE: stdout/stderr (base64), exit. */
static enum MHD_Result exec(struct gw_request *rq, struct csbx *sb)
{
	_cleanup_cjson_ cJSON *req =
	    cJSON_ParseWithLength(rq->body.data ? rq->body.data : "", rq->body.len);
	_cleanup_cjson_ cJSON *body = cJSON_CreateObject();
	_cleanup_(gw_result_freep) struct gw_result res = {0};
	_cleanup_buf_ struct al_buf out = {0};
	struct al_error e = AL_ERROR_INIT;
	const cJSON *argv = cJSON_GetObjectItemCaseSensitive(req, "argv");
	const cJSON *t = cJSON_GetObjectItemCaseSensitive(req, "timeout_ms");
	const cJSON *a, *code;
	long timeout = cJSON_IsNumber(t) && t->valuedouble > 0 ? (long)t->valuedouble
	                                                       : DEFAULT_EXEC_TIMEOUT_MS;
	char exitbuf[64];
	int r;

	if (!cJSON_IsArray(argv) || cJSON_GetArraySize(argv) == 0)
		return cf_error(rq, 400, "invalid_request", "argv must be a non-empty array");
	cJSON_ArrayForEach(a, argv) if (!cJSON_IsString(a)) return cf_error(
	    rq, 400, "invalid_request", "argv must hold strings");
	cJSON_AddItemToObject(body, "argv", cJSON_Duplicate(argv, 1));
	cJSON_AddNumberToObject(body, "timeout_ms", (double)timeout);
	cJSON_AddNumberToObject(body, "max_output_bytes", 64 << 20);
	cJSON_AddStringToObject(body, "encoding", "base64");
	r = gw_sandbox_call(&server->backend, "POST", sb->backend_id, "/exec", body, NULL, 0,
	                    timeout + 60000, &res, &e);
	if (r < 0)
		return cf_error(rq, 502, "exec_transport_error", "%s", e.msg);
	if (res.status != 200)
		return cf_error(rq, 502, "exec_error", "%s", gw_result_message(&res));
	if (al_json_str(res.json, "stdout") && *al_json_str(res.json, "stdout"))
		sse(&out, "stdout", al_json_str(res.json, "stdout"));
	if (al_json_str(res.json, "stderr") && *al_json_str(res.json, "stderr"))
		sse(&out, "stderr", al_json_str(res.json, "stderr"));
	code = cJSON_GetObjectItemCaseSensitive(res.json, "exit_code");
	snprintf(exitbuf, sizeof(exitbuf), "{\"exit_code\":%d}",
	         cJSON_IsNumber(code)
	             ? code->valueint
	             : 128 + (int)cJSON_GetNumberValue(
	                         cJSON_GetObjectItemCaseSensitive(res.json, "signal")));
	sse(&out, "exit", exitbuf);
	return gw_reply(rq, 200, "text/event-stream", out.data ? out.data : "", out.len);
}

/* "/workspace/…" from the route's tail (segments URI-decoded by MHD); NULL outside it. */
static char *workspace_path(const char *tail)
{
	char *p;

	if (asprintf(&p, "/%s", tail) < 0)
		return NULL;
	if (strstr(p, "/../") || (strlen(p) >= 3 && !strcmp(p + strlen(p) - 3, "/..")) ||
	    (strcmp(p, WORKSPACE) && strncmp(p, WORKSPACE "/", strlen(WORKSPACE) + 1))) {
		free(p);
		return NULL;
	}
	return p;
}

static enum MHD_Result file(struct gw_request *rq, struct csbx *sb, const char *tail)
{
	_cleanup_free_ char *path = workspace_path(tail);
	_cleanup_free_ char *epath = path ? gw_escape(path) : NULL;
	_cleanup_free_ char *suffix = NULL;
	_cleanup_(gw_result_freep) struct gw_result res = {0};
	struct al_error e = AL_ERROR_INIT;
	bool put = !strcmp(rq->method, "PUT");
	int r;

	if (!path)
		return cf_error(rq, 403, "invalid_request", "only paths inside /workspace");
	if (!epath || asprintf(&suffix, "/files?path=%s%s", epath, put ? "&parents=1" : "") < 0)
		return MHD_NO;
	if (put) {
		if (rq->body.len > MAX_BRIDGE_BODY)
			return cf_error(rq, 413, "payload_too_large", "at most 32 MiB");
		r = gw_sandbox_call(&server->backend, "PUT", sb->backend_id, suffix, NULL,
		                    rq->body.data ? rq->body.data : "", rq->body.len, 0, &res, &e);
		if (r < 0 || res.status != 200)
			return cf_error(rq, 502, "workspace_write_error", "%s",
			                r < 0 ? e.msg : gw_result_message(&res));
		return ok(rq);
	}
	r = gw_sandbox_call(&server->backend, "GET", sb->backend_id, suffix, NULL, NULL, 0, 0, &res,
	                    &e);
	if (r < 0)
		return cf_error(rq, 502, "workspace_read_error", "%s", e.msg);
	if (res.status == 404)
		return cf_error(rq, 404, "workspace_read_not_found", "%s not found", path);
	if (res.status != 200)
		return cf_error(rq, 502, "workspace_read_error", "%s", gw_result_message(&res));
	return gw_reply(rq, 200, "application/octet-stream", res.body.data, res.body.len);
}

static enum MHD_Result persist(struct gw_request *rq, struct csbx *sb)
{
	const char *excludes = gw_query(rq, "excludes");
	_cleanup_(gw_result_freep) struct gw_result res = {0};
	struct al_error e = AL_ERROR_INIT;
	int r;

	if (excludes && *excludes) {
		/* tar with the bridge's --exclude ./p, run inside the sandbox. */
		_cleanup_cjson_ cJSON *body = cJSON_CreateObject();
		cJSON *argv = cJSON_AddArrayToObject(body, "argv");
		_cleanup_free_ char *copy = strdup(excludes);
		_cleanup_free_ char *raw = NULL;
		size_t len = 0;
		cJSON_AddItemToArray(argv, cJSON_CreateString("tar"));
		cJSON_AddItemToArray(argv, cJSON_CreateString("-C"));
		cJSON_AddItemToArray(argv, cJSON_CreateString(WORKSPACE));
		cJSON_AddItemToArray(argv, cJSON_CreateString("-cf"));
		cJSON_AddItemToArray(argv, cJSON_CreateString("-"));
		for (char *save = NULL, *x = copy ? strtok_r(copy, ",", &save) : NULL; x;
		     x = strtok_r(NULL, ",", &save)) {
			char ex[4096];
			snprintf(ex, sizeof(ex), "--exclude=./%s", x);
			cJSON_AddItemToArray(argv, cJSON_CreateString(ex));
		}
		cJSON_AddItemToArray(argv, cJSON_CreateString("."));
		cJSON_AddNumberToObject(body, "max_output_bytes", 64 << 20);
		cJSON_AddStringToObject(body, "encoding", "base64");
		r = gw_sandbox_call(&server->backend, "POST", sb->backend_id, "/exec", body, NULL,
		                    0, 0, &res, &e);
		if (r < 0 || res.status != 200 ||
		    cJSON_GetNumberValue(cJSON_GetObjectItemCaseSensitive(res.json, "exit_code")) !=
		        0)
			return cf_error(rq, 502, "persist_error", "%s",
			                r < 0 ? e.msg : gw_result_message(&res));
		if (al_base64_decode(
		        al_json_str(res.json, "stdout") ? al_json_str(res.json, "stdout") : "",
		        &raw, &len, &e) < 0)
			return cf_error(rq, 502, "persist_error", "%s", e.msg);
		return gw_reply(rq, 200, "application/x-tar", raw, len);
	}
	r = gw_sandbox_call(&server->backend, "GET", sb->backend_id, "/workspace", NULL, NULL, 0, 0,
	                    &res, &e);
	if (r < 0 || res.status != 200)
		return cf_error(rq, 502, "persist_error", "%s",
		                r < 0 ? e.msg : gw_result_message(&res));
	return gw_reply(rq, 200, "application/x-tar", res.body.data, res.body.len);
}

static enum MHD_Result hydrate(struct gw_request *rq, struct csbx *sb)
{
	_cleanup_(gw_result_freep) struct gw_result res = {0};
	struct al_error e = AL_ERROR_INIT;
	int r;

	if (rq->body.len > MAX_BRIDGE_BODY)
		return cf_error(rq, 413, "payload_too_large", "at most 32 MiB");
	/* airlockd checks the archive against traversal, links out, devices and limits. */
	r = gw_sandbox_call(&server->backend, "PUT", sb->backend_id, "/workspace", NULL,
	                    rq->body.data ? rq->body.data : "", rq->body.len, 0, &res, &e);
	if (r < 0)
		return cf_error(rq, 502, "hydrate_error", "%s", e.msg);
	if (res.status == 400 || res.status == 413)
		return cf_error(rq, res.status,
		                res.status == 413 ? "payload_too_large" : "invalid_request", "%s",
		                gw_result_message(&res));
	if (res.status != 200)
		return cf_error(rq, 502, "hydrate_error", "%s", gw_result_message(&res));
	return ok(rq);
}

/*
 * POST /v1/sandbox/{id}/mount {bucket, mountPath, options: {endpoint, provider, prefix,
 * readOnly, credentials, credentialProxy}}: the bucket mounted by airlockd on the host
 * (rclone) and bound in at mountPath, so the keys never enter the sandbox (what the
 * bridge's credentialProxy does on Cloudflare; here whatever it says).  "provider" (sent
 * by the Agents SDK's client) picks S3, R2 or GCS's S3-compatible API with HMAC keys.
 */
static enum MHD_Result mount(struct gw_request *rq, struct csbx *sb)
{
	_cleanup_(gw_cjson_wipep) cJSON *req =
	    cJSON_ParseWithLength(rq->body.data ? rq->body.data : "", rq->body.len);
	_cleanup_(gw_cjson_wipep) cJSON *body = cJSON_CreateObject();
	_cleanup_(gw_result_freep) struct gw_result res = {0};
	struct al_error e = AL_ERROR_INIT;
	const char *bucket = al_json_str(req, "bucket");
	const char *path = al_json_str(req, "mountPath");
	const cJSON *options = cJSON_GetObjectItemCaseSensitive(req, "options");
	const char *endpoint = al_json_str(options, "endpoint");
	const char *provider = al_json_str(options, "provider");
	const char *prefix = al_json_str(options, "prefix");
	const cJSON *ro = cJSON_GetObjectItemCaseSensitive(options, "readOnly");
	const cJSON *creds = cJSON_GetObjectItemCaseSensitive(options, "credentials");
	const char *type = "s3_mount", *id_field = "accessKeyId";
	_cleanup_free_ char *pfx = NULL;
	cJSON *entry, *c;
	int r;

	/* Parsed: the body held the keys. */
	if (rq->body.data)
		explicit_bzero(rq->body.data, rq->body.len);
	if (!req || !body)
		return cf_error(rq, 400, "invalid_request", "Invalid JSON body");
	if (!path || path[0] != '/')
		return cf_error(rq, 400, "invalid_request",
		                "mountPath must be an absolute path (start with /)");
	if (!cJSON_IsObject(options))
		return cf_error(rq, 400, "invalid_request", "options must be an object");
	if (cJSON_GetObjectItemCaseSensitive(req, "binding"))
		return cf_error(
		    rq, 400, "invalid_request",
		    "R2 binding mounts are not supported: airlock-gateway has no Worker "
		    "bindings; give options.endpoint and credentials");
	if (!endpoint)
		return cf_error(rq, 400, "invalid_request", "options.endpoint must be given");
	if (!bucket || !*bucket)
		return cf_error(rq, 400, "invalid_request",
		                "bucket must be a non-empty string for remote mounts");
	if (ro && !cJSON_IsBool(ro))
		return cf_error(rq, 400, "invalid_request",
		                "options.readOnly must be a boolean when provided");
	if (creds && (!cJSON_IsObject(creds) || !al_json_str(creds, "accessKeyId") ||
	              !al_json_str(creds, "secretAccessKey")))
		return cf_error(rq, 400, "invalid_request",
		                "options.credentials must include string accessKeyId and "
		                "secretAccessKey");
	if (provider && !strcmp(provider, "r2")) {
		type = "r2_mount";
	} else if (provider && !strcmp(provider, "gcs")) {
		type = "gcs_mount";
		id_field = "accessId";
	} else if (provider && strcmp(provider, "s3")) {
		return cf_error(rq, 400, "invalid_request", "unknown options.provider %s",
		                provider);
	}
	/* The bridge's prefix starts with '/' and loses its trailing ones; airlockd's is a
	 * path in the bucket. */
	while (prefix && *prefix == '/')
		prefix++;
	if (prefix && *prefix) {
		if (!(pfx = strdup(prefix)))
			return cf_error(rq, 500, "mount_error", "out of memory");
		for (size_t n = strlen(pfx); n > 0 && pfx[n - 1] == '/'; n--)
			pfx[n - 1] = '\0';
	}
	entry = cJSON_AddObjectToObject(body, "entry");
	if (!entry || !cJSON_AddStringToObject(entry, "type", type) ||
	    !cJSON_AddStringToObject(entry, "bucket", bucket) ||
	    !cJSON_AddStringToObject(entry, "mountPath", path) ||
	    !cJSON_AddStringToObject(entry, "endpointUrl", endpoint) ||
	    !cJSON_AddBoolToObject(entry, "readOnly", cJSON_IsTrue(ro)) ||
	    (pfx && *pfx && !cJSON_AddStringToObject(entry, "prefix", pfx)))
		return cf_error(rq, 500, "mount_error", "out of memory");
	if (creds) {
		c = cJSON_AddObjectToObject(body, "credentials");
		if (!c ||
		    !cJSON_AddStringToObject(c, id_field, al_json_str(creds, "accessKeyId")) ||
		    !cJSON_AddStringToObject(c, "secretAccessKey",
		                             al_json_str(creds, "secretAccessKey")))
			return cf_error(rq, 500, "mount_error", "out of memory");
	}
	r = gw_sandbox_call(&server->backend, "POST", sb->backend_id, "/mounts", body, NULL, 0, 0,
	                    &res, &e);
	if (r < 0)
		return cf_error(rq, 502, "mount_error", "mount failed: %s", e.msg);
	if (res.status == 400)
		return cf_error(rq, 400, "invalid_request", "%s", gw_result_message(&res));
	if (res.status != 201)
		return cf_error(rq, 502, "mount_error", "mount failed: %s",
		                gw_result_message(&res));
	return ok(rq);
}

/* POST /v1/sandbox/{id}/unmount {mountPath}: the bucket there unmounted by airlockd. */
static enum MHD_Result unmount(struct gw_request *rq, struct csbx *sb)
{
	_cleanup_cjson_ cJSON *req =
	    cJSON_ParseWithLength(rq->body.data ? rq->body.data : "", rq->body.len);
	_cleanup_(gw_result_freep) struct gw_result res = {0};
	_cleanup_free_ char *q = NULL;
	struct al_error e = AL_ERROR_INIT;
	const char *path = al_json_str(req, "mountPath");
	int r;

	if (!req)
		return cf_error(rq, 400, "invalid_request", "Invalid JSON body");
	if (!path || path[0] != '/')
		return cf_error(rq, 400, "invalid_request",
		                "mountPath must be an absolute path (start with /)");
	q = gw_path_query("/mounts", path, NULL);
	if (!q)
		return cf_error(rq, 500, "unmount_error", "out of memory");
	r = gw_sandbox_call(&server->backend, "DELETE", sb->backend_id, q, NULL, NULL, 0, 0, &res,
	                    &e);
	if (r < 0)
		return cf_error(rq, 502, "unmount_error", "unmount failed: %s", e.msg);
	if (res.status == 404 && strstr(gw_result_message(&res), "no bucket mount"))
		return cf_error(rq, 400, "invalid_request", "no bucket is mounted at %s", path);
	if (res.status != 200)
		return cf_error(rq, 502, "unmount_error", "unmount failed: %s",
		                gw_result_message(&res));
	return ok(rq);
}

bool gw_cloudflare_handle(struct gw_server *s, struct gw_request *rq, enum MHD_Result *result)
{
	const char *url = rq->url, *rest, *slash, *tenant;
	char id[MAX_ID + 2];

	server = s;
	if (strncmp(url, "/cloudflare/", 12))
		return false;
	tenant = gw_bearer_tenant(server, rq, "Authorization");
	if (!tenant) {
		*result = cf_error(rq, 401, "unauthorized", "Unauthorized");
		return true;
	}
	if (!strcmp(url, PREFIX)) {
		*result = !strcmp(rq->method, "POST")
		              ? create(rq, tenant)
		              : cf_error(rq, 404, "invalid_request", "no such route");
		return true;
	}
	if (strncmp(url, PREFIX "/", strlen(PREFIX) + 1)) {
		*result = cf_error(rq, 404, "invalid_request", "no such route");
		return true;
	}
	rest = url + strlen(PREFIX) + 1;
	slash = strchr(rest, '/');
	snprintf(id, sizeof(id), "%.*s", slash ? (int)(slash - rest) : (int)strlen(rest), rest);
	rest = slash ? slash : "";
	if (!valid_id(id)) {
		*result = cf_error(rq, 400, "invalid_request", "Invalid sandbox ID format");
		return true;
	}
	{
		_cleanup_(releasep) struct csbx *sb = find(id, tenant);
		bool post = !strcmp(rq->method, "POST");
		/*
		 * The bridge's pool would give an id it never issued a fresh container on first
		 * use; here only the ids this gateway issued exist, so that a deleted sandbox
		 * stays deleted (docs/gateway.md).  Deleting one that is not there is done.
		 */
		if (!sb) {
			*result = !strcmp(rest, "/running") ? gw_reply(rq, 404, "application/json",
			                                               "{\"running\":false}", 17)
			          : !*rest && !strcmp(rq->method, "DELETE")
			              ? gw_reply(rq, 204, NULL, "", 0)
			              : cf_error(rq, 404, "invalid_request", "no sandbox %s", id);
			return true;
		}
		if (!*rest && !strcmp(rq->method, "DELETE")) {
			if (gw_registry_remove(&registry, &sb->entry))
				gw_backend_discard(&server->backend, sb->backend_id);
			*result = gw_reply(rq, 204, NULL, "", 0);
		} else if (!strcmp(rest, "/exec") && post) {
			*result = exec(rq, sb);
		} else if (!strncmp(rest, "/file/", 6) &&
		           (!strcmp(rq->method, "GET") || !strcmp(rq->method, "PUT"))) {
			*result = file(rq, sb, rest + 6);
		} else if (!strcmp(rest, "/running") && !strcmp(rq->method, "GET")) {
			_cleanup_(gw_result_freep) struct gw_result res = {0};
			struct al_error e = AL_ERROR_INIT;
			int r = gw_sandbox_call(&server->backend, "GET", sb->backend_id, "", NULL,
			                        NULL, 0, 0, &res, &e);
			bool running = r == 0 && res.status == 200 &&
			               al_json_str(res.json, "state") &&
			               !strcmp(al_json_str(res.json, "state"), "running");
			*result = gw_reply(rq, 200, "application/json",
			                   running ? "{\"running\":true}" : "{\"running\":false}",
			                   running ? 16 : 17);
		} else if (!strcmp(rest, "/persist") && post) {
			*result = persist(rq, sb);
		} else if (!strcmp(rest, "/hydrate") && post) {
			*result = hydrate(rq, sb);
		} else if (!strcmp(rest, "/mount") && post) {
			*result = mount(rq, sb);
		} else if (!strcmp(rest, "/unmount") && post) {
			*result = unmount(rq, sb);
		} else if (!strcmp(rest, "/pty")) {
			*result = cf_error(rq, 400, "invalid_request",
			                   "PTY is not supported: airlockd has no terminals");
		} else {
			*result = cf_error(rq, 404, "invalid_request", "no such route");
		}
	}
	return true;
}

static void discard(struct gw_entry *e)
{
	gw_backend_discard(&server->backend, ((struct csbx *)e)->backend_id);
}

void gw_cloudflare_shutdown(void)
{
	gw_registry_close(&registry, discard);
}
