/* SPDX-License-Identifier: Apache-2.0 */
#pragma once

/*
 * Helpers: short-lived children of airlockd that do one job on data a
 * sandbox controls (its files, its workspace archives).
 *
 * airlockd is host root and multi-threaded, and holds every sandbox's pidfds,
 * stdio pipes and the API socket.  A helper is a forked, single-threaded
 * child that keeps none of that: only stdio, its error pipe, an output pipe
 * and the one descriptor its job needs.  With a sandbox named, the job runs
 * in a child of the helper made in that sandbox's pid namespace, which
 * joins its mount, network, IPC, UTS and user namespaces and
 * becomes the sandbox's root with only the file capabilities (CHOWN,
 * DAC_OVERRIDE, FOWNER, FSETID), no_new_privs and a seccomp filter that
 * refuses new processes, sockets, mounts, namespaces and the like: what
 * the sandbox's root could not do to a file, the helper cannot do either.
 * A one-shot helper dies with airlockd (PDEATHSIG), so it never finishes a
 * job its client was told failed; a server must watch a descriptor of
 * airlockd's instead (PDEATHSIG follows the thread that forked it).
 */

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include "error.h"
#include "util.h"

/* The job, run in the child.  out_fd is the write end of the output pipe
 * (-1 when no output is collected).  Returns 0 or a negative errno with err
 * filled: its code and message reach the caller. */
typedef int (*helper_fn)(void *arg, int out_fd, struct al_error *err);

struct helper_opts {
	/* The sandbox to act in, by a pidfd of its PID 1 (preferred: it cannot
	 * name a recycled pid), else by host pid; neither (-1 and 0): the job
	 * runs with airlockd's credentials and namespaces, minus its fds. */
	int ns_pidfd;
	pid_t ns_pid;
	/* One descriptor of airlockd the job needs, or -1. */
	int keep_fd;
	/* Cgroup files of the sandbox (v1 "tasks", cgroup2 "cgroup.procs",
	 * opened by airlockd: the kernel checks the opener) that the helper
	 * writes "0" to first, so that its memory (the page cache of what it
	 * writes included), CPU and pid are charged to the sandbox.  At most
	 * HELPER_MAX_CGROUP_FDS. */
	const int *cgroup_fds;
	size_t n_cgroup_fds;
	/* Non-NULL: what the job writes to out_fd is collected here, at most
	 * out_max bytes (beyond: -EFBIG, and the child is killed). */
	struct al_buf *out;
	size_t out_max;
	/* Non-zero: the child is killed after so many milliseconds (-ETIMEDOUT):
	 * a file a sandbox made (a FUSE file, a stuck NFS one) must not hold an
	 * airlockd thread forever. */
	unsigned timeout_ms;
	/* The name used in errors ("file helper", "archive helper"). */
	const char *what;
	/* A client's connection, or -1: once its peer hangs up, the child is
	 * killed (-ECANCELED): work nobody waits for is not finished. */
	int cancel_fd;
};
#define HELPER_MAX_CGROUP_FDS 8
#define HELPER_OPTS_INIT                                                                           \
	{                                                                                          \
		.ns_pidfd = -1, .ns_pid = 0, .keep_fd = -1, .cancel_fd = -1                        \
	}

int helper_run(helper_fn fn, void *arg, const struct helper_opts *o, struct al_error *err);

/* Start fn in a helper that keeps running (a server): returns once the
 * helper is in place (in the sandbox, filtered), with its pid and a pidfd,
 * or with the error that kept it from getting there.  fn gets out_fd -1;
 * the caller reaps the helper (waitpid) once it has ended. */
int helper_start(helper_fn fn, void *arg, const struct helper_opts *o, pid_t *pid, int *pidfd,
                 struct al_error *err);

/*
 * After a helper timed out, before it is killed: where its worker waits
 * (its state and kernel wait channel from /proc), appended to err's
 * message, for whoever finds the hang in a log: a stuck file (a FUSE or NFS
 * wait) reads differently from a stopped worker or one spinning on a lock.
 */
void helper_describe_wait(pid_t helper, const char *what, struct al_error *err);

/*
 * In a helper run without a sandbox (host root): chroot into root, keep
 * only the capabilities writing files of any owner and whiteout devices
 * take (CHOWN, DAC_OVERRIDE, FOWNER, FSETID, MKNOD), no_new_privs, and the
 * helpers' seccomp deny list with mknodat of nothing but a 0:0 character
 * device (an overlayfs whiteout).  An image import's helper (images.c).
 */
int helper_confine_to(const char *root, struct al_error *err);
