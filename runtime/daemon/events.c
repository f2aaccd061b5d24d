/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Per-sandbox event log: seccomp denials and resource limit hits.
 *
 * Denials come from the kernel's audit records.  airlock-init installs the
 * profile with SECCOMP_FILTER_FLAG_LOG, so every syscall the filter denies
 * produces an AUDIT_SECCOMP record; we read them as a read-only multicast
 * listener of the audit netlink socket (AUDIT_NLGRP_READLOG), which works
 * beside auditd or without it and never changes the host's audit setup.
 * Why not seccomp user notification: the decision stays in the kernel (the
 * profile's own errno, no daemon round trip, nothing blocks while airlockd
 * is down or restarting), and the filter is plain BPF plus a flag, which
 * CRIU checkpoints and restores, where a notification listener can be
 * neither dumped nor reattached.
 *
 * A record names the host uid of the process; live sandboxes have disjoint
 * uid ranges, so the uid says which sandbox it was, even after the process
 * is gone.  The pid inside the sandbox is looked up at once (NSpid), and
 * stays 0 when the process has already exited.
 *
 * Bounds: each sandbox keeps at most RING_SIZE entries; repeats of the same
 * syscall by the same process within MERGE_WINDOW_MS only raise a count;
 * new entries are rate-limited by a token bucket, and what does not fit is
 * counted as suppressed.  The reader handles at most READER_BUDGET records a
 * second; beyond that the kernel's socket buffer overflows and the loss is
 * counted ("lost").  The kernel builds a record in the denied process (on
 * the sandbox's CPU), but kauditd and every reader like us then spend host
 * CPU outside it on each: past RECORD_BUDGET records a second a sandbox is
 * muted in the kernel by an audit exclude rule for its uid range (see
 * audit_mute_rule()), for MUTE_FIRST_MS, doubling while the flood goes on.
 *
 * Limit hits are the cgroup counters (memory.events / memory.oom_control
 * oom_kill, pids.events max), read every CGROUP_POLL_MS and on every query.
 */
#include "events.h"

#include <errno.h>
#include <inttypes.h>
#include <linux/audit.h>
#include <poll.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include <auparse.h>
#include <libaudit.h>
#include <seccomp.h>
#include <netlink/msg.h>
#include <netlink/netlink.h>
#include <netlink/socket.h>

#include "bucket_mounts.h"
#include "cleanup.h"
#include "json.h"
#include "log.h"
#include "metrics.h"
#include "daemon.h"
#include "sandbox.h"
#include "strv.h"
#include "uidslots.h"
#include "util.h"

#define RING_SIZE 256
#define MAX_TOTALS 64
#define MERGE_WINDOW_MS 1000
#define TOKENS_PER_SEC 50.0
#define TOKEN_BURST 100.0
#define READER_BUDGET 20000 /* records per second */
#define RECORD_BUDGET 500   /* records per second one sandbox may cause */
#define MUTE_FIRST_MS 1000
#define MUTE_MAX_MS 32000
#define MUTE_RELAPSE_MS 2000 /* a flood again this soon after a mute: twice as long */
#define CGROUP_POLL_MS 2000
#define SOCKET_BUFFER (1 << 20)
#define NETWORK_MERGE_MS 10000 /* denials of one destination merged (network_denied) */

struct event {
	uint64_t seq;
	uint64_t cursor;  /* events.next_cursor at its append: the order across sandboxes */
	const char *type; /* "seccomp", "unrecorded", "oom_kill", "pids_max", "pid1_exited",
	                     "mount_restarted", "mount_failed" */
	char syscall[32];
	char arch[16];
	char action[16];
	char comm[32];
	char path[96];              /* mount events: the mount's path in the sandbox */
	char dest[64];              /* network_denied: "ADDR:PORT/PROTO" */
	pid_t pid;                  /* inside the sandbox; 0 when unknown */
	pid_t host_pid;             /* 0 for limit events */
	uint64_t first_ms, last_ms; /* wall clock; last_ms 0: an unrecorded period still on */
	uint64_t count;
};

struct sandbox_events {
	char id[16];
	struct event ring[RING_SIZE];
	size_t head, n; /* ring[head] is the oldest entry */
	uint64_t next_seq;
	double tokens;
	uint64_t refill_ms;
	uint64_t suppressed;
	/* The kernel's records of this sandbox's denials, per second, and
	 * whether they are muted (see mute_locked()). */
	uid_t uid_base;
	uint64_t window_ms;
	uint32_t window_records;
	uint64_t muted_until, unmuted_at; /* monotonic; muted_until 0: recording */
	uint64_t mute_ms, unrecorded_ms;
	uint64_t mute_seq; /* the "unrecorded" event of the mute going on */
	struct {
		char syscall[32];
		uint64_t count;
	} totals[MAX_TOTALS];
	size_t n_totals;
	bool cgroup_known;
	uint64_t oom_kill, pids_max;
	bool pid1_reported;
};

static struct {
	pthread_mutex_t lock; /* guards everything below */
	struct sandbox_events **logs;
	size_t n_logs;
	struct daemon *daemon;
	bool started;
	bool collecting;
	int wake_fd; /* eventfd: written by events_stop() */
	pthread_t thread;
	bool running;
	char error[256];
	uint64_t lost;
	/* For GET /v1/events?follow=1: a count of appends over all sandboxes,
	 * signalled on each, and set once airlockd stops. */
	uint64_t next_cursor;
	pthread_cond_t appended;
	bool stopping;
} events = {.lock = PTHREAD_MUTEX_INITIALIZER, .wake_fd = -1, .appended = PTHREAD_COND_INITIALIZER};

static uint64_t wall_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* ---- the log of one sandbox (events.lock held) ------------------------------------------ */

static struct sandbox_events *log_get_locked(const char *id, bool create)
{
	struct sandbox_events *l, **n;

	for (size_t i = 0; i < events.n_logs; i++)
		if (!strcmp(events.logs[i]->id, id))
			return events.logs[i];
	if (!create)
		return NULL;
	l = calloc(1, sizeof(*l));
	n = l ? realloc(events.logs, (events.n_logs + 1) * sizeof(*n)) : NULL;
	if (!n) {
		free(l);
		return NULL;
	}
	snprintf(l->id, sizeof(l->id), "%s", id);
	l->tokens = TOKEN_BURST;
	l->refill_ms = al_now_ms();
	events.logs = n;
	events.logs[events.n_logs++] = l;
	return l;
}

static void add_total_locked(struct sandbox_events *l, const char *syscall, uint64_t count)
{
	size_t i;

	for (i = 0; i < l->n_totals; i++)
		if (!strcmp(l->totals[i].syscall, syscall))
			break;
	if (i == l->n_totals) {
		/* A profile denies a few hundred syscalls; past MAX_TOTALS they share a slot. */
		if (l->n_totals == MAX_TOTALS)
			i = MAX_TOTALS - 1;
		else
			snprintf(l->totals[l->n_totals++].syscall, sizeof(l->totals[0].syscall),
			         "%s", syscall);
	}
	if (i == MAX_TOTALS - 1 && strcmp(l->totals[i].syscall, syscall))
		snprintf(l->totals[i].syscall, sizeof(l->totals[0].syscall), "other");
	l->totals[i].count += count;
}

static struct event *newest_locked(struct sandbox_events *l)
{
	return l->n ? &l->ring[(l->head + l->n - 1) % RING_SIZE] : NULL;
}

static void append_locked(struct sandbox_events *l, const struct event *ev)
{
	struct event *slot;

	if (l->n == RING_SIZE) { /* forget the oldest */
		l->head = (l->head + 1) % RING_SIZE;
		l->n--;
	}
	slot = &l->ring[(l->head + l->n) % RING_SIZE];
	*slot = *ev;
	slot->seq = ++l->next_seq;
	slot->cursor = ++events.next_cursor;
	l->n++;
	pthread_cond_broadcast(&events.appended);
}

/*
 * Count a denial; true when it needs an entry of its own (it is not a
 * repeat within MERGE_WINDOW_MS and the token bucket allows one), which
 * the caller then completes and appends.
 */
static bool count_denial_locked(struct sandbox_events *l, const struct event *ev)
{
	struct event *last = newest_locked(l);
	uint64_t now = al_now_ms();

	metrics_count_denial();
	add_total_locked(l, ev->syscall, 1);
	if (last && last->type == ev->type && last->host_pid == ev->host_pid &&
	    !strcmp(last->syscall, ev->syscall) && ev->first_ms >= last->last_ms &&
	    ev->first_ms - last->last_ms <= MERGE_WINDOW_MS) {
		last->count++;
		last->last_ms = ev->first_ms;
		return false;
	}
	l->tokens += (double)(now - l->refill_ms) * TOKENS_PER_SEC / 1000.0;
	if (l->tokens > TOKEN_BURST)
		l->tokens = TOKEN_BURST;
	l->refill_ms = now;
	if (l->tokens < 1.0) {
		l->suppressed++;
		return false;
	}
	l->tokens -= 1.0;
	return true;
}

static struct event *event_of_seq_locked(struct sandbox_events *l, uint64_t seq)
{
	for (size_t i = 0; i < l->n; i++)
		if (l->ring[(l->head + i) % RING_SIZE].seq == seq)
			return &l->ring[(l->head + i) % RING_SIZE];
	return NULL;
}

/* ---- muting a flood in the kernel ------------------------------------------------------------ */

/*
 * Add (or delete) the audit rule that stops the kernel from making
 * AUDIT_SECCOMP records for the uid range at base: an entry of the exclude
 * list, which the kernel checks before it builds a record.  The records of
 * a sandbox denying syscalls in a loop cost host CPU outside its cgroup,
 * in kauditd (one copy per listener) and in every airlockd of the host
 * parsing them (2 s of host CPU per 0.5 s of the sandbox's own, measured);
 * muted, they cost nothing.  Negative errno when the rule cannot be set
 * (no CAP_AUDIT_CONTROL, an immutable audit configuration).
 */
static int audit_mute_rule(uid_t base, bool add)
{
	struct audit_rule_data *rule = audit_rule_create_data();
	char pair[3][48];
	int fd, r = 0;

	if (!rule)
		return -ENOMEM;
	snprintf(pair[0], sizeof(pair[0]), "msgtype=%d", AUDIT_SECCOMP);
	snprintf(pair[1], sizeof(pair[1]), "uid>=%u", (unsigned)base);
	snprintf(pair[2], sizeof(pair[2]), "uid<=%u", (unsigned)(base + AIRLOCK_UID_RANGE - 1));
	for (size_t i = 0; i < AL_ARRAY_SIZE(pair) && r == 0; i++)
		if (audit_rule_fieldpair_data(&rule, pair[i], AUDIT_FILTER_EXCLUDE) != 0)
			r = -EINVAL;
	fd = r == 0 ? audit_open() : -1;
	if (r == 0 && fd < 0)
		r = -errno;
	if (r == 0) {
		r = add ? audit_add_rule_data(fd, rule, AUDIT_FILTER_EXCLUDE, AUDIT_NEVER)
		        : audit_delete_rule_data(fd, rule, AUDIT_FILTER_EXCLUDE, AUDIT_NEVER);
		r = r < 0 ? r : 0;
	}
	if (fd >= 0)
		audit_close(fd);
	audit_rule_free_data(rule);
	return r;
}

/*
 * The rules are set by a thread of their own: the kernel makes whoever sends
 * it a command sleep, uninterruptibly, while its audit queue is over the
 * backlog limit (up to audit_backlog_wait_time, 60 s by default), which is
 * when a flood is on.  Neither the collector nor a create request may wait
 * for that.  One pending operation per range: the last request wins.
 */
static struct {
	pthread_mutex_t lock;
	pthread_cond_t cond;
	struct {
		uid_t base;
		bool add;
	} ops[128];
	size_t n;
	bool stop, running;
	pthread_t thread;
	/* The ranges with a rule in the kernel (muter thread only), and the
	 * file that lists them, so that an airlockd that died during a mute
	 * has its rules removed by the next one on its state directory. */
	uid_t active[128];
	size_t n_active;
	char *list_path;
} muter = {.lock = PTHREAD_MUTEX_INITIALIZER, .cond = PTHREAD_COND_INITIALIZER};

static void note_rule(uid_t base, bool present)
{
	struct al_error err = AL_ERROR_INIT;
	struct al_buf text = {0};
	size_t i;

	for (i = 0; i < muter.n_active && muter.active[i] != base; i++)
		;
	if (present && i == muter.n_active && i < AL_ARRAY_SIZE(muter.active))
		muter.active[muter.n_active++] = base;
	else if (!present && i < muter.n_active)
		muter.active[i] = muter.active[--muter.n_active];
	else
		return;
	if (!muter.list_path)
		return;
	if (muter.n_active == 0) {
		if (unlink(muter.list_path) < 0 && errno != ENOENT)
			log_warn("denial log: remove %s: %m", muter.list_path);
		return;
	}
	al_buf_append(&text, "", 0);
	for (i = 0; i < muter.n_active; i++) {
		char line[16];
		int n = snprintf(line, sizeof(line), "%u\n", (unsigned)muter.active[i]);
		al_buf_append(&text, line, (size_t)n);
	}
	if (al_write_file_replace(muter.list_path, text.data, text.len, 0600, &err) < 0)
		log_warn("denial log: %s", err.msg);
	al_buf_free(&text);
}

static void mute_failed(int r);

static void mute_request(uid_t base, bool add)
{
	size_t i;

	pthread_mutex_lock(&muter.lock);
	for (i = 0; i < muter.n && muter.ops[i].base != base; i++)
		;
	if (i < AL_ARRAY_SIZE(muter.ops)) {
		muter.ops[i].base = base;
		muter.ops[i].add = add;
		if (i == muter.n)
			muter.n++;
		pthread_cond_signal(&muter.cond);
	}
	pthread_mutex_unlock(&muter.lock);
}

/*
 * The kernel wakes one waiter of its backlog wait per pass of kauditd.  A
 * command sent while the queue is full puts the muter in that wait too,
 * and when the flooder queued behind it, kauditd's last pass (the flood is
 * muted, no records come) wakes the muter and leaves the flooder asleep
 * for all of audit_backlog_wait_time (60 s seen).  After such a command
 * the muter makes one record itself, so that kauditd passes once more and
 * wakes the next waiter: a syscall this thread alone logs, through a
 * seccomp filter of its own (SECCOMP_RET_LOG on getpgid(KICK_PID), which
 * then fails with ESRCH as it would anyway).  The record names uid 0,
 * which is no sandbox's.
 */
#define KICK_PID (-1234567)
#define PENALTY_MS 2 /* a command that took this long was made to wait */

static bool install_kick_filter(void)
{
	scmp_filter_ctx ctx = seccomp_init(SCMP_ACT_ALLOW);
	bool ok =
	    ctx && seccomp_attr_set(ctx, SCMP_FLTATR_CTL_TSYNC, 0) == 0 &&
	    seccomp_attr_set(ctx, SCMP_FLTATR_CTL_NNP, 0) == 0 &&
	    seccomp_rule_add(ctx, SCMP_ACT_LOG, SCMP_SYS(getpgid), 1,
	                     SCMP_A0(SCMP_CMP_MASKED_EQ, 0xffffffffu, (uint32_t)KICK_PID)) == 0 &&
	    seccomp_load(ctx) == 0;

	seccomp_release(ctx);
	return ok;
}

static void kick_kauditd(void)
{
	(void)syscall(SYS_getpgid, (long)KICK_PID);
}

static void *muter_main(void *arg)
{
	bool can_kick = install_kick_filter();

	(void)arg;
	if (!can_kick)
		log_debug(
		    "denial log: no kick filter; a flooder may sleep out the audit backlog wait");
	pthread_mutex_lock(&muter.lock);
	for (;;) {
		uid_t base;
		bool add;
		int r;

		while (muter.n == 0 && !muter.stop)
			pthread_cond_wait(&muter.cond, &muter.lock);
		if (muter.n == 0)
			break;
		base = muter.ops[0].base;
		add = muter.ops[0].add;
		memmove(&muter.ops[0], &muter.ops[1], --muter.n * sizeof(muter.ops[0]));
		pthread_mutex_unlock(&muter.lock);
		uint64_t t0 = al_now_ms();
		r = audit_mute_rule(base, add);
		if (can_kick && al_now_ms() - t0 >= PENALTY_MS)
			kick_kauditd();
		if (add && r < 0)
			mute_failed(r);
		/* A rule that could not be deleted stays listed, for the next
		 * start; one that is gone already (ENOENT) does not. */
		note_rule(base, add ? r == 0 : r < 0 && r != -ENOENT);
		pthread_mutex_lock(&muter.lock);
	}
	pthread_mutex_unlock(&muter.lock);
	return NULL;
}

static void mute_failed(int r)
{
	static bool said;

	if (!__atomic_exchange_n(&said, true, __ATOMIC_SEQ_CST))
		log_warn("denial log: cannot mute a flooding sandbox's audit records in the kernel "
		         "(%s); they are dropped on arrival instead",
		         strerror(-r));
}

/*
 * A sandbox caused more than RECORD_BUDGET records in a second: stop
 * recording its denials for mute_ms (doubling while the flood goes on),
 * shown as an "unrecorded" event.  The caller sets the rule (unlocked).
 */
static void mute_locked(struct sandbox_events *l, uint64_t now)
{
	uint64_t wall = wall_ms();
	struct event ev = {.type = "unrecorded", .first_ms = wall, .last_ms = 0, .count = 1};

	if (l->mute_ms && l->unmuted_at && now - l->unmuted_at <= MUTE_RELAPSE_MS)
		l->mute_ms = l->mute_ms * 2 > MUTE_MAX_MS ? MUTE_MAX_MS : l->mute_ms * 2;
	else
		l->mute_ms = MUTE_FIRST_MS;
	l->muted_until = now + l->mute_ms;
	append_locked(l, &ev);
	l->mute_seq = l->next_seq;
}

static void unmute_locked(struct sandbox_events *l, uint64_t now)
{
	struct event *ev = event_of_seq_locked(l, l->mute_seq);

	if (ev) {
		ev->last_ms = wall_ms();
		ev->count = 1;
	}
	l->unrecorded_ms += l->mute_ms;
	l->muted_until = 0;
	l->unmuted_at = now;
	l->window_ms = now;
	l->window_records = 0;
}

/* End the mutes that are over (collector thread). */
static void unmute_expired(void)
{
	uid_t bases[64];
	size_t n = 0;
	uint64_t now = al_now_ms();

	pthread_mutex_lock(&events.lock);
	for (size_t i = 0; i < events.n_logs && n < AL_ARRAY_SIZE(bases); i++) {
		struct sandbox_events *l = events.logs[i];
		if (l->muted_until && now >= l->muted_until) {
			unmute_locked(l, now);
			bases[n++] = l->uid_base;
		}
	}
	pthread_mutex_unlock(&events.lock);
	for (size_t i = 0; i < n; i++)
		mute_request(bases[i], false);
}

/* ---- audit records ------------------------------------------------------------------------ */

/* The sandbox whose uid range holds uid; id_out is left empty when none does. */
static void sandbox_of_uid(uid_t uid, char id_out[16])
{
	registry_id_of_uid(&events.daemon->registry, uid, id_out);
}

/* The pid of host_pid in its own (innermost) pid namespace, or 0. */
static pid_t inner_pid(pid_t host_pid)
{
	_cleanup_free_ char *status = NULL;
	char path[64], *line, *last = NULL, *save = NULL;

	snprintf(path, sizeof(path), "/proc/%d/status", (int)host_pid);
	if (al_read_file(path, 1 << 16, &status, NULL, NULL) < 0)
		return 0;
	line = strstr(status, "\nNSpid:");
	if (!line)
		return 0;
	line += strlen("\nNSpid:");
	line[strcspn(line, "\n")] = '\0';
	for (char *t = strtok_r(line, " \t", &save); t; t = strtok_r(NULL, " \t", &save))
		last = t;
	return last ? (pid_t)strtol(last, NULL, 10) : 0;
}

static const char *action_name(unsigned long code)
{
	switch (code & 0xffff0000UL) {
	case 0x00050000UL:
		return "errno";
	case 0x80000000UL:
		return "kill_process";
	case 0x00000000UL:
		return "kill_thread";
	case 0x00030000UL:
		return "trap";
	case 0x7ff00000UL:
		return "trace";
	case 0x7fc00000UL:
		return "user_notif";
	default:
		return "other";
	}
}

/* The raw text of a field of the current (only) record, or NULL. */
static const char *field(auparse_state_t *au, const char *name, bool interpret)
{
	auparse_first_record(au);
	if (!auparse_find_field(au, name))
		return NULL;
	return interpret ? auparse_interpret_field(au) : auparse_get_field_str(au);
}

static void copy_field(char *dst, size_t size, const char *value)
{
	snprintf(dst, size, "%s", value ? value : "?");
}

/* Syscall names by number, without a lookup in libseccomp's tables per record. */
static void syscall_name(uint32_t arch, int nr, char *out, size_t size)
{
	static struct {
		uint32_t arch;
		int nr;
		char name[32];
	} cache[16];
	static unsigned next;
	_cleanup_free_ char *name = NULL;

	for (size_t i = 0; i < AL_ARRAY_SIZE(cache); i++)
		if (cache[i].name[0] && cache[i].arch == arch && cache[i].nr == nr) {
			snprintf(out, size, "%s", cache[i].name);
			return;
		}
	name = seccomp_syscall_resolve_num_arch(arch, nr);
	if (name)
		snprintf(out, size, "%s", name);
	else
		snprintf(out, size, "syscall-%d", nr);
	cache[next].arch = arch;
	cache[next].nr = nr;
	snprintf(cache[next].name, sizeof(cache[next].name), "%s", out);
	next = (next + 1) % AL_ARRAY_SIZE(cache);
}

/*
 * One AUDIT_SECCOMP record.  Cheap work first: whose it is, whether the
 * sandbox is over its budget, whether it only adds to a count; the lookups
 * (/proc for the pid inside, field interpretation) only for a new entry.
 */
static void on_audit_event(auparse_state_t *au, auparse_cb_event_t type, void *data)
{
	struct event ev = {.type = "seccomp", .count = 1};
	const char *uid_s, *pid_s, *code_s, *arch_s, *nr_s;
	struct sandbox_events *l;
	uid_t uid, mute_base = 0;
	uint64_t now = al_now_ms();
	bool mute = false;
	char id[16];

	(void)data;
	if (type != AUPARSE_CB_EVENT_READY || auparse_first_record(au) <= 0 ||
	    auparse_get_type(au) != AUDIT_SECCOMP)
		return;
	uid_s = field(au, "uid", false);
	pid_s = field(au, "pid", false);
	if (!uid_s || !pid_s)
		return;
	uid = (uid_t)strtoul(uid_s, NULL, 10);
	sandbox_of_uid(uid, id);
	if (!id[0])
		return; /* not one of ours: another program's filter */
	ev.host_pid = (pid_t)strtol(pid_s, NULL, 10);
	/* The record's arch is the AUDIT_ARCH_* value, which is also libseccomp's token. */
	arch_s = field(au, "arch", false);
	nr_s = field(au, "syscall", false);
	syscall_name(arch_s ? (uint32_t)strtoul(arch_s, NULL, 16) : 0,
	             nr_s ? (int)strtol(nr_s, NULL, 10) : -1, ev.syscall, sizeof(ev.syscall));
	ev.first_ms = ev.last_ms =
	    (uint64_t)auparse_get_time(au) * 1000 + (uint64_t)auparse_get_milli(au);

	pthread_mutex_lock(&events.lock);
	l = log_get_locked(id, true);
	if (l && l->muted_until) {
		/* Records made before the kernel had the rule. */
		l = NULL;
	} else if (l) {
		l->uid_base = uid - (uid - AIRLOCK_UID_BASE) % AIRLOCK_UID_RANGE;
		if (now - l->window_ms >= 1000) {
			l->window_ms = now;
			l->window_records = 0;
		}
		if (++l->window_records > RECORD_BUDGET) {
			mute_locked(l, now);
			mute = true;
			mute_base = l->uid_base;
			l = NULL;
		}
	}
	if (l && count_denial_locked(l, &ev)) {
		ev.pid = inner_pid(ev.host_pid);
		copy_field(ev.arch, sizeof(ev.arch), field(au, "arch", true));
		copy_field(ev.comm, sizeof(ev.comm), field(au, "comm", true));
		code_s = field(au, "code", false);
		snprintf(ev.action, sizeof(ev.action), "%s",
		         code_s ? action_name(strtoul(code_s, NULL, 16)) : "?");
		append_locked(l, &ev);
	}
	pthread_mutex_unlock(&events.lock);
	if (mute)
		mute_request(mute_base, true);
}

/* Feed one AUDIT_SECCOMP record to auparse in the log's line format. */
static void handle_record(auparse_state_t *au, const char *text, size_t len)
{
	char line[8192];
	int n;

	/* Records are NUL-terminated or not, depending on the kernel path. */
	while (len > 0 && (text[len - 1] == '\0' || text[len - 1] == '\n'))
		len--;
	n = snprintf(line, sizeof(line), "type=SECCOMP msg=%.*s\n", (int)len, text);
	if (n <= 0 || (size_t)n >= sizeof(line))
		return;
	auparse_feed(au, line, (size_t)n);
	auparse_flush_feed(au);
}

/* Read what the socket has, at most *budget records; false when it failed for good. */
static bool drain_audit(struct nl_sock *sk, auparse_state_t *au, int *budget)
{
	while (*budget > 0) {
		_cleanup_free_ unsigned char *buf = NULL;
		struct sockaddr_nl peer;
		struct nlmsghdr *h;
		int n = nl_recv(sk, &peer, &buf, NULL);

		if (n == -NLE_AGAIN || n == 0)
			return true;
		if (n < 0) {
			/* Overflow of the socket buffer (ENOBUFS): records were dropped. */
			pthread_mutex_lock(&events.lock);
			events.lost++;
			pthread_mutex_unlock(&events.lock);
			return n == -NLE_NOMEM || n == -NLE_INTR;
		}
		h = (struct nlmsghdr *)buf;
		for (; nlmsg_ok(h, n); h = nlmsg_next(h, &n)) {
			if (h->nlmsg_type != AUDIT_SECCOMP)
				continue;
			handle_record(au, nlmsg_data(h), (size_t)nlmsg_datalen(h));
			(*budget)--;
		}
	}
	return true;
}

static struct nl_sock *audit_subscribe(char *why, size_t why_len)
{
	struct nl_sock *sk = nl_socket_alloc();
	int r;

	if (!sk) {
		snprintf(why, why_len, "out of memory");
		return NULL;
	}
	nl_socket_disable_seq_check(sk);
	nl_socket_disable_auto_ack(sk);
	r = nl_connect(sk, NETLINK_AUDIT);
	if (r == 0)
		r = nl_socket_add_membership(sk, AUDIT_NLGRP_READLOG);
	if (r == 0)
		r = nl_socket_set_nonblocking(sk);
	if (r == 0)
		r = nl_socket_set_buffer_size(sk, SOCKET_BUFFER, 0);
	if (r < 0) {
		snprintf(why, why_len, "cannot subscribe to the kernel's audit records: %s",
		         nl_geterror(r));
		nl_socket_free(sk);
		return NULL;
	}
	return sk;
}

/* ---- resource limit events ----------------------------------------------------------------- */

static void note_counter_locked(struct sandbox_events *l, const char *type, uint64_t seen,
                                uint64_t now_value, uint64_t when)
{
	struct event ev = {.type = type, .first_ms = when, .last_ms = when};

	if (now_value <= seen)
		return;
	ev.count = now_value - seen;
	metrics_count_limit_hit(type, ev.count);
	append_locked(l, &ev);
}

/* A counter of cgroup_describe()'s "events"; null (no such controller) is 0. */
static uint64_t counter(const cJSON *events_obj, const char *name)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(events_obj, name);

	return cJSON_IsNumber(v) && v->valuedouble > 0 ? (uint64_t)v->valuedouble : 0;
}

static void poll_cgroup(struct daemon *d, const char *id)
{
	struct al_error err = AL_ERROR_INIT;
	_cleanup_cjson_ cJSON *cg = NULL;
	const cJSON *ev;
	struct sandbox_events *l;
	uint64_t oom, pids, now = wall_ms();

	if (cgroup_describe(d->host.cgroups, id, &cg, &err) < 0)
		return;
	ev = cJSON_GetObjectItemCaseSensitive(cg, "events");
	oom = counter(ev, "oom_kill");
	pids = counter(ev, "pids_max");

	pthread_mutex_lock(&events.lock);
	l = log_get_locked(id, oom > 0 || pids > 0);
	if (l) {
		/* Counts from before we watched (a restart) are reported once, too. */
		note_counter_locked(l, "oom_kill", l->oom_kill, oom, now);
		note_counter_locked(l, "pids_max", l->pids_max, pids, now);
		l->oom_kill = oom > l->oom_kill ? oom : l->oom_kill;
		l->pids_max = pids > l->pids_max ? pids : l->pids_max;
		l->cgroup_known = true;
	}
	pthread_mutex_unlock(&events.lock);
}

/* A bucket mount's rclone died and was restarted (or could not be). */
static void on_mount_restart(void *opaque, struct sandbox *sb, const char *path, const char *error)
{
	struct sandbox_events *l;
	uint64_t now = wall_ms();
	struct event ev = {.type = error ? "mount_failed" : "mount_restarted",
	                   .first_ms = now,
	                   .last_ms = now,
	                   .count = 1};

	(void)opaque;
	snprintf(ev.path, sizeof(ev.path), "%s", path);
	pthread_mutex_lock(&events.lock);
	l = log_get_locked(sb->id, true);
	if (l)
		append_locked(l, &ev);
	pthread_mutex_unlock(&events.lock);
	if (error)
		log_warn("sandbox %s: the mount at %s died and could not be restarted: %s", sb->id,
		         path, error);
	else
		log_warn("sandbox %s: the mount at %s died; rclone restarted", sb->id, path);
}

static void supervise_mounts(struct daemon *d, const char *id)
{
	struct sandbox *sb = registry_get(&d->registry, id);

	if (!sb)
		return;
	bucket_mounts_supervise(sb, on_mount_restart, d);
	sandbox_unref(sb);
}

uint64_t events_oom_kills(struct daemon *d, const char *id)
{
	struct sandbox_events *l;
	uint64_t n;

	poll_cgroup(d, id);
	pthread_mutex_lock(&events.lock);
	l = log_get_locked(id, false);
	n = l ? l->oom_kill : 0;
	pthread_mutex_unlock(&events.lock);
	return n;
}

static void poll_all_cgroups(struct daemon *d)
{
	_cleanup_strv_ char **ids = registry_ids(&d->registry);
	_cleanup_strv_ char **stopped = registry_stopped_ids(&d->registry);

	for (char **id = ids; id && *id; id++) {
		poll_cgroup(d, *id);
		supervise_mounts(d, *id);
	}
	for (char **id = stopped; id && *id; id++)
		events_note_pid1_exit(*id);
}

void events_note_pid1_exit(const char *id)
{
	struct sandbox_events *l;
	uint64_t now = wall_ms();

	pthread_mutex_lock(&events.lock);
	l = log_get_locked(id, true);
	if (l && !l->pid1_reported) {
		struct event ev = {
		    .type = "pid1_exited", .first_ms = now, .last_ms = now, .count = 1};
		l->pid1_reported = true;
		append_locked(l, &ev);
		log_warn("sandbox %s: its PID 1 is gone; it is stopped, its files readable, until "
		         "it is removed",
		         id);
	}
	pthread_mutex_unlock(&events.lock);
}

void events_note_network_denied(const char *id, const char *dest, uint64_t count)
{
	struct sandbox_events *l;
	uint64_t now = wall_ms();

	pthread_mutex_lock(&events.lock);
	l = log_get_locked(id, true);
	/* Retries of one connection (or a scan going on) are one entry while
	 * they keep coming: its count grows, its last time moves on. */
	for (size_t i = 0; l && i < l->n; i++) {
		struct event *e = &l->ring[(l->head + l->n - 1 - i) % RING_SIZE];
		if (!strcmp(e->type, "network_denied") && !strcmp(e->dest, dest) &&
		    now - e->last_ms < NETWORK_MERGE_MS) {
			e->count += count;
			e->last_ms = now;
			pthread_mutex_unlock(&events.lock);
			return;
		}
		if (i >= 8)
			break;
	}
	if (l) {
		struct event ev = {
		    .type = "network_denied", .first_ms = now, .last_ms = now, .count = count};
		snprintf(ev.dest, sizeof(ev.dest), "%s", dest);
		append_locked(l, &ev);
	}
	pthread_mutex_unlock(&events.lock);
}

/* ---- the collector thread ------------------------------------------------------------------ */

static void *collector(void *arg)
{
	struct daemon *d = arg;
	struct nl_sock *sk;
	auparse_state_t *au = NULL;
	uint64_t window = al_now_ms(), next_cgroups = 0;
	int budget = READER_BUDGET;
	char why[256] = "";

	sk = audit_subscribe(why, sizeof(why));
	if (sk) {
		au = auparse_init(AUSOURCE_FEED, NULL);
		if (au) {
			auparse_add_callback(au, on_audit_event, NULL, NULL);
		} else {
			snprintf(why, sizeof(why), "auparse_init failed");
			nl_socket_free(sk);
			sk = NULL;
		}
	}
	pthread_mutex_lock(&events.lock);
	events.collecting = sk != NULL;
	snprintf(events.error, sizeof(events.error), "%s", why);
	pthread_mutex_unlock(&events.lock);
	if (!sk)
		log_warn("denial log disabled: %s", why);

	for (;;) {
		struct pollfd pfd[2] = {{.fd = sk ? nl_socket_get_fd(sk) : -1, .events = POLLIN},
		                        {.fd = events.wake_fd, .events = POLLIN}};
		uint64_t now = al_now_ms();

		if (now >= window + 1000) {
			window = now;
			budget = READER_BUDGET;
		}
		unmute_expired();
		if (now >= next_cgroups) {
			poll_all_cgroups(d);
			next_cgroups = now + CGROUP_POLL_MS;
		}
		/* Out of budget: leave the records in the kernel until the next window. */
		if (budget <= 0)
			pfd[0].fd = -1;
		if (poll(pfd, 2, 250) > 0 && pfd[1].revents)
			break; /* events_stop() */
		if (pfd[0].revents && sk && !drain_audit(sk, au, &budget)) {
			log_warn(
			    "denial log: the audit socket failed; no more denials are recorded");
			pthread_mutex_lock(&events.lock);
			events.collecting = false;
			snprintf(events.error, sizeof(events.error), "audit socket failed");
			pthread_mutex_unlock(&events.lock);
			auparse_destroy(au);
			au = NULL;
			nl_socket_free(sk);
			sk = NULL;
		}
	}
	if (au)
		auparse_destroy(au);
	if (sk)
		nl_socket_free(sk);
	return NULL;
}

void events_start(struct daemon *d)
{
	int r;

	pthread_mutex_lock(&events.lock);
	if (events.started) {
		pthread_mutex_unlock(&events.lock);
		return;
	}
	events.started = true;
	events.daemon = d;
	pthread_mutex_unlock(&events.lock);

	/* Rules an earlier airlockd on this state directory left (it died
	 * during a mute): removed before anything else. */
	if (asprintf(&muter.list_path, "%s/audit-mutes", d->host.state_dir) < 0)
		muter.list_path = NULL;
	if (muter.list_path) {
		_cleanup_free_ char *text = NULL;
		if (al_read_file(muter.list_path, 1 << 16, &text, NULL, NULL) == 0)
			for (char *line = text, *next; line && *line; line = next) {
				next = strchr(line, '\n');
				if (next)
					*next++ = '\0';
				uid_t base = (uid_t)strtoul(line, NULL, 10);
				if (base >= AIRLOCK_UID_BASE &&
				    muter.n_active < AL_ARRAY_SIZE(muter.active)) {
					muter.active[muter.n_active++] = base;
					mute_request(base, false);
				}
			}
	}
	muter.running = pthread_create(&muter.thread, NULL, muter_main, NULL) == 0;
	if (!muter.running)
		log_warn("denial log: no thread for muting floods; they are dropped on arrival");
	events.wake_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	r = events.wake_fd < 0 ? errno : pthread_create(&events.thread, NULL, collector, d);
	events.running = r == 0;
	if (r != 0) {
		log_error("cannot start the event collector: %s", strerror(r));
		pthread_mutex_lock(&events.lock);
		snprintf(events.error, sizeof(events.error), "collector thread: %s", strerror(r));
		pthread_mutex_unlock(&events.lock);
	}
}

void events_stop(void)
{
	uint64_t one = 1;

	if (events.running) {
		(void)!write(events.wake_fd, &one, sizeof(one));
		pthread_join(events.thread, NULL);
		events.running = false;
	}
	if (events.wake_fd >= 0) {
		close(events.wake_fd);
		events.wake_fd = -1;
	}
	/* The mutes end with us: the kernel keeps rules after we are gone. */
	pthread_mutex_lock(&events.lock);
	events.stopping = true;
	pthread_cond_broadcast(&events.appended);
	for (size_t i = 0; i < events.n_logs; i++) {
		struct sandbox_events *l = events.logs[i];
		if (l->muted_until) {
			unmute_locked(l, al_now_ms());
			mute_request(l->uid_base, false);
		}
	}
	pthread_mutex_unlock(&events.lock);
	pthread_mutex_lock(&muter.lock);
	muter.stop = true;
	pthread_cond_signal(&muter.cond);
	pthread_mutex_unlock(&muter.lock);
	if (muter.running) {
		/* It may be asleep in the kernel (see above): not for ever. */
		struct timespec until;
		clock_gettime(CLOCK_REALTIME, &until);
		until.tv_sec += 2;
		if (pthread_timedjoin_np(muter.thread, NULL, &until) != 0)
			log_warn("denial log: audit rules may be left for sandboxes that were "
			         "flooding; the next sandbox of each range removes them");
		muter.running = false;
	}
}

void events_forget(const char *id)
{
	uid_t muted_base = 0;
	bool muted = false;

	pthread_mutex_lock(&events.lock);
	for (size_t i = 0; i < events.n_logs; i++) {
		if (!strcmp(events.logs[i]->id, id)) {
			muted = events.logs[i]->muted_until != 0;
			muted_base = events.logs[i]->uid_base;
			free(events.logs[i]);
			events.logs[i] = events.logs[--events.n_logs];
			break;
		}
	}
	pthread_mutex_unlock(&events.lock);
	if (muted)
		mute_request(muted_base, false);
}

/* ---- the answer ---------------------------------------------------------------------------- */

static cJSON *time_json(uint64_t ms)
{
	char buf[40], frac[8];
	time_t t = (time_t)(ms / 1000);
	struct tm tm;

	gmtime_r(&t, &tm);
	strftime(buf, sizeof(buf) - 6, "%Y-%m-%dT%H:%M:%S", &tm);
	snprintf(frac, sizeof(frac), ".%03uZ", (unsigned)(ms % 1000));
	strncat(buf, frac, sizeof(buf) - strlen(buf) - 1);
	return cJSON_CreateString(buf);
}

static cJSON *event_json(const struct event *e)
{
	cJSON *o = cJSON_CreateObject();

	cJSON_AddNumberToObject(o, "seq", (double)e->seq);
	cJSON_AddStringToObject(o, "type", e->type);
	cJSON_AddItemToObject(o, "time", time_json(e->first_ms));
	cJSON_AddNumberToObject(o, "count", (double)e->count);
	if (!strncmp(e->type, "mount_", 6))
		cJSON_AddStringToObject(o, "path", e->path);
	if (!strcmp(e->type, "network_denied")) {
		cJSON_AddStringToObject(o, "destination", e->dest);
		cJSON_AddItemToObject(o, "last_time", time_json(e->last_ms));
	}
	if (!strcmp(e->type, "unrecorded")) {
		/* null while the period goes on */
		if (e->last_ms)
			cJSON_AddItemToObject(o, "last_time", time_json(e->last_ms));
		else
			cJSON_AddNullToObject(o, "last_time");
		return o;
	}
	if (strcmp(e->type, "seccomp") != 0)
		return o;
	cJSON_AddStringToObject(o, "syscall", e->syscall);
	cJSON_AddStringToObject(o, "arch", e->arch);
	cJSON_AddStringToObject(o, "action", e->action);
	if (e->pid > 0)
		cJSON_AddNumberToObject(o, "pid", e->pid);
	else
		cJSON_AddNullToObject(o, "pid");
	cJSON_AddNumberToObject(o, "host_pid", e->host_pid);
	cJSON_AddStringToObject(o, "comm", e->comm);
	cJSON_AddItemToObject(o, "last_time", time_json(e->last_ms));
	return o;
}

int events_json(struct daemon *d, struct sandbox *sb, uint64_t since, cJSON **out,
                struct al_error *err)
{
	_cleanup_cjson_ cJSON *o = cJSON_CreateObject();
	cJSON *list, *denied;
	struct sandbox_events *l;

	if (!o)
		return al_error_set(err, ENOMEM, "out of memory");
	poll_cgroup(d, sb->id);
	cJSON_AddStringToObject(o, "id", sb->id);
	cJSON_AddStringToObject(o, "source", "audit");
	list = cJSON_AddArrayToObject(o, "events");
	denied = cJSON_AddObjectToObject(o, "denied");

	pthread_mutex_lock(&events.lock);
	cJSON_AddBoolToObject(o, "collecting", events.collecting);
	if (events.error[0])
		cJSON_AddStringToObject(o, "error", events.error);
	cJSON_AddNumberToObject(o, "lost", (double)events.lost);
	l = log_get_locked(sb->id, false);
	cJSON_AddNumberToObject(o, "suppressed", l ? (double)l->suppressed : 0);
	cJSON_AddNumberToObject(
	    o, "unrecorded_ms",
	    l ? (double)(l->unrecorded_ms +
	                 (l->muted_until ? al_now_ms() + l->mute_ms - l->muted_until : 0))
	      : 0);
	for (size_t i = 0; l && i < l->n; i++) {
		const struct event *e = &l->ring[(l->head + i) % RING_SIZE];
		if (e->seq > since)
			cJSON_AddItemToArray(list, event_json(e));
	}
	for (size_t i = 0; l && i < l->n_totals; i++)
		cJSON_AddNumberToObject(denied, l->totals[i].syscall, (double)l->totals[i].count);
	pthread_mutex_unlock(&events.lock);
	*out = TAKE_PTR(o);
	return 0;
}

struct follow_entry {
	uint64_t cursor;
	const struct event *e;
	const char *id;
};

static int follow_cmp(const void *a, const void *b)
{
	const struct follow_entry *x = a, *y = b;

	return x->cursor < y->cursor ? -1 : x->cursor > y->cursor;
}

int events_follow(uint64_t *cursor, unsigned wait_ms, size_t max, cJSON **out)
{
	_cleanup_cjson_ cJSON *list = cJSON_CreateArray();
	_cleanup_free_ struct follow_entry *found = NULL;
	struct timespec until;
	size_t n = 0, cap = 0;
	int r = 0;

	if (!list)
		return -ENOMEM;
	clock_gettime(CLOCK_REALTIME, &until);
	until.tv_sec += wait_ms / 1000;
	until.tv_nsec += (long)(wait_ms % 1000) * 1000000L;
	if (until.tv_nsec >= 1000000000L) {
		until.tv_sec++;
		until.tv_nsec -= 1000000000L;
	}
	pthread_mutex_lock(&events.lock);
	if (*cursor == UINT64_MAX)
		*cursor = events.next_cursor;
	while (events.next_cursor <= *cursor && !events.stopping && r == 0)
		r = pthread_cond_timedwait(&events.appended, &events.lock, &until);
	for (size_t i = 0; i < events.n_logs; i++)
		cap += events.logs[i]->n;
	found = cap ? calloc(cap, sizeof(*found)) : NULL;
	if (cap && !found) {
		pthread_mutex_unlock(&events.lock);
		return -ENOMEM;
	}
	for (size_t i = 0; found && i < events.n_logs; i++) {
		const struct sandbox_events *l = events.logs[i];
		for (size_t j = 0; j < l->n; j++) {
			const struct event *e = &l->ring[(l->head + j) % RING_SIZE];
			if (e->cursor > *cursor)
				found[n++] = (struct follow_entry){e->cursor, e, l->id};
		}
	}
	if (n) /* qsort's array may not be NULL, even when empty */
		qsort(found, n, sizeof(*found), follow_cmp);
	for (size_t i = 0; i < n && i < max; i++) {
		cJSON *o = event_json(found[i].e);
		if (!o || !cJSON_AddItemToArray(list, o)) {
			cJSON_Delete(o);
			break;
		}
		cJSON_AddStringToObject(o, "sandbox", found[i].id);
		cJSON_AddNumberToObject(o, "cursor", (double)found[i].cursor);
		*cursor = found[i].cursor;
	}
	r = events.stopping && cJSON_GetArraySize(list) == 0 ? -ESHUTDOWN : 0;
	pthread_mutex_unlock(&events.lock);
	if (r < 0)
		return r;
	*out = TAKE_PTR(list);
	return cJSON_GetArraySize(*out);
}
