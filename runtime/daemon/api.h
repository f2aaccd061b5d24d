/* SPDX-License-Identifier: Apache-2.0 */
#pragma once

#include <sys/types.h>

#include "daemon.h"
#include "error.h"
#include "sandbox.h"

struct api_server;

/* Serve the v1 API on an already listening Unix socket.  allowed_gid may
 * connect besides root ((gid_t)-1: root only). */
int api_start(struct daemon *ctx, int listen_fd, gid_t allowed_gid, struct api_server **out,
              struct al_error *err);
void api_stop(struct api_server *srv);
