/* SPDX-License-Identifier: Apache-2.0 */
#pragma once

/*
 * A sandbox's settings, in one typed shape.  Parsed once at the API's edge
 * from a create request (sandbox_spec_from_request), kept by the sandbox,
 * and written by one serializer (sandbox_spec_to_json) into state.json and
 * into a snapshot's record; the restore request made of that record
 * (sandbox_spec_restore_request) is a valid create request, so a restore
 * goes through the same parser and the same checks as a create, and no
 * setting can be lost on the way.
 */

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include <cjson/cJSON.h>

#include "cgroup.h"
#include "error.h"
#include "netspec.h"

struct manifest;

#define SANDBOX_DEFAULT_MEMORY (1ULL << 30)
#define SANDBOX_DEFAULT_PIDS 1024
/* At most: the default is half the memory limit (spec.c, check_disk). */
#define SANDBOX_DEFAULT_DISK (4ULL << 30)

/* Lifetimes (ttl, idle_timeout) are at most a year; labels are bounded so
 * that a sandbox's record stays small. */
#define SANDBOX_MAX_LIFETIME_S (366ULL * 86400)
#define SANDBOX_LABELS_MAX 32
#define SANDBOX_LABEL_KEY_MAX 63
#define SANDBOX_LABEL_VALUE_MAX 255

struct sandbox_spec {
	char name[64]; /* "" when the request named none */
	char *rootfs;  /* canonical path of the base root filesystem (an image's top layer) */
	char *image;   /* the image it was made from, or NULL */
	char image_id[72];
	char **lowers; /* its lower layers, the top one first: an image's, or just rootfs */
	uid_t uid;     /* who commands run as unless told (the image's User) */
	gid_t gid;
	char *cwd;        /* where commands run unless told (WorkingDir); NULL: the workspace */
	char profile[64]; /* seccomp profile name */
	struct cgroup_limits limits;
	uint64_t disk_bytes; /* size of the tmpfs holding the writable layer */
	char **env;          /* default environment of commands, "K=V" */
	char **labels;       /* the client's labels, "K=V" (NULL or empty: none) */
	uint64_t ttl_s;      /* destroyed this long after its creation; 0: never */
	/* destroyed after this long without an exec or a file operation; 0: never */
	uint64_t idle_timeout_s;
	char *workspace; /* the manifest's root, "/workspace" without one */
	cJSON *manifest; /* the manifest as given, or NULL: kept for snapshots */
	/* The client uid that made it (from the connection, never the request):
	 * only it, and root, see and use the sandbox and its snapshots. */
	uid_t owner;
	/* Parsed from manifest for materialising it; NULL in a spec read back
	 * from a record (its files are already in the layer). */
	struct manifest *parsed;
	/* The request's "mount_credentials" ({entry key: {field: value}}), or
	 * NULL: only for the mounts made at create, then wiped; never recorded. */
	cJSON *mount_credentials;
	/* A restored sandbox's manifest parsed for its mount entries only (its
	 * files are in the layer): what bucket_mounts_start mounts again. */
	struct manifest *mounts;
	struct netspec net; /* "network" and "ports" (netspec.h) */
};

/* Overwrite and drop mount_credentials: once the mounts are made, or never. */
void sandbox_spec_wipe_credentials(struct sandbox_spec *s);

/* For a restore: the recorded manifest's mount entries into s->mounts, and the
 * request's mount_credentials checked against them into s->mount_credentials. */
int sandbox_spec_restore_mounts(struct sandbox_spec *s, const cJSON *manifest,
                                const cJSON *credentials, struct al_error *err);

/* For a restore with "mounts": the recorded manifest (or none) with its mount
 * entries replaced by those of mounts (mount entries only, keys not taken by the
 * manifest's other entries), into *out. */
int sandbox_spec_replace_mounts(const cJSON *manifest, const cJSON *mounts, cJSON **out,
                                struct al_error *err);

/* What a request may ask for, and the defaults it gets. */
struct sandbox_spec_policy {
	const char *default_rootfs;
	/* Only a trusted (root) client may name host paths: local_file and
	 * local_dir entries, or a rootfs outside the directory of the default
	 * rootfs.  airlockd reads them as root, so allowing it to members of
	 * the socket's group would hand them every file on the host. */
	bool trusted;
	const char *images_dir; /* the image store (images.h), or NULL: no images */
};

/* Parse and check a create request (docs/api.md; NULL: an empty one).
 * Fields that are not about the sandbox ("snapshot", "exec") are the
 * caller's.  -EINVAL with a message naming the field; -EPERM for a host
 * path an untrusted client may not use. */
int sandbox_spec_from_request(const cJSON *req, const struct sandbox_spec_policy *policy,
                              struct sandbox_spec *out, struct al_error *err);

/* Check a create request's keys and their types only (a restore's, when it
 * has "snapshot"), with limits: -EINVAL naming an unknown key. */
int sandbox_spec_check_request(const cJSON *req, struct al_error *err);

/* The lifecycle settings of a request (ttl, idle_timeout, labels) into s;
 * what a sandbox from the warm pool or a snapshot takes from its request. */
int sandbox_spec_parse_lifetime(const cJSON *req, struct sandbox_spec *s, struct al_error *err);

/* A labels object ({K: V} of strings, bounded) as "K=V" (an empty vector
 * for NULL); also what a label filter is checked with. */
int sandbox_spec_parse_labels(const cJSON *v, char ***out, struct al_error *err);

/* The record of a spec: {name, rootfs, workspace, seccomp_profile,
 * limits {memory_bytes, pids, cpus, disk_bytes}, env {K: V}, labels {K: V},
 * ttl, idle_timeout, owner_uid, and for an image image, image_id, lowers, uid,
 * gid, cwd}; not a create request as it is (workspace, owner_uid, lowers,
 * uid, gid and cwd are not a client's: sandbox_spec_restore_request makes
 * one).  The manifest is not
 * in it (it is kept beside).  NULL on ENOMEM. */
cJSON *sandbox_spec_to_json(const struct sandbox_spec *s);

/* A spec back from its record, as airlockd wrote it (state.json of a
 * running sandbox): typed but not checked against the host again.  Reads
 * records of earlier versions too (env as an array, disk_bytes beside
 * limits).  -EINVAL when malformed. */
int sandbox_spec_from_record(const cJSON *rec, struct sandbox_spec *out, struct al_error *err);

/*
 * The create request that restores a snapshot: its record with what the
 * caller may change laid over it: "name", and "limits" field by field (a
 * restore that only raises memory keeps the recorded disk cap).  NULL on
 * ENOMEM.
 */
cJSON *sandbox_spec_restore_request(const cJSON *record, const cJSON *req);

/* True when a sandbox made from base can serve spec s by taking s's
 * environment: every other setting equal, no name, no manifest (the warm
 * pool's test). */
bool sandbox_spec_poolable(const struct sandbox_spec *s, const struct sandbox_spec *base);

void sandbox_spec_free(struct sandbox_spec *s);
