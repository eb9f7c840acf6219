/* embed_hash.c - "hash" embedder: signed feature hashing of words, word bigrams and
 * character n-grams with sublinear term frequency. Deterministic, needs no model. */
#include "embedder.h"
#include "status.h"

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <utf8proc.h>
#include <xxhash.h>

#define HASH_DEFAULT_DIM 384
#define SEED_WORD 0x9e3779b97f4a7c15ULL
#define SEED_BIGRAM 0xc2b2ae3d27d4eb4fULL
#define SEED_CHAR 0x165667b19e3779f9ULL
#define W_WORD 1.0f
#define W_BIGRAM 0.6f
#define W_CHAR 0.35f

/* Open-addressing multiset of feature hashes. */
typedef struct feat_table {
    uint64_t *keys;
    float *counts;
    float *weights;
    size_t cap, used;
} feat_table;

static int feat_init(feat_table *t, size_t expect)
{
    size_t cap = 64;
    while (cap < expect * 2)
        cap <<= 1;
    t->keys = calloc(cap, sizeof *t->keys);
    t->counts = calloc(cap, sizeof *t->counts);
    t->weights = calloc(cap, sizeof *t->weights);
    t->cap = cap;
    t->used = 0;
    if (!t->keys || !t->counts || !t->weights)
        return rag_fail(RAG_ENOMEM, "hash embedder: out of memory");
    return RAG_OK;
}

static void feat_free(feat_table *t)
{
    free(t->keys);
    free(t->counts);
    free(t->weights);
}

/* Adds one occurrence; the table was sized for every feature so it never fills. */
static void feat_add(feat_table *t, uint64_t h, float w)
{
    if (h == 0)
        h = 1;
    size_t i = (size_t)h & (t->cap - 1);
    while (t->keys[i] && t->keys[i] != h)
        i = (i + 1) & (t->cap - 1);
    if (!t->keys[i]) {
        t->keys[i] = h;
        t->weights[i] = w;
        t->used++;
    }
    t->counts[i] += 1.0f;
}

/* Lowercased words of `text`: offsets into the casefolded buffer `*folded`. */
typedef struct word_span {
    size_t off, len;
} word_span;

static int split_words(const char *text, size_t len, utf8proc_uint8_t **folded,
                       word_span **words, size_t *nwords)
{
    *folded = NULL;
    *words = NULL;
    *nwords = 0;
    utf8proc_ssize_t flen = utf8proc_map((const utf8proc_uint8_t *)text, (utf8proc_ssize_t)len,
                                         folded, UTF8PROC_CASEFOLD | UTF8PROC_COMPOSE |
                                                      UTF8PROC_STRIPMARK | UTF8PROC_DECOMPOSE);
    if (flen < 0) {
        /* Invalid UTF-8 never reaches here through the store; fall back to raw bytes. */
        *folded = malloc(len + 1);
        if (!*folded)
            return rag_fail(RAG_ENOMEM, "hash embedder: out of memory");
        memcpy(*folded, text, len);
        (*folded)[len] = 0;
        flen = (utf8proc_ssize_t)len;
    }
    size_t cap = 16, n = 0;
    word_span *w = malloc(cap * sizeof *w);
    if (!w)
        return rag_fail(RAG_ENOMEM, "hash embedder: out of memory");
    utf8proc_ssize_t i = 0, start = -1;
    while (i <= flen) {
        utf8proc_int32_t cp = 0;
        utf8proc_ssize_t step = 1;
        int is_word = 0;
        if (i < flen) {
            step = utf8proc_iterate(*folded + i, flen - i, &cp);
            if (step <= 0) {
                step = 1;
                cp = 0;
            }
            utf8proc_category_t c = utf8proc_category(cp);
            is_word = (c >= UTF8PROC_CATEGORY_LU && c <= UTF8PROC_CATEGORY_LO) ||
                      (c >= UTF8PROC_CATEGORY_ND && c <= UTF8PROC_CATEGORY_NO);
        }
        if (is_word && start < 0)
            start = i;
        if (!is_word && start >= 0) {
            if (n == cap) {
                word_span *nw = realloc(w, 2 * cap * sizeof *w);
                if (!nw) {
                    free(w);
                    return rag_fail(RAG_ENOMEM, "hash embedder: out of memory");
                }
                w = nw;
                cap *= 2;
            }
            w[n].off = (size_t)start;
            w[n].len = (size_t)(i - start);
            n++;
            start = -1;
        }
        i += step;
    }
    *words = w;
    *nwords = n;
    return RAG_OK;
}

/* Embeds one text into v[dim] (zeroed here). */
static int hash_embed_one(const char *text, size_t len, int dim, float *v)
{
    utf8proc_uint8_t *folded = NULL;
    word_span *w = NULL;
    size_t nw = 0;
    feat_table t = {0};
    int rc = split_words(text, len, &folded, &w, &nw);
    memset(v, 0, (size_t)dim * sizeof *v);
    if (rc != RAG_OK)
        goto cleanup;
    size_t nchar = 0;
    for (size_t i = 0; i < nw; i++)
        nchar += w[i].len + 2;
    rc = feat_init(&t, nw * 2 + nchar * 3 + 1);
    if (rc != RAG_OK)
        goto cleanup;
    char gram[64];
    for (size_t i = 0; i < nw; i++) {
        const char *word = (const char *)folded + w[i].off;
        feat_add(&t, XXH3_64bits_withSeed(word, w[i].len, SEED_WORD), W_WORD);
        if (i + 1 < nw) {
            uint64_t first = XXH3_64bits_withSeed(word, w[i].len, SEED_BIGRAM);
            feat_add(&t, XXH3_64bits_withSeed((const char *)folded + w[i + 1].off,
                                              w[i + 1].len, first),
                     W_BIGRAM);
        }
        /* Character 3..5-grams (bytes) of "<word>", for words up to 48 bytes. */
        if (w[i].len > 48)
            continue;
        size_t gl = w[i].len + 2;
        gram[0] = '<';
        memcpy(gram + 1, word, w[i].len);
        gram[gl - 1] = '>';
        for (size_t n = 3; n <= 5; n++)
            for (size_t s = 0; s + n <= gl; s++)
                feat_add(&t, XXH3_64bits_withSeed(gram + s, n, SEED_CHAR + n), W_CHAR);
    }
    for (size_t i = 0; i < t.cap; i++) {
        if (!t.keys[i])
            continue;
        uint64_t h = t.keys[i];
        int bucket = (int)((h >> 1) % (uint64_t)dim);
        float sign = (h & 1) ? 1.0f : -1.0f;
        v[bucket] += sign * t.weights[i] * (1.0f + logf(t.counts[i]));
    }
cleanup:
    feat_free(&t);
    free(w);
    free(folded);
    return rc;
}

static int hash_embed(rag_embedder *e, const char *const *texts, const size_t *lens, size_t n,
                      int is_query, float *out)
{
    for (size_t i = 0; i < n; i++) {
        int rc = hash_embed_one(texts[i], lens[i], e->dim, out + i * (size_t)e->dim);
        if (rc != RAG_OK)
            return rc;
    }
    return RAG_OK;
}

static const rag_embedder_ops hash_ops = {hash_embed, NULL, NULL};

int rag_embedder_hash_create(int dim, rag_embedder **out)
{
    *out = NULL;
    if (dim == 0)
        dim = HASH_DEFAULT_DIM;
    if (dim < 8 || dim > 65536)
        return rag_fail(RAG_EINVAL, "hash embedder dimension %d outside 8..65536", dim);
    rag_embedder *e = rag_calloc(1, sizeof *e);
    if (!e)
        return RAG_ENOMEM;
    e->ops = &hash_ops;
    e->dim = dim;
    if (dim == HASH_DEFAULT_DIM)
        strcpy(e->name, "hash");
    else
        snprintf(e->name, sizeof e->name, "hash-%d", dim);
    *out = e;
    return RAG_OK;
}
