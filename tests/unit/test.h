/* SPDX-License-Identifier: Apache-2.0 */
#pragma once

/*
 * A minimal unit test harness: TEST(name) defines a case, RUN(name) runs it,
 * CHECK* record a failure (with file:line) without aborting the case, and
 * test_main_result() gives the exit status meson expects (77 = skipped).
 */

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int test_failures;
static int test_skips;
static int test_runs;
static const char *test_current;

#define TEST(name) static void test_##name(void)
#define RUN(name)                                                                                  \
	do {                                                                                       \
		int before_ = test_failures;                                                       \
		test_current = #name;                                                              \
		test_runs++;                                                                       \
		test_##name();                                                                     \
		fprintf(stderr, "%s %s\n", test_failures == before_ ? "ok  " : "FAIL", #name);     \
	} while (0)

#define CHECK(cond)                                                                                \
	do {                                                                                       \
		if (!(cond)) {                                                                     \
			fprintf(stderr, "%s:%d: %s: CHECK(%s) failed\n", __FILE__, __LINE__,       \
			        test_current, #cond);                                              \
			test_failures++;                                                           \
		}                                                                                  \
	} while (0)

#define CHECK_INT(a, b)                                                                            \
	do {                                                                                       \
		long long a_ = (long long)(a), b_ = (long long)(b);                                \
		if (a_ != b_) {                                                                    \
			fprintf(stderr, "%s:%d: %s: %s == %lld, expected %lld\n", __FILE__,        \
			        __LINE__, test_current, #a, a_, b_);                               \
			test_failures++;                                                           \
		}                                                                                  \
	} while (0)

#define CHECK_STR(a, b)                                                                            \
	do {                                                                                       \
		const char *a_ = (a), *b_ = (b);                                                   \
		if (!a_ || !b_ || strcmp(a_, b_) != 0) {                                           \
			fprintf(stderr, "%s:%d: %s: %s == \"%s\", expected \"%s\"\n", __FILE__,    \
			        __LINE__, test_current, #a, a_ ? a_ : "(null)",                    \
			        b_ ? b_ : "(null)");                                               \
			test_failures++;                                                           \
		}                                                                                  \
	} while (0)

/* Skip the current case with a reason; counts toward a 77 exit if nothing failed. */
#define SKIP(reason)                                                                               \
	do {                                                                                       \
		fprintf(stderr, "skip %s: %s\n", test_current, reason);                            \
		test_skips++;                                                                      \
		return;                                                                            \
	} while (0)

static inline int test_main_result(void)
{
	if (test_failures) {
		fprintf(stderr, "%d check(s) failed\n", test_failures);
		return 1;
	}
	/* 77 tells meson the whole program was skipped. */
	if (test_runs > 0 && test_skips == test_runs)
		return 77;
	return 0;
}
