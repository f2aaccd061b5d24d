/* SPDX-License-Identifier: Apache-2.0 */
#pragma once

/*
 * The model client.  Conversation items are kept in the Responses API's shape whatever
 * the wire format: the Responses API itself, Chat Completions (llama.cpp server, vLLM,
 * Ollama) translated both ways, or a replay script of recorded responses.  Transient
 * failures (connection errors, timeouts, 408, 409, 429, 5xx) are retried with exponential
 * backoff and jitter, honouring Retry-After.
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include <cjson/cJSON.h>

#include "error.h"
#include "http.h"
#include "task.h"

struct al_model {
	const struct al_model_config *cfg;
	const char *api_key; /* borrowed; NULL: send no Authorization header */
	struct al_http http;
	char **replay; /* replay: one response per entry */
	size_t n_replay;
};

struct al_model_reply {
	char *id;
	cJSON *output; /* array of Responses-shaped output items */
	long input_tokens;
	long output_tokens;
	char digest[65];         /* sha256 of the response as received */
	char request_digest[65]; /* sha256 of the request as sent ("" for replay) */
	int attempts;
};

int al_model_open(struct al_model *m, const struct al_model_config *cfg, const char *api_key,
                  struct al_error *err);
void al_model_close(struct al_model *m);

/* The index-th call of a run (replay plays line index+1); tools may be NULL. */
int al_model_call(struct al_model *m, unsigned long index, const char *instructions,
                  const cJSON *items, const cJSON *tools, struct al_model_reply *reply,
                  struct al_error *err);
void al_model_reply_free(struct al_model_reply *r);

/* Text of the assistant messages in an output array, joined; NULL when there is none. */
char *al_model_output_text(const cJSON *output);

/* ---- exposed for the unit tests ---- */

/* al_retry_after_ms, al_backoff_ms, al_status_is_retryable: http.h */

int al_replay_load(const char *path, char ***lines, size_t *n, struct al_error *err);
int al_parse_responses_body(const char *body, size_t len, struct al_model_reply *r,
                            struct al_error *err);
int al_parse_chat_body(const char *body, size_t len, struct al_model_reply *r,
                       struct al_error *err);
cJSON *al_build_responses_request(const char *model, const char *instructions, const cJSON *items,
                                  const cJSON *tools);
cJSON *al_build_chat_request(const char *model, const char *instructions, const cJSON *items,
                             const cJSON *tools);
