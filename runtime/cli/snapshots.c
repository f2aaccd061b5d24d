/* SPDX-License-Identifier: Apache-2.0 */
/* airlock CLI: snapshot, restore, snapshots, snapshot-rm, snapshot-export/-import. */
#include "cli.h"

#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

enum { OPT_NO_PROCESSES = 0x200 };

static int snapshot_option(void *data, int opt, const char *arg)
{
	(void)arg;
	if (opt != OPT_NO_PROCESSES)
		return 1;
	*(bool *)data = false;
	return 0;
}

/* Print the id of answer res, or all of it with --json. */
static int print_id(const cJSON *res, bool json)
{
	if (json)
		print_json(res);
	else
		printf("%s\n", json_string(res, "id"));
	return 0;
}

int verb_snapshot(struct verb_ctx *ctx, int argc, char **argv)
{
	static const struct option longopts[] = {
	    {"no-processes", no_argument, NULL, OPT_NO_PROCESSES},
	    {0},
	};
	_cleanup_cjson_ cJSON *req = cJSON_CreateObject(), *res = NULL;
	_cleanup_free_ char *path = NULL;
	bool processes = true, json = false;
	int status;

	if (verb_args(&(struct verb_spec){.usage = usage_snapshot,
	                                  .options = longopts,
	                                  .option = snapshot_option,
	                                  .data = &processes,
	                                  .min = 1,
	                                  .max = 1,
	                                  .json = &json},
	              argc, argv, &status) < 0)
		return status;
	if ((status = resolve_args(ctx, "/v1/sandboxes", argv + optind, 1)))
		return status;
	cJSON_AddBoolToObject(req, "processes", processes);
	path = sandbox_path(argv[optind], "/snapshots");
	status = verb_json(ctx, "POST", path, req, &res);
	return status ? status : print_id(res, json);
}

static int restore_option(void *data, int opt, const char *arg)
{
	if (opt != OPT_NAME)
		return 1;
	cJSON_AddStringToObject(data, "name", arg);
	return 0;
}

int verb_restore(struct verb_ctx *ctx, int argc, char **argv)
{
	static const struct option longopts[] = {
	    {"name", required_argument, NULL, OPT_NAME},
	    {0},
	};
	_cleanup_cjson_ cJSON *req = cJSON_CreateObject(), *res = NULL;
	bool json = false;
	int status;

	if (verb_args(&(struct verb_spec){.usage = usage_restore,
	                                  .options = longopts,
	                                  .option = restore_option,
	                                  .data = req,
	                                  .min = 1,
	                                  .max = 1,
	                                  .json = &json},
	              argc, argv, &status) < 0)
		return status;
	if ((status = resolve_args(ctx, "/v1/snapshots", argv + optind, 1)))
		return status;
	cJSON_AddStringToObject(req, "snapshot", argv[optind]);
	status = verb_json(ctx, "POST", "/v1/sandboxes", req, &res);
	return status ? status : print_id(res, json);
}

int verb_snapshots(struct verb_ctx *ctx, int argc, char **argv)
{
	_cleanup_cjson_ cJSON *res = NULL;
	const cJSON *snap;
	bool json = false;
	int status;

	if (verb_args(&(struct verb_spec){.usage = usage_snapshots, .json = &json}, argc, argv,
	              &status) < 0)
		return status;
	status = verb_json(ctx, "GET", "/v1/snapshots", NULL, &res);
	if (status)
		return status;
	if (json) {
		print_json(res);
		return 0;
	}
	printf("%-14s %-14s %-14s %-25s %-9s %12s %12s\n", "ID", "PARENT", "SANDBOX", "CREATED",
	       "PROCESSES", "SIZE", "WRITTEN");
	cJSON_ArrayForEach(snap, cJSON_GetObjectItemCaseSensitive(res, "snapshots"))
	{
		const cJSON *sizes = cJSON_GetObjectItemCaseSensitive(snap, "sizes");
		const cJSON *sb = cJSON_GetObjectItemCaseSensitive(snap, "sandbox");
		if (cJSON_GetObjectItemCaseSensitive(snap, "error")) {
			printf("%-14s damaged: %s\n", json_string(snap, "id"),
			       json_string(snap, "error"));
			continue;
		}
		printf("%-14s %-14s %-14s %-25s %-9s %12.0f %12.0f\n", json_string(snap, "id"),
		       json_string(snap, "parent")[0] ? json_string(snap, "parent") : "-",
		       json_string(sb, "id"), json_string(snap, "created"),
		       cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(snap, "processes")) ? "yes"
		                                                                         : "no",
		       cJSON_GetNumberValue(cJSON_GetObjectItemCaseSensitive(sizes, "total")),
		       cJSON_GetNumberValue(cJSON_GetObjectItemCaseSensitive(sizes, "written")));
	}
	return 0;
}

int verb_snapshot_rm(struct verb_ctx *ctx, int argc, char **argv)
{
	_cleanup_cjson_ cJSON *out = cJSON_CreateObject();
	cJSON *removed = out ? cJSON_AddArrayToObject(out, "removed") : NULL;
	bool json = false;
	int status, failed = 0;

	if (verb_args(
	        &(struct verb_spec){.usage = usage_snapshot_rm, .min = 1, .max = -1, .json = &json},
	        argc, argv, &status) < 0)
		return status;
	if ((status = resolve_args(ctx, "/v1/snapshots", argv + optind, argc - optind)))
		return status;
	if (!removed)
		return usage_error(usage_snapshot_rm, "out of memory");
	/* Like rm: go on with the others when one fails. */
	for (int i = optind; i < argc; i++) {
		_cleanup_free_ char *path = api_path("/v1/snapshots", argv[i], "");
		_cleanup_cjson_ cJSON *res = NULL;
		if (verb_call(ctx,
		              &(struct request){.method = "DELETE", .path = path, .stream_fd = -1},
		              &res, "snapshot-rm %s", argv[i]))
			failed = 1;
		else
			cJSON_AddItemToArray(removed, cJSON_CreateString(argv[i]));
	}
	if (json)
		print_json(out);
	return failed;
}

int verb_snapshot_export(struct verb_ctx *ctx, int argc, char **argv)
{
	_cleanup_free_ char *path = NULL;
	int status;

	if (simple_args(argc, argv, usage_snapshot_export, 1, 1, &status) < 0)
		return status;
	if (isatty(STDOUT_FILENO))
		return usage_error(usage_snapshot_export,
		                   "refusing to write a stream to a terminal");
	if ((status = resolve_args(ctx, "/v1/snapshots", argv + optind, 1)))
		return status;
	path = api_path("/v1/snapshots", argv[optind], "/export");
	return verb_get_stdout(ctx, path, "export", "snapshot-export %s", argv[optind]);
}

int verb_snapshot_import(struct verb_ctx *ctx, int argc, char **argv)
{
	_cleanup_cjson_ cJSON *res = NULL;
	bool json = false;
	int status;

	if (verb_args(&(struct verb_spec){.usage = usage_snapshot_import, .json = &json}, argc,
	              argv, &status) < 0)
		return status;
	if (isatty(STDIN_FILENO))
		return usage_error(usage_snapshot_import, "expected a snapshot stream on stdin");
	status = verb_call(ctx,
	                   &(struct request){.method = "POST",
	                                     .path = "/v1/snapshots/import",
	                                     .content_type = "application/x-tar",
	                                     .body_stdin = true,
	                                     .stream_fd = -1},
	                   &res, "snapshot-import");
	if (status)
		return status;
	if (!cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(res, "id"))) {
		fprintf(stderr, "airlock: snapshot-import: airlockd's answer has no snapshot id\n");
		return EXIT_RUNTIME;
	}
	return print_id(res, json);
}
