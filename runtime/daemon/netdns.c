/* SPDX-License-Identifier: Apache-2.0 */
/*
 * An allowlist sandbox's resolver (netdns.h).
 */
#include "netdns.h"

#include <arpa/inet.h>
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <ldns/ldns.h>

#include "cleanup.h"
#include "events.h"
#include "log.h"
#include "netspec.h"
#include "sandbox.h"

#define DNS_MAX 4096
#define UPSTREAM_TIMEOUT_MS 3000
/* Addresses stay allowed at least this long (a TTL of 0 would allow
 * nothing the client can use) and at most this long. */
#define TTL_MIN 30
#define TTL_MAX 3600

struct dns_server {
	struct sandbox *sb;
	int fd;
	int stop_fd;
	pthread_t thread;
	struct sockaddr_in upstream;
	dns_allow_fn allow;
};

static inline void ldns_pkt_freep(ldns_pkt **p)
{
	if (*p)
		ldns_pkt_free(*p);
}
#define _cleanup_ldns_pkt_ _cleanup_(ldns_pkt_freep)

/* The allow entry naming name (lower case, no final dot), or NULL. */
static const struct net_allow *entry_of(const struct sandbox *sb, const char *name)
{
	for (size_t i = 0; i < sb->spec.net.n_allow; i++)
		if (sb->spec.net.allow[i].name[0] && !strcmp(sb->spec.net.allow[i].name, name))
			return &sb->spec.net.allow[i];
	return NULL;
}

/* The question's name, lowered and without its final dot, into buf; false
 * unless the query has exactly one question. */
static bool question_name(const ldns_pkt *q, char *buf, size_t len)
{
	const ldns_rr_list *qs = ldns_pkt_question(q);
	_cleanup_free_ char *text = NULL;
	size_t n;

	if (ldns_pkt_qr(q) || ldns_rr_list_rr_count(qs) != 1)
		return false;
	text = ldns_rdf2str(ldns_rr_owner(ldns_rr_list_rr(qs, 0)));
	if (!text)
		return false;
	n = strlen(text);
	if (n && text[n - 1] == '.')
		text[--n] = '\0';
	if (n == 0 || n >= len)
		return false;
	for (size_t i = 0; i <= n; i++)
		buf[i] = (char)(text[i] >= 'A' && text[i] <= 'Z' ? text[i] - 'A' + 'a' : text[i]);
	return true;
}

/* The query made into its answer with rcode and nothing else. */
static void reply_rcode(struct dns_server *s, ldns_pkt *q, uint8_t rcode, const struct sockaddr *to,
                        socklen_t tolen)
{
	_cleanup_free_ uint8_t *wire = NULL;
	size_t size = 0;

	ldns_pkt_set_qr(q, true);
	ldns_pkt_set_ra(q, true);
	ldns_pkt_set_rcode(q, rcode);
	if (ldns_pkt2wire(&wire, q, &size) == LDNS_STATUS_OK)
		(void)sendto(s->fd, wire, size, 0, to, tolen);
}

/* The query forwarded; the upstream's answer into ans (its length), 0 on none. */
static ssize_t ask_upstream(struct dns_server *s, const uint8_t *query, size_t len, uint8_t *ans)
{
	_cleanup_close_ int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	struct pollfd p;

	if (fd < 0 || connect(fd, (struct sockaddr *)&s->upstream, sizeof(s->upstream)) < 0 ||
	    send(fd, query, len, 0) < 0)
		return 0;
	p = (struct pollfd){.fd = fd, .events = POLLIN};
	if (poll(&p, 1, UPSTREAM_TIMEOUT_MS) != 1)
		return 0;
	return recv(fd, ans, DNS_MAX, 0);
}

static void handle(struct dns_server *s, const uint8_t *msg, size_t len,
                   const struct sockaddr *from, socklen_t fromlen)
{
	_cleanup_ldns_pkt_ ldns_pkt *q = NULL, *a = NULL;
	const struct net_allow *entry;
	uint8_t ans[DNS_MAX];
	uint32_t addrs[64];
	uint32_t ttl = TTL_MAX;
	size_t n = 0;
	char name[NETSPEC_NAME_MAX + 2], dest[64 + NETSPEC_NAME_MAX];
	ssize_t alen;
	ldns_rr_list *rrs;

	if (ldns_wire2pkt(&q, msg, len) != LDNS_STATUS_OK)
		return; /* not DNS: no answer */
	if (!question_name(q, name, sizeof(name))) {
		reply_rcode(s, q, LDNS_RCODE_FORMERR, from, fromlen);
		return;
	}
	entry = entry_of(s->sb, name);
	if (!entry) {
		snprintf(dest, sizeof(dest), "dns:%s", name);
		events_note_network_denied(s->sb->id, dest, 1);
		reply_rcode(s, q, LDNS_RCODE_REFUSED, from, fromlen);
		return;
	}
	alen = ask_upstream(s, msg, len, ans);
	if (alen <= 0 || ldns_wire2pkt(&a, ans, (size_t)alen) != LDNS_STATUS_OK ||
	    ldns_pkt_id(a) != ldns_pkt_id(q)) {
		reply_rcode(s, q, LDNS_RCODE_SERVFAIL, from, fromlen);
		return;
	}
	/* Every A record of the answer (a CNAME chain's end included): the
	 * sandbox may connect to what it was told. */
	rrs = ldns_pkt_answer(a);
	for (size_t i = 0; i < ldns_rr_list_rr_count(rrs) && n < sizeof(addrs) / sizeof(addrs[0]);
	     i++) {
		const ldns_rr *rr = ldns_rr_list_rr(rrs, i);
		const ldns_rdf *rd =
		    ldns_rr_get_type(rr) == LDNS_RR_TYPE_A ? ldns_rr_a_address(rr) : NULL;
		uint32_t be;
		if (!rd || ldns_rdf_size(rd) != 4)
			continue;
		memcpy(&be, ldns_rdf_data(rd), 4);
		addrs[n++] = ntohl(be);
		if (ldns_rr_ttl(rr) < ttl)
			ttl = ldns_rr_ttl(rr);
	}
	if (n)
		s->allow(s->sb, entry, addrs, n, ttl < TTL_MIN ? TTL_MIN : ttl);
	/* Allowed before it is answered: the connection that follows finds
	 * its rule in place. */
	(void)sendto(s->fd, ans, (size_t)alen, 0, from, fromlen);
}

static void *server_main(void *arg)
{
	struct dns_server *s = arg;
	uint8_t buf[DNS_MAX];

	for (;;) {
		struct pollfd p[2] = {{.fd = s->fd, .events = POLLIN},
		                      {.fd = s->stop_fd, .events = POLLIN}};
		struct sockaddr_in from;
		socklen_t fromlen = sizeof(from);
		ssize_t len;

		if (poll(p, 2, -1) < 0 && errno != EINTR)
			break;
		if (p[1].revents)
			break;
		if (!p[0].revents)
			continue;
		len = recvfrom(s->fd, buf, sizeof(buf), MSG_DONTWAIT, (struct sockaddr *)&from,
		               &fromlen);
		if (len > 0)
			handle(s, buf, (size_t)len, (struct sockaddr *)&from, fromlen);
	}
	return NULL;
}

void dns_server_stop(struct dns_server *s)
{
	uint64_t one = 1;

	if (!s)
		return;
	if (s->stop_fd >= 0) {
		(void)!write(s->stop_fd, &one, sizeof(one));
		pthread_join(s->thread, NULL);
		close(s->stop_fd);
	}
	if (s->fd >= 0)
		close(s->fd);
	sandbox_unref(s->sb);
	free(s);
}

int dns_server_start(struct sandbox *sb, uint32_t listen_addr, const struct sockaddr_in *upstream,
                     dns_allow_fn allow, struct dns_server **out, struct al_error *err)
{
	struct dns_server *s = calloc(1, sizeof(*s));
	struct sockaddr_in sa = {
	    .sin_family = AF_INET, .sin_port = htons(53), .sin_addr.s_addr = htonl(listen_addr)};
	int r;

	if (!s)
		return al_error_set(err, ENOMEM, "out of memory");
	sandbox_ref(sb);
	s->sb = sb;
	s->upstream = *upstream;
	s->allow = allow;
	s->stop_fd = -1;
	s->fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (s->fd < 0 || bind(s->fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		r = al_error_errno(err, "sandbox %s: resolver socket", sb->id);
		dns_server_stop(s);
		return r;
	}
	s->stop_fd = eventfd(0, EFD_CLOEXEC);
	if (s->stop_fd < 0) {
		r = al_error_errno(err, "eventfd");
		dns_server_stop(s);
		return r;
	}
	r = pthread_create(&s->thread, NULL, server_main, s);
	if (r) {
		close(s->stop_fd);
		s->stop_fd = -1;
		dns_server_stop(s);
		return al_error_set(err, r, "sandbox %s: resolver thread: %s", sb->id, strerror(r));
	}
	*out = s;
	return 0;
}

int dns_parse_upstream(const char *s, struct sockaddr_in *out, struct al_error *err)
{
	char host[INET_ADDRSTRLEN];
	const char *colon = strchr(s, ':');
	size_t n = colon ? (size_t)(colon - s) : strlen(s);
	char *end = NULL;
	unsigned long port = 53;

	*out = (struct sockaddr_in){.sin_family = AF_INET};
	if (n >= sizeof(host))
		return al_error_set(err, EINVAL, "invalid DNS upstream '%s'", s);
	memcpy(host, s, n);
	host[n] = '\0';
	if (colon) {
		errno = 0;
		port = strtoul(colon + 1, &end, 10);
		if (errno || end == colon + 1 || *end || port == 0 || port > 65535)
			return al_error_set(err, EINVAL, "invalid DNS upstream port in '%s'", s);
	}
	if (inet_pton(AF_INET, host, &out->sin_addr) != 1)
		return al_error_set(err, EINVAL, "invalid DNS upstream '%s' (want IPv4[:PORT])", s);
	out->sin_port = htons((uint16_t)port);
	return 0;
}

int dns_host_upstream(struct sockaddr_in *out, struct al_error *err)
{
	ldns_resolver *res = NULL;
	ldns_rdf **ns;
	int r = -ENOENT;

	if (ldns_resolver_new_frm_file(&res, NULL) != LDNS_STATUS_OK)
		return al_error_set(err, ENOENT, "cannot read /etc/resolv.conf");
	ns = ldns_resolver_nameservers(res);
	for (size_t i = 0; i < ldns_resolver_nameserver_count(res); i++) {
		if (ldns_rdf_get_type(ns[i]) != LDNS_RDF_TYPE_A || ldns_rdf_size(ns[i]) != 4)
			continue;
		*out = (struct sockaddr_in){.sin_family = AF_INET, .sin_port = htons(53)};
		memcpy(&out->sin_addr, ldns_rdf_data(ns[i]), 4);
		r = 0;
		break;
	}
	ldns_resolver_deep_free(res);
	if (r < 0)
		return al_error_set(err, ENOENT, "no IPv4 name server in /etc/resolv.conf");
	return 0;
}
