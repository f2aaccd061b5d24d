/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The lifecycle of airlockd's sandboxes (lifecycle.h).
 */
#include "lifecycle.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "archives.h"
#include "cgroup.h"
#include "bucket_mounts.h"
#include "cleanup.h"
#include "criu.h"
#include "events.h"
#include "helper.h"
#include "metrics.h"
#include "network.h"
#include "json.h"
#include "log.h"
#include "pool.h"
#include "process.h"
#include "reaper.h"
#include "sandbox.h"
#include "snapshot.h"
#include "strv.h"
#include "uidslots.h"
#include "util.h"

/* ---- making one ------------------------------------------------------------------------------ */

/*
 * A create in progress.  Until it commits, leaving scope undoes everything
 * it made: PID 1, cgroups, state directory and registry entry.
 */
struct create_txn {
	struct daemon *d;
	struct sandbox *sb;
	bool registered;
	bool made; /* state dir, cgroups or PID 1 may exist */
};

static void create_txn_abort(struct create_txn *t)
{
	if (t->sb && t->made) {
		struct al_error cerr = AL_ERROR_INIT;
		sandbox_kill_wait(t->sb);
		if (sandbox_remove_remains(&t->d->host, t->sb->id, &cerr) < 0)
			log_error("cleanup after failed create: %s", cerr.msg);
	}
	if (t->sb && t->registered)
		registry_remove(&t->d->registry, t->sb);
	sandbox_unref(t->sb);
}

static void hurry_reaper(void *arg)
{
	struct daemon *d = arg;

	if (d->reaper)
		reaper_hurry(d->reaper);
}

/* A sandbox for spec (moved), started as how says; uid_base != 0: in that
 * uid range (a restore with processes). */
static int make_sandbox(struct daemon *d, struct sandbox_spec *spec,
                        const struct sandbox_start *how, bool pooled, uid_t uid_base,
                        struct sandbox **out, struct al_error *err)
{
	_cleanup_(create_txn_abort) struct create_txn t = {.d = d};
	char id[16];
	int r;

	r = al_random_hex(id, 12, err);
	if (r < 0)
		return r;
	t.sb = sandbox_new(&d->host, id, spec, err);
	if (!t.sb)
		return -ENOMEM;
	t.sb->pooled = pooled;
	t.sb->destroying = true; /* not usable until ready */
	al_iso8601_now(t.sb->created, sizeof(t.sb->created), false);
	sandbox_touch_created(t.sb);
	r = registry_reserve(&d->registry, t.sb, uid_base, hurry_reaper, d, err);
	if (r < 0)
		return r;
	t.registered = true;
	t.made = true;
	r = sandbox_build(&d->host, t.sb, how, err);
	if (r < 0)
		return r;
	r = network_sandbox_up(d, t.sb, err);
	if (r < 0)
		return r;

	pthread_mutex_lock(&t.sb->lock);
	t.sb->destroying = false;
	pthread_mutex_unlock(&t.sb->lock);
	log_info("sandbox %s created%s (pid %d, uid %u, rootfs %s)", t.sb->id,
	         pooled ? " for the warm pool" : "", (int)t.sb->init_pid, (unsigned)t.sb->uid_base,
	         t.sb->spec.rootfs);
	/* Committed: the registry holds one reference, the caller gets ours. */
	t.made = false;
	t.registered = false;
	*out = TAKE_PTR(t.sb);
	return 0;
}

static const struct sandbox_start start_fresh = {.start = sandbox_start_fresh, .layer_fd = -1};

static struct sandbox_spec_policy policy(const struct daemon *d, bool trusted)
{
	return (struct sandbox_spec_policy){.default_rootfs = d->host.default_rootfs,
	                                    .trusted = trusted,
	                                    .images_dir = d->host.images_dir};
}

/* ---- the warm pool's side ---------------------------------------------------------------------
 */

static int pool_make(void *opaque, struct sandbox **out, struct al_error *err)
{
	struct daemon *d = opaque;
	struct sandbox_spec_policy pol = policy(d, true);
	struct sandbox_spec spec = {0};
	int r = sandbox_spec_from_request(NULL, &pol, &spec, err);

	if (r == 0)
		r = make_sandbox(d, &spec, &start_fresh, true, 0, out, err);
	sandbox_spec_free(&spec);
	return r;
}

static void pool_discard(void *opaque, struct sandbox *sb)
{
	struct daemon *d = opaque;
	struct al_error err = AL_ERROR_INIT;

	if (lifecycle_destroy(d, sb, false, &err) < 0)
		log_warn("warm pool: %s", err.msg);
	sandbox_unref(sb);
}

static const struct pool_ops pool_ops = {.make = pool_make, .discard = pool_discard};

/*
 * A pooled sandbox becomes the requester's: it takes the request's
 * environment (the only setting a pooled one can still take) and shows up
 * in the API.  Still invisible until then: nothing else touches it.
 */
static int adopt(struct daemon *d, struct sandbox *sb, struct sandbox_spec *spec,
                 struct al_error *err)
{
	char **env = sb->spec.env;

	sb->spec.env = TAKE_PTR(spec->env);
	spec->env = env;
	/* The lifecycle settings do not change how a sandbox is made either. */
	env = sb->spec.labels;
	sb->spec.labels = TAKE_PTR(spec->labels);
	spec->labels = env;
	sb->spec.ttl_s = spec->ttl_s;
	sb->spec.idle_timeout_s = spec->idle_timeout_s;
	sb->spec.owner = spec->owner;
	al_iso8601_now(sb->created, sizeof(sb->created), false);
	sandbox_touch_created(sb);
	registry_set_pooled(&d->registry, sb, false);
	return sandbox_save_state(sb, err);
}

int lifecycle_create(struct daemon *d, struct sandbox_spec *spec, struct sandbox **out,
                     struct al_error *err)
{
	struct sandbox *sb;
	int r;

	if (d->pool && sandbox_spec_poolable(spec, &d->pool_spec) && (sb = pool_take(d->pool))) {
		struct al_error aerr = AL_ERROR_INIT;
		if (adopt(d, sb, spec, &aerr) == 0) {
			log_info("sandbox %s taken from the warm pool", sb->id);
			sandbox_spec_free(spec);
			*out = sb;
			return 0;
		}
		log_warn("warm pool: sandbox %s unusable (%s); removing it", sb->id, aerr.msg);
		pool_discard(d, sb);
	}
	r = make_sandbox(d, spec, &start_fresh, false, 0, out, err);
	sandbox_spec_free(spec);
	return r;
}

/* ---- destroying -------------------------------------------------------------------------------
 */

/* The reaper's half of a destroy: wait for PID 1 to be gone, remove what is
 * left on the host and the registry entry. */
static int teardown(struct daemon *d, struct sandbox *sb, struct al_error *err)
{
	size_t n;
	struct sandbox_proc *procs = sandbox_take_procs(sb, &n);
	int r;

	/* Its published ports close first, its link and rules go with it. */
	network_sandbox_down(d, sb);
	/* Frozen by an unwaited destroy: its tasks die once thawed. */
	if (sb->frozen) {
		sandbox_kill(sb);
		(void)cgroup_freeze(d->host.cgroups, sb->id, false, NULL, NULL);
	}
	sandbox_kill_wait(sb);
	/* With PID 1 gone the collectors see their connections close. */
	for (size_t i = 0; i < n; i++)
		process_unref(procs[i].p);
	free(procs);

	r = sandbox_remove_remains(&d->host, sb->id, err);
	events_forget(sb->id);
	registry_remove(&d->registry, sb);
	if (r < 0)
		return r;
	log_info("sandbox %s destroyed", sb->id);
	return 0;
}

/* Nobody waits for the result: a failure is logged, and what is left is
 * removed by the next airlockd start (the sandbox has no state.json). */
static void reap(void *opaque, struct sandbox *sb)
{
	struct al_error err = AL_ERROR_INIT;

	if (teardown(opaque, sb, &err) < 0)
		log_error("destroy of sandbox %s: %s", sb->id, err.msg);
}

int lifecycle_destroy(struct daemon *d, struct sandbox *sb, bool wait, struct al_error *err)
{
	pthread_mutex_lock(&sb->lock);
	if (sb->destroying) {
		pthread_mutex_unlock(&sb->lock);
		return al_error_set(err, ENOENT, "sandbox %s is being destroyed", sb->id);
	}
	sb->destroying = true;
	pthread_mutex_unlock(&sb->lock);
	registry_set_reaping(&d->registry, sb);

	if (wait)
		return teardown(d, sb, err);
	/*
	 * Not waited for: stopped now, torn down later (reaper.h).  Without
	 * state.json an airlockd restarted before that treats it as half-made
	 * and removes it, rather than reattaching it.  Freezing stops it as
	 * surely as SIGKILL but leaves the kernel's share of the teardown (the
	 * namespaces' exit, RCU grace periods) for the reaper to start when
	 * requests pause; a host without a freezer gets the SIGKILL now.
	 */
	sandbox_forget_state(sb);
	sb->frozen = cgroup_freeze_start(d->host.cgroups, sb->id, err) == 0;
	if (!sb->frozen) {
		al_error_clear(err);
		sandbox_kill(sb);
	}
	if (!reaper_queue(d->reaper, sb))
		reap(d, sb);
	return 0;
}

/* ---- lifetimes ---------------------------------------------------------------------------------
 */

size_t lifecycle_expire(struct daemon *d, int64_t now)
{
	_cleanup_strv_ char **ids = registry_ids(&d->registry);
	size_t n = 0;

	for (char **id = ids; id && *id; id++) {
		_cleanup_sandbox_ struct sandbox *sb = registry_get(&d->registry, *id);
		struct al_error err = AL_ERROR_INIT;
		const char *why;
		bool busy;

		if (!sb)
			continue; /* gone, being reaped, or in the warm pool */
		pthread_mutex_lock(&sb->lock);
		busy = sb->destroying;
		pthread_mutex_unlock(&sb->lock);
		/* A request working in it (an exec waiting for its command) is
		 * activity until it ends: idleness counts from then. */
		if (busy || !(why = sandbox_expired(sb, now)) ||
		    (!strcmp(why, "idle_timeout") &&
		     __atomic_load_n(&sb->requests, __ATOMIC_RELAXED)))
			continue;
		if (lifecycle_destroy(d, sb, false, &err) < 0) {
			log_warn("sandbox %s: %s expired, but: %s", sb->id, why, err.msg);
			continue;
		}
		metrics_count_expired(why);
		log_info("sandbox %s (%s) destroyed: its %s (%llu s) expired", sb->id,
		         sb->spec.name, why,
		         (unsigned long long)(!strcmp(why, "ttl") ? sb->spec.ttl_s
		                                                  : sb->spec.idle_timeout_s));
		n++;
	}
	return n;
}

/* ---- snapshots ---------------------------------------------------------------------------------
 */

static cJSON *snapshot_meta(const struct sandbox *sb, const char *snapshot_id, bool processes,
                            cJSON *manifest)
{
	_cleanup_cjson_ cJSON *meta = cJSON_CreateObject(), *manifest_owned = manifest;
	cJSON *record = sandbox_spec_to_json(&sb->spec), *session;

	if (!meta || !record || !cJSON_AddBoolToObject(meta, "processes", processes) ||
	    !cJSON_AddStringToObject(record, "id", sb->id) ||
	    !cJSON_AddItemToObject(meta, "sandbox", record)) {
		cJSON_Delete(record);
		return NULL;
	}
	cJSON_AddItemToObject(meta, "manifest",
	                      manifest_owned ? TAKE_PTR(manifest_owned) : cJSON_CreateNull());
	/* What the Agents SDK keeps of a session, so a hosted provider can take it. */
	session = cJSON_AddObjectToObject(meta, "session_state");
	if (!session || !cJSON_AddStringToObject(session, "provider", "airlock") ||
	    !cJSON_AddStringToObject(session, "sandbox_id", sb->id) ||
	    !cJSON_AddStringToObject(session, "workspace_root_path", sb->spec.workspace) ||
	    !cJSON_AddItemToObject(
	        session, "environment",
	        cJSON_Duplicate(cJSON_GetObjectItemCaseSensitive(record, "env"), true)) ||
	    !cJSON_AddStringToObject(session, "snapshot_id", snapshot_id))
		return NULL;
	return TAKE_PTR(meta);
}

/* Whether the client behind fd (-1: none) has hung up. */
static bool client_left(int fd)
{
	struct pollfd p = {.fd = fd, .events = POLLRDHUP};

	return fd >= 0 && poll(&p, 1, 0) > 0 && (p.revents & (POLLRDHUP | POLLHUP | POLLERR));
}

static int check_client(int fd, struct al_error *err)
{
	return client_left(fd) ? al_error_set(err, ECANCELED, "the client went away") : 0;
}

/* The snapshot's work is the sandbox's: its archives are made in its
 * cgroups (memory, CPU, pids), but not in the frozen one a snapshot with
 * processes holds (a helper there would freeze too).  On a cgroup2-only
 * host that is the sandbox's one cgroup: then the archives are not charged. */
struct charged {
	int fds[HELPER_MAX_CGROUP_FDS];
	int n;
};

static void charged_close(struct charged *c)
{
	while (c->n > 0)
		close(c->fds[--c->n]);
}

static int charged_open(struct daemon *d, struct sandbox *sb, const char *freezer,
                        struct charged *c, struct al_error *err)
{
	charged_close(c);
	c->n = cgroup_open_joins_but(d->host.cgroups, sb->id, freezer, c->fds,
	                             AL_ARRAY_SIZE(c->fds), err);
	if (c->n < 0) {
		c->n = 0;
		return -err->code;
	}
	return 0;
}

/* The parts, in order: CRIU's images (first, so that the images and the
 * layer describe the same instant as closely as a running sandbox allows),
 * the portable workspace archive, the writable layer.  Between them, and
 * during the archives, a client that hung up ends it (write_snapshot's
 * caller removes what was written). */
/* How long a snapshot took, and how long of it the sandbox stood still. */
struct snapshot_times {
	uint64_t t0;       /* the request began */
	uint64_t frozen0;  /* the freeze began (0: not frozen) */
	uint64_t frozen;   /* ms frozen */
	uint64_t dump;     /* ms of criu dump */
	uint64_t archived; /* ms of the workspace and layer archives */
	uint64_t stored;   /* ms of chunking, hashing and writing after the thaw */
};

/* Thaw the sandbox once what must be of one instant is written. */
static void snapshot_thaw(struct daemon *d, struct sandbox *sb, char **freezer,
                          struct snapshot_times *t)
{
	struct al_error e = AL_ERROR_INIT;

	if (!*freezer)
		return;
	if (cgroup_freeze(d->host.cgroups, sb->id, false, NULL, &e) < 0)
		log_error("%s", e.msg);
	free(*freezer);
	*freezer = NULL;
	t->frozen = al_now_ms() - t->frozen0;
}

static int write_snapshot(struct daemon *d, struct sandbox *sb, bool processes, char **freezer,
                          int client_fd, struct snapshot_writer *w, struct snapshot_times *t,
                          cJSON **out, struct al_error *err)
{
	_cleanup_(charged_close) struct charged cg = {.n = 0};
	_cleanup_free_ char *manifest_text = sandbox_read_manifest(sb);
	_cleanup_strv_ char **ephemeral = tar_manifest_ephemeral_paths(manifest_text);
	_cleanup_cjson_ cJSON *sizes = cJSON_CreateObject(), *meta = NULL;
	_cleanup_close_ int ws_fd = -1, layer_fd = -1, images_fd = -1;
	uint64_t ws_size = 0, layer_size = 0, criu_size = 0, t1;
	char path[PATH_MAX], images_path[PATH_MAX];
	int r;

	if (!sizes)
		return al_error_set(err, ENOMEM, "out of memory");
	/*
	 * While the sandbox is frozen, only what must be of its one instant is
	 * written: CRIU's images, the workspace archive and the layer's tar.
	 * Chunking, hashing and storing them (most of a large snapshot's time)
	 * come after the thaw, from those files, which nothing changes any more.
	 */
	images_path[0] = '\0';
	if (processes) {
		/* Where the images go when they are too big for a tmpfs. */
		snapshot_writer_scratch_path(w, "criu", images_path, sizeof(images_path));
		t1 = al_now_ms();
		r = criu_checkpoint(&d->host, sb, images_path, *freezer, client_fd, &images_fd,
		                    err);
		if (r < 0)
			return r;
		t->dump = al_now_ms() - t1;
	}

	r = check_client(client_fd, err);
	if (r < 0)
		return r;
	t1 = al_now_ms();
	ws_fd = snapshot_writer_create_file(w, "workspace.tar", err);
	if (ws_fd < 0)
		return ws_fd;
	r = charged_open(d, sb, *freezer, &cg, err);
	if (r == 0)
		r = tar_persist_workspace(sb->init_pid, sb->spec.workspace, ephemeral, ws_fd,
		                          sb->spec.disk_bytes, cg.fds, (size_t)cg.n, client_fd,
		                          NULL, err);
	if (r == 0)
		r = check_client(client_fd, err);
	if (r < 0)
		return r;
	/* The writable layer, through an unlinked temp file. */
	layer_fd = snapshot_writer_tmpfile(w, err);
	if (layer_fd < 0)
		return layer_fd;
	sandbox_upper_path(sb, path, sizeof(path));
	r = charged_open(d, sb, *freezer, &cg, err);
	if (r == 0)
		r = tar_write_layer_charged(path, layer_fd, sb->uid_base, NULL, sb->spec.disk_bytes,
		                            cg.fds, (size_t)cg.n, client_fd, &layer_size, err);
	if (r == 0)
		r = check_client(client_fd, err);
	if (r < 0)
		return r;
	t->archived = al_now_ms() - t1;
	snapshot_thaw(d, sb, freezer, t);

	t1 = al_now_ms();
	if (processes) {
		struct al_error e = AL_ERROR_INIT;
		r = snapshot_writer_add_dir(w, "criu/", images_fd, &criu_size, err);
		if (r < 0)
			return r;
		al_closep(&images_fd); /* a tmpfs goes with it */
		if (access(images_path, F_OK) == 0 && al_rm_rf(images_path, &e) < 0)
			log_warn("%s", e.msg);
	}
	r = snapshot_writer_add_file(w, "workspace.tar", ws_fd, &ws_size, err);
	if (r == 0)
		r = snapshot_writer_add_chunked(w, "layer.tar", layer_fd, err);
	if (r < 0)
		return r;

	cJSON_AddNumberToObject(sizes, "workspace", (double)ws_size);
	cJSON_AddNumberToObject(sizes, "layer", (double)layer_size);
	cJSON_AddNumberToObject(sizes, "criu", (double)criu_size);
	meta = snapshot_meta(sb, snapshot_writer_id(w), processes,
	                     manifest_text ? cJSON_Parse(manifest_text) : NULL);
	if (!meta)
		return al_error_set(err, ENOMEM, "out of memory");
	r = check_client(client_fd, err);
	if (r == 0)
		r = snapshot_writer_commit(w, meta, sizes, out, err);
	if (r < 0)
		return r;
	t->stored = al_now_ms() - t1;
	metrics_count_snapshot(ws_size + layer_size + criu_size);
	if (sandbox_write_last_snapshot(sb, snapshot_writer_id(w), err) < 0)
		log_warn("sandbox %s: %s", sb->id, err->msg);
	log_info("snapshot %s is of sandbox %s%s", snapshot_writer_id(w), sb->id,
	         processes ? ", with processes" : "");
	return 0;
}

int lifecycle_snapshot(struct daemon *d, struct sandbox *sb, bool processes, int client_fd,
                       cJSON **out, struct al_error *err)
{
	_cleanup_free_ char *parent = NULL, *freezer = NULL;
	_cleanup_close_ int hold = -1;
	struct snapshot_writer *w = NULL;
	struct snapshot_times t = {.t0 = al_now_ms()};
	cJSON *timings;
	int r;

	if (!sandbox_running(sb))
		return al_error_set(err, ESRCH, "sandbox %s is not running", sb->id);
	/* CRIU cannot dump a FUSE mount (it would have to be declared external
	 * and the new rclone be up before the restore): refuse with a reason. */
	if (processes && network_check_checkpoint(sb, err) < 0)
		return -err->code;
	if (processes && bucket_mounts_present(sb))
		return al_error_set(err, ENOTSUP,
		                    "sandbox %s has bucket mounts: only snapshots without "
		                    "processes (\"processes\": false) are supported",
		                    sb->id);
	/* CRIU dumps a pty only with both its ends, and a terminal session's
	 * master is airlockd's: said here, not as CRIU's "slave peer without
	 * master" after freezing the sandbox. */
	if (processes && sandbox_terminals_open(sb) > 0)
		return al_error_set(
		    err, EBUSY,
		    "sandbox %s has %u terminal session(s) open: a snapshot with "
		    "processes cannot hold a terminal whose other end is outside the "
		    "sandbox; end them, or snapshot with processes: false",
		    sb->id, sandbox_terminals_open(sb));
	parent = sandbox_read_last_snapshot(sb);
	r = snapshot_writer_begin(d->host.state_dir, parent, &w, err);
	/* With processes, the sandbox stays frozen from CRIU's dump until its
	 * writable layer is archived: the files then match the processes' view
	 * of them (an open file's size and offset, for one).  A restarted
	 * airlockd thaws every sandbox it reattaches, should it die meanwhile. */
	if (r == 0 && processes) {
		/*
		 * PID 1 drops a connection airlockd closed only when it next
		 * polls; CRIU must not find one half-closed (its restore of such
		 * a socket can hang).  A PING answered on a new connection means
		 * PID 1 went round its loop since every earlier close.  That
		 * connection stays open across the dump: a live one is fine.
		 */
		r = hold = sandbox_ping_init(sb, err);
		t.frozen0 = al_now_ms();
		if (r >= 0)
			r = cgroup_freeze(d->host.cgroups, sb->id, true, &freezer, err);
		if (r == -ENOTSUP)
			r = 0;
	}
	if (r == 0)
		r = write_snapshot(d, sb, processes, &freezer, client_fd, w, &t, out, err);
	snapshot_thaw(d, sb, &freezer, &t);
	snapshot_writer_free(w);
	if (r < 0)
		return al_error_prefix(err, "snapshot of sandbox %s", sb->id);
	/* Not part of the record: how this taking went. */
	timings = cJSON_AddObjectToObject(*out, "timings_ms");
	if (timings) {
		cJSON_AddNumberToObject(timings, "total", (double)(al_now_ms() - t.t0));
		cJSON_AddNumberToObject(timings, "frozen", (double)t.frozen);
		cJSON_AddNumberToObject(timings, "dump", (double)t.dump);
		cJSON_AddNumberToObject(timings, "archives", (double)t.archived);
		cJSON_AddNumberToObject(timings, "stored", (double)t.stored);
	}
	log_info("snapshot of sandbox %s: %llu ms, frozen %llu ms (criu dump %llu ms, archives "
	         "%llu ms), then stored in %llu ms",
	         sb->id, (unsigned long long)(al_now_ms() - t.t0), (unsigned long long)t.frozen,
	         (unsigned long long)t.dump, (unsigned long long)t.archived,
	         (unsigned long long)t.stored);
	return 0;
}

/* ---- restoring ---------------------------------------------------------------------------------
 */

/* What a restore reads out of the store before anything is created. */
struct restore_parts {
	int layer_fd;
	int scratch_fd; /* a tmpfs holding the images (criu_images_scratch), or -1 */
	char *images;   /* CRIU's images put back together, or NULL */
};

static void restore_parts_free(struct restore_parts *p)
{
	/* (A tmpfs goes with its fd.) */
	if (p->images && p->scratch_fd < 0) {
		struct al_error e = AL_ERROR_INIT;
		al_rm_rf(p->images, &e);
	}
	free(p->images);
	al_closep(&p->layer_fd);
	al_closep(&p->scratch_fd);
}

static int images_dir(struct daemon *d, const char *id, const cJSON *rec, struct restore_parts *p,
                      struct al_error *err)
{
	char scratch[CRIU_SCRATCH_PATH];
	const cJSON *criu_size = cJSON_GetObjectItemCaseSensitive(
	    cJSON_GetObjectItemCaseSensitive(rec, "sizes"), "criu");
	int r;

	/* CRIU's images are put back together on a tmpfs of their own when
	 * they are small (criu_images_scratch), else next to the store. */
	r = criu_images_scratch(al_json_is_count(criu_size, AL_JSON_COUNT_MAX)
	                            ? (uint64_t)criu_size->valuedouble
	                            : UINT64_MAX,
	                        &p->scratch_fd, scratch, err);
	if (r < 0)
		return r;
	if (p->scratch_fd >= 0)
		p->images = strdup(scratch);
	else if (asprintf(&p->images, "%s/snapshots/.tmp-restore-%s-%d", d->host.state_dir, id,
	                  (int)gettid()) < 0)
		p->images = NULL;
	else if (mkdir(p->images, 0700) < 0)
		return al_error_errno(err, "mkdir %s", p->images);
	return p->images ? 0 : al_error_set(err, ENOMEM, "out of memory");
}

/* Every part is read and checked before anything is created. */
static int read_parts(struct daemon *d, const char *id, struct snapshot_reader *rd,
                      struct restore_parts *p, struct al_error *err)
{
	const cJSON *rec = snapshot_reader_record(rd), *part;
	int r = 0;

	p->layer_fd = open(d->host.state_dir, O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
	if (p->layer_fd < 0)
		return al_error_errno(err, "temp file in %s", d->host.state_dir);
	if (cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(rec, "processes"))) {
		r = images_dir(d, id, rec, p, err);
		if (r < 0)
			return r;
	}
	cJSON_ArrayForEach(part, cJSON_GetObjectItemCaseSensitive(rec, "parts"))
	{
		const char *name = al_json_str(part, "name");
		_cleanup_close_ int fd = -1;

		if (name && !strcmp(name, "layer.tar")) {
			r = snapshot_reader_read_part(rd, part, p->layer_fd, err);
		} else if (name && !strncmp(name, "criu/", 5) && p->images) {
			char path[PATH_MAX];
			if (strchr(name + 5, '/') || name[5] == '.' || !name[5])
				return al_error_set(err, EINVAL, "bad part name %s", name);
			snprintf(path, sizeof(path), "%s/%s", p->images, name + 5);
			fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
			r = fd < 0 ? al_error_errno(err, "create %s", path)
			           : snapshot_reader_read_part(rd, part, fd, err);
		} else {
			r = snapshot_reader_read_part(rd, part, -1, err);
		}
		if (r < 0)
			return r;
	}
	if (lseek(p->layer_fd, 0, SEEK_SET) != 0)
		return al_error_errno(err, "seek");
	return 0;
}

/* The spec a snapshot's record gives, with the request's changes. */
static int restore_spec(struct daemon *d, const cJSON *rec, const cJSON *req, uid_t client,
                        struct sandbox_spec *spec, struct al_error *err)
{
	const cJSON *sandbox = cJSON_GetObjectItemCaseSensitive(rec, "sandbox");
	const cJSON *manifest = cJSON_GetObjectItemCaseSensitive(rec, "manifest");
	const cJSON *mounts = cJSON_GetObjectItemCaseSensitive(req, "mounts");
	const char *ws = al_json_str(sandbox, "workspace");
	struct sandbox_spec_policy pol = policy(d, client == 0);
	_cleanup_cjson_ cJSON *create = NULL;
	_cleanup_cjson_ cJSON *replaced = NULL;
	int r;

	if (!cJSON_IsObject(sandbox) || !al_json_str(sandbox, "rootfs"))
		return al_error_set(err, EIO, "snapshot.json has no sandbox record");
	/* Other mounts than the recorded ones (none, with {}): the new sandbox's
	 * manifest says so, for its own snapshots too. */
	if (mounts && !cJSON_IsNull(mounts)) {
		r = sandbox_spec_replace_mounts(manifest, mounts, &replaced, err);
		if (r < 0)
			return r;
		manifest = replaced;
	}
	create = sandbox_spec_restore_request(sandbox, req);
	if (!create)
		return al_error_set(err, ENOMEM, "out of memory");
	r = sandbox_spec_from_request(create, &pol, spec, err);
	if (r < 0)
		return r;
	/* The workspace and its files come back in the layer: the manifest is
	 * kept for what it says, not materialised again. */
	if (ws) {
		free(spec->workspace);
		spec->workspace = strdup(ws);
	}
	spec->owner = client;
	if (cJSON_IsObject(manifest))
		spec->manifest = cJSON_Duplicate(manifest, true);
	if (!spec->workspace || (cJSON_IsObject(manifest) && !spec->manifest))
		return al_error_set(err, ENOMEM, "out of memory");
	/* Mounts were never in the snapshot: they are made again, with the
	 * credentials this request brings. */
	return sandbox_spec_restore_mounts(
	    spec, manifest, cJSON_GetObjectItemCaseSensitive(req, "mount_credentials"), err);
}

bool lifecycle_snapshot_visible(const cJSON *rec, uid_t client)
{
	const cJSON *sandbox = cJSON_GetObjectItemCaseSensitive(rec, "sandbox");

	return client == 0 || (uid_t)al_json_num(sandbox, "owner_uid", 0) == client;
}

static int restore(struct daemon *d, const char *id, const cJSON *req, uid_t client,
                   bool *processes, struct sandbox **out, struct al_error *err)
{
	_cleanup_(restore_parts_free) struct restore_parts parts = {.layer_fd = -1,
	                                                            .scratch_fd = -1};
	_cleanup_cjson_ cJSON *rec = NULL;
	struct sandbox_spec spec = {0};
	struct snapshot_reader *rd = NULL;
	struct sandbox_start how = {.start = sandbox_start_fresh};
	uid_t uid_base = 0;
	uint64_t t0 = al_now_ms(), t_read;
	int r;

	r = snapshot_reader_open(d->host.state_dir, id, &rd, err);
	if (r < 0)
		return r;
	/* Another client's snapshot is one that does not exist. */
	if (!lifecycle_snapshot_visible(snapshot_reader_record(rd), client)) {
		snapshot_reader_free(rd);
		return al_error_set(err, ENOENT, "no snapshot '%s'", id);
	}
	r = read_parts(d, id, rd, &parts, err);
	rec = cJSON_Duplicate(snapshot_reader_record(rd), true);
	snapshot_reader_free(rd);
	if (r < 0)
		return r;
	t_read = al_now_ms();
	if (!rec)
		return al_error_set(err, ENOMEM, "out of memory");
	if (parts.images) {
		r = criu_restore_check(&d->host, parts.images, err);
		if (r < 0)
			return r;
		r = criu_images_uid_base(parts.images, &uid_base, err);
		if (r < 0)
			return al_error_prefix(err, "snapshot");
		if (uid_base < AIRLOCK_UID_BASE ||
		    (uid_base - AIRLOCK_UID_BASE) % AIRLOCK_UID_RANGE != 0 ||
		    (uid_base - AIRLOCK_UID_BASE) / AIRLOCK_UID_RANGE >= AIRLOCK_UID_SLOTS)
			return al_error_set(err, EINVAL, "snapshot: bad uid range %u",
			                    (unsigned)uid_base);
		/* PID 1 and its processes come back from CRIU's images. */
		how.start = sandbox_start_criu;
		how.criu_images = parts.images;
		*processes = true;
	}
	how.layer_fd = parts.layer_fd;
	r = restore_spec(d, rec, req, client, &spec, err);
	if (r == 0)
		r = make_sandbox(d, &spec, &how, false, uid_base, out, err);
	sandbox_spec_free(&spec);
	if (r == 0)
		log_info("restore of snapshot %s: %llu ms, its parts read and checked in %llu ms",
		         id, (unsigned long long)(al_now_ms() - t0),
		         (unsigned long long)(t_read - t0));
	return r;
}

int lifecycle_restore(struct daemon *d, const char *id, const cJSON *req, uid_t client,
                      struct sandbox **out, struct al_error *err)
{
	struct al_error e = AL_ERROR_INIT;
	bool processes = false;
	int r = restore(d, id, req, client, &processes, out, err);

	if (r < 0)
		return al_error_prefix(err, "restore snapshot %s", id);
	/* Its parent, for the chunks the next snapshot shares. */
	if (sandbox_write_last_snapshot(*out, id, &e) < 0)
		log_warn("sandbox %s: %s", (*out)->id, e.msg);
	log_info("sandbox %s restored from snapshot %s%s", (*out)->id, id,
	         processes ? " with its processes" : "");
	return 0;
}

/* ---- start-up and shut-down -------------------------------------------------------------------
 */

/* Sandbox id of an earlier airlockd: reattached when its PID 1 still runs. */
static bool reattach(struct daemon *d, const char *id)
{
	struct al_error lerr = AL_ERROR_INIT;
	_cleanup_sandbox_ struct sandbox *sb = NULL;

	if (sandbox_load(&d->host, id, &sb, &lerr) < 0) {
		log_warn("sandbox %s was half-made or its state is unreadable (%s); cleaning up",
		         id, lerr.msg);
		return false;
	}
	if (sb->pooled) {
		/* An unclaimed warm-pool sandbox of an earlier airlockd is
		 * nobody's; removing its cgroups kills it. */
		log_info("sandbox %s was in the warm pool; removing it", id);
		return false;
	}
	if (!sandbox_reattach(sb)) {
		/* Its PID 1 died (not destroyed: that drops state.json first).
		 * Kept, stopped, its files readable, for its user to remove. */
		if (sb->pidfd >= 0)
			close(TAKE_FD(sb->pidfd));
		sb->init_pid = -1;
		if (registry_add(&d->registry, sb) < 0)
			return false;
		log_warn("sandbox %s: its PID 1 is gone; kept as stopped until removed", id);
		return true;
	}
	if (registry_add(&d->registry, sb) < 0) {
		log_warn("sandbox %s: cannot register it; cleaning up", id);
		return false;
	}
	/* An airlockd that died during a snapshot with processes left it frozen. */
	if (cgroup_freeze(d->host.cgroups, sb->id, false, NULL, &lerr) < 0 && lerr.code != ENOTSUP)
		log_warn("%s", lerr.msg);
	log_info("reattached sandbox %s (pid %d)", sb->id, (int)sb->init_pid);
	/* Its commands with a process id, and their output, are served again. */
	if (process_adopt_all(sb, &lerr) < 0)
		log_warn("%s", lerr.msg);
	return true;
}

/* After the scan below, a sandbox of ours is one with a directory. */
static bool has_directory(const char *id, void *arg)
{
	const struct sandbox_host *host = arg;
	char path[PATH_MAX];

	if (!id[0] || strchr(id, '/'))
		return false;
	snprintf(path, sizeof(path), "%s/%s", host->sandboxes_dir, id);
	return access(path, F_OK) == 0;
}

int lifecycle_load(struct daemon *d, struct al_error *err)
{
	_cleanup_closedir_ DIR *dir = opendir(d->host.sandboxes_dir);
	_cleanup_strv_ char **cg_ids = NULL;
	struct dirent *de;
	int r;

	if (!dir)
		return al_error_errno(err, "open %s", d->host.sandboxes_dir);
	while ((de = readdir(dir))) {
		struct al_error lerr = AL_ERROR_INIT;

		if (de->d_name[0] == '.' || reattach(d, de->d_name))
			continue;
		if (sandbox_remove_remains(&d->host, de->d_name, &lerr) < 0)
			log_error("%s", lerr.msg);
		if (d->registry.slots)
			uid_slots_release_all(d->registry.slots, de->d_name);
	}
	/* Claims of uid ranges for sandboxes that never got a directory. */
	if (d->registry.slots)
		uid_slots_release_unknown(d->registry.slots, has_directory, &d->host);
	/* cgroups whose state directory is gone entirely (a crash between
	 * cgroup creation and the state dir, or a lost state dir). */
	r = cgroup_list(d->host.cgroups, &cg_ids, err);
	if (r < 0)
		return r;
	for (char **id = cg_ids; id && *id; id++) {
		_cleanup_sandbox_ struct sandbox *sb = registry_get(&d->registry, *id);
		struct al_error lerr = AL_ERROR_INIT;

		if (sb)
			continue;
		log_warn("removing orphaned cgroup of sandbox %s", *id);
		if (cgroup_destroy(d->host.cgroups, *id, &lerr) < 0)
			log_error("%s", lerr.msg);
	}
	/* With the registry known, denials and limit hits can be attributed. */
	events_start(d);
	/* A snapshot interrupted by a crash is removed, never listed. */
	return snapshot_store_init(d->host.state_dir, err);
}

int lifecycle_start_reaper(struct daemon *d, struct al_error *err)
{
	return reaper_start(reap, d, &d->reaper, err);
}

int lifecycle_start_pool(struct daemon *d, size_t warm_pool, struct al_error *err)
{
	struct sandbox_spec_policy pol = policy(d, true);
	int r;

	if (warm_pool == 0)
		return 0;
	/* What a pooled sandbox is: an empty request's sandbox. */
	r = sandbox_spec_from_request(NULL, &pol, &d->pool_spec, err);
	if (r == 0)
		r = pool_start(&pool_ops, d, warm_pool, &d->pool, err);
	return r;
}

void lifecycle_stop(struct daemon *d)
{
	if (d->pool) {
		pool_stop(d->pool);
		d->pool = NULL;
	}
	sandbox_spec_free(&d->pool_spec);
	if (d->reaper) {
		reaper_stop(d->reaper);
		d->reaper = NULL;
	}
}

int lifecycle_snapshot_remove(struct daemon *d, const char *id, uid_t client, struct al_error *err)
{
	struct snapshot_reader *rd = NULL;
	bool mine;
	int r;

	if (client != 0) {
		r = snapshot_reader_open(d->host.state_dir, id, &rd, err);
		if (r < 0)
			return r;
		mine = lifecycle_snapshot_visible(snapshot_reader_record(rd), client);
		snapshot_reader_free(rd);
		if (!mine)
			return al_error_set(err, ENOENT, "no snapshot '%s'", id);
	}
	return snapshot_remove(d->host.state_dir, id, err);
}
