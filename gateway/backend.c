/* SPDX-License-Identifier: Apache-2.0 */
#include "backend.h"

#include "cleanup.h"
#include "http.h"
#include "json.h"
#include "log.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <curl/curl.h>

#define MAX_BACKEND_ANSWER (300u << 20)

void gw_result_free(struct gw_result *r)
{
	al_buf_free(&r->body);
	cJSON_Delete(r->json);
	r->json = NULL;
}

char *gw_escape(const char *s)
{
	/* The handle argument is unused by libcurl >= 7.82. */
	char *e = curl_easy_escape(NULL, s, 0);
	char *copy = e ? strdup(e) : NULL;

	curl_free(e);
	return copy;
}

int gw_sandbox_call(const struct gw_backend *b, const char *method, const char *backend_id,
                    const char *suffix, const cJSON *json_body, const void *raw_body,
                    size_t raw_len, long timeout_ms, struct gw_result *res, struct al_error *err)
{
	_cleanup_free_ char *eid = gw_escape(backend_id);
	_cleanup_free_ char *path = NULL;

	if (!eid || asprintf(&path, "/v1/sandboxes/%s%s", eid, suffix) < 0)
		return al_error_set(err, ENOMEM, "out of memory");
	return gw_backend_call(b, method, path, json_body, raw_body, raw_len, timeout_ms, res, err);
}

char *gw_path_query(const char *what, const char *path, const char *more)
{
	_cleanup_free_ char *e = gw_escape(path);
	char *out;

	if (!e || asprintf(&out, "%s?path=%s%s", what, e, more ? more : "") < 0)
		return NULL;
	return out;
}

const char *gw_result_message(const struct gw_result *r)
{
	const cJSON *e = cJSON_GetObjectItemCaseSensitive(r->json, "error");
	const cJSON *m = cJSON_GetObjectItemCaseSensitive(e, "message");

	return cJSON_IsString(m) ? m->valuestring : "airlockd gave no reason";
}

static void wipe_strings(cJSON *j)
{
	cJSON *c;

	if (cJSON_IsString(j) && j->valuestring)
		explicit_bzero(j->valuestring, strlen(j->valuestring));
	cJSON_ArrayForEach(c, j)
	{
		wipe_strings(c);
	}
}

void gw_cjson_wipep(cJSON **j)
{
	if (*j)
		wipe_strings(*j);
	cJSON_Delete(*j);
}

static void free_zeroedp(char **p)
{
	if (*p)
		explicit_bzero(*p, strlen(*p));
	free(*p);
}

int gw_backend_call(const struct gw_backend *b, const char *method, const char *path,
                    const cJSON *json_body, const void *raw_body, size_t raw_len, long timeout_ms,
                    struct gw_result *res, struct al_error *err)
{
	struct al_http_config hc = {.timeout_ms = timeout_ms > 0 ? timeout_ms : 300 * 1000L,
	                            .unix_socket = b->socket,
	                            .max_retries = 0};
	_cleanup_free_ char *url = NULL;
	/* Zeroed: a create request may carry a bucket mount's keys. */
	_cleanup_(free_zeroedp) char *text = NULL;
	const char *headers[] = {raw_body ? "Content-Type: application/octet-stream"
	                                  : "Content-Type: application/json",
	                         NULL};
	struct al_http_request rq = {
	    .method = method, .headers = headers, .max_response = MAX_BACKEND_ANSWER, .what = path};
	struct al_http_response resp;
	struct al_http h;
	int r;

	memset(res, 0, sizeof(*res));
	if (asprintf(&url, "http://localhost%s", path) < 0)
		return al_error_set(err, ENOMEM, "out of memory");
	if (json_body) {
		text = cJSON_PrintUnformatted(json_body);
		if (!text)
			return al_error_set(err, ENOMEM, "out of memory");
		rq.body = text;
		rq.body_len = strlen(text);
	} else if (raw_body) {
		rq.body = raw_body;
		rq.body_len = raw_len;
	}
	rq.url = url;
	r = al_http_open(&h, &hc, err);
	if (r < 0)
		return r;
	r = al_http_do(&h, &rq, &resp, err);
	al_http_close(&h);
	if (r < 0) {
		al_http_response_free(&resp);
		return r;
	}
	res->status = resp.status;
	res->body = resp.body;
	if (res->body.len && strstr(resp.content_type, "json"))
		res->json = cJSON_ParseWithLength(res->body.data, res->body.len);
	return 0;
}

int gw_backend_create(const struct gw_backend *b, const struct gw_new_sandbox *ns,
                      char **backend_id, struct gw_result *res, struct al_error *err)
{
	_cleanup_cjson_ cJSON *body = cJSON_CreateObject();
	_cleanup_(gw_result_freep) struct gw_result own = {0};
	int r;

	if (!res)
		res = &own;
	if (!body)
		return al_error_set(err, ENOMEM, "out of memory");
	cJSON_AddStringToObject(body, "name", ns->name);
	if (ns->snapshot) {
		cJSON_AddStringToObject(body, "snapshot", ns->snapshot);
	} else {
		if (ns->rootfs)
			cJSON_AddStringToObject(body, "rootfs", ns->rootfs);
		if (ns->image)
			cJSON_AddStringToObject(body, "image", ns->image);
		if (cJSON_IsObject(ns->env) && cJSON_GetArraySize(ns->env) > 0)
			cJSON_AddItemToObject(body, "env", cJSON_Duplicate(ns->env, 1));
	}
	r = gw_backend_call(b, "POST", "/v1/sandboxes?view=summary", body, NULL, 0, 0, res, err);
	if (r < 0)
		return r;
	if (res->status != 201 || !al_json_str(res->json, "id"))
		return al_error_set(err, EIO, "airlockd: %s", gw_result_message(res));
	*backend_id = strdup(al_json_str(res->json, "id"));
	return *backend_id ? 0 : al_error_set(err, ENOMEM, "out of memory");
}

static void discard(const struct gw_backend *b, const char *kind, const char *id, const char *path)
{
	_cleanup_(gw_result_freep) struct gw_result res = {0};
	struct al_error e = AL_ERROR_INIT;

	if (!path)
		log_warn("delete airlockd %s %s: out of memory", kind, id);
	else if (gw_backend_call(b, "DELETE", path, NULL, NULL, 0, 0, &res, &e) < 0)
		log_warn("delete airlockd %s %s: %s", kind, id, e.msg);
	else if (res.status != 200 && res.status != 204 && res.status != 404)
		log_warn("delete airlockd %s %s: %s", kind, id, gw_result_message(&res));
}

void gw_backend_discard(const struct gw_backend *b, const char *backend_id)
{
	_cleanup_free_ char *eid = gw_escape(backend_id);
	_cleanup_free_ char *path = NULL;

	if (eid && asprintf(&path, "/v1/sandboxes/%s", eid) < 0)
		path = NULL;
	discard(b, "sandbox", backend_id, path);
}

void gw_backend_discard_snapshot(const struct gw_backend *b, const char *snapshot_id)
{
	_cleanup_free_ char *eid = gw_escape(snapshot_id);
	_cleanup_free_ char *path = NULL;

	if (eid && asprintf(&path, "/v1/snapshots/%s", eid) < 0)
		path = NULL;
	discard(b, "snapshot", snapshot_id, path);
}
