/* SPDX-License-Identifier: Apache-2.0 */
#pragma once

/*
 * NULL-terminated string vectors (argv, envp, lists of names), owned with
 * every string: release with al_strv_free() or _cleanup_strv_ (cleanup.h).
 */

#include <stdbool.h>
#include <stddef.h>

#include "error.h"

size_t al_strv_length(char *const *v);

void al_strv_free(char **v);

/* Append a copy of s to *v (which may be NULL: a new vector); -ENOMEM. */
int al_strv_push(char ***v, const char *s);

/* True when v holds a string equal to s. */
bool al_strv_contains(char *const *v, const char *s);

/* strcmp of two char * elements, for qsort() and bsearch() over string arrays. */
int al_strv_cmp(const void *a, const void *b);

/* Sort v in place by strcmp. */
void al_strv_sort(char **v);

/* In an environment vector of "K=V": set key to value, replacing an
 * existing entry of that key or appending; -ENOMEM. */
int al_strv_env_set(char ***env, const char *key, const char *value);

/*
 * A vector built line by line (an argv for exec, say): a failed add marks
 * it failed and makes later adds no-ops, so the caller checks once, with
 * al_argv_done(), after the last add.
 */
struct al_argv {
	char **v;
	size_t n, cap;
	bool failed;
};

__attribute__((format(printf, 2, 3))) int al_argv_add(struct al_argv *a, const char *fmt, ...);

/* 0, or -ENOMEM (err filled) when an add failed. */
int al_argv_done(const struct al_argv *a, struct al_error *err);

void al_argv_free(struct al_argv *a);
