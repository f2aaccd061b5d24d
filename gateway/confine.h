/* SPDX-License-Identifier: Apache-2.0 */
#pragma once

/*
 * The gateway's own confinement, applied once it has read its keys and saved registry
 * and bound its listening socket, before any thread starts (so that every thread
 * inherits it): a mount namespace whose root is an empty read-only tmpfs holding only
 * airlockd's socket directory (read-only) and the state directory (read-write); an
 * unprivileged user that keeps only the group of airlockd's socket; no capabilities in
 * any set; no_new_privs; a seccomp filter (libseccomp) refusing what a network service
 * that talks to one Unix socket never needs.  docs/gateway.md describes it.
 */

#include <stdbool.h>
#include <sys/types.h>

#include "error.h"

struct gw_confine {
	const char *user;      /* --user NAME|UID; NULL: nobody when started as root */
	const char *socket;    /* airlockd's socket: its directory stays visible */
	const char *state_dir; /* stays writable; NULL: none */
	/* filled by gw_confine_prepare */
	bool privileged; /* started as root: the user and the mount namespace change */
	uid_t uid;
	gid_t gid;
	gid_t socket_gid;
};

/* Resolve the user and check that it can reach airlockd's socket. */
int gw_confine_prepare(struct gw_confine *c, struct al_error *err);

/* Confine the calling process (single-threaded).  Nothing is left half-done that
 * matters: a failure ends the gateway. */
int gw_confine_apply(const struct gw_confine *c, struct al_error *err);
