/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Remote object stores (store.h).  Two wire dialects:
 *
 *  - S3's, spoken by S3, R2 and the GCS XML API: path-style URLs
 *    (ENDPOINT/BUCKET/KEY), signed by libcurl's SigV4 signer ("aws:amz" for S3 and
 *    R2, "goog:goog" for GCS, which accepts GOOG4-HMAC-SHA256 with HMAC keys), large
 *    objects by multipart upload.  libcurl (7.88) signs the query string as given, so
 *    every query built here is already in canonical order and encoding.
 *    GCS with a service account instead: its JSON key file's private key signs a JWT
 *    (RS256, libcrypto) that its token_uri trades for an OAuth 2.0 access token
 *    (RFC 7523, as Google's auth libraries do), sent as a Bearer token on the XML API.
 *  - Azure Blob's: Shared Key (HMAC-SHA256 of the canonical string with the account
 *    key, libcrypto) or a SAS token appended to the URL, large objects as a block list.
 */
#include "store.h"

#include "cleanup.h"
#include "http.h"
#include "json.h"
#include "log.h"
#include "util.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <curl/curl.h>
#include <libxml/parser.h>
#include <libxml/tree.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/pem.h>

#define AZURE_VERSION "2020-10-02"
#define MAX_PARTS 10000
#define STORE_TIMEOUT_MS (30L * 60 * 1000)
#define GCS_SCOPE "https://www.googleapis.com/auth/devstorage.read_write"
#define JWT_LIFETIME_S 3600

struct al_store {
	enum al_store_type type;
	char *bucket;
	char *prefix;
	char *endpoint; /* without a trailing '/' */
	char *region;
	size_t part_size;
	const struct al_store_secret *secret; /* borrowed from the caller's credentials */
	char *sigv4;                          /* "aws:amz:REGION:s3" or "goog:goog:auto:storage" */
	const char *meta_header;              /* "x-amz-meta-sha256", … */
	const char *content_sha_header;       /* "x-amz-content-sha256", … (S3 dialect) */
	unsigned char *azure_key;             /* decoded Shared Key */
	size_t azure_key_len;
	struct al_http http;
	bool http_open;
	/* GCS with a service account: its key file, and the token it was traded for. */
	cJSON *service_account;
	char *bearer; /* "Authorization: Bearer …" */
	time_t bearer_expires;
};

static const char *const type_names[] = {
    [AL_STORE_LOCAL] = "local",
    [AL_STORE_S3] = "s3",
    [AL_STORE_R2] = "r2",
    [AL_STORE_GCS] = "gcs",
    [AL_STORE_AZURE] = "azure_blob",
};

int al_store_type_from_name(const char *name)
{
	for (size_t i = 0; i < sizeof(type_names) / sizeof(type_names[0]); i++)
		if (name && !strcmp(name, type_names[i]))
			return (int)i;
	return -1;
}

const char *al_store_type_name(enum al_store_type type)
{
	return type_names[type];
}

static void wipe(void *p, size_t len)
{
	if (p)
		explicit_bzero(p, len);
}

void al_store_close(struct al_store *s)
{
	if (!s)
		return;
	if (s->http_open)
		al_http_close(&s->http);
	wipe(s->azure_key, s->azure_key_len);
	free(s->azure_key);
	if (s->bearer) {
		wipe(s->bearer, strlen(s->bearer));
		free(s->bearer);
	}
	if (s->service_account) {
		const cJSON *pk =
		    cJSON_GetObjectItemCaseSensitive(s->service_account, "private_key");
		if (cJSON_IsString(pk))
			wipe(pk->valuestring, strlen(pk->valuestring));
		cJSON_Delete(s->service_account);
	}
	free(s->bucket);
	free(s->prefix);
	free(s->endpoint);
	free(s->region);
	free(s->sigv4);
	free(s);
}

/* A service account's key file: what the token exchange needs, checked once. */
static int load_service_account(const char *path, cJSON **out, struct al_error *err)
{
	_cleanup_free_ char *text = NULL;
	size_t len = 0;
	cJSON *j;
	int r = al_read_file(path, 1 << 20, &text, &len, err);

	if (r < 0)
		return r;
	j = cJSON_ParseWithLength(text, len);
	wipe(text, len);
	if (!j)
		return al_error_set(err, EINVAL, "service account key file %s is not JSON", path);
	for (const char *const *f =
	         (const char *const[]){"client_email", "private_key", "token_uri", NULL};
	     *f; f++)
		if (!cJSON_IsString(cJSON_GetObjectItemCaseSensitive(j, *f))) {
			cJSON_Delete(j);
			return al_error_set(err, EINVAL, "service account key file %s has no %s",
			                    path, *f);
		}
	*out = j;
	return 0;
}

static char *base64url(const void *data, size_t len)
{
	char *b = al_base64_encode(data, len);

	if (!b)
		return NULL;
	for (char *p = b; *p; p++)
		*p = *p == '+' ? '-' : *p == '/' ? '_' : *p;
	b[strcspn(b, "=")] = '\0';
	return b;
}

/* header.claims.signature, RS256 with the account's private key. */
static int signed_jwt(const cJSON *sa, time_t now, char **out, struct al_error *err)
{
	const char *email = cJSON_GetObjectItemCaseSensitive(sa, "client_email")->valuestring;
	const char *pem = cJSON_GetObjectItemCaseSensitive(sa, "private_key")->valuestring;
	const char *aud = cJSON_GetObjectItemCaseSensitive(sa, "token_uri")->valuestring;
	const cJSON *kid = cJSON_GetObjectItemCaseSensitive(sa, "private_key_id");
	_cleanup_cjson_ cJSON *head = cJSON_CreateObject();
	_cleanup_cjson_ cJSON *claims = cJSON_CreateObject();
	_cleanup_free_ char *h = NULL, *c = NULL, *hb = NULL, *cb = NULL, *input = NULL;
	_cleanup_free_ char *sigb = NULL;
	_cleanup_free_ unsigned char *sig = NULL;
	size_t sig_len = 0;
	EVP_PKEY *key = NULL;
	EVP_MD_CTX *md = NULL;
	BIO *bio;
	int ok;

	if (!head || !claims)
		return al_error_set(err, ENOMEM, "out of memory");
	cJSON_AddStringToObject(head, "alg", "RS256");
	cJSON_AddStringToObject(head, "typ", "JWT");
	if (cJSON_IsString(kid))
		cJSON_AddStringToObject(head, "kid", kid->valuestring);
	cJSON_AddStringToObject(claims, "iss", email);
	cJSON_AddStringToObject(claims, "scope", GCS_SCOPE);
	cJSON_AddStringToObject(claims, "aud", aud);
	cJSON_AddNumberToObject(claims, "iat", (double)now);
	cJSON_AddNumberToObject(claims, "exp", (double)(now + JWT_LIFETIME_S));
	h = cJSON_PrintUnformatted(head);
	c = cJSON_PrintUnformatted(claims);
	if (!h || !c || !(hb = base64url(h, strlen(h))) || !(cb = base64url(c, strlen(c))) ||
	    asprintf(&input, "%s.%s", hb, cb) < 0)
		return al_error_set(err, ENOMEM, "out of memory");
	bio = BIO_new_mem_buf(pem, -1);
	key = bio ? PEM_read_bio_PrivateKey(bio, NULL, NULL, NULL) : NULL;
	BIO_free(bio);
	if (!key)
		return al_error_set(err, EINVAL,
		                    "the service account's private_key is not a PEM key");
	md = EVP_MD_CTX_new();
	ok = md && EVP_DigestSignInit(md, NULL, EVP_sha256(), NULL, key) == 1 &&
	     EVP_DigestSign(md, NULL, &sig_len, (const unsigned char *)input, strlen(input)) == 1 &&
	     (sig = malloc(sig_len)) &&
	     EVP_DigestSign(md, sig, &sig_len, (const unsigned char *)input, strlen(input)) == 1;
	EVP_MD_CTX_free(md);
	EVP_PKEY_free(key);
	if (!ok)
		return al_error_set(err, EIO, "signing the service account's JWT failed");
	sigb = base64url(sig, sig_len);
	if (!sigb || asprintf(out, "%s.%s", input, sigb) < 0)
		return al_error_set(err, ENOMEM, "out of memory");
	return 0;
}

/* A Bearer header for the next request: the token traded for a fresh JWT when the one
 * held is missing or within a minute of its end. */
static int gcs_bearer(struct al_store *s, struct al_error *err)
{
	const char *uri =
	    cJSON_GetObjectItemCaseSensitive(s->service_account, "token_uri")->valuestring;
	const char *form[] = {"Content-Type: application/x-www-form-urlencoded", NULL};
	_cleanup_free_ char *jwt = NULL, *body = NULL;
	_cleanup_cjson_ cJSON *answer = NULL;
	struct al_http_response resp = {0};
	const cJSON *tok, *ttl;
	time_t now = time(NULL);
	int r;

	if (s->bearer && now + 60 < s->bearer_expires)
		return 0;
	r = signed_jwt(s->service_account, now, &jwt, err);
	if (r < 0)
		return al_error_prefix(err, "store gcs bucket %s", s->bucket);
	/* The JWT is base64url: nothing in it needs escaping in a form. */
	if (asprintf(&body,
	             "grant_type=urn%%3Aietf%%3Aparams%%3Aoauth%%3Agrant-type%%3Ajwt-bearer"
	             "&assertion=%s",
	             jwt) < 0)
		return al_error_set(err, ENOMEM, "out of memory");
	{
		struct al_http_request rq = {.method = "POST",
		                             .url = uri,
		                             .headers = form,
		                             .body = body,
		                             .body_len = strlen(body),
		                             .idempotent = true,
		                             .what = "GCS token exchange"};
		r = al_http_do(&s->http, &rq, &resp, err);
	}
	wipe(body, strlen(body));
	if (r < 0) {
		al_http_response_free(&resp);
		return al_error_prefix(err, "store gcs bucket %s", s->bucket);
	}
	if (resp.status != 200) {
		r = al_http_status_error(&resp, EACCES, "GCS token exchange", err);
		al_http_response_free(&resp);
		return al_error_prefix(
		    err, "store gcs bucket %s: service account %s", s->bucket,
		    cJSON_GetObjectItemCaseSensitive(s->service_account, "client_email")
		        ->valuestring);
	}
	answer = cJSON_ParseWithLength(resp.body.data ? resp.body.data : "", resp.body.len);
	if (resp.body.data)
		wipe(resp.body.data, resp.body.len);
	al_http_response_free(&resp);
	tok = cJSON_GetObjectItemCaseSensitive(answer, "access_token");
	ttl = cJSON_GetObjectItemCaseSensitive(answer, "expires_in");
	if (!cJSON_IsString(tok))
		return al_error_set(err, EIO,
		                    "store gcs bucket %s: the token endpoint's answer has no "
		                    "access_token",
		                    s->bucket);
	if (s->bearer) {
		wipe(s->bearer, strlen(s->bearer));
		free(s->bearer);
		s->bearer = NULL;
	}
	if (asprintf(&s->bearer, "Authorization: Bearer %s", tok->valuestring) < 0) {
		s->bearer = NULL;
		return al_error_set(err, ENOMEM, "out of memory");
	}
	wipe(tok->valuestring, strlen(tok->valuestring));
	s->bearer_expires = now + (cJSON_IsNumber(ttl) ? (time_t)ttl->valuedouble : 300);
	return 0;
}

int al_store_open(const struct al_store_config *cfg, const struct al_credentials *creds,
                  struct al_store **out, struct al_error *err)
{
	_cleanup_(al_store_closep) struct al_store *s = calloc(1, sizeof(*s));
	const char *tname = al_store_type_name(cfg->type);
	const struct al_store_secret *sec = al_credentials_store(creds, tname);
	struct al_http_config hc = {
	    .timeout_ms = STORE_TIMEOUT_MS, .max_retries = 3, .ca_bundle = cfg->ca_bundle};
	const char *region = cfg->region;
	int r;

	if (!s)
		return al_error_set(err, ENOMEM, "out of memory");
	if (cfg->type == AL_STORE_LOCAL || !sec)
		return al_error_set(err, EINVAL, "store type %s is not a remote store", tname);
	s->type = cfg->type;
	s->secret = sec;
	s->part_size = cfg->part_size ? cfg->part_size : AL_STORE_DEFAULT_PART;
	if (cfg->type == AL_STORE_AZURE) {
		if (!sec->account_name || (!sec->account_key && !sec->sas_token))
			return al_error_set(
			    err, EPERM,
			    "store azure_blob container %s: the credentials file has "
			    "no stores.azure_blob account_name with account_key or "
			    "sas_token",
			    cfg->bucket);
		if (sec->account_key) {
			_cleanup_free_ char *key = NULL;
			size_t len = 0;
			if (al_base64_decode(sec->account_key, &key, &len, err) < 0)
				return al_error_set(
				    err, EINVAL,
				    "credentials file: stores.azure_blob.account_key "
				    "is not base64");
			s->azure_key = (unsigned char *)TAKE_PTR(key);
			s->azure_key_len = len;
		}
		s->meta_header = "x-ms-meta-sha256";
		if (cfg->endpoint)
			s->endpoint = strdup(cfg->endpoint);
		else if (asprintf(&s->endpoint, "https://%s.blob.core.windows.net",
		                  sec->account_name) < 0)
			s->endpoint = NULL;
	} else if (cfg->type == AL_STORE_GCS && sec->service_account_file && !sec->access_key_id) {
		r = load_service_account(sec->service_account_file, &s->service_account, err);
		if (r < 0)
			return al_error_prefix(err, "store gcs bucket %s", cfg->bucket);
		s->meta_header = "x-goog-meta-sha256";
		s->endpoint =
		    strdup(cfg->endpoint ? cfg->endpoint : "https://storage.googleapis.com");
	} else {
		if (!sec->access_key_id || !sec->secret_access_key)
			return al_error_set(err, EPERM,
			                    "store %s bucket %s: the credentials file has no "
			                    "stores.%s access_key_id and secret_access_key",
			                    tname, cfg->bucket, tname);
		if (cfg->type == AL_STORE_GCS) {
			s->meta_header = "x-goog-meta-sha256";
			s->content_sha_header = "x-goog-content-sha256";
			r = asprintf(&s->sigv4, "goog:goog:%s:storage", region ? region : "auto");
			s->endpoint = strdup(cfg->endpoint ? cfg->endpoint
			                                   : "https://storage.googleapis.com");
		} else {
			s->meta_header = "x-amz-meta-sha256";
			s->content_sha_header = "x-amz-content-sha256";
			if (cfg->type == AL_STORE_R2)
				region = "auto"; /* R2 signs with region "auto" only */
			else if (!region)
				region = "us-east-1";
			r = asprintf(&s->sigv4, "aws:amz:%s:s3", region);
			if (cfg->endpoint)
				s->endpoint = strdup(cfg->endpoint);
			else if (cfg->type == AL_STORE_S3 &&
			         asprintf(&s->endpoint, "https://s3.%s.amazonaws.com", region) < 0)
				s->endpoint = NULL;
		}
		if (r < 0)
			return al_error_set(err, ENOMEM, "out of memory");
	}
	if (!s->endpoint)
		return al_error_set(err, EINVAL, "store %s bucket %s: an endpoint is needed", tname,
		                    cfg->bucket);
	s->endpoint[strcspn(s->endpoint, "?#")] = '\0';
	for (size_t n = strlen(s->endpoint); n && s->endpoint[n - 1] == '/'; n--)
		s->endpoint[n - 1] = '\0';
	s->bucket = strdup(cfg->bucket);
	s->prefix = strdup(cfg->prefix ? cfg->prefix : "");
	s->region = region ? strdup(region) : NULL;
	if (!s->bucket || !s->prefix)
		return al_error_set(err, ENOMEM, "out of memory");
	if ((r = al_http_open(&s->http, &hc, err)) < 0)
		return r;
	s->http_open = true;
	*out = TAKE_PTR(s);
	return 0;
}

/* ---- names and URLs ---- */

static char *object_key(const struct al_store *s, const char *name)
{
	char *key = NULL;

	if (asprintf(&key, "%s%s%s", s->prefix, *s->prefix ? "/" : "", name) < 0)
		return NULL;
	return key;
}

char *al_store_describe(const struct al_store *s, const char *name)
{
	_cleanup_free_ char *key = object_key(s, name);
	char *d = NULL;

	if (!key || asprintf(&d, "%s://%s/%s", al_store_type_name(s->type), s->bucket, key) < 0)
		return NULL;
	return d;
}

/* RFC 3986 percent-encoding of everything but unreserved characters (and '/' in a
 * path), as SigV4 and Azure expect. */
static int uri_encode(struct al_buf *b, const char *s, bool keep_slash)
{
	static const char hex[] = "0123456789ABCDEF";

	for (; *s; s++) {
		unsigned char c = (unsigned char)*s;
		if ((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
		    c == '-' || c == '_' || c == '.' || c == '~' || (keep_slash && c == '/')) {
			if (al_buf_append(b, s, 1) < 0)
				return -ENOMEM;
		} else {
			char esc[3] = {'%', hex[c >> 4], hex[c & 15]};
			if (al_buf_append(b, esc, 3) < 0)
				return -ENOMEM;
		}
	}
	return 0;
}

/* ENDPOINT/BUCKET/KEY[?query]; the query must be canonical already. */
static char *object_url(const struct al_store *s, const char *key, const char *query)
{
	_cleanup_buf_ struct al_buf b = {0};

	if (al_buf_append(&b, s->endpoint, strlen(s->endpoint)) < 0 ||
	    al_buf_append(&b, "/", 1) < 0 || uri_encode(&b, s->bucket, false) < 0 ||
	    al_buf_append(&b, "/", 1) < 0 || uri_encode(&b, key, true) < 0)
		return NULL;
	if (query && *query &&
	    (al_buf_append(&b, "?", 1) < 0 || al_buf_append(&b, query, strlen(query)) < 0))
		return NULL;
	if (s->type == AL_STORE_AZURE && !s->azure_key && s->secret->sas_token) {
		const char *sas = s->secret->sas_token + (s->secret->sas_token[0] == '?');
		if (al_buf_append(&b, query && *query ? "&" : "?", 1) < 0 ||
		    al_buf_append(&b, sas, strlen(sas)) < 0)
			return NULL;
	}
	if (al_buf_append(&b, "", 1) < 0)
		return NULL;
	return TAKE_PTR(b.data);
}

/* ---- requests ---- */

struct store_request {
	const char *method;
	const char *key;
	const char *query; /* canonical: sorted, encoded; Azure's is decoded for signing */
	const char *const *headers;
	const void *body;
	size_t body_len;
	FILE *upload;
	int64_t upload_size;
	int (*on_data)(void *ctx, const char *data, size_t len);
	void *ctx;
	const char *const *capture;
};

static int hmac_sha256(const void *key, size_t key_len, const char *msg, unsigned char out[32])
{
	unsigned int len = 32;
	return HMAC(EVP_sha256(), key, (int)key_len, (const unsigned char *)msg, strlen(msg), out,
	            &len)
	           ? 0
	           : -EIO;
}

static int header_cmp(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* The Shared Key Authorization header (docs: "Authorize with Shared Key").  Only
 * x-ms-* headers, Content-Length and Content-Type are ever set here, so the other
 * standard headers of the string to sign are empty. */
static char *azure_authorization(const struct al_store *s, const char *method, const char *url,
                                 const char *const *headers, int64_t content_length,
                                 const char *content_type, const char *query)
{
	_cleanup_buf_ struct al_buf sts = {0};
	_cleanup_strv_ char **ms = NULL;
	_cleanup_free_ char *sig = NULL;
	char len_text[32] = "";
	const char *path;
	unsigned char mac[32];
	size_t n = 0;
	char *auth = NULL;

	for (const char *const *h = headers; h && *h; h++)
		n++;
	ms = calloc(n + 1, sizeof(*ms));
	if (!ms)
		return NULL;
	n = 0;
	for (const char *const *h = headers; h && *h; h++) {
		const char *colon = strchr(*h, ':');
		char *line;
		if (!colon || strncasecmp(*h, "x-ms-", 5))
			continue;
		const char *v = colon + 1;
		while (*v == ' ')
			v++;
		if (asprintf(&line, "%.*s:%s", (int)(colon - *h), *h, v) < 0)
			return NULL;
		for (char *p = line; *p != ':'; p++)
			*p = (char)tolower((unsigned char)*p);
		ms[n++] = line;
	}
	qsort(ms, n, sizeof(*ms), header_cmp);
	if (content_length > 0)
		snprintf(len_text, sizeof(len_text), "%lld", (long long)content_length);
	path = strstr(url, "://");
	path = path ? strchr(path + 3, '/') : NULL;
	if (!path)
		return NULL;
	if (al_buf_append(&sts, method, strlen(method)) < 0 ||
	    al_buf_append(&sts, "\n\n\n", 3) < 0 ||
	    al_buf_append(&sts, len_text, strlen(len_text)) < 0 ||
	    al_buf_append(&sts, "\n\n", 2) < 0 ||
	    al_buf_append(&sts, content_type ? content_type : "",
	                  content_type ? strlen(content_type) : 0) < 0 ||
	    al_buf_append(&sts, "\n\n\n\n\n\n\n", 7) < 0)
		return NULL;
	for (size_t i = 0; i < n; i++)
		if (al_buf_append(&sts, ms[i], strlen(ms[i])) < 0 ||
		    al_buf_append(&sts, "\n", 1) < 0)
			return NULL;
	if (al_buf_append(&sts, "/", 1) < 0 ||
	    al_buf_append(&sts, s->secret->account_name, strlen(s->secret->account_name)) < 0 ||
	    al_buf_append(&sts, path, strcspn(path, "?")) < 0)
		return NULL;
	/* The query's parameters, one "name:decoded value" a line, sorted by name: every
	 * query built here is given sorted. */
	for (const char *q = query; q && *q;) {
		size_t len = strcspn(q, "&");
		const char *eq = memchr(q, '=', len);
		char *value;
		int value_len = 0;
		if (!eq)
			return NULL;
		value =
		    curl_easy_unescape(NULL, eq + 1, (int)(len - (size_t)(eq + 1 - q)), &value_len);
		if (!value)
			return NULL;
		int ar = al_buf_append(&sts, "\n", 1) < 0 || al_buf_append(&sts, q, eq - q) < 0 ||
		         al_buf_append(&sts, ":", 1) < 0 ||
		         al_buf_append(&sts, value, (size_t)value_len) < 0;
		curl_free(value);
		if (ar)
			return NULL;
		q += len + (q[len] == '&');
	}
	if (al_buf_append(&sts, "", 1) < 0 ||
	    hmac_sha256(s->azure_key, s->azure_key_len, sts.data, mac) < 0)
		return NULL;
	sig = al_base64_encode(mac, sizeof(mac));
	if (!sig ||
	    asprintf(&auth, "Authorization: SharedKey %s:%s", s->secret->account_name, sig) < 0)
		return NULL;
	return auth;
}

/* The store's error message: S3's and Azure's XML <Code>/<Message>, else the text. */
static void error_text(const struct al_http_response *resp, char *out, size_t size)
{
	xmlDocPtr doc = NULL;

	out[0] = '\0';
	if (resp->body.len)
		doc = xmlReadMemory(resp->body.data, (int)resp->body.len, NULL, NULL,
		                    XML_PARSE_NONET | XML_PARSE_NOERROR | XML_PARSE_NOWARNING);
	if (doc) {
		xmlNodePtr root = xmlDocGetRootElement(doc);
		xmlChar *code = NULL, *msg = NULL;
		for (xmlNodePtr n = root ? root->children : NULL; n; n = n->next) {
			if (n->type != XML_ELEMENT_NODE)
				continue;
			if (!xmlStrcmp(n->name, BAD_CAST "Code") && !code)
				code = xmlNodeGetContent(n);
			else if (!xmlStrcmp(n->name, BAD_CAST "Message") && !msg)
				msg = xmlNodeGetContent(n);
		}
		snprintf(out, size, "%s%s%s", code ? (char *)code : "", code && msg ? ": " : "",
		         msg ? (char *)msg : "");
		out[strcspn(out, "\r\n")] = '\0';
		xmlFree(code);
		xmlFree(msg);
		xmlFreeDoc(doc);
	}
	if (!out[0])
		al_http_error_text(resp->body.data, resp->body.len, out, size);
}

/* One request; a non-2xx answer is an error naming the bucket and key (-ENOENT for
 * 404).  resp is filled in either case when an answer came. */
static int store_do(struct al_store *s, const struct store_request *rq,
                    struct al_http_response *resp, struct al_error *err)
{
	_cleanup_free_ char *url = object_url(s, rq->key, rq->query);
	_cleanup_free_ char *date = NULL;
	_cleanup_free_ char *version = NULL;
	_cleanup_free_ char *auth = NULL;
	_cleanup_free_ char *what = NULL;
	_cleanup_free_ char *payload_sha = NULL;
	const char *headers[24];
	bool has_body =
	    rq->upload || rq->body_len || !strcmp(rq->method, "PUT") || !strcmp(rq->method, "POST");
	size_t n = 0;
	int r;

	if (!url ||
	    asprintf(&what, "store %s %s %s key %s", al_store_type_name(s->type),
	             s->type == AL_STORE_AZURE ? "container" : "bucket", s->bucket, rq->key) < 0)
		return al_error_set(err, ENOMEM, "out of memory");
	for (const char *const *h = rq->headers; h && *h && n < 16; h++)
		headers[n++] = *h;
	/* libcurl would add a form content type to a body given in memory. */
	if (has_body)
		headers[n++] = "Content-Type: application/octet-stream";
	/* S3 wants the payload's hash in a header (and SigV4 signs it); a file upload
	 * brings its own, a body in memory is hashed here. */
	if (s->content_sha_header && !rq->upload) {
		char sha[65];
		al_sha256_hex(rq->body ? rq->body : "", rq->body_len, sha);
		if (asprintf(&payload_sha, "%s: %s", s->content_sha_header, sha) < 0)
			return al_error_set(err, ENOMEM, "out of memory");
		headers[n++] = payload_sha;
	}
	if (s->service_account) {
		r = gcs_bearer(s, err);
		if (r < 0)
			return r;
		headers[n++] = s->bearer;
	}
	if (s->type == AL_STORE_AZURE) {
		char stamp[64];
		time_t now = time(NULL);
		struct tm tm;
		gmtime_r(&now, &tm);
		strftime(stamp, sizeof(stamp), "%a, %d %b %Y %H:%M:%S GMT", &tm);
		if (asprintf(&date, "x-ms-date: %s", stamp) < 0 ||
		    asprintf(&version, "x-ms-version: %s", AZURE_VERSION) < 0)
			return al_error_set(err, ENOMEM, "out of memory");
		headers[n++] = date;
		headers[n++] = version;
		headers[n] = NULL;
		if (s->azure_key) {
			int64_t len = rq->upload ? rq->upload_size : (int64_t)rq->body_len;
			auth = azure_authorization(s, rq->method, url, headers, len,
			                           has_body ? "application/octet-stream" : NULL,
			                           rq->query);
			if (!auth)
				return al_error_set(err, ENOMEM, "%s: cannot sign the request",
				                    what);
			headers[n++] = auth;
		}
	}
	headers[n] = NULL;
	{
		struct al_http_request hr = {
		    .method = rq->method,
		    .url = url,
		    .headers = headers,
		    .body = rq->body,
		    .body_len = rq->body_len,
		    .upload = rq->upload,
		    .upload_size = rq->upload_size,
		    .on_data = rq->on_data,
		    .ctx = rq->ctx,
		    .idempotent = true, /* every request here may be sent again */
		    .what = what,
		    .aws_sigv4 = s->sigv4,
		    .sigv4_user = s->sigv4 ? s->secret->access_key_id : NULL,
		    .sigv4_secret = s->sigv4 ? s->secret->secret_access_key : NULL,
		    .capture = rq->capture,
		};
		r = al_http_do(&s->http, &hr, resp, err);
	}
	if (r < 0)
		return r;
	if (resp->status < 200 || resp->status >= 300) {
		char text[512];
		error_text(resp, text, sizeof(text));
		if (resp->status == 404)
			return al_error_set(err, ENOENT, "%s: no such object (HTTP 404%s%s)", what,
			                    text[0] ? ": " : "", text);
		return al_error_set(err, resp->status == 403 || resp->status == 401 ? EACCES : EIO,
		                    "%s: HTTP %ld: %s", what, resp->status,
		                    text[0] ? text : "(no message)");
	}
	return 0;
}

/* ---- upload ---- */

static int file_sha256(FILE *f, const char *path, char out[65], struct al_error *err)
{
	EVP_MD_CTX *ctx = EVP_MD_CTX_new();
	unsigned char md[32];
	char buf[1 << 16];
	size_t n;

	if (!ctx || !EVP_DigestInit_ex(ctx, EVP_sha256(), NULL)) {
		EVP_MD_CTX_free(ctx);
		return al_error_set(err, ENOMEM, "out of memory");
	}
	rewind(f);
	while ((n = fread(buf, 1, sizeof(buf), f)) > 0)
		EVP_DigestUpdate(ctx, buf, n);
	if (ferror(f)) {
		EVP_MD_CTX_free(ctx);
		return al_error_errno(err, "read %s", path);
	}
	EVP_DigestFinal_ex(ctx, md, NULL);
	EVP_MD_CTX_free(ctx);
	for (int i = 0; i < 32; i++)
		snprintf(out + 2 * i, 3, "%02x", md[i]);
	rewind(f);
	return 0;
}

static xmlChar *xml_child_text(xmlNodePtr parent, const char *name)
{
	for (xmlNodePtr n = parent ? parent->children : NULL; n; n = n->next)
		if (n->type == XML_ELEMENT_NODE && !xmlStrcmp(n->name, BAD_CAST name))
			return xmlNodeGetContent(n);
	return NULL;
}

static void xml_free_docp(xmlDocPtr *d)
{
	if (*d)
		xmlFreeDoc(*d);
}

/* A document serialised to a NUL-terminated malloc'd string. */
static char *xml_dump(xmlDocPtr doc, size_t *len)
{
	xmlChar *mem = NULL;
	int size = 0;
	char *copy;

	xmlDocDumpMemoryEnc(doc, &mem, &size, "UTF-8");
	if (!mem)
		return NULL;
	copy = strndup((const char *)mem, (size_t)size);
	xmlFree(mem);
	*len = (size_t)size;
	return copy;
}

static int read_part(FILE *f, char *buf, size_t want, const char *path, struct al_error *err)
{
	if (fread(buf, 1, want, f) != want)
		return al_error_errno(err, "read %s", path);
	return 0;
}

/* S3 dialect: initiate, the parts, complete; aborted on any failure. */
static int put_multipart_s3(struct al_store *s, const char *key, FILE *f, const char *path,
                            int64_t size, const char *meta, struct al_error *err)
{
	const char *meta_headers[] = {meta, NULL};
	const char *capture_etag[] = {"etag", NULL};
	_cleanup_(xml_free_docp) xmlDocPtr init = NULL;
	_cleanup_(xml_free_docp) xmlDocPtr done = NULL;
	_cleanup_free_ char *upload_id = NULL;
	_cleanup_free_ char *buf = NULL;
	_cleanup_free_ char *body = NULL;
	_cleanup_buf_ struct al_buf enc = {0};
	unsigned parts = (unsigned)((size + (int64_t)s->part_size - 1) / (int64_t)s->part_size);
	xmlNodePtr list;
	size_t body_len = 0;
	int r;

	if (parts > MAX_PARTS)
		return al_error_set(err, EFBIG, "%s: %u parts of %zu bytes are too many", path,
		                    parts, s->part_size);
	{
		_cleanup_(al_http_response_free) struct al_http_response resp = {0};
		xmlChar *id;
		struct store_request rq = {
		    .method = "POST", .key = key, .query = "uploads=", .headers = meta_headers};
		if ((r = store_do(s, &rq, &resp, err)) < 0)
			return al_error_prefix(err, "start multipart upload");
		init = xmlReadMemory(resp.body.data, (int)resp.body.len, NULL, NULL,
		                     XML_PARSE_NONET | XML_PARSE_NOERROR | XML_PARSE_NOWARNING);
		id = init ? xml_child_text(xmlDocGetRootElement(init), "UploadId") : NULL;
		if (!id || !*id) {
			xmlFree(id);
			return al_error_set(err, EPROTO,
			                    "store %s bucket %s key %s: no UploadId in the answer "
			                    "to the multipart upload start",
			                    al_store_type_name(s->type), s->bucket, key);
		}
		upload_id = strdup((char *)id);
		xmlFree(id);
		if (!upload_id || uri_encode(&enc, upload_id, false) < 0 ||
		    al_buf_append(&enc, "", 1) < 0)
			return al_error_set(err, ENOMEM, "out of memory");
	}
	done = xmlNewDoc(BAD_CAST "1.0");
	list = xmlNewNode(NULL, BAD_CAST "CompleteMultipartUpload");
	buf = malloc(s->part_size);
	if (!done || !list || !buf)
		return al_error_set(err, ENOMEM, "out of memory");
	xmlDocSetRootElement(done, list);
	rewind(f);
	for (unsigned i = 0; i < parts && r >= 0; i++) {
		_cleanup_(al_http_response_free) struct al_http_response resp = {0};
		_cleanup_free_ char *query = NULL;
		size_t want = (size_t)(size - (int64_t)i * (int64_t)s->part_size);
		char number[16];
		xmlNodePtr part;

		if (want > s->part_size)
			want = s->part_size;
		if ((r = read_part(f, buf, want, path, err)) < 0)
			break;
		if (asprintf(&query, "partNumber=%u&uploadId=%s", i + 1, enc.data) < 0) {
			r = al_error_set(err, ENOMEM, "out of memory");
			break;
		}
		struct store_request rq = {.method = "PUT",
		                           .key = key,
		                           .query = query,
		                           .body = buf,
		                           .body_len = want,
		                           .capture = capture_etag};
		if ((r = store_do(s, &rq, &resp, err)) < 0) {
			al_error_prefix(err, "part %u of %u", i + 1, parts);
			break;
		}
		if (!resp.captured[0][0]) {
			r = al_error_set(err, EPROTO,
			                 "store %s bucket %s key %s: part %u answered without an "
			                 "ETag",
			                 al_store_type_name(s->type), s->bucket, key, i + 1);
			break;
		}
		snprintf(number, sizeof(number), "%u", i + 1);
		part = xmlNewChild(list, NULL, BAD_CAST "Part", NULL);
		xmlNewTextChild(part, NULL, BAD_CAST "PartNumber", BAD_CAST number);
		xmlNewTextChild(part, NULL, BAD_CAST "ETag", BAD_CAST resp.captured[0]);
		log_info("store: %s part %u of %u sent (%zu bytes)", key, i + 1, parts, want);
	}
	if (r >= 0) {
		_cleanup_(al_http_response_free) struct al_http_response resp = {0};
		_cleanup_free_ char *query = NULL;
		body = xml_dump(done, &body_len);
		if (!body || asprintf(&query, "uploadId=%s", enc.data) < 0)
			r = al_error_set(err, ENOMEM, "out of memory");
		struct store_request rq = {.method = "POST",
		                           .key = key,
		                           .query = query,
		                           .body = body,
		                           .body_len = body_len};
		if (r >= 0 && (r = store_do(s, &rq, &resp, err)) < 0)
			al_error_prefix(err, "complete multipart upload");
		/* S3 may answer 200 with an <Error> body. */
		if (r >= 0 && resp.body.len &&
		    memmem(resp.body.data, resp.body.len, "<Error>", 7)) {
			char text[512];
			error_text(&resp, text, sizeof(text));
			r = al_error_set(err, EIO,
			                 "store %s bucket %s key %s: complete multipart upload: %s",
			                 al_store_type_name(s->type), s->bucket, key, text);
		}
	}
	if (r < 0) {
		/* Nothing half-made is left behind: the parts go. */
		_cleanup_(al_http_response_free) struct al_http_response resp = {0};
		_cleanup_free_ char *query = NULL;
		struct al_error e = AL_ERROR_INIT;
		if (asprintf(&query, "uploadId=%s", enc.data) >= 0) {
			struct store_request rq = {.method = "DELETE", .key = key, .query = query};
			if (store_do(s, &rq, &resp, &e) < 0)
				log_warn("abort multipart upload: %s", e.msg);
		}
	}
	return r;
}

/* Azure: one Put Block per part, then Put Block List with the metadata. */
static int put_blocks_azure(struct al_store *s, const char *key, FILE *f, const char *path,
                            int64_t size, const char *meta, struct al_error *err)
{
	const char *meta_headers[] = {meta, NULL};
	_cleanup_(xml_free_docp) xmlDocPtr doc = xmlNewDoc(BAD_CAST "1.0");
	_cleanup_free_ char *buf = malloc(s->part_size);
	_cleanup_free_ char *body = NULL;
	unsigned parts = (unsigned)((size + (int64_t)s->part_size - 1) / (int64_t)s->part_size);
	xmlNodePtr list = xmlNewNode(NULL, BAD_CAST "BlockList");
	size_t body_len = 0;
	int r;

	if (!doc || !buf || !list)
		return al_error_set(err, ENOMEM, "out of memory");
	if (parts > 50000)
		return al_error_set(err, EFBIG, "%s: %u blocks are too many", path, parts);
	xmlDocSetRootElement(doc, list);
	rewind(f);
	for (unsigned i = 0; i < parts; i++) {
		_cleanup_(al_http_response_free) struct al_http_response resp = {0};
		_cleanup_free_ char *id = NULL;
		_cleanup_free_ char *query = NULL;
		_cleanup_buf_ struct al_buf enc = {0};
		size_t want = (size_t)(size - (int64_t)i * (int64_t)s->part_size);
		char raw[32];

		if (want > s->part_size)
			want = s->part_size;
		if ((r = read_part(f, buf, want, path, err)) < 0)
			return r;
		/* Block ids of one blob must all have the same length. */
		snprintf(raw, sizeof(raw), "block-%08u", i);
		id = al_base64_encode(raw, strlen(raw));
		if (!id || uri_encode(&enc, id, false) < 0 || al_buf_append(&enc, "", 1) < 0 ||
		    asprintf(&query, "blockid=%s&comp=block", enc.data) < 0)
			return al_error_set(err, ENOMEM, "out of memory");
		struct store_request rq = {
		    .method = "PUT", .key = key, .query = query, .body = buf, .body_len = want};
		if ((r = store_do(s, &rq, &resp, err)) < 0)
			return al_error_prefix(err, "block %u of %u", i + 1, parts);
		xmlNewTextChild(list, NULL, BAD_CAST "Latest", BAD_CAST id);
		log_info("store: %s block %u of %u sent (%zu bytes)", key, i + 1, parts, want);
	}
	body = xml_dump(doc, &body_len);
	if (!body)
		return al_error_set(err, ENOMEM, "out of memory");
	{
		_cleanup_(al_http_response_free) struct al_http_response resp = {0};
		struct store_request rq = {.method = "PUT",
		                           .key = key,
		                           .query = "comp=blocklist",
		                           .headers = meta_headers,
		                           .body = body,
		                           .body_len = body_len};
		if ((r = store_do(s, &rq, &resp, err)) < 0)
			return al_error_prefix(err, "put block list");
	}
	return 0;
}

int al_store_put_file(struct al_store *s, const char *name, const char *path, char *sha256,
                      struct al_error *err)
{
	_cleanup_free_ char *key = object_key(s, name);
	_cleanup_free_ char *meta = NULL;
	_cleanup_free_ char *content_sha = NULL;
	_cleanup_fclose_ FILE *f = fopen(path, "rbe");
	char digest[65];
	struct stat st;
	int r;

	if (!key)
		return al_error_set(err, ENOMEM, "out of memory");
	if (!f || fstat(fileno(f), &st) < 0)
		return al_error_errno(err, "open %s", path);
	if ((r = file_sha256(f, path, digest, err)) < 0)
		return r;
	if (asprintf(&meta, "%s: %s", s->meta_header, digest) < 0)
		return al_error_set(err, ENOMEM, "out of memory");
	if ((size_t)st.st_size > s->part_size) {
		r = s->type == AL_STORE_AZURE
		        ? put_blocks_azure(s, key, f, path, st.st_size, meta, err)
		        : put_multipart_s3(s, key, f, path, st.st_size, meta, err);
	} else {
		_cleanup_(al_http_response_free) struct al_http_response resp = {0};
		const char *headers[4] = {meta, NULL};
		if (s->type == AL_STORE_AZURE)
			headers[1] = "x-ms-blob-type: BlockBlob";
		else if (asprintf(&content_sha, "%s: %s", s->content_sha_header, digest) < 0)
			return al_error_set(err, ENOMEM, "out of memory");
		else
			headers[1] = content_sha; /* the payload hash SigV4 signs */
		struct store_request rq = {.method = "PUT",
		                           .key = key,
		                           .headers = headers,
		                           .upload = f,
		                           .upload_size = st.st_size};
		r = store_do(s, &rq, &resp, err);
	}
	if (r < 0)
		return r;
	if (sha256)
		memcpy(sha256, digest, sizeof(digest));
	return 0;
}

/* ---- download ---- */

/* A download in progress: a temporary file beside the target, hashed as it fills; removed
 * unless it was renamed into place. */
struct download {
	int fd;
	char *tmp;
	EVP_MD_CTX *md;
	uint64_t bytes;
	bool done;
};

static void download_release(struct download *d)
{
	if (d->fd >= 0)
		close(d->fd);
	if (d->tmp && !d->done)
		unlink(d->tmp);
	free(d->tmp);
	EVP_MD_CTX_free(d->md);
}

static int on_download(void *ctx, const char *data, size_t len)
{
	struct download *d = ctx;

	if (al_write_all(d->fd, data, len) < 0)
		return -errno;
	EVP_DigestUpdate(d->md, data, len);
	d->bytes += len;
	return 0;
}

int al_store_get_file(struct al_store *s, const char *name, const char *path,
                      const char *want_sha256, struct al_error *err)
{
	_cleanup_free_ char *key = object_key(s, name);
	_cleanup_free_ char *where = al_store_describe(s, name);
	_cleanup_(al_http_response_free) struct al_http_response resp = {0};
	_cleanup_(download_release) struct download d = {.fd = -1};
	const char *capture[] = {s->meta_header, NULL};
	unsigned char md[32];
	char got[65];
	int r;

	if (!key || !where || asprintf(&d.tmp, "%s.part-XXXXXX", path) < 0)
		return al_error_set(err, ENOMEM, "out of memory");
	d.fd = mkostemp(d.tmp, O_CLOEXEC);
	if (d.fd < 0)
		return al_error_errno(err, "create %s", d.tmp);
	d.md = EVP_MD_CTX_new();
	if (!d.md || !EVP_DigestInit_ex(d.md, EVP_sha256(), NULL))
		return al_error_set(err, ENOMEM, "out of memory");
	struct store_request rq = {
	    .method = "GET", .key = key, .on_data = on_download, .ctx = &d, .capture = capture};
	if ((r = store_do(s, &rq, &resp, err)) < 0)
		return r;
	EVP_DigestFinal_ex(d.md, md, NULL);
	for (int i = 0; i < 32; i++)
		snprintf(got + 2 * i, 3, "%02x", md[i]);
	if (!resp.captured[0][0])
		return al_error_set(err, EBADMSG,
		                    "%s: refused: the object has no sha256 metadata (%s), so it "
		                    "cannot be checked",
		                    where, s->meta_header);
	if (strcasecmp(resp.captured[0], got))
		return al_error_set(err, EBADMSG,
		                    "%s: refused: damaged object (%" PRIu64
		                    " bytes with SHA-256 %s; its metadata says %s)",
		                    where, d.bytes, got, resp.captured[0]);
	if (want_sha256 && strcasecmp(want_sha256, got))
		return al_error_set(err, EBADMSG,
		                    "%s: refused: SHA-256 %s is not the %s recorded when it was "
		                    "written",
		                    where, got, want_sha256);
	r = fsync(d.fd);
	if (close(d.fd) < 0 || r < 0) {
		d.fd = -1;
		return al_error_errno(err, "write %s", d.tmp);
	}
	d.fd = -1;
	if (rename(d.tmp, path) < 0)
		return al_error_errno(err, "rename %s to %s", d.tmp, path);
	d.done = true;
	return 0;
}

int al_store_delete(struct al_store *s, const char *name, struct al_error *err)
{
	_cleanup_free_ char *key = object_key(s, name);
	_cleanup_(al_http_response_free) struct al_http_response resp = {0};
	int r;

	if (!key)
		return al_error_set(err, ENOMEM, "out of memory");
	struct store_request rq = {.method = "DELETE", .key = key};
	r = store_do(s, &rq, &resp, err);
	return r == -ENOENT ? 0 : r;
}
