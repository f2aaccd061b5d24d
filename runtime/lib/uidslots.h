/* SPDX-License-Identifier: Apache-2.0 */
#pragma once

/*
 * Host uid ranges for sandboxes, unique on the host whatever daemon made
 * them.  Sandbox root maps to [AIRLOCK_UID_BASE + slot * AIRLOCK_UID_RANGE,
 * + AIRLOCK_UID_RANGE).  Two sandboxes sharing a range would share every
 * per-uid account of the kernel (pipe buffers, processes, locked memory,
 * fd passing) and one's seccomp denials would be told as the other's.
 *
 * A slot is claimed by a file in a host-wide directory (/run/airlock/uid-slots:
 * a tmpfs, gone at reboot with the sandboxes), made with O_EXCL, naming the
 * state directory and sandbox that hold it.  A claim whose sandbox's state
 * directory is gone, and which is old enough not to be one being made, is
 * stale (its daemon crashed between the two) and may be taken over.
 * Ranges that overlap /etc/subuid, /etc/subgid or an existing user or group
 * are never handed out.
 */

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "error.h"

#define AIRLOCK_UID_BASE 1000000000u
#define AIRLOCK_UID_RANGE 65536u
#define AIRLOCK_UID_SLOTS 4096u

#define UID_SLOTS_DIR "/run/airlock/uid-slots"

struct uid_slots;

/* Claims in dir (made if need be) for the sandboxes of state_dir; the
 * host's users, groups and subordinate ranges are read once, here. */
int uid_slots_open(const char *dir, const char *state_dir, struct uid_slots **out,
                   struct al_error *err);
void uid_slots_free(struct uid_slots *u);

/* Leave out the ranges of a subuid/subgid-format file ("name:start:count"
 * lines); a missing file is no error.  For tests, and called by open. */
int uid_slots_exclude_subid_file(struct uid_slots *u, const char *path, struct al_error *err);
/* Leave out the slot holding uid. */
void uid_slots_exclude_uid(struct uid_slots *u, uid_t uid);
bool uid_slots_excluded(const struct uid_slots *u, uint32_t slot);

/* Claim slot for sandbox id: 0, or -EEXIST when it is held (err names by
 * whom), -EPERM when the host uses that range. */
int uid_slots_claim(struct uid_slots *u, uint32_t slot, const char *id, struct al_error *err);
/* Keep (or make again) the claim of a sandbox found running at start-up. */
int uid_slots_adopt(struct uid_slots *u, uint32_t slot, const char *id, struct al_error *err);
/* Give slot back if id of our state directory holds it. */
void uid_slots_release(struct uid_slots *u, uint32_t slot, const char *id);
/* The same for whatever slot id holds (a half-made sandbox found at start-up). */
void uid_slots_release_all(struct uid_slots *u, const char *id);
/* At start-up, before any create: give back every claim of our state
 * directory for a sandbox known(id) says we do not have.  airlockd killed
 * between a claim and the sandbox's directory left such a claim, which the
 * scan of the directories cannot find. */
void uid_slots_release_unknown(struct uid_slots *u, bool (*known)(const char *id, void *arg),
                               void *arg);
/* Whether a claim of slot failed for another daemon's sandbox, since the
 * last uid_slots_forget_others(): a search for a free slot skips those
 * rather than reading their claims at every create. */
bool uid_slots_held_elsewhere(const struct uid_slots *u, uint32_t slot);
void uid_slots_forget_others(struct uid_slots *u);
