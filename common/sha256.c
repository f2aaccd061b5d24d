/* SPDX-License-Identifier: Apache-2.0 */
/*
 * al_sha256_hex() lives in its own object file so that only the programs
 * that hash link libcrypto: airlock-init, exec'd for every sandbox, would
 * otherwise spend ~0.7 ms mapping and relocating it at each start.
 */
#include "util.h"

#include <openssl/sha.h>

void al_sha256_hex(const void *data, size_t len, char out[65])
{
	unsigned char md[SHA256_DIGEST_LENGTH];
	static const char hex[] = "0123456789abcdef";

	SHA256(data, len, md);
	for (size_t i = 0; i < SHA256_DIGEST_LENGTH; i++) {
		out[2 * i] = hex[md[i] >> 4];
		out[2 * i + 1] = hex[md[i] & 15];
	}
	out[64] = '\0';
}
