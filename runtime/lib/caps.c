/* SPDX-License-Identifier: Apache-2.0 */
#include "caps.h"

#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sys/capability.h>

#include "cleanup.h"
#include "json.h"
#include "util.h"

const char *const al_default_caps[] = {
    "CAP_CHOWN",   "CAP_DAC_OVERRIDE", "CAP_FOWNER",  "CAP_FSETID",           "CAP_KILL",
    "CAP_SETGID",  "CAP_SETUID",       "CAP_SETPCAP", "CAP_NET_BIND_SERVICE", "CAP_SYS_CHROOT",
    "CAP_SETFCAP", "CAP_AUDIT_WRITE",  NULL,
};

/* Capability numbers are below 64 as long as the kernel reports them as 64-bit masks. */
#define CAP_BITS 64

static inline void cap_freep(void *p)
{
	void **v = p;

	if (*v)
		cap_free(*v);
}
#define _cleanup_cap_ _cleanup_(cap_freep)

static int cap_value_of(const char *name, cap_value_t *out, struct al_error *err)
{
	char lower[64];
	size_t i;

	/* libcap's table is lowercase; accept the kernel's uppercase spelling too. */
	for (i = 0; name[i] && i + 1 < sizeof(lower); i++)
		lower[i] = (char)tolower((unsigned char)name[i]);
	lower[i] = '\0';
	if (name[i] || cap_from_name(lower, out) < 0 || *out < 0 || *out >= CAP_BITS ||
	    strncmp(lower, "cap_", 4) != 0)
		return al_error_set(err, EINVAL, "unknown capability \"%s\"", name);
	return 0;
}

static int caps_mask(const char *const *names, uint64_t *mask, struct al_error *err)
{
	*mask = 0;
	for (const char *const *n = names; n && *n; n++) {
		cap_value_t v;
		int r = cap_value_of(*n, &v, err);

		if (r < 0)
			return r;
		*mask |= UINT64_C(1) << v;
	}
	return 0;
}

int caps_validate(const char *const *names, struct al_error *err)
{
	uint64_t mask;

	return caps_mask(names, &mask, err);
}

static const char *cap_label(cap_value_t v, char *buf, size_t size)
{
	_cleanup_cap_ char *name = cap_to_name(v);

	snprintf(buf, size, "%s", name ? name : "?");
	return buf;
}

int caps_apply(const char *const *keep, struct al_error *err)
{
	_cleanup_cap_ cap_t state = NULL;
	cap_value_t kept[CAP_BITS];
	uint64_t mask;
	int n_kept = 0, r;
	char label[64];

	r = caps_mask(keep, &mask, err);
	if (r < 0)
		return al_error_prefix(err, "caps");

	/* The bounding set first: dropping from it needs CAP_SETPCAP, which may not be kept. */
	for (cap_value_t v = 0; v < CAP_BITS; v++) {
		int in_bound = cap_get_bound(v);

		if (in_bound < 0)
			continue; /* not a capability of this kernel */
		if (mask & (UINT64_C(1) << v)) {
			kept[n_kept++] = v;
			continue;
		}
		if (in_bound > 0 && cap_drop_bound(v) < 0)
			return al_error_errno(err, "caps: drop %s from the bounding set",
			                      cap_label(v, label, sizeof(label)));
	}

	if (cap_reset_ambient() < 0)
		return al_error_errno(err, "caps: clear the ambient set");

	state = cap_init();
	if (!state)
		return al_error_errno(err, "caps: cap_init");
	if (n_kept > 0 && (cap_set_flag(state, CAP_EFFECTIVE, n_kept, kept, CAP_SET) < 0 ||
	                   cap_set_flag(state, CAP_PERMITTED, n_kept, kept, CAP_SET) < 0))
		return al_error_errno(err, "caps: cap_set_flag");
	if (cap_set_proc(state) < 0)
		return al_error_errno(err, "caps: set effective/permitted/inheritable (capset)");
	return 0;
}

static int mask_to_json(uint64_t mask, cJSON **out)
{
	_cleanup_cjson_ cJSON *array = cJSON_CreateArray();

	if (!array)
		return -ENOMEM;
	for (cap_value_t v = 0; v < CAP_BITS; v++) {
		_cleanup_cap_ char *name = NULL;

		if (!(mask & (UINT64_C(1) << v)))
			continue;
		name = cap_to_name(v);
		if (!name || !cJSON_AddItemToArray(array, cJSON_CreateString(name)))
			return -ENOMEM;
	}
	*out = TAKE_PTR(array);
	return 0;
}

int caps_describe(pid_t pid, cJSON **out, struct al_error *err)
{
	static const struct {
		const char *field;
		const char *key;
	} sets[] = {
	    {"CapBnd:", "bounding"},    {"CapEff:", "effective"}, {"CapPrm:", "permitted"},
	    {"CapInh:", "inheritable"}, {"CapAmb:", "ambient"},
	};
	uint64_t masks[AL_ARRAY_SIZE(sets)] = {0};
	bool seen[AL_ARRAY_SIZE(sets)] = {false};
	_cleanup_free_ char *status = NULL;
	_cleanup_cjson_ cJSON *json = NULL;
	char path[64];
	long nnp = 0, seccomp_mode = 0, seccomp_filters = -1;
	int r;

	*out = NULL;
	if (pid > 0)
		snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
	else
		snprintf(path, sizeof(path), "/proc/self/status");
	r = al_read_file(path, 1 << 20, &status, NULL, err);
	if (r < 0)
		return al_error_prefix(err, "caps");

	for (char *line = status, *next; line && *line; line = next) {
		next = strchr(line, '\n');
		if (next)
			*next++ = '\0';
		for (size_t i = 0; i < AL_ARRAY_SIZE(sets); i++) {
			size_t n = strlen(sets[i].field);

			if (strncmp(line, sets[i].field, n) != 0)
				continue;
			if (sscanf(line + n, "%" SCNx64, &masks[i]) != 1)
				return al_error_set(err, EIO, "caps: %s: cannot parse \"%s\"", path,
				                    line);
			seen[i] = true;
		}
		if (strncmp(line, "NoNewPrivs:", 11) == 0)
			nnp = strtol(line + 11, NULL, 10);
		else if (strncmp(line, "Seccomp:", 8) == 0)
			seccomp_mode = strtol(line + 8, NULL, 10);
		else if (strncmp(line, "Seccomp_filters:", 16) == 0) /* Linux >= 5.9 */
			seccomp_filters = strtol(line + 16, NULL, 10);
	}
	/* Only CapAmb is missing on old kernels (before 4.3); the others always exist. */
	for (size_t i = 0; i + 1 < AL_ARRAY_SIZE(sets); i++)
		if (!seen[i])
			return al_error_set(err, EIO, "caps: %s has no %s line", path,
			                    sets[i].field);

	json = cJSON_CreateObject();
	if (!json)
		return al_error_set(err, ENOMEM, "caps: out of memory");
	for (size_t i = 0; i < AL_ARRAY_SIZE(sets); i++) {
		cJSON *array = NULL;

		if (mask_to_json(masks[i], &array) < 0 ||
		    !cJSON_AddItemToObject(json, sets[i].key, array)) {
			cJSON_Delete(array);
			return al_error_set(err, ENOMEM, "caps: out of memory");
		}
	}
	if (!cJSON_AddBoolToObject(json, "no_new_privs", nnp != 0) ||
	    !cJSON_AddNumberToObject(json, "seccomp_mode", (double)seccomp_mode) ||
	    !(seccomp_filters >= 0
	          ? cJSON_AddNumberToObject(json, "seccomp_filters", (double)seccomp_filters)
	          : cJSON_AddNullToObject(json, "seccomp_filters")))
		return al_error_set(err, ENOMEM, "caps: out of memory");
	*out = TAKE_PTR(json);
	return 0;
}
