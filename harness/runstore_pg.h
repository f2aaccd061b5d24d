/* SPDX-License-Identifier: Apache-2.0 */
#pragma once

#include "db.h"
#include "runstore.h"

/*
 * Run run_id's records in the database, written under lease generation lease_gen: a write
 * when the run's lease has another generation, or has expired, changes nothing and fails
 * with -ESTALE (and store->lease_lost).  dir: the local directory of its workspace archives.
 * Reading needs no lease (lease_gen 0: a read-only store, as `audit verify` uses).
 */
int al_run_store_pg_open(struct al_db *db, const char *run_id, long long lease_gen, const char *dir,
                         struct al_run_store **out, struct al_error *err);
