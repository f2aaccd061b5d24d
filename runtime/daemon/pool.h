/* SPDX-License-Identifier: Apache-2.0 */
#pragma once

/*
 * The warm pool: sandboxes made ahead of demand (airlockd --warm-pool N), so
 * that a create request that asks for nothing a pooled sandbox lacks is
 * answered by handing one over instead of building one.  A background
 * thread keeps the pool full.
 */

#include <stdbool.h>
#include <stddef.h>

#include <cjson/cJSON.h>

#include "error.h"

struct daemon_ctx;
struct sandbox;

/* Start keeping size sandboxes ready (ctx->pool is set); size 0 does nothing. */
int pool_start(struct daemon_ctx *ctx, size_t size, struct al_error *err);

/* Stop refilling and destroy the unclaimed sandboxes (they are nobody's). */
void pool_stop(struct daemon_ctx *ctx);

/*
 * Serve a create request from the pool: true with a reference to a sandbox
 * that is now an ordinary one in *out, false when the request needs
 * something a pooled sandbox lacks or the pool is empty (the caller then
 * creates one the normal way, so the pool never makes a request fail).
 */
bool pool_claim(struct daemon_ctx *ctx, const cJSON *req, struct sandbox **out);

/* {"size":N,"ready":N,"hits":N,"misses":N} for GET /v1/info. */
cJSON *pool_stats_json(struct daemon_ctx *ctx);
