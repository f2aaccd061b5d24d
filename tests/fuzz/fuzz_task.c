/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The harness's task file (harness/task.c): al_task_parse on the bytes of a
 * task, relative paths resolved against an empty directory.  A task that
 * parses has what the run needs (input, a model with a name or a replay
 * script), and none that carries a credential-like key anywhere parses.
 */
#include "fuzz.h"

#include <errno.h>
#include <string.h>

#include "cleanup.h"
#include "task.h"

static char *base_dir;

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	base_dir = fuzz_make_temp_dir("task");
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct al_error err = AL_ERROR_INIT;
	struct al_task t;
	int r;

	r = al_task_parse((const char *)data, size, base_dir, &t, &err);
	fuzz_check_error(r, &err);
	if (r < 0) {
		/* Refused: nothing is left to free. */
		FUZZ_ASSERT(!t.json && !t.input && !t.model.name);
		return 0;
	}
	FUZZ_ASSERT(t.input && t.instructions && t.provider_type);
	FUZZ_ASSERT(t.max_turns >= 1);
	FUZZ_ASSERT(t.model.api == AL_API_REPLAY ? t.model.script != NULL
	                                         : t.model.name && *t.model.name);
	FUZZ_ASSERT(t.memory.memories_dir && t.memory.sessions_dir);
	al_task_free(&t);
	return 0;
}
