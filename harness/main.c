/* SPDX-License-Identifier: Apache-2.0 */
/*
 * airlock-harness: the control plane.  It holds the credentials, runs the agent loop
 * against a sandbox through a provider, keeps the RunState and the audit trail, and
 * resumes a run after any crash.  Contract: docs/harness.md.
 */
#include "audit.h"
#include "cleanup.h"
#include "credentials.h"
#include "log.h"
#include "run.h"
#include "store.h"
#include "task.h"

#include <errno.h>
#include <getopt.h>
#include <stdbool.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <curl/curl.h>

static void usage(FILE *f)
{
	fputs("usage: airlock-harness run TASK.json [--run-dir DIR] [--credentials FILE]\n"
	      "       airlock-harness resume DIR [--credentials FILE] [--provider FILE.json]\n"
	      "       airlock-harness audit verify DIR\n"
	      "       airlock-harness store put|get|delete TASK.json NAME [FILE] [--credentials "
	      "FILE]\n"
	      "       airlock-harness gc [--socket PATH]   (remove airlockd's sandboxes of runs\n"
	      "                 gone, completed or failed)\n"
	      "       airlock-harness --version\n",
	      f);
}

static int parse_options(int argc, char **argv, struct al_run_options *o, bool allow_run_dir)
{
	static const struct option longopts[] = {
	    {"run-dir", required_argument, NULL, 'd'},
	    {"credentials", required_argument, NULL, 'c'},
	    {"provider", required_argument, NULL, 'p'},
	    {"help", no_argument, NULL, 'h'},
	    {NULL, 0, NULL, 0},
	};
	int c;

	optind = 1;
	while ((c = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
		switch (c) {
		case 'd':
			if (!allow_run_dir) {
				fprintf(stderr, "airlock-harness: --run-dir is only for run\n");
				return -EINVAL;
			}
			o->run_dir = optarg;
			break;
		case 'c':
			o->credentials = optarg;
			break;
		case 'p':
			if (allow_run_dir) {
				fprintf(stderr, "airlock-harness: --provider is only for resume\n");
				return -EINVAL;
			}
			o->provider = optarg;
			break;
		case 'h':
			usage(stdout);
			exit(0);
		default:
			usage(stderr);
			return -EINVAL;
		}
	}
	return optind;
}

static int cmd_audit(int argc, char **argv)
{
	struct al_error err = AL_ERROR_INIT;
	uint64_t n = 0;
	int r;

	if (argc != 3 || strcmp(argv[1], "verify")) {
		usage(stderr);
		return AL_EXIT_USAGE;
	}
	r = al_audit_verify(argv[2], &n, &err);
	if (r < 0) {
		printf("audit: %s\n", err.msg);
		return AL_EXIT_FAILED;
	}
	printf("audit: OK (%" PRIu64 " records)\n", n);
	return AL_EXIT_OK;
}

/* The task's snapshot.store by hand: what the harness writes there can be checked, and an
 * object can be put or fetched with the same verification (docs/storage.md). */
static int cmd_store(int argc, char **argv)
{
	struct al_run_options o = {0};
	struct al_error err = AL_ERROR_INIT;
	struct al_task task = {0};
	struct al_credentials creds = {0};
	_cleanup_(al_store_closep) struct al_store *st = NULL;
	_cleanup_free_ char *base = NULL;
	_cleanup_free_ char *where = NULL;
	const char *op, *file = NULL;
	char sha[65];
	int i, n, r;

	i = parse_options(argc, argv, &o, false);
	if (i < 0)
		return AL_EXIT_USAGE;
	n = argc - i;
	op = n >= 1 ? argv[i] : "";
	if (!((!strcmp(op, "put") || !strcmp(op, "get")) && n == 4) &&
	    !(!strcmp(op, "delete") && n == 3)) {
		usage(stderr);
		return AL_EXIT_USAGE;
	}
	if (n == 4)
		file = argv[i + 3];
	if (al_task_load(argv[i + 1], &task, &base, NULL, NULL, &err) < 0 ||
	    al_credentials_load(o.credentials, &creds, &err) < 0) {
		fprintf(stderr, "airlock-harness: %s\n", err.msg);
		if (task.json)
			al_task_free(&task);
		return AL_EXIT_USAGE;
	}
	r = al_store_open(&task.store, &creds, &st, &err);
	if (r == 0) {
		where = al_store_describe(st, argv[i + 2]);
		if (!strcmp(op, "put"))
			r = al_store_put_file(st, argv[i + 2], file, sha, &err);
		else if (!strcmp(op, "get"))
			r = al_store_get_file(st, argv[i + 2], file, NULL, &err);
		else
			r = al_store_delete(st, argv[i + 2], &err);
	}
	if (r < 0)
		fprintf(stderr, "airlock-harness: store %s: %s\n", op, err.msg);
	else if (!strcmp(op, "put"))
		printf("%s sha256 %s\n", where ? where : argv[i + 2], sha);
	else
		printf("%s: %s\n", where ? where : argv[i + 2],
		       !strcmp(op, "get") ? "verified" : "deleted");
	al_store_close(TAKE_PTR(st));
	al_credentials_free(&creds);
	al_task_free(&task);
	return r < 0 ? AL_EXIT_FAILED : AL_EXIT_OK;
}

int main(int argc, char **argv)
{
	struct al_run_options o = {0};
	int i, rc;

	al_log_set_ident("airlock-harness");
	if (argc < 2) {
		usage(stderr);
		return AL_EXIT_USAGE;
	}
	if (!strcmp(argv[1], "-h") || !strcmp(argv[1], "--help")) {
		usage(stdout);
		return AL_EXIT_OK;
	}
	if (!strcmp(argv[1], "--version")) {
		printf("airlock-harness %s\n", AIRLOCK_VERSION);
		return AL_EXIT_OK;
	}
	if (!strcmp(argv[1], "audit"))
		return cmd_audit(argc - 1, argv + 1);
	if (!strcmp(argv[1], "gc")) {
		if (argc == 4 && !strcmp(argv[2], "--socket"))
			o.socket = argv[3];
		else if (argc != 2) {
			usage(stderr);
			return AL_EXIT_USAGE;
		}
		if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
			fprintf(stderr, "airlock-harness: cannot initialise libcurl\n");
			return AL_EXIT_FAILED;
		}
		rc = al_run_gc(&o);
		curl_global_cleanup();
		return rc;
	}
	if (!strcmp(argv[1], "store")) {
		if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
			return AL_EXIT_FAILED;
		rc = cmd_store(argc - 1, argv + 1);
		curl_global_cleanup();
		return rc;
	}
	if (strcmp(argv[1], "run") && strcmp(argv[1], "resume")) {
		fprintf(stderr, "airlock-harness: unknown command %s\n", argv[1]);
		usage(stderr);
		return AL_EXIT_USAGE;
	}
	i = parse_options(argc - 1, argv + 1, &o, !strcmp(argv[1], "run"));
	if (i < 0)
		return AL_EXIT_USAGE;
	if (argc - 1 - i != 1) {
		usage(stderr);
		return AL_EXIT_USAGE;
	}
	if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
		fprintf(stderr, "airlock-harness: cannot initialise libcurl\n");
		return AL_EXIT_FAILED;
	}
	if (!strcmp(argv[1], "run")) {
		o.task_path = argv[1 + i];
		rc = al_run_start(&o);
	} else {
		o.run_dir = argv[1 + i];
		rc = al_run_resume(&o);
	}
	curl_global_cleanup();
	return rc;
}
