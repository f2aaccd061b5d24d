/* SPDX-License-Identifier: Apache-2.0 */
/*
 * `airlock top`: the processes of a sandbox as the host's /proc shows them,
 * with the pids and uids the sandbox sees.  Its processes are those in its
 * pid namespace (that of airlock-init), found by comparing each process's
 * /proc/PID/ns/pid with it: no process in the sandbox runs or is asked
 * anything, so a sandbox that lies about itself cannot hide from this.
 */
#include "sandbox.h"

#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cleanup.h"
#include "json.h"
#include "util.h"

/* The last number of a "Key:\t1\t2\t3" line of /proc/PID/status, or -1. */
static long status_field(const char *status, const char *key, bool last)
{
	const char *p = strstr(status, key);
	long v = -1;
	char *end;

	if (!p || (p != status && p[-1] != '\n'))
		return -1;
	p += strlen(key);
	for (;;) {
		long n = strtol(p, &end, 10);
		if (end == p)
			break;
		v = n;
		if (!last)
			break;
		p = end;
	}
	return v;
}

/* Map a host id to the sandbox's through an id_map's "inside outside count" lines; -1: unmapped. */
static long map_in(const char *map, long host)
{
	for (const char *line = map; line && *line;) {
		unsigned long in, out, count;
		if (sscanf(line, "%lu %lu %lu", &in, &out, &count) == 3 && host >= (long)out &&
		    (unsigned long)host < out + count)
			return (long)(in + ((unsigned long)host - out));
		line = strchr(line, '\n');
		line = line ? line + 1 : NULL;
	}
	return -1;
}

/* The command line of host pid (its arguments by spaces), or "[comm]" for none. */
static cJSON *command_json(const char *dir, const char *comm)
{
	_cleanup_free_ char *cmdline = NULL, *path = NULL;
	size_t len = 0;
	char buf[64];

	if (asprintf(&path, "%s/cmdline", dir) >= 0 &&
	    al_read_file(path, 4096, &cmdline, &len, NULL) >= 0 && len > 0) {
		for (size_t i = 0; i + 1 < len; i++)
			if (cmdline[i] == '\0')
				cmdline[i] = ' ';
		cmdline[len - 1] = '\0';
		return cJSON_CreateString(cmdline);
	}
	snprintf(buf, sizeof(buf), "[%s]", comm);
	return cJSON_CreateString(buf);
}

/* One process of the sandbox, or NULL when pid is not one (or is gone). */
static cJSON *process_json(pid_t pid, const char *ns, const char *uid_map)
{
	_cleanup_free_ char *status = NULL, *stat = NULL;
	char dir[32], path[64], link[64] = "";
	unsigned long long utime = 0, stime = 0;
	char state = '?', comm[32] = "";
	long rss_kib, host_uid;
	const char *p;
	cJSON *o;

	snprintf(dir, sizeof(dir), "/proc/%d", (int)pid);
	snprintf(path, sizeof(path), "%s/ns/pid", dir);
	if (readlink(path, link, sizeof(link) - 1) < 0 || strcmp(link, ns))
		return NULL;
	snprintf(path, sizeof(path), "%s/status", dir);
	if (al_read_file(path, 65536, &status, NULL, NULL) < 0)
		return NULL;
	snprintf(path, sizeof(path), "%s/stat", dir);
	if (al_read_file(path, 4096, &stat, NULL, NULL) < 0)
		return NULL;
	/* "pid (comm) S ppid ... utime stime": comm may hold anything, even ") ". */
	p = strrchr(stat, ')');
	if (p && sscanf(p + 2, "%c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu", &state,
	                &utime, &stime) < 3)
		return NULL;
	sscanf(status, "Name:\t%31[^\n]", comm);
	rss_kib = status_field(status, "VmRSS:", false);
	host_uid = status_field(status, "Uid:", false);
	o = cJSON_CreateObject();
	if (!o)
		return NULL;
	cJSON_AddNumberToObject(o, "pid", (double)status_field(status, "NSpid:", true));
	cJSON_AddNumberToObject(o, "host_pid", pid);
	cJSON_AddNumberToObject(o, "uid", (double)map_in(uid_map, host_uid));
	cJSON_AddStringToObject(o, "state", (char[2]){state, 0});
	cJSON_AddNumberToObject(o, "rss_bytes", rss_kib > 0 ? (double)rss_kib * 1024 : 0);
	cJSON_AddNumberToObject(o, "cpu_seconds",
	                        (double)(utime + stime) / (double)sysconf(_SC_CLK_TCK));
	cJSON_AddItemToObject(o, "command", command_json(dir, comm));
	/* The parent as the sandbox sees it; 0 for the one whose parent is outside. */
	cJSON_AddNumberToObject(o, "host_ppid", (double)status_field(status, "PPid:", false));
	return o;
}

static int by_pid(const void *a, const void *b)
{
	const cJSON *x = *(cJSON *const *)a, *y = *(cJSON *const *)b;

	return (int)(al_json_num(x, "pid", 0) - al_json_num(y, "pid", 0));
}

int sandbox_processes_json(const struct sandbox *sb, cJSON **out, struct al_error *err)
{
	_cleanup_cjson_ cJSON *o = cJSON_CreateObject();
	_cleanup_free_ char *uid_map = NULL;
	_cleanup_closedir_ DIR *proc = opendir("/proc");
	_cleanup_free_ cJSON **items = NULL;
	size_t n = 0, cap = 0;
	char path[64], ns[64] = "";
	cJSON *list, *it;
	struct dirent *de;

	if (!o || !(list = cJSON_AddArrayToObject(o, "processes")))
		return al_error_set(err, ENOMEM, "out of memory");
	if (!proc)
		return al_error_errno(err, "/proc");
	snprintf(path, sizeof(path), "/proc/%d/ns/pid", (int)sb->init_pid);
	if (sb->init_pid <= 0 || readlink(path, ns, sizeof(ns) - 1) < 0)
		return al_error_set(err, ESRCH, "sandbox %s: not running", sb->id);
	snprintf(path, sizeof(path), "/proc/%d/uid_map", (int)sb->init_pid);
	if (al_read_file(path, 65536, &uid_map, NULL, err) < 0)
		return al_error_prefix(err, "sandbox %s", sb->id);
	while ((de = readdir(proc))) {
		char *end;
		long pid = strtol(de->d_name, &end, 10);
		if (*end || pid <= 0 || !(it = process_json((pid_t)pid, ns, uid_map)))
			continue;
		if (n == cap) {
			cJSON **more = realloc(items, (cap = cap ? cap * 2 : 32) * sizeof(*items));
			if (!more) {
				cJSON_Delete(it);
				while (n)
					cJSON_Delete(items[--n]);
				return al_error_set(err, ENOMEM, "out of memory");
			}
			items = more;
		}
		items[n++] = it;
	}
	if (n) /* qsort's array may not be NULL, even when empty */
		qsort(items, n, sizeof(*items), by_pid);
	for (size_t i = 0; i < n; i++) {
		/* The parent's pid inside: that of the listed process with its host pid. */
		double host_ppid = al_json_num(items[i], "host_ppid", 0), ppid = 0;
		for (size_t j = 0; j < n; j++)
			if (al_json_num(items[j], "host_pid", -1) == host_ppid)
				ppid = al_json_num(items[j], "pid", 0);
		cJSON_AddNumberToObject(items[i], "ppid", ppid);
	}
	for (size_t i = 0; i < n; i++) {
		cJSON_DeleteItemFromObjectCaseSensitive(items[i], "host_ppid");
		cJSON_AddItemToArray(list, items[i]);
	}
	*out = TAKE_PTR(o);
	return 0;
}
