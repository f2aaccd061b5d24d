/* SPDX-License-Identifier: Apache-2.0 */
#pragma once

#include "error.h"
#include "host.h"

/* The path of the compiled filter of seccomp profile name (compiled and
 * cached first if need be; its ENOSYS half, when it has one, is beside it
 * as HASH.compat.bpf).  -EINVAL for a profile that cannot be read or compiled. */
int seccomp_cache_filter_path(const struct sandbox_host *host, const char *profile, char **out,
                              struct al_error *err);
