/* SPDX-License-Identifier: Apache-2.0 */
#include "test.h"

#include <errno.h>
#include <stdint.h>

#include "error.h"
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

int main(void)
{
	RUN(parse_size);
	RUN(error_prefix);
	RUN(valid_name);
	RUN(sha256);
	return test_main_result();
}
