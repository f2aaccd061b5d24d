/* SPDX-License-Identifier: Apache-2.0 */

#pragma once

/*
 * Seccomp profiles in the Docker/OCI JSON format (the format of moby's
 * profiles/seccomp/default.json), compiled with libseccomp into a raw BPF
 * program.  Compiling happens in airlockd; installing happens inside the
 * sandbox, which then needs nothing but the bytes and one syscall.
 */

#include <stddef.h>

#include "error.h"

/* A classic BPF program: an array of struct sock_filter, len in bytes. */
struct al_bpf {
	void *prog;
	size_t len;
};

/*
 * Compile profile JSON text into BPF for the native architecture (plus the
 * architectures the profile lists).
 *
 * kept_caps is the NULL-terminated list of capability names the sandbox
 * keeps ("CAP_CHOWN", case-insensitive; NULL means none); it decides the
 * rules conditioned on "includes"/"excludes" "caps", as Docker decides them
 * with the container's bounding set.  Syscall names libseccomp does not know
 * are skipped.  Syscalls from a foreign ABI (e.g. i386 or x32 on an x86_64
 * host) that the profile did not list kill the process.
 */
int sc_profile_compile(const char *json, size_t json_len, const char *const *kept_caps,
                       struct al_bpf *out, struct al_error *err);

/*
 * The same profile as two programs that, stacked, decide as the whole one
 * does: `logged` holds every rule except those answering ENOSYS (which it
 * allows), `compat` only those, on a default of allow, plus an ENOSYS
 * answer to the syscalls no sandbox may have whatever its profile says
 * (io_setup: it draws on a count the whole host shares; a profile that
 * denies it more harshly still does, stacked filters take the harsher
 * answer).  `logged` is installed with
 * SECCOMP_FILTER_FLAG_LOG, so the kernel audits each denial it makes, while
 * the ENOSYS answers glibc relies on (clone3 -> clone) stay silent.
 */
int sc_profile_compile_split(const char *json, size_t json_len, const char *const *kept_caps,
                             struct al_bpf *logged, struct al_bpf *compat, struct al_error *err);

void al_bpf_free(struct al_bpf *bpf);

/*
 * Install a raw BPF program as a seccomp filter on the calling thread with
 * seccomp(SECCOMP_SET_MODE_FILTER).  The caller must have set no_new_privs
 * (or hold CAP_SYS_ADMIN).  No listener fd is requested, so SCMP_ACT_NOTIFY
 * rules make their syscalls fail with ENOSYS.
 */
int sc_install_bpf(const void *prog, size_t len, struct al_error *err);

/* The same with seccomp(2) filter flags (e.g. SECCOMP_FILTER_FLAG_LOG). */
int sc_install_bpf_flags(const void *prog, size_t len, unsigned int flags, struct al_error *err);
