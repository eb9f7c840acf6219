/* utf8.c - UTF-8 checks of the server's request and reply text (utf8proc decodes). */
#include "utf8.h"

#include <stdint.h>
#include <string.h>
#include <utf8proc.h>

size_t utf8_valid_prefix(const void *text, size_t n)
{
    const unsigned char *s = text;
    const uint64_t ones = 0x0101010101010101ULL, highs = 0x8080808080808080ULL;
    size_t i = 0;
    while (i < n) {
        /* eight bytes at a time while all are ASCII and none is NUL */
        for (uint64_t x; i + 8 <= n; i += 8) {
            memcpy(&x, s + i, 8);
            if ((x & highs) || ((x - ones) & ~x & highs))
                break;
        }
        if (i >= n)
            break;
        if (s[i] == 0)
            return i;
        if (s[i] < 0x80) {
            i++;
            continue;
        }
        utf8proc_int32_t cp;
        utf8proc_ssize_t len = utf8proc_iterate(s + i, (utf8proc_ssize_t)(n - i), &cp);
        if (len <= 0)
            return i;
        i += (size_t)len;
    }
    return n;
}

