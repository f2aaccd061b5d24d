/* SPDX-License-Identifier: Apache-2.0 */
/* The typed sandbox spec: request parsing, its record, reading records back,
 * the restore request laid over a record, and the warm pool's test. */
#include "test.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cleanup.h"
#include "json.h"
#include "spec.h"
#include "strv.h"

static char base[PATH_MAX], rootfs[PATH_MAX], elsewhere[PATH_MAX];

static int parse(const char *json, bool trusted, struct sandbox_spec *s, struct al_error *err)
{
	_cleanup_cjson_ cJSON *req = json ? cJSON_Parse(json) : NULL;
	struct sandbox_spec_policy pol = {.default_rootfs = rootfs, .trusted = trusted};

	*s = (struct sandbox_spec){0};
	return sandbox_spec_from_request(req, &pol, s, err);
}

TEST(defaults)
{
	struct al_error err = AL_ERROR_INIT;
	struct sandbox_spec s;

	CHECK_INT(parse(NULL, false, &s, &err), 0);
	CHECK_STR(s.rootfs, rootfs);
	CHECK_STR(s.profile, "default");
	CHECK_STR(s.workspace, "/workspace");
	CHECK_STR(s.name, "");
	CHECK_INT(s.limits.memory_bytes, SANDBOX_DEFAULT_MEMORY);
	CHECK_INT(s.limits.pids, SANDBOX_DEFAULT_PIDS);
	/* Half the memory limit: the disk is RAM charged to it. */
	CHECK_INT(s.disk_bytes, SANDBOX_DEFAULT_MEMORY / 2);
	CHECK(al_strv_contains(s.env, "HOME=/root") && al_strv_contains(s.env, "LANG=C.UTF-8"));
	CHECK(s.manifest == NULL && s.parsed == NULL);
	sandbox_spec_free(&s);
}

TEST(request_fields)
{
	struct al_error err = AL_ERROR_INIT;
	struct sandbox_spec s;

	CHECK_INT(parse("{\"name\": \"n1\", \"seccomp_profile\": \"strict\", \"network\": \"none\","
	                "\"limits\": {\"memory\": \"64M\", \"pids\": 10, \"cpus\": 0.5,"
	                " \"disk_bytes\": 2097152}, \"env\": {\"HOME\": \"/w\", \"A\": \"b=c\"},"
	                "\"manifest\": {\"root\": \"/srv/ws\", \"environment\": {\"M\": \"1\"}}}",
	                false, &s, &err),
	          0);
	CHECK_STR(s.name, "n1");
	CHECK_STR(s.profile, "strict");
	CHECK_INT(s.limits.memory_bytes, 64 << 20);
	CHECK_INT(s.limits.pids, 10);
	CHECK(s.limits.cpus == 0.5);
	CHECK_INT(s.disk_bytes, 2 << 20);
	CHECK_STR(s.workspace, "/srv/ws");
	/* The request's env overrides the defaults; the manifest's comes before it. */
	CHECK(al_strv_contains(s.env, "HOME=/w") && al_strv_contains(s.env, "A=b=c"));
	CHECK(al_strv_contains(s.env, "M=1"));
	CHECK(s.manifest != NULL && s.parsed != NULL);
	sandbox_spec_free(&s);
}

TEST(request_errors)
{
	static const char *const bad[][2] = {
	    {"[]", "JSON object"},
	    {"{\"name\": \"-x\"}", "name"},
	    {"{\"rootfs\": \"rel\"}", "absolute"},
	    {"{\"rootfs\": \"/nonexistent-airlock\"}", "rootfs"},
	    {"{\"network\": \"host\"}", "network"},
	    {"{\"limits\": 5}", "limits"},
	    {"{\"limits\": {\"memory\": \"1M\"}}", "4 MiB"},
	    {"{\"limits\": {\"memory\": -1}}", "limits.memory"},
	    {"{\"limits\": {\"pids\": 1}}", "pids"},
	    {"{\"limits\": {\"cpus\": 0.001}}", "cpus"},
	    {"{\"limits\": {\"disk\": \"12X\"}}", "limits.disk"},
	    {"{\"limits\": {\"disk\": \"1G\"}}", "below limits.memory"},
	    {"{\"limits\": {\"memory\": \"64M\", \"disk\": \"64M\"}}", "OOM kill"},
	    /* would not read back from the record (found by the create-request fuzz target) */
	    {"{\"limits\": {\"memory\": \"16384T\"}}", "limits.memory must be at most"},
	    {"{\"limits\": {\"disk\": \"18446744073709551615\"}}", "limits.disk must be at most"},
	    {"{\"limits\": {\"disk\": \"4611596713693951\"}}", "limits.disk must be at most"},
	    {"{\"limits\": {\"memory\": 4611596713693951}}", "limits.memory must be 0 to 512 TiB"},
	    {"{\"env\": {\"A=B\": \"x\"}}", "env"},
	    {"{\"seccomp_profile\": \"../x\"}", "seccomp_profile"},
	    {"{\"manifest\": {\"entries\": {\"/abs\": {\"type\": \"file\"}}}}", "manifest"},
	    /* a strict API: unknown keys, wrong types, keys given twice */
	    {"{\"limit\": {}}",
	     "unknown key \"limit\" in create request (did you mean \"limits\"?)"},
	    {"{\"limits\": {\"mem\": \"64M\"}}",
	     "unknown key \"mem\" in limits (did you mean \"memory\"?)"},
	    {"{\"limits\": {\"pids\": \"64\"}}",
	     "\"pids\" in limits must be a number (got a string)"},
	    {"{\"name\": \"a\", \"name\": \"b\"}", "key \"name\" given twice in create request"},
	    {"{\"workspace\": \"/w\"}", "unknown key \"workspace\" in create request"},
	    {"{\"snapshot\": \"s\", \"env\": {}}",
	     "unknown key \"env\" in create request (from a snapshot)"},
	    {"{\"ttl\": \"5\"}", "\"ttl\" in create request must be a number (got a string)"},
	    {"{\"ttl\": 1.5}", "ttl must be a whole number"},
	    {"{\"idle_timeout\": -1}", "idle_timeout must be a whole number"},
	    {"{\"labels\": {\"k\": 1}}", "labels.k must be a string"},
	    {"{\"labels\": {\"a b\": \"x\"}}", "invalid key \"a b\""},
	};
	struct al_error err = AL_ERROR_INIT;
	struct sandbox_spec s;

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		CHECK_INT(parse(bad[i][0], true, &s, &err), -EINVAL);
		if (!strstr(err.msg, bad[i][1]))
			fprintf(stderr, "%s: message '%s' lacks '%s'\n", bad[i][0], err.msg,
			        bad[i][1]);
		CHECK(strstr(err.msg, bad[i][1]) != NULL);
		CHECK(s.rootfs == NULL && s.env == NULL); /* nothing left on failure */
	}
}

TEST(lifetime_and_labels)
{
	struct al_error err = AL_ERROR_INIT;
	struct sandbox_spec s, back = {0};
	_cleanup_cjson_ cJSON *rec = NULL;

	CHECK_INT(parse("{\"ttl\": 60, \"idle_timeout\": null, \"labels\": {\"run\": \"r1\", "
	                "\"airlock.dev/x\": \"\"}}",
	                false, &s, &err),
	          0);
	CHECK_INT(s.ttl_s, 60);
	CHECK_INT(s.idle_timeout_s, 0);
	CHECK(al_strv_contains(s.labels, "run=r1"));
	CHECK(al_strv_contains(s.labels, "airlock.dev/x="));
	/* Kept in the record (state.json) and read back. */
	rec = sandbox_spec_to_json(&s);
	CHECK_INT(sandbox_spec_from_record(rec, &back, &err), 0);
	CHECK_INT(back.ttl_s, 60);
	CHECK(al_strv_contains(back.labels, "run=r1"));
	sandbox_spec_free(&s);
	sandbox_spec_free(&back);
}

TEST(key_suggestions)
{
	static const struct al_json_key table[] = {
	    {"timeout_ms", AL_JSON_NUMBER}, {"yield_ms", AL_JSON_NUMBER}, {"path", AL_JSON_STRING}};

	CHECK_STR(al_json_suggest_key("timeout", table, 3), "timeout_ms");
	CHECK_STR(al_json_suggest_key("yeild_ms", table, 3), "yield_ms");
	CHECK_STR(al_json_suggest_key("paht", table, 3), "path");
	CHECK(al_json_suggest_key("xyz", table, 3) == NULL);
	CHECK(al_json_suggest_key("ab", table, 3) == NULL);
}

TEST(disk_follows_memory)
{
	struct al_error err = AL_ERROR_INIT;
	struct sandbox_spec s;

	CHECK_INT(parse("{\"limits\": {\"memory\": \"64M\"}}", false, &s, &err), 0);
	CHECK_INT(s.disk_bytes, 32 << 20);
	sandbox_spec_free(&s);
	CHECK_INT(parse("{\"limits\": {\"memory\": \"64G\"}}", false, &s, &err), 0);
	CHECK_INT(s.disk_bytes, SANDBOX_DEFAULT_DISK);
	sandbox_spec_free(&s);
	/* No memory limit: nothing to stay below. */
	CHECK_INT(parse("{\"limits\": {\"memory\": 0, \"disk\": \"8G\"}}", false, &s, &err), 0);
	CHECK_INT(s.disk_bytes, 8ULL << 30);
	sandbox_spec_free(&s);
}

TEST(untrusted_host_paths)
{
	struct al_error err = AL_ERROR_INIT;
	struct sandbox_spec s;
	char req[PATH_MAX + 32];

	/* Beside the default rootfs: fine; elsewhere: root only. */
	snprintf(req, sizeof(req), "{\"rootfs\": \"%s\"}", base);
	CHECK_INT(parse(req, false, &s, &err), 0);
	sandbox_spec_free(&s);
	snprintf(req, sizeof(req), "{\"rootfs\": \"%s\"}", elsewhere);
	CHECK_INT(parse(req, false, &s, &err), -EPERM);
	CHECK_INT(parse(req, true, &s, &err), 0);
	sandbox_spec_free(&s);
	CHECK_INT(parse("{\"manifest\": {\"entries\": {\"f\": {\"type\": \"local_file\", "
	                "\"src\": \"/etc/hostname\"}}}}",
	                false, &s, &err),
	          -EPERM);
}

TEST(record_round_trip)
{
	struct al_error err = AL_ERROR_INIT;
	struct sandbox_spec s, back = {0}, again;
	_cleanup_cjson_ cJSON *rec = NULL, *req = NULL;

	CHECK_INT(parse("{\"name\": \"rt\", \"limits\": {\"memory\": \"32M\", \"disk\": \"8M\"},"
	                " \"env\": {\"X\": \"1\"}}",
	                false, &s, &err),
	          0);
	rec = sandbox_spec_to_json(&s);
	CHECK(rec != NULL);
	CHECK_INT(sandbox_spec_from_record(rec, &back, &err), 0);
	CHECK_STR(back.name, "rt");
	CHECK_STR(back.rootfs, s.rootfs);
	CHECK_INT(back.limits.memory_bytes, 32 << 20);
	CHECK_INT(back.disk_bytes, 8 << 20);
	CHECK_INT(al_strv_length(back.env), al_strv_length(s.env));
	CHECK(al_strv_contains(back.env, "X=1"));
	/* The record is refused as a create request as it is (workspace and
	 * owner_uid are not a client's to set: the API is strict), but the
	 * restore request made of it gives the same spec. */
	CHECK_INT(sandbox_spec_from_request(rec, &(struct sandbox_spec_policy){rootfs, false, NULL},
	                                    &again, &err),
	          -EINVAL);
	CHECK(strstr(err.msg, "unknown key") != NULL);
	{
		_cleanup_cjson_ cJSON *empty = cJSON_CreateObject();
		_cleanup_cjson_ cJSON *create = sandbox_spec_restore_request(rec, empty);
		CHECK_INT(
		    sandbox_spec_from_request(
		        create, &(struct sandbox_spec_policy){rootfs, false, NULL}, &again, &err),
		    0);
	}
	CHECK_INT(again.disk_bytes, 8 << 20);
	CHECK(al_strv_contains(again.env, "X=1"));
	/* A restore changes what it names, field by field. */
	req = cJSON_Parse("{\"name\": \"r2\", \"limits\": {\"memory\": \"64M\"}}");
	{
		_cleanup_cjson_ cJSON *create = sandbox_spec_restore_request(rec, req);
		struct sandbox_spec r;
		CHECK_INT(sandbox_spec_from_request(
		              create, &(struct sandbox_spec_policy){rootfs, false, NULL}, &r, &err),
		          0);
		CHECK_STR(r.name, "r2");
		CHECK_INT(r.limits.memory_bytes, 64 << 20);
		CHECK_INT(r.disk_bytes, 8 << 20);
		sandbox_spec_free(&r);
	}
	/* The largest sizes read back exactly from a printed record (state.json). */
	{
		struct sandbox_spec big, read_back;
		_cleanup_cjson_ cJSON *big_rec = NULL, *parsed = NULL;
		_cleanup_free_ char *text = NULL;

		CHECK_INT(parse("{\"limits\": {\"memory\": \"512T\", \"disk\": 562949953421311}}",
		                false, &big, &err),
		          0);
		big_rec = sandbox_spec_to_json(&big);
		text = big_rec ? cJSON_PrintUnformatted(big_rec) : NULL;
		parsed = text ? cJSON_Parse(text) : NULL;
		CHECK_INT(sandbox_spec_from_record(parsed, &read_back, &err), 0);
		CHECK(read_back.limits.memory_bytes == 1ULL << 49);
		CHECK(read_back.disk_bytes == (1ULL << 49) - 1);
		sandbox_spec_free(&big);
		sandbox_spec_free(&read_back);
	}
	/* What a create would read wins in a restore too: the first of a field
	 * given twice, the long form beside the short one (found by the
	 * create-request fuzz target). */
	cJSON_Delete(req);
	req = cJSON_Parse("{\"limits\": {\"cpus\": 2, \"cpus\": 0.5, \"memory_bytes\": 67108864,"
	                  " \"memory\": \"128M\", \"disk\": \"16M\", \"disk\": \"32M\"}}");
	{
		_cleanup_cjson_ cJSON *create = sandbox_spec_restore_request(rec, req);
		struct sandbox_spec r;
		CHECK_INT(sandbox_spec_from_request(
		              create, &(struct sandbox_spec_policy){rootfs, false, NULL}, &r, &err),
		          0);
		CHECK(r.limits.cpus == 2);
		CHECK_INT(r.limits.memory_bytes, 64 << 20);
		CHECK_INT(r.disk_bytes, 16 << 20);
		sandbox_spec_free(&r);
	}
	sandbox_spec_free(&s);
	sandbox_spec_free(&back);
	sandbox_spec_free(&again);
}

TEST(earlier_state_json)
{
	/* Before the spec: env an array, disk_bytes beside limits. */
	_cleanup_cjson_ cJSON *old =
	    cJSON_Parse("{\"version\": 1, \"id\": \"a\", \"name\": \"a\", \"rootfs\": \"/r\","
	                " \"workspace\": \"/w\", \"seccomp_profile\": \"default\","
	                " \"limits\": {\"memory_bytes\": 1073741824, \"pids\": 1024, \"cpus\": 0},"
	                " \"disk_bytes\": 16777216, \"env\": [\"PATH=/bin\", \"K=V\"]}");
	struct al_error err = AL_ERROR_INIT;
	struct sandbox_spec s;

	CHECK_INT(sandbox_spec_from_record(old, &s, &err), 0);
	CHECK_INT(s.disk_bytes, 16 << 20);
	CHECK_STR(s.workspace, "/w");
	CHECK(al_strv_contains(s.env, "K=V"));
	sandbox_spec_free(&s);
	CHECK_INT(sandbox_spec_from_record(cJSON_GetObjectItem(old, "env"), &s, &err), -EINVAL);
}

/* Image fields: checked before any store is read; records keep what a
 * restore needs (the image, not its top layer as a rootfs). */
TEST(image_fields)
{
	struct al_error err = AL_ERROR_INIT;
	struct sandbox_spec s;
	_cleanup_cjson_ cJSON *rec = cJSON_Parse(
	    "{\"name\":\"\",\"rootfs\":\"/img/top\",\"image\":\"py\",\"image_id\":"
	    "\"sha256:00\",\"lowers\":[\"/img/top\",\"/img/bottom\"],\"uid\":1000,\"gid\":"
	    "1001,\"cwd\":\"/srv\",\"workspace\":\"/workspace\",\"env\":{\"A\":\"1\"}}");
	_cleanup_cjson_ cJSON *restore = NULL, *back = NULL;

	CHECK_INT(parse("{\"image\":\"py\",\"rootfs\":\"/\"}", true, &s, &err), -EINVAL);
	CHECK(strstr(err.msg, "not both") != NULL);
	al_error_clear(&err);
	CHECK_INT(parse("{\"image\":\"../x\"}", true, &s, &err), -EINVAL);
	al_error_clear(&err);
	CHECK_INT(parse("{\"image\":\"py\"}", true, &s, &err), -EINVAL);
	CHECK(strstr(err.msg, "no image store") != NULL);
	al_error_clear(&err);
	sandbox_spec_free(&s);

	CHECK_INT(sandbox_spec_from_record(rec, &s, &err), 0);
	CHECK_STR(s.image, "py");
	CHECK_INT(al_strv_length(s.lowers), 2);
	CHECK_STR(s.lowers ? s.lowers[1] : NULL, "/img/bottom");
	CHECK_INT(s.uid, 1000);
	CHECK_INT(s.gid, 1001);
	CHECK_STR(s.cwd, "/srv");
	back = sandbox_spec_to_json(&s);
	CHECK_STR(al_json_str(back, "image_id"), "sha256:00");
	CHECK_INT(cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(back, "lowers")), 2);
	sandbox_spec_free(&s);
	/* A restore names the image (and its id), never its layer as a rootfs. */
	restore = sandbox_spec_restore_request(rec, NULL);
	CHECK_STR(al_json_str(restore, "image"), "py");
	CHECK_STR(al_json_str(restore, "image_id"), "sha256:00");
	CHECK(!cJSON_GetObjectItemCaseSensitive(restore, "rootfs"));
	/* A plain sandbox's lower layer is its rootfs. */
	CHECK_INT(parse(NULL, false, &s, &err), 0);
	CHECK_INT(al_strv_length(s.lowers), 1);
	CHECK_STR(s.lowers ? s.lowers[0] : NULL, rootfs);
	sandbox_spec_free(&s);
}

TEST(poolable)
{
	struct al_error err = AL_ERROR_INIT;
	struct sandbox_spec pool, s;

	CHECK_INT(parse(NULL, true, &pool, &err), 0);
	CHECK_INT(parse("{\"env\": {\"A\": \"1\"}, \"network\": \"loopback\"}", false, &s, &err),
	          0);
	CHECK(sandbox_spec_poolable(&s, &pool));
	sandbox_spec_free(&s);
	static const char *const no[] = {"{\"name\": \"x\"}", "{\"limits\": {\"pids\": 5}}",
	                                 "{\"seccomp_profile\": \"strict\"}",
	                                 "{\"manifest\": {\"entries\": {}}}"};
	for (size_t i = 0; i < sizeof(no) / sizeof(no[0]); i++) {
		CHECK_INT(parse(no[i], false, &s, &err), 0);
		CHECK(!sandbox_spec_poolable(&s, &pool));
		sandbox_spec_free(&s);
	}
	sandbox_spec_free(&pool);
}

/* A restore's "mounts" in place of the recorded manifest's mount entries. */
TEST(replace_mounts)
{
	struct al_error err = AL_ERROR_INIT;
	_cleanup_cjson_ cJSON *rec =
	    cJSON_Parse("{\"version\": 1, \"root\": \"/w\", \"entries\": {"
	                "\"a.txt\": {\"type\": \"file\", \"content\": \"x\"},"
	                "\"old\": {\"type\": \"s3_mount\", \"bucket\": \"b\"},"
	                "\"sub\": {\"type\": \"dir\", \"children\": {"
	                "\"deep\": {\"type\": \"mount\", \"provider\": \"gcs\"},"
	                "\"keep\": {\"type\": \"file\"}}}}}");
	_cleanup_cjson_ cJSON *none = cJSON_Parse("{}");
	_cleanup_cjson_ cJSON *one =
	    cJSON_Parse("{\"new\": {\"type\": \"r2_mount\", \"bucket\": \"c\"}}");
	_cleanup_cjson_ cJSON *file = cJSON_Parse("{\"f\": {\"type\": \"file\"}}");
	_cleanup_cjson_ cJSON *taken = cJSON_Parse("{\"a.txt\": {\"type\": \"s3_mount\"}}");
	_cleanup_cjson_ cJSON *out = NULL, *out2 = NULL, *out3 = NULL;
	const cJSON *entries, *sub;

	CHECK_INT(sandbox_spec_replace_mounts(rec, none, &out, &err), 0);
	entries = cJSON_GetObjectItemCaseSensitive(out, "entries");
	sub = cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(entries, "sub"),
	                                       "children");
	CHECK(cJSON_GetObjectItemCaseSensitive(entries, "a.txt") != NULL);
	CHECK(cJSON_GetObjectItemCaseSensitive(entries, "old") == NULL);
	CHECK(cJSON_GetObjectItemCaseSensitive(sub, "deep") == NULL);
	CHECK(cJSON_GetObjectItemCaseSensitive(sub, "keep") != NULL);
	CHECK_STR(al_json_str(out, "root"), "/w");
	/* The record itself is left as it was. */
	CHECK(cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(rec, "entries"),
	                                       "old") != NULL);

	CHECK_INT(sandbox_spec_replace_mounts(rec, one, &out2, &err), 0);
	entries = cJSON_GetObjectItemCaseSensitive(out2, "entries");
	CHECK_STR(al_json_str(cJSON_GetObjectItemCaseSensitive(entries, "new"), "bucket"), "c");
	CHECK(cJSON_GetObjectItemCaseSensitive(entries, "old") == NULL);

	/* No recorded manifest: one made for the mounts. */
	CHECK_INT(sandbox_spec_replace_mounts(NULL, one, &out3, &err), 0);
	CHECK(cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(out3, "entries"),
	                                       "new") != NULL);

	CHECK_INT(sandbox_spec_replace_mounts(rec, file, &out, &err), -EINVAL);
	CHECK(strstr(err.msg, "'f' is not a mount entry") != NULL);
	err = (struct al_error)AL_ERROR_INIT;
	CHECK_INT(sandbox_spec_replace_mounts(rec, taken, &out, &err), -EINVAL);
	CHECK(strstr(err.msg, "'a.txt' is already an entry") != NULL);
}

int main(void)
{
	char tmpl[] = "/tmp/airlock-test-spec-XXXXXX";

	if (!mkdtemp(tmpl))
		return 1;
	snprintf(base, sizeof(base), "%s", tmpl);
	snprintf(rootfs, sizeof(rootfs), "%s/rootfs", base);
	snprintf(elsewhere, sizeof(elsewhere), "%s-elsewhere", base);
	if (mkdir(rootfs, 0755) < 0 || mkdir(elsewhere, 0755) < 0)
		return 1;
	RUN(defaults);
	RUN(request_fields);
	RUN(request_errors);
	RUN(lifetime_and_labels);
	RUN(key_suggestions);
	RUN(disk_follows_memory);
	RUN(untrusted_host_paths);
	RUN(record_round_trip);
	RUN(earlier_state_json);
	RUN(image_fields);
	RUN(poolable);
	RUN(replace_mounts);
	rmdir(rootfs);
	rmdir(elsewhere);
	rmdir(base);
	return test_main_result();
}
