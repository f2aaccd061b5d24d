/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Part of airlock-criu-shim.so, preloaded into the `criu` process only
 * (criu.c): lets CRIU 4.1.1 dump and restore a sandbox whose user
 * namespace is owned by the sandbox's own host uid rather than host root.
 *
 * Why the owner matters: the kernel charges the per-user counters of a
 * process in a user namespace (inotify instances and watches, queued
 * signals, POSIX message queue bytes: the ucounts) to its uid there and to
 * the namespace's owner in the parent namespace, up to the host.  Owned by
 * host root, every sandbox spent host root's budgets (spawn.c).
 *
 * What stops CRIU, and what this changes, nothing else:
 *
 *  - dump: CRIU reads each task's rlimits with prlimit64(pid, ...), which
 *    for another uid's task wants CAP_SYS_RESOURCE over the task's user
 *    namespace.  Host root has it there only as the namespace's owner, or
 *    through its own CAP_SYS_RESOURCE, which hosts like this one keep out
 *    of root's bounding set (/proc/self/status CapBnd lacks bit 24).  On
 *    EPERM the read is made again with the euid of the namespace's owner
 *    (NS_GET_OWNER_UID): the kernel grants an owner every capability in
 *    the namespaces it owns.
 *
 *  - restore: CRIU makes the user namespace with clone3 (set_tid), and the
 *    kernel makes the euid of the caller its owner.  When criu.c names the
 *    owner (AIRLOCK_USERNS_OWNER), a clone3 with CLONE_NEWUSER is made with
 *    that euid.
 *
 * Both calls come through glibc's syscall(), which is interposed here.  The
 * euid is changed for the calling thread alone (raw setresuid), with the
 * real and saved uids left 0 so it comes back at once, and with it the
 * effective capabilities (the kernel restores them from the permitted set
 * when euid returns to 0).  While it is another uid, criu does nothing but
 * that one call.
 */
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/nsfs.h>
#include <linux/sched.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/ioctl.h>
#include <sys/syscall.h>
#include <unistd.h>

typedef long (*syscall_fn)(long, ...);

static syscall_fn next_syscall(void)
{
	static syscall_fn next;

	if (!next)
		next = (syscall_fn)dlsym(RTLD_NEXT, "syscall");
	return next;
}

/* This thread's euid (real and saved stay 0); fsuid back to 0 with it. */
static int set_euid(syscall_fn sys, long euid)
{
	if (sys(SYS_setresuid, -1L, euid, -1L) < 0)
		return -1;
	sys(SYS_setfsuid, 0L);
	return 0;
}

static void back_to_root(syscall_fn sys)
{
	/* Cannot fail with real uid 0; if it did, criu would go on without
	 * its capabilities: stop it instead. */
	if (set_euid(sys, 0) < 0)
		abort();
}

/* The host uid owning pid's user namespace, or -1. */
static long userns_owner(long pid)
{
	char path[64];
	uid_t owner;
	int fd, r;

	snprintf(path, sizeof(path), "/proc/%ld/ns/user", pid);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -1;
	r = ioctl(fd, NS_GET_OWNER_UID, &owner);
	close(fd);
	return r < 0 ? -1 : (long)owner;
}

static long prlimit_read(syscall_fn sys, long pid, long res, long new_lim, long old_lim)
{
	long r = sys(SYS_prlimit64, pid, res, new_lim, old_lim), owner;
	int e = errno;

	/* Reads of another task's limits only: what a dump does. */
	if (r == 0 || e != EPERM || new_lim != 0 || pid <= 0 || geteuid() != 0)
		return r;
	owner = userns_owner(pid);
	if (owner <= 0 || set_euid(sys, owner) < 0) {
		errno = e;
		return r;
	}
	r = sys(SYS_prlimit64, pid, res, new_lim, old_lim);
	e = errno;
	back_to_root(sys);
	errno = e;
	return r;
}

static long clone3_owned(syscall_fn sys, long args, long size)
{
	const struct clone_args *ca = (const struct clone_args *)(uintptr_t)args;
	const char *text = getenv("AIRLOCK_USERNS_OWNER");
	char *end = NULL;
	unsigned long owner;
	long r;
	int e;

	if (!ca || !(ca->flags & CLONE_NEWUSER) || !text || geteuid() != 0)
		return sys(SYS_clone3, args, size);
	errno = 0;
	owner = strtoul(text, &end, 10);
	if (errno || end == text || *end || owner == 0 || owner >= UINT32_MAX) {
		errno = EINVAL;
		return -1;
	}
	if (set_euid(sys, (long)owner) < 0)
		return -1;
	r = sys(SYS_clone3, args, size);
	if (r == 0)
		return 0; /* the child: its credentials are the new namespace's */
	e = errno;
	back_to_root(sys);
	errno = e;
	return r;
}

long syscall(long nr, ...)
{
	syscall_fn sys = next_syscall();
	long a[6];
	va_list ap;

	if (!sys) {
		errno = ENOSYS;
		return -1;
	}
	va_start(ap, nr);
	for (int i = 0; i < 6; i++)
		a[i] = va_arg(ap, long);
	va_end(ap);
	if (nr == SYS_prlimit64)
		return prlimit_read(sys, a[0], a[1], a[2], a[3]);
	if (nr == SYS_clone3)
		return clone3_owned(sys, a[0], a[1]);
	return sys(nr, a[0], a[1], a[2], a[3], a[4], a[5]);
}
