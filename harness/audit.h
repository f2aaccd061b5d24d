/* SPDX-License-Identifier: Apache-2.0 */
#pragma once

/*
 * The audit trail of a run: DIR/audit.jsonl, one JSON record per decision, each line
 *   {"seq":N,"ts":"…","kind":"…","data":{…},"prev":"<sha256 of line N-1>","hash":"<sha256>"}
 * where "hash" is the sha256 of the line's own text up to (not including) ',"hash"'
 * closed with '}', so an edited record is named by its own line.  Each record is
 * fsync'd before the harness goes on, and DIR/audit.head ({"seq","sha256"}) holds the
 * last record's line hash so that records cut off the end are noticed too.
 */

#include <stdbool.h>
#include <stdint.h>

#include <cjson/cJSON.h>

#include "error.h"
#include "runstore.h"

#define AL_AUDIT_FILE "audit.jsonl"
#define AL_AUDIT_HEAD_FILE "audit.head"

struct al_audit {
	struct al_run_store *store;
	bool own_store;
	uint64_t seq;
	char prev[65];
};

/* Open (creating) DIR/audit.jsonl for appending; a torn last line from a crash is cut. */
int al_audit_open(struct al_audit *a, const char *dir, struct al_error *err);
/* The same on a run store (runstore.h), which stays the caller's. */
int al_audit_open_store(struct al_audit *a, struct al_run_store *store, struct al_error *err);
void al_audit_close(struct al_audit *a);

/* Append one record; data is consumed (may be NULL: an empty object). */
int al_audit_append(struct al_audit *a, const char *kind, cJSON *data, struct al_error *err);

/* Count the records of kind whose data[key] is the string value (value NULL: whose data has
 * no key at all); < 0 on I/O errors.  Used on resume to restore records a crash cut off. */
int al_audit_count(struct al_audit *a, const char *kind, const char *key, const char *value,
                   struct al_error *err);

/*
 * Check DIR/audit.jsonl.  0 and *records when intact; -EBADMSG with err->msg
 * "line L: reason" naming the first bad line; other negative codes for I/O errors.
 */
int al_audit_verify(const char *dir, uint64_t *records, struct al_error *err);
int al_audit_verify_store(struct al_run_store *store, uint64_t *records, struct al_error *err);

/* The RFC 3339 UTC time now, with milliseconds, into out[32]. */
void al_audit_timestamp(char out[32]);
