/* SPDX-License-Identifier: Apache-2.0 */
#pragma once

/*
 * airlockd's counters for GET /v1/metrics (Prometheus text format 0.0.4,
 * docs/operations.md lists them).  Counting is a relaxed atomic add, from
 * any thread and without a lock; the sandboxes by state are counted from
 * the registry when the metrics are read.
 */

#include <stdint.h>

#include "util.h"
#include "daemon.h"

/* A request answered: route is its template ("/v1/sandboxes/{id}/exec",
 * api.c), method its HTTP method. */
void metrics_count_request(const char *route, const char *method, unsigned status);
/* A command started by an exec request, and how long its request took
 * (to its end, or its yield). */
void metrics_count_exec(uint64_t duration_us);
/* A syscall denied by a sandbox's seccomp profile (events.c). */
void metrics_count_denial(void);
/* A sandbox hit a limit: kind is "oom_kill" or "pids_max" (events.c). */
void metrics_count_limit_hit(const char *kind, uint64_t n);
/* Bytes a snapshot archived (workspace, layer and CRIU images, before the
 * store's deduplication). */
void metrics_count_snapshot(uint64_t bytes);
/* A sandbox destroyed because its "ttl" or "idle_timeout" passed. */
void metrics_count_expired(const char *reason);

/* The whole text of GET /v1/metrics into out. */
int metrics_render(struct daemon *d, struct al_buf *out);
