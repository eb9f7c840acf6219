/* target.c - request targets checked and percent-decoded before routing (see target.h). */
#include "target.h"

#include "ragcore.h"
#include "utf8.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int hexval(unsigned char c)
{
    return c >= '0' && c <= '9'   ? c - '0'
           : c >= 'a' && c <= 'f' ? c - 'a' + 10
           : c >= 'A' && c <= 'F' ? c - 'A' + 10
                                  : -1;
}

/* Offset in raw[start..end) of the byte that decodes to decoded byte `k`. */
static size_t raw_offset(const char *raw, size_t start, size_t end, size_t k)
{
    size_t i = start;
    for (size_t n = 0; i < end && n < k; n++)
        i += raw[i] == '%' ? 3 : 1;
    return i;
}

/* Decodes raw[start..end) (`what`: "path" or "query") into out, which has room for
 * end - start bytes, and sets *outlen. RAG_OK or RAG_EINVAL with a message in err. */
static int decode_part(const char *raw, size_t start, size_t end, const char *what, char *out,
                       size_t *outlen, char *err, size_t errlen)
{
    size_t n = 0;
    for (size_t i = start; i < end;) {
        unsigned char c = (unsigned char)raw[i];
        if (c == '%') {
            int hi = i + 2 < end ? hexval((unsigned char)raw[i + 1]) : -1;
            int lo = hi >= 0 ? hexval((unsigned char)raw[i + 2]) : -1;
            if (lo < 0) {
                snprintf(err, errlen, "the %s has a '%%' not followed by two hex digits at byte %zu",
                         what, i);
                return RAG_EINVAL;
            }
            c = (unsigned char)(hi << 4 | lo);
            if (c < 0x20 || c == 0x7F) {
                snprintf(err, errlen, "the %s has an escape of the control byte 0x%02X at byte %zu",
                         what, c, i);
                return RAG_EINVAL;
            }
            out[n++] = (char)c;
            i += 3;
            continue;
        }
        if (c < 0x21 || c == 0x7F) {
            snprintf(err, errlen, "the %s has the raw byte 0x%02X (a control byte or space) at byte %zu",
                     what, c, i);
            return RAG_EINVAL;
        }
        out[n++] = (char)c;
        i++;
    }
    size_t bad = utf8_valid_prefix(out, n);
    if (bad < n) {
        snprintf(err, errlen, "the %s is not valid UTF-8 once decoded (at byte %zu)", what,
                 raw_offset(raw, start, end, bad));
        return RAG_EINVAL;
    }
    *outlen = n;
    return RAG_OK;
}

int target_decode(const char *raw, size_t len, char **path, char *err, size_t errlen)
{
    const char *q = memchr(raw, '?', len);
    size_t plen = q ? (size_t)(q - raw) : len, n = 0, qn = 0;
    char *out = malloc(len + 1);
    int rc;
    *path = NULL;
    if (!out) {
        snprintf(err, errlen, "out of memory");
        return RAG_ENOMEM;
    }
    if (len == 0) {
        snprintf(err, errlen, "the request target is empty");
        rc = RAG_EINVAL;
        goto cleanup;
    }
    if ((rc = decode_part(raw, 0, plen, "path", out, &n, err, errlen)) != RAG_OK)
        goto cleanup;
    /* the query is only checked: libmicrohttpd splits and decodes its arguments */
    if (q && (rc = decode_part(raw, plen + 1, len, "query", out + n, &qn, err, errlen)) != RAG_OK)
        goto cleanup;
    out[n] = '\0';
    *path = out;
    out = NULL;
cleanup:
    free(out);
    return rc;
}

char *target_escape(const char *raw, size_t len)
{
    static const char D[] = "0123456789ABCDEF";
    char *out = malloc(len * 4 + 1), *p = out;
    if (!out)
        return NULL;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)raw[i];
        if (c >= 0x20 && c < 0x7F && c != '\\') {
            *p++ = (char)c;
        } else {
            *p++ = '\\';
            *p++ = 'x';
            *p++ = D[c >> 4];
            *p++ = D[c & 15];
        }
    }
    *p = '\0';
    return out;
}
