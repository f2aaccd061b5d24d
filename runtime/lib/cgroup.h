/* SPDX-License-Identifier: Apache-2.0 */
#pragma once

/*
 * The cgroup manager: one set of cgroups per sandbox, on whatever layout the
 * host has.
 *
 *   v2      one cgroup2 tree:        <cgroup2>/airlock/<id>
 *   v1      one tree per controller: <ctrl mount>/airlock/<id> for memory,
 *           pids, cpu, freezer and cpuset (co-mounted hierarchies such as
 *           cpu,cpuacct share one directory)
 *   hybrid  v1 controllers as above, plus a cgroup2 tree without the
 *           controllers we need.  Limits go to v1; the sandbox also gets
 *           <cgroup2>/airlock/<id> so that cgroup.kill reaches every task.
 *
 * The layout is detected from mountinfo (never from guessed paths), so tests
 * can point the manager at a fake mountinfo whose mount points are temporary
 * directories.
 */

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include <cjson/cJSON.h>

#include "error.h"

enum cgroup_mode { CGROUP_MODE_V2, CGROUP_MODE_V1, CGROUP_MODE_HYBRID };

struct cgroup_limits {
	uint64_t memory_bytes; /* 0 = unlimited; swap is forbidden when set */
	uint64_t pids;         /* 0 = unlimited; counts every task (threads too) */
	double cpus;           /* 0 = unlimited; CFS quota over a 100 ms period */
};

/* Opaque: the detected mode and the mount point of each hierarchy. */
struct cgroup_manager;

/* Parse mountinfo (NULL = /proc/self/mountinfo) and detect the layout.
 * -ENOENT when no usable cgroup hierarchy is mounted. */
int cgroup_manager_open(const char *mountinfo_path, struct cgroup_manager **out,
                        struct al_error *err);
void cgroup_manager_free(struct cgroup_manager *m);

/*
 * The directory under each hierarchy that holds the sandboxes ("airlock" by
 * default).  Daemons with different state directories use different roots
 * so that one never takes the other's sandboxes for orphans.
 */
int cgroup_manager_set_root(struct cgroup_manager *m, const char *name, struct al_error *err);

enum cgroup_mode cgroup_manager_mode(const struct cgroup_manager *m);

/* "v2", "v1", "hybrid". */
const char *cgroup_mode_name(enum cgroup_mode mode);

/* Mount point used for a controller ("memory", "pids", "cpu", "freezer",
 * "cpuset") or for the cgroup2 tree ("unified"); NULL when not mounted.  On
 * pure v2 every controller name maps to the cgroup2 mount point. */
const char *cgroup_manager_mount(const struct cgroup_manager *m, const char *controller);

/* Create the sandbox's cgroups (idempotent: existing ones are reused and get
 * the new limits) and set the limits.  A limit whose controller is missing is
 * -ENOTSUP.  On failure, the directories this call created are removed. */
int cgroup_create(struct cgroup_manager *m, const char *id, const struct cgroup_limits *limits,
                  struct al_error *err);

/* Move pid (its whole thread group) into every cgroup of the sandbox. */
int cgroup_enter(struct cgroup_manager *m, const char *id, pid_t pid, struct al_error *err);

/*
 * For a new process that joins the sandbox's v1 cgroups itself, before it
 * execs: write-only fds of the "tasks" file of each v1 hierarchy (none on
 * pure v2), to which the process writes "0".  Moving a single thread skips
 * the kernel's global threadgroup lock that a cgroup.procs write takes;
 * its RCU grace period makes the first such write after an idle spell cost
 * ~10 ms.  The kernel checks the opener's credentials, not the writer's.
 * Returns how many fds were stored in fds (at most max; the caller closes
 * them); the cgroup2 tree of a hybrid layout is left to cgroup_open_v2_dir.
 */
int cgroup_open_join_fds(struct cgroup_manager *m, const char *id, int *fds, size_t max,
                         struct al_error *err);

/* Write-only fds of every cgroup of sandbox id that a helper joins ("tasks"
 * of each v1 hierarchy, "cgroup.procs" of the cgroup2 one) but the one
 * whose directory is skip (a frozen group, as cgroup_freeze names it), or
 * all when skip is NULL.  Returns how many (at most max); the caller
 * closes them. */
int cgroup_open_joins_but(struct cgroup_manager *m, const char *id, const char *skip, int *fds,
                          size_t max, struct al_error *err);

/* As cgroup_open_joins_but, leaving out the group cgroup_freeze freezes
 * (none on a cgroup2-only host, where that is the sandbox's one group): for
 * a helper that may still be at work when a snapshot freezes the sandbox,
 * and that neither CRIU nor the freeze must find there. */
int cgroup_open_joins_unfrozen(struct cgroup_manager *m, const char *id, int *fds, size_t max,
                               struct al_error *err);

/* For each hierarchy holding the sandbox's cgroup, "CONTROLLER:/path" (the
 * path from the hierarchy's root), as `criu restore --cgroup-root` takes it. */
int cgroup_criu_roots(struct cgroup_manager *m, const char *id, char ***out, struct al_error *err);

/*
 * Every cgroup hierarchy process pid is in, as /proc/PID/cgroup names its
 * controllers ("" for cgroup2, "memory", "cpu,cpuacct", "name=systemd"), and
 * a mount point of its root in mountinfo_path (NULL = /proc/self/mountinfo),
 * the conventional one if there are several: two NULL-terminated lists,
 * index for index.  -ENOENT when a hierarchy has no such mount.
 */
int cgroup_hierarchy_mounts(const char *mountinfo_path, pid_t pid, char ***controllers,
                            char ***mounts, struct al_error *err);

/*
 * Freeze (frozen) or thaw every task of the sandbox, with the v1 freezer or
 * cgroup2's cgroup.freeze, for a CRIU dump: freezing returns once the group
 * is frozen with no vfork() in flight, which CRIU cannot dump (it thaws and
 * tries again meanwhile).  Fails, thawed: -ETIMEDOUT if the group would not
 * freeze within 1 s, -EBUSY if two processes still share an address space
 * after 1 s of tries (the last try may take another second to freeze).
 * path, if not NULL, gets the freezer's directory.  -ENOTSUP when the host
 * has no freezer.
 */
int cgroup_freeze(struct cgroup_manager *m, const char *id, bool frozen, char **path,
                  struct al_error *err);

/* Ask the freezer to freeze every task of the sandbox and return at once:
 * like a SIGKILL, it takes effect before any of them runs user code again.
 * -ENOTSUP when the host has no freezer. */
int cgroup_freeze_start(struct cgroup_manager *m, const char *id, struct al_error *err);

/* For clone3(CLONE_INTO_CGROUP) on v2 and on the cgroup2 tree of a hybrid
 * layout: an O_PATH|O_DIRECTORY|O_CLOEXEC fd of the sandbox's cgroup2
 * directory (the caller closes it); -ENOTSUP on pure v1. */
int cgroup_open_v2_dir(struct cgroup_manager *m, const char *id, struct al_error *err);

/* The effective cgroup state, read back from the kernel files:
 * {"mode":"hybrid","paths":{"memory":"…/memory/airlock/ID",…},
 *  "limits":{"memory_bytes":N|null,"pids":N|null,"cpus":X|null},
 *  "usage":{"memory_bytes":N|null,"pids":N|null,"cpu_seconds":X|null},
 *  "events":{"oom_kill":N|null,"pids_max":N|null}}
 * -ENOENT when the sandbox has no cgroup at all. */
int cgroup_describe(struct cgroup_manager *m, const char *id, cJSON **out, struct al_error *err);

/* Kill every task of the sandbox (cgroup.kill where the kernel has it;
 * otherwise freeze, SIGKILL, thaw, repeat), wait until the cgroups are empty
 * (at most 5 s, then -EBUSY) and remove them, nested cgroups included.
 * Missing cgroups are fine: destroying twice succeeds. */
int cgroup_destroy(struct cgroup_manager *m, const char *id, struct al_error *err);

/* Sorted, NULL-terminated ids of the sandbox cgroups that exist under the
 * airlock root of any hierarchy (crash cleanup).  Free with the strv cleanup. */
int cgroup_list(struct cgroup_manager *m, char ***ids, struct al_error *err);

/* Remove the sandboxes' root cgroup in every hierarchy if nothing is left in it. */
int cgroup_remove_root_if_empty(struct cgroup_manager *m, struct al_error *err);
