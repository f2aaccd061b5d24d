/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The file API's operations on one sandbox (sandbox.h, "files").
 *
 * While the sandbox runs, each operation is done by its file server, a
 * helper (helper.h) that has joined the sandbox's namespaces as its root:
 * the kernel checks every access against the sandbox's own credentials and
 * mounts, so the API can do to a file exactly what the sandbox's root
 * could, never what only host root can (read the host's ACPI tables
 * through the sandbox's /sys, drain the host's kernel log through its
 * /proc, detach one of its mounts).
 * Paths still resolve as if chrooted (fsops.c), relative ones from the
 * workspace.  Once PID 1 is gone there are no namespaces to join: the
 * writable layer is read from the host, on its one filesystem, read-only.
 */
#include <errno.h>
#include <inttypes.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/magic.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/statfs.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "cgroup.h"
#include "cleanup.h"
#include "fsops.h"
#include "helper.h"
#include "json.h"
#include "sandbox.h"
#include "util.h"

/* Long enough for a recursive remove of a big tree or a large upload;
 * bounded, so that no file a sandbox made (a FIFO swapped in, a FUSE file
 * that never answers) holds an airlockd thread for good. */
#define FILE_OP_TIMEOUT_MS 60000
/* A server with nothing to do ends: it holds the sandbox's namespaces and,
 * forked from airlockd, a copy-on-write image of airlockd's memory. */
#define FILE_SERVER_IDLE_MS 10000
/* A directory listing's JSON, at most. */
#define MAX_LISTING_BYTES (64u << 20)
/* Data travels in messages of this size (SOCK_SEQPACKET keeps them whole). */
#define FILE_CHUNK (64u << 10)

/*
 * The file server of a sandbox: one helper per running sandbox, started on
 * its first file operation, serving them one at a time over a
 * SOCK_SEQPACKET socketpair.  A helper per operation would cost a fork of
 * airlockd each time (~2.5 ms of CPU against ~0.1 ms for the operation).
 * It ends when idle, when the sandbox's PID 1 ends, when airlockd closes
 * its socket, and with airlockd.
 */
struct file_server {
	pthread_mutex_t op;    /* one operation at a time */
	pthread_mutex_t state; /* the fields below */
	pid_t pid;             /* 0: none running */
	int pidfd;
	int sock;
};

enum file_op { FILE_READ = 1, FILE_WRITE, FILE_REMOVE, FILE_LIST, FILE_MKDIR };

#define FILE_PARENTS 1u
#define FILE_RECURSIVE 2u
/* FILE_READ: the file's open fd may be answered instead of its bytes. */
#define FILE_PASS_FD 4u

struct file_request {
	uint32_t op;
	uint32_t flags;
	uint32_t mode;
	uint32_t path_len; /* the path follows */
	uint64_t max;      /* FILE_READ */
	uint64_t len;      /* FILE_WRITE: bytes of the passed fd */
};

struct file_reply {
	int32_t code;       /* 0, or a positive errno */
	uint32_t msg_len;   /* the error message follows */
	uint64_t data_len;  /* then so many bytes in FILE_CHUNK messages */
	uint32_t fd_passed; /* or none: the file's fd rides on this message, data_len its size */
	uint32_t reserved;
};

/* ---- in the server ---------------------------------------------------------------------- */

struct server_args {
	int sock;
	int ns_pidfd; /* PID 1 of the sandbox: the server ends with it */
};

static int send_with_fd(int sock, const void *buf, size_t len, int fd)
{
	char cmsgbuf[CMSG_SPACE(sizeof(int))] = {0};
	struct iovec iov = {.iov_base = (void *)buf, .iov_len = len};
	struct msghdr mh = {.msg_iov = &iov, .msg_iovlen = 1};

	if (fd >= 0) {
		struct cmsghdr *c;
		mh.msg_control = cmsgbuf;
		mh.msg_controllen = sizeof(cmsgbuf);
		c = CMSG_FIRSTHDR(&mh);
		c->cmsg_level = SOL_SOCKET;
		c->cmsg_type = SCM_RIGHTS;
		c->cmsg_len = CMSG_LEN(sizeof(int));
		memcpy(CMSG_DATA(c), &fd, sizeof(int));
	}
	return sendmsg(sock, &mh, MSG_NOSIGNAL) < 0 ? -errno : 0;
}

/* The file's fd instead of its bytes, for airlockd to send to the client
 * with sendfile(2): no copy through two processes' memory, no bound on the
 * size.  Only on filesystems whose files are what their size says and whose
 * reads never wait on anyone: a sandbox's tmpfs and overlay layers, local
 * disks.  Not /proc or /sys (sizes of 0 or 4096, whatever the content), not
 * FUSE (a bucket mount's read may wait on the network, which would hold an
 * airlockd thread past every bound of this file). */
static bool fd_passable(int fd)
{
	struct statfs sfs;

	if (fstatfs(fd, &sfs) < 0)
		return false;
	switch ((unsigned long)sfs.f_type) {
	case TMPFS_MAGIC:
	case OVERLAYFS_SUPER_MAGIC:
	case EXT4_SUPER_MAGIC:
	case XFS_SUPER_MAGIC:
	case BTRFS_SUPER_MAGIC:
		return true;
	default:
		return false;
	}
}

static int send_reply(int sock, int code, const char *msg, const char *data, size_t len)
{
	char buf[sizeof(struct file_reply) + AL_ERROR_MSG_MAX];
	struct file_reply h = {
	    .code = code, .msg_len = msg ? (uint32_t)strlen(msg) : 0, .data_len = len};

	memcpy(buf, &h, sizeof(h));
	if (h.msg_len)
		memcpy(buf + sizeof(h), msg, h.msg_len);
	if (send(sock, buf, sizeof(h) + h.msg_len, MSG_NOSIGNAL) < 0)
		return -errno;
	for (size_t off = 0; off < len; off += FILE_CHUNK) {
		size_t n = len - off < FILE_CHUNK ? len - off : FILE_CHUNK;
		if (send(sock, data + off, n, MSG_NOSIGNAL) < 0)
			return -errno;
	}
	return 0;
}

/* One request: the path, and for a write the upload's fd. */
static int serve_one(int sock, int rootfd)
{
	char buf[sizeof(struct file_request) + PATH_MAX + 1];
	char cmsgbuf[CMSG_SPACE(sizeof(int))];
	struct iovec iov = {.iov_base = buf, .iov_len = sizeof(buf)};
	struct msghdr mh = {.msg_iov = &iov,
	                    .msg_iovlen = 1,
	                    .msg_control = cmsgbuf,
	                    .msg_controllen = sizeof(cmsgbuf)};
	struct al_error err = AL_ERROR_INIT;
	_cleanup_close_ int src_fd = -1;
	_cleanup_free_ char *data = NULL;
	struct file_request rq;
	struct cmsghdr *c;
	size_t len = 0;
	ssize_t n;
	char *path;
	int r;

	n = recvmsg(sock, &mh, MSG_CMSG_CLOEXEC);
	if (n <= 0)
		return n == 0 ? 1 : -errno; /* 1: airlockd closed its end */
	for (c = CMSG_FIRSTHDR(&mh); c; c = CMSG_NXTHDR(&mh, c))
		if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_RIGHTS)
			memcpy(&src_fd, CMSG_DATA(c), sizeof(int));
	if ((size_t)n < sizeof(rq))
		return -EPROTO;
	memcpy(&rq, buf, sizeof(rq));
	if (rq.path_len > PATH_MAX || (size_t)n != sizeof(rq) + rq.path_len)
		return -EPROTO;
	path = buf + sizeof(rq);
	path[rq.path_len] = '\0';

	switch (rq.op) {
	case FILE_READ: {
		_cleanup_close_ int fd = -1;
		uint64_t size = 0;
		r = fsops_open_read(rootfd, NULL, path,
		                    rq.flags & FILE_PASS_FD ? UINT64_MAX : rq.max, &fd, &size,
		                    &err);
		if (r == 0 && (rq.flags & FILE_PASS_FD) && fd_passable(fd)) {
			struct file_reply h = {.data_len = size, .fd_passed = 1};
			return send_with_fd(sock, &h, sizeof(h), fd);
		}
		if (r == 0 && size > rq.max)
			r = al_error_set(&err, EFBIG, "%s is larger than %" PRIu64 " bytes", path,
			                 rq.max);
		if (r == 0) {
			r = al_read_fd(fd, (size_t)rq.max, &data, &len, &err);
			if (r < 0)
				al_error_prefix(&err, "read %s", path);
		}
		break;
	}
	case FILE_WRITE:
		r = src_fd < 0
		        ? al_error_set(&err, EPROTO, "no upload")
		        : fsops_write_from_fd(rootfd, NULL, path, src_fd, rq.len, (mode_t)rq.mode,
		                              rq.flags & FILE_PARENTS, (uid_t)-1, (gid_t)-1, &err);
		break;
	case FILE_REMOVE:
		r = fsops_remove(rootfd, NULL, path, rq.flags & FILE_RECURSIVE, &err);
		break;
	case FILE_MKDIR:
		r = fsops_mkdir(rootfd, NULL, path, rq.flags & FILE_PARENTS, 0755, (uid_t)-1,
		                (gid_t)-1, &err);
		break;
	case FILE_LIST: {
		_cleanup_cjson_ cJSON *o = NULL;
		r = fsops_list(rootfd, NULL, path, &o, &err);
		if (r == 0) {
			data = cJSON_PrintUnformatted(o);
			r = data ? 0 : al_error_set(&err, ENOMEM, "out of memory");
			len = data ? strlen(data) : 0;
		}
		break;
	}
	default:
		return -EPROTO;
	}
	if (r < 0)
		return send_reply(sock, err.code ? err.code : EIO, err.msg, NULL, 0);
	return send_reply(sock, 0, NULL, data, len);
}

/* In the helper, as the sandbox's root: new files and directories are then
 * its own without a chown (owner -1 above). */
static int file_server_main(void *arg, int out_fd, struct al_error *err)
{
	const struct server_args *a = arg;
	_cleanup_close_ int rootfd = open("/", O_PATH | O_DIRECTORY | O_CLOEXEC);

	(void)out_fd;
	if (rootfd < 0)
		return al_error_errno(err, "open the sandbox's /");
	fsops_cross_mounts();
	for (;;) {
		struct pollfd p[2] = {{.fd = a->sock, .events = POLLIN},
		                      {.fd = a->ns_pidfd, .events = POLLIN}};
		int n = poll(p, 2, FILE_SERVER_IDLE_MS), r;
		if (n < 0 && errno == EINTR)
			continue;
		/* Idle, or the sandbox's PID 1 is gone: nothing read, nothing done. */
		if (n <= 0 || (p[1].revents && !p[0].revents))
			return 0;
		r = serve_one(a->sock, rootfd);
		if (r == 1)
			return 0;
		if (r < 0)
			return al_error_set(err, -r, "file server");
	}
}

/* ---- in airlockd ------------------------------------------------------------------------ */

static struct file_server *file_server_get(struct sandbox *sb, struct al_error *err)
{
	struct file_server *fs;

	pthread_mutex_lock(&sb->lock);
	fs = sb->files;
	if (!fs) {
		fs = calloc(1, sizeof(*fs));
		if (fs) {
			pthread_mutex_init(&fs->op, NULL);
			pthread_mutex_init(&fs->state, NULL);
			fs->pidfd = fs->sock = -1;
			sb->files = fs;
		}
	}
	pthread_mutex_unlock(&sb->lock);
	if (!fs)
		al_error_set(err, ENOMEM, "out of memory");
	return fs;
}

/* With fs->state held: end the server (if any) and reap it. */
static int reap_locked(struct file_server *fs, bool kill_it)
{
	int status = 0;

	if (!fs->pid)
		return -1;
	if (kill_it)
		syscall(SYS_pidfd_send_signal, fs->pidfd, SIGKILL, NULL, 0);
	while (waitpid(fs->pid, &status, 0) < 0 && errno == EINTR)
		;
	close(fs->pidfd);
	close(fs->sock);
	fs->pid = 0;
	fs->pidfd = fs->sock = -1;
	return status;
}

/*
 * The cgroups a file helper joins: the sandbox's (memory, CPU, pids), so
 * that what the file API writes into its tmpfs, and the helper's own
 * memory, CPU and pid, are the sandbox's and count against its limits; it
 * was airlockd's, and a sandbox's files written through the API were
 * outside its memory limit.  Not its freezer group: a snapshot with
 * processes freezes that, and a helper there would stop with it and be
 * found by CRIU.
 */
struct helper_cgroups {
	int fds[HELPER_MAX_CGROUP_FDS];
	int n;
};

static void helper_cgroups_close(struct helper_cgroups *c)
{
	while (c->n > 0)
		close(c->fds[--c->n]);
}

static int helper_cgroups_open(const struct sandbox *sb, struct helper_cgroups *c,
                               struct helper_opts *o, struct al_error *err)
{
	int n = cgroup_open_joins_unfrozen(sb->host->cgroups, sb->id, c->fds, AL_ARRAY_SIZE(c->fds),
	                                   err);
	if (n < 0)
		return al_error_prefix(err, "sandbox %s", sb->id);
	c->n = n;
	o->cgroup_fds = c->fds;
	o->n_cgroup_fds = (size_t)n;
	return 0;
}

/* With fs->state held: a running server, started when there is none. */
static int ensure_started_locked(struct sandbox *sb, struct file_server *fs, struct al_error *err)
{
	_cleanup_(helper_cgroups_close) struct helper_cgroups cg = {.n = 0};
	struct helper_opts o = HELPER_OPTS_INIT;
	struct server_args a;
	int sp[2], r;

	if (fs->pid) {
		struct pollfd p = {.fd = fs->pidfd, .events = POLLIN};
		if (poll(&p, 1, 0) == 0)
			return 0;
		reap_locked(fs, false); /* ended (idle): start another */
	}
	r = helper_cgroups_open(sb, &cg, &o, err);
	if (r < 0)
		return r;
	if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sp) < 0)
		return al_error_errno(err, "sandbox %s: socketpair", sb->id);
	a.sock = sp[1];
	a.ns_pidfd = sb->pidfd;
	o.ns_pidfd = sb->pidfd;
	o.keep_fd = sp[1];
	o.what = "file server";
	r = helper_start(file_server_main, &a, &o, &fs->pid, &fs->pidfd, err);
	close(sp[1]);
	if (r < 0) {
		close(sp[0]);
		return al_error_prefix(err, "sandbox %s", sb->id);
	}
	fs->sock = sp[0];
	return 0;
}

static int send_request(int sock, const struct file_request *rq, const char *path, int fd)
{
	char buf[sizeof(*rq) + PATH_MAX];

	memcpy(buf, rq, sizeof(*rq));
	memcpy(buf + sizeof(*rq), path, rq->path_len);
	return send_with_fd(sock, buf, sizeof(*rq) + rq->path_len, fd);
}

/* One message, waiting until the deadline: its length, 0 at the end; with
 * fd, the descriptor it carried (or -1). */
static ssize_t recv_until(int sock, void *buf, size_t len, uint64_t deadline, int *fd)
{
	for (;;) {
		struct pollfd p = {.fd = sock, .events = POLLIN};
		uint64_t now = al_now_ms();
		int n;
		if (now >= deadline)
			return -ETIMEDOUT;
		n = poll(&p, 1, (int)(deadline - now));
		if (n < 0 && errno != EINTR)
			return -errno;
		if (n <= 0)
			continue;
		char cmsgbuf[CMSG_SPACE(sizeof(int))];
		struct iovec iov = {.iov_base = buf, .iov_len = len};
		struct msghdr mh = {.msg_iov = &iov,
		                    .msg_iovlen = 1,
		                    .msg_control = cmsgbuf,
		                    .msg_controllen = sizeof(cmsgbuf)};
		ssize_t got = recvmsg(sock, &mh, MSG_DONTWAIT | MSG_CMSG_CLOEXEC);
		if (got < 0 && (errno == EAGAIN || errno == EINTR))
			continue;
		for (struct cmsghdr *c = CMSG_FIRSTHDR(&mh); got >= 0 && c; c = CMSG_NXTHDR(&mh, c))
			if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_RIGHTS) {
				int passed;
				memcpy(&passed, CMSG_DATA(c), sizeof(int));
				/* Only where one is expected; anywhere else it goes. */
				if (fd && *fd < 0)
					*fd = passed;
				else
					close(passed);
			}
		return got < 0 ? -errno : got;
	}
}

/* The reply to one request: its code and message into err, its data into
 * out, or (a FILE_PASS_FD read) the file's fd into *fd and its size into
 * *fd_len. */
static int read_reply(int sock, struct al_buf *out, size_t out_max, int *fd, uint64_t *fd_len,
                      struct al_error *err, bool *ended, bool *broken)
{
	char buf[FILE_CHUNK > sizeof(struct file_reply) + AL_ERROR_MSG_MAX
	             ? FILE_CHUNK
	             : sizeof(struct file_reply) + AL_ERROR_MSG_MAX];
	uint64_t deadline = al_now_ms() + FILE_OP_TIMEOUT_MS;
	_cleanup_close_ int passed = -1;
	struct file_reply h;
	ssize_t n = recv_until(sock, buf, sizeof(buf), deadline, fd ? &passed : NULL);

	*ended = n == 0;
	/* Every way out but an answer from the server: the server is done for. */
	*broken = true;
	if (n == -ETIMEDOUT)
		return al_error_set(err, ETIMEDOUT, "no answer in %d s", FILE_OP_TIMEOUT_MS / 1000);
	if (n <= 0)
		return al_error_set(err, EIO, "the file server ended");
	memcpy(&h, buf, (size_t)n < sizeof(h) ? (size_t)n : sizeof(h));
	if ((size_t)n < sizeof(h) || h.msg_len >= AL_ERROR_MSG_MAX ||
	    (size_t)n != sizeof(h) + h.msg_len ||
	    (!h.fd_passed && h.data_len && (!out || h.data_len > out_max)))
		return al_error_set(err, EPROTO, "a malformed answer from the file server");
	if (h.code) {
		*broken = false;
		buf[sizeof(h) + h.msg_len] = '\0';
		return al_error_set(err, h.code > 0 && h.code < 4096 ? h.code : EIO, "%s",
		                    buf + sizeof(h));
	}
	if (h.fd_passed) {
		if (passed < 0)
			return al_error_set(err, EPROTO, "a malformed answer from the file server");
		*broken = false;
		*fd = TAKE_FD(passed);
		*fd_len = h.data_len;
		return 0;
	}
	while (out && out->len < h.data_len) {
		n = recv_until(sock, buf, sizeof(buf), deadline, NULL);
		if (n == -ETIMEDOUT)
			return al_error_set(err, ETIMEDOUT, "no answer in %d s",
			                    FILE_OP_TIMEOUT_MS / 1000);
		if (n <= 0 || out->len + (size_t)n > h.data_len)
			return al_error_set(err, EPROTO, "a cut answer from the file server");
		if (al_buf_append(out, buf, (size_t)n) < 0)
			return al_error_set(err, ENOMEM, "out of memory");
	}
	*broken = false;
	return 0;
}

/*
 * One operation through the sandbox's file server.  A server that ended
 * idle just before the request read nothing: the request goes to a new one
 * (once).  Any other failure ends the server; the next operation starts a
 * new one.
 */
static int file_op(struct sandbox *sb, const struct file_request *rq, const char *path, int fd,
                   struct al_buf *out, size_t out_max, int *out_fd, uint64_t *out_fd_len,
                   struct al_error *err)
{
	struct file_server *fs;
	int r = 0;

	if (!sandbox_running(sb) || sb->pidfd < 0)
		return al_error_set(err, ESRCH,
		                    "sandbox %s is stopped (its PID 1 is gone): its files can be "
		                    "read, not changed",
		                    sb->id);
	fs = file_server_get(sb, err);
	if (!fs)
		return -ENOMEM;
	pthread_mutex_lock(&fs->op);
	for (int attempt = 0; attempt < 2; attempt++) {
		_cleanup_close_ int sock = -1;
		bool ended = false, broken = true;
		int status;

		pthread_mutex_lock(&fs->state);
		r = ensure_started_locked(sb, fs, err);
		if (r == 0) {
			sock = fcntl(fs->sock, F_DUPFD_CLOEXEC, 3);
			if (sock < 0)
				r = al_error_errno(err, "sandbox %s: dup", sb->id);
		}
		pthread_mutex_unlock(&fs->state);
		if (r < 0)
			break;
		r = send_request(sock, rq, path, fd);
		if (r < 0) {
			ended = r == -EPIPE || r == -ECONNRESET;
			errno = -r;
			r = al_error_errno(err, "send to the file server");
		} else {
			if (out)
				out->len = 0;
			r = read_reply(sock, out, out_max, out_fd, out_fd_len, err, &ended,
			               &broken);
			if (!broken)
				break; /* an answer: success or the operation's own error */
		}
		pthread_mutex_lock(&fs->state);
		if (r == -ETIMEDOUT && fs->pid)
			helper_describe_wait(fs->pid, "the file server", err);
		status = reap_locked(fs, true);
		pthread_mutex_unlock(&fs->state);
		if (ended && WIFSIGNALED(status))
			al_error_set(err, EIO, "the file server was killed by signal %d",
			             WTERMSIG(status));
		else if (ended && WIFEXITED(status) && WEXITSTATUS(status))
			al_error_set(err, EIO, "the file server failed (exit status %d)",
			             WEXITSTATUS(status));
		al_error_prefix(err, "sandbox %s: %s", sb->id, path);
		/* Ended idle (exit 0) without reading it: ask a new server. */
		if (!(ended && WIFEXITED(status) && WEXITSTATUS(status) == 0))
			break;
		al_error_clear(err);
	}
	pthread_mutex_unlock(&fs->op);
	return r;
}

void sandbox_files_stop(struct sandbox *sb)
{
	struct file_server *fs = sb->files;

	if (!fs)
		return;
	pthread_mutex_lock(&fs->state);
	reap_locked(fs, true);
	pthread_mutex_unlock(&fs->state);
}

void sandbox_files_free(struct sandbox *sb)
{
	struct file_server *fs = sb->files;

	if (!fs)
		return;
	sandbox_files_stop(sb);
	pthread_mutex_destroy(&fs->op);
	pthread_mutex_destroy(&fs->state);
	free(fs);
	sb->files = NULL;
}

/* A stopped sandbox: its writable layer, from the host, read-only. */
static int open_stopped_layer(const struct sandbox *sb, struct al_error *err)
{
	char path[PATH_MAX];
	int fd;

	sandbox_upper_path(sb, path, sizeof(path));
	fd = open(path, O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0)
		return al_error_errno(err, "sandbox %s: open %s", sb->id, path);
	return fd;
}

/* The absolute path in the sandbox: relative ones are from its workspace. */
static int sandbox_path(const struct sandbox *sb, const char *path, char out[PATH_MAX],
                        struct al_error *err)
{
	int n;

	if (!path || !path[0])
		return al_error_set(err, EINVAL, "empty path");
	n = path[0] == '/' ? snprintf(out, PATH_MAX, "%s", path)
	                   : snprintf(out, PATH_MAX, "%s/%s", sb->spec.workspace, path);
	if (n < 0 || n >= PATH_MAX)
		return al_error_set(err, ENAMETOOLONG, "path '%.64s...' is too long", path);
	return 0;
}

int sandbox_file_read(struct sandbox *sb, const char *path, size_t max, char **data, size_t *len,
                      struct al_error *err)
{
	struct file_request rq = {.op = FILE_READ, .max = max};
	_cleanup_buf_ struct al_buf out = {0};
	char full[PATH_MAX];
	int r;

	if (!sandbox_running(sb)) {
		_cleanup_close_ int rootfd = open_stopped_layer(sb, err);
		if (rootfd < 0)
			return rootfd;
		return fsops_read(rootfd, sb->spec.workspace, path, max, data, len, err);
	}
	r = sandbox_path(sb, path, full, err);
	if (r < 0)
		return r;
	rq.path_len = (uint32_t)strlen(full);
	r = file_op(sb, &rq, full, -1, &out, max, NULL, NULL, err);
	if (r < 0)
		return r;
	/* NUL-terminated, as fsops_read's are. */
	if (al_buf_append(&out, "", 1) < 0)
		return al_error_set(err, ENOMEM, "out of memory");
	*len = out.len - 1;
	*data = TAKE_PTR(out.data);
	return 0;
}

int sandbox_file_open_read(struct sandbox *sb, const char *path, size_t max, int *fd,
                           uint64_t *fd_len, char **data, size_t *len, struct al_error *err)
{
	struct file_request rq = {.op = FILE_READ, .max = max, .flags = FILE_PASS_FD};
	_cleanup_buf_ struct al_buf out = {0};
	char full[PATH_MAX];
	int r;

	*fd = -1;
	*data = NULL;
	if (!sandbox_running(sb))
		return sandbox_file_read(sb, path, max, data, len, err);
	r = sandbox_path(sb, path, full, err);
	if (r < 0)
		return r;
	rq.path_len = (uint32_t)strlen(full);
	r = file_op(sb, &rq, full, -1, &out, max, fd, fd_len, err);
	if (r < 0 || *fd >= 0)
		return r;
	if (al_buf_append(&out, "", 1) < 0)
		return al_error_set(err, ENOMEM, "out of memory");
	*len = out.len - 1;
	*data = TAKE_PTR(out.data);
	return 0;
}

int sandbox_file_write(struct sandbox *sb, const char *path, int src_fd, uint64_t len, mode_t mode,
                       bool parents, struct al_error *err)
{
	struct file_request rq = {
	    .op = FILE_WRITE, .len = len, .mode = mode, .flags = parents ? FILE_PARENTS : 0};
	char full[PATH_MAX];
	int r = sandbox_path(sb, path, full, err);

	if (r < 0)
		return r;
	rq.path_len = (uint32_t)strlen(full);
	return file_op(sb, &rq, full, src_fd, NULL, 0, NULL, NULL, err);
}

int sandbox_file_remove(struct sandbox *sb, const char *path, bool recursive, struct al_error *err)
{
	struct file_request rq = {.op = FILE_REMOVE, .flags = recursive ? FILE_RECURSIVE : 0};
	char full[PATH_MAX];
	int r = sandbox_path(sb, path, full, err);

	if (r < 0)
		return r;
	rq.path_len = (uint32_t)strlen(full);
	return file_op(sb, &rq, full, -1, NULL, 0, NULL, NULL, err);
}

int sandbox_dir_make(struct sandbox *sb, const char *path, bool parents, struct al_error *err)
{
	struct file_request rq = {.op = FILE_MKDIR, .flags = parents ? FILE_PARENTS : 0};
	char full[PATH_MAX];
	int r = sandbox_path(sb, path, full, err);

	if (r < 0)
		return r;
	rq.path_len = (uint32_t)strlen(full);
	return file_op(sb, &rq, full, -1, NULL, 0, NULL, NULL, err);
}

int sandbox_dir_list(struct sandbox *sb, const char *path, cJSON **listing, struct al_error *err)
{
	struct file_request rq = {.op = FILE_LIST};
	_cleanup_buf_ struct al_buf out = {0};
	char full[PATH_MAX];
	cJSON *o;
	int r;

	if (!sandbox_running(sb)) {
		_cleanup_close_ int rootfd = open_stopped_layer(sb, err);
		if (rootfd < 0)
			return rootfd;
		return fsops_list(rootfd, sb->spec.workspace, path, listing, err);
	}
	r = sandbox_path(sb, path, full, err);
	if (r < 0)
		return r;
	rq.path_len = (uint32_t)strlen(full);
	r = file_op(sb, &rq, full, -1, &out, MAX_LISTING_BYTES, NULL, NULL, err);
	if (r < 0)
		return r;
	o = cJSON_ParseWithLength(out.data, out.len);
	if (!o)
		return al_error_set(err, EIO, "sandbox %s: unreadable listing of %s", sb->id, path);
	*listing = o;
	return 0;
}

/* ---- streamed uploads -------------------------------------------------------------------- */

/*
 * A large upload goes straight into the sandbox: a helper of its own (in the
 * sandbox's namespaces, as its root, like the file server) reads the bytes
 * from a socket as airlockd receives them and writes them to a temp file it
 * publishes once all have come.  Nothing is spooled on the host's disk, and
 * the file server stays free for the sandbox's other operations.
 */
#define UPLOAD_BATCH (512 << 10)

struct sandbox_upload {
	pid_t pid;
	int pidfd;
	int sock;
	bool broken; /* the helper stopped reading: its answer says why */
};

struct upload_answer {
	int32_t code; /* 0 or a positive errno */
	char msg[AL_ERROR_MSG_MAX];
};

struct upload_args {
	int sock;
	const char *path;
	uint64_t len;
	mode_t mode;
	bool parents;
};

static int upload_main(void *arg, int out_fd, struct al_error *err)
{
	const struct upload_args *a = arg;
	_cleanup_close_ int rootfd = open("/", O_PATH | O_DIRECTORY | O_CLOEXEC);
	struct upload_answer ans = {0};
	struct al_error op = AL_ERROR_INIT;
	int r;

	(void)out_fd;
	if (rootfd < 0) {
		r = al_error_errno(&op, "open the sandbox's /");
	} else {
		fsops_cross_mounts();
		r = fsops_write_from_stream(rootfd, NULL, a->path, a->sock, a->len, a->mode,
		                            a->parents, (uid_t)-1, (gid_t)-1, &op);
	}
	if (r < 0) {
		ans.code = op.code ? op.code : EIO;
		snprintf(ans.msg, sizeof(ans.msg), "%s", op.msg);
	}
	if (al_write_all(a->sock, &ans, sizeof(ans)) < 0)
		return al_error_errno(err, "answer airlockd");
	return 0;
}

/* End the helper: at once with kill_it, else after grace_ms for it to end itself. */
static void upload_reap(struct sandbox_upload *u, int grace_ms)
{
	struct pollfd p = {.fd = u->pidfd, .events = POLLIN};

	if (!u->pid)
		return;
	if (grace_ms <= 0 || poll(&p, 1, grace_ms) <= 0)
		syscall(SYS_pidfd_send_signal, u->pidfd, SIGKILL, NULL, 0);
	while (waitpid(u->pid, NULL, 0) < 0 && errno == EINTR)
		;
	close(u->pidfd);
	u->pid = 0;
	u->pidfd = -1;
}

int sandbox_upload_begin(struct sandbox *sb, const char *path, uint64_t len, mode_t mode,
                         bool parents, struct sandbox_upload **out, struct al_error *err)
{
	_cleanup_(helper_cgroups_close) struct helper_cgroups cg = {.n = 0};
	struct helper_opts o = HELPER_OPTS_INIT;
	struct sandbox_upload *u;
	struct upload_args a = {.len = len, .mode = mode, .parents = parents};
	char full[PATH_MAX];
	int sp[2], r;

	if (!sandbox_running(sb) || sb->pidfd < 0)
		return al_error_set(err, ESRCH, "sandbox %s is stopped (its PID 1 is gone)",
		                    sb->id);
	r = sandbox_path(sb, path, full, err);
	if (r < 0)
		return r;
	r = helper_cgroups_open(sb, &cg, &o, err);
	if (r < 0)
		return r;
	u = calloc(1, sizeof(*u));
	if (!u)
		return al_error_set(err, ENOMEM, "out of memory");
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sp) < 0) {
		free(u);
		return al_error_errno(err, "sandbox %s: socketpair", sb->id);
	}
	/* libmicrohttpd hands the body over 32 KiB at a time: the helper would
	 * wake for each.  It wakes once UPLOAD_BATCH bytes are queued instead
	 * (or the upload's end), which the send buffer must be able to hold. */
	setsockopt(sp[0], SOL_SOCKET, SO_SNDBUFFORCE, &(int){2 * UPLOAD_BATCH}, sizeof(int));
	setsockopt(sp[1], SOL_SOCKET, SO_RCVLOWAT, &(int){UPLOAD_BATCH}, sizeof(int));
	a.sock = sp[1];
	a.path = full;
	o.ns_pidfd = sb->pidfd;
	o.keep_fd = sp[1];
	o.what = "upload helper";
	r = helper_start(upload_main, &a, &o, &u->pid, &u->pidfd, err);
	close(sp[1]);
	if (r < 0) {
		close(sp[0]);
		free(u);
		return al_error_prefix(err, "sandbox %s: %s", sb->id, full);
	}
	u->sock = sp[0];
	*out = u;
	return 0;
}

void sandbox_upload_write(struct sandbox_upload *u, const void *data, size_t len)
{
	const char *p = data;

	/* Bounded: a helper stuck on a file that never takes its bytes (a FIFO
	 * swapped in, a FUSE file) does not hold this connection's thread. */
	while (!u->broken && len) {
		struct pollfd pf = {.fd = u->sock, .events = POLLOUT};
		ssize_t n;
		int w = poll(&pf, 1, FILE_OP_TIMEOUT_MS);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0) {
			u->broken = true;
			break;
		}
		n = send(u->sock, p, len, MSG_DONTWAIT | MSG_NOSIGNAL);
		if (n < 0 && (errno == EAGAIN || errno == EINTR))
			continue;
		if (n <= 0) {
			u->broken = true; /* it stopped reading: it failed, or it is gone */
			break;
		}
		p += n;
		len -= (size_t)n;
	}
}

int sandbox_upload_end(struct sandbox_upload *u, struct al_error *err)
{
	struct upload_answer ans;
	uint64_t deadline = al_now_ms() + FILE_OP_TIMEOUT_MS;
	size_t got = 0;

	shutdown(u->sock, SHUT_WR);
	while (got < sizeof(ans)) {
		ssize_t n =
		    recv_until(u->sock, (char *)&ans + got, sizeof(ans) - got, deadline, NULL);
		if (n == -ETIMEDOUT) {
			al_error_set(err, ETIMEDOUT, "the upload helper gave no answer in %d s",
			             FILE_OP_TIMEOUT_MS / 1000);
			helper_describe_wait(u->pid, "the upload helper", err);
			upload_reap(u, 0);
			return -ETIMEDOUT;
		}
		if (n <= 0) {
			upload_reap(u, 0);
			return al_error_set(err, EIO, "the upload helper ended without an answer");
		}
		got += (size_t)n;
	}
	upload_reap(u, 5000);
	if (ans.code) {
		ans.msg[sizeof(ans.msg) - 1] = '\0';
		return al_error_set(err, ans.code > 0 && ans.code < 4096 ? ans.code : EIO, "%s",
		                    ans.msg);
	}
	return 0;
}

void sandbox_upload_free(struct sandbox_upload *u)
{
	if (!u)
		return;
	/* Not ended: the helper reads end-of-file before the announced length,
	 * removes its temp file and ends, publishing nothing. */
	close(u->sock);
	upload_reap(u, 2000);
	free(u);
}
