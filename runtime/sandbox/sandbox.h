/* SPDX-License-Identifier: Apache-2.0 */
#pragma once

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/resource.h>
#include <sys/types.h>

#include <cjson/cJSON.h>

#include "cgroup.h"
#include "error.h"

/* Sandbox root maps to [AIRLOCK_UID_BASE + slot * AIRLOCK_UID_RANGE, +AIRLOCK_UID_RANGE). */
#define AIRLOCK_UID_BASE 1000000000u
#define AIRLOCK_UID_RANGE 65536u
#define AIRLOCK_UID_SLOTS 4096u

struct al_process;
struct reaper;
struct warm_pool;

struct sandbox_proc {
	char id[16]; /* "p1", "p2", ... */
	struct al_process *p;
};

struct sandbox {
	pthread_mutex_t lock; /* guards procs, next_proc, destroying */
	int refs;             /* atomic */

	char id[16];
	char name[64];
	char created[32];
	char *rootfs;
	char *workspace;
	char profile[64];
	char **env; /* default environment, "K=V", NULL-terminated */
	struct cgroup_limits limits;
	uint64_t disk_bytes; /* size of the tmpfs holding the writable layer */

	pid_t init_pid;                /* host pid of airlock-init */
	unsigned long long init_start; /* start time from /proc/PID/stat, guards pid reuse */
	int pidfd;
	bool our_child; /* we forked it (not reattached after a restart) */
	uint32_t uid_slot;
	uid_t uid_base;
	char *dir; /* state/sandboxes/ID */

	bool destroying;
	/* Killed and queued for teardown (reaper.c): hidden from lookups and
	 * name checks, but its uid range stays taken (ctx->lock). */
	bool reaping;
	/* Frozen by that destroy, to be killed by the reaper (reaper.h). */
	bool frozen;
	bool pooled; /* in the warm pool: hidden from the API until claimed (ctx->lock) */
	struct sandbox_proc *procs;
	size_t n_procs;
	unsigned next_proc;
};

struct daemon_ctx {
	char *state_dir;
	char *sandboxes_dir;
	char *seccomp_cache_dir;
	char *default_rootfs;
	char *profiles_dir;
	int init_memfd;  /* sealed copy of airlock-init, which builds a sandbox */
	char *pid1_path; /* airlock-pid1, PID 1 of a running sandbox (bound in it) */
	/* RLIMIT_NOFILE as airlockd got it: airlockd raises its own soft limit (it
	 * holds an fd per sandbox) and gives sandboxes this one back. */
	struct rlimit sandbox_nofile;
	char *criu_version;   /* NULL when CRIU is not installed */
	char *criu_shim_path; /* preloaded into criu (criu_passcred_shim.c), or NULL */
	struct cgroup_manager *cgroups;

	pthread_mutex_t lock; /* guards the registry and the seccomp cache */
	struct sandbox **sandboxes;
	size_t n_sandboxes;

	struct warm_pool *pool; /* pre-created sandboxes (pool.c), or NULL */
	struct reaper *reaper;  /* tears destroyed sandboxes down (reaper.c), or NULL */
	pthread_cond_t reaped;  /* broadcast (with ctx->lock) when one leaves the registry */
};

/* Load the daemon's state: reattach to running sandboxes, clean half-made ones. */
int sandbox_registry_load(struct daemon_ctx *ctx, struct al_error *err);

/*
 * Create a sandbox from a create request (see docs/api.md).  Returns a
 * reference.  Only a trusted (root) client may name host paths: local_file
 * and local_dir entries, or a rootfs outside the directory of the default
 * rootfs; airlockd reads them as root, so allowing it to members of the
 * socket's group would hand them every file on the host.
 */
int sandbox_create(struct daemon_ctx *ctx, const cJSON *req, bool trusted, struct sandbox **out,
                   struct al_error *err);

/* A sandbox made from a snapshot (snapshot.c). */
struct sandbox_restore {
	int layer_fd;            /* writable-layer tar put into the new upper layer first, or -1 */
	const char *workspace;   /* the snapshot's workspace root */
	const cJSON *manifest;   /* the snapshot's manifest, or NULL */
	const char *criu_images; /* CRIU images to restore the processes from, or NULL */
};

/* sandbox_create() for a snapshot: req holds what the snapshot recorded (rootfs,
 * limits, env, seccomp_profile) and no manifest; rs says what to restore. */
int sandbox_create_restored(struct daemon_ctx *ctx, const cJSON *req, bool trusted,
                            const struct sandbox_restore *rs, struct sandbox **out,
                            struct al_error *err);

/*
 * The warm pool's side of creation (pool.c).  A pooled sandbox is made
 * exactly as for an empty create request, marked pooled (in memory and in
 * state.json, so a restarted airlockd removes it) and invisible to the API.
 * sandbox_poolable() says whether a create request can be served by one:
 * only requests whose every field matches what a pooled sandbox already
 * has, or can still take (env); anything else goes the normal way.
 * sandbox_adopt() hands a pooled sandbox to such a request.
 */
int sandbox_create_pooled(struct daemon_ctx *ctx, struct sandbox **out, struct al_error *err);
bool sandbox_poolable(struct daemon_ctx *ctx, const cJSON *req);
int sandbox_adopt(struct daemon_ctx *ctx, struct sandbox *sb, const cJSON *req,
                  struct al_error *err);

/* Look up by id or name (pooled sandboxes are not found); returns a new reference or NULL. */
struct sandbox *sandbox_get(struct daemon_ctx *ctx, const char *id);
void sandbox_ref(struct sandbox *sb);
void sandbox_unref(struct sandbox *sb);

/*
 * Destroy the sandbox: with wait, kill it and tear it down (cgroups, mounts
 * and state directory gone) before returning; without, stop it (frozen, or
 * killed) and leave the rest to the reaper (reaper.h).
 */
int sandbox_destroy(struct daemon_ctx *ctx, struct sandbox *sb, bool wait, struct al_error *err);

/* The reaper's half of a destroy: wait for PID 1 to be gone, remove what is
 * left on the host and the registry entry. */
int sandbox_teardown(struct daemon_ctx *ctx, struct sandbox *sb, struct al_error *err);

/* True while PID 1 of the sandbox is alive. */
bool sandbox_running(const struct sandbox *sb);

cJSON *sandbox_summary_json(const struct sandbox *sb);
int sandbox_inspect_json(struct daemon_ctx *ctx, struct sandbox *sb, cJSON **out,
                         struct al_error *err);

/* An O_PATH fd of the sandbox's root directory, as its processes see it. */
int sandbox_open_root(const struct sandbox *sb, struct al_error *err);

/* A new connection to the sandbox's airlock-init. */
int sandbox_connect_init(const struct sandbox *sb, struct al_error *err);

/* Write the uid and gid maps of the user namespace of pid: its root is
 * base on the host, for AIRLOCK_UID_RANGE ids. */
int sandbox_write_id_maps(pid_t pid, uid_t base, struct al_error *err);

/* A new connection on which PID 1 has answered a PING (see snapshot.c). */
int sandbox_ping_init(const struct sandbox *sb, struct al_error *err);

/* Process table of a sandbox (ids "p1", "p2", ...). */
int sandbox_add_process(struct sandbox *sb, struct al_process *p, char *id_out, size_t id_len);
struct al_process *sandbox_take_process(struct sandbox *sb, const char *pid, bool remove);
