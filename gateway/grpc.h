/* SPDX-License-Identifier: Apache-2.0 */
#pragma once

/*
 * gRPC on the gateway's cleartext HTTP/2 side (h2c.c): a request stream whose
 * content-type is application/grpc is served in the gateway itself rather than handed
 * to the HTTP/1.1 server, because gRPC needs what that hop loses: trailers
 * (grpc-status, grpc-message) and server streams whose messages go out as they are
 * made.  Messages are protobuf-c's; each is framed with gRPC's 5-byte prefix (a
 * compression flag, always 0 here, and a big-endian length).  A call runs in its own
 * thread, so a handler may block (a long wait, a stream of output).
 */

#include <stdbool.h>
#include <stddef.h>

#include <protobuf-c/protobuf-c.h>

struct gw_server;
struct gw_grpc_call;

/* The status codes of gRPC (grpc/doc/statuscodes.md) that the gateway answers. */
enum gw_grpc_code {
	GW_GRPC_OK = 0,
	GW_GRPC_CANCELLED = 1,
	GW_GRPC_UNKNOWN = 2,
	GW_GRPC_INVALID_ARGUMENT = 3,
	GW_GRPC_DEADLINE_EXCEEDED = 4,
	GW_GRPC_NOT_FOUND = 5,
	GW_GRPC_ALREADY_EXISTS = 6,
	GW_GRPC_PERMISSION_DENIED = 7,
	GW_GRPC_RESOURCE_EXHAUSTED = 8,
	GW_GRPC_FAILED_PRECONDITION = 9,
	GW_GRPC_ABORTED = 10,
	GW_GRPC_OUT_OF_RANGE = 11,
	GW_GRPC_UNIMPLEMENTED = 12,
	GW_GRPC_INTERNAL = 13,
	GW_GRPC_UNAVAILABLE = 14,
	GW_GRPC_UNAUTHENTICATED = 16,
};

/* ---- the call, as h2c.c keeps it ---- */

/* "/package.Service/Method" */
const char *gw_grpc_path(const struct gw_grpc_call *call);
/* "host:port" the client connected to, or NULL. */
const char *gw_grpc_authority(const struct gw_grpc_call *call);
/* A request header (metadata) by its lower-case name, or NULL. */
const char *gw_grpc_metadata(const struct gw_grpc_call *call, const char *name);
/* The request message, its frame removed. */
const void *gw_grpc_request(const struct gw_grpc_call *call, size_t *len);
/* One response message, already serialized (framed here); -EPIPE once the client is gone. */
int gw_grpc_send_bytes(struct gw_grpc_call *call, const void *data, size_t len);
/* The call's status (the trailers); the first one given counts. */
void gw_grpc_finish(struct gw_grpc_call *call, int code, const char *message);
/* Whether the client reset the stream or went away. */
bool gw_grpc_gone(struct gw_grpc_call *call);

/* ---- helpers on top (grpc.c) ---- */

/* The request unpacked (protobuf_c_message_free_unpacked it), or NULL after finishing the
 * call with INVALID_ARGUMENT. */
ProtobufCMessage *gw_grpc_unpack(struct gw_grpc_call *call, const ProtobufCMessageDescriptor *desc);
/* m serialized and sent; -EPIPE once the client is gone, -ENOMEM. */
int gw_grpc_send(struct gw_grpc_call *call, const ProtobufCMessage *m);
/* Send m and finish OK (unary calls). */
void gw_grpc_reply(struct gw_grpc_call *call, const ProtobufCMessage *m);
/* Finish with code and a formatted message. */
void gw_grpc_fail(struct gw_grpc_call *call, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* The client's deadline (grpc-timeout) in milliseconds from the call's start; -1: none. */
long gw_grpc_timeout_ms(const struct gw_grpc_call *call);
/* grpc-message's value: percent-encoded as gRPC's HTTP/2 mapping says (free()). */
char *gw_grpc_percent_encode(const char *msg);

/* The gRPC services (one so far): serve the call and finish it.  init and shutdown as
 * server.h's services. */
void gw_modal_serve(struct gw_server *s, struct gw_grpc_call *call);
struct al_error;
int gw_modal_init(struct gw_server *s, struct al_error *err);
void gw_modal_shutdown(void);
