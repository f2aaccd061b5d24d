/* SPDX-License-Identifier: Apache-2.0 */
#pragma once

/*
 * Scope-bound release of resources, in the style of systemd: a variable
 * declared with one of these attributes is released when it leaves scope.
 * Functions that hand the resource to their caller take it out of the
 * variable first with TAKE_PTR()/TAKE_FD(), which leave NULL / -1 behind.
 * (JSON's _cleanup_cjson_ is in json.h, strv's helpers in strv.h.)
 */

#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

static inline void al_freep(void *p)
{
	free(*(void **)p);
}

static inline void al_closep(int *fd)
{
	if (*fd >= 0) {
		int saved = errno;
		close(*fd);
		errno = saved;
	}
}

static inline void al_fclosep(FILE **f)
{
	if (*f)
		fclose(*f);
}

static inline void al_closedirp(DIR **d)
{
	if (*d)
		closedir(*d);
}

static inline void al_strv_freep(char ***v)
{
	if (*v) {
		for (char **p = *v; *p; p++)
			free(*p);
		free(*v);
	}
}

#define _cleanup_(f) __attribute__((cleanup(f)))
/* A variable held only for its release at scope end (gcc knows such a
 * variable is used; clang warns unless told). */
#define _unused_ __attribute__((unused))
#define _cleanup_free_ _cleanup_(al_freep)
#define _cleanup_close_ _cleanup_(al_closep)
#define _cleanup_fclose_ _cleanup_(al_fclosep)
#define _cleanup_closedir_ _cleanup_(al_closedirp)
#define _cleanup_strv_ _cleanup_(al_strv_freep)

/* The value of the variable var, which is left NULL (or -1): ownership
 * moves to the caller.  Typed: TAKE_PTR of a char * is a char *. */
#define TAKE_PTR(var)                                                                              \
	({                                                                                         \
		__typeof__(var) *_take_p = &(var);                                                 \
		__typeof__(var) _take_v = *_take_p;                                                \
		*_take_p = NULL;                                                                   \
		_take_v;                                                                           \
	})
#define TAKE_FD(var)                                                                               \
	({                                                                                         \
		int *_take_p = &(var);                                                             \
		int _take_v = *_take_p;                                                            \
		*_take_p = -1;                                                                     \
		_take_v;                                                                           \
	})
