/* SPDX-License-Identifier: Apache-2.0 */
#pragma once

/*
 * airlockd, as the gateway reaches it: HTTP over its Unix socket (docs/api.md) through the
 * harness's HTTP layer.  Every call uses its own libcurl handle, so that the gateway's
 * connection threads never share one.
 */

#include <stddef.h>

#include <cjson/cJSON.h>

#include "error.h"
#include "util.h"

struct gw_backend {
	const char *socket;
};

struct gw_result {
	long status;
	struct al_buf body;
	cJSON *json; /* the body parsed, when it is JSON */
};

void gw_result_free(struct gw_result *r);
static inline void gw_result_freep(struct gw_result *r)
{
	gw_result_free(r);
}

/* path starts with /v1.  0: an answer (any status) in *res; < 0: airlockd unreachable. */
int gw_backend_call(const struct gw_backend *b, const char *method, const char *path,
                    const cJSON *json_body, const void *raw_body, size_t raw_len, long timeout_ms,
                    struct gw_result *res, struct al_error *err);

/* gw_backend_call on /v1/sandboxes/<backend_id escaped><suffix>. */
int gw_sandbox_call(const struct gw_backend *b, const char *method, const char *backend_id,
                    const char *suffix, const cJSON *json_body, const void *raw_body,
                    size_t raw_len, long timeout_ms, struct gw_result *res, struct al_error *err);

/* "<what>?path=<path escaped><more>" (free()); NULL when out of memory. */
char *gw_path_query(const char *what, const char *path, const char *more);

/* The message of airlockd's error body, or the status. */
const char *gw_result_message(const struct gw_result *r);

/* For _cleanup_(gw_cjson_wipep) cJSON *j: a tree that may hold keys (a bucket
 * mount's), its strings zeroed before it is freed. */
void gw_cjson_wipep(cJSON **j);

/* URL-escaped copy (free()); NULL when out of memory. */
char *gw_escape(const char *s);

/* What a service's new sandbox is made from in airlockd (POST /v1/sandboxes). */
struct gw_new_sandbox {
	const char *name;     /* airlockd's name: the service's prefix and id */
	const char *snapshot; /* an airlockd snapshot to restore; then nothing below is sent */
	const char *rootfs;   /* NULL: airlockd's default */
	const char *image;    /* an image imported into airlockd, or NULL */
	const cJSON *env;     /* an object; NULL or empty: none */
};

/* Create it; *backend_id (free()) is airlockd's id.  res, when set, keeps airlockd's answer
 * (a service that answers a name conflict its own way reads its status). */
int gw_backend_create(const struct gw_backend *b, const struct gw_new_sandbox *ns,
                      char **backend_id, struct gw_result *res, struct al_error *err);

/* Delete an airlockd sandbox, or snapshot, that a service no longer needs; a failure is
 * logged (what called it has nobody to tell) and one already gone is none. */
void gw_backend_discard(const struct gw_backend *b, const char *backend_id);
void gw_backend_discard_snapshot(const struct gw_backend *b, const char *snapshot_id);
