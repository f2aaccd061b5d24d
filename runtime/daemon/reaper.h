/* SPDX-License-Identifier: Apache-2.0 */
#pragma once

/*
 * Teardown of destroyed sandboxes, off the request's path.
 *
 * An unwaited destroy (DELETE ?wait=0) stops the sandbox at once (frozen by
 * its cgroup freezer, or SIGKILLed where there is none: no process of it
 * runs another instruction in user space) and answers; killing it, what the
 * kernel then takes milliseconds over (the pid, mount and network namespaces
 * going away, cgroup removal, the writable layer's tmpfs) and cleaning up
 * happen here, one sandbox after another, when destroys pause (reaper.c).
 * Until then the sandbox keeps its uid range and stays in the registry,
 * hidden from the API (sb->reaping), so nothing of it can be reused too
 * early.
 */

#include <stdbool.h>
#include <stddef.h>

#include "error.h"

struct reaper;
struct sandbox;

/* Called on the reaper's thread for each sandbox, one after another. */
typedef void (*reaper_teardown_fn)(void *opaque, struct sandbox *sb);

int reaper_start(reaper_teardown_fn teardown, void *opaque, struct reaper **out,
                 struct al_error *err);

/* Queue sb (already frozen or killed) for teardown; takes a reference of its
 * own.  False when it could not be queued (no reaper, or out of memory): the
 * caller tears it down itself. */
bool reaper_queue(struct reaper *rp, struct sandbox *sb);

/* Tear the queued sandboxes down now, without waiting for a pause. */
void reaper_hurry(struct reaper *rp);

/* Sandboxes queued and not yet torn down. */
size_t reaper_pending(struct reaper *rp);

/* Tear down everything queued, then end the thread. */
void reaper_stop(struct reaper *rp);
