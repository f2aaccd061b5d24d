/* SPDX-License-Identifier: Apache-2.0 */
#pragma once

/*
 * What every hosted provider shares, so that a provider file is only its wire mapping:
 * running a command to its end over the provider's own exec, materialising a manifest
 * through write and mkdir, and the workspace as a tar made and unpacked inside the
 * sandbox and moved through the file API (the Agents SDK's way), checked here against
 * hostile archives as airlockd checks them.
 */

#include "provider.h"

#define AL_HOSTED_MAX_ARCHIVE (1ull << 30)
#define AL_HOSTED_MAX_EXTRACTED (4ull << 30)
#define AL_HOSTED_MAX_MEMBERS 100000

/* Run argv in sb until it ends (no yield); *exit_code and, when out is set, stdout. */
int al_hosted_run(struct al_provider *p, struct al_sandbox *sb, const char *const *argv,
                  int *exit_code, char **out, struct al_error *err);

/* Create the manifest's file and dir entries under root; other entry types are refused
 * with -ENOTSUP naming them. */
int al_hosted_materialise(struct al_provider *p, struct al_sandbox *sb, const cJSON *manifest,
                          const char *root, struct al_error *err);

int al_hosted_persist(struct al_provider *p, struct al_sandbox *sb, const char *root,
                      const char *archive_path, struct al_error *err);
int al_hosted_hydrate(struct al_provider *p, struct al_sandbox *sb, const char *root,
                      const char *archive_path, struct al_error *err);

/* A workspace archive fit to unpack: relative members, no "..", no device, FIFO or socket,
 * no setuid/setgid, links that stay inside, within the size and member limits. */
int al_hosted_check_archive(const char *path, struct al_error *err);

/* path made absolute against root (a fresh string), or NULL when out of memory. */
char *al_hosted_abs(const char *root, const char *path);
