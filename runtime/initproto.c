/* SPDX-License-Identifier: Apache-2.0 */
#include "initproto.h"

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "cleanup.h"

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

int initproto_send(int sock, const cJSON *msg, const int *fds, size_t nfds, struct al_error *err)
{
	_cleanup_free_ char *text = cJSON_PrintUnformatted(msg);
	union {
		char buf[CMSG_SPACE(sizeof(int) * INITPROTO_MAX_FDS)];
		struct cmsghdr align;
	} control;
	struct msghdr mh = {0};
	struct iovec iov;
	unsigned char first;
	uint8_t hdr[4];
	size_t len;
	ssize_t n;
	int r;

	if (!text)
		return al_error_set(err, ENOMEM, "out of memory encoding init message");
	if (nfds > INITPROTO_MAX_FDS)
		return al_error_set(err, EINVAL, "too many fds for init message");
	len = strlen(text);
	if (len + 1 > INITPROTO_MAX_FRAME || len == 0)
		return al_error_set(err, E2BIG, "init message of %zu bytes is too large", len);
	hdr[0] = (uint8_t)(len & 0xff);
	hdr[1] = (uint8_t)((len >> 8) & 0xff);
	hdr[2] = (uint8_t)((len >> 16) & 0xff);
	hdr[3] = (uint8_t)((len >> 24) & 0xff);

	/* The fds travel with the first header byte so the receiver gets them
	 * with its first recvmsg, whatever the stream splits. */
	first = hdr[0];
	iov.iov_base = &first;
	iov.iov_len = 1;
	mh.msg_iov = &iov;
	mh.msg_iovlen = 1;
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
	if (n < 0)
		return al_error_errno(err, "send to airlock-init");
	r = send_all(sock, (const char *)hdr + 1, 3);
	if (r == 0)
		r = send_all(sock, text, len);
	if (r < 0) {
		errno = -r;
		return al_error_errno(err, "send to airlock-init");
	}
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

int initproto_recv(int sock, cJSON **msg, int *fds, size_t *nfds, struct al_error *err)
{
	union {
		char buf[CMSG_SPACE(sizeof(int) * INITPROTO_MAX_FDS)];
		struct cmsghdr align;
	} control;
	struct msghdr mh = {0};
	_cleanup_free_ char *text = NULL;
	size_t cap = nfds ? *nfds : 0;
	struct iovec iov;
	uint8_t hdr[4];
	size_t got = 0;
	uint32_t len;
	ssize_t n;
	int r;

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
		return al_error_errno(err, "receive from init socket");
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
			if (got < cap)
				fds[got++] = in[i];
			else
				close(in[i]);
		}
	}
	if (nfds)
		*nfds = got;
	r = recv_all(sock, (char *)hdr + 1, 3);
	if (r < 0)
		goto fail_errno;
	len = (uint32_t)hdr[0] | (uint32_t)hdr[1] << 8 | (uint32_t)hdr[2] << 16 |
	      (uint32_t)hdr[3] << 24;
	if (len == 0 || len > INITPROTO_MAX_FRAME) {
		r = al_error_set(err, EPROTO, "init message length %u out of range", len);
		goto fail;
	}
	text = malloc((size_t)len + 1);
	if (!text) {
		r = al_error_set(err, ENOMEM, "out of memory");
		goto fail;
	}
	r = recv_all(sock, text, len);
	if (r < 0)
		goto fail_errno;
	text[len] = '\0';
	*msg = cJSON_ParseWithLength(text, len);
	if (!*msg || !cJSON_IsObject(*msg)) {
		cJSON_Delete(*msg);
		*msg = NULL;
		r = al_error_set(err, EPROTO, "malformed init message");
		goto fail;
	}
	return 0;

fail_errno:
	errno = -r;
	r = al_error_errno(err, "receive from init socket");
fail:
	/* Received fds belong to this frame; a broken frame must not leak them. */
	for (size_t i = 0; i < got; i++)
		close(fds[i]);
	if (nfds)
		*nfds = 0;
	return r;
}
