/* SPDX-License-Identifier: Apache-2.0 */
#pragma once

#include "db.h"

/*
 * Sandboxes this node's airlockd holds for queue runs that no longer need them here: the
 * run completed or was cancelled, or it moved to another sandbox (taken over on another
 * node while this one was away, and brought back by a restarted airlockd).  A sandbox
 * stays while a run may still use it: the run is leased by a worker of this node, or
 * RunState still names it (a take-over elsewhere fetches its workspace and deletes it;
 * a failed run keeps it for inspection, as `run` does).  Sandboxes whose name is not a
 * run of the queue are not looked at.  *deleted: how many went.
 */
int al_reap_sandboxes(struct al_db *db, const char *socket_path, const char *node, int *deleted,
                      struct al_error *err);
