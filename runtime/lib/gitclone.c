/* SPDX-License-Identifier: Apache-2.0 */
#include "gitclone.h"

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "cleanup.h"
#include "util.h"

/* A clone that takes longer than this is killed (SIGALRM survives exec). */
#define GIT_TIMEOUT_SECONDS 600

/*
 * Where the clone directory is seen by git in the child's own mount
 * namespace: the real directory sits below airlockd's 0700 state tree, which
 * the unprivileged uid cannot traverse, and git insists on resolving its
 * work tree by path.
 */
#define GIT_WORK_MOUNT "/mnt"

/* Before every command: no hooks, and a source owned by another host user is read. */
#define GIT_SAFE_OPTIONS "git", "-c", "core.hooksPath=/dev/null", "-c", "safe.directory=*"
#define GIT_COMMAND_INDEX 5

static const char *const git_env[] = {
    "PATH=/usr/bin:/bin",
    "HOME=/nonexistent",
    "LANG=C",
    "GIT_CONFIG_NOSYSTEM=1",
    "GIT_CONFIG_GLOBAL=" GIT_WORK_MOUNT "/gitconfig",
    "GIT_TERMINAL_PROMPT=0",
    "GIT_ASKPASS=/bin/false",
    "SSH_ASKPASS=/bin/false",
    NULL,
};

static _Noreturn void run_child(const char *dir, uid_t uid, gid_t gid, int err_fd,
                                char *const argv[])
{
	int null_fd = open("/dev/null", O_RDWR | O_CLOEXEC);

	if (null_fd < 0 || dup2(null_fd, STDIN_FILENO) < 0 || dup2(null_fd, STDOUT_FILENO) < 0 ||
	    dup2(err_fd, STDERR_FILENO) < 0)
		_exit(125);
	if (prctl(PR_SET_PDEATHSIG, SIGKILL) < 0)
		_exit(125);
	if (unshare(CLONE_NEWNS) < 0 || mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0 ||
	    mount(dir, GIT_WORK_MOUNT, NULL, MS_BIND | MS_NOSUID | MS_NODEV, NULL) < 0) {
		dprintf(STDERR_FILENO, "fatal: private mount of %s: %s\n", dir, strerror(errno));
		_exit(125);
	}
	if (setgroups(0, NULL) < 0 || setresgid(gid, gid, gid) < 0 ||
	    setresuid(uid, uid, uid) < 0 || chdir(GIT_WORK_MOUNT "/tree") < 0) {
		dprintf(STDERR_FILENO, "fatal: drop privileges: %s\n", strerror(errno));
		_exit(125);
	}
	alarm(GIT_TIMEOUT_SECONDS);
	execve("/usr/bin/git", argv, (char *const *)git_env);
	dprintf(STDERR_FILENO, "fatal: exec /usr/bin/git: %s\n", strerror(errno));
	_exit(127);
}

/* Runs git once; on failure the message carries the last line git printed. */
static int run_git(const char *dir, uid_t uid, gid_t gid, char *const argv[], bool quiet_fail,
                   struct al_error *err)
{
	_cleanup_close_ int rd = -1, wr = -1;
	_cleanup_free_ char *out = NULL;
	size_t len = 0;
	int fds[2], status;
	pid_t pid;

	if (pipe2(fds, O_CLOEXEC) < 0)
		return al_error_errno(err, "pipe");
	rd = fds[0];
	wr = fds[1];
	pid = fork();
	if (pid < 0)
		return al_error_errno(err, "fork");
	if (pid == 0)
		run_child(dir, uid, gid, wr, argv);
	close(TAKE_FD(wr));
	(void)al_read_fd(rd, 64 << 10, &out, &len, NULL);
	while (waitpid(pid, &status, 0) < 0)
		if (errno != EINTR)
			return al_error_errno(err, "wait for git");
	if (WIFEXITED(status) && WEXITSTATUS(status) == 0)
		return 0;
	if (quiet_fail)
		return -EIO;
	if (WIFSIGNALED(status))
		return al_error_set(err, EIO, "git %s killed by signal %d%s",
		                    argv[GIT_COMMAND_INDEX], WTERMSIG(status),
		                    WTERMSIG(status) == SIGALRM ? " (timed out)" : "");
	if (out && len > 0) {
		/* git's own reason: its first "fatal:" or "error:" line, else the last. */
		char *line = strstr(out, "fatal: ");
		if (!line)
			line = strstr(out, "error: ");
		if (!line) {
			while (len > 0 && (out[len - 1] == '\n' || out[len - 1] == '\r'))
				out[--len] = '\0';
			line = strrchr(out, '\n');
			line = line ? line + 1 : out;
		}
		line[strcspn(line, "\n")] = '\0';
		/* A repository or ref git cannot fetch is the request's problem;
		 * 125 and 127 are this file's own failures before git ran. */
		bool ours =
		    WIFEXITED(status) && (WEXITSTATUS(status) == 125 || WEXITSTATUS(status) == 127);
		return al_error_set(err, ours ? EIO : EINVAL, "git %s: %s", argv[GIT_COMMAND_INDEX],
		                    line);
	}
	return al_error_set(err, EINVAL, "git %s exited with status %d", argv[GIT_COMMAND_INDEX],
	                    WEXITSTATUS(status));
}

int git_clone_at(const char *url, const char *ref, const char *dir, uid_t uid, gid_t gid,
                 struct al_error *err)
{
	_cleanup_free_ char *remote_ref = NULL;
	int r;

	/* Options smuggled in as a URL or ref would be git's to interpret. */
	if (url[0] == '-')
		return al_error_set(err, EINVAL, "repository '%s' must not start with '-'", url);
	if (ref && (ref[0] == '-' || !ref[0]))
		return al_error_set(err, EINVAL, "ref '%s' is not valid", ref);
	/*
	 * The configuration goes in a global file: git drops -c options when it
	 * runs upload-pack for a local source, whose ownership check would
	 * refuse a repository of another host user.
	 */
	static const char config[] = "[safe]\n\tdirectory = *\n[core]\n\thooksPath = /dev/null\n"
	                             "[protocol \"ext\"]\n\tallow = never\n";
	char path[PATH_MAX];

	/* Traversable by uid through the private bind; dir's parents stay closed. */
	if (chmod(dir, 0711) < 0)
		return al_error_errno(err, "chmod %s", dir);
	if ((size_t)snprintf(path, sizeof(path), "%s/gitconfig", dir) >= sizeof(path))
		return al_error_set(err, ENAMETOOLONG, "%s: path too long", dir);
	r = al_write_file_atomic(path, config, sizeof(config) - 1, 0644, err);
	if (r < 0)
		return r;
	/* Readable by uid whatever airlockd's umask: git ignores a config it cannot read. */
	if (chmod(path, 0644) < 0)
		return al_error_errno(err, "chmod %s", path);
	snprintf(path, sizeof(path), "%s/tree", dir);
	if (mkdir(path, 0700) < 0)
		return al_error_errno(err, "mkdir %s", path);
	if (chown(path, uid, gid) < 0)
		return al_error_errno(err, "chown %s", path);

	/* Hooks never run (core.hooksPath), the ext:: transport stays off, and
	 * submodules are not fetched. */
	char *clone[] = {GIT_SAFE_OPTIONS, "clone", "-q", "--no-checkout", "--no-hardlinks", "--",
	                 (char *)url,      ".",     NULL};
	r = run_git(dir, uid, gid, clone, false, err);
	if (r < 0)
		return r;
	if (!ref) {
		char *checkout[] = {GIT_SAFE_OPTIONS, "checkout", "-q", NULL};
		return run_git(dir, uid, gid, checkout, false, err);
	}
	/* A tag or commit resolves as given, a branch only as the remote's. */
	if (asprintf(&remote_ref, "origin/%s", ref) < 0)
		return al_error_set(err, ENOMEM, "out of memory");
	char *by_remote[] = {GIT_SAFE_OPTIONS, "checkout", "-q", "--detach",
	                     remote_ref,       "--",       NULL};
	if (run_git(dir, uid, gid, by_remote, true, err) == 0)
		return 0;
	char *as_given[] = {GIT_SAFE_OPTIONS, "checkout", "-q", "--detach",
	                    (char *)ref,      "--",       NULL};
	r = run_git(dir, uid, gid, as_given, false, err);
	return r < 0 ? al_error_prefix(err, "ref '%s'", ref) : 0;
}
