/* SPDX-License-Identifier: Apache-2.0 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include "util.h"
#include "cleanup.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <time.h>
#include <unistd.h>

int al_read_fd(int fd, size_t max, char **out, size_t *len, struct al_error *err)
{
	struct al_buf b = {0};
	char chunk[65536];

	for (;;) {
		ssize_t n = read(fd, chunk, sizeof(chunk));
		if (n < 0) {
			if (errno == EINTR)
				continue;
			al_buf_free(&b);
			return al_error_errno(err, "read");
		}
		if (n == 0)
			break;
		if (b.len + (size_t)n > max) {
			al_buf_free(&b);
			return al_error_set(err, EFBIG, "input larger than %zu bytes", max);
		}
		if (al_buf_append(&b, chunk, (size_t)n) < 0) {
			al_buf_free(&b);
			return al_error_set(err, ENOMEM, "out of memory");
		}
	}
	if (al_buf_append(&b, "", 1) < 0) {
		al_buf_free(&b);
		return al_error_set(err, ENOMEM, "out of memory");
	}
	*out = b.data;
	if (len)
		*len = b.len - 1;
	return 0;
}

int al_read_file(const char *path, size_t max, char **out, size_t *len, struct al_error *err)
{
	_cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC);
	int r;

	if (fd < 0)
		return al_error_errno(err, "open %s", path);
	r = al_read_fd(fd, max, out, len, err);
	if (r < 0)
		return al_error_prefix(err, "read %s", path);
	return 0;
}

char al_proc_state(pid_t pid)
{
	_cleanup_free_ char *text = NULL;
	char path[64];
	const char *paren;

	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	if (al_read_file(path, 4096, &text, NULL, NULL) < 0 || !(paren = strrchr(text, ')')) ||
	    paren[1] != ' ')
		return '?';
	return paren[2];
}

int al_write_all(int fd, const void *buf, size_t len)
{
	const char *p = buf;

	while (len > 0) {
		ssize_t n = write(fd, p, len);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

static int write_replace(const char *path, const void *data, size_t len, mode_t mode, bool sync,
                         struct al_error *err)
{
	_cleanup_free_ char *tmp = NULL;
	_cleanup_close_ int fd = -1;
	int r;

	if (asprintf(&tmp, "%s.tmp.%d", path, (int)getpid()) < 0)
		return al_error_set(err, ENOMEM, "out of memory");
	fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);
	if (fd < 0)
		return al_error_errno(err, "create %s", tmp);
	r = al_write_all(fd, data, len);
	if (r == 0 && sync && fsync(fd) < 0)
		r = -errno;
	if (r < 0) {
		errno = -r;
		r = al_error_errno(err, "write %s", tmp);
		unlink(tmp);
		return r;
	}
	if (rename(tmp, path) < 0) {
		r = al_error_errno(err, "rename %s to %s", tmp, path);
		unlink(tmp);
		return r;
	}
	return 0;
}

int al_write_file_atomic(const char *path, const void *data, size_t len, mode_t mode,
                         struct al_error *err)
{
	return write_replace(path, data, len, mode, true, err);
}

int al_write_file_replace(const char *path, const void *data, size_t len, mode_t mode,
                          struct al_error *err)
{
	return write_replace(path, data, len, mode, false, err);
}

int al_write_string(const char *path, const char *value, struct al_error *err)
{
	_cleanup_close_ int fd = open(path, O_WRONLY | O_CLOEXEC);
	size_t len = strlen(value);
	ssize_t n;

	if (fd < 0)
		return al_error_errno(err, "open %s", path);
	do
		n = write(fd, value, len);
	while (n < 0 && errno == EINTR);
	if (n < 0)
		return al_error_errno(err, "write '%s' to %s", value, path);
	if ((size_t)n != len)
		return al_error_set(err, EIO, "short write of '%s' to %s", value, path);
	return 0;
}

int al_mkdir_p(const char *path, mode_t mode, struct al_error *err)
{
	_cleanup_free_ char *copy = strdup(path);
	char *p;

	if (!copy)
		return al_error_set(err, ENOMEM, "out of memory");
	for (p = copy + 1; *p; p++) {
		if (*p != '/')
			continue;
		*p = '\0';
		if (mkdir(copy, mode) < 0 && errno != EEXIST)
			return al_error_errno(err, "mkdir %s", copy);
		*p = '/';
	}
	if (mkdir(copy, mode) < 0 && errno != EEXIST)
		return al_error_errno(err, "mkdir %s", copy);
	return 0;
}

static int rm_rf_at(int parent_fd, const char *name, dev_t dev, struct al_error *err)
{
	struct stat st;

	if (fstatat(parent_fd, name, &st, AT_SYMLINK_NOFOLLOW) < 0) {
		if (errno == ENOENT)
			return 0;
		return al_error_errno(err, "stat %s", name);
	}
	if (S_ISDIR(st.st_mode)) {
		_cleanup_closedir_ DIR *d = NULL;
		struct dirent *de;
		int fd;

		/* A mount point below us means a sandbox's mount leaked: refuse. */
		if (st.st_dev != dev)
			return al_error_set(err, EBUSY,
			                    "refusing to remove %s: it is a mount point", name);
		fd = openat(parent_fd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		if (fd < 0)
			return al_error_errno(err, "open %s", name);
		d = fdopendir(fd);
		if (!d) {
			close(fd);
			return al_error_errno(err, "fdopendir %s", name);
		}
		while ((de = readdir(d))) {
			int r;
			if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
				continue;
			r = rm_rf_at(dirfd(d), de->d_name, dev, err);
			if (r < 0)
				return al_error_prefix(err, "%s", name);
		}
		if (unlinkat(parent_fd, name, AT_REMOVEDIR) < 0 && errno != ENOENT)
			return al_error_errno(err, "rmdir %s", name);
		return 0;
	}
	if (unlinkat(parent_fd, name, 0) < 0 && errno != ENOENT)
		return al_error_errno(err, "unlink %s", name);
	return 0;
}

int al_rm_rf(const char *path, struct al_error *err)
{
	struct stat st;

	if (lstat(path, &st) < 0) {
		if (errno == ENOENT)
			return 0;
		return al_error_errno(err, "stat %s", path);
	}
	return rm_rf_at(AT_FDCWD, path, st.st_dev, err);
}

int al_parse_size(const char *s, uint64_t *out, struct al_error *err)
{
	unsigned long long v;
	uint64_t mult = 1;
	char *end;

	if (!s || !*s || !isdigit((unsigned char)*s))
		return al_error_set(err, EINVAL, "invalid size '%s'", s ? s : "");
	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno)
		return al_error_set(err, EINVAL, "invalid size '%s'", s);
	switch (*end) {
	case '\0':
		break;
	case 'k':
	case 'K':
		mult = 1ULL << 10;
		end++;
		break;
	case 'm':
	case 'M':
		mult = 1ULL << 20;
		end++;
		break;
	case 'g':
	case 'G':
		mult = 1ULL << 30;
		end++;
		break;
	case 't':
	case 'T':
		mult = 1ULL << 40;
		end++;
		break;
	default:
		return al_error_set(err, EINVAL, "invalid size '%s': unknown suffix", s);
	}
	/* Accept an optional "B"/"iB" after the multiplier ("64MiB", "1GB"). */
	if (mult != 1 && (*end == 'i' || *end == 'I'))
		end++;
	if (mult != 1 && (*end == 'b' || *end == 'B'))
		end++;
	if (*end)
		return al_error_set(err, EINVAL, "invalid size '%s'", s);
	if (v > UINT64_MAX / mult)
		return al_error_set(err, ERANGE, "size '%s' too large", s);
	*out = (uint64_t)v * mult;
	return 0;
}

void al_sleep_ms(unsigned ms)
{
	struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000L};

	while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
		;
}

void al_iso8601_now(char *buf, size_t len, bool millis)
{
	struct timespec ts;
	struct tm tm;
	char base[32];

	clock_gettime(CLOCK_REALTIME, &ts);
	gmtime_r(&ts.tv_sec, &tm);
	strftime(base, sizeof(base), "%Y-%m-%dT%H:%M:%S", &tm);
	if (millis)
		snprintf(buf, len, "%s.%03ldZ", base, ts.tv_nsec / 1000000);
	else
		snprintf(buf, len, "%sZ", base);
}

uint64_t al_now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec;
}

uint64_t al_now_ms(void)
{
	return al_now_ns() / 1000000ULL;
}

int al_buf_append(struct al_buf *b, const void *data, size_t len)
{
	if (b->len + len + 1 > b->cap) {
		size_t cap = b->cap ? b->cap : 256;
		char *p;
		while (cap < b->len + len + 1)
			cap *= 2;
		p = realloc(b->data, cap);
		if (!p)
			return -ENOMEM;
		b->data = p;
		b->cap = cap;
	}
	if (len)
		memcpy(b->data + b->len, data, len);
	b->len += len;
	b->data[b->len] = '\0';
	return 0;
}

void al_buf_free(struct al_buf *b)
{
	free(b->data);
	b->data = NULL;
	b->len = b->cap = 0;
}

int al_random_hex(char *out, size_t n, struct al_error *err)
{
	static const char hex[] = "0123456789abcdef";
	unsigned char raw[16];

	if (n > 32)
		return al_error_set(err, EINVAL, "random id too long");
	if (getrandom(raw, sizeof(raw), 0) != (ssize_t)sizeof(raw))
		return al_error_errno(err, "getrandom");
	for (size_t i = 0; i < n; i++)
		out[i] = hex[(raw[i / 2] >> ((i & 1) ? 0 : 4)) & 15];
	out[n] = '\0';
	return 0;
}

bool al_valid_name(const char *s)
{
	size_t n = 0;

	if (!s || !isalnum((unsigned char)s[0]))
		return false;
	for (; s[n]; n++) {
		unsigned char c = (unsigned char)s[n];
		if (!isalnum(c) && c != '_' && c != '.' && c != '-')
			return false;
		if (n >= 63)
			return false;
	}
	return true;
}

int al_rm_rf_at(int dirfd, const char *name, struct al_error *err)
{
	struct stat st;

	if (fstatat(dirfd, name, &st, AT_SYMLINK_NOFOLLOW) < 0) {
		if (errno == ENOENT)
			return 0;
		return al_error_errno(err, "stat %s", name);
	}
	return rm_rf_at(dirfd, name, st.st_dev, err);
}

static const char b64_alphabet[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

char *al_base64_encode(const void *data, size_t len)
{
	const unsigned char *s = data;
	char *o = malloc(4 * ((len + 2) / 3) + 1), *w = o;

	if (!o)
		return NULL;
	for (size_t i = 0; i < len; i += 3) {
		uint32_t v = (uint32_t)s[i] << 16;
		if (i + 1 < len)
			v |= (uint32_t)s[i + 1] << 8;
		if (i + 2 < len)
			v |= (uint32_t)s[i + 2];
		*w++ = b64_alphabet[(v >> 18) & 63];
		*w++ = b64_alphabet[(v >> 12) & 63];
		*w++ = i + 1 < len ? b64_alphabet[(v >> 6) & 63] : '=';
		*w++ = i + 2 < len ? b64_alphabet[v & 63] : '=';
	}
	*w = '\0';
	return o;
}

int al_base64_decode(const char *text, char **out, size_t *len, struct al_error *err)
{
	size_t n = strlen(text), k = 0;
	unsigned char *o = malloc(n / 4 * 3 + 4);
	uint32_t acc = 0;
	int bits = 0, pad = 0;

	if (!o)
		return al_error_set(err, ENOMEM, "out of memory");
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)text[i];
		const char *p;
		if (isspace(c))
			continue;
		if (c == '=') {
			pad++;
			continue;
		}
		p = c ? strchr(b64_alphabet, c) : NULL;
		if (!p || pad) {
			free(o);
			return al_error_set(err, EINVAL, "invalid base64 at offset %zu", i);
		}
		acc = (acc << 6) | (uint32_t)(p - b64_alphabet);
		bits += 6;
		if (bits >= 8) {
			bits -= 8;
			o[k++] = (unsigned char)((acc >> bits) & 0xff);
		}
	}
	if (pad > 2 || bits >= 6) {
		free(o);
		return al_error_set(err, EINVAL, "invalid base64 length");
	}
	o[k] = 0;
	*out = (char *)o;
	*len = k;
	return 0;
}
