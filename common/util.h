/* SPDX-License-Identifier: Apache-2.0 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "error.h"

#define AL_ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))

/* Read a whole file (at most max bytes; -EFBIG beyond).  *out is NUL-terminated. */
int al_read_file(const char *path, size_t max, char **out, size_t *len, struct al_error *err);

/* A process's state letter from /proc/PID/stat ('?' if it is gone). */
char al_proc_state(pid_t pid);
int al_read_fd(int fd, size_t max, char **out, size_t *len, struct al_error *err);

/* Write data to path atomically: temp file in the same directory, fsync, rename. */
int al_write_file_atomic(const char *path, const void *data, size_t len, mode_t mode,
                         struct al_error *err);

/* The same without the fsync: readers never see half a file, but after a
 * crash of the machine the file may be empty.  For state that does not
 * outlive the boot anyway (a running sandbox's files), where an fsync per
 * sandbox start buys nothing. */
int al_write_file_replace(const char *path, const void *data, size_t len, mode_t mode,
                          struct al_error *err);

/* Write a short string to an existing file (cgroup and /proc knobs). */
int al_write_string(const char *path, const char *value, struct al_error *err);

/* mkdir -p; existing directories are fine. */
int al_mkdir_p(const char *path, mode_t mode, struct al_error *err);

/* rm -rf that never crosses into another mount (guards against a sandbox's mounts). */
int al_rm_rf(const char *path, struct al_error *err);

/* al_rm_rf() of the entry name below dirfd; never follows symlinks, never crosses mounts. */
int al_rm_rf_at(int dirfd, const char *name, struct al_error *err);

/* Parse "64M", "1G", "512k", "1048576" (binary multiples).  -EINVAL on junk or overflow. */
int al_parse_size(const char *s, uint64_t *out, struct al_error *err);

/* Write all bytes, retrying on EINTR and short writes. */
int al_write_all(int fd, const void *buf, size_t len);

/* Lowercase hex sha256 of data into out[65]. */
void al_sha256_hex(const void *data, size_t len, char out[65]);

/* Sleep ms milliseconds, resumed across signals. */
void al_sleep_ms(unsigned ms);

/* The current UTC time as ISO 8601 into buf: "2026-12-06T23:55:14Z", or with
 * millis "2026-12-06T23:55:14.042Z" (which sorts finer as a string). */
void al_iso8601_now(char *buf, size_t len, bool millis);

/* Monotonic clock in milliseconds / nanoseconds. */
uint64_t al_now_ms(void);
uint64_t al_now_ns(void);

/* Growable byte buffer. */
struct al_buf {
	char *data;
	size_t len;
	size_t cap;
};
int al_buf_append(struct al_buf *b, const void *data, size_t len);
void al_buf_free(struct al_buf *b);
/* A buffer released when it goes out of scope. */
#define _cleanup_buf_ __attribute__((cleanup(al_buf_free)))

/* Standard base64 (with padding).  encode returns a NUL-terminated malloc'd string; decode
 * accepts padding and ignores whitespace, returning -EINVAL on anything else. */
char *al_base64_encode(const void *data, size_t len);
int al_base64_decode(const char *text, char **out, size_t *len, struct al_error *err);

/* A random lowercase hex id of n hex digits (n <= 32) into out[n + 1]. */
int al_random_hex(char *out, size_t n, struct al_error *err);

/* True when s is a valid sandbox id / name: [a-zA-Z0-9][a-zA-Z0-9_.-]{0,62}. */
bool al_valid_name(const char *s);
