/* quality.c - chunk length/symbol filters and boilerplate line detection by line frequency. */
#include "quality.h"

#include "status.h"

#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <utf8proc.h>
#include <xxhash.h>

void rag_quality_config_init(rag_quality_config *cfg)
{
    cfg->min_chars = 20;
    cfg->max_chars = 0;
    cfg->max_symbol_ratio = 0.5;
    cfg->boilerplate_doc_frac = 0.5;
    cfg->boilerplate_min_docs = 3;
}

int rag_quality_config_check(const rag_quality_config *c)
{
    if (!c)
        return rag_fail(RAG_EINVAL, "quality: NULL config");
    if (c->min_chars < 0)
        return rag_fail(RAG_EINVAL, "quality: min_chars %d is negative", c->min_chars);
    if (c->max_chars < 0 || (c->max_chars && c->max_chars < c->min_chars))
        return rag_fail(RAG_EINVAL, "quality: max_chars %d must be 0 or >= min_chars %d",
                        c->max_chars, c->min_chars);
    if (!(c->max_symbol_ratio >= 0.0 && c->max_symbol_ratio <= 1.0))
        return rag_fail(RAG_EINVAL, "quality: max_symbol_ratio %g out of range [0, 1]",
                        c->max_symbol_ratio);
    if (!(c->boilerplate_doc_frac > 0.0 && c->boilerplate_doc_frac <= 1.0))
        return rag_fail(RAG_EINVAL, "quality: boilerplate_doc_frac %g out of range (0, 1]",
                        c->boilerplate_doc_frac);
    if (c->boilerplate_min_docs < 2)
        return rag_fail(RAG_EINVAL, "quality: boilerplate_min_docs %d must be >= 2",
                        c->boilerplate_min_docs);
    return RAG_OK;
}

const char *rag_quality_verdict_name(rag_quality_verdict v)
{
    static const char *const names[] = {"ok", "too_short", "too_long", "symbols"};
    return (unsigned)v < RAG_QUALITY_NVERDICTS ? names[v] : "unknown";
}

static int is_space_cp(utf8proc_int32_t cp)
{
    utf8proc_category_t c = utf8proc_category(cp);
    return cp == '\t' || cp == '\n' || cp == '\v' || cp == '\f' || cp == '\r' ||
           c == UTF8PROC_CATEGORY_ZS || c == UTF8PROC_CATEGORY_ZL || c == UTF8PROC_CATEGORY_ZP;
}

static int is_alnum_cp(utf8proc_int32_t cp)
{
    utf8proc_category_t c = utf8proc_category(cp);
    /* letters, combining marks (part of letters in many scripts) and numbers */
    return c >= UTF8PROC_CATEGORY_LU && c <= UTF8PROC_CATEGORY_NO;
}

rag_quality_verdict rag_quality_check(const rag_quality_config *cfg, const char *text,
                                      size_t len, rag_quality_stats *stats)
{
    rag_quality_config def;
    if (!cfg) {
        rag_quality_config_init(&def);
        cfg = &def;
    }
    size_t chars = 0, nonspace = 0, symbols = 0, pending_space = 0;
    const unsigned char *s = (const unsigned char *)(text ? text : "");
    for (size_t i = 0; i < len;) {
        utf8proc_int32_t cp;
        utf8proc_ssize_t n = utf8proc_iterate(s + i, (utf8proc_ssize_t)(len - i), &cp);
        if (n <= 0) { /* invalid byte: a symbol */
            n = 1;
            cp = -1;
        }
        i += (size_t)n;
        if (cp >= 0 && is_space_cp(cp)) {
            if (nonspace)
                pending_space++; /* inner whitespace counts, trailing does not */
            continue;
        }
        chars += pending_space + 1;
        pending_space = 0;
        nonspace++;
        if (cp < 0 || !is_alnum_cp(cp))
            symbols++;
    }
    rag_quality_verdict v = RAG_QUALITY_OK;
    if (cfg->min_chars > 0 && chars < (size_t)cfg->min_chars)
        v = RAG_QUALITY_TOO_SHORT;
    else if (cfg->max_chars > 0 && chars > (size_t)cfg->max_chars)
        v = RAG_QUALITY_TOO_LONG;
    else if (cfg->max_symbol_ratio < 1.0 && nonspace &&
             (double)symbols / (double)nonspace > cfg->max_symbol_ratio)
        v = RAG_QUALITY_SYMBOLS;
    if (stats) {
        stats->checked++;
        stats->verdicts[v]++;
    }
    return v;
}

/* ---- boilerplate lines ------------------------------------------------------------------ */

struct rag_boilerplate {
    uint64_t *keys;
    uint32_t *counts;  /* documents containing the line */
    uint32_t *last;    /* last document (1-based) that counted it */
    size_t cap, count; /* cap: power of two, load <= 1/2 */
    size_t docs;
};

/* Hash of a line after trimming, whitespace collapsing and ASCII case folding; returns 0
 * (meaning "ignore") for lines without a letter or digit. */
static uint64_t line_key(const char *s, size_t n)
{
    char buf[256] = {0};
    size_t o = 0;
    int space = 0, alnum = 0, emitted = 0;
    uint64_t h = 0; /* chained over 256-byte blocks of the normalised line */
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == ' ' || c == '\t' || c == '\r' || c == '\f' || c == '\v') {
            space = 1;
            continue;
        }
        if (space && emitted) {
            if (o == sizeof buf) {
                h = XXH3_64bits_withSeed(buf, o, h);
                o = 0;
            }
            buf[o++] = ' ';
        }
        space = 0;
        if ((c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c >= 0x80)
            alnum = 1;
        if (o == sizeof buf) {
            h = XXH3_64bits_withSeed(buf, o, h);
            o = 0;
        }
        buf[o++] = (char)(c >= 'A' && c <= 'Z' ? c + 32 : c);
        emitted = 1;
    }
    if (!alnum)
        return 0;
    h = XXH3_64bits_withSeed(buf, o, h);
    return h ? h : 1;
}

static size_t bp_slot(const rag_boilerplate *b, uint64_t key)
{
    size_t s = (size_t)((key * 0x9E3779B97F4A7C15ull) >> 20) & (b->cap - 1);
    while (b->keys[s] && b->keys[s] != key)
        s = (s + 1) & (b->cap - 1);
    return s;
}

static int bp_grow(rag_boilerplate *b)
{
    size_t ncap = b->cap ? b->cap * 2 : 1024;
    rag_boilerplate n = {rag_calloc(ncap, sizeof(uint64_t)), rag_calloc(ncap, sizeof(uint32_t)),
                         rag_calloc(ncap, sizeof(uint32_t)), ncap, b->count, b->docs};
    if (!n.keys || !n.counts || !n.last) {
        free(n.keys);
        free(n.counts);
        free(n.last);
        return RAG_ENOMEM;
    }
    for (size_t s = 0; s < b->cap; s++) {
        if (!b->keys[s])
            continue;
        size_t t = bp_slot(&n, b->keys[s]);
        n.keys[t] = b->keys[s];
        n.counts[t] = b->counts[s];
        n.last[t] = b->last[s];
    }
    free(b->keys);
    free(b->counts);
    free(b->last);
    *b = n;
    return RAG_OK;
}

int rag_boilerplate_create(rag_boilerplate **out)
{
    if (!out)
        return rag_fail(RAG_EINVAL, "boilerplate: NULL output");
    *out = rag_calloc(1, sizeof **out);
    if (!*out)
        return RAG_ENOMEM;
    if (bp_grow(*out) != RAG_OK) {
        free(*out);
        *out = NULL;
        return RAG_ENOMEM;
    }
    return RAG_OK;
}

void rag_boilerplate_free(rag_boilerplate *b)
{
    if (!b)
        return;
    free(b->keys);
    free(b->counts);
    free(b->last);
    free(b);
}

size_t rag_boilerplate_docs(const rag_boilerplate *b)
{
    return b ? b->docs : 0;
}

int rag_boilerplate_add(rag_boilerplate *b, const char *text, size_t len)
{
    if (!b || (!text && len))
        return rag_fail(RAG_EINVAL, "boilerplate: NULL argument");
    if (b->docs >= UINT32_MAX - 1)
        return rag_fail(RAG_EINVAL, "boilerplate: too many documents");
    uint32_t doc = (uint32_t)b->docs + 1;
    for (size_t i = 0; i < len;) {
        const char *nl = memchr(text + i, '\n', len - i);
        size_t e = nl ? (size_t)(nl - text) : len;
        uint64_t key = line_key(text + i, e - i);
        i = e + 1;
        if (!key)
            continue;
        if ((b->count + 1) * 2 > b->cap && bp_grow(b) != RAG_OK)
            return RAG_ENOMEM; /* counts of this document stay partial */
        size_t s = bp_slot(b, key);
        if (!b->keys[s]) {
            b->keys[s] = key;
            b->count++;
        }
        if (b->last[s] != doc) {
            b->last[s] = doc;
            b->counts[s]++;
        }
    }
    b->docs++;
    return RAG_OK;
}

int rag_boilerplate_strip(const rag_boilerplate *b, const rag_quality_config *cfg,
                          const char *text, size_t len, char **out, size_t *out_len,
                          rag_quality_stats *stats)
{
    if (!b || !out || !out_len || (!text && len))
        return rag_fail(RAG_EINVAL, "boilerplate strip: NULL argument");
    rag_quality_config def;
    if (!cfg) {
        rag_quality_config_init(&def);
        cfg = &def;
    }
    *out = NULL;
    *out_len = 0;
    double need = ceil(cfg->boilerplate_doc_frac * (double)b->docs);
    if (need < cfg->boilerplate_min_docs)
        need = cfg->boilerplate_min_docs;
    char *o = rag_malloc(len + 1);
    if (!o)
        return RAG_ENOMEM;
    size_t n = 0, lines = 0, bytes = 0;
    for (size_t i = 0; i < len;) {
        const char *nl = memchr(text + i, '\n', len - i);
        size_t e = nl ? (size_t)(nl - text) + 1 : len; /* with its newline */
        uint64_t key = line_key(text + i, (nl ? e - 1 : e) - i);
        int boiler = 0;
        if (key) {
            size_t s = bp_slot(b, key);
            boiler = b->keys[s] == key && (double)b->counts[s] >= need;
        }
        if (boiler) {
            lines++;
            bytes += e - i;
        } else {
            memcpy(o + n, text + i, e - i);
            n += e - i;
        }
        i = e;
    }
    o[n] = '\0';
    *out = o;
    *out_len = n;
    if (stats) {
        stats->boilerplate_lines += lines;
        stats->boilerplate_bytes += bytes;
    }
    return RAG_OK;
}
