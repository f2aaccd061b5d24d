/* SPDX-License-Identifier: Apache-2.0 */
/*
 * airlockd: the sandbox daemon.  Runs in the foreground as root, logs to
 * stderr, serves the v1 API on a Unix socket.  Stopping it (SIGTERM,
 * SIGINT, or a crash) leaves every sandbox running; the next airlockd on the
 * same state directory reattaches to them.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <grp.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/random.h>
#include <sys/sendfile.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <unistd.h>

#include "admission.h"
#include "api.h"
#include "cleanup.h"
#include "events.h"
#include "cgroup.h"
#include "log.h"
#include "lifecycle.h"
#include "registry.h"
#include "uidslots.h"
#include "util.h"

#ifndef AIRLOCK_PROFILES_DIR
#define AIRLOCK_PROFILES_DIR "/usr/share/airlock/seccomp-profiles"
#endif
#ifndef AIRLOCK_LIBEXEC_INIT
#define AIRLOCK_LIBEXEC_INIT "/usr/libexec/airlock/airlock-init"
#endif

#define DEFAULT_STATE_DIR "/var/lib/airlock/state"

struct options {
	const char *socket_path;
	const char *state_dir;
	const char *rootfs;
	const char *profiles_dir;
	const char *init_path;
	const char *group;
	unsigned long warm_pool;
	bool debug;
};

static void usage(FILE *f)
{
	fprintf(
	    f,
	    "Usage: airlockd [--socket PATH] [--state-dir DIR] [--rootfs DIR] [options]\n"
	    "\n"
	    "  --socket PATH       API socket (default /run/airlock/airlockd.sock)\n"
	    "  --state-dir DIR     sandbox state (default /var/lib/airlock/state)\n"
	    "  --rootfs DIR        default base rootfs (default /var/lib/airlock/rootfs/debian)\n"
	    "  --profiles DIR      seccomp profiles directory (default %s)\n"
	    "  --init PATH         airlock-init binary (default: next to airlockd, else %s)\n"
	    "  --group NAME        group whose members may use the socket (default: root only)\n"
	    "  --warm-pool N       keep N sandboxes made ahead for plain create requests\n"
	    "                      (default 0; at most 256)\n"
	    "  --client-rate N     requests a second each non-root client may make, in\n"
	    "                      bursts of 2N (default %d)\n"
	    "  --debug             verbose logging\n",
	    AIRLOCK_PROFILES_DIR, AIRLOCK_LIBEXEC_INIT, ADMISSION_RATE);
}

/*
 * airlock-init is exec'd from a sealed memfd: the binary that becomes PID
 * 1 of every sandbox can neither be replaced on disk under a running
 * daemon nor overwritten through /proc/PID/exe from inside (CVE-2019-5736).
 */
static int load_init_binary(const char *path, struct al_error *err)
{
	_cleanup_close_ int src = open(path, O_RDONLY | O_CLOEXEC);
	_cleanup_close_ int mfd = -1;
	struct stat st;
	off_t off = 0;

	if (src < 0)
		return al_error_errno(err, "open %s", path);
	if (fstat(src, &st) < 0)
		return al_error_errno(err, "stat %s", path);
	mfd = memfd_create("airlock-init", MFD_CLOEXEC | MFD_ALLOW_SEALING);
	if (mfd < 0)
		return al_error_errno(err, "memfd_create");
	while (off < st.st_size) {
		ssize_t n = sendfile(mfd, src, &off, (size_t)(st.st_size - off));
		if (n <= 0)
			return al_error_errno(err, "copy %s", path);
	}
	if (fchmod(mfd, 0555) < 0)
		return al_error_errno(err, "fchmod memfd");
	if (fcntl(mfd, F_ADD_SEALS, F_SEAL_SEAL | F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_WRITE) < 0)
		return al_error_errno(err, "seal memfd");
	return TAKE_FD(mfd);
}

/*
 * The file bound at /dev/.init in every sandbox: a copy of airlock-pid1 in
 * /var/lib/airlock/pid1, named by its hash.  A bind mount shows its source
 * in the sandbox's /proc/self/mountinfo, and airlock-pid1's own path names
 * the install or build tree; the copy's names only this directory.  Named
 * by content, it is shared by every daemon of the host, and an upgrade adds
 * a file rather than changing one that running sandboxes have bound.  (Not
 * in /run: criu runs with a /run of its own, and a restore binds it again.)
 * Old copies are left for the daemons that may still restore with them;
 * the package's purge removes the directory.
 */
#define PID1_PUBLISH_DIR "/var/lib/airlock/pid1"

static int publish_pid1(const char *path, char **out, struct al_error *err)
{
	_cleanup_free_ char *data = NULL, *dest = NULL;
	char hash[65];
	size_t len = 0;
	struct stat st;
	int r;

	r = al_read_file(path, 64u << 20, &data, &len, err);
	if (r < 0)
		return r;
	al_sha256_hex(data, len, hash);
	if (asprintf(&dest, "%s/airlock-pid1-%.16s", PID1_PUBLISH_DIR, hash) < 0)
		return al_error_set(err, ENOMEM, "out of memory");
	if (al_mkdir_p(PID1_PUBLISH_DIR, 0755, err) < 0)
		return -err->code;
	/* There already, from this daemon or another: the same bytes by name.
	 * Not ours to trust blindly: it must be root's and not writable. */
	if (lstat(dest, &st) == 0 && S_ISREG(st.st_mode) && st.st_uid == 0 &&
	    !(st.st_mode & 0222) && (size_t)st.st_size == len) {
		*out = TAKE_PTR(dest);
		return 0;
	}
	r = al_write_file_atomic(dest, data, len, 0555, err);
	if (r < 0)
		return al_error_prefix(err, "publish airlock-pid1");
	*out = TAKE_PTR(dest);
	return 0;
}

static char *find_init(const char *given)
{
	char self[PATH_MAX], *slash, *cand = NULL;
	ssize_t n;

	if (given)
		return strdup(given);
	n = readlink("/proc/self/exe", self, sizeof(self) - 1);
	if (n > 0) {
		self[n] = '\0';
		slash = strrchr(self, '/');
		if (slash) {
			*slash = '\0';
			if (asprintf(&cand, "%s/airlock-init", self) >= 0 &&
			    access(cand, X_OK) == 0)
				return cand;
			free(cand);
		}
	}
	return strdup(AIRLOCK_LIBEXEC_INIT);
}

static char *find_criu_version(void)
{
	char line[128], *v = NULL;
	FILE *f = popen("criu --version 2>/dev/null", "re");

	if (!f)
		return NULL;
	while (fgets(line, sizeof(line), f)) {
		if (!strncmp(line, "Version: ", 9)) {
			line[strcspn(line, "\n")] = '\0';
			free(v);
			v = strdup(line + 9);
		}
	}
	pclose(f);
	return v;
}

/* Bind the API socket; a stale socket file from a dead daemon is replaced,
 * a live one is an error (two daemons must not share a state dir). */
static int listen_api(const char *path, gid_t gid, struct al_error *err)
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

/*
 * One airlockd per state directory: a second would reattach the first's
 * sandboxes, remove its half-made ones and collect its snapshots' packs.
 * The lock is held for our lifetime (the fd is close-on-exec; the children
 * that hold it before their exec die with us).
 */
static int lock_state_dir(struct daemon *ctx, const char *state, struct al_error *err)
{
	char path[PATH_MAX], pid[32];
	int fd;

	snprintf(path, sizeof(path), "%s/airlockd.lock", state);
	fd = open(path, O_RDWR | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0600);
	if (fd < 0)
		return al_error_errno(err, "open %s", path);
	ctx->state_lock_fd = fd;
	if (flock(fd, LOCK_EX | LOCK_NB) < 0) {
		char holder[48] = "";
		ssize_t n;

		if (errno != EWOULDBLOCK)
			return al_error_errno(err, "lock %s", path);
		n = pread(fd, pid, sizeof(pid) - 1, 0);
		pid[n > 0 ? n : 0] = '\0';
		pid[strcspn(pid, "\n")] = '\0';
		if (pid[0])
			snprintf(holder, sizeof(holder), " (pid %s)", pid);
		return al_error_set(err, EBUSY,
		                    "state directory %s is in use by another airlockd%s", state,
		                    holder);
	}
	snprintf(pid, sizeof(pid), "%d\n", (int)getpid());
	if (ftruncate(fd, 0) < 0 || pwrite(fd, pid, strlen(pid), 0) < 0)
		log_warn("write %s: %m", path);
	return 0;
}

static int setup_daemon(struct daemon *ctx, const struct options *o, struct al_error *err)
{
	_cleanup_free_ char *init_path = NULL;
	char *state;
	int r;

	r = al_mkdir_p(o->state_dir, 0700, err);
	if (r < 0)
		return r;
	state = realpath(o->state_dir, NULL);
	if (!state)
		return al_error_errno(err, "realpath %s", o->state_dir);
	ctx->host.state_dir = state;
	/* Paths below it (snapshots, layers) are built in PATH_MAX buffers. */
	if (strlen(state) > 1024)
		return al_error_set(err, ENAMETOOLONG,
		                    "state directory %s is too long (at most 1024 characters)",
		                    state);
	chmod(state, 0700);
	r = lock_state_dir(ctx, state, err);
	if (r < 0)
		return r;
	if (asprintf(&ctx->host.sandboxes_dir, "%s/sandboxes", state) < 0 ||
	    asprintf(&ctx->host.seccomp_cache_dir, "%s/seccomp", state) < 0)
		return al_error_set(err, ENOMEM, "out of memory");
	if (al_mkdir_p(ctx->host.sandboxes_dir, 0700, err) < 0 ||
	    al_mkdir_p(ctx->host.seccomp_cache_dir, 0700, err) < 0)
		return -err->code;
	ctx->host.default_rootfs = strdup(o->rootfs);
	ctx->host.profiles_dir = strdup(o->profiles_dir);
	if (!ctx->host.default_rootfs || !ctx->host.profiles_dir)
		return al_error_set(err, ENOMEM, "out of memory");
	init_path = find_init(o->init_path);
	r = load_init_binary(init_path, err);
	if (r < 0)
		return r;
	ctx->host.init_memfd = r;
	ctx->host.daemon_pidfd = (int)syscall(SYS_pidfd_open, getpid(), 0);
	if (ctx->host.daemon_pidfd < 0)
		return al_error_errno(err, "pidfd_open of airlockd itself");
	/* airlock-pid1 is installed next to airlock-init. */
	{
		char *slash = strrchr(init_path, '/');
		if (asprintf(&ctx->host.pid1_path, "%.*s/airlock-pid1",
		             slash ? (int)(slash - init_path) : 1, slash ? init_path : ".") < 0)
			return al_error_set(err, ENOMEM, "out of memory");
		if (access(ctx->host.pid1_path, X_OK) < 0)
			return al_error_errno(err, "%s", ctx->host.pid1_path);
		r = publish_pid1(ctx->host.pid1_path, &ctx->host.pid1_bind_path, err);
		if (r < 0)
			return r;
		/* The shim for criu (criu_passcred_shim.c) is installed there too. */
		if (asprintf(&ctx->host.criu_shim_path, "%.*s/airlock-criu-shim.so",
		             slash ? (int)(slash - init_path) : 1, slash ? init_path : ".") < 0)
			return al_error_set(err, ENOMEM, "out of memory");
		if (access(ctx->host.criu_shim_path, R_OK) < 0) {
			free(ctx->host.criu_shim_path);
			ctx->host.criu_shim_path = NULL;
		}
	}
	ctx->host.criu_version = find_criu_version();
	r = cgroup_manager_open(NULL, &ctx->host.cgroups, err);
	if (r < 0)
		return al_error_prefix(err, "cgroups");
	/* The default state directory owns "airlock"; any other gets a root
	 * of its own, named after it, so test daemons never touch each other. */
	if (strcmp(state, DEFAULT_STATE_DIR) != 0) {
		char hash[65], name[32];
		al_sha256_hex(state, strlen(state), hash);
		snprintf(name, sizeof(name), "airlock-%.12s", hash);
		r = cgroup_manager_set_root(ctx->host.cgroups, name, err);
		if (r < 0)
			return r;
	}
	r = uid_slots_open(UID_SLOTS_DIR, state, &ctx->registry.slots, err);
	if (r < 0)
		return al_error_prefix(err, "uid ranges");
	return lifecycle_load(ctx, err);
}

/* What setup_daemon and the registry hold, once every thread that reads them
 * has stopped.  The sandboxes themselves keep running: only airlockd's record
 * of them goes (the next airlockd reattaches from their state files). */
static void daemon_free(struct daemon *ctx)
{
	events_stop();
	uid_slots_free(ctx->registry.slots);
	ctx->registry.slots = NULL;
	registry_destroy(&ctx->registry);
	if (ctx->state_lock_fd >= 0)
		close(ctx->state_lock_fd);
	cgroup_manager_free(ctx->host.cgroups);
	ctx->host.cgroups = NULL;
	free(ctx->host.state_dir);
	free(ctx->host.sandboxes_dir);
	free(ctx->host.seccomp_cache_dir);
	free(ctx->host.default_rootfs);
	free(ctx->host.profiles_dir);
	free(ctx->host.pid1_path);
	free(ctx->host.pid1_bind_path);
	free(ctx->host.criu_version);
	free(ctx->host.criu_shim_path);
	if (ctx->host.init_memfd >= 0)
		close(ctx->host.init_memfd);
	if (ctx->host.daemon_pidfd >= 0)
		close(ctx->host.daemon_pidfd);
	*ctx = (struct daemon){.host.init_memfd = -1, .host.daemon_pidfd = -1, .state_lock_fd = -1};
}

/*
 * airlockd holds a pidfd per sandbox (and, during an exec, a few more): with
 * the usual soft limit of 1024 it could not run a thousand sandboxes.  Raise
 * the soft limit to the hard one, and remember the inherited value, which
 * sandboxes get back (a huge soft limit slows programs that close every
 * possible fd).
 */
static void raise_nofile(struct daemon *ctx)
{
	struct rlimit rl;

	if (getrlimit(RLIMIT_NOFILE, &rl) < 0) {
		ctx->host.sandbox_nofile = (struct rlimit){1024, 1024};
		return;
	}
	ctx->host.sandbox_nofile = rl;
	if (rl.rlim_cur < rl.rlim_max) {
		/* An infinite hard limit still stops at fs.nr_open (2^20 by default). */
		rl.rlim_cur = rl.rlim_max == RLIM_INFINITY ? (rlim_t)1 << 20 : rl.rlim_max;
		if (setrlimit(RLIMIT_NOFILE, &rl) < 0)
			log_warn("cannot raise the open files limit to %llu: %m",
			         (unsigned long long)rl.rlim_cur);
	}
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < 8192)
		log_warn("open files limit is %llu: at most about %llu sandboxes",
		         (unsigned long long)rl.rlim_cur,
		         (unsigned long long)(rl.rlim_cur > 64 ? rl.rlim_cur - 64 : 0));
}

/*
 * Every sandbox's user namespace is owned by host root, and the kernel
 * charges what its processes queue (signals, POSIX message queue bytes) to
 * the uid inside and to host root's own per-user counters too: one sandbox
 * took all of host root's queued signals and mqueue bytes (EAGAIN, EMFILE
 * for root).  What a user namespace may charge to its owner is capped by
 * the rlimits of the process that made it, airlockd (or criu, its child):
 * lowered here, sandboxes together can never take more than this of host
 * root's budgets (root's own limits are 819200 bytes and about 96000
 * signals on this host).  They also become each sandbox process's own
 * limits.  A namespace owned by the sandbox's own uid would give each
 * sandbox a budget of its own; docs/security.md says what blocks it.
 */
#define SANDBOX_SIGPENDING 4096
#define SANDBOX_MSGQUEUE (256u << 10)

static void bound_sandbox_budgets(void)
{
	static const struct {
		int resource;
		rlim_t max;
		const char *name;
	} limits[] = {
	    {RLIMIT_SIGPENDING, SANDBOX_SIGPENDING, "queued signals"},
	    {RLIMIT_MSGQUEUE, SANDBOX_MSGQUEUE, "POSIX message queue bytes"},
	};

	for (size_t i = 0; i < AL_ARRAY_SIZE(limits); i++) {
		struct rlimit rl;
		if (getrlimit(limits[i].resource, &rl) < 0)
			continue;
		if (rl.rlim_cur > limits[i].max)
			rl.rlim_cur = limits[i].max;
		if (rl.rlim_max > limits[i].max)
			rl.rlim_max = limits[i].max;
		if (setrlimit(limits[i].resource, &rl) < 0)
			log_warn("cannot bound the %s sandboxes may take from host root: %m",
			         limits[i].name);
	}
}

int main(int argc, char **argv)
{
	static const struct option longopts[] = {
	    {"socket", required_argument, NULL, 's'},
	    {"state-dir", required_argument, NULL, 'd'},
	    {"rootfs", required_argument, NULL, 'r'},
	    {"profiles", required_argument, NULL, 'p'},
	    {"init", required_argument, NULL, 'i'},
	    {"group", required_argument, NULL, 'g'},
	    {"warm-pool", required_argument, NULL, 'w'},
	    {"client-rate", required_argument, NULL, 'R'},
	    {"debug", no_argument, NULL, 'D'},
	    {"help", no_argument, NULL, 'h'},
	    {NULL, 0, NULL, 0},
	};
	struct options o = {
	    .socket_path = "/run/airlock/airlockd.sock",
	    .state_dir = DEFAULT_STATE_DIR,
	    .rootfs = "/var/lib/airlock/rootfs/debian",
	    .profiles_dir = AIRLOCK_PROFILES_DIR,
	};
	struct al_error err = AL_ERROR_INIT;
	struct daemon ctx = {.host.init_memfd = -1, .host.daemon_pidfd = -1, .state_lock_fd = -1};
	struct api_server *srv = NULL;
	gid_t gid = (gid_t)-1;
	size_t kept = 0;
	sigset_t mask;
	int c, fd, sig;

	al_log_set_ident("airlockd");
	while ((c = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
		switch (c) {
		case 's':
			o.socket_path = optarg;
			break;
		case 'd':
			o.state_dir = optarg;
			break;
		case 'r':
			o.rootfs = optarg;
			break;
		case 'p':
			o.profiles_dir = optarg;
			break;
		case 'i':
			o.init_path = optarg;
			break;
		case 'g':
			o.group = optarg;
			break;
		case 'w': {
			char *end = NULL;
			errno = 0;
			o.warm_pool = strtoul(optarg, &end, 10);
			if (errno || end == optarg || *end || optarg[0] == '-' ||
			    o.warm_pool > 256) {
				log_error("invalid --warm-pool '%s': expected 0..256", optarg);
				return 2;
			}
			break;
		}
		case 'R': {
			char *end = NULL;
			unsigned long rate;
			errno = 0;
			rate = strtoul(optarg, &end, 10);
			if (errno || end == optarg || *end || optarg[0] == '-' || rate == 0 ||
			    rate > ADMISSION_RATE_MAX) {
				log_error("invalid --client-rate '%s': expected 1..%d", optarg,
				          ADMISSION_RATE_MAX);
				return 2;
			}
			ctx.client_rate = (unsigned)rate;
			break;
		}
		case 'D':
			o.debug = true;
			break;
		case 'h':
			usage(stdout);
			return 0;
		default:
			usage(stderr);
			return 2;
		}
	}
	if (optind != argc) {
		usage(stderr);
		return 2;
	}
	if (o.debug)
		al_log_set_level(AL_LOG_DEBUG);
	if (geteuid() != 0) {
		log_error("airlockd must run as root");
		return 1;
	}
	if (o.group) {
		struct group *g = getgrnam(o.group);
		if (!g) {
			log_error("unknown group %s", o.group);
			return 1;
		}
		gid = g->gr_gid;
	}
	/* A client that goes away mid-response must not kill the daemon. */
	signal(SIGPIPE, SIG_IGN);
	sigemptyset(&mask);
	sigaddset(&mask, SIGTERM);
	sigaddset(&mask, SIGINT);
	sigaddset(&mask, SIGHUP);
	pthread_sigmask(SIG_BLOCK, &mask, NULL);
	raise_nofile(&ctx);
	bound_sandbox_budgets();
	registry_init(&ctx.registry);
	{
		/* Each daemon goes round the uid slots from its own place
		 * (registry.c, alloc_uid_slot_locked). */
		uint32_t start = 0;
		if (getrandom(&start, sizeof(start), 0) == (ssize_t)sizeof(start))
			ctx.registry.next_slot = start % AIRLOCK_UID_SLOTS;
	}

	if (setup_daemon(&ctx, &o, &err) < 0) {
		log_error("%s", err.msg);
		daemon_free(&ctx);
		return 1;
	}
	fd = listen_api(o.socket_path, gid, &err);
	if (fd < 0) {
		log_error("%s", err.msg);
		daemon_free(&ctx);
		return 1;
	}
	if (lifecycle_start_reaper(&ctx, &err) < 0) {
		log_error("%s", err.msg);
		close(fd);
		daemon_free(&ctx);
		return 1;
	}
	if (api_start(&ctx, fd, gid, &srv, &err) < 0) {
		log_error("%s", err.msg);
		close(fd);
		unlink(o.socket_path);
		lifecycle_stop(&ctx);
		daemon_free(&ctx);
		return 1;
	}
	if (lifecycle_start_pool(&ctx, o.warm_pool, &err) < 0) {
		log_error("%s", err.msg);
		api_stop(srv);
		unlink(o.socket_path);
		lifecycle_stop(&ctx);
		daemon_free(&ctx);
		return 1;
	}
	log_info("airlockd %s serving %s (state %s, cgroups %s, %zu sandboxes)", AIRLOCK_VERSION,
	         o.socket_path, ctx.host.state_dir,
	         cgroup_mode_name(cgroup_manager_mode(ctx.host.cgroups)),
	         registry_count_visible(&ctx.registry, 0));
	do
		sig = sigwaitinfo(&mask, NULL);
	while (sig < 0 && errno == EINTR);
	api_stop(srv);
	kept = registry_count_visible(&ctx.registry, 0);
	log_info("signal %d: stopping; %zu sandboxes keep running", sig, kept);
	unlink(o.socket_path);
	/* Unclaimed pool sandboxes are nobody's: they do not outlive us;
	 * destroyed sandboxes are torn down before we go (pool ones too). */
	lifecycle_stop(&ctx);
	/* Sandboxes keep running; only an empty root goes, so that test
	 * daemons on their own state directories leave no cgroup behind. */
	if (cgroup_remove_root_if_empty(ctx.host.cgroups, &err) < 0)
		log_warn("%s", err.msg);
	daemon_free(&ctx);
	return 0;
}
