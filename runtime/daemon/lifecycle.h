/* SPDX-License-Identifier: Apache-2.0 */
#pragma once

/*
 * The lifecycle of airlockd's sandboxes: the one place that decides in
 * what order things happen to them.  A create takes from the warm pool
 * first; a restore reads the snapshot, then builds with CRIU's images or
 * fresh; a destroy stops now and leaves the teardown to the reaper; a
 * snapshot freezes, dumps and archives; start-up reattaches what survived.
 * It calls down (sandbox/, store/, pool.c, reaper.c); nothing calls it
 * back but through the callbacks it hands the pool and the reaper.
 */

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include <cjson/cJSON.h>

#include "daemon.h"
#include "error.h"

struct sandbox;

/* Reattach the sandboxes of an earlier airlockd, remove half-made ones and
 * orphaned cgroups, start the event collector, open the snapshot store. */
int lifecycle_load(struct daemon *d, struct al_error *err);

/* Start the reaper, and a warm pool of warm_pool sandboxes (0: none). */
int lifecycle_start_reaper(struct daemon *d, struct al_error *err);
int lifecycle_start_pool(struct daemon *d, size_t warm_pool, struct al_error *err);
/* Stop the pool (its sandboxes are removed), then the reaper (queued
 * teardowns are finished). */
void lifecycle_stop(struct daemon *d);

/* A sandbox for spec (moved from *spec), from the warm pool when one can
 * serve it; a new reference in *out. */
int lifecycle_create(struct daemon *d, struct sandbox_spec *spec, struct sandbox **out,
                     struct al_error *err);

/* A sandbox from snapshot id for client (only root, or the client whose
 * sandbox it was taken of, may); req may name it and change its limits
 * (sandbox_spec_restore_request). */
int lifecycle_restore(struct daemon *d, const char *id, const cJSON *req, uid_t client,
                      struct sandbox **out, struct al_error *err);

/* Whether client may see and use the snapshot whose record is rec. */
bool lifecycle_snapshot_visible(const cJSON *rec, uid_t client);

/* Remove snapshot id for client (-ENOENT when it is not the client's). */
int lifecycle_snapshot_remove(struct daemon *d, const char *id, uid_t client, struct al_error *err);

/* With wait, kill it and tear it down (cgroups, mounts and state directory
 * gone) before returning; without, stop it (frozen, or killed) and leave
 * the rest to the reaper (reaper.h). */
int lifecycle_destroy(struct daemon *d, struct sandbox *sb, bool wait, struct al_error *err);

/* Destroy (unwaited, as DELETE ?wait=0) every sandbox whose ttl or
 * idle_timeout has passed at wall-clock second now; how many.  Called about
 * once a second by airlockd's main thread. */
size_t lifecycle_expire(struct daemon *d, int64_t now);

/* A snapshot of sb (with its processes, through CRIU, when processes);
 * *out is its summary.  Its archives are made in sb's cgroups; client_fd
 * (or -1) is the requester's connection: if it hangs up, the snapshot is
 * abandoned (-ECANCELED) and nothing of it is left. */
int lifecycle_snapshot(struct daemon *d, struct sandbox *sb, bool processes, int client_fd,
                       cJSON **out, struct al_error *err);
