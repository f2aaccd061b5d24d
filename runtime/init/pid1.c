/* SPDX-License-Identifier: Apache-2.0 */
/*
 * airlock-pid1: PID 1 of a running sandbox.
 *
 * airlock-init builds and confines the sandbox, then execs this binary,
 * bound read-only at /dev/.init.  It is static and small on purpose: it is
 * the part of the sandbox that lives as long as the sandbox, and CRIU must
 * be able to checkpoint it.  CRIU cannot dump a task that maps files outside
 * the sandbox's mounts (the host's shared libraries, a memfd as its
 * executable) or holds a socket of the host's network namespace, so PID 1
 * maps nothing but this file, has /dev/null as stdio, and listens on an
 * abstract socket of the sandbox's own network namespace (initproto.h).
 *
 * Inherited fds: 3 = the listening socket (airlock-init told airlockd the
 * sandbox is ready before exec'ing us: requests wait on it until we run).
 */
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <limits.h>
#include <poll.h>
#include <pwd.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <termios.h>
#include <unistd.h>

#include "initproto.h"

#define LISTEN_FD 3
#define MAX_CLIENTS 1024
#define N_HELD 5 /* the fds of a HOLD, INITPROTO_HOLD_* order */

/*
 * One airlockd connection; pid > 0 once it spawned a process.  Until that
 * process has exec'd, status_fd reads why it could not (or EOF).  Once
 * reaped, its end is kept (reaped, end_*) while airlockd's connection is
 * open, and, for a process HOLD named (id), also after that connection
 * closed, until a RELEASE: a later airlockd may ATTACH to it (fd is then
 * that airlockd's connection).
 */
struct client {
	int fd;
	pid_t pid;
	int status_fd;
	bool failed;      /* its spawn failed and was answered: reap quietly */
	char *what, *cwd; /* the spawn's argv[0] and cwd, for its error message */
	int tty_master;   /* a terminal spawn's pty master, until the PID answer takes it */
	unsigned id;      /* the process id HOLD gave it; 0: none */
	int held[N_HELD]; /* airlockd's fds that HOLD handed us, or -1 */
	char **hold_argv; /* HOLD's strings, given back with HELD */
	bool reaped;
	uint8_t end_type; /* INITPROTO_EXIT or INITPROTO_SIGNALED, once reaped */
	int32_t end_num;
};

static struct client clients[MAX_CLIENTS];
static size_t n_clients;
/* The highest process id ever held: a later airlockd numbers on from it. */
static unsigned highest_id;
/* The open files limit we were given, which our commands get back (ours is
 * raised: we hold fds for every command that has a process id). */
static struct rlimit nofile;
static bool nofile_raised;

static struct client *client_by_fd(int fd)
{
	for (size_t i = 0; i < n_clients; i++)
		if (clients[i].fd == fd)
			return &clients[i];
	return NULL;
}

static struct client *client_by_pid(pid_t pid)
{
	for (size_t i = 0; i < n_clients; i++)
		if (clients[i].pid == pid)
			return &clients[i];
	return NULL;
}

static struct client *client_by_status_fd(int fd)
{
	for (size_t i = 0; i < n_clients; i++)
		if (clients[i].status_fd == fd)
			return &clients[i];
	return NULL;
}

static void client_remove(struct client *cl)
{
	if (cl->fd >= 0)
		close(cl->fd);
	if (cl->status_fd >= 0)
		close(cl->status_fd);
	if (cl->tty_master >= 0)
		close(cl->tty_master);
	for (int i = 0; i < N_HELD; i++)
		if (cl->held[i] >= 0)
			close(cl->held[i]);
	for (char **a = cl->hold_argv; a && *a; a++)
		free(*a);
	free(cl->hold_argv);
	free(cl->what);
	free(cl->cwd);
	*cl = clients[--n_clients];
}

static void reply_fds(int fd, uint8_t type, int32_t num, uint32_t aux, const char *text,
                      const int *fds, size_t nfds)
{
	struct initproto_msg m = {.type = type, .num = num, .aux = aux, .text = (char *)text};
	struct al_error err = AL_ERROR_INIT;

	initproto_send(fd, &m, fds, nfds, &err);
}

static void reply(int fd, uint8_t type, int32_t num, uint32_t aux, const char *text)
{
	reply_fds(fd, type, num, aux, text, NULL, 0);
}

static struct client *client_by_id(unsigned id)
{
	for (size_t i = 0; i < n_clients; i++)
		if (clients[i].id == id)
			return &clients[i];
	return NULL;
}

/* HOLD: the process of cl has process id msg->num from now on; keep the fds
 * that came (they are ours: *nfds becomes 0) and the strings. */
static void handle_hold(struct client *cl, const struct initproto_msg *msg, int *fds, size_t *nfds)
{
	size_t argc = 0, want = 0, k = 0;
	char **copy;

	while (msg->argv && msg->argv[argc])
		argc++;
	for (int i = 0; i < N_HELD; i++)
		want += (msg->aux >> i) & 1;
	if (msg->num <= 0 || client_by_id((unsigned)msg->num) || cl->id ||
	    (cl->pid <= 0 && !cl->reaped) || argc != INITPROTO_HOLD_ARGV || want != *nfds ||
	    (msg->aux & ~INITPROTO_HOLD_ALL)) {
		reply(cl->fd, INITPROTO_ERROR, EINVAL, INITPROTO_STAGE_FORK, "malformed hold");
		return;
	}
	copy = calloc(argc + 1, sizeof(char *));
	for (size_t i = 0; copy && i < argc; i++)
		if (!(copy[i] = strdup(msg->argv[i]))) {
			while (i > 0)
				free(copy[--i]);
			free(copy);
			copy = NULL;
		}
	if (!copy) {
		reply(cl->fd, INITPROTO_ERROR, ENOMEM, INITPROTO_STAGE_FORK, "out of memory");
		return;
	}
	for (int i = 0; i < N_HELD; i++)
		if (msg->aux & (1u << i))
			cl->held[i] = fds[k++];
	*nfds = 0;
	cl->hold_argv = copy;
	cl->id = (unsigned)msg->num;
	if (cl->id > highest_id)
		highest_id = cl->id;
}

static void handle_list(struct client *cl)
{
	static char names[MAX_CLIENTS][12];
	static char *ids[MAX_CLIENTS + 1];
	size_t n = 0;
	struct initproto_msg m = {.type = INITPROTO_LISTED, .num = (int32_t)highest_id};
	struct al_error err = AL_ERROR_INIT;

	for (size_t i = 0; i < n_clients; i++)
		if (clients[i].id) {
			snprintf(names[n], sizeof(names[n]), "%u", clients[i].id);
			ids[n] = names[n];
			n++;
		}
	ids[n] = NULL;
	m.argv = ids;
	initproto_send(cl->fd, &m, NULL, 0, &err);
}

/* ATTACH: cl, a fresh connection of a new airlockd, becomes the connection
 * of the record of process id msg->num.  cl itself is removed. */
static void handle_attach(struct client *cl, const struct initproto_msg *msg)
{
	struct client *h = msg->num > 0 ? client_by_id((unsigned)msg->num) : NULL;
	struct initproto_msg m = {.type = INITPROTO_HELD, .num = msg->num};
	struct al_error err = AL_ERROR_INIT;
	int fds[N_HELD];
	size_t n = 0;

	if (!h || h == cl || cl->pid > 0 || cl->reaped || cl->id) {
		reply(cl->fd, INITPROTO_ERROR, ENOENT, INITPROTO_STAGE_FORK, "no such process");
		return;
	}
	if (h->fd >= 0) {
		reply(cl->fd, INITPROTO_ERROR, EBUSY, INITPROTO_STAGE_FORK,
		      "the process is attached to another connection");
		return;
	}
	for (int i = 0; i < N_HELD; i++)
		if (h->held[i] >= 0) {
			m.aux |= 1u << i;
			fds[n++] = h->held[i];
		}
	m.argv = h->hold_argv;
	h->fd = cl->fd;
	cl->fd = -1;
	initproto_send(h->fd, &m, fds, n, &err);
	if (h->reaped)
		reply(h->fd, h->end_type, h->end_num, 0, NULL);
	client_remove(cl);
}

/*
 * A pseudo-terminal for a terminal spawn, from the devpts instance mounted
 * on our /dev/pts: the sandbox's own, so the pty, its number and its slave
 * are the sandbox's and nothing of the host's terminals is reachable.  The
 * slave comes from the master itself (TIOCGPTPEER), not by a path the
 * sandbox could swap.  winsize is rows << 16 | columns, 0 for none.
 * Returns 0, or a negative errno.
 */
static int open_pty(uint32_t winsize, int *master_out, int *slave_out)
{
	struct winsize ws = {.ws_row = (unsigned short)(winsize >> 16),
	                     .ws_col = (unsigned short)(winsize & 0xffff)};
	int unlock = 0, master, slave = -1, e;

	master = open("/dev/pts/ptmx", O_RDWR | O_NOCTTY | O_CLOEXEC);
	if (master < 0)
		return -errno;
	if (ioctl(master, TIOCSPTLCK, &unlock) == 0 &&
	    (!winsize || ioctl(master, TIOCSWINSZ, &ws) == 0))
		slave = ioctl(master, TIOCGPTPEER, O_RDWR | O_NOCTTY | O_CLOEXEC);
	if (slave < 0) {
		e = errno;
		close(master);
		return -e;
	}
	*master_out = master;
	*slave_out = slave;
	return 0;
}

/* What a child whose exec failed writes on its status pipe. */
struct spawn_failure {
	int32_t stage;
	int32_t err;
};

static _Noreturn void child_fail(int status_w, int stage)
{
	struct spawn_failure f = {.stage = stage, .err = errno ? errno : ENOEXEC};

	if (write(status_w, &f, sizeof(f)) < 0)
		_exit(127);
	_exit(127);
}

/*
 * Resolve argv[0] against PATH from the command's own environment (not
 * ours) and exec it.  Runs in the forked child: no allocation, no stdio.
 */
static void exec_with_path(char *const argv[], char *const envp[])
{
	const char *path = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
	char buf[PATH_MAX];
	int saw_eacces = 0;

	if (strchr(argv[0], '/')) {
		execve(argv[0], argv, envp);
		return;
	}
	for (char *const *e = envp; *e; e++)
		if (strncmp(*e, "PATH=", 5) == 0)
			path = *e + 5;
	while (*path) {
		const char *end = strchrnul(path, ':');
		size_t dlen = (size_t)(end - path), alen = strlen(argv[0]);
		if (dlen + alen + 2 <= sizeof(buf)) {
			memcpy(buf, path, dlen);
			if (dlen == 0)
				buf[dlen++] = '.';
			buf[dlen] = '/';
			memcpy(buf + dlen + 1, argv[0], alen + 1);
			execve(buf, argv, envp);
			if (errno == EACCES)
				saw_eacces = 1;
			else if (errno != ENOENT && errno != ENOTDIR)
				return;
		}
		path = *end ? end + 1 : end;
	}
	errno = saw_eacces ? EACCES : ENOENT;
}

/* Supplementary groups for uid, as login(1) and `docker exec -u` give them:
 * every group of the sandbox's /etc/group that lists uid's name (from its
 * /etc/passwd) as a member, besides gid.  Read in the forked child, so a
 * hostile /etc (a FIFO, a huge file) stalls only the spawn that reads it,
 * never PID 1; fgetpwent/fgetgrent read the files themselves, no NSS. */
static int user_groups(uid_t uid, gid_t gid, gid_t *groups, int max)
{
	char name[256] = "";
	struct passwd *pw;
	struct group *gr;
	FILE *f;
	int n = 0;

	f = fopen("/etc/passwd", "re");
	if (!f)
		return 0;
	while ((pw = fgetpwent(f)))
		if (pw->pw_uid == uid) {
			snprintf(name, sizeof(name), "%s", pw->pw_name);
			break;
		}
	fclose(f);
	if (!name[0] || !(f = fopen("/etc/group", "re")))
		return 0;
	while (n < max && (gr = fgetgrent(f))) {
		if (gr->gr_gid == gid)
			continue;
		for (char **m = gr->gr_mem; m && *m; m++)
			if (!strcmp(*m, name)) {
				groups[n++] = gr->gr_gid;
				break;
			}
	}
	fclose(f);
	return n;
}

/*
 * Start the process of a spawn request.  fork, not vfork: a vfork parent
 * waits until its child has exec'd, and a sandbox that stops that child
 * (kill(-1, SIGSTOP) in a loop is enough) would stop PID 1 with it, and
 * with PID 1 every later request.  The child says why its exec failed on
 * a close-on-exec pipe, which the loop in serve() reads with the rest:
 * EOF is a successful exec, answered with the pid then.
 */
static void handle_spawn(struct client *cl, const struct initproto_msg *msg, int *fds, size_t nfds)
{
	bool tty = msg->aux & INITPROTO_SPAWN_TTY;
	int status[2], stdio[3], master = -1, slave = -1;
	uint32_t uid, gid;
	pid_t pid;

	initproto_spawn_user_of(msg->num, &uid, &gid);

	if (cl->pid > 0) {
		reply(cl->fd, INITPROTO_ERROR, EBUSY, INITPROTO_STAGE_FORK,
		      "connection already has a process");
		return;
	}
	if (!msg->argv || !msg->argv[0] || !msg->env || nfds != (tty ? 0 : 3) || !msg->text) {
		reply(cl->fd, INITPROTO_ERROR, EINVAL, INITPROTO_STAGE_FORK,
		      "malformed spawn request");
		return;
	}
	if (tty) {
		int r = open_pty(initproto_spawn_winsize(msg->aux), &master, &slave);
		if (r < 0) {
			char what[96];
			snprintf(what, sizeof(what), "terminal /dev/pts/ptmx: %s", strerror(-r));
			reply(cl->fd, INITPROTO_ERROR, -r, INITPROTO_STAGE_TTY, what);
			return;
		}
		stdio[0] = stdio[1] = stdio[2] = slave;
	} else {
		memcpy(stdio, fds, sizeof(stdio));
	}
	if (pipe2(status, O_CLOEXEC) < 0) {
		reply(cl->fd, INITPROTO_ERROR, errno, INITPROTO_STAGE_FORK, "pipe");
		if (tty) {
			close(master);
			close(slave);
		}
		return;
	}
	pid = fork();
	if (pid < 0) {
		reply(cl->fd, INITPROTO_ERROR, errno, INITPROTO_STAGE_FORK, "fork");
		close(status[0]);
		close(status[1]);
		if (tty) {
			close(master);
			close(slave);
		}
		return;
	}
	if (pid == 0) {
		sigset_t none;
		int w = status[1];
		sigemptyset(&none);
		for (int s = 1; s < NSIG; s++)
			signal(s, SIG_DFL);
		sigprocmask(SIG_SETMASK, &none, NULL);
		setsid();
		/* The pipe above stdio's numbers, or a dup2 would replace it. */
		if (w < 3 && (w = fcntl(w, F_DUPFD_CLOEXEC, 3)) < 0)
			_exit(127);
		/* A new session (above) whose controlling terminal is the pty. */
		if (tty && ioctl(slave, TIOCSCTTY, 0) < 0)
			child_fail(w, INITPROTO_STAGE_TTY);
		if (dup2(stdio[0], 0) < 0 || dup2(stdio[1], 1) < 0 || dup2(stdio[2], 2) < 0)
			child_fail(w, INITPROTO_STAGE_STDIO);
		syscall(SYS_close_range, 3, ~0U, CLOSE_RANGE_CLOEXEC);
		if (nofile_raised && setrlimit(RLIMIT_NOFILE, &nofile) < 0)
			child_fail(w, INITPROTO_STAGE_STDIO);
		/* Another user (an image's User, exec -u): its ids and groups,
		 * and with the uid change the capabilities go. */
		if (uid || gid) {
			gid_t groups[64];
			int ngroups = user_groups(uid, gid, groups, 64);
			if (setgroups((size_t)ngroups, groups) < 0 ||
			    setresgid(gid, gid, gid) < 0 || setresuid(uid, uid, uid) < 0)
				child_fail(w, INITPROTO_STAGE_USER);
		}
		if (chdir(msg->text) < 0)
			child_fail(w, INITPROTO_STAGE_CHDIR);
		exec_with_path(msg->argv, msg->env);
		child_fail(w, INITPROTO_STAGE_EXEC);
	}
	close(status[1]);
	/* Only the process holds the slave: the master reads EIO once it and
	 * whatever it started are gone. */
	if (tty)
		close(slave);
	cl->tty_master = master;
	cl->pid = pid;
	cl->status_fd = status[0];
	cl->failed = false;
	free(cl->what);
	/* For the message of a failure: what the child was to chdir to or run. */
	cl->what = strdup(msg->argv[0]);
	free(cl->cwd);
	cl->cwd = strdup(msg->text);
}

/* The spawn of cl has news on its status pipe: the exec happened (EOF) or
 * failed (why).  Either is the answer to the spawn request. */
static void spawn_status(struct client *cl)
{
	static const char *const stages[] = {"exec", "chdir", "stdio", "fork", "user", "terminal"};
	struct spawn_failure f;
	ssize_t n;

	do
		n = read(cl->status_fd, &f, sizeof(f));
	while (n < 0 && errno == EINTR);
	close(cl->status_fd);
	cl->status_fd = -1;
	if (n == (ssize_t)sizeof(f) && f.stage >= 0 && f.stage < 6) {
		char what[PATH_MAX + 64];
		const char *name = f.stage == INITPROTO_STAGE_CHDIR ? cl->cwd : cl->what;
		snprintf(what, sizeof(what), "%s %s: %s", stages[f.stage], name ? name : "?",
		         strerror(f.err));
		if (cl->fd >= 0)
			reply(cl->fd, INITPROTO_ERROR, f.err, (uint32_t)f.stage, what);
		/* Its exit is not news any more; the connection may spawn again. */
		cl->failed = true;
		if (cl->tty_master >= 0)
			close(cl->tty_master);
		cl->tty_master = -1;
		return;
	}
	if (cl->fd >= 0)
		reply_fds(cl->fd, INITPROTO_PID, cl->pid, 0, NULL, &cl->tty_master,
		          cl->tty_master >= 0 ? 1 : 0);
	/* Ours no more: airlockd holds the master (or, gone, nobody does). */
	if (cl->tty_master >= 0)
		close(cl->tty_master);
	cl->tty_master = -1;
}

/*
 * After a CRIU restore our memory map was made by criu, a process of the
 * host's user namespace, and the kernel counts it as belonging there: being
 * non-dumpable then means that only CAP_SYS_PTRACE in the host's namespace
 * may inspect us, and the next `criu dump`, which works from inside the
 * sandbox's user namespace, is refused.  An exec makes a new memory map in
 * our own user namespace.  Children stay ours; the listener (fd 3) is
 * inherited; every other fd is close-on-exec; a process still running just
 * goes unreported, as its connection already died with the old airlockd.
 */
static void reexec(void)
{
	char *const argv[] = {"airlock-init", NULL};
	char *const envp[] = {NULL};
	sigset_t none, mask;

	sigemptyset(&none);
	sigprocmask(SIG_SETMASK, &none, &mask);
	/* The limit we were given, which the new image raises again. */
	if (nofile_raised)
		setrlimit(RLIMIT_NOFILE, &nofile);
	execve("/dev/.init", argv, envp);
	/* Not re-executed: we go on as we were, still serving. */
	sigprocmask(SIG_SETMASK, &mask, NULL);
}

static void handle_message(struct client *cl)
{
	struct al_error err = AL_ERROR_INIT;
	struct initproto_msg msg;
	int fds[INITPROTO_MAX_FDS];
	size_t nfds = INITPROTO_MAX_FDS;
	int r;

	r = initproto_recv(cl->fd, &msg, fds, &nfds, &err);
	if (r != 0) {
		/* airlockd went away: the process keeps running, unreported,
		 * or held for the next airlockd when it has a process id. */
		if (cl->pid > 0 || cl->id) {
			close(cl->fd);
			cl->fd = -1;
		} else {
			client_remove(cl);
		}
		return;
	}
	switch (msg.type) {
	case INITPROTO_SPAWN:
		handle_spawn(cl, &msg, fds, nfds);
		break;
	case INITPROTO_KILL:
		if (cl->pid <= 0 || msg.num <= 0 || msg.num >= NSIG) {
			reply(cl->fd, INITPROTO_ERROR, EINVAL, INITPROTO_STAGE_FORK,
			      "kill: no process or bad signal");
		} else {
			/* The whole session: the process and whatever it started. */
			kill(-cl->pid, msg.num);
			kill(cl->pid, msg.num);
		}
		break;
	case INITPROTO_PING:
		reply(cl->fd, INITPROTO_PONG, 0, 0, NULL);
		break;
	case INITPROTO_REEXEC:
		reply(cl->fd, INITPROTO_PONG, 0, 0, NULL);
		reexec();
		break;
	case INITPROTO_HOLD:
		handle_hold(cl, &msg, fds, &nfds);
		break;
	case INITPROTO_STDIN_CLOSE:
		if (cl->held[0] >= 0)
			close(cl->held[0]);
		cl->held[0] = -1;
		break;
	case INITPROTO_RELEASE:
		client_remove(cl);
		break;
	case INITPROTO_LIST:
		handle_list(cl);
		break;
	case INITPROTO_ATTACH:
		handle_attach(cl, &msg);
		break;
	default:
		reply(cl->fd, INITPROTO_ERROR, EINVAL, INITPROTO_STAGE_FORK, "unknown message");
	}
	for (size_t i = 0; i < nfds; i++)
		close(fds[i]);
	initproto_msg_free(&msg);
}

static void reap_children(void)
{
	int status;
	pid_t pid;

	while ((pid = waitpid(-1, &status, WNOHANG)) > 0) {
		struct client *cl = client_by_pid(pid);

		if (!cl)
			continue; /* an orphan that was reparented to us */
		/* Its status pipe first: an answer to the spawn comes before
		 * the news of its end (the child wrote before it exited). */
		if (cl->status_fd >= 0)
			spawn_status(cl);
		if (cl->failed) {
			if (cl->fd < 0) {
				client_remove(cl);
			} else {
				cl->pid = 0;
				cl->failed = false;
			}
			continue;
		}
		cl->reaped = true;
		cl->pid = 0;
		cl->end_type = WIFSIGNALED(status) ? INITPROTO_SIGNALED : INITPROTO_EXIT;
		cl->end_num = WIFSIGNALED(status) ? WTERMSIG(status) : WEXITSTATUS(status);
		if (cl->fd >= 0)
			reply(cl->fd, cl->end_type, cl->end_num, 0, NULL);
		/* Kept while its airlockd may still HOLD it, or for the next
		 * airlockd when held. */
		if (cl->fd < 0 && !cl->id)
			client_remove(cl);
	}
}

/*
 * Only a peer outside our pid namespace is airlockd: its pid reads as 0
 * here, while every process of the sandbox has one.
 */
static void accept_client(void)
{
	struct ucred uc;
	socklen_t len = sizeof(uc);
	int fd = accept4(LISTEN_FD, NULL, NULL, SOCK_CLOEXEC);

	if (fd < 0)
		return;
	if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &uc, &len) < 0 || uc.pid != 0) {
		close(fd);
		return;
	}
	clients[n_clients++] = (struct client){
	    .fd = fd, .pid = 0, .status_fd = -1, .tty_master = -1, .held = {-1, -1, -1, -1, -1}};
}

static void serve(int sfd)
{
	static struct pollfd pfds[2 * MAX_CLIENTS + 2];

	for (;;) {
		size_t n = 0;

		pfds[n++] = (struct pollfd){.fd = sfd, .events = POLLIN};
		pfds[n++] = (struct pollfd){.fd = n_clients < MAX_CLIENTS ? LISTEN_FD : -1,
		                            .events = POLLIN};
		for (size_t i = 0; i < n_clients; i++) {
			pfds[n++] = (struct pollfd){.fd = clients[i].fd, .events = POLLIN};
			if (clients[i].status_fd >= 0)
				pfds[n++] =
				    (struct pollfd){.fd = clients[i].status_fd, .events = POLLIN};
		}
		if (poll(pfds, n, -1) < 0)
			continue;
		if (pfds[0].revents) {
			struct signalfd_siginfo si;
			while (read(sfd, &si, sizeof(si)) > 0)
				;
			reap_children();
		}
		if (pfds[1].revents & POLLIN)
			accept_client();
		for (size_t i = 2; i < n; i++) {
			struct client *cl;
			if (!pfds[i].revents || pfds[i].fd < 0)
				continue;
			cl = client_by_fd(pfds[i].fd);
			if (cl) {
				handle_message(cl);
				continue;
			}
			cl = client_by_status_fd(pfds[i].fd);
			if (cl)
				spawn_status(cl);
		}
	}
}

int main(void)
{
	sigset_t mask;
	int sfd;

	/* exec made us dumpable again: nothing in the sandbox may ptrace us. */
	prctl(PR_SET_DUMPABLE, 0, 0, 0, 0);
	/* exec named us after the file, /dev/.init. */
	prctl(PR_SET_NAME, "airlock-init", 0, 0, 0);
	sigemptyset(&mask);
	sigaddset(&mask, SIGCHLD);
	sigprocmask(SIG_BLOCK, &mask, NULL);
	sfd = signalfd(-1, &mask, SFD_CLOEXEC | SFD_NONBLOCK);
	if (sfd < 0)
		return 1;
	/* Up to N_HELD fds for each of the MAX_CLIENTS records. */
	if (getrlimit(RLIMIT_NOFILE, &nofile) == 0) {
		struct rlimit more = nofile;
		more.rlim_cur = nofile.rlim_max < 8192 ? nofile.rlim_max : 8192;
		if (more.rlim_cur > nofile.rlim_cur)
			nofile_raised = setrlimit(RLIMIT_NOFILE, &more) == 0;
	}
	/* Children may have exited before the signalfd existed. */
	reap_children();
	serve(sfd);
	return 0;
}
