/* SPDX-License-Identifier: Apache-2.0 */
#include "confine.h"

#include "cleanup.h"
#include "log.h"
#include "util.h"

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <limits.h>
#include <pwd.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <linux/sched.h>
#include <seccomp.h>
#include <sys/capability.h>

static inline void cap_freep(cap_t *c)
{
	if (*c)
		cap_free(*c);
}

static inline void seccomp_releasep(scmp_filter_ctx *ctx)
{
	if (*ctx)
		seccomp_release(*ctx);
}

/* The staging point of the new root: any directory every system has. */
#define STAGE "/tmp"

int gw_confine_prepare(struct gw_confine *c, struct al_error *err)
{
	struct stat st;

	c->privileged = geteuid() == 0;
	if (!c->privileged) {
		if (c->user)
			return al_error_set(err, EPERM, "--user %s: only root can switch users",
			                    c->user);
		c->uid = geteuid();
		c->gid = getegid();
		return 0;
	}
	{
		const char *name = c->user ? c->user : "nobody";
		struct passwd *pw = getpwnam(name);
		char *end;
		unsigned long n;

		if (pw) {
			c->uid = pw->pw_uid;
			c->gid = pw->pw_gid;
		} else {
			errno = 0;
			n = strtoul(name, &end, 10);
			if (errno || *end || !*name || n >= (unsigned long)UINT_MAX)
				return al_error_set(err, EINVAL, "--user %s: no such user", name);
			/* A bare uid with no passwd entry: its own number as group. */
			c->uid = (uid_t)n;
			c->gid = (gid_t)n;
		}
		if (c->uid == 0)
			return al_error_set(err, EINVAL,
			                    "--user %s: the gateway does not run as root", name);
	}
	if (stat(c->socket, &st) < 0)
		return al_error_errno(err, "airlockd's socket %s", c->socket);
	if (!S_ISSOCK(st.st_mode))
		return al_error_set(err, EINVAL, "%s is not a socket", c->socket);
	/* airlockd admits root and its socket's group (its --group); the gateway keeps
	 * that group and no other. */
	if (st.st_gid == 0 || (st.st_mode & 0060) != 0060)
		return al_error_set(
		    err, EACCES,
		    "airlockd's socket %s admits root only, and the gateway runs as "
		    "uid %u: start airlockd with --group GROUP",
		    c->socket, (unsigned)c->uid);
	c->socket_gid = st.st_gid;
	return 0;
}

/* path (a directory held open as src_fd) at the same path below stage; not its
 * submounts, which the gateway has no use for. */
static int bind_into(int src_fd, const char *stage, const char *path, bool rdonly,
                     struct al_error *err)
{
	_cleanup_free_ char *target = NULL;
	char src[64];

	if (asprintf(&target, "%s%s", stage, path) < 0)
		return al_error_set(err, ENOMEM, "out of memory");
	if (al_mkdir_p(target, 0755, err) < 0)
		return al_error_prefix(err, "new root");
	snprintf(src, sizeof(src), "/proc/self/fd/%d", src_fd);
	if (mount(src, target, NULL, MS_BIND, NULL) < 0)
		return al_error_errno(err, "bind %s into the gateway's root", path);
	if (mount(NULL, target, NULL,
	          MS_REMOUNT | MS_BIND | MS_NOSUID | MS_NODEV | MS_NOEXEC |
	              (rdonly ? MS_RDONLY : 0),
	          NULL) < 0)
		return al_error_errno(err, "remount %s in the gateway's root", path);
	return 0;
}

/*
 * A root of its own: a tmpfs with the socket's directory (read-only) and the state
 * directory (read-write) at their usual paths, nothing else.  The host's mounts are let
 * go (not kept busy by a copy in this namespace).
 */
static int new_root(const struct gw_confine *c, struct al_error *err)
{
	_cleanup_free_ char *sock_copy = strdup(c->socket);
	_cleanup_free_ char *sock_dir = NULL;
	_cleanup_free_ char *state_dir = NULL;
	_cleanup_close_ int sock_fd = -1, state_fd = -1;
	char *slash;
	int r;

	if (!sock_copy)
		return al_error_set(err, ENOMEM, "out of memory");
	slash = strrchr(sock_copy, '/');
	if (slash == sock_copy)
		slash[1] = '\0';
	else if (slash)
		*slash = '\0';
	sock_dir = realpath(slash ? sock_copy : ".", NULL);
	if (!sock_dir)
		return al_error_errno(err, "the directory of %s", c->socket);
	if (c->state_dir && !(state_dir = realpath(c->state_dir, NULL)))
		return al_error_errno(err, "--state-dir %s", c->state_dir);
	if (unshare(CLONE_NEWNS) < 0)
		return al_error_errno(err, "unshare the mount namespace");
	/* Slave: the host's unmounts reach this copy, nothing from here reaches the host. */
	if (mount(NULL, "/", NULL, MS_REC | MS_SLAVE, NULL) < 0)
		return al_error_errno(err, "make / a slave mount");
	/* Held open (opened in this namespace: a bind takes its source from here): the
	 * staging tmpfs may hide their paths. */
	sock_fd = open(sock_dir, O_PATH | O_DIRECTORY | O_CLOEXEC);
	if (sock_fd < 0)
		return al_error_errno(err, "open %s", sock_dir);
	if (state_dir) {
		state_fd = open(state_dir, O_PATH | O_DIRECTORY | O_CLOEXEC);
		if (state_fd < 0)
			return al_error_errno(err, "open %s", state_dir);
	}
	if (mount("airlock-gateway", STAGE, "tmpfs", MS_NOSUID | MS_NODEV | MS_NOEXEC,
	          "mode=0755,size=64k") < 0)
		return al_error_errno(err, "mount a tmpfs on " STAGE);
	r = bind_into(sock_fd, STAGE, sock_dir, true, err);
	if (r == 0 && state_dir)
		r = bind_into(state_fd, STAGE, state_dir, false, err);
	if (r < 0)
		return r;
	if (chdir(STAGE) < 0)
		return al_error_errno(err, "chdir " STAGE);
	if (syscall(SYS_pivot_root, ".", ".") < 0)
		return al_error_errno(err, "pivot_root");
	/* The old root is stacked under the new one at "/": detach it. */
	if (umount2(".", MNT_DETACH) < 0)
		return al_error_errno(err, "detach the host's root");
	if (chdir("/") < 0)
		return al_error_errno(err, "chdir /");
	if (mount(NULL, "/", NULL, MS_REMOUNT | MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC,
	          NULL) < 0)
		return al_error_errno(err, "remount the gateway's root read-only");
	return 0;
}

static int drop_user(const struct gw_confine *c, struct al_error *err)
{
	gid_t groups[1] = {c->socket_gid};

	if (setgroups(1, groups) < 0)
		return al_error_errno(err, "setgroups");
	if (setresgid(c->gid, c->gid, c->gid) < 0)
		return al_error_errno(err, "setresgid %u", (unsigned)c->gid);
	if (setresuid(c->uid, c->uid, c->uid) < 0)
		return al_error_errno(err, "setresuid %u", (unsigned)c->uid);
	return 0;
}

/* Every capability out of the bounding set, while CAP_SETPCAP is there to do it. */
static int drop_bounding(struct al_error *err)
{
	for (cap_value_t v = 0; v <= CAP_LAST_CAP; v++)
		if (CAP_IS_SUPPORTED(v) && cap_drop_bound(v) < 0)
			return al_error_errno(err, "drop capability %d from the bounding set",
			                      (int)v);
	return 0;
}

/* The ambient set cleared, then every other set emptied. */
static int drop_caps(struct al_error *err)
{
	_cleanup_(cap_freep) cap_t none = NULL;

	if (CAP_AMBIENT_SUPPORTED() && cap_reset_ambient() < 0)
		return al_error_errno(err, "clear the ambient capabilities");
	none = cap_init();
	if (!none)
		return al_error_set(err, ENOMEM, "out of memory");
	if (cap_set_proc(none) < 0)
		return al_error_errno(err, "clear the capabilities");
	return 0;
}

/*
 * What the gateway never does: run programs, trace or reach into other processes, make
 * namespaces or mounts, load kernel code (modules, BPF), touch keys, clocks, swap or
 * the machine itself, change its credentials again.  A deny list on top of the rest
 * (the gateway is libcurl, libmicrohttpd and glibc, whose exact system calls vary
 * between versions): what matters here is what a compromised gateway could use to leave
 * its user, its namespace or its machine.  Refused with EPERM, as a program expects;
 * other architectures' calls kill the process (libseccomp's default).
 */
static const char *const denied_syscalls[] = {
    "execve",
    "execveat",
    "ptrace",
    "process_vm_readv",
    "process_vm_writev",
    "pidfd_getfd",
    "kcmp",
    "mount",
    "umount2",
    "pivot_root",
    "chroot",
    "unshare",
    "setns",
    "mount_setattr",
    "move_mount",
    "open_tree",
    "fsopen",
    "fsconfig",
    "fsmount",
    "fspick",
    "open_by_handle_at",
    "name_to_handle_at",
    "bpf",
    "perf_event_open",
    "userfaultfd",
    "kexec_load",
    "kexec_file_load",
    "init_module",
    "finit_module",
    "delete_module",
    "keyctl",
    "add_key",
    "request_key",
    "reboot",
    "swapon",
    "swapoff",
    "acct",
    "quotactl",
    "quotactl_fd",
    "settimeofday",
    "clock_settime",
    "clock_adjtime",
    "adjtimex",
    "syslog",
    "iopl",
    "ioperm",
    "mknod",
    "mknodat",
    "setuid",
    "setgid",
    "setreuid",
    "setregid",
    "setresuid",
    "setresgid",
    "setfsuid",
    "setfsgid",
    "setgroups",
    "capset",
    "personality",
    "lookup_dcookie",
    "fanotify_init",
    "vhangup",
    "uselib",
    "io_uring_setup",
    "io_uring_enter",
    "io_uring_register",
    "sethostname",
    "setdomainname",
    "chown",
    "fchown",
    "lchown",
    "fchownat",
};

/* New namespaces through clone(2); clone3 hides its flags in memory, so it is refused
 * with ENOSYS, on which glibc falls back to clone. */
static const unsigned long namespace_flags[] = {CLONE_NEWNS,    CLONE_NEWUSER, CLONE_NEWPID,
                                                CLONE_NEWNET,   CLONE_NEWUTS,  CLONE_NEWIPC,
                                                CLONE_NEWCGROUP};

static int install_seccomp(struct al_error *err)
{
	_cleanup_(seccomp_releasep) scmp_filter_ctx ctx = seccomp_init(SCMP_ACT_ALLOW);
	int r;

	if (!ctx)
		return al_error_set(err, ENOMEM, "seccomp_init failed");
	for (size_t i = 0; i < sizeof(denied_syscalls) / sizeof(denied_syscalls[0]); i++) {
		int nr = seccomp_syscall_resolve_name(denied_syscalls[i]);
		if (nr == __NR_SCMP_ERROR)
			continue; /* not on this architecture */
		r = seccomp_rule_add(ctx, SCMP_ACT_ERRNO(EPERM), nr, 0);
		if (r < 0)
			return al_error_set(err, -r, "seccomp rule for %s", denied_syscalls[i]);
	}
	for (size_t i = 0; i < sizeof(namespace_flags) / sizeof(namespace_flags[0]); i++) {
		r = seccomp_rule_add(
		    ctx, SCMP_ACT_ERRNO(EPERM), SCMP_SYS(clone), 1,
		    SCMP_A0(SCMP_CMP_MASKED_EQ, namespace_flags[i], namespace_flags[i]));
		if (r < 0)
			return al_error_set(err, -r, "seccomp rule for clone");
	}
	r = seccomp_rule_add(ctx, SCMP_ACT_ERRNO(ENOSYS), SCMP_SYS(clone3), 0);
	if (r < 0)
		return al_error_set(err, -r, "seccomp rule for clone3");
	r = seccomp_load(ctx);
	if (r < 0)
		return al_error_set(err, -r, "load the seccomp filter");
	return 0;
}

int gw_confine_apply(const struct gw_confine *c, struct al_error *err)
{
	int r;

	if (c->privileged) {
		r = new_root(c, err);
		if (r == 0)
			r = drop_bounding(err);
		if (r == 0)
			r = drop_user(c, err);
		if (r < 0)
			return r;
	} else {
		log_warn("started as uid %u: no user switch and no mount namespace of its own "
		         "(start it as root for those)",
		         (unsigned)getuid());
	}
	r = drop_caps(err);
	if (r < 0)
		return r;
	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0)
		return al_error_errno(err, "no_new_privs");
	r = install_seccomp(err);
	if (r < 0)
		return r;
	log_info("confined: uid %u, gid %u (+%u), no capabilities, no_new_privs, seccomp%s",
	         (unsigned)getuid(), (unsigned)getgid(), (unsigned)c->socket_gid,
	         c->privileged ? ", own read-only root" : "");
	return 0;
}
