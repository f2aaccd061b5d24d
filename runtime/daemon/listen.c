/* SPDX-License-Identifier: Apache-2.0 */
#include "listen.h"

#include <errno.h>
#include <fcntl.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "cleanup.h"
#include "util.h"

/* The first fd systemd passes (SD_LISTEN_FDS_START in sd-daemon.h). */
#define LISTEN_FDS_START 3

int listen_api_socket(const char *path, gid_t gid, struct al_error *err)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	_cleanup_close_ int fd = -1;
	_cleanup_free_ char *dir = strdup(path);
	char *slash;

	if (strlen(path) >= sizeof(sa.sun_path))
		return al_error_set(err, ENAMETOOLONG, "socket path %s is too long", path);
	strcpy(sa.sun_path, path);
	if (dir && (slash = strrchr(dir, '/')) && slash != dir) {
		*slash = '\0';
		if (al_mkdir_p(dir, 0755, err) < 0)
			return -err->code;
	}
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return al_error_errno(err, "socket");
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0)
		return al_error_set(err, EADDRINUSE, "another airlockd is serving %s", path);
	close(fd);
	unlink(path);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return al_error_errno(err, "socket");
	if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0)
		return al_error_errno(err, "bind %s", path);
	if (chown(path, 0, gid == (gid_t)-1 ? 0 : gid) < 0)
		return al_error_errno(err, "chown %s", path);
	if (chmod(path, 0660) < 0)
		return al_error_errno(err, "chmod %s", path);
	if (listen(fd, 256) < 0)
		return al_error_errno(err, "listen %s", path);
	return TAKE_FD(fd);
}

/* The decimal number in the environment variable name, or -1. */
static long env_number(const char *name)
{
	const char *s = getenv(name);
	char *end = NULL;
	long v;

	if (!s || !*s)
		return -1;
	errno = 0;
	v = strtol(s, &end, 10);
	if (errno || *end || v < 0)
		return -1;
	return v;
}

int listen_api_from_systemd(char **path, struct al_error *err)
{
	struct sockaddr_un sa;
	socklen_t len = sizeof(sa);
	int fd = LISTEN_FDS_START, value;
	long pid = env_number("LISTEN_PID"), nfds = env_number("LISTEN_FDS");
	struct stat st;

	*path = NULL;
	/* Variables meant for another process (our parent's) are not ours. */
	if (pid != (long)getpid())
		return -ENOENT;
	unsetenv("LISTEN_PID");
	unsetenv("LISTEN_FDS");
	unsetenv("LISTEN_FDNAMES");
	if (nfds != 1)
		return al_error_set(
		    err, EINVAL,
		    "systemd passed %ld sockets (LISTEN_FDS); airlockd takes exactly "
		    "one (airlockd.socket with one ListenStream=)",
		    nfds);
	if (fstat(fd, &st) < 0 || !S_ISSOCK(st.st_mode))
		return al_error_set(err, EINVAL, "fd %d from systemd is not a socket", fd);
	len = sizeof(value);
	if (getsockopt(fd, SOL_SOCKET, SO_DOMAIN, &value, &len) < 0 || value != AF_UNIX)
		return al_error_set(err, EINVAL, "the socket from systemd is not a Unix socket");
	len = sizeof(value);
	if (getsockopt(fd, SOL_SOCKET, SO_TYPE, &value, &len) < 0 || value != SOCK_STREAM)
		return al_error_set(
		    err, EINVAL, "the socket from systemd is not a stream socket (ListenStream=)");
	len = sizeof(value);
	if (getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &value, &len) < 0 || !value)
		return al_error_set(err, EINVAL, "the socket from systemd is not listening");
	/* Sandboxes and helpers airlockd starts must not inherit it. */
	if (fcntl(fd, F_SETFD, FD_CLOEXEC) < 0)
		return al_error_errno(err, "fcntl the socket from systemd");
	len = sizeof(sa);
	if (getsockname(fd, (struct sockaddr *)&sa, &len) == 0 &&
	    len > offsetof(struct sockaddr_un, sun_path) && sa.sun_path[0])
		*path = strndup(sa.sun_path, len - offsetof(struct sockaddr_un, sun_path));
	return fd;
}
