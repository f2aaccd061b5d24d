/* SPDX-License-Identifier: Apache-2.0 */
#include "strv.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

size_t al_strv_length(char *const *v)
{
	size_t n = 0;

	while (v && v[n])
		n++;
	return n;
}

void al_strv_free(char **v)
{
	for (char **p = v; p && *p; p++)
		free(*p);
	free(v);
}

int al_strv_push(char ***v, const char *s)
{
	size_t n = al_strv_length(*v);
	char *copy = strdup(s);
	char **more;

	if (!copy)
		return -ENOMEM;
	more = realloc(*v, (n + 2) * sizeof(char *));
	if (!more) {
		free(copy);
		return -ENOMEM;
	}
	more[n] = copy;
	more[n + 1] = NULL;
	*v = more;
	return 0;
}

bool al_strv_contains(char *const *v, const char *s)
{
	for (; v && *v; v++)
		if (!strcmp(*v, s))
			return true;
	return false;
}

int al_strv_cmp(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

void al_strv_sort(char **v)
{
	size_t n = al_strv_length(v);

	if (n > 1)
		qsort(v, n, sizeof(char *), al_strv_cmp);
}

int al_strv_env_set(char ***env, const char *key, const char *value)
{
	size_t klen = strlen(key);
	char *kv;

	if (asprintf(&kv, "%s=%s", key, value) < 0)
		return -ENOMEM;
	for (char **e = *env; e && *e; e++) {
		if (!strncmp(*e, key, klen) && (*e)[klen] == '=') {
			free(*e);
			*e = kv;
			return 0;
		}
	}
	if (al_strv_push(env, kv) < 0) {
		free(kv);
		return -ENOMEM;
	}
	free(kv);
	return 0;
}

int al_argv_add(struct al_argv *a, const char *fmt, ...)
{
	va_list ap;
	char *s;
	int r;

	if (a->failed)
		return -ENOMEM;
	if (a->n + 2 > a->cap) {
		size_t cap = a->cap ? a->cap * 2 : 32;
		char **v = realloc(a->v, cap * sizeof(char *));
		if (!v) {
			a->failed = true;
			return -ENOMEM;
		}
		a->v = v;
		a->cap = cap;
	}
	va_start(ap, fmt);
	r = vasprintf(&s, fmt, ap);
	va_end(ap);
	if (r < 0) {
		a->failed = true;
		return -ENOMEM;
	}
	a->v[a->n++] = s;
	a->v[a->n] = NULL;
	return 0;
}

int al_argv_done(const struct al_argv *a, struct al_error *err)
{
	return a->failed ? al_error_set(err, ENOMEM, "out of memory") : 0;
}

void al_argv_free(struct al_argv *a)
{
	for (size_t i = 0; i < a->n; i++)
		free(a->v[i]);
	free(a->v);
	*a = (struct al_argv){0};
}
