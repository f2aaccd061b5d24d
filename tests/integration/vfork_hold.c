/* SPDX-License-Identifier: Apache-2.0 */
/*
 * vfork-hold MARKER HOLD_MS [PROGRAM [ARG...]]: a vfork() kept in flight, for
 * the snapshot tests.  The child creates MARKER, sleeps HOLD_MS milliseconds
 * (for ever if HOLD_MS is -1) while its parent waits in the kernel, then
 * execs PROGRAM (or exits).  The parent waits for the child and exits with
 * its status.  Static, so it runs in any rootfs once copied in.
 *
 * Only async-signal-safe calls after vfork(): the child shares our memory.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

int main(int argc, char **argv)
{
	pid_t pid;
	long hold_ms;
	int status;

	if (argc < 3) {
		static const char usage[] = "usage: vfork-hold MARKER HOLD_MS [PROGRAM [ARG...]]\n";
		(void)!write(2, usage, sizeof(usage) - 1);
		return 2;
	}
	hold_ms = strtol(argv[2], NULL, 10);
	pid = vfork();
	if (pid < 0)
		return 1;
	if (pid == 0) {
		struct timespec ts = {hold_ms / 1000, (hold_ms % 1000) * 1000000L};
		int fd = open(argv[1], O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
		if (fd >= 0)
			close(fd);
		if (hold_ms < 0)
			for (;;)
				pause();
		while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
			;
		if (argc > 3)
			execv(argv[3], argv + 3);
		_exit(argc > 3 ? 127 : 0);
	}
	while (waitpid(pid, &status, 0) < 0)
		if (errno != EINTR)
			return 1;
	return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}
