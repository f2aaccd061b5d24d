/* SPDX-License-Identifier: Apache-2.0 */
#pragma once

/*
 * The API's listening socket: bound by airlockd at a path, or received
 * from systemd (airlockd.socket) by socket activation.
 */

#include <stdbool.h>
#include <sys/types.h>

#include "error.h"

/*
 * Bind and listen on the Unix socket path, owned by root and group gid
 * ((gid_t)-1: root), mode 0660.  A stale socket file from a dead daemon is
 * replaced; a live one is an error (two daemons must not share it).
 */
int listen_api_socket(const char *path, gid_t gid, struct al_error *err);

/*
 * The listening socket systemd passed (sd_listen_fds(3): LISTEN_PID is us,
 * LISTEN_FDS=1, the socket is fd 3), made close-on-exec, with the variables
 * removed so that no child sees them.  -ENOENT when airlockd was not
 * socket-activated; an error when what was passed is not one listening
 * Unix stream socket.  *path gets its path, for the logs (NULL: unknown).
 */
int listen_api_from_systemd(char **path, struct al_error *err);
