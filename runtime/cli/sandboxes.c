/* SPDX-License-Identifier: Apache-2.0 */
/* airlock CLI: ls, prune, inspect, stats, events, rm, info. */
#include "cli.h"

#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* Append filter f (label=K=V, state=S) to the list query *q. */
static int add_filter(struct client *c, const char *usage, const char *f, char **q)
{
	const char *eq = strchr(f, '=');
	_cleanup_curl_free_ char *value = NULL;
	char *more = NULL;

	if (!eq || (strncmp(f, "label=", 6) && strncmp(f, "state=", 6)) ||
	    (!strncmp(f, "label=", 6) && (!strchr(eq + 1, '=') || eq[1] == '=')))
		return usage_error(usage,
		                   "invalid --filter '%s': expected label=KEY=VALUE or "
		                   "state=running|stopped",
		                   f);
	value = curl_easy_escape(c->curl, eq + 1, 0);
	if (!value || asprintf(&more, "%s%.*s=%s", *q ? *q : "", (int)(eq - f), f, value) < 0)
		return usage_error(usage, "out of memory");
	free(*q);
	*q = more;
	return 0;
}

/* GET /v1/sandboxes with the filters of argv (opts of usage) into *res. */
static int list_sandboxes(struct client *c, char **filters, size_t n, const char *usage,
                          cJSON **res, int *status)
{
	struct al_error err = AL_ERROR_INIT;
	_cleanup_free_ char *q = NULL, *path = NULL;

	for (size_t i = 0; i < n; i++) {
		if (q) {
			char *amp = NULL;
			if (asprintf(&amp, "%s&", q) < 0)
				return *status = usage_error(usage, "out of memory"), -1;
			free(q);
			q = amp;
		}
		if ((*status = add_filter(c, usage, filters[i], &q)) != 0)
			return -1;
	}
	if (asprintf(&path, "/v1/sandboxes%s%s", q ? "?" : "", q ? q : "") < 0)
		return *status = usage_error(usage, "out of memory"), -1;
	if (api_json(c, "GET", path, NULL, false, NULL, res, &err) < 0)
		return *status = runtime_error(&err), -1;
	return 0;
}

int verb_prune(struct verb_ctx *ctx, int argc, char **argv)
{
	static const struct option longopts[] = {
	    {"filter", required_argument, NULL, 'f'},
	    {"json", no_argument, NULL, OPT_JSON},
	    {"help", no_argument, NULL, 'h'},
	    {0},
	};
	_cleanup_cjson_ cJSON *res = NULL, *out = cJSON_CreateObject();
	cJSON *removed = out ? cJSON_AddArrayToObject(out, "removed") : NULL;
	bool json = false;
	struct al_error err = AL_ERROR_INIT;
	struct client c = {0};
	char *filters[32];
	size_t n = 0;
	const cJSON *sb;
	int opt, status = 0;
	char now[32];

	while ((opt = getopt_long(argc, argv, "+:hf:", longopts, NULL)) != -1) {
		if (opt == 'h')
			return show_usage(usage_prune);
		if (opt == OPT_JSON) {
			json = true;
			continue;
		}
		if (opt != 'f')
			return bad_option(usage_prune, opt, argv);
		if (n == AL_ARRAY_SIZE(filters))
			return usage_error(usage_prune, "at most %zu filters",
			                   AL_ARRAY_SIZE(filters));
		filters[n++] = optarg;
	}
	if (optind < argc)
		return usage_error(usage_prune, "unexpected argument '%s'", argv[optind]);
	if (client_open(&c, ctx->socket_path, &err) < 0)
		return runtime_error(&err);
	if (list_sandboxes(&c, filters, n, usage_prune, &res, &status) < 0) {
		client_close(&c);
		return status;
	}
	/* ISO 8601 UTC stamps of one format compare as strings. */
	al_iso8601_now(now, sizeof(now), false);
	cJSON_ArrayForEach(sb, cJSON_GetObjectItemCaseSensitive(res, "sandboxes"))
	{
		const char *id = json_string(sb, "id"), *expires = json_string(sb, "expires");
		bool stopped = !strcmp(json_string(sb, "state"), "stopped");

		if (!n && !stopped && !(expires[0] && strcmp(expires, now) <= 0))
			continue;
		al_error_clear(&err);
		if (destroy_sandbox(&c, id, true, &err) < 0 && err.code != ENOENT)
			status = runtime_error(&err);
		else if (json)
			cJSON_AddItemToArray(removed, cJSON_CreateString(id));
		else
			printf("%s\n", id);
	}
	client_close(&c);
	if (json)
		print_json(out);
	return status;
}

int verb_ls(struct verb_ctx *ctx, int argc, char **argv)
{
	static const struct option longopts[] = {
	    {"json", no_argument, NULL, OPT_JSON}, {"format", required_argument, NULL, OPT_FORMAT},
	    {"quiet", no_argument, NULL, 'q'},     {"filter", required_argument, NULL, 'f'},
	    {"help", no_argument, NULL, 'h'},      {0},
	};
	bool quiet = false;
	char *filters[32];
	size_t n_filters = 0;
	static const char *const columns[] = {"id", "name", "state", "created", "rootfs"};
	static const char *const headings[] = {"ID", "NAME", "STATE", "CREATED", "ROOTFS"};
	_cleanup_cjson_ cJSON *res = NULL;
	struct al_error err = AL_ERROR_INIT;
	struct client c = {0};
	size_t width[AL_ARRAY_SIZE(columns)];
	const cJSON *list, *sb;
	bool json = false;
	int opt, r, status = 0;

	while ((opt = getopt_long(argc, argv, "+:hqf:", longopts, NULL)) != -1) {
		if (opt == 'h')
			return show_usage(usage_ls);
		if (opt == OPT_JSON) {
			json = true;
		} else if (opt == 'q') {
			quiet = true;
		} else if (opt == OPT_FORMAT) {
			if (strcmp(optarg, "json") && strcmp(optarg, "table"))
				return usage_error(usage_ls,
				                   "invalid --format '%s': expected json or table",
				                   optarg);
			json = !strcmp(optarg, "json");
		} else if (opt == 'f') {
			if (n_filters == AL_ARRAY_SIZE(filters))
				return usage_error(usage_ls, "at most %zu filters",
				                   AL_ARRAY_SIZE(filters));
			filters[n_filters++] = optarg;
		} else {
			return bad_option(usage_ls, opt, argv);
		}
	}
	if (optind < argc)
		return usage_error(usage_ls, "unexpected argument '%s'", argv[optind]);

	if (client_open(&c, ctx->socket_path, &err) < 0)
		return runtime_error(&err);
	r = list_sandboxes(&c, filters, n_filters, usage_ls, &res, &status);
	client_close(&c);
	if (r < 0)
		return status;
	if (json) {
		print_json(res);
		return 0;
	}
	list = cJSON_GetObjectItemCaseSensitive(res, "sandboxes");
	if (quiet) {
		cJSON_ArrayForEach(sb, list) printf("%s\n", json_string(sb, "id"));
		return 0;
	}
	for (size_t i = 0; i < AL_ARRAY_SIZE(columns); i++) {
		width[i] = strlen(headings[i]);
		cJSON_ArrayForEach(sb, list)
		{
			size_t w = strlen(json_string(sb, columns[i]));
			if (w > width[i])
				width[i] = w;
		}
	}
	for (size_t i = 0; i < AL_ARRAY_SIZE(columns); i++)
		print_cell(headings[i], width[i], i + 1 == AL_ARRAY_SIZE(columns));
	cJSON_ArrayForEach(sb, list)
	{
		for (size_t i = 0; i < AL_ARRAY_SIZE(columns); i++)
			print_cell(json_string(sb, columns[i]), width[i],
			           i + 1 == AL_ARRAY_SIZE(columns));
	}
	return 0;
}

int verb_inspect(struct verb_ctx *ctx, int argc, char **argv)
{
	_cleanup_cjson_ cJSON *res = NULL;
	_cleanup_free_ char *path = NULL;
	bool json = true;
	int status;

	if (verb_args(
	        &(struct verb_spec){.usage = usage_inspect, .min = 1, .max = 1, .json = &json},
	        argc, argv, &status) < 0)
		return status;
	if ((status = resolve_args(ctx, "/v1/sandboxes", argv + optind, 1)))
		return status;
	path = sandbox_path(argv[optind], "");
	status = verb_json(ctx, "GET", path, NULL, &res);
	if (status == 0)
		print_json(res);
	return status;
}

/* Inspect of sandbox id into *out. */
static int inspect_sandbox(struct client *c, const char *id, cJSON **out, struct al_error *err)
{
	_cleanup_free_ char *path = sandbox_path(id, "");

	if (!path)
		return al_error_set(err, ENOMEM, "out of memory");
	return api_json(c, "GET", path, NULL, false, NULL, out, err);
}

/* The number at o.a.b(.c) (c may be NULL), or NAN when missing or null. */
static double json_path_num(const cJSON *o, const char *a, const char *b, const char *c)
{
	const cJSON *v =
	    cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(o, a), b);

	if (c)
		v = cJSON_GetObjectItemCaseSensitive(v, c);
	return cJSON_IsNumber(v) ? v->valuedouble : NAN;
}

static void human_or_dash(double v, char *buf, size_t len)
{
	if (isnan(v) || v <= 0)
		snprintf(buf, len, isnan(v) ? "-" : "0");
	else
		human_size(v, buf, len);
}

int verb_stats(struct verb_ctx *ctx, int argc, char **argv)
{
	static const struct option longopts[] = {
	    {"json", no_argument, NULL, OPT_JSON},
	    {"help", no_argument, NULL, 'h'},
	    {0},
	};
	_cleanup_cjson_ cJSON *list = NULL, *out = cJSON_CreateObject();
	_cleanup_strv_ char **ids = NULL;
	_cleanup_free_ double *cpu0 = NULL;
	struct al_error err = AL_ERROR_INIT;
	struct client c = {0};
	uint64_t t0;
	size_t n = 0;
	bool json = false;
	int opt, status = 0;
	cJSON *rows = out ? cJSON_AddArrayToObject(out, "sandboxes") : NULL;

	while ((opt = getopt_long(argc, argv, "+:h", longopts, NULL)) != -1) {
		if (opt == 'h')
			return show_usage(usage_stats);
		if (opt != OPT_JSON)
			return bad_option(usage_stats, opt, argv);
		json = true;
	}
	if (!rows)
		return usage_error(usage_stats, "out of memory");
	if (client_open(&c, ctx->socket_path, &err) < 0)
		return runtime_error(&err);
	if (optind < argc &&
	    (status = resolve_args(ctx, "/v1/sandboxes", argv + optind, argc - optind)))
		return status;
	if (optind < argc) {
		ids = calloc(1, sizeof(char *));
		for (int i = optind; ids && i < argc; i++)
			if (al_strv_push(&ids, argv[i]) < 0)
				al_strv_freep(&ids);
	} else {
		const cJSON *sb;
		if (api_json(&c, "GET", "/v1/sandboxes", NULL, false, NULL, &list, &err) < 0) {
			client_close(&c);
			return runtime_error(&err);
		}
		ids = calloc(1, sizeof(char *));
		cJSON_ArrayForEach(sb, cJSON_GetObjectItemCaseSensitive(list, "sandboxes"))
		{
			if (ids && al_strv_push(&ids, json_string(sb, "id")) < 0)
				al_strv_freep(&ids);
		}
	}
	n = ids ? al_strv_length(ids) : 0;
	cpu0 = calloc(n + 1, sizeof(double));
	if (!ids || !cpu0) {
		client_close(&c);
		return usage_error(usage_stats, "out of memory");
	}
	/* CPU time is cumulative: its share comes from two readings 1 s apart. */
	t0 = al_now_ms();
	for (size_t i = 0; i < n; i++) {
		_cleanup_cjson_ cJSON *sb = NULL;
		cpu0[i] = NAN;
		al_error_clear(&err);
		if (inspect_sandbox(&c, ids[i], &sb, &err) == 0)
			cpu0[i] = json_path_num(sb, "cgroup", "usage", "cpu_seconds");
	}
	if (n)
		usleep(1000 * 1000);
	if (!json)
		printf("%-14s  %-20s  %6s  %9s  %19s  %11s  %17s\n", "ID", "NAME", "CPU %",
		       "CPU TIME", "MEM / LIMIT", "PIDS / MAX", "DISK / LIMIT");
	for (size_t i = 0; i < n; i++) {
		_cleanup_cjson_ cJSON *sb = NULL;
		double cpu, mem, mem_max, pids, pids_max, disk, disk_max, share;
		char a[16], b[16], line[64];
		cJSON *row;

		al_error_clear(&err);
		if (inspect_sandbox(&c, ids[i], &sb, &err) < 0) {
			status = runtime_error(&err);
			continue;
		}
		cpu = json_path_num(sb, "cgroup", "usage", "cpu_seconds");
		share = (cpu - cpu0[i]) * 100.0 / ((double)(al_now_ms() - t0) / 1000.0);
		mem = json_path_num(sb, "cgroup", "usage", "memory_bytes");
		mem_max = json_path_num(sb, "cgroup", "limits", "memory_bytes");
		pids = json_path_num(sb, "cgroup", "usage", "pids");
		pids_max = json_path_num(sb, "cgroup", "limits", "pids");
		disk = json_path_num(sb, "disk", "used_bytes", NULL);
		disk_max = json_path_num(sb, "disk", "limit_bytes", NULL);
		row = cJSON_CreateObject();
		cJSON_AddStringToObject(row, "id", json_string(sb, "id"));
		cJSON_AddStringToObject(row, "name", json_string(sb, "name"));
#define ADD_NUM(key, v)                                                                            \
	(isnan(v) ? cJSON_AddNullToObject(row, key) : cJSON_AddNumberToObject(row, key, v))
		ADD_NUM("cpu_percent", share);
		ADD_NUM("cpu_seconds", cpu);
		ADD_NUM("memory_bytes", mem);
		ADD_NUM("memory_limit_bytes", mem_max);
		ADD_NUM("pids", pids);
		ADD_NUM("pids_limit", pids_max);
		ADD_NUM("disk_bytes", disk);
		ADD_NUM("disk_limit_bytes", disk_max);
#undef ADD_NUM
		cJSON_AddItemToArray(rows, row);
		if (json)
			continue;
		human_or_dash(mem, a, sizeof(a));
		human_or_dash(mem_max, b, sizeof(b));
		snprintf(line, sizeof(line), "%s / %s", a, b);
		printf("%-14s  %-20.20s  %6.1f  %8.1fs  %19s  ", json_string(sb, "id"),
		       json_string(sb, "name"), isnan(share) ? 0.0 : share, isnan(cpu) ? 0.0 : cpu,
		       line);
		if (isnan(pids_max) || pids_max == 0)
			snprintf(b, sizeof(b), "-");
		else
			snprintf(b, sizeof(b), "%.0f", pids_max);
		snprintf(line, sizeof(line), "%.0f / %s", isnan(pids) ? 0 : pids, b);
		printf("%11s  ", line);
		human_or_dash(disk, a, sizeof(a));
		human_or_dash(disk_max, b, sizeof(b));
		snprintf(line, sizeof(line), "%s / %s", a, b);
		printf("%17s\n", line);
	}
	client_close(&c);
	if (json)
		print_json(out);
	return status;
}

/* One line of `airlock events`: TIME TYPE WHAT PID COUNT. */
static void print_event(const cJSON *e, bool with_sandbox)
{
	const cJSON *pid = cJSON_GetObjectItemCaseSensitive(e, "pid");
	const char *type = json_string(e, "type");
	char what[96], pid_s[24];

	if (!strcmp(type, "seccomp"))
		snprintf(what, sizeof(what), "%s (%s, %s)", json_string(e, "syscall"),
		         json_string(e, "comm"), json_string(e, "action"));
	else if (!strcmp(type, "network_denied"))
		snprintf(what, sizeof(what), "denied: %s", json_string(e, "destination"));
	else if (!strcmp(type, "unrecorded"))
		snprintf(what, sizeof(what), "denials not recorded until %s (flood)",
		         cJSON_IsString(cJSON_GetObjectItemCaseSensitive(e, "last_time"))
		             ? json_string(e, "last_time")
		             : "later");
	else
		snprintf(what, sizeof(what), "%s",
		         !strcmp(type, "oom_kill")      ? "memory limit: OOM kill"
		         : !strcmp(type, "pids_max")    ? "pids limit reached"
		         : !strcmp(type, "pid1_exited") ? "PID 1 exited: sandbox stopped"
		                                        : type);
	if (cJSON_IsNumber(pid))
		snprintf(pid_s, sizeof(pid_s), "%d", (int)pid->valuedouble);
	else
		snprintf(pid_s, sizeof(pid_s), "-");
	if (with_sandbox)
		printf("%-14s  ", json_string(e, "sandbox"));
	printf("%-24s  %-8s  %-40s  %-7s  %.0f\n", json_string(e, "time"), type, what, pid_s,
	       cJSON_GetNumberValue(cJSON_GetObjectItemCaseSensitive(e, "count")));
}

struct follow {
	char **ids; /* only these sandboxes' events; none: all */
	int n_ids;
	bool json;
};

static bool wanted(const struct follow *f, const cJSON *e)
{
	for (int i = 0; i < f->n_ids; i++)
		if (!strcmp(f->ids[i], json_string(e, "sandbox")))
			return true;
	return f->n_ids == 0;
}

/* One line of GET /v1/events?follow=1: an event, or a blank keep-alive. */
static void follow_line(const char *line, size_t len, void *data)
{
	struct follow *f = data;
	_cleanup_cjson_ cJSON *e = len ? cJSON_ParseWithLength(line, len) : NULL;

	if (!cJSON_IsObject(e) || !wanted(f, e))
		return;
	if (f->json)
		printf("%.*s\n", (int)len, line);
	else
		print_event(e, true);
	/* A pipe (airlock events --follow | grep oom) sees each as it comes. */
	fflush(stdout);
}

static const char events_heading[] = "%-14s  %-24s  %-8s  %-40s  %-7s  %s\n";

static int follow_option(void *data, int opt, const char *arg)
{
	(void)arg;
	if (opt != 'f')
		return 1;
	*(bool *)data = true;
	return 0;
}

/* airlock events [--follow] without an id, or --follow with ids: every sandbox's. */
static int all_events(struct verb_ctx *ctx, struct follow *f, bool follow)
{
	_cleanup_cjson_ cJSON *res = NULL;
	const cJSON *e;
	int status;

	if (!f->json)
		printf(events_heading, "SANDBOX", "TIME", "TYPE", "WHAT", "PID", "COUNT");
	if (!follow) {
		status = verb_json(ctx, "GET", "/v1/events", NULL, &res);
		if (status || f->json) {
			if (!status)
				print_json(res);
			return status;
		}
		cJSON_ArrayForEach(e, cJSON_GetObjectItemCaseSensitive(res, "events"))
		{
			if (wanted(f, e))
				print_event(e, true);
		}
		return 0;
	}
	fflush(stdout);
	status = verb_call(ctx,
	                   &(struct request){.method = "GET",
	                                     .path = "/v1/events?follow=1",
	                                     .stream_fd = -1,
	                                     .on_line = follow_line,
	                                     .line_data = f,
	                                     .abortable = true},
	                   NULL, "events --follow");
	/* Ctrl-C is how a follow ends; airlockd ends it only when it stops. */
	if (pending_signal)
		return 0;
	if (status == 0)
		fprintf(stderr,
		        "airlock: events --follow: airlockd closed the stream (stopping?)\n");
	return EXIT_RUNTIME;
}

int verb_events(struct verb_ctx *ctx, int argc, char **argv)
{
	_cleanup_cjson_ cJSON *res = NULL;
	_cleanup_free_ char *path = NULL;
	static const struct option longopts[] = {
	    {"follow", no_argument, NULL, 'f'},
	    {0},
	};
	const cJSON *e, *v;
	bool json = false, follow = false;
	int status;

	if (verb_args(&(struct verb_spec){.usage = usage_events,
	                                  .options = longopts,
	                                  .shortopts = "f",
	                                  .option = follow_option,
	                                  .data = &follow,
	                                  .max = -1,
	                                  .json = &json},
	              argc, argv, &status) < 0)
		return status;
	if ((status = resolve_args(ctx, "/v1/sandboxes", argv + optind, argc - optind)))
		return status;
	if (follow || optind == argc)
		return all_events(
		    ctx,
		    &(struct follow){.ids = argv + optind, .n_ids = argc - optind, .json = json},
		    follow);
	if (argc - optind > 1)
		return usage_error(usage_events, "one ID without --follow");
	path = sandbox_path(argv[optind], "/events");
	status = verb_json(ctx, "GET", path, NULL, &res);
	if (status)
		return status;
	if (json) {
		print_json(res);
		return 0;
	}
	v = cJSON_GetObjectItemCaseSensitive(res, "collecting");
	if (!cJSON_IsTrue(v))
		fprintf(stderr, "airlock: warning: seccomp denials are not being recorded: %s\n",
		        json_string(res, "error"));
	printf("%-24s  %-8s  %-40s  %-7s  %s\n", "TIME", "TYPE", "WHAT", "PID", "COUNT");
	cJSON_ArrayForEach(e, cJSON_GetObjectItemCaseSensitive(res, "events"))
	    print_event(e, false);
	v = cJSON_GetObjectItemCaseSensitive(res, "suppressed");
	if (cJSON_GetNumberValue(v) > 0)
		printf("(%.0f more denials were counted but not listed: rate limit)\n",
		       cJSON_GetNumberValue(v));
	return 0;
}

int verb_rm(struct verb_ctx *ctx, int argc, char **argv)
{
	_cleanup_cjson_ cJSON *out = cJSON_CreateObject();
	cJSON *removed = out ? cJSON_AddArrayToObject(out, "removed") : NULL;
	struct al_error err = AL_ERROR_INIT;
	struct client c = {0};
	bool json = false;
	int status = 0;

	if (verb_args(&(struct verb_spec){.usage = usage_rm, .min = 1, .max = -1, .json = &json},
	              argc, argv, &status) < 0)
		return status;
	if (!removed)
		return usage_error(usage_rm, "out of memory");
	if ((status = resolve_args(ctx, "/v1/sandboxes", argv + optind, argc - optind)))
		return status;
	if (client_open(&c, ctx->socket_path, &err) < 0)
		return runtime_error(&err);
	/* Like rm: go on with the others when one fails. */
	for (int i = optind; i < argc; i++) {
		al_error_clear(&err);
		if (destroy_sandbox(&c, argv[i], true, &err) < 0)
			status = runtime_error(&err);
		else if (json)
			cJSON_AddItemToArray(removed, cJSON_CreateString(argv[i]));
		else
			printf("%s\n", argv[i]);
	}
	client_close(&c);
	if (json)
		print_json(out);
	return status;
}

int verb_info(struct verb_ctx *ctx, int argc, char **argv)
{
	_cleanup_cjson_ cJSON *res = NULL;
	bool json = true;
	int status;

	if (verb_args(&(struct verb_spec){.usage = usage_info, .json = &json}, argc, argv,
	              &status) < 0)
		return status;
	status = verb_json(ctx, "GET", "/v1/info", NULL, &res);
	if (status == 0)
		print_json(res);
	return status;
}

int verb_top(struct verb_ctx *ctx, int argc, char **argv)
{
	_cleanup_cjson_ cJSON *res = NULL;
	_cleanup_free_ char *path = NULL;
	const cJSON *p;
	bool json = false;
	int status;

	if (verb_args(&(struct verb_spec){.usage = usage_top, .min = 1, .max = 1, .json = &json},
	              argc, argv, &status) < 0)
		return status;
	if ((status = resolve_args(ctx, "/v1/sandboxes", argv + optind, 1)))
		return status;
	path = sandbox_path(argv[optind], "/top");
	status = verb_json(ctx, "GET", path, NULL, &res);
	if (status || json) {
		if (!status)
			print_json(res);
		return status;
	}
	printf("%7s %7s %6s %-4s %8s %9s  %s\n", "PID", "PPID", "UID", "STAT", "RSS", "TIME",
	       "COMMAND");
	cJSON_ArrayForEach(p, cJSON_GetObjectItemCaseSensitive(res, "processes"))
	{
		char rss[16];
		human_size(al_json_num(p, "rss_bytes", 0), rss, sizeof(rss));
		printf("%7.0f %7.0f %6.0f %-4s %8s %8.2fs  %s\n", al_json_num(p, "pid", 0),
		       al_json_num(p, "ppid", 0), al_json_num(p, "uid", -1),
		       json_string(p, "state"), rss, al_json_num(p, "cpu_seconds", 0),
		       json_string(p, "command"));
	}
	return 0;
}
