/* SPDX-License-Identifier: Apache-2.0 */
/* The snapshot store through its writer, reader and removal: a rotation
 * (keep only the newest snapshot) keeps the store near the size of that one
 * snapshot, and a process killed at any step of the repack that makes it so
 * leaves every committed snapshot readable, with nothing left over once the
 * next start-up has collected. */
#include "test.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "chunkstore.h"
#include "cleanup.h"
#include "json.h"
#include "snapshot.h"
#include "util.h"

static char state[PATH_MAX], store_path[PATH_MAX];

/* Deterministic bytes that do not compress or repeat (xorshift64). */
static void fill(unsigned char *p, size_t n, uint64_t seed)
{
	uint64_t x = seed * 0x9e3779b97f4a7c15ULL + 1;

	for (size_t i = 0; i < n; i++) {
		x ^= x << 13;
		x ^= x >> 7;
		x ^= x << 17;
		p[i] = (unsigned char)x;
	}
}

/* A committed snapshot (child of parent, or none) of one chunked part holding
 * data; its id into id. */
static void take(const char *parent, const unsigned char *data, size_t n, char id[32])
{
	struct al_error err = AL_ERROR_INIT;
	struct snapshot_writer *w = NULL;
	_cleanup_cjson_ cJSON *summary = NULL;
	_cleanup_close_ int fd = -1;

	id[0] = '\0';
	CHECK_INT(snapshot_writer_begin(state, parent, &w, &err), 0);
	if (!w) {
		fprintf(stderr, "%s\n", err.msg);
		return;
	}
	fd = snapshot_writer_tmpfile(w, &err);
	CHECK(fd >= 0 && al_write_all(fd, data, n) == 0);
	CHECK_INT(snapshot_writer_add_chunked(w, "layer.tar", fd, &err), 0);
	CHECK_INT(snapshot_writer_commit(w, NULL, NULL, &summary, &err), 0);
	snprintf(id, 32, "%s", snapshot_writer_id(w));
	snapshot_writer_free(w);
}

/* Snapshot id reads back, verified, as exactly data. */
static bool reads_as(const char *id, const unsigned char *data, size_t n)
{
	struct al_error err = AL_ERROR_INIT;
	struct snapshot_reader *rd = NULL;
	_cleanup_close_ int out = open(state, O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
	_cleanup_free_ char *got = NULL;
	size_t len = 0;
	int r;

	if (snapshot_reader_open(state, id, &rd, &err) < 0) {
		fprintf(stderr, "snapshot %s: %s\n", id, err.msg);
		return false;
	}
	r = snapshot_reader_read_part(
	    rd, cJSON_GetArrayItem(cJSON_GetObjectItem(snapshot_reader_record(rd), "parts"), 0),
	    out, &err);
	snapshot_reader_free(rd);
	if (r < 0) {
		fprintf(stderr, "snapshot %s: %s\n", id, err.msg);
		return false;
	}
	return lseek(out, 0, SEEK_SET) == 0 && al_read_fd(out, n + 1, &got, &len, &err) == 0 &&
	       len == n && !memcmp(got, data, n);
}

/* Bytes of every file below path. */
static uint64_t bytes_below(int dfd)
{
	int fd = openat(dfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	_cleanup_closedir_ DIR *d = fd >= 0 ? fdopendir(fd) : NULL;
	struct dirent *de;
	uint64_t total = 0;

	while (d && (de = readdir(d))) {
		struct stat st;
		if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, "..") ||
		    fstatat(dirfd(d), de->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0)
			continue;
		if (S_ISDIR(st.st_mode)) {
			_cleanup_close_ int sub =
			    openat(dirfd(d), de->d_name, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
			total += sub >= 0 ? bytes_below(sub) : 0;
		} else {
			total += (uint64_t)st.st_size;
		}
	}
	return total;
}

static uint64_t store_bytes(void)
{
	_cleanup_close_ int fd = open(store_path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);

	return fd >= 0 ? bytes_below(fd) : 0;
}

/* Whether snapshot.json of some committed snapshot names pack (a file name
 * of packs/, "NAME.pack"). */
static bool named(const char *pack)
{
	_cleanup_closedir_ DIR *d = opendir(store_path);
	struct dirent *de;

	while (d && (de = readdir(d))) {
		struct al_error err = AL_ERROR_INIT;
		_cleanup_free_ char *text = NULL;
		_cleanup_cjson_ cJSON *j = NULL;
		char path[PATH_MAX * 2];
		const cJSON *part, *c;
		if (de->d_name[0] == '.' || !strcmp(de->d_name, "packs"))
			continue;
		snprintf(path, sizeof(path), "%s/%s/snapshot.json", store_path, de->d_name);
		if (al_read_file(path, 1u << 26, &text, NULL, &err) < 0 || !(j = cJSON_Parse(text)))
			continue;
		cJSON_ArrayForEach(part, cJSON_GetObjectItem(j, "parts"))
		{
			cJSON_ArrayForEach(c, cJSON_GetObjectItem(part, "chunks"))
			{
				const char *p = cJSON_GetStringValue(cJSON_GetArrayItem(c, 2));
				size_t n = p ? strlen(p) : 0;
				if (n && !strncmp(pack, p, n) && !strcmp(pack + n, ".pack"))
					return true;
			}
		}
	}
	return false;
}

/* No temp file in the store, and no pack no snapshot names. */
static void nothing_left_over(void)
{
	char packs[PATH_MAX * 2];
	_cleanup_closedir_ DIR *top = opendir(store_path), *d = NULL;
	struct dirent *de;

	while (top && (de = readdir(top)))
		if (!strncmp(de->d_name, ".tmp", 4)) {
			fprintf(stderr, "left over: %s\n", de->d_name);
			CHECK(false);
		}
	snprintf(packs, sizeof(packs), "%s/packs", store_path);
	d = opendir(packs);
	CHECK(d != NULL);
	while (d && (de = readdir(d))) {
		if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
			continue;
		if (!named(de->d_name)) {
			fprintf(stderr, "pack nothing names: %s\n", de->d_name);
			CHECK(false);
		}
	}
}

static void fresh_state(void)
{
	struct al_error err = AL_ERROR_INIT;

	if (state[0])
		CHECK_INT(al_rm_rf(state, &err), 0);
	snprintf(state, sizeof(state), "/tmp/airlock-test-store-XXXXXX");
	CHECK(mkdtemp(state) != NULL);
	snprintf(store_path, sizeof(store_path), "%s/snapshots", state);
	CHECK_INT(snapshot_store_init(state, &err), 0);
}

#define DATA (8u << 20)
#define TURN (3u << 20)

TEST(rotation_stays_small)
{
	_cleanup_free_ unsigned char *data = malloc(DATA);
	struct al_error err = AL_ERROR_INIT;
	char prev[32], next[32];

	fresh_state();
	fill(data, DATA, 1);
	take(NULL, data, DATA, prev);
	for (int turn = 0; turn < 6; turn++) {
		/* 3 MiB rewritten in place, somewhere else each turn. */
		fill(data + (size_t)(turn % 3) * (2u << 20), TURN, 100 + (uint64_t)turn);
		take(prev, data, DATA, next);
		CHECK_INT(snapshot_remove(state, prev, &err), 0);
		snprintf(prev, sizeof(prev), "%s", next);
		/* The one live snapshot: DATA bytes of chunks and its record.
		 * Without repacking the store grew by TURN a turn (3.25x). */
		if (store_bytes() > DATA + DATA / 2) {
			fprintf(stderr, "turn %d: store %llu bytes for %u\n", turn + 1,
			        (unsigned long long)store_bytes(), DATA);
			CHECK(false);
		}
		CHECK(reads_as(prev, data, DATA));
	}
	nothing_left_over();
}

static int crash_at, steps_seen;

static void crash_hook(const char *step)
{
	(void)step;
	if (++steps_seen == crash_at)
		raise(SIGKILL);
}

#define CRASH_DATA (4u << 20)

TEST(kill_at_every_step_of_a_repack)
{
	_cleanup_free_ unsigned char *a = malloc(CRASH_DATA), *b = malloc(CRASH_DATA),
	                             *c = malloc(CRASH_DATA);
	struct al_error err = AL_ERROR_INIT;
	char s1[32], s2[32], s3[32];
	bool killed = true;

	/* b keeps half of a, c is b with a little more changed: once s1 is
	 * removed half of its pack is dead, and s2 and s3 both name the rest. */
	fill(a, CRASH_DATA, 2);
	memcpy(b, a, CRASH_DATA / 2);
	fill(b + CRASH_DATA / 2, CRASH_DATA / 2, 3);
	memcpy(c, b, CRASH_DATA);
	fill(c + CRASH_DATA - 65536, 65536, 4);
	for (crash_at = 1; killed; crash_at++) {
		pid_t pid;
		int status = 0;
		fresh_state();
		take(NULL, a, CRASH_DATA, s1);
		take(s1, b, CRASH_DATA, s2);
		take(s2, c, CRASH_DATA, s3);
		pid = fork();
		CHECK(pid >= 0);
		if (pid == 0) {
			chunk_store_step_hook = crash_hook;
			_exit(snapshot_remove(state, s1, &err) == 0 ? 0 : 1);
		}
		CHECK(waitpid(pid, &status, 0) == pid);
		killed = WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL;
		CHECK(killed || (WIFEXITED(status) && WEXITSTATUS(status) == 0));
		/* Right after the kill, and after the next start-up's collection:
		 * both snapshots whole, nothing left over, the repack done. */
		CHECK(reads_as(s2, b, CRASH_DATA) && reads_as(s3, c, CRASH_DATA));
		CHECK_INT(snapshot_store_init(state, &err), 0);
		CHECK(reads_as(s2, b, CRASH_DATA) && reads_as(s3, c, CRASH_DATA));
		nothing_left_over();
		if (store_bytes() > CRASH_DATA + CRASH_DATA / 4) {
			fprintf(stderr, "killed at step %d: store %llu bytes\n", crash_at,
			        (unsigned long long)store_bytes());
			CHECK(false);
		}
	}
	/* Steps: copying, copied, a record rewritten (twice), all rewritten;
	 * the sixth run went through. */
	CHECK_INT(crash_at - 1, 6);
}

int main(void)
{
	struct al_error err = AL_ERROR_INIT;

	RUN(rotation_stays_small);
	RUN(kill_at_every_step_of_a_repack);
	if (state[0] && al_rm_rf(state, &err) < 0)
		fprintf(stderr, "%s\n", err.msg);
	return test_main_result();
}
