/* SPDX-License-Identifier: Apache-2.0 */
#include "netlink.h"

#include <errno.h>
#include <net/if.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include <netlink/errno.h>
#include <netlink/netlink.h>
#include <netlink/route/link.h>
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
