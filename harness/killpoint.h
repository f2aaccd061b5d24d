/* SPDX-License-Identifier: Apache-2.0 */
#pragma once

/*
 * The crash-test hook of docs/harness.md: with AIRLOCK_HARNESS_KILL_AT=n in its
 * environment the harness SIGKILLs itself right after its n-th durable write (a
 * state.json replacement or an audit record), counting from 1 in each process.
 * Unset, empty or 0: nothing happens.
 */

/* Call after every durable write. */
void al_killpoint(void);
