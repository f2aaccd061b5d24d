/* SPDX-License-Identifier: Apache-2.0 */
#pragma once

/*
 * A streamed exec (docs/api.md, "Streamed exec and terminals"): after the
 * "101 Switching Protocols" answer to an exec request that asked for
 * "Upgrade: airlock-exec/1", the connection carries frames
 * (common/execstream.h) both ways until the process ended and its exit was
 * sent.  The process runs as any exec does (process.c); the relay only
 * moves its output, input, window size and signals.
 */

#include <microhttpd.h>
#include <stdbool.h>

#include "process.h"
#include "sandbox.h"

struct api_stream;

/* A stream for process p of sandbox sb (the stream takes references to
 * both).  The relay ends soon after *stopping becomes true. */
struct api_stream *api_stream_new(struct sandbox *sb, struct al_process *p, const bool *stopping);

/* The 101 answer; its upgrade handler relays in the connection's thread
 * until the exit was sent or the client left (the process is then killed). */
struct MHD_Response *api_stream_response(struct api_stream *st);

/* When the connection is done with; a process never relayed (the 101 could
 * not be sent) is killed. */
void api_stream_free(struct api_stream *st);
