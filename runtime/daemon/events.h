/* SPDX-License-Identifier: Apache-2.0 */
#pragma once

/*
 * The event log of each sandbox, kept by airlockd: every syscall its seccomp
 * profile denied (name, pid, time, count) and every time it hit a resource
 * limit (OOM kill, pids limit).  Bounded and rate-limited per sandbox, so a
 * sandbox that denies itself in a loop costs the daemon a fixed amount of
 * memory and a bounded amount of CPU (a flood is muted in the kernel).  See
 * docs/security.md, "Denial log".
 */

#include <stdint.h>
#include <sys/types.h>

#include <cjson/cJSON.h>

#include "error.h"
#include "daemon.h"

struct sandbox;

/* Start collecting (once per daemon; later calls do nothing).  A failure to
 * subscribe to the kernel's audit records is logged and shown in every
 * events answer; resource events are collected regardless. */
void events_start(struct daemon *d);

/* Stop the collector (at exit, before the daemon's state goes). */
void events_stop(void);

/* Drop the log of a destroyed sandbox (and end a mute of its records). */
void events_forget(const char *id);

/* The OOM kills of sandbox id's cgroup so far (read now). */
uint64_t events_oom_kills(struct daemon *d, const char *id);

/* Record count packets of sandbox id denied by its network allowlist
 * towards dest ("ADDR:PORT/tcp", event "network_denied"). */
void events_note_network_denied(const char *id, const char *dest, uint64_t count);

/* Record, once, that sandbox id's PID 1 is gone (event "pid1_exited"). */
void events_note_pid1_exit(const char *id);

/*
 * {"id": …, "source": "audit", "collecting": true, "events": [{"seq": 1,
 *  "type": "seccomp", "syscall": "keyctl", …}, …], "denied": {"keyctl": 3},
 *  "suppressed": 0, "lost": 0, "unrecorded_ms": 0}
 * Only events with seq > since are listed.  The sandbox's cgroup counters
 * are read first, so a limit hit just before the call is in the answer.
 */
int events_json(struct daemon *d, struct sandbox *sb, uint64_t since, cJSON **out,
                struct al_error *err);

/*
 * GET /v1/events: the events of every sandbox recorded after *cursor (0:
 * all still kept, UINT64_MAX: only those to come), oldest first, at most
 * max, each with "sandbox": its id; waits up to wait_ms for one.  *cursor
 * moves past those returned (a count of recorded events, not a sandbox's
 * seq).  Returns how many (into *out, an array), -ENOMEM, or -ESHUTDOWN
 * once airlockd stops.  Memory: the answer only; the logs are bounded.
 */
int events_follow(uint64_t *cursor, unsigned wait_ms, size_t max, cJSON **out);
