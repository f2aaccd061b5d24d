/* SPDX-License-Identifier: Apache-2.0 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include <cjson/cJSON.h>

#include "error.h"
#include "util.h"

struct sandbox;
struct al_process;

/* The most a stream holds for its client (exec_request.max_output's cap). */
#define PROCESS_MAX_OUTPUT (64u << 20)

struct exec_request {
	char **argv; /* NULL-terminated */
	char **env;  /* complete environment, "K=V", NULL-terminated */
	const char *cwd;
	uid_t uid; /* the user it runs as (0: the sandbox's root) */
	gid_t gid;
	const void *stdin_data;
	size_t stdin_len;
	bool keep_stdin_open;
	uint64_t timeout_ms; /* 0: none */
	size_t max_output;   /* per stream: what is held and returned at once */
	/* The client takes output as base64: max_output counts its bytes (the
	 * answer's string is at most 4/3 of it); otherwise it counts the JSON
	 * text the bytes become in the utf8 encoding, escapes included. */
	bool output_base64;
	/* Output is never dropped: past max_output a stream is read no further
	 * until a client takes it (the command blocks on its write), and a
	 * wait for the process ends as soon as a stream is that full.  Needs
	 * output_base64 (bytes, not text, are what is held). */
	bool backpressure;
	/* On a pseudo-terminal of the sandbox (PID 1 makes it): stdout and
	 * stderr are one stream, "stdout"; rows and cols its size (0: the
	 * kernel's default). */
	bool tty;
	unsigned rows, cols;
	/* On pipes, moved by the caller (a streamed exec, api_stream.c): the
	 * collector leaves the stdio pipes alone and process_take_stdio hands
	 * them over.  Needs no stdin_data and no tty. */
	bool direct;
};

/*
 * Start a command in the sandbox through its airlock-init.  A command that
 * cannot be started is not an error here: the process is returned already
 * finished with exit code 127 (126 when not executable) and the reason on
 * stderr, the way a shell reports it.
 */
/*
 * Output waiting for a client counts against a budget of its sandbox and
 * one of airlockd (process.c): past either, it is dropped and the stream
 * marked truncated.  A sandbox holds one budget, its processes a reference.
 */
struct output_budget;
struct output_budget *output_budget_new(size_t max);
void output_budget_unref(struct output_budget *b);
/* Bytes held by every process of airlockd, and the bound on them. */
size_t output_budget_total_used(void);
size_t output_budget_total_max(void);

/* True when p ended at least after_ms ago and nobody took its result. */
bool process_expired(struct al_process *p, uint64_t after_ms);

int process_start(struct sandbox *sb, const struct exec_request *req, struct al_process **out,
                  struct al_error *err);

/* Wait until the process has finished or deadline_ms (monotonic) passes; 0 = no deadline. */
void process_wait(struct al_process *p, uint64_t deadline_ms);

/* Output not returned before, and the state; base64 selects the encoding of stdout/stderr. */
cJSON *process_take_result(struct al_process *p, bool base64);

/* True once the process has ended and all of its output is collected. */
/* Under backpressure, a stream holds all it may: whoever waits for the
 * process should answer now, or the command stays blocked. */
bool process_output_full(struct al_process *p);
bool process_ended(struct al_process *p);

/* True once the process finished and its final result was taken. */
bool process_finished(struct al_process *p);

int process_write_stdin(struct al_process *p, const void *data, size_t len, bool close_stdin,
                        struct al_error *err);
int process_kill(struct al_process *p, int sig, struct al_error *err);

/* How many of sb's processes run on a terminal (tty exec) now. */
unsigned sandbox_terminals_open(struct sandbox *sb);

/* Bytes of stdin queued and not yet taken by the process. */
size_t process_stdin_queued(struct al_process *p);

/* The window size of a terminal process; EINVAL for one on pipes. */
int process_resize(struct al_process *p, unsigned rows, unsigned cols, struct al_error *err);
bool process_is_tty(struct al_process *p);

/*
 * Streaming (the upgraded exec connection, api_stream.c): from here on the
 * collector pokes an eventfd when output comes or the process ends, and
 * stops reading a stream whose untaken bytes reach a high-water mark
 * instead of dropping them (backpressure down to the process).  Returns
 * that eventfd (p's: valid while the caller holds its reference; read it
 * to clear it), or a negative errno.  Once per process.
 */
int process_stream_attach(struct al_process *p, struct al_error *err);
/* Move the output not taken yet to out and err; *done once the process
 * has ended and nothing is left. */
int process_stream_take(struct al_process *p, struct al_buf *out, struct al_buf *err, bool *done);

/*
 * A direct process's ends of its stdio pipes (exec_request.direct): stdin
 * (write end) and stdout, stderr (read ends), all non-blocking; the caller
 * owns them from here.  Once; -EINVAL for a process that is not direct.
 */
int process_take_stdio(struct al_process *p, int fds[3]);

/*
 * Surviving airlockd.  process_hold: p got process id "pN" (n = N); PID 1
 * keeps what the next airlockd needs to serve it (its pipe ends, the
 * output read and not taken, its exit status) until process_release (the
 * client took the final result, or it expired).  command is for the log.
 * process_adopt_all, on reattaching sb: take back every process PID 1
 * holds into sb's process table, under the same ids, and number new ones
 * past every id it ever held.
 */
void process_hold(struct al_process *p, unsigned n, const char *command);
void process_release(struct al_process *p);
int process_adopt_all(struct sandbox *sb, struct al_error *err);

void process_ref(struct al_process *p);
void process_unref(struct al_process *p);
