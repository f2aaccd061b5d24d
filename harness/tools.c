/* SPDX-License-Identifier: Apache-2.0 */
#include "tools.h"

#include "apply_patch.h"
#include "cleanup.h"
#include "json.h"
#include "util.h"

#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define BYTES_PER_TOKEN 4
#define DEFAULT_EXEC_YIELD_MS 10000
#define DEFAULT_STDIN_YIELD_MS 250
/* A model asking to wait longer than this gets a session id back instead. */
#define MAX_YIELD_MS (30 * 60 * 1000L)
#define DEFAULT_SHELL "/bin/sh"

/* Descriptions are the harness's own words; names and parameters match the SDK's. */
static const char tool_definitions[] =
    "["
    "{\"type\":\"function\",\"name\":\"exec_command\",\"strict\":false,"
    "\"description\":\"Run a shell command in the sandbox. Returns its output, or a session ID "
    "to keep talking to it with write_stdin if it is still running when the wait ends.\","
    "\"parameters\":{\"type\":\"object\",\"properties\":{"
    "\"cmd\":{\"type\":\"string\",\"minLength\":1,\"description\":\"The shell command to run.\"},"
    "\"workdir\":{\"type\":\"string\",\"description\":\"Directory to run it in; the workspace "
    "when omitted.\"},"
    "\"shell\":{\"type\":\"string\",\"description\":\"Shell to run the command with; the "
    "sandbox's default shell when omitted.\"},"
    "\"login\":{\"type\":\"boolean\",\"default\":true,\"description\":\"Run the shell as a "
    "login shell (-l). Defaults to true.\"},"
    "\"tty\":{\"type\":\"boolean\",\"default\":false,\"description\":\"Ask for a terminal. "
    "Defaults to false (pipes).\"},"
    "\"yield_time_ms\":{\"type\":\"integer\",\"minimum\":0,\"default\":10000,"
    "\"description\":\"How long to wait for output before returning, in milliseconds.\"},"
    "\"max_output_tokens\":{\"type\":\"integer\",\"minimum\":1,\"description\":\"Upper bound "
    "on the tokens of output returned; the middle of longer output is cut.\"}},"
    "\"required\":[\"cmd\"],\"additionalProperties\":false}},"
    "{\"type\":\"function\",\"name\":\"write_stdin\",\"strict\":false,"
    "\"description\":\"Send characters to a running exec_command session and return what it "
    "printed since.\","
    "\"parameters\":{\"type\":\"object\",\"properties\":{"
    "\"session_id\":{\"type\":\"integer\",\"description\":\"The session ID exec_command "
    "returned.\"},"
    "\"chars\":{\"type\":\"string\",\"default\":\"\",\"description\":\"Characters to write; "
    "empty to just collect output. \\\\u0003 interrupts the process.\"},"
    "\"yield_time_ms\":{\"type\":\"integer\",\"minimum\":0,\"default\":250,"
    "\"description\":\"How long to wait for output before returning, in milliseconds.\"},"
    "\"max_output_tokens\":{\"type\":\"integer\",\"minimum\":1,\"description\":\"Upper bound "
    "on the tokens of output returned.\"}},"
    "\"required\":[\"session_id\"],\"additionalProperties\":false}},"
    "{\"type\":\"function\",\"name\":\"apply_patch\",\"strict\":false,"
    "\"description\":\"Create, update, move or delete files in the sandbox workspace with a "
    "patch (*** Begin Patch ... *** End Patch) or structured operations.\","
    "\"parameters\":{\"type\":\"object\",\"properties\":{"
    "\"patch\":{\"type\":\"string\",\"description\":\"The patch text, from *** Begin Patch to "
    "*** End Patch.\"},"
    "\"operation\":{\"type\":\"object\",\"description\":\"One structured operation.\"},"
    "\"operations\":{\"type\":\"array\",\"items\":{\"type\":\"object\"},\"description\":"
    "\"Structured operations, applied in order.\"},"
    "\"command\":{\"type\":\"array\",\"description\":\"[\\\"apply_patch\\\", patch], another "
    "way to give the patch.\"},"
    "\"type\":{\"type\":\"string\",\"enum\":[\"create_file\",\"update_file\",\"delete_file\"],"
    "\"description\":\"Kind of a single structured operation.\"},"
    "\"path\":{\"type\":\"string\",\"description\":\"File of a single structured operation.\"},"
    "\"diff\":{\"type\":\"string\",\"description\":\"V4A diff of a create_file or update_file "
    "operation.\"},"
    "\"moveTo\":{\"type\":\"string\",\"description\":\"New path when an update_file operation "
    "also moves the file.\"}},"
    "\"required\":[],\"additionalProperties\":true}},"
    "{\"type\":\"function\",\"name\":\"view_image\",\"strict\":false,"
    "\"description\":\"Look at an image file (PNG, JPEG, GIF, WebP, BMP, TIFF, SVG) in the "
    "sandbox.\","
    "\"parameters\":{\"type\":\"object\",\"properties\":{"
    "\"path\":{\"type\":\"string\",\"description\":\"Path of the image in the sandbox "
    "workspace.\"}},"
    "\"required\":[\"path\"],\"additionalProperties\":false}}"
    "]";

cJSON *al_tools_definitions(void)
{
	return cJSON_Parse(tool_definitions);
}

void al_tool_result_free(struct al_tool_result *r)
{
	cJSON_Delete(r->output);
	memset(r, 0, sizeof(*r));
}

/* ---- output shaping (the SDK's truncateOutput / formatExecResponse) ---- */

static size_t utf8_len(unsigned char c)
{
	if (c >= 0xf0 && c < 0xf8)
		return 4;
	if (c >= 0xe0)
		return c < 0xf0 ? 3 : 1;
	if (c >= 0xc0)
		return 2;
	return 1;
}

static long count_lines(const char *s, size_t len)
{
	long n = 1;

	if (len == 0)
		return 0;
	for (size_t i = 0; i < len; i++) {
		if (s[i] == '\r') {
			n++;
			if (i + 1 < len && s[i + 1] == '\n')
				i++;
		} else if (s[i] == '\n') {
			n++;
		}
	}
	return n;
}

static long tokens_of(size_t bytes)
{
	return (long)((bytes + BYTES_PER_TOKEN - 1) / BYTES_PER_TOKEN);
}

/* The leading "[...N characters truncated from process output...]\n" notice, if any. */
static size_t notice_len(const char *s, size_t len)
{
	static const char head[] = "[...";
	static const char tail[] = " characters truncated from process output...]\n";
	size_t i = sizeof(head) - 1;

	if (len < i || memcmp(s, head, i))
		return 0;
	if (i >= len || s[i] < '0' || s[i] > '9')
		return 0;
	while (i < len && s[i] >= '0' && s[i] <= '9')
		i++;
	if (len - i < sizeof(tail) - 1 || memcmp(s + i, tail, sizeof(tail) - 1))
		return 0;
	return i + sizeof(tail) - 1;
}

char *al_truncate_output(const char *text, size_t len, long max_tokens, long *original_tokens)
{
	struct al_buf b = {0};
	size_t max_bytes, nlen, prefix_len, left, right, tail_target, pre_end = 0, suf_start, i;
	const char *body;
	size_t body_len;
	char line_prefix[64], full_marker[64], marker[64];
	bool suffix_started = false;

	*original_tokens = 0;
	max_bytes = max_tokens > 0 ? (size_t)max_tokens * BYTES_PER_TOKEN : 0;
	if (max_tokens < 0 || len <= max_bytes)
		return strndup(text, len);
	*original_tokens = tokens_of(len);
	snprintf(line_prefix, sizeof(line_prefix), "Total output lines: %ld\n\n",
	         count_lines(text, len));
	snprintf(full_marker, sizeof(full_marker), "...%ld tokens truncated...", *original_tokens);
	nlen = notice_len(text, len);
	body = text + nlen;
	body_len = len - nlen;
	if (nlen > max_bytes)
		nlen = 0;
	if (strlen(line_prefix) + nlen + strlen(full_marker) > max_bytes)
		line_prefix[0] = '\0';
	prefix_len = strlen(line_prefix) + nlen;
	al_buf_append(&b, line_prefix, strlen(line_prefix));
	al_buf_append(&b, text, nlen);
	if (prefix_len + strlen(full_marker) > max_bytes) {
		/* Not even the marker fits: as much of it as does (it is ASCII). */
		al_buf_append(&b, full_marker, max_bytes - prefix_len);
		al_buf_append(&b, "", 1);
		return b.data;
	}
	left = (max_bytes - prefix_len - strlen(full_marker)) / 2;
	right = (max_bytes - prefix_len - strlen(full_marker)) - left;
	tail_target = body_len > right ? body_len - right : 0;
	suf_start = body_len;
	for (i = 0; i < body_len;) {
		size_t end = i + utf8_len((unsigned char)body[i]);
		if (end > body_len)
			end = body_len;
		if (end <= left)
			pre_end = end;
		else if (i >= tail_target && !suffix_started) {
			suf_start = i;
			suffix_started = true;
		}
		i = end;
	}
	if (suf_start < pre_end)
		suf_start = pre_end;
	snprintf(marker, sizeof(marker), "...%ld tokens truncated...",
	         tokens_of(len - (nlen + pre_end + body_len - suf_start)));
	al_buf_append(&b, body, pre_end);
	al_buf_append(&b, marker, strlen(marker));
	al_buf_append(&b, body + suf_start, body_len - suf_start);
	if (al_buf_append(&b, "", 1) < 0) {
		al_buf_free(&b);
		return NULL;
	}
	return b.data;
}

char *al_format_exec_response(double wall_seconds, long session_id, int exit_code,
                              long original_tokens, const char *output)
{
	char chunk[7], status[80] = "", tokens[64] = "";
	char *out = NULL;
	struct al_error err = AL_ERROR_INIT;

	if (al_random_hex(chunk, 6, &err) < 0)
		strcpy(chunk, "000000");
	if (session_id >= 0)
		snprintf(status, sizeof(status), "Process running with session ID %ld\n",
		         session_id);
	else
		snprintf(status, sizeof(status), "Process exited with code %d\n", exit_code);
	if (original_tokens > 0)
		snprintf(tokens, sizeof(tokens), "Original token count: %ld\n", original_tokens);
	if (asprintf(&out, "Chunk ID: %s\nWall time: %.4f seconds\n%s%sOutput:\n%s", chunk,
	             wall_seconds, status, tokens, output) < 0)
		return NULL;
	return out;
}

int al_workspace_path(const char *root, const char *path, char **out, struct al_error *err)
{
	_cleanup_free_ char *copy = NULL;
	_cleanup_free_ char **parts = NULL;
	_cleanup_buf_ struct al_buf b = {0};
	size_t rlen = strlen(root), n = 0;
	const char *rel = path;
	char *save = NULL;

	while (rlen > 1 && root[rlen - 1] == '/')
		rlen--;
	if (path[0] == '/') {
		if (strncmp(path, root, rlen) || (path[rlen] != '/' && path[rlen] != '\0'))
			return al_error_set(
			    err, EINVAL, "Sandbox path \"%s\" escapes the workspace root.", path);
		rel = path + rlen;
	}
	copy = strdup(rel);
	parts = calloc(strlen(rel) / 2 + 2, sizeof(*parts));
	if (!copy || !parts)
		return al_error_set(err, ENOMEM, "out of memory");
	for (char *t = strtok_r(copy, "/", &save); t; t = strtok_r(NULL, "/", &save)) {
		if (!strcmp(t, "."))
			continue;
		if (!strcmp(t, "..")) {
			if (n == 0)
				return al_error_set(
				    err, EINVAL, "Sandbox path \"%s\" escapes the workspace root.",
				    path);
			n--;
			continue;
		}
		parts[n++] = t;
	}
	for (size_t i = 0; i < n; i++)
		if ((i && al_buf_append(&b, "/", 1) < 0) ||
		    al_buf_append(&b, parts[i], strlen(parts[i])) < 0)
			return al_error_set(err, ENOMEM, "out of memory");
	if (n == 0)
		return al_error_set(
		    err, EINVAL, "Sandbox path \"%s\" names the workspace root, not a file.", path);
	if (al_buf_append(&b, "", 1) < 0)
		return al_error_set(err, ENOMEM, "out of memory");
	*out = TAKE_PTR(b.data);
	return 0;
}

/* ---- results ---- */

static int result_text(struct al_tool_result *res, const char *text)
{
	res->output = cJSON_CreateString(text ? text : "");
	return res->output ? 0 : -ENOMEM;
}

__attribute__((format(printf, 2, 3))) static int result_error(struct al_tool_result *res,
                                                              const char *fmt, ...)
{
	_cleanup_free_ char *msg = NULL;
	_cleanup_cjson_ cJSON *o = cJSON_CreateObject();
	_cleanup_free_ char *text = NULL;
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vasprintf(&msg, fmt, ap);
	va_end(ap);
	if (n < 0 || !o)
		return -ENOMEM;
	cJSON_AddStringToObject(o, "error", msg);
	text = cJSON_PrintUnformatted(o);
	res->is_error = true;
	return result_text(res, text);
}

/* Argument readers: each fills *out or says what is wrong in why. */
static bool arg_string(const cJSON *args, const char *key, const char **out, char *why,
                       size_t whylen)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(args, key);

	if (!v || cJSON_IsNull(v))
		return true;
	if (!cJSON_IsString(v)) {
		snprintf(why, whylen, "%s must be a string", key);
		return false;
	}
	*out = v->valuestring;
	return true;
}

static bool arg_bool(const cJSON *args, const char *key, bool *out, char *why, size_t whylen)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(args, key);

	if (!v || cJSON_IsNull(v))
		return true;
	if (!cJSON_IsBool(v)) {
		snprintf(why, whylen, "%s must be a boolean", key);
		return false;
	}
	*out = cJSON_IsTrue(v);
	return true;
}

static bool arg_int(const cJSON *args, const char *key, long min, long *out, bool *present,
                    char *why, size_t whylen)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(args, key);

	if (!v || cJSON_IsNull(v))
		return true;
	if (!cJSON_IsNumber(v) || v->valuedouble != floor(v->valuedouble) ||
	    v->valuedouble < (double)min || v->valuedouble > 9e15) {
		snprintf(why, whylen, "%s must be an integer >= %ld", key, min);
		return false;
	}
	*out = (long)v->valuedouble;
	if (present)
		*present = true;
	return true;
}

/* stdout then stderr, as one text. */
static char *combined_output(const struct al_exec_result *er, size_t *len)
{
	char *s = malloc(er->out_len + er->err_len + 1);

	if (!s)
		return NULL;
	/* Either may be NULL when empty. */
	if (er->out_len)
		memcpy(s, er->out, er->out_len);
	if (er->err_len)
		memcpy(s + er->out_len, er->err, er->err_len);
	s[er->out_len + er->err_len] = '\0';
	*len = er->out_len + er->err_len;
	return s;
}

static int exec_answer(struct al_tool_ctx *ctx, struct al_exec_result *er, uint64_t start_ms,
                       long session_id, long max_tokens, struct al_tool_result *res)
{
	_cleanup_free_ char *all = NULL;
	_cleanup_free_ char *shown = NULL;
	_cleanup_free_ char *text = NULL;
	size_t len = 0;
	long original = 0;
	double wall = (double)(al_now_ms() - start_ms) / 1000.0;

	(void)ctx;
	all = combined_output(er, &len);
	if (!all)
		return -ENOMEM;
	shown = al_truncate_output(all, len, max_tokens, &original);
	if (!shown)
		return -ENOMEM;
	text = al_format_exec_response(wall, er->running ? session_id : -1, er->exit_code, original,
	                               shown);
	if (!text)
		return -ENOMEM;
	res->truncated = original > 0 || er->truncated;
	if (er->truncated) {
		/* Past the hard cap the model gets an error it can act on, with what was kept. */
		_cleanup_cjson_ cJSON *o = cJSON_CreateObject();
		_cleanup_free_ char *s = NULL;
		char msg[200];
		snprintf(msg, sizeof(msg),
		         "output exceeded %u bytes per stream and was cut; narrow the command "
		         "(e.g. pipe it through head or tail) or pass max_output_tokens",
		         AL_TOOL_MAX_OUTPUT_BYTES);
		cJSON_AddStringToObject(o, "error", msg);
		cJSON_AddStringToObject(o, "output", text);
		s = cJSON_PrintUnformatted(o);
		res->is_error = true;
		return result_text(res, s);
	}
	return result_text(res, text);
}

/* ---- exec_command / write_stdin ---- */

static int tool_exec(struct al_tool_ctx *ctx, const cJSON *args, struct al_tool_result *res,
                     struct al_error *err)
{
	const char *cmd = NULL, *workdir = NULL, *shell = NULL;
	bool login = true, tty = false;
	long yield = DEFAULT_EXEC_YIELD_MS, max_tokens = -1;
	struct al_exec_result er = {0};
	char why[128], sid[32];
	uint64_t start;
	int r;

	if (!arg_string(args, "cmd", &cmd, why, sizeof(why)) ||
	    !arg_string(args, "workdir", &workdir, why, sizeof(why)) ||
	    !arg_string(args, "shell", &shell, why, sizeof(why)) ||
	    !arg_bool(args, "login", &login, why, sizeof(why)) ||
	    !arg_bool(args, "tty", &tty, why, sizeof(why)) ||
	    !arg_int(args, "yield_time_ms", 0, &yield, NULL, why, sizeof(why)) ||
	    !arg_int(args, "max_output_tokens", 1, &max_tokens, NULL, why, sizeof(why)))
		return result_error(res, "invalid arguments for exec_command: %s", why);
	if (!cmd || !*cmd)
		return result_error(res, "invalid arguments for exec_command: cmd is required");
	/* A provider without terminals runs a tty request on pipes (Ctrl-C still works). */
	tty = tty && (ctx->provider->ops->caps & AL_CAP_PTY);
	if (yield > MAX_YIELD_MS)
		yield = MAX_YIELD_MS;
	const char *argv[] = {shell && *shell ? shell : DEFAULT_SHELL, login ? "-lc" : "-c", cmd,
	                      NULL};
	struct al_exec_request req = {.argv = argv,
	                              .workdir = workdir && *workdir ? workdir : NULL,
	                              .keep_stdin_open = true,
	                              .yield_ms = (uint64_t)yield,
	                              .max_output_bytes = AL_TOOL_MAX_OUTPUT_BYTES,
	                              .tty = tty};
	start = al_now_ms();
	r = ctx->provider->ops->exec(ctx->provider, ctx->sandbox, &req, &er, err);
	if (r < 0) {
		if (al_provider_error_is_fatal(r))
			return r;
		return result_error(res, "exec_command failed: %s", err->msg);
	}
	if (er.running) {
		long id = (*ctx->next_session_id)++;
		snprintf(sid, sizeof(sid), "%ld", id);
		cJSON_DeleteItemFromObjectCaseSensitive(ctx->sessions, sid);
		if (tty) {
			cJSON *session = cJSON_AddObjectToObject(ctx->sessions, sid);
			cJSON_AddStringToObject(session, "process_id", er.process_id);
			cJSON_AddTrueToObject(session, "tty");
		} else {
			cJSON_AddStringToObject(ctx->sessions, sid, er.process_id);
		}
		r = exec_answer(ctx, &er, start, id, max_tokens, res);
	} else {
		r = exec_answer(ctx, &er, start, -1, max_tokens, res);
	}
	al_exec_result_free(&er);
	return r;
}

static int session_gone(struct al_tool_result *res, long id)
{
	_cleanup_free_ char *msg = NULL;
	_cleanup_free_ char *text = NULL;

	if (asprintf(&msg, "write_stdin failed: session not found: %ld", id) < 0)
		return -ENOMEM;
	text = al_format_exec_response(0, -1, 1, 0, msg);
	return text ? result_text(res, text) : -ENOMEM;
}

static int tool_write_stdin(struct al_tool_ctx *ctx, const cJSON *args, struct al_tool_result *res,
                            struct al_error *err)
{
	const char *chars = "";
	long id = 0, yield = DEFAULT_STDIN_YIELD_MS, max_tokens = -1;
	bool have_id = false;
	struct al_exec_result er = {0};
	_cleanup_free_ char *data = NULL;
	const cJSON *session, *pid;
	bool tty;
	char why[128], sid[32];
	size_t n = 0;
	uint64_t start;
	int r;

	if (!arg_int(args, "session_id", LONG_MIN, &id, &have_id, why, sizeof(why)) ||
	    !arg_string(args, "chars", &chars, why, sizeof(why)) ||
	    !arg_int(args, "yield_time_ms", 0, &yield, NULL, why, sizeof(why)) ||
	    !arg_int(args, "max_output_tokens", 1, &max_tokens, NULL, why, sizeof(why)))
		return result_error(res, "invalid arguments for write_stdin: %s", why);
	if (!have_id)
		return result_error(res,
		                    "invalid arguments for write_stdin: session_id is required");
	if (yield > MAX_YIELD_MS)
		yield = MAX_YIELD_MS;
	snprintf(sid, sizeof(sid), "%ld", id);
	session = cJSON_GetObjectItemCaseSensitive(ctx->sessions, sid);
	tty = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(session, "tty"));
	pid = cJSON_IsObject(session) ? cJSON_GetObjectItemCaseSensitive(session, "process_id")
	                              : session;
	if (!cJSON_IsString(pid))
		return session_gone(res, id);
	start = al_now_ms();
	/* On a terminal every character goes in, Ctrl-C too: its line
	 * discipline makes the signal.  On pipes Ctrl-C is sent as one. */
	data = malloc(strlen(chars) + 1);
	if (!data)
		return -ENOMEM;
	for (const char *c = chars; *c; c++)
		if (tty || *c != '\x03')
			data[n++] = *c;
	data[n] = '\0';
	if (!tty && strchr(chars, '\x03')) {
		r = ctx->provider->ops->kill(ctx->provider, ctx->sandbox, pid->valuestring, "INT",
		                             err);
		if (r < 0 && al_provider_error_is_fatal(r))
			return r;
	}
	r = ctx->provider->ops->write_stdin(ctx->provider, ctx->sandbox, pid->valuestring, data, n,
	                                    (uint64_t)yield, &er, err);
	if (r == -ENOENT) {
		cJSON_DeleteItemFromObjectCaseSensitive(ctx->sessions, sid);
		return session_gone(res, id);
	}
	if (r < 0) {
		if (al_provider_error_is_fatal(r))
			return r;
		return result_error(res, "write_stdin failed: %s", err->msg);
	}
	if (!er.running)
		cJSON_DeleteItemFromObjectCaseSensitive(ctx->sessions, sid);
	r = exec_answer(ctx, &er, start, id, max_tokens, res);
	al_exec_result_free(&er);
	return r;
}

/* ---- apply_patch ---- */

struct patch_fs_ctx {
	struct al_tool_ctx *tool;
	int fatal; /* a provider failure that must stop the run */
};

static int pfs_read(void *c, const char *path, char **data, size_t *len, struct al_error *err)
{
	struct patch_fs_ctx *p = c;
	int r = p->tool->provider->ops->read(p->tool->provider, p->tool->sandbox, path, 256u << 20,
	                                     data, len, err);
	if (r < 0 && al_provider_error_is_fatal(r))
		p->fatal = r;
	return r;
}

static int pfs_write(void *c, const char *path, const char *data, size_t len, struct al_error *err)
{
	struct patch_fs_ctx *p = c;
	int r = p->tool->provider->ops->write(p->tool->provider, p->tool->sandbox, path, data, len,
	                                      err);
	if (r < 0 && al_provider_error_is_fatal(r))
		p->fatal = r;
	return r;
}

static int pfs_remove(void *c, const char *path, struct al_error *err)
{
	struct patch_fs_ctx *p = c;
	int r = p->tool->provider->ops->remove(p->tool->provider, p->tool->sandbox, path, err);
	if (r < 0 && al_provider_error_is_fatal(r))
		p->fatal = r;
	return r;
}

/* Say in why what is wrong with the operations; -EINVAL. */
__attribute__((format(printf, 3, 4))) static int invalid_ops(char *why, size_t whylen,
                                                             const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(why, whylen, fmt, ap);
	va_end(ap);
	return -EINVAL;
}

/* Structured operations ({"type": "create_file", "path", "diff", "moveTo"}) as patch ops. */
static int structured_ops(const cJSON *list, struct al_patch_op **out, size_t *n, char *why,
                          size_t whylen)
{
	_cleanup_(al_patch_op_list_free) struct al_patch_op_list ops = {0};
	const cJSON *o;

	ops.v = calloc((size_t)cJSON_GetArraySize(list) + 1, sizeof(*ops.v));
	if (!ops.v)
		return -ENOMEM;
	cJSON_ArrayForEach(o, list)
	{
		const cJSON *type = cJSON_GetObjectItemCaseSensitive(o, "type");
		const cJSON *path = cJSON_GetObjectItemCaseSensitive(o, "path");
		const cJSON *diff = cJSON_GetObjectItemCaseSensitive(o, "diff");
		const cJSON *move = cJSON_GetObjectItemCaseSensitive(o, "moveTo");
		struct al_patch_op *op = &ops.v[ops.n];

		if (!cJSON_IsString(type) || !cJSON_IsString(path) || !*path->valuestring)
			return invalid_ops(why, whylen, "operation %zu needs a type and a path",
			                   ops.n + 1);
		if (!strcmp(type->valuestring, "create_file"))
			op->kind = AL_PATCH_ADD;
		else if (!strcmp(type->valuestring, "update_file"))
			op->kind = AL_PATCH_UPDATE;
		else if (!strcmp(type->valuestring, "delete_file"))
			op->kind = AL_PATCH_DELETE;
		else
			return invalid_ops(why, whylen, "operation %zu: unknown type %.40s",
			                   ops.n + 1, type->valuestring);
		if (op->kind != AL_PATCH_DELETE && !cJSON_IsString(diff))
			return invalid_ops(why, whylen, "operation %zu: %s needs a diff", ops.n + 1,
			                   type->valuestring);
		op->path = strdup(path->valuestring);
		op->diff = op->kind != AL_PATCH_DELETE ? strdup(diff->valuestring) : NULL;
		op->move_to = op->kind == AL_PATCH_UPDATE && cJSON_IsString(move)
		                  ? strdup(move->valuestring)
		                  : NULL;
		ops.n++;
		if (!op->path || (op->kind != AL_PATCH_DELETE && !op->diff) ||
		    (op->kind == AL_PATCH_UPDATE && cJSON_IsString(move) && !op->move_to))
			return -ENOMEM;
	}
	if (ops.n == 0)
		return invalid_ops(why, whylen, "apply_patch input must include an operation.");
	*n = ops.n;
	*out = TAKE_PTR(ops.v);
	return 0;
}

static int tool_apply_patch(struct al_tool_ctx *ctx, const char *raw, struct al_tool_result *res,
                            struct al_error *err)
{
	_cleanup_cjson_ cJSON *args = NULL;
	_cleanup_cjson_ cJSON *wrapped = NULL;
	_cleanup_free_ char *summary = NULL;
	_cleanup_free_ char *text = NULL;
	_cleanup_(al_patch_op_list_free) struct al_patch_op_list ops = {0};
	struct patch_fs_ctx pctx = {.tool = ctx};
	struct al_patch_fs fs = {&pctx, pfs_read, pfs_write, pfs_remove};
	const char *patch = NULL;
	const cJSON *v;
	char why[256] = "";
	int r = 0;

	while (*raw == ' ' || *raw == '\n' || *raw == '\t' || *raw == '\r')
		raw++;
	if (!strncmp(raw, "*** Begin Patch", 15)) {
		patch = raw;
	} else {
		args = cJSON_Parse(raw);
		if (!args)
			return result_error(res,
			                    "Invalid apply_patch JSON: cannot parse the arguments");
		if (cJSON_IsString(args)) {
			patch = args->valuestring;
		} else if (cJSON_IsArray(args)) {
			r = structured_ops(args, &ops.v, &ops.n, why, sizeof(why));
		} else if (!cJSON_IsObject(args)) {
			return result_error(res, "apply_patch input must be an object or array.");
		} else if (cJSON_IsString(v = cJSON_GetObjectItemCaseSensitive(args, "patch"))) {
			patch = v->valuestring;
		} else if (cJSON_IsArray(v = cJSON_GetObjectItemCaseSensitive(args, "command")) &&
		           cJSON_IsString(cJSON_GetArrayItem(v, 0)) &&
		           !strcmp(cJSON_GetArrayItem(v, 0)->valuestring, "apply_patch") &&
		           cJSON_IsString(cJSON_GetArrayItem(v, 1))) {
			patch = cJSON_GetArrayItem(v, 1)->valuestring;
		} else if (cJSON_IsArray(
		               v = cJSON_GetObjectItemCaseSensitive(args, "operations"))) {
			r = structured_ops(v, &ops.v, &ops.n, why, sizeof(why));
		} else {
			v = cJSON_GetObjectItemCaseSensitive(args, "operation");
			wrapped = cJSON_CreateArray();
			if (!wrapped)
				return -ENOMEM;
			cJSON_AddItemToArray(wrapped, cJSON_Duplicate(v ? v : args, 1));
			r = structured_ops(wrapped, &ops.v, &ops.n, why, sizeof(why));
		}
		if (!patch && !ops.v)
			return r == -ENOMEM
			           ? r
			           : result_error(res, "Invalid apply_patch operation: %s", why);
	}
	if (patch) {
		r = al_patch_parse(patch, &ops.v, &ops.n, err);
		if (r < 0)
			return result_error(res, "%s", err->msg);
	}
	/* Like the SDK's editors: every path stays inside the workspace. */
	for (size_t i = 0; i < ops.n; i++) {
		char **paths[] = {&ops.v[i].path, &ops.v[i].move_to};
		for (size_t k = 0; k < 2; k++) {
			char *norm = NULL;
			if (!*paths[k])
				continue;
			r = al_workspace_path(ctx->workspace_root, *paths[k], &norm, err);
			if (r < 0)
				return r == -ENOMEM ? r
				                    : result_error(res, "Failed to apply patch: %s",
				                                   err->msg);
			free(*paths[k]);
			*paths[k] = norm;
		}
	}
	r = al_patch_apply(&fs, ops.v, ops.n, &summary, err);
	if (pctx.fatal)
		return pctx.fatal;
	if (r < 0)
		return result_error(res, "Failed to apply patch: %s", err->msg);
	if (asprintf(&text, "Patch applied.\n%s", summary) < 0)
		return -ENOMEM;
	return result_text(res, text);
}

/* ---- view_image ---- */

static const char *sniff_image(const unsigned char *b, size_t n, const char *path)
{
	size_t plen = strlen(path);

	if (n >= 8 && !memcmp(b, "\x89PNG\r\n\x1a\n", 8))
		return "image/png";
	if (n >= 3 && b[0] == 0xff && b[1] == 0xd8 && b[2] == 0xff)
		return "image/jpeg";
	if (n >= 6 && (!memcmp(b, "GIF87a", 6) || !memcmp(b, "GIF89a", 6)))
		return "image/gif";
	if (n >= 12 && !memcmp(b, "RIFF", 4) && !memcmp(b + 8, "WEBP", 4))
		return "image/webp";
	if (n >= 2 && !memcmp(b, "BM", 2))
		return "image/bmp";
	if (n >= 4 && (!memcmp(b, "II*\0", 4) || !memcmp(b, "MM\0*", 4) || !memcmp(b, "II+\0", 4) ||
	               !memcmp(b, "MM\0+", 4)))
		return "image/tiff";
	if (memmem(b, n < 1024 ? n : 1024, "<svg", 4))
		return "image/svg+xml";
	if (plen >= 4 && !strcasecmp(path + plen - 4, ".svg"))
		return "image/svg+xml";
	return NULL;
}

static int tool_view_image(struct al_tool_ctx *ctx, const cJSON *args, struct al_tool_result *res,
                           struct al_error *err)
{
	const char *path = NULL, *type;
	_cleanup_free_ char *rel = NULL;
	_cleanup_free_ char *data = NULL;
	_cleanup_free_ char *b64 = NULL;
	_cleanup_free_ char *url = NULL;
	cJSON *part;
	char why[128];
	size_t len = 0;
	int r;

	if (!arg_string(args, "path", &path, why, sizeof(why)))
		return result_error(res, "invalid arguments for view_image: %s", why);
	if (!path || !*path)
		return result_error(res, "invalid arguments for view_image: path is required");
	r = al_workspace_path(ctx->workspace_root, path, &rel, err);
	if (r < 0)
		return r == -ENOMEM
		           ? r
		           : result_error(res, "unable to read image at `%s`: %s", path, err->msg);
	r = ctx->provider->ops->read(ctx->provider, ctx->sandbox, rel, AL_TOOL_MAX_IMAGE_BYTES,
	                             &data, &len, err);
	if (r == -ENOENT)
		return result_error(res, "image path `%s` was not found", path);
	if (r == -EFBIG)
		return result_error(res,
		                    "image path `%s` exceeded the allowed size of 10MB; resize or "
		                    "compress the image and try again",
		                    path);
	if (r == -EINVAL)
		return result_error(res, "image path `%s` is not a file", path);
	if (r < 0) {
		if (al_provider_error_is_fatal(r))
			return r;
		return result_error(res, "unable to read image at `%s`: %s", path, err->msg);
	}
	type = sniff_image((const unsigned char *)data, len, path);
	if (!type)
		return result_error(res, "image path `%s` is not a supported image file", path);
	b64 = al_base64_encode(data, len);
	if (!b64 || asprintf(&url, "data:%s;base64,%s", type, b64) < 0)
		return -ENOMEM;
	res->output = cJSON_CreateArray();
	part = cJSON_CreateObject();
	if (!res->output || !part) {
		cJSON_Delete(part);
		return -ENOMEM;
	}
	cJSON_AddStringToObject(part, "type", "input_image");
	cJSON_AddStringToObject(part, "image_url", url);
	cJSON_AddItemToArray(res->output, part);
	return 0;
}

/* ---- dispatch ---- */

static int tool_dispatch(struct al_tool_ctx *ctx, const char *name, const char *arguments,
                         struct al_tool_result *res, struct al_error *err)
{
	_cleanup_cjson_ cJSON *args = NULL;

	if (!strcmp(name, "apply_patch"))
		return tool_apply_patch(ctx, arguments, res, err);
	if (strcmp(name, "exec_command") && strcmp(name, "write_stdin") &&
	    strcmp(name, "view_image"))
		return result_error(
		    res,
		    "unknown tool \"%.100s\"; the tools are exec_command, write_stdin, "
		    "apply_patch and view_image",
		    name);
	args = cJSON_Parse(*arguments ? arguments : "{}");
	if (!cJSON_IsObject(args))
		return result_error(res, "invalid arguments for %s: not a JSON object", name);
	if (!strcmp(name, "exec_command"))
		return tool_exec(ctx, args, res, err);
	if (!strcmp(name, "write_stdin"))
		return tool_write_stdin(ctx, args, res, err);
	return tool_view_image(ctx, args, res, err);
}

int al_tool_run(struct al_tool_ctx *ctx, const char *name, const char *arguments,
                struct al_tool_result *res, struct al_error *err)
{
	int r;

	memset(res, 0, sizeof(*res));
	r = tool_dispatch(ctx, name ? name : "", arguments ? arguments : "{}", res, err);
	/* The tools' own allocation failures come back as a bare -ENOMEM. */
	if (r == -ENOMEM)
		al_error_set(err, ENOMEM, "out of memory");
	if (r < 0)
		al_tool_result_free(res);
	return r;
}
