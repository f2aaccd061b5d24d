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
 * git_repo ("repo", "host", "ref", "subpath") is cloned on the host (gitclone.h) and
 * copied in.  Mount entries (s3_mount, gcs_mount, r2_mount, azure_blob_mount, and the
 * generic mount with "provider" and "config") are parsed into struct manifest_mount;
 * their credential fields are refused: credentials never belong in a manifest.
 *
 * Keys are used verbatim: no normalization, so what the client wrote is what gets
 * created, and anything a normalizer would have to guess about ('..', '.', empty
 * components, absolute keys, backslashes) is refused instead.
 */

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include <cjson/cJSON.h>

#include "error.h"

#define MANIFEST_DEFAULT_MAX_FILE_BYTES (16UL << 20)
#define MANIFEST_DEFAULT_MAX_TOTAL_BYTES (64UL << 20)
#define MANIFEST_MAX_KEY_LEN 4096

struct manifest; /* opaque */

/* Whether an entry type names a mount ("mount", "*_mount"), known to airlockd or not. */
bool manifest_type_is_mount(const char *type);

/* A bucket or container to mount, as a manifest entry describes it. */
struct manifest_mount {
	char *provider;    /* "s3", "gcs", "r2", "azure_blob" */
	char *bucket;      /* bucket, or the Azure container */
	char *prefix;      /* a key prefix inside it, or NULL */
	char *region;      /* or NULL */
	char *endpoint;    /* endpointUrl / endpoint, or NULL */
	char *account;     /* R2's accountId, Azure's account name, or NULL */
	char *s3_provider; /* rclone's s3 provider name (Minio, Ceph, ...), or NULL */
	char *path;        /* absolute path inside the sandbox */
	bool read_only;
};

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

/* The key of the first entry that reads host files (local_file, local_dir, a git_repo
 * from a local path or file:// URL), or NULL. */
const char *manifest_first_host_source(const struct manifest *m);

/*
 * The mount entries one by one: *iter starts at 0; NULL after the last.
 * *key (if not NULL) is set to the entry's manifest key.
 */
const struct manifest_mount *manifest_next_mount(const struct manifest *m, size_t *iter,
                                                 const char **key);

/* The key of the first git_repo entry, or NULL. */
const char *manifest_first_git_repo(const struct manifest *m);

/* The environment as a NULL-terminated "K=V" vector owned by m (possibly empty). */
char *const *manifest_environment(const struct manifest *m);

/*
 * Create the entries below dirfd (the workspace root directory, already created).
 * Never follows a symlink found below dirfd.  Everything created is owned by uid:gid
 * ((uid_t)-1 / (gid_t)-1 leave the ownership alone).  local_dir copies regular files,
 * directories and symlinks (as symlinks), skips other file types, keeps modes and
 * times but strips setuid/setgid.  git_repo entries are cloned as uid:gid into a fresh
 * directory below scratch (a private host directory, removed entry by entry after the
 * copy; NULL refuses them) and copied in the same way, without .git.  Mount entries
 * make nothing here: mounting is the caller's.
 */
int manifest_materialize(const struct manifest *m, int dirfd, uid_t uid, gid_t gid,
                         const char *scratch, struct al_error *err);
