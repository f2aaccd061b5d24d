/* SPDX-License-Identifier: Apache-2.0 */
#pragma once

/*
 * Network interfaces of the current network namespace, over rtnetlink
 * with libnl-route-3.  A sandbox with network "none" gets a fresh network
 * namespace whose only interface, lo, starts down.
 */

#include "error.h"

/* Set IFF_UP on "lo" in the caller's network namespace (needs CAP_NET_ADMIN there). */
int netlink_loopback_up(struct al_error *err);

/* Names of all interfaces in the caller's network namespace, as a NULL-terminated strv. */
int netlink_list_links(char ***names, struct al_error *err);
