/* SPDX-License-Identifier: Apache-2.0 */
#include "mounts.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/mount.h>
#include <stdio.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "cleanup.h"
#include "util.h"

/* glibc 2.36 has wrappers, but the one in Debian 12 headers does not for all;
 * use the raw syscalls so the build does not depend on the libc version. */
static int sys_open_tree(int dfd, const char *path, unsigned int flags)
{
	return (int)syscall(SYS_open_tree, dfd, path, flags);
}

static int sys_move_mount(int from_dfd, const char *from, int to_dfd, const char *to,
                          unsigned int flags)
{
	return (int)syscall(SYS_move_mount, from_dfd, from, to_dfd, to, flags);
}

static int sys_mount_setattr(int dfd, const char *path, unsigned int flags, struct mount_attr *attr)
{
	return (int)syscall(SYS_mount_setattr, dfd, path, flags, attr, sizeof(*attr));
}

static int do_mount(const char *src, const char *target, const char *fstype, unsigned long flags,
                    const char *data, struct al_error *err)
{
	if (mount(src, target, fstype, flags, data) < 0)
		return al_error_errno(err, "mount %s on %s (%s)", src ? src : "none", target,
		                      fstype ? fstype : "bind");
	return 0;
}

static int sys_fsopen(const char *fstype, unsigned int flags)
{
	return (int)syscall(SYS_fsopen, fstype, flags);
}

static int sys_fsconfig(int fd, unsigned int cmd, const char *key, const void *value, int aux)
{
	return (int)syscall(SYS_fsconfig, fd, cmd, key, value, aux);
}

static int sys_fsmount(int fd, unsigned int flags, unsigned int attrs)
{
	return (int)syscall(SYS_fsmount, fd, flags, attrs);
}

/*
 * The base rootfs is owned by host root.  An idmapped mount with the
 * sandbox's user namespace makes it appear owned by the sandbox's root, so
 * every sandbox sees correct ownership while sharing one copy on disk, and
 * it is read-only so overlayfs copies up instead of writing through.  It is
 * given to overlayfs by fd and never attached anywhere: CRIU (which knows
 * nothing of idmapped mounts) only ever sees the overlay.  An image's
 * layers are stored the same way (owners as the image has them), each one
 * such a lower layer.
 */
static int idmapped_lower(const char *path, int userns_fd, struct al_error *err)
{
	struct mount_attr attr = {0};
	_cleanup_close_ int fd = -1;

	fd = sys_open_tree(AT_FDCWD, path, OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC | AT_RECURSIVE);
	if (fd < 0)
		return al_error_errno(err, "open_tree %s", path);
	attr.attr_set = MOUNT_ATTR_IDMAP | MOUNT_ATTR_RDONLY | MOUNT_ATTR_NODEV | MOUNT_ATTR_NOSUID;
	attr.userns_fd = (uint64_t)userns_fd;
	if (sys_mount_setattr(fd, "", AT_EMPTY_PATH | AT_RECURSIVE, &attr) < 0)
		return al_error_errno(err, "idmap mount of %s", path);
	return TAKE_FD(fd);
}

/* The detached lower mounts, open until the overlay is made: a detached
 * mount is gone with its last fd, and overlayfs clones it only at create. */
struct lower_fds {
	int fd[MOUNTS_MAX_LOWERS];
	size_t n;
};

static void lower_fds_close(struct lower_fds *l)
{
	for (size_t i = 0; i < l->n; i++)
		close(l->fd[i]);
}

int mounts_make_root(char *const *lowers, const char *layers_dir, int userns_fd,
                     struct al_error *err)
{
	_cleanup_close_ int layers = -1, upper = -1, work = -1, fs = -1;
	_cleanup_(lower_fds_close) struct lower_fds held = {.n = 0};
	int fd;

	fs = sys_fsopen("overlay", FSOPEN_CLOEXEC);
	if (fs < 0)
		return al_error_errno(err, "fsopen overlay");
	/* An image's layers, the top one first ("lowerdir+" appends below). */
	for (char *const *l = lowers; l && *l; l++) {
		int lower;
		if (held.n == MOUNTS_MAX_LOWERS)
			return al_error_set(err, E2BIG, "more than %d lower layers",
			                    MOUNTS_MAX_LOWERS);
		lower = idmapped_lower(*l, userns_fd, err);
		if (lower < 0)
			return lower;
		held.fd[held.n++] = lower;
		if (sys_fsconfig(fs, FSCONFIG_SET_FD, "lowerdir+", NULL, lower) < 0)
			return al_error_errno(err, "overlay lower layer %s", *l);
	}
	/*
	 * overlayfs shows each layer in mountinfo as its path: the string it
	 * was given, or for a layer given by fd, the fd's path as seen from
	 * its mount.  Upper and work come by fd from a detached clone of the
	 * sandbox's directory (they must share a mount), so a sandbox reading
	 * /proc/self/mountinfo sees "/upper" and "/work", not where the host
	 * keeps its state.
	 */
	layers = sys_open_tree(AT_FDCWD, layers_dir, OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC);
	if (layers < 0)
		return al_error_errno(err, "open_tree %s", layers_dir);
	upper = openat(layers, "upper", O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (upper < 0)
		return al_error_errno(err, "open %s/upper", layers_dir);
	work = openat(layers, "work", O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (work < 0)
		return al_error_errno(err, "open %s/work", layers_dir);
	if (sys_fsconfig(fs, FSCONFIG_SET_FD, "upperdir", NULL, upper) < 0)
		return al_error_errno(err, "overlay upper layer %s/upper", layers_dir);
	if (sys_fsconfig(fs, FSCONFIG_SET_FD, "workdir", NULL, work) < 0)
		return al_error_errno(err, "overlay work directory %s/work", layers_dir);
	/*
	 * volatile (Linux 5.10): the writable layer dies with the sandbox, a
	 * host crash included, so syncing it buys nothing, while without it
	 * every unmount (each destroy) syncs the whole host filesystem under
	 * the upper layer, and every fsync() in the sandbox reaches the host's
	 * disk: a latency cost and a noisy-neighbour lever.
	 */
	if (sys_fsconfig(fs, FSCONFIG_SET_FLAG, "volatile", NULL, 0) < 0)
		return al_error_errno(err, "overlay option volatile");
	if (sys_fsconfig(fs, FSCONFIG_CMD_CREATE, NULL, NULL, 0) < 0)
		return al_error_errno(err, "create overlay on %s/upper", layers_dir);
	fd = sys_fsmount(fs, FSMOUNT_CLOEXEC, MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV);
	if (fd < 0)
		return al_error_errno(err, "fsmount overlay");
	return fd;
}

int mounts_make_tmpfs(const char *size, struct al_error *err)
{
	_cleanup_close_ int fs = -1;
	int fd;

	fs = sys_fsopen("tmpfs", FSOPEN_CLOEXEC);
	if (fs < 0)
		return al_error_errno(err, "fsopen tmpfs");
	if (sys_fsconfig(fs, FSCONFIG_SET_STRING, "size", size, 0) < 0 ||
	    sys_fsconfig(fs, FSCONFIG_SET_STRING, "mode", "0755", 0) < 0)
		return al_error_errno(err, "tmpfs options");
	if (sys_fsconfig(fs, FSCONFIG_CMD_CREATE, NULL, NULL, 0) < 0)
		return al_error_errno(err, "create tmpfs");
	fd = sys_fsmount(fs, FSMOUNT_CLOEXEC,
	                 MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV | MOUNT_ATTR_NOEXEC);
	if (fd < 0)
		return al_error_errno(err, "fsmount tmpfs");
	return fd;
}

const char *const mounts_dev_nodes[] = {"null", "zero", "full", "random", "urandom", "tty", NULL};

/* An empty file in the /dev tmpfs with the host's node bound on it. */
static int bind_dev_node(const char *dev, const char *name, struct al_error *err)
{
	char path[PATH_MAX], host[64];
	int fd;

	snprintf(path, sizeof(path), "%s/%s", dev, name);
	snprintf(host, sizeof(host), "/dev/%s", name);
	fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0666);
	if (fd < 0)
		return al_error_errno(err, "create %s", path);
	close(fd);
	return do_mount(host, path, NULL, MS_BIND, NULL, err);
}

/*
 * PID 1 runs airlock-pid1 from a file inside the sandbox (CRIU 4.1.1 cannot
 * restore a task whose executable is a memfd): the host's binary, bound
 * read-only.  CRIU is told it is an external mount.
 */
static int bind_pid1(const char *dev, const struct mounts_config *c, struct al_error *err)
{
	char path[PATH_MAX];
	int fd, r;

	snprintf(path, sizeof(path), "%s/.init", dev);
	fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0555);
	if (fd < 0)
		return al_error_errno(err, "create %s", path);
	close(fd);
	r = do_mount(c->pid1_path, path, NULL, MS_BIND, NULL, err);
	if (r == 0)
		r = do_mount(NULL, path, NULL,
		             MS_BIND | MS_REMOUNT | MS_RDONLY | MS_NOSUID | MS_NODEV, NULL, err);
	return r;
}

static int make_symlink(const char *target, const char *dev, const char *name, struct al_error *err)
{
	char path[PATH_MAX];

	snprintf(path, sizeof(path), "%s/%s", dev, name);
	if (symlink(target, path) < 0)
		return al_error_errno(err, "symlink %s", path);
	return 0;
}

static int setup_dev(const char *root, const struct mounts_config *c, struct al_error *err)
{
	char dev[PATH_MAX], sub[PATH_MAX + 16], opts[128];
	int r;

	snprintf(dev, sizeof(dev), "%s/dev", root);
	if (mkdir(dev, 0755) < 0 && errno != EEXIST)
		return al_error_errno(err, "mkdir %s", dev);
	snprintf(opts, sizeof(opts), "mode=755,size=64k,uid=%u,gid=%u", (unsigned)c->uid,
	         (unsigned)c->gid);
	r = do_mount("tmpfs", dev, "tmpfs", MS_NOSUID | MS_NOEXEC, opts, err);
	if (r < 0)
		return r;
	for (size_t i = 0; mounts_dev_nodes[i]; i++) {
		r = bind_dev_node(dev, mounts_dev_nodes[i], err);
		if (r < 0)
			return r;
	}
	r = bind_pid1(dev, c, err);
	if (r < 0)
		return r;

	snprintf(sub, sizeof(sub), "%s/pts", dev);
	if (mkdir(sub, 0755) < 0)
		return al_error_errno(err, "mkdir %s", sub);
	/* A private devpts instance: the sandbox sees only its own ptys. gid 5
	 * is the conventional tty group, mapped through the sandbox's range. */
	snprintf(opts, sizeof(opts), "newinstance,ptmxmode=0666,mode=0620,gid=%u",
	         (unsigned)c->gid + 5);
	r = do_mount("devpts", sub, "devpts", MS_NOSUID | MS_NOEXEC, opts, err);
	if (r < 0)
		return r;

	snprintf(sub, sizeof(sub), "%s/shm", dev);
	if (mkdir(sub, 01777) < 0)
		return al_error_errno(err, "mkdir %s", sub);
	snprintf(opts, sizeof(opts), "mode=1777,size=64m,uid=%u,gid=%u", (unsigned)c->uid,
	         (unsigned)c->gid);
	r = do_mount("shm", sub, "tmpfs", MS_NOSUID | MS_NODEV | MS_NOEXEC, opts, err);
	if (r < 0)
		return r;

	static const char *const links[][2] = {
	    {"pts/ptmx", "ptmx"},          {"/proc/self/fd", "fd"},
	    {"/proc/self/fd/0", "stdin"},  {"/proc/self/fd/1", "stdout"},
	    {"/proc/self/fd/2", "stderr"},
	};
	for (size_t i = 0; i < AL_ARRAY_SIZE(links); i++) {
		r = make_symlink(links[i][0], dev, links[i][1], err);
		if (r < 0)
			return r;
	}
	return 0;
}

/*
 * /proc entries that leak host information or give control over the host
 * kernel.  Files are covered with /dev/null, directories with an empty
 * read-only tmpfs; a few directories that programs read are made read-only.
 */
static const char *const masked_proc_paths[] = {
    "acpi",        "asound",        "interrupts",  "kallsyms",     "kcore",
    "keys",        "latency_stats", "sched_debug", "scsi",         "timer_list",
    "timer_stats", "sysrq-trigger", "config.gz",   "kpagecount",   "kpageflags",
    "kpagecgroup", "vmallocinfo",   "mtrr",        "pagetypeinfo", "slabinfo",
};
static const char *const readonly_proc_paths[] = {"sys", "bus", "fs", "irq"};

static int mask_proc(const char *root, struct al_error *err)
{
	char path[PATH_MAX], devnull[PATH_MAX];
	struct stat st;
	int r;

	snprintf(devnull, sizeof(devnull), "%s/dev/null", root);
	for (size_t i = 0; i < AL_ARRAY_SIZE(masked_proc_paths); i++) {
		snprintf(path, sizeof(path), "%s/proc/%s", root, masked_proc_paths[i]);
		if (lstat(path, &st) < 0)
			continue; /* not present on this kernel */
		if (S_ISDIR(st.st_mode))
			r = do_mount("tmpfs", path, "tmpfs",
			             MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC,
			             "size=0,mode=0555", err);
		else
			r = do_mount(devnull, path, NULL, MS_BIND, NULL, err);
		if (r < 0)
			return r;
	}
	for (size_t i = 0; i < AL_ARRAY_SIZE(readonly_proc_paths); i++) {
		snprintf(path, sizeof(path), "%s/proc/%s", root, readonly_proc_paths[i]);
		if (lstat(path, &st) < 0)
			continue;
		r = do_mount(path, path, NULL, MS_BIND | MS_REC, NULL, err);
		if (r == 0)
			r = do_mount(NULL, path, NULL,
			             MS_BIND | MS_REMOUNT | MS_RDONLY | MS_NOSUID | MS_NODEV |
			                 MS_NOEXEC,
			             NULL, err);
		if (r < 0)
			return r;
	}
	return 0;
}

/*
 * cgroupfs at /sys/fs/cgroup, as the host lays it out (one cgroup2 tree, or
 * one directory per v1 hierarchy plus "unified" on a hybrid host), every
 * mount read-only.  We are in our own cgroup namespace, so each mount shows
 * the sandbox's own cgroup as its root: no other cgroup is visible, the
 * root-only release_agent does not exist, and nothing (notify_on_release,
 * limits, cgroup.procs) can be written.  Hierarchies where airlockd made no
 * cgroup for the sandbox (it sits in their root) would show the host's whole
 * tree, so they are left out, as is any that fails to mount: absent is
 * stricter than read-only, never weaker.
 */
static void mount_one_cgroupfs(const char *dir, const char *name, const char *fstype,
                               const char *options)
{
	char path[PATH_MAX];

	if (name) {
		snprintf(path, sizeof(path), "%s/%s", dir, name);
		if (mkdir(path, 0555) < 0 && errno != EEXIST)
			return;
	} else {
		snprintf(path, sizeof(path), "%s", dir);
	}
	(void)mount(fstype, path, fstype, MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC, options);
}

static int mount_cgroupfs(const char *root, const char *membership, struct al_error *err)
{
	_cleanup_free_ char *text = strdup(membership ? membership : "");
	char dir[PATH_MAX], *save = NULL;
	bool has_v1 = false;
	int r;

	if (!text)
		return al_error_set(err, ENOMEM, "out of memory");
	snprintf(dir, sizeof(dir), "%s/sys/fs/cgroup", root);
	/* One line per hierarchy: "ID:CONTROLLERS:PATH"; "0::PATH" is cgroup2. */
	for (const char *line = text, *nl; line && *line;
	     line = (nl = strchr(line, '\n')) ? nl + 1 : NULL)
		has_v1 |= strncmp(line, "0::", 3) != 0 && strchr(line, ':') != NULL;
	if (has_v1) {
		r = do_mount("tmpfs", dir, "tmpfs", MS_NOSUID | MS_NODEV | MS_NOEXEC,
		             "mode=0755,size=16k", err);
		if (r < 0)
			return r;
	}
	for (char *line = strtok_r(text, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
		char *controllers = strchr(line, ':'), *path;

		if (!controllers || !(path = strchr(++controllers, ':')))
			continue;
		*path++ = '\0';
		if (!strcmp(path, "/"))
			continue; /* the host's root cgroup of this hierarchy */
		if (!*controllers)
			mount_one_cgroupfs(dir, has_v1 ? "unified" : NULL, "cgroup2", NULL);
		else /* named hierarchies ("name=systemd") live under their name */
			mount_one_cgroupfs(
			    dir, strncmp(controllers, "name=", 5) ? controllers : controllers + 5,
			    "cgroup", controllers);
	}
	if (!has_v1)
		return 0;
	return do_mount(NULL, dir, NULL,
	                MS_REMOUNT | MS_BIND | MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL,
	                err);
}

static int ensure_dir(const char *path, mode_t mode, const struct mounts_config *c,
                      struct al_error *err)
{
	struct stat st;

	if (lstat(path, &st) == 0) {
		if (!S_ISDIR(st.st_mode))
			return al_error_set(err, ENOTDIR, "%s exists and is not a directory", path);
		return 0;
	}
	if (mkdir(path, mode) < 0)
		return al_error_errno(err, "mkdir %s", path);
	if (chown(path, c->uid, c->gid) < 0)
		return al_error_errno(err, "chown %s", path);
	return 0;
}

int mounts_prepare_root(const struct mounts_config *c, char *newroot, struct al_error *err)
{
	char path[PATH_MAX];
	int r;

	if (sys_move_mount(c->root_fd, "", c->target_fd, "",
	                   MOVE_MOUNT_F_EMPTY_PATH | MOVE_MOUNT_T_EMPTY_PATH) < 0)
		return al_error_errno(err, "attach the root mount");
	/* The mount fd names the overlay's root, now attached in our namespace:
	 * everything below is built relative to it. */
	if (fchdir(c->root_fd) < 0)
		return al_error_errno(err, "chdir to the root mount");
	snprintf(newroot, PATH_MAX, ".");

	snprintf(path, sizeof(path), "%s/proc", newroot);
	r = ensure_dir(path, 0555, c, err);
	if (r == 0)
		r = do_mount("proc", path, "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL, err);
	if (r < 0)
		return r;

	snprintf(path, sizeof(path), "%s/sys", newroot);
	r = ensure_dir(path, 0555, c, err);
	if (r == 0)
		r = do_mount("sysfs", path, "sysfs", MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC,
		             NULL, err);
	if (r == 0)
		r = mount_cgroupfs(newroot, c->cgroup_membership, err);
	if (r < 0)
		return r;

	r = setup_dev(newroot, c, err);
	if (r < 0)
		return r;
	r = mask_proc(newroot, err);
	if (r < 0)
		return r;

	snprintf(path, sizeof(path), "%s/tmp", newroot);
	r = ensure_dir(path, 01777, c, err);
	if (r < 0)
		return r;
	snprintf(path, sizeof(path), "%s%s", newroot, c->workspace);
	return al_mkdir_p(path, 0755, err);
}

int mounts_detach_from_host(struct al_error *err)
{
	/* Nothing we mount may propagate back to the host. */
	return do_mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL, err);
}

int mounts_pivot_root(const char *newroot, struct al_error *err)
{
	/*
	 * pivot_root(".", ".") stacks the old root on top of the new one at
	 * "/"; unmounting "." then detaches the old root, so no path leads back
	 * to the host tree and no extra directory is needed in the rootfs.
	 */
	if (chdir(newroot) < 0)
		return al_error_errno(err, "chdir %s", newroot);
	if (syscall(SYS_pivot_root, ".", ".") < 0)
		return al_error_errno(err, "pivot_root %s", newroot);
	if (umount2(".", MNT_DETACH) < 0)
		return al_error_errno(err, "detach old root");
	if (chdir("/") < 0)
		return al_error_errno(err, "chdir /");
	return 0;
}
