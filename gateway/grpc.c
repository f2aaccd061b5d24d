/* SPDX-License-Identifier: Apache-2.0 */
/*
 * gRPC helpers over the calls of h2c.c: protobuf-c messages in and out, statuses with
 * messages, the client's deadline.
 */
#include "grpc.h"

#include "cleanup.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

ProtobufCMessage *gw_grpc_unpack(struct gw_grpc_call *call, const ProtobufCMessageDescriptor *desc)
{
	size_t len;
	const void *data = gw_grpc_request(call, &len);
	ProtobufCMessage *m = protobuf_c_message_unpack(desc, NULL, len, data);

	if (!m)
		gw_grpc_fail(call, GW_GRPC_INVALID_ARGUMENT, "%s: not a valid %s message",
		             gw_grpc_path(call), desc->name);
	return m;
}

int gw_grpc_send(struct gw_grpc_call *call, const ProtobufCMessage *m)
{
	size_t len = protobuf_c_message_get_packed_size(m);
	_cleanup_free_ uint8_t *buf = malloc(len ? len : 1);

	if (!buf)
		return -ENOMEM;
	protobuf_c_message_pack(m, buf);
	return gw_grpc_send_bytes(call, buf, len);
}

void gw_grpc_reply(struct gw_grpc_call *call, const ProtobufCMessage *m)
{
	int r = gw_grpc_send(call, m);

	if (r == -ENOMEM)
		gw_grpc_finish(call, GW_GRPC_RESOURCE_EXHAUSTED, "out of memory");
	else
		gw_grpc_finish(call, GW_GRPC_OK, NULL);
}

void gw_grpc_fail(struct gw_grpc_call *call, int code, const char *fmt, ...)
{
	char msg[1024];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	gw_grpc_finish(call, code, msg);
}

long gw_grpc_timeout_ms(const struct gw_grpc_call *call)
{
	const char *v = gw_grpc_metadata(call, "grpc-timeout");
	char *end;
	double n;

	/* "TimeoutValue TimeoutUnit": at most 8 digits, then H, M, S, m, u or n. */
	if (!v)
		return -1;
	errno = 0;
	n = (double)strtoul(v, &end, 10);
	if (errno || end == v)
		return -1;
	switch (*end) {
	case 'H':
		return (long)(n * 3600e3);
	case 'M':
		return (long)(n * 60e3);
	case 'S':
		return (long)(n * 1e3);
	case 'm':
		return (long)n;
	case 'u':
		return (long)(n / 1e3);
	case 'n':
		return (long)(n / 1e6);
	default:
		return -1;
	}
}

char *gw_grpc_percent_encode(const char *msg)
{
	static const char hex[] = "0123456789ABCDEF";
	size_t len = strlen(msg);
	char *out = malloc(len * 3 + 1), *o = out;

	if (!out)
		return NULL;
	/* Printable ASCII but '%' goes as it is; anything else as %XX of its UTF-8 bytes. */
	for (const unsigned char *p = (const unsigned char *)msg; *p; p++) {
		if (*p >= 0x20 && *p <= 0x7e && *p != '%') {
			*o++ = (char)*p;
		} else {
			*o++ = '%';
			*o++ = hex[*p >> 4];
			*o++ = hex[*p & 15];
		}
	}
	*o = '\0';
	return out;
}
