/* SPDX-License-Identifier: Apache-2.0 */
/* airlock CLI: HTTP/1.1 + JSON to airlockd over its Unix socket (libcurl). */
#include "cli.h"
#include "progress.h"

#include <errno.h>
#include <stdarg.h>
#include <grp.h>
#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

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
