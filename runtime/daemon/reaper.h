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

struct daemon_ctx;
struct sandbox;

int reaper_start(struct daemon_ctx *ctx, struct al_error *err);

/* Queue sb (already frozen or killed) for teardown; takes a reference of its own.
 * Without a running reaper the teardown happens here and now. */
void reaper_queue(struct daemon_ctx *ctx, struct sandbox *sb);

/* Tear the queued sandboxes down now, without waiting for a pause. */
void reaper_hurry(struct daemon_ctx *ctx);

/* Sandboxes queued and not yet torn down. */
size_t reaper_pending(struct daemon_ctx *ctx);

/* Tear down everything queued, then end the thread. */
void reaper_stop(struct daemon_ctx *ctx);
