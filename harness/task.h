/* SPDX-License-Identifier: Apache-2.0 */
#pragma once

/*
 * The task file (docs/harness.md): what to do, with which model, in which sandbox.
 * A task never holds a credential; one that has a credential-like key is refused.
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <cjson/cJSON.h>

#include "error.h"
#include "store.h"

/* airlockd publishes at most 16 ports per sandbox. */
#define AL_TASK_MAX_EXPOSED_PORTS 16

enum al_model_api { AL_API_RESPONSES, AL_API_CHAT, AL_API_REPLAY };

struct al_model_config {
	enum al_model_api api;
	char *name;
	char *base_url;
	char *script;    /* replay: absolute path of the JSONL script */
	char *ca_bundle; /* PEM CAs to trust instead of the system's (absolute path), or NULL */
	long timeout_ms;
	int max_retries;
	long retry_base_ms;
	size_t max_response_bytes;
};

struct al_memory_config {
	bool read;     /* put memory_summary.md into the instructions */
	bool generate; /* phase one and two at the end of the run */
	size_t summary_budget_chars;
	char *memories_dir; /* relative to the workspace root */
	char *sessions_dir;
	int max_raw_memories;
	char *extra_prompt;
	struct al_model_config phase1;
	struct al_model_config phase2;
};

struct al_task {
	cJSON *json; /* the task as given */
	char *instructions;
	char *input;
	struct al_model_config model;
	char *provider_type;
	cJSON *provider; /* the provider block (borrowed from json) */
	char *rootfs;
	char *image; /* an image imported into airlockd (provider local) */
	/* provider.exposed_ports: sandbox ports the provider publishes (the SDK's
	 * exposedPorts), distinct, in the order given. */
	uint16_t exposed_ports[AL_TASK_MAX_EXPOSED_PORTS];
	size_t n_exposed_ports;
	bool keep_sandbox;
	cJSON *manifest; /* borrowed from json; NULL: empty workspace */
	cJSON *env;      /* borrowed from json; NULL: none */
	int max_turns;
	uint64_t memory_bytes;
	int64_t pids;
	double cpus;
	struct al_memory_config memory;
	char *start_snapshot; /* start the sandbox from this snapshot */
	char *start_archive;  /* or hydrate this workspace archive (absolute path) */
	int snapshot_every_turns;
	bool snapshot_processes;
	bool workspace_archive;
	struct al_store_config store; /* snapshot.store; type AL_STORE_LOCAL by default */
};

/* Parse a task from text; relative paths are resolved against base_dir. -EINVAL on bad input
 * with a message naming the key; -EPERM when it holds a credential-like key. */
int al_task_parse(const char *text, size_t len, const char *base_dir, struct al_task *t,
                  struct al_error *err);
/* Read and parse the task file at path; *text (optional) gets the very bytes parsed, for a
 * copy and digest that match the task. */
int al_task_load(const char *path, struct al_task *t, char **base_dir, char **text, size_t *len,
                 struct al_error *err);
void al_task_free(struct al_task *t);
/* Go on with another provider block (a resume that switches provider): checked as the
 * task's own would be; the task keeps a copy. */
int al_task_set_provider(struct al_task *t, const cJSON *block, struct al_error *err);

/* True when key names a credential (api_key, apiKey, token, authorization, password, secret…). */
bool al_task_key_is_credential(const char *key);
