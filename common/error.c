/* SPDX-License-Identifier: Apache-2.0 */
#include "error.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

static int code_or_eio(int code)
{
	if (code < 0)
		code = -code;
	return code == 0 ? EIO : code;
}

int al_error_set(struct al_error *err, int code, const char *fmt, ...)
{
	va_list ap;

	code = code_or_eio(code);
	if (err) {
		err->code = code;
		va_start(ap, fmt);
		vsnprintf(err->msg, sizeof(err->msg), fmt, ap);
		va_end(ap);
	}
	return -code;
}

int al_error_errno(struct al_error *err, const char *fmt, ...)
{
	int saved = code_or_eio(errno);
	va_list ap;
	size_t n;

	if (err) {
		err->code = saved;
		va_start(ap, fmt);
		vsnprintf(err->msg, sizeof(err->msg), fmt, ap);
		va_end(ap);
		n = strlen(err->msg);
		snprintf(err->msg + n, sizeof(err->msg) - n, ": %s", strerror(saved));
	}
	errno = saved;
	return -saved;
}

int al_error_prefix(struct al_error *err, const char *fmt, ...)
{
	char prefix[AL_ERROR_MSG_MAX];
	char joined[2 * AL_ERROR_MSG_MAX + 2];
	va_list ap;

	if (!err)
		return -EIO;
	err->code = code_or_eio(err->code);
	va_start(ap, fmt);
	vsnprintf(prefix, sizeof(prefix), fmt, ap);
	va_end(ap);
	/* Join in a buffer large enough for both, then keep what fits. */
	snprintf(joined, sizeof(joined), "%s: %s", prefix, err->msg);
	joined[sizeof(err->msg) - 1] = '\0';
	memcpy(err->msg, joined, sizeof(err->msg));
	return -err->code;
}

void al_error_clear(struct al_error *err)
{
	if (err) {
		err->code = 0;
		err->msg[0] = '\0';
	}
}
