/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The image store (images.h).
 *
 * An import runs in two steps.  A helper process, chrooted into a fresh
 * directory below DIR/tmp and confined (helper_confine_to), does all the
 * work on the untrusted archive: it copies every member into a blob file
 * named by its sha256, finds the manifest (index.json of an OCI layout, or
 * manifest.json of `docker save`), checks every blob it uses against its
 * digest and every layer against the config's diff_ids, and unpacks the
 * layers the store does not have yet, writing a small summary.  Then
 * airlockd marks the directories the layers' whiteouts made opaque (a
 * trusted.* xattr, which the helper may not set), and, under the store's
 * lock, moves the new layers into place,
 * resolves the image's User in its /etc/passwd and /etc/group, and writes
 * the record with a rename that never replaces.  Whatever fails, the
 * import's directory is removed, and a layer moved in without its record is
 * collected at once.
 */
#include "images.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <limits.h>
#include <pthread.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/utsname.h>
#include <sys/xattr.h>
#include <time.h>
#include <unistd.h>

#include <linux/openat2.h>

#include <archive.h>
#include <archive_entry.h>
#include <openssl/evp.h>

#include "cleanup.h"
#include "helper.h"
#include "json.h"
#include "strv.h"
#include "util.h"

#define MAX_JSON_BLOB (4u << 20)
#define MAX_OUTER_MEMBERS 100000
#define MAX_LAYERS 256
#define MAX_LINK_HOPS 16
#define MAX_PASSWD (4u << 20)
/* Beyond the data, a layer's tar holds a 512-byte header or more per member. */
#define TAR_OVERHEAD_ALLOWANCE (512ULL << 20)

struct image_store {
	char *dir;
	/* Moving layers in, writing records, removing: one at a time. */
	pthread_mutex_t lock;
};

bool image_name_valid(const char *name)
{
	size_t n = name ? strlen(name) : 0;

	if (n == 0 || n > IMAGE_NAME_MAX)
		return false;
	for (size_t i = 0; i < n; i++) {
		char c = name[i];
		bool alnum =
		    (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
		if (!alnum && (i == 0 || !strchr("_.:-", c)))
			return false;
	}
	return true;
}

static bool hex_digest_valid(const char *hex)
{
	if (strlen(hex) != 64)
		return false;
	for (const char *p = hex; *p; p++)
		if (!((*p >= '0' && *p <= '9') || (*p >= 'a' && *p <= 'f')))
			return false;
	return true;
}

/* "sha256:HEX" -> HEX, or NULL. */
static const char *digest_hex(const char *digest)
{
	if (!digest || strncmp(digest, "sha256:", 7) != 0 || !hex_digest_valid(digest + 7))
		return NULL;
	return digest + 7;
}

static const char *host_architecture(void)
{
	static const struct {
		const char *machine, *oci;
	} names[] = {{"x86_64", "amd64"},   {"aarch64", "arm64"},   {"armv7l", "arm"},
	             {"i686", "386"},       {"ppc64le", "ppc64le"}, {"s390x", "s390x"},
	             {"riscv64", "riscv64"}};
	static struct utsname u;

	if (uname(&u) < 0)
		return "unknown";
	for (size_t i = 0; i < AL_ARRAY_SIZE(names); i++)
		if (!strcmp(u.machine, names[i].machine))
			return names[i].oci;
	return u.machine;
}

/* ---- the store -------------------------------------------------------------------------- */

int image_store_open(const char *dir, struct image_store **out, struct al_error *err)
{
	_cleanup_free_ struct image_store *st = calloc(1, sizeof(*st));
	char path[PATH_MAX];
	_cleanup_close_ int tmp = -1;
	_cleanup_closedir_ DIR *d = NULL;
	struct dirent *de;

	if (!st || !(st->dir = strdup(dir)))
		return al_error_set(err, ENOMEM, "out of memory");
	if (strlen(dir) > 1024) {
		free(st->dir);
		return al_error_set(err, ENAMETOOLONG, "image directory %s is too long", dir);
	}
	if (al_mkdir_p(dir, 0700, err) < 0) {
		free(st->dir);
		return al_error_prefix(err, "image store");
	}
	/* Only root reads the layers: they are every image's files, with
	 * their owners, and nothing a host user should reach. */
	chmod(dir, 0700);
	for (const char *sub = "layers/sha256\0images\0tmp\0"; *sub; sub += strlen(sub) + 1) {
		snprintf(path, sizeof(path), "%s/%s", dir, sub);
		if (al_mkdir_p(path, 0700, err) < 0) {
			free(st->dir);
			return al_error_prefix(err, "image store");
		}
	}
	/* What an import killed with airlockd left. */
	snprintf(path, sizeof(path), "%s/tmp", dir);
	tmp = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	d = tmp >= 0 ? fdopendir(dup(tmp)) : NULL;
	while (d && (de = readdir(d))) {
		struct al_error e = AL_ERROR_INIT;
		if (strcmp(de->d_name, ".") && strcmp(de->d_name, ".."))
			al_rm_rf_at(tmp, de->d_name, &e);
	}
	pthread_mutex_init(&st->lock, NULL);
	*out = TAKE_PTR(st);
	return 0;
}

void image_store_free(struct image_store *st)
{
	if (!st)
		return;
	pthread_mutex_destroy(&st->lock);
	free(st->dir);
	free(st);
}

const char *image_store_dir(const struct image_store *st)
{
	return st->dir;
}

static int record_path(const char *dir, const char *name, char *path, size_t len,
                       struct al_error *err)
{
	if (!image_name_valid(name))
		return al_error_set(err, EINVAL,
		                    "invalid image name '%s': expected [A-Za-z0-9][A-Za-z0-9_.:-], "
		                    "at most %d characters",
		                    name ? name : "", IMAGE_NAME_MAX);
	snprintf(path, len, "%s/images/%s.json", dir, name);
	return 0;
}

static int read_record(const char *dir, const char *name, cJSON **out, struct al_error *err)
{
	_cleanup_free_ char *text = NULL;
	char path[PATH_MAX];
	size_t len = 0;
	int r = record_path(dir, name, path, sizeof(path), err);

	if (r < 0)
		return r;
	r = al_read_file(path, 16u << 20, &text, &len, err);
	if (r == -ENOENT) {
		al_error_clear(err);
		return al_error_set(err, ENOENT, "no image '%s'", name);
	}
	if (r < 0)
		return r;
	*out = cJSON_ParseWithLength(text, len);
	if (!cJSON_IsObject(*out)) {
		cJSON_Delete(*out);
		*out = NULL;
		return al_error_set(err, EIO, "image '%s': record %s is not valid JSON", name,
		                    path);
	}
	return 0;
}

/* The names of the images, sorted. */
static int list_names(const char *dir, char ***out, struct al_error *err)
{
	_cleanup_strv_ char **names = calloc(1, sizeof(char *));
	_cleanup_closedir_ DIR *d = NULL;
	char path[PATH_MAX];
	struct dirent *de;

	snprintf(path, sizeof(path), "%s/images", dir);
	if (!names)
		return al_error_set(err, ENOMEM, "out of memory");
	d = opendir(path);
	if (!d)
		return al_error_errno(err, "open %s", path);
	while ((de = readdir(d))) {
		size_t n = strlen(de->d_name);
		char name[IMAGE_NAME_MAX + 8];
		if (n < 6 || n - 5 > IMAGE_NAME_MAX || strcmp(de->d_name + n - 5, ".json"))
			continue;
		snprintf(name, sizeof(name), "%.*s", (int)(n - 5), de->d_name);
		if (image_name_valid(name) && al_strv_push(&names, name) < 0)
			return al_error_set(err, ENOMEM, "out of memory");
	}
	al_strv_sort(names);
	*out = TAKE_PTR(names);
	return 0;
}

/* ---- garbage collection ------------------------------------------------------------------ */

/* Remove the layers no record names.  Under the lock.  A record that cannot
 * be read stops it: its layers are not known, so nothing is removed. */
static int collect_layers_locked(struct image_store *st, unsigned *removed, struct al_error *err)
{
	_cleanup_strv_ char **names = NULL, **used = calloc(1, sizeof(char *));
	_cleanup_closedir_ DIR *d = NULL;
	_cleanup_close_ int lfd = -1;
	char path[PATH_MAX];
	struct dirent *de;
	int r;

	if (removed)
		*removed = 0;
	if (!used)
		return al_error_set(err, ENOMEM, "out of memory");
	r = list_names(st->dir, &names, err);
	if (r < 0)
		return r;
	for (char **n = names; *n; n++) {
		_cleanup_cjson_ cJSON *rec = NULL;
		const cJSON *it;
		r = read_record(st->dir, *n, &rec, err);
		if (r < 0)
			return al_error_prefix(err, "layers not collected");
		cJSON_ArrayForEach(it, cJSON_GetObjectItemCaseSensitive(rec, "layers"))
		{
			const char *hex = cJSON_IsString(it) ? digest_hex(it->valuestring) : NULL;
			if (hex && al_strv_push(&used, hex) < 0)
				return al_error_set(err, ENOMEM, "out of memory");
		}
	}
	snprintf(path, sizeof(path), "%s/layers/sha256", st->dir);
	lfd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (lfd < 0)
		return al_error_errno(err, "open %s", path);
	d = fdopendir(dup(lfd));
	if (!d)
		return al_error_errno(err, "open %s", path);
	while ((de = readdir(d))) {
		if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, "..") ||
		    al_strv_contains(used, de->d_name))
			continue;
		r = al_rm_rf_at(lfd, de->d_name, err);
		if (r < 0)
			return al_error_prefix(err, "remove layer %s", de->d_name);
		if (removed)
			(*removed)++;
	}
	return 0;
}

/* ---- the import helper: blobs -------------------------------------------------------------- */

/* A member of the archive: a file (its blob) or a link to another member. */
struct member {
	char *path;
	char *link; /* the member it names (normalized), for symlinks and hard links */
	char hex[65];
};

struct import_job {
	const char *root; /* the import's directory; "/" in the helper */
	int fd;
	const struct tar_limits *limits;
	char **existing; /* layers the store has */
	struct member *members;
	size_t n_members;
};

static void evp_freep(EVP_MD_CTX **c)
{
	if (*c)
		EVP_MD_CTX_free(*c);
}

static void hex_of(const unsigned char *md, char out[65])
{
	static const char hex[] = "0123456789abcdef";

	for (size_t i = 0; i < 32; i++) {
		out[2 * i] = hex[md[i] >> 4];
		out[2 * i + 1] = hex[md[i] & 15];
	}
	out[64] = '\0';
}

static inline void archive_read_freep(struct archive **a)
{
	if (*a)
		archive_read_free(*a);
}

/*
 * Copy the current member's data (or, with raw, the whole decompressed
 * stream) of a to path, hashing it: at most max bytes.
 */
static int copy_hashed(struct archive *a, const char *path, uint64_t max, const char *what,
                       char hex[65], uint64_t *size, struct al_error *err)
{
	_cleanup_(evp_freep) EVP_MD_CTX *ctx = EVP_MD_CTX_new();
	_cleanup_close_ int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int mdlen = 0;
	char buf[65536];
	uint64_t total = 0;

	if (!ctx || EVP_DigestInit_ex(ctx, EVP_sha256(), NULL) != 1)
		return al_error_set(err, ENOMEM, "sha256");
	if (fd < 0)
		return al_error_errno(err, "create %s", path);
	for (;;) {
		la_ssize_t n = archive_read_data(a, buf, sizeof(buf));
		if (n == 0)
			break;
		if (n < 0)
			return al_error_set(err, EINVAL, "%s: %s", what, archive_error_string(a));
		total += (uint64_t)n;
		if (max && total > max)
			return al_error_set(err, EFBIG, "%s: more than the limit of %llu bytes",
			                    what, (unsigned long long)max);
		if (EVP_DigestUpdate(ctx, buf, (size_t)n) != 1)
			return al_error_set(err, EIO, "sha256");
		if (al_write_all(fd, buf, (size_t)n) < 0)
			return al_error_errno(err, "write %s", path);
	}
	if (EVP_DigestFinal_ex(ctx, md, &mdlen) != 1 || mdlen != 32)
		return al_error_set(err, EIO, "sha256");
	hex_of(md, hex);
	if (size)
		*size = total;
	return 0;
}

/* "dir/x" + "../y" -> "y"; refuses a path that climbs out of the archive. */
static int resolve_link(const char *member, const char *target, char *out, size_t len,
                        struct al_error *err)
{
	char joined[PATH_MAX * 2];
	const char *slash = strrchr(member, '/');
	_cleanup_strv_ char **parts = calloc(1, sizeof(char *));
	char *save = NULL;
	size_t n = 0, used = 0;

	if (!parts)
		return al_error_set(err, ENOMEM, "out of memory");
	if (target[0] == '/')
		snprintf(joined, sizeof(joined), "%s", target);
	else
		snprintf(joined, sizeof(joined), "%.*s/%s", slash ? (int)(slash - member) : 0,
		         member, target);
	for (char *c = strtok_r(joined, "/", &save); c; c = strtok_r(NULL, "/", &save)) {
		if (!strcmp(c, "."))
			continue;
		if (!strcmp(c, "..")) {
			if (n == 0)
				return al_error_set(err, EINVAL,
				                    "member '%s': link '%s' leaves the "
				                    "archive",
				                    member, target);
			free(parts[--n]);
			parts[n] = NULL;
			continue;
		}
		if (al_strv_push(&parts, c) < 0)
			return al_error_set(err, ENOMEM, "out of memory");
		n++;
	}
	out[0] = '\0';
	for (size_t i = 0; i < n; i++) {
		size_t l = strlen(parts[i]);
		if (used + l + 2 > len)
			return al_error_set(err, ENAMETOOLONG, "member '%s': link too long",
			                    member);
		if (used)
			out[used++] = '/';
		memcpy(out + used, parts[i], l + 1);
		used += l;
	}
	return 0;
}

/* Read the outer archive: every file into blobs/HEX, every link noted. */
static int read_archive(struct import_job *j, struct al_error *err)
{
	_cleanup_(archive_read_freep) struct archive *a = archive_read_new();
	uint64_t max_in = j->limits->max_input_bytes;
	int r;

	if (!a)
		return al_error_set(err, ENOMEM, "out of memory");
	archive_read_support_format_tar(a);
	archive_read_support_filter_gzip(a);
	archive_read_support_filter_zstd(a);
	if (archive_read_open_fd(a, j->fd, 65536) != ARCHIVE_OK)
		return al_error_set(err, EINVAL, "not a tar archive: %s", archive_error_string(a));
	if (mkdir("/blobs", 0700) < 0)
		return al_error_errno(err, "mkdir blobs");
	for (;;) {
		struct archive_entry *e;
		struct member *m, *grown;
		char path[PATH_MAX], blob[96];
		const char *hardlink;
		mode_t type;

		r = archive_read_next_header(a, &e);
		if (r == ARCHIVE_EOF)
			break;
		if (r < ARCHIVE_WARN)
			return al_error_set(err, EINVAL, "not a valid tar archive: %s",
			                    archive_error_string(a));
		if (max_in && (uint64_t)archive_filter_bytes(a, -1) > max_in)
			return al_error_set(err, EFBIG, "archive exceeds the limit of %llu bytes",
			                    (unsigned long long)max_in);
		if (!archive_entry_pathname(e))
			return al_error_set(err, EINVAL, "member without a path");
		r = tar_normalize_member(archive_entry_pathname(e), path, sizeof(path), err);
		if (r < 0)
			return r;
		type = archive_entry_filetype(e);
		hardlink = archive_entry_hardlink(e);
		if (type != AE_IFREG && type != AE_IFLNK && !hardlink)
			continue; /* directories, and nothing an image layout has */
		if (j->n_members >= MAX_OUTER_MEMBERS)
			return al_error_set(err, EFBIG, "archive has more than %d files",
			                    MAX_OUTER_MEMBERS);
		grown = realloc(j->members, (j->n_members + 1) * sizeof(*grown));
		if (!grown)
			return al_error_set(err, ENOMEM, "out of memory");
		j->members = grown;
		m = &j->members[j->n_members];
		*m = (struct member){.path = strdup(path)};
		j->n_members++;
		if (!m->path)
			return al_error_set(err, ENOMEM, "out of memory");
		if (hardlink || type == AE_IFLNK) {
			char target[PATH_MAX];
			if (hardlink)
				r = tar_normalize_member(hardlink, target, sizeof(target), err);
			else
				r = resolve_link(
				    path, archive_entry_symlink(e) ? archive_entry_symlink(e) : "",
				    target, sizeof(target), err);
			if (r < 0)
				return r;
			m->link = strdup(target);
			if (!m->link)
				return al_error_set(err, ENOMEM, "out of memory");
			continue;
		}
		r = copy_hashed(a, "/blobs/.partial", max_in, path, m->hex, NULL, err);
		if (r < 0)
			return r;
		snprintf(blob, sizeof(blob), "/blobs/%s", m->hex);
		if (rename("/blobs/.partial", blob) < 0)
			return al_error_errno(err, "store blob of %s", path);
	}
	if (max_in && (uint64_t)archive_filter_bytes(a, -1) > max_in)
		return al_error_set(err, EFBIG, "archive exceeds the limit of %llu bytes",
		                    (unsigned long long)max_in);
	return 0;
}

/* The blob of the member at path (links followed), or NULL. */
static const struct member *member_at(const struct import_job *j, const char *path)
{
	for (int hops = 0; hops < MAX_LINK_HOPS; hops++) {
		const struct member *found = NULL;
		/* The last of several members of one name is what a tar leaves. */
		for (size_t i = j->n_members; i-- > 0;)
			if (!strcmp(j->members[i].path, path)) {
				found = &j->members[i];
				break;
			}
		if (!found || !found->link)
			return found;
		path = found->link;
	}
	return NULL;
}

/* The blob of a "sha256:HEX" descriptor, known to hash to HEX. */
static int blob_by_digest(const struct import_job *j, const char *digest, const char *what,
                          char hex[65], struct al_error *err)
{
	const char *h = digest_hex(digest);
	const struct member *m;
	char path[128];

	if (!h)
		return al_error_set(err, EINVAL, "%s: unsupported or malformed digest '%s'", what,
		                    digest ? digest : "(none)");
	snprintf(path, sizeof(path), "/blobs/%s", h);
	if (access(path, F_OK) == 0) {
		memcpy(hex, h, 65);
		return 0;
	}
	snprintf(path, sizeof(path), "blobs/sha256/%s", h);
	m = member_at(j, path);
	if (m)
		return al_error_set(err, EINVAL,
		                    "%s: blob %s does not match its digest (its content is "
		                    "sha256:%s)",
		                    what, digest, m->hex);
	return al_error_set(err, EINVAL, "%s: blob %s is not in the archive", what, digest);
}

static int read_json_blob(const char *hex, const char *what, cJSON **out, struct al_error *err)
{
	_cleanup_free_ char *text = NULL;
	char path[128];
	size_t len = 0;
	int r;

	snprintf(path, sizeof(path), "/blobs/%s", hex);
	r = al_read_file(path, MAX_JSON_BLOB, &text, &len, err);
	if (r < 0)
		return al_error_prefix(err, "%s", what);
	*out = cJSON_ParseWithLength(text, len);
	if (!cJSON_IsObject(*out) && !cJSON_IsArray(*out)) {
		cJSON_Delete(*out);
		*out = NULL;
		return al_error_set(err, EINVAL, "%s is not valid JSON", what);
	}
	return 0;
}

/* ---- the import helper: manifests ------------------------------------------------------- */

struct layer_ref {
	char blob[65]; /* the blob holding its tar */
};

struct found_image {
	char config[65];
	struct layer_ref layers[MAX_LAYERS];
	size_t n_layers;
};

static bool media_is_index(const char *t)
{
	return t && (!strcmp(t, "application/vnd.oci.image.index.v1+json") ||
	             !strcmp(t, "application/vnd.docker.distribution.manifest.list.v2+json"));
}

/* The manifest of an index that runs here: the only one, or the first for
 * linux and this machine's architecture. */
static int pick_manifest(const struct import_job *j, const cJSON *index, int depth, char hex[65],
                         struct al_error *err)
{
	const cJSON *list = cJSON_GetObjectItemCaseSensitive(index, "manifests"), *it,
	            *chosen = NULL;
	const char *arch = host_architecture();
	int n = cJSON_GetArraySize(list), r;

	if (depth > 4)
		return al_error_set(err, EINVAL, "index.json: indexes nested too deep");
	if (!cJSON_IsArray(list) || n == 0)
		return al_error_set(err, EINVAL, "index.json: no manifests");
	cJSON_ArrayForEach(it, list)
	{
		const cJSON *p = cJSON_GetObjectItemCaseSensitive(it, "platform");
		const char *os = al_json_str(p, "os"), *a = al_json_str(p, "architecture");
		if (n == 1 || (os && !strcmp(os, "linux") && a && !strcmp(a, arch))) {
			chosen = it;
			break;
		}
	}
	if (!chosen)
		return al_error_set(err, EINVAL, "index.json lists %d manifests, none for linux/%s",
		                    n, arch);
	r = blob_by_digest(j, al_json_str(chosen, "digest"), "manifest", hex, err);
	if (r < 0)
		return r;
	if (media_is_index(al_json_str(chosen, "mediaType"))) {
		_cleanup_cjson_ cJSON *inner = NULL;
		r = read_json_blob(hex, "nested index", &inner, err);
		if (r < 0)
			return r;
		return pick_manifest(j, inner, depth + 1, hex, err);
	}
	return 0;
}

static int find_oci(const struct import_job *j, const struct member *index_member,
                    struct found_image *img, struct al_error *err)
{
	_cleanup_cjson_ cJSON *index = NULL, *manifest = NULL;
	const cJSON *layers, *it;
	char hex[65];
	int r;

	r = read_json_blob(index_member->hex, "index.json", &index, err);
	if (r < 0)
		return r;
	r = pick_manifest(j, index, 0, hex, err);
	if (r < 0)
		return r;
	r = read_json_blob(hex, "manifest", &manifest, err);
	if (r < 0)
		return r;
	r = blob_by_digest(
	    j, al_json_str(cJSON_GetObjectItemCaseSensitive(manifest, "config"), "digest"),
	    "config", img->config, err);
	if (r < 0)
		return r;
	layers = cJSON_GetObjectItemCaseSensitive(manifest, "layers");
	if (!cJSON_IsArray(layers))
		return al_error_set(err, EINVAL, "manifest: no layers");
	cJSON_ArrayForEach(it, layers)
	{
		const char *type = al_json_str(it, "mediaType");
		char what[48];
		if (img->n_layers >= MAX_LAYERS)
			return al_error_set(err, EINVAL, "more than %d layers", MAX_LAYERS);
		if (type && (strstr(type, "nondistributable") || strstr(type, "foreign")))
			return al_error_set(err, EINVAL,
			                    "layer %zu is non-distributable (%s): its data is not "
			                    "in the archive",
			                    img->n_layers + 1, type);
		if (type && !strstr(type, "tar"))
			return al_error_set(err, EINVAL, "layer %zu: unsupported media type %s",
			                    img->n_layers + 1, type);
		snprintf(what, sizeof(what), "layer %zu", img->n_layers + 1);
		r = blob_by_digest(j, al_json_str(it, "digest"), what,
		                   img->layers[img->n_layers].blob, err);
		if (r < 0)
			return r;
		img->n_layers++;
	}
	return 0;
}

/* A `docker save` path that names its digest: "HEX.json", "blobs/sha256/HEX". */
static const char *digest_in_path(const char *path, char buf[65])
{
	const char *base = strrchr(path, '/');

	base = base ? base + 1 : path;
	if (strlen(base) == 69 && !strcmp(base + 64, ".json")) {
		snprintf(buf, 65, "%.64s", base);
		return hex_digest_valid(buf) ? buf : NULL;
	}
	if (!strncmp(path, "blobs/sha256/", 13) && hex_digest_valid(path + 13)) {
		snprintf(buf, 65, "%s", path + 13);
		return buf;
	}
	return NULL;
}

static int docker_blob(const struct import_job *j, const char *path, const char *what, char hex[65],
                       struct al_error *err)
{
	char norm[PATH_MAX], named[65];
	const struct member *m;
	int r;

	if (!path)
		return al_error_set(err, EINVAL, "manifest.json: %s without a path", what);
	r = tar_normalize_member(path, norm, sizeof(norm), err);
	if (r < 0)
		return al_error_prefix(err, "manifest.json: %s", what);
	m = member_at(j, norm);
	if (!m)
		return al_error_set(err, EINVAL, "manifest.json: %s %s is not in the archive", what,
		                    path);
	if (digest_in_path(norm, named) && strcmp(named, m->hex))
		return al_error_set(err, EINVAL,
		                    "%s %s does not match its digest (its content is sha256:%s)",
		                    what, path, m->hex);
	memcpy(hex, m->hex, 65);
	return 0;
}

static int find_docker(const struct import_job *j, const struct member *manifest_member,
                       struct found_image *img, struct al_error *err)
{
	_cleanup_cjson_ cJSON *list = NULL;
	const cJSON *entry, *it;
	int r;

	r = read_json_blob(manifest_member->hex, "manifest.json", &list, err);
	if (r < 0)
		return r;
	entry = cJSON_GetArrayItem(list, 0);
	if (!cJSON_IsArray(list) || !cJSON_IsObject(entry))
		return al_error_set(err, EINVAL, "manifest.json: not a list of images");
	if (cJSON_GetArraySize(list) > 1)
		return al_error_set(err, EINVAL,
		                    "manifest.json holds %d images: save one image per archive",
		                    cJSON_GetArraySize(list));
	r = docker_blob(j, al_json_str(entry, "Config"), "config", img->config, err);
	if (r < 0)
		return r;
	if (!cJSON_IsArray(cJSON_GetObjectItemCaseSensitive(entry, "Layers")))
		return al_error_set(err, EINVAL, "manifest.json: no Layers");
	cJSON_ArrayForEach(it, cJSON_GetObjectItemCaseSensitive(entry, "Layers"))
	{
		char what[32];
		if (img->n_layers >= MAX_LAYERS)
			return al_error_set(err, EINVAL, "more than %d layers", MAX_LAYERS);
		snprintf(what, sizeof(what), "layer %zu", img->n_layers + 1);
		r = docker_blob(j, cJSON_IsString(it) ? it->valuestring : NULL, what,
		                img->layers[img->n_layers].blob, err);
		if (r < 0)
			return r;
		img->n_layers++;
	}
	return 0;
}

/* ---- the import helper: layers ------------------------------------------------------------ */

/*
 * Decompress the blob into /layer.tar, checking it is the diff_id the
 * config names, then unpack it into /layers/DIFF.  *tar_bytes gets the
 * uncompressed size.
 */
static int unpack_layer(const struct import_job *j, size_t i, const char *blob, const char *diff,
                        uint64_t budget, uint64_t *tar_bytes, char ***opaque, struct al_error *err)
{
	_cleanup_(archive_read_freep) struct archive *a = archive_read_new();
	_cleanup_close_ int in = -1, tar = -1, dfd = -1;
	struct archive_entry *e;
	struct tar_limits lim = *j->limits;
	char path[128], what[48], hex[65];
	int r;

	snprintf(what, sizeof(what), "layer %zu", i + 1);
	snprintf(path, sizeof(path), "/blobs/%s", blob);
	in = open(path, O_RDONLY | O_CLOEXEC);
	if (!a || in < 0)
		return al_error_errno(err, "%s: open blob", what);
	archive_read_support_format_raw(a);
	archive_read_support_filter_gzip(a);
	archive_read_support_filter_zstd(a);
	if (archive_read_open_fd(a, in, 65536) != ARCHIVE_OK ||
	    archive_read_next_header(a, &e) != ARCHIVE_OK)
		return al_error_set(err, EINVAL, "%s: %s", what, archive_error_string(a));
	r = copy_hashed(a, "/layer.tar", budget + TAR_OVERHEAD_ALLOWANCE, what, hex, tar_bytes,
	                err);
	if (r < 0)
		return r;
	if (strcmp(hex, diff))
		return al_error_set(err, EINVAL,
		                    "%s does not match the config's diff_id sha256:%s (its content "
		                    "is sha256:%s)",
		                    what, diff, hex);
	snprintf(path, sizeof(path), "/layers/%s", diff);
	if (mkdir(path, 0755) < 0)
		return al_error_errno(err, "%s: mkdir", what);
	dfd = open(path, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	tar = open("/layer.tar", O_RDONLY | O_CLOEXEC);
	if (dfd < 0 || tar < 0)
		return al_error_errno(err, "%s: open", what);
	lim.max_extracted_bytes = budget;
	r = tar_extract_image_layer(tar, dfd, &lim, opaque, err);
	if (r < 0)
		return al_error_prefix(err, "%s", what);
	unlink("/layer.tar");
	return 0;
}

static int copy_config_field(cJSON *to, const cJSON *from, const char *key)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(from, key);

	if (!v || cJSON_IsNull(v))
		return 0;
	return cJSON_AddItemToObject(to, key, cJSON_Duplicate(v, true)) ? 0 : -ENOMEM;
}

static int import_child(void *arg, int out_fd, struct al_error *err)
{
	struct import_job *j = arg;
	_cleanup_cjson_ cJSON *config = NULL, *summary = cJSON_CreateObject();
	_cleanup_free_ struct found_image *img = calloc(1, sizeof(*img));
	_cleanup_free_ char *text = NULL;
	const cJSON *cfg, *diff_ids, *it;
	cJSON *layers, *fresh, *opaque, *out_cfg;
	const struct member *m;
	const char *os, *arch;
	uint64_t budget = j->limits->max_extracted_bytes, total = 0;
	size_t i = 0;
	int r;

	(void)out_fd;
	if (!img || !summary)
		return al_error_set(err, ENOMEM, "out of memory");
	r = helper_confine_to(j->root, err);
	if (r < 0)
		return r;
	r = read_archive(j, err);
	if (r < 0)
		return r;
	if ((m = member_at(j, "index.json")))
		r = find_oci(j, m, img, err);
	else if ((m = member_at(j, "manifest.json")))
		r = find_docker(j, m, img, err);
	else
		r = al_error_set(err, EINVAL,
		                 "neither index.json (an OCI image layout) nor manifest.json (a "
		                 "docker save archive) in the archive");
	if (r < 0)
		return r;
	r = read_json_blob(img->config, "config", &config, err);
	if (r < 0)
		return r;
	os = al_json_str(config, "os");
	arch = al_json_str(config, "architecture");
	if (os && strcmp(os, "linux"))
		return al_error_set(err, EINVAL, "the image is for %s, not linux", os);
	if (arch && strcmp(arch, host_architecture()))
		return al_error_set(err, EINVAL, "the image is for %s, this machine is %s", arch,
		                    host_architecture());
	diff_ids = cJSON_GetObjectItemCaseSensitive(
	    cJSON_GetObjectItemCaseSensitive(config, "rootfs"), "diff_ids");
	if (!cJSON_IsArray(diff_ids) || (size_t)cJSON_GetArraySize(diff_ids) != img->n_layers)
		return al_error_set(
		    err, EINVAL, "config: rootfs.diff_ids does not list the manifest's %zu layers",
		    img->n_layers);
	if (img->n_layers == 0)
		return al_error_set(err, EINVAL, "the image has no layers");
	if (mkdir("/layers", 0700) < 0)
		return al_error_errno(err, "mkdir layers");
	layers = cJSON_AddArrayToObject(summary, "layers");
	fresh = cJSON_AddArrayToObject(summary, "new_layers");
	opaque = cJSON_AddObjectToObject(summary, "opaque");
	if (!layers || !fresh || !opaque)
		return al_error_set(err, ENOMEM, "out of memory");
	cJSON_ArrayForEach(it, diff_ids)
	{
		const char *diff = cJSON_IsString(it) ? digest_hex(it->valuestring) : NULL;
		char path[128], digest[72];
		uint64_t bytes = 0;

		if (!diff)
			return al_error_set(err, EINVAL,
			                    "config: diff_id %zu is not a sha256 digest", i + 1);
		snprintf(path, sizeof(path), "/layers/%s", diff);
		if (!al_strv_contains(j->existing, diff) && access(path, F_OK) != 0) {
			_cleanup_strv_ char **dirs = calloc(1, sizeof(char *));
			cJSON *list = dirs ? cJSON_AddArrayToObject(opaque, diff) : NULL;
			if (!list)
				return al_error_set(err, ENOMEM, "out of memory");
			r = unpack_layer(j, i, img->layers[i].blob, diff, budget, &bytes, &dirs,
			                 err);
			if (r < 0)
				return r;
			for (char **d = dirs; *d; d++)
				if (!cJSON_AddItemToArray(list, cJSON_CreateString(*d)))
					return al_error_set(err, ENOMEM, "out of memory");
			budget = bytes > budget ? 0 : budget - bytes;
			total += bytes;
			if (!cJSON_AddItemToArray(fresh, cJSON_CreateString(diff)))
				return al_error_set(err, ENOMEM, "out of memory");
		}
		snprintf(digest, sizeof(digest), "sha256:%s", diff);
		if (!cJSON_AddItemToArray(layers, cJSON_CreateString(digest)))
			return al_error_set(err, ENOMEM, "out of memory");
		i++;
	}
	cfg = cJSON_GetObjectItemCaseSensitive(config, "config");
	out_cfg = cJSON_AddObjectToObject(summary, "config");
	if (!out_cfg)
		return al_error_set(err, ENOMEM, "out of memory");
	for (const char *k = "Env\0WorkingDir\0User\0Entrypoint\0Cmd\0"; *k; k += strlen(k) + 1)
		if (copy_config_field(out_cfg, cfg, k) < 0)
			return al_error_set(err, ENOMEM, "out of memory");
	{
		char id[72];
		snprintf(id, sizeof(id), "sha256:%s", img->config);
		cJSON_AddStringToObject(summary, "id", id);
	}
	if (al_json_str(config, "created"))
		cJSON_AddStringToObject(summary, "created", al_json_str(config, "created"));
	cJSON_AddStringToObject(summary, "architecture", arch ? arch : host_architecture());
	cJSON_AddNumberToObject(summary, "unpacked_bytes", (double)total);
	text = cJSON_PrintUnformatted(summary);
	if (!text)
		return al_error_set(err, ENOMEM, "out of memory");
	return al_write_file_atomic("/summary.json", text, strlen(text), 0600, err);
}

/* ---- users ------------------------------------------------------------------------------------
 */

/*
 * The image's file etc/NAME as its sandboxes see it: from the topmost layer
 * that has it, unless a layer above hides it (a whiteout, an opaque etc).
 * Never through a symlink: NULL (not found) for one.
 */
static FILE *open_image_etc(char *const *lowers, const char *name, struct al_error *err)
{
	char rel[64];

	snprintf(rel, sizeof(rel), "etc/%s", name);
	for (char *const *l = lowers; l && *l; l++) {
		struct open_how how = {.flags = O_RDONLY | O_NOFOLLOW | O_CLOEXEC,
		                       .resolve = RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS |
		                                  RESOLVE_NO_MAGICLINKS | RESOLVE_NO_XDEV};
		_cleanup_close_ int root = open(*l, O_PATH | O_DIRECTORY | O_CLOEXEC);
		struct stat st;
		char opaque[4];
		int fd;

		if (root < 0)
			return NULL;
		if (fstatat(root, "etc", &st, AT_SYMLINK_NOFOLLOW) < 0)
			continue;
		if (!S_ISDIR(st.st_mode))
			return NULL; /* a whiteout, a symlink, a file */
		if (fstatat(root, rel, &st, AT_SYMLINK_NOFOLLOW) == 0) {
			FILE *f;
			if (!S_ISREG(st.st_mode) || st.st_size > MAX_PASSWD)
				return NULL;
			fd = (int)syscall(SYS_openat2, root, rel, &how, sizeof(how));
			if (fd < 0)
				return NULL;
			f = fdopen(fd, "re");
			if (!f) {
				close(fd);
				al_error_set(err, ENOMEM, "out of memory");
			}
			return f;
		}
		{
			char etc[PATH_MAX];
			snprintf(etc, sizeof(etc), "%s/etc", *l);
			if (lgetxattr(etc, "trusted.overlay.opaque", opaque, sizeof(opaque)) == 1 &&
			    opaque[0] == 'y')
				return NULL;
		}
	}
	return NULL;
}

static bool parse_id(const char *s, unsigned long *out)
{
	char *end = NULL;

	if (!s[0] || s[0] < '0' || s[0] > '9')
		return false;
	errno = 0;
	*out = strtoul(s, &end, 10);
	return !errno && !*end;
}

/* User "", "name", "uid", "name:group", "uid:gid" -> ids, and the home. */
static int resolve_user(char *const *lowers, const char *user, struct image *img,
                        struct al_error *err)
{
	_cleanup_free_ char *copy = strdup(user ? user : "");
	char *group = copy ? strchr(copy, ':') : NULL;
	_cleanup_fclose_ FILE *pw = NULL, *gr = NULL;
	unsigned long id = 0;
	bool by_id, found = false;
	char buf[16384];

	if (!copy)
		return al_error_set(err, ENOMEM, "out of memory");
	if (group)
		*group++ = '\0';
	img->uid = 0;
	img->gid = 0;
	/* No User (or ":group" alone): root. */
	by_id = !copy[0] || parse_id(copy, &id);
	pw = open_image_etc(lowers, "passwd", err);
	for (struct passwd p, *res; pw && fgetpwent_r(pw, &p, buf, sizeof(buf), &res) == 0;) {
		if (by_id ? p.pw_uid == id : !strcmp(p.pw_name, copy)) {
			img->uid = p.pw_uid;
			img->gid = p.pw_gid;
			free(img->home);
			img->home = p.pw_dir && p.pw_dir[0] == '/' ? strdup(p.pw_dir) : NULL;
			found = true;
			break;
		}
	}
	if (!found && !by_id)
		return al_error_set(err, EINVAL,
		                    "User '%s': no such user in the image's /etc/passwd", user);
	if (!found)
		img->uid = (uid_t)id;
	if (group && group[0]) {
		if (parse_id(group, &id)) {
			img->gid = (gid_t)id;
		} else {
			found = false;
			gr = open_image_etc(lowers, "group", err);
			for (struct group g, *res;
			     gr && fgetgrent_r(gr, &g, buf, sizeof(buf), &res) == 0;) {
				if (!strcmp(g.gr_name, group)) {
					img->gid = g.gr_gid;
					found = true;
					break;
				}
			}
			if (!found)
				return al_error_set(
				    err, EINVAL,
				    "User '%s': no group '%s' in the image's /etc/group", user,
				    group);
		}
	}
	if (img->uid >= 65536 || img->gid >= 65536)
		return al_error_set(
		    err, EINVAL, "User '%s': ids beyond 65535 are not mapped in a sandbox", user);
	return 0;
}

/* ---- importing ---------------------------------------------------------------------------------
 */

static int existing_layers(const char *dir, char ***out, struct al_error *err)
{
	_cleanup_strv_ char **v = calloc(1, sizeof(char *));
	_cleanup_closedir_ DIR *d = NULL;
	char path[PATH_MAX];
	struct dirent *de;

	snprintf(path, sizeof(path), "%s/layers/sha256", dir);
	if (!v)
		return al_error_set(err, ENOMEM, "out of memory");
	d = opendir(path);
	if (!d)
		return al_error_errno(err, "open %s", path);
	while ((de = readdir(d)))
		if (hex_digest_valid(de->d_name) && al_strv_push(&v, de->d_name) < 0)
			return al_error_set(err, ENOMEM, "out of memory");
	*out = TAKE_PTR(v);
	return 0;
}

static int layer_paths(const char *dir, const cJSON *layers, char ***out, struct al_error *err)
{
	int n = cJSON_GetArraySize(layers);
	_cleanup_strv_ char **v = calloc((size_t)n + 1, sizeof(char *));
	const cJSON *it;
	int i = n;

	if (!v)
		return al_error_set(err, ENOMEM, "out of memory");
	/* Top first, as overlayfs takes them. */
	cJSON_ArrayForEach(it, layers)
	{
		const char *hex = cJSON_IsString(it) ? digest_hex(it->valuestring) : NULL;
		struct stat st;
		if (!hex)
			return al_error_set(err, EINVAL, "malformed layer digest");
		if (asprintf(&v[--i], "%s/layers/sha256/%s", dir, hex) < 0) {
			v[i] = NULL;
			return al_error_set(err, ENOMEM, "out of memory");
		}
		if (stat(v[i], &st) < 0 || !S_ISDIR(st.st_mode))
			return al_error_set(err, ENOENT, "layer %s is missing from the store",
			                    it->valuestring);
	}
	*out = TAKE_PTR(v);
	return 0;
}

/* The record of an import whose layers are in place. */
static cJSON *make_record(const char *name, const cJSON *summary, const struct image *img,
                          uint64_t archive_bytes)
{
	_cleanup_cjson_ cJSON *o = cJSON_CreateObject();
	const cJSON *cfg = cJSON_GetObjectItemCaseSensitive(summary, "config");
	char now[40];

	al_iso8601_now(now, sizeof(now), false);
	if (!o || !cJSON_AddStringToObject(o, "name", name) ||
	    !cJSON_AddStringToObject(o, "id", img->id) ||
	    !cJSON_AddItemToObject(
	        o, "layers",
	        cJSON_Duplicate(cJSON_GetObjectItemCaseSensitive(summary, "layers"), true)) ||
	    !cJSON_AddItemToObject(o, "config", cJSON_Duplicate(cfg, true)) ||
	    !cJSON_AddNumberToObject(o, "uid", img->uid) ||
	    !cJSON_AddNumberToObject(o, "gid", img->gid) ||
	    !cJSON_AddStringToObject(o, "imported", now) ||
	    !cJSON_AddNumberToObject(o, "archive_bytes", (double)archive_bytes))
		return NULL;
	if (img->home && !cJSON_AddStringToObject(o, "home", img->home))
		return NULL;
	for (const char *k = "created\0architecture\0"; *k; k += strlen(k) + 1)
		if (al_json_str(summary, k) &&
		    !cJSON_AddStringToObject(o, k, al_json_str(summary, k)))
			return NULL;
	return TAKE_PTR(o);
}

/*
 * The directories the helper listed as opaque get trusted.overlay.opaque,
 * which it could not set (no CAP_SYS_ADMIN).  Its list is as untrusted as
 * the archive: each directory is reached below its layer, never through a
 * symlink.
 */
static int mark_opaque(const char *tmpdir, const cJSON *summary, struct al_error *err)
{
	const cJSON *layer, *it;

	cJSON_ArrayForEach(layer, cJSON_GetObjectItemCaseSensitive(summary, "opaque"))
	{
		char path[PATH_MAX];
		_cleanup_close_ int root = -1;

		if (!layer->string || !hex_digest_valid(layer->string))
			return al_error_set(err, EIO, "import helper named a malformed layer");
		snprintf(path, sizeof(path), "%s/layers/%s", tmpdir, layer->string);
		root = open(path, O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		if (root < 0)
			return al_error_errno(err, "open %s", path);
		cJSON_ArrayForEach(it, layer)
		{
			struct open_how how = {.flags =
			                           O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC,
			                       .resolve = RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS |
			                                  RESOLVE_NO_MAGICLINKS | RESOLVE_NO_XDEV};
			_cleanup_close_ int fd = -1;

			if (!cJSON_IsString(it))
				return al_error_set(err, EIO,
				                    "import helper wrote a malformed list");
			fd = (int)syscall(SYS_openat2, root,
			                  it->valuestring[0] ? it->valuestring : ".", &how,
			                  sizeof(how));
			if (fd < 0)
				return al_error_errno(err, "opaque directory %s of layer %.12s",
				                      it->valuestring, layer->string);
			if (fsetxattr(fd, "trusted.overlay.opaque", "y", 1, 0) < 0)
				return al_error_errno(err, "make %s opaque", it->valuestring);
		}
	}
	return 0;
}

/* Move the new layers in, resolve the user and write the record: under the lock. */
static int commit_locked(struct image_store *st, const char *name, const char *tmpdir,
                         const cJSON *summary, uint64_t archive_bytes, cJSON **record,
                         struct al_error *err)
{
	_cleanup_strv_ char **lowers = NULL;
	_cleanup_cjson_ cJSON *rec = NULL;
	_cleanup_free_ char *text = NULL;
	struct image img = {0};
	const cJSON *it, *cfg = cJSON_GetObjectItemCaseSensitive(summary, "config");
	char from[PATH_MAX], to[PATH_MAX], final[PATH_MAX];
	const char *id = al_json_str(summary, "id");
	int r;

	if (!digest_hex(id))
		return al_error_set(err, EIO, "import helper gave no image id");
	snprintf(img.id, sizeof(img.id), "%s", id);
	cJSON_ArrayForEach(it, cJSON_GetObjectItemCaseSensitive(summary, "new_layers"))
	{
		struct stat s;
		if (!cJSON_IsString(it) || !hex_digest_valid(it->valuestring))
			return al_error_set(err, EIO, "import helper gave a malformed layer");
		snprintf(from, sizeof(from), "%s/layers/%s", tmpdir, it->valuestring);
		snprintf(to, sizeof(to), "%s/layers/sha256/%s", st->dir, it->valuestring);
		if (stat(to, &s) == 0)
			continue; /* another import brought it meanwhile */
		if (rename(from, to) < 0)
			return al_error_errno(err, "move layer %s into the store", it->valuestring);
	}
	r = layer_paths(st->dir, cJSON_GetObjectItemCaseSensitive(summary, "layers"), &lowers, err);
	if (r < 0)
		return r;
	r = resolve_user(lowers, al_json_str(cfg, "User"), &img, err);
	if (r == 0) {
		rec = make_record(name, summary, &img, archive_bytes);
		text = rec ? cJSON_PrintUnformatted(rec) : NULL;
		r = text ? 0 : al_error_set(err, ENOMEM, "out of memory");
	}
	free(img.home);
	if (r < 0)
		return r;
	snprintf(to, sizeof(to), "%s/record.json", tmpdir);
	r = al_write_file_atomic(to, text, strlen(text), 0600, err);
	if (r < 0)
		return r;
	r = record_path(st->dir, name, final, sizeof(final), err);
	if (r < 0)
		return r;
	if (renameat2(AT_FDCWD, to, AT_FDCWD, final, RENAME_NOREPLACE) < 0)
		return errno == EEXIST ? al_error_set(err, EEXIST, "image '%s' exists", name)
		                       : al_error_errno(err, "write %s", final);
	if (record)
		*record = TAKE_PTR(rec);
	return 0;
}

int image_import(struct image_store *st, const char *name, int tar_fd,
                 const struct tar_limits *limits, cJSON **record, struct al_error *err)
{
	_cleanup_strv_ char **existing = NULL;
	_cleanup_cjson_ cJSON *summary = NULL;
	_cleanup_free_ char *text = NULL;
	struct import_job j = {.fd = tar_fd, .limits = limits};
	struct helper_opts opts = HELPER_OPTS_INIT;
	char tmpdir[PATH_MAX], path[PATH_MAX];
	struct al_error cerr = AL_ERROR_INIT;
	struct stat fst;
	size_t len = 0;
	int r;

	r = record_path(st->dir, name, path, sizeof(path), err);
	if (r < 0)
		return r;
	if (access(path, F_OK) == 0)
		return al_error_set(err, EEXIST, "image '%s' exists: remove it first", name);
	if (fstat(tar_fd, &fst) < 0)
		return al_error_errno(err, "stat the archive");
	if (limits->max_input_bytes && (uint64_t)fst.st_size > limits->max_input_bytes)
		return al_error_set(err, EFBIG, "archive of %lld bytes exceeds the limit of %llu",
		                    (long long)fst.st_size,
		                    (unsigned long long)limits->max_input_bytes);
	r = existing_layers(st->dir, &existing, err);
	if (r < 0)
		return r;
	snprintf(tmpdir, sizeof(tmpdir), "%s/tmp/import-XXXXXX", st->dir);
	if (!mkdtemp(tmpdir))
		return al_error_errno(err, "mkdtemp %s", tmpdir);
	j.root = tmpdir;
	j.existing = existing;
	opts.keep_fd = tar_fd;
	opts.what = "image import helper";
	r = helper_run(import_child, &j, &opts, err);
	if (r == 0) {
		snprintf(path, sizeof(path), "%s/summary.json", tmpdir);
		r = al_read_file(path, 16u << 20, &text, &len, err);
	}
	if (r == 0) {
		summary = cJSON_ParseWithLength(text, len);
		if (!cJSON_IsObject(summary))
			r = al_error_set(err, EIO, "import helper wrote no summary");
	}
	if (r == 0)
		r = mark_opaque(tmpdir, summary, err);
	if (r == 0) {
		pthread_mutex_lock(&st->lock);
		r = commit_locked(st, name, tmpdir, summary, (uint64_t)fst.st_size, record, err);
		/* Layers moved in for a record that was not written. */
		if (r < 0 && collect_layers_locked(st, NULL, &cerr) < 0)
			al_error_clear(&cerr);
		pthread_mutex_unlock(&st->lock);
	}
	if (al_rm_rf(tmpdir, &cerr) < 0)
		al_error_clear(&cerr);
	return r < 0 ? al_error_prefix(err, "import image '%s'", name) : 0;
}

/* ---- listing, removing, loading ------------------------------------------------------------- */

int image_json(struct image_store *st, const char *name, cJSON **out, struct al_error *err)
{
	return read_record(st->dir, name, out, err);
}

cJSON *image_list_json(struct image_store *st)
{
	_cleanup_strv_ char **names = NULL;
	struct al_error err = AL_ERROR_INIT;
	cJSON *list = cJSON_CreateArray();

	if (!list || list_names(st->dir, &names, &err) < 0)
		return list;
	for (char **n = names; *n; n++) {
		cJSON *rec = NULL;
		if (read_record(st->dir, *n, &rec, &err) < 0) {
			al_error_clear(&err);
			continue; /* removed meanwhile */
		}
		cJSON_AddItemToArray(list, rec);
	}
	return list;
}

int image_remove(struct image_store *st, const char *name, unsigned *layers_removed,
                 struct al_error *err)
{
	char path[PATH_MAX];
	int r = record_path(st->dir, name, path, sizeof(path), err);

	if (r < 0)
		return r;
	pthread_mutex_lock(&st->lock);
	if (unlink(path) < 0)
		r = errno == ENOENT ? al_error_set(err, ENOENT, "no image '%s'", name)
		                    : al_error_errno(err, "remove %s", path);
	else
		r = collect_layers_locked(st, layers_removed, err);
	pthread_mutex_unlock(&st->lock);
	return r;
}

void image_free(struct image *img)
{
	al_strv_free(img->lowers);
	al_strv_free(img->env);
	al_strv_free(img->entrypoint);
	al_strv_free(img->cmd);
	free(img->workdir);
	free(img->home);
	*img = (struct image){0};
}

static int strings_of(const cJSON *v, const char *what, char ***out, struct al_error *err)
{
	const cJSON *it;

	*out = NULL;
	if (!v || cJSON_IsNull(v))
		return 0;
	if (!cJSON_IsArray(v))
		return al_error_set(err, EINVAL, "image config: %s is not a list", what);
	*out = calloc(1, sizeof(char *));
	if (!*out)
		return al_error_set(err, ENOMEM, "out of memory");
	cJSON_ArrayForEach(it, v)
	{
		if (!cJSON_IsString(it))
			return al_error_set(err, EINVAL, "image config: %s holds a non-string",
			                    what);
		if (al_strv_push(out, it->valuestring) < 0)
			return al_error_set(err, ENOMEM, "out of memory");
	}
	return 0;
}

static int load(const char *dir, const char *name, struct image *img, struct al_error *err)
{
	_cleanup_cjson_ cJSON *rec = NULL;
	const cJSON *cfg;
	const char *id, *workdir, *home;
	int r = read_record(dir, name, &rec, err);

	if (r < 0)
		return r;
	cfg = cJSON_GetObjectItemCaseSensitive(rec, "config");
	id = al_json_str(rec, "id");
	snprintf(img->name, sizeof(img->name), "%s", name);
	snprintf(img->id, sizeof(img->id), "%s", id ? id : "");
	r = layer_paths(dir, cJSON_GetObjectItemCaseSensitive(rec, "layers"), &img->lowers, err);
	if (r == 0)
		r = strings_of(cJSON_GetObjectItemCaseSensitive(cfg, "Env"), "Env", &img->env, err);
	if (r == 0)
		r = strings_of(cJSON_GetObjectItemCaseSensitive(cfg, "Entrypoint"), "Entrypoint",
		               &img->entrypoint, err);
	if (r == 0)
		r = strings_of(cJSON_GetObjectItemCaseSensitive(cfg, "Cmd"), "Cmd", &img->cmd, err);
	if (r < 0)
		return r;
	if (!img->lowers[0])
		return al_error_set(err, EINVAL, "the image has no layers");
	workdir = al_json_str(cfg, "WorkingDir");
	if (workdir && workdir[0]) {
		if (workdir[0] != '/')
			return al_error_set(err, EINVAL, "WorkingDir '%s' is not absolute",
			                    workdir);
		img->workdir = strdup(workdir);
		if (!img->workdir)
			return al_error_set(err, ENOMEM, "out of memory");
	}
	home = al_json_str(rec, "home");
	if (home && !(img->home = strdup(home)))
		return al_error_set(err, ENOMEM, "out of memory");
	img->uid = (uid_t)al_json_num(rec, "uid", 0);
	img->gid = (gid_t)al_json_num(rec, "gid", 0);
	if (img->uid >= 65536 || img->gid >= 65536)
		return al_error_set(err, EINVAL, "user ids beyond 65535");
	return 0;
}

int image_load(const char *dir, const char *name, struct image *out, struct al_error *err)
{
	struct image img = {0};
	int r = load(dir, name, &img, err);

	if (r < 0) {
		image_free(&img);
		return al_error_prefix(err, "image '%s'", name);
	}
	*out = img;
	return 0;
}
