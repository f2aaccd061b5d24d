/* SPDX-License-Identifier: Apache-2.0 */
/*
 * POST /v1/sandboxes as api.c takes it: the body through al_json_parse_exact,
 * "exec" and "remove" taken out, the rest through sandbox_spec_from_request
 * for an untrusted client (a member of the socket's group) and, when that
 * is refused for a host path, for root.
 *
 * A spec that parses must also survive what airlockd does with it later
 * (docs/design.md, "One shape of a sandbox's settings"): its record, printed
 * as state.json is and read back, gives the same spec; and the restore
 * request made from that record is a valid create request that gives the
 * same spec again.
 */
#include "fuzz.h"

#include <errno.h>
#include <float.h>
#include <math.h>
#include <string.h>
#include <sys/stat.h>

#include "cleanup.h"
#include "json.h"
#include "spec.h"
#include "strv.h"

static char *default_rootfs;

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	_cleanup_free_ char *dir = fuzz_make_temp_dir("request");

	(void)argc;
	(void)argv;
	/* A rootfs directory with a neighbour: an untrusted client may name
	 * either, and nothing else. */
	if (asprintf(&default_rootfs, "%s/rootfs", dir) < 0 || mkdir(default_rootfs, 0755) < 0)
		abort();
	{
		_cleanup_free_ char *other = NULL;
		if (asprintf(&other, "%s/other", dir) < 0 || mkdir(other, 0755) < 0)
			abort();
	}
	return 0;
}

static void check_same(const struct sandbox_spec *a, const struct sandbox_spec *b)
{
	FUZZ_ASSERT(!strcmp(a->name, b->name));
	FUZZ_ASSERT(!strcmp(a->rootfs, b->rootfs));
	FUZZ_ASSERT(!strcmp(a->profile, b->profile));
	FUZZ_ASSERT(a->limits.memory_bytes == b->limits.memory_bytes);
	FUZZ_ASSERT(a->limits.pids == b->limits.pids);
	/* cJSON prints a number with 15 digits when they read back within a
	 * relative DBL_EPSILON; cpu.max takes whole microseconds anyway. */
	FUZZ_ASSERT(fabs(a->limits.cpus - b->limits.cpus) <=
	            fmax(a->limits.cpus, b->limits.cpus) * DBL_EPSILON);
	FUZZ_ASSERT(a->disk_bytes == b->disk_bytes);
	FUZZ_ASSERT(al_strv_length(a->env) == al_strv_length(b->env));
	for (size_t i = 0; a->env && a->env[i]; i++)
		FUZZ_ASSERT(!strcmp(a->env[i], b->env[i]));
}

static void check_spec(const cJSON *req, const struct sandbox_spec *spec,
                       const struct sandbox_spec_policy *pol)
{
	struct al_error err = AL_ERROR_INIT;
	_cleanup_cjson_ cJSON *rec = sandbox_spec_to_json(spec);
	_cleanup_free_ char *text = NULL;
	_cleanup_cjson_ cJSON *back = NULL, *restore = NULL;
	struct sandbox_spec from_record = {0}, restored = {0};
	int r;

	FUZZ_ASSERT(spec->rootfs && spec->workspace && spec->workspace[0] == '/');
	FUZZ_ASSERT(rec);
	/* state.json: printed, and read back after a restart of airlockd. */
	text = cJSON_PrintUnformatted(rec);
	FUZZ_ASSERT(text);
	back = al_json_parse_exact(text, strlen(text), NULL);
	FUZZ_ASSERT(back);
	r = sandbox_spec_from_record(back, &from_record, &err);
	FUZZ_ASSERT(r == 0);
	check_same(spec, &from_record);
	FUZZ_ASSERT(!strcmp(spec->workspace, from_record.workspace));
	sandbox_spec_free(&from_record);

	/* A snapshot's record restored, with the request's name and limits. */
	restore = sandbox_spec_restore_request(back, req);
	FUZZ_ASSERT(restore);
	r = sandbox_spec_from_request(restore, pol, &restored, &err);
	if (r < 0)
		fprintf(stderr, "restore request refused: %s\n", err.msg);
	FUZZ_ASSERT(r == 0);
	check_same(spec, &restored);
	sandbox_spec_free(&restored);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct sandbox_spec_policy pol = {.default_rootfs = default_rootfs, .trusted = false};
	struct al_error err = AL_ERROR_INIT;
	struct sandbox_spec spec = {0};
	_cleanup_cjson_ cJSON *req = NULL;
	size_t bad_at = 0;
	int r;

	req = al_json_parse_exact((const char *)data, size, &bad_at);
	if (!req) {
		FUZZ_ASSERT(bad_at <= size);
		return 0;
	}
	if (!cJSON_IsObject(req))
		return 0; /* api.c answers 400 before the spec sees it */
	cJSON_Delete(cJSON_DetachItemFromObjectCaseSensitive(req, "exec"));
	cJSON_Delete(cJSON_DetachItemFromObjectCaseSensitive(req, "remove"));

	r = sandbox_spec_from_request(req, &pol, &spec, &err);
	fuzz_check_error(r, &err);
	if (r == -EPERM) {
		pol.trusted = true;
		al_error_clear(&err);
		r = sandbox_spec_from_request(req, &pol, &spec, &err);
		fuzz_check_error(r, &err);
	}
	if (r < 0)
		return 0;
	check_spec(req, &spec, &pol);
	sandbox_spec_free(&spec);
	return 0;
}
