/* SPDX-License-Identifier: Apache-2.0 */
#include "registry.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cleanup.h"
#include "log.h"
#include "sandbox.h"
#include "strv.h"
#include "uidslots.h"

void registry_init(struct registry *reg)
{
	*reg = (struct registry){0};
	pthread_mutex_init(&reg->lock, NULL);
	pthread_cond_init(&reg->reaped, NULL);
}

void registry_destroy(struct registry *reg)
{
	for (size_t i = 0; i < reg->n; i++)
		sandbox_unref(reg->v[i]);
	free(reg->v);
	reg->v = NULL;
	reg->n = 0;
	pthread_cond_destroy(&reg->reaped);
	pthread_mutex_destroy(&reg->lock);
}

static bool visible(const struct sandbox *sb)
{
	return !sb->pooled && !sb->reaping;
}

static bool shown_to(const struct sandbox *sb, uid_t client)
{
	return visible(sb) && (client == 0 || sb->spec.owner == client);
}

struct sandbox *registry_get(struct registry *reg, const char *id)
{
	return registry_get_for(reg, id, 0);
}

struct sandbox *registry_get_for(struct registry *reg, const char *id, uid_t client)
{
	struct sandbox *found = NULL;

	pthread_mutex_lock(&reg->lock);
	for (size_t i = 0; i < reg->n && !found; i++) {
		struct sandbox *sb = reg->v[i];
		if (shown_to(sb, client) && (!strcmp(sb->id, id) || !strcmp(sb->spec.name, id))) {
			found = sb;
			sandbox_ref(sb);
		}
	}
	pthread_mutex_unlock(&reg->lock);
	return found;
}

static int add_locked(struct registry *reg, struct sandbox *sb)
{
	struct sandbox **n = realloc(reg->v, (reg->n + 1) * sizeof(*n));

	if (!n)
		return -ENOMEM;
	reg->v = n;
	reg->v[reg->n++] = sb;
	sandbox_ref(sb);
	return 0;
}

int registry_add(struct registry *reg, struct sandbox *sb)
{
	struct al_error err = AL_ERROR_INIT;
	int r;

	/* Another daemon holding it is a conflict of an earlier version's
	 * making; the sandbox runs all the same. */
	if (reg->slots && uid_slots_adopt(reg->slots, sb->uid_slot, sb->id, &err) < 0)
		log_warn("sandbox %s: %s", sb->id, err.msg);
	pthread_mutex_lock(&reg->lock);
	r = add_locked(reg, sb);
	pthread_mutex_unlock(&reg->lock);
	return r;
}

void registry_remove(struct registry *reg, struct sandbox *sb)
{
	bool removed = false;

	pthread_mutex_lock(&reg->lock);
	for (size_t i = 0; i < reg->n && !removed; i++) {
		if (reg->v[i] == sb) {
			reg->v[i] = reg->v[--reg->n];
			removed = true;
		}
	}
	if (removed && reg->slots)
		uid_slots_release(reg->slots, sb->uid_slot, sb->id);
	pthread_cond_broadcast(&reg->reaped);
	pthread_mutex_unlock(&reg->lock);
	if (removed)
		sandbox_unref(sb);
}

static bool slot_used_locked(struct registry *reg, uint32_t s)
{
	for (size_t i = 0; i < reg->n; i++)
		if (reg->v[i]->uid_slot == s)
			return true;
	return false;
}

/*
 * The next uid slot from reg->next_slot on that neither a sandbox of ours
 * nor anyone else on the host holds, claimed for id; reg->lock held.
 *
 * Not the lowest free one: a restore with processes needs the range its
 * snapshot was taken in (CRIU re-creates the user namespace's map), and the
 * lowest free range is the one just freed by the sandbox that was
 * snapshotted and destroyed, which the next create anywhere on the host
 * would take (a restore then failed with 409 whenever another daemon had
 * made a sandbox meanwhile).  Going round from a random start per daemon
 * leaves a freed range alone until the daemons have handed out the others.
 */
static int alloc_uid_slot_locked(struct registry *reg, const char *id, uint32_t *slot,
                                 struct al_error *err)
{
	for (int pass = 0; pass < 2; pass++) {
		for (uint32_t i = 0; i < AIRLOCK_UID_SLOTS; i++) {
			uint32_t s = (reg->next_slot + i) % AIRLOCK_UID_SLOTS;
			struct al_error cerr = AL_ERROR_INIT;
			int r;

			if (slot_used_locked(reg, s) ||
			    (reg->slots && uid_slots_held_elsewhere(reg->slots, s)))
				continue;
			r = reg->slots ? uid_slots_claim(reg->slots, s, id, &cerr) : 0;
			if (r == -EEXIST || r == -EPERM)
				continue;
			if (r < 0) {
				*err = cerr;
				return r;
			}
			*slot = s;
			reg->next_slot = (s + 1) % AIRLOCK_UID_SLOTS;
			return 0;
		}
		if (!reg->slots)
			break;
		uid_slots_forget_others(reg->slots);
	}
	return al_error_set(err, ENOSPC, "no free uid range for a new sandbox");
}

/* The sandbox holding uid slot, or NULL; reg->lock held. */
static const struct sandbox *slot_holder_locked(struct registry *reg, uint32_t slot,
                                                bool reaping_only)
{
	for (size_t i = 0; i < reg->n; i++)
		if (reg->v[i]->uid_slot == slot && (!reaping_only || reg->v[i]->reaping))
			return reg->v[i];
	return NULL;
}

static int reserve_locked(struct registry *reg, struct sandbox *sb, uid_t want_base,
                          void (*hurry)(void *), void *arg, struct al_error *err)
{
	const struct sandbox *o;

	for (size_t i = 0; i < reg->n; i++) {
		if (reg->v[i]->reaping)
			continue; /* destroyed: its name is free again */
		if (!strcmp(reg->v[i]->spec.name, sb->spec.name) ||
		    !strcmp(reg->v[i]->id, sb->spec.name))
			return al_error_set(err, EEXIST, "a sandbox named '%s' exists",
			                    sb->spec.name);
	}
	if (!want_base) {
		int r = alloc_uid_slot_locked(reg, sb->id, &sb->uid_slot, err);
		if (r < 0)
			return r;
	} else {
		sb->uid_slot = (want_base - AIRLOCK_UID_BASE) / AIRLOCK_UID_RANGE;
		/* A destroyed sandbox holds its range until torn down: a destroy
		 * followed at once by a restore into the same range waits for
		 * that rather than failing. */
		while (slot_holder_locked(reg, sb->uid_slot, true)) {
			hurry(arg);
			pthread_cond_wait(&reg->reaped, &reg->lock);
		}
		o = slot_holder_locked(reg, sb->uid_slot, false);
		if (o)
			return al_error_set(
			    err, EBUSY,
			    "the snapshot's processes ran as host uids %u-%u, now used by %s %s; a "
			    "snapshot with processes can only be restored into the uid range it "
			    "was "
			    "taken in: destroy that sandbox first",
			    (unsigned)want_base, (unsigned)(want_base + AIRLOCK_UID_RANGE - 1),
			    o->pooled ? "warm-pool sandbox" : "sandbox", o->id);
		if (reg->slots) {
			int r = uid_slots_claim(reg->slots, sb->uid_slot, sb->id, err);
			if (r == -EEXIST || r == -EPERM) {
				err->code = EBUSY;
				return al_error_prefix(
				    err, "a restore with processes needs its uid range");
			}
			if (r < 0)
				return r;
		}
	}
	sb->uid_base = AIRLOCK_UID_BASE + sb->uid_slot * AIRLOCK_UID_RANGE;
	if (add_locked(reg, sb) < 0) {
		if (reg->slots)
			uid_slots_release(reg->slots, sb->uid_slot, sb->id);
		return al_error_set(err, ENOMEM, "out of memory");
	}
	return 0;
}

int registry_reserve(struct registry *reg, struct sandbox *sb, uid_t want_base,
                     void (*hurry)(void *), void *arg, struct al_error *err)
{
	int r;

	pthread_mutex_lock(&reg->lock);
	r = reserve_locked(reg, sb, want_base, hurry, arg, err);
	pthread_mutex_unlock(&reg->lock);
	return r;
}

void registry_set_reaping(struct registry *reg, struct sandbox *sb)
{
	pthread_mutex_lock(&reg->lock);
	sb->reaping = true;
	pthread_mutex_unlock(&reg->lock);
}

void registry_set_pooled(struct registry *reg, struct sandbox *sb, bool pooled)
{
	pthread_mutex_lock(&reg->lock);
	sb->pooled = pooled;
	pthread_mutex_unlock(&reg->lock);
}

size_t registry_count_visible(struct registry *reg, uid_t client)
{
	size_t n = 0;

	pthread_mutex_lock(&reg->lock);
	for (size_t i = 0; i < reg->n; i++)
		n += shown_to(reg->v[i], client);
	pthread_mutex_unlock(&reg->lock);
	return n;
}

char **registry_ids(struct registry *reg)
{
	_cleanup_strv_ char **ids = calloc(1, sizeof(char *));
	bool failed = !ids;

	pthread_mutex_lock(&reg->lock);
	for (size_t i = 0; i < reg->n && !failed; i++)
		failed = al_strv_push(&ids, reg->v[i]->id) < 0;
	pthread_mutex_unlock(&reg->lock);
	return failed ? NULL : TAKE_PTR(ids);
}

struct registry_counts registry_counts(struct registry *reg)
{
	struct registry_counts c = {0};

	pthread_mutex_lock(&reg->lock);
	for (size_t i = 0; i < reg->n; i++) {
		const struct sandbox *sb = reg->v[i];
		if (sb->reaping)
			c.reaping++;
		else if (sb->pooled)
			c.pooled++;
		else if (sandbox_running(sb))
			c.running++;
		else
			c.stopped++;
	}
	pthread_mutex_unlock(&reg->lock);
	return c;
}

char **registry_stopped_ids(struct registry *reg)
{
	_cleanup_strv_ char **ids = calloc(1, sizeof(char *));
	bool failed = !ids;

	pthread_mutex_lock(&reg->lock);
	for (size_t i = 0; i < reg->n && !failed; i++) {
		struct sandbox *sb = reg->v[i];
		bool busy;

		pthread_mutex_lock(&sb->lock);
		busy = sb->destroying;
		pthread_mutex_unlock(&sb->lock);
		if (visible(sb) && !busy && !sandbox_running(sb))
			failed = al_strv_push(&ids, sb->id) < 0;
	}
	pthread_mutex_unlock(&reg->lock);
	return failed ? NULL : TAKE_PTR(ids);
}

cJSON *registry_list_json(struct registry *reg, uid_t client)
{
	cJSON *a = cJSON_CreateArray();

	pthread_mutex_lock(&reg->lock);
	for (size_t i = 0; a && i < reg->n; i++) {
		struct sandbox *sb = reg->v[i];
		bool busy;

		/* One being made or destroyed is not listed. */
		pthread_mutex_lock(&sb->lock);
		busy = sb->destroying;
		pthread_mutex_unlock(&sb->lock);
		if (shown_to(sb, client) && !busy)
			cJSON_AddItemToArray(a, sandbox_summary_json(sb));
	}
	pthread_mutex_unlock(&reg->lock);
	return a;
}

bool registry_id_of_uid(struct registry *reg, uid_t uid, char id_out[16])
{
	bool found = false;

	id_out[0] = '\0';
	pthread_mutex_lock(&reg->lock);
	for (size_t i = 0; i < reg->n && !found; i++) {
		const struct sandbox *sb = reg->v[i];
		if (uid >= sb->uid_base && uid - sb->uid_base < AIRLOCK_UID_RANGE) {
			snprintf(id_out, 16, "%s", sb->id);
			found = true;
		}
	}
	pthread_mutex_unlock(&reg->lock);
	return found;
}
