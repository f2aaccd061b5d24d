/* SPDX-License-Identifier: Apache-2.0 */
#pragma once

#include <stdbool.h>

enum al_log_level { AL_LOG_ERROR = 0, AL_LOG_WARN, AL_LOG_INFO, AL_LOG_DEBUG };

void al_log_set_level(enum al_log_level level);
void al_log_set_ident(const char *ident);
/* One JSON object a line ({"ts","level","ident","msg"}) for log collectors. */
void al_log_set_json(bool on);
__attribute__((format(printf, 2, 3))) void al_log(enum al_log_level level, const char *fmt, ...);

#define log_error(...) al_log(AL_LOG_ERROR, __VA_ARGS__)
#define log_warn(...) al_log(AL_LOG_WARN, __VA_ARGS__)
#define log_info(...) al_log(AL_LOG_INFO, __VA_ARGS__)
#define log_debug(...) al_log(AL_LOG_DEBUG, __VA_ARGS__)
