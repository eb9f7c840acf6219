/* text.c - UTF-8 validation and normalised-text hashing. */
#include "text.h"

#include <stdlib.h>
#include <string.h>
#include <utf8proc.h>
#include <xxhash.h>

int rag_utf8_valid(const char *text, size_t len, size_t *bad_offset, size_t *line)
{
    size_t i = 0, ln = 1;
    const unsigned char *s = (const unsigned char *)text;
    const uint64_t ones = 0x0101010101010101ULL, highs = 0x8080808080808080ULL;
    while (i < len) {
        /* eight bytes at a time while all are ASCII and none is NUL */
        for (uint64_t w; i + 8 <= len; i += 8) {
            memcpy(&w, s + i, 8);
            if ((w & highs) || ((w - ones) & ~w & highs))
                break;
        }
        if (i >= len)
            break;
        if (s[i] < 0x80) {
            if (s[i] == 0)
                goto bad;
            i++;
            continue;
        }
        utf8proc_int32_t cp;
        utf8proc_ssize_t n = utf8proc_iterate(s + i, (utf8proc_ssize_t)(len - i), &cp);
        if (n <= 0)
            goto bad;
        i += (size_t)n;
    }
    return 1;
bad:
    if (bad_offset)
        *bad_offset = i;
    if (line) {
        for (const unsigned char *p = s; (p = memchr(p, '\n', (size_t)(s + i - p))); p++)
            ln++;
        *line = ln;
    }
    return 0;
}

uint64_t rag_hash_bytes(const void *data, size_t len)
{
    return XXH3_64bits(data, len);
}

uint64_t rag_hash_bytes2(const void *data, size_t len)
{
    return XXH3_64bits_withSeed(data, len, 0x5bd1e9955bd1e995ULL);
}

/* 1 when text[0, len) is all ASCII (case folding is then A-Z to a-z, composition nothing). */
static int all_ascii(const char *text, size_t len)
{
    unsigned char any = 0;
    for (size_t i = 0; i < len; i++)
        any |= (unsigned char)text[i];
    return any < 0x80;
}

uint64_t rag_text_norm_hash(const char *text, size_t len)
{
    utf8proc_uint8_t *folded = NULL;
    int ascii = all_ascii(text, len);
    utf8proc_ssize_t n = ascii ? -1
                               : utf8proc_map((const utf8proc_uint8_t *)text,
                                              (utf8proc_ssize_t)len, &folded,
                                              UTF8PROC_CASEFOLD | UTF8PROC_COMPOSE);
    const unsigned char *src = n >= 0 ? folded : (const unsigned char *)text;
    size_t sl = n >= 0 ? (size_t)n : len;
    unsigned char *out = malloc(sl + 1);
    if (!out) {
        free(folded);
        return XXH3_64bits(text, len);
    }
    size_t o = 0;
    int space = 0;
    for (size_t i = 0; i < sl; i++) {
        unsigned char c = src[i];
        if (c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v') {
            space = 1;
            continue;
        }
        if (space && o > 0)
            out[o++] = ' ';
        space = 0;
        out[o++] = ascii && c >= 'A' && c <= 'Z' ? (unsigned char)(c + 32) : c;
    }
    uint64_t h = XXH3_64bits(out, o);
    free(out);
    free(folded);
    return h;
}

int rag_cp_is_alnum(int32_t cp)
{
    switch (utf8proc_category(cp)) {
    case UTF8PROC_CATEGORY_LU: case UTF8PROC_CATEGORY_LL: case UTF8PROC_CATEGORY_LT:
    case UTF8PROC_CATEGORY_LM: case UTF8PROC_CATEGORY_LO: case UTF8PROC_CATEGORY_ND:
    case UTF8PROC_CATEGORY_NL: case UTF8PROC_CATEGORY_NO:
        return 1;
    default:
        return 0;
    }
}
