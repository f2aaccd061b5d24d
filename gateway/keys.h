/* SPDX-License-Identifier: Apache-2.0 */
#pragma once

/*
 * The gateway's API keys: a JSON object mapping each key to a tenant name, in a file of
 * mode 0600 (or stricter) that is refused otherwise.  A tenant sees only the sandboxes,
 * processes and snapshots made with one of its keys.
 */

#include <stddef.h>

#include "error.h"

struct gw_key {
	char *key;
	char *tenant;
};

struct gw_keys {
	struct gw_key *v;
	size_t n;
};

int gw_keys_load(const char *path, struct gw_keys *keys, struct al_error *err);
void gw_keys_free(struct gw_keys *keys);
/* The tenant of key, or NULL; compared in constant time per key. */
const char *gw_keys_tenant(const struct gw_keys *keys, const char *key);
