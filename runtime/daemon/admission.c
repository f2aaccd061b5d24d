/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Who may take how much of airlockd's front door (admission.h).
 *
 * libmicrohttpd holds at most 2048 connections, and a connection that
 * trickles a byte now and then is never idle long enough to be closed: one
 * client could hold them all and lock everyone else out.  So airlockd
 * accepts connections itself, counts them per client uid (SO_PEERCRED) and
 * closes one over its uid's share at once, before libmicrohttpd sees it;
 * and each uid's requests draw on a token bucket.  Root is not limited.
 */
#include "admission.h"

#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include "log.h"
#include "util.h"

#define MAX_UIDS 1024

struct uid_share {
	uid_t uid;
	unsigned conns;
	double tokens;
	uint64_t refilled_ms;
	bool warned;
};

struct admission {
	struct MHD_Daemon *mhd;
	int listen_fd;
	int stop_fd; /* eventfd */
	pthread_t thread;
	pthread_mutex_t lock;
	unsigned rate; /* requests a second per uid; bursts of twice that */
	struct uid_share uids[MAX_UIDS];
	size_t n_uids;
};

/* The share of uid, made if need be (NULL when the table is full); lock held. */
static struct uid_share *share_locked(struct admission *a, uid_t uid)
{
	for (size_t i = 0; i < a->n_uids; i++)
		if (a->uids[i].uid == uid)
			return &a->uids[i];
	/* Reuse a slot nobody holds a connection on (its bucket refills anyway). */
	for (size_t i = 0; i < a->n_uids; i++)
		if (a->uids[i].conns == 0) {
			a->uids[i] = (struct uid_share){
			    .uid = uid, .tokens = 2.0 * a->rate, .refilled_ms = al_now_ms()};
			return &a->uids[i];
		}
	if (a->n_uids == MAX_UIDS)
		return NULL;
	a->uids[a->n_uids] =
	    (struct uid_share){.uid = uid, .tokens = 2.0 * a->rate, .refilled_ms = al_now_ms()};
	return &a->uids[a->n_uids++];
}

static bool peer_uid(int fd, uid_t *uid)
{
	struct ucred cred;
	socklen_t len = sizeof(cred);

	if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) < 0)
		return false;
	*uid = cred.uid;
	return true;
}

/* Count a new connection of uid, or say it is over its share.  Counted
 * here, at accept, not when libmicrohttpd's thread gets to it: a burst of
 * connects would all pass before any was counted. */
static bool over_share(struct admission *a, uid_t uid)
{
	struct uid_share *sh;
	bool over;

	pthread_mutex_lock(&a->lock);
	sh = share_locked(a, uid);
	over = uid != 0 && (!sh || sh->conns >= ADMISSION_CONNECTIONS_PER_UID);
	if (!over && sh)
		sh->conns++;
	if (over && sh && !sh->warned) {
		sh->warned = true;
		log_warn("uid %u holds %d connections: more are closed at once", (unsigned)uid,
		         ADMISSION_CONNECTIONS_PER_UID);
	}
	pthread_mutex_unlock(&a->lock);
	return over;
}

static void release(struct admission *a, uid_t uid)
{
	struct uid_share *sh;

	pthread_mutex_lock(&a->lock);
	if ((sh = share_locked(a, uid)) && sh->conns > 0 && --sh->conns == 0)
		sh->warned = false;
	pthread_mutex_unlock(&a->lock);
}

static void *accept_loop(void *arg)
{
	struct admission *a = arg;

	for (;;) {
		struct pollfd p[2] = {{.fd = a->listen_fd, .events = POLLIN},
		                      {.fd = a->stop_fd, .events = POLLIN}};
		struct sockaddr_storage addr;
		socklen_t len = sizeof(addr);
		uid_t uid = 0;
		int fd;

		if (poll(p, 2, -1) < 0)
			continue;
		if (p[1].revents)
			break;
		fd = accept4(a->listen_fd, (struct sockaddr *)&addr, &len, SOCK_CLOEXEC);
		if (fd < 0)
			continue;
		if (!peer_uid(fd, &uid) || over_share(a, uid)) {
			close(fd);
			continue;
		}
		/* Bulk answers (a file, an archive) go out with sendfile, at most
		 * a socket buffer per call and a poll between calls: the default
		 * ~200 KiB made that a wakeup per 200 KiB.  Memory is taken only
		 * while data waits for a slow reader: at most 64 connections of
		 * a non-root uid times 2 MiB. */
		setsockopt(fd, SOL_SOCKET, SO_SNDBUFFORCE, &(int){ADMISSION_SEND_BUFFER},
		           sizeof(int));
		/* libmicrohttpd owns fd from here, also when it fails. */
		if (MHD_add_connection(a->mhd, fd, (struct sockaddr *)&addr, len) != MHD_YES) {
			log_warn("cannot take a connection: %m");
			release(a, uid);
		}
	}
	return NULL;
}

void admission_notify(void *cls, struct MHD_Connection *c, void **socket_context,
                      enum MHD_ConnectionNotificationCode toe)
{
	struct admission *a = cls;
	const union MHD_ConnectionInfo *ci =
	    MHD_get_connection_info(c, MHD_CONNECTION_INFO_CONNECTION_FD);
	uid_t uid;

	if (!a)
		return;
	if (toe == MHD_CONNECTION_NOTIFY_STARTED) {
		/* The uid, kept for the close (counted at accept): uid + 1, so
		 * that root is not NULL. */
		if (ci && peer_uid(ci->connect_fd, &uid))
			*socket_context = (void *)(uintptr_t)((uintptr_t)uid + 1);
		return;
	}
	if (*socket_context)
		release(a, (uid_t)((uintptr_t)*socket_context - 1));
}

bool admission_request(struct admission *a, uid_t uid)
{
	struct uid_share *sh;
	uint64_t now;
	bool ok;

	if (!a || uid == 0)
		return true; /* root, the common case, costs nothing */
	now = al_now_ms();
	pthread_mutex_lock(&a->lock);
	sh = share_locked(a, uid);
	if (sh) {
		sh->tokens += (double)(now - sh->refilled_ms) * a->rate / 1000.0;
		if (sh->tokens > 2.0 * a->rate)
			sh->tokens = 2.0 * a->rate;
		sh->refilled_ms = now;
	}
	ok = sh && sh->tokens >= 1;
	if (ok)
		sh->tokens -= 1;
	pthread_mutex_unlock(&a->lock);
	return ok;
}

int admission_new(int listen_fd, unsigned rate, struct admission **out, struct al_error *err)
{
	struct admission *a = calloc(1, sizeof(*a));

	if (!a)
		return al_error_set(err, ENOMEM, "out of memory");
	a->listen_fd = listen_fd;
	a->rate = rate ? rate : ADMISSION_RATE;
	a->stop_fd = eventfd(0, EFD_CLOEXEC);
	if (a->stop_fd < 0) {
		free(a);
		return al_error_errno(err, "eventfd");
	}
	pthread_mutex_init(&a->lock, NULL);
	*out = a;
	return 0;
}

int admission_start(struct admission *a, struct MHD_Daemon *mhd, struct al_error *err)
{
	int r;

	a->mhd = mhd;
	r = pthread_create(&a->thread, NULL, accept_loop, a);
	if (r != 0)
		return al_error_set(err, r, "cannot start the accept thread: %s", strerror(r));
	return 0;
}

void admission_stop(struct admission *a)
{
	uint64_t one = 1;

	if (!a || !a->mhd)
		return;
	if (write(a->stop_fd, &one, sizeof(one)) < 0)
		log_warn("stop the accept thread: %m");
	pthread_join(a->thread, NULL);
	a->mhd = NULL;
}

void admission_free(struct admission *a)
{
	if (!a)
		return;
	admission_stop(a);
	close(a->stop_fd);
	pthread_mutex_destroy(&a->lock);
	free(a);
}
