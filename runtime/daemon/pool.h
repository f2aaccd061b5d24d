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

struct sandbox;
struct warm_pool;

/* What the pool asks of its owner (daemon/lifecycle.c): make a sandbox for
 * the pool, and remove one nobody will claim. */
struct pool_ops {
	int (*make)(void *opaque, struct sandbox **out, struct al_error *err);
	void (*discard)(void *opaque, struct sandbox *sb); /* takes the reference */
};

/* Start keeping size sandboxes ready; size 0: *out is NULL and nothing runs. */
int pool_start(const struct pool_ops *ops, void *opaque, size_t size, struct warm_pool **out,
               struct al_error *err);

/* Stop refilling and discard the unclaimed sandboxes (they are nobody's). */
void pool_stop(struct warm_pool *p);

/* A ready, running sandbox (the pool's reference moves to the caller), or
 * NULL when the pool is empty: the caller then creates one the normal way,
 * so the pool never makes a request fail.  Whether a request may be served
 * from the pool is the caller's to judge. */
struct sandbox *pool_take(struct warm_pool *p);

/* {"size":N,"ready":N,"hits":N,"misses":N} for GET /v1/info. */
cJSON *pool_stats_json(struct warm_pool *p);
