/* SPDX-License-Identifier: Apache-2.0 */
#pragma once

/*
 * Sandbox networks on the host (docs/network.md): for an allowlist
 * sandbox a veth pair (host side "alvSLOT", "eth0" inside) with a /30 of
 * the daemon's range chosen by the sandbox's uid slot (unique host-wide,
 * so several daemons never collide), and its rules in this daemon's own
 * nftables table ("airlock_" and a hash of its state directory); published
 * ports are served by a relay here that connects inside the sandbox's
 * network namespace.  Denied packets are counted per destination in the
 * table and reported as "network_denied" events.  An allowlist that names
 * hosts gets a resolver on its gateway (netdns.h) whose answers are the
 * addresses it may reach.  Without nftables airlockd still serves, and
 * refuses allowlists with the reason.
 */

#include <stdbool.h>
#include <stdint.h>

#include "error.h"

struct daemon;
struct sandbox;

#define NETWORK_DEFAULT_RANGE "10.88.0.0/16"

/* After the sandboxes of an earlier airlockd are reattached (range: of
 * the links; dns_upstream: "ADDR[:PORT]" of the resolvers of allowlists
 * that name hosts, NULL: the host's /etc/resolv.conf's first): this daemon's
 * table made afresh in one transaction with the rules of every running
 * allowlist sandbox, their relays started, the denial poller started. */
int network_start(struct daemon *d, const char *range, const char *dns_upstream,
                  struct al_error *err);

/* At exit: relays and poller stop; the table goes unless an allowlist
 * sandbox still runs (its rules must keep holding until the next airlockd). */
void network_stop(struct daemon *d);

/* A sandbox just built: its link, addresses, rules and relays.  On failure
 * what was made is undone. */
int network_sandbox_up(struct daemon *d, struct sandbox *sb, struct al_error *err);

/* A sandbox going: its relays, rules and link.  Safe when nothing was made. */
void network_sandbox_down(struct daemon *d, struct sandbox *sb);

/* Refuse a checkpoint with processes of a sandbox with a link: -EOPNOTSUPP. */
int network_check_checkpoint(const struct sandbox *sb, struct al_error *err);
