/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Sandbox lifecycle in airlockd: create, reattach after a restart, inspect,
 * destroy.  A sandbox's host-side state lives in state/sandboxes/ID:
 *
 *   config.json  what airlock-init needs to build the sandbox
 *   state.json   written (atomically) only once the sandbox is ready; its
 *                absence after a crash marks a half-made sandbox
 *   upper/ work/ the private writable layer of the overlay
 *   root/        where the root is attached, in the sandbox's mount namespace only
 *
 * Every process of a sandbox lives in its cgroups, so destroying the cgroups
 * is the authoritative way to make sure nothing of it survives.
 */
#include "sandbox.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/sched.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <linux/magic.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "archives.h"
#include "caps.h"
#include "cleanup.h"
#include "json.h"
#include "criu.h"
#include "events.h"
#include "initproto.h"
#include "log.h"
#include "manifest.h"
#include "mounts.h"
#include "pool.h"
#include "process.h"
#include "reaper.h"
#include "seccomp_profile.h"
#include "snapshot.h"
#include "util.h"

#define DEFAULT_MEMORY (1ULL << 30)
#define DEFAULT_PIDS 1024
#define DEFAULT_DISK (4ULL << 30)
#define DISK_INODES_PER_MIB 64
#define READY_TIMEOUT_MS 30000

/* ---- references and lookup ------------------------------------------------------------ */

void sandbox_ref(struct sandbox *sb)
{
	__atomic_add_fetch(&sb->refs, 1, __ATOMIC_SEQ_CST);
}

static void sandbox_free(struct sandbox *sb)
{
	for (size_t i = 0; i < sb->n_procs; i++)
		process_unref(sb->procs[i].p);
	free(sb->procs);
	if (sb->pidfd >= 0)
		close(sb->pidfd);
	al_strv_freep(&sb->env);
	free(sb->rootfs);
	free(sb->workspace);
	free(sb->dir);
	pthread_mutex_destroy(&sb->lock);
	free(sb);
}

void sandbox_unref(struct sandbox *sb)
{
	if (sb && __atomic_sub_fetch(&sb->refs, 1, __ATOMIC_SEQ_CST) == 0)
		sandbox_free(sb);
}

static struct sandbox *sandbox_new(void)
{
	struct sandbox *sb = calloc(1, sizeof(*sb));

	if (!sb)
		return NULL;
	pthread_mutex_init(&sb->lock, NULL);
	sb->refs = 1;
	sb->pidfd = -1;
	sb->init_pid = -1;
	return sb;
}

struct sandbox *sandbox_get(struct daemon_ctx *ctx, const char *id)
{
	struct sandbox *found = NULL;

	pthread_mutex_lock(&ctx->lock);
	for (size_t i = 0; i < ctx->n_sandboxes; i++) {
		struct sandbox *sb = ctx->sandboxes[i];
		if (sb->pooled || sb->reaping)
			continue;
		if (!strcmp(sb->id, id) || !strcmp(sb->name, id)) {
			found = sb;
			sandbox_ref(sb);
			break;
		}
	}
	pthread_mutex_unlock(&ctx->lock);
	return found;
}

static int registry_add_locked(struct daemon_ctx *ctx, struct sandbox *sb)
{
	struct sandbox **n = realloc(ctx->sandboxes, (ctx->n_sandboxes + 1) * sizeof(*n));

	if (!n)
		return -ENOMEM;
	ctx->sandboxes = n;
	ctx->sandboxes[ctx->n_sandboxes++] = sb;
	sandbox_ref(sb);
	return 0;
}

static void registry_remove(struct daemon_ctx *ctx, struct sandbox *sb)
{
	bool removed = false;

	pthread_mutex_lock(&ctx->lock);
	for (size_t i = 0; i < ctx->n_sandboxes; i++) {
		if (ctx->sandboxes[i] == sb) {
			ctx->sandboxes[i] = ctx->sandboxes[--ctx->n_sandboxes];
			removed = true;
			break;
		}
	}
	pthread_cond_broadcast(&ctx->reaped);
	pthread_mutex_unlock(&ctx->lock);
	if (removed)
		sandbox_unref(sb);
}

/* Lowest uid slot not used by a live sandbox; called with ctx->lock held. */
static int alloc_uid_slot_locked(struct daemon_ctx *ctx, uint32_t *slot)
{
	for (uint32_t s = 0; s < AIRLOCK_UID_SLOTS; s++) {
		bool used = false;
		for (size_t i = 0; i < ctx->n_sandboxes && !used; i++)
			used = ctx->sandboxes[i]->uid_slot == s;
		if (!used) {
			*slot = s;
			return 0;
		}
	}
	return -ENOSPC;
}

/* True while a destroyed sandbox still holds uid slot; ctx->lock held. */
static bool uid_slot_reaping_locked(struct daemon_ctx *ctx, uint32_t slot)
{
	for (size_t i = 0; i < ctx->n_sandboxes; i++)
		if (ctx->sandboxes[i]->uid_slot == slot && ctx->sandboxes[i]->reaping)
			return true;
	return false;
}

/* ---- process start time (guards against pid reuse across restarts) ---------------------- */

static int read_start_time(pid_t pid, unsigned long long *out)
{
	_cleanup_free_ char *text = NULL;
	char path[64], *p;
	int field = 2;

	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	if (al_read_file(path, 8192, &text, NULL, NULL) < 0)
		return -ESRCH;
	/* comm may contain spaces and parentheses: fields start after the last ')'. */
	p = strrchr(text, ')');
	if (!p)
		return -EINVAL;
	p++;
	while (*p && field < 22) {
		if (*p == ' ')
			field++;
		p++;
	}
	*out = strtoull(p, NULL, 10);
	return 0;
}

bool sandbox_running(const struct sandbox *sb)
{
	unsigned long long st;
	struct pollfd pfd;

	if (sb->init_pid <= 0)
		return false;
	if (sb->pidfd >= 0) {
		pfd.fd = sb->pidfd;
		pfd.events = POLLIN;
		/* A pidfd becomes readable when the process exits. */
		return poll(&pfd, 1, 0) == 0;
	}
	return read_start_time(sb->init_pid, &st) == 0 && st == sb->init_start;
}

/* ---- state files ---------------------------------------------------------------------- */

static cJSON *limits_json(const struct cgroup_limits *l)
{
	cJSON *o = cJSON_CreateObject();

	cJSON_AddNumberToObject(o, "memory_bytes", (double)l->memory_bytes);
	cJSON_AddNumberToObject(o, "pids", (double)l->pids);
	cJSON_AddNumberToObject(o, "cpus", l->cpus);
	return o;
}

static cJSON *strv_json(char **v)
{
	cJSON *a = cJSON_CreateArray();
	for (; v && *v; v++)
		cJSON_AddItemToArray(a, cJSON_CreateString(*v));
	return a;
}

static int write_state(const struct sandbox *sb, struct al_error *err)
{
	_cleanup_cjson_ cJSON *o = cJSON_CreateObject();
	_cleanup_free_ char *text = NULL;
	char path[PATH_MAX];

	cJSON_AddNumberToObject(o, "version", 1);
	cJSON_AddStringToObject(o, "id", sb->id);
	if (sb->pooled)
		cJSON_AddBoolToObject(o, "pooled", true);
	cJSON_AddStringToObject(o, "name", sb->name);
	cJSON_AddStringToObject(o, "created", sb->created);
	cJSON_AddStringToObject(o, "rootfs", sb->rootfs);
	cJSON_AddStringToObject(o, "workspace", sb->workspace);
	cJSON_AddStringToObject(o, "seccomp_profile", sb->profile);
	cJSON_AddNumberToObject(o, "init_pid", sb->init_pid);
	cJSON_AddNumberToObject(o, "init_start", (double)sb->init_start);
	cJSON_AddNumberToObject(o, "uid_slot", sb->uid_slot);
	cJSON_AddNumberToObject(o, "uid_base", sb->uid_base);
	cJSON_AddItemToObject(o, "limits", limits_json(&sb->limits));
	cJSON_AddNumberToObject(o, "disk_bytes", (double)sb->disk_bytes);
	cJSON_AddItemToObject(o, "env", strv_json(sb->env));
	text = cJSON_Print(o);
	if (!text)
		return al_error_set(err, ENOMEM, "out of memory");
	snprintf(path, sizeof(path), "%s/state.json", sb->dir);
	/* No fsync: the sandbox does not survive a crash of the machine, and an
	 * empty state.json after one only marks it as gone. */
	return al_write_file_replace(path, text, strlen(text), 0600, err);
}

static char **json_to_strv(const cJSON *a)
{
	const cJSON *it;
	size_t n = 0, i = 0;
	char **v;

	cJSON_ArrayForEach(it, a) n++;
	v = calloc(n + 1, sizeof(char *));
	if (!v)
		return NULL;
	cJSON_ArrayForEach(it, a)
	{
		if (cJSON_IsString(it))
			v[i++] = strdup(it->valuestring);
	}
	return v;
}

static const char *jstr(const cJSON *o, const char *k)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
	return cJSON_IsString(v) ? v->valuestring : NULL;
}

static double jnum(const cJSON *o, const char *k)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
	return cJSON_IsNumber(v) ? v->valuedouble : 0;
}

static int load_state(struct daemon_ctx *ctx, const char *id, struct sandbox **out,
                      struct al_error *err)
{
	_cleanup_free_ char *text = NULL;
	_cleanup_cjson_ cJSON *o = NULL;
	char path[PATH_MAX];
	struct sandbox *sb;
	const cJSON *lim;
	int r;

	snprintf(path, sizeof(path), "%s/%s/state.json", ctx->sandboxes_dir, id);
	r = al_read_file(path, 1 << 20, &text, NULL, err);
	if (r < 0)
		return r;
	o = cJSON_Parse(text);
	if (!o || !jstr(o, "id") || strcmp(jstr(o, "id"), id) || !jstr(o, "rootfs"))
		return al_error_set(err, EINVAL, "%s: malformed", path);
	sb = sandbox_new();
	if (!sb)
		return al_error_set(err, ENOMEM, "out of memory");
	snprintf(sb->id, sizeof(sb->id), "%s", id);
	snprintf(sb->name, sizeof(sb->name), "%s", jstr(o, "name") ? jstr(o, "name") : id);
	snprintf(sb->created, sizeof(sb->created), "%s",
	         jstr(o, "created") ? jstr(o, "created") : "");
	snprintf(sb->profile, sizeof(sb->profile), "%s",
	         jstr(o, "seccomp_profile") ? jstr(o, "seccomp_profile") : "default");
	sb->rootfs = strdup(jstr(o, "rootfs"));
	sb->workspace = strdup(jstr(o, "workspace") ? jstr(o, "workspace") : "/workspace");
	sb->init_pid = (pid_t)jnum(o, "init_pid");
	sb->init_start = (unsigned long long)jnum(o, "init_start");
	sb->uid_slot = (uint32_t)jnum(o, "uid_slot");
	sb->uid_base = (uid_t)jnum(o, "uid_base");
	lim = cJSON_GetObjectItemCaseSensitive(o, "limits");
	sb->limits.memory_bytes = (uint64_t)jnum(lim, "memory_bytes");
	sb->limits.pids = (uint64_t)jnum(lim, "pids");
	sb->limits.cpus = jnum(lim, "cpus");
	sb->disk_bytes = (uint64_t)jnum(o, "disk_bytes");
	sb->env = json_to_strv(cJSON_GetObjectItemCaseSensitive(o, "env"));
	sb->pooled = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(o, "pooled"));
	if (asprintf(&sb->dir, "%s/%s", ctx->sandboxes_dir, id) < 0)
		sb->dir = NULL;
	if (!sb->rootfs || !sb->workspace || !sb->env || !sb->dir) {
		sandbox_unref(sb);
		return al_error_set(err, ENOMEM, "out of memory");
	}
	*out = sb;
	return 0;
}

/* ---- teardown ------------------------------------------------------------------------- */

/* Remove everything of sandbox `id` that may exist; safe on half-made sandboxes. */
static int cleanup_remains(struct daemon_ctx *ctx, const char *id, struct al_error *err)
{
	char dir[PATH_MAX];
	int r;

	/* Killing the cgroup kills airlock-init and with it the pid namespace,
	 * its mount namespace (every sandbox mount) and its network namespace. */
	r = cgroup_destroy(ctx->cgroups, id, err);
	if (r < 0)
		return al_error_prefix(err, "sandbox %s", id);
	snprintf(dir, sizeof(dir), "%s/%s", ctx->sandboxes_dir, id);
	/* The writable layer's tmpfs; EINVAL means it was never mounted. */
	if (umount2(dir, MNT_DETACH) < 0 && errno != EINVAL && errno != ENOENT)
		return al_error_errno(err, "sandbox %s: umount %s", id, dir);
	r = al_rm_rf(dir, err);
	if (r < 0)
		return al_error_prefix(err, "sandbox %s", id);
	return 0;
}

static void wait_init_exit(struct sandbox *sb)
{
	if (sb->pidfd >= 0 && sb->our_child) {
		siginfo_t si;
		while (waitid((idtype_t)P_PIDFD, (id_t)sb->pidfd, &si, WEXITED) < 0 &&
		       errno == EINTR)
			;
	} else if (sb->pidfd >= 0) {
		struct pollfd pfd = {.fd = sb->pidfd, .events = POLLIN};
		poll(&pfd, 1, 5000);
	}
}

static void kill_init(struct sandbox *sb)
{
	if (sb->pidfd >= 0)
		syscall(SYS_pidfd_send_signal, sb->pidfd, SIGKILL, NULL, 0);
	wait_init_exit(sb);
}

int sandbox_destroy(struct daemon_ctx *ctx, struct sandbox *sb, bool wait, struct al_error *err)
{
	char path[PATH_MAX];

	pthread_mutex_lock(&sb->lock);
	if (sb->destroying) {
		pthread_mutex_unlock(&sb->lock);
		return al_error_set(err, ENOENT, "sandbox %s is being destroyed", sb->id);
	}
	sb->destroying = true;
	pthread_mutex_unlock(&sb->lock);
	pthread_mutex_lock(&ctx->lock);
	sb->reaping = true;
	pthread_mutex_unlock(&ctx->lock);

	if (wait)
		return sandbox_teardown(ctx, sb, err);
	/*
	 * Not waited for: stopped now, torn down later (reaper.h).  Without
	 * state.json an airlockd restarted before that treats it as half-made
	 * and removes it, rather than reattaching it.  Freezing stops it as
	 * surely as SIGKILL but leaves the kernel's share of the teardown (the
	 * namespaces' exit, RCU grace periods) for the reaper to start when
	 * requests pause; a host without a freezer gets the SIGKILL now.
	 */
	snprintf(path, sizeof(path), "%s/state.json", sb->dir);
	if (unlink(path) < 0 && errno != ENOENT)
		log_warn("sandbox %s: unlink %s: %m", sb->id, path);
	sb->frozen = cgroup_freeze_start(ctx->cgroups, sb->id, err) == 0;
	if (!sb->frozen) {
		al_error_clear(err);
		if (sb->pidfd >= 0)
			syscall(SYS_pidfd_send_signal, sb->pidfd, SIGKILL, NULL, 0);
	}
	reaper_queue(ctx, sb);
	return 0;
}

int sandbox_teardown(struct daemon_ctx *ctx, struct sandbox *sb, struct al_error *err)
{
	struct sandbox_proc *procs;
	size_t n;
	int r;

	pthread_mutex_lock(&sb->lock);
	procs = sb->procs;
	n = sb->n_procs;
	sb->procs = NULL;
	sb->n_procs = 0;
	pthread_mutex_unlock(&sb->lock);

	/* Frozen by an unwaited destroy: its tasks die once thawed. */
	if (sb->frozen) {
		if (sb->pidfd >= 0)
			syscall(SYS_pidfd_send_signal, sb->pidfd, SIGKILL, NULL, 0);
		(void)cgroup_freeze(ctx->cgroups, sb->id, false, NULL, NULL);
	}
	kill_init(sb);
	/* With init gone the collectors see their connections close. */
	for (size_t i = 0; i < n; i++)
		process_unref(procs[i].p);
	free(procs);

	r = cleanup_remains(ctx, sb->id, err);
	events_forget(sb->id);
	registry_remove(ctx, sb);
	if (r < 0)
		return r;
	log_info("sandbox %s destroyed", sb->id);
	return 0;
}

/* ---- seccomp profile cache ------------------------------------------------------------- */

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
static int cached_filter_path(struct daemon_ctx *ctx, const char *hash, char **out,
                              struct al_error *err)
{
	_cleanup_free_ char *path = NULL;

	if (asprintf(&path, "%s/%s.bpf", ctx->seccomp_cache_dir, hash) < 0) {
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
static int seccomp_filter_path(struct daemon_ctx *ctx, const char *profile, char **out,
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
	if (asprintf(&file, "%s/%s.json", ctx->profiles_dir, profile) < 0)
		return al_error_set(err, ENOMEM, "out of memory");
	/* stat before the read: should the file change in between, the hash is
	 * remembered under the old identity and never matches again. */
	have_st = stat(file, &st) == 0 && S_ISREG(st.st_mode);
	if (have_st && profile_hash_lookup(file, &st, hash)) {
		r = cached_filter_path(ctx, hash, out, err);
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
	/* The profile is cached as the two programs of seccomp_profile_compile_split(). */
	al_buf_append(&key, "\nsplit-logged", strlen("\nsplit-logged"));
	keyed = key.data;
	if (!keyed)
		return al_error_set(err, ENOMEM, "out of memory");
	al_sha256_hex(keyed, key.len, hash);
	if (asprintf(&path, "%s/%s.bpf", ctx->seccomp_cache_dir, hash) < 0 ||
	    asprintf(&compat_path, "%s/%s.compat.bpf", ctx->seccomp_cache_dir, hash) < 0)
		return al_error_set(err, ENOMEM, "out of memory");

	pthread_mutex_lock(&ctx->lock);
	if (access(path, R_OK) != 0) {
		r = seccomp_profile_compile_split(json, len, al_default_caps, &bpf, &compat, err);
		/* The main file last: its presence says the pair is complete. */
		if (r == 0 && compat.len > 0)
			r = al_write_file_atomic(compat_path, compat.prog, compat.len, 0600, err);
		if (r == 0)
			r = al_write_file_atomic(path, bpf.prog, bpf.len, 0600, err);
		al_bpf_free(&bpf);
		al_bpf_free(&compat);
	}
	pthread_mutex_unlock(&ctx->lock);
	if (r < 0) {
		err->code = EINVAL; /* a profile that cannot be read or compiled is bad input */
		return al_error_prefix(err, "seccomp profile '%s'", profile);
	}
	if (have_st)
		profile_hash_remember(file, &st, hash);
	*out = TAKE_PTR(path);
	return 0;
}

/* ---- create ---------------------------------------------------------------------------- */

struct create_params {
	char name[64];
	char *rootfs;
	char profile[64];
	struct cgroup_limits limits;
	uint64_t disk_bytes;
	char **env;
	struct manifest *manifest;
};

static void create_params_free(struct create_params *p)
{
	free(p->rootfs);
	al_strv_freep(&p->env);
	if (p->manifest)
		manifest_free(p->manifest);
}

static int parse_memory(const cJSON *v, uint64_t *out, struct al_error *err)
{
	if (cJSON_IsNumber(v)) {
		if (v->valuedouble < 0)
			return al_error_set(err, EINVAL, "limits.memory must not be negative");
		*out = (uint64_t)v->valuedouble;
		return 0;
	}
	if (cJSON_IsString(v))
		return al_parse_size(v->valuestring, out, err);
	return al_error_set(err, EINVAL,
	                    "limits.memory must be a number of bytes or a size string");
}

static int add_env(char ***env, const char *k, const char *v)
{
	size_t n = 0;
	char **nv, *kv;

	for (char **e = *env; e && *e; e++, n++) {
		size_t kl = strlen(k);
		if (!strncmp(*e, k, kl) && (*e)[kl] == '=') {
			if (asprintf(&kv, "%s=%s", k, v) < 0)
				return -ENOMEM;
			free(*e);
			*e = kv;
			return 0;
		}
	}
	nv = realloc(*env, (n + 2) * sizeof(char *));
	if (!nv)
		return -ENOMEM;
	*env = nv;
	if (asprintf(&kv, "%s=%s", k, v) < 0)
		return -ENOMEM;
	nv[n] = kv;
	nv[n + 1] = NULL;
	return 0;
}

/* True when path is dir itself or below it (both canonical). */
static bool path_within(const char *path, const char *dir)
{
	size_t n = strlen(dir);
	return !strncmp(path, dir, n) && (path[n] == '/' || path[n] == '\0' || !strcmp(dir, "/"));
}

static int parse_create(struct daemon_ctx *ctx, const cJSON *req, bool trusted,
                        struct create_params *p, struct al_error *err)
{
	const cJSON *v, *lim, *it;
	struct stat st;
	char *resolved;
	int r;

	if (req && !cJSON_IsObject(req))
		return al_error_set(err, EINVAL, "request body must be a JSON object");
	snprintf(p->profile, sizeof(p->profile), "default");
	p->limits.memory_bytes = DEFAULT_MEMORY;
	p->limits.pids = DEFAULT_PIDS;
	p->disk_bytes = DEFAULT_DISK;

	if ((v = cJSON_GetObjectItemCaseSensitive(req, "name")) && !cJSON_IsNull(v)) {
		if (!cJSON_IsString(v) || !al_valid_name(v->valuestring))
			return al_error_set(err, EINVAL,
			                    "name must match [a-zA-Z0-9][a-zA-Z0-9_.-]{0,62}");
		snprintf(p->name, sizeof(p->name), "%s", v->valuestring);
	}
	v = cJSON_GetObjectItemCaseSensitive(req, "rootfs");
	if (v && !cJSON_IsNull(v) && (!cJSON_IsString(v) || v->valuestring[0] != '/'))
		return al_error_set(err, EINVAL, "rootfs must be an absolute path");
	resolved = realpath(cJSON_IsString(v) ? v->valuestring : ctx->default_rootfs, NULL);
	if (!resolved)
		return al_error_set(err, EINVAL, "rootfs %s: %s",
		                    cJSON_IsString(v) ? v->valuestring : ctx->default_rootfs,
		                    strerror(errno));
	p->rootfs = resolved;
	if (stat(p->rootfs, &st) < 0 || !S_ISDIR(st.st_mode))
		return al_error_set(err, EINVAL, "rootfs %s is not a directory", p->rootfs);
	if (!trusted) {
		_cleanup_free_ char *def = realpath(ctx->default_rootfs, NULL);
		char *slash = def ? strrchr(def, '/') : NULL;
		if (slash && slash != def)
			*slash = '\0';
		if (!def || !path_within(p->rootfs, def))
			return al_error_set(err, EPERM,
			                    "rootfs %s: only root may use a rootfs outside %s",
			                    p->rootfs, def ? def : "the default rootfs directory");
	}

	if ((v = cJSON_GetObjectItemCaseSensitive(req, "seccomp_profile")) && !cJSON_IsNull(v)) {
		if (!cJSON_IsString(v) || !al_valid_name(v->valuestring))
			return al_error_set(err, EINVAL, "invalid seccomp_profile");
		snprintf(p->profile, sizeof(p->profile), "%s", v->valuestring);
	}
	if ((v = cJSON_GetObjectItemCaseSensitive(req, "network")) && !cJSON_IsNull(v)) {
		if (!cJSON_IsString(v) ||
		    (strcmp(v->valuestring, "loopback") && strcmp(v->valuestring, "none")))
			return al_error_set(err, EINVAL,
			                    "network: only \"loopback\" is supported (got %s)",
			                    cJSON_IsString(v) ? v->valuestring : "a non-string");
	}
	lim = cJSON_GetObjectItemCaseSensitive(req, "limits");
	if (lim && !cJSON_IsNull(lim)) {
		if (!cJSON_IsObject(lim))
			return al_error_set(err, EINVAL, "limits must be an object");
		if ((v = cJSON_GetObjectItemCaseSensitive(lim, "memory_bytes")) ||
		    (v = cJSON_GetObjectItemCaseSensitive(lim, "memory"))) {
			r = parse_memory(v, &p->limits.memory_bytes, err);
			if (r < 0)
				return al_error_prefix(err, "limits");
			if (p->limits.memory_bytes && p->limits.memory_bytes < (4u << 20))
				return al_error_set(err, EINVAL,
				                    "limits.memory must be at least 4 MiB");
		}
		if ((v = cJSON_GetObjectItemCaseSensitive(lim, "pids"))) {
			if (!cJSON_IsNumber(v) || v->valuedouble < 0 || v->valuedouble > 4194304)
				return al_error_set(err, EINVAL, "limits.pids must be 0..4194304");
			p->limits.pids = (uint64_t)v->valuedouble;
			if (p->limits.pids && p->limits.pids < 2)
				return al_error_set(err, EINVAL, "limits.pids must be at least 2");
		}
		if ((v = cJSON_GetObjectItemCaseSensitive(lim, "cpus"))) {
			if (!cJSON_IsNumber(v) || v->valuedouble < 0 || v->valuedouble > 1024)
				return al_error_set(err, EINVAL, "limits.cpus must be 0..1024");
			p->limits.cpus = v->valuedouble;
			if (p->limits.cpus > 0 && p->limits.cpus < 0.01)
				return al_error_set(err, EINVAL,
				                    "limits.cpus must be at least 0.01");
		}
		if ((v = cJSON_GetObjectItemCaseSensitive(lim, "disk_bytes")) ||
		    (v = cJSON_GetObjectItemCaseSensitive(lim, "disk"))) {
			r = parse_memory(v, &p->disk_bytes, err);
			if (r < 0)
				return al_error_prefix(err, "limits.disk");
			if (p->disk_bytes < (1u << 20))
				return al_error_set(err, EINVAL,
				                    "limits.disk must be at least 1 MiB");
		}
	}

	if (add_env(&p->env, "PATH",
	            "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin") < 0 ||
	    add_env(&p->env, "HOME", "/root") < 0 || add_env(&p->env, "LANG", "C.UTF-8") < 0)
		return al_error_set(err, ENOMEM, "out of memory");
	if ((v = cJSON_GetObjectItemCaseSensitive(req, "manifest")) && !cJSON_IsNull(v)) {
		r = manifest_parse(v, 0, 0, &p->manifest, err);
		if (r < 0) {
			err->code = EINVAL; /* a missing local source is bad input too */
			return al_error_prefix(err, "manifest");
		}
		if (!trusted && manifest_first_host_source(p->manifest))
			return al_error_set(err, EPERM,
			                    "manifest entry '%s': only root may copy host files",
			                    manifest_first_host_source(p->manifest));
		for (char *const *e = manifest_environment(p->manifest); e && *e; e++) {
			_cleanup_free_ char *k = strdup(*e);
			char *eq = k ? strchr(k, '=') : NULL;
			if (!eq)
				continue;
			*eq = '\0';
			if (add_env(&p->env, k, eq + 1) < 0)
				return al_error_set(err, ENOMEM, "out of memory");
		}
	}
	v = cJSON_GetObjectItemCaseSensitive(req, "env");
	if (v && !cJSON_IsNull(v)) {
		if (!cJSON_IsObject(v))
			return al_error_set(err, EINVAL, "env must be an object of strings");
		cJSON_ArrayForEach(it, v)
		{
			if (!cJSON_IsString(it) || !it->string[0] || strchr(it->string, '='))
				return al_error_set(err, EINVAL, "env: invalid entry '%s'",
				                    it->string);
			if (add_env(&p->env, it->string, it->valuestring) < 0)
				return al_error_set(err, ENOMEM, "out of memory");
		}
	}
	return 0;
}

static int make_owned_dir(const char *path, mode_t mode, uid_t uid, struct al_error *err)
{
	if (mkdir(path, mode) < 0 && errno != EEXIST)
		return al_error_errno(err, "mkdir %s", path);
	if (chown(path, uid, (gid_t)uid) < 0)
		return al_error_errno(err, "chown %s", path);
	return 0;
}

/* Directories of the state dir and the workspace in the writable layer. */
/*
 * The sandbox's state directory, and with it the writable layer and the
 * workspace, is a tmpfs of its own: its size and inode count are the disk
 * cap, enforced by the kernel, and nothing a sandbox writes can fill the
 * host's disk.  tmpfs pages written by the sandbox are charged to its memory
 * cgroup, so they also count against its memory limit.  A sandbox cannot
 * survive a reboot anyway (its processes are gone), so nothing is lost that
 * would otherwise be kept; snapshots are written to the disk.
 */
static int mount_layer_tmpfs(const struct sandbox *sb, struct al_error *err)
{
	char opts[128];
	uint64_t inodes = (sb->disk_bytes >> 20) * DISK_INODES_PER_MIB;

	snprintf(opts, sizeof(opts), "size=%llu,nr_inodes=%llu,mode=0700",
	         (unsigned long long)sb->disk_bytes,
	         (unsigned long long)(inodes < 4096 ? 4096 : inodes));
	if (mount("airlock-layer", sb->dir, "tmpfs", MS_NOSUID | MS_NODEV, opts) < 0)
		return al_error_errno(err, "sandbox %s: mount tmpfs on %s", sb->id, sb->dir);
	return 0;
}

static int prepare_dirs(struct sandbox *sb, const struct create_params *p, struct al_error *err)
{
	static const char *const subdirs[] = {"work", "root"};
	char path[PATH_MAX];
	const char *root = p->manifest ? manifest_root(p->manifest) : "/workspace";
	_cleanup_free_ char *copy = NULL;
	_cleanup_close_ int wsfd = -1;
	int r;

	if (mkdir(sb->dir, 0700) < 0)
		return al_error_errno(err, "mkdir %s", sb->dir);
	r = mount_layer_tmpfs(sb, err);
	if (r < 0)
		return r;
	for (size_t i = 0; i < AL_ARRAY_SIZE(subdirs); i++) {
		snprintf(path, sizeof(path), "%s/%s", sb->dir, subdirs[i]);
		if (mkdir(path, 0700) < 0)
			return al_error_errno(err, "mkdir %s", path);
	}
	/* The upper layer's root directory is the sandbox's "/": owned by its root. */
	snprintf(path, sizeof(path), "%s/upper", sb->dir);
	r = make_owned_dir(path, 0755, sb->uid_base, err);
	if (r < 0)
		return r;
	/* The workspace (manifest root) is created in the upper layer, one
	 * component at a time, each owned by sandbox root. */
	copy = strdup(root);
	if (!copy)
		return al_error_set(err, ENOMEM, "out of memory");
	for (char *c = strtok(copy, "/"); c; c = strtok(NULL, "/")) {
		size_t l = strlen(path);
		snprintf(path + l, sizeof(path) - l, "/%s", c);
		r = make_owned_dir(path, 0755, sb->uid_base, err);
		if (r < 0)
			return r;
	}
	if (!p->manifest)
		return 0;
	wsfd = open(path, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (wsfd < 0)
		return al_error_errno(err, "open %s", path);
	r = manifest_materialize(p->manifest, wsfd, sb->uid_base, (gid_t)sb->uid_base, err);
	if (r < 0)
		return al_error_prefix(err, "manifest");
	return 0;
}

/* What airlock-init inherits (see init.c). */
struct init_fds {
	int config;
	int status_w;
	int bpf;
	int compat_bpf; /* or -1 */
};

static void init_fds_close(struct init_fds *f)
{
	al_closep(&f->config);
	al_closep(&f->status_w);
	al_closep(&f->bpf);
	al_closep(&f->compat_bpf);
}

/* The config, and the seccomp filters as fds: airlock-init runs as the
 * sandbox's root, which cannot read airlockd's state directory. */
static int write_init_config(struct daemon_ctx *ctx, struct sandbox *sb, const char *bpf_path,
                             struct init_fds *fds, struct al_error *err)
{
	_cleanup_cjson_ cJSON *o = cJSON_CreateObject();
	_cleanup_free_ char *text = NULL, *compat = NULL;
	char path[PATH_MAX];

	fds->bpf = open(bpf_path, O_RDONLY | O_CLOEXEC);
	if (fds->bpf < 0)
		return al_error_errno(err, "open %s", bpf_path);

	cJSON_AddStringToObject(o, "id", sb->id);
	cJSON_AddStringToObject(o, "hostname", sb->name);
	cJSON_AddStringToObject(o, "workspace", sb->workspace);
	cJSON_AddStringToObject(o, "pid1", ctx->pid1_path);
	cJSON_AddStringToObject(o, "seccomp_bpf", bpf_path);
	/* The ENOSYS half of the profile, when it has one (see seccomp_filter_path). */
	if (strlen(bpf_path) > 4 &&
	    asprintf(&compat, "%.*s.compat.bpf", (int)(strlen(bpf_path) - 4), bpf_path) > 0 &&
	    (fds->compat_bpf = open(compat, O_RDONLY | O_CLOEXEC)) >= 0)
		cJSON_AddStringToObject(o, "seccomp_compat_bpf", compat);
	cJSON_AddItemToObject(o, "caps", strv_json((char **)al_default_caps));
	text = cJSON_Print(o);
	if (!text)
		return al_error_set(err, ENOMEM, "out of memory");
	snprintf(path, sizeof(path), "%s/config.json", sb->dir);
	if (al_write_file_replace(path, text, strlen(text), 0600, err) < 0)
		return -err->code;
	fds->config = open(path, O_RDONLY | O_CLOEXEC);
	if (fds->config < 0)
		return al_error_errno(err, "open %s", path);
	return 0;
}

/*
 * In the child of clone3, which may only make async-signal-safe calls:
 * tell airlockd why setup failed (it reads the status pipe) and exit.
 */
static _Noreturn void child_fail(int status_w, const char *what, int e)
{
	char msg[128], num[12];
	size_t len = 0, k = sizeof(num);

	do
		num[--k] = (char)('0' + e % 10);
	while ((e /= 10) > 0 && k > 0);
	for (const char *p = "error: "; *p && len < sizeof(msg); p++)
		msg[len++] = *p;
	for (const char *p = what; *p && len < sizeof(msg) - 24; p++)
		msg[len++] = *p;
	for (const char *p = " (errno "; *p; p++)
		msg[len++] = *p;
	while (k < sizeof(num))
		msg[len++] = num[k++];
	msg[len++] = ')';
	if (write(status_w, msg, len) < 0)
		_exit(126);
	_exit(126);
}

int sandbox_write_id_maps(pid_t pid, uid_t base, struct al_error *err)
{
	char path[64], map[64];
	int r;

	snprintf(map, sizeof(map), "0 %u %u\n", (unsigned)base, AIRLOCK_UID_RANGE);
	snprintf(path, sizeof(path), "/proc/%d/uid_map", (int)pid);
	r = al_write_string(path, map, err);
	if (r == 0) {
		snprintf(path, sizeof(path), "/proc/%d/gid_map", (int)pid);
		r = al_write_string(path, map, err);
	}
	return r;
}

/* Send fd over sock (one byte of data carries it). */
static int send_fd(int sock, int fd, struct al_error *err)
{
	int r = initproto_send_byte(sock, 'r', &fd, 1);

	if (r < 0) {
		errno = -r;
		return al_error_errno(err, "send the root mount to airlock-init");
	}
	return 0;
}

/* In the clone3 child: wait until our uid/gid maps are written (one byte on
 * sock).  Raw syscalls only. */
static int child_wait_maps(int sock)
{
	char byte;

	return recv(sock, &byte, 1, 0) == 1 ? 0 : -1;
}

/*
 * Start airlock-init with one clone3() that makes the sandbox's user
 * namespace together with its pid, mount, net, uts and ipc namespaces, so
 * the user namespace owns all of them (what CRIU requires), already in the
 * sandbox's cgroups: the cgroup2 one through CLONE_INTO_CGROUP, the v1 ones
 * by the child itself (writing "0" to each hierarchy's tasks file, which
 * spares the kernel's global threadgroup lock; see cgroup_open_join_fds).
 *
 * The child waits until we have written its uid/gid maps, becomes uid 0 of
 * its namespace (an exec by an unmapped uid would lose every capability) and
 * execs the sealed copy of airlock-init, while we make the root mount
 * (which needs its user namespace for the id mapping) and send it on the
 * socket airlock-init gets as fd 4: the exec and the mount overlap.  The
 * daemon is multi-threaded, so the child makes raw syscalls only: glibc's
 * set*id() would try to synchronise the threads it no longer has.
 */
static int spawn_init(struct daemon_ctx *ctx, struct sandbox *sb, const struct init_fds *fds,
                      struct al_error *err)
{
	struct clone_args args = {0};
	_cleanup_close_ int cgfd = -1, sock_parent = -1, sock_child = -1, userns_fd = -1,
	                    root_fd = -1;
	char target[PATH_MAX], upper[PATH_MAX], work[PATH_MAX], path[64];
	int join[16], sp[2];
	int n_join;
	int pidfd = -1;
	pid_t pid;
	int r = 0;

	snprintf(target, sizeof(target), "%s/root", sb->dir);
	snprintf(upper, sizeof(upper), "%s/upper", sb->dir);
	snprintf(work, sizeof(work), "%s/work", sb->dir);
	if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sp) < 0)
		return al_error_errno(err, "socketpair");
	sock_parent = sp[0];
	sock_child = sp[1];
	args.flags = CLONE_NEWUSER | CLONE_NEWPID | CLONE_NEWNS | CLONE_NEWNET | CLONE_NEWUTS |
	             CLONE_NEWIPC | CLONE_PIDFD;
	args.pidfd = (uint64_t)(uintptr_t)&pidfd;
	args.exit_signal = SIGCHLD;
	cgfd = cgroup_open_v2_dir(ctx->cgroups, sb->id, err);
	if (cgfd >= 0) {
		args.flags |= CLONE_INTO_CGROUP;
		args.cgroup = (uint64_t)cgfd;
	}
	n_join = cgroup_open_join_fds(ctx->cgroups, sb->id, join, AL_ARRAY_SIZE(join), err);
	if (n_join < 0)
		return al_error_prefix(err, "sandbox %s", sb->id);
	pid = (pid_t)syscall(SYS_clone3, &args, sizeof(args));
	if (pid < 0)
		r = al_error_errno(err, "clone3 for sandbox %s", sb->id);
	if (pid == 0) {
		char *const argv[] = {"airlock-init", NULL};
		char *const envp[] = {NULL};
		int status_w = fds->status_w;
		int c, s, e, k, t, b, cb = -1;

		for (int i = 0; i < n_join; i++)
			if (write(join[i], "0", 1) != 1)
				child_fail(status_w, "cannot join the sandbox's v1 cgroups", errno);
		/* Opened while we are still the host's uid 0, the owner of the
		 * state directory (mode 0700), which our namespace's root is not. */
		t = open(target, O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		if (t < 0)
			child_fail(status_w, "cannot open the root mount point", errno);
		/* Move our fds above the target range first so dup2 never
		 * clobbers one we still need. */
		e = fcntl(ctx->init_memfd, F_DUPFD_CLOEXEC, 16);
		c = fcntl(fds->config, F_DUPFD_CLOEXEC, 16);
		s = fcntl(status_w, F_DUPFD_CLOEXEC, 16);
		k = fcntl(sock_child, F_DUPFD_CLOEXEC, 16);
		t = fcntl(t, F_DUPFD_CLOEXEC, 16);
		b = fcntl(fds->bpf, F_DUPFD_CLOEXEC, 16);
		if (fds->compat_bpf >= 0)
			cb = fcntl(fds->compat_bpf, F_DUPFD_CLOEXEC, 16);
		if (e < 0 || c < 0 || s < 0 || k < 0 || t < 0 || b < 0 ||
		    (fds->compat_bpf >= 0 && cb < 0) || dup2(c, 3) < 0 || dup2(s, 5) < 0 ||
		    dup2(t, 6) < 0 || dup2(b, 7) < 0 || (cb >= 0 && dup2(cb, 8) < 0))
			child_fail(status_w, "cannot pass airlock-init its fds", errno);
		if (child_wait_maps(k) < 0 || dup2(k, 4) < 0)
			child_fail(5, "airlockd did not write the uid maps", errno);
		if (syscall(SYS_setgroups, 0, NULL) < 0 || syscall(SYS_setresgid, 0, 0, 0) < 0 ||
		    syscall(SYS_setresuid, 0, 0, 0) < 0)
			child_fail(5, "cannot become root of the user namespace", errno);
		syscall(SYS_close_range, 9, ~0U, CLOSE_RANGE_CLOEXEC);
		/* Only now: airlockd's fds (one per sandbox) are ours until exec,
		 * so the lower limit would have refused the dups above. */
		if (ctx->sandbox_nofile.rlim_cur > 0 &&
		    setrlimit(RLIMIT_NOFILE, &ctx->sandbox_nofile) < 0)
			child_fail(5, "cannot set the open files limit", errno);
		syscall(SYS_execveat, e, "", argv, envp, AT_EMPTY_PATH);
		child_fail(5, "cannot exec airlock-init", errno);
	}
	for (int i = 0; i < n_join; i++)
		close(join[i]);
	if (r < 0)
		return r;
	sb->init_pid = pid;
	sb->pidfd = pidfd;
	sb->our_child = true;
	close(TAKE_FD(sock_child));

	/* Until the maps are written, the child waits; if we fail, closing
	 * our end makes it exit, and the caller kills it anyway. */
	r = sandbox_write_id_maps(pid, sb->uid_base, err);
	if (r < 0)
		return al_error_prefix(err, "sandbox %s", sb->id);
	if (send(sock_parent, "m", 1, MSG_NOSIGNAL) != 1)
		return al_error_errno(err, "sandbox %s: tell airlock-init its maps are written",
		                      sb->id);
	snprintf(path, sizeof(path), "/proc/%d/ns/user", (int)pid);
	userns_fd = open(path, O_RDONLY | O_CLOEXEC);
	if (userns_fd < 0)
		return al_error_errno(err, "sandbox %s: open %s", sb->id, path);
	root_fd = mounts_make_root(sb->rootfs, upper, work, userns_fd, err);
	if (root_fd < 0)
		return al_error_prefix(err, "sandbox %s: rootfs", sb->id);
	return send_fd(sock_parent, root_fd, err);
}

static int wait_ready(struct sandbox *sb, int status_r, struct al_error *err)
{
	uint64_t deadline = al_now_ms() + READY_TIMEOUT_MS;
	struct al_buf b = {0};
	int r = 0;

	for (;;) {
		struct pollfd pfd = {.fd = status_r, .events = POLLIN};
		uint64_t now = al_now_ms();
		char chunk[1024];
		ssize_t n;

		if (now >= deadline) {
			r = al_error_set(err, ETIMEDOUT,
			                 "sandbox %s: airlock-init not ready after %d ms", sb->id,
			                 READY_TIMEOUT_MS);
			break;
		}
		if (poll(&pfd, 1, (int)(deadline - now)) <= 0)
			continue;
		n = read(status_r, chunk, sizeof(chunk));
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		al_buf_append(&b, chunk, (size_t)n);
		if (b.len >= 2 && !strncmp(b.data, "ok", 2))
			break;
	}
	if (r == 0) {
		if (b.len >= 2 && !strncmp(b.data, "ok", 2))
			r = 0;
		else if (b.len > 7 && !strncmp(b.data, "error: ", 7))
			r = al_error_set(err, EIO, "sandbox %s: airlock-init: %s", sb->id,
			                 b.data + 7);
		else
			r = al_error_set(err, EIO, "sandbox %s: airlock-init exited during setup",
			                 sb->id);
	}
	al_buf_free(&b);
	return r;
}

static void iso8601_now(char *buf, size_t len)
{
	time_t t = time(NULL);
	struct tm tm;
	gmtime_r(&t, &tm);
	strftime(buf, len, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

/*
 * A create in progress.  Until it commits, leaving scope undoes everything
 * it made: the init process, cgroups, state directory and registry entry.
 */
struct create_txn {
	struct daemon_ctx *ctx;
	struct create_params params;
	struct sandbox *sb;
	const cJSON *manifest_json;            /* kept in manifest.json, or NULL */
	const struct sandbox_restore *restore; /* made from a snapshot, or NULL */
	bool registered;
	bool made; /* state dir, cgroups or init may exist */
};

static void create_txn_abort(struct create_txn *t)
{
	if (t->sb && t->made) {
		struct al_error cerr = AL_ERROR_INIT;
		kill_init(t->sb);
		if (cleanup_remains(t->ctx, t->sb->id, &cerr) < 0)
			log_error("cleanup after failed create: %s", cerr.msg);
	}
	if (t->sb && t->registered)
		registry_remove(t->ctx, t->sb);
	create_params_free(&t->params);
	sandbox_unref(t->sb);
}

/*
 * Reserve the name and a uid range in the registry before doing any work.
 * A restore with processes needs the range its snapshot was taken in (CRIU
 * re-creates the user namespace from its images): uid_base, or 0 for any.
 */
static int reserve(struct create_txn *t, uid_t uid_base, struct al_error *err)
{
	struct daemon_ctx *ctx = t->ctx;
	struct sandbox *sb = t->sb;
	int r;

	pthread_mutex_lock(&ctx->lock);
	for (size_t i = 0; i < ctx->n_sandboxes; i++) {
		if (ctx->sandboxes[i]->reaping)
			continue; /* destroyed: its name is free again */
		if (!strcmp(ctx->sandboxes[i]->name, sb->name) ||
		    !strcmp(ctx->sandboxes[i]->id, sb->name)) {
			pthread_mutex_unlock(&ctx->lock);
			return al_error_set(err, EEXIST, "a sandbox named '%s' exists", sb->name);
		}
	}
	if (uid_base) {
		sb->uid_slot = (uid_base - AIRLOCK_UID_BASE) / AIRLOCK_UID_RANGE;
		/* A destroyed sandbox holds its range until torn down: a
		 * destroy followed at once by a restore into the same range
		 * waits for that rather than failing. */
		while (uid_slot_reaping_locked(ctx, sb->uid_slot)) {
			reaper_hurry(ctx);
			pthread_cond_wait(&ctx->reaped, &ctx->lock);
		}
		for (size_t i = 0; i < ctx->n_sandboxes; i++) {
			if (ctx->sandboxes[i]->uid_slot == sb->uid_slot) {
				const struct sandbox *o = ctx->sandboxes[i];
				pthread_mutex_unlock(&ctx->lock);
				return al_error_set(
				    err, EBUSY,
				    "the snapshot's processes ran as host uids %u-%u, now used by "
				    "%s %s; a snapshot with processes can only be restored into "
				    "the uid range it was taken in: destroy that sandbox first",
				    (unsigned)uid_base,
				    (unsigned)(uid_base + AIRLOCK_UID_RANGE - 1),
				    o->pooled ? "warm-pool sandbox" : "sandbox", o->id);
			}
		}
		r = 0;
	} else {
		r = alloc_uid_slot_locked(ctx, &sb->uid_slot);
	}
	if (r == 0) {
		sb->uid_base = AIRLOCK_UID_BASE + sb->uid_slot * AIRLOCK_UID_RANGE;
		sb->destroying = true; /* not usable until ready */
		r = registry_add_locked(ctx, sb);
		t->registered = r == 0;
	}
	pthread_mutex_unlock(&ctx->lock);
	if (r < 0)
		return al_error_set(err, -r, "no free uid range for a new sandbox");
	return 0;
}

/*
 * The manifest is kept (for the ephemeral entries a workspace archive leaves
 * out, and for snapshots); a sandbox made from a snapshot gets its writable
 * layer back before airlock-init mounts it.
 */
static int restore_layer(struct create_txn *t, struct al_error *err)
{
	_cleanup_free_ char *text = NULL;
	char path[PATH_MAX];
	int r;

	if (t->manifest_json && cJSON_IsObject(t->manifest_json)) {
		text = cJSON_PrintUnformatted(t->manifest_json);
		if (!text)
			return al_error_set(err, ENOMEM, "out of memory");
		snprintf(path, sizeof(path), "%s/manifest.json", t->sb->dir);
		r = al_write_file_atomic(path, text, strlen(text), 0600, err);
		if (r < 0)
			return r;
	}
	if (!t->restore || t->restore->layer_fd < 0)
		return 0;
	snprintf(path, sizeof(path), "%s/upper", t->sb->dir);
	r = archive_extract_layer(path, t->restore->layer_fd, t->sb->uid_base, err);
	return r < 0 ? al_error_prefix(err, "sandbox %s", t->sb->id) : 0;
}

/*
 * One request to PID 1 that is answered by PONG.  A restored PID 1 is told
 * to REEXEC (pid1.c says why), then pinged to see the new image serve.
 * Returns the connection, still open.
 */
static int pid1_call(const struct sandbox *sb, uint8_t type, struct al_error *err)
{
	struct initproto_msg m = {.type = type}, reply = {0};
	_cleanup_close_ int fd = sandbox_connect_init(sb, err);
	int r;

	if (fd < 0)
		return fd;
	r = initproto_send(fd, &m, NULL, 0, err);
	if (r == 0)
		r = initproto_recv(fd, &reply, NULL, NULL, err);
	if (r == 0 && reply.type != INITPROTO_PONG)
		r = al_error_set(err, EPROTO, "unexpected answer %u", reply.type);
	else if (r == 1)
		r = al_error_set(err, ECONNRESET, "airlock-pid1 closed the connection");
	initproto_msg_free(&reply);
	if (r < 0)
		return al_error_prefix(err, "sandbox %s: PID 1", sb->id);
	return TAKE_FD(fd);
}

int sandbox_ping_init(const struct sandbox *sb, struct al_error *err)
{
	return pid1_call(sb, INITPROTO_PING, err);
}

static int start_sandbox(struct create_txn *t, const char *bpf_path, struct al_error *err)
{
	_cleanup_(init_fds_close) struct init_fds fds = {-1, -1, -1, -1};
	_cleanup_close_ int status_r = -1;
	struct sandbox *sb = t->sb;
	int status[2];
	int r;

	t->made = true;
	r = prepare_dirs(sb, &t->params, err);
	if (r < 0)
		return r;
	r = restore_layer(t, err);
	if (r < 0)
		return r;
	r = cgroup_create(t->ctx->cgroups, sb->id, &sb->limits, err);
	if (r < 0)
		return r;
	if (t->restore && t->restore->criu_images) {
		/* PID 1 and its processes come back from CRIU's images. */
		r = criu_restore(t->ctx, sb, t->restore->criu_images, err);
		if (r == 0)
			r = pid1_call(sb, INITPROTO_REEXEC, err);
		if (r >= 0) {
			close(r);
			r = pid1_call(sb, INITPROTO_PING, err);
		}
		if (r < 0)
			return r;
		close(r);
		if (read_start_time(sb->init_pid, &sb->init_start) < 0)
			return al_error_set(err, ESRCH, "sandbox %s: restored PID 1 vanished",
			                    sb->id);
		return write_state(sb, err);
	}
	r = write_init_config(t->ctx, sb, bpf_path, &fds, err);
	if (r < 0)
		return r;
	if (pipe2(status, O_CLOEXEC) < 0)
		return al_error_errno(err, "pipe");
	status_r = status[0];
	fds.status_w = status[1];
	r = spawn_init(t->ctx, sb, &fds, err);
	if (r < 0)
		return r;
	/* Our copy of the write end must go, or a dying init is never noticed. */
	close(TAKE_FD(fds.status_w));
	r = wait_ready(sb, status_r, err);
	if (r < 0)
		return r;
	if (read_start_time(sb->init_pid, &sb->init_start) < 0)
		return al_error_set(err, ESRCH, "sandbox %s: airlock-init vanished", sb->id);
	return write_state(sb, err);
}

static int create_common(struct daemon_ctx *ctx, const cJSON *req, bool trusted,
                         const struct sandbox_restore *rs, bool pooled, struct sandbox **out,
                         struct al_error *err)
{
	_cleanup_(create_txn_abort) struct create_txn t = {.ctx = ctx, .restore = rs};
	_cleanup_free_ char *bpf_path = NULL;
	struct sandbox *sb;
	uid_t uid_base = 0;
	int r;

	r = parse_create(ctx, req, trusted, &t.params, err);
	if (r < 0)
		return r;
	t.manifest_json = rs ? rs->manifest : cJSON_GetObjectItemCaseSensitive(req, "manifest");
	r = seccomp_filter_path(ctx, t.params.profile, &bpf_path, err);
	if (r < 0)
		return r;
	sb = t.sb = sandbox_new();
	if (!sb)
		return al_error_set(err, ENOMEM, "out of memory");
	sb->pooled = pooled;
	r = al_random_hex(sb->id, 12, err);
	if (r < 0)
		return r;
	snprintf(sb->name, sizeof(sb->name), "%s", t.params.name[0] ? t.params.name : sb->id);
	snprintf(sb->profile, sizeof(sb->profile), "%s", t.params.profile);
	iso8601_now(sb->created, sizeof(sb->created));
	sb->rootfs = TAKE_PTR(t.params.rootfs);
	sb->workspace = strdup(rs && rs->workspace ? rs->workspace
	                       : t.params.manifest ? manifest_root(t.params.manifest)
	                                           : "/workspace");
	sb->env = TAKE_PTR(t.params.env);
	sb->limits = t.params.limits;
	sb->disk_bytes = t.params.disk_bytes;
	if (asprintf(&sb->dir, "%s/%s", ctx->sandboxes_dir, sb->id) < 0 || !sb->workspace) {
		sb->dir = NULL;
		return al_error_set(err, ENOMEM, "out of memory");
	}
	if (rs && rs->criu_images) {
		r = criu_images_uid_base(rs->criu_images, &uid_base, err);
		if (r < 0)
			return al_error_prefix(err, "snapshot");
		if (uid_base < AIRLOCK_UID_BASE ||
		    (uid_base - AIRLOCK_UID_BASE) % AIRLOCK_UID_RANGE != 0 ||
		    (uid_base - AIRLOCK_UID_BASE) / AIRLOCK_UID_RANGE >= AIRLOCK_UID_SLOTS)
			return al_error_set(err, EINVAL, "snapshot: bad uid range %u",
			                    (unsigned)uid_base);
	}
	r = reserve(&t, uid_base, err);
	if (r < 0)
		return r;
	r = start_sandbox(&t, bpf_path, err);
	if (r < 0)
		return r;

	pthread_mutex_lock(&sb->lock);
	sb->destroying = false;
	pthread_mutex_unlock(&sb->lock);
	log_info("sandbox %s created%s (pid %d, uid %u, rootfs %s)", sb->id,
	         pooled ? " for the warm pool" : "", (int)sb->init_pid, (unsigned)sb->uid_base,
	         sb->rootfs);
	/* Committed: the registry holds one reference, the caller gets ours. */
	t.made = false;
	t.registered = false;
	*out = TAKE_PTR(t.sb);
	return 0;
}

int sandbox_create(struct daemon_ctx *ctx, const cJSON *req, bool trusted, struct sandbox **out,
                   struct al_error *err)
{
	if (ctx->pool && pool_claim(ctx, req, out))
		return 0;
	return create_common(ctx, req, trusted, NULL, false, out, err);
}

int sandbox_create_restored(struct daemon_ctx *ctx, const cJSON *req, bool trusted,
                            const struct sandbox_restore *rs, struct sandbox **out,
                            struct al_error *err)
{
	return create_common(ctx, req, trusted, rs, false, out, err);
}

/* ---- warm pool ------------------------------------------------------------------------- */

int sandbox_create_pooled(struct daemon_ctx *ctx, struct sandbox **out, struct al_error *err)
{
	return create_common(ctx, NULL, true, NULL, true, out, err);
}

static bool env_valid(const cJSON *env)
{
	const cJSON *it;

	if (!cJSON_IsObject(env))
		return false;
	cJSON_ArrayForEach(it, env)
	{
		if (!cJSON_IsString(it) || !it->string[0] || strchr(it->string, '='))
			return false;
	}
	return true;
}

bool sandbox_poolable(struct daemon_ctx *ctx, const cJSON *req)
{
	const cJSON *it;

	if (req && !cJSON_IsObject(req))
		return false;
	/* Every field must be one a pooled sandbox already satisfies; an
	 * unknown or invalid one goes the normal way (and gets its error there). */
	cJSON_ArrayForEach(it, req)
	{
		const char *k = it->string;

		if (cJSON_IsNull(it))
			continue;
		if (!strcmp(k, "env")) {
			if (!env_valid(it))
				return false;
		} else if (!strcmp(k, "network")) {
			if (!cJSON_IsString(it) || (strcmp(it->valuestring, "loopback") &&
			                            strcmp(it->valuestring, "none")))
				return false;
		} else if (!strcmp(k, "seccomp_profile")) {
			if (!cJSON_IsString(it) || strcmp(it->valuestring, "default"))
				return false;
		} else if (!strcmp(k, "rootfs")) {
			_cleanup_free_ char *want = NULL, *have = NULL;
			if (!cJSON_IsString(it) || it->valuestring[0] != '/')
				return false;
			want = realpath(it->valuestring, NULL);
			have = realpath(ctx->default_rootfs, NULL);
			if (!want || !have || strcmp(want, have))
				return false;
		} else {
			return false;
		}
	}
	return true;
}

int sandbox_adopt(struct daemon_ctx *ctx, struct sandbox *sb, const cJSON *req,
                  struct al_error *err)
{
	const cJSON *it, *env = cJSON_GetObjectItemCaseSensitive(req, "env");

	if (!cJSON_IsObject(env))
		env = NULL;
	/* Still invisible to the API: nothing else touches sb yet. */
	cJSON_ArrayForEach(it, env)
	{
		if (add_env(&sb->env, it->string, it->valuestring) < 0)
			return al_error_set(err, ENOMEM, "out of memory");
	}
	iso8601_now(sb->created, sizeof(sb->created));
	pthread_mutex_lock(&ctx->lock);
	sb->pooled = false;
	pthread_mutex_unlock(&ctx->lock);
	return write_state(sb, err);
}

/* ---- reattach after restart ------------------------------------------------------------ */

int sandbox_registry_load(struct daemon_ctx *ctx, struct al_error *err)
{
	_cleanup_closedir_ DIR *d = opendir(ctx->sandboxes_dir);
	_cleanup_strv_ char **cg_ids = NULL;
	struct dirent *de;
	int r;

	if (!d)
		return al_error_errno(err, "open %s", ctx->sandboxes_dir);
	while ((de = readdir(d))) {
		struct al_error lerr = AL_ERROR_INIT;
		struct sandbox *sb = NULL;

		if (de->d_name[0] == '.')
			continue;
		r = load_state(ctx, de->d_name, &sb, &lerr);
		if (r == 0 && sb->pooled) {
			/* An unclaimed warm-pool sandbox of an earlier airlockd is
			 * nobody's; removing its cgroups kills it. */
			log_info("sandbox %s was in the warm pool; removing it", de->d_name);
			sandbox_unref(sb);
		} else if (r == 0) {
			sb->pidfd = (int)syscall(SYS_pidfd_open, sb->init_pid, 0);
			if (sb->pidfd >= 0 && sandbox_running(sb)) {
				unsigned long long st = 0;
				if (read_start_time(sb->init_pid, &st) == 0 &&
				    st == sb->init_start) {
					pthread_mutex_lock(&ctx->lock);
					r = registry_add_locked(ctx, sb);
					pthread_mutex_unlock(&ctx->lock);
					if (r == 0) {
						struct al_error ferr = AL_ERROR_INIT;
						/* An airlockd that died during a snapshot
						 * with processes left it frozen. */
						if (cgroup_freeze(ctx->cgroups, sb->id, false, NULL,
						                  &ferr) < 0 &&
						    ferr.code != ENOTSUP)
							log_warn("%s", ferr.msg);
						log_info("reattached sandbox %s (pid %d)", sb->id,
						         (int)sb->init_pid);
						sandbox_unref(sb);
						continue;
					}
				}
			}
			log_warn("sandbox %s: airlock-init is gone; cleaning up", de->d_name);
			sandbox_unref(sb);
		} else {
			log_warn(
			    "sandbox %s was half-made or its state is unreadable (%s); cleaning up",
			    de->d_name, lerr.msg);
		}
		if (cleanup_remains(ctx, de->d_name, &lerr) < 0)
			log_error("%s", lerr.msg);
	}
	/* cgroups whose state directory is gone entirely (a crash between
	 * cgroup creation and the state dir, or a lost state dir). */
	r = cgroup_list(ctx->cgroups, &cg_ids, err);
	if (r < 0)
		return r;
	for (char **id = cg_ids; id && *id; id++) {
		struct sandbox *sb = sandbox_get(ctx, *id);
		struct al_error lerr = AL_ERROR_INIT;
		if (sb) {
			sandbox_unref(sb);
			continue;
		}
		log_warn("removing orphaned cgroup of sandbox %s", *id);
		if (cgroup_destroy(ctx->cgroups, *id, &lerr) < 0)
			log_error("%s", lerr.msg);
	}
	/* With the registry known, denials and limit hits can be attributed. */
	events_start(ctx);
	/* A snapshot interrupted by a crash is removed, never listed. */
	return snapshot_store_init(ctx, err);
}

/* ---- views ------------------------------------------------------------------------------ */

cJSON *sandbox_summary_json(const struct sandbox *sb)
{
	cJSON *o = cJSON_CreateObject();

	cJSON_AddStringToObject(o, "id", sb->id);
	cJSON_AddStringToObject(o, "name", sb->name);
	cJSON_AddStringToObject(o, "state", sandbox_running(sb) ? "running" : "stopped");
	cJSON_AddStringToObject(o, "created", sb->created);
	cJSON_AddStringToObject(o, "rootfs", sb->rootfs);
	return o;
}

static cJSON *read_text_json(const char *path)
{
	_cleanup_free_ char *text = NULL;
	size_t len;

	if (al_read_file(path, 1 << 20, &text, &len, NULL) < 0)
		return cJSON_CreateNull();
	while (len > 0 && text[len - 1] == '\n')
		text[--len] = '\0';
	return cJSON_CreateString(text);
}

static cJSON *lines_json(const char *path, int field_from)
{
	_cleanup_free_ char *text = NULL;
	cJSON *a = cJSON_CreateArray();
	char *save = NULL;

	if (al_read_file(path, 4 << 20, &text, NULL, NULL) < 0)
		return a;
	for (char *line = strtok_r(text, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
		char *p = line;
		for (int f = 0; f < field_from && p; f++) {
			p = strchr(p, ' ');
			if (p)
				p++;
		}
		if (p)
			cJSON_AddItemToArray(a, cJSON_CreateString(p));
	}
	return a;
}

static cJSON *interfaces_json(pid_t pid)
{
	_cleanup_free_ char *text = NULL;
	cJSON *a = cJSON_CreateArray();
	char path[64], *save = NULL;
	int lineno = 0;

	/* /proc/PID/net/dev shows the network namespace of PID. */
	snprintf(path, sizeof(path), "/proc/%d/net/dev", (int)pid);
	if (al_read_file(path, 1 << 20, &text, NULL, NULL) < 0)
		return a;
	for (char *line = strtok_r(text, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
		char *colon;
		if (++lineno <= 2)
			continue;
		colon = strchr(line, ':');
		if (!colon)
			continue;
		*colon = '\0';
		while (*line == ' ')
			line++;
		cJSON_AddItemToArray(a, cJSON_CreateString(line));
	}
	return a;
}

int sandbox_inspect_json(struct daemon_ctx *ctx, struct sandbox *sb, cJSON **out,
                         struct al_error *err)
{
	static const char *const ns_names[] = {"user", "pid", "mnt", "net", "uts", "ipc", "cgroup"};
	_cleanup_cjson_ cJSON *o = sandbox_summary_json(sb);
	cJSON *ns, *cg = NULL, *caps = NULL, *net;
	char path[PATH_MAX], link[256];
	bool running = sandbox_running(sb);
	int r;

	cJSON_AddStringToObject(o, "workspace", sb->workspace);
	cJSON_AddNumberToObject(o, "init_pid", sb->init_pid);
	cJSON_AddItemToObject(o, "env", strv_json(sb->env));
	ns = cJSON_AddObjectToObject(o, "namespaces");
	for (size_t i = 0; i < AL_ARRAY_SIZE(ns_names) && running; i++) {
		ssize_t n;
		snprintf(path, sizeof(path), "/proc/%d/ns/%s", (int)sb->init_pid, ns_names[i]);
		n = readlink(path, link, sizeof(link) - 1);
		if (n > 0) {
			link[n] = '\0';
			cJSON_AddStringToObject(ns, ns_names[i], link);
		}
	}
	snprintf(path, sizeof(path), "/proc/%d/uid_map", (int)sb->init_pid);
	cJSON_AddItemToObject(o, "uid_map", running ? read_text_json(path) : cJSON_CreateNull());
	snprintf(path, sizeof(path), "/proc/%d/gid_map", (int)sb->init_pid);
	cJSON_AddItemToObject(o, "gid_map", running ? read_text_json(path) : cJSON_CreateNull());

	r = cgroup_describe(ctx->cgroups, sb->id, &cg, err);
	if (r < 0)
		return al_error_prefix(err, "sandbox %s", sb->id);
	cJSON_AddItemToObject(o, "cgroup", cg);
	{
		/* The writable layer's cap, read back from the kernel. */
		struct statfs sf;
		cJSON *disk = cJSON_AddObjectToObject(o, "disk");
		if (statfs(sb->dir, &sf) == 0 && sf.f_type == TMPFS_MAGIC) {
			cJSON_AddNumberToObject(disk, "limit_bytes",
			                        (double)sf.f_blocks * (double)sf.f_bsize);
			cJSON_AddNumberToObject(disk, "used_bytes",
			                        (double)(sf.f_blocks - sf.f_bfree) *
			                            (double)sf.f_bsize);
			cJSON_AddNumberToObject(disk, "limit_inodes", (double)sf.f_files);
			cJSON_AddNumberToObject(disk, "used_inodes",
			                        (double)(sf.f_files - sf.f_ffree));
		} else {
			cJSON_AddNullToObject(disk, "limit_bytes");
		}
	}

	cJSON *sec = cJSON_AddObjectToObject(o, "seccomp");
	cJSON_AddStringToObject(sec, "profile", sb->profile);
	if (running && caps_describe(sb->init_pid, &caps, err) == 0) {
		const cJSON *mode = cJSON_GetObjectItemCaseSensitive(caps, "seccomp_mode");
		const cJSON *nnp = cJSON_GetObjectItemCaseSensitive(caps, "no_new_privs");
		cJSON_AddNumberToObject(sec, "mode", cJSON_GetNumberValue(mode));
		cJSON_AddItemToObject(
		    sec, "filters",
		    cJSON_Duplicate(cJSON_GetObjectItemCaseSensitive(caps, "seccomp_filters"),
		                    false));
		cJSON_AddBoolToObject(o, "no_new_privs", cJSON_IsTrue(nnp));
		cJSON_AddItemToObject(o, "capabilities", caps);
	}
	snprintf(path, sizeof(path), "/proc/%d/mounts", (int)sb->init_pid);
	cJSON_AddItemToObject(o, "mounts", running ? lines_json(path, 0) : cJSON_CreateArray());
	net = cJSON_AddObjectToObject(o, "network");
	cJSON_AddStringToObject(net, "mode", "loopback");
	cJSON_AddItemToObject(net, "interfaces",
	                      running ? interfaces_json(sb->init_pid) : cJSON_CreateArray());
	*out = TAKE_PTR(o);
	return 0;
}

/* ---- access to the inside ---------------------------------------------------------------- */

int sandbox_open_root(const struct sandbox *sb, struct al_error *err)
{
	char path[64];
	int fd;

	if (!sandbox_running(sb))
		return al_error_set(err, ESRCH, "sandbox %s is not running", sb->id);
	snprintf(path, sizeof(path), "/proc/%d/root", (int)sb->init_pid);
	fd = open(path, O_PATH | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return al_error_errno(err, "sandbox %s: open %s", sb->id, path);
	/* The pid could have been reused between the check and the open. */
	if (!sandbox_running(sb)) {
		close(fd);
		return al_error_set(err, ESRCH, "sandbox %s is not running", sb->id);
	}
	return fd;
}

int sandbox_connect_init(const struct sandbox *sb, struct al_error *err)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	size_t len = strlen(INITPROTO_SOCKET_NAME);
	_cleanup_close_ int own_ns = -1, fd = -1;
	int e = 0;

	if (sb->pidfd < 0)
		return al_error_set(err, ESRCH, "sandbox %s is not running", sb->id);
	/*
	 * PID 1 listens on an abstract socket of the sandbox's network
	 * namespace; a socket belongs to the namespace it is created in, so
	 * this thread enters it just for socket() (the network namespace is
	 * per thread), returns, and connects from home.
	 */
	own_ns = open("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC);
	if (own_ns < 0)
		return al_error_errno(err, "open /proc/thread-self/ns/net");
	if (setns(sb->pidfd, CLONE_NEWNET) < 0)
		return al_error_errno(err, "sandbox %s: enter its network namespace", sb->id);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		e = errno;
	if (setns(own_ns, CLONE_NEWNET) < 0) {
		/* A daemon thread left in a sandbox's network is not an option. */
		log_error("cannot return to airlockd's network namespace: %s", strerror(errno));
		abort();
	}
	if (fd < 0) {
		errno = e;
		return al_error_errno(err, "socket");
	}
	memcpy(sa.sun_path + 1, INITPROTO_SOCKET_NAME, len);
	if (connect(fd, (struct sockaddr *)&sa,
	            (socklen_t)(offsetof(struct sockaddr_un, sun_path) + 1 + len)) < 0)
		return al_error_errno(err, "sandbox %s: connect to airlock-init", sb->id);
	return TAKE_FD(fd);
}

/* ---- process table ----------------------------------------------------------------------- */

int sandbox_add_process(struct sandbox *sb, struct al_process *p, char *id_out, size_t id_len)
{
	struct sandbox_proc *n;
	int r = 0;

	pthread_mutex_lock(&sb->lock);
	if (sb->destroying) {
		r = -ESRCH;
	} else if (sb->n_procs >= 4096) {
		r = -EAGAIN;
	} else {
		n = realloc(sb->procs, (sb->n_procs + 1) * sizeof(*n));
		if (!n) {
			r = -ENOMEM;
		} else {
			sb->procs = n;
			n = &sb->procs[sb->n_procs++];
			snprintf(n->id, sizeof(n->id), "p%u", ++sb->next_proc);
			n->p = p;
			process_ref(p);
			snprintf(id_out, id_len, "%s", n->id);
		}
	}
	pthread_mutex_unlock(&sb->lock);
	return r;
}

struct al_process *sandbox_take_process(struct sandbox *sb, const char *pid, bool remove)
{
	struct al_process *found = NULL;

	pthread_mutex_lock(&sb->lock);
	for (size_t i = 0; i < sb->n_procs; i++) {
		if (strcmp(sb->procs[i].id, pid))
			continue;
		found = sb->procs[i].p;
		if (remove)
			sb->procs[i] = sb->procs[--sb->n_procs]; /* the table's reference moves to
			                                            the caller */
		else
			process_ref(found);
		break;
	}
	pthread_mutex_unlock(&sb->lock);
	return found;
}
