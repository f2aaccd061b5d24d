/* SPDX-License-Identifier: Apache-2.0 */
#include "bucket_mounts.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/magic.h>
#include <linux/mount.h>
#include <limits.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "cleanup.h"
#include "json.h"
#include "log.h"
#include "manifest.h"
#include "sandbox.h"
#include "util.h"

#ifndef FUSE_SUPER_MAGIC
#define FUSE_SUPER_MAGIC 0x65735546
#endif

#define RCLONE "/usr/bin/rclone"
/* rclone reads the bucket's listing when it mounts: a slow store is slow here. */
#define MOUNT_TIMEOUT_MS 20000
#define MAX_PATH_DEPTH 64

struct credential_kind {
	const char *provider;
	const char *fields[5];
};

static const struct credential_kind credential_kinds[] = {
    {"s3", {"accessKeyId", "secretAccessKey", "sessionToken"}},
    {"r2", {"accessKeyId", "secretAccessKey"}},
    {"gcs", {"accessId", "secretAccessKey", "serviceAccountCredentials", "accessToken"}},
    {"azure_blob", {"accountKey", "sasToken"}},
};

static const struct manifest_mount *find_mount(const struct manifest *m, const char *key)
{
	const struct manifest_mount *mt;
	const char *k;
	size_t it = 0;

	while ((mt = manifest_next_mount(m, &it, &k)))
		if (!strcmp(k, key))
			return mt;
	return NULL;
}

int bucket_mounts_check_credentials(const struct manifest *m, const cJSON *credentials,
                                    struct al_error *err)
{
	const cJSON *entry, *field;

	if (!credentials || cJSON_IsNull(credentials))
		return 0;
	if (!cJSON_IsObject(credentials))
		return al_error_set(err, EINVAL, "mount_credentials must be an object");
	cJSON_ArrayForEach(entry, credentials)
	{
		const struct manifest_mount *mt = m ? find_mount(m, entry->string) : NULL;
		const struct credential_kind *kind = NULL;

		if (!mt)
			return al_error_set(
			    err, EINVAL,
			    "mount_credentials: '%s' is not a mount entry of the manifest",
			    entry->string);
		for (size_t i = 0; i < AL_ARRAY_SIZE(credential_kinds); i++)
			if (!strcmp(credential_kinds[i].provider, mt->provider))
				kind = &credential_kinds[i];
		if (!cJSON_IsObject(entry) || !kind)
			return al_error_set(err, EINVAL,
			                    "mount_credentials '%s': must be an object",
			                    entry->string);
		cJSON_ArrayForEach(field, entry)
		{
			bool known = false;
			for (size_t i = 0; i < AL_ARRAY_SIZE(kind->fields) && kind->fields[i]; i++)
				known = known || !strcmp(kind->fields[i], field->string);
			if (!known)
				return al_error_set(
				    err, EINVAL,
				    "mount_credentials '%s': '%s' is not a credential "
				    "of a %s mount",
				    entry->string, field->string, mt->provider);
			/* One line: the value goes into rclone's line-based config. */
			if (!cJSON_IsString(field) || !field->valuestring[0] ||
			    strpbrk(field->valuestring, "\r\n"))
				return al_error_set(
				    err, EINVAL,
				    "mount_credentials '%s': '%s' must be a non-empty "
				    "one-line string",
				    entry->string, field->string);
		}
	}
	return 0;
}

/* ---- rclone's configuration ------------------------------------------------------------------ */

static const char *credential(const cJSON *creds, const char *name)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(creds, name);
	return cJSON_IsString(v) ? v->valuestring : NULL;
}

static int put(struct al_buf *b, const char *key, const char *value)
{
	if (!value)
		return 0;
	if (al_buf_append(b, key, strlen(key)) < 0 || al_buf_append(b, " = ", 3) < 0 ||
	    al_buf_append(b, value, strlen(value)) < 0 || al_buf_append(b, "\n", 1) < 0)
		return -ENOMEM;
	return 0;
}

/*
 * rclone 1.60's azureblob takes an endpoint only as a domain suffix
 * (account.SUFFIX); a full URL (Azurite, Azure Stack, a private endpoint)
 * is reachable only through a SAS URL.  airlockd signs a container SAS with
 * the account key (HMAC-SHA256 of the service SAS string-to-sign, version
 * 2020-10-02), valid for SAS_LIFETIME_S; it stays in the config file.
 */
#define SAS_VERSION "2020-10-02"
#define SAS_LIFETIME_S (30L * 24 * 3600)
#define SAS_QUERY "?sv=" SAS_VERSION "&sr=c&sp=racwdl&se="

static int percent_encode(const char *in, struct al_buf *b)
{
	for (; *in; in++) {
		char enc[4];
		if ((*in >= 'A' && *in <= 'Z') || (*in >= 'a' && *in <= 'z') ||
		    (*in >= '0' && *in <= '9') || strchr("-_.~", *in)) {
			if (al_buf_append(b, in, 1) < 0)
				return -ENOMEM;
			continue;
		}
		snprintf(enc, sizeof(enc), "%%%02X", (unsigned char)*in);
		if (al_buf_append(b, enc, 3) < 0)
			return -ENOMEM;
	}
	return 0;
}

static int container_sas_url(const struct manifest_mount *mt, const char *key_b64, char **out,
                             struct al_error *err)
{
	_cleanup_free_ char *key = NULL, *to_sign = NULL, *sig = NULL;
	unsigned char mac[EVP_MAX_MD_SIZE];
	unsigned int mac_len = 0;
	size_t key_len = 0;
	char expiry[32];
	time_t t = time(NULL) + SAS_LIFETIME_S;
	struct tm tm;
	struct al_buf b = {0};
	int r;

	if (!mt->account)
		return al_error_set(err, EINVAL, "an azure_blob mount needs \"accountName\"");
	if (!key_b64)
		return al_error_set(err, EINVAL,
		                    "an azure_blob mount on a URL endpoint needs "
		                    "\"accountKey\" in mount_credentials");
	r = al_base64_decode(key_b64, &key, &key_len, err);
	if (r < 0)
		return al_error_prefix(err, "accountKey");
	gmtime_r(&t, &tm);
	strftime(expiry, sizeof(expiry), "%Y-%m-%dT%H:%M:%SZ", &tm);
	/* sp st se resource si sip spr sv sr snapshot rscc rscd rsce rscl rsct */
	if (asprintf(&to_sign, "racwdl\n\n%s\n/blob/%s/%s\n\n\n\n%s\nc\n\n\n\n\n\n", expiry,
	             mt->account, mt->bucket, SAS_VERSION) < 0)
		return al_error_set(err, ENOMEM, "out of memory");
	if (!HMAC(EVP_sha256(), key, (int)key_len, (const unsigned char *)to_sign, strlen(to_sign),
	          mac, &mac_len))
		return al_error_set(err, EIO, "HMAC-SHA256 failed");
	explicit_bzero(key, key_len);
	sig = al_base64_encode(mac, mac_len);
	if (!sig)
		return al_error_set(err, ENOMEM, "out of memory");
	if (al_buf_append(&b, mt->endpoint, strlen(mt->endpoint)) < 0 ||
	    al_buf_append(&b, "/", 1) < 0 ||
	    al_buf_append(&b, mt->bucket, strlen(mt->bucket)) < 0 ||
	    al_buf_append(&b, SAS_QUERY, strlen(SAS_QUERY)) < 0 || percent_encode(expiry, &b) < 0 ||
	    al_buf_append(&b, "&sig=", 5) < 0 || percent_encode(sig, &b) < 0 ||
	    al_buf_append(&b, "", 1) < 0) {
		free(b.data);
		return al_error_set(err, ENOMEM, "out of memory");
	}
	*out = b.data;
	return 0;
}

/* The remote "r" of rclone's config for one mount; -ENOMEM, or an error in err. */
static int rclone_config(const struct manifest_mount *mt, const cJSON *creds, struct al_buf *b,
                         struct al_error *err)
{
	_cleanup_free_ char *r2_endpoint = NULL;
	int r = al_buf_append(b, "[r]\n", 4) < 0 ? -ENOMEM : 0;

	if (r < 0)
		return r;
	if (!strcmp(mt->provider, "azure_blob") && credential(creds, "sasToken")) {
		/* A SAS the owner issued (scoped, expiring): no account key at all. */
		_cleanup_free_ char *url = NULL, *suffix_ep = NULL;
		const char *sas = credential(creds, "sasToken");
		const char *ep = mt->endpoint;
		sas += sas[0] == '?';
		if (!ep || (strncmp(ep, "http://", 7) && strncmp(ep, "https://", 8))) {
			if (!mt->account)
				return al_error_set(err, EINVAL,
				                    "an azure_blob mount needs \"accountName\"");
			if (asprintf(&suffix_ep, "https://%s.%s", mt->account,
			             ep ? ep : "blob.core.windows.net") < 0)
				return -ENOMEM;
			ep = suffix_ep;
		}
		if (asprintf(&url, "%s/%s?%s", ep, mt->bucket, sas) < 0)
			return -ENOMEM;
		r = put(b, "type", "azureblob");
		if (r == 0)
			r = put(b, "sas_url", url);
		explicit_bzero(url, strlen(url));
		return r;
	}
	if (!strcmp(mt->provider, "azure_blob") && mt->endpoint &&
	    (!strncmp(mt->endpoint, "http://", 7) || !strncmp(mt->endpoint, "https://", 8))) {
		_cleanup_free_ char *url = NULL;
		r = container_sas_url(mt, credential(creds, "accountKey"), &url, err);
		if (r < 0)
			return r;
		r = put(b, "type", "azureblob");
		if (r == 0)
			r = put(b, "sas_url", url);
		explicit_bzero(url, strlen(url));
		return r;
	}
	if (!strcmp(mt->provider, "azure_blob")) {
		r = put(b, "type", "azureblob");
		if (r == 0)
			r = put(b, "account", mt->account);
		if (r == 0)
			r = put(b, "key", credential(creds, "accountKey"));
		if (r == 0)
			r = put(b, "endpoint", mt->endpoint);
		return r;
	}
	if (!strcmp(mt->provider, "gcs") && !credential(creds, "accessId")) {
		/* Service account or OAuth token: rclone's own GCS backend. */
		_cleanup_free_ char *token = NULL, *api = NULL;
		const char *at = credential(creds, "accessToken");
		if (at &&
		    asprintf(&token, "{\"access_token\":\"%s\",\"token_type\":\"Bearer\"}", at) < 0)
			return -ENOMEM;
		/* endpointUrl is the service's root, as the official clients' apiEndpoint;
		 * rclone's backend wants the JSON API's base path below it. */
		size_t n = mt->endpoint ? strlen(mt->endpoint) : 0;
		if (n && !strstr(mt->endpoint, "/storage/v1") &&
		    asprintf(&api, "%s%sstorage/v1/", mt->endpoint,
		             mt->endpoint[n - 1] == '/' ? "" : "/") < 0)
			return -ENOMEM;
		r = put(b, "type", "google cloud storage");
		if (r == 0)
			r = put(b, "service_account_credentials",
			        credential(creds, "serviceAccountCredentials"));
		if (r == 0)
			r = put(b, "token", token);
		if (r == 0)
			r = put(b, "bucket_policy_only", "true");
		if (r == 0)
			r = put(b, "location", mt->region);
		if (r == 0)
			r = put(b, "endpoint", api ? api : mt->endpoint);
		return r;
	}
	/* S3, R2, and GCS with HMAC keys (its S3-compatible XML API). */
	r = put(b, "type", "s3");
	if (r == 0)
		r = put(b, "env_auth", "false");
	if (!strcmp(mt->provider, "r2")) {
		if (!mt->endpoint &&
		    asprintf(&r2_endpoint, "https://%s.r2.cloudflarestorage.com", mt->account) < 0)
			return -ENOMEM;
		if (r == 0)
			r = put(b, "provider", "Cloudflare");
		if (r == 0)
			r = put(b, "region", "auto");
	} else if (!strcmp(mt->provider, "gcs")) {
		if (r == 0)
			r = put(b, "provider", "GCS");
		if (r == 0 && !mt->endpoint)
			r = put(b, "endpoint", "https://storage.googleapis.com");
		if (r == 0)
			r = put(b, "region", mt->region);
	} else {
		if (r == 0)
			r = put(b, "provider", mt->s3_provider ? mt->s3_provider : "Other");
		if (r == 0)
			r = put(b, "region", mt->region);
	}
	if (r == 0)
		r = put(b, "endpoint", mt->endpoint ? mt->endpoint : r2_endpoint);
	if (r == 0)
		r = put(b, "access_key_id",
		        credential(creds, "accessKeyId") ? credential(creds, "accessKeyId")
		                                         : credential(creds, "accessId"));
	if (r == 0)
		r = put(b, "secret_access_key", credential(creds, "secretAccessKey"));
	if (r == 0)
		r = put(b, "session_token", credential(creds, "sessionToken"));
	/* The bucket is the entry's: never create it, as the SDK's mounts do not. */
	if (r == 0)
		r = put(b, "no_check_bucket", "true");
	return r;
}

static int write_private(const char *path, const void *data, size_t len, struct al_error *err)
{
	_cleanup_close_ int fd =
	    open(path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
	int r;

	if (fd < 0)
		return al_error_errno(err, "create %s", path);
	r = al_write_all(fd, data, len);
	if (r < 0) {
		errno = -r;
		return al_error_errno(err, "write %s", path);
	}
	return 0;
}

/* ---- the rclone process ---------------------------------------------------------------------- */

/*
 * Started through an intermediate child that exits at once, so rclone is
 * init's (it outlives airlockd and is nobody's zombie); its pid comes back
 * on a pipe.  Its environment is empty but for PATH: credentials are only
 * in the config file.
 */
static int spawn_rclone(char *const argv[], pid_t *out, struct al_error *err)
{
	static char *const envp[] = {"PATH=/usr/bin:/bin", "HOME=/nonexistent", NULL};
	int fds[2], status;
	pid_t mid, pid = 0;

	if (pipe2(fds, O_CLOEXEC) < 0)
		return al_error_errno(err, "pipe");
	mid = fork();
	if (mid < 0) {
		close(fds[0]);
		close(fds[1]);
		return al_error_errno(err, "fork");
	}
	if (mid == 0) {
		pid_t p;
		int null_fd = open("/dev/null", O_RDWR | O_CLOEXEC);
		if (null_fd < 0 || setsid() < 0)
			_exit(1);
		p = fork();
		if (p == 0) {
			if (dup2(null_fd, 0) < 0 || dup2(null_fd, 1) < 0 || dup2(null_fd, 2) < 0)
				_exit(126);
			syscall(SYS_close_range, 3, ~0U, CLOSE_RANGE_CLOEXEC);
			execve(RCLONE, argv, envp);
			_exit(127);
		}
		if (write(fds[1], &p, sizeof(p)) != sizeof(p))
			_exit(1);
		_exit(p > 0 ? 0 : 1);
	}
	close(fds[1]);
	while (waitpid(mid, &status, 0) < 0 && errno == EINTR)
		;
	if (read(fds[0], &pid, sizeof(pid)) != sizeof(pid) || pid <= 0) {
		close(fds[0]);
		return al_error_set(err, EIO, "could not start %s", RCLONE);
	}
	close(fds[0]);
	*out = pid;
	return 0;
}

static unsigned long long start_time(pid_t pid)
{
	char path[64], buf[1024];
	_cleanup_close_ int fd = -1;
	ssize_t n;
	char *p;
	unsigned long long t = 0;

	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return 0;
	n = read(fd, buf, sizeof(buf) - 1);
	if (n <= 0)
		return 0;
	buf[n] = '\0';
	p = strrchr(buf, ')');
	/* Field 22 (starttime); p points at field 2's end. */
	for (int field = 2; p && field < 22; field++)
		p = strchr(p + 1, ' ');
	if (p)
		t = strtoull(p + 1, NULL, 10);
	return t;
}

static bool is_fuse_mount(const char *path)
{
	struct statfs sf;
	return statfs(path, &sf) == 0 && (unsigned long)sf.f_type == FUSE_SUPER_MAGIC;
}

/* The last line of rclone's log, for an error message. */
static void last_log_line(const char *log, char *out, size_t size)
{
	_cleanup_free_ char *text = NULL;
	size_t len = 0;
	char *line;

	out[0] = '\0';
	if (al_read_file(log, 1 << 20, &text, &len, NULL) < 0 || !text)
		return;
	while (len > 0 && text[len - 1] == '\n')
		text[--len] = '\0';
	line = strrchr(text, '\n');
	snprintf(out, size, "%s", line ? line + 1 : text);
}

static int wait_mounted(const char *mnt, pid_t pid, const char *log, struct al_error *err)
{
	uint64_t deadline = al_now_ms() + MOUNT_TIMEOUT_MS;
	char why[512];

	for (;;) {
		if (is_fuse_mount(mnt)) {
			/* rclone mounts before it talks to the store: one listing
			 * shows that the keys and the bucket work, so a create with
			 * wrong ones fails here, not at the agent's first read. */
			_cleanup_closedir_ DIR *d = opendir(mnt);
			errno = 0;
			if (d && (readdir(d) || errno == 0))
				return 0;
			last_log_line(log, why, sizeof(why));
			return al_error_set(err, EINVAL, "the store refused the listing: %s",
			                    why[0] ? why : strerror(errno));
		}
		if (kill(pid, 0) < 0 || al_now_ms() > deadline) {
			bool dead = kill(pid, 0) < 0;
			last_log_line(log, why, sizeof(why));
			return al_error_set(err, dead ? EINVAL : ETIMEDOUT, "rclone %s: %s",
			                    dead ? "failed" : "did not mount in time",
			                    why[0] ? why : "(no message)");
		}
		usleep(20 * 1000);
	}
}

/* ---- binding into the sandbox ---------------------------------------------------------------- */

static int sys_open_tree(int dfd, const char *path, unsigned int flags)
{
	return (int)syscall(SYS_open_tree, dfd, path, flags);
}

/* A path in the sandbox, split into its components (raw syscalls walk them in a child). */
struct sandbox_path {
	char *copy;
	char *comps[MAX_PATH_DEPTH];
	size_t n;
};

static void sandbox_path_done(struct sandbox_path *p)
{
	free(p->copy);
}

static int split_path(const char *where, struct sandbox_path *p, struct al_error *err)
{
	if (!(p->copy = strdup(where)))
		return al_error_set(err, ENOMEM, "out of memory");
	for (char *c = strtok(p->copy, "/"); c; c = strtok(NULL, "/")) {
		if (p->n == MAX_PATH_DEPTH)
			return al_error_set(err, EINVAL, "%s: too deep", where);
		p->comps[p->n++] = c;
	}
	if (p->n == 0)
		return al_error_set(err, EINVAL, "%s: not a mount path", where);
	return 0;
}

/*
 * Run child(root_fd, ctx) in a child of airlockd that entered the sandbox's
 * mount namespace (airlockd has threads: setns(CLONE_NEWNS) is for a
 * single-threaded process), root_fd its "/"; *code is its exit status (-1:
 * killed; 10 and 11: it could not enter).  Raw syscalls only in child.
 */
static int in_mount_namespace(struct sandbox *sb, void (*child)(int root_fd, void *ctx), void *ctx,
                              int *code, struct al_error *err)
{
	_cleanup_close_ int ns = -1;
	char path[64];
	int status;
	pid_t pid;

	snprintf(path, sizeof(path), "/proc/%d/ns/mnt", (int)sb->init_pid);
	ns = open(path, O_RDONLY | O_CLOEXEC);
	if (ns < 0)
		return al_error_errno(err, "open %s", path);
	pid = fork();
	if (pid < 0)
		return al_error_errno(err, "fork");
	if (pid == 0) {
		int root;
		if (setns(ns, CLONE_NEWNS) < 0)
			_exit(10);
		root = open("/", O_PATH | O_DIRECTORY | O_CLOEXEC);
		if (root < 0)
			_exit(11);
		child(root, ctx); /* exits */
		_exit(127);
	}
	while (waitpid(pid, &status, 0) < 0)
		if (errno != EINTR)
			return al_error_errno(err, "wait");
	*code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
	return 0;
}

struct attach_args {
	int tree_fd;
	const struct sandbox_path *at;
	uid_t uid;
	bool replace;
};

/*
 * In the sandbox's mount namespace: walk the path from the sandbox's "/"
 * without following a symlink, making missing directories owned by the
 * sandbox's root, and move the mount there.
 */
static _Noreturn void attach_child(int root_fd, void *ctx)
{
	const struct attach_args *a = ctx;
	char *const *comps = a->at->comps;
	size_t n = a->at->n;
	int cur = root_fd, next;

	for (size_t i = 0; i < n; i++) {
		/* A restarted rclone: the dead FUSE mount at the path goes first. */
		if (a->replace && i == n - 1 && fchdir(cur) == 0)
			(void)umount2(comps[i], MNT_DETACH | UMOUNT_NOFOLLOW);
		next = openat(cur, comps[i], O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		if (next < 0 && errno == ENOENT) {
			int dfd;
			if (mkdirat(cur, comps[i], 0755) < 0 && errno != EEXIST)
				_exit(12);
			dfd =
			    openat(cur, comps[i], O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
			if (dfd < 0 || fchown(dfd, a->uid, a->uid) < 0)
				_exit(13);
			close(dfd);
			next = openat(cur, comps[i], O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		}
		if (next < 0)
			_exit(errno == ELOOP || errno == ENOTDIR ? 14 : 15);
		close(cur);
		cur = next;
	}
	if (syscall(SYS_move_mount, a->tree_fd, "", cur, "",
	            MOVE_MOUNT_F_EMPTY_PATH | MOVE_MOUNT_T_EMPTY_PATH) < 0)
		_exit(16);
	_exit(0);
}

static int attach(struct sandbox *sb, const char *mnt, const char *where, bool read_only,
                  bool replace, struct al_error *err)
{
	_cleanup_(sandbox_path_done) struct sandbox_path at = {0};
	_cleanup_close_ int tree = -1;
	struct attach_args args = {.at = &at, .uid = sb->uid_base, .replace = replace};
	int r, code = -1;

	r = split_path(where, &at, err);
	if (r < 0)
		return r;
	tree = sys_open_tree(AT_FDCWD, mnt, OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC);
	if (tree < 0)
		return al_error_errno(err, "open_tree %s", mnt);
	{
		struct mount_attr attr = {.attr_set = MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV |
		                                      (read_only ? MOUNT_ATTR_RDONLY : 0)};
		if (syscall(SYS_mount_setattr, tree, "", AT_EMPTY_PATH, &attr, sizeof(attr)) < 0)
			return al_error_errno(err, "mount_setattr %s", mnt);
	}
	args.tree_fd = tree;
	r = in_mount_namespace(sb, attach_child, &args, &code, err);
	if (r < 0)
		return r;
	if (code != 0)
		return al_error_set(err, code == 14 ? EINVAL : EIO,
		                    "cannot mount at %s in the sandbox (%s, step %d)", where,
		                    code == 14 ? "a symlink or file is in the way" : "failed",
		                    code);
	return 0;
}

/* ---- start and removal ----------------------------------------------------------------------- */

/* rclone-N.json: what a restart needs (no secret: the config file has them). */
static int write_record(const char *dir, size_t idx, const char *where, bool read_only,
                        char *const argv[], struct al_error *err)
{
	_cleanup_cjson_ cJSON *o = cJSON_CreateObject();
	_cleanup_free_ char *text = NULL;
	char path[PATH_MAX];
	cJSON *a;

	if (!o || !cJSON_AddStringToObject(o, "path", where) ||
	    !cJSON_AddBoolToObject(o, "read_only", read_only) ||
	    !(a = cJSON_AddArrayToObject(o, "argv")))
		return al_error_set(err, ENOMEM, "out of memory");
	for (size_t i = 0; argv[i]; i++)
		if (!cJSON_AddItemToArray(a, cJSON_CreateString(argv[i])))
			return al_error_set(err, ENOMEM, "out of memory");
	text = cJSON_PrintUnformatted(o);
	if (!text)
		return al_error_set(err, ENOMEM, "out of memory");
	snprintf(path, sizeof(path), "%s/rclone-%zu.json", dir, idx);
	return al_write_file_atomic(path, text, strlen(text), 0600, err);
}

static int start_one(struct sandbox *sb, size_t idx, const char *key,
                     const struct manifest_mount *mt, const cJSON *creds, struct al_error *err)
{
	char conf[PATH_MAX], mnt[PATH_MAX], cache[PATH_MAX], log[PATH_MAX], pidf[PATH_MAX];
	char remote[PATH_MAX + 8], uid[16], rec[64];
	struct al_buf b = {0};
	pid_t pid = 0;
	int r;

	snprintf(conf, sizeof(conf), "%s/rclone-%zu.conf", sb->dir, idx);
	snprintf(mnt, sizeof(mnt), "%s/mnt-%zu", sb->dir, idx);
	snprintf(cache, sizeof(cache), "%s/cache-%zu", sb->dir, idx);
	snprintf(log, sizeof(log), "%s/rclone-%zu.log", sb->dir, idx);
	snprintf(pidf, sizeof(pidf), "%s/rclone-%zu.pid", sb->dir, idx);
	if ((size_t)snprintf(remote, sizeof(remote), "r:%s%s%s", mt->bucket, mt->prefix ? "/" : "",
	                     mt->prefix ? mt->prefix : "") >= sizeof(remote))
		return al_error_set(err, ENAMETOOLONG, "mount '%s': prefix too long", key);
	snprintf(uid, sizeof(uid), "%u", (unsigned)sb->uid_base);

	r = rclone_config(mt, creds, &b, err);
	if (r == 0)
		r = write_private(conf, b.data, b.len, err);
	else if (r == -ENOMEM)
		r = al_error_set(err, ENOMEM, "out of memory");
	if (b.data)
		explicit_bzero(b.data, b.len);
	free(b.data);
	if (r < 0)
		return r;
	if (mkdir(mnt, 0700) < 0 || mkdir(cache, 0700) < 0)
		return al_error_errno(err, "mkdir %s", mnt);

	char *argv[] = {"rclone", "mount", remote, mnt, "--config", conf, "--cache-dir", cache,
	                "--log-file", log, "--log-level", "NOTICE", "--allow-other", "--uid", uid,
	                "--gid", uid, "--umask", "022",
	                /* What another client writes shows within a second.  A file
	                 * written (not opened read-write) is uploaded before its
	                 * close() returns: a destroy right after loses nothing
	                 * ("writes" mode uploads in the background, later). */
	                "--dir-cache-time", "1s", "--vfs-cache-mode", "minimal", "--vfs-write-back",
	                "0s", mt->read_only ? "--read-only" : NULL, NULL};
	r = write_record(sb->dir, idx, mt->path, mt->read_only, argv, err);
	if (r < 0)
		return r;
	r = spawn_rclone(argv, &pid, err);
	if (r < 0)
		return r;
	snprintf(rec, sizeof(rec), "%d %llu\n", (int)pid, start_time(pid));
	r = al_write_file_atomic(pidf, rec, strlen(rec), 0600, err);
	if (r < 0)
		return r;
	r = wait_mounted(mnt, pid, log, err);
	if (r < 0)
		return r;
	return attach(sb, mnt, mt->path, mt->read_only, false, err);
}

/* Serialises starting, supervision, removal and adding a mount; -1 when the directory is gone
 * (or, without wait, when another holds it). */
static int lock_dir(const char *dir, bool wait)
{
	char path[PATH_MAX];
	int fd;

	snprintf(path, sizeof(path), "%s/rclone.lock", dir);
	fd = open(path, O_RDWR | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0600);
	if (fd >= 0 && flock(fd, LOCK_EX | (wait ? 0 : LOCK_NB)) < 0) {
		close(fd);
		return -1;
	}
	return fd;
}

struct mount_order {
	const struct manifest_mount *mt;
	const char *key;
	size_t depth, seq;
};

static int by_depth(const void *a, const void *b)
{
	const struct mount_order *x = a, *y = b;

	if (x->depth != y->depth)
		return x->depth < y->depth ? -1 : 1;
	return x->seq < y->seq ? -1 : x->seq > y->seq;
}

int bucket_mounts_start(struct sandbox *sb, const cJSON *credentials, struct al_error *err)
{
	_cleanup_free_ struct mount_order *order = NULL;
	_cleanup_close_ int lock = -1;
	const struct manifest_mount *mt;
	const char *key;
	size_t it = 0, n = 0;

	const struct manifest *m = sb->spec.parsed ? sb->spec.parsed : sb->spec.mounts;

	if (!m)
		return 0;
	/* Held until every mount is up.  A sandbox being made is in the
	 * registry already, and the supervisor's round would otherwise find a
	 * record written before its rclone's pid file, take that mount for dead
	 * and start a second rclone on the same path (seen under ASan, where a
	 * start is slow enough: a restore with two FUSE mounts at one path). */
	lock = lock_dir(sb->dir, true);
	if (lock < 0)
		return al_error_errno(err, "sandbox %s: lock its mounts", sb->id);
	while (manifest_next_mount(m, &it, NULL))
		n++;
	order = calloc(n ? n : 1, sizeof(*order));
	if (!order)
		return al_error_set(err, ENOMEM, "out of memory");
	/* Shallower paths first: a mount whose path is inside another's goes on
	 * top of it, not under it where the later one would hide it. */
	it = n = 0;
	while ((mt = manifest_next_mount(m, &it, &key))) {
		size_t depth = 0;
		for (const char *p = mt->path; *p; p++)
			depth += *p == '/';
		order[n] = (struct mount_order){mt, key, depth, n};
		n++;
	}
	qsort(order, n, sizeof(*order), by_depth);
	for (size_t i = 0; i < n; i++) {
		int r = start_one(sb, i, order[i].key, order[i].mt,
		                  cJSON_GetObjectItemCaseSensitive(credentials, order[i].key), err);
		if (r < 0)
			return al_error_prefix(err, "mount '%s' (%s %s)", order[i].key,
			                       order[i].mt->provider, order[i].mt->bucket);
	}
	return 0;
}

/* Ends the rclone of one pid file if it still is that process. */
static void stop_rclone(const char *dir, const char *pidfile)
{
	_cleanup_free_ char *text = NULL;
	char path[PATH_MAX];
	unsigned long long start = 0;
	int pid = 0;

	snprintf(path, sizeof(path), "%s/%s", dir, pidfile);
	if (al_read_file(path, 256, &text, NULL, NULL) < 0 || !text ||
	    sscanf(text, "%d %llu", &pid, &start) != 2 || pid <= 1)
		return;
	if (start_time(pid) != start)
		return; /* gone, and its pid maybe reused */
	kill(pid, SIGTERM);
	for (int i = 0; i < 100 && start_time(pid) == start; i++)
		usleep(20 * 1000);
	if (start_time(pid) == start)
		kill(pid, SIGKILL);
}

/*
 * Record idx of dir: 1 a live mount (its path into where, when given), 0 a
 * removed one (a tombstone, so that the indexes stay without gaps: the
 * supervisor and bucket_mounts_add walk them to the first gap), -1 none.
 */
static int record_state(const char *dir, size_t idx, char *where, size_t where_size)
{
	_cleanup_free_ char *text = NULL;
	_cleanup_cjson_ cJSON *rec = NULL;
	char path[PATH_MAX];

	snprintf(path, sizeof(path), "%s/rclone-%zu.json", dir, idx);
	if (al_read_file(path, 1 << 16, &text, NULL, NULL) < 0 || !text)
		return access(path, F_OK) == 0 ? 1 : -1;
	rec = cJSON_Parse(text);
	if (cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(rec, "removed")))
		return 0;
	if (where)
		snprintf(where, where_size, "%s",
		         al_json_str(rec, "path") ? al_json_str(rec, "path") : "");
	return 1;
}

bool bucket_mounts_present(const struct sandbox *sb)
{
	int state;

	for (size_t idx = 0; (state = record_state(sb->dir, idx, NULL, 0)) >= 0; idx++)
		if (state == 1)
			return true;
	return false;
}

static bool alive(const char *dir, size_t idx)
{
	_cleanup_free_ char *text = NULL;
	char path[PATH_MAX];
	unsigned long long start = 0;
	int pid = 0;

	snprintf(path, sizeof(path), "%s/rclone-%zu.pid", dir, idx);
	if (al_read_file(path, 256, &text, NULL, NULL) < 0 || !text ||
	    sscanf(text, "%d %llu", &pid, &start) != 2 || pid <= 1)
		return false;
	return start_time(pid) == start;
}

static int restart_one(struct sandbox *sb, size_t idx, char *where, size_t where_size,
                       struct al_error *err)
{
	_cleanup_free_ char *text = NULL;
	_cleanup_cjson_ cJSON *rec = NULL;
	char path[PATH_MAX], mnt[PATH_MAX], log[PATH_MAX], line[64];
	const cJSON *a, *p, *ro, *item;
	char *argv[64];
	size_t n = 0;
	pid_t pid = 0;
	int r;

	snprintf(path, sizeof(path), "%s/rclone-%zu.json", sb->dir, idx);
	r = al_read_file(path, 1 << 16, &text, NULL, err);
	if (r < 0)
		return r;
	rec = cJSON_Parse(text);
	a = cJSON_GetObjectItemCaseSensitive(rec, "argv");
	p = cJSON_GetObjectItemCaseSensitive(rec, "path");
	ro = cJSON_GetObjectItemCaseSensitive(rec, "read_only");
	if (!cJSON_IsArray(a) || !cJSON_IsString(p))
		return al_error_set(err, EINVAL, "%s: unreadable", path);
	snprintf(where, where_size, "%s", p->valuestring);
	cJSON_ArrayForEach(item, a)
	{
		if (!cJSON_IsString(item) || n + 1 >= AL_ARRAY_SIZE(argv))
			return al_error_set(err, EINVAL, "%s: bad argv", path);
		argv[n++] = item->valuestring;
	}
	argv[n] = NULL;
	snprintf(mnt, sizeof(mnt), "%s/mnt-%zu", sb->dir, idx);
	snprintf(log, sizeof(log), "%s/rclone-%zu.log", sb->dir, idx);
	/* The dead one's mount: "transport endpoint is not connected". */
	(void)umount2(mnt, MNT_DETACH);
	r = spawn_rclone(argv, &pid, err);
	if (r < 0)
		return r;
	snprintf(line, sizeof(line), "%d %llu\n", (int)pid, start_time(pid));
	snprintf(path, sizeof(path), "%s/rclone-%zu.pid", sb->dir, idx);
	r = al_write_file_atomic(path, line, strlen(line), 0600, err);
	if (r < 0)
		return r;
	r = wait_mounted(mnt, pid, log, err);
	if (r < 0)
		return r;
	return attach(sb, mnt, where, cJSON_IsTrue(ro), true, err);
}

int bucket_mounts_supervise(struct sandbox *sb, bucket_mount_report_fn report, void *opaque)
{
	_cleanup_close_ int lock = -1;
	char marker[PATH_MAX];
	int restarted = 0;

	snprintf(marker, sizeof(marker), "%s/rclone-0.json", sb->dir);
	if (access(marker, F_OK) < 0)
		return 0; /* no mounts */
	/* Not waited for: a mount being added holds it while rclone starts (up to
	 * MOUNT_TIMEOUT_MS), and the events thread must not stall; next round. */
	lock = lock_dir(sb->dir, false);
	if (lock < 0)
		return 0;
	/* Removal has begun: nothing may start again. */
	snprintf(marker, sizeof(marker), "%s/rclone.stopping", sb->dir);
	if (access(marker, F_OK) == 0)
		return 0;
	for (size_t idx = 0;; idx++) {
		struct al_error err = AL_ERROR_INIT;
		char path[PATH_MAX], where[PATH_MAX] = "";
		int r;

		snprintf(path, sizeof(path), "%s/rclone-%zu.json", sb->dir, idx);
		if (access(path, F_OK) < 0)
			break;
		if (record_state(sb->dir, idx, NULL, 0) == 0 || alive(sb->dir, idx))
			continue;
		r = restart_one(sb, idx, where, sizeof(where), &err);
		report(opaque, sb, where, r < 0 ? err.msg : NULL);
		restarted++;
	}
	return restarted;
}

int bucket_mounts_remove(const char *dir, struct al_error *err)
{
	_cleanup_closedir_ DIR *d = opendir(dir);
	_cleanup_close_ int lock = -1;
	struct dirent *de;

	if (!d)
		return errno == ENOENT ? 0 : al_error_errno(err, "open %s", dir);
	lock = lock_dir(dir, true);
	if (lock >= 0) {
		char marker[PATH_MAX];
		int fd;
		snprintf(marker, sizeof(marker), "%s/rclone.stopping", dir);
		fd = open(marker, O_WRONLY | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0600);
		if (fd >= 0)
			close(fd);
	}
	while ((de = readdir(d)))
		if (!strncmp(de->d_name, "rclone-", 7) && strstr(de->d_name, ".pid"))
			stop_rclone(dir, de->d_name);
	rewinddir(d);
	while ((de = readdir(d))) {
		char path[PATH_MAX];
		if (strncmp(de->d_name, "mnt-", 4))
			continue;
		snprintf(path, sizeof(path), "%s/%s", dir, de->d_name);
		/* rclone unmounts on SIGTERM; a killed one leaves the mount. */
		if (umount2(path, MNT_DETACH) < 0 && errno != EINVAL && errno != ENOENT)
			return al_error_errno(err, "umount %s", path);
	}
	return 0;
}

/* The mounts' lock for adding or removing one; the sandbox must not be going. */
static int lock_for_change(struct sandbox *sb, struct al_error *err)
{
	_cleanup_close_ int lock = lock_dir(sb->dir, true);
	char marker[PATH_MAX];

	if (lock < 0)
		return al_error_errno(err, "sandbox %s: lock its mounts", sb->id);
	snprintf(marker, sizeof(marker), "%s/rclone.stopping", sb->dir);
	if (access(marker, F_OK) == 0)
		return al_error_set(err, EHOSTDOWN, "sandbox %s is being destroyed", sb->id);
	return TAKE_FD(lock);
}

static void manifest_freep(struct manifest **m)
{
	manifest_free(*m);
}

/* Undo a mount idx that failed half way: no record is left for the supervisor. */
static void forget_one(const char *dir, size_t idx)
{
	char path[PATH_MAX];
	static const char *const files[] = {"rclone-%zu.json", "rclone-%zu.conf", "rclone-%zu.log"};

	snprintf(path, sizeof(path), "rclone-%zu.pid", idx);
	stop_rclone(dir, path);
	snprintf(path, sizeof(path), "%s/rclone-%zu.pid", dir, idx);
	(void)unlink(path);
	snprintf(path, sizeof(path), "%s/mnt-%zu", dir, idx);
	(void)umount2(path, MNT_DETACH);
	(void)rmdir(path);
	for (size_t i = 0; i < AL_ARRAY_SIZE(files); i++) {
		char name[64];
		snprintf(name, sizeof(name), files[i], idx);
		snprintf(path, sizeof(path), "%s/%s", dir, name);
		(void)unlink(path);
	}
	/* The cache of a mount that never served holds nothing of a user's. */
	{
		struct al_error ignored = AL_ERROR_INIT;
		snprintf(path, sizeof(path), "%s/cache-%zu", dir, idx);
		(void)al_rm_rf(path, &ignored);
	}
}

int bucket_mounts_add(struct sandbox *sb, const cJSON *entry, const cJSON *credentials, char **path,
                      struct al_error *err)
{
	_cleanup_(manifest_freep) struct manifest *m = NULL;
	_cleanup_cjson_ cJSON *json = cJSON_CreateObject();
	_cleanup_cjson_ cJSON *creds = cJSON_CreateObject();
	_cleanup_close_ int lock = -1;
	const struct manifest *own = sb->spec.parsed ? sb->spec.parsed : sb->spec.mounts;
	const struct manifest_mount *mt;
	const char *key = NULL;
	char marker[PATH_MAX];
	size_t it = 0, idx;
	cJSON *entries;
	int r;

	if (!json || !creds || !cJSON_AddNumberToObject(json, "version", 1) ||
	    !cJSON_AddStringToObject(json, "root", own ? manifest_root(own) : "/workspace") ||
	    !(entries = cJSON_AddObjectToObject(json, "entries")))
		return al_error_set(err, ENOMEM, "out of memory");
	if (!cJSON_IsObject(entry))
		return al_error_set(err, EINVAL, "entry must be a mount entry object");
	cJSON_AddItemToObject(entries, "mount", cJSON_Duplicate(entry, true));
	if (credentials && !cJSON_IsNull(credentials))
		cJSON_AddItemReferenceToObject(creds, "mount", (cJSON *)credentials);
	r = manifest_parse(json, 0, 0, &m, err);
	if (r < 0)
		return r;
	mt = manifest_next_mount(m, &it, &key);
	if (!mt)
		return al_error_set(err, EINVAL, "entry must be a mount entry");
	r = bucket_mounts_check_credentials(m, creds, err);
	if (r < 0)
		return r;
	/* Held while rclone starts: the supervisor must not take the new record, its
	 * process not started yet, for a dead mount to restart. */
	lock = lock_for_change(sb, err);
	if (lock < 0)
		return lock;
	/* The next free index: the supervisor walks them from 0 to the first gap. */
	for (idx = 0;; idx++) {
		snprintf(marker, sizeof(marker), "%s/rclone-%zu.json", sb->dir, idx);
		if (access(marker, F_OK) < 0)
			break;
	}
	r = start_one(sb, idx, key, mt, credentials, err);
	if (r < 0) {
		forget_one(sb->dir, idx);
		return al_error_prefix(err, "mount (%s %s) at %s", mt->provider, mt->bucket,
		                       mt->path);
	}
	if (path && !(*path = strdup(mt->path)))
		return al_error_set(err, ENOMEM, "out of memory");
	return 0;
}

/*
 * In the sandbox's mount namespace: walk to the parent of the path from the
 * sandbox's "/" without following a symlink, and detach the mount at its last
 * component (not following it either).
 */
static _Noreturn void detach_child(int root_fd, void *ctx)
{
	const struct sandbox_path *at = ctx;
	int cur = root_fd, next;

	for (size_t i = 0; i + 1 < at->n; i++) {
		next = openat(cur, at->comps[i], O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		if (next < 0)
			_exit(14);
		close(cur);
		cur = next;
	}
	if (fchdir(cur) < 0)
		_exit(15);
	if (umount2(at->comps[at->n - 1], MNT_DETACH | UMOUNT_NOFOLLOW) < 0 && errno != EINVAL)
		_exit(16);
	_exit(0);
}

static int detach(struct sandbox *sb, const char *where, struct al_error *err)
{
	_cleanup_(sandbox_path_done) struct sandbox_path at = {0};
	int r, code = -1;

	r = split_path(where, &at, err);
	if (r < 0)
		return r;
	r = in_mount_namespace(sb, detach_child, &at, &code, err);
	if (r < 0)
		return r;
	if (code != 0)
		return al_error_set(err, EIO, "cannot unmount %s in the sandbox (step %d)", where,
		                    code);
	return 0;
}

int bucket_mounts_remove_one(struct sandbox *sb, const char *where, struct al_error *err)
{
	_cleanup_close_ int lock = -1;
	char marker[PATH_MAX], path[PATH_MAX];
	size_t idx, len = strlen(where);
	int state, r;

	/* "/mnt/x/" is "/mnt/x". */
	while (len > 1 && where[len - 1] == '/')
		len--;
	if (where[0] != '/' || len >= PATH_MAX)
		return al_error_set(err, EINVAL, "path must be absolute: %s", where);
	lock = lock_for_change(sb, err);
	if (lock < 0)
		return lock;
	for (idx = 0;; idx++) {
		state = record_state(sb->dir, idx, path, sizeof(path));
		if (state < 0)
			return al_error_set(err, ENOENT, "sandbox %s has no bucket mount at %.*s",
			                    sb->id, (int)len, where);
		if (state == 1 && strlen(path) == len && !strncmp(path, where, len))
			break;
	}
	/* Inside first: a process of the sandbox then sees the directory under
	 * it, never a mount whose rclone has gone. */
	r = detach(sb, path, err);
	if (r < 0)
		return r;
	forget_one(sb->dir, idx);
	snprintf(marker, sizeof(marker), "%s/rclone-%zu.json", sb->dir, idx);
	return al_write_file_atomic(marker, "{\"removed\": true}", 17, 0600, err);
}
