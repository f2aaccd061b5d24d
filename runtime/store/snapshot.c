/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The local snapshot store (snapshot.h, docs/snapshot-format.md).
 *
 * Crash safety: a snapshot is written into .tmp-ID/, the chunks it adds into
 * packs/.tmp-ID.pack, fsynced and renamed packs/ID.pack; its other files
 * and the directories are fsynced, snapshot.json is written atomically and
 * .tmp-ID/ is renamed to ID/.  A crash at any point leaves either no ID/ or a complete one;
 * start-up removes .tmp-* and every pack no snapshot names.  A repack (at
 * each collection, when worth it) writes its pack first, then rewrites the
 * records one by one, then sweeps: see collect_garbage.
 *
 * Incremental snapshots: parts are cut into content-defined chunks (a gear
 * rolling hash, so an insertion shifts only the chunks around it; CRIU's page
 * images every 16 KiB, chunkstore.c says why) and a chunk
 * the parent snapshot already holds is not written again.  This replaces CRIU's own
 * parent-image mechanism, which needs soft-dirty page tracking
 * (CONFIG_MEM_SOFT_DIRTY) that this machine's kernel does not have.
 */
#include "snapshot.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "chunkstore.h"
#include "cleanup.h"
#include "json.h"
#include "log.h"
#include "strv.h"
#include "util.h"

#define SNAPSHOT_FORMAT "airlock-snapshot"
#define SNAPSHOT_VERSION 1
#define SNAPSHOT_JSON_MAX (256u << 20)

/* One writer at a time: snapshots, removals and the chunk collector. */
static pthread_mutex_t store_lock = PTHREAD_MUTEX_INITIALIZER;

/* ---- paths ---------------------------------------------------------------------------------- */

static int store_dir(const char *state_dir, char *out, size_t len)
{
	return (size_t)snprintf(out, len, "%s/snapshots", state_dir) >= len ? -ENAMETOOLONG : 0;
}

static int open_dir_at(int dirfd, const char *name, struct al_error *err)
{
	int fd = openat(dirfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);

	if (fd < 0)
		return al_error_errno(err, "open %s", name);
	return fd;
}

static int load_snapshot(int store_fd, const char *id, cJSON **out, int *snap_fd_out,
                         struct al_error *err)
{
	_cleanup_free_ char *text = NULL;
	_cleanup_close_ int snap_fd = -1, jfd = -1;
	cJSON *j;
	const cJSON *v;
	int r;

	if (!al_valid_name(id) || !strncmp(id, ".tmp", 4))
		return al_error_set(err, EINVAL, "invalid snapshot id '%s'", id);
	snap_fd = openat(store_fd, id, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (snap_fd < 0) {
		if (errno == ENOENT)
			return al_error_set(err, ENOENT, "no snapshot '%s'", id);
		return al_error_errno(err, "open snapshot %s", id);
	}
	jfd = openat(snap_fd, "snapshot.json", O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
	if (jfd < 0)
		return al_error_errno(err, "snapshot %s: snapshot.json", id);
	r = al_read_fd(jfd, SNAPSHOT_JSON_MAX, &text, NULL, err);
	if (r < 0)
		return al_error_prefix(err, "snapshot %s", id);
	j = cJSON_Parse(text);
	if (!j)
		return al_error_set(err, EIO, "snapshot %s: snapshot.json is corrupted (not JSON)",
		                    id);
	v = cJSON_GetObjectItemCaseSensitive(j, "format");
	if (!cJSON_IsString(v) || strcmp(v->valuestring, SNAPSHOT_FORMAT) ||
	    !cJSON_IsString(cJSON_GetObjectItemCaseSensitive(j, "id")) ||
	    strcmp(cJSON_GetObjectItemCaseSensitive(j, "id")->valuestring, id) ||
	    !cJSON_IsArray(cJSON_GetObjectItemCaseSensitive(j, "parts"))) {
		cJSON_Delete(j);
		return al_error_set(err, EIO, "snapshot %s: snapshot.json is corrupted", id);
	}
	v = cJSON_GetObjectItemCaseSensitive(j, "version");
	if (!cJSON_IsNumber(v) || v->valuedouble != SNAPSHOT_VERSION) {
		cJSON_Delete(j);
		return al_error_set(err, ENOTSUP, "snapshot %s: format version %g is not supported",
		                    id, cJSON_GetNumberValue(v));
	}
	*out = j;
	if (snap_fd_out)
		*snap_fd_out = TAKE_FD(snap_fd);
	return 0;
}

static cJSON *summary_of(const cJSON *j)
{
	static const char *const keys[] = {"id",        "parent",  "created", "provider",
	                                   "processes", "sandbox", "sizes"};
	cJSON *o = cJSON_CreateObject();

	for (size_t i = 0; i < AL_ARRAY_SIZE(keys); i++) {
		const cJSON *v = cJSON_GetObjectItemCaseSensitive(j, keys[i]);
		if (v)
			cJSON_AddItemToObject(o, keys[i], cJSON_Duplicate(v, true));
	}
	return o;
}

/* ---- garbage collection --------------------------------------------------------------------- */

static void store_step(const char *name)
{
	if (chunk_store_step_hook)
		chunk_store_step_hook(name);
}

/* What one pass over the committed snapshots does with each record. */
struct gc_pass {
	struct chunk_live *live; /* the packs and chunk files it names */
	struct chunk_repack *rp; /* pass 1: its chunks counted; pass 2: remapped */
	bool remap;
};

/*
 * Replace ID/snapshot.json by j, atomically and durably: a temp file in the
 * store's top directory (.tmp-record-ID, which start-up removes like any
 * .tmp-*), fsynced, renamed over it, the directory fsynced.  Readers see
 * the old record or the new one, both complete, both naming packs that
 * exist.
 */
static int rewrite_record(int store_fd, const char *id, const cJSON *j, struct al_error *err)
{
	_cleanup_free_ char *text = cJSON_PrintUnformatted(j);
	_cleanup_close_ int fd = -1, dir_fd = -1;
	char tmp[NAME_MAX + 1], dest[NAME_MAX + 1];
	int r;

	if (!text)
		return al_error_set(err, ENOMEM, "out of memory");
	snprintf(tmp, sizeof(tmp), ".tmp-record-%s", id);
	snprintf(dest, sizeof(dest), "%s/snapshot.json", id);
	fd = openat(store_fd, tmp, O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC, 0600);
	if (fd < 0)
		return al_error_errno(err, "snapshot %s: create %s", id, tmp);
	r = al_write_all(fd, text, strlen(text));
	if (r == 0 && fsync(fd) < 0)
		r = -errno;
	if (r == 0 && renameat(store_fd, tmp, store_fd, dest) < 0)
		r = -errno;
	if (r < 0) {
		errno = -r;
		r = al_error_errno(err, "snapshot %s: rewrite snapshot.json", id);
		unlinkat(store_fd, tmp, 0);
		return r;
	}
	dir_fd = openat(store_fd, id, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (dir_fd < 0 || fsync(dir_fd) < 0)
		return al_error_errno(err, "snapshot %s: fsync", id);
	return 0;
}

static int gc_record(int store_fd, const char *id, cJSON *j, struct gc_pass *p,
                     struct al_error *err)
{
	cJSON *parts = cJSON_GetObjectItemCaseSensitive(j, "parts");
	int r;

	if (p->remap) {
		r = chunk_repack_remap(p->rp, parts);
		if (r < 0)
			return al_error_set(err, ENOMEM, "out of memory");
		if (r > 0) {
			r = rewrite_record(store_fd, id, j, err);
			if (r < 0)
				return r;
			store_step("repack: rewrote a record");
		}
	} else if (chunk_repack_add_parts(p->rp, parts, err) < 0) {
		return -ENOMEM;
	}
	if (chunk_live_add_parts(p->live, parts) < 0)
		return al_error_set(err, ENOMEM, "out of memory");
	return 0;
}

/* gc_record for every committed snapshot.  A damaged one keeps nothing
 * alive; one that could not be read for any other reason (no memory, no
 * fd, a newer format) may name any pack: then an error, and the caller
 * removes nothing. */
static int gc_pass_run(int store_fd, struct gc_pass *p, struct al_error *err)
{
	_cleanup_closedir_ DIR *d = NULL;
	struct dirent *de;
	int dfd, r = 0;

	dfd = openat(store_fd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC); /* own offset */
	d = dfd >= 0 ? fdopendir(dfd) : NULL;
	if (!d) {
		if (dfd >= 0)
			close(dfd);
		return al_error_errno(err, "open snapshot store");
	}
	while (r == 0 && (de = readdir(d))) {
		struct al_error lerr = AL_ERROR_INIT;
		_cleanup_cjson_ cJSON *j = NULL;
		if (de->d_name[0] == '.' || !strcmp(de->d_name, "chunks") ||
		    !strcmp(de->d_name, "packs"))
			continue;
		r = load_snapshot(store_fd, de->d_name, &j, NULL, &lerr);
		if (r == -EIO || r == -ENOENT || r == -EINVAL) {
			r = 0;
			continue;
		}
		if (r < 0) {
			*err = lerr;
			break;
		}
		r = gc_record(store_fd, de->d_name, j, p, err);
	}
	return r;
}

static void chunk_live_freep(struct chunk_live **l)
{
	chunk_live_free(*l);
}

static void chunk_repack_freep(struct chunk_repack **rp)
{
	chunk_repack_free(*rp);
}

/*
 * Remove the chunks and packs no committed snapshot names, then repack the
 * packs that are mostly dead (chunkstore.c): copy their live chunks into a
 * new pack, rewrite every record that names them, and sweep again.  Called
 * with store_lock held, so no snapshot is being written or read.
 */
static int collect_garbage(int store_fd, struct al_error *err)
{
	_cleanup_(chunk_live_freep) struct chunk_live *live = chunk_live_new();
	_cleanup_(chunk_live_freep) struct chunk_live *after = NULL;
	_cleanup_(chunk_repack_freep) struct chunk_repack *rp = NULL;
	struct gc_pass pass = {.live = live};
	uint64_t removed, copied, old_bytes;
	size_t packs;
	int r;

	if (!live)
		return al_error_set(err, ENOMEM, "out of memory");
	r = chunk_repack_new(store_fd, &rp, err);
	if (r < 0)
		return al_error_prefix(err, "snapshot store: nothing collected");
	pass.rp = rp;
	r = gc_pass_run(store_fd, &pass, err);
	if (r < 0)
		return al_error_prefix(err, "snapshot store: nothing collected");
	removed = chunk_store_sweep(store_fd, live);
	if (removed)
		log_info("snapshot store: removed %llu unused packs and chunks",
		         (unsigned long long)removed);

	r = chunk_repack_copy(rp, err);
	if (r <= 0)
		return r < 0 ? al_error_prefix(err, "snapshot store: nothing repacked") : 0;
	store_step("repack: copied");
	/* Point each record at the copies.  A failure half-way leaves some
	 * naming the old packs, which all stay (no sweep), and the next
	 * collection repacks again. */
	after = chunk_live_new();
	if (!after)
		return al_error_set(err, ENOMEM, "out of memory");
	pass = (struct gc_pass){.live = after, .rp = rp, .remap = true};
	r = gc_pass_run(store_fd, &pass, err);
	if (r < 0)
		return al_error_prefix(err, "snapshot store: repack unfinished");
	store_step("repack: rewritten");
	removed = chunk_store_sweep(store_fd, after);
	chunk_repack_stats(rp, &packs, &old_bytes, &copied);
	log_info("snapshot store: repacked %zu packs of %llu bytes into %s: %llu bytes copied, "
	         "%llu packs removed",
	         packs, (unsigned long long)old_bytes,
	         chunk_repack_name(rp) ? chunk_repack_name(rp) : "the packs already there",
	         (unsigned long long)copied, (unsigned long long)removed);
	return 0;
}

/* ---- the store --------------------------------------------------------------------------------
 */

static int open_store(const char *state_dir, struct al_error *err)
{
	char path[PATH_MAX];
	int fd;

	if (store_dir(state_dir, path, sizeof(path)) < 0)
		return al_error_set(err, ENAMETOOLONG, "state directory path too long");
	if (mkdir(path, 0700) < 0 && errno != EEXIST)
		return al_error_errno(err, "mkdir %s", path);
	fd = open(path, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0)
		return al_error_errno(err, "open %s", path);
	if (mkdirat(fd, "packs", 0700) < 0 && errno != EEXIST) {
		int r = al_error_errno(err, "mkdir %s/packs", path);
		close(fd);
		return r;
	}
	return fd;
}

int snapshot_store_init(const char *state_dir, struct al_error *err)
{
	struct al_error gerr = AL_ERROR_INIT;
	_cleanup_close_ int fd = -1;
	_cleanup_closedir_ DIR *d = NULL;
	struct dirent *de;
	int dfd, r;

	fd = open_store(state_dir, err);
	if (fd < 0)
		return fd;
	pthread_mutex_lock(&store_lock);
	dfd = openat(fd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC); /* own offset */
	d = dfd >= 0 ? fdopendir(dfd) : NULL;
	while (d && (de = readdir(d))) {
		struct al_error lerr = AL_ERROR_INIT;
		if (strncmp(de->d_name, ".tmp-", 5))
			continue;
		log_warn("snapshot store: removing %s, left by an interrupted snapshot",
		         de->d_name);
		if (al_rm_rf_at(fd, de->d_name, &lerr) < 0)
			log_error("%s", lerr.msg);
	}
	/* Packs left by an interrupted snapshot stay until a later collection
	 * can read every snapshot; that is no reason not to start. */
	r = collect_garbage(fd, &gerr);
	if (r < 0)
		log_warn("%s", gerr.msg);
	pthread_mutex_unlock(&store_lock);
	return 0;
}

static int cmp_created(const void *a, const void *b)
{
	const char *x =
	    cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(*(cJSON *const *)a, "created"));
	const char *y =
	    cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(*(cJSON *const *)b, "created"));

	return strcmp(x ? x : "", y ? y : "");
}

/* Oldest first (ISO 8601 times sort as strings); damaged entries first of all. */
static void sort_by_created(cJSON *a)
{
	int n = cJSON_GetArraySize(a);
	_cleanup_free_ cJSON **items = n > 0 ? calloc((size_t)n, sizeof(cJSON *)) : NULL;

	if (!items)
		return;
	for (int i = n - 1; i >= 0; i--)
		items[i] = cJSON_DetachItemFromArray(a, i);
	qsort(items, (size_t)n, sizeof(cJSON *), cmp_created);
	for (int i = 0; i < n; i++)
		cJSON_AddItemToArray(a, items[i]);
}

int snapshot_list(const char *state_dir, cJSON **out, struct al_error *err)
{
	_cleanup_cjson_ cJSON *o = cJSON_CreateObject();
	_cleanup_close_ int fd = -1;
	_cleanup_closedir_ DIR *d = NULL;
	_cleanup_strv_ char **ids = NULL;
	size_t n = 0;
	struct dirent *de;
	cJSON *a;
	int dfd;

	fd = open_store(state_dir, err);
	if (fd < 0)
		return fd;
	a = cJSON_AddArrayToObject(o, "snapshots");
	dfd = openat(fd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC); /* own offset */
	d = dfd >= 0 ? fdopendir(dfd) : NULL;
	if (!d)
		return al_error_errno(err, "open snapshot store");
	while ((de = readdir(d))) {
		char **nv;
		if (de->d_name[0] == '.' || !strcmp(de->d_name, "chunks") ||
		    !strcmp(de->d_name, "packs"))
			continue;
		nv = realloc(ids, (n + 2) * sizeof(char *));
		if (!nv)
			return al_error_set(err, ENOMEM, "out of memory");
		ids = nv;
		ids[n++] = strdup(de->d_name);
		ids[n] = NULL;
	}
	for (size_t i = 0; i < n; i++) {
		struct al_error lerr = AL_ERROR_INIT;
		cJSON *j = NULL;
		if (load_snapshot(fd, ids[i], &j, NULL, &lerr) < 0) {
			/* Listed, so it can be found and removed, but marked. */
			cJSON *bad = cJSON_CreateObject();
			cJSON_AddStringToObject(bad, "id", ids[i]);
			cJSON_AddStringToObject(bad, "error", lerr.msg);
			cJSON_AddItemToArray(a, bad);
			continue;
		}
		cJSON_AddItemToArray(a, summary_of(j));
		cJSON_Delete(j);
	}
	sort_by_created(a);
	*out = TAKE_PTR(o);
	return 0;
}

int snapshot_remove(const char *state_dir, const char *id, struct al_error *err)
{
	struct al_error gerr = AL_ERROR_INIT;
	_cleanup_close_ int fd = -1;
	struct stat st;
	int r;

	if (!al_valid_name(id))
		return al_error_set(err, EINVAL, "invalid snapshot id '%s'", id);
	fd = open_store(state_dir, err);
	if (fd < 0)
		return fd;
	pthread_mutex_lock(&store_lock);
	if (fstatat(fd, id, &st, AT_SYMLINK_NOFOLLOW) < 0 || !S_ISDIR(st.st_mode) ||
	    !strcmp(id, "chunks") || !strcmp(id, "packs")) {
		pthread_mutex_unlock(&store_lock);
		return al_error_set(err, ENOENT, "no snapshot '%s'", id);
	}
	/* snapshot.json first: from then on the snapshot is gone for everyone. */
	{
		char json[PATH_MAX];
		snprintf(json, sizeof(json), "%s/snapshot.json", id);
		unlinkat(fd, json, 0);
	}
	r = al_rm_rf_at(fd, id, err);
	if (r == 0 && collect_garbage(fd, &gerr) < 0)
		log_warn("%s", gerr.msg); /* the snapshot is gone all the same */
	pthread_mutex_unlock(&store_lock);
	if (r == 0)
		log_info("snapshot %s removed", id);
	return r;
}

/* ---- writing a snapshot -----------------------------------------------------------------------
 */

struct snapshot_writer {
	int store_fd;
	int snap_fd; /* .tmp-ID/ */
	char id[16];
	char tmp_name[32];
	char parent[32]; /* "" for none */
	char store[PATH_MAX];
	struct chunk_store *cs;
	cJSON *parts;
	uint64_t written;
	uint64_t t0;
	bool locked, committed;
};

void snapshot_writer_free(struct snapshot_writer *w)
{
	if (!w)
		return;
	if (w->store_fd >= 0 && w->tmp_name[0] && !w->committed) {
		struct al_error e = AL_ERROR_INIT;
		if (al_rm_rf_at(w->store_fd, w->tmp_name, &e) < 0)
			log_error("%s", e.msg);
	}
	chunk_store_free(w->cs);
	cJSON_Delete(w->parts);
	if (w->snap_fd >= 0)
		close(w->snap_fd);
	if (w->store_fd >= 0)
		close(w->store_fd);
	if (w->locked)
		pthread_mutex_unlock(&store_lock);
	free(w);
}

/* Every packed chunk of snapshot parent becomes a place to share from.  A
 * parent that cannot be read shares nothing (the new snapshot then stores
 * everything itself). */
static int index_parent(struct snapshot_writer *w, const char *parent, struct al_error *err)
{
	_cleanup_cjson_ cJSON *j = NULL;
	struct al_error lerr = AL_ERROR_INIT;
	const cJSON *part;

	if (load_snapshot(w->store_fd, parent, &j, NULL, &lerr) < 0)
		return 0;
	cJSON_ArrayForEach(part, cJSON_GetObjectItemCaseSensitive(j, "parts"))
	{
		int r = chunk_store_index_part(w->cs, part, err);
		if (r < 0)
			return r;
	}
	return 0;
}

static int writer_begin(struct snapshot_writer *w, const char *state_dir, const char *parent,
                        struct al_error *err)
{
	int r;

	r = al_random_hex(w->id, 12, err);
	if (r < 0)
		return r;
	store_dir(state_dir, w->store, sizeof(w->store));
	w->store_fd = open_store(state_dir, err);
	if (w->store_fd < 0)
		return w->store_fd;
	pthread_mutex_lock(&store_lock);
	w->locked = true;
	snprintf(w->tmp_name, sizeof(w->tmp_name), ".tmp-%s", w->id);
	if (mkdirat(w->store_fd, w->tmp_name, 0700) < 0)
		return al_error_errno(err, "mkdir %s/%s", w->store, w->tmp_name);
	w->snap_fd = open_dir_at(w->store_fd, w->tmp_name, err);
	if (w->snap_fd < 0)
		return w->snap_fd;
	r = chunk_store_open(w->store_fd, &w->cs, err);
	if (r == 0)
		r = chunk_store_begin_pack(w->cs, w->id, err);
	if (r < 0)
		return r;
	w->parts = cJSON_CreateArray();
	if (!w->parts)
		return al_error_set(err, ENOMEM, "out of memory");
	/* A parent that is gone (removed since) is no parent. */
	if (parent && (!al_valid_name(parent) || faccessat(w->store_fd, parent, F_OK, 0) != 0))
		parent = NULL;
	if (parent) {
		snprintf(w->parent, sizeof(w->parent), "%s", parent);
		r = index_parent(w, parent, err);
		if (r < 0)
			return r;
	}
	return 0;
}

int snapshot_writer_begin(const char *state_dir, const char *parent, struct snapshot_writer **out,
                          struct al_error *err)
{
	struct snapshot_writer *w = calloc(1, sizeof(*w));
	int r;

	if (!w)
		return al_error_set(err, ENOMEM, "out of memory");
	w->store_fd = w->snap_fd = -1;
	w->t0 = al_now_ms();
	r = writer_begin(w, state_dir, parent, err);
	if (r < 0) {
		snapshot_writer_free(w);
		return r;
	}
	*out = w;
	return 0;
}

const char *snapshot_writer_id(const struct snapshot_writer *w)
{
	return w->id;
}

void snapshot_writer_scratch_path(const struct snapshot_writer *w, const char *name, char *buf,
                                  size_t len)
{
	snprintf(buf, len, "%s/%s/%s", w->store, w->tmp_name, name);
}

int snapshot_writer_add_dir(struct snapshot_writer *w, const char *prefix, int dir_fd,
                            uint64_t *size, struct al_error *err)
{
	int fd = openat(dir_fd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC); /* own offset */
	_cleanup_closedir_ DIR *d = fd >= 0 ? fdopendir(fd) : NULL;
	struct dirent *de;
	int r;

	if (!d) {
		r = al_error_errno(err, "open the directory of %s", prefix);
		if (fd >= 0)
			close(fd);
		return r;
	}
	while ((de = readdir(d))) {
		_cleanup_close_ int fd = -1;
		char name[PATH_MAX];
		struct stat st;
		if (de->d_name[0] == '.')
			continue;
		fd = openat(dirfd(d), de->d_name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
		if (fd < 0 || fstat(fd, &st) < 0 || !S_ISREG(st.st_mode))
			continue;
		snprintf(name, sizeof(name), "%s%s", prefix, de->d_name);
		r = chunk_store_add_part(w->cs, name, fd, w->parts, &w->written, err);
		if (r < 0)
			return r;
		*size += (uint64_t)st.st_size;
	}
	return 0;
}

int snapshot_writer_create_file(struct snapshot_writer *w, const char *name, struct al_error *err)
{
	int fd = openat(w->snap_fd, name, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);

	return fd < 0 ? al_error_errno(err, "create %s", name) : fd;
}

int snapshot_writer_add_file(struct snapshot_writer *w, const char *name, int fd, uint64_t *size,
                             struct al_error *err)
{
	cJSON *part;
	char hex[65];
	int r;

	if (lseek(fd, 0, SEEK_SET) != 0)
		return al_error_errno(err, "seek %s", name);
	r = chunk_file_sha256(fd, hex, size, err);
	if (r < 0)
		return r;
	/* Durable before the record that names it (snapshot_writer_commit). */
	if (fdatasync(fd) < 0)
		return al_error_errno(err, "fsync %s", name);
	w->written += *size;
	part = cJSON_CreateObject();
	if (!part || !cJSON_AddItemToArray(w->parts, part) ||
	    !cJSON_AddStringToObject(part, "name", name) ||
	    !cJSON_AddStringToObject(part, "storage", "file") ||
	    !cJSON_AddNumberToObject(part, "size", (double)*size) ||
	    !cJSON_AddStringToObject(part, "sha256", hex))
		return al_error_set(err, ENOMEM, "out of memory");
	return 0;
}

int snapshot_writer_tmpfile(struct snapshot_writer *w, struct al_error *err)
{
	int fd = openat(w->snap_fd, ".", O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);

	return fd < 0 ? al_error_errno(err, "temp file in %s", w->store) : fd;
}

int snapshot_writer_add_chunked(struct snapshot_writer *w, const char *name, int fd,
                                struct al_error *err)
{
	if (lseek(fd, 0, SEEK_SET) != 0)
		return al_error_errno(err, "seek %s", name);
	return chunk_store_add_part(w->cs, name, fd, w->parts, &w->written, err);
}

int snapshot_writer_commit(struct snapshot_writer *w, cJSON *meta, const cJSON *sizes_in,
                           cJSON **summary, struct al_error *err)
{
	_cleanup_cjson_ cJSON *j = cJSON_CreateObject();
	_cleanup_free_ char *text = NULL;
	const cJSON *it;
	char created[40], path[PATH_MAX];
	double total = 0;
	cJSON *sizes;
	int r;

	if (!j)
		return al_error_set(err, ENOMEM, "out of memory");
	al_iso8601_now(created, sizeof(created), true);
	cJSON_AddStringToObject(j, "format", SNAPSHOT_FORMAT);
	cJSON_AddNumberToObject(j, "version", SNAPSHOT_VERSION);
	cJSON_AddStringToObject(j, "id", w->id);
	if (w->parent[0])
		cJSON_AddStringToObject(j, "parent", w->parent);
	else
		cJSON_AddNullToObject(j, "parent");
	cJSON_AddStringToObject(j, "created", created);
	cJSON_AddStringToObject(j, "provider", "airlock");
	/* The caller's description: processes, sandbox, manifest, session_state. */
	while (meta && meta->child) {
		cJSON *item = cJSON_DetachItemViaPointer(meta, meta->child);
		cJSON_AddItemToObject(j, item->string, item);
	}
	sizes = cJSON_AddObjectToObject(j, "sizes");
	cJSON_ArrayForEach(it, sizes_in)
	{
		cJSON_AddNumberToObject(sizes, it->string, cJSON_GetNumberValue(it));
		total += cJSON_GetNumberValue(it);
	}
	cJSON_AddNumberToObject(sizes, "total", total);
	cJSON_AddNumberToObject(sizes, "written", (double)w->written);
	cJSON_AddItemToObject(j, "parts", TAKE_PTR(w->parts));

	/* Commit: data durable, then the description, then the name.  A pack
	 * named but not yet committed is removed on failure, or after a crash
	 * by the next garbage collection (nothing names it). */
	r = chunk_store_seal_pack(w->cs, err);
	if (r < 0)
		return r;
	text = cJSON_PrintUnformatted(j);
	if (!text)
		return al_error_set(err, ENOMEM, "out of memory");
	snprintf(path, sizeof(path), "%s/%s/snapshot.json", w->store, w->tmp_name);
	r = al_write_file_atomic(path, text, strlen(text), 0600, err);
	if (r < 0)
		return r;
	/* Only what this snapshot wrote is made durable: a syncfs() would also
	 * wait for every other program's dirty pages on the same filesystem
	 * (hundreds of ms on a busy host).  The pack is synced by
	 * chunk_store_seal_pack, workspace.tar by snapshot_writer_add_file,
	 * snapshot.json by al_write_file_atomic; here, the directory naming
	 * them, before it gets its final name. */
	if (fsync(w->snap_fd) < 0)
		return al_error_errno(err, "fsync %s/%s", w->store, w->tmp_name);
	if (renameat(w->store_fd, w->tmp_name, w->store_fd, w->id) < 0)
		return al_error_errno(err, "rename %s to %s", w->tmp_name, w->id);
	w->committed = true;
	chunk_store_keep_pack(w->cs);
	/* Committed whatever happens next; a failed fsync only means a power
	 * cut could still lose it. */
	if (fsync(w->store_fd) < 0 || chunk_store_sync(w->cs) < 0)
		log_warn("snapshot %s: fsync %s: %s", w->id, w->store, strerror(errno));
	log_info("snapshot %s: %.0f bytes, %llu written, %llu ms", w->id, total,
	         (unsigned long long)w->written, (unsigned long long)(al_now_ms() - w->t0));
	*summary = summary_of(j);
	return *summary ? 0 : al_error_set(err, ENOMEM, "out of memory");
}

/* ---- reading a snapshot ------------------------------------------------------------------------
 */

struct snapshot_reader {
	int store_fd, snap_fd;
	struct chunk_store *cs;
	cJSON *record;
	bool locked;
};

void snapshot_reader_free(struct snapshot_reader *rd)
{
	if (!rd)
		return;
	chunk_store_free(rd->cs);
	cJSON_Delete(rd->record);
	if (rd->snap_fd >= 0)
		close(rd->snap_fd);
	if (rd->store_fd >= 0)
		close(rd->store_fd);
	if (rd->locked)
		pthread_mutex_unlock(&store_lock);
	free(rd);
}

int snapshot_reader_open(const char *state_dir, const char *id, struct snapshot_reader **out,
                         struct al_error *err)
{
	struct snapshot_reader *rd = calloc(1, sizeof(*rd));
	int r;

	if (!rd)
		return al_error_set(err, ENOMEM, "out of memory");
	rd->snap_fd = -1;
	rd->store_fd = open_store(state_dir, err);
	r = rd->store_fd < 0 ? rd->store_fd : chunk_store_open(rd->store_fd, &rd->cs, err);
	if (r == 0) {
		/* Held until the reader is freed, so a removal cannot race the restore. */
		pthread_mutex_lock(&store_lock);
		rd->locked = true;
		r = load_snapshot(rd->store_fd, id, &rd->record, &rd->snap_fd, err);
	}
	if (r < 0) {
		snapshot_reader_free(rd);
		return r;
	}
	*out = rd;
	return 0;
}

const cJSON *snapshot_reader_record(const struct snapshot_reader *rd)
{
	return rd->record;
}

int snapshot_reader_read_part(struct snapshot_reader *rd, const cJSON *part, int out_fd,
                              struct al_error *err)
{
	return chunk_store_read_part(rd->cs, rd->snap_fd, part, out_fd, err);
}
