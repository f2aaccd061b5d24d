/* SPDX-License-Identifier: Apache-2.0 */
#pragma once

/*
 * HTTP handlers for workspace archives and snapshots (docs/api.md), kept out
 * of api.c.  Each fills a struct api_out that api.c turns into a response, or
 * returns a negative errno with err set (mapped by api.c like any other error).
 */

#include <stdbool.h>
#include <stdint.h>

#include <cjson/cJSON.h>

#include "archives.h"
#include "error.h"
#include "daemon.h"
#include "sandbox.h"

struct api_persist;

struct api_out {
	unsigned status; /* 200, 201 */
	cJSON *json;     /* the body, or NULL when fd is set */
	int fd;          /* a file to send (owned; the response takes it), or -1 */
	uint64_t fd_len;
	struct api_persist *persist; /* or a tar made while it is sent (owned) */
};

#define API_OUT_INIT                                                                               \
	{                                                                                          \
		0, NULL, -1, 0, NULL                                                               \
	}

/*
 * GET /v1/sandboxes/{id}/workspace: the workspace as a tar, streamed: the
 * archive is written (in the sandbox's namespaces and cgroups) into a pipe
 * that the response reads, chunked, as the client takes it; nothing is
 * spooled.  An error before the first byte is answered as an error; one
 * after ends the response without its last chunk, which a client sees as
 * a cut transfer.  The archive helper ends when client_fd (or -1) hangs up.
 */
int api_workspace_get(struct daemon *ctx, struct sandbox *sb, int client_fd, struct api_out *out,
                      struct al_error *err);
/* The response for out->persist (it takes it), or NULL (it is freed). */
struct MHD_Response *api_persist_response(struct api_persist *p);
void api_persist_free(struct api_persist *p);

/* PUT /v1/sandboxes/{id}/workspace: body (spooled in spool_fd) hydrates it. */
int api_workspace_put(struct daemon *ctx, struct sandbox *sb, int spool_fd,
                      const struct tar_limits *limits, struct api_out *out, struct al_error *err);

/*
 * PUT /v1/sandboxes/{id}/workspace, streamed: the extraction starts with
 * the request (in the sandbox's namespaces and cgroups, in a thread of its
 * own) and reads the body from a pipe as it comes, so nothing of the
 * archive is held or spooled.  api_hydrate_start returns the job, whose
 * pipe the body is written to (api_hydrate_fd; a failed write means the
 * extraction stopped: drop the rest); api_hydrate_finish closes the pipe,
 * waits for the extraction and answers as api_workspace_put does;
 * api_hydrate_free (with the connection) ends one never finished.
 */
struct api_hydrate;
int api_hydrate_start(struct daemon *ctx, struct sandbox *sb, const struct tar_limits *limits,
                      struct api_hydrate **out, struct al_error *err);
int api_hydrate_fd(struct api_hydrate *h);
int api_hydrate_finish(struct api_hydrate *h, uint64_t bytes, struct api_out *out,
                       struct al_error *err);
void api_hydrate_free(struct api_hydrate *h);

/* POST /v1/sandboxes/{id}/snapshots {"processes": bool} */
int api_snapshot_create(struct daemon *ctx, struct sandbox *sb, const cJSON *req, int client_fd,
                        struct api_out *out, struct al_error *err);

/* GET /v1/snapshots, DELETE /v1/snapshots/{id} */
int api_snapshots_list(struct daemon *ctx, uid_t client, struct api_out *out, struct al_error *err);
int api_snapshot_delete(struct daemon *ctx, const char *id, uid_t client, struct api_out *out,
                        struct al_error *err);

/* GET /v1/snapshots/{id}/export: the snapshot as one tar stream (snapshot.json, parts/…). */
int api_snapshot_export(struct daemon *ctx, const char *id, uid_t client, struct api_out *out,
                        struct al_error *err);
/* POST /v1/snapshots/import: body (spooled in spool_fd) such a stream, verified, becomes a
 * new snapshot owned by client. */
int api_snapshot_import(struct daemon *ctx, int spool_fd, uid_t client, struct api_out *out,
                        struct al_error *err);

/* Largest snapshot stream POST /v1/snapshots/import takes by default (max_input_bytes). */
#define API_SNAPSHOT_IMPORT_MAX (64ULL << 30)

/* A temp file (already unlinked) in the state directory for a request body. */
int api_spool_open(struct daemon *ctx, struct al_error *err);
