/* SPDX-License-Identifier: Apache-2.0 */
/* airlock CLI: HTTP/1.1 + JSON to airlockd over its Unix socket (libcurl). */
#include "cli.h"
#include "progress.h"
#include "stream.h"

#include <errno.h>
#include <stdarg.h>
#include <grp.h>
#include <inttypes.h>
#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <http_parser.h>

char connect_error[AL_ERROR_MSG_MAX];
volatile sig_atomic_t pending_signal;
volatile sig_atomic_t transfer_abortable;

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

struct sink {
	CURL *curl;
	struct al_buf *buf;
	int stream_fd; /* >= 0: a 2xx body goes straight to this fd */
	int stream_errno;
	bool overflow;
	const struct request *req; /* its on_line: a 2xx body line by line */
	struct al_buf line;        /* the line not yet complete */
};

static void sink_free(struct sink *s)
{
	al_buf_free(&s->line);
}

/* A 2xx body for req->on_line: whole lines, each at most MAX_LINE (a longer one is cut). */
#define MAX_LINE (1u << 20)
static size_t sink_lines(struct sink *s, const char *data, size_t len)
{
	for (size_t i = 0; i < len;) {
		const char *nl = memchr(data + i, '\n', len - i);
		size_t n = nl ? (size_t)(nl - (data + i)) : len - i;
		size_t room = MAX_LINE - s->line.len;
		if (al_buf_append(&s->line, data + i, n < room ? n : room) < 0)
			return 0;
		i += n;
		if (!nl)
			break;
		i++;
		s->req->on_line(s->line.data ? s->line.data : "", s->line.len, s->req->line_data);
		s->line.len = 0;
	}
	return len;
}

static size_t sink_write(char *data, size_t size, size_t nmemb, void *userdata)
{
	struct sink *s = userdata;
	size_t len = size * nmemb;
	long status = 0;

	if (s->req && s->req->on_line) {
		curl_easy_getinfo(s->curl, CURLINFO_RESPONSE_CODE, &status);
		if (status >= 200 && status < 300)
			return sink_lines(s, data, len);
	}
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

/*
 * libcurl receives a body into one buffer of its own, reused for every
 * read, and the kernel copies each read from the socket's pages into it.
 * On AMD's rep movsb (which Linux copies with) that copy runs 3-4 times
 * slower when the buffer and the source pages are not aligned alike to 32
 * bytes: a 256 MiB file read took ~120 ms of CPU instead of ~35.  A
 * sendfile'd body's bytes sit at the file's offsets within page-cache pages,
 * and a read that drains the socket ends at a page boundary of the file,
 * so a page-aligned buffer keeps every later read aligned with its source;
 * malloc's large blocks start 16 bytes into a page.  Only the large
 * blocks (that buffer) are aligned: libcurl's many small ones stay malloc's.
 */
#define ALIGNED_FROM (64u * 1024)

static void *curl_malloc_aligned(size_t size)
{
	void *p = NULL;

	if (size < ALIGNED_FROM)
		return malloc(size);
	return posix_memalign(&p, 4096, size) == 0 ? p : NULL;
}

static void *curl_realloc_aligned(void *ptr, size_t size)
{
	void *p;
	size_t old;

	if (size < ALIGNED_FROM || !ptr)
		return ptr ? realloc(ptr, size) : curl_malloc_aligned(size);
	/* glibc's realloc keeps no alignment: move a grown block to an aligned one. */
	old = malloc_usable_size(ptr);
	p = curl_malloc_aligned(size);
	if (!p)
		return NULL;
	memcpy(p, ptr, old < size ? old : size);
	free(ptr);
	return p;
}

/* Fewer, larger reads and writes than libcurl's defaults (16 KiB received,
 * 64 KiB sent at a time); bounded, whatever the size of the file. */
#define RECEIVE_BUFFER (512L * 1024)
#define SEND_BUFFER (1024L * 1024)

int client_open(struct client *c, const char *socket_path, struct al_error *err)
{
	c->socket_path = socket_path;
	if (curl_global_init_mem(CURL_GLOBAL_DEFAULT, curl_malloc_aligned, free,
	                         curl_realloc_aligned, strdup, calloc) != CURLE_OK)
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
	curl_easy_setopt(c->curl, CURLOPT_BUFFERSIZE, RECEIVE_BUFFER);
	curl_easy_setopt(c->curl, CURLOPT_UPLOAD_BUFFERSIZE, SEND_BUFFER);
	return 0;
}

void client_close(struct client *c)
{
	if (c->curl)
		curl_easy_cleanup(c->curl);
	c->curl = NULL;
	curl_global_cleanup();
}

static size_t read_body_fd(char *buf, size_t size, size_t nmemb, void *userdata)
{
	ssize_t n;

	do
		n = read(*(int *)userdata, buf, size * nmemb);
	while (n < 0 && errno == EINTR);
	return n < 0 ? CURL_READFUNC_ABORT : (size_t)n;
}

/* ---- a file's bytes, spliced ---- */

/*
 * libcurl reads a body into its buffer and hands it to sink_write, which
 * writes it to stream_fd: a copy into this process and one out of it, most
 * of the CPU `airlock read` of a large file took.  airlockd sends a file with
 * sendfile(2), so the socket holds the file's own pages; spliced from the
 * socket into a pipe and from the pipe to stream_fd, they reach it with at
 * most the one copy into stream_fd's file (none to a pipe or /dev/null).
 * http-parser reads the answer's head, as for a streamed exec (stream.c).
 */
#define SPLICE_PIPE (1 << 20)
#define MAX_ERROR_BODY (64u << 10)

/* The head is taken up to its end and no further: the parser stops there. */
static int on_head_complete(http_parser *hp)
{
	(void)hp;
	return 1; /* no body for the parser: ours is moved by splice */
}

static int on_head_message_complete(http_parser *hp)
{
	http_parser_pause(hp, 1);
	return 0;
}

static int splice_connect(struct client *c, struct al_error *err)
{
	int fd = stream_connect(c->socket_path, err);

	/* Said as for every other request: what to do next (client_request). */
	if (fd < 0 && err->code != ENAMETOOLONG) {
		connect_hint(c->socket_path, err->code, connect_error, sizeof(connect_error));
		return al_error_set(err, ECONNREFUSED, "%s", connect_error);
	}
	return fd;
}

/* Read the answer's head into hp (status, Content-Length); the body stays in sock. */
static int splice_read_head(int sock, http_parser *hp, struct al_error *err)
{
	static const http_parser_settings settings = {.on_headers_complete = on_head_complete,
	                                              .on_message_complete =
	                                                  on_head_message_complete};
	char chunk[16384];

	http_parser_init(hp, HTTP_RESPONSE);
	for (;;) {
		ssize_t n = recv(sock, chunk, sizeof(chunk), MSG_PEEK), got;
		size_t used;

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return al_error_errno(err, "read airlockd's answer");
		if (n == 0)
			return al_error_set(err, ECONNRESET,
			                    "airlockd closed the connection without an answer");
		used = http_parser_execute(hp, &settings, chunk, (size_t)n);
		do
			got = recv(sock, chunk, used, 0);
		while (got < 0 && errno == EINTR);
		if (got < 0)
			return al_error_errno(err, "read airlockd's answer");
		if (HTTP_PARSER_ERRNO(hp) == HPE_PAUSED)
			return 0;
		if (HTTP_PARSER_ERRNO(hp) != HPE_OK)
			return al_error_set(err, EPROTO, "airlockd's answer: %s",
			                    http_errno_description(HTTP_PARSER_ERRNO(hp)));
	}
}

/* Move len bytes from sock to out through a pipe; a negative errno (-EPIPE: out). */
static int splice_body(int sock, int out, uint64_t len, struct progress *meter,
                       struct al_error *err)
{
	_cleanup_close_ int pr = -1, pw = -1;
	_cleanup_free_ char *buf = NULL;
	uint64_t done = 0;
	int p[2];

	if (pipe2(p, O_CLOEXEC) < 0)
		return al_error_errno(err, "pipe");
	pr = p[0];
	pw = p[1];
	/* Fewer rounds; the default 64 KiB works too (pipe-max-size may be lower). */
	(void)fcntl(pw, F_SETPIPE_SZ, SPLICE_PIPE);
	while (done < len) {
		size_t want = len - done < SPLICE_PIPE ? (size_t)(len - done) : SPLICE_PIPE;
		ssize_t n = splice(sock, NULL, pw, NULL, want, SPLICE_F_MOVE | SPLICE_F_MORE);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return al_error_errno(err, "read the file from airlockd");
		if (n == 0)
			return al_error_set(err, EIO,
			                    "airlockd closed the connection after %" PRIu64
			                    " of %" PRIu64 " bytes",
			                    done, len);
		for (size_t left = (size_t)n; left;) {
			ssize_t w = buf ? read(pr, buf, left < SPLICE_PIPE ? left : SPLICE_PIPE)
			                : splice(pr, NULL, out, NULL, left, SPLICE_F_MOVE);
			if (w > 0 && buf) {
				int r = al_write_all(out, buf, (size_t)w);
				if (r < 0)
					return al_error_set(err, -r, "write to stdout: %s",
					                    strerror(-r));
			}
			if (w < 0 && errno == EINTR)
				continue;
			/* out takes no splice (a terminal, an O_APPEND file): copied from here on.
			 */
			if (w < 0 && errno == EINVAL && !buf) {
				if (posix_memalign((void **)&buf, 4096, SPLICE_PIPE) != 0)
					return al_error_set(err, ENOMEM, "out of memory");
				continue;
			}
			if (w < 0)
				return al_error_set(err, errno, "write to stdout: %s",
				                    strerror(errno));
			if (w == 0)
				return al_error_set(err, EIO,
				                    "write to stdout: the pipe ended early");
			left -= (size_t)w;
		}
		done += (uint64_t)n;
		if (meter)
			progress_update(meter, done);
	}
	return 0;
}

static int splice_request(struct client *c, const struct request *req, long *status,
                          struct al_buf *body, struct al_error *err)
{
	_cleanup_close_ int sock = -1;
	_cleanup_free_ char *request = NULL;
	struct progress meter = {0};
	http_parser hp;
	int len, r;

	sock = splice_connect(c, err);
	if (sock < 0)
		return sock;
	len = asprintf(&request,
	               "GET %s HTTP/1.1\r\nHost: localhost\r\nAccept: application/json\r\n"
	               "Connection: close\r\n\r\n",
	               req->path);
	if (len < 0)
		return al_error_set(err, ENOMEM, "out of memory");
	if (al_write_all(sock, request, (size_t)len) < 0)
		return al_error_errno(err, "send the request to airlockd");
	r = splice_read_head(sock, &hp, err);
	if (r < 0)
		return r;
	*status = hp.status_code;
	if (hp.status_code < 200 || hp.status_code >= 300) {
		/* The error's JSON, for api_error (Connection: close: up to the end). */
		while (!(hp.flags & F_CONTENTLENGTH) || body->len < hp.content_length) {
			char chunk[16384];
			ssize_t n = recv(sock, chunk, sizeof(chunk), 0);
			if (n < 0 && errno == EINTR)
				continue;
			if (n <= 0 || body->len + (size_t)n > MAX_ERROR_BODY)
				break;
			if (al_buf_append(body, chunk, (size_t)n) < 0)
				return al_error_set(err, ENOMEM, "out of memory");
		}
		return 0;
	}
	if (!(hp.flags & F_CONTENTLENGTH))
		return al_error_set(err, EPROTO, "%s %s: airlockd's answer has no Content-Length",
		                    req->method, req->path);
	if (req->progress)
		progress_start(&meter, req->progress);
	r = splice_body(sock, req->stream_fd, hp.content_length, req->progress ? &meter : NULL,
	                err);
	if (req->progress)
		progress_end(&meter);
	return r;
}

int client_request(struct client *c, const struct request *req, long *status, struct al_buf *body,
                   struct al_error *err)
{
	_cleanup_free_ char *url = NULL;
	struct curl_slist *headers = NULL;
	_cleanup_(sink_free) struct sink sink = {
	    .curl = c->curl, .buf = body, .stream_fd = req->stream_fd, .req = req};
	struct progress meter = {0};
	char ctype[128];
	CURLcode rc;
	long os_errno = 0;
	bool has_body =
	    req->body || strcmp(req->method, "POST") == 0 || strcmp(req->method, "PUT") == 0;
	int body_fd = STDIN_FILENO;

	if (req->splice_body && req->stream_fd >= 0 && !strcmp(req->method, "GET"))
		return splice_request(c, req, status, body, err);
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
	if (req->body_stdin || req->read) {
		/* Streamed: a snapshot or an image may be far larger than memory. */
		curl_easy_setopt(c->curl, CURLOPT_UPLOAD, 1L);
		curl_easy_setopt(c->curl, CURLOPT_READFUNCTION,
		                 req->read ? req->read : read_body_fd);
		curl_easy_setopt(c->curl, CURLOPT_READDATA, req->read ? req->read_data : &body_fd);
		/* -1: chunked, for a pipe of unknown length. */
		curl_easy_setopt(c->curl, CURLOPT_INFILESIZE_LARGE,
		                 req->read && req->read_size ? (curl_off_t)req->read_size
		                                             : (curl_off_t)-1);
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
	if (req->progress)
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
int api_error(long status, const struct al_buf *body, struct al_error *err)
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
 * One call: the answer is streamed to req->stream_fd, or parsed as JSON into
 * *out (when out is not NULL), or dropped.  An error answer becomes err with
 * airlockd's message and *status tells its HTTP status (0 when airlockd could
 * not be reached).
 */
int api_call(struct client *c, const struct request *req, long *status, cJSON **out,
             struct al_error *err)
{
	_cleanup_buf_ struct al_buf body = {0};
	long http_status = 0;
	int r;

	r = client_request(c, req, &http_status, &body, err);
	if (status)
		*status = http_status;
	if (r < 0)
		return r;
	if (http_status < 200 || http_status >= 300)
		return api_error(http_status, &body, err);
	if (!out)
		return 0;
	*out = cJSON_ParseWithLength(body.data ? body.data : "", body.len);
	if (!*out)
		return al_error_set(err, EPROTO, "%s %s: airlockd sent invalid JSON", req->method,
		                    req->path);
	return 0;
}

/* One JSON call: req (may be NULL) is sent as the body, the JSON answer goes to *out. */
int api_json(struct client *c, const char *method, const char *path, const cJSON *req,
             bool abortable, long *status, cJSON **out, struct al_error *err)
{
	_cleanup_free_ char *text = NULL;

	if (req) {
		text = cJSON_PrintUnformatted(req);
		if (!text)
			return al_error_set(err, ENOMEM, "out of memory");
	}
	return api_call(c,
	                &(struct request){.method = method,
	                                  .path = path,
	                                  .body = text,
	                                  .body_len = text ? strlen(text) : 0,
	                                  .stream_fd = -1,
	                                  .abortable = abortable},
	                status, out, err);
}

/* One call whose body is not JSON (files, tars). */
int api_raw(struct client *c, const struct request *req, struct al_error *err)
{
	return api_call(c, req, NULL, NULL, err);
}

/* "<collection>/<name><suffix>", the name escaped for a URL path; NULL when out of memory. */
char *api_path(const char *collection, const char *name, const char *suffix)
{
	_cleanup_curl_free_ char *escaped = curl_easy_escape(NULL, name, 0);
	char *path = NULL;

	if (!escaped || asprintf(&path, "%s/%s%s", collection, escaped, suffix) < 0)
		return NULL;
	return path;
}

char *sandbox_path(const char *id, const char *suffix)
{
	return api_path("/v1/sandboxes", id, suffix);
}

/*
 * The request of a verb that makes one: connect, send, close.  A failure is
 * reported on stderr, prefixed by what (printf-style, may be NULL), and gives
 * EXIT_RUNTIME; a NULL path (one that could not be built) is out of memory.
 */
int verb_call(struct verb_ctx *ctx, const struct request *req, cJSON **out, const char *what, ...)
{
	struct al_error err = AL_ERROR_INIT;
	struct client c = {0};
	int r;

	if (!req->path) {
		r = al_error_set(&err, ENOMEM, "out of memory");
	} else {
		r = client_open(&c, ctx->socket_path, &err);
		if (r >= 0)
			r = api_call(&c, req, NULL, out, &err);
		client_close(&c);
	}
	if (r >= 0)
		return 0;
	if (what) {
		char prefix[256];
		va_list ap;
		va_start(ap, what);
		vsnprintf(prefix, sizeof(prefix), what, ap);
		va_end(ap);
		al_error_prefix(&err, "%s", prefix);
	}
	return runtime_error(&err);
}

/* verb_call with a JSON body (may be NULL) and a JSON answer. */
int verb_json(struct verb_ctx *ctx, const char *method, const char *path, const cJSON *body,
              cJSON **out)
{
	_cleanup_free_ char *text = body ? cJSON_PrintUnformatted(body) : NULL;

	return verb_call(ctx,
	                 &(struct request){.method = method,
	                                   .path = body && !text ? NULL : path,
	                                   .body = text,
	                                   .body_len = text ? strlen(text) : 0,
	                                   .stream_fd = -1},
	                 out, NULL);
}

/* The full ids resolve_args() made, freed by main(). */
char **resolved_ids;

/*
 * The full id arg stands for in collection ("/v1/sandboxes", "/v1/snapshots"):
 * an id or name as it is, else the one id it is a prefix of.  An ambiguous
 * prefix is an error listing what it matches; no match leaves arg as it is,
 * for airlockd to say what is not there.
 */
int resolve_id(struct client *c, const char *collection, const char *arg, char **out,
               struct al_error *err)
{
	_cleanup_cjson_ cJSON *res = NULL;
	_cleanup_strv_ char **matches = calloc(1, sizeof(char *));
	const cJSON *it;
	int r;

	if (!matches)
		return al_error_set(err, ENOMEM, "out of memory");
	r = api_json(c, "GET", collection, NULL, false, NULL, &res, err);
	if (r < 0)
		return r;
	cJSON_ArrayForEach(it, cJSON_GetObjectItemCaseSensitive(res, collection + 4))
	{
		const char *id = json_string(it, "id");
		if (!strcmp(id, arg) || !strcmp(json_string(it, "name"), arg)) {
			*out = strdup(id);
			return *out ? 0 : al_error_set(err, ENOMEM, "out of memory");
		}
		if (!strncmp(id, arg, strlen(arg)) && al_strv_push(&matches, id) < 0)
			return al_error_set(err, ENOMEM, "out of memory");
	}
	if (al_strv_length(matches) > 1) {
		char list[512] = "";
		for (char **m = matches; *m; m++)
			snprintf(list + strlen(list), sizeof(list) - strlen(list), "%s%s",
			         m == matches ? "" : ", ", *m);
		return al_error_set(err, EINVAL,
		                    "ambiguous id prefix '%s': it matches %s; give more of it", arg,
		                    list);
	}
	*out = strdup(matches[0] ? matches[0] : arg);
	return *out ? 0 : al_error_set(err, ENOMEM, "out of memory");
}

/* resolve_id() on args[0..n): each is replaced by its full id; an error is reported. */
int resolve_args(struct verb_ctx *ctx, const char *collection, char **args, int n)
{
	struct al_error err = AL_ERROR_INIT;
	struct client c = {0};
	int r = client_open(&c, ctx->socket_path, &err);

	if (!resolved_ids && r >= 0 && !(resolved_ids = calloc(1, sizeof(char *))))
		r = al_error_set(&err, ENOMEM, "out of memory");
	for (int i = 0; r >= 0 && i < n; i++) {
		_cleanup_free_ char *id = NULL;
		r = resolve_id(&c, collection, args[i], &id, &err);
		if (r >= 0 && al_strv_push(&resolved_ids, id) < 0)
			r = al_error_set(&err, ENOMEM, "out of memory");
		if (r >= 0)
			args[i] = resolved_ids[al_strv_length(resolved_ids) - 1];
	}
	client_close(&c);
	return r < 0 ? runtime_error(&err) : 0;
}
