/* SPDX-License-Identifier: Apache-2.0 */
/* The binary protocol between airlockd and airlock-pid1 (initproto.h). */
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdint.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "initproto.h"
#include "test.h"

static void pair(int sv[2])
{
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0)
		sv[0] = sv[1] = -1;
}

/* A raw frame: length, then payload bytes as given (none if NULL). */
static void send_raw(int fd, const void *payload, uint32_t len)
{
	uint8_t hdr[4] = {(uint8_t)len, (uint8_t)(len >> 8), (uint8_t)(len >> 16),
	                  (uint8_t)(len >> 24)};
	if (write(fd, hdr, 4) != 4 || (payload && write(fd, payload, len) != (ssize_t)len))
		fprintf(stderr, "short write\n");
}

TEST(spawn_round_trip_with_fds)
{
	char *argv[] = {"sh", "-c", "echo ünïcode", NULL};
	char *env[] = {"PATH=/bin", "EMPTY=", NULL};
	struct initproto_msg m = {.type = INITPROTO_SPAWN, .argv = argv, .env = env, .text = "/w"};
	struct initproto_msg got;
	struct al_error err = AL_ERROR_INIT;
	int sv[2], p[2], fds[INITPROTO_MAX_FDS];
	size_t nfds = INITPROTO_MAX_FDS;
	struct stat a, b;

	pair(sv);
	CHECK(pipe(p) == 0);
	CHECK_INT(initproto_send(sv[0], &m, p, 2, &err), 0);
	CHECK_INT(initproto_recv(sv[1], &got, fds, &nfds, &err), 0);
	CHECK_INT(got.type, INITPROTO_SPAWN);
	CHECK_STR(got.argv[0], "sh");
	CHECK_STR(got.argv[2], "echo ünïcode");
	CHECK(got.argv[3] == NULL);
	CHECK_STR(got.env[0], "PATH=/bin");
	CHECK_STR(got.env[1], "EMPTY=");
	CHECK(got.env[2] == NULL);
	CHECK_STR(got.text, "/w");
	CHECK_INT(nfds, 2);
	/* The fds are the same pipe, and close-on-exec. */
	CHECK(fstat(fds[0], &a) == 0 && fstat(p[0], &b) == 0 && a.st_ino == b.st_ino);
	CHECK(fcntl(fds[1], F_GETFD) & FD_CLOEXEC);
	initproto_msg_free(&got);
	for (size_t i = 0; i < nfds; i++)
		close(fds[i]);
	close(p[0]);
	close(p[1]);
	close(sv[0]);
	close(sv[1]);
}

TEST(numbers_and_no_strings)
{
	struct initproto_msg m = {.type = INITPROTO_ERROR, .num = -5, .aux = 3, .text = "x"};
	struct initproto_msg got;
	struct al_error err = AL_ERROR_INIT;
	int sv[2];

	pair(sv);
	CHECK_INT(initproto_send(sv[0], &m, NULL, 0, &err), 0);
	m = (struct initproto_msg){.type = INITPROTO_PONG};
	CHECK_INT(initproto_send(sv[0], &m, NULL, 0, &err), 0);
	CHECK_INT(initproto_recv(sv[1], &got, NULL, NULL, &err), 0);
	CHECK_INT(got.type, INITPROTO_ERROR);
	CHECK_INT(got.num, -5);
	CHECK_INT(got.aux, 3);
	CHECK_STR(got.text, "x");
	initproto_msg_free(&got);
	CHECK_INT(initproto_recv(sv[1], &got, NULL, NULL, &err), 0);
	CHECK_INT(got.type, INITPROTO_PONG);
	CHECK(got.text == NULL && got.argv && got.argv[0] == NULL);
	initproto_msg_free(&got);
	close(sv[0]);
	/* End of stream before a frame is a clean 1. */
	CHECK_INT(initproto_recv(sv[1], &got, NULL, NULL, &err), 1);
	close(sv[1]);
}

TEST(malformed_frames_are_refused)
{
	struct al_error err = AL_ERROR_INIT;
	struct initproto_msg got;
	/* type, num, aux, argc = 1, envc = 0, has_text = 0, then a string without NUL */
	uint8_t unterminated[] = {1, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 'a', 'b'};
	/* argc claims more strings than the frame can hold */
	uint8_t huge_count[] = {1,    0,    0,    0, 0, 0, 0, 0, 0,   0xff,
	                        0xff, 0xff, 0x7f, 0, 0, 0, 0, 0, 'a', 0};
	/* a trailing byte after the last string */
	uint8_t trailing[] = {1, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 'a', 0, 'z'};
	int sv[2];

	pair(sv);
	send_raw(sv[0], unterminated, sizeof(unterminated));
	CHECK_INT(initproto_recv(sv[1], &got, NULL, NULL, &err), -EPROTO);
	send_raw(sv[0], huge_count, sizeof(huge_count));
	CHECK_INT(initproto_recv(sv[1], &got, NULL, NULL, &err), -EPROTO);
	send_raw(sv[0], trailing, sizeof(trailing));
	CHECK_INT(initproto_recv(sv[1], &got, NULL, NULL, &err), -EPROTO);
	send_raw(sv[0], "x", 1);
	CHECK_INT(initproto_recv(sv[1], &got, NULL, NULL, &err), -EPROTO);
	send_raw(sv[0], NULL, INITPROTO_MAX_FRAME + 1);
	CHECK_INT(initproto_recv(sv[1], &got, NULL, NULL, &err), -EPROTO);
	close(sv[0]);
	close(sv[1]);
}

/* The first byte of a frame of len bytes, carrying fd as initproto_send does. */
static void send_first_with_fd(int sock, uint32_t len, int fd)
{
	int r = initproto_send_byte(sock, (uint8_t)len, &fd, 1);

	if (r < 0)
		fprintf(stderr, "sendmsg: %s\n", strerror(-r));
}

/* Whether the write end of pipe p is closed everywhere: reading gives EOF, not EAGAIN. */
static bool pipe_writers_gone(int p[2])
{
	char c;
	return read(p[0], &c, 1) == 0;
}

TEST(broken_frames_close_their_fds)
{
	struct al_error err = AL_ERROR_INIT;
	struct initproto_msg got;
	int sv[2], p[2], fds[INITPROTO_MAX_FDS];
	size_t nfds;
	uint8_t rest[4] = {0, 0, 0, 'x'}; /* 3 more length bytes, a 1-byte payload */

	/* A payload too short to decode. */
	pair(sv);
	CHECK(pipe2(p, O_CLOEXEC | O_NONBLOCK) == 0);
	send_first_with_fd(sv[0], 1, p[1]);
	CHECK(write(sv[0], rest, sizeof(rest)) == (ssize_t)sizeof(rest));
	close(p[1]);
	nfds = INITPROTO_MAX_FDS;
	CHECK_INT(initproto_recv(sv[1], &got, fds, &nfds, &err), -EPROTO);
	CHECK_INT(nfds, 0);
	CHECK(pipe_writers_gone(p));
	close(p[0]);

	/* The stream ends inside the length. */
	CHECK(pipe2(p, O_CLOEXEC | O_NONBLOCK) == 0);
	send_first_with_fd(sv[0], 1, p[1]);
	close(p[1]);
	close(sv[0]);
	nfds = INITPROTO_MAX_FDS;
	CHECK_INT(initproto_recv(sv[1], &got, fds, &nfds, &err), -ECONNRESET);
	CHECK(strstr(err.msg, "receive from init socket") != NULL);
	CHECK_INT(nfds, 0);
	CHECK(pipe_writers_gone(p));
	close(p[0]);
	close(sv[1]);
}

int main(void)
{
	RUN(spawn_round_trip_with_fds);
	RUN(numbers_and_no_strings);
	RUN(malformed_frames_are_refused);
	RUN(broken_frames_close_their_fds);
	return test_main_result();
}
