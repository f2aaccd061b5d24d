/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The reaper thread: see reaper.h.  The queue is a plain array (destroys
 * arrive one request at a time; a burst of a few hundred is a few KiB).
 *
 * Queued sandboxes are frozen, not yet killed: killing starts the kernel's
 * part of the teardown (every task's exit, the pid, mount and network
 * namespaces going away, with their RCU grace periods), a millisecond or
 * more of CPU and of IPIs to every CPU, which on a small host slows down
 * whatever runs next, typically the agent's next sandbox.  So the reaper
 * waits until destroys pause for REAP_QUIET_MS, and no longer than
 * REAP_MAX_DELAY_MS or REAP_MAX_QUEUED sandboxes, or until someone needs
 * one gone (a restore into its uid range, reaper_hurry).
 */
#include "reaper.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "log.h"
#include "sandbox.h"
#include "util.h"

#define REAP_QUIET_MS 20
#define REAP_MAX_DELAY_MS 1000
#define REAP_MAX_QUEUED 16

struct reaper {
	reaper_teardown_fn teardown;
	void *opaque;
	pthread_mutex_t lock;
	pthread_cond_t work; /* something queued, hurry, or stopping */
	struct sandbox **queue;
	uint64_t *queued_ms; /* when each was queued */
	size_t n, cap;
	uint64_t last_queued_ms;
	bool hurry; /* someone waits for the queue to empty */
	bool stopping;
	pthread_t thread;
};

/* How long the head of the queue may still wait; 0: reap it now.  rp->lock held. */
static uint64_t reap_delay_locked(const struct reaper *rp)
{
	uint64_t now = al_now_ms(), quiet, oldest;

	if (rp->stopping || rp->hurry || rp->n >= REAP_MAX_QUEUED)
		return 0;
	quiet = rp->last_queued_ms + REAP_QUIET_MS;
	oldest = rp->queued_ms[0] + REAP_MAX_DELAY_MS;
	if (now >= quiet || now >= oldest)
		return 0;
	return (quiet < oldest ? quiet : oldest) - now;
}

static void wait_ms_locked(struct reaper *rp, uint64_t ms)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	ts.tv_sec += (time_t)(ms / 1000);
	ts.tv_nsec += (long)(ms % 1000) * 1000000L;
	if (ts.tv_nsec >= 1000000000L) {
		ts.tv_sec++;
		ts.tv_nsec -= 1000000000L;
	}
	pthread_cond_timedwait(&rp->work, &rp->lock, &ts);
}

static void *reaper_main(void *arg)
{
	struct reaper *rp = arg;

	pthread_mutex_lock(&rp->lock);
	for (;;) {
		struct sandbox *sb;
		uint64_t delay;

		while (rp->n == 0 && !rp->stopping)
			pthread_cond_wait(&rp->work, &rp->lock);
		if (rp->n == 0)
			break; /* stopping, and nothing left */
		delay = reap_delay_locked(rp);
		if (delay > 0) {
			wait_ms_locked(rp, delay);
			continue;
		}
		sb = rp->queue[0];
		pthread_mutex_unlock(&rp->lock);
		rp->teardown(rp->opaque, sb);
		pthread_mutex_lock(&rp->lock);
		/* Dequeued only now, so reaper_pending() counts it until it is done. */
		memmove(rp->queue, rp->queue + 1, (rp->n - 1) * sizeof(*rp->queue));
		memmove(rp->queued_ms, rp->queued_ms + 1, (rp->n - 1) * sizeof(*rp->queued_ms));
		if (--rp->n == 0)
			rp->hurry = false;
		pthread_mutex_unlock(&rp->lock);
		sandbox_unref(sb);
		pthread_mutex_lock(&rp->lock);
	}
	pthread_mutex_unlock(&rp->lock);
	return NULL;
}

int reaper_start(reaper_teardown_fn teardown, void *opaque, struct reaper **out,
                 struct al_error *err)
{
	struct reaper *rp = calloc(1, sizeof(*rp));
	int r;

	if (!rp)
		return al_error_set(err, ENOMEM, "out of memory");
	pthread_mutex_init(&rp->lock, NULL);
	pthread_cond_init(&rp->work, NULL);
	rp->teardown = teardown;
	rp->opaque = opaque;
	r = pthread_create(&rp->thread, NULL, reaper_main, rp);
	if (r != 0) {
		free(rp);
		return al_error_set(err, r, "cannot start the reaper thread: %s", strerror(r));
	}
	*out = rp;
	return 0;
}

bool reaper_queue(struct reaper *rp, struct sandbox *sb)
{
	bool queued = false;

	if (rp) {
		pthread_mutex_lock(&rp->lock);
		if (!rp->stopping || rp->n > 0) {
			if (rp->n == rp->cap) {
				size_t cap = rp->cap ? rp->cap * 2 : 64;
				struct sandbox **q = realloc(rp->queue, cap * sizeof(*q));
				uint64_t *t = q ? realloc(rp->queued_ms, cap * sizeof(*t)) : NULL;
				if (q)
					rp->queue = q;
				if (t) {
					rp->queued_ms = t;
					rp->cap = cap;
				}
			}
			if (rp->n < rp->cap) {
				rp->last_queued_ms = al_now_ms();
				rp->queued_ms[rp->n] = rp->last_queued_ms;
				rp->queue[rp->n++] = sb;
				sandbox_ref(sb);
				queued = true;
				pthread_cond_signal(&rp->work);
			}
		}
		pthread_mutex_unlock(&rp->lock);
	}
	return queued;
}

void reaper_hurry(struct reaper *rp)
{
	if (!rp)
		return;
	pthread_mutex_lock(&rp->lock);
	if (rp->n > 0) {
		rp->hurry = true;
		pthread_cond_signal(&rp->work);
	}
	pthread_mutex_unlock(&rp->lock);
}

size_t reaper_pending(struct reaper *rp)
{
	size_t n;

	if (!rp)
		return 0;
	pthread_mutex_lock(&rp->lock);
	n = rp->n;
	pthread_mutex_unlock(&rp->lock);
	return n;
}

void reaper_stop(struct reaper *rp)
{
	if (!rp)
		return;
	pthread_mutex_lock(&rp->lock);
	rp->stopping = true;
	pthread_cond_signal(&rp->work);
	pthread_mutex_unlock(&rp->lock);
	pthread_join(rp->thread, NULL);
	free(rp->queue);
	free(rp->queued_ms);
	pthread_cond_destroy(&rp->work);
	pthread_mutex_destroy(&rp->lock);
	free(rp);
}
