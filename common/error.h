/* SPDX-License-Identifier: Apache-2.0 */
#pragma once

/*
 * One error contract for all of Airlock.
 *
 * A fallible function returns a negative errno-style code (< 0) on failure and
 * 0 (or a non-negative result) on success.  On failure it fills the caller's
 * struct al_error with a message naming the object involved (a path, a
 * sandbox id, a syscall).  Callers that add meaning prepend context with
 * al_error_prefix() and return the same code upward.
 */

#include <stdarg.h>
#include <stddef.h>

#define AL_ERROR_MSG_MAX 1024

struct al_error {
	int code; /* positive errno value, 0 when no error */
	char msg[AL_ERROR_MSG_MAX];
};

#define AL_ERROR_INIT                                                                              \
	{                                                                                          \
		0,                                                                                 \
		{                                                                                  \
			0                                                                          \
		}                                                                                  \
	}

/* Fill err with code and a formatted message; returns -code. */
__attribute__((format(printf, 3, 4))) int al_error_set(struct al_error *err, int code,
                                                       const char *fmt, ...);

/* Like al_error_set() with code = errno, appending ": strerror(errno)". */
__attribute__((format(printf, 2, 3))) int al_error_errno(struct al_error *err, const char *fmt,
                                                         ...);

/* Prepend "context: " to the message; returns -err->code (or -EIO if unset). */
__attribute__((format(printf, 2, 3))) int al_error_prefix(struct al_error *err, const char *fmt,
                                                          ...);

void al_error_clear(struct al_error *err);
