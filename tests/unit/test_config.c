/* SPDX-License-Identifier: Apache-2.0 */
/* airlockd's configuration file (runtime/daemon/config.c). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config.h"
#include "strv.h"
#include "test.h"

static const struct option options[] = {
    {"socket", required_argument, NULL, 's'},
    {"warm-pool", required_argument, NULL, 'w'},
    {"debug", no_argument, NULL, 'D'},
    {"help", no_argument, NULL, 'h'},
    {NULL, 0, NULL, 0},
};
static const char *const refused[] = {"help", NULL};
static char path[] = "/tmp/airlock-test-config-XXXXXX";

/* Write text to the test file and load it. */
static int load(const char *text, char ***args, struct al_error *err)
{
	FILE *f = fopen(path, "w");

	if (!f)
		return -errno;
	fputs(text, f);
	fclose(f);
	*args = NULL;
	return config_load(path, options, refused, args, err);
}

TEST(options_become_arguments)
{
	struct al_error err = AL_ERROR_INIT;
	char **args;

	CHECK_INT(
	    load("# a comment\n\n  socket = /run/x.sock  \nwarm-pool=4\ndebug=true\n", &args, &err),
	    0);
	CHECK_INT((int)al_strv_length(args), 3);
	CHECK_STR(args[0], "--socket=/run/x.sock");
	CHECK_STR(args[1], "--warm-pool=4");
	CHECK_STR(args[2], "--debug");
	al_strv_free(args);
	/* A flag set to false is no argument; an empty file is no argument. */
	CHECK_INT(load("debug=false\n", &args, &err), 0);
	CHECK_INT((int)al_strv_length(args), 0);
	al_strv_free(args);
	CHECK_INT(load("", &args, &err), 0);
	CHECK(args != NULL);
	al_strv_free(args);
}

TEST(bad_lines_are_named)
{
	struct al_error err = AL_ERROR_INIT;
	char **args;

	CHECK_INT(load("socket=/x\nwarm_pool=4\n", &args, &err), -EINVAL);
	CHECK(strstr(err.msg, ":2: unknown key 'warm_pool'") != NULL);
	CHECK_INT(load("help=true\n", &args, &err), -EINVAL);
	CHECK(strstr(err.msg, "unknown key 'help'") != NULL);
	CHECK_INT(load("socket\n", &args, &err), -EINVAL);
	CHECK(strstr(err.msg, ":1: expected KEY=VALUE") != NULL);
	CHECK_INT(load("socket=\n", &args, &err), -EINVAL);
	CHECK(strstr(err.msg, "socket needs a value") != NULL);
	CHECK_INT(load("debug=yes\n", &args, &err), -EINVAL);
	CHECK(strstr(err.msg, "debug takes true or false") != NULL);
	CHECK_INT(config_load("/nonexistent-airlock.conf", options, refused, &args, &err), -ENOENT);
}

int main(void)
{
	int fd = mkstemp(path);

	if (fd < 0)
		return 1;
	close(fd);
	RUN(options_become_arguments);
	RUN(bad_lines_are_named);
	unlink(path);
	return test_main_result();
}
