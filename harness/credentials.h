/* SPDX-License-Identifier: Apache-2.0 */
#pragma once

/*
 * The harness's secrets.  They come from its own environment (OPENAI_API_KEY) or from a
 * credentials file (--credentials FILE or AIRLOCK_CREDENTIALS), a JSON object that must be
 * a regular file of mode 0600 or stricter owned by the caller.  The model key goes to the
 * model client only; each hosted provider's key (the file's e2b_api_key, daytona_api_key,
 * cloudflare_sandbox_api_key, blaxel_api_key, else the variable the provider's SDK reads:
 * E2B_API_KEY, DAYTONA_API_KEY, CLOUDFLARE_SANDBOX_API_KEY, BL_API_KEY) goes to that
 * provider's open() only.  Values never appear in messages: only where they came from.
 */

#include <cjson/cJSON.h>

#include "error.h"

#define AL_CREDENTIALS_MAX_PROVIDERS 8
#define AL_CREDENTIALS_STORES 4 /* s3, r2, gcs, azure_blob */

/* A remote store's secrets, from the file's "stores" object keyed by store type
 * (docs/storage.md): an access key pair for s3, r2 and gcs (HMAC), an account name with
 * its key or a SAS token for azure_blob. */
struct al_store_secret {
	const char *type;
	char *access_key_id;
	char *secret_access_key;
	char *account_name;
	char *account_key;
	char *sas_token;
	char *service_account_file; /* GCS: a service account's JSON key file */
};

struct al_provider_key {
	const char *type;   /* provider type */
	char *key;          /* NULL when none was given */
	const char *source; /* "credentials file" or the variable's name */
};

struct al_credentials {
	char *openai_api_key; /* NULL when none was given */
	const char *source;   /* where it came from, for messages: never the value */
	struct al_provider_key providers[AL_CREDENTIALS_MAX_PROVIDERS];
	const char *provider_type; /* the run's provider, set by the caller */
	struct al_store_secret stores[AL_CREDENTIALS_STORES];
	/* The file's "mounts": {manifest entry key: {credential field: value}} for the
	 * manifest's bucket mounts, sent to airlockd in the create request only
	 * (docs/storage.md, "Mounts"); NULL when none. */
	cJSON *mounts;
};

/* file may be NULL (then AIRLOCK_CREDENTIALS, then the environment). */
int al_credentials_load(const char *file, struct al_credentials *c, struct al_error *err);
void al_credentials_free(struct al_credentials *c);
/* The secrets of a store type ("s3", "r2", "gcs", "azure_blob"), or NULL. */
const struct al_store_secret *al_credentials_store(const struct al_credentials *c,
                                                   const char *type);
/* The key of c->provider_type, or NULL. */
const char *al_credentials_provider_key(const struct al_credentials *c);
