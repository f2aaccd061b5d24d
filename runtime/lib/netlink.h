/* SPDX-License-Identifier: Apache-2.0 */
#pragma once

/*
 * Network interfaces of the current network namespace, over rtnetlink
 * with libnl-route-3.  A sandbox with network "none" gets a fresh network
 * namespace whose only interface, lo, starts down.
 */

#include <stdint.h>
#include <sys/types.h>

#include "error.h"

/* Set IFF_UP on "lo" in the caller's network namespace (needs CAP_NET_ADMIN there). */
int netlink_loopback_up(struct al_error *err);

/* Names of all interfaces in the caller's network namespace, as a NULL-terminated strv. */
int netlink_list_links(char ***names, struct al_error *err);

/* A veth pair: name in the caller's network namespace, peer_name made
 * directly in the one of process peer_pid. */
int netlink_veth_add(const char *name, const char *peer_name, pid_t peer_pid, struct al_error *err);

/* Delete interface name of the caller's network namespace (a veth takes its
 * peer along); -ENODEV when there is none. */
int netlink_link_delete(const char *name, struct al_error *err);

/* Give interface name the IPv4 address addr/prefix (host byte order) and set it up. */
int netlink_link_address_up(const char *name, uint32_t addr, unsigned prefix, struct al_error *err);

/* A default IPv4 route through gateway (host byte order) in the caller's namespace. */
int netlink_default_route(uint32_t gateway, struct al_error *err);
