/* SPDX-License-Identifier: Apache-2.0 */
/*
 * One command running in a sandbox, seen from airlockd.
 *
 * airlockd owns the pipes of the command's stdio; airlock-init only passes
 * the other ends to the child.  A collector thread per process moves bytes
 * between the pipes and bounded buffers, feeds queued stdin, enforces the
 * timeout and receives the exit status from init, so API calls only wait on
 * a condition variable and never block on a pipe.
 *
 * A command outlives airlockd once it has a process id: process_hold hands
 * PID 1 copies of airlockd's pipe ends and of the journals of its output
 * (below), PID 1 keeps them and the exit status until process_release, and
 * the next airlockd takes them back (process_adopt_all).
 */
#include "process.h"

#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <termios.h>
#include <unistd.h>

#include "cleanup.h"
#include "initproto.h"
#include "log.h"
#include "sandbox.h"
#include "strv.h"
#include "util.h"

/*
 * Output is held until a client takes it, within three bounds: the
 * request's max_output per stream, the sandbox's budget and airlockd's
 * total (OUTPUT_TOTAL).  Past any of them bytes are dropped and the stream
 * says truncated: neither a chatty sandbox nor clients that never collect
 * can grow airlockd without limit.
 */
#define OUTPUT_TOTAL (1ULL << 30)
/* What every stream may hold whatever its sandbox's budget says, so that a
 * sandbox whose old commands hoard their budget still shows what a new one
 * prints; bounded by SANDBOX_MAX_PROCESSES, and still within OUTPUT_TOTAL. */
#define OUTPUT_FLOOR (64u << 10)
/* A streamed process (process_stream_attach) is read no further while a
 * stream holds this much its client has not taken. */
#define STREAM_HIGH_WATER (256u << 10)

/* The collector reads output at most every COALESCE_MS while it comes in
 * pieces smaller than COALESCE_BELOW (see collector()). */
#define COALESCE_MS 3
#define COALESCE_BELOW (32u << 10)
#define OUTPUT_PIPE_SIZE (1 << 20)

struct output_budget {
	int refs;
	size_t used, max; /* atomic */
	/* Also shared by a sandbox's processes, for the same lifetime: its
	 * terminal processes not yet collected (atomic). */
	unsigned terminals;
};

static struct output_budget total_budget = {.refs = 1, .max = OUTPUT_TOTAL};

struct output_budget *output_budget_new(size_t max)
{
	struct output_budget *b = calloc(1, sizeof(*b));

	if (b) {
		b->refs = 1;
		b->max = max;
	}
	return b;
}

static struct output_budget *output_budget_ref(struct output_budget *b)
{
	if (b)
		__atomic_add_fetch(&b->refs, 1, __ATOMIC_SEQ_CST);
	return b;
}

void output_budget_unref(struct output_budget *b)
{
	if (b && __atomic_sub_fetch(&b->refs, 1, __ATOMIC_SEQ_CST) == 0)
		free(b);
}

/* Take up to n bytes of b; how many it got. */
static size_t budget_take(struct output_budget *b, size_t n)
{
	size_t used = __atomic_load_n(&b->used, __ATOMIC_SEQ_CST), got;

	do {
		got = used < b->max ? b->max - used : 0;
		if (got > n)
			got = n;
		if (got == 0)
			return 0;
	} while (!__atomic_compare_exchange_n(&b->used, &used, used + got, false, __ATOMIC_SEQ_CST,
	                                      __ATOMIC_SEQ_CST));
	return got;
}

static void budget_force(struct output_budget *b, size_t n)
{
	if (b && n)
		__atomic_add_fetch(&b->used, n, __ATOMIC_SEQ_CST);
}

static void budget_give(struct output_budget *b, size_t n)
{
	if (b && n)
		__atomic_sub_fetch(&b->used, n, __ATOMIC_SEQ_CST);
}

size_t output_budget_total_used(void)
{
	return __atomic_load_n(&total_budget.used, __ATOMIC_SEQ_CST);
}

size_t output_budget_total_max(void)
{
	return total_budget.max;
}

struct stream {
	int fd;
	struct al_buf buf; /* bytes not yet returned, all of them charged to the budgets */
	/* How long the JSON string of buf[0..text_scanned] is in the utf8
	 * encoding (escapes and U+FFFDs included): see text_fit(). */
	size_t text_scanned, text_size;
	bool truncated; /* bytes were dropped; the rest is dropped until taken */
	/* The journal (see journal_open), or -1: [jhead, jtail) of it is buf. */
	int jfd;
	uint64_t jhead, jtail, jpunched;
};

struct al_process {
	int refs;
	pthread_mutex_t lock;
	pthread_cond_t cond;

	int conn; /* connection to airlock-init carrying this process */
	int wake; /* eventfd: new stdin or a kill request */
	struct stream out, err;
	int stdin_fd;
	struct al_buf stdin_queue;
	bool tty;
	int direct_fds[3]; /* a direct process's stdio until process_take_stdio: -1 */
	int tty_fd;        /* the pty master, for its window size; -1 on pipes */
	int notify; /* streaming: an eventfd poked on output and the end (process_stream_attach); -1
	             */
	bool close_stdin_after_queue;
	int pending_signal;

	size_t max_output;
	bool count_text;   /* max_output bounds the JSON text of a stream, not its bytes */
	bool backpressure; /* exec_request.backpressure */
	struct output_budget *budget; /* the sandbox's */
	uint64_t deadline_ms;         /* timeout; 0 = none */
	uint64_t started_ms;
	uint64_t ended_ms;
	uint64_t taken_ms; /* the last take of its output (backpressure: abandoned?) */
	bool released;     /* process_release came: never held (again) */

	bool exited;
	bool collected; /* exited and its output drained: the result is final */
	bool result_taken;
	int exit_code; /* -1 when killed by a signal */
	int term_signal;
	bool timed_out;
	pthread_t thread;
	bool thread_started;

	/* Serialises messages on conn (the collector's and process_hold's)
	 * and its close; taken before lock. */
	pthread_mutex_t send_lock;
	/* Copies of the stdout and stderr read ends for process_hold: the
	 * collector closes its own at EOF.  -1 once handed over. */
	int hold_out, hold_err;
	bool held;   /* PID 1 holds it (process_hold) until process_release */
	uid_t owner; /* of its journals: the sandbox's root */
};

void process_ref(struct al_process *p)
{
	__atomic_add_fetch(&p->refs, 1, __ATOMIC_SEQ_CST);
}

static void stream_close(struct stream *s)
{
	if (s->fd >= 0)
		close(s->fd);
	s->fd = -1;
}

/*
 * The journal of a stream of a held process (process_hold): a memfd
 * holding what the stream's buffer holds, output read and not yet taken by
 * a client, which PID 1 keeps, so that this output outlives airlockd.  From
 * the hold on, output is spliced from the pipe into it first and read into
 * the buffer from there: at no moment is a byte only in airlockd's memory.
 * The first 8 bytes are the offset of the first byte not taken (jhead);
 * data from JOURNAL_DATA on, to the end of the file (jtail); taken bytes
 * are punched out.  A process that ends within its exec's yield_ms (no
 * process id) never has one.
 */
#define JOURNAL_DATA 4096u
/* What a stream may hold beyond max_output: its floor and one read. */
#define JOURNAL_SLACK (OUTPUT_FLOOR + 65536u)

/* A journal holding what the buffer holds now.  Lock held. */
static int journal_open(struct stream *s, uid_t owner, struct al_error *err)
{
	_cleanup_close_ int fd = -1;
	uint64_t head = JOURNAL_DATA;

	fd = memfd_create("airlock-output", MFD_CLOEXEC);
	if (fd < 0)
		return al_error_errno(err, "memfd_create");
	/* The sandbox's root owns it: PID 1 holds it, and CRIU, restoring
	 * PID 1 from inside the sandbox's user namespace, must be able to
	 * give it its owner and mode again. */
	if (fchown(fd, owner, owner) < 0 || fchmod(fd, 0600) < 0 ||
	    pwrite(fd, &head, sizeof(head), 0) != (ssize_t)sizeof(head) ||
	    ftruncate(fd, JOURNAL_DATA) < 0 ||
	    (s->buf.len > 0 &&
	     pwrite(fd, s->buf.data, s->buf.len, JOURNAL_DATA) != (ssize_t)s->buf.len))
		return al_error_errno(err, "output journal");
	s->jhead = s->jpunched = JOURNAL_DATA;
	s->jtail = JOURNAL_DATA + s->buf.len;
	s->jfd = TAKE_FD(fd);
	return 0;
}

/* The buffer was taken: so is the journal.  Lock held. */
static void journal_taken(struct stream *s)
{
	uint64_t end;

	if (s->jfd < 0 || s->jhead == s->jtail)
		return;
	s->jhead = s->jtail;
	if (pwrite(s->jfd, &s->jhead, sizeof(s->jhead), 0) != (ssize_t)sizeof(s->jhead))
		log_debug("output journal: %m");
	end = s->jhead & ~(uint64_t)4095;
	if (end > s->jpunched && fallocate(s->jfd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE,
	                                   (off_t)s->jpunched, (off_t)(end - s->jpunched)) == 0)
		s->jpunched = end;
}

/* Bytes the buffer dropped leave the journal too.  Lock held. */
static void journal_trim(struct stream *s)
{
	if (s->jfd < 0 || s->jtail <= s->jhead + s->buf.len)
		return;
	s->jtail = s->jhead + s->buf.len;
	if (ftruncate(s->jfd, (off_t)s->jtail) < 0)
		log_debug("output journal: %m");
}

/* Read from the stream's pipe by way of journal jfd, at its tail (only
 * the collector moves the tail): the caller adds n to jtail as it adds the
 * bytes to the buffer.  *journaled is false when they are not in it yet. */
static ssize_t journal_read(struct stream *s, int jfd, char *chunk, size_t len, bool *journaled)
{
	loff_t off = (loff_t)s->jtail;
	ssize_t n = splice(s->fd, NULL, jfd, &off, len, SPLICE_F_NONBLOCK);

	*journaled = true;
	if (n < 0 && errno == EINVAL) {
		*journaled = false;
		return read(s->fd, chunk, len);
	}
	if (n > 0 && pread(jfd, chunk, (size_t)n, (off_t)s->jtail) != n) {
		errno = EIO;
		return -1;
	}
	return n;
}

/* n bytes in chunk went into the buffer (perhaps fewer: what it dropped
 * leaves the journal too).  Lock held. */
static void journal_append(struct stream *s, const char *chunk, size_t n, bool journaled)
{
	if (s->jfd < 0)
		return;
	/* Read before the journal was made, or not splicable. */
	if (!journaled && pwrite(s->jfd, chunk, n, (off_t)s->jtail) != (ssize_t)n)
		log_debug("output journal: %m");
	s->jtail += n;
	journal_trim(s);
}

void process_unref(struct al_process *p)
{
	if (!p || __atomic_sub_fetch(&p->refs, 1, __ATOMIC_SEQ_CST) > 0)
		return;
	if (p->thread_started) {
		/* The collector may drop the last reference itself. */
		if (pthread_equal(pthread_self(), p->thread))
			pthread_detach(p->thread);
		else
			pthread_join(p->thread, NULL);
	}
	stream_close(&p->out);
	stream_close(&p->err);
	al_closep(&p->out.jfd);
	al_closep(&p->err.jfd);
	al_closep(&p->hold_out);
	al_closep(&p->hold_err);
	if (p->stdin_fd >= 0)
		close(p->stdin_fd);
	if (p->tty_fd >= 0)
		close(p->tty_fd);
	for (int i = 0; i < 3; i++)
		if (p->direct_fds[i] >= 0)
			close(p->direct_fds[i]);
	if (p->notify >= 0)
		close(p->notify);
	if (p->conn >= 0)
		close(p->conn);
	if (p->wake >= 0)
		close(p->wake);
	budget_give(p->budget, p->out.buf.len + p->err.buf.len);
	budget_give(&total_budget, p->out.buf.len + p->err.buf.len);
	output_budget_unref(p->budget);
	al_buf_free(&p->out.buf);
	al_buf_free(&p->err.buf);
	al_buf_free(&p->stdin_queue);
	pthread_mutex_destroy(&p->lock);
	pthread_mutex_destroy(&p->send_lock);
	pthread_cond_destroy(&p->cond);
	free(p);
}

static struct al_process *process_new(size_t max_output, bool count_text)
{
	struct al_process *p = calloc(1, sizeof(*p));

	if (!p)
		return NULL;
	p->refs = 1;
	pthread_mutex_init(&p->lock, NULL);
	pthread_mutex_init(&p->send_lock, NULL);
	pthread_cond_init(&p->cond, NULL);
	p->conn = p->wake = p->stdin_fd = p->tty_fd = p->notify = -1;
	p->direct_fds[0] = p->direct_fds[1] = p->direct_fds[2] = -1;
	p->out.fd = p->err.fd = p->out.jfd = p->err.jfd = p->hold_out = p->hold_err = -1;
	p->max_output = max_output;
	p->count_text = count_text;
	p->started_ms = p->taken_ms = al_now_ms();
	return p;
}

/*
 * The UTF-8 sequence at s (avail bytes): its length when valid, 0 when s[0]
 * starts no valid sequence, -1 when it may still become one with the bytes
 * that have not arrived.  NUL counts as invalid: cJSON strings cannot hold it.
 */
static int utf8_seq(const unsigned char *s, size_t avail)
{
	unsigned char c = s[0];
	size_t n = c < 0x80 ? 1 : (c >> 5) == 6 ? 2 : (c >> 4) == 14 ? 3 : (c >> 3) == 30 ? 4 : 0;
	unsigned cp;

	if (n == 0 || c == 0 || (n == 2 && c < 0xc2))
		return 0;
	for (size_t k = 1; k < n && k < avail; k++)
		if ((s[k] >> 6) != 2)
			return 0;
	if (avail < n)
		return -1;
	if (n == 3) {
		cp = (c & 0x0fu) << 12 | (s[1] & 0x3fu) << 6 | (s[2] & 0x3fu);
		if (cp < 0x800 || (cp >= 0xd800 && cp <= 0xdfff))
			return 0;
	}
	if (n == 4) {
		cp =
		    (c & 0x07u) << 18 | (s[1] & 0x3fu) << 12 | (s[2] & 0x3fu) << 6 | (s[3] & 0x3fu);
		if (cp < 0x10000 || cp > 0x10ffff)
			return 0;
	}
	return (int)n;
}

/* What a valid sequence of n bytes takes in a JSON string as cJSON prints it. */
static size_t json_text_cost(const unsigned char *s, int n)
{
	if (n > 1)
		return (size_t)n;
	if (s[0] == '"' || s[0] == '\\' || s[0] == '\b' || s[0] == '\f' || s[0] == '\n' ||
	    s[0] == '\r' || s[0] == '\t')
		return 2;
	return s[0] < 0x20 ? 6 : 1; /* \u00XX */
}

#define REPLACEMENT_COST 3 /* U+FFFD, what an invalid byte becomes */

/*
 * How many bytes of s's buffer fit into a JSON string of at most max bytes
 * in the utf8 encoding; carries the count forward in s, so each byte is
 * looked at once.  A control byte becomes six (\u0001), an invalid one
 * three (U+FFFD): counting bytes alone let 64 MiB of output become a
 * 384 MiB string, and airlockd hold several copies of it.  An incomplete
 * sequence at the end counts as U+FFFDs, what it becomes if taken so.
 */
static size_t text_fit(struct stream *s, size_t max)
{
	const unsigned char *d = (const unsigned char *)s->buf.data;
	size_t pos = s->text_scanned, size = s->text_size, tail;
	int n = 0;

	while (pos < s->buf.len) {
		size_t cost;
		n = utf8_seq(d + pos, s->buf.len - pos);
		if (n < 0)
			break; /* the rest of this sequence may still come */
		cost = n > 0 ? json_text_cost(d + pos, n) : REPLACEMENT_COST;
		if (size + cost > max)
			break;
		size += cost;
		pos += n > 0 ? (size_t)n : 1;
	}
	s->text_scanned = pos;
	s->text_size = size;
	if (pos == s->buf.len || n >= 0)
		return pos;
	tail = s->buf.len - pos;
	while (tail > 0 && size + tail * REPLACEMENT_COST > max)
		tail--;
	return pos + tail;
}

static void stream_drop_from(struct al_process *p, struct stream *s, size_t keep)
{
	if (keep >= s->buf.len)
		return;
	budget_give(p->budget, s->buf.len - keep);
	budget_give(&total_budget, s->buf.len - keep);
	s->buf.len = keep;
	s->truncated = true;
}

static void stream_append(struct al_process *p, struct stream *s, const char *data, size_t n)
{
	size_t room = s->buf.len < p->max_output ? p->max_output - s->buf.len : 0;
	size_t want = n < room ? n : room;
	size_t floor = s->buf.len < OUTPUT_FLOOR ? OUTPUT_FLOOR - s->buf.len : 0;
	size_t mine, got;

	/* Dropping resumes only after a take, so what a client gets has no
	 * hole in the middle. */
	if (s->truncated)
		return;
	if (floor > want)
		floor = want;
	budget_force(p->budget, floor);
	mine = floor + (p->budget ? budget_take(p->budget, want - floor) : want - floor);
	got = budget_take(&total_budget, mine);

	if (got < mine)
		budget_give(p->budget, mine - got);
	/* Under backpressure the pump read no more than the stream's room and
	 * stops reading while the budgets are spent (stream_full): the few
	 * bytes of a race with another process are kept, not dropped. */
	if (p->backpressure && got < want) {
		budget_force(p->budget, want - got);
		budget_force(&total_budget, want - got);
		got = want;
	}
	if (got > 0 && al_buf_append(&s->buf, data, got) < 0) {
		budget_give(p->budget, got);
		budget_give(&total_budget, got);
		got = 0;
	}
	if (got < n)
		s->truncated = true;
	if (p->count_text && got > 0)
		stream_drop_from(p, s, text_fit(s, p->max_output));
}

static void notify(struct al_process *p)
{
	int fd = __atomic_load_n(&p->notify, __ATOMIC_SEQ_CST);
	uint64_t one = 1;

	if (fd >= 0 && write(fd, &one, sizeof(one)) < 0)
		log_debug("eventfd write: %m");
}

/* How often a collector held back by spent budgets looks again. */
#define BACKPRESSURE_RETRY_MS 20

static bool budget_spent(const struct output_budget *b)
{
	return b && __atomic_load_n(&b->used, __ATOMIC_SEQ_CST) >= b->max;
}

/* Under backpressure: the stream holds all it may, or the sandbox's or
 * airlockd's budget is spent (then other processes' clients free it, which
 * does not wake this collector: it looks again every BACKPRESSURE_RETRY_MS).
 * Lock held. */
static bool backpressure_full(struct al_process *p, struct stream *s)
{
	return p->backpressure && (s->buf.len >= p->max_output || budget_spent(p->budget) ||
	                           budget_spent(&total_budget));
}

/* A process under backpressure with a stream still open that may hold no
 * more for now.  One whose client has taken nothing for
 * SANDBOX_PROCESS_KEEP_MS is abandoned: its backpressure ends (what comes
 * next is dropped and marked truncated, as without it), so the command
 * goes on and the process can end and be forgotten like any other. */
static bool backpressure_pending(struct al_process *p)
{
	bool pending;

	/* Every collector round asks: most execs have none, and pay no lock. */
	if (!__atomic_load_n(&p->backpressure, __ATOMIC_RELAXED))
		return false;
	pthread_mutex_lock(&p->lock);
	pending = (p->out.fd >= 0 && backpressure_full(p, &p->out)) ||
	          (p->err.fd >= 0 && backpressure_full(p, &p->err));
	if (pending && al_now_ms() - p->taken_ms > SANDBOX_PROCESS_KEEP_MS) {
		log_info("a command's output was not taken for %d s: it is dropped from now on",
		         SANDBOX_PROCESS_KEEP_MS / 1000);
		__atomic_store_n(&p->backpressure, false, __ATOMIC_RELAXED);
		pending = false;
	}
	pthread_mutex_unlock(&p->lock);
	return pending;
}

/* Under backpressure, the client waiting for p should answer now: a stream
 * holds all it may, or holds something while the budgets are spent (each
 * waiting client then frees its share).  Lock held. */
static bool backpressure_answer_now(struct al_process *p)
{
	const struct stream *s[2] = {&p->out, &p->err};

	if (!p->backpressure)
		return false;
	for (int i = 0; i < 2; i++)
		if (s[i]->buf.len >= p->max_output ||
		    (s[i]->buf.len > 0 && (budget_spent(p->budget) || budget_spent(&total_budget))))
			return true;
	return false;
}

/* A streamed process whose client has not taken s's bytes yet, or one
 * under backpressure that holds all it may: read no more. */
static bool stream_full(struct al_process *p, struct stream *s)
{
	bool full;

	pthread_mutex_lock(&p->lock);
	full = (p->notify >= 0 && s->buf.len >= STREAM_HIGH_WATER) || backpressure_full(p, s);
	pthread_mutex_unlock(&p->lock);
	return full;
}

/* Where dropped output goes: spliced there, it is never copied. */
static int devnull_fd(void)
{
	static int fd = -1;
	int expected = -1, opened;

	if (__atomic_load_n(&fd, __ATOMIC_SEQ_CST) >= 0)
		return fd;
	opened = open("/dev/null", O_WRONLY | O_CLOEXEC);
	if (opened >= 0 && !__atomic_compare_exchange_n(&fd, &expected, opened, false,
	                                                __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST))
		close(opened);
	return __atomic_load_n(&fd, __ATOMIC_SEQ_CST);
}

/*
 * Read what is available, adding to *moved what it was; returns false at
 * end of stream (a pty master says EIO, not EOF, once the slave is closed:
 * the same end).  Past a stream's bound its output is only drained:
 * spliced to /dev/null, which releases the pipe's pages without copying,
 * so a sandbox writing without end costs airlockd less than itself.  With
 * throttle, stops at the streaming high-water mark.
 */
static bool stream_pump(struct al_process *p, struct stream *s, bool throttle, size_t *moved,
                        size_t *dropped)
{
	char chunk[65536];

	for (;;) {
		bool dropping, journaled = false;
		size_t want = sizeof(chunk);
		ssize_t n = -1;
		int jfd;

		/* Under backpressure the bound holds also while draining an
		 * ended process's pipes (throttle false). */
		if ((throttle || p->backpressure) && stream_full(p, s))
			return true;
		pthread_mutex_lock(&p->lock);
		dropping = s->truncated;
		jfd = s->jfd; /* made by process_hold, from another thread */
		if (p->backpressure && p->max_output - s->buf.len < want)
			want = p->max_output - s->buf.len; /* never more than its room */
		pthread_mutex_unlock(&p->lock);
		if (dropping && devnull_fd() >= 0)
			n = splice(s->fd, NULL, devnull_fd(), NULL, 1u << 20, SPLICE_F_NONBLOCK);
		if (!dropping && jfd >= 0)
			n = journal_read(s, jfd, chunk, want, &journaled);
		else if (!dropping || devnull_fd() < 0 || (n < 0 && errno == EINVAL))
			n = read(s->fd, chunk, want);
		if (n > 0) {
			*moved += (size_t)n;
			if (dropping) {
				*dropped += (size_t)n;
				continue;
			}
			pthread_mutex_lock(&p->lock);
			stream_append(p, s, chunk, (size_t)n);
			journal_append(s, chunk, (size_t)n, journaled);
			pthread_cond_broadcast(&p->cond);
			pthread_mutex_unlock(&p->lock);
			notify(p);
			continue;
		}
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && errno == EAGAIN)
			return true;
		stream_close(s);
		return false;
	}
}

/* One message without fds to PID 1 on the process's connection. */
static void send_init(struct al_process *p, uint8_t type, int32_t num)
{
	struct al_error err = AL_ERROR_INIT;
	struct initproto_msg m = {.type = type, .num = num};

	pthread_mutex_lock(&p->send_lock);
	if (p->conn >= 0 && initproto_send(p->conn, &m, NULL, 0, &err) < 0)
		log_debug("message %u to airlock-init: %s", type, err.msg);
	pthread_mutex_unlock(&p->send_lock);
}

static void send_kill(struct al_process *p, int sig)
{
	send_init(p, INITPROTO_KILL, sig);
}

/* Close our stdin write end; true when PID 1 holds a copy that must go
 * too (send_init STDIN_CLOSE after dropping the lock), or the process
 * would never read EOF.  Lock held. */
static bool close_stdin_locked(struct al_process *p)
{
	if (p->stdin_fd < 0)
		return false;
	close(p->stdin_fd);
	p->stdin_fd = -1;
	return p->held && !p->tty;
}

static void feed_stdin(struct al_process *p)
{
	bool tell = false;

	pthread_mutex_lock(&p->lock);
	while (p->stdin_fd >= 0 && p->stdin_queue.len > 0) {
		ssize_t n = write(p->stdin_fd, p->stdin_queue.data, p->stdin_queue.len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && errno == EAGAIN)
			break;
		if (n < 0) {
			/* The reader is gone (EPIPE): drop what is queued. */
			p->stdin_queue.len = 0;
			tell = close_stdin_locked(p);
			break;
		}
		memmove(p->stdin_queue.data, p->stdin_queue.data + n,
		        p->stdin_queue.len - (size_t)n);
		p->stdin_queue.len -= (size_t)n;
	}
	if (p->stdin_fd >= 0 && p->stdin_queue.len == 0 && p->close_stdin_after_queue)
		tell = close_stdin_locked(p);
	pthread_mutex_unlock(&p->lock);
	if (tell)
		send_init(p, INITPROTO_STDIN_CLOSE, 0);
}

static void mark_exited(struct al_process *p, int code, int sig)
{
	pthread_mutex_lock(&p->lock);
	p->exited = true;
	p->exit_code = code;
	p->term_signal = sig;
	p->ended_ms = al_now_ms();
	pthread_cond_broadcast(&p->cond);
	pthread_mutex_unlock(&p->lock);
}

static void handle_init_message(struct al_process *p)
{
	struct al_error err = AL_ERROR_INIT;
	struct initproto_msg m;
	int r;

	r = initproto_recv(p->conn, &m, NULL, NULL, &err);
	if (r != 0) {
		/* init died (sandbox destroyed or crashed): the process is gone too. */
		pthread_mutex_lock(&p->send_lock);
		close(p->conn);
		p->conn = -1;
		pthread_mutex_unlock(&p->send_lock);
		mark_exited(p, -1, SIGKILL);
		return;
	}
	if (m.type == INITPROTO_EXIT)
		mark_exited(p, m.num, 0);
	else if (m.type == INITPROTO_SIGNALED)
		mark_exited(p, -1, m.num);
	initproto_msg_free(&m);
}

/* How long a terminal that its command has left may stay quiet before
 * what is on its way from the slave is taken as all there is. */
#define TTY_DRAIN_MS 100

/*
 * A command on a terminal has ended.  Unlike a pipe's, what it wrote last
 * may not be readable on the master yet: the kernel moves a slave's
 * output to the master in a work item of its own, which a loaded host
 * runs late.  Read until the master says EIO (nobody has the slave open
 * any more: all is read) or stays quiet for TTY_DRAIN_MS (a background
 * process, or PID 1, still has it).
 */
static void drain_terminal(struct al_process *p, size_t *moved, size_t *dropped)
{
	while (p->out.fd >= 0) {
		struct pollfd f = {.fd = p->out.fd, .events = POLLIN};
		int n = poll(&f, 1, TTY_DRAIN_MS);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0 || !stream_pump(p, &p->out, false, moved, dropped))
			return;
	}
}

static void *collector(void *arg)
{
	struct al_process *p = arg;
	uint64_t quiet_until = 0, now;
	size_t moved = 0, dropped = 0;
	bool quiet, tell, tty_drained = false;

	for (;;) {
		struct pollfd pfd[5];
		int timeout = -1, n = 0, i_out = -1, i_err = -1, i_conn = -1, i_in = -1;
		bool exited, want_out;
		int sig;

		pthread_mutex_lock(&p->lock);
		exited = p->exited;
		want_out = p->stdin_fd >= 0 && p->stdin_queue.len > 0;
		sig = p->pending_signal;
		p->pending_signal = 0;
		pthread_mutex_unlock(&p->lock);
		if (sig)
			send_kill(p, sig);

		if (exited && p->tty && !tty_drained) {
			tty_drained = true;
			drain_terminal(p, &moved, &dropped);
		}
		if (exited) {
			/* Everything the process wrote is in the pipes by now; a
			 * background child may keep them open, so take what is
			 * there and stop.  Under backpressure what is there may be
			 * more than the streams may hold: wait for takes until the
			 * pipes are empty. */
			if (p->out.fd >= 0)
				stream_pump(p, &p->out, false, &moved, &dropped);
			if (p->err.fd >= 0)
				stream_pump(p, &p->err, false, &moved, &dropped);
			/* The collector's is the only reference left: no client
			 * can take anything any more. */
			if (!backpressure_pending(p) ||
			    __atomic_load_n(&p->refs, __ATOMIC_SEQ_CST) == 1)
				break;
			struct pollfd w = {.fd = p->wake, .events = POLLIN};
			if (poll(&w, 1, BACKPRESSURE_RETRY_MS) > 0) {
				uint64_t v;
				if (read(p->wake, &v, sizeof(v)) < 0)
					log_debug("eventfd read: %m");
			}
			continue;
		}
		if (p->deadline_ms) {
			uint64_t now = al_now_ms();
			if (now >= p->deadline_ms) {
				pthread_mutex_lock(&p->lock);
				p->timed_out = true;
				p->deadline_ms = 0;
				pthread_mutex_unlock(&p->lock);
				send_kill(p, SIGKILL);
			} else {
				timeout = (int)(p->deadline_ms - now);
			}
		}
		pfd[n] = (struct pollfd){.fd = p->wake, .events = POLLIN};
		n++;
		if (p->conn >= 0) {
			i_conn = n;
			pfd[n++] = (struct pollfd){.fd = p->conn, .events = POLLIN};
		}
		now = al_now_ms();
		quiet = now < quiet_until;
		if (quiet && (timeout < 0 || (uint64_t)timeout > quiet_until - now))
			timeout = (int)(quiet_until - now);
		/* A stream held back by spent budgets is looked at again soon:
		 * nothing wakes this thread when other processes free them. */
		if (backpressure_pending(p) && (timeout < 0 || timeout > BACKPRESSURE_RETRY_MS))
			timeout = BACKPRESSURE_RETRY_MS;
		if (p->out.fd >= 0 && !quiet && !stream_full(p, &p->out)) {
			i_out = n;
			pfd[n++] = (struct pollfd){.fd = p->out.fd, .events = POLLIN};
		}
		if (p->err.fd >= 0 && !quiet && !stream_full(p, &p->err)) {
			i_err = n;
			pfd[n++] = (struct pollfd){.fd = p->err.fd, .events = POLLIN};
		}
		if (want_out) {
			i_in = n;
			pfd[n++] = (struct pollfd){.fd = p->stdin_fd, .events = POLLOUT};
		}
		if (poll(pfd, (nfds_t)n, timeout) < 0)
			continue;
		if (pfd[0].revents) {
			uint64_t v;
			if (read(p->wake, &v, sizeof(v)) < 0)
				log_debug("eventfd read: %m");
		}
		moved = dropped = 0;
		if (i_out >= 0 && pfd[i_out].revents)
			stream_pump(p, &p->out, true, &moved, &dropped);
		if (i_err >= 0 && pfd[i_err].revents)
			stream_pump(p, &p->err, true, &moved, &dropped);
		/* A command writing in small pieces would wake us for each one:
		 * after a small read, let the pipes gather for a moment (a
		 * writer that fills them is read at once, at full speed).
		 * Output past its bound is drained only every COALESCE_MS: a
		 * pipe's worth each time, so a command writing without end is
		 * slowed to that pace rather than costing airlockd its speed.
		 * Not a terminal's small reads: they are keystrokes' echoes,
		 * and someone is waiting for each. */
		if ((moved > 0 && moved < COALESCE_BELOW && !p->tty) || dropped > 0)
			quiet_until = al_now_ms() + COALESCE_MS;
		if (i_in >= 0 && pfd[i_in].revents)
			feed_stdin(p);
		else if (p->close_stdin_after_queue)
			feed_stdin(p);
		if (i_conn >= 0 && pfd[i_conn].revents)
			handle_init_message(p);
	}
	pthread_mutex_lock(&p->lock);
	tell = close_stdin_locked(p);
	/* A terminal is closed with its command, as a terminal window is:
	 * what it started and left behind on it gets a hangup. */
	if (p->tty) {
		if (p->budget)
			__atomic_sub_fetch(&p->budget->terminals, 1, __ATOMIC_SEQ_CST);
		stream_close(&p->out);
		if (p->tty_fd >= 0)
			close(p->tty_fd);
		p->tty_fd = -1;
	}
	p->collected = true;
	pthread_cond_broadcast(&p->cond);
	pthread_mutex_unlock(&p->lock);
	if (tell)
		send_init(p, INITPROTO_STDIN_CLOSE, 0);
	notify(p);
	process_unref(p);
	return NULL;
}

/* what comes from PID 1, so from inside the sandbox: any length. */
static void finish_with_spawn_error(struct al_process *p, int e, const char *what)
{
	stream_append(p, &p->err, "airlock: ", strlen("airlock: "));
	stream_append(p, &p->err, what, strlen(what));
	stream_append(p, &p->err, "\n", 1);
	p->exited = true;
	p->collected = true;
	p->exit_code = (e == EACCES || e == ENOEXEC || e == EISDIR) ? 126 : 127;
	p->ended_ms = al_now_ms();
}

/* The pipes of a command's stdio: ours in p, the child's ends in child[3]. */
static int open_pipes(struct al_process *p, int child[3], struct al_error *err)
{
	int pin[2], pout[2], perr[2];

	/* Each pair is owned at once, so a failed later pipe leaks none. */
	if (pipe2(pin, O_CLOEXEC) < 0)
		return al_error_errno(err, "pipe");
	child[0] = pin[0];
	p->stdin_fd = pin[1];
	if (pipe2(pout, O_CLOEXEC) < 0)
		return al_error_errno(err, "pipe");
	p->out.fd = pout[0];
	child[1] = pout[1];
	if (pipe2(perr, O_CLOEXEC) < 0)
		return al_error_errno(err, "pipe");
	p->err.fd = perr[0];
	child[2] = perr[1];
	fcntl(p->stdin_fd, F_SETFL, O_NONBLOCK);
	fcntl(p->out.fd, F_SETFL, O_NONBLOCK);
	fcntl(p->err.fd, F_SETFL, O_NONBLOCK);
	/* Larger pipes: fewer wake-ups for a command writing fast.  Best
	 * effort, the size stays 64 KiB if refused. */
	fcntl(p->out.fd, F_SETPIPE_SZ, OUTPUT_PIPE_SIZE);
	fcntl(p->err.fd, F_SETPIPE_SZ, OUTPUT_PIPE_SIZE);
	return 0;
}

/* The pty master PID 1 sent: read as stdout, written as stdin, and kept
 * for its window size. */
static int take_master(struct al_process *p, int master, struct al_error *err)
{
	p->out.fd = master;
	p->stdin_fd = fcntl(master, F_DUPFD_CLOEXEC, 3);
	p->tty_fd = fcntl(master, F_DUPFD_CLOEXEC, 3);
	if (p->stdin_fd < 0 || p->tty_fd < 0)
		return al_error_errno(err, "dup pty master");
	/* One open file: the flag is for every fd of it. */
	fcntl(master, F_SETFL, O_NONBLOCK);
	return 0;
}

static void close_fds(int *fds, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (fds[i] >= 0)
			close(fds[i]);
}

int process_start(struct sandbox *sb, const struct exec_request *req, struct al_process **out,
                  struct al_error *err)
{
	struct initproto_msg msg = {.type = INITPROTO_SPAWN}, reply = {0};
	int child[3] = {-1, -1, -1}, got[INITPROTO_MAX_FDS];
	size_t ngot = INITPROTO_MAX_FDS;
	struct al_process *p;
	int r;

	p = process_new(req->max_output, !req->output_base64);
	if (p)
		p->budget = output_budget_ref(sb->output);
	if (!p)
		return al_error_set(err, ENOMEM, "out of memory");
	p->tty = req->tty;
	p->backpressure = req->backpressure && !req->direct;
	if (req->backpressure && !req->output_base64) {
		process_unref(p);
		return al_error_set(err, EINVAL, "backpressure needs the base64 encoding");
	}
	if (req->direct && (req->tty || req->stdin_len > 0)) {
		process_unref(p);
		return al_error_set(err, EINVAL, "a direct process has pipes and no stdin data");
	}
	if (!req->tty && open_pipes(p, child, err) < 0) {
		close_fds(child, 3);
		process_unref(p);
		return -err->code;
	}
	if (req->stdin_len > 0 &&
	    al_buf_append(&p->stdin_queue, req->stdin_data, req->stdin_len) < 0) {
		close_fds(child, 3);
		process_unref(p);
		return al_error_set(err, ENOMEM, "out of memory");
	}
	p->close_stdin_after_queue = !req->keep_stdin_open;
	p->wake = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (p->wake < 0) {
		r = al_error_errno(err, "eventfd");
		close_fds(child, 3);
		process_unref(p);
		return r;
	}

	r = sandbox_connect_init(sb, err);
	if (r < 0) {
		close_fds(child, 3);
		process_unref(p);
		return r;
	}
	p->conn = r;

	msg.argv = req->argv;
	msg.env = req->env;
	msg.text = (char *)req->cwd;
	msg.num = initproto_spawn_user(req->uid, req->gid);
	msg.aux = initproto_spawn_aux(req->tty, req->rows, req->cols);
	r = initproto_send(p->conn, &msg, req->tty ? NULL : child, req->tty ? 0 : 3, err);
	/* Only the child may hold the write ends, so EOF means it is done. */
	close_fds(child, 3);
	if (r == 0)
		r = initproto_recv(p->conn, &reply, got, &ngot, err);
	if (r == 1)
		r = al_error_set(err, ECONNRESET, "airlock-init closed the connection");
	if (r < 0) {
		process_unref(p);
		return al_error_prefix(err, "sandbox %s: spawn", sb->id);
	}
	if (reply.type == INITPROTO_PID && req->tty && ngot == 1) {
		r = take_master(p, got[0], err);
		ngot = 0;
		/* Counted from here: the collector uncounts it. */
		if (r == 0 && p->budget)
			__atomic_add_fetch(&p->budget->terminals, 1, __ATOMIC_SEQ_CST);
	} else if (reply.type == INITPROTO_PID && req->tty) {
		r = al_error_set(err, EPROTO, "sandbox %s: no terminal came with the spawn",
		                 sb->id);
	}
	close_fds(got, ngot);
	if (r < 0) {
		send_kill(p, SIGKILL);
		initproto_msg_free(&reply);
		process_unref(p);
		return r;
	}
	p->owner = sb->uid_base;
	if (!req->tty && !req->direct &&
	    ((p->hold_out = fcntl(p->out.fd, F_DUPFD_CLOEXEC, 3)) < 0 ||
	     (p->hold_err = fcntl(p->err.fd, F_DUPFD_CLOEXEC, 3)) < 0)) {
		al_error_errno(err, "dup");
		send_kill(p, SIGKILL);
		initproto_msg_free(&reply);
		process_unref(p);
		return al_error_prefix(err, "sandbox %s: spawn", sb->id);
	}
	if (req->direct) {
		/* The caller's from here: the collector only waits for the end. */
		p->direct_fds[0] = p->stdin_fd;
		p->direct_fds[1] = p->out.fd;
		p->direct_fds[2] = p->err.fd;
		p->stdin_fd = p->out.fd = p->err.fd = -1;
		/* Stdin fed a pipe's worth at a time: fewer wake-ups both sides. */
		fcntl(p->direct_fds[0], F_SETPIPE_SZ, OUTPUT_PIPE_SIZE);
	}
	if (p->close_stdin_after_queue && p->stdin_queue.len == 0 && p->stdin_fd >= 0) {
		/* Nothing to feed: on pipes the command reads EOF at once. */
		close(p->stdin_fd);
		p->stdin_fd = -1;
	}

	if (reply.type == INITPROTO_ERROR) {
		finish_with_spawn_error(p, reply.num, reply.text ? reply.text : "spawn failed");
		initproto_msg_free(&reply);
		*out = p;
		return 0;
	}
	if (reply.type != INITPROTO_PID) {
		initproto_msg_free(&reply);
		process_unref(p);
		return al_error_set(err, EPROTO, "sandbox %s: unexpected answer to spawn", sb->id);
	}
	initproto_msg_free(&reply);
	if (req->timeout_ms)
		p->deadline_ms = p->started_ms + req->timeout_ms;

	process_ref(p); /* the collector's reference */
	if (pthread_create(&p->thread, NULL, collector, p) != 0) {
		if (p->tty && p->budget)
			__atomic_sub_fetch(&p->budget->terminals, 1, __ATOMIC_SEQ_CST);
		send_kill(p, SIGKILL);
		process_unref(p);
		process_unref(p);
		return al_error_set(err, EAGAIN, "sandbox %s: cannot start collector thread",
		                    sb->id);
	}
	p->thread_started = true;
	*out = p;
	return 0;
}

void process_wait(struct al_process *p, uint64_t deadline_ms)
{
	pthread_mutex_lock(&p->lock);
	/* Under backpressure a full stream waits for this very client. */
	while (!p->collected && !backpressure_answer_now(p)) {
		if (deadline_ms) {
			uint64_t now = al_now_ms();
			struct timespec ts;
			if (now >= deadline_ms)
				break;
			clock_gettime(CLOCK_REALTIME, &ts);
			uint64_t ns = (uint64_t)ts.tv_nsec + (deadline_ms - now) * 1000000ULL;
			ts.tv_sec += (time_t)(ns / 1000000000ULL);
			ts.tv_nsec = (long)(ns % 1000000000ULL);
			pthread_cond_timedwait(&p->cond, &p->lock, &ts);
		} else {
			pthread_cond_wait(&p->cond, &p->lock);
		}
	}
	pthread_mutex_unlock(&p->lock);
}

/* Valid UTF-8 passes unchanged; every invalid byte becomes U+FFFD. */
static char *utf8_sanitize(const char *s, size_t len)
{
	const unsigned char *d = (const unsigned char *)s;
	struct al_buf b = {0};
	size_t i = 0, run = 0; /* s[run..i) is valid and not yet copied */

	al_buf_append(&b, "", 0);
	while (i < len) {
		int n = utf8_seq(d + i, len - i);
		if (n > 0) {
			i += (size_t)n;
			continue;
		}
		al_buf_append(&b, s + run, i - run);
		al_buf_append(&b, "\xef\xbf\xbd", 3);
		run = ++i;
	}
	al_buf_append(&b, s + run, i - run);
	return b.data;
}

static void add_stream(struct al_process *p, cJSON *o, const char *name, struct stream *s,
                       bool base64)
{
	const char *data = s->buf.data ? s->buf.data : "";
	size_t len = s->buf.len;
	char key[32];
	char *text;

	/* Output of an exec that asked for base64 is held by its bytes; taken
	 * as text it is cut to max_output of text, too. */
	if (!base64) {
		len = text_fit(s, p->max_output);
		if (len < s->buf.len)
			s->truncated = true;
	}
	text = base64 ? al_base64_encode(data, len) : utf8_sanitize(data, len);
	budget_give(p->budget, s->buf.len);
	budget_give(&total_budget, s->buf.len);
	/* Freed before the string is copied into the answer, and not kept
	 * for the next bytes: a quiet process holds nothing. */
	al_buf_free(&s->buf);
	journal_taken(s);
	s->text_scanned = s->text_size = 0;
	cJSON_AddStringToObject(o, name, text ? text : "");
	free(text);
	snprintf(key, sizeof(key), "%s_truncated", name);
	cJSON_AddBoolToObject(o, key, s->truncated);
	s->truncated = false;
}

static void wake(struct al_process *p);

cJSON *process_take_result(struct al_process *p, bool base64)
{
	cJSON *o = cJSON_CreateObject();

	pthread_mutex_lock(&p->lock);
	cJSON_AddBoolToObject(o, "running", !p->collected);
	if (p->collected) {
		if (p->term_signal) {
			cJSON_AddNumberToObject(o, "exit_code", 128 + p->term_signal);
			cJSON_AddNumberToObject(o, "signal", p->term_signal);
		} else {
			cJSON_AddNumberToObject(o, "exit_code", p->exit_code);
			cJSON_AddNullToObject(o, "signal");
		}
		cJSON_AddNumberToObject(o, "duration_ms", (double)(p->ended_ms - p->started_ms));
		p->result_taken = true;
	} else {
		cJSON_AddNullToObject(o, "exit_code");
		cJSON_AddNullToObject(o, "signal");
	}
	cJSON_AddBoolToObject(o, "timed_out", p->timed_out);
	add_stream(p, o, "stdout", &p->out, base64);
	add_stream(p, o, "stderr", &p->err, base64);
	p->taken_ms = al_now_ms();
	pthread_mutex_unlock(&p->lock);
	/* Room again: a collector held back by backpressure reads on. */
	if (p->backpressure)
		wake(p);
	return o;
}

bool process_output_full(struct al_process *p)
{
	bool full;

	pthread_mutex_lock(&p->lock);
	full = backpressure_answer_now(p);
	pthread_mutex_unlock(&p->lock);
	return full;
}

bool process_ended(struct al_process *p)
{
	bool ended;

	pthread_mutex_lock(&p->lock);
	ended = p->collected;
	pthread_mutex_unlock(&p->lock);
	return ended;
}

bool process_expired(struct al_process *p, uint64_t after_ms)
{
	bool expired;

	pthread_mutex_lock(&p->lock);
	expired = p->collected && !p->result_taken && al_now_ms() - p->ended_ms >= after_ms;
	pthread_mutex_unlock(&p->lock);
	return expired;
}

bool process_finished(struct al_process *p)
{
	bool done;

	pthread_mutex_lock(&p->lock);
	done = p->collected && p->result_taken;
	pthread_mutex_unlock(&p->lock);
	return done;
}

static void wake(struct al_process *p)
{
	uint64_t one = 1;
	if (p->wake >= 0 && write(p->wake, &one, sizeof(one)) < 0)
		log_debug("eventfd write: %m");
}

int process_write_stdin(struct al_process *p, const void *data, size_t len, bool close_stdin,
                        struct al_error *err)
{
	int r = 0;

	pthread_mutex_lock(&p->lock);
	/* Nothing to write is a poll (the Agents SDK's write_stdin with no
	 * chars): it succeeds after the process closed its stdin or died too. */
	if (p->stdin_fd < 0 && len > 0) {
		r = al_error_set(err, EPIPE, "stdin of the process is closed");
	} else if (p->stdin_queue.len + len > (64u << 20)) {
		r = al_error_set(err, ENOBUFS, "too much stdin queued");
	} else {
		if (len > 0 && al_buf_append(&p->stdin_queue, data, len) < 0)
			r = al_error_set(err, ENOMEM, "out of memory");
		if (close_stdin)
			p->close_stdin_after_queue = true;
	}
	pthread_mutex_unlock(&p->lock);
	if (r == 0)
		wake(p);
	return r;
}

int process_kill(struct al_process *p, int sig, struct al_error *err)
{
	if (sig <= 0 || sig >= NSIG)
		return al_error_set(err, EINVAL, "invalid signal %d", sig);
	pthread_mutex_lock(&p->lock);
	if (!p->exited)
		p->pending_signal = sig;
	pthread_mutex_unlock(&p->lock);
	wake(p);
	return 0;
}

size_t process_stdin_queued(struct al_process *p)
{
	size_t n;

	pthread_mutex_lock(&p->lock);
	n = p->stdin_queue.len;
	pthread_mutex_unlock(&p->lock);
	return n;
}

bool process_is_tty(struct al_process *p)
{
	return p->tty;
}

int process_resize(struct al_process *p, unsigned rows, unsigned cols, struct al_error *err)
{
	struct winsize ws = {.ws_row = (unsigned short)rows, .ws_col = (unsigned short)cols};

	int r = 0;

	if (!p->tty)
		return al_error_set(err, EINVAL, "the process has no terminal to resize");
	if (rows == 0 || cols == 0 || rows > 0xffff || cols > 0xffff)
		return al_error_set(err, EINVAL, "rows and cols must be between 1 and 65535");
	pthread_mutex_lock(&p->lock);
	if (p->tty_fd < 0)
		r = al_error_set(err, ESRCH, "the process has ended: its terminal is closed");
	/* The kernel sends SIGWINCH to the terminal's foreground process group. */
	else if (ioctl(p->tty_fd, TIOCSWINSZ, &ws) < 0)
		r = al_error_errno(err, "resize terminal");
	pthread_mutex_unlock(&p->lock);
	return r;
}

int process_stream_attach(struct al_process *p, struct al_error *err)
{
	int fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);

	if (fd < 0)
		return al_error_errno(err, "eventfd");
	pthread_mutex_lock(&p->lock);
	if (p->notify >= 0) {
		pthread_mutex_unlock(&p->lock);
		close(fd);
		return al_error_set(err, EBUSY, "the process is streamed already");
	}
	__atomic_store_n(&p->notify, fd, __ATOMIC_SEQ_CST);
	pthread_mutex_unlock(&p->lock);
	/* Output from before the attach is there to take too. */
	notify(p);
	return fd;
}

static void buf_move(struct al_process *p, struct stream *s, struct al_buf *to, int *r)
{
	if (s->buf.len == 0)
		return;
	if (*r == 0 && al_buf_append(to, s->buf.data, s->buf.len) < 0)
		*r = -ENOMEM;
	budget_give(p->budget, s->buf.len);
	budget_give(&total_budget, s->buf.len);
	al_buf_free(&s->buf);
	journal_taken(s);
}

int process_stream_take(struct al_process *p, struct al_buf *out, struct al_buf *err, bool *done)
{
	bool was_full;
	int r = 0;

	pthread_mutex_lock(&p->lock);
	was_full = p->out.buf.len >= STREAM_HIGH_WATER || p->err.buf.len >= STREAM_HIGH_WATER;
	buf_move(p, &p->out, out, &r);
	buf_move(p, &p->err, err, &r);
	*done = p->collected;
	pthread_mutex_unlock(&p->lock);
	/* The collector stopped reading at the high-water mark: go on. */
	if (was_full)
		wake(p);
	return r;
}

int process_take_stdio(struct al_process *p, int fds[3])
{
	int r = 0;

	pthread_mutex_lock(&p->lock);
	if (p->direct_fds[1] < 0) {
		r = -EINVAL;
	} else {
		for (int i = 0; i < 3; i++) {
			fds[i] = p->direct_fds[i];
			p->direct_fds[i] = -1;
		}
	}
	pthread_mutex_unlock(&p->lock);
	return r;
}

unsigned sandbox_terminals_open(struct sandbox *sb)
{
	return sb->output ? __atomic_load_n(&sb->output->terminals, __ATOMIC_SEQ_CST) : 0;
}

void process_hold(struct al_process *p, unsigned n, const char *command)
{
	struct al_error err = AL_ERROR_INIT;
	char started[24], deadline[24], max[24], flags[4] = "";
	char *argv[INITPROTO_HOLD_ARGV + 1] = {started, deadline,        max,
	                                       flags,   (char *)command, NULL};
	struct initproto_msg m = {.type = INITPROTO_HOLD, .num = (int32_t)n, .argv = argv};
	int fds[5], in = -1;
	size_t nfds = 0;

	snprintf(started, sizeof(started), "%" PRIu64, p->started_ms);
	snprintf(deadline, sizeof(deadline), "%" PRIu64, p->deadline_ms);
	snprintf(max, sizeof(max), "%zu", p->max_output);
	if (p->count_text)
		strcat(flags, "t");
	if (p->tty)
		strcat(flags, "y");
	if (p->backpressure)
		strcat(flags, "b");
	/* send_lock first: a STDIN_CLOSE for the stdin copied here comes
	 * after this HOLD, never before (close_stdin_locked). */
	pthread_mutex_lock(&p->send_lock);
	pthread_mutex_lock(&p->lock);
	if (!p->tty && p->stdin_fd >= 0)
		in = fcntl(p->stdin_fd, F_DUPFD_CLOEXEC, 3);
	/* Not if its final result went out already (a client that guessed the
	 * id may poll before this runs): nobody would release it. */
	p->held = p->conn >= 0 && !p->released;
	/* Pipes only: a terminal's master is ours alone (docs/operations.md). */
	if (p->held && p->hold_out >= 0 &&
	    (journal_open(&p->out, p->owner, &err) < 0 ||
	     journal_open(&p->err, p->owner, &err) < 0))
		log_warn("process p%u: %s: its output not taken yet will not survive an airlockd "
		         "restart",
		         n, err.msg);
	pthread_mutex_unlock(&p->lock);
	if (in >= 0) {
		m.aux |= INITPROTO_HOLD_STDIN;
		fds[nfds++] = in;
	}
	if (p->hold_out >= 0) {
		m.aux |= INITPROTO_HOLD_STDOUT;
		fds[nfds++] = p->hold_out;
	}
	if (p->hold_err >= 0) {
		m.aux |= INITPROTO_HOLD_STDERR;
		fds[nfds++] = p->hold_err;
	}
	if (p->out.jfd >= 0) {
		m.aux |= INITPROTO_HOLD_OUT_JOURNAL;
		fds[nfds++] = p->out.jfd;
	}
	if (p->err.jfd >= 0) {
		m.aux |= INITPROTO_HOLD_ERR_JOURNAL;
		fds[nfds++] = p->err.jfd;
	}
	if (p->held && initproto_send(p->conn, &m, fds, nfds, &err) < 0)
		log_warn("process p%u: cannot hand it to airlock-init (%s): it will not survive "
		         "an airlockd restart",
		         n, err.msg);
	pthread_mutex_unlock(&p->send_lock);
	if (in >= 0)
		close(in);
	/* PID 1 has its own copies now; the journals stay ours too. */
	al_closep(&p->hold_out);
	al_closep(&p->hold_err);
	p->hold_out = p->hold_err = -1;
}

void process_release(struct al_process *p)
{
	bool held;

	if (!p)
		return;
	pthread_mutex_lock(&p->lock);
	held = p->held;
	p->held = false;
	p->released = true;
	pthread_mutex_unlock(&p->lock);
	if (held)
		send_init(p, INITPROTO_RELEASE, 0);
}

/* The output a held process's journal kept: into the buffer again. */
static int journal_load(struct al_process *p, struct stream *s, struct al_error *err)
{
	char chunk[65536];
	struct stat st;
	uint64_t head;

	/* What PID 1 hands back is the sandbox's to tamper with, should PID 1
	 * ever be subverted: a memfd-sized regular file, or nothing is read. */
	if (fstat(s->jfd, &st) < 0)
		return al_error_errno(err, "output journal");
	if (!S_ISREG(st.st_mode))
		return al_error_set(err, EPROTO, "output journal is not a file");
	if (pread(s->jfd, &head, sizeof(head), 0) != (ssize_t)sizeof(head))
		return al_error_errno(err, "read output journal");
	if (head < JOURNAL_DATA || head > (uint64_t)st.st_size)
		return al_error_set(err, EPROTO, "output journal: bad head %" PRIu64, head);
	if ((uint64_t)st.st_size - head > (uint64_t)p->max_output + JOURNAL_SLACK)
		return al_error_set(err, EPROTO,
		                    "output journal holds %" PRIu64 " bytes, more than its %zu",
		                    (uint64_t)st.st_size - head, p->max_output);
	s->jhead = s->jtail = head;
	s->jpunched = JOURNAL_DATA;
	/* Held before the restart, and accounted then: kept whatever the
	 * budgets say now, rather than cut (which would also cut the journal
	 * under this very loop). */
	while (s->jtail < (uint64_t)st.st_size) {
		uint64_t left = (uint64_t)st.st_size - s->jtail;
		ssize_t n = pread(s->jfd, chunk, left < sizeof(chunk) ? left : sizeof(chunk),
		                  (off_t)s->jtail);
		if (n < 0)
			return al_error_errno(err, "read output journal");
		if (n == 0)
			break;
		if (al_buf_append(&s->buf, chunk, (size_t)n) < 0)
			return al_error_set(err, ENOMEM, "out of memory");
		budget_force(p->budget, (size_t)n);
		budget_force(&total_budget, (size_t)n);
		s->jtail += (uint64_t)n;
	}
	return 0;
}

/* The fds of a HELD answer into p, in INITPROTO_HOLD_* order.  Its stdio
 * must be pipes, made non-blocking (a blocking one would hang the collector
 * or a writer holding p->lock); anything else is refused. */
static int take_held_fds(struct al_process *p, uint32_t mask, int *fds, size_t *n,
                         struct al_error *err)
{
	int *slot[5] = {&p->stdin_fd, &p->out.fd, &p->err.fd, &p->out.jfd, &p->err.jfd};
	size_t k = 0;

	for (int i = 0; i < 5; i++)
		if ((mask & (1u << i)) && k < *n) {
			struct stat st;
			if (i < 3 && (fstat(fds[k], &st) < 0 || !S_ISFIFO(st.st_mode) ||
			              fcntl(fds[k], F_SETFL, O_NONBLOCK) < 0))
				return al_error_set(err, EPROTO, "held stdio %d is not a pipe", i);
			*slot[i] = fds[k];
			fds[k++] = -1;
		}
	return 0;
}

static void process_unrefp(struct al_process **p)
{
	process_unref(*p);
}

/* Take back process id "pN" (n) from PID 1 into sb's process table. */
static int adopt_one(struct sandbox *sb, unsigned n, struct al_error *err)
{
	__attribute__((cleanup(process_unrefp))) struct al_process *p = NULL;
	struct initproto_msg m = {.type = INITPROTO_ATTACH, .num = (int32_t)n}, reply = {0};
	int fds[INITPROTO_MAX_FDS];
	size_t nfds = INITPROTO_MAX_FDS;
	_cleanup_close_ int conn = -1;
	unsigned long long max_output;
	char id[16];
	int r;

	conn = sandbox_connect_init(sb, err);
	if (conn < 0)
		return -err->code;
	r = initproto_send(conn, &m, NULL, 0, err);
	if (r == 0)
		r = initproto_recv(conn, &reply, fds, &nfds, err);
	if (r == 1)
		r = al_error_set(err, ECONNRESET, "airlock-init closed the connection");
	if (r < 0)
		return r;
	if (reply.type != INITPROTO_HELD || al_strv_length(reply.argv) != INITPROTO_HOLD_ARGV) {
		r = al_error_set(err, EPROTO, "%s",
		                 reply.type == INITPROTO_ERROR && reply.text ? reply.text
		                                                             : "unexpected answer");
		close_fds(fds, nfds);
		initproto_msg_free(&reply);
		return r;
	}
	max_output = strtoull(reply.argv[2], NULL, 10);
	if (max_output > PROCESS_MAX_OUTPUT ||
	    strspn(reply.argv[3], "tyb") != strlen(reply.argv[3])) {
		close_fds(fds, nfds);
		initproto_msg_free(&reply);
		return al_error_set(err, EPROTO, "held process p%u: bad max_output or flags", n);
	}
	p = process_new((size_t)max_output, strchr(reply.argv[3], 't') != NULL);
	if (!p) {
		close_fds(fds, nfds);
		initproto_msg_free(&reply);
		return al_error_set(err, ENOMEM, "out of memory");
	}
	p->budget = output_budget_ref(sb->output);
	p->started_ms = strtoull(reply.argv[0], NULL, 10);
	p->taken_ms = al_now_ms();
	p->deadline_ms = strtoull(reply.argv[1], NULL, 10);
	p->tty = strchr(reply.argv[3], 'y') != NULL;
	p->backpressure = strchr(reply.argv[3], 'b') != NULL;
	r = p->tty && (reply.aux & 7) ? al_error_set(err, EPROTO, "held terminal with stdio pipes")
	                              : take_held_fds(p, reply.aux, fds, &nfds, err);
	close_fds(fds, nfds);
	if (r < 0) {
		initproto_msg_free(&reply);
		return r;
	}
	p->conn = TAKE_FD(conn);
	p->held = true;
	log_info("sandbox %s: process p%u (%s) taken back from airlock-init", sb->id, n,
	         reply.argv[4]);
	initproto_msg_free(&reply);
	if ((p->out.jfd >= 0 && journal_load(p, &p->out, err) < 0) ||
	    (p->err.jfd >= 0 && journal_load(p, &p->err, err) < 0))
		return -err->code;
	p->wake = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (p->wake < 0)
		return al_error_errno(err, "eventfd");
	/* Counted from here: the collector uncounts it. */
	if (p->tty && p->budget)
		__atomic_add_fetch(&p->budget->terminals, 1, __ATOMIC_SEQ_CST);
	process_ref(p); /* the collector's reference */
	if (pthread_create(&p->thread, NULL, collector, p) != 0) {
		if (p->tty && p->budget)
			__atomic_sub_fetch(&p->budget->terminals, 1, __ATOMIC_SEQ_CST);
		process_unref(p);
		return al_error_set(err, EAGAIN, "cannot start collector thread");
	}
	p->thread_started = true;
	snprintf(id, sizeof(id), "p%u", n);
	r = sandbox_adopt_process(sb, p, id);
	if (r < 0)
		return al_error_set(err, -r, "cannot add it to the process table");
	return 0;
}

int process_adopt_all(struct sandbox *sb, struct al_error *err)
{
	struct initproto_msg m = {.type = INITPROTO_LIST}, reply = {0};
	_cleanup_close_ int conn = -1;
	int r;

	conn = sandbox_connect_init(sb, err);
	if (conn < 0)
		return -err->code;
	r = initproto_send(conn, &m, NULL, 0, err);
	if (r == 0)
		r = initproto_recv(conn, &reply, NULL, NULL, err);
	if (r == 1)
		r = al_error_set(err, ECONNRESET, "airlock-init closed the connection");
	if (r == 0 && reply.type == INITPROTO_ERROR) {
		/* A PID 1 from before LIST (an airlockd of an older version
		 * started the sandbox) keeps nothing for us. */
		log_info("sandbox %s: its airlock-init keeps no commands across a restart", sb->id);
		initproto_msg_free(&reply);
		return 0;
	}
	if (r == 0 && reply.type != INITPROTO_LISTED)
		r = al_error_set(err, EPROTO, "unexpected answer to a list");
	if (r < 0) {
		initproto_msg_free(&reply);
		return al_error_prefix(err, "sandbox %s: list its processes", sb->id);
	}
	/* Ids given before the restart are not given again.  (A number that
	 * does not fit is PID 1's mistake: ids go on from ours.) */
	pthread_mutex_lock(&sb->lock);
	if (reply.num > 0 && sb->next_proc < (unsigned)reply.num)
		sb->next_proc = (unsigned)reply.num;
	pthread_mutex_unlock(&sb->lock);
	size_t taken = 0;
	for (char **a = reply.argv; a && *a && taken < SANDBOX_MAX_PROCESSES; a++) {
		struct al_error e = AL_ERROR_INIT;
		char *end;
		unsigned long n = strtoul(*a, &end, 10);
		char id[16];
		if (*end || n == 0 || n > UINT_MAX) {
			log_warn("sandbox %s: airlock-init listed a bad process id", sb->id);
			continue;
		}
		snprintf(id, sizeof(id), "p%lu", n);
		struct al_process *dup = sandbox_take_process(sb, id, false);
		if (dup) { /* listed twice */
			process_unref(dup);
			continue;
		}
		if (adopt_one(sb, (unsigned)n, &e) < 0)
			log_warn("sandbox %s: cannot take back process p%lu: %s", sb->id, n, e.msg);
		else
			taken++;
	}
	initproto_msg_free(&reply);
	return 0;
}
