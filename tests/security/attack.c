/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The attack helper of the security battery: built statically by the tests,
 * copied into a sandbox and run there.  Each attack runs in its own child
 * (a seccomp kill must not end the run) and prints one line:
 *
 *   NAME ok RET          the call succeeded (the attack got through)
 *   NAME err ERRNO       it failed with ERRNO
 *   NAME signal SIG      the child was killed by SIG
 *
 * The tests decide what counts as blocked; this program only tries.
 */
#include <errno.h>
#include <fcntl.h>
#include <linux/audit.h>
#include <linux/filter.h>
#include <linux/keyctl.h>
#include <linux/perf_event.h>
#include <linux/reboot.h>
#include <linux/sched.h>
#include <poll.h>
#include <linux/seccomp.h>
#include <sched.h>
#include <signal.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/ptrace.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

typedef long (*attack_fn)(void);

static long sys6(long nr, long a, long b, long c, long d, long e, long f)
{
	return syscall(nr, a, b, c, d, e, f);
}

static long a_keyctl(void)
{
	return sys6(SYS_keyctl, KEYCTL_GET_KEYRING_ID, KEY_SPEC_SESSION_KEYRING, 1, 0, 0, 0);
}

static long a_add_key(void)
{
	return sys6(SYS_add_key, (long)"user", (long)"airlock", (long)"x", 1,
	            KEY_SPEC_SESSION_KEYRING, 0);
}

static long a_request_key(void)
{
	return sys6(SYS_request_key, (long)"user", (long)"airlock", 0, 0, 0, 0);
}

static long a_bpf(void)
{
	char attr[128] = {0};
	return sys6(SYS_bpf, 0 /* BPF_MAP_CREATE */, (long)attr, sizeof(attr), 0, 0, 0);
}

static long a_perf_event_open(void)
{
	struct perf_event_attr attr = {
	    .type = PERF_TYPE_SOFTWARE, .size = sizeof(attr), .config = PERF_COUNT_SW_CPU_CLOCK};
	return sys6(SYS_perf_event_open, (long)&attr, 0, -1, -1, 0, 0);
}

static long a_userfaultfd(void)
{
	return sys6(SYS_userfaultfd, 0, 0, 0, 0, 0, 0);
}

static long a_mount(void)
{
	return sys6(SYS_mount, (long)"none", (long)"/tmp", (long)"tmpfs", 0, 0, 0);
}

static long a_umount2(void)
{
	return sys6(SYS_umount2, (long)"/proc", MNT_DETACH, 0, 0, 0, 0);
}

static long a_pivot_root(void)
{
	return sys6(SYS_pivot_root, (long)".", (long)".", 0, 0, 0, 0);
}

static long a_move_mount(void)
{
	return sys6(SYS_move_mount, AT_FDCWD, (long)"/proc", AT_FDCWD, (long)"/tmp", 0, 0);
}

static long a_open_tree(void)
{
	return sys6(SYS_open_tree, AT_FDCWD, (long)"/", 1 /* OPEN_TREE_CLONE */, 0, 0, 0);
}

static long a_fsopen(void)
{
	return sys6(SYS_fsopen, (long)"tmpfs", 0, 0, 0, 0, 0);
}

static long a_unshare_user(void)
{
	return sys6(SYS_unshare, CLONE_NEWUSER, 0, 0, 0, 0, 0);
}

static long a_unshare_mount(void)
{
	return sys6(SYS_unshare, CLONE_NEWNS, 0, 0, 0, 0, 0);
}

static long a_clone_user(void)
{
	long r = sys6(SYS_clone, CLONE_NEWUSER | SIGCHLD, 0, 0, 0, 0, 0);
	if (r == 0)
		_exit(0);
	if (r > 0)
		waitpid((pid_t)r, NULL, 0);
	return r;
}

static long a_clone3_user(void)
{
	struct clone_args args = {.flags = CLONE_NEWUSER, .exit_signal = SIGCHLD};
	long r = sys6(SYS_clone3, (long)&args, sizeof(args), 0, 0, 0, 0);
	if (r == 0)
		_exit(0);
	if (r > 0)
		waitpid((pid_t)r, NULL, 0);
	return r;
}

static long a_setns(void)
{
	int fd = open("/proc/self/ns/net", O_RDONLY);
	return sys6(SYS_setns, fd, 0, 0, 0, 0, 0);
}

static long a_kexec_load(void)
{
	return sys6(SYS_kexec_load, 0, 0, 0, 0, 0, 0);
}

static long a_kexec_file_load(void)
{
	return sys6(SYS_kexec_file_load, -1, -1, 1, (long)"", 0, 0);
}

static long a_init_module(void)
{
	return sys6(SYS_init_module, 0, 0, (long)"", 0, 0, 0);
}

static long a_finit_module(void)
{
	return sys6(SYS_finit_module, 0, (long)"", 0, 0, 0, 0);
}

static long a_delete_module(void)
{
	return sys6(SYS_delete_module, (long)"loop", 0, 0, 0, 0, 0);
}

static long a_reboot(void)
{
	/* CAD_OFF only changes what ctrl-alt-del does: harmless if it ever got through. */
	return sys6(SYS_reboot, LINUX_REBOOT_MAGIC1, LINUX_REBOOT_MAGIC2, LINUX_REBOOT_CMD_CAD_OFF,
	            0, 0, 0);
}

static long a_swapon(void)
{
	return sys6(SYS_swapon, (long)"/nonexistent", 0, 0, 0, 0, 0);
}

static long a_swapoff(void)
{
	return sys6(SYS_swapoff, (long)"/nonexistent", 0, 0, 0, 0, 0);
}

static long a_acct(void)
{
	return sys6(SYS_acct, 0, 0, 0, 0, 0, 0);
}

static long a_name_to_handle_at(void)
{
	char buf[sizeof(unsigned) * 2 + 128] = {0};
	int mount_id;
	*(unsigned *)buf = 128;
	return sys6(SYS_name_to_handle_at, AT_FDCWD, (long)"/", (long)buf, (long)&mount_id, 0, 0);
}

static long a_open_by_handle_at(void)
{
	/* The shocker attack: a guessed handle of the host's root inode. */
	unsigned char buf[8 + 8] = {8, 0, 0, 0, 1, 0, 0, 0, 2, 0, 0, 0, 0, 0, 0, 0};
	return sys6(SYS_open_by_handle_at, AT_FDCWD, (long)buf, O_RDONLY, 0, 0, 0);
}

static long a_iopl(void)
{
	return sys6(SYS_iopl, 3, 0, 0, 0, 0, 0);
}

static long a_ioperm(void)
{
	return sys6(SYS_ioperm, 0x80, 1, 1, 0, 0, 0);
}

static long a_ptrace_init(void)
{
	return sys6(SYS_ptrace, PTRACE_ATTACH, 1, 0, 0, 0, 0);
}

static long a_ptrace_sibling(void)
{
	pid_t child = fork();
	long r;

	if (child == 0) {
		pause();
		_exit(0);
	}
	r = sys6(SYS_ptrace, PTRACE_ATTACH, child, 0, 0, 0, 0);
	kill(child, SIGKILL);
	waitpid(child, NULL, 0);
	return r;
}

static long a_process_vm_readv(void)
{
	char buf[16];
	struct iovec local = {buf, sizeof(buf)}, remote = {(void *)0x400000, sizeof(buf)};
	return sys6(SYS_process_vm_readv, 1, (long)&local, 1, (long)&remote, 1, 0);
}

static long a_io_uring_setup(void)
{
	char params[120] = {0};
	return sys6(SYS_io_uring_setup, 1, (long)params, 0, 0, 0, 0);
}

static int open_pty(void)
{
	int m = open("/dev/ptmx", O_RDWR | O_NOCTTY);
	int unlock = 0;

	if (m < 0 || ioctl(m, TIOCSPTLCK, &unlock) < 0)
		return -1;
	return ioctl(m, TIOCGPTPEER, O_RDWR | O_NOCTTY);
}

static long a_tiocsti(void)
{
	int fd = open_pty();
	char c = 'x';
	return fd < 0 ? -1 : sys6(SYS_ioctl, fd, TIOCSTI, (long)&c, 0, 0, 0);
}

static long a_tioclinux(void)
{
	int fd = open_pty();
	char sub = 6; /* TIOCL_GETSHIFTSTATE */
	return fd < 0 ? -1 : sys6(SYS_ioctl, fd, TIOCLINUX, (long)&sub, 0, 0, 0);
}

static long a_personality(void)
{
	return sys6(SYS_personality, 0x0040000 /* ADDR_NO_RANDOMIZE */, 0, 0, 0, 0, 0);
}

static long a_socket_netlink(void)
{
	return sys6(SYS_socket, AF_NETLINK, SOCK_RAW, 0 /* NETLINK_ROUTE */, 0, 0, 0);
}

static long a_socket_packet(void)
{
	return sys6(SYS_socket, AF_PACKET, SOCK_RAW, 0x0300 /* htons(ETH_P_ALL) */, 0, 0, 0);
}

static long a_socket_raw(void)
{
	return sys6(SYS_socket, AF_INET, SOCK_RAW, 1 /* IPPROTO_ICMP */, 0, 0, 0);
}

/* The i386 ABI: getpid (20) through int 0x80, which the filter does not cover. */
static long a_i386_syscall(void)
{
	long r;
	__asm__ volatile("int $0x80" : "=a"(r) : "a"(20L) : "memory");
	return r < 0 ? (errno = (int)-r, -1) : r;
}

/* The x32 ABI: getpid with __X32_SYSCALL_BIT. */
static long a_x32_syscall(void)
{
	return syscall(0x40000000L | SYS_getpid);
}

/*
 * A listener of our own for keyctl, answered with CONTINUE: if our filter
 * used user notification, this would be the way around it.  With an ERRNO
 * filter below, ERRNO wins over USER_NOTIF and keyctl still fails.
 */
static long a_notify_continue(void)
{
	struct sock_filter f[] = {
	    BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr)),
	    BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, SYS_keyctl, 0, 1),
	    BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_USER_NOTIF),
	    BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
	};
	struct sock_fprog prog = {.len = 4, .filter = f};
	struct seccomp_notif req;
	struct seccomp_notif_resp resp;
	int status, listener;
	pid_t child;

	listener = (int)syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER,
	                        SECCOMP_FILTER_FLAG_NEW_LISTENER, &prog);
	if (listener < 0)
		return -1;
	child = fork();
	if (child == 0)
		_exit(a_keyctl() < 0 ? 100 + (errno & 0x7f) : 0);
	/* Answer at most one notification; none comes if ERRNO already won. */
	for (int i = 0; i < 50; i++) {
		struct timespec ts = {0, 10 * 1000 * 1000};
		if (waitpid(child, &status, WNOHANG) == child)
			goto done;
		struct pollfd pfd = {.fd = listener, .events = POLLIN};
		memset(&req, 0, sizeof(req));
		if (poll(&pfd, 1, 0) == 1 && ioctl(listener, SECCOMP_IOCTL_NOTIF_RECV, &req) == 0) {
			memset(&resp, 0, sizeof(resp));
			resp.id = req.id;
			resp.flags = SECCOMP_USER_NOTIF_FLAG_CONTINUE;
			ioctl(listener, SECCOMP_IOCTL_NOTIF_SEND, &resp);
		}
		nanosleep(&ts, NULL);
	}
	waitpid(child, &status, 0);
done:
	if (WIFEXITED(status) && WEXITSTATUS(status) >= 100) {
		errno = WEXITSTATUS(status) - 100;
		return -1;
	}
	return 0;
}

static const struct {
	const char *name;
	attack_fn fn;
} attacks[] = {
    {"keyctl", a_keyctl},
    {"add_key", a_add_key},
    {"request_key", a_request_key},
    {"bpf", a_bpf},
    {"perf_event_open", a_perf_event_open},
    {"userfaultfd", a_userfaultfd},
    {"mount", a_mount},
    {"umount2", a_umount2},
    {"pivot_root", a_pivot_root},
    {"move_mount", a_move_mount},
    {"open_tree", a_open_tree},
    {"fsopen", a_fsopen},
    {"unshare_user", a_unshare_user},
    {"unshare_mount", a_unshare_mount},
    {"clone_user", a_clone_user},
    {"clone3_user", a_clone3_user},
    {"setns", a_setns},
    {"kexec_load", a_kexec_load},
    {"kexec_file_load", a_kexec_file_load},
    {"init_module", a_init_module},
    {"finit_module", a_finit_module},
    {"delete_module", a_delete_module},
    {"reboot", a_reboot},
    {"swapon", a_swapon},
    {"swapoff", a_swapoff},
    {"acct", a_acct},
    {"name_to_handle_at", a_name_to_handle_at},
    {"open_by_handle_at", a_open_by_handle_at},
    {"iopl", a_iopl},
    {"ioperm", a_ioperm},
    {"ptrace_init", a_ptrace_init},
    {"ptrace_sibling", a_ptrace_sibling},
    {"process_vm_readv", a_process_vm_readv},
    {"io_uring_setup", a_io_uring_setup},
    {"tiocsti", a_tiocsti},
    {"tioclinux", a_tioclinux},
    {"personality", a_personality},
    {"socket_netlink", a_socket_netlink},
    {"socket_packet", a_socket_packet},
    {"socket_raw", a_socket_raw},
    {"i386_syscall", a_i386_syscall},
    {"x32_syscall", a_x32_syscall},
    {"notify_continue", a_notify_continue},
};

/* Run one attack in a child; the child reports through a pipe. */
static void run(const char *name, attack_fn fn)
{
	int p[2], status;
	long result[2] = {0, 0};
	pid_t child;

	if (pipe(p) < 0)
		return;
	child = fork();
	if (child == 0) {
		close(p[0]);
		errno = 0;
		result[0] = fn();
		result[1] = errno;
		if (write(p[1], result, sizeof(result)) != sizeof(result))
			_exit(1);
		_exit(0);
	}
	close(p[1]);
	ssize_t n = read(p[0], result, sizeof(result));
	close(p[0]);
	waitpid(child, &status, 0);
	if (WIFSIGNALED(status))
		printf("%s signal %d\n", name, WTERMSIG(status));
	else if (n != sizeof(result))
		printf("%s exit %d\n", name, WEXITSTATUS(status));
	else if (result[0] < 0)
		printf("%s err %ld\n", name, result[1]);
	else
		printf("%s ok %ld\n", name, result[0]);
	fflush(stdout);
}

int main(int argc, char **argv)
{
	for (size_t i = 0; i < sizeof(attacks) / sizeof(attacks[0]); i++) {
		bool wanted = argc < 2;
		for (int a = 1; a < argc; a++)
			wanted |= strcmp(argv[a], attacks[i].name) == 0;
		if (wanted)
			run(attacks[i].name, attacks[i].fn);
	}
	return 0;
}
