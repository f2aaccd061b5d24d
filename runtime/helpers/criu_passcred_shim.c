/* SPDX-License-Identifier: Apache-2.0 */
/*
 * LD_PRELOAD for the `criu` process only (criu.c sets it in criu's
 * environment, never in airlockd's or a sandbox's).
 *
 * CRIU 4.1.1 reads SO_PASSCRED and SO_PASSSEC from every socket it dumps.
 * Since Linux 6.16 the kernel refuses both options on sockets other than
 * AF_UNIX and netlink with EOPNOTSUPP, and CRIU then fails the whole dump
 * ("Can't get 1:16 opt: Operation not supported"; CRIU issues #2705 and
 * #2718, fixed in CRIU 4.2, which Debian does not package).  On such a
 * socket the option cannot be on, so this answers "off" (0) for exactly
 * that case and passes every other call through unchanged.  CRIU only
 * restores a non-zero value, so a restored socket is the same either way.
 */
#include <dlfcn.h>
#include <errno.h>
#include <string.h>
#include <sys/socket.h>

typedef int (*getsockopt_fn)(int, int, int, void *, socklen_t *);

int getsockopt(int fd, int level, int name, void *value, socklen_t *len)
{
	static getsockopt_fn next;
	int r;

	if (!next)
		next = (getsockopt_fn)dlsym(RTLD_NEXT, "getsockopt");
	if (!next) {
		errno = ENOSYS;
		return -1;
	}
	r = next(fd, level, name, value, len);
	if (r < 0 && errno == EOPNOTSUPP && level == SOL_SOCKET &&
	    (name == SO_PASSCRED || name == SO_PASSSEC) && value && len &&
	    *len >= (socklen_t)sizeof(int)) {
		memset(value, 0, sizeof(int));
		*len = sizeof(int);
		return 0;
	}
	return r;
}
