/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The client side of a streamed exec.  libcurl has no way to hand over the
 * connection after a "101 Switching Protocols" to a protocol of our own, so
 * this file connects to airlockd's socket itself, writes the request and
 * reads the answer's head with http-parser (the parser Node.js used), then
 * speaks the frames of common/execstream.h.
 *
 * Signals are blocked but for ppoll(), so a handler only sets a flag that
 * the loop sees at once; the terminal is restored on every way out of
 * stream_exec (raw mode never outlives it, whatever the command did).
 */
#include "stream.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <termios.h>
#include <unistd.h>

#include <http_parser.h>

#include "cleanup.h"
#include "execstream.h"
#include "json.h"
#include "util.h"

#define EXIT_TIMEOUT 124
#define MAX_ERROR_BODY (64u << 10)
#define PIPE_SIZE (1 << 20)

static volatile sig_atomic_t got_winch;
static volatile sig_atomic_t got_signal;

static void on_winch(int sig)
{
	(void)sig;
	got_winch = 1;
}

static void on_signal(int sig)
{
	got_signal = sig;
}

bool stream_window_size(unsigned *rows, unsigned *cols)
{
	struct winsize ws;

	if (ioctl(STDIN_FILENO, TIOCGWINSZ, &ws) < 0 && ioctl(STDOUT_FILENO, TIOCGWINSZ, &ws) < 0)
		return false;
	if (ws.ws_row == 0 || ws.ws_col == 0)
		return false;
	*rows = ws.ws_row;
	*cols = ws.ws_col;
	return true;
}

/* ---- the answer's head ---- */

struct answer {
	bool complete;
	struct al_buf *body;
};

static int on_body(http_parser *hp, const char *at, size_t len)
{
	struct answer *a = hp->data;

	if (a->body->len + len > MAX_ERROR_BODY || al_buf_append(a->body, at, len) < 0)
		return 1;
	return 0;
}

static int on_message_complete(http_parser *hp)
{
	struct answer *a = hp->data;

	a->complete = true;
	return 0;
}

int stream_connect(const char *path, struct al_error *err)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	_cleanup_close_ int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);

	if (fd < 0)
		return al_error_errno(err, "socket");
	if (strlen(path) >= sizeof(sa.sun_path))
		return al_error_set(err, ENAMETOOLONG, "socket path %s is too long", path);
	strcpy(sa.sun_path, path);
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0)
		return al_error_errno(err, "cannot connect to airlockd at %s", path);
	return TAKE_FD(fd);
}

/*
 * Send the exec request and read the answer's head.  On 101 the frames
 * after it are left unread.  Otherwise err holds airlockd's message.
 */
static int upgrade(int sock, const struct stream_opts *o, struct al_error *err)
{
	static const http_parser_settings settings = {.on_body = on_body,
	                                              .on_message_complete = on_message_complete};
	_cleanup_free_ char *request = NULL;
	_cleanup_buf_ struct al_buf body = {0};
	_cleanup_cjson_ cJSON *j = NULL;
	struct answer a = {.body = &body};
	const cJSON *m;
	http_parser hp;
	int len;

	len = asprintf(&request,
	               "POST %s HTTP/1.1\r\nHost: localhost\r\nConnection: Upgrade\r\n"
	               "Upgrade: " EXECSTREAM_PROTOCOL "\r\nContent-Type: application/json\r\n"
	               "Content-Length: %zu\r\n\r\n%s",
	               o->path, strlen(o->body), o->body);
	if (len < 0)
		return al_error_set(err, ENOMEM, "out of memory");
	if (al_write_all(sock, request, (size_t)len) < 0)
		return al_error_errno(err, "send the exec request to airlockd");
	http_parser_init(&hp, HTTP_RESPONSE);
	hp.data = &a;
	for (;;) {
		char chunk[65536];
		ssize_t n = recv(sock, chunk, sizeof(chunk), MSG_PEEK), got;
		size_t used;

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return al_error_errno(err, "read airlockd's answer");
		/* Looked at before it is taken: the parser stops at the end of a
		 * 101's head, and only that much is read, so the frames after it
		 * stay in the socket for the relay. */
		used = http_parser_execute(&hp, &settings, chunk, (size_t)n);
		do
			got = recv(sock, chunk, n ? used : 0, 0);
		while (got < 0 && errno == EINTR);
		if (got < 0)
			return al_error_errno(err, "read airlockd's answer");
		if (hp.upgrade && hp.status_code == 101)
			return 0;
		if (HTTP_PARSER_ERRNO(&hp) != HPE_OK)
			return al_error_set(err, EPROTO, "airlockd's answer: %s",
			                    http_errno_description(HTTP_PARSER_ERRNO(&hp)));
		if (a.complete || n == 0)
			break;
	}
	if (hp.status_code == 0)
		return al_error_set(err, ECONNRESET,
		                    "airlockd closed the connection without an answer");
	if (hp.status_code == 101)
		return al_error_set(err, EPROTO, "airlockd did not switch protocols");
	j = cJSON_ParseWithLength(body.data ? body.data : "", body.len);
	m = cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(j, "error"),
	                                     "message");
	if (cJSON_IsString(m))
		return al_error_set(err, EPROTO, "%s", m->valuestring);
	return al_error_set(err, EPROTO, "airlockd answered HTTP %u", hp.status_code);
}

/* ---- the relay ---- */

/*
 * Data frames are moved without being held: an output frame's payload is
 * spliced from the socket to stdout when that is a pipe, and stdin that is
 * a pipe or a file goes out as frames of what it holds (FIONREAD), spliced
 * to the socket.  Only headers, control frames and the input of a terminal
 * or a device pass through our memory, a frame at a time.
 */
struct session {
	const struct stream_opts *o;
	int sock;
	/* From airlockd: the frame being received. */
	unsigned char ihdr[EXECSTREAM_HEADER_LEN];
	size_t ihdr_got;
	uint8_t itype;
	struct execstream_mover in; /* an output payload, to in_to */
	int in_to;                  /* 1, 2, or -1 to drop it (that output is closed) */
	bool closed[3];             /* our stdout or stderr went away */
	struct al_buf ctl;          /* a control frame's payload */
	size_t ctl_left;
	/* To airlockd. */
	struct al_buf out; /* control frames and copied stdin frames, sent up to out_off */
	size_t out_off;
	unsigned char hdr[EXECSTREAM_HEADER_LEN]; /* of a spliced stdin frame */
	size_t hdr_off, hdr_len;
	struct execstream_mover stdin_mv;
	bool stdin_open;
	bool stdin_sized; /* a pipe or a file: FIONREAD says what it holds */
	bool raw;         /* the local terminal is in raw mode: a newline needs its \r */
	int signals_sent;
	bool broken_pipe; /* our stdout was closed */
	bool send_closed; /* airlockd takes nothing more */
	cJSON *exit;      /* the exit frame, once it came */
};

static int queue(struct session *s, uint8_t type, const void *data, size_t len,
                 struct al_error *err)
{
	if (execstream_put(&s->out, type, data, len) < 0)
		return al_error_set(err, ENOMEM, "out of memory");
	return 0;
}

static int handle_control(struct session *s, const char *data, size_t len, struct al_error *err)
{
	switch (s->itype) {
	case EXECSTREAM_ERROR: {
		_cleanup_cjson_ cJSON *j = cJSON_ParseWithLength(data, len);
		const cJSON *m = cJSON_GetObjectItemCaseSensitive(j, "message");
		fprintf(stderr, "airlock: %s%s",
		        cJSON_IsString(m) ? m->valuestring : "airlockd refused a frame",
		        s->raw ? "\r\n" : "\n");
		return 0;
	}
	case EXECSTREAM_EXIT:
		s->exit = cJSON_ParseWithLength(data, len);
		if (!cJSON_IsObject(s->exit))
			return al_error_set(err, EPROTO, "airlockd sent a malformed exit frame");
		return 0;
	default:
		return al_error_set(err, EPROTO, "airlockd sent a frame of unknown type %u",
		                    s->itype);
	}
}

static int closed_early(struct al_error *err)
{
	return al_error_set(err, ECONNRESET,
	                    "airlockd closed the connection before the command's exit");
}

/* Take what airlockd sent, as far as it goes without waiting; *wait_fd and
 * *wait_events say what to wait for then. */
static int receive(struct session *s, int *wait_fd, short *wait_events, struct al_error *err)
{
	while (!s->exit) {
		ssize_t n;
		if (s->in.left > 0 || s->in.len > 0) {
			n = execstream_move(&s->in, s->sock, s->in_to, wait_fd, wait_events);
			if (n == -EAGAIN)
				return 0;
			if (n == -EPIPE && s->in_to == STDOUT_FILENO) {
				/* A closed stdout (airlock exec ... | head) ends us as
				 * SIGPIPE ends a writer, and with us the command. */
				s->broken_pipe = true;
				return 0;
			}
			if (n == -EPIPE) {
				/* Closed stderr only stops that output. */
				s->closed[s->in_to] = true;
				s->in_to = -1;
				s->in.len = 0;
				continue;
			}
			if (n == 0)
				return closed_early(err);
			if (n < 0)
				return al_error_set(err, (int)-n, "relay the command's output: %s",
				                    strerror((int)-n));
			continue;
		}
		if (s->ctl_left > 0) {
			char chunk[4096];
			n = recv(s->sock, chunk,
			         s->ctl_left < sizeof(chunk) ? s->ctl_left : sizeof(chunk), 0);
			if (n < 0 && errno == EINTR)
				continue;
			if (n < 0 && errno == EAGAIN)
				break;
			if (n < 0)
				return al_error_errno(err, "read from airlockd");
			if (n == 0)
				return closed_early(err);
			if (al_buf_append(&s->ctl, chunk, (size_t)n) < 0)
				return al_error_set(err, ENOMEM, "out of memory");
			s->ctl_left -= (size_t)n;
			if (s->ctl_left == 0) {
				int r = handle_control(s, s->ctl.data, s->ctl.len, err);
				s->ctl.len = 0;
				if (r < 0)
					return r;
			}
			continue;
		}
		/* A header alone: its payload may go straight to its fd. */
		n = recv(s->sock, s->ihdr + s->ihdr_got, sizeof(s->ihdr) - s->ihdr_got, 0);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && errno == EAGAIN)
			break;
		if (n < 0)
			return al_error_errno(err, "read from airlockd");
		if (n == 0)
			return closed_early(err);
		s->ihdr_got += (size_t)n;
		if (s->ihdr_got < sizeof(s->ihdr))
			continue;
		s->ihdr_got = 0;
		s->itype = s->ihdr[0];
		n = execstream_header_len(s->ihdr);
		if (n < 0)
			return al_error_set(err, EPROTO, "airlockd sent a frame over 1 MiB");
		if (s->itype == EXECSTREAM_STDOUT || s->itype == EXECSTREAM_STDERR) {
			int fd = s->itype == EXECSTREAM_STDOUT ? STDOUT_FILENO : STDERR_FILENO;
			s->in_to = s->closed[fd] ? -1 : fd;
			s->in.left = (size_t)n;
		} else if (n == 0) {
			int r = handle_control(s, "", 0, err);
			if (r < 0)
				return r;
		} else {
			s->ctl_left = (size_t)n;
		}
	}
	*wait_fd = s->exit ? -1 : s->sock;
	*wait_events = POLLIN;
	return 0;
}

/* Send what is pending; *wait_fd >= 0 when the rest must wait for it. */
/* airlockd closed its side (the command ended and its exit is on the way,
 * or it is gone, which reading will tell): nothing more to send. */
static int send_closed(struct session *s)
{
	s->send_closed = true;
	s->stdin_open = false;
	s->hdr_off = s->hdr_len = 0;
	s->stdin_mv.left = s->stdin_mv.len = 0;
	s->out.len = s->out_off = 0;
	return 0;
}

static int send_pending(struct session *s, int *wait_fd, short *wait_events, struct al_error *err)
{
	*wait_fd = -1;
	while (!s->send_closed) {
		ssize_t n;
		if (s->hdr_off < s->hdr_len) {
			n = send(s->sock, s->hdr + s->hdr_off, s->hdr_len - s->hdr_off,
			         MSG_NOSIGNAL);
		} else if (!execstream_mover_idle(&s->stdin_mv)) {
			n = execstream_move(&s->stdin_mv, STDIN_FILENO, s->sock, wait_fd,
			                    wait_events);
			if (n == -EAGAIN)
				return 0;
			if (n == 0)
				return al_error_set(err, EIO,
				                    "stdin ended inside a frame: "
				                    "another process reads it too");
			if (n == -EPIPE || n == -ECONNRESET)
				return send_closed(s);
			if (n < 0)
				return al_error_set(err, (int)-n, "send stdin to airlockd: %s",
				                    strerror((int)-n));
			continue;
		} else if (s->out_off < s->out.len) {
			n = send(s->sock, s->out.data + s->out_off, s->out.len - s->out_off,
			         MSG_NOSIGNAL);
		} else {
			s->out.len = s->out_off = 0;
			return 0;
		}
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && errno == EAGAIN) {
			*wait_fd = s->sock;
			*wait_events = POLLOUT;
			return 0;
		}
		if (n < 0 && (errno == EPIPE || errno == ECONNRESET))
			return send_closed(s);
		if (n < 0)
			return al_error_errno(err, "send to airlockd");
		if (s->hdr_off < s->hdr_len)
			s->hdr_off += (size_t)n;
		else
			s->out_off += (size_t)n;
	}
	return 0;
}

/* stdin has news: its next frame, or its end. */
static int read_stdin(struct session *s, struct al_error *err)
{
	char chunk[65536];
	ssize_t n;
	int avail = 0;

	if (s->stdin_sized && ioctl(STDIN_FILENO, FIONREAD, &avail) == 0 && avail > 0) {
		size_t len =
		    (size_t)avail < EXECSTREAM_MAX_PAYLOAD ? (size_t)avail : EXECSTREAM_MAX_PAYLOAD;
		execstream_header(s->hdr, EXECSTREAM_STDIN, len);
		s->hdr_off = 0;
		s->hdr_len = sizeof(s->hdr);
		s->stdin_mv.left = len;
		return 0;
	}
	/* A terminal or a device; or a pipe or file at its end, read to be sure. */
	n = read(STDIN_FILENO, chunk, sizeof(chunk));
	if (n < 0 && (errno == EAGAIN || errno == EINTR))
		return 0;
	if (n <= 0) {
		/* The end of our input is the end of the command's. */
		s->stdin_open = false;
		return queue(s, EXECSTREAM_CLOSE_STDIN, NULL, 0, err);
	}
	return queue(s, EXECSTREAM_STDIN, chunk, (size_t)n, err);
}

static int pass_signals(struct session *s, struct al_error *err)
{
	unsigned rows, cols;
	int sig = got_signal;

	if (got_winch) {
		got_winch = 0;
		if (s->o->tty && stream_window_size(&rows, &cols)) {
			unsigned char size[4] = {(unsigned char)(rows >> 8), (unsigned char)rows,
			                         (unsigned char)(cols >> 8), (unsigned char)cols};
			if (queue(s, EXECSTREAM_RESIZE, size, sizeof(size), err) < 0)
				return -err->code;
		}
	}
	if (sig) {
		const char *name = s->signals_sent++ > 0 ? "KILL"
		                   : sig == SIGINT       ? "INT"
		                   : sig == SIGHUP       ? "HUP"
		                                         : "TERM";
		got_signal = 0;
		if (queue(s, EXECSTREAM_SIGNAL, name, strlen(name), err) < 0)
			return -err->code;
	}
	return 0;
}

static int exit_status(const cJSON *exit, struct al_error *err)
{
	const cJSON *code = cJSON_GetObjectItemCaseSensitive(exit, "exit_code");
	const cJSON *sig = cJSON_GetObjectItemCaseSensitive(exit, "signal");

	if (cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(exit, "timed_out"))) {
		fprintf(stderr, "airlock: command timed out and was killed\n");
		return EXIT_TIMEOUT;
	}
	if (cJSON_IsNumber(sig) && sig->valueint > 0)
		return 128 + sig->valueint;
	if (cJSON_IsNumber(code))
		return code->valueint;
	return al_error_set(err, EPROTO, "airlockd sent neither an exit code nor a signal");
}

static int relay(struct session *s, const sigset_t *unblocked, struct al_error *err)
{
	struct stat st;
	int r;

	s->stdin_sized = s->stdin_open && fstat(STDIN_FILENO, &st) == 0 &&
	                 (S_ISFIFO(st.st_mode) || S_ISREG(st.st_mode));
	/* Pipes on our side as large as airlockd's: a frame per pipeful, so
	 * fewer and larger frames when the data comes fast.  Best effort (the
	 * user's pipe quota may say no); only the pipe's capacity changes. */
	if (s->stdin_open && S_ISFIFO(st.st_mode))
		(void)fcntl(STDIN_FILENO, F_SETPIPE_SZ, PIPE_SIZE);
	if (fstat(STDOUT_FILENO, &st) == 0 && S_ISFIFO(st.st_mode))
		(void)fcntl(STDOUT_FILENO, F_SETPIPE_SZ, PIPE_SIZE);
	/* Ours alone: non-blocking, so neither direction waits on the other. */
	if (fcntl(s->sock, F_SETFL, fcntl(s->sock, F_GETFL) | O_NONBLOCK) < 0)
		return al_error_errno(err, "socket");
	while (!s->exit) {
		struct pollfd pfd[3];
		int send_fd, recv_fd;
		short send_ev, recv_ev;

		r = pass_signals(s, err);
		if (r == 0)
			r = send_pending(s, &send_fd, &send_ev, err);
		if (r == 0)
			r = receive(s, &recv_fd, &recv_ev, err);
		if (r < 0)
			return r;
		if (s->broken_pipe)
			return 128 + SIGPIPE;
		if (s->exit)
			break;
		pfd[0] = (struct pollfd){.fd = send_fd, .events = send_ev};
		pfd[1] = (struct pollfd){.fd = recv_fd, .events = recv_ev};
		/* Stdin is read only once what came before it is sent. */
		pfd[2] = (struct pollfd){.fd = s->stdin_open && send_fd < 0 &&
		                                       execstream_mover_idle(&s->stdin_mv) &&
		                                       s->hdr_off == s->hdr_len
		                                   ? STDIN_FILENO
		                                   : -1,
		                         .events = POLLIN};
		if (ppoll(pfd, 3, NULL, unblocked) < 0) {
			if (errno == EINTR)
				continue;
			return al_error_errno(err, "poll");
		}
		if (pfd[2].revents && (r = read_stdin(s, err)) < 0)
			return r;
	}
	return exit_status(s->exit, err);
}

/* The terminal as it was, put back however stream_exec ends. */
struct terminal {
	bool raw;
	struct termios saved;
};

static void terminal_restore(struct terminal *t)
{
	if (t->raw)
		tcsetattr(STDIN_FILENO, TCSADRAIN, &t->saved);
	t->raw = false;
}

static int terminal_raw(struct terminal *t, struct al_error *err)
{
	struct termios raw;

	if (tcgetattr(STDIN_FILENO, &t->saved) < 0)
		return al_error_errno(err, "read the terminal's settings");
	raw = t->saved;
	/* Every key goes to the sandbox's terminal, Ctrl-C as the byte 0x03:
	 * its line discipline makes the signal, as a local one would. */
	cfmakeraw(&raw);
	if (tcsetattr(STDIN_FILENO, TCSADRAIN, &raw) < 0)
		return al_error_errno(err, "put the terminal in raw mode");
	t->raw = true;
	return 0;
}

struct signal_setup {
	sigset_t old_mask;
	struct sigaction old[4];
};

static const int handled_signals[] = {SIGINT, SIGTERM, SIGHUP, SIGWINCH};

static void signals_restore(struct signal_setup *ss)
{
	for (size_t i = 0; i < AL_ARRAY_SIZE(handled_signals); i++)
		sigaction(handled_signals[i], &ss->old[i], NULL);
	sigprocmask(SIG_SETMASK, &ss->old_mask, NULL);
}

int stream_exec(const struct stream_opts *o, struct al_error *err)
{
	_cleanup_(terminal_restore) struct terminal term = {0};
	_cleanup_(signals_restore) struct signal_setup ss;
	_cleanup_close_ int sock = -1;
	struct session s = {.o = o, .stdin_open = o->stdin};
	sigset_t blocked, unblocked;
	int r;

	/* Blocked but in ppoll: a signal is seen by the loop, never lost
	 * between its check and the wait. */
	sigemptyset(&blocked);
	for (size_t i = 0; i < AL_ARRAY_SIZE(handled_signals); i++) {
		struct sigaction sa = {.sa_handler =
		                           handled_signals[i] == SIGWINCH ? on_winch : on_signal};
		sigemptyset(&sa.sa_mask);
		sigaction(handled_signals[i], &sa, &ss.old[i]);
		sigaddset(&blocked, handled_signals[i]);
	}
	sigprocmask(SIG_BLOCK, &blocked, &ss.old_mask);
	unblocked = ss.old_mask;
	for (size_t i = 0; i < AL_ARRAY_SIZE(handled_signals); i++)
		sigdelset(&unblocked, handled_signals[i]);

	sock = stream_connect(o->socket_path, err);
	if (sock < 0)
		return sock;
	s.sock = sock;
	r = upgrade(sock, o, err);
	if (r < 0)
		return r;
	/* Raw only once the command runs: an error before is printed on a
	 * terminal as it was. */
	if (o->tty && o->stdin)
		r = terminal_raw(&term, err);
	s.raw = term.raw;
	/* No input: the command reads its end at once (a terminal's stays open). */
	if (r == 0 && !o->stdin && !o->tty)
		r = queue(&s, EXECSTREAM_CLOSE_STDIN, NULL, 0, err);
	if (r == 0)
		r = relay(&s, &unblocked, err);
	/* Closing the connection before the exit kills the command. */
	execstream_mover_free(&s.in);
	execstream_mover_free(&s.stdin_mv);
	al_buf_free(&s.ctl);
	al_buf_free(&s.out);
	cJSON_Delete(s.exit);
	return r;
}
