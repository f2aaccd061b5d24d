/* SPDX-License-Identifier: Apache-2.0 */
#pragma once

/*
 * One sandbox on the host: the object airlockd keeps for it, its state
 * directory, starting and stopping it, and the ways into it.  Nothing here
 * knows of other sandboxes: names, uid slots, the warm pool and the reaper
 * are the daemon's (daemon/lifecycle.h), which calls down into this layer
 * and is never called back.
 *
 * A sandbox's host-side state lives in state/sandboxes/ID, a tmpfs of its
 * own (the disk cap), and only this layer reads or writes it:
 *
 *   config.json    what airlock-init needs to build the sandbox (spawn.c)
 *   state.json     written (atomically) only once the sandbox is ready; its
 *                  absence after a crash marks a half-made sandbox
 *   manifest.json  the manifest it was made from (ephemeral entries, snapshots)
 *   last_snapshot  id of the newest snapshot of it: the parent of the next
 *   upper/ work/   the private writable layer of the overlay
 *   root/          where the root is attached, in the sandbox's mount namespace only
 *
 * Every process of a sandbox lives in its cgroups, so destroying the cgroups
 * is the authoritative way to make sure nothing of it survives.
 */

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include <cjson/cJSON.h>

#include "error.h"
#include "host.h"
#include "spec.h"
#include "uidslots.h" /* AIRLOCK_UID_* */

struct al_process;
struct output_budget;

struct sandbox_proc {
	char id[16]; /* "p1", "p2", ... */
	struct al_process *p;
};

struct sandbox {
	pthread_mutex_t lock; /* guards procs, next_proc, destroying */
	int refs;             /* atomic */

	char id[16];
	char created[32];
	/* Wall-clock seconds (kept in state.json) of its creation, and of its
	 * last exec or file operation (atomic; not kept: a restarted airlockd
	 * counts idleness from its start), for ttl and idle_timeout. */
	int64_t created_unix;
	int64_t active_unix;
	int requests; /* atomic: API requests working in it now (exec, files) */
	/* OOM kills already blamed for a command's SIGKILL (lock held). */
	uint64_t oom_kills_reported;
	struct sandbox_spec spec; /* spec.name: as given, else the id */

	pid_t init_pid;                /* host pid of airlock-init */
	unsigned long long init_start; /* start time from /proc/PID/stat, guards pid reuse */
	int pidfd;
	bool our_child; /* we forked it (not reattached after a restart) */
	uint32_t uid_slot;
	uid_t uid_base;
	/* Its link's IPv4 address and gateway, host order; 0 without one (set
	 * by the daemon's network code, daemon/network.h). */
	uint32_t net_addr, net_gw;
	char *dir; /* state/sandboxes/ID */

	bool destroying;
	/* The fields below are the daemon's (guarded by its registry lock):
	 * killed and queued for teardown, hidden from lookups and name checks
	 * while its uid range stays taken; frozen by that destroy; in the warm
	 * pool, hidden from the API until claimed. */
	bool reaping;
	bool frozen;
	bool pooled;
	struct sandbox_proc *procs;
	size_t n_procs;
	unsigned next_proc;
	struct output_budget *output; /* what its processes' output may hold (process.h) */
	struct file_server *files;    /* its file server, once one was needed (files.c) */
	/* The daemon's, which outlives every sandbox: the file helpers join
	 * the sandbox's cgroups through it. */
	const struct sandbox_host *host;
};

/* Bounds of what a sandbox's processes hold in airlockd: processes kept for
 * a client (running with a yield, or ended and not yet collected), bytes
 * of output waiting for one (each stream may hold 64 KiB beyond it, and
 * all sandboxes together 1 GiB: process.c), and how long an ended
 * process's result waits. */
#define SANDBOX_MAX_PROCESSES 256
#define SANDBOX_OUTPUT_MAX (128ULL << 20)
#define SANDBOX_PROCESS_KEEP_MS (10 * 60 * 1000)

/* A new sandbox object (one reference) for id, with the spec moved into it
 * (*spec is left empty); dir is state/sandboxes/ID. */
struct sandbox *sandbox_new(const struct sandbox_host *host, const char *id,
                            struct sandbox_spec *spec, struct al_error *err);
void sandbox_ref(struct sandbox *sb);
void sandbox_unref(struct sandbox *sb);

static inline void sandbox_unrefp(struct sandbox **sb)
{
	sandbox_unref(*sb);
}
#define _cleanup_sandbox_ __attribute__((cleanup(sandbox_unrefp)))

/* Stamp created_unix and active_unix with now (a sandbox made or adopted). */
void sandbox_touch_created(struct sandbox *sb);
/* Note activity (an exec, a file operation) for its idle_timeout. */
void sandbox_touch(struct sandbox *sb);
/* Why sb is due to be destroyed at wall-clock second now: "ttl",
 * "idle_timeout", or NULL when it is not. */
const char *sandbox_expired(const struct sandbox *sb, int64_t now);
/* When it expires (the earlier of ttl and idle_timeout), or 0: never. */
int64_t sandbox_expires_at(const struct sandbox *sb);

/* True while PID 1 of the sandbox is alive. */
bool sandbox_running(const struct sandbox *sb);

/* ---- starting ---------------------------------------------------------------------------- */

/*
 * How PID 1 comes to life in a sandbox whose directories and cgroups are
 * made: spawned fresh (spawn.c), or brought back with its processes from
 * CRIU's images (criu.c).  The daemon chooses; this layer only follows.
 */
struct sandbox_start {
	int (*start)(const struct sandbox_host *host, struct sandbox *sb,
	             const struct sandbox_start *how, struct al_error *err);
	const char *criu_images; /* for sandbox_start_criu */
	int layer_fd;            /* a writable-layer tar to unpack first, or -1 */
};

int sandbox_start_fresh(const struct sandbox_host *host, struct sandbox *sb,
                        const struct sandbox_start *how, struct al_error *err);
int sandbox_start_criu(const struct sandbox_host *host, struct sandbox *sb,
                       const struct sandbox_start *how, struct al_error *err);

/*
 * Build the sandbox on the host: its state directory (a tmpfs of the disk
 * cap), the workspace with the manifest materialised or the layer
 * unpacked, its cgroups, then PID 1 as how says, and state.json last.  On
 * failure, what was made stays for sandbox_remove_remains() (the caller's).
 */
int sandbox_build(const struct sandbox_host *host, struct sandbox *sb,
                  const struct sandbox_start *how, struct al_error *err);

/* Write state.json again (after a change the daemon made: claimed from the pool). */
int sandbox_save_state(const struct sandbox *sb, struct al_error *err);

/* Read back sandbox id from its state.json (after an airlockd restart);
 * -ENOENT when it has none (half-made or being destroyed). */
int sandbox_load(const struct sandbox_host *host, const char *id, struct sandbox **out,
                 struct al_error *err);

/* Reattach: a pidfd for PID 1 if it is still the process state.json names. */
bool sandbox_reattach(struct sandbox *sb);

/* ---- stopping ----------------------------------------------------------------------------- */

/* SIGKILL to PID 1 (nothing when not ours or gone). */
void sandbox_kill(struct sandbox *sb);

/* SIGKILL to PID 1 and wait (bounded, for a reattached one) until it is gone. */
void sandbox_kill_wait(struct sandbox *sb);

/* Drop state.json: from now on a restarted airlockd takes it for half-made. */
void sandbox_forget_state(struct sandbox *sb);

/* Take the process table (the caller unrefs each entry and frees it). */
struct sandbox_proc *sandbox_take_procs(struct sandbox *sb, size_t *n);

/* Remove everything of sandbox id that may exist on the host: cgroups (and
 * with them every process), the tmpfs, the state directory.  Safe on a
 * half-made sandbox and on one that has no object any more. */
int sandbox_remove_remains(const struct sandbox_host *host, const char *id, struct al_error *err);

/* ---- files of the state directory ------------------------------------------------------- */

/* manifest.json's text, or NULL when there is none. */
char *sandbox_read_manifest(const struct sandbox *sb);
/* The id of the newest snapshot of the sandbox, or NULL. */
char *sandbox_read_last_snapshot(const struct sandbox *sb);
int sandbox_write_last_snapshot(const struct sandbox *sb, const char *id, struct al_error *err);
/* Path of the writable layer's upper directory, into buf. */
void sandbox_upper_path(const struct sandbox *sb, char *buf, size_t len);

/* ---- ways in ---------------------------------------------------------------------------- */

/* Write-only fds of the sandbox's cgroup files that a helper writes "0" to
 * in order to join them (helper.h): v1 "tasks", cgroup2 "cgroup.procs".
 * Returns how many were stored (at most max); the caller closes them. */
int sandbox_open_cgroup_joins(const struct sandbox_host *host, const struct sandbox *sb, int *fds,
                              size_t max, struct al_error *err);

/* ---- the file API (files.c) ---------------------------------------------------------------
 *
 * Relative paths are from the workspace.  While the sandbox runs, each
 * operation is done with its root's credentials inside its namespaces, by
 * its file server; once PID 1 is gone, its writable layer can be read and
 * listed, not changed (-ESRCH).  Errors as in fsops.h. */
int sandbox_file_read(struct sandbox *sb, const char *path, size_t max, char **data, size_t *len,
                      struct al_error *err);
/* As sandbox_file_read, but a file on a filesystem whose reads cannot wait
 * (tmpfs, overlay, local disks) comes as its open fd (*fd, *fd_len bytes, no
 * bound), for sendfile(2); others as *data (at most max bytes), *fd -1. */
int sandbox_file_open_read(struct sandbox *sb, const char *path, size_t max, int *fd,
                           uint64_t *fd_len, char **data, size_t *len, struct al_error *err);
/* A file's content streamed in as it arrives (len bytes, announced): begin,
 * write every piece (a failure is remembered, not reported), end for the
 * result; free in any case (before end: the file is left as it was). */
struct sandbox_upload;
int sandbox_upload_begin(struct sandbox *sb, const char *path, uint64_t len, mode_t mode,
                         bool parents, struct sandbox_upload **out, struct al_error *err);
void sandbox_upload_write(struct sandbox_upload *u, const void *data, size_t len);
int sandbox_upload_end(struct sandbox_upload *u, struct al_error *err);
void sandbox_upload_free(struct sandbox_upload *u);
/* The len bytes of src_fd (from its start) as the file's content. */
int sandbox_file_write(struct sandbox *sb, const char *path, int src_fd, uint64_t len, mode_t mode,
                       bool parents, struct al_error *err);
int sandbox_file_remove(struct sandbox *sb, const char *path, bool recursive, struct al_error *err);
int sandbox_dir_make(struct sandbox *sb, const char *path, bool parents, struct al_error *err);
int sandbox_dir_list(struct sandbox *sb, const char *path, cJSON **listing, struct al_error *err);
/* End the file server (before a checkpoint, at a kill); the next operation
 * starts another. */
void sandbox_files_stop(struct sandbox *sb);
/* The same, and free what the server needed (sandbox_free). */
void sandbox_files_free(struct sandbox *sb);

/* How long airlockd waits on a sandbox's PID 1 for any one step. */
#define SANDBOX_INIT_TIMEOUT_S 10

/* A new connection to the sandbox's airlock-init; its sends and receives
 * time out after SANDBOX_INIT_TIMEOUT_S (-ETIMEDOUT). */
int sandbox_connect_init(const struct sandbox *sb, struct al_error *err);

/* One request of type (initproto.h) to PID 1 that it answers with PONG; returns
 * the connection, still open. */
int sandbox_call_init(const struct sandbox *sb, uint8_t type, struct al_error *err);

/* A new connection on which PID 1 has answered a PING (see lifecycle.c). */
int sandbox_ping_init(const struct sandbox *sb, struct al_error *err);

/* Write the uid and gid maps of the user namespace of pid: its root is
 * base on the host, for AIRLOCK_UID_RANGE ids. */
int sandbox_write_id_maps(pid_t pid, uid_t base, struct al_error *err);
/* Set the per-namespace ceilings (/proc/sys/user/ inside) of the user
 * namespace of pid, which its sandbox's host uid owns (spawn.c). */
int sandbox_bound_userns(pid_t pid, struct al_error *err);

/* Process table of a sandbox (ids "p1", "p2", ...). */
int sandbox_add_process(struct sandbox *sb, struct al_process *p, char *id_out, size_t id_len);
struct al_process *sandbox_take_process(struct sandbox *sb, const char *pid, bool remove);
/* Put p in the table under id (one an earlier airlockd gave it). */
int sandbox_adopt_process(struct sandbox *sb, struct al_process *p, const char *id);

/* ---- views (inspect.c) ------------------------------------------------------------------- */

cJSON *sandbox_summary_json(const struct sandbox *sb);
int sandbox_inspect_json(const struct sandbox_host *host, struct sandbox *sb, cJSON **out,
                         struct al_error *err);

/* {"processes": [{pid, ppid, uid, state, rss_bytes, cpu_seconds, command, host_pid}]}: those
 * of its pid namespace, pids and uids as the sandbox sees them, by pid (top.c).  -ESRCH when
 * it is not running. */
int sandbox_processes_json(const struct sandbox *sb, cJSON **out, struct al_error *err);
