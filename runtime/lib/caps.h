/* SPDX-License-Identifier: Apache-2.0 */
#pragma once

/*
 * Capabilities of the sandbox's processes, with libcap.  Names are the
 * kernel's ("CAP_CHOWN"), matched case-insensitively.
 */

#include <sys/types.h>

#include <cjson/cJSON.h>

#include "error.h"

/* Docker's default set minus CAP_MKNOD and CAP_NET_RAW; NULL-terminated. */
extern const char *const al_default_caps[];

/* 0 when every name in the NULL-terminated list is a capability libcap knows. */
int caps_validate(const char *const *names, struct al_error *err);

/*
 * Reduce the calling thread to exactly `keep` (NULL-terminated):
 *   - every other capability leaves the bounding set (needs CAP_SETPCAP);
 *   - the ambient set is cleared;
 *   - effective and permitted become `keep`, inheritable becomes empty.
 * Inheritable stays empty (as moby does since CVE-2022-24769): it only
 * feeds capabilities to programs through file inheritable bits and the
 * ambient set, and the sandbox grants neither.  Root in the sandbox still
 * regains `keep` across execve, because the bounding set bounds it.
 * Capabilities this kernel does not have are skipped.
 */
int caps_apply(const char *const *keep, struct al_error *err);

/*
 * Describe a process from /proc/PID/status (pid <= 0: the caller):
 * {"bounding": [...], "effective": [...], "permitted": [...],
 *  "inheritable": [...], "ambient": [...], "no_new_privs": bool,
 *  "seccomp_mode": int} with names as libcap prints them ("cap_chown").
 */
int caps_describe(pid_t pid, cJSON **out, struct al_error *err);
