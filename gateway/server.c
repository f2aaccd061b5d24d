/* SPDX-License-Identifier: Apache-2.0 */
#include "server.h"

#include "cleanup.h"
#include "json.h"
#include "log.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <sys/socket.h>
#include <unistd.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define POST_BUFFER 65536

const char *gw_header(const struct gw_request *rq, const char *name)
{
	return MHD_lookup_connection_value(rq->conn, MHD_HEADER_KIND, name);
}

const char *gw_query(const struct gw_request *rq, const char *name)
{
	return MHD_lookup_connection_value(rq->conn, MHD_GET_ARGUMENT_KIND, name);
}

enum MHD_Result gw_reply_response(struct gw_request *rq, unsigned status, struct MHD_Response *resp)
{
	enum MHD_Result r;

	if (!resp)
		return MHD_NO;
	r = MHD_queue_response(rq->conn, status, resp);
	MHD_destroy_response(resp);
	return r;
}

enum MHD_Result gw_reply(struct gw_request *rq, unsigned status, const char *content_type,
                         const void *data, size_t len)
{
	struct MHD_Response *resp =
	    MHD_create_response_from_buffer(len, (void *)data, MHD_RESPMEM_MUST_COPY);

	if (!resp)
		return MHD_NO;
	if (content_type)
		MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, content_type);
	return gw_reply_response(rq, status, resp);
}

enum MHD_Result gw_reply_error(struct gw_request *rq, unsigned status, gw_error_shape shape,
                               const char *code, const char *fmt, ...)
{
	_cleanup_cjson_ cJSON *j = cJSON_CreateObject();
	char msg[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (!j)
		return MHD_NO;
	shape(j, status, code, msg);
	return gw_reply_json(rq, status, j);
}

const char *gw_bearer_tenant(struct gw_server *s, struct gw_request *rq, const char *header)
{
	const char *auth = gw_header(rq, header);

	if (!auth || strncasecmp(auth, "Bearer ", 7))
		return NULL;
	return gw_keys_tenant(&s->keys, auth + 7);
}

int gw_new_id(char *out, size_t size, const char *prefix)
{
	struct al_error e = AL_ERROR_INIT;
	char hex[25];

	if (al_random_hex(hex, 24, &e) < 0)
		return -EIO;
	snprintf(out, size, "%s_%s", prefix, hex);
	return 0;
}

int gw_dup_opt(char **dst, const char *src)
{
	if (!src)
		return 0;
	*dst = strdup(src);
	return *dst ? 0 : -ENOMEM;
}

enum MHD_Result gw_reply_json(struct gw_request *rq, unsigned status, const cJSON *j)
{
	_cleanup_free_ char *text = cJSON_PrintUnformatted(j);

	if (!text)
		return MHD_NO;
	return gw_reply(rq, status, "application/json", text, strlen(text));
}

/* ---- request bodies ---- */

static enum MHD_Result on_part(void *cls, enum MHD_ValueKind kind, const char *key,
                               const char *filename, const char *content_type,
                               const char *transfer_encoding, const char *data, uint64_t off,
                               size_t size)
{
	struct gw_request *rq = cls;
	struct gw_part *p;

	(void)kind;
	(void)content_type;
	(void)transfer_encoding;
	/* A value arrives in pieces; offset 0 starts a new one, unless it only repeats the
	 * start of the same, still empty one (MHD announces a part before its data). */
	p = rq->n_parts ? &rq->parts[rq->n_parts - 1] : NULL;
	if (p && off == 0 && p->data.len == 0 && !strcmp(p->name, key ? key : "") &&
	    !p->filename == !filename && (!filename || !strcmp(p->filename, filename)))
		off = 1;
	if (off == 0 || rq->n_parts == 0) {
		struct gw_part *v = realloc(rq->parts, (rq->n_parts + 1) * sizeof(*v));
		if (!v)
			return MHD_NO;
		rq->parts = v;
		p = &rq->parts[rq->n_parts++];
		memset(p, 0, sizeof(*p));
		p->name = strdup(key ? key : "");
		p->filename = filename ? strdup(filename) : NULL;
		if (!p->name || (filename && !p->filename))
			return MHD_NO;
	}
	p = &rq->parts[rq->n_parts - 1];
	if (p->data.len + size > GW_MAX_BODY) {
		rq->too_large = true;
		return MHD_NO;
	}
	return al_buf_append(&p->data, data, size) < 0 ? MHD_NO : MHD_YES;
}

static void request_free(struct gw_request *rq)
{
	if (rq->pp)
		MHD_destroy_post_processor(rq->pp);
	al_buf_free(&rq->body);
	for (size_t i = 0; i < rq->n_parts; i++) {
		free(rq->parts[i].name);
		free(rq->parts[i].filename);
		al_buf_free(&rq->parts[i].data);
	}
	free(rq->parts);
	free(rq);
}

static void on_completed(void *cls, struct MHD_Connection *c, void **con_cls,
                         enum MHD_RequestTerminationCode toe)
{
	(void)cls;
	(void)c;
	(void)toe;
	if (*con_cls)
		request_free(*con_cls);
	*con_cls = NULL;
}

static enum MHD_Result not_found(struct gw_request *rq)
{
	static const char body[] = "{\"code\":404,\"message\":\"no such route\"}";
	return gw_reply(rq, 404, "application/json", body, sizeof(body) - 1);
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *c, const char *url,
                                  const char *method, const char *version, const char *upload_data,
                                  size_t *upload_data_size, void **con_cls)
{
	struct gw_server *s = cls;
	struct gw_request *rq = *con_cls;
	enum MHD_Result result = MHD_NO;

	(void)version;
	if (!rq) {
		const char *ct;
		rq = calloc(1, sizeof(*rq));
		if (!rq)
			return MHD_NO;
		rq->conn = c;
		rq->method = method;
		rq->url = url;
		ct = MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_TYPE);
		if (ct && !strncasecmp(ct, "multipart/form-data", 19)) {
			rq->multipart = true;
			rq->pp = MHD_create_post_processor(c, POST_BUFFER, on_part, rq);
			if (!rq->pp) {
				free(rq);
				return MHD_NO;
			}
		}
		*con_cls = rq;
		return MHD_YES;
	}
	if (*upload_data_size) {
		if (rq->pp) {
			if (!rq->too_large &&
			    MHD_post_process(rq->pp, upload_data, *upload_data_size) != MHD_YES &&
			    !rq->too_large)
				log_warn("%s %s: malformed multipart body", method, url);
		} else if (!rq->too_large) {
			if (rq->body.len + *upload_data_size > GW_MAX_BODY)
				rq->too_large = true;
			else if (al_buf_append(&rq->body, upload_data, *upload_data_size) < 0)
				return MHD_NO;
		}
		*upload_data_size = 0;
		return MHD_YES;
	}
	if (rq->too_large) {
		static const char body[] = "{\"code\":413,\"message\":\"request body too large\"}";
		return gw_reply(rq, 413, "application/json", body, sizeof(body) - 1);
	}
	if (gw_daytona_handle(s, rq, &result) || gw_cloudflare_handle(s, rq, &result) ||
	    gw_blaxel_handle(s, rq, &result) || gw_runloop_handle(s, rq, &result) ||
	    gw_vercel_handle(s, rq, &result) || gw_e2b_handle(s, rq, &result))
		return result;
	return not_found(rq);
}

static void on_mhd_error(void *cls, const char *fmt, va_list ap)
{
	char msg[512];

	(void)cls;
	vsnprintf(msg, sizeof(msg), fmt, ap);
	msg[strcspn(msg, "\n")] = '\0';
	log_warn("libmicrohttpd: %s", msg);
}

int gw_server_listen(const char *listen_addr, int *fd_out, unsigned *port, struct al_error *err)
{
	_cleanup_free_ char *host = strdup(listen_addr);
	_cleanup_close_ int fd = -1;
	struct sockaddr_in sin = {.sin_family = AF_INET};
	socklen_t len = sizeof(sin);
	char *colon, *end;
	unsigned long p;
	int one = 1;

	if (!host)
		return al_error_set(err, ENOMEM, "out of memory");
	colon = strrchr(host, ':');
	if (!colon)
		return al_error_set(err, EINVAL, "--listen %s: expected ADDRESS:PORT", listen_addr);
	*colon = '\0';
	errno = 0;
	p = strtoul(colon + 1, &end, 10);
	if (errno || *end || colon[1] == '\0' || p > 65535)
		return al_error_set(err, EINVAL, "--listen %s: bad port", listen_addr);
	if (inet_pton(AF_INET, host, &sin.sin_addr) != 1)
		return al_error_set(err, EINVAL, "--listen %s: %s is not an IPv4 address",
		                    listen_addr, host);
	sin.sin_port = htons((uint16_t)p);
	fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return al_error_errno(err, "socket");
	/* A restarted gateway takes its port back while old connections linger. */
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (bind(fd, (struct sockaddr *)&sin, sizeof(sin)) < 0)
		return al_error_errno(err, "cannot listen on %s", listen_addr);
	if (listen(fd, 128) < 0)
		return al_error_errno(err, "listen on %s", listen_addr);
	if (getsockname(fd, (struct sockaddr *)&sin, &len) < 0)
		return al_error_errno(err, "getsockname");
	*port = ntohs(sin.sin_port);
	*fd_out = TAKE_FD(fd);
	return 0;
}

/* ---- the front door ---- */

struct gw_front_conn {
	struct gw_front_conn *next;
	struct gw_server *server;
	int fd;
	struct sockaddr_storage peer;
	socklen_t peer_len;
};

static void front_forget(struct gw_server *s, struct gw_front_conn *fc)
{
	pthread_mutex_lock(&s->conns_lock);
	for (struct gw_front_conn **p = &s->conns; *p; p = &(*p)->next)
		if (*p == fc) {
			*p = fc->next;
			break;
		}
	pthread_cond_broadcast(&s->conns_idle);
	pthread_mutex_unlock(&s->conns_lock);
	free(fc);
}

/* Whether the client opens with HTTP/2's preface: "PRI " starts no HTTP/1.1 request, so
 * four bytes tell (nghttp2 checks the rest).  -1: the client sent nothing in time. */
static int speaks_h2(int fd)
{
	static const char preface[] = "PRI ";
	char head[4];

	for (int waited_ms = 0; waited_ms < 30000;) {
		struct pollfd p = {.fd = fd, .events = POLLIN};
		ssize_t n;
		int r = poll(&p, 1, 1000);
		if (r < 0 && errno != EINTR)
			return -1;
		if (r <= 0) {
			waited_ms += 1000;
			continue;
		}
		n = recv(fd, head, sizeof(head), MSG_PEEK);
		if (n <= 0)
			return -1;
		if (memcmp(head, preface, (size_t)n))
			return 0;
		if (n == (ssize_t)sizeof(head))
			return 1;
		/* A part of the preface: wait for the rest of it to arrive. */
		usleep(10000);
		waited_ms += 10;
	}
	return -1;
}

static void *front_conn(void *arg)
{
	struct gw_front_conn *fc = arg;
	struct gw_server *s = fc->server;
	int h2 = speaks_h2(fc->fd);

	if (h2 == 1) {
		gw_h2c_serve(s, fc->fd);
	} else if (h2 == 0) {
		/* MHD owns the socket from here on, whatever it answers. */
		if (MHD_add_connection(s->mhd, fc->fd, (const struct sockaddr *)&fc->peer,
		                       fc->peer_len) != MHD_YES)
			log_warn("libmicrohttpd takes no more connections");
	} else {
		close(fc->fd);
	}
	front_forget(s, fc);
	return NULL;
}

static void *acceptor(void *arg)
{
	struct gw_server *s = arg;

	while (__atomic_load_n(&s->accepting, __ATOMIC_ACQUIRE)) {
		struct gw_front_conn *fc = calloc(1, sizeof(*fc));
		pthread_attr_t attr;
		pthread_t t;
		if (!fc) {
			usleep(100000);
			continue;
		}
		fc->server = s;
		fc->peer_len = sizeof(fc->peer);
		fc->fd = accept4(s->listen_fd, (struct sockaddr *)&fc->peer, &fc->peer_len,
		                 SOCK_CLOEXEC);
		if (fc->fd < 0) {
			free(fc);
			if (errno == EINTR || errno == ECONNABORTED)
				continue;
			if (!__atomic_load_n(&s->accepting, __ATOMIC_ACQUIRE))
				break;
			log_warn("accept: %m");
			usleep(100000); /* out of descriptors, say: not a busy loop */
			continue;
		}
		pthread_mutex_lock(&s->conns_lock);
		fc->next = s->conns;
		s->conns = fc;
		pthread_mutex_unlock(&s->conns_lock);
		pthread_attr_init(&attr);
		pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
		if (pthread_create(&t, &attr, front_conn, fc) != 0) {
			log_warn("no thread for a connection");
			close(fc->fd);
			front_forget(s, fc);
		}
		pthread_attr_destroy(&attr);
	}
	return NULL;
}

int gw_server_start(struct gw_server *s, int listen_fd, struct al_error *err)
{
	s->mhd = MHD_start_daemon(MHD_USE_THREAD_PER_CONNECTION | MHD_USE_INTERNAL_POLLING_THREAD |
	                              MHD_USE_ERROR_LOG | MHD_USE_NO_LISTEN_SOCKET | MHD_USE_ITC,
	                          0, NULL, NULL, on_request, s, MHD_OPTION_EXTERNAL_LOGGER,
	                          on_mhd_error, NULL, MHD_OPTION_NOTIFY_COMPLETED, on_completed,
	                          NULL, MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)600,
	                          MHD_OPTION_CONNECTION_LIMIT, (unsigned)256, MHD_OPTION_END);
	if (!s->mhd) {
		close(listen_fd);
		return al_error_set(err, EIO, "cannot start serving (libmicrohttpd)");
	}
	s->listen_fd = listen_fd;
	{
		struct sockaddr_in sin;
		socklen_t len = sizeof(sin);
		char addr[INET_ADDRSTRLEN] = "127.0.0.1";
		if (getsockname(listen_fd, (struct sockaddr *)&sin, &len) < 0) {
			MHD_stop_daemon(s->mhd);
			s->mhd = NULL;
			close(listen_fd);
			return al_error_errno(err, "getsockname");
		}
		/* Bound to every address: loopback is one of them. */
		if (sin.sin_addr.s_addr != htonl(INADDR_ANY))
			inet_ntop(AF_INET, &sin.sin_addr, addr, sizeof(addr));
		snprintf(s->self_url, sizeof(s->self_url), "http://%s:%u", addr,
		         (unsigned)ntohs(sin.sin_port));
	}
	pthread_mutex_init(&s->conns_lock, NULL);
	pthread_cond_init(&s->conns_idle, NULL);
	s->accepting = true;
	if (pthread_create(&s->acceptor, NULL, acceptor, s) != 0) {
		s->accepting = false;
		MHD_stop_daemon(s->mhd);
		s->mhd = NULL;
		close(listen_fd);
		return al_error_set(err, EAGAIN, "no thread to accept connections");
	}
	return 0;
}

void gw_server_stop(struct gw_server *s)
{
	if (!s->mhd)
		return;
	/* No new connection; the open HTTP/2 ones (and those still deciding) are ended, and
	 * their requests finished, before MHD, which serves those requests, stops. */
	__atomic_store_n(&s->accepting, false, __ATOMIC_RELEASE);
	shutdown(s->listen_fd, SHUT_RDWR);
	pthread_join(s->acceptor, NULL);
	close(s->listen_fd);
	pthread_mutex_lock(&s->conns_lock);
	for (struct gw_front_conn *fc = s->conns; fc; fc = fc->next)
		shutdown(fc->fd, SHUT_RDWR);
	while (s->conns)
		pthread_cond_wait(&s->conns_idle, &s->conns_lock);
	pthread_mutex_unlock(&s->conns_lock);
	MHD_stop_daemon(s->mhd);
	s->mhd = NULL;
}
