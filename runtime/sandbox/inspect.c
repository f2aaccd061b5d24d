/* SPDX-License-Identifier: Apache-2.0 */
/*
 * What the API shows of a sandbox: its summary, and the effective
 * isolation read back from the kernel (namespaces, id maps, cgroups, the
 * disk cap, seccomp and capabilities, mounts, interfaces).
 */
#include "sandbox.h"

#include <limits.h>
#include <linux/magic.h>
#include <stdio.h>
#include <string.h>
#include <sys/statfs.h>
#include <time.h>
#include <unistd.h>

#include "caps.h"
#include "cgroup.h"
#include "cleanup.h"
#include "json.h"
#include "util.h"

cJSON *sandbox_summary_json(const struct sandbox *sb)
{
	cJSON *o = cJSON_CreateObject(), *labels;
	int64_t expires;

	cJSON_AddStringToObject(o, "id", sb->id);
	cJSON_AddStringToObject(o, "name", sb->spec.name);
	cJSON_AddStringToObject(o, "state", sandbox_running(sb) ? "running" : "stopped");
	cJSON_AddStringToObject(o, "created", sb->created);
	cJSON_AddStringToObject(o, "rootfs", sb->spec.rootfs);
	if (sb->spec.image)
		cJSON_AddStringToObject(o, "image", sb->spec.image);
	else
		cJSON_AddNullToObject(o, "image");
	/* Only when it has some, as ttl and idle_timeout: summaries stay as
	 * they were for clients that use none. */
	labels =
	    sb->spec.labels && sb->spec.labels[0] ? cJSON_AddObjectToObject(o, "labels") : NULL;
	for (char *const *l = sb->spec.labels; labels && l && *l; l++) {
		const char *eq = strchr(*l, '=');
		_cleanup_free_ char *key = eq ? strndup(*l, (size_t)(eq - *l)) : NULL;
		if (key)
			cJSON_AddStringToObject(labels, key, eq + 1);
	}
	if (sb->spec.ttl_s)
		cJSON_AddNumberToObject(o, "ttl", (double)sb->spec.ttl_s);
	if (sb->spec.idle_timeout_s)
		cJSON_AddNumberToObject(o, "idle_timeout", (double)sb->spec.idle_timeout_s);
	if ((expires = sandbox_expires_at(sb))) {
		time_t t = (time_t)expires;
		struct tm tm;
		char buf[32];
		gmtime_r(&t, &tm);
		strftime(buf, sizeof(buf), "%Y-%m-%dT%H:%M:%SZ", &tm);
		cJSON_AddStringToObject(o, "expires", buf);
	}
	return o;
}

static cJSON *read_text_json(const char *path)
{
	_cleanup_free_ char *text = NULL;
	size_t len;

	if (al_read_file(path, 1 << 20, &text, &len, NULL) < 0)
		return cJSON_CreateNull();
	while (len > 0 && text[len - 1] == '\n')
		text[--len] = '\0';
	return cJSON_CreateString(text);
}

static cJSON *lines_json(const char *path, int field_from)
{
	_cleanup_free_ char *text = NULL;
	cJSON *a = cJSON_CreateArray();
	char *save = NULL;

	if (al_read_file(path, 4 << 20, &text, NULL, NULL) < 0)
		return a;
	for (char *line = strtok_r(text, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
		char *p = line;
		for (int f = 0; f < field_from && p; f++) {
			p = strchr(p, ' ');
			if (p)
				p++;
		}
		if (p)
			cJSON_AddItemToArray(a, cJSON_CreateString(p));
	}
	return a;
}

static cJSON *allow_json(const struct netspec *n)
{
	cJSON *a = cJSON_CreateArray();
	char buf[160];

	for (size_t i = 0; a && i < n->n_allow; i++) {
		netspec_allow_string(&n->allow[i], buf, sizeof(buf));
		cJSON_AddItemToArray(a, cJSON_CreateString(buf));
	}
	return a;
}

/* Published ports, each with the URL it is reached at (relayed by airlockd). */
static cJSON *ports_json(const struct netspec *n)
{
	cJSON *a = cJSON_CreateArray();
	char ip[16], url[64];

	for (size_t i = 0; a && i < n->n_ports; i++) {
		const struct net_port *p = &n->ports[i];
		cJSON *o = cJSON_CreateObject();
		netspec_ip_string(p->host_addr, ip, sizeof(ip));
		/* A UDP port's URL names no application protocol: udp://ADDR:PORT. */
		snprintf(url, sizeof(url), "%s://%s:%u", p->udp ? "udp" : "http", ip,
		         (unsigned)p->host_port);
		cJSON_AddNumberToObject(o, "port", p->port);
		cJSON_AddStringToObject(o, "protocol", p->udp ? "udp" : "tcp");
		cJSON_AddStringToObject(o, "host_address", ip);
		cJSON_AddNumberToObject(o, "host_port", p->host_port);
		cJSON_AddStringToObject(o, "url", url);
		cJSON_AddItemToArray(a, o);
	}
	return a;
}

static cJSON *interfaces_json(pid_t pid)
{
	_cleanup_free_ char *text = NULL;
	cJSON *a = cJSON_CreateArray();
	char path[64], *save = NULL;
	int lineno = 0;

	/* /proc/PID/net/dev shows the network namespace of PID. */
	snprintf(path, sizeof(path), "/proc/%d/net/dev", (int)pid);
	if (al_read_file(path, 1 << 20, &text, NULL, NULL) < 0)
		return a;
	for (char *line = strtok_r(text, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
		char *colon;
		if (++lineno <= 2)
			continue;
		colon = strchr(line, ':');
		if (!colon)
			continue;
		*colon = '\0';
		while (*line == ' ')
			line++;
		cJSON_AddItemToArray(a, cJSON_CreateString(line));
	}
	return a;
}

int sandbox_inspect_json(const struct sandbox_host *host, struct sandbox *sb, cJSON **out,
                         struct al_error *err)
{
	static const char *const ns_names[] = {"user", "pid", "mnt", "net", "uts", "ipc", "cgroup"};
	_cleanup_cjson_ cJSON *o = sandbox_summary_json(sb);
	cJSON *ns, *cg = NULL, *caps = NULL, *net;
	char path[PATH_MAX], link[256];
	bool running = sandbox_running(sb);
	int r;

	cJSON_AddStringToObject(o, "workspace", sb->spec.workspace);
	cJSON_AddNumberToObject(o, "init_pid", sb->init_pid);
	cJSON_AddItemToObject(o, "env", al_json_from_strv(sb->spec.env));
	ns = cJSON_AddObjectToObject(o, "namespaces");
	for (size_t i = 0; i < AL_ARRAY_SIZE(ns_names) && running; i++) {
		ssize_t n;
		snprintf(path, sizeof(path), "/proc/%d/ns/%s", (int)sb->init_pid, ns_names[i]);
		n = readlink(path, link, sizeof(link) - 1);
		if (n > 0) {
			link[n] = '\0';
			cJSON_AddStringToObject(ns, ns_names[i], link);
		}
	}
	snprintf(path, sizeof(path), "/proc/%d/uid_map", (int)sb->init_pid);
	cJSON_AddItemToObject(o, "uid_map", running ? read_text_json(path) : cJSON_CreateNull());
	snprintf(path, sizeof(path), "/proc/%d/gid_map", (int)sb->init_pid);
	cJSON_AddItemToObject(o, "gid_map", running ? read_text_json(path) : cJSON_CreateNull());

	r = cgroup_describe(host->cgroups, sb->id, &cg, err);
	if (r < 0)
		return al_error_prefix(err, "sandbox %s", sb->id);
	cJSON_AddItemToObject(o, "cgroup", cg);
	{
		/* The writable layer's cap, read back from the kernel. */
		struct statfs sf;
		cJSON *disk = cJSON_AddObjectToObject(o, "disk");
		if (statfs(sb->dir, &sf) == 0 && sf.f_type == TMPFS_MAGIC) {
			cJSON_AddNumberToObject(disk, "limit_bytes",
			                        (double)sf.f_blocks * (double)sf.f_bsize);
			cJSON_AddNumberToObject(disk, "used_bytes",
			                        (double)(sf.f_blocks - sf.f_bfree) *
			                            (double)sf.f_bsize);
			cJSON_AddNumberToObject(disk, "limit_inodes", (double)sf.f_files);
			cJSON_AddNumberToObject(disk, "used_inodes",
			                        (double)(sf.f_files - sf.f_ffree));
		} else {
			cJSON_AddNullToObject(disk, "limit_bytes");
		}
	}

	cJSON *sec = cJSON_AddObjectToObject(o, "seccomp");
	cJSON_AddStringToObject(sec, "profile", sb->spec.profile);
	if (running && caps_describe(sb->init_pid, &caps, err) == 0) {
		const cJSON *mode = cJSON_GetObjectItemCaseSensitive(caps, "seccomp_mode");
		const cJSON *nnp = cJSON_GetObjectItemCaseSensitive(caps, "no_new_privs");
		cJSON_AddNumberToObject(sec, "mode", cJSON_GetNumberValue(mode));
		cJSON_AddItemToObject(
		    sec, "filters",
		    cJSON_Duplicate(cJSON_GetObjectItemCaseSensitive(caps, "seccomp_filters"),
		                    false));
		cJSON_AddBoolToObject(o, "no_new_privs", cJSON_IsTrue(nnp));
		cJSON_AddItemToObject(o, "capabilities", caps);
	}
	snprintf(path, sizeof(path), "/proc/%d/mounts", (int)sb->init_pid);
	cJSON_AddItemToObject(o, "mounts", running ? lines_json(path, 0) : cJSON_CreateArray());
	net = cJSON_AddObjectToObject(o, "network");
	cJSON_AddStringToObject(net, "mode", sb->spec.net.allowlist ? "allowlist" : "loopback");
	if (sb->spec.net.allowlist) {
		char ip[16];
		cJSON_AddItemToObject(net, "allow", allow_json(&sb->spec.net));
		netspec_ip_string(sb->net_addr, ip, sizeof(ip));
		cJSON_AddStringToObject(net, "address", sb->net_addr ? ip : "");
		netspec_ip_string(sb->net_gw, ip, sizeof(ip));
		cJSON_AddStringToObject(net, "gateway", sb->net_gw ? ip : "");
	}
	cJSON_AddItemToObject(o, "ports", ports_json(&sb->spec.net));
	cJSON_AddItemToObject(net, "interfaces",
	                      running ? interfaces_json(sb->init_pid) : cJSON_CreateArray());
	*out = TAKE_PTR(o);
	return 0;
}
