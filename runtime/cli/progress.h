/* SPDX-License-Identifier: Apache-2.0 */
#pragma once

/*
 * A transfer's progress on stderr, for a person watching a terminal: one
 * line rewritten in place (bytes so far and the rate), at most a few times
 * a second, and nothing at all when stderr is not a terminal (a log or a
 * pipe gets no carriage returns).
 */

#include <stdbool.h>
#include <stdint.h>

struct progress {
	const char *what; /* "hydrate ID", shown before the figures */
	bool on;          /* stderr is a terminal */
	bool shown;       /* a line was drawn: progress_end finishes it */
	uint64_t start_ns, last_ns;
};

void progress_start(struct progress *p, const char *what);
/* bytes moved so far (either direction). */
void progress_update(struct progress *p, uint64_t bytes);
void progress_end(struct progress *p);
