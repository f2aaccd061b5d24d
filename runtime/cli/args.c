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

int usage_error(const char *usage, const char *fmt, ...)
{
	va_list ap;

	fputs("airlock: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputs("\n\n", stderr);
	fputs(usage, stderr);
	return EXIT_USAGE;
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

/* getopt's complaint about the option just seen, in our words. */
int bad_option(const char *usage, int c, char **argv)
{
	const char *word = argv[optind - 1];

	if (c == ':')
		return usage_error(usage, "option '%s' needs an argument", word);
	if (optopt && word[0] == '-' && word[1] != '-')
		return usage_error(usage, "unknown option '-%c'", optopt);
	return usage_error(usage, "unknown option '%s'", word);
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
