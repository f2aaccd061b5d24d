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
#include <sys/sysmacros.h>
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

/*
 * The base rootfs is owned by host root.  An idmapped mount with the
 * sandbox's user namespace makes it appear owned by the sandbox's root, so
 * every sandbox sees correct ownership while sharing one copy on disk, and
 * it is read-only so overlayfs copies up instead of writing through.
 */
static int mount_idmapped_lower(const struct mounts_config *c, const char *lower,
                                struct al_error *err)
{
	struct mount_attr attr = {0};
	_cleanup_close_ int fd = -1;

	fd = sys_open_tree(AT_FDCWD, c->rootfs, OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC | AT_RECURSIVE);
	if (fd < 0)
		return al_error_errno(err, "open_tree %s", c->rootfs);
	attr.attr_set = MOUNT_ATTR_IDMAP | MOUNT_ATTR_RDONLY | MOUNT_ATTR_NODEV | MOUNT_ATTR_NOSUID;
	attr.userns_fd = (uint64_t)c->userns_fd;
	if (sys_mount_setattr(fd, "", AT_EMPTY_PATH | AT_RECURSIVE, &attr) < 0)
		return al_error_errno(err, "idmap mount of %s", c->rootfs);
	if (sys_move_mount(fd, "", AT_FDCWD, lower, MOVE_MOUNT_F_EMPTY_PATH) < 0)
		return al_error_errno(err, "move_mount %s to %s", c->rootfs, lower);
	return 0;
}

static int make_dev_node(const char *dev, const char *name, unsigned maj, unsigned min,
                         const struct mounts_config *c, struct al_error *err)
{
	char path[PATH_MAX];

	snprintf(path, sizeof(path), "%s/%s", dev, name);
	if (mknod(path, S_IFCHR | 0666, makedev(maj, min)) < 0)
		return al_error_errno(err, "mknod %s", path);
	/* mknod honours the umask; the nodes must be usable by everyone inside. */
	if (chmod(path, 0666) < 0)
		return al_error_errno(err, "chmod %s", path);
	if (chown(path, c->uid, c->gid) < 0)
		return al_error_errno(err, "chown %s", path);
	return 0;
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
	static const struct {
		const char *name;
		unsigned maj, min;
	} nodes[] = {
	    {"null", 1, 3},   {"zero", 1, 5},    {"full", 1, 7},
	    {"random", 1, 8}, {"urandom", 1, 9}, {"tty", 5, 0},
	};
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
	for (size_t i = 0; i < AL_ARRAY_SIZE(nodes); i++) {
		r = make_dev_node(dev, nodes[i].name, nodes[i].maj, nodes[i].min, c, err);
		if (r < 0)
			return r;
	}

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
	char lower[PATH_MAX], upper[PATH_MAX], work[PATH_MAX], path[PATH_MAX];
	_cleanup_free_ char *opts = NULL;
	int r;

	snprintf(lower, sizeof(lower), "%s/lower", c->sandbox_dir);
	snprintf(upper, sizeof(upper), "%s/upper", c->sandbox_dir);
	snprintf(work, sizeof(work), "%s/work", c->sandbox_dir);
	snprintf(newroot, PATH_MAX, "%s/root", c->sandbox_dir);

	r = mount_idmapped_lower(c, lower, err);
	if (r < 0)
		return r;
	if (asprintf(&opts, "lowerdir=%s,upperdir=%s,workdir=%s", lower, upper, work) < 0)
		return al_error_set(err, ENOMEM, "out of memory");
	r = do_mount("overlay", newroot, "overlay", MS_NOSUID | MS_NODEV, opts, err);
	if (r < 0)
		return r;

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
	int r;

	/* Nothing we mount may propagate back to the host. */
	r = do_mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL, err);
	if (r < 0)
		return r;
	/* Our own /proc, so pids we see (we are PID 1 of a new pid namespace)
	 * name the right processes in /proc before pivot_root. */
	return do_mount("proc", "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL, err);
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
