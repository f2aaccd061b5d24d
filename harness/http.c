/* SPDX-License-Identifier: Apache-2.0 */
#include "http.h"

#include "cleanup.h"
#include "json.h"
#include "log.h"

#include <ctype.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/random.h>
#include <unistd.h>

#include <cjson/cJSON.h>
#include <curl/curl.h>

#define DEFAULT_TIMEOUT_MS (300 * 1000L)
#define DEFAULT_CONNECT_TIMEOUT_MS (10 * 1000L)
#define DEFAULT_RETRY_BASE_MS 500L
#define DEFAULT_MAX_RESPONSE (64u << 20)
#define MAX_BACKOFF_MS 30000L
#define MAX_RETRY_AFTER_MS (600 * 1000L)
#define MAX_ERROR_TEXT 300

/* ---- retry policy ---- */

bool al_status_is_retryable(long status)
{
	return status == 408 || status == 409 || status == 429 || status >= 500;
}

long al_retry_after_ms(const char *value, time_t now)
{
	const char *p = value;
	time_t when;

	if (!value)
		return -1;
	while (isspace((unsigned char)*p))
		p++;
	if (isdigit((unsigned char)*p)) {
		char *end;
		unsigned long long s = strtoull(p, &end, 10);
		while (isspace((unsigned char)*end))
			end++;
		if (*end)
			return -1;
		return s > (unsigned long long)MAX_RETRY_AFTER_MS / 1000 ? MAX_RETRY_AFTER_MS
		                                                         : (long)s * 1000;
	}
	when = curl_getdate(p, NULL);
	if (when == (time_t)-1)
		return -1;
	if (when <= now)
		return 0;
	if (when - now > MAX_RETRY_AFTER_MS / 1000)
		return MAX_RETRY_AFTER_MS;
	return (long)(when - now) * 1000;
}

long al_backoff_ms(unsigned attempt, long base_ms, long retry_after_ms, uint32_t random)
{
	long d = base_ms > 0 ? base_ms : 1;

	if (retry_after_ms >= 0)
		return retry_after_ms > MAX_RETRY_AFTER_MS ? MAX_RETRY_AFTER_MS : retry_after_ms;
	for (unsigned i = 0; i < attempt && d < MAX_BACKOFF_MS; i++)
		d *= 2;
	if (d > MAX_BACKOFF_MS)
		d = MAX_BACKOFF_MS;
	/* "Equal jitter": half fixed so waits still grow, half random so clients spread out. */
	return d / 2 + (long)(random % (uint32_t)(d - d / 2 + 1));
}

/* ---- messages ---- */

void al_http_error_text(const char *body, size_t len, char *out, size_t size)
{
	_cleanup_cjson_ cJSON *j = body && len ? cJSON_ParseWithLength(body, len) : NULL;
	const cJSON *e = cJSON_GetObjectItemCaseSensitive(j, "error");
	const cJSON *m = cJSON_GetObjectItemCaseSensitive(j, "message");
	const char *msg = NULL;

	if (cJSON_IsString(e))
		msg = e->valuestring;
	else if (cJSON_IsString(cJSON_GetObjectItemCaseSensitive(e, "message")))
		msg = cJSON_GetObjectItemCaseSensitive(e, "message")->valuestring;
	else if (cJSON_IsString(m))
		msg = m->valuestring;
	if (msg)
		snprintf(out, size, "%s", msg);
	else if (body && len)
		snprintf(out, size, "%.*s", (int)(len < MAX_ERROR_TEXT ? len : MAX_ERROR_TEXT),
		         body);
	else
		snprintf(out, size, "(empty body)");
}

int al_http_status_error(const struct al_http_response *resp, int code, const char *what,
                         struct al_error *err)
{
	char text[MAX_ERROR_TEXT + 1];

	al_http_error_text(resp->body.data, resp->body.len, text, sizeof(text));
	if (resp->request_id[0])
		return al_error_set(err, code, "%s: HTTP %ld: %s (request id %s)", what,
		                    resp->status, text, resp->request_id);
	return al_error_set(err, code, "%s: HTTP %ld: %s", what, resp->status, text);
}

/* ---- the client ---- */

int al_http_open(struct al_http *h, const struct al_http_config *cfg, struct al_error *err)
{
	memset(h, 0, sizeof(*h));
	if (cfg)
		h->cfg = *cfg;
	if (h->cfg.timeout_ms <= 0)
		h->cfg.timeout_ms = DEFAULT_TIMEOUT_MS;
	if (h->cfg.connect_timeout_ms <= 0)
		h->cfg.connect_timeout_ms = DEFAULT_CONNECT_TIMEOUT_MS;
	if (h->cfg.retry_base_ms <= 0)
		h->cfg.retry_base_ms = DEFAULT_RETRY_BASE_MS;
	if (h->cfg.max_retries < 0)
		h->cfg.max_retries = 0;
	h->ca_bundle = h->cfg.ca_bundle ? strdup(h->cfg.ca_bundle) : NULL;
	h->unix_socket = h->cfg.unix_socket ? strdup(h->cfg.unix_socket) : NULL;
	h->cfg.ca_bundle = h->ca_bundle;
	h->cfg.unix_socket = h->unix_socket;
	h->curl = curl_easy_init();
	if (!h->curl || (cfg && cfg->ca_bundle && !h->ca_bundle) ||
	    (cfg && cfg->unix_socket && !h->unix_socket)) {
		al_http_close(h);
		return al_error_set(err, ENOMEM, "cannot set up a libcurl handle");
	}
	return 0;
}

void al_http_close(struct al_http *h)
{
	if (h->curl)
		curl_easy_cleanup(h->curl);
	free(h->ca_bundle);
	free(h->unix_socket);
	memset(h, 0, sizeof(*h));
}

void al_http_response_free(struct al_http_response *resp)
{
	al_buf_free(&resp->body);
}

struct transfer {
	const struct al_http_request *rq;
	struct al_http_response *resp;
	CURL *curl;
	size_t max;
	bool overflow;
	bool streamed; /* some body went to on_data or download: no retry */
};

static bool is_2xx(CURL *c)
{
	long status = 0;
	curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
	return status >= 200 && status < 300;
}

static size_t on_body(char *data, size_t size, size_t nmemb, void *userdata)
{
	struct transfer *t = userdata;
	size_t len = size * nmemb;

	if (is_2xx(t->curl) && (t->rq->on_data || t->rq->download)) {
		t->streamed = true;
		if (t->rq->download)
			return fwrite(data, 1, len, t->rq->download) == len ? len : 0;
		t->resp->stream_error = t->rq->on_data(t->rq->ctx, data, len);
		return t->resp->stream_error < 0 ? 0 : len;
	}
	if (t->resp->body.len + len > t->max) {
		t->overflow = true;
		return 0;
	}
	return al_buf_append(&t->resp->body, data, len) < 0 ? 0 : len;
}

static void copy_header_value(char *dst, size_t size, const char *v)
{
	while (isspace((unsigned char)*v))
		v++;
	snprintf(dst, size, "%s", v);
	dst[strcspn(dst, "\r\n")] = '\0';
}

static size_t on_header(char *data, size_t size, size_t nmemb, void *userdata)
{
	struct transfer *t = userdata;
	size_t len = size * nmemb;
	char line[512];
	char *colon;
	long v;

	/* A new response (after a 100 Continue or a retry) starts with its status line. */
	if (len >= 5 && !strncmp(data, "HTTP/", 5)) {
		t->resp->content_type[0] = '\0';
		t->resp->retry_after_ms = -1;
		for (size_t i = 0; i < AL_HTTP_MAX_CAPTURE; i++)
			t->resp->captured[i][0] = '\0';
	}
	if (len >= sizeof(line))
		return len;
	memcpy(line, data, len);
	line[len] = '\0';
	colon = strchr(line, ':');
	if (!colon)
		return len;
	*colon = '\0';
	for (size_t i = 0; t->rq->capture && t->rq->capture[i] && i < AL_HTTP_MAX_CAPTURE; i++)
		if (!strcasecmp(line, t->rq->capture[i]))
			copy_header_value(t->resp->captured[i], sizeof(t->resp->captured[i]),
			                  colon + 1);
	if (!strcasecmp(line, "retry-after-ms")) {
		char *end;
		v = strtol(colon + 1, &end, 10);
		if (end != colon + 1 && v >= 0)
			t->resp->retry_after_ms = v;
	} else if (!strcasecmp(line, "retry-after") && t->resp->retry_after_ms < 0) {
		t->resp->retry_after_ms = al_retry_after_ms(colon + 1, time(NULL));
	} else if (!strcasecmp(line, "content-type")) {
		copy_header_value(t->resp->content_type, sizeof(t->resp->content_type), colon + 1);
	} else if (!strcasecmp(line, "x-request-id") || !strcasecmp(line, "request-id") ||
	           (!strcasecmp(line, "cf-ray") && !t->resp->request_id[0])) {
		copy_header_value(t->resp->request_id, sizeof(t->resp->request_id), colon + 1);
	}
	return len;
}

static void slist_freep(struct curl_slist **l)
{
	curl_slist_free_all(*l);
}

static bool transport_error_is_transient(CURLcode rc)
{
	switch (rc) {
	case CURLE_COULDNT_CONNECT:
	case CURLE_COULDNT_RESOLVE_HOST:
	case CURLE_OPERATION_TIMEDOUT:
	case CURLE_SEND_ERROR:
	case CURLE_RECV_ERROR:
	case CURLE_GOT_NOTHING:
	case CURLE_PARTIAL_FILE:
	case CURLE_HTTP2:
	case CURLE_HTTP2_STREAM:
		return true;
	default:
		return false;
	}
}

/* Whether the server cannot have acted on the request, so even a POST may go again. */
static bool never_reached(CURLcode rc, long status)
{
	if (rc != CURLE_OK)
		return rc == CURLE_COULDNT_CONNECT || rc == CURLE_COULDNT_RESOLVE_HOST;
	return status == 429 || status == 503;
}

static void setup_request(struct al_http *h, const struct al_http_request *rq,
                          struct curl_slist *headers, struct transfer *t, char *errbuf)
{
	CURL *c = h->curl;
	const char *m = rq->method ? rq->method : "GET";

	curl_easy_reset(c);
	curl_easy_setopt(c, CURLOPT_URL, rq->url);
	curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(c, CURLOPT_ERRORBUFFER, errbuf);
	curl_easy_setopt(c, CURLOPT_HTTPHEADER, headers);
	curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
	curl_easy_setopt(c, CURLOPT_WRITEDATA, t);
	curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, on_header);
	curl_easy_setopt(c, CURLOPT_HEADERDATA, t);
	curl_easy_setopt(c, CURLOPT_TIMEOUT_MS,
	                 rq->timeout_ms > 0 ? rq->timeout_ms : h->cfg.timeout_ms);
	curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS, h->cfg.connect_timeout_ms);
	curl_easy_setopt(c, CURLOPT_FOLLOWLOCATION, 0L);
	curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");
	if (rq->http2) {
		curl_easy_setopt(c, CURLOPT_HTTP_VERSION,
		                 strncmp(rq->url, "http://", 7)
		                     ? (long)CURL_HTTP_VERSION_2TLS
		                     : (long)CURL_HTTP_VERSION_2_PRIOR_KNOWLEDGE);
		curl_easy_setopt(c, CURLOPT_FRESH_CONNECT, 1L);
		curl_easy_setopt(c, CURLOPT_FORBID_REUSE, 1L);
	}
	/* Never configurable: a private CA is trusted by naming it, not by skipping checks. */
	curl_easy_setopt(c, CURLOPT_SSL_VERIFYPEER, 1L);
	curl_easy_setopt(c, CURLOPT_SSL_VERIFYHOST, 2L);
	if (h->cfg.ca_bundle)
		curl_easy_setopt(c, CURLOPT_CAINFO, h->cfg.ca_bundle);
	if (rq->aws_sigv4) {
		curl_easy_setopt(c, CURLOPT_AWS_SIGV4, rq->aws_sigv4);
		curl_easy_setopt(c, CURLOPT_USERNAME, rq->sigv4_user);
		curl_easy_setopt(c, CURLOPT_PASSWORD, rq->sigv4_secret);
	}
	if (h->cfg.unix_socket) {
		curl_easy_setopt(c, CURLOPT_UNIX_SOCKET_PATH, h->cfg.unix_socket);
		/* A Unix socket has no proxy; make sure none from the environment is used. */
		curl_easy_setopt(c, CURLOPT_PROXY, "");
	}
	if (rq->mime) {
		curl_easy_setopt(c, CURLOPT_MIMEPOST, (curl_mime *)rq->mime);
		if (strcmp(m, "POST"))
			curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, m);
	} else if (rq->upload) {
		rewind(rq->upload);
		curl_easy_setopt(c, CURLOPT_UPLOAD, 1L);
		curl_easy_setopt(c, CURLOPT_READDATA, rq->upload);
		curl_easy_setopt(c, CURLOPT_INFILESIZE_LARGE, (curl_off_t)rq->upload_size);
		if (strcmp(m, "PUT"))
			curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, m);
	} else if (rq->body_len || !strcmp(m, "POST") || !strcmp(m, "PUT") || !strcmp(m, "PATCH")) {
		curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)rq->body_len);
		curl_easy_setopt(c, CURLOPT_POSTFIELDS, rq->body ? (const char *)rq->body : "");
		if (strcmp(m, "POST"))
			curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, m);
	} else if (!strcmp(m, "HEAD")) {
		curl_easy_setopt(c, CURLOPT_NOBODY, 1L);
	} else if (strcmp(m, "GET")) {
		curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, m);
	}
}

int al_http_do(struct al_http *h, const struct al_http_request *rq, struct al_http_response *resp,
               struct al_error *err)
{
	_cleanup_(slist_freep) struct curl_slist *headers = NULL;
	const char *what = rq->what ? rq->what : rq->url;
	char errbuf[CURL_ERROR_SIZE];

	memset(resp, 0, sizeof(*resp));
	/* curl would otherwise send "Expect: 100-continue" and wait on large bodies. */
	headers = curl_slist_append(headers, "Expect:");
	for (const char *const *hd = rq->headers; hd && *hd; hd++)
		headers = curl_slist_append(headers, *hd);
	if (!headers)
		return al_error_set(err, ENOMEM, "out of memory");
	for (unsigned attempt = 0;; attempt++) {
		struct transfer t = {.rq = rq,
		                     .resp = resp,
		                     .curl = h->curl,
		                     .max = rq->max_response ? rq->max_response
		                                             : DEFAULT_MAX_RESPONSE};
		char why[MAX_ERROR_TEXT + 64];
		bool retry;
		long wait;
		uint32_t rnd = 0;
		CURLcode rc;

		al_buf_free(&resp->body);
		resp->status = 0;
		resp->retry_after_ms = -1;
		resp->request_id[0] = resp->content_type[0] = '\0';
		resp->stream_error = 0;
		if (rq->download && attempt > 0 &&
		    (fflush(rq->download) != 0 || ftruncate(fileno(rq->download), 0) < 0 ||
		     fseek(rq->download, 0, SEEK_SET) < 0))
			return al_error_errno(err, "%s: cannot restart the download", what);
		setup_request(h, rq, headers, &t, errbuf);
		errbuf[0] = '\0';
		rc = curl_easy_perform(h->curl);
		curl_easy_getinfo(h->curl, CURLINFO_RESPONSE_CODE, &resp->status);
		resp->attempts = (int)attempt + 1;
		if (resp->stream_error < 0)
			return al_error_set(
			    err, -resp->stream_error,
			    "%s: the streamed answer from %s could not be taken (%s)", what,
			    rq->url, strerror(-resp->stream_error));
		if (t.overflow)
			return al_error_set(err, EFBIG, "%s: answer larger than %zu bytes", what,
			                    t.max);
		if (rc == CURLE_OK && resp->status >= 200 && resp->status < 300)
			return 0;
		if (rc != CURLE_OK) {
			snprintf(why, sizeof(why), "%s",
			         errbuf[0] ? errbuf : curl_easy_strerror(rc));
			retry = transport_error_is_transient(rc);
		} else {
			char text[MAX_ERROR_TEXT + 1];
			al_http_error_text(resp->body.data, resp->body.len, text, sizeof(text));
			snprintf(why, sizeof(why), "HTTP %ld: %s", resp->status, text);
			retry = al_status_is_retryable(resp->status);
		}
		if (retry && !rq->idempotent && !never_reached(rc, resp->status))
			retry = false;
		if (t.streamed || (rq->upload && !rq->idempotent))
			retry = false;
		if (!retry || attempt >= (unsigned)h->cfg.max_retries) {
			if (rc == CURLE_OK)
				return 0; /* the caller maps the status */
			if (rc == CURLE_COULDNT_CONNECT || rc == CURLE_COULDNT_RESOLVE_HOST)
				return al_error_set(
				    err, ECONNREFUSED, "%s: cannot reach %s: %s", what,
				    h->cfg.unix_socket ? h->cfg.unix_socket : rq->url, why);
			if (rc == CURLE_OPERATION_TIMEDOUT)
				return al_error_set(err, ETIMEDOUT, "%s: no answer in time from %s",
				                    what, rq->url);
			return al_error_set(err, EIO, "%s: %s%s", what, why,
			                    attempt ? " (after retries)" : "");
		}
		if (getrandom(&rnd, sizeof(rnd), 0) != sizeof(rnd))
			rnd = (uint32_t)al_now_ns();
		wait = al_backoff_ms(attempt, h->cfg.retry_base_ms, resp->retry_after_ms, rnd);
		log_warn("%s: %s; retry %u of %d in %ld ms", what, why, attempt + 1,
		         h->cfg.max_retries, wait);
		al_sleep_ms((unsigned)wait);
	}
}
