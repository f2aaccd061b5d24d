/* SPDX-License-Identifier: Apache-2.0 */
#include "test.h"

#include <errno.h>
#include <stdlib.h>
#include <unistd.h>

#include "audit.h"
#include "cleanup.h"
#include "util.h"

static char dir[64];

static void make_trail(int n)
{
	struct al_error err = AL_ERROR_INIT;
	struct al_audit a;

	strcpy(dir, "/tmp/test-audit-XXXXXX");
	if (!mkdtemp(dir))
		abort();
	CHECK_INT(al_audit_open(&a, dir, &err), 0);
	for (int i = 0; i < n; i++) {
		cJSON *d = cJSON_CreateObject();
		cJSON_AddNumberToObject(d, "i", i);
		cJSON_AddStringToObject(d, "note", "a \"quoted\" ,\"hash\":\" lookalike");
		CHECK_INT(al_audit_append(&a, i == 0 ? "run_start" : "tool_call", d, &err), 0);
	}
	al_audit_close(&a);
}

static void cleanup(void)
{
	struct al_error err = AL_ERROR_INIT;
	al_rm_rf(dir, &err);
}

/* The trail's lines, to be edited and written back. */
static int read_lines(char lines[][512], int max)
{
	char path[128];
	FILE *f;
	int n = 0;

	snprintf(path, sizeof(path), "%s/audit.jsonl", dir);
	f = fopen(path, "r");
	while (f && n < max && fgets(lines[n], 512, f))
		n++;
	if (f)
		fclose(f);
	return n;
}

static void write_lines(char lines[][512], int n)
{
	char path[128];
	FILE *f;

	snprintf(path, sizeof(path), "%s/audit.jsonl", dir);
	f = fopen(path, "w");
	for (int i = 0; i < n; i++)
		fputs(lines[i], f);
	fclose(f);
}

/* verify's answer: 0, or the line it names. */
static long bad_line(void)
{
	struct al_error err = AL_ERROR_INIT;
	uint64_t n = 0;
	int r = al_audit_verify(dir, &n, &err);

	if (r == 0)
		return 0;
	if (r != -EBADMSG || strncmp(err.msg, "line ", 5)) {
		fprintf(stderr, "unexpected: %d %s\n", r, err.msg);
		return -1;
	}
	return strtol(err.msg + 5, NULL, 10);
}

TEST(intact_and_reopened)
{
	struct al_error err = AL_ERROR_INIT;
	struct al_audit a;
	uint64_t n = 0;

	make_trail(5);
	CHECK_INT(al_audit_verify(dir, &n, &err), 0);
	CHECK_INT(n, 5);
	/* Reopening continues the chain. */
	CHECK_INT(al_audit_open(&a, dir, &err), 0);
	CHECK_INT(a.seq, 5);
	CHECK_INT(al_audit_append(&a, "resume", NULL, &err), 0);
	CHECK_INT(al_audit_count(&a, "tool_call", "note", NULL, &err), 0);
	CHECK_INT(al_audit_count(&a, "resume", "x", NULL, &err), 1);
	al_audit_close(&a);
	CHECK_INT(al_audit_verify(dir, &n, &err), 0);
	CHECK_INT(n, 6);
	cleanup();
}

TEST(torn_last_line_is_cut_on_open)
{
	struct al_error err = AL_ERROR_INIT;
	char lines[8][512];
	struct al_audit a;
	uint64_t n = 0;
	int k;

	make_trail(3);
	k = read_lines(lines, 8);
	CHECK_INT(k, 3);
	lines[2][strlen(lines[2]) / 2] = '\0'; /* a crash in the middle of the write */
	write_lines(lines, 3);
	CHECK_INT(bad_line(), 3);
	CHECK_INT(al_audit_open(&a, dir, &err), 0);
	CHECK_INT(a.seq, 2);
	CHECK_INT(al_audit_append(&a, "resume", NULL, &err), 0);
	al_audit_close(&a);
	CHECK_INT(al_audit_verify(dir, &n, &err), 0);
	CHECK_INT(n, 3);
	cleanup();
}

TEST(tampering_names_the_first_bad_line)
{
	char lines[8][512], saved[8][512], tmp[512];
	char *p;
	int k;

	make_trail(6);
	k = read_lines(saved, 8);
	CHECK_INT(k, 6);

	/* edited */
	memcpy(lines, saved, sizeof(lines));
	p = strstr(lines[2], "\"i\":2");
	if (p)
		p[4] = '7';
	write_lines(lines, 6);
	CHECK_INT(bad_line(), 3);

	/* deleted in the middle */
	memcpy(lines, saved, sizeof(lines));
	memmove(lines[3], lines[4], 2 * sizeof(lines[0]));
	write_lines(lines, 5);
	CHECK_INT(bad_line(), 4);

	/* deleted at the end: only audit.head knows */
	write_lines(saved, 5);
	CHECK_INT(bad_line(), 6);

	/* inserted (a copy of a valid record) */
	memcpy(lines, saved, sizeof(lines));
	memmove(lines[3], lines[2], 4 * sizeof(lines[0]));
	write_lines(lines, 7);
	CHECK_INT(bad_line(), 4);

	/* reordered */
	memcpy(lines, saved, sizeof(lines));
	strcpy(tmp, lines[1]);
	strcpy(lines[1], lines[2]);
	strcpy(lines[2], tmp);
	write_lines(lines, 6);
	CHECK_INT(bad_line(), 2);

	/* not JSON */
	memcpy(lines, saved, sizeof(lines));
	strcpy(lines[4], "{garbage\n");
	write_lines(lines, 6);
	CHECK_INT(bad_line(), 5);

	/* appended by someone else */
	memcpy(lines, saved, sizeof(lines));
	strcpy(lines[6], saved[5]);
	write_lines(lines, 7);
	CHECK_INT(bad_line(), 7);

	write_lines(saved, 6);
	CHECK_INT(bad_line(), 0);
	cleanup();
}

int main(void)
{
	RUN(intact_and_reopened);
	RUN(torn_last_line_is_cut_on_open);
	RUN(tampering_names_the_first_bad_line);
	return test_main_result();
}
