/* vector_b64.c - float32 vectors to and from base64 text, on OpenSSL's EVP base64. */
#include "vector_b64.h"

#include <openssl/evp.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* Little-endian byte order of the float bits in place (no-op on little-endian hosts). */
static void to_little_endian(void *bytes, size_t n)
{
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
    uint32_t *w = bytes;
    for (size_t i = 0; i < n; i++)
        w[i] = __builtin_bswap32(w[i]);
#else
    (void)bytes, (void)n;
#endif
}

static int b64_alphabet(char c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
           c == '+' || c == '/';
}

char *vector_b64_encode(const float *v, size_t n)
{
    size_t len = n * sizeof *v;
    unsigned char *le = malloc(len ? len : 1);
    char *out = malloc((len + 2) / 3 * 4 + 1);
    if (!le || !out || len > INT32_MAX / 2) {
        free(le);
        free(out);
        return NULL;
    }
    memcpy(le, v, len);
    to_little_endian(le, n);
    EVP_EncodeBlock((unsigned char *)out, le, (int)len); /* NUL-terminates */
    free(le);
    return out;
}

int vector_b64_decode(const char *text, size_t len, float *out, size_t n)
{
    const size_t bytes = n * sizeof *out;
    /* canonical form only: 4 characters per 3 bytes, padded */
    if (len != (bytes + 2) / 3 * 4 || len > INT32_MAX / 2)
        return -1;
    size_t pad = len && text[len - 1] == '=' ? (len > 1 && text[len - 2] == '=' ? 2 : 1) : 0;
    if (pad != (3 - bytes % 3) % 3)
        return -1;
    /* EVP_DecodeBlock refuses any other character inside the text, but skips blanks and
     * line ends at the ends and takes '=' anywhere as zero bits: check the two ends, and
     * look for '=' with memchr (a loop testing each character was 3 % of a search's CPU) */
    if (len > pad && (!b64_alphabet(text[0]) || !b64_alphabet(text[len - pad - 1]) ||
                      memchr(text, '=', len - pad)))
        return -1;
    /* EVP_DecodeBlock writes the padding's zero bytes too: straight into out when there is
     * none (4n a multiple of 3, e.g. 384 dimensions), else through a buffer */
    unsigned char *buf = pad ? malloc(len / 4 * 3) : (unsigned char *)out;
    if (!buf)
        return -2;
    int got = EVP_DecodeBlock(buf, (const unsigned char *)text, (int)len);
    int rc = got < 0 || (size_t)got - pad != bytes ? -1 : 0;
    if (pad) {
        if (rc == 0)
            memcpy(out, buf, bytes);
        free(buf);
    }
    if (rc == 0)
        to_little_endian(out, n);
    return rc;
}
