/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Compiled seccomp filters, cached by the hash of the profile text and the
 * kept capabilities (rules may depend on them), as files airlock-init reads
 * before pivot_root: a thousand sandboxes compile a profile once.
 */
#include "seccomp_cache.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "caps.h"
#include "cleanup.h"
#include "seccomp_profile.h"
#include "util.h"

/*
 * The hash of a profile file, remembered while the file is unchanged (same
 * inode, size and mtime), so that a create whose filter is already compiled
 * neither reads nor hashes the profile again.
 */
struct profile_hash {
	char *file;
	dev_t dev;
	ino_t ino;
	off_t size;
	struct timespec mtim;
	char hash[65];
};

#define PROFILE_HASHES 16

static struct profile_hash profile_hashes[PROFILE_HASHES];
static pthread_mutex_t profile_hashes_lock = PTHREAD_MUTEX_INITIALIZER;
/* One compile of a profile at a time: two creates asking for the same new
 * profile compile it once. */
static pthread_mutex_t compile_lock = PTHREAD_MUTEX_INITIALIZER;

static bool profile_hash_matches(const struct profile_hash *h, const char *file,
                                 const struct stat *st)
{
	return h->file && !strcmp(h->file, file) && h->dev == st->st_dev && h->ino == st->st_ino &&
	       h->size == st->st_size && h->mtim.tv_sec == st->st_mtim.tv_sec &&
	       h->mtim.tv_nsec == st->st_mtim.tv_nsec;
}

static bool profile_hash_lookup(const char *file, const struct stat *st, char hash[65])
{
	bool found = false;

	pthread_mutex_lock(&profile_hashes_lock);
	for (size_t i = 0; i < PROFILE_HASHES && !found; i++) {
		found = profile_hash_matches(&profile_hashes[i], file, st);
		if (found)
			memcpy(hash, profile_hashes[i].hash, 65);
	}
	pthread_mutex_unlock(&profile_hashes_lock);
	return found;
}

/* Best effort: a profile not remembered is merely read and hashed again. */
static void profile_hash_remember(const char *file, const struct stat *st, const char *hash)
{
	struct profile_hash *slot = NULL;
	char *copy = strdup(file);

	if (!copy)
		return;
	pthread_mutex_lock(&profile_hashes_lock);
	/* The file's own slot when it changed, else a free one, else the first. */
	for (size_t i = 0; i < PROFILE_HASHES && !slot; i++)
		if (profile_hashes[i].file && !strcmp(profile_hashes[i].file, file))
			slot = &profile_hashes[i];
	for (size_t i = 0; i < PROFILE_HASHES && !slot; i++)
		if (!profile_hashes[i].file)
			slot = &profile_hashes[i];
	if (!slot)
		slot = &profile_hashes[0];
	free(slot->file);
	*slot = (struct profile_hash){.file = copy,
	                              .dev = st->st_dev,
	                              .ino = st->st_ino,
	                              .size = st->st_size,
	                              .mtim = st->st_mtim};
	memcpy(slot->hash, hash, 65);
	pthread_mutex_unlock(&profile_hashes_lock);
}

/* 1 and the path of the compiled filter for hash when it is on disk, else 0.
 * No lock: the main file is written atomically and last, so once it is there
 * the pair is complete. */
static int cached_filter_path(const struct sandbox_host *host, const char *hash, char **out,
                              struct al_error *err)
{
	_cleanup_free_ char *path = NULL;

	if (asprintf(&path, "%s/%s.bpf", host->seccomp_cache_dir, hash) < 0) {
		path = NULL;
		return al_error_set(err, ENOMEM, "out of memory");
	}
	if (access(path, R_OK) != 0)
		return 0;
	*out = TAKE_PTR(path);
	return 1;
}

/*
 * Compiled filters are cached by the hash of the profile text and the kept
 * capabilities (rules may depend on them), as files airlock-init reads
 * before pivot_root: a thousand sandboxes compile a profile once.
 */
int seccomp_cache_filter_path(const struct sandbox_host *host, const char *profile, char **out,
                              struct al_error *err)
{
	_cleanup_free_ char *json = NULL, *keyed = NULL, *path = NULL, *file = NULL;
	_cleanup_free_ char *compat_path = NULL;
	struct al_bpf bpf = {0}, compat = {0};
	struct al_buf key = {0};
	struct stat st;
	bool have_st;
	char hash[65];
	size_t len;
	int r;

	if (!al_valid_name(profile))
		return al_error_set(err, EINVAL, "invalid seccomp profile name '%s'", profile);
	if (asprintf(&file, "%s/%s.json", host->profiles_dir, profile) < 0)
		return al_error_set(err, ENOMEM, "out of memory");
	/* stat before the read: should the file change in between, the hash is
	 * remembered under the old identity and never matches again. */
	have_st = stat(file, &st) == 0 && S_ISREG(st.st_mode);
	if (have_st && profile_hash_lookup(file, &st, hash)) {
		r = cached_filter_path(host, hash, out, err);
		if (r != 0)
			return r < 0 ? r : 0;
	}
	r = al_read_file(file, 4 << 20, &json, &len, err);
	if (r < 0) {
		err->code = EINVAL; /* a profile that cannot be read or compiled is bad input */
		return al_error_prefix(err, "seccomp profile '%s'", profile);
	}
	al_buf_append(&key, json, len);
	for (const char *const *c = al_default_caps; *c; c++) {
		al_buf_append(&key, "\n", 1);
		al_buf_append(&key, *c, strlen(*c));
	}
	/* The profile is cached as the two programs of sc_profile_compile_split(),
	 * whose compat part also holds the forced ENOSYS answers (io_setup):
	 * programs cached before them must not be taken. */
	al_buf_append(&key, "\nsplit-logged\nforced-enosys:io_setup",
	              strlen("\nsplit-logged\nforced-enosys:io_setup"));
	keyed = key.data;
	if (!keyed)
		return al_error_set(err, ENOMEM, "out of memory");
	al_sha256_hex(keyed, key.len, hash);
	if (asprintf(&path, "%s/%s.bpf", host->seccomp_cache_dir, hash) < 0 ||
	    asprintf(&compat_path, "%s/%s.compat.bpf", host->seccomp_cache_dir, hash) < 0)
		return al_error_set(err, ENOMEM, "out of memory");

	pthread_mutex_lock(&compile_lock);
	if (access(path, R_OK) != 0) {
		r = sc_profile_compile_split(json, len, al_default_caps, &bpf, &compat, err);
		/* The main file last: its presence says the pair is complete. */
		if (r == 0 && compat.len > 0)
			r = al_write_file_atomic(compat_path, compat.prog, compat.len, 0600, err);
		if (r == 0)
			r = al_write_file_atomic(path, bpf.prog, bpf.len, 0600, err);
		al_bpf_free(&bpf);
		al_bpf_free(&compat);
	}
	pthread_mutex_unlock(&compile_lock);
	if (r < 0) {
		err->code = EINVAL; /* a profile that cannot be read or compiled is bad input */
		return al_error_prefix(err, "seccomp profile '%s'", profile);
	}
	if (have_st)
		profile_hash_remember(file, &st, hash);
	*out = TAKE_PTR(path);
	return 0;
}
