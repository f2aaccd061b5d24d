/* SPDX-License-Identifier: Apache-2.0 */
#pragma once

/*
 * What every hosted provider shares, so that a provider file is only its wire mapping:
 * running a command to its end over the provider's own exec, materialising a manifest
 * through write and mkdir, and the workspace as a tar made and unpacked inside the
 * sandbox and moved through the file API (the Agents SDK's way), checked here against
 * hostile archives as airlockd checks them.
 *
 * A provider's skeleton is a table: its struct starts with struct al_hosted_provider, its
 * struct al_hosted_config names its options, key header and (for a provider that can only
 * run scripts to their end) its session runner; open is al_hosted_provider_new plus its
 * own options, requests go through al_hosted_send with its own errno mapping, and with a
 * runner its ops take al_hosted_exec, al_hosted_write_stdin and al_hosted_kill.
 */

#include <curl/curl.h>

#include "http.h"
#include "provider.h"
#include "util.h"

#define AL_HOSTED_MAX_ARCHIVE (1ull << 30)
#define AL_HOSTED_MAX_EXTRACTED (4ull << 30)
#define AL_HOSTED_MAX_MEMBERS 100000

/* Run argv in sb until it ends (no yield); *exit_code and, when out is set, stdout. */
int al_hosted_run(struct al_provider *p, struct al_sandbox *sb, const char *const *argv,
                  int *exit_code, char **out, struct al_error *err);

/* Create the manifest's file and dir entries under root; mount entries the provider
 * mounts natively (al_hosted_native_mount) are left to its create; other entry types
 * are refused with -ENOTSUP naming them. */
int al_hosted_materialise(struct al_provider *p, struct al_sandbox *sb, const cJSON *manifest,
                          const char *root, struct al_error *err);

/* A mount entry's bucket kind ("s3", "r2", "gcs", "azure_blob", ...; "" when it names
 * none) and in *fields where its fields are (the entry, or a generic mount's "config");
 * NULL for an entry that is not a mount. */
const char *al_hosted_mount_kind(const cJSON *entry, const cJSON **fields);

/* Whether provider mounts buckets of kind with the service's own mechanism, the keys
 * outside the sandbox (its create makes them: materialise skips those entries). */
bool al_hosted_native_mount(const char *provider, const char *kind);

/* One mount entry that the provider mounts natively: key is its path from the
 * manifest's root ("data/in"), kind and fields as al_hosted_mount_kind gives them. */
typedef int (*al_hosted_mount_fn)(void *ctx, const cJSON *entry, const char *key, const char *kind,
                                  const cJSON *fields, struct al_error *err);

/* Call fn for every mount entry among entries and their dirs' children that provider p
 * mounts natively; any other mount entry is refused (al_hosted_refuse_mount). */
int al_hosted_for_each_native_mount(struct al_provider *p, const cJSON *entries,
                                    al_hosted_mount_fn fn, void *ctx, struct al_error *err);

/* -ENOTSUP for mount entry e (of type) on provider p, saying why and what would work. */
int al_hosted_refuse_mount(struct al_provider *p, const cJSON *e, const char *type,
                           struct al_error *err);

int al_hosted_persist(struct al_provider *p, struct al_sandbox *sb, const char *root,
                      const char *archive_path, struct al_error *err);
int al_hosted_hydrate(struct al_provider *p, struct al_sandbox *sb, const char *root,
                      const char *archive_path, struct al_error *err);

/* For a provider without routes for them: remove abs (recursively; -ENOENT when it is
 * not there) and list the directory abs (-ENOENT when it is not one) by shell commands
 * through its exec.  A name with a newline is not listed. */
int al_hosted_shell_remove(struct al_provider *p, struct al_sandbox *sb, const char *abs,
                           struct al_error *err);
int al_hosted_shell_list(struct al_provider *p, struct al_sandbox *sb, const char *abs,
                         struct al_dir_entry **entries, size_t *n, struct al_error *err);

/* A workspace archive fit to unpack: relative members, no "..", no device, FIFO or socket,
 * no setuid/setgid, links that stay inside, within the size and member limits. */
int al_hosted_check_archive(const char *path, struct al_error *err);

/* The manifest's root when it is an absolute path, else def (the provider's workspace). */
const char *al_hosted_manifest_root(const cJSON *manifest, const char *def);

/* For _cleanup_(al_hosted_mime_freep) curl_mime *m: a multipart body of an upload. */
static inline void al_hosted_mime_freep(curl_mime **m)
{
	curl_mime_free(*m);
}

/* path made absolute against root (a fresh string), or NULL when out of memory. */
char *al_hosted_abs(const char *root, const char *path);

/* A setting of the task's provider block: the string at key when set and not
 * empty, else the environment variable env (may be NULL) when set and not
 * empty, else NULL. */
const char *al_hosted_option(const cJSON *options, const char *key, const char *env);

/*
 * What every hosted provider opens the same way: an HTTP client that retries, the header
 * its key goes in, the base URL of its API and the timeout of a unary call, all read from
 * the task's provider block as its table (struct al_hosted_config) says.  A provider
 * struct embeds it after its struct al_provider.
 */
struct al_hosted_client {
	struct al_http http;
	char *auth_header; /* "<cfg.auth><key>"; NULL: no key (a provider where it is optional) */
	char *base_url;    /* without trailing slashes */
	long request_timeout_ms;
};

struct al_session_runner;

struct al_hosted_config {
	const char *type; /* "daytona": messages, and the key's names (provider.c) */
	const struct al_provider_ops *ops;
	/* Its exec sessions, for a provider that can only run scripts to their end; NULL: the
	 * provider has exec, write_stdin and kill of its own. */
	const struct al_session_runner *runner;
	const char *url_key;     /* the option holding the API's URL: "api_url" */
	const char *url_env;     /* the SDK's variable for it, or NULL */
	const char *default_url; /* NULL: the option is required */
	const char *auth;        /* what precedes the key in its header: "Authorization: Bearer " */
	bool key_optional;       /* no key is fine (then no header) */
};

/* Set up c from options (url_key, request_timeout_ms, ca_bundle) and api_key; on error
 * nothing is left to close. */
int al_hosted_client_open(struct al_hosted_client *c, const struct al_hosted_config *cfg,
                          const cJSON *options, const char *api_key, struct al_error *err);
/* Close c; the key in its header is wiped first. */
void al_hosted_client_close(struct al_hosted_client *c);

/* The head of every hosted provider's struct. */
struct al_hosted_provider {
	struct al_provider base;
	struct al_hosted_client c;
	const struct al_session_runner *runner; /* cfg's */
};

/* A zeroed provider struct of size bytes, which starts with struct al_hosted_provider, for
 * cfg's ops with its client open; NULL with err set (its code the errno). */
void *al_hosted_provider_new(size_t size, const struct al_hosted_config *cfg, const cJSON *options,
                             const char *api_key, struct al_error *err);
/* Close the client and free h (once the provider freed the fields of its own). */
void al_hosted_provider_free(struct al_hosted_provider *h);

/* A duration option in milliseconds: *ms is def when key is absent; present, it must be a
 * number of at least 1000 (-EINVAL otherwise). */
int al_hosted_ms_option(const cJSON *options, const char *key, long def, long *ms,
                        struct al_error *err);

/* The statuses every hosted API means alike: 401/403 EPERM, 404 ENOENT, 409 EEXIST,
 * 400/422 EINVAL; any other EIO.  A provider's own mapping handles its exceptions first. */
int al_hosted_status_errno(long status);

/* A provider's errno for an answer outside 2xx; plane tells a sandbox's data plane (whose
 * 404 or 502 may mean that the sandbox is gone) from the control plane. */
typedef int (*al_hosted_errno_fn)(const struct al_http_response *resp, bool plane);

/* Send rq over c.  An answer outside 2xx is an error: errnum(resp, plane) (NULL:
 * al_hosted_status_errno), the answer's message, rq->what.  A 2xx body goes to *out
 * NUL-terminated when out is set, or parsed to *json when json is set (-EIO when it is
 * not JSON). */
int al_hosted_send(struct al_hosted_client *c, const struct al_http_request *rq,
                   al_hosted_errno_fn errnum, bool plane, struct al_buf *out, cJSON **json,
                   struct al_error *err);

/* A copy of url without trailing slashes (one kept for "/"), to free(); NULL when out of
 * memory. */
char *al_hosted_base_url(const char *url);

/* A URL-escaped copy of the len bytes of s (0: up to its NUL) to free()
 * (libcurl's own must go to curl_free), or NULL when out of memory. */
char *al_hosted_url_escape(const char *s, int len);

/*
 * Exec sessions over a provider that can only run a shell script to its end (Daytona's
 * process/execute, for one): the command runs detached in its own process group inside
 * the sandbox, its stdin a FIFO the session holds open, its output and exit status in
 * files under /tmp/airlock-sessions/<id>; a poll prints what is new (the read offsets
 * live beside them, so a resumed harness neither loses nor repeats output) and waits for
 * the end up to the yield.  An exit status above 128 is read as the signal 128 + n.
 */
struct al_session_runner {
	/* Run script with /bin/sh to its end; *out gets its output (stdout, or both
	 * streams merged: the session's own scripts write only stdout). */
	int (*run)(struct al_provider *p, struct al_sandbox *sb, const char *script,
	           long timeout_ms, char **out, int *exit_code, struct al_error *err);
	/* The workspace root of sb: where a command without a workdir starts. */
	const char *(*root)(struct al_sandbox *sb);
};

/* exec, write_stdin and kill for the ops table of a hosted provider with a runner: the
 * sessions below over it. */
int al_hosted_exec(struct al_provider *p, struct al_sandbox *sb, const struct al_exec_request *req,
                   struct al_exec_result *res, struct al_error *err);
int al_hosted_write_stdin(struct al_provider *p, struct al_sandbox *sb, const char *process_id,
                          const char *data, size_t len, uint64_t yield_ms,
                          struct al_exec_result *res, struct al_error *err);
int al_hosted_kill(struct al_provider *p, struct al_sandbox *sb, const char *process_id,
                   const char *signame, struct al_error *err);

int al_session_exec(struct al_provider *p, struct al_sandbox *sb,
                    const struct al_session_runner *runner, const char *root,
                    const struct al_exec_request *req, struct al_exec_result *res,
                    struct al_error *err);
int al_session_write(struct al_provider *p, struct al_sandbox *sb,
                     const struct al_session_runner *runner, const char *process_id,
                     const char *data, size_t len, uint64_t yield_ms, size_t max,
                     struct al_exec_result *res, struct al_error *err);
int al_session_kill(struct al_provider *p, struct al_sandbox *sb,
                    const struct al_session_runner *runner, const char *process_id,
                    const char *signame, struct al_error *err);
