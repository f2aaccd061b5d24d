/* SPDX-License-Identifier: Apache-2.0 */
#pragma once

/*
 * The resolver of an allowlist sandbox whose allowlist names hosts
 * (docs/network.md): a UDP DNS server on the host side of its link (its
 * gateway, port 53; its /etc/resolv.conf names it) that answers only
 * queries for the names of its allowlist, by forwarding them to the
 * upstream resolver, and allows the addresses it answered with (through
 * allow(), network.c) for their TTL.  Any other name is REFUSED and
 * reported as a "network_denied" event ("dns:NAME").  ldns parses and
 * builds the messages.
 */

#include <netinet/in.h>
#include <stdint.h>

#include "error.h"

struct sandbox;
struct net_allow;
struct dns_server;

/* Allow addrs (n of them, host order) for allow entry a of sb, for ttl seconds. */
typedef void (*dns_allow_fn)(struct sandbox *sb, const struct net_allow *a, const uint32_t *addrs,
                             size_t n, uint32_t ttl);

/* Serve sb (a reference is taken) on listen_addr:53 (host order). */
int dns_server_start(struct sandbox *sb, uint32_t listen_addr, const struct sockaddr_in *upstream,
                     dns_allow_fn allow, struct dns_server **out, struct al_error *err);
void dns_server_stop(struct dns_server *s);

/* The first IPv4 name server of the host's /etc/resolv.conf into *out. */
int dns_host_upstream(struct sockaddr_in *out, struct al_error *err);

/* "ADDR" or "ADDR:PORT" (IPv4) into *out (port 53 unless given). */
int dns_parse_upstream(const char *s, struct sockaddr_in *out, struct al_error *err);
