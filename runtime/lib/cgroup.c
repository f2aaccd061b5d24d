/* SPDX-License-Identifier: Apache-2.0 */
#include "cgroup.h"

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <linux/kcmp.h>
#include <math.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "cleanup.h"
#include "json.h"
#include "log.h"
#include "strv.h"
#include "util.h"

/* Every sandbox cgroup lives below this directory of each hierarchy. */
#define AIRLOCK_ROOT "airlock"
#define CFS_PERIOD_US 100000
/* The kernel refuses CFS quotas below 1 ms. */
#define CFS_QUOTA_MIN_US 1000
#define DESTROY_TIMEOUT_MS 5000
#define FREEZE_TIMEOUT_MS 1000
#define KNOB_MAX (1 << 20)
/* v1 reports "no limit" as the page counter maximum (about 2^63); no real
 * limit is anywhere near 2^62 bytes. */
#define V1_UNLIMITED_FLOOR (1ULL << 62)

/* The v1 controllers a sandbox uses; on v2 the same knobs live in one tree. */
enum cg_ctrl { CG_MEMORY, CG_PIDS, CG_CPU, CG_FREEZER, CG_CPUSET, CG_NR_CTRL };

static const char *const ctrl_names[CG_NR_CTRL] = {
    [CG_MEMORY] = "memory",   [CG_PIDS] = "pids",     [CG_CPU] = "cpu",
    [CG_FREEZER] = "freezer", [CG_CPUSET] = "cpuset",
};

struct cgroup_manager {
	enum cgroup_mode mode;
	char root_name[64];   /* directory under each hierarchy holding the sandboxes */
	char *unified;        /* cgroup2 mount point, NULL when not mounted */
	char *v1[CG_NR_CTRL]; /* v1 hierarchy of each controller, NULL when absent */
};

/* The distinct directories of one sandbox: co-mounted v1 controllers share a
 * hierarchy and so a directory; key names the first controller using it. */
struct sandbox_dirs {
	size_t n;
	const char *key[CG_NR_CTRL + 1];
	const char *mount[CG_NR_CTRL + 1]; /* owned by the manager */
	char *path[CG_NR_CTRL + 1];
	char *root[CG_NR_CTRL + 1]; /* <mount>/airlock */
};

static void sandbox_dirs_free(struct sandbox_dirs *d)
{
	for (size_t i = 0; i < d->n; i++) {
		free(d->path[i]);
		free(d->root[i]);
	}
	d->n = 0;
}

int cgroup_manager_set_root(struct cgroup_manager *m, const char *name, struct al_error *err)
{
	if (!al_valid_name(name))
		return al_error_set(err, EINVAL, "invalid cgroup root name '%s'", name ? name : "");
	snprintf(m->root_name, sizeof(m->root_name), "%s", name);
	return 0;
}

const char *cgroup_mode_name(enum cgroup_mode mode)
{
	switch (mode) {
	case CGROUP_MODE_V2:
		return "v2";
	case CGROUP_MODE_V1:
		return "v1";
	case CGROUP_MODE_HYBRID:
		return "hybrid";
	}
	return "unknown";
}

enum cgroup_mode cgroup_manager_mode(const struct cgroup_manager *m)
{
	return m->mode;
}

const char *cgroup_manager_mount(const struct cgroup_manager *m, const char *controller)
{
	if (!strcmp(controller, "unified"))
		return m->unified;
	for (int c = 0; c < CG_NR_CTRL; c++) {
		if (strcmp(controller, ctrl_names[c]) != 0)
			continue;
		return m->mode == CGROUP_MODE_V2 ? m->unified : m->v1[c];
	}
	return NULL;
}

void cgroup_manager_free(struct cgroup_manager *m)
{
	if (!m)
		return;
	free(m->unified);
	for (int c = 0; c < CG_NR_CTRL; c++)
		free(m->v1[c]);
	free(m);
}

static void cgroup_manager_freep(struct cgroup_manager **m)
{
	cgroup_manager_free(*m);
}

/* ---- mountinfo ---------------------------------------------------------- */

/* mountinfo escapes space, tab, newline and backslash as \ooo. */
static void unescape_octal(char *s)
{
	char *out = s;

	while (*s) {
		if (s[0] == '\\' && s[1] >= '0' && s[1] <= '7' && s[2] >= '0' && s[2] <= '7' &&
		    s[3] >= '0' && s[3] <= '7') {
			*out++ = (char)(((s[1] - '0') << 6) | ((s[2] - '0') << 3) | (s[3] - '0'));
			s += 4;
		} else {
			*out++ = *s++;
		}
	}
	*out = '\0';
}

static bool in_list(const char *list, char sep, const char *word)
{
	size_t len = strlen(word);

	for (const char *p = list; p && *p;) {
		const char *end = strchr(p, sep);
		size_t n = end ? (size_t)(end - p) : strlen(p);
		if (n == len && !strncmp(p, word, len))
			return true;
		p = end ? end + 1 : NULL;
	}
	return false;
}

/* The same hierarchy can be mounted more than once (bind mounts, containers);
 * the one under /sys/fs/cgroup is the one administrators and tools expect. */
static bool conventional_mount(const char *path)
{
	return !strncmp(path, "/sys/fs/cgroup", 14) && (path[14] == '\0' || path[14] == '/');
}

static int remember_mount(char **slot, const char *mount_point)
{
	if (*slot && (conventional_mount(*slot) || !conventional_mount(mount_point)))
		return 0;
	free(*slot);
	*slot = strdup(mount_point);
	return *slot ? 0 : -ENOMEM;
}

/* The fields of one mountinfo line that matter here (pointers into it). */
struct mountinfo_entry {
	char *root;        /* the mounted directory of its filesystem */
	char *mount_point; /* unescaped */
	char *fstype;
	char *superopts; /* NULL when absent */
};

/* Split one mountinfo line, in place: "ID PARENT MAJ:MIN ROOT MOUNTPOINT OPTS
 * [OPTIONAL...] - FSTYPE SOURCE SUPEROPTS".  false for a malformed line. */
static bool mountinfo_split(char *line, struct mountinfo_entry *e)
{
	char *fields[6] = {0};
	char *save = NULL, *tok;

	for (int n = 0; n < 6; n++) {
		fields[n] = strtok_r(n == 0 ? line : NULL, " \n", &save);
		if (!fields[n])
			return false;
	}
	/* Optional fields run up to a lone "-". */
	do
		tok = strtok_r(NULL, " \n", &save);
	while (tok && strcmp(tok, "-") != 0);
	if (!tok)
		return false;
	e->fstype = strtok_r(NULL, " \n", &save);
	if (!e->fstype || !strtok_r(NULL, " \n", &save)) /* skip the source */
		return false;
	e->superopts = strtok_r(NULL, " \n", &save);
	unescape_octal(fields[3]);
	unescape_octal(fields[4]);
	e->root = fields[3];
	e->mount_point = fields[4];
	return true;
}

/* Only cgroup and cgroup2 mounts matter. */
static int parse_mountinfo_line(struct cgroup_manager *m, char *line)
{
	struct mountinfo_entry e;

	if (!mountinfo_split(line, &e))
		return 0;
	if (!strcmp(e.fstype, "cgroup2"))
		return remember_mount(&m->unified, e.mount_point);
	if (strcmp(e.fstype, "cgroup") != 0 || !e.superopts)
		return 0;
	for (int c = 0; c < CG_NR_CTRL; c++) {
		if (in_list(e.superopts, ',', ctrl_names[c])) {
			int r = remember_mount(&m->v1[c], e.mount_point);
			if (r < 0)
				return r;
		}
	}
	return 0;
}

int cgroup_manager_open(const char *mountinfo_path, struct cgroup_manager **out,
                        struct al_error *err)
{
	_cleanup_(cgroup_manager_freep) struct cgroup_manager *m = NULL;
	_cleanup_free_ char *text = NULL;
	bool any_v1 = false;
	char *line, *save = NULL;
	int r;

	if (!mountinfo_path)
		mountinfo_path = "/proc/self/mountinfo";
	r = al_read_file(mountinfo_path, 16 << 20, &text, NULL, err);
	if (r < 0)
		return al_error_prefix(err, "detect cgroup layout");
	m = calloc(1, sizeof(*m));
	if (m)
		snprintf(m->root_name, sizeof(m->root_name), "%s", AIRLOCK_ROOT);
	if (!m)
		return al_error_set(err, ENOMEM, "out of memory");
	for (line = strtok_r(text, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
		r = parse_mountinfo_line(m, line);
		if (r < 0)
			return al_error_set(err, -r, "parse %s: out of memory", mountinfo_path);
	}
	for (int c = 0; c < CG_NR_CTRL; c++)
		any_v1 |= m->v1[c] != NULL;
	/* A cgroup2 tree next to v1 controller hierarchies is the hybrid layout,
	 * whatever controllers that tree holds. */
	if (any_v1)
		m->mode = m->unified ? CGROUP_MODE_HYBRID : CGROUP_MODE_V1;
	else if (m->unified)
		m->mode = CGROUP_MODE_V2;
	else
		return al_error_set(err, ENOENT, "%s: no cgroup or cgroup2 hierarchy is mounted",
		                    mountinfo_path);
	*out = TAKE_PTR(m);
	return 0;
}

/* ---- paths and knobs ---------------------------------------------------- */

static int check_id(const char *id, struct al_error *err)
{
	if (!al_valid_name(id))
		return al_error_set(err, EINVAL, "invalid sandbox id '%s'", id ? id : "");
	return 0;
}

static int add_dir(const struct cgroup_manager *m, struct sandbox_dirs *d, const char *key,
                   const char *mount, const char *id)
{
	size_t i = d->n;

	if (asprintf(&d->root[i], "%s/%s", mount, m->root_name) < 0) {
		d->root[i] = NULL;
		return -ENOMEM;
	}
	if (asprintf(&d->path[i], "%s/%s", d->root[i], id) < 0) {
		free(d->root[i]);
		d->root[i] = d->path[i] = NULL;
		return -ENOMEM;
	}
	d->key[i] = key;
	d->mount[i] = mount;
	d->n++;
	return 0;
}

/* The cgroup directories of sandbox id (validated first: it becomes a path). */
static int sandbox_dirs_get(const struct cgroup_manager *m, const char *id, struct sandbox_dirs *d,
                            struct al_error *err)
{
	int r;

	*d = (struct sandbox_dirs){0};
	r = check_id(id, err);
	if (r < 0)
		return r;
	if (m->mode != CGROUP_MODE_V2) {
		for (int c = 0; c < CG_NR_CTRL && r == 0; c++) {
			bool shared = false;
			if (!m->v1[c])
				continue;
			for (int e = 0; e < c; e++)
				shared |= m->v1[e] && !strcmp(m->v1[e], m->v1[c]);
			if (!shared)
				r = add_dir(m, d, ctrl_names[c], m->v1[c], id);
		}
	}
	/* On hybrid the cgroup2 tree holds no limits, but membership there gives
	 * cgroup.kill, which reaches every task without a freezer dance. */
	if (r == 0 && m->unified)
		r = add_dir(m, d, "unified", m->unified, id);
	if (r < 0) {
		sandbox_dirs_free(d);
		return al_error_set(err, ENOMEM, "out of memory");
	}
	return 0;
}

int cgroup_criu_roots(struct cgroup_manager *m, const char *id, char ***out, struct al_error *err)
{
	_cleanup_(sandbox_dirs_free) struct sandbox_dirs dirs = {0};
	_cleanup_strv_ char **v = NULL;
	int r;

	r = sandbox_dirs_get(m, id, &dirs, err);
	if (r < 0)
		return r;
	v = calloc(dirs.n + 1, sizeof(char *));
	if (!v)
		return al_error_set(err, ENOMEM, "out of memory");
	/* Our cgroups sit at <mount>/<root name>/<id>.  CRIU's images name
	 * the cgroup2 hierarchy by an empty controller name. */
	for (size_t i = 0; i < dirs.n; i++)
		if (asprintf(&v[i], "%s:/%s/%s", strcmp(dirs.key[i], "unified") ? dirs.key[i] : "",
		             m->root_name, id) < 0) {
			v[i] = NULL;
			return al_error_set(err, ENOMEM, "out of memory");
		}
	*out = TAKE_PTR(v);
	return 0;
}

int cgroup_hierarchy_mounts(const char *mountinfo_path, pid_t pid, char ***controllers,
                            char ***mounts, struct al_error *err)
{
	_cleanup_free_ char *cgroups = NULL, *info = NULL;
	_cleanup_free_ struct mountinfo_entry *entries = NULL;
	_cleanup_strv_ char **ctrls = NULL, **points = NULL;
	size_t n_entries = 0, cap = 0;
	char path[64], *save = NULL;
	int r;

	snprintf(path, sizeof(path), "/proc/%d/cgroup", (int)pid);
	r = al_read_file(path, 1 << 20, &cgroups, NULL, err);
	if (r < 0)
		return r;
	if (!mountinfo_path)
		mountinfo_path = "/proc/self/mountinfo";
	r = al_read_file(mountinfo_path, 16 << 20, &info, NULL, err);
	if (r < 0)
		return r;
	for (char *line = strtok_r(info, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
		struct mountinfo_entry e;
		if (!mountinfo_split(line, &e) ||
		    (strcmp(e.fstype, "cgroup") && strcmp(e.fstype, "cgroup2")))
			continue;
		if (n_entries == cap) {
			struct mountinfo_entry *more;
			cap = cap ? cap * 2 : 16;
			more = realloc(entries, cap * sizeof(*entries));
			if (!more)
				return al_error_set(err, ENOMEM, "out of memory");
			entries = more;
		}
		entries[n_entries++] = e;
	}
	/* /proc/PID/cgroup: "ID:CONTROLLERS:PATH", one line per hierarchy. */
	save = NULL;
	for (char *line = strtok_r(cgroups, "\n", &save); line;
	     line = strtok_r(NULL, "\n", &save)) {
		char *list = strchr(line, ':'), *end, first[64];
		const char *found = NULL;
		if (!list || !(end = strchr(++list, ':')))
			continue;
		*end = '\0';
		/* Two hierarchies never share a controller: the first one names it. */
		snprintf(first, sizeof(first), "%.*s", (int)strcspn(list, ","), list);
		for (size_t i = 0; i < n_entries; i++) {
			const struct mountinfo_entry *e = &entries[i];
			bool same = !*list ? !strcmp(e->fstype, "cgroup2")
			                   : !strcmp(e->fstype, "cgroup") && e->superopts &&
			                         in_list(e->superopts, ',', first);
			if (same && !strcmp(e->root, "/") &&
			    (!found ||
			     (!conventional_mount(found) && conventional_mount(e->mount_point))))
				found = e->mount_point;
		}
		if (!found)
			return al_error_set(err, ENOENT, "cgroup hierarchy '%s' is not mounted",
			                    list);
		if (al_strv_push(&ctrls, list) < 0 || al_strv_push(&points, found) < 0)
			return al_error_set(err, ENOMEM, "out of memory");
	}
	*controllers = TAKE_PTR(ctrls);
	*mounts = TAKE_PTR(points);
	return 0;
}

/* Whether directory i of the sandbox is in the v1 hierarchy of controller c
 * (possibly co-mounted with others, so the key alone does not tell). */
static bool dir_is_v1_ctrl(const struct cgroup_manager *m, const struct sandbox_dirs *d, size_t i,
                           enum cg_ctrl c)
{
	return m->mode != CGROUP_MODE_V2 && m->v1[c] && d->mount[i] != m->unified &&
	       !strcmp(d->mount[i], m->v1[c]);
}

/* The directory holding a controller's knobs for this sandbox, or NULL. */
static char *ctrl_dir(const struct cgroup_manager *m, enum cg_ctrl c, const char *id)
{
	const char *mount = m->mode == CGROUP_MODE_V2 ? m->unified : m->v1[c];
	char *path;

	if (!mount || asprintf(&path, "%s/%s/%s", mount, m->root_name, id) < 0)
		return NULL;
	return path;
}

static int knob_path(char buf[PATH_MAX], const char *dir, const char *file, struct al_error *err)
{
	int n = snprintf(buf, PATH_MAX, "%s/%s", dir, file);

	if (n < 0 || n >= PATH_MAX)
		return al_error_set(err, ENAMETOOLONG, "path %s/%s too long", dir, file);
	return 0;
}

static bool knob_exists(const char *dir, const char *file)
{
	char path[PATH_MAX];

	if (!dir || knob_path(path, dir, file, NULL) < 0)
		return false;
	return access(path, F_OK) == 0;
}

static int knob_write(const char *dir, const char *file, const char *value, struct al_error *err)
{
	char path[PATH_MAX];
	int r = knob_path(path, dir, file, err);

	return r < 0 ? r : al_write_string(path, value, err);
}

/* Read a knob with trailing whitespace removed. */
static int knob_read(const char *dir, const char *file, char **out, struct al_error *err)
{
	char path[PATH_MAX];
	char *text;
	size_t len;
	int r = knob_path(path, dir, file, err);

	if (r < 0)
		return r;
	r = al_read_file(path, KNOB_MAX, &text, &len, err);
	if (r < 0)
		return r;
	while (len > 0 && isspace((unsigned char)text[len - 1]))
		text[--len] = '\0';
	*out = text;
	return 0;
}

static bool parse_u64(const char *s, uint64_t *out)
{
	unsigned long long v;
	char *end;

	if (!s || !isdigit((unsigned char)*s))
		return false;
	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno || (*end && !isspace((unsigned char)*end)))
		return false;
	*out = v;
	return true;
}

static bool parse_i64(const char *s, int64_t *out)
{
	long long v;
	char *end;

	if (!s || !*s)
		return false;
	errno = 0;
	v = strtoll(s, &end, 10);
	if (errno || end == s || (*end && !isspace((unsigned char)*end)))
		return false;
	*out = v;
	return true;
}

/* The value of "key N" in a flat keyed file (memory.events, pids.events,
 * memory.oom_control, cgroup.events). */
static bool keyed_u64(const char *text, const char *key, uint64_t *out)
{
	size_t len = strlen(key);

	for (const char *p = text; p && *p;) {
		if (!strncmp(p, key, len) && p[len] == ' ')
			return parse_u64(p + len + 1, out);
		p = strchr(p, '\n');
		if (p)
			p++;
	}
	return false;
}

static bool knob_read_u64(const char *dir, const char *file, uint64_t *out)
{
	_cleanup_free_ char *text = NULL;

	return dir && knob_read(dir, file, &text, NULL) == 0 && parse_u64(text, out);
}

static bool knob_read_keyed(const char *dir, const char *file, const char *key, uint64_t *out)
{
	_cleanup_free_ char *text = NULL;

	return dir && knob_read(dir, file, &text, NULL) == 0 && keyed_u64(text, key, out);
}

static bool dir_exists(const char *path)
{
	struct stat st;

	return stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

/* ---- create ------------------------------------------------------------- */

/* The sandbox directories a failed cgroup_create made, removed on the way out
 * unless the creation is committed. */
struct created_dirs {
	size_t n;
	char *path[CG_NR_CTRL + 1];
	bool committed;
};

static void created_dirs_undo(struct created_dirs *c)
{
	for (size_t i = c->n; i-- > 0;) {
		if (!c->committed)
			(void)rmdir(c->path[i]);
		free(c->path[i]);
	}
}

/* cpus as microseconds of CPU time per CFS period, rounded to nearest
 * (cpus >= 0 was checked; plain arithmetic keeps libm out of the link). */
static long long cfs_quota_us(double cpus)
{
	return (long long)(cpus * CFS_PERIOD_US + 0.5);
}

static int check_limits(const struct cgroup_limits *l, struct al_error *err)
{
	/* The upper bound only keeps the quota arithmetic in range. */
	if (!isfinite(l->cpus) || l->cpus < 0 || l->cpus > 1e6)
		return al_error_set(err, EINVAL, "invalid cpu limit %g", l->cpus);
	if (l->cpus > 0 && cfs_quota_us(l->cpus) < CFS_QUOTA_MIN_US)
		return al_error_set(err, EINVAL, "cpu limit %g is below the minimum of %g cpus",
		                    l->cpus, (double)CFS_QUOTA_MIN_US / CFS_PERIOD_US);
	return 0;
}

/* v1 cpuset starts a new cgroup with no cpus and no memory nodes, and no task
 * can join it until both are set: inherit them from the parent. */
static int cpuset_inherit(const char *dir, struct al_error *err)
{
	static const char *const files[] = {"cpuset.cpus", "cpuset.mems"};
	_cleanup_free_ char *parent = strdup(dir);
	char *slash = parent ? strrchr(parent, '/') : NULL;

	if (!slash)
		return al_error_set(err, ENOMEM, "out of memory");
	*slash = '\0';
	for (size_t i = 0; i < AL_ARRAY_SIZE(files); i++) {
		_cleanup_free_ char *own = NULL, *inherited = NULL;
		int r = knob_read(dir, files[i], &own, err);
		if (r < 0)
			return r;
		if (*own)
			continue;
		r = knob_read(parent, files[i], &inherited, err);
		if (r < 0)
			return r;
		r = knob_write(dir, files[i], inherited, err);
		if (r < 0)
			return r;
	}
	return 0;
}

static bool v2_needs(const char *ctrl, const struct cgroup_limits *l)
{
	if (!strcmp(ctrl, "memory"))
		return l->memory_bytes > 0;
	if (!strcmp(ctrl, "pids"))
		return l->pids > 0;
	return l->cpus > 0;
}

/* Let dir's children use memory, pids and cpu.  A controller that no limit
 * needs is enabled on a best-effort basis (usage reporting only). */
static int v2_enable_controllers(const char *dir, const struct cgroup_limits *l,
                                 struct al_error *err)
{
	static const char *const wanted[] = {"memory", "pids", "cpu"};
	_cleanup_free_ char *available = NULL, *enabled = NULL;
	int r;

	r = knob_read(dir, "cgroup.controllers", &available, err);
	if (r < 0)
		return r;
	r = knob_read(dir, "cgroup.subtree_control", &enabled, err);
	if (r < 0)
		return r;
	for (size_t i = 0; i < AL_ARRAY_SIZE(wanted); i++) {
		char op[16];
		if (in_list(enabled, ' ', wanted[i]))
			continue;
		if (!in_list(available, ' ', wanted[i])) {
			if (v2_needs(wanted[i], l))
				return al_error_set(err, ENOTSUP,
				                    "cgroup2 controller %s is not available in %s",
				                    wanted[i], dir);
			continue;
		}
		snprintf(op, sizeof(op), "+%s", wanted[i]);
		r = knob_write(dir, "cgroup.subtree_control", op,
		               v2_needs(wanted[i], l) ? err : NULL);
		if (r < 0 && v2_needs(wanted[i], l))
			return r;
	}
	return 0;
}

static int v2_apply_limits(const char *dir, const struct cgroup_limits *l, struct al_error *err)
{
	char value[64];
	int r;

	if (l->memory_bytes || knob_exists(dir, "memory.max")) {
		if (l->memory_bytes)
			snprintf(value, sizeof(value), "%" PRIu64, l->memory_bytes);
		r = knob_write(dir, "memory.max", l->memory_bytes ? value : "max", err);
		if (r < 0)
			return r;
		/* memory.swap.max is absent when swap accounting is off. */
		if (knob_exists(dir, "memory.swap.max")) {
			r = knob_write(dir, "memory.swap.max", l->memory_bytes ? "0" : "max", err);
			if (r < 0)
				return r;
		}
	}
	if (l->pids || knob_exists(dir, "pids.max")) {
		snprintf(value, sizeof(value), "%" PRIu64, l->pids);
		r = knob_write(dir, "pids.max", l->pids ? value : "max", err);
		if (r < 0)
			return r;
	}
	if (l->cpus > 0 || knob_exists(dir, "cpu.max")) {
		if (l->cpus > 0)
			snprintf(value, sizeof(value), "%lld %d", cfs_quota_us(l->cpus),
			         CFS_PERIOD_US);
		else
			snprintf(value, sizeof(value), "max %d", CFS_PERIOD_US);
		r = knob_write(dir, "cpu.max", value, err);
		if (r < 0)
			return r;
	}
	return 0;
}

static int v1_apply_memory(const char *dir, uint64_t bytes, struct al_error *err)
{
	bool memsw = knob_exists(dir, "memory.memsw.limit_in_bytes");
	char value[32];
	int r;

	/* Keep the OOM killer on: a hog must die, not hang the sandbox. */
	if (knob_exists(dir, "memory.oom_control")) {
		r = knob_write(dir, "memory.oom_control", "0", err);
		if (r < 0)
			return r;
	}
	if (!bytes) {
		/* The kernel keeps memsw >= limit, so lift memsw first. */
		if (memsw) {
			r = knob_write(dir, "memory.memsw.limit_in_bytes", "-1", err);
			if (r < 0)
				return r;
		}
		return knob_write(dir, "memory.limit_in_bytes", "-1", err);
	}
	snprintf(value, sizeof(value), "%" PRIu64, bytes);
	r = knob_write(dir, "memory.limit_in_bytes", value, err);
	if (r == -EINVAL && memsw) {
		/* Raising an existing limit above the old memsw limit: memsw first. */
		r = knob_write(dir, "memory.memsw.limit_in_bytes", value, err);
		if (r == 0)
			r = knob_write(dir, "memory.limit_in_bytes", value, err);
	}
	if (r < 0)
		return r;
	if (memsw)
		return knob_write(dir, "memory.memsw.limit_in_bytes", value, err);
	/* Without swap accounting the best we can do is not to swap this group. */
	if (knob_exists(dir, "memory.swappiness"))
		(void)knob_write(dir, "memory.swappiness", "0", NULL);
	return 0;
}

static int v1_apply_limits(const struct cgroup_manager *m, const char *id,
                           const struct cgroup_limits *l, struct al_error *err)
{
	char value[32];
	int r;

	if (m->v1[CG_MEMORY]) {
		_cleanup_free_ char *dir = ctrl_dir(m, CG_MEMORY, id);
		if (!dir)
			return al_error_set(err, ENOMEM, "out of memory");
		r = v1_apply_memory(dir, l->memory_bytes, err);
		if (r < 0)
			return r;
	}
	if (m->v1[CG_PIDS]) {
		_cleanup_free_ char *dir = ctrl_dir(m, CG_PIDS, id);
		if (!dir)
			return al_error_set(err, ENOMEM, "out of memory");
		snprintf(value, sizeof(value), "%" PRIu64, l->pids);
		r = knob_write(dir, "pids.max", l->pids ? value : "max", err);
		if (r < 0)
			return r;
	}
	if (m->v1[CG_CPU]) {
		_cleanup_free_ char *dir = ctrl_dir(m, CG_CPU, id);
		if (!dir)
			return al_error_set(err, ENOMEM, "out of memory");
		snprintf(value, sizeof(value), "%d", CFS_PERIOD_US);
		r = knob_write(dir, "cpu.cfs_period_us", value, err);
		if (r < 0)
			return r;
		if (l->cpus > 0)
			snprintf(value, sizeof(value), "%lld", cfs_quota_us(l->cpus));
		r = knob_write(dir, "cpu.cfs_quota_us", l->cpus > 0 ? value : "-1", err);
		if (r < 0)
			return r;
	}
	return 0;
}

static int v1_check_controllers(const struct cgroup_manager *m, const struct cgroup_limits *l,
                                struct al_error *err)
{
	if (l->memory_bytes && !m->v1[CG_MEMORY])
		return al_error_set(err, ENOTSUP,
		                    "no cgroup v1 memory hierarchy for a memory limit");
	if (l->pids && !m->v1[CG_PIDS])
		return al_error_set(err, ENOTSUP, "no cgroup v1 pids hierarchy for a pids limit");
	if (l->cpus > 0 && !m->v1[CG_CPU])
		return al_error_set(err, ENOTSUP, "no cgroup v1 cpu hierarchy for a cpu limit");
	return 0;
}

/* mkdir <root>, then <root>/<id>; only the sandbox directory is recorded for
 * undo, since the shared root may be in use by other sandboxes meanwhile. */
static int make_sandbox_dir(const struct cgroup_manager *m, const struct sandbox_dirs *d, size_t i,
                            struct created_dirs *created, struct al_error *err)
{
	bool cpuset = dir_is_v1_ctrl(m, d, i, CG_CPUSET);
	int r;

	/* Two tries: a concurrent cleanup may remove an empty root in between. */
	for (int attempt = 0;; attempt++) {
		if (mkdir(d->root[i], 0755) < 0 && errno != EEXIST)
			return al_error_errno(err, "mkdir %s", d->root[i]);
		if (cpuset) {
			r = cpuset_inherit(d->root[i], err);
			if (r < 0)
				return r;
		}
		if (mkdir(d->path[i], 0755) == 0) {
			created->path[created->n] = strdup(d->path[i]);
			if (!created->path[created->n]) {
				(void)rmdir(d->path[i]);
				return al_error_set(err, ENOMEM, "out of memory");
			}
			created->n++;
			break;
		}
		if (errno == EEXIST)
			break;
		if (errno != ENOENT || attempt > 0)
			return al_error_errno(err, "mkdir %s", d->path[i]);
	}
	return cpuset ? cpuset_inherit(d->path[i], err) : 0;
}

int cgroup_create(struct cgroup_manager *m, const char *id, const struct cgroup_limits *limits,
                  struct al_error *err)
{
	_cleanup_(sandbox_dirs_free) struct sandbox_dirs dirs = {0};
	_cleanup_(created_dirs_undo) struct created_dirs created = {0};
	static const struct cgroup_limits none = {0};
	int r;

	if (!limits)
		limits = &none;
	r = check_id(id, err);
	if (r < 0)
		return r;
	r = check_limits(limits, err);
	if (r < 0)
		return al_error_prefix(err, "sandbox %s", id);
	if (m->mode != CGROUP_MODE_V2) {
		r = v1_check_controllers(m, limits, err);
		if (r < 0)
			return al_error_prefix(err, "sandbox %s", id);
	}
	r = sandbox_dirs_get(m, id, &dirs, err);
	if (r < 0)
		return r;
	if (m->mode == CGROUP_MODE_V2) {
		r = v2_enable_controllers(m->unified, limits, err);
		if (r < 0)
			return al_error_prefix(err, "sandbox %s", id);
	}
	for (size_t i = 0; i < dirs.n; i++) {
		r = make_sandbox_dir(m, &dirs, i, &created, err);
		if (r < 0)
			return al_error_prefix(err, "sandbox %s", id);
	}
	if (m->mode == CGROUP_MODE_V2) {
		/* dirs holds exactly the cgroup2 directory on pure v2. */
		r = v2_enable_controllers(dirs.root[0], limits, err);
		if (r == 0)
			r = v2_apply_limits(dirs.path[0], limits, err);
	} else {
		r = v1_apply_limits(m, id, limits, err);
	}
	if (r < 0)
		return al_error_prefix(err, "sandbox %s", id);
	created.committed = true;
	return 0;
}

/* ---- enter / open ------------------------------------------------------- */

int cgroup_enter(struct cgroup_manager *m, const char *id, pid_t pid, struct al_error *err)
{
	_cleanup_(sandbox_dirs_free) struct sandbox_dirs dirs = {0};
	char value[32];
	int r;

	r = check_id(id, err);
	if (r < 0)
		return r;
	if (pid <= 0)
		return al_error_set(err, EINVAL, "sandbox %s: invalid pid %d", id, (int)pid);
	r = sandbox_dirs_get(m, id, &dirs, err);
	if (r < 0)
		return r;
	snprintf(value, sizeof(value), "%d", (int)pid);
	for (size_t i = 0; i < dirs.n; i++) {
		r = knob_write(dirs.path[i], "cgroup.procs", value, err);
		if (r < 0)
			return al_error_prefix(err, "sandbox %s: move pid %d", id, (int)pid);
	}
	return 0;
}

/* The files a process writes "0" to to join sandbox id's cgroups: each v1
 * hierarchy's "tasks", with_unified the cgroup2 "cgroup.procs" too, the one
 * whose path is skip left out. */
static int open_joins(struct cgroup_manager *m, const char *id, const char *skip, bool with_unified,
                      int *fds, size_t max, struct al_error *err)
{
	_cleanup_(sandbox_dirs_free) struct sandbox_dirs dirs = {0};
	size_t n = 0;
	int r;

	r = sandbox_dirs_get(m, id, &dirs, err);
	if (r < 0)
		return r;
	for (size_t i = 0; i < dirs.n; i++) {
		bool unified = !strcmp(dirs.key[i], "unified");
		char path[PATH_MAX];
		int fd;

		if ((unified && !with_unified) || (skip && !strcmp(dirs.path[i], skip)))
			continue;
		if (n == max) {
			r = al_error_set(err, E2BIG, "sandbox %s: too many cgroup hierarchies", id);
			break;
		}
		r = knob_path(path, dirs.path[i], unified ? "cgroup.procs" : "tasks", err);
		if (r < 0)
			break;
		fd = open(path, O_WRONLY | O_CLOEXEC);
		if (fd < 0) {
			r = al_error_errno(err, "sandbox %s: open %s", id, path);
			break;
		}
		fds[n++] = fd;
	}
	if (r < 0) {
		while (n > 0)
			close(fds[--n]);
		return r;
	}
	return (int)n;
}

int cgroup_open_join_fds(struct cgroup_manager *m, const char *id, int *fds, size_t max,
                         struct al_error *err)
{
	/* cgroup2 is joined by clone3(CLONE_INTO_CGROUP) instead. */
	return open_joins(m, id, NULL, false, fds, max, err);
}

int cgroup_open_v2_dir(struct cgroup_manager *m, const char *id, struct al_error *err)
{
	_cleanup_free_ char *path = NULL;
	int fd, r;

	r = check_id(id, err);
	if (r < 0)
		return r;
	if (!m->unified)
		return al_error_set(err, ENOTSUP, "sandbox %s: no cgroup2 tree on a %s layout", id,
		                    cgroup_mode_name(m->mode));
	if (asprintf(&path, "%s/%s/%s", m->unified, m->root_name, id) < 0) {
		path = NULL;
		return al_error_set(err, ENOMEM, "out of memory");
	}
	fd = open(path, O_PATH | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return al_error_errno(err, "sandbox %s: open %s", id, path);
	return fd;
}

int cgroup_open_joins_but(struct cgroup_manager *m, const char *id, const char *skip, int *fds,
                          size_t max, struct al_error *err)
{
	return open_joins(m, id, skip, true, fds, max, err);
}

/* ---- describe ----------------------------------------------------------- */

static cJSON *add_u64_or_null(cJSON *obj, const char *name, bool have, uint64_t v)
{
	return have ? cJSON_AddNumberToObject(obj, name, (double)v)
	            : cJSON_AddNullToObject(obj, name);
}

static bool read_memory_limit(const struct cgroup_manager *m, const char *dir, uint64_t *out)
{
	_cleanup_free_ char *text = NULL;
	const char *file = m->mode == CGROUP_MODE_V2 ? "memory.max" : "memory.limit_in_bytes";

	if (!dir || knob_read(dir, file, &text, NULL) < 0 || !parse_u64(text, out))
		return false; /* "max" on v2 */
	return *out < V1_UNLIMITED_FLOOR;
}

static bool read_cpu_limit(const struct cgroup_manager *m, const char *dir, double *out)
{
	_cleanup_free_ char *text = NULL;
	int64_t quota;
	uint64_t period;

	if (!dir)
		return false;
	if (m->mode == CGROUP_MODE_V2) {
		/* "QUOTA PERIOD" or "max PERIOD" */
		char *space;
		if (knob_read(dir, "cpu.max", &text, NULL) < 0 || !(space = strchr(text, ' ')))
			return false;
		*space = '\0';
		if (!parse_i64(text, &quota) || !parse_u64(space + 1, &period))
			return false;
	} else {
		if (knob_read(dir, "cpu.cfs_quota_us", &text, NULL) < 0 ||
		    !parse_i64(text, &quota) || !knob_read_u64(dir, "cpu.cfs_period_us", &period))
			return false;
	}
	if (quota <= 0 || period == 0)
		return false;
	*out = (double)quota / (double)period;
	return true;
}

int cgroup_describe(struct cgroup_manager *m, const char *id, cJSON **out, struct al_error *err)
{
	_cleanup_(sandbox_dirs_free) struct sandbox_dirs dirs = {0};
	_cleanup_cjson_ cJSON *root = NULL;
	_cleanup_free_ char *mem = NULL, *pids = NULL, *cpu = NULL;
	cJSON *paths, *limits, *usage, *events;
	bool any = false, have;
	uint64_t v = 0;
	double cpus = 0;
	int r;

	r = sandbox_dirs_get(m, id, &dirs, err);
	if (r < 0)
		return r;
	for (size_t i = 0; i < dirs.n; i++)
		any |= dir_exists(dirs.path[i]);
	if (!any)
		return al_error_set(err, ENOENT, "sandbox %s has no cgroup", id);

	mem = ctrl_dir(m, CG_MEMORY, id);
	pids = ctrl_dir(m, CG_PIDS, id);
	cpu = ctrl_dir(m, CG_CPU, id);
	root = cJSON_CreateObject();
	if (!root || !cJSON_AddStringToObject(root, "mode", cgroup_mode_name(m->mode)) ||
	    !(paths = cJSON_AddObjectToObject(root, "paths")) ||
	    !(limits = cJSON_AddObjectToObject(root, "limits")) ||
	    !(usage = cJSON_AddObjectToObject(root, "usage")) ||
	    !(events = cJSON_AddObjectToObject(root, "events")))
		return al_error_set(err, ENOMEM, "out of memory");
	for (size_t i = 0; i < dirs.n; i++)
		if (!cJSON_AddStringToObject(paths, dirs.key[i], dirs.path[i]))
			return al_error_set(err, ENOMEM, "out of memory");

	have = read_memory_limit(m, mem, &v);
	if (!add_u64_or_null(limits, "memory_bytes", have, v))
		return al_error_set(err, ENOMEM, "out of memory");
	have = pids && knob_read_u64(pids, "pids.max", &v); /* "max" reads as no limit */
	if (!add_u64_or_null(limits, "pids", have, v))
		return al_error_set(err, ENOMEM, "out of memory");
	if (!(read_cpu_limit(m, cpu, &cpus) ? cJSON_AddNumberToObject(limits, "cpus", cpus)
	                                    : cJSON_AddNullToObject(limits, "cpus")))
		return al_error_set(err, ENOMEM, "out of memory");

	have = knob_read_u64(
	    mem, m->mode == CGROUP_MODE_V2 ? "memory.current" : "memory.usage_in_bytes", &v);
	if (!add_u64_or_null(usage, "memory_bytes", have, v))
		return al_error_set(err, ENOMEM, "out of memory");
	have = knob_read_u64(pids, "pids.current", &v);
	if (!add_u64_or_null(usage, "pids", have, v))
		return al_error_set(err, ENOMEM, "out of memory");
	/* CPU time used: cgroup2's cpu.stat (microseconds; on a hybrid host
	 * too, in the sandbox's cgroup2 directory: cgroup2 counts it without
	 * a controller), else cpuacct.usage (nanoseconds) where v1 mounts it
	 * with cpu. */
	if (m->unified) {
		_cleanup_free_ char *v2 = NULL;
		have = asprintf(&v2, "%s/%s/%s", m->unified, m->root_name, id) >= 0 &&
		       knob_read_keyed(v2, "cpu.stat", "usage_usec", &v);
		v *= 1000;
	} else {
		have = knob_read_u64(cpu, "cpuacct.usage", &v);
	}
	if (!(have ? cJSON_AddNumberToObject(usage, "cpu_seconds", (double)v / 1e9)
	           : cJSON_AddNullToObject(usage, "cpu_seconds")))
		return al_error_set(err, ENOMEM, "out of memory");

	have =
	    knob_read_keyed(mem, m->mode == CGROUP_MODE_V2 ? "memory.events" : "memory.oom_control",
	                    "oom_kill", &v);
	if (!add_u64_or_null(events, "oom_kill", have, v))
		return al_error_set(err, ENOMEM, "out of memory");
	have = knob_read_keyed(pids, "pids.events", "max", &v);
	if (!add_u64_or_null(events, "pids_max", have, v))
		return al_error_set(err, ENOMEM, "out of memory");

	*out = TAKE_PTR(root);
	return 0;
}

/* ---- destroy ------------------------------------------------------------ */

struct pid_set {
	pid_t *pid;
	size_t n, cap;
};

static void pid_set_free(struct pid_set *s)
{
	free(s->pid);
	*s = (struct pid_set){0};
}

static bool pid_set_has(const struct pid_set *s, pid_t pid)
{
	for (size_t i = 0; i < s->n; i++)
		if (s->pid[i] == pid)
			return true;
	return false;
}

static int pid_set_add(struct pid_set *s, pid_t pid)
{
	if (pid_set_has(s, pid))
		return 0;
	if (s->n == s->cap) {
		size_t cap = s->cap ? 2 * s->cap : 64;
		pid_t *p = reallocarray(s->pid, cap, sizeof(*p));
		if (!p)
			return -ENOMEM;
		s->pid = p;
		s->cap = cap;
	}
	s->pid[s->n++] = pid;
	return 0;
}

/* Call fn on the path of every child cgroup of dir (not recursively; fn
 * recurses when it needs to).  A cgroup that vanished has no children. */
static int each_child_cgroup(const char *dir,
                             int (*fn)(const char *child, void *data, struct al_error *err),
                             void *data, struct al_error *err)
{
	_cleanup_closedir_ DIR *d = opendir(dir);
	struct dirent *de;
	int r;

	if (!d)
		return errno == ENOENT ? 0 : al_error_errno(err, "opendir %s", dir);
	while ((de = readdir(d))) {
		_cleanup_free_ char *child = NULL;
		if (de->d_type != DT_DIR || !strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
			continue;
		if (asprintf(&child, "%s/%s", dir, de->d_name) < 0) {
			child = NULL;
			return al_error_set(err, ENOMEM, "out of memory");
		}
		r = fn(child, data, err);
		if (r < 0)
			return r;
	}
	return 0;
}

/* Every process in the cgroup at dir and in its descendants (a sandbox may
 * have made nested cgroups).  A cgroup that vanished has no processes. */
static int collect_procs(const char *dir, void *data, struct al_error *err)
{
	struct pid_set *set = data;
	_cleanup_free_ char *procs = NULL;
	char *line, *save = NULL;
	int r;

	r = knob_read(dir, "cgroup.procs", &procs, err);
	if (r == -ENOENT)
		return 0;
	if (r < 0)
		return r;
	for (line = strtok_r(procs, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
		uint64_t pid;
		if (parse_u64(line, &pid) && pid > 0 && pid <= INT_MAX &&
		    pid_set_add(set, (pid_t)pid) < 0)
			return al_error_set(err, ENOMEM, "out of memory");
	}
	return each_child_cgroup(dir, collect_procs, set, err);
}

static int collect_all(const struct sandbox_dirs *dirs, struct pid_set *set, struct al_error *err)
{
	for (size_t i = 0; i < dirs->n; i++) {
		int r = collect_procs(dirs->path[i], set, err);
		if (r < 0)
			return r;
	}
	return 0;
}

/* SIGKILL what is in the cgroups, without ever hitting a recycled pid: pin
 * each process with a pidfd first, then signal only those still listed. */
static int kill_procs(const struct sandbox_dirs *dirs, const struct pid_set *seen,
                      struct al_error *err)
{
	_cleanup_(pid_set_free) struct pid_set again = {0};
	_cleanup_free_ int *pidfd = calloc(seen->n ? seen->n : 1, sizeof(int));
	int r;

	if (!pidfd)
		return al_error_set(err, ENOMEM, "out of memory");
	for (size_t i = 0; i < seen->n; i++) {
		pidfd[i] = (int)syscall(SYS_pidfd_open, seen->pid[i], 0);
		if (pidfd[i] < 0)
			pidfd[i] = -errno;
	}
	r = collect_all(dirs, &again, err);
	for (size_t i = 0; i < seen->n; i++) {
		if (r == 0 && pid_set_has(&again, seen->pid[i])) {
			if (pidfd[i] >= 0)
				(void)syscall(SYS_pidfd_send_signal, pidfd[i], SIGKILL, NULL, 0);
			else if (pidfd[i] != -ESRCH)
				/* No pidfd support: the listing just confirmed the pid. */
				(void)kill(seen->pid[i], SIGKILL);
		}
		if (pidfd[i] >= 0)
			close(pidfd[i]);
	}
	return r;
}

/* Frozen tasks cannot fork while we kill them.  v1 frozen tasks only act on
 * SIGKILL once thawed, hence the thaw after each round. */
struct freezer {
	const char *dir;
	const char *file;
	const char *frozen, *thawed;
};

static void freezer_find(const struct cgroup_manager *m, const struct sandbox_dirs *dirs,
                         struct freezer *f)
{
	*f = (struct freezer){0};
	for (size_t i = 0; i < dirs->n; i++) {
		if (dir_is_v1_ctrl(m, dirs, i, CG_FREEZER)) {
			*f = (struct freezer){dirs->path[i], "freezer.state", "FROZEN", "THAWED"};
			return;
		}
	}
	for (size_t i = 0; i < dirs->n; i++)
		if (!strcmp(dirs->key[i], "unified") && knob_exists(dirs->path[i], "cgroup.freeze"))
			*f = (struct freezer){dirs->path[i], "cgroup.freeze", "1", "0"};
}

int cgroup_open_joins_unfrozen(struct cgroup_manager *m, const char *id, int *fds, size_t max,
                               struct al_error *err)
{
	_cleanup_(sandbox_dirs_free) struct sandbox_dirs dirs = {0};
	struct freezer f;
	int r;

	r = sandbox_dirs_get(m, id, &dirs, err);
	if (r < 0)
		return r;
	freezer_find(m, &dirs, &f);
	return open_joins(m, id, f.dir, true, fds, max, err);
}

static bool freezer_is_frozen(const struct freezer *f)
{
	_cleanup_free_ char *text = NULL;
	uint64_t v;

	if (!strcmp(f->file, "cgroup.freeze"))
		return knob_read_keyed(f->dir, "cgroup.events", "frozen", &v) && v == 1;
	return knob_read(f->dir, f->file, &text, NULL) == 0 && !strcmp(text, "FROZEN");
}

static void freezer_thaw(const struct freezer *f);

/*
 * Ask for the group frozen and wait until it is, or until the deadline
 * (al_now_ms() terms); true once frozen.
 *
 * The v1 freezer can stay FREEZING for good after a single write: a task
 * caught in vfork() while the freezer passed waits for its child, which
 * the pass froze before it could exec, and v1 does not count that parent
 * as frozen.  Writing FROZEN again makes another pass, which settles it
 * (measured: a shell running /bin/true in a loop stuck 5 freezes in 200,
 * each frozen at the next write).  A thaw now and then lets a task that
 * keeps forking start over.  cgroup2's freezer needs neither.  Returns 0
 * once frozen, -ETIMEDOUT at the deadline, or the write's error.
 */
static int freezer_freeze(const struct freezer *f, uint64_t until, struct al_error *err)
{
	bool v1;
	int r;

	if (!f->dir)
		return al_error_set(err, ENOTSUP, "no freezer");
	v1 = strcmp(f->file, "cgroup.freeze") != 0;
	r = knob_write(f->dir, f->file, f->frozen, err);
	if (r < 0)
		return r;
	for (unsigned round = 1;; round++) {
		struct timespec pause = {0, round < 10 ? 100000L : 1000000L};
		if (freezer_is_frozen(f))
			return 0;
		if (al_now_ms() >= until)
			return al_error_set(err, ETIMEDOUT, "%s: still freezing", f->dir);
		nanosleep(&pause, NULL);
		if (v1) {
			if (round % 64 == 0)
				freezer_thaw(f);
			(void)knob_write(f->dir, f->file, f->frozen, NULL);
		}
	}
}

static void freezer_thaw(const struct freezer *f)
{
	if (f->dir)
		(void)knob_write(f->dir, f->file, f->thawed, NULL);
}

/* kcmp(2) ordering of two processes' address spaces, as qsort wants it.
 * Neither can exit while the group is frozen; should kcmp fail anyway, pid
 * order keeps the sort going. */
static int cmp_address_space(const void *a, const void *b)
{
	pid_t x = *(const pid_t *)a, y = *(const pid_t *)b;

	switch (syscall(SYS_kcmp, x, y, KCMP_VM, 0UL, 0UL)) {
	case 0:
		return 0;
	case 1:
		return -1;
	case 2:
		return 1;
	default:
		return (x > y) - (x < y);
	}
}

/*
 * Two processes of the frozen group at dir that share one address space:
 * a vfork() child that has not exec'd yet and its parent (or a pair made by
 * clone(CLONE_VM), which CRIU refuses anyway).  CRIU cannot dump a vfork in
 * flight: it stops the child, and the parent, waiting in the kernel for
 * that child's exec, never stops, so the dump hangs until criu's own 10 s
 * timeout and fails.  Returns 1 with the pair, 0 if there is none or kcmp
 * fails (CRIU needs it, so there is no dump then either).
 */
static int find_shared_address_space(const char *dir, pid_t pair[2], struct al_error *err)
{
	_cleanup_(pid_set_free) struct pid_set set = {0};
	int r;

	r = collect_procs(dir, &set, err);
	if (r < 0)
		return r;
	if (set.n < 2)
		return 0;
	if (syscall(SYS_kcmp, set.pid[0], set.pid[0], KCMP_VM, 0UL, 0UL) < 0) {
		log_debug("no vfork check before the dump: kcmp: %s", strerror(errno));
		return 0;
	}
	qsort(set.pid, set.n, sizeof(*set.pid), cmp_address_space);
	for (size_t i = 1; i < set.n; i++) {
		/* Zombies have no address space left: theirs all compare equal. */
		if (cmp_address_space(&set.pid[i - 1], &set.pid[i]) != 0 ||
		    strchr("ZX?", al_proc_state(set.pid[i - 1])) ||
		    strchr("ZX?", al_proc_state(set.pid[i])))
			continue;
		pair[0] = set.pid[i - 1];
		pair[1] = set.pid[i];
		return 1;
	}
	return 0;
}

/* The freezer of sandbox id (its paths live in dirs); -ENOTSUP without one. */
static int sandbox_freezer(struct cgroup_manager *m, const char *id, struct sandbox_dirs *dirs,
                           struct freezer *f, struct al_error *err)
{
	int r;

	r = sandbox_dirs_get(m, id, dirs, err);
	if (r < 0)
		return r;
	freezer_find(m, dirs, f);
	if (!f->dir)
		return al_error_set(err, ENOTSUP, "sandbox %s: no freezer", id);
	return 0;
}

int cgroup_freeze_start(struct cgroup_manager *m, const char *id, struct al_error *err)
{
	_cleanup_(sandbox_dirs_free) struct sandbox_dirs dirs = {0};
	struct freezer f;
	int r;

	r = sandbox_freezer(m, id, &dirs, &f, err);
	if (r < 0)
		return r;
	r = knob_write(f.dir, f.file, f.frozen, err);
	return r < 0 ? al_error_prefix(err, "sandbox %s: freeze", id) : 0;
}

/* Hand out the frozen group's directory (thawing it if we cannot). */
static int freezer_path(const struct freezer *f, char **path, struct al_error *err)
{
	if (path && !(*path = strdup(f->dir))) {
		freezer_thaw(f);
		return al_error_set(err, ENOMEM, "out of memory");
	}
	return 0;
}

int cgroup_freeze(struct cgroup_manager *m, const char *id, bool frozen, char **path,
                  struct al_error *err)
{
	_cleanup_(sandbox_dirs_free) struct sandbox_dirs dirs = {0};
	uint64_t start = al_now_ms(), freeze_until = start + FREEZE_TIMEOUT_MS;
	uint64_t vfork_until = freeze_until;
	pid_t pair[2] = {0, 0};
	struct freezer f;
	int r;

	r = sandbox_freezer(m, id, &dirs, &f, err);
	if (r < 0)
		return r;
	if (!frozen) {
		r = knob_write(f.dir, f.file, f.thawed, err);
		return r < 0 ? al_error_prefix(err, "sandbox %s: thaw", id) : 0;
	}
	for (;;) {
		r = freezer_freeze(&f, freeze_until, err);
		if (r < 0) {
			freezer_thaw(&f);
			/* A retry that no longer freezes is still about the vfork. */
			if (pair[0] > 0 && r == -ETIMEDOUT)
				break;
			return al_error_prefix(err, "sandbox %s: freeze", id);
		}
		r = find_shared_address_space(f.dir, pair, err);
		if (r == 0)
			return freezer_path(&f, path, err);
		freezer_thaw(&f);
		if (r < 0)
			return al_error_prefix(err, "sandbox %s: freeze", id);
		/* A vfork child is normally a few microseconds from its exec:
		 * let it get there and try again. */
		if (al_now_ms() >= vfork_until)
			break;
		al_sleep_ms(1);
		/* Each new try may take as long to freeze as the first. */
		freeze_until = al_now_ms() + FREEZE_TIMEOUT_MS;
	}
	return al_error_set(
	    err, EBUSY,
	    "sandbox %s: processes %d and %d still share one address space after "
	    "%llu ms (a vfork() child that does not exec, or clone(CLONE_VM)): CRIU "
	    "cannot checkpoint them",
	    id, (int)pair[0], (int)pair[1], (unsigned long long)(al_now_ms() - start));
}

/* rmdir the cgroup at path and its descendants, children first.  data
 * points at the uint64_t deadline in al_now_ms() terms. */
static int remove_tree(const char *path, void *data, struct al_error *err)
{
	uint64_t deadline = *(const uint64_t *)data;
	int r;

	r = each_child_cgroup(path, remove_tree, data, err);
	if (r < 0)
		return r;
	/* The kernel may still be tearing down the last exited task. */
	while (rmdir(path) < 0) {
		if (errno == ENOENT)
			return 0;
		if (errno != EBUSY || al_now_ms() >= deadline)
			return al_error_errno(err, "rmdir %s", path);
		al_sleep_ms(10);
	}
	return 0;
}

int cgroup_destroy(struct cgroup_manager *m, const char *id, struct al_error *err)
{
	_cleanup_(sandbox_dirs_free) struct sandbox_dirs dirs = {0};
	uint64_t deadline = al_now_ms() + DESTROY_TIMEOUT_MS;
	struct freezer freezer;
	int r;

	r = sandbox_dirs_get(m, id, &dirs, err);
	if (r < 0)
		return r;
	freezer_find(m, &dirs, &freezer);
	/* cgroup.kill (Linux 5.14) kills the whole subtree atomically. */
	for (size_t i = 0; i < dirs.n; i++)
		if (knob_exists(dirs.path[i], "cgroup.kill"))
			(void)knob_write(dirs.path[i], "cgroup.kill", "1", NULL);

	for (unsigned delay = 1;; delay = delay < 50 ? delay * 2 : 50) {
		_cleanup_(pid_set_free) struct pid_set seen = {0};
		r = collect_all(&dirs, &seen, err);
		if (r < 0)
			return al_error_prefix(err, "sandbox %s", id);
		if (seen.n == 0)
			break;
		if (pid_set_has(&seen, getpid()))
			return al_error_set(err, EBUSY,
			                    "sandbox %s: refusing to kill the calling process %d, "
			                    "which is in the sandbox's cgroups",
			                    id, (int)getpid());
		if (al_now_ms() >= deadline)
			return al_error_set(
			    err, EBUSY,
			    "sandbox %s: %zu task(s) still in its cgroups after %d ms "
			    "(first: pid %d)",
			    id, seen.n, DESTROY_TIMEOUT_MS, (int)seen.pid[0]);
		/* A task stuck in the kernel can keep the group from freezing;
		 * kill anyway. */
		(void)freezer_freeze(&freezer, al_now_ms() + FREEZE_TIMEOUT_MS, NULL);
		r = kill_procs(&dirs, &seen, err);
		freezer_thaw(&freezer);
		if (r < 0)
			return al_error_prefix(err, "sandbox %s", id);
		al_sleep_ms(delay);
	}
	for (size_t i = 0; i < dirs.n; i++) {
		r = remove_tree(dirs.path[i], &deadline, err);
		if (r < 0)
			return al_error_prefix(err, "sandbox %s", id);
	}
	return 0;
}

/* ---- list --------------------------------------------------------------- */

int cgroup_list(struct cgroup_manager *m, char ***ids, struct al_error *err)
{
	/* Any valid name works for finding the roots. */
	_cleanup_(sandbox_dirs_free) struct sandbox_dirs dirs = {0};
	_cleanup_strv_ char **list = calloc(1, sizeof(char *));
	size_t n = 0;
	int r;

	if (!list)
		return al_error_set(err, ENOMEM, "out of memory");
	r = sandbox_dirs_get(m, "x", &dirs, err);
	if (r < 0)
		return r;
	for (size_t i = 0; i < dirs.n; i++) {
		_cleanup_closedir_ DIR *d = opendir(dirs.root[i]);
		struct dirent *de;

		if (!d) {
			if (errno == ENOENT)
				continue;
			return al_error_errno(err, "opendir %s", dirs.root[i]);
		}
		while ((de = readdir(d))) {
			bool dup = false;
			char **grown;
			if (de->d_type != DT_DIR || !al_valid_name(de->d_name))
				continue;
			for (size_t k = 0; k < n && !dup; k++)
				dup = !strcmp(list[k], de->d_name);
			if (dup)
				continue;
			grown = reallocarray(list, n + 2, sizeof(char *));
			if (!grown)
				return al_error_set(err, ENOMEM, "out of memory");
			list = grown;
			list[n + 1] = NULL;
			list[n] = strdup(de->d_name);
			if (!list[n])
				return al_error_set(err, ENOMEM, "out of memory");
			n++;
		}
	}
	if (n) /* qsort's array may not be NULL, even when empty */
		qsort(list, n, sizeof(char *), al_strv_cmp);
	*ids = TAKE_PTR(list);
	return 0;
}

int cgroup_remove_root_if_empty(struct cgroup_manager *m, struct al_error *err)
{
	_cleanup_(sandbox_dirs_free) struct sandbox_dirs dirs = {0};
	int r;

	r = sandbox_dirs_get(m, "x", &dirs, err);
	if (r < 0)
		return r;
	for (size_t i = 0; i < dirs.n; i++) {
		_cleanup_closedir_ DIR *d = opendir(dirs.root[i]);
		bool has_child = false;
		struct dirent *de;

		if (!d)
			continue;
		while (!has_child && (de = readdir(d)))
			has_child = de->d_type == DT_DIR && de->d_name[0] != '.';
		if (has_child)
			continue; /* a sandbox lives on */
		/* A just-removed child cgroup may still be dying in the kernel,
		 * which makes the parent EBUSY for a moment. */
		for (int tries = 0; rmdir(dirs.root[i]) < 0; tries++) {
			if (errno == ENOENT)
				break;
			if (errno != EBUSY || tries >= 100)
				return al_error_errno(err, "rmdir %s", dirs.root[i]);
			usleep(10000);
		}
	}
	return 0;
}
