/* SPDX-License-Identifier: Apache-2.0 */
#pragma once

/*
 * One service's sandboxes, as every service of the gateway keeps them: each is a service
 * struct that starts with a struct gw_entry (the tenant, the ids it is looked up by, its
 * reference count), listed under the registry's lock and, with --state-dir, written to
 * the service's file after every change (state.h) and read back at start.  The service
 * says how one of its sandboxes becomes a record and back (gw_registry_ops).
 *
 * References: a sandbox in the list holds one for the registry; gw_registry_find() and
 * gw_entry_init() give the caller one, which gw_registry_release() gives back; the last
 * one frees the sandbox (ops->free).  Removal takes the registry's reference away, so a
 * sandbox being served while it is deleted stays valid until its request ends.
 */

#include <pthread.h>
#include <stdbool.h>

#include <cjson/cJSON.h>

#include "error.h"
#include "state.h"

struct gw_entry {
	struct gw_entry *next;
	int refs;
	bool listed;
	char *tenant;
	const char *id;   /* the service's id, in the service's struct */
	const char *name; /* a second key (Daytona's names), or NULL */
};

struct gw_registry_ops {
	enum gw_service service;
	const char *what; /* for messages: "e2b" */
	void (*free)(struct gw_entry *e);
	/* The record of e (under the registry's lock). */
	cJSON *(*save)(const struct gw_entry *e);
	/* A sandbox from a record, or NULL (then the record is skipped, and logged). */
	struct gw_entry *(*load)(const cJSON *record);
	/* More than the sandboxes in the service's file (E2B's snapshots), or NULL. */
	void (*save_more)(cJSON *doc);
	int (*load_more)(const cJSON *doc, struct al_error *err);
};

struct gw_registry {
	const struct gw_registry_ops *ops;
	struct gw_state *state;
	pthread_mutex_t lock;
	struct gw_entry *head;
};

/* A new sandbox's entry: the tenant copied, one reference (the caller's). */
int gw_entry_init(struct gw_entry *e, const char *tenant);
void gw_entry_done(struct gw_entry *e);

/* Set up r and read the service's saved sandboxes (state may be without a directory). */
int gw_registry_open(struct gw_registry *r, const struct gw_registry_ops *ops,
                     struct gw_state *state, struct al_error *err);

/* List e (the registry takes a reference of its own) and save. */
void gw_registry_add(struct gw_registry *r, struct gw_entry *e);

/* The tenant's sandbox of that id or name (tenant NULL: anyone's), with a reference. */
struct gw_entry *gw_registry_find(struct gw_registry *r, const char *key, const char *tenant);

/* The first sandbox that pred accepts (under the lock), with a reference. */
struct gw_entry *gw_registry_find_if(struct gw_registry *r,
                                     bool (*pred)(const struct gw_entry *e, void *ctx), void *ctx);

void gw_registry_release(struct gw_registry *r, struct gw_entry *e);

/* Out of the list, and saved; false when it was not listed (someone else removed it). */
bool gw_registry_remove(struct gw_registry *r, struct gw_entry *e);

/* The tenant's sandboxes as a JSON array of show(e, ctx) (under the lock). */
cJSON *gw_registry_list(struct gw_registry *r, const char *tenant,
                        cJSON *(*show)(const struct gw_entry *e, void *ctx), void *ctx);

/* Write the list out after a change of a listed sandbox's fields. */
void gw_registry_save(struct gw_registry *r);

/* For changes of listed sandboxes' fields that a save reads. */
void gw_registry_lock(struct gw_registry *r);
void gw_registry_unlock(struct gw_registry *r);

/*
 * At stop: every sandbox out of the list.  With a state directory they stay in airlockd
 * for the next gateway; without, discard(e) deletes each first.
 */
void gw_registry_close(struct gw_registry *r, void (*discard)(struct gw_entry *e));
