/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The workspace manifest (runtime/lib/manifest.c): manifest_parse with
 * airlockd's limits, and for a manifest that parses and names no host path,
 * manifest_materialize into an empty directory, as a create does into a new
 * workspace.  Manifests with local_file/local_dir entries are parsed only:
 * materializing them would copy whatever host path the input names.
 */
#include "fuzz.h"

#include <fcntl.h>
#include <string.h>
#include <unistd.h>

#include "cleanup.h"
#include "json.h"
#include "manifest.h"

static char *workspace;

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	workspace = fuzz_make_temp_dir("manifest");
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	_cleanup_cjson_ cJSON *json = al_json_parse_exact((const char *)data, size, NULL);
	struct al_error err = AL_ERROR_INIT;
	struct manifest *m = NULL;
	int r;

	if (!json)
		return 0;
	r = manifest_parse(json, 0, 0, &m, &err);
	fuzz_check_error(r, &err);
	if (r < 0) {
		FUZZ_ASSERT(!m);
		return 0;
	}
	FUZZ_ASSERT(manifest_root(m)[0] == '/');
	for (char *const *e = manifest_environment(m); e && *e; e++)
		FUZZ_ASSERT(strchr(*e, '=') && **e != '=');
	if (!manifest_first_host_source(m)) {
		_cleanup_close_ int dfd = open(workspace, O_RDONLY | O_DIRECTORY | O_CLOEXEC);

		FUZZ_ASSERT(dfd >= 0);
		al_error_clear(&err);
		r = manifest_materialize(m, dfd, (uid_t)-1, (gid_t)-1, NULL, &err);
		fuzz_check_error(r, &err);
		fuzz_empty_dir(workspace);
	}
	manifest_free(m);
	return 0;
}
