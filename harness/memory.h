/* SPDX-License-Identifier: Apache-2.0 */
#pragma once

/*
 * Memory, as the Agents SDK's memory capability lays it out, inside the workspace (so
 * workspace archives and snapshots carry it to the next run):
 *
 *   memories/memory_summary.md     read into the instructions of every run (within a budget)
 *   memories/MEMORY.md             the handbook the agent greps
 *   memories/raw_memories/<rollout>.md, memories/rollout_summaries/<rollout>_<slug>.md
 *   memories/raw_memories.md, memories/phase_two_selection.json
 *   sessions/<rollout>.jsonl       one line per run segment
 *
 * Generating runs phase one (one model call per rollout: summary, slug, raw memory) and
 * phase two (one model call consolidating the selected raw memories into MEMORY.md and
 * memory_summary.md), each with its own model and limits.
 */

#include <stdbool.h>
#include <stddef.h>

#include <cjson/cJSON.h>

#include "audit.h"
#include "error.h"
#include "providers/provider.h"
#include "task.h"

/* The memory section for the instructions, or *prompt = NULL when there is no summary. */
int al_memory_read_prompt(struct al_provider *p, struct al_sandbox *sb,
                          const struct al_memory_config *cfg, char **prompt, struct al_error *err);

struct al_memory_rollout {
	const char *rollout_id;
	const char *input;        /* the run's first user input */
	const cJSON *items;       /* the run's conversation items */
	const char *final_output; /* NULL when none */
	const char *terminal_state;
};

/* Record the rollout and run both phases.  Model failures are reported, not fatal to
 * the caller's run: they return < 0 with err set and leave what was written in place. */
int al_memory_generate(struct al_provider *p, struct al_sandbox *sb,
                       const struct al_memory_config *cfg, const char *api_key,
                       const struct al_memory_rollout *ro, struct al_audit *audit,
                       struct al_error *err);

/* Keep at most budget characters (UTF-8 code points): head and tail around a marker. */
char *al_memory_truncate_chars(const char *text, size_t budget);
