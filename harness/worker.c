/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The worker: claim runs from the queue, execute each in a child process, renew the
 * leases, record how each ended.  Why a child per run: a run's crash (or its kill by a
 * lost lease or a cancel) is its own, the lease holder is never stuck inside a model or
 * tool call, and the child is the same code path as `resume`.  The child dies with the
 * worker (PR_SET_PDEATHSIG): a SIGKILLed worker leaves runs whose leases run out and
 * which another worker resumes from their RunState.
 *
 * What the worker makes of a child's end:
 *   exit 0              completed               exit 1, 2  failed
 *   exit 75             lease lost: nothing recorded (given back if still ours)
 *   exit 76             cancelled               killed     given back at once (a retry)
 */
#include "worker.h"

#include "audit.h"
#include "cleanup.h"
#include "db.h"
#include "json.h"
#include "log.h"
#include "queue.h"
#include "reaper.h"
#include "run.h"
#include "runstore_pg.h"
#include "util.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#define LOOP_PAUSE_MS 100
/* Runs are announced (AL_QUEUE_CHANNEL) when queued or released; a lease that ran out
 * is not: the queue is asked this often anyway. */
#define CLAIM_FALLBACK_MS 1000
#define GAUGE_REFRESH_MS 1000
/* The worker's own statements give up on a dead database quickly: it must keep reaping
 * and renewing; its loop tries again on the next pass. */
#define WORKER_RECONNECT_MS 1000
/* How often the node's airlockd is checked for sandboxes of runs that moved away. */
#define REAP_INTERVAL_MS (30 * 1000)

static volatile sig_atomic_t stopping;

static void on_stop(int sig)
{
	(void)sig;
	stopping = 1;
}

struct job {
	pid_t pid;
	struct al_claim claim;
	uint64_t started_ms;
	uint64_t renewed_ms;
	bool lost;       /* renewal found the lease gone: the child was killed */
	bool cancelling; /* killed for a cancel: the clean-up child comes next */
};

/* Histogram buckets, seconds. */
static const double buckets[] = {0.1, 0.5, 1, 2, 5, 10, 30, 60, 300, 1800};
#define NBUCKETS (sizeof(buckets) / sizeof(buckets[0]))

struct histogram {
	unsigned long counts[NBUCKETS];
	unsigned long count;
	double sum;
};

struct metrics {
	pthread_mutex_t lock;
	long queued, running; /* the whole queue's, refreshed by the loop */
	long leased;          /* this worker's */
	unsigned long claimed, completed, failed, cancelled, retried, released, leases_lost;
	struct histogram duration, claim_wait;
};

struct worker {
	const struct al_worker_options *o;
	char id[HOST_NAME_MAX + 32];
	struct al_db db;
	struct job *jobs;
	struct metrics m;
	struct MHD_Daemon *mhd;
};

/* ---- structured logs ---- */

__attribute__((format(printf, 5, 6))) static void wlog(struct worker *w, const char *level,
                                                       const char *event, const struct job *j,
                                                       const char *fmt, ...)
{
	_cleanup_cjson_ cJSON *o = cJSON_CreateObject();
	char ts[32], msg[1024];
	char *text;
	va_list ap;

	al_audit_timestamp(ts);
	msg[0] = '\0';
	if (fmt) {
		va_start(ap, fmt);
		vsnprintf(msg, sizeof(msg), fmt, ap);
		va_end(ap);
	}
	cJSON_AddStringToObject(o, "ts", ts);
	cJSON_AddStringToObject(o, "level", level);
	cJSON_AddStringToObject(o, "worker", w->id);
	cJSON_AddStringToObject(o, "event", event);
	if (j) {
		cJSON_AddStringToObject(o, "run_id", j->claim.run_id);
		cJSON_AddNumberToObject(o, "lease_gen", (double)j->claim.lease_gen);
		if (j->pid > 0)
			cJSON_AddNumberToObject(o, "pid", j->pid);
	}
	if (*msg)
		cJSON_AddStringToObject(o, "msg", msg);
	text = cJSON_PrintUnformatted(o);
	if (text)
		fprintf(stderr, "%s\n", text);
	cJSON_free(text);
}

/* ---- metrics ---- */

static void observe(struct histogram *h, double v)
{
	for (size_t i = 0; i < NBUCKETS; i++)
		if (v <= buckets[i])
			h->counts[i]++;
	h->count++;
	h->sum += v;
}

static void put_histogram(struct al_buf *b, const char *name, const char *help,
                          const struct histogram *h)
{
	char line[256];
	int n;

	n = snprintf(line, sizeof(line), "# HELP %s %s\n# TYPE %s histogram\n", name, help, name);
	al_buf_append(b, line, (size_t)n);
	for (size_t i = 0; i < NBUCKETS; i++) {
		n = snprintf(line, sizeof(line), "%s_bucket{le=\"%g\"} %lu\n", name, buckets[i],
		             h->counts[i]);
		al_buf_append(b, line, (size_t)n);
	}
	n = snprintf(line, sizeof(line), "%s_bucket{le=\"+Inf\"} %lu\n%s_sum %.3f\n%s_count %lu\n",
	             name, h->count, name, h->sum, name, h->count);
	al_buf_append(b, line, (size_t)n);
}

static void put_metric(struct al_buf *b, const char *name, const char *type, const char *help,
                       double v)
{
	char line[384];
	int n = snprintf(line, sizeof(line), "# HELP %s %s\n# TYPE %s %s\n%s %.0f\n", name, help,
	                 name, type, name, v);
	al_buf_append(b, line, (size_t)n);
}

static enum MHD_Result on_metrics(void *cls, struct MHD_Connection *c, const char *url,
                                  const char *method, const char *version, const char *upload_data,
                                  size_t *upload_size, void **ctx)
{
	struct worker *w = cls;
	struct metrics *m = &w->m;
	struct MHD_Response *resp;
	struct al_buf b = {0};
	enum MHD_Result ret;
	bool found = !strcmp(url, "/metrics");

	(void)version, (void)upload_data, (void)upload_size, (void)ctx;
	if (strcmp(method, "GET"))
		found = false;
	if (found) {
		pthread_mutex_lock(&m->lock);
		put_metric(&b, "airlock_runs_queued", "gauge", "Runs waiting in the queue.",
		           (double)m->queued);
		put_metric(&b, "airlock_runs_running", "gauge",
		           "Runs being executed by any worker (leased, or lease expired and not "
		           "yet taken over).",
		           (double)m->running);
		put_metric(&b, "airlock_worker_runs_leased", "gauge",
		           "Runs this worker holds a lease on.", (double)m->leased);
		put_metric(&b, "airlock_worker_runs_claimed_total", "counter",
		           "Runs this worker claimed.", (double)m->claimed);
		put_metric(&b, "airlock_worker_runs_retried_total", "counter",
		           "Claims of a run some worker had claimed before (a take-over).",
		           (double)m->retried);
		put_metric(&b, "airlock_worker_runs_completed_total", "counter",
		           "Runs this worker completed.", (double)m->completed);
		put_metric(&b, "airlock_worker_runs_failed_total", "counter",
		           "Runs that failed under this worker.", (double)m->failed);
		put_metric(&b, "airlock_worker_runs_cancelled_total", "counter",
		           "Runs this worker cancelled.", (double)m->cancelled);
		put_metric(&b, "airlock_worker_runs_released_total", "counter",
		           "Runs given back after their executor died.", (double)m->released);
		put_metric(&b, "airlock_worker_leases_lost_total", "counter",
		           "Leases this worker found taken or gone when renewing.",
		           (double)m->leases_lost);
		put_histogram(&b, "airlock_worker_run_duration_seconds",
		              "Time from claim to the end of the run's executor.", &m->duration);
		put_histogram(&b, "airlock_worker_claim_wait_seconds",
		              "Time from submission to a claim by this worker.", &m->claim_wait);
		pthread_mutex_unlock(&m->lock);
	}
	if (!found || !b.data) {
		al_buf_free(&b);
		resp = MHD_create_response_from_buffer(10, (void *)"not found\n",
		                                       MHD_RESPMEM_PERSISTENT);
		ret = MHD_queue_response(c, MHD_HTTP_NOT_FOUND, resp);
		MHD_destroy_response(resp);
		return ret;
	}
	resp = MHD_create_response_from_buffer(b.len, b.data, MHD_RESPMEM_MUST_FREE);
	MHD_add_response_header(resp, "Content-Type", "text/plain; version=0.0.4");
	ret = MHD_queue_response(c, MHD_HTTP_OK, resp);
	MHD_destroy_response(resp);
	return ret;
}

static int start_metrics(struct worker *w, struct al_error *err)
{
	struct sockaddr_in sin = {.sin_family = AF_INET,
	                          .sin_addr.s_addr = htonl(INADDR_LOOPBACK),
	                          .sin_port = htons((uint16_t)w->o->metrics_port)};

	if (w->o->metrics_port <= 0)
		return 0;
	w->mhd = MHD_start_daemon(MHD_USE_INTERNAL_POLLING_THREAD, 0, NULL, NULL, on_metrics, w,
	                          MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&sin,
	                          MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)10, MHD_OPTION_END);
	if (!w->mhd)
		return al_error_set(err, EADDRINUSE, "cannot listen on 127.0.0.1:%d for metrics",
		                    w->o->metrics_port);
	return 0;
}

/* ---- the children ---- */

static int spawn(struct worker *w, struct job *j, bool cancel)
{
	char gen[24];
	const char *argv[24];
	int n = 0;
	pid_t parent = getpid(), pid;

	snprintf(gen, sizeof(gen), "%lld", j->claim.lease_gen);
	argv[n++] = "airlock-harness";
	argv[n++] = "execute";
	argv[n++] = j->claim.run_id;
	argv[n++] = "--db";
	argv[n++] = w->o->db_url;
	argv[n++] = "--lease-gen";
	argv[n++] = gen;
	argv[n++] = "--work-dir";
	argv[n++] = w->o->work_dir;
	argv[n++] = "--node";
	argv[n++] = w->o->node;
	if (w->o->provider_socket) {
		argv[n++] = "--provider-socket";
		argv[n++] = w->o->provider_socket;
	}
	if (w->o->credentials) {
		argv[n++] = "--credentials";
		argv[n++] = w->o->credentials;
	}
	if (cancel)
		argv[n++] = "--cancel";
	argv[n] = NULL;

	fflush(NULL);
	pid = fork();
	if (pid < 0)
		return -errno;
	if (pid == 0) {
		sigset_t none;

		/* The run dies with its worker: its lease then runs out, and another
		 * worker takes it over.  Checked after: the worker may be gone already. */
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		if (getppid() != parent)
			_exit(127);
		sigemptyset(&none);
		sigprocmask(SIG_SETMASK, &none, NULL);
		signal(SIGTERM, SIG_DFL);
		signal(SIGINT, SIG_DFL);
		execv("/proc/self/exe", (char *const *)argv);
		_exit(127);
	}
	j->pid = pid;
	j->started_ms = al_now_ms();
	j->renewed_ms = j->started_ms;
	return 0;
}

static struct job *free_slot(struct worker *w)
{
	for (int i = 0; i < w->o->concurrency; i++)
		if (!w->jobs[i].claim.run_id)
			return &w->jobs[i];
	return NULL;
}

static int jobs_running(const struct worker *w)
{
	int n = 0;

	for (int i = 0; i < w->o->concurrency; i++)
		n += w->jobs[i].claim.run_id != NULL;
	return n;
}

static void forget(struct worker *w, struct job *j)
{
	al_claim_clear(&j->claim);
	memset(j, 0, sizeof(*j));
	pthread_mutex_lock(&w->m.lock);
	w->m.leased--;
	pthread_mutex_unlock(&w->m.lock);
}

static void finish(struct worker *w, struct job *j, const char *status, unsigned long *counter)
{
	struct al_error err = AL_ERROR_INIT;
	int rc = al_queue_finish(&w->db, j->claim.run_id, j->claim.lease_gen, status, &err);

	if (rc < 0)
		/* The lease runs out and another worker resumes the run, which finds it
		 * ended and records that: nothing is lost. */
		wlog(w, "error", "finish_failed", j, "record %s: %s", status, err.msg);
	else if (rc == 0)
		wlog(w, "warn", "lease_lost", j,
		     "the run ended (%s) but its lease was taken: "
		     "not recorded",
		     status);
	else {
		wlog(w, "info", status, j, NULL);
		pthread_mutex_lock(&w->m.lock);
		(*counter)++;
		pthread_mutex_unlock(&w->m.lock);
	}
}

static void on_child_exit(struct worker *w, struct job *j, int status)
{
	struct al_error err = AL_ERROR_INIT;
	double secs = (double)(al_now_ms() - j->started_ms) / 1000.0;

	pthread_mutex_lock(&w->m.lock);
	observe(&w->m.duration, secs);
	pthread_mutex_unlock(&w->m.lock);
	j->pid = 0;
	if (WIFEXITED(status)) {
		int code = WEXITSTATUS(status);
		if (code == AL_EXIT_OK)
			finish(w, j, "completed", &w->m.completed);
		else if (code == AL_EXIT_LEASE_LOST) {
			wlog(w, "warn", "lease_lost", j,
			     "the executor's writes were refused or it could not start");
			pthread_mutex_lock(&w->m.lock);
			w->m.leases_lost++;
			pthread_mutex_unlock(&w->m.lock);
			/* Refused because the lease ran out while nobody took the run yet
			 * (the generation is still ours): give it back now rather than
			 * when the renewed lease runs out.  A no-op when it was taken. */
			if (al_queue_release(&w->db, j->claim.run_id, j->claim.lease_gen, &err) < 0)
				wlog(w, "error", "release_failed", j, "%s", err.msg);
		} else if (code == AL_EXIT_CANCELLED)
			finish(w, j, "cancelled", &w->m.cancelled);
		else
			finish(w, j, "failed", &w->m.failed);
		forget(w, j);
		return;
	}
	if (j->lost) {
		forget(w, j);
		return;
	}
	if (j->cancelling && !stopping) {
		wlog(w, "info", "cancel", j, "executor stopped; cleaning up");
		if (spawn(w, j, true) == 0)
			return;
	}
	wlog(w, "warn", "executor_died", j, "killed by signal %d; giving the run back",
	     WIFSIGNALED(status) ? WTERMSIG(status) : 0);
	if (al_queue_release(&w->db, j->claim.run_id, j->claim.lease_gen, &err) < 0)
		wlog(w, "error", "release_failed", j, "%s", err.msg);
	pthread_mutex_lock(&w->m.lock);
	w->m.released++;
	pthread_mutex_unlock(&w->m.lock);
	forget(w, j);
}

static void reap(struct worker *w)
{
	int status;
	pid_t pid;

	while ((pid = waitpid(-1, &status, WNOHANG)) > 0)
		for (int i = 0; i < w->o->concurrency; i++)
			if (w->jobs[i].pid == pid) {
				on_child_exit(w, &w->jobs[i], status);
				break;
			}
}

static void renew(struct worker *w)
{
	uint64_t now = al_now_ms();

	for (int i = 0; i < w->o->concurrency; i++) {
		struct job *j = &w->jobs[i];
		struct al_error err = AL_ERROR_INIT;
		bool cancel = false;
		int rc;

		if (!j->claim.run_id || j->pid <= 0 || j->lost ||
		    now - j->renewed_ms < (uint64_t)w->o->lease_ms / 3)
			continue;
		rc = al_queue_renew(&w->db, j->claim.run_id, j->claim.lease_gen, w->o->lease_ms,
		                    &cancel, &err);
		if (rc < 0) {
			wlog(w, "warn", "renew_failed", j, "%s", err.msg);
			continue;
		}
		if (rc == 0) {
			/* Paused or cut off past the lease, and the run was taken over: the
			 * executor's writes are refused anyway; stop it doing work. */
			wlog(w, "warn", "lease_lost", j,
			     "lease generation %lld is no longer ours; stopping the executor",
			     j->claim.lease_gen);
			j->lost = true;
			kill(j->pid, SIGKILL);
			pthread_mutex_lock(&w->m.lock);
			w->m.leases_lost++;
			pthread_mutex_unlock(&w->m.lock);
			continue;
		}
		j->renewed_ms = now;
		if (cancel && !j->cancelling) {
			wlog(w, "info", "cancel_requested", j, "stopping the executor");
			j->cancelling = true;
			kill(j->pid, SIGKILL);
		}
	}
}

static void gave_up(void *ctx, const char *run_id, int attempts)
{
	struct worker *w = ctx;

	wlog(w, "error", "gave_up", NULL, "run %s failed after %d attempts", run_id, attempts);
	pthread_mutex_lock(&w->m.lock);
	w->m.failed++;
	pthread_mutex_unlock(&w->m.lock);
}

static void claim(struct worker *w)
{
	struct job *j;
	struct al_error gerr = AL_ERROR_INIT;

	if (!stopping && free_slot(w) &&
	    al_queue_give_up(&w->db, w->o->max_attempts, gave_up, w, &gerr) < 0)
		wlog(w, "warn", "claim_failed", NULL, "%s", gerr.msg);

	while (!stopping && (j = free_slot(w))) {
		struct al_error err = AL_ERROR_INIT;
		int rc = al_queue_claim(&w->db, w->id, w->o->lease_ms, &j->claim, &err);

		if (rc < 0) {
			wlog(w, "warn", "claim_failed", NULL, "%s", err.msg);
			return;
		}
		if (rc == 0)
			return;
		pthread_mutex_lock(&w->m.lock);
		w->m.claimed++;
		w->m.leased++;
		if (j->claim.attempts > 1)
			w->m.retried++;
		observe(&w->m.claim_wait, j->claim.queued_seconds);
		pthread_mutex_unlock(&w->m.lock);
		wlog(w, "info", "claim", j, "attempt %d%s", j->claim.attempts,
		     j->claim.cancel ? ", cancelled: cleaning up" : "");
		if (spawn(w, j, j->claim.cancel) < 0) {
			wlog(w, "error", "spawn_failed", j, "%s", strerror(errno));
			al_queue_give_back(&w->db, j->claim.run_id, j->claim.lease_gen, &err);
			forget(w, j);
			return;
		}
	}
}

static void reap_sandboxes(struct worker *w)
{
	struct al_error err = AL_ERROR_INIT;
	int n = 0;

	if (!w->o->provider_socket)
		return;
	if (al_reap_sandboxes(&w->db, w->o->provider_socket, w->o->node, &n, &err) < 0)
		wlog(w, "warn", "reap_failed", NULL, "%s", err.msg);
	else if (n > 0)
		wlog(w, "info", "reaped", NULL,
		     "deleted %d sandbox(es) of runs that no longer "
		     "need them on this node",
		     n);
}

static void refresh_gauges(struct worker *w)
{
	struct al_error err = AL_ERROR_INIT;
	long q = 0, r = 0;

	if (al_queue_counts(&w->db, &q, &r, &err) < 0)
		return;
	pthread_mutex_lock(&w->m.lock);
	w->m.queued = q;
	w->m.running = r;
	pthread_mutex_unlock(&w->m.lock);
}

/* Stopped (SIGTERM): the runs go back to the queue at once, for another worker. */
static void shut_down(struct worker *w)
{
	for (int i = 0; i < w->o->concurrency; i++)
		if (w->jobs[i].pid > 0)
			kill(w->jobs[i].pid, SIGKILL);
	for (int i = 0; i < w->o->concurrency; i++) {
		struct job *j = &w->jobs[i];
		struct al_error err = AL_ERROR_INIT;
		int status;

		if (j->pid <= 0)
			continue;
		if (waitpid(j->pid, &status, 0) == j->pid && WIFEXITED(status)) {
			on_child_exit(w, j, status);
			continue;
		}
		if (!j->lost)
			al_queue_give_back(&w->db, j->claim.run_id, j->claim.lease_gen, &err);
		wlog(w, "info", "released", j, "worker stopping");
		forget(w, j);
	}
}

int al_worker_main(const struct al_worker_options *o)
{
	struct worker w = {.o = o};
	struct al_error err = AL_ERROR_INIT;
	struct sigaction sa = {.sa_handler = on_stop};
	char host[HOST_NAME_MAX + 1] = "";
	uint64_t gauges_ms = 0, reaped_ms = 0, claimed_ms = 0;
	bool announced = false;
	int r;

	al_log_set_json(true);
	gethostname(host, sizeof(host) - 1);
	snprintf(w.id, sizeof(w.id), "%s:%d", o->node ? o->node : host, (int)getpid());
	pthread_mutex_init(&w.m.lock, NULL);
	w.jobs = calloc((size_t)o->concurrency, sizeof(*w.jobs));
	if (!w.jobs)
		return AL_EXIT_FAILED;
	if (al_db_connect(&w.db, o->db_url, "airlock-harness worker", &err) < 0 ||
	    al_db_migrate(&w.db, &err) < 0 || al_db_listen(&w.db, AL_QUEUE_CHANNEL, &err) < 0 ||
	    start_metrics(&w, &err) < 0) {
		wlog(&w, "error", "start_failed", NULL, "%s", err.msg);
		al_db_close(&w.db);
		free(w.jobs);
		return AL_EXIT_FAILED;
	}
	w.db.reconnect_ms = WORKER_RECONNECT_MS;
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	wlog(&w, "info", "start", NULL,
	     "node %s, concurrency %d, lease %ld ms, max attempts %d, schema version %d", o->node,
	     o->concurrency, o->lease_ms, o->max_attempts, al_db_schema_version());
	while (!stopping) {
		int running = jobs_running(&w);
		reap(&w);
		renew(&w);
		/* Asked when a run was announced, a slot came free, or it has been a while. */
		if (announced || jobs_running(&w) < running ||
		    al_now_ms() - claimed_ms >= CLAIM_FALLBACK_MS) {
			claim(&w);
			claimed_ms = al_now_ms();
		}
		if (al_now_ms() - reaped_ms >= REAP_INTERVAL_MS) {
			reap_sandboxes(&w);
			reaped_ms = al_now_ms();
		}
		if (al_now_ms() - gauges_ms >= GAUGE_REFRESH_MS) {
			refresh_gauges(&w);
			gauges_ms = al_now_ms();
		}
		r = al_db_wait_notify(&w.db, LOOP_PAUSE_MS, &err);
		announced = r > 0;
		if (r < 0) {
			/* The next statement reconnects (and listens again). */
			al_error_clear(&err);
			usleep(LOOP_PAUSE_MS * 1000);
		}
	}
	wlog(&w, "info", "stop", NULL, NULL);
	shut_down(&w);
	if (w.mhd)
		MHD_stop_daemon(w.mhd);
	al_db_close(&w.db);
	free(w.jobs);
	return AL_EXIT_OK;
}

/* ---- the child ---- */

int al_execute_main(const struct al_execute_options *o)
{
	struct al_db db;
	struct al_error err = AL_ERROR_INIT;
	_cleanup_(al_run_store_freep) struct al_run_store *store = NULL;
	_cleanup_pgresult_ PGresult *res = NULL;
	_cleanup_free_ char *dir = NULL;
	_cleanup_free_ char *log_path = NULL;
	struct al_run_options ro = {0};
	const char *params[] = {o->run_id};
	int rc, fd;

	al_log_set_json(true);
	if (asprintf(&dir, "%s/%s", o->work_dir, o->run_id) < 0 ||
	    asprintf(&log_path, "%s/%s.log", o->work_dir, o->run_id) < 0)
		return AL_EXIT_FAILED;
	/* The run's progress lines (stdout) go to a log beside its directory; its warnings
	 * and refused writes stay on stderr, the worker's log. */
	fd = open(log_path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
	if (fd >= 0) {
		dup2(fd, STDOUT_FILENO);
		close(fd);
	}
	if (al_db_connect(&db, o->db_url, "airlock-harness execute", &err) < 0) {
		log_error("run %s: %s", o->run_id, err.msg);
		al_db_close(&db);
		/* Not the run's failure: the lease runs out and the run is tried again. */
		return AL_EXIT_LEASE_LOST;
	}
	rc = al_db_exec(&db,
	                "SELECT task, task_dir, state IS NOT NULL FROM airlock_runs "
	                "WHERE run_id = $1",
	                1, params, NULL, NULL, 0, &res, &err);
	if (rc == 0 && PQntuples(res) != 1)
		rc = al_error_set(&err, ENOENT, "no run %s in the database", o->run_id);
	if (rc == 0)
		rc = al_run_store_pg_open(&db, o->run_id, o->lease_gen, dir, &store, &err);
	if (rc < 0) {
		log_error("run %s: %s", o->run_id, err.msg);
		al_db_close(&db);
		return AL_EXIT_LEASE_LOST;
	}
	ro.store = store;
	ro.credentials = o->credentials;
	ro.provider_socket = o->provider_socket;
	ro.node = o->node;
	ro.run_id = o->run_id;
	ro.task_text = PQgetvalue(res, 0, 0);
	ro.task_dir = PQgetvalue(res, 0, 1);
	if (o->cancel)
		rc = al_run_cancel(&ro);
	else if (PQgetvalue(res, 0, 2)[0] == 't')
		rc = al_run_resume(&ro);
	else
		rc = al_run_start(&ro);
	fflush(NULL);
	if (store->lease_lost)
		rc = AL_EXIT_LEASE_LOST;
	else if (o->cancel && rc == AL_EXIT_OK)
		rc = AL_EXIT_CANCELLED;
	PQclear(TAKE_PTR(res));
	al_run_store_free(TAKE_PTR(store));
	al_db_close(&db);
	return rc;
}
