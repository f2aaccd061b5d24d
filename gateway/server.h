/* SPDX-License-Identifier: Apache-2.0 */
#pragma once

/*
 * The HTTP side of airlock-gateway: libmicrohttpd, one thread per connection (a streamed
 * command holds its connection and blocks on airlockd while it waits for output), request
 * bodies gathered whole up to a cap, multipart/form-data split into parts by MHD's own
 * post processor.
 */

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>

#include <cjson/cJSON.h>
#include <microhttpd.h>

#include "backend.h"
#include "keys.h"
#include "state.h"
#include "util.h"

#define GW_MAX_BODY (256u << 20)

struct gw_part {
	char *name;
	char *filename;
	struct al_buf data;
};

struct gw_request {
	struct MHD_Connection *conn;
	const char *method;
	const char *url;
	struct al_buf body;
	bool too_large;
	struct MHD_PostProcessor *pp;
	struct gw_part *parts;
	size_t n_parts;
	bool multipart;
};

struct gw_front_conn;

struct gw_server {
	struct gw_backend backend;
	struct gw_keys keys;
	const char *rootfs;    /* for new sandboxes; NULL: airlockd's default */
	struct gw_state state; /* the registries on disk, when --state-dir is given */
	const char *image;     /* or an imported image for them; NULL: none */
	struct MHD_Daemon *mhd;
	/* The front door: accepts, and tells HTTP/2 from HTTP/1.1 by the first bytes. */
	int listen_fd;
	char self_url[64]; /* "http://ADDR:PORT" of listen_fd, for the HTTP/2 front's hop */
	pthread_t acceptor;
	bool accepting;
	pthread_mutex_t conns_lock;
	pthread_cond_t conns_idle;
	struct gw_front_conn *conns; /* connections not yet handed to MHD, and h2c ones */
};

/* A header of the request, or NULL. */
const char *gw_header(const struct gw_request *rq, const char *name);
const char *gw_query(const struct gw_request *rq, const char *name);

/* Fill a service's error body j: its shape of the status, the service's error code (may
 * be NULL) and the message. */
typedef void (*gw_error_shape)(cJSON *j, unsigned status, const char *code, const char *msg);

/* Queue an answer; they return what the MHD access handler must return. */
enum MHD_Result gw_reply(struct gw_request *rq, unsigned status, const char *content_type,
                         const void *data, size_t len);
enum MHD_Result gw_reply_json(struct gw_request *rq, unsigned status, const cJSON *j);
/* An error in the service's shape, its message formatted from fmt (and cut at 511 bytes). */
enum MHD_Result gw_reply_error(struct gw_request *rq, unsigned status, gw_error_shape shape,
                               const char *code, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));
/* A response built by the caller (streams); it is queued and released. */
enum MHD_Result gw_reply_response(struct gw_request *rq, unsigned status,
                                  struct MHD_Response *resp);

/* The tenant of the key a request carries as "Bearer <key>" in header (Authorization, or a
 * service's own), or NULL. */
const char *gw_bearer_tenant(struct gw_server *s, struct gw_request *rq, const char *header);

/* "<prefix>_<24 hex digits>" into out, a fresh id of a service's object; -EIO when the
 * system has no randomness to give. */
int gw_new_id(char *out, size_t size, const char *prefix);

/* *dst a copy of src, or NULL when src is; -ENOMEM. */
int gw_dup_opt(char **dst, const char *src);

/* Bind and listen on ADDR:PORT (port 0: any); *port is the one bound.  Done before the
 * gateway drops its privileges, so that a low port works. */
int gw_server_listen(const char *listen_addr, int *fd, unsigned *port, struct al_error *err);
/* Serve on listen_fd (the server owns it from then on): HTTP/1.1 by libmicrohttpd, and
 * cleartext HTTP/2 with prior knowledge (h2c.c) on the same port. */
int gw_server_start(struct gw_server *s, int listen_fd, struct al_error *err);
void gw_server_stop(struct gw_server *s);

/* Serve an HTTP/2 connection (its preface unread) until it ends; closes fd. */
void gw_h2c_serve(struct gw_server *s, int fd);

/*
 * The services; each answers every request it recognises and returns true, or false.
 * init reads the service's saved registry (before the gateway drops its privileges);
 * shutdown deletes what the service made, unless the registry persists (then it stays
 * for the next gateway).
 */
bool gw_e2b_handle(struct gw_server *s, struct gw_request *rq, enum MHD_Result *result);
int gw_e2b_init(struct gw_server *s, struct al_error *err);
void gw_e2b_start(void); /* the timeout reaper, once confined */
void gw_e2b_shutdown(void);
bool gw_daytona_handle(struct gw_server *s, struct gw_request *rq, enum MHD_Result *result);
int gw_daytona_init(struct gw_server *s, struct al_error *err);
void gw_daytona_shutdown(void);
bool gw_cloudflare_handle(struct gw_server *s, struct gw_request *rq, enum MHD_Result *result);
int gw_cloudflare_init(struct gw_server *s, struct al_error *err);
void gw_cloudflare_shutdown(void);
bool gw_blaxel_handle(struct gw_server *s, struct gw_request *rq, enum MHD_Result *result);
int gw_blaxel_init(struct gw_server *s, struct al_error *err);
void gw_blaxel_shutdown(void);
bool gw_runloop_handle(struct gw_server *s, struct gw_request *rq, enum MHD_Result *result);
int gw_runloop_init(struct gw_server *s, struct al_error *err);
void gw_runloop_shutdown(void);
bool gw_vercel_handle(struct gw_server *s, struct gw_request *rq, enum MHD_Result *result);
int gw_vercel_init(struct gw_server *s, struct al_error *err);
void gw_vercel_shutdown(void);
