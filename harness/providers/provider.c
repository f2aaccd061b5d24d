/* SPDX-License-Identifier: Apache-2.0 */
#include "provider.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

static const struct al_provider_ops *const builtin[] = {
    &al_provider_local,
};

const struct al_provider_ops *al_provider_lookup(const char *type)
{
	for (size_t i = 0; i < sizeof(builtin) / sizeof(builtin[0]); i++)
		if (!strcmp(builtin[i]->type, type))
			return builtin[i];
	return NULL;
}

bool al_provider_error_is_fatal(int r)
{
	switch (-r) {
	case EHOSTDOWN:
	case ECONNREFUSED:
	case ECONNRESET:
	case ENOTCONN:
	case ETIMEDOUT:
	case EIO:
	case ENOMEM:
		return true;
	default:
		return false;
	}
}

void al_exec_result_free(struct al_exec_result *r)
{
	free(r->process_id);
	free(r->out);
	free(r->err);
	memset(r, 0, sizeof(*r));
}

void al_dir_entries_free(struct al_dir_entry *e, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(e[i].name);
	free(e);
}
