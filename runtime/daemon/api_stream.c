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
#include <sys/ioctl.h>
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
/* On pipes, output frames smaller than COALESCE_BELOW are followed by a
 * pause of COALESCE_NS before the next (see direct_send). */
#define COALESCE_BELOW (32u << 10)
#define COALESCE_NS 1000000u
#define SOCKET_BUFFER (4 << 20)

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

/* ---- a process on pipes: the bytes never pass through our memory ---- */

/*
 * The process's stdio is ours (process_take_stdio): each output frame is
 * a header sent with what the pipe holds at that moment (FIONREAD, at most
 * a frame), then that many bytes spliced from the pipe to the socket; each
 * stdin frame's payload is spliced from the socket into the stdin pipe.
 * Only headers and the small control frames are read into memory, so the
 * relay holds a few bytes whatever the command writes or reads, and the
 * pipes' and the socket's own buffers bound what is in flight.
 */
struct direct {
	struct relay *r;
	int fd[3]; /* stdin (write end), stdout, stderr: -1 once closed */
	/* Output: the frame being sent. */
	unsigned char hdr[EXECSTREAM_HEADER_LEN];
	size_t hdr_off, hdr_len;
	int src;         /* 1 or 2 while a frame's payload is being sent */
	int next;        /* which output goes next: they take turns */
	size_t drain[3]; /* once the process ended: what is left to send of each */
	bool ended;
	uint64_t quiet_until; /* ns: no new output frame before, see direct_send */
	struct execstream_mover out;
	/* Input: the frame being received. */
	unsigned char ihdr[EXECSTREAM_HEADER_LEN];
	size_t ihdr_got;
	uint8_t itype;
	struct execstream_mover in; /* a stdin payload */
	struct al_buf ctl;          /* a control frame's payload */
	size_t ctl_left;
	int wait_fd;
	short wait_events;
};

static void direct_close(struct direct *d, int i)
{
	if (d->fd[i] >= 0)
		close(d->fd[i]);
	d->fd[i] = -1;
}

static size_t queued_bytes(int fd)
{
	int n = 0;

	return fd >= 0 && ioctl(fd, FIONREAD, &n) == 0 && n > 0 ? (size_t)n : 0;
}

/* Begin the next output frame, if an output has bytes; false when none has. */
static bool direct_next_frame(struct direct *d)
{
	for (int k = 0; k < 2; k++) {
		int i = 1 + (d->next + k) % 2;
		size_t n = queued_bytes(d->fd[i]);
		if (d->ended && n > d->drain[i])
			n = d->drain[i];
		if (n == 0) {
			d->drain[i] = 0; /* an ended process's pipe that is empty stays so */
			continue;
		}
		if (n > EXECSTREAM_MAX_PAYLOAD)
			n = EXECSTREAM_MAX_PAYLOAD;
		execstream_header(d->hdr, i == 1 ? EXECSTREAM_STDOUT : EXECSTREAM_STDERR, n);
		d->hdr_off = 0;
		d->hdr_len = sizeof(d->hdr);
		d->out.left = n;
		d->src = i;
		if (d->ended)
			d->drain[i] -= n;
		d->next = i % 2; /* the other one first next time */
		return true;
	}
	return false;
}

/* Send output: control frames, then data frames.  False once the client is gone. */
static bool direct_send(struct direct *d, bool *blocked)
{
	struct relay *r = d->r;

	*blocked = false;
	for (;;) {
		if (d->hdr_off < d->hdr_len) {
			ssize_t n = send(r->sock, d->hdr + d->hdr_off, d->hdr_len - d->hdr_off,
			                 MSG_DONTWAIT | MSG_NOSIGNAL);
			if (n < 0 && errno == EINTR)
				continue;
			if (n < 0 && errno == EAGAIN) {
				*blocked = true;
				return true;
			}
			if (n < 0)
				return false;
			d->hdr_off += (size_t)n;
			continue;
		}
		if (d->src) {
			int wfd;
			short ev;
			ssize_t n = execstream_move(&d->out, d->fd[d->src], r->sock, &wfd, &ev);
			if (n == -EAGAIN) {
				/* The pipe holds the frame's bytes: only the socket waits. */
				*blocked = true;
				return true;
			}
			if (n <= 0 && n != -EPIPE && n != -ECONNRESET) {
				/* The bytes FIONREAD promised are gone: nobody else reads
				 * the pipe, so this is a broken stream. */
				log_warn("sandbox %s: streamed exec: output pipe: %s",
				         r->st->sb->id, n == 0 ? "early end" : strerror((int)-n));
				return false;
			}
			if (n < 0)
				return false;
			if (execstream_mover_idle(&d->out)) {
				/* A small frame: the command writes in small pieces,
				 * and a frame (two syscalls here, more in the client)
				 * for each costs more than the pieces.  Let the pipe
				 * gather for a moment; one that fills is read at once. */
				if (d->hdr[1] == 0 && d->hdr[2] == 0 &&
				    d->hdr[3] < (COALESCE_BELOW >> 8))
					d->quiet_until = al_now_ns() + COALESCE_NS;
				d->src = 0;
			}
			continue;
		}
		/* Control frames (errors, the exit) between data frames. */
		if (r->out.len) {
			if (!write_client(r))
				return false;
			if (r->out.len) {
				*blocked = true;
				return true;
			}
			continue;
		}
		if (!d->ended && al_now_ns() < d->quiet_until)
			return true;
		if (!direct_next_frame(d))
			return true;
	}
}

static void direct_control(struct direct *d)
{
	struct relay *r = d->r;
	struct al_error err = AL_ERROR_INIT;

	if (d->itype == EXECSTREAM_CLOSE_STDIN) {
		direct_close(d, 0);
		return;
	}
	if (d->itype == EXECSTREAM_RESIZE || d->itype == EXECSTREAM_SIGNAL) {
		handle_frame(r, d->itype, d->ctl.data ? d->ctl.data : "", d->ctl.len);
		return;
	}
	(void)err;
	queue_error(r, "invalid_argument", "unknown frame type");
	r->fatal = true;
}

/* Take what the client sent.  False once it is gone. */
static bool direct_receive(struct direct *d)
{
	struct relay *r = d->r;

	for (;;) {
		if (d->in.left > 0) {
			ssize_t n = execstream_move(&d->in, r->sock, d->fd[0], &d->wait_fd,
			                            &d->wait_events);
			if (n == -EAGAIN)
				return true;
			if (n == -EPIPE) {
				/* The process closed its stdin: the rest goes nowhere, as
				 * into a pipe nobody reads. */
				direct_close(d, 0);
				continue;
			}
			if (n <= 0)
				return false;
			continue;
		}
		if (d->ctl_left > 0) {
			char chunk[4096];
			size_t want = d->ctl_left < sizeof(chunk) ? d->ctl_left : sizeof(chunk);
			ssize_t n = recv(r->sock, chunk, want, MSG_DONTWAIT);
			if (n < 0 && errno == EINTR)
				continue;
			if (n < 0 && errno == EAGAIN) {
				d->wait_fd = r->sock;
				d->wait_events = POLLIN;
				return true;
			}
			if (n <= 0 || al_buf_append(&d->ctl, chunk, (size_t)n) < 0)
				return false;
			d->ctl_left -= (size_t)n;
			if (d->ctl_left == 0) {
				direct_control(d);
				d->ctl.len = 0;
			}
			continue;
		}
		if (r->fatal)
			return true;
		/* A header, and nothing after it: its payload may go elsewhere. */
		ssize_t n = recv(r->sock, d->ihdr + d->ihdr_got, sizeof(d->ihdr) - d->ihdr_got,
		                 MSG_DONTWAIT);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && errno == EAGAIN) {
			d->wait_fd = r->sock;
			d->wait_events = POLLIN;
			return true;
		}
		if (n <= 0)
			return false;
		d->ihdr_got += (size_t)n;
		if (d->ihdr_got < sizeof(d->ihdr))
			continue;
		d->ihdr_got = 0;
		d->itype = d->ihdr[0];
		ssize_t len = execstream_header_len(d->ihdr);
		if (len < 0) {
			queue_error(r, "too_large", "frame longer than 1 MiB");
			r->fatal = true;
			return true;
		}
		if (d->itype == EXECSTREAM_STDIN) {
			d->in.left = (size_t)len;
		} else {
			d->ctl_left = (size_t)len;
			if (len == 0)
				direct_control(d);
		}
	}
}

/* The process ended: what its pipes hold now is the rest of its output (a
 * child it left behind may write on; that is not waited for). */
static void direct_ended(struct direct *d)
{
	_cleanup_buf_ struct al_buf out = {0}, err = {0};
	bool done = false;
	uint64_t v;

	if (read(d->r->notify, &v, sizeof(v)) < 0 && errno != EAGAIN)
		log_debug("eventfd read: %m");
	if (d->ended || process_stream_take(d->r->st->p, &out, &err, &done) < 0 || !done)
		return;
	/* What airlockd itself wrote (a spawn error) comes first. */
	queue_chunks(d->r, EXECSTREAM_STDOUT, &out);
	queue_chunks(d->r, EXECSTREAM_STDERR, &err);
	d->ended = true;
	/* Less the rest of a frame being sent: its header counted it. */
	for (int i = 1; i < 3; i++) {
		size_t q = queued_bytes(d->fd[i]), sending = d->src == i ? d->out.left : 0;
		d->drain[i] = q > sending ? q - sending : 0;
	}
	direct_close(d, 0);
}

static void relay_direct(struct relay *r, int fds[3])
{
	struct al_error err = AL_ERROR_INIT;
	struct direct d = {.r = r, .fd = {fds[0], fds[1], fds[2]}};
	const char *why = NULL;

	/* Ours until the connection is closed: non-blocking, for splice. */
	fcntl(r->sock, F_SETFL, fcntl(r->sock, F_GETFL) | O_NONBLOCK);
	/* Room for a whole frame or more in the socket (a Unix socket's
	 * sending side is all its buffer): fewer wake-ups on both ends.  The
	 * pages are the pipe's, referenced, not copied; best effort. */
	if (setsockopt(r->sock, SOL_SOCKET, SO_SNDBUFFORCE, &(int){SOCKET_BUFFER}, sizeof(int)) < 0)
		log_debug("SO_SNDBUFFORCE: %m");
	for (;;) {
		struct pollfd pfd[4];
		bool blocked = false, quiet;
		int n = 0;

		if (__atomic_load_n(r->st->stopping, __ATOMIC_SEQ_CST)) {
			why = "airlockd is stopping";
			break;
		}
		d.wait_fd = -1;
		if (!r->exit_queued && !direct_receive(&d)) {
			why = "the client left";
			break;
		}
		if (!direct_send(&d, &blocked)) {
			why = "the client left";
			break;
		}
		if (d.ended && !d.src && !r->exit_queued && d.drain[1] == 0 && d.drain[2] == 0 &&
		    !blocked) {
			queue_exit(r);
			continue;
		}
		if (r->exit_queued && !blocked && !d.src && r->out.len == 0)
			break;
		if (r->fatal && !blocked && !d.src && r->out.len == 0)
			break;
		/* What to wait for: the socket's room while something is being
		 * sent, else output to send; the input side's own wait; the end. */
		quiet = !d.ended && al_now_ns() < d.quiet_until;
		if (blocked)
			pfd[n++] = (struct pollfd){.fd = r->sock, .events = POLLOUT};
		else if (!d.ended && !quiet)
			for (int i = 1; i < 3; i++)
				if (d.fd[i] >= 0)
					pfd[n++] = (struct pollfd){.fd = d.fd[i], .events = POLLIN};
		if (d.wait_fd >= 0)
			pfd[n++] = (struct pollfd){.fd = d.wait_fd, .events = d.wait_events};
		else if (!r->exit_queued)
			pfd[n++] = (struct pollfd){.fd = r->sock, .events = POLLRDHUP};
		pfd[n++] = (struct pollfd){.fd = d.ended ? -1 : r->notify, .events = POLLIN};
		if (poll(pfd, (nfds_t)n, quiet ? 1 : SLICE_MS) < 0 && errno != EINTR) {
			why = "poll failed";
			break;
		}
		for (int i = 0; i < n; i++) {
			if (pfd[i].fd == r->notify && pfd[i].revents)
				direct_ended(&d);
			/* A pipe at its end (the command and its children closed
			 * it) with nothing left in it. */
			else if (pfd[i].fd >= 0 && pfd[i].fd != r->sock &&
			         (pfd[i].revents & POLLHUP) && !(pfd[i].revents & POLLIN))
				for (int k = 0; k < 3; k++)
					if (d.fd[k] == pfd[i].fd)
						direct_close(&d, k);
		}
	}
	if (!r->exit_queued) {
		log_info("sandbox %s: streamed exec ends (%s); its command is killed",
		         r->st->sb->id, why ? why : "protocol error");
		process_kill(r->st->p, SIGKILL, &err);
	}
	for (int i = 0; i < 3; i++)
		direct_close(&d, i);
	execstream_mover_free(&d.in);
	execstream_mover_free(&d.out);
	al_buf_free(&d.ctl);
}

static void on_upgrade(void *cls, struct MHD_Connection *c, void *con_cls, const char *extra_in,
                       size_t extra_in_size, MHD_socket sock, struct MHD_UpgradeResponseHandle *urh)
{
	struct api_stream *st = cls;
	struct al_error err = AL_ERROR_INIT;
	struct relay r = {.st = st, .sock = sock, .notify = -1};
	int fds[3];

	(void)c;
	(void)con_cls;
	st->relayed = true;
	r.notify = process_stream_attach(st->p, &err);
	if (r.notify < 0) {
		log_warn("sandbox %s: streamed exec: %s", st->sb->id, err.msg);
		process_kill(st->p, SIGKILL, &err);
	} else if (extra_in_size && al_buf_append(&r.in, extra_in, extra_in_size) < 0) {
		process_kill(st->p, SIGKILL, &err);
	} else if (process_take_stdio(st->p, fds) == 0) {
		/* Frames come after the 101 (docs/api.md): on pipes nothing
		 * that came with the head is read in whole. */
		if (extra_in_size) {
			queue_error(&r, "invalid_argument",
			            "frames sent before the 101 answer are refused");
			write_client(&r);
			process_kill(st->p, SIGKILL, &err);
			for (int i = 0; i < 3; i++)
				close(fds[i]);
		} else {
			relay_direct(&r, fds);
		}
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
