/* SPDX-License-Identifier: Apache-2.0 */
#include "netspec.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cleanup.h"
#include "json.h"

void netspec_ip_string(uint32_t addr, char *buf, size_t len)
{
	struct in_addr in = {.s_addr = htonl(addr)};

	if (!inet_ntop(AF_INET, &in, buf, (socklen_t)len) && len)
		buf[0] = '\0';
}

static int parse_ip(const char *s, size_t n, uint32_t *out)
{
	char tmp[INET_ADDRSTRLEN];
	struct in_addr in;

	if (n == 0 || n >= sizeof(tmp))
		return -EINVAL;
	memcpy(tmp, s, n);
	tmp[n] = '\0';
	/* inet_pton takes only the four-part dotted form: no "10.1" or octal. */
	if (inet_pton(AF_INET, tmp, &in) != 1)
		return -EINVAL;
	*out = ntohl(in.s_addr);
	return 0;
}

/* A decimal number in [min, max] made of s[0..n), nothing else. */
static int parse_num(const char *s, size_t n, unsigned long min, unsigned long max,
                     unsigned long *out)
{
	unsigned long v = 0;

	if (n == 0 || n > 5)
		return -EINVAL;
	for (size_t i = 0; i < n; i++) {
		if (s[i] < '0' || s[i] > '9')
			return -EINVAL;
		v = v * 10 + (unsigned long)(s[i] - '0');
	}
	if (v < min || v > max)
		return -EINVAL;
	*out = v;
	return 0;
}

static uint32_t mask_of(uint8_t prefix)
{
	return prefix == 0 ? 0 : 0xffffffffu << (32 - prefix);
}

static int parse_cidr_n(const char *s, size_t n, uint32_t *addr, uint8_t *prefix)
{
	const char *slash = memchr(s, '/', n);
	unsigned long p = 32;

	if (slash && parse_num(slash + 1, n - (size_t)(slash + 1 - s), 0, 32, &p) < 0)
		return -EINVAL;
	if (parse_ip(s, slash ? (size_t)(slash - s) : n, addr) < 0)
		return -EINVAL;
	*prefix = (uint8_t)p;
	/* Host bits set ("10.1.2.3/8") are a likely mistake: refused, not masked. */
	if (*addr & ~mask_of(*prefix))
		return -EINVAL;
	return 0;
}

int netspec_parse_cidr(const char *s, uint32_t *addr, uint8_t *prefix, struct al_error *err)
{
	if (parse_cidr_n(s, strlen(s), addr, prefix) < 0)
		return al_error_set(err, EINVAL, "invalid IPv4 range '%s' (want A.B.C.D/N)", s);
	return 0;
}

static int parse_ranges(const char *s, struct net_allow *a)
{
	while (*s) {
		const char *end = strchr(s, ',');
		size_t n = end ? (size_t)(end - s) : strlen(s);
		const char *dash = memchr(s, '-', n);
		unsigned long lo, hi;

		if (a->n_ranges == NETSPEC_MAX_RANGES)
			return -E2BIG;
		if (parse_num(s, dash ? (size_t)(dash - s) : n, 1, 65535, &lo) < 0)
			return -EINVAL;
		hi = lo;
		if (dash && parse_num(dash + 1, n - (size_t)(dash + 1 - s), lo, 65535, &hi) < 0)
			return -EINVAL;
		a->ranges[a->n_ranges].lo = (uint16_t)lo;
		a->ranges[a->n_ranges].hi = (uint16_t)hi;
		a->n_ranges++;
		if (!end)
			break;
		s = end + 1;
		if (!*s)
			return -EINVAL; /* a trailing comma */
	}
	return 0;
}

/* A DNS host name of letters, digits and hyphens in dot-separated labels,
 * not all digits (that would be a mistyped address); lowered into out. */
static bool parse_name(const char *s, size_t n, char out[NETSPEC_NAME_MAX + 1])
{
	size_t label = 0;
	bool letter = false;

	if (n == 0 || n > NETSPEC_NAME_MAX || s[0] == '.' || s[n - 1] == '.')
		return false;
	for (size_t i = 0; i < n; i++) {
		char c = s[i];
		if (c == '.') {
			if (label == 0 || s[i - 1] == '-')
				return false;
			label = 0;
		} else if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '-' ||
		           (c >= '0' && c <= '9')) {
			if ((c == '-' && label == 0) || ++label > 63)
				return false;
			letter |= !(c >= '0' && c <= '9') && c != '-';
			c = (char)(c >= 'A' && c <= 'Z' ? c - 'A' + 'a' : c);
		} else {
			return false;
		}
		out[i] = c;
	}
	out[n] = '\0';
	return letter && s[n - 1] != '-';
}

static int parse_allow(const char *s, struct net_allow *a, struct al_error *err)
{
	const char *colon = strchr(s, ':');
	size_t n = colon ? (size_t)(colon - s) : strlen(s);
	int r;

	*a = (struct net_allow){0};
	if (parse_cidr_n(s, n, &a->addr, &a->prefix) < 0 && !parse_name(s, n, a->name))
		return al_error_set(
		    err, EINVAL,
		    "network: allow entry '%s': want an IPv4 address or range "
		    "A.B.C.D[/N] without host bits, or a host name, then optionally "
		    ":PORTS",
		    s);
	if (!colon)
		return 0;
	r = colon[1] ? parse_ranges(colon + 1, a) : -EINVAL;
	if (r == -E2BIG)
		return al_error_set(err, EINVAL,
		                    "network: allow entry '%s': more than %d port ranges", s,
		                    NETSPEC_MAX_RANGES);
	if (r < 0)
		return al_error_set(err, EINVAL,
		                    "network: allow entry '%s': ports must be P, P-Q or a comma "
		                    "list of those, each in 1..65535",
		                    s);
	return 0;
}

static int parse_port(const char *s, struct net_port *p, struct al_error *err)
{
	const char *last = strrchr(s, ':'), *first = strchr(s, ':');
	const char *proto = last ? strchr(last, '/') : NULL;
	unsigned long hp, cp;

	*p = (struct net_port){.host_addr = 0x7f000001u};
	if (!last)
		return al_error_set(err, EINVAL,
		                    "ports: '%s': want [HOSTADDR:]HOSTPORT:PORT[/tcp|/udp]", s);
	if (proto && strcmp(proto, "/tcp") && strcmp(proto, "/udp"))
		return al_error_set(err, EINVAL, "ports: '%s': the protocol is /tcp or /udp", s);
	p->udp = proto && !strcmp(proto, "/udp");
	if (parse_num(last + 1, proto ? (size_t)(proto - last - 1) : strlen(last + 1), 1, 65535,
	              &cp) < 0)
		return al_error_set(err, EINVAL, "ports: '%s': bad sandbox port", s);
	if (first != last) {
		if (parse_ip(s, (size_t)(first - s), &p->host_addr) < 0)
			return al_error_set(err, EINVAL, "ports: '%s': bad IPv4 host address", s);
		s = first + 1;
	}
	/* Host port 0: any free one, chosen when it is bound (netspec.h). */
	if (parse_num(s, (size_t)(last - s), 0, 65535, &hp) < 0)
		return al_error_set(err, EINVAL, "ports: '%s': bad host port", s);
	p->host_port = (uint16_t)hp;
	p->port = (uint16_t)cp;
	return 0;
}

int netspec_parse(const cJSON *network, const cJSON *ports, struct netspec *out,
                  struct al_error *err)
{
	const cJSON *allow, *it;
	int r;

	*out = (struct netspec){0};
	if (network && !cJSON_IsNull(network)) {
		if (cJSON_IsString(network)) {
			/* "loopback" is what earlier versions called "none". */
			if (strcmp(network->valuestring, "none") &&
			    strcmp(network->valuestring, "loopback"))
				return al_error_set(
				    err, EINVAL,
				    "network: want \"none\" or {\"allow\": [...]} (got "
				    "\"%s\")",
				    network->valuestring);
		} else if (cJSON_IsObject(network)) {
			allow = cJSON_GetObjectItemCaseSensitive(network, "allow");
			if (cJSON_GetArraySize(network) != 1 || !cJSON_IsArray(allow))
				return al_error_set(
				    err, EINVAL,
				    "network: an object takes one key, \"allow\": an "
				    "array of \"CIDR[:PORTS]\" strings");
			out->allowlist = true;
			cJSON_ArrayForEach(it, allow)
			{
				if (!cJSON_IsString(it))
					return al_error_set(err, EINVAL,
					                    "network: allow entries are strings");
				if (out->n_allow == NETSPEC_MAX_ALLOW)
					return al_error_set(err, EINVAL,
					                    "network: more than %d allow entries",
					                    NETSPEC_MAX_ALLOW);
				r = parse_allow(it->valuestring, &out->allow[out->n_allow], err);
				if (r < 0)
					return r;
				out->n_allow++;
			}
		} else {
			return al_error_set(err, EINVAL, "network: want a string or an object");
		}
	}
	if (!ports || cJSON_IsNull(ports))
		return 0;
	if (!cJSON_IsArray(ports))
		return al_error_set(err, EINVAL, "ports: want an array of strings");
	cJSON_ArrayForEach(it, ports)
	{
		struct net_port *p = &out->ports[out->n_ports];

		if (!cJSON_IsString(it))
			return al_error_set(err, EINVAL, "ports: entries are strings");
		if (out->n_ports == NETSPEC_MAX_PORTS)
			return al_error_set(err, EINVAL, "ports: more than %d", NETSPEC_MAX_PORTS);
		r = parse_port(it->valuestring, p, err);
		if (r < 0)
			return r;
		for (size_t i = 0; p->host_port && i < out->n_ports; i++)
			if (out->ports[i].host_port == p->host_port &&
			    out->ports[i].host_addr == p->host_addr && out->ports[i].udp == p->udp)
				return al_error_set(err, EINVAL, "ports: '%s' is published twice",
				                    it->valuestring);
		out->n_ports++;
	}
	return 0;
}

bool netspec_has_names(const struct netspec *n)
{
	for (size_t i = 0; i < n->n_allow; i++)
		if (n->allow[i].name[0])
			return true;
	return false;
}

void netspec_allow_string(const struct net_allow *a, char *buf, size_t len)
{
	char ip[INET_ADDRSTRLEN];
	size_t used;

	netspec_ip_string(a->addr, ip, sizeof(ip));
	if (a->name[0])
		used = (size_t)snprintf(buf, len, "%s", a->name);
	else
		used = (size_t)snprintf(buf, len, "%s/%u", ip, (unsigned)a->prefix);
	for (size_t i = 0; i < a->n_ranges && used < len; i++) {
		if (a->ranges[i].lo == a->ranges[i].hi)
			used += (size_t)snprintf(buf + used, len - used, "%c%u", i ? ',' : ':',
			                         (unsigned)a->ranges[i].lo);
		else
			used +=
			    (size_t)snprintf(buf + used, len - used, "%c%u-%u", i ? ',' : ':',
			                     (unsigned)a->ranges[i].lo, (unsigned)a->ranges[i].hi);
	}
}

void netspec_port_string(const struct net_port *p, char *buf, size_t len)
{
	char ip[INET_ADDRSTRLEN];

	netspec_ip_string(p->host_addr, ip, sizeof(ip));
	/* TCP without a suffix: the form records had before UDP. */
	snprintf(buf, len, "%s:%u:%u%s", ip, (unsigned)p->host_port, (unsigned)p->port,
	         p->udp ? "/udp" : "");
}

cJSON *netspec_network_json(const struct netspec *n)
{
	_cleanup_cjson_ cJSON *o = NULL;
	cJSON *allow;
	char buf[160];

	if (!n->allowlist)
		return cJSON_CreateString("none");
	o = cJSON_CreateObject();
	allow = o ? cJSON_AddArrayToObject(o, "allow") : NULL;
	if (!allow)
		return NULL;
	for (size_t i = 0; i < n->n_allow; i++) {
		netspec_allow_string(&n->allow[i], buf, sizeof(buf));
		if (!cJSON_AddItemToArray(allow, cJSON_CreateString(buf)))
			return NULL;
	}
	return TAKE_PTR(o);
}

cJSON *netspec_ports_json(const struct netspec *n)
{
	_cleanup_cjson_ cJSON *a = cJSON_CreateArray();
	char buf[64];

	if (!a)
		return NULL;
	for (size_t i = 0; i < n->n_ports; i++) {
		netspec_port_string(&n->ports[i], buf, sizeof(buf));
		if (!cJSON_AddItemToArray(a, cJSON_CreateString(buf)))
			return NULL;
	}
	return TAKE_PTR(a);
}
