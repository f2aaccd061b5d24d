/* SPDX-License-Identifier: Apache-2.0 */
#pragma once

/*
 * airlockd's state: the host description (read only, passed down to the
 * sandbox layer) and what changes as sandboxes come and go.  Only the
 * daemon layer (this folder) sees it.
 */

#include "host.h"
#include "registry.h"
#include "spec.h"

struct warm_pool;
struct image_store;
struct reaper;

struct daemon {
	struct sandbox_host host;
	struct registry registry;
	struct warm_pool *pool;        /* pre-created sandboxes (pool.c), or NULL */
	struct reaper *reaper;         /* tears destroyed sandboxes down (reaper.c), or NULL */
	struct image_store *images;    /* imported images (images.h) */
	struct sandbox_spec pool_spec; /* what a pooled sandbox is made as */
	int state_lock_fd;             /* flock()ed: one airlockd per state directory */
	unsigned client_rate;          /* requests a second per non-root client (admission.h) */
};
