/* SPDX-License-Identifier: Apache-2.0 */
#include "fsops.h"

#include <errno.h>
#include <inttypes.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/sendfile.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <linux/openat2.h>

#include "cleanup.h"
#include "json.h"
#include "util.h"

/*
 * RESOLVE_IN_ROOT makes absolute symlinks and '..' stop at rootfd, so a path
 * resolves exactly as it would for a process chrooted there.  Magic links
 * (/proc/<pid>/fd/..., /proc/<pid>/root inside the sandbox's own /proc) could
 * jump anywhere and are refused.
 *
 * RESOLVE_NO_XDEV, unless fsops_cross_mounts() was called: with host
 * root's credentials (a stopped sandbox's writable layer, read from the
 * host) every operation stays on one filesystem.  A sandbox's /proc, /sys
 * and /dev mounts are the host kernel's views, which host root must not
 * read or change for it (the sandbox's root is denied most of /proc and
 * /sys; host root is not).  A helper that acts with the sandbox's own
 * credentials, inside its namespaces, may follow the sandbox's mounts:
 * the kernel then refuses it what it refuses the sandbox's root.
 */
static bool cross_mounts;

void fsops_cross_mounts(void)
{
	cross_mounts = true;
}

static unsigned long long resolve_flags(void)
{
	return RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS | (cross_mounts ? 0 : RESOLVE_NO_XDEV);
}

/* Bounded: EAGAIN means a concurrent rename raced a '..' lookup. */
#define OPENAT2_RETRIES 32
/* What a streamed write reads at a time. */
#define STREAM_CHUNK (1u << 20)
#define PAGE_BYTES 4096u

static int openat2_in_root(int rootfd, const char *path, int flags, mode_t mode)
{
	struct open_how how = {
	    .flags = (unsigned long long)flags,
	    .mode = flags & (O_CREAT | O_TMPFILE) ? mode : 0,
	    .resolve = resolve_flags(),
	};

	for (int i = 0; i < OPENAT2_RETRIES; i++) {
		long fd = syscall(SYS_openat2, rootfd, path, &how, sizeof(how));
		if (fd >= 0)
			return (int)fd;
		if (errno != EAGAIN && errno != EINTR)
			return -errno;
	}
	return -EAGAIN;
}

/* al_error_errno(), with what EXDEV means here spelled out. */
__attribute__((format(printf, 2, 3))) static int path_errno(struct al_error *err, const char *fmt,
                                                            ...)
{
	int e = errno;
	char what[AL_ERROR_MSG_MAX];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(what, sizeof(what), fmt, ap);
	va_end(ap);
	/* The sandbox's root meets a file whose owner its user namespace does
	 * not map (from the base root filesystem, say) and may not change it. */
	if (e == EOVERFLOW)
		return al_error_set(err, EPERM,
		                    "%s: owned by a user or group the sandbox does not map", what);
	if (e == EXDEV)
		return al_error_set(err, EXDEV,
		                    "%s: on another mount of the sandbox (a stopped sandbox's "
		                    "files are read from its root filesystem only)",
		                    what);
	errno = e;
	return al_error_errno(err, "%s", what);
}

/* True when name in dirfd is the root of a mount (or cannot be told). */
static bool is_mount_root(int dirfd, const char *name)
{
	struct statx stx;

	if (statx(dirfd, name, AT_SYMLINK_NOFOLLOW, STATX_BASIC_STATS, &stx) < 0)
		return true;
	return (stx.stx_attributes_mask & STATX_ATTR_MOUNT_ROOT) &&
	       (stx.stx_attributes & STATX_ATTR_MOUNT_ROOT);
}

/* Owner first: chown may clear mode bits that fchmod then sets for good. */
static int set_owner_mode(int fd, uid_t uid, gid_t gid, mode_t mode, const char *what,
                          struct al_error *err)
{
	if ((uid != (uid_t)-1 || gid != (gid_t)-1) && fchown(fd, uid, gid) < 0)
		return al_error_errno(err, "chown %s", what);
	if (fchmod(fd, mode) < 0)
		return al_error_errno(err, "chmod %s", what);
	return 0;
}

/*
 * The absolute path inside the sandbox: path, or cwd/path when relative, with
 * empty and '.' components dropped.  '..' is kept: whether "a/.." is "" depends
 * on a being a symlink, which only the kernel's lookup may decide.
 */
static int full_path(const char *cwd, const char *path, char **out, bool *trailing_slash,
                     struct al_error *err)
{
	_cleanup_free_ char *joined = NULL;
	char *dst;
	const char *p;

	if (!path || !path[0])
		return al_error_set(err, EINVAL, "empty path");
	if (path[0] != '/') {
		if (!cwd || cwd[0] != '/')
			return al_error_set(err, EINVAL, "working directory '%s' is not absolute",
			                    cwd ? cwd : "");
		if (asprintf(&joined, "%s/%s", cwd, path) < 0)
			return al_error_set(err, ENOMEM, "out of memory");
	} else {
		joined = strdup(path);
		if (!joined)
			return al_error_set(err, ENOMEM, "out of memory");
	}
	if (strlen(joined) >= PATH_MAX)
		return al_error_set(err, ENAMETOOLONG, "path '%.64s...' is too long", joined);
	if (trailing_slash)
		*trailing_slash = path[strlen(path) - 1] == '/';

	/* In place: the cleaned path is never longer than the input. */
	dst = joined;
	p = joined;
	while (*p) {
		size_t n;
		while (*p == '/')
			p++;
		n = strcspn(p, "/");
		if (n == 0 || (n == 1 && p[0] == '.')) {
			p += n;
			continue;
		}
		*dst++ = '/';
		memmove(dst, p, n);
		dst += n;
		p += n;
	}
	if (dst == joined)
		*dst++ = '/';
	*dst = '\0';
	*out = TAKE_PTR(joined);
	return 0;
}

/* Split a cleaned absolute path into a malloc'd parent and its last component
 * (a pointer into full; "" for the root). */
static int split_path(const char *full, char **parent, const char **name, struct al_error *err)
{
	const char *slash = strrchr(full, '/');

	*parent = slash == full ? strdup("/") : strndup(full, (size_t)(slash - full));
	if (!*parent)
		return al_error_set(err, ENOMEM, "out of memory");
	*name = slash + 1;
	return 0;
}

/* The operations that act on a directory entry need a real name in the parent. */
static int check_entry_name(const char *full, const char *name, struct al_error *err)
{
	if (!name[0])
		return al_error_set(err, EINVAL, "'%s' is the root directory", full);
	if (!strcmp(name, ".."))
		return al_error_set(err, EINVAL, "'%s' does not name a directory entry", full);
	if (strlen(name) > NAME_MAX)
		return al_error_set(err, ENAMETOOLONG, "'%s': name too long", full);
	return 0;
}

/*
 * mkdir -p inside the root.  Each prefix is looked up again from the root, so a
 * symlink among the components resolves as the sandbox would see it; a missing
 * component is created in the directory its parent resolved to.
 */
static int mkdir_parents(int rootfd, const char *dir, uid_t uid, gid_t gid, struct al_error *err)
{
	_cleanup_free_ char *prefix = strdup(dir);
	_cleanup_close_ int cur = -1;
	char *p;

	if (!prefix)
		return al_error_set(err, ENOMEM, "out of memory");
	cur = openat2_in_root(rootfd, "/", O_RDONLY | O_DIRECTORY | O_CLOEXEC, 0);
	if (cur < 0) {
		errno = -cur;
		return path_errno(err, "open /");
	}
	for (p = prefix + 1; *p;) {
		char *end = p + strcspn(p, "/");
		char saved = *end;
		int next;

		*end = '\0';
		next = openat2_in_root(rootfd, prefix, O_RDONLY | O_DIRECTORY | O_CLOEXEC, 0);
		if (next == -ENOENT) {
			if (mkdirat(cur, p, 0700) == 0) {
				_cleanup_close_ int fd =
				    openat(cur, p, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
				int r;
				if (fd < 0)
					return al_error_errno(err, "open %s", prefix);
				r = set_owner_mode(fd, uid, gid, 0755, prefix, err);
				if (r < 0)
					return r;
			} else if (errno != EEXIST) {
				return al_error_errno(err, "mkdir %s", prefix);
			}
			next =
			    openat2_in_root(rootfd, prefix, O_RDONLY | O_DIRECTORY | O_CLOEXEC, 0);
		}
		if (next < 0) {
			errno = -next;
			return path_errno(err, "open directory %s", prefix);
		}
		close(cur);
		cur = next;
		*end = saved;
		p = saved ? end + 1 : end;
	}
	return TAKE_FD(cur);
}

static int open_dir(int rootfd, const char *dir, bool create, uid_t uid, gid_t gid,
                    struct al_error *err)
{
	int fd = openat2_in_root(rootfd, dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC, 0);

	if (fd >= 0)
		return fd;
	if (fd == -ENOENT && create)
		return mkdir_parents(rootfd, dir, uid, gid, err);
	errno = -fd;
	return path_errno(err, "open directory %s", dir);
}

/* The directory holding the entry full names, opened (and with create, made)
 * inside the root; *name points at the entry's name within full. */
static int open_parent(int rootfd, const char *full, bool create, uid_t uid, gid_t gid,
                       const char **name, struct al_error *err)
{
	_cleanup_free_ char *parent = NULL;
	int r;

	r = split_path(full, &parent, name, err);
	if (r < 0)
		return r;
	r = check_entry_name(full, *name, err);
	if (r < 0)
		return r;
	return open_dir(rootfd, parent, create, uid, gid, err);
}

int fsops_open_read(int rootfd, const char *cwd, const char *path, uint64_t max, int *out_fd,
                    uint64_t *size, struct al_error *err)
{
	_cleanup_free_ char *full = NULL;
	_cleanup_close_ int pathfd = -1, fd = -1;
	struct stat st, st2;
	int r;

	r = full_path(cwd, path, &full, NULL, err);
	if (r < 0)
		return r;
	/* O_PATH first: a device or FIFO is refused without ever being opened. */
	pathfd = openat2_in_root(rootfd, full, O_PATH | O_CLOEXEC, 0);
	if (pathfd < 0) {
		errno = -pathfd;
		return path_errno(err, "open %s", full);
	}
	if (fstat(pathfd, &st) < 0)
		return al_error_errno(err, "stat %s", full);
	if (!S_ISREG(st.st_mode))
		return al_error_set(err, EINVAL, "%s is not a regular file", full);
	if ((uintmax_t)st.st_size > max)
		return al_error_set(err, EFBIG, "%s is larger than %" PRIu64 " bytes", full, max);
	/* Only now open for reading.  Should the sandbox swap the path meanwhile, the
	 * cost is one non-blocking open that cannot acquire a controlling tty, and
	 * the check below refuses what it got.  (Reopening the O_PATH fd through
	 * /proc/self/fd would need a /proc the daemon may not have.) */
	fd = openat2_in_root(rootfd, full, O_RDONLY | O_NONBLOCK | O_NOCTTY | O_CLOEXEC, 0);
	if (fd < 0) {
		errno = -fd;
		return path_errno(err, "open %s", full);
	}
	if (fstat(fd, &st2) < 0)
		return al_error_errno(err, "stat %s", full);
	if (!S_ISREG(st2.st_mode) || st2.st_ino != st.st_ino || st2.st_dev != st.st_dev)
		return al_error_set(err, EINVAL, "%s changed while being opened", full);
	*size = (uint64_t)st2.st_size;
	*out_fd = TAKE_FD(fd);
	return 0;
}

int fsops_read(int rootfd, const char *cwd, const char *path, size_t max, char **data, size_t *len,
               struct al_error *err)
{
	_cleanup_close_ int fd = -1;
	uint64_t size;
	int r;

	r = fsops_open_read(rootfd, cwd, path, max, &fd, &size, err);
	if (r < 0)
		return r;
	r = al_read_fd(fd, max, data, len, err);
	if (r < 0)
		return al_error_prefix(err, "read %s", path);
	return 0;
}

/* The bytes of a write: in memory, len bytes of the file src_fd (from its
 * start, copied by the kernel without passing through our memory), or with
 * stream the next len bytes read from src_fd (a socket or pipe). */
struct write_source {
	const void *data;
	int src_fd;
	uint64_t len;
	bool stream;
};

/*
 * Fewer bytes than announced: the upload was cut, and nothing is published.
 * Each byte lands in buf at its offset in the file modulo a page, so that the
 * kernel's copy from buf into the file's pages has source and destination
 * aligned alike: rep movsb (what Linux copies with) runs several times slower
 * on AMD when they are not, and reads of a socket end at any byte.
 */
static int copy_stream(int fd, const struct write_source *src, const char *full,
                       struct al_error *err)
{
	_cleanup_free_ char *buf = NULL;
	uint64_t done = 0;

	if (posix_memalign((void **)&buf, PAGE_BYTES, STREAM_CHUNK + PAGE_BYTES) != 0)
		return al_error_set(err, ENOMEM, "out of memory");
	while (done < src->len) {
		size_t at = (size_t)(done % PAGE_BYTES);
		size_t want =
		    src->len - done < STREAM_CHUNK ? (size_t)(src->len - done) : STREAM_CHUNK;
		ssize_t n = read(src->src_fd, buf + at, want);
		int r;
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return al_error_errno(err, "write %s: read the upload", full);
		if (n == 0)
			return al_error_set(err, EIO,
			                    "write %s: the upload ended after %" PRIu64
			                    " of %" PRIu64 " bytes",
			                    full, done, src->len);
		r = al_write_all(fd, buf + at, (size_t)n);
		if (r < 0) {
			errno = -r;
			return al_error_errno(err, "write %s", full);
		}
		done += (uint64_t)n;
	}
	return 0;
}

static int copy_source(int fd, const struct write_source *src, const char *full,
                       struct al_error *err)
{
	off_t off = 0;
	int r;

	if (src->stream)
		return copy_stream(fd, src, full, err);
	if (src->src_fd < 0) {
		r = al_write_all(fd, src->data, (size_t)src->len);
		if (r < 0) {
			errno = -r;
			return al_error_errno(err, "write %s", full);
		}
		return 0;
	}
	while ((uint64_t)off < src->len) {
		ssize_t n = sendfile(fd, src->src_fd, &off, (size_t)(src->len - (uint64_t)off));
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return al_error_errno(err, "write %s", full);
		if (n == 0)
			return al_error_set(err, EIO, "write %s: the upload ended early", full);
	}
	return 0;
}

static int write_and_rename(int dirfd, const char *tmp, const char *name, const char *full,
                            const struct write_source *src, mode_t mode, uid_t uid, gid_t gid,
                            struct al_error *err)
{
	_cleanup_close_ int fd = -1;
	int r;

	fd = openat(dirfd, tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
	if (fd < 0)
		return al_error_errno(err, "create temporary file for %s", full);
	r = copy_source(fd, src, full, err);
	if (r < 0)
		return r;
	r = set_owner_mode(fd, uid, gid, mode, full, err);
	if (r < 0)
		return r;
	if (fsync(fd) < 0)
		return al_error_errno(err, "fsync %s", full);
	/* renameat replaces the name itself: a symlink swapped in meanwhile is
	 * replaced, never followed. */
	if (renameat(dirfd, tmp, dirfd, name) < 0)
		return path_errno(err, "rename to %s", full);
	return 0;
}

static int write_file(int rootfd, const char *cwd, const char *path, const struct write_source *src,
                      mode_t mode, bool parents, uid_t uid, gid_t gid, struct al_error *err)
{
	_cleanup_free_ char *full = NULL;
	_cleanup_close_ int dirfd = -1;
	const char *name = NULL;
	char tmp[32] = ".airlock-tmp-";
	bool trailing_slash = false;
	struct stat st;
	int r;

	r = full_path(cwd, path, &full, &trailing_slash, err);
	if (r < 0)
		return r;
	if (trailing_slash)
		return al_error_set(err, EISDIR, "%s: a file name cannot end with '/'", full);
	dirfd = open_parent(rootfd, full, parents, uid, gid, &name, err);
	if (dirfd < 0)
		return dirfd;
	if (fstatat(dirfd, name, &st, AT_SYMLINK_NOFOLLOW) == 0) {
		if (S_ISLNK(st.st_mode))
			return al_error_set(err, ELOOP, "%s is a symlink; refusing to replace it",
			                    full);
		if (S_ISDIR(st.st_mode))
			return al_error_set(err, EISDIR, "%s is a directory", full);
		if (!S_ISREG(st.st_mode))
			return al_error_set(err, EINVAL, "%s is not a regular file", full);
	} else if (errno != ENOENT) {
		return al_error_errno(err, "stat %s", full);
	}

	r = al_random_hex(tmp + strlen(tmp), 16, err);
	if (r < 0)
		return r;
	r = write_and_rename(dirfd, tmp, name, full, src, mode & 01777, uid, gid, err);
	if (r < 0) {
		unlinkat(dirfd, tmp, 0);
		return r;
	}
	/* Make the rename itself durable; the data is already. */
	(void)fsync(dirfd);
	return 0;
}

int fsops_write(int rootfd, const char *cwd, const char *path, const void *data, size_t len,
                mode_t mode, bool parents, uid_t uid, gid_t gid, struct al_error *err)
{
	struct write_source src = {.data = data, .src_fd = -1, .len = len};

	return write_file(rootfd, cwd, path, &src, mode, parents, uid, gid, err);
}

int fsops_write_from_fd(int rootfd, const char *cwd, const char *path, int src_fd, uint64_t len,
                        mode_t mode, bool parents, uid_t uid, gid_t gid, struct al_error *err)
{
	struct write_source src = {.src_fd = src_fd, .len = len};

	return write_file(rootfd, cwd, path, &src, mode, parents, uid, gid, err);
}

int fsops_write_from_stream(int rootfd, const char *cwd, const char *path, int src_fd, uint64_t len,
                            mode_t mode, bool parents, uid_t uid, gid_t gid, struct al_error *err)
{
	struct write_source src = {.src_fd = src_fd, .len = len, .stream = true};

	return write_file(rootfd, cwd, path, &src, mode, parents, uid, gid, err);
}

int fsops_remove(int rootfd, const char *cwd, const char *path, bool recursive,
                 struct al_error *err)
{
	_cleanup_free_ char *full = NULL;
	_cleanup_close_ int dirfd = -1;
	const char *name = NULL;
	struct stat st;
	int r;

	r = full_path(cwd, path, &full, NULL, err);
	if (r < 0)
		return r;
	if (!strcmp(full, "/"))
		return al_error_set(err, EINVAL, "refusing to remove /");
	dirfd = open_parent(rootfd, full, false, (uid_t)-1, (gid_t)-1, &name, err);
	if (dirfd < 0)
		return dirfd;
	if (fstatat(dirfd, name, &st, AT_SYMLINK_NOFOLLOW) < 0)
		return al_error_errno(err, "remove %s", full);
	/*
	 * A mount point of the sandbox is not one in airlockd's mount
	 * namespace, so the kernel would let host root remove it: and removing
	 * it detaches the sandbox's mount (its /proc, say).  Never.  (In the
	 * sandbox's own namespace the kernel says EBUSY; this says why.)
	 */
	if (is_mount_root(dirfd, name))
		return al_error_set(err, EBUSY, "%s is a mount point of the sandbox", full);
	if (S_ISDIR(st.st_mode) && recursive) {
		r = al_rm_rf_at(dirfd, name, err);
		if (r < 0)
			return al_error_prefix(err, "remove %s", full);
		return 0;
	}
	if (unlinkat(dirfd, name, S_ISDIR(st.st_mode) ? AT_REMOVEDIR : 0) < 0)
		return path_errno(err, "remove %s", full);
	return 0;
}

int fsops_mkdir(int rootfd, const char *cwd, const char *path, bool parents, mode_t mode, uid_t uid,
                gid_t gid, struct al_error *err)
{
	_cleanup_free_ char *full = NULL;
	_cleanup_close_ int dirfd = -1, fd = -1;
	const char *name = NULL;
	int r;

	r = full_path(cwd, path, &full, NULL, err);
	if (r < 0)
		return r;
	if (!strcmp(full, "/"))
		return parents ? 0 : al_error_set(err, EEXIST, "mkdir /: File exists");
	dirfd = open_parent(rootfd, full, parents, uid, gid, &name, err);
	if (dirfd < 0)
		return dirfd;
	if (mkdirat(dirfd, name, 0700) < 0) {
		_cleanup_close_ int existing = -1;
		if (errno != EEXIST || !parents)
			return path_errno(err, "mkdir %s", full);
		/* mkdir -p accepts an existing directory, or a symlink to one. */
		existing = openat2_in_root(rootfd, full, O_PATH | O_DIRECTORY | O_CLOEXEC, 0);
		if (existing < 0) {
			errno = EEXIST;
			return path_errno(err, "mkdir %s", full);
		}
		return 0;
	}
	fd = openat(dirfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0)
		return path_errno(err, "open %s", full);
	return set_owner_mode(fd, uid, gid, mode & 01777, full, err);
}

static int compare_names(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

static const char *file_type(mode_t m)
{
	if (S_ISREG(m))
		return "file";
	if (S_ISDIR(m))
		return "dir";
	if (S_ISLNK(m))
		return "symlink";
	return "other";
}

int fsops_list(int rootfd, const char *cwd, const char *path, cJSON **out, struct al_error *err)
{
	_cleanup_free_ char *full = NULL;
	_cleanup_closedir_ DIR *d = NULL;
	_cleanup_cjson_ cJSON *result = NULL;
	_cleanup_strv_ char **names = NULL;
	size_t n = 0, cap = 0;
	cJSON *entries;
	struct dirent *de;
	int fd, r;

	r = full_path(cwd, path, &full, NULL, err);
	if (r < 0)
		return r;
	fd = openat2_in_root(rootfd, full, O_RDONLY | O_DIRECTORY | O_CLOEXEC, 0);
	if (fd < 0) {
		errno = -fd;
		return path_errno(err, "open directory %s", full);
	}
	d = fdopendir(fd);
	if (!d) {
		close(fd);
		return al_error_errno(err, "opendir %s", full);
	}
	for (;;) {
		errno = 0;
		de = readdir(d);
		if (!de) {
			if (errno)
				return al_error_errno(err, "readdir %s", full);
			break;
		}
		if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
			continue;
		if (n + 1 >= cap) {
			size_t ncap = cap ? cap * 2 : 64;
			char **p = reallocarray(names, ncap, sizeof(char *));
			if (!p)
				return al_error_set(err, ENOMEM, "out of memory");
			names = p;
			cap = ncap;
		}
		names[n] = strdup(de->d_name);
		if (!names[n])
			return al_error_set(err, ENOMEM, "out of memory");
		names[++n] = NULL;
	}
	if (n)
		qsort(names, n, sizeof(char *), compare_names);

	result = cJSON_CreateObject();
	if (!result || !cJSON_AddStringToObject(result, "path", full) ||
	    !(entries = cJSON_AddArrayToObject(result, "entries")))
		return al_error_set(err, ENOMEM, "out of memory");
	for (size_t i = 0; i < n; i++) {
		struct stat st;
		char mode[8];
		cJSON *e;

		if (fstatat(dirfd(d), names[i], &st, AT_SYMLINK_NOFOLLOW) < 0) {
			if (errno == ENOENT) /* removed while listing */
				continue;
			return al_error_errno(err, "stat %s/%s", full, names[i]);
		}
		snprintf(mode, sizeof(mode), "%04o", (unsigned)(st.st_mode & 07777));
		e = cJSON_CreateObject();
		if (!e)
			return al_error_set(err, ENOMEM, "out of memory");
		if (!cJSON_AddItemToArray(entries, e)) {
			cJSON_Delete(e);
			return al_error_set(err, ENOMEM, "out of memory");
		}
		if (!cJSON_AddStringToObject(e, "name", names[i]) ||
		    !cJSON_AddStringToObject(e, "type", file_type(st.st_mode)) ||
		    !cJSON_AddNumberToObject(e, "size", (double)st.st_size) ||
		    !cJSON_AddStringToObject(e, "mode", mode))
			return al_error_set(err, ENOMEM, "out of memory");
	}
	*out = TAKE_PTR(result);
	return 0;
}
