/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Modal's two gRPC services over airlockd, as the official `modal` SDK (0.x) speaks them
 * (docs/gateway.md; the reference's §5): the control plane
 * (/modal.client.ModalClient/...: auth, apps, images, secrets, sandboxes) and the task
 * command router (/modal.task_command_router.TaskCommandRouter/...: commands and
 * filesystem snapshots), both on the gateway's port over cleartext HTTP/2
 * (MODAL_SERVER_URL=http://gateway:port).  The router's address given to the SDK is
 * https://<the address the client used>: the SDK insists on https but, its control plane
 * being on loopback, speaks plaintext to it.
 *
 * Tenants: MODAL_TOKEN_SECRET is a gateway key (MODAL_TOKEN_ID is not checked); every
 * control-plane call carries both.  Router calls carry only the router token this
 * gateway gave for the task, which is checked against the sandbox.
 *
 * A command is an airlockd process started with its stdin kept open and polled for its
 * output; its stdout and stderr are kept whole, so that the SDK's stream reads can start
 * at any offset.  The SDK's file operations are commands of
 * /__modal/.bin/modal-sandbox-fs-tools with a JSON argument: served here through
 * airlockd's file API, with the tool's error JSON on stderr.  Filesystem snapshots are
 * airlockd snapshots (an image id that sandboxes can be created from); directory
 * snapshots are tar archives of the directory, kept in the gateway's memory.
 */
#include "grpc.h"
#include "registry.h"
#include "server.h"

#include "cleanup.h"
#include "json.h"
#include "log.h"

#include "modal_api.pb-c.h"
#include "task_command_router.pb-c.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#define CP_PREFIX "/modal.client.ModalClient/"
#define ROUTER_PREFIX "/modal.task_command_router.TaskCommandRouter/"
#define FS_TOOLS "/__modal/.bin/modal-sandbox-fs-tools"
/* The image every sandbox starts from unless it is a snapshot's: the gateway's rootfs or
 * image (registry images are not pulled). */
#define BASE_IMAGE "im-airlockbase"
#define MAX_OUTPUT (64u << 20)
/* How long one poll of airlockd waits for a command's end. */
#define POLL_MS 1000
/* The longest a TaskExecWait or SandboxWait is held (the SDK asks again). */
#define HOLD_MS 50000
#define STREAM_CHUNK (1u << 20)
/* Finished commands kept per sandbox (with their output) for later reads. */
#define KEEP_EXECS 64

/* GenericResult.status */
enum { RESULT_SUCCESS = 1, RESULT_TERMINATED = 3, RESULT_TIMEOUT = 4 };

struct mexec {
	struct mexec *next;
	int users;   /* calls holding it (under its sandbox's exec_lock): not trimmed */
	char id[64]; /* the client's exec id */
	pthread_mutex_t lock;
	pthread_cond_t changed;
	pthread_mutex_t stdin_lock; /* stdin writes in order */
	char *process_id;           /* airlockd's, while it runs */
	bool polling;               /* a thread is polling airlockd for it */
	bool done;
	int code, signal;
	bool keep_out, keep_err;
	struct al_buf out, err; /* all of it: reads start at any offset */
	uint64_t stdin_offset;
	char *write_path; /* fs-tools WriteFile: its stdin, written at end of input */
	struct al_buf write_data;
};

struct msb {
	struct gw_entry entry; /* first: id is the sandbox id, name the task id */
	char id[40];
	char task_id[40];
	char *backend_id;
	char *router_token;
	char *workdir;
	cJSON *env;
	bool terminated; /* under the registry's lock */
	int result_status;
	pthread_mutex_t exec_lock;
	struct mexec *execs;
};

enum image_kind { IMAGE_SNAPSHOT, IMAGE_DIRECTORY };

struct mimage {
	struct mimage *next;
	char id[40];
	char *tenant;
	enum image_kind kind;
	char *backend_snapshot;
	struct al_buf tar;
};

struct mobject { /* an app or a secret */
	struct mobject *next;
	char id[40];
	char *tenant;
	char *name;
	cJSON *env;
};

static struct gw_registry registry;
static struct gw_server *server;
static pthread_mutex_t objects_lock = PTHREAD_MUTEX_INITIALIZER;
static struct mimage *images;
static struct mobject *apps, *secrets;

/* "<prefix>-" and 22 characters of the SDK's id alphabet (it checks sandbox ids). */
static int new_id(char *out, size_t size, const char *prefix)
{
	struct al_error e = AL_ERROR_INIT;
	char hex[23];

	if (al_random_hex(hex, 22, &e) < 0)
		return -EIO;
	snprintf(out, size, "%s-%s", prefix, hex);
	return 0;
}

/* base64url without padding, as a JWT's parts are. */
static char *b64url(const char *s)
{
	char *out = al_base64_encode(s, strlen(s));

	if (!out)
		return NULL;
	for (char *p = out; *p; p++) {
		if (*p == '+')
			*p = '-';
		else if (*p == '/')
			*p = '_';
		else if (*p == '=')
			*p = '\0';
	}
	return out;
}

/* A token shaped as the SDK expects a JWT (it reads "exp" to know when to refresh it);
 * the gateway checks it by comparison, the signature part is random. */
static char *make_token(const char *subject)
{
	_cleanup_free_ char *head = b64url("{\"alg\":\"none\",\"typ\":\"JWT\"}");
	_cleanup_free_ char *payload = NULL;
	_cleanup_free_ char *body = NULL;
	struct al_error e = AL_ERROR_INIT;
	char sig[33];
	char *out;

	if (asprintf(&payload, "{\"sub\":\"%s\",\"exp\":%lld}", subject,
	             (long long)time(NULL) + 7 * 86400) < 0)
		return NULL;
	body = b64url(payload);
	if (!head || !body || al_random_hex(sig, 32, &e) < 0 ||
	    asprintf(&out, "%s.%s.%s", head, body, sig) < 0)
		return NULL;
	return out;
}

/* For unpacked requests: freed as they go out of scope. */
static void pb_freep(void *p)
{
	ProtobufCMessage **m = p;

	if (*m)
		protobuf_c_message_free_unpacked(*m, NULL);
}

/* ---- sandboxes and their registry ---- */

static void mexec_free(struct mexec *x)
{
	pthread_mutex_destroy(&x->lock);
	pthread_cond_destroy(&x->changed);
	pthread_mutex_destroy(&x->stdin_lock);
	free(x->process_id);
	al_buf_free(&x->out);
	al_buf_free(&x->err);
	free(x->write_path);
	al_buf_free(&x->write_data);
	free(x);
}

static void entry_free(struct gw_entry *e)
{
	struct msb *sb = (struct msb *)e;

	while (sb->execs) {
		struct mexec *x = sb->execs;
		sb->execs = x->next;
		mexec_free(x);
	}
	pthread_mutex_destroy(&sb->exec_lock);
	free(sb->backend_id);
	free(sb->router_token);
	free(sb->workdir);
	cJSON_Delete(sb->env);
	gw_entry_done(e);
	free(sb);
}

static void releasep(struct msb **sb)
{
	if (*sb)
		gw_registry_release(&registry, &(*sb)->entry);
}

static struct msb *msb_new(const char *tenant)
{
	struct msb *sb = calloc(1, sizeof(*sb));

	if (!sb)
		return NULL;
	if (gw_entry_init(&sb->entry, tenant) < 0) {
		free(sb);
		return NULL;
	}
	pthread_mutex_init(&sb->exec_lock, NULL);
	sb->entry.id = sb->id;
	sb->entry.name = sb->task_id;
	return sb;
}

static cJSON *entry_save(const struct gw_entry *e)
{
	const struct msb *sb = (const struct msb *)e;
	cJSON *o = cJSON_CreateObject();

	cJSON_AddStringToObject(o, "id", sb->id);
	cJSON_AddStringToObject(o, "task_id", sb->task_id);
	cJSON_AddStringToObject(o, "tenant", e->tenant);
	cJSON_AddStringToObject(o, "backend_id", sb->backend_id);
	cJSON_AddStringToObject(o, "router_token", sb->router_token);
	if (sb->workdir)
		cJSON_AddStringToObject(o, "workdir", sb->workdir);
	if (sb->env)
		cJSON_AddItemToObject(o, "env", cJSON_Duplicate(sb->env, 1));
	cJSON_AddBoolToObject(o, "terminated", sb->terminated);
	return o;
}

static struct gw_entry *entry_load(const cJSON *o)
{
	const char *id = al_json_str(o, "id"), *task = al_json_str(o, "task_id");
	const char *tenant = al_json_str(o, "tenant"), *backend = al_json_str(o, "backend_id");
	const char *token = al_json_str(o, "router_token"), *workdir = al_json_str(o, "workdir");
	const cJSON *env = cJSON_GetObjectItemCaseSensitive(o, "env");
	struct msb *sb;

	if (!id || !task || !tenant || !backend || !token || strlen(id) >= sizeof(sb->id) ||
	    strlen(task) >= sizeof(sb->task_id))
		return NULL;
	sb = msb_new(tenant);
	if (!sb)
		return NULL;
	snprintf(sb->id, sizeof(sb->id), "%s", id);
	snprintf(sb->task_id, sizeof(sb->task_id), "%s", task);
	sb->backend_id = strdup(backend);
	sb->router_token = strdup(token);
	sb->workdir = workdir ? strdup(workdir) : NULL;
	sb->env = cJSON_IsObject(env) ? cJSON_Duplicate(env, 1) : NULL;
	sb->terminated = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(o, "terminated"));
	sb->result_status = RESULT_TERMINATED;
	if (!sb->backend_id || !sb->router_token || (workdir && !sb->workdir)) {
		entry_free(&sb->entry);
		return NULL;
	}
	return &sb->entry;
}

/* Filesystem snapshots persist with the sandboxes (directory snapshots live in memory). */
static void save_images(cJSON *doc)
{
	cJSON *arr = cJSON_AddArrayToObject(doc, "images");

	pthread_mutex_lock(&objects_lock);
	for (const struct mimage *im = images; im; im = im->next) {
		cJSON *o;
		if (im->kind != IMAGE_SNAPSHOT)
			continue;
		o = cJSON_CreateObject();
		cJSON_AddStringToObject(o, "id", im->id);
		cJSON_AddStringToObject(o, "tenant", im->tenant);
		cJSON_AddStringToObject(o, "backend_snapshot", im->backend_snapshot);
		cJSON_AddItemToArray(arr, o);
	}
	pthread_mutex_unlock(&objects_lock);
}

static int load_images(const cJSON *doc, struct al_error *err)
{
	const cJSON *o;

	cJSON_ArrayForEach(o, cJSON_GetObjectItemCaseSensitive(doc, "images"))
	{
		const char *id = al_json_str(o, "id"), *tenant = al_json_str(o, "tenant");
		const char *snap = al_json_str(o, "backend_snapshot");
		struct mimage *im;
		if (!id || !tenant || !snap || strlen(id) >= sizeof(im->id))
			return al_error_set(err, EINVAL, "modal.json: a damaged image record");
		im = calloc(1, sizeof(*im));
		if (!im || !(im->tenant = strdup(tenant)) ||
		    !(im->backend_snapshot = strdup(snap))) {
			if (im)
				free(im->tenant);
			free(im);
			return al_error_set(err, ENOMEM, "out of memory");
		}
		snprintf(im->id, sizeof(im->id), "%s", id);
		im->next = images;
		images = im;
	}
	return 0;
}

static const struct gw_registry_ops registry_ops = {
    .service = GW_MODAL,
    .what = "modal",
    .free = entry_free,
    .save = entry_save,
    .load = entry_load,
    .save_more = save_images,
    .load_more = load_images,
};

int gw_modal_init(struct gw_server *s, struct al_error *err)
{
	server = s;
	return gw_registry_open(&registry, &registry_ops, &s->state, err);
}

/* ---- airlockd ---- */

/* A failed airlockd call as a gRPC status. */
static void fail_backend(struct gw_grpc_call *call, int r, const struct al_error *e,
                         const struct gw_result *res, const char *what)
{
	if (r < 0)
		gw_grpc_fail(call, GW_GRPC_UNAVAILABLE, "%s: airlockd: %s", what, e->msg);
	else if (res->status == 404)
		gw_grpc_fail(call, GW_GRPC_NOT_FOUND, "%s: %s", what, gw_result_message(res));
	else
		gw_grpc_fail(call,
		             res->status < 500 ? GW_GRPC_FAILED_PRECONDITION : GW_GRPC_INTERNAL,
		             "%s: %s", what, gw_result_message(res));
}

/* ---- tenants and objects ---- */

static const char *cp_tenant(struct gw_grpc_call *call)
{
	const char *secret = gw_grpc_metadata(call, "x-modal-token-secret");
	const char *tenant = secret ? gw_keys_tenant(&server->keys, secret) : NULL;

	if (!tenant)
		gw_grpc_fail(call, GW_GRPC_UNAUTHENTICATED,
		             "Unauthenticated: MODAL_TOKEN_SECRET must be a key of this gateway");
	return tenant;
}

static struct mobject *object_find(struct mobject *list, const char *tenant, const char *name,
                                   const char *id)
{
	for (struct mobject *o = list; o; o = o->next)
		if (!strcmp(o->tenant, tenant) &&
		    (name ? o->name && !strcmp(o->name, name) : id && !strcmp(o->id, id)))
			return o;
	return NULL;
}

static struct mobject *object_new(struct mobject **list, const char *prefix, const char *tenant,
                                  const char *name)
{
	struct mobject *o = calloc(1, sizeof(*o));

	if (!o || new_id(o->id, sizeof(o->id), prefix) < 0 || !(o->tenant = strdup(tenant)) ||
	    (name && !(o->name = strdup(name)))) {
		if (o)
			free(o->tenant);
		free(o);
		return NULL;
	}
	o->next = *list;
	*list = o;
	return o;
}

static struct mimage *image_find(const char *id, const char *tenant)
{
	for (struct mimage *im = images; im; im = im->next)
		if (!strcmp(im->id, id) && !strcmp(im->tenant, tenant))
			return im;
	return NULL;
}

/* Whether id names an image the tenant may use (under objects_lock). */
static bool image_known(const char *id, const char *tenant)
{
	return !strcmp(id, BASE_IMAGE) || image_find(id, tenant);
}

/* ---- the control plane ---- */

static void auth_token_get(struct gw_grpc_call *call, const char *tenant, const void *req)
{
	Modal__Client__AuthTokenGetResponse out = MODAL__CLIENT__AUTH_TOKEN_GET_RESPONSE__INIT;
	_cleanup_free_ char *token = make_token(tenant);

	(void)req; /* AuthTokenGetRequest has no fields */
	if (!token)
		return gw_grpc_fail(call, GW_GRPC_INTERNAL, "cannot make a token");
	out.token = token;
	gw_grpc_reply(call, &out.base);
}

static void app_get_or_create(struct gw_grpc_call *call, const char *tenant, const void *req)
{
	const Modal__Client__AppGetOrCreateRequest *rq = req;
	Modal__Client__AppGetOrCreateResponse out = MODAL__CLIENT__APP_GET_OR_CREATE_RESPONSE__INIT;
	struct mobject *app;

	pthread_mutex_lock(&objects_lock);
	app = object_find(apps, tenant, rq->app_name, NULL);
	/* 1: create if missing; 5: ephemeral */
	if (!app && (rq->object_creation_type == 1 || rq->object_creation_type == 5))
		app = object_new(&apps, "ap", tenant, rq->app_name);
	if (app) {
		out.app_id = app->id;
		gw_grpc_reply(call, &out.base);
	} else {
		gw_grpc_fail(call, GW_GRPC_NOT_FOUND, "App '%s' not found", rq->app_name);
	}
	pthread_mutex_unlock(&objects_lock);
}

static void image_get_or_create(struct gw_grpc_call *call, const char *tenant, const void *req)
{
	const Modal__Client__ImageGetOrCreateRequest *rq = req;
	Modal__Client__ImageGetOrCreateResponse out =
	    MODAL__CLIENT__IMAGE_GET_OR_CREATE_RESPONSE__INIT;
	Modal__Client__GenericResult result = MODAL__CLIENT__GENERIC_RESULT__INIT;

	/* Images are not built: a sandbox gets the gateway's rootfs (or a snapshot's). */
	out.image_id = BASE_IMAGE;
	pthread_mutex_lock(&objects_lock);
	if (*rq->existing_image_id && image_known(rq->existing_image_id, tenant))
		out.image_id = rq->existing_image_id;
	result.status = RESULT_SUCCESS;
	out.result = &result;
	gw_grpc_reply(call, &out.base);
	pthread_mutex_unlock(&objects_lock);
}

static void image_from_id(struct gw_grpc_call *call, const char *tenant, const void *req)
{
	const Modal__Client__ImageFromIdRequest *rq = req;
	Modal__Client__ImageFromIdResponse out = MODAL__CLIENT__IMAGE_FROM_ID_RESPONSE__INIT;

	pthread_mutex_lock(&objects_lock);
	if (image_known(rq->image_id, tenant)) {
		out.image_id = rq->image_id;
		gw_grpc_reply(call, &out.base);
	} else {
		gw_grpc_fail(call, GW_GRPC_NOT_FOUND, "Image '%s' not found", rq->image_id);
	}
	pthread_mutex_unlock(&objects_lock);
}

static void image_delete(struct gw_grpc_call *call, const char *tenant, const void *req)
{
	const Modal__Client__ImageDeleteRequest *rq = req;
	Modal__Client__Empty out = MODAL__CLIENT__EMPTY__INIT;
	struct mimage *found = NULL;

	pthread_mutex_lock(&objects_lock);
	for (struct mimage **p = &images; *p; p = &(*p)->next)
		if (!strcmp((*p)->id, rq->image_id) && !strcmp((*p)->tenant, tenant)) {
			found = *p;
			*p = found->next;
			break;
		}
	pthread_mutex_unlock(&objects_lock);
	if (!found) {
		gw_grpc_fail(call, GW_GRPC_NOT_FOUND, "Image '%s' not found", rq->image_id);
	} else {
		if (found->backend_snapshot)
			gw_backend_discard_snapshot(&server->backend, found->backend_snapshot);
		free(found->backend_snapshot);
		free(found->tenant);
		al_buf_free(&found->tar);
		free(found);
		gw_registry_save(&registry);
		gw_grpc_reply(call, &out.base);
	}
}

static void secret_get_or_create(struct gw_grpc_call *call, const char *tenant, const void *req)
{
	const Modal__Client__SecretGetOrCreateRequest *rq = req;
	Modal__Client__SecretGetOrCreateResponse out =
	    MODAL__CLIENT__SECRET_GET_OR_CREATE_RESPONSE__INIT;
	struct mobject *sec = NULL;

	pthread_mutex_lock(&objects_lock);
	if (*rq->deployment_name)
		sec = object_find(secrets, tenant, rq->deployment_name, NULL);
	/* 5: ephemeral (the SDK's env of a sandbox or command); 1, 2: create (or overwrite) */
	if (!sec && rq->object_creation_type != 0)
		sec = object_new(&secrets, "st", tenant,
		                 *rq->deployment_name ? rq->deployment_name : NULL);
	if (sec && rq->n_env_dict) {
		cJSON_Delete(sec->env);
		sec->env = cJSON_CreateObject();
		for (size_t i = 0; i < rq->n_env_dict; i++)
			cJSON_AddStringToObject(sec->env, rq->env_dict[i]->key,
			                        rq->env_dict[i]->value);
	}
	if (sec) {
		out.secret_id = sec->id;
		gw_grpc_reply(call, &out.base);
	} else {
		gw_grpc_fail(call, GW_GRPC_NOT_FOUND, "Secret '%s' not found", rq->deployment_name);
	}
	pthread_mutex_unlock(&objects_lock);
}

/* The environment of the tenant's secrets, added to env; false if one is unknown. */
static bool add_secrets(cJSON *env, const char *tenant, char **ids, size_t n, const char **bad)
{
	bool ok = true;

	pthread_mutex_lock(&objects_lock);
	for (size_t i = 0; i < n && ok; i++) {
		const struct mobject *sec = object_find(secrets, tenant, NULL, ids[i]);
		const cJSON *kv;
		if (!sec) {
			*bad = ids[i];
			ok = false;
			break;
		}
		cJSON_ArrayForEach(kv, sec->env)
		{
			cJSON_DeleteItemFromObjectCaseSensitive(env, kv->string);
			cJSON_AddItemToObject(env, kv->string, cJSON_Duplicate(kv, 1));
		}
	}
	pthread_mutex_unlock(&objects_lock);
	return ok;
}

/* A secret's value under one of names, or NULL. */
static const char *secret_value(const cJSON *env, const char *a, const char *b)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(env, a);

	if (!cJSON_IsString(v) && b)
		v = cJSON_GetObjectItemCaseSensitive(env, b);
	return cJSON_IsString(v) && v->valuestring[0] ? v->valuestring : NULL;
}

/*
 * Modal's cloud bucket mounts (Sandbox.cloud_bucket_mounts) as airlockd's bucket mount
 * entries: airlockd mounts each with rclone on the host and binds it in, so the keys
 * (the mount's secret, never the sandbox's env) stay out of the sandbox, as on Modal.
 * Adds "manifest" and "mount_credentials" to the create body; a gRPC status otherwise.
 */
static int add_bucket_mounts(cJSON *body, const char *tenant, const Modal__Client__Sandbox *def,
                             char *msg, size_t size)
{
	_cleanup_cjson_ cJSON *manifest = cJSON_CreateObject();
	_cleanup_(gw_cjson_wipep) cJSON *creds = cJSON_CreateObject();
	cJSON *entries = cJSON_AddObjectToObject(manifest, "entries");
	int status = GW_GRPC_OK;

	if (!manifest || !creds || !entries || !cJSON_AddNumberToObject(manifest, "version", 1)) {
		snprintf(msg, size, "out of memory");
		return GW_GRPC_INTERNAL;
	}
	for (size_t i = 0; i < def->n_cloud_bucket_mounts && status == GW_GRPC_OK; i++) {
		const Modal__Client__CloudBucketMount *m = def->cloud_bucket_mounts[i];
		static const char *const types[] = {NULL, "s3_mount", "r2_mount", "gcs_mount"};
		cJSON *e = cJSON_CreateObject();
		cJSON *c = cJSON_CreateObject();
		char key[32];
		_cleanup_free_ char *prefix = NULL;

		snprintf(key, sizeof(key), "modal-bucket-%zu", i);
		cJSON_AddItemToObject(entries, key, e);
		cJSON_AddItemToObject(creds, key, c);
		if (!e || !c) {
			snprintf(msg, size, "out of memory");
			return GW_GRPC_INTERNAL;
		}
		if (m->bucket_type < 1 || m->bucket_type > 3) {
			snprintf(msg, size, "cloud bucket mount %s: unknown bucket type %d",
			         m->bucket_name, m->bucket_type);
			return GW_GRPC_INVALID_ARGUMENT;
		}
		if (!*m->bucket_name || m->mount_path[0] != '/') {
			snprintf(
			    msg, size,
			    "cloud bucket mount needs a bucket name and an absolute mount path");
			return GW_GRPC_INVALID_ARGUMENT;
		}
		/* Not offered: what airlockd's rclone mount has no equivalent for. */
		if (m->requester_pays || *m->oidc_auth_role_arn) {
			snprintf(msg, size,
			         "cloud bucket mount %s: %s is not supported by airlock-gateway",
			         m->bucket_name,
			         m->requester_pays ? "requester pays" : "an OIDC role");
			return GW_GRPC_UNIMPLEMENTED;
		}
		cJSON_AddStringToObject(e, "type", types[m->bucket_type]);
		cJSON_AddStringToObject(e, "bucket", m->bucket_name);
		cJSON_AddStringToObject(e, "mountPath", m->mount_path);
		cJSON_AddBoolToObject(e, "readOnly", m->read_only);
		if (*m->bucket_endpoint_url)
			cJSON_AddStringToObject(e, "endpointUrl", m->bucket_endpoint_url);
		else if (m->bucket_type == 3)
			cJSON_AddStringToObject(e, "endpointUrl", "https://storage.googleapis.com");
		/* Modal's prefix ends in '/' (the SDK insists); airlockd's is a path. */
		if (*m->key_prefix) {
			prefix = strdup(m->key_prefix);
			if (!prefix) {
				snprintf(msg, size, "out of memory");
				return GW_GRPC_INTERNAL;
			}
			for (size_t n = strlen(prefix); n > 0 && prefix[n - 1] == '/'; n--)
				prefix[n - 1] = '\0';
			if (*prefix)
				cJSON_AddStringToObject(e, "prefix", prefix);
		}
		if (!*m->credentials_secret_id)
			continue; /* a public bucket: mounted without keys */
		pthread_mutex_lock(&objects_lock);
		{
			const struct mobject *sec =
			    object_find(secrets, tenant, NULL, m->credentials_secret_id);
			const char *id = NULL, *key_secret = NULL, *token = NULL;
			if (sec && m->bucket_type == 3) {
				id = secret_value(sec->env, "GOOGLE_ACCESS_KEY_ID", NULL);
				key_secret =
				    secret_value(sec->env, "GOOGLE_ACCESS_KEY_SECRET", NULL);
			} else if (sec) {
				id = secret_value(sec->env, "AWS_ACCESS_KEY_ID", NULL);
				key_secret = secret_value(sec->env, "AWS_SECRET_ACCESS_KEY", NULL);
				if (m->bucket_type == 1)
					token = secret_value(sec->env, "AWS_SESSION_TOKEN", NULL);
			}
			if (!sec) {
				snprintf(msg, size, "Secret '%s' not found",
				         m->credentials_secret_id);
				status = GW_GRPC_NOT_FOUND;
			} else if (!id || !key_secret) {
				snprintf(msg, size, "cloud bucket mount %s: secret %s lacks %s",
				         m->bucket_name, m->credentials_secret_id,
				         m->bucket_type == 3
				             ? "GOOGLE_ACCESS_KEY_ID and GOOGLE_ACCESS_KEY_SECRET"
				             : "AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY");
				status = GW_GRPC_FAILED_PRECONDITION;
			} else {
				cJSON_AddStringToObject(
				    c, m->bucket_type == 3 ? "accessId" : "accessKeyId", id);
				cJSON_AddStringToObject(c, "secretAccessKey", key_secret);
				if (token)
					cJSON_AddStringToObject(c, "sessionToken", token);
			}
		}
		pthread_mutex_unlock(&objects_lock);
	}
	if (status != GW_GRPC_OK)
		return status;
	/* Entries without keys have none to send (airlockd refuses an empty object). */
	for (cJSON *c = creds->child, *next; c; c = next) {
		next = c->next;
		if (!c->child)
			cJSON_DeleteItemFromObjectCaseSensitive(creds, c->string);
	}
	cJSON_AddItemToObject(body, "manifest", TAKE_PTR(manifest));
	cJSON_AddItemToObject(body, "mount_credentials", TAKE_PTR(creds));
	return GW_GRPC_OK;
}

static void sandbox_create(struct gw_grpc_call *call, const char *tenant, const void *req)
{
	const Modal__Client__SandboxCreateRequest *rq = req;
	Modal__Client__SandboxCreateResponse out = MODAL__CLIENT__SANDBOX_CREATE_RESPONSE__INIT;
	/* It may hold a bucket mount's keys: zeroed before it is freed. */
	_cleanup_(gw_cjson_wipep) cJSON *body = cJSON_CreateObject();
	_cleanup_(gw_result_freep) struct gw_result res = {0};
	_cleanup_(releasep) struct msb *sb = NULL;
	_cleanup_free_ char *snapshot = NULL;
	struct al_error e = AL_ERROR_INIT;
	const Modal__Client__Sandbox *def;
	const char *bad = NULL;
	char name[64];
	int r;

	def = rq->definition;
	sb = msb_new(tenant);
	if (!sb || !def || new_id(sb->id, sizeof(sb->id), "sb") < 0 ||
	    !(sb->env = cJSON_CreateObject())) {
		gw_grpc_fail(call, def ? GW_GRPC_INTERNAL : GW_GRPC_INVALID_ARGUMENT,
		             def ? "cannot make a sandbox" : "no sandbox definition");
		return;
	}
	snprintf(sb->task_id, sizeof(sb->task_id), "ta-%s", sb->id + 3);
	if (!add_secrets(sb->env, tenant, def->secret_ids, def->n_secret_ids, &bad)) {
		gw_grpc_fail(call, GW_GRPC_NOT_FOUND, "Secret '%s' not found", bad);
		return;
	}
	pthread_mutex_lock(&objects_lock);
	if (*def->image_id && strcmp(def->image_id, BASE_IMAGE)) {
		const struct mimage *im = image_find(def->image_id, tenant);
		if (im && im->kind == IMAGE_SNAPSHOT)
			snapshot = strdup(im->backend_snapshot);
		if (!snapshot)
			bad = def->image_id;
	}
	pthread_mutex_unlock(&objects_lock);
	if (bad) {
		gw_grpc_fail(call, GW_GRPC_NOT_FOUND, "Image '%s' not found", bad);
		return;
	}
	snprintf(name, sizeof(name), "modal-%s", sb->id + 3);
	cJSON_AddStringToObject(body, "name", name);
	if (snapshot) {
		cJSON_AddStringToObject(body, "snapshot", snapshot);
	} else if (server->image) {
		cJSON_AddStringToObject(body, "image", server->image);
	} else if (server->rootfs) {
		cJSON_AddStringToObject(body, "rootfs", server->rootfs);
	}
	if (def->n_cloud_bucket_mounts) {
		char msg[256];
		int status;
		if ((status = add_bucket_mounts(body, tenant, def, msg, sizeof(msg))) !=
		    GW_GRPC_OK) {
			gw_grpc_fail(call, status, "%s", msg);
			return;
		}
	}
	if (snapshot) {
		/* A snapshot image is files only: the new sandbox has its own definition's
		 * mounts, not those of the sandbox the snapshot was taken of (airlockd
		 * would mount those again, without their keys). */
		cJSON *m = cJSON_DetachItemFromObjectCaseSensitive(body, "manifest");
		cJSON *entries = m ? cJSON_DetachItemFromObjectCaseSensitive(m, "entries") : NULL;
		cJSON_Delete(m);
		if (!entries && !(entries = cJSON_CreateObject())) {
			gw_grpc_fail(call, GW_GRPC_INTERNAL, "out of memory");
			return;
		}
		cJSON_AddItemToObject(body, "mounts", entries);
	}
	/* Modal's lifetime (the SDK sends 300 s unless told) and idle timeout. */
	if (def->timeout_secs)
		cJSON_AddNumberToObject(body, "ttl", def->timeout_secs);
	if (def->idle_timeout_secs)
		cJSON_AddNumberToObject(body, "idle_timeout", def->idle_timeout_secs);
	r = gw_backend_call(&server->backend, "POST", "/v1/sandboxes?view=summary", body, NULL, 0,
	                    0, &res, &e);
	if (r < 0 || res.status != 201 || !al_json_str(res.json, "id")) {
		fail_backend(call, r, &e, &res, "create sandbox");
		return;
	}
	sb->backend_id = strdup(al_json_str(res.json, "id"));
	sb->router_token = make_token(sb->task_id);
	if (def->workdir && *def->workdir)
		sb->workdir = strdup(def->workdir);
	if (!sb->backend_id || !sb->router_token ||
	    (def->workdir && *def->workdir && !sb->workdir)) {
		if (sb->backend_id)
			gw_backend_discard(&server->backend, sb->backend_id);
		gw_grpc_fail(call, GW_GRPC_INTERNAL, "out of memory");
		return;
	}
	if (sb->workdir) {
		/* Commands start there: it must exist. */
		_cleanup_(gw_result_freep) struct gw_result mk = {0};
		_cleanup_free_ char *q = gw_path_query("/dirs", sb->workdir, "&parents=1");
		if (q)
			gw_sandbox_call(&server->backend, "POST", sb->backend_id, q, NULL, NULL, 0,
			                0, &mk, &e);
	}
	gw_registry_add(&registry, &sb->entry);
	log_info("modal: sandbox %s is airlockd's %s", sb->id, sb->backend_id);
	out.sandbox_id = sb->id;
	gw_grpc_reply(call, &out.base);
}

static struct msb *sandbox_of(struct gw_grpc_call *call, const char *id, const char *tenant)
{
	struct msb *sb = (struct msb *)gw_registry_find(&registry, id, tenant);

	if (!sb || strcmp(sb->id, id)) {
		if (sb)
			gw_registry_release(&registry, &sb->entry);
		gw_grpc_fail(call, GW_GRPC_NOT_FOUND, "Sandbox with id: '%s' not found", id);
		return NULL;
	}
	return sb;
}

/* Its result once it ended (status 0 while it runs); airlockd asked when check is set:
 * a sandbox whose lifetime is up is gone there. */
static int sandbox_result(struct msb *sb, bool check)
{
	int status = 0;

	if (check) {
		_cleanup_(gw_result_freep) struct gw_result res = {0};
		struct al_error e = AL_ERROR_INIT;
		bool running;
		gw_registry_lock(&registry);
		running = !sb->terminated;
		gw_registry_unlock(&registry);
		if (running &&
		    gw_sandbox_call(&server->backend, "GET", sb->backend_id, "?view=summary", NULL,
		                    NULL, 0, 0, &res, &e) == 0 &&
		    res.status == 404) {
			gw_registry_lock(&registry);
			sb->terminated = true;
			sb->result_status = RESULT_TIMEOUT;
			gw_registry_unlock(&registry);
			gw_registry_save(&registry);
		}
	}
	gw_registry_lock(&registry);
	if (sb->terminated)
		status = sb->result_status;
	gw_registry_unlock(&registry);
	return status;
}

static void sandbox_get_task_id(struct gw_grpc_call *call, const char *tenant, const void *req)
{
	const Modal__Client__SandboxGetTaskIdRequest *rq = req;
	Modal__Client__SandboxGetTaskIdResponse out =
	    MODAL__CLIENT__SANDBOX_GET_TASK_ID_RESPONSE__INIT;
	Modal__Client__GenericResult result = MODAL__CLIENT__GENERIC_RESULT__INIT;
	_cleanup_(releasep) struct msb *sb = NULL;

	sb = sandbox_of(call, rq->sandbox_id, tenant);
	if (sb) {
		out.task_id = sb->task_id;
		result.status = sandbox_result(sb, false);
		if (result.status)
			out.task_result = &result;
		gw_grpc_reply(call, &out.base);
	}
}

static void task_get_command_router_access(struct gw_grpc_call *call, const char *tenant,
                                           const void *req)
{
	const Modal__Client__TaskGetCommandRouterAccessRequest *rq = req;
	Modal__Client__TaskGetCommandRouterAccessResponse out =
	    MODAL__CLIENT__TASK_GET_COMMAND_ROUTER_ACCESS_RESPONSE__INIT;
	_cleanup_(releasep) struct msb *sb = NULL;
	_cleanup_free_ char *url = NULL;
	const char *authority = gw_grpc_authority(call);

	sb = (struct msb *)gw_registry_find(&registry, rq->task_id, tenant);
	if (!sb || strcmp(sb->task_id, rq->task_id)) {
		gw_grpc_fail(call, GW_GRPC_NOT_FOUND, "Task '%s' not found", rq->task_id);
	} else if (asprintf(&url, "https://%s", authority ? authority : server->self_url + 7) < 0) {
		gw_grpc_fail(call, GW_GRPC_INTERNAL, "out of memory");
	} else {
		out.jwt = sb->router_token;
		out.url = url;
		gw_grpc_reply(call, &out.base);
	}
}

static void sandbox_wait(struct gw_grpc_call *call, const char *tenant, const void *req)
{
	const Modal__Client__SandboxWaitRequest *rq = req;
	Modal__Client__SandboxWaitResponse out = MODAL__CLIENT__SANDBOX_WAIT_RESPONSE__INIT;
	Modal__Client__GenericResult result = MODAL__CLIENT__GENERIC_RESULT__INIT;
	_cleanup_(releasep) struct msb *sb = NULL;
	uint64_t until;

	sb = sandbox_of(call, rq->sandbox_id, tenant);
	if (!sb)
		return;
	/* The sandbox runs until terminated (its entrypoint is not run): a wait with a
	 * timeout holds that long, at most HOLD_MS, then answers "still running". */
	until = al_now_ms() + (uint64_t)(rq->timeout > 0 ? rq->timeout * 1000 : 0);
	if (until > al_now_ms() + HOLD_MS)
		until = al_now_ms() + HOLD_MS;
	for (;;) {
		result.status = sandbox_result(sb, true);
		if (result.status || al_now_ms() >= until || gw_grpc_gone(call))
			break;
		struct timespec ts = {0, 250 * 1000000L};
		nanosleep(&ts, NULL);
	}
	if (result.status) {
		result.exitcode = result.status == RESULT_TERMINATED ? 137 : 0;
		out.result = &result;
	}
	gw_grpc_reply(call, &out.base);
}

static void sandbox_terminate(struct gw_grpc_call *call, const char *tenant, const void *req)
{
	const Modal__Client__SandboxTerminateRequest *rq = req;
	Modal__Client__SandboxTerminateResponse out =
	    MODAL__CLIENT__SANDBOX_TERMINATE_RESPONSE__INIT;
	_cleanup_(releasep) struct msb *sb = NULL;
	bool was;

	sb = sandbox_of(call, rq->sandbox_id, tenant);
	if (sb) {
		gw_registry_lock(&registry);
		was = sb->terminated;
		if (!was) {
			sb->terminated = true;
			sb->result_status = RESULT_TERMINATED;
		}
		gw_registry_unlock(&registry);
		/* Gone from airlockd; the gateway keeps its result for SandboxWait until it
		 * stops. */
		if (!was) {
			gw_backend_discard(&server->backend, sb->backend_id);
			gw_registry_save(&registry);
			log_info("modal: sandbox %s terminated", sb->id);
		}
		gw_grpc_reply(call, &out.base);
	}
}

/* ---- the command router: commands ---- */

/* Whether the token given is the one expected, in time independent of where they differ. */
static bool same_token(const char *given, const char *expected)
{
	size_t n = strlen(expected), m = strlen(given);
	unsigned char diff = n != m;

	for (size_t i = 0; i < n; i++)
		diff |= (unsigned char)(expected[i] ^ (i < m ? given[i] : 0));
	return diff == 0;
}

/* The sandbox of a router call: its task id and the router token given for it. */
static struct msb *router_sandbox(struct gw_grpc_call *call, const char *task_id)
{
	const char *auth = gw_grpc_metadata(call, "authorization");
	struct msb *sb = (struct msb *)gw_registry_find(&registry, task_id, NULL);
	bool ok;

	if (!sb || strcmp(sb->task_id, task_id)) {
		if (sb)
			gw_registry_release(&registry, &sb->entry);
		gw_grpc_fail(call, GW_GRPC_NOT_FOUND, "Task '%s' not found", task_id);
		return NULL;
	}
	ok = auth && !strncasecmp(auth, "Bearer ", 7) && same_token(auth + 7, sb->router_token);
	if (!ok) {
		gw_registry_release(&registry, &sb->entry);
		gw_grpc_fail(call, GW_GRPC_UNAUTHENTICATED,
		             "the command router token is missing or not this task's");
		return NULL;
	}
	if (sandbox_result(sb, false)) {
		gw_registry_release(&registry, &sb->entry);
		gw_grpc_fail(call, GW_GRPC_NOT_FOUND, "Task '%s' has ended", task_id);
		return NULL;
	}
	return sb;
}

/* The command of that exec id, held for the caller until exec_release. */
static struct mexec *exec_find(struct msb *sb, const char *id)
{
	struct mexec *found = NULL;

	pthread_mutex_lock(&sb->exec_lock);
	for (struct mexec *x = sb->execs; x && !found; x = x->next)
		if (!strcmp(x->id, id))
			found = x;
	if (found)
		found->users++;
	pthread_mutex_unlock(&sb->exec_lock);
	return found;
}

static void exec_release(struct msb *sb, struct mexec *x)
{
	pthread_mutex_lock(&sb->exec_lock);
	x->users--;
	pthread_mutex_unlock(&sb->exec_lock);
}

/* A held command, given back as it goes out of scope. */
struct exec_ref {
	struct msb *sb;
	struct mexec *x;
};

static void exec_refp(struct exec_ref *ref)
{
	if (ref->x)
		exec_release(ref->sb, ref->x);
}

/* Keep the newest finished commands only (running or held ones all stay). */
static void exec_trim(struct msb *sb)
{
	int kept = 0;

	pthread_mutex_lock(&sb->exec_lock);
	for (struct mexec **p = &sb->execs; *p;) {
		struct mexec *x = *p;
		bool done = false;
		if (!x->users && pthread_mutex_trylock(&x->lock) == 0) {
			done = x->done;
			pthread_mutex_unlock(&x->lock);
		}
		if (done && ++kept > KEEP_EXECS) {
			*p = x->next;
			mexec_free(x);
			continue;
		}
		p = &x->next;
	}
	pthread_mutex_unlock(&sb->exec_lock);
}

static int append_b64(struct al_buf *b, const char *text)
{
	_cleanup_free_ char *raw = NULL;
	struct al_error e = AL_ERROR_INIT;
	size_t len;

	if (!text || !*text)
		return 0;
	if (al_base64_decode(text, &raw, &len, &e) < 0)
		return -EIO;
	return al_buf_append(b, raw, len);
}

/* airlockd's answer about x's process taken in (under x->lock). */
static void take_result(struct mexec *x, const cJSON *res)
{
	const cJSON *code = cJSON_GetObjectItemCaseSensitive(res, "exit_code");
	const cJSON *sig = cJSON_GetObjectItemCaseSensitive(res, "signal");

	if (x->keep_out)
		append_b64(&x->out, al_json_str(res, "stdout"));
	if (x->keep_err)
		append_b64(&x->err, al_json_str(res, "stderr"));
	if (cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(res, "running"))) {
		if (!x->process_id && al_json_str(res, "process_id"))
			x->process_id = strdup(al_json_str(res, "process_id"));
		return;
	}
	x->done = true;
	if (cJSON_IsNumber(code)) {
		x->code = code->valueint;
	} else if (cJSON_IsString(sig)) {
		static const char *const names[] = {"",     "HUP",  "INT", "QUIT", "ILL",
		                                    "TRAP", "ABRT", "BUS", "FPE",  "KILL"};
		x->signal = 9;
		for (int i = 1; i < (int)(sizeof(names) / sizeof(*names)); i++)
			if (strstr(sig->valuestring, names[i]))
				x->signal = i;
	} else {
		x->signal = (int)al_json_num(res, "signal", 9);
	}
	free(x->process_id);
	x->process_id = NULL;
}

static void finish_exec(struct mexec *x, int code)
{
	x->done = true;
	x->code = code;
	pthread_cond_broadcast(&x->changed);
}

/* Wait up to wait_ms for news of x (its end or more output): one thread polls airlockd,
 * the others wait for it.  Under x->lock. */
static void exec_pump(struct msb *sb, struct mexec *x, long wait_ms)
{
	_cleanup_(gw_result_freep) struct gw_result res = {0};
	_cleanup_free_ char *eid = NULL;
	_cleanup_free_ char *suffix = NULL;
	struct al_error e = AL_ERROR_INIT;
	int r;

	if (x->done)
		return;
	if (x->polling || !x->process_id) {
		struct timespec ts;
		clock_gettime(CLOCK_REALTIME, &ts);
		ts.tv_sec += wait_ms / 1000;
		ts.tv_nsec += (wait_ms % 1000) * 1000000L;
		if (ts.tv_nsec >= 1000000000L) {
			ts.tv_sec++;
			ts.tv_nsec -= 1000000000L;
		}
		pthread_cond_timedwait(&x->changed, &x->lock, &ts);
		return;
	}
	x->polling = true;
	pthread_mutex_unlock(&x->lock);
	eid = gw_escape(x->process_id);
	if (eid &&
	    asprintf(&suffix, "/processes/%s?yield_ms=%ld&encoding=base64", eid, wait_ms) >= 0)
		r = gw_sandbox_call(&server->backend, "GET", sb->backend_id, suffix, NULL, NULL, 0,
		                    wait_ms + 60000, &res, &e);
	else
		r = -ENOMEM;
	pthread_mutex_lock(&x->lock);
	x->polling = false;
	if (r == 0 && res.status == 200) {
		take_result(x, res.json);
	} else if (r == 0 && res.status == 404) {
		/* airlockd forgot it (the sandbox went, or airlockd restarted). */
		x->done = true;
		x->code = 137;
	} else {
		log_warn("modal: poll of %s: %s", x->id, r < 0 ? e.msg : gw_result_message(&res));
	}
	pthread_cond_broadcast(&x->changed);
}

/* The tool's failure as the SDK reads it: exit status 1 and a JSON object on stderr. */
static void fs_error(struct mexec *x, const char *kind, const char *path, const char *detail)
{
	_cleanup_cjson_ cJSON *o = cJSON_CreateObject();
	_cleanup_free_ char *text = NULL;
	char msg[512];

	snprintf(msg, sizeof(msg), "%s: %s", kind, path);
	cJSON_AddStringToObject(o, "error_kind", kind);
	cJSON_AddStringToObject(o, "message", msg);
	cJSON_AddStringToObject(o, "detail", detail ? detail : "");
	text = cJSON_PrintUnformatted(o);
	if (text)
		al_buf_append(&x->err, text, strlen(text));
	finish_exec(x, 1);
}

/* An airlockd file error as the tool's error kind. */
static void fs_backend_error(struct mexec *x, int r, const struct al_error *e,
                             const struct gw_result *res, const char *path, const char *on400,
                             const char *on409)
{
	const char *kind = "Other";

	if (r < 0)
		return fs_error(x, "Other", path, e->msg);
	if (res->status == 404)
		kind = "NotFound";
	else if (res->status == 403)
		kind = "PermissionDenied";
	else if (res->status == 400 && on400)
		kind = on400;
	else if (res->status == 409 && on409)
		kind = on409;
	else if (res->status == 413)
		kind = "FileTooLarge";
	fs_error(x, kind, path, gw_result_message(res));
}

static const char *entry_type(const char *airlock_type)
{
	if (!strcmp(airlock_type, "dir"))
		return "directory";
	if (!strcmp(airlock_type, "symlink"))
		return "symlink";
	return "file";
}

/* The tool's FileInfo of an airlockd directory entry. */
static cJSON *file_info(const char *dir, const cJSON *ent)
{
	cJSON *o = cJSON_CreateObject();
	const char *name = al_json_str(ent, "name");
	const char *mode = al_json_str(ent, "mode");
	long m = mode ? strtol(mode, NULL, 8) : 0;
	char path[4096], perms[10];

	snprintf(path, sizeof(path), "%s%s%s", dir, dir[strlen(dir) - 1] == '/' ? "" : "/", name);
	for (int i = 0; i < 9; i++)
		perms[i] = (m >> (8 - i)) & 1 ? "rwxrwxrwx"[i] : '-';
	perms[9] = '\0';
	cJSON_AddStringToObject(o, "name", name);
	cJSON_AddStringToObject(o, "path", path);
	cJSON_AddStringToObject(o, "type", entry_type(al_json_str(ent, "type") ?: "file"));
	cJSON_AddNumberToObject(o, "size", al_json_num(ent, "size", 0));
	cJSON_AddNumberToObject(o, "mode", (double)m);
	cJSON_AddStringToObject(o, "permissions", perms);
	cJSON_AddStringToObject(o, "owner", "root");
	cJSON_AddStringToObject(o, "group", "root");
	cJSON_AddNumberToObject(o, "modified_time", al_json_num(ent, "mtime", 0));
	cJSON_AddNullToObject(o, "symlink_target");
	return o;
}

static void fs_out_json(struct mexec *x, cJSON *j)
{
	_cleanup_free_ char *text = cJSON_PrintUnformatted(j);

	if (text)
		al_buf_append(&x->out, text, strlen(text));
	finish_exec(x, text ? 0 : 1);
}

static void fs_list(struct msb *sb, struct mexec *x, const char *path, const char *only)
{
	_cleanup_(gw_result_freep) struct gw_result res = {0};
	_cleanup_free_ char *q = gw_path_query("/dirs", path, "");
	_cleanup_cjson_ cJSON *arr = cJSON_CreateArray();
	struct al_error e = AL_ERROR_INIT;
	const cJSON *ent;
	int r;

	if (!q || !arr)
		return fs_error(x, "Other", path, "out of memory");
	r = gw_sandbox_call(&server->backend, "GET", sb->backend_id, q, NULL, NULL, 0, 0, &res, &e);
	if (r < 0 || res.status != 200)
		return fs_backend_error(x, r, &e, &res, path, "NotDirectory", NULL);
	cJSON_ArrayForEach(ent, cJSON_GetObjectItemCaseSensitive(res.json, "entries"))
	{
		if (only) {
			if (al_json_str(ent, "name") && !strcmp(al_json_str(ent, "name"), only)) {
				_cleanup_cjson_ cJSON *one = file_info(path, ent);
				return fs_out_json(x, one);
			}
			continue;
		}
		cJSON_AddItemToArray(arr, file_info(path, ent));
	}
	if (only)
		return fs_error(x, "NotFound", only, "no such file or directory");
	fs_out_json(x, arr);
}

static void fs_stat(struct msb *sb, struct mexec *x, const char *path)
{
	_cleanup_free_ char *dir = strdup(path);
	char *slash = dir ? strrchr(dir, '/') : NULL;

	if (!slash)
		return fs_error(x, "Other", path, "not an absolute path");
	if (!slash[1] && slash == dir) {
		_cleanup_cjson_ cJSON *ent = cJSON_CreateObject();
		cJSON_AddStringToObject(ent, "name", "/");
		cJSON_AddStringToObject(ent, "type", "dir");
		cJSON_AddStringToObject(ent, "mode", "0755");
		return fs_out_json(x, ent);
	}
	*slash = '\0';
	fs_list(sb, x, *dir ? dir : "/", slash + 1);
}

/* One modal-sandbox-fs-tools command, done now (WriteFile waits for its stdin). */
static void fs_tool(struct msb *sb, struct mexec *x, const char *arg)
{
	_cleanup_cjson_ cJSON *j = cJSON_Parse(arg ? arg : "");
	_cleanup_(gw_result_freep) struct gw_result res = {0};
	_cleanup_free_ char *q = NULL;
	struct al_error e = AL_ERROR_INIT;
	/* {"ReadFile": {...}}: an object whose one member names the tool (an
	 * array's member has no name). */
	const cJSON *op = cJSON_IsObject(j) && j->child && j->child->string ? j->child : NULL;
	const char *path = op ? al_json_str(op, "path") : NULL;
	int r;

	if (!op || !path)
		return fs_error(x, "InvalidArgument", arg ? arg : "", "not a tool command");
	if (!strcmp(op->string, "ReadFile")) {
		q = gw_path_query("/files", path, "");
		r = gw_sandbox_call(&server->backend, "GET", sb->backend_id, q, NULL, NULL, 0, 0,
		                    &res, &e);
		if (r < 0 || res.status != 200)
			return fs_backend_error(x, r, &e, &res, path, "IsDirectory", NULL);
		al_buf_append(&x->out, res.body.data, res.body.len);
		return finish_exec(x, 0);
	}
	if (!strcmp(op->string, "WriteFile")) {
		x->write_path = strdup(path);
		if (!x->write_path)
			fs_error(x, "Other", path, "out of memory");
		return;
	}
	if (!strcmp(op->string, "MakeDirectory")) {
		bool parents = !cJSON_IsFalse(cJSON_GetObjectItemCaseSensitive(op, "parents"));
		q = gw_path_query("/dirs", path, parents ? "&parents=1" : "");
		r = gw_sandbox_call(&server->backend, "POST", sb->backend_id, q, NULL, NULL, 0, 0,
		                    &res, &e);
		if (r == 0 && (res.status < 300 || (res.status == 409 && parents)))
			return finish_exec(x, 0);
		return fs_backend_error(x, r, &e, &res, path, "NotDirectory", "PathAlreadyExists");
	}
	if (!strcmp(op->string, "Remove")) {
		bool recursive = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(op, "recursive"));
		if (!recursive) {
			/* airlockd removes a directory only with its contents: an empty one
			 * or a file, as rmdir(2) and unlink(2) would. */
			_cleanup_(gw_result_freep) struct gw_result dir = {0};
			_cleanup_free_ char *dq = gw_path_query("/dirs", path, "");
			if (dq &&
			    gw_sandbox_call(&server->backend, "GET", sb->backend_id, dq, NULL, NULL,
			                    0, 0, &dir, &e) == 0 &&
			    dir.status == 200 &&
			    cJSON_GetArraySize(
			        cJSON_GetObjectItemCaseSensitive(dir.json, "entries")) > 0)
				return fs_error(x, "DirectoryNotEmpty", path,
				                "the directory is not empty");
		}
		q = gw_path_query("/files", path, "&recursive=1");
		r = gw_sandbox_call(&server->backend, "DELETE", sb->backend_id, q, NULL, NULL, 0, 0,
		                    &res, &e);
		if (r == 0 && res.status < 300)
			return finish_exec(x, 0);
		return fs_backend_error(x, r, &e, &res, path, NULL, "DirectoryNotEmpty");
	}
	if (!strcmp(op->string, "ListFiles"))
		return fs_list(sb, x, path, NULL);
	if (!strcmp(op->string, "Stat"))
		return fs_stat(sb, x, path);
	fs_error(x, "NotSupported", path, op->string);
}

/* The end of a WriteFile's input: the file written (under x->lock). */
static void fs_write(struct msb *sb, struct mexec *x)
{
	_cleanup_(gw_result_freep) struct gw_result res = {0};
	_cleanup_free_ char *q = gw_path_query("/files", x->write_path, "&parents=1");
	struct al_error e = AL_ERROR_INIT;
	int r;

	if (!q)
		return fs_error(x, "Other", x->write_path, "out of memory");
	r = gw_sandbox_call(&server->backend, "PUT", sb->backend_id, q, NULL,
	                    x->write_data.data ? x->write_data.data : "", x->write_data.len, 0,
	                    &res, &e);
	al_buf_free(&x->write_data);
	if (r == 0 && res.status < 300)
		return finish_exec(x, 0);
	fs_backend_error(x, r, &e, &res, x->write_path, "IsDirectory", NULL);
}

static void task_exec_start(struct gw_grpc_call *call, const void *req)
{
	const Modal__TaskCommandRouter__TaskExecStartRequest *rq = req;
	Modal__TaskCommandRouter__TaskExecStartResponse out =
	    MODAL__TASK_COMMAND_ROUTER__TASK_EXEC_START_RESPONSE__INIT;
	_cleanup_(releasep) struct msb *sb = NULL;
	_cleanup_cjson_ cJSON *body = cJSON_CreateObject();
	_cleanup_(gw_result_freep) struct gw_result res = {0};
	struct al_error e = AL_ERROR_INIT;
	const char *bad = NULL;
	struct mexec *x;
	cJSON *argv, *env;
	int r;

	sb = router_sandbox(call, rq->task_id);
	if (!sb)
		return;
	x = exec_find(sb, rq->exec_id);
	if (x) { /* a retry of a start that got through */
		exec_release(sb, x);
		gw_grpc_reply(call, &out.base);
		return;
	}
	if (!rq->n_command_args || strlen(rq->exec_id) >= sizeof(x->id)) {
		gw_grpc_fail(call, GW_GRPC_INVALID_ARGUMENT, "no command, or an exec id too long");
		return;
	}
	x = calloc(1, sizeof(*x));
	if (!x) {
		gw_grpc_fail(call, GW_GRPC_RESOURCE_EXHAUSTED, "out of memory");
		return;
	}
	pthread_mutex_init(&x->lock, NULL);
	pthread_cond_init(&x->changed, NULL);
	pthread_mutex_init(&x->stdin_lock, NULL);
	snprintf(x->id, sizeof(x->id), "%s", rq->exec_id);
	x->keep_out = rq->stdout_config == 1;
	x->keep_err = rq->stderr_config == 1;
	if (!strcmp(rq->command_args[0], FS_TOOLS)) {
		fs_tool(sb, x, rq->n_command_args > 1 ? rq->command_args[1] : NULL);
	} else {
		argv = cJSON_AddArrayToObject(body, "argv");
		for (size_t i = 0; i < rq->n_command_args; i++)
			cJSON_AddItemToArray(argv, cJSON_CreateString(rq->command_args[i]));
		env = cJSON_AddObjectToObject(body, "env");
		if (sb->env) {
			const cJSON *kv;
			cJSON_ArrayForEach(kv, sb->env)
			    cJSON_AddItemToObject(env, kv->string, cJSON_Duplicate(kv, 1));
		}
		if (!add_secrets(env, sb->entry.tenant, rq->secret_ids, rq->n_secret_ids, &bad)) {
			mexec_free(x);
			gw_grpc_fail(call, GW_GRPC_NOT_FOUND, "Secret '%s' not found", bad);
			return;
		}
		for (size_t i = 0; i < rq->n_env; i++) {
			cJSON_DeleteItemFromObjectCaseSensitive(env, rq->env[i]->key);
			cJSON_AddStringToObject(env, rq->env[i]->key, rq->env[i]->value);
		}
		if (*rq->workdir || sb->workdir)
			cJSON_AddStringToObject(body, "cwd",
			                        *rq->workdir ? rq->workdir : sb->workdir);
		cJSON_AddBoolToObject(body, "keep_stdin_open", true);
		cJSON_AddNumberToObject(body, "yield_ms", 1);
		cJSON_AddStringToObject(body, "encoding", "base64");
		cJSON_AddNumberToObject(body, "max_output_bytes", MAX_OUTPUT);
		if (rq->timeout_secs)
			cJSON_AddNumberToObject(body, "timeout_ms", rq->timeout_secs * 1000.0);
		if (rq->pty_info && rq->pty_info->enabled)
			cJSON_AddBoolToObject(body, "tty", true);
		r = gw_sandbox_call(&server->backend, "POST", sb->backend_id, "/exec", body, NULL,
		                    0, 60000, &res, &e);
		if (r < 0 || res.status != 200) {
			mexec_free(x);
			fail_backend(call, r, &e, &res, "exec");
			return;
		}
		take_result(x, res.json);
	}
	pthread_mutex_lock(&sb->exec_lock);
	x->next = sb->execs;
	sb->execs = x;
	pthread_mutex_unlock(&sb->exec_lock);
	exec_trim(sb);
	gw_grpc_reply(call, &out.base);
}

/* The command of a router call, held in ref; NULL after failing the call. */
static struct mexec *exec_of(struct gw_grpc_call *call, struct msb *sb, const char *id,
                             struct exec_ref *ref)
{
	struct mexec *x = exec_find(sb, id);

	if (!x)
		gw_grpc_fail(call, GW_GRPC_NOT_FOUND, "Exec '%s' not found", id);
	*ref = (struct exec_ref){sb, x};
	return x;
}

static void task_exec_stdio_read(struct gw_grpc_call *call, const void *req)
{
	const Modal__TaskCommandRouter__TaskExecStdioReadRequest *rq = req;
	Modal__TaskCommandRouter__TaskExecStdioReadResponse msg =
	    MODAL__TASK_COMMAND_ROUTER__TASK_EXEC_STDIO_READ_RESPONSE__INIT;
	_cleanup_(releasep) struct msb *sb = NULL;
	_cleanup_(exec_refp) struct exec_ref ref = {0};
	_cleanup_free_ uint8_t *chunk = malloc(STREAM_CHUNK);
	uint64_t offset;
	struct mexec *x;

	sb = router_sandbox(call, rq->task_id);
	if (!sb || !(x = exec_of(call, sb, rq->exec_id, &ref)))
		return;
	if (!chunk) {
		gw_grpc_fail(call, GW_GRPC_RESOURCE_EXHAUSTED, "out of memory");
		return;
	}
	offset = rq->offset;
	/* Everything from offset on, as it comes, until the command ended and all is sent. */
	for (;;) {
		struct al_buf *b;
		size_t n = 0;
		bool done;
		pthread_mutex_lock(&x->lock);
		b = rq->file_descriptor == 1 ? &x->err : &x->out;
		if (b->len > offset) {
			n = b->len - offset < STREAM_CHUNK ? b->len - offset : STREAM_CHUNK;
			memcpy(chunk, b->data + offset, n);
		}
		done = x->done;
		if (!n && !done)
			exec_pump(sb, x, POLL_MS);
		pthread_mutex_unlock(&x->lock);
		if (n) {
			msg.data.data = chunk;
			msg.data.len = n;
			if (gw_grpc_send(call, &msg.base) < 0)
				break;
			offset += n;
			continue;
		}
		if (done) {
			gw_grpc_finish(call, GW_GRPC_OK, NULL);
			break;
		}
		if (gw_grpc_gone(call))
			break;
	}
}

/* New stdin bytes to x's process (closing its stdin at eof); false after failing the call. */
static bool stdin_forward(struct gw_grpc_call *call, struct msb *sb, struct mexec *x,
                          const uint8_t *data, size_t len, bool eof)
{
	_cleanup_cjson_ cJSON *body = cJSON_CreateObject();
	_cleanup_(gw_result_freep) struct gw_result res = {0};
	_cleanup_free_ char *b64 = al_base64_encode(data, len);
	_cleanup_free_ char *eid = NULL;
	_cleanup_free_ char *suffix = NULL;
	struct al_error e = AL_ERROR_INIT;
	int r;

	pthread_mutex_lock(&x->lock);
	if (x->process_id)
		eid = gw_escape(x->process_id);
	pthread_mutex_unlock(&x->lock);
	if (!eid) /* it ended: its stdin is gone, as a pipe's reader is */
		return true;
	if (!b64 || asprintf(&suffix, "/processes/%s/stdin", eid) < 0) {
		gw_grpc_fail(call, GW_GRPC_RESOURCE_EXHAUSTED, "out of memory");
		return false;
	}
	if (len)
		cJSON_AddStringToObject(body, "data_base64", b64);
	cJSON_AddBoolToObject(body, "close", eof);
	/* The answer carries the output since the last one, like a poll's: kept. */
	cJSON_AddNumberToObject(body, "yield_ms", 0);
	cJSON_AddStringToObject(body, "encoding", "base64");
	r = gw_sandbox_call(&server->backend, "POST", sb->backend_id, suffix, body, NULL, 0, 0,
	                    &res, &e);
	if (r == 0 && res.status == 200) {
		pthread_mutex_lock(&x->lock);
		if (!x->done)
			take_result(x, res.json);
		pthread_cond_broadcast(&x->changed);
		pthread_mutex_unlock(&x->lock);
	}
	/* 503: its stdin is closed, 404: it ended meanwhile; what it did not read is lost, as
	 * it would be on Modal. */
	if (r < 0 || (res.status != 200 && res.status != 503 && res.status != 404)) {
		fail_backend(call, r, &e, &res, "stdin");
		return false;
	}
	return true;
}

static void task_exec_stdin_write(struct gw_grpc_call *call, const void *req)
{
	const Modal__TaskCommandRouter__TaskExecStdinWriteRequest *rq = req;
	Modal__TaskCommandRouter__TaskExecStdinWriteResponse out =
	    MODAL__TASK_COMMAND_ROUTER__TASK_EXEC_STDIN_WRITE_RESPONSE__INIT;
	_cleanup_(releasep) struct msb *sb = NULL;
	_cleanup_(exec_refp) struct exec_ref ref = {0};
	const uint8_t *data;
	size_t len, skip;
	struct mexec *x;
	bool ok = true;

	sb = router_sandbox(call, rq->task_id);
	if (!sb || !(x = exec_of(call, sb, rq->exec_id, &ref)))
		return;
	pthread_mutex_lock(&x->stdin_lock);
	if (rq->offset > x->stdin_offset) {
		gw_grpc_fail(call, GW_GRPC_OUT_OF_RANGE,
		             "stdin offset %llu is past the %llu bytes written",
		             (unsigned long long)rq->offset, (unsigned long long)x->stdin_offset);
		pthread_mutex_unlock(&x->stdin_lock);
		return;
	}
	/* A retry resends what got through: only the rest is new. */
	skip = (size_t)(x->stdin_offset - rq->offset);
	len = skip < rq->data.len ? rq->data.len - skip : 0;
	/* An empty bytes field is NULL in protobuf-c: no offset from it. */
	data = len ? rq->data.data + skip : NULL;
	if (x->write_path) {
		pthread_mutex_lock(&x->lock);
		if (!x->done && al_buf_append(&x->write_data, data, len) == 0) {
			x->stdin_offset += len;
			if (rq->eof)
				fs_write(sb, x);
		}
		pthread_mutex_unlock(&x->lock);
	} else if (len || rq->eof) {
		ok = stdin_forward(call, sb, x, data, len, rq->eof);
		if (ok)
			x->stdin_offset += len;
	}
	pthread_mutex_unlock(&x->stdin_lock);
	if (ok)
		gw_grpc_reply(call, &out.base);
}

static void task_exec_wait(struct gw_grpc_call *call, const void *req, bool hold)
{
	const Modal__TaskCommandRouter__TaskExecWaitRequest *rq = req;
	/* TaskExecPollResponse has the same fields */
	Modal__TaskCommandRouter__TaskExecWaitResponse out =
	    MODAL__TASK_COMMAND_ROUTER__TASK_EXEC_WAIT_RESPONSE__INIT;
	_cleanup_(releasep) struct msb *sb = NULL;
	_cleanup_(exec_refp) struct exec_ref ref = {0};
	long timeout = gw_grpc_timeout_ms(call);
	uint64_t until;
	struct mexec *x;
	bool done;

	sb = router_sandbox(call, rq->task_id);
	if (!sb || !(x = exec_of(call, sb, rq->exec_id, &ref)))
		return;
	/* Held until the end, or (before the client's deadline) answered DEADLINE_EXCEEDED,
	 * which the SDK asks again after. */
	until =
	    al_now_ms() + (timeout > 2000 && timeout - 1000 < HOLD_MS ? timeout - 1000 : HOLD_MS);
	pthread_mutex_lock(&x->lock);
	while (!x->done && hold && al_now_ms() < until && !gw_grpc_gone(call))
		exec_pump(sb, x, POLL_MS);
	done = x->done;
	if (x->done && x->signal) {
		out.exit_status_case =
		    MODAL__TASK_COMMAND_ROUTER__TASK_EXEC_WAIT_RESPONSE__EXIT_STATUS_SIGNAL;
		out.signal = x->signal;
	} else if (x->done) {
		out.exit_status_case =
		    MODAL__TASK_COMMAND_ROUTER__TASK_EXEC_WAIT_RESPONSE__EXIT_STATUS_CODE;
		out.code = x->code;
	}
	pthread_mutex_unlock(&x->lock);
	if (done || !hold)
		gw_grpc_reply(call, &out.base);
	else
		gw_grpc_fail(call, GW_GRPC_DEADLINE_EXCEEDED, "exec %s is still running", x->id);
}

/* ---- the command router: snapshots ---- */

static struct mimage *image_new(const char *tenant, enum image_kind kind)
{
	struct mimage *im = calloc(1, sizeof(*im));

	if (!im || new_id(im->id, sizeof(im->id), "im") < 0 || !(im->tenant = strdup(tenant))) {
		free(im);
		return NULL;
	}
	im->kind = kind;
	return im;
}

static void image_add(struct mimage *im)
{
	pthread_mutex_lock(&objects_lock);
	im->next = images;
	images = im;
	pthread_mutex_unlock(&objects_lock);
	gw_registry_save(&registry);
}

static void task_snapshot_filesystem(struct gw_grpc_call *call, const void *req)
{
	const Modal__TaskCommandRouter__TaskSnapshotFilesystemRequest *rq = req;
	Modal__TaskCommandRouter__TaskSnapshotFilesystemResponse out =
	    MODAL__TASK_COMMAND_ROUTER__TASK_SNAPSHOT_FILESYSTEM_RESPONSE__INIT;
	_cleanup_(releasep) struct msb *sb = NULL;
	_cleanup_cjson_ cJSON *body = cJSON_CreateObject();
	_cleanup_(gw_result_freep) struct gw_result res = {0};
	struct al_error e = AL_ERROR_INIT;
	struct mimage *im;
	int r;

	sb = router_sandbox(call, rq->task_id);
	if (!sb)
		return;
	/* The filesystem only: Modal's filesystem snapshots carry no processes either. */
	cJSON_AddBoolToObject(body, "processes", false);
	r = gw_sandbox_call(&server->backend, "POST", sb->backend_id, "/snapshots", body, NULL, 0,
	                    0, &res, &e);
	if (r < 0 || res.status != 201 || !al_json_str(res.json, "id")) {
		fail_backend(call, r, &e, &res, "snapshot");
		return;
	}
	im = image_new(sb->entry.tenant, IMAGE_SNAPSHOT);
	if (!im || !(im->backend_snapshot = strdup(al_json_str(res.json, "id")))) {
		gw_backend_discard_snapshot(&server->backend, al_json_str(res.json, "id"));
		if (im)
			free(im->tenant);
		free(im);
		gw_grpc_fail(call, GW_GRPC_RESOURCE_EXHAUSTED, "out of memory");
		return;
	}
	image_add(im);
	log_info("modal: image %s is airlockd snapshot %s", im->id, im->backend_snapshot);
	out.image_id = im->id;
	gw_grpc_reply(call, &out.base);
}

/* Run argv in sb to its end (stdin given, output in base64); the parsed answer in res. */
static int run_to_end(struct msb *sb, const char *const *argv, const void *in, size_t in_len,
                      struct gw_result *res, struct al_error *err)
{
	_cleanup_cjson_ cJSON *body = cJSON_CreateObject();
	_cleanup_free_ char *b64 = in ? al_base64_encode(in, in_len) : NULL;
	cJSON *a = cJSON_AddArrayToObject(body, "argv");

	for (; *argv; argv++)
		cJSON_AddItemToArray(a, cJSON_CreateString(*argv));
	if (in && !b64)
		return al_error_set(err, ENOMEM, "out of memory");
	if (b64)
		cJSON_AddStringToObject(body, "stdin_base64", b64);
	cJSON_AddStringToObject(body, "encoding", "base64");
	cJSON_AddNumberToObject(body, "max_output_bytes", MAX_OUTPUT);
	return gw_sandbox_call(&server->backend, "POST", sb->backend_id, "/exec", body, NULL, 0,
	                       300000, res, err);
}

static void task_snapshot_directory(struct gw_grpc_call *call, const void *req)
{
	const Modal__TaskCommandRouter__TaskSnapshotDirectoryRequest *rq = req;
	Modal__TaskCommandRouter__TaskSnapshotDirectoryResponse out =
	    MODAL__TASK_COMMAND_ROUTER__TASK_SNAPSHOT_DIRECTORY_RESPONSE__INIT;
	_cleanup_(releasep) struct msb *sb = NULL;
	_cleanup_(gw_result_freep) struct gw_result res = {0};
	_cleanup_free_ char *path = NULL;
	struct al_error e = AL_ERROR_INIT;
	struct mimage *im;
	int r;

	sb = router_sandbox(call, rq->task_id);
	if (!sb)
		return;
	/* An empty bytes field is NULL in protobuf-c, and no directory. */
	if (!rq->path.len) {
		gw_grpc_fail(call, GW_GRPC_INVALID_ARGUMENT, "path: empty");
		return;
	}
	path = strndup((const char *)rq->path.data, rq->path.len);
	im = path ? image_new(sb->entry.tenant, IMAGE_DIRECTORY) : NULL;
	if (!im) {
		gw_grpc_fail(call, GW_GRPC_RESOURCE_EXHAUSTED, "out of memory");
		return;
	}
	/* The directory as a tar, made by the sandbox's own tar (what it holds is the
	 * sandbox's; the gateway only keeps the bytes). */
	r = run_to_end(sb, (const char *const[]){"tar", "-C", path, "-cf", "-", ".", NULL}, NULL, 0,
	               &res, &e);
	if (r < 0 || res.status != 200 || al_json_num(res.json, "exit_code", -1) != 0 ||
	    cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(res.json, "stdout_truncated")) ||
	    append_b64(&im->tar, al_json_str(res.json, "stdout")) < 0) {
		free(im->tenant);
		al_buf_free(&im->tar);
		free(im);
		if (r < 0 || res.status != 200)
			fail_backend(call, r, &e, &res, "snapshot directory");
		else
			gw_grpc_fail(call, GW_GRPC_FAILED_PRECONDITION,
			             "snapshot of %s: tar failed (or over %u MiB)", path,
			             MAX_OUTPUT >> 20);
		return;
	}
	image_add(im);
	out.image_id = im->id;
	gw_grpc_reply(call, &out.base);
}

static void task_mount_directory(struct gw_grpc_call *call, const void *req)
{
	const Modal__TaskCommandRouter__TaskMountDirectoryRequest *rq = req;
	Modal__TaskCommandRouter__Empty out = MODAL__TASK_COMMAND_ROUTER__EMPTY__INIT;
	_cleanup_(releasep) struct msb *sb = NULL;
	_cleanup_(gw_result_freep) struct gw_result res = {0};
	_cleanup_buf_ struct al_buf tar = {0};
	_cleanup_free_ char *path = NULL;
	struct al_error e = AL_ERROR_INIT;
	const struct mimage *im;
	bool known;
	int r;

	sb = router_sandbox(call, rq->task_id);
	if (!sb)
		return;
	/* An empty bytes field is NULL in protobuf-c, and no directory. */
	if (!rq->path.len) {
		gw_grpc_fail(call, GW_GRPC_INVALID_ARGUMENT, "path: empty");
		return;
	}
	path = strndup((const char *)rq->path.data, rq->path.len);
	if (path && !*rq->image_id) {
		/* No image: an empty directory there. */
		r = run_to_end(sb, (const char *const[]){"mkdir", "-p", path, NULL}, NULL, 0, &res,
		               &e);
		if (r < 0 || res.status != 200 || al_json_num(res.json, "exit_code", -1) != 0)
			fail_backend(call, r, &e, &res, "mount directory");
		else
			gw_grpc_reply(call, &out.base);
		return;
	}
	pthread_mutex_lock(&objects_lock);
	im = image_find(rq->image_id, sb->entry.tenant);
	known = im && im->kind == IMAGE_DIRECTORY;
	if (known)
		al_buf_append(&tar, im->tar.data, im->tar.len);
	pthread_mutex_unlock(&objects_lock);
	if (!known || !path) {
		gw_grpc_fail(call, GW_GRPC_NOT_FOUND, "Image '%s' is no directory snapshot",
		             rq->image_id);
		return;
	}
	/* Its files copied in place (not a mount: the directory is the sandbox's own after). */
	r = run_to_end(sb,
	               (const char *const[]){"sh", "-c", "mkdir -p \"$1\" && tar -C \"$1\" -xf -",
	                                     "sh", path, NULL},
	               tar.data ? tar.data : "", tar.len, &res, &e);
	if (r < 0 || res.status != 200 || al_json_num(res.json, "exit_code", -1) != 0) {
		if (r < 0 || res.status != 200)
			fail_backend(call, r, &e, &res, "mount directory");
		else
			gw_grpc_fail(call, GW_GRPC_FAILED_PRECONDITION, "unpacking into %s failed",
			             path);
		return;
	}
	gw_grpc_reply(call, &out.base);
}

/* ---- dispatch ---- */

static void task_exec_wait_held(struct gw_grpc_call *call, const void *req)
{
	task_exec_wait(call, req, true);
}

static void task_exec_poll(struct gw_grpc_call *call, const void *req)
{
	/* TaskExecPollRequest has TaskExecWaitRequest's fields. */
	task_exec_wait(call, req, false);
}

struct method {
	const char *path;
	const ProtobufCMessageDescriptor *request; /* unpacked for the handler; NULL: none */
	/* a control-plane method (the caller's tenant checked first), or a router one */
	void (*cp)(struct gw_grpc_call *call, const char *tenant, const void *req);
	void (*router)(struct gw_grpc_call *call, const void *req);
};

#define CP_METHOD(name, req, fn)                                                                   \
	{                                                                                          \
		CP_PREFIX name, req, fn, NULL                                                      \
	}
#define ROUTER_METHOD(name, req, fn)                                                               \
	{                                                                                          \
		ROUTER_PREFIX name, req, NULL, fn                                                  \
	}

static const struct method methods[] = {
    CP_METHOD("AuthTokenGet", NULL, auth_token_get),
    CP_METHOD("AppGetOrCreate", &modal__client__app_get_or_create_request__descriptor,
              app_get_or_create),
    CP_METHOD("ImageGetOrCreate", &modal__client__image_get_or_create_request__descriptor,
              image_get_or_create),
    CP_METHOD("ImageFromId", &modal__client__image_from_id_request__descriptor, image_from_id),
    CP_METHOD("ImageDelete", &modal__client__image_delete_request__descriptor, image_delete),
    CP_METHOD("SecretGetOrCreate", &modal__client__secret_get_or_create_request__descriptor,
              secret_get_or_create),
    CP_METHOD("SandboxCreate", &modal__client__sandbox_create_request__descriptor, sandbox_create),
    CP_METHOD("SandboxGetTaskId", &modal__client__sandbox_get_task_id_request__descriptor,
              sandbox_get_task_id),
    CP_METHOD("TaskGetCommandRouterAccess",
              &modal__client__task_get_command_router_access_request__descriptor,
              task_get_command_router_access),
    CP_METHOD("SandboxWait", &modal__client__sandbox_wait_request__descriptor, sandbox_wait),
    CP_METHOD("SandboxTerminate", &modal__client__sandbox_terminate_request__descriptor,
              sandbox_terminate),
    ROUTER_METHOD("TaskExecStart", &modal__task_command_router__task_exec_start_request__descriptor,
                  task_exec_start),
    ROUTER_METHOD("TaskExecStdioRead",
                  &modal__task_command_router__task_exec_stdio_read_request__descriptor,
                  task_exec_stdio_read),
    ROUTER_METHOD("TaskExecStdinWrite",
                  &modal__task_command_router__task_exec_stdin_write_request__descriptor,
                  task_exec_stdin_write),
    ROUTER_METHOD("TaskExecWait", &modal__task_command_router__task_exec_wait_request__descriptor,
                  task_exec_wait_held),
    ROUTER_METHOD("TaskExecPoll", &modal__task_command_router__task_exec_wait_request__descriptor,
                  task_exec_poll),
    ROUTER_METHOD("TaskSnapshotFilesystem",
                  &modal__task_command_router__task_snapshot_filesystem_request__descriptor,
                  task_snapshot_filesystem),
    ROUTER_METHOD("TaskSnapshotDirectory",
                  &modal__task_command_router__task_snapshot_directory_request__descriptor,
                  task_snapshot_directory),
    ROUTER_METHOD("TaskMountDirectory",
                  &modal__task_command_router__task_mount_directory_request__descriptor,
                  task_mount_directory),
};

void gw_modal_serve(struct gw_server *s, struct gw_grpc_call *call)
{
	const char *path = gw_grpc_path(call);

	server = s;
	for (size_t i = 0; i < sizeof(methods) / sizeof(*methods); i++) {
		const struct method *m = &methods[i];
		const char *tenant = NULL;
		_cleanup_(pb_freep) ProtobufCMessage *rq = NULL;
		if (strcmp(path, m->path))
			continue;
		if (m->cp && !(tenant = cp_tenant(call)))
			return;
		if (m->request && !(rq = gw_grpc_unpack(call, m->request)))
			return;
		if (m->cp)
			m->cp(call, tenant, rq);
		else
			m->router(call, rq);
		return;
	}
	gw_grpc_fail(call, GW_GRPC_UNIMPLEMENTED, "%s is not served by airlock-gateway", path);
}

static void discard(struct gw_entry *e)
{
	struct msb *sb = (struct msb *)e;

	if (!sb->terminated)
		gw_backend_discard(&server->backend, sb->backend_id);
}

void gw_modal_shutdown(void)
{
	bool keep = server && gw_state_persistent(&server->state);

	gw_registry_close(&registry, discard);
	pthread_mutex_lock(&objects_lock);
	while (images) {
		struct mimage *im = images;
		images = im->next;
		if (!keep && im->backend_snapshot)
			gw_backend_discard_snapshot(&server->backend, im->backend_snapshot);
		free(im->backend_snapshot);
		free(im->tenant);
		al_buf_free(&im->tar);
		free(im);
	}
	for (struct mobject **list = &apps; list; list = list == &apps ? &secrets : NULL)
		while (*list) {
			struct mobject *o = *list;
			*list = o->next;
			free(o->tenant);
			free(o->name);
			cJSON_Delete(o->env);
			free(o);
		}
	pthread_mutex_unlock(&objects_lock);
}
