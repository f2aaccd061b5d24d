/* SPDX-License-Identifier: Apache-2.0 */
/*
 * airlock-bench: the timing half of bench/run.
 *
 * bench/run (Python) sets peers up and tears them down; everything that is
 * timed runs here, in C, so the figures do not include an interpreter's
 * start-up or its HTTP stack.  Each mode prints one JSON object on stdout
 * with every sample in milliseconds; statistics are bench/run's job.
 *
 *   spawn       fork+exec+wait of a command (cold starts, peers' exec)
 *   create      POST /v1/sandboxes over one kept-open connection, then DELETE
 *   exec        POST /v1/sandboxes/ID/exec {"argv":["/bin/true"]}, kept-open
 *   throughput  exec from C concurrent clients across many sandboxes
 *
 * HTTP is libcurl on the Unix socket; a handle is reused, so libcurl keeps
 * its connection alive between requests exactly as an SDK would.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <pthread.h>
#include <sched.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cjson/cJSON.h>
#include <curl/curl.h>

#include "cleanup.h"
#include "json.h"
#include "error.h"
#include "util.h"

extern char **environ;

static double ms_since(uint64_t start_ns)
{
	return (double)(al_now_ns() - start_ns) / 1e6;
}

static void sleep_ms(unsigned ms)
{
	struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000L};

	while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
		;
}

/* Samples of one series, printed as a JSON array. */
struct series {
	double *v;
	size_t n, cap;
};

static int series_add(struct series *s, double x)
{
	if (s->n == s->cap) {
		size_t cap = s->cap ? s->cap * 2 : 256;
		double *v = realloc(s->v, cap * sizeof(*v));
		if (!v)
			return -ENOMEM;
		s->v = v;
		s->cap = cap;
	}
	s->v[s->n++] = x;
	return 0;
}

static void series_free(struct series *s)
{
	free(s->v);
	*s = (struct series){0};
}

static cJSON *series_json(const struct series *s)
{
	cJSON *a = cJSON_CreateArray();

	for (size_t i = 0; a && i < s->n; i++)
		cJSON_AddItemToArray(a, cJSON_CreateNumber((double)(int64_t)(s->v[i] * 1e4) / 1e4));
	return a;
}

static int print_json(cJSON *o)
{
	_cleanup_free_ char *text = cJSON_PrintUnformatted(o);

	if (!text)
		return -ENOMEM;
	puts(text);
	return fflush(stdout) == 0 ? 0 : -errno;
}

/* ---- HTTP on the Unix socket ----------------------------------------------------------- */

struct http {
	CURL *curl;
	struct curl_slist *headers;
	struct al_buf body;
	char url[512];
};

static size_t on_body(char *data, size_t size, size_t n, void *arg)
{
	struct http *h = arg;

	return al_buf_append(&h->body, data, size * n) < 0 ? 0 : size * n;
}

static int http_open(struct http *h, const char *socket_path, struct al_error *err)
{
	*h = (struct http){0};
	h->curl = curl_easy_init();
	h->headers = curl_slist_append(NULL, "Content-Type: application/json");
	if (!h->curl || !h->headers)
		return al_error_set(err, ENOMEM, "cannot set up libcurl");
	curl_easy_setopt(h->curl, CURLOPT_UNIX_SOCKET_PATH, socket_path);
	curl_easy_setopt(h->curl, CURLOPT_HTTPHEADER, h->headers);
	curl_easy_setopt(h->curl, CURLOPT_WRITEFUNCTION, on_body);
	curl_easy_setopt(h->curl, CURLOPT_WRITEDATA, h);
	curl_easy_setopt(h->curl, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(h->curl, CURLOPT_TIMEOUT, 120L);
	return 0;
}

static void http_close(struct http *h)
{
	if (h->curl)
		curl_easy_cleanup(h->curl);
	curl_slist_free_all(h->headers);
	al_buf_free(&h->body);
	*h = (struct http){0};
}

/* One request; the reply body is left NUL-terminated in h->body. */
static int http_call(struct http *h, const char *method, const char *path, const char *body,
                     long expect, struct al_error *err)
{
	long status = 0;
	CURLcode rc;

	h->body.len = 0;
	snprintf(h->url, sizeof(h->url), "http://localhost%s", path);
	curl_easy_setopt(h->curl, CURLOPT_URL, h->url);
	if (body) {
		curl_easy_setopt(h->curl, CURLOPT_POSTFIELDS, body);
		curl_easy_setopt(h->curl, CURLOPT_POSTFIELDSIZE, (long)strlen(body));
	} else {
		curl_easy_setopt(h->curl, CURLOPT_HTTPGET, 1L);
	}
	curl_easy_setopt(h->curl, CURLOPT_CUSTOMREQUEST, method);
	rc = curl_easy_perform(h->curl);
	if (rc != CURLE_OK)
		return al_error_set(err, EIO, "%s %s: %s", method, path, curl_easy_strerror(rc));
	if (al_buf_append(&h->body, "", 1) < 0)
		return al_error_set(err, ENOMEM, "out of memory");
	h->body.len--;
	curl_easy_getinfo(h->curl, CURLINFO_RESPONSE_CODE, &status);
	if (status != expect)
		return al_error_set(err, EIO, "%s %s: HTTP %ld: %.300s", method, path, status,
		                    h->body.data);
	return 0;
}

/* POST .../exec of /bin/true and check that it ran and exited 0. */
static int exec_true(struct http *h, const char *path, struct al_error *err)
{
	static const char body[] = "{\"argv\":[\"/bin/true\"]}";
	_cleanup_cjson_ cJSON *o = NULL;
	const cJSON *code;
	int r;

	r = http_call(h, "POST", path, body, 200, err);
	if (r < 0)
		return r;
	o = cJSON_ParseWithLength(h->body.data, h->body.len);
	code = cJSON_GetObjectItemCaseSensitive(o, "exit_code");
	if (!cJSON_IsNumber(code) || code->valueint != 0)
		return al_error_set(err, EIO, "POST %s: /bin/true did not exit 0: %.300s", path,
		                    h->body.data);
	return 0;
}

/* ---- spawn ----------------------------------------------------------------------------- */

/*
 * crun 1.8 refuses a hybrid cgroup layout; it runs happily when the cgroup2
 * tree looks controller-less, so peers may be timed in a private mount
 * namespace where an empty file hides /sys/fs/cgroup/unified/cgroup.controllers.
 */
static int bind_over(const char *spec, struct al_error *err)
{
	_cleanup_free_ char *copy = strdup(spec);
	char *eq = copy ? strchr(copy, '=') : NULL;

	if (!eq)
		return al_error_set(err, EINVAL, "--bind-over wants TARGET=SOURCE, got '%s'", spec);
	*eq = '\0';
	if (mount(eq + 1, copy, NULL, MS_BIND, NULL) < 0)
		return al_error_errno(err, "bind %s over %s", eq + 1, copy);
	return 0;
}

static int private_mount_ns(struct al_error *err)
{
	if (unshare(CLONE_NEWNS) < 0)
		return al_error_errno(err, "unshare(CLONE_NEWNS)");
	if (mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0)
		return al_error_errno(err, "make / private");
	return 0;
}

/* Run argv once, stdout to /dev/null, stderr kept for the error message. */
static int spawn_once(char **argv, int errfd, double *ms, struct al_error *err)
{
	posix_spawn_file_actions_t fa;
	uint64_t t0;
	pid_t pid;
	int status, r;

	if (ftruncate(errfd, 0) < 0 || lseek(errfd, 0, SEEK_SET) < 0)
		return al_error_errno(err, "reset stderr buffer");
	posix_spawn_file_actions_init(&fa);
	posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
	posix_spawn_file_actions_addopen(&fa, 1, "/dev/null", O_WRONLY, 0);
	posix_spawn_file_actions_adddup2(&fa, errfd, 2);
	t0 = al_now_ns();
	r = posix_spawnp(&pid, argv[0], &fa, NULL, argv, environ);
	posix_spawn_file_actions_destroy(&fa);
	if (r != 0)
		return al_error_set(err, r, "spawn %s: %s", argv[0], strerror(r));
	while (waitpid(pid, &status, 0) < 0)
		if (errno != EINTR)
			return al_error_errno(err, "waitpid %s", argv[0]);
	*ms = ms_since(t0);
	if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
		char msg[600] = "";
		ssize_t n = pread(errfd, msg, sizeof(msg) - 1, 0);
		msg[n > 0 ? n : 0] = '\0';
		return al_error_set(err, EIO, "%s exited with status 0x%x: %s", argv[0], status,
		                    msg);
	}
	return 0;
}

struct opts {
	unsigned n, warmup, gap_ms, clients;
	bool exec_between;
	double seconds;
	const char *socket_path, *sandbox, *sandboxes, *body;
	const char *bind[8];
	size_t n_bind;
};

static int mode_spawn(const struct opts *o, char **argv, struct al_error *err)
{
	_cleanup_cjson_ cJSON *out = cJSON_CreateObject();
	_cleanup_close_ int errfd = memfd_create("stderr", MFD_CLOEXEC);
	struct series s = {0};
	int r = 0;

	if (errfd < 0)
		return al_error_errno(err, "memfd_create");
	if (o->n_bind > 0) {
		r = private_mount_ns(err);
		for (size_t i = 0; i < o->n_bind && r == 0; i++)
			r = bind_over(o->bind[i], err);
		if (r < 0)
			return r;
	}
	for (unsigned i = 0; i < o->warmup + o->n && r == 0; i++) {
		double ms = 0;
		if (o->gap_ms)
			sleep_ms(o->gap_ms);
		r = spawn_once(argv, errfd, &ms, err);
		if (r == 0 && i >= o->warmup && series_add(&s, ms) < 0)
			r = al_error_set(err, ENOMEM, "out of memory");
	}
	if (r == 0) {
		cJSON_AddItemToObject(out, "samples_ms", series_json(&s));
		r = print_json(out);
	}
	series_free(&s);
	return r;
}

/* ---- API modes ---------------------------------------------------------------------------- */

static int mode_create(const struct opts *o, struct al_error *err)
{
	_cleanup_cjson_ cJSON *out = cJSON_CreateObject();
	struct series create = {0}, destroy = {0}, exec = {0}, cycle = {0};
	struct http h;
	int r;

	r = http_open(&h, o->socket_path, err);
	for (unsigned i = 0; r == 0 && i < o->warmup + o->n; i++) {
		_cleanup_cjson_ cJSON *sb = NULL;
		const cJSON *id;
		char path[128];
		double c_ms, d_ms, e_ms = 0;
		uint64_t t0;

		if (o->gap_ms)
			sleep_ms(o->gap_ms);
		t0 = al_now_ns();
		/* The summary view: an SDK that creates wants the id, not the
		 * inspect's readout (docs/api.md). */
		r = http_call(&h, "POST", "/v1/sandboxes?view=summary", o->body ? o->body : "{}",
		              201, err);
		c_ms = ms_since(t0);
		if (r < 0)
			break;
		sb = cJSON_ParseWithLength(h.body.data, h.body.len);
		id = cJSON_GetObjectItemCaseSensitive(sb, "id");
		if (!cJSON_IsString(id)) {
			r = al_error_set(err, EIO, "create: no id in %.200s", h.body.data);
			break;
		}
		if (o->exec_between) {
			snprintf(path, sizeof(path), "/v1/sandboxes/%s/exec", id->valuestring);
			t0 = al_now_ns();
			r = exec_true(&h, path, err);
			if (r < 0)
				break;
			e_ms = ms_since(t0);
		}
		/* As `airlock run` does: answered once killed, torn down after. */
		snprintf(path, sizeof(path), "/v1/sandboxes/%s?wait=0", id->valuestring);
		t0 = al_now_ns();
		r = http_call(&h, "DELETE", path, NULL, 200, err);
		d_ms = ms_since(t0);
		if (r == 0 && i >= o->warmup &&
		    (series_add(&create, c_ms) < 0 || series_add(&destroy, d_ms) < 0 ||
		     (o->exec_between &&
		      (series_add(&exec, e_ms) < 0 || series_add(&cycle, c_ms + e_ms + d_ms) < 0))))
			r = al_error_set(err, ENOMEM, "out of memory");
	}
	if (r == 0) {
		cJSON_AddItemToObject(out, "samples_ms", series_json(&create));
		cJSON_AddItemToObject(out, "destroy_samples_ms", series_json(&destroy));
		if (o->exec_between) {
			cJSON_AddItemToObject(out, "exec_samples_ms", series_json(&exec));
			cJSON_AddItemToObject(out, "cycle_samples_ms", series_json(&cycle));
		}
		r = print_json(out);
	}
	series_free(&create);
	series_free(&destroy);
	series_free(&exec);
	series_free(&cycle);
	http_close(&h);
	return r;
}

static int mode_exec(const struct opts *o, struct al_error *err)
{
	_cleanup_cjson_ cJSON *out = cJSON_CreateObject();
	struct series s = {0};
	char path[128];
	struct http h;
	int r;

	if (!o->sandbox)
		return al_error_set(err, EINVAL, "exec needs --sandbox ID");
	snprintf(path, sizeof(path), "/v1/sandboxes/%s/exec", o->sandbox);
	r = http_open(&h, o->socket_path, err);
	for (unsigned i = 0; r == 0 && i < o->warmup + o->n; i++) {
		uint64_t t0 = al_now_ns();
		double ms = 0;

		r = exec_true(&h, path, err);
		ms = ms_since(t0);
		if (r == 0 && i >= o->warmup && series_add(&s, ms) < 0)
			r = al_error_set(err, ENOMEM, "out of memory");
	}
	if (r == 0) {
		cJSON_AddItemToObject(out, "samples_ms", series_json(&s));
		r = print_json(out);
	}
	series_free(&s);
	http_close(&h);
	return r;
}

struct client {
	pthread_t thread;
	unsigned index;
	const struct opts *o;
	char **ids;
	size_t n_ids;
	uint64_t warm_until, stop_at; /* ns */
	struct series lat;
	unsigned errors;
	struct al_error err;
};

static void *client_main(void *arg)
{
	struct client *c = arg;
	struct http h;

	if (http_open(&h, c->o->socket_path, &c->err) < 0) {
		c->errors++;
		return NULL;
	}
	for (size_t k = 0;; k++) {
		const char *id = c->ids[(c->index + k * c->o->clients) % c->n_ids];
		uint64_t t0 = al_now_ns();
		char path[128];

		if (t0 >= c->stop_at)
			break;
		snprintf(path, sizeof(path), "/v1/sandboxes/%s/exec", id);
		if (exec_true(&h, path, &c->err) < 0) {
			c->errors++;
			continue;
		}
		if (t0 >= c->warm_until && series_add(&c->lat, ms_since(t0)) < 0)
			c->errors++;
	}
	http_close(&h);
	return NULL;
}

static int mode_throughput(const struct opts *o, struct al_error *err)
{
	_cleanup_cjson_ cJSON *out = cJSON_CreateObject();
	_cleanup_free_ char *list = o->sandboxes ? strdup(o->sandboxes) : NULL;
	_cleanup_free_ struct client *clients = NULL;
	_cleanup_free_ char **ids = NULL;
	struct series all = {0};
	size_t n_ids = 0;
	unsigned errors = 0;
	uint64_t warm_until, stop_at;
	char *save = NULL;
	int r = 0;

	if (!list || !o->clients)
		return al_error_set(err, EINVAL,
		                    "throughput needs --sandboxes ID,... and --clients");
	ids = calloc(strlen(list) / 2 + 2, sizeof(char *));
	clients = calloc(o->clients, sizeof(*clients));
	if (!ids || !clients)
		return al_error_set(err, ENOMEM, "out of memory");
	for (char *t = strtok_r(list, ",", &save); t; t = strtok_r(NULL, ",", &save))
		ids[n_ids++] = t;
	if (!n_ids)
		return al_error_set(err, EINVAL, "--sandboxes is empty");
	/* One second of warm-up: connections open, thread stacks and caches settle. */
	warm_until = al_now_ns() + 1000000000ULL;
	stop_at = warm_until + (uint64_t)(o->seconds * 1e9);
	for (unsigned i = 0; i < o->clients; i++) {
		clients[i] = (struct client){.index = i,
		                             .o = o,
		                             .ids = ids,
		                             .n_ids = n_ids,
		                             .warm_until = warm_until,
		                             .stop_at = stop_at};
		if (pthread_create(&clients[i].thread, NULL, client_main, &clients[i]) != 0)
			return al_error_set(err, EAGAIN, "cannot start client thread %u", i);
	}
	for (unsigned i = 0; i < o->clients; i++) {
		pthread_join(clients[i].thread, NULL);
		errors += clients[i].errors;
		for (size_t k = 0; k < clients[i].lat.n && r == 0; k++)
			if (series_add(&all, clients[i].lat.v[k]) < 0)
				r = al_error_set(err, ENOMEM, "out of memory");
		if (clients[i].errors && !err->code)
			*err = clients[i].err;
		series_free(&clients[i].lat);
	}
	if (r == 0 && errors)
		r = al_error_prefix(err, "%u of the requests failed", errors);
	if (r == 0) {
		cJSON_AddNumberToObject(out, "clients", o->clients);
		cJSON_AddNumberToObject(out, "sandboxes", (double)n_ids);
		cJSON_AddNumberToObject(out, "seconds", o->seconds);
		cJSON_AddNumberToObject(out, "requests", (double)all.n);
		cJSON_AddNumberToObject(out, "per_second", (double)all.n / o->seconds);
		cJSON_AddItemToObject(out, "samples_ms", series_json(&all));
		r = print_json(out);
	}
	series_free(&all);
	return r;
}

/* ---- main ---------------------------------------------------------------------------------- */

static const char usage[] =
    "Usage: airlock-bench MODE [OPTIONS] [-- CMD ARG...]\n"
    "\n"
    "Modes (each prints one JSON object with samples in milliseconds):\n"
    "  spawn       time fork+exec+wait of CMD\n"
    "  create      time POST /v1/sandboxes (create-to-ready), then DELETE\n"
    "  exec        time exec of /bin/true in --sandbox over one kept-open connection\n"
    "  throughput  exec of /bin/true from --clients threads across --sandboxes\n"
    "\n"
    "Options:\n"
    "  -n N                 timed samples (default 50)\n"
    "  -w N                 untimed warm-up runs first (default 3)\n"
    "      --gap-ms MS      idle time before each sample (default 0)\n"
    "      --bind-over T=S  spawn only: run in a private mount namespace with S bound over T\n"
    "  -s, --socket PATH    airlockd's socket (API modes)\n"
    "      --sandbox ID     exec: the sandbox\n"
    "      --sandboxes LIST throughput: comma-separated sandbox ids\n"
    "      --clients N      throughput: concurrent clients (default 8)\n"
    "      --seconds S      throughput: measured seconds after 1 s of warm-up (default 5)\n"
    "      --body JSON      create: request body (default {})\n"
    "      --exec           create: exec /bin/true between create and DELETE (timed apart)\n";

int main(int argc, char **argv)
{
	enum {
		OPT_GAP = 0x100,
		OPT_BIND,
		OPT_SANDBOX,
		OPT_SANDBOXES,
		OPT_CLIENTS,
		OPT_SECONDS,
		OPT_BODY,
		OPT_EXEC
	};
	static const struct option longopts[] = {
	    {"gap-ms", required_argument, NULL, OPT_GAP},
	    {"bind-over", required_argument, NULL, OPT_BIND},
	    {"socket", required_argument, NULL, 's'},
	    {"sandbox", required_argument, NULL, OPT_SANDBOX},
	    {"sandboxes", required_argument, NULL, OPT_SANDBOXES},
	    {"clients", required_argument, NULL, OPT_CLIENTS},
	    {"seconds", required_argument, NULL, OPT_SECONDS},
	    {"body", required_argument, NULL, OPT_BODY},
	    {"exec", no_argument, NULL, OPT_EXEC},
	    {"help", no_argument, NULL, 'h'},
	    {NULL, 0, NULL, 0},
	};
	struct opts o = {.n = 50, .warmup = 3, .clients = 8, .seconds = 5};
	struct al_error err = AL_ERROR_INIT;
	const char *mode;
	int c, r;

	if (argc < 2 || argv[1][0] == '-') {
		fputs(usage, argc < 2 ? stderr : stdout);
		return argc < 2 ? 2 : 0;
	}
	mode = argv[1];
	optind = 2;
	while ((c = getopt_long(argc, argv, "+n:w:s:h", longopts, NULL)) != -1) {
		switch (c) {
		case 'n':
			o.n = (unsigned)strtoul(optarg, NULL, 10);
			break;
		case 'w':
			o.warmup = (unsigned)strtoul(optarg, NULL, 10);
			break;
		case OPT_GAP:
			o.gap_ms = (unsigned)strtoul(optarg, NULL, 10);
			break;
		case OPT_BIND:
			if (o.n_bind == AL_ARRAY_SIZE(o.bind)) {
				fputs("airlock-bench: too many --bind-over\n", stderr);
				return 2;
			}
			o.bind[o.n_bind++] = optarg;
			break;
		case 's':
			o.socket_path = optarg;
			break;
		case OPT_SANDBOX:
			o.sandbox = optarg;
			break;
		case OPT_SANDBOXES:
			o.sandboxes = optarg;
			break;
		case OPT_CLIENTS:
			o.clients = (unsigned)strtoul(optarg, NULL, 10);
			break;
		case OPT_SECONDS:
			o.seconds = strtod(optarg, NULL);
			break;
		case OPT_BODY:
			o.body = optarg;
			break;
		case OPT_EXEC:
			o.exec_between = true;
			break;
		case 'h':
			fputs(usage, stdout);
			return 0;
		default:
			fputs(usage, stderr);
			return 2;
		}
	}
	if (o.n == 0 || o.seconds <= 0) {
		fputs("airlock-bench: -n and --seconds must be positive\n", stderr);
		return 2;
	}
	if (strcmp(mode, "spawn") && !o.socket_path) {
		fprintf(stderr, "airlock-bench: %s needs --socket\n", mode);
		return 2;
	}
	curl_global_init(CURL_GLOBAL_NOTHING);
	if (!strcmp(mode, "spawn")) {
		if (optind >= argc) {
			fputs("airlock-bench: spawn needs a command after --\n", stderr);
			return 2;
		}
		r = mode_spawn(&o, argv + optind, &err);
	} else if (!strcmp(mode, "create")) {
		r = mode_create(&o, &err);
	} else if (!strcmp(mode, "exec")) {
		r = mode_exec(&o, &err);
	} else if (!strcmp(mode, "throughput")) {
		r = mode_throughput(&o, &err);
	} else {
		fprintf(stderr, "airlock-bench: unknown mode '%s'\n\n%s", mode, usage);
		return 2;
	}
	curl_global_cleanup();
	if (r < 0) {
		fprintf(stderr, "airlock-bench: %s\n", err.msg);
		return 1;
	}
	return 0;
}
