/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The relay of a streamed exec: one loop in the upgraded connection's own
 * thread (MHD runs one per connection, and allows an upgrade handler to
 * block there) between the client's socket and the process.
 *
 * Backpressure both ways, so neither side grows airlockd: output is taken
 * from the process only while less than OUT_HIGH_WATER waits for the
 * client (and the collector stops reading the process past its own mark,
 * process.h), and the socket is read only while less than IN_HIGH_WATER of
 * stdin waits for the process.
 */
#include "api_stream.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "cleanup.h"
#include "execstream.h"
#include "json.h"
#include "log.h"
#include "util.h"

#define OUT_HIGH_WATER (256u << 10)
#define IN_HIGH_WATER (1u << 20)
/* How often the loop looks at airlockd stopping and at stdin draining. */
#define SLICE_MS 250

struct api_stream {
	struct sandbox *sb;
	struct al_process *p;
	const bool *stopping;
	bool relayed;
};

struct relay {
	struct api_stream *st;
	int sock;
	int notify;
	struct al_buf in;  /* from the client, not yet a whole frame */
	struct al_buf out; /* frames for the client, sent up to out_off */
	size_t out_off;
	bool exit_queued;
	bool fatal; /* a frame the stream cannot go on after: send what is queued and stop */
};

struct api_stream *api_stream_new(struct sandbox *sb, struct al_process *p, const bool *stopping)
{
	struct api_stream *st = calloc(1, sizeof(*st));

	if (!st)
		return NULL;
	sandbox_ref(sb);
	process_ref(p);
	st->sb = sb;
	st->p = p;
	st->stopping = stopping;
	return st;
}

void api_stream_free(struct api_stream *st)
{
	struct al_error err = AL_ERROR_INIT;

	if (!st)
		return;
	/* Nobody could ever collect it: no process id was given out. */
	if (!st->relayed)
		process_kill(st->p, SIGKILL, &err);
	process_unref(st->p);
	sandbox_unref(st->sb);
	free(st);
}

static void queue_error(struct relay *r, const char *code, const char *message)
{
	_cleanup_cjson_ cJSON *o = cJSON_CreateObject();
	_cleanup_free_ char *text = NULL;

	cJSON_AddStringToObject(o, "code", code);
	cJSON_AddStringToObject(o, "message", message);
	text = cJSON_PrintUnformatted(o);
	if (!text || execstream_put(&r->out, EXECSTREAM_ERROR, text, strlen(text)) < 0)
		r->fatal = true;
}

static int signal_by_name(const char *name, size_t len)
{
	static const struct {
		const char *name;
		int sig;
	} names[] = {{"INT", SIGINT}, {"TERM", SIGTERM}, {"HUP", SIGHUP}, {"KILL", SIGKILL}};

	for (size_t i = 0; i < AL_ARRAY_SIZE(names); i++)
		if (strlen(names[i].name) == len && !memcmp(names[i].name, name, len))
			return names[i].sig;
	return 0;
}

static void handle_frame(struct relay *r, uint8_t type, const char *data, size_t len)
{
	struct al_error err = AL_ERROR_INIT;
	struct al_process *p = r->st->p;
	int sig;

	switch (type) {
	case EXECSTREAM_STDIN:
		/* Input after the process closed its stdin goes nowhere, as
		 * into a pipe nobody reads. */
		if (len > 0 && process_write_stdin(p, data, len, false, &err) < 0 &&
		    err.code != EPIPE)
			queue_error(r, "stdin", err.msg);
		break;
	case EXECSTREAM_CLOSE_STDIN:
		if (process_write_stdin(p, NULL, 0, true, &err) < 0)
			queue_error(r, "stdin", err.msg);
		break;
	case EXECSTREAM_RESIZE:
		if (len != 4) {
			queue_error(r, "invalid_argument",
			            "a resize frame holds 4 bytes: rows and cols, big-endian u16");
			break;
		}
		if (process_resize(p, (unsigned)(uint8_t)data[0] << 8 | (uint8_t)data[1],
		                   (unsigned)(uint8_t)data[2] << 8 | (uint8_t)data[3], &err) < 0)
			queue_error(r, "invalid_argument", err.msg);
		break;
	case EXECSTREAM_SIGNAL:
		sig = signal_by_name(data, len);
		if (!sig)
			queue_error(r, "invalid_argument", "signal must be INT, TERM, HUP or KILL");
		else if (process_kill(p, sig, &err) < 0)
			queue_error(r, "invalid_argument", err.msg);
		break;
	default:
		queue_error(r, "invalid_argument", "unknown frame type");
		r->fatal = true;
	}
}

/* Whole frames of r->in, handled and dropped from it. */
static void handle_input(struct relay *r)
{
	size_t off = 0;

	if (r->in.len == 0)
		return;
	while (!r->fatal) {
		const char *payload;
		size_t plen, flen;
		uint8_t type;
		int k = execstream_next(r->in.data + off, r->in.len - off, &type, &payload, &plen,
		                        &flen);
		if (k == 0)
			break;
		if (k < 0) {
			queue_error(r, "too_large", "frame longer than 1 MiB");
			r->fatal = true;
			break;
		}
		handle_frame(r, type, payload, plen);
		off += flen;
	}
	/* An empty buffer may have no data at all. */
	if (off > 0) {
		memmove(r->in.data, r->in.data + off, r->in.len - off);
		r->in.len -= off;
	}
}

/* Read what the client sent; false once it is gone. */
static bool read_client(struct relay *r)
{
	char chunk[65536];
	ssize_t n = recv(r->sock, chunk, sizeof(chunk), MSG_DONTWAIT);

	if (n < 0 && (errno == EAGAIN || errno == EINTR))
		return true;
	if (n <= 0)
		return false;
	if (al_buf_append(&r->in, chunk, (size_t)n) < 0)
		return false;
	handle_input(r);
	return true;
}

/* Send what is queued; false once the client is gone. */
static bool write_client(struct relay *r)
{
	while (r->out_off < r->out.len) {
		ssize_t n = send(r->sock, r->out.data + r->out_off, r->out.len - r->out_off,
		                 MSG_DONTWAIT | MSG_NOSIGNAL);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && errno == EAGAIN)
			return true;
		if (n < 0)
			return false;
		r->out_off += (size_t)n;
	}
	r->out.len = r->out_off = 0;
	return true;
}

static void queue_chunks(struct relay *r, uint8_t type, const struct al_buf *b)
{
	for (size_t off = 0; off < b->len && !r->fatal;) {
		size_t n = b->len - off < 65536 ? b->len - off : 65536;
		if (execstream_put(&r->out, type, b->data + off, n) < 0)
			r->fatal = true;
		off += n;
	}
}

/* The exit frame: the process's result without its (already sent) output. */
static void queue_exit(struct relay *r)
{
	_cleanup_cjson_ cJSON *o = process_take_result(r->st->p, false);
	_cleanup_free_ char *text = NULL;

	cJSON_DeleteItemFromObjectCaseSensitive(o, "stdout");
	cJSON_DeleteItemFromObjectCaseSensitive(o, "stderr");
	cJSON_DeleteItemFromObjectCaseSensitive(o, "running");
	text = cJSON_PrintUnformatted(o);
	if (!text || execstream_put(&r->out, EXECSTREAM_EXIT, text, strlen(text)) < 0)
		r->fatal = true;
	r->exit_queued = true;
}

/* New output (and maybe the end) of the process, framed for the client. */
static void take_output(struct relay *r)
{
	_cleanup_buf_ struct al_buf out = {0}, err = {0};
	uint64_t v;
	bool done = false;

	if (read(r->notify, &v, sizeof(v)) < 0 && errno != EAGAIN)
		log_debug("eventfd read: %m");
	if (process_stream_take(r->st->p, &out, &err, &done) < 0) {
		r->fatal = true;
		return;
	}
	queue_chunks(r, EXECSTREAM_STDOUT, &out);
	queue_chunks(r, EXECSTREAM_STDERR, &err);
	if (done)
		queue_exit(r);
}

static void relay(struct relay *r)
{
	struct al_error err = AL_ERROR_INIT;
	const char *why = NULL;

	handle_input(r); /* what came with the request's header */
	for (;;) {
		struct pollfd pfd[2];
		bool want_in =
		    !r->fatal && !r->exit_queued && process_stdin_queued(r->st->p) < IN_HIGH_WATER;
		bool want_out = !r->exit_queued && !r->fatal && r->out.len < OUT_HIGH_WATER;

		if ((r->exit_queued || r->fatal) && r->out.len == 0)
			break;
		if (__atomic_load_n(r->st->stopping, __ATOMIC_SEQ_CST)) {
			why = "airlockd is stopping";
			break;
		}
		pfd[0] = (struct pollfd){.fd = r->sock,
		                         .events = (short)((want_in ? POLLIN | POLLRDHUP : 0) |
		                                           (r->out.len ? POLLOUT : 0))};
		pfd[1] = (struct pollfd){.fd = want_out ? r->notify : -1, .events = POLLIN};
		if (poll(pfd, 2, SLICE_MS) < 0 && errno != EINTR) {
			why = "poll failed";
			break;
		}
		/* Closing the connection, or its sending side, is leaving. */
		if (want_in ? (pfd[0].revents & (POLLIN | POLLRDHUP | POLLHUP | POLLERR)) &&
		                  !read_client(r)
		            : (pfd[0].revents & (POLLHUP | POLLERR))) {
			why = "the client left";
			break;
		}
		if (pfd[1].revents & POLLIN)
			take_output(r);
		if (r->out.len && !write_client(r)) {
			why = "the client left";
			break;
		}
	}
	if (!r->exit_queued) {
		log_info("sandbox %s: streamed exec ends (%s); its command is killed",
		         r->st->sb->id, why ? why : "protocol error");
		process_kill(r->st->p, SIGKILL, &err);
	}
}

static void on_upgrade(void *cls, struct MHD_Connection *c, void *con_cls, const char *extra_in,
                       size_t extra_in_size, MHD_socket sock, struct MHD_UpgradeResponseHandle *urh)
{
	struct api_stream *st = cls;
	struct al_error err = AL_ERROR_INIT;
	struct relay r = {.st = st, .sock = sock, .notify = -1};

	(void)c;
	(void)con_cls;
	st->relayed = true;
	r.notify = process_stream_attach(st->p, &err);
	if (r.notify < 0) {
		log_warn("sandbox %s: streamed exec: %s", st->sb->id, err.msg);
		process_kill(st->p, SIGKILL, &err);
	} else if (extra_in_size && al_buf_append(&r.in, extra_in, extra_in_size) < 0) {
		process_kill(st->p, SIGKILL, &err);
	} else {
		relay(&r);
	}
	al_buf_free(&r.in);
	al_buf_free(&r.out);
	MHD_upgrade_action(urh, MHD_UPGRADE_ACTION_CLOSE);
}

struct MHD_Response *api_stream_response(struct api_stream *st)
{
	struct MHD_Response *resp = MHD_create_response_for_upgrade(on_upgrade, st);

	if (resp &&
	    (MHD_add_response_header(resp, MHD_HTTP_HEADER_UPGRADE, EXECSTREAM_PROTOCOL) !=
	         MHD_YES ||
	     MHD_add_response_header(resp, MHD_HTTP_HEADER_CONNECTION, "Upgrade") != MHD_YES)) {
		MHD_destroy_response(resp);
		return NULL;
	}
	return resp;
}
