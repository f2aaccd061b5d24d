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

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

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

/*
 * The payload of one data frame moved between two fds without holding it:
 * spliced when one side is a pipe (the bytes never enter our memory), else
 * copied through a small buffer.  Used by both ends of a streamed exec on
 * pipes, so neither grows with the data (api_stream.c, the CLI's stream.c).
 */
struct execstream_mover {
	size_t left;     /* payload bytes of the current frame still to take from the source */
	bool copy;       /* splice refused for this pair: through buf */
	char *buf;       /* the copy's buffer (EXECSTREAM_COPY_BUF), allocated on first use */
	size_t off, len; /* read into buf and not yet written */
};

#define EXECSTREAM_COPY_BUF (256u << 10)

/*
 * Move up to m->left bytes from `from` to `to` (to < 0: read and drop them)
 * without blocking on a pipe or a non-blocking fd; called while the mover
 * is not idle.  Returns a positive number on progress (bytes taken from
 * `from`, m->left lowered by them), 0 when `from` ended early,
 * -EAGAIN with *wait_fd and *wait_events set to what to poll for before
 * the next call, or another negative errno (-EPIPE: `to` is closed).
 */
ssize_t execstream_move(struct execstream_mover *m, int from, int to, int *wait_fd,
                        short *wait_events);

/* True once everything taken from the source was written. */
static inline bool execstream_mover_idle(const struct execstream_mover *m)
{
	return m->left == 0 && m->len == 0;
}

void execstream_mover_free(struct execstream_mover *m);

/* The 5-byte header of a frame of type with len payload bytes. */
void execstream_header(unsigned char hdr[EXECSTREAM_HEADER_LEN], uint8_t type, size_t len);
/* The payload length of the 5-byte header; -EPROTO over EXECSTREAM_MAX_PAYLOAD. */
ssize_t execstream_header_len(const unsigned char hdr[EXECSTREAM_HEADER_LEN]);
