/* SPDX-License-Identifier: Apache-2.0 */
/*
 * airlock: the command-line client of airlockd for people.
 *
 * It speaks the same HTTP/1.1 + JSON API as every other client (docs/api.md),
 * through libcurl on the daemon's Unix socket.  One CURL handle is reused for
 * every request of an invocation so the connection is kept alive.
 *
 * Exit status: a command's own status for run/exec (128+N when it died of
 * signal N, 124 when airlockd killed it on timeout), 125 when airlock or
 * airlockd failed (as docker and podman do), 2 for usage errors.
 */
#include "cli.h"

#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>

static void on_signal(int sig)
{
	pending_signal = sig;
}

static const struct verb {
	const char *name;
	int (*fn)(struct verb_ctx *ctx, int argc, char **argv);
} verbs[] = {
    {"run", verb_run},
    {"create", verb_create},
    {"exec", verb_exec},
    {"ls", verb_ls},
    {"inspect", verb_inspect},
    {"events", verb_events},
    {"rm", verb_rm},
    {"prune", verb_prune},
    {"stats", verb_stats},
    {"write", verb_write},
    {"read", verb_read},
    {"info", verb_info},
    {"persist", verb_persist},
    {"hydrate", verb_hydrate},
    {"snapshot", verb_snapshot},
    {"restore", verb_restore},
    {"snapshots", verb_snapshots},
    {"snapshot-rm", verb_snapshot_rm},
    {"image", verb_image},
    {"snapshot-export", verb_snapshot_export},
    {"snapshot-import", verb_snapshot_import},
};

static void install_signal_handlers(void)
{
	struct sigaction sa = {.sa_handler = on_signal};

	/* No SA_RESTART: a blocking poll() must return so the loop sees the signal. */
	sigemptyset(&sa.sa_mask);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGHUP, &sa, NULL);
	/* A closed stdout ends that stream, not the CLI (the sandbox must still go). */
	signal(SIGPIPE, SIG_IGN);
}

int main(int argc, char **argv)
{
	static const struct option longopts[] = {
	    {"socket", required_argument, NULL, 's'},
	    {"help", no_argument, NULL, 'h'},
	    {"version", no_argument, NULL, 'V'},
	    {0},
	};
	struct verb_ctx ctx = {.socket_path = getenv("AIRLOCK_SOCKET")};
	const char *verb;
	int opt;

	if (!ctx.socket_path || !ctx.socket_path[0])
		ctx.socket_path = DEFAULT_SOCKET;
	opterr = 0;
	while ((opt = getopt_long(argc, argv, "+:s:h", longopts, NULL)) != -1) {
		switch (opt) {
		case 's':
			ctx.socket_path = optarg;
			break;
		case 'h':
			return show_usage(usage_main);
		case 'V':
			printf("airlock %s\n", AIRLOCK_VERSION);
			return 0;
		default:
			return bad_option(usage_main, opt, argv);
		}
	}
	if (optind >= argc)
		return usage_error(usage_main, "no verb given");
	verb = argv[optind];
	for (size_t i = 0; i < AL_ARRAY_SIZE(verbs); i++) {
		if (strcmp(verbs[i].name, verb) == 0) {
			int verb_argc = argc - optind;
			char **verb_argv = argv + optind;
			install_signal_handlers();
			/* Restart getopt (0: fully) on the verb's own arguments. */
			optind = 0;
			int status = verbs[i].fn(&ctx, verb_argc, verb_argv);
			al_strv_free(resolved_ids);
			return status;
		}
	}
	{
		const char *names[AL_ARRAY_SIZE(verbs)];
		const char *guess;
		for (size_t i = 0; i < AL_ARRAY_SIZE(verbs); i++)
			names[i] = verbs[i].name;
		guess = closest_word(verb, names, AL_ARRAY_SIZE(verbs));
		if (guess)
			return usage_error(usage_main, "unknown command '%s'; did you mean '%s'?",
			                   verb, guess);
	}
	return usage_error(usage_main, "unknown command '%s'", verb);
}
