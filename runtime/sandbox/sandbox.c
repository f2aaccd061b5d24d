/* SPDX-License-Identifier: Apache-2.0 */
/*
 * One sandbox on the host (sandbox.h): the object, its state directory,
 * building it around a start strategy, stopping it, and the ways in.
 */
#include "sandbox.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/magic.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <dirent.h>
#include <linux/openat2.h>
#include <sys/mount.h>
#include <sys/xattr.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/time.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "archives.h"
#include "bucket_mounts.h"
#include "cgroup.h"
#include "cleanup.h"
#include "initproto.h"
#include "json.h"
#include "log.h"
#include "manifest.h"
#include "process.h"
#include "strv.h"
#include "util.h"

#define DISK_INODES_PER_MIB 64
#define STATE_VERSION 2

/* ---- the object ----------------------------------------------------------------------------- */

struct sandbox *sandbox_new(const struct sandbox_host *host, const char *id,
                            struct sandbox_spec *spec, struct al_error *err)
{
	struct sandbox *sb = calloc(1, sizeof(*sb));

	if (!sb || asprintf(&sb->dir, "%s/%s", host->sandboxes_dir, id) < 0) {
		free(sb);
		al_error_set(err, ENOMEM, "out of memory");
		return NULL;
	}
	sb->output = output_budget_new(SANDBOX_OUTPUT_MAX);
	if (!sb->output) {
		free(sb->dir);
		free(sb);
		al_error_set(err, ENOMEM, "out of memory");
		return NULL;
	}
	pthread_mutex_init(&sb->lock, NULL);
	sb->refs = 1;
	sb->host = host;
	sb->pidfd = -1;
	sb->init_pid = -1;
	snprintf(sb->id, sizeof(sb->id), "%s", id);
	sb->spec = *spec;
	*spec = (struct sandbox_spec){0};
	if (!sb->spec.name[0])
		snprintf(sb->spec.name, sizeof(sb->spec.name), "%s", id);
	return sb;
}

void sandbox_ref(struct sandbox *sb)
{
	__atomic_add_fetch(&sb->refs, 1, __ATOMIC_SEQ_CST);
}

static void sandbox_free(struct sandbox *sb)
{
	sandbox_files_free(sb);
	for (size_t i = 0; i < sb->n_procs; i++)
		process_unref(sb->procs[i].p);
	free(sb->procs);
	if (sb->pidfd >= 0)
		close(sb->pidfd);
	sandbox_spec_free(&sb->spec);
	output_budget_unref(sb->output);
	free(sb->dir);
	pthread_mutex_destroy(&sb->lock);
	free(sb);
}

void sandbox_unref(struct sandbox *sb)
{
	if (sb && __atomic_sub_fetch(&sb->refs, 1, __ATOMIC_SEQ_CST) == 0)
		sandbox_free(sb);
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

/* ---- lifetimes ---------------------------------------------------------------------------- */

void sandbox_touch_created(struct sandbox *sb)
{
	int64_t now = (int64_t)time(NULL);

	sb->created_unix = now;
	__atomic_store_n(&sb->active_unix, now, __ATOMIC_RELAXED);
}

void sandbox_touch(struct sandbox *sb)
{
	__atomic_store_n(&sb->active_unix, (int64_t)time(NULL), __ATOMIC_RELAXED);
}

int64_t sandbox_expires_at(const struct sandbox *sb)
{
	int64_t ttl_end = sb->spec.ttl_s ? sb->created_unix + (int64_t)sb->spec.ttl_s : 0;
	int64_t idle_end = sb->spec.idle_timeout_s
	                       ? __atomic_load_n(&sb->active_unix, __ATOMIC_RELAXED) +
	                             (int64_t)sb->spec.idle_timeout_s
	                       : 0;

	if (ttl_end && idle_end)
		return ttl_end < idle_end ? ttl_end : idle_end;
	return ttl_end ? ttl_end : idle_end;
}

const char *sandbox_expired(const struct sandbox *sb, int64_t now)
{
	if (sb->spec.ttl_s && now >= sb->created_unix + (int64_t)sb->spec.ttl_s)
		return "ttl";
	if (sb->spec.idle_timeout_s && now >= __atomic_load_n(&sb->active_unix, __ATOMIC_RELAXED) +
	                                          (int64_t)sb->spec.idle_timeout_s)
		return "idle_timeout";
	return NULL;
}

/* ---- state.json ------------------------------------------------------------------------- */

int sandbox_save_state(const struct sandbox *sb, struct al_error *err)
{
	_cleanup_cjson_ cJSON *o = sandbox_spec_to_json(&sb->spec);
	_cleanup_free_ char *text = NULL;
	char path[PATH_MAX];

	/* The spec's record, and what only this running sandbox has. */
	if (!o || !cJSON_AddNumberToObject(o, "version", STATE_VERSION) ||
	    !cJSON_AddStringToObject(o, "id", sb->id) ||
	    (sb->pooled && !cJSON_AddBoolToObject(o, "pooled", true)) ||
	    !cJSON_AddStringToObject(o, "created", sb->created) ||
	    !cJSON_AddNumberToObject(o, "created_unix", (double)sb->created_unix) ||
	    !cJSON_AddNumberToObject(o, "init_pid", sb->init_pid) ||
	    !cJSON_AddNumberToObject(o, "init_start", (double)sb->init_start) ||
	    !cJSON_AddNumberToObject(o, "uid_slot", sb->uid_slot) ||
	    !cJSON_AddNumberToObject(o, "uid_base", sb->uid_base) || !(text = cJSON_Print(o)))
		return al_error_set(err, ENOMEM, "out of memory");
	snprintf(path, sizeof(path), "%s/state.json", sb->dir);
	/* No fsync: the sandbox does not survive a crash of the machine, and an
	 * empty state.json after one only marks it as gone. */
	return al_write_file_replace(path, text, strlen(text), 0600, err);
}

int sandbox_load(const struct sandbox_host *host, const char *id, struct sandbox **out,
                 struct al_error *err)
{
	_cleanup_free_ char *text = NULL;
	_cleanup_cjson_ cJSON *o = NULL;
	struct sandbox_spec spec = {0};
	const char *created;
	char path[PATH_MAX];
	struct sandbox *sb;
	int r;

	snprintf(path, sizeof(path), "%s/%s/state.json", host->sandboxes_dir, id);
	r = al_read_file(path, 1 << 20, &text, NULL, err);
	if (r < 0)
		return r;
	o = cJSON_Parse(text);
	if (!o || !al_json_str(o, "id") || strcmp(al_json_str(o, "id"), id))
		return al_error_set(err, EINVAL, "%s: malformed", path);
	r = sandbox_spec_from_record(o, &spec, err);
	if (r < 0)
		return al_error_prefix(err, "%s", path);
	sb = sandbox_new(host, id, &spec, err);
	sandbox_spec_free(&spec);
	if (!sb)
		return -ENOMEM;
	created = al_json_str(o, "created");
	snprintf(sb->created, sizeof(sb->created), "%s", created ? created : "");
	/* A record from before lifetimes: its ttl (none) counts from now. */
	sandbox_touch_created(sb);
	sb->created_unix = (int64_t)al_json_num(o, "created_unix", (double)sb->created_unix);
	sb->init_pid = (pid_t)al_json_num(o, "init_pid", 0);
	sb->init_start = (unsigned long long)al_json_num(o, "init_start", 0);
	sb->uid_slot = (uint32_t)al_json_num(o, "uid_slot", 0);
	sb->uid_base = (uid_t)al_json_num(o, "uid_base", 0);
	sb->pooled = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(o, "pooled"));
	*out = sb;
	return 0;
}

bool sandbox_reattach(struct sandbox *sb)
{
	unsigned long long st = 0;

	sb->pidfd = (int)syscall(SYS_pidfd_open, sb->init_pid, 0);
	return sb->pidfd >= 0 && sandbox_running(sb) && read_start_time(sb->init_pid, &st) == 0 &&
	       st == sb->init_start;
}

void sandbox_forget_state(struct sandbox *sb)
{
	char path[PATH_MAX];

	snprintf(path, sizeof(path), "%s/state.json", sb->dir);
	if (unlink(path) < 0 && errno != ENOENT)
		log_warn("sandbox %s: unlink %s: %m", sb->id, path);
}

/* ---- other files of the state directory --------------------------------------------------- */

static char *read_small(const struct sandbox *sb, const char *name)
{
	char path[PATH_MAX];
	char *text = NULL;
	size_t len = 0;

	snprintf(path, sizeof(path), "%s/%s", sb->dir, name);
	if (al_read_file(path, 64 << 20, &text, &len, NULL) < 0)
		return NULL;
	while (len > 0 && (text[len - 1] == '\n' || text[len - 1] == ' '))
		text[--len] = '\0';
	return text;
}

char *sandbox_read_manifest(const struct sandbox *sb)
{
	return read_small(sb, "manifest.json");
}

char *sandbox_read_last_snapshot(const struct sandbox *sb)
{
	return read_small(sb, "last_snapshot");
}

int sandbox_write_last_snapshot(const struct sandbox *sb, const char *id, struct al_error *err)
{
	char path[PATH_MAX];

	snprintf(path, sizeof(path), "%s/last_snapshot", sb->dir);
	return al_write_file_atomic(path, id, strlen(id), 0600, err);
}

void sandbox_upper_path(const struct sandbox *sb, char *buf, size_t len)
{
	snprintf(buf, len, "%s/upper", sb->dir);
}

/* ---- building ----------------------------------------------------------------------------- */

static int make_owned_dir(const char *path, mode_t mode, uid_t uid, struct al_error *err)
{
	if (mkdir(path, mode) < 0 && errno != EEXIST)
		return al_error_errno(err, "mkdir %s", path);
	if (chown(path, uid, (gid_t)uid) < 0)
		return al_error_errno(err, "chown %s", path);
	return 0;
}

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
	uint64_t inodes = (sb->spec.disk_bytes >> 20) * DISK_INODES_PER_MIB;

	snprintf(opts, sizeof(opts), "size=%llu,nr_inodes=%llu,mode=0700",
	         (unsigned long long)sb->spec.disk_bytes,
	         (unsigned long long)(inodes < 4096 ? 4096 : inodes));
	if (mount("airlock-layer", sb->dir, "tmpfs", MS_NOSUID | MS_NODEV, opts) < 0)
		return al_error_errno(err, "sandbox %s: mount tmpfs on %s", sb->id, sb->dir);
	return 0;
}

/* True when the lower layer has nothing at the workspace's path, or an
 * empty directory; resolved inside the layer, never following a link out. */
static bool layer_workspace_empty(const char *layer, const char *workspace)
{
	struct open_how how = {.flags = O_RDONLY | O_DIRECTORY | O_CLOEXEC,
	                       .resolve = RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS};
	_cleanup_close_ int root = open(layer, O_PATH | O_DIRECTORY | O_CLOEXEC);
	_cleanup_closedir_ DIR *d = NULL;
	struct dirent *de;
	int fd;

	if (root < 0)
		return false;
	fd = (int)syscall(SYS_openat2, root, workspace + 1, &how, sizeof(how));
	if (fd < 0)
		return errno == ENOENT;
	d = fdopendir(fd);
	if (!d) {
		close(fd);
		return false;
	}
	while ((de = readdir(d)))
		if (strcmp(de->d_name, ".") && strcmp(de->d_name, ".."))
			return false;
	return true;
}

/* The same for every lower layer (the base rootfs, or each of an image's). */
static bool lower_workspace_empty(const struct sandbox *sb)
{
	for (char **l = sb->spec.lowers; l && *l; l++)
		if (!layer_workspace_empty(*l, sb->spec.workspace))
			return false;
	return true;
}

/*
 * A workspace whose base rootfs directory is empty hides nothing when its
 * upper directory is opaque, and an opaque (upper-only) directory is one
 * overlayfs can rename: a merged one it refuses (EXDEV) without
 * redirect_dir.  That lets a hydrate swap the workspace whole (archives.c).
 * Best effort: without it, a hydrate replaces entry by entry.
 */
static void make_workspace_opaque(const struct sandbox *sb, const char *upper_path)
{
	if (strcmp(sb->spec.workspace, "/") && lower_workspace_empty(sb) &&
	    setxattr(upper_path, "trusted.overlay.opaque", "y", 1, 0) < 0)
		log_debug("sandbox %s: mark %s opaque: %m", sb->id, upper_path);
}

/* What the topmost lower layer that has rel (no leading '/') holds there,
 * resolved inside that layer; false when none has it. */
static bool lower_stat(const struct sandbox *sb, const char *rel, struct stat *st)
{
	struct open_how how = {.flags = O_PATH | O_NOFOLLOW | O_CLOEXEC,
	                       .resolve = RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS};

	for (char **l = sb->spec.lowers; l && *l; l++) {
		_cleanup_close_ int root = open(*l, O_PATH | O_DIRECTORY | O_CLOEXEC);
		_cleanup_close_ int fd = -1;

		if (root < 0)
			continue;
		fd = (int)syscall(SYS_openat2, root, rel, &how, sizeof(how));
		if (fd >= 0 && fstat(fd, st) == 0)
			return true;
	}
	return false;
}

/*
 * An image's WorkingDir need not exist in it (runc makes it at start): its
 * missing components are made in the writable layer, owned by the
 * sandbox's root; a component a lower layer has as a directory keeps that
 * one's owner and mode (an upper directory's own would hide them).  A
 * component that is something else stops it: the exec's chdir says why.
 */
static int make_workdir(const struct sandbox *sb, struct al_error *err)
{
	_cleanup_free_ char *copy = sb->spec.cwd ? strdup(sb->spec.cwd) : NULL;
	char path[PATH_MAX], rel[PATH_MAX];
	struct stat st;

	if (!sb->spec.cwd)
		return 0;
	if (!copy)
		return al_error_set(err, ENOMEM, "out of memory");
	snprintf(rel, sizeof(rel), "%s", sb->spec.cwd + 1);
	if (!rel[0] || lower_stat(sb, rel, &st))
		return 0; /* the image has it */
	snprintf(path, sizeof(path), "%s/upper", sb->dir);
	rel[0] = '\0';
	for (char *c = strtok(copy, "/"); c; c = strtok(NULL, "/")) {
		size_t l = strlen(path), rl = strlen(rel);
		uid_t uid = sb->uid_base;
		gid_t gid = (gid_t)sb->uid_base;
		mode_t mode = 0755;

		snprintf(path + l, sizeof(path) - l, "/%s", c);
		snprintf(rel + rl, sizeof(rel) - rl, "%s%s", rl ? "/" : "", c);
		if (lower_stat(sb, rel, &st)) {
			if (!S_ISDIR(st.st_mode))
				return 0;
			/* Layers keep the sandbox's ids: shifted to the host's. */
			uid = sb->uid_base + st.st_uid;
			gid = (gid_t)sb->uid_base + st.st_gid;
			mode = st.st_mode & 07777;
		}
		if (mkdir(path, mode) < 0 && errno != EEXIST)
			return al_error_errno(err, "mkdir %s", path);
		if (chown(path, uid, gid) < 0 || chmod(path, mode) < 0)
			return al_error_errno(err, "working directory %s", path);
	}
	return 0;
}

static int prepare_dirs(struct sandbox *sb, struct al_error *err)
{
	static const char *const subdirs[] = {"work", "root"};
	char path[PATH_MAX];
	const char *root = sb->spec.workspace;
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
	make_workspace_opaque(sb, path);
	r = make_workdir(sb, err);
	if (r < 0)
		return r;
	if (!sb->spec.parsed)
		return 0;
	wsfd = open(path, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (wsfd < 0)
		return al_error_errno(err, "open %s", path);
	/* git_repo clones land on the sandbox's own tmpfs: its disk cap bounds them. */
	r = manifest_materialize(sb->spec.parsed, wsfd, sb->uid_base, (gid_t)sb->uid_base, sb->dir,
	                         err);
	if (r < 0)
		return al_error_prefix(err, "manifest");
	return 0;
}

/*
 * The manifest is kept (for the ephemeral entries a workspace archive leaves
 * out, and for snapshots); a sandbox made from a snapshot gets its writable
 * layer back before PID 1 mounts it.
 */
static int restore_layer(struct sandbox *sb, int layer_fd, struct al_error *err)
{
	_cleanup_free_ char *text = NULL;
	char path[PATH_MAX];
	int r;

	if (cJSON_IsObject(sb->spec.manifest)) {
		text = cJSON_PrintUnformatted(sb->spec.manifest);
		if (!text)
			return al_error_set(err, ENOMEM, "out of memory");
		snprintf(path, sizeof(path), "%s/manifest.json", sb->dir);
		r = al_write_file_atomic(path, text, strlen(text), 0600, err);
		if (r < 0)
			return r;
	}
	if (layer_fd < 0)
		return 0;
	sandbox_upper_path(sb, path, sizeof(path));
	r = tar_extract_layer(path, layer_fd, sb->uid_base, err);
	return r < 0 ? al_error_prefix(err, "sandbox %s", sb->id) : 0;
}

int sandbox_build(const struct sandbox_host *host, struct sandbox *sb,
                  const struct sandbox_start *how, struct al_error *err)
{
	int r;

	r = prepare_dirs(sb, err);
	if (r < 0)
		return r;
	r = restore_layer(sb, how->layer_fd, err);
	if (r < 0)
		return r;
	r = cgroup_create(host->cgroups, sb->id, &sb->spec.limits, err);
	if (r < 0)
		return r;
	r = how->start(host, sb, how, err);
	if (r < 0)
		return r;
	/* PID 1 has its mount namespace now: bucket mounts go in, and the keys
	 * they needed are forgotten whatever the outcome. */
	r = bucket_mounts_start(sb, sb->spec.mount_credentials, err);
	sandbox_spec_wipe_credentials(&sb->spec);
	if (r < 0)
		return r;
	if (read_start_time(sb->init_pid, &sb->init_start) < 0)
		return al_error_set(err, ESRCH, "sandbox %s: PID 1 vanished", sb->id);
	return sandbox_save_state(sb, err);
}

/* ---- stopping ----------------------------------------------------------------------------- */

int sandbox_remove_remains(const struct sandbox_host *host, const char *id, struct al_error *err)
{
	char dir[PATH_MAX];
	int r;

	/* Killing the cgroup kills airlock-init and with it the pid namespace,
	 * its mount namespace (every sandbox mount) and its network namespace. */
	r = cgroup_destroy(host->cgroups, id, err);
	if (r < 0)
		return al_error_prefix(err, "sandbox %s", id);
	snprintf(dir, sizeof(dir), "%s/%s", host->sandboxes_dir, id);
	/* rclone's mounts sit on the tmpfs below: they go first. */
	r = bucket_mounts_remove(dir, err);
	if (r < 0)
		return al_error_prefix(err, "sandbox %s", id);
	/* The writable layer's tmpfs; EINVAL means it was never mounted. */
	if (umount2(dir, MNT_DETACH) < 0 && errno != EINVAL && errno != ENOENT)
		return al_error_errno(err, "sandbox %s: umount %s", id, dir);
	r = al_rm_rf(dir, err);
	if (r < 0)
		return al_error_prefix(err, "sandbox %s", id);
	return 0;
}

int sandbox_open_cgroup_joins(const struct sandbox_host *host, const struct sandbox *sb, int *fds,
                              size_t max, struct al_error *err)
{
	_cleanup_close_ int dir = -1;
	int n, fd;

	n = cgroup_open_join_fds(host->cgroups, sb->id, fds, max, err);
	if (n < 0)
		return al_error_prefix(err, "sandbox %s", sb->id);
	dir = cgroup_open_v2_dir(host->cgroups, sb->id, err);
	if (dir == -ENOTSUP) {
		al_error_clear(err);
		return n;
	}
	if (dir < 0 || (size_t)n >= max) {
		for (int i = 0; i < n; i++)
			close(fds[i]);
		return dir < 0 ? al_error_prefix(err, "sandbox %s", sb->id)
		               : al_error_set(err, E2BIG, "sandbox %s: too many cgroups", sb->id);
	}
	fd = openat(dir, "cgroup.procs", O_WRONLY | O_CLOEXEC);
	if (fd < 0) {
		int e = errno;
		for (int i = 0; i < n; i++)
			close(fds[i]);
		errno = e;
		return al_error_errno(err, "sandbox %s: open its cgroup.procs", sb->id);
	}
	fds[n++] = fd;
	return n;
}

void sandbox_kill(struct sandbox *sb)
{
	if (sb->pidfd >= 0)
		syscall(SYS_pidfd_send_signal, sb->pidfd, SIGKILL, NULL, 0);
	/* It holds the sandbox's mount namespace, and with it every mount. */
	sandbox_files_stop(sb);
}

void sandbox_kill_wait(struct sandbox *sb)
{
	sandbox_kill(sb);
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

struct sandbox_proc *sandbox_take_procs(struct sandbox *sb, size_t *n)
{
	struct sandbox_proc *procs;

	pthread_mutex_lock(&sb->lock);
	procs = sb->procs;
	*n = sb->n_procs;
	sb->procs = NULL;
	sb->n_procs = 0;
	pthread_mutex_unlock(&sb->lock);
	return procs;
}

/* ---- PID 1 -------------------------------------------------------------------------------- */

/*
 * One request to PID 1 that is answered by PONG.  A restored PID 1 is told
 * to REEXEC (pid1.c says why), then pinged to see the new image serve.
 * Returns the connection, still open.
 */
int sandbox_call_init(const struct sandbox *sb, uint8_t type, struct al_error *err)
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
	return sandbox_call_init(sb, INITPROTO_PING, err);
}

/* ---- access to the inside ---------------------------------------------------------------- */

static const struct timeval init_timeout = {.tv_sec = SANDBOX_INIT_TIMEOUT_S};

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
	/* Every wait on PID 1 has a bound: connect (a full backlog), sends and
	 * answers.  A sandbox can stop its PID 1's work (it cannot stop PID 1
	 * itself), and a thread of ours must not wait on it forever. */
	if (setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &init_timeout, sizeof(init_timeout)) < 0 ||
	    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &init_timeout, sizeof(init_timeout)) < 0)
		return al_error_errno(err, "setsockopt");
	memcpy(sa.sun_path + 1, INITPROTO_SOCKET_NAME, len);
	if (connect(fd, (struct sockaddr *)&sa,
	            (socklen_t)(offsetof(struct sockaddr_un, sun_path) + 1 + len)) < 0) {
		if (errno == EAGAIN)
			return al_error_set(err, ETIMEDOUT,
			                    "sandbox %s: PID 1 accepted no connection in %d s",
			                    sb->id, SANDBOX_INIT_TIMEOUT_S);
		return al_error_errno(err, "sandbox %s: connect to airlock-init", sb->id);
	}
	return TAKE_FD(fd);
}

/* ---- process table ----------------------------------------------------------------------- */

/* Take out of the table processes that ended SANDBOX_PROCESS_KEEP_MS ago and
 * were never collected, into gone (room for SANDBOX_MAX_PROCESSES): the
 * caller releases them once sb->lock is dropped (a RELEASE to PID 1 is a
 * write to its socket, which no other request should wait behind).
 * sb->lock held. */
static size_t sweep_processes_locked(struct sandbox *sb, struct al_process **gone)
{
	size_t n = 0;

	for (size_t i = 0; i < sb->n_procs;) {
		if (!process_expired(sb->procs[i].p, SANDBOX_PROCESS_KEEP_MS)) {
			i++;
			continue;
		}
		log_info("sandbox %s: process %s ended %d s ago and was never collected; "
		         "its output is dropped",
		         sb->id, sb->procs[i].id, SANDBOX_PROCESS_KEEP_MS / 1000);
		gone[n++] = sb->procs[i].p;
		sb->procs[i] = sb->procs[--sb->n_procs];
	}
	return n;
}

int sandbox_add_process(struct sandbox *sb, struct al_process *p, char *id_out, size_t id_len)
{
	struct al_process *gone[SANDBOX_MAX_PROCESSES];
	struct sandbox_proc *n;
	size_t n_gone;
	int r = 0;

	pthread_mutex_lock(&sb->lock);
	n_gone = sweep_processes_locked(sb, gone);
	if (sb->destroying) {
		r = -ESRCH;
	} else if (sb->n_procs >= SANDBOX_MAX_PROCESSES) {
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
	for (size_t i = 0; i < n_gone; i++) {
		process_release(gone[i]);
		process_unref(gone[i]);
	}
	return r;
}

int sandbox_adopt_process(struct sandbox *sb, struct al_process *p, const char *id)
{
	struct sandbox_proc *n;
	int r = 0;

	pthread_mutex_lock(&sb->lock);
	n = realloc(sb->procs, (sb->n_procs + 1) * sizeof(*n));
	if (!n) {
		r = -ENOMEM;
	} else {
		sb->procs = n;
		n = &sb->procs[sb->n_procs++];
		snprintf(n->id, sizeof(n->id), "%s", id);
		n->p = p;
		process_ref(p);
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
