/* SPDX-License-Identifier: Apache-2.0 */
#include "execstream.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdlib.h>
#include <sys/ioctl.h>
#include <unistd.h>

int execstream_put(struct al_buf *b, uint8_t type, const void *payload, size_t len)
{
	unsigned char hdr[EXECSTREAM_HEADER_LEN];

	if (len > EXECSTREAM_MAX_PAYLOAD)
		return -E2BIG;
	execstream_header(hdr, type, len);
	if (al_buf_append(b, hdr, sizeof(hdr)) < 0 || (len && al_buf_append(b, payload, len) < 0))
		return -ENOMEM;
	return 0;
}

int execstream_next(const char *buf, size_t len, uint8_t *type, const char **payload,
                    size_t *payload_len, size_t *frame_len)
{
	const unsigned char *u = (const unsigned char *)buf;
	size_t n;

	if (len < EXECSTREAM_HEADER_LEN)
		return 0;
	n = (size_t)u[1] << 24 | (size_t)u[2] << 16 | (size_t)u[3] << 8 | u[4];
	if (n > EXECSTREAM_MAX_PAYLOAD)
		return -EPROTO;
	if (len - EXECSTREAM_HEADER_LEN < n)
		return 0;
	*type = u[0];
	*payload = buf + EXECSTREAM_HEADER_LEN;
	*payload_len = n;
	*frame_len = EXECSTREAM_HEADER_LEN + n;
	return 1;
}

void execstream_header(unsigned char hdr[EXECSTREAM_HEADER_LEN], uint8_t type, size_t len)
{
	hdr[0] = type;
	hdr[1] = (unsigned char)(len >> 24);
	hdr[2] = (unsigned char)(len >> 16);
	hdr[3] = (unsigned char)(len >> 8);
	hdr[4] = (unsigned char)len;
}

ssize_t execstream_header_len(const unsigned char hdr[EXECSTREAM_HEADER_LEN])
{
	size_t n = (size_t)hdr[1] << 24 | (size_t)hdr[2] << 16 | (size_t)hdr[3] << 8 | hdr[4];

	return n > EXECSTREAM_MAX_PAYLOAD ? -EPROTO : (ssize_t)n;
}

void execstream_mover_free(struct execstream_mover *m)
{
	free(m->buf);
	m->buf = NULL;
	m->off = m->len = 0;
}

/* splice's EAGAIN does not say which side is not ready: the source has
 * bytes queued (FIONREAD) when it is the destination that is full. */
static ssize_t wait_for(int from, int to, int *wait_fd, short *wait_events)
{
	int queued = 0;

	if (to >= 0 && ioctl(from, FIONREAD, &queued) == 0 && queued > 0) {
		*wait_fd = to;
		*wait_events = POLLOUT;
	} else {
		*wait_fd = from;
		*wait_events = POLLIN;
	}
	return -EAGAIN;
}

/* Write what buf holds; -EAGAIN (waiting on to) while some is left. */
static ssize_t flush_copy(struct execstream_mover *m, int to, int *wait_fd, short *wait_events)
{
	while (m->len > 0) {
		ssize_t n = write(to, m->buf + m->off, m->len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && errno == EAGAIN) {
			*wait_fd = to;
			*wait_events = POLLOUT;
			return -EAGAIN;
		}
		if (n < 0)
			return -errno;
		m->off += (size_t)n;
		m->len -= (size_t)n;
	}
	m->off = 0;
	return 0;
}

ssize_t execstream_move(struct execstream_mover *m, int from, int to, int *wait_fd,
                        short *wait_events)
{
	ssize_t n;

	if (to >= 0 && (n = flush_copy(m, to, wait_fd, wait_events)) < 0)
		return n;
	if (m->left == 0)
		return 1; /* the frame's last bytes are written now */
	if (!m->copy && to >= 0) {
		n = splice(from, NULL, to, NULL, m->left,
		           SPLICE_F_NONBLOCK | SPLICE_F_MOVE | SPLICE_F_MORE);
		if (n > 0) {
			m->left -= (size_t)n;
			return n;
		}
		if (n == 0)
			return 0;
		if (errno == EAGAIN)
			return wait_for(from, to, wait_fd, wait_events);
		if (errno != EINVAL && errno != EINTR)
			return -errno;
		/* Neither side is a pipe (or splice is not supported for
		 * them): copy, from now on. */
		m->copy = errno == EINVAL;
		if (!m->copy)
			return wait_for(from, to, wait_fd, wait_events);
	}
	if (!m->buf && !(m->buf = malloc(EXECSTREAM_COPY_BUF)))
		return -ENOMEM;
	do
		n = read(from, m->buf,
		         m->left < EXECSTREAM_COPY_BUF ? m->left : EXECSTREAM_COPY_BUF);
	while (n < 0 && errno == EINTR);
	if (n < 0 && errno == EAGAIN) {
		*wait_fd = from;
		*wait_events = POLLIN;
		return -EAGAIN;
	}
	if (n <= 0)
		return n < 0 ? -errno : 0;
	m->left -= (size_t)n;
	if (to >= 0) {
		ssize_t r;
		m->off = 0;
		m->len = (size_t)n;
		r = flush_copy(m, to, wait_fd, wait_events);
		/* What was read counts; the rest is written on the next call. */
		if (r < 0 && r != -EAGAIN)
			return r;
	}
	return n;
}
