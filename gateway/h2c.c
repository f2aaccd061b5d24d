/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Cleartext HTTP/2 (h2c, prior knowledge) on the gateway's port, for the SDKs that speak
 * nothing else to an http:// URL (`@runloop/api-client` since 1.25 connects with Node's
 * http2.connect()).  libnghttp2 terminates HTTP/2; each request stream is then handed,
 * as HTTP/1.1 through libcurl, to the same libmicrohttpd server that serves HTTP/1.1
 * clients, through the gateway's own port on loopback, so that every route is one piece
 * of code whatever the version the client spoke.  (An in-process socket pair would
 * spare the hop, but libcurl 7.88, Debian 12's, still connect()s a socket its
 * CURLOPT_SOCKOPTFUNCTION reports connected.)  The answer goes back on the
 * stream once complete: a streamed answer (E2B's Connect streams) arrives whole when it
 * ends, which no SDK that uses h2c depends on.
 *
 * One thread per HTTP/2 connection runs the nghttp2 session; one thread per request
 * stream waits for its answer, so a long poll on one stream holds up no other.
 *
 * gRPC (content-type application/grpc: Modal's SDK) is the exception: such a stream is
 * served here, by the service's handler in the stream's thread (grpc.h), since gRPC needs
 * trailers and server streams that the HTTP/1.1 hop would lose.  Its messages go out as
 * the handler sends them (the stream's data source defers while there is nothing to send
 * and is resumed on each message), and its status follows as trailers.
 */
#include "grpc.h"
#include "server.h"

#include "cleanup.h"
#include "log.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#include <curl/curl.h>
#include <nghttp2/nghttp2.h>

#define H2_WINDOW (16 << 20)
#define H2_MAX_STREAMS 100

struct h2_header {
	char *name;
	char *value;
};

struct h2_conn;
struct h2_stream;

/* What grpc.h hands to a service: its stream. */
struct gw_grpc_call {
	struct h2_stream *st;
};

struct h2_stream {
	struct h2_stream *next;      /* in the connection's list of live streams */
	struct h2_stream *next_done; /* in its list of answered streams */
	struct h2_conn *conn;
	int32_t id;
	char *method, *path, *authority;
	struct curl_slist *headers; /* "Name: value" for libcurl */
	struct al_buf body;
	bool too_large;
	bool in_worker; /* a thread is getting its answer */
	bool closed;    /* nghttp2 is done with it */
	/* the answer */
	long status;
	struct h2_header *resp_headers;
	size_t n_resp_headers;
	struct al_buf resp_body;
	size_t sent;
	bool queued; /* in the connection's list of streams with something to send */
	struct gw_grpc_call call;
	/* gRPC calls (grpc.h), the fields below their stream's lock */
	bool grpc;
	bool grpc_started; /* the response headers are submitted (session thread only) */
	bool grpc_done;    /* the handler gave the status */
	int grpc_status;
	char *grpc_message;
};

struct h2_conn {
	struct gw_server *server;
	int fd;
	int wake[2]; /* a worker's answer is ready */
	nghttp2_session *session;
	pthread_mutex_t lock;
	pthread_cond_t idle;
	struct h2_stream *streams;
	struct h2_stream *done;
	int workers;
};

static const char *const hop_by_hop[] = {"connection",
                                         "keep-alive",
                                         "proxy-connection",
                                         "transfer-encoding",
                                         "upgrade",
                                         "te",
                                         "host",
                                         "content-length",
                                         NULL};

static bool is_hop_by_hop(const char *name, size_t len)
{
	for (const char *const *h = hop_by_hop; *h; h++)
		if (strlen(*h) == len && !strncasecmp(*h, name, len))
			return true;
	return false;
}

static void stream_free(struct h2_stream *st)
{
	free(st->method);
	free(st->path);
	free(st->authority);
	curl_slist_free_all(st->headers);
	al_buf_free(&st->body);
	for (size_t i = 0; i < st->n_resp_headers; i++) {
		free(st->resp_headers[i].name);
		free(st->resp_headers[i].value);
	}
	free(st->resp_headers);
	al_buf_free(&st->resp_body);
	free(st->grpc_message);
	free(st);
}

/* Out of the connection's lists and freed (under its lock, or with no worker left). */
static void stream_forget(struct h2_conn *c, struct h2_stream *st)
{
	for (struct h2_stream **p = &c->streams; *p; p = &(*p)->next)
		if (*p == st) {
			*p = st->next;
			break;
		}
	for (struct h2_stream **p = &c->done; *p; p = &(*p)->next_done)
		if (*p == st) {
			*p = st->next_done;
			break;
		}
	stream_free(st);
}

/* ---- one request, through libcurl to the HTTP/1.1 server ---- */

static size_t on_body(char *data, size_t size, size_t n, void *userp)
{
	struct h2_stream *st = userp;
	return al_buf_append(&st->resp_body, data, size * n) < 0 ? 0 : size * n;
}

static size_t on_header(char *data, size_t size, size_t n, void *userp)
{
	struct h2_stream *st = userp;
	size_t len = size * n;
	const char *colon = memchr(data, ':', len);
	struct h2_header *v;
	size_t name_len, vstart, vend;

	if (len >= 5 && !strncmp(data, "HTTP/", 5)) {
		/* A new status line (after an interim answer): its headers start afresh. */
		for (size_t i = 0; i < st->n_resp_headers; i++) {
			free(st->resp_headers[i].name);
			free(st->resp_headers[i].value);
		}
		st->n_resp_headers = 0;
		return len;
	}
	if (!colon)
		return len;
	name_len = (size_t)(colon - data);
	if (is_hop_by_hop(data, name_len))
		return len;
	vstart = name_len + 1;
	while (vstart < len && (data[vstart] == ' ' || data[vstart] == '\t'))
		vstart++;
	vend = len;
	while (vend > vstart &&
	       (data[vend - 1] == '\r' || data[vend - 1] == '\n' || data[vend - 1] == ' '))
		vend--;
	v = realloc(st->resp_headers, (st->n_resp_headers + 1) * sizeof(*v));
	if (!v)
		return 0;
	st->resp_headers = v;
	v = &v[st->n_resp_headers];
	v->name = strndup(data, name_len);
	v->value = strndup(data + vstart, vend - vstart);
	if (!v->name || !v->value) {
		free(v->name);
		free(v->value);
		return 0;
	}
	/* HTTP/2 header names are lower case. */
	for (char *c = v->name; *c; c++)
		if (*c >= 'A' && *c <= 'Z')
			*c = (char)(*c - 'A' + 'a');
	st->n_resp_headers++;
	return len;
}

static void curl_cleanupp(CURL **h)
{
	if (*h)
		curl_easy_cleanup(*h);
}

/* The answer of the HTTP/1.1 server to st's request, in st (502 when it cannot be had). */
static void forward(struct h2_conn *c, struct h2_stream *st)
{
	_cleanup_(curl_cleanupp) CURL *h = curl_easy_init();
	_cleanup_free_ char *url = NULL;
	_cleanup_free_ char *host = NULL;
	CURLcode rc;

	st->status = 502;
	if (!h || asprintf(&url, "%s%s", c->server->self_url, st->path) < 0 ||
	    asprintf(&host, "Host: %s", st->authority ? st->authority : "127.0.0.1") < 0)
		return;
	st->headers = curl_slist_append(st->headers, host);
	st->headers = curl_slist_append(st->headers, "Expect:");
	curl_easy_setopt(h, CURLOPT_URL, url);
	curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(h, CURLOPT_NOPROXY, "*");
	curl_easy_setopt(h, CURLOPT_FORBID_REUSE, 1L);
	curl_easy_setopt(h, CURLOPT_HTTP_VERSION, CURL_HTTP_VERSION_1_1);
	curl_easy_setopt(h, CURLOPT_HTTPHEADER, st->headers);
	curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_body);
	curl_easy_setopt(h, CURLOPT_WRITEDATA, st);
	curl_easy_setopt(h, CURLOPT_HEADERFUNCTION, on_header);
	curl_easy_setopt(h, CURLOPT_HEADERDATA, st);
	if (!strcmp(st->method, "HEAD")) {
		curl_easy_setopt(h, CURLOPT_NOBODY, 1L);
	} else if (strcmp(st->method, "GET") || st->body.len) {
		curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, st->method);
		curl_easy_setopt(h, CURLOPT_POSTFIELDS, st->body.data ? st->body.data : "");
		curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)st->body.len);
	}
	rc = curl_easy_perform(h);
	if (rc != CURLE_OK) {
		log_warn("h2c: %s %s: %s", st->method, st->path, curl_easy_strerror(rc));
		st->status = 502;
		st->n_resp_headers = 0;
		al_buf_free(&st->resp_body);
		return;
	}
	curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &st->status);
}

static void wake(struct h2_conn *c)
{
	char b = 1;
	while (write(c->wake[1], &b, 1) < 0 && errno == EINTR)
		;
}

/* st has something to send: the session thread's next round submits it (under c->lock). */
static void queue_locked(struct h2_conn *c, struct h2_stream *st)
{
	if (st->queued)
		return;
	st->queued = true;
	st->next_done = c->done;
	c->done = st;
}

static void grpc_run(struct h2_conn *c, struct h2_stream *st);

static void *worker(void *arg)
{
	struct h2_stream *st = arg;
	struct h2_conn *c = st->conn;

	if (st->grpc)
		grpc_run(c, st);
	else
		forward(c, st);
	pthread_mutex_lock(&c->lock);
	st->in_worker = false;
	if (st->closed)
		stream_forget(c, st); /* the client gave up on it */
	else if (!st->grpc)
		queue_locked(c, st); /* a gRPC call queued its own sends */
	/* Woken under the lock: once it is released with workers at 0,
	 * gw_h2c_serve may return, and c (on its stack) with it. */
	wake(c);
	c->workers--;
	pthread_cond_broadcast(&c->idle);
	pthread_mutex_unlock(&c->lock);
	return NULL;
}

/* ---- gRPC calls (grpc.h) ---- */

static struct h2_stream *call_stream(const struct gw_grpc_call *call)
{
	return call->st;
}

static struct gw_grpc_call *stream_call(struct h2_stream *st)
{
	return &st->call;
}

const char *gw_grpc_path(const struct gw_grpc_call *call)
{
	return call_stream(call)->path;
}

const char *gw_grpc_authority(const struct gw_grpc_call *call)
{
	return call_stream(call)->authority;
}

const char *gw_grpc_metadata(const struct gw_grpc_call *call, const char *name)
{
	size_t len = strlen(name);

	/* Set before the call's thread starts, read-only from then on. */
	for (const struct curl_slist *h = call_stream(call)->headers; h; h = h->next)
		if (!strncasecmp(h->data, name, len) && h->data[len] == ':')
			return h->data + len + (h->data[len + 1] == ' ' ? 2 : 1);
	return NULL;
}

const void *gw_grpc_request(const struct gw_grpc_call *call, size_t *len)
{
	const struct h2_stream *st = call_stream(call);

	*len = st->body.len - 5; /* grpc_run checked the frame */
	return st->body.data + 5;
}

int gw_grpc_send_bytes(struct gw_grpc_call *call, const void *data, size_t len)
{
	struct h2_stream *st = call_stream(call);
	struct h2_conn *c = st->conn;
	uint8_t prefix[5] = {0, (uint8_t)(len >> 24), (uint8_t)(len >> 16), (uint8_t)(len >> 8),
	                     (uint8_t)len};
	int r = 0;

	pthread_mutex_lock(&c->lock);
	if (st->closed || st->grpc_done)
		r = -EPIPE;
	else if (al_buf_append(&st->resp_body, prefix, sizeof(prefix)) < 0 ||
	         al_buf_append(&st->resp_body, data, len) < 0)
		r = -ENOMEM;
	else
		queue_locked(c, st);
	pthread_mutex_unlock(&c->lock);
	if (r == 0)
		wake(c);
	return r;
}

void gw_grpc_finish(struct gw_grpc_call *call, int code, const char *message)
{
	struct h2_stream *st = call_stream(call);
	struct h2_conn *c = st->conn;

	pthread_mutex_lock(&c->lock);
	if (!st->grpc_done) {
		st->grpc_done = true;
		st->grpc_status = code;
		st->grpc_message = message && *message ? gw_grpc_percent_encode(message) : NULL;
		if (!st->closed)
			queue_locked(c, st);
	}
	pthread_mutex_unlock(&c->lock);
	wake(c);
}

bool gw_grpc_gone(struct gw_grpc_call *call)
{
	struct h2_stream *st = call_stream(call);
	bool gone;

	pthread_mutex_lock(&st->conn->lock);
	gone = st->closed;
	pthread_mutex_unlock(&st->conn->lock);
	return gone;
}

/* The call served by its service, in the stream's thread. */
static void grpc_run(struct h2_conn *c, struct h2_stream *st)
{
	const uint8_t *b = (const uint8_t *)st->body.data;
	size_t len;

	if (st->body.len < 5) {
		gw_grpc_finish(stream_call(st), GW_GRPC_INTERNAL, "no request message");
		return;
	}
	len = (size_t)b[1] << 24 | (size_t)b[2] << 16 | (size_t)b[3] << 8 | b[4];
	if (b[0] != 0)
		gw_grpc_finish(stream_call(st), GW_GRPC_UNIMPLEMENTED,
		               "compressed messages are not supported");
	else if (len != st->body.len - 5)
		gw_grpc_finish(
		    stream_call(st), GW_GRPC_INTERNAL,
		    "one request message was expected (a unary or server-streaming call)");
	else
		gw_modal_serve(c->server, stream_call(st));
	gw_grpc_finish(stream_call(st), GW_GRPC_INTERNAL, "the call ended without a status");
}

/* ---- the nghttp2 session ---- */

/* What fits in buf of the answer not yet sent, taken. */
static size_t copy_out(struct h2_stream *st, uint8_t *buf, size_t length)
{
	size_t n = st->resp_body.len - st->sent;

	if (n > length)
		n = length;
	if (n)
		memcpy(buf, st->resp_body.data + st->sent, n);
	st->sent += n;
	return n;
}

static ssize_t read_answer(nghttp2_session *session, int32_t stream_id, uint8_t *buf, size_t length,
                           uint32_t *data_flags, nghttp2_data_source *source, void *user_data)
{
	struct h2_stream *st = source->ptr;
	size_t n = copy_out(st, buf, length);

	(void)session;
	(void)stream_id;
	(void)user_data;
	if (st->sent == st->resp_body.len)
		*data_flags |= NGHTTP2_DATA_FLAG_EOF;
	return (ssize_t)n;
}

static void submit_answer(struct h2_conn *c, struct h2_stream *st)
{
	_cleanup_free_ nghttp2_nv *nv = calloc(st->n_resp_headers + 1, sizeof(*nv));
	nghttp2_data_provider data = {.source.ptr = st, .read_callback = read_answer};
	char status[8];

	if (!nv) {
		nghttp2_submit_rst_stream(c->session, NGHTTP2_FLAG_NONE, st->id,
		                          NGHTTP2_INTERNAL_ERROR);
		return;
	}
	snprintf(status, sizeof(status), "%03ld", st->status);
	nv[0] = (nghttp2_nv){(uint8_t *)":status", (uint8_t *)status, 7, strlen(status),
	                     NGHTTP2_NV_FLAG_NONE};
	for (size_t i = 0; i < st->n_resp_headers; i++)
		nv[i + 1] = (nghttp2_nv){(uint8_t *)st->resp_headers[i].name,
		                         (uint8_t *)st->resp_headers[i].value,
		                         strlen(st->resp_headers[i].name),
		                         strlen(st->resp_headers[i].value), NGHTTP2_NV_FLAG_NONE};
	/* nghttp2 copies the header block; the body is read from st as it goes out. */
	if (nghttp2_submit_response(c->session, st->id, nv, st->n_resp_headers + 1, &data) != 0)
		nghttp2_submit_rst_stream(c->session, NGHTTP2_FLAG_NONE, st->id,
		                          NGHTTP2_INTERNAL_ERROR);
}

static int on_begin_headers(nghttp2_session *session, const nghttp2_frame *frame, void *user_data)
{
	struct h2_conn *c = user_data;
	struct h2_stream *st;

	if (frame->hd.type != NGHTTP2_HEADERS || frame->headers.cat != NGHTTP2_HCAT_REQUEST)
		return 0;
	st = calloc(1, sizeof(*st));
	if (!st)
		return NGHTTP2_ERR_CALLBACK_FAILURE;
	st->conn = c;
	st->call.st = st;
	st->id = frame->hd.stream_id;
	pthread_mutex_lock(&c->lock);
	st->next = c->streams;
	c->streams = st;
	pthread_mutex_unlock(&c->lock);
	nghttp2_session_set_stream_user_data(session, st->id, st);
	return 0;
}

static int on_header_field(nghttp2_session *session, const nghttp2_frame *frame,
                           const uint8_t *name, size_t namelen, const uint8_t *value,
                           size_t valuelen, uint8_t flags, void *user_data)
{
	struct h2_stream *st = nghttp2_session_get_stream_user_data(session, frame->hd.stream_id);
	_cleanup_free_ char *line = NULL;
	char **slot = NULL;

	(void)flags;
	(void)user_data;
	if (!st || frame->hd.type != NGHTTP2_HEADERS)
		return 0;
	if (namelen == 7 && !memcmp(name, ":method", 7))
		slot = &st->method;
	else if (namelen == 5 && !memcmp(name, ":path", 5))
		slot = &st->path;
	else if (namelen == 10 && !memcmp(name, ":authority", 10))
		slot = &st->authority;
	if (slot) {
		free(*slot);
		*slot = strndup((const char *)value, valuelen);
		return *slot ? 0 : NGHTTP2_ERR_CALLBACK_FAILURE;
	}
	if (name[0] == ':' || is_hop_by_hop((const char *)name, namelen))
		return 0;
	if (namelen == 12 && !memcmp(name, "content-type", 12) && valuelen >= 16 &&
	    !memcmp(value, "application/grpc", 16))
		st->grpc = true;
	if (asprintf(&line, "%.*s: %.*s", (int)namelen, name, (int)valuelen, value) < 0)
		return NGHTTP2_ERR_CALLBACK_FAILURE;
	st->headers = curl_slist_append(st->headers, line);
	return st->headers ? 0 : NGHTTP2_ERR_CALLBACK_FAILURE;
}

static int on_data_chunk(nghttp2_session *session, uint8_t flags, int32_t stream_id,
                         const uint8_t *data, size_t len, void *user_data)
{
	struct h2_stream *st = nghttp2_session_get_stream_user_data(session, stream_id);

	(void)flags;
	(void)user_data;
	if (!st || st->too_large)
		return 0;
	if (st->body.len + len > GW_MAX_BODY) {
		st->too_large = true;
		return 0;
	}
	return al_buf_append(&st->body, data, len) < 0 ? NGHTTP2_ERR_CALLBACK_FAILURE : 0;
}

static void answer_now(struct h2_conn *c, struct h2_stream *st, long status, const char *msg)
{
	st->status = status;
	al_buf_append(&st->resp_body, msg, strlen(msg));
	submit_answer(c, st);
}

static int on_frame_recv(nghttp2_session *session, const nghttp2_frame *frame, void *user_data)
{
	struct h2_conn *c = user_data;
	struct h2_stream *st;
	pthread_attr_t attr;
	pthread_t t;

	if ((frame->hd.type != NGHTTP2_HEADERS && frame->hd.type != NGHTTP2_DATA) ||
	    !(frame->hd.flags & NGHTTP2_FLAG_END_STREAM))
		return 0;
	st = nghttp2_session_get_stream_user_data(session, frame->hd.stream_id);
	if (!st || st->in_worker)
		return 0;
	if (!st->method || !st->path || st->path[0] != '/') {
		answer_now(c, st, 400, "{\"code\":400,\"message\":\"no :method or :path\"}");
		return 0;
	}
	if (st->too_large) {
		answer_now(c, st, 413, "{\"code\":413,\"message\":\"request body too large\"}");
		return 0;
	}
	pthread_mutex_lock(&c->lock);
	st->in_worker = true;
	c->workers++;
	pthread_mutex_unlock(&c->lock);
	pthread_attr_init(&attr);
	pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
	if (pthread_create(&t, &attr, worker, st) != 0) {
		pthread_mutex_lock(&c->lock);
		st->in_worker = false;
		c->workers--;
		pthread_mutex_unlock(&c->lock);
		answer_now(c, st, 503, "{\"code\":503,\"message\":\"no thread for the request\"}");
	}
	pthread_attr_destroy(&attr);
	return 0;
}

static int on_stream_close(nghttp2_session *session, int32_t stream_id, uint32_t error_code,
                           void *user_data)
{
	struct h2_conn *c = user_data;
	struct h2_stream *st = nghttp2_session_get_stream_user_data(session, stream_id);

	(void)error_code;
	if (!st)
		return 0;
	nghttp2_session_set_stream_user_data(session, stream_id, NULL);
	pthread_mutex_lock(&c->lock);
	st->closed = true;
	if (!st->in_worker)
		stream_forget(c, st);
	pthread_mutex_unlock(&c->lock);
	return 0;
}

static void submit_trailers(struct h2_conn *c, struct h2_stream *st, bool headers_too)
{
	char status[16];
	nghttp2_nv nv[4];
	size_t n = 0;

	snprintf(status, sizeof(status), "%d", st->grpc_status);
	if (headers_too) {
		nv[n++] = (nghttp2_nv){(uint8_t *)":status", (uint8_t *)"200", 7, 3,
		                       NGHTTP2_NV_FLAG_NONE};
		nv[n++] = (nghttp2_nv){(uint8_t *)"content-type", (uint8_t *)"application/grpc", 12,
		                       16, NGHTTP2_NV_FLAG_NONE};
	}
	nv[n++] = (nghttp2_nv){(uint8_t *)"grpc-status", (uint8_t *)status, 11, strlen(status),
	                       NGHTTP2_NV_FLAG_NONE};
	if (st->grpc_message)
		nv[n++] = (nghttp2_nv){(uint8_t *)"grpc-message", (uint8_t *)st->grpc_message, 12,
		                       strlen(st->grpc_message), NGHTTP2_NV_FLAG_NONE};
	if (headers_too ? nghttp2_submit_response(c->session, st->id, nv, n, NULL)
	                : nghttp2_submit_trailer(c->session, st->id, nv, n))
		nghttp2_submit_rst_stream(c->session, NGHTTP2_FLAG_NONE, st->id,
		                          NGHTTP2_INTERNAL_ERROR);
}

/* The messages a gRPC call has sent so far, then its trailers once it is done. */
static ssize_t read_grpc(nghttp2_session *session, int32_t stream_id, uint8_t *buf, size_t length,
                         uint32_t *data_flags, nghttp2_data_source *source, void *user_data)
{
	struct h2_stream *st = source->ptr;
	struct h2_conn *c = user_data;
	size_t n;
	bool done;

	(void)session;
	(void)stream_id;
	pthread_mutex_lock(&c->lock);
	n = copy_out(st, buf, length);
	if (st->sent == st->resp_body.len)
		st->sent = st->resp_body.len = 0; /* all out: the buffer starts afresh */
	done = st->grpc_done && st->resp_body.len == 0;
	pthread_mutex_unlock(&c->lock);
	if (done) {
		*data_flags |= NGHTTP2_DATA_FLAG_EOF | NGHTTP2_DATA_FLAG_NO_END_STREAM;
		submit_trailers(c, st, false);
		return (ssize_t)n;
	}
	return n ? (ssize_t)n : NGHTTP2_ERR_DEFERRED;
}

static void grpc_submit(struct h2_conn *c, struct h2_stream *st)
{
	nghttp2_data_provider data = {.source.ptr = st, .read_callback = read_grpc};
	const nghttp2_nv nv[] = {
	    {(uint8_t *)":status", (uint8_t *)"200", 7, 3, NGHTTP2_NV_FLAG_NONE},
	    {(uint8_t *)"content-type", (uint8_t *)"application/grpc", 12, 16,
	     NGHTTP2_NV_FLAG_NONE},
	};
	bool trailers_only;

	if (st->grpc_started) {
		nghttp2_session_resume_data(c->session, st->id);
		return;
	}
	st->grpc_started = true;
	pthread_mutex_lock(&c->lock);
	trailers_only = st->grpc_done && st->resp_body.len == 0;
	pthread_mutex_unlock(&c->lock);
	/* A call that fails before any message answers with one block (gRPC's
	 * "Trailers-Only" response). */
	if (trailers_only)
		submit_trailers(c, st, true);
	else if (nghttp2_submit_response(c->session, st->id, nv, 2, &data) != 0)
		nghttp2_submit_rst_stream(c->session, NGHTTP2_FLAG_NONE, st->id,
		                          NGHTTP2_INTERNAL_ERROR);
}

/* Everything nghttp2 has to send, written out (blocking). */
static int flush(struct h2_conn *c)
{
	for (;;) {
		const uint8_t *data;
		ssize_t n = nghttp2_session_mem_send(c->session, &data);
		if (n < 0)
			return -EIO;
		if (n == 0)
			return 0;
		while (n > 0) {
			ssize_t w = send(c->fd, data, (size_t)n, MSG_NOSIGNAL);
			if (w < 0 && errno == EINTR)
				continue;
			if (w < 0)
				return -errno;
			data += w;
			n -= w;
		}
	}
}

static void submit_done(struct h2_conn *c)
{
	struct h2_stream *done;

	pthread_mutex_lock(&c->lock);
	done = c->done;
	c->done = NULL;
	/* A stream the client closed meanwhile is left out: its thread may free it as soon as
	 * the lock is released (only this thread closes streams, so the rest stay open). */
	for (struct h2_stream **p = &done; *p;) {
		(*p)->queued = false;
		if ((*p)->closed)
			*p = (*p)->next_done;
		else
			p = &(*p)->next_done;
	}
	pthread_mutex_unlock(&c->lock);
	while (done) {
		struct h2_stream *next = done->next_done;
		if (done->grpc)
			grpc_submit(c, done);
		else
			submit_answer(c, done);
		done = next;
	}
}

static void session_loop(struct h2_conn *c)
{
	nghttp2_settings_entry settings[] = {
	    {NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS, H2_MAX_STREAMS},
	    {NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE, H2_WINDOW},
	};
	uint8_t buf[65536];

	if (nghttp2_submit_settings(c->session, NGHTTP2_FLAG_NONE, settings, 2) != 0 ||
	    nghttp2_session_set_local_window_size(c->session, NGHTTP2_FLAG_NONE, 0, H2_WINDOW) != 0)
		return;
	for (;;) {
		struct pollfd p[2] = {{.fd = c->fd, .events = POLLIN},
		                      {.fd = c->wake[0], .events = POLLIN}};
		submit_done(c);
		if (flush(c) < 0)
			return;
		if (!nghttp2_session_want_read(c->session) &&
		    !nghttp2_session_want_write(c->session))
			return;
		if (poll(p, 2, -1) < 0) {
			if (errno == EINTR)
				continue;
			return;
		}
		if (p[1].revents & POLLIN) {
			char drain[64];
			while (read(c->wake[0], drain, sizeof(drain)) == (ssize_t)sizeof(drain))
				;
		}
		if (p[0].revents & (POLLIN | POLLHUP | POLLERR)) {
			ssize_t n = recv(c->fd, buf, sizeof(buf), 0);
			if (n < 0 && errno == EINTR)
				continue;
			if (n <= 0)
				return;
			if (nghttp2_session_mem_recv(c->session, buf, (size_t)n) < 0)
				return;
		}
	}
}

void gw_h2c_serve(struct gw_server *s, int fd)
{
	_cleanup_close_ int sock = fd;
	nghttp2_session_callbacks *cb;
	struct h2_conn c = {.server = s, .fd = fd, .wake = {-1, -1}};

	log_info("an HTTP/2 (h2c) connection");
	if (pipe2(c.wake, O_CLOEXEC | O_NONBLOCK) < 0) {
		log_warn("h2c: pipe: %m");
		return;
	}
	pthread_mutex_init(&c.lock, NULL);
	pthread_cond_init(&c.idle, NULL);
	if (nghttp2_session_callbacks_new(&cb) == 0) {
		nghttp2_session_callbacks_set_on_begin_headers_callback(cb, on_begin_headers);
		nghttp2_session_callbacks_set_on_header_callback(cb, on_header_field);
		nghttp2_session_callbacks_set_on_data_chunk_recv_callback(cb, on_data_chunk);
		nghttp2_session_callbacks_set_on_frame_recv_callback(cb, on_frame_recv);
		nghttp2_session_callbacks_set_on_stream_close_callback(cb, on_stream_close);
		if (nghttp2_session_server_new(&c.session, cb, &c) == 0) {
			session_loop(&c);
		}
		nghttp2_session_callbacks_del(cb);
	}
	/* The client is gone: no answer will be sent, but the workers still hold streams. */
	shutdown(sock, SHUT_RDWR);
	pthread_mutex_lock(&c.lock);
	for (struct h2_stream *st = c.streams; st; st = st->next)
		st->closed = true;
	while (c.workers > 0)
		pthread_cond_wait(&c.idle, &c.lock);
	while (c.streams)
		stream_forget(&c, c.streams);
	pthread_mutex_unlock(&c.lock);
	if (c.session)
		nghttp2_session_del(c.session);
	close(c.wake[0]);
	close(c.wake[1]);
	pthread_cond_destroy(&c.idle);
	pthread_mutex_destroy(&c.lock);
}
