/* SPDX-License-Identifier: Apache-2.0 */
#include "log.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include <cjson/cJSON.h>

static enum al_log_level current_level = AL_LOG_INFO;
static const char *ident = "airlock";
static bool json_format;

void al_log_set_json(bool json)
{
	json_format = json;
}

bool al_log_is_json(void)
{
	return json_format;
}

void al_log_set_level(enum al_log_level level)
{
	current_level = level;
}

void al_log_set_ident(const char *name)
{
	ident = name;
}

static const char *const level_names[] = {"error", "warn", "info", "debug"};

static void emit(enum al_log_level level, const struct al_log_field *fields, size_t n,
                 const char *fmt, va_list ap)
{
	char line[2048], stamp[32];
	struct timespec ts;
	struct tm tm;
	int used;

	clock_gettime(CLOCK_REALTIME, &ts);
	gmtime_r(&ts.tv_sec, &tm);
	snprintf(stamp, sizeof(stamp), "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ", tm.tm_year + 1900,
	         tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, ts.tv_nsec / 1000000);
	if (json_format) {
		cJSON *o = cJSON_CreateObject();
		char *text;

		vsnprintf(line, sizeof(line), fmt, ap);
		cJSON_AddStringToObject(o, "time", stamp);
		cJSON_AddStringToObject(o, "level", level_names[level]);
		cJSON_AddStringToObject(o, "ident", ident);
		cJSON_AddStringToObject(o, "msg", line);
		for (size_t i = 0; i < n; i++)
			if (fields[i].value)
				cJSON_AddStringToObject(o, fields[i].key, fields[i].value);
		text = cJSON_PrintUnformatted(o);
		cJSON_Delete(o);
		if (text)
			fprintf(stderr, "%s\n", text);
		cJSON_free(text);
		return;
	}
	used = snprintf(line, sizeof(line), "%s %s %s: ", stamp, ident, level_names[level]);
	if (used < 0 || (size_t)used >= sizeof(line))
		return;
	vsnprintf(line + used, sizeof(line) - (size_t)used, fmt, ap);
	for (size_t i = 0; i < n; i++) {
		size_t len = strlen(line);
		if (fields[i].value && len < sizeof(line))
			snprintf(line + len, sizeof(line) - len, " %s=%s", fields[i].key,
			         fields[i].value);
	}
	/* One write per line so concurrent threads do not interleave. */
	fprintf(stderr, "%s\n", line);
}

void al_log_fields(enum al_log_level level, const struct al_log_field *fields, size_t n,
                   const char *fmt, ...)
{
	va_list ap;

	if (level > current_level)
		return;
	va_start(ap, fmt);
	emit(level, fields, n, fmt, ap);
	va_end(ap);
}

void al_log(enum al_log_level level, const char *fmt, ...)
{
	va_list ap;

	if (level > current_level)
		return;
	va_start(ap, fmt);
	emit(level, NULL, 0, fmt, ap);
	va_end(ap);
}
