/* SPDX-License-Identifier: Apache-2.0 */
/* The frames of a streamed exec (common/execstream.h). */
#include <errno.h>
#include <stdint.h>
#include <string.h>

#include "execstream.h"
#include "test.h"

TEST(frames_round_trip_in_order)
{
	struct al_buf b = {0};
	const char *payload;
	size_t plen, flen, off = 0;
	uint8_t type;

	CHECK_INT(execstream_put(&b, EXECSTREAM_STDIN, "ls\n", 3), 0);
	CHECK_INT(execstream_put(&b, EXECSTREAM_CLOSE_STDIN, NULL, 0), 0);
	CHECK_INT(execstream_put(&b, EXECSTREAM_RESIZE, "\x00\x28\x00\x78", 4), 0);
	CHECK_INT(b.len, 5 + 3 + 5 + 5 + 4);
	/* Type, then the length big-endian. */
	CHECK(memcmp(b.data, "\x00\x00\x00\x00\x03ls\n", 8) == 0);

	CHECK_INT(execstream_next(b.data, b.len, &type, &payload, &plen, &flen), 1);
	CHECK_INT(type, EXECSTREAM_STDIN);
	CHECK_INT(plen, 3);
	CHECK(memcmp(payload, "ls\n", 3) == 0);
	off += flen;
	CHECK_INT(execstream_next(b.data + off, b.len - off, &type, &payload, &plen, &flen), 1);
	CHECK_INT(type, EXECSTREAM_CLOSE_STDIN);
	CHECK_INT(plen, 0);
	off += flen;
	CHECK_INT(execstream_next(b.data + off, b.len - off, &type, &payload, &plen, &flen), 1);
	CHECK_INT(type, EXECSTREAM_RESIZE);
	CHECK(memcmp(payload, "\x00\x28\x00\x78", 4) == 0);
	off += flen;
	CHECK_INT(off, b.len);
	CHECK_INT(execstream_next(b.data + off, b.len - off, &type, &payload, &plen, &flen), 0);
	al_buf_free(&b);
}

TEST(partial_frames_wait_for_more)
{
	struct al_buf b = {0};
	const char *payload;
	size_t plen, flen;
	uint8_t type;

	CHECK_INT(execstream_put(&b, EXECSTREAM_STDOUT, "hello", 5), 0);
	/* Every cut short of the whole frame is "not yet", never a frame. */
	for (size_t n = 0; n < b.len; n++)
		CHECK_INT(execstream_next(b.data, n, &type, &payload, &plen, &flen), 0);
	CHECK_INT(execstream_next(b.data, b.len, &type, &payload, &plen, &flen), 1);
	CHECK_INT(flen, b.len);
	al_buf_free(&b);
}

TEST(oversized_lengths_are_refused)
{
	struct al_buf b = {0};
	static char big[EXECSTREAM_MAX_PAYLOAD + 1];
	const char *payload;
	size_t plen, flen;
	uint8_t type;
	/* 1 MiB + 1 announced: refused from the header alone. */
	const char hdr[] = {0, 0x00, 0x10, 0x00, 0x01};
	/* A length that would wrap a 32-bit size. */
	const char huge[] = {0, (char)0xff, (char)0xff, (char)0xff, (char)0xff};

	CHECK_INT(execstream_put(&b, EXECSTREAM_STDOUT, big, sizeof(big)), -E2BIG);
	CHECK_INT(b.len, 0);
	CHECK_INT(execstream_put(&b, EXECSTREAM_STDOUT, big, sizeof(big) - 1), 0);
	CHECK_INT(execstream_next(b.data, b.len, &type, &payload, &plen, &flen), 1);
	CHECK_INT(plen, EXECSTREAM_MAX_PAYLOAD);
	CHECK_INT(execstream_next(hdr, sizeof(hdr), &type, &payload, &plen, &flen), -EPROTO);
	CHECK_INT(execstream_next(huge, sizeof(huge), &type, &payload, &plen, &flen), -EPROTO);
	al_buf_free(&b);
}

int main(void)
{
	RUN(frames_round_trip_in_order);
	RUN(partial_frames_wait_for_more);
	RUN(oversized_lengths_are_refused);
	return test_main_result();
}
