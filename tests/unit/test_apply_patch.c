/* SPDX-License-Identifier: Apache-2.0 */
#include "test.h"

#include <errno.h>

#include "apply_patch.h"
#include "cleanup.h"

/* A file table in memory standing in for a sandbox. */
struct memfs {
	char *path[16];
	char *data[16];
	int writes, removes;
};

static struct memfs fs;

static int find(const char *path)
{
	for (int i = 0; i < 16; i++)
		if (fs.path[i] && !strcmp(fs.path[i], path))
			return i;
	return -1;
}

static void put(const char *path, const char *data)
{
	int i = find(path);
	if (i < 0)
		for (i = 0; fs.path[i]; i++)
			;
	free(fs.path[i]);
	free(fs.data[i]);
	fs.path[i] = strdup(path);
	fs.data[i] = strdup(data);
}

static const char *get(const char *path)
{
	int i = find(path);
	return i < 0 ? NULL : fs.data[i];
}

static void reset(void)
{
	for (int i = 0; i < 16; i++) {
		free(fs.path[i]);
		free(fs.data[i]);
	}
	memset(&fs, 0, sizeof(fs));
}

static int m_read(void *ctx, const char *path, char **data, size_t *len, struct al_error *err)
{
	int i = find(path);
	(void)ctx;
	if (i < 0)
		return al_error_set(err, ENOENT, "%s: not found", path);
	*data = strdup(fs.data[i]);
	*len = strlen(*data);
	return 0;
}

static int m_write(void *ctx, const char *path, const char *data, size_t len, struct al_error *err)
{
	(void)ctx;
	(void)err;
	(void)len;
	put(path, data);
	fs.writes++;
	return 0;
}

static int m_remove(void *ctx, const char *path, struct al_error *err)
{
	int i = find(path);
	(void)ctx;
	if (i < 0)
		return al_error_set(err, ENOENT, "%s: not found", path);
	free(fs.path[i]);
	free(fs.data[i]);
	fs.path[i] = fs.data[i] = NULL;
	fs.removes++;
	return 0;
}

static const struct al_patch_fs mfs = {NULL, m_read, m_write, m_remove};

static int apply(const char *patch, struct al_error *err)
{
	struct al_patch_op *ops = NULL;
	_cleanup_free_ char *summary = NULL;
	size_t n = 0;
	int r = al_patch_parse(patch, &ops, &n, err);
	if (r < 0)
		return r;
	r = al_patch_apply(&mfs, ops, n, &summary, err);
	al_patch_ops_free(ops, n);
	return r;
}

TEST(parse_errors)
{
	struct al_error err = AL_ERROR_INIT;
	struct al_patch_op *ops = NULL;
	size_t n = 0;

	CHECK_INT(al_patch_parse("hello", &ops, &n, &err), -EINVAL);
	CHECK(strstr(err.msg, "must start with") != NULL);
	CHECK_INT(al_patch_parse("*** Begin Patch\n*** Add File: a\n+x\n", &ops, &n, &err),
	          -EINVAL);
	CHECK(strstr(err.msg, "must end with") != NULL);
	CHECK_INT(al_patch_parse("*** Begin Patch\n*** End Patch\n", &ops, &n, &err), -EINVAL);
	CHECK(strstr(err.msg, "at least one file operation") != NULL);
	CHECK_INT(
	    al_patch_parse("*** Begin Patch\n*** Frobnicate: a\n*** End Patch", &ops, &n, &err),
	    -EINVAL);
	CHECK(strstr(err.msg, "header") != NULL);
	CHECK_INT(
	    al_patch_parse("*** Begin Patch\n*** Add File: a\nx\n*** End Patch", &ops, &n, &err),
	    -EINVAL);
	CHECK(strstr(err.msg, "Invalid Add File line: x") != NULL);
	CHECK_INT(al_patch_parse("*** Begin Patch\n*** Delete File: a\n-x\n*** End Patch", &ops, &n,
	                         &err),
	          -EINVAL);
	CHECK_INT(
	    al_patch_parse("*** Begin Patch\n*** Update File: a\n*** End Patch", &ops, &n, &err),
	    -EINVAL);
	CHECK(strstr(err.msg, "must include a hunk") != NULL);
	CHECK_INT(
	    al_patch_parse("*** Begin Patch\n*** Add File:   \n+x\n*** End Patch", &ops, &n, &err),
	    -EINVAL);
	CHECK(strstr(err.msg, "Missing path") != NULL);
}

TEST(parse_ops)
{
	struct al_error err = AL_ERROR_INIT;
	struct al_patch_op *ops = NULL;
	size_t n = 0;

	CHECK_INT(
	    al_patch_parse("  \n*** Begin Patch\r\n*** Add File: a.txt\r\n+one\r\n+two\r\n"
	                   "*** Delete File: b.txt\n*** Update File: c.txt\n*** Move to: d.txt\n"
	                   "@@\n-x\n+y\n*** End Patch\n",
	                   &ops, &n, &err),
	    0);
	CHECK_INT(n, 3);
	if (n == 3) {
		CHECK_INT(ops[0].kind, AL_PATCH_ADD);
		CHECK_STR(ops[0].path, "a.txt");
		CHECK_STR(ops[0].diff, "+one\n+two\n");
		CHECK_INT(ops[1].kind, AL_PATCH_DELETE);
		CHECK(ops[1].diff == NULL);
		CHECK_INT(ops[2].kind, AL_PATCH_UPDATE);
		CHECK_STR(ops[2].move_to, "d.txt");
		CHECK_STR(ops[2].diff, "@@\n-x\n+y\n");
	}
	al_patch_ops_free(ops, n);
}

TEST(diff_create_and_update)
{
	struct al_error err = AL_ERROR_INIT;
	char *out = NULL;

	/* The SDK joins added lines with newlines and adds no final one. */
	CHECK_INT(al_apply_diff("", "+a\n+b\n", true, &out, &err), 0);
	CHECK_STR(out, "a\nb");
	free(out);
	CHECK_INT(al_apply_diff("", "+a\nb\n", true, &out, &err), -EINVAL);

	CHECK_INT(
	    al_apply_diff("one\ntwo\nthree\n", "@@\n one\n-two\n+TWO\n three\n", false, &out, &err),
	    0);
	CHECK_STR(out, "one\nTWO\nthree\n");
	free(out);

	/* Anchors move the cursor; context then matches after them. */
	CHECK_INT(al_apply_diff("def f():\n    return 1\ndef g():\n    return 1\n",
	                        "@@ def g():\n-    return 1\n+    return 2\n", false, &out, &err),
	          0);
	CHECK_STR(out, "def f():\n    return 1\ndef g():\n    return 2\n");
	free(out);

	/* Trailing blanks in the file do not break matching (fuzz). */
	CHECK_INT(al_apply_diff("a  \nb\n", "@@\n a\n-b\n+c\n", false, &out, &err), 0);
	CHECK_STR(out, "a  \nc\n");
	free(out);

	/* CRLF files stay CRLF. */
	CHECK_INT(al_apply_diff("a\r\nb\r\n", "@@\n a\n-b\n+c\n", false, &out, &err), 0);
	CHECK_STR(out, "a\r\nc\r\n");
	free(out);

	/* End of File pins the hunk to the end. */
	CHECK_INT(
	    al_apply_diff("x\ny\nx\ny\n", "@@\n x\n-y\n+z\n*** End of File\n", false, &out, &err),
	    0);
	CHECK_STR(out, "x\ny\nx\nz\n");
	free(out);

	/* Context that is not there. */
	CHECK_INT(al_apply_diff("a\nb\n", "@@\n nope\n-b\n+c\n", false, &out, &err), -EINVAL);
	CHECK(strstr(err.msg, "Invalid Context") != NULL);
	CHECK_INT(al_apply_diff("a\nb\n", "@@\n a\n?b\n", false, &out, &err), -EINVAL);
	CHECK(strstr(err.msg, "Invalid Line") != NULL);
}

TEST(apply_through_fs)
{
	struct al_error err = AL_ERROR_INIT;

	reset();
	put("keep.txt", "k1\nk2\n");
	put("old.txt", "x\n");
	CHECK_INT(
	    apply("*** Begin Patch\n*** Add File: new.txt\n+hello\n*** Update File: keep.txt\n"
	          "@@\n k1\n-k2\n+K2\n*** Delete File: old.txt\n*** End Patch",
	          &err),
	    0);
	CHECK_STR(get("new.txt"), "hello");
	CHECK_STR(get("keep.txt"), "k1\nK2\n");
	CHECK(get("old.txt") == NULL);

	/* Move: the content lands at the new path and the old one goes. */
	CHECK_INT(
	    apply("*** Begin Patch\n*** Update File: keep.txt\n*** Move to: moved.txt\n@@\n-k1\n"
	          "+K1\n*** End Patch",
	          &err),
	    0);
	CHECK(get("keep.txt") == NULL);
	CHECK_STR(get("moved.txt"), "K1\nK2\n");

	/* Adding an existing file, updating or deleting a missing one: refused. */
	CHECK_INT(apply("*** Begin Patch\n*** Add File: new.txt\n+again\n*** End Patch", &err),
	          -EEXIST);
	CHECK_INT(apply("*** Begin Patch\n*** Delete File: ghost\n*** End Patch", &err), -ENOENT);
	CHECK_INT(apply("*** Begin Patch\n*** Update File: ghost\n@@\n-a\n+b\n*** End Patch", &err),
	          -ENOENT);
	reset();
}

TEST(failed_patch_changes_nothing)
{
	struct al_error err = AL_ERROR_INIT;

	reset();
	put("a.txt", "1\n2\n");
	CHECK_INT(apply("*** Begin Patch\n*** Add File: b.txt\n+new\n*** Update File: a.txt\n@@\n"
	                " nothere\n-2\n+3\n*** End Patch",
	                &err),
	          -EINVAL);
	CHECK(get("b.txt") == NULL);
	CHECK_STR(get("a.txt"), "1\n2\n");
	CHECK_INT(fs.writes, 0);
	CHECK_INT(fs.removes, 0);
	reset();
}

int main(void)
{
	RUN(parse_errors);
	RUN(parse_ops);
	RUN(diff_create_and_update);
	RUN(apply_through_fs);
	RUN(failed_patch_changes_nothing);
	return test_main_result();
}
