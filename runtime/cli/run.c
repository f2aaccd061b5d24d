/* SPDX-License-Identifier: Apache-2.0 */
/* airlock CLI: run, create and exec. */
#include "cli.h"
#include "stream.h"

#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

struct create_opts {
	uint64_t memory_bytes;
	bool has_memory;
	long pids;
	bool has_pids;
	double cpus;
	bool has_cpus;
	uint64_t disk_bytes;
	bool has_disk;
	const char *rootfs;
	const char *image;
	const char *name;
	const char *manifest_file;
	cJSON *env;             /* object */
	long ttl, idle_timeout; /* seconds; 0: none */
	cJSON *labels;          /* object, or NULL where the verb takes none */
	bool network_none;      /* --network none given */
	bool network_allow;     /* --network allow: an allowlist, maybe empty */
	const char *allow[64];  /* --allow CIDR[:PORTS]: an allowlist network */
	size_t n_allow;
	const char *ports[16]; /* -p [HOSTADDR:]HOSTPORT:PORT */
	size_t n_ports;
};

/*
 * Handle one create option c; returns 0 when handled, 1 when c is not a
 * create option, or an exit status (> 1) for a usage error.
 */
static int create_option(struct create_opts *o, int c, const char *arg, const char *usage)
{
	struct al_error err = AL_ERROR_INIT;
	char *end = NULL;

	switch (c) {
	case 'm':
		if (al_parse_size(arg, &o->memory_bytes, &err) < 0 || o->memory_bytes == 0)
			return usage_error(usage, "invalid --memory '%s'", arg);
		o->has_memory = true;
		return 0;
	case OPT_PIDS:
		errno = 0;
		o->pids = strtol(arg, &end, 10);
		if (errno || end == arg || *end || o->pids <= 0)
			return usage_error(usage, "invalid --pids '%s'", arg);
		o->has_pids = true;
		return 0;
	case OPT_CPUS:
		errno = 0;
		o->cpus = strtod(arg, &end);
		if (errno || end == arg || *end || !isfinite(o->cpus) || o->cpus <= 0)
			return usage_error(usage, "invalid --cpus '%s'", arg);
		o->has_cpus = true;
		return 0;
	case OPT_DISK:
		if (al_parse_size(arg, &o->disk_bytes, &err) < 0 || o->disk_bytes == 0)
			return usage_error(usage, "invalid --disk '%s'", arg);
		o->has_disk = true;
		return 0;
	case OPT_ROOTFS:
		o->rootfs = arg;
		return 0;
	case OPT_IMAGE:
		o->image = arg;
		return 0;
	case OPT_NAME:
		if (!al_valid_name(arg))
			return usage_error(usage, "invalid --name '%s'", arg);
		o->name = arg;
		return 0;
	case OPT_MANIFEST:
		o->manifest_file = arg;
		return 0;
	case OPT_TTL:
		if (parse_seconds(arg, &o->ttl) < 0)
			return usage_error(usage, "invalid --ttl '%s': expected seconds", arg);
		return 0;
	case OPT_IDLE_TIMEOUT:
		if (parse_seconds(arg, &o->idle_timeout) < 0)
			return usage_error(usage, "invalid --idle-timeout '%s': expected seconds",
			                   arg);
		return 0;
	case OPT_NETWORK:
		/* An allowlist is given by its entries (--allow); "allow" alone
		 * would be an allowlist that lets nothing out. */
		if (!strcmp(arg, "none") || !strcmp(arg, "loopback")) {
			o->network_none = true;
			return 0;
		}
		if (!strcmp(arg, "allow")) {
			o->network_none = false;
			o->network_allow = true;
			return 0;
		}
		return usage_error(usage, "invalid --network '%s': expected none or allow", arg);
	case OPT_ALLOW:
		if (o->n_allow == AL_ARRAY_SIZE(o->allow))
			return usage_error(usage, "too many --allow");
		o->allow[o->n_allow++] = arg;
		return 0;
	case 'p':
		if (o->n_ports == AL_ARRAY_SIZE(o->ports))
			return usage_error(usage, "too many -p");
		o->ports[o->n_ports++] = arg;
		return 0;
	case OPT_LABEL: {
		const char *eq = strchr(arg, '=');
		_cleanup_free_ char *key = eq ? strndup(arg, (size_t)(eq - arg)) : NULL;
		if (!o->labels || !eq || eq == arg)
			return usage_error(usage, "invalid --label '%s': expected KEY=VALUE", arg);
		if (!key)
			return usage_error(usage, "out of memory");
		cJSON_DeleteItemFromObjectCaseSensitive(o->labels, key);
		cJSON_AddStringToObject(o->labels, key, eq + 1);
		return 0;
	}
	default:
		return 1;
	}
}

static int create_request(const struct create_opts *o, cJSON **out, struct al_error *err)
{
	_cleanup_cjson_ cJSON *req = cJSON_CreateObject();
	cJSON *limits = NULL;

	if (!req)
		return al_error_set(err, ENOMEM, "out of memory");
	if (o->name)
		cJSON_AddStringToObject(req, "name", o->name);
	if (o->rootfs)
		cJSON_AddStringToObject(req, "rootfs", o->rootfs);
	if (o->image)
		cJSON_AddStringToObject(req, "image", o->image);
	if (o->has_memory || o->has_pids || o->has_cpus || o->has_disk) {
		limits = cJSON_AddObjectToObject(req, "limits");
		if (o->has_memory)
			cJSON_AddNumberToObject(limits, "memory_bytes", (double)o->memory_bytes);
		if (o->has_pids)
			cJSON_AddNumberToObject(limits, "pids", (double)o->pids);
		if (o->has_cpus)
			cJSON_AddNumberToObject(limits, "cpus", o->cpus);
		if (o->has_disk)
			cJSON_AddNumberToObject(limits, "disk_bytes", (double)o->disk_bytes);
	}
	if (o->manifest_file) {
		_cleanup_free_ char *text = NULL;
		size_t len = 0;
		cJSON *manifest;
		int r = al_read_file(o->manifest_file, 16u << 20, &text, &len, err);
		if (r < 0)
			return al_error_prefix(err, "manifest");
		manifest = cJSON_ParseWithLength(text, len);
		if (!cJSON_IsObject(manifest)) {
			cJSON_Delete(manifest);
			return al_error_set(err, EINVAL, "manifest %s: not a JSON object",
			                    o->manifest_file);
		}
		cJSON_AddItemToObject(req, "manifest", manifest);
	}
	if (o->env && cJSON_GetArraySize(o->env) > 0)
		cJSON_AddItemReferenceToObject(req, "env", o->env);
	if (o->ttl)
		cJSON_AddNumberToObject(req, "ttl", (double)o->ttl);
	if (o->idle_timeout)
		cJSON_AddNumberToObject(req, "idle_timeout", (double)o->idle_timeout);
	if (o->labels && cJSON_GetArraySize(o->labels) > 0)
		cJSON_AddItemReferenceToObject(req, "labels", o->labels);
	if (o->network_none && (o->n_allow || o->network_allow))
		return al_error_set(err, EINVAL, "--network none and --allow exclude each other");
	if (o->n_allow || o->network_allow) {
		cJSON *net = cJSON_AddObjectToObject(req, "network");
		cJSON *allow = net ? cJSON_AddArrayToObject(net, "allow") : NULL;
		for (size_t i = 0; allow && i < o->n_allow; i++)
			cJSON_AddItemToArray(allow, cJSON_CreateString(o->allow[i]));
	}
	if (o->n_ports) {
		cJSON *ports = cJSON_AddArrayToObject(req, "ports");
		for (size_t i = 0; ports && i < o->n_ports; i++)
			cJSON_AddItemToArray(ports, cJSON_CreateString(o->ports[i]));
	}
	*out = TAKE_PTR(req);
	return 0;
}

/* Create a sandbox; its id goes to *id. */
static int create_sandbox(struct client *c, const struct create_opts *o, char **id,
                          struct al_error *err)
{
	_cleanup_cjson_ cJSON *req = NULL;
	_cleanup_cjson_ cJSON *res = NULL;
	const cJSON *jid;
	int r;

	r = create_request(o, &req, err);
	if (r < 0)
		return r;
	/* Not abortable: an abandoned create could leave a sandbox we know nothing of. */
	r = api_json(c, "POST", "/v1/sandboxes?view=summary", req, false, NULL, &res, err);
	if (r < 0)
		return al_error_prefix(err, "create sandbox");
	jid = cJSON_GetObjectItemCaseSensitive(res, "id");
	if (!cJSON_IsString(jid))
		return al_error_set(err, EPROTO, "create sandbox: airlockd sent no id");
	*id = strdup(jid->valuestring);
	return *id ? 0 : al_error_set(err, ENOMEM, "out of memory");
}

/* wait: return once airlockd has torn it down, not just killed it (rm does;
 * run, whose sandbox nobody looks at again, does not). */
int destroy_sandbox(struct client *c, const char *id, bool wait, struct al_error *err)
{
	_cleanup_free_ char *path = sandbox_path(id, wait ? "" : "?wait=0");
	_cleanup_cjson_ cJSON *res = NULL;
	int r;

	if (!path)
		return al_error_set(err, ENOMEM, "out of memory");
	r = api_json(c, "DELETE", path, NULL, false, NULL, &res, err);
	if (r < 0)
		return al_error_prefix(err, "destroy sandbox %s", id);
	return 0;
}

/* ---- running a command: exec, then poll with stdio streamed ---- */

enum stdin_kind { STDIN_DETACHED, STDIN_ATTACHED };

/* A terminal is read only with -i (check_stdin refuses it without); /dev/null or a closed fd
 * means no input. */
static enum stdin_kind stdin_kind(void)
{
	struct stat st;

	if (fstat(STDIN_FILENO, &st) < 0 || isatty(STDIN_FILENO))
		return STDIN_DETACHED;
	if (S_ISCHR(st.st_mode) && st.st_rdev == makedev(1, 3))
		return STDIN_DETACHED;
	return STDIN_ATTACHED;
}

/*
 * Read what stdin has without blocking, up to max bytes in total in buf.
 * Returns 1 at end of input, 0 otherwise.  A read error counts as the end.
 */
static int read_available_stdin(struct al_buf *buf, size_t max, int timeout_ms)
{
	char chunk[65536];

	while (buf->len < max) {
		struct pollfd p = {.fd = STDIN_FILENO, .events = POLLIN};
		size_t want = max - buf->len < sizeof(chunk) ? max - buf->len : sizeof(chunk);
		ssize_t n;
		int pr = poll(&p, 1, timeout_ms);

		if (pr < 0 && errno == EINTR)
			return 0;
		if (pr <= 0)
			return pr < 0 ? 1 : 0;
		timeout_ms = 0;
		n = read(STDIN_FILENO, chunk, want);
		if (n < 0) {
			if (errno == EINTR || errno == EAGAIN)
				return 0;
			return 1;
		}
		if (n == 0)
			return 1;
		if (al_buf_append(buf, chunk, (size_t)n) < 0)
			return 1;
	}
	return 0;
}

struct run_state {
	struct client *c;
	const char *id;
	char *process_id;
	bool stdout_closed;
	bool stderr_closed;
	bool warned_truncated;
	bool finished;
	int exit_status;
};

static void emit_output(const cJSON *res, const char *key, int fd, bool *closed)
{
	const cJSON *data = cJSON_GetObjectItemCaseSensitive(res, key);
	_cleanup_free_ char *bytes = NULL;
	struct al_error err = AL_ERROR_INIT;
	size_t len = 0;

	if (!cJSON_IsString(data) || data->valuestring[0] == '\0' || *closed)
		return;
	if (al_base64_decode(data->valuestring, &bytes, &len, &err) < 0) {
		fprintf(stderr, "airlock: %s output: %s\n", key, err.msg);
		return;
	}
	/* A closed pipe (airlock run ... | head) only stops that stream. */
	if (len > 0 && al_write_all(fd, bytes, len) < 0)
		*closed = true;
}

static int signal_number(const cJSON *sig)
{
	const char *name;

	if (cJSON_IsNumber(sig))
		return sig->valueint;
	if (!cJSON_IsString(sig))
		return 0;
	name = sig->valuestring;
	if (strncmp(name, "SIG", 3) == 0)
		name += 3;
	for (int n = 1; n < NSIG; n++) {
		const char *abbrev = sigabbrev_np(n);
		if (abbrev && strcmp(abbrev, name) == 0)
			return n;
	}
	return atoi(name);
}

static void report_oom(double limit)
{
	char text[32];

	human_size(limit, text, sizeof(text));
	fprintf(stderr, "airlock: killed: out of memory (limit %s; raise it with --memory)\n",
	        limit > 0 ? text : "none");
}

/*
 * A streamed command (-i, -t) that died of SIGKILL: its exit frame does not
 * say why, so the sandbox's event log does: an OOM kill recorded since the
 * command started (started: ISO 8601 with millis) was the memory limit.
 */
static void explain_sigkill(struct client *c, const char *id, const char *started)
{
	_cleanup_free_ char *events_path = sandbox_path(id, "/events");
	_cleanup_cjson_ cJSON *events = NULL, *sb = NULL;
	struct al_error err = AL_ERROR_INIT;
	const cJSON *e;

	if (!events_path || api_json(c, "GET", events_path, NULL, false, NULL, &events, &err) < 0)
		return;
	cJSON_ArrayForEach(e, cJSON_GetObjectItemCaseSensitive(events, "events"))
	{
		if (!strcmp(json_string(e, "type"), "oom_kill") &&
		    strcmp(json_string(e, "time"), started) >= 0) {
			_cleanup_free_ char *path = sandbox_path(id, "");
			double limit = 0;
			if (path && api_json(c, "GET", path, NULL, false, NULL, &sb, &err) == 0)
				limit = al_json_num(
				    cJSON_GetObjectItemCaseSensitive(
				        cJSON_GetObjectItemCaseSensitive(sb, "cgroup"), "limits"),
				    "memory_bytes", 0);
			report_oom(limit);
			return;
		}
	}
}

/* Write the output of one exec/poll answer and note whether the process ended. */
static int handle_result(struct run_state *st, const cJSON *res, struct al_error *err)
{
	const cJSON *running = cJSON_GetObjectItemCaseSensitive(res, "running");
	const cJSON *pid = cJSON_GetObjectItemCaseSensitive(res, "process_id");
	const cJSON *exit_code = cJSON_GetObjectItemCaseSensitive(res, "exit_code");
	int sig;

	emit_output(res, "stdout", STDOUT_FILENO, &st->stdout_closed);
	emit_output(res, "stderr", STDERR_FILENO, &st->stderr_closed);
	if (!st->warned_truncated &&
	    (cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(res, "stdout_truncated")) ||
	     cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(res, "stderr_truncated")))) {
		fprintf(stderr, "airlock: output was truncated by airlockd\n");
		st->warned_truncated = true;
	}

	if (cJSON_IsTrue(running)) {
		if (!st->process_id) {
			if (cJSON_IsString(pid))
				st->process_id = strdup(pid->valuestring);
			else if (cJSON_IsNumber(pid) &&
			         asprintf(&st->process_id, "%d", pid->valueint) < 0)
				st->process_id = NULL;
			if (!st->process_id)
				return al_error_set(
				    err, EPROTO, "airlockd sent a running process without an id");
		}
		return 0;
	}

	st->finished = true;
	if (cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(res, "timed_out"))) {
		fprintf(stderr, "airlock: command timed out and was killed\n");
		st->exit_status = EXIT_TIMEOUT;
		return 0;
	}
	sig = signal_number(cJSON_GetObjectItemCaseSensitive(res, "signal"));
	if (cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(res, "oom_killed")))
		report_oom(al_json_num(res, "memory_limit_bytes", 0));
	if (sig > 0)
		st->exit_status = 128 + sig;
	else if (cJSON_IsNumber(exit_code))
		st->exit_status = exit_code->valueint;
	else
		return al_error_set(err, EPROTO, "airlockd sent neither an exit code nor a signal");
	return 0;
}

static int poll_process(struct run_state *st, int yield_ms, bool abortable, cJSON **res,
                        struct al_error *err)
{
	_cleanup_curl_free_ char *pid = curl_easy_escape(st->c->curl, st->process_id, 0);
	_cleanup_free_ char *suffix = NULL;
	_cleanup_free_ char *path = NULL;

	if (!pid ||
	    asprintf(&suffix, "/processes/%s?yield_ms=%d&encoding=base64", pid, yield_ms) < 0)
		return al_error_set(err, ENOMEM, "out of memory");
	path = sandbox_path(st->id, suffix);
	if (!path)
		return al_error_set(err, ENOMEM, "out of memory");
	return api_json(st->c, "GET", path, NULL, abortable, NULL, res, err);
}

/* Returns the HTTP status through *status so a refused write can be told from a lost process. */
static int send_stdin(struct run_state *st, const struct al_buf *data, bool close_stdin,
                      int yield_ms, bool abortable, long *status, cJSON **res, struct al_error *err)
{
	_cleanup_curl_free_ char *pid = curl_easy_escape(st->c->curl, st->process_id, 0);
	_cleanup_free_ char *suffix = NULL;
	_cleanup_free_ char *path = NULL;
	_cleanup_free_ char *encoded = NULL;
	_cleanup_cjson_ cJSON *req = cJSON_CreateObject();

	if (!pid || !req || asprintf(&suffix, "/processes/%s/stdin", pid) < 0)
		return al_error_set(err, ENOMEM, "out of memory");
	path = sandbox_path(st->id, suffix);
	encoded = al_base64_encode(data->data ? data->data : "", data->len);
	if (!path || !encoded)
		return al_error_set(err, ENOMEM, "out of memory");
	cJSON_AddStringToObject(req, "data_base64", encoded);
	cJSON_AddBoolToObject(req, "close", close_stdin);
	cJSON_AddNumberToObject(req, "yield_ms", yield_ms);
	cJSON_AddStringToObject(req, "encoding", "base64");
	return api_json(st->c, "POST", path, req, abortable, status, res, err);
}

static int kill_process(struct run_state *st, const char *signame)
{
	_cleanup_curl_free_ char *pid = curl_easy_escape(st->c->curl, st->process_id, 0);
	_cleanup_free_ char *suffix = NULL;
	_cleanup_free_ char *path = NULL;
	_cleanup_cjson_ cJSON *res = NULL;
	struct al_error err = AL_ERROR_INIT;

	if (!pid || asprintf(&suffix, "/processes/%s?signal=%s", pid, signame) < 0)
		return -ENOMEM;
	path = sandbox_path(st->id, suffix);
	if (!path)
		return -ENOMEM;
	/* The process may have ended in the meantime; the next poll tells. */
	return api_json(st->c, "DELETE", path, NULL, false, NULL, &res, &err);
}

struct exec_opts {
	char **argv;
	const char *cwd;
	const char *user; /* -u: UID[:GID], or a name of the sandbox's /etc/passwd */
	cJSON *env;
	double timeout_ms;
	bool detach;      /* -d: start it and return */
	bool interactive; /* -i */
	bool tty;         /* -t */
	/* run: the sandbox goes away on a signal, so transfers may be abandoned. */
	bool destroy_on_signal;
};

/* The parts of an exec request that come from the options, into req. */
static void exec_request(cJSON *req, const struct exec_opts *o)
{
	cJSON *argv = cJSON_AddArrayToObject(req, "argv");

	for (char **a = o->argv; *a; a++)
		cJSON_AddItemToArray(argv, cJSON_CreateString(*a));
	if (o->cwd)
		cJSON_AddStringToObject(req, "cwd", o->cwd);
	if (o->user)
		cJSON_AddStringToObject(req, "user", o->user);
	if (o->env && cJSON_GetArraySize(o->env) > 0)
		cJSON_AddItemReferenceToObject(req, "env", o->env);
	cJSON_AddNumberToObject(req, "timeout_ms", o->timeout_ms);
}

/*
 * Run o->argv in the sandbox and stream its stdio.  Returns the command's exit
 * status, or a negative code with err filled.  On a signal: with
 * destroy_on_signal returns -EINTR at once (the caller destroys the sandbox);
 * otherwise forwards it to the process (KILL the second time) and waits.
 */
static int run_command_in(struct client *c, const char *id, const struct create_opts *create,
                          char **created, bool *removed, const struct exec_opts *o,
                          struct al_error *err);

/*
 * With create NULL, run in sandbox id.  Otherwise make the sandbox first
 * and put its id in *created (the caller's to free and, unless *removed,
 * destroy): when stdin needs no streaming, in the same request as the
 * command ("exec" and "remove" in the create request), so a command that
 * ends within the first yield costs one round trip and takes its sandbox
 * with it.
 */
static int run_command_in(struct client *c, const char *id, const struct create_opts *create,
                          char **created, bool *removed, const struct exec_opts *o,
                          struct al_error *err)
{
	_cleanup_free_ char *path = NULL;
	_cleanup_free_ char *inline_b64 = NULL;
	_cleanup_buf_ struct al_buf pending = {0};
	_cleanup_cjson_ cJSON *req = cJSON_CreateObject();
	_cleanup_cjson_ cJSON *res = NULL;
	struct run_state st = {.c = c};
	bool stdin_open = false, stdin_eof = false;
	int signals_forwarded = 0;
	int r;

	if (!req)
		return al_error_set(err, ENOMEM, "out of memory");
	exec_request(req, o);
	cJSON_AddNumberToObject(req, "max_output_bytes", MAX_OUTPUT_BYTES);
	cJSON_AddTrueToObject(req, "backpressure");
	cJSON_AddStringToObject(req, "encoding", "base64");

	if (stdin_kind() == STDIN_ATTACHED) {
		/* Input that is already complete (a file, a finished pipe) goes inline. */
		stdin_eof = read_available_stdin(&pending, MAX_INLINE_STDIN, 0);
		if (stdin_eof) {
			inline_b64 =
			    al_base64_encode(pending.data ? pending.data : "", pending.len);
			if (!inline_b64)
				return al_error_set(err, ENOMEM, "out of memory");
			cJSON_AddStringToObject(req, "stdin_base64", inline_b64);
			pending.len = 0;
		} else {
			cJSON_AddBoolToObject(req, "keep_stdin_open", true);
			stdin_open = true;
		}
	}
	/* A create request cannot be abandoned (its sandbox would be lost), so
	 * it yields sooner: a signal waits at most that long. */
	cJSON_AddNumberToObject(req, "yield_ms",
	                        stdin_open ? STDIN_YIELD_MS
	                        : create   ? CREATE_EXEC_YIELD_MS
	                                   : FIRST_YIELD_MS);

	if (create && !stdin_open) {
		_cleanup_cjson_ cJSON *creq = NULL, *cres = NULL;
		const cJSON *jid;
		r = create_request(create, &creq, err);
		if (r < 0)
			return r;
		if (!cJSON_AddItemReferenceToObject(creq, "exec", req) ||
		    !cJSON_AddTrueToObject(creq, "remove"))
			return al_error_set(err, ENOMEM, "out of memory");
		/* Not abortable: an abandoned create could leave a sandbox we know
		 * nothing of. */
		r = api_json(c, "POST", "/v1/sandboxes?view=summary", creq, false, NULL, &cres,
		             err);
		if (r < 0)
			return al_error_prefix(err, "create sandbox");
		jid = cJSON_GetObjectItemCaseSensitive(cres, "id");
		if (!cJSON_IsString(jid))
			return al_error_set(err, EPROTO, "create sandbox: airlockd sent no id");
		id = *created = strdup(jid->valuestring);
		if (!id)
			return al_error_set(err, ENOMEM, "out of memory");
		res = cJSON_DetachItemFromObjectCaseSensitive(cres, "exec");
		*removed = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(cres, "removed"));
	}
	/* Without a result: no create asked for one, or an airlockd that does
	 * not know "exec" (an older one) made the sandbox only. */
	if (!cJSON_IsObject(res)) {
		if (create && !id) {
			r = create_sandbox(c, create, created, err);
			if (r < 0)
				return r;
			id = *created;
		}
		path = sandbox_path(id, "/exec");
		if (!path)
			return al_error_set(err, ENOMEM, "out of memory");
		cJSON_Delete(res);
		res = NULL;
		r = api_json(c, "POST", path, req, o->destroy_on_signal, NULL, &res, err);
		if (r < 0)
			return al_error_prefix(err, "exec in sandbox %s", id);
	}
	st.id = id;
	r = handle_result(&st, res, err);

	while (r >= 0 && !st.finished) {
		cJSON_Delete(res);
		res = NULL;

		if (pending_signal) {
			if (o->destroy_on_signal) {
				r = al_error_set(err, EINTR, "interrupted by signal %d",
				                 (int)pending_signal);
				break;
			}
			kill_process(&st, signals_forwarded++ > 0    ? "KILL"
			                  : pending_signal == SIGINT ? "INT"
			                  : pending_signal == SIGHUP ? "HUP"
			                                             : "TERM");
			pending_signal = 0;
		}

		if (stdin_open) {
			long status = 0;
			if (pending.len == 0 && !stdin_eof)
				stdin_eof =
				    read_available_stdin(&pending, STDIN_CHUNK, STDIN_POLL_MS);
			if (pending.len == 0 && !stdin_eof) {
				r = poll_process(&st, STDIN_YIELD_MS, o->destroy_on_signal, &res,
				                 err);
			} else {
				r = send_stdin(&st, &pending, stdin_eof,
				               stdin_eof ? POLL_YIELD_MS : STDIN_YIELD_MS,
				               o->destroy_on_signal, &status, &res, err);
				pending.len = 0;
				if (stdin_eof)
					stdin_open = false;
				/* The process closed its stdin or is ending: keep collecting. */
				if (r < 0 && status >= 400 && status != 404) {
					stdin_open = false;
					r = 0;
					continue;
				}
			}
		} else {
			r = poll_process(&st, POLL_YIELD_MS, o->destroy_on_signal, &res, err);
		}
		if (r < 0) {
			if (r == -EINTR && o->destroy_on_signal)
				break;
			al_error_prefix(err, "process %s in sandbox %s", st.process_id, id);
			break;
		}
		r = handle_result(&st, res, err);
	}
	free(st.process_id);
	if (r < 0)
		return r;
	return st.exit_status;
}

/* ---- -i and -t: one streamed connection (stream.c) ---- */

/*
 * What stdin may be for o: a terminal is read only with -i (silently
 * dropping what someone types is the one wrong answer), and -it needs one.
 * Returns 0 or a usage error's exit status.
 */
static int check_stdin(const struct exec_opts *o, const char *usage)
{
	bool terminal = isatty(STDIN_FILENO);

	/* Not an error: `airlock exec ID ls` at a prompt should just work, as
	 * `docker exec` does; but never silence either (a `bash` that exits at
	 * once, a `python3` without a prompt): say why and what to pass. */
	if (terminal && !o->interactive && !o->tty)
		fprintf(stderr, "airlock: stdin is a terminal and is not passed to the command: "
		                "use -it for an interactive session, -i to stream it\n");
	if (!terminal && o->interactive && o->tty)
		return usage_error(usage,
		                   "-it needs stdin to be a terminal; use -i alone to stream "
		                   "stdin that is not one");
	return 0;
}

static int run_streamed(struct client *c, const char *id, const struct exec_opts *o,
                        struct al_error *err)
{
	_cleanup_cjson_ cJSON *req = cJSON_CreateObject();
	_cleanup_free_ char *path = sandbox_path(id, "/exec");
	_cleanup_free_ char *body = NULL;
	unsigned rows, cols;
	char started[40];
	int r;

	if (!req || !path)
		return al_error_set(err, ENOMEM, "out of memory");
	exec_request(req, o);
	if (o->tty) {
		cJSON_AddTrueToObject(req, "tty");
		if (stream_window_size(&rows, &cols)) {
			cJSON_AddNumberToObject(req, "rows", rows);
			cJSON_AddNumberToObject(req, "cols", cols);
		}
	}
	body = cJSON_PrintUnformatted(req);
	if (!body)
		return al_error_set(err, ENOMEM, "out of memory");
	al_iso8601_now(started, sizeof(started), true);
	r = stream_exec(
	    &(struct stream_opts){.socket_path = c->socket_path,
	                          .path = path,
	                          .body = body,
	                          .tty = o->tty,
	                          .stdin = o->interactive || stdin_kind() == STDIN_ATTACHED},
	    err);
	if (r < 0)
		return al_error_prefix(err, "exec in sandbox %s", id);
	if (r == 128 + SIGKILL)
		explain_sigkill(c, id, started);
	return r;
}

/*
 * Handle one option shared by run and exec (--env, --cwd, --timeout);
 * returns 0 when handled, 1 when c is not one of them, or an exit status
 * (> 1) for a usage error.
 */
static int exec_option(struct exec_opts *o, int c, const char *arg, const char *usage)
{
	switch (c) {
	case 'e':
		return add_env(o->env, arg, usage);
	case OPT_ENV_FILE:
		return add_env_file(o->env, arg, usage);
	case 'w':
		o->cwd = arg;
		return 0;
	case 'u':
		o->user = arg;
		return 0;
	case OPT_TIMEOUT:
		if (parse_timeout_ms(arg, &o->timeout_ms) < 0)
			return usage_error(usage, "invalid --timeout '%s'", arg);
		return 0;
	case 'i':
		o->interactive = true;
		return 0;
	case 't':
		o->tty = true;
		return 0;
	default:
		return 1;
	}
}

/* What `run --image` runs: Entrypoint, then args or else Cmd (as docker run). */
static int image_command(struct client *c, const char *image, char **args, char ***out,
                         struct al_error *err)
{
	_cleanup_free_ char *path = api_path("/v1/images", image, "");
	_cleanup_cjson_ cJSON *res = NULL;
	_cleanup_strv_ char **v = calloc(1, sizeof(char *));
	const cJSON *cfg, *it;
	int r;

	if (!v || !path)
		return al_error_set(err, ENOMEM, "out of memory");
	r = api_json(c, "GET", path, NULL, false, NULL, &res, err);
	if (r < 0)
		return al_error_prefix(err, "image %s", image);
	cfg = cJSON_GetObjectItemCaseSensitive(res, "config");
	cJSON_ArrayForEach(it,
	                   cJSON_GetObjectItemCaseSensitive(
	                       cfg, "Entrypoint")) if (cJSON_IsString(it) &&
	                                               al_strv_push(&v, it->valuestring) <
	                                                   0) return al_error_set(err, ENOMEM,
	                                                                          "out of memory");
	if (args[0]) {
		for (char **a = args; *a; a++)
			if (al_strv_push(&v, *a) < 0)
				return al_error_set(err, ENOMEM, "out of memory");
	} else {
		cJSON_ArrayForEach(it,
		                   cJSON_GetObjectItemCaseSensitive(
		                       cfg, "Cmd")) if (cJSON_IsString(it) &&
		                                        al_strv_push(&v, it->valuestring) <
		                                            0) return al_error_set(err, ENOMEM,
		                                                                   "out of memory");
	}
	if (!v[0])
		return al_error_set(err, EINVAL,
		                    "image %s has no Entrypoint or Cmd: give a command", image);
	*out = TAKE_PTR(v);
	return 0;
}

/* The options of create_option() and exec_option(), in run, create and exec. */
/* clang-format off */
#define CREATE_LONGOPTS                                                                            \
	{"memory", required_argument, NULL, 'm'},                                                  \
	{"pids", required_argument, NULL, OPT_PIDS},                                               \
	{"cpus", required_argument, NULL, OPT_CPUS},                                               \
	{"disk", required_argument, NULL, OPT_DISK},                                               \
	{"rootfs", required_argument, NULL, OPT_ROOTFS},                                           \
	{"image", required_argument, NULL, OPT_IMAGE},                                             \
	{"name", required_argument, NULL, OPT_NAME},                                               \
	{"manifest", required_argument, NULL, OPT_MANIFEST},                                       \
	{"network", required_argument, NULL, OPT_NETWORK},                                         \
	{"allow", required_argument, NULL, OPT_ALLOW},                                             \
	{"publish", required_argument, NULL, 'p'}
#define EXEC_LONGOPTS                                                                              \
	{"cwd", required_argument, NULL, 'w'},                                                     \
	{"user", required_argument, NULL, 'u'},                                                    \
	{"env-file", required_argument, NULL, OPT_ENV_FILE},                                       \
	{"timeout", required_argument, NULL, OPT_TIMEOUT},                                         \
	{"interactive", no_argument, NULL, 'i'},                                                   \
	{"tty", no_argument, NULL, 't'}
/* clang-format on */

int verb_run(struct verb_ctx *ctx, int argc, char **argv)
{
	static const struct option longopts[] = {
	    CREATE_LONGOPTS,
	    {"env", required_argument, NULL, 'e'},
	    EXEC_LONGOPTS,
	    {"help", no_argument, NULL, 'h'},
	    {0},
	};
	_cleanup_cjson_ cJSON *env = cJSON_CreateObject();
	_cleanup_free_ char *id = NULL;
	struct create_opts co = {0};
	struct exec_opts eo = {.env = env, .destroy_on_signal = true};
	_cleanup_strv_ char **image_argv = NULL;
	struct al_error err = AL_ERROR_INIT;
	struct client c = {0};
	bool removed = false;
	int opt, r, status;

	while ((opt = getopt_long(argc, argv, "+:m:e:w:u:p:ith", longopts, NULL)) != -1) {
		switch (opt) {
		case 'h':
			return show_usage(usage_run);
		case '?':
		case ':':
			return bad_option(usage_run, opt, argv);
		default:
			r = exec_option(&eo, opt, optarg, usage_run);
			if (r == 1)
				r = create_option(&co, opt, optarg, usage_run);
			if (r)
				return r == 1 ? bad_option(usage_run, '?', argv) : r;
		}
	}
	if (optind >= argc && !co.image)
		return usage_error(usage_run, "no command given");
	eo.argv = argv + optind;
	r = check_stdin(&eo, usage_run);
	if (r)
		return r;

	if (client_open(&c, ctx->socket_path, &err) < 0)
		return runtime_error(&err);
	if (co.image) {
		r = image_command(&c, co.image, argv + optind, &image_argv, &err);
		if (r < 0) {
			client_close(&c);
			return runtime_error(&err);
		}
		eo.argv = image_argv;
	}
	if (eo.interactive || eo.tty) {
		r = create_sandbox(&c, &co, &id, &err);
		if (r == 0)
			r = run_streamed(&c, id, &eo, &err);
	} else {
		r = run_command_in(&c, NULL, &co, &id, &removed, &eo, &err);
	}
	/* A signal that came during the create request (which cannot be
	 * abandoned) counts even if the command then ended. */
	if (r == -EINTR || (r >= 0 && pending_signal))
		status = 128 + pending_signal;
	else if (r < 0)
		status = runtime_error(&err);
	else
		status = r;

	/* Whatever happened, the sandbox goes, if it did not with its command. */
	al_error_clear(&err);
	if (id && !removed && destroy_sandbox(&c, id, false, &err) < 0)
		status = runtime_error(&err);
	client_close(&c);
	return status;
}

int verb_create(struct verb_ctx *ctx, int argc, char **argv)
{
	static const struct option longopts[] = {
	    CREATE_LONGOPTS,
	    {"env", required_argument, NULL, 'e'},
	    {"ttl", required_argument, NULL, OPT_TTL},
	    {"idle-timeout", required_argument, NULL, OPT_IDLE_TIMEOUT},
	    {"label", required_argument, NULL, OPT_LABEL},
	    {"env-file", required_argument, NULL, OPT_ENV_FILE},
	    {"json", no_argument, NULL, OPT_JSON},
	    {"help", no_argument, NULL, 'h'},
	    {0},
	};
	_cleanup_cjson_ cJSON *env = cJSON_CreateObject();
	_cleanup_cjson_ cJSON *labels = cJSON_CreateObject();
	_cleanup_free_ char *id = NULL;
	struct create_opts co = {.env = env, .labels = labels};
	struct al_error err = AL_ERROR_INIT;
	struct client c = {0};
	bool json = false;
	int opt, r;

	while ((opt = getopt_long(argc, argv, "+:m:e:p:h", longopts, NULL)) != -1) {
		switch (opt) {
		case 'h':
			return show_usage(usage_create);
		case 'e':
		case OPT_ENV_FILE:
			r = opt == 'e' ? add_env(env, optarg, usage_create)
			               : add_env_file(env, optarg, usage_create);
			if (r)
				return r;
			break;
		case OPT_JSON:
			json = true;
			break;
		case '?':
		case ':':
			return bad_option(usage_create, opt, argv);
		default:
			r = create_option(&co, opt, optarg, usage_create);
			if (r)
				return r == 1 ? bad_option(usage_create, '?', argv) : r;
		}
	}
	if (optind < argc)
		return usage_error(usage_create, "unexpected argument '%s'", argv[optind]);

	if (client_open(&c, ctx->socket_path, &err) < 0)
		return runtime_error(&err);
	r = create_sandbox(&c, &co, &id, &err);
	client_close(&c);
	if (r < 0)
		return runtime_error(&err);
	printf(json ? "{\"id\": \"%s\"}\n" : "%s\n", id);
	return 0;
}

/*
 * -u NAME[:GROUP]: the ids the sandbox's /etc/passwd and /etc/group give
 * them (airlockd takes numbers); numbers pass as they are.
 */
static int lookup_id(struct client *c, const char *id, const char *file, const char *name,
                     bool want_gid, char *out, size_t len, struct al_error *err)
{
	_cleanup_free_ char *path = NULL;
	_cleanup_buf_ struct al_buf body = {0};
	long status = 0;
	int r;

	if (name[strspn(name, "0123456789")] == '\0') {
		snprintf(out, len, "%s", name);
		return 0;
	}
	{
		_cleanup_curl_free_ char *f = curl_easy_escape(NULL, file, 0);
		_cleanup_free_ char *suffix = NULL;
		if (!f || asprintf(&suffix, "/files?path=%s", f) < 0 ||
		    !(path = sandbox_path(id, suffix)))
			return al_error_set(err, ENOMEM, "out of memory");
	}
	r = client_request(c, &(struct request){.method = "GET", .path = path, .stream_fd = -1},
	                   &status, &body, err);
	if (r < 0)
		return r;
	if (status != 200)
		return al_error_set(err, ENOENT, "user '%s': the sandbox has no readable %s", name,
		                    file);
	if (al_buf_append(&body, "", 1) < 0)
		return al_error_set(err, ENOMEM, "out of memory");
	for (char *line = body.data, *next; line && *line; line = next) {
		char *fields[4] = {0};
		size_t n = 0;
		next = strchr(line, '\n');
		if (next)
			*next++ = '\0';
		for (char *f = line; n < AL_ARRAY_SIZE(fields); f++) {
			fields[n++] = f;
			f = strchr(f, ':');
			if (!f)
				break;
			*f = '\0';
		}
		if (n >= 3 && !strcmp(fields[0], name)) {
			snprintf(out, len, "%s", want_gid && n >= 4 ? fields[3] : fields[2]);
			return 0;
		}
	}
	return al_error_set(err, ENOENT, "no %s '%s' in the sandbox's %s",
	                    strcmp(file, "/etc/group") ? "user" : "group", name, file);
}

static int resolve_user(struct client *c, const char *id, const char *spec, char **out,
                        struct al_error *err)
{
	_cleanup_free_ char *user = strdup(spec);
	char *group = user ? strchr(user, ':') : NULL;
	char uid[32], gid[32] = "";
	int r;

	if (!user)
		return al_error_set(err, ENOMEM, "out of memory");
	if (group)
		*group++ = '\0';
	r = lookup_id(c, id, "/etc/passwd", user, false, uid, sizeof(uid), err);
	if (r >= 0 && group)
		r = lookup_id(c, id, "/etc/group", group, false, gid, sizeof(gid), err);
	/* A user name alone runs with its primary group, as su does. */
	else if (r >= 0 && uid[0] && user[strspn(user, "0123456789")])
		r = lookup_id(c, id, "/etc/passwd", user, true, gid, sizeof(gid), err);
	if (r < 0)
		return al_error_prefix(err, "-u %s", spec);
	if (asprintf(out, "%s%s%s", uid, gid[0] ? ":" : "", gid) < 0)
		return al_error_set(err, ENOMEM, "out of memory");
	return 0;
}

/* -d: start the command and return; its output is dropped, its id printed. */
static int run_detached(struct client *c, const char *id, const struct exec_opts *o,
                        struct al_error *err)
{
	_cleanup_cjson_ cJSON *req = cJSON_CreateObject(), *res = NULL;
	_cleanup_free_ char *path = sandbox_path(id, "/exec");
	const cJSON *pid;
	int r;

	if (!req || !path)
		return al_error_set(err, ENOMEM, "out of memory");
	exec_request(req, o);
	/* Nobody reads its output: airlockd keeps none of it. */
	cJSON_AddNumberToObject(req, "max_output_bytes", 0);
	cJSON_AddNumberToObject(req, "yield_ms", 1);
	r = api_json(c, "POST", path, req, false, NULL, &res, err);
	if (r < 0)
		return al_error_prefix(err, "exec in sandbox %s", id);
	pid = cJSON_GetObjectItemCaseSensitive(res, "process_id");
	if (cJSON_IsString(pid))
		printf("%s\n", pid->valuestring);
	return 0;
}

/* exec options may come before and after the id, as in 'airlock exec -e A=1 ID -w /tmp CMD'. */
int verb_exec(struct verb_ctx *ctx, int argc, char **argv)
{
	static const struct option longopts[] = {
	    {"env", required_argument, NULL, 'e'},
	    EXEC_LONGOPTS,
	    {"detach", no_argument, NULL, 'd'},
	    {"help", no_argument, NULL, 'h'},
	    {0},
	};
	_cleanup_cjson_ cJSON *env = cJSON_CreateObject();
	_cleanup_free_ char *full_id = NULL, *user = NULL;
	struct exec_opts eo = {.env = env};
	struct al_error err = AL_ERROR_INIT;
	struct client c = {0};
	const char *id = NULL;
	int opt, r;

	for (int pass = 0; pass < 2; pass++) {
		while ((opt = getopt_long(argc, argv, "+:e:w:u:idth", longopts, NULL)) != -1) {
			switch (opt) {
			case 'h':
				return show_usage(usage_exec);
			case 'd':
				eo.detach = true;
				break;
			default:
				r = exec_option(&eo, opt, optarg, usage_exec);
				if (r)
					return r == 1 ? bad_option(usage_exec, opt, argv) : r;
			}
		}
		if (pass == 1 || optind >= argc)
			break;
		/* "--" before the id ends the options altogether. */
		if (strcmp(argv[optind - 1], "--") == 0) {
			id = argv[optind++];
			break;
		}
		id = argv[optind];
		/* Continue parsing after the id. */
		argv += optind;
		argc -= optind;
		optind = 0;
	}
	if (!id)
		return usage_error(usage_exec, "no sandbox id given");
	if (optind >= argc)
		return usage_error(usage_exec, "no command given");
	eo.argv = argv + optind;
	if (eo.detach && (eo.interactive || eo.tty))
		return usage_error(usage_exec, "-d cannot be combined with -i or -t");
	r = eo.detach ? 0 : check_stdin(&eo, usage_exec);
	if (r)
		return r;

	if (client_open(&c, ctx->socket_path, &err) < 0)
		return runtime_error(&err);
	r = resolve_id(&c, "/v1/sandboxes", id, &full_id, &err);
	if (r >= 0)
		id = full_id;
	if (r >= 0 && eo.user) {
		r = resolve_user(&c, id, eo.user, &user, &err);
		eo.user = user;
	}
	if (r < 0)
		;
	else if (eo.detach)
		r = run_detached(&c, id, &eo, &err);
	else /* streamed whatever the command: relayed at pipe speed, in bounded
	      * memory, at any size (the JSON API holds output up to a cap) */
		r = run_streamed(&c, id, &eo, &err);
	client_close(&c);
	if (r < 0)
		return runtime_error(&err);
	return r;
}
