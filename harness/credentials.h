/* SPDX-License-Identifier: Apache-2.0 */
#pragma once

/*
 * The harness's secrets.  They come from its own environment (OPENAI_API_KEY) or from a
 * credentials file (--credentials FILE or AIRLOCK_CREDENTIALS), a JSON object that must be
 * a regular file of mode 0600 or stricter owned by the caller.  Nothing here is ever
 * handed to a provider.
 */

#include "error.h"

struct al_credentials {
	char *openai_api_key; /* NULL when none was given */
	const char *source;   /* where it came from, for messages: never the value */
};

/* file may be NULL (then AIRLOCK_CREDENTIALS, then the environment). */
int al_credentials_load(const char *file, struct al_credentials *c, struct al_error *err);
void al_credentials_free(struct al_credentials *c);
