/* SPDX-License-Identifier: Apache-2.0 */
#include "test.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <linux/magic.h>
#include <linux/sched.h>

#include "cgroup.h"
#include "cleanup.h"
#include "json.h"
#include "util.h"

static char scratch[] = "/tmp/airlock-cgtest-XXXXXX";

/* ---- helpers ------------------------------------------------------------ */

static void write_text(const char *path, const char *text)
{
	struct al_error err = AL_ERROR_INIT;
	int r = al_write_file_atomic(path, text, strlen(text), 0644, &err);

	if (r < 0)
		fprintf(stderr, "%s\n", err.msg);
	CHECK_INT(r, 0);
}

/* Write a mountinfo text into the scratch directory; returns its path. */
static char *mountinfo_file(const char *name, const char *text)
{
	char *path = NULL;

	if (asprintf(&path, "%s/%s.mountinfo", scratch, name) < 0)
		abort();
	write_text(path, text);
	return path;
}

static struct cgroup_manager *open_text(const char *name, const char *text)
{
	_cleanup_free_ char *path = mountinfo_file(name, text);
	struct al_error err = AL_ERROR_INIT;
	struct cgroup_manager *m = NULL;

	if (cgroup_manager_open(path, &m, &err) < 0) {
		fprintf(stderr, "%s: %s\n", name, err.msg);
		return NULL;
	}
	return m;
}

static void manager_freep(struct cgroup_manager **m)
{
	cgroup_manager_free(*m);
}

static bool is_dir(const char *path)
{
	struct stat st;
	return stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

static bool strv_has(char **v, const char *s)
{
	for (; v && *v; v++)
		if (!strcmp(*v, s))
			return true;
	return false;
}

static size_t strv_len(char **v)
{
	size_t n = 0;
	while (v && v[n])
		n++;
	return n;
}

static void mkdir_or_fail(const char *path)
{
	struct al_error err = AL_ERROR_INIT;
	CHECK_INT(al_mkdir_p(path, 0755, &err), 0);
}

/* ---- (a) layout detection ----------------------------------------------- */

/* Debian 12 / Fedora: the unified layout. */
static const char mountinfo_v2[] =
    "22 1 254:1 / / rw,relatime shared:1 - ext4 /dev/vda1 rw\n"
    "23 22 0:21 / /sys rw,nosuid,nodev,noexec,relatime shared:2 - sysfs sysfs rw\n"
    "27 23 0:25 / /sys/fs/cgroup rw,nosuid,nodev,noexec,relatime shared:4 - cgroup2 "
    "cgroup2 rw,nsdelegate,memory_recursiveprot\n"
    "28 22 0:26 / /proc rw,nosuid,nodev,noexec,relatime shared:12 - proc proc rw\n";

/* CentOS 7: pure v1 with cpu,cpuacct and net_cls,net_prio co-mounted. */
static const char mountinfo_v1[] =
    "18 61 0:17 / /sys rw,nosuid,nodev,noexec,relatime shared:6 - sysfs sysfs rw\n"
    "24 18 0:20 / /sys/fs/cgroup ro,nosuid,nodev,noexec shared:7 - tmpfs tmpfs ro,mode=755\n"
    "25 24 0:21 / /sys/fs/cgroup/systemd rw,nosuid,nodev,noexec,relatime shared:8 - cgroup "
    "cgroup rw,xattr,release_agent=/usr/lib/systemd/systemd-cgroups-agent,name=systemd\n"
    "28 24 0:24 / /sys/fs/cgroup/cpu,cpuacct rw,nosuid,nodev,noexec,relatime shared:10 - "
    "cgroup cgroup rw,cpu,cpuacct\n"
    "29 24 0:25 / /sys/fs/cgroup/memory rw,nosuid,nodev,noexec,relatime shared:11 - cgroup "
    "cgroup rw,memory\n"
    "30 24 0:26 / /sys/fs/cgroup/net_cls,net_prio rw,nosuid,nodev,noexec,relatime shared:12 - "
    "cgroup cgroup rw,net_cls,net_prio\n"
    "31 24 0:27 / /sys/fs/cgroup/pids rw,nosuid,nodev,noexec,relatime shared:13 - cgroup "
    "cgroup rw,pids\n"
    "32 24 0:28 / /sys/fs/cgroup/freezer rw,nosuid,nodev,noexec,relatime shared:14 - cgroup "
    "cgroup rw,freezer\n"
    "33 24 0:29 / /sys/fs/cgroup/cpuset rw,nosuid,nodev,noexec,relatime shared:15 - cgroup "
    "cgroup rw,cpuset\n"
    "34 24 0:30 / /sys/fs/cgroup/cpuacct rw,nosuid,nodev,noexec,relatime shared:16 - cgroup "
    "cgroup rw,cpuacct\n";

/* Ubuntu 20.04: systemd's hybrid layout with a controller-less cgroup2 tree. */
static const char mountinfo_hybrid_systemd[] =
    "24 29 0:22 / /sys rw,nosuid,nodev,noexec,relatime shared:7 - sysfs sysfs rw\n"
    "35 24 0:30 / /sys/fs/cgroup ro,nosuid,nodev,noexec shared:9 - tmpfs tmpfs ro,mode=755\n"
    "36 35 0:31 / /sys/fs/cgroup/unified rw,nosuid,nodev,noexec,relatime shared:10 - cgroup2 "
    "cgroup2 rw,nsdelegate\n"
    "37 35 0:32 / /sys/fs/cgroup/systemd rw,nosuid,nodev,noexec,relatime shared:11 - cgroup "
    "cgroup rw,xattr,name=systemd\n"
    "40 35 0:35 / /sys/fs/cgroup/cpu,cpuacct rw,nosuid,nodev,noexec,relatime shared:15 - "
    "cgroup cgroup rw,cpu,cpuacct\n"
    "41 35 0:36 / /sys/fs/cgroup/memory rw,nosuid,nodev,noexec,relatime shared:16 - cgroup "
    "cgroup rw,memory\n"
    "42 35 0:37 / /sys/fs/cgroup/pids rw,nosuid,nodev,noexec,relatime shared:17 - cgroup "
    "cgroup rw,pids\n";

/* This development machine, verbatim: separate cpu and cpuacct hierarchies
 * and cgroup2 at /sys/fs/cgroup/unified holding only hugetlb. */
static const char mountinfo_this_machine[] =
    "22 27 0:21 / /proc rw,relatime - proc proc rw\n"
    "23 27 0:22 / /sys rw,relatime - sysfs sysfs rw\n"
    "27 1 254:0 / / rw,relatime - ext4 /dev/vda rw,discard\n"
    "31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755\n"
    "32 31 0:29 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu\n"
    "33 31 0:30 / /sys/fs/cgroup/cpuacct rw,relatime - cgroup cgroup rw,cpuacct\n"
    "34 31 0:31 / /sys/fs/cgroup/cpuset rw,relatime - cgroup cgroup rw,cpuset\n"
    "35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory\n"
    "36 31 0:33 / /sys/fs/cgroup/devices rw,relatime - cgroup cgroup rw,devices\n"
    "37 31 0:34 / /sys/fs/cgroup/freezer rw,relatime - cgroup cgroup rw,freezer\n"
    "38 31 0:35 / /sys/fs/cgroup/blkio rw,relatime - cgroup cgroup rw,blkio\n"
    "39 31 0:36 / /sys/fs/cgroup/pids rw,relatime - cgroup cgroup rw,pids\n"
    "40 31 0:37 / /sys/fs/cgroup/systemd rw,relatime - cgroup cgroup rw,name=systemd\n"
    "41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw\n";

TEST(detect_v2)
{
	_cleanup_(manager_freep) struct cgroup_manager *m = open_text("v2", mountinfo_v2);

	CHECK(m != NULL);
	if (!m)
		return;
	CHECK_INT(cgroup_manager_mode(m), CGROUP_MODE_V2);
	CHECK_STR(cgroup_mode_name(cgroup_manager_mode(m)), "v2");
	CHECK_STR(cgroup_manager_mount(m, "unified"), "/sys/fs/cgroup");
	CHECK_STR(cgroup_manager_mount(m, "memory"), "/sys/fs/cgroup");
	CHECK_STR(cgroup_manager_mount(m, "pids"), "/sys/fs/cgroup");
}

TEST(detect_v1_comounted)
{
	_cleanup_(manager_freep) struct cgroup_manager *m = open_text("v1", mountinfo_v1);

	CHECK(m != NULL);
	if (!m)
		return;
	CHECK_INT(cgroup_manager_mode(m), CGROUP_MODE_V1);
	CHECK_STR(cgroup_mode_name(cgroup_manager_mode(m)), "v1");
	CHECK(cgroup_manager_mount(m, "unified") == NULL);
	/* cpu is found through the super options, not the directory name. */
	CHECK_STR(cgroup_manager_mount(m, "cpu"), "/sys/fs/cgroup/cpu,cpuacct");
	CHECK_STR(cgroup_manager_mount(m, "memory"), "/sys/fs/cgroup/memory");
	CHECK_STR(cgroup_manager_mount(m, "pids"), "/sys/fs/cgroup/pids");
	CHECK_STR(cgroup_manager_mount(m, "freezer"), "/sys/fs/cgroup/freezer");
	CHECK_STR(cgroup_manager_mount(m, "cpuset"), "/sys/fs/cgroup/cpuset");
	CHECK(cgroup_manager_mount(m, "net_cls") == NULL);
}

TEST(detect_hybrid)
{
	_cleanup_(manager_freep) struct cgroup_manager *sd =
	    open_text("hybrid", mountinfo_hybrid_systemd);
	_cleanup_(manager_freep) struct cgroup_manager *here =
	    open_text("here", mountinfo_this_machine);

	CHECK(sd != NULL && here != NULL);
	if (!sd || !here)
		return;
	CHECK_INT(cgroup_manager_mode(sd), CGROUP_MODE_HYBRID);
	CHECK_STR(cgroup_manager_mount(sd, "unified"), "/sys/fs/cgroup/unified");
	CHECK_STR(cgroup_manager_mount(sd, "cpu"), "/sys/fs/cgroup/cpu,cpuacct");
	CHECK(cgroup_manager_mount(sd, "freezer") == NULL);

	CHECK_INT(cgroup_manager_mode(here), CGROUP_MODE_HYBRID);
	CHECK_STR(cgroup_mode_name(cgroup_manager_mode(here)), "hybrid");
	CHECK_STR(cgroup_manager_mount(here, "unified"), "/sys/fs/cgroup/unified");
	CHECK_STR(cgroup_manager_mount(here, "cpu"), "/sys/fs/cgroup/cpu");
	CHECK_STR(cgroup_manager_mount(here, "memory"), "/sys/fs/cgroup/memory");
	CHECK_STR(cgroup_manager_mount(here, "cpuset"), "/sys/fs/cgroup/cpuset");
	CHECK_STR(cgroup_manager_mount(here, "freezer"), "/sys/fs/cgroup/freezer");
	CHECK_STR(cgroup_manager_mount(here, "pids"), "/sys/fs/cgroup/pids");
}

TEST(detect_edge_cases)
{
	struct al_error err = AL_ERROR_INIT;
	struct cgroup_manager *m = NULL;
	_cleanup_free_ char *none =
	    mountinfo_file("none", "22 1 254:1 / / rw,relatime shared:1 - ext4 /dev/vda1 rw\n");

	/* No cgroup at all. */
	CHECK_INT(cgroup_manager_open(none, &m, &err), -ENOENT);
	CHECK(strstr(err.msg, "none.mountinfo") != NULL);
	CHECK_INT(cgroup_manager_open("/nonexistent/mountinfo", &m, &err), -ENOENT);

	/* Escaped mount points, several optional fields, a second cgroup2 mount
	 * outside /sys/fs/cgroup, and a v1 hierarchy with none of our controllers
	 * next to cgroup2: still pure v2. */
	_cleanup_(manager_freep) struct cgroup_manager *v2 = open_text(
	    "odd", "50 1 0:40 / /run/cg\\040two rw shared:3 master:1 - cgroup2 cgroup2 rw\n"
	           "51 1 0:41 / /sys/fs/cgroup rw shared:4 master:2 - cgroup2 cgroup2 rw\n"
	           "52 1 0:42 / /sys/fs/cgroup/net_cls rw - cgroup cgroup rw,net_cls\n");
	CHECK(v2 != NULL);
	if (v2) {
		CHECK_INT(cgroup_manager_mode(v2), CGROUP_MODE_V2);
		CHECK_STR(cgroup_manager_mount(v2, "unified"), "/sys/fs/cgroup");
	}
	_cleanup_(manager_freep) struct cgroup_manager *esc = open_text(
	    "esc", "50 1 0:40 / /tmp/my\\040cgroups/mem rw shared:3 - cgroup cgroup rw,memory\n");
	CHECK(esc != NULL);
	if (esc) {
		CHECK_INT(cgroup_manager_mode(esc), CGROUP_MODE_V1);
		CHECK_STR(cgroup_manager_mount(esc, "memory"), "/tmp/my cgroups/mem");
		CHECK(cgroup_manager_mount(esc, "pids") == NULL);
	}
}

/* The running system, against an independent oracle: filesystem magic. */
TEST(detect_this_system)
{
	struct al_error err = AL_ERROR_INIT;
	_cleanup_(manager_freep) struct cgroup_manager *m = NULL;
	enum cgroup_mode expected;
	struct statfs top, unified;

	if (statfs("/sys/fs/cgroup", &top) < 0)
		SKIP("no /sys/fs/cgroup");
	if (top.f_type == CGROUP2_SUPER_MAGIC)
		expected = CGROUP_MODE_V2;
	else if (statfs("/sys/fs/cgroup/unified", &unified) == 0 &&
	         unified.f_type == CGROUP2_SUPER_MAGIC)
		expected = CGROUP_MODE_HYBRID;
	else
		expected = CGROUP_MODE_V1;
	CHECK_INT(cgroup_manager_open(NULL, &m, &err), 0);
	if (!m) {
		fprintf(stderr, "%s\n", err.msg);
		return;
	}
	CHECK_STR(cgroup_mode_name(cgroup_manager_mode(m)), cgroup_mode_name(expected));
	fprintf(stderr, "     this system: %s\n", cgroup_mode_name(cgroup_manager_mode(m)));
}

/* ---- fake trees --------------------------------------------------------- */

/* A fake v1 layout under the scratch directory (plain directories: the
 * control files do not exist, so any limit write fails). */
static struct cgroup_manager *fake_v1(const char *name, char **tree)
{
	static const char *const hierarchies[] = {"memory", "pids", "cpu,cpuacct"};
	_cleanup_free_ char *text = NULL;

	if (asprintf(tree, "%s/%s", scratch, name) < 0 ||
	    asprintf(&text,
	             "60 1 0:50 / %1$s/memory rw - cgroup cgroup rw,memory\n"
	             "61 1 0:51 / %1$s/pids rw - cgroup cgroup rw,pids\n"
	             "62 1 0:52 / %1$s/cpu,cpuacct rw - cgroup cgroup rw,cpu,cpuacct\n",
	             *tree) < 0)
		abort();
	for (size_t i = 0; i < AL_ARRAY_SIZE(hierarchies); i++) {
		_cleanup_free_ char *dir = NULL;
		if (asprintf(&dir, "%s/%s", *tree, hierarchies[i]) < 0)
			abort();
		mkdir_or_fail(dir);
	}
	return open_text(name, text);
}

TEST(create_failure_is_undone)
{
	struct al_error err = AL_ERROR_INIT;
	struct cgroup_limits lim = {.memory_bytes = 64 << 20, .pids = 16, .cpus = 0.5};
	_cleanup_free_ char *tree = NULL, *mem = NULL, *pids = NULL, *cpu = NULL, *keep = NULL;
	_cleanup_(manager_freep) struct cgroup_manager *m = fake_v1("undo", &tree);
	_cleanup_strv_ char **ids = NULL;

	CHECK(m != NULL);
	if (!m)
		return;
	if (asprintf(&mem, "%s/memory/airlock/sb1", tree) < 0 ||
	    asprintf(&pids, "%s/pids/airlock/sb1", tree) < 0 ||
	    asprintf(&cpu, "%s/cpu,cpuacct/airlock/sb1", tree) < 0 ||
	    asprintf(&keep, "%s/memory/airlock/keep", tree) < 0)
		abort();
	mkdir_or_fail(keep);
	CHECK(is_dir(keep));

	/* The memory limit write fails (no such knob): nothing of sb1 remains. */
	CHECK_INT(cgroup_create(m, "sb1", &lim, &err), -ENOENT);
	CHECK(strstr(err.msg, "sb1") != NULL);
	CHECK(strstr(err.msg, "memory.limit_in_bytes") != NULL);
	CHECK(!is_dir(mem));
	CHECK(!is_dir(pids));
	CHECK(!is_dir(cpu));

	/* A sandbox that already existed is not removed by a failed re-create. */
	CHECK(cgroup_create(m, "keep", &lim, &err) < 0);
	CHECK(is_dir(keep));

	/* Limits without a controller, bad limits and bad ids create nothing. */
	struct cgroup_limits bad_cpu = {.cpus = 0.001};
	CHECK_INT(cgroup_create(m, "sb2", &bad_cpu, &err), -EINVAL);
	CHECK(strstr(err.msg, "sb2") != NULL);
	struct cgroup_limits nan_cpu = {.cpus = -1};
	CHECK_INT(cgroup_create(m, "sb2", &nan_cpu, &err), -EINVAL);
	CHECK_INT(cgroup_create(m, "../evil", &lim, &err), -EINVAL);
	CHECK_INT(cgroup_create(m, "", &lim, &err), -EINVAL);
	CHECK_INT(cgroup_destroy(m, "a/b", &err), -EINVAL);

	CHECK_INT(cgroup_list(m, &ids, &err), 0);
	CHECK_INT(strv_len(ids), 1);
	CHECK(strv_has(ids, "keep"));
}

TEST(list_and_destroy_fake_tree)
{
	struct al_error err = AL_ERROR_INIT;
	_cleanup_free_ char *tree = NULL, *path = NULL;
	_cleanup_(manager_freep) struct cgroup_manager *m = fake_v1("list", &tree);
	_cleanup_strv_ char **ids = NULL, **after = NULL;
	static const char *const dirs[] = {"memory/airlock/b", "memory/airlock/a/nested/deeper",
	                                   "pids/airlock/a", "cpu,cpuacct/airlock/c",
	                                   "memory/airlock/.hidden"};
	cJSON *desc = NULL;

	CHECK(m != NULL);
	if (!m)
		return;
	/* No airlock root yet: an empty list, not an error. */
	CHECK_INT(cgroup_list(m, &ids, &err), 0);
	CHECK_INT(strv_len(ids), 0);
	al_strv_freep(&ids);
	ids = NULL;

	for (size_t i = 0; i < AL_ARRAY_SIZE(dirs); i++) {
		free(path);
		if (asprintf(&path, "%s/%s", tree, dirs[i]) < 0)
			abort();
		mkdir_or_fail(path);
	}
	free(path);
	if (asprintf(&path, "%s/memory/airlock/not-a-dir", tree) < 0)
		abort();
	write_text(path, "x");

	CHECK_INT(cgroup_list(m, &ids, &err), 0);
	CHECK_INT(strv_len(ids), 3);
	if (strv_len(ids) == 3) {
		CHECK_STR(ids[0], "a");
		CHECK_STR(ids[1], "b");
		CHECK_STR(ids[2], "c");
	}

	/* Destroy removes nested cgroups too, and is idempotent. */
	CHECK_INT(cgroup_destroy(m, "a", &err), 0);
	CHECK_INT(cgroup_destroy(m, "a", &err), 0);
	CHECK_INT(cgroup_destroy(m, "never-existed", &err), 0);
	free(path);
	if (asprintf(&path, "%s/memory/airlock/a", tree) < 0)
		abort();
	CHECK(!is_dir(path));
	CHECK_INT(cgroup_list(m, &after, &err), 0);
	CHECK_INT(strv_len(after), 2);
	CHECK(!strv_has(after, "a"));

	CHECK_INT(cgroup_describe(m, "a", &desc, &err), -ENOENT);
	CHECK(desc == NULL);
}

/* --cgroup-root arguments for criu: one per hierarchy holding the sandbox,
 * co-mounted v1 controllers once, cgroup2 under the empty name. */
TEST(criu_roots)
{
	_cleanup_(manager_freep) struct cgroup_manager *v1 = open_text("crv1", mountinfo_v1);
	_cleanup_(manager_freep) struct cgroup_manager *here =
	    open_text("crhere", mountinfo_this_machine);
	struct al_error err = AL_ERROR_INIT;
	_cleanup_strv_ char **a = NULL, **b = NULL;

	CHECK(v1 != NULL && here != NULL);
	if (!v1 || !here)
		return;
	CHECK_INT(cgroup_criu_roots(v1, "box1", &a, &err), 0);
	CHECK(strv_has(a, "memory:/airlock/box1"));
	CHECK(strv_has(a, "pids:/airlock/box1"));
	CHECK(strv_has(a, "freezer:/airlock/box1"));
	CHECK(strv_has(a, "cpuset:/airlock/box1"));
	CHECK(!strv_has(a, ":/airlock/box1"));
	CHECK_INT(strv_len(a), 5); /* cpu,cpuacct once */
	CHECK_INT(cgroup_manager_set_root(here, "airlock-x", &err), 0);
	CHECK_INT(cgroup_criu_roots(here, "box2", &b, &err), 0);
	CHECK(strv_has(b, ":/airlock-x/box2"));
	CHECK(strv_has(b, "memory:/airlock-x/box2"));
	CHECK_INT(cgroup_criu_roots(here, "../x", &b, &err), -EINVAL);
}

/* One mountinfo line into info (of size cap) at used; returns the new used. */
static size_t add_mountinfo_line(char *info, size_t used, size_t cap, size_t id, const char *root,
                                 const char *point, const char *controllers)
{
	int n = snprintf(info + used, cap - used, "%zu 1 0:1 %s %s rw - %s cgroup rw%s%s\n", id,
	                 root, point, *controllers ? "cgroup" : "cgroup2", *controllers ? "," : "",
	                 controllers);

	return n < 0 || (size_t)n >= cap - used ? cap : used + (size_t)n;
}

/* The hierarchies of a process with the mount of each one's root: from this
 * process's real /proc/self/cgroup and a mountinfo made to match it, with
 * decoys (a bind of a subdirectory, a second mount elsewhere). */
TEST(hierarchy_mounts)
{
	_cleanup_free_ char *cgroups = NULL, *path = NULL, *partial = NULL;
	_cleanup_strv_ char **ctrls = NULL, **mounts = NULL;
	struct al_error err = AL_ERROR_INIT;
	char info[16384], *save = NULL;
	size_t used = 0, n = 0;

	CHECK_INT(al_read_file("/proc/self/cgroup", 1 << 20, &cgroups, NULL, &err), 0);
	if (!cgroups)
		return;
	for (char *line = strtok_r(cgroups, "\n", &save); line;
	     line = strtok_r(NULL, "\n", &save)) {
		char *list = strchr(line, ':'), *end = list ? strchr(list + 1, ':') : NULL;
		char name[128], point[192];
		if (!end)
			continue;
		*end = '\0';
		list++;
		snprintf(name, sizeof(name), "%s", *list ? list : "unified");
		for (char *c = name; *c; c++)
			if (*c == ',' || *c == '=')
				*c = '_';
		/* A subdirectory bound first, the root elsewhere, then the conventional one. */
		snprintf(point, sizeof(point), "/mnt/sub-%s", name);
		used =
		    add_mountinfo_line(info, used, sizeof(info), 100 + 3 * n, "/sub", point, list);
		snprintf(point, sizeof(point), "/mnt/other-%s", name);
		used = add_mountinfo_line(info, used, sizeof(info), 101 + 3 * n, "/", point, list);
		snprintf(point, sizeof(point), "/sys/fs/cgroup/%s", name);
		used = add_mountinfo_line(info, used, sizeof(info), 102 + 3 * n, "/", point, list);
		n++;
	}
	CHECK(n > 0 && used < sizeof(info));
	path = mountinfo_file("hier", info);
	CHECK_INT(cgroup_hierarchy_mounts(path, getpid(), &ctrls, &mounts, &err), 0);
	CHECK_INT(strv_len(ctrls), n);
	CHECK_INT(strv_len(mounts), n);
	for (size_t i = 0; ctrls && mounts && ctrls[i]; i++) {
		CHECK(!strncmp(mounts[i], "/sys/fs/cgroup/", 15));
		/* Each hierarchy got its own mount. */
		for (size_t j = 0; j < i; j++)
			CHECK(strcmp(mounts[i], mounts[j]) != 0);
	}
	/* Without the root of a hierarchy (only a subdirectory of cgroup2): none. */
	partial =
	    mountinfo_file("hier-partial", "100 1 0:1 /sub /mnt/sub rw - cgroup2 cgroup rw\n");
	al_strv_freep(&ctrls);
	al_strv_freep(&mounts);
	ctrls = mounts = NULL;
	CHECK_INT(cgroup_hierarchy_mounts(partial, getpid(), &ctrls, &mounts, &err), -ENOENT);
	CHECK(strstr(err.msg, "is not mounted") != NULL);
}

TEST(open_v2_dir)
{
	struct al_error err = AL_ERROR_INIT;
	_cleanup_free_ char *text = NULL, *dir = NULL, *v1tree = NULL;
	_cleanup_(manager_freep) struct cgroup_manager *v2 = NULL;
	_cleanup_(manager_freep) struct cgroup_manager *v1 = fake_v1("openv1", &v1tree);
	struct stat st;
	int fd;

	if (asprintf(&text, "70 1 0:60 / %s/v2 rw - cgroup2 cgroup2 rw\n", scratch) < 0 ||
	    asprintf(&dir, "%s/v2/airlock/box", scratch) < 0)
		abort();
	v2 = open_text("openv2", text);
	CHECK(v2 != NULL && v1 != NULL);
	if (!v2 || !v1)
		return;
	CHECK_INT(cgroup_manager_mode(v2), CGROUP_MODE_V2);
	mkdir_or_fail(dir);
	fd = cgroup_open_v2_dir(v2, "box", &err);
	CHECK(fd >= 0);
	if (fd >= 0) {
		CHECK(fstat(fd, &st) == 0 && S_ISDIR(st.st_mode));
		CHECK((fcntl(fd, F_GETFL) & O_PATH) != 0);
		CHECK((fcntl(fd, F_GETFD) & FD_CLOEXEC) != 0);
		close(fd);
	}
	CHECK_INT(cgroup_open_v2_dir(v2, "missing", &err), -ENOENT);
	CHECK(strstr(err.msg, "missing") != NULL);
	CHECK_INT(cgroup_open_v2_dir(v1, "box", &err), -ENOTSUP);
}

/* ---- (b) the real cgroups of this machine -------------------------------- */

static bool json_u64(const cJSON *root, const char *section, const char *key, uint64_t *out)
{
	const cJSON *v =
	    cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(root, section), key);

	if (!cJSON_IsNumber(v))
		return false;
	*out = (uint64_t)v->valuedouble;
	return true;
}

/* Destroys the test's sandboxes on every way out of a test, failed checks
 * included, then removes the airlock roots the test itself brought into being. */
struct real_guard {
	struct cgroup_manager *m;
	char ids[2][80];
	char *roots[8];
	bool root_existed[8];
	size_t nroots;
};

static void real_guard_init(struct real_guard *g, struct cgroup_manager *m, const char *tag)
{
	static const char *const names[] = {"memory",  "pids",   "cpu",
	                                    "freezer", "cpuset", "unified"};

	g->m = m;
	snprintf(g->ids[0], sizeof(g->ids[0]), "unittest-%d%s", (int)getpid(), tag);
	snprintf(g->ids[1], sizeof(g->ids[1]), "unittest-%d%s-bad", (int)getpid(), tag);
	for (size_t i = 0; i < AL_ARRAY_SIZE(names); i++) {
		const char *mp = cgroup_manager_mount(m, names[i]);
		bool seen = false;
		char *root;
		if (!mp || asprintf(&root, "%s/airlock", mp) < 0)
			continue;
		for (size_t k = 0; k < g->nroots; k++)
			seen |= !strcmp(g->roots[k], root);
		if (seen) {
			free(root);
			continue;
		}
		g->roots[g->nroots] = root;
		g->root_existed[g->nroots] = is_dir(root);
		g->nroots++;
	}
}

static void real_guard_release(struct real_guard *g)
{
	struct al_error err = AL_ERROR_INIT;

	if (!g->m)
		return;
	for (size_t i = 0; i < AL_ARRAY_SIZE(g->ids); i++) {
		if (cgroup_destroy(g->m, g->ids[i], &err) < 0) {
			fprintf(stderr, "cleanup: %s\n", err.msg);
			test_failures++;
		}
	}
	for (size_t i = 0; i < g->nroots; i++) {
		if (!g->root_existed[i])
			(void)rmdir(g->roots[i]); /* fails harmlessly if someone else uses it */
		free(g->roots[i]);
	}
	cgroup_manager_free(g->m);
}

/* Remove what an earlier, crashed run of this test left behind. */
static void destroy_stale(struct cgroup_manager *m)
{
	struct al_error err = AL_ERROR_INIT;
	_cleanup_strv_ char **ids = NULL;

	if (cgroup_list(m, &ids, &err) < 0)
		return;
	for (char **id = ids; *id; id++) {
		int pid;
		if (sscanf(*id, "unittest-%d", &pid) == 1 && pid > 0 && kill(pid, 0) < 0 &&
		    errno == ESRCH && cgroup_destroy(m, *id, &err) < 0)
			fprintf(stderr, "stale %s: %s\n", *id, err.msg);
	}
}

/* Fork a child that waits for a go byte on a pipe, then runs body and
 * _exits with its result.  EOF instead of the byte (the parent gave up) makes
 * the child exit at once, so no child outlives a failed test. */
static pid_t fork_waiting(int *go_fd, int *result_fd, int (*body)(int out_fd))
{
	int go[2], res[2];
	pid_t pid;

	if (pipe2(go, O_CLOEXEC) < 0 || pipe2(res, O_CLOEXEC) < 0)
		abort();
	pid = fork();
	if (pid < 0)
		abort();
	if (pid == 0) {
		char c;
		close(go[1]);
		close(res[0]);
		alarm(30);
		if (read(go[0], &c, 1) != 1)
			_exit(3);
		_exit(body(res[1]));
	}
	close(go[0]);
	close(res[1]);
	*go_fd = go[1];
	*result_fd = res[0];
	return pid;
}

static int body_memory_hog(int out_fd)
{
	const size_t chunk = 1 << 20;

	(void)out_fd;
	/* Four times the limit, touched page by page; swap is forbidden, so the
	 * OOM killer must end this long before the loop does. */
	for (size_t i = 0; i < 256; i++) {
		/* volatile: the optimizer may not drop stores to leaked memory */
		volatile char *p = malloc(chunk);
		if (!p)
			return 4;
		for (size_t off = 0; off < chunk; off += 4096)
			p[off] = 0x5a;
	}
	return 0;
}

static int body_fork_bomb(int out_fd)
{
	int ok = 0;

	for (int i = 0; i < 32; i++) {
		pid_t p = fork();
		if (p == 0) {
			/* Stay alive so each success keeps counting against pids.max. */
			close(out_fd);
			pause();
			_exit(0);
		}
		if (p > 0)
			ok++;
	}
	if (write(out_fd, &ok, sizeof(ok)) != (ssize_t)sizeof(ok))
		return 5;
	pause(); /* until cgroup_destroy */
	return 0;
}

static bool pid_in_cgroup(pid_t pid, const char *id)
{
	char path[64], needle[96];
	_cleanup_free_ char *text = NULL;

	snprintf(path, sizeof(path), "/proc/%d/cgroup", (int)pid);
	snprintf(needle, sizeof(needle), "/airlock/%s\n", id);
	return al_read_file(path, 1 << 16, &text, NULL, NULL) == 0 && strstr(text, needle);
}

static void reap_orphans(void)
{
	uint64_t until = al_now_ms() + 3000;

	/* Grandchildren were reparented to us (subreaper) when their parent died. */
	while (al_now_ms() < until) {
		pid_t p = waitpid(-1, NULL, WNOHANG);
		if (p < 0)
			break;
		if (p == 0)
			usleep(10000);
	}
}

/* The whole life of a limited sandbox on real cgroups: create, read back,
 * OOM kill, pids limit, destroy, and a create the kernel refuses. */
static void limited_sandbox_scenario(struct real_guard *g)
{
	struct al_error err = AL_ERROR_INIT;
	_cleanup_cjson_ cJSON *desc = NULL;
	_cleanup_strv_ char **ids = NULL, **after = NULL;
	const char *id = g->ids[0], *bad_id = g->ids[1];
	struct cgroup_limits lim = {.memory_bytes = 64ULL << 20, .pids = 16, .cpus = 0.5};
	const char *mem_path = NULL;
	const cJSON *paths, *entry;
	uint64_t v, destroy_ms;
	int go, res, status, forks = -1;
	pid_t hog, bomb;

	destroy_stale(g->m);
	prctl(PR_SET_CHILD_SUBREAPER, 1);

	/* Create, twice (idempotent), and find it. */
	CHECK_INT(cgroup_create(g->m, id, &lim, &err), 0);
	if (err.code)
		fprintf(stderr, "%s\n", err.msg);
	CHECK_INT(cgroup_create(g->m, id, &lim, &err), 0);
	CHECK_INT(cgroup_list(g->m, &ids, &err), 0);
	CHECK(strv_has(ids, id));

	/* Limits as the kernel reports them. */
	CHECK_INT(cgroup_describe(g->m, id, &desc, &err), 0);
	if (!desc) {
		fprintf(stderr, "%s\n", err.msg);
		return;
	}
	CHECK_STR(cJSON_GetStringValue(cJSON_GetObjectItem(desc, "mode")),
	          cgroup_mode_name(cgroup_manager_mode(g->m)));
	CHECK(json_u64(desc, "limits", "memory_bytes", &v) && v == 64ULL << 20);
	CHECK(json_u64(desc, "limits", "pids", &v) && v == 16);
	entry = cJSON_GetObjectItem(cJSON_GetObjectItem(desc, "limits"), "cpus");
	CHECK(cJSON_IsNumber(entry) && entry->valuedouble > 0.499 && entry->valuedouble < 0.501);
	paths = cJSON_GetObjectItem(desc, "paths");
	CHECK(cJSON_GetArraySize(paths) >= 1);
	cJSON_ArrayForEach(entry, paths)
	{
		CHECK(cJSON_IsString(entry) && is_dir(entry->valuestring));
		CHECK(cJSON_IsString(entry) && strstr(entry->valuestring, id));
	}
	if (cgroup_manager_mode(g->m) == CGROUP_MODE_V2) {
		CHECK(cJSON_GetObjectItem(paths, "unified") != NULL);
	} else {
		mem_path = cJSON_GetStringValue(cJSON_GetObjectItem(paths, "memory"));
		CHECK(mem_path != NULL);
		CHECK(cJSON_GetObjectItem(paths, "pids") != NULL);
		CHECK(cJSON_GetObjectItem(paths, "cpu") != NULL);
	}
	/* Swap is forbidden where the kernel accounts it. */
	if (mem_path) {
		_cleanup_free_ char *memsw = NULL, *text = NULL;
		if (asprintf(&memsw, "%s/memory.memsw.limit_in_bytes", mem_path) < 0)
			abort();
		if (al_read_file(memsw, 64, &text, NULL, NULL) == 0)
			CHECK_INT(strtoull(text, NULL, 10), 64ULL << 20);
		else
			fprintf(stderr, "     (no swap accounting: memsw not checked)\n");
	}

	/* A memory hog inside is OOM-killed; the OOM killer is not disabled. */
	hog = fork_waiting(&go, &res, body_memory_hog);
	CHECK_INT(cgroup_enter(g->m, id, hog, &err), 0);
	CHECK(pid_in_cgroup(hog, id));
	CHECK(write(go, "g", 1) == 1);
	close(go);
	close(res);
	CHECK_INT(waitpid(hog, &status, 0), hog);
	CHECK(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);
	cJSON_Delete(desc);
	desc = NULL;
	CHECK_INT(cgroup_describe(g->m, id, &desc, &err), 0);
	CHECK(json_u64(desc, "events", "oom_kill", &v) && v >= 1);

	/* The pids limit stops a fork bomb at 16 tasks (itself + 15). */
	bomb = fork_waiting(&go, &res, body_fork_bomb);
	CHECK_INT(cgroup_enter(g->m, id, bomb, &err), 0);
	CHECK(write(go, "g", 1) == 1);
	close(go);
	CHECK(read(res, &forks, sizeof(forks)) == (ssize_t)sizeof(forks));
	close(res);
	CHECK_INT(forks, 15);
	cJSON_Delete(desc);
	desc = NULL;
	CHECK_INT(cgroup_describe(g->m, id, &desc, &err), 0);
	CHECK(json_u64(desc, "usage", "pids", &v) && v == 16);
	CHECK(json_u64(desc, "events", "pids_max", &v) && v >= 17);
	CHECK(json_u64(desc, "usage", "memory_bytes", &v) && v > 0);
	{
		_cleanup_free_ char *printed = cJSON_PrintUnformatted(desc);
		fprintf(stderr, "     %s\n", printed ? printed : "(null)");
	}

	/* Destroy kills all 16 tasks and removes every directory. */
	destroy_ms = al_now_ms();
	CHECK_INT(cgroup_destroy(g->m, id, &err), 0);
	if (err.code)
		fprintf(stderr, "%s\n", err.msg);
	fprintf(stderr, "     destroy took %llu ms\n",
	        (unsigned long long)(al_now_ms() - destroy_ms));
	CHECK_INT(waitpid(bomb, &status, 0), bomb);
	CHECK(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);
	reap_orphans();
	paths = cJSON_GetObjectItem(desc, "paths"); /* desc was replaced since */
	CHECK(cJSON_GetArraySize(paths) >= 1);
	cJSON_ArrayForEach(entry, paths)
	{
		CHECK(cJSON_IsString(entry) && !is_dir(entry->valuestring));
	}
	CHECK_INT(cgroup_destroy(g->m, id, &err), 0);
	CHECK_INT(cgroup_list(g->m, &after, &err), 0);
	CHECK(!strv_has(after, id));

	/* A limit the kernel rejects (pids.max above PID_MAX_LIMIT) fails the
	 * create and leaves nothing behind. */
	struct cgroup_limits too_many = {.pids = 1000000000};
	CHECK(cgroup_create(g->m, bad_id, &too_many, &err) < 0);
	CHECK(strstr(err.msg, "pids.max") != NULL);
	CHECK(strstr(err.msg, bad_id) != NULL);
	al_strv_freep(&after);
	after = NULL;
	CHECK_INT(cgroup_list(g->m, &after, &err), 0);
	CHECK(!strv_has(after, bad_id));
}

/* The layout this machine really has. */
TEST(real_detected_layout)
{
	struct al_error err = AL_ERROR_INIT;
	_cleanup_(real_guard_release) struct real_guard g = {0};
	struct cgroup_manager *m = NULL;

	if (geteuid() != 0)
		SKIP("needs root to create cgroups");
	if (cgroup_manager_open(NULL, &m, &err) < 0) {
		fprintf(stderr, "%s\n", err.msg);
		CHECK(!"cgroup_manager_open");
		return;
	}
	real_guard_init(&g, m, "");
	limited_sandbox_scenario(&g);
}

/* A mountinfo holding only the lines of one filesystem type from the real one:
 * lets a hybrid machine exercise the pure v1 and pure v2 code paths on real
 * kernel hierarchies. */
static struct cgroup_manager *real_subset_without(const char *name, const char *fstype,
                                                  const char *without)
{
	_cleanup_free_ char *text = NULL;
	struct al_error err = AL_ERROR_INIT;
	struct al_buf out = {0};
	char needle[32];
	struct cgroup_manager *m;

	if (al_read_file("/proc/self/mountinfo", 1 << 24, &text, NULL, &err) < 0)
		return NULL;
	snprintf(needle, sizeof(needle), " - %s ", fstype);
	for (char *line = strtok(text, "\n"); line; line = strtok(NULL, "\n")) {
		if (!strstr(line, needle) || (without && strstr(line, without)))
			continue;
		if (al_buf_append(&out, line, strlen(line)) < 0 || al_buf_append(&out, "\n", 1) < 0)
			abort();
	}
	if (!out.len)
		return NULL;
	m = open_text(name, out.data);
	al_buf_free(&out);
	return m;
}

static struct cgroup_manager *real_subset(const char *name, const char *fstype)
{
	return real_subset_without(name, fstype, NULL);
}

/* A child's life in the destroy tests: until SIGKILL, or 30 s at most. */
static _Noreturn void wait_to_be_killed(void)
{
	alarm(30);
	pause();
	_exit(0);
}

/* A v1 host without the freezer hierarchy has neither a freezer nor
 * cgroup.kill: freezing says so, and destroy kills task by task. */
TEST(real_v1_without_freezer)
{
	struct al_error err = AL_ERROR_INIT;
	_cleanup_(real_guard_release) struct real_guard g = {0};
	struct cgroup_manager *m;
	int status;
	pid_t pid;

	if (geteuid() != 0)
		SKIP("needs root to create cgroups");
	m = real_subset_without("realv1-nofreezer", "cgroup", "freezer");
	if (!m)
		SKIP("no cgroup v1 hierarchy mounted on this machine");
	CHECK(cgroup_manager_mount(m, "freezer") == NULL);
	real_guard_init(&g, m, "-nofreezer");
	CHECK_INT(cgroup_create(m, g.ids[0], NULL, &err), 0);
	pid = fork();
	if (pid == 0)
		wait_to_be_killed();
	CHECK(pid > 0);
	if (pid < 0)
		return;
	CHECK_INT(cgroup_enter(m, g.ids[0], pid, &err), 0);
	CHECK_INT(cgroup_freeze(m, g.ids[0], true, NULL, &err), -ENOTSUP);
	CHECK_INT(cgroup_destroy(m, g.ids[0], &err), 0);
	CHECK_INT(waitpid(pid, &status, 0), pid);
	CHECK(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);
}

TEST(real_v1_hierarchies_as_pure_v1)
{
	_cleanup_(real_guard_release) struct real_guard g = {0};
	struct cgroup_manager *m;

	if (geteuid() != 0)
		SKIP("needs root to create cgroups");
	m = real_subset("realv1", "cgroup");
	if (!m)
		SKIP("no cgroup v1 hierarchy mounted on this machine");
	CHECK_INT(cgroup_manager_mode(m), CGROUP_MODE_V1);
	/* No cgroup2 tree: destroy has to freeze, kill and thaw. */
	CHECK(cgroup_manager_mount(m, "unified") == NULL);
	CHECK(cgroup_manager_mount(m, "freezer") != NULL);
	real_guard_init(&g, m, "-v1");
	limited_sandbox_scenario(&g);
}

/* On hybrid the cgroup2 tree has no memory/pids/cpu controllers: as a pure
 * v2 layout it must refuse limits, yet support an unlimited sandbox,
 * clone3(CLONE_INTO_CGROUP) and cgroup.kill.  (A pure v2 machine runs the
 * full scenario in real_detected_layout instead.) */
TEST(real_cgroup2_tree_as_pure_v2)
{
	struct al_error err = AL_ERROR_INIT;
	_cleanup_(real_guard_release) struct real_guard g = {0};
	_cleanup_close_ int dirfd = -1;
	struct cgroup_limits lim = {.memory_bytes = 64ULL << 20};
	struct cgroup_manager *m;
	struct clone_args args = {0};
	int status;
	pid_t pid;

	if (geteuid() != 0)
		SKIP("needs root to create cgroups");
	m = real_subset("realv2", "cgroup2");
	if (!m)
		SKIP("no cgroup2 tree mounted on this machine");
	real_guard_init(&g, m, "-v2");
	CHECK_INT(cgroup_manager_mode(m), CGROUP_MODE_V2);
	if (!strstr(cgroup_manager_mount(m, "unified"), "/unified"))
		SKIP("pure v2 machine: covered by real_detected_layout");

	CHECK_INT(cgroup_create(m, g.ids[0], &lim, &err), -ENOTSUP);
	CHECK(strstr(err.msg, "memory") != NULL);
	CHECK_INT(cgroup_create(m, g.ids[0], NULL, &err), 0);
	dirfd = cgroup_open_v2_dir(m, g.ids[0], &err);
	CHECK(dirfd >= 0);
	if (dirfd < 0)
		return;
	args.flags = CLONE_INTO_CGROUP;
	args.exit_signal = SIGCHLD;
	args.cgroup = (uint64_t)dirfd;
	pid = (pid_t)syscall(SYS_clone3, &args, sizeof(args));
	if (pid == 0)
		wait_to_be_killed();
	CHECK(pid > 0);
	if (pid < 0)
		return;
	CHECK(pid_in_cgroup(pid, g.ids[0]));
	CHECK_INT(cgroup_destroy(m, g.ids[0], &err), 0);
	CHECK_INT(waitpid(pid, &status, 0), pid);
	CHECK(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);
}

int main(void)
{
	struct al_error err = AL_ERROR_INIT;

	if (!mkdtemp(scratch)) {
		perror("mkdtemp");
		return 1;
	}
	RUN(detect_v2);
	RUN(detect_v1_comounted);
	RUN(detect_hybrid);
	RUN(detect_edge_cases);
	RUN(detect_this_system);
	RUN(create_failure_is_undone);
	RUN(list_and_destroy_fake_tree);
	RUN(criu_roots);
	RUN(hierarchy_mounts);
	RUN(open_v2_dir);
	RUN(real_detected_layout);
	RUN(real_v1_hierarchies_as_pure_v1);
	RUN(real_v1_without_freezer);
	RUN(real_cgroup2_tree_as_pure_v2);
	if (al_rm_rf(scratch, &err) < 0)
		fprintf(stderr, "cleanup: %s\n", err.msg);
	return test_main_result();
}
