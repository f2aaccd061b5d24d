/* SPDX-License-Identifier: Apache-2.0 */
#pragma once

/*
 * The airlock CLI's shared parts: the HTTP client of airlockd (client.c),
 * option and output helpers (args.c), the help texts (help.c) and the verbs,
 * one file per group (run.c, sandboxes.c, files.c, snapshots.c, images.c).
 */

#include "cleanup.h"
#include "error.h"
#include "json.h"
#include "strv.h"
#include "util.h"

#include <signal.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <unistd.h>

#include <cjson/cJSON.h>
#include <curl/curl.h>
#include <getopt.h>

#define EXIT_USAGE 2
#define EXIT_TIMEOUT 124
#define EXIT_RUNTIME 125

#define DEFAULT_SOCKET "/run/airlock/airlockd.sock"

/* JSON answers are small; file reads stream to stdout and are not bounded here. */
#define MAX_JSON_RESPONSE (64u << 20)
/* airlockd's JSON body cap is 16 MiB; base64 grows data by 4/3. */
#define MAX_INLINE_STDIN (8u << 20)
#define STDIN_CHUNK (1u << 20)
#define MAX_UPLOAD (256u << 20)
/* Per stream and answer, with backpressure (nothing is dropped: airlockd
 * reads no further until the CLI takes it): two streams' base64 stay well
 * within MAX_JSON_RESPONSE. */
#define MAX_OUTPUT_BYTES (8.0 * 1024 * 1024)

/* How long the first exec request and later polls may wait for an exit. */
#define FIRST_YIELD_MS 2000
#define CREATE_EXEC_YIELD_MS 500
#define POLL_YIELD_MS 1000
/* While stdin is open, polls are short so new input is forwarded promptly. */
#define STDIN_POLL_MS 100
#define STDIN_YIELD_MS 50

/* Set when airlockd cannot be reached: reported as is, without the caller's context. */
extern char connect_error[AL_ERROR_MSG_MAX];
extern volatile sig_atomic_t pending_signal;
/* A transfer may be abandoned on a signal only when nothing is lost by it. */
extern volatile sig_atomic_t transfer_abortable;

static inline void curl_freep(char **p)
{
	curl_free(*p);
}
#define _cleanup_curl_free_ _cleanup_(curl_freep)

struct verb_ctx;

/* ---- HTTP over the Unix socket (client.c) ---- */

struct client {
	CURL *curl;
	const char *socket_path;
	char errbuf[CURL_ERROR_SIZE];
};

struct request {
	const char *method;
	const char *path; /* path and query, starting with /v1 */
	const char *content_type;
	const void *body;
	size_t body_len;
	int stream_fd;   /* >= 0: write a 2xx body here instead of collecting it */
	bool body_stdin; /* the body is stdin, read as it goes (chunked), never held whole */
	/* Or the body comes from read (read_size bytes; 0: unknown, chunked). */
	curl_read_callback read;
	void *read_data;
	uint64_t read_size;
	/* Or a 2xx body goes to on_line, a line (without its newline) at a time. */
	void (*on_line)(const char *line, size_t len, void *data);
	void *line_data;
	bool abortable;
	const char *progress; /* shown on a terminal with this label (progress.h), or NULL */
	/* A GET whose 2xx answer has a Content-Length (a file): its body is
	 * spliced to stream_fd rather than copied through libcurl. */
	bool splice_body;
};

int client_open(struct client *c, const char *socket_path, struct al_error *err);
void client_close(struct client *c);
int client_request(struct client *c, const struct request *req, long *status, struct al_buf *body,
                   struct al_error *err);
int api_error(long status, const struct al_buf *body, struct al_error *err);
int api_json(struct client *c, const char *method, const char *path, const cJSON *req,
             bool abortable, long *status, cJSON **out, struct al_error *err);
int api_call(struct client *c, const struct request *req, long *status, cJSON **out,
             struct al_error *err);
int api_raw(struct client *c, const struct request *req, struct al_error *err);
char *api_path(const char *collection, const char *name, const char *suffix);
char *sandbox_path(const char *id, const char *suffix);

extern char **resolved_ids;
int resolve_id(struct client *c, const char *collection, const char *arg, char **out,
               struct al_error *err);
/* 0, or the exit status of a reported error. */
int resolve_args(struct verb_ctx *ctx, const char *collection, char **args, int n);

/* ---- sandboxes (run.c) ---- */

/* wait: return once airlockd has torn it down, not just killed it. */
int destroy_sandbox(struct client *c, const char *id, bool wait, struct al_error *err);

/* ---- verbs ---- */

struct verb_ctx {
	const char *socket_path;
};

__attribute__((format(printf, 4, 5))) int verb_call(struct verb_ctx *ctx, const struct request *req,
                                                    cJSON **out, const char *what, ...);
int verb_json(struct verb_ctx *ctx, const char *method, const char *path, const cJSON *body,
              cJSON **out);

/* GET path with the answer to stdout (read, persist, snapshot-export), its
 * progress shown on a terminal as label. */
#define verb_get_stdout(ctx, path, label, ...)                                                     \
	verb_call(                                                                                 \
	    ctx,                                                                                   \
	    &(struct request){                                                                     \
	        .method = "GET", .path = (path), .stream_fd = STDOUT_FILENO, .progress = (label)}, \
	    NULL, __VA_ARGS__)

typedef int verb_fn(struct verb_ctx *ctx, int argc, char **argv);
verb_fn verb_run, verb_create, verb_exec, verb_ls, verb_inspect, verb_events, verb_rm, verb_prune,
    verb_stats, verb_top, verb_cp, verb_write, verb_read, verb_info, verb_persist, verb_hydrate,
    verb_snapshot, verb_restore, verb_snapshots, verb_snapshot_rm, verb_image, verb_snapshot_export,
    verb_snapshot_import;

/* Long options without a short form, shared by several verbs. */
enum {
	OPT_PIDS = 0x100,
	OPT_CPUS,
	OPT_DISK,
	OPT_ROOTFS,
	OPT_IMAGE,
	OPT_NAME,
	OPT_MANIFEST,
	OPT_JSON,
	OPT_TTL,
	OPT_IDLE_TIMEOUT,
	OPT_LABEL,
	OPT_FILTER,
	OPT_TIMEOUT,
	OPT_NETWORK,
	OPT_ALLOW,
	OPT_ENV_FILE,
	OPT_FORMAT,
};

/* ---- help texts (help.c) ---- */

extern const char usage_main[], usage_run[], usage_create[], usage_exec[], usage_ls[],
    usage_prune[], usage_inspect[], usage_events[], usage_rm[], usage_write[], usage_top[],
    usage_cp[], usage_read[], usage_info[], usage_persist[], usage_hydrate[], usage_snapshot[],
    usage_restore[], usage_snapshots[], usage_image[], usage_snapshot_rm[], usage_snapshot_export[],
    usage_snapshot_import[], usage_stats[];

/* ---- options, usage errors, output (args.c) ---- */

void human_size(double bytes, char *buf, size_t len);
__attribute__((format(printf, 2, 3))) int usage_error(const char *usage, const char *fmt, ...);
int show_usage(const char *usage);
/* The options a help text lists ("-e", "--env", ...), malloc'd into out; how many. */
size_t usage_options(const char *usage, char **out, size_t max);
/* The candidate word likely meant by a mistyped word, or NULL. */
const char *closest_word(const char *word, const char *const *candidates, size_t n);
int runtime_error(const struct al_error *err);
int bad_option(const char *usage, int c, char **argv);
int add_env(cJSON *env, const char *arg, const char *usage);
int add_env_file(cJSON *env, const char *file, const char *usage);
int parse_timeout_ms(const char *arg, double *out_ms);
int parse_seconds(const char *arg, long *out);
struct verb_spec {
	const char *usage;
	const struct option *options; /* besides --help (and --json); ends with {0} */
	const char *shortopts;        /* their short forms, as getopt takes them */
	/* Handles one of options: 0, 1 when it is none of them, or an exit status. */
	int (*option)(void *data, int opt, const char *arg);
	void *data;
	int min, max; /* operands; max -1: any number */
	bool *json;   /* not NULL: --json sets it */
};
int verb_args(const struct verb_spec *spec, int argc, char **argv, int *status);
int simple_args(int argc, char **argv, const char *usage, int min, int max, int *status);
void print_json(const cJSON *json);
const char *json_string(const cJSON *obj, const char *key);
void print_cell(const char *text, size_t width, bool last);
