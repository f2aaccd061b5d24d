/* SPDX-License-Identifier: Apache-2.0 */
#pragma once

/*
 * Remote object stores for a run's workspace archives, RunState copies and process
 * snapshots (docs/storage.md): S3 and R2 (libcurl's SigV4 signer), Google Cloud Storage
 * (its XML API with HMAC keys, GOOG4 SigV4) and Azure Blob (Shared Key or SAS).
 *
 * Every object is written with its SHA-256 in the object's metadata ("sha256"), and
 * every read is checked against it (and against the digest the caller recorded, when
 * given) before the file appears under its name.  Objects larger than the part size go
 * in parts (S3/GCS multipart upload, Azure put-block list) read one part at a time, so
 * memory stays bounded.  Secrets come from the harness's credentials file only.
 */

#include <stddef.h>
#include <stdint.h>

#include "credentials.h"
#include "error.h"

enum al_store_type { AL_STORE_LOCAL, AL_STORE_S3, AL_STORE_R2, AL_STORE_GCS, AL_STORE_AZURE };

#define AL_STORE_MIN_PART (5u << 20) /* S3's smallest part but the last */
#define AL_STORE_DEFAULT_PART (8u << 20)
#define AL_STORE_MAX_PART (512u << 20)

struct al_store_config {
	enum al_store_type type;
	char *bucket; /* the bucket, or Azure's container */
	char *prefix; /* "" or a key prefix without leading or trailing '/' */
	char *endpoint;
	char *region;
	char *ca_bundle; /* PEM CAs to trust instead of the system's */
	size_t part_size;
};

struct al_store;

/* "s3", "r2", "gcs", "azure_blob", "local"; -1 when unknown. */
int al_store_type_from_name(const char *name);
const char *al_store_type_name(enum al_store_type type);

/* Check the config against the credentials (which must hold this type's keys). */
int al_store_open(const struct al_store_config *cfg, const struct al_credentials *creds,
                  struct al_store **out, struct al_error *err);
void al_store_close(struct al_store *s);
static inline void al_store_closep(struct al_store **s)
{
	if (*s)
		al_store_close(*s);
}

/* Upload the file at path as name (under the prefix); sha256 (optional, 65 bytes) gets
 * its digest. */
int al_store_put_file(struct al_store *s, const char *name, const char *path, char *sha256,
                      struct al_error *err);
/* Download name into path (atomically: a temporary file renamed once verified).  When
 * want_sha256 is given the object must have that digest too.  -ENOENT: no such object;
 * -EBADMSG: the object does not match its digest (nothing is left at path). */
int al_store_get_file(struct al_store *s, const char *name, const char *path,
                      const char *want_sha256, struct al_error *err);
/* Remove name; an object already gone is not an error. */
int al_store_delete(struct al_store *s, const char *name, struct al_error *err);
/* "s3://bucket/prefix/name" (or gcs://, r2://, azure_blob://) for messages and records. */
char *al_store_describe(const struct al_store *s, const char *name);
