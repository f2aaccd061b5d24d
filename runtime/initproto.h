/* SPDX-License-Identifier: Apache-2.0 */
#pragma once

/*
 * The protocol between airlockd and airlock-init (PID 1 of a sandbox).
 *
 * airlock-init listens on a SOCK_STREAM Unix socket bound in the sandbox's
 * host-side state directory (state/sandboxes/ID/init.sock).  The listening
 * fd is created by airlockd before the sandbox exists and survives
 * pivot_root, so a restarted airlockd reaches every running sandbox through
 * that path, while nothing inside the sandbox can see it.
 *
 * A frame is a 4-byte little-endian length followed by that many bytes of
 * JSON; file descriptors (SCM_RIGHTS) ride on the first byte of the frame.
 * One connection carries one process: "spawn" (with stdin, stdout, stderr
 * fds), answered by {"pid": N} or {"error": "...", "errno": N}; later
 * airlockd may send {"op": "kill", "signal": N}; init reports the end with
 * {"exit": CODE} or {"signal": N}.  {"op": "ping"} is answered with
 * {"ok": true} and is used to check readiness.
 */

#include <stddef.h>

#include <cjson/cJSON.h>

#include "error.h"

#define INITPROTO_MAX_FRAME (8u << 20)
#define INITPROTO_MAX_FDS 4

/* Send msg (and fds, if any).  Returns 0 or a negative errno. */
int initproto_send(int sock, const cJSON *msg, const int *fds, size_t nfds, struct al_error *err);

/*
 * Receive one frame.  *nfds is the capacity of fds on entry and the number
 * received on return (received fds are O_CLOEXEC).  Returns 0 on a frame, 1
 * on a clean end of stream before any byte, negative errno otherwise.
 */
int initproto_recv(int sock, cJSON **msg, int *fds, size_t *nfds, struct al_error *err);
