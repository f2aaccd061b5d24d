/* SPDX-License-Identifier: Apache-2.0 */
#pragma once

/*
 * git_repo manifest entries: a repository is cloned on the host by Debian's
 * git, never inside the sandbox, so that whatever lets the host reach it
 * (network, credentials, a local path) stays outside.  The clone runs as an
 * unprivileged host uid (the sandbox's, which owns nothing on the host) with
 * hooks, system and global configuration switched off; the caller copies the
 * result into the workspace with the safe copier of manifest.c.
 */

#include <sys/types.h>

#include "error.h"

/*
 * Clone url at ref (a branch, tag or commit; NULL for the remote's HEAD) as
 * uid:gid into dir/tree, dir being an existing empty directory private to the
 * caller (it also gets git's configuration file).  The checkout is left in
 * dir/tree, with its .git.  -EINVAL with git's own message when
 * git fails.
 */
int git_clone_at(const char *url, const char *ref, const char *dir, uid_t uid, gid_t gid,
                 struct al_error *err);
