/* SPDX-License-Identifier: Apache-2.0 */
#pragma once

/*
 * The tools the model gets, with the Agents SDK's sandbox capability names, argument
 * schemas and output formats: exec_command and write_stdin (shell), apply_patch and
 * view_image (filesystem).  A bad call (unknown tool, malformed arguments, a patch that
 * does not apply) becomes {"error": "…"} for the model; only a provider failure that
 * leaves the sandbox unusable is returned as an error to the loop.
 */

#include <stdbool.h>
#include <stddef.h>

#include <cjson/cJSON.h>

#include "error.h"
#include "providers/provider.h"

/* Per stream, what one exec answer may carry before the harness cuts it (1 MiB). */
#define AL_TOOL_MAX_OUTPUT_BYTES (1u << 20)
#define AL_TOOL_MAX_IMAGE_BYTES (10u << 20)

struct al_tool_ctx {
	struct al_provider *provider;
	struct al_sandbox *sandbox;
	const char *workspace_root; /* the manifest's root ("/workspace") */
	/* Running exec sessions: {"<session_id>": "<provider process id>", …}, or for one on
	 * a terminal {"<session_id>": {"process_id": "…", "tty": true}}; kept in the RunState
	 * so a resumed run can still talk to them. */
	cJSON *sessions;
	long *next_session_id;
};

struct al_tool_result {
	cJSON *output;  /* a string, or an array of content parts (view_image) */
	bool is_error;  /* output is {"error": …} serialized */
	bool truncated; /* output was cut */
};

void al_tool_result_free(struct al_tool_result *r);

/* The tool definitions in the Responses API's shape. */
cJSON *al_tools_definitions(void);

/* Run one call.  < 0 only when the sandbox or provider failed (the run stops). */
int al_tool_run(struct al_tool_ctx *ctx, const char *name, const char *arguments,
                struct al_tool_result *res, struct al_error *err);

/* ---- exposed for the unit tests and for memory ---- */

/* The SDK's truncateOutput: keep head and tail within max_tokens*4 bytes, with
 * "Total output lines" and "…N tokens truncated…".  *original_tokens is set (>0) when cut. */
char *al_truncate_output(const char *text, size_t len, long max_tokens, long *original_tokens);

/* A file path the model gave, as a path relative to the workspace root: absolute paths
 * must lie under root, ".." may not climb out.  -EINVAL (err names the path) otherwise. */
int al_workspace_path(const char *root, const char *path, char **out, struct al_error *err);

/* The SDK's formatExecResponse; session_id < 0: none; original_tokens <= 0: none. */
char *al_format_exec_response(double wall_seconds, long session_id, int exit_code,
                              long original_tokens, const char *output);
