/* SPDX-License-Identifier: Apache-2.0 */
/*
 * airlock-init: builds a sandbox from inside, then becomes its PID 1.
 *
 * airlockd starts it with one clone3(CLONE_NEWUSER|CLONE_NEWPID|CLONE_NEWNS|
 * CLONE_NEWNET|CLONE_NEWUTS|CLONE_NEWIPC), already placed in the sandbox's
 * cgroups, as uid 0 of the new user namespace, which therefore owns every
 * other namespace of the sandbox (the only layout CRIU can checkpoint).
 * airlockd writes the uid/gid maps and makes the root overlay as a detached
 * mount; we move it into our mount namespace, build /proc, /sys, /dev on it,
 * set the hostname, bring up loopback, pivot_root, drop capabilities, set
 * no_new_privs and install the seccomp filter, so from then on we are
 * exactly as confined as the commands we run.  What keeps sandbox root from
 * mounting or reconfiguring anything is then the capability set (no
 * CAP_SYS_ADMIN, CAP_NET_ADMIN) and the filter (no mount, unshare, setns),
 * both inherited by everything it runs; see docs/security.md.
 *
 * Last, we exec airlock-pid1 (pid1.c), bound read-only at /dev/.init, which
 * serves airlockd for the sandbox's lifetime.
 *
 * Inherited fds: 3 = config (JSON), 4 = socket on which airlockd sends the detached root mount
 * (it makes it while we start), 5 = status pipe to airlockd ("ok" or an error message), 6 =
 * O_PATH fd of the directory to attach the root on (state/ID/root).
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <sched.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <stddef.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <unistd.h>

#include <linux/seccomp.h>

#include "caps.h"
#include "cleanup.h"
#include "json.h"
#include "initproto.h"
#include "mounts.h"
#include "netlink.h"
#include "seccomp_profile.h"
#include "util.h"

#define CONFIG_FD 3
#define ROOT_SOCK_FD 4
#define STATUS_FD 5
#define TARGET_FD 6
#define BPF_FD 7
#define COMPAT_BPF_FD 8

/* What airlock-pid1 gets. */
#define PID1_LISTEN_FD 3

/* Where to report a failure; -1 once "ok" is sent. */
static int status_fd = STATUS_FD;

struct init_config {
	char *hostname;
	char *workspace;
	char *bpf_path;
	char *compat_bpf_path; /* optional: the ENOSYS half of the profile */
	char *pid1_path;       /* host path of airlock-pid1 */
	char **caps;           /* NULL-terminated */
};

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
	c->workspace = json_strdup(j, "workspace");
	c->bpf_path = json_strdup(j, "seccomp_bpf");
	c->compat_bpf_path = json_strdup(j, "seccomp_compat_bpf");
	c->pid1_path = json_strdup(j, "pid1");
	if (!c->hostname || !c->workspace || !c->bpf_path || !c->pid1_path)
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

/* The root mount, as airlockd sends it (SCM_RIGHTS) on ROOT_SOCK_FD. */
static int receive_root(struct al_error *err)
{
	union {
		char buf[CMSG_SPACE(sizeof(int))];
		struct cmsghdr align;
	} control;
	char byte;
	struct iovec iov = {.iov_base = &byte, .iov_len = 1};
	struct msghdr mh = {.msg_iov = &iov,
	                    .msg_iovlen = 1,
	                    .msg_control = control.buf,
	                    .msg_controllen = sizeof(control.buf)};
	struct cmsghdr *cm;
	ssize_t n;
	int fd;

	do
		n = recvmsg(ROOT_SOCK_FD, &mh, MSG_CMSG_CLOEXEC);
	while (n < 0 && errno == EINTR);
	if (n < 0)
		return al_error_errno(err, "receive the root mount");
	cm = CMSG_FIRSTHDR(&mh);
	if (n == 0 || !cm || cm->cmsg_level != SOL_SOCKET || cm->cmsg_type != SCM_RIGHTS)
		return al_error_set(err, EPROTO, "airlockd sent no root mount");
	memcpy(&fd, CMSG_DATA(cm), sizeof(int));
	close(ROOT_SOCK_FD);
	return fd;
}

/* The control socket, in our network namespace: see initproto.h. */
static int listen_control(struct al_error *err)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	size_t len = strlen(INITPROTO_SOCKET_NAME);
	_cleanup_close_ int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);

	if (fd < 0)
		return al_error_errno(err, "socket");
	memcpy(sa.sun_path + 1, INITPROTO_SOCKET_NAME, len);
	if (bind(fd, (struct sockaddr *)&sa,
	         (socklen_t)(offsetof(struct sockaddr_un, sun_path) + 1 + len)) < 0)
		return al_error_errno(err, "bind @%s", INITPROTO_SOCKET_NAME);
	if (listen(fd, 64) < 0)
		return al_error_errno(err, "listen @%s", INITPROTO_SOCKET_NAME);
	return TAKE_FD(fd);
}

static int setup(struct init_config *c, struct al_error *err)
{
	struct mounts_config mc = {0};
	_cleanup_free_ char *bpf = NULL, *compat_bpf = NULL, *cgroups = NULL;
	_cleanup_close_ int root_fd = -1;
	char newroot[PATH_MAX];
	size_t bpf_len = 0, compat_len = 0;
	int r;

	/* Not dumpable: nothing in the sandbox may ptrace us or open our fds. */
	prctl(PR_SET_DUMPABLE, 0, 0, 0, 0);
	/* We run from a memfd; give ps inside a name that says what we are. */
	prctl(PR_SET_NAME, "airlock-init", 0, 0, 0);
	/* Our own session: no terminal or process group of airlockd's. */
	setsid();

	r = read_config(c, err);
	if (r < 0)
		return r;
	/* The filters come as fds: their files are in airlockd's state
	 * directory, which our uids cannot read. */
	r = al_read_fd(BPF_FD, 1 << 20, &bpf, &bpf_len, err);
	close(BPF_FD);
	if (r < 0)
		return al_error_prefix(err, "seccomp filter %s", c->bpf_path);
	if (c->compat_bpf_path) {
		r = al_read_fd(COMPAT_BPF_FD, 1 << 20, &compat_bpf, &compat_len, err);
		close(COMPAT_BPF_FD);
		if (r < 0)
			return al_error_prefix(err, "seccomp filter %s", c->compat_bpf_path);
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
	root_fd = receive_root(err);
	if (root_fd < 0)
		return root_fd;
	mc.root_fd = root_fd;
	mc.target_fd = TARGET_FD;
	mc.pid1_path = c->pid1_path;
	mc.uid = 0;
	mc.gid = 0;
	mc.workspace = c->workspace;
	mc.cgroup_membership = cgroups;
	r = mounts_prepare_root(&mc, newroot, err);
	if (r < 0)
		return al_error_prefix(err, "rootfs");
	close(TARGET_FD);
	close(TAKE_FD(root_fd));

	if (sethostname(c->hostname, strlen(c->hostname)) < 0)
		return al_error_errno(err, "sethostname %s", c->hostname);
	r = netlink_loopback_up(err);
	if (r < 0)
		return al_error_prefix(err, "loopback");

	r = mounts_pivot_root(newroot, err);
	if (r < 0)
		return r;

	r = caps_apply((const char *const *)c->caps, err);
	if (r < 0)
		return al_error_prefix(err, "capabilities");
	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0)
		return al_error_errno(err, "prctl(PR_SET_NO_NEW_PRIVS)");
	/* FLAG_LOG: the kernel audits every denial of this filter; airlockd
	 * reads the records (events.c).  The ENOSYS half goes on top, unlogged. */
	r = sc_install_bpf_flags(bpf, bpf_len, SECCOMP_FILTER_FLAG_LOG, err);
	if (r == 0 && compat_bpf)
		r = sc_install_bpf(compat_bpf, compat_len, err);
	if (r < 0)
		return al_error_prefix(err, "seccomp");
	/* PID 1 lives in "/", not in the workspace: an agent may remove and
	 * make /workspace again, and a PID 1 left in a deleted directory is
	 * one CRIU cannot dump.  Commands get their cwd per request. */
	if (chdir("/") < 0)
		return al_error_errno(err, "chdir /");
	return 0;
}

/*
 * Hand over to airlock-pid1 with nothing of the host open: stdio inherited
 * from airlockd, the config file and the root socket would be fds CRIU
 * cannot resolve.
 *
 * "ok" goes to airlockd just before the exec, not from pid1 once it runs:
 * the listening socket exists already, so requests queue on it while pid1
 * starts, and a create answers an exec earlier.  What that gives up is
 * reporting a failed exec of pid1 (our own static binary, bound read-only
 * at /dev/.init): PID 1 then exits, which takes the sandbox down and shows
 * as "stopped" and refused requests rather than as a failed create.
 */
static int exec_pid1(struct al_error *err)
{
	char *const argv[] = {"airlock-init", NULL};
	char *const envp[] = {NULL};
	_cleanup_close_ int listen_fd = -1, devnull = -1, lhigh = -1, nhigh = -1;

	listen_fd = listen_control(err);
	if (listen_fd < 0)
		return listen_fd;
	devnull = open("/dev/null", O_RDWR | O_CLOEXEC);
	if (devnull < 0)
		return al_error_errno(err, "open /dev/null");
	/* Above the targets first, so no dup2 below overwrites a source. */
	lhigh = fcntl(listen_fd, F_DUPFD_CLOEXEC, 16);
	nhigh = fcntl(devnull, F_DUPFD_CLOEXEC, 16);
	if (lhigh < 0 || nhigh < 0 || dup2(nhigh, 0) < 0 || dup2(nhigh, 1) < 0 ||
	    dup2(nhigh, 2) < 0 || dup2(lhigh, PID1_LISTEN_FD) < 0)
		return al_error_errno(err, "dup2");
	/* pid1 finds no status pipe on its fd 4, as after a re-exec. */
	syscall(SYS_close_range, PID1_LISTEN_FD + 1, ~0U, CLOSE_RANGE_CLOEXEC);
	/* Made, and from now on the sandbox outlives airlockd: no longer die
	 * with it (spawn.c set this while we were half-made). */
	if (prctl(PR_SET_PDEATHSIG, 0, 0, 0, 0) < 0)
		return al_error_errno(err, "prctl(PR_SET_PDEATHSIG)");
	if (al_write_all(STATUS_FD, "ok", 2) < 0)
		return al_error_errno(err, "report ready to airlockd");
	status_fd = -1;
	execve("/dev/.init", argv, envp);
	return al_error_errno(err, "exec /dev/.init (airlock-pid1)");
}

int main(int argc, char **argv)
{
	struct al_error err = AL_ERROR_INIT;
	struct init_config c = {0};
	int r;

	/* airlockd starts it with no arguments; an operator may ask what it is. */
	if (argc == 2 && !strcmp(argv[1], "--version")) {
		printf("airlock-init %s\n", AIRLOCK_VERSION);
		return 0;
	}
	r = setup(&c, &err);
	if (r == 0)
		r = exec_pid1(&err);
	/* Only failures get here; stdio may already be /dev/null. */
	{
		char msg[AL_ERROR_MSG_MAX + 8];
		int n = snprintf(msg, sizeof(msg), "error: %s", err.msg);
		/* What snprintf would have written, not what it did: never past msg. */
		size_t len = n < 0 ? 0 : (size_t)n >= sizeof(msg) ? sizeof(msg) - 1 : (size_t)n;
		if (status_fd < 0 || al_write_all(status_fd, msg, len) < 0)
			fprintf(stderr, "airlock-init: %s\n", err.msg);
	}
	return 1;
}
