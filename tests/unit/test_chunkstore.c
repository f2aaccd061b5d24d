/* SPDX-License-Identifier: Apache-2.0 */
/* The chunk store alone: parts in and out byte for byte, sharing along a
 * lineage, repeated chunks stored once, damage found and named, packs of
 * uncommitted snapshots removed, the sweep of what nothing names, and
 * repacking: live chunks of mostly dead packs copied, damaged ones left. */
#include "test.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include "chunkstore.h"
#include "cleanup.h"
#include "json.h"
#include "util.h"

static char dir[PATH_MAX];
static int store_fd = -1;
/* The name store() gives its part (which decides how it is cut). */
static const char *part_name = "p";

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

/* An unlinked file holding data. */
static int file_of(const unsigned char *data, size_t n)
{
	int fd = open(dir, O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);

	if (fd < 0 || al_write_all(fd, data, n) < 0 || lseek(fd, 0, SEEK_SET) != 0)
		abort();
	return fd;
}

/* Store data as part "p" of a new pack name (sharing parent's parts); the
 * part's description is returned, the bytes new chunks took in *written. */
static cJSON *store(const char *name, const cJSON *parent_parts, const unsigned char *data,
                    size_t n, bool keep, uint64_t *written)
{
	struct al_error err = AL_ERROR_INIT;
	struct chunk_store *cs = NULL;
	_cleanup_close_ int fd = file_of(data, n);
	cJSON *parts = cJSON_CreateArray();
	const cJSON *part;

	*written = 0;
	CHECK_INT(chunk_store_open(store_fd, &cs, &err), 0);
	cJSON_ArrayForEach(part, parent_parts) CHECK_INT(chunk_store_index_part(cs, part, &err), 0);
	CHECK_INT(chunk_store_begin_pack(cs, name, &err), 0);
	CHECK_INT(chunk_store_add_part(cs, part_name, fd, parts, written, &err), 0);
	if (keep) {
		CHECK_INT(chunk_store_seal_pack(cs, &err), 0);
		chunk_store_keep_pack(cs);
		CHECK_INT(chunk_store_sync(cs), 0);
	}
	chunk_store_free(cs);
	return parts;
}

/* Read part 0 of parts back; 0 and the same bytes, or the error. */
static int read_back(const cJSON *parts, const unsigned char *want, size_t n, struct al_error *err)
{
	struct chunk_store *cs = NULL;
	_cleanup_close_ int out = open(dir, O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
	_cleanup_free_ char *got = NULL;
	size_t len = 0;
	int r;

	CHECK_INT(chunk_store_open(store_fd, &cs, err), 0);
	r = chunk_store_read_part(cs, -1, cJSON_GetArrayItem(parts, 0), out, err);
	chunk_store_free(cs);
	if (r < 0)
		return r;
	CHECK(lseek(out, 0, SEEK_SET) == 0);
	CHECK_INT(al_read_fd(out, n + 1, &got, &len, err), 0);
	CHECK_INT(len, n);
	CHECK(got && memcmp(got, want, n) == 0);
	return 0;
}

static bool pack_exists(const char *name)
{
	char path[PATH_MAX];

	snprintf(path, sizeof(path), "%s/packs/%s", dir, name);
	return access(path, F_OK) == 0;
}

#define SIZE (3u << 20)

TEST(round_trip_and_lineage)
{
	_cleanup_free_ unsigned char *a = malloc(SIZE), *b = malloc(SIZE);
	_cleanup_cjson_ cJSON *p1 = NULL, *p2 = NULL;
	struct al_error err = AL_ERROR_INIT;
	const cJSON *part;
	uint64_t w1 = 0, w2 = 0;

	fill(a, SIZE, 1);
	p1 = store("s1", NULL, a, SIZE, true, &w1);
	part = cJSON_GetArrayItem(p1, 0);
	CHECK_STR(al_json_str(part, "storage"), "packed");
	CHECK_INT(al_json_num(part, "size", 0), SIZE);
	CHECK_INT(w1, SIZE); /* nothing to share: every byte is new */
	CHECK(cJSON_GetArraySize(cJSON_GetObjectItem(part, "chunks")) > 8);
	CHECK_INT(read_back(p1, a, SIZE, &err), 0);
	CHECK(pack_exists("s1.pack"));

	/* One byte in a hundred changed, in one place: the child shares the rest. */
	memcpy(b, a, SIZE);
	fill(b + SIZE / 2, SIZE / 100, 2);
	p2 = store("s2", p1, b, SIZE, true, &w2);
	CHECK(w2 > 0 && w2 < SIZE / 10);
	CHECK_INT(read_back(p2, b, SIZE, &err), 0);
}

/* CRIU's page images are cut every 16 KiB: a page changed costs one chunk,
 * wherever it is, and the rest is shared. */
TEST(page_images_cut_by_page)
{
	_cleanup_free_ unsigned char *a = malloc(SIZE), *b = malloc(SIZE);
	_cleanup_cjson_ cJSON *p1 = NULL, *p2 = NULL;
	struct al_error err = AL_ERROR_INIT;
	const cJSON *part, *item;
	uint64_t w1 = 0, w2 = 0;
	size_t pages = SIZE / 4096, changed = 0;
	bool block[SIZE / 16384] = {false};

	part_name = "criu/pages-7.img";
	fill(a, SIZE, 11);
	p1 = store("pg1", NULL, a, SIZE, true, &w1);
	part = cJSON_GetArrayItem(p1, 0);
	CHECK_INT(w1, SIZE);
	CHECK_INT(cJSON_GetArraySize(cJSON_GetObjectItem(part, "chunks")), SIZE / 16384);
	cJSON_ArrayForEach(item, cJSON_GetObjectItem(part, "chunks"))
	    CHECK_INT(cJSON_GetArrayItem(item, 1)->valuedouble, 16384);
	CHECK_INT(read_back(p1, a, SIZE, &err), 0);

	/* 1% of the pages, scattered: one in each window of 100, at varying places. */
	memcpy(b, a, SIZE);
	for (size_t k = 0; k * 100 < pages; k++) {
		size_t page = k * 100 + (k * 37) % 100;
		if (page >= pages)
			break;
		fill(b + page * 4096, 4096, 100 + k);
		if (!block[page / 4])
			changed++;
		block[page / 4] = true;
	}
	p2 = store("pg2", p1, b, SIZE, true, &w2);
	CHECK_INT(w2, changed * 16384);
	CHECK_INT(read_back(p2, b, SIZE, &err), 0);

	/* A parent's block damaged on disk is not taken for the same bytes: the
	 * child stores its own copy, and reads back whole. */
	{
		_cleanup_cjson_ cJSON *p4 = NULL;
		char path[PATH_MAX];
		unsigned char byte;
		int fd;
		snprintf(path, sizeof(path), "%s/packs/pg1.pack", dir);
		fd = open(path, O_RDWR | O_CLOEXEC);
		CHECK(fd >= 0);
		CHECK(pread(fd, &byte, 1, 100) == 1);
		byte ^= 0xff;
		CHECK(pwrite(fd, &byte, 1, 100) == 1);
		close(fd);
		p4 = store("pg4", p1, a, SIZE, true, &w2);
		CHECK_INT(w2, 16384);
		CHECK_INT(read_back(p4, a, SIZE, &err), 0);
		CHECK_INT(read_back(p1, a, SIZE, &err), -EIO);
	}

	/* Another name is cut by content, as before. */
	part_name = "criu/pages-7.img.bak";
	{
		_cleanup_cjson_ cJSON *p3 = store("pg3", NULL, a, SIZE, false, &w1);
		part = cJSON_GetArrayItem(p3, 0);
		CHECK(cJSON_GetArraySize(cJSON_GetObjectItem(part, "chunks")) <
		      (int)(SIZE / 16384));
	}
	part_name = "p";
}

TEST(repeats_stored_once)
{
	_cleanup_free_ unsigned char *d = malloc(4 * (512u << 10));
	_cleanup_cjson_ cJSON *p = NULL;
	struct al_error err = AL_ERROR_INIT;
	uint64_t w = 0;

	fill(d, 512u << 10, 3);
	for (int i = 1; i < 4; i++)
		memcpy(d + i * (512u << 10), d, 512u << 10);
	p = store("r1", NULL, d, 4 * (512u << 10), true, &w);
	/* A copy's first chunk ends where the content says, so it is shared too. */
	CHECK(w < 2 * (512u << 10));
	CHECK_INT(read_back(p, d, 4 * (512u << 10), &err), 0);
}

TEST(damage_is_named)
{
	_cleanup_free_ unsigned char *d = malloc(SIZE);
	_cleanup_cjson_ cJSON *p = NULL;
	struct al_error err = AL_ERROR_INIT;
	char path[PATH_MAX];
	unsigned char byte = 0;
	uint64_t w = 0;
	int fd;

	fill(d, SIZE, 4);
	p = store("d1", NULL, d, SIZE, true, &w);
	snprintf(path, sizeof(path), "%s/packs/d1.pack", dir);
	fd = open(path, O_RDWR | O_CLOEXEC);
	CHECK(fd >= 0 && pread(fd, &byte, 1, SIZE / 2) == 1);
	byte ^= 0x40;
	CHECK(pwrite(fd, &byte, 1, SIZE / 2) == 1);
	close(fd);
	CHECK_INT(read_back(p, d, SIZE, &err), -EIO);
	CHECK(strstr(err.msg, "chunk") != NULL);
	/* Truncated: refused too. */
	CHECK(truncate(path, SIZE / 3) == 0);
	CHECK(read_back(p, d, SIZE, &err) < 0);
}

TEST(uncommitted_pack_goes)
{
	_cleanup_free_ unsigned char *d = malloc(1u << 20);
	_cleanup_cjson_ cJSON *p = NULL;
	uint64_t w = 0;

	fill(d, 1u << 20, 5);
	p = store("u1", NULL, d, 1u << 20, false, &w);
	CHECK(w == 1u << 20);
	CHECK(!pack_exists("u1.pack") && !pack_exists(".tmp-u1.pack"));
}

TEST(sweep)
{
	_cleanup_free_ unsigned char *d = malloc(1u << 20);
	_cleanup_cjson_ cJSON *keep = NULL, *drop = NULL;
	struct chunk_live *live = chunk_live_new();
	uint64_t w = 0;

	fill(d, 1u << 20, 6);
	keep = store("k1", NULL, d, 1u << 20, true, &w);
	fill(d, 1u << 20, 7);
	drop = store("k2", NULL, d, 1u << 20, true, &w);
	CHECK(live != NULL);
	CHECK_INT(chunk_live_add_parts(live, keep), 0);
	/* Everything the earlier cases left, and k2, goes; k1 stays. */
	CHECK(chunk_store_sweep(store_fd, live) >= 1);
	CHECK(pack_exists("k1.pack"));
	CHECK(!pack_exists("k2.pack") && !pack_exists("s1.pack"));
	chunk_live_free(live);
}

/* The pack of chunk i of part 0 of parts. */
static const char *pack_of(const cJSON *parts, int i)
{
	const cJSON *chunks = cJSON_GetObjectItem(cJSON_GetArrayItem(parts, 0), "chunks");

	return cJSON_GetStringValue(cJSON_GetArrayItem(cJSON_GetArrayItem(chunks, i), 2));
}

/* One repack over the snapshots whose parts are given; returns what
 * chunk_repack_copy did, each part remapped, and the packs they do not
 * name swept. */
static int repack(cJSON *const *parts, size_t n, int *moved)
{
	struct al_error err = AL_ERROR_INIT;
	struct chunk_repack *rp = NULL;
	struct chunk_live *live = chunk_live_new();
	int r;

	*moved = 0;
	CHECK_INT(chunk_repack_new(store_fd, &rp, &err), 0);
	for (size_t i = 0; i < n; i++)
		CHECK_INT(chunk_repack_add_parts(rp, parts[i], &err), 0);
	r = chunk_repack_copy(rp, &err);
	for (size_t i = 0; r == 1 && i < n; i++)
		*moved += chunk_repack_remap(rp, parts[i]);
	for (size_t i = 0; i < n; i++)
		CHECK_INT(chunk_live_add_parts(live, parts[i]), 0);
	chunk_store_sweep(store_fd, live);
	chunk_live_free(live);
	chunk_repack_free(rp);
	return r;
}

TEST(repack)
{
	_cleanup_free_ unsigned char *a = malloc(SIZE), *b = malloc(SIZE), *c = malloc(SIZE);
	_cleanup_cjson_ cJSON *p1 = NULL, *p2 = NULL, *p3 = NULL;
	struct al_error err = AL_ERROR_INIT;
	const char *first;
	cJSON *both[2];
	uint64_t w = 0;
	int moved;

	/* a: 3 MiB; b: its first third, then new bytes; c: b with its last
	 * 64 KiB changed.  Once a is gone, two thirds of its pack are dead. */
	fill(a, SIZE, 8);
	memcpy(b, a, SIZE / 3);
	fill(b + SIZE / 3, SIZE - SIZE / 3, 9);
	memcpy(c, b, SIZE);
	fill(c + SIZE - 65536, 65536, 10);
	p1 = store("v1", NULL, a, SIZE, true, &w);
	p2 = store("v2", p1, b, SIZE, true, &w);
	p3 = store("v3", p2, c, SIZE, true, &w);
	CHECK_STR(pack_of(p3, 0), "v1");
	both[0] = p2;
	both[1] = p3;

	/* Every pack live: nothing worth doing, nothing written (the same
	 * parts 600 times over: chunks named many times are counted once). */
	{
		cJSON *all[600];
		for (size_t i = 0; i < AL_ARRAY_SIZE(all); i++)
			all[i] = i % 3 == 0 ? p1 : i % 3 == 1 ? p2 : p3;
		CHECK_INT(repack(all, AL_ARRAY_SIZE(all), &moved), 0);
		CHECK(pack_exists("v1.pack"));
	}
	/* v1 goes: its live third is copied once, both parts point at the
	 * copy, v1.pack is swept, and both read back whole. */
	CHECK_INT(repack(both, 2, &moved), 1);
	CHECK(moved >= 2 * 4);
	CHECK(!pack_exists("v1.pack") && pack_exists("v2.pack") && pack_exists("v3.pack"));
	first = pack_of(p3, 0);
	CHECK(first && !strncmp(first, "repack-", 7));
	CHECK_STR(pack_of(p2, 0), first);
	CHECK_INT(read_back(p2, b, SIZE, &err), 0);
	CHECK_INT(read_back(p3, c, SIZE, &err), 0);
	/* A second collection finds nothing more to do. */
	CHECK_INT(repack(both, 2, &moved), 0);
	CHECK_INT(moved, 0);
}

TEST(repack_leaves_damage_in_place)
{
	_cleanup_free_ unsigned char *a = malloc(SIZE), *b = malloc(SIZE);
	_cleanup_cjson_ cJSON *p1 = NULL, *p2 = NULL;
	struct al_error err = AL_ERROR_INIT;
	char path[PATH_MAX];
	unsigned char byte = 0;
	uint64_t w = 0;
	int fd, moved;

	fill(a, SIZE, 11);
	memcpy(b, a, SIZE / 2);
	fill(b + SIZE / 2, SIZE - SIZE / 2, 12);
	p1 = store("x1", NULL, a, SIZE, true, &w);
	p2 = store("x2", p1, b, SIZE, true, &w);
	/* The first chunk p2 shares from x1 is damaged on disk. */
	CHECK_STR(pack_of(p2, 0), "x1");
	snprintf(path, sizeof(path), "%s/packs/x1.pack", dir);
	fd = open(path, O_RDWR | O_CLOEXEC);
	CHECK(fd >= 0 && pread(fd, &byte, 1, 100) == 1);
	byte ^= 1;
	CHECK(pwrite(fd, &byte, 1, 100) == 1);
	close(fd);
	/* The rest moves; the damaged chunk stays where it was, in the pack it
	 * keeps, and the part is refused as before, naming it. */
	CHECK_INT(repack(&p2, 1, &moved), 1);
	CHECK(moved > 0);
	CHECK_STR(pack_of(p2, 0), "x1");
	CHECK(!strncmp(pack_of(p2, 1), "repack-", 7));
	CHECK(pack_exists("x1.pack"));
	CHECK_INT(read_back(p2, b, SIZE, &err), -EIO);
	CHECK(strstr(err.msg, "corrupted") != NULL);
}

int main(void)
{
	char tmpl[] = "/tmp/airlock-test-chunks-XXXXXX";
	char packs[PATH_MAX];
	struct al_error err = AL_ERROR_INIT;

	if (!mkdtemp(tmpl))
		return 1;
	snprintf(dir, sizeof(dir), "%s", tmpl);
	snprintf(packs, sizeof(packs), "%s/packs", dir);
	store_fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (store_fd < 0 || mkdir(packs, 0700) < 0)
		return 1;
	RUN(round_trip_and_lineage);
	RUN(page_images_cut_by_page);
	RUN(repeats_stored_once);
	RUN(damage_is_named);
	RUN(uncommitted_pack_goes);
	RUN(sweep);
	RUN(repack);
	RUN(repack_leaves_damage_in_place);
	close(store_fd);
	if (al_rm_rf(dir, &err) < 0)
		fprintf(stderr, "%s\n", err.msg);
	return test_main_result();
}
