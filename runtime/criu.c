/* SPDX-License-Identifier: Apache-2.0 */
/*
 * CRIU driver.
 *
 * We run the `criu` binary rather than its swrk RPC: the RPC saves one
 * fork+exec (about 2 ms here) but needs protobuf-c and CRIU's .proto files
 * at build time, and a dump takes tens of milliseconds anyway.
 *
 * What makes a sandbox checkpointable (sandbox.c, init.c, pid1.c):
 *   - its user namespace owns every other namespace of it (one clone3);
 *   - its root is an overlay that airlockd made as a detached mount, so the
 *     idmapped lower layer is never in its mount namespace (CRIU 4.1.1 has
 *     no idmapped mounts); at restore airlockd makes a new one and gives it
 *     to CRIU as --root;
 *   - the host device nodes and airlock-pid1 bound into its /dev are
 *     declared external mounts, on both sides;
 *   - PID 1 is a static binary run from that bound file, with /dev/null as
 *     stdio, listening on an abstract socket of the sandbox's own network
 *     namespace, which CRIU dumps and re-creates like any other socket.
 *
 * Options, and why:
 *   --network-lock skip   the sandbox has loopback only: nothing to lock,
 *                         and the iptables/nftables lock costs ~100 ms
 *   --manage-cgroups=soft  CRIU records the cgroup namespace; at restore
 *                         --cgroup-root (one per hierarchy) maps the tree
 *                         into the new sandbox's cgroups, which airlockd made
 *                         with their limits ("ignore" would lose the cgroup
 *                         namespace: the restored tree would see the host's)
 *   --tcp-established --file-locks  connections and locks inside survive
 *   --external unix[INO]  PID 1's connections to airlockd (one per running
 *                         process); at restore each gets a socket whose peer
 *                         is closed, so PID 1 forgets it: the process keeps
 *                         running, unreported, as after an airlockd restart
 *
 * The caller freezes the sandbox's cgroup first (snapshot.c keeps it frozen
 * until the writable layer is archived too, so files and memory are of the
 * same instant) and passes it as --freeze-cgroup: CRIU skips its own
 * freezer loop, whose 100 ms polling steps cost runc that much, when the
 * group is already frozen.
 *
 * CRIU 4.1.1 on Linux >= 6.16 cannot dump a TCP socket: the criu process
 * gets airlock-criu-shim.so preloaded (criu_passcred_shim.c says what it
 * changes and why); nothing else does.
 */
#include "criu.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <stdbool.h>
#include <signal.h>
#include <linux/mount.h>
#include <linux/sched.h>
#include <sched.h>
#include <spawn.h>
#include <stdarg.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "cgroup.h"
#include "cleanup.h"
#include "mounts.h"
#include "log.h"
#include "util.h"

extern char **environ;

/* The lines of CRIU's log that say why it failed, joined. */
static void log_errors(const char *log_path, char *out, size_t len)
{
	_cleanup_free_ char *text = NULL;
	size_t used = 0;
	char *save = NULL;

	out[0] = '\0';
	if (al_read_file(log_path, 16 << 20, &text, NULL, NULL) < 0)
		return;
	for (char *line = strtok_r(text, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
		char *e = strstr(line, "Error (");
		int n;
		if (!e || strstr(line, "RLIMIT_NOFILE"))
			continue;
		n = snprintf(out + used, len - used, "%s%s", used ? "; " : "", e);
		if (n < 0 || (size_t)n >= len - used)
			break;
		used += (size_t)n;
	}
}

/* A growing argv/envp of strings we own. */
struct strv {
	char **v;
	size_t n, cap;
};

static void strv_free(struct strv *s)
{
	for (size_t i = 0; i < s->n; i++)
		free(s->v[i]);
	free(s->v);
	*s = (struct strv){0};
}

__attribute__((format(printf, 2, 3))) static int strv_add(struct strv *s, const char *fmt, ...)
{
	va_list ap;
	char *str;
	int r;

	if (s->n + 2 > s->cap) {
		size_t cap = s->cap ? s->cap * 2 : 32;
		char **v = realloc(s->v, cap * sizeof(char *));
		if (!v)
			return -ENOMEM;
		s->v = v;
		s->cap = cap;
	}
	va_start(ap, fmt);
	r = vasprintf(&str, fmt, ap);
	va_end(ap);
	if (r < 0)
		return -ENOMEM;
	s->v[s->n++] = str;
	s->v[s->n] = NULL;
	return 0;
}

/* criu's environment: ours, plus the shim (see the top of this file). */
static int criu_env(const struct daemon_ctx *ctx, struct strv *env)
{
	int r = 0;

	for (char **e = environ; *e && r == 0; e++)
		if (strncmp(*e, "LD_PRELOAD=", 11))
			r = strv_add(env, "%s", *e);
	if (r == 0 && ctx->criu_shim_path)
		r = strv_add(env, "LD_PRELOAD=%s", ctx->criu_shim_path);
	return r;
}

/* How criu ended: 0, or an error naming CRIU's own errors; its log is kept as
 * keep_log (for the operator: the images directory goes away). */
static int criu_result(int status, const char *log_path, const char *keep_log, const char *what,
                       struct al_error *err)
{
	_cleanup_free_ char *text = NULL;
	char why[768];
	size_t len = 0;

	if (WIFEXITED(status) && WEXITSTATUS(status) == 0)
		return 0;
	log_errors(log_path, why, sizeof(why));
	if (keep_log && al_read_file(log_path, 16 << 20, &text, &len, NULL) == 0) {
		struct al_error e = AL_ERROR_INIT;
		if (al_write_file_atomic(keep_log, text, len, 0600, &e) == 0)
			log_path = keep_log;
	}
	return al_error_set(err, EIO, "criu %s failed: %s (log: %s)", what,
	                    why[0] ? why : "no error in its log", log_path);
}

/* A criu that has not finished after this long is stuck (a dump of
 * several GiB takes seconds): it is killed and the operation fails. */
#define CRIU_TIMEOUT_MS 120000

/* Wait for criu (pid); kill it if it outlives CRIU_TIMEOUT_MS. */
static int wait_criu(pid_t pid, int *status, const char *what, struct al_error *err)
{
	_cleanup_close_ int pidfd = (int)syscall(SYS_pidfd_open, pid, 0);
	uint64_t deadline = al_now_ms() + CRIU_TIMEOUT_MS;
	bool timed_out = false;

	while (pidfd >= 0) {
		struct pollfd pfd = {.fd = pidfd, .events = POLLIN};
		uint64_t now = al_now_ms();
		int n;

		if (now >= deadline) {
			timed_out = true;
			kill(pid, SIGKILL);
			break;
		}
		n = poll(&pfd, 1, (int)(deadline - now));
		if (n > 0)
			break;
		if (n < 0 && errno != EINTR)
			break;
	}
	while (waitpid(pid, status, 0) < 0 && errno == EINTR)
		;
	if (timed_out)
		return al_error_set(err, ETIMEDOUT, "criu %s did not finish in %d s: killed", what,
		                    CRIU_TIMEOUT_MS / 1000);
	return 0;
}

/* Run criu with argv and env; on failure see criu_result(). */
static int run_criu(char *const argv[], char *const env[], const char *log_path,
                    const char *keep_log, const char *what, struct al_error *err)
{
	pid_t pid;
	int status = 0, r;

	r = posix_spawnp(&pid, "criu", NULL, NULL, argv, env);
	if (r != 0) {
		errno = r;
		return al_error_errno(err, "run criu");
	}
	r = wait_criu(pid, &status, what, err);
	if (r < 0)
		return r;
	return criu_result(status, log_path, keep_log, what, err);
}

/*
 * PID 1's connections to airlockd: every socket it holds but its listener
 * (fd 3, see pid1.c), as "socket:[INO]".
 */
static int pid1_connections(pid_t pid, cJSON *out, struct al_error *err)
{
	char dir[64], path[128], link[64];
	_cleanup_closedir_ DIR *d = NULL;
	struct dirent *de;

	snprintf(dir, sizeof(dir), "/proc/%d/fd", (int)pid);
	d = opendir(dir);
	if (!d)
		return al_error_errno(err, "open %s", dir);
	while ((de = readdir(d))) {
		ssize_t n;
		if (de->d_name[0] == '.' || !strcmp(de->d_name, "3"))
			continue;
		snprintf(path, sizeof(path), "%s/%s", dir, de->d_name);
		n = readlink(path, link, sizeof(link) - 1);
		if (n <= 0)
			continue;
		link[n] = '\0';
		if (!strncmp(link, "socket:[", 8))
			cJSON_AddItemToArray(out, cJSON_CreateString(link));
	}
	return 0;
}

static int add_dev_externals(struct strv *argv, bool restore, const char *pid1_path)
{
	int r = 0;

	/* The key names a mount at dump; at restore it says what to bind there. */
	for (size_t i = 0; mounts_dev_nodes[i] && r == 0; i++)
		r = restore ? strv_add(argv, "--external=mnt[dev_%s]:/dev/%s", mounts_dev_nodes[i],
		                       mounts_dev_nodes[i])
		            : strv_add(argv, "--external=mnt[/dev/%s]:dev_%s", mounts_dev_nodes[i],
		                       mounts_dev_nodes[i]);
	if (r == 0)
		r = restore ? strv_add(argv, "--external=mnt[pid1]:%s", pid1_path)
		            : strv_add(argv, "--external=mnt[/dev/.init]:pid1");
	return r;
}

int criu_checkpoint(struct daemon_ctx *ctx, struct sandbox *sb, const char *images_dir,
                    const char *freezer, struct al_error *err)
{
	_cleanup_(strv_free) struct strv argv = {0}, env = {0};
	_cleanup_cjson_ cJSON *meta = cJSON_CreateObject();
	_cleanup_free_ char *text = NULL;
	char log_path[PATH_MAX], keep[PATH_MAX], path[PATH_MAX];
	cJSON *socks, *it;
	uint64_t t0 = al_now_ms();
	int r;

	if (!ctx->criu_version)
		return al_error_set(err, ENOTSUP,
		                    "CRIU is not installed: cannot checkpoint processes "
		                    "(snapshot without processes instead)");
	if (!meta || !(socks = cJSON_AddArrayToObject(meta, "pid1_connections")) ||
	    !cJSON_AddNumberToObject(meta, "uid_base", sb->uid_base))
		return al_error_set(err, ENOMEM, "out of memory");
	r = pid1_connections(sb->init_pid, socks, err);
	if (r < 0)
		return al_error_prefix(err, "sandbox %s", sb->id);
	r = strv_add(&argv, "criu");
	if (r == 0)
		r = strv_add(&argv, "dump");
	if (r == 0)
		r = strv_add(&argv, "--tree=%d", (int)sb->init_pid);
	if (r == 0)
		r = strv_add(&argv, "--images-dir=%s", images_dir);
	if (r == 0)
		r = strv_add(&argv, "--log-file=dump.log");
	if (r == 0)
		r = strv_add(&argv, "--verbosity=2");
	if (r == 0)
		r = strv_add(&argv, "--leave-running");
	if (r == 0)
		r = strv_add(&argv, "--network-lock=skip");
	if (r == 0)
		r = strv_add(&argv, "--manage-cgroups=soft");
	if (r == 0)
		r = strv_add(&argv, "--tcp-established");
	if (r == 0)
		r = strv_add(&argv, "--file-locks");
	if (r == 0 && freezer)
		r = strv_add(&argv, "--freeze-cgroup=%s", freezer);
	if (r == 0)
		r = add_dev_externals(&argv, false, NULL);
	cJSON_ArrayForEach(it, socks)
	{
		unsigned long ino = strtoul(it->valuestring + 8, NULL, 10);
		if (r == 0)
			r = strv_add(&argv, "--external=unix[%lu]", ino);
	}
	if (r == 0)
		r = criu_env(ctx, &env);
	if (r < 0)
		return al_error_set(err, ENOMEM, "out of memory");
	snprintf(log_path, sizeof(log_path), "%s/dump.log", images_dir);
	snprintf(keep, sizeof(keep), "%s/criu-dump.log", sb->dir);
	r = run_criu(argv.v, env.v, log_path, keep, "dump", err);
	if (r < 0)
		return al_error_prefix(err, "sandbox %s", sb->id);
	unlink(log_path);
	/* What restore needs besides CRIU's images. */
	text = cJSON_PrintUnformatted(meta);
	if (!text)
		return al_error_set(err, ENOMEM, "out of memory");
	snprintf(path, sizeof(path), "%s/%s", images_dir, CRIU_AIRLOCK_META);
	r = al_write_file_atomic(path, text, strlen(text), 0600, err);
	if (r < 0)
		return r;
	log_info("sandbox %s: criu dump in %llu ms", sb->id,
	         (unsigned long long)(al_now_ms() - t0));
	return 0;
}

int criu_images_uid_base(const char *images_dir, uid_t *out, struct al_error *err)
{
	_cleanup_free_ char *text = NULL;
	_cleanup_cjson_ cJSON *meta = NULL;
	char path[PATH_MAX];
	const cJSON *v;
	int r;

	snprintf(path, sizeof(path), "%s/%s", images_dir, CRIU_AIRLOCK_META);
	r = al_read_file(path, 1 << 20, &text, NULL, err);
	if (r < 0)
		return r;
	meta = cJSON_Parse(text);
	v = cJSON_GetObjectItemCaseSensitive(meta, "uid_base");
	if (!cJSON_IsNumber(v) || v->valuedouble < AIRLOCK_UID_BASE)
		return al_error_set(err, EINVAL, "%s: no uid_base", path);
	*out = (uid_t)v->valuedouble;
	return 0;
}

/* The user namespace's first member: it only has to have existed. */
static int userns_holder(void *arg)
{
	(void)arg;
	return 0;
}

/*
 * A user namespace with the sandbox's map, for the idmapped lower layer of a
 * restored sandbox (CRIU re-creates the sandbox's own from the images, with
 * the same map).  It is made by a child that exits at once; we write its maps
 * and keep an fd through /proc/PID, which still names it while the child is
 * a zombie.  With CLONE_VM|CLONE_VFORK nothing of ours is copied.
 */
static int userns_with_map(uid_t base, struct al_error *err)
{
	_Alignas(16) char stack[16384];
	char path[64];
	pid_t pid;
	int fd = -1, r = 0;

	pid = clone(userns_holder, stack + sizeof(stack),
	            CLONE_NEWUSER | CLONE_VM | CLONE_VFORK | SIGCHLD, NULL);
	if (pid < 0)
		return al_error_errno(err, "clone user namespace holder");
	r = sandbox_write_id_maps(pid, base, err);
	if (r == 0) {
		snprintf(path, sizeof(path), "/proc/%d/ns/user", (int)pid);
		fd = open(path, O_RDONLY | O_CLOEXEC);
		if (fd < 0)
			r = al_error_errno(err, "open %s", path);
	}
	while (waitpid(pid, NULL, 0) < 0 && errno == EINTR)
		;
	return r < 0 ? r : fd;
}

/* criu's path from PATH, resolved before fork (the child may not allocate). */
static char *find_criu(void)
{
	const char *path = getenv("PATH");
	_cleanup_free_ char *copy = strdup(path && *path ? path : "/usr/sbin:/usr/bin:/sbin:/bin");
	char *save = NULL, *cand;

	for (char *d = copy ? strtok_r(copy, ":", &save) : NULL; d;
	     d = strtok_r(NULL, ":", &save)) {
		if (asprintf(&cand, "%s/criu", d) < 0)
			return NULL;
		if (access(cand, X_OK) == 0)
			return cand;
		free(cand);
	}
	return NULL;
}

/* The restored PID 1 is reparented to the nearest subreaper when criu exits:
 * airlockd is one while any restore runs, so it becomes our child. */
static pthread_mutex_t subreaper_lock = PTHREAD_MUTEX_INITIALIZER;
static unsigned subreaper_users;

static void subreaper_hold(bool on)
{
	pthread_mutex_lock(&subreaper_lock);
	if (on && subreaper_users++ == 0)
		prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0);
	else if (!on && --subreaper_users == 0)
		prctl(PR_SET_CHILD_SUBREAPER, 0, 0, 0, 0);
	pthread_mutex_unlock(&subreaper_lock);
}

#define INHERIT_FD_BASE 10

/*
 * The restored tasks open some images themselves, some while they are still
 * the host's uid 0 without capabilities there, some once they took the
 * sandbox's uids: the images must be readable by both.  They are made
 * readable by anyone, which reaches only those that hold the directory's fd:
 * the directory is inside airlockd's 0700 state directory.
 */
static int open_images(const char *images_dir, struct al_error *err)
{
	_cleanup_closedir_ DIR *d = opendir(images_dir);
	struct dirent *de;

	if (!d)
		return al_error_errno(err, "open %s", images_dir);
	if (fchmod(dirfd(d), 0711) < 0)
		return al_error_errno(err, "chmod %s", images_dir);
	while ((de = readdir(d))) {
		if (de->d_name[0] == '.')
			continue;
		if (fchmodat(dirfd(d), de->d_name, 0644, 0) < 0)
			return al_error_errno(err, "chmod %s/%s", images_dir, de->d_name);
	}
	return 0;
}

static pid_t parent_of(pid_t pid)
{
	_cleanup_free_ char *text = NULL;
	char path[64], *p;
	int ppid = 0;

	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	if (al_read_file(path, 8192, &text, NULL, NULL) < 0)
		return 0;
	/* comm may hold anything: the fields after it start past the last ')'. */
	p = strrchr(text, ')');
	if (!p || sscanf(p + 1, " %*c %d", &ppid) != 1)
		return 0;
	return ppid;
}

int criu_restore(struct daemon_ctx *ctx, struct sandbox *sb, const char *images_dir,
                 struct al_error *err)
{
	_cleanup_(strv_free) struct strv argv = {0}, env = {0};
	_cleanup_free_ char *text = NULL, *criu = NULL, *pidtext = NULL;
	_cleanup_cjson_ cJSON *meta = NULL;
	_cleanup_strv_ char **roots = NULL;
	_cleanup_close_ int userns_fd = -1, root_fd = -1, cgfd = -1;
	char path[PATH_MAX], upper[PATH_MAX], work[PATH_MAX], target[PATH_MAX];
	char log_path[PATH_MAX], keep[PATH_MAX], pidfile[PATH_MAX];
	int inherit[64], peers[64], join[16];
	size_t n_inherit = 0;
	int n_join = 0, status = 0;
	const cJSON *it;
	struct clone_args args = {0};
	uint64_t t0 = al_now_ms();
	pid_t pid;
	int r;

	if (!ctx->criu_version)
		return al_error_set(err, ENOTSUP,
		                    "CRIU is not installed: cannot restore processes");
	criu = find_criu();
	if (!criu)
		return al_error_set(err, ENOENT, "criu not found in PATH");
	snprintf(path, sizeof(path), "%s/%s", images_dir, CRIU_AIRLOCK_META);
	r = al_read_file(path, 1 << 20, &text, NULL, err);
	if (r < 0)
		return r;
	meta = cJSON_Parse(text);
	if (!meta)
		return al_error_set(err, EINVAL, "%s: malformed", path);

	r = open_images(images_dir, err);
	if (r < 0)
		return r;
	snprintf(upper, sizeof(upper), "%s/upper", sb->dir);
	snprintf(work, sizeof(work), "%s/work", sb->dir);
	snprintf(target, sizeof(target), "%s/root", sb->dir);
	snprintf(log_path, sizeof(log_path), "%s/restore.log", images_dir);
	snprintf(keep, sizeof(keep), "%s/criu-restore.log", sb->dir);
	snprintf(pidfile, sizeof(pidfile), "%s/init.pid", sb->dir);
	userns_fd = userns_with_map(sb->uid_base, err);
	if (userns_fd < 0)
		return userns_fd;
	root_fd = mounts_make_root(sb->rootfs, upper, work, userns_fd, err);
	if (root_fd < 0)
		return root_fd;
	r = cgroup_criu_roots(ctx->cgroups, sb->id, &roots, err);
	if (r < 0)
		return r;

	r = strv_add(&argv, "criu");
	if (r == 0)
		r = strv_add(&argv, "restore");
	if (r == 0)
		r = strv_add(&argv, "--images-dir=%s", images_dir);
	if (r == 0)
		r = strv_add(&argv, "--root=%s", target);
	if (r == 0)
		r = strv_add(&argv, "--log-file=restore.log");
	if (r == 0)
		r = strv_add(&argv, "--verbosity=2");
	if (r == 0)
		r = strv_add(&argv, "--restore-detached");
	if (r == 0)
		r = strv_add(&argv, "--pidfile=%s", pidfile);
	if (r == 0)
		r = strv_add(&argv, "--tcp-established");
	if (r == 0)
		r = strv_add(&argv, "--file-locks");
	if (r == 0)
		r = strv_add(&argv, "--manage-cgroups=soft");
	for (char **root = roots; r == 0 && *root; root++)
		r = strv_add(&argv, "--cgroup-root=%s", *root);
	if (r == 0)
		r = add_dev_externals(&argv, true, ctx->pid1_path);
	if (r < 0)
		return al_error_set(err, ENOMEM, "out of memory");
	/* Each of PID 1's connections to the airlockd that took the snapshot
	 * comes back as a socket whose peer we close: PID 1 drops it. */
	cJSON_ArrayForEach(it, cJSON_GetObjectItemCaseSensitive(meta, "pid1_connections"))
	{
		int sp[2];
		if (r < 0)
			break;
		if (!cJSON_IsString(it) || n_inherit >= AL_ARRAY_SIZE(inherit)) {
			r = al_error_set(err, EINVAL, "%s: bad pid1_connections", path);
			break;
		}
		if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sp) < 0) {
			r = al_error_errno(err, "socketpair");
			break;
		}
		inherit[n_inherit] = sp[0];
		peers[n_inherit] = sp[1];
		n_inherit++;
		if (strv_add(&argv, "--inherit-fd=fd[%zu]:%s", INHERIT_FD_BASE + n_inherit - 1,
		             it->valuestring) < 0)
			r = al_error_set(err, ENOMEM, "out of memory");
	}
	if (r == 0 && criu_env(ctx, &env) < 0)
		r = al_error_set(err, ENOMEM, "out of memory");
	if (r == 0) {
		cgfd = cgroup_open_v2_dir(ctx->cgroups, sb->id, err);
		n_join = cgroup_open_join_fds(ctx->cgroups, sb->id, join, AL_ARRAY_SIZE(join), err);
		if (n_join < 0)
			r = n_join;
	}
	if (r < 0) {
		for (size_t i = 0; i < n_inherit; i++) {
			close(inherit[i]);
			close(peers[i]);
		}
		return r;
	}

	/*
	 * criu runs in the sandbox's cgroups (so the restored tree starts
	 * there) and in a private mount namespace where the new root is
	 * attached at state/ID/root; that namespace dies with criu, so nothing
	 * is ever mounted on the host.  The child of a multi-threaded process
	 * makes raw syscalls only.
	 */
	args.exit_signal = SIGCHLD;
	if (cgfd >= 0) {
		args.flags |= CLONE_INTO_CGROUP;
		args.cgroup = (uint64_t)cgfd;
	}
	subreaper_hold(true);
	pid = (pid_t)syscall(SYS_clone3, &args, sizeof(args));
	if (pid == 0) {
		for (int i = 0; i < n_join; i++)
			if (write(join[i], "0", 1) != 1)
				_exit(120);
		if (unshare(CLONE_NEWNS) < 0 ||
		    mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0)
			_exit(121);
		if (syscall(SYS_move_mount, root_fd, "", AT_FDCWD, target,
		            MOVE_MOUNT_F_EMPTY_PATH) < 0)
			_exit(122);
		for (size_t i = 0; i < n_inherit; i++)
			if (dup2(inherit[i], INHERIT_FD_BASE + (int)i) < 0)
				_exit(123);
		syscall(SYS_close_range, INHERIT_FD_BASE + n_inherit, ~0U, CLOSE_RANGE_CLOEXEC);
		execve(criu, argv.v, env.v);
		_exit(127);
	}
	if (pid < 0)
		r = al_error_errno(err, "clone3 for criu restore");
	for (int i = 0; i < n_join; i++)
		close(join[i]);
	for (size_t i = 0; i < n_inherit; i++) {
		close(inherit[i]);
		close(peers[i]);
	}
	if (pid > 0) {
		r = wait_criu(pid, &status, "restore", err);
		if (r == 0 && WIFEXITED(status) && WEXITSTATUS(status) >= 120 &&
		    WEXITSTATUS(status) <= 123)
			r = al_error_set(err, EIO,
			                 "criu restore: cannot prepare its namespace (%d)",
			                 WEXITSTATUS(status));
		else if (r == 0)
			r = criu_result(status, log_path, keep, "restore", err);
	}
	subreaper_hold(false);
	if (r < 0)
		return al_error_prefix(err, "sandbox %s", sb->id);
	unlink(log_path);

	r = al_read_file(pidfile, 64, &pidtext, NULL, err);
	unlink(pidfile);
	if (r < 0)
		return al_error_prefix(err, "sandbox %s", sb->id);
	sb->init_pid = (pid_t)strtol(pidtext, NULL, 10);
	sb->pidfd = (int)syscall(SYS_pidfd_open, sb->init_pid, 0);
	if (sb->init_pid <= 0 || sb->pidfd < 0)
		return al_error_set(err, ESRCH, "sandbox %s: restored PID 1 is gone", sb->id);
	/* Reparented to us when criu exited (see subreaper_hold). */
	sb->our_child = parent_of(sb->init_pid) == getpid();
	log_info("sandbox %s: criu restore in %llu ms (pid %d)", sb->id,
	         (unsigned long long)(al_now_ms() - t0), (int)sb->init_pid);
	return 0;
}
