/* SPDX-License-Identifier: Apache-2.0 */
/*
 * airlock-harness: the control plane.  It holds the credentials, runs the agent loop
 * against a sandbox through a provider, keeps the RunState and the audit trail, and
 * resumes a run after any crash.  Contract: docs/harness.md.
 */
#include "audit.h"
#include "log.h"
#include "run.h"

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
	fputs(
	    "usage: airlock-harness run TASK.json [--run-dir DIR] [--credentials FILE]\n"
	    "       airlock-harness resume DIR [--credentials FILE] [--provider FILE.json]\n"
	    "       airlock-harness audit verify DIR\n"
	    "       airlock-harness gc      (remove airlockd sandboxes of runs gone, completed or "
	    "failed)\n"
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
