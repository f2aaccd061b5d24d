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
	const char *usage;
} verbs[] = {
    {"run", verb_run, usage_run},
    {"create", verb_create, usage_create},
    {"exec", verb_exec, usage_exec},
    {"ls", verb_ls, usage_ls},
    {"inspect", verb_inspect, usage_inspect},
    {"events", verb_events, usage_events},
    {"rm", verb_rm, usage_rm},
    {"prune", verb_prune, usage_prune},
    {"stats", verb_stats, usage_stats},
    {"top", verb_top, usage_top},
    {"write", verb_write, usage_write},
    {"read", verb_read, usage_read},
    {"cp", verb_cp, usage_cp},
    {"info", verb_info, usage_info},
    {"persist", verb_persist, usage_persist},
    {"hydrate", verb_hydrate, usage_hydrate},
    {"snapshot", verb_snapshot, usage_snapshot},
    {"restore", verb_restore, usage_restore},
    {"snapshots", verb_snapshots, usage_snapshots},
    {"snapshot-rm", verb_snapshot_rm, usage_snapshot_rm},
    {"image", verb_image, usage_image},
    {"snapshot-export", verb_snapshot_export, usage_snapshot_export},
    {"snapshot-import", verb_snapshot_import, usage_snapshot_import},
};

/* A help text as the body of a man page section: literal, roff's specials escaped. */
static void man_text(const char *text)
{
	fputs(".nf\n", stdout);
	for (const char *line = text; *line;) {
		size_t len = strcspn(line, "\n");
		if (line[0] == '.' || line[0] == '\'')
			fputs("\\&", stdout);
		for (size_t i = 0; i < len; i++)
			fputs(line[i] == '\\'  ? "\\e"
			      : line[i] == '-' ? "\\-"
			                       : (char[2]){line[i], 0},
			      stdout);
		putchar('\n');
		line += len + (line[len] == '\n');
	}
	fputs(".fi\n", stdout);
}

/* airlock(1), made at build time from the help texts (meson.build). */
static int help_man(void)
{
	printf(".TH AIRLOCK 1 \"\" \"airlock %s\" \"User Commands\"\n", AIRLOCK_VERSION);
	puts(".SH NAME\nairlock \\- the command-line client of airlockd");
	puts(".SH SYNOPSIS");
	man_text(usage_main);
	puts(".SH COMMANDS");
	for (size_t i = 0; i < AL_ARRAY_SIZE(verbs); i++) {
		printf(".SS %s\n", verbs[i].name);
		man_text(verbs[i].usage);
	}
	puts(".SH EXIT STATUS\n"
	     "A command's own status for run and exec (128+N when it died of signal N, 124 when "
	     "it was killed on timeout); 125 when airlock or airlockd failed; 2 for usage errors.");
	puts(".SH ENVIRONMENT\n.TP\n.B AIRLOCK_SOCKET\nairlockd's socket (default " DEFAULT_SOCKET
	     ").");
	puts(".SH SEE ALSO\n.BR airlockd (8)");
	return 0;
}

static void completion_words(const char *text)
{
	char *words[64];
	size_t n = usage_options(text, words, AL_ARRAY_SIZE(words));

	for (size_t i = 0; i < n; i++) {
		printf(" %s", words[i]);
		free(words[i]);
	}
}

/* A bash completion script, made at build time from the help texts (meson.build). */
static int help_completion(void)
{
	puts("# bash completion for airlock, generated from its help texts ('airlock "
	     "--help-completion').");
	puts("_airlock() {\n"
	     "\tlocal cur=${COMP_WORDS[COMP_CWORD]} verb= i\n"
	     "\tfor ((i = 1; i < COMP_CWORD; i++)); do\n"
	     "\t\tcase ${COMP_WORDS[i]} in -s|--socket) ((i++)) ;; -*) ;; *) "
	     "verb=${COMP_WORDS[i]}; break ;; esac\n"
	     "\tdone\n"
	     "\tlocal words\n"
	     "\tcase $verb in");
	printf("\t'') words='");
	for (size_t i = 0; i < AL_ARRAY_SIZE(verbs); i++)
		printf("%s ", verbs[i].name);
	completion_words(usage_main);
	puts("' ;;");
	for (size_t i = 0; i < AL_ARRAY_SIZE(verbs); i++) {
		printf("\t%s) words='--help", verbs[i].name);
		completion_words(verbs[i].usage);
		puts("' ;;");
	}
	puts("\tesac\n"
	     "\tif [[ -z $verb || $cur == -* ]]; then\n"
	     "\t\tCOMPREPLY=($(compgen -W \"$words\" -- \"$cur\"))\n"
	     "\telse\n"
	     "\t\tCOMPREPLY=($(compgen -f -- \"$cur\"))\n"
	     "\tfi\n"
	     "}\n"
	     "complete -F _airlock airlock");
	return 0;
}

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
	    /* Hidden: the build makes the man page and the completion with them. */
	    {"help-man", no_argument, NULL, 'M'},
	    {"help-completion", no_argument, NULL, 'C'},
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
		case 'M':
			return help_man();
		case 'C':
			return help_completion();
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
