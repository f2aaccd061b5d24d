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
#include <time.h>
#include <unistd.h>

#include "admission.h"
#include "api.h"
#include "cleanup.h"
#include "config.h"
#include "criu.h"
#include "events.h"
#include "images.h"
#include "cgroup.h"
#include "log.h"
#include "lifecycle.h"
#include "listen.h"
#include "network.h"
#include "registry.h"
#include "strv.h"
#include "uidslots.h"
#include "util.h"

/* Installed paths, from meson's directories (runtime/meson.build). */
#ifndef AIRLOCK_LIBEXEC_DIR
#define AIRLOCK_LIBEXEC_DIR "/usr/libexec/airlock"
#endif
#ifndef AIRLOCK_PROFILES_DIR
#define AIRLOCK_PROFILES_DIR "/usr/share/airlock/seccomp-profiles"
#endif
#ifndef AIRLOCK_STATE_ROOT
#define AIRLOCK_STATE_ROOT "/var/lib/airlock"
#endif
#ifndef AIRLOCK_CONFIG_FILE
#define AIRLOCK_CONFIG_FILE "/etc/airlock/airlockd.conf"
#endif

#define DEFAULT_STATE_DIR AIRLOCK_STATE_ROOT "/state"
#define DEFAULT_IMAGES_DIR AIRLOCK_STATE_ROOT "/images"
#define DEFAULT_ROOTFS AIRLOCK_STATE_ROOT "/rootfs/debian"
#define DEFAULT_SOCKET "/run/airlock/airlockd.sock"

struct options {
	const char *config_path;
	const char *socket_path;
	const char *state_dir;
	const char *rootfs;
	const char *images_dir;
	const char *profiles_dir;
	const char *init_path;
	const char *group;
	unsigned long warm_pool;
	unsigned client_rate;      /* 0: admission.c's default */
	const char *network_range; /* NULL: NETWORK_DEFAULT_RANGE */
	const char *dns_upstream;  /* NULL: /etc/resolv.conf's */
	long long criu_tmpfs_mib;  /* -1: criu.c's default */
	bool debug;
	bool help, version;
};

/*
 * The directory of the running airlockd when it is the build tree's
 * (runtime/ of the meson build it was built in), else NULL.  From there it
 * uses the helpers built next to it and the profiles of the source tree,
 * as the tests do; installed, the compiled-in paths.
 */
static const char *build_tree_dir(void)
{
#ifdef AIRLOCK_BUILD_DIR
	static char self[PATH_MAX];
	ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);
	char *slash;

	if (n <= 0)
		return NULL;
	self[n] = '\0';
	slash = strrchr(self, '/');
	if (!slash)
		return NULL;
	*slash = '\0';
	return strcmp(self, AIRLOCK_BUILD_DIR) == 0 ? self : NULL;
#else
	return NULL;
#endif
}

static const char *default_profiles_dir(void)
{
#ifdef AIRLOCK_SOURCE_PROFILES_DIR
	if (build_tree_dir())
		return AIRLOCK_SOURCE_PROFILES_DIR;
#endif
	return AIRLOCK_PROFILES_DIR;
}

static void usage(FILE *f)
{
	fprintf(
	    f,
	    "Usage: airlockd [--socket PATH] [--state-dir DIR] [--rootfs DIR] [options]\n"
	    "\n"
	    "  --config PATH       options from PATH, one KEY=VALUE per line, KEY a long\n"
	    "                      option below; the command line overrides them\n"
	    "                      (default %s, if it exists)\n"
	    "  --socket PATH       API socket (default " DEFAULT_SOCKET ");\n"
	    "                      ignored when systemd passes the socket (airlockd.socket)\n"
	    "  --state-dir DIR     sandbox state (default " DEFAULT_STATE_DIR ")\n"
	    "  --rootfs DIR        default base rootfs (default " DEFAULT_ROOTFS ")\n"
	    "  --images DIR        image store (default " DEFAULT_IMAGES_DIR " with the\n"
	    "                      default state directory, else STATE-DIR/images)\n"
	    "  --profiles DIR      seccomp profiles directory (default %s)\n"
	    "  --init PATH         airlock-init binary (default: next to airlockd, else %s)\n"
	    "  --group NAME        group whose members may use the socket (default: root only)\n"
	    "  --warm-pool N       keep N sandboxes made ahead for plain create requests\n"
	    "                      (default 0; at most 256)\n"
	    "  --client-rate N     requests a second each non-root client may make, in\n"
	    "                      bursts of 2N (default %d)\n"
	    "  --network-range CIDR  IPv4 range of allowlist sandboxes' links, a /30 each\n"
	    "                      by uid slot (default " NETWORK_DEFAULT_RANGE
	    "; a /18 holds all)\n"
	    "  --dns-upstream ADDR[:PORT]  resolver that answers allowlist sandboxes' allowed\n"
	    "                      host names (default: /etc/resolv.conf's first IPv4 one)\n"
	    "  --criu-tmpfs-max MIB  CRIU's images of a sandbox using at most MIB of\n"
	    "                      memory are made on a tmpfs, larger ones on disk\n"
	    "                      (default 64)\n"
	    "  --log-format FMT    text (default) or json: one JSON object per line, with\n"
	    "                      a line per request (client uid, sandbox, command, duration)\n"
	    "  --debug             verbose logging\n"
	    "  --version           print the version and exit\n",
	    AIRLOCK_CONFIG_FILE, default_profiles_dir(), AIRLOCK_LIBEXEC_DIR "/airlock-init",
	    ADMISSION_RATE);
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
#define PID1_PUBLISH_DIR AIRLOCK_STATE_ROOT "/pid1"

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
	return strdup(AIRLOCK_LIBEXEC_DIR "/airlock-init");
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
	/* Images are a daemon's own, as its sandboxes are: a test daemon's
	 * state directory holds its store. */
	if (o->images_dir)
		ctx->host.images_dir = strdup(o->images_dir);
	else if (!strcmp(state, DEFAULT_STATE_DIR))
		ctx->host.images_dir = strdup(DEFAULT_IMAGES_DIR);
	else if (asprintf(&ctx->host.images_dir, "%s/images", state) < 0)
		ctx->host.images_dir = NULL;
	if (!ctx->host.images_dir)
		return al_error_set(err, ENOMEM, "out of memory");
	r = image_store_open(ctx->host.images_dir, &ctx->images, err);
	if (r < 0)
		return r;
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
	r = lifecycle_load(ctx, err);
	if (r < 0)
		return r;
	return network_start(ctx, o->network_range, o->dns_upstream, err);
}

/* What setup_daemon and the registry hold, once every thread that reads them
 * has stopped.  The sandboxes themselves keep running: only airlockd's record
 * of them goes (the next airlockd reattaches from their state files). */
static void daemon_free(struct daemon *ctx)
{
	network_stop(ctx);
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
	free(ctx->host.images_dir);
	image_store_free(ctx->images);
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
 * The kernel charges what a sandbox's processes queue (signals, POSIX
 * message queue bytes) to the uid inside and to the owner of its user
 * namespace, the sandbox's own host uid (spawn.c).  What a namespace may
 * charge to its owner is capped by the rlimits of the process that made
 * it, airlockd (or criu, its child), and they become each sandbox
 * process's own limits: lowered here, a sandbox's budgets are these
 * (root's own limits are 819200 bytes and about 96000 signals on this
 * host), and they would still bound what sandboxes took of host root's
 * should a namespace be made by root (a criu without the shim).
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

static const struct option longopts[] = {
    {"config", required_argument, NULL, 'c'},
    {"socket", required_argument, NULL, 's'},
    {"state-dir", required_argument, NULL, 'd'},
    {"rootfs", required_argument, NULL, 'r'},
    {"profiles", required_argument, NULL, 'p'},
    {"images", required_argument, NULL, 'I'},
    {"init", required_argument, NULL, 'i'},
    {"group", required_argument, NULL, 'g'},
    {"warm-pool", required_argument, NULL, 'w'},
    {"client-rate", required_argument, NULL, 'R'},
    {"network-range", required_argument, NULL, 'N'},
    {"dns-upstream", required_argument, NULL, 'U'},
    {"criu-tmpfs-max", required_argument, NULL, 'T'},
    {"debug", no_argument, NULL, 'D'},
    {"help", no_argument, NULL, 'h'},
    {"version", no_argument, NULL, 'V'},
    {"log-format", required_argument, NULL, 'L'},
    {NULL, 0, NULL, 0},
};

/* Options in argv (a command line, or a configuration file's lines made
 * into one) into *o: 0, or 2 after a usage error (already reported). */
static int parse_options(int argc, char **argv, struct options *o)
{
	int c;

	optind = 0; /* glibc: a full rescan, as this runs more than once */
	while ((c = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
		switch (c) {
		case 'c':
			o->config_path = optarg;
			break;
		case 's':
			o->socket_path = optarg;
			break;
		case 'd':
			o->state_dir = optarg;
			break;
		case 'r':
			o->rootfs = optarg;
			break;
		case 'I':
			o->images_dir = optarg;
			break;
		case 'p':
			o->profiles_dir = optarg;
			break;
		case 'i':
			o->init_path = optarg;
			break;
		case 'g':
			o->group = optarg;
			break;
		case 'w': {
			char *end = NULL;
			errno = 0;
			o->warm_pool = strtoul(optarg, &end, 10);
			if (errno || end == optarg || *end || optarg[0] == '-' ||
			    o->warm_pool > 256) {
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
			o->client_rate = (unsigned)rate;
			break;
		}
		case 'N':
			o->network_range = optarg;
			break;
		case 'U':
			o->dns_upstream = optarg;
			break;
		case 'T': {
			char *end = NULL;
			errno = 0;
			o->criu_tmpfs_mib = strtoll(optarg, &end, 10);
			if (errno || end == optarg || *end || o->criu_tmpfs_mib < 0 ||
			    o->criu_tmpfs_mib > (1LL << 30)) {
				log_error("invalid --criu-tmpfs-max '%s': expected MiB, 0 or more",
				          optarg);
				return 2;
			}
			break;
		}
		case 'D':
			o->debug = true;
			break;
		case 'L':
			if (strcmp(optarg, "text") && strcmp(optarg, "json")) {
				log_error("invalid --log-format '%s': expected text or json",
				          optarg);
				return 2;
			}
			al_log_set_json(!strcmp(optarg, "json"));
			break;
		case 'h':
			o->help = true;
			break;
		case 'V':
			o->version = true;
			break;
		default:
			usage(stderr);
			return 2;
		}
	}
	if (optind != argc) {
		usage(stderr);
		return 2;
	}
	return 0;
}

/*
 * The configuration file, then the command line again, so that the command
 * line wins.  The file named by --config must exist; the default one may
 * not.  *config_args keeps the strings the options point into.
 */
static int load_config(int argc, char **argv, struct options *o, char ***config_args)
{
	static const char *const refused[] = {"config", "help", "version", NULL};
	struct al_error err = AL_ERROR_INIT;
	const char *path = o->config_path ? o->config_path : AIRLOCK_CONFIG_FILE;
	_cleanup_strv_ char **args = NULL, **file_argv = NULL;
	int r;

	r = config_load(path, longopts, refused, &args, &err);
	if (r == -ENOENT && !o->config_path)
		return 0;
	if (r < 0) {
		log_error("%s", err.msg);
		return 2;
	}
	/* getopt wants an argv: the program name, then the file's options. */
	if (al_strv_push(&file_argv, "airlockd") < 0) {
		log_error("out of memory");
		return 1;
	}
	for (char **a = args; *a; a++)
		if (al_strv_push(&file_argv, *a) < 0) {
			log_error("out of memory");
			return 1;
		}
	r = parse_options((int)al_strv_length(file_argv), file_argv, o);
	if (r != 0) {
		log_error("in %s", path);
		return r;
	}
	r = parse_options(argc, argv, o);
	if (r != 0)
		return r;
	*config_args = TAKE_PTR(file_argv);
	return 0;
}

int main(int argc, char **argv)
{
	struct options o = {
	    .criu_tmpfs_mib = -1,
	    .socket_path = DEFAULT_SOCKET,
	    .state_dir = DEFAULT_STATE_DIR,
	    .rootfs = DEFAULT_ROOTFS,
	    .profiles_dir = default_profiles_dir(),
	};
	struct al_error err = AL_ERROR_INIT;
	struct daemon ctx = {.host.init_memfd = -1, .host.daemon_pidfd = -1, .state_lock_fd = -1};
	struct api_server *srv = NULL;
	_cleanup_strv_ char **config_args = NULL;
	_cleanup_free_ char *activated_path = NULL;
	bool activated = false;
	gid_t gid = (gid_t)-1;
	size_t kept = 0;
	sigset_t mask;
	int fd, sig, r;

	al_log_set_ident("airlockd");
	r = parse_options(argc, argv, &o);
	if (r != 0)
		return r;
	if (o.help) {
		usage(stdout);
		return 0;
	}
	if (o.version) {
		printf("airlockd %s\n", AIRLOCK_VERSION);
		return 0;
	}
	r = load_config(argc, argv, &o, &config_args);
	if (r != 0)
		return r;
	if (o.debug)
		al_log_set_level(AL_LOG_DEBUG);
	ctx.client_rate = o.client_rate;
	if (o.criu_tmpfs_mib >= 0)
		criu_set_images_tmpfs_max((uint64_t)o.criu_tmpfs_mib << 20);
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
	/* Under systemd the socket is airlockd.socket's, which outlives us
	 * (clients queue on it through a restart): it is never unlinked. */
	fd = listen_api_from_systemd(&activated_path, &err);
	if (fd >= 0) {
		activated = true;
		if (activated_path)
			o.socket_path = activated_path;
	} else if (fd == -ENOENT) {
		fd = listen_api_socket(o.socket_path, gid, &err);
	}
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
		if (!activated)
			unlink(o.socket_path);
		lifecycle_stop(&ctx);
		daemon_free(&ctx);
		return 1;
	}
	if (lifecycle_start_pool(&ctx, o.warm_pool, &err) < 0) {
		log_error("%s", err.msg);
		api_stop(srv);
		if (!activated)
			unlink(o.socket_path);
		lifecycle_stop(&ctx);
		daemon_free(&ctx);
		return 1;
	}
	log_info("airlockd %s serving %s%s (state %s, cgroups %s, %zu sandboxes)", AIRLOCK_VERSION,
	         o.socket_path, activated ? " from systemd" : "", ctx.host.state_dir,
	         cgroup_mode_name(cgroup_manager_mode(ctx.host.cgroups)),
	         registry_count_visible(&ctx.registry, 0));
	/* The main thread waits for a stopping signal, and meanwhile, once a
	 * second, destroys the sandboxes whose ttl or idle_timeout passed. */
	for (;;) {
		const struct timespec tick = {.tv_sec = 1};
		sig = sigtimedwait(&mask, NULL, &tick);
		if (sig > 0)
			break;
		if (errno == EAGAIN)
			lifecycle_expire(&ctx, (int64_t)time(NULL));
	}
	api_stop(srv);
	kept = registry_count_visible(&ctx.registry, 0);
	log_info("signal %d: stopping; %zu sandboxes keep running", sig, kept);
	if (!activated)
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
