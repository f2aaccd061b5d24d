/* SPDX-License-Identifier: Apache-2.0 */
#include "test.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <sched.h>
#include <signal.h>
#include <stdbool.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/wait.h>
#include <unistd.h>

#include "cleanup.h"
#include "json.h"
#include "error.h"
#include "fsops.h"
#include "util.h"

#define TEST_UID 100000
#define TEST_GID 100001

/* snprintf that treats truncation as a broken test setup. */
#define FMT(buf, size, ...)                                                                        \
	do {                                                                                       \
		if ((size_t)snprintf(buf, size, __VA_ARGS__) >= (size_t)(size))                    \
			abort();                                                                   \
	} while (0)

static char base[PATH_MAX]; /* host scratch dir: the fake root and things outside it */
static char root[PATH_MAX]; /* base/root: what the sandbox sees as / */
static int rootfd = -1;
static bool proc_mounted;
static bool is_root;

/* A host path below dir (rotating buffers, so a few can be live at once). */
static const char *host(const char *dir, const char *rel)
{
	static char buf[8][PATH_MAX];
	static int next;
	char *p = buf[next++ % 8];

	FMT(p, PATH_MAX, "%s/%s", dir, rel);
	return p;
}

static void put(const char *path, const char *content)
{
	struct al_error err = AL_ERROR_INIT;

	if (al_write_file_atomic(path, content, strlen(content), 0644, &err) < 0) {
		fprintf(stderr, "setup: %s\n", err.msg);
		exit(1);
	}
}

static void must(int r, const char *what)
{
	if (r < 0) {
		perror(what);
		exit(1);
	}
}

static bool host_has(const char *path, const char *want)
{
	struct al_error err = AL_ERROR_INIT;
	_cleanup_free_ char *data = NULL;

	if (al_read_file(path, 1 << 20, &data, NULL, &err) < 0)
		return false;
	return !strcmp(data, want);
}

static bool host_missing(const char *path)
{
	struct stat st;
	return lstat(path, &st) < 0 && errno == ENOENT;
}

static mode_t host_mode(const char *path)
{
	struct stat st;
	return lstat(path, &st) < 0 ? (mode_t)-1 : st.st_mode & 07777;
}

static bool read_is(const char *cwd, const char *path, const char *want)
{
	struct al_error err = AL_ERROR_INIT;
	_cleanup_free_ char *data = NULL;
	size_t len = 0;
	int r = fsops_read(rootfd, cwd, path, 1 << 20, &data, &len, &err);

	if (r < 0) {
		fprintf(stderr, "  read %s (cwd %s): %s\n", path, cwd, err.msg);
		return false;
	}
	return len == strlen(want) && !memcmp(data, want, len);
}

static int read_code(const char *cwd, const char *path, size_t max)
{
	struct al_error err = AL_ERROR_INIT;
	_cleanup_free_ char *data = NULL;
	size_t len = 0;

	return fsops_read(rootfd, cwd, path, max, &data, &len, &err);
}

static int write_str(const char *cwd, const char *path, const char *content, bool parents)
{
	struct al_error err = AL_ERROR_INIT;

	return fsops_write(rootfd, cwd, path, content, strlen(content), 0644, parents, (uid_t)-1,
	                   (gid_t)-1, &err);
}

/*
 * The fake sandbox root:
 *   root/escape -> /            root/up -> ../../..      root/abs -> <base>/outdir
 *   root/linkdir -> dir         root/dir/a.txt           root/fifo
 *   root/etc/passwd             root/workspace/up -> ../../..
 * and outside it <base>/x, <base>/outdir/keep.
 */
static void setup(void)
{
	FMT(root, sizeof(root), "%s/root", base);
	if (mkdir(root, 0755) < 0 && errno != EEXIST)
		must(-1, root);
	put(host(base, "x"), "outside-x");
	must(mkdir(host(base, "outdir"), 0755), "outdir");
	put(host(base, "outdir/keep"), "keep");

	must(mkdir(host(root, "workspace"), 0755), "workspace");
	must(mkdir(host(root, "etc"), 0755), "etc");
	put(host(root, "etc/passwd"), "inside-passwd");
	must(mkdir(host(root, "dir"), 0755), "dir");
	put(host(root, "dir/a.txt"), "abc");
	must(symlink("/", host(root, "escape")), "escape");
	must(symlink("../../..", host(root, "up")), "up");
	must(symlink("../../..", host(root, "workspace/up")), "workspace/up");
	must(symlink(host(base, "outdir"), host(root, "abs")), "abs");
	must(symlink("dir", host(root, "linkdir")), "linkdir");
	must(mkfifo(host(root, "fifo"), 0644), "fifo");
}

TEST(read_confined)
{
	CHECK(read_is("/", "/etc/passwd", "inside-passwd"));
	CHECK(read_is("/", "/../../etc/passwd", "inside-passwd"));
	CHECK(read_is("/", "escape/etc/passwd", "inside-passwd"));
	CHECK(read_is("/workspace", "../escape/etc/passwd", "inside-passwd"));
	CHECK(read_is("/workspace", "up/etc/passwd", "inside-passwd"));
	CHECK(read_is("/workspace", "../../../../../etc/passwd", "inside-passwd"));
	CHECK(read_is("/", "linkdir/a.txt", "abc"));
	/* <base>/x exists on the host, one level above the root: never reachable. */
	CHECK_INT(read_code("/workspace", "../../x", 100), -ENOENT);
	CHECK_INT(read_code("/workspace", "up/x", 100), -ENOENT);
	CHECK_INT(read_code("/", "up/up/x", 100), -ENOENT);
	CHECK_INT(read_code("/", "escape/../x", 100), -ENOENT);
	/* An absolute host path in a symlink means the same path inside the root. */
	CHECK_INT(read_code("/", "abs/keep", 100), -ENOENT);
}

TEST(read_refusals)
{
	struct al_error err = AL_ERROR_INIT;
	char *data = NULL;
	size_t len;

	/* A FIFO without a writer would block a plain open(); the alarm makes a
	 * hang a failure instead of a stuck test. */
	alarm(10);
	CHECK_INT(fsops_read(rootfd, "/", "/fifo", 100, &data, &len, &err), -EINVAL);
	CHECK(strstr(err.msg, "/fifo") != NULL);
	alarm(0);
	CHECK_INT(fsops_read(rootfd, "/", "dir", 100, &data, &len, &err), -EINVAL);
	CHECK(strstr(err.msg, "/dir") != NULL);
	CHECK_INT(fsops_read(rootfd, "/", "escape", 100, &data, &len, &err), -EINVAL);
	CHECK_INT(fsops_read(rootfd, "/", "/etc/passwd", 5, &data, &len, &err), -EFBIG);
	CHECK_INT(fsops_read(rootfd, "/", "/nope", 5, &data, &len, &err), -ENOENT);
	CHECK(strstr(err.msg, "/nope") != NULL);
	CHECK_INT(fsops_read(rootfd, "/", "", 5, &data, &len, &err), -EINVAL);
	CHECK_INT(fsops_read(rootfd, "relative", "x", 5, &data, &len, &err), -EINVAL);
	CHECK(data == NULL);
	if (!is_root)
		SKIP("device node refusal not checked: mknod needs root");
	must(mknod(host(root, "null"), S_IFCHR | 0666, makedev(1, 3)), "mknod");
	CHECK_INT(fsops_read(rootfd, "/", "/null", 100, &data, &len, &err), -EINVAL);
	unlink(host(root, "null"));
}

/* /proc/self/root inside the sandbox's own /proc is a magic link to the reader's
 * (the daemon's) root: the walk stops before it, at the /proc mount
 * (RESOLVE_NO_XDEV, EXDEV), and RESOLVE_NO_MAGICLINKS would stop it there
 * (ELOOP). */
TEST(magic_links)
{
	struct al_error err = AL_ERROR_INIT;
	_cleanup_free_ char *data = NULL;
	size_t len;
	int r;

	if (!proc_mounted)
		SKIP("needs root to mount a procfs inside the fake root");
	r = fsops_read(rootfd, "/", "/proc/self/root/etc/hostname", 1 << 20, &data, &len, &err);
	CHECK(r == -EXDEV || r == -ELOOP);
	CHECK(data == NULL);
	must(symlink("/proc/self/root", host(root, "workspace/magic")), "magic symlink");
	r = fsops_write(rootfd, "/workspace", "magic/airlock-fsops-magic", "x", 1, 0644, false,
	                (uid_t)-1, (gid_t)-1, &err);
	CHECK(r == -EXDEV || r == -ELOOP);
	CHECK(host_missing("/airlock-fsops-magic"));
	unlink(host(root, "workspace/magic"));
}

TEST(write_confined)
{
	struct al_error err = AL_ERROR_INIT;
	char name[64], inside[PATH_MAX];

	/* escape -> "/" resolves to the root: the file lands in ROOT, never in the host's /. */
	FMT(name, sizeof(name), "airlock-fsops-%d", (int)getpid());
	FMT(inside, sizeof(inside), "escape/%s", name);
	CHECK(host_missing(host("", name)));
	CHECK_INT(write_str("/", inside, "via-escape", false), 0);
	CHECK(host_has(host(root, name), "via-escape"));
	CHECK(host_missing(host("", name)));
	unlink(host(root, name));

	/* up -> ../../.. stops at the root: ROOT/x, while <base>/x is untouched. */
	CHECK_INT(write_str("/workspace", "up/x", "new-x", false), 0);
	CHECK(host_has(host(root, "x"), "new-x"));
	CHECK(host_has(host(base, "x"), "outside-x"));
	CHECK_INT(write_str("/workspace", "../../../x2", "x2", false), 0);
	CHECK(host_has(host(root, "x2"), "x2"));
	CHECK(host_missing(host(base, "x2")));

	/* abs -> <base>/outdir means ROOT<base>/outdir, which does not exist: the
	 * write fails, even with parents (like mkdir -p through a dangling symlink),
	 * and the host directory is never written. */
	CHECK_INT(write_str("/", "abs/keep", "hijacked", false), -ENOENT);
	CHECK(write_str("/", "abs/keep", "hijacked", true) < 0);
	CHECK(host_has(host(base, "outdir/keep"), "keep"));
	{
		char in_root[PATH_MAX];
		FMT(in_root, sizeof(in_root), "%s%s", root, host(base, "outdir"));
		CHECK(host_missing(in_root));
	}

	/* The last component: never followed, never replaced unless a regular file. */
	CHECK_INT(write_str("/", "escape", "x", false), -ELOOP);
	CHECK(readlink(host(root, "escape"), name, sizeof(name)) == 1);
	CHECK_INT(write_str("/", "linkdir", "x", false), -ELOOP);
	CHECK_INT(write_str("/", "dir", "x", false), -EISDIR);
	CHECK_INT(write_str("/", "dir/", "x", false), -EISDIR);
	CHECK_INT(write_str("/", "fifo", "x", false), -EINVAL);
	CHECK_INT(write_str("/", "/", "x", false), -EISDIR);
	CHECK_INT(write_str("/", "dir/..", "x", false), -EINVAL);
	CHECK_INT(write_str("/workspace", "no/such/dir/f", "x", false), -ENOENT);
	CHECK(host_has(host(root, "dir/a.txt"), "abc"));

	/* Mode without setuid/setgid; new files and parents owned as asked. */
	CHECK_INT(fsops_write(rootfd, "/workspace", "p/q/m.sh", "#!", 2, 06755, true,
	                      is_root ? TEST_UID : (uid_t)-1, is_root ? TEST_GID : (gid_t)-1, &err),
	          0);
	CHECK_INT(host_mode(host(root, "workspace/p/q/m.sh")), 0755);
	CHECK_INT(host_mode(host(root, "workspace/p")), 0755);
	if (is_root) {
		struct stat st;
		CHECK(stat(host(root, "workspace/p/q/m.sh"), &st) == 0 && st.st_uid == TEST_UID &&
		      st.st_gid == TEST_GID);
		CHECK(stat(host(root, "workspace/p"), &st) == 0 && st.st_uid == TEST_UID &&
		      st.st_gid == TEST_GID);
	}
}

TEST(write_atomic)
{
	struct al_error err = AL_ERROR_INIT;
	_cleanup_closedir_ DIR *d = NULL;
	struct dirent *de;
	char old[16] = {0};
	int fd;

	CHECK_INT(write_str("/workspace", "atomic.txt", "old", false), 0);
	fd = open(host(root, "workspace/atomic.txt"), O_RDONLY | O_CLOEXEC);
	CHECK(fd >= 0);
	CHECK_INT(write_str("/workspace", "atomic.txt", "new content", false), 0);
	/* A reader that had the file open keeps the complete old version... */
	CHECK(read(fd, old, sizeof(old) - 1) == 3);
	CHECK_STR(old, "old");
	close(fd);
	/* ...and a new reader gets the complete new one. */
	CHECK(read_is("/workspace", "atomic.txt", "new content"));
	/* Replacing keeps working; an empty file is a file too. */
	CHECK_INT(fsops_write(rootfd, "/workspace", "atomic.txt", "", 0, 0600, false, (uid_t)-1,
	                      (gid_t)-1, &err),
	          0);
	CHECK(read_is("/workspace", "atomic.txt", ""));
	CHECK_INT(host_mode(host(root, "workspace/atomic.txt")), 0600);
	/* No temp file is left behind, after success or failure. */
	CHECK_INT(write_str("/", "dir", "x", false), -EISDIR);
	d = opendir(host(root, "workspace"));
	CHECK(d != NULL);
	while (d && (de = readdir(d)))
		CHECK(strncmp(de->d_name, ".airlock-tmp", 12) != 0);
}

TEST(mkdir)
{
	struct al_error err = AL_ERROR_INIT;
	char name[64], inside[PATH_MAX];
	uid_t uid = is_root ? TEST_UID : (uid_t)-1;
	gid_t gid = is_root ? TEST_GID : (gid_t)-1;
	struct stat st;

	CHECK_INT(fsops_mkdir(rootfd, "/workspace", "a/b/c", true, 0700, uid, gid, &err), 0);
	CHECK_INT(host_mode(host(root, "workspace/a/b/c")), 0700);
	CHECK_INT(host_mode(host(root, "workspace/a/b")), 0755);
	if (is_root)
		CHECK(stat(host(root, "workspace/a/b"), &st) == 0 && st.st_uid == TEST_UID &&
		      st.st_gid == TEST_GID);
	CHECK_INT(fsops_mkdir(rootfd, "/workspace", "a/b/c", true, 0700, uid, gid, &err), 0);
	CHECK_INT(fsops_mkdir(rootfd, "/workspace", "a/b/c", false, 0700, uid, gid, &err), -EEXIST);
	CHECK_INT(fsops_mkdir(rootfd, "/workspace", "q/r", false, 0755, uid, gid, &err), -ENOENT);
	CHECK(host_missing(host(root, "workspace/q")));
	CHECK_INT(fsops_mkdir(rootfd, "/", "linkdir", true, 0755, uid, gid, &err), 0);
	CHECK_INT(fsops_mkdir(rootfd, "/", "/", true, 0755, uid, gid, &err), 0);
	CHECK_INT(fsops_mkdir(rootfd, "/", "/etc/passwd", true, 0755, uid, gid, &err), -EEXIST);

	/* Through symlinks that point out of the root: created inside it. */
	FMT(name, sizeof(name), "airlock-fsops-dir-%d", (int)getpid());
	FMT(inside, sizeof(inside), "escape/%s/sub", name);
	CHECK_INT(fsops_mkdir(rootfd, "/", inside, true, 0755, uid, gid, &err), 0);
	CHECK_INT(host_mode(host(root, name)), 0755);
	CHECK(host_missing(host("", name)));
	CHECK_INT(fsops_mkdir(rootfd, "/workspace", "up/made", false, 0755, uid, gid, &err), 0);
	CHECK_INT(host_mode(host(root, "made")), 0755);
	CHECK(host_missing(host(base, "made")));
	/* mkdir -p through a dangling symlink fails (as mkdir -p does) and creates
	 * nothing at its host-absolute target. */
	must(symlink(host(base, "dangling-target"), host(root, "workspace/dangling")), "dangling");
	CHECK(fsops_mkdir(rootfd, "/workspace", "dangling/x", true, 0755, uid, gid, &err) < 0);
	CHECK(host_missing(host(base, "dangling-target")));
}

TEST(remove)
{
	struct al_error err = AL_ERROR_INIT;

	CHECK_INT(fsops_remove(rootfd, "/", "/", true, &err), -EINVAL);
	CHECK_INT(fsops_remove(rootfd, "/", "/..", true, &err), -EINVAL);
	CHECK_INT(fsops_remove(rootfd, "/workspace", "..", true, &err), -EINVAL);
	CHECK_INT(fsops_remove(rootfd, "/workspace", "up/..", true, &err), -EINVAL);
	CHECK_INT(fsops_remove(rootfd, "/", "", true, &err), -EINVAL);
	CHECK_INT(fsops_remove(rootfd, "/", "/nope", false, &err), -ENOENT);
	CHECK(strstr(err.msg, "/nope") != NULL);
	CHECK(host_has(host(root, "etc/passwd"), "inside-passwd"));

	/* A tree holding symlinks to a host directory: the links go, the target stays. */
	must(mkdir(host(root, "tree"), 0755), "tree");
	must(mkdir(host(root, "tree/sub"), 0755), "tree/sub");
	put(host(root, "tree/sub/f"), "f");
	must(symlink(host(base, "outdir"), host(root, "tree/out")), "tree/out");
	must(symlink("../../..", host(root, "tree/sub/rel")), "tree/sub/rel");
	must(symlink(host(base, "outdir"), host(root, "linkout")), "linkout");
	CHECK_INT(fsops_remove(rootfd, "/", "tree", false, &err), -ENOTEMPTY);
	CHECK_INT(fsops_remove(rootfd, "/", "tree", true, &err), 0);
	CHECK(host_missing(host(root, "tree")));
	CHECK_INT(fsops_remove(rootfd, "/", "linkout", true, &err), 0);
	CHECK(host_missing(host(root, "linkout")));
	CHECK(host_has(host(base, "outdir/keep"), "keep"));

	/* up/x is ROOT/x; the host's <base>/x stays. */
	put(host(root, "x"), "inside-x");
	CHECK_INT(fsops_remove(rootfd, "/workspace", "up/x", false, &err), 0);
	CHECK(host_missing(host(root, "x")));
	CHECK(host_has(host(base, "x"), "outside-x"));

	/* Removing a symlink to / removes the symlink, nothing else. */
	CHECK_INT(fsops_remove(rootfd, "/", "escape/", true, &err), 0);
	CHECK(host_missing(host(root, "escape")));
	CHECK(host_has(host(root, "etc/passwd"), "inside-passwd"));
	must(symlink("/", host(root, "escape")), "escape again");

	CHECK_INT(fsops_remove(rootfd, "/", "fifo2", false, &err), -ENOENT);
	must(mkdir(host(root, "empty"), 0755), "empty");
	CHECK_INT(fsops_remove(rootfd, "/", "empty", false, &err), 0);
	CHECK(host_missing(host(root, "empty")));
}

static const cJSON *find_listed(const cJSON *list, const char *name)
{
	const cJSON *e;

	cJSON_ArrayForEach(e, cJSON_GetObjectItemCaseSensitive(list, "entries"))
	{
		const cJSON *n = cJSON_GetObjectItemCaseSensitive(e, "name");
		if (cJSON_IsString(n) && !strcmp(n->valuestring, name))
			return e;
	}
	return NULL;
}

static const char *listed_str(const cJSON *list, const char *name, const char *field)
{
	const cJSON *e = find_listed(list, name);
	const cJSON *v = e ? cJSON_GetObjectItemCaseSensitive(e, field) : NULL;
	return cJSON_IsString(v) ? v->valuestring : "(missing)";
}

TEST(list)
{
	struct al_error err = AL_ERROR_INIT;
	_cleanup_cjson_ cJSON *top = NULL, *via_escape = NULL, *via_up = NULL, *dir = NULL;
	cJSON *out = NULL;
	const cJSON *e, *prev = NULL;
	_cleanup_free_ char *a = NULL, *b = NULL;

	CHECK_INT(fsops_list(rootfd, "/", "/", &top, &err), 0);
	if (!top)
		return;
	CHECK_STR(cJSON_GetObjectItemCaseSensitive(top, "path")->valuestring, "/");
	cJSON_ArrayForEach(e, cJSON_GetObjectItemCaseSensitive(top, "entries"))
	{
		const char *name = cJSON_GetObjectItemCaseSensitive(e, "name")->valuestring;
		if (prev)
			CHECK(strcmp(cJSON_GetObjectItemCaseSensitive(prev, "name")->valuestring,
			             name) < 0);
		prev = e;
	}
	CHECK_STR(listed_str(top, "escape", "type"), "symlink");
	CHECK_STR(listed_str(top, "dir", "type"), "dir");
	CHECK_STR(listed_str(top, "dir", "mode"), "0755");
	CHECK_STR(listed_str(top, "fifo", "type"), "other");
	CHECK_STR(listed_str(top, "etc", "type"), "dir");
	CHECK(find_listed(top, ".") == NULL && find_listed(top, "..") == NULL);

	/* Through symlinks that point out of the root: the root's own listing. */
	CHECK_INT(fsops_list(rootfd, "/", "escape", &via_escape, &err), 0);
	CHECK_INT(fsops_list(rootfd, "/workspace", "up/", &via_up, &err), 0);
	if (via_escape && via_up) {
		CHECK_STR(cJSON_GetObjectItemCaseSensitive(via_escape, "path")->valuestring,
		          "/escape");
		cJSON_DeleteItemFromObjectCaseSensitive(top, "path");
		cJSON_DeleteItemFromObjectCaseSensitive(via_escape, "path");
		cJSON_DeleteItemFromObjectCaseSensitive(via_up, "path");
		a = cJSON_PrintUnformatted(top);
		b = cJSON_PrintUnformatted(via_escape);
		CHECK(a && b && !strcmp(a, b));
		free(b);
		b = cJSON_PrintUnformatted(via_up);
		CHECK(a && b && !strcmp(a, b));
	}

	CHECK_INT(fsops_list(rootfd, "/", "/dir", &dir, &err), 0);
	if (dir) {
		const cJSON *f = find_listed(dir, "a.txt");
		CHECK(cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(dir, "entries")) == 1);
		CHECK(f && cJSON_GetObjectItemCaseSensitive(f, "size")->valuedouble == 3);
		CHECK_STR(listed_str(dir, "a.txt", "type"), "file");
		CHECK_STR(listed_str(dir, "a.txt", "mode"), "0644");
	}
	CHECK_INT(fsops_list(rootfd, "/", "/fifo", &out, &err), -ENOTDIR);
	CHECK_INT(fsops_list(rootfd, "/", "/nope", &out, &err), -ENOENT);
	CHECK_INT(fsops_list(rootfd, "/", "abs", &out, &err), -ENOENT);
	CHECK(out == NULL);
}

/* A procfs inside the fake root, in a private mount namespace of this process. */
static void mount_proc(void)
{
	char proc[PATH_MAX];

	FMT(proc, sizeof(proc), "%s/root/proc", base);
	must(mkdir(host(base, "root"), 0755), "root");
	must(mkdir(proc, 0755), "proc");
	if (mount("proc", proc, "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL) < 0) {
		perror("mount proc");
		return;
	}
	proc_mounted = true;
}

/*
 * The tests run in a child.  As root it is chrooted into the scratch directory
 * first, in a mount namespace of its own: should confinement ever break, what
 * escapes lands in the scratch directory (where the checks still see it as
 * outside the fake root) and not in the host's /.
 */
static int run_tests(void)
{
	if (is_root) {
		if (unshare(CLONE_NEWNS) < 0 ||
		    mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0 || chroot(base) < 0 ||
		    chdir("/") < 0) {
			perror("entering the scratch root");
			return 1;
		}
		base[0] = '\0';
		mount_proc();
	}
	setup();
	/* Opened after mount_proc(): an fd keeps the mount namespace it was opened in. */
	rootfd = open(root, O_PATH | O_DIRECTORY | O_CLOEXEC);
	must(rootfd, "open root");
	RUN(read_confined);
	RUN(read_refusals);
	RUN(magic_links);
	RUN(write_confined);
	RUN(write_atomic);
	RUN(mkdir);
	RUN(remove);
	RUN(list);
	close(rootfd);
	return test_main_result();
}

int main(void)
{
	struct al_error err = AL_ERROR_INIT;
	const char *tmp = getenv("TMPDIR");
	char scratch[PATH_MAX];
	int status = 0;
	pid_t pid;

	is_root = geteuid() == 0;
	FMT(base, sizeof(base), "%s/airlock-test-fsops-XXXXXX", tmp ? tmp : "/tmp");
	must(mkdtemp(base) ? 0 : -1, "mkdtemp");
	memcpy(scratch, base, sizeof(scratch));
	fflush(NULL);
	pid = fork();
	must(pid, "fork");
	if (pid == 0)
		_exit(run_tests());
	while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
		;
	/* The child's mount namespace, and the procfs in it, died with it. */
	if (al_rm_rf(scratch, &err) < 0)
		fprintf(stderr, "cleanup: %s\n", err.msg);
	if (WIFSIGNALED(status)) {
		fprintf(stderr, "test process killed by signal %d\n", WTERMSIG(status));
		return 1;
	}
	return WEXITSTATUS(status);
}
