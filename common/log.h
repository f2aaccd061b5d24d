/* SPDX-License-Identifier: Apache-2.0 */
#pragma once

enum al_log_level { AL_LOG_ERROR = 0, AL_LOG_WARN, AL_LOG_INFO, AL_LOG_DEBUG };

void al_log_set_level(enum al_log_level level);
void al_log_set_ident(const char *ident);
#include <stdbool.h>
#include <stddef.h>

/* One JSON object per line ({"time", "level", "ident", "msg", fields...})
 * instead of text, for log collectors (airlockd --log-format json). */
void al_log_set_json(bool json);
bool al_log_is_json(void);

/* A named value of a log line; a NULL value is left out. */
struct al_log_field {
	const char *key;
	const char *value;
};

/* A line with fields: JSON members in the JSON format, "key=value" after
 * the message in text. */
__attribute__((format(printf, 4, 5))) void al_log_fields(enum al_log_level level,
                                                         const struct al_log_field *fields,
                                                         size_t n, const char *fmt, ...);
__attribute__((format(printf, 2, 3))) void al_log(enum al_log_level level, const char *fmt, ...);

#define log_error(...) al_log(AL_LOG_ERROR, __VA_ARGS__)
#define log_warn(...) al_log(AL_LOG_WARN, __VA_ARGS__)
#define log_info(...) al_log(AL_LOG_INFO, __VA_ARGS__)
#define log_debug(...) al_log(AL_LOG_DEBUG, __VA_ARGS__)
