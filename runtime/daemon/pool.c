/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Warm pool of sandboxes.
 *
 * A pooled sandbox is a complete sandbox (namespaces, mounts, cgroups,
 * seccomp, airlock-init serving), made exactly as for an empty create
 * request and kept invisible to the API (sb->pooled).  Claiming one costs a
 * few microseconds of bookkeeping plus rewriting its state.json; the
 * refill thread replaces it in the background, off the request's path.
 *
 * "misses" counts the requests the pool could have served but found it
 * empty; requests it cannot serve (a name, a manifest, limits, ...) are
 * neither hits nor misses.
 */
#include "pool.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <time.h>

#include "log.h"
#include "sandbox.h"
#include "util.h"

#define RETRY_AFTER_FAILURE_MS 1000
/* Refilling competes with the claimer's next requests (its exec, its
 * destroy) for the same CPUs; wait until claims pause this long, unless the
 * pool ran dry. */
#define REFILL_QUIET_MS 25

struct warm_pool {
	const struct pool_ops *ops;
	void *opaque;
	pthread_mutex_t lock;
	pthread_cond_t cond;
	size_t size;
	struct sandbox **ready; /* size slots; one reference each */
	size_t n_ready;
	unsigned long long hits, misses;
	uint64_t last_claim_ms;
	bool stopping;
	pthread_t thread;
};

/* Sleep up to ms or until the pool stops; called with p->lock held. */
static void wait_locked(struct warm_pool *p, unsigned ms)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	ts.tv_sec += ms / 1000;
	ts.tv_nsec += (long)(ms % 1000) * 1000000L;
	if (ts.tv_nsec >= 1000000000L) {
		ts.tv_sec++;
		ts.tv_nsec -= 1000000000L;
	}
	while (!p->stopping && pthread_cond_timedwait(&p->cond, &p->lock, &ts) == 0)
		;
}

static void *refill(void *arg)
{
	struct warm_pool *p = arg;

	pthread_mutex_lock(&p->lock);
	for (;;) {
		struct al_error err = AL_ERROR_INIT;
		struct sandbox *sb = NULL;
		int r;

		while (!p->stopping && p->n_ready >= p->size)
			pthread_cond_wait(&p->cond, &p->lock);
		while (!p->stopping && p->n_ready > 0 &&
		       al_now_ms() < p->last_claim_ms + REFILL_QUIET_MS)
			wait_locked(p,
			            (unsigned)(p->last_claim_ms + REFILL_QUIET_MS - al_now_ms()));
		if (p->stopping)
			break;
		pthread_mutex_unlock(&p->lock);
		r = p->ops->make(p->opaque, &sb, &err);
		pthread_mutex_lock(&p->lock);
		if (r < 0) {
			log_warn("warm pool: %s; retrying in %d ms", err.msg,
			         RETRY_AFTER_FAILURE_MS);
			wait_locked(p, RETRY_AFTER_FAILURE_MS);
			continue;
		}
		if (p->stopping) {
			/* pool_stop() already emptied the pool: this one is ours to remove. */
			pthread_mutex_unlock(&p->lock);
			p->ops->discard(p->opaque, sb);
			pthread_mutex_lock(&p->lock);
			break;
		}
		p->ready[p->n_ready++] = sb;
	}
	pthread_mutex_unlock(&p->lock);
	return NULL;
}

int pool_start(const struct pool_ops *ops, void *opaque, size_t size, struct warm_pool **out,
               struct al_error *err)
{
	struct warm_pool *p;

	*out = NULL;
	if (size == 0)
		return 0;
	p = calloc(1, sizeof(*p));
	if (!p || !(p->ready = calloc(size, sizeof(*p->ready)))) {
		free(p);
		return al_error_set(err, ENOMEM, "out of memory");
	}
	p->ops = ops;
	p->opaque = opaque;
	p->size = size;
	pthread_mutex_init(&p->lock, NULL);
	pthread_cond_init(&p->cond, NULL);
	if (pthread_create(&p->thread, NULL, refill, p) != 0) {
		free(p->ready);
		free(p);
		return al_error_set(err, EAGAIN, "cannot start the warm pool's thread");
	}
	*out = p;
	log_info("warm pool of %zu sandboxes", size);
	return 0;
}

void pool_stop(struct warm_pool *p)
{
	if (!p)
		return;
	pthread_mutex_lock(&p->lock);
	p->stopping = true;
	pthread_cond_broadcast(&p->cond);
	pthread_mutex_unlock(&p->lock);
	pthread_join(p->thread, NULL);
	for (size_t i = 0; i < p->n_ready; i++)
		p->ops->discard(p->opaque, p->ready[i]);
	pthread_mutex_destroy(&p->lock);
	pthread_cond_destroy(&p->cond);
	free(p->ready);
	free(p);
}

struct sandbox *pool_take(struct warm_pool *p)
{
	for (;;) {
		struct sandbox *sb = NULL;

		pthread_mutex_lock(&p->lock);
		if (p->n_ready > 0) {
			sb = p->ready[--p->n_ready];
			p->last_claim_ms = al_now_ms();
			pthread_cond_signal(&p->cond);
		} else {
			p->misses++;
		}
		pthread_mutex_unlock(&p->lock);
		if (!sb)
			return NULL;
		/* A pooled sandbox may have died (OOM killer, an admin); try the next. */
		if (sandbox_running(sb)) {
			pthread_mutex_lock(&p->lock);
			p->hits++;
			pthread_mutex_unlock(&p->lock);
			return sb;
		}
		log_warn("warm pool: sandbox %s unusable (airlock-init is gone); removing it",
		         sb->id);
		p->ops->discard(p->opaque, sb);
	}
}

cJSON *pool_stats_json(struct warm_pool *p)
{
	cJSON *o = cJSON_CreateObject();

	if (!p)
		return o;
	pthread_mutex_lock(&p->lock);
	cJSON_AddNumberToObject(o, "size", (double)p->size);
	cJSON_AddNumberToObject(o, "ready", (double)p->n_ready);
	cJSON_AddNumberToObject(o, "hits", (double)p->hits);
	cJSON_AddNumberToObject(o, "misses", (double)p->misses);
	pthread_mutex_unlock(&p->lock);
	return o;
}
