/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The counters behind GET /v1/metrics (metrics.h).  Fixed tables of
 * relaxed atomics: a request costs a few adds and never waits for a lock,
 * and the text is made only when a scraper asks.
 */
#include "metrics.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "reaper.h"
#include "registry.h"

/* The routes of the v1 API (api.c names each request's template); anything
 * else is "other".  A new route is one line here. */
static const char *const routes[] = {
    "other",
    "/v1/health",
    "/v1/metrics",
    "/v1/info",
    "/v1/events",
    "/v1/sandboxes",
    "/v1/sandboxes/{id}",
    "/v1/sandboxes/{id}/exec",
    "/v1/sandboxes/{id}/processes/{pid}",
    "/v1/sandboxes/{id}/processes/{pid}/stdin",
    "/v1/sandboxes/{id}/processes/{pid}/resize",
    "/v1/sandboxes/{id}/events",
    "/v1/sandboxes/{id}/top",
    "/v1/sandboxes/{id}/workspace",
    "/v1/sandboxes/{id}/snapshots",
    "/v1/sandboxes/{id}/files",
    "/v1/sandboxes/{id}/dirs",
    "/v1/snapshots",
    "/v1/snapshots/{id}",
    "/v1/snapshots/{id}/export",
    "/v1/snapshots/import",
    "/v1/images",
    "/v1/images/{name}",
};
#define N_ROUTES (sizeof(routes) / sizeof(routes[0]))

static const char *const methods[] = {"other", "GET", "POST", "PUT", "DELETE"};
#define N_METHODS (sizeof(methods) / sizeof(methods[0]))

/* The statuses airlockd answers with (api.c); 0 stands for any other. */
static const unsigned statuses[] = {0,   200, 201, 400, 403, 404, 405,
                                    409, 413, 429, 500, 503, 504, 507};
#define N_STATUSES (sizeof(statuses) / sizeof(statuses[0]))

/* Seconds; the last bucket is +Inf. */
static const double exec_buckets[] = {0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5,
                                      1,     2.5,  5,     10,   30,  60,   300};
#define N_BUCKETS (sizeof(exec_buckets) / sizeof(exec_buckets[0]))

static struct {
	uint64_t requests[N_ROUTES][N_METHODS][N_STATUSES];
	uint64_t exec_bucket[N_BUCKETS + 1]; /* not cumulative; the last is +Inf */
	uint64_t exec_sum_us;
	uint64_t execs;
	uint64_t denials;
	uint64_t oom_kills;
	uint64_t pids_max;
	uint64_t snapshot_bytes;
	uint64_t snapshots;
	uint64_t expired_ttl;
	uint64_t expired_idle;
} m;

static void add(uint64_t *counter, uint64_t n)
{
	__atomic_add_fetch(counter, n, __ATOMIC_RELAXED);
}

static uint64_t get(const uint64_t *counter)
{
	return __atomic_load_n(counter, __ATOMIC_RELAXED);
}

static size_t index_of(const char *const *names, size_t n, const char *name)
{
	for (size_t i = 1; name && i < n; i++)
		if (!strcmp(names[i], name))
			return i;
	return 0;
}

void metrics_count_request(const char *route, const char *method, unsigned status)
{
	size_t s = 0;

	for (size_t i = 1; i < N_STATUSES; i++)
		if (statuses[i] == status)
			s = i;
	add(&m.requests[index_of(routes, N_ROUTES, route)][index_of(methods, N_METHODS, method)][s],
	    1);
}

void metrics_count_exec(uint64_t duration_us)
{
	size_t b = 0;

	while (b < N_BUCKETS && (double)duration_us / 1e6 > exec_buckets[b])
		b++;
	add(&m.exec_bucket[b], 1);
	add(&m.exec_sum_us, duration_us);
	add(&m.execs, 1);
}

void metrics_count_denial(void)
{
	add(&m.denials, 1);
}

void metrics_count_limit_hit(const char *kind, uint64_t n)
{
	add(!strcmp(kind, "oom_kill") ? &m.oom_kills : &m.pids_max, n);
}

void metrics_count_snapshot(uint64_t bytes)
{
	add(&m.snapshot_bytes, bytes);
	add(&m.snapshots, 1);
}

void metrics_count_expired(const char *reason)
{
	add(!strcmp(reason, "ttl") ? &m.expired_ttl : &m.expired_idle, 1);
}

/* ---- text format ------------------------------------------------------------------------------
 */

__attribute__((format(printf, 2, 3))) static int put(struct al_buf *out, const char *fmt, ...)
{
	char line[512];
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	if (n < 0 || (size_t)n >= sizeof(line))
		return -EINVAL;
	return al_buf_append(out, line, (size_t)n);
}

static int header(struct al_buf *out, const char *name, const char *type, const char *help)
{
	int r = put(out, "# HELP %s %s\n", name, help);

	return r < 0 ? r : put(out, "# TYPE %s %s\n", name, type);
}

int metrics_render(struct daemon *d, struct al_buf *out)
{
	struct registry_counts c = registry_counts(&d->registry);
	uint64_t cumulative = 0;
	int r = 0;

	r |= header(out, "airlock_build_info", "gauge", "airlockd's version.");
	r |= put(out, "airlock_build_info{version=\"%s\"} 1\n", AIRLOCK_VERSION);

	r |= header(out, "airlock_sandboxes", "gauge",
	            "Sandboxes by state (pooled: warm, not yet claimed; reaping: destroyed, "
	            "being torn down).");
	r |= put(out, "airlock_sandboxes{state=\"running\"} %zu\n", c.running);
	r |= put(out, "airlock_sandboxes{state=\"stopped\"} %zu\n", c.stopped);
	r |= put(out, "airlock_sandboxes{state=\"pooled\"} %zu\n", c.pooled);
	r |= put(out, "airlock_sandboxes{state=\"reaping\"} %zu\n", c.reaping);

	r |= header(out, "airlock_sandboxes_expired_total", "counter",
	            "Sandboxes destroyed because their ttl or idle_timeout passed.");
	r |= put(out, "airlock_sandboxes_expired_total{reason=\"ttl\"} %llu\n",
	         (unsigned long long)get(&m.expired_ttl));
	r |= put(out, "airlock_sandboxes_expired_total{reason=\"idle_timeout\"} %llu\n",
	         (unsigned long long)get(&m.expired_idle));

	r |= header(out, "airlock_execs_total", "counter", "Commands started by exec requests.");
	r |= put(out, "airlock_execs_total %llu\n", (unsigned long long)get(&m.execs));

	r |= header(out, "airlock_exec_duration_seconds", "histogram",
	            "Time of exec requests, from the request to its answer (the command's end, "
	            "or its yield).");
	for (size_t b = 0; b <= N_BUCKETS; b++) {
		cumulative += get(&m.exec_bucket[b]);
		if (b < N_BUCKETS)
			r |= put(out, "airlock_exec_duration_seconds_bucket{le=\"%g\"} %llu\n",
			         exec_buckets[b], (unsigned long long)cumulative);
		else
			r |= put(out, "airlock_exec_duration_seconds_bucket{le=\"+Inf\"} %llu\n",
			         (unsigned long long)cumulative);
	}
	r |=
	    put(out, "airlock_exec_duration_seconds_sum %.6f\n", (double)get(&m.exec_sum_us) / 1e6);
	r |= put(out, "airlock_exec_duration_seconds_count %llu\n", (unsigned long long)cumulative);

	r |= header(out, "airlock_seccomp_denials_total", "counter",
	            "Syscalls denied by sandboxes' seccomp profiles (as collected from audit).");
	r |= put(out, "airlock_seccomp_denials_total %llu\n", (unsigned long long)get(&m.denials));

	r |= header(out, "airlock_limit_hits_total", "counter",
	            "Times sandboxes hit a limit: OOM kills and refused forks at the pids limit.");
	r |= put(out, "airlock_limit_hits_total{kind=\"oom_kill\"} %llu\n",
	         (unsigned long long)get(&m.oom_kills));
	r |= put(out, "airlock_limit_hits_total{kind=\"pids_max\"} %llu\n",
	         (unsigned long long)get(&m.pids_max));

	r |= header(out, "airlock_snapshots_total", "counter", "Snapshots taken.");
	r |= put(out, "airlock_snapshots_total %llu\n", (unsigned long long)get(&m.snapshots));
	r |= header(out, "airlock_snapshot_bytes_total", "counter",
	            "Bytes archived by snapshots (workspace, layer, CRIU images), before the "
	            "store's deduplication.");
	r |= put(out, "airlock_snapshot_bytes_total %llu\n",
	         (unsigned long long)get(&m.snapshot_bytes));

	r |= header(out, "airlock_api_requests_total", "counter",
	            "API requests answered, by route template, method and status.");
	for (size_t i = 0; i < N_ROUTES; i++)
		for (size_t j = 0; j < N_METHODS; j++)
			for (size_t k = 0; k < N_STATUSES; k++) {
				uint64_t n = get(&m.requests[i][j][k]);
				char status[8];
				if (!n)
					continue;
				if (statuses[k])
					snprintf(status, sizeof(status), "%u", statuses[k]);
				else
					snprintf(status, sizeof(status), "other");
				r |= put(out,
				         "airlock_api_requests_total{route=\"%s\",method=\"%s\","
				         "status=\"%s\"} %llu\n",
				         routes[i], methods[j], status, (unsigned long long)n);
			}
	return r < 0 ? -ENOMEM : 0;
}
