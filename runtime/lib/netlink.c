/* SPDX-License-Identifier: Apache-2.0 */
#include "netlink.h"

#include <errno.h>
#include <net/if.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include <netlink/errno.h>
#include <netlink/netlink.h>
#include <arpa/inet.h>
#include <netlink/addr.h>
#include <netlink/route/addr.h>
#include <netlink/route/link.h>
#include <netlink/route/link/veth.h>
#include <netlink/route/route.h>
#include <netlink/socket.h>

#include "cleanup.h"

static inline void nl_socket_freep(struct nl_sock **sk)
{
	if (*sk)
		nl_socket_free(*sk);
}

static inline void rtnl_link_putp(struct rtnl_link **link)
{
	if (*link)
		rtnl_link_put(*link);
}

static inline void nl_cache_freep(struct nl_cache **cache)
{
	if (*cache)
		nl_cache_free(*cache);
}

static inline void nl_addr_putp(struct nl_addr **a)
{
	if (*a)
		nl_addr_put(*a);
}

static inline void rtnl_addr_putp(struct rtnl_addr **a)
{
	if (*a)
		rtnl_addr_put(*a);
}

static inline void rtnl_route_putp(struct rtnl_route **r)
{
	if (*r)
		rtnl_route_put(*r);
}

#define _cleanup_nl_sock_ _cleanup_(nl_socket_freep)
#define _cleanup_rtnl_link_ _cleanup_(rtnl_link_putp)
#define _cleanup_nl_cache_ _cleanup_(nl_cache_freep)

/* libnl reports its own codes (negative NLE_*); the error contract wants errno values. */
static int errno_of_nlerr(int nlerr)
{
	switch (nlerr < 0 ? -nlerr : nlerr) {
	case NLE_NOMEM:
		return ENOMEM;
	case NLE_PERM:
		return EPERM;
	case NLE_NOACCESS:
		return EACCES;
	case NLE_OBJ_NOTFOUND:
	case NLE_NODEV:
		return ENODEV;
	case NLE_EXIST:
		return EEXIST;
	case NLE_INVAL:
		return EINVAL;
	case NLE_BUSY:
		return EBUSY;
	case NLE_OPNOTSUPP:
	case NLE_AF_NOSUPPORT:
		return EOPNOTSUPP;
	case NLE_AGAIN:
		return EAGAIN;
	case NLE_INTR:
		return EINTR;
	default:
		return EIO;
	}
}

static int nl_fail(struct al_error *err, int nlerr, const char *what)
{
	return al_error_set(err, errno_of_nlerr(nlerr), "netlink: %s: %s", what,
	                    nl_geterror(nlerr));
}

static int route_socket(struct nl_sock **out, struct al_error *err)
{
	_cleanup_nl_sock_ struct nl_sock *sk = nl_socket_alloc();
	int r;

	if (!sk)
		return al_error_set(err, ENOMEM, "netlink: nl_socket_alloc failed");
	r = nl_connect(sk, NETLINK_ROUTE);
	if (r < 0)
		return nl_fail(err, r, "connect NETLINK_ROUTE");
	*out = TAKE_PTR(sk);
	return 0;
}

int netlink_loopback_up(struct al_error *err)
{
	_cleanup_nl_sock_ struct nl_sock *sk = NULL;
	_cleanup_rtnl_link_ struct rtnl_link *lo = NULL;
	_cleanup_rtnl_link_ struct rtnl_link *change = NULL;
	int r;

	r = route_socket(&sk, err);
	if (r < 0)
		return r;
	r = rtnl_link_get_kernel(sk, 0, "lo", &lo);
	if (r < 0)
		return nl_fail(err, r, "get link lo");
	change = rtnl_link_alloc();
	if (!change)
		return al_error_set(err, ENOMEM, "netlink: rtnl_link_alloc failed");
	/* A change carries only what differs; the kernel leaves the other flags alone. */
	rtnl_link_set_flags(change, IFF_UP);
	r = rtnl_link_change(sk, lo, change, 0);
	if (r < 0)
		return nl_fail(err, r, "set lo up");
	return 0;
}

int netlink_list_links(char ***names, struct al_error *err)
{
	_cleanup_nl_sock_ struct nl_sock *sk = NULL;
	_cleanup_nl_cache_ struct nl_cache *cache = NULL;
	_cleanup_strv_ char **list = NULL;
	size_t n = 0;
	int r;

	*names = NULL;
	r = route_socket(&sk, err);
	if (r < 0)
		return r;
	r = rtnl_link_alloc_cache(sk, AF_UNSPEC, &cache);
	if (r < 0)
		return nl_fail(err, r, "dump links");

	list = calloc((size_t)nl_cache_nitems(cache) + 1, sizeof(*list));
	if (!list)
		return al_error_set(err, ENOMEM, "netlink: out of memory");
	for (struct nl_object *obj = nl_cache_get_first(cache); obj; obj = nl_cache_get_next(obj)) {
		const char *name = rtnl_link_get_name((struct rtnl_link *)obj);

		if (!name)
			continue;
		list[n] = strdup(name);
		if (!list[n])
			return al_error_set(err, ENOMEM, "netlink: out of memory");
		n++;
	}
	*names = TAKE_PTR(list);
	return 0;
}

int netlink_veth_add(const char *name, const char *peer_name, pid_t peer_pid, struct al_error *err)
{
	_cleanup_nl_sock_ struct nl_sock *sk = NULL;
	int r;

	r = route_socket(&sk, err);
	if (r < 0)
		return r;
	/* The peer is made in peer_pid's network namespace directly: it never
	 * exists in ours, so its name cannot clash with one of the host's. */
	r = rtnl_link_veth_add(sk, name, peer_name, peer_pid);
	if (r < 0)
		return al_error_set(err, errno_of_nlerr(r),
		                    "netlink: add veth %s (peer %s in pid %d): %s", name, peer_name,
		                    (int)peer_pid, nl_geterror(r));
	return 0;
}

int netlink_link_delete(const char *name, struct al_error *err)
{
	_cleanup_nl_sock_ struct nl_sock *sk = NULL;
	_cleanup_rtnl_link_ struct rtnl_link *link = NULL;
	int r;

	r = route_socket(&sk, err);
	if (r < 0)
		return r;
	r = rtnl_link_get_kernel(sk, 0, name, &link);
	if (r < 0)
		return al_error_set(err, errno_of_nlerr(r), "netlink: get link %s: %s", name,
		                    nl_geterror(r));
	r = rtnl_link_delete(sk, link);
	if (r < 0)
		return al_error_set(err, errno_of_nlerr(r), "netlink: delete link %s: %s", name,
		                    nl_geterror(r));
	return 0;
}

static struct nl_addr *ipv4_addr(uint32_t addr, unsigned prefix)
{
	uint32_t be = htonl(addr);
	struct nl_addr *a = nl_addr_build(AF_INET, &be, sizeof(be));

	if (a)
		nl_addr_set_prefixlen(a, (int)prefix);
	return a;
}

int netlink_link_address_up(const char *name, uint32_t addr, unsigned prefix, struct al_error *err)
{
	_cleanup_nl_sock_ struct nl_sock *sk = NULL;
	_cleanup_rtnl_link_ struct rtnl_link *link = NULL;
	_cleanup_rtnl_link_ struct rtnl_link *change = NULL;
	_cleanup_(rtnl_addr_putp) struct rtnl_addr *ra = NULL;
	_cleanup_(nl_addr_putp) struct nl_addr *local = NULL;
	int r;

	r = route_socket(&sk, err);
	if (r < 0)
		return r;
	r = rtnl_link_get_kernel(sk, 0, name, &link);
	if (r < 0)
		return al_error_set(err, errno_of_nlerr(r), "netlink: get link %s: %s", name,
		                    nl_geterror(r));
	ra = rtnl_addr_alloc();
	local = ipv4_addr(addr, prefix);
	change = rtnl_link_alloc();
	if (!ra || !local || !change)
		return al_error_set(err, ENOMEM, "netlink: out of memory");
	rtnl_addr_set_ifindex(ra, rtnl_link_get_ifindex(link));
	r = rtnl_addr_set_local(ra, local);
	if (r == 0)
		r = rtnl_addr_add(sk, ra, 0);
	if (r < 0)
		return al_error_set(err, errno_of_nlerr(r), "netlink: add address to %s: %s", name,
		                    nl_geterror(r));
	rtnl_link_set_flags(change, IFF_UP);
	r = rtnl_link_change(sk, link, change, 0);
	if (r < 0)
		return al_error_set(err, errno_of_nlerr(r), "netlink: set %s up: %s", name,
		                    nl_geterror(r));
	return 0;
}

int netlink_default_route(uint32_t gateway, struct al_error *err)
{
	_cleanup_nl_sock_ struct nl_sock *sk = NULL;
	_cleanup_(rtnl_route_putp) struct rtnl_route *route = rtnl_route_alloc();
	_cleanup_(nl_addr_putp) struct nl_addr *dst = ipv4_addr(0, 0);
	_cleanup_(nl_addr_putp) struct nl_addr *gw = ipv4_addr(gateway, 32);
	struct rtnl_nexthop *nh = rtnl_route_nh_alloc();
	int r;

	if (!route || !dst || !gw || !nh) {
		if (nh)
			rtnl_route_nh_free(nh);
		return al_error_set(err, ENOMEM, "netlink: out of memory");
	}
	rtnl_route_nh_set_gateway(nh, gw);
	/* The route owns the next hop from here on. */
	rtnl_route_add_nexthop(route, nh);
	rtnl_route_set_family(route, AF_INET);
	rtnl_route_set_table(route, RT_TABLE_MAIN);
	rtnl_route_set_scope(route, RT_SCOPE_UNIVERSE);
	rtnl_route_set_protocol(route, RTPROT_STATIC);
	r = rtnl_route_set_dst(route, dst);
	if (r < 0)
		return nl_fail(err, r, "default route");
	r = route_socket(&sk, err);
	if (r < 0)
		return r;
	r = rtnl_route_add(sk, route, NLM_F_CREATE);
	if (r < 0)
		return nl_fail(err, r, "add default route");
	return 0;
}
