/* SPDX-License-Identifier: Apache-2.0 */
#include "uidslots.h"

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <limits.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "cleanup.h"
#include "util.h"

/* A claim younger than this without its sandbox's directory is one being
 * made (the claim comes first), not a stale one.  Creation gives up after
 * 30 s (READY_TIMEOUT_MS). */
#define CLAIM_GRACE_S 120

#define WORDS (AIRLOCK_UID_SLOTS / 64)

struct uid_slots {
	int dir_fd;
	int lock_fd; /* flock()ed around every look at a claim: other daemons too */
	char *state_dir;
	uint64_t excluded[WORDS];
	uint64_t others[WORDS]; /* held by other daemons when last looked at */
};

static void bit_set(uint64_t *v, uint32_t i)
{
	v[i / 64] |= 1ULL << (i % 64);
}

static bool bit_get(const uint64_t *v, uint32_t i)
{
	return v[i / 64] & (1ULL << (i % 64));
}

static void exclude_range(struct uid_slots *u, uint64_t start, uint64_t count)
{
	uint64_t end = start + count - 1, first, last;

	if (count == 0 || end < AIRLOCK_UID_BASE)
		return;
	first = start < AIRLOCK_UID_BASE ? 0 : (start - AIRLOCK_UID_BASE) / AIRLOCK_UID_RANGE;
	last = (end - AIRLOCK_UID_BASE) / AIRLOCK_UID_RANGE;
	for (uint64_t s = first; s <= last && s < AIRLOCK_UID_SLOTS; s++)
		bit_set(u->excluded, (uint32_t)s);
}

void uid_slots_exclude_uid(struct uid_slots *u, uid_t uid)
{
	exclude_range(u, uid, 1);
}

bool uid_slots_excluded(const struct uid_slots *u, uint32_t slot)
{
	return slot >= AIRLOCK_UID_SLOTS || bit_get(u->excluded, slot);
}

int uid_slots_exclude_subid_file(struct uid_slots *u, const char *path, struct al_error *err)
{
	_cleanup_fclose_ FILE *f = fopen(path, "re");
	char line[512];

	if (!f)
		return errno == ENOENT ? 0 : al_error_errno(err, "open %s", path);
	while (fgets(line, sizeof(line), f)) {
		char *start = strchr(line, ':'), *count = start ? strchr(start + 1, ':') : NULL;
		if (!count || line[0] == '#')
			continue;
		exclude_range(u, strtoull(start + 1, NULL, 10), strtoull(count + 1, NULL, 10));
	}
	return 0;
}

/* Every user and group the host has (through NSS: directory users too). */
static void exclude_accounts(struct uid_slots *u)
{
	struct passwd *pw;
	struct group *gr;

	setpwent();
	while ((pw = getpwent()))
		uid_slots_exclude_uid(u, pw->pw_uid);
	endpwent();
	setgrent();
	while ((gr = getgrent()))
		uid_slots_exclude_uid(u, gr->gr_gid);
	endgrent();
}

void uid_slots_free(struct uid_slots *u)
{
	if (!u)
		return;
	if (u->dir_fd >= 0)
		close(u->dir_fd);
	if (u->lock_fd >= 0)
		close(u->lock_fd);
	free(u->state_dir);
	free(u);
}

static int open_slots(struct uid_slots *u, const char *dir, const char *state_dir,
                      struct al_error *err)
{
	int r;

	u->state_dir = realpath(state_dir, NULL);
	if (!u->state_dir)
		return al_error_errno(err, "state directory %s", state_dir);
	r = al_mkdir_p(dir, 0755, err);
	if (r < 0)
		return r;
	u->dir_fd = open(dir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (u->dir_fd < 0)
		return al_error_errno(err, "open %s", dir);
	u->lock_fd = openat(u->dir_fd, ".lock", O_RDWR | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0600);
	if (u->lock_fd < 0)
		return al_error_errno(err, "open %s/.lock", dir);
	r = uid_slots_exclude_subid_file(u, "/etc/subuid", err);
	if (r == 0)
		r = uid_slots_exclude_subid_file(u, "/etc/subgid", err);
	if (r == 0)
		exclude_accounts(u);
	return r;
}

int uid_slots_open(const char *dir, const char *state_dir, struct uid_slots **out,
                   struct al_error *err)
{
	struct uid_slots *u = calloc(1, sizeof(*u));
	int r;

	if (!u)
		return al_error_set(err, ENOMEM, "out of memory");
	u->dir_fd = u->lock_fd = -1;
	r = open_slots(u, dir, state_dir, err);
	if (r < 0) {
		uid_slots_free(u);
		return r;
	}
	*out = u;
	return 0;
}

/* ---- claims ---------------------------------------------------------------------------------- */

struct holder {
	char state_dir[PATH_MAX];
	char id[64];
	time_t made;
};

/* 0 and who holds slot, -ENOENT when nobody does. */
static int read_claim(struct uid_slots *u, const char *name, struct holder *h)
{
	_cleanup_close_ int fd = openat(u->dir_fd, name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
	_cleanup_free_ char *text = NULL;
	struct stat st;
	char *nl;

	if (fd < 0)
		return -errno;
	if (fstat(fd, &st) < 0 || al_read_fd(fd, PATH_MAX + 128, &text, NULL, NULL) < 0)
		return -EIO;
	/* "STATE_DIR\nID\n"; a claim cut short by a crash names nobody. */
	nl = strchr(text, '\n');
	if (!nl) {
		*h = (struct holder){.made = st.st_mtime};
		return 0;
	}
	*nl = '\0';
	snprintf(h->state_dir, sizeof(h->state_dir), "%s", text);
	snprintf(h->id, sizeof(h->id), "%.*s", (int)strcspn(nl + 1, "\n"), nl + 1);
	h->made = st.st_mtime;
	return 0;
}

static bool holder_is(const struct uid_slots *u, const struct holder *h, const char *id)
{
	return !strcmp(h->state_dir, u->state_dir) && !strcmp(h->id, id);
}

/* A claim whose sandbox has no state directory any more, and old enough
 * not to be one being made. */
static bool holder_stale(const struct holder *h)
{
	char path[PATH_MAX + 80];

	if (h->state_dir[0] && h->id[0]) {
		snprintf(path, sizeof(path), "%s/sandboxes/%s", h->state_dir, h->id);
		if (access(path, F_OK) == 0)
			return false;
	}
	return time(NULL) - h->made > CLAIM_GRACE_S;
}

/* The claim is written whole into an unnamed file and then linked under its
 * name, which fails with EEXIST as O_EXCL would: an airlockd killed while
 * claiming leaves either no claim or a complete one, never an empty file
 * that no one can tell the holder of. */
static int write_claim(struct uid_slots *u, const char *name, const char *id, struct al_error *err)
{
	_cleanup_close_ int fd = openat(u->dir_fd, ".", O_TMPFILE | O_WRONLY | O_CLOEXEC, 0644);
	_cleanup_free_ char *text = NULL;

	if (fd < 0)
		return al_error_errno(err, "create a claim file in %s", UID_SLOTS_DIR);
	if (asprintf(&text, "%s\n%s\n", u->state_dir, id) < 0) {
		text = NULL;
		return al_error_set(err, ENOMEM, "out of memory");
	}
	if (al_write_all(fd, text, strlen(text)) < 0)
		return al_error_errno(err, "write %s/%s", UID_SLOTS_DIR, name);
	if (linkat(fd, "", u->dir_fd, name, AT_EMPTY_PATH) < 0) {
		if (errno == EEXIST)
			return -EEXIST;
		return al_error_errno(err, "create %s/%s", UID_SLOTS_DIR, name);
	}
	return 0;
}

static int claim_locked(struct uid_slots *u, uint32_t slot, const char *id, struct al_error *err)
{
	struct holder h;
	char name[16];
	int r;

	snprintf(name, sizeof(name), "%u", slot);
	for (int attempt = 0; attempt < 2; attempt++) {
		r = write_claim(u, name, id, err);
		if (r != -EEXIST)
			return r;
		r = read_claim(u, name, &h);
		if (r == -ENOENT)
			continue; /* released meanwhile */
		if (r < 0)
			return al_error_set(err, -r, "read the claim of uid slot %u", slot);
		if (holder_is(u, &h, id))
			return 0;
		if (!holder_stale(&h)) {
			bit_set(u->others, slot);
			return al_error_set(err, EEXIST,
			                    "host uids %u-%u are held by sandbox %s of %s",
			                    AIRLOCK_UID_BASE + slot * AIRLOCK_UID_RANGE,
			                    AIRLOCK_UID_BASE + (slot + 1) * AIRLOCK_UID_RANGE - 1,
			                    h.id[0] ? h.id : "?",
			                    h.state_dir[0] ? h.state_dir : "an unknown airlockd");
		}
		unlinkat(u->dir_fd, name, 0);
	}
	return al_error_set(err, EEXIST, "uid slot %u changed hands while claimed", slot);
}

int uid_slots_claim(struct uid_slots *u, uint32_t slot, const char *id, struct al_error *err)
{
	int r;

	if (uid_slots_excluded(u, slot))
		return al_error_set(err, EPERM,
		                    "host uids %u-%u are used on this host (a user, a group, or "
		                    "/etc/subuid or /etc/subgid)",
		                    AIRLOCK_UID_BASE + slot * AIRLOCK_UID_RANGE,
		                    AIRLOCK_UID_BASE + (slot + 1) * AIRLOCK_UID_RANGE - 1);
	/* Other daemons look at and take over claims too: one at a time. */
	while (flock(u->lock_fd, LOCK_EX) < 0)
		if (errno != EINTR)
			return al_error_errno(err, "lock %s", UID_SLOTS_DIR);
	r = claim_locked(u, slot, id, err);
	flock(u->lock_fd, LOCK_UN);
	return r;
}

int uid_slots_adopt(struct uid_slots *u, uint32_t slot, const char *id, struct al_error *err)
{
	/* Ours whatever the host's accounts say now: it is running. */
	bool was = bit_get(u->excluded, slot);
	int r;

	u->excluded[slot / 64] &= ~(1ULL << (slot % 64));
	r = uid_slots_claim(u, slot, id, err);
	if (was)
		bit_set(u->excluded, slot);
	return r;
}

void uid_slots_release(struct uid_slots *u, uint32_t slot, const char *id)
{
	struct holder h;
	char name[16];

	snprintf(name, sizeof(name), "%u", slot);
	while (flock(u->lock_fd, LOCK_EX) < 0)
		if (errno != EINTR)
			return;
	if (read_claim(u, name, &h) == 0 && holder_is(u, &h, id))
		unlinkat(u->dir_fd, name, 0);
	flock(u->lock_fd, LOCK_UN);
}

void uid_slots_release_unknown(struct uid_slots *u, bool (*known)(const char *id, void *arg),
                               void *arg)
{
	while (flock(u->lock_fd, LOCK_EX) < 0)
		if (errno != EINTR)
			return;
	for (uint32_t slot = 0; slot < AIRLOCK_UID_SLOTS; slot++) {
		struct holder h;
		char name[16];

		snprintf(name, sizeof(name), "%u", slot);
		if (read_claim(u, name, &h) == 0 && !strcmp(h.state_dir, u->state_dir) &&
		    !known(h.id, arg))
			unlinkat(u->dir_fd, name, 0);
	}
	flock(u->lock_fd, LOCK_UN);
}

bool uid_slots_held_elsewhere(const struct uid_slots *u, uint32_t slot)
{
	return slot < AIRLOCK_UID_SLOTS && bit_get(u->others, slot);
}

void uid_slots_forget_others(struct uid_slots *u)
{
	memset(u->others, 0, sizeof(u->others));
}

void uid_slots_release_all(struct uid_slots *u, const char *id)
{
	for (uint32_t slot = 0; slot < AIRLOCK_UID_SLOTS; slot++) {
		char name[16];
		struct stat st;

		snprintf(name, sizeof(name), "%u", slot);
		if (fstatat(u->dir_fd, name, &st, AT_SYMLINK_NOFOLLOW) == 0)
			uid_slots_release(u, slot, id);
	}
}
