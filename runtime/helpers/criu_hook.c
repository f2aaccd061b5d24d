/* SPDX-License-Identifier: Apache-2.0 */
/*
 * airlock-criu-hook: CRIU's action script (criu restore --action-script).
 *
 * A sandbox's network namespace holds nothing but lo, up: airlock-init
 * brings it up and root inside can change nothing else (no CAP_NET_ADMIN).
 * So airlockd dumps it with --empty-ns net, which spares CRIU the
 * `ip addr/route/rule save`, iptables-save and sysctl reads of a dump and
 * their restore counterparts, a dozen programs in all (criu.c).  At restore
 * CRIU makes an empty network namespace, in which lo is down, and runs this
 * for each step; at "setup-namespaces" the restored tree's root task has
 * made that namespace and no socket has been restored yet, so lo comes up
 * before any socket is bound to 127.0.0.1 or reconnected over it.  Every
 * other step is a no-op.
 *
 * It runs as CRIU does (host root) and reads only what CRIU sets in its
 * environment.  A failure is printed in the "Error (...)" form that airlockd
 * picks out of CRIU's log, and fails the restore.
 */
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cleanup.h"
#include "error.h"
#include "netlink.h"

static int loopback_up_in(const char *pid_text, struct al_error *err)
{
	_cleanup_close_ int fd = -1;
	char path[64], *end = NULL;
	long pid;

	errno = 0;
	pid = pid_text ? strtol(pid_text, &end, 10) : 0;
	if (!pid_text || errno || end == pid_text || *end || pid <= 0)
		return al_error_set(err, EINVAL, "CRTOOLS_INIT_PID '%s' is not a pid",
		                    pid_text ? pid_text : "(unset)");
	snprintf(path, sizeof(path), "/proc/%ld/ns/net", pid);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return al_error_errno(err, "open %s", path);
	if (setns(fd, CLONE_NEWNET) < 0)
		return al_error_errno(err, "setns %s", path);
	return netlink_loopback_up(err);
}

int main(void)
{
	const char *action = getenv("CRTOOLS_SCRIPT_ACTION");
	struct al_error err = AL_ERROR_INIT;

	if (!action || strcmp(action, "setup-namespaces") != 0)
		return 0;
	if (loopback_up_in(getenv("CRTOOLS_INIT_PID"), &err) < 0) {
		fprintf(stderr, "Error (airlock-criu-hook): restored network namespace: %s\n",
		        err.msg);
		return 1;
	}
	return 0;
}
