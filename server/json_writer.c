/* json_writer.c - JSON text written straight into a growing buffer, for hot responses. */
#include "json_writer.h"
#include "utf8.h"

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <utf8proc.h>

void jw_init(jw *w, size_t cap_hint)
{
    w->len = 0;
    w->cap = cap_hint < 64 ? 64 : cap_hint;
    w->buf = malloc(w->cap);
    w->oom = !w->buf;
}

/* Room for n more bytes (and a NUL); 0, or -1 after marking the writer failed. */
static int reserve(jw *w, size_t n)
{
    if (w->oom)
        return -1;
    if (w->len + n + 1 <= w->cap)
        return 0;
    size_t cap = w->cap;
    while (cap < w->len + n + 1)
        cap *= 2;
    char *b = realloc(w->buf, cap);
    if (!b) {
        w->oom = 1;
        return -1;
    }
    w->buf = b;
    w->cap = cap;
    return 0;
}

void jw_raw(jw *w, const char *s, size_t n)
{
    if (reserve(w, n) < 0)
        return;
    memcpy(w->buf + w->len, s, n);
    w->len += n;
}

/* Appends s[0..n), valid UTF-8, escaped. Bytes that need no escape are copied in runs. */
static void escape(jw *w, const unsigned char *s, size_t n)
{
    static const char HEX[] = "0123456789abcdef";
    const uint64_t ones = 0x0101010101010101ULL, highs = 0x8080808080808080ULL;
    size_t run = 0;
    for (size_t i = 0; i < n; i++) {
        /* skip eight bytes at a time while none is a control, '"' or '\\' (a byte is
         * below 0x20 or zero after the xor when the subtraction borrows into its top bit) */
        for (uint64_t x, q, b; i + 8 <= n; i += 8) {
            memcpy(&x, s + i, 8);
            q = x ^ (ones * '"');
            b = x ^ (ones * '\\');
            if ((((x - ones * 0x20) & ~x) | ((q - ones) & ~q) | ((b - ones) & ~b)) & highs)
                break;
        }
        if (i >= n)
            break;
        unsigned char c = s[i];
        if (c >= 0x20 && c != '"' && c != '\\')
            continue;
        jw_raw(w, (const char *)s + run, i - run);
        run = i + 1;
        char e[6] = {'\\', 0, '0', '0', 0, 0};
        size_t len = 2;
        switch (c) {
        case '"': e[1] = '"'; break;
        case '\\': e[1] = '\\'; break;
        case '\b': e[1] = 'b'; break;
        case '\f': e[1] = 'f'; break;
        case '\n': e[1] = 'n'; break;
        case '\r': e[1] = 'r'; break;
        case '\t': e[1] = 't'; break;
        default:
            e[1] = 'u';
            e[4] = HEX[c >> 4];
            e[5] = HEX[c & 15];
            len = 6;
        }
        jw_raw(w, e, len);
    }
    jw_raw(w, (const char *)s + run, n - run);
}

void jw_str(jw *w, const char *s, size_t n)
{
    if (!s) {
        jw_lit(w, "null");
        return;
    }
    jw_lit(w, "\"");
    size_t ok; /* invalid bytes: never in text the store accepted */
    while ((ok = utf8_valid_prefix((const unsigned char *)s, n)) < n) {
        escape(w, (const unsigned char *)s, ok);
        jw_lit(w, "?");
        s += ok + 1;
        n -= ok + 1;
    }
    escape(w, (const unsigned char *)s, n);
    jw_lit(w, "\"");
}

void jw_cstr(jw *w, const char *s)
{
    jw_str(w, s, s ? strlen(s) : 0);
}

void jw_int(jw *w, long long v)
{
    char b[24], *p = b + sizeof b; /* digits right to left: no printf machinery */
    unsigned long long u = v < 0 ? 0ULL - (unsigned long long)v : (unsigned long long)v;
    do
        *--p = (char)('0' + u % 10);
    while (u /= 10);
    if (v < 0)
        *--p = '-';
    jw_raw(w, p, (size_t)(b + sizeof b - p));
}

/* 10^0 .. 10^12 */
static const uint64_t POW10[13] = {1ULL, 10ULL, 100ULL, 1000ULL, 10000ULL, 100000ULL,
                                   1000000ULL, 10000000ULL, 100000000ULL, 1000000000ULL,
                                   10000000000ULL, 100000000000ULL, 1000000000000ULL};

/* Writes "%.9g" of v into b (at least 24 bytes) and returns its length, for 1e-4 <= |v| <
 * 1e9, where %g writes plain decimals; returns -1 for other values (the caller uses
 * snprintf). Exact, as glibc's: v = m * 2^p is scaled by a power of ten in 128-bit
 * integers and rounded half to even, so the nine digits are the correctly rounded ones
 * (a search response writes a few scores per hit, and printf's general machinery was 4 %
 * of a search's CPU). */
static int fmt_g9(double v, char *b)
{
    double a = fabs(v);
    if (!(a >= 1e-4 && a < 1e9))
        return -1;
    int ex;
    double f = frexp(a, &ex); /* a = f * 2^ex, 0.5 <= f < 1 */
    uint64_t m = (uint64_t)ldexp(f, 53);
    int shift = 53 - ex; /* a = m / 2^shift; 23 <= shift <= 66 in this range */
    int e = 0; /* decimal exponent: 10^e <= a < 10^(e+1), an estimate corrected below */
    if (a >= 1.0)
        while (e < 8 && a >= (double)POW10[e + 1])
            e++;
    else
        while (e > -4 && a < 1.0 / (double)POW10[-e])
            e--;
    uint64_t digits = 0;
    for (int tries = 0;; tries++) {
        if (e > 8 || e < -4 || tries == 3)
            return -1; /* %g would switch to an exponent */
        unsigned __int128 x = (unsigned __int128)m * POW10[8 - e];
        unsigned __int128 half = (unsigned __int128)1 << (shift - 1);
        unsigned __int128 rest = x & ((half << 1) - 1);
        digits = (uint64_t)(x >> shift);
        if (rest > half || (rest == half && (digits & 1)))
            digits++;
        if (digits >= POW10[9])
            e++; /* rounded up to ten digits, or e was an estimate too low */
        else if (digits < POW10[8])
            e--;
        else
            break;
    }
    char d[9];
    for (int i = 8; i >= 0; i--, digits /= 10)
        d[i] = (char)('0' + digits % 10);
    int nd = 9; /* significant digits without trailing zeros */
    while (nd > 1 && d[nd - 1] == '0')
        nd--;
    int n = 0;
    if (signbit(v))
        b[n++] = '-';
    if (e >= 0) {
        for (int i = 0; i <= e; i++)
            b[n++] = d[i];
        if (nd > e + 1) {
            b[n++] = '.';
            for (int i = e + 1; i < nd; i++)
                b[n++] = d[i];
        }
    } else {
        b[n++] = '0';
        b[n++] = '.';
        for (int i = -1; i > e; i--)
            b[n++] = '0';
        for (int i = 0; i < nd; i++)
            b[n++] = d[i];
    }
    b[n] = '\0';
    return n;
}

void jw_real(jw *w, double v)
{
    if (!isfinite(v)) {
        jw_lit(w, "null");
        return;
    }
    char b[40];
    int n = fmt_g9(v, b);
    if (n < 0)
        n = snprintf(b, sizeof b, "%.9g", v);
    if (!strpbrk(b, ".eE")) { /* as jansson writes a real: read back as a real */
        b[n++] = '.';
        b[n++] = '0';
    }
    jw_raw(w, b, (size_t)n);
}

void jw_bool(jw *w, int v)
{
    if (v)
        jw_lit(w, "true");
    else
        jw_lit(w, "false");
}

/* ,"key": */
static void member(jw *w, const char *key)
{
    jw_lit(w, ",\"");
    jw_raw(w, key, strlen(key));
    jw_lit(w, "\":");
}

void jw_field_int(jw *w, const char *key, long long v)
{
    member(w, key);
    jw_int(w, v);
}

void jw_field_real(jw *w, const char *key, double v)
{
    member(w, key);
    jw_real(w, v);
}

void jw_field_str(jw *w, const char *key, const char *s)
{
    member(w, key);
    jw_cstr(w, s);
}

void jw_field_raw(jw *w, const char *key, const char *json, size_t n)
{
    member(w, key);
    jw_raw(w, json, n);
}

char *jw_finish(jw *w, size_t *len)
{
    if (w->oom) {
        free(w->buf);
        w->buf = NULL;
        *len = 0;
        return NULL;
    }
    w->buf[w->len] = 0;
    *len = w->len;
    return w->buf;
}
