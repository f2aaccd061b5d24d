/* SPDX-License-Identifier: Apache-2.0 */
#include "provider.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const struct al_provider_ops *const builtin[] = {
    &al_provider_local,  &al_provider_e2b,     &al_provider_daytona, &al_provider_cloudflare,
    &al_provider_blaxel, &al_provider_runloop, &al_provider_vercel,  &al_provider_modal,
};

/* Where each hosted provider's key comes from: its SDK's variable, the credentials file's
 * field.  Known here even before the provider is built, so that a key is never mistaken
 * for something else. */
static const struct {
	const char *type, *env, *field;
} provider_keys[] = {
    {"e2b", "E2B_API_KEY", "e2b_api_key"},
    {"daytona", "DAYTONA_API_KEY", "daytona_api_key"},
    {"cloudflare", "CLOUDFLARE_SANDBOX_API_KEY", "cloudflare_sandbox_api_key"},
    {"blaxel", "BL_API_KEY", "blaxel_api_key"},
    {"runloop", "RUNLOOP_API_KEY", "runloop_api_key"},
    {"vercel", "VERCEL_TOKEN", "vercel_token"},
    /* Modal's token has two halves: the secret is the key, the id an option
     * (token_id, MODAL_TOKEN_ID). */
    {"modal", "MODAL_TOKEN_SECRET", "modal_token_secret"},
};

const char *al_provider_key_env(const char *type)
{
	for (size_t i = 0; i < sizeof(provider_keys) / sizeof(provider_keys[0]); i++)
		if (!strcmp(provider_keys[i].type, type))
			return provider_keys[i].env;
	return NULL;
}

const char *al_provider_key_field(const char *type)
{
	for (size_t i = 0; i < sizeof(provider_keys) / sizeof(provider_keys[0]); i++)
		if (!strcmp(provider_keys[i].type, type))
			return provider_keys[i].field;
	return NULL;
}

struct al_sandbox *al_sandbox_new(const char *id)
{
	struct al_sandbox *sb = calloc(1, sizeof(*sb));

	if (!sb)
		return NULL;
	sb->id = strdup(id);
	sb->saved = cJSON_CreateObject();
	if (!sb->id || !sb->saved) {
		al_sandbox_free(sb);
		return NULL;
	}
	return sb;
}

void al_sandbox_free(struct al_sandbox *sb)
{
	if (!sb)
		return;
	if (sb->conn && sb->conn_free)
		sb->conn_free(sb->conn);
	cJSON_Delete(sb->saved);
	free(sb->id);
	free(sb);
}

const struct al_provider_ops *al_provider_lookup(const char *type)
{
	for (size_t i = 0; i < sizeof(builtin) / sizeof(builtin[0]); i++)
		if (!strcmp(builtin[i]->type, type))
			return builtin[i];
	return NULL;
}

/* Built once: the lists are fixed at compile time. */
const char *al_provider_names(void)
{
	static char names[256];

	if (!names[0])
		for (size_t i = 0; i < sizeof(builtin) / sizeof(builtin[0]); i++)
			snprintf(names + strlen(names), sizeof(names) - strlen(names), "%s%s",
			         i ? ", " : "", builtin[i]->type);
	return names;
}

const char *al_provider_option_list(const struct al_provider_ops *ops)
{
	static char list[512];

	snprintf(list, sizeof(list), "type, keep_sandbox%s",
	         ops->caps & AL_CAP_EXPOSED_PORTS ? ", exposed_ports" : "");
	for (const char *const *k = ops->option_keys; k && *k; k++)
		snprintf(list + strlen(list), sizeof(list) - strlen(list), ", %s", *k);
	return list;
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
