/* SPDX-License-Identifier: Apache-2.0 */
/* airlock CLI: option values, usage errors and output helpers shared by the verbs. */
#include "cli.h"

#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <stdarg.h>
#include <stdint.h>

/* 64M, 1.5G, 512K: a size as a person writes it. */
void human_size(double bytes, char *buf, size_t len)
{
	static const char units[] = "KMGT";
	int u = -1;

	while (bytes >= 1024 && u < 3) {
		bytes /= 1024;
		u++;
	}
	if (u < 0)
		snprintf(buf, len, "%.0f", bytes);
	else if (bytes == (double)(long long)bytes)
		snprintf(buf, len, "%lld%c", (long long)bytes, units[u]);
	else
		snprintf(buf, len, "%.1f%c", bytes, units[u]);
}

/*
 * One line: what is wrong, the verb's synopsis (the first line of its help)
 * and where the rest is; a page of help would bury the error.
 */
int usage_error(const char *usage, const char *fmt, ...)
{
	const char *synopsis = strncmp(usage, "Usage: ", 7) ? usage : usage + 7;
	size_t synopsis_len = strcspn(synopsis, "\n");
	/* "airlock VERB" from "airlock VERB [OPTIONS]...": the --help to point at. */
	size_t verb_len = strcspn(synopsis, " \n");
	char msg[512];
	va_list ap;

	if (synopsis[verb_len] == ' ' && synopsis[verb_len + 1] != '[')
		verb_len += 1 + strcspn(synopsis + verb_len + 1, " \n");
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	fprintf(stderr, "airlock: %s%s Usage: %.*s (more: '%.*s --help')\n", msg,
	        msg[0] && msg[strlen(msg) - 1] == '?' ? "" : ".", (int)synopsis_len, synopsis,
	        (int)verb_len, synopsis);
	return EXIT_USAGE;
}

/* Edit distance of a and b (insertions, deletions, substitutions, swaps); short words only. */
static size_t edit_distance(const char *a, const char *b)
{
	size_t la = strlen(a), lb = strlen(b), d[33][33];

	if (la > 32 || lb > 32)
		return SIZE_MAX;
	for (size_t i = 0; i <= la; i++)
		d[i][0] = i;
	for (size_t j = 0; j <= lb; j++)
		d[0][j] = j;
	for (size_t i = 1; i <= la; i++)
		for (size_t j = 1; j <= lb; j++) {
			size_t best = d[i - 1][j - 1] + (a[i - 1] != b[j - 1]);
			if (d[i - 1][j] + 1 < best)
				best = d[i - 1][j] + 1;
			if (d[i][j - 1] + 1 < best)
				best = d[i][j - 1] + 1;
			if (i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] &&
			    d[i - 2][j - 2] + 1 < best)
				best = d[i - 2][j - 2] + 1;
			d[i][j] = best;
		}
	return d[la][lb];
}

const char *closest_word(const char *word, const char *const *candidates, size_t n)
{
	const char *best = NULL;
	size_t best_d = SIZE_MAX;
	size_t limit = strlen(word) <= 3 ? 1 : 2;

	for (size_t i = 0; i < n; i++) {
		size_t d = edit_distance(word, candidates[i]);
		/* A prefix of a longer verb ("snap") is a likely meaning too. */
		if (strlen(word) >= 3 && !strncmp(candidates[i], word, strlen(word)))
			d = 1;
		if (d < best_d) {
			best_d = d;
			best = candidates[i];
		}
	}
	return best_d <= limit ? best : NULL;
}

int show_usage(const char *usage)
{
	fputs(usage, stdout);
	return 0;
}

int runtime_error(const struct al_error *err)
{
	if (connect_error[0])
		fprintf(stderr, "airlock: %s\n", connect_error);
	else
		fprintf(stderr, "airlock: %s\n", err->msg[0] ? err->msg : "unknown error");
	return EXIT_RUNTIME;
}

size_t usage_options(const char *usage, char **out, size_t max)
{
	size_t n = 0;

	for (const char *line = usage; *line;) {
		size_t len = strcspn(line, "\n");
		const char *p = line + strspn(line, " ");
		/* Option lines are indented and start with a dash ("  -e, --env K=V"). */
		while (p > line && p < line + len && *p == '-' && n < max) {
			size_t w = strcspn(p, " ,=\n");
			if (!(out[n] = strndup(p, w)))
				return n;
			n++;
			p += w;
			p += strspn(p, ", ");
			if (*p != '-')
				break;
		}
		line += len + (line[len] == '\n');
	}
	return n;
}

/* getopt's complaint about the option just seen, in our words, with a guess from the help. */
int bad_option(const char *usage, int c, char **argv)
{
	const char *word = argv[optind - 1];
	char *options[64];
	size_t n;
	const char *guess;
	int status;

	if (c == ':')
		return usage_error(usage, "option '%s' needs an argument", word);
	if (optopt && word[0] == '-' && word[1] != '-')
		return usage_error(usage, "unknown option '-%c'", optopt);
	n = usage_options(usage, options, AL_ARRAY_SIZE(options));
	{
		/* "--jsno=x" is the option "--jsno". */
		_cleanup_free_ char *name = strndup(word, strcspn(word, "="));
		guess = name ? closest_word(name, (const char *const *)options, n) : NULL;
	}
	if (guess)
		status = usage_error(usage, "unknown option '%s'; did you mean '%s'?", word, guess);
	else
		status = usage_error(usage, "unknown option '%s'", word);
	while (n)
		free(options[--n]);
	return status;
}

/* ---- option values ---- */

/* K=V, or K alone to pass the CLI's own value (skipped when unset). */
int add_env(cJSON *env, const char *arg, const char *usage)
{
	const char *eq = strchr(arg, '=');
	_cleanup_free_ char *key = NULL;
	const char *value;

	if (eq == arg || arg[0] == '\0')
		return usage_error(usage, "invalid --env '%s': expected K=V", arg);
	if (!eq) {
		value = getenv(arg);
		if (!value)
			return 0;
		key = strdup(arg);
	} else {
		key = strndup(arg, (size_t)(eq - arg));
		value = eq + 1;
	}
	if (!key)
		return EXIT_RUNTIME;
	cJSON_DeleteItemFromObjectCaseSensitive(env, key);
	cJSON_AddStringToObject(env, key, value);
	return 0;
}

/* --env-file: a K=V (or K) per line, as docker takes it; blank lines and # comments skipped. */
int add_env_file(cJSON *env, const char *file, const char *usage)
{
	struct al_error err = AL_ERROR_INIT;
	_cleanup_free_ char *text = NULL;
	size_t len = 0;
	char *line, *next;

	if (al_read_file(file, 1u << 20, &text, &len, &err) < 0)
		return usage_error(usage, "--env-file %s: %s", file, err.msg);
	for (line = text; line && *line; line = next) {
		int r;
		next = strchr(line, '\n');
		if (next)
			*next++ = '\0';
		line[strcspn(line, "\r")] = '\0';
		line += strspn(line, " \t");
		if (!*line || *line == '#')
			continue;
		r = add_env(env, line, usage);
		if (r)
			return r;
	}
	return 0;
}

int parse_timeout_ms(const char *arg, double *out_ms)
{
	char *end = NULL;
	double secs;

	errno = 0;
	secs = strtod(arg, &end);
	if (errno || end == arg || *end || !isfinite(secs) || secs <= 0 || secs > 1e9)
		return -EINVAL;
	*out_ms = ceil(secs * 1000.0);
	return 0;
}

/* A whole number of seconds for option name. */
int parse_seconds(const char *arg, long *out)
{
	char *end = NULL;

	errno = 0;
	*out = strtol(arg, &end, 10);
	return errno || end == arg || *end || *out <= 0 ? -EINVAL : 0;
}

/*
 * A verb's options and operands as spec says; returns 0, or -1 with *status
 * the exit status (help shown, or a usage error reported).
 */
int verb_args(const struct verb_spec *spec, int argc, char **argv, int *status)
{
	struct option longopts[32] = {{"help", no_argument, NULL, 'h'}};
	char shortopts[64];
	size_t n = 1;
	int opt;

	if (spec->json)
		longopts[n++] = (struct option){"json", no_argument, NULL, OPT_JSON};
	for (const struct option *o = spec->options; o && o->name; o++)
		if (n + 1 < AL_ARRAY_SIZE(longopts))
			longopts[n++] = *o;
	snprintf(shortopts, sizeof(shortopts), "+:h%s", spec->shortopts ? spec->shortopts : "");
	while ((opt = getopt_long(argc, argv, shortopts, longopts, NULL)) != -1) {
		int r = 1;
		if (opt == 'h') {
			*status = show_usage(spec->usage);
			return -1;
		}
		if (opt == OPT_JSON && spec->json) {
			*spec->json = true;
			continue;
		}
		if (opt != '?' && opt != ':' && spec->option)
			r = spec->option(spec->data, opt, optarg);
		if (r == 0)
			continue;
		*status = r == 1 ? bad_option(spec->usage, opt == ':' ? ':' : '?', argv) : r;
		return -1;
	}
	if (argc - optind < spec->min) {
		*status = usage_error(spec->usage, "missing argument");
		return -1;
	}
	if (spec->max >= 0 && argc - optind > spec->max) {
		*status =
		    usage_error(spec->usage, "unexpected argument '%s'", argv[optind + spec->max]);
		return -1;
	}
	return 0;
}

/* Verbs that take only --help and min to max operands. */
int simple_args(int argc, char **argv, const char *usage, int min, int max, int *status)
{
	return verb_args(&(struct verb_spec){.usage = usage, .min = min, .max = max}, argc, argv,
	                 status);
}

void print_json(const cJSON *json)
{
	_cleanup_free_ char *text = cJSON_Print(json);

	if (text)
		printf("%s\n", text);
}

const char *json_string(const cJSON *obj, const char *key)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, key);

	return cJSON_IsString(v) ? v->valuestring : "";
}

void print_cell(const char *text, size_t width, bool last)
{
	if (last)
		printf("%s\n", text);
	else
		printf("%-*s  ", (int)width, text);
}
