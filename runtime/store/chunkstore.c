/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Chunks and packs of the snapshot store (chunkstore.h, docs/snapshot-format.md).
 *
 * Incremental snapshots: parts are cut into content-defined chunks (a gear
 * rolling hash, so an insertion shifts only the chunks around it) and a chunk
 * the parent snapshot already holds is not written again.  This replaces CRIU's own
 * parent-image mechanism, which needs soft-dirty page tracking
 * (CONFIG_MEM_SOFT_DIRTY) that this machine's kernel does not have.
 */
#include "chunkstore.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/evp.h>
#include <openssl/sha.h>

#include "cleanup.h"
#include "json.h"
#include "log.h"
#include "strv.h"
#include "util.h"

/* Content-defined chunking: cut where the rolling hash has 16 low zero bits,
 * never below 16 KiB or above 256 KiB, so chunks average about 80 KiB
 * (casync's, 64 KiB).  Until packs they averaged 20 KiB (4 to 64 KiB): a
 * snapshot of 200 MiB listed 10,200 chunks; it now lists about 2,600, and
 * hashes, compares and reads back in larger pieces. */
#define CHUNK_MIN 16384u
#define CHUNK_MAX 262144u
#define CHUNK_MASK ((1u << 16) - 1)
#define CHUNK_BUF (4u << 20)

/*
 * CRIU's page images (criu/pages-N.img) are cut every PAGES_CHUNK bytes
 * instead: they hold a process's present pages, 4 KiB each, in address
 * order, and a second dump of a process whose set of pages did not change
 * puts every page at the same offset.  A page that changed then costs one
 * chunk of four pages; with content-defined cuts (80 KiB on average, and a
 * changed page may move a cut) it cost 80 to 160 KiB, so that 1% of a
 * process's pages changed at random places rewrote a quarter of its
 * image.  A page added or dropped shifts the rest of that process's image
 * (CRIU gives no hint to realign on without parsing its pagemap), which
 * then is written again.  No rolling hash is computed either.
 */
#define PAGES_CHUNK 16384u

static uint64_t gear[256];
static pthread_once_t gear_once = PTHREAD_ONCE_INIT;

/* Fixed pseudo-random table (splitmix64): chunk boundaries must not change
 * between runs, or nothing would ever be shared. */
static void gear_init(void)
{
	uint64_t x = 0x6169726c6f636b31ULL;

	for (size_t i = 0; i < 256; i++) {
		uint64_t z = (x += 0x9e3779b97f4a7c15ULL);
		z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
		z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
		gear[i] = z ^ (z >> 31);
	}
}

/*
 * The hash is shifted left once per byte, so a byte is out of it 64 bytes
 * later: at the first place a cut may fall (after CHUNK_MIN bytes) it
 * depends only on the 64 bytes before.  Rolling from there rather than from
 * the chunk's start gives the very same cuts for less work.
 */
static size_t chunk_cut(const unsigned char *p, size_t n)
{
	uint64_t h = 0;
	size_t max = n < CHUNK_MAX ? n : CHUNK_MAX;

	if (n <= CHUNK_MIN)
		return n;
	for (size_t i = CHUNK_MIN - 64; i < CHUNK_MIN - 1; i++)
		h = (h << 1) + gear[p[i]];
	for (size_t i = CHUNK_MIN - 1; i < max; i++) {
		h = (h << 1) + gear[p[i]];
		if (!(h & CHUNK_MASK))
			return i + 1;
	}
	return max;
}

static inline void md_ctx_freep(EVP_MD_CTX **c)
{
	if (*c)
		EVP_MD_CTX_free(*c);
}
#define _cleanup_md_ _cleanup_(md_ctx_freep)

static void hex_of(const unsigned char *md, char out[65])
{
	static const char digits[] = "0123456789abcdef";

	for (size_t i = 0; i < 32; i++) {
		out[2 * i] = digits[md[i] >> 4];
		out[2 * i + 1] = digits[md[i] & 15];
	}
	out[64] = '\0';
}

static bool valid_hex64(const char *s)
{
	size_t n = 0;

	for (; s && s[n]; n++)
		if (!((s[n] >= '0' && s[n] <= '9') || (s[n] >= 'a' && s[n] <= 'f')))
			return false;
	return n == 64;
}

static int open_dir_at(int dirfd, const char *name, struct al_error *err)
{
	int fd = openat(dirfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);

	if (fd < 0)
		return al_error_errno(err, "open %s", name);
	return fd;
}

/* ---- chunks and packs ----------------------------------------------------------------------- */

/*
 * A snapshot writes the chunks it adds, one after another, into one pack
 * file of its own, packs/ID.pack, and a part lists each of its chunks as
 * [sha256, length, pack, offset].  The store used to keep one file per
 * chunk (chunks/ab/<sha256>, still read): a 200 MiB snapshot made some
 * 10,200 files, and on this machine's ext4 (no journal) each creation
 * after a large removal scanned for an inode not "recently deleted", up to
 * 0.5 ms apiece (6.5 s for the snapshot); a restore opened as many files.
 *
 * A chunk is shared with the snapshot's parent (the sandbox's previous
 * snapshot, or the one it was restored from: every snapshot lists all of
 * its chunks, so the parent's list covers the whole lineage) and with
 * earlier chunks of the same snapshot, after a byte-for-byte comparison:
 * a damaged chunk is written again rather than inherited.
 */

struct pack {
	char name[32]; /* the id of the snapshot that wrote it */
	int fd;        /* -1 until first needed */
	/* The whole pack mapped, once a read wanted it (pack_bytes). */
	unsigned char *map;
	size_t map_len;
};

/* Where a chunk's bytes lie; len 0 marks a free slot of the index. */
struct chunk_loc {
	unsigned char digest[SHA256_DIGEST_LENGTH];
	uint32_t len;
	uint32_t pack; /* index into chunk_store.packs */
	uint64_t offset;
};

/* A page image of the parent (see PAGES_CHUNK): where its chunk i lies, and
 * at which offset of the image it starts. */
struct parent_pages {
	char *name;
	struct chunk_loc *locs;
	uint64_t *pos;
	size_t n;
};

static bool pages_image(const char *name);

struct chunk_store {
	int store_fd;  /* borrowed */
	int chunks_fd; /* chunks/ of a store written by an earlier version, or -1 */
	int packs_fd;
	struct pack *packs;
	size_t n_packs;
	size_t n_open, next_close; /* read fds open among packs, and which to close next */
	/* Only while taking a snapshot: */
	int own; /* its own pack in packs, or -1 */
	uint64_t own_size;
	bool own_named;          /* renamed from .tmp-ID.pack to ID.pack */
	bool own_kept;           /* the snapshot is committed: keep the pack */
	struct chunk_loc *index; /* open addressing, by the digest's first bytes */
	size_t index_cap, index_n;
	unsigned char *cmp_buf;            /* CHUNK_MAX bytes */
	struct parent_pages *parent_pages; /* the parent's page images, by name */
	size_t n_parent_pages;
};

/* Read fds a chunk_store keeps open at once (a snapshot's own pack aside). */
#define PACK_FDS_MAX 64

/* A chunk as a part lists it; pack < 0 for the one-file-per-chunk store. */
struct chunk_ref {
	const char *hex;
	size_t len;
	int pack;
	uint64_t offset;
};

static void pack_file_name(const struct pack *p, bool tmp, char *out, size_t len)
{
	snprintf(out, len, "%s%s.pack", tmp ? ".tmp-" : "", p->name);
}

static void chunk_store_close(struct chunk_store *cs)
{
	for (size_t i = 0; i < cs->n_packs; i++) {
		if (cs->packs[i].fd >= 0)
			close(cs->packs[i].fd);
		if (cs->packs[i].map)
			munmap(cs->packs[i].map, cs->packs[i].map_len);
	}
	/* A snapshot that did not commit leaves no pack behind. */
	if (cs->own >= 0 && !cs->own_kept && cs->packs_fd >= 0) {
		char file[48];
		pack_file_name(&cs->packs[cs->own], !cs->own_named, file, sizeof(file));
		unlinkat(cs->packs_fd, file, 0);
	}
	free(cs->packs);
	free(cs->index);
	free(cs->cmp_buf);
	for (size_t i = 0; i < cs->n_parent_pages; i++) {
		free(cs->parent_pages[i].name);
		free(cs->parent_pages[i].locs);
		free(cs->parent_pages[i].pos);
	}
	free(cs->parent_pages);
	if (cs->chunks_fd >= 0)
		close(cs->chunks_fd);
	if (cs->packs_fd >= 0)
		close(cs->packs_fd);
}

#define CHUNK_STORE_INIT                                                                           \
	{                                                                                          \
		.chunks_fd = -1, .packs_fd = -1, .own = -1                                         \
	}

static int store_open(int store_fd, struct chunk_store *cs, struct al_error *err)
{
	cs->store_fd = store_fd;
	cs->packs_fd = open_dir_at(store_fd, "packs", err);
	if (cs->packs_fd < 0)
		return cs->packs_fd;
	cs->chunks_fd = openat(store_fd, "chunks", O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (cs->chunks_fd < 0 && errno != ENOENT)
		return al_error_errno(err, "open chunks");
	return 0;
}

/* The index of pack name in cs->packs (added, not yet opened, if new);
 * -EINVAL if name cannot be a snapshot id. */
static int pack_slot(struct chunk_store *cs, const char *name)
{
	struct pack *p;

	for (size_t i = 0; i < cs->n_packs; i++)
		if (!strcmp(cs->packs[i].name, name))
			return (int)i;
	if (!al_valid_name(name) || name[0] == '.' || strlen(name) >= sizeof(p->name) ||
	    cs->n_packs >= INT_MAX)
		return -EINVAL;
	p = reallocarray(cs->packs, cs->n_packs + 1, sizeof(*p));
	if (!p)
		return -ENOMEM;
	cs->packs = p;
	p = &cs->packs[cs->n_packs];
	snprintf(p->name, sizeof(p->name), "%s", name);
	p->fd = -1;
	p->map = NULL;
	p->map_len = 0;
	return (int)cs->n_packs++;
}

static int pack_read(struct chunk_store *cs, size_t slot, uint64_t offset, size_t len,
                     unsigned char *buf, struct al_error *err)
{
	struct pack *p = &cs->packs[slot];
	char file[48];
	size_t done = 0;

	pack_file_name(p, false, file, sizeof(file));
	if (p->fd < 0) {
		/* A long lineage names many packs: keep few of them open. */
		if (cs->n_open >= PACK_FDS_MAX) {
			for (size_t i = 0; i < cs->n_packs; i++) {
				size_t k = (cs->next_close + i) % cs->n_packs;
				if ((int)k != cs->own && cs->packs[k].fd >= 0) {
					close(cs->packs[k].fd);
					cs->packs[k].fd = -1;
					cs->n_open--;
					cs->next_close = k + 1;
					break;
				}
			}
		}
		p->fd = openat(cs->packs_fd, file, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
		if (p->fd < 0 && errno == ENOENT)
			return al_error_set(err, ENOENT, "pack %s is missing", file);
		if (p->fd < 0)
			return al_error_errno(err, "open pack %s", file);
		cs->n_open++;
	}
	while (done < len) {
		ssize_t n = pread(p->fd, buf + done, len - done, (off_t)(offset + done));
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return al_error_errno(err, "read pack %s", file);
		if (n == 0)
			return al_error_set(err, EIO, "pack %s is truncated before byte %llu", file,
			                    (unsigned long long)(offset + len));
		done += (size_t)n;
	}
	return 0;
}

/*
 * The len bytes at offset of a pack: a pointer into the pack mapped whole
 * when it can be (a committed pack never changes), else read into buf.  A
 * restore of 200 MiB then hashes and copies each byte where it lies in the
 * page cache instead of copying it into a buffer first.  The snapshot's own
 * pack, still growing, is always read.
 */
static int pack_bytes(struct chunk_store *cs, size_t slot, uint64_t offset, size_t len,
                      unsigned char *buf, const unsigned char **out, struct al_error *err)
{
	struct pack *p = &cs->packs[slot];
	struct stat st;
	int r;

	if (!p->map && (int)slot != cs->own) {
		/* Opened (and closed again when too many are) by pack_read. */
		r = pack_read(cs, slot, offset, len, buf, err);
		if (r < 0)
			return r;
		*out = buf;
		if (fstat(p->fd, &st) == 0 && st.st_size > 0 && (uint64_t)st.st_size <= SIZE_MAX) {
			void *m = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_SHARED, p->fd, 0);
			if (m != MAP_FAILED) {
				p->map = m;
				p->map_len = (size_t)st.st_size;
			}
		}
		return 0;
	}
	if (p->map) {
		char file[48];
		if (offset > p->map_len || len > p->map_len - offset) {
			pack_file_name(p, false, file, sizeof(file));
			return al_error_set(err, EIO, "pack %s is truncated before byte %llu", file,
			                    (unsigned long long)(offset + len));
		}
		*out = p->map + offset;
		return 0;
	}
	r = pack_read(cs, slot, offset, len, buf, err);
	*out = buf;
	return r;
}

/* [sha256, length] (storage "chunks") or [sha256, length, pack, offset]
 * (storage "packed"); -EINVAL when malformed. */
static int chunk_ref_parse(struct chunk_store *cs, const cJSON *item, bool packed,
                           struct chunk_ref *ref)
{
	const cJSON *hex = cJSON_GetArrayItem(item, 0), *len = cJSON_GetArrayItem(item, 1);

	if (!cJSON_IsString(hex) || !valid_hex64(hex->valuestring) ||
	    !al_json_is_count(len, CHUNK_MAX) || len->valuedouble < 1)
		return -EINVAL;
	*ref = (struct chunk_ref){hex->valuestring, (size_t)len->valuedouble, -1, 0};
	if (packed) {
		const cJSON *pack = cJSON_GetArrayItem(item, 2), *off = cJSON_GetArrayItem(item, 3);
		if (!cJSON_IsString(pack) || !al_json_is_count(off, AL_JSON_COUNT_MAX))
			return -EINVAL;
		ref->pack = pack_slot(cs, pack->valuestring);
		if (ref->pack < 0)
			return ref->pack;
		ref->offset = (uint64_t)off->valuedouble;
	}
	return 0;
}

/* Read a chunk into buf; with verify, also check it against its sha256 (a
 * caller that hashes the whole part only does so to say which chunk is
 * damaged, see read_part). */
static int chunk_get(struct chunk_store *cs, const struct chunk_ref *ref, unsigned char *buf,
                     bool verify, const unsigned char **data, struct al_error *err)
{
	char got[65];
	int r;

	*data = buf;
	if (ref->pack >= 0) {
		r = pack_bytes(cs, (size_t)ref->pack, ref->offset, ref->len, buf, data, err);
		if (r < 0)
			return al_error_prefix(err, "chunk %s", ref->hex);
	} else {
		char path[80];
		_cleanup_close_ int fd = -1;
		struct stat st;
		size_t done = 0;
		snprintf(path, sizeof(path), "%.2s/%s", ref->hex, ref->hex);
		fd = cs->chunks_fd < 0
		         ? -1
		         : openat(cs->chunks_fd, path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
		if (fd < 0)
			return al_error_set(err, ENOENT, "chunk %s is missing", ref->hex);
		if (fstat(fd, &st) < 0 || (uint64_t)st.st_size != ref->len)
			return al_error_set(err, EIO, "chunk %s is truncated or has the wrong size",
			                    ref->hex);
		while (done < ref->len) {
			ssize_t n = read(fd, buf + done, ref->len - done);
			if (n < 0 && errno == EINTR)
				continue;
			if (n <= 0)
				return al_error_set(err, EIO, "chunk %s is truncated", ref->hex);
			done += (size_t)n;
		}
	}
	if (!verify)
		return 0;
	al_sha256_hex(*data, ref->len, got);
	if (strcmp(got, ref->hex))
		return al_error_set(err, EIO, "chunk %s is corrupted (its sha256 is %s)", ref->hex,
		                    got);
	return 0;
}

/* The same, its bytes in buf. */
static int chunk_read(struct chunk_store *cs, const struct chunk_ref *ref, unsigned char *buf,
                      bool verify, struct al_error *err)
{
	const unsigned char *data;
	int r = chunk_get(cs, ref, buf, verify, &data, err);

	if (r == 0 && data != buf)
		memcpy(buf, data, ref->len);
	return r;
}

static int hex_digit(char c)
{
	return c >= '0' && c <= '9' ? c - '0' : c - 'a' + 10;
}

/* hex: 64 lowercase hex digits (valid_hex64). */
static void digest_of_hex(const char *hex, unsigned char out[SHA256_DIGEST_LENGTH])
{
	for (size_t i = 0; i < SHA256_DIGEST_LENGTH; i++)
		out[i] = (unsigned char)(hex_digit(hex[2 * i]) << 4 | hex_digit(hex[2 * i + 1]));
}

static struct chunk_loc *index_find(const struct chunk_store *cs, const unsigned char *digest)
{
	uint64_t key;

	if (!cs->index_cap)
		return NULL;
	memcpy(&key, digest, sizeof(key)); /* sha256 bits are as good as any hash */
	for (size_t i = key & (cs->index_cap - 1);; i = (i + 1) & (cs->index_cap - 1)) {
		struct chunk_loc *e = &cs->index[i];
		if (!e->len)
			return NULL;
		if (!memcmp(e->digest, digest, sizeof(e->digest)))
			return e;
	}
}

/* Record where a chunk lies; a chunk already known keeps its place. */
static int index_add(struct chunk_store *cs, const struct chunk_loc *loc)
{
	if ((cs->index_n + 1) * 4 > cs->index_cap * 3) {
		size_t cap = cs->index_cap ? cs->index_cap * 2 : 1024;
		struct chunk_loc *old = cs->index, *grown = calloc(cap, sizeof(*grown));
		size_t old_cap = cs->index_cap;
		if (!grown)
			return -ENOMEM;
		cs->index = grown;
		cs->index_cap = cap;
		cs->index_n = 0;
		for (size_t i = 0; i < old_cap; i++)
			if (old[i].len)
				(void)index_add(cs, &old[i]);
		free(old);
	}
	if (index_find(cs, loc->digest))
		return 0;
	{
		uint64_t key;
		size_t i;
		memcpy(&key, loc->digest, sizeof(key));
		for (i = key & (cs->index_cap - 1); cs->index[i].len;
		     i = (i + 1) & (cs->index_cap - 1))
			;
		cs->index[i] = *loc;
		cs->index_n++;
	}
	return 0;
}

/* Every packed chunk of a parent's part becomes a place to share from. */
int chunk_store_index_part(struct chunk_store *cs, const cJSON *part, struct al_error *err)
{
	const char *storage = al_json_str(part, "storage"), *name = al_json_str(part, "name");
	const cJSON *item, *chunks = cJSON_GetObjectItemCaseSensitive(part, "chunks");
	struct parent_pages *pp = NULL;
	uint64_t pos = 0;

	if (!storage || strcmp(storage, "packed"))
		return 0;
	/* A page image is also kept in order, for the next one of that name. */
	if (name && pages_image(name) && cJSON_GetArraySize(chunks) > 0) {
		size_t n = (size_t)cJSON_GetArraySize(chunks);
		struct parent_pages *v =
		    reallocarray(cs->parent_pages, cs->n_parent_pages + 1, sizeof(*v));
		if (!v)
			return al_error_set(err, ENOMEM, "out of memory");
		cs->parent_pages = v;
		pp = &v[cs->n_parent_pages];
		*pp = (struct parent_pages){.name = strdup(name),
		                            .locs = calloc(n, sizeof(*pp->locs)),
		                            .pos = calloc(n, sizeof(*pp->pos))};
		cs->n_parent_pages++;
		if (!pp->name || !pp->locs || !pp->pos)
			return al_error_set(err, ENOMEM, "out of memory");
	}
	cJSON_ArrayForEach(item, chunks)
	{
		struct chunk_ref ref;
		struct chunk_loc loc;
		int r = chunk_ref_parse(cs, item, true, &ref);
		if (r == -EINVAL) {
			pp = NULL; /* positions unknown from here: not used at all */
			if (cs->n_parent_pages)
				cs->parent_pages[cs->n_parent_pages - 1].n = 0;
			continue;
		}
		if (r == 0) {
			digest_of_hex(ref.hex, loc.digest);
			loc.len = (uint32_t)ref.len;
			loc.pack = (uint32_t)ref.pack;
			loc.offset = ref.offset;
			r = index_add(cs, &loc);
			if (pp) {
				pp->locs[pp->n] = loc;
				pp->pos[pp->n++] = pos;
			}
			pos += ref.len;
		}
		if (r < 0)
			return al_error_set(err, ENOMEM, "out of memory");
	}
	return 0;
}

/* Append a new chunk to the snapshot's own pack (made on first use). */
static int own_pack_append(struct chunk_store *cs, const unsigned char *data, size_t len,
                           uint64_t *offset, struct al_error *err)
{
	struct pack *p = &cs->packs[cs->own];
	char file[48];
	int r;

	pack_file_name(p, true, file, sizeof(file));
	if (p->fd < 0) {
		p->fd = openat(cs->packs_fd, file, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
		if (p->fd < 0)
			return al_error_errno(err, "create packs/%s", file);
	}
	r = al_write_all(p->fd, data, len);
	if (r < 0) {
		errno = -r;
		return al_error_errno(err, "write packs/%s", file);
	}
	*offset = cs->own_size;
	cs->own_size += len;
	return 0;
}

/* Give the snapshot's pack, if it has one, its final name. */
static int own_pack_name(struct chunk_store *cs, struct al_error *err)
{
	char tmp[48], file[48];

	if (cs->own < 0 || cs->packs[cs->own].fd < 0)
		return 0;
	pack_file_name(&cs->packs[cs->own], true, tmp, sizeof(tmp));
	pack_file_name(&cs->packs[cs->own], false, file, sizeof(file));
	/* Its bytes durable before its name, its name before any record names it. */
	if (fdatasync(cs->packs[cs->own].fd) < 0)
		return al_error_errno(err, "fsync packs/%s", tmp);
	if (renameat(cs->packs_fd, tmp, cs->packs_fd, file) < 0)
		return al_error_errno(err, "rename packs/%s", tmp);
	cs->own_named = true;
	if (fsync(cs->packs_fd) < 0)
		return al_error_errno(err, "fsync packs/");
	return 0;
}

struct part_writer {
	struct chunk_store *cs;
	uint64_t size;    /* bytes of this part */
	uint64_t written; /* bytes of new chunks this part added to the store */
	cJSON *chunks;    /* [[sha256, length, pack, offset], ...] */
};

static int store_chunk(struct part_writer *pw, const unsigned char *data, size_t len,
                       struct al_error *err)
{
	struct chunk_store *cs = pw->cs;
	struct chunk_loc loc = {.len = (uint32_t)len}, *known;
	struct al_error lerr = AL_ERROR_INIT;
	const unsigned char *old;
	char hex[65];
	cJSON *item;
	int r;

	al_sha256_hex(data, len, hex);
	digest_of_hex(hex, loc.digest);
	known = index_find(cs, loc.digest);
	if (known && known->len == len &&
	    pack_bytes(cs, known->pack, known->offset, len, cs->cmp_buf, &old, &lerr) == 0 &&
	    !memcmp(old, data, len)) {
		loc = *known; /* already stored: the point of it all */
	} else {
		r = own_pack_append(cs, data, len, &loc.offset, err);
		if (r < 0)
			return r;
		loc.pack = (uint32_t)cs->own;
		pw->written += len;
		/* A damaged copy is not offered again. */
		if (known)
			*known = loc;
		else if (index_add(cs, &loc) < 0)
			return al_error_set(err, ENOMEM, "out of memory");
	}
	item = cJSON_CreateArray();
	if (!item || !cJSON_AddItemToArray(pw->chunks, item) ||
	    !cJSON_AddItemToArray(item, cJSON_CreateString(hex)) ||
	    !cJSON_AddItemToArray(item, cJSON_CreateNumber((double)len)) ||
	    !cJSON_AddItemToArray(item, cJSON_CreateString(cs->packs[loc.pack].name)) ||
	    !cJSON_AddItemToArray(item, cJSON_CreateNumber((double)loc.offset)))
		return al_error_set(err, ENOMEM, "out of memory");
	return 0;
}

/*
 * A block of a page image that is byte for byte the parent's block at the
 * same place takes the parent's chunk as it is, without being hashed: a
 * process whose pages mostly did not change has its image compared
 * (memcmp, about ten times as fast as SHA-256 here) rather than hashed.
 * The bytes are those stored under the parent's sha256; had the parent's
 * copy been damaged on disk, the new record would name a sha256 its bytes
 * do not have, and a restore would refuse it, naming the chunk, as it
 * refuses the parent.  1: taken; 0: not (store it as any other).
 */
static int reuse_parent_block(struct part_writer *pw, const struct parent_pages *pp, uint64_t off,
                              const unsigned char *data, size_t len, struct al_error *err)
{
	struct chunk_store *cs = pw->cs;
	struct al_error lerr = AL_ERROR_INIT;
	const unsigned char *old;
	const struct chunk_loc *loc;
	size_t i = (size_t)(off / PAGES_CHUNK);
	char hex[65];
	cJSON *item;

	if (!pp || i >= pp->n || pp->pos[i] != off || pp->locs[i].len != len)
		return 0;
	loc = &pp->locs[i];
	if (pack_bytes(cs, loc->pack, loc->offset, len, cs->cmp_buf, &old, &lerr) < 0 ||
	    memcmp(old, data, len))
		return 0;
	hex_of(loc->digest, hex);
	item = cJSON_CreateArray();
	if (!item || !cJSON_AddItemToArray(pw->chunks, item) ||
	    !cJSON_AddItemToArray(item, cJSON_CreateString(hex)) ||
	    !cJSON_AddItemToArray(item, cJSON_CreateNumber((double)len)) ||
	    !cJSON_AddItemToArray(item, cJSON_CreateString(cs->packs[loc->pack].name)) ||
	    !cJSON_AddItemToArray(item, cJSON_CreateNumber((double)loc->offset)))
		return al_error_set(err, ENOMEM, "out of memory");
	return 1;
}

/* The sha256 of a whole part, read from its file with pread (so that it
 * can run next to the chunking, which reads the same fd). */
struct part_hash {
	int fd;
	const unsigned char *map; /* the part mapped (map_len bytes), or NULL: read fd */
	size_t map_len;
	uint64_t size;
	char hex[65];
	int error; /* errno, or 0 */
};

static void *part_hash_run(void *arg)
{
	struct part_hash *h = arg;
	_cleanup_md_ EVP_MD_CTX *md = EVP_MD_CTX_new();
	_cleanup_free_ unsigned char *buf = malloc(CHUNK_MAX);
	unsigned char digest[SHA256_DIGEST_LENGTH];

	h->size = 0;
	h->error = 0;
	if (!md || !buf || EVP_DigestInit_ex(md, EVP_sha256(), NULL) != 1) {
		h->error = ENOMEM;
		return NULL;
	}
	for (; h->map && h->size < h->map_len;) {
		size_t n = h->map_len - h->size < CHUNK_BUF ? h->map_len - h->size : CHUNK_BUF;
		EVP_DigestUpdate(md, h->map + h->size, n);
		h->size += n;
	}
	while (!h->map) {
		ssize_t n = pread(h->fd, buf, CHUNK_MAX, (off_t)h->size);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			h->error = errno;
			return NULL;
		}
		if (n == 0)
			break;
		EVP_DigestUpdate(md, buf, (size_t)n);
		h->size += (uint64_t)n;
	}
	EVP_DigestFinal_ex(md, digest, NULL);
	hex_of(digest, h->hex);
	return NULL;
}

/* Past this size a part's own hash runs on a second thread. */
#define PART_HASH_THREAD_MIN (1u << 20)

/* Whether part name is one of CRIU's page images (see PAGES_CHUNK). */
static bool pages_image(const char *name)
{
	const char *base = strrchr(name, '/');
	size_t n;

	base = base ? base + 1 : name;
	n = strlen(base);
	return !strncmp(base, "pages-", 6) && n > 10 && !strcmp(base + n - 4, ".img");
}

/* Cut the part in fd (a regular file) into chunks; adds its JSON object. */
static int add_chunked_part(struct chunk_store *cs, const char *name, int fd, cJSON *parts,
                            uint64_t *written, struct al_error *err)
{
	_cleanup_free_ unsigned char *buf = malloc(CHUNK_BUF);
	_cleanup_cjson_ cJSON *chunks = NULL;
	struct part_writer pw = {.cs = cs};
	struct part_hash hash = {.fd = fd};
	pthread_t hasher;
	bool threaded = false, eof = false, paged = pages_image(name);
	const struct parent_pages *parent = NULL;
	unsigned char *map = NULL;
	size_t have = 0, map_len = 0;
	struct stat st;
	cJSON *part;
	int r = 0;

	if (!buf)
		return al_error_set(err, ENOMEM, "out of memory");
	part = cJSON_CreateObject();
	if (!part)
		return al_error_set(err, ENOMEM, "out of memory");
	cJSON_AddItemToArray(parts, part);
	cJSON_AddStringToObject(part, "name", name);
	cJSON_AddStringToObject(part, "storage", "packed");
	chunks = pw.chunks = cJSON_CreateArray();
	if (!chunks)
		return al_error_set(err, ENOMEM, "out of memory");
	/* A large part is hashed whole on one core while the other cuts and
	 * hashes its chunks: the two passes take about as long. */
	if (fstat(fd, &st) == 0 && S_ISREG(st.st_mode) && st.st_size >= PART_HASH_THREAD_MIN &&
	    (uint64_t)st.st_size <= SIZE_MAX) {
		/* Mapped rather than read: both passes take its bytes where they
		 * lie (a tmpfs's or the page cache's pages), not copied twice
		 * into buffers first (a sixth of the CPU time of 200 MiB). */
		map = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_SHARED, fd, 0);
		if (map == MAP_FAILED) {
			map = NULL;
		} else {
			map_len = (size_t)st.st_size;
			(void)madvise(map, map_len, MADV_SEQUENTIAL);
			hash.map = map;
			hash.map_len = map_len;
		}
		threaded = pthread_create(&hasher, NULL, part_hash_run, &hash) == 0;
	}

	for (size_t i = 0; paged && i < cs->n_parent_pages; i++)
		if (!strcmp(cs->parent_pages[i].name, name))
			parent = &cs->parent_pages[i];
	for (size_t off = 0; map && off < map_len && r == 0;) {
		size_t left = map_len - off;
		size_t cut = !paged               ? chunk_cut(map + off, left)
		             : left > PAGES_CHUNK ? PAGES_CHUNK
		                                  : left;
		r = paged ? reuse_parent_block(&pw, parent, off, map + off, cut, err) : 0;
		if (r == 0)
			r = store_chunk(&pw, map + off, cut, err);
		else if (r > 0)
			r = 0;
		if (r < 0)
			r = al_error_prefix(err, "part %s", name);
		pw.size += cut;
		off += cut;
	}
	while (!map && r == 0) {
		size_t off = 0;
		while (!eof && have < CHUNK_BUF) {
			ssize_t n = read(fd, buf + have, CHUNK_BUF - have);
			if (n < 0 && errno == EINTR)
				continue;
			if (n < 0) {
				r = al_error_errno(err, "read part %s", name);
				break;
			}
			if (n == 0)
				eof = true;
			have += (size_t)n;
		}
		if (r < 0 || have == 0)
			break;
		while (off < have && (have - off >= CHUNK_MAX || eof)) {
			size_t cut = !paged                     ? chunk_cut(buf + off, have - off)
			             : have - off > PAGES_CHUNK ? PAGES_CHUNK
			                                        : have - off;
			r = store_chunk(&pw, buf + off, cut, err);
			if (r < 0) {
				r = al_error_prefix(err, "part %s", name);
				break;
			}
			pw.size += cut;
			off += cut;
		}
		memmove(buf, buf + off, have - off);
		have -= off;
		if (eof && have == 0)
			break;
	}
	if (threaded)
		pthread_join(hasher, NULL);
	else if (r == 0)
		part_hash_run(&hash);
	if (map)
		munmap(map, map_len);
	if (r < 0)
		return r;
	if (hash.error) {
		errno = hash.error;
		return al_error_errno(err, "read part %s", name);
	}
	if (hash.size != pw.size)
		return al_error_set(err, EIO, "part %s changed while it was stored", name);
	cJSON_AddNumberToObject(part, "size", (double)pw.size);
	cJSON_AddStringToObject(part, "sha256", hash.hex);
	cJSON_AddItemToObject(part, "chunks", TAKE_PTR(chunks));
	*written += pw.written;
	return 0;
}

static int sha256_fd(int fd, char hex[65], uint64_t *size, struct al_error *err)
{
	_cleanup_md_ EVP_MD_CTX *md = EVP_MD_CTX_new();
	unsigned char digest[SHA256_DIGEST_LENGTH];
	char buf[65536];
	uint64_t total = 0;

	if (!md || EVP_DigestInit_ex(md, EVP_sha256(), NULL) != 1)
		return al_error_set(err, ENOMEM, "out of memory");
	for (;;) {
		ssize_t n = read(fd, buf, sizeof(buf));
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return al_error_errno(err, "read");
		if (n == 0)
			break;
		EVP_DigestUpdate(md, buf, (size_t)n);
		total += (uint64_t)n;
	}
	EVP_DigestFinal_ex(md, digest, NULL);
	hex_of(digest, hex);
	*size = total;
	return 0;
}

/* ---- reading a snapshot back, verified --------------------------------------------------------
 */

/* A chunked part whose bytes do not hash to its sha256: which chunk is
 * damaged?  Only reached on a failed restore. */
static int find_damaged_chunk(struct chunk_store *cs, const char *name, const cJSON *chunks,
                              bool packed, unsigned char *buf, struct al_error *err)
{
	const cJSON *item;
	int r;

	cJSON_ArrayForEach(item, chunks)
	{
		struct chunk_ref ref;
		if (chunk_ref_parse(cs, item, packed, &ref) < 0)
			return al_error_set(err, EINVAL, "part %s: malformed chunk list", name);
		r = chunk_read(cs, &ref, buf, true, err);
		if (r < 0)
			return al_error_prefix(err, "part %s", name);
	}
	return 0;
}

/*
 * A large part is read on two threads: one writes every chunk into out_fd
 * and checks one in three against its sha256, the other checks the rest
 * (a sha256 pass costs about twice the copy).  Both take the bytes where
 * they lie in the mapped pack (pack_bytes).  Two threads each writing half
 * the chunks at their places were slower: their writes to one tmpfs file
 * wait for each other.
 */
static int pwrite_all(int fd, const unsigned char *buf, size_t len, off_t off)
{
	while (len) {
		ssize_t n = pwrite(fd, buf, len, off);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return n < 0 ? -errno : -EIO;
		buf += n;
		len -= (size_t)n;
		off += n;
	}
	return 0;
}

struct chunk_share {
	struct chunk_store *cs; /* NULL: the thread opens its own on store_fd */
	int store_fd;
	const cJSON *chunks;
	bool packed;
	int out_fd;     /* -1: check only */
	off_t base;     /* out_fd's offset where the part begins */
	unsigned part;  /* 0: writes all, checks every third chunk; 1: checks the rest */
	uint64_t total; /* the length of all chunks (every share adds them all) */
	pthread_t thread;
	int r;
	struct al_error err;
};

static int chunk_share_copy(struct chunk_share *sh, struct chunk_store *cs, unsigned char *buf)
{
	const cJSON *item;
	size_t i = 0;

	sh->total = 0;
	cJSON_ArrayForEach(item, sh->chunks)
	{
		struct chunk_ref ref;
		int r = chunk_ref_parse(cs, item, sh->packed, &ref);
		if (r < 0)
			return r == -ENOMEM
			           ? al_error_set(&sh->err, ENOMEM, "out of memory")
			           : al_error_set(&sh->err, EINVAL, "malformed chunk list");
		/* The writer checks one chunk in three, the other thread the rest. */
		bool verify = (i++ % 3 == 0) == (sh->part == 0);
		if (verify || sh->part == 0) {
			const unsigned char *data;
			r = chunk_get(cs, &ref, buf, verify, &data, &sh->err);
			if (r < 0)
				return r;
			if (sh->part == 0 && sh->out_fd >= 0 &&
			    pwrite_all(sh->out_fd, data, ref.len, sh->base + (off_t)sh->total) < 0)
				return al_error_errno(&sh->err, "copy");
		}
		sh->total += ref.len;
	}
	return 0;
}

static void *chunk_share_run(void *arg)
{
	struct chunk_share *sh = arg;
	_cleanup_(chunk_store_close) struct chunk_store own = CHUNK_STORE_INIT;
	_cleanup_free_ unsigned char *buf = malloc(CHUNK_MAX);
	struct chunk_store *cs = sh->cs;

	if (!buf) {
		sh->r = al_error_set(&sh->err, ENOMEM, "out of memory");
		return NULL;
	}
	if (!cs) {
		sh->r = store_open(sh->store_fd, &own, &sh->err);
		if (sh->r < 0)
			return NULL;
		cs = &own;
	}
	sh->r = chunk_share_copy(sh, cs, buf);
	return NULL;
}

/*
 * Reassemble (or just check, out_fd < 0) a part; every byte is verified.
 * A small part is hashed once, whole, against its sha256; only when it does
 * not match are its chunks checked against their names, to say which one
 * is damaged.  A part of PART_HASH_THREAD_MIN or more is checked chunk by
 * chunk instead, on both cores (the whole-part hash is one sequential pass,
 * ~100 ms per 200 MiB here): every byte still meets its chunk's sha256, the
 * chunks are the ones snapshot.json lists, and its size is checked, which
 * is what the part's own sha256 would add short of a list rewritten on
 * purpose (and whoever can rewrite snapshot.json can rewrite that too).
 */
static int read_part(struct chunk_store *cs, int snap_fd, const cJSON *part, int out_fd,
                     struct al_error *err)
{
	const char *name = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(part, "name"));
	const char *storage =
	    cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(part, "storage"));
	const char *want = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(part, "sha256"));
	const cJSON *size_j = cJSON_GetObjectItemCaseSensitive(part, "size");
	const cJSON *chunks = cJSON_GetObjectItemCaseSensitive(part, "chunks");
	_cleanup_md_ EVP_MD_CTX *md = EVP_MD_CTX_new();
	unsigned char digest[SHA256_DIGEST_LENGTH];
	_cleanup_free_ unsigned char *buf = malloc(CHUNK_MAX);
	bool packed = storage && !strcmp(storage, "packed"), by_chunk = false;
	uint64_t total = 0;
	char got[65];
	int r;

	if (!name || !storage || !valid_hex64(want) || !al_json_is_count(size_j, AL_JSON_COUNT_MAX))
		return al_error_set(err, EINVAL, "malformed part in snapshot.json");
	if (!md || !buf || EVP_DigestInit_ex(md, EVP_sha256(), NULL) != 1)
		return al_error_set(err, ENOMEM, "out of memory");
	if (!strcmp(storage, "file")) {
		_cleanup_close_ int fd = -1;
		if (strchr(name, '/') || name[0] == '.')
			return al_error_set(err, EINVAL, "part %s: bad file name", name);
		fd = openat(snap_fd, name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
		if (fd < 0)
			return al_error_errno(err, "part %s is missing", name);
		for (;;) {
			ssize_t n = read(fd, buf, CHUNK_MAX);
			if (n < 0 && errno == EINTR)
				continue;
			if (n < 0)
				return al_error_errno(err, "read part %s", name);
			if (n == 0)
				break;
			EVP_DigestUpdate(md, buf, (size_t)n);
			total += (uint64_t)n;
			if (out_fd >= 0 && al_write_all(out_fd, buf, (size_t)n) < 0)
				return al_error_errno(err, "copy part %s", name);
		}
	} else if ((packed || !strcmp(storage, "chunks")) &&
	           size_j->valuedouble >= PART_HASH_THREAD_MIN) {
		struct chunk_share sh[2];
		off_t base = out_fd >= 0 ? lseek(out_fd, 0, SEEK_CUR) : 0;
		bool threaded;
		if (base < 0)
			return al_error_errno(err, "part %s: seek", name);
		for (unsigned k = 0; k < 2; k++)
			sh[k] = (struct chunk_share){.cs = k ? NULL : cs,
			                             .store_fd = cs->store_fd,
			                             .chunks = chunks,
			                             .packed = packed,
			                             .out_fd = out_fd,
			                             .base = base,
			                             .part = k,
			                             .err = AL_ERROR_INIT};
		by_chunk = true;
		threaded = pthread_create(&sh[1].thread, NULL, chunk_share_run, &sh[1]) == 0;
		chunk_share_run(&sh[0]);
		if (threaded)
			pthread_join(sh[1].thread, NULL);
		else
			chunk_share_run(&sh[1]);
		for (unsigned k = 0; k < 2; k++) {
			if (sh[k].r < 0) {
				*err = sh[k].err;
				return al_error_prefix(err, "part %s", name);
			}
		}
		total = sh[0].total;
		if (out_fd >= 0 && lseek(out_fd, base + (off_t)total, SEEK_SET) < 0)
			return al_error_errno(err, "part %s: seek", name);
	} else if (packed || !strcmp(storage, "chunks")) {
		const cJSON *item;
		r = 0;
		cJSON_ArrayForEach(item, chunks)
		{
			struct chunk_ref ref;
			r = chunk_ref_parse(cs, item, packed, &ref);
			if (r < 0) {
				r = r == -ENOMEM
				        ? al_error_set(err, ENOMEM, "out of memory")
				        : al_error_set(err, EINVAL, "malformed chunk list");
				break;
			}
			r = chunk_read(cs, &ref, buf, false, err);
			if (r < 0)
				break;
			EVP_DigestUpdate(md, buf, ref.len);
			total += ref.len;
			if (out_fd >= 0 && al_write_all(out_fd, buf, ref.len) < 0) {
				r = al_error_errno(err, "copy");
				break;
			}
		}
		if (r < 0)
			return al_error_prefix(err, "part %s", name);
	} else {
		return al_error_set(err, EINVAL, "part %s: unknown storage '%s'", name, storage);
	}
	EVP_DigestFinal_ex(md, digest, NULL);
	hex_of(digest, got);
	if (total != (uint64_t)size_j->valuedouble)
		return al_error_set(err, EIO, "part %s is truncated: %llu of %.0f bytes", name,
		                    (unsigned long long)total, size_j->valuedouble);
	if (!by_chunk && strcmp(got, want)) {
		r = strcmp(storage, "file") ? find_damaged_chunk(cs, name, chunks, packed, buf, err)
		                            : 0;
		if (r < 0)
			return r;
		return al_error_set(err, EIO, "part %s is corrupted: sha256 %s, expected %s", name,
		                    got, want);
	}
	return 0;
}

/* ---- garbage collection --------------------------------------------------------------------- */

struct name_list {
	char **v;
	size_t n, cap;
};

static void name_list_free(struct name_list *l)
{
	for (size_t i = 0; i < l->n; i++)
		free(l->v[i]);
	free(l->v);
}

static int name_list_add(struct name_list *l, const char *name)
{
	if (l->n == l->cap) {
		size_t cap = l->cap ? l->cap * 2 : 1024;
		char **v = reallocarray(l->v, cap, sizeof(*v));
		if (!v)
			return -ENOMEM;
		l->v = v;
		l->cap = cap;
	}
	l->v[l->n] = strdup(name);
	if (!l->v[l->n])
		return -ENOMEM;
	l->n++;
	return 0;
}

static bool name_list_has(const struct name_list *l, const char *name)
{
	return l->n && bsearch(&name, l->v, l->n, sizeof(char *), al_strv_cmp);
}

/* The chunk files (one-file-per-chunk storage) and packs that parts name. */
static int live_of_parts(const cJSON *parts, struct name_list *chunks, struct name_list *packs)
{
	const cJSON *part, *item;

	cJSON_ArrayForEach(part, parts)
	{
		const char *storage =
		    cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(part, "storage"));
		bool packed = storage && !strcmp(storage, "packed");
		const char *last = NULL;
		if (!packed && (!storage || strcmp(storage, "chunks")))
			continue;
		cJSON_ArrayForEach(item, cJSON_GetObjectItemCaseSensitive(part, "chunks"))
		{
			const char *name =
			    cJSON_GetStringValue(cJSON_GetArrayItem(item, packed ? 2 : 0));
			int r = 0;
			/* Runs of chunks from one pack are the rule: skip repeats. */
			if (!name || (last && !strcmp(name, last)))
				continue;
			if (packed && al_valid_name(name))
				r = name_list_add(packs, name);
			else if (!packed && valid_hex64(name))
				r = name_list_add(chunks, name);
			if (r < 0)
				return r;
			last = name;
		}
	}
	return 0;
}

/* Remove every entry of directory dfd (packs/, or one of chunks/00 to
 * chunks/ff) that live does not name; returns how many went. */
static uint64_t sweep_dir(int dfd, const struct name_list *live, bool packs)
{
	int fd = openat(dfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC); /* own offset */
	_cleanup_closedir_ DIR *d = fd >= 0 ? fdopendir(fd) : NULL;
	struct dirent *de;
	uint64_t removed = 0;

	if (!d) {
		if (fd >= 0)
			close(fd);
		return 0;
	}
	while ((de = readdir(d))) {
		char stem[NAME_MAX + 1];
		const char *dot = strrchr(de->d_name, '.');
		bool keep;
		if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
			continue;
		if (packs) {
			/* ID.pack, for a committed ID; .tmp-ID.pack never is. */
			keep = dot && !strcmp(dot, ".pack") && de->d_name[0] != '.';
			snprintf(stem, sizeof(stem), "%.*s", keep ? (int)(dot - de->d_name) : 0,
			         de->d_name);
			keep = keep && name_list_has(live, stem);
		} else {
			keep = valid_hex64(de->d_name) && name_list_has(live, de->d_name);
		}
		if (!keep && unlinkat(dirfd(d), de->d_name, 0) == 0)
			removed++;
	}
	return removed;
}

struct chunk_live {
	struct name_list chunks, packs;
};

struct chunk_live *chunk_live_new(void)
{
	return calloc(1, sizeof(struct chunk_live));
}

int chunk_live_add_parts(struct chunk_live *l, const cJSON *parts)
{
	return live_of_parts(parts, &l->chunks, &l->packs);
}

void chunk_live_free(struct chunk_live *l)
{
	if (!l)
		return;
	name_list_free(&l->chunks);
	name_list_free(&l->packs);
	free(l);
}

uint64_t chunk_store_sweep(int store_fd, struct chunk_live *l)
{
	_cleanup_close_ int chunks_fd = -1, packs_fd = -1;
	uint64_t removed = 0;

	if (l->chunks.n)
		qsort(l->chunks.v, l->chunks.n, sizeof(char *), al_strv_cmp);
	if (l->packs.n)
		qsort(l->packs.v, l->packs.n, sizeof(char *), al_strv_cmp);
	packs_fd = openat(store_fd, "packs", O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (packs_fd >= 0)
		removed += sweep_dir(packs_fd, &l->packs, true);
	chunks_fd = openat(store_fd, "chunks", O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	for (int sub = 0; chunks_fd >= 0 && sub < 256; sub++) {
		_cleanup_close_ int sfd = -1;
		char name[3];
		snprintf(name, sizeof(name), "%02x", sub);
		sfd = openat(chunks_fd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		if (sfd >= 0)
			removed += sweep_dir(sfd, &l->chunks, false);
	}
	return removed;
}

/* ---- repacking ------------------------------------------------------------------------------ */

/*
 * A pack lives whole while any snapshot names one of its chunks, so a
 * lineage that keeps only its newest snapshot (the harness's rotation) keeps
 * every pack it ever wrote, each mostly dead: 65 MB of store for a 16 MB
 * snapshot.  A repack copies the live chunks of the packs that are mostly
 * dead into one new pack and points every snapshot.json at the copies; the
 * old packs then have no name left and the sweep takes them.
 *
 * Crash safety comes from the order, driven by snapshot.c: the new pack is
 * written as packs/.tmp-NAME.pack, fsynced and renamed (a pack nothing names
 * yet, which any sweep removes); then each snapshot.json is replaced
 * atomically, one by one, each naming packs that all exist; only then are
 * the old packs swept.  Stopped anywhere, every committed snapshot reads
 * complete chunks, and the next collection removes what nothing names and
 * repacks again what is still worth it.
 */

/* Repack once the packs hold more than 5/4 of their live bytes (and at
 * least REPACK_MIN_DEAD dead ones), choosing the deadest packs first until
 * they would hold at most 9/8: repacking a little early would copy the same
 * live chunks over and over, a little late lets the store grow. */
#define REPACK_MIN_DEAD (1u << 20)

void (*chunk_store_step_hook)(const char *step);

static void step(const char *name)
{
	if (chunk_store_step_hook)
		chunk_store_step_hook(name);
}

/* A chunk some committed snapshot names, where it lies now and, once
 * copied, where it lies in the new pack. */
struct live_chunk {
	uint32_t pack; /* slot in chunk_repack.cs.packs */
	uint32_t len;
	uint64_t offset;
	unsigned char digest[SHA256_DIGEST_LENGTH];
	bool moved;
	uint32_t new_pack; /* slot */
	uint64_t new_offset;
};

struct pack_use {
	uint64_t size; /* of the file; 0 when missing */
	uint64_t live; /* bytes of distinct chunks named in it */
	bool victim;   /* to be repacked */
};

struct chunk_repack {
	struct chunk_store cs; /* its packs name the slots; its own pack is the new one */
	struct live_chunk *chunks;
	size_t n_chunks, cap_chunks;
	struct pack_use *use; /* by slot, for the slots known when the plan was made */
	size_t n_use;
	uint64_t copied, freed;
	size_t n_victims;
};

static int live_chunk_cmp(const void *a, const void *b)
{
	const struct live_chunk *x = a, *y = b;

	if (x->pack != y->pack)
		return x->pack < y->pack ? -1 : 1;
	if (x->offset != y->offset)
		return x->offset < y->offset ? -1 : 1;
	if (x->len != y->len)
		return x->len < y->len ? -1 : 1;
	return memcmp(x->digest, y->digest, sizeof(x->digest));
}

int chunk_repack_new(int store_fd, struct chunk_repack **out, struct al_error *err)
{
	struct chunk_repack *rp = calloc(1, sizeof(*rp));
	int r;

	if (!rp)
		return al_error_set(err, ENOMEM, "out of memory");
	rp->cs = (struct chunk_store)CHUNK_STORE_INIT;
	r = store_open(store_fd, &rp->cs, err);
	if (r < 0) {
		chunk_repack_free(rp);
		return r;
	}
	*out = rp;
	return 0;
}

void chunk_repack_free(struct chunk_repack *rp)
{
	if (!rp)
		return;
	chunk_store_close(&rp->cs);
	free(rp->chunks);
	free(rp->use);
	free(rp);
}

/* Sort the chunks by place and keep each place once: snapshots of one
 * lineage share most of theirs, so this keeps the list near the number of
 * distinct chunks rather than the sum of every snapshot's. */
static void live_chunks_compact(struct chunk_repack *rp)
{
	size_t n = 0;

	if (rp->n_chunks)
		qsort(rp->chunks, rp->n_chunks, sizeof(*rp->chunks), live_chunk_cmp);
	for (size_t i = 0; i < rp->n_chunks; i++)
		if (!n || live_chunk_cmp(&rp->chunks[n - 1], &rp->chunks[i]))
			rp->chunks[n++] = rp->chunks[i];
	rp->n_chunks = n;
}

int chunk_repack_add_parts(struct chunk_repack *rp, const cJSON *parts, struct al_error *err)
{
	const cJSON *part, *item;

	cJSON_ArrayForEach(part, parts)
	{
		const char *storage = al_json_str(part, "storage");
		if (!storage || strcmp(storage, "packed"))
			continue;
		cJSON_ArrayForEach(item, cJSON_GetObjectItemCaseSensitive(part, "chunks"))
		{
			struct chunk_ref ref;
			struct live_chunk *c;
			int r = chunk_ref_parse(&rp->cs, item, true, &ref);
			if (r == -EINVAL)
				continue; /* malformed: its reader will say so */
			if (r < 0)
				return al_error_set(err, ENOMEM, "out of memory");
			if (rp->n_chunks == rp->cap_chunks)
				live_chunks_compact(rp);
			if (rp->n_chunks == rp->cap_chunks || rp->n_chunks * 2 > rp->cap_chunks) {
				size_t cap = rp->cap_chunks ? rp->cap_chunks * 2 : 4096;
				c = reallocarray(rp->chunks, cap, sizeof(*c));
				if (!c)
					return al_error_set(err, ENOMEM, "out of memory");
				rp->chunks = c;
				rp->cap_chunks = cap;
			}
			c = &rp->chunks[rp->n_chunks++];
			*c = (struct live_chunk){.pack = (uint32_t)ref.pack,
			                         .len = (uint32_t)ref.len,
			                         .offset = ref.offset};
			digest_of_hex(ref.hex, c->digest);
		}
	}
	return 0;
}

struct pack_rank {
	uint32_t slot;
	double live_fraction;
};

static int pack_rank_cmp(const void *a, const void *b)
{
	const struct pack_rank *x = a, *y = b;

	if (x->live_fraction != y->live_fraction)
		return x->live_fraction < y->live_fraction ? -1 : 1;
	return x->slot < y->slot ? -1 : x->slot > y->slot;
}

/* How much each pack holds and how much of it is named; marks the packs to
 * repack.  Returns how many. */
static int repack_plan(struct chunk_repack *rp, struct al_error *err)
{
	struct chunk_store *cs = &rp->cs;
	_cleanup_free_ struct pack_rank *rank = NULL;
	uint64_t total = 0, live = 0, dead;
	size_t n_rank = 0;

	live_chunks_compact(rp); /* and sorted, for bsearch */
	rp->n_use = cs->n_packs;
	rp->use = calloc(rp->n_use ? rp->n_use : 1, sizeof(*rp->use));
	rank = calloc(rp->n_use ? rp->n_use : 1, sizeof(*rank));
	if (!rp->use || !rank)
		return al_error_set(err, ENOMEM, "out of memory");
	for (size_t i = 0; i < rp->n_use; i++) {
		char file[48];
		struct stat st;
		pack_file_name(&cs->packs[i], false, file, sizeof(file));
		if (fstatat(cs->packs_fd, file, &st, AT_SYMLINK_NOFOLLOW) == 0 &&
		    S_ISREG(st.st_mode))
			rp->use[i].size = (uint64_t)st.st_size;
	}
	for (size_t i = 0; i < rp->n_chunks; i++) {
		struct live_chunk *c = &rp->chunks[i];
		struct pack_use *u = &rp->use[c->pack];
		/* A chunk past the end of a truncated pack is not there to keep. */
		if (c->offset + c->len <= u->size)
			u->live += c->len;
	}
	for (size_t i = 0; i < rp->n_use; i++) {
		struct pack_use *u = &rp->use[i];
		if (u->live > u->size) /* overlapping chunks: only a hand-made list */
			u->live = u->size;
		total += u->size;
		live += u->live;
		if (u->size > u->live)
			rank[n_rank++] = (struct pack_rank){(uint32_t)i, (double)u->live / u->size};
	}
	dead = total - live;
	if (dead < REPACK_MIN_DEAD || dead <= live / 4)
		return 0;
	qsort(rank, n_rank, sizeof(*rank), pack_rank_cmp);
	for (size_t i = 0; i < n_rank && total - rp->freed > live + live / 8; i++) {
		struct pack_use *u = &rp->use[rank[i].slot];
		u->victim = true;
		rp->freed += u->size - u->live;
		rp->n_victims++;
	}
	return (int)rp->n_victims;
}

/* Read the chunk at offset of pack slot into buf and check it against digest. */
static int chunk_check(struct chunk_store *cs, uint32_t slot, uint64_t offset, uint32_t len,
                       const unsigned char *digest, unsigned char *buf, struct al_error *err)
{
	unsigned char got[SHA256_DIGEST_LENGTH];
	char hex[65];
	int r = pack_read(cs, slot, offset, len, buf, err);

	if (r < 0)
		return r;
	al_sha256_hex(buf, len, hex);
	digest_of_hex(hex, got);
	if (memcmp(got, digest, sizeof(got)))
		return al_error_set(err, EIO, "its bytes do not match its sha256");
	return 0;
}

/* Where chunk c of a victim pack goes: a checked copy that a pack staying
 * already holds (the same chunk in two packs: written by two lineages, or
 * by a repack that a crash cut short), else the new pack.  c->moved unless
 * c itself is damaged. */
static int repack_chunk(struct chunk_repack *rp, struct live_chunk *c, struct al_error *err)
{
	struct chunk_store *cs = &rp->cs;
	struct chunk_loc loc = {.len = c->len, .pack = (uint32_t)cs->own}, *known;
	struct al_error lerr = AL_ERROR_INIT;
	char hex[65];
	int r;

	known = index_find(cs, c->digest);
	if (known && known->len == c->len &&
	    (known->pack == (uint32_t)cs->own || chunk_check(cs, known->pack, known->offset, c->len,
	                                                     c->digest, cs->cmp_buf, &lerr) == 0)) {
		c->new_pack = known->pack;
		c->new_offset = known->offset;
		c->moved = true;
		return 0;
	}
	/* Each copy is checked: a damaged chunk stays where it is (its pack
	 * with it), so that the snapshot naming it is still refused with the
	 * same message rather than given a good-looking copy. */
	r = chunk_check(cs, c->pack, c->offset, c->len, c->digest, cs->cmp_buf, &lerr);
	if (r < 0) {
		hex_of(c->digest, hex);
		log_warn("snapshot store: chunk %s of pack %s not repacked: %s", hex,
		         cs->packs[c->pack].name, lerr.msg);
		return 0;
	}
	r = own_pack_append(cs, cs->cmp_buf, c->len, &loc.offset, err);
	if (r < 0)
		return r;
	memcpy(loc.digest, c->digest, sizeof(loc.digest));
	/* A damaged copy elsewhere is not offered again. */
	if (known)
		*known = loc;
	else if (index_add(cs, &loc) < 0)
		return al_error_set(err, ENOMEM, "out of memory");
	if (!rp->copied)
		step("repack: copying");
	rp->copied += c->len;
	c->new_pack = loc.pack;
	c->new_offset = loc.offset;
	c->moved = true;
	return 0;
}

int chunk_repack_copy(struct chunk_repack *rp, struct al_error *err)
{
	struct chunk_store *cs = &rp->cs;
	bool moved = false;
	char id[13], name[32];
	int r;

	r = repack_plan(rp, err);
	if (r <= 0)
		return r;
	r = al_random_hex(id, 12, err);
	if (r < 0)
		return r;
	/* Not a snapshot's id, so never the name of a snapshot's own pack. */
	snprintf(name, sizeof(name), "repack-%s", id);
	r = pack_slot(cs, name);
	if (r < 0)
		return al_error_set(err, -r, "pack %s: %s", name, strerror(-r));
	cs->own = r;
	cs->cmp_buf = malloc(CHUNK_MAX);
	if (!cs->cmp_buf)
		return al_error_set(err, ENOMEM, "out of memory");
	/* The chunks of the packs that stay, to share from. */
	for (size_t i = 0; i < rp->n_chunks; i++) {
		const struct live_chunk *c = &rp->chunks[i];
		struct chunk_loc loc = {.len = c->len, .pack = c->pack, .offset = c->offset};
		if (rp->use[c->pack].victim || c->offset + c->len > rp->use[c->pack].size)
			continue;
		memcpy(loc.digest, c->digest, sizeof(loc.digest));
		if (index_add(cs, &loc) < 0)
			return al_error_set(err, ENOMEM, "out of memory");
	}
	for (size_t i = 0; i < rp->n_chunks; i++) {
		struct live_chunk *c = &rp->chunks[i];
		if (!rp->use[c->pack].victim)
			continue;
		r = repack_chunk(rp, c, err);
		if (r < 0)
			return r;
		moved |= c->moved;
	}
	if (!moved)
		return 0; /* every chunk was damaged: nothing to point elsewhere */
	if (cs->packs[cs->own].fd >= 0) {
		if (fsync(cs->packs[cs->own].fd) < 0)
			return al_error_errno(err, "fsync packs/.tmp-%s.pack", name);
		r = own_pack_name(cs, err);
		if (r < 0)
			return r;
		if (fsync(cs->packs_fd) < 0)
			return al_error_errno(err, "fsync packs");
		/* From now on it is the sweep's: removed whenever nothing names it. */
		cs->own_kept = true;
	}
	return 1;
}

int chunk_repack_remap(struct chunk_repack *rp, cJSON *parts)
{
	struct chunk_store *cs = &rp->cs;
	const cJSON *part;
	cJSON *item;
	int moved = 0;

	if (cs->own < 0)
		return 0;
	cJSON_ArrayForEach(part, parts)
	{
		const char *storage = al_json_str(part, "storage");
		if (!storage || strcmp(storage, "packed"))
			continue;
		cJSON_ArrayForEach(item, cJSON_GetObjectItemCaseSensitive(part, "chunks"))
		{
			struct chunk_ref ref;
			struct live_chunk key = {0}, *c;
			cJSON *pack, *offset;
			int r = chunk_ref_parse(cs, item, true, &ref);
			if (r == -EINVAL)
				continue;
			if (r < 0)
				return r;
			if ((size_t)ref.pack >= rp->n_use || !rp->use[ref.pack].victim)
				continue;
			key.pack = (uint32_t)ref.pack;
			key.len = (uint32_t)ref.len;
			key.offset = ref.offset;
			digest_of_hex(ref.hex, key.digest);
			c = bsearch(&key, rp->chunks, rp->n_chunks, sizeof(*c), live_chunk_cmp);
			if (!c || !c->moved)
				continue;
			pack = cJSON_CreateString(cs->packs[c->new_pack].name);
			offset = cJSON_CreateNumber((double)c->new_offset);
			if (!pack || !offset || !cJSON_ReplaceItemInArray(item, 2, pack)) {
				cJSON_Delete(pack);
				cJSON_Delete(offset);
				return -ENOMEM;
			}
			if (!cJSON_ReplaceItemInArray(item, 3, offset)) {
				cJSON_Delete(offset);
				return -ENOMEM;
			}
			moved++;
		}
	}
	return moved;
}

const char *chunk_repack_name(const struct chunk_repack *rp)
{
	return rp->cs.own >= 0 && rp->cs.own_named ? rp->cs.packs[rp->cs.own].name : NULL;
}

void chunk_repack_stats(const struct chunk_repack *rp, size_t *packs, uint64_t *bytes,
                        uint64_t *copied)
{
	*packs = rp->n_victims;
	*bytes = 0;
	for (size_t i = 0; i < rp->n_use; i++)
		*bytes += rp->use[i].victim ? rp->use[i].size : 0;
	*copied = rp->copied;
}

/* ---- the interface ----------------------------------------------------------------------------
 */

int chunk_store_open(int store_fd, struct chunk_store **out, struct al_error *err)
{
	struct chunk_store *cs = malloc(sizeof(*cs));
	int r;

	pthread_once(&gear_once, gear_init);
	if (!cs)
		return al_error_set(err, ENOMEM, "out of memory");
	*cs = (struct chunk_store)CHUNK_STORE_INIT;
	r = store_open(store_fd, cs, err);
	if (r < 0) {
		chunk_store_free(cs);
		return r;
	}
	*out = cs;
	return 0;
}

void chunk_store_free(struct chunk_store *cs)
{
	if (!cs)
		return;
	chunk_store_close(cs);
	free(cs);
}

int chunk_store_begin_pack(struct chunk_store *cs, const char *name, struct al_error *err)
{
	cs->own = pack_slot(cs, name);
	if (cs->own < 0)
		return al_error_set(err, -cs->own, "pack %s: %s", name, strerror(-cs->own));
	cs->cmp_buf = malloc(CHUNK_MAX);
	return cs->cmp_buf ? 0 : al_error_set(err, ENOMEM, "out of memory");
}

int chunk_store_add_part(struct chunk_store *cs, const char *name, int fd, cJSON *parts,
                         uint64_t *written, struct al_error *err)
{
	if (cs->own < 0 || !cs->cmp_buf)
		return al_error_set(err, EINVAL, "part %s: no pack begun", name);
	return add_chunked_part(cs, name, fd, parts, written, err);
}

int chunk_store_seal_pack(struct chunk_store *cs, struct al_error *err)
{
	return own_pack_name(cs, err);
}

void chunk_store_keep_pack(struct chunk_store *cs)
{
	cs->own_kept = true;
}

int chunk_store_sync(struct chunk_store *cs)
{
	return fsync(cs->packs_fd) < 0 ? -errno : 0;
}

int chunk_store_read_part(struct chunk_store *cs, int files_fd, const cJSON *part, int out_fd,
                          struct al_error *err)
{
	return read_part(cs, files_fd, part, out_fd, err);
}

int chunk_file_sha256(int fd, char hex[65], uint64_t *size, struct al_error *err)
{
	return sha256_fd(fd, hex, size, err);
}
