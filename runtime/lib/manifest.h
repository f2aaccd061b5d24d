/* SPDX-License-Identifier: Apache-2.0 */
#pragma once

/*
 * The workspace description: the OpenAI Agents SDK's Manifest as JSON,
 *
 *   {"version": 1, "root": "/workspace",
 *    "entries": {"path": {"type": "file", "content": "..."}, ...},
 *    "environment": {"K": "V" | {"value": "V", "ephemeral": bool, "description": "..."}},
 *    "users": [], "groups": [], "extraPathGrants": [], "remoteMountCommandAllowlist": [...]}
 *
 * Supported entry types: file ("content": a string or {"type": "base64", "data": "..."}),
 * dir (optional nested "children", keyed relative to the dir), local_file and local_dir
 * ("src": an absolute host path).  Every entry may carry "permissions" (SDK forms: a mode
 * number, an ls-style string "-rw-r--r--", an octal string "0644", or
 * {"owner", "group", "other", "directory", "sticky"}), "description" and "ephemeral".
 * git_repo and the mount types are refused with -ENOTSUP for now.
 *
 * Keys are used verbatim: no normalization, so what the client wrote is what gets
 * created, and anything a normalizer would have to guess about ('..', '.', empty
 * components, absolute keys, backslashes) is refused instead.
 */

#include <stddef.h>
#include <sys/types.h>

#include <cjson/cJSON.h>

#include "error.h"

#define MANIFEST_DEFAULT_MAX_FILE_BYTES (16UL << 20)
#define MANIFEST_DEFAULT_MAX_TOTAL_BYTES (64UL << 20)
#define MANIFEST_MAX_KEY_LEN 4096

struct manifest; /* opaque */

/*
 * Parse and validate a manifest.  max_file_bytes bounds each file entry's content,
 * max_total_bytes the sum over all file entries (0 selects the defaults above).
 * -EINVAL for malformed input, -ENOENT for a missing local source, -ENOTSUP for
 * types and features airlockd does not implement; the message names the entry.
 */
int manifest_parse(const cJSON *json, size_t max_file_bytes, size_t max_total_bytes,
                   struct manifest **out, struct al_error *err);
void manifest_free(struct manifest *m);

/* The workspace root inside the sandbox, normalized; "/workspace" by default. */
const char *manifest_root(const struct manifest *m);

/* The key of the first local_file/local_dir entry (they read host files), or NULL. */
const char *manifest_first_host_source(const struct manifest *m);

/* The environment as a NULL-terminated "K=V" vector owned by m (possibly empty). */
char *const *manifest_environment(const struct manifest *m);

/*
 * Create the entries below dirfd (the workspace root directory, already created).
 * Never follows a symlink found below dirfd.  Everything created is owned by uid:gid
 * ((uid_t)-1 / (gid_t)-1 leave the ownership alone).  local_dir copies regular files,
 * directories and symlinks (as symlinks), skips other file types, keeps modes and
 * times but strips setuid/setgid.
 */
int manifest_materialize(const struct manifest *m, int dirfd, uid_t uid, gid_t gid,
                         struct al_error *err);
