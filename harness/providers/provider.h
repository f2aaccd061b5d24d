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
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <cjson/cJSON.h>

#include "error.h"

struct al_provider;

/* What a new sandbox is made from. */
struct al_sandbox_spec {
	const char *name;        /* a label for humans and for finding it again; may be NULL */
	const cJSON *manifest;   /* the task's manifest, passed through */
	const char *rootfs;      /* provider-specific base image; NULL: the default */
	uint64_t memory_bytes;   /* 0: provider default */
	int64_t pids;            /* 0: provider default */
	double cpus;             /* 0: provider default */
	const cJSON *env;        /* the task's env object, or NULL */
	const char *snapshot_id; /* non-NULL: restore this snapshot instead of building fresh */
};

struct al_exec_request {
	const char *const *argv;   /* NULL-terminated */
	const char *workdir;       /* NULL: the workspace root */
	bool keep_stdin_open;      /* the process may be fed later with write_stdin */
	uint64_t yield_ms;         /* return after this long even if still running */
	uint64_t max_output_bytes; /* per stream; beyond it output is dropped */
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

	/* Set up a client from the task's provider block (never from the environment's secrets). */
	int (*open)(const cJSON *options, struct al_provider **out, struct al_error *err);
	void (*close)(struct al_provider *p);

	/* Make a sandbox; *id receives its provider id. */
	int (*create)(struct al_provider *p, const struct al_sandbox_spec *spec, char **id,
	              struct al_error *err);
	/* Find a sandbox again: by id, or (id NULL) by the name given at create.  *found_id is
	 * the id when one exists; *running tells whether it can run commands. -ENOENT: none. */
	int (*resume)(struct al_provider *p, const char *id, const char *name, char **found_id,
	              bool *running, struct al_error *err);

	int (*exec)(struct al_provider *p, const char *id, const struct al_exec_request *req,
	            struct al_exec_result *res, struct al_error *err);
	/* Feed a running process (data may be empty: a poll) and collect what it printed. */
	int (*write_stdin)(struct al_provider *p, const char *id, const char *process_id,
	                   const char *data, size_t len, uint64_t yield_ms,
	                   struct al_exec_result *res, struct al_error *err);
	/* Send a signal (by name: "INT", "TERM", "KILL") to a running process. */
	int (*kill)(struct al_provider *p, const char *id, const char *process_id,
	            const char *signame, struct al_error *err);

	/* Files; relative paths are relative to the workspace root. */
	int (*read)(struct al_provider *p, const char *id, const char *path, size_t max,
	            char **data, size_t *len, struct al_error *err);
	int (*write)(struct al_provider *p, const char *id, const char *path, const void *data,
	             size_t len, struct al_error *err);
	int (*remove)(struct al_provider *p, const char *id, const char *path,
	              struct al_error *err);
	int (*list)(struct al_provider *p, const char *id, const char *path,
	            struct al_dir_entry **entries, size_t *n, struct al_error *err);

	/* The workspace as a tar archive on the harness's side, and back. */
	int (*persist_workspace)(struct al_provider *p, const char *id, const char *archive_path,
	                         struct al_error *err);
	int (*hydrate_workspace)(struct al_provider *p, const char *id, const char *archive_path,
	                         struct al_error *err);
	/* A point-in-time copy of the sandbox (workspace, and processes where the provider
	 * can); give *snapshot_id to create (spec.snapshot_id) to come back to it. */
	int (*snapshot)(struct al_provider *p, const char *id, bool processes, char **snapshot_id,
	                struct al_error *err);
	/* Forget a snapshot the run no longer needs (a newer one superseded it); a
	 * snapshot that is already gone is not an error. */
	int (*delete_snapshot)(struct al_provider *p, const char *snapshot_id,
	                       struct al_error *err);

	int (*delete)(struct al_provider *p, const char *id, struct al_error *err);
};

/* Every provider instance starts with this header. */
struct al_provider {
	const struct al_provider_ops *ops;
};

/* The built-in providers by type name; NULL when unknown. */
const struct al_provider_ops *al_provider_lookup(const char *type);

/* True for errors that mean the sandbox or provider is unusable (the run must stop and be
 * resumed), as opposed to errors about the request (shown to the model). */
bool al_provider_error_is_fatal(int r);

void al_dir_entries_free(struct al_dir_entry *e, size_t n);

extern const struct al_provider_ops al_provider_local;
