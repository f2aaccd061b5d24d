/* SPDX-License-Identifier: Apache-2.0 */
#pragma once

/*
 * The protocol between airlockd and airlock-pid1, PID 1 of a sandbox.
 *
 * airlock-pid1 listens on the abstract Unix socket "@airlock-init" in the
 * sandbox's own network namespace (abstract names are per namespace), so the
 * listener belongs to the sandbox and CRIU checkpoints and re-creates it with
 * the rest.  airlockd reaches it by creating its socket while one thread is
 * setns()'d into that namespace (sandbox_connect_init).  Processes inside the
 * sandbox can connect too, so PID 1 serves only a peer whose SO_PEERCRED pid
 * is 0: one outside its pid namespace.
 *
 * PID 1 is a static binary with no JSON parser (CRIU cannot checkpoint a
 * PID 1 that maps host libraries), hence this small binary encoding.  A
 * frame is a 4-byte little-endian length and a payload:
 *
 *   u8 type | i32 num | u32 aux | u32 argc | u32 envc | u8 has_text |
 *   argc + envc (+ 1 if has_text) NUL-terminated strings
 *
 * all integers little-endian.  File descriptors (SCM_RIGHTS) ride on the
 * first byte of the frame.  One connection carries one process: SPAWN (argv,
 * env, text = cwd, num = the user, aux = flags, with stdin, stdout and
 * stderr fds; initproto_spawn_user/_aux below) is answered by PID
 * (num = pid) or ERROR (num = errno, aux = stage, text = message); later
 * airlockd may send KILL (num = signal); PID 1 reports the end with EXIT
 * (num = status) or SIGNALED (num = signal).  PING is answered by PONG.
 *
 * A SPAWN with INITPROTO_SPAWN_TTY in aux carries no fds: PID 1 opens a
 * pseudo-terminal from the sandbox's own devpts (/dev/pts/ptmx), sets its
 * window size from aux (0 rows and columns leave the kernel's),
 * makes its slave the controlling terminal and stdio of the process, and
 * sends the master with the PID answer.  The pty belongs to the sandbox;
 * airlockd only reads and writes the master (and sets its window size).
 * REEXEC is answered by PONG, then PID 1 execs itself afresh (airlockd sends
 * it after a CRIU restore; see pid1.c).
 *
 * Commands outlive airlockd (an upgrade, a crash).  Once a process has a
 * process id ("pN" of the API), airlockd sends HOLD on its connection: num =
 * N, argv = INITPROTO_HOLD_ARGV strings (what the next airlockd needs to
 * serve it again), and the fds aux names (INITPROTO_HOLD_*): airlockd's own
 * ends of the stdio pipes and the journals of output it read and the client
 * did not take yet.  PID 1 keeps those and, once it reaped the process, its
 * status, until airlockd sends RELEASE (the client took the final result):
 * a connection that closes without one leaves the record for the next
 * airlockd.  STDIN_CLOSE drops PID 1's copy of the stdin write end (airlockd
 * closed its own: the process is to read EOF).  LIST is answered by LISTED:
 * num = the highest N ever held, argv = the N of every record (decimal).
 * ATTACH (num = N), on a new connection, makes it the record's connection:
 * answered by HELD (num = N, aux, argv and fds as HOLD's) and, for a process
 * already reaped, at once its EXIT or SIGNALED; or by ERROR.
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "error.h"

#define INITPROTO_MAX_FRAME (8u << 20)
#define INITPROTO_MAX_FDS 8
#define INITPROTO_SOCKET_NAME "airlock-init"

enum initproto_type {
	INITPROTO_SPAWN = 1,
	INITPROTO_KILL,
	INITPROTO_PING,
	INITPROTO_PID,
	INITPROTO_ERROR,
	INITPROTO_EXIT,
	INITPROTO_SIGNALED,
	INITPROTO_PONG,
	INITPROTO_REEXEC,
	INITPROTO_HOLD,
	INITPROTO_STDIN_CLOSE,
	INITPROTO_RELEASE,
	INITPROTO_LIST,
	INITPROTO_LISTED,
	INITPROTO_ATTACH,
	INITPROTO_HELD,
};

/* HOLD's (and HELD's) aux: which fds come with it, in this order. */
#define INITPROTO_HOLD_STDIN 1u       /* the write end of the stdin pipe */
#define INITPROTO_HOLD_STDOUT 2u      /* the read end of the stdout pipe (or pty master) */
#define INITPROTO_HOLD_STDERR 4u      /* the read end of the stderr pipe */
#define INITPROTO_HOLD_OUT_JOURNAL 8u /* memfds of output read, not yet taken */
#define INITPROTO_HOLD_ERR_JOURNAL 16u
#define INITPROTO_HOLD_ALL 31u
/* HOLD's argv: started_ms, deadline_ms (monotonic, 0: none), max_output,
 * flags ("t": max_output counts JSON text; "y": a terminal), the command. */
#define INITPROTO_HOLD_ARGV 5

/*
 * SPAWN's num: the user to run as, uid << 16 | gid (the sandbox's ids,
 * each 0..65535; 0 is root).  SPAWN's aux: INITPROTO_SPAWN_TTY, and the
 * terminal's first size, rows in bits 8..19 and columns in bits 20..31
 * (each at most 4095: a later resize, done on the master, takes any).
 */
#define INITPROTO_SPAWN_TTY 1u
#define INITPROTO_SPAWN_SIZE_MAX 4095u

static inline int32_t initproto_spawn_user(uint32_t uid, uint32_t gid)
{
	return (int32_t)((uid & 0xffffu) << 16 | (gid & 0xffffu));
}

static inline void initproto_spawn_user_of(int32_t num, uint32_t *uid, uint32_t *gid)
{
	*uid = (uint32_t)num >> 16;
	*gid = (uint32_t)num & 0xffffu;
}

static inline uint32_t initproto_spawn_aux(bool tty, unsigned rows, unsigned cols)
{
	if (rows > INITPROTO_SPAWN_SIZE_MAX)
		rows = INITPROTO_SPAWN_SIZE_MAX;
	if (cols > INITPROTO_SPAWN_SIZE_MAX)
		cols = INITPROTO_SPAWN_SIZE_MAX;
	return (tty ? INITPROTO_SPAWN_TTY : 0) | (uint32_t)rows << 8 | (uint32_t)cols << 20;
}

/* The first size of a SPAWN's terminal as rows << 16 | columns. */
static inline uint32_t initproto_spawn_winsize(uint32_t aux)
{
	return ((aux >> 8) & 0xfffu) << 16 | ((aux >> 20) & 0xfffu);
}

/* Where a failed spawn stopped (INITPROTO_ERROR's aux). */
enum initproto_stage {
	INITPROTO_STAGE_EXEC,
	INITPROTO_STAGE_CHDIR,
	INITPROTO_STAGE_STDIO,
	INITPROTO_STAGE_FORK,
	INITPROTO_STAGE_USER,
	INITPROTO_STAGE_TTY,
};

struct initproto_msg {
	uint8_t type;
	int32_t num;
	uint32_t aux;
	char **argv; /* NULL-terminated, or NULL */
	char **env;  /* NULL-terminated, or NULL */
	char *text;  /* cwd of SPAWN, message of ERROR, or NULL */
	/* Filled by initproto_recv: what initproto_msg_free releases. */
	char *payload;
	char **vectors;
};

/* Send one byte over the stream socket sock, with fds (at most
 * INITPROTO_MAX_FDS) attached.  Returns 0 or a negative errno. */
int initproto_send_byte(int sock, uint8_t byte, const int *fds, size_t nfds);

/* Send m (and fds, if any).  Returns 0 or a negative errno. */
int initproto_send(int sock, const struct initproto_msg *m, const int *fds, size_t nfds,
                   struct al_error *err);

/*
 * Receive one frame into m (release with initproto_msg_free).  *nfds is the
 * capacity of fds on entry and the number received on return (received fds
 * are O_CLOEXEC).  Returns 0 on a frame, 1 on a clean end of stream before
 * any byte, negative errno otherwise.
 */
int initproto_recv(int sock, struct initproto_msg *m, int *fds, size_t *nfds, struct al_error *err);

void initproto_msg_free(struct initproto_msg *m);
