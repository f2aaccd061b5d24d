/* SPDX-License-Identifier: Apache-2.0 */
#pragma once

/*
 * The manifest's bucket mounts (s3, gcs, r2, azure_blob), made on the host
 * with rclone over FUSE and bound into the sandbox, so that the keys never
 * enter it.  Per mount N, in the sandbox's state directory (a tmpfs of
 * airlockd's, mode 0700, never visible inside):
 *
 *   rclone-N.conf   rclone's configuration with the credentials, 0600
 *   rclone-N.pid    "PID START" of the rclone process
 *   rclone-N.log    rclone's log (no secrets at its level)
 *   rclone-N.json   its argv and path, for a restart (no secrets)
 *   mnt-N           the FUSE mount point on the host
 *   cache-N         rclone's VFS cache
 *
 * rclone runs as host root, detached from airlockd (it outlives a restart),
 * with --uid/--gid of the sandbox's root and --allow-other; the mount is
 * cloned (open_tree) and moved into the sandbox's mount namespace at the
 * entry's path, read-only when the entry asks.
 */

#include <stdbool.h>

#include <cjson/cJSON.h>

#include "error.h"

struct manifest;
struct sandbox;

/*
 * Check credentials (the create request's "mount_credentials": {entry key:
 * {field: "value"}}) against the manifest's mount entries: every key names a
 * mount entry, every field is a credential of its kind.  -EINVAL naming the
 * entry and field (never a value).
 */
int bucket_mounts_check_credentials(const struct manifest *m, const cJSON *credentials,
                                    struct al_error *err);

/* Mount every entry of the sandbox's manifest and bind it in; PID 1 runs.
 * credentials as above (NULL: none).  On failure, what was started is left
 * for bucket_mounts_remove. */
int bucket_mounts_start(struct sandbox *sb, const cJSON *credentials, struct al_error *err);

/*
 * Restart every rclone of sb that died (from rclone-N.json: its argv and
 * path, no secret; the config file is still there), and bind the new mount
 * over the dead one in the sandbox.  report(opaque, sb, path, NULL) for each
 * restarted, with an error message when the restart failed.  Returns how
 * many died.  Never runs once bucket_mounts_remove has begun.
 */
typedef void (*bucket_mount_report_fn)(void *opaque, struct sandbox *sb, const char *path,
                                       const char *error);
int bucket_mounts_supervise(struct sandbox *sb, bucket_mount_report_fn report, void *opaque);

/*
 * Mount one more bucket into the running sandbox sb: entry is a manifest mount
 * entry (s3_mount, r2_mount, gcs_mount, azure_blob_mount or mount; mountPath
 * absolute or below the sandbox's root), credentials its keys as in
 * "mount_credentials" (NULL: none), used and forgotten.  Supervised and
 * removed with the others; not part of the sandbox's manifest, so a restore
 * of a snapshot does not bring it back.  *path (if path) is where it is.
 */
int bucket_mounts_add(struct sandbox *sb, const cJSON *entry, const cJSON *credentials, char **path,
                      struct al_error *err);

/* True when the sandbox has bucket mounts. */
bool bucket_mounts_present(const struct sandbox *sb);

/*
 * Unmount the bucket mounted at where (an absolute path in the sandbox): first
 * inside the sandbox, then its rclone is ended and its files are removed (a
 * tombstone record keeps the indexes contiguous).  -ENOENT when no bucket is
 * mounted there.  A manifest's mount comes back at a restore of a snapshot.
 */
int bucket_mounts_remove_one(struct sandbox *sb, const char *where, struct al_error *err);

/* End every rclone of the sandbox whose state directory is dir and unmount
 * its mounts; safe to call when there are none, or after a restart. */
int bucket_mounts_remove(const char *dir, struct al_error *err);
