/* SPDX-License-Identifier: Apache-2.0 */
#pragma once

/*
 * A sandbox's network settings (docs/network.md): its mode and the ports
 * it publishes.  "none" (the default) is a network namespace with loopback
 * only; an allowlist adds one veth link to the host, routed and
 * masqueraded, on which only the listed IPv4 destinations (CIDR, and
 * optionally ports) are let through.  Published ports are served by
 * airlockd on a host address and relayed to the port on the sandbox's
 * loopback, whatever the mode.
 *
 * Request form:  "network": "none" | {"allow": ["CIDR[:PORTS]" | "NAME[:PORTS]", ...]}
 *                "ports": ["[HOSTADDR:]HOSTPORT:PORT", ...]
 * PORTS is "P", "P-Q" or a comma-separated list of those (TCP and UDP).
 * A NAME is allowed at the addresses the sandbox's resolver (airlockd's,
 * daemon/netdns.c) answered it with, for as long as their TTL.
 */

#include <stdbool.h>
#include <stdint.h>

#include <cjson/cJSON.h>

#include "error.h"

#define NETSPEC_MAX_ALLOW 64
#define NETSPEC_MAX_RANGES 16
#define NETSPEC_MAX_PORTS 16
/* Host ports below this are published for root clients only. */
#define NETSPEC_UNPRIVILEGED_PORT 1024

#define NETSPEC_NAME_MAX 127

struct net_allow {
	/* A host name (lower case), resolved by airlockd's resolver for the
	 * sandbox; "" for an address range. */
	char name[NETSPEC_NAME_MAX + 1];
	uint32_t addr; /* network address, host byte order */
	uint8_t prefix;
	uint8_t n_ranges; /* 0: every protocol and port */
	struct {
		uint16_t lo, hi;
	} ranges[NETSPEC_MAX_RANGES];
};

struct net_port {
	uint32_t host_addr; /* host byte order; 127.0.0.1 unless given */
	uint16_t host_port; /* 0 in a request: any free port, the one bound recorded */
	uint16_t port;      /* on the sandbox's loopback */
	bool udp;           /* "/udp" after it; TCP otherwise */
};

struct netspec {
	bool allowlist; /* false: "none" */
	uint8_t n_allow;
	uint8_t n_ports;
	struct net_allow allow[NETSPEC_MAX_ALLOW];
	struct net_port ports[NETSPEC_MAX_PORTS];
};

/* Parse a request's "network" and "ports" (either NULL or null: absent).
 * -EINVAL naming the bad entry. */
int netspec_parse(const cJSON *network, const cJSON *ports, struct netspec *out,
                  struct al_error *err);

/* The canonical request forms back: "none" or {"allow": [...]}, and the
 * ports array; NULL on ENOMEM.  netspec_parse() reads them back unchanged. */
cJSON *netspec_network_json(const struct netspec *n);
cJSON *netspec_ports_json(const struct netspec *n);

/* One allowlist entry or port as its canonical string, into buf. */
void netspec_allow_string(const struct net_allow *a, char *buf, size_t len);
void netspec_port_string(const struct net_port *p, char *buf, size_t len);

/* True when some allow entry is a host name. */
bool netspec_has_names(const struct netspec *n);

/* Dotted IPv4 of addr (host byte order), into buf (16 bytes at least). */
void netspec_ip_string(uint32_t addr, char *buf, size_t len);

/* An IPv4 range "A.B.C.D/N" (airlockd's --network-range), host order. */
int netspec_parse_cidr(const char *s, uint32_t *addr, uint8_t *prefix, struct al_error *err);
