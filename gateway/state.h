/* SPDX-License-Identifier: Apache-2.0 */
#pragma once

/*
 * The gateway's registries on disk (--state-dir): one JSON file per service (e2b.json,
 * daytona.json, cloudflare.json, blaxel.json, runloop.json, vercel.json, modal.json) holding what
 * maps the service's ids to airlockd's sandboxes and snapshots, the tenant of each and what the
 * service shows of it (metadata, labels, tokens), so that a restarted gateway serves the same
 * sandboxes to the same tenants.  Each file is replaced whole, atomically (temporary file, fsync,
 * rename, fsync of the directory), mode 0600 in a directory of mode 0700: it holds the
 * envd access tokens.
 *
 * A service builds its document under its registry lock and takes a generation number
 * there; gw_state_save() writes it unless a later generation is already on disk, so that
 * two threads saving at once never leave the older registry behind.
 */

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include <cjson/cJSON.h>

#include "error.h"

enum gw_service {
	GW_E2B,
	GW_DAYTONA,
	GW_CLOUDFLARE,
	GW_BLAXEL,
	GW_RUNLOOP,
	GW_VERCEL,
	GW_MODAL,
	GW_N_SERVICES
};

struct gw_state {
	char *dir; /* NULL: nothing persists (the registries live in memory only) */
	uint64_t next_gen[GW_N_SERVICES];
	uint64_t saved_gen[GW_N_SERVICES];
	bool frozen; /* stopping: the registries being taken apart must not be saved */
};

/*
 * Make or check dir (a directory, not a symlink, 0700) and give it to owner:group, the
 * user the gateway will run as, so that it can replace its files after dropping root.
 */
int gw_state_open(struct gw_state *st, const char *dir, uid_t owner, gid_t group,
                  struct al_error *err);
void gw_state_close(struct gw_state *st);

static inline bool gw_state_persistent(const struct gw_state *st)
{
	return st && st->dir;
}

/* From now on saves are no-ops: the gateway stops and keeps what is on disk. */
void gw_state_freeze(struct gw_state *st);

/* The service's saved document in *out (NULL when it has none yet). */
int gw_state_load(const struct gw_state *st, enum gw_service svc, cJSON **out,
                  struct al_error *err);

/* A generation number for a document about to be built (under the service's lock). */
uint64_t gw_state_generation(struct gw_state *st, enum gw_service svc);

/* Replace the service's file with doc, unless a later generation was saved already.
 * A no-op without a state directory. */
int gw_state_save(struct gw_state *st, enum gw_service svc, uint64_t gen, const cJSON *doc,
                  struct al_error *err);
