/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The reaper thread: see reaper.h.  The queue is a plain array (destroys
 * arrive one request at a time; a burst of a few hundred is a few KiB).
 */
#include "reaper.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "sandbox.h"

struct reaper {
	pthread_mutex_t lock;
	pthread_cond_t work; /* something queued, or stopping */
	pthread_cond_t done; /* a sandbox was torn down */
	struct sandbox **queue;
	size_t n, cap;
	bool stopping;
	pthread_t thread;
};

static void reap_one(struct daemon_ctx *ctx, struct sandbox *sb)
{
	struct al_error err = AL_ERROR_INIT;
	int r = sandbox_teardown(ctx, sb, &err);

	if (r < 0)
		log_error("destroy of sandbox %s: %s", sb->id, err.msg);
	pthread_mutex_lock(&sb->lock);
	sb->reap_result = r;
	memcpy(&sb->reap_err, &err, sizeof(err));
	sb->reaped = true;
	pthread_mutex_unlock(&sb->lock);
}

static void *reaper_main(void *arg)
{
	struct daemon_ctx *ctx = arg;
	struct reaper *rp = ctx->reaper;

	pthread_mutex_lock(&rp->lock);
	for (;;) {
		struct sandbox *sb;

		while (rp->n == 0 && !rp->stopping)
			pthread_cond_wait(&rp->work, &rp->lock);
		if (rp->n == 0)
			break; /* stopping, and nothing left */
		sb = rp->queue[0];
		pthread_mutex_unlock(&rp->lock);
		reap_one(ctx, sb);
		pthread_mutex_lock(&rp->lock);
		/* Dequeued only now, so reaper_pending() counts it until it is done. */
		memmove(rp->queue, rp->queue + 1, --rp->n * sizeof(*rp->queue));
		pthread_cond_broadcast(&rp->done);
		pthread_mutex_unlock(&rp->lock);
		sandbox_unref(sb);
		pthread_mutex_lock(&rp->lock);
	}
	pthread_mutex_unlock(&rp->lock);
	return NULL;
}

int reaper_start(struct daemon_ctx *ctx, struct al_error *err)
{
	struct reaper *rp = calloc(1, sizeof(*rp));
	int r;

	if (!rp)
		return al_error_set(err, ENOMEM, "out of memory");
	pthread_mutex_init(&rp->lock, NULL);
	pthread_cond_init(&rp->work, NULL);
	pthread_cond_init(&rp->done, NULL);
	ctx->reaper = rp;
	r = pthread_create(&rp->thread, NULL, reaper_main, ctx);
	if (r != 0) {
		ctx->reaper = NULL;
		free(rp);
		return al_error_set(err, r, "cannot start the reaper thread: %s", strerror(r));
	}
	return 0;
}

void reaper_queue(struct daemon_ctx *ctx, struct sandbox *sb)
{
	struct reaper *rp = ctx->reaper;
	bool queued = false;

	sandbox_ref(sb);
	if (rp) {
		pthread_mutex_lock(&rp->lock);
		if (!rp->stopping || rp->n > 0) {
			if (rp->n == rp->cap) {
				size_t cap = rp->cap ? rp->cap * 2 : 64;
				struct sandbox **q = realloc(rp->queue, cap * sizeof(*q));
				if (q) {
					rp->queue = q;
					rp->cap = cap;
				}
			}
			if (rp->n < rp->cap) {
				rp->queue[rp->n++] = sb;
				queued = true;
				pthread_cond_signal(&rp->work);
			}
		}
		pthread_mutex_unlock(&rp->lock);
	}
	/* No reaper (or no memory to queue): the caller waits instead. */
	if (!queued) {
		reap_one(ctx, sb);
		sandbox_unref(sb);
	}
}

int reaper_wait(struct daemon_ctx *ctx, struct sandbox *sb, struct al_error *err)
{
	struct reaper *rp = ctx->reaper;
	bool reaped;
	int r;

	for (;;) {
		pthread_mutex_lock(&sb->lock);
		reaped = sb->reaped;
		r = sb->reap_result;
		if (reaped && r < 0)
			memcpy(err, &sb->reap_err, sizeof(*err));
		pthread_mutex_unlock(&sb->lock);
		if (reaped || !rp)
			return reaped ? r : 0;
		pthread_mutex_lock(&rp->lock);
		/* Re-checked under rp->lock, which reap_one's caller takes
		 * before broadcasting: no wake-up is lost. */
		pthread_mutex_lock(&sb->lock);
		reaped = sb->reaped;
		pthread_mutex_unlock(&sb->lock);
		if (!reaped)
			pthread_cond_wait(&rp->done, &rp->lock);
		pthread_mutex_unlock(&rp->lock);
	}
}

size_t reaper_pending(struct daemon_ctx *ctx)
{
	struct reaper *rp = ctx->reaper;
	size_t n;

	if (!rp)
		return 0;
	pthread_mutex_lock(&rp->lock);
	n = rp->n;
	pthread_mutex_unlock(&rp->lock);
	return n;
}

void reaper_stop(struct daemon_ctx *ctx)
{
	struct reaper *rp = ctx->reaper;

	if (!rp)
		return;
	pthread_mutex_lock(&rp->lock);
	rp->stopping = true;
	pthread_cond_signal(&rp->work);
	pthread_mutex_unlock(&rp->lock);
	pthread_join(rp->thread, NULL);
	ctx->reaper = NULL;
	free(rp->queue);
	pthread_cond_destroy(&rp->work);
	pthread_cond_destroy(&rp->done);
	pthread_mutex_destroy(&rp->lock);
	free(rp);
}
