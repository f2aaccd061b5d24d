/* SPDX-License-Identifier: Apache-2.0 */
/*
 * GET /v1/events (docs/api.md): the event logs of events.c across sandboxes,
 * filtered to the sandboxes the client may see (root sees all).  The follow
 * stream holds one batch of at most FOLLOW_BATCH events at a time, whatever
 * the rate or the client's speed: a slow client misses what the logs
 * forgot meanwhile (they keep the last 256 per sandbox), it costs nothing.
 */
#include "api_events.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "cleanup.h"
#include "json.h"
#include "util.h"
#include "events.h"
#include "registry.h"
#include "sandbox.h"

#define FOLLOW_BATCH 64
/* With nothing to send for this long a blank line goes: it finds a client
 * that left (the write fails) and keeps the connection from idling out. */
#define HEARTBEAT_MS 5000
/* How often a follow looks at whether airlockd stops. */
#define STOP_CHECK_MS 200

static bool visible(struct daemon *d, const char *id, uid_t client)
{
	struct sandbox *sb = registry_get_for(&d->registry, id, client);

	if (!sb)
		return false;
	sandbox_unref(sb);
	return true;
}

/* Take the events of list the client may see out of it, numbered by cursor. */
static void filter(struct daemon *d, uid_t client, cJSON *list)
{
	for (int i = cJSON_GetArraySize(list) - 1; i >= 0; i--) {
		cJSON *e = cJSON_GetArrayItem(list, i);
		if (!visible(d,
		             cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(e, "sandbox")),
		             client))
			cJSON_DeleteItemFromArray(list, i);
	}
}

int api_events_list(struct daemon *d, uid_t client, uint64_t since, cJSON **out)
{
	_cleanup_cjson_ cJSON *o = cJSON_CreateObject();
	cJSON *list = NULL;
	uint64_t cursor = since;
	int r;

	if (!o)
		return -ENOMEM;
	/* Every event kept, batch after batch: bounded by the logs' size. */
	do {
		cJSON *batch = NULL, *e;
		r = events_follow(&cursor, 0, FOLLOW_BATCH, &batch);
		if (r < 0) {
			cJSON_Delete(list);
			return r == -ESHUTDOWN ? -EAGAIN : r;
		}
		if (!list) {
			list = batch;
			continue;
		}
		while ((e = cJSON_DetachItemFromArray(batch, 0)))
			cJSON_AddItemToArray(list, e);
		cJSON_Delete(batch);
	} while (r == FOLLOW_BATCH);
	filter(d, client, list);
	cJSON_AddItemToObject(o, "events", list);
	cJSON_AddNumberToObject(o, "cursor", (double)cursor);
	*out = TAKE_PTR(o);
	return 0;
}

struct follow {
	struct daemon *d;
	const bool *stopping; /* api.c's: the stream ends */
	uid_t client;
	uint64_t cursor;
	char *buf; /* the lines of the batch being sent */
	size_t len, off;
};

static int next_batch(struct follow *f)
{
	_cleanup_cjson_ cJSON *list = NULL;
	struct al_buf out = {0};
	const cJSON *e;
	int r = 0;

	for (unsigned waited = 0; r == 0 && waited < HEARTBEAT_MS; waited += STOP_CHECK_MS) {
		if (__atomic_load_n(f->stopping, __ATOMIC_SEQ_CST))
			return -ESHUTDOWN;
		cJSON_Delete(list);
		list = NULL;
		r = events_follow(&f->cursor, STOP_CHECK_MS, FOLLOW_BATCH, &list);
	}
	if (r < 0)
		return r;
	filter(f->d, f->client, list);
	cJSON_ArrayForEach(e, list)
	{
		_cleanup_free_ char *line = cJSON_PrintUnformatted(e);
		if (!line || al_buf_append(&out, line, strlen(line)) < 0 ||
		    al_buf_append(&out, "\n", 1) < 0) {
			al_buf_free(&out);
			return -ENOMEM;
		}
	}
	if (!out.len && al_buf_append(&out, "\n", 1) < 0)
		return -ENOMEM;
	free(f->buf);
	f->buf = out.data;
	f->len = out.len;
	f->off = 0;
	return 0;
}

static ssize_t follow_read(void *cls, uint64_t pos, char *buf, size_t max)
{
	struct follow *f = cls;
	size_t n;

	(void)pos;
	if (f->off == f->len) {
		int r = next_batch(f);
		if (r == -ESHUTDOWN)
			return MHD_CONTENT_READER_END_OF_STREAM;
		if (r < 0)
			return MHD_CONTENT_READER_END_WITH_ERROR;
	}
	n = f->len - f->off < max ? f->len - f->off : max;
	memcpy(buf, f->buf + f->off, n);
	f->off += n;
	return (ssize_t)n;
}

static void follow_free(void *cls)
{
	struct follow *f = cls;

	free(f->buf);
	free(f);
}

struct MHD_Response *api_events_follow(struct daemon *d, uid_t client, uint64_t since,
                                       const bool *stopping)
{
	struct follow *f = calloc(1, sizeof(*f));
	struct MHD_Response *resp;

	if (!f)
		return NULL;
	*f = (struct follow){.d = d, .stopping = stopping, .client = client, .cursor = since};
	resp =
	    MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, 16384, follow_read, f, follow_free);
	if (!resp) {
		free(f);
		return NULL;
	}
	MHD_add_response_header(resp, "Content-Type", "application/x-ndjson");
	return resp;
}
