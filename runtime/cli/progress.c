/* SPDX-License-Identifier: Apache-2.0 */
#include "progress.h"

#include <stdio.h>
#include <unistd.h>

#include "util.h"

/* Redrawn at most this often: a terminal is slow, and the eye slower. */
#define REDRAW_NS 200000000ull

void progress_start(struct progress *p, const char *what)
{
	*p = (struct progress){.what = what, .on = isatty(STDERR_FILENO) == 1};
	p->start_ns = p->last_ns = al_now_ns();
}

static void draw(struct progress *p, uint64_t bytes, uint64_t now)
{
	double secs = (double)(now - p->start_ns) / 1e9;
	double mib = (double)bytes / (1 << 20);

	/* \033[K clears what a longer line before left. */
	fprintf(stderr, "\r%s: %.1f MiB (%.0f MiB/s)\033[K", p->what, mib,
	        secs > 0 ? mib / secs : 0.0);
	p->shown = true;
}

void progress_update(struct progress *p, uint64_t bytes)
{
	uint64_t now;

	if (!p->on)
		return;
	now = al_now_ns();
	if (now - p->last_ns < REDRAW_NS)
		return;
	p->last_ns = now;
	draw(p, bytes, now);
}

void progress_end(struct progress *p)
{
	if (p->shown)
		fputc('\n', stderr);
	p->shown = false;
}
