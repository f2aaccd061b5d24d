/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Sandbox networks on the host (network.h, docs/network.md).
 *
 * The table of one airlockd, for each allowlist sandbox on interface alvN:
 *
 *   set ifaces        { "alvN", ... }              our sandboxes' host sides
 *   map by_iif        { "alvN" : jump sb_ID, ... } what a sandbox sends
 *   set denials       saddr . daddr . proto . port, counted, 60 s after the last
 *   chain c_forward   (forward hook)  iifname vmap @by_iif; nothing new into @ifaces
 *   chain c_input     (input hook)    iifname vmap @by_iif: the host is a destination too
 *   chain c_post      (nat)           iifname @ifaces masquerade
 *   chain sb_ID       IPv4 only, its own source address only, replies, the
 *                     allowlist, else counted in @denials and refused (ICMP
 *                     admin-prohibited: the sender learns at once, in one packet)
 *
 * Base chains accept what is not ours: another daemon's table (or the
 * host's firewall) decides for its own traffic.  Rules go in before the
 * veth exists, so a sandbox never has a moment without them.
 */
#include "network.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdarg.h>
#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

#include <nftables/libnftables.h>

#include "cleanup.h"
#include "daemon.h"
#include "events.h"
#include "json.h"
#include "log.h"
#include "netdns.h"
#include "netlink.h"
#include "netspec.h"
#include "sandbox.h"
#include "strv.h"
#include "util.h"

#define RELAY_MAX_CONNS 64
/* A UDP port's sessions: the largest datagram, and how long one lasts without traffic. */
#define UDP_MAX_DATAGRAM 65535
#define UDP_IDLE_MS (60 * 1000)
#define POLL_MS 1000
#define SANDBOX_IFNAME "eth0"
#define IFNAMSIZ_AL 16 /* IFNAMSIZ, without <net/if.h> and its clashes */

/* One published port: a listening socket here, a thread accepting, a
 * thread per connection splicing both ways. */
struct relay {
	struct sandbox *sb; /* a reference */
	struct net_port port;
	int lfd;
	int stop_fd; /* eventfd, readable once the relay stops */
	pthread_t thread;
	pthread_mutex_t lock;
	pthread_cond_t idle;
	int conns[RELAY_MAX_CONNS][2]; /* -1: free; shut down at stop */
	size_t n_conns;
};

struct networked {
	char id[16];
	uint32_t slot;
};

struct resolver {
	struct sandbox *sb; /* not a reference: the server holds one */
	struct dns_server *srv;
};

struct seen {
	char key[96]; /* the set element: saddr daddr proto port */
	uint64_t packets;
	bool live;
};

static struct {
	pthread_mutex_t lock; /* guards all below; nft_ctx is not thread-safe */
	struct nft_ctx *nft;
	char table[32];
	uint32_t range;
	uint8_t prefix;
	bool started;
	char unavailable[256]; /* why allowlists cannot be made, when not started */
	struct relay **relays;
	size_t n_relays;
	struct networked *nets;
	size_t n_nets;
	struct seen *seen;
	size_t n_seen;
	struct resolver *resolvers;
	size_t n_resolvers;
	struct sockaddr_in upstream; /* of the resolvers; sin_family 0: none */
	char no_upstream[256];       /* why there is none */
	pthread_t poller;
	int wake_fd;
	bool polling;
} net = {.lock = PTHREAD_MUTEX_INITIALIZER, .wake_fd = -1};

/* ---- addresses ------------------------------------------------------------------------------ */

static void ifname_of(const struct sandbox *sb, char buf[IFNAMSIZ_AL])
{
	snprintf(buf, IFNAMSIZ_AL, "alv%u", (unsigned)sb->uid_slot);
}

/* A /30 per uid slot: .1 the host side, .2 the sandbox. */
static int addresses_of(uint32_t slot, uint32_t *addr, uint32_t *gw, struct al_error *err)
{
	uint64_t size = 1ull << (32 - net.prefix);

	if ((uint64_t)slot * 4 + 4 > size)
		return al_error_set(err, ENOSPC,
		                    "network range is too small for uid slot %u (a /30 each; a /18 "
		                    "holds every slot)",
		                    (unsigned)slot);
	*gw = net.range + slot * 4 + 1;
	*addr = *gw + 1;
	return 0;
}

/* ---- nftables ------------------------------------------------------------------------------- */

/* Run cmds (nft syntax, one transaction); lock held.  out: the output, when wanted. */
static int nft_run_locked(const char *cmds, char **out, struct al_error *err)
{
	const char *msg;
	int r;

	nft_ctx_buffer_output(net.nft);
	nft_ctx_buffer_error(net.nft);
	r = nft_run_cmd_from_buffer(net.nft, cmds);
	msg = nft_ctx_get_error_buffer(net.nft);
	if (r != 0) {
		r = al_error_set(err, EIO, "nftables (table %s): %s", net.table,
		                 msg && *msg ? msg : "command failed");
	} else if (out) {
		*out = strdup(nft_ctx_get_output_buffer(net.nft));
		if (!*out)
			r = al_error_set(err, ENOMEM, "out of memory");
	}
	nft_ctx_unbuffer_output(net.nft);
	nft_ctx_unbuffer_error(net.nft);
	return r;
}

/* Text appended to a growing buffer; false on ENOMEM. */
static bool append(char **buf, size_t *len, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static bool append(char **buf, size_t *len, const char *fmt, ...)
{
	va_list ap;
	char *more = NULL;
	int n;
	char *grown;

	va_start(ap, fmt);
	n = vasprintf(&more, fmt, ap);
	va_end(ap);
	if (n < 0)
		return false;
	grown = realloc(*buf, *len + (size_t)n + 1);
	if (!grown) {
		free(more);
		return false;
	}
	memcpy(grown + *len, more, (size_t)n + 1);
	*buf = grown;
	*len += (size_t)n;
	free(more);
	return true;
}

static bool base_table(char **buf, size_t *len)
{
	return append(
	    buf, len,
	    "table inet %1$s {\n"
	    " set ifaces { type ifname; }\n"
	    " map by_iif { type ifname : verdict; }\n"
	    " set denials { type ipv4_addr . ipv4_addr . inet_proto . inet_service;"
	    " flags dynamic, timeout; timeout 60s; size 65536; counter; }\n"
	    " chain c_forward { type filter hook forward priority filter; policy accept;\n"
	    "  iifname vmap @by_iif\n"
	    "  oifname @ifaces ct state established,related accept\n"
	    "  oifname @ifaces drop\n }\n"
	    " chain c_input { type filter hook input priority filter; policy accept;\n"
	    "  iifname vmap @by_iif\n }\n"
	    " chain c_post { type nat hook postrouting priority srcnat; policy accept;\n"
	    "  iifname @ifaces masquerade\n }\n"
	    "}\n",
	    net.table);
}

/* The rules of one sandbox, as commands. */
static bool sandbox_rules(const struct sandbox *sb, uint32_t addr, char **buf, size_t *len)
{
	const struct netspec *n = &sb->spec.net;
	const char *t = net.table, *id = sb->id;
	char ifname[IFNAMSIZ_AL], ip[INET_ADDRSTRLEN];

	ifname_of(sb, ifname);
	netspec_ip_string(addr, ip, sizeof(ip));
	if (netspec_has_names(n)) {
		/* The addresses its resolver answered with, until their TTL: with
		 * the name's ports (dn) or any (da). */
		if (!append(buf, len,
		            "add set inet %1$s dn_%2$s { type ipv4_addr . inet_service;"
		            " flags interval, timeout; }\n"
		            "add set inet %1$s da_%2$s { type ipv4_addr; flags timeout; }\n",
		            t, id))
			return false;
	}
	if (!append(buf, len,
	            "add chain inet %1$s sb_%2$s\n"
	            "add rule inet %1$s sb_%2$s meta nfproto != ipv4 drop\n"
	            "add rule inet %1$s sb_%2$s ip saddr != %3$s drop\n"
	            "add rule inet %1$s sb_%2$s ct state established,related accept\n",
	            t, id, ip))
		return false;
	for (size_t i = 0; i < n->n_allow; i++) {
		const struct net_allow *a = &n->allow[i];
		char cidr[INET_ADDRSTRLEN], ports[NETSPEC_MAX_RANGES * 12 + 1] = "";
		size_t used = 0;

		/* A name's addresses come from its resolver (netdns.c). */
		if (a->name[0])
			continue;
		netspec_ip_string(a->addr, cidr, sizeof(cidr));
		if (!a->n_ranges) {
			if (!append(buf, len, "add rule inet %s sb_%s ip daddr %s/%u accept\n", t,
			            id, cidr, (unsigned)a->prefix))
				return false;
			continue;
		}
		for (size_t j = 0; j < a->n_ranges; j++)
			used += (size_t)snprintf(
			    ports + used, sizeof(ports) - used,
			    a->ranges[j].lo == a->ranges[j].hi ? "%s%u" : "%s%u-%u", j ? ", " : "",
			    (unsigned)a->ranges[j].lo, (unsigned)a->ranges[j].hi);
		for (int udp = 0; udp < 2; udp++)
			if (!append(
			        buf, len,
			        "add rule inet %s sb_%s ip daddr %s/%u %s dport { %s } accept\n", t,
			        id, cidr, (unsigned)a->prefix, udp ? "udp" : "tcp", ports))
				return false;
	}
	if (netspec_has_names(n)) {
		char gwip[INET_ADDRSTRLEN];
		netspec_ip_string(addr - 1, gwip, sizeof(gwip));
		if (!append(buf, len,
		            "add rule inet %1$s sb_%2$s ip daddr %3$s udp dport 53 accept\n"
		            "add rule inet %1$s sb_%2$s ip daddr . tcp dport @dn_%2$s accept\n"
		            "add rule inet %1$s sb_%2$s ip daddr . udp dport @dn_%2$s accept\n"
		            "add rule inet %1$s sb_%2$s ip daddr @da_%2$s accept\n",
		            t, id, gwip))
			return false;
	}
	return append(buf, len,
	              "add rule inet %1$s sb_%2$s update @denials"
	              " { ip saddr . ip daddr . meta l4proto . th dport }"
	              " reject with icmpx admin-prohibited\n"
	              "add element inet %1$s ifaces { \"%3$s\" }\n"
	              "add element inet %1$s by_iif { \"%3$s\" : jump sb_%2$s }\n",
	              t, id, ifname);
}

static void rules_remove_locked(const struct sandbox *sb)
{
	struct al_error err = AL_ERROR_INIT;
	char ifname[IFNAMSIZ_AL];
	_cleanup_free_ char *cmds = NULL;

	ifname_of(sb, ifname);
	/* "destroy" is a no-op for what is not there: this also undoes a
	 * half-made sandbox's rules. */
	if (asprintf(&cmds,
	             "destroy element inet %1$s by_iif { \"%2$s\" }\n"
	             "destroy element inet %1$s ifaces { \"%2$s\" }\n"
	             "destroy chain inet %1$s sb_%3$s\n"
	             "destroy set inet %1$s dn_%3$s\n"
	             "destroy set inet %1$s da_%3$s\n",
	             net.table, ifname, sb->id) < 0)
		return;
	if (nft_run_locked(cmds, NULL, &err) < 0)
		log_warn("sandbox %s: removing its network rules: %s", sb->id, err.msg);
}

/* ---- the link ------------------------------------------------------------------------------- */

static int in_sandbox_net(const struct sandbox *sb, uint32_t addr, uint32_t gw,
                          struct al_error *err)
{
	_cleanup_close_ int own = open("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC);
	int r;

	if (own < 0)
		return al_error_errno(err, "open /proc/thread-self/ns/net");
	if (setns(sb->pidfd, CLONE_NEWNET) < 0)
		return al_error_errno(err, "sandbox %s: enter its network namespace", sb->id);
	/* libnl's sockets are made here, so they speak to the sandbox's namespace. */
	r = netlink_link_address_up(SANDBOX_IFNAME, addr, 30, err);
	if (r == 0)
		r = netlink_default_route(gw, err);
	if (setns(own, CLONE_NEWNET) < 0) {
		log_error("cannot return to airlockd's network namespace: %s", strerror(errno));
		abort();
	}
	return r;
}

static int link_up(struct sandbox *sb, uint32_t addr, uint32_t gw, struct al_error *err)
{
	char ifname[IFNAMSIZ_AL], path[128];
	int r;

	ifname_of(sb, ifname);
	r = netlink_veth_add(ifname, SANDBOX_IFNAME, sb->init_pid, err);
	if (r < 0)
		return r;
	/* IPv4 forwards what comes in on an interface with forwarding on: this
	 * one only; the host's global switch is left as it is. */
	snprintf(path, sizeof(path), "/proc/sys/net/ipv4/conf/%s/forwarding", ifname);
	r = al_write_string(path, "1", err);
	if (r == 0)
		r = netlink_link_address_up(ifname, gw, 30, err);
	if (r == 0)
		r = in_sandbox_net(sb, addr, gw, err);
	return r;
}

static void link_down(const struct sandbox *sb)
{
	struct al_error err = AL_ERROR_INIT;
	char ifname[IFNAMSIZ_AL];

	ifname_of(sb, ifname);
	/* Gone already when the sandbox's namespace went first. */
	if (netlink_link_delete(ifname, &err) < 0 && err.code != ENODEV)
		log_warn("sandbox %s: %s", sb->id, err.msg);
}

/* ---- relays of published ports -------------------------------------------------------------- */

/* A TCP or UDP socket (type) made in the sandbox's network namespace, connected to port on
 * its loopback. */
static int connect_inside(const struct sandbox *sb, int type, uint16_t port)
{
	_cleanup_close_ int own = open("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC);
	_cleanup_close_ int fd = -1;
	struct sockaddr_in sa = {.sin_family = AF_INET,
	                         .sin_port = htons(port),
	                         .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	struct timeval tv = {.tv_sec = 10};

	if (own < 0 || setns(sb->pidfd, CLONE_NEWNET) < 0)
		return -1;
	fd = socket(AF_INET, type | SOCK_CLOEXEC, 0);
	if (setns(own, CLONE_NEWNET) < 0) {
		log_error("cannot return to airlockd's network namespace: %s", strerror(errno));
		abort();
	}
	if (fd < 0)
		return -1;
	(void)setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0)
		return -1;
	tv.tv_sec = 0;
	(void)setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
	return TAKE_FD(fd);
}

static void close_pipes(int (*p)[2][2])
{
	for (int i = 0; i < 2; i++)
		for (int j = 0; j < 2; j++)
			if ((*p)[i][j] >= 0)
				close((*p)[i][j]);
}

/* Both ways through pipes with splice(2), until both sides ended or the relay stops. */
static void pump(int a, int b, int stop_fd)
{
	int fds[2] = {a, b};
	_cleanup_(close_pipes) int pipes[2][2] = {{-1, -1}, {-1, -1}};
	bool done[2] = {false, false};

	if (pipe2(pipes[0], O_CLOEXEC) < 0 || pipe2(pipes[1], O_CLOEXEC) < 0)
		return;
	while (!done[0] || !done[1]) {
		struct pollfd p[3] = {{.fd = done[0] ? -1 : a, .events = POLLIN},
		                      {.fd = done[1] ? -1 : b, .events = POLLIN},
		                      {.fd = stop_fd, .events = POLLIN}};
		if (poll(p, 3, -1) < 0) {
			if (errno == EINTR)
				continue;
			return;
		}
		if (p[2].revents)
			return;
		for (int i = 0; i < 2; i++) {
			ssize_t n;
			if (done[i] || !p[i].revents)
				continue;
			n = splice(fds[i], NULL, pipes[i][1], NULL, 1 << 16,
			           SPLICE_F_MOVE | SPLICE_F_NONBLOCK);
			if (n < 0 && errno == EAGAIN)
				continue;
			if (n <= 0) {
				/* End of one direction: passed on as a half-close. */
				done[i] = true;
				shutdown(fds[1 - i], SHUT_WR);
				continue;
			}
			while (n > 0) {
				ssize_t m = splice(pipes[i][0], NULL, fds[1 - i], NULL, (size_t)n,
				                   SPLICE_F_MOVE);
				if (m <= 0)
					return;
				n -= m;
			}
		}
	}
}

struct conn {
	struct relay *relay;
	size_t slot;
};

static void *conn_main(void *arg)
{
	struct conn *c = arg;
	struct relay *r = c->relay;
	int a, b;

	pthread_mutex_lock(&r->lock);
	a = r->conns[c->slot][0];
	pthread_mutex_unlock(&r->lock);
	b = connect_inside(r->sb, SOCK_STREAM, r->port.port);
	if (b >= 0) {
		pthread_mutex_lock(&r->lock);
		r->conns[c->slot][1] = b;
		pthread_mutex_unlock(&r->lock);
		pump(a, b, r->stop_fd);
	}
	pthread_mutex_lock(&r->lock);
	close(a);
	if (b >= 0)
		close(b);
	r->conns[c->slot][0] = r->conns[c->slot][1] = -1;
	r->n_conns--;
	pthread_cond_broadcast(&r->idle);
	pthread_mutex_unlock(&r->lock);
	free(c);
	return NULL;
}

/* The session slot of a UDP client: its own, a free one, or the one idle longest. */
static size_t udp_slot(struct relay *r, const struct sockaddr_in *from,
                       const struct sockaddr_in *peers, const uint64_t *last, bool *fresh)
{
	size_t oldest = 0;

	for (size_t i = 0; i < RELAY_MAX_CONNS; i++)
		if (r->conns[i][1] >= 0 && peers[i].sin_port == from->sin_port &&
		    peers[i].sin_addr.s_addr == from->sin_addr.s_addr) {
			*fresh = false;
			return i;
		}
	*fresh = true;
	for (size_t i = 0; i < RELAY_MAX_CONNS; i++) {
		if (r->conns[i][1] < 0)
			return i;
		if (last[i] < last[oldest])
			oldest = i;
	}
	return oldest;
}

/*
 * A UDP port: datagrams from each client address (a session) go out of a socket of their
 * own in the sandbox, connected to the port on its loopback, so that the answers, which
 * come back on that socket, return to that client.  At most RELAY_MAX_CONNS sessions (the
 * one idle longest makes room), each ended after UDP_IDLE_MS without a datagram.  One
 * thread; the session sockets are this thread's, closed before it returns.
 */
static void udp_relay(struct relay *r)
{
	struct sockaddr_in peers[RELAY_MAX_CONNS] = {0};
	uint64_t last[RELAY_MAX_CONNS] = {0};
	_cleanup_free_ char *buf = malloc(UDP_MAX_DATAGRAM);

	while (buf) {
		struct pollfd p[2 + RELAY_MAX_CONNS] = {{.fd = r->lfd, .events = POLLIN},
		                                        {.fd = r->stop_fd, .events = POLLIN}};
		uint64_t now;

		for (size_t i = 0; i < RELAY_MAX_CONNS; i++)
			p[2 + i] = (struct pollfd){.fd = r->conns[i][1], .events = POLLIN};
		if (poll(p, 2 + RELAY_MAX_CONNS, 1000) < 0 && errno != EINTR)
			break;
		if (p[1].revents)
			break;
		now = al_now_ms();
		if (p[0].revents) {
			struct sockaddr_in from;
			socklen_t fl = sizeof(from);
			ssize_t n = recvfrom(r->lfd, buf, UDP_MAX_DATAGRAM, MSG_DONTWAIT,
			                     (struct sockaddr *)&from, &fl);
			if (n >= 0) {
				bool fresh;
				size_t i = udp_slot(r, &from, peers, last, &fresh);
				if (fresh) {
					if (r->conns[i][1] >= 0)
						close(r->conns[i][1]);
					r->conns[i][1] =
					    connect_inside(r->sb, SOCK_DGRAM, r->port.port);
					peers[i] = from;
				}
				last[i] = now;
				/* A datagram the sandbox cannot take now is lost, as on any link.
				 */
				if (r->conns[i][1] >= 0)
					(void)send(r->conns[i][1], buf, (size_t)n, MSG_DONTWAIT);
			}
		}
		for (size_t i = 0; i < RELAY_MAX_CONNS; i++) {
			ssize_t n;
			if (r->conns[i][1] < 0)
				continue;
			if (p[2 + i].revents && p[2 + i].fd == r->conns[i][1]) {
				/* ECONNREFUSED: nothing listens inside (yet); the session stays. */
				n = recv(r->conns[i][1], buf, UDP_MAX_DATAGRAM, MSG_DONTWAIT);
				if (n >= 0) {
					(void)sendto(r->lfd, buf, (size_t)n, MSG_DONTWAIT,
					             (struct sockaddr *)&peers[i],
					             sizeof(peers[i]));
					last[i] = now;
				}
			}
			if (now - last[i] > UDP_IDLE_MS) {
				close(r->conns[i][1]);
				r->conns[i][1] = -1;
			}
		}
	}
	for (size_t i = 0; i < RELAY_MAX_CONNS; i++)
		if (r->conns[i][1] >= 0) {
			close(r->conns[i][1]);
			r->conns[i][1] = -1;
		}
}

static void *relay_main(void *arg)
{
	struct relay *r = arg;

	if (r->port.udp) {
		udp_relay(r);
		return NULL;
	}
	for (;;) {
		struct pollfd p[2] = {{.fd = r->lfd, .events = POLLIN},
		                      {.fd = r->stop_fd, .events = POLLIN}};
		struct conn *c;
		pthread_t t;
		pthread_attr_t attr;
		size_t slot = RELAY_MAX_CONNS;
		int fd;

		if (poll(p, 2, -1) < 0 && errno != EINTR)
			break;
		if (p[1].revents)
			break;
		if (!p[0].revents)
			continue;
		fd = accept4(r->lfd, NULL, NULL, SOCK_CLOEXEC);
		if (fd < 0)
			continue;
		pthread_mutex_lock(&r->lock);
		for (size_t i = 0; i < RELAY_MAX_CONNS && slot == RELAY_MAX_CONNS; i++)
			if (r->conns[i][0] < 0)
				slot = i;
		if (slot < RELAY_MAX_CONNS) {
			r->conns[slot][0] = fd;
			r->n_conns++;
		}
		pthread_mutex_unlock(&r->lock);
		/* Beyond the bound a connection is refused rather than queued. */
		if (slot == RELAY_MAX_CONNS) {
			close(fd);
			continue;
		}
		c = malloc(sizeof(*c));
		if (!c) {
			pthread_mutex_lock(&r->lock);
			close(fd);
			r->conns[slot][0] = -1;
			r->n_conns--;
			pthread_mutex_unlock(&r->lock);
			continue;
		}
		{
			*c = (struct conn){.relay = r, .slot = slot};
			pthread_attr_init(&attr);
			pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
			if (pthread_create(&t, &attr, conn_main, c) == 0)
				c = NULL;
			pthread_attr_destroy(&attr);
		}
		if (!c)
			continue;
		/* No thread for it (or no memory): the connection is dropped. */
		free(c);
		pthread_mutex_lock(&r->lock);
		close(fd);
		r->conns[slot][0] = -1;
		r->n_conns--;
		pthread_cond_broadcast(&r->idle);
		pthread_mutex_unlock(&r->lock);
	}
	return NULL;
}

static void relay_free(struct relay *r)
{
	uint64_t one = 1;

	if (!r)
		return;
	if (r->stop_fd >= 0) {
		(void)!write(r->stop_fd, &one, sizeof(one));
		pthread_join(r->thread, NULL);
	}
	pthread_mutex_lock(&r->lock);
	/* Connections blocked in a splice wake up with their sockets shut down. */
	for (size_t i = 0; i < RELAY_MAX_CONNS; i++)
		for (int j = 0; j < 2; j++)
			if (r->conns[i][j] >= 0)
				shutdown(r->conns[i][j], SHUT_RDWR);
	while (r->n_conns)
		pthread_cond_wait(&r->idle, &r->lock);
	pthread_mutex_unlock(&r->lock);
	if (r->lfd >= 0)
		close(r->lfd);
	if (r->stop_fd >= 0)
		close(r->stop_fd);
	pthread_mutex_destroy(&r->lock);
	pthread_cond_destroy(&r->idle);
	sandbox_unref(r->sb);
	free(r);
}

static int relay_start(struct sandbox *sb, struct net_port *port, struct relay **out,
                       struct al_error *err)
{
	struct relay *r = calloc(1, sizeof(*r));
	struct sockaddr_in sa = {.sin_family = AF_INET,
	                         .sin_port = htons(port->host_port),
	                         .sin_addr.s_addr = htonl(port->host_addr)};
	char what[64];
	int one = 1, e;

	if (!r)
		return al_error_set(err, ENOMEM, "out of memory");
	netspec_port_string(port, what, sizeof(what));
	sandbox_ref(sb);
	r->sb = sb;
	r->port = *port;
	r->stop_fd = -1;
	pthread_mutex_init(&r->lock, NULL);
	pthread_cond_init(&r->idle, NULL);
	for (size_t i = 0; i < RELAY_MAX_CONNS; i++)
		r->conns[i][0] = r->conns[i][1] = -1;
	r->lfd = socket(AF_INET, (port->udp ? SOCK_DGRAM : SOCK_STREAM) | SOCK_CLOEXEC, 0);
	if (r->lfd < 0 || setsockopt(r->lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) < 0 ||
	    bind(r->lfd, (struct sockaddr *)&sa, sizeof(sa)) < 0 ||
	    (!port->udp && listen(r->lfd, 64) < 0)) {
		e = errno;
		relay_free(r);
		/* Taken by someone else: a conflict (409), not a server error. */
		return al_error_set(err,
		                    e == EADDRINUSE      ? EEXIST
		                    : e == EADDRNOTAVAIL ? EINVAL
		                                         : e,
		                    "sandbox %s: publish port %s: %s", sb->id, what, strerror(e));
	}
	if (!port->host_port) {
		socklen_t len = sizeof(sa);
		if (getsockname(r->lfd, (struct sockaddr *)&sa, &len) < 0) {
			e = errno;
			relay_free(r);
			errno = e;
			return al_error_errno(err, "getsockname");
		}
		/* The port chosen is the sandbox's from now on (its record too). */
		port->host_port = r->port.host_port = ntohs(sa.sin_port);
	}
	r->stop_fd = eventfd(0, EFD_CLOEXEC);
	if (r->stop_fd < 0) {
		relay_free(r);
		return al_error_errno(err, "eventfd");
	}
	e = pthread_create(&r->thread, NULL, relay_main, r);
	if (e) {
		close(TAKE_FD(r->stop_fd));
		r->stop_fd = -1;
		relay_free(r);
		return al_error_set(err, e, "sandbox %s: relay thread: %s", sb->id, strerror(e));
	}
	*out = r;
	return 0;
}

/* Relays of sb taken out of the list (lock held); the caller frees them unlocked. */
static size_t relays_take_locked(const struct sandbox *sb, struct relay **taken, size_t max)
{
	size_t n = 0, k = 0;

	for (size_t i = 0; i < net.n_relays; i++) {
		if (net.relays[i]->sb == sb && n < max)
			taken[n++] = net.relays[i];
		else
			net.relays[k++] = net.relays[i];
	}
	net.n_relays = k;
	return n;
}

static int relays_start(struct sandbox *sb, struct al_error *err)
{
	for (size_t i = 0; i < sb->spec.net.n_ports; i++) {
		struct relay *r = NULL, **grown;
		int rc = relay_start(sb, &sb->spec.net.ports[i], &r, err);
		if (rc < 0)
			return rc;
		pthread_mutex_lock(&net.lock);
		grown = realloc(net.relays, (net.n_relays + 1) * sizeof(*grown));
		if (grown) {
			net.relays = grown;
			net.relays[net.n_relays++] = r;
		}
		pthread_mutex_unlock(&net.lock);
		if (!grown) {
			relay_free(r);
			return al_error_set(err, ENOMEM, "out of memory");
		}
	}
	return 0;
}

static void relays_stop(const struct sandbox *sb)
{
	struct relay *taken[NETSPEC_MAX_PORTS];
	size_t n;

	pthread_mutex_lock(&net.lock);
	n = relays_take_locked(sb, taken, NETSPEC_MAX_PORTS);
	pthread_mutex_unlock(&net.lock);
	for (size_t i = 0; i < n; i++)
		relay_free(taken[i]);
}

/* ---- resolvers of names ------------------------------------------------------------------ */

static void dns_allow(struct sandbox *sb, const struct net_allow *a, const uint32_t *addrs,
                      size_t n, uint32_t ttl)
{
	struct al_error err = AL_ERROR_INIT;
	_cleanup_free_ char *cmds = NULL;
	size_t len = 0;
	bool ok = true;

	for (size_t i = 0; ok && i < n; i++) {
		char ip[INET_ADDRSTRLEN];
		netspec_ip_string(addrs[i], ip, sizeof(ip));
		/* Destroyed first: an element added again keeps its old timeout. */
		if (!a->n_ranges)
			ok = append(&cmds, &len,
			            "destroy element inet %1$s da_%2$s { %3$s }\n"
			            "add element inet %1$s da_%2$s { %3$s timeout %4$us }\n",
			            net.table, sb->id, ip, (unsigned)ttl);
		for (size_t j = 0; ok && j < a->n_ranges; j++)
			ok = append(
			    &cmds, &len,
			    "destroy element inet %1$s dn_%2$s { %3$s . %4$u-%5$u }\n"
			    "add element inet %1$s dn_%2$s { %3$s . %4$u-%5$u timeout %6$us }\n",
			    net.table, sb->id, ip, (unsigned)a->ranges[j].lo,
			    (unsigned)a->ranges[j].hi, (unsigned)ttl);
	}
	if (!ok || !cmds)
		return;
	pthread_mutex_lock(&net.lock);
	if (net.started && nft_run_locked(cmds, NULL, &err) < 0)
		log_warn("sandbox %s: allowing the addresses of %s: %s", sb->id, a->name, err.msg);
	pthread_mutex_unlock(&net.lock);
}

/* Its /etc/resolv.conf names its resolver (written as its root, inside). */
static int write_resolv_conf(struct sandbox *sb, uint32_t gw, struct al_error *err)
{
	_cleanup_close_ int fd = memfd_create("resolv.conf", MFD_CLOEXEC);
	char ip[INET_ADDRSTRLEN], text[64];
	int n;

	if (fd < 0)
		return al_error_errno(err, "memfd_create");
	netspec_ip_string(gw, ip, sizeof(ip));
	n = snprintf(text, sizeof(text), "nameserver %s\n", ip);
	if (write(fd, text, (size_t)n) != n)
		return al_error_errno(err, "write resolv.conf");
	return sandbox_file_write(sb, "/etc/resolv.conf", fd, (uint64_t)n, 0644, false, err);
}

static int resolver_start(struct sandbox *sb, uint32_t gw, struct al_error *err)
{
	struct dns_server *srv = NULL;
	struct resolver *grown;
	int r;

	if (!netspec_has_names(&sb->spec.net))
		return 0;
	r = dns_server_start(sb, gw, &net.upstream, dns_allow, &srv, err);
	if (r < 0)
		return r;
	pthread_mutex_lock(&net.lock);
	grown = realloc(net.resolvers, (net.n_resolvers + 1) * sizeof(*grown));
	if (grown) {
		net.resolvers = grown;
		net.resolvers[net.n_resolvers++] = (struct resolver){.sb = sb, .srv = srv};
	}
	pthread_mutex_unlock(&net.lock);
	if (!grown) {
		dns_server_stop(srv);
		return al_error_set(err, ENOMEM, "out of memory");
	}
	return 0;
}

static void resolver_stop(const struct sandbox *sb)
{
	struct dns_server *srv = NULL;

	pthread_mutex_lock(&net.lock);
	for (size_t i = 0; i < net.n_resolvers; i++)
		if (net.resolvers[i].sb == sb) {
			srv = net.resolvers[i].srv;
			net.resolvers[i] = net.resolvers[--net.n_resolvers];
			break;
		}
	pthread_mutex_unlock(&net.lock);
	/* Unlocked: its thread may be waiting for the lock in dns_allow(). */
	dns_server_stop(srv);
}

/* ---- denials -------------------------------------------------------------------------------- */

static bool nets_add_locked(const struct sandbox *sb)
{
	struct networked *grown = realloc(net.nets, (net.n_nets + 1) * sizeof(*grown));

	if (!grown)
		return false;
	net.nets = grown;
	snprintf(net.nets[net.n_nets].id, sizeof(net.nets[0].id), "%s", sb->id);
	net.nets[net.n_nets++].slot = sb->uid_slot;
	return true;
}

static void nets_remove_locked(const struct sandbox *sb)
{
	for (size_t i = 0; i < net.n_nets; i++)
		if (!strcmp(net.nets[i].id, sb->id)) {
			net.nets[i] = net.nets[--net.n_nets];
			return;
		}
}

static const char *id_of_source_locked(const char *saddr)
{
	struct in_addr in;
	uint32_t a, slot;

	if (inet_pton(AF_INET, saddr, &in) != 1)
		return NULL;
	a = ntohl(in.s_addr);
	if (a < net.range || (a - net.range) % 4 != 2)
		return NULL;
	slot = (a - net.range) / 4;
	for (size_t i = 0; i < net.n_nets; i++)
		if (net.nets[i].slot == slot)
			return net.nets[i].id;
	return NULL;
}

static struct seen *seen_get_locked(const char *key)
{
	struct seen *grown;

	for (size_t i = 0; i < net.n_seen; i++)
		if (!strcmp(net.seen[i].key, key))
			return &net.seen[i];
	grown = realloc(net.seen, (net.n_seen + 1) * sizeof(*grown));
	if (!grown)
		return NULL;
	net.seen = grown;
	grown = &net.seen[net.n_seen++];
	*grown = (struct seen){0};
	snprintf(grown->key, sizeof(grown->key), "%s", key);
	return grown;
}

/* One look at the denial set: each destination whose count grew is an event. */
static void poll_denials_locked(void)
{
	struct al_error err = AL_ERROR_INIT;
	_cleanup_free_ char *out = NULL, *cmd = NULL;
	_cleanup_cjson_ cJSON *doc = NULL;
	const cJSON *item, *elems = NULL, *e;
	size_t k = 0;

	if (asprintf(&cmd, "list set inet %s denials", net.table) < 0)
		return;
	nft_ctx_output_set_flags(net.nft, NFT_CTX_OUTPUT_JSON);
	if (nft_run_locked(cmd, &out, &err) < 0) {
		nft_ctx_output_set_flags(net.nft, 0);
		log_warn("network denials: %s", err.msg);
		return;
	}
	nft_ctx_output_set_flags(net.nft, 0);
	doc = cJSON_Parse(out);
	cJSON_ArrayForEach(item, cJSON_GetObjectItemCaseSensitive(doc, "nftables"))
	{
		const cJSON *set = cJSON_GetObjectItemCaseSensitive(item, "set");
		if (set)
			elems = cJSON_GetObjectItemCaseSensitive(set, "elem");
	}
	for (size_t i = 0; i < net.n_seen; i++)
		net.seen[i].live = false;
	cJSON_ArrayForEach(e, elems)
	{
		const cJSON *el = cJSON_GetObjectItemCaseSensitive(e, "elem");
		const cJSON *val = cJSON_GetObjectItemCaseSensitive(el, "val");
		const cJSON *cat = cJSON_GetObjectItemCaseSensitive(val, "concat");
		const cJSON *ctr = cJSON_GetObjectItemCaseSensitive(el, "counter");
		const cJSON *s = cJSON_GetArrayItem(cat, 0), *dst = cJSON_GetArrayItem(cat, 1);
		const cJSON *proto = cJSON_GetArrayItem(cat, 2), *port = cJSON_GetArrayItem(cat, 3);
		uint64_t packets = (uint64_t)al_json_num(ctr, "packets", 1);
		char key[96], dest[64], protobuf[16];
		const char *id;
		struct seen *sn;

		if (!cJSON_IsString(s) || !cJSON_IsString(dst))
			continue;
		if (cJSON_IsString(proto))
			snprintf(protobuf, sizeof(protobuf), "%s", proto->valuestring);
		else
			snprintf(protobuf, sizeof(protobuf), "%d",
			         (int)cJSON_GetNumberValue(proto));
		/* A port is a port only for TCP and UDP (th dport reads the
		 * same bytes of any other protocol's header). */
		if (cJSON_IsNumber(port) && (!strcmp(protobuf, "tcp") || !strcmp(protobuf, "udp")))
			snprintf(dest, sizeof(dest), "%s:%d/%s", dst->valuestring,
			         (int)port->valuedouble, protobuf);
		else
			snprintf(dest, sizeof(dest), "%s/%s", dst->valuestring, protobuf);
		snprintf(key, sizeof(key), "%s %s", s->valuestring, dest);
		sn = seen_get_locked(key);
		if (!sn)
			continue;
		sn->live = true;
		id = id_of_source_locked(s->valuestring);
		if (packets > sn->packets && id)
			events_note_network_denied(id, dest, packets - sn->packets);
		sn->packets = packets;
	}
	/* An element that expired starts again from zero. */
	for (size_t i = 0; i < net.n_seen; i++)
		if (net.seen[i].live)
			net.seen[k++] = net.seen[i];
	net.n_seen = k;
}

static void *poller_main(void *arg)
{
	(void)arg;
	for (;;) {
		struct pollfd p = {.fd = net.wake_fd, .events = POLLIN};
		int r = poll(&p, 1, POLL_MS);
		if (r > 0)
			break;
		pthread_mutex_lock(&net.lock);
		if (net.n_nets)
			poll_denials_locked();
		pthread_mutex_unlock(&net.lock);
	}
	return NULL;
}

/* ---- the daemon's side ---------------------------------------------------------------------- */

int network_sandbox_up(struct daemon *d, struct sandbox *sb, struct al_error *err)
{
	_cleanup_free_ char *cmds = NULL;
	size_t len = 0;
	uint32_t addr = 0, gw = 0;
	bool chosen = false;
	int r;

	(void)d;
	if (netspec_has_names(&sb->spec.net) && !net.upstream.sin_family)
		return al_error_set(
		    err, ENOTSUP,
		    "sandbox %s: network: an allowlist with host names needs a resolver "
		    "upstream: %s",
		    sb->id, net.no_upstream);
	if (sb->spec.net.allowlist) {
		pthread_mutex_lock(&net.lock);
		r = net.started
		        ? addresses_of(sb->uid_slot, &addr, &gw, err)
		        : al_error_set(err, ENOTSUP, "networking is not set up in airlockd");
		if (r == 0 && (!sandbox_rules(sb, addr, &cmds, &len) || !nets_add_locked(sb)))
			r = al_error_set(err, ENOMEM, "out of memory");
		if (r == 0)
			r = nft_run_locked(cmds, NULL, err);
		pthread_mutex_unlock(&net.lock);
		if (r == 0)
			r = link_up(sb, addr, gw, err);
		if (r == 0)
			r = resolver_start(sb, gw, err);
		if (r == 0 && netspec_has_names(&sb->spec.net))
			r = write_resolv_conf(sb, gw, err);
		if (r < 0) {
			network_sandbox_down(d, sb);
			return al_error_prefix(err, "sandbox %s: network", sb->id);
		}
		sb->net_addr = addr;
		sb->net_gw = gw;
		log_info("sandbox %s: network link %s/30 via alv%u", sb->id,
		         inet_ntoa((struct in_addr){.s_addr = htonl(addr)}),
		         (unsigned)sb->uid_slot);
	}
	for (size_t i = 0; i < sb->spec.net.n_ports; i++)
		chosen |= !sb->spec.net.ports[i].host_port;
	r = relays_start(sb, err);
	/* state.json was written before: again, with the ports chosen. */
	if (r == 0 && chosen)
		r = sandbox_save_state(sb, err);
	if (r < 0)
		network_sandbox_down(d, sb);
	return r;
}

void network_sandbox_down(struct daemon *d, struct sandbox *sb)
{
	(void)d;
	relays_stop(sb);
	if (!sb->spec.net.allowlist)
		return;
	resolver_stop(sb);
	link_down(sb);
	pthread_mutex_lock(&net.lock);
	nets_remove_locked(sb);
	if (net.started)
		rules_remove_locked(sb);
	pthread_mutex_unlock(&net.lock);
}

int network_check_checkpoint(const struct sandbox *sb, struct al_error *err)
{
	if (sb->spec.net.allowlist)
		return al_error_set(err, EOPNOTSUPP,
		                    "sandbox %s has a network link (an allowlist): its processes "
		                    "cannot be checkpointed (CRIU cannot carry the veth into a new "
		                    "sandbox); snapshot it without processes",
		                    sb->id);
	return 0;
}

/* This daemon's table, made afresh with the rules of its running
 * allowlist sandboxes (ids). */
static int table_start(struct daemon *d, char **ids, struct al_error *err)
{
	_cleanup_free_ char *cmds = NULL;
	size_t len = 0;
	int r;

	/* Made afresh in one transaction: rules of an earlier airlockd hold
	 * until the very moment the new ones do. */
	if (!append(&cmds, &len, "add table inet %1$s\ndelete table inet %1$s\n", net.table) ||
	    !base_table(&cmds, &len))
		return al_error_set(err, ENOMEM, "out of memory");
	pthread_mutex_lock(&net.lock);
	for (char **id = ids; *id; id++) {
		_cleanup_sandbox_ struct sandbox *sb = registry_get(&d->registry, *id);
		uint32_t addr = 0, gw = 0;
		struct al_error serr = AL_ERROR_INIT;

		if (!sb || !sb->spec.net.allowlist || !sandbox_running(sb))
			continue;
		if (addresses_of(sb->uid_slot, &addr, &gw, &serr) < 0) {
			log_warn("sandbox %s: %s; its link stays without rules", sb->id, serr.msg);
			continue;
		}
		if (!sandbox_rules(sb, addr, &cmds, &len) || !nets_add_locked(sb)) {
			pthread_mutex_unlock(&net.lock);
			return al_error_set(err, ENOMEM, "out of memory");
		}
		sb->net_addr = addr;
		sb->net_gw = gw;
	}
	r = nft_run_locked(cmds, NULL, err);
	if (r == 0)
		net.started = true;
	else
		net.n_nets = 0;
	pthread_mutex_unlock(&net.lock);
	return r;
}

int network_start(struct daemon *d, const char *range, const char *dns_upstream,
                  struct al_error *err)
{
	_cleanup_strv_ char **ids = registry_ids(&d->registry);
	struct al_error uerr = AL_ERROR_INIT;
	char hash[65];
	int r;

	if (!ids)
		return al_error_set(err, ENOMEM, "out of memory");
	if (dns_upstream) {
		r = dns_parse_upstream(dns_upstream, &net.upstream, err);
		if (r < 0)
			return al_error_prefix(err, "--dns-upstream");
	} else if (dns_host_upstream(&net.upstream, &uerr) < 0) {
		/* Names in allowlists are refused with this reason; the rest works. */
		net.upstream.sin_family = 0;
		snprintf(net.no_upstream, sizeof(net.no_upstream), "%s (give --dns-upstream)",
		         uerr.msg);
	}
	r = netspec_parse_cidr(range ? range : NETWORK_DEFAULT_RANGE, &net.range, &net.prefix, err);
	if (r < 0)
		return al_error_prefix(err, "--network-range");
	al_sha256_hex(d->host.state_dir, strlen(d->host.state_dir), hash);
	snprintf(net.table, sizeof(net.table), "airlock_%.12s", hash);
	net.nft = nft_ctx_new(NFT_CTX_DEFAULT);
	if (!net.nft)
		return al_error_set(err, ENOMEM, "nft_ctx_new failed");
	r = table_start(d, ids, err);
	if (r < 0) {
		/* Sandboxes without a link do not need nftables: airlockd serves
		 * them, and refuses allowlists with this reason. */
		log_warn("network: allowlists unavailable: %s", err->msg);
		snprintf(net.unavailable, sizeof(net.unavailable), "%s", err->msg);
		al_error_clear(err);
	}
	for (char **id = ids; *id; id++) {
		_cleanup_sandbox_ struct sandbox *sb = registry_get(&d->registry, *id);
		struct al_error serr = AL_ERROR_INIT;

		if (!sb || !sandbox_running(sb))
			continue;
		if (relays_start(sb, &serr) < 0)
			log_warn("%s", serr.msg);
		if (sb->net_gw && netspec_has_names(&sb->spec.net) && net.upstream.sin_family &&
		    resolver_start(sb, sb->net_gw, &serr) < 0)
			log_warn("%s", serr.msg);
	}
	net.wake_fd = eventfd(0, EFD_CLOEXEC);
	if (net.wake_fd < 0)
		return al_error_errno(err, "eventfd");
	r = pthread_create(&net.poller, NULL, poller_main, NULL);
	if (r)
		return al_error_set(err, r, "network denial poller: %s", strerror(r));
	net.polling = true;
	if (net.started)
		log_info("network: nftables table inet %s, range %s", net.table,
		         range ? range : NETWORK_DEFAULT_RANGE);
	return 0;
}

void network_stop(struct daemon *d)
{
	uint64_t one = 1;
	struct al_error err = AL_ERROR_INIT;
	_cleanup_free_ char *cmd = NULL;

	(void)d;
	if (net.polling) {
		(void)!write(net.wake_fd, &one, sizeof(one));
		pthread_join(net.poller, NULL);
		net.polling = false;
	}
	for (;;) {
		struct dns_server *srv = NULL;
		pthread_mutex_lock(&net.lock);
		if (net.n_resolvers)
			srv = net.resolvers[--net.n_resolvers].srv;
		pthread_mutex_unlock(&net.lock);
		if (!srv)
			break;
		dns_server_stop(srv);
	}
	for (;;) {
		struct relay *r = NULL;
		pthread_mutex_lock(&net.lock);
		if (net.n_relays)
			r = net.relays[--net.n_relays];
		pthread_mutex_unlock(&net.lock);
		if (!r)
			break;
		relay_free(r);
	}
	pthread_mutex_lock(&net.lock);
	if (net.started && !net.n_nets && asprintf(&cmd, "destroy table inet %s", net.table) > 0 &&
	    nft_run_locked(cmd, NULL, &err) < 0)
		log_warn("%s", err.msg);
	else if (net.n_nets)
		log_info("network: table inet %s kept for %zu sandboxes with a link", net.table,
		         net.n_nets);
	net.started = false;
	if (net.nft)
		nft_ctx_free(net.nft);
	net.nft = NULL;
	free(net.relays);
	free(net.resolvers);
	net.resolvers = NULL;
	free(net.nets);
	free(net.seen);
	net.relays = NULL;
	net.nets = NULL;
	net.seen = NULL;
	net.n_nets = net.n_seen = 0;
	pthread_mutex_unlock(&net.lock);
	if (net.wake_fd >= 0)
		close(net.wake_fd);
	net.wake_fd = -1;
}
