/* SPDX-License-Identifier: Apache-2.0 */
#pragma once

/*
 * What the libFuzzer targets share.  Each target is one file with
 * LLVMFuzzerTestOneInput(); tests/fuzz/run.sh runs it for a bounded time in
 * CI, docs/fuzzing.md says how to run it longer.
 *
 * A property that the code under test must keep (a parsed spec's record reads
 * back the same, say) is checked with FUZZ_ASSERT: a violation aborts, which
 * libFuzzer reports and saves like any crash.
 */

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include "error.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerInitialize(int *argc, char ***argv);

#define FUZZ_ASSERT(cond)                                                                          \
	do {                                                                                       \
		if (!(cond)) {                                                                     \
			fprintf(stderr, "%s:%d: property violated: %s\n", __FILE__, __LINE__,      \
			        #cond);                                                            \
			abort();                                                                   \
		}                                                                                  \
	} while (0)

/* A directory of the target's own below $TMPDIR (run.sh points it at a
 * directory it removes, whatever happens to the fuzzer); aborts on failure,
 * since a target that cannot set up tests nothing. */
char *fuzz_make_temp_dir(const char *what);

/* Remove what is below dir (not dir itself); aborts when it cannot, so
 * inputs never see what an earlier one left behind. */
void fuzz_empty_dir(const char *dir);

/* A NUL-terminated copy of the input: the parsers take C strings. */
char *fuzz_strndup(const uint8_t *data, size_t size);

/* An error message must be a terminated string that says something. */
void fuzz_check_error(int r, const struct al_error *err);
