/* SPDX-License-Identifier: Apache-2.0 */
#include "execstream.h"

#include <errno.h>

int execstream_put(struct al_buf *b, uint8_t type, const void *payload, size_t len)
{
	unsigned char hdr[EXECSTREAM_HEADER_LEN];

	if (len > EXECSTREAM_MAX_PAYLOAD)
		return -E2BIG;
	hdr[0] = type;
	hdr[1] = (unsigned char)(len >> 24);
	hdr[2] = (unsigned char)(len >> 16);
	hdr[3] = (unsigned char)(len >> 8);
	hdr[4] = (unsigned char)len;
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
