/* SPDX-License-Identifier: Apache-2.0 */
#pragma once

/*
 * Scope-bound release of resources, in the style of systemd: a variable
 * declared with one of these attributes is released when it leaves scope.
 * Functions that hand the resource to their caller steal it first with
 * steal_pointer()/steal_fd().
 */

#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include <cjson/cJSON.h>

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

static inline void al_cjson_deletep(cJSON **j)
{
	if (*j)
		cJSON_Delete(*j);
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
#define _cleanup_free_ _cleanup_(al_freep)
#define _cleanup_close_ _cleanup_(al_closep)
#define _cleanup_fclose_ _cleanup_(al_fclosep)
#define _cleanup_closedir_ _cleanup_(al_closedirp)
#define _cleanup_cjson_ _cleanup_(al_cjson_deletep)
#define _cleanup_strv_ _cleanup_(al_strv_freep)

static inline void *al_steal_ptr(void *pp)
{
	void **p = pp;
	void *v = *p;
	*p = NULL;
	return v;
}

static inline int al_steal_fd(int *fd)
{
	int v = *fd;
	*fd = -1;
	return v;
}

#define steal_pointer(pp) al_steal_ptr(pp)
#define steal_fd(pfd) al_steal_fd(pfd)
