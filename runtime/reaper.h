/* SPDX-License-Identifier: Apache-2.0 */
#pragma once

/*
 * Teardown of destroyed sandboxes, off the request's path.
 *
 * A destroy kills the sandbox at once (SIGKILL to its PID 1: with the pid
 * namespace gone, no process of it runs another instruction in user space)
 * and answers; what the kernel then takes milliseconds over (the pid, mount
 * and network namespaces going away, cgroup removal, the writable layer's
 * tmpfs) is waited for and cleaned here, one sandbox after another.  Until
 * then the sandbox keeps its uid range and stays in the registry, hidden
 * from the API (sb->reaping), so nothing of it can be reused too early.
 */

#include <stdbool.h>
#include <stddef.h>

#include "error.h"

struct daemon_ctx;
struct sandbox;

int reaper_start(struct daemon_ctx *ctx, struct al_error *err);

/* Queue sb (already killed) for teardown; takes a reference of its own.
 * Without a running reaper the teardown happens here and now. */
void reaper_queue(struct daemon_ctx *ctx, struct sandbox *sb);

/* Wait until sb is torn down; returns the teardown's result (err filled). */
int reaper_wait(struct daemon_ctx *ctx, struct sandbox *sb, struct al_error *err);

/* Sandboxes queued and not yet torn down. */
size_t reaper_pending(struct daemon_ctx *ctx);

/* Tear down everything queued, then end the thread. */
void reaper_stop(struct daemon_ctx *ctx);
