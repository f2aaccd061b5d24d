/* SPDX-License-Identifier: Apache-2.0 */
#pragma once

/*
 * GET /v1/events: the events of every sandbox the client may see, kept out
 * of api.c.  Without follow a JSON answer; with follow=1 a response that
 * streams them as JSON lines for as long as the client stays.
 */

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include <cjson/cJSON.h>
#include <microhttpd.h>

#include "daemon.h"

/* {"events": [{…, "sandbox": id, "cursor": N}], "cursor": N}: those after since. */
int api_events_list(struct daemon *d, uid_t client, uint64_t since, cJSON **out);

/* The streamed answer from since (UINT64_MAX: what comes from now on), until *stopping;
 * NULL: out of memory. */
struct MHD_Response *api_events_follow(struct daemon *d, uid_t client, uint64_t since,
                                       const bool *stopping);
