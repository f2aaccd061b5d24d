/* SPDX-License-Identifier: Apache-2.0 */
/*
 * CRIU driver.
 *
 * We run the `criu` binary with posix_spawn rather than its swrk RPC: the
 * RPC saves one fork+exec (about 2 ms here) but needs protobuf-c and CRIU's
 * .proto files at build time, and a dump takes tens of milliseconds anyway.
 * The options mirror what runc passes for a container, minus what a sandbox
 * does not need:
 *
 *   --network-lock skip   the sandbox has loopback only: nothing to lock,
 *                         and the iptables/nftables lock costs ~100 ms
 *   --manage-cgroups=ignore  airlockd makes the cgroups of the restored
 *                         sandbox itself (v1, v2 or hybrid) and CRIU only
 *                         has to put the restored tree into them
 *   --tcp-established --ext-unix-sk --file-locks  connections and locks
 *                         inside the sandbox survive
 *
 * No freezer cgroup is used: CRIU seizes the tasks with ptrace, which stops
 * them without the cgroup-v1 freezer's polling loop.
 *
 * What does NOT work with CRIU 4.1.1, and why: a sandbox's mount, network,
 * UTS and IPC namespaces are owned by the host's user namespace while its
 * processes live in a user namespace of their own (so that even root inside
 * cannot mount or reconfigure anything).  CRIU requires every namespace of
 * the dumped tree to be owned by the tree's user namespace: it checks this by
 * setns()ing into each from inside that user namespace, and refuses with
 * "One or more namespaces doesn't belong to the target user namespace"
 * (criu/namespaces.c).  A restore would also create them inside the restored
 * user namespace.  criu_checkpoint() therefore reports CRIU's error for
 * such a sandbox; see docs/snapshot-format.md.
 */
#include "criu.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "cleanup.h"
#include "log.h"
#include "util.h"

extern char **environ;

/* The lines of CRIU's log that say why it failed, joined. */
static void log_errors(const char *log_path, char *out, size_t len)
{
	_cleanup_free_ char *text = NULL;
	size_t used = 0;
	char *save = NULL;

	out[0] = '\0';
	if (al_read_file(log_path, 16 << 20, &text, NULL, NULL) < 0)
		return;
	for (char *line = strtok_r(text, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
		char *e = strstr(line, "Error (");
		int n;
		if (!e || strstr(line, "RLIMIT_NOFILE"))
			continue;
		n = snprintf(out + used, len - used, "%s%s", used ? "; " : "", e);
		if (n < 0 || (size_t)n >= len - used)
			break;
		used += (size_t)n;
	}
}

/* Run criu; on failure keep its log as keep_log (for the operator: the images
 * directory goes away) and name CRIU's own errors. */
static int run_criu(char *const argv[], const char *log_path, const char *keep_log,
                    const char *what, struct al_error *err)
{
	_cleanup_free_ char *text = NULL;
	char why[768];
	size_t len = 0;
	pid_t pid;
	int status, r;

	r = posix_spawnp(&pid, "criu", NULL, NULL, argv, environ);
	if (r != 0) {
		errno = r;
		return al_error_errno(err, "run criu");
	}
	while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
		;
	if (WIFEXITED(status) && WEXITSTATUS(status) == 0)
		return 0;
	log_errors(log_path, why, sizeof(why));
	if (keep_log && al_read_file(log_path, 16 << 20, &text, &len, NULL) == 0) {
		struct al_error e = AL_ERROR_INIT;
		if (al_write_file_atomic(keep_log, text, len, 0600, &e) == 0)
			log_path = keep_log;
	}
	return al_error_set(err, EIO, "criu %s failed: %s (log: %s)", what,
	                    why[0] ? why : "no error in its log", log_path);
}

int criu_checkpoint(struct daemon_ctx *ctx, struct sandbox *sb, const char *images_dir,
                    struct al_error *err)
{
	char pid[16], log_path[PATH_MAX], keep[PATH_MAX];
	char *argv[] = {"criu",
	                "dump",
	                "--tree",
	                pid,
	                "--images-dir",
	                (char *)images_dir,
	                "--log-file",
	                "dump.log",
	                "--verbosity=2",
	                "--leave-running",
	                "--network-lock",
	                "skip",
	                "--manage-cgroups=ignore",
	                "--tcp-established",
	                "--ext-unix-sk",
	                "--file-locks",
	                NULL};
	uint64_t t0 = al_now_ms();
	int r;

	if (!ctx->criu_version)
		return al_error_set(err, ENOTSUP,
		                    "CRIU is not installed: cannot checkpoint processes "
		                    "(snapshot without processes instead)");
	snprintf(pid, sizeof(pid), "%d", (int)sb->init_pid);
	snprintf(log_path, sizeof(log_path), "%s/dump.log", images_dir);
	snprintf(keep, sizeof(keep), "%s/criu-dump.log", sb->dir);
	r = run_criu(argv, log_path, keep, "dump", err);
	if (r < 0)
		return al_error_prefix(err, "sandbox %s", sb->id);
	unlink(log_path);
	log_info("sandbox %s: criu dump in %llu ms", sb->id,
	         (unsigned long long)(al_now_ms() - t0));
	return 0;
}

int criu_restore(struct daemon_ctx *ctx, struct sandbox *sb, const char *images_dir,
                 struct al_error *err)
{
	(void)ctx;
	(void)images_dir;
	return al_error_set(err, ENOTSUP, "sandbox %s: restoring processes is not supported",
	                    sb->id);
}
