/* SPDX-License-Identifier: Apache-2.0 */
/*
 * airlock-init: PID 1 of a sandbox.
 *
 * airlockd starts it with clone(CLONE_NEWPID|CLONE_NEWNS|CLONE_NEWNET|
 * CLONE_NEWUTS|CLONE_NEWIPC), already placed in the sandbox's cgroups, as
 * real root.  It builds the sandbox from inside (mounts, hostname, loopback,
 * pivot_root), then switches into the sandbox's user namespace, drops
 * capabilities, sets no_new_privs and installs the seccomp filter, so from
 * then on it is exactly as confined as the commands it runs.  All namespaces
 * except the user namespace stay owned by the initial user namespace: even
 * root inside the sandbox cannot mount, change the network or the hostname.
 *
 * Inherited fds: 3 = config (JSON), 4 = listening socket (state/ID/init.sock),
 * 5 = status pipe to airlockd ("ok" or an error message, then closed).
 */
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <limits.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <linux/seccomp.h>

#include "caps.h"
#include "cleanup.h"
#include "initproto.h"
#include "mounts.h"
#include "netlink.h"
#include "seccomp_profile.h"
#include "util.h"

#define CONFIG_FD 3
#define LISTEN_FD 4
#define STATUS_FD 5

#define MAX_CLIENTS 1024

struct init_config {
	char *hostname;
	char *rootfs;
	char *sandbox_dir;
	char *workspace;
	char *bpf_path;
	char *compat_bpf_path; /* optional: the ENOSYS half of the profile */
	uid_t uid_base;
	uint32_t uid_count;
	char **caps; /* NULL-terminated */
};

/* One daemon connection; pid > 0 once it spawned a process. */
struct client {
	int fd;
	pid_t pid;
};

static struct client clients[MAX_CLIENTS];
static size_t n_clients;

static char *json_strdup(const cJSON *obj, const char *key)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, key);
	return cJSON_IsString(v) ? strdup(v->valuestring) : NULL;
}

static int read_config(struct init_config *c, struct al_error *err)
{
	_cleanup_free_ char *text = NULL;
	_cleanup_cjson_ cJSON *j = NULL;
	const cJSON *caps, *item;
	size_t n = 0, i = 0;
	int r;

	r = al_read_fd(CONFIG_FD, 1 << 20, &text, NULL, err);
	close(CONFIG_FD);
	if (r < 0)
		return al_error_prefix(err, "config");
	j = cJSON_Parse(text);
	if (!j)
		return al_error_set(err, EINVAL, "config: malformed JSON");
	c->hostname = json_strdup(j, "hostname");
	c->rootfs = json_strdup(j, "rootfs");
	c->sandbox_dir = json_strdup(j, "sandbox_dir");
	c->workspace = json_strdup(j, "workspace");
	c->bpf_path = json_strdup(j, "seccomp_bpf");
	c->compat_bpf_path = json_strdup(j, "seccomp_compat_bpf");
	c->uid_base = (uid_t)cJSON_GetNumberValue(cJSON_GetObjectItemCaseSensitive(j, "uid_base"));
	c->uid_count =
	    (uint32_t)cJSON_GetNumberValue(cJSON_GetObjectItemCaseSensitive(j, "uid_count"));
	if (!c->hostname || !c->rootfs || !c->sandbox_dir || !c->workspace || !c->bpf_path ||
	    c->uid_base == 0 || c->uid_count == 0)
		return al_error_set(err, EINVAL, "config: missing field");
	caps = cJSON_GetObjectItemCaseSensitive(j, "caps");
	cJSON_ArrayForEach(item, caps) n++;
	c->caps = calloc(n + 1, sizeof(char *));
	if (!c->caps)
		return al_error_set(err, ENOMEM, "out of memory");
	cJSON_ArrayForEach(item, caps)
	{
		if (cJSON_IsString(item))
			c->caps[i++] = strdup(item->valuestring);
	}
	return 0;
}

/* The user namespace's first member: it only has to have existed. */
static int userns_holder(void *arg)
{
	(void)arg;
	return 0;
}

/*
 * The sandbox's user namespace is made by a child created in it
 * (clone(CLONE_NEWUSER)) that exits at once.  We, real root here, write its
 * maps (so setgroups stays allowed) and keep an fd to the namespace through
 * /proc/PID, which still names it while the child is a zombie.  With
 * CLONE_VM|CLONE_VFORK nothing of ours is copied and we resume once it has
 * exited: no pipes, no signal, no waiting for it to be scheduled twice.
 */
static int create_userns(const struct init_config *c, struct al_error *err)
{
	_Alignas(16) char stack[16384];
	char path[64], map[64];
	pid_t pid;
	int fd = -1, r = 0;

	pid = clone(userns_holder, stack + sizeof(stack),
	            CLONE_NEWUSER | CLONE_VM | CLONE_VFORK | SIGCHLD, NULL);
	if (pid < 0)
		return al_error_errno(err, "clone user namespace holder");
	snprintf(map, sizeof(map), "0 %u %u\n", (unsigned)c->uid_base, (unsigned)c->uid_count);
	snprintf(path, sizeof(path), "/proc/%d/uid_map", (int)pid);
	r = al_write_string(path, map, err);
	if (r == 0) {
		snprintf(path, sizeof(path), "/proc/%d/gid_map", (int)pid);
		r = al_write_string(path, map, err);
	}
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

static int enter_userns(int userns_fd, struct al_error *err)
{
	if (setns(userns_fd, CLONE_NEWUSER) < 0)
		return al_error_errno(err, "setns user namespace");
	if (setgroups(0, NULL) < 0)
		return al_error_errno(err, "setgroups");
	if (setresgid(0, 0, 0) < 0)
		return al_error_errno(err, "setresgid 0");
	if (setresuid(0, 0, 0) < 0)
		return al_error_errno(err, "setresuid 0");
	return 0;
}

static int setup(struct init_config *c, struct al_error *err)
{
	struct mounts_config mc = {0};
	_cleanup_free_ char *bpf = NULL, *compat_bpf = NULL, *cgroups = NULL;
	_cleanup_close_ int userns_fd = -1;
	char newroot[PATH_MAX];
	size_t bpf_len = 0, compat_len = 0;
	int r;

	/* Not dumpable: nothing in the sandbox may ptrace us or open our fds. */
	prctl(PR_SET_DUMPABLE, 0, 0, 0, 0);
	/* We run from a memfd; give ps inside a name that says what we are. */
	prctl(PR_SET_NAME, "airlock-init", 0, 0, 0);

	r = read_config(c, err);
	if (r < 0)
		return r;
	r = al_read_file(c->bpf_path, 1 << 20, &bpf, &bpf_len, err);
	if (r < 0)
		return al_error_prefix(err, "seccomp filter");
	if (c->compat_bpf_path) {
		r = al_read_file(c->compat_bpf_path, 1 << 20, &compat_bpf, &compat_len, err);
		if (r < 0)
			return al_error_prefix(err, "seccomp filter");
	}

	/* Our cgroup was set by airlockd before exec; from here on the
	 * sandbox's view of cgroups is rooted at it.  Which hierarchies hold
	 * a cgroup of our own can only be seen before. */
	r = al_read_file("/proc/self/cgroup", 1 << 16, &cgroups, NULL, err);
	if (r < 0)
		return r;
	if (unshare(CLONE_NEWCGROUP) < 0)
		return al_error_errno(err, "unshare cgroup namespace");

	r = mounts_detach_from_host(err);
	if (r < 0)
		return r;
	r = create_userns(c, err);
	if (r < 0)
		return r;
	userns_fd = r;

	mc.rootfs = c->rootfs;
	mc.sandbox_dir = c->sandbox_dir;
	mc.userns_fd = userns_fd;
	mc.uid = c->uid_base;
	mc.gid = (gid_t)c->uid_base;
	mc.workspace = c->workspace;
	mc.cgroup_membership = cgroups;
	r = mounts_prepare_root(&mc, newroot, err);
	if (r < 0)
		return al_error_prefix(err, "rootfs");

	if (sethostname(c->hostname, strlen(c->hostname)) < 0)
		return al_error_errno(err, "sethostname %s", c->hostname);
	r = netlink_loopback_up(err);
	if (r < 0)
		return al_error_prefix(err, "loopback");

	r = mounts_pivot_root(newroot, err);
	if (r < 0)
		return r;

	r = enter_userns(userns_fd, err);
	if (r < 0)
		return r;
	r = caps_apply((const char *const *)c->caps, err);
	if (r < 0)
		return al_error_prefix(err, "capabilities");
	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0)
		return al_error_errno(err, "prctl(PR_SET_NO_NEW_PRIVS)");
	/* Changing uids reset dumpability; set it again before any fd is exposed. */
	prctl(PR_SET_DUMPABLE, 0, 0, 0, 0);
	/* FLAG_LOG: the kernel audits every denial of this filter; airlockd
	 * reads the records (events.c).  The ENOSYS half goes on top, unlogged. */
	r = seccomp_install_bpf_flags(bpf, bpf_len, SECCOMP_FILTER_FLAG_LOG, err);
	if (r == 0 && compat_bpf)
		r = seccomp_install_bpf(compat_bpf, compat_len, err);
	if (r < 0)
		return al_error_prefix(err, "seccomp");
	if (chdir(c->workspace) < 0 && chdir("/") < 0)
		return al_error_errno(err, "chdir /");
	return 0;
}

/* ---- serving airlockd ---------------------------------------------------------------- */

static struct client *client_by_fd(int fd)
{
	for (size_t i = 0; i < n_clients; i++)
		if (clients[i].fd == fd)
			return &clients[i];
	return NULL;
}

static struct client *client_by_pid(pid_t pid)
{
	for (size_t i = 0; i < n_clients; i++)
		if (clients[i].pid == pid)
			return &clients[i];
	return NULL;
}

static void client_remove(struct client *cl)
{
	if (cl->fd >= 0)
		close(cl->fd);
	*cl = clients[--n_clients];
}

static void reply(int fd, cJSON *msg)
{
	struct al_error err = AL_ERROR_INIT;
	if (msg)
		initproto_send(fd, msg, NULL, 0, &err);
	cJSON_Delete(msg);
}

static void reply_error(int fd, int code, const char *what)
{
	cJSON *m = cJSON_CreateObject();
	cJSON_AddStringToObject(m, "error", what);
	cJSON_AddNumberToObject(m, "errno", code);
	reply(fd, m);
}

/* Shared with the vfork()ed child, which writes why its exec failed. */
static volatile int child_errno;
static volatile int child_stage; /* 0 = exec, 1 = chdir, 2 = stdio */

/*
 * Resolve argv[0] against PATH from the command's own environment (not
 * ours) and exec it.  Runs in the vforked child: no allocation, no stdio.
 */
static void exec_with_path(char *const argv[], char *const envp[])
{
	const char *path = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
	char buf[PATH_MAX];
	int saw_eacces = 0;

	if (strchr(argv[0], '/')) {
		execve(argv[0], argv, envp);
		return;
	}
	for (char *const *e = envp; *e; e++)
		if (strncmp(*e, "PATH=", 5) == 0)
			path = *e + 5;
	while (*path) {
		const char *end = strchrnul(path, ':');
		size_t dlen = (size_t)(end - path), alen = strlen(argv[0]);
		if (dlen + alen + 2 <= sizeof(buf)) {
			memcpy(buf, path, dlen);
			if (dlen == 0)
				buf[dlen++] = '.';
			buf[dlen] = '/';
			memcpy(buf + dlen + 1, argv[0], alen + 1);
			execve(buf, argv, envp);
			if (errno == EACCES)
				saw_eacces = 1;
			else if (errno != ENOENT && errno != ENOTDIR)
				return;
		}
		path = *end ? end + 1 : end;
	}
	errno = saw_eacces ? EACCES : ENOENT;
}

/* Not inlined: its locals must not live in handle_spawn()'s frame across vfork(). */
__attribute__((noinline)) static char **json_strv(const cJSON *arr)
{
	const cJSON *item;
	size_t n = 0, i = 0;
	char **v;

	cJSON_ArrayForEach(item, arr) n++;
	v = calloc(n + 1, sizeof(char *));
	if (!v)
		return NULL;
	cJSON_ArrayForEach(item, arr)
	{
		if (!cJSON_IsString(item)) {
			free(v);
			return NULL;
		}
		v[i++] = item->valuestring; /* borrowed from the message */
	}
	return v;
}

static void handle_spawn(struct client *cl, const cJSON *msg, int *fds, size_t nfds)
{
	_cleanup_free_ char **argv = json_strv(cJSON_GetObjectItemCaseSensitive(msg, "argv"));
	_cleanup_free_ char **envp = json_strv(cJSON_GetObjectItemCaseSensitive(msg, "env"));
	const cJSON *cwd = cJSON_GetObjectItemCaseSensitive(msg, "cwd");
	sigset_t all;
	cJSON *m;
	pid_t pid;

	if (cl->pid > 0) {
		reply_error(cl->fd, EBUSY, "connection already has a process");
		return;
	}
	if (!argv || !argv[0] || !envp || nfds != 3 || !cJSON_IsString(cwd)) {
		reply_error(cl->fd, EINVAL, "malformed spawn request");
		return;
	}
	child_errno = 0;
	child_stage = 0;
	sigfillset(&all);
	/* vfork: we are single-threaded and block until the child has exec'd,
	 * which is exactly what we need to report exec errors synchronously. */
	pid = vfork();
	if (pid < 0) {
		reply_error(cl->fd, errno, "fork");
		return;
	}
	if (pid == 0) {
		sigset_t none;
		sigemptyset(&none);
		for (int s = 1; s < NSIG; s++)
			signal(s, SIG_DFL);
		sigprocmask(SIG_SETMASK, &none, NULL);
		setsid();
		if (dup2(fds[0], 0) < 0 || dup2(fds[1], 1) < 0 || dup2(fds[2], 2) < 0) {
			child_stage = 2;
			child_errno = errno;
			_exit(127);
		}
		syscall(SYS_close_range, 3, ~0U, 0);
		if (chdir(cwd->valuestring) < 0) {
			child_stage = 1;
			child_errno = errno;
			_exit(127);
		}
		exec_with_path(argv, envp);
		child_errno = errno ? errno : ENOEXEC;
		_exit(127);
	}
	if (child_errno) {
		static const char *const stages[] = {"exec", "chdir", "stdio"};
		char what[PATH_MAX + 64];
		int e = child_errno;
		waitpid(pid, NULL, 0);
		snprintf(what, sizeof(what), "%s %s: %s", stages[child_stage],
		         child_stage == 1 ? cwd->valuestring : argv[0], strerror(e));
		m = cJSON_CreateObject();
		cJSON_AddStringToObject(m, "error", what);
		cJSON_AddNumberToObject(m, "errno", e);
		cJSON_AddStringToObject(m, "stage", stages[child_stage]);
		reply(cl->fd, m);
		return;
	}
	cl->pid = pid;
	m = cJSON_CreateObject();
	cJSON_AddNumberToObject(m, "pid", pid);
	reply(cl->fd, m);
}

static void handle_message(struct client *cl)
{
	struct al_error err = AL_ERROR_INIT;
	_cleanup_cjson_ cJSON *msg = NULL;
	int fds[INITPROTO_MAX_FDS];
	size_t nfds = INITPROTO_MAX_FDS;
	const cJSON *op;
	int r;

	r = initproto_recv(cl->fd, &msg, fds, &nfds, &err);
	if (r != 0) {
		/* airlockd went away: the process keeps running, unreported. */
		if (cl->pid > 0) {
			close(cl->fd);
			cl->fd = -1;
		} else {
			client_remove(cl);
		}
		return;
	}
	op = cJSON_GetObjectItemCaseSensitive(msg, "op");
	if (!cJSON_IsString(op)) {
		reply_error(cl->fd, EINVAL, "missing op");
	} else if (!strcmp(op->valuestring, "spawn")) {
		handle_spawn(cl, msg, fds, nfds);
	} else if (!strcmp(op->valuestring, "kill")) {
		int sig =
		    (int)cJSON_GetNumberValue(cJSON_GetObjectItemCaseSensitive(msg, "signal"));
		if (cl->pid <= 0 || sig <= 0 || sig >= NSIG) {
			reply_error(cl->fd, EINVAL, "kill: no process or bad signal");
		} else {
			/* The whole session: the process and whatever it started. */
			kill(-cl->pid, sig);
			kill(cl->pid, sig);
		}
	} else if (!strcmp(op->valuestring, "ping")) {
		cJSON *m = cJSON_CreateObject();
		cJSON_AddBoolToObject(m, "ok", true);
		reply(cl->fd, m);
	} else {
		reply_error(cl->fd, EINVAL, "unknown op");
	}
	for (size_t i = 0; i < nfds; i++)
		close(fds[i]);
}

static void reap_children(void)
{
	int status;
	pid_t pid;

	while ((pid = waitpid(-1, &status, WNOHANG)) > 0) {
		struct client *cl = client_by_pid(pid);
		cJSON *m;

		if (!cl)
			continue; /* an orphan that was reparented to us */
		if (cl->fd >= 0) {
			m = cJSON_CreateObject();
			if (WIFSIGNALED(status))
				cJSON_AddNumberToObject(m, "signal", WTERMSIG(status));
			else
				cJSON_AddNumberToObject(m, "exit", WEXITSTATUS(status));
			reply(cl->fd, m);
		}
		client_remove(cl);
	}
}

static void serve(void)
{
	struct pollfd pfds[MAX_CLIENTS + 2];
	sigset_t mask;
	int sfd;

	sigemptyset(&mask);
	sigaddset(&mask, SIGCHLD);
	sigprocmask(SIG_BLOCK, &mask, NULL);
	sfd = signalfd(-1, &mask, SFD_CLOEXEC | SFD_NONBLOCK);
	if (sfd < 0)
		_exit(1);
	/* Children may have exited before the signalfd existed. */
	reap_children();

	for (;;) {
		size_t n = 0;

		pfds[n++] = (struct pollfd){.fd = sfd, .events = POLLIN};
		pfds[n++] = (struct pollfd){.fd = n_clients < MAX_CLIENTS ? LISTEN_FD : -1,
		                            .events = POLLIN};
		for (size_t i = 0; i < n_clients; i++)
			pfds[n++] = (struct pollfd){.fd = clients[i].fd, .events = POLLIN};
		if (poll(pfds, n, -1) < 0)
			continue;
		if (pfds[0].revents) {
			struct signalfd_siginfo si;
			while (read(sfd, &si, sizeof(si)) > 0)
				;
			reap_children();
		}
		if (pfds[1].revents & POLLIN) {
			int fd = accept4(LISTEN_FD, NULL, NULL, SOCK_CLOEXEC);
			if (fd >= 0)
				clients[n_clients++] = (struct client){.fd = fd, .pid = 0};
		}
		for (size_t i = 2; i < n; i++) {
			struct client *cl;
			if (!pfds[i].revents || pfds[i].fd < 0)
				continue;
			cl = client_by_fd(pfds[i].fd);
			if (cl)
				handle_message(cl);
		}
	}
}

int main(void)
{
	struct al_error err = AL_ERROR_INIT;
	struct init_config c = {0};
	int r;

	r = setup(&c, &err);
	if (r < 0) {
		char msg[AL_ERROR_MSG_MAX + 8];
		int n = snprintf(msg, sizeof(msg), "error: %s", err.msg);
		if (al_write_all(STATUS_FD, msg, (size_t)n) < 0)
			fprintf(stderr, "airlock-init: %s\n", err.msg);
		return 1;
	}
	if (al_write_all(STATUS_FD, "ok", 2) < 0)
		return 1;
	close(STATUS_FD);
	/* Stdio came from airlockd; keep nothing of the host open. */
	{
		int devnull = open("/dev/null", O_RDWR | O_CLOEXEC);
		if (devnull >= 0) {
			dup2(devnull, 0);
			dup2(devnull, 1);
			dup2(devnull, 2);
			close(devnull);
		}
	}
	serve();
	return 0;
}
