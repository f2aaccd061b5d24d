/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The modal provider: Modal's gRPC services as the official `modal` SDK speaks them
 * (docs/providers.md; the reference's §5), with libcurl for HTTP/2 and protobuf-c for the
 * messages (gateway/proto/, written from the SDK's field numbers).  The control plane
 * (apps, images, secrets, sandboxes) is at the server URL; a sandbox's commands and
 * snapshots go to its task command router, whose URL and token the control plane gives.
 * As the SDK does, a control plane on plain http:// (a gateway) means a plaintext
 * router too, whatever the https:// of its URL says.
 *
 * Every gRPC call is one HTTP/2 request (content-type application/grpc, one 5-byte framed
 * message) on a connection of its own (http.h: libcurl 7.88 fails on reused cleartext
 * HTTP/2 connections); the answer's messages are de-framed from the body and its status
 * read from the grpc-status/grpc-message trailers.  A command runs to its end
 * (TaskExecStart, TaskExecStdioRead's stream, TaskExecWait, which is asked again after
 * DEADLINE_EXCEEDED); exec sessions — yield, stdin, kill — are hosted.c's building block
 * over that.  Files go through the SDK's own protocol, commands of
 * /__modal/.bin/modal-sandbox-fs-tools with stdin and stdout; listing and removal are
 * shell commands.  Snapshots are Modal's filesystem snapshots (image ids).
 */
#include "hosted.h"
#include "provider.h"

#include "cleanup.h"
#include "http.h"
#include "json.h"
#include "strv.h"
#include "util.h"

#include "modal_api.pb-c.h"
#include "task_command_router.pb-c.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define DEFAULT_SERVER_URL "https://api.modal.com"
#define DEFAULT_APP "airlock"
#define DEFAULT_IMAGE "debian:bookworm-slim"
#define CP "/modal.client.ModalClient/"
#define ROUTER "/modal.task_command_router.TaskCommandRouter/"
#define FS_TOOLS "/__modal/.bin/modal-sandbox-fs-tools"
#define WORKSPACE_ROOT "/workspace"
#define REQUEST_TIMEOUT_MS (120 * 1000L)
#define MAX_MESSAGE (256u << 20)
#define STDIN_CHUNK (4u << 20)
/* The sandbox's lifetime on Modal (its SDK's default is 5 minutes: too short for a run). */
#define SANDBOX_TIMEOUT_SECS (24 * 3600)

struct modal_provider {
	struct al_provider base;
	struct al_http http;
	char *server_url;
	char *token_id_header;
	char *token_secret_header;
	char *auth_token_header; /* x-modal-auth-token, from AuthTokenGet */
	char *app_name;
	char *image_tag;
	char *app_id;
	char *image_id;
};

struct modal_conn {
	char *root;
	char *task_id;
	char *router_url;
	char *router_auth; /* "authorization: Bearer <router token>" */
};

static void conn_free(void *c)
{
	struct modal_conn *conn = c;

	if (!conn)
		return;
	free(conn->root);
	free(conn->task_id);
	free(conn->router_url);
	if (conn->router_auth)
		explicit_bzero(conn->router_auth, strlen(conn->router_auth));
	free(conn->router_auth);
	free(conn);
}

static void free_secret(char *s)
{
	if (s)
		explicit_bzero(s, strlen(s));
	free(s);
}

static void modal_close(struct al_provider *p)
{
	struct modal_provider *mp = (struct modal_provider *)p;

	if (!mp)
		return;
	al_http_close(&mp->http);
	free(mp->server_url);
	free(mp->token_id_header);
	free_secret(mp->token_secret_header);
	free_secret(mp->auth_token_header);
	free(mp->app_name);
	free(mp->image_tag);
	free(mp->app_id);
	free(mp->image_id);
	free(mp);
}

static int modal_open(const cJSON *options, const char *api_key, struct al_provider **out,
                      struct al_error *err)
{
	struct modal_provider *mp;
	const char *url = al_hosted_option(options, "server_url", "MODAL_SERVER_URL");
	const char *token_id = al_hosted_option(options, "token_id", "MODAL_TOKEN_ID");
	const char *app = al_hosted_option(options, "app_name", NULL);
	const char *image = al_hosted_option(options, "image", NULL);
	struct al_http_config hc = {.max_retries = 2, .timeout_ms = REQUEST_TIMEOUT_MS};
	int r;

	if (!api_key || !*api_key || !token_id)
		return al_error_set(
		    err, EPERM,
		    "provider modal needs a token: set MODAL_TOKEN_ID and "
		    "MODAL_TOKEN_SECRET (or provider.token_id and modal_token_secret "
		    "in the credentials file)");
	if (url && strncmp(url, "http://", 7) && strncmp(url, "https://", 8))
		return al_error_set(err, EINVAL, "provider.server_url must be an http(s) URL");
	/* A call's own deadline (a command's stdio stream has none but the command's). */
	r = al_hosted_ms_option(options, "request_timeout_ms", REQUEST_TIMEOUT_MS, &hc.timeout_ms,
	                        err);
	if (r < 0)
		return r;
	mp = calloc(1, sizeof(*mp));
	if (!mp)
		return al_error_set(err, ENOMEM, "out of memory");
	mp->base.ops = &al_provider_modal;
	hc.ca_bundle = al_hosted_option(options, "ca_bundle", NULL);
	mp->server_url = al_hosted_base_url(url ? url : DEFAULT_SERVER_URL);
	mp->app_name = strdup(app ? app : DEFAULT_APP);
	mp->image_tag = strdup(image ? image : DEFAULT_IMAGE);
	r = al_http_open(&mp->http, &hc, err);
	if (r < 0 || !mp->server_url || !mp->app_name || !mp->image_tag ||
	    asprintf(&mp->token_id_header, "x-modal-token-id: %s", token_id) < 0 ||
	    asprintf(&mp->token_secret_header, "x-modal-token-secret: %s", api_key) < 0) {
		mp->token_secret_header = NULL;
		modal_close(&mp->base);
		return r < 0 ? r : al_error_set(err, ENOMEM, "out of memory");
	}
	*out = &mp->base;
	return 0;
}

/* ---- gRPC over libcurl ---- */

static int grpc_errno(long status)
{
	switch (status) {
	case 5: /* NOT_FOUND */
		return ENOENT;
	case 6: /* ALREADY_EXISTS */
		return EEXIST;
	case 7:  /* PERMISSION_DENIED */
	case 16: /* UNAUTHENTICATED */
		return EPERM;
	case 12: /* UNIMPLEMENTED */
		return ENOTSUP;
	case 3:  /* INVALID_ARGUMENT */
	case 9:  /* FAILED_PRECONDITION */
	case 11: /* OUT_OF_RANGE */
		return EINVAL;
	case 4: /* DEADLINE_EXCEEDED */
		return ETIMEDOUT;
	case 14: /* UNAVAILABLE */
		return ECONNREFUSED;
	default:
		return EIO;
	}
}

/* grpc-message is percent-encoded: decoded in place. */
static void percent_decode(char *s)
{
	char *o = s;

	for (; *s; s++) {
		unsigned v;
		if (*s == '%' && sscanf(s + 1, "%2x", &v) == 1) {
			*o++ = (char)v;
			s += 2;
		} else {
			*o++ = *s;
		}
	}
	*o = '\0';
}

struct grpc_call {
	const char *base_url; /* the control plane's or the router's */
	const char *method;   /* "/package.Service/Method" */
	const ProtobufCMessage *request;
	const char *auth; /* the router's authorization header, or NULL: the control plane's */
	long timeout_ms;
	const char *what;
};

/* The call made; each answer message handed to each (in order).  A non-OK status is an
 * error naming it (-ETIMEDOUT for DEADLINE_EXCEEDED, which callers may ask again after). */
static int grpc_do(struct modal_provider *mp, const struct grpc_call *c,
                   int (*each)(void *ctx, const uint8_t *msg, size_t len), void *ctx,
                   struct al_error *err)
{
	static const char *const capture[] = {"grpc-status", "grpc-message", NULL};
	size_t len = protobuf_c_message_get_packed_size(c->request);
	_cleanup_free_ uint8_t *body = malloc(len + 5);
	_cleanup_free_ char *url = NULL;
	const char *headers[8];
	size_t n = 0, off = 0;
	struct al_http_response resp;
	int r;

	if (!body || asprintf(&url, "%s%s", c->base_url, c->method) < 0)
		return al_error_set(err, ENOMEM, "out of memory");
	body[0] = 0;
	body[1] = (uint8_t)(len >> 24);
	body[2] = (uint8_t)(len >> 16);
	body[3] = (uint8_t)(len >> 8);
	body[4] = (uint8_t)len;
	protobuf_c_message_pack(c->request, body + 5);
	headers[n++] = "content-type: application/grpc";
	headers[n++] = "te: trailers";
	if (c->auth) {
		headers[n++] = c->auth;
	} else {
		headers[n++] = mp->token_id_header;
		headers[n++] = mp->token_secret_header;
		if (mp->auth_token_header)
			headers[n++] = mp->auth_token_header;
		headers[n++] = "x-modal-client-type: 8";
	}
	headers[n] = NULL;
	r = al_http_do(&mp->http,
	               &(struct al_http_request){.method = "POST",
	                                         .url = url,
	                                         .headers = headers,
	                                         .body = body,
	                                         .body_len = len + 5,
	                                         .max_response = MAX_MESSAGE,
	                                         .timeout_ms = c->timeout_ms,
	                                         .what = c->what,
	                                         .capture = capture,
	                                         .http2 = true},
	               &resp, err);
	/* Sent: a secret's request (a bucket mount's keys) leaves no copy behind. */
	explicit_bzero(body, len + 5);
	if (r < 0) {
		al_http_response_free(&resp);
		return r;
	}
	if (resp.status != 200) {
		r = al_http_status_error(&resp, resp.status == 404 ? ENOTSUP : EIO, c->what, err);
		al_http_response_free(&resp);
		return r;
	}
	if (!resp.captured[0][0]) {
		al_http_response_free(&resp);
		/* The stream ended without its status: cut. */
		return al_error_set(err, EIO, "%s: the answer ended without a gRPC status",
		                    c->what);
	}
	if (strcmp(resp.captured[0], "0")) {
		long status = strtol(resp.captured[0], NULL, 10);
		percent_decode(resp.captured[1]);
		r = al_error_set(err, grpc_errno(status), "%s: gRPC status %ld: %s", c->what,
		                 status, resp.captured[1]);
		al_http_response_free(&resp);
		return r;
	}
	/* Messages, each behind its 5-byte prefix; a cut one is an error. */
	while (off < resp.body.len && r == 0) {
		const uint8_t *b = (const uint8_t *)resp.body.data + off;
		size_t m;
		if (resp.body.len - off < 5) {
			r = al_error_set(err, EIO, "%s: a message cut short", c->what);
			break;
		}
		m = (size_t)b[1] << 24 | (size_t)b[2] << 16 | (size_t)b[3] << 8 | b[4];
		if (b[0] != 0 || resp.body.len - off - 5 < m) {
			r = al_error_set(err, EIO, "%s: a message cut short or compressed",
			                 c->what);
			break;
		}
		if (each)
			r = each(ctx, b + 5, m);
		off += 5 + m;
	}
	al_http_response_free(&resp);
	return r < 0 && !err->code ? al_error_set(err, -r, "%s: a bad answer", c->what) : r;
}

struct unary {
	const ProtobufCMessageDescriptor *desc;
	ProtobufCMessage *out;
};

static int take_unary(void *ctx, const uint8_t *msg, size_t len)
{
	struct unary *u = ctx;

	if (u->out)
		return -EIO; /* a unary call answers one message */
	u->out = protobuf_c_message_unpack(u->desc, NULL, len, msg);
	return u->out ? 0 : -EIO;
}

/* A unary call; *out the answer (protobuf_c_message_free_unpacked it). */
static int grpc_unary(struct modal_provider *mp, const struct grpc_call *c,
                      const ProtobufCMessageDescriptor *desc, void *out, struct al_error *err)
{
	struct unary u = {.desc = desc};
	int r = grpc_do(mp, c, take_unary, &u, err);

	if (r == 0 && !u.out)
		r = al_error_set(err, EIO, "%s: no answer message", c->what);
	if (r < 0) {
		if (u.out)
			protobuf_c_message_free_unpacked(u.out, NULL);
		return r;
	}
	*(ProtobufCMessage **)out = u.out;
	return 0;
}

static void pb_freep(void *p)
{
	ProtobufCMessage **m = p;

	if (*m)
		protobuf_c_message_free_unpacked(*m, NULL);
}

static int cp_unary(struct modal_provider *mp, const char *method, const ProtobufCMessage *rq,
                    const ProtobufCMessageDescriptor *desc, void *out, const char *what,
                    struct al_error *err)
{
	_cleanup_free_ char *path = NULL;

	if (asprintf(&path, CP "%s", method) < 0)
		return al_error_set(err, ENOMEM, "out of memory");
	return grpc_unary(mp, &(struct grpc_call){mp->server_url, path, rq, NULL, 0, what}, desc,
	                  out, err);
}

/* ---- the control plane ---- */

/* Auth token, app and image: once per provider. */
static int setup(struct modal_provider *mp, struct al_error *err)
{
	Modal__Client__AuthTokenGetRequest at = MODAL__CLIENT__AUTH_TOKEN_GET_REQUEST__INIT;
	Modal__Client__AppGetOrCreateRequest app = MODAL__CLIENT__APP_GET_OR_CREATE_REQUEST__INIT;
	Modal__Client__ImageGetOrCreateRequest img =
	    MODAL__CLIENT__IMAGE_GET_OR_CREATE_REQUEST__INIT;
	Modal__Client__Image image = MODAL__CLIENT__IMAGE__INIT;
	_cleanup_(pb_freep) Modal__Client__AuthTokenGetResponse *tok = NULL;
	_cleanup_(pb_freep) Modal__Client__AppGetOrCreateResponse *app_out = NULL;
	_cleanup_(pb_freep) Modal__Client__ImageGetOrCreateResponse *img_out = NULL;
	_cleanup_free_ char *from = NULL;
	char *cmds[1];
	int r;

	if (mp->image_id)
		return 0;
	r = cp_unary(mp, "AuthTokenGet", &at.base,
	             &modal__client__auth_token_get_response__descriptor, &tok, "Modal auth token",
	             err);
	if (r < 0)
		return r;
	if (*tok->token &&
	    asprintf(&mp->auth_token_header, "x-modal-auth-token: %s", tok->token) < 0)
		return al_error_set(err, ENOMEM, "out of memory");
	app.app_name = mp->app_name;
	app.object_creation_type = 1; /* create if missing */
	r = cp_unary(mp, "AppGetOrCreate", &app.base,
	             &modal__client__app_get_or_create_response__descriptor, &app_out, "Modal app",
	             err);
	if (r < 0)
		return r;
	if (asprintf(&from, "FROM %s", mp->image_tag) < 0 ||
	    !(mp->app_id = strdup(app_out->app_id)))
		return al_error_set(err, ENOMEM, "out of memory");
	cmds[0] = from;
	image.n_dockerfile_commands = 1;
	image.dockerfile_commands = cmds;
	image.version = "2024.10";
	img.image = &image;
	img.app_id = mp->app_id;
	img.builder_version = "2024.10";
	r = cp_unary(mp, "ImageGetOrCreate", &img.base,
	             &modal__client__image_get_or_create_response__descriptor, &img_out,
	             "Modal image", err);
	if (r < 0)
		return r;
	/* An image being built (no result yet) would need ImageJoinStreaming's build log. */
	if (!img_out->result || img_out->result->status != 1)
		return al_error_set(err, ENOTSUP, "Modal image %s is not built (status %d)",
		                    mp->image_tag, img_out->result ? img_out->result->status : 0);
	mp->image_id = strdup(img_out->image_id);
	return mp->image_id ? 0 : al_error_set(err, ENOMEM, "out of memory");
}

/* The task and the router of a sandbox (waiting for its task to start). */
static int attach(struct modal_provider *mp, const char *sandbox_id, const char *root,
                  struct al_sandbox **out, struct al_error *err)
{
	Modal__Client__SandboxGetTaskIdRequest tq =
	    MODAL__CLIENT__SANDBOX_GET_TASK_ID_REQUEST__INIT;
	Modal__Client__TaskGetCommandRouterAccessRequest aq =
	    MODAL__CLIENT__TASK_GET_COMMAND_ROUTER_ACCESS_REQUEST__INIT;
	_cleanup_(pb_freep) Modal__Client__TaskGetCommandRouterAccessResponse *access = NULL;
	_cleanup_(al_sandbox_freep) struct al_sandbox *sb = al_sandbox_new(sandbox_id);
	struct modal_conn *c = calloc(1, sizeof(*c));
	uint64_t end = al_now_ms() + 300000;
	int r;

	if (!sb || !c) {
		free(c);
		return al_error_set(err, ENOMEM, "out of memory");
	}
	sb->conn = c;
	sb->conn_free = conn_free;
	tq.sandbox_id = (char *)sandbox_id;
	tq.wait_until_ready = true;
	tq.timeout = 10;
	while (!c->task_id) {
		_cleanup_(pb_freep) Modal__Client__SandboxGetTaskIdResponse *t = NULL;
		r = cp_unary(mp, "SandboxGetTaskId", &tq.base,
		             &modal__client__sandbox_get_task_id_response__descriptor, &t,
		             "Modal sandbox task", err);
		if (r == -ENOENT)
			return al_error_set(err, ENOENT, "Modal sandbox %s: not found", sandbox_id);
		if (r < 0)
			return r;
		if (t->task_result && t->task_result->status)
			return al_error_set(err, EHOSTDOWN, "Modal sandbox %s has ended",
			                    sandbox_id);
		if (*t->task_id && !(c->task_id = strdup(t->task_id)))
			return al_error_set(err, ENOMEM, "out of memory");
		if (!c->task_id && al_now_ms() > end)
			return al_error_set(err, ETIMEDOUT, "Modal sandbox %s has no task",
			                    sandbox_id);
		if (!c->task_id)
			usleep(500 * 1000);
	}
	aq.task_id = c->task_id;
	r = cp_unary(mp, "TaskGetCommandRouterAccess", &aq.base,
	             &modal__client__task_get_command_router_access_response__descriptor, &access,
	             "Modal command router", err);
	if (r < 0)
		return r;
	if (strncmp(access->url, "https://", 8))
		return al_error_set(err, EIO, "Modal's command router URL is not https: %s",
		                    access->url);
	/* The SDK's rule: a plaintext control plane means a plaintext router. */
	if (asprintf(&c->router_url, "%s%s",
	             strncmp(mp->server_url, "http://", 7) ? "https://" : "http://",
	             access->url + 8) < 0 ||
	    asprintf(&c->router_auth, "authorization: Bearer %s", access->jwt) < 0 ||
	    !(c->root = strdup(root)))
		return al_error_set(err, ENOMEM, "out of memory");
	cJSON_AddStringToObject(sb->saved, "root", root);
	*out = TAKE_PTR(sb);
	return 0;
}

static const char *manifest_root(const cJSON *manifest)
{
	const char *root = al_json_str(manifest, "root");
	return root && root[0] == '/' ? root : WORKSPACE_ROOT;
}

static const char *root_of(struct al_sandbox *sb)
{
	struct modal_conn *c = sb->conn;
	return c ? c->root : WORKSPACE_ROOT;
}

static int modal_delete(struct al_provider *p, struct al_sandbox *sb, struct al_error *err);

/* The env as an ephemeral secret (what the SDK does with a create's env, and with a cloud
 * bucket mount's keys). */
static int env_secret(struct modal_provider *mp, const cJSON *env, const char *what, char **id,
                      struct al_error *err)
{
	Modal__Client__SecretGetOrCreateRequest rq =
	    MODAL__CLIENT__SECRET_GET_OR_CREATE_REQUEST__INIT;
	_cleanup_(pb_freep) Modal__Client__SecretGetOrCreateResponse *out = NULL;
	int n = cJSON_GetArraySize(env), i = 0;
	_cleanup_free_ Modal__Client__SecretGetOrCreateRequest__EnvDictEntry *kv =
	    calloc((size_t)n + 1, sizeof(*kv));
	_cleanup_free_ Modal__Client__SecretGetOrCreateRequest__EnvDictEntry **ptrs =
	    calloc((size_t)n + 1, sizeof(*ptrs));
	const cJSON *e;
	int r;

	if (!kv || !ptrs)
		return al_error_set(err, ENOMEM, "out of memory");
	cJSON_ArrayForEach(e, env)
	{
		if (!cJSON_IsString(e))
			continue;
		modal__client__secret_get_or_create_request__env_dict_entry__init(&kv[i]);
		kv[i].key = e->string;
		kv[i].value = e->valuestring;
		ptrs[i] = &kv[i];
		i++;
	}
	rq.object_creation_type = 5; /* ephemeral */
	rq.n_env_dict = (size_t)i;
	rq.env_dict = ptrs;
	rq.app_id = mp->app_id;
	r = cp_unary(mp, "SecretGetOrCreate", &rq.base,
	             &modal__client__secret_get_or_create_response__descriptor, &out, what, err);
	if (r < 0)
		return r;
	*id = strdup(out->secret_id);
	return *id ? 0 : al_error_set(err, ENOMEM, "out of memory");
}

/*
 * The manifest's bucket mounts as Modal's cloud bucket mounts, its own mechanism: the keys
 * (from the credentials file's "mounts", keyed by entry) go in an ephemeral Modal secret
 * of their own, named by the mount, never into the sandbox's env; Modal mounts the
 * bucket.  Kinds Modal has no mount for are refused (al_hosted_refuse_mount).
 */
struct cloud_mounts {
	Modal__Client__CloudBucketMount *items;
	Modal__Client__CloudBucketMount **ptrs;
	size_t n;
	char **owned; /* the strings the items point to */
};

static void cloud_mounts_done(struct cloud_mounts *cm)
{
	free(cm->items);
	free(cm->ptrs);
	al_strv_free(cm->owned);
}

/* A copy of s kept with cm (NULL when out of memory). */
static char *keep(struct cloud_mounts *cm, const char *s)
{
	if (al_strv_push(&cm->owned, s) < 0)
		return NULL;
	return cm->owned[al_strv_length(cm->owned) - 1];
}

static void wipe_cjsonp(cJSON **j)
{
	const cJSON *v;

	cJSON_ArrayForEach(v, *j)
	{
		if (cJSON_IsString(v))
			explicit_bzero(v->valuestring, strlen(v->valuestring));
	}
	cJSON_Delete(*j);
}

/* The mount's keys as the secret's variables Modal reads (AWS_* for S3 and R2, GOOGLE_*
 * HMAC keys for GCS); its id in *id. */
static int mount_secret(struct modal_provider *mp, const char *key, const char *kind,
                        const cJSON *creds, char **id, struct al_error *err)
{
	static const struct {
		const char *kind, *field, *var;
	} map[] = {
	    {"s3", "accessKeyId", "AWS_ACCESS_KEY_ID"},
	    {"s3", "secretAccessKey", "AWS_SECRET_ACCESS_KEY"},
	    {"s3", "sessionToken", "AWS_SESSION_TOKEN"},
	    {"r2", "accessKeyId", "AWS_ACCESS_KEY_ID"},
	    {"r2", "secretAccessKey", "AWS_SECRET_ACCESS_KEY"},
	    {"gcs", "accessId", "GOOGLE_ACCESS_KEY_ID"},
	    {"gcs", "secretAccessKey", "GOOGLE_ACCESS_KEY_SECRET"},
	};
	_cleanup_(wipe_cjsonp) cJSON *env = cJSON_CreateObject();
	const cJSON *f;

	if (!env)
		return al_error_set(err, ENOMEM, "out of memory");
	if (!cJSON_IsObject(creds))
		return al_error_set(err, EINVAL, "mount credentials of %s: not an object", key);
	cJSON_ArrayForEach(f, creds)
	{
		const char *var = NULL;
		for (size_t i = 0; i < AL_ARRAY_SIZE(map) && !var; i++)
			if (!strcmp(map[i].kind, kind) && !strcmp(map[i].field, f->string))
				var = map[i].var;
		if (!var)
			return al_error_set(
			    err, ENOTSUP,
			    "manifest entry %s: credential %s is not taken by Modal's "
			    "%s cloud bucket mounts%s",
			    key, f->string, kind,
			    !strcmp(kind, "gcs") ? " (HMAC keys only: accessId and "
			                           "secretAccessKey)"
			                         : "");
		if (!cJSON_IsString(f) || !f->valuestring[0])
			return al_error_set(err, EINVAL,
			                    "mount credentials of %s: %s must be a string", key,
			                    f->string);
		if (!cJSON_AddStringToObject(env, var, f->valuestring))
			return al_error_set(err, ENOMEM, "out of memory");
	}
	return env_secret(mp, env, "Modal secret for a cloud bucket mount", id, err);
}

static int add_mount(struct modal_provider *mp, struct cloud_mounts *cm, const cJSON *e,
                     const char *key, const char *kind, const cJSON *fields, const char *root,
                     const cJSON *creds, struct al_error *err)
{
	Modal__Client__CloudBucketMount *m;
	const char *bucket = al_json_str(fields, "bucket");
	const char *mount_path = al_json_str(e, "mountPath");
	const char *endpoint = al_json_str(fields, "endpointUrl");
	const char *prefix = al_json_str(fields, "prefix");
	_cleanup_free_ char *path = NULL, *pfx = NULL, *r2 = NULL;
	_cleanup_free_ char *secret_id = NULL;
	const cJSON *ro = cJSON_GetObjectItemCaseSensitive(e, "readOnly");
	int r;

	if (!bucket || !*bucket || strchr(bucket, '/'))
		return al_error_set(err, EINVAL, "manifest entry %s: a bucket name is needed", key);
	if (mount_path && mount_path[0] == '/')
		path = strdup(mount_path);
	else if (asprintf(&path, "%s/%s", root, mount_path ? mount_path : key) < 0)
		path = NULL;
	if (!path)
		return al_error_set(err, ENOMEM, "out of memory");
	if (strstr(path, "/../") || (strlen(path) >= 3 && !strcmp(path + strlen(path) - 3, "/..")))
		return al_error_set(err, EINVAL, "manifest entry %s: mountPath has ..", key);
	if (!endpoint)
		endpoint = al_json_str(fields, "endpoint");
	if (!strcmp(kind, "r2") && !endpoint) {
		const char *domain = al_json_str(fields, "customDomain");
		const char *account = al_json_str(fields, "accountId");
		if (domain)
			endpoint = domain;
		else if (!account)
			return al_error_set(err, EINVAL,
			                    "manifest entry %s: r2 mounts need accountId", key);
		else if (asprintf(&r2, "https://%s.r2.cloudflarestorage.com", account) < 0)
			return al_error_set(err, ENOMEM, "out of memory");
		else
			endpoint = r2;
	}
	if (!strcmp(kind, "gcs") && !endpoint)
		endpoint = "https://storage.googleapis.com";
	/* Modal's prefix is a key prefix ending in '/' (its SDK insists). */
	while (prefix && *prefix == '/')
		prefix++;
	if (prefix && *prefix &&
	    asprintf(&pfx, "%s%s", prefix, prefix[strlen(prefix) - 1] == '/' ? "" : "/") < 0)
		return al_error_set(err, ENOMEM, "out of memory");
	if (creds && (r = mount_secret(mp, key, kind, creds, &secret_id, err)) < 0)
		return r;
	{
		Modal__Client__CloudBucketMount *items =
		    reallocarray(cm->items, cm->n + 1, sizeof(*items));
		if (!items)
			return al_error_set(err, ENOMEM, "out of memory");
		cm->items = items;
	}
	m = &cm->items[cm->n];
	modal__client__cloud_bucket_mount__init(m);
	m->bucket_type = !strcmp(kind, "s3") ? 1 : !strcmp(kind, "r2") ? 2 : 3;
	m->read_only = cJSON_IsTrue(ro);
	if (!(m->bucket_name = keep(cm, bucket)) || !(m->mount_path = keep(cm, path)) ||
	    (endpoint && !(m->bucket_endpoint_url = keep(cm, endpoint))) ||
	    (pfx && !(m->key_prefix = keep(cm, pfx))) ||
	    (secret_id && !(m->credentials_secret_id = keep(cm, secret_id))))
		return al_error_set(err, ENOMEM, "out of memory");
	cm->n++;
	return 0;
}

struct mount_collecting {
	struct modal_provider *mp;
	struct cloud_mounts *cm;
	const char *root;
	const cJSON *credentials;
};

static int collect_one(void *ctx, const cJSON *e, const char *key, const char *kind,
                       const cJSON *fields, struct al_error *err)
{
	struct mount_collecting *c = ctx;

	return add_mount(c->mp, c->cm, e, key, kind, fields, c->root,
	                 cJSON_GetObjectItemCaseSensitive(c->credentials, key), err);
}

static int collect_mounts(struct al_provider *p, const cJSON *entries, const char *root,
                          const cJSON *credentials, struct cloud_mounts *cm, struct al_error *err)
{
	struct mount_collecting c = {(struct modal_provider *)p, cm, root, credentials};
	int r = al_hosted_for_each_native_mount(p, entries, collect_one, &c, err);

	if (r < 0 || !cm->n)
		return r;
	cm->ptrs = calloc(cm->n, sizeof(*cm->ptrs));
	if (!cm->ptrs)
		return al_error_set(err, ENOMEM, "out of memory");
	for (size_t i = 0; i < cm->n; i++)
		cm->ptrs[i] = &cm->items[i];
	return 0;
}

static int modal_create(struct al_provider *p, const struct al_sandbox_spec *spec,
                        struct al_sandbox **out, struct al_error *err)
{
	struct modal_provider *mp = (struct modal_provider *)p;
	Modal__Client__SandboxCreateRequest rq = MODAL__CLIENT__SANDBOX_CREATE_REQUEST__INIT;
	Modal__Client__Sandbox def = MODAL__CLIENT__SANDBOX__INIT;
	_cleanup_(pb_freep) Modal__Client__SandboxCreateResponse *created = NULL;
	_cleanup_(al_sandbox_freep) struct al_sandbox *sb = NULL;
	_cleanup_free_ char *secret = NULL;
	_cleanup_(cloud_mounts_done) struct cloud_mounts mounts = {0};
	const char *root = manifest_root(spec->manifest);
	char *entrypoint[] = {"sleep", "infinity"};
	int r = setup(mp, err);

	if (r < 0)
		return r;
	if (cJSON_GetArraySize(spec->env) > 0 &&
	    (r = env_secret(mp, spec->env, "Modal secret for the env", &secret, err)) < 0)
		return r;
	if (spec->manifest &&
	    (r = collect_mounts(p, cJSON_GetObjectItemCaseSensitive(spec->manifest, "entries"),
	                        root, spec->mount_credentials, &mounts, err)) < 0)
		return r;
	def.n_entrypoint_args = 2;
	def.entrypoint_args = entrypoint;
	def.image_id = (char *)(spec->snapshot_id ? spec->snapshot_id : mp->image_id);
	def.n_secret_ids = secret ? 1 : 0;
	def.secret_ids = &secret;
	def.timeout_secs = SANDBOX_TIMEOUT_SECS;
	def.workdir = (char *)root;
	def.n_cloud_bucket_mounts = mounts.n;
	def.cloud_bucket_mounts = mounts.ptrs;
	rq.app_id = mp->app_id;
	rq.definition = &def;
	r = cp_unary(mp, "SandboxCreate", &rq.base,
	             &modal__client__sandbox_create_response__descriptor, &created,
	             "create Modal sandbox", err);
	if (r == -ENOENT && spec->snapshot_id)
		return al_error_set(err, ENOENT, "Modal snapshot %s: not found", spec->snapshot_id);
	if (r < 0)
		return r;
	r = attach(mp, created->sandbox_id, root, &sb, err);
	/* A sandbox from a snapshot has its workspace already. */
	if (r == 0 && spec->manifest && !spec->snapshot_id) {
		r = al_hosted_materialise(p, sb, spec->manifest, root, err);
		if (r < 0) {
			struct al_error ignored = AL_ERROR_INIT;
			modal_delete(p, sb, &ignored);
			return al_error_prefix(err, "materialise the manifest in Modal sandbox %s",
			                       sb->id);
		}
	}
	if (r < 0)
		return r;
	*out = TAKE_PTR(sb);
	return 0;
}

static int modal_resume(struct al_provider *p, const char *id, const cJSON *saved, const char *name,
                        struct al_sandbox **out, bool *running, struct al_error *err)
{
	struct modal_provider *mp = (struct modal_provider *)p;
	Modal__Client__SandboxWaitRequest rq = MODAL__CLIENT__SANDBOX_WAIT_REQUEST__INIT;
	_cleanup_(pb_freep) Modal__Client__SandboxWaitResponse *w = NULL;
	const char *root = al_json_str(saved, "root") ? al_json_str(saved, "root") : WORKSPACE_ROOT;
	int r;

	(void)name;
	*running = false;
	if (!id)
		return al_error_set(err, ENOENT, "Modal sandboxes are found by id only");
	rq.sandbox_id = (char *)id;
	r = cp_unary(mp, "SandboxWait", &rq.base, &modal__client__sandbox_wait_response__descriptor,
	             &w, "find Modal sandbox", err);
	if (r == -ENOENT)
		return al_error_set(err, ENOENT, "Modal sandbox %s: not found", id);
	if (r < 0)
		return r;
	if (w->result && w->result->status)
		return al_error_set(err, ENOENT, "Modal sandbox %s has ended", id);
	r = attach(mp, id, root, out, err);
	if (r == 0)
		*running = true;
	return r;
}

static int modal_delete(struct al_provider *p, struct al_sandbox *sb, struct al_error *err)
{
	struct modal_provider *mp = (struct modal_provider *)p;
	Modal__Client__SandboxTerminateRequest rq = MODAL__CLIENT__SANDBOX_TERMINATE_REQUEST__INIT;
	_cleanup_(pb_freep) Modal__Client__SandboxTerminateResponse *t = NULL;
	int r;

	rq.sandbox_id = sb->id;
	r = cp_unary(mp, "SandboxTerminate", &rq.base,
	             &modal__client__sandbox_terminate_response__descriptor, &t,
	             "terminate Modal sandbox", err);
	return r == -ENOENT ? 0 : r;
}

/* ---- commands, through the router ---- */

static int router_unary(struct modal_provider *mp, struct al_sandbox *sb, const char *method,
                        const ProtobufCMessage *rq, const ProtobufCMessageDescriptor *desc,
                        void *out, long timeout_ms, const char *what, struct al_error *err)
{
	struct modal_conn *c = sb->conn;
	_cleanup_free_ char *path = NULL;
	int r;

	if (asprintf(&path, ROUTER "%s", method) < 0)
		return al_error_set(err, ENOMEM, "out of memory");
	r = grpc_unary(
	    mp, &(struct grpc_call){c->router_url, path, rq, c->router_auth, timeout_ms, what},
	    desc, out, err);
	if (r == -ENOENT && !strcmp(method, "TaskExecStart"))
		return al_error_set(err, EHOSTDOWN, "Modal sandbox %s is gone: %s", sb->id,
		                    err->msg);
	return r;
}

static int append_stdio(void *ctx, const uint8_t *msg, size_t len)
{
	Modal__TaskCommandRouter__TaskExecStdioReadResponse *m =
	    modal__task_command_router__task_exec_stdio_read_response__unpack(NULL, len, msg);
	int r;

	if (!m)
		return -EIO;
	r = al_buf_append(ctx, m->data.data, m->data.len);
	modal__task_command_router__task_exec_stdio_read_response__free_unpacked(m, NULL);
	return r;
}

/* One stream of a command (0 stdout, 1 stderr), all of it, into out. */
static int read_stdio(struct modal_provider *mp, struct al_sandbox *sb, const char *exec_id, int fd,
                      struct al_buf *out, struct al_error *err)
{
	struct modal_conn *c = sb->conn;
	Modal__TaskCommandRouter__TaskExecStdioReadRequest rq =
	    MODAL__TASK_COMMAND_ROUTER__TASK_EXEC_STDIO_READ_REQUEST__INIT;

	rq.task_id = c->task_id;
	rq.exec_id = (char *)exec_id;
	rq.file_descriptor = fd;
	/* Held until the command's end: no deadline of its own beyond the client's. */
	return grpc_do(mp,
	               &(struct grpc_call){c->router_url, ROUTER "TaskExecStdioRead", &rq.base,
	                                   c->router_auth, 24 * 3600 * 1000L,
	                                   "read command output"},
	               append_stdio, out, err);
}

struct run {
	const char *const *argv;
	const void *in; /* stdin, then closed; NULL: closed at once */
	size_t in_len;
	bool want_err;
	/* out */
	struct al_buf out, err;
	int code;
};

/* argv run in sb to its end. */
static int run_argv(struct modal_provider *mp, struct al_sandbox *sb, struct run *x,
                    struct al_error *err)
{
	struct modal_conn *c = sb->conn;
	Modal__TaskCommandRouter__TaskExecStartRequest st =
	    MODAL__TASK_COMMAND_ROUTER__TASK_EXEC_START_REQUEST__INIT;
	Modal__TaskCommandRouter__TaskExecStdinWriteRequest in =
	    MODAL__TASK_COMMAND_ROUTER__TASK_EXEC_STDIN_WRITE_REQUEST__INIT;
	Modal__TaskCommandRouter__TaskExecWaitRequest wq =
	    MODAL__TASK_COMMAND_ROUTER__TASK_EXEC_WAIT_REQUEST__INIT;
	_cleanup_(pb_freep) Modal__TaskCommandRouter__TaskExecStartResponse *started = NULL;
	char exec_id[33];
	size_t n = 0;
	int r;

	if ((r = al_random_hex(exec_id, 32, err)) < 0)
		return r;
	while (x->argv[n])
		n++;
	st.task_id = c->task_id;
	st.exec_id = exec_id;
	st.n_command_args = n;
	st.command_args = (char **)x->argv;
	st.stdout_config = 1;
	st.stderr_config = x->want_err ? 1 : 0;
	st.workdir = c->root;
	r = router_unary(mp, sb, "TaskExecStart", &st.base,
	                 &modal__task_command_router__task_exec_start_response__descriptor,
	                 &started, 0, "start a command", err);
	if (r < 0)
		return r;
	in.task_id = c->task_id;
	in.exec_id = exec_id;
	/* stdin in chunks (the SDK's 4 MiB), then its end. */
	for (size_t off = 0; r == 0;) {
		_cleanup_(pb_freep) Modal__TaskCommandRouter__TaskExecStdinWriteResponse *w = NULL;
		size_t len = x->in && x->in_len - off > STDIN_CHUNK ? STDIN_CHUNK
		             : x->in                                ? x->in_len - off
		                                                    : 0;
		in.offset = off;
		in.data.data = (uint8_t *)(x->in ? (const uint8_t *)x->in + off : NULL);
		in.data.len = len;
		in.eof = off + len == (x->in ? x->in_len : 0);
		r = router_unary(
		    mp, sb, "TaskExecStdinWrite", &in.base,
		    &modal__task_command_router__task_exec_stdin_write_response__descriptor, &w, 0,
		    "write a command's stdin", err);
		off += len;
		if (in.eof)
			break;
	}
	if (r == 0)
		r = read_stdio(mp, sb, exec_id, 0, &x->out, err);
	if (r == 0 && x->want_err)
		r = read_stdio(mp, sb, exec_id, 1, &x->err, err);
	wq.task_id = c->task_id;
	wq.exec_id = exec_id;
	while (r == 0) {
		_cleanup_(pb_freep) Modal__TaskCommandRouter__TaskExecWaitResponse *w = NULL;
		r = router_unary(mp, sb, "TaskExecWait", &wq.base,
		                 &modal__task_command_router__task_exec_wait_response__descriptor,
		                 &w, 60000, "wait for a command", err);
		if (r == -ETIMEDOUT) { /* asked again, as the SDK does */
			al_error_clear(err);
			r = 0;
			continue;
		}
		if (r < 0)
			break;
		if (w->exit_status_case ==
		    MODAL__TASK_COMMAND_ROUTER__TASK_EXEC_WAIT_RESPONSE__EXIT_STATUS_SIGNAL)
			x->code = 128 + w->signal;
		else if (w->exit_status_case ==
		         MODAL__TASK_COMMAND_ROUTER__TASK_EXEC_WAIT_RESPONSE__EXIT_STATUS_CODE)
			x->code = w->code;
		else
			r = al_error_set(err, EIO, "wait for a command: no exit status");
		break;
	}
	return r;
}

static int run_script(struct al_provider *p, struct al_sandbox *sb, const char *script,
                      long timeout_ms, char **out, int *exit_code, struct al_error *err)
{
	const char *const argv[] = {"/bin/sh", "-c", script, NULL};
	struct run x = {.argv = argv};
	int r;

	(void)timeout_ms;
	r = run_argv((struct modal_provider *)p, sb, &x, err);
	if (r == 0 && al_buf_append(&x.out, "", 1) == 0) {
		*out = TAKE_PTR(x.out.data);
		*exit_code = x.code;
	} else if (r == 0) {
		r = al_error_set(err, ENOMEM, "out of memory");
	}
	al_buf_free(&x.out);
	return r;
}

static const struct al_session_runner runner = {.run = run_script};

static int modal_exec(struct al_provider *p, struct al_sandbox *sb,
                      const struct al_exec_request *req, struct al_exec_result *res,
                      struct al_error *err)
{
	return al_session_exec(p, sb, &runner, root_of(sb), req, res, err);
}

static int modal_write_stdin(struct al_provider *p, struct al_sandbox *sb, const char *process_id,
                             const char *data, size_t len, uint64_t yield_ms,
                             struct al_exec_result *res, struct al_error *err)
{
	return al_session_write(p, sb, &runner, process_id, data, len, yield_ms, 0, res, err);
}

static int modal_kill(struct al_provider *p, struct al_sandbox *sb, const char *process_id,
                      const char *signame, struct al_error *err)
{
	return al_session_kill(p, sb, &runner, process_id, signame, err);
}

/* ---- files: the SDK's fs-tools protocol ---- */

/* The tool's failure (its JSON on stderr) as an error. */
static int fs_tool_error(struct run *x, const char *op, const char *path, struct al_error *err)
{
	_cleanup_cjson_ cJSON *j = NULL;
	const char *kind;
	int code = EIO;

	if (al_buf_append(&x->err, "", 1) == 0)
		j = cJSON_Parse(x->err.data);
	kind = al_json_str(j, "error_kind");
	if (kind && !strcmp(kind, "NotFound"))
		code = ENOENT;
	else if (kind && (!strcmp(kind, "IsDirectory") || !strcmp(kind, "NotDirectory")))
		code = EISDIR;
	else if (kind && !strcmp(kind, "PermissionDenied"))
		code = EACCES;
	else if (kind && !strcmp(kind, "FileTooLarge"))
		code = EFBIG;
	return al_error_set(err, code, "%s %s in Modal sandbox: %s", op, path,
	                    al_json_str(j, "message") ? al_json_str(j, "message")
	                                              : (x->err.data ? x->err.data : "failed"));
}

static int fs_tool(struct modal_provider *mp, struct al_sandbox *sb, const char *op,
                   const char *abs, struct run *x, struct al_error *err)
{
	_cleanup_cjson_ cJSON *cmd = cJSON_CreateObject();
	_cleanup_free_ char *arg = NULL;
	const char *argv[] = {FS_TOOLS, NULL, NULL};
	int r;

	cJSON_AddStringToObject(cJSON_AddObjectToObject(cmd, op), "path", abs);
	arg = cJSON_PrintUnformatted(cmd);
	if (!arg)
		return al_error_set(err, ENOMEM, "out of memory");
	argv[1] = arg;
	x->argv = argv;
	x->want_err = true;
	r = run_argv(mp, sb, x, err);
	if (r == 0 && x->code != 0)
		r = fs_tool_error(x, op, abs, err);
	x->argv = NULL;
	return r;
}

static int modal_read(struct al_provider *p, struct al_sandbox *sb, const char *path, size_t max,
                      char **data, size_t *len, struct al_error *err)
{
	_cleanup_free_ char *abs = al_hosted_abs(root_of(sb), path);
	struct run x = {0};
	int r;

	if (!abs)
		return al_error_set(err, ENOMEM, "out of memory");
	r = fs_tool((struct modal_provider *)p, sb, "ReadFile", abs, &x, err);
	if (r == 0 && max && x.out.len > max)
		r = al_error_set(err, EFBIG, "%s is over %zu bytes", abs, max);
	if (r == 0 && al_buf_append(&x.out, "", 1) < 0)
		r = al_error_set(err, ENOMEM, "out of memory");
	if (r == 0) {
		*len = x.out.len - 1;
		*data = TAKE_PTR(x.out.data);
	}
	al_buf_free(&x.out);
	al_buf_free(&x.err);
	return r;
}

static int modal_write(struct al_provider *p, struct al_sandbox *sb, const char *path,
                       const void *data, size_t len, struct al_error *err)
{
	_cleanup_free_ char *abs = al_hosted_abs(root_of(sb), path);
	struct run x = {.in = data ? data : "", .in_len = len};
	int r;

	if (!abs)
		return al_error_set(err, ENOMEM, "out of memory");
	r = fs_tool((struct modal_provider *)p, sb, "WriteFile", abs, &x, err);
	al_buf_free(&x.out);
	al_buf_free(&x.err);
	return r;
}

static int modal_remove(struct al_provider *p, struct al_sandbox *sb, const char *path,
                        struct al_error *err)
{
	_cleanup_free_ char *abs = al_hosted_abs(root_of(sb), path);

	if (!abs)
		return al_error_set(err, ENOMEM, "out of memory");
	return al_hosted_shell_remove(p, sb, abs, err);
}

static int modal_list(struct al_provider *p, struct al_sandbox *sb, const char *path,
                      struct al_dir_entry **entries, size_t *n, struct al_error *err)
{
	_cleanup_free_ char *abs = al_hosted_abs(root_of(sb), path);

	if (!abs)
		return al_error_set(err, ENOMEM, "out of memory");
	return al_hosted_shell_list(p, sb, abs, entries, n, err);
}

static int modal_persist(struct al_provider *p, struct al_sandbox *sb, const char *archive_path,
                         struct al_error *err)
{
	return al_hosted_persist(p, sb, root_of(sb), archive_path, err);
}

static int modal_hydrate(struct al_provider *p, struct al_sandbox *sb, const char *archive_path,
                         struct al_error *err)
{
	return al_hosted_hydrate(p, sb, root_of(sb), archive_path, err);
}

/* ---- snapshots: Modal's filesystem snapshots ---- */

static int modal_snapshot(struct al_provider *p, struct al_sandbox *sb, bool processes,
                          char **snapshot_id, struct al_error *err)
{
	struct modal_conn *c = sb->conn;
	Modal__TaskCommandRouter__TaskSnapshotFilesystemRequest rq =
	    MODAL__TASK_COMMAND_ROUTER__TASK_SNAPSHOT_FILESYSTEM_REQUEST__INIT;
	_cleanup_(pb_freep) Modal__TaskCommandRouter__TaskSnapshotFilesystemResponse *out = NULL;
	char id[33];
	int r;

	if (processes)
		return al_error_set(
		    err, ENOTSUP, "provider modal keeps filesystems, not processes, in snapshots");
	if ((r = al_random_hex(id, 32, err)) < 0)
		return r;
	rq.task_id = c->task_id;
	rq.snapshot_id = id;
	r = router_unary((struct modal_provider *)p, sb, "TaskSnapshotFilesystem", &rq.base,
	                 &modal__task_command_router__task_snapshot_filesystem_response__descriptor,
	                 &out, 300000, "Modal filesystem snapshot", err);
	if (r < 0)
		return r;
	if (!*out->image_id)
		return al_error_set(err, EIO, "Modal filesystem snapshot: no image id");
	*snapshot_id = strdup(out->image_id);
	return *snapshot_id ? 0 : al_error_set(err, ENOMEM, "out of memory");
}

static int modal_delete_snapshot(struct al_provider *p, const char *snapshot_id,
                                 struct al_error *err)
{
	Modal__Client__ImageDeleteRequest rq = MODAL__CLIENT__IMAGE_DELETE_REQUEST__INIT;
	_cleanup_(pb_freep) Modal__Client__Empty *out = NULL;
	int r;

	rq.image_id = (char *)snapshot_id;
	r = cp_unary((struct modal_provider *)p, "ImageDelete", &rq.base,
	             &modal__client__empty__descriptor, &out, "delete Modal image", err);
	return r == -ENOENT ? 0 : r;
}

static const char *const modal_option_keys[] = {
    "server_url", "token_id", "app_name", "image", "request_timeout_ms", "ca_bundle", NULL};

const struct al_provider_ops al_provider_modal = {
    .type = "modal",
    .caps = AL_CAP_FS_SNAPSHOT | AL_CAP_WORKSPACE_ARCHIVE,
    .option_keys = modal_option_keys,
    .open = modal_open,
    .close = modal_close,
    .create = modal_create,
    .resume = modal_resume,
    .exec = modal_exec,
    .write_stdin = modal_write_stdin,
    .kill = modal_kill,
    .read = modal_read,
    .write = modal_write,
    .remove = modal_remove,
    .list = modal_list,
    .persist_workspace = modal_persist,
    .hydrate_workspace = modal_hydrate,
    .snapshot = modal_snapshot,
    .delete_snapshot = modal_delete_snapshot,
    .delete = modal_delete,
};
