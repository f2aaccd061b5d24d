/* SPDX-License-Identifier: Apache-2.0 */
#include "test.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdbool.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cleanup.h"
#include "json.h"
#include "error.h"
#include "manifest.h"
#include "util.h"

#define TEST_UID 100000
#define TEST_GID 100001

static char base[PATH_MAX]; /* scratch directory of the whole run */

/* snprintf that treats truncation as a broken test setup. */
#define FMT(buf, size, ...)                                                                        \
	do {                                                                                       \
		if ((size_t)snprintf(buf, size, __VA_ARGS__) >= (size_t)(size))                    \
			abort();                                                                   \
	} while (0)

static int parse_text(const char *text, size_t max_file, size_t max_total, struct manifest **m,
                      struct al_error *err)
{
	_cleanup_cjson_ cJSON *json = cJSON_Parse(text);

	if (!json) {
		fprintf(stderr, "test JSON does not parse: %s\n", text);
		return -1000;
	}
	return manifest_parse(json, max_file, max_total, m, err);
}

/* Parse text, expecting failure with code and a message containing needle. */
static void expect_refused(const char *text, int code, const char *needle, int line)
{
	struct al_error err = AL_ERROR_INIT;
	struct manifest *m = NULL;
	int r = parse_text(text, 0, 0, &m, &err);

	if (r != -code || !strstr(err.msg, needle)) {
		fprintf(stderr, "%s:%d: %s: %s\n  -> %d \"%s\", expected %d containing \"%s\"\n",
		        __FILE__, line, test_current, text, r, err.msg, -code, needle);
		test_failures++;
	}
	if (r == 0)
		manifest_free(m);
}
#define REFUSED(text, code, needle) expect_refused(text, code, needle, __LINE__)

static void write_file(const char *path, const char *content, mode_t mode)
{
	struct al_error err = AL_ERROR_INIT;

	if (al_write_file_atomic(path, content, strlen(content), mode, &err) < 0 ||
	    chmod(path, mode) < 0) {
		fprintf(stderr, "setup: %s: %s\n", path, err.msg);
		exit(1);
	}
}

static void make_dir(const char *path, mode_t mode)
{
	if (mkdir(path, mode) < 0 || chmod(path, mode) < 0) {
		perror(path);
		exit(1);
	}
}

static char *path_in(const char *dir, const char *name)
{
	static char buf[4][PATH_MAX];
	static int next;
	char *p = buf[next++ % 4];

	FMT(p, PATH_MAX, "%s/%s", dir, name);
	return p;
}

static mode_t mode_of(const char *path)
{
	struct stat st;

	if (lstat(path, &st) < 0)
		return (mode_t)-1;
	return st.st_mode & 07777;
}

static bool has_content(const char *path, const char *want, size_t want_len)
{
	struct al_error err = AL_ERROR_INIT;
	_cleanup_free_ char *data = NULL;
	size_t len = 0;

	if (al_read_file(path, 1 << 20, &data, &len, &err) < 0)
		return false;
	return len == want_len && memcmp(data, want, len) == 0;
}

TEST(parse_valid)
{
	struct al_error err = AL_ERROR_INIT;
	struct manifest *m = NULL;
	char text[4096];
	char *const *env;

	FMT(text, sizeof(text),
	    "{\"version\": 1, \"entries\": {"
	    "\"hello.txt\": {\"type\": \"file\", \"content\": \"hi\\n\"},"
	    "\"bin.dat\": {\"type\": \"file\", \"content\": {\"type\": \"base64\", \"data\": "
	    "\"AAEC/w==\"}},"
	    "\"src\": {\"type\": \"dir\", \"children\": {\"main.c\": {\"type\": \"file\", "
	    "\"content\": \"int x;\", \"permissions\": \"-rwxr-x---\"}}},"
	    "\"data.csv\": {\"type\": \"local_file\", \"src\": \"%s\"},"
	    "\"repo\": {\"type\": \"local_dir\", \"src\": \"%s\", \"description\": \"the "
	    "repo\", \"ephemeral\": true}},"
	    "\"environment\": {\"A\": \"1\", \"B\": {\"value\": \"two\", \"ephemeral\": true, "
	    "\"description\": \"b\"}},"
	    "\"users\": [], \"groups\": [], \"extraPathGrants\": [], "
	    "\"remoteMountCommandAllowlist\": [\"rclone\"]}",
	    path_in(base, "src.csv"), path_in(base, "srcdir"));
	CHECK_INT(parse_text(text, 0, 0, &m, &err), 0);
	if (!m) {
		fprintf(stderr, "  %s\n", err.msg);
		return;
	}
	CHECK_STR(manifest_root(m), "/workspace");
	env = manifest_environment(m);
	CHECK_STR(env[0], "A=1");
	CHECK_STR(env[1], "B=two");
	CHECK(env[2] == NULL);
	manifest_free(m);

	/* Everything is optional; root is normalized. */
	m = NULL;
	CHECK_INT(parse_text("{}", 0, 0, &m, &err), 0);
	if (m) {
		CHECK_STR(manifest_root(m), "/workspace");
		CHECK(manifest_environment(m)[0] == NULL);
		manifest_free(m);
	}
	m = NULL;
	CHECK_INT(parse_text("{\"root\": \"/srv//work/./\", \"entries\": null}", 0, 0, &m, &err),
	          0);
	if (m) {
		CHECK_STR(manifest_root(m), "/srv/work");
		manifest_free(m);
	}
	/* Content exactly at the limits is fine. */
	m = NULL;
	CHECK_INT(parse_text("{\"entries\": {\"a\": {\"type\": \"file\", \"content\": \"1234\"}, "
	                     "\"b\": {\"type\": \"file\", \"content\": \"56\"}}}",
	                     4, 6, &m, &err),
	          0);
	manifest_free(m);
}

TEST(refusals)
{
	char text[8192];
	char missing[PATH_MAX + 64];
	size_t n;

	REFUSED("[]", EINVAL, "object");
	REFUSED("{\"entries\": {\"/etc\": {\"type\": \"file\", \"content\": \"\"}}}", EINVAL,
	        "manifest entry '/etc': absolute keys are not allowed");
	REFUSED("{\"entries\": {\"../x\": {\"type\": \"file\", \"content\": \"\"}}}", EINVAL,
	        "'..' components");
	REFUSED("{\"entries\": {\"a/../../b\": {\"type\": \"file\", \"content\": \"\"}}}", EINVAL,
	        "entry 'a/../../b'");
	REFUSED("{\"entries\": {\"a/..\": {\"type\": \"dir\"}}}", EINVAL, "'..' components");
	REFUSED("{\"entries\": {\"a//b\": {\"type\": \"file\", \"content\": \"\"}}}", EINVAL,
	        "empty path components");
	REFUSED("{\"entries\": {\"a/\": {\"type\": \"dir\"}}}", EINVAL, "empty path components");
	REFUSED("{\"entries\": {\"\": {\"type\": \"dir\"}}}", EINVAL, "empty keys");
	REFUSED("{\"entries\": {\".\": {\"type\": \"dir\"}}}", EINVAL, "'.' components");
	REFUSED("{\"entries\": {\"a\\\\b\": {\"type\": \"dir\"}}}", EINVAL, "separators");
	/* '..' hidden in a nested key is caught and the message names the full path. */
	REFUSED("{\"entries\": {\"d\": {\"type\": \"dir\", \"children\": {\"../../x\": "
	        "{\"type\": \"file\", \"content\": \"\"}}}}}",
	        EINVAL, "entry 'd/../../x'");
	REFUSED("{\"entries\": {\"d\": {\"type\": \"dir\", \"children\": {\"/x\": "
	        "{\"type\": \"file\", \"content\": \"\"}}}}}",
	        EINVAL, "absolute keys");

	/* A key longer than 4096 bytes, in components short enough on their own. */
	n = (size_t)snprintf(text, sizeof(text), "{\"entries\": {\"");
	for (int i = 0; i < 42; i++)
		n += (size_t)snprintf(text + n, sizeof(text) - n, "%0100d/", i);
	FMT(text + n, sizeof(text) - n, "end\": {\"type\": \"dir\"}}}");
	REFUSED(text, EINVAL, "longer than 4096");

	REFUSED("{\"entries\": {\"x\": {\"type\": \"symlink\", \"target\": \"/\"}}}", EINVAL,
	        "manifest entry 'x': unknown type 'symlink'");
	REFUSED("{\"entries\": {\"x\": {\"content\": \"a\"}}}", EINVAL, "missing \"type\"");
	REFUSED("{\"entries\": {\"x\": {\"type\": \"file\", \"contents\": \"a\"}}}", EINVAL,
	        "unknown field 'contents'");
	REFUSED("{\"entries\": {\"x\": {\"type\": \"file\"}}}", EINVAL, "need \"content\"");
	REFUSED("{\"entries\": {\"x\": {\"type\": \"file\", \"content\": \"a\", \"permissions\": "
	        "\"rwx\"}}}",
	        EINVAL, "invalid permissions");
	REFUSED("{\"entries\": {\"x\": {\"type\": \"file\", \"content\": {\"type\": \"base64\", "
	        "\"data\": \"@@@@\"}}}}",
	        EINVAL, "entry 'x': invalid base64");
	REFUSED("{\"entries\": {\"x\": {\"type\": \"dir\", \"children\": []}}}", EINVAL,
	        "children");
	REFUSED("{\"entires\": {}}", EINVAL, "unknown field 'entires'");

	REFUSED("{\"version\": 2}", EINVAL, "version 2");
	REFUSED("{\"version\": \"1\"}", EINVAL, "version");
	REFUSED("{\"version\": 1.5}", EINVAL, "version");
	REFUSED("{\"root\": \"workspace\"}", EINVAL, "must be absolute");
	REFUSED("{\"root\": \"/a/../b\"}", EINVAL, "'..'");
	REFUSED("{\"root\": 7}", EINVAL, "root");

	FMT(missing, sizeof(missing),
	    "{\"entries\": {\"d\": {\"type\": \"local_file\", \"src\": \"%s/nope\"}}}", base);
	REFUSED(missing, ENOENT, "nope");
	FMT(missing, sizeof(missing),
	    "{\"entries\": {\"d\": {\"type\": \"local_dir\", \"src\": \"%s/nope\"}}}", base);
	REFUSED(missing, ENOENT, "manifest entry 'd'");
	REFUSED("{\"entries\": {\"d\": {\"type\": \"local_dir\", \"src\": \"relative/dir\"}}}",
	        EINVAL, "absolute host path");
	REFUSED("{\"entries\": {\"d\": {\"type\": \"local_dir\"}}}", EINVAL, "need \"src\"");
	FMT(missing, sizeof(missing),
	    "{\"entries\": {\"d\": {\"type\": \"local_dir\", \"src\": \"%s/src.csv\"}}}", base);
	REFUSED(missing, EINVAL, "not a directory");
	FMT(missing, sizeof(missing),
	    "{\"entries\": {\"d\": {\"type\": \"local_file\", \"src\": \"%s/srcdir\"}}}", base);
	REFUSED(missing, EINVAL, "not a regular file");

	/* Conflicts: two entries for one path, or anything below a non-dir. */
	REFUSED("{\"entries\": {\"a\": {\"type\": \"file\", \"content\": \"\"}, "
	        "\"a/b\": {\"type\": \"file\", \"content\": \"\"}}}",
	        EINVAL, "manifest entry 'a/b': conflicts with file entry 'a'");
	REFUSED("{\"entries\": {\"d\": {\"type\": \"dir\", \"children\": {\"x\": "
	        "{\"type\": \"file\", \"content\": \"1\"}}}, "
	        "\"d/x\": {\"type\": \"dir\"}}}",
	        EINVAL, "entry 'd/x': duplicate path");
	REFUSED("{\"entries\": {\"a\": {\"type\": \"dir\"}, \"a\": {\"type\": \"dir\"}}}", EINVAL,
	        "duplicate path");
	FMT(missing, sizeof(missing),
	    "{\"entries\": {\"r\": {\"type\": \"local_dir\", \"src\": \"%s/srcdir\"}, "
	    "\"r/x/y\": {\"type\": \"dir\"}}}",
	    base);
	REFUSED(missing, EINVAL, "conflicts with local_dir entry 'r'");

	/* Mount entries: credentials never in the manifest; unknown kinds refused. */
	REFUSED("{\"entries\": {\"b\": {\"type\": \"s3_mount\", \"bucket\": \"b\", "
	        "\"secretAccessKey\": \"k\"}}}",
	        EINVAL, "'secretAccessKey' is a credential");
	REFUSED("{\"entries\": {\"b\": {\"type\": \"azure_blob_mount\", \"container\": \"c\", "
	        "\"accountKey\": \"k\"}}}",
	        EINVAL, "'accountKey' is a credential");
	REFUSED("{\"entries\": {\"b\": {\"type\": \"mount\", \"provider\": \"gcs\", "
	        "\"config\": {\"bucket\": \"b\", \"accessToken\": \"t\"}}}}",
	        EINVAL, "'accessToken' is a credential");
	REFUSED("{\"entries\": {\"b\": {\"type\": \"s3_mount\"}}}", EINVAL,
	        "s3 mounts need \"bucket\"");
	REFUSED("{\"entries\": {\"b\": {\"type\": \"s3_mount\", \"bucket\": \"a/b\"}}}", EINVAL,
	        "invalid bucket");
	REFUSED("{\"entries\": {\"b\": {\"type\": \"r2_mount\", \"bucket\": \"b\"}}}", EINVAL,
	        "r2 mounts need \"accountId\"");
	REFUSED("{\"entries\": {\"b\": {\"type\": \"s3_mount\", \"bucket\": \"b\", "
	        "\"container\": \"c\"}}}",
	        EINVAL, "unknown field 'container' for a s3 mount");
	REFUSED("{\"entries\": {\"b\": {\"type\": \"box_mount\"}}}", ENOTSUP,
	        "type 'box_mount' is not supported");
	REFUSED("{\"entries\": {\"b\": {\"type\": \"mount\", \"provider\": \"box\"}}}", ENOTSUP,
	        "mount provider 'box' is not supported");
	REFUSED("{\"entries\": {\"b\": {\"type\": \"s3_mount\", \"bucket\": \"b\", "
	        "\"mountStrategy\": {\"type\": \"in_container\"}}}}",
	        ENOTSUP, "'in_container' is not supported");
	REFUSED("{\"entries\": {\"b\": {\"type\": \"s3_mount\", \"bucket\": \"b\", "
	        "\"mountPath\": \"../x\"}}}",
	        EINVAL, "'..' components");
	REFUSED("{\"entries\": {\"b\": {\"type\": \"s3_mount\", \"bucket\": \"b\", "
	        "\"readOnly\": 1}}}",
	        EINVAL, "readOnly must be a boolean");
	/* git_repo */
	REFUSED("{\"entries\": {\"x\": {\"type\": \"git_repo\"}}}", EINVAL, "need \"repo\"");
	REFUSED("{\"entries\": {\"x\": {\"type\": \"git_repo\", \"repo\": \"--upload-pack=x\"}}}",
	        EINVAL, "must not start with '-'");
	REFUSED("{\"entries\": {\"x\": {\"type\": \"git_repo\", \"repo\": \"a/b\", "
	        "\"subpath\": \"../etc\"}}}",
	        EINVAL, "'..' components");
	REFUSED("{\"entries\": {\"x\": {\"type\": \"git_repo\", \"repo\": \"a/b\", "
	        "\"branch\": \"main\"}}}",
	        EINVAL, "unknown field 'branch'");
	REFUSED("{\"users\": [{\"name\": \"sandbox-user\"}]}", ENOTSUP, "users");
	REFUSED("{\"groups\": [{\"name\": \"g\"}]}", ENOTSUP, "groups");
	REFUSED("{\"extraPathGrants\": [{\"path\": \"/data\"}]}", ENOTSUP, "extraPathGrants");
	REFUSED("{\"entries\": {\"x\": {\"type\": \"dir\", \"group\": {\"name\": \"g\"}}}}",
	        ENOTSUP, "group");
	REFUSED("{\"environment\": {\"K\": {\"type\": \"secret_ref\", \"name\": \"k\"}}}", ENOTSUP,
	        "secret_ref");
	REFUSED("{\"environment\": {\"A=B\": \"x\"}}", EINVAL, "invalid name 'A=B'");
	REFUSED("{\"environment\": {\"A\": 1}}", EINVAL, "environment 'A'");
	REFUSED("{\"environment\": {\"A\": \"1\", \"A\": \"2\"}}", EINVAL, "duplicate name 'A'");
}

TEST(mount_entries)
{
	struct al_error err = AL_ERROR_INIT;
	struct manifest *m = NULL;
	const struct manifest_mount *mt;
	const char *key = NULL;
	size_t iter = 0;

	CHECK_INT(parse_text("{\"root\": \"/work\", \"entries\": {"
	                     "\"data\": {\"type\": \"s3_mount\", \"bucket\": \"in\", "
	                     "\"prefix\": \"p/\", \"region\": \"us-east-1\", "
	                     "\"endpointUrl\": \"http://127.0.0.1:9000\", \"readOnly\": true}, "
	                     "\"out\": {\"type\": \"mount\", \"provider\": \"azure_blob\", "
	                     "\"mountPath\": \"/mnt/out\", "
	                     "\"config\": {\"container\": \"c\", \"accountName\": \"acct\"}}, "
	                     "\"repo\": {\"type\": \"git_repo\", \"repo\": \"o/n\", "
	                     "\"ref\": \"v1\"}}}",
	                     0, 0, &m, &err),
	          0);
	mt = manifest_next_mount(m, &iter, &key);
	CHECK(mt != NULL);
	CHECK_STR(key, "data");
	CHECK_STR(mt->provider, "s3");
	CHECK_STR(mt->bucket, "in");
	CHECK_STR(mt->prefix, "p/");
	CHECK_STR(mt->endpoint, "http://127.0.0.1:9000");
	CHECK_STR(mt->path, "/work/data");
	CHECK(mt->read_only);
	mt = manifest_next_mount(m, &iter, &key);
	CHECK(mt != NULL);
	CHECK_STR(key, "out");
	CHECK_STR(mt->provider, "azure_blob");
	CHECK_STR(mt->bucket, "c");
	CHECK_STR(mt->account, "acct");
	CHECK_STR(mt->path, "/mnt/out");
	CHECK(!mt->read_only);
	CHECK(manifest_next_mount(m, &iter, &key) == NULL);
	CHECK_STR(manifest_first_git_repo(m), "repo");
	/* A remote repository does not read host files; a local one does. */
	CHECK(manifest_first_host_source(m) == NULL);
	manifest_free(m);
	CHECK_INT(parse_text("{\"entries\": {\"r\": {\"type\": \"git_repo\", "
	                     "\"repo\": \"file:///srv/r.git\"}}}",
	                     0, 0, &m, &err),
	          0);
	CHECK_STR(manifest_first_host_source(m), "r");
	manifest_free(m);
}

TEST(size_limits)
{
	struct al_error err = AL_ERROR_INIT;
	struct manifest *m = NULL;

	/* per file */
	CHECK_INT(
	    parse_text("{\"entries\": {\"big\": {\"type\": \"file\", \"content\": \"hello\"}}}", 4,
	               0, &m, &err),
	    -EINVAL);
	CHECK(strstr(err.msg, "entry 'big'") && strstr(err.msg, "larger than 4 bytes"));
	/* per file, base64 (8 bytes decoded) */
	CHECK_INT(parse_text("{\"entries\": {\"b64\": {\"type\": \"file\", \"content\": "
	                     "{\"type\": \"base64\", \"data\": \"AAAAAAAAAAA=\"}}}}",
	                     4, 0, &m, &err),
	          -EINVAL);
	CHECK(strstr(err.msg, "entry 'b64'") != NULL);
	/* in total */
	CHECK_INT(parse_text("{\"entries\": {\"a\": {\"type\": \"file\", \"content\": \"123\"}, "
	                     "\"b\": {\"type\": \"file\", \"content\": \"456\"}}}",
	                     0, 5, &m, &err),
	          -EINVAL);
	CHECK(strstr(err.msg, "in total") != NULL);
	/* the default per-file limit is 16 MiB */
	{
		size_t big = MANIFEST_DEFAULT_MAX_FILE_BYTES + 1;
		_cleanup_free_ char *content = malloc(big + 1);
		_cleanup_cjson_ cJSON *json = NULL;
		cJSON *entries, *file;

		memset(content, 'x', big);
		content[big] = '\0';
		json = cJSON_CreateObject();
		entries = cJSON_AddObjectToObject(json, "entries");
		file = cJSON_AddObjectToObject(entries, "big");
		cJSON_AddStringToObject(file, "type", "file");
		cJSON_AddStringToObject(file, "content", content);
		CHECK_INT(manifest_parse(json, 0, 0, &m, &err), -EINVAL);
	}
}

/* The host side of a materialized manifest. */
static void setup_sources(void)
{
	char srcdir[PATH_MAX];
	struct timespec old[2] = {{1000000000, 0}, {1000000000, 0}};

	FMT(srcdir, sizeof(srcdir), "%s/srcdir", base);
	write_file(path_in(base, "src.csv"), "a,b\n1,2\n", 0600);
	make_dir(srcdir, 0755);
	write_file(path_in(srcdir, "a.txt"), "alpha", 0640);
	utimensat(AT_FDCWD, path_in(srcdir, "a.txt"), old, 0);
	make_dir(path_in(srcdir, "sub"), 0750);
	write_file(path_in(srcdir, "sub/b.sh"), "#!/bin/sh\n", 0755);
	write_file(path_in(srcdir, "suid"), "s", 04755);
	write_file(path_in(srcdir, "sgid"), "g", 02750);
	if (symlink("/etc/passwd", path_in(srcdir, "link")) < 0 ||
	    symlink("sub", path_in(srcdir, "dirlink")) < 0 ||
	    mkfifo(path_in(srcdir, "fifo"), 0644) < 0) {
		perror("setup");
		exit(1);
	}
}

TEST(materialize)
{
	struct al_error err = AL_ERROR_INIT;
	struct manifest *m = NULL;
	char text[4096], target[PATH_MAX], ws[PATH_MAX];
	bool root = geteuid() == 0;
	uid_t uid = root ? TEST_UID : (uid_t)-1;
	gid_t gid = root ? TEST_GID : (gid_t)-1;
	struct stat st;
	ssize_t n;
	int dirfd;

	FMT(text, sizeof(text),
	    "{\"entries\": {"
	    "\"hello.txt\": {\"type\": \"file\", \"content\": \"hi\\n\"},"
	    "\"bin.dat\": {\"type\": \"file\", \"content\": {\"type\": \"base64\", \"data\": "
	    "\"AAEC/w==\"}},"
	    "\"src\": {\"type\": \"dir\", \"children\": {\"main.c\": {\"type\": \"file\", "
	    "\"content\": \"int x;\", \"permissions\": \"-rwxr-x---\"}}},"
	    "\"deep/er/file.txt\": {\"type\": \"file\", \"content\": \"deep\", \"permissions\": "
	    "384},"
	    "\"priv\": {\"type\": \"dir\", \"permissions\": {\"owner\": 7, \"group\": 5}},"
	    "\"tmp\": {\"type\": \"dir\", \"permissions\": \"drwxrwxrwt\"},"
	    "\"run.sh\": {\"type\": \"file\", \"content\": \"x\", \"permissions\": "
	    "\"-rwsr-sr-x\"},"
	    "\"oct\": {\"type\": \"file\", \"content\": \"x\", \"permissions\": \"0640\"},"
	    "\"data.csv\": {\"type\": \"local_file\", \"src\": \"%s\"},"
	    "\"repo\": {\"type\": \"local_dir\", \"src\": \"%s\"}}}",
	    path_in(base, "src.csv"), path_in(base, "srcdir"));
	CHECK_INT(parse_text(text, 0, 0, &m, &err), 0);
	if (!m) {
		fprintf(stderr, "  %s\n", err.msg);
		return;
	}
	FMT(ws, sizeof(ws), "%s/ws", base);
	make_dir(ws, 0755);
	/* An O_PATH fd is all the daemon needs to hand over. */
	dirfd = open(ws, O_PATH | O_DIRECTORY | O_CLOEXEC);
	CHECK(dirfd >= 0);
	CHECK_INT(manifest_materialize(m, dirfd, uid, gid, NULL, &err), 0);
	if (err.code)
		fprintf(stderr, "  %s\n", err.msg);
	close(dirfd);
	manifest_free(m);

	CHECK(has_content(path_in(ws, "hello.txt"), "hi\n", 3));
	CHECK_INT(mode_of(path_in(ws, "hello.txt")), 0644);
	CHECK(has_content(path_in(ws, "bin.dat"), "\x00\x01\x02\xff", 4));
	CHECK_INT(mode_of(path_in(ws, "src")), 0755);
	CHECK(has_content(path_in(ws, "src/main.c"), "int x;", 6));
	CHECK_INT(mode_of(path_in(ws, "src/main.c")), 0750);
	CHECK(has_content(path_in(ws, "deep/er/file.txt"), "deep", 4));
	CHECK_INT(mode_of(path_in(ws, "deep/er/file.txt")), 0600);
	CHECK_INT(mode_of(path_in(ws, "deep")), 0755);
	CHECK_INT(mode_of(path_in(ws, "deep/er")), 0755);
	CHECK_INT(mode_of(path_in(ws, "priv")), 0750);
	CHECK_INT(mode_of(path_in(ws, "tmp")), 01777);
	CHECK_INT(mode_of(path_in(ws, "run.sh")), 0755);
	CHECK_INT(mode_of(path_in(ws, "oct")), 0640);

	CHECK(has_content(path_in(ws, "data.csv"), "a,b\n1,2\n", 8));
	CHECK_INT(mode_of(path_in(ws, "data.csv")), 0600);

	CHECK(has_content(path_in(ws, "repo/a.txt"), "alpha", 5));
	CHECK_INT(mode_of(path_in(ws, "repo/a.txt")), 0640);
	CHECK(stat(path_in(ws, "repo/a.txt"), &st) == 0 && st.st_mtim.tv_sec == 1000000000);
	CHECK_INT(mode_of(path_in(ws, "repo")), 0755);
	CHECK_INT(mode_of(path_in(ws, "repo/sub")), 0750);
	CHECK(has_content(path_in(ws, "repo/sub/b.sh"), "#!/bin/sh\n", 10));
	CHECK_INT(mode_of(path_in(ws, "repo/sub/b.sh")), 0755);
	/* setuid/setgid stripped, the rest kept */
	CHECK_INT(mode_of(path_in(ws, "repo/suid")), 0755);
	CHECK_INT(mode_of(path_in(ws, "repo/sgid")), 0750);
	/* symlinks copied as symlinks, not followed */
	CHECK(lstat(path_in(ws, "repo/link"), &st) == 0 && S_ISLNK(st.st_mode));
	n = readlink(path_in(ws, "repo/link"), target, sizeof(target) - 1);
	CHECK(n > 0);
	target[n > 0 ? n : 0] = '\0';
	CHECK_STR(target, "/etc/passwd");
	CHECK(lstat(path_in(ws, "repo/dirlink"), &st) == 0 && S_ISLNK(st.st_mode));
	/* FIFOs skipped without error */
	CHECK(lstat(path_in(ws, "repo/fifo"), &st) < 0 && errno == ENOENT);

	if (!root)
		SKIP("ownership not checked: needs root to chown");
	{
		static const char *const owned[] = {
		    "hello.txt",        "src",      "src/main.c", "deep",     "deep/er",
		    "deep/er/file.txt", "data.csv", "repo",       "repo/sub", "repo/sub/b.sh",
		    "repo/link",        "repo/suid"};
		for (size_t i = 0; i < AL_ARRAY_SIZE(owned); i++) {
			CHECK(lstat(path_in(ws, owned[i]), &st) == 0);
			if (st.st_uid != TEST_UID || st.st_gid != TEST_GID) {
				fprintf(stderr, "  %s owned by %u:%u\n", owned[i],
				        (unsigned)st.st_uid, (unsigned)st.st_gid);
				test_failures++;
			}
		}
	}
}

/* Materialization never follows a symlink already present below the root. */
TEST(materialize_no_follow)
{
	struct al_error err = AL_ERROR_INIT;
	struct manifest *m = NULL;
	char ws[PATH_MAX], outside[PATH_MAX];
	struct stat st;
	int dirfd;

	FMT(ws, sizeof(ws), "%s/ws2", base);
	FMT(outside, sizeof(outside), "%s/outside", base);
	make_dir(ws, 0755);
	make_dir(outside, 0755);
	CHECK(symlink(outside, path_in(ws, "a")) == 0);
	CHECK(symlink(path_in(outside, "target"), path_in(ws, "f")) == 0);
	dirfd = open(ws, O_RDONLY | O_DIRECTORY | O_CLOEXEC);

	CHECK_INT(
	    parse_text("{\"entries\": {\"a/b.txt\": {\"type\": \"file\", \"content\": \"x\"}}}", 0,
	               0, &m, &err),
	    0);
	CHECK(manifest_materialize(m, dirfd, (uid_t)-1, (gid_t)-1, NULL, &err) < 0);
	CHECK(strstr(err.msg, "manifest entry 'a/b.txt'") != NULL);
	manifest_free(m);
	m = NULL;

	CHECK_INT(parse_text("{\"entries\": {\"f\": {\"type\": \"file\", \"content\": \"x\"}}}", 0,
	                     0, &m, &err),
	          0);
	CHECK_INT(manifest_materialize(m, dirfd, (uid_t)-1, (gid_t)-1, NULL, &err), -EEXIST);
	manifest_free(m);
	m = NULL;

	CHECK_INT(parse_text("{\"entries\": {\"a\": {\"type\": \"dir\"}}}", 0, 0, &m, &err), 0);
	CHECK(manifest_materialize(m, dirfd, (uid_t)-1, (gid_t)-1, NULL, &err) < 0);
	manifest_free(m);
	close(dirfd);

	CHECK(lstat(path_in(outside, "b.txt"), &st) < 0 && errno == ENOENT);
	CHECK(lstat(path_in(outside, "target"), &st) < 0 && errno == ENOENT);
	CHECK_INT(mode_of(outside), 0755);
}

int main(void)
{
	struct al_error err = AL_ERROR_INIT;
	const char *tmp = getenv("TMPDIR");

	FMT(base, sizeof(base), "%s/airlock-test-manifest-XXXXXX", tmp ? tmp : "/tmp");
	if (!mkdtemp(base)) {
		perror("mkdtemp");
		return 1;
	}
	setup_sources();
	RUN(parse_valid);
	RUN(refusals);
	RUN(mount_entries);
	RUN(size_limits);
	RUN(materialize);
	RUN(materialize_no_follow);
	if (al_rm_rf(base, &err) < 0)
		fprintf(stderr, "cleanup: %s\n", err.msg);
	return test_main_result();
}
