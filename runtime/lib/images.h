/* SPDX-License-Identifier: Apache-2.0 */
#pragma once

/*
 * The image store: container images imported from a `docker save` archive
 * or an OCI image layout, kept as overlayfs lower layers.
 *
 *   DIR/layers/sha256/HEX/   one layer, unpacked, named by its diff_id (the
 *                            sha256 of the uncompressed tar): stored once,
 *                            shared by every image that has it
 *   DIR/images/NAME.json     an image: its id, its layers bottom first, and
 *                            the defaults its config gives a sandbox
 *   DIR/tmp/                 imports under way (emptied at start)
 *
 * A sandbox made from an image mounts its layers as the lower layers of its
 * root overlay (mounts_make_root), the top one first.
 */

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include <cjson/cJSON.h>

#include "archives.h"
#include "error.h"

#define IMAGE_NAME_MAX 128

struct image_store;

/* What a sandbox takes from an image. */
struct image {
	char name[IMAGE_NAME_MAX + 1];
	char id[72];   /* "sha256:" and the config's digest */
	char **lowers; /* host paths of its layers, the top one first */
	char **env;    /* the config's Env, "K=V" */
	char *workdir; /* WorkingDir, or NULL */
	char *home;    /* the user's home from the image's /etc/passwd, or NULL */
	uid_t uid;     /* User, resolved in the image's /etc/passwd and /etc/group */
	gid_t gid;
	char **entrypoint; /* Entrypoint and Cmd, NULL-terminated, or NULL */
	char **cmd;
};

/* [A-Za-z0-9][A-Za-z0-9_.:-]{0,127}: a file name, a docker-like "name:tag". */
bool image_name_valid(const char *name);

/* Open (and make) the store at dir; leftovers of interrupted imports go. */
int image_store_open(const char *dir, struct image_store **out, struct al_error *err);
void image_store_free(struct image_store *st);
const char *image_store_dir(const struct image_store *st);

/*
 * Import the archive read from tar_fd (a regular file: a `docker save`
 * archive, or an OCI image layout as a tar) as name.  Every blob is checked
 * against its digest and every layer against the config's diff_ids; layers
 * are unpacked by a confined helper (helper_confine_to) with the hostile
 * archive rules of tar_extract_image_layer; limits bound the archive, each
 * layer's members and the image's unpacked bytes.  Atomic: on any error
 * nothing of it is left.  -EEXIST when name exists.  *record (may be NULL)
 * gets the image's record as image_json() gives it.
 */
int image_import(struct image_store *st, const char *name, int tar_fd,
                 const struct tar_limits *limits, cJSON **record, struct al_error *err);

/* Every image: [{name, id, layers, size_bytes, config...}]. NULL on ENOMEM. */
cJSON *image_list_json(struct image_store *st);

/* One image's record, or -ENOENT. */
int image_json(struct image_store *st, const char *name, cJSON **out, struct al_error *err);

/* Remove name, and every layer no other image has.  *layers_removed (may
 * be NULL) gets how many layers went.  The caller checks it is unused. */
int image_remove(struct image_store *st, const char *name, unsigned *layers_removed,
                 struct al_error *err);

/* Load what a sandbox needs of image name from the store at dir. */
int image_load(const char *dir, const char *name, struct image *out, struct al_error *err);
void image_free(struct image *img);
