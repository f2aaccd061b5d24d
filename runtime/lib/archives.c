/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Workspace archives and writable-layer archives (see archives.h).
 *
 * Writing walks the tree with *at() calls relative to directory fds and never
 * follows symlinks; libarchive only formats the tar.  Extracting uses
 * libarchive's write-disk with its secure options and checks every header
 * before libarchive sees it; it changes the working directory, so it always
 * runs in a child process.  For a running sandbox that child first enters the
 * sandbox's mount and user namespaces as the sandbox's root: every path then
 * resolves inside the sandbox and every write is made with the sandbox's own
 * (unprivileged on the host) ids, so a race with a process in the sandbox that
 * swaps a directory for a symlink cannot reach the host.
 */
#include "archives.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <limits.h>
#include <sched.h>
#include <search.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <sys/wait.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <linux/openat2.h>

#include <archive.h>
#include <archive_entry.h>
#include <cjson/cJSON.h>
#include <seccomp.h>

#include "cleanup.h"
#include "helper.h"
#include "json.h"
#include "strv.h"
#include "util.h"

/* Ids a sandbox's user namespace maps (0..65535 inside). */
#define SANDBOX_ID_RANGE 65536u
#define OVERFLOW_ID 65534u

static inline void archive_read_freep(struct archive **a)
{
	if (*a)
		archive_read_free(*a);
}

static inline void archive_write_freep(struct archive **a)
{
	if (*a)
		archive_write_free(*a);
}

static inline void archive_entry_freep(struct archive_entry **e)
{
	if (*e)
		archive_entry_free(*e);
}

#define _cleanup_archive_read_ _cleanup_(archive_read_freep)
#define _cleanup_archive_write_ _cleanup_(archive_write_freep)
#define _cleanup_archive_entry_ _cleanup_(archive_entry_freep)

void tar_limits_default(struct tar_limits *l)
{
	l->max_input_bytes = ARCHIVE_DEFAULT_MAX_INPUT_BYTES;
	l->max_extracted_bytes = ARCHIVE_DEFAULT_MAX_EXTRACTED_BYTES;
	l->max_members = ARCHIVE_DEFAULT_MAX_MEMBERS;
}

/* ---- writing ------------------------------------------------------------------------------ */

struct writer {
	struct archive *a;
	const struct archive_tree_opts *o;
	uint64_t root_mnt;   /* mount id of the archive root */
	void *links;         /* tsearch tree of struct link_seen: files with nlink > 1 */
	uint64_t hole_bytes; /* holes of sparse files written out as zeros so far */
	struct al_error *err;
};

/* A file with several names, and the first of them the tar holds. */
struct link_seen {
	dev_t dev;
	ino_t ino;
	char path[];
};

static int cmp_link_seen(const void *a, const void *b)
{
	const struct link_seen *x = a, *y = b;

	if (x->dev != y->dev)
		return x->dev < y->dev ? -1 : 1;
	return x->ino < y->ino ? -1 : x->ino > y->ino;
}

/*
 * The name the tar already holds for this file, or NULL after recording rel
 * as its first: each further name becomes a hardlink member, so a thousand
 * links to one file are stored once (they were each a full copy).
 */
static int link_first_name(struct writer *w, const struct stat *st, const char *rel,
                           const char **first)
{
	size_t len = strlen(rel) + 1;
	_cleanup_free_ struct link_seen *l = malloc(sizeof(*l) + len);
	struct link_seen **found;

	*first = NULL;
	if (!l)
		return al_error_set(w->err, ENOMEM, "out of memory");
	l->dev = st->st_dev;
	l->ino = st->st_ino;
	memcpy(l->path, rel, len);
	found = tsearch(l, &w->links, cmp_link_seen);
	if (!found)
		return al_error_set(w->err, ENOMEM, "out of memory");
	if (*found == l)
		l = NULL; /* now the tree's */
	else
		*first = (*found)->path;
	return 0;
}

static bool excluded(const struct archive_tree_opts *o, const char *rel)
{
	for (char *const *x = o->exclude; x && *x; x++) {
		size_t n = strlen(*x);
		if (!strncmp(rel, *x, n) && (rel[n] == '\0' || rel[n] == '/'))
			return true;
	}
	return false;
}

static int64_t stored_id(const struct archive_tree_opts *o, unsigned id)
{
	if (o->kind != ARCHIVE_LAYER)
		return id;
	if (id >= o->id_base && id - o->id_base < SANDBOX_ID_RANGE)
		return id - o->id_base;
	return OVERFLOW_ID;
}

static int write_header(struct writer *w, struct archive_entry *e, const char *rel)
{
	if (archive_write_header(w->a, e) < ARCHIVE_WARN)
		return al_error_set(w->err, EIO, "tar header for %s: %s", rel,
		                    archive_error_string(w->a));
	return 0;
}

/* Overlay bookkeeping that names inodes of this machine's lower layer. */
static bool xattr_is_local(const char *name)
{
	return !strcmp(name, "trusted.overlay.origin") || !strcmp(name, "trusted.overlay.impure") ||
	       !strcmp(name, "trusted.overlay.uuid");
}

static int add_xattrs(struct writer *w, int fd, struct archive_entry *e, const char *rel)
{
	_cleanup_free_ char *names = NULL;
	ssize_t len = flistxattr(fd, NULL, 0);

	if (len <= 0)
		return 0;
	names = malloc((size_t)len);
	if (!names)
		return al_error_set(w->err, ENOMEM, "out of memory");
	len = flistxattr(fd, names, (size_t)len);
	for (ssize_t off = 0; len > 0 && off < len; off += (ssize_t)strlen(names + off) + 1) {
		const char *name = names + off;
		char value[65536];
		ssize_t n;

		if (xattr_is_local(name))
			continue;
		n = fgetxattr(fd, name, value, sizeof(value));
		if (n < 0)
			return al_error_errno(w->err, "getxattr %s of %s", name, rel);
		archive_entry_xattr_add_entry(e, name, value, (size_t)n);
	}
	return 0;
}

static int write_file_data(struct writer *w, int fd, int64_t size, const char *rel)
{
	char buf[65536];
	int64_t left = size;

	while (left > 0) {
		ssize_t n = read(
		    fd, buf, (size_t)(left < (int64_t)sizeof(buf) ? left : (int64_t)sizeof(buf)));
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return al_error_errno(w->err, "read %s", rel);
		if (n == 0)
			break; /* shrank while we read: libarchive pads the rest */
		if (archive_write_data(w->a, buf, (size_t)n) < 0)
			return al_error_set(w->err, EIO, "tar data of %s: %s", rel,
			                    archive_error_string(w->a));
		left -= n;
	}
	return 0;
}

static int cmp_names(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Names in a directory, sorted: the same tree always gives the same tar. */
static int list_dir(int fd, char ***out, size_t *n_out, struct al_error *err)
{
	_cleanup_closedir_ DIR *d = NULL;
	_cleanup_strv_ char **names = NULL;
	size_t n = 0, cap = 0;
	struct dirent *de;
	/* A new open file description: a dup would share (and move) fd's offset. */
	int dup_fd = openat(fd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);

	if (dup_fd < 0)
		return al_error_errno(err, "dup");
	d = fdopendir(dup_fd);
	if (!d) {
		close(dup_fd);
		return al_error_errno(err, "fdopendir");
	}
	while ((errno = 0, de = readdir(d))) {
		if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
			continue;
		if (n + 2 > cap) {
			char **nn;
			cap = cap ? cap * 2 : 32;
			nn = realloc(names, cap * sizeof(char *));
			if (!nn)
				return al_error_set(err, ENOMEM, "out of memory");
			names = nn;
		}
		names[n] = strdup(de->d_name);
		if (!names[n])
			return al_error_set(err, ENOMEM, "out of memory");
		names[++n] = NULL;
	}
	if (errno)
		return al_error_errno(err, "readdir");
	if (n)
		qsort(names, n, sizeof(char *), cmp_names);
	*out = TAKE_PTR(names);
	*n_out = n;
	return 0;
}

static int write_dir(struct writer *w, int dirfd, const char *prefix);

/*
 * Which mount a path is on.  st_dev cannot tell: on overlayfs a regular file
 * reports the device of the layer it comes from, so only the mount id says
 * whether we crossed into another mount.  0 when unknown.
 */
static uint64_t mount_id_at(int dirfd, const char *name)
{
	struct statx stx;

	if (statx(dirfd, name, AT_SYMLINK_NOFOLLOW | (name[0] ? 0 : AT_EMPTY_PATH), STATX_MNT_ID,
	          &stx) < 0 ||
	    !(stx.stx_mask & STATX_MNT_ID))
		return 0;
	return stx.stx_mnt_id;
}

static int write_one(struct writer *w, int dirfd, const char *name, const char *rel)
{
	_cleanup_archive_entry_ struct archive_entry *e = archive_entry_new();
	_cleanup_close_ int fd = -1;
	struct stat st, st2;
	int r;

	if (!e)
		return al_error_set(w->err, ENOMEM, "out of memory");
	if (fstatat(dirfd, name, &st, AT_SYMLINK_NOFOLLOW) < 0) {
		if (errno == ENOENT)
			return 0; /* removed while we walked */
		return al_error_errno(w->err, "stat %s", rel);
	}
	if (mount_id_at(dirfd, name) != w->root_mnt)
		return 0; /* a mount point: not part of the tree */
	archive_entry_copy_stat(e, &st);
	archive_entry_set_uid(e, stored_id(w->o, st.st_uid));
	archive_entry_set_gid(e, stored_id(w->o, st.st_gid));
	archive_entry_set_nlink(e, 1); /* hard links are stored as separate files */

	if (S_ISDIR(st.st_mode)) {
		char path[PATH_MAX];
		fd = openat(dirfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		if (fd < 0)
			return errno == ENOENT ? 0 : al_error_errno(w->err, "open %s", rel);
		snprintf(path, sizeof(path), "%s/", rel);
		archive_entry_set_pathname(e, path);
		archive_entry_set_size(e, 0);
		if (w->o->kind == ARCHIVE_LAYER && (r = add_xattrs(w, fd, e, rel)) < 0)
			return r;
		r = write_header(w, e, rel);
		if (r < 0)
			return r;
		return write_dir(w, fd, rel);
	}
	archive_entry_set_pathname(e, rel);
	if (S_ISLNK(st.st_mode)) {
		char target[PATH_MAX];
		ssize_t n = readlinkat(dirfd, name, target, sizeof(target) - 1);
		if (n < 0)
			return errno == ENOENT ? 0 : al_error_errno(w->err, "readlink %s", rel);
		target[n] = '\0';
		archive_entry_set_symlink(e, target);
		archive_entry_set_size(e, 0);
		return write_header(w, e, rel);
	}
	if (S_ISCHR(st.st_mode) && st.st_rdev == makedev(0, 0) && w->o->kind == ARCHIVE_LAYER) {
		archive_entry_set_size(e, 0); /* an overlay whiteout */
		return write_header(w, e, rel);
	}
	if (!S_ISREG(st.st_mode))
		return 0; /* FIFOs, sockets, devices are not workspace content */

	/* O_NONBLOCK|O_NOCTTY: if it was swapped for a FIFO or a tty since the
	 * stat, opening it has no effect and the check below drops it. */
	fd = openat(dirfd, name, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_NOCTTY | O_CLOEXEC);
	if (fd < 0)
		return errno == ENOENT ? 0 : al_error_errno(w->err, "open %s", rel);
	if (fstat(fd, &st2) < 0)
		return al_error_errno(w->err, "stat %s", rel);
	if (!S_ISREG(st2.st_mode) || st2.st_ino != st.st_ino)
		return 0;
	archive_entry_copy_stat(e, &st2);
	archive_entry_set_uid(e, stored_id(w->o, st2.st_uid));
	archive_entry_set_gid(e, stored_id(w->o, st2.st_gid));
	archive_entry_set_nlink(e, 1);
	if (st2.st_nlink > 1) {
		const char *first;
		r = link_first_name(w, &st2, rel, &first);
		if (r < 0)
			return r;
		if (first) {
			archive_entry_set_hardlink(e, first);
			archive_entry_set_size(e, 0);
			return write_header(w, e, rel);
		}
	}
	/*
	 * A tar cannot keep a hole short of writing it out as zeros (pax's
	 * sparse format still wants every hole byte fed through libarchive), so
	 * `truncate -s 8E` in a 16 MiB sandbox would fill the host's disk.
	 * What a file claims beyond the blocks it holds is charged to a budget
	 * (the sandbox's disk cap, from the caller): an honest workspace spends
	 * next to nothing of it.
	 */
	if (st2.st_size > 0) {
		uint64_t held = (uint64_t)st2.st_blocks * 512;
		uint64_t hole = (uint64_t)st2.st_size > held ? (uint64_t)st2.st_size - held : 0;
		if (hole > w->o->max_hole_bytes - w->hole_bytes)
			return al_error_set(
			    w->err, EFBIG,
			    "%s is sparse: its %llu bytes of holes would be written "
			    "out in full, beyond the %llu bytes of holes allowed "
			    "(the sandbox's disk cap)",
			    rel, (unsigned long long)hole,
			    (unsigned long long)w->o->max_hole_bytes);
		w->hole_bytes += hole;
	}
	if (w->o->kind == ARCHIVE_LAYER && (r = add_xattrs(w, fd, e, rel)) < 0)
		return r;
	r = write_header(w, e, rel);
	if (r < 0)
		return r;
	return write_file_data(w, fd, st2.st_size, rel);
}

static int write_dir(struct writer *w, int dirfd, const char *prefix)
{
	_cleanup_strv_ char **names = NULL;
	size_t n = 0;
	int r;

	r = list_dir(dirfd, &names, &n, w->err);
	if (r < 0)
		return al_error_prefix(w->err, "%s", prefix[0] ? prefix : ".");
	for (size_t i = 0; i < n; i++) {
		char rel[PATH_MAX];
		if ((size_t)snprintf(rel, sizeof(rel), "%s%s%s", prefix, prefix[0] ? "/" : "",
		                     names[i]) >= sizeof(rel))
			return al_error_set(w->err, ENAMETOOLONG, "path too long below %s", prefix);
		if (excluded(w->o, rel))
			continue;
		r = write_one(w, dirfd, names[i], rel);
		if (r < 0)
			return r;
	}
	return 0;
}

int tar_write_tree(int dirfd, int out_fd, const struct archive_tree_opts *o, uint64_t *bytes,
                   struct al_error *err)
{
	_cleanup_archive_write_ struct archive *a = archive_write_new();
	struct writer w = {.a = a, .o = o, .err = err};
	struct stat st;
	int r;

	if (!a)
		return al_error_set(err, ENOMEM, "out of memory");
	if (fstat(dirfd, &st) < 0)
		return al_error_errno(err, "stat archive root");
	w.root_mnt = mount_id_at(dirfd, "");
	/* pax: long names, big files, xattrs, exact times; readable by any tar. */
	if (archive_write_set_format_pax_restricted(a) != ARCHIVE_OK ||
	    archive_write_set_bytes_in_last_block(a, 1) != ARCHIVE_OK ||
	    archive_write_open_fd(a, out_fd) != ARCHIVE_OK)
		return al_error_set(err, EIO, "tar writer: %s", archive_error_string(a));
	r = write_dir(&w, dirfd, "");
	tdestroy(w.links, free);
	if (r < 0)
		return r;
	if (archive_write_close(a) != ARCHIVE_OK)
		return al_error_set(err, EIO, "tar writer: %s", archive_error_string(a));
	if (bytes)
		*bytes = (uint64_t)archive_filter_bytes(a, -1);
	return 0;
}

/* ---- extracting --------------------------------------------------------------------------- */

/*
 * Normalize a member path in place: drop leading "./" and empty or "."
 * components.  Refuses absolute paths and '..'.  An empty result is the root.
 */
int tar_normalize_member(const char *in, char *out, size_t len, struct al_error *err)
{
	_cleanup_free_ char *copy = strdup(in);
	char *save = NULL;
	size_t used = 0;

	if (!copy)
		return al_error_set(err, ENOMEM, "out of memory");
	if (in[0] == '/')
		return al_error_set(err, EINVAL, "member '%s': absolute path", in);
	out[0] = '\0';
	for (char *c = strtok_r(copy, "/", &save); c; c = strtok_r(NULL, "/", &save)) {
		size_t cl = strlen(c);
		if (!strcmp(c, "."))
			continue;
		if (!strcmp(c, ".."))
			return al_error_set(err, EINVAL, "member '%s': '..' in path", in);
		if (used + cl + 2 > len)
			return al_error_set(err, ENAMETOOLONG, "member '%s': path too long", in);
		if (used)
			out[used++] = '/';
		memcpy(out + used, c, cl + 1);
		used += cl;
	}
	return 0;
}

struct extractor {
	struct archive *in;
	struct archive *out;
	int dirfd;
	const struct archive_tree_opts *o;
	const struct tar_limits *limits;
	uint64_t members;
	uint64_t extracted;
	bool dry; /* the first pass: headers only, nothing is written */
	/* Image layers: the whiteout members (".wh.NAME", ".wh..wh..opq"),
	 * applied once the layer's own members are written. */
	char **whiteouts;
	size_t n_whiteouts;
	struct al_error *err;
};

static int check_input(struct extractor *x)
{
	uint64_t read_bytes = (uint64_t)archive_filter_bytes(x->in, -1);

	if (x->limits->max_input_bytes && read_bytes > x->limits->max_input_bytes)
		return al_error_set(x->err, EFBIG, "archive input exceeds the limit of %llu bytes",
		                    (unsigned long long)x->limits->max_input_bytes);
	return 0;
}

static int add_extracted(struct extractor *x, uint64_t n, const char *name)
{
	x->extracted += n;
	if (x->limits->max_extracted_bytes && x->extracted > x->limits->max_extracted_bytes)
		return al_error_set(x->err, EFBIG,
		                    "member '%s': extracted size exceeds the limit of %llu bytes",
		                    name, (unsigned long long)x->limits->max_extracted_bytes);
	return 0;
}

/*
 * An OCI whiteout member of an image layer: ".wh..wh..opq" makes its
 * directory opaque, ".wh.NAME" deletes NAME of the layers below.  Noted
 * (1: not extracted as a file) and applied after the layer's own members,
 * as overlayfs sees them: a 0:0 character device, trusted.overlay.opaque.
 */
static int note_whiteout(struct extractor *x, struct archive_entry *e, const char *path)
{
	const char *base = strrchr(path, '/');
	char **grown;

	base = base ? base + 1 : path;
	if (strncmp(base, ".wh.", 4) != 0)
		return 0;
	if (archive_entry_filetype(e) == AE_IFDIR || archive_entry_hardlink(e))
		return al_error_set(x->err, EINVAL, "member '%s': a whiteout must be a file", path);
	if (strcmp(base, ".wh..wh..opq") != 0) {
		const char *name = base + 4;
		if (!name[0] || !strcmp(name, ".") || !strcmp(name, "..") ||
		    !strncmp(name, ".wh.", 4))
			return al_error_set(x->err, EINVAL,
			                    "member '%s': whiteout of an invalid name", path);
	}
	if (x->dry)
		return 1;
	if (x->n_whiteouts >= x->limits->max_members && x->limits->max_members)
		return al_error_set(x->err, EFBIG, "too many whiteouts");
	grown = realloc(x->whiteouts, (x->n_whiteouts + 2) * sizeof(char *));
	if (!grown)
		return al_error_set(x->err, ENOMEM, "out of memory");
	x->whiteouts = grown;
	x->whiteouts[x->n_whiteouts] = strdup(path);
	if (!x->whiteouts[x->n_whiteouts])
		return al_error_set(x->err, ENOMEM, "out of memory");
	x->whiteouts[++x->n_whiteouts] = NULL;
	return 1;
}

/* The directory rel below dirfd, made (0755) where missing; never through
 * a symlink or out of dirfd. */
static int open_dir_beneath(int dirfd, const char *rel, struct al_error *err)
{
	_cleanup_free_ char *copy = strdup(rel);
	int fd = openat(dirfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	char *save = NULL;

	if (!copy || fd < 0) {
		if (fd >= 0)
			close(fd);
		return copy ? al_error_errno(err, "open layer root")
		            : al_error_set(err, ENOMEM, "out of memory");
	}
	for (char *c = strtok_r(copy, "/", &save); c; c = strtok_r(NULL, "/", &save)) {
		int next;
		if (mkdirat(fd, c, 0755) < 0 && errno != EEXIST) {
			int r = al_error_errno(err, "mkdir %s", rel);
			close(fd);
			return r;
		}
		next = openat(fd, c, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		close(fd);
		if (next < 0)
			return al_error_set(
			    err, EINVAL, "whiteout below '%s': not a directory of this layer", rel);
		fd = next;
	}
	return fd;
}

/* The directory dir (/name) is to be opaque: listed for the caller. */
static int note_opaque(struct extractor *x, const char *dir, const char *name)
{
	_cleanup_free_ char *rel = NULL;

	if (!x->o->opaque)
		return al_error_set(x->err, EINVAL, "opaque directory %s: nowhere to note it", dir);
	if (asprintf(&rel, "%s%s%s", dir, name && dir[0] ? "/" : "", name ? name : "") < 0) {
		rel = NULL;
		return al_error_set(x->err, ENOMEM, "out of memory");
	}
	if (al_strv_push(x->o->opaque, rel) < 0)
		return al_error_set(x->err, ENOMEM, "out of memory");
	return 0;
}

static int apply_whiteouts(struct extractor *x)
{
	for (size_t i = 0; i < x->n_whiteouts; i++) {
		char *path = x->whiteouts[i], *slash = strrchr(path, '/');
		const char *base = slash ? slash + 1 : path;
		_cleanup_close_ int dfd = -1;
		struct stat st;
		int r;

		if (slash)
			*slash = '\0';
		dfd = open_dir_beneath(x->dirfd, slash ? path : "", x->err);
		if (dfd < 0)
			return dfd;
		if (!strcmp(base, ".wh..wh..opq")) {
			r = note_opaque(x, slash ? path : "", NULL);
			if (r < 0)
				return r;
			continue;
		}
		base += 4;
		if (fstatat(dfd, base, &st, AT_SYMLINK_NOFOLLOW) == 0) {
			/* The layer has NAME itself: it hides the layers below
			 * already, and a directory must hide their contents too. */
			if (S_ISDIR(st.st_mode) &&
			    (r = note_opaque(x, slash ? path : "", base)) < 0)
				return r;
			continue;
		}
		if (mknodat(dfd, base, S_IFCHR | 0600, makedev(0, 0)) < 0)
			return al_error_errno(x->err, "whiteout %s", base);
	}
	return 0;
}

/* Check one header and rewrite it for extraction; 1 means skip the member. */
static int vet_entry(struct extractor *x, struct archive_entry *e, char *path, size_t len)
{
	const char *orig = archive_entry_pathname(e);
	const char *hardlink = archive_entry_hardlink(e);
	bool workspace = x->o->kind == ARCHIVE_WORKSPACE;
	bool image = x->o->kind == ARCHIVE_IMAGE_LAYER;
	bool hostile = workspace || image;
	mode_t type = archive_entry_filetype(e);
	mode_t mode = archive_entry_mode(e);
	int64_t uid = archive_entry_uid(e), gid = archive_entry_gid(e);
	int r;

	if (!orig)
		return al_error_set(x->err, EINVAL, "member without a path");
	if (++x->members > x->limits->max_members && x->limits->max_members)
		return al_error_set(x->err, EFBIG,
		                    "archive has more than the limit of %llu members",
		                    (unsigned long long)x->limits->max_members);
	r = tar_normalize_member(orig, path, len, x->err);
	if (r < 0)
		return r;
	if (!path[0])
		return 1; /* the root itself: it already exists */
	if (image) {
		r = note_whiteout(x, e, path);
		if (r != 0)
			return r;
	}
	archive_entry_copy_pathname(e, path);

	if (hardlink) {
		char target[PATH_MAX];
		struct open_how how = {.flags = O_PATH | O_NOFOLLOW | O_CLOEXEC,
		                       .resolve = RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS |
		                                  RESOLVE_NO_MAGICLINKS | RESOLVE_NO_XDEV};
		_cleanup_close_ int fd = -1;
		struct stat st;

		r = tar_normalize_member(hardlink, target, sizeof(target), x->err);
		if (r < 0)
			return al_error_prefix(x->err, "hardlink %s", path);
		if (!target[0])
			return al_error_set(x->err, EINVAL, "member '%s': hardlink to the root",
			                    orig);
		if (x->dry)
			return 0;
		/* Only to a regular file this archive already put below the root. */
		fd = (int)syscall(SYS_openat2, x->dirfd, target, &how, sizeof(how));
		if (fd < 0 || fstat(fd, &st) < 0 || !S_ISREG(st.st_mode))
			return al_error_set(x->err, EINVAL,
			                    "member '%s': hardlink to '%s', which is not a file "
			                    "extracted from this archive",
			                    orig, hardlink);
		if (workspace && (st.st_mode & (S_ISUID | S_ISGID)))
			return al_error_set(x->err, EINVAL, "member '%s': setuid/setgid", orig);

		archive_entry_copy_hardlink(e, target);
	} else if (type == AE_IFLNK) {
		/*
		 * Any target: a symlink's target is resolved only by the sandbox
		 * itself, inside its root, or by airlockd's file API as if chrooted
		 * there (fsops.c); extraction never follows one (libarchive's
		 * SECURE_SYMLINKS refuses a member written through it) and neither
		 * does tar writing.  A text check of the target refused every
		 * Python venv (bin/python -> /usr/bin/python3), so a persisted
		 * workspace or a snapshot could not come back, and let `s -> .`,
		 * `t -> s/s/../..` by all the same.
		 */
		const char *target = archive_entry_symlink(e);
		if (!target || !target[0])
			return al_error_set(x->err, EINVAL, "member '%s': symlink without a target",
			                    orig);
	} else if (type == AE_IFCHR && !hostile && archive_entry_rdev(e) == 0) {
		/* an overlay whiteout in a layer */
	} else if (type != AE_IFREG && type != AE_IFDIR) {
		return al_error_set(x->err, EINVAL, "member '%s': %s are not allowed", orig,
		                    type == AE_IFCHR || type == AE_IFBLK ? "device nodes"
		                    : type == AE_IFIFO                   ? "FIFOs"
		                    : type == AE_IFSOCK                  ? "sockets"
		                                                         : "special files");
	}
	if (workspace && (mode & (S_ISUID | S_ISGID)))
		return al_error_set(x->err, EINVAL,
		                    "member '%s': setuid/setgid bits are not allowed", orig);
	/* An image's setuid programs keep working as the programs they are,
	 * minus the bit: the layer is mounted nosuid anyway, and a setuid-root
	 * file in the host's image store is one a host user must never run. */
	if (image)
		archive_entry_set_perm(e, mode & 01777);
	if (workspace && archive_entry_sparse_count(e) > 0)
		return al_error_set(x->err, EINVAL,
		                    "member '%s': sparse files are not part of the portable format",
		                    orig);
	if (type == AE_IFREG && !hardlink) {
		r = add_extracted(x, (uint64_t)archive_entry_size(e), orig);
		if (r < 0)
			return r;
	}

	/* Owners: the sandbox's ids (0..65535 inside); anything else becomes
	 * root (an image's: nobody, as a user namespace shows unmapped ids). */
	if (uid < 0 || uid >= SANDBOX_ID_RANGE)
		uid = image ? OVERFLOW_ID : 0;
	if (gid < 0 || gid >= SANDBOX_ID_RANGE)
		gid = image ? OVERFLOW_ID : 0;
	if (!workspace) {
		uid += x->o->id_base;
		gid += x->o->id_base;
	}
	archive_entry_set_uid(e, uid);
	archive_entry_set_gid(e, gid);
	archive_entry_set_uname(e, NULL);
	archive_entry_set_gname(e, NULL);
	/* An image's xattrs go too: trusted.overlay.* in a layer would steer
	 * overlayfs (redirects, metacopy), security.capability grant caps. */
	if (hostile)
		archive_entry_xattr_clear(e);
	return 0;
}

/*
 * libarchive reports some failures to write a file's data as mere warnings
 * (and then pads the file to its size: zeros where the data should be).
 * A warning whose errno says the disk is full or failed is a failure.
 */
static bool write_failed(struct archive *out, int r)
{
	int e = archive_errno(out);

	return r == ARCHIVE_WARN && (e == ENOSPC || e == EDQUOT || e == EIO || e == EFBIG);
}

static int write_error(struct archive *out, const char *name, struct al_error *err)
{
	int e = archive_errno(out);

	return al_error_set(err, e == ENOSPC || e == EDQUOT ? ENOSPC : EIO, "member '%s': %s", name,
	                    archive_error_string(out) ? archive_error_string(out)
	                                              : strerror(e ? e : EIO));
}

static int copy_data(struct extractor *x, const char *name)
{
	for (;;) {
		const void *buf;
		size_t size;
		la_int64_t off;
		int r = archive_read_data_block(x->in, &buf, &size, &off);

		if (r == ARCHIVE_EOF)
			return 0;
		if (r < ARCHIVE_WARN)
			return al_error_set(x->err, EINVAL, "member '%s': %s", name,
			                    archive_error_string(x->in));
		if (check_input(x) < 0)
			return -x->err->code;
		r = archive_write_data_block(x->out, buf, size, off);
		if (r < ARCHIVE_WARN || write_failed(x->out, r))
			return write_error(x->out, name, x->err);
	}
}

static void extractor_release(struct extractor *x)
{
	al_strv_free(x->whiteouts);
}

static int extract_pass(int in_fd, int dirfd, const struct archive_tree_opts *o,
                        const struct tar_limits *limits, bool dry, struct al_error *err)
{
	_cleanup_archive_read_ struct archive *in = archive_read_new();
	_cleanup_archive_write_ struct archive *out = archive_write_disk_new();
	struct tar_limits none = {0};
	_cleanup_(extractor_release) struct extractor x = {
	    .in = in, .out = out, .dirfd = dirfd, .o = o, .dry = dry, .err = err};
	int flags = ARCHIVE_EXTRACT_SECURE_SYMLINKS | ARCHIVE_EXTRACT_SECURE_NODOTDOT |
	            ARCHIVE_EXTRACT_SECURE_NOABSOLUTEPATHS | ARCHIVE_EXTRACT_PERM |
	            ARCHIVE_EXTRACT_TIME | ARCHIVE_EXTRACT_OWNER;
	int r;

	x.limits = limits ? limits : &none;
	if (!in || !out)
		return al_error_set(err, ENOMEM, "out of memory");
	if (o->kind == ARCHIVE_LAYER)
		flags |= ARCHIVE_EXTRACT_XATTR;
	if (!dry && fchdir(dirfd) < 0)
		return al_error_errno(err, "chdir to the extraction directory");
	archive_read_support_format_tar(in);
	archive_read_support_filter_gzip(in);
	if (o->kind == ARCHIVE_IMAGE_LAYER)
		archive_read_support_filter_zstd(in);
	if (archive_read_open_fd(in, in_fd, 65536) != ARCHIVE_OK)
		return al_error_set(err, EINVAL, "not a tar archive: %s", archive_error_string(in));
	if (archive_write_disk_set_options(out, flags) != ARCHIVE_OK)
		return al_error_set(err, EIO, "%s", archive_error_string(out));

	for (;;) {
		struct archive_entry *e;
		char path[PATH_MAX];

		r = archive_read_next_header(in, &e);
		if (r == ARCHIVE_EOF)
			break;
		/* A damaged header (RETRY) refuses the archive too: the rest of
		 * it is not what its sender meant (api_hydrate_free relies on it). */
		if (r < ARCHIVE_WARN || r == ARCHIVE_RETRY)
			return al_error_set(err, EINVAL, "not a valid tar archive: %s",
			                    archive_error_string(in));
		r = check_input(&x);
		if (r < 0)
			return r;
		r = vet_entry(&x, e, path, sizeof(path));
		if (r < 0)
			return r;
		if (r > 0)
			continue;
		if (dry) {
			/* Reading on checks the input limit over the data too. */
			if (archive_read_data_skip(in) < ARCHIVE_WARN)
				return al_error_set(err, EINVAL, "member '%s': %s", path,
				                    archive_error_string(in));
			continue;
		}
		if (archive_write_header(out, e) < ARCHIVE_WARN)
			return al_error_set(err, EINVAL, "member '%s': %s", path,
			                    archive_error_string(out));
		if (archive_entry_size(e) > 0) {
			r = copy_data(&x, path);
			if (r < 0)
				return r;
		}
		r = archive_write_finish_entry(out);
		if (r < ARCHIVE_WARN || write_failed(out, r))
			return write_error(out, path, err);
	}
	if (dry)
		return check_input(&x);
	/* Directory modes and times are fixed up here, deepest first. */
	if (archive_write_close(out) != ARCHIVE_OK)
		return al_error_set(err, EIO, "finishing extraction: %s",
		                    archive_error_string(out));
	r = apply_whiteouts(&x);
	if (r < 0)
		return r;
	return check_input(&x);
}

int tar_extract(int in_fd, int dirfd, const struct archive_tree_opts *o,
                const struct tar_limits *limits, struct al_error *err)
{
	off_t start = lseek(in_fd, 0, SEEK_CUR);
	int r;

	/* A hostile archive is refused from its headers alone when the input can
	 * be read twice: nothing is written for it, however many members it has. */
	if (o->kind == ARCHIVE_WORKSPACE && start >= 0) {
		r = extract_pass(in_fd, dirfd, o, limits, true, err);
		if (r < 0)
			return r;
		if (lseek(in_fd, start, SEEK_SET) != start)
			return al_error_errno(err, "rewind archive");
	}
	return extract_pass(in_fd, dirfd, o, limits, false, err);
}

/* ---- in helpers (helper.h) --------------------------------------------------------------- */

struct ws_job {
	pid_t ns_pid;
	const char *workspace;
	char *const *exclude;
	int fd;
	const struct tar_limits *limits;
	uint64_t max_hole_bytes;
};

/* In the helper, in the sandbox: open its workspace directory. */
static int open_workspace(const struct ws_job *j, struct al_error *err)
{
	int ws = open(j->workspace, O_RDONLY | O_DIRECTORY | O_CLOEXEC);

	if (ws < 0)
		return al_error_errno(err, "open workspace %s", j->workspace);
	return ws;
}

/* Run fn in a helper: in the sandbox of ns_pid when it is not 0, in its
 * cgroups when given their files. */
static int run_helper(helper_fn fn, void *arg, pid_t ns_pid, int keep_fd, const int *cgroup_fds,
                      size_t n_cgroup_fds, int cancel_fd, struct al_error *err)
{
	struct helper_opts o = HELPER_OPTS_INIT;

	o.cancel_fd = cancel_fd;

	o.ns_pid = ns_pid;
	o.keep_fd = keep_fd;
	o.cgroup_fds = cgroup_fds;
	o.n_cgroup_fds = n_cgroup_fds;
	o.what = "archive helper";
	return helper_run(fn, arg, &o, err);
}

static int persist_child(void *arg, int out_fd, struct al_error *err)
{
	struct ws_job *j = arg;
	struct archive_tree_opts o = {
	    .kind = ARCHIVE_WORKSPACE, .exclude = j->exclude, .max_hole_bytes = j->max_hole_bytes};
	_cleanup_close_ int ws = open_workspace(j, err);
	(void)out_fd; /* no output: the archive goes to j->fd */

	if (ws < 0)
		return ws;
	return tar_write_tree(ws, j->fd, &o, NULL, err);
}

int tar_persist_workspace(pid_t ns_pid, const char *workspace, char *const *exclude, int out_fd,
                          uint64_t max_hole_bytes, const int *cgroup_fds, size_t n_cgroup_fds,
                          int cancel_fd, uint64_t *bytes, struct al_error *err)
{
	struct ws_job j = {.ns_pid = ns_pid,
	                   .workspace = workspace,
	                   .exclude = exclude,
	                   .fd = out_fd,
	                   .max_hole_bytes = max_hole_bytes};
	off_t start = lseek(out_fd, 0, SEEK_CUR);
	int r;

	r = run_helper(persist_child, &j, ns_pid, out_fd, cgroup_fds, n_cgroup_fds, cancel_fd, err);
	if (r < 0)
		return al_error_prefix(err, "persist workspace %s", workspace);
	if (bytes) {
		off_t end = lseek(out_fd, 0, SEEK_CUR);
		*bytes = start >= 0 && end >= start ? (uint64_t)(end - start) : 0;
	}
	return 0;
}

/* Replace the contents of ws with the entries of staging (same filesystem). */
static int commit_staging(int ws, int staging, struct al_error *err)
{
	_cleanup_strv_ char **old = NULL, **fresh = NULL;
	uint64_t ws_mnt = mount_id_at(ws, "");
	size_t n_old = 0, n_fresh = 0;
	int r;

	r = list_dir(ws, &old, &n_old, err);
	if (r == 0)
		r = list_dir(staging, &fresh, &n_fresh, err);
	if (r < 0)
		return r;
	for (size_t i = 0; i < n_old; i++) {
		/* A mount below the workspace is not ours to replace. */
		if (mount_id_at(ws, old[i]) != ws_mnt)
			continue;
		r = al_rm_rf_at(ws, old[i], err);
		if (r < 0)
			return al_error_prefix(err, "clear workspace");
	}
	for (size_t i = 0; i < n_fresh; i++)
		if (renameat(staging, fresh[i], ws, fresh[i]) < 0)
			return al_error_errno(err, "move %s into the workspace", fresh[i]);
	return 0;
}

/* True when the directory ws can be swapped whole: not a mount point, and
 * no mount below it that a swap would carry along. */
static bool swappable(int pfd, const char *name, int ws, struct al_error *err)
{
	_cleanup_strv_ char **entries = NULL;
	uint64_t mnt = mount_id_at(ws, "");
	size_t n = 0;

	if (!mnt || mount_id_at(pfd, name) != mnt || mount_id_at(pfd, "") != mnt)
		return false;
	if (list_dir(ws, &entries, &n, err) < 0)
		return false;
	for (size_t i = 0; i < n; i++)
		if (mount_id_at(ws, entries[i]) != mnt)
			return false;
	return true;
}

/*
 * Replace the workspace by the staging directory next to it.  When it can
 * be, in one renameat2(RENAME_EXCHANGE): before it the old workspace is
 * whole, after it the new one, whatever happens in between (a crash, a
 * full disk, a kill); the old one is then removed.  A workspace that is a
 * mount point or holds mounts is replaced entry by entry instead.
 */
static int commit_hydrate(int pfd, const char *staging, const char *ws_name, int ws, int sfd,
                          struct al_error *err)
{
	struct stat st;

	if (ws_name[0] && swappable(pfd, ws_name, ws, err)) {
		/* The new workspace keeps the old one's owner and mode. */
		if (fstat(ws, &st) < 0 || fchown(sfd, st.st_uid, st.st_gid) < 0 ||
		    fchmod(sfd, st.st_mode & 07777) < 0)
			return al_error_errno(err, "give the new workspace its owner and mode");
		if (renameat2(pfd, staging, pfd, ws_name, RENAME_EXCHANGE) < 0)
			return al_error_errno(err, "swap in the new workspace");
		return 0;
	}
	al_error_clear(err);
	return commit_staging(ws, sfd, err);
}

static void remove_stale_staging(int pfd)
{
	_cleanup_strv_ char **entries = NULL;
	struct al_error err = AL_ERROR_INIT;
	size_t n = 0;

	if (list_dir(pfd, &entries, &n, &err) < 0)
		return;
	for (size_t i = 0; i < n; i++)
		if (!strncmp(entries[i], ".airlock-hydrate-", 17) &&
		    al_rm_rf_at(pfd, entries[i], &err) < 0)
			al_error_clear(&err);
}

static int hydrate_child(void *arg, int out_fd, struct al_error *err)
{
	struct ws_job *j = arg;
	struct archive_tree_opts o = {.kind = ARCHIVE_WORKSPACE};
	_cleanup_free_ char *parent = NULL;
	_cleanup_close_ int ws = -1, pfd = -1, sfd = -1;
	const char *ws_name = "";
	char name[64];
	char *slash;
	int r;
	(void)out_fd; /* no output: the archive goes to j->fd */

	ws = open_workspace(j, err);
	if (ws < 0)
		return ws;
	parent = strdup(j->workspace);
	if (!parent)
		return al_error_set(err, ENOMEM, "out of memory");
	slash = strrchr(parent, '/');
	if (slash && slash[1])
		ws_name = j->workspace + (slash - parent) + 1;
	if (slash == parent)
		slash[1] = '\0';
	else if (slash)
		*slash = '\0';
	pfd = open(parent, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (pfd < 0)
		return al_error_errno(err, "open %s", parent);
	/* The staging directory sits next to the workspace: the same overlay, so
	 * the commit is a rename, and a refusal is one rm -rf away from nothing.
	 * One left by a hydrate that was killed (with airlockd) goes first. */
	remove_stale_staging(pfd);
	snprintf(name, sizeof(name), ".airlock-hydrate-%d", (int)getpid());
	if (mkdirat(pfd, name, 0700) < 0)
		return al_error_errno(err, "mkdir %s/%s", parent, name);
	sfd = openat(pfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (sfd < 0)
		r = al_error_errno(err, "open %s/%s", parent, name);
	else
		r = tar_extract(j->fd, sfd, &o, j->limits, err);
	if (r == 0)
		r = commit_hydrate(pfd, name, ws_name, ws, sfd, err);
	/* The refused archive, or after a swap the old workspace. */
	if (fchdir(pfd) == 0) {
		struct al_error cerr = AL_ERROR_INIT;
		al_rm_rf_at(pfd, name, &cerr);
	}
	return r;
}

int tar_hydrate_workspace(pid_t ns_pid, const char *workspace, int in_fd,
                          const struct tar_limits *limits, const int *cgroup_fds,
                          size_t n_cgroup_fds, struct al_error *err)
{
	struct ws_job j = {.ns_pid = ns_pid, .workspace = workspace, .fd = in_fd, .limits = limits};
	struct stat st;
	int r;

	if (limits && limits->max_input_bytes && fstat(in_fd, &st) == 0 && S_ISREG(st.st_mode) &&
	    (uint64_t)st.st_size > limits->max_input_bytes)
		return al_error_set(err, EFBIG, "archive of %lld bytes exceeds the limit of %llu",
		                    (long long)st.st_size,
		                    (unsigned long long)limits->max_input_bytes);
	r = run_helper(hydrate_child, &j, ns_pid, in_fd, cgroup_fds, n_cgroup_fds, -1, err);
	if (r < 0)
		return al_error_prefix(err, "hydrate workspace %s", workspace);
	return 0;
}

/* ---- writable layers ---------------------------------------------------------------------- */

struct layer_job {
	const char *path;
	int fd;
	uid_t id_base;
};

static int extract_layer_child(void *arg, int out_fd, struct al_error *err)
{
	struct layer_job *j = arg;
	struct archive_tree_opts o = {.kind = ARCHIVE_LAYER, .id_base = j->id_base};
	_cleanup_close_ int dfd = open(j->path, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	(void)out_fd; /* no output: the archive goes to j->fd */

	if (dfd < 0)
		return al_error_errno(err, "open %s", j->path);
	umask(0);
	return tar_extract(j->fd, dfd, &o, NULL, err);
}

int tar_extract_layer(const char *path, int in_fd, uid_t id_base, struct al_error *err)
{
	struct layer_job j = {.path = path, .fd = in_fd, .id_base = id_base};
	int r = run_helper(extract_layer_child, &j, 0, in_fd, NULL, 0, -1, err);

	return r < 0 ? al_error_prefix(err, "restore writable layer into %s", path) : 0;
}

int tar_write_layer(const char *path, int out_fd, uid_t id_base, char *const *exclude,
                    uint64_t max_hole_bytes, uint64_t *bytes, struct al_error *err)
{
	struct archive_tree_opts o = {.kind = ARCHIVE_LAYER,
	                              .id_base = id_base,
	                              .exclude = exclude,
	                              .max_hole_bytes = max_hole_bytes};
	_cleanup_close_ int dfd = open(path, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	int r;

	/* Read-only and fd-relative all the way down: safe in the daemon itself. */
	if (dfd < 0)
		return al_error_errno(err, "open %s", path);
	r = tar_write_tree(dfd, out_fd, &o, bytes, err);
	return r < 0 ? al_error_prefix(err, "writable layer %s", path) : 0;
}

struct write_layer_job {
	const char *path;
	int fd;
	uid_t id_base;
	char *const *exclude;
	uint64_t max_hole_bytes;
};

static int write_layer_child(void *arg, int out_fd, struct al_error *err)
{
	const struct write_layer_job *j = arg;

	(void)out_fd;
	return tar_write_layer(j->path, j->fd, j->id_base, j->exclude, j->max_hole_bytes, NULL,
	                       err);
}

int tar_write_layer_charged(const char *path, int out_fd, uid_t id_base, char *const *exclude,
                            uint64_t max_hole_bytes, const int *cgroup_fds, size_t n_cgroup_fds,
                            int cancel_fd, uint64_t *bytes, struct al_error *err)
{
	struct write_layer_job j = {.path = path,
	                            .fd = out_fd,
	                            .id_base = id_base,
	                            .exclude = exclude,
	                            .max_hole_bytes = max_hole_bytes};
	off_t start = lseek(out_fd, 0, SEEK_CUR), end;
	int r;

	r = run_helper(write_layer_child, &j, 0, out_fd, cgroup_fds, n_cgroup_fds, cancel_fd, err);
	if (r < 0)
		return r;
	end = lseek(out_fd, 0, SEEK_CUR);
	if (bytes)
		*bytes = start >= 0 && end >= start ? (uint64_t)(end - start) : 0;
	return 0;
}

/* ---- manifests ---------------------------------------------------------------------------- */

char **tar_manifest_ephemeral_paths(const char *manifest_json)
{
	_cleanup_cjson_ cJSON *m = manifest_json ? cJSON_Parse(manifest_json) : NULL;
	const cJSON *entries = cJSON_GetObjectItemCaseSensitive(m, "entries"), *it;
	size_t n = 0, i = 0;
	char **v;

	cJSON_ArrayForEach(it, entries) n++;
	v = calloc(n + 1, sizeof(char *));
	if (!v)
		return NULL;
	cJSON_ArrayForEach(it, entries)
	{
		if (!cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(it, "ephemeral")) || !it->string)
			continue;
		char norm[PATH_MAX];
		struct al_error e = AL_ERROR_INIT;
		if (tar_normalize_member(it->string, norm, sizeof(norm), &e) == 0 && norm[0])
			v[i++] = strdup(norm);
	}
	return v;
}

/* ---- image layers ------------------------------------------------------------------------- */

int tar_extract_image_layer(int in_fd, int dirfd, const struct tar_limits *limits, char ***opaque,
                            struct al_error *err)
{
	struct archive_tree_opts o = {.kind = ARCHIVE_IMAGE_LAYER, .opaque = opaque};

	return tar_extract(in_fd, dirfd, &o, limits, err);
}
