/* SPDX-License-Identifier: Apache-2.0 */
#include "model.h"

#include "cleanup.h"
#include "json.h"
#include "log.h"
#include "util.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

#define MAX_REPLAY_BYTES (1u << 30)
#define MAX_ERROR_TEXT 300

/* ---- replay ---- */

int al_replay_load(const char *path, char ***lines_out, size_t *n_out, struct al_error *err)
{
	_cleanup_free_ char *text = NULL;
	_cleanup_strv_ char **lines = NULL; /* NULL-terminated whenever it can be released */
	size_t n = 0, len = 0;
	char *p, *save = NULL;
	int r;

	r = al_read_file(path, MAX_REPLAY_BYTES, &text, &len, err);
	if (r < 0)
		return al_error_prefix(err, "replay script");
	for (p = strtok_r(text, "\n", &save); p; p = strtok_r(NULL, "\n", &save)) {
		char **v;
		const char *q = p;
		while (isspace((unsigned char)*q))
			q++;
		if (!*q)
			continue;
		v = realloc(lines, (n + 2) * sizeof(*v));
		if (!v)
			return al_error_set(err, ENOMEM, "out of memory");
		lines = v;
		lines[n] = strdup(p);
		if (!lines[n])
			return al_error_set(err, ENOMEM, "out of memory");
		lines[++n] = NULL;
	}
	*lines_out = TAKE_PTR(lines);
	*n_out = n;
	return 0;
}

/* ---- the Responses API shape ---- */

void al_model_reply_free(struct al_model_reply *r)
{
	free(r->id);
	cJSON_Delete(r->output);
	memset(r, 0, sizeof(*r));
}

/* A number beyond long's range counts as absent: converting it would be
 * undefined behaviour, and a server that sends one says nothing usable. */
static long jlong(const cJSON *o, const char *key)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
	return cJSON_IsNumber(v) && v->valuedouble >= -0x1p63 && v->valuedouble < 0x1p63
	           ? (long)v->valuedouble
	           : 0;
}

/* An error body's message, shortened, for the user. */
static void error_text(const char *body, size_t len, char *out, size_t outlen)
{
	_cleanup_cjson_ cJSON *j = body ? cJSON_ParseWithLength(body, len) : NULL;
	const cJSON *e = cJSON_GetObjectItemCaseSensitive(j, "error");
	const char *msg = cJSON_IsString(e) ? e->valuestring : al_json_str(e, "message");

	if (msg)
		snprintf(out, outlen, "%s", msg);
	else if (body && len)
		snprintf(out, outlen, "%.*s", (int)(len < MAX_ERROR_TEXT ? len : MAX_ERROR_TEXT),
		         body);
	else
		snprintf(out, outlen, "(empty body)");
}

/* Set item[key] to the string s.  Every member of that name goes first: a response may
 * repeat a key, and a second one left behind would be the one read after the first. */
static int set_string_member(cJSON *item, const char *key, const char *s)
{
	while (cJSON_GetObjectItemCaseSensitive(item, key))
		cJSON_DeleteItemFromObjectCaseSensitive(item, key);
	return cJSON_AddStringToObject(item, key, s) ? 0 : -ENOMEM;
}

/* Make every function_call well-formed enough for the loop: a call id, a name, string
 * arguments.  Anything stranger is left for the tool dispatcher to refuse. */
static int normalize_output(cJSON *output, struct al_error *err)
{
	cJSON *item;
	int n = 0;

	if (!cJSON_IsArray(output))
		return al_error_set(err, EPROTO, "model response has no output array");
	cJSON_ArrayForEach(item, output)
	{
		const char *type;
		cJSON *args;
		n++;
		if (!cJSON_IsObject(item) || !(type = al_json_str(item, "type")))
			return al_error_set(err, EPROTO, "model output item %d has no type", n);
		if (strcmp(type, "function_call"))
			continue;
		if (!al_json_str(item, "call_id")) {
			char id[32];
			snprintf(id, sizeof(id), "call_%d", n);
			if (set_string_member(item, "call_id", id) < 0)
				return al_error_set(err, ENOMEM, "out of memory");
		}
		if (!al_json_str(item, "name") && set_string_member(item, "name", "") < 0)
			return al_error_set(err, ENOMEM, "out of memory");
		args = cJSON_GetObjectItemCaseSensitive(item, "arguments");
		if (!cJSON_IsString(args)) {
			_cleanup_free_ char *text =
			    args ? cJSON_PrintUnformatted(args) : strdup("{}");
			if (!text || set_string_member(item, "arguments", text) < 0)
				return al_error_set(err, ENOMEM, "out of memory");
		}
	}
	return 0;
}

int al_parse_responses_body(const char *body, size_t len, struct al_model_reply *r,
                            struct al_error *err)
{
	_cleanup_cjson_ cJSON *j = cJSON_ParseWithLength(body, len);
	const cJSON *usage, *e;
	const char *status;
	int rc;

	if (!cJSON_IsObject(j))
		return al_error_set(err, EPROTO, "model response is not a JSON object");
	status = al_json_str(j, "status");
	e = cJSON_GetObjectItemCaseSensitive(j, "error");
	if ((status && !strcmp(status, "failed")) || (e && !cJSON_IsNull(e))) {
		const char *msg = al_json_str(e, "message");
		return al_error_set(err, EPROTO, "model reports failure: %s",
		                    msg ? msg : "(no message)");
	}
	r->output = cJSON_DetachItemFromObjectCaseSensitive(j, "output");
	rc = normalize_output(r->output, err);
	if (rc < 0)
		return rc;
	r->id = strdup(al_json_str(j, "id") ? al_json_str(j, "id") : "");
	usage = cJSON_GetObjectItemCaseSensitive(j, "usage");
	r->input_tokens = jlong(usage, "input_tokens");
	r->output_tokens = jlong(usage, "output_tokens");
	al_sha256_hex(body, len, r->digest);
	return r->id ? 0 : al_error_set(err, ENOMEM, "out of memory");
}

int al_parse_chat_body(const char *body, size_t len, struct al_model_reply *r, struct al_error *err)
{
	_cleanup_cjson_ cJSON *j = cJSON_ParseWithLength(body, len);
	const cJSON *choice, *msg, *usage, *call, *content;
	cJSON *out;
	int n = 0;

	if (!cJSON_IsObject(j))
		return al_error_set(err, EPROTO, "model response is not a JSON object");
	choice = cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(j, "choices"), 0);
	msg = cJSON_GetObjectItemCaseSensitive(choice, "message");
	if (!cJSON_IsObject(msg))
		return al_error_set(err, EPROTO, "chat completion has no choices[0].message");
	out = r->output = cJSON_CreateArray();
	if (!out)
		return al_error_set(err, ENOMEM, "out of memory");
	content = cJSON_GetObjectItemCaseSensitive(msg, "content");
	if (cJSON_IsString(content) && *content->valuestring) {
		cJSON *item = cJSON_CreateObject();
		cJSON *parts = cJSON_AddArrayToObject(item, "content");
		cJSON *part = cJSON_CreateObject();
		cJSON_AddStringToObject(item, "type", "message");
		cJSON_AddStringToObject(item, "role", "assistant");
		cJSON_AddStringToObject(part, "type", "output_text");
		cJSON_AddStringToObject(part, "text", content->valuestring);
		cJSON_AddItemToArray(parts, part);
		cJSON_AddItemToArray(out, item);
	}
	cJSON_ArrayForEach(call, cJSON_GetObjectItemCaseSensitive(msg, "tool_calls"))
	{
		const cJSON *fn = cJSON_GetObjectItemCaseSensitive(call, "function");
		const cJSON *args = cJSON_GetObjectItemCaseSensitive(fn, "arguments");
		cJSON *item = cJSON_CreateObject();
		char id[32];
		n++;
		snprintf(id, sizeof(id), "call_%d", n);
		cJSON_AddStringToObject(item, "type", "function_call");
		cJSON_AddStringToObject(item, "call_id",
		                        al_json_str(call, "id") ? al_json_str(call, "id") : id);
		cJSON_AddStringToObject(item, "name",
		                        al_json_str(fn, "name") ? al_json_str(fn, "name") : "");
		if (cJSON_IsString(args)) {
			cJSON_AddStringToObject(item, "arguments", args->valuestring);
		} else {
			_cleanup_free_ char *text = args ? cJSON_PrintUnformatted(args) : NULL;
			cJSON_AddStringToObject(item, "arguments", text ? text : "{}");
		}
		cJSON_AddItemToArray(out, item);
	}
	r->id = strdup(al_json_str(j, "id") ? al_json_str(j, "id") : "");
	usage = cJSON_GetObjectItemCaseSensitive(j, "usage");
	r->input_tokens = jlong(usage, "prompt_tokens");
	r->output_tokens = jlong(usage, "completion_tokens");
	al_sha256_hex(body, len, r->digest);
	return r->id ? 0 : al_error_set(err, ENOMEM, "out of memory");
}

/* Texts are joined one to a line. */
static void append_line(struct al_buf *b, const char *t)
{
	if (b->len)
		al_buf_append(b, "\n", 1);
	al_buf_append(b, t, strlen(t));
}

char *al_model_output_text(const cJSON *output)
{
	struct al_buf b = {0};
	const cJSON *item, *part;

	cJSON_ArrayForEach(item, output)
	{
		const char *type = al_json_str(item, "type");
		if (!type || strcmp(type, "message"))
			continue;
		if (al_json_str(item, "content")) {
			append_line(&b, al_json_str(item, "content"));
			continue;
		}
		cJSON_ArrayForEach(part, cJSON_GetObjectItemCaseSensitive(item, "content"))
		{
			const char *t = al_json_str(part, "text");
			const char *pt = al_json_str(part, "type");
			if (!t || (pt && strcmp(pt, "output_text") && strcmp(pt, "text")))
				continue;
			append_line(&b, t);
		}
	}
	if (!b.data)
		return NULL;
	if (al_buf_append(&b, "", 1) < 0) {
		al_buf_free(&b);
		return NULL;
	}
	return b.data;
}

/* ---- requests ---- */

cJSON *al_build_responses_request(const char *model, const char *instructions, const cJSON *items,
                                  const cJSON *tools)
{
	cJSON *req = cJSON_CreateObject();
	cJSON *input = cJSON_AddArrayToObject(req, "input");
	const cJSON *item;

	cJSON_AddStringToObject(req, "model", model ? model : "");
	if (instructions && *instructions)
		cJSON_AddStringToObject(req, "instructions", instructions);
	cJSON_ArrayForEach(item, items)
	{
		const char *type = al_json_str(item, "type");
		cJSON *copy;
		/* Reasoning is kept for the record but not sent back: the harness keeps no
		 * server-side state (store: false), and a bare reasoning item refers to some. */
		if (type && !strcmp(type, "reasoning"))
			continue;
		copy = cJSON_Duplicate(item, 1);
		cJSON_DeleteItemFromObjectCaseSensitive(copy, "id");
		cJSON_DeleteItemFromObjectCaseSensitive(copy, "status");
		cJSON_AddItemToArray(input, copy);
	}
	if (tools && cJSON_GetArraySize(tools) > 0)
		cJSON_AddItemToObject(req, "tools", cJSON_Duplicate(tools, 1));
	cJSON_AddBoolToObject(req, "store", false);
	return req;
}

/* Flatten Responses content (a string or parts) into one text. */
static char *content_text(const cJSON *content)
{
	struct al_buf b = {0};
	const cJSON *part;

	if (cJSON_IsString(content))
		return strdup(content->valuestring);
	cJSON_ArrayForEach(part, content)
	{
		const char *t = al_json_str(part, "text");
		if (!t)
			t = al_json_str(part, "image_url");
		if (!t)
			continue;
		append_line(&b, t);
	}
	if (al_buf_append(&b, "", 1) < 0) {
		al_buf_free(&b);
		return NULL;
	}
	return b.data;
}

cJSON *al_build_chat_request(const char *model, const char *instructions, const cJSON *items,
                             const cJSON *tools)
{
	cJSON *req = cJSON_CreateObject();
	cJSON *msgs = cJSON_AddArrayToObject(req, "messages");
	cJSON *last_assistant = NULL;
	const cJSON *item, *tool;

	cJSON_AddStringToObject(req, "model", model ? model : "");
	if (instructions && *instructions) {
		cJSON *m = cJSON_CreateObject();
		cJSON_AddStringToObject(m, "role", "system");
		cJSON_AddStringToObject(m, "content", instructions);
		cJSON_AddItemToArray(msgs, m);
	}
	cJSON_ArrayForEach(item, items)
	{
		const char *type = al_json_str(item, "type");
		const char *role = al_json_str(item, "role");
		cJSON *m;

		if (type && !strcmp(type, "function_call")) {
			cJSON *calls, *call, *fn;
			if (!last_assistant) {
				last_assistant = cJSON_CreateObject();
				cJSON_AddStringToObject(last_assistant, "role", "assistant");
				cJSON_AddNullToObject(last_assistant, "content");
				cJSON_AddItemToArray(msgs, last_assistant);
			}
			calls = cJSON_GetObjectItemCaseSensitive(last_assistant, "tool_calls");
			if (!calls)
				calls = cJSON_AddArrayToObject(last_assistant, "tool_calls");
			call = cJSON_CreateObject();
			cJSON_AddStringToObject(
			    call, "id",
			    al_json_str(item, "call_id") ? al_json_str(item, "call_id") : "");
			cJSON_AddStringToObject(call, "type", "function");
			fn = cJSON_AddObjectToObject(call, "function");
			cJSON_AddStringToObject(
			    fn, "name", al_json_str(item, "name") ? al_json_str(item, "name") : "");
			cJSON_AddStringToObject(
			    fn, "arguments",
			    al_json_str(item, "arguments") ? al_json_str(item, "arguments") : "{}");
			cJSON_AddItemToArray(calls, call);
			continue;
		}
		if (type && !strcmp(type, "function_call_output")) {
			const cJSON *out = cJSON_GetObjectItemCaseSensitive(item, "output");
			_cleanup_free_ char *text = content_text(out);
			m = cJSON_CreateObject();
			cJSON_AddStringToObject(m, "role", "tool");
			cJSON_AddStringToObject(
			    m, "tool_call_id",
			    al_json_str(item, "call_id") ? al_json_str(item, "call_id") : "");
			cJSON_AddStringToObject(m, "content", text ? text : "");
			cJSON_AddItemToArray(msgs, m);
			last_assistant = NULL;
			continue;
		}
		if (role && (!type || !strcmp(type, "message"))) {
			_cleanup_free_ char *text =
			    content_text(cJSON_GetObjectItemCaseSensitive(item, "content"));
			m = cJSON_CreateObject();
			cJSON_AddStringToObject(m, "role",
			                        !strcmp(role, "developer") ? "system" : role);
			cJSON_AddStringToObject(m, "content", text ? text : "");
			cJSON_AddItemToArray(msgs, m);
			last_assistant = !strcmp(role, "assistant") ? m : NULL;
			continue;
		}
		/* Reasoning and other Responses-only items have no Chat Completions form. */
	}
	if (tools && cJSON_GetArraySize(tools) > 0) {
		cJSON *arr = cJSON_AddArrayToObject(req, "tools");
		cJSON_ArrayForEach(tool, tools)
		{
			cJSON *t = cJSON_CreateObject();
			cJSON *fn;
			cJSON_AddStringToObject(t, "type", "function");
			fn = cJSON_AddObjectToObject(t, "function");
			cJSON_AddStringToObject(
			    fn, "name", al_json_str(tool, "name") ? al_json_str(tool, "name") : "");
			if (al_json_str(tool, "description"))
				cJSON_AddStringToObject(fn, "description",
				                        al_json_str(tool, "description"));
			cJSON_AddItemToObject(
			    fn, "parameters",
			    cJSON_Duplicate(cJSON_GetObjectItemCaseSensitive(tool, "parameters"),
			                    1));
			cJSON_AddItemToArray(arr, t);
		}
	}
	return req;
}

/* ---- HTTP ---- */

static int post_with_retries(struct al_model *m, const char *url, const char *body,
                             struct al_model_reply *reply, struct al_buf *out, struct al_error *err)
{
	const struct al_model_config *cfg = m->cfg;
	_cleanup_free_ char *auth = NULL;
	const char *headers[4] = {"Content-Type: application/json", "Accept: application/json"};
	struct al_http_request rq = {.method = "POST",
	                             .url = url,
	                             .headers = headers,
	                             .body = body,
	                             .body_len = strlen(body),
	                             .max_response = cfg->max_response_bytes,
	                             /* a model call has no side effect worth guarding */
	                             .idempotent = true,
	                             .what = "model"};
	struct al_http_response resp;
	char text[MAX_ERROR_TEXT + 1];
	int r;

	if (m->api_key) {
		if (asprintf(&auth, "Authorization: Bearer %s", m->api_key) < 0)
			return al_error_set(err, ENOMEM, "out of memory");
		headers[2] = auth;
	}
	r = al_http_do(&m->http, &rq, &resp, err);
	if (auth)
		explicit_bzero(auth, strlen(auth));
	reply->attempts = resp.attempts;
	if (r == -EFBIG) {
		al_http_response_free(&resp);
		return al_error_set(err, EFBIG,
		                    "model response from %s is larger than %zu bytes "
		                    "(max_response_bytes)",
		                    url, cfg->max_response_bytes);
	}
	if (r < 0) {
		al_http_response_free(&resp);
		return al_error_prefix(err, "model request to %s failed", url);
	}
	if (resp.status >= 200 && resp.status < 300) {
		*out = resp.body;
		return 0;
	}
	error_text(resp.body.data, resp.body.len, text, sizeof(text));
	r = al_status_is_retryable(resp.status);
	al_error_set(err, r ? EAGAIN : EPROTO, "model request to %s failed%s: HTTP %ld: %s%s%s",
	             url, r ? " after retries" : "", resp.status, text,
	             resp.request_id[0] ? " (request id " : "",
	             resp.request_id[0] ? resp.request_id : "");
	if (resp.request_id[0])
		strncat(err->msg, ")", sizeof(err->msg) - strlen(err->msg) - 1);
	al_http_response_free(&resp);
	return -err->code;
}

/* ---- the client ---- */

int al_model_open(struct al_model *m, const struct al_model_config *cfg, const char *api_key,
                  struct al_error *err)
{
	memset(m, 0, sizeof(*m));
	m->cfg = cfg;
	m->api_key = api_key;
	if (cfg->api == AL_API_REPLAY)
		return al_replay_load(cfg->script, &m->replay, &m->n_replay, err);
	{
		struct al_http_config hc = {.timeout_ms = cfg->timeout_ms,
		                            .connect_timeout_ms =
		                                cfg->timeout_ms < 30000 ? cfg->timeout_ms : 30000L,
		                            .max_retries = cfg->max_retries,
		                            .retry_base_ms = cfg->retry_base_ms,
		                            .ca_bundle = cfg->ca_bundle};
		return al_http_open(&m->http, &hc, err);
	}
}

void al_model_close(struct al_model *m)
{
	al_http_close(&m->http);
	for (size_t i = 0; i < m->n_replay; i++)
		free(m->replay[i]);
	free(m->replay);
	memset(m, 0, sizeof(*m));
}

int al_model_call(struct al_model *m, unsigned long index, const char *instructions,
                  const cJSON *items, const cJSON *tools, struct al_model_reply *reply,
                  struct al_error *err)
{
	_cleanup_cjson_ cJSON *req = NULL;
	_cleanup_free_ char *body = NULL;
	_cleanup_free_ char *url = NULL;
	struct al_buf resp = {0};
	const struct al_model_config *cfg = m->cfg;
	size_t blen;
	int r;

	memset(reply, 0, sizeof(*reply));
	if (cfg->api == AL_API_REPLAY) {
		const char *line;
		if (index >= m->n_replay)
			return al_error_set(err, ENODATA,
			                    "replay script %s has %zu responses; call %lu has none",
			                    cfg->script, m->n_replay, index + 1);
		line = m->replay[index];
		reply->attempts = 1;
		r = al_parse_responses_body(line, strlen(line), reply, err);
		if (r < 0)
			return al_error_prefix(err, "replay script %s, response %lu", cfg->script,
			                       index + 1);
		if (!*reply->id) {
			free(reply->id);
			if (asprintf(&reply->id, "replay_%lu", index + 1) < 0)
				reply->id = NULL;
		}
		return 0;
	}
	if (cfg->api == AL_API_CHAT)
		req = al_build_chat_request(cfg->name, instructions, items, tools);
	else
		req = al_build_responses_request(cfg->name, instructions, items, tools);
	body = req ? cJSON_PrintUnformatted(req) : NULL;
	if (!body)
		return al_error_set(err, ENOMEM, "out of memory");
	blen = strlen(cfg->base_url);
	while (blen && cfg->base_url[blen - 1] == '/')
		blen--;
	if (asprintf(&url, "%.*s/%s", (int)blen, cfg->base_url,
	             cfg->api == AL_API_CHAT ? "chat/completions" : "responses") < 0)
		return al_error_set(err, ENOMEM, "out of memory");
	al_sha256_hex(body, strlen(body), reply->request_digest);
	r = post_with_retries(m, url, body, reply, &resp, err);
	if (r < 0)
		return r;
	if (cfg->api == AL_API_CHAT)
		r = al_parse_chat_body(resp.data ? resp.data : "", resp.len, reply, err);
	else
		r = al_parse_responses_body(resp.data ? resp.data : "", resp.len, reply, err);
	al_buf_free(&resp);
	if (r < 0)
		return al_error_prefix(err, "model %s", cfg->name);
	return 0;
}
