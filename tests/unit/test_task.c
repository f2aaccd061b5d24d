/* SPDX-License-Identifier: Apache-2.0 */
#include "test.h"

#include <errno.h>

#include "task.h"

static int parse(const char *text, struct al_task *t, struct al_error *err)
{
	int r = al_task_parse(text, strlen(text), "/tmp", t, err);
	return r;
}

TEST(minimal_and_defaults)
{
	struct al_error err = AL_ERROR_INIT;
	struct al_task t;

	CHECK_INT(parse("{\"input\": \"hi\", \"model\": {\"name\": \"m\"}}", &t, &err), 0);
	CHECK_STR(t.input, "hi");
	CHECK_INT(t.model.api, AL_API_RESPONSES);
	CHECK_STR(t.model.base_url, "https://api.openai.com/v1");
	CHECK_INT(t.max_turns, 20);
	CHECK_STR(t.provider_type, "local");
	CHECK(!t.memory.read && !t.memory.generate);
	CHECK(t.workspace_archive);
	CHECK_INT(t.snapshot_every_turns, 0);
	al_task_free(&t);
}

TEST(full)
{
	struct al_error err = AL_ERROR_INIT;
	struct al_task t;
	const char *text =
	    "{\"instructions\": \"be good\", \"input\": \"x\","
	    " \"model\": {\"api\": \"chat\", \"name\": \"llama\", \"base_url\": "
	    "\"http://127.0.0.1:8080/v1\","
	    "  \"timeout_ms\": 5000, \"max_retries\": 2},"
	    " \"provider\": {\"type\": \"local\", \"socket\": \"/run/x.sock\", \"rootfs\": \"/r\","
	    "  \"keep_sandbox\": true, \"exposed_ports\": [8000, 3000]},"
	    " \"manifest\": {\"version\": 1, \"root\": \"/workspace\", \"entries\": "
	    "  {\"token\": {\"type\": \"file\", \"content\": \"file names are not settings\"}}},"
	    " \"max_turns\": 7, \"limits\": {\"memory\": \"512M\", \"pids\": 64, \"cpus\": 1.5},"
	    " \"env\": {\"LANG\": \"C.UTF-8\"},"
	    " \"memory\": {\"enabled\": true, \"summary_budget_chars\": 100,"
	    "  \"phase2_model\": {\"name\": \"big\"}},"
	    " \"snapshot\": {\"every_turns\": 2, \"processes\": false}}";

	CHECK_INT(parse(text, &t, &err), 0);
	CHECK_INT(t.model.api, AL_API_CHAT);
	CHECK_INT(t.model.timeout_ms, 5000);
	CHECK_INT(t.model.max_retries, 2);
	CHECK_STR(t.rootfs, "/r");
	CHECK(t.keep_sandbox);
	CHECK_INT(t.n_exposed_ports, 2);
	CHECK_INT(t.exposed_ports[0], 8000);
	CHECK_INT(t.exposed_ports[1], 3000);
	CHECK_INT(t.max_turns, 7);
	CHECK_INT(t.memory_bytes, 512ull << 20);
	CHECK_INT(t.pids, 64);
	CHECK(t.cpus == 1.5);
	CHECK(t.memory.read && t.memory.generate);
	CHECK_INT(t.memory.summary_budget_chars, 100);
	/* Phase models inherit from the main model. */
	CHECK_STR(t.memory.phase1.name, "llama");
	CHECK_STR(t.memory.phase2.name, "big");
	CHECK_STR(t.memory.phase2.base_url, "http://127.0.0.1:8080/v1");
	CHECK_INT(t.snapshot_every_turns, 2);
	CHECK(!t.snapshot_processes);
	al_task_free(&t);
}

TEST(credentials_refused)
{
	static const char *const bad[] = {
	    "{\"input\": \"x\", \"model\": {\"name\": \"m\", \"api_key\": \"sk\"}}",
	    "{\"input\": \"x\", \"model\": {\"name\": \"m\"}, \"apiKey\": \"sk\"}",
	    "{\"input\": \"x\", \"model\": {\"name\": \"m\"}, \"provider\": {\"o\": {\"auth\": "
	    "{\"token\": 1}}}}",
	    "{\"input\": \"x\", \"model\": {\"name\": \"m\"}, \"extra\": [{\"password\": \"pw\"}]}",
	    "{\"input\": \"x\", \"model\": {\"name\": \"m\", \"Authorization\": \"Bearer x\"}}",
	    "{\"input\": \"x\", \"model\": {\"name\": \"m\"}, \"env\": {\"GITHUB_TOKEN\": \"t\"}}",
	    "{\"input\": \"x\", \"model\": {\"name\": \"m\"}, \"provider\": {\"client-secret\": "
	    "\"s\"}}",
	};
	struct al_error err = AL_ERROR_INIT;
	struct al_task t;

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		CHECK_INT(parse(bad[i], &t, &err), -EPERM);
		CHECK(strstr(err.msg, "credential") != NULL);
		al_task_free(&t);
	}
	CHECK(al_task_key_is_credential("OPENAI_API_KEY"));
	CHECK(!al_task_key_is_credential("max_tokens"));
	CHECK(!al_task_key_is_credential("summary_budget_chars"));
}

TEST(bad_tasks)
{
	static const struct {
		const char *text, *msg;
	} bad[] = {
	    {"[1]", "not a JSON object"},
	    {"{\"model\": {\"name\": \"m\"}}", "\"input\" is required"},
	    {"{\"input\": \"x\"}", "\"model\" is required"},
	    {"{\"input\": \"x\", \"model\": {\"api\": \"telepathy\", \"name\": \"m\"}}",
	     "telepathy"},
	    {"{\"input\": \"x\", \"model\": {\"api\": \"replay\"}}", "needs \"script\""},
	    {"{\"input\": \"x\", \"model\": {\"api\": \"replay\", \"script\": \"no-such.jsonl\"}}",
	     "no-such.jsonl"},
	    {"{\"input\": \"x\", \"model\": {\"name\": \"m\"}, \"provider\": {\"type\": "
	     "\"nimbus\"}}",
	     "provider.type \"nimbus\" is unknown"},
	    {"{\"input\": \"x\", \"model\": {\"name\": \"m\"}, \"provider\": {\"type\": "
	     "\"local\", \"api_url\": \"http://x\"}}",
	     "unknown key provider.api_url"},
	    {"{\"input\": \"x\", \"model\": {\"name\": \"m\"}, \"provider\": {\"type\": "
	     "\"e2b\", \"exposed_ports\": [80]}}",
	     "provider e2b cannot expose ports"},
	    {"{\"input\": \"x\", \"model\": {\"name\": \"m\"}, \"provider\": "
	     "{\"exposed_ports\": [80, 0]}}",
	     "integers from 1 to 65535"},
	    {"{\"input\": \"x\", \"model\": {\"name\": \"m\"}, \"provider\": {\"socket\": 3}}",
	     "provider.socket must be a non-empty string"},
	    {"{\"input\": \"x\", \"model\": {\"name\": \"m\"}, \"max_turns\": \"many\"}",
	     "max_turns"},
	    {"{\"input\": \"x\", \"model\": {\"name\": \"m\"}, \"max_turns\": 0}", "max_turns"},
	    {"{\"input\": \"x\", \"model\": {\"name\": \"m\"}, \"colour\": 1}",
	     "unknown key colour"},
	    {"{\"input\": \"x\", \"model\": {\"name\": \"m\"}, \"limits\": {\"memory\": \"lots\"}}",
	     "limits.memory"},
	    /* converting it was undefined behaviour (found by the task fuzz target) */
	    {"{\"input\": \"x\", \"model\": {\"name\": \"m\"}, \"limits\": {\"memory\": 1e300}}",
	     "limits.memory"},
	    {"{\"input\": \"x\", \"model\": {\"name\": \"m\"}, \"env\": {\"A\": 1}}", "env.A"},
	    {"{\"input\": \"x\", \"model\": {\"name\": \"m\"}, \"memory\": {\"memories_dir\": "
	     "\"../up\"}}",
	     "memories_dir"},
	};
	struct al_error err = AL_ERROR_INIT;
	struct al_task t;

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		al_error_clear(&err);
		CHECK(parse(bad[i].text, &t, &err) < 0);
		if (!strstr(err.msg, bad[i].msg))
			fprintf(stderr, "case %zu: message \"%s\" lacks \"%s\"\n", i, err.msg,
			        bad[i].msg);
		CHECK(strstr(err.msg, bad[i].msg) != NULL);
		al_task_free(&t);
	}
}

TEST(snapshot_store)
{
	static const struct {
		const char *store;
		const char *msg;
	} bad[] = {
	    {"\"s3\"", "needs an object"},
	    {"{\"type\": \"ftp\", \"bucket\": \"b\"}", "must be local, s3, r2, gcs or azure_blob"},
	    {"{\"type\": \"s3\"}", "snapshot.store.bucket must name one bucket"},
	    {"{\"type\": \"s3\", \"bucket\": \"a/b\"}", "must name one bucket"},
	    {"{\"type\": \"azure_blob\", \"bucket\": \"b\", \"container\": \"c\"}",
	     "a bucket or a container, not both"},
	    {"{\"type\": \"r2\", \"bucket\": \"b\"}", "needs its endpoint"},
	    {"{\"type\": \"s3\", \"bucket\": \"b\", \"prefix\": \"a/../b\"}", "not a plain path"},
	    {"{\"type\": \"s3\", \"bucket\": \"b\", \"endpoint\": \"ftp://x\"}",
	     "must be an http(s) URL"},
	    {"{\"type\": \"s3\", \"bucket\": \"b\", \"part_size_mb\": 1}", "part_size_mb"},
	    {"{\"type\": \"s3\", \"bucket\": \"b\", \"secret_access_key\": \"x\"}",
	     "secret_access_key"},
	};
	struct al_error err = AL_ERROR_INIT;
	struct al_task t;
	char text[512];

	CHECK_INT(parse("{\"input\": \"x\", \"model\": {\"name\": \"m\"}, \"snapshot\": "
	                "{\"store\": \"local\"}}",
	                &t, &err),
	          0);
	CHECK_INT(t.store.type, AL_STORE_LOCAL);
	al_task_free(&t);
	CHECK_INT(parse("{\"input\": \"x\", \"model\": {\"name\": \"m\"}, \"snapshot\": "
	                "{\"store\": {\"type\": \"azure_blob\","
	                " \"container\": \"runs\", \"prefix\": \"/a/b/\", \"part_size_mb\": 16}}}",
	                &t, &err),
	          0);
	CHECK_INT(t.store.type, AL_STORE_AZURE);
	CHECK_STR(t.store.bucket, "runs");
	CHECK_STR(t.store.prefix, "a/b");
	CHECK_INT(t.store.part_size, 16u << 20);
	al_task_free(&t);
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		snprintf(text, sizeof(text),
		         "{\"input\": \"x\", \"model\": {\"name\": \"m\"}, \"snapshot\": "
		         "{\"store\": %s}}",
		         bad[i].store);
		al_error_clear(&err);
		CHECK(parse(text, &t, &err) < 0);
		if (!strstr(err.msg, bad[i].msg))
			fprintf(stderr, "store case %zu: message \"%s\" lacks \"%s\"\n", i, err.msg,
			        bad[i].msg);
		CHECK(strstr(err.msg, bad[i].msg) != NULL);
		al_task_free(&t);
	}
}

int main(void)
{
	RUN(minimal_and_defaults);
	RUN(full);
	RUN(credentials_refused);
	RUN(bad_tasks);
	RUN(snapshot_store);
	return test_main_result();
}
