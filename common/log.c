/* SPDX-License-Identifier: Apache-2.0 */
#include "log.h"

#include "json.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

static enum al_log_level current_level = AL_LOG_INFO;
static const char *ident = "airlock";
static bool json_lines;

void al_log_set_level(enum al_log_level level)
{
	current_level = level;
}

void al_log_set_ident(const char *name)
{
	ident = name;
}

void al_log_set_json(bool on)
{
	json_lines = on;
}

static void log_json(const char *ts, const char *level, const char *msg)
{
	_cleanup_cjson_ cJSON *j = cJSON_CreateObject();
	char *text;

	cJSON_AddStringToObject(j, "ts", ts);
	cJSON_AddStringToObject(j, "level", level);
	cJSON_AddStringToObject(j, "ident", ident);
	cJSON_AddStringToObject(j, "msg", msg);
	text = cJSON_PrintUnformatted(j);
	if (text)
		fprintf(stderr, "%s\n", text);
	cJSON_free(text);
}

void al_log(enum al_log_level level, const char *fmt, ...)
{
	static const char *const names[] = {"error", "warn", "info", "debug"};
	char line[2048];
	struct timespec ts;
	struct tm tm;
	va_list ap;
	int n;

	if (level > current_level)
		return;
	clock_gettime(CLOCK_REALTIME, &ts);
	gmtime_r(&ts.tv_sec, &tm);
	n = snprintf(line, sizeof(line),
	             "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ %s %s: ", tm.tm_year + 1900,
	             tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
	             ts.tv_nsec / 1000000, ident, names[level]);
	if (n < 0 || (size_t)n >= sizeof(line))
		return;
	va_start(ap, fmt);
	vsnprintf(line + n, sizeof(line) - (size_t)n, fmt, ap);
	va_end(ap);
	if (json_lines) {
		char ts_text[32];
		snprintf(ts_text, sizeof(ts_text), "%.24s", line);
		log_json(ts_text, names[level], line + n);
		return;
	}
	/* One write per line so concurrent threads do not interleave. */
	fprintf(stderr, "%s\n", line);
}
