/* SPDX-License-Identifier: Apache-2.0 */
/* Host-wide uid range claims: two state directories never get one slot,
 * the host's subordinate ranges are left out, a stale claim is taken over,
 * a fresh one is not, and a release gives back only one's own. */
#include "test.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cleanup.h"
#include "uidslots.h"
#include "util.h"

static char base[PATH_MAX], dir[PATH_MAX + 16], a[PATH_MAX + 16], b[PATH_MAX + 16];

static void mkdirs(const char *path)
{
	if (mkdir(path, 0700) < 0)
		abort();
}

TEST(two_state_dirs)
{
	struct al_error err = AL_ERROR_INIT;
	struct uid_slots *ua = NULL, *ub = NULL;
	char sbdir[PATH_MAX + 64];

	CHECK_INT(uid_slots_open(dir, a, &ua, &err), 0);
	CHECK_INT(uid_slots_open(dir, b, &ub, &err), 0);
	/* Slot 7: a's sandbox s1 holds it (its state directory exists). */
	snprintf(sbdir, sizeof(sbdir), "%s/sandboxes/s1", a);
	mkdirs(sbdir);
	CHECK_INT(uid_slots_claim(ua, 7, "s1", &err), 0);
	CHECK_INT(uid_slots_claim(ua, 7, "s1", &err), 0); /* ours already */
	CHECK_INT(uid_slots_claim(ub, 7, "t1", &err), -EEXIST);
	CHECK(strstr(err.msg, "s1") != NULL && strstr(err.msg, a) != NULL);
	/* Remembered as the other's, for a search to skip, until forgotten. */
	CHECK(uid_slots_held_elsewhere(ub, 7) && !uid_slots_held_elsewhere(ub, 8));
	uid_slots_forget_others(ub);
	CHECK(!uid_slots_held_elsewhere(ub, 7));
	uid_slots_release(ub, 7, "s1"); /* not b's to give back */
	CHECK_INT(uid_slots_claim(ub, 7, "t1", &err), -EEXIST);
	uid_slots_release(ua, 7, "s1");
	CHECK_INT(uid_slots_claim(ub, 7, "t1", &err), 0);
	uid_slots_release(ub, 7, "t1");
	rmdir(sbdir);
	uid_slots_free(ua);
	uid_slots_free(ub);
}

TEST(stale_claims)
{
	struct al_error err = AL_ERROR_INIT;
	struct uid_slots *ua = NULL, *ub = NULL;
	struct timespec old[2] = {{.tv_sec = 1000}, {.tv_sec = 1000}};
	char claim[PATH_MAX + 32];

	CHECK_INT(uid_slots_open(dir, a, &ua, &err), 0);
	CHECK_INT(uid_slots_open(dir, b, &ub, &err), 0);
	/* No state directory of its sandbox, but fresh: one being made. */
	CHECK_INT(uid_slots_claim(ua, 9, "gone", &err), 0);
	CHECK_INT(uid_slots_claim(ub, 9, "t2", &err), -EEXIST);
	/* Old and without its sandbox: a crashed daemon's, taken over. */
	snprintf(claim, sizeof(claim), "%s/9", dir);
	CHECK_INT(utimensat(AT_FDCWD, claim, old, 0), 0);
	CHECK_INT(uid_slots_claim(ub, 9, "t2", &err), 0);
	uid_slots_release_all(ub, "t2");
	CHECK(access(claim, F_OK) < 0);
	uid_slots_free(ua);
	uid_slots_free(ub);
}

static bool only_kept(const char *id, void *arg)
{
	(void)arg;
	return !strcmp(id, "kept");
}

TEST(unknown_claims_released_at_start)
{
	struct al_error err = AL_ERROR_INIT;
	struct uid_slots *ua = NULL, *ub = NULL;
	char claim[PATH_MAX + 32];

	CHECK_INT(uid_slots_open(dir, a, &ua, &err), 0);
	CHECK_INT(uid_slots_open(dir, b, &ub, &err), 0);
	/* a was killed between claiming 11 for "lost" and making its directory. */
	CHECK_INT(uid_slots_claim(ua, 10, "kept", &err), 0);
	CHECK_INT(uid_slots_claim(ua, 11, "lost", &err), 0);
	CHECK_INT(uid_slots_claim(ub, 12, "other", &err), 0);
	uid_slots_release_unknown(ua, only_kept, NULL);
	snprintf(claim, sizeof(claim), "%s/11", dir);
	CHECK(access(claim, F_OK) < 0);
	snprintf(claim, sizeof(claim), "%s/10", dir);
	CHECK(access(claim, F_OK) == 0);
	/* Another daemon's claim is never ours to give back. */
	snprintf(claim, sizeof(claim), "%s/12", dir);
	CHECK(access(claim, F_OK) == 0);
	uid_slots_release(ua, 10, "kept");
	uid_slots_release(ub, 12, "other");
	uid_slots_free(ua);
	uid_slots_free(ub);
}

TEST(host_ranges_left_out)
{
	struct al_error err = AL_ERROR_INIT;
	struct uid_slots *u = NULL;
	char sub[PATH_MAX + 16];
	FILE *f;

	snprintf(sub, sizeof(sub), "%s/subuid", base);
	f = fopen(sub, "w");
	CHECK(f != NULL);
	/* Slot 3 exactly, the end of slot 4 and start of slot 5, and a range
	 * below AIRLOCK_UID_BASE that touches nothing. */
	fprintf(f, "alice:%u:65536\nbob:%u:2\n# comment\ncarol:100000:65536\n",
	        AIRLOCK_UID_BASE + 3 * AIRLOCK_UID_RANGE,
	        AIRLOCK_UID_BASE + 5 * AIRLOCK_UID_RANGE - 1);
	fclose(f);
	CHECK_INT(uid_slots_open(dir, a, &u, &err), 0);
	CHECK_INT(uid_slots_exclude_subid_file(u, sub, &err), 0);
	CHECK(!uid_slots_excluded(u, 2));
	CHECK(uid_slots_excluded(u, 3) && uid_slots_excluded(u, 4) && uid_slots_excluded(u, 5));
	CHECK(!uid_slots_excluded(u, 6));
	CHECK_INT(uid_slots_claim(u, 3, "x", &err), -EPERM);
	CHECK(strstr(err.msg, "subuid") != NULL);
	uid_slots_exclude_uid(u, AIRLOCK_UID_BASE + 10 * AIRLOCK_UID_RANGE + 5);
	CHECK(uid_slots_excluded(u, 10));
	CHECK_INT(uid_slots_exclude_subid_file(u, "/nonexistent-airlock", &err), 0);
	unlink(sub);
	uid_slots_free(u);
}

int main(void)
{
	char tmpl[] = "/tmp/airlock-test-uidslots-XXXXXX";
	struct al_error err = AL_ERROR_INIT;

	if (!mkdtemp(tmpl))
		return 1;
	snprintf(base, sizeof(base), "%s", tmpl);
	snprintf(dir, sizeof(dir), "%s/slots", base);
	snprintf(a, sizeof(a), "%s/a", base);
	snprintf(b, sizeof(b), "%s/b", base);
	mkdirs(a);
	mkdirs(b);
	{
		char sb[PATH_MAX + 32];
		snprintf(sb, sizeof(sb), "%s/sandboxes", a);
		mkdirs(sb);
	}
	RUN(two_state_dirs);
	RUN(stale_claims);
	RUN(unknown_claims_released_at_start);
	RUN(host_ranges_left_out);
	if (al_rm_rf(base, &err) < 0)
		fprintf(stderr, "%s\n", err.msg);
	return test_main_result();
}
