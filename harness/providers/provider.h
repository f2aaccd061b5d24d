/* SPDX-License-Identifier: Apache-2.0 */
#pragma once

/*
 * The provider interface: the only way the harness reaches a sandbox.
 *
 * One table of operations per provider.  The local provider speaks to airlockd
 * over its Unix socket; hosted providers (E2B, Daytona, Modal, Runloop, Vercel,
 * Cloudflare, Blaxel) are meant to be further tables of the same shape, so the
 * agent loop never changes when one is added.  Every request a provider sends
 * is built from the task's manifest, limits and env alone: nothing of the
 * harness's environment, credentials or model settings may reach it.
 *
 * Errors follow common/error.h.  Codes with a fixed meaning across providers:
 *   -ENOENT      the file or process named does not exist
 *   -EHOSTDOWN   the sandbox is gone or not running
 *   -ECONNREFUSED the provider itself cannot be reached
 *   -ENOTSUP     the provider (or this version of it) lacks the operation
 *
 * A provider's secret (its API key) comes from the credentials file or the environment
 * variable its SDK reads, and is handed to its open() alone: it goes into the
 * Authorization headers of that provider's requests and nowhere else.
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <cjson/cJSON.h>

#include "error.h"

struct al_provider;

/*
 * A sandbox as a provider knows it.  `saved` is the part that outlives the process: a JSON
 * object the provider fills at create/resume (ids, URLs; never a secret), which RunState
 * keeps so that a resumed run finds the sandbox again.  `conn` is the provider's live
 * per-sandbox state (a data-plane token, a toolbox URL), rebuilt by resume.
 */
struct al_sandbox {
	char *id;
	cJSON *saved;
	void *conn;
	void (*conn_free)(void *conn);
};

/* A handle with id and an empty saved object; NULL when out of memory. */
struct al_sandbox *al_sandbox_new(const char *id);
void al_sandbox_free(struct al_sandbox *sb);
static inline void al_sandbox_freep(struct al_sandbox **sb)
{
	al_sandbox_free(*sb);
}

/* What a provider can do, so the loop knows before it calls (-ENOTSUP stays the fallback). */
enum al_provider_caps {
	AL_CAP_PROCESS_SNAPSHOT = 1u << 0, /* snapshots that bring processes back running */
	AL_CAP_FS_SNAPSHOT = 1u << 1,      /* native filesystem snapshots */
	AL_CAP_PTY = 1u << 2,              /* exec on a terminal: one output stream, ^C as a byte */
	AL_CAP_EXPOSED_PORTS = 1u << 3,    /* publishes spec.exposed_ports; resolve_exposed_port */
	AL_CAP_MOUNTS = 1u << 4,
	AL_CAP_WORKSPACE_ARCHIVE = 1u << 5, /* persist/hydrate the workspace as a tar */
};

/* What a new sandbox is made from. */
struct al_sandbox_spec {
	const char *name;        /* a label for humans and for finding it again; may be NULL */
	const cJSON *manifest;   /* the task's manifest, passed through */
	const char *rootfs;      /* provider-specific base image; NULL: the default */
	const char *image;       /* an image imported into airlockd (local); NULL: none */
	uint64_t memory_bytes;   /* 0: provider default */
	int64_t pids;            /* 0: provider default */
	double cpus;             /* 0: provider default */
	const cJSON *env;        /* the task's env object, or NULL */
	const char *snapshot_id; /* non-NULL: restore this snapshot instead of building fresh */
	const cJSON *labels;     /* {K: V} to find it by (airlockd's labels; others ignore it) */
	/* The credentials file's "mounts" for the manifest's bucket mounts, or NULL: the
	 * local provider sends them as "mount_credentials"; hosted ones have no mounts. */
	const cJSON *mount_credentials;
	/* Sandbox ports to publish (the SDK's exposedPorts), for a provider with
	 * AL_CAP_EXPOSED_PORTS; also on a restore from snapshot_id. */
	const uint16_t *exposed_ports;
	size_t n_exposed_ports;
};

struct al_exec_request {
	const char *const *argv;   /* NULL-terminated */
	const char *workdir;       /* NULL: the workspace root */
	bool keep_stdin_open;      /* the process may be fed later with write_stdin */
	uint64_t yield_ms;         /* return after this long even if still running */
	uint64_t max_output_bytes; /* per stream; beyond it output is dropped */
	bool tty; /* on a terminal of the sandbox (only for a provider with AL_CAP_PTY) */
};

/* The state of a process after exec, write_stdin or poll; output is only what is new. */
struct al_exec_result {
	bool running;
	char *process_id; /* set while running */
	int exit_code;
	int signal;
	char *out;
	size_t out_len;
	char *err;
	size_t err_len;
	bool truncated;
};

void al_exec_result_free(struct al_exec_result *r);

/* A directory entry from list. */
struct al_dir_entry {
	char *name;
	char type; /* 'f' file, 'd' dir, 'l' symlink, 'o' other */
	uint64_t size;
};

struct al_provider_ops {
	const char *type;
	unsigned caps; /* enum al_provider_caps */
	/* The keys its task block may hold besides "type" and "keep_sandbox". */
	const char *const *option_keys;

	/* Set up a client from the task's provider block and the provider's key (NULL: none);
	 * the key is the caller's and must be copied if kept. */
	int (*open)(const cJSON *options, const char *api_key, struct al_provider **out,
	            struct al_error *err);
	void (*close)(struct al_provider *p);

	/* Make a sandbox; *out receives its handle. */
	int (*create)(struct al_provider *p, const struct al_sandbox_spec *spec,
	              struct al_sandbox **out, struct al_error *err);
	/* Find a sandbox again: by its saved handle (saved, with id), or (both NULL) by the
	 * name given at create.  *out is its handle when one exists; *running tells whether it
	 * can run commands. -ENOENT: none. */
	int (*resume)(struct al_provider *p, const char *id, const cJSON *saved, const char *name,
	              struct al_sandbox **out, bool *running, struct al_error *err);

	int (*exec)(struct al_provider *p, struct al_sandbox *sb, const struct al_exec_request *req,
	            struct al_exec_result *res, struct al_error *err);
	/* Feed a running process (data may be empty: a poll) and collect what it printed. */
	int (*write_stdin)(struct al_provider *p, struct al_sandbox *sb, const char *process_id,
	                   const char *data, size_t len, uint64_t yield_ms,
	                   struct al_exec_result *res, struct al_error *err);
	/* Send a signal (by name: "INT", "TERM", "KILL") to a running process. */
	int (*kill)(struct al_provider *p, struct al_sandbox *sb, const char *process_id,
	            const char *signame, struct al_error *err);

	/* Files; relative paths are relative to the workspace root. */
	int (*read)(struct al_provider *p, struct al_sandbox *sb, const char *path, size_t max,
	            char **data, size_t *len, struct al_error *err);
	int (*write)(struct al_provider *p, struct al_sandbox *sb, const char *path,
	             const void *data, size_t len, struct al_error *err);
	int (*remove)(struct al_provider *p, struct al_sandbox *sb, const char *path,
	              struct al_error *err);
	int (*list)(struct al_provider *p, struct al_sandbox *sb, const char *path,
	            struct al_dir_entry **entries, size_t *n, struct al_error *err);

	/* The workspace as a tar archive on the harness's side, and back. */
	int (*persist_workspace)(struct al_provider *p, struct al_sandbox *sb,
	                         const char *archive_path, struct al_error *err);
	int (*hydrate_workspace)(struct al_provider *p, struct al_sandbox *sb,
	                         const char *archive_path, struct al_error *err);
	/* A point-in-time copy of the sandbox (workspace, and processes where the provider
	 * can); give *snapshot_id to create (spec.snapshot_id) to come back to it. */
	int (*snapshot)(struct al_provider *p, struct al_sandbox *sb, bool processes,
	                char **snapshot_id, struct al_error *err);
	/* Forget a snapshot the run no longer needs (a newer one superseded it); a
	 * snapshot that is already gone is not an error. */
	/* Optional: the ids of the snapshots taken of sandbox_id (to find one a
	 * run made but was killed before it recorded). */
	int (*list_snapshots)(struct al_provider *p, const char *sandbox_id, char ***ids,
	                      struct al_error *err);
	int (*delete_snapshot)(struct al_provider *p, const char *snapshot_id,
	                       struct al_error *err);
	/* Optional: a snapshot as one file (airlockd's export stream), and such a file made a
	 * snapshot of this provider again (*snapshot_id, a new id), so that it can move to a
	 * remote store and to another machine (docs/storage.md). */
	int (*export_snapshot)(struct al_provider *p, const char *snapshot_id, const char *path,
	                       struct al_error *err);
	int (*import_snapshot)(struct al_provider *p, const char *path, char **snapshot_id,
	                       struct al_error *err);

	int (*delete)(struct al_provider *p, struct al_sandbox *sb, struct al_error *err);

	/* Where a port published at create is reached, as the SDK's ExposedPortEndpoint:
	 * {"host", "port", "tls", "query", "url"} (*endpoint, the caller's).  -ENOENT: the
	 * sandbox does not publish that port.  Only with AL_CAP_EXPOSED_PORTS. */
	int (*resolve_exposed_port)(struct al_provider *p, struct al_sandbox *sb, uint16_t port,
	                            cJSON **endpoint, struct al_error *err);
};

/* Every provider instance starts with this header. */
struct al_provider {
	const struct al_provider_ops *ops;
};

/* The built-in providers by type name; NULL when unknown. */
const struct al_provider_ops *al_provider_lookup(const char *type);
/* "local, e2b, …": the built-in types, and a provider's option keys, for messages. */
const char *al_provider_names(void);
const char *al_provider_option_list(const struct al_provider_ops *ops);
/* The environment variable a provider's SDK reads its key from, and the credentials file's
 * key for it; NULL for a provider without a key (local). */
const char *al_provider_key_env(const char *type);
const char *al_provider_key_field(const char *type);

/* True for errors that mean the sandbox or provider is unusable (the run must stop and be
 * resumed), as opposed to errors about the request (shown to the model). */
bool al_provider_error_is_fatal(int r);

void al_dir_entries_free(struct al_dir_entry *e, size_t n);

extern const struct al_provider_ops al_provider_local;

/* The sandboxes of a local provider (airlockd) whose labels match query
 * ("label=K%3DV", as GET /v1/sandboxes takes it; NULL: all): *out is the
 * answer's array. */
int al_local_list(struct al_provider *p, const char *query, cJSON **out, struct al_error *err);
extern const struct al_provider_ops al_provider_e2b;
extern const struct al_provider_ops al_provider_daytona;
extern const struct al_provider_ops al_provider_cloudflare;
extern const struct al_provider_ops al_provider_blaxel;
extern const struct al_provider_ops al_provider_runloop;
extern const struct al_provider_ops al_provider_vercel;
extern const struct al_provider_ops al_provider_modal;
