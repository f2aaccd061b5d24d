/* SPDX-License-Identifier: Apache-2.0 */
/* airlock CLI: write, read, persist, hydrate. */
#include "cli.h"

#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* "/v1/sandboxes/ID/files?path=FILE<extra>"; NULL when out of memory. */
static char *files_path(const char *id, const char *file, const char *extra)
{
	_cleanup_curl_free_ char *escaped = curl_easy_escape(NULL, file, 0);
	_cleanup_free_ char *suffix = NULL;

	if (!escaped || asprintf(&suffix, "/files?path=%s%s", escaped, extra) < 0)
		return NULL;
	return sandbox_path(id, suffix);
}

int verb_write(struct verb_ctx *ctx, int argc, char **argv)
{
	_cleanup_free_ char *data = NULL;
	_cleanup_free_ char *path = NULL;
	_cleanup_cjson_ cJSON *res = NULL;
	struct al_error err = AL_ERROR_INIT;
	bool json = false;
	size_t len = 0;
	int status;

	if (verb_args(&(struct verb_spec){.usage = usage_write, .min = 2, .max = 2, .json = &json},
	              argc, argv, &status) < 0)
		return status;
	if ((status = resolve_args(ctx, "/v1/sandboxes", argv + optind, 1)))
		return status;
	if (al_read_fd(STDIN_FILENO, MAX_UPLOAD, &data, &len, &err) < 0) {
		al_error_prefix(&err, "stdin");
		return runtime_error(&err);
	}
	path = files_path(argv[optind], argv[optind + 1], "&parents=1");
	status = verb_call(ctx,
	                   &(struct request){.method = "PUT",
	                                     .path = path,
	                                     .content_type = "application/octet-stream",
	                                     .body = data,
	                                     .body_len = len,
	                                     .stream_fd = -1},
	                   json ? &res : NULL, "write %s", argv[optind + 1]);
	if (status == 0 && json)
		print_json(res);
	return status;
}

int verb_read(struct verb_ctx *ctx, int argc, char **argv)
{
	_cleanup_free_ char *path = NULL;
	int status;

	if (simple_args(argc, argv, usage_read, 2, 2, &status) < 0)
		return status;
	if ((status = resolve_args(ctx, "/v1/sandboxes", argv + optind, 1)))
		return status;
	path = files_path(argv[optind], argv[optind + 1], "");
	return verb_call(ctx,
	                 &(struct request){.method = "GET",
	                                   .path = path,
	                                   .stream_fd = STDOUT_FILENO,
	                                   .progress = "read",
	                                   .splice_body = true},
	                 NULL, "read %s", argv[optind + 1]);
}

/* ---- workspace archives ---- */

int verb_persist(struct verb_ctx *ctx, int argc, char **argv)
{
	_cleanup_free_ char *path = NULL;
	int status;

	if (simple_args(argc, argv, usage_persist, 1, 1, &status) < 0)
		return status;
	if (isatty(STDOUT_FILENO))
		return usage_error(usage_persist, "refusing to write a tar to a terminal");
	if ((status = resolve_args(ctx, "/v1/sandboxes", argv + optind, 1)))
		return status;
	path = sandbox_path(argv[optind], "/workspace");
	return verb_get_stdout(ctx, path, "persist", "persist %s", argv[optind]);
}

int verb_hydrate(struct verb_ctx *ctx, int argc, char **argv)
{
	enum { OPT_MAX_INPUT = 0x200, OPT_MAX_EXTRACTED, OPT_MAX_MEMBERS };
	static const struct option longopts[] = {
	    {"max-input-bytes", required_argument, NULL, OPT_MAX_INPUT},
	    {"max-extracted-bytes", required_argument, NULL, OPT_MAX_EXTRACTED},
	    {"max-members", required_argument, NULL, OPT_MAX_MEMBERS},
	    {"json", no_argument, NULL, OPT_JSON},
	    {"help", no_argument, NULL, 'h'},
	    {0},
	};
	static const char *const names[] = {"max_input_bytes", "max_extracted_bytes",
	                                    "max_members"};
	_cleanup_free_ char *base = NULL, *path = NULL;
	_cleanup_cjson_ cJSON *res = NULL;
	struct al_error err = AL_ERROR_INIT;
	bool json = false;
	char query[256] = "";
	uint64_t max_input = 1ULL << 30;
	struct stat st;
	int opt, r;

	while ((opt = getopt_long(argc, argv, "+:h", longopts, NULL)) != -1) {
		uint64_t v;
		size_t used = strlen(query);
		if (opt == 'h')
			return show_usage(usage_hydrate);
		if (opt == OPT_JSON) {
			json = true;
			continue;
		}
		if (opt < OPT_MAX_INPUT || opt > OPT_MAX_MEMBERS)
			return bad_option(usage_hydrate, opt, argv);
		if (al_parse_size(optarg, &v, &err) < 0 || v == 0)
			return usage_error(usage_hydrate, "--%s: expected a positive number",
			                   longopts[opt - OPT_MAX_INPUT].name);
		if (opt == OPT_MAX_INPUT)
			max_input = v;
		snprintf(query + used, sizeof(query) - used, "%c%s=%llu", used ? '&' : '?',
		         names[opt - OPT_MAX_INPUT], (unsigned long long)v);
	}
	if (argc - optind != 1)
		return usage_error(usage_hydrate,
		                   argc - optind < 1 ? "missing argument" : "unexpected argument");
	if (isatty(STDIN_FILENO))
		return usage_error(usage_hydrate, "expected a tar on stdin, not a terminal");
	if ((r = resolve_args(ctx, "/v1/sandboxes", argv + optind, 1)))
		return r;
	/* A file known too large is refused here, not after it was sent. */
	if (fstat(STDIN_FILENO, &st) == 0 && S_ISREG(st.st_mode) &&
	    (uint64_t)st.st_size > max_input) {
		al_error_set(&err, EFBIG, "stdin: %lld bytes, over --max-input-bytes (%llu)",
		             (long long)st.st_size, (unsigned long long)max_input);
		return runtime_error(&err);
	}
	base = sandbox_path(argv[optind], "/workspace");
	if (base && asprintf(&path, "%s%s", base, query) < 0)
		path = NULL;
	r = verb_call(ctx,
	              &(struct request){.method = "PUT",
	                                .path = path,
	                                .content_type = "application/x-tar",
	                                /* Streamed as it is read: airlockd extracts
	                                 * while it comes, max_input_bytes its bound. */
	                                .body_stdin = true,
	                                .stream_fd = -1,
	                                .progress = "hydrate"},
	              json ? &res : NULL, "hydrate %s", argv[optind]);
	if (r == 0 && json)
		print_json(res);
	return r;
}
