/* SPDX-License-Identifier: Apache-2.0 */
#include "config.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cleanup.h"
#include "strv.h"

static char *trim(char *s)
{
	char *end;

	while (isspace((unsigned char)*s))
		s++;
	end = s + strlen(s);
	while (end > s && isspace((unsigned char)end[-1]))
		*--end = '\0';
	return s;
}

static const struct option *find_option(const struct option *options, const char *name)
{
	for (const struct option *o = options; o->name; o++)
		if (!strcmp(o->name, name))
			return o;
	return NULL;
}

static bool is_refused(const char *const *refused, const char *name)
{
	for (; refused && *refused; refused++)
		if (!strcmp(*refused, name))
			return true;
	return false;
}

/* One KEY=VALUE line into *args: nothing pushed for a flag set to false. */
static int parse_line(const char *path, unsigned lineno, char *line, const struct option *options,
                      const char *const *refused, char ***args, struct al_error *err)
{
	_cleanup_free_ char *arg = NULL;
	const struct option *opt;
	char *eq = strchr(line, '='), *key, *value;

	if (!eq)
		return al_error_set(err, EINVAL, "%s:%u: expected KEY=VALUE, got '%s'", path,
		                    lineno, line);
	*eq = '\0';
	key = trim(line);
	value = trim(eq + 1);
	opt = find_option(options, key);
	if (!opt || is_refused(refused, key))
		return al_error_set(err, EINVAL,
		                    "%s:%u: unknown key '%s' (the keys are airlockd's long "
		                    "options, see airlockd --help)",
		                    path, lineno, key);
	if (opt->has_arg == no_argument) {
		if (!strcmp(value, "false"))
			return 0;
		if (strcmp(value, "true") != 0)
			return al_error_set(err, EINVAL, "%s:%u: %s takes true or false, not '%s'",
			                    path, lineno, key, value);
		if (asprintf(&arg, "--%s", key) < 0)
			return al_error_set(err, ENOMEM, "out of memory");
	} else {
		if (!*value)
			return al_error_set(err, EINVAL, "%s:%u: %s needs a value", path, lineno,
			                    key);
		if (asprintf(&arg, "--%s=%s", key, value) < 0)
			return al_error_set(err, ENOMEM, "out of memory");
	}
	if (al_strv_push(args, arg) < 0)
		return al_error_set(err, ENOMEM, "out of memory");
	return 0;
}

int config_load(const char *path, const struct option *options, const char *const *refused,
                char ***args, struct al_error *err)
{
	_cleanup_fclose_ FILE *f = fopen(path, "re");
	_cleanup_strv_ char **out = NULL;
	_cleanup_free_ char *line = NULL;
	size_t cap = 0;
	unsigned lineno = 0;
	ssize_t n;
	int r;

	if (!f)
		return al_error_errno(err, "open %s", path);
	/* An empty file is a valid one: an empty vector, not NULL. */
	out = calloc(1, sizeof(*out));
	if (!out)
		return al_error_set(err, ENOMEM, "out of memory");
	errno = 0;
	while ((n = getline(&line, &cap, f)) >= 0) {
		char *text;

		lineno++;
		if (memchr(line, '\0', (size_t)n))
			return al_error_set(err, EINVAL, "%s:%u: NUL byte in the line", path,
			                    lineno);
		text = trim(line);
		if (!*text || *text == '#')
			continue;
		r = parse_line(path, lineno, text, options, refused, &out, err);
		if (r < 0)
			return r;
	}
	if (ferror(f))
		return al_error_errno(err, "read %s", path);
	*args = TAKE_PTR(out);
	return 0;
}
