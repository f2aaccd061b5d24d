/* SPDX-License-Identifier: Apache-2.0 */
#include "test.h"

#include <errno.h>
#include <stdint.h>

#include "cleanup.h"
#include "error.h"
#include "json.h"
#include "strv.h"
#include "util.h"

TEST(parse_size)
{
	struct al_error err = AL_ERROR_INIT;
	uint64_t v = 0;

	CHECK_INT(al_parse_size("64M", &v, &err), 0);
	CHECK_INT(v, 64ULL << 20);
	CHECK_INT(al_parse_size("1G", &v, &err), 0);
	CHECK_INT(v, 1ULL << 30);
	CHECK_INT(al_parse_size("512k", &v, &err), 0);
	CHECK_INT(v, 512ULL << 10);
	CHECK_INT(al_parse_size("1048576", &v, &err), 0);
	CHECK_INT(v, 1048576);
	CHECK_INT(al_parse_size("2MiB", &v, &err), 0);
	CHECK_INT(v, 2ULL << 20);
	CHECK_INT(al_parse_size("", &v, &err), -EINVAL);
	CHECK_INT(al_parse_size("-1", &v, &err), -EINVAL);
	CHECK_INT(al_parse_size("12X", &v, &err), -EINVAL);
	CHECK(strstr(err.msg, "12X") != NULL);
	CHECK_INT(al_parse_size("99999999999999999999", &v, &err), -EINVAL);
	CHECK_INT(al_parse_size("99999999999T", &v, &err), -ERANGE);
}

TEST(error_prefix)
{
	struct al_error err = AL_ERROR_INIT;

	CHECK_INT(al_error_set(&err, ENOENT, "open %s", "/x"), -ENOENT);
	CHECK_INT(al_error_prefix(&err, "sandbox %s", "abc"), -ENOENT);
	CHECK_STR(err.msg, "sandbox abc: open /x");
	errno = EACCES;
	CHECK_INT(al_error_errno(&err, "mkdir %s", "/y"), -EACCES);
	CHECK_STR(err.msg, "mkdir /y: Permission denied");
}

TEST(valid_name)
{
	CHECK(al_valid_name("abc"));
	CHECK(al_valid_name("a.b-c_d9"));
	CHECK(!al_valid_name(""));
	CHECK(!al_valid_name("-x"));
	CHECK(!al_valid_name("a/b"));
	CHECK(!al_valid_name(".."));
	CHECK(
	    !al_valid_name("0123456789012345678901234567890123456789012345678901234567890123456"));
}

TEST(sha256)
{
	char hex[65];
	al_sha256_hex("abc", 3, hex);
	CHECK_STR(hex, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
}

TEST(strv)
{
	_cleanup_strv_ char **v = NULL, **env = NULL;
	_cleanup_(al_argv_free) struct al_argv argv = {0};
	struct al_error err = AL_ERROR_INIT;

	CHECK_INT(al_strv_length(v), 0);
	CHECK_INT(al_strv_push(&v, "b"), 0);
	CHECK_INT(al_strv_push(&v, "a"), 0);
	CHECK_INT(al_strv_length(v), 2);
	al_strv_sort(v);
	CHECK_STR(v[0], "a");
	CHECK_STR(v[1], "b");
	CHECK(v[2] == NULL);
	CHECK(al_strv_contains(v, "b") && !al_strv_contains(v, "c"));

	CHECK_INT(al_strv_env_set(&env, "PATH", "/bin"), 0);
	CHECK_INT(al_strv_env_set(&env, "P", "x"), 0);
	CHECK_INT(al_strv_env_set(&env, "PATH", "/usr/bin"), 0);
	CHECK_INT(al_strv_length(env), 2);
	CHECK_STR(env[0], "PATH=/usr/bin");
	CHECK_STR(env[1], "P=x");

	CHECK_INT(al_argv_add(&argv, "--tree=%d", 42), 0);
	CHECK_INT(al_argv_add(&argv, "%s", "dump"), 0);
	CHECK_INT(al_argv_done(&argv, &err), 0);
	CHECK_STR(argv.v[0], "--tree=42");
	CHECK(argv.v[2] == NULL);
}

TEST(json)
{
	_cleanup_cjson_ cJSON *o = cJSON_Parse("{\"s\": \"x\", \"n\": 3, \"f\": 1.5, "
	                                       "\"a\": [\"p\", 1, \"q\"]}");
	_cleanup_strv_ char **v = NULL;
	_cleanup_cjson_ cJSON *back = NULL;

	CHECK(o != NULL);
	CHECK_STR(al_json_str(o, "s"), "x");
	CHECK(al_json_str(o, "n") == NULL && al_json_str(o, "missing") == NULL);
	CHECK_INT(al_json_num(o, "n", -1), 3);
	CHECK_INT(al_json_num(o, "s", -1), -1);
	CHECK(al_json_is_count(cJSON_GetObjectItem(o, "n"), 3));
	CHECK(!al_json_is_count(cJSON_GetObjectItem(o, "n"), 2));
	CHECK(!al_json_is_count(cJSON_GetObjectItem(o, "f"), 10));
	v = al_json_to_strv(cJSON_GetObjectItem(o, "a"));
	CHECK(v && al_strv_length(v) == 2);
	back = al_json_from_strv(v);
	CHECK_INT(cJSON_GetArraySize(back), 2);
	CHECK_STR(cJSON_GetArrayItem(back, 1)->valuestring, "q");
}

TEST(take)
{
	char *p = strdup("x"), *q;
	int fd = 7, g;

	q = TAKE_PTR(p);
	CHECK(p == NULL);
	CHECK_STR(q, "x");
	free(q);
	g = TAKE_FD(fd);
	CHECK_INT(fd, -1);
	CHECK_INT(g, 7);
}

int main(void)
{
	RUN(parse_size);
	RUN(error_prefix);
	RUN(valid_name);
	RUN(sha256);
	RUN(strv);
	RUN(json);
	RUN(take);
	return test_main_result();
}
