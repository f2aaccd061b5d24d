/* SPDX-License-Identifier: Apache-2.0 */
/*
 * A snapshot as one stream, to move it to another airlockd (docs/snapshot-format.md,
 * "Export and import"): a pax tar whose first member is "snapshot.json" (the record as
 * stored) and whose next members are "parts/<name>", one per part in the record's
 * order, each the part's whole bytes.
 *
 * Export reads every part through the reader, which checks every chunk and the whole
 * part, so a damaged store is never exported.  Import copies each member into the new
 * snapshot's temporary directory (a plain file or an unlinked temp file chunked into a
 * new pack) while hashing it, refuses the first one whose name, size or sha256 is not
 * the record's, refuses a stream that ends early or holds more, and commits (makes
 * visible) only after the last part checked; any failure removes everything it wrote.
 * Memory stays at one copy buffer: parts pass through files, never through memory.
 */
#include "snapshot.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <archive.h>
#include <archive_entry.h>
#include <openssl/evp.h>

#include "cleanup.h"
#include "json.h"
#include "log.h"
#include "util.h"

#define RECORD_MEMBER "snapshot.json"
#define PART_PREFIX "parts/"
#define MAX_RECORD_BYTES (64u << 20)
#define COPY_BUFFER (1u << 16)

static void archive_write_freep(struct archive **a)
{
	if (*a)
		archive_write_free(*a);
}

static void archive_read_freep(struct archive **a)
{
	if (*a)
		archive_read_free(*a);
}

static void entry_freep(struct archive_entry **e)
{
	if (*e)
		archive_entry_free(*e);
}

static void reader_freep(struct snapshot_reader **rd)
{
	snapshot_reader_free(*rd);
}

static void writer_freep(struct snapshot_writer **w)
{
	snapshot_writer_free(*w);
}

static void md_freep(EVP_MD_CTX **md)
{
	EVP_MD_CTX_free(*md);
}

static int put_header(struct archive *a, const char *name, uint64_t size, struct al_error *err)
{
	_cleanup_(entry_freep) struct archive_entry *e = archive_entry_new();

	if (!e)
		return al_error_set(err, ENOMEM, "out of memory");
	archive_entry_set_pathname(e, name);
	archive_entry_set_filetype(e, AE_IFREG);
	archive_entry_set_perm(e, 0600);
	archive_entry_set_size(e, (la_int64_t)size);
	if (archive_write_header(a, e) != ARCHIVE_OK)
		return al_error_set(err, EIO, "export: %s: %s", name, archive_error_string(a));
	return 0;
}

static int put_data(struct archive *a, const char *name, const void *buf, size_t len,
                    struct al_error *err)
{
	if (len && archive_write_data(a, buf, len) != (la_ssize_t)len)
		return al_error_set(err, EIO, "export: %s: %s", name, archive_error_string(a));
	return 0;
}

int snapshot_export(const char *state_dir, const char *id, int tmp_dir_fd, int out_fd,
                    struct al_error *err)
{
	_cleanup_(reader_freep) struct snapshot_reader *rd = NULL;
	_cleanup_(archive_write_freep) struct archive *a = NULL;
	_cleanup_free_ char *text = NULL;
	_cleanup_free_ char *buf = malloc(COPY_BUFFER);
	const cJSON *part;
	int r;

	if (!buf)
		return al_error_set(err, ENOMEM, "out of memory");
	r = snapshot_reader_open(state_dir, id, &rd, err);
	if (r < 0)
		return r;
	text = cJSON_PrintUnformatted(snapshot_reader_record(rd));
	a = archive_write_new();
	if (!text || !a)
		return al_error_set(err, ENOMEM, "out of memory");
	if (archive_write_set_format_pax_restricted(a) != ARCHIVE_OK ||
	    archive_write_open_fd(a, out_fd) != ARCHIVE_OK)
		return al_error_set(err, EIO, "export %s: %s", id, archive_error_string(a));
	if ((r = put_header(a, RECORD_MEMBER, strlen(text), err)) < 0 ||
	    (r = put_data(a, RECORD_MEMBER, text, strlen(text), err)) < 0)
		return r;
	cJSON_ArrayForEach(part,
	                   cJSON_GetObjectItemCaseSensitive(snapshot_reader_record(rd), "parts"))
	{
		const char *name = al_json_str(part, "name");
		_cleanup_close_ int fd =
		    openat(tmp_dir_fd, ".", O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
		_cleanup_free_ char *member = NULL;
		off_t size;
		ssize_t n;

		if (fd < 0)
			return al_error_errno(err, "export %s: temp file", id);
		/* Checked chunk by chunk and whole on the way out. */
		if ((r = snapshot_reader_read_part(rd, part, fd, err)) < 0)
			return al_error_prefix(err, "export %s", id);
		size = lseek(fd, 0, SEEK_END);
		if (size < 0 || lseek(fd, 0, SEEK_SET) != 0)
			return al_error_errno(err, "export %s: seek", id);
		if (asprintf(&member, PART_PREFIX "%s", name ? name : "") < 0)
			return al_error_set(err, ENOMEM, "out of memory");
		if ((r = put_header(a, member, (uint64_t)size, err)) < 0)
			return r;
		while ((n = read(fd, buf, COPY_BUFFER)) > 0)
			if ((r = put_data(a, member, buf, (size_t)n, err)) < 0)
				return r;
		if (n < 0)
			return al_error_errno(err, "export %s: read %s", id, member);
	}
	if (archive_write_close(a) != ARCHIVE_OK)
		return al_error_set(err, EIO, "export %s: %s", id, archive_error_string(a));
	return 0;
}

/* ---- import ---- */

/* A part name the store can hold: relative, no "..", no empty segment. */
static bool part_name_ok(const char *name, bool plain_file)
{
	if (!name || !*name || name[0] == '/' || strlen(name) > 200)
		return false;
	if (plain_file)
		return !strcmp(name, "workspace.tar");
	for (const char *p = name; *p; p++)
		if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
		      (*p >= '0' && *p <= '9') || *p == '.' || *p == '_' || *p == '-' || *p == '/'))
			return false;
	return !strstr(name, "..") && !strstr(name, "//") && name[strlen(name) - 1] != '/';
}

/* The next member, which must be called want (a regular file); its size. */
static int next_member(struct archive *a, const char *want, la_int64_t *size, struct al_error *err)
{
	struct archive_entry *e;
	int r = archive_read_next_header(a, &e);

	if (r == ARCHIVE_EOF)
		return al_error_set(err, EBADMSG,
		                    "import: the stream ends before %s: truncated or incomplete",
		                    want);
	if (r != ARCHIVE_OK)
		return al_error_set(err, EBADMSG, "import: damaged stream before %s: %s", want,
		                    archive_error_string(a));
	if (strcmp(archive_entry_pathname(e), want) || archive_entry_filetype(e) != AE_IFREG)
		return al_error_set(err, EBADMSG, "import: expected member %s, found %s", want,
		                    archive_entry_pathname(e));
	*size = archive_entry_size(e);
	return 0;
}

/* Copy the current member (size bytes) into fd while hashing it; check size and sha256. */
static int copy_member(struct archive *a, const char *member, int fd, la_int64_t size,
                       const char *want_sha, char *buf, struct al_error *err)
{
	_cleanup_(md_freep) EVP_MD_CTX *md = EVP_MD_CTX_new();
	unsigned char digest[32];
	char hex[65];
	la_int64_t total = 0;
	la_ssize_t n;

	if (!md || !EVP_DigestInit_ex(md, EVP_sha256(), NULL))
		return al_error_set(err, ENOMEM, "out of memory");
	while ((n = archive_read_data(a, buf, COPY_BUFFER)) > 0) {
		if (al_write_all(fd, buf, (size_t)n) < 0)
			return al_error_errno(err, "import: write %s", member);
		EVP_DigestUpdate(md, buf, (size_t)n);
		total += n;
	}
	if (n < 0)
		return al_error_set(err, EBADMSG, "import: %s: damaged or truncated stream: %s",
		                    member, archive_error_string(a));
	if (total != size)
		return al_error_set(err, EBADMSG, "import: %s: %lld bytes, the record says %lld",
		                    member, (long long)total, (long long)size);
	EVP_DigestFinal_ex(md, digest, NULL);
	for (int i = 0; i < 32; i++)
		snprintf(hex + 2 * i, 3, "%02x", digest[i]);
	if (!want_sha || strcmp(hex, want_sha))
		return al_error_set(err, EBADMSG,
		                    "import: %s is damaged: its sha256 is %s, the record says %s",
		                    member, hex, want_sha ? want_sha : "(none)");
	return 0;
}

/* The record's description as the new snapshot's meta: the importer owns it. */
static cJSON *import_meta(const cJSON *rec, const char *new_id, uid_t owner)
{
	_cleanup_cjson_ cJSON *meta = cJSON_CreateObject();
	static const char *const keys[] = {"processes", "sandbox", "manifest", "session_state"};
	cJSON *sandbox, *session;

	if (!meta)
		return NULL;
	for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++) {
		const cJSON *v = cJSON_GetObjectItemCaseSensitive(rec, keys[i]);
		if (v && !cJSON_AddItemToObject(meta, keys[i], cJSON_Duplicate(v, true)))
			return NULL;
	}
	sandbox = cJSON_GetObjectItemCaseSensitive(meta, "sandbox");
	if (!cJSON_IsObject(sandbox))
		return NULL;
	cJSON_DeleteItemFromObjectCaseSensitive(sandbox, "owner_uid");
	cJSON_AddNumberToObject(sandbox, "owner_uid", (double)owner);
	session = cJSON_GetObjectItemCaseSensitive(meta, "session_state");
	if (cJSON_IsObject(session)) {
		cJSON_DeleteItemFromObjectCaseSensitive(session, "snapshot_id");
		cJSON_AddStringToObject(session, "snapshot_id", new_id);
	}
	return TAKE_PTR(meta);
}

int snapshot_import(const char *state_dir, int in_fd, uid_t owner, cJSON **summary,
                    struct al_error *err)
{
	_cleanup_(archive_read_freep) struct archive *a = archive_read_new();
	_cleanup_(writer_freep) struct snapshot_writer *w = NULL;
	_cleanup_cjson_ cJSON *rec = NULL, *meta = NULL, *sizes = NULL;
	_cleanup_free_ char *text = NULL;
	_cleanup_free_ char *buf = malloc(COPY_BUFFER);
	struct archive_entry *e;
	const cJSON *parts, *part, *rsizes;
	la_int64_t size;
	la_ssize_t n;
	int r;

	if (!a || !buf)
		return al_error_set(err, ENOMEM, "out of memory");
	archive_read_support_format_tar(a);
	if (archive_read_open_fd(a, in_fd, COPY_BUFFER) != ARCHIVE_OK)
		return al_error_set(err, EBADMSG, "import: not a snapshot stream: %s",
		                    archive_error_string(a));
	if ((r = next_member(a, RECORD_MEMBER, &size, err)) < 0)
		return r;
	if (size <= 0 || size > MAX_RECORD_BYTES)
		return al_error_set(err, EBADMSG, "import: snapshot.json of %lld bytes refused",
		                    (long long)size);
	text = malloc((size_t)size + 1);
	if (!text)
		return al_error_set(err, ENOMEM, "out of memory");
	n = archive_read_data(a, text, (size_t)size);
	if (n != size)
		return al_error_set(err, EBADMSG, "import: snapshot.json is truncated");
	text[size] = '\0';
	rec = cJSON_ParseWithLength(text, (size_t)size);
	if (!cJSON_IsObject(rec) || !al_json_str(rec, "format") ||
	    strcmp(al_json_str(rec, "format"), "airlock-snapshot"))
		return al_error_set(err, EBADMSG,
		                    "import: snapshot.json is not an Airlock snapshot");
	if (cJSON_GetNumberValue(cJSON_GetObjectItemCaseSensitive(rec, "version")) != 1)
		return al_error_set(
		    err, EBADMSG, "import: snapshot version %g is not known",
		    cJSON_GetNumberValue(cJSON_GetObjectItemCaseSensitive(rec, "version")));
	parts = cJSON_GetObjectItemCaseSensitive(rec, "parts");
	if (!cJSON_IsArray(parts) || cJSON_GetArraySize(parts) == 0)
		return al_error_set(err, EBADMSG, "import: snapshot.json lists no parts");

	/* A fresh lineage: the importing store shares nothing with the exporting one. */
	r = snapshot_writer_begin(state_dir, NULL, &w, err);
	if (r < 0)
		return r;
	cJSON_ArrayForEach(part, parts)
	{
		const char *name = al_json_str(part, "name");
		const char *storage = al_json_str(part, "storage");
		bool plain = storage && !strcmp(storage, "file");
		_cleanup_free_ char *member = NULL;
		_cleanup_close_ int fd = -1;
		uint64_t added = 0;

		if (!storage ||
		    (!plain && strcmp(storage, "packed") && strcmp(storage, "chunks")) ||
		    !part_name_ok(name, plain))
			return al_error_set(err, EBADMSG, "import: snapshot.json has a bad part %s",
			                    name ? name : "(unnamed)");
		if (asprintf(&member, PART_PREFIX "%s", name) < 0)
			return al_error_set(err, ENOMEM, "out of memory");
		if ((r = next_member(a, member, &size, err)) < 0)
			return r;
		if (size != (la_int64_t)al_json_num(part, "size", -1))
			return al_error_set(err, EBADMSG,
			                    "import: %s has %lld bytes, the record says %.0f",
			                    member, (long long)size, al_json_num(part, "size", -1));
		fd = plain ? snapshot_writer_create_file(w, name, err)
		           : snapshot_writer_tmpfile(w, err);
		if (fd < 0)
			return fd;
		if ((r = copy_member(a, member, fd, size, al_json_str(part, "sha256"), buf, err)) <
		    0)
			return r;
		r = plain ? snapshot_writer_add_file(w, name, fd, &added, err)
		          : snapshot_writer_add_chunked(w, name, fd, err);
		if (r < 0)
			return r;
	}
	r = archive_read_next_header(a, &e);
	if (r != ARCHIVE_EOF)
		return al_error_set(err, EBADMSG,
		                    r == ARCHIVE_OK
		                        ? "import: unexpected member %s after the last part"
		                        : "import: damaged stream after the last part%s",
		                    r == ARCHIVE_OK ? archive_entry_pathname(e) : "");
	meta = import_meta(rec, snapshot_writer_id(w), owner);
	sizes = cJSON_CreateObject();
	if (!meta || !sizes)
		return al_error_set(err, EBADMSG,
		                    "import: snapshot.json has no sandbox description");
	rsizes = cJSON_GetObjectItemCaseSensitive(rec, "sizes");
	static const char *const size_keys[] = {"workspace", "layer", "criu"};
	for (size_t i = 0; i < 3; i++)
		cJSON_AddNumberToObject(sizes, size_keys[i], al_json_num(rsizes, size_keys[i], 0));
	r = snapshot_writer_commit(w, meta, sizes, summary, err);
	if (r < 0)
		return r;
	log_info("snapshot %s imported (exported as %s)", snapshot_writer_id(w),
	         al_json_str(rec, "id") ? al_json_str(rec, "id") : "?");
	return 0;
}
