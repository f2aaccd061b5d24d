/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Security primitives: seccomp profiles (compiled and enforced), capability
 * dropping, and loopback bring-up.  Every enforcement check runs in a forked
 * child, because a seccomp filter or a dropped capability cannot be undone.
 * Syscalls that must be denied are called with arguments that fail harmlessly
 * (ENOENT, ESRCH, ENOTTY) if the filter were missing, so a broken filter
 * shows up as a wrong errno and never as a changed host.
 */
#include "test.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/aio_abi.h>
#include <linux/capability.h>
#include <linux/keyctl.h>
#include <net/if.h>
#include <netinet/in.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdint.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/personality.h>
#include <sys/prctl.h>
#include <sys/ptrace.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "caps.h"
#include "cleanup.h"
#include "json.h"
#include "error.h"
#include "netlink.h"
#include "seccomp_profile.h"
#include "util.h"

#ifndef AF_VSOCK
#define AF_VSOCK 40
#endif
#ifndef AF_ALG
#define AF_ALG 38
#endif
#define X32_SYSCALL_BIT 0x40000000

/* A syscall that must fail with `expected` errno. */
#define CHECK_ERRNO(call, expected)                                                                \
	do {                                                                                       \
		errno = 0;                                                                         \
		long rc_ = (long)(call);                                                           \
		int errno_ = errno;                                                                \
		if (rc_ != -1 || errno_ != (expected)) {                                           \
			fprintf(stderr, "%s:%d: %s: %s returned %ld errno %d (%s), expected %s\n", \
			        __FILE__, __LINE__, test_current, #call, rc_, errno_,              \
			        strerror(errno_), #expected);                                      \
			test_failures++;                                                           \
		}                                                                                  \
	} while (0)

static const char *source_root(void)
{
	const char *root = getenv("AIRLOCK_SOURCE_ROOT");

	return root && *root ? root : ".";
}

static int compile_file(const char *path, const char *const *caps, struct al_bpf *bpf,
                        struct al_error *err)
{
	_cleanup_free_ char *json = NULL;
	size_t len = 0;
	int r;

	r = al_read_file(path, 1 << 22, &json, &len, err);
	if (r < 0)
		return r;
	return sc_profile_compile(json, len, caps, bpf, err);
}

static int compile_repo_profile(const char *name, struct al_bpf *bpf)
{
	struct al_error err = AL_ERROR_INIT;
	char path[4096];
	int r;

	snprintf(path, sizeof(path), "%s/seccomp-profiles/%s", source_root(), name);
	r = compile_file(path, al_default_caps, bpf, &err);
	if (r < 0)
		fprintf(stderr, "%s: %s\n", path, err.msg);
	return r;
}

static int compile_text(const char *json, const char *const *caps, struct al_bpf *bpf,
                        struct al_error *err)
{
	return sc_profile_compile(json, strlen(json), caps, bpf, err);
}

/*
 * Run fn in a forked child.  The child's CHECK failures become its exit
 * status (1), a SKIP becomes 77; the parent records both.
 */
static void in_child(void (*fn)(const void *arg), const void *arg)
{
	int status = 0;
	pid_t pid;

	fflush(NULL);
	pid = fork();
	if (pid < 0) {
		perror("fork");
		test_failures++;
		return;
	}
	if (pid == 0) {
		test_failures = 0;
		test_skips = 0;
		fn(arg);
		_exit(test_failures ? 1 : test_skips ? 77 : 0);
	}
	if (waitpid(pid, &status, 0) != pid) {
		perror("waitpid");
		test_failures++;
		return;
	}
	if (WIFEXITED(status) && WEXITSTATUS(status) == 77) {
		test_skips++;
		return;
	}
	if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
		fprintf(stderr, "%s: child failed (status 0x%x)\n", test_current, status);
		test_failures++;
	}
}

/* In a child: no_new_privs, then the filter.  Returns false (and records a failure) if not. */
static bool install(const struct al_bpf *bpf)
{
	struct al_error err = AL_ERROR_INIT;

	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0) {
		perror("PR_SET_NO_NEW_PRIVS");
		test_failures++;
		return false;
	}
	if (sc_install_bpf(bpf->prog, bpf->len, &err) < 0) {
		fprintf(stderr, "install: %s\n", err.msg);
		test_failures++;
		return false;
	}
	return true;
}

/* Run a syscall in a grandchild and return how it ended (for calls that should kill). */
#ifdef __x86_64__
static int status_of_grandchild_syscall(long nr)
{
	int status = 0;
	pid_t pid = fork();

	if (pid == 0) {
		syscall(nr);
		_exit(0);
	}
	if (pid < 0 || waitpid(pid, &status, 0) != pid)
		return -1;
	return status;
}
#endif

static void *thread_returns_arg(void *arg)
{
	return arg;
}

/* What must keep working under both shipped profiles. */
static void check_ordinary_syscalls_work(void)
{
	int fds[2], n = -1, status = -1;
	pthread_t thread;
	void *ret = NULL;
	pid_t pid;

	CHECK(getpid() > 0);
	CHECK_INT(pipe2(fds, O_CLOEXEC), 0);
	CHECK_INT(write(fds[1], "x", 1), 1);
	CHECK_INT(ioctl(fds[0], FIONREAD, &n), 0);
	CHECK_INT(n, 1);
	_cleanup_close_ int proc = open("/proc/self/status", O_RDONLY | O_CLOEXEC);
	CHECK(proc >= 0);
	close(fds[0]);
	close(fds[1]);

	/* fork() is clone without namespace flags. */
	pid = fork();
	if (pid == 0)
		_exit(7);
	CHECK(pid > 0);
	CHECK_INT(waitpid(pid, &status, 0), pid);
	CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 7);

	/* glibc tries clone3 for threads and must fall back to clone on ENOSYS. */
	CHECK_ERRNO(syscall(SYS_clone3, NULL, 0), ENOSYS);
	CHECK_INT(pthread_create(&thread, NULL, thread_returns_arg, (void *)0x5a), 0);
	CHECK_INT(pthread_join(thread, &ret), 0);
	CHECK(ret == (void *)0x5a);

	_cleanup_close_ int tcp = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	CHECK(tcp >= 0);
	_cleanup_close_ int unix_dgram = socket(AF_UNIX, SOCK_DGRAM, 0);
	CHECK(unix_dgram >= 0);
	CHECK(personality(0xffffffff) >= 0);
}

/* What both shipped profiles deny. */
static void check_common_denials(void)
{
	int fds[2];
	char c = 'x';

	CHECK_ERRNO(syscall(SYS_keyctl, KEYCTL_GET_KEYRING_ID, KEY_SPEC_SESSION_KEYRING, 0), EPERM);
	CHECK_ERRNO(syscall(SYS_add_key, "user", "airlock-test", "x", 1, KEY_SPEC_SESSION_KEYRING),
	            EPERM);
	CHECK_ERRNO(syscall(SYS_bpf, 0, NULL, 0), EPERM);
	CHECK_ERRNO(syscall(SYS_perf_event_open, NULL, 0, -1, -1, 0), EPERM);
	CHECK_ERRNO(syscall(SYS_userfaultfd, 0), EPERM);
	CHECK_ERRNO(unshare(CLONE_NEWUSER), EPERM);
	CHECK_ERRNO(unshare(CLONE_NEWNS), EPERM);
	CHECK_ERRNO(setns(0, CLONE_NEWNET), EPERM);
	/* Without the filter these fail with ENOENT: the target does not exist. */
	CHECK_ERRNO(mount("none", "/nonexistent-airlock-test", "tmpfs", 0, NULL), EPERM);
	CHECK_ERRNO(umount2("/nonexistent-airlock-test", 0), EPERM);
	CHECK_ERRNO(syscall(SYS_pivot_root, "/nonexistent-a", "/nonexistent-b"), EPERM);
	CHECK_ERRNO(syscall(SYS_open_tree, -1, "/nonexistent-airlock-test", 0), EPERM);
	CHECK_ERRNO(syscall(SYS_io_uring_setup, 1, NULL), EPERM);
	CHECK_ERRNO(syscall(SYS_open_by_handle_at, -1, NULL, 0), EPERM);
	CHECK_ERRNO(syscall(SYS_init_module, NULL, 0, ""), EPERM);
	CHECK_ERRNO(syscall(SYS_kexec_load, 0, 0, NULL, 0), EPERM);
	/* ESRCH without the filter: no such process. */
	CHECK_ERRNO(ptrace(PTRACE_PEEKUSER, 999999999, NULL, NULL), EPERM);
	CHECK_ERRNO(personality(ADDR_NO_RANDOMIZE), EPERM);

	/* On a pipe these are ENOTTY without the filter; nothing is ever typed anywhere. */
	CHECK_INT(pipe2(fds, O_CLOEXEC), 0);
	CHECK_ERRNO(ioctl(fds[0], TIOCSTI, &c), EPERM);
	CHECK_ERRNO(ioctl(fds[0], TIOCLINUX, &c), EPERM);
	/* The kernel truncates the request to 32 bits: high garbage must not slip through. */
	CHECK_ERRNO(syscall(SYS_ioctl, fds[0], (1UL << 32) | TIOCSTI, &c), EPERM);
	CHECK_ERRNO(ioctl(fds[0], TCGETS, &c), ENOTTY);
	close(fds[0]);
	close(fds[1]);

	/* A foreign ABI (x32 here) is not in the filter: the process dies. */
#ifdef __x86_64__
	int status = status_of_grandchild_syscall(X32_SYSCALL_BIT | SYS_getpid);
	CHECK(WIFSIGNALED(status) && WTERMSIG(status) == SIGSYS);
#endif
}

static void enforce_default(const void *arg)
{
	if (!install(arg))
		return;
	check_ordinary_syscalls_work();
	check_common_denials();
	/* default.json keeps netlink (getaddrinfo uses it) and the benign personalities. */
	_cleanup_close_ int nl = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, 0);
	CHECK(nl >= 0);
	CHECK(personality(PER_LINUX) >= 0);
	CHECK_ERRNO(socket(AF_VSOCK, SOCK_STREAM, 0), EPERM);
	CHECK_ERRNO(socket(AF_ALG, SOCK_SEQPACKET, 0), EPERM);
}

static void enforce_strict(const void *arg)
{
	if (!install(arg))
		return;
	check_ordinary_syscalls_work();
	check_common_denials();
	CHECK_ERRNO(socket(AF_NETLINK, SOCK_RAW, 0), EPERM);
	CHECK_ERRNO(socket(AF_NETLINK, SOCK_DGRAM, 0), EPERM);
	CHECK_ERRNO(socket(AF_PACKET, SOCK_DGRAM, 0), EPERM);
	CHECK_ERRNO(socket(AF_INET, SOCK_RAW, IPPROTO_ICMP), EPERM);
	CHECK_ERRNO(socket(AF_INET6, SOCK_RAW | SOCK_NONBLOCK, IPPROTO_ICMPV6), EPERM);
	CHECK_ERRNO(personality(PER_LINUX), EPERM);
	_cleanup_close_ int udp6 = socket(AF_INET6, SOCK_DGRAM | SOCK_NONBLOCK, 0);
	CHECK(udp6 >= 0);
	_cleanup_close_ int seqpacket = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
	CHECK(seqpacket >= 0);
}

TEST(shipped_profiles_compile)
{
	struct al_bpf def = {0}, strict = {0};

	CHECK_INT(compile_repo_profile("default.json", &def), 0);
	CHECK_INT(compile_repo_profile("strict.json", &strict), 0);
	CHECK(def.len > 0 && def.len % 8 == 0);
	CHECK(strict.len > 0 && strict.len % 8 == 0);
	al_bpf_free(&def);
	al_bpf_free(&strict);
	CHECK(def.prog == NULL && def.len == 0);
	al_bpf_free(&def); /* idempotent */
}

TEST(default_profile_enforced)
{
	struct al_bpf bpf = {0};

	if (compile_repo_profile("default.json", &bpf) < 0) {
		test_failures++;
		return;
	}
	in_child(enforce_default, &bpf);
	al_bpf_free(&bpf);
}

TEST(strict_profile_enforced)
{
	struct al_bpf bpf = {0};

	if (compile_repo_profile("strict.json", &bpf) < 0) {
		test_failures++;
		return;
	}
	in_child(enforce_strict, &bpf);
	al_bpf_free(&bpf);
}

/* Compile `json` and expect failure with errno `code` and a message containing `needle`. */
static void expect_compile_error(const char *json, int code, const char *needle, int line)
{
	struct al_error err = AL_ERROR_INIT;
	struct al_bpf bpf = {(void *)1, 1};
	int r = compile_text(json, NULL, &bpf, &err);

	if (r != -code || !strstr(err.msg, needle) || bpf.prog != NULL) {
		fprintf(stderr, "%s:%d: %s: got %d \"%s\", expected %d with \"%s\"\n", __FILE__,
		        line, test_current, r, err.msg, -code, needle);
		test_failures++;
	}
	al_bpf_free(&bpf);
}
#define EXPECT_COMPILE_ERROR(json, code, needle) expect_compile_error(json, code, needle, __LINE__)

TEST(malformed_profiles_name_the_problem)
{
	EXPECT_COMPILE_ERROR("{\"defaultAction\": \"SCMP_ACT_ERRNO\",\n \"syscalls\": [", EINVAL,
	                     "invalid JSON at line 2");
	EXPECT_COMPILE_ERROR("[]", EINVAL, "expected a JSON object");
	EXPECT_COMPILE_ERROR("{}", EINVAL, "defaultAction: expected a string");
	EXPECT_COMPILE_ERROR("{\"defaultAction\": \"SCMP_ACT_MAYBE\"}", EINVAL,
	                     "defaultAction: unknown action \"SCMP_ACT_MAYBE\"");
	EXPECT_COMPILE_ERROR("{\"defaultAction\": \"SCMP_ACT_ERRNO\", \"syscalls\": [{\"names\": "
	                     "[\"read\"], \"action\": \"SCMP_ACT_FROB\"}]}",
	                     EINVAL, "syscalls[0] (read): unknown action \"SCMP_ACT_FROB\"");
	EXPECT_COMPILE_ERROR("{\"defaultAction\": \"SCMP_ACT_ERRNO\", \"architectures\": "
	                     "[\"SCMP_ARCH_X86_64\", \"SCMP_ARCH_PDP11\"]}",
	                     EINVAL, "architectures[1]: unknown architecture \"SCMP_ARCH_PDP11\"");
	EXPECT_COMPILE_ERROR(
	    "{\"defaultAction\": \"SCMP_ACT_ERRNO\", \"syscalls\": [{\"names\": "
	    "[\"read\"], \"action\": \"SCMP_ACT_ALLOW\"}, {\"names\": [\"write\", "
	    "\"writev\"], \"action\": \"SCMP_ACT_ALLOW\", \"args\": [{\"index\": 0, "
	    "\"value\": 1, \"op\": \"SCMP_CMP_APPROX\"}]}]}",
	    EINVAL, "syscalls[1] (write, ...).args[0]: unknown op \"SCMP_CMP_APPROX\"");
	EXPECT_COMPILE_ERROR("{\"defaultAction\": \"SCMP_ACT_ERRNO\", \"syscalls\": [{\"name\": "
	                     "\"read\", \"action\": \"SCMP_ACT_ALLOW\", \"args\": [{\"index\": 6, "
	                     "\"value\": 1, \"op\": \"SCMP_CMP_EQ\"}]}]}",
	                     EINVAL, "args[0].index: 6 out of range");
	EXPECT_COMPILE_ERROR("{\"defaultAction\": \"SCMP_ACT_ERRNO\", \"syscalls\": [{\"name\": "
	                     "\"read\", \"action\": \"SCMP_ACT_ALLOW\", \"args\": [{\"index\": 0, "
	                     "\"value\": 18446744073709551615, \"op\": \"SCMP_CMP_EQ\"}]}]}",
	                     EINVAL, "args[0].value: 1.844674407370955");
	EXPECT_COMPILE_ERROR("{\"defaultAction\": \"SCMP_ACT_ERRNO\", \"syscalls\": [{\"name\": "
	                     "\"read\", \"action\": \"SCMP_ACT_ALLOW\", \"errnoRet\": 1}]}",
	                     EINVAL, "only valid with SCMP_ACT_ERRNO or SCMP_ACT_TRACE");
	EXPECT_COMPILE_ERROR("{\"defaultAction\": \"SCMP_ACT_ERRNO\", \"defaultErrnoRet\": 5000}",
	                     ERANGE, "return value 5000 out of range");
	EXPECT_COMPILE_ERROR("{\"defaultAction\": \"SCMP_ACT_ERRNO\", \"syscalls\": [{\"name\": "
	                     "\"read\", \"names\": [\"write\"], \"action\": \"SCMP_ACT_ALLOW\"}]}",
	                     EINVAL, "both \"name\" and \"names\"");
	EXPECT_COMPILE_ERROR("{\"defaultAction\": \"SCMP_ACT_ERRNO\", \"syscalls\": [{\"names\": "
	                     "[\"read\"], \"action\": \"SCMP_ACT_ALLOW\", \"includes\": "
	                     "{\"minKernel\": \"four\"}}]}",
	                     EINVAL, "includes.minKernel: \"four\" is not a kernel version");
	EXPECT_COMPILE_ERROR("{\"defaultAction\": \"SCMP_ACT_NOTIFY\"}", EINVAL,
	                     "cannot be the default action");
	EXPECT_COMPILE_ERROR("{\"defaultAction\": \"SCMP_ACT_ERRNO\", \"syscalls\": {}}", EINVAL,
	                     "syscalls: expected an array");
}

TEST(profile_leniency_matches_docker)
{
	struct al_error err = AL_ERROR_INIT;
	struct al_bpf bpf = {0};

	/* Unknown syscall names are skipped; archMap entries for other hosts are not resolved. */
	CHECK_INT(
	    compile_text("{\"defaultAction\": \"SCMP_ACT_ERRNO\", \"defaultErrnoRet\": 1, "
	                 "\"archMap\": [{\"architecture\": \"SCMP_ARCH_FUTURE64\", "
	                 "\"subArchitectures\": [\"SCMP_ARCH_FUTURE\"]}, {\"architecture\": "
	                 "\"SCMP_ARCH_X86_64\", \"subArchitectures\": null}], "
	                 "\"comment\": \"ignored\", \"syscalls\": [{\"names\": [\"read\", "
	                 "\"no_such_syscall_airlock\"], \"action\": \"SCMP_ACT_ALLOW\", "
	                 "\"args\": null, \"comment\": \"x\"}, {\"names\": [\"write\"], "
	                 "\"action\": \"SCMP_ACT_ERRNO\", \"errnoRet\": 1}, {\"names\": "
	                 "[\"close\"], \"action\": \"SCMP_ACT_ALLOW\", \"args\": [{\"index\": "
	                 "0, \"value\": \"0xffffffffffffffff\", \"op\": \"SCMP_CMP_NE\"}]}]}",
	                 NULL, &bpf, &err),
	    0);
	CHECK(bpf.len > 0);
	al_bpf_free(&bpf);
}

/* glibc's wrappers for these calls cannot fail (no errno), so they are made raw. */
static void enforce_conditions(const void *arg)
{
	if (!install(arg))
		return;
	/* Included: CAP_SYS_ADMIN kept, kernel >= 3.0, native arch named the Docker way. */
	CHECK_ERRNO(syscall(SYS_getppid), EXDEV);
	CHECK_ERRNO(syscall(SYS_getuid), ENOTSUP);
	CHECK_ERRNO(syscall(SYS_getgid), EL2HLT);
	/* Excluded or not included: CAP_SYS_BOOT not kept, kernel < 99.0, arch s390x. */
	CHECK(syscall(SYS_getegid) >= 0);
	CHECK(syscall(SYS_geteuid) >= 0);
	CHECK(syscall(SYS_getpgrp) > 0);
	/* Two conditions on one argument are two rules (runc's semantics): 0 or 1 fail. */
	CHECK_ERRNO(syscall(SYS_getpriority, 0, 0), EDOM);
	CHECK_ERRNO(syscall(SYS_getpriority, 1, 0), EDOM);
	CHECK(syscall(SYS_getpriority, 2, 0) != -1 || errno != EDOM);
}

TEST(capability_arch_and_kernel_conditions)
{
	static const char *const caps[] = {"cap_sys_admin", "CAP_Chown", NULL};
	struct al_error err = AL_ERROR_INIT;
	struct al_bpf bpf = {0};
	char json[4096];

	snprintf(json, sizeof(json),
	         "{\"defaultAction\": \"SCMP_ACT_ALLOW\", \"syscalls\": ["
	         "{\"names\": [\"getppid\"], \"action\": \"SCMP_ACT_ERRNO\", \"errnoRet\": %d,"
	         " \"includes\": {\"caps\": [\"CAP_SYS_ADMIN\"], \"minKernel\": \"3.0\"}},"
	         "{\"names\": [\"getuid\"], \"action\": \"SCMP_ACT_ERRNO\", \"errnoRet\": %d,"
	         " \"includes\": {\"arches\": [\"amd64\", \"arm64\"]}},"
	         "{\"names\": [\"getgid\"], \"action\": \"SCMP_ACT_ERRNO\", \"errnoRet\": %d,"
	         " \"excludes\": {\"caps\": [\"CAP_SYS_BOOT\"]}},"
	         "{\"names\": [\"getegid\"], \"action\": \"SCMP_ACT_ERRNO\","
	         " \"includes\": {\"caps\": [\"CAP_SYS_BOOT\"]}},"
	         "{\"names\": [\"geteuid\"], \"action\": \"SCMP_ACT_ERRNO\","
	         " \"includes\": {\"minKernel\": \"99.0\"}},"
	         "{\"names\": [\"getpgrp\"], \"action\": \"SCMP_ACT_ERRNO\","
	         " \"includes\": {\"arches\": [\"s390x\"]}},"
	         "{\"names\": [\"getpriority\"], \"action\": \"SCMP_ACT_ERRNO\", \"errnoRet\": %d,"
	         " \"args\": [{\"index\": 0, \"value\": 0, \"op\": \"SCMP_CMP_EQ\"},"
	         "            {\"index\": 0, \"value\": 1, \"op\": \"SCMP_CMP_EQ\"}]}]}",
	         EXDEV, ENOTSUP, EL2HLT, EDOM);
#ifndef __x86_64__
	SKIP("the arch condition in this test names amd64/arm64 only");
#endif
	if (compile_text(json, caps, &bpf, &err) < 0) {
		fprintf(stderr, "compile: %s\n", err.msg);
		test_failures++;
		return;
	}
	in_child(enforce_conditions, &bpf);
	al_bpf_free(&bpf);
}

static void enforce_docker_default(const void *arg)
{
	if (!install(arg))
		return;
	CHECK(getpid() > 0);
	CHECK_ERRNO(syscall(SYS_keyctl, KEYCTL_GET_KEYRING_ID, KEY_SPEC_SESSION_KEYRING, 0), EPERM);
	CHECK_ERRNO(mount("none", "/nonexistent-airlock-test", "tmpfs", 0, NULL), EPERM);
	CHECK_ERRNO(unshare(CLONE_NEWUSER), EPERM);
	CHECK_ERRNO(syscall(SYS_clone3, NULL, 0), ENOSYS);

	pid_t pid = fork();
	int status = -1;
	if (pid == 0)
		_exit(3);
	CHECK_INT(waitpid(pid, &status, 0), pid);
	CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 3);
}

TEST(docker_default_profile)
{
	const char *path = getenv("AIRLOCK_DOCKER_PROFILE");
	struct al_error err = AL_ERROR_INIT;
	struct al_bpf bpf = {0};

	if (!path || !*path)
		SKIP("AIRLOCK_DOCKER_PROFILE is not set (path to moby's "
		     "profiles/seccomp/default.json)");
	if (compile_file(path, al_default_caps, &bpf, &err) < 0) {
		fprintf(stderr, "%s: %s\n", path, err.msg);
		test_failures++;
		return;
	}
	in_child(enforce_docker_default, &bpf);
	al_bpf_free(&bpf);
}

/* Both programs of a split compile, stacked as a sandbox gets them, and
 * the errno io_setup must then answer. */
struct split_case {
	struct al_bpf logged, compat;
	int want;
};

static void enforce_split_io_setup(const void *arg)
{
	const struct split_case *c = arg;
	aio_context_t ctx = 0;

	/* The compat part first: it allows seccomp(), which the other may not. */
	if ((c->compat.len && !install(&c->compat)) || !install(&c->logged))
		return;
	CHECK_ERRNO(syscall(SYS_io_setup, 1, &ctx), c->want);
}

/*
 * io_setup answers ENOSYS whatever the profile says: it reserves Linux AIO
 * events of one count the whole host shares (Docker's profile allows it),
 * unless the profile is harsher (an EPERM of its own stays).
 */
TEST(io_setup_is_enosys_whatever_the_profile)
{
	/* NULL: Docker's own profile, which denies by default and allows
	 * io_setup by name (and, unlike a short hand-made list, all that a
	 * sanitizer's runtime needs in the child). */
	static const struct {
		const char *json;
		int want;
	} cases[] = {
	    {"{\"defaultAction\":\"SCMP_ACT_ALLOW\"}", ENOSYS},
	    {"{\"defaultAction\":\"SCMP_ACT_ALLOW\",\"syscalls\":[{\"names\":[\"io_setup\"],"
	     "\"action\":\"SCMP_ACT_ERRNO\",\"errnoRet\":1}]}",
	     EPERM},
	    {NULL, ENOSYS}, /* last: without the file, the test ends there as skipped */
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct al_error err = AL_ERROR_INIT;
		struct split_case c = {.want = cases[i].want};
		const char *docker = getenv("AIRLOCK_DOCKER_PROFILE");
		char *text = NULL;
		size_t len = 0;

		if (cases[i].json) {
			text = strdup(cases[i].json);
			len = text ? strlen(text) : 0;
		} else if (!docker || !*docker) {
			SKIP("AIRLOCK_DOCKER_PROFILE is not set (path to moby's "
			     "profiles/seccomp/default.json)");
		} else if (al_read_file(docker, 1 << 20, &text, &len, &err) < 0) {
			fprintf(stderr, "%s: %s\n", docker, err.msg);
			test_failures++;
			continue;
		}
		if (!text) {
			test_failures++;
			continue;
		}
		int r = sc_profile_compile_split(text, len, al_default_caps, &c.logged, &c.compat,
		                                 &err);
		free(text);
		if (r < 0) {
			fprintf(stderr, "compile case %zu: %s\n", i, err.msg);
			test_failures++;
			continue;
		}
		CHECK(c.compat.len > 0);
		in_child(enforce_split_io_setup, &c);
		al_bpf_free(&c.logged);
		al_bpf_free(&c.compat);
	}
}

/* The bounding mask al_default_caps must produce, from the kernel's numbers. */
static uint64_t default_caps_mask(void)
{
	static const int numbers[] = {
	    CAP_CHOWN,   CAP_DAC_OVERRIDE, CAP_FOWNER,  CAP_FSETID,           CAP_KILL,
	    CAP_SETGID,  CAP_SETUID,       CAP_SETPCAP, CAP_NET_BIND_SERVICE, CAP_SYS_CHROOT,
	    CAP_SETFCAP, CAP_AUDIT_WRITE,
	};
	uint64_t mask = 0;

	for (size_t i = 0; i < AL_ARRAY_SIZE(numbers); i++)
		mask |= UINT64_C(1) << numbers[i];
	return mask;
}

static uint64_t status_mask(const char *field)
{
	_cleanup_free_ char *status = NULL;
	struct al_error err = AL_ERROR_INIT;
	unsigned long long mask = ~0ULL;
	const char *line;

	if (al_read_file("/proc/self/status", 1 << 20, &status, NULL, &err) < 0)
		return mask;
	line = strstr(status, field);
	if (line)
		sscanf(line + strlen(field), "%llx", &mask);
	return mask;
}

static size_t json_array_len(const cJSON *obj, const char *key)
{
	const cJSON *a = cJSON_GetObjectItemCaseSensitive(obj, key);

	return cJSON_IsArray(a) ? (size_t)cJSON_GetArraySize(a) : (size_t)-1;
}

static bool json_array_has(const cJSON *obj, const char *key, const char *value)
{
	const cJSON *a = cJSON_GetObjectItemCaseSensitive(obj, key), *v;

	cJSON_ArrayForEach(v, a) if (cJSON_IsString(v) &&
	                             strcmp(v->valuestring, value) == 0) return true;
	return false;
}

static void apply_default_caps(const void *arg)
{
	struct al_error err = AL_ERROR_INIT;
	_cleanup_cjson_ cJSON *desc = NULL;

	(void)arg;
	if (caps_apply(al_default_caps, &err) < 0) {
		fprintf(stderr, "caps_apply: %s\n", err.msg);
		test_failures++;
		return;
	}
	CHECK_INT(status_mask("CapBnd:"), default_caps_mask());
	CHECK_INT(status_mask("CapEff:"), default_caps_mask());
	CHECK_INT(status_mask("CapPrm:"), default_caps_mask());
	CHECK_INT(status_mask("CapInh:"), 0);
	CHECK_INT(status_mask("CapAmb:"), 0);
	/* Without CAP_SYS_ADMIN this is EPERM (and would only affect this child otherwise). */
	CHECK_ERRNO(unshare(CLONE_NEWNS), EPERM);

	CHECK_INT(caps_describe(0, &desc, &err), 0);
	if (!desc)
		return;
	CHECK_INT(json_array_len(desc, "bounding"), 12);
	CHECK_INT(json_array_len(desc, "effective"), 12);
	CHECK_INT(json_array_len(desc, "permitted"), 12);
	CHECK_INT(json_array_len(desc, "inheritable"), 0);
	CHECK_INT(json_array_len(desc, "ambient"), 0);
	CHECK(json_array_has(desc, "bounding", "cap_chown"));
	CHECK(json_array_has(desc, "bounding", "cap_audit_write"));
	CHECK(json_array_has(desc, "bounding", "cap_net_bind_service"));
	CHECK(!json_array_has(desc, "bounding", "cap_sys_admin"));
	CHECK(!json_array_has(desc, "bounding", "cap_net_raw"));
	CHECK(!json_array_has(desc, "bounding", "cap_mknod"));

	/* no_new_privs and the seccomp mode show up too. */
	CHECK(cJSON_IsFalse(cJSON_GetObjectItemCaseSensitive(desc, "no_new_privs")));
	CHECK_INT(prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0), 0);
	cJSON_Delete(desc);
	desc = NULL;
	CHECK_INT(caps_describe(getpid(), &desc, &err), 0);
	CHECK(cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(desc, "no_new_privs")));
	CHECK(cJSON_IsNumber(cJSON_GetObjectItemCaseSensitive(desc, "seccomp_mode")));

	/* Applying again with fewer caps narrows further; a dropped cap cannot come back. */
	static const char *const only_kill[] = {"CAP_KILL", NULL};
	CHECK_INT(caps_apply(only_kill, &err), 0);
	CHECK_INT(status_mask("CapBnd:"), UINT64_C(1) << CAP_KILL);
	static const char *const wants_admin[] = {"CAP_SYS_ADMIN", NULL};
	CHECK(caps_apply(wants_admin, &err) < 0);
}

TEST(caps_apply_default_set)
{
	if (geteuid() != 0 || !(status_mask("CapEff:") & (UINT64_C(1) << CAP_SETPCAP)))
		SKIP("needs root with CAP_SETPCAP to drop capabilities");
	in_child(apply_default_caps, NULL);
}

TEST(caps_names)
{
	static const char *const bad[] = {"CAP_CHOWN", "CAP_TELEPORT", NULL};
	static const char *const numeric[] = {"12", NULL};
	static const char *const good[] = {"cap_chown", "CAP_SYS_ADMIN", "Cap_Kill", NULL};
	struct al_error err = AL_ERROR_INIT;

	CHECK_INT(caps_validate(al_default_caps, &err), 0);
	CHECK_INT(caps_validate(good, &err), 0);
	CHECK_INT(caps_validate(bad, &err), -EINVAL);
	CHECK(strstr(err.msg, "CAP_TELEPORT") != NULL);
	CHECK_INT(caps_validate(numeric, &err), -EINVAL);
	/* Unknown names are refused before anything is dropped. */
	CHECK_INT(caps_apply(bad, &err), -EINVAL);
	CHECK(strstr(err.msg, "CAP_TELEPORT") != NULL);

	size_t n = 0;
	while (al_default_caps[n])
		n++;
	CHECK_INT(n, 12);
}

TEST(caps_describe_errors)
{
	struct al_error err = AL_ERROR_INIT;
	cJSON *desc = (cJSON *)1;

	CHECK_INT(caps_describe(999999999, &desc, &err), -ENOENT);
	CHECK(desc == NULL);
	CHECK(strstr(err.msg, "/proc/999999999/status") != NULL);
}

static unsigned interface_flags(const char *name)
{
	_cleanup_close_ int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	struct ifreq ifr = {0};

	snprintf(ifr.ifr_name, sizeof(ifr.ifr_name), "%s", name);
	if (fd < 0 || ioctl(fd, SIOCGIFFLAGS, &ifr) < 0)
		return 0;
	return (unsigned)ifr.ifr_flags & 0xffff;
}

static void loopback_in_new_netns(const void *arg)
{
	struct al_error err = AL_ERROR_INIT;
	_cleanup_strv_ char **links = NULL;
	bool has_lo = false;

	(void)arg;
	if (unshare(CLONE_NEWNET) < 0) {
		fprintf(stderr, "unshare(CLONE_NEWNET): %s\n", strerror(errno));
		SKIP("cannot create a network namespace");
	}
	CHECK_INT(netlink_list_links(&links, &err), 0);
	for (char **l = links; l && *l; l++)
		has_lo = has_lo || strcmp(*l, "lo") == 0;
	CHECK(has_lo);
	CHECK(interface_flags("lo") != 0);
	CHECK(!(interface_flags("lo") & IFF_UP));

	if (netlink_loopback_up(&err) < 0) {
		fprintf(stderr, "netlink_loopback_up: %s\n", err.msg);
		test_failures++;
		return;
	}
	CHECK(interface_flags("lo") & IFF_UP);
	CHECK(interface_flags("lo") & IFF_LOOPBACK);
	/* Idempotent. */
	CHECK_INT(netlink_loopback_up(&err), 0);

	/* And it carries traffic: a TCP connection to 127.0.0.1. */
	_cleanup_close_ int server = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	_cleanup_close_ int client = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	struct sockaddr_in addr = {.sin_family = AF_INET,
	                           .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	socklen_t addr_len = sizeof(addr);
	CHECK_INT(bind(server, (struct sockaddr *)&addr, sizeof(addr)), 0);
	CHECK_INT(listen(server, 1), 0);
	CHECK_INT(getsockname(server, (struct sockaddr *)&addr, &addr_len), 0);
	CHECK_INT(connect(client, (struct sockaddr *)&addr, sizeof(addr)), 0);
}

TEST(netlink_loopback)
{
	struct al_error err = AL_ERROR_INIT;
	_cleanup_strv_ char **links = NULL;

	/* Listing works unprivileged in the host namespace. */
	CHECK_INT(netlink_list_links(&links, &err), 0);
	CHECK(links && links[0]);
	if (geteuid() != 0)
		SKIP("needs root to create a network namespace");
	in_child(loopback_in_new_netns, NULL);
}

int main(void)
{
	RUN(shipped_profiles_compile);
	RUN(default_profile_enforced);
	RUN(strict_profile_enforced);
	RUN(malformed_profiles_name_the_problem);
	RUN(profile_leniency_matches_docker);
	RUN(capability_arch_and_kernel_conditions);
	RUN(docker_default_profile);
	RUN(io_setup_is_enosys_whatever_the_profile);
	RUN(caps_names);
	RUN(caps_apply_default_set);
	RUN(caps_describe_errors);
	RUN(netlink_loopback);
	return test_main_result();
}
