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
 *   --empty-ns net        its network namespace holds lo, up, and nothing
 *                         root inside could change (no CAP_NET_ADMIN): CRIU
 *                         need not run `ip addr/route/rule save`,
 *                         iptables-save and the like, nor their restore
 *                         counterparts (~30 ms of dump, ~18 ms of restore
 *                         here); at restore airlock-criu-hook brings lo up in
 *                         the new namespace before any socket comes back
 *                         (criu_hook.c).  Recorded in airlock-criu.json, so
 *                         images made before are restored as they were made.
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
 * changes and why); nothing else does but what criu itself runs (tar, the
 * action script), which inherits its environment.
 *
 * Every criu run starts by probing the kernel (its "kerndat": ~25 ms here,
 * most of it running `iptables -L` and `ip6tables -L`), and keeps the result
 * in /run/criu.kdat for the next run, but only if /run is a tmpfs (the file
 * must not outlive the kernel); on hosts where it is not, as on this one,
 * every run probes again.  So criu runs in a private mount namespace (which
 * the restore needs anyway) with a fresh tmpfs of ours on /run, holding
 * criu.kdat as the previous run left it: airlockd keeps those bytes in
 * memory, tied to the criu binary that wrote them.  Nothing is mounted on
 * the host, and the cache dies with airlockd (a new kernel restarts it).
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
#include "initproto.h"
#include "json.h"
#include "mounts.h"
#include "log.h"
#include "strv.h"
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

/* criu's environment: ours, plus the shim (see the top of this file). */
static void criu_env(const struct sandbox_host *host, struct al_argv *env)
{
	for (char **e = environ; *e; e++)
		if (strncmp(*e, "LD_PRELOAD=", 11))
			al_argv_add(env, "%s", *e);
	if (host->criu_shim_path)
		al_argv_add(env, "LD_PRELOAD=%s", host->criu_shim_path);
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
	if (al_read_file(log_path, 16 << 20, &text, &len, NULL) < 0) {
		/* It stopped before opening its log (its own messages went to
		 * airlockd's stderr): say how it ended rather than name a log
		 * that does not exist. */
		if (WIFSIGNALED(status))
			return al_error_set(err, EIO,
			                    "criu %s killed by signal %d before writing its log",
			                    what, WTERMSIG(status));
		return al_error_set(err, EIO,
		                    "criu %s exited with status %d before writing its log "
		                    "(see airlockd's stderr)",
		                    what, WIFEXITED(status) ? WEXITSTATUS(status) : -1);
	}
	log_errors(log_path, why, sizeof(why));
	if (keep_log) {
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

/* criu and whatever it started (its action scripts, the hook): its own
 * process group (spawn_criu); the pid alone should the group not be made
 * yet. */
static void kill_criu(pid_t pid)
{
	if (kill(-pid, SIGKILL) < 0)
		kill(pid, SIGKILL);
}

/* Whether the client behind fd (-1: none) has hung up. */
static bool peer_left(int fd, short revents)
{
	return fd >= 0 && (revents & (POLLRDHUP | POLLHUP | POLLERR));
}

/*
 * Wait for criu (pid); kill it if it outlives CRIU_TIMEOUT_MS, or once the
 * peer of cancel_fd (a client's connection, or -1) hangs up (-ECANCELED):
 * a dump nobody waits for is not finished.  The tasks it seized are
 * detached when it dies (its parasite code in them ends itself once criu's
 * socket closes); the caller thaws the sandbox and drops the images.
 */
static int wait_criu(pid_t pid, int *status, const char *what, int cancel_fd, struct al_error *err)
{
	_cleanup_close_ int pidfd = (int)syscall(SYS_pidfd_open, pid, 0);
	uint64_t deadline = al_now_ms() + CRIU_TIMEOUT_MS;
	bool timed_out = false, cancelled = false;

	while (pidfd >= 0) {
		struct pollfd pfd[2] = {{.fd = pidfd, .events = POLLIN},
		                        {.fd = cancel_fd, .events = POLLRDHUP}};
		uint64_t now = al_now_ms();
		int n;

		if (now >= deadline) {
			timed_out = true;
			kill_criu(pid);
			break;
		}
		n = poll(pfd, 2, (int)(deadline - now));
		if (n > 0 && pfd[0].revents)
			break;
		if (n > 0 && peer_left(cancel_fd, pfd[1].revents)) {
			cancelled = true;
			kill_criu(pid);
			break;
		}
		if (n < 0 && errno != EINTR)
			break;
	}
	while (waitpid(pid, status, 0) < 0 && errno == EINTR)
		;
	if (timed_out)
		return al_error_set(err, ETIMEDOUT, "criu %s did not finish in %d s: killed", what,
		                    CRIU_TIMEOUT_MS / 1000);
	if (cancelled)
		return al_error_set(err, ECANCELED, "the client went away: criu %s killed", what);
	return 0;
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

/* ---- CRIU's kernel-feature cache (see the top of this file) ------------------------------- */

#define KDAT_NAME "criu.kdat"
#define KDAT_MAX (64u << 10)

static struct {
	pthread_mutex_t lock;
	unsigned char *data; /* criu.kdat as the last run left it, or NULL */
	size_t len;
	struct stat criu; /* the criu binary that wrote it */
} kdat = {.lock = PTHREAD_MUTEX_INITIALIZER};

static bool same_file(const struct stat *a, const struct stat *b)
{
	return a->st_dev == b->st_dev && a->st_ino == b->st_ino && a->st_size == b->st_size &&
	       a->st_mtim.tv_sec == b->st_mtim.tv_sec && a->st_mtim.tv_nsec == b->st_mtim.tv_nsec;
}

/*
 * The tmpfs criu gets as /run: a detached mount, with the cached criu.kdat
 * in it when the same criu binary wrote one.  -1 if it cannot be made (a
 * kernel without fsopen): criu then probes the kernel, which is slower, not
 * wrong.
 */
static int criu_run_dir(const struct stat *criu)
{
	struct al_error err = AL_ERROR_INIT;
	_cleanup_close_ int fd = -1;
	struct stat st;

	/* Where it goes: a directory, not a symlink to one. */
	if (lstat("/run", &st) < 0 || !S_ISDIR(st.st_mode))
		return -1;
	fd = mounts_make_tmpfs("1m", &err);
	if (fd < 0) {
		log_debug("criu runs without its kernel-feature cache: %s", err.msg);
		return -1;
	}
	pthread_mutex_lock(&kdat.lock);
	if (kdat.data && same_file(&kdat.criu, criu)) {
		_cleanup_close_ int f =
		    openat(fd, KDAT_NAME, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
		if (f < 0 || al_write_all(f, kdat.data, kdat.len) < 0)
			unlinkat(fd, KDAT_NAME, 0); /* criu would call it stale anyway */
	}
	pthread_mutex_unlock(&kdat.lock);
	return TAKE_FD(fd);
}

/* Keep criu.kdat as criu left it (it writes one when it had none, and
 * rewrites it when it found something new) for the next run. */
static void kdat_keep(int run_fd, const struct stat *criu)
{
	_cleanup_close_ int fd = -1;
	_cleanup_free_ unsigned char *buf = NULL;
	struct stat st;
	size_t done = 0;

	if (run_fd < 0)
		return;
	fd = openat(run_fd, KDAT_NAME, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0 || fstat(fd, &st) < 0 || !S_ISREG(st.st_mode) || st.st_size <= 0 ||
	    st.st_size > KDAT_MAX)
		return;
	buf = malloc((size_t)st.st_size);
	if (!buf)
		return;
	while (done < (size_t)st.st_size) {
		ssize_t n = read(fd, buf + done, (size_t)st.st_size - done);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return;
		done += (size_t)n;
	}
	pthread_mutex_lock(&kdat.lock);
	if (!kdat.data || kdat.len != done || memcmp(kdat.data, buf, done) ||
	    !same_file(&kdat.criu, criu)) {
		free(kdat.data);
		kdat.data = TAKE_PTR(buf);
		kdat.len = done;
		kdat.criu = *criu;
	}
	pthread_mutex_unlock(&kdat.lock);
}

/* ---- the cgroup yard ---------------------------------------------------------------------- */

/*
 * CRIU mounts every cgroup hierarchy of the sandbox afresh, to read its
 * cgroups at a dump and to make them at a restore.  A v1 mount costs about
 * 0.1 ms, but a new cgroup2 mount 8 to 18 ms here, once in each.  Given
 * --cgroup-yard, CRIU takes the hierarchies already mounted in that
 * directory, one subdirectory each, named as CRIU names them: so criu gets
 * the host's own mounts of their roots bound in /run/cgroup-yard of its
 * private namespace (~0.1 ms each).  When one is not mounted on the host,
 * no yard: CRIU mounts them itself, as it would anyway.
 */
#define YARD_DIR "cgroup-yard"
#define YARD_MAX 32

struct cgroup_yard {
	size_t n;
	char *source[YARD_MAX]; /* the host's mount of the hierarchy's root */
	char *target[YARD_MAX]; /* /run/cgroup-yard/NAME in criu's namespace */
};

static void cgroup_yard_free(struct cgroup_yard *y)
{
	for (size_t i = 0; i < y->n; i++) {
		free(y->source[i]);
		free(y->target[i]);
	}
	y->n = 0;
}

/* CRIU's name for a hierarchy, from its controllers as /proc/PID/cgroup
 * lists them: cgroup2 is "unified", "name=X" is "X", co-mounted ones keep
 * their commas. */
static void yard_name(const char *controllers, char *out, size_t len)
{
	size_t used = 0;

	out[0] = '\0';
	if (!*controllers) {
		snprintf(out, len, "unified");
		return;
	}
	for (const char *p = controllers; *p && used < len;) {
		size_t n = strcspn(p, ",");
		const char *name = !strncmp(p, "name=", 5) && n > 5 ? p + 5 : p;
		int w = snprintf(out + used, len - used, "%s%.*s", used ? "," : "",
		                 (int)(n - (size_t)(name - p)), name);
		/* snprintf returns what it would have written: past the end, stop. */
		if (w < 0 || (size_t)w >= len - used)
			break;
		used += (size_t)w;
		p += n + (p[n] == ',');
	}
}

/* One hierarchy more in the yard: its directory, and what to bind there. */
static bool cgroup_yard_add(struct cgroup_yard *y, int dfd, const char *controllers,
                            const char *mount_point)
{
	char name[256];

	yard_name(controllers, name, sizeof(name));
	if (y->n == YARD_MAX || !name[0] || strchr(name, '/') || mkdirat(dfd, name, 0700) < 0)
		return false;
	y->source[y->n] = strdup(mount_point);
	if (asprintf(&y->target[y->n], "/run/%s/%s", YARD_DIR, name) < 0)
		y->target[y->n] = NULL;
	y->n++;
	return y->source[y->n - 1] && y->target[y->n - 1];
}

/* The yard for a criu whose /run will be run_fd, from the hierarchies of pid;
 * false (and none) when it cannot be made. */
static bool cgroup_yard_make(int run_fd, pid_t pid, struct cgroup_yard *y)
{
	_cleanup_strv_ char **ctrls = NULL, **mounts = NULL;
	_cleanup_close_ int dfd = -1;
	struct al_error err = AL_ERROR_INIT;

	if (run_fd < 0)
		return false;
	if (cgroup_hierarchy_mounts(NULL, pid, &ctrls, &mounts, &err) < 0) {
		log_debug("criu mounts the cgroup hierarchies itself: %s", err.msg);
		return false;
	}
	if (mkdirat(run_fd, YARD_DIR, 0700) < 0 ||
	    (dfd = openat(run_fd, YARD_DIR, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) < 0)
		return false;
	for (size_t i = 0; ctrls[i]; i++) {
		if (!cgroup_yard_add(y, dfd, ctrls[i], mounts[i])) {
			cgroup_yard_free(y);
			return false;
		}
	}
	return y->n > 0;
}

/* ---- running criu ----------------------------------------------------------------------- */

/* criu's images directory, as its fd in criu (--images-dir=/proc/self/fd/9:
 * the directory may be a detached tmpfs, see criu_images_scratch). */
#define IMAGES_FD 9
#define INHERIT_FD_BASE 10

/* How to start one criu. */
struct criu_child {
	const char *criu; /* its absolute path (find_criu) */
	char *const *argv, *const *envp;
	int run_fd;                     /* tmpfs to put on /run (criu_run_dir), or -1 */
	const struct cgroup_yard *yard; /* to bind there, or NULL */
	int cgroup_fd;                  /* cgroup2 directory to start in, or -1 */
	const int *join;                /* v1 "tasks" files to join first (cgroup_open_join_fds) */
	int n_join;
	int root_fd; /* restore: the sandbox's root, attached at target */
	const char *target;
	int images_fd;      /* its images directory, as IMAGES_FD */
	const int *inherit; /* restore: fds criu gets as INHERIT_FD_BASE + i */
	size_t n_inherit;
	int daemon_pidfd; /* airlockd's (host.h) */
};

/* Exit codes of the child before it runs criu (it can only report a number). */
enum { CHILD_CGROUP = 120, CHILD_MOUNTNS, CHILD_ROOT, CHILD_RUN, CHILD_FDS };

/*
 * The child of a multi-threaded process makes raw syscalls only.  criu runs
 * in a private mount namespace: the restored root is attached there, and
 * our tmpfs is its /run; it dies with criu, so nothing is ever mounted on
 * the host.
 */
static _Noreturn void criu_child_main(const struct criu_child *c)
{
	/* criu does its work for airlockd, and stops when airlockd does (what
	 * it leaves is cleaned at the next start: no state.json, a frozen
	 * cgroup thawed). */
	/* A group of its own, which a cancelled or stuck criu is killed with
	 * (spawn_criu makes it too: whichever runs first). */
	setpgid(0, 0);
	if (syscall(SYS_prctl, PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0) < 0 ||
	    (c->daemon_pidfd >= 0 &&
	     poll(&(struct pollfd){.fd = c->daemon_pidfd, .events = POLLIN}, 1, 0) != 0))
		_exit(CHILD_CGROUP);
	for (int i = 0; i < c->n_join; i++)
		if (write(c->join[i], "0", 1) != 1)
			_exit(CHILD_CGROUP);
	if (unshare(CLONE_NEWNS) < 0 || mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0)
		_exit(CHILD_MOUNTNS);
	if (c->root_fd >= 0 && syscall(SYS_move_mount, c->root_fd, "", AT_FDCWD, c->target,
	                               MOVE_MOUNT_F_EMPTY_PATH) < 0)
		_exit(CHILD_ROOT);
	if (c->run_fd >= 0 &&
	    syscall(SYS_move_mount, c->run_fd, "", AT_FDCWD, "/run", MOVE_MOUNT_F_EMPTY_PATH) < 0)
		_exit(CHILD_RUN);
	for (size_t i = 0; c->yard && i < c->yard->n; i++)
		if (mount(c->yard->source[i], c->yard->target[i], NULL, MS_BIND, NULL) < 0)
			_exit(CHILD_RUN);
	/* All moved above their targets first, so that no dup2 overwrites one
	 * still to be moved (and dup2 clears close-on-exec: never a no-op). */
	int high = INHERIT_FD_BASE + (int)c->n_inherit, moved[65];
	moved[0] = fcntl(c->images_fd, F_DUPFD_CLOEXEC, high);
	for (size_t i = 0; i < c->n_inherit; i++)
		moved[i + 1] = fcntl(c->inherit[i], F_DUPFD_CLOEXEC, high);
	for (size_t i = 0; i <= c->n_inherit; i++)
		if (moved[i] < 0 ||
		    dup2(moved[i], i ? INHERIT_FD_BASE + (int)i - 1 : IMAGES_FD) < 0)
			_exit(CHILD_FDS);
	syscall(SYS_close_range, 3, IMAGES_FD - 1, CLOSE_RANGE_CLOEXEC);
	syscall(SYS_close_range, high, ~0U, CLOSE_RANGE_CLOEXEC);
	execve(c->criu, c->argv, c->envp);
	_exit(127);
}

/* Start criu as c says. */
static int spawn_criu(const struct criu_child *c, pid_t *out, const char *what,
                      struct al_error *err)
{
	struct clone_args args = {.exit_signal = SIGCHLD};
	pid_t pid;

	if (c->cgroup_fd >= 0) {
		args.flags |= CLONE_INTO_CGROUP;
		args.cgroup = (uint64_t)c->cgroup_fd;
	}
	pid = (pid_t)syscall(SYS_clone3, &args, sizeof(args));
	if (pid == 0)
		criu_child_main(c);
	if (pid < 0)
		return al_error_errno(err, "clone3 for criu %s", what);
	/* EACCES once it has exec'd: then it made the group itself. */
	setpgid(pid, pid);
	*out = pid;
	return 0;
}

/* Wait for the criu of spawn_criu(); on failure see criu_result(). */
static int finish_criu(pid_t pid, const char *log_path, const char *keep_log, const char *what,
                       int cancel_fd, struct al_error *err)
{
	int status = 0, r;

	r = wait_criu(pid, &status, what, cancel_fd, err);
	if (r < 0)
		return r;
	if (WIFEXITED(status) && WEXITSTATUS(status) >= CHILD_CGROUP &&
	    WEXITSTATUS(status) <= CHILD_FDS)
		return al_error_set(err, EIO, "criu %s: cannot prepare its namespace (%d)", what,
		                    WEXITSTATUS(status));
	return criu_result(status, log_path, keep_log, what, err);
}

/* airlock-criu-hook, installed next to airlock-pid1, or NULL. */
static char *criu_hook_path(const struct sandbox_host *host)
{
	const char *slash = strrchr(host->pid1_path, '/');
	char *path;

	if (asprintf(&path, "%.*s/airlock-criu-hook", slash ? (int)(slash - host->pid1_path) : 1,
	             slash ? host->pid1_path : ".") < 0)
		return NULL;
	if (access(path, X_OK) < 0) {
		free(path);
		return NULL;
	}
	return path;
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

static void add_dev_externals(struct al_argv *argv, bool restore, const char *pid1_path)
{
	/* The key names a mount at dump; at restore it says what to bind there. */
	for (size_t i = 0; mounts_dev_nodes[i]; i++) {
		if (restore)
			al_argv_add(argv, "--external=mnt[dev_%s]:/dev/%s", mounts_dev_nodes[i],
			            mounts_dev_nodes[i]);
		else
			al_argv_add(argv, "--external=mnt[/dev/%s]:dev_%s", mounts_dev_nodes[i],
			            mounts_dev_nodes[i]);
	}
	if (restore)
		al_argv_add(argv, "--external=mnt[pid1]:%s", pid1_path);
	else
		al_argv_add(argv, "--external=mnt[/dev/.init]:pid1");
}

/*
 * CRIU's images of a small sandbox go to a tmpfs of their own rather than to
 * the store's filesystem: they are some forty files made and deleted at
 * each dump and each restore, and making files is the slow part of a small
 * snapshot on a disk filesystem (on this one, ext4 without a journal, each
 * new inode costs a scan past the recently deleted ones: from 15 ms to over
 * 100 ms a dump and restore).  tmpfs pages cannot be reclaimed, though, and
 * are charged to airlockd: only images of at most IMAGES_TMPFS_DEFAULT go
 * there (airlockd --criu-tmpfs-max).  For a large one the tmpfs does not
 * pay: with 200 MiB resident, CRIU's dump took as long onto it as onto the
 * ext4 (230-540 ms either way, on a loaded host), and its restore longer
 * (415-420 ms against 240-330 ms; the whole restore 850-890 ms against
 * 540-650 ms), tmpfs pages being copied one 4 KiB page at a time.
 */
#define IMAGES_TMPFS_DEFAULT (64ULL << 20)

static uint64_t images_tmpfs_max = IMAGES_TMPFS_DEFAULT;

void criu_set_images_tmpfs_max(uint64_t bytes)
{
	images_tmpfs_max = bytes;
}

int criu_images_scratch(uint64_t expected, int *fd, char path[CRIU_SCRATCH_PATH],
                        struct al_error *err)
{
	_cleanup_close_ int mnt = -1;
	struct al_error e = AL_ERROR_INIT;
	char size[32];

	*fd = -1;
	path[0] = '\0';
	if (expected > images_tmpfs_max)
		return 0;
	/* Room for the estimate and more (a sandbox's usage counts page cache
	 * too, but its pages may have grown since); a dump that overflows it
	 * fails (ENOSPC). */
	snprintf(size, sizeof(size), "%llum",
	         (unsigned long long)((expected + (expected >> 1)) >> 20) + 64);
	mnt = mounts_make_tmpfs(size, &e);
	if (mnt < 0) {
		log_debug("CRIU images go to disk: %s", e.msg);
		return 0;
	}
	*fd = openat(mnt, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (*fd < 0)
		return al_error_errno(err, "open tmpfs for CRIU images");
	snprintf(path, CRIU_SCRATCH_PATH, "/proc/self/fd/%d", *fd);
	return 0;
}

int criu_checkpoint(const struct sandbox_host *host, struct sandbox *sb, const char *disk_dir,
                    const char *freezer, int cancel_fd, int *images_fd, struct al_error *err)
{
	_cleanup_(al_argv_free) struct al_argv argv = {0}, env = {0};
	_cleanup_cjson_ cJSON *meta = cJSON_CreateObject();
	_cleanup_free_ char *text = NULL, *criu = NULL, *hook = NULL;
	_cleanup_close_ int run_fd = -1, dir_fd = -1;
	_cleanup_cjson_ cJSON *cg = NULL;
	char log_path[PATH_MAX], keep[PATH_MAX], path[PATH_MAX], scratch[CRIU_SCRATCH_PATH];
	struct criu_child child = {
	    .cgroup_fd = -1, .root_fd = -1, .daemon_pidfd = host->daemon_pidfd};
	_cleanup_(cgroup_yard_free) struct cgroup_yard yard = {0};
	struct al_error cg_err = AL_ERROR_INIT;
	const cJSON *usage;
	struct stat criu_st;
	cJSON *socks, *it;
	uint64_t t0 = al_now_ms();
	pid_t pid;
	int r;

	if (!host->criu_version)
		return al_error_set(err, ENOTSUP,
		                    "CRIU is not installed: cannot checkpoint processes "
		                    "(snapshot without processes instead)");
	criu = find_criu();
	if (!criu || stat(criu, &criu_st) < 0)
		return al_error_set(err, ENOENT, "criu not found in PATH");
	/* Without the hook that brings lo up at restore, the network namespace
	 * is dumped in full, as CRIU does by default. */
	hook = criu_hook_path(host);
	/* Its file server is in the sandbox's namespaces but not in its process
	 * tree: gone before CRIU looks at them. */
	sandbox_files_stop(sb);
	if (!meta || !(socks = cJSON_AddArrayToObject(meta, "pid1_connections")) ||
	    !cJSON_AddNumberToObject(meta, "uid_base", sb->uid_base) ||
	    !cJSON_AddStringToObject(meta, "netns", hook ? "empty" : "full"))
		return al_error_set(err, ENOMEM, "out of memory");
	r = pid1_connections(sb->init_pid, socks, err);
	if (r < 0)
		return al_error_prefix(err, "sandbox %s", sb->id);
	/* The images are about the size of the sandbox's memory, which holds
	 * its processes' pages and its tmpfs files (and more, page cache). */
	usage = cgroup_describe(host->cgroups, sb->id, &cg, &cg_err) == 0
	            ? cJSON_GetObjectItemCaseSensitive(
	                  cJSON_GetObjectItemCaseSensitive(cg, "usage"), "memory_bytes")
	            : NULL;
	r = criu_images_scratch(cJSON_IsNumber(usage) ? (uint64_t)usage->valuedouble : UINT64_MAX,
	                        &dir_fd, scratch, err);
	if (r < 0)
		return r;
	if (dir_fd < 0) {
		if (mkdir(disk_dir, 0700) < 0)
			return al_error_errno(err, "mkdir %s", disk_dir);
		dir_fd = open(disk_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		if (dir_fd < 0)
			return al_error_errno(err, "open %s", disk_dir);
	}
	al_argv_add(&argv, "criu");
	al_argv_add(&argv, "dump");
	al_argv_add(&argv, "--tree=%d", (int)sb->init_pid);
	al_argv_add(&argv, "--images-dir=/proc/self/fd/%d", IMAGES_FD);
	al_argv_add(&argv, "--log-file=dump.log");
	al_argv_add(&argv, "--verbosity=2");
	al_argv_add(&argv, "--leave-running");
	al_argv_add(&argv, "--network-lock=skip");
	if (hook)
		al_argv_add(&argv, "--empty-ns=net");
	al_argv_add(&argv, "--manage-cgroups=soft");
	al_argv_add(&argv, "--tcp-established");
	al_argv_add(&argv, "--file-locks");
	if (freezer)
		al_argv_add(&argv, "--freeze-cgroup=%s", freezer);
	add_dev_externals(&argv, false, NULL);
	cJSON_ArrayForEach(it, socks)
	{
		unsigned long ino = strtoul(it->valuestring + 8, NULL, 10);
		al_argv_add(&argv, "--external=unix[%lu]", ino);
	}
	criu_env(host, &env);
	r = al_argv_done(&argv, err);
	if (r == 0)
		r = al_argv_done(&env, err);
	if (r < 0)
		return r;
	snprintf(log_path, sizeof(log_path), "/proc/self/fd/%d/dump.log", dir_fd);
	snprintf(keep, sizeof(keep), "%s/criu-dump.log", sb->dir);
	run_fd = criu_run_dir(&criu_st);
	if (cgroup_yard_make(run_fd, sb->init_pid, &yard)) {
		child.yard = &yard;
		if (al_argv_add(&argv, "--cgroup-yard=/run/%s", YARD_DIR) < 0)
			return al_error_set(err, ENOMEM, "out of memory");
	}
	child.criu = criu;
	child.argv = argv.v;
	child.envp = env.v;
	child.run_fd = run_fd;
	child.images_fd = dir_fd;
	r = spawn_criu(&child, &pid, "dump", err);
	if (r == 0)
		r = finish_criu(pid, log_path, keep, "dump", cancel_fd, err);
	kdat_keep(run_fd, &criu_st);
	if (r < 0)
		return al_error_prefix(err, "sandbox %s", sb->id);
	unlink(log_path);
	/* What restore needs besides CRIU's images. */
	text = cJSON_PrintUnformatted(meta);
	if (!text)
		return al_error_set(err, ENOMEM, "out of memory");
	snprintf(path, sizeof(path), "/proc/self/fd/%d/%s", dir_fd, CRIU_AIRLOCK_META);
	r = al_write_file_atomic(path, text, strlen(text), 0600, err);
	if (r < 0)
		return r;
	log_info("sandbox %s: criu dump in %llu ms%s", sb->id,
	         (unsigned long long)(al_now_ms() - t0), scratch[0] ? "" : " (images on disk)");
	*images_fd = TAKE_FD(dir_fd);
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

/*
 * The restored tasks open some images themselves, some while they are still
 * the host's uid 0 without capabilities there, some once they took the
 * sandbox's uids: the images must be readable by both.  They are made
 * readable by anyone, which reaches only those that hold the directory's fd:
 * the directory is inside airlockd's 0700 state directory, or on a detached
 * tmpfs (criu_images_scratch) that no path reaches.
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

/*
 * The action script a restore of these images needs, in *hook (NULL for
 * none).  "netns" in airlock-criu.json is "empty" when the dump left the
 * network namespace out (--empty-ns net, see the top of this file): the
 * hook brings lo up in the new one.  Images made before say nothing, and
 * hold the namespace, as "full" does.
 */
static int restore_hook(const struct sandbox_host *host, const cJSON *meta, const char *meta_path,
                        char **hook, struct al_error *err)
{
	const char *netns = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(meta, "netns"));

	*hook = NULL;
	if (!netns || !strcmp(netns, "full"))
		return 0;
	if (strcmp(netns, "empty"))
		return al_error_set(err, EINVAL, "%s: unknown netns '%s'", meta_path, netns);
	*hook = criu_hook_path(host);
	if (!*hook)
		return al_error_set(err, ENOTSUP,
		                    "airlock-criu-hook is not installed next to %s: cannot bring "
		                    "up the loopback of the restored sandbox",
		                    host->pid1_path);
	return 0;
}

/* What a restore of images_dir needs first: CRIU, the images' metadata
 * (*meta, read from path) and, for an empty network namespace, the hook. */
static int restore_prepare(const struct sandbox_host *host, const char *images_dir,
                           char path[PATH_MAX], cJSON **meta, char **hook, struct al_error *err)
{
	_cleanup_free_ char *text = NULL;
	int r;

	if (!host->criu_version)
		return al_error_set(err, ENOTSUP,
		                    "CRIU is not installed: cannot restore processes");
	snprintf(path, PATH_MAX, "%s/%s", images_dir, CRIU_AIRLOCK_META);
	r = al_read_file(path, 1 << 20, &text, NULL, err);
	if (r < 0)
		return r;
	*meta = cJSON_Parse(text);
	if (!*meta)
		return al_error_set(err, EINVAL, "%s: malformed", path);
	return restore_hook(host, *meta, path, hook, err);
}

int criu_restore_check(const struct sandbox_host *host, const char *images_dir,
                       struct al_error *err)
{
	_cleanup_free_ char *hook = NULL;
	_cleanup_cjson_ cJSON *meta = NULL;
	char path[PATH_MAX];

	return restore_prepare(host, images_dir, path, &meta, &hook, err);
}

int criu_restore(const struct sandbox_host *host, struct sandbox *sb, const char *images_dir,
                 struct al_error *err)
{
	_cleanup_(al_argv_free) struct al_argv argv = {0}, env = {0};
	_cleanup_free_ char *criu = NULL, *pidtext = NULL, *hook = NULL;
	_cleanup_cjson_ cJSON *meta = NULL;
	_cleanup_strv_ char **roots = NULL;
	_cleanup_close_ int userns_fd = -1, root_fd = -1, cgfd = -1, run_fd = -1, dir_fd = -1;
	char path[PATH_MAX], target[PATH_MAX];
	char log_path[PATH_MAX], keep[PATH_MAX], pidfile[PATH_MAX];
	int inherit[64], peers[64], join[16];
	size_t n_inherit = 0;
	int n_join = 0;
	const cJSON *it;
	struct criu_child child = {
	    .cgroup_fd = -1, .root_fd = -1, .daemon_pidfd = host->daemon_pidfd};
	_cleanup_(cgroup_yard_free) struct cgroup_yard yard = {0};
	struct stat criu_st;
	uint64_t t0 = al_now_ms();
	pid_t pid = -1;
	int r;

	r = restore_prepare(host, images_dir, path, &meta, &hook, err);
	if (r < 0)
		return r;
	criu = find_criu();
	if (!criu || stat(criu, &criu_st) < 0)
		return al_error_set(err, ENOENT, "criu not found in PATH");

	r = open_images(images_dir, err);
	if (r < 0)
		return r;
	dir_fd = open(images_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dir_fd < 0)
		return al_error_errno(err, "open %s", images_dir);
	snprintf(target, sizeof(target), "%s/root", sb->dir);
	snprintf(log_path, sizeof(log_path), "%s/restore.log", images_dir);
	snprintf(keep, sizeof(keep), "%s/criu-restore.log", sb->dir);
	snprintf(pidfile, sizeof(pidfile), "%s/init.pid", sb->dir);
	userns_fd = userns_with_map(sb->uid_base, err);
	if (userns_fd < 0)
		return userns_fd;
	root_fd = mounts_make_root(sb->spec.lowers, sb->dir, userns_fd, err);
	if (root_fd < 0)
		return root_fd;
	r = cgroup_criu_roots(host->cgroups, sb->id, &roots, err);
	if (r < 0)
		return r;

	al_argv_add(&argv, "criu");
	al_argv_add(&argv, "restore");
	al_argv_add(&argv, "--images-dir=/proc/self/fd/%d", IMAGES_FD);
	al_argv_add(&argv, "--root=%s", target);
	al_argv_add(&argv, "--log-file=restore.log");
	al_argv_add(&argv, "--verbosity=2");
	al_argv_add(&argv, "--restore-detached");
	al_argv_add(&argv, "--pidfile=%s", pidfile);
	al_argv_add(&argv, "--tcp-established");
	al_argv_add(&argv, "--file-locks");
	al_argv_add(&argv, "--manage-cgroups=soft");
	if (hook) {
		al_argv_add(&argv, "--empty-ns=net");
		/* With --empty-ns net CRIU would otherwise lock the new namespace
		 * with iptables; it had no lock before either (the dump skipped it). */
		al_argv_add(&argv, "--network-lock=skip");
		al_argv_add(&argv, "--action-script=%s", hook);
	}
	for (char **root = roots; *root; root++)
		al_argv_add(&argv, "--cgroup-root=%s", *root);
	add_dev_externals(&argv, true, host->pid1_bind_path);
	r = al_argv_done(&argv, err);
	if (r < 0)
		return r;
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
		al_argv_add(&argv, "--inherit-fd=fd[%zu]:%s", INHERIT_FD_BASE + n_inherit - 1,
		            it->valuestring);
	}
	criu_env(host, &env);
	/* The restored user namespace is owned by the sandbox's uid, as a
	 * fresh one is (spawn.c; the shim makes criu's clone3 so). */
	al_argv_add(&env, "AIRLOCK_USERNS_OWNER=%u", (unsigned)sb->uid_base);
	if (r == 0)
		r = al_argv_done(&argv, err);
	if (r == 0)
		r = al_argv_done(&env, err);
	if (r == 0) {
		cgfd = cgroup_open_v2_dir(host->cgroups, sb->id, err);
		n_join =
		    cgroup_open_join_fds(host->cgroups, sb->id, join, AL_ARRAY_SIZE(join), err);
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
	 * criu runs in the sandbox's cgroups, so the restored tree starts
	 * there, and in a private mount namespace where the new root is
	 * attached at state/ID/root (criu_child_main).
	 */
	run_fd = criu_run_dir(&criu_st);
	/* CRIU makes the cgroups of the images' hierarchies (airlockd's own). */
	if (cgroup_yard_make(run_fd, getpid(), &yard)) {
		child.yard = &yard;
		if (al_argv_add(&argv, "--cgroup-yard=/run/%s", YARD_DIR) < 0)
			r = al_error_set(err, ENOMEM, "out of memory");
	}
	child.criu = criu;
	child.argv = argv.v;
	child.envp = env.v;
	child.run_fd = run_fd;
	child.images_fd = dir_fd;
	child.cgroup_fd = cgfd;
	child.join = join;
	child.n_join = n_join;
	child.root_fd = root_fd;
	child.target = target;
	child.inherit = inherit;
	child.n_inherit = n_inherit;
	subreaper_hold(true);
	if (r == 0)
		r = spawn_criu(&child, &pid, "restore", err);
	for (int i = 0; i < n_join; i++)
		close(join[i]);
	for (size_t i = 0; i < n_inherit; i++) {
		close(inherit[i]);
		close(peers[i]);
	}
	if (r == 0)
		r = finish_criu(pid, log_path, keep, "restore", -1, err);
	kdat_keep(run_fd, &criu_st);
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
	/* Not in CRIU's images: set again in the namespace criu made. */
	r = sandbox_bound_userns(sb->init_pid, err);
	if (r < 0)
		return al_error_prefix(err, "sandbox %s", sb->id);
	log_info("sandbox %s: criu restore in %llu ms (pid %d)", sb->id,
	         (unsigned long long)(al_now_ms() - t0), (int)sb->init_pid);
	return 0;
}

int sandbox_start_criu(const struct sandbox_host *host, struct sandbox *sb,
                       const struct sandbox_start *how, struct al_error *err)
{
	int r = criu_restore(host, sb, how->criu_images, err);

	/* A restored PID 1 is told to REEXEC (pid1.c says why), then pinged
	 * to see the new image serve. */
	if (r == 0)
		r = sandbox_call_init(sb, INITPROTO_REEXEC, err);
	if (r >= 0) {
		close(r);
		r = sandbox_call_init(sb, INITPROTO_PING, err);
	}
	if (r < 0)
		return r;
	close(r);
	return 0;
}
