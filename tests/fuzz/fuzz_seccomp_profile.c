/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Seccomp profiles (runtime/lib/seccomp_profile.c), compiled as airlockd's
 * seccomp cache does: sc_profile_compile_split with the sandbox's
 * capabilities.  A profile that compiles must give classic BPF the kernel
 * would take: whole instructions, at most BPF_MAXINSNS of them.  Nothing is
 * installed.
 */
#include "fuzz.h"

#include <linux/filter.h>
#include <stdbool.h>

#include "caps.h"
#include "seccomp_profile.h"

static void check_bpf(const struct al_bpf *b, bool may_be_empty)
{
	if (b->len == 0) {
		FUZZ_ASSERT(may_be_empty && !b->prog);
		return;
	}
	FUZZ_ASSERT(b->prog);
	FUZZ_ASSERT(b->len % sizeof(struct sock_filter) == 0);
	FUZZ_ASSERT(b->len / sizeof(struct sock_filter) <= BPF_MAXINSNS);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct al_error err = AL_ERROR_INIT;
	struct al_bpf logged = {0}, compat = {0};
	int r;

	r = sc_profile_compile_split((const char *)data, size, al_default_caps, &logged, &compat,
	                             &err);
	fuzz_check_error(r, &err);
	if (r == 0) {
		check_bpf(&logged, false);
		check_bpf(&compat, true);
	} else {
		FUZZ_ASSERT(!logged.prog && !compat.prog);
	}
	al_bpf_free(&logged);
	al_bpf_free(&compat);
	return 0;
}
