/* SPDX-License-Identifier: Apache-2.0 */
#include "killpoint.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>

static unsigned long writes;

void al_killpoint(void)
{
	const char *at = getenv("AIRLOCK_HARNESS_KILL_AT");
	unsigned long n;

	writes++;
	if (!at || !*at)
		return;
	n = strtoul(at, NULL, 10);
	if (n == 0 || n != writes)
		return;
	fprintf(stderr,
	        "airlock-harness: killed after durable write %lu (AIRLOCK_HARNESS_KILL_AT)\n",
	        writes);
	fflush(NULL);
	raise(SIGKILL);
}
