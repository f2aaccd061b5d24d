/* SPDX-License-Identifier: Apache-2.0 */
/*
 * What the harness reads from a model (harness/model.c): the input as a
 * replay script (JSONL, one Responses body a line) played call by call with
 * al_model_call, as a Responses API body (al_parse_responses_body) and as a
 * Chat Completions body (al_parse_chat_body).  Each output that parses goes
 * on as the loop takes it: its text is read (al_model_output_text) and it is
 * sent back as the next request's items in both wire formats.
 */
#include "fuzz.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "cleanup.h"
#include "json.h"
#include "model.h"
#include "util.h"

/* The loop's use of a reply: its text, and the next request built from it. */
static void use_reply(const struct al_model_reply *reply)
{
	const cJSON *item;
	_cleanup_free_ char *text = NULL;
	_cleanup_cjson_ cJSON *responses = NULL, *chat = NULL;
	_cleanup_free_ char *a = NULL, *b = NULL;

	FUZZ_ASSERT(reply->id && cJSON_IsArray(reply->output));
	cJSON_ArrayForEach(item, reply->output)
	{
		const cJSON *type = cJSON_GetObjectItemCaseSensitive(item, "type");
		FUZZ_ASSERT(cJSON_IsString(type));
		if (!strcmp(type->valuestring, "function_call")) {
			FUZZ_ASSERT(
			    cJSON_IsString(cJSON_GetObjectItemCaseSensitive(item, "call_id")));
			FUZZ_ASSERT(cJSON_IsString(cJSON_GetObjectItemCaseSensitive(item, "name")));
			FUZZ_ASSERT(
			    cJSON_IsString(cJSON_GetObjectItemCaseSensitive(item, "arguments")));
		}
	}
	text = al_model_output_text(reply->output);
	responses = al_build_responses_request("m", "be brief", reply->output, NULL);
	chat = al_build_chat_request("m", "be brief", reply->output, NULL);
	FUZZ_ASSERT(responses && chat);
	a = cJSON_PrintUnformatted(responses);
	b = cJSON_PrintUnformatted(chat);
	FUZZ_ASSERT(a && b);
}

static void replay(const uint8_t *data, size_t size)
{
	_cleanup_close_ int fd = memfd_create("fuzz-replay", MFD_CLOEXEC);
	struct al_model_config cfg = {.api = AL_API_REPLAY};
	struct al_error err = AL_ERROR_INIT;
	struct al_model m;
	char path[64];
	int r;

	FUZZ_ASSERT(fd >= 0 && al_write_all(fd, data, size) == 0);
	snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
	cfg.script = path;
	r = al_model_open(&m, &cfg, NULL, &err);
	fuzz_check_error(r, &err);
	if (r < 0)
		return;
	/* One call past the end: the script's end is a clear error too. */
	for (unsigned long i = 0; i <= m.n_replay; i++) {
		struct al_model_reply reply;

		al_error_clear(&err);
		r = al_model_call(&m, i, "be brief", NULL, NULL, &reply, &err);
		fuzz_check_error(r, &err);
		FUZZ_ASSERT(i < m.n_replay || r == -ENODATA);
		if (r == 0) {
			FUZZ_ASSERT(*reply.id);
			use_reply(&reply);
		}
		al_model_reply_free(&reply);
	}
	al_model_close(&m);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct al_error err = AL_ERROR_INIT;
	struct al_model_reply reply = {0};
	int r;

	replay(data, size);

	r = al_parse_responses_body((const char *)data, size, &reply, &err);
	fuzz_check_error(r, &err);
	if (r == 0)
		use_reply(&reply);
	al_model_reply_free(&reply);

	al_error_clear(&err);
	r = al_parse_chat_body((const char *)data, size, &reply, &err);
	fuzz_check_error(r, &err);
	if (r == 0)
		use_reply(&reply);
	al_model_reply_free(&reply);
	return 0;
}
