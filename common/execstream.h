/* SPDX-License-Identifier: Apache-2.0 */
#pragma once

/*
 * The frames of a streamed exec: the connection airlockd's
 * POST /v1/sandboxes/{id}/exec switches to after answering
 * "101 Switching Protocols" with "Upgrade: airlock-exec/1" (docs/api.md).
 * Shared by airlockd (api_stream.c) and the CLI.
 *
 * A frame is a 1-byte type, a 4-byte big-endian payload length and the
 * payload.  The types differ by direction (enums below).
 */

#include <stddef.h>
#include <stdint.h>

#include "util.h"

#define EXECSTREAM_PROTOCOL "airlock-exec/1"
#define EXECSTREAM_HEADER_LEN 5
/* The longest payload either side sends or takes. */
#define EXECSTREAM_MAX_PAYLOAD (1u << 20)

/* Client to airlockd. */
enum execstream_in {
	EXECSTREAM_STDIN = 0,       /* bytes for the process's stdin (its terminal's input) */
	EXECSTREAM_RESIZE = 1,      /* rows, cols: two big-endian u16 */
	EXECSTREAM_SIGNAL = 2,      /* a signal name: "INT", "TERM", "HUP", "KILL" */
	EXECSTREAM_CLOSE_STDIN = 3, /* end of input (pipes; a terminal takes ^D instead) */
};

/* airlockd to the client. */
enum execstream_out {
	EXECSTREAM_STDOUT = 1, /* output; a terminal's is all here */
	EXECSTREAM_STDERR = 2,
	EXECSTREAM_EXIT = 3,  /* JSON: exit_code, signal, timed_out, duration_ms; the last frame */
	EXECSTREAM_ERROR = 4, /* JSON: {"code", "message"} about a frame the client sent */
};

/* Append one frame to b.  Returns 0, -E2BIG or -ENOMEM. */
int execstream_put(struct al_buf *b, uint8_t type, const void *payload, size_t len);

/*
 * The first frame of the len bytes at buf: returns 1 and fills *type,
 * *payload, *payload_len and *frame_len (the bytes it takes); 0 when buf
 * does not hold a whole frame yet; -EPROTO for a length over
 * EXECSTREAM_MAX_PAYLOAD.
 */
int execstream_next(const char *buf, size_t len, uint8_t *type, const char **payload,
                    size_t *payload_len, size_t *frame_len);
