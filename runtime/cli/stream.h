/* SPDX-License-Identifier: Apache-2.0 */
#pragma once

/*
 * `airlock exec -i/-t` and `run -i/-t`: the command over one streamed exec
 * connection (docs/api.md, "Streamed exec and terminals"), with the local
 * terminal in raw mode for -t.
 */

#include <stdbool.h>

#include "error.h"

struct stream_opts {
	const char *socket_path;
	const char *path; /* "/v1/sandboxes/ID/exec", escaped */
	const char *body; /* the exec request (JSON), tty and window size included */
	bool tty;         /* -t: raw mode here, SIGWINCH sent on as a resize */
	bool stdin;       /* -i: stdin streamed */
};

/* The local terminal's size, for the request; false when stdin and stdout are no terminal. */
bool stream_window_size(unsigned *rows, unsigned *cols);

/*
 * Run the exec of o->body and relay until its exit.  Returns the command's
 * exit status (128+N when it died of signal N, 124 when airlockd killed it
 * on timeout), or a negative errno with err filled.  The local terminal is
 * restored before it returns, whatever happened.  SIGINT, SIGTERM and SIGHUP
 * that reach the CLI are sent on to the command (a second one as KILL).
 */
int stream_exec(const struct stream_opts *o, struct al_error *err);

/* A connection of its own to airlockd's socket at path (for traffic that does
 * not go through libcurl: splice and upgrades); the descriptor, or -errno. */
int stream_connect(const char *path, struct al_error *err);
