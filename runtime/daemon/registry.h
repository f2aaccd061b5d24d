/* SPDX-License-Identifier: Apache-2.0 */
#pragma once

/*
 * The daemon's sandboxes by id and name, and the host uid ranges they hold.
 * One lock guards the list and the daemon-side flags of each sandbox
 * (reaping, pooled: see sandbox.h).
 */

#include <pthread.h>
#include <stdint.h>
#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include <cjson/cJSON.h>

#include "error.h"

struct sandbox;

struct uid_slots;

struct registry {
	struct uid_slots *slots; /* host-wide claims of uid ranges, or NULL (tests) */
	pthread_mutex_t lock;
	pthread_cond_t reaped; /* broadcast when one leaves */
	struct sandbox **v;
	size_t n;
	/* Where the search for a free uid slot starts (registry.c says why);
	 * airlockd sets it at random. */
	uint32_t next_slot;
};

void registry_init(struct registry *reg);
/* Drop every reference (at exit). */
void registry_destroy(struct registry *reg);

/* By id or name, neither pooled nor being destroyed: a new reference, or NULL. */
struct sandbox *registry_get(struct registry *reg, const char *id);
/* The same, for a client: only its own sandboxes (root's: all). */
struct sandbox *registry_get_for(struct registry *reg, const char *id, uid_t client);

/*
 * Enter sb before any work is done for it: its name must be free, and it
 * gets the next free uid slot from next_slot on, or (want_base != 0: a restore with
 * processes, which CRIU re-creates in the uid range it was taken in) that
 * one.  While a destroyed sandbox still holds that range, hurry(arg) is
 * called and the reservation waits for its teardown.  -EEXIST, -EBUSY,
 * -ENOSPC.
 */
int registry_reserve(struct registry *reg, struct sandbox *sb, uid_t want_base,
                     void (*hurry)(void *), void *arg, struct al_error *err);

/* Enter a sandbox found running after a restart (its uid range claimed again). */
int registry_add(struct registry *reg, struct sandbox *sb);

/* Out of the registry, its uid range given back. */
void registry_remove(struct registry *reg, struct sandbox *sb);

/* Flags under the registry's lock. */
void registry_set_reaping(struct registry *reg, struct sandbox *sb);
void registry_set_pooled(struct registry *reg, struct sandbox *sb, bool pooled);

/* How many the API shows client (root: all). */
size_t registry_count_visible(struct registry *reg, uid_t client);

/* Ids of every entry (visible or not), NULL-terminated; NULL on ENOMEM. */
char **registry_ids(struct registry *reg);

/* Sandboxes by state, all clients' (GET /v1/metrics). */
struct registry_counts {
	size_t running, stopped, pooled, reaping;
};
struct registry_counts registry_counts(struct registry *reg);

/* Ids of the sandboxes in use (not pooled, made and not being destroyed)
 * whose PID 1 is gone, NULL-terminated; NULL on ENOMEM. */
char **registry_stopped_ids(struct registry *reg);

/* Summaries of those the API shows client, as a JSON array; NULL on ENOMEM. */
cJSON *registry_list_json(struct registry *reg, uid_t client);

/* The id of the sandbox whose uid range holds uid, into id_out; false when none. */
bool registry_id_of_uid(struct registry *reg, uid_t uid, char id_out[16]);
