/* lexical.c - BM25 inverted index in the store's auxiliary tables, and its text analyzer.
 *
 * Layout (all integers big-endian, so each collection and each term is one key range):
 *   lex_postings  [u32 coll][term bytes][0x00][u64 chunk]  ->  [u32 tf][u32 chunk length]
 *                                          [u32 ordinal][u32 document length][u32 own tf]
 *   lex_chunks    [u32 coll][u64 chunk]                    ->  [u32 length][u32 distinct terms]
 *                                                              [u32 ordinal][u32 own length]
 *   lex_stats     [u32 coll]                               ->  [u64 chunks][u64 total length]
 *                                          [u64 documents][u64 documents' total length]
 *   lex_stats     [u32 coll][term bytes]                   ->  [u32 chunk frequency]
 *   lex_stats     [u32 coll][0xFF]                         ->  ""  (a rebuild is in progress)
 * A chunk's length is its number of indexed terms (stop words excluded); it is scored on
 * its document's title and its text. A document's chunks are indexed and removed together
 * (rag_lexical_add_doc): its key is its lowest chunk id and a chunk's ordinal is its id
 * minus that key. Each chunk also holds its "own" part of the document, which no other
 * chunk holds: the first chunk all of it (title included), every later one its text past
 * the end of the chunk before (chunks overlap). A term's own tf is its frequency there, so
 * the own tfs of a document's chunks add up to the term's frequency in the whole document
 * (title and text once), and their own lengths to the document's length. Each posting
 * carries its chunk's length, ordinal, document length and own tf, so that neither unit of
 * scoring ever looks a chunk up. A store written before documents were indexed holds the
 * first two fields only (8-byte postings and chunk entries, 16-byte statistics): such a
 * collection keeps that format, and chunk-level scoring, until a rebuild
 * (rag_lexical_rebuild) writes it again; the statistics' length tells the two apart.
 * Terms never contain 0x00 and
 * are at most RAG_LEX_MAX_TERM bytes, so the 0x00 separator makes term ranges disjoint;
 * they are UTF-8, which never holds 0xFF, so the rebuild mark is never a term's key.
 * An encrypted store writes each term's keyed hash instead (rag_crypt_term): 16 raw bytes
 * (which may hold 0x00 and 0xFF, but, all of one length, still give disjoint ranges and
 * keys longer than the mark), or 32 hex digits in a store created before raw hashes.
 *
 * Scoring is Robertson/Lucene BM25 with Lucene's idf:
 *   idf(t)      = ln(1 + (N - df + 0.5) / (df + 0.5))
 *   score(q, d) = sum over query terms t (with multiplicity) of
 *                 idf(t) * tf * (k1 + 1) / (tf + k1 * (1 - b + b * dl / avgdl))
 * By chunk, N is the number of indexed chunks, avgdl their mean length, df the number of
 * chunks holding t. By document, N is the number of indexed documents, avgdl their mean
 * length, tf the sum of t's own tfs over the document's chunks and df the number of
 * documents where that sum is not 0, counted from the postings while scoring (so no
 * per-term document count is stored). Either unit may take N, the total length and the
 * dfs from the caller instead (rag_bm25_stats, summed over the stores holding parts of a
 * collection; rag_lexical_query_stats counts a store's document dfs as scoring does). */
#include "lexical.h"
#include "crypt.h"

#include "bytes.h"
#include "status.h"

#include <libstemmer.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <utf8proc.h>

#define T_POSTINGS "lex_postings"
#define T_CHUNKS "lex_chunks"
#define T_STATS "lex_stats"

/* Raw tokens longer than this (bytes) are skipped, as are analysed terms longer than
 * RAG_LEX_MAX_TERM: such strings are identifiers, hashes or base64, not words. */
#define MAX_RAW_TOKEN 512

/* ---- analyzer ----------------------------------------------------------------------- */

struct rag_analyzer {
    char language[32];
    int stem;                  /* 0 for "none" */
    int stopwords;
    int english;               /* possessive stripping and accent folding */
    pthread_mutex_t lock;      /* guards the stemmer pool */
    struct sb_stemmer **pool;  /* idle stemmers (an sb_stemmer is not thread-safe) */
    size_t npool, cappool;
};

/* Lucene's English stop-word set (EnglishAnalyzer.ENGLISH_STOP_WORDS_SET), sorted. */
static const char *const english_stop[] = {
    "a",     "an",    "and",  "are",   "as",    "at",   "be",   "but",  "by",
    "for",   "if",    "in",   "into",  "is",    "it",   "no",   "not",  "of",
    "on",    "or",    "such", "that",  "the",   "their", "then", "there", "these",
    "they",  "this",  "to",   "was",   "will",  "with"};
#define N_ENGLISH_STOP (sizeof english_stop / sizeof english_stop[0])

static int is_stop(const char *term, size_t len)
{
    if (len > 5)
        return 0;
    size_t lo = 0, hi = N_ENGLISH_STOP;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        const char *w = english_stop[mid];
        size_t wl = strlen(w);
        int c = memcmp(term, w, len < wl ? len : wl);
        if (c == 0)
            c = len < wl ? -1 : len > wl;
        if (c == 0)
            return 1;
        if (c < 0)
            hi = mid;
        else
            lo = mid + 1;
    }
    return 0;
}

int rag_analyzer_create(const char *language, int stopwords, rag_analyzer **out)
{
    *out = NULL;
    if (!language || !*language)
        language = "english";
    if (strlen(language) >= sizeof(((rag_analyzer *)0)->language))
        return rag_fail(RAG_EINVAL, "analyzer language '%s' is too long", language);
    int stem = strcmp(language, "none") != 0;
    int english = strcmp(language, "english") == 0 || strcmp(language, "porter") == 0 ||
                  strcmp(language, "en") == 0;
    if (stopwords && !english && stem)
        return rag_fail(RAG_EINVAL,
                        "no stop-word list for language '%s' (only english has one)", language);
    struct sb_stemmer *first = NULL;
    if (stem) {
        first = sb_stemmer_new(language, "UTF_8");
        if (!first)
            return rag_fail(RAG_EINVAL,
                            "unknown stemming language '%s' (a Snowball algorithm name such as "
                            "english, french, german, or none)",
                            language);
    }
    rag_analyzer *an = rag_calloc(1, sizeof *an);
    if (!an) {
        sb_stemmer_delete(first);
        return RAG_ENOMEM;
    }
    snprintf(an->language, sizeof an->language, "%s", language);
    an->stem = stem;
    an->stopwords = stopwords != 0;
    an->english = english || !stem;
    pthread_mutex_init(&an->lock, NULL);
    if (first) {
        an->pool = rag_malloc(4 * sizeof *an->pool);
        if (!an->pool) {
            sb_stemmer_delete(first);
            pthread_mutex_destroy(&an->lock);
            free(an);
            return RAG_ENOMEM;
        }
        an->cappool = 4;
        an->pool[an->npool++] = first;
    }
    *out = an;
    return RAG_OK;
}

void rag_analyzer_free(rag_analyzer *an)
{
    if (!an)
        return;
    for (size_t i = 0; i < an->npool; i++)
        sb_stemmer_delete(an->pool[i]);
    free(an->pool);
    pthread_mutex_destroy(&an->lock);
    free(an);
}

/* Takes an idle stemmer from the pool or makes a new one; NULL when out of memory. */
static struct sb_stemmer *stemmer_acquire(rag_analyzer *an)
{
    struct sb_stemmer *s = NULL;
    pthread_mutex_lock(&an->lock);
    if (an->npool)
        s = an->pool[--an->npool];
    pthread_mutex_unlock(&an->lock);
    if (!s)
        s = sb_stemmer_new(an->language, "UTF_8");
    return s;
}

static void stemmer_release(rag_analyzer *an, struct sb_stemmer *s)
{
    if (!s)
        return;
    pthread_mutex_lock(&an->lock);
    if (an->npool == an->cappool) {
        size_t cap = an->cappool ? an->cappool * 2 : 4;
        struct sb_stemmer **p = realloc(an->pool, cap * sizeof *p);
        if (p) {
            an->pool = p;
            an->cappool = cap;
        }
    }
    if (an->npool < an->cappool) {
        an->pool[an->npool++] = s;
        s = NULL;
    }
    pthread_mutex_unlock(&an->lock);
    sb_stemmer_delete(s);
}

/* Han ideographs and Hiragana have no spaces between words: each is a token of its own. */
static int is_ideograph(int32_t cp)
{
    return (cp >= 0x3400 && cp <= 0x4DBF) || (cp >= 0x4E00 && cp <= 0x9FFF) ||
           (cp >= 0xF900 && cp <= 0xFAFF) || (cp >= 0x20000 && cp <= 0x3134F) ||
           (cp >= 0x3040 && cp <= 0x309F);
}

enum { C_OTHER = 0, C_LETTER = 1, C_DIGIT = 2 };

static int char_class(int32_t cp)
{
    if (cp < 0x80) {
        if ((cp >= 'a' && cp <= 'z') || (cp >= 'A' && cp <= 'Z') || cp == '_')
            return C_LETTER;
        return cp >= '0' && cp <= '9' ? C_DIGIT : C_OTHER;
    }
    switch (utf8proc_category(cp)) {
    case UTF8PROC_CATEGORY_LU: case UTF8PROC_CATEGORY_LL: case UTF8PROC_CATEGORY_LT:
    case UTF8PROC_CATEGORY_LM: case UTF8PROC_CATEGORY_LO: case UTF8PROC_CATEGORY_MN:
    case UTF8PROC_CATEGORY_MC: case UTF8PROC_CATEGORY_ME: case UTF8PROC_CATEGORY_PC:
        return C_LETTER;
    case UTF8PROC_CATEGORY_ND: case UTF8PROC_CATEGORY_NL: case UTF8PROC_CATEGORY_NO:
        return C_DIGIT;
    default:
        return C_OTHER;
    }
}

/* Decodes one code point at s[0, n); returns its byte length (bad bytes: -1, length 1). */
static int decode(const char *s, size_t n, int32_t *cp)
{
    if ((unsigned char)s[0] < 0x80) {
        *cp = (unsigned char)s[0];
        return 1;
    }
    utf8proc_ssize_t r = utf8proc_iterate((const utf8proc_uint8_t *)s,
                                          n > 4 ? 4 : (utf8proc_ssize_t)n, cp);
    if (r <= 0) {
        *cp = -1;
        return 1;
    }
    return (int)r;
}

/* May joiner `j` glue a word character of class `prev` to one of class `next` (a subset of
 * Unicode UAX #29: "3.5", "10,000", "don't", "e.g")? */
static int joins(int32_t j, int prev, int next)
{
    if (prev != next)
        return 0;
    if (j == '.')
        return 1;
    if (j == ',')
        return prev == C_DIGIT;
    if (j == '\'' || j == 0x2019)
        return prev == C_LETTER;
    return 0;
}

typedef struct analyze_state {
    const rag_analyzer *an;
    struct sb_stemmer *stemmer;
    rag_term_fn emit;
    void *user;
    int rc;
} analyze_state;

/* Normalises one raw token and emits it unless it is a stop word or too long. */
static void process_token(analyze_state *as, const char *raw, size_t rawlen)
{
    const rag_analyzer *an = as->an;
    char buf[MAX_RAW_TOKEN * 2];
    char *term = buf;
    utf8proc_uint8_t *mapped = NULL;
    size_t len = 0;
    int ascii = 1;
    if (rawlen > MAX_RAW_TOKEN)
        return;
    for (size_t i = 0; i < rawlen; i++) {
        unsigned char c = (unsigned char)raw[i];
        if (c >= 0x80) {
            ascii = 0;
            break;
        }
        buf[i] = (char)(c >= 'A' && c <= 'Z' ? c + 32 : c);
    }
    if (ascii) {
        len = rawlen;
    } else {
        /* English: compatibility-decompose, then drop the accents of Latin letters so that
         * "café" and "cafe" match; other languages keep composed text for their stemmer. */
        int opts = UTF8PROC_STABLE | UTF8PROC_COMPAT | UTF8PROC_CASEFOLD | UTF8PROC_IGNORE |
                   (an->english ? UTF8PROC_DECOMPOSE : UTF8PROC_COMPOSE);
        utf8proc_ssize_t r = utf8proc_map((const utf8proc_uint8_t *)raw,
                                          (utf8proc_ssize_t)rawlen, &mapped, opts);
        if (r < 0) {
            if (r == UTF8PROC_ERROR_NOMEM)
                as->rc = rag_fail(RAG_ENOMEM, "out of memory analyzing text");
            return; /* invalid sequences were already treated as separators */
        }
        int32_t base = 0;
        int kept_marks = 0;
        len = 0;
        for (utf8proc_ssize_t i = 0; i < r;) {
            int32_t cp;
            utf8proc_ssize_t m = utf8proc_iterate(mapped + i, r - i, &cp);
            if (m <= 0)
                break;
            if (cp == 0x2019) { /* RIGHT SINGLE QUOTATION MARK reads as an apostrophe */
                mapped[len++] = '\'';
            } else if (an->english && utf8proc_category(cp) == UTF8PROC_CATEGORY_MN &&
                       (base < 0x0250 || (base >= 0x1E00 && base <= 0x1EFF))) {
                /* accent on a Latin letter: dropped */
            } else {
                if (an->english && utf8proc_category(cp) == UTF8PROC_CATEGORY_MN)
                    kept_marks = 1;
                memmove(mapped + len, mapped + i, (size_t)m);
                len += (size_t)m;
                base = cp;
            }
            i += m;
        }
        if (kept_marks) { /* marks of other scripts: back to composed form */
            utf8proc_uint8_t *nfc = NULL;
            r = utf8proc_map(mapped, (utf8proc_ssize_t)len, &nfc,
                             UTF8PROC_STABLE | UTF8PROC_COMPOSE);
            if (r < 0) {
                as->rc = rag_fail(RAG_ENOMEM, "out of memory analyzing text");
                goto done;
            }
            free(mapped);
            mapped = nfc;
            len = (size_t)r;
        }
        term = (char *)mapped;
    }
    if (an->english && len >= 2 && term[len - 2] == '\'' && term[len - 1] == 's')
        len -= 2; /* possessive */
    if (len == 0 || len > RAG_LEX_MAX_TERM || (an->stopwords && is_stop(term, len)))
        goto done;
    if (an->stem) {
        const sb_symbol *s = sb_stemmer_stem(as->stemmer, (const sb_symbol *)term, (int)len);
        if (!s) {
            as->rc = rag_fail(RAG_ENOMEM, "out of memory stemming text");
            goto done;
        }
        int sl = sb_stemmer_length(as->stemmer);
        if (sl > 0)
            as->emit(as->user, (const char *)s, (size_t)sl);
    } else {
        as->emit(as->user, term, len);
    }
done:
    free(mapped);
}

int rag_analyze(const rag_analyzer *an, const char *text, size_t len, rag_term_fn emit,
                void *user)
{
    analyze_state as = {an, NULL, emit, user, RAG_OK};
    rag_analyzer *man = (rag_analyzer *)an; /* the pool is internally synchronised */
    if (an->stem && !(as.stemmer = stemmer_acquire(man)))
        return rag_fail(RAG_ENOMEM, "out of memory creating a stemmer");
    size_t pos = 0;
    while (pos < len && as.rc == RAG_OK) {
        int32_t cp;
        int n = decode(text + pos, len - pos, &cp);
        if (cp >= 0 && is_ideograph(cp)) {
            process_token(&as, text + pos, (size_t)n);
            pos += (size_t)n;
            continue;
        }
        int cls = cp >= 0 ? char_class(cp) : C_OTHER;
        if (cls == C_OTHER) {
            pos += (size_t)n;
            continue;
        }
        size_t start = pos;
        pos += (size_t)n;
        while (pos < len) {
            int m = decode(text + pos, len - pos, &cp);
            int c = cp >= 0 && !is_ideograph(cp) ? char_class(cp) : C_OTHER;
            if (c != C_OTHER) {
                cls = c;
                pos += (size_t)m;
                continue;
            }
            if (cp < 0 || pos + (size_t)m >= len)
                break;
            int32_t next;
            int m2 = decode(text + pos + m, len - pos - (size_t)m, &next);
            int nc = next >= 0 && !is_ideograph(next) ? char_class(next) : C_OTHER;
            if (!joins(cp, cls, nc))
                break;
            pos += (size_t)(m + m2);
            cls = nc;
        }
        process_token(&as, text + start, pos - start);
    }
    if (as.stemmer)
        stemmer_release(man, as.stemmer);
    return as.rc;
}

/* ---- term bag: distinct terms of one text with their counts ---------------------------- */

typedef struct term_ent {
    uint32_t off, len, tf, hash;
} term_ent;

typedef struct term_bag {
    char *pool;
    size_t pool_len, pool_cap;
    term_ent *slots; /* open addressing; len == 0 marks an empty slot */
    size_t cap, n;
    uint32_t total;  /* terms emitted, repeats included */
    int rc;
} term_bag;

static uint32_t hash_bytes(const char *s, size_t n)
{
    uint32_t h = 2166136261u; /* FNV-1a */
    for (size_t i = 0; i < n; i++)
        h = (h ^ (unsigned char)s[i]) * 16777619u;
    return h;
}

static int bag_grow(term_bag *b)
{
    size_t cap = b->cap ? b->cap * 2 : 64;
    term_ent *s = rag_calloc(cap, sizeof *s);
    if (!s)
        return RAG_ENOMEM;
    for (size_t i = 0; i < b->cap; i++) {
        if (!b->slots[i].len)
            continue;
        size_t j = b->slots[i].hash & (cap - 1);
        while (s[j].len)
            j = (j + 1) & (cap - 1);
        s[j] = b->slots[i];
    }
    free(b->slots);
    b->slots = s;
    b->cap = cap;
    return RAG_OK;
}

static void bag_add(void *user, const char *term, size_t len)
{
    term_bag *b = user;
    if (b->rc != RAG_OK)
        return;
    if ((b->n + 1) * 2 > b->cap && (b->rc = bag_grow(b)) != RAG_OK)
        return;
    uint32_t h = hash_bytes(term, len);
    size_t j = h & (b->cap - 1);
    for (; b->slots[j].len; j = (j + 1) & (b->cap - 1)) {
        term_ent *e = &b->slots[j];
        if (e->hash == h && e->len == len && memcmp(b->pool + e->off, term, len) == 0) {
            e->tf++;
            b->total++;
            return;
        }
    }
    if (b->pool_len + len > b->pool_cap) {
        size_t cap = b->pool_cap ? b->pool_cap * 2 : 1024;
        while (cap < b->pool_len + len)
            cap *= 2;
        char *p = rag_realloc(b->pool, cap);
        if (!p) {
            b->rc = RAG_ENOMEM;
            return;
        }
        b->pool = p;
        b->pool_cap = cap;
    }
    memcpy(b->pool + b->pool_len, term, len);
    b->slots[j] = (term_ent){(uint32_t)b->pool_len, (uint32_t)len, 1, h};
    b->pool_len += len;
    b->n++;
    b->total++;
}

static void bag_free(term_bag *b)
{
    free(b->pool);
    free(b->slots);
}

static int bag_fill(term_bag *b, const rag_analyzer *an, const char *text, size_t len)
{
    memset(b, 0, sizeof *b);
    int rc = rag_analyze(an, text, len, bag_add, b);
    if (rc == RAG_OK && b->rc != RAG_OK)
        rc = rag_fail(b->rc, "out of memory collecting terms");
    return rc;
}

/* ---- index maintenance ----------------------------------------------------------------- */

/* Longest key of a term's statistics; a posting's key adds 9 bytes (NUL, chunk id). */
#define DF_KEY_MAX (4 + RAG_LEX_MAX_TERM)

/* Key of a term's statistics: the collection then the term, which an encrypted store
 * replaces by its keyed hash (rag_crypt_term: 16 raw bytes, or 32 hex digits in a store
 * created before) so that no term is stored. k holds DF_KEY_MAX bytes. */
static size_t df_key(rag_txn *txn, unsigned char *k, uint32_t coll, const char *term, size_t len)
{
    const rag_crypt *cr = rag_txn_crypt(txn);
    rag_put_be32(k, coll);
    if (cr)
        return 4 + rag_crypt_term(cr, term, len, k + 4);
    memcpy(k + 4, term, len);
    return 4 + len;
}

/* Turns the statistics key k (kl bytes) into the key of the term's posting for `chunk`
 * (the statistics key stays its prefix) and returns its length. */
static size_t posting_key(unsigned char *k, size_t kl, uint64_t chunk)
{
    k[kl] = 0;
    rag_put_be64(k + kl + 1, chunk);
    return kl + 9;
}

static int get_u32(rag_txn *txn, const char *table, const unsigned char *k, size_t kl,
                   uint32_t *v)
{
    const void *val;
    size_t vl;
    int rc = rag_store_kv_get(txn, table, k, kl, &val, &vl);
    if (rc != RAG_OK)
        return rc;
    if (vl < 4)
        return rag_fail(RAG_ECORRUPT, "lexical table %s: entry of %zu bytes", table, vl);
    *v = rag_get_be32(val);
    return RAG_OK;
}

static int put_u32(rag_txn *txn, const char *table, const unsigned char *k, size_t kl,
                   uint32_t v)
{
    unsigned char b[4];
    rag_put_be32(b, v);
    return rag_store_kv_put(txn, table, k, kl, b, 4);
}

/* Entry sizes of the two formats (see the layout at the top). */
#define POST_CHUNK 8      /* posting: tf, chunk length */
#define POST_DOC 20       /* ... ordinal, document length, own tf */
#define ENTRY_CHUNK 8     /* chunk entry: length, distinct terms */
#define ENTRY_DOC 16      /* ... ordinal, own length */
#define TOTALS_CHUNK 16   /* statistics: chunks, total length */
#define TOTALS_DOC 32     /* ... documents, their total length */

/* A collection's statistics record. */
typedef struct lex_totals {
    uint64_t chunks, total, docs, doc_total;
    int chunk_only;       /* the format of older stores: no document fields anywhere */
} lex_totals;

/* Reads a collection's statistics (all 0, document format, when it has none). */
static int totals_get(rag_txn *txn, uint32_t coll, lex_totals *t)
{
    unsigned char k[4];
    const void *val;
    size_t vl;
    rag_put_be32(k, coll);
    memset(t, 0, sizeof *t);
    int rc = rag_store_kv_get(txn, T_STATS, k, 4, &val, &vl);
    if (rc == RAG_ENOTFOUND)
        return RAG_OK;
    if (rc != RAG_OK)
        return rc;
    if (vl != TOTALS_CHUNK && vl != TOTALS_DOC)
        return rag_fail(RAG_ECORRUPT, "lexical statistics of collection %u: %zu bytes",
                        (unsigned)coll, vl);
    t->chunks = rag_get_be64(val);
    t->total = rag_get_be64((const unsigned char *)val + 8);
    t->chunk_only = vl == TOTALS_CHUNK;
    if (!t->chunk_only) {
        t->docs = rag_get_be64((const unsigned char *)val + 16);
        t->doc_total = rag_get_be64((const unsigned char *)val + 24);
    }
    return RAG_OK;
}

/* Writes a collection's statistics in its format, or deletes them when no chunk is left
 * (the next document indexed then starts the document format). */
static int totals_put(rag_txn *txn, uint32_t coll, const lex_totals *t)
{
    unsigned char k[4], v[TOTALS_DOC];
    rag_put_be32(k, coll);
    if (t->chunks == 0) {
        int rc = rag_store_kv_del(txn, T_STATS, k, 4);
        return rc == RAG_ENOTFOUND ? RAG_OK : rc;
    }
    rag_put_be64(v, t->chunks);
    rag_put_be64(v + 8, t->total);
    rag_put_be64(v + 16, t->docs);
    rag_put_be64(v + 24, t->doc_total);
    return rag_store_kv_put(txn, T_STATS, k, 4, v, t->chunk_only ? TOTALS_CHUNK : TOTALS_DOC);
}

int rag_lexical_stats(rag_txn *txn, uint32_t coll, uint64_t *n_chunks, uint64_t *total_len)
{
    lex_totals t;
    int rc = totals_get(txn, coll, &t);
    *n_chunks = t.chunks;
    *total_len = t.total;
    return rc;
}

int rag_lexical_docs(rag_txn *txn, uint32_t coll, uint64_t *n_docs)
{
    lex_totals t;
    int rc = totals_get(txn, coll, &t);
    *n_docs = t.docs;
    return rc != RAG_OK ? rc : !t.chunk_only;
}

/* The document frequency under statistics key k (kl bytes): 0 when absent. */
static int df_get(rag_txn *txn, const unsigned char *k, size_t kl, uint32_t *df)
{
    int rc = get_u32(txn, T_STATS, k, kl, df);
    if (rc == RAG_ENOTFOUND) {
        *df = 0;
        return RAG_OK;
    }
    return rc;
}

int rag_lexical_df(rag_txn *txn, uint32_t coll, const char *term, size_t len, uint32_t *df)
{
    unsigned char k[DF_KEY_MAX];
    *df = 0;
    if (len == 0 || len > RAG_LEX_MAX_TERM)
        return RAG_OK;
    return df_get(txn, k, df_key(txn, k, coll, term, len), df);
}

int rag_lexical_indexed(rag_txn *txn, uint32_t coll, uint64_t chunk_id)
{
    unsigned char k[12];
    uint32_t dl;
    rag_put_be32(k, coll);
    rag_put_be64(k + 4, chunk_id);
    int rc = get_u32(txn, T_CHUNKS, k, 12, &dl);
    return rc == RAG_OK ? 1 : rc == RAG_ENOTFOUND ? 0 : rc;
}

/* Adds or subtracts one to the chunk frequency under statistics key k (kl bytes); the
 * record goes when it reaches 0. `term` names it in messages. */
static int df_step(rag_txn *txn, const unsigned char *k, size_t kl, int add, const char *term,
                   size_t len)
{
    uint32_t df = 0;
    int rc = get_u32(txn, T_STATS, k, kl, &df);
    if (rc == RAG_ENOTFOUND && add)
        rc = RAG_OK;
    else if (rc == RAG_ENOTFOUND)
        return rag_fail(RAG_ECORRUPT, "no document frequency for term '%.*s'", (int)len, term);
    if (rc != RAG_OK)
        return rc;
    if (add)
        return put_u32(txn, T_STATS, k, kl, df + 1);
    return df <= 1 ? rag_store_kv_del(txn, T_STATS, k, kl) : put_u32(txn, T_STATS, k, kl, df - 1);
}

/* The frequency of term (len bytes) in bag b: 0 when absent. */
static uint32_t bag_tf(const term_bag *b, const char *term, size_t len)
{
    if (!b->cap)
        return 0;
    uint32_t h = hash_bytes(term, len);
    for (size_t j = h & (b->cap - 1); b->slots[j].len; j = (j + 1) & (b->cap - 1)) {
        const term_ent *e = &b->slots[j];
        if (e->hash == h && e->len == len && memcmp(b->pool + e->off, term, len) == 0)
            return e->tf;
    }
    return 0;
}

/* One chunk of a document being indexed: its terms, and how many of each (and in all) it
 * alone contributes to the document. */
typedef struct chunk_terms {
    term_bag bag;
    term_bag own;            /* the own part's terms (empty when the part is the whole) */
    int own_is_all;
    uint32_t own_len;
} chunk_terms;

/* The own frequency of term e of c: its frequency in the own part, at most its frequency
 * in the chunk (a word the own part cuts in two is not the chunk's). */
static uint32_t own_tf(const chunk_terms *c, const term_ent *e)
{
    if (c->own_is_all)
        return e->tf;
    uint32_t o = bag_tf(&c->own, c->bag.pool + e->off, e->len);
    return o < e->tf ? o : e->tf;
}

static int chunk_terms_fill(chunk_terms *c, const rag_analyzer *an, const rag_lex_chunk *ch)
{
    int rc = bag_fill(&c->bag, an, ch->text, ch->len);
    c->own_is_all = !ch->own;
    if (rc == RAG_OK && ch->own)
        rc = bag_fill(&c->own, an, ch->own, ch->own_len);
    c->own_len = 0;
    for (size_t j = 0; rc == RAG_OK && j < c->bag.cap; j++)
        if (c->bag.slots[j].len)
            c->own_len += own_tf(c, &c->bag.slots[j]);
    return rc;
}

static void chunk_terms_free(chunk_terms *c, size_t n)
{
    for (size_t i = 0; c && i < n; i++) {
        bag_free(&c[i].bag);
        bag_free(&c[i].own);
    }
    free(c);
}

size_t rag_lexical_overlap(uint64_t start, uint64_t len, uint64_t prev_end)
{
    if (prev_end <= start)
        return 0;
    return (size_t)(prev_end - start < len ? prev_end - start : len);
}

/* The lowest chunk id of a document (n >= 1): its key. */
static uint64_t doc_key(const rag_lex_chunk *chunks, size_t n)
{
    uint64_t d = chunks[0].id;
    for (size_t i = 1; i < n; i++)
        if (chunks[i].id < d)
            d = chunks[i].id;
    return d;
}

int rag_lexical_add_doc(rag_txn *txn, const rag_analyzer *an, uint32_t coll,
                        const rag_lex_chunk *chunks, size_t n)
{
    chunk_terms *ct = NULL;
    unsigned char ck[12], k[DF_KEY_MAX + 9], v[POST_DOC];
    lex_totals t;
    uint64_t doc, total = 0, doclen = 0;
    int rc = RAG_OK;
    if (n == 0)
        return RAG_OK;
    if ((rc = totals_get(txn, coll, &t)) != RAG_OK)
        return rc;
    if (!(ct = rag_calloc(n, sizeof *ct)))
        return RAG_ENOMEM;
    doc = doc_key(chunks, n);
    for (size_t i = 0; i < n; i++) {
        if (chunks[i].id - doc > UINT32_MAX) {
            rc = rag_fail(RAG_EINVAL, "chunks %llu and %llu of one document are more than 2^32 "
                          "ids apart", (unsigned long long)doc, (unsigned long long)chunks[i].id);
            goto cleanup;
        }
        if ((rc = chunk_terms_fill(&ct[i], an, &chunks[i])) != RAG_OK)
            goto cleanup;
        total += ct[i].bag.total;
        doclen += ct[i].own_len;
    }
    if (doclen > UINT32_MAX) {
        rc = rag_fail(RAG_EINVAL, "document of chunk %llu: %llu indexed terms (at most 2^32)",
                      (unsigned long long)doc, (unsigned long long)doclen);
        goto cleanup;
    }
    for (size_t i = 0; i < n; i++) {
        const term_bag *bag = &ct[i].bag;
        uint64_t id = chunks[i].id;
        if ((rc = rag_lexical_indexed(txn, coll, id)) < 0)
            goto cleanup;
        if (rc == 1) {
            rc = rag_fail(RAG_EEXIST, "chunk %llu is already in the lexical index",
                          (unsigned long long)id);
            goto cleanup;
        }
        rag_put_be32(v + 4, bag->total);
        rag_put_be32(v + 8, (uint32_t)(id - doc));
        rag_put_be32(v + 12, (uint32_t)doclen);
        for (size_t j = 0; j < bag->cap; j++) {
            const term_ent *e = &bag->slots[j];
            const char *term = bag->pool + e->off;
            size_t kl = e->len ? df_key(txn, k, coll, term, e->len) : 0;
            if (!kl)
                continue;
            rag_put_be32(v, e->tf);
            rag_put_be32(v + 16, own_tf(&ct[i], e));
            if ((rc = rag_store_kv_put(txn, T_POSTINGS, k, posting_key(k, kl, id), v,
                                       t.chunk_only ? POST_CHUNK : POST_DOC)) != RAG_OK ||
                (rc = df_step(txn, k, kl, 1, term, e->len)) != RAG_OK)
                goto cleanup;
        }
        rag_put_be32(ck, coll);
        rag_put_be64(ck + 4, id);
        rag_put_be32(v, bag->total);
        rag_put_be32(v + 4, (uint32_t)bag->n);
        rag_put_be32(v + 8, (uint32_t)(id - doc));
        rag_put_be32(v + 12, ct[i].own_len);
        if ((rc = rag_store_kv_put(txn, T_CHUNKS, ck, 12, v,
                                   t.chunk_only ? ENTRY_CHUNK : ENTRY_DOC)) != RAG_OK)
            goto cleanup;
    }
    t.chunks += n;
    t.total += total;
    if (!t.chunk_only) {
        t.docs++;
        t.doc_total += doclen;
    }
    rc = totals_put(txn, coll, &t);
cleanup:
    chunk_terms_free(ct, n);
    return rc;
}

int rag_lexical_add(rag_txn *txn, const rag_analyzer *an, uint32_t coll, uint64_t chunk_id,
                    const char *text, size_t len)
{
    rag_lex_chunk c = {chunk_id, text, len, NULL, 0};
    return rag_lexical_add_doc(txn, an, coll, &c, 1);
}

int rag_lexical_remove_doc(rag_txn *txn, const rag_analyzer *an, uint32_t coll,
                           const rag_lex_chunk *chunks, size_t n)
{
    term_bag *bags = NULL;
    unsigned char ck[12], k[DF_KEY_MAX + 9];
    const void *val;
    size_t vl, m = 0;
    lex_totals t;
    uint64_t total = 0, doclen = 0;
    int rc;
    if (n == 0)
        return RAG_OK;
    if ((rc = totals_get(txn, coll, &t)) != RAG_OK)
        return rc;
    if (!(bags = rag_calloc(n, sizeof *bags)))
        return RAG_ENOMEM;
    /* the chunks' entries first: their terms must be what was indexed */
    for (size_t i = 0; i < n; i++) {
        rag_put_be32(ck, coll);
        rag_put_be64(ck + 4, chunks[i].id);
        rc = rag_store_kv_get(txn, T_CHUNKS, ck, 12, &val, &vl);
        if (rc == RAG_ENOTFOUND) { /* never indexed (stored before the lexical index) */
            rc = RAG_OK;
            continue;
        }
        if (rc != RAG_OK)
            goto cleanup;
        if (vl != (t.chunk_only ? ENTRY_CHUNK : ENTRY_DOC)) {
            rc = rag_fail(RAG_ECORRUPT, "lexical entry of chunk %llu: %zu bytes",
                          (unsigned long long)chunks[i].id, vl);
            goto cleanup;
        }
        const unsigned char *e = val;
        uint32_t dl = rag_get_be32(e), nterms = rag_get_be32(e + 4);
        if ((rc = bag_fill(&bags[i], an, chunks[i].text, chunks[i].len)) != RAG_OK)
            goto cleanup;
        if (bags[i].total != dl || bags[i].n != nterms) {
            rc = rag_fail(RAG_ECORRUPT,
                          "chunk %llu: text to remove has %u terms (%zu distinct), the lexical "
                          "index holds %u (%u)", (unsigned long long)chunks[i].id,
                          (unsigned)bags[i].total, bags[i].n, (unsigned)dl, (unsigned)nterms);
            goto cleanup;
        }
        total += dl;
        if (!t.chunk_only)
            doclen += rag_get_be32(e + 12);
        m++;
    }
    for (size_t i = 0; i < n; i++) {
        const term_bag *bag = &bags[i]; /* empty for a chunk never indexed */
        for (size_t j = 0; j < bag->cap; j++) {
            const term_ent *e = &bag->slots[j];
            const char *term = bag->pool + e->off;
            size_t kl = e->len ? df_key(txn, k, coll, term, e->len) : 0, pl;
            if (!kl) /* an empty slot */
                continue;
            pl = posting_key(k, kl, chunks[i].id);
            rc = rag_store_kv_get(txn, T_POSTINGS, k, pl, &val, &vl);
            if (rc == RAG_ENOTFOUND)
                rc = rag_fail(RAG_ECORRUPT, "chunk %llu: no posting for term '%.*s'",
                              (unsigned long long)chunks[i].id, (int)e->len, term);
            uint32_t posted = rc == RAG_OK && vl == POST_DOC
                                  ? rag_get_be32((const unsigned char *)val + 12) : 0;
            if (rc == RAG_OK && !t.chunk_only && (vl != POST_DOC || posted != doclen))
                rc = rag_fail(RAG_ECORRUPT,
                              "chunk %llu: its postings give its document %u indexed terms, the "
                              "chunks removed with it hold %llu (a document's chunks are "
                              "removed together)", (unsigned long long)chunks[i].id,
                              (unsigned)posted, (unsigned long long)doclen);
            if (rc == RAG_OK)
                rc = rag_store_kv_del(txn, T_POSTINGS, k, pl);
            if (rc == RAG_OK)
                rc = df_step(txn, k, kl, 0, term, e->len);
            if (rc != RAG_OK)
                goto cleanup;
        }
        rag_put_be32(ck, coll); /* also for a chunk never indexed: nothing to delete */
        rag_put_be64(ck + 4, chunks[i].id);
        rc = rag_store_kv_del(txn, T_CHUNKS, ck, 12);
        if (rc == RAG_ENOTFOUND)
            rc = RAG_OK;
        if (rc != RAG_OK)
            goto cleanup;
    }
    if (m == 0)
        goto cleanup;
    if (t.chunks < m || t.total < total ||
        (!t.chunk_only && (t.docs == 0 || t.doc_total < doclen))) {
        rc = rag_fail(RAG_ECORRUPT, "lexical statistics of collection %u underflow",
                      (unsigned)coll);
        goto cleanup;
    }
    t.chunks -= m;
    t.total -= total;
    if (!t.chunk_only) {
        t.docs--;
        t.doc_total -= doclen;
    }
    rc = totals_put(txn, coll, &t);
cleanup:
    for (size_t i = 0; i < n; i++)
        bag_free(&bags[i]);
    free(bags);
    return rc;
}

int rag_lexical_remove(rag_txn *txn, const rag_analyzer *an, uint32_t coll, uint64_t chunk_id,
                       const char *text, size_t len)
{
    rag_lex_chunk c = {chunk_id, text, len, NULL, 0};
    return rag_lexical_remove_doc(txn, an, coll, &c, 1);
}

#define PURGE_BATCH 1024
#define MARK_BYTE 0xFF

typedef struct key_batch {
    unsigned char prefix[4];
    unsigned char (*keys)[512];
    size_t *lens;
    size_t n, max;
    int keep_mark;        /* skip the rebuild mark */
} key_batch;

static int is_mark(const unsigned char *key, size_t klen)
{
    return klen == 5 && key[4] == MARK_BYTE;
}

static int collect_keys(void *user, const void *key, size_t klen, const void *val, size_t vlen)
{
    key_batch *kb = user;
    (void)val;
    (void)vlen;
    if (klen < 4 || memcmp(key, kb->prefix, 4) != 0 || klen > 512)
        return 1;
    if (kb->keep_mark && is_mark(key, klen))
        return 0;
    memcpy(kb->keys[kb->n], key, klen);
    kb->lens[kb->n++] = klen;
    return kb->n == kb->max ? 1 : 0;
}

/* Deletes up to max_keys keys of the collection from the three tables in order. */
static int purge_keys(rag_txn *txn, uint32_t coll, int keep_mark, size_t max_keys,
                      size_t *deleted)
{
    static const char *const tables[] = {T_POSTINGS, T_CHUNKS, T_STATS};
    key_batch kb = {{0}, NULL, NULL, 0, 0, keep_mark};
    int rc = RAG_OK;
    *deleted = 0;
    rag_put_be32(kb.prefix, coll);
    kb.keys = rag_malloc(PURGE_BATCH * sizeof *kb.keys);
    kb.lens = rag_malloc(PURGE_BATCH * sizeof *kb.lens);
    if (!kb.keys || !kb.lens) {
        rc = RAG_ENOMEM;
        goto cleanup;
    }
    for (size_t t = 0; t < 3; t++) {
        do {
            size_t left = max_keys - *deleted;
            if (left == 0)
                goto cleanup;
            kb.n = 0;
            kb.max = left < PURGE_BATCH ? left : PURGE_BATCH;
            rc = rag_store_kv_scan(txn, tables[t], kb.prefix, 4, collect_keys, &kb);
            if (rc < 0)
                goto cleanup;
            for (size_t i = 0; i < kb.n; i++)
                if ((rc = rag_store_kv_del(txn, tables[t], kb.keys[i], kb.lens[i])) != RAG_OK)
                    goto cleanup;
            *deleted += kb.n;
            rc = RAG_OK;
        } while (kb.n == kb.max);
    }
cleanup:
    free(kb.keys);
    free(kb.lens);
    return rc;
}

int rag_lexical_purge(rag_txn *txn, uint32_t coll)
{
    size_t n;
    return purge_keys(txn, coll, 0, SIZE_MAX, &n);
}

int rag_lexical_purge_some(rag_txn *txn, uint32_t coll, size_t max_keys, size_t *deleted)
{
    return purge_keys(txn, coll, 1, max_keys, deleted);
}

/* ---- rebuild support ------------------------------------------------------------------- */

int rag_lexical_chunk_text(const char *title, const char *text, size_t len, char **buf,
                           const char **out, size_t *out_len)
{
    size_t tl = title ? strlen(title) : 0;
    *buf = NULL;
    if (tl == 0 || (len >= tl && memcmp(text, title, tl) == 0)) {
        *out = text;
        *out_len = len;
        return RAG_OK;
    }
    if (!(*buf = rag_malloc(tl + 2 + len)))
        return RAG_ENOMEM;
    memcpy(*buf, title, tl);
    memcpy(*buf + tl, "\n\n", 2);
    memcpy(*buf + tl + 2, text, len);
    *out = *buf;
    *out_len = tl + 2 + len;
    return RAG_OK;
}

int rag_lexical_rebuild_mark(rag_txn *txn, uint32_t coll, int pending)
{
    unsigned char k[5];
    rag_put_be32(k, coll);
    k[4] = MARK_BYTE;
    if (pending)
        return rag_store_kv_put(txn, T_STATS, k, 5, "", 0);
    int rc = rag_store_kv_del(txn, T_STATS, k, 5);
    return rc == RAG_ENOTFOUND ? RAG_OK : rc;
}

int rag_lexical_rebuilding(rag_txn *txn, uint32_t coll)
{
    unsigned char k[5];
    const void *val;
    size_t vl;
    rag_put_be32(k, coll);
    k[4] = MARK_BYTE;
    int rc = rag_store_kv_get(txn, T_STATS, k, 5, &val, &vl);
    return rc == RAG_OK ? 1 : rc == RAG_ENOTFOUND ? 0 : rc;
}

/* ---- audit ------------------------------------------------------------------------------- */

typedef struct audit_chunk {
    uint64_t id;
    uint32_t len, nterms;        /* from the chunk entry */
    uint32_t ord, own_len;       /* its ordinal and own length (document format) */
    uint32_t seen;               /* postings found */
    uint64_t seen_tf, seen_own;  /* sum of their term frequencies, and own ones */
    uint64_t doclen;             /* its document's length: the sum over its chunk entries */
} audit_chunk;

typedef struct audit_term {
    uint32_t off, len;
    uint64_t count;              /* postings of the term */
} audit_term;

typedef struct audit_ctx {
    unsigned char prefix[4];
    rag_lexical_audit *a;
    audit_chunk *ch;
    size_t n, cap;
    char *pool;                  /* the terms' bytes */
    size_t pool_len, pool_cap;
    audit_term *terms;           /* in key order, which is the terms' byte order */
    size_t nterms, cap_terms, merge;
    int hashed;                  /* terms are keyed hashes (an encrypted store) */
    size_t entry_size, post_size; /* of the collection's format */
    int rc;
} audit_ctx;

/* Returns `v` grown (realloc) to hold at least `need` elements of `size` bytes, updating
 * *cap, or NULL when out of memory (v is then unchanged). */
static void *audit_grow(void *v, size_t *cap, size_t need, size_t size)
{
    if (need <= *cap)
        return v;
    size_t c = *cap ? *cap : 256;
    while (c < need)
        c *= 2;
    void *q = rag_realloc(v, c * size);
    if (q)
        *cap = c;
    return q;
}

static int audit_chunk_visit(void *user, const void *key, size_t klen, const void *val,
                             size_t vlen)
{
    audit_ctx *x = user;
    if (klen < 4 || memcmp(key, x->prefix, 4) != 0)
        return 1;
    if (klen != 12 || vlen != x->entry_size) {
        x->a->malformed++;
        return 0;
    }
    audit_chunk *grown = audit_grow(x->ch, &x->cap, x->n + 1, sizeof *x->ch);
    if (!grown) {
        x->rc = RAG_ENOMEM;
        return 1;
    }
    x->ch = grown;
    audit_chunk *c = &x->ch[x->n++];
    c->id = rag_get_be64((const unsigned char *)key + 4);
    c->len = rag_get_be32(val);
    c->nterms = rag_get_be32((const unsigned char *)val + 4);
    c->ord = vlen == ENTRY_DOC ? rag_get_be32((const unsigned char *)val + 8) : 0;
    c->own_len = vlen == ENTRY_DOC ? rag_get_be32((const unsigned char *)val + 12) : c->len;
    c->seen = 0;
    c->seen_tf = c->seen_own = 0;
    c->doclen = c->own_len;
    return 0;
}

/* A chunk entry's place when grouping by document. */
typedef struct doc_ix {
    uint64_t doc, id;            /* document key (id - ordinal), chunk id */
    size_t i;                    /* index in audit_ctx.ch */
} doc_ix;

static int cmp_doc_ix(const void *a, const void *b)
{
    const doc_ix *x = a, *y = b;
    if (x->doc != y->doc)
        return x->doc < y->doc ? -1 : 1;
    return x->id < y->id ? -1 : x->id > y->id;
}

/* Groups the chunk entries (document format) into documents: counts them into a->docs,
 * their length into a->doc_len, and gives each chunk its document's length (its chunks'
 * own lengths summed). Returns RAG_OK or RAG_ENOMEM. */
static int audit_docs(audit_ctx *x)
{
    doc_ix *ix = rag_malloc((x->n ? x->n : 1) * sizeof *ix);
    if (!ix)
        return RAG_ENOMEM;
    for (size_t i = 0; i < x->n; i++)
        ix[i] = (doc_ix){x->ch[i].id - x->ch[i].ord, x->ch[i].id, i};
    qsort(ix, x->n, sizeof *ix, cmp_doc_ix);
    for (size_t i = 0; i < x->n;) {
        uint64_t sum = 0;
        size_t j = i;
        for (; j < x->n && ix[j].doc == ix[i].doc; j++)
            sum += x->ch[ix[j].i].own_len;
        for (; i < j; i++)
            x->ch[ix[i].i].doclen = sum;
        x->a->docs++;
        x->a->doc_len += sum;
    }
    free(ix);
    return RAG_OK;
}

static audit_chunk *audit_find(audit_ctx *x, uint64_t id)
{
    size_t lo = 0, hi = x->n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (x->ch[mid].id < id)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo < x->n && x->ch[lo].id == id ? &x->ch[lo] : NULL;
}

static int audit_posting_visit(void *user, const void *key, size_t klen, const void *val,
                               size_t vlen)
{
    audit_ctx *x = user;
    const unsigned char *k = key;
    if (klen < 4 || memcmp(k, x->prefix, 4) != 0)
        return 1;
    x->a->postings++;
    if (klen < 14 || klen - 13 > RAG_LEX_MAX_TERM || k[klen - 9] != 0 || vlen != x->post_size) {
        x->a->malformed++;
        return 0;
    }
    const char *term = (const char *)k + 4;
    size_t tl = klen - 13;
    audit_term *last = x->nterms ? &x->terms[x->nterms - 1] : NULL;
    if (last && last->len == tl && memcmp(x->pool + last->off, term, tl) == 0) {
        last->count++;
    } else {
        audit_term *terms = audit_grow(x->terms, &x->cap_terms, x->nterms + 1, sizeof *terms);
        if (terms)
            x->terms = terms;
        char *pool = terms ? audit_grow(x->pool, &x->pool_cap, x->pool_len + tl, 1) : NULL;
        if (!pool) {
            x->rc = RAG_ENOMEM;
            return 1;
        }
        x->pool = pool;
        memcpy(x->pool + x->pool_len, term, tl);
        x->terms[x->nterms++] = (audit_term){(uint32_t)x->pool_len, (uint32_t)tl, 1};
        x->pool_len += tl;
    }
    audit_chunk *c = audit_find(x, rag_get_be64(k + klen - 8));
    uint32_t tf = rag_get_be32(val), dl = rag_get_be32((const unsigned char *)val + 4);
    if (!c) {
        x->a->stray_postings++;
        return 0;
    }
    if (dl != c->len)
        x->a->stray_postings++;
    else if (vlen == POST_DOC && (rag_get_be32((const unsigned char *)val + 8) != c->ord ||
                                  rag_get_be32((const unsigned char *)val + 12) != c->doclen ||
                                  rag_get_be32((const unsigned char *)val + 16) > tf))
        x->a->bad_doc_postings++;
    c->seen++;
    c->seen_tf += tf;
    c->seen_own += vlen == POST_DOC ? rag_get_be32((const unsigned char *)val + 16) : tf;
    return 0;
}

static int term_cmp(const char *a, size_t al, const char *b, size_t bl)
{
    int c = memcmp(a, b, al < bl ? al : bl);
    return c ? c : al < bl ? -1 : al > bl;
}

/* Counts a term whose frequency disagrees with its postings, naming the first: a raw
 * keyed hash (an encrypted store) in hex digits, as it cannot be printed. */
static void audit_bad_df(audit_ctx *x, const char *term, size_t len)
{
    if (x->a->bad_df++ > 0)
        return;
    if (x->hashed && 2 * len < sizeof x->a->first_bad_term) {
        for (size_t i = 0; i < len; i++)
            snprintf(x->a->first_bad_term + 2 * i, 3, "%02x", (unsigned char)term[i]);
    } else {
        snprintf(x->a->first_bad_term, sizeof x->a->first_bad_term, "%.*s", (int)len, term);
    }
}

static int audit_stats_visit(void *user, const void *key, size_t klen, const void *val,
                             size_t vlen)
{
    audit_ctx *x = user;
    const unsigned char *k = key;
    if (klen < 4 || memcmp(k, x->prefix, 4) != 0)
        return 1;
    if (klen == 4) { /* its format was read before the scans (a bad one is counted) */
        if (vlen != TOTALS_CHUNK && vlen != TOTALS_DOC)
            return 0;
        x->a->stat_chunks = rag_get_be64(val);
        x->a->stat_len = rag_get_be64((const unsigned char *)val + 8);
        if (vlen == TOTALS_DOC) {
            x->a->stat_docs = rag_get_be64((const unsigned char *)val + 16);
            x->a->stat_doc_len = rag_get_be64((const unsigned char *)val + 24);
        }
        return 0;
    }
    if (is_mark(k, klen)) {
        x->a->rebuilding = 1;
        return 0;
    }
    x->a->df_records++;
    const char *term = (const char *)k + 4;
    size_t tl = klen - 4;
    while (x->merge < x->nterms) {
        const audit_term *t = &x->terms[x->merge];
        if (term_cmp(x->pool + t->off, t->len, term, tl) >= 0)
            break;
        audit_bad_df(x, x->pool + t->off, t->len); /* postings without a frequency */
        x->merge++;
    }
    const audit_term *t = x->merge < x->nterms ? &x->terms[x->merge] : NULL;
    if (t && term_cmp(x->pool + t->off, t->len, term, tl) == 0) {
        if (vlen != 4)
            x->a->malformed++;
        if (vlen != 4 || rag_get_be32(val) != t->count)
            audit_bad_df(x, term, tl);
        x->merge++;
    } else {
        audit_bad_df(x, term, tl); /* a frequency without postings */
    }
    return 0;
}

int rag_lexical_audit_coll(rag_txn *txn, uint32_t coll, rag_lexical_audit *out)
{
    audit_ctx x;
    memset(&x, 0, sizeof x);
    memset(out, 0, sizeof *out);
    x.a = out;
    x.hashed = rag_txn_crypt(txn) != NULL;
    rag_put_be32(x.prefix, coll);
    lex_totals t;
    int rc = totals_get(txn, coll, &t);
    if (rc == RAG_ECORRUPT) { /* counted as malformed: the rest is still worth auditing */
        rag_clear_error();
        out->malformed++;
        memset(&t, 0, sizeof t);
        rc = RAG_OK;
    }
    if (rc != RAG_OK)
        goto cleanup;
    out->chunk_only = t.chunk_only;
    x.entry_size = t.chunk_only ? ENTRY_CHUNK : ENTRY_DOC;
    x.post_size = t.chunk_only ? POST_CHUNK : POST_DOC;
    rc = rag_store_kv_scan(txn, T_CHUNKS, x.prefix, 4, audit_chunk_visit, &x);
    if (rc >= 0 && x.rc == RAG_OK && !t.chunk_only)
        x.rc = audit_docs(&x);
    if (rc >= 0 && x.rc == RAG_OK)
        rc = rag_store_kv_scan(txn, T_POSTINGS, x.prefix, 4, audit_posting_visit, &x);
    if (rc >= 0 && x.rc == RAG_OK)
        rc = rag_store_kv_scan(txn, T_STATS, x.prefix, 4, audit_stats_visit, &x);
    if (rc >= 0 && x.rc != RAG_OK)
        rc = rag_fail(x.rc, "out of memory auditing the lexical index");
    if (rc < 0)
        goto cleanup;
    rc = RAG_OK;
    for (; x.merge < x.nterms; x.merge++)
        audit_bad_df(&x, x.pool + x.terms[x.merge].off, x.terms[x.merge].len);
    out->chunks = x.n;
    out->terms = x.nterms;
    for (size_t i = 0; i < x.n; i++) {
        const audit_chunk *c = &x.ch[i];
        out->sum_len += c->len;
        if (c->seen != c->nterms || c->seen_tf != c->len || c->seen_own != c->own_len) {
            if (out->bad_chunks++ == 0)
                out->first_bad_chunk = c->id;
        }
    }
cleanup:
    free(x.ch);
    free(x.pool);
    free(x.terms);
    return rc;
}

/* ---- search ------------------------------------------------------------------------------ */

void rag_bm25_params_init(rag_bm25_params *p)
{
    p->k1 = 0.9f;
    p->b = 0.4f;
    p->unit = RAG_LEXICAL_DOCUMENT;
}

typedef struct acc_slot {
    uint64_t id;   /* UINT64_MAX: empty */
    uint64_t doc;  /* a chunk's document key; a document's slot: its best chunk */
    double score;
    double best;   /* a document's slot: its best chunk's score */
} acc_slot;

/* An accumulator: open addressing over mask + 1 slots (a power of 2), empty between
 * searches; used[0, n) lists the slots this search made, in order, so that only they are
 * read and emptied again. It holds at most ACC_LOAD of its slots: a search sizes it to
 * twice its terms' document frequencies (or the collection's chunks), so that only an
 * index whose postings outnumber their frequency records fills it (RAG_ECORRUPT). */
typedef struct acc_table {
    acc_slot *slot;
    size_t *used;
    size_t n, mask;
} acc_table;

#define ACC_LOAD(mask) ((mask) + 1 - ((mask) + 1) / 4)  /* 3/4 of the slots */

/* A term's frequency in one document: its chunks' own tfs summed. */
typedef struct doc_tf {
    uint64_t doc;
    uint32_t tf, dl;
} doc_tf;

typedef struct scan_state {
    const unsigned char *prefix;
    size_t plen;
    acc_table *acc;        /* NULL: only count the term's documents (by_doc) */
    double w, k1, b, inv_avgdl;
    int by_doc;            /* also collect the term's document frequencies into dt */
    doc_tf *dt;
    size_t ndt, cap_dt;
    int unsorted;          /* a document's postings did not all come in one run */
    int rc;
} scan_state;

/* The slot of `id` in table a, or the empty slot where it goes. Ids are hashed in
 * aligned groups of 16 that keep their order within a group, so that a term's postings
 * (ascending ids, often close) touch neighbouring slots. */
static size_t acc_slot_of(const acc_table *a, uint64_t id)
{
    uint64_t group = ((id >> 4) * 0x9E3779B97F4A7C15ull) >> 16;
    size_t j = (size_t)((group & ~(uint64_t)15) | (id & 15)) & a->mask;
    while (a->slot[j].id != UINT64_MAX && a->slot[j].id != id)
        j = (j + 1) & a->mask;
    return j;
}

/* Adds `part` to the slot of `id` in table a, making the slot when absent. RAG_OK, or
 * RAG_ECORRUPT when the table holds its maximum (see acc_table). */
static int acc_add(acc_table *a, uint64_t id, uint64_t doc, double part)
{
    size_t j = acc_slot_of(a, id);
    acc_slot *e = &a->slot[j];
    if (e->id == UINT64_MAX) {
        if (a->n >= ACC_LOAD(a->mask))
            return rag_fail(RAG_ECORRUPT, "lexical index: the query's terms have more "
                            "postings than their frequency records count ('ragcore check "
                            "--repair' rebuilds the index)");
        e->id = id;
        e->doc = doc;
        e->score = 0;
        a->used[a->n++] = j;
    }
    e->score += part;
    return RAG_OK;
}

/* Empties the slots table a made. Can't fail. */
static void acc_reset(acc_table *a)
{
    for (size_t i = 0; i < a->n; i++)
        a->slot[a->used[i]].id = UINT64_MAX;
    a->n = 0;
}

/* Lucene's idf of a term held by df of n units (chunks or documents). */
static double bm25_idf(double n, double df)
{
    return log(1.0 + (n - df + 0.5) / (df + 0.5));
}

/* A term's share of a unit's score: weight w (idf times the term's query multiplicity),
 * frequency tf in a unit of length dl, inv_avgdl the units' count over their total length. */
static double bm25_part(double w, double tf, double dl, double k1, double b, double inv_avgdl)
{
    return w * tf * (k1 + 1) / (tf + k1 * (1 - b + b * dl * inv_avgdl));
}

/* Visits a run of one term's postings (rag_store_kv_prefix_scan under the term's
 * prefix): adds each chunk's share to s->acc and, by document, collects the documents'
 * own tfs into s->dt. Stops (1) at a key of another length or on an error (s->rc). */
static int accumulate(void *user, const rag_store_kv_ent *ents, size_t n)
{
    scan_state *s = user;
    for (size_t i = 0; i < n; i++) {
        const unsigned char *v = ents[i].val;
        size_t vlen = ents[i].vlen;
        if (ents[i].klen != s->plen + 8)
            return 1;
        if (vlen != POST_DOC && (vlen != POST_CHUNK || s->by_doc)) {
            s->rc = rag_fail(RAG_ECORRUPT, "lexical posting value of %zu bytes", vlen);
            return 1;
        }
        uint64_t id = rag_get_be64((const unsigned char *)ents[i].key + s->plen);
        uint64_t doc = vlen == POST_DOC ? id - rag_get_be32(v + 8) : id;
        uint32_t own = vlen == POST_DOC ? rag_get_be32(v + 16) : 0;
        double tf = rag_get_be32(v), dl = rag_get_be32(v + 4);
        if (s->acc && (s->rc = acc_add(s->acc, id, doc,
                                       bm25_part(s->w, tf, dl, s->k1, s->b, s->inv_avgdl))) !=
                          RAG_OK)
            return 1;
        if (!s->by_doc || own == 0)
            continue;
        doc_tf *last = s->ndt ? &s->dt[s->ndt - 1] : NULL;
        if (last && last->doc == doc) {
            last->tf += own;
            continue;
        }
        if (last && doc < last->doc)
            s->unsorted = 1;
        if (s->ndt == s->cap_dt) {
            size_t cap = s->cap_dt ? s->cap_dt * 2 : 256;
            doc_tf *q = rag_realloc(s->dt, cap * sizeof *q);
            if (!q) {
                s->rc = RAG_ENOMEM;
                return 1;
            }
            s->dt = q;
            s->cap_dt = cap;
        }
        s->dt[s->ndt++] = (doc_tf){doc, own, rag_get_be32(v + 12)};
    }
    return 0;
}

static int cmp_doc_tf(const void *a, const void *b)
{
    const doc_tf *x = a, *y = b;
    return x->doc < y->doc ? -1 : x->doc > y->doc;
}

/* Merges the entries of one document (only needed when its chunks' ids interleave with
 * another document's, which ingest never does) and returns the count left. */
static size_t doc_tf_merge(doc_tf *dt, size_t n)
{
    size_t m = 0;
    qsort(dt, n, sizeof *dt, cmp_doc_tf);
    for (size_t i = 0; i < n; i++) {
        if (m && dt[m - 1].doc == dt[i].doc)
            dt[m - 1].tf += dt[i].tf;
        else
            dt[m++] = dt[i];
    }
    return m;
}

/* Scans the postings under s->prefix (a term's statistics key and its 0x00), adding to
 * s->acc and, when s->by_doc, collecting the term's documents into s->dt; returns their
 * count (its document frequency) or a negative status. */
static long scan_term(rag_txn *txn, scan_state *s)
{
    s->ndt = 0;
    s->unsorted = 0;
    int rc = rag_store_kv_prefix_scan(txn, T_POSTINGS, s->prefix, s->plen, accumulate, s);
    if (rc < 0)
        return rc;
    if (s->rc != RAG_OK)
        return s->rc;
    return (long)(s->unsorted ? doc_tf_merge(s->dt, s->ndt) : s->ndt);
}

/* Max-heap order: higher score first, then lower id. */
static int before(const acc_slot *a, const acc_slot *b)
{
    return a->score > b->score || (a->score == b->score && a->id < b->id);
}

/* Restores the heap h[0, n) below i: a max-heap (best at the root) when worst_first is 0,
 * else a min-heap (worst at the root). */
static inline void sift(acc_slot *h, size_t n, size_t i, int worst_first)
{
    for (;;) {
        size_t l = 2 * i + 1, r = l + 1, m = i;
        if (l < n && (worst_first ? before(&h[m], &h[l]) : before(&h[l], &h[m])))
            m = l;
        if (r < n && (worst_first ? before(&h[m], &h[r]) : before(&h[r], &h[m])))
            m = r;
        if (m == i)
            return;
        acc_slot t = h[i];
        h[i] = h[m];
        h[m] = t;
        i = m;
    }
}

static void sift_down(acc_slot *h, size_t n, size_t i) { sift(h, n, i, 0); }
static void sift_worst(acc_slot *h, size_t n, size_t i) { sift(h, n, i, 1); }

/* Reorders c[0, n) so that its first min(k, n) entries are its best (by `before`), best
 * first, and returns that count; the others follow in no order. O(n log k). Can't fail. */
static size_t top_k(acc_slot *c, size_t n, size_t k)
{
    if (k > n)
        k = n;
    for (size_t i = k / 2; i-- > 0;)  /* a heap of the first k, the worst at the root */
        sift_worst(c, k, i);
    for (size_t i = k; i < n; i++) {
        if (k > 0 && before(&c[i], &c[0])) {
            acc_slot t = c[0];
            c[0] = c[i];
            c[i] = t;
            sift_worst(c, k, 0);
        }
    }
    for (size_t m = k; m > 1; m--) {  /* worst last */
        acc_slot t = c[0];
        c[0] = c[m - 1];
        c[m - 1] = t;
        sift_worst(c, m - 1, 0);
    }
    return k;
}

/* top_k when k is small beside n; otherwise 0 (next_best then heaps all n, which costs
 * less than sorting the k best when they are most of them). */
static size_t top_k_or_none(acc_slot *c, size_t n, size_t k)
{
    return k <= n / 4 ? top_k(c, n, k) : 0;
}

/* Walks c[0, n) best first: the first `top` entries are already in order (top_k); past
 * them the rest is made a heap once and popped. *i is the walk's position (start 0);
 * returns 0 when all were walked. */
static int next_best(acc_slot *c, size_t n, size_t top, size_t *i, acc_slot *out)
{
    if (*i < top) {
        *out = c[(*i)++];
        return 1;
    }
    acc_slot *h = c + top;
    size_t m = n - *i;  /* entries left in the heap h */
    if (m == 0)
        return 0;
    if (*i == top)
        for (size_t j = m / 2; j-- > 0;)
            sift_down(h, m, j);
    *out = h[0];
    h[0] = h[m - 1];
    sift_down(h, m - 1, 0);
    (*i)++;
    return 1;
}

/* Chunks by document key, then best first. */
static int cmp_chunk_by_doc(const void *a, const void *b)
{
    const acc_slot *x = a, *y = b;
    if (x->doc != y->doc)
        return x->doc < y->doc ? -1 : 1;
    return before(x, y) ? -1 : before(y, x) ? 1 : 0;
}

/* The frequency that `given` holds in dfs (its df or doc_df) for term (len bytes), never
 * below the store's own `own` (statistics gathered a moment earlier may lag this store);
 * `own` when it lists none. */
static double given_df(const rag_bm25_stats *given, const uint64_t *dfs, const char *term,
                       size_t len, uint64_t own)
{
    for (size_t i = 0; i < given->n_terms; i++)
        if (given->terms[i] && strlen(given->terms[i]) == len &&
            memcmp(given->terms[i], term, len) == 0)
            return (double)(dfs[i] > own ? dfs[i] : own);
    return (double)own;
}

/* The number of documents holding the analysed term (len bytes), counted from its
 * postings as a search by document counts them. */
static int doc_df_count(rag_txn *txn, uint32_t coll, const char *term, size_t len,
                        scan_state *s, uint64_t *out)
{
    unsigned char key[DF_KEY_MAX + 1];
    *out = 0;
    if (len == 0 || len > RAG_LEX_MAX_TERM)
        return RAG_OK;
    size_t kl = df_key(txn, key, coll, term, len);
    key[kl] = 0;
    s->prefix = key;
    s->plen = kl + 1;
    long n = scan_term(txn, s);
    if (n < 0)
        return (int)n;
    *out = (uint64_t)n;
    return RAG_OK;
}

int rag_lexical_query_stats(rag_txn *txn, const rag_analyzer *an, uint32_t coll,
                            const char *query, size_t len, rag_bm25_stats **out)
{
    term_bag bag;
    rag_bm25_stats *st = NULL;
    lex_totals t;
    scan_state s;
    memset(&s, 0, sizeof s);
    s.by_doc = 1; /* no accumulator: the scans only count documents */
    *out = NULL;
    int rc = totals_get(txn, coll, &t);
    if (rc == RAG_OK)
        rc = bag_fill(&bag, an, query, len);
    else
        memset(&bag, 0, sizeof bag);
    if (rc != RAG_OK)
        goto cleanup;
    /* one block: the struct, the dfs, the document dfs, the term pointers, the
     * NUL-terminated terms */
    size_t n = bag.n, size = sizeof *st + n * (2 * sizeof(uint64_t) + sizeof(char *)) +
                               bag.pool_len + n;
    st = rag_calloc(1, size);
    if (!st) {
        rc = RAG_ENOMEM;
        goto cleanup;
    }
    uint64_t *df = (uint64_t *)(st + 1), *doc_df = df + n;
    const char **terms = (const char **)(doc_df + n);
    char *pool = (char *)(terms + n);
    st->chunks = t.chunks;
    st->total_len = t.total;
    st->terms = terms;
    st->df = df;
    if (!t.chunk_only) { /* the chunk-only format gives no document statistics */
        st->docs = t.docs;
        st->doc_total_len = t.doc_total;
        st->doc_df = doc_df;
    }
    for (size_t i = 0; i < bag.cap; i++) {
        const term_ent *e = &bag.slots[i];
        uint32_t d = 0;
        if (!e->len)
            continue;
        if ((rc = rag_lexical_df(txn, coll, bag.pool + e->off, e->len, &d)) != RAG_OK)
            goto cleanup;
        /* (no documents: no statistics record, e.g. while a rebuild purges the old
         * entries, whose postings a document count cannot read) */
        if (d > 0 && st->doc_df && st->docs > 0 &&
            (rc = doc_df_count(txn, coll, bag.pool + e->off, e->len, &s,
                               &doc_df[st->n_terms])) != RAG_OK)
            goto cleanup;
        memcpy(pool, bag.pool + e->off, e->len);
        pool[e->len] = '\0';
        terms[st->n_terms] = pool;
        df[st->n_terms++] = d;
        pool += e->len + 1;
    }
    *out = st;
    st = NULL;
cleanup:
    bag_free(&bag);
    free(s.dt);
    free(st);
    return rc;
}

/* ---- search scratch ------------------------------------------------------------------ */

/* A search's working memory: its accumulators and the arrays it selects from. Each thread
 * keeps one between searches (so a search neither allocates nor faults in fresh pages),
 * but not the parts that outgrew SCRATCH_KEEP entries (at most about 10 MiB are kept: two
 * tables of 2 MiB and their 0.5 MiB used lists, two candidate arrays of 2 MiB, 1 MiB of
 * document frequencies); a search that finds its thread's scratch busy
 * (rag_lexical_search called from `allow`) uses one of its own. */
typedef struct lex_scratch {
    acc_slot *acc, *dacc;      /* chunk and document tables, alloc / dalloc slots, empty */
    size_t *used, *dused;      /* their used lists (as many entries as slots) */
    size_t alloc, dalloc;
    acc_slot *cand, *ccand;    /* candidates: the unit scored, a document's chunks */
    size_t cap_cand, cap_ccand;
    doc_tf *dt;
    size_t cap_dt;
    int busy;
} lex_scratch;

#define SCRATCH_KEEP ((size_t)1 << 16)  /* entries of each array a thread keeps */

static pthread_key_t scratch_key;
static pthread_once_t scratch_once = PTHREAD_ONCE_INIT;
static int scratch_key_ok;

static void scratch_free(void *p)
{
    lex_scratch *sc = p;
    if (!sc)
        return;
    free(sc->acc);
    free(sc->dacc);
    free(sc->used);
    free(sc->dused);
    free(sc->cand);
    free(sc->ccand);
    free(sc->dt);
    free(sc);
}

static void scratch_key_make(void)
{
    scratch_key_ok = pthread_key_create(&scratch_key, scratch_free) == 0;
}

/* This thread's idle scratch, marked busy, or a new one of the caller's own (*own 1, freed
 * by scratch_release) when it is busy or cannot be kept. NULL: RAG_ENOMEM. */
static lex_scratch *scratch_acquire(int *own)
{
    lex_scratch *sc = NULL;
    pthread_once(&scratch_once, scratch_key_make);
    if (scratch_key_ok)
        sc = pthread_getspecific(scratch_key);
    *own = 0;
    if (sc && !sc->busy) {
        sc->busy = 1;
        return sc;
    }
    if (!(sc = rag_calloc(1, sizeof *sc)))
        return NULL;
    sc->busy = 1;
    if (scratch_key_ok && !pthread_getspecific(scratch_key) &&
        pthread_setspecific(scratch_key, sc) == 0)
        return sc;
    *own = 1;
    return sc;
}

/* Gives back a scratch (its tables already emptied): frees one of the caller's own, and
 * the tables of the thread's when they outgrew SCRATCH_KEEP. Can't fail. */
static void scratch_release(lex_scratch *sc, int own)
{
    if (!sc)
        return;
    if (own) {
        scratch_free(sc);
        return;
    }
    if (sc->alloc > SCRATCH_KEEP) {
        free(sc->acc);
        free(sc->used);
        sc->acc = NULL;
        sc->used = NULL;
        sc->alloc = 0;
    }
    if (sc->dalloc > SCRATCH_KEEP) {
        free(sc->dacc);
        free(sc->dused);
        sc->dacc = NULL;
        sc->dused = NULL;
        sc->dalloc = 0;
    }
    if (sc->cap_cand > SCRATCH_KEEP) {
        free(sc->cand);
        sc->cand = NULL;
        sc->cap_cand = 0;
    }
    if (sc->cap_ccand > SCRATCH_KEEP) {
        free(sc->ccand);
        sc->ccand = NULL;
        sc->cap_ccand = 0;
    }
    if (sc->cap_dt > SCRATCH_KEEP) {
        free(sc->dt);
        sc->dt = NULL;
        sc->cap_dt = 0;
    }
    sc->busy = 0;
}

/* Points table a at the first cap slots of *slot (allocated to *alloc slots, all empty),
 * growing the allocation when smaller. RAG_OK or RAG_ENOMEM. */
static int table_take(acc_slot **slot, size_t **used, size_t *alloc, size_t cap, acc_table *a)
{
    if (*alloc < cap) {
        free(*slot);
        free(*used);
        *alloc = 0;
        *slot = rag_malloc(cap * sizeof **slot);
        *used = rag_malloc(cap * sizeof **used);
        if (!*slot || !*used) {
            free(*slot);
            free(*used);
            *slot = NULL;
            *used = NULL;
            return RAG_ENOMEM;
        }
        for (size_t i = 0; i < cap; i++)
            (*slot)[i].id = UINT64_MAX;
        *alloc = cap;
    }
    *a = (acc_table){*slot, *used, 0, cap - 1};
    return RAG_OK;
}

/* Copies the slots table a made into *arr (grown to hold them). RAG_OK or RAG_ENOMEM. */
static int table_copy(const acc_table *a, acc_slot **arr, size_t *cap)
{
    if (*cap < a->n) {
        acc_slot *q = rag_malloc(a->n * sizeof *q);
        if (!q)
            return RAG_ENOMEM;
        free(*arr);
        *arr = q;
        *cap = a->n;
    }
    for (size_t i = 0; i < a->n; i++)
        (*arr)[i] = a->slot[a->used[i]];
    return RAG_OK;
}

/* ---- search ------------------------------------------------------------------------- */

/* The chunks of table acc, best first, into scores and ids while `allow` (NULL: all)
 * accepts them, until k are found; returns the count or RAG_ENOMEM. */
static int pick_chunks(lex_scratch *sc, const acc_table *acc, int k, rag_chunk_pred allow,
                       void *allow_user, float *scores, uint64_t *ids)
{
    int found = 0;
    size_t i = 0, top;
    acc_slot c;
    if (table_copy(acc, &sc->cand, &sc->cap_cand) != RAG_OK)
        return RAG_ENOMEM;
    top = top_k_or_none(sc->cand, acc->n, (size_t)k);
    while (found < k && next_best(sc->cand, acc->n, top, &i, &c)) {
        if (allow && !allow(allow_user, c.id))
            continue;
        scores[found] = (float)c.score;
        ids[found++] = c.id;
    }
    return found;
}

/* The documents of table dacc, best first, each as its best chunk of table acc (by chunk
 * score) that `allow` accepts, into scores and ids until k are found; returns the count
 * or RAG_ENOMEM. A document whose best chunk is refused falls back to its next ones (the
 * chunks are then sorted by document, once). */
static int pick_docs(lex_scratch *sc, const acc_table *acc, acc_table *dacc, int k,
                     rag_chunk_pred allow, void *allow_user, float *scores, uint64_t *ids)
{
    size_t nc = 0, i = 0, top;
    int found = 0;
    acc_slot d;
    for (size_t j = 0; j < dacc->n; j++)
        dacc->slot[dacc->used[j]].doc = UINT64_MAX;
    for (size_t j = 0; j < acc->n; j++) {
        const acc_slot *c = &acc->slot[acc->used[j]];
        acc_slot *e = &dacc->slot[acc_slot_of(dacc, c->doc)];
        if (e->id != UINT64_MAX && (e->doc == UINT64_MAX || c->score > e->best ||
                                    (c->score == e->best && c->id < e->doc))) {
            e->doc = c->id;
            e->best = c->score;
        }
    }
    if (table_copy(dacc, &sc->cand, &sc->cap_cand) != RAG_OK)
        return RAG_ENOMEM;
    top = top_k_or_none(sc->cand, dacc->n, (size_t)k);
    while (found < k && next_best(sc->cand, dacc->n, top, &i, &d)) {
        uint64_t pick = UINT64_MAX;
        if (d.doc == UINT64_MAX)
            continue;
        if (!allow || allow(allow_user, d.doc)) {
            pick = d.doc;
        } else {
            size_t lo = 0, hi;
            if (!nc) {
                if (table_copy(acc, &sc->ccand, &sc->cap_ccand) != RAG_OK)
                    return RAG_ENOMEM;
                nc = acc->n;
                qsort(sc->ccand, nc, sizeof *sc->ccand, cmp_chunk_by_doc);
            }
            const acc_slot *cs = sc->ccand;
            hi = nc;
            while (lo < hi) {
                size_t mid = lo + (hi - lo) / 2;
                if (cs[mid].doc < d.id)
                    lo = mid + 1;
                else
                    hi = mid;
            }
            for (; pick == UINT64_MAX && lo < nc && cs[lo].doc == d.id; lo++)
                if (cs[lo].id != d.doc && allow(allow_user, cs[lo].id))
                    pick = cs[lo].id;
        }
        if (pick != UINT64_MAX) {
            scores[found] = (float)d.score;
            ids[found++] = pick;
        }
    }
    return found;
}

int rag_lexical_search(rag_txn *txn, const rag_analyzer *an, uint32_t coll, const char *query,
                       size_t len, const rag_bm25_params *params, const rag_bm25_stats *given,
                       int k, rag_chunk_pred allow, void *allow_user, float *scores,
                       uint64_t *ids)
{
    rag_bm25_params p;
    term_bag bag;
    lex_scratch *sc = NULL;
    acc_table acc = {NULL, NULL, 0, 0}, dacc = {NULL, NULL, 0, 0};
    uint32_t *dfs = NULL;
    unsigned char *keys = NULL; /* each term's statistics key, then NUL: its postings' prefix */
    size_t *klens = NULL;
    lex_totals t;
    uint64_t sum_df = 0, want;
    size_t cap = 16;
    scan_state s;
    int rc, found = 0, own = 0;
    memset(&bag, 0, sizeof bag);
    memset(&s, 0, sizeof s);
    if (params)
        p = *params;
    else
        rag_bm25_params_init(&p);
    if (k < 1)
        return rag_fail(RAG_EINVAL, "lexical search: k must be at least 1, got %d", k);
    if (!(p.k1 >= 0 && p.k1 <= 100) || !(p.b >= 0 && p.b <= 1))
        return rag_fail(RAG_EINVAL, "BM25 parameters out of range: k1=%g (0..100), b=%g (0..1)",
                        (double)p.k1, (double)p.b);
    if (p.unit != RAG_LEXICAL_DOCUMENT && p.unit != RAG_LEXICAL_CHUNK)
        return rag_fail(RAG_EINVAL, "lexical search: unknown unit %d", p.unit);
    if ((rc = rag_store_hashkey_pending_txn(txn)) != 0) /* postings under two hash keys */
        return rc < 0 ? rc : rag_fail(RAG_EBUSY, "lexical search: the store's hash key is being "
                                      "replaced (the next read-write open finishes it)");
    if ((rc = totals_get(txn, coll, &t)) != RAG_OK || t.chunks == 0)
        return rc;
    /* by document, with the store's own document statistics or the given ones; given
     * statistics without document fields score by chunk */
    int given_docs = given && given->doc_df && given->docs > 0;
    int by_doc = p.unit == RAG_LEXICAL_DOCUMENT && (!given || given_docs) && !t.chunk_only &&
                 t.docs > 0;
    if ((rc = bag_fill(&bag, an, query, len)) != RAG_OK || bag.n == 0)
        goto cleanup;
    /* document frequencies first: they size the accumulator and weight the terms; each
     * term's key is made once (on an encrypted store a keyed hash) for both lookups */
    dfs = rag_calloc(bag.cap, sizeof *dfs);
    keys = rag_malloc(bag.cap * (DF_KEY_MAX + 1));
    klens = rag_calloc(bag.cap, sizeof *klens);
    if (!dfs || !keys || !klens) {
        rc = RAG_ENOMEM;
        goto cleanup;
    }
    for (size_t i = 0; i < bag.cap; i++) {
        const term_ent *e = &bag.slots[i];
        if (!e->len || e->len > RAG_LEX_MAX_TERM)
            continue;
        unsigned char *key = keys + i * (DF_KEY_MAX + 1);
        klens[i] = df_key(txn, key, coll, bag.pool + e->off, e->len);
        if ((rc = df_get(txn, key, klens[i], &dfs[i])) != RAG_OK)
            goto cleanup;
        key[klens[i]] = 0;
        sum_df += dfs[i];
    }
    if (sum_df == 0)
        goto cleanup;
    want = sum_df < t.chunks ? sum_df : t.chunks;
    while (cap < want * 2)
        cap *= 2;
    if (!(sc = scratch_acquire(&own))) {
        rc = RAG_ENOMEM;
        goto cleanup;
    }
    s.dt = sc->dt; /* the scan grows it; handed back to the scratch in cleanup */
    s.cap_dt = sc->cap_dt;
    if ((rc = table_take(&sc->acc, &sc->used, &sc->alloc, cap, &acc)) != RAG_OK ||
        (by_doc && (rc = table_take(&sc->dacc, &sc->dused, &sc->dalloc, cap, &dacc)) != RAG_OK))
        goto cleanup;
    /* the weights: the store's own statistics, or the given collection-wide ones */
    double N = given ? (double)given->chunks : (double)t.chunks;
    double all_len = given ? (double)given->total_len : (double)t.total;
    double Nd = given_docs ? (double)given->docs : (double)t.docs;
    double doc_len = given_docs ? (double)given->doc_total_len : (double)t.doc_total;
    double inv_avgdl_doc = doc_len > 0 ? Nd / doc_len : 1.0;
    s.acc = &acc;
    s.k1 = p.k1;
    s.b = p.b;
    s.inv_avgdl = all_len > 0 ? N / all_len : 1.0;
    s.by_doc = by_doc;
    for (size_t i = 0; i < bag.cap; i++) {
        const term_ent *e = &bag.slots[i];
        if (!e->len || !dfs[i])
            continue;
        const char *term = bag.pool + e->off;
        double df = given ? given_df(given, given->df, term, e->len, dfs[i]) : dfs[i];
        s.w = bm25_idf(N, df) * e->tf;
        s.prefix = keys + i * (DF_KEY_MAX + 1);
        s.plen = klens[i] + 1;
        long scanned = scan_term(txn, &s);
        if (scanned < 0) {
            rc = (int)scanned;
            goto cleanup;
        }
        rc = RAG_OK;
        if (!by_doc)
            continue;
        /* the term's documents: their count is its document frequency here */
        size_t ndt = (size_t)scanned;
        double ddf = given_docs ? given_df(given, given->doc_df, term, e->len, ndt)
                                : (double)ndt;
        double dw = bm25_idf(Nd, ddf) * e->tf;
        for (size_t j = 0; j < ndt && rc == RAG_OK; j++)
            rc = acc_add(&dacc, s.dt[j].doc, s.dt[j].doc,
                         bm25_part(dw, s.dt[j].tf, s.dt[j].dl, p.k1, p.b, inv_avgdl_doc));
        if (rc != RAG_OK)
            goto cleanup;
    }
    if (by_doc)
        rc = pick_docs(sc, &acc, &dacc, k, allow, allow_user, scores, ids);
    else
        rc = pick_chunks(sc, &acc, k, allow, allow_user, scores, ids);
    if (rc >= 0) {
        found = rc;
        rc = RAG_OK;
    }
cleanup:
    if (sc) {
        acc_reset(&acc);
        acc_reset(&dacc);
        sc->dt = s.dt;
        sc->cap_dt = s.cap_dt;
    }
    scratch_release(sc, own);
    bag_free(&bag);
    free(dfs);
    free(keys);
    free(klens);
    return rc < 0 ? rc : found;
}

/* ---- rebuilding from the chunk texts ---------------------------------------------------- */

#define LEX_PURGE_KEYS 65536  /* lexical entries deleted per rebuild transaction */
#define LEX_ADD_CHUNKS 1024   /* chunks indexed per rebuild transaction */

/* Live chunks to index again, each with the title of the document that lists it. */
typedef struct lex_plan {
    uint64_t *ids;
    uint32_t *doc;           /* index into titles */
    size_t n, cap;
    char **titles;
    size_t ntitles, cap_titles;
} lex_plan;

static int lex_plan_doc(void *user, const rag_doc_rec *d)
{
    lex_plan *lp = user;
    if (lp->ntitles == lp->cap_titles) {
        size_t cap = lp->cap_titles ? lp->cap_titles * 2 : 256;
        char **q = rag_realloc(lp->titles, cap * sizeof *q);
        if (!q)
            return RAG_ENOMEM;
        lp->titles = q;
        lp->cap_titles = cap;
    }
    if (!(lp->titles[lp->ntitles] = rag_strdup(d->title ? d->title : "")))
        return RAG_ENOMEM;
    for (uint32_t i = 0; i < d->nchunks; i++) {
        if (lp->n == lp->cap) {
            size_t cap = lp->cap ? lp->cap * 2 : 1024;
            uint64_t *q = rag_realloc(lp->ids, cap * sizeof *q);
            if (!q)
                return RAG_ENOMEM;
            lp->ids = q;
            uint32_t *r = rag_realloc(lp->doc, cap * sizeof *r);
            if (!r)
                return RAG_ENOMEM;
            lp->doc = r;
            lp->cap = cap;
        }
        lp->ids[lp->n] = d->chunk_ids[i];
        lp->doc[lp->n++] = (uint32_t)lp->ntitles;
    }
    lp->ntitles++;
    return 0;
}

static void lex_plan_free(lex_plan *lp)
{
    for (size_t i = 0; i < lp->ntitles; i++)
        free(lp->titles[i]);
    free(lp->titles);
    free(lp->ids);
    free(lp->doc);
}

/* One transaction of a lexical rebuild. rag_store_write may run it again from scratch, so
 * it only reads its inputs and resets its outputs. */
typedef struct lex_batch_arg {
    const lex_plan *lp;
    const rag_lex_rebuild_hooks *hooks;
    const rag_analyzer *an;
    uint32_t coll;
    size_t from, to;         /* chunks [from, to) of the plan */
    int last;                /* the final batch clears the rebuild mark */
    size_t deleted, added;   /* outputs */
} lex_batch_arg;

/* Marks the rebuild as in progress and deletes up to LEX_PURGE_KEYS old entries. */
static int lex_purge_fn(rag_txn *txn, void *user)
{
    lex_batch_arg *a = user;
    int rc = rag_lexical_rebuild_mark(txn, a->coll, 1);
    if (rc == RAG_OK)
        rc = rag_lexical_purge_some(txn, a->coll, LEX_PURGE_KEYS, &a->deleted);
    if (rc == RAG_OK && a->hooks && a->hooks->purge)
        rc = a->hooks->purge(a->hooks->user, txn, a->coll);
    return rc;
}

/* Indexes the plan's chunks [from, to) (a whole document) with its title, as ingest does.
 * A chunk that is gone or does not decode is left out (the check reports it), as is one
 * already indexed (listed by two documents: indexed once). */
static int lex_add_doc(rag_txn *txn, lex_batch_arg *a, size_t from, size_t to)
{
    size_t n = to - from, m = 0;
    rag_chunk_rec **recs = rag_calloc(n, sizeof *recs);
    char **bufs = rag_calloc(n, sizeof *bufs);
    rag_lex_chunk *lc = rag_calloc(n, sizeof *lc);
    int rc = recs && bufs && lc ? RAG_OK : RAG_ENOMEM;
    for (size_t i = from; rc == RAG_OK && i < to; i++) {
        rag_chunk_rec *ch = NULL;
        int dup = 0;
        rc = rag_store_chunk_get(txn, a->coll, a->lp->ids[i], &ch);
        if (rc == RAG_ENOTFOUND || rc == RAG_ECORRUPT) {
            rag_clear_error();
            rc = RAG_OK;
            continue;
        }
        for (size_t j = 0; rc == RAG_OK && j < m; j++)
            dup |= lc[j].id == ch->id;
        if (rc == RAG_OK && !dup && (rc = rag_lexical_indexed(txn, a->coll, ch->id)) >= 0) {
            dup = rc == 1;
            rc = RAG_OK;
        }
        if (rc != RAG_OK || dup) {
            rag_chunk_rec_free(ch);
            continue;
        }
        recs[m] = ch;
        lc[m].id = ch->id;
        rc = rag_lexical_chunk_text(a->lp->titles[a->lp->doc[i]], ch->text, ch->text_len,
                                    &bufs[m], &lc[m].text, &lc[m].len);
        if (m > 0) { /* past what the chunk before holds, as ingest indexed it */
            size_t ov = rag_lexical_overlap(ch->start, ch->text_len, recs[m - 1]->end);
            lc[m].own = ch->text + ov;
            lc[m].own_len = ch->text_len - ov;
        }
        m++;
    }
    if (rc == RAG_OK)
        rc = rag_lexical_add_doc(txn, a->an, a->coll, lc, m);
    for (size_t i = 0; rc == RAG_OK && i < m; i++)
        if (a->hooks && a->hooks->chunk)
            rc = a->hooks->chunk(a->hooks->user, txn, a->coll, recs[i]);
    if (rc == RAG_OK)
        a->added += m;
    for (size_t i = 0; i < m; i++) {
        free(bufs[i]);
        rag_chunk_rec_free(recs[i]);
    }
    free(recs);
    free(bufs);
    free(lc);
    return rc;
}

/* Indexes the plan's chunks [from, to), which end at a document's end, document by
 * document. */
static int lex_add_fn(rag_txn *txn, void *user)
{
    lex_batch_arg *a = user;
    int rc = RAG_OK;
    a->added = 0;
    for (size_t i = a->from; rc == RAG_OK && i < a->to;) {
        size_t end = i + 1;
        while (end < a->to && a->lp->doc[end] == a->lp->doc[i])
            end++;
        rc = lex_add_doc(txn, a, i, end);
        i = end;
    }
    if (rc == RAG_OK && a->last)
        rc = rag_lexical_rebuild_mark(txn, a->coll, 0);
    return rc;
}

int rag_lexical_rebuild(rag_store *st, const char *coll_name, uint32_t coll,
                        const rag_lex_rebuild_hooks *hooks, uint64_t *indexed, char *lang,
                        size_t langsz)
{
    lex_plan lp;
    memset(&lp, 0, sizeof lp);
    rag_analyzer *an = NULL;
    rag_txn *txn = NULL;
    rag_coll_rec rec;
    *indexed = 0;
    int rc = rag_store_read(st, &txn);
    if (rc == RAG_OK)
        rc = rag_store_coll_get(txn, coll_name, &rec);
    if (rc == RAG_OK)
        rc = rag_store_doc_scan(txn, coll, lex_plan_doc, &lp);
    rag_txn_end(txn);
    if (rc != RAG_OK)
        goto cleanup;
    snprintf(lang, langsz, "%.*s", (int)sizeof rec.language,
             rec.language[0] ? rec.language : "english");
    if ((rc = rag_analyzer_create(lang, 1, &an)) != RAG_OK)
        goto cleanup;
    lex_batch_arg a = {&lp, hooks, an, coll, 0, 0, 0, 0, 0};
    do {
        if ((rc = rag_store_write(st, lex_purge_fn, &a)) != RAG_OK)
            goto cleanup;
        if (hooks && hooks->committed)
            hooks->committed(hooks->user);
    } while (a.deleted == LEX_PURGE_KEYS);
    for (size_t from = 0;; from = a.to) {
        a.from = from;
        a.to = lp.n - from < LEX_ADD_CHUNKS ? lp.n : from + LEX_ADD_CHUNKS;
        while (a.to < lp.n && lp.doc[a.to] == lp.doc[a.to - 1]) /* a document at a time */
            a.to++;
        a.last = a.to == lp.n;
        if ((rc = rag_store_write(st, lex_add_fn, &a)) != RAG_OK)
            goto cleanup;
        if (hooks && hooks->committed)
            hooks->committed(hooks->user);
        *indexed += a.added;
        if (a.last)
            break;
    }
cleanup:
    rag_analyzer_free(an);
    lex_plan_free(&lp);
    return rc;
}
