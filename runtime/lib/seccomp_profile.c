/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Docker/OCI seccomp profiles -> libseccomp -> raw BPF.
 *
 * The profile semantics follow moby (profiles/seccomp) and runc so that a
 * profile written for Docker behaves the same here:
 *   - "includes"/"excludes" filter rules by capability, architecture and
 *     kernel version before anything is compiled;
 *   - "archMap" contributes the entry of the native architecture only;
 *   - a rule whose action equals the default action is dropped (libseccomp
 *     refuses it, and it changes nothing);
 *   - several conditions on the same argument index become separate rules,
 *     because libseccomp compares each argument at most once per rule;
 *   - syscall names libseccomp does not know are skipped.
 */
#include "seccomp_profile.h"

#include <ctype.h>
#include <errno.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <math.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/utsname.h>
#include <unistd.h>

#include <seccomp.h>

#include "cleanup.h"
#include "json.h"
#include "util.h"

/* Largest errno a syscall can return as an error (include/linux/err.h). */
#define MAX_ERRNO 4095
/* Conditions in one rule entry; Docker profiles use at most a handful. */
#define MAX_RULE_ARGS 64
/* JSON numbers are doubles: integers above 2^53 are not exact. */
#define MAX_EXACT_JSON_INT 9007199254740992.0

static inline void seccomp_releasep(scmp_filter_ctx *ctx)
{
	if (*ctx)
		seccomp_release(*ctx);
}
#define _cleanup_seccomp_ _cleanup_(seccomp_releasep)

/*
 * Which part of a profile one BPF program holds.  A sandbox gets the
 * profile as two stacked filters so that only real denials are logged:
 * rules that answer ENOSYS say "this syscall does not exist here" and make
 * the caller fall back (glibc tries clone3 before clone on every thread and
 * posix_spawn), which is compatibility, not a denial worth a log line.
 */
enum compile_part {
	PART_WHOLE,  /* the profile as written */
	PART_LOGGED, /* everything but the ENOSYS rules (which become allow) */
	PART_COMPAT, /* only the ENOSYS rules, on a default of allow */
};

/*
 * Syscalls a sandbox's filters answer ENOSYS whatever its profile says
 * (unless the profile is stricter still: a stacked filter can only make
 * the answer harsher).  Each draws on a budget the whole host shares and
 * no user, namespace or cgroup bounds: io_setup reserves Linux AIO events
 * of fs.aio-max-nr (one sandbox took all 65536, and host root's io_setup
 * then failed with EAGAIN), and Docker's profile, which a sandbox may be
 * given, allows it.  ENOSYS is what a kernel without AIO answers: programs
 * fall back to threads.
 */
static const char *const forced_enosys[] = {"io_setup", NULL};

static bool is_forced_enosys(const char *name)
{
	for (const char *const *f = forced_enosys; *f; f++)
		if (!strcmp(*f, name))
			return true;
	return false;
}

struct profile_compiler {
	enum compile_part part;
	unsigned n_compat_rules;
	scmp_filter_ctx filter;
	uint32_t default_action;
	uint32_t native_arch;
	const char *const *kept_caps;
	int kernel_major;
	int kernel_minor;
	struct al_error *err;
};

/* How Docker (goToNative) and libseccomp spell the architectures we may run on. */
static const struct {
	uint32_t token;
	const char *docker_name;
	const char *libseccomp_name;
} native_arch_names[] = {
    {SCMP_ARCH_X86_64, "amd64", "x86_64"},  {SCMP_ARCH_X86, "x86", "x86"},
    {SCMP_ARCH_X32, "x32", "x32"},          {SCMP_ARCH_AARCH64, "arm64", "aarch64"},
    {SCMP_ARCH_ARM, "arm", "arm"},          {SCMP_ARCH_PPC64LE, "ppc64le", "ppc64le"},
    {SCMP_ARCH_PPC64, "ppc64", "ppc64"},    {SCMP_ARCH_S390X, "s390x", "s390x"},
    {SCMP_ARCH_S390, "s390", "s390"},       {SCMP_ARCH_RISCV64, "riscv64", "riscv64"},
    {SCMP_ARCH_MIPS64, "mips64", "mips64"}, {SCMP_ARCH_MIPSEL64, "mipsel64", "mipsel64"},
};

static const struct {
	const char *name;
	enum scmp_compare op;
} compare_ops[] = {
    {"SCMP_CMP_NE", SCMP_CMP_NE},
    {"SCMP_CMP_LT", SCMP_CMP_LT},
    {"SCMP_CMP_LE", SCMP_CMP_LE},
    {"SCMP_CMP_EQ", SCMP_CMP_EQ},
    {"SCMP_CMP_GE", SCMP_CMP_GE},
    {"SCMP_CMP_GT", SCMP_CMP_GT},
    {"SCMP_CMP_MASKED_EQ", SCMP_CMP_MASKED_EQ},
};

/* A member that is absent and one that is JSON null mean the same in Docker profiles. */
static const cJSON *member(const cJSON *obj, const char *key)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, key);

	return cJSON_IsNull(v) ? NULL : v;
}

static int expect_string(struct profile_compiler *c, const cJSON *v, const char *where,
                         const char **out)
{
	*out = NULL;
	if (!cJSON_IsString(v) || !v->valuestring)
		return al_error_set(c->err, EINVAL, "%s: expected a string", where);
	*out = v->valuestring;
	return 0;
}

static int expect_array(struct profile_compiler *c, const cJSON *v, const char *where)
{
	if (!cJSON_IsArray(v))
		return al_error_set(c->err, EINVAL, "%s: expected an array", where);
	return 0;
}

/* Numbers above 2^53 lose digits in JSON parsers, so they may be given as strings ("0x..."). */
static int parse_u64(struct profile_compiler *c, const cJSON *v, const char *where, uint64_t *out)
{
	*out = 0;
	if (cJSON_IsNumber(v)) {
		double d = v->valuedouble;

		if (d < 0 || d != floor(d) || d > MAX_EXACT_JSON_INT)
			return al_error_set(
			    c->err, EINVAL,
			    "%s: %.17g is not an integer in [0, 2^53]; write larger "
			    "values as a string",
			    where, d);
		*out = (uint64_t)d;
		return 0;
	}
	if (cJSON_IsString(v) && v->valuestring) {
		const char *s = v->valuestring;
		char *end = NULL;
		unsigned long long n;

		errno = 0;
		n = strtoull(s, &end, 0);
		if (!*s || *s == '-' || errno != 0 || *end != '\0')
			return al_error_set(c->err, EINVAL, "%s: \"%s\" is not an unsigned integer",
			                    where, s);
		*out = n;
		return 0;
	}
	return al_error_set(c->err, EINVAL, "%s: expected an unsigned integer", where);
}

/* errnoRet/defaultErrnoRet: errno for ERRNO (1..4095, or 0 to fake success), msg for TRACE. */
static int parse_action(struct profile_compiler *c, const char *name, const cJSON *ret_value,
                        const char *where, uint32_t *out)
{
	static const struct {
		const char *name;
		uint32_t action;
	} simple[] = {
	    {"SCMP_ACT_ALLOW", SCMP_ACT_ALLOW},
	    {"SCMP_ACT_KILL", SCMP_ACT_KILL},
	    {"SCMP_ACT_KILL_THREAD", SCMP_ACT_KILL_THREAD},
	    {"SCMP_ACT_KILL_PROCESS", SCMP_ACT_KILL_PROCESS},
	    {"SCMP_ACT_TRAP", SCMP_ACT_TRAP},
	    {"SCMP_ACT_LOG", SCMP_ACT_LOG},
	    {"SCMP_ACT_NOTIFY", SCMP_ACT_NOTIFY},
	};
	bool is_errno = strcmp(name, "SCMP_ACT_ERRNO") == 0;
	bool is_trace = strcmp(name, "SCMP_ACT_TRACE") == 0;
	uint64_t value = EPERM;
	int r;

	if (!is_errno && !is_trace) {
		for (size_t i = 0; i < AL_ARRAY_SIZE(simple); i++) {
			if (strcmp(name, simple[i].name) != 0)
				continue;
			if (ret_value)
				return al_error_set(c->err, EINVAL,
				                    "%s: an errno return value is only valid with "
				                    "SCMP_ACT_ERRNO or SCMP_ACT_TRACE, not %s",
				                    where, name);
			*out = simple[i].action;
			return 0;
		}
		return al_error_set(c->err, EINVAL, "%s: unknown action \"%s\"", where, name);
	}

	/* Docker's default for a missing errnoRet is EPERM for both actions. */
	if (ret_value) {
		r = parse_u64(c, ret_value, where, &value);
		if (r < 0)
			return r;
		if (value > (is_errno ? MAX_ERRNO : UINT16_MAX))
			return al_error_set(c->err, ERANGE,
			                    "%s: return value %llu out of range for %s", where,
			                    (unsigned long long)value, name);
	}
	*out = is_errno ? SCMP_ACT_ERRNO((uint32_t)value) : SCMP_ACT_TRACE((uint32_t)value);
	return 0;
}

/* "SCMP_ARCH_X86_64" -> libseccomp token, 0 when libseccomp does not know it. */
static uint32_t resolve_arch(const char *name)
{
	char lower[64];
	size_t i;

	if (strncmp(name, "SCMP_ARCH_", strlen("SCMP_ARCH_")) == 0)
		name += strlen("SCMP_ARCH_");
	for (i = 0; name[i] && i + 1 < sizeof(lower); i++)
		lower[i] = (char)tolower((unsigned char)name[i]);
	if (name[i])
		return 0;
	lower[i] = '\0';
	return seccomp_arch_resolve_name(lower);
}

static int add_arch(struct profile_compiler *c, const cJSON *name_json, const char *where)
{
	const char *name;
	uint32_t token;
	int r;

	r = expect_string(c, name_json, where, &name);
	if (r < 0)
		return r;
	token = resolve_arch(name);
	if (token == 0)
		return al_error_set(c->err, EINVAL, "%s: unknown architecture \"%s\"", where, name);
	r = seccomp_arch_add(c->filter, token);
	if (r < 0 && r != -EEXIST)
		return al_error_set(c->err, -r, "%s: seccomp_arch_add(%s): %s", where, name,
		                    strerror(-r));
	return 0;
}

static int add_architectures(struct profile_compiler *c, const cJSON *profile)
{
	const cJSON *arches = member(profile, "architectures");
	const cJSON *arch_map = member(profile, "archMap");
	char where[96];
	int i = 0, r;

	if (arches) {
		r = expect_array(c, arches, "architectures");
		if (r < 0)
			return r;
		const cJSON *a;
		cJSON_ArrayForEach(a, arches)
		{
			snprintf(where, sizeof(where), "architectures[%d]", i++);
			r = add_arch(c, a, where);
			if (r < 0)
				return r;
		}
	}

	if (!arch_map)
		return 0;
	r = expect_array(c, arch_map, "archMap");
	if (r < 0)
		return r;
	i = 0;
	const cJSON *entry;
	cJSON_ArrayForEach(entry, arch_map)
	{
		const char *arch_name;

		snprintf(where, sizeof(where), "archMap[%d].architecture", i);
		r = expect_string(c, member(entry, "architecture"), where, &arch_name);
		if (r < 0)
			return r;
		/* Entries for other hosts may name arches this libseccomp has never heard of. */
		if (resolve_arch(arch_name) == c->native_arch) {
			const cJSON *subs = member(entry, "subArchitectures");
			int j = 0;

			snprintf(where, sizeof(where), "archMap[%d].subArchitectures", i);
			if (subs) {
				r = expect_array(c, subs, where);
				if (r < 0)
					return r;
				const cJSON *s;
				cJSON_ArrayForEach(s, subs)
				{
					snprintf(where, sizeof(where),
					         "archMap[%d].subArchitectures[%d]", i, j++);
					r = add_arch(c, s, where);
					if (r < 0)
						return r;
				}
			}
		}
		i++;
	}
	return 0;
}

static bool cap_is_kept(struct profile_compiler *c, const char *cap)
{
	if (!c->kept_caps)
		return false;
	for (const char *const *k = c->kept_caps; *k; k++)
		if (strcasecmp(*k, cap) == 0)
			return true;
	return false;
}

static bool arch_is_native(struct profile_compiler *c, const char *name)
{
	for (size_t i = 0; i < AL_ARRAY_SIZE(native_arch_names); i++)
		if (native_arch_names[i].token == c->native_arch)
			return strcmp(name, native_arch_names[i].docker_name) == 0 ||
			       strcmp(name, native_arch_names[i].libseccomp_name) == 0;
	return false;
}

/* "4.8" -> true when the running kernel is at least 4.8 (major.minor only, as Docker). */
static int kernel_at_least(struct profile_compiler *c, const cJSON *v, const char *where, bool *out)
{
	const char *s;
	int major, minor, consumed = 0, r;

	*out = false;
	r = expect_string(c, v, where, &s);
	if (r < 0)
		return r;
	if (sscanf(s, "%d.%d%n", &major, &minor, &consumed) != 2 || s[consumed] != '\0' ||
	    major < 0 || minor < 0)
		return al_error_set(c->err, EINVAL,
		                    "%s: \"%s\" is not a kernel version like \"4.8\"", where, s);
	*out = c->kernel_major > major || (c->kernel_major == major && c->kernel_minor >= minor);
	return 0;
}

/*
 * Evaluate one "includes" (all must hold) or "excludes" (any excludes)
 * object.  Returns 1 when the rule stays, 0 when it is filtered out.
 */
static int filter_matches(struct profile_compiler *c, const cJSON *filter, bool is_include,
                          const char *where)
{
	const cJSON *caps, *arches, *min_kernel, *v;
	char sub[256];
	int r;

	if (!filter)
		return 1;
	if (!cJSON_IsObject(filter))
		return al_error_set(c->err, EINVAL, "%s: expected an object", where);

	arches = member(filter, "arches");
	if (arches) {
		bool any = false;

		snprintf(sub, sizeof(sub), "%s.arches", where);
		r = expect_array(c, arches, sub);
		if (r < 0)
			return r;
		cJSON_ArrayForEach(v, arches)
		{
			const char *name;

			r = expect_string(c, v, sub, &name);
			if (r < 0)
				return r;
			any = any || arch_is_native(c, name);
		}
		if (cJSON_GetArraySize(arches) > 0 && any != is_include)
			return 0;
	}

	caps = member(filter, "caps");
	if (caps) {
		snprintf(sub, sizeof(sub), "%s.caps", where);
		r = expect_array(c, caps, sub);
		if (r < 0)
			return r;
		cJSON_ArrayForEach(v, caps)
		{
			const char *name;

			r = expect_string(c, v, sub, &name);
			if (r < 0)
				return r;
			if (cap_is_kept(c, name) != is_include)
				return 0;
		}
	}

	min_kernel = member(filter, "minKernel");
	if (min_kernel) {
		bool at_least;

		snprintf(sub, sizeof(sub), "%s.minKernel", where);
		r = kernel_at_least(c, min_kernel, sub, &at_least);
		if (r < 0)
			return r;
		if (at_least != is_include)
			return 0;
	}
	return 1;
}

static int parse_args(struct profile_compiler *c, const cJSON *args, const char *where,
                      struct scmp_arg_cmp *cmps, unsigned *n_cmps, bool *same_index_twice)
{
	unsigned seen = 0, n = 0;
	char sub[256], field[320];
	const cJSON *a;
	int r;

	*n_cmps = 0;
	*same_index_twice = false;
	if (!args)
		return 0;
	snprintf(sub, sizeof(sub), "%s.args", where);
	r = expect_array(c, args, sub);
	if (r < 0)
		return r;
	if (cJSON_GetArraySize(args) > MAX_RULE_ARGS)
		return al_error_set(c->err, E2BIG, "%s: more than %d conditions", sub,
		                    MAX_RULE_ARGS);

	cJSON_ArrayForEach(a, args)
	{
		const cJSON *value_two;
		const char *op_name;
		uint64_t index, value, value_two_n = 0;
		bool known_op = false;

		snprintf(sub, sizeof(sub), "%s.args[%u]", where, n);
		if (!cJSON_IsObject(a))
			return al_error_set(c->err, EINVAL, "%s: expected an object", sub);
		snprintf(field, sizeof(field), "%s.index", sub);
		r = parse_u64(c, member(a, "index"), field, &index);
		if (r < 0)
			return r;
		if (index > 5)
			return al_error_set(c->err, EINVAL,
			                    "%s: %llu out of range (syscalls have 6 arguments)",
			                    field, (unsigned long long)index);
		snprintf(field, sizeof(field), "%s.value", sub);
		r = parse_u64(c, member(a, "value"), field, &value);
		if (r < 0)
			return r;
		value_two = member(a, "valueTwo");
		if (value_two) {
			snprintf(field, sizeof(field), "%s.valueTwo", sub);
			r = parse_u64(c, value_two, field, &value_two_n);
			if (r < 0)
				return r;
		}
		snprintf(field, sizeof(field), "%s.op", sub);
		r = expect_string(c, member(a, "op"), field, &op_name);
		if (r < 0)
			return r;
		for (size_t i = 0; i < AL_ARRAY_SIZE(compare_ops); i++) {
			if (strcmp(op_name, compare_ops[i].name) == 0) {
				cmps[n].op = compare_ops[i].op;
				known_op = true;
				break;
			}
		}
		if (!known_op)
			return al_error_set(c->err, EINVAL, "%s: unknown op \"%s\"", sub, op_name);

		/* For SCMP_CMP_MASKED_EQ "value" is the mask and "valueTwo" the datum. */
		cmps[n].arg = (unsigned)index;
		cmps[n].datum_a = value;
		cmps[n].datum_b = value_two_n;
		if (seen & (1u << index))
			*same_index_twice = true;
		seen |= 1u << index;
		n++;
	}
	*n_cmps = n;
	return 0;
}

static int add_rule_for_name(struct profile_compiler *c, const char *name, uint32_t action,
                             const struct scmp_arg_cmp *cmps, unsigned n_cmps, bool split,
                             const char *where)
{
	int nr = seccomp_syscall_resolve_name(name);
	int r;

	/* A profile lists syscalls of every kernel and arch; this libseccomp may not know some. */
	if (nr == __NR_SCMP_ERROR)
		return 0;
	/* The compat part answers these itself (add_forced_enosys). */
	if (c->part == PART_COMPAT && is_forced_enosys(name))
		return 0;

	if (split && n_cmps > 1) {
		for (unsigned i = 0; i < n_cmps; i++) {
			r = seccomp_rule_add_array(c->filter, action, nr, 1, &cmps[i]);
			if (r < 0)
				return al_error_set(c->err, -r, "%s: add rule for syscall %s: %s",
				                    where, name, strerror(-r));
		}
		return 0;
	}
	r = seccomp_rule_add_array(c->filter, action, nr, n_cmps, cmps);
	if (r < 0)
		return al_error_set(c->err, -r, "%s: add rule for syscall %s: %s", where, name,
		                    strerror(-r));
	return 0;
}

static int add_syscall_entry(struct profile_compiler *c, const cJSON *entry, int idx)
{
	struct scmp_arg_cmp cmps[MAX_RULE_ARGS];
	const cJSON *name, *names, *action_json, *v;
	const char *action_name, *first_name = NULL;
	uint32_t action;
	unsigned n_cmps;
	bool split;
	char where[128], field[160];
	int r;

	snprintf(where, sizeof(where), "syscalls[%d]", idx);
	if (!cJSON_IsObject(entry))
		return al_error_set(c->err, EINVAL, "%s: expected an object", where);

	name = member(entry, "name");
	names = member(entry, "names");
	if (name && names)
		return al_error_set(c->err, EINVAL, "%s: both \"name\" and \"names\" are given",
		                    where);
	if (!name && !names)
		return al_error_set(c->err, EINVAL, "%s: neither \"name\" nor \"names\" is given",
		                    where);
	snprintf(field, sizeof(field), "%s.%s", where, name ? "name" : "names");
	if (name) {
		r = expect_string(c, name, field, &first_name);
		if (r < 0)
			return r;
	} else {
		r = expect_array(c, names, field);
		if (r < 0)
			return r;
		cJSON_ArrayForEach(v, names)
		{
			const char *s;

			r = expect_string(c, v, field, &s);
			if (r < 0)
				return r;
			if (!first_name)
				first_name = s;
		}
	}
	/* Name the entry by its first syscall: indexes alone are hard to find in a long file. */
	if (first_name)
		snprintf(where, sizeof(where), "syscalls[%d] (%s%s)", idx, first_name,
		         names && cJSON_GetArraySize(names) > 1 ? ", ..." : "");

	/* Validate the whole entry before deciding whether it applies: typos must not hide. */
	action_json = member(entry, "action");
	snprintf(field, sizeof(field), "%s.action", where);
	r = expect_string(c, action_json, field, &action_name);
	if (r < 0)
		return r;
	r = parse_action(c, action_name, member(entry, "errnoRet"), where, &action);
	if (r < 0)
		return r;
	r = parse_args(c, member(entry, "args"), where, cmps, &n_cmps, &split);
	if (r < 0)
		return r;
	if (action == SCMP_ACT_ERRNO(ENOSYS)) {
		c->n_compat_rules++;
		if (c->part == PART_LOGGED)
			action = SCMP_ACT_ALLOW;
	} else if (c->part == PART_COMPAT) {
		return 0;
	}

	char inc_where[160], exc_where[160];
	snprintf(exc_where, sizeof(exc_where), "%s.excludes", where);
	snprintf(inc_where, sizeof(inc_where), "%s.includes", where);
	r = filter_matches(c, member(entry, "excludes"), false, exc_where);
	if (r <= 0)
		return r;
	r = filter_matches(c, member(entry, "includes"), true, inc_where);
	if (r <= 0)
		return r;

	/* libseccomp refuses a rule that repeats the default action; it would change nothing. */
	if (action == c->default_action)
		return 0;

	if (name)
		return add_rule_for_name(c, name->valuestring, action, cmps, n_cmps, split, where);
	cJSON_ArrayForEach(v, names)
	{
		r = add_rule_for_name(c, v->valuestring, action, cmps, n_cmps, split, where);
		if (r < 0)
			return r;
	}
	return 0;
}

/* The compat part's forced_enosys rules, on top of the profile's. */
static int add_forced_enosys(struct profile_compiler *c)
{
	for (const char *const *f = forced_enosys; *f; f++) {
		int nr = seccomp_syscall_resolve_name(*f), r;

		if (nr == __NR_SCMP_ERROR)
			continue;
		r = seccomp_rule_add_array(c->filter, SCMP_ACT_ERRNO(ENOSYS), nr, 0, NULL);
		if (r < 0)
			return al_error_set(c->err, -r, "add the ENOSYS rule for syscall %s: %s",
			                    *f, strerror(-r));
	}
	return 0;
}

static int export_bpf(struct profile_compiler *c, struct al_bpf *out)
{
	_cleanup_close_ int fd = -1;
	_cleanup_free_ char *data = NULL;
	size_t len = 0;
	int r;

	/* libseccomp 2.5 exports only to an fd; a memfd keeps the bytes off any filesystem. */
	fd = memfd_create("airlock-seccomp-bpf", MFD_CLOEXEC);
	if (fd < 0)
		return al_error_errno(c->err, "memfd_create");
	r = seccomp_export_bpf(c->filter, fd);
	if (r < 0)
		return al_error_set(c->err, -r, "seccomp_export_bpf: %s", strerror(-r));
	if (lseek(fd, 0, SEEK_SET) < 0)
		return al_error_errno(c->err, "lseek on BPF memfd");
	r = al_read_fd(fd, 1 << 20, &data, &len, c->err);
	if (r < 0)
		return al_error_prefix(c->err, "read exported BPF");
	if (len == 0 || len % sizeof(struct sock_filter) != 0)
		return al_error_set(c->err, EIO, "exported BPF has odd size %zu", len);
	if (len / sizeof(struct sock_filter) > BPF_MAXINSNS)
		return al_error_set(c->err, E2BIG,
		                    "compiled filter has %zu instructions, more than the "
		                    "kernel's limit of %d",
		                    len / sizeof(struct sock_filter), BPF_MAXINSNS);
	out->prog = TAKE_PTR(data);
	out->len = len;
	return 0;
}

static int compile_profile(struct profile_compiler *c, const cJSON *profile, struct al_bpf *out)
{
	_cleanup_seccomp_ scmp_filter_ctx filter = NULL;
	const cJSON *syscalls, *entry;
	const char *default_name;
	struct utsname uts;
	int i = 0, r;

	if (!cJSON_IsObject(profile))
		return al_error_set(c->err, EINVAL, "expected a JSON object");

	r = expect_string(c, member(profile, "defaultAction"), "defaultAction", &default_name);
	if (r < 0)
		return r;
	r = parse_action(c, default_name, member(profile, "defaultErrnoRet"), "defaultAction",
	                 &c->default_action);
	if (r < 0)
		return r;
	if (c->part == PART_COMPAT)
		c->default_action = SCMP_ACT_ALLOW;
	if (c->default_action == SCMP_ACT_NOTIFY)
		return al_error_set(c->err, EINVAL,
		                    "defaultAction: SCMP_ACT_NOTIFY cannot be the default action");

	if (uname(&uts) < 0)
		return al_error_errno(c->err, "uname");
	if (sscanf(uts.release, "%d.%d", &c->kernel_major, &c->kernel_minor) != 2)
		return al_error_set(c->err, EINVAL, "cannot parse kernel release \"%s\"",
		                    uts.release);

	filter = seccomp_init(c->default_action);
	if (!filter)
		return al_error_set(c->err, EINVAL, "seccomp_init(%s) failed", default_name);
	c->filter = filter;
	c->native_arch = seccomp_arch_native();

	/*
	 * A syscall through an ABI the filter does not cover (int 0x80 or x32 on
	 * x86_64) has other numbers; rules cannot speak for it, so it is fatal.
	 */
	r = seccomp_attr_set(filter, SCMP_FLTATR_ACT_BADARCH, SCMP_ACT_KILL_PROCESS);
	/* libseccomp offers KILL_PROCESS only when its probe of the kernel finds it (>= 4.14). */
	if (r == -EINVAL)
		r = seccomp_attr_set(filter, SCMP_FLTATR_ACT_BADARCH, SCMP_ACT_KILL_THREAD);
	if (r < 0)
		return al_error_set(c->err, -r, "seccomp_attr_set(ACT_BADARCH): %s", strerror(-r));
	/* An allowlist of ~300 syscalls is a long linear scan without the binary tree. */
	r = seccomp_attr_set(filter, SCMP_FLTATR_CTL_OPTIMIZE, 2);
	if (r < 0)
		return al_error_set(c->err, -r, "seccomp_attr_set(CTL_OPTIMIZE): %s", strerror(-r));

	r = add_architectures(c, profile);
	if (r < 0)
		return r;

	syscalls = member(profile, "syscalls");
	if (syscalls) {
		r = expect_array(c, syscalls, "syscalls");
		if (r < 0)
			return r;
		cJSON_ArrayForEach(entry, syscalls)
		{
			r = add_syscall_entry(c, entry, i++);
			if (r < 0)
				return r;
		}
	}
	if (c->part == PART_COMPAT) {
		r = add_forced_enosys(c);
		if (r < 0)
			return r;
	}
	return export_bpf(c, out);
}

/* Turn cJSON's error pointer into line:column, which is what a person editing the file needs. */
static int json_syntax_error(struct al_error *err, const char *json, size_t json_len,
                             const char *at)
{
	size_t line = 1, col = 1;

	if (!at || at < json || at > json + json_len)
		return al_error_set(err, EINVAL, "invalid JSON");
	for (const char *p = json; p < at; p++) {
		if (*p == '\n') {
			line++;
			col = 1;
		} else {
			col++;
		}
	}
	return al_error_set(err, EINVAL, "invalid JSON at line %zu column %zu", line, col);
}

static int parse_profile(const char *json, size_t json_len, cJSON **out, struct al_error *err)
{
	const char *parse_end = NULL;

	*out = NULL;
	if (!json)
		return al_error_set(err, EINVAL, "seccomp profile: no JSON given");
	*out = cJSON_ParseWithLengthOpts(json, json_len, &parse_end, false);
	if (!*out) {
		json_syntax_error(err, json, json_len, parse_end);
		return al_error_prefix(err, "seccomp profile");
	}
	return 0;
}

int sc_profile_compile(const char *json, size_t json_len, const char *const *kept_caps,
                       struct al_bpf *out, struct al_error *err)
{
	struct profile_compiler c = {.part = PART_WHOLE, .kept_caps = kept_caps, .err = err};
	_cleanup_cjson_ cJSON *profile = NULL;
	int r;

	out->prog = NULL;
	out->len = 0;
	r = parse_profile(json, json_len, &profile, err);
	if (r < 0)
		return r;
	r = compile_profile(&c, profile, out);
	if (r < 0)
		return al_error_prefix(err, "seccomp profile");
	return 0;
}

int sc_profile_compile_split(const char *json, size_t json_len, const char *const *kept_caps,
                             struct al_bpf *logged, struct al_bpf *compat, struct al_error *err)
{
	struct profile_compiler lc = {.part = PART_LOGGED, .kept_caps = kept_caps, .err = err};
	struct profile_compiler cc = {.part = PART_COMPAT, .kept_caps = kept_caps, .err = err};
	_cleanup_cjson_ cJSON *profile = NULL;
	int r;

	*logged = (struct al_bpf){0};
	*compat = (struct al_bpf){0};
	r = parse_profile(json, json_len, &profile, err);
	if (r < 0)
		return r;
	r = compile_profile(&lc, profile, logged);
	if (r < 0)
		return al_error_prefix(err, "seccomp profile");
	/* Always a compat part: it holds the forced ENOSYS rules. */
	r = compile_profile(&cc, profile, compat);
	if (r < 0) {
		al_bpf_free(logged);
		return al_error_prefix(err, "seccomp profile");
	}
	return 0;
}

void al_bpf_free(struct al_bpf *bpf)
{
	if (!bpf)
		return;
	free(bpf->prog);
	bpf->prog = NULL;
	bpf->len = 0;
}

int sc_install_bpf(const void *prog, size_t len, struct al_error *err)
{
	return sc_install_bpf_flags(prog, len, 0, err);
}

int sc_install_bpf_flags(const void *prog, size_t len, unsigned int flags, struct al_error *err)
{
	struct sock_fprog fprog;

	if (!prog || len == 0 || len % sizeof(struct sock_filter) != 0 ||
	    len / sizeof(struct sock_filter) > BPF_MAXINSNS)
		return al_error_set(err, EINVAL, "seccomp: invalid BPF program of %zu bytes", len);
	fprog.len = (unsigned short)(len / sizeof(struct sock_filter));
	fprog.filter = (struct sock_filter *)prog;
	/* glibc 2.36 has no seccomp() wrapper. */
	if (syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, flags, &fprog) < 0) {
		if (errno == EACCES)
			return al_error_errno(err, "seccomp(SECCOMP_SET_MODE_FILTER) without "
			                           "no_new_privs");
		return al_error_errno(err, "seccomp(SECCOMP_SET_MODE_FILTER)");
	}
	return 0;
}
