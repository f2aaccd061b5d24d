/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Starting a sandbox fresh: its seccomp filter, airlock-init's config, one
 * clone3() into new namespaces and cgroups, the id maps, the root mount
 * handed over, and the wait until airlock-init says it is ready.
 */
#include "sandbox.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/sched.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "caps.h"
#include "cgroup.h"
#include "cleanup.h"
#include "initproto.h"
#include "json.h"
#include "log.h"
#include "mounts.h"
#include "seccomp_cache.h"
#include "util.h"

#define READY_TIMEOUT_MS 30000

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
static int write_init_config(const struct sandbox_host *host, struct sandbox *sb,
                             const char *bpf_path, struct init_fds *fds, struct al_error *err)
{
	_cleanup_cjson_ cJSON *o = cJSON_CreateObject();
	_cleanup_free_ char *text = NULL, *compat = NULL;
	char path[PATH_MAX];

	fds->bpf = open(bpf_path, O_RDONLY | O_CLOEXEC);
	if (fds->bpf < 0)
		return al_error_errno(err, "open %s", bpf_path);

	cJSON_AddStringToObject(o, "id", sb->id);
	cJSON_AddStringToObject(o, "hostname", sb->spec.name);
	cJSON_AddStringToObject(o, "workspace", sb->spec.workspace);
	cJSON_AddStringToObject(o, "pid1", host->pid1_bind_path);
	cJSON_AddStringToObject(o, "seccomp_bpf", bpf_path);
	/* The ENOSYS half of the profile, when it has one (see seccomp_cache.c). */
	if (strlen(bpf_path) > 4 &&
	    asprintf(&compat, "%.*s.compat.bpf", (int)(strlen(bpf_path) - 4), bpf_path) > 0 &&
	    (fds->compat_bpf = open(compat, O_RDONLY | O_CLOEXEC)) >= 0)
		cJSON_AddStringToObject(o, "seccomp_compat_bpf", compat);
	cJSON_AddItemToObject(o, "caps", al_json_from_strv((char *const *)al_default_caps));
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

/*
 * In the clone3 child: until airlock-init reports ready (it clears this
 * again, init.c), die with the airlockd thread that made us.  A half-made
 * sandbox of a crashed airlockd would otherwise run on as host root (before
 * the exec) holding copies of every daemon fd, client connections
 * included, which then never see the daemon go.  The daemon may have died
 * before the prctl: its pidfd says so.
 */
static void die_with_daemon(int daemon_pidfd, int status_w)
{
	struct pollfd pfd = {.fd = daemon_pidfd, .events = POLLIN};

	if (syscall(SYS_prctl, PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0) < 0)
		child_fail(status_w, "cannot set the parent-death signal", errno);
	if (daemon_pidfd >= 0 && poll(&pfd, 1, 0) != 0)
		_exit(126);
}

/*
 * The user namespace a clone3 makes is owned by the euid of the thread
 * that calls it, and the kernel charges the per-user counters of every
 * process inside (inotify instances and watches, POSIX message queue
 * bytes, queued signals, processes, locked memory, fanotify groups and
 * marks: the ucounts) to that owner in the host's namespace too, on top of
 * the uid inside.  Owned by host root, every sandbox shared root's
 * budgets, and one of them could take all 128 inotify instances, every
 * mqueue byte and every queued signal of host root and of each other.
 * Owned by the sandbox's own host uid (the base of its range, what its
 * root maps to), a sandbox can only spend its own.
 *
 * Only this thread changes (raw syscalls: glibc's setresuid would change
 * every thread of airlockd), and only its euid and fsuid: with the real
 * uid still 0 it may go back, and its permitted capabilities stay.  The
 * effective ones go while euid is not 0, which clone3 does not need: the
 * cgroup it enters is written as fsuid 0 (its owner) and the new
 * namespaces are made inside the new user namespace.
 */
static int become_namespace_owner(uid_t owner, struct al_error *err)
{
	if (syscall(SYS_setresuid, -1, owner, -1) < 0)
		return al_error_errno(err, "setresuid(-1, %u, -1)", (unsigned)owner);
	syscall(SYS_setfsuid, 0);
	return 0;
}

static void back_to_root(void)
{
	/* Cannot fail with a real uid of 0; if it did, this thread would
	 * carry on as another uid without capabilities: stop instead. */
	if (syscall(SYS_setresuid, -1, 0, -1) < 0) {
		log_error("cannot take back euid 0 after a clone3: %m");
		abort();
	}
	syscall(SYS_setfsuid, 0);
}

/*
 * Ceilings of the sandbox's own user namespace (/proc/sys/user/ as seen from
 * inside it), on top of the host's per-owner ones that it now has for
 * itself: a nested user namespace is refused by the kernel too, not only by
 * seccomp, and inotify, the one budget a build's file watchers use, is
 * explicit.  inotify watches are kernel memory charged to the sandbox's
 * memory cgroup; fanotify is not in the default profile.
 */
static const struct {
	const char *path;
	const char *value;
} userns_limits[] = {
    {"/proc/sys/user/max_user_namespaces", "0"},
    {"/proc/sys/user/max_inotify_instances", "128"},
    {"/proc/sys/user/max_inotify_watches", "65536"},
    {"/proc/sys/user/max_fanotify_groups", "0"},
    {"/proc/sys/user/max_fanotify_marks", "0"},
};

/* In a child sharing airlockd's memory, stopped meanwhile (vfork): join
 * the sandbox's user namespace and write its ceilings.  Raw calls only, and
 * no return into airlockd's frames: its exit status says how it went. */
static _Noreturn void bound_userns_child(int fd)
{
	if (setns(fd, CLONE_NEWUSER) < 0)
		_exit(100);
	for (size_t i = 0; i < AL_ARRAY_SIZE(userns_limits); i++) {
		size_t len = strlen(userns_limits[i].value);
		int w = open(userns_limits[i].path, O_WRONLY | O_CLOEXEC);
		if (w < 0 && errno == ENOENT)
			continue; /* not built into this kernel */
		if (w < 0 || write(w, userns_limits[i].value, len) != (ssize_t)len)
			_exit(101 + (int)i);
		close(w);
	}
	_exit(0);
}

int sandbox_bound_userns(pid_t pid, struct al_error *err)
{
	_cleanup_close_ int fd = -1;
	char path[64];
	int status = 0;
	pid_t child;

	snprintf(path, sizeof(path), "/proc/%d/ns/user", (int)pid);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return al_error_errno(err, "open %s", path);
	/* The kernel takes the set of /proc/sys/user from the user namespace of
	 * the writer, who needs CAP_SYS_RESOURCE there: a child that joined it
	 * has every capability in it (host root's bounding set lacks that one).
	 * setns(CLONE_NEWUSER) wants a task alone in its thread group, with its
	 * own fs_struct; it need not have its own memory, and a fork of airlockd
	 * (copying the page tables of every thread's stack and buffer) cost
	 * ~3.5 ms of each create here, a vfork sharing them about nothing.
	 * (Not a clone on a stack of our own: a sanitizer run warns of the
	 * stack switch, and this child, ending in _exit, needs none.) */
	child = vfork();
	if (child == 0)
		bound_userns_child(fd);
	if (child < 0)
		return al_error_errno(err, "vfork");
	while (waitpid(child, &status, 0) < 0 && errno == EINTR)
		;
	if (WIFEXITED(status) && WEXITSTATUS(status) == 0)
		return 0;
	if (WIFEXITED(status) && WEXITSTATUS(status) > 100 &&
	    WEXITSTATUS(status) <= 100 + (int)AL_ARRAY_SIZE(userns_limits))
		return al_error_set(err, EPERM, "cannot write %s in the user namespace of pid %d",
		                    userns_limits[WEXITSTATUS(status) - 101].path, (int)pid);
	return al_error_set(err, EPERM, "cannot join the user namespace of pid %d", (int)pid);
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
static int spawn_init(const struct sandbox_host *host, struct sandbox *sb,
                      const struct init_fds *fds, struct al_error *err)
{
	struct clone_args args = {0};
	_cleanup_close_ int cgfd = -1, sock_parent = -1, sock_child = -1, userns_fd = -1,
	                    root_fd = -1;
	char target[PATH_MAX], path[64];
	int join[16], sp[2];
	int n_join;
	int pidfd = -1;
	pid_t pid;
	int r = 0;

	snprintf(target, sizeof(target), "%s/root", sb->dir);
	if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sp) < 0)
		return al_error_errno(err, "socketpair");
	sock_parent = sp[0];
	sock_child = sp[1];
	args.flags = CLONE_NEWUSER | CLONE_NEWPID | CLONE_NEWNS | CLONE_NEWNET | CLONE_NEWUTS |
	             CLONE_NEWIPC | CLONE_PIDFD;
	args.pidfd = (uint64_t)(uintptr_t)&pidfd;
	args.exit_signal = SIGCHLD;
	cgfd = cgroup_open_v2_dir(host->cgroups, sb->id, err);
	if (cgfd >= 0) {
		args.flags |= CLONE_INTO_CGROUP;
		args.cgroup = (uint64_t)cgfd;
	}
	n_join = cgroup_open_join_fds(host->cgroups, sb->id, join, AL_ARRAY_SIZE(join), err);
	if (n_join < 0)
		return al_error_prefix(err, "sandbox %s", sb->id);
	r = become_namespace_owner(sb->uid_base, err);
	if (r < 0) {
		for (int i = 0; i < n_join; i++)
			close(join[i]);
		return al_error_prefix(err, "sandbox %s", sb->id);
	}
	pid = (pid_t)syscall(SYS_clone3, &args, sizeof(args));
	if (pid != 0) {
		int clone_errno = errno;
		back_to_root();
		errno = clone_errno;
	}
	if (pid < 0)
		r = al_error_errno(err, "clone3 for sandbox %s", sb->id);
	if (pid == 0) {
		char *const argv[] = {"airlock-init", NULL};
		char *const envp[] = {NULL};
		int status_w = fds->status_w;
		int c, s, e, k, t, b, cb = -1;
		/* Above the fds dup2'd to 3..8 below, which would replace it. */
		int dp = fcntl(host->daemon_pidfd, F_DUPFD_CLOEXEC, 16);

		die_with_daemon(dp, status_w);
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
		e = fcntl(host->init_memfd, F_DUPFD_CLOEXEC, 16);
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
		/* A change of credentials clears the parent-death signal. */
		die_with_daemon(dp, 5);
		syscall(SYS_close_range, 9, ~0U, CLOSE_RANGE_CLOEXEC);
		/* Only now: airlockd's fds (one per sandbox) are ours until exec,
		 * so the lower limit would have refused the dups above. */
		if (host->sandbox_nofile.rlim_cur > 0 &&
		    setrlimit(RLIMIT_NOFILE, &host->sandbox_nofile) < 0)
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
	root_fd = mounts_make_root(sb->spec.lowers, sb->dir, userns_fd, err);
	if (root_fd < 0)
		return al_error_prefix(err, "sandbox %s: rootfs", sb->id);
	r = send_fd(sock_parent, root_fd, err);
	if (r < 0)
		return r;
	/* While airlock-init sets the sandbox up: only its own code runs there
	 * until it reports ready, which the caller waits for. */
	r = sandbox_bound_userns(pid, err);
	if (r < 0)
		return al_error_prefix(err, "sandbox %s", sb->id);
	return 0;
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

int sandbox_start_fresh(const struct sandbox_host *host, struct sandbox *sb,
                        const struct sandbox_start *how, struct al_error *err)
{
	_cleanup_(init_fds_close) struct init_fds fds = {-1, -1, -1, -1};
	_cleanup_free_ char *bpf_path = NULL;
	_cleanup_close_ int status_r = -1;
	int status[2];
	int r;

	(void)how;
	r = seccomp_cache_filter_path(host, sb->spec.profile, &bpf_path, err);
	if (r < 0)
		return r;
	r = write_init_config(host, sb, bpf_path, &fds, err);
	if (r < 0)
		return r;
	if (pipe2(status, O_CLOEXEC) < 0)
		return al_error_errno(err, "pipe");
	status_r = status[0];
	fds.status_w = status[1];
	r = spawn_init(host, sb, &fds, err);
	if (r < 0)
		return r;
	/* Our copy of the write end must go, or a dying init is never noticed. */
	close(TAKE_FD(fds.status_w));
	return wait_ready(sb, status_r, err);
}
