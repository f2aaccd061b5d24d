/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The agent loop and its crash safety.
 *
 * Order of effects in one turn, and what a SIGKILL between any two of them means:
 *   model call -> state (items + pending_calls) saved -> audit model_response
 *   for each pending call: audit tool_call -> run -> state (result) saved -> audit tool_result
 *   all results in -> state (function_call_output items, pending cleared) saved
 * A model response not yet saved is asked for again (a replay script replays the same
 * line); a tool result once saved is never produced again; a call that ran but whose
 * result was not saved runs again (at least once).
 */
#include "run.h"

#include "apply_patch.h"
#include "audit.h"
#include "cleanup.h"
#include "json.h"
#include "credentials.h"
#include "log.h"
#include "memory.h"
#include "model.h"
#include "providers/provider.h"
#include "runstate.h"
#include "store.h"
#include "task.h"
#include "tools.h"
#include "util.h"

#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define TASK_COPY "task.json"
#define OUTPUT_FILE "output.txt"
#define WORKSPACE_DIR "workspace"
#define SNAPSHOTS_DIR "snapshots"
#define DEFAULT_API_HOST "api.openai.com"
/* How long to wait for a sandbox a killed harness left half-created. */
#define ADOPT_WAIT_MS (120 * 1000)

static const char shell_guidance[] =
    "You work in a sandbox through tools: exec_command runs shell commands (in the "
    "workspace unless you give workdir), write_stdin talks to a command that is still "
    "running, apply_patch edits files, view_image looks at images.";

struct run {
	char *dir;
	struct al_run_store *store; /* the run's records (store->dir is dir) */
	bool own_store;
	const char *node; /* the worker's node, or NULL */
	char *task_dir;
	struct al_task task;
	bool task_loaded;
	struct al_credentials creds;
	cJSON *state;
	struct al_audit audit;
	bool audit_open;
	struct al_provider *provider;
	struct al_sandbox *sandbox; /* the run's sandbox once made or found */
	cJSON *labels;              /* of the sandbox (make_spec) */
	struct al_model model;
	bool model_open;
	cJSON *tools;
	struct al_store *remote; /* the task's remote snapshot.store, or NULL for local */
	enum al_progress progress;
};

static void run_free(struct run *r)
{
	if (r->model_open)
		al_model_close(&r->model);
	al_sandbox_free(r->sandbox);
	al_store_close(r->remote);
	if (r->provider)
		r->provider->ops->close(r->provider);
	if (r->audit_open)
		al_audit_close(&r->audit);
	if (r->own_store)
		al_run_store_free(r->store);
	cJSON_Delete(r->state);
	cJSON_Delete(r->tools);
	cJSON_Delete(r->labels);
	al_credentials_free(&r->creds);
	if (r->task_loaded)
		al_task_free(&r->task);
	free(r->dir);
	free(r->task_dir);
}

static cJSON *sandbox_state(struct run *r)
{
	return cJSON_GetObjectItemCaseSensitive(r->state, "sandbox");
}

static const char *sandbox_id(struct run *r)
{
	return al_runstate_str(sandbox_state(r), "sandbox_id");
}

static const char *workspace_root(struct run *r)
{
	const char *root = al_runstate_str(r->task.manifest, "root");
	return root && root[0] == '/' ? root : "/workspace";
}

static int save(struct run *r, struct al_error *err)
{
	int rc = al_runstate_save(r->store, r->state, err);
	return rc < 0 ? al_error_prefix(err, "save RunState") : 0;
}

/*
 * A step's RunState write and the audit record that describes it, recorded together
 * where the store can (one database transaction); elsewhere one after the other, and
 * recover_audit() writes a record a crash cut off between them.
 */
static int step_begin(struct run *r, struct al_error *err)
{
	return r->store->ops->begin ? r->store->ops->begin(r->store, err) : 0;
}

static int step_end(struct run *r, int rc, struct al_error *err)
{
	if (!r->store->ops->end)
		return rc;
	if (rc < 0) {
		r->store->ops->end(r->store, false, &(struct al_error){0});
		return rc;
	}
	return r->store->ops->end(r->store, true, err);
}

static int audit(struct run *r, const char *kind, cJSON *data, struct al_error *err)
{
	int rc = al_audit_append(&r->audit, kind, data, err);
	return rc < 0 ? al_error_prefix(err, "audit") : 0;
}

static int audit_sandbox_op(struct run *r, const char *op, const char *id, int rc,
                            const struct al_error *opErr, cJSON *extra, struct al_error *err)
{
	cJSON *d = extra ? extra : cJSON_CreateObject();

	cJSON_AddStringToObject(d, "op", op);
	cJSON_AddStringToObject(d, "sandbox_id", id ? id : "");
	cJSON_AddStringToObject(d, "outcome", rc < 0 ? opErr->msg : "ok");
	return audit(r, "sandbox_op", d, err);
}

/* A run of the queue reports its errors in the worker's structured log; `run` and
 * `resume` as the plain stderr lines docs/harness.md shows. */
static bool structured_errors;

__attribute__((format(printf, 1, 2))) static void report_error(const char *fmt, ...)
{
	char msg[2048];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (structured_errors)
		log_error("%s", msg);
	else
		fprintf(stderr, "airlock-harness: %s\n", msg);
}

/* A progress line on stdout, out at once: a caller reads it while the run goes on. */
__attribute__((format(printf, 1, 2))) static void say(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	fflush(stdout);
}

/* ---- the remote store (docs/storage.md) ----
 *
 * Objects of a run live under PREFIX/RUN_ID/: task.json, state.json (a copy of the
 * RunState as of the last turn) and workspace/ws-N.tar (the workspace archive that
 * state names).  The RunState records the archive's name and SHA-256 in
 * sandbox.store_archive, so a resume that lacks the local file fetches that very
 * object and refuses any other content.
 */

static char *store_name(struct run *r, const char *rel)
{
	char *name = NULL;

	if (asprintf(&name, "%s/%s", al_runstate_str(r->state, "run_id"), rel) < 0)
		return NULL;
	return name;
}

/*
 * A queue run's task.json and RunState are in the database, not in its directory
 * (which holds only workspace archives): staged there as a private file for the
 * upload, *path then names it (1), else left as is (0).
 */
static int stage_record(struct run *r, const char *rel, char **path, struct al_error *err)
{
	_cleanup_free_ char *text = NULL, *staged = NULL;
	size_t len = 0;
	int rc;

	if (access(*path, R_OK) == 0 || !r->store || !r->store->ops->file_read)
		return 0;
	if (!strcmp(rel, AL_RUNSTATE_FILE))
		rc = r->store->ops->state_load(r->store, &text, &len, err);
	else
		rc = r->store->ops->file_read(r->store, rel, &text, &len, err);
	if (rc < 0)
		return rc;
	if (asprintf(&staged, "%s/.upload-%s", r->dir, rel) < 0)
		return al_error_set(err, ENOMEM, "out of memory");
	rc = al_write_file_atomic(staged, text, len, 0600, err);
	if (rc < 0)
		return rc;
	free(*path);
	*path = TAKE_PTR(staged);
	return 1;
}

/* Upload DIR/rel as RUN_ID/rel, with an audit record naming the object and digest. */
static int store_put(struct run *r, const char *rel, char sha[65], struct al_error *err)
{
	_cleanup_free_ char *name = store_name(r, rel);
	_cleanup_free_ char *path = NULL;
	_cleanup_free_ char *where = NULL;
	struct al_error e = AL_ERROR_INIT;
	cJSON *d;
	int rc, staged;

	if (!name || asprintf(&path, "%s/%s", r->dir, rel) < 0 ||
	    !(where = al_store_describe(r->remote, name)))
		return al_error_set(err, ENOMEM, "out of memory");
	staged = stage_record(r, rel, &path, err);
	if (staged < 0)
		return staged;
	rc = al_store_put_file(r->remote, name, path, sha, &e);
	if (staged)
		unlink(path);
	d = cJSON_CreateObject();
	cJSON_AddStringToObject(d, "op", "put");
	cJSON_AddStringToObject(d, "object", where);
	cJSON_AddStringToObject(d, "sha256", rc < 0 ? "" : sha);
	cJSON_AddStringToObject(d, "outcome", rc < 0 ? e.msg : "ok");
	if (audit(r, "store", d, err) < 0)
		return -EIO;
	if (rc < 0) {
		*err = e;
		return rc;
	}
	return 0;
}

/* The RunState's copy in the store, as saved last. */
static int store_state(struct run *r, struct al_error *err)
{
	char sha[65];

	return r->remote ? store_put(r, AL_RUNSTATE_FILE, sha, err) : 0;
}

static void store_drop(struct run *r, const char *rel)
{
	_cleanup_free_ char *name = store_name(r, rel);
	struct al_error e = AL_ERROR_INIT;

	if (name && al_store_delete(r->remote, name, &e) < 0)
		log_warn("delete superseded %s: %s", rel, e.msg);
}

/*
 * DIR/rel (just written) goes to the store before the RunState names it in field
 * ("store_archive", "store_snapshot"), so that whatever the RunState names is in the
 * store; then the object it replaces goes.  Its name is written ahead (FIELD_pending) so
 * that an upload a kill cut off from its record is found and removed by the next one.
 * The caller's other changes to the RunState are saved with it.
 */
static int store_record(struct run *r, const char *field, const char *rel, const char *snapshot_id,
                        struct al_error *err)
{
	cJSON *sb = sandbox_state(r);
	cJSON *rec = cJSON_GetObjectItemCaseSensitive(sb, field);
	const char *kept = al_runstate_str(rec, "name");
	_cleanup_free_ char *pending_field = NULL;
	_cleanup_free_ char *old = NULL;
	const char *pending;
	char sha[65];
	int rc;

	if (asprintf(&pending_field, "%s_pending", field) < 0)
		return al_error_set(err, ENOMEM, "out of memory");
	pending = al_runstate_str(sb, pending_field);
	if (pending && strcmp(pending, rel) && (!kept || strcmp(pending, kept)))
		store_drop(r, pending);
	if (kept && strcmp(kept, rel) && !(old = strdup(kept)))
		return al_error_set(err, ENOMEM, "out of memory");
	al_runstate_set_str(sb, pending_field, rel);
	if ((rc = save(r, err)) < 0 || (rc = store_put(r, rel, sha, err)) < 0)
		return rc;
	cJSON_DeleteItemFromObjectCaseSensitive(sb, field);
	rec = cJSON_AddObjectToObject(sb, field);
	cJSON_AddStringToObject(rec, "name", rel);
	cJSON_AddStringToObject(rec, "sha256", sha);
	if (snapshot_id)
		cJSON_AddStringToObject(rec, "snapshot_id", snapshot_id);
	al_runstate_set_str(sb, pending_field, NULL);
	if ((rc = save(r, err)) < 0 || (rc = store_state(r, err)) < 0)
		return rc;
	if (old)
		store_drop(r, old);
	return 0;
}

/* The workspace archive rel goes to the store (when there is one), then is recorded. */
static int record_archive(struct run *r, const char *rel, struct al_error *err)
{
	return r->remote ? store_record(r, "store_archive", rel, NULL, err) : save(r, err);
}

/* A process snapshot just recorded goes to the store as airlockd's export stream, so a
 * resume on a fresh airlockd can import it.  Failing costs that, not the run. */
static int store_snapshot(struct run *r, const char *snapshot_id, struct al_error *err)
{
	const struct al_provider_ops *ops = r->provider->ops;
	_cleanup_free_ char *rel = NULL;
	_cleanup_free_ char *dir = NULL;
	_cleanup_free_ char *path = NULL;
	struct al_error e = AL_ERROR_INIT;
	int rc;

	if (!r->remote || !ops->export_snapshot || !ops->import_snapshot)
		return 0;
	if (asprintf(&rel, SNAPSHOTS_DIR "/%s.tar", snapshot_id) < 0 ||
	    asprintf(&dir, "%s/" SNAPSHOTS_DIR, r->dir) < 0 ||
	    asprintf(&path, "%s/%s", r->dir, rel) < 0)
		return al_error_set(err, ENOMEM, "out of memory");
	rc = al_mkdir_p(dir, 0700, &e);
	if (rc == 0)
		rc = ops->export_snapshot(r->provider, snapshot_id, path, &e);
	if (rc < 0) {
		log_warn("snapshot %s stays local only: %s", snapshot_id, e.msg);
		return 0;
	}
	rc = store_record(r, "store_snapshot", rel, snapshot_id, err);
	unlink(path); /* the store keeps it; airlockd has its own copy */
	return rc;
}

/* A resume whose local copy of the recorded archive is gone (another machine, a lost
 * disk) takes it from the store, checked against the digest recorded with it. */
static int fetch_archive(struct run *r, const char *rel, const char *abs, struct al_error *err)
{
	const cJSON *rec = cJSON_GetObjectItemCaseSensitive(sandbox_state(r), "store_archive");
	const char *sha = al_runstate_str(rec, "sha256");
	_cleanup_free_ char *name = NULL;
	_cleanup_free_ char *dir = NULL;
	struct al_error e = AL_ERROR_INIT;
	cJSON *d;
	int rc;

	if (!r->remote || access(abs, R_OK) == 0 || !al_runstate_str(rec, "name") ||
	    strcmp(al_runstate_str(rec, "name"), rel))
		return 0;
	if (!(name = store_name(r, rel)) || asprintf(&dir, "%s/" WORKSPACE_DIR, r->dir) < 0)
		return al_error_set(err, ENOMEM, "out of memory");
	if ((rc = al_mkdir_p(dir, 0700, err)) < 0)
		return rc;
	rc = al_store_get_file(r->remote, name, abs, sha, &e);
	d = cJSON_CreateObject();
	cJSON_AddStringToObject(d, "op", "get");
	{
		_cleanup_free_ char *where = al_store_describe(r->remote, name);
		cJSON_AddStringToObject(d, "object", where ? where : name);
	}
	cJSON_AddStringToObject(d, "sha256", sha ? sha : "");
	cJSON_AddStringToObject(d, "outcome", rc < 0 ? e.msg : "ok");
	if (audit(r, "store", d, err) < 0)
		return -EIO;
	if (rc < 0) {
		*err = e;
		return rc;
	}
	say("resume: fetched workspace archive %s from the store\n", rel);
	return 0;
}

/*
 * The archive to restore the workspace from: the one the RunState names, unless that
 * one is not here and never reached the store (the RunState names an archive before its
 * upload, store_record, so a kill during the upload leaves it so): then the last one
 * that did, which the store has.  A call recorded after it has no effect in it, as
 * when the archive of its own turn is lost with its node.
 */
static const char *archive_in_reach(struct run *r, const char *archive)
{
	const cJSON *rec = cJSON_GetObjectItemCaseSensitive(sandbox_state(r), "store_archive");
	const char *stored = al_runstate_str(rec, "name");
	_cleanup_free_ char *abs = NULL;

	if (!r->remote || !archive || !stored || !strcmp(stored, archive) || archive[0] == '/' ||
	    asprintf(&abs, "%s/%s", r->dir, archive) < 0 || access(abs, R_OK) == 0)
		return archive;
	say("resume: workspace archive %s is not here and never reached the store; taking %s, "
	    "the last that did\n",
	    archive, stored);
	return stored;
}

static int open_store(struct run *r, struct al_error *err)
{
	if (r->task.store.type == AL_STORE_LOCAL)
		return 0;
	return al_store_open(&r->task.store, &r->creds, &r->remote, err);
}

/* ---- the sandbox ---- */

/* The labels of a run's sandboxes (airlockd's): which run, and where it lives, so that
 * `airlock-harness gc` can tell a live run's sandbox from a leftover. */
#define RUN_LABEL_ID "airlock-harness/run"
#define RUN_LABEL_DIR "airlock-harness/dir"
#define RUN_LABEL_VALUE_MAX 255

static cJSON *run_labels(struct run *r)
{
	cJSON *l = cJSON_CreateObject();

	cJSON_AddStringToObject(l, RUN_LABEL_ID, al_runstate_str(r->state, "run_id"));
	/* A path longer than a label holds is left out: gc then keeps the sandbox. */
	if (r->dir && strlen(r->dir) <= RUN_LABEL_VALUE_MAX)
		cJSON_AddStringToObject(l, RUN_LABEL_DIR, r->dir);
	return l;
}

static void make_spec(struct run *r, struct al_sandbox_spec *spec, const char *snapshot)
{
	cJSON_Delete(r->labels);
	r->labels = run_labels(r);
	memset(spec, 0, sizeof(*spec));
	spec->labels = r->labels;
	/* Only the task's own settings: never the harness's environment or credentials,
	 * but for the mount credentials, which only airlockd sees. */
	spec->name = al_runstate_str(r->state, "run_id");
	spec->manifest = r->task.manifest;
	spec->rootfs = r->task.rootfs;
	spec->image = r->task.image;
	spec->memory_bytes = r->task.memory_bytes;
	spec->pids = r->task.pids;
	spec->cpus = r->task.cpus;
	spec->env = r->task.env;
	spec->snapshot_id = snapshot;
	/* The one secret that goes with it: to airlockd, which mounts on the host. */
	spec->mount_credentials = r->creds.mounts;
	spec->exposed_ports = r->task.exposed_ports;
	spec->n_exposed_ports = r->task.n_exposed_ports;
}

static void progress_exposed_port(struct run *r, uint16_t port, const cJSON *endpoint);

/*
 * Where the task's exposed ports are reached now (the host port is the sandbox's: a new
 * or restored one has others): sandbox.exposed_ports as the SDK's session state keeps
 * them, {"PORT": {"host", "port", "tls", "query", "url"}}, and one progress line each.
 */
static int record_exposed_ports(struct run *r, cJSON *st, struct al_error *err)
{
	const struct al_provider_ops *ops = r->provider->ops;
	cJSON *all;

	cJSON_DeleteItemFromObjectCaseSensitive(st, "exposed_ports");
	if (!r->task.n_exposed_ports)
		return 0;
	/* The task refuses exposed_ports for a provider without them. */
	if (!ops->resolve_exposed_port)
		return al_error_set(err, ENOTSUP, "provider %s cannot expose ports", ops->type);
	all = cJSON_AddObjectToObject(st, "exposed_ports");
	if (!all)
		return al_error_set(err, ENOMEM, "out of memory");
	for (size_t i = 0; i < r->task.n_exposed_ports; i++) {
		uint16_t port = r->task.exposed_ports[i];
		cJSON *endpoint = NULL;
		char key[8];
		int rc = ops->resolve_exposed_port(r->provider, r->sandbox, port, &endpoint, err);

		if (rc < 0)
			return al_error_prefix(err, "exposed port %u", (unsigned)port);
		snprintf(key, sizeof(key), "%u", (unsigned)port);
		if (!cJSON_AddItemToObject(all, key, endpoint)) {
			cJSON_Delete(endpoint);
			return al_error_set(err, ENOMEM, "out of memory");
		}
		progress_exposed_port(r, port, endpoint);
	}
	return 0;
}

/* The run now works in sandbox sb (new or adopted; the run takes it); saved before anything
 * runs in it, with the handle's saved part so that a resume finds it again. */
static int record_sandbox(struct run *r, struct al_sandbox *sb, struct al_error *err)
{
	cJSON *st = sandbox_state(r);
	int rc;

	al_sandbox_free(r->sandbox);
	r->sandbox = sb;
	al_runstate_set_str(st, "sandbox_id", sb->id);
	al_runstate_set_str(st, "provider", r->task.provider_type);
	/* The node whose airlockd holds it: a run taken over elsewhere moves it by archive. */
	al_runstate_set_str(st, "node", r->node);
	/* Which service the sandbox lives on, so that a resume on another one can still
	 * reach it to take its workspace along. */
	cJSON_DeleteItemFromObjectCaseSensitive(st, "provider_block");
	if (r->task.provider)
		cJSON_AddItemToObject(st, "provider_block", cJSON_Duplicate(r->task.provider, 1));
	cJSON_DeleteItemFromObjectCaseSensitive(st, "handle");
	cJSON_AddItemToObject(st, "handle", cJSON_Duplicate(sb->saved, 1));
	/* Process ids of the old sandbox mean nothing in a new one. */
	cJSON_DeleteItemFromObjectCaseSensitive(r->state, "sessions");
	cJSON_AddObjectToObject(r->state, "sessions");
	rc = record_exposed_ports(r, st, err);
	if (rc < 0) {
		/* Recorded all the same: a resume finds the sandbox and tries again. */
		struct al_error e = AL_ERROR_INIT;
		(void)save(r, &e);
		return rc;
	}
	return save(r, err);
}

/*
 * The run's name is taken: a harness killed while airlockd was creating its sandbox left
 * one (airlockd hides it until it is made).  Wait for it and carry on with it; 1 when
 * adopted.
 */
static int adopt_sandbox(struct run *r, struct al_error *err)
{
	const char *name = al_runstate_str(r->state, "run_id");
	struct al_error e = AL_ERROR_INIT;
	uint64_t deadline = al_now_ms() + ADOPT_WAIT_MS;
	int rc;

	for (;;) {
		_cleanup_(al_sandbox_freep) struct al_sandbox *found = NULL;
		bool running = false;

		al_error_clear(&e);
		rc = r->provider->ops->resume(r->provider, NULL, NULL, name, &found, &running, &e);
		if (rc == 0 && running) {
			if (audit_sandbox_op(r, "adopt", found->id, 0, &e, NULL, err) < 0)
				return -EIO;
			rc = record_sandbox(r, TAKE_PTR(found), err);
			return rc < 0 ? rc : 1;
		}
		if (rc < 0 && rc != -ENOENT) {
			*err = e;
			return rc;
		}
		if (al_now_ms() > deadline)
			return al_error_set(err, EEXIST,
			                    "a sandbox named %s exists but did not become usable",
			                    name);
		usleep(200 * 1000);
	}
}

static int create_sandbox(struct run *r, const char *snapshot, struct al_error *err)
{
	struct al_sandbox_spec spec;
	struct al_error e = AL_ERROR_INIT;
	_cleanup_(al_sandbox_freep) struct al_sandbox *sb = NULL;
	cJSON *extra = cJSON_CreateObject();
	int rc;

	make_spec(r, &spec, snapshot);
	rc = r->provider->ops->create(r->provider, &spec, &sb, &e);
	if (rc == -EEXIST) {
		cJSON_Delete(extra);
		return adopt_sandbox(r, err);
	}
	if (snapshot)
		cJSON_AddStringToObject(extra, "snapshot_id", snapshot);
	if (audit_sandbox_op(r, snapshot ? "restore" : "create", sb ? sb->id : NULL, rc, &e, extra,
	                     err) < 0)
		return -EIO;
	if (rc < 0) {
		*err = e;
		return rc;
	}
	return record_sandbox(r, TAKE_PTR(sb), err);
}

/*
 * Archives are files beside the store, not fenced by it: a worker that lost its lease may
 * still be writing one.  Names carry the writer's lease generation so that it can never
 * overwrite the archive the current holder recorded ("" for a run directory).
 */
static const char *archive_tag(struct run *r)
{
	return r->store->archive_tag ? r->store->archive_tag : "";
}

/* Only the archive the state names is needed; older ones (or one a crash left) go. */
static void prune_archives(const char *dir, const char *keep)
{
	_cleanup_free_ char *path = NULL;
	_cleanup_closedir_ DIR *d = NULL;
	struct dirent *e;

	if (asprintf(&path, "%s/" WORKSPACE_DIR, dir) < 0 || !(d = opendir(path)))
		return;
	while ((e = readdir(d)))
		if (!strncmp(e->d_name, "ws-", 3) && strcmp(e->d_name, keep))
			unlinkat(dirfd(d), e->d_name, 0);
}

/* The workspace as an archive in the run directory, for a resume that must rebuild. */
static int persist_archive(struct run *r, struct al_error *err)
{
	cJSON *sb = sandbox_state(r);
	long turn = al_runstate_long(r->state, "turn");
	struct al_error e = AL_ERROR_INIT;
	int rc;

	if (r->task.workspace_archive && !(r->provider->ops->caps & AL_CAP_WORKSPACE_ARCHIVE) &&
	    !cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(sb, "workspace_archive_unsupported"))) {
		log_warn("provider %s keeps no workspace archives", r->task.provider_type);
		cJSON_AddBoolToObject(sb, "workspace_archive_unsupported", true);
	}
	if (r->task.workspace_archive &&
	    !cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(sb, "workspace_archive_unsupported"))) {
		_cleanup_free_ char *rel = NULL;
		_cleanup_free_ char *abs = NULL;
		cJSON *extra = cJSON_CreateObject();

		if (asprintf(&rel, WORKSPACE_DIR "/ws-%ld%s.tar", turn, archive_tag(r)) < 0 ||
		    asprintf(&abs, "%s/%s", r->dir, rel) < 0)
			return al_error_set(err, ENOMEM, "out of memory");
		rc = r->provider->ops->persist_workspace(r->provider, r->sandbox, abs, &e);
		cJSON_AddStringToObject(extra, "archive", rel);
		if (audit_sandbox_op(r, "persist_workspace", sandbox_id(r), rc, &e, extra, err) < 0)
			return -EIO;
		if (rc == -ENOTSUP) {
			log_warn("workspace archives are not available: %s", e.msg);
			cJSON_AddBoolToObject(sb, "workspace_archive_unsupported", true);
		} else if (rc < 0) {
			if (al_provider_error_is_fatal(rc)) {
				*err = e;
				return rc;
			}
			log_warn("%s", e.msg);
		} else {
			al_runstate_set_str(sb, "workspace_archive", rel);
			if ((rc = record_archive(r, rel, err)) < 0)
				return rc;
			prune_archives(r->dir, rel + strlen(WORKSPACE_DIR "/"));
		}
	}
	return 0;
}

/* Workspace archive and snapshot after a turn, as the task's policy asks. */
static int after_turn(struct run *r, struct al_error *err)
{
	cJSON *sb = sandbox_state(r);
	long turn = al_runstate_long(r->state, "turn");
	struct al_error e = AL_ERROR_INIT;
	int rc = persist_archive(r, err);

	if (rc < 0)
		return rc;
	if (r->task.snapshot_every_turns > 0 && turn % r->task.snapshot_every_turns == 0) {
		unsigned caps = r->provider->ops->caps;
		/* Ask for processes only where they can come back; the workspace still can. */
		bool processes = r->task.snapshot_processes && (caps & AL_CAP_PROCESS_SNAPSHOT);
		_cleanup_free_ char *snap = NULL;
		cJSON *d;

		if (!(caps & (AL_CAP_PROCESS_SNAPSHOT | AL_CAP_FS_SNAPSHOT)))
			return 0; /* the workspace archive above is this provider's snapshot */
		/* Written ahead: a run killed between the snapshot and its record
		 * finds on resume that one may exist, and removes it. */
		al_runstate_set_str(sb, "snapshot_pending_of", sandbox_id(r));
		if ((rc = save(r, err)) < 0)
			return rc;
		d = cJSON_CreateObject();
		al_error_clear(&e);
		rc = r->provider->ops->snapshot(r->provider, r->sandbox, processes, &snap, &e);
		cJSON_AddStringToObject(d, "sandbox_id", sandbox_id(r));
		cJSON_AddStringToObject(d, "snapshot_id", snap ? snap : "");
		cJSON_AddBoolToObject(d, "processes", processes);
		cJSON_AddNumberToObject(d, "turn", (double)turn);
		cJSON_AddStringToObject(d, "outcome", rc < 0 ? e.msg : "ok");
		if (audit(r, "snapshot", d, err) < 0)
			return -EIO;
		if (rc < 0) {
			if (al_provider_error_is_fatal(rc) && rc != -ENOTSUP) {
				*err = e;
				return rc;
			}
			log_warn("snapshot: %s", e.msg);
			al_runstate_set_str(sb, "snapshot_pending_of", NULL);
			if ((rc = save(r, err)) < 0)
				return rc;
		} else {
			_cleanup_free_ char *previous = NULL;
			const char *prev = al_runstate_str(sb, "snapshot_id");

			if (prev && prev[0])
				previous = strdup(prev);
			al_runstate_set_str(sb, "snapshot_id", snap);
			if ((rc = save(r, err)) < 0)
				return rc;
			/* Only once the new one is recorded may the old one go: resume
			 * needs one at every instant.  Failing to drop it costs space,
			 * not correctness.  The pending mark stays until it is gone, so
			 * that a resume after a kill in between drops it too. */
			if (previous && r->provider->ops->delete_snapshot &&
			    r->provider->ops->delete_snapshot(r->provider, previous, &e) < 0)
				log_warn("delete superseded snapshot %s: %s", previous, e.msg);
			al_runstate_set_str(sb, "snapshot_pending_of", NULL);
			if ((rc = save(r, err)) < 0 || (rc = store_snapshot(r, snap, err)) < 0)
				return rc;
		}
	}
	return 0;
}

/* ---- the loop ---- */

static long usage_add(cJSON *usage, const char *key, long v)
{
	long total = al_runstate_long(usage, key) + v;
	al_runstate_set_long(usage, key, total);
	return total;
}

static int audit_tool_result(struct run *r, const cJSON *call, bool recovered, struct al_error *err)
{
	const cJSON *res = cJSON_GetObjectItemCaseSensitive(call, "result");
	_cleanup_free_ char *text =
	    cJSON_IsString(res) ? strdup(res->valuestring) : cJSON_PrintUnformatted(res);
	const char *call_id = al_runstate_str(call, "call_id");
	const char *name = al_runstate_str(call, "name");
	char digest[65];
	cJSON *d;

	if (!text)
		return al_error_set(err, ENOMEM, "out of memory");
	al_sha256_hex(text, strlen(text), digest);
	d = cJSON_CreateObject();
	cJSON_AddStringToObject(d, "call_id", call_id ? call_id : "");
	cJSON_AddStringToObject(d, "name", name ? name : "");
	cJSON_AddStringToObject(d, "result_sha256", digest);
	cJSON_AddNumberToObject(d, "result_bytes", (double)strlen(text));
	cJSON_AddBoolToObject(d, "truncated",
	                      cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(call, "truncated")));
	cJSON_AddBoolToObject(d, "error",
	                      cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(call, "is_error")));
	if (recovered)
		cJSON_AddBoolToObject(d, "recovered", true);
	return audit(r, "tool_result", d, err);
}

static int model_response_record(struct run *r, const cJSON *turn, bool recovered,
                                 struct al_error *err);

/*
 * A crash between saving the state and appending the audit record that describes the same
 * step leaves the record out.  On resume, write the missing ones (marked "recovered"),
 * so the trail names every model response and tool result the state holds.
 */
static int recover_audit(struct run *r, struct al_error *err)
{
	cJSON *per_turn = cJSON_GetObjectItemCaseSensitive(
	    cJSON_GetObjectItemCaseSensitive(r->state, "usage"), "per_turn");
	const cJSON *call;
	int n, rc;

	n = al_audit_count(&r->audit, "model_response", "phase", NULL, err);
	if (n < 0)
		return n;
	for (int i = n; i < cJSON_GetArraySize(per_turn); i++)
		if ((rc = model_response_record(r, cJSON_GetArrayItem(per_turn, i), true, err)) < 0)
			return rc;
	cJSON_ArrayForEach(call, cJSON_GetObjectItemCaseSensitive(r->state, "pending_calls"))
	{
		if (!cJSON_GetObjectItemCaseSensitive(call, "result"))
			continue;
		n = al_audit_count(&r->audit, "tool_result", "call_id",
		                   al_runstate_str(call, "call_id"), err);
		if (n < 0)
			return n;
		if (n == 0 && (rc = audit_tool_result(r, call, true, err)) < 0)
			return rc;
	}
	return 0;
}

/* ---- progress on stderr (docs/harness.md, "Progress") ---- */

/* Arguments as one short line: a tool call's line must stay a line. */
static void short_text(const char *in, char *out, size_t size)
{
	size_t n = 0;

	for (; in && *in && n + 4 < size; in++)
		out[n++] = *in == '\n' || *in == '\r' || *in == '\t' ? ' ' : *in;
	if (in && *in)
		out[n++] = '.', out[n++] = '.', out[n++] = '.';
	out[n] = '\0';
}

static void progress_json(cJSON *o)
{
	_cleanup_free_ char *line = cJSON_PrintUnformatted(o);

	if (line)
		fprintf(stderr, "%s\n", line);
	cJSON_Delete(o);
}

static void progress_turn(struct run *r, long turn, const struct al_model_reply *reply,
                          const cJSON *names, uint64_t ms)
{
	const char *model = r->task.model.name ? r->task.model.name : "replay";
	int ncalls = cJSON_GetArraySize(names);
	char list[256] = "";
	const cJSON *n;

	if (r->progress == AL_PROGRESS_JSON) {
		cJSON *o = cJSON_CreateObject();
		cJSON_AddStringToObject(o, "event", "turn");
		cJSON_AddStringToObject(o, "run_id", al_runstate_str(r->state, "run_id"));
		cJSON_AddNumberToObject(o, "turn", (double)turn);
		cJSON_AddStringToObject(o, "model", model);
		cJSON_AddItemToObject(o, "tool_calls", cJSON_Duplicate(names, 1));
		cJSON_AddBoolToObject(o, "final", ncalls == 0);
		cJSON_AddNumberToObject(o, "input_tokens", (double)reply->input_tokens);
		cJSON_AddNumberToObject(o, "output_tokens", (double)reply->output_tokens);
		cJSON_AddNumberToObject(o, "attempts", reply->attempts);
		cJSON_AddNumberToObject(o, "duration_ms", (double)ms);
		progress_json(o);
		return;
	}
	if (r->progress != AL_PROGRESS_TEXT)
		return;
	cJSON_ArrayForEach(n, names)
	{
		size_t used = strlen(list);
		snprintf(list + used, sizeof(list) - used, "%s%s", used ? ", " : "",
		         cJSON_GetStringValue(n) ? cJSON_GetStringValue(n) : "?");
	}
	if (ncalls)
		fprintf(
		    stderr,
		    "airlock-harness: turn %ld: %s: %d tool call%s (%s); %ld+%ld tokens, %.1f s\n",
		    turn, model, ncalls, ncalls == 1 ? "" : "s", list, reply->input_tokens,
		    reply->output_tokens, (double)ms / 1000.0);
	else
		fprintf(
		    stderr, "airlock-harness: turn %ld: %s: final answer; %ld+%ld tokens, %.1f s\n",
		    turn, model, reply->input_tokens, reply->output_tokens, (double)ms / 1000.0);
}

static void progress_tool(struct run *r, const char *call_id, const char *name, const char *args,
                          const struct al_tool_result *res, uint64_t ms)
{
	long turn = al_runstate_long(r->state, "model_calls");
	char shown[160];

	short_text(args, shown, sizeof(shown));
	if (r->progress == AL_PROGRESS_JSON) {
		cJSON *o = cJSON_CreateObject();
		cJSON_AddStringToObject(o, "event", "tool_call");
		cJSON_AddStringToObject(o, "run_id", al_runstate_str(r->state, "run_id"));
		cJSON_AddNumberToObject(o, "turn", (double)turn);
		cJSON_AddStringToObject(o, "call_id", call_id ? call_id : "");
		cJSON_AddStringToObject(o, "name", name ? name : "");
		cJSON_AddStringToObject(o, "arguments", shown);
		cJSON_AddBoolToObject(o, "is_error", res->is_error);
		cJSON_AddBoolToObject(o, "truncated", res->truncated);
		cJSON_AddNumberToObject(o, "duration_ms", (double)ms);
		progress_json(o);
	} else if (r->progress == AL_PROGRESS_TEXT) {
		fprintf(stderr, "airlock-harness: turn %ld: %s %s: %s, %.1f s\n", turn,
		        name ? name : "?", shown, res->is_error ? "error" : "ok",
		        (double)ms / 1000.0);
	}
}

static void progress_exposed_port(struct run *r, uint16_t port, const cJSON *endpoint)
{
	const char *url = al_json_str(endpoint, "url");

	if (r->progress == AL_PROGRESS_JSON) {
		cJSON *o = cJSON_CreateObject();
		cJSON_AddStringToObject(o, "event", "exposed_port");
		cJSON_AddStringToObject(o, "run_id", al_runstate_str(r->state, "run_id"));
		cJSON_AddStringToObject(o, "sandbox_id", sandbox_id(r));
		cJSON_AddNumberToObject(o, "port", port);
		cJSON_AddItemToObject(o, "endpoint", cJSON_Duplicate(endpoint, 1));
		progress_json(o);
	} else if (r->progress == AL_PROGRESS_TEXT) {
		fprintf(stderr, "airlock-harness: sandbox %s: port %u is at %s\n", sandbox_id(r),
		        (unsigned)port, url ? url : "?");
	}
}

static int run_pending(struct run *r, struct al_error *err)
{
	cJSON *pending = cJSON_GetObjectItemCaseSensitive(r->state, "pending_calls");
	cJSON *items = cJSON_GetObjectItemCaseSensitive(r->state, "items");
	cJSON *call;
	long next_session = al_runstate_long(r->state, "next_session_id");
	int rc;

	if (next_session < 1)
		next_session = 1;
	cJSON_ArrayForEach(call, pending)
	{
		struct al_tool_ctx ctx = {
		    .provider = r->provider,
		    .sandbox = r->sandbox,
		    .workspace_root = workspace_root(r),
		    .sessions = cJSON_GetObjectItemCaseSensitive(r->state, "sessions"),
		    .next_session_id = &next_session};
		struct al_tool_result res = {0};
		const char *call_id = al_runstate_str(call, "call_id");
		const char *name = al_runstate_str(call, "name");
		const char *args = al_runstate_str(call, "arguments");
		uint64_t started;
		cJSON *d;

		if (cJSON_GetObjectItemCaseSensitive(call, "result"))
			continue; /* recorded before a crash: never run again */
		d = cJSON_CreateObject();
		cJSON_AddStringToObject(d, "call_id", call_id ? call_id : "");
		cJSON_AddStringToObject(d, "name", name ? name : "");
		cJSON_AddStringToObject(d, "arguments", args ? args : "");
		if ((rc = audit(r, "tool_call", d, err)) < 0)
			return rc;
		started = al_now_ms();
		rc = al_tool_run(&ctx, name, args, &res, err);
		if (rc < 0)
			return al_error_prefix(err, "tool %s (%s)", name ? name : "?",
			                       call_id ? call_id : "?");
		progress_tool(r, call_id, name, args, &res, al_now_ms() - started);
		al_runstate_set_long(r->state, "next_session_id", next_session);
		cJSON_AddItemToObject(call, "result", res.output);
		res.output = NULL;
		cJSON_AddBoolToObject(call, "is_error", res.is_error);
		cJSON_AddBoolToObject(call, "truncated", res.truncated);
		al_tool_result_free(&res);
		if ((rc = step_begin(r, err)) < 0)
			return rc;
		rc = save(r, err);
		if (rc == 0)
			rc = audit_tool_result(r, call, false, err);
		if ((rc = step_end(r, rc, err)) < 0)
			return rc;
	}
	/* Every result is in: they become conversation items in one step. */
	cJSON_ArrayForEach(call, pending)
	{
		cJSON *item = cJSON_CreateObject();
		cJSON_AddStringToObject(item, "type", "function_call_output");
		cJSON_AddStringToObject(item, "call_id", al_runstate_str(call, "call_id"));
		cJSON_AddItemToObject(
		    item, "output",
		    cJSON_Duplicate(cJSON_GetObjectItemCaseSensitive(call, "result"), 1));
		cJSON_AddItemToArray(items, item);
	}
	cJSON_DeleteItemFromObjectCaseSensitive(r->state, "pending_calls");
	cJSON_AddArrayToObject(r->state, "pending_calls");
	al_runstate_set_long(r->state, "turn", al_runstate_long(r->state, "turn") + 1);
	if ((rc = save(r, err)) < 0)
		return rc;
	return after_turn(r, err);
}

static char *input_digest(const char *instructions, const cJSON *items)
{
	_cleanup_free_ char *text = cJSON_PrintUnformatted(items);
	char *out = malloc(65);
	struct al_buf b = {0};

	if (!out || !text)
		return out;
	al_buf_append(&b, instructions, strlen(instructions));
	al_buf_append(&b, "\n", 1);
	al_buf_append(&b, text, strlen(text));
	al_sha256_hex(b.data ? b.data : "", b.len, out);
	al_buf_free(&b);
	return out;
}

/* One model call; *done when it answered without tool calls. */
static int model_turn(struct run *r, bool *done, struct al_error *err)
{
	cJSON *items = cJSON_GetObjectItemCaseSensitive(r->state, "items");
	cJSON *pending = cJSON_GetObjectItemCaseSensitive(r->state, "pending_calls");
	cJSON *usage = cJSON_GetObjectItemCaseSensitive(r->state, "usage");
	const char *instructions = al_runstate_str(r->state, "instructions");
	long calls = al_runstate_long(r->state, "model_calls");
	_cleanup_free_ char *digest = NULL;
	struct al_model_reply reply;
	cJSON *d, *item, *names, *turn;
	uint64_t started;
	int rc, ncalls = 0;

	*done = false;
	if (calls >= r->task.max_turns)
		return al_error_set(err, ELOOP, "max_turns (%d) reached without a final answer",
		                    r->task.max_turns);
	digest = input_digest(instructions ? instructions : "", items);
	d = cJSON_CreateObject();
	cJSON_AddNumberToObject(d, "call", (double)(calls + 1));
	cJSON_AddStringToObject(d, "model", r->task.model.name ? r->task.model.name : "");
	cJSON_AddStringToObject(d, "api",
	                        r->task.model.api == AL_API_CHAT     ? "chat"
	                        : r->task.model.api == AL_API_REPLAY ? "replay"
	                                                             : "responses");
	cJSON_AddStringToObject(d, "input_sha256", digest ? digest : "");
	cJSON_AddNumberToObject(d, "items", cJSON_GetArraySize(items));
	if ((rc = audit(r, "model_request", d, err)) < 0)
		return rc;
	started = al_now_ms();
	rc = al_model_call(&r->model, (unsigned long)calls, instructions, items, r->tools, &reply,
	                   err);
	if (rc < 0) {
		al_model_reply_free(&reply);
		return rc;
	}
	names = cJSON_CreateArray();
	cJSON_ArrayForEach(item, reply.output)
	{
		const char *type = al_runstate_str(item, "type");
		cJSON_AddItemToArray(items, cJSON_Duplicate(item, 1));
		if (type && !strcmp(type, "function_call")) {
			cJSON *call = cJSON_CreateObject();
			cJSON_AddStringToObject(call, "call_id", al_runstate_str(item, "call_id"));
			cJSON_AddStringToObject(call, "name", al_runstate_str(item, "name"));
			cJSON_AddStringToObject(call, "arguments",
			                        al_runstate_str(item, "arguments"));
			cJSON_AddItemToArray(pending, call);
			cJSON_AddItemToArray(names,
			                     cJSON_CreateString(al_runstate_str(item, "name")));
			ncalls++;
		}
	}
	al_runstate_set_long(r->state, "model_calls", calls + 1);
	usage_add(usage, "input_tokens", reply.input_tokens);
	usage_add(usage, "output_tokens", reply.output_tokens);
	turn = cJSON_CreateObject();
	cJSON_AddNumberToObject(turn, "model_call", (double)(calls + 1));
	cJSON_AddStringToObject(turn, "response_id", reply.id ? reply.id : "");
	cJSON_AddStringToObject(turn, "sha256", reply.digest);
	if (*reply.request_digest)
		cJSON_AddStringToObject(turn, "request_sha256", reply.request_digest);
	cJSON_AddNumberToObject(turn, "attempts", reply.attempts);
	cJSON_AddNumberToObject(turn, "input_tokens", (double)reply.input_tokens);
	cJSON_AddNumberToObject(turn, "output_tokens", (double)reply.output_tokens);
	progress_turn(r, calls + 1, &reply, names, al_now_ms() - started);
	cJSON_AddItemToObject(turn, "tool_calls", names);
	cJSON_AddItemToArray(cJSON_GetObjectItemCaseSensitive(usage, "per_turn"), turn);
	if (ncalls == 0) {
		_cleanup_free_ char *text = al_model_output_text(reply.output);
		rc = r->store->ops->file_write(r->store, OUTPUT_FILE, text ? text : "",
		                               text ? strlen(text) : 0, err);
		if (rc < 0) {
			al_model_reply_free(&reply);
			return rc;
		}
		al_runstate_set_str(r->state, "final_output", text ? text : "");
		al_runstate_set_str(r->state, "status", "completed");
		al_runstate_set_long(r->state, "turn", al_runstate_long(r->state, "turn") + 1);
		cJSON_AddBoolToObject(r->state, "finish_pending", true);
		*done = true;
	}
	al_model_reply_free(&reply);
	if ((rc = step_begin(r, err)) < 0)
		return rc;
	rc = save(r, err);
	if (rc == 0)
		rc = model_response_record(r, turn, false, err);
	return step_end(r, rc, err);
}

static int model_response_record(struct run *r, const cJSON *turn, bool recovered,
                                 struct al_error *err)
{
	cJSON *d = cJSON_Duplicate(turn, 1);

	if (!d)
		return al_error_set(err, ENOMEM, "out of memory");
	if (recovered)
		cJSON_AddBoolToObject(d, "recovered", true);
	return audit(r, "model_response", d, err);
}

/* Memory, sandbox clean-up, the run_end record: what follows the final answer. */
static int finish(struct run *r, struct al_error *err)
{
	struct al_error e = AL_ERROR_INIT;
	cJSON *d;
	int rc;

	if (r->task.memory.generate &&
	    !cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(r->state, "memory_generated"))) {
		struct al_memory_rollout ro = {
		    .rollout_id = al_runstate_str(r->state, "run_id"),
		    .input = r->task.input,
		    .items = cJSON_GetObjectItemCaseSensitive(r->state, "items"),
		    .final_output = al_runstate_str(r->state, "final_output"),
		    .terminal_state = "completed",
		};
		rc = al_memory_generate(r->provider, r->sandbox, &r->task.memory,
		                        r->creds.openai_api_key, &ro, &r->audit, &e);
		if (rc < 0) {
			if (al_provider_error_is_fatal(rc)) {
				*err = e;
				return rc;
			}
			log_warn("memory generation: %s", e.msg);
		}
		cJSON_AddBoolToObject(r->state, "memory_generated", true);
		if ((rc = save(r, err)) < 0)
			return rc;
	}
	if (sandbox_id(r) &&
	    !cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(sandbox_state(r), "deleted"))) {
		/* The final workspace (with any new memory) is kept with the run. */
		if ((rc = persist_archive(r, err)) < 0)
			return rc;
		if (!r->task.keep_sandbox) {
			al_error_clear(&e);
			rc = r->provider->ops->delete (r->provider, r->sandbox, &e);
			if (audit_sandbox_op(r, "delete", sandbox_id(r), rc, &e, NULL, err) < 0)
				return -EIO;
			if (rc < 0)
				log_warn("%s", e.msg);
			else
				cJSON_AddBoolToObject(sandbox_state(r), "deleted", true);
		}
	}
	cJSON_DeleteItemFromObjectCaseSensitive(r->state, "finish_pending");
	if ((rc = step_begin(r, err)) < 0)
		return rc;
	if ((rc = save(r, err)) < 0)
		return step_end(r, rc, err);
	d = cJSON_CreateObject();
	cJSON_AddStringToObject(d, "status", "completed");
	cJSON_AddNumberToObject(d, "turns", (double)al_runstate_long(r->state, "turn"));
	cJSON_AddItemToObject(
	    d, "usage", cJSON_Duplicate(cJSON_GetObjectItemCaseSensitive(r->state, "usage"), 1));
	cJSON_DeleteItemFromObjectCaseSensitive(cJSON_GetObjectItemCaseSensitive(d, "usage"),
	                                        "per_turn");
	rc = step_end(r, audit(r, "run_end", d, err), err);
	/* The state's copy in the remote store, once the end is recorded. */
	return rc < 0 ? rc : store_state(r, err);
}

/*
 * A failed run does not leave its sandbox running (a 1 GiB sandbox nobody uses): its
 * workspace is archived with the run first (a resume hydrates a new sandbox from it),
 * then the sandbox goes.  When the archive cannot be made the sandbox stays, so that
 * nothing is lost; `airlock-harness gc` removes it once nobody resumes the run.
 */
static void remove_failed_sandbox(struct run *r)
{
	struct al_error e = AL_ERROR_INIT, audit_err = AL_ERROR_INIT;
	int rc;

	if (!r->provider || !r->sandbox || !sandbox_id(r) || r->task.keep_sandbox ||
	    cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(sandbox_state(r), "deleted")))
		return;
	/* A run of the queue (worker.c) failed here may be another worker's now
	 * (a lease lost is one way to fail): its sandbox is that worker's to
	 * use, and the workers' reaper removes those of runs that ended. */
	if (structured_errors)
		return;
	if (persist_archive(r, &e) < 0) {
		report_error("sandbox %s kept: its workspace could not be archived (%s); "
		             "'airlock-harness gc' removes it",
		             sandbox_id(r), e.msg);
		return;
	}
	al_error_clear(&e);
	rc = r->provider->ops->delete (r->provider, r->sandbox, &e);
	if (audit_sandbox_op(r, "delete", sandbox_id(r), rc, &e, NULL, &audit_err) < 0 || rc < 0) {
		report_error("sandbox %s of the failed run: %s", sandbox_id(r),
		             rc < 0 ? e.msg : audit_err.msg);
		return;
	}
	cJSON_AddBoolToObject(sandbox_state(r), "deleted", true);
}

static int fail(struct run *r, const struct al_error *why)
{
	struct al_error e = AL_ERROR_INIT;

	report_error("run failed: %s", why->msg);
	if (!r->state)
		return AL_EXIT_FAILED;
	remove_failed_sandbox(r);
	al_runstate_set_str(r->state, "status", "failed");
	al_runstate_set_str(r->state, "error", why->msg);
	if (save(r, &e) < 0)
		report_error("%s", e.msg);
	if (r->audit_open) {
		cJSON *d = cJSON_CreateObject();

		cJSON_AddStringToObject(d, "status", "failed");
		cJSON_AddStringToObject(d, "error", why->msg);
		if (audit(r, "run_end", d, &e) < 0)
			report_error("%s", e.msg);
	}
	return AL_EXIT_FAILED;
}

static int drive(struct run *r)
{
	struct al_error err = AL_ERROR_INIT;
	int rc;

	al_runstate_set_str(r->state, "status", "running");
	cJSON_DeleteItemFromObjectCaseSensitive(r->state, "error");
	if (!cJSON_GetObjectItemCaseSensitive(r->state, "instructions")) {
		_cleanup_free_ char *mem = NULL;
		_cleanup_free_ char *all = NULL;
		if (r->task.memory.read) {
			rc = al_memory_read_prompt(r->provider, r->sandbox, &r->task.memory, &mem,
			                           &err);
			if (rc < 0) {
				if (al_provider_error_is_fatal(rc))
					return fail(r, &err);
				log_warn("%s", err.msg);
			}
		}
		if (asprintf(&all, "%s%s%s%s%s", r->task.instructions,
		             *r->task.instructions ? "\n\n" : "", shell_guidance, mem ? "\n\n" : "",
		             mem ? mem : "") < 0)
			return fail(r, &(struct al_error){ENOMEM, "out of memory"});
		al_runstate_set_str(r->state, "instructions", all);
		if (save(r, &err) < 0)
			return fail(r, &err);
	}
	for (;;) {
		bool done = false;

		if (cJSON_GetArraySize(
		        cJSON_GetObjectItemCaseSensitive(r->state, "pending_calls")) > 0) {
			if (run_pending(r, &err) < 0)
				return fail(r, &err);
			continue;
		}
		if (model_turn(r, &done, &err) < 0)
			return fail(r, &err);
		if (done)
			break;
	}
	if (finish(r, &err) < 0)
		return fail(r, &err);
	say("%s\n", al_runstate_str(r->state, "final_output"));
	return AL_EXIT_OK;
}

/* ---- set-up shared by run and resume ---- */

static int open_clients(struct run *r, struct al_error *err)
{
	const struct al_provider_ops *ops = al_provider_lookup(r->task.provider_type);
	int rc;

	if (!ops)
		return al_error_set(err, EINVAL, "provider %s is not built in",
		                    r->task.provider_type);
	r->creds.provider_type = r->task.provider_type;
	rc = ops->open(r->task.provider, al_credentials_provider_key(&r->creds), &r->provider, err);
	if (rc < 0)
		return rc;
	rc = al_model_open(&r->model, &r->task.model, r->creds.openai_api_key, err);
	if (rc < 0)
		return rc;
	r->model_open = true;
	r->tools = al_tools_definitions();
	return r->tools ? 0 : al_error_set(err, ENOMEM, "out of memory");
}

/* A key is needed for OpenAI's own endpoint; a local server may need none. */
static int check_key(struct run *r, struct al_error *err)
{
	if (r->task.model.api == AL_API_REPLAY || r->creds.openai_api_key)
		return 0;
	if (strstr(r->task.model.base_url, DEFAULT_API_HOST))
		return al_error_set(
		    err, EPERM, "no API key for %s: set OPENAI_API_KEY or give --credentials FILE",
		    r->task.model.base_url);
	return 0;
}

static bool dir_is_empty_or_missing(const char *path)
{
	_cleanup_closedir_ DIR *d = opendir(path);
	struct dirent *e;

	if (!d)
		return errno == ENOENT;
	while ((e = readdir(d)))
		if (strcmp(e->d_name, ".") && strcmp(e->d_name, ".."))
			return false;
	return true;
}

static int make_run_id(char out[40], struct al_error *err)
{
	char hex[7];
	time_t now = time(NULL);
	struct tm tm;
	int rc = al_random_hex(hex, 6, err);

	if (rc < 0)
		return rc;
	gmtime_r(&now, &tm);
	strftime(out, 40, "%Y%m%d-%H%M%S", &tm);
	strcat(out, "-");
	strcat(out, hex);
	return 0;
}

/* A run may start from an earlier run's workspace (and the memory in it). */
static int start_workspace(struct run *r, struct al_error *err)
{
	struct al_error e = AL_ERROR_INIT;
	cJSON *extra;
	int rc;

	if (!r->task.start_archive)
		return 0;
	rc =
	    r->provider->ops->hydrate_workspace(r->provider, r->sandbox, r->task.start_archive, &e);
	extra = cJSON_CreateObject();
	cJSON_AddStringToObject(extra, "archive", r->task.start_archive);
	if (audit_sandbox_op(r, "hydrate_workspace", sandbox_id(r), rc, &e, extra, err) < 0)
		return -EIO;
	if (rc < 0) {
		*err = e;
		return rc;
	}
	return 0;
}

/* A refused command line or task: the reason on stderr, nothing recorded in a run. */
static int usage_error(const struct al_error *err)
{
	report_error("%s", err->msg);
	return AL_EXIT_USAGE;
}

/* The run directory of `run`: given (empty or missing) or runs/<run-id>, and its store. */
static int open_run_dir(struct run *r, const char *given, const char *run_id, struct al_error *err)
{
	_cleanup_free_ char *dir = NULL;
	int rc;

	if (given)
		dir = strdup(given);
	else if (asprintf(&dir, "runs/%s", run_id) < 0)
		dir = NULL;
	if (!dir)
		return al_error_set(err, ENOMEM, "out of memory");
	if (!dir_is_empty_or_missing(dir))
		return al_error_set(err, EEXIST, "run directory %s exists and is not empty", dir);
	if ((rc = al_mkdir_p(dir, 0700, err)) < 0)
		return rc;
	r->dir = realpath(dir, NULL);
	if (!r->dir)
		return al_error_errno(err, "resolve %s", dir);
	if ((rc = al_run_store_dir_open(r->dir, &r->store, err)) < 0)
		return rc;
	r->own_store = true;
	say("%s\n", r->dir);
	return 0;
}

/* The worker's node: its airlockd's socket stands in for the one the task names. */
static int use_node_socket(struct run *r, const char *socket, struct al_error *err)
{
	_cleanup_cjson_ cJSON *block = NULL;

	if (!socket || strcmp(r->task.provider_type, "local"))
		return 0;
	block = r->task.provider ? cJSON_Duplicate(r->task.provider, 1) : cJSON_CreateObject();
	if (!block)
		return al_error_set(err, ENOMEM, "out of memory");
	if (!cJSON_GetObjectItemCaseSensitive(block, "type"))
		cJSON_AddStringToObject(block, "type", "local");
	al_runstate_set_str(block, "socket", socket);
	return al_task_set_provider(&r->task, block, err);
}

int al_run_start(const struct al_run_options *opts)
{
	_cleanup_(run_free) struct run r = {0};
	struct al_error err = AL_ERROR_INIT;
	_cleanup_free_ char *text = NULL;
	_cleanup_free_ char *path = NULL;
	char run_id[40];
	size_t len = 0;
	cJSON *d;

	structured_errors = opts->store != NULL;
	r.progress = opts->progress;

	/* Everything that can be refused is refused before anything is created. */
	if (opts->task_text) {
		text = strdup(opts->task_text);
		r.task_dir = strdup(opts->task_dir ? opts->task_dir : "/");
		if (!text || !r.task_dir) {
			al_error_set(&err, ENOMEM, "out of memory");
			return usage_error(&err);
		}
		len = strlen(text);
		if (al_task_parse(text, len, r.task_dir, &r.task, &err) < 0)
			return usage_error(&err);
	} else if (al_task_load(opts->task_path, &r.task, &r.task_dir, &text, &len, &err) < 0) {
		return usage_error(&err);
	}
	r.task_loaded = true;
	r.node = opts->node;
	if (use_node_socket(&r, opts->provider_socket, &err) < 0)
		return usage_error(&err);
	if (al_credentials_load(opts->credentials, &r.creds, &err) < 0 || check_key(&r, &err) < 0 ||
	    open_store(&r, &err) < 0)
		return usage_error(&err);
	if (opts->run_id) {
		if (strlen(opts->run_id) >= sizeof(run_id)) {
			al_error_set(&err, EINVAL, "run id %s is too long", opts->run_id);
			return usage_error(&err);
		}
		strcpy(run_id, opts->run_id);
	} else if (make_run_id(run_id, &err) < 0) {
		return usage_error(&err);
	}
	if (opts->store) {
		/* The queue's run: its records are in the store, its directory holds only
		 * workspace archives, and may hold those of an earlier attempt. */
		r.store = opts->store;
		if (al_mkdir_p(r.store->dir, 0700, &err) < 0 || !(r.dir = strdup(r.store->dir)))
			return usage_error(&err);
		say("%s\n", run_id);
	} else if (open_run_dir(&r, opts->run_dir, run_id, &err) < 0) {
		return usage_error(&err);
	}
	/* From here on the run exists: a failure is recorded in it. */
	if (r.store->ops->file_write(r.store, TASK_COPY, text, len, &err) < 0)
		return fail(&r, &err);
	if (asprintf(&path, "%s/" WORKSPACE_DIR, r.dir) < 0 || al_mkdir_p(path, 0700, &err) < 0)
		return fail(&r, &err);
	r.state = al_runstate_new(run_id, r.task_dir);
	if (!r.state) {
		al_error_set(&err, ENOMEM, "out of memory");
		return fail(&r, &err);
	}
	{
		cJSON *first = cJSON_CreateObject();
		cJSON_AddStringToObject(first, "role", "user");
		cJSON_AddStringToObject(first, "content", r.task.input);
		cJSON_AddItemToArray(cJSON_GetObjectItemCaseSensitive(r.state, "items"), first);
	}
	if (save(&r, &err) < 0 || al_audit_open_store(&r.audit, r.store, &err) < 0)
		return fail(&r, &err);
	r.audit_open = true;
	{
		char sha[65];
		al_sha256_hex(text, len, sha);
		d = cJSON_CreateObject();
		cJSON_AddStringToObject(d, "run_id", run_id);
		cJSON_AddStringToObject(d, "task_sha256", sha);
		cJSON_AddStringToObject(d, "model", r.task.model.name ? r.task.model.name : "");
		cJSON_AddStringToObject(d, "provider", r.task.provider_type);
		cJSON_AddStringToObject(d, "credentials", r.creds.source ? r.creds.source : "none");
	}
	if (audit(&r, "run_start", d, &err) < 0 ||
	    (r.remote &&
	     (store_put(&r, TASK_COPY, (char[65]){0}, &err) < 0 || store_state(&r, &err) < 0)) ||
	    open_clients(&r, &err) < 0 || create_sandbox(&r, r.task.start_snapshot, &err) < 0 ||
	    start_workspace(&r, &err) < 0)
		return fail(&r, &err);
	return drive(&r);
}

/*
 * A resume on another provider: the old sandbox, while its provider can still reach it,
 * gives its workspace as it is now (the last archive may predate tool calls whose results
 * are recorded, which must not be lost or run again), then goes.  When it cannot be
 * reached the last archive is all there is, and the resume says so.
 */
static int take_workspace_along(struct run *r, const char *was, struct al_error *err)
{
	cJSON *st = sandbox_state(r);
	const struct al_provider_ops *ops = al_provider_lookup(was);
	const cJSON *block = cJSON_GetObjectItemCaseSensitive(st, "provider_block");
	const char *id = al_runstate_str(st, "sandbox_id");
	_cleanup_(al_sandbox_freep) struct al_sandbox *old = NULL;
	_cleanup_free_ char *rel = NULL;
	_cleanup_free_ char *abs = NULL;
	struct al_provider *p = NULL;
	struct al_error e = AL_ERROR_INIT;
	cJSON *extra;
	bool running = false;
	int rc;

	if (!ops || !id)
		return 0;
	r->creds.provider_type = was;
	rc = ops->open(block, al_credentials_provider_key(&r->creds), &p, &e);
	r->creds.provider_type = r->task.provider_type;
	if (rc == 0)
		rc = ops->resume(p, id, cJSON_GetObjectItemCaseSensitive(st, "handle"), NULL, &old,
		                 &running, &e);
	if (rc == 0 && running && (ops->caps & AL_CAP_WORKSPACE_ARCHIVE)) {
		if (asprintf(&rel, WORKSPACE_DIR "/ws-%ld-from-%s%s.tar",
		             al_runstate_long(r->state, "turn"), was, archive_tag(r)) < 0 ||
		    asprintf(&abs, "%s/%s", r->dir, rel) < 0) {
			ops->close(p);
			return al_error_set(err, ENOMEM, "out of memory");
		}
		rc = ops->persist_workspace(p, old, abs, &e);
		extra = cJSON_CreateObject();
		cJSON_AddStringToObject(extra, "archive", rel);
		cJSON_AddStringToObject(extra, "provider", was);
		if (audit_sandbox_op(r, "persist_workspace", id, rc, &e, extra, err) < 0) {
			ops->close(p);
			return -EIO;
		}
		if (rc == 0) {
			al_runstate_set_str(st, "workspace_archive", rel);
			if ((rc = record_archive(r, rel, err)) < 0) {
				ops->close(p);
				return rc;
			}
			prune_archives(r->dir, rel + strlen(WORKSPACE_DIR "/"));
			say("resume: took the workspace of %s sandbox %s along\n", was, id);
			if (!r->task.keep_sandbox) {
				struct al_error de = AL_ERROR_INIT;
				int dr = ops->delete (p, old, &de);
				if (audit_sandbox_op(r, "delete", id, dr, &de, NULL, err) < 0) {
					ops->close(p);
					return -EIO;
				}
			}
		}
	}
	if (rc < 0 || !running)
		say("resume: the %s sandbox %s cannot be reached (%s); using the last workspace "
		    "archive\n",
		    was, id, rc < 0 ? e.msg : "not running");
	if (p)
		ops->close(p);
	return 0;
}

/*
 * A run killed between taking a snapshot and recording it left one that
 * nothing names: found by the sandbox it was taken of, and removed (what
 * RunState names, and the task's start snapshot, stay).
 */
static void drop_unrecorded_snapshots(struct run *r)
{
	cJSON *sb = sandbox_state(r);
	const char *of = al_runstate_str(sb, "snapshot_pending_of");
	const char *kept = al_runstate_str(sb, "snapshot_id");
	_cleanup_strv_ char **ids = NULL;
	struct al_error e = AL_ERROR_INIT;

	if (!of || !r->provider->ops->list_snapshots || !r->provider->ops->delete_snapshot)
		return;
	if (r->provider->ops->list_snapshots(r->provider, of, &ids, &e) < 0) {
		log_warn("resume: cannot look for a snapshot left unrecorded: %s", e.msg);
		return;
	}
	for (char **id = ids; id && *id; id++) {
		if ((kept && !strcmp(*id, kept)) ||
		    (r->task.start_snapshot && !strcmp(*id, r->task.start_snapshot)))
			continue;
		say("resume: removing snapshot %s, taken but never recorded\n", *id);
		al_error_clear(&e);
		if (r->provider->ops->delete_snapshot(r->provider, *id, &e) < 0)
			log_warn("resume: remove snapshot %s: %s", *id, e.msg);
	}
	al_runstate_set_str(sb, "snapshot_pending_of", NULL);
}

/*
 * The snapshot snap is not in this airlockd (a fresh one, the old state gone): when the
 * store holds its export, fetch it (checked against the recorded SHA-256), import it and
 * restore from the import.  1: restored; 0: not possible, go on without it.
 */
static int import_snapshot(struct run *r, const char *snap, struct al_error *err)
{
	cJSON *sb = sandbox_state(r);
	cJSON *rec = cJSON_GetObjectItemCaseSensitive(sb, "store_snapshot");
	const char *rel = al_runstate_str(rec, "name");
	const struct al_provider_ops *ops = r->provider->ops;
	_cleanup_free_ char *name = NULL;
	_cleanup_free_ char *path = NULL;
	_cleanup_free_ char *dir = NULL;
	_cleanup_free_ char *imported = NULL;
	_cleanup_free_ char *was = NULL; /* snap may be the RunState's, replaced below */
	struct al_error e = AL_ERROR_INIT;
	cJSON *d;
	int rc;

	if (!r->remote || !ops->import_snapshot || !rel ||
	    strcmp(al_runstate_str(rec, "snapshot_id") ? al_runstate_str(rec, "snapshot_id") : "",
	           snap))
		return 0;
	if (!(name = store_name(r, rel)) || asprintf(&path, "%s/%s", r->dir, rel) < 0 ||
	    asprintf(&dir, "%s/" SNAPSHOTS_DIR, r->dir) < 0)
		return al_error_set(err, ENOMEM, "out of memory");
	rc = al_mkdir_p(dir, 0700, &e);
	if (rc == 0)
		rc = al_store_get_file(r->remote, name, path, al_runstate_str(rec, "sha256"), &e);
	d = cJSON_CreateObject();
	cJSON_AddStringToObject(d, "op", "get");
	{
		_cleanup_free_ char *where = al_store_describe(r->remote, name);
		cJSON_AddStringToObject(d, "object", where ? where : name);
	}
	cJSON_AddStringToObject(d, "sha256", al_runstate_str(rec, "sha256"));
	cJSON_AddStringToObject(d, "outcome", rc < 0 ? e.msg : "ok");
	if (audit(r, "store", d, err) < 0)
		return -EIO;
	if (rc == 0)
		rc = ops->import_snapshot(r->provider, path, &imported, &e);
	unlink(path);
	if (rc < 0) {
		log_warn("snapshot %s from the store: %s; using the workspace archive", snap,
		         e.msg);
		return 0;
	}
	al_error_clear(&e);
	rc = create_sandbox(r, imported, &e);
	if (rc < 0) {
		log_warn("restoring imported snapshot %s failed (%s); using the workspace archive",
		         imported, e.msg);
		return 0;
	}
	/* From now on the run's snapshot is the import (the old id means nothing here). */
	if (!(was = strdup(snap)))
		return al_error_set(err, ENOMEM, "out of memory");
	al_runstate_set_str(sb, "snapshot_id", imported);
	al_runstate_set_str(rec, "snapshot_id", imported);
	if ((rc = save(r, err)) < 0)
		return rc;
	say("resume: restored sandbox from snapshot %s (imported from the store as %s)\n", was,
	    imported);
	return 1;
}

/* Bring the run's sandbox back; says which way on stdout. */
static int recover_sandbox(struct run *r, struct al_error *err)
{
	cJSON *sb = sandbox_state(r);
	const char *id = al_runstate_str(sb, "sandbox_id");
	const char *snap = al_runstate_str(sb, "snapshot_id");
	const char *archive = al_runstate_str(sb, "workspace_archive");
	const char *was = al_runstate_str(sb, "provider");
	/* A run resumed on another provider keeps only what is portable: the workspace
	 * archive.  Sandbox and snapshot ids mean nothing to the new provider. */
	const char *node_was = al_runstate_str(sb, "node");
	/* Taken over by a worker on another node: that node's airlockd holds the sandbox
	 * (and its snapshots), which this one cannot resume; the workspace moves. */
	bool moved = node_was && r->node && strcmp(node_was, r->node);
	bool switched = (was && strcmp(was, r->task.provider_type)) || moved;
	_cleanup_(al_sandbox_freep) struct al_sandbox *found = NULL;
	_cleanup_free_ char *abs = NULL;
	struct al_error e = AL_ERROR_INIT;
	bool running = false;
	int rc;

	if (!switched)
		drop_unrecorded_snapshots(r);
	if (switched) {
		if (moved)
			say("resume: the sandbox is on node %s, this is %s; the workspace moves by "
			    "archive\n",
			    node_was, r->node);
		else
			say("resume: provider changed from %s to %s; the workspace moves by "
			    "archive\n",
			    was, r->task.provider_type);
		rc = take_workspace_along(r, was, &e);
		if (rc < 0) {
			*err = e;
			return rc;
		}
		archive = al_runstate_str(sb, "workspace_archive");
		id = NULL;
		snap = NULL;
		if (!archive)
			archive = r->task.start_archive;
		rc = -ENOENT;
	} else {
		/* Nothing taken yet: go back to where the run started. */
		if (!snap && !archive) {
			snap = r->task.start_snapshot;
			archive = r->task.start_archive;
		}
		rc = r->provider->ops->resume(
		    r->provider, id, id ? cJSON_GetObjectItemCaseSensitive(sb, "handle") : NULL,
		    id ? NULL : al_runstate_str(r->state, "run_id"), &found, &running, &e);
	}
	if (rc < 0 && rc != -ENOENT) {
		*err = e;
		return rc;
	}
	if (rc == 0 && running) {
		_cleanup_free_ char *fid = strdup(found->id);
		if (!fid)
			return al_error_set(err, ENOMEM, "out of memory");
		if ((rc = record_sandbox(r, TAKE_PTR(found), err)) < 0)
			return rc;
		say("resume: sandbox %s still running\n", fid);
		return audit_sandbox_op(r, "resume", fid, 0, &e, NULL, err);
	}
	if (rc == 0) {
		/* There but stopped: it cannot run anything; make room for a new one. */
		al_error_clear(&e);
		rc = r->provider->ops->delete (r->provider, found, &e);
		if (audit_sandbox_op(r, "delete", found->id, rc, &e, NULL, err) < 0)
			return -EIO;
	}
	if (snap) {
		al_error_clear(&e);
		rc = create_sandbox(r, snap, &e);
		if (rc == 1) {
			say("resume: sandbox %s still running\n", sandbox_id(r));
			return 0;
		}
		if (rc == 0) {
			say("resume: restored sandbox from snapshot %s\n", snap);
			return 0;
		}
		rc = import_snapshot(r, snap, err);
		if (rc != 0)
			return rc < 0 ? rc : 0;
		log_warn("restoring snapshot %s failed (%s); recreating from the manifest", snap,
		         e.msg);
	}
	if ((rc = create_sandbox(r, NULL, err)) < 0)
		return rc;
	/* Adopted after a switch: made by a resume killed before it was recorded, so it has
	 * run nothing yet, and may lack the workspace: hydrate it as a new one. */
	if (rc == 1 && !switched) {
		say("resume: sandbox %s still running\n", sandbox_id(r));
		return 0;
	}
	archive = archive_in_reach(r, archive);
	if (archive) {
		if (asprintf(&abs, "%s%s%s", archive[0] == '/' ? "" : r->dir,
		             archive[0] == '/' ? "" : "/", archive) < 0)
			return al_error_set(err, ENOMEM, "out of memory");
		if ((rc = fetch_archive(r, archive, abs, err)) < 0)
			return rc;
		al_error_clear(&e);
		rc = r->provider->ops->hydrate_workspace(r->provider, r->sandbox, abs, &e);
		if (audit_sandbox_op(r, "hydrate_workspace", sandbox_id(r), rc, &e, NULL, err) < 0)
			return -EIO;
		if (rc < 0) {
			*err = e;
			return al_error_prefix(err, "restore workspace archive %s", archive);
		}
		say("resume: recreated sandbox from manifest and workspace archive %s\n", abs);
	} else {
		say("resume: recreated sandbox from manifest (no workspace archive)\n");
	}
	return 0;
}

/* What resume and cancel start from: the run's store, its RunState and its task, with the
 * provider it goes on with; -EINVAL (err says why) when that cannot be. */
static int load_run(struct run *r, const struct al_run_options *opts, struct al_error *err)
{
	_cleanup_free_ char *task_path = NULL;
	_cleanup_free_ char *text = NULL;
	const char *task_dir;
	size_t len = 0;

	if (opts->store) {
		r->store = opts->store;
		r->dir = strdup(r->store->dir);
		if (!r->dir) {
			return al_error_set(err, ENOMEM, "out of memory");
		}
		if (al_mkdir_p(r->dir, 0700, err) < 0)
			return -EINVAL;
	} else {
		r->dir = realpath(opts->run_dir, NULL);
		if (!r->dir) {
			al_error_errno(err, "run directory %s", opts->run_dir);
			return -EINVAL;
		}
		if (al_run_store_dir_open(r->dir, &r->store, err) < 0)
			return -EINVAL;
		r->own_store = true;
	}
	r->node = opts->node;
	if (al_runstate_load(r->store, &r->state, err) < 0)
		return -EINVAL;
	task_dir = al_runstate_str(r->state, "task_dir");
	if (asprintf(&task_path, "%s/" TASK_COPY, r->dir) < 0 ||
	    r->store->ops->file_read(r->store, TASK_COPY, &text, &len, err) < 0)
		return -EINVAL;
	if (al_task_parse(text, len, task_dir ? task_dir : r->dir, &r->task, err) < 0) {
		al_error_prefix(err, "%s", task_path);
		return -EINVAL;
	}
	r->task_loaded = true;
	/* Another provider to go on with: given now, or by an earlier resume. */
	{
		_cleanup_cjson_ cJSON *given = NULL;
		const cJSON *block = cJSON_GetObjectItemCaseSensitive(r->state, "provider_block");
		if (opts->provider) {
			_cleanup_free_ char *ptext = NULL;
			size_t plen = 0;
			if (al_read_file(opts->provider, 1u << 20, &ptext, &plen, err) < 0)
				return -EINVAL;
			given = cJSON_ParseWithLength(ptext, plen);
			if (!given) {
				al_error_set(err, EINVAL, "--provider %s: not JSON",
				             opts->provider);
				return -EINVAL;
			}
			block = given;
		}
		if (block && al_task_set_provider(&r->task, block, err) < 0) {
			al_error_prefix(err, "--provider %s",
			                opts->provider ? opts->provider : "(kept)");
			return -EINVAL;
		}
		if (given) {
			cJSON_DeleteItemFromObjectCaseSensitive(r->state, "provider_block");
			cJSON_AddItemToObject(r->state, "provider_block",
			                      cJSON_Duplicate(given, 1));
		}
	}
	if (use_node_socket(r, opts->provider_socket, err) < 0)
		return -EINVAL;
	if (al_credentials_load(opts->credentials, &r->creds, err) < 0 || check_key(r, err) < 0)
		return -EINVAL;
	return 0;
}

int al_run_resume(const struct al_run_options *opts)
{
	_cleanup_(run_free) struct run r = {0};
	struct al_error err = AL_ERROR_INIT;
	const char *status;
	cJSON *d;
	int rc;

	structured_errors = opts->store != NULL;
	r.progress = opts->progress;

	if (load_run(&r, opts, &err) < 0 || open_store(&r, &err) < 0)
		return usage_error(&err);
	status = al_runstate_str(r.state, "status");
	if (status && !strcmp(status, "completed") &&
	    !cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(r.state, "finish_pending"))) {
		/* The run_end record may be all a crash cut off. */
		if (al_audit_open_store(&r.audit, r.store, &err) < 0)
			return fail(&r, &err);
		r.audit_open = true;
		d = cJSON_CreateObject();
		cJSON_AddStringToObject(d, "run_id", al_runstate_str(r.state, "run_id"));
		cJSON_AddStringToObject(d, "status", "completed");
		cJSON_AddStringToObject(d, "action", "reported, not run again");
		if (audit(&r, "resume", d, &err) < 0)
			return fail(&r, &err);
		rc = al_audit_count(&r.audit, "run_end", "status", "completed", &err);
		if (rc == 0) {
			d = cJSON_CreateObject();
			cJSON_AddStringToObject(d, "status", "completed");
			cJSON_AddBoolToObject(d, "recovered", true);
			rc = audit(&r, "run_end", d, &err);
		}
		if (rc < 0)
			return fail(&r, &err);
		printf("resume: run %s already completed\n%s\n", al_runstate_str(r.state, "run_id"),
		       al_runstate_str(r.state, "final_output")
		           ? al_runstate_str(r.state, "final_output")
		           : "");
		return AL_EXIT_OK;
	}
	if (al_audit_open_store(&r.audit, r.store, &err) < 0)
		return fail(&r, &err);
	r.audit_open = true;
	d = cJSON_CreateObject();
	cJSON_AddStringToObject(d, "run_id", al_runstate_str(r.state, "run_id"));
	cJSON_AddStringToObject(d, "status", status ? status : "");
	cJSON_AddNumberToObject(d, "turn", (double)al_runstate_long(r.state, "turn"));
	cJSON_AddNumberToObject(d, "model_calls", (double)al_runstate_long(r.state, "model_calls"));
	cJSON_AddNumberToObject(
	    d, "pending_calls",
	    cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(r.state, "pending_calls")));
	if (audit(&r, "resume", d, &err) < 0 || recover_audit(&r, &err) < 0 ||
	    open_clients(&r, &err) < 0 || recover_sandbox(&r, &err) < 0)
		return fail(&r, &err);
	if (status && !strcmp(status, "completed")) {
		if (finish(&r, &err) < 0)
			return fail(&r, &err);
		printf("%s\n", al_runstate_str(r.state, "final_output"));
		return AL_EXIT_OK;
	}
	return drive(&r);
}

int al_run_cancel(const struct al_run_options *opts)
{
	_cleanup_(run_free) struct run r = {0};
	struct al_error err = AL_ERROR_INIT;
	struct al_error e = AL_ERROR_INIT;
	cJSON *st, *d;
	const char *id;
	int rc;

	structured_errors = opts->store != NULL;

	if (load_run(&r, opts, &err) < 0) {
		/* Nothing was recorded before the cancel: nothing to clean up. */
		if (err.code == ENOENT)
			return AL_EXIT_OK;
		return usage_error(&err);
	}
	if (al_audit_open_store(&r.audit, r.store, &err) < 0)
		return fail(&r, &err);
	r.audit_open = true;
	st = sandbox_state(&r);
	id = al_runstate_str(st, "sandbox_id");
	if (id && !cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(st, "deleted"))) {
		const char *was = al_runstate_str(st, "provider");
		const struct al_provider_ops *ops = al_provider_lookup(was ? was : "");
		const cJSON *block = cJSON_GetObjectItemCaseSensitive(st, "provider_block");
		_cleanup_(al_sandbox_freep) struct al_sandbox *sb = NULL;
		struct al_provider *p = NULL;
		bool running = false;

		/* Where the sandbox was made, which may be another node's airlockd. */
		r.creds.provider_type = was;
		rc = ops ? ops->open(block, al_credentials_provider_key(&r.creds), &p, &e)
		         : al_error_set(&e, EINVAL, "provider %s is not built in", was);
		if (rc == 0)
			rc = ops->resume(p, id, cJSON_GetObjectItemCaseSensitive(st, "handle"),
			                 NULL, &sb, &running, &e);
		if (rc == 0)
			rc = ops->delete (p, sb, &e);
		if (rc != -ENOENT) {
			if (audit_sandbox_op(&r, "delete", id, rc, &e, NULL, &err) < 0) {
				ops->close(p);
				return fail(&r, &err);
			}
			if (rc < 0)
				log_warn("cancel: sandbox %s: %s", id, e.msg);
		}
		if (rc == 0 || rc == -ENOENT)
			cJSON_AddBoolToObject(st, "deleted", true);
		if (p)
			ops->close(p);
	}
	al_runstate_set_str(r.state, "status", "cancelled");
	if (save(&r, &err) < 0)
		return fail(&r, &err);
	d = cJSON_CreateObject();
	cJSON_AddStringToObject(d, "status", "cancelled");
	if (audit(&r, "run_end", d, &err) < 0)
		return fail(&r, &err);
	say("run %s cancelled\n", al_runstate_str(r.state, "run_id"));
	return AL_EXIT_OK;
}

/* ---- gc ---- */

/* Why the sandbox whose labels are l is a leftover (its run is gone or over), or NULL. */
static const char *leftover_reason(const cJSON *l)
{
	const char *dir = al_runstate_str(l, RUN_LABEL_DIR);
	_cleanup_cjson_ cJSON *state = NULL;
	struct al_error e = AL_ERROR_INIT;
	const char *status;
	struct stat st;

	if (!dir)
		return NULL; /* where the run lives is not known: not ours to judge */
	if (stat(dir, &st) < 0 && errno == ENOENT)
		return "its run directory is gone";
	_cleanup_(al_run_store_freep) struct al_run_store *store = NULL;

	if (al_run_store_dir_open(dir, &store, &e) < 0 || al_runstate_load(store, &state, &e) < 0)
		return NULL;
	status = al_runstate_str(state, "status");
	if (status && !strcmp(status, "completed"))
		return "its run completed";
	if (status && !strcmp(status, "failed"))
		return "its run failed";
	return NULL;
}

int al_run_gc(const struct al_run_options *opts)
{
	struct al_provider *p = NULL;
	struct al_error err = AL_ERROR_INIT;
	_cleanup_cjson_ cJSON *list = NULL;
	const cJSON *sb;
	int status = AL_EXIT_OK;

	_cleanup_cjson_ cJSON *options = cJSON_CreateObject();

	if (opts->socket)
		cJSON_AddStringToObject(options, "socket", opts->socket);
	if (al_provider_local.open(options, NULL, &p, &err) < 0 ||
	    al_local_list(p, NULL, &list, &err) < 0) {
		fprintf(stderr, "airlock-harness: gc: %s\n", err.msg);
		if (p)
			p->ops->close(p);
		return AL_EXIT_FAILED;
	}
	cJSON_ArrayForEach(sb, list)
	{
		const cJSON *labels = cJSON_GetObjectItemCaseSensitive(sb, "labels");
		const char *id = al_runstate_str(sb, "id"),
		           *run = al_runstate_str(labels, RUN_LABEL_ID);
		const char *why = run && id ? leftover_reason(labels) : NULL;
		struct al_sandbox *victim;

		if (!why)
			continue;
		victim = al_sandbox_new(id);
		al_error_clear(&err);
		if (!victim || p->ops->delete (p, victim, &err) < 0) {
			fprintf(stderr, "airlock-harness: gc: sandbox %s: %s\n", id,
			        victim ? err.msg : "out of memory");
			status = AL_EXIT_FAILED;
		} else {
			printf("%s (run %s: %s)\n", id, run, why);
		}
		al_sandbox_free(victim);
	}
	p->ops->close(p);
	return status;
}
