/* SPDX-License-Identifier: Apache-2.0 */
#pragma once

/*
 * The one HTTP client of the harness (libcurl): the model client and every provider
 * send their requests through it, so that timeouts, retries, TLS and error messages
 * behave the same everywhere.
 *
 * - TLS peer and host verification are always on; a CA bundle may be named for an
 *   on-prem proxy or service with a private CA, but verification cannot be turned off.
 * - Transient failures are retried with exponential backoff and jitter, honouring
 *   Retry-After (and Retry-After-Ms).  A request that is not idempotent is retried only
 *   when the server cannot have acted on it: the connection was refused, or it answered
 *   429 or 503.
 * - A streaming callback receives a 2xx body as it arrives; once any of it was handed on,
 *   the request is never retried.
 * - The server's request id (x-request-id, request-id, cf-ray) is kept for error messages.
 * - Redirects are not followed: a credential goes to the configured host only.
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <time.h>

#include "error.h"
#include "util.h"

struct al_http_config {
	long timeout_ms;         /* default for a whole request; 0: 300 s */
	long connect_timeout_ms; /* 0: 10 s */
	int max_retries;         /* < 0: 0 */
	long retry_base_ms;      /* first backoff; 0: 500 ms */
	const char *ca_bundle;   /* PEM file of trusted CAs; NULL: the system's */
	const char *unix_socket; /* every request goes over this socket (host part ignored) */
};

struct al_http {
	struct al_http_config cfg;
	char *ca_bundle;
	char *unix_socket;
	void *curl;
};

struct al_http_request {
	const char *method; /* GET, POST, PUT, DELETE, PATCH */
	const char *url;
	const char *const *headers; /* NULL-terminated "Name: value" lines, or NULL */
	const void *body;           /* sent when body_len > 0 or the method is POST/PUT */
	size_t body_len;
	FILE *upload; /* a body read from a file instead (upload_size bytes) */
	int64_t upload_size;
	void *mime;          /* a curl_mime multipart body instead */
	size_t max_response; /* bytes kept of a body; 0: 64 MiB */
	FILE *download;      /* a 2xx body goes here */
	/* A 2xx body goes here chunk by chunk; a negative return aborts with that code. */
	int (*on_data)(void *ctx, const char *data, size_t len);
	void *ctx;
	long timeout_ms;  /* 0: the client's */
	bool idempotent;  /* safe to send again after a 5xx or a broken connection */
	const char *what; /* names the request in messages */
	/* Signed by libcurl's AWS SigV4 signer (CURLOPT_AWS_SIGV4, e.g. "aws:amz:REGION:s3")
	 * with this key pair; NULL: not signed. */
	const char *aws_sigv4;
	const char *sigv4_user;
	const char *sigv4_secret;
	/* Response headers whose values are wanted (case-insensitive names), NULL-ended;
	 * the values land in al_http_response.captured[i] ("" when absent). */
	const char *const *capture;
	/* HTTP/2 (gRPC): with prior knowledge to an http:// URL, by ALPN to https://; each
	 * request on a connection of its own, as libcurl 7.88 (Debian 12's) fails requests
	 * after the first on a reused cleartext HTTP/2 connection. */
	bool http2;
};

#define AL_HTTP_MAX_CAPTURE 4

struct al_http_response {
	long status;
	struct al_buf body; /* the whole body, or a non-2xx body when streamed/downloaded */
	char content_type[128];
	char request_id[128];
	long retry_after_ms; /* -1: none given */
	int attempts;
	int stream_error; /* the code on_data returned to abort */
	char captured[AL_HTTP_MAX_CAPTURE][256];
};

int al_http_open(struct al_http *h, const struct al_http_config *cfg, struct al_error *err);
void al_http_close(struct al_http *h);

/* Send a request, retrying as above.  0: an answer came (any status, in resp); < 0: no
 * usable answer: -ECONNREFUSED (cannot connect or resolve), -ETIMEDOUT, -EFBIG (answer
 * over max_response), the on_data code, or -EIO; the message names rq->what and url. */
int al_http_do(struct al_http *h, const struct al_http_request *rq, struct al_http_response *resp,
               struct al_error *err);
void al_http_response_free(struct al_http_response *resp);

/* "what: HTTP 404: <the body's message> (request id X)" with code; returns -code. */
int al_http_status_error(const struct al_http_response *resp, int code, const char *what,
                         struct al_error *err);
/* The message in an error body: JSON message / error.message / error, or the text. */
void al_http_error_text(const char *body, size_t len, char *out, size_t size);

/* ---- retry policy (exposed for the unit tests) ---- */

/* Milliseconds a Retry-After value asks for (delta-seconds or HTTP-date), -1 if unusable. */
long al_retry_after_ms(const char *value, time_t now);
/* The wait before retry number attempt (0-based): base*2^attempt capped at 30 s, jittered
 * into its upper half by random; a server's retry_after_ms (>= 0) wins, capped at 10 min. */
long al_backoff_ms(unsigned attempt, long base_ms, long retry_after_ms, uint32_t random);
bool al_status_is_retryable(long status);
