/* SPDX-License-Identifier: Apache-2.0 */
#include "initproto.h"

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "cleanup.h"
#include "strv.h"

/* A socket with a timeout (airlockd's side: sandbox_connect_init) says
 * EAGAIN when the peer, a sandbox's PID 1, did not read or answer in time. */
static int io_error(int r, const char *what, struct al_error *err)
{
	if (r == -EAGAIN || r == -EWOULDBLOCK)
		return al_error_set(err, ETIMEDOUT, "%s: no progress in time (is PID 1 stuck?)",
		                    what);
	errno = -r;
	return al_error_errno(err, "%s", what);
}

static int send_all(int sock, const char *p, size_t len)
{
	while (len > 0) {
		ssize_t n = send(sock, p, len, MSG_NOSIGNAL);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

#define HEADER_LEN 18 /* type, num, aux, argc, envc, has_text */

static void put_u32(char *p, uint32_t v)
{
	for (int i = 0; i < 4; i++)
		p[i] = (char)((v >> (8 * i)) & 0xff);
}

static uint32_t get_u32(const char *p)
{
	uint32_t v = 0;
	for (int i = 0; i < 4; i++)
		v |= (uint32_t)(uint8_t)p[i] << (8 * i);
	return v;
}

/* The payload of m, in one allocation. */
static char *encode(const struct initproto_msg *m, size_t *len_out)
{
	size_t argc = al_strv_length(m->argv), envc = al_strv_length(m->env), len = HEADER_LEN;
	char *buf, *p;

	for (size_t i = 0; i < argc; i++)
		len += strlen(m->argv[i]) + 1;
	for (size_t i = 0; i < envc; i++)
		len += strlen(m->env[i]) + 1;
	if (m->text)
		len += strlen(m->text) + 1;
	buf = malloc(len);
	if (!buf)
		return NULL;
	buf[0] = (char)m->type;
	put_u32(buf + 1, (uint32_t)m->num);
	put_u32(buf + 5, m->aux);
	put_u32(buf + 9, (uint32_t)argc);
	put_u32(buf + 13, (uint32_t)envc);
	buf[17] = m->text ? 1 : 0;
	p = buf + HEADER_LEN;
	for (size_t i = 0; i < argc; i++)
		p = stpcpy(p, m->argv[i]) + 1;
	for (size_t i = 0; i < envc; i++)
		p = stpcpy(p, m->env[i]) + 1;
	if (m->text)
		stpcpy(p, m->text);
	*len_out = len;
	return buf;
}

int initproto_send_byte(int sock, uint8_t byte, const int *fds, size_t nfds)
{
	union {
		char buf[CMSG_SPACE(sizeof(int) * INITPROTO_MAX_FDS)];
		struct cmsghdr align;
	} control;
	struct iovec iov = {.iov_base = &byte, .iov_len = 1};
	struct msghdr mh = {.msg_iov = &iov, .msg_iovlen = 1};
	ssize_t n;

	if (nfds > INITPROTO_MAX_FDS)
		return -EINVAL;
	if (nfds > 0) {
		struct cmsghdr *cm;
		memset(&control, 0, sizeof(control));
		mh.msg_control = control.buf;
		mh.msg_controllen = CMSG_SPACE(sizeof(int) * nfds);
		cm = CMSG_FIRSTHDR(&mh);
		cm->cmsg_level = SOL_SOCKET;
		cm->cmsg_type = SCM_RIGHTS;
		cm->cmsg_len = CMSG_LEN(sizeof(int) * nfds);
		memcpy(CMSG_DATA(cm), fds, sizeof(int) * nfds);
	}
	do
		n = sendmsg(sock, &mh, MSG_NOSIGNAL);
	while (n < 0 && errno == EINTR);
	return n < 0 ? -errno : 0;
}

int initproto_send(int sock, const struct initproto_msg *m, const int *fds, size_t nfds,
                   struct al_error *err)
{
	size_t len = 0;
	_cleanup_free_ char *text = encode(m, &len);
	uint8_t hdr[4];
	int r;

	if (!text)
		return al_error_set(err, ENOMEM, "out of memory encoding init message");
	if (nfds > INITPROTO_MAX_FDS)
		return al_error_set(err, EINVAL, "too many fds for init message");
	if (len > INITPROTO_MAX_FRAME)
		return al_error_set(err, E2BIG, "init message of %zu bytes is too large", len);
	hdr[0] = (uint8_t)(len & 0xff);
	hdr[1] = (uint8_t)((len >> 8) & 0xff);
	hdr[2] = (uint8_t)((len >> 16) & 0xff);
	hdr[3] = (uint8_t)((len >> 24) & 0xff);

	/* The fds travel with the first header byte so the receiver gets them
	 * with its first recvmsg, whatever the stream splits. */
	r = initproto_send_byte(sock, hdr[0], fds, nfds);
	if (r == 0)
		r = send_all(sock, (const char *)hdr + 1, 3);
	if (r == 0)
		r = send_all(sock, text, len);
	if (r < 0)
		return io_error(r, "send to airlock-init", err);
	return 0;
}

static int recv_all(int sock, char *p, size_t len)
{
	while (len > 0) {
		ssize_t n = recv(sock, p, len, 0);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		if (n == 0)
			return -ECONNRESET;
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

/* Parse payload (len bytes) into m, which takes it over on success. */
static int decode(char *payload, size_t len, struct initproto_msg *m, struct al_error *err)
{
	uint32_t argc, envc;
	size_t n, off = HEADER_LEN;
	char **v;

	if (len < HEADER_LEN)
		return al_error_set(err, EPROTO, "init message of %zu bytes is too short", len);
	argc = get_u32(payload + 9);
	envc = get_u32(payload + 13);
	/* Every string takes at least its NUL, which bounds the counts. */
	n = (size_t)argc + envc + (payload[17] ? 1 : 0);
	if (argc > len || envc > len || n > len - HEADER_LEN)
		return al_error_set(err, EPROTO, "malformed init message");
	v = calloc((size_t)argc + envc + 2, sizeof(char *));
	if (!v)
		return al_error_set(err, ENOMEM, "out of memory");
	for (size_t i = 0; i < n; i++) {
		char *end = off < len ? memchr(payload + off, '\0', len - off) : NULL;
		if (!end) {
			free(v);
			return al_error_set(err, EPROTO, "malformed init message");
		}
		if (i < argc)
			v[i] = payload + off;
		else if (i < (size_t)argc + envc)
			v[i + 1] = payload + off;
		else
			m->text = payload + off;
		off = (size_t)(end - payload) + 1;
	}
	if (off != len) {
		free(v);
		return al_error_set(err, EPROTO, "malformed init message");
	}
	m->type = (uint8_t)payload[0];
	m->num = (int32_t)get_u32(payload + 1);
	m->aux = get_u32(payload + 5);
	m->argv = v;
	m->env = v + argc + 1;
	m->payload = payload;
	m->vectors = v;
	return 0;
}

void initproto_msg_free(struct initproto_msg *m)
{
	free(m->payload);
	free(m->vectors);
	*m = (struct initproto_msg){0};
}

/* The fds that came with a frame: closed on leaving scope unless handed over. */
struct frame_fds {
	int *fds;
	size_t n;
};

static void frame_fds_close(struct frame_fds *f)
{
	/* Received fds belong to this frame; a broken frame must not leak them. */
	for (size_t i = 0; i < f->n; i++)
		close(f->fds[i]);
}

static int recv_error(int r, struct al_error *err)
{
	return io_error(r, "receive from init socket", err);
}

int initproto_recv(int sock, struct initproto_msg *m, int *fds, size_t *nfds, struct al_error *err)
{
	union {
		char buf[CMSG_SPACE(sizeof(int) * INITPROTO_MAX_FDS)];
		struct cmsghdr align;
	} control;
	struct msghdr mh = {0};
	_cleanup_free_ char *text = NULL;
	_cleanup_(frame_fds_close) struct frame_fds got = {.fds = fds};
	size_t cap = nfds ? *nfds : 0;
	struct iovec iov;
	uint8_t hdr[4];
	uint32_t len;
	ssize_t n;
	int r;

	*m = (struct initproto_msg){0};
	if (nfds)
		*nfds = 0;
	iov.iov_base = hdr;
	iov.iov_len = 1;
	mh.msg_iov = &iov;
	mh.msg_iovlen = 1;
	mh.msg_control = control.buf;
	mh.msg_controllen = sizeof(control.buf);
	do
		n = recvmsg(sock, &mh, MSG_CMSG_CLOEXEC);
	while (n < 0 && errno == EINTR);
	if (n < 0)
		return recv_error(-errno, err);
	if (n == 0)
		return 1;
	for (struct cmsghdr *cm = CMSG_FIRSTHDR(&mh); cm; cm = CMSG_NXTHDR(&mh, cm)) {
		size_t count;
		int *in;
		if (cm->cmsg_level != SOL_SOCKET || cm->cmsg_type != SCM_RIGHTS)
			continue;
		count = (cm->cmsg_len - CMSG_LEN(0)) / sizeof(int);
		in = (int *)CMSG_DATA(cm);
		for (size_t i = 0; i < count; i++) {
			if (got.n < cap)
				fds[got.n++] = in[i];
			else
				close(in[i]);
		}
	}
	r = recv_all(sock, (char *)hdr + 1, 3);
	if (r < 0)
		return recv_error(r, err);
	len = (uint32_t)hdr[0] | (uint32_t)hdr[1] << 8 | (uint32_t)hdr[2] << 16 |
	      (uint32_t)hdr[3] << 24;
	if (len > INITPROTO_MAX_FRAME)
		return al_error_set(err, EPROTO, "init message length %u out of range", len);
	text = malloc((size_t)len + 1);
	if (!text)
		return al_error_set(err, ENOMEM, "out of memory");
	r = recv_all(sock, text, len);
	if (r < 0)
		return recv_error(r, err);
	r = decode(text, len, m, err);
	if (r < 0)
		return r;
	text = NULL; /* owned by m now */
	/* A whole frame: its fds are the caller's now. */
	if (nfds)
		*nfds = got.n;
	got.n = 0;
	return 0;
}
