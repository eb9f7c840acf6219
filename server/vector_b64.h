/* vector_b64.h - float32 vectors as base64 text (OpenAI's encoding_format "base64"). */
#ifndef RAGCORE_SERVER_VECTOR_B64_H
#define RAGCORE_SERVER_VECTOR_B64_H

#include <stddef.h>

/* The base64 of the n little-endian float32 values of v, NUL-terminated and owned by the
 * caller (free()); NULL when out of memory. */
char *vector_b64_encode(const float *v, size_t n);

/* Decodes text[0..len), base64 of exactly n little-endian float32 values, into out[n].
 * Returns 0; -1 when the text is not base64 of exactly 4n bytes (padding included, no
 * whitespace; out may then hold garbage); -2 when out of memory. The values themselves
 * are not checked. */
int vector_b64_decode(const char *text, size_t len, float *out, size_t n);

#endif
