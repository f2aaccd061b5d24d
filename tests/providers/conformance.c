/* SPDX-License-Identifier: Apache-2.0 */
/*
 * One conformance suite for every provider of the harness: the same cases, through the
 * provider table alone, whatever is behind it.  Usage:
 *   test-provider-conformance '<provider block JSON>' WORKDIR
 * The provider's key comes the harness's way (credentials file or the SDK's variable).
 * Prints one line per case; exits 1 when any failed.
 */
#include "credentials.h"
#include "providers/hosted.h"
#include "providers/provider.h"

#include "cleanup.h"
#include "json.h"
#include "util.h"

#include <archive.h>
#include <archive_entry.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static int failures;
static const char *current;

#define CHECK(cond, ...)                                                                           \
	do {                                                                                       \
		if (!(cond)) {                                                                     \
			failures++;                                                                \
			fprintf(stderr, "FAIL %s: %s (line %d): ", current, #cond, __LINE__);      \
			fprintf(stderr, __VA_ARGS__);                                              \
			fprintf(stderr, "\n");                                                     \
		}                                                                                  \
	} while (0)

struct env {
	struct al_provider *p;
	const char *workdir;
	cJSON *manifest;
	cJSON *taskenv;
};

static struct al_sandbox *make(struct env *t, const char *snapshot)
{
	struct al_sandbox_spec spec = {
	    .name = NULL, .manifest = t->manifest, .env = t->taskenv, .snapshot_id = snapshot};
	struct al_error e = AL_ERROR_INIT;
	struct al_sandbox *sb = NULL;
	int r = t->p->ops->create(t->p, &spec, &sb, &e);

	CHECK(r == 0 && sb, "create: %s", e.msg);
	return r == 0 ? sb : NULL;
}

static void drop(struct env *t, struct al_sandbox *sb)
{
	struct al_error e = AL_ERROR_INIT;

	if (!sb)
		return;
	CHECK(t->p->ops->delete (t->p, sb, &e) == 0, "delete: %s", e.msg);
	al_sandbox_free(sb);
}

static int run_as(struct env *t, struct al_sandbox *sb, const char *script, uint64_t yield,
                  bool keep_stdin, bool tty, struct al_exec_result *res, struct al_error *e)
{
	const char *argv[] = {"/bin/sh", "-c", script, NULL};
	struct al_exec_request req = {.argv = argv,
	                              .yield_ms = yield,
	                              .keep_stdin_open = keep_stdin,
	                              .max_output_bytes = 1u << 20,
	                              .tty = tty};
	return t->p->ops->exec(t->p, sb, &req, res, e);
}

static int run(struct env *t, struct al_sandbox *sb, const char *script, uint64_t yield,
               bool keep_stdin, struct al_exec_result *res, struct al_error *e)
{
	return run_as(t, sb, script, yield, keep_stdin, false, res, e);
}

static void case_exec(struct env *t, struct al_sandbox *sb)
{
	struct al_exec_result res = {0};
	struct al_error e = AL_ERROR_INIT;
	int r;

	current = "exec streams and exit code";
	r = run(t, sb, "echo out-line; echo err-line >&2; exit 3", 0, false, &res, &e);
	CHECK(r == 0, "%s", e.msg);
	CHECK(!res.running && res.exit_code == 3, "exit %d", res.exit_code);
	CHECK(res.out && !strcmp(res.out, "out-line\n"), "stdout [%s]", res.out);
	CHECK(res.err && !strcmp(res.err, "err-line\n"), "stderr [%s]", res.err);
	al_exec_result_free(&res);

	current = "exec env and cwd";
	r = run(t, sb, "echo \"$CONFORMANCE_VAR\"; pwd; cat a.txt", 0, false, &res, &e);
	CHECK(r == 0 && res.exit_code == 0, "%s exit %d", e.msg, res.exit_code);
	CHECK(res.out && !strcmp(res.out, "from-task\n/workspace\nhello\n"), "stdout [%s]",
	      res.out);
	al_exec_result_free(&res);

	current = "exec of a missing command";
	r = run(t, sb, "exec /no/such/command", 0, false, &res, &e);
	CHECK(r == 0 && res.exit_code == 127, "%s exit %d", e.msg, res.exit_code);
	al_exec_result_free(&res);
}

static void case_sessions(struct env *t, struct al_sandbox *sb)
{
	struct al_exec_result res = {0}, more = {0};
	struct al_error e = AL_ERROR_INIT;
	_cleanup_free_ char *pid = NULL;
	int r;

	/* As the harness's exec_command runs them: stdin kept open for write_stdin. */
	current = "yield, then poll to the end";
	r = run(t, sb, "sleep 1; echo done", 100, true, &res, &e);
	CHECK(r == 0 && res.running && res.process_id, "%s running %d", e.msg, res.running);
	if (r == 0 && res.running && res.process_id) {
		uint64_t end = al_now_ms() + 10000;
		struct al_buf all = {0};
		do {
			al_exec_result_free(&more);
			r = t->p->ops->write_stdin(t->p, sb, res.process_id, NULL, 0, 3000, &more,
			                           &e);
			if (r == 0)
				al_buf_append(&all, more.out, more.out_len);
		} while (r == 0 && more.running && al_now_ms() < end);
		CHECK(r == 0 && !more.running && more.exit_code == 0, "%s running %d exit %d",
		      e.msg, more.running, more.exit_code);
		CHECK(all.len == 5 && !memcmp(all.data, "done\n", 5), "output [%.*s]", (int)all.len,
		      all.data);
		al_buf_free(&all);
	}
	al_exec_result_free(&res);
	al_exec_result_free(&more);

	current = "write_stdin to a running process, then kill";
	r = run(t, sb, "cat", 100, true, &res, &e);
	CHECK(r == 0 && res.running && res.process_id, "%s", e.msg);
	if (r != 0 || !res.running || !res.process_id) {
		al_exec_result_free(&res);
		return;
	}
	pid = strdup(res.process_id);
	al_exec_result_free(&res);
	r = t->p->ops->write_stdin(t->p, sb, pid, "ping\n", 5, 1000, &more, &e);
	CHECK(r == 0 && more.running, "%s running %d", e.msg, more.running);
	CHECK(more.out && !strcmp(more.out, "ping\n"), "echo [%s]", more.out);
	al_exec_result_free(&more);
	r = t->p->ops->kill(t->p, sb, pid, "KILL", &e);
	CHECK(r == 0, "kill: %s", e.msg);
	{
		uint64_t end = al_now_ms() + 10000;
		do {
			al_exec_result_free(&more);
			r = t->p->ops->write_stdin(t->p, sb, pid, NULL, 0, 2000, &more, &e);
		} while (r == 0 && more.running && al_now_ms() < end);
	}
	CHECK(r == 0 && !more.running && more.signal == 9, "%s running %d signal %d", e.msg,
	      more.running, more.signal);
	al_exec_result_free(&more);
}

/* Poll a running process until it ends (10 s at most), its output appended to all. */
static int poll_to_end(struct env *t, struct al_sandbox *sb, const char *pid, struct al_buf *all,
                       struct al_exec_result *last, struct al_error *e)
{
	uint64_t end = al_now_ms() + 10000;
	int r;

	do {
		al_exec_result_free(last);
		r = t->p->ops->write_stdin(t->p, sb, pid, NULL, 0, 1000, last, e);
		if (r == 0 && last->out_len)
			al_buf_append(all, last->out, last->out_len);
	} while (r == 0 && last->running && al_now_ms() < end);
	return r;
}

/* A provider with terminals: one stream with the terminal's line ends, a
 * size, typed input echoed, ^C as a byte. */
static void case_tty(struct env *t, struct al_sandbox *sb)
{
	struct al_exec_result res = {0}, more = {0};
	struct al_error e = AL_ERROR_INIT;
	struct al_buf all = {0};
	_cleanup_free_ char *pid = NULL;
	int r;

	if (!(t->p->ops->caps & AL_CAP_PTY))
		return;
	current = "tty: size, typed input, end";
	r = run_as(t, sb, "stty size; read l; echo got:$l", 1000, true, true, &res, &e);
	CHECK(r == 0 && res.running && res.process_id, "%s running %d", e.msg, res.running);
	if (r != 0 || !res.running || !res.process_id) {
		al_exec_result_free(&res);
		return;
	}
	pid = strdup(res.process_id);
	al_buf_append(&all, res.out, res.out_len);
	al_exec_result_free(&res);
	r = t->p->ops->write_stdin(t->p, sb, pid, "x\n", 2, 500, &more, &e);
	CHECK(r == 0, "write: %s", e.msg);
	if (r == 0)
		al_buf_append(&all, more.out, more.out_len);
	if (r == 0 && more.running)
		r = poll_to_end(t, sb, pid, &all, &more, &e);
	al_buf_append(&all, "", 1);
	CHECK(r == 0 && !more.running && more.exit_code == 0, "%s running %d exit %d", e.msg,
	      more.running, more.exit_code);
	CHECK(strstr(all.data, "24 80\r\n") && strstr(all.data, "x\r\ngot:x\r\n"), "screen [%s]",
	      all.data);
	al_exec_result_free(&more);
	al_buf_free(&all);

	current = "tty: ^C typed ends the foreground job";
	free(pid);
	pid = NULL;
	r = run_as(t, sb, "sleep 30", 300, true, true, &res, &e);
	CHECK(r == 0 && res.running && res.process_id, "%s", e.msg);
	if (r != 0 || !res.running || !res.process_id) {
		al_exec_result_free(&res);
		return;
	}
	pid = strdup(res.process_id);
	al_exec_result_free(&res);
	r = t->p->ops->write_stdin(t->p, sb, pid, "\003", 1, 500, &more, &e);
	if (r == 0 && more.running)
		r = poll_to_end(t, sb, pid, &all, &more, &e);
	CHECK(r == 0 && !more.running, "%s running %d", e.msg, more.running);
	al_exec_result_free(&more);
	al_buf_free(&all);
}

static void case_files(struct env *t, struct al_sandbox *sb)
{
	struct al_error e = AL_ERROR_INIT;
	struct al_dir_entry *ents = NULL;
	char bytes[256];
	char *data = NULL;
	size_t len = 0, n = 0;
	bool saw_file = false, saw_dir = false;
	int r;

	current = "files: binary round trip";
	for (int i = 0; i < 256; i++)
		bytes[i] = (char)i;
	r = t->p->ops->write(t->p, sb, "bin/all-bytes", bytes, sizeof(bytes), &e);
	CHECK(r == 0, "write: %s", e.msg);
	r = t->p->ops->read(t->p, sb, "bin/all-bytes", 1 << 20, &data, &len, &e);
	CHECK(r == 0 && len == 256 && !memcmp(data, bytes, 256), "read: %s (%zu bytes)", e.msg,
	      len);
	free(data);
	data = NULL;

	current = "files: errors";
	r = t->p->ops->read(t->p, sb, "no-such-file", 1 << 20, &data, &len, &e);
	CHECK(r == -ENOENT, "read of a missing file gave %d: %s", r, e.msg);
	free(data);
	data = NULL;
	r = t->p->ops->remove(t->p, sb, "no-such-file", &e);
	CHECK(r == -ENOENT, "remove of a missing file gave %d: %s", r, e.msg);

	current = "files: list and remove";
	r = t->p->ops->list(t->p, sb, ".", &ents, &n, &e);
	CHECK(r == 0, "list: %s", e.msg);
	for (size_t i = 0; r == 0 && i < n; i++) {
		saw_file |=
		    !strcmp(ents[i].name, "a.txt") && ents[i].type == 'f' && ents[i].size == 6;
		saw_dir |= !strcmp(ents[i].name, "sub") && ents[i].type == 'd';
	}
	CHECK(saw_file && saw_dir, "a.txt (file, 6 bytes) and sub/ listed");
	al_dir_entries_free(ents, n);
	r = t->p->ops->remove(t->p, sb, "bin/all-bytes", &e);
	CHECK(r == 0, "remove: %s", e.msg);
	r = t->p->ops->read(t->p, sb, "bin/all-bytes", 1 << 20, &data, &len, &e);
	CHECK(r == -ENOENT, "read after remove gave %d", r);
	free(data);
}

static char *read_all(struct env *t, struct al_sandbox *sb, const char *path, size_t *len)
{
	struct al_error e = AL_ERROR_INIT;
	char *data = NULL;

	if (t->p->ops->read(t->p, sb, path, 64 << 20, &data, len, &e) < 0)
		return NULL;
	return data;
}

static void write_hostile_tar(const char *path)
{
	struct archive *a = archive_write_new();
	struct archive_entry *e = archive_entry_new();

	archive_write_set_format_pax_restricted(a);
	archive_write_open_filename(a, path);
	archive_entry_set_pathname(e, "../escape.txt");
	archive_entry_set_filetype(e, AE_IFREG);
	archive_entry_set_perm(e, 0644);
	archive_entry_set_size(e, 2);
	archive_write_header(a, e);
	archive_write_data(a, "x\n", 2);
	archive_entry_free(e);
	archive_write_close(a);
	archive_write_free(a);
}

static void case_workspace(struct env *t, struct al_sandbox *sb)
{
	struct al_error e = AL_ERROR_INIT;
	_cleanup_free_ char *archive = NULL;
	_cleanup_free_ char *hostile = NULL;
	struct al_sandbox *fresh;
	char big[70000];
	int r;

	current = "persist and hydrate, byte for byte";
	for (size_t i = 0; i < sizeof(big); i++)
		big[i] = (char)(i * 7 + 3);
	CHECK(t->p->ops->write(t->p, sb, "sub/big.bin", big, sizeof(big), &e) == 0, "%s", e.msg);
	if (asprintf(&archive, "%s/ws.tar", t->workdir) < 0 ||
	    asprintf(&hostile, "%s/hostile.tar", t->workdir) < 0)
		return;
	r = t->p->ops->persist_workspace(t->p, sb, archive, &e);
	CHECK(r == 0, "persist: %s", e.msg);
	fresh = make(t, NULL);
	if (!fresh)
		return;
	/* The fresh one starts with the manifest; hydrate replaces all of it. */
	CHECK(t->p->ops->write(t->p, fresh, "only-in-fresh.txt", "x", 1, &e) == 0, "%s", e.msg);
	r = t->p->ops->hydrate_workspace(t->p, fresh, archive, &e);
	CHECK(r == 0, "hydrate: %s", e.msg);
	{
		size_t len = 0;
		_cleanup_free_ char *back = read_all(t, fresh, "sub/big.bin", &len);
		_cleanup_free_ char *a = read_all(t, fresh, "a.txt", &len);
		_cleanup_free_ char *gone = read_all(t, fresh, "only-in-fresh.txt", &len);
		CHECK(back && !memcmp(back, big, sizeof(big)), "sub/big.bin differs after hydrate");
		CHECK(a && !strcmp(a, "hello\n"), "a.txt after hydrate [%s]", a);
		CHECK(!gone, "a file of the fresh sandbox survived the hydrate");
	}

	current = "hydrate refuses a hostile archive";
	write_hostile_tar(hostile);
	r = t->p->ops->hydrate_workspace(t->p, fresh, hostile, &e);
	CHECK(r == -EINVAL, "hydrate of ../escape.txt gave %d: %s", r, e.msg);
	drop(t, fresh);
}

static void case_snapshot(struct env *t, struct al_sandbox *sb)
{
	struct al_error e = AL_ERROR_INIT;
	_cleanup_free_ char *snap = NULL;
	struct al_sandbox *copy;
	int r;

	current = "snapshot and create from it";
	CHECK(t->p->ops->write(t->p, sb, "snap.txt", "in the snapshot\n", 16, &e) == 0, "%s",
	      e.msg);
	if (!(t->p->ops->caps & (AL_CAP_FS_SNAPSHOT | AL_CAP_PROCESS_SNAPSHOT))) {
		/* Claimed by the flags: the loop will not ask; a call says so. */
		r = t->p->ops->snapshot(t->p, sb, false, &snap, &e);
		CHECK(r == -ENOTSUP, "snapshot without the capability gave %d: %s", r, e.msg);
		return;
	}
	r = t->p->ops->snapshot(t->p, sb, false, &snap, &e);
	CHECK(r == 0 && snap, "snapshot: %s", e.msg);
	if (r == 0 && snap) {
		copy = make(t, snap);
		if (copy) {
			size_t len = 0;
			_cleanup_free_ char *text = read_all(t, copy, "snap.txt", &len);
			CHECK(text && !strcmp(text, "in the snapshot\n"), "snap.txt [%s]", text);
			drop(t, copy);
		}
		CHECK(t->p->ops->delete_snapshot(t->p, snap, &e) == 0, "delete snapshot: %s",
		      e.msg);
		CHECK(t->p->ops->delete_snapshot(t->p, snap, &e) == 0,
		      "a deleted snapshot again: %s", e.msg);
	}
}

static void case_resume(struct env *t, struct al_sandbox *sb)
{
	struct al_error e = AL_ERROR_INIT;
	struct al_sandbox *back = NULL;
	bool running = false;
	int r;

	current = "resume from the saved handle";
	r = t->p->ops->resume(t->p, sb->id, sb->saved, NULL, &back, &running, &e);
	CHECK(r == 0 && back && running, "resume: %s", e.msg);
	if (back) {
		struct al_exec_result res = {0};
		r = run(t, back, "cat snap.txt", 0, false, &res, &e);
		CHECK(r == 0 && res.out && !strcmp(res.out, "in the snapshot\n"), "%s [%s]", e.msg,
		      res.out);
		al_exec_result_free(&res);
		al_sandbox_free(back);
	}
}

static void case_delete(struct env *t)
{
	struct al_error e = AL_ERROR_INIT;
	struct al_exec_result res = {0};
	struct al_sandbox *sb = make(t, NULL), *gone = NULL;
	bool running = true;
	int r;

	current = "delete, and what a deleted sandbox answers";
	if (!sb)
		return;
	CHECK(t->p->ops->delete (t->p, sb, &e) == 0, "delete: %s", e.msg);
	r = run(t, sb, "true", 0, false, &res, &e);
	CHECK(r == -EHOSTDOWN, "exec in a deleted sandbox gave %d: %s", r, e.msg);
	CHECK(al_provider_error_is_fatal(r), "that error stops the run");
	r = t->p->ops->resume(t->p, sb->id, sb->saved, NULL, &gone, &running, &e);
	CHECK(r == -ENOENT, "resume of a deleted sandbox gave %d: %s", r, e.msg);
	al_sandbox_free(gone);
	CHECK(t->p->ops->delete (t->p, sb, &e) == 0, "a second delete: %s", e.msg);
	al_exec_result_free(&res);
	al_sandbox_free(sb);
}

int main(int argc, char **argv)
{
	_cleanup_cjson_ cJSON *opts = NULL;
	struct al_credentials creds;
	struct al_error e = AL_ERROR_INIT;
	struct env t = {0};
	const struct al_provider_ops *ops;
	const char *type;
	struct al_sandbox *sb;

	if (argc != 3) {
		fprintf(stderr, "usage: %s PROVIDER_JSON WORKDIR\n", argv[0]);
		return 2;
	}
	opts = cJSON_Parse(argv[1]);
	type = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(opts, "type"));
	ops = type ? al_provider_lookup(type) : NULL;
	if (!ops) {
		fprintf(stderr, "no provider type in %s\n", argv[1]);
		return 2;
	}
	if (al_credentials_load(NULL, &creds, &e) < 0) {
		fprintf(stderr, "%s\n", e.msg);
		return 2;
	}
	creds.provider_type = type;
	if (ops->open(opts, al_credentials_provider_key(&creds), &t.p, &e) < 0) {
		fprintf(stderr, "open: %s\n", e.msg);
		al_credentials_free(&creds);
		return 1;
	}
	t.workdir = argv[2];
	t.manifest = cJSON_Parse("{\"version\": 1, \"root\": \"/workspace\", \"entries\": {"
	                         "\"a.txt\": {\"type\": \"file\", \"content\": \"hello\\n\"},"
	                         "\"sub\": {\"type\": \"dir\"}}}");
	t.taskenv = cJSON_Parse("{\"CONFORMANCE_VAR\": \"from-task\"}");
	sb = make(&t, NULL);
	if (sb) {
		case_exec(&t, sb);
		case_sessions(&t, sb);
		case_tty(&t, sb);
		case_files(&t, sb);
		case_workspace(&t, sb);
		case_snapshot(&t, sb);
		case_resume(&t, sb);
		drop(&t, sb);
	}
	case_delete(&t);
	t.p->ops->close(t.p);
	cJSON_Delete(t.manifest);
	cJSON_Delete(t.taskenv);
	al_credentials_free(&creds);
	printf("%s: %s\n", type, failures ? "FAILED" : "all cases passed");
	return failures ? 1 : 0;
}
