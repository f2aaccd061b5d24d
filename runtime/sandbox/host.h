/* SPDX-License-Identifier: Apache-2.0 */
#pragma once

/*
 * What airlockd knows of the host it makes sandboxes on: paths, the
 * programs it starts, the cgroup manager.  Filled once at start-up and read
 * only after, by every thread, without a lock.  The daemon's changing state
 * (the registry, the pool, the reaper) is not here: it lives above, in
 * daemon/daemon.h, and the layers below never see it.
 */

#include <sys/resource.h>

struct cgroup_manager;

struct sandbox_host {
	char *state_dir;
	char *sandboxes_dir;     /* state/sandboxes: one directory per sandbox */
	char *seccomp_cache_dir; /* state/seccomp: compiled profiles */
	char *default_rootfs;
	char *images_dir; /* the image store (images.h) */
	char *profiles_dir;
	int init_memfd;       /* sealed copy of airlock-init, which builds a sandbox */
	char *pid1_path;      /* airlock-pid1, PID 1 of a running sandbox */
	char *pid1_bind_path; /* its copy that is bound in sandboxes (airlockd.c) */
	/* RLIMIT_NOFILE as airlockd got it: airlockd raises its own soft limit (it
	 * holds an fd per sandbox) and gives sandboxes this one back. */
	struct rlimit sandbox_nofile;
	char *criu_version;   /* NULL when CRIU is not installed */
	char *criu_shim_path; /* preloaded into criu (criu_passcred_shim.c), or NULL */
	struct cgroup_manager *cgroups;
	/* A pidfd of airlockd itself: readable once it is gone, which its
	 * children check (spawn.c) to die with it. */
	int daemon_pidfd;
};
