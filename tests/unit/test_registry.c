/* SPDX-License-Identifier: Apache-2.0 */
/* The registry's policies (daemon/registry.c): names are unique among live
 * sandboxes, uid slots among all (a destroyed one holds its slot until torn
 * down), a restore with processes gets its own slot or a clear refusal, and
 * waits for a teardown in progress after hurrying the reaper. */
#include "test.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <unistd.h>

#include "registry.h"
#include "sandbox.h"

static struct sandbox_host host = {.sandboxes_dir = "/nonexistent", .daemon_pidfd = -1};

static struct sandbox *make(const char *id, const char *name)
{
	struct al_error err = AL_ERROR_INIT;
	struct sandbox_spec spec = {0};
	struct sandbox *sb;

	if (name)
		snprintf(spec.name, sizeof(spec.name), "%s", name);
	sb = sandbox_new(&host, id, &spec, &err);
	if (!sb)
		abort();
	return sb;
}

static void no_hurry(void *arg)
{
	(void)arg;
}

TEST(names_and_slots)
{
	struct al_error err = AL_ERROR_INIT;
	struct registry reg;
	struct sandbox *a = make("aaaa", "web"), *b = make("bbbb", NULL), *c = make("cccc", "web");
	struct sandbox *d = make("dddd", "aaaa"), *got;
	char id[16];

	registry_init(&reg);
	CHECK_INT(registry_reserve(&reg, a, 0, no_hurry, NULL, &err), 0);
	CHECK_INT(registry_reserve(&reg, b, 0, no_hurry, NULL, &err), 0);
	CHECK_INT(a->uid_slot, 0);
	CHECK_INT(b->uid_slot, 1);
	CHECK_INT(b->uid_base, AIRLOCK_UID_BASE + AIRLOCK_UID_RANGE);
	/* A name taken, as a name or as an id. */
	CHECK_INT(registry_reserve(&reg, c, 0, no_hurry, NULL, &err), -EEXIST);
	CHECK(strstr(err.msg, "web") != NULL);
	CHECK_INT(registry_reserve(&reg, d, 0, no_hurry, NULL, &err), -EEXIST);
	/* Found by id and by name; the reference is the caller's. */
	got = registry_get(&reg, "web");
	CHECK(got == a);
	sandbox_unref(got);
	got = registry_get(&reg, "bbbb");
	CHECK(got == b);
	sandbox_unref(got);
	CHECK_INT(registry_count_visible(&reg, 0), 2);
	CHECK(registry_id_of_uid(&reg, AIRLOCK_UID_BASE + AIRLOCK_UID_RANGE + 7, id));
	CHECK_STR(id, "bbbb");
	CHECK(!registry_id_of_uid(&reg, AIRLOCK_UID_BASE + 5 * AIRLOCK_UID_RANGE, id));

	/* Destroyed: hidden, its name free again, its slot not. */
	registry_set_reaping(&reg, a);
	CHECK(registry_get(&reg, "web") == NULL);
	CHECK_INT(registry_reserve(&reg, c, 0, no_hurry, NULL, &err), 0);
	CHECK_INT(c->uid_slot, 2);
	/* Pooled: hidden from the API too. */
	registry_set_pooled(&reg, c, true);
	CHECK(registry_get(&reg, "cccc") == NULL);
	CHECK_INT(registry_count_visible(&reg, 0), 1);

	registry_remove(&reg, a);
	registry_remove(&reg, b);
	registry_remove(&reg, c);
	CHECK_INT(reg.n, 0);
	registry_destroy(&reg);
	sandbox_unref(a);
	sandbox_unref(b);
	sandbox_unref(c);
	sandbox_unref(d);
}

TEST(restore_into_a_slot)
{
	struct al_error err = AL_ERROR_INIT;
	struct registry reg;
	struct sandbox *a = make("aaaa", NULL), *r = make("rrrr", NULL);

	registry_init(&reg);
	CHECK_INT(registry_reserve(&reg, a, 0, no_hurry, NULL, &err), 0);
	/* Its range is live: a restore that needs it is refused, naming it. */
	CHECK_INT(registry_reserve(&reg, r, AIRLOCK_UID_BASE, no_hurry, NULL, &err), -EBUSY);
	CHECK(strstr(err.msg, "aaaa") != NULL && strstr(err.msg, "destroy that sandbox") != NULL);
	/* Another slot is fine. */
	CHECK_INT(registry_reserve(&reg, r, AIRLOCK_UID_BASE + 9 * AIRLOCK_UID_RANGE, no_hurry,
	                           NULL, &err),
	          0);
	CHECK_INT(r->uid_slot, 9);
	registry_remove(&reg, a);
	registry_remove(&reg, r);
	registry_destroy(&reg);
	sandbox_unref(a);
	sandbox_unref(r);
}

struct teardown {
	struct registry *reg;
	struct sandbox *sb;
	int hurried;
	pthread_t thread;
};

static void *tear_down_later(void *arg)
{
	struct teardown *t = arg;

	usleep(50 * 1000);
	registry_remove(t->reg, t->sb);
	return NULL;
}

/* The reaper's stand-in: told to hurry, it tears the sandbox down. */
static void hurry(void *arg)
{
	struct teardown *t = arg;

	if (t->hurried++ == 0)
		pthread_create(&t->thread, NULL, tear_down_later, t);
}

TEST(restore_waits_for_a_teardown)
{
	struct al_error err = AL_ERROR_INIT;
	struct registry reg;
	struct sandbox *a = make("aaaa", NULL), *r = make("rrrr", NULL);
	struct teardown t = {.reg = &reg, .sb = a};

	registry_init(&reg);
	CHECK_INT(registry_reserve(&reg, a, 0, no_hurry, NULL, &err), 0);
	registry_set_reaping(&reg, a);
	CHECK_INT(registry_reserve(&reg, r, AIRLOCK_UID_BASE, hurry, &t, &err), 0);
	CHECK(t.hurried >= 1);
	CHECK_INT(r->uid_slot, 0);
	pthread_join(t.thread, NULL);
	registry_remove(&reg, r);
	registry_destroy(&reg);
	sandbox_unref(a);
	sandbox_unref(r);
}

int main(void)
{
	RUN(names_and_slots);
	RUN(restore_into_a_slot);
	RUN(restore_waits_for_a_teardown);
	return test_main_result();
}
