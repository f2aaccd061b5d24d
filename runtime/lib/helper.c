/* SPDX-License-Identifier: Apache-2.0 */
/* Helper processes that act for a sandbox with its credentials (helper.h). */
#include "helper.h"

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <pthread.h>
#include <sys/mman.h>

#include <seccomp.h>

#include "caps.h"
#include "cleanup.h"
#include "seccomp_profile.h"

/* In a helper: the process that forked it, as its getppid() names it (set in
 * the child): airlockd, or 0 for the worker in a sandbox's pid namespace,
 * whose parent is outside it. */
static pid_t helper_parent;

/* In a helper, again after each change of credentials (which clears it):
 * die with airlockd.  A helper that outlived a crashed daemon would finish
 * (commit a hydrate, say) what its client was told failed. */
static int die_with_parent(struct al_error *err)
{
	if (prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0) < 0)
		return al_error_errno(err, "prctl(PR_SET_PDEATHSIG)");
	/* Gone before the prctl: we are someone else's now. */
	if (getppid() != helper_parent)
		return al_error_set(err, ECANCELED, "airlockd is gone");
	return 0;
}

/* Close every descriptor above 2 but those in keep (ascending, -1 ignored). */
static void close_all_but(const int *keep, size_t n)
{
	int from = 3;

	for (size_t i = 0; i < n; i++) {
		if (keep[i] < from)
			continue;
		if (keep[i] > from)
			syscall(SYS_close_range, (unsigned)from, (unsigned)keep[i] - 1, 0);
		from = keep[i] + 1;
	}
	syscall(SYS_close_range, (unsigned)from, ~0U, 0);
}

static void sort_fds(int *v, size_t n)
{
	for (size_t i = 1; i < n; i++)
		for (size_t j = i; j > 0 && v[j - 1] > v[j]; j--) {
			int t = v[j];
			v[j] = v[j - 1];
			v[j - 1] = t;
		}
}

static inline void filter_releasep(scmp_filter_ctx *ctx)
{
	if (*ctx)
		seccomp_release(*ctx);
}

/*
 * What a helper never needs, refused (EPERM) while it handles what the
 * sandbox controls: new processes and programs (libarchive would run an
 * external decompressor for a format it lacks), sockets, mounts and
 * namespaces, other processes' memory, keys, BPF and the like.
 */
static const char *const denied_syscalls[] = {"execve",
                                              "execveat",
                                              "fork",
                                              "vfork",
                                              "clone",
                                              "clone3",
                                              "socket",
                                              "socketpair",
                                              "connect",
                                              "bind",
                                              "listen",
                                              "accept4",
                                              "mount",
                                              "umount2",
                                              "pivot_root",
                                              "chroot",
                                              "unshare",
                                              "setns",
                                              "open_tree",
                                              "move_mount",
                                              "fsopen",
                                              "fsconfig",
                                              "fsmount",
                                              "fspick",
                                              "mount_setattr",
                                              "ptrace",
                                              "process_vm_readv",
                                              "process_vm_writev",
                                              "pidfd_open",
                                              "pidfd_getfd",
                                              "kill",
                                              "tgkill",
                                              "keyctl",
                                              "add_key",
                                              "request_key",
                                              "bpf",
                                              "perf_event_open",
                                              "userfaultfd",
                                              "io_uring_setup",
                                              "open_by_handle_at",
                                              "name_to_handle_at",
                                              "mknod",
                                              "mknodat",
                                              "kexec_load",
                                              "init_module",
                                              "finit_module",
                                              "delete_module",
                                              "setuid",
                                              "setgid",
                                              "setreuid",
                                              "setregid",
                                              "setresuid",
                                              "setresgid",
                                              "setgroups",
                                              "capset",
                                              NULL};

/* Compiled once, in airlockd: a helper only installs it (a file operation
 * is one short helper, and libseccomp's compile would be much of its time). */
static struct al_bpf helper_filter;
static struct al_error helper_filter_err = AL_ERROR_INIT;
static pthread_once_t helper_filter_once = PTHREAD_ONCE_INIT;

static int compile_filter(struct al_bpf *out, struct al_error *err)
{
	_cleanup_(filter_releasep) scmp_filter_ctx ctx = seccomp_init(SCMP_ACT_ALLOW);
	_cleanup_close_ int fd = -1;
	char *data = NULL;
	size_t len = 0;
	int r;

	if (!ctx)
		return al_error_set(err, ENOMEM, "seccomp_init");
	for (const char *const *name = denied_syscalls; *name; name++) {
		int nr = seccomp_syscall_resolve_name(*name);
		if (nr == __NR_SCMP_ERROR)
			continue; /* not on this architecture */
		r = seccomp_rule_add(ctx, SCMP_ACT_ERRNO(EPERM), nr, 0);
		if (r < 0)
			return al_error_set(err, -r, "seccomp rule for %s", *name);
	}
	/* libseccomp 2.5 exports only to an fd. */
	fd = memfd_create("airlock-helper-bpf", MFD_CLOEXEC);
	if (fd < 0)
		return al_error_errno(err, "memfd_create");
	r = seccomp_export_bpf(ctx, fd);
	if (r < 0)
		return al_error_set(err, -r, "seccomp_export_bpf");
	if (lseek(fd, 0, SEEK_SET) < 0)
		return al_error_errno(err, "lseek");
	r = al_read_fd(fd, 1 << 20, &data, &len, err);
	if (r < 0)
		return r;
	out->prog = data;
	out->len = len;
	return 0;
}

static void compile_filter_once(void)
{
	if (compile_filter(&helper_filter, &helper_filter_err) < 0)
		al_error_prefix(&helper_filter_err, "the helpers' seccomp filter");
}

static int load_seccomp(struct al_error *err)
{
	return sc_install_bpf(helper_filter.prog, helper_filter.len, err);
}

#define N_NS 5

static void close_ns_fds(int (*fds)[N_NS])
{
	for (size_t i = 0; i < N_NS; i++)
		if ((*fds)[i] >= 0)
			close((*fds)[i]);
}

/* The user namespace last: joining it drops our rights over namespaces the
 * host owns.  Network, IPC and UTS too, so that the helper reaches nothing
 * of the host's (the pid namespace was joined before, by the fork that made
 * this process: fork_into_pid_namespace). */
static const struct {
	const char *name;
	int type;
} sandbox_namespaces[N_NS] = {{"mnt", CLONE_NEWNS},
                              {"net", CLONE_NEWNET},
                              {"ipc", CLONE_NEWIPC},
                              {"uts", CLONE_NEWUTS},
                              {"user", CLONE_NEWUSER}};

static int join_by_pid(pid_t pid, struct al_error *err)
{
	_cleanup_(close_ns_fds) int fds[N_NS] = {-1, -1, -1, -1, -1};
	char path[64];

	/* All opened first: once in its mount namespace, /proc is the sandbox's. */
	for (size_t i = 0; i < N_NS; i++) {
		snprintf(path, sizeof(path), "/proc/%d/ns/%s", (int)pid,
		         sandbox_namespaces[i].name);
		fds[i] = open(path, O_RDONLY | O_CLOEXEC);
		if (fds[i] < 0)
			return al_error_errno(err, "open %s", path);
	}
	for (size_t i = 0; i < N_NS; i++)
		if (setns(fds[i], sandbox_namespaces[i].type) < 0)
			return al_error_errno(err, "setns %s namespace of pid %d",
			                      sandbox_namespaces[i].name, (int)pid);
	return 0;
}

static const char *const file_caps[] = {"CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_FOWNER", "CAP_FSETID",
                                        NULL};

/* In the helper: become the sandbox's root, in its namespaces. */
static int enter_sandbox(const struct helper_opts *o, struct al_error *err)
{
	int r;

	if (o->ns_pidfd >= 0) {
		/* One call, all or none, and for the process the pidfd names
		 * even if its pid was reused since. */
		if (setns(o->ns_pidfd, CLONE_NEWNS | CLONE_NEWNET | CLONE_NEWIPC | CLONE_NEWUTS |
		                           CLONE_NEWUSER) < 0)
			return al_error_errno(err, "join the sandbox's namespaces");
	} else {
		r = join_by_pid(o->ns_pid, err);
		if (r < 0)
			return r;
	}
	if (setgroups(0, NULL) < 0 || setresgid(0, 0, 0) < 0 || setresuid(0, 0, 0) < 0)
		return al_error_errno(err, "become the sandbox's root");
	/* Files of any owner, read and written with their owners and modes:
	 * nothing more of what root of the sandbox's namespace may do. */
	r = caps_apply(file_caps, err);
	if (r < 0)
		return r;
	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0)
		return al_error_errno(err, "prctl(PR_SET_NO_NEW_PRIVS)");
	prctl(PR_SET_DUMPABLE, 0, 0, 0, 0);
	r = die_with_parent(err);
	if (r < 0)
		return r;
	if (chdir("/") < 0)
		return al_error_errno(err, "chdir /");
	umask(022);
	return 0;
}

/*
 * In the helper, still host root: into the sandbox's pid namespace.  Only
 * children enter one, so the helper forks once more and its child, in the
 * sandbox's pid namespace, does the job: it sees the sandbox's processes
 * and no other (the pids that capget, sched_getaffinity, getpriority,
 * kcmp and the like take are the sandbox's).  The helper itself keeps no
 * descriptor, only waits, and ends as its child did: airlockd's pid,
 * pidfd, kill and exit status are still one process's.  The child dies
 * with it (PDEATHSIG); a server's helper no longer dies with the airlockd
 * thread that started it (helper_start), the child watches its socket.
 * Returns in the child only.
 */
static int fork_into_pid_namespace(const struct helper_opts *o, bool server, struct al_error *err)
{
	int status = 0, r;
	pid_t child;

	if (o->ns_pidfd >= 0) {
		r = setns(o->ns_pidfd, CLONE_NEWPID);
	} else {
		char path[64];
		_cleanup_close_ int fd = -1;
		snprintf(path, sizeof(path), "/proc/%d/ns/pid", (int)o->ns_pid);
		fd = open(path, O_RDONLY | O_CLOEXEC);
		r = fd < 0 ? -1 : setns(fd, CLONE_NEWPID);
	}
	if (r < 0)
		return al_error_errno(err, "join the sandbox's pid namespace");
	child = fork();
	if (child < 0)
		return al_error_errno(err, "fork into the sandbox's pid namespace");
	if (child == 0) {
		helper_parent = 0;
		return die_with_parent(err);
	}
	syscall(SYS_close_range, 3U, ~0U, 0);
	if (server)
		prctl(PR_SET_PDEATHSIG, 0, 0, 0, 0);
	while (waitpid(child, &status, 0) < 0 && errno == EINTR)
		;
	if (WIFSIGNALED(status)) {
		signal(WTERMSIG(status), SIG_DFL);
		raise(WTERMSIG(status));
	}
	_exit(WIFEXITED(status) ? WEXITSTATUS(status) : 1);
}

static _Noreturn void child_main(helper_fn fn, void *arg, const struct helper_opts *o, pid_t parent,
                                 int err_fd, int out_fd, bool server)
{
	struct al_error cerr = AL_ERROR_INIT;
	int keep[4 + HELPER_MAX_CGROUP_FDS] = {err_fd, out_fd, o->keep_fd, o->ns_pidfd};
	size_t n_keep = 4, n_cg = o->n_cgroup_fds < HELPER_MAX_CGROUP_FDS ? o->n_cgroup_fds
	                                                                  : HELPER_MAX_CGROUP_FDS;
	int r = 0;

	for (size_t i = 0; i < n_cg; i++)
		keep[n_keep++] = o->cgroup_fds[i];
	sort_fds(keep, n_keep);
	close_all_but(keep, n_keep);
	/* Not airlockd's log either: errors go back through the error pipe. */
	int null_fd = open("/dev/null", O_RDWR | O_CLOEXEC);
	if (null_fd >= 0) {
		for (int fd = 0; fd <= 2; fd++)
			if (null_fd != fd)
				dup2(null_fd, fd);
		if (null_fd > 2)
			close(null_fd);
	}
	signal(SIGPIPE, SIG_IGN);
	/* Nothing in a sandbox may ptrace us or read our memory. */
	prctl(PR_SET_DUMPABLE, 0, 0, 0, 0);
	helper_parent = parent;
	r = die_with_parent(&cerr);
	/* The fork first, from airlockd's cgroups: a sandbox at its pids limit
	 * still gets its helper (a move into a cgroup is never refused). */
	if (r == 0 && (o->ns_pidfd >= 0 || o->ns_pid > 0))
		r = fork_into_pid_namespace(o, server, &cerr);
	/* Into the sandbox's cgroups, while we are host root as the files'
	 * opener was: from here on the sandbox pays for the work. */
	for (size_t i = 0; i < n_cg && r == 0; i++) {
		if (write(o->cgroup_fds[i], "0", 1) != 1)
			r = al_error_errno(&cerr, "join the sandbox's cgroups");
		close(o->cgroup_fds[i]);
	}
	/* With a sandbox's credentials, and a filter: the job then parses what
	 * the sandbox controls.  Without one (a stopped sandbox's layer, made
	 * of whiteouts that need mknod) the job is on trusted ground. */
	if (r == 0 && (o->ns_pidfd >= 0 || o->ns_pid > 0)) {
		r = enter_sandbox(o, &cerr);
		if (r == 0)
			r = load_seccomp(&cerr);
	}
	if (r == 0 && server) {
		/* PDEATHSIG follows the *thread* that forked us, and a server
		 * outlives the request that started it: it watches its socket to
		 * airlockd instead, which ends with airlockd.  (A server in a
		 * sandbox was forked by its own helper, whose end it follows.) */
		if (helper_parent != 0)
			prctl(PR_SET_PDEATHSIG, 0, 0, 0, 0);
		/* In place: the end of the error pipe tells helper_start so. */
		close(err_fd);
		err_fd = -1;
	}
	if (r == 0)
		r = fn(arg, out_fd, &cerr);
	if (r < 0) {
		char code = (char)(cerr.code ? cerr.code : EIO);
		if (err_fd >= 0 && al_write_all(err_fd, &code, 1) == 0)
			al_write_all(err_fd, cerr.msg, strlen(cerr.msg));
		_exit(1);
	}
	_exit(0);
}

/* The first line of /proc/PID/FILE, or "" (the process may be gone). */
static char *proc_line(pid_t pid, const char *file)
{
	char path[64], *text = NULL;

	snprintf(path, sizeof(path), "/proc/%d/%s", (int)pid, file);
	if (al_read_file(path, 4096, &text, NULL, NULL) < 0 || !text)
		return strdup("");
	text[strcspn(text, "\n")] = '\0';
	return text;
}

void helper_describe_wait(pid_t helper, const char *what, struct al_error *err)
{
	_cleanup_free_ char *children = NULL, *wchan = NULL;
	char file[64], msg[AL_ERROR_MSG_MAX];
	pid_t worker;

	/* In a sandbox the job is the helper's child (fork_into_pid_namespace). */
	snprintf(file, sizeof(file), "task/%d/children", (int)helper);
	children = proc_line(helper, file);
	worker = children ? (pid_t)atoi(children) : 0;
	if (worker <= 0)
		worker = helper;
	wchan = proc_line(worker, "wchan");
	snprintf(msg, sizeof(msg), "%s", err->msg);
	al_error_set(err, err->code, "%s (%s, pid %d, is in state %c, waiting in %s)", msg, what,
	             (int)worker, al_proc_state(worker),
	             wchan && wchan[0] && strcmp(wchan, "0") ? wchan : "user space");
}

/* Drain the error pipe and, when collected, the output pipe, until both end
 * or the deadline or output bound is hit (then the child is killed). */
static int collect(pid_t pid, int err_fd, int out_fd, const struct helper_opts *o,
                   struct al_buf *msg, struct al_error *err)
{
	uint64_t deadline = o->timeout_ms ? al_now_ms() + o->timeout_ms : 0;
	struct pollfd p[3] = {{.fd = err_fd, .events = POLLIN},
	                      {.fd = out_fd, .events = POLLIN},
	                      {.fd = o->cancel_fd, .events = POLLRDHUP}};
	const char *what = o->what ? o->what : "helper";
	int open_fds = out_fd >= 0 ? 2 : 1;

	while (open_fds > 0) {
		int wait_ms = -1, n;
		if (deadline) {
			uint64_t now = al_now_ms();
			if (now >= deadline) {
				al_error_set(err, ETIMEDOUT, "%s: no answer in %u ms", what,
				             o->timeout_ms);
				helper_describe_wait(pid, what, err);
				kill(pid, SIGKILL);
				return -ETIMEDOUT;
			}
			wait_ms = (int)(deadline - now);
		}
		n = poll(p, 3, wait_ms);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			kill(pid, SIGKILL);
			return al_error_errno(err, "%s: poll", what);
		}
		if (p[2].revents & (POLLRDHUP | POLLHUP | POLLERR)) {
			kill(pid, SIGKILL);
			return al_error_set(err, ECANCELED, "%s: the client went away", what);
		}
		for (int i = 0; i < 2; i++) {
			char chunk[65536];
			ssize_t got;
			if (p[i].fd < 0 || !p[i].revents)
				continue;
			got = read(p[i].fd, chunk, sizeof(chunk));
			if (got < 0 && (errno == EINTR || errno == EAGAIN))
				continue;
			if (got <= 0) {
				p[i].fd = -1;
				open_fds--;
				continue;
			}
			if (i == 1 && o->out->len + (size_t)got > o->out_max) {
				kill(pid, SIGKILL);
				return al_error_set(err, EFBIG, "%s: more than %zu bytes of output",
				                    what, o->out_max);
			}
			if (al_buf_append(i == 0 ? msg : o->out, chunk, (size_t)got) < 0) {
				kill(pid, SIGKILL);
				return al_error_set(err, ENOMEM, "out of memory");
			}
		}
	}
	return 0;
}

int helper_run(helper_fn fn, void *arg, const struct helper_opts *o, struct al_error *err)
{
	_cleanup_close_ int err_r = -1, out_r = -1;
	_cleanup_buf_ struct al_buf msg = {0};
	const char *what = o->what ? o->what : "helper";
	int ep[2], op[2] = {-1, -1}, status = 0, r = 0;
	pid_t parent, pid;

	if (o->ns_pidfd >= 0 || o->ns_pid > 0) {
		pthread_once(&helper_filter_once, compile_filter_once);
		if (helper_filter_err.code)
			return al_error_set(err, helper_filter_err.code, "%s",
			                    helper_filter_err.msg);
	}
	if (pipe2(ep, O_CLOEXEC) < 0)
		return al_error_errno(err, "%s: pipe", what);
	if (o->out && pipe2(op, O_CLOEXEC) < 0) {
		r = al_error_errno(err, "%s: pipe", what);
		close(ep[0]);
		close(ep[1]);
		return r;
	}
	parent = getpid();
	pid = fork();
	if (pid == 0)
		child_main(fn, arg, o, parent, ep[1], op[1], false);
	if (pid < 0)
		r = al_error_errno(err, "%s: fork", what);
	close(ep[1]);
	err_r = ep[0];
	if (op[1] >= 0)
		close(op[1]);
	out_r = op[0];
	if (pid < 0)
		return r;

	r = collect(pid, err_r, out_r, o, &msg, err);
	while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
		;
	if (r < 0)
		return r;
	if (WIFEXITED(status) && WEXITSTATUS(status) == 0)
		return 0;
	if (msg.len >= 1) {
		al_buf_append(&msg, "", 1);
		return al_error_set(err, (unsigned char)msg.data[0], "%s", msg.data + 1);
	}
	if (WIFSIGNALED(status))
		return al_error_set(err, EIO, "%s killed by signal %d", what, WTERMSIG(status));
	return al_error_set(err, EIO, "%s failed (exit status %d)", what, WEXITSTATUS(status));
}

int helper_start(helper_fn fn, void *arg, const struct helper_opts *o, pid_t *pid_out,
                 int *pidfd_out, struct al_error *err)
{
	_cleanup_close_ int err_r = -1, pidfd = -1;
	_cleanup_buf_ struct al_buf msg = {0};
	struct helper_opts ready = *o;
	const char *what = o->what ? o->what : "helper";
	int ep[2], status = 0, r;
	pid_t parent, pid;

	if (o->ns_pidfd >= 0 || o->ns_pid > 0) {
		pthread_once(&helper_filter_once, compile_filter_once);
		if (helper_filter_err.code)
			return al_error_set(err, helper_filter_err.code, "%s",
			                    helper_filter_err.msg);
	}
	if (pipe2(ep, O_CLOEXEC) < 0)
		return al_error_errno(err, "%s: pipe", what);
	parent = getpid();
	pid = fork();
	if (pid == 0)
		child_main(fn, arg, o, parent, ep[1], -1, true);
	close(ep[1]);
	err_r = ep[0];
	if (pid < 0)
		return al_error_errno(err, "%s: fork", what);
	/* Until it is in place: the error pipe ends, with a message or none. */
	ready.out = NULL;
	ready.timeout_ms = o->timeout_ms ? o->timeout_ms : 10000;
	r = collect(pid, err_r, -1, &ready, &msg, err);
	if (r == 0 && msg.len == 0) {
		/* Not reaped by anyone but us: the pid cannot have been reused. */
		pidfd = (int)syscall(SYS_pidfd_open, pid, 0);
		if (pidfd >= 0) {
			*pid_out = pid;
			*pidfd_out = TAKE_FD(pidfd);
			return 0;
		}
		r = al_error_errno(err, "%s: pidfd_open", what);
		kill(pid, SIGKILL);
	}
	while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
		;
	if (r < 0)
		return r;
	if (msg.len >= 1) {
		al_buf_append(&msg, "", 1);
		return al_error_set(err, (unsigned char)msg.data[0], "%s", msg.data + 1);
	}
	return al_error_set(err, EIO, "%s failed to start", what);
}

/* ---- confined to a directory (image imports) --------------------------------------------- */

int helper_confine_to(const char *root, struct al_error *err)
{
	static const char *const caps[] = {"CAP_CHOWN",  "CAP_DAC_OVERRIDE", "CAP_FOWNER",
	                                   "CAP_FSETID", "CAP_MKNOD",        NULL};
	_cleanup_(filter_releasep) scmp_filter_ctx ctx = NULL;
	int r;

	if (chroot(root) < 0 || chdir("/") < 0)
		return al_error_errno(err, "chroot %s", root);
	r = caps_apply(caps, err);
	if (r < 0)
		return al_error_prefix(err, "confined helper");
	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0)
		return al_error_errno(err, "prctl(PR_SET_NO_NEW_PRIVS)");
	umask(022);
	ctx = seccomp_init(SCMP_ACT_ALLOW);
	if (!ctx)
		return al_error_set(err, ENOMEM, "seccomp_init");
	for (const char *const *name = denied_syscalls; *name; name++) {
		int nr;
		if (!strcmp(*name, "mknodat"))
			continue; /* below */
		nr = seccomp_syscall_resolve_name(*name);
		if (nr == __NR_SCMP_ERROR)
			continue; /* not on this architecture */
		r = seccomp_rule_add(ctx, SCMP_ACT_ERRNO(EPERM), nr, 0);
		if (r < 0)
			return al_error_set(err, -r, "seccomp rule for %s", *name);
	}
	/* Image layers' whiteouts, 0:0 character devices, and no other
	 * device: a block device of the host's disk would be all of it. */
	r = seccomp_rule_add(ctx, SCMP_ACT_ERRNO(EPERM), SCMP_SYS(mknodat), 1,
	                     SCMP_A2(SCMP_CMP_MASKED_EQ, S_IFMT, S_IFBLK));
	if (r == 0)
		r = seccomp_rule_add(ctx, SCMP_ACT_ERRNO(EPERM), SCMP_SYS(mknodat), 2,
		                     SCMP_A2(SCMP_CMP_MASKED_EQ, S_IFMT, S_IFCHR),
		                     SCMP_A3(SCMP_CMP_NE, 0, 0));
	if (r < 0)
		return al_error_set(err, -r, "seccomp rule for mknodat");
	r = seccomp_load(ctx);
	if (r < 0)
		return al_error_set(err, -r, "load the confined helper's seccomp filter");
	return 0;
}
