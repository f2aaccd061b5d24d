/* SPDX-License-Identifier: Apache-2.0 */
/*
 * airlock: the command-line client of airlockd for people.
 *
 * It speaks the same HTTP/1.1 + JSON API as every other client (docs/api.md),
 * through libcurl on the daemon's Unix socket.  One CURL handle is reused for
 * every request of an invocation so the connection is kept alive.
 *
 * Exit status: a command's own status for run/exec (128+N when it died of
 * signal N, 124 when airlockd killed it on timeout), 125 when airlock or
 * airlockd failed (as docker and podman do), 2 for usage errors.
 */
#include "cleanup.h"
#include "json.h"
#include "progress.h"
#include "stream.h"
#include "strv.h"
#include "error.h"
#include "strv.h"
#include "util.h"

#include <errno.h>
#include <getopt.h>
#include <grp.h>
#include <inttypes.h>
#include <math.h>
#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include <archive.h>
#include <archive_entry.h>
#include <cjson/cJSON.h>
#include <curl/curl.h>

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
/* Per answer: the CLI drains output as it comes; airlockd accepts at most 64 MiB. */
#define MAX_OUTPUT_BYTES (64.0 * 1024 * 1024)

/* How long the first exec request and later polls may wait for an exit. */
#define FIRST_YIELD_MS 2000
#define CREATE_EXEC_YIELD_MS 500
#define POLL_YIELD_MS 1000
/* While stdin is open, polls are short so new input is forwarded promptly. */
#define STDIN_POLL_MS 100
#define STDIN_YIELD_MS 50

/* Set when airlockd cannot be reached: reported as is, without the caller's context. */
static char connect_error[AL_ERROR_MSG_MAX];

static volatile sig_atomic_t pending_signal;
/* A transfer may be abandoned on a signal only when nothing is lost by it. */
static volatile sig_atomic_t transfer_abortable;

static void on_signal(int sig)
{
	pending_signal = sig;
}

static void curl_freep(char **p)
{
	curl_free(*p);
}
#define _cleanup_curl_free_ _cleanup_(curl_freep)

/* 64M, 1.5G, 512K: a size as a person writes it. */
static void human_size(double bytes, char *buf, size_t len)
{
	static const char units[] = "KMGT";
	int u = -1;

	while (bytes >= 1024 && u < 3) {
		bytes /= 1024;
		u++;
	}
	if (u < 0)
		snprintf(buf, len, "%.0f", bytes);
	else if (bytes == (double)(long long)bytes)
		snprintf(buf, len, "%lld%c", (long long)bytes, units[u]);
	else
		snprintf(buf, len, "%.1f%c", bytes, units[u]);
}

/* What to do when the socket cannot be used: the next step, not only errno. */
static void connect_hint(const char *socket_path, int os_errno, char *buf, size_t len)
{
	struct stat st;

	if (os_errno == ENOENT || os_errno == ECONNREFUSED) {
		snprintf(buf, len,
		         "airlockd is not running (%s at %s): start it with 'systemctl start "
		         "airlockd', or as root 'airlockd --socket %s --group airlock'; or point "
		         "--socket / $AIRLOCK_SOCKET at a running one",
		         os_errno == ENOENT ? "no socket" : "nobody listens", socket_path,
		         socket_path);
	} else if (os_errno == EACCES || os_errno == EPERM) {
		struct group *g = stat(socket_path, &st) == 0 ? getgrgid(st.st_gid) : NULL;
		snprintf(
		    buf, len,
		    "permission denied on %s: only root and members of group '%s' may use "
		    "airlockd; ask for it ('usermod -aG %s %s', then log in again) or use sudo",
		    socket_path, g ? g->gr_name : "airlock", g ? g->gr_name : "airlock",
		    getenv("USER") ? getenv("USER") : "$USER");
	} else {
		snprintf(buf, len, "cannot connect to airlockd at %s: %s", socket_path,
		         strerror(os_errno));
	}
}

/* ---- HTTP over the Unix socket ---- */

struct client {
	CURL *curl;
	const char *socket_path;
	char errbuf[CURL_ERROR_SIZE];
};

struct sink {
	CURL *curl;
	struct al_buf *buf;
	int stream_fd; /* >= 0: a 2xx body goes straight to this fd */
	int stream_errno;
	bool overflow;
};

static size_t sink_write(char *data, size_t size, size_t nmemb, void *userdata)
{
	struct sink *s = userdata;
	size_t len = size * nmemb;
	long status = 0;

	if (s->stream_fd >= 0) {
		curl_easy_getinfo(s->curl, CURLINFO_RESPONSE_CODE, &status);
		if (status >= 200 && status < 300) {
			int r = al_write_all(s->stream_fd, data, len);
			if (r < 0) {
				s->stream_errno = -r;
				return 0;
			}
			return len;
		}
	}
	if (s->buf->len + len > MAX_JSON_RESPONSE) {
		s->overflow = true;
		return 0;
	}
	if (al_buf_append(s->buf, data, len) < 0)
		return 0;
	return len;
}

/* The transfer being shown on the terminal (persist, hydrate), or NULL. */
static struct progress *transfer_meter;

static int transfer_progress(void *userdata, curl_off_t dltotal, curl_off_t dlnow,
                             curl_off_t ultotal, curl_off_t ulnow)
{
	(void)userdata;
	(void)dltotal;
	(void)ultotal;
	if (transfer_meter)
		progress_update(transfer_meter, (uint64_t)dlnow + (uint64_t)ulnow);
	return transfer_abortable && pending_signal ? 1 : 0;
}

static int client_open(struct client *c, const char *socket_path, struct al_error *err)
{
	c->socket_path = socket_path;
	if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
		return al_error_set(err, EIO, "cannot initialise libcurl");
	c->curl = curl_easy_init();
	if (!c->curl)
		return al_error_set(err, ENOMEM, "cannot create a libcurl handle");
	curl_easy_setopt(c->curl, CURLOPT_UNIX_SOCKET_PATH, socket_path);
	curl_easy_setopt(c->curl, CURLOPT_ERRORBUFFER, c->errbuf);
	/* Signals are ours: the CLI forwards SIGINT/SIGTERM to the sandbox. */
	curl_easy_setopt(c->curl, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(c->curl, CURLOPT_NOPROGRESS, 0L);
	curl_easy_setopt(c->curl, CURLOPT_XFERINFOFUNCTION, transfer_progress);
	curl_easy_setopt(c->curl, CURLOPT_WRITEFUNCTION, sink_write);
	curl_easy_setopt(c->curl, CURLOPT_TCP_KEEPALIVE, 1L);
	return 0;
}

static void client_close(struct client *c)
{
	if (c->curl)
		curl_easy_cleanup(c->curl);
	c->curl = NULL;
	curl_global_cleanup();
}

struct request {
	const char *method;
	const char *path; /* path and query, starting with /v1 */
	const char *content_type;
	const void *body;
	size_t body_len;
	int stream_fd;   /* >= 0: write a 2xx body here instead of collecting it */
	bool body_stdin; /* the body is stdin, read as it goes (chunked), never held whole */
	bool abortable;
	const char *progress; /* shown on a terminal with this label (progress.h), or NULL */
};

static size_t read_body_fd(char *buf, size_t size, size_t nmemb, void *userdata)
{
	ssize_t n;

	do
		n = read(*(int *)userdata, buf, size * nmemb);
	while (n < 0 && errno == EINTR);
	return n < 0 ? CURL_READFUNC_ABORT : (size_t)n;
}

static int client_request(struct client *c, const struct request *req, long *status,
                          struct al_buf *body, struct al_error *err)
{
	_cleanup_free_ char *url = NULL;
	struct curl_slist *headers = NULL;
	struct sink sink = {.curl = c->curl, .buf = body, .stream_fd = req->stream_fd};
	struct progress meter = {0};
	char ctype[128];
	CURLcode rc;
	long os_errno = 0;
	bool has_body =
	    req->body || strcmp(req->method, "POST") == 0 || strcmp(req->method, "PUT") == 0;
	int body_fd = STDIN_FILENO;

	if (asprintf(&url, "http://localhost%s", req->path) < 0)
		return al_error_set(err, ENOMEM, "out of memory");
	snprintf(ctype, sizeof(ctype), "Content-Type: %s",
	         req->content_type ? req->content_type : "application/json");
	headers = curl_slist_append(headers, "Accept: application/json");
	/* airlockd answers at once; waiting for 100-continue only adds latency. */
	headers = curl_slist_append(headers, "Expect:");
	if (has_body)
		headers = curl_slist_append(headers, ctype);

	curl_easy_setopt(c->curl, CURLOPT_URL, url);
	curl_easy_setopt(c->curl, CURLOPT_HTTPHEADER, headers);
	curl_easy_setopt(c->curl, CURLOPT_WRITEDATA, &sink);
	curl_easy_setopt(c->curl, CURLOPT_CUSTOMREQUEST, NULL);
	curl_easy_setopt(c->curl, CURLOPT_UPLOAD, 0L);
	if (req->body_stdin) {
		/* Streamed: a snapshot may be far larger than memory. */
		curl_easy_setopt(c->curl, CURLOPT_UPLOAD, 1L);
		curl_easy_setopt(c->curl, CURLOPT_READFUNCTION, read_body_fd);
		curl_easy_setopt(c->curl, CURLOPT_READDATA, &body_fd);
		curl_easy_setopt(c->curl, CURLOPT_INFILESIZE_LARGE, (curl_off_t)-1);
		curl_easy_setopt(c->curl, CURLOPT_CUSTOMREQUEST, req->method);
	} else if (has_body) {
		curl_easy_setopt(c->curl, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)req->body_len);
		curl_easy_setopt(c->curl, CURLOPT_POSTFIELDS, req->body ? req->body : "");
		if (strcmp(req->method, "POST") != 0)
			curl_easy_setopt(c->curl, CURLOPT_CUSTOMREQUEST, req->method);
	} else {
		curl_easy_setopt(c->curl, CURLOPT_HTTPGET, 1L);
		if (strcmp(req->method, "GET") != 0)
			curl_easy_setopt(c->curl, CURLOPT_CUSTOMREQUEST, req->method);
	}

	c->errbuf[0] = '\0';
	transfer_abortable = req->abortable;
	if (req->progress) {
		progress_start(&meter, req->progress);
		transfer_meter = &meter;
	}
	rc = curl_easy_perform(c->curl);
	transfer_meter = NULL;
	progress_end(&meter);
	transfer_abortable = 0;
	curl_easy_setopt(c->curl, CURLOPT_HTTPHEADER, NULL);
	curl_slist_free_all(headers);

	switch (rc) {
	case CURLE_OK:
		break;
	case CURLE_COULDNT_CONNECT:
		curl_easy_getinfo(c->curl, CURLINFO_OS_ERRNO, &os_errno);
		if (os_errno)
			connect_hint(c->socket_path, (int)os_errno, connect_error,
			             sizeof(connect_error));
		else
			snprintf(connect_error, sizeof(connect_error),
			         "cannot connect to airlockd at %s: %s", c->socket_path,
			         c->errbuf[0] ? c->errbuf : curl_easy_strerror(rc));
		return al_error_set(err, ECONNREFUSED, "%s", connect_error);
	case CURLE_ABORTED_BY_CALLBACK:
		return al_error_set(err, EINTR, "interrupted by signal %d", (int)pending_signal);
	case CURLE_WRITE_ERROR:
		if (sink.stream_errno)
			return al_error_set(err, sink.stream_errno, "write to stdout: %s",
			                    strerror(sink.stream_errno));
		if (sink.overflow)
			return al_error_set(err, EFBIG, "answer of airlockd larger than %u bytes",
			                    MAX_JSON_RESPONSE);
		return al_error_set(err, ENOMEM, "out of memory");
	default:
		return al_error_set(err, EIO, "%s %s: airlockd at %s: %s", req->method, req->path,
		                    c->socket_path,
		                    c->errbuf[0] ? c->errbuf : curl_easy_strerror(rc));
	}
	curl_easy_getinfo(c->curl, CURLINFO_RESPONSE_CODE, status);
	return 0;
}

/* Turn an error answer into err: airlockd's own message when it sent one. */
static int api_error(long status, const struct al_buf *body, struct al_error *err)
{
	_cleanup_cjson_ cJSON *json = NULL;
	const cJSON *message;

	if (body->len > 0)
		json = cJSON_ParseWithLength(body->data, body->len);
	message = cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(json, "error"),
	                                           "message");
	if (status == 403 && cJSON_IsString(message) &&
	    strstr(message->valuestring, "not allowed to use airlockd"))
		return al_error_set(err, EACCES,
		                    "%s: airlockd serves only root and the group it was started "
		                    "with (--group); ask to be added to it, then log in again",
		                    message->valuestring);
	if (cJSON_IsString(message))
		return al_error_set(err, status == 404 ? ENOENT : EPROTO, "%s",
		                    message->valuestring);
	return al_error_set(err, EPROTO, "airlockd answered HTTP %ld", status);
}

/*
 * One JSON call: req (may be NULL) is sent as the body, the JSON answer goes
 * to *out.  An error answer becomes err with airlockd's message and *status
 * tells its HTTP status (0 when airlockd could not be reached).
 */
static int api_json(struct client *c, const char *method, const char *path, const cJSON *req,
                    bool abortable, long *status, cJSON **out, struct al_error *err)
{
	_cleanup_free_ char *text = NULL;
	_cleanup_buf_ struct al_buf body = {0};
	long http_status = 0;
	int r;

	if (req) {
		text = cJSON_PrintUnformatted(req);
		if (!text)
			return al_error_set(err, ENOMEM, "out of memory");
	}
	r = client_request(c,
	                   &(struct request){.method = method,
	                                     .path = path,
	                                     .body = text,
	                                     .body_len = text ? strlen(text) : 0,
	                                     .stream_fd = -1,
	                                     .abortable = abortable},
	                   &http_status, &body, err);
	if (status)
		*status = http_status;
	if (r < 0)
		return r;
	if (http_status < 200 || http_status >= 300)
		return api_error(http_status, &body, err);
	*out = cJSON_ParseWithLength(body.data ? body.data : "", body.len);
	if (!*out)
		return al_error_set(err, EPROTO, "%s %s: airlockd sent invalid JSON", method, path);
	return 0;
}

/*
 * One call whose body is not JSON (files, tars): the answer is streamed to
 * req->stream_fd (or dropped); an error answer becomes err with airlockd's
 * message.
 */
static int api_raw(struct client *c, const struct request *req, struct al_error *err)
{
	_cleanup_buf_ struct al_buf body = {0};
	long http_status = 0;
	int r;

	r = client_request(c, req, &http_status, &body, err);
	if (r >= 0 && (http_status < 200 || http_status >= 300))
		r = api_error(http_status, &body, err);
	return r;
}

/* "/v1/sandboxes/<id><suffix>", the id escaped for a URL path. */
static char *sandbox_path(struct client *c, const char *id, const char *suffix)
{
	_cleanup_curl_free_ char *escaped = curl_easy_escape(c->curl, id, 0);
	char *path = NULL;

	if (!escaped || asprintf(&path, "/v1/sandboxes/%s%s", escaped, suffix) < 0)
		return NULL;
	return path;
}

/* ---- usage ---- */

static const char usage_main[] =
    "Usage: airlock [--socket PATH] VERB [OPTIONS] [ARGS]\n"
    "\n"
    "The command-line client of airlockd.\n"
    "\n"
    "Verbs:\n"
    "  run      create a sandbox, run a command in it, destroy it\n"
    "  create   create a sandbox and print its id\n"
    "  exec     run a command in a sandbox\n"
    "  ls       list sandboxes\n"
    "  inspect  show a sandbox's effective isolation as JSON\n"
    "  stats    show the CPU, memory, processes and disk sandboxes use\n"
    "  events   show what a sandbox was denied (seccomp) and its limit hits\n"
    "  rm       destroy sandboxes\n"
    "  prune    destroy stopped and expired sandboxes, or those a filter selects\n"
    "  write    write stdin to a file in a sandbox\n"
    "  read     copy a file of a sandbox to stdout\n"
    "  info     show airlockd's version and capabilities\n"
    "  persist  write a sandbox's workspace to stdout as a tar\n"
    "  hydrate  replace a sandbox's workspace with the tar on stdin\n"
    "  snapshot snapshot a sandbox (it keeps running); print the snapshot id\n"
    "  restore  create a sandbox from a snapshot; print its id\n"
    "  snapshots    list snapshots\n"
    "  snapshot-rm  delete snapshots\n"
    "  image    import, list and remove images (docker save, OCI layouts)\n"
    "  snapshot-export  write a snapshot to stdout as one stream\n"
    "  snapshot-import  import a snapshot stream from stdin; print its id\n"
    "\n"
    "Global options:\n"
    "  -s, --socket PATH  airlockd's socket (default: $AIRLOCK_SOCKET or " DEFAULT_SOCKET ")\n"
    "  -h, --help         show this help; 'airlock VERB --help' for a verb\n";

#define CREATE_OPTIONS_HELP                                                                        \
	"  -m, --memory SIZE    memory limit (bytes, or 64M, 1G, ...)\n"                           \
	"      --pids N         maximum number of processes\n"                                     \
	"      --cpus N         CPU limit (e.g. 1.5)\n"                                            \
	"      --disk SIZE      cap on the writable layer and workspace (default 4G)\n"            \
	"      --rootfs DIR     base root filesystem\n"                                            \
	"      --image NAME     an imported image (its layers, Env, WorkingDir, User)\n"           \
	"      --name NAME      sandbox name (and hostname)\n"                                     \
	"      --manifest FILE  workspace manifest (JSON)\n"

static const char usage_run[] =
    "Usage: airlock run [OPTIONS] [--] CMD [ARG...]\n"
    "\n"
    "Create a sandbox, run CMD in it with stdio passed through, destroy the\n"
    "sandbox and exit with CMD's status.  With --image, the image's Entrypoint\n"
    "comes before CMD, and without CMD its Cmd is run.\n"
    "\n" CREATE_OPTIONS_HELP "  -e, --env K=V        environment variable (repeatable)\n"
    "  -w, --cwd DIR        working directory (default /workspace)\n"
    "  -i, --interactive    stream stdin to CMD (over one connection)\n"
    "  -t, --tty            run CMD on a terminal of the sandbox; with -i, this\n"
    "                       terminal is in raw mode (Ctrl-C goes to CMD)\n"
    "      --timeout SECS   kill CMD after this long (exit status 124)\n"
    "\n"
    "stdin that is a terminal needs -i or -it (or a redirection, e.g. </dev/null).\n";

static const char usage_create[] =
    "Usage: airlock create [OPTIONS]\n"
    "\n"
    "Create a sandbox and print its id.\n"
    "\n" CREATE_OPTIONS_HELP "  -e, --env K=V        default environment of every exec\n"
    "      --ttl SECS       destroy it this long after its creation\n"
    "      --idle-timeout SECS  destroy it after this long without an exec or file access\n"
    "      --label K=V      a label of the client's (repeatable; see ls --filter)\n";

static const char usage_exec[] =
    "Usage: airlock exec [OPTIONS] ID [OPTIONS] [--] CMD [ARG...]\n"
    "\n"
    "Run CMD in sandbox ID with stdio passed through; exit with its status.\n"
    "\n"
    "  -e, --env K=V        environment variable (repeatable)\n"
    "  -w, --cwd DIR        working directory (default /workspace)\n"
    "  -i, --interactive    stream stdin to CMD (over one connection)\n"
    "  -t, --tty            run CMD on a terminal of the sandbox; with -i, this\n"
    "                       terminal is in raw mode (Ctrl-C goes to CMD)\n"
    "      --timeout SECS   kill CMD after this long (exit status 124)\n"
    "\n"
    "stdin that is a terminal needs -i or -it (or a redirection, e.g. </dev/null):\n"
    "  airlock exec -it ID -- bash\n";

static const char usage_ls[] =
    "Usage: airlock ls [--json] [--filter label=K=V|state=running|stopped]...\n"
    "\n"
    "List sandboxes.\n"
    "\n"
    "      --json           print airlockd's JSON answer\n"
    "  -f, --filter F       only sandboxes with label K=V, or in a state (repeatable:\n"
    "                       all must match)\n";

static const char usage_prune[] =
    "Usage: airlock prune [--filter label=K=V|state=running|stopped]...\n"
    "\n"
    "Destroy the sandboxes that are stopped (their PID 1 is gone) or whose ttl\n"
    "or idle timeout has passed; with --filter, every sandbox that matches\n"
    "(running ones too).  Prints the ids removed.\n"
    "\n"
    "  -f, --filter F       label=K=V or state=running|stopped (repeatable)\n";

static const char usage_inspect[] = "Usage: airlock inspect ID\n"
                                    "\n"
                                    "Show a sandbox, including its effective isolation, as JSON.\n";

static const char usage_events[] =
    "Usage: airlock events [--json] ID\n"
    "\n"
    "Show the event log of sandbox ID: every syscall its seccomp profile denied\n"
    "(syscall, pid inside the sandbox, time, count) and every OOM kill or pids\n"
    "limit hit.\n"
    "\n"
    "      --json   print airlockd's JSON answer\n";

static const char usage_rm[] = "Usage: airlock rm ID [ID...]\n"
                               "\n"
                               "Destroy sandboxes: their processes, cgroups, layers and state.\n";

static const char usage_write[] =
    "Usage: airlock write ID PATH\n"
    "\n"
    "Write stdin to PATH in sandbox ID (parent directories are created;\n"
    "relative paths are relative to /workspace).\n";

static const char usage_read[] = "Usage: airlock read ID PATH\n"
                                 "\n"
                                 "Copy PATH of sandbox ID to stdout.\n";

static const char usage_info[] = "Usage: airlock info\n"
                                 "\n"
                                 "Show airlockd's version, cgroup mode and capabilities.\n";

static const char usage_persist[] =
    "Usage: airlock persist ID > workspace.tar\n"
    "\n"
    "Write the workspace of sandbox ID to stdout as a tar (member paths\n"
    "relative to the workspace root; ephemeral manifest entries left out).\n";

static const char usage_hydrate[] =
    "Usage: airlock hydrate [OPTIONS] ID < workspace.tar\n"
    "\n"
    "Replace the contents of sandbox ID's workspace with the tar read from stdin.\n"
    "A refused archive (unsafe members, over a limit) changes nothing.\n"
    "\n"
    "      --max-input-bytes N      (default 1 GiB)\n"
    "      --max-extracted-bytes N  (default 4 GiB)\n"
    "      --max-members N          (default 100000)\n";

static const char usage_snapshot[] =
    "Usage: airlock snapshot [--no-processes] ID\n"
    "\n"
    "Snapshot sandbox ID and print the snapshot id; the sandbox keeps running.\n"
    "\n"
    "      --no-processes  workspace and writable layer only, no CRIU checkpoint\n";

static const char usage_restore[] = "Usage: airlock restore [--name NAME] SNAPSHOT_ID\n"
                                    "\n"
                                    "Create a sandbox from a snapshot and print its id.\n";

static const char usage_snapshots[] = "Usage: airlock snapshots [--json]\n"
                                      "\n"
                                      "List the snapshots in airlockd's store.\n";

static const char usage_image[] =
    "Usage: airlock image import NAME [ARCHIVE | DIR]\n"
    "       airlock image ls [--json]\n"
    "       airlock image rm NAME [NAME...]\n"
    "\n"
    "import  import a `docker save` archive or an OCI image layout (a tar, e.g.\n"
    "        from `skopeo copy ... oci-archive:`, or a directory) as NAME; read\n"
    "        from stdin without ARCHIVE.  gzip and zstd tars are accepted.\n"
    "ls      list images\n"
    "rm      remove images (refused while a sandbox uses one); layers no other\n"
    "        image has are deleted\n";

static const char usage_snapshot_rm[] = "Usage: airlock snapshot-rm ID [ID...]\n"
                                        "\n"
                                        "Delete snapshots (and the chunks only they used).\n";

static const char usage_snapshot_export[] =
    "Usage: airlock snapshot-export ID > FILE\n"
    "\n"
    "Write snapshot ID to stdout as one stream (a tar: snapshot.json and every part),\n"
    "for snapshot-import on another airlockd.\n";

static const char usage_snapshot_import[] =
    "Usage: airlock snapshot-import < FILE\n"
    "\n"
    "Import a stream snapshot-export wrote, every part verified before it is listed;\n"
    "print the new snapshot's id.\n";

__attribute__((format(printf, 2, 3))) static int usage_error(const char *usage, const char *fmt,
                                                             ...)
{
	va_list ap;

	fputs("airlock: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputs("\n\n", stderr);
	fputs(usage, stderr);
	return EXIT_USAGE;
}

static int show_usage(const char *usage)
{
	fputs(usage, stdout);
	return 0;
}

static int runtime_error(const struct al_error *err)
{
	if (connect_error[0])
		fprintf(stderr, "airlock: %s\n", connect_error);
	else
		fprintf(stderr, "airlock: %s\n", err->msg[0] ? err->msg : "unknown error");
	return EXIT_RUNTIME;
}

/* getopt's complaint about the option just seen, in our words. */
static int bad_option(const char *usage, int c, char **argv)
{
	const char *word = argv[optind - 1];

	if (c == ':')
		return usage_error(usage, "option '%s' needs an argument", word);
	if (optopt && word[0] == '-' && word[1] != '-')
		return usage_error(usage, "unknown option '-%c'", optopt);
	return usage_error(usage, "unknown option '%s'", word);
}

/* ---- option values ---- */

/* K=V, or K alone to pass the CLI's own value (skipped when unset). */
static int add_env(cJSON *env, const char *arg, const char *usage)
{
	const char *eq = strchr(arg, '=');
	_cleanup_free_ char *key = NULL;
	const char *value;

	if (eq == arg || arg[0] == '\0')
		return usage_error(usage, "invalid --env '%s': expected K=V", arg);
	if (!eq) {
		value = getenv(arg);
		if (!value)
			return 0;
		key = strdup(arg);
	} else {
		key = strndup(arg, (size_t)(eq - arg));
		value = eq + 1;
	}
	if (!key)
		return EXIT_RUNTIME;
	cJSON_DeleteItemFromObjectCaseSensitive(env, key);
	cJSON_AddStringToObject(env, key, value);
	return 0;
}

static int parse_timeout_ms(const char *arg, double *out_ms)
{
	char *end = NULL;
	double secs;

	errno = 0;
	secs = strtod(arg, &end);
	if (errno || end == arg || *end || !isfinite(secs) || secs <= 0 || secs > 1e9)
		return -EINVAL;
	*out_ms = ceil(secs * 1000.0);
	return 0;
}

/* ---- create ---- */

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
};

struct create_opts {
	uint64_t memory_bytes;
	bool has_memory;
	long pids;
	bool has_pids;
	double cpus;
	bool has_cpus;
	uint64_t disk_bytes;
	bool has_disk;
	const char *rootfs;
	const char *image;
	const char *name;
	const char *manifest_file;
	cJSON *env;             /* object */
	long ttl, idle_timeout; /* seconds; 0: none */
	cJSON *labels;          /* object, or NULL where the verb takes none */
};

/* A whole number of seconds for option name. */
static int parse_seconds(const char *arg, long *out)
{
	char *end = NULL;

	errno = 0;
	*out = strtol(arg, &end, 10);
	return errno || end == arg || *end || *out <= 0 ? -EINVAL : 0;
}

/*
 * Handle one create option c; returns 0 when handled, 1 when c is not a
 * create option, or an exit status (> 1) for a usage error.
 */
static int create_option(struct create_opts *o, int c, const char *arg, const char *usage)
{
	struct al_error err = AL_ERROR_INIT;
	char *end = NULL;

	switch (c) {
	case 'm':
		if (al_parse_size(arg, &o->memory_bytes, &err) < 0 || o->memory_bytes == 0)
			return usage_error(usage, "invalid --memory '%s'", arg);
		o->has_memory = true;
		return 0;
	case OPT_PIDS:
		errno = 0;
		o->pids = strtol(arg, &end, 10);
		if (errno || end == arg || *end || o->pids <= 0)
			return usage_error(usage, "invalid --pids '%s'", arg);
		o->has_pids = true;
		return 0;
	case OPT_CPUS:
		errno = 0;
		o->cpus = strtod(arg, &end);
		if (errno || end == arg || *end || !isfinite(o->cpus) || o->cpus <= 0)
			return usage_error(usage, "invalid --cpus '%s'", arg);
		o->has_cpus = true;
		return 0;
	case OPT_DISK:
		if (al_parse_size(arg, &o->disk_bytes, &err) < 0 || o->disk_bytes == 0)
			return usage_error(usage, "invalid --disk '%s'", arg);
		o->has_disk = true;
		return 0;
	case OPT_ROOTFS:
		o->rootfs = arg;
		return 0;
	case OPT_IMAGE:
		o->image = arg;
		return 0;
	case OPT_NAME:
		if (!al_valid_name(arg))
			return usage_error(usage, "invalid --name '%s'", arg);
		o->name = arg;
		return 0;
	case OPT_MANIFEST:
		o->manifest_file = arg;
		return 0;
	case OPT_TTL:
		if (parse_seconds(arg, &o->ttl) < 0)
			return usage_error(usage, "invalid --ttl '%s': expected seconds", arg);
		return 0;
	case OPT_IDLE_TIMEOUT:
		if (parse_seconds(arg, &o->idle_timeout) < 0)
			return usage_error(usage, "invalid --idle-timeout '%s': expected seconds",
			                   arg);
		return 0;
	case OPT_LABEL: {
		const char *eq = strchr(arg, '=');
		_cleanup_free_ char *key = eq ? strndup(arg, (size_t)(eq - arg)) : NULL;
		if (!o->labels || !eq || eq == arg)
			return usage_error(usage, "invalid --label '%s': expected KEY=VALUE", arg);
		if (!key)
			return usage_error(usage, "out of memory");
		cJSON_DeleteItemFromObjectCaseSensitive(o->labels, key);
		cJSON_AddStringToObject(o->labels, key, eq + 1);
		return 0;
	}
	default:
		return 1;
	}
}

static int create_request(const struct create_opts *o, cJSON **out, struct al_error *err)
{
	_cleanup_cjson_ cJSON *req = cJSON_CreateObject();
	cJSON *limits = NULL;

	if (!req)
		return al_error_set(err, ENOMEM, "out of memory");
	if (o->name)
		cJSON_AddStringToObject(req, "name", o->name);
	if (o->rootfs)
		cJSON_AddStringToObject(req, "rootfs", o->rootfs);
	if (o->image)
		cJSON_AddStringToObject(req, "image", o->image);
	if (o->has_memory || o->has_pids || o->has_cpus || o->has_disk) {
		limits = cJSON_AddObjectToObject(req, "limits");
		if (o->has_memory)
			cJSON_AddNumberToObject(limits, "memory_bytes", (double)o->memory_bytes);
		if (o->has_pids)
			cJSON_AddNumberToObject(limits, "pids", (double)o->pids);
		if (o->has_cpus)
			cJSON_AddNumberToObject(limits, "cpus", o->cpus);
		if (o->has_disk)
			cJSON_AddNumberToObject(limits, "disk_bytes", (double)o->disk_bytes);
	}
	if (o->manifest_file) {
		_cleanup_free_ char *text = NULL;
		size_t len = 0;
		cJSON *manifest;
		int r = al_read_file(o->manifest_file, 16u << 20, &text, &len, err);
		if (r < 0)
			return al_error_prefix(err, "manifest");
		manifest = cJSON_ParseWithLength(text, len);
		if (!cJSON_IsObject(manifest)) {
			cJSON_Delete(manifest);
			return al_error_set(err, EINVAL, "manifest %s: not a JSON object",
			                    o->manifest_file);
		}
		cJSON_AddItemToObject(req, "manifest", manifest);
	}
	if (o->env && cJSON_GetArraySize(o->env) > 0)
		cJSON_AddItemReferenceToObject(req, "env", o->env);
	if (o->ttl)
		cJSON_AddNumberToObject(req, "ttl", (double)o->ttl);
	if (o->idle_timeout)
		cJSON_AddNumberToObject(req, "idle_timeout", (double)o->idle_timeout);
	if (o->labels && cJSON_GetArraySize(o->labels) > 0)
		cJSON_AddItemReferenceToObject(req, "labels", o->labels);
	*out = TAKE_PTR(req);
	return 0;
}

/* Create a sandbox; its id goes to *id. */
static int create_sandbox(struct client *c, const struct create_opts *o, char **id,
                          struct al_error *err)
{
	_cleanup_cjson_ cJSON *req = NULL;
	_cleanup_cjson_ cJSON *res = NULL;
	const cJSON *jid;
	int r;

	r = create_request(o, &req, err);
	if (r < 0)
		return r;
	/* Not abortable: an abandoned create could leave a sandbox we know nothing of. */
	r = api_json(c, "POST", "/v1/sandboxes?view=summary", req, false, NULL, &res, err);
	if (r < 0)
		return al_error_prefix(err, "create sandbox");
	jid = cJSON_GetObjectItemCaseSensitive(res, "id");
	if (!cJSON_IsString(jid))
		return al_error_set(err, EPROTO, "create sandbox: airlockd sent no id");
	*id = strdup(jid->valuestring);
	return *id ? 0 : al_error_set(err, ENOMEM, "out of memory");
}

/* wait: return once airlockd has torn it down, not just killed it (rm does;
 * run, whose sandbox nobody looks at again, does not). */
static int destroy_sandbox(struct client *c, const char *id, bool wait, struct al_error *err)
{
	_cleanup_free_ char *path = sandbox_path(c, id, wait ? "" : "?wait=0");
	_cleanup_cjson_ cJSON *res = NULL;
	int r;

	if (!path)
		return al_error_set(err, ENOMEM, "out of memory");
	r = api_json(c, "DELETE", path, NULL, false, NULL, &res, err);
	if (r < 0)
		return al_error_prefix(err, "destroy sandbox %s", id);
	return 0;
}

/* ---- running a command: exec, then poll with stdio streamed ---- */

enum stdin_kind { STDIN_DETACHED, STDIN_ATTACHED };

/* A terminal is read only with -i (check_stdin refuses it without); /dev/null or a closed fd
 * means no input. */
static enum stdin_kind stdin_kind(void)
{
	struct stat st;

	if (fstat(STDIN_FILENO, &st) < 0 || isatty(STDIN_FILENO))
		return STDIN_DETACHED;
	if (S_ISCHR(st.st_mode) && st.st_rdev == makedev(1, 3))
		return STDIN_DETACHED;
	return STDIN_ATTACHED;
}

/*
 * Read what stdin has without blocking, up to max bytes in total in buf.
 * Returns 1 at end of input, 0 otherwise.  A read error counts as the end.
 */
static int read_available_stdin(struct al_buf *buf, size_t max, int timeout_ms)
{
	char chunk[65536];

	while (buf->len < max) {
		struct pollfd p = {.fd = STDIN_FILENO, .events = POLLIN};
		size_t want = max - buf->len < sizeof(chunk) ? max - buf->len : sizeof(chunk);
		ssize_t n;
		int pr = poll(&p, 1, timeout_ms);

		if (pr < 0 && errno == EINTR)
			return 0;
		if (pr <= 0)
			return pr < 0 ? 1 : 0;
		timeout_ms = 0;
		n = read(STDIN_FILENO, chunk, want);
		if (n < 0) {
			if (errno == EINTR || errno == EAGAIN)
				return 0;
			return 1;
		}
		if (n == 0)
			return 1;
		if (al_buf_append(buf, chunk, (size_t)n) < 0)
			return 1;
	}
	return 0;
}

struct run_state {
	struct client *c;
	const char *id;
	char *process_id;
	bool stdout_closed;
	bool stderr_closed;
	bool warned_truncated;
	bool finished;
	int exit_status;
};

static void emit_output(const cJSON *res, const char *key, int fd, bool *closed)
{
	const cJSON *data = cJSON_GetObjectItemCaseSensitive(res, key);
	_cleanup_free_ char *bytes = NULL;
	struct al_error err = AL_ERROR_INIT;
	size_t len = 0;

	if (!cJSON_IsString(data) || data->valuestring[0] == '\0' || *closed)
		return;
	if (al_base64_decode(data->valuestring, &bytes, &len, &err) < 0) {
		fprintf(stderr, "airlock: %s output: %s\n", key, err.msg);
		return;
	}
	/* A closed pipe (airlock run ... | head) only stops that stream. */
	if (len > 0 && al_write_all(fd, bytes, len) < 0)
		*closed = true;
}

static int signal_number(const cJSON *sig)
{
	const char *name;

	if (cJSON_IsNumber(sig))
		return sig->valueint;
	if (!cJSON_IsString(sig))
		return 0;
	name = sig->valuestring;
	if (strncmp(name, "SIG", 3) == 0)
		name += 3;
	for (int n = 1; n < NSIG; n++) {
		const char *abbrev = sigabbrev_np(n);
		if (abbrev && strcmp(abbrev, name) == 0)
			return n;
	}
	return atoi(name);
}

/* Write the output of one exec/poll answer and note whether the process ended. */
static int handle_result(struct run_state *st, const cJSON *res, struct al_error *err)
{
	const cJSON *running = cJSON_GetObjectItemCaseSensitive(res, "running");
	const cJSON *pid = cJSON_GetObjectItemCaseSensitive(res, "process_id");
	const cJSON *exit_code = cJSON_GetObjectItemCaseSensitive(res, "exit_code");
	int sig;

	emit_output(res, "stdout", STDOUT_FILENO, &st->stdout_closed);
	emit_output(res, "stderr", STDERR_FILENO, &st->stderr_closed);
	if (!st->warned_truncated &&
	    (cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(res, "stdout_truncated")) ||
	     cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(res, "stderr_truncated")))) {
		fprintf(stderr, "airlock: output was truncated by airlockd\n");
		st->warned_truncated = true;
	}

	if (cJSON_IsTrue(running)) {
		if (!st->process_id) {
			if (cJSON_IsString(pid))
				st->process_id = strdup(pid->valuestring);
			else if (cJSON_IsNumber(pid) &&
			         asprintf(&st->process_id, "%d", pid->valueint) < 0)
				st->process_id = NULL;
			if (!st->process_id)
				return al_error_set(
				    err, EPROTO, "airlockd sent a running process without an id");
		}
		return 0;
	}

	st->finished = true;
	if (cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(res, "timed_out"))) {
		fprintf(stderr, "airlock: command timed out and was killed\n");
		st->exit_status = EXIT_TIMEOUT;
		return 0;
	}
	sig = signal_number(cJSON_GetObjectItemCaseSensitive(res, "signal"));
	if (cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(res, "oom_killed"))) {
		double limit = al_json_num(res, "memory_limit_bytes", 0);
		char text[32];
		human_size(limit, text, sizeof(text));
		fprintf(stderr,
		        "airlock: killed: out of memory (limit %s; raise it with --memory)\n",
		        limit > 0 ? text : "none");
	}
	if (sig > 0)
		st->exit_status = 128 + sig;
	else if (cJSON_IsNumber(exit_code))
		st->exit_status = exit_code->valueint;
	else
		return al_error_set(err, EPROTO, "airlockd sent neither an exit code nor a signal");
	return 0;
}

static int poll_process(struct run_state *st, int yield_ms, bool abortable, cJSON **res,
                        struct al_error *err)
{
	_cleanup_curl_free_ char *pid = curl_easy_escape(st->c->curl, st->process_id, 0);
	_cleanup_free_ char *suffix = NULL;
	_cleanup_free_ char *path = NULL;

	if (!pid ||
	    asprintf(&suffix, "/processes/%s?yield_ms=%d&encoding=base64", pid, yield_ms) < 0)
		return al_error_set(err, ENOMEM, "out of memory");
	path = sandbox_path(st->c, st->id, suffix);
	if (!path)
		return al_error_set(err, ENOMEM, "out of memory");
	return api_json(st->c, "GET", path, NULL, abortable, NULL, res, err);
}

/* Returns the HTTP status through *status so a refused write can be told from a lost process. */
static int send_stdin(struct run_state *st, const struct al_buf *data, bool close_stdin,
                      int yield_ms, bool abortable, long *status, cJSON **res, struct al_error *err)
{
	_cleanup_curl_free_ char *pid = curl_easy_escape(st->c->curl, st->process_id, 0);
	_cleanup_free_ char *suffix = NULL;
	_cleanup_free_ char *path = NULL;
	_cleanup_free_ char *encoded = NULL;
	_cleanup_cjson_ cJSON *req = cJSON_CreateObject();

	if (!pid || !req || asprintf(&suffix, "/processes/%s/stdin", pid) < 0)
		return al_error_set(err, ENOMEM, "out of memory");
	path = sandbox_path(st->c, st->id, suffix);
	encoded = al_base64_encode(data->data ? data->data : "", data->len);
	if (!path || !encoded)
		return al_error_set(err, ENOMEM, "out of memory");
	cJSON_AddStringToObject(req, "data_base64", encoded);
	cJSON_AddBoolToObject(req, "close", close_stdin);
	cJSON_AddNumberToObject(req, "yield_ms", yield_ms);
	cJSON_AddStringToObject(req, "encoding", "base64");
	return api_json(st->c, "POST", path, req, abortable, status, res, err);
}

static int kill_process(struct run_state *st, const char *signame)
{
	_cleanup_curl_free_ char *pid = curl_easy_escape(st->c->curl, st->process_id, 0);
	_cleanup_free_ char *suffix = NULL;
	_cleanup_free_ char *path = NULL;
	_cleanup_cjson_ cJSON *res = NULL;
	struct al_error err = AL_ERROR_INIT;

	if (!pid || asprintf(&suffix, "/processes/%s?signal=%s", pid, signame) < 0)
		return -ENOMEM;
	path = sandbox_path(st->c, st->id, suffix);
	if (!path)
		return -ENOMEM;
	/* The process may have ended in the meantime; the next poll tells. */
	return api_json(st->c, "DELETE", path, NULL, false, NULL, &res, &err);
}

struct exec_opts {
	char **argv;
	const char *cwd;
	cJSON *env;
	double timeout_ms;
	bool interactive; /* -i */
	bool tty;         /* -t */
	/* run: the sandbox goes away on a signal, so transfers may be abandoned. */
	bool destroy_on_signal;
};

/*
 * Run o->argv in the sandbox and stream its stdio.  Returns the command's exit
 * status, or a negative code with err filled.  On a signal: with
 * destroy_on_signal returns -EINTR at once (the caller destroys the sandbox);
 * otherwise forwards it to the process (KILL the second time) and waits.
 */
static int run_command_in(struct client *c, const char *id, const struct create_opts *create,
                          char **created, bool *removed, const struct exec_opts *o,
                          struct al_error *err);

/*
 * With create NULL, run in sandbox id.  Otherwise make the sandbox first
 * and put its id in *created (the caller's to free and, unless *removed,
 * destroy): when stdin needs no streaming, in the same request as the
 * command ("exec" and "remove" in the create request), so a command that
 * ends within the first yield costs one round trip and takes its sandbox
 * with it.
 */
static int run_command_in(struct client *c, const char *id, const struct create_opts *create,
                          char **created, bool *removed, const struct exec_opts *o,
                          struct al_error *err)
{
	_cleanup_free_ char *path = NULL;
	_cleanup_free_ char *inline_b64 = NULL;
	_cleanup_buf_ struct al_buf pending = {0};
	_cleanup_cjson_ cJSON *req = cJSON_CreateObject();
	_cleanup_cjson_ cJSON *res = NULL;
	struct run_state st = {.c = c};
	bool stdin_open = false, stdin_eof = false;
	int signals_forwarded = 0;
	cJSON *argv;
	int r;

	if (!req)
		return al_error_set(err, ENOMEM, "out of memory");
	argv = cJSON_AddArrayToObject(req, "argv");
	for (char **a = o->argv; *a; a++)
		cJSON_AddItemToArray(argv, cJSON_CreateString(*a));
	if (o->cwd)
		cJSON_AddStringToObject(req, "cwd", o->cwd);
	if (o->env && cJSON_GetArraySize(o->env) > 0)
		cJSON_AddItemReferenceToObject(req, "env", o->env);
	cJSON_AddNumberToObject(req, "timeout_ms", o->timeout_ms);
	cJSON_AddNumberToObject(req, "max_output_bytes", MAX_OUTPUT_BYTES);
	cJSON_AddStringToObject(req, "encoding", "base64");

	if (stdin_kind() == STDIN_ATTACHED) {
		/* Input that is already complete (a file, a finished pipe) goes inline. */
		stdin_eof = read_available_stdin(&pending, MAX_INLINE_STDIN, 0);
		if (stdin_eof) {
			inline_b64 =
			    al_base64_encode(pending.data ? pending.data : "", pending.len);
			if (!inline_b64)
				return al_error_set(err, ENOMEM, "out of memory");
			cJSON_AddStringToObject(req, "stdin_base64", inline_b64);
			pending.len = 0;
		} else {
			cJSON_AddBoolToObject(req, "keep_stdin_open", true);
			stdin_open = true;
		}
	}
	/* A create request cannot be abandoned (its sandbox would be lost), so
	 * it yields sooner: a signal waits at most that long. */
	cJSON_AddNumberToObject(req, "yield_ms",
	                        stdin_open ? STDIN_YIELD_MS
	                        : create   ? CREATE_EXEC_YIELD_MS
	                                   : FIRST_YIELD_MS);

	if (create && !stdin_open) {
		_cleanup_cjson_ cJSON *creq = NULL, *cres = NULL;
		const cJSON *jid;
		r = create_request(create, &creq, err);
		if (r < 0)
			return r;
		if (!cJSON_AddItemReferenceToObject(creq, "exec", req) ||
		    !cJSON_AddTrueToObject(creq, "remove"))
			return al_error_set(err, ENOMEM, "out of memory");
		/* Not abortable: an abandoned create could leave a sandbox we know
		 * nothing of. */
		r = api_json(c, "POST", "/v1/sandboxes?view=summary", creq, false, NULL, &cres,
		             err);
		if (r < 0)
			return al_error_prefix(err, "create sandbox");
		jid = cJSON_GetObjectItemCaseSensitive(cres, "id");
		if (!cJSON_IsString(jid))
			return al_error_set(err, EPROTO, "create sandbox: airlockd sent no id");
		id = *created = strdup(jid->valuestring);
		if (!id)
			return al_error_set(err, ENOMEM, "out of memory");
		res = cJSON_DetachItemFromObjectCaseSensitive(cres, "exec");
		*removed = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(cres, "removed"));
	}
	/* Without a result: no create asked for one, or an airlockd that does
	 * not know "exec" (an older one) made the sandbox only. */
	if (!cJSON_IsObject(res)) {
		if (create && !id) {
			r = create_sandbox(c, create, created, err);
			if (r < 0)
				return r;
			id = *created;
		}
		path = sandbox_path(c, id, "/exec");
		if (!path)
			return al_error_set(err, ENOMEM, "out of memory");
		cJSON_Delete(res);
		res = NULL;
		r = api_json(c, "POST", path, req, o->destroy_on_signal, NULL, &res, err);
		if (r < 0)
			return al_error_prefix(err, "exec in sandbox %s", id);
	}
	st.id = id;
	r = handle_result(&st, res, err);

	while (r >= 0 && !st.finished) {
		cJSON_Delete(res);
		res = NULL;

		if (pending_signal) {
			if (o->destroy_on_signal) {
				r = al_error_set(err, EINTR, "interrupted by signal %d",
				                 (int)pending_signal);
				break;
			}
			kill_process(&st, signals_forwarded++ > 0    ? "KILL"
			                  : pending_signal == SIGINT ? "INT"
			                  : pending_signal == SIGHUP ? "HUP"
			                                             : "TERM");
			pending_signal = 0;
		}

		if (stdin_open) {
			long status = 0;
			if (pending.len == 0 && !stdin_eof)
				stdin_eof =
				    read_available_stdin(&pending, STDIN_CHUNK, STDIN_POLL_MS);
			if (pending.len == 0 && !stdin_eof) {
				r = poll_process(&st, STDIN_YIELD_MS, o->destroy_on_signal, &res,
				                 err);
			} else {
				r = send_stdin(&st, &pending, stdin_eof,
				               stdin_eof ? POLL_YIELD_MS : STDIN_YIELD_MS,
				               o->destroy_on_signal, &status, &res, err);
				pending.len = 0;
				if (stdin_eof)
					stdin_open = false;
				/* The process closed its stdin or is ending: keep collecting. */
				if (r < 0 && status >= 400 && status != 404) {
					stdin_open = false;
					r = 0;
					continue;
				}
			}
		} else {
			r = poll_process(&st, POLL_YIELD_MS, o->destroy_on_signal, &res, err);
		}
		if (r < 0) {
			if (r == -EINTR && o->destroy_on_signal)
				break;
			al_error_prefix(err, "process %s in sandbox %s", st.process_id, id);
			break;
		}
		r = handle_result(&st, res, err);
	}
	free(st.process_id);
	if (r < 0)
		return r;
	return st.exit_status;
}

/* ---- -i and -t: one streamed connection (stream.c) ---- */

/*
 * What stdin may be for o: a terminal is read only with -i (silently
 * dropping what someone types is the one wrong answer), and -it needs one.
 * Returns 0 or a usage error's exit status.
 */
static int check_stdin(const struct exec_opts *o, const char *usage)
{
	bool terminal = isatty(STDIN_FILENO);

	/* Not an error: `airlock exec ID ls` at a prompt should just work, as
	 * `docker exec` does; but never silence either (a `bash` that exits at
	 * once, a `python3` without a prompt): say why and what to pass. */
	if (terminal && !o->interactive && !o->tty)
		fprintf(stderr, "airlock: stdin is a terminal and is not passed to the command: "
		                "use -it for an interactive session, -i to stream it\n");
	if (!terminal && o->interactive && o->tty)
		return usage_error(usage,
		                   "-it needs stdin to be a terminal; use -i alone to stream "
		                   "stdin that is not one");
	return 0;
}

static int run_streamed(struct client *c, const char *id, const struct exec_opts *o,
                        struct al_error *err)
{
	_cleanup_cjson_ cJSON *req = cJSON_CreateObject();
	_cleanup_free_ char *path = sandbox_path(c, id, "/exec");
	_cleanup_free_ char *body = NULL;
	unsigned rows, cols;
	cJSON *argv;
	int r;

	if (!req || !path)
		return al_error_set(err, ENOMEM, "out of memory");
	argv = cJSON_AddArrayToObject(req, "argv");
	for (char **a = o->argv; *a; a++)
		cJSON_AddItemToArray(argv, cJSON_CreateString(*a));
	if (o->cwd)
		cJSON_AddStringToObject(req, "cwd", o->cwd);
	if (o->env && cJSON_GetArraySize(o->env) > 0)
		cJSON_AddItemReferenceToObject(req, "env", o->env);
	cJSON_AddNumberToObject(req, "timeout_ms", o->timeout_ms);
	if (o->tty) {
		cJSON_AddTrueToObject(req, "tty");
		if (stream_window_size(&rows, &cols)) {
			cJSON_AddNumberToObject(req, "rows", rows);
			cJSON_AddNumberToObject(req, "cols", cols);
		}
	}
	body = cJSON_PrintUnformatted(req);
	if (!body)
		return al_error_set(err, ENOMEM, "out of memory");
	r = stream_exec(
	    &(struct stream_opts){.socket_path = c->socket_path,
	                          .path = path,
	                          .body = body,
	                          .tty = o->tty,
	                          .stdin = o->interactive || stdin_kind() == STDIN_ATTACHED},
	    err);
	if (r < 0)
		return al_error_prefix(err, "exec in sandbox %s", id);
	return r;
}

/* ---- verbs ---- */

struct verb_ctx {
	const char *socket_path;
};

/*
 * Handle one option shared by run and exec (--env, --cwd, --timeout);
 * returns 0 when handled, 1 when c is not one of them, or an exit status
 * (> 1) for a usage error.
 */
static int exec_option(struct exec_opts *o, int c, const char *arg, const char *usage)
{
	switch (c) {
	case 'e':
		return add_env(o->env, arg, usage);
	case 'w':
		o->cwd = arg;
		return 0;
	case OPT_TIMEOUT:
		if (parse_timeout_ms(arg, &o->timeout_ms) < 0)
			return usage_error(usage, "invalid --timeout '%s'", arg);
		return 0;
	case 'i':
		o->interactive = true;
		return 0;
	case 't':
		o->tty = true;
		return 0;
	default:
		return 1;
	}
}

static int image_path(struct client *c, const char *name, char **out)
{
	_cleanup_curl_free_ char *escaped = curl_easy_escape(c->curl, name, 0);

	if (!escaped || asprintf(out, "/v1/images/%s", escaped) < 0) {
		*out = NULL;
		return -ENOMEM;
	}
	return 0;
}

/* What `run --image` runs: Entrypoint, then args or else Cmd (as docker run). */
static int image_command(struct client *c, const char *image, char **args, char ***out,
                         struct al_error *err)
{
	_cleanup_free_ char *path = NULL;
	_cleanup_cjson_ cJSON *res = NULL;
	_cleanup_strv_ char **v = calloc(1, sizeof(char *));
	const cJSON *cfg, *it;
	int r;

	if (!v || image_path(c, image, &path) < 0)
		return al_error_set(err, ENOMEM, "out of memory");
	r = api_json(c, "GET", path, NULL, false, NULL, &res, err);
	if (r < 0)
		return al_error_prefix(err, "image %s", image);
	cfg = cJSON_GetObjectItemCaseSensitive(res, "config");
	cJSON_ArrayForEach(it,
	                   cJSON_GetObjectItemCaseSensitive(
	                       cfg, "Entrypoint")) if (cJSON_IsString(it) &&
	                                               al_strv_push(&v, it->valuestring) <
	                                                   0) return al_error_set(err, ENOMEM,
	                                                                          "out of memory");
	if (args[0]) {
		for (char **a = args; *a; a++)
			if (al_strv_push(&v, *a) < 0)
				return al_error_set(err, ENOMEM, "out of memory");
	} else {
		cJSON_ArrayForEach(it,
		                   cJSON_GetObjectItemCaseSensitive(
		                       cfg, "Cmd")) if (cJSON_IsString(it) &&
		                                        al_strv_push(&v, it->valuestring) <
		                                            0) return al_error_set(err, ENOMEM,
		                                                                   "out of memory");
	}
	if (!v[0])
		return al_error_set(err, EINVAL,
		                    "image %s has no Entrypoint or Cmd: give a command", image);
	*out = TAKE_PTR(v);
	return 0;
}

static int verb_run(struct verb_ctx *ctx, int argc, char **argv)
{
	static const struct option longopts[] = {
	    {"memory", required_argument, NULL, 'm'},
	    {"pids", required_argument, NULL, OPT_PIDS},
	    {"cpus", required_argument, NULL, OPT_CPUS},
	    {"disk", required_argument, NULL, OPT_DISK},
	    {"rootfs", required_argument, NULL, OPT_ROOTFS},
	    {"image", required_argument, NULL, OPT_IMAGE},
	    {"name", required_argument, NULL, OPT_NAME},
	    {"manifest", required_argument, NULL, OPT_MANIFEST},
	    {"env", required_argument, NULL, 'e'},
	    {"cwd", required_argument, NULL, 'w'},
	    {"timeout", required_argument, NULL, OPT_TIMEOUT},
	    {"interactive", no_argument, NULL, 'i'},
	    {"tty", no_argument, NULL, 't'},
	    {"help", no_argument, NULL, 'h'},
	    {0},
	};
	_cleanup_cjson_ cJSON *env = cJSON_CreateObject();
	_cleanup_free_ char *id = NULL;
	struct create_opts co = {0};
	struct exec_opts eo = {.env = env, .destroy_on_signal = true};
	_cleanup_strv_ char **image_argv = NULL;
	struct al_error err = AL_ERROR_INIT;
	struct client c = {0};
	bool removed = false;
	int opt, r, status;

	while ((opt = getopt_long(argc, argv, "+:m:e:w:ith", longopts, NULL)) != -1) {
		switch (opt) {
		case 'h':
			return show_usage(usage_run);
		case '?':
		case ':':
			return bad_option(usage_run, opt, argv);
		default:
			r = exec_option(&eo, opt, optarg, usage_run);
			if (r == 1)
				r = create_option(&co, opt, optarg, usage_run);
			if (r)
				return r == 1 ? bad_option(usage_run, '?', argv) : r;
		}
	}
	if (optind >= argc && !co.image)
		return usage_error(usage_run, "no command given");
	eo.argv = argv + optind;
	r = check_stdin(&eo, usage_run);
	if (r)
		return r;

	if (client_open(&c, ctx->socket_path, &err) < 0)
		return runtime_error(&err);
	if (co.image) {
		r = image_command(&c, co.image, argv + optind, &image_argv, &err);
		if (r < 0) {
			client_close(&c);
			return runtime_error(&err);
		}
		eo.argv = image_argv;
	}
	if (eo.interactive || eo.tty) {
		r = create_sandbox(&c, &co, &id, &err);
		if (r == 0)
			r = run_streamed(&c, id, &eo, &err);
	} else {
		r = run_command_in(&c, NULL, &co, &id, &removed, &eo, &err);
	}
	/* A signal that came during the create request (which cannot be
	 * abandoned) counts even if the command then ended. */
	if (r == -EINTR || (r >= 0 && pending_signal))
		status = 128 + pending_signal;
	else if (r < 0)
		status = runtime_error(&err);
	else
		status = r;

	/* Whatever happened, the sandbox goes, if it did not with its command. */
	al_error_clear(&err);
	if (id && !removed && destroy_sandbox(&c, id, false, &err) < 0)
		status = runtime_error(&err);
	client_close(&c);
	return status;
}

static int verb_create(struct verb_ctx *ctx, int argc, char **argv)
{
	static const struct option longopts[] = {
	    {"memory", required_argument, NULL, 'm'},
	    {"pids", required_argument, NULL, OPT_PIDS},
	    {"cpus", required_argument, NULL, OPT_CPUS},
	    {"disk", required_argument, NULL, OPT_DISK},
	    {"rootfs", required_argument, NULL, OPT_ROOTFS},
	    {"image", required_argument, NULL, OPT_IMAGE},
	    {"name", required_argument, NULL, OPT_NAME},
	    {"manifest", required_argument, NULL, OPT_MANIFEST},
	    {"env", required_argument, NULL, 'e'},
	    {"ttl", required_argument, NULL, OPT_TTL},
	    {"idle-timeout", required_argument, NULL, OPT_IDLE_TIMEOUT},
	    {"label", required_argument, NULL, OPT_LABEL},
	    {"help", no_argument, NULL, 'h'},
	    {0},
	};
	_cleanup_cjson_ cJSON *env = cJSON_CreateObject();
	_cleanup_cjson_ cJSON *labels = cJSON_CreateObject();
	_cleanup_free_ char *id = NULL;
	struct create_opts co = {.env = env, .labels = labels};
	struct al_error err = AL_ERROR_INIT;
	struct client c = {0};
	int opt, r;

	while ((opt = getopt_long(argc, argv, "+:m:e:h", longopts, NULL)) != -1) {
		switch (opt) {
		case 'h':
			return show_usage(usage_create);
		case 'e':
			r = add_env(env, optarg, usage_create);
			if (r)
				return r;
			break;
		case '?':
		case ':':
			return bad_option(usage_create, opt, argv);
		default:
			r = create_option(&co, opt, optarg, usage_create);
			if (r)
				return r == 1 ? bad_option(usage_create, '?', argv) : r;
		}
	}
	if (optind < argc)
		return usage_error(usage_create, "unexpected argument '%s'", argv[optind]);

	if (client_open(&c, ctx->socket_path, &err) < 0)
		return runtime_error(&err);
	r = create_sandbox(&c, &co, &id, &err);
	client_close(&c);
	if (r < 0)
		return runtime_error(&err);
	printf("%s\n", id);
	return 0;
}

/* exec options may come before and after the id, as in 'airlock exec -e A=1 ID -w /tmp CMD'. */
static int verb_exec(struct verb_ctx *ctx, int argc, char **argv)
{
	static const struct option longopts[] = {
	    {"env", required_argument, NULL, 'e'},
	    {"cwd", required_argument, NULL, 'w'},
	    {"timeout", required_argument, NULL, OPT_TIMEOUT},
	    {"interactive", no_argument, NULL, 'i'},
	    {"tty", no_argument, NULL, 't'},
	    {"help", no_argument, NULL, 'h'},
	    {0},
	};
	_cleanup_cjson_ cJSON *env = cJSON_CreateObject();
	struct exec_opts eo = {.env = env};
	struct al_error err = AL_ERROR_INIT;
	struct client c = {0};
	const char *id = NULL;
	int opt, r;

	for (int pass = 0; pass < 2; pass++) {
		while ((opt = getopt_long(argc, argv, "+:e:w:ith", longopts, NULL)) != -1) {
			switch (opt) {
			case 'h':
				return show_usage(usage_exec);
			default:
				r = exec_option(&eo, opt, optarg, usage_exec);
				if (r)
					return r == 1 ? bad_option(usage_exec, opt, argv) : r;
			}
		}
		if (pass == 1 || optind >= argc)
			break;
		/* "--" before the id ends the options altogether. */
		if (strcmp(argv[optind - 1], "--") == 0) {
			id = argv[optind++];
			break;
		}
		id = argv[optind];
		/* Continue parsing after the id. */
		argv += optind;
		argc -= optind;
		optind = 0;
	}
	if (!id)
		return usage_error(usage_exec, "no sandbox id given");
	if (optind >= argc)
		return usage_error(usage_exec, "no command given");
	eo.argv = argv + optind;
	r = check_stdin(&eo, usage_exec);
	if (r)
		return r;

	if (client_open(&c, ctx->socket_path, &err) < 0)
		return runtime_error(&err);
	/* Streamed whatever the command: its output and input are relayed at
	 * pipe speed, in bounded memory, at any size (the JSON API holds
	 * output up to a cap). */
	r = run_streamed(&c, id, &eo, &err);
	client_close(&c);
	if (r < 0)
		return runtime_error(&err);
	return r;
}

/* Verbs that take only --help and a fixed number of operands. */
static int simple_args(int argc, char **argv, const char *usage, int min, int max, int *status)
{
	static const struct option longopts[] = {
	    {"help", no_argument, NULL, 'h'},
	    {0},
	};
	int opt;

	while ((opt = getopt_long(argc, argv, "+:h", longopts, NULL)) != -1) {
		if (opt == 'h') {
			*status = show_usage(usage);
			return -1;
		}
		*status = bad_option(usage, opt, argv);
		return -1;
	}
	if (argc - optind < min) {
		*status = usage_error(usage, "missing argument");
		return -1;
	}
	if (max >= 0 && argc - optind > max) {
		*status = usage_error(usage, "unexpected argument '%s'", argv[optind + max]);
		return -1;
	}
	return 0;
}

static void print_json(const cJSON *json)
{
	_cleanup_free_ char *text = cJSON_Print(json);

	if (text)
		printf("%s\n", text);
}

static const char *json_string(const cJSON *obj, const char *key)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, key);

	return cJSON_IsString(v) ? v->valuestring : "";
}

static void print_cell(const char *text, size_t width, bool last)
{
	if (last)
		printf("%s\n", text);
	else
		printf("%-*s  ", (int)width, text);
}

/* Append filter f (label=K=V, state=S) to the list query *q. */
static int add_filter(struct client *c, const char *usage, const char *f, char **q)
{
	const char *eq = strchr(f, '=');
	_cleanup_curl_free_ char *value = NULL;
	char *more = NULL;

	if (!eq || (strncmp(f, "label=", 6) && strncmp(f, "state=", 6)) ||
	    (!strncmp(f, "label=", 6) && (!strchr(eq + 1, '=') || eq[1] == '=')))
		return usage_error(usage,
		                   "invalid --filter '%s': expected label=KEY=VALUE or "
		                   "state=running|stopped",
		                   f);
	value = curl_easy_escape(c->curl, eq + 1, 0);
	if (!value || asprintf(&more, "%s%.*s=%s", *q ? *q : "", (int)(eq - f), f, value) < 0)
		return usage_error(usage, "out of memory");
	free(*q);
	*q = more;
	return 0;
}

/* GET /v1/sandboxes with the filters of argv (opts of usage) into *res. */
static int list_sandboxes(struct client *c, char **filters, size_t n, const char *usage,
                          cJSON **res, int *status)
{
	struct al_error err = AL_ERROR_INIT;
	_cleanup_free_ char *q = NULL, *path = NULL;

	for (size_t i = 0; i < n; i++) {
		if (q) {
			char *amp = NULL;
			if (asprintf(&amp, "%s&", q) < 0)
				return *status = usage_error(usage, "out of memory"), -1;
			free(q);
			q = amp;
		}
		if ((*status = add_filter(c, usage, filters[i], &q)) != 0)
			return -1;
	}
	if (asprintf(&path, "/v1/sandboxes%s%s", q ? "?" : "", q ? q : "") < 0)
		return *status = usage_error(usage, "out of memory"), -1;
	if (api_json(c, "GET", path, NULL, false, NULL, res, &err) < 0)
		return *status = runtime_error(&err), -1;
	return 0;
}

static int verb_prune(struct verb_ctx *ctx, int argc, char **argv)
{
	static const struct option longopts[] = {
	    {"filter", required_argument, NULL, 'f'},
	    {"help", no_argument, NULL, 'h'},
	    {0},
	};
	_cleanup_cjson_ cJSON *res = NULL;
	struct al_error err = AL_ERROR_INIT;
	struct client c = {0};
	char *filters[32];
	size_t n = 0;
	const cJSON *sb;
	int opt, status = 0;
	char now[32];

	while ((opt = getopt_long(argc, argv, "+:hf:", longopts, NULL)) != -1) {
		if (opt == 'h')
			return show_usage(usage_prune);
		if (opt != 'f')
			return bad_option(usage_prune, opt, argv);
		if (n == AL_ARRAY_SIZE(filters))
			return usage_error(usage_prune, "at most %zu filters",
			                   AL_ARRAY_SIZE(filters));
		filters[n++] = optarg;
	}
	if (optind < argc)
		return usage_error(usage_prune, "unexpected argument '%s'", argv[optind]);
	if (client_open(&c, ctx->socket_path, &err) < 0)
		return runtime_error(&err);
	if (list_sandboxes(&c, filters, n, usage_prune, &res, &status) < 0) {
		client_close(&c);
		return status;
	}
	/* ISO 8601 UTC stamps of one format compare as strings. */
	al_iso8601_now(now, sizeof(now), false);
	cJSON_ArrayForEach(sb, cJSON_GetObjectItemCaseSensitive(res, "sandboxes"))
	{
		const char *id = json_string(sb, "id"), *expires = json_string(sb, "expires");
		bool stopped = !strcmp(json_string(sb, "state"), "stopped");

		if (!n && !stopped && !(expires[0] && strcmp(expires, now) <= 0))
			continue;
		al_error_clear(&err);
		if (destroy_sandbox(&c, id, true, &err) < 0 && err.code != ENOENT)
			status = runtime_error(&err);
		else
			printf("%s\n", id);
	}
	client_close(&c);
	return status;
}

static int verb_ls(struct verb_ctx *ctx, int argc, char **argv)
{
	static const struct option longopts[] = {
	    {"json", no_argument, NULL, OPT_JSON},
	    {"filter", required_argument, NULL, 'f'},
	    {"help", no_argument, NULL, 'h'},
	    {0},
	};
	char *filters[32];
	size_t n_filters = 0;
	static const char *const columns[] = {"id", "name", "state", "created", "rootfs"};
	static const char *const headings[] = {"ID", "NAME", "STATE", "CREATED", "ROOTFS"};
	_cleanup_cjson_ cJSON *res = NULL;
	struct al_error err = AL_ERROR_INIT;
	struct client c = {0};
	size_t width[AL_ARRAY_SIZE(columns)];
	const cJSON *list, *sb;
	bool json = false;
	int opt, r, status = 0;

	while ((opt = getopt_long(argc, argv, "+:hf:", longopts, NULL)) != -1) {
		if (opt == 'h')
			return show_usage(usage_ls);
		if (opt == OPT_JSON) {
			json = true;
		} else if (opt == 'f') {
			if (n_filters == AL_ARRAY_SIZE(filters))
				return usage_error(usage_ls, "at most %zu filters",
				                   AL_ARRAY_SIZE(filters));
			filters[n_filters++] = optarg;
		} else {
			return bad_option(usage_ls, opt, argv);
		}
	}
	if (optind < argc)
		return usage_error(usage_ls, "unexpected argument '%s'", argv[optind]);

	if (client_open(&c, ctx->socket_path, &err) < 0)
		return runtime_error(&err);
	r = list_sandboxes(&c, filters, n_filters, usage_ls, &res, &status);
	client_close(&c);
	if (r < 0)
		return status;
	if (json) {
		print_json(res);
		return 0;
	}
	list = cJSON_GetObjectItemCaseSensitive(res, "sandboxes");
	for (size_t i = 0; i < AL_ARRAY_SIZE(columns); i++) {
		width[i] = strlen(headings[i]);
		cJSON_ArrayForEach(sb, list)
		{
			size_t w = strlen(json_string(sb, columns[i]));
			if (w > width[i])
				width[i] = w;
		}
	}
	for (size_t i = 0; i < AL_ARRAY_SIZE(columns); i++)
		print_cell(headings[i], width[i], i + 1 == AL_ARRAY_SIZE(columns));
	cJSON_ArrayForEach(sb, list)
	{
		for (size_t i = 0; i < AL_ARRAY_SIZE(columns); i++)
			print_cell(json_string(sb, columns[i]), width[i],
			           i + 1 == AL_ARRAY_SIZE(columns));
	}
	return 0;
}

static int verb_inspect(struct verb_ctx *ctx, int argc, char **argv)
{
	_cleanup_cjson_ cJSON *res = NULL;
	_cleanup_free_ char *path = NULL;
	struct al_error err = AL_ERROR_INIT;
	struct client c = {0};
	int status, r;

	if (simple_args(argc, argv, usage_inspect, 1, 1, &status) < 0)
		return status;
	if (client_open(&c, ctx->socket_path, &err) < 0)
		return runtime_error(&err);
	path = sandbox_path(&c, argv[optind], "");
	r = path ? api_json(&c, "GET", path, NULL, false, NULL, &res, &err)
	         : al_error_set(&err, ENOMEM, "out of memory");
	client_close(&c);
	if (r < 0)
		return runtime_error(&err);
	print_json(res);
	return 0;
}

static const char usage_stats[] =
    "Usage: airlock stats [--json] [ID...]\n"
    "\n"
    "Show what sandboxes use (all of them when no ID is given): CPU (share of one\n"
    "CPU over a 1 s sample, and time used), memory, processes and disk against\n"
    "their limits, as the kernel reports them.\n"
    "\n"
    "      --json   one JSON object: {\"sandboxes\": [{id, name, cpu_percent,\n"
    "               cpu_seconds, memory_bytes, memory_limit_bytes, pids, pids_limit,\n"
    "               disk_bytes, disk_limit_bytes}]}\n";

/* Inspect of sandbox id into *out. */
static int inspect_sandbox(struct client *c, const char *id, cJSON **out, struct al_error *err)
{
	_cleanup_free_ char *path = sandbox_path(c, id, "");

	if (!path)
		return al_error_set(err, ENOMEM, "out of memory");
	return api_json(c, "GET", path, NULL, false, NULL, out, err);
}

/* The number at o.a.b(.c) (c may be NULL), or NAN when missing or null. */
static double json_path_num(const cJSON *o, const char *a, const char *b, const char *c)
{
	const cJSON *v =
	    cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(o, a), b);

	if (c)
		v = cJSON_GetObjectItemCaseSensitive(v, c);
	return cJSON_IsNumber(v) ? v->valuedouble : NAN;
}

static void human_or_dash(double v, char *buf, size_t len)
{
	if (isnan(v) || v <= 0)
		snprintf(buf, len, isnan(v) ? "-" : "0");
	else
		human_size(v, buf, len);
}

static int verb_stats(struct verb_ctx *ctx, int argc, char **argv)
{
	static const struct option longopts[] = {
	    {"json", no_argument, NULL, OPT_JSON},
	    {"help", no_argument, NULL, 'h'},
	    {0},
	};
	_cleanup_cjson_ cJSON *list = NULL, *out = cJSON_CreateObject();
	_cleanup_strv_ char **ids = NULL;
	_cleanup_free_ double *cpu0 = NULL;
	struct al_error err = AL_ERROR_INIT;
	struct client c = {0};
	uint64_t t0;
	size_t n = 0;
	bool json = false;
	int opt, status = 0;
	cJSON *rows = out ? cJSON_AddArrayToObject(out, "sandboxes") : NULL;

	while ((opt = getopt_long(argc, argv, "+:h", longopts, NULL)) != -1) {
		if (opt == 'h')
			return show_usage(usage_stats);
		if (opt != OPT_JSON)
			return bad_option(usage_stats, opt, argv);
		json = true;
	}
	if (!rows)
		return usage_error(usage_stats, "out of memory");
	if (client_open(&c, ctx->socket_path, &err) < 0)
		return runtime_error(&err);
	if (optind < argc) {
		ids = calloc(1, sizeof(char *));
		for (int i = optind; ids && i < argc; i++)
			if (al_strv_push(&ids, argv[i]) < 0)
				al_strv_freep(&ids);
	} else {
		const cJSON *sb;
		if (api_json(&c, "GET", "/v1/sandboxes", NULL, false, NULL, &list, &err) < 0) {
			client_close(&c);
			return runtime_error(&err);
		}
		ids = calloc(1, sizeof(char *));
		cJSON_ArrayForEach(sb, cJSON_GetObjectItemCaseSensitive(list, "sandboxes"))
		{
			if (ids && al_strv_push(&ids, json_string(sb, "id")) < 0)
				al_strv_freep(&ids);
		}
	}
	n = ids ? al_strv_length(ids) : 0;
	cpu0 = calloc(n + 1, sizeof(double));
	if (!ids || !cpu0) {
		client_close(&c);
		return usage_error(usage_stats, "out of memory");
	}
	/* CPU time is cumulative: its share comes from two readings 1 s apart. */
	t0 = al_now_ms();
	for (size_t i = 0; i < n; i++) {
		_cleanup_cjson_ cJSON *sb = NULL;
		cpu0[i] = NAN;
		al_error_clear(&err);
		if (inspect_sandbox(&c, ids[i], &sb, &err) == 0)
			cpu0[i] = json_path_num(sb, "cgroup", "usage", "cpu_seconds");
	}
	if (n)
		usleep(1000 * 1000);
	if (!json)
		printf("%-14s  %-20s  %6s  %9s  %19s  %11s  %17s\n", "ID", "NAME", "CPU %",
		       "CPU TIME", "MEM / LIMIT", "PIDS / MAX", "DISK / LIMIT");
	for (size_t i = 0; i < n; i++) {
		_cleanup_cjson_ cJSON *sb = NULL;
		double cpu, mem, mem_max, pids, pids_max, disk, disk_max, share;
		char a[16], b[16], line[64];
		cJSON *row;

		al_error_clear(&err);
		if (inspect_sandbox(&c, ids[i], &sb, &err) < 0) {
			status = runtime_error(&err);
			continue;
		}
		cpu = json_path_num(sb, "cgroup", "usage", "cpu_seconds");
		share = (cpu - cpu0[i]) * 100.0 / ((double)(al_now_ms() - t0) / 1000.0);
		mem = json_path_num(sb, "cgroup", "usage", "memory_bytes");
		mem_max = json_path_num(sb, "cgroup", "limits", "memory_bytes");
		pids = json_path_num(sb, "cgroup", "usage", "pids");
		pids_max = json_path_num(sb, "cgroup", "limits", "pids");
		disk = json_path_num(sb, "disk", "used_bytes", NULL);
		disk_max = json_path_num(sb, "disk", "limit_bytes", NULL);
		row = cJSON_CreateObject();
		cJSON_AddStringToObject(row, "id", json_string(sb, "id"));
		cJSON_AddStringToObject(row, "name", json_string(sb, "name"));
#define ADD_NUM(key, v)                                                                            \
	(isnan(v) ? cJSON_AddNullToObject(row, key) : cJSON_AddNumberToObject(row, key, v))
		ADD_NUM("cpu_percent", share);
		ADD_NUM("cpu_seconds", cpu);
		ADD_NUM("memory_bytes", mem);
		ADD_NUM("memory_limit_bytes", mem_max);
		ADD_NUM("pids", pids);
		ADD_NUM("pids_limit", pids_max);
		ADD_NUM("disk_bytes", disk);
		ADD_NUM("disk_limit_bytes", disk_max);
#undef ADD_NUM
		cJSON_AddItemToArray(rows, row);
		if (json)
			continue;
		human_or_dash(mem, a, sizeof(a));
		human_or_dash(mem_max, b, sizeof(b));
		snprintf(line, sizeof(line), "%s / %s", a, b);
		printf("%-14s  %-20.20s  %6.1f  %8.1fs  %19s  ", json_string(sb, "id"),
		       json_string(sb, "name"), isnan(share) ? 0.0 : share, isnan(cpu) ? 0.0 : cpu,
		       line);
		if (isnan(pids_max) || pids_max == 0)
			snprintf(b, sizeof(b), "-");
		else
			snprintf(b, sizeof(b), "%.0f", pids_max);
		snprintf(line, sizeof(line), "%.0f / %s", isnan(pids) ? 0 : pids, b);
		printf("%11s  ", line);
		human_or_dash(disk, a, sizeof(a));
		human_or_dash(disk_max, b, sizeof(b));
		snprintf(line, sizeof(line), "%s / %s", a, b);
		printf("%17s\n", line);
	}
	client_close(&c);
	if (json)
		print_json(out);
	return status;
}

/* One line of `airlock events`: TIME TYPE WHAT PID COUNT. */
static void print_event(const cJSON *e)
{
	const cJSON *pid = cJSON_GetObjectItemCaseSensitive(e, "pid");
	const char *type = json_string(e, "type");
	char what[96], pid_s[24];

	if (!strcmp(type, "seccomp"))
		snprintf(what, sizeof(what), "%s (%s, %s)", json_string(e, "syscall"),
		         json_string(e, "comm"), json_string(e, "action"));
	else if (!strcmp(type, "unrecorded"))
		snprintf(what, sizeof(what), "denials not recorded until %s (flood)",
		         cJSON_IsString(cJSON_GetObjectItemCaseSensitive(e, "last_time"))
		             ? json_string(e, "last_time")
		             : "later");
	else
		snprintf(what, sizeof(what), "%s",
		         !strcmp(type, "oom_kill")      ? "memory limit: OOM kill"
		         : !strcmp(type, "pids_max")    ? "pids limit reached"
		         : !strcmp(type, "pid1_exited") ? "PID 1 exited: sandbox stopped"
		                                        : type);
	if (cJSON_IsNumber(pid))
		snprintf(pid_s, sizeof(pid_s), "%d", (int)pid->valuedouble);
	else
		snprintf(pid_s, sizeof(pid_s), "-");
	printf("%-24s  %-8s  %-40s  %-7s  %.0f\n", json_string(e, "time"), type, what, pid_s,
	       cJSON_GetNumberValue(cJSON_GetObjectItemCaseSensitive(e, "count")));
}

static int verb_events(struct verb_ctx *ctx, int argc, char **argv)
{
	static const struct option longopts[] = {
	    {"json", no_argument, NULL, OPT_JSON},
	    {"help", no_argument, NULL, 'h'},
	    {0},
	};
	_cleanup_cjson_ cJSON *res = NULL;
	_cleanup_free_ char *path = NULL;
	struct al_error err = AL_ERROR_INIT;
	struct client c = {0};
	const cJSON *e, *v;
	bool json = false;
	int opt, r;

	while ((opt = getopt_long(argc, argv, "+:h", longopts, NULL)) != -1) {
		if (opt == 'h')
			return show_usage(usage_events);
		if (opt == OPT_JSON)
			json = true;
		else
			return bad_option(usage_events, opt, argv);
	}
	if (argc - optind != 1)
		return usage_error(usage_events,
		                   argc - optind < 1 ? "missing argument"
		                                     : "unexpected argument '%s'",
		                   argv[argc - 1]);
	if (client_open(&c, ctx->socket_path, &err) < 0)
		return runtime_error(&err);
	path = sandbox_path(&c, argv[optind], "/events");
	r = path ? api_json(&c, "GET", path, NULL, false, NULL, &res, &err)
	         : al_error_set(&err, ENOMEM, "out of memory");
	client_close(&c);
	if (r < 0)
		return runtime_error(&err);
	if (json) {
		print_json(res);
		return 0;
	}
	v = cJSON_GetObjectItemCaseSensitive(res, "collecting");
	if (!cJSON_IsTrue(v))
		fprintf(stderr, "airlock: warning: seccomp denials are not being recorded: %s\n",
		        json_string(res, "error"));
	printf("%-24s  %-8s  %-40s  %-7s  %s\n", "TIME", "TYPE", "WHAT", "PID", "COUNT");
	cJSON_ArrayForEach(e, cJSON_GetObjectItemCaseSensitive(res, "events")) print_event(e);
	v = cJSON_GetObjectItemCaseSensitive(res, "suppressed");
	if (cJSON_GetNumberValue(v) > 0)
		printf("(%.0f more denials were counted but not listed: rate limit)\n",
		       cJSON_GetNumberValue(v));
	return 0;
}

static int verb_rm(struct verb_ctx *ctx, int argc, char **argv)
{
	struct al_error err = AL_ERROR_INIT;
	struct client c = {0};
	int status = 0;

	if (simple_args(argc, argv, usage_rm, 1, -1, &status) < 0)
		return status;
	if (client_open(&c, ctx->socket_path, &err) < 0)
		return runtime_error(&err);
	/* Like rm: go on with the others when one fails. */
	for (int i = optind; i < argc; i++) {
		al_error_clear(&err);
		if (destroy_sandbox(&c, argv[i], true, &err) < 0)
			status = runtime_error(&err);
		else
			printf("%s\n", argv[i]);
	}
	client_close(&c);
	return status;
}

static char *files_path(struct client *c, const char *id, const char *file, const char *extra)
{
	_cleanup_curl_free_ char *escaped = curl_easy_escape(c->curl, file, 0);
	_cleanup_free_ char *suffix = NULL;

	if (!escaped || asprintf(&suffix, "/files?path=%s%s", escaped, extra) < 0)
		return NULL;
	return sandbox_path(c, id, suffix);
}

static int verb_write(struct verb_ctx *ctx, int argc, char **argv)
{
	_cleanup_free_ char *data = NULL;
	_cleanup_free_ char *path = NULL;
	struct al_error err = AL_ERROR_INIT;
	struct client c = {0};
	size_t len = 0;
	int status, r;

	if (simple_args(argc, argv, usage_write, 2, 2, &status) < 0)
		return status;
	if (al_read_fd(STDIN_FILENO, MAX_UPLOAD, &data, &len, &err) < 0) {
		al_error_prefix(&err, "stdin");
		return runtime_error(&err);
	}
	if (client_open(&c, ctx->socket_path, &err) < 0)
		return runtime_error(&err);
	path = files_path(&c, argv[optind], argv[optind + 1], "&parents=1");
	if (!path)
		r = al_error_set(&err, ENOMEM, "out of memory");
	else
		r = api_raw(&c,
		            &(struct request){.method = "PUT",
		                              .path = path,
		                              .content_type = "application/octet-stream",
		                              .body = data,
		                              .body_len = len,
		                              .stream_fd = -1},
		            &err);

	client_close(&c);
	if (r < 0) {
		al_error_prefix(&err, "write %s", argv[optind + 1]);
		return runtime_error(&err);
	}
	return 0;
}

static int verb_read(struct verb_ctx *ctx, int argc, char **argv)
{
	_cleanup_free_ char *path = NULL;
	struct al_error err = AL_ERROR_INIT;
	struct client c = {0};
	int status, r;

	if (simple_args(argc, argv, usage_read, 2, 2, &status) < 0)
		return status;
	if (client_open(&c, ctx->socket_path, &err) < 0)
		return runtime_error(&err);
	path = files_path(&c, argv[optind], argv[optind + 1], "");
	if (!path)
		r = al_error_set(&err, ENOMEM, "out of memory");
	else
		r = api_raw(&c,
		            &(struct request){.method = "GET",
		                              .path = path,
		                              .stream_fd = STDOUT_FILENO,
		                              .progress = "persist"},
		            &err);

	client_close(&c);
	if (r < 0) {
		al_error_prefix(&err, "read %s", argv[optind + 1]);
		return runtime_error(&err);
	}
	return 0;
}

static int verb_info(struct verb_ctx *ctx, int argc, char **argv)
{
	_cleanup_cjson_ cJSON *res = NULL;
	struct al_error err = AL_ERROR_INIT;
	struct client c = {0};
	int status, r;

	if (simple_args(argc, argv, usage_info, 0, 0, &status) < 0)
		return status;
	if (client_open(&c, ctx->socket_path, &err) < 0)
		return runtime_error(&err);
	r = api_json(&c, "GET", "/v1/info", NULL, false, NULL, &res, &err);
	client_close(&c);
	if (r < 0)
		return runtime_error(&err);
	print_json(res);
	return 0;
}

/* ---- workspace archives and snapshots ---- */

static int verb_persist(struct verb_ctx *ctx, int argc, char **argv)
{
	_cleanup_free_ char *path = NULL;
	struct al_error err = AL_ERROR_INIT;
	struct client c = {0};
	int status, r;

	if (simple_args(argc, argv, usage_persist, 1, 1, &status) < 0)
		return status;
	if (isatty(STDOUT_FILENO))
		return usage_error(usage_persist, "refusing to write a tar to a terminal");
	if (client_open(&c, ctx->socket_path, &err) < 0)
		return runtime_error(&err);
	path = sandbox_path(&c, argv[optind], "/workspace");
	if (!path)
		r = al_error_set(&err, ENOMEM, "out of memory");
	else
		r = api_raw(&c,
		            &(struct request){.method = "GET",
		                              .path = path,
		                              .stream_fd = STDOUT_FILENO,
		                              .progress = "persist"},
		            &err);

	client_close(&c);
	if (r < 0) {
		al_error_prefix(&err, "persist %s", argv[optind]);
		return runtime_error(&err);
	}
	return 0;
}

static int verb_hydrate(struct verb_ctx *ctx, int argc, char **argv)
{
	enum { OPT_MAX_INPUT = 0x200, OPT_MAX_EXTRACTED, OPT_MAX_MEMBERS };
	static const struct option longopts[] = {
	    {"max-input-bytes", required_argument, NULL, OPT_MAX_INPUT},
	    {"max-extracted-bytes", required_argument, NULL, OPT_MAX_EXTRACTED},
	    {"max-members", required_argument, NULL, OPT_MAX_MEMBERS},
	    {"help", no_argument, NULL, 'h'},
	    {0},
	};
	static const char *const names[] = {"max_input_bytes", "max_extracted_bytes",
	                                    "max_members"};
	_cleanup_free_ char *base = NULL, *path = NULL;
	struct al_error err = AL_ERROR_INIT;
	struct client c = {0};
	char query[256] = "";
	uint64_t max_input = 1ULL << 30;
	struct stat st;
	int opt, r;

	while ((opt = getopt_long(argc, argv, "+:h", longopts, NULL)) != -1) {
		uint64_t v;
		size_t used = strlen(query);
		if (opt == 'h')
			return show_usage(usage_hydrate);
		if (opt < OPT_MAX_INPUT || opt > OPT_MAX_MEMBERS)
			return bad_option(usage_hydrate, opt, argv);
		if (al_parse_size(optarg, &v, &err) < 0 || v == 0)
			return usage_error(usage_hydrate, "--%s: expected a positive number",
			                   longopts[opt - OPT_MAX_INPUT].name);
		if (opt == OPT_MAX_INPUT)
			max_input = v;
		snprintf(query + used, sizeof(query) - used, "%c%s=%llu", used ? '&' : '?',
		         names[opt - OPT_MAX_INPUT], (unsigned long long)v);
	}
	if (argc - optind != 1)
		return usage_error(usage_hydrate,
		                   argc - optind < 1 ? "missing argument" : "unexpected argument");
	if (isatty(STDIN_FILENO))
		return usage_error(usage_hydrate, "expected a tar on stdin, not a terminal");
	/* A file known too large is refused here, not after it was sent. */
	if (fstat(STDIN_FILENO, &st) == 0 && S_ISREG(st.st_mode) &&
	    (uint64_t)st.st_size > max_input) {
		al_error_set(&err, EFBIG, "stdin: %lld bytes, over --max-input-bytes (%llu)",
		             (long long)st.st_size, (unsigned long long)max_input);
		return runtime_error(&err);
	}
	if (client_open(&c, ctx->socket_path, &err) < 0)
		return runtime_error(&err);
	base = sandbox_path(&c, argv[optind], "/workspace");
	if (!base || asprintf(&path, "%s%s", base, query) < 0) {
		path = NULL;
		r = al_error_set(&err, ENOMEM, "out of memory");
	} else {
		/* Streamed as it is read: airlockd extracts while it comes and
		 * enforces max_input_bytes itself. */
		r = api_raw(&c,
		            &(struct request){.method = "PUT",
		                              .path = path,
		                              .content_type = "application/x-tar",
		                              .body_stdin = true,
		                              .stream_fd = -1,
		                              .progress = "hydrate"},
		            &err);
	}
	client_close(&c);
	if (r < 0) {
		al_error_prefix(&err, "hydrate %s", argv[optind]);
		return runtime_error(&err);
	}
	return 0;
}

static int verb_snapshot(struct verb_ctx *ctx, int argc, char **argv)
{
	enum { OPT_NO_PROCESSES = 0x200 };
	static const struct option longopts[] = {
	    {"no-processes", no_argument, NULL, OPT_NO_PROCESSES},
	    {"help", no_argument, NULL, 'h'},
	    {0},
	};
	_cleanup_cjson_ cJSON *req = cJSON_CreateObject(), *res = NULL;
	_cleanup_free_ char *path = NULL;
	struct al_error err = AL_ERROR_INIT;
	struct client c = {0};
	bool processes = true;
	int opt, r;

	while ((opt = getopt_long(argc, argv, "+:h", longopts, NULL)) != -1) {
		if (opt == 'h')
			return show_usage(usage_snapshot);
		if (opt != OPT_NO_PROCESSES)
			return bad_option(usage_snapshot, opt, argv);
		processes = false;
	}
	if (argc - optind != 1)
		return usage_error(usage_snapshot,
		                   argc - optind < 1 ? "missing argument" : "unexpected argument");
	cJSON_AddBoolToObject(req, "processes", processes);
	if (client_open(&c, ctx->socket_path, &err) < 0)
		return runtime_error(&err);
	path = sandbox_path(&c, argv[optind], "/snapshots");
	r = path ? api_json(&c, "POST", path, req, false, NULL, &res, &err)
	         : al_error_set(&err, ENOMEM, "out of memory");
	client_close(&c);
	if (r < 0)
		return runtime_error(&err);
	printf("%s\n", json_string(res, "id"));
	return 0;
}

static int verb_restore(struct verb_ctx *ctx, int argc, char **argv)
{
	enum { OPT_NAME = 0x200 };
	static const struct option longopts[] = {
	    {"name", required_argument, NULL, OPT_NAME},
	    {"help", no_argument, NULL, 'h'},
	    {0},
	};
	_cleanup_cjson_ cJSON *req = cJSON_CreateObject(), *res = NULL;
	struct al_error err = AL_ERROR_INIT;
	struct client c = {0};
	int opt, r;

	while ((opt = getopt_long(argc, argv, "+:h", longopts, NULL)) != -1) {
		if (opt == 'h')
			return show_usage(usage_restore);
		if (opt != OPT_NAME)
			return bad_option(usage_restore, opt, argv);
		cJSON_AddStringToObject(req, "name", optarg);
	}
	if (argc - optind != 1)
		return usage_error(usage_restore,
		                   argc - optind < 1 ? "missing argument" : "unexpected argument");
	cJSON_AddStringToObject(req, "snapshot", argv[optind]);
	if (client_open(&c, ctx->socket_path, &err) < 0)
		return runtime_error(&err);
	r = api_json(&c, "POST", "/v1/sandboxes", req, false, NULL, &res, &err);
	client_close(&c);
	if (r < 0)
		return runtime_error(&err);
	printf("%s\n", json_string(res, "id"));
	return 0;
}

static int verb_snapshots(struct verb_ctx *ctx, int argc, char **argv)
{
	static const struct option longopts[] = {
	    {"json", no_argument, NULL, OPT_JSON},
	    {"help", no_argument, NULL, 'h'},
	    {0},
	};
	_cleanup_cjson_ cJSON *res = NULL;
	struct al_error err = AL_ERROR_INIT;
	struct client c = {0};
	const cJSON *snap;
	bool json = false;
	int opt, r;

	while ((opt = getopt_long(argc, argv, "+:h", longopts, NULL)) != -1) {
		if (opt == 'h')
			return show_usage(usage_snapshots);
		if (opt != OPT_JSON)
			return bad_option(usage_snapshots, opt, argv);
		json = true;
	}
	if (optind < argc)
		return usage_error(usage_snapshots, "unexpected argument '%s'", argv[optind]);
	if (client_open(&c, ctx->socket_path, &err) < 0)
		return runtime_error(&err);
	r = api_json(&c, "GET", "/v1/snapshots", NULL, false, NULL, &res, &err);
	client_close(&c);
	if (r < 0)
		return runtime_error(&err);
	if (json) {
		print_json(res);
		return 0;
	}
	printf("%-14s %-14s %-14s %-25s %-9s %12s %12s\n", "ID", "PARENT", "SANDBOX", "CREATED",
	       "PROCESSES", "SIZE", "WRITTEN");
	cJSON_ArrayForEach(snap, cJSON_GetObjectItemCaseSensitive(res, "snapshots"))
	{
		const cJSON *sizes = cJSON_GetObjectItemCaseSensitive(snap, "sizes");
		const cJSON *sb = cJSON_GetObjectItemCaseSensitive(snap, "sandbox");
		if (cJSON_GetObjectItemCaseSensitive(snap, "error")) {
			printf("%-14s damaged: %s\n", json_string(snap, "id"),
			       json_string(snap, "error"));
			continue;
		}
		printf("%-14s %-14s %-14s %-25s %-9s %12.0f %12.0f\n", json_string(snap, "id"),
		       json_string(snap, "parent")[0] ? json_string(snap, "parent") : "-",
		       json_string(sb, "id"), json_string(snap, "created"),
		       cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(snap, "processes")) ? "yes"
		                                                                         : "no",
		       cJSON_GetNumberValue(cJSON_GetObjectItemCaseSensitive(sizes, "total")),
		       cJSON_GetNumberValue(cJSON_GetObjectItemCaseSensitive(sizes, "written")));
	}
	return 0;
}

static int verb_snapshot_rm(struct verb_ctx *ctx, int argc, char **argv)
{
	struct al_error err = AL_ERROR_INIT;
	struct client c = {0};
	int status, failed = 0;

	if (simple_args(argc, argv, usage_snapshot_rm, 1, -1, &status) < 0)
		return status;
	if (client_open(&c, ctx->socket_path, &err) < 0)
		return runtime_error(&err);
	for (int i = optind; i < argc; i++) {
		_cleanup_curl_free_ char *escaped = curl_easy_escape(c.curl, argv[i], 0);
		_cleanup_free_ char *path = NULL;
		_cleanup_cjson_ cJSON *res = NULL;
		if (!escaped || asprintf(&path, "/v1/snapshots/%s", escaped) < 0) {
			path = NULL;
			al_error_set(&err, ENOMEM, "out of memory");
		} else if (api_json(&c, "DELETE", path, NULL, false, NULL, &res, &err) == 0) {
			continue;
		}
		fprintf(stderr, "airlock: snapshot-rm %s: %s\n", argv[i], err.msg);
		failed = 1;
	}
	client_close(&c);
	return failed;
}

/* ---- images ---- */

static void archive_read_freep(struct archive **a)
{
	if (*a)
		archive_read_free(*a);
}

static void archive_write_freep(struct archive **a)
{
	if (*a)
		archive_write_free(*a);
}

static void archive_entry_freep(struct archive_entry **e)
{
	if (*e)
		archive_entry_free(*e);
}

/* One member of the directory walk: written to a, its data too. */
static int tar_one(struct archive *disk, struct archive *a, struct archive_entry *e, size_t prefix,
                   struct al_error *err)
{
	const char *name = archive_entry_pathname(e) + prefix;
	char buf[65536];

	while (*name == '/')
		name++;
	if (!*name)
		return 0; /* the directory itself */
	archive_entry_set_pathname(e, name);
	if (archive_write_header(a, e) < ARCHIVE_WARN)
		return al_error_set(err, EIO, "%s: %s", name, archive_error_string(a));
	while (archive_entry_size(e) > 0) {
		la_ssize_t n = archive_read_data(disk, buf, sizeof(buf));
		if (n < 0)
			return al_error_set(err, EIO, "%s: %s", name, archive_error_string(disk));
		if (n == 0)
			break;
		if (archive_write_data(a, buf, (size_t)n) < 0)
			return al_error_set(err, EIO, "%s: %s", name, archive_error_string(a));
	}
	return 0;
}

/* Write the directory dir (an OCI image layout) to out_fd as a tar. */
static int tar_directory(const char *dir, int out_fd, struct al_error *err)
{
	_cleanup_(archive_read_freep) struct archive *disk = archive_read_disk_new();
	_cleanup_(archive_write_freep) struct archive *a = archive_write_new();
	size_t prefix = strlen(dir);

	if (!disk || !a)
		return al_error_set(err, ENOMEM, "out of memory");
	archive_read_disk_set_symlink_physical(disk);
	if (archive_write_set_format_pax_restricted(a) != ARCHIVE_OK ||
	    archive_write_open_fd(a, out_fd) != ARCHIVE_OK)
		return al_error_set(err, EIO, "tar: %s", archive_error_string(a));
	if (archive_read_disk_open(disk, dir) != ARCHIVE_OK)
		return al_error_set(err, EIO, "%s: %s", dir, archive_error_string(disk));
	for (;;) {
		_cleanup_(archive_entry_freep) struct archive_entry *e = archive_entry_new();
		int r = e ? archive_read_next_header2(disk, e) : ARCHIVE_FATAL;

		if (r == ARCHIVE_EOF)
			break;
		if (r < ARCHIVE_WARN)
			return al_error_set(err, EIO, "%s: %s", dir,
			                    e ? archive_error_string(disk) : "out of memory");
		archive_read_disk_descend(disk);
		r = tar_one(disk, a, e, prefix, err);
		if (r < 0)
			return r;
	}
	if (archive_write_close(a) != ARCHIVE_OK)
		return al_error_set(err, EIO, "tar: %s", archive_error_string(a));
	return 0;
}

struct upload {
	int fd;
	uint64_t sent, total; /* total 0: unknown (a pipe) */
	uint64_t shown_ms;
	bool progress; /* stderr is a terminal */
	const char *name;
};

static void show_upload(struct upload *u, bool done)
{
	uint64_t now = al_now_ms();

	if (!u->progress || (!done && now - u->shown_ms < 200))
		return;
	u->shown_ms = now;
	if (u->total)
		fprintf(stderr, "\r\033[Kimport %s: %.1f of %.1f MiB sent (%u%%)%s", u->name,
		        (double)u->sent / 1048576.0, (double)u->total / 1048576.0,
		        (unsigned)(u->sent * 100 / u->total), done ? "; unpacking layers..." : "");
	else
		fprintf(stderr, "\r\033[Kimport %s: %.1f MiB sent%s", u->name,
		        (double)u->sent / 1048576.0, done ? "; unpacking layers..." : "");
}

static size_t upload_read(char *buf, size_t size, size_t nitems, void *userdata)
{
	struct upload *u = userdata;
	ssize_t n;

	if (pending_signal)
		return CURL_READFUNC_ABORT;
	do
		n = read(u->fd, buf, size * nitems);
	while (n < 0 && errno == EINTR && !pending_signal);
	if (n < 0)
		return CURL_READFUNC_ABORT;
	u->sent += (uint64_t)n;
	/* With a known length libcurl stops reading at it: no read of EOF. */
	show_upload(u, n == 0 || (u->total && u->sent >= u->total));
	return (size_t)n;
}

/* POST the archive in u->fd to path; the JSON answer goes to *out. */
static int upload_image(struct client *c, const char *path, struct upload *u, cJSON **out,
                        struct al_error *err)
{
	_cleanup_free_ char *url = NULL;
	_cleanup_buf_ struct al_buf body = {0};
	struct curl_slist *headers = NULL;
	struct sink sink = {.curl = c->curl, .buf = &body, .stream_fd = -1};
	long status = 0;
	CURLcode rc;

	if (asprintf(&url, "http://localhost%s", path) < 0)
		return al_error_set(err, ENOMEM, "out of memory");
	headers = curl_slist_append(headers, "Accept: application/json");
	headers = curl_slist_append(headers, "Expect:");
	headers = curl_slist_append(headers, "Content-Type: application/x-tar");
	curl_easy_setopt(c->curl, CURLOPT_URL, url);
	curl_easy_setopt(c->curl, CURLOPT_HTTPHEADER, headers);
	curl_easy_setopt(c->curl, CURLOPT_WRITEDATA, &sink);
	curl_easy_setopt(c->curl, CURLOPT_POST, 1L);
	curl_easy_setopt(c->curl, CURLOPT_READFUNCTION, upload_read);
	curl_easy_setopt(c->curl, CURLOPT_READDATA, u);
	/* -1: chunked, for a pipe of unknown length. */
	curl_easy_setopt(c->curl, CURLOPT_POSTFIELDSIZE_LARGE,
	                 u->total ? (curl_off_t)u->total : (curl_off_t)-1);
	c->errbuf[0] = '\0';
	rc = curl_easy_perform(c->curl);
	curl_easy_setopt(c->curl, CURLOPT_HTTPHEADER, NULL);
	curl_slist_free_all(headers);
	if (u->progress)
		fputs("\r\033[K", stderr);
	if (rc == CURLE_ABORTED_BY_CALLBACK && pending_signal)
		return al_error_set(err, EINTR, "interrupted by signal %d", (int)pending_signal);
	if (rc != CURLE_OK)
		return al_error_set(err, EIO, "POST %s: airlockd at %s: %s", path, c->socket_path,
		                    c->errbuf[0] ? c->errbuf : curl_easy_strerror(rc));
	curl_easy_getinfo(c->curl, CURLINFO_RESPONSE_CODE, &status);
	if (status < 200 || status >= 300)
		return api_error(status, &body, err);
	*out = cJSON_ParseWithLength(body.data ? body.data : "", body.len);
	if (!*out)
		return al_error_set(err, EPROTO, "airlockd sent invalid JSON");
	return 0;
}

static int image_import_verb(struct verb_ctx *ctx, int argc, char **argv)
{
	_cleanup_free_ char *escaped_path = NULL;
	_cleanup_close_ int fd = -1;
	_cleanup_cjson_ cJSON *res = NULL;
	struct al_error err = AL_ERROR_INIT;
	struct upload u = {.progress = isatty(STDERR_FILENO)};
	struct client c = {0};
	const char *src = argc > 2 ? argv[2] : "-";
	struct stat st;
	int r;

	if (argc < 2 || argc > 3)
		return usage_error(usage_image, argc < 2 ? "import: missing NAME"
		                                         : "import: unexpected argument");
	u.name = argv[1];
	if (!strcmp(src, "-")) {
		if (isatty(STDIN_FILENO))
			return usage_error(usage_image,
			                   "import: expected an archive on stdin, not a terminal");
		fd = dup(STDIN_FILENO);
	} else {
		fd = open(src, O_RDONLY | O_CLOEXEC);
	}
	if (fd < 0) {
		al_error_errno(&err, "%s", src);
		return runtime_error(&err);
	}
	if (fstat(fd, &st) == 0 && S_ISDIR(st.st_mode)) {
		/* An OCI layout directory: sent as the tar airlockd takes. */
		close(fd);
		fd = open(".", O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
		if (fd < 0)
			fd = open("/tmp", O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
		if (fd < 0) {
			al_error_errno(&err, "temporary file");
			return runtime_error(&err);
		}
		r = tar_directory(src, fd, &err);
		if (r < 0 || fstat(fd, &st) < 0 || lseek(fd, 0, SEEK_SET) != 0)
			return runtime_error(&err);
	}
	u.fd = fd;
	u.total = S_ISREG(st.st_mode) ? (uint64_t)st.st_size : 0;
	if (client_open(&c, ctx->socket_path, &err) < 0)
		return runtime_error(&err);
	{
		_cleanup_curl_free_ char *q = curl_easy_escape(c.curl, argv[1], 0);
		if (!q || asprintf(&escaped_path, "/v1/images?name=%s", q) < 0) {
			escaped_path = NULL;
			client_close(&c);
			al_error_set(&err, ENOMEM, "out of memory");
			return runtime_error(&err);
		}
	}
	r = upload_image(&c, escaped_path, &u, &res, &err);
	client_close(&c);
	if (r < 0) {
		al_error_prefix(&err, "import %s", argv[1]);
		return runtime_error(&err);
	}
	printf("%s %s (%d layers)\n", argv[1], json_string(res, "id"),
	       cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(res, "layers")));
	return 0;
}

static int image_ls_verb(struct verb_ctx *ctx, int argc, char **argv)
{
	_cleanup_cjson_ cJSON *res = NULL;
	struct al_error err = AL_ERROR_INIT;
	struct client c = {0};
	const cJSON *img;
	bool json = argc == 2 && !strcmp(argv[1], "--json");
	int r;

	if (argc > 2 || (argc == 2 && !json))
		return usage_error(usage_image, "ls: unexpected argument '%s'", argv[1]);
	if (client_open(&c, ctx->socket_path, &err) < 0)
		return runtime_error(&err);
	r = api_json(&c, "GET", "/v1/images", NULL, false, NULL, &res, &err);
	client_close(&c);
	if (r < 0)
		return runtime_error(&err);
	if (json) {
		print_json(res);
		return 0;
	}
	printf("%-32s %-19s %-6s %s\n", "NAME", "ID", "LAYERS", "IMPORTED");
	cJSON_ArrayForEach(img, cJSON_GetObjectItemCaseSensitive(res, "images"))
	{
		const char *id = json_string(img, "id");
		printf("%-32s %-19.19s %-6d %s\n", json_string(img, "name"),
		       strncmp(id, "sha256:", 7) ? id : id + 7,
		       cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(img, "layers")),
		       json_string(img, "imported"));
	}
	return 0;
}

static int image_rm_verb(struct verb_ctx *ctx, int argc, char **argv)
{
	struct al_error err = AL_ERROR_INIT;
	struct client c = {0};
	int status = 0;

	if (argc < 2)
		return usage_error(usage_image, "rm: missing NAME");
	if (client_open(&c, ctx->socket_path, &err) < 0)
		return runtime_error(&err);
	for (int i = 1; i < argc; i++) {
		_cleanup_free_ char *path = NULL;
		_cleanup_cjson_ cJSON *res = NULL;
		if (image_path(&c, argv[i], &path) < 0 ||
		    api_json(&c, "DELETE", path, NULL, false, NULL, &res, &err) < 0) {
			if (!path)
				al_error_set(&err, ENOMEM, "out of memory");
			al_error_prefix(&err, "image rm %s", argv[i]);
			status = runtime_error(&err);
			al_error_clear(&err);
		}
	}
	client_close(&c);
	return status;
}

static int verb_image(struct verb_ctx *ctx, int argc, char **argv)
{
	if (argc < 2)
		return usage_error(usage_image, "missing command (import, ls or rm)");
	if (!strcmp(argv[1], "-h") || !strcmp(argv[1], "--help"))
		return show_usage(usage_image);
	if (!strcmp(argv[1], "import"))
		return image_import_verb(ctx, argc - 1, argv + 1);
	if (!strcmp(argv[1], "ls"))
		return image_ls_verb(ctx, argc - 1, argv + 1);
	if (!strcmp(argv[1], "rm"))
		return image_rm_verb(ctx, argc - 1, argv + 1);
	return usage_error(usage_image, "unknown image command '%s'", argv[1]);
}

static int verb_snapshot_export(struct verb_ctx *ctx, int argc, char **argv)
{
	_cleanup_curl_free_ char *escaped = NULL;
	_cleanup_free_ char *path = NULL;
	struct al_error err = AL_ERROR_INIT;
	struct client c = {0};
	int status, r;

	if (simple_args(argc, argv, usage_snapshot_export, 1, 1, &status) < 0)
		return status;
	if (isatty(STDOUT_FILENO))
		return usage_error(usage_snapshot_export,
		                   "refusing to write a stream to a terminal");
	if (client_open(&c, ctx->socket_path, &err) < 0)
		return runtime_error(&err);
	escaped = curl_easy_escape(c.curl, argv[optind], 0);
	if (!escaped || asprintf(&path, "/v1/snapshots/%s/export", escaped) < 0) {
		path = NULL;
		r = al_error_set(&err, ENOMEM, "out of memory");
	} else {
		r = api_raw(&c,
		            &(struct request){.method = "GET",
		                              .path = path,
		                              .stream_fd = STDOUT_FILENO,
		                              .progress = "persist"},
		            &err);
	}
	client_close(&c);
	if (r < 0) {
		al_error_prefix(&err, "snapshot-export %s", argv[optind]);
		return runtime_error(&err);
	}
	return 0;
}

static int verb_snapshot_import(struct verb_ctx *ctx, int argc, char **argv)
{
	_cleanup_buf_ struct al_buf body = {0};
	_cleanup_cjson_ cJSON *res = NULL;
	struct al_error err = AL_ERROR_INIT;
	struct client c = {0};
	long http_status = 0;
	int status, r;

	if (simple_args(argc, argv, usage_snapshot_import, 0, 0, &status) < 0)
		return status;
	if (isatty(STDIN_FILENO))
		return usage_error(usage_snapshot_import, "expected a snapshot stream on stdin");
	if (client_open(&c, ctx->socket_path, &err) < 0)
		return runtime_error(&err);
	r = client_request(&c,
	                   &(struct request){.method = "POST",
	                                     .path = "/v1/snapshots/import",
	                                     .content_type = "application/x-tar",
	                                     .body_stdin = true,
	                                     .stream_fd = -1},
	                   &http_status, &body, &err);
	client_close(&c);
	if (r >= 0 && (http_status < 200 || http_status >= 300))
		r = api_error(http_status, &body, &err);
	if (r >= 0) {
		res = cJSON_ParseWithLength(body.data ? body.data : "", body.len);
		if (!cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(res, "id")))
			r = al_error_set(&err, EPROTO, "airlockd's answer has no snapshot id");
	}
	if (r < 0) {
		al_error_prefix(&err, "snapshot-import");
		return runtime_error(&err);
	}
	printf("%s\n", cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(res, "id")));
	return 0;
}

static const struct verb {
	const char *name;
	int (*fn)(struct verb_ctx *ctx, int argc, char **argv);
} verbs[] = {
    {"run", verb_run},
    {"create", verb_create},
    {"exec", verb_exec},
    {"ls", verb_ls},
    {"inspect", verb_inspect},
    {"events", verb_events},
    {"rm", verb_rm},
    {"prune", verb_prune},
    {"stats", verb_stats},
    {"write", verb_write},
    {"read", verb_read},
    {"info", verb_info},
    {"persist", verb_persist},
    {"hydrate", verb_hydrate},
    {"snapshot", verb_snapshot},
    {"restore", verb_restore},
    {"snapshots", verb_snapshots},
    {"snapshot-rm", verb_snapshot_rm},
    {"image", verb_image},
    {"snapshot-export", verb_snapshot_export},
    {"snapshot-import", verb_snapshot_import},
};

static void install_signal_handlers(void)
{
	struct sigaction sa = {.sa_handler = on_signal};

	/* No SA_RESTART: a blocking poll() must return so the loop sees the signal. */
	sigemptyset(&sa.sa_mask);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGHUP, &sa, NULL);
	/* A closed stdout ends that stream, not the CLI (the sandbox must still go). */
	signal(SIGPIPE, SIG_IGN);
}

int main(int argc, char **argv)
{
	static const struct option longopts[] = {
	    {"socket", required_argument, NULL, 's'},
	    {"help", no_argument, NULL, 'h'},
	    {"version", no_argument, NULL, 'V'},
	    {0},
	};
	struct verb_ctx ctx = {.socket_path = getenv("AIRLOCK_SOCKET")};
	const char *verb;
	int opt;

	if (!ctx.socket_path || !ctx.socket_path[0])
		ctx.socket_path = DEFAULT_SOCKET;
	opterr = 0;
	while ((opt = getopt_long(argc, argv, "+:s:h", longopts, NULL)) != -1) {
		switch (opt) {
		case 's':
			ctx.socket_path = optarg;
			break;
		case 'h':
			return show_usage(usage_main);
		case 'V':
			printf("airlock %s\n", AIRLOCK_VERSION);
			return 0;
		default:
			return bad_option(usage_main, opt, argv);
		}
	}
	if (optind >= argc)
		return usage_error(usage_main, "no verb given");
	verb = argv[optind];
	for (size_t i = 0; i < AL_ARRAY_SIZE(verbs); i++) {
		if (strcmp(verbs[i].name, verb) == 0) {
			int verb_argc = argc - optind;
			char **verb_argv = argv + optind;
			install_signal_handlers();
			/* Restart getopt (0: fully) on the verb's own arguments. */
			optind = 0;
			return verbs[i].fn(&ctx, verb_argc, verb_argv);
		}
	}
	return usage_error(usage_main, "unknown verb '%s'", verb);
}
