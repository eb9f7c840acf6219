/* neardup.c - exact (normalised XXH3) and near (MinHash over word shingles, LSH) duplicates. */
#include "neardup.h"

#include "status.h"
#include "text.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <utf8proc.h>
#include <xxhash.h>

/* ---- u64 -> u32 open-addressing map ------------------------------------------------------- */

typedef struct u64map {
    uint64_t *keys;
    uint32_t *vals;
    unsigned char *used;
    size_t cap, count; /* cap is a power of two; load kept <= 1/2 */
} u64map;

static size_t slot_of(uint64_t key, size_t cap)
{
    return (size_t)((key * 0x9E3779B97F4A7C15ull) >> 17) & (cap - 1);
}

static uint32_t *map_find(const u64map *m, uint64_t key)
{
    if (!m->cap)
        return NULL;
    for (size_t s = slot_of(key, m->cap);; s = (s + 1) & (m->cap - 1)) {
        if (!m->used[s])
            return NULL;
        if (m->keys[s] == key)
            return &m->vals[s];
    }
}

/* Inserts or overwrites; the caller reserved room first, so this can't fail. */
static void map_put(u64map *m, uint64_t key, uint32_t val)
{
    size_t s = slot_of(key, m->cap);
    while (m->used[s] && m->keys[s] != key)
        s = (s + 1) & (m->cap - 1);
    if (!m->used[s]) {
        m->used[s] = 1;
        m->keys[s] = key;
        m->count++;
    }
    m->vals[s] = val;
}

/* Makes room for `more` new keys. RAG_ENOMEM leaves the map as it was. */
static int map_reserve(u64map *m, size_t more)
{
    if ((m->count + more) * 2 <= m->cap)
        return RAG_OK;
    size_t ncap = m->cap ? m->cap : 64;
    while ((m->count + more) * 2 > ncap)
        ncap *= 2;
    u64map n = {rag_malloc(ncap * sizeof(uint64_t)), rag_malloc(ncap * sizeof(uint32_t)),
                rag_calloc(ncap, 1), ncap, 0};
    if (!n.keys || !n.vals || !n.used) {
        free(n.keys);
        free(n.vals);
        free(n.used);
        return RAG_ENOMEM;
    }
    for (size_t s = 0; s < m->cap; s++)
        if (m->used[s])
            map_put(&n, m->keys[s], m->vals[s]);
    free(m->keys);
    free(m->vals);
    free(m->used);
    *m = n;
    return RAG_OK;
}

static void map_free(u64map *m)
{
    free(m->keys);
    free(m->vals);
    free(m->used);
    memset(m, 0, sizeof *m);
}

/* ---- normalisation and signatures ------------------------------------------------------- */

static uint64_t mix64(uint64_t z)
{
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

typedef struct normtext {
    uint64_t hash;     /* XXH3 of the normalised text */
    uint64_t *words;   /* XXH3 of each word */
    size_t nwords;
} normtext;

static int is_word_cp(utf8proc_int32_t cp)
{
    utf8proc_category_t c = utf8proc_category(cp);
    return (c >= UTF8PROC_CATEGORY_LU && c <= UTF8PROC_CATEGORY_NO);
}

static int is_space_cp(utf8proc_int32_t cp)
{
    utf8proc_category_t c = utf8proc_category(cp);
    return cp == '\t' || cp == '\n' || cp == '\v' || cp == '\f' || cp == '\r' ||
           c == UTF8PROC_CATEGORY_ZS || c == UTF8PROC_CATEGORY_ZL || c == UTF8PROC_CATEGORY_ZP;
}

/* Normalises text (see neardup.h) into nt: its hash and, when want_words, word hashes
 * (nt->words owned by the caller). */
static int normalise(const char *text, size_t len, int want_words, normtext *nt)
{
    memset(nt, 0, sizeof *nt);
    size_t bad = 0, line = 0;
    if (!rag_utf8_valid(text, len, &bad, &line))
        return rag_fail(RAG_EENCODING, "invalid UTF-8 (or NUL byte) at byte %zu (line %zu)",
                        bad, line);
    utf8proc_uint8_t *folded = NULL;
    utf8proc_ssize_t n = utf8proc_map((const utf8proc_uint8_t *)text, (utf8proc_ssize_t)len,
                                      &folded, UTF8PROC_STABLE | UTF8PROC_COMPAT |
                                      UTF8PROC_COMPOSE | UTF8PROC_CASEFOLD | UTF8PROC_IGNORE);
    if (n < 0)
        return rag_fail(n == UTF8PROC_ERROR_NOMEM ? RAG_ENOMEM : RAG_EENCODING,
                        "text normalisation failed: %s", utf8proc_errmsg(n));
    int rc = RAG_OK;
    unsigned char *out = rag_malloc((size_t)n + 1);
    uint64_t *words = want_words ? rag_malloc(((size_t)n / 2 + 1) * sizeof(uint64_t)) : NULL;
    if (!out || (want_words && !words)) {
        rc = RAG_ENOMEM;
        goto cleanup;
    }
    size_t o = 0, nw = 0, word_start = 0;
    int space = 0, in_word = 0;
    for (utf8proc_ssize_t i = 0; i <= n;) {
        utf8proc_int32_t cp = -1;
        utf8proc_ssize_t step = 1;
        if (i < n)
            step = utf8proc_iterate(folded + i, n - i, &cp);
        if (step <= 0) /* cannot happen on utf8proc's own output; treat as a separator */
            step = 1, cp = ' ';
        int word = i < n && is_word_cp(cp);
        if (in_word && !word) {
            if (want_words)
                words[nw++] = XXH3_64bits(out + word_start, o - word_start);
            in_word = 0;
        }
        if (i >= n)
            break;
        if (is_space_cp(cp)) {
            space = 1;
        } else {
            if (space && o > 0)
                out[o++] = ' ';
            space = 0;
            if (word && !in_word) {
                in_word = 1;
                word_start = o;
            }
            memcpy(out + o, folded + i, (size_t)step);
            o += (size_t)step;
        }
        i += step;
    }
    nt->hash = XXH3_64bits(out, o);
    nt->words = words;
    nt->nwords = nw;
    words = NULL;
cleanup:
    free(words);
    free(out);
    free(folded);
    return rc;
}

/* MinHash signature of the shingles of `nt` into sig[num_perm]; returns the number of
 * shingles (0: no words, signature meaningless). */
static size_t minhash(const normtext *nt, int k, const uint64_t *seeds, int num_perm,
                      uint32_t *sig)
{
    for (int p = 0; p < num_perm; p++)
        sig[p] = UINT32_MAX;
    if (nt->nwords == 0)
        return 0;
    size_t width = nt->nwords < (size_t)k ? nt->nwords : (size_t)k;
    size_t nsh = nt->nwords - width + 1;
    for (size_t i = 0; i < nsh; i++) {
        uint64_t x = XXH3_64bits(nt->words + i, width * sizeof(uint64_t));
        for (int p = 0; p < num_perm; p++) {
            uint32_t v = (uint32_t)(mix64(x ^ seeds[p]) >> 32);
            if (v < sig[p])
                sig[p] = v;
        }
    }
    return nsh;
}

static double sig_similarity(const uint32_t *a, const uint32_t *b, int num_perm)
{
    int eq = 0;
    for (int p = 0; p < num_perm; p++)
        eq += a[p] == b[p];
    return (double)eq / num_perm;
}

/* ---- the index ------------------------------------------------------------------------ */

typedef struct lsh_entry {
    uint32_t doc, next; /* next: entry index + 1 in the same bucket, 0 = end */
} lsh_entry;

struct rag_dedup {
    rag_dedup_config cfg;
    int rows, bands;
    uint64_t *seeds;
    char **ids;
    uint32_t *sigs;        /* count * num_perm */
    unsigned char *has_sig;
    uint32_t *stamp;       /* per doc: last query that saw it as a candidate */
    uint32_t query;
    size_t count, cap;
    u64map exact;          /* normalised hash -> doc */
    u64map buckets;        /* band key -> entry index + 1 of the bucket's head */
    lsh_entry *entries;
    size_t nentries, entries_cap;
};

/* Most rows per band such that a pair at the threshold is a candidate with p >= 0.99. */
static int rows_for(int num_perm, double threshold)
{
    for (int r = num_perm; r >= 1; r--) {
        int b = num_perm / r;
        double p = 1.0 - pow(1.0 - pow(threshold, r), b);
        if (p >= 0.99)
            return r;
    }
    return 1;
}

void rag_dedup_config_init(rag_dedup_config *cfg)
{
    cfg->num_perm = 128;
    cfg->shingle_words = 3;
    cfg->threshold = 0.5;
    cfg->near = 1;
}

static int check_config(const rag_dedup_config *c)
{
    if (c->num_perm < 16 || c->num_perm > 1024)
        return rag_fail(RAG_EINVAL, "dedup: num_perm %d out of range 16..1024", c->num_perm);
    if (c->shingle_words < 1 || c->shingle_words > 16)
        return rag_fail(RAG_EINVAL, "dedup: shingle_words %d out of range 1..16",
                        c->shingle_words);
    if (!(c->threshold > 0.0 && c->threshold <= 1.0))
        return rag_fail(RAG_EINVAL, "dedup: threshold %g out of range (0, 1]", c->threshold);
    return RAG_OK;
}

int rag_dedup_create(const rag_dedup_config *cfg, rag_dedup **out)
{
    if (!out)
        return rag_fail(RAG_EINVAL, "dedup: NULL output");
    *out = NULL;
    rag_dedup_config def;
    rag_dedup_config_init(&def);
    if (!cfg)
        cfg = &def;
    int rc = check_config(cfg);
    if (rc != RAG_OK)
        return rc;
    rag_dedup *d = rag_calloc(1, sizeof *d);
    if (!d)
        return RAG_ENOMEM;
    d->cfg = *cfg;
    d->seeds = rag_malloc((size_t)cfg->num_perm * sizeof(uint64_t));
    if (!d->seeds) {
        free(d);
        return RAG_ENOMEM;
    }
    uint64_t state = 0x5EED0F0DDBA11ull;
    for (int p = 0; p < cfg->num_perm; p++)
        d->seeds[p] = mix64(state += 0x9E3779B97F4A7C15ull);
    d->rows = rows_for(cfg->num_perm, cfg->threshold);
    d->bands = cfg->num_perm / d->rows;
    *out = d;
    return RAG_OK;
}

void rag_dedup_free(rag_dedup *d)
{
    if (!d)
        return;
    for (size_t i = 0; i < d->count; i++)
        free(d->ids[i]);
    free(d->ids);
    free(d->sigs);
    free(d->has_sig);
    free(d->stamp);
    free(d->seeds);
    free(d->entries);
    map_free(&d->exact);
    map_free(&d->buckets);
    free(d);
}

size_t rag_dedup_count(const rag_dedup *d)
{
    return d ? d->count : 0;
}

static uint64_t band_key(const rag_dedup *d, const uint32_t *sig, int band)
{
    return XXH3_64bits_withSeed(sig + band * d->rows, (size_t)d->rows * sizeof(uint32_t),
                                (uint64_t)band + 1);
}

/* Grows the per-doc arrays and the maps so one more doc can be recorded without failing. */
static int reserve_doc(rag_dedup *d)
{
    if (d->count == d->cap) {
        size_t ncap = d->cap ? d->cap * 2 : 64;
        char **ids = rag_realloc(d->ids, ncap * sizeof *ids);
        if (!ids)
            return RAG_ENOMEM;
        d->ids = ids;
        uint32_t *sigs = rag_realloc(d->sigs, ncap * (size_t)d->cfg.num_perm * sizeof(uint32_t));
        if (!sigs)
            return RAG_ENOMEM;
        d->sigs = sigs;
        unsigned char *has = rag_realloc(d->has_sig, ncap);
        if (!has)
            return RAG_ENOMEM;
        d->has_sig = has;
        uint32_t *stamp = rag_realloc(d->stamp, ncap * sizeof(uint32_t));
        if (!stamp)
            return RAG_ENOMEM;
        d->stamp = stamp;
        d->cap = ncap;
    }
    if (d->nentries + (size_t)d->bands > d->entries_cap) {
        size_t ncap = d->entries_cap ? d->entries_cap * 2 : 1024;
        while (ncap < d->nentries + (size_t)d->bands)
            ncap *= 2;
        lsh_entry *e = rag_realloc(d->entries, ncap * sizeof *e);
        if (!e)
            return RAG_ENOMEM;
        d->entries = e;
        d->entries_cap = ncap;
    }
    if (map_reserve(&d->exact, 1) != RAG_OK || map_reserve(&d->buckets, (size_t)d->bands) != RAG_OK)
        return RAG_ENOMEM;
    return RAG_OK;
}

/* Looks a text's exact key and signature (nsh shingles; 0: none) up in the index and,
 * when it is new and id is not NULL, records it under id. */
static int lookup_sig(rag_dedup *d, const char *id, uint64_t hash, const uint32_t *sig,
                      size_t nsh, rag_dup_match *match)
{
    memset(match, 0, sizeof *match);
    uint32_t *hit = map_find(&d->exact, hash);
    if (hit) {
        match->kind = RAG_DUP_EXACT;
        match->canonical_id = d->ids[*hit];
        match->similarity = 1.0;
        return RAG_OK;
    }
    if (nsh > 0) {
        double best = -1.0;
        size_t best_doc = 0;
        if (++d->query == 0) { /* stamp wrap-around: forget old stamps */
            memset(d->stamp, 0, d->count * sizeof(uint32_t));
            d->query = 1;
        }
        for (int b = 0; b < d->bands; b++) {
            uint32_t *head = map_find(&d->buckets, band_key(d, sig, b));
            for (uint32_t e = head ? *head : 0; e; e = d->entries[e - 1].next) {
                uint32_t doc = d->entries[e - 1].doc;
                if (d->stamp[doc] == d->query)
                    continue;
                d->stamp[doc] = d->query;
                double s = sig_similarity(sig, d->sigs + (size_t)doc * d->cfg.num_perm,
                                          d->cfg.num_perm);
                if (s > best) {
                    best = s;
                    best_doc = doc;
                }
            }
        }
        if (best >= d->cfg.threshold) {
            match->kind = RAG_DUP_NEAR;
            match->canonical_id = d->ids[best_doc];
            match->similarity = best;
            return RAG_OK;
        }
    }
    if (!id)
        return RAG_OK; /* check only */
    /* Record a new canonical text. */
    int rc = reserve_doc(d);
    if (rc != RAG_OK)
        return rc;
    char *copy = rag_strdup(id);
    if (!copy)
        return RAG_ENOMEM;
    size_t doc = d->count++;
    d->ids[doc] = copy;
    d->stamp[doc] = 0;
    d->has_sig[doc] = nsh > 0;
    memcpy(d->sigs + doc * (size_t)d->cfg.num_perm, sig, (size_t)d->cfg.num_perm * sizeof(uint32_t));
    map_put(&d->exact, hash, (uint32_t)doc);
    if (nsh > 0) {
        for (int b = 0; b < d->bands; b++) {
            uint64_t key = band_key(d, sig, b);
            uint32_t *head = map_find(&d->buckets, key);
            d->entries[d->nentries].doc = (uint32_t)doc;
            d->entries[d->nentries].next = head ? *head : 0;
            d->nentries++;
            map_put(&d->buckets, key, (uint32_t)d->nentries);
        }
    }
    return RAG_OK;
}

static int dedup_lookup(rag_dedup *d, const char *id, const char *text, size_t len,
                        rag_dup_match *match)
{
    if (!d || !match || (!text && len))
        return rag_fail(RAG_EINVAL, "dedup: NULL argument");
    memset(match, 0, sizeof *match);
    normtext nt;
    int near = d->cfg.near;
    int rc = normalise(text ? text : "", len, near, &nt);
    if (rc != RAG_OK)
        return rc;
    size_t nsh = 0;
    uint32_t *sig = rag_malloc((size_t)d->cfg.num_perm * sizeof(uint32_t));
    if (!sig) {
        rc = RAG_ENOMEM;
        goto cleanup;
    }
    if (near)
        nsh = minhash(&nt, d->cfg.shingle_words, d->seeds, d->cfg.num_perm, sig);
    rc = lookup_sig(d, id, nt.hash, sig, nsh, match);
cleanup:
    free(sig);
    free(nt.words);
    return rc;
}

int rag_dedup_add(rag_dedup *d, const char *id, const char *text, size_t len,
                  rag_dup_match *match)
{
    if (!id)
        return rag_fail(RAG_EINVAL, "dedup: NULL id");
    return dedup_lookup(d, id, text, len, match);
}

int rag_dedup_check(rag_dedup *d, const char *text, size_t len, rag_dup_match *match)
{
    return dedup_lookup(d, NULL, text, len, match);
}

int rag_dedup_text_hash(const char *text, size_t len, uint64_t *hash)
{
    if (!hash || (!text && len))
        return rag_fail(RAG_EINVAL, "dedup hash: NULL argument");
    normtext nt;
    int rc = normalise(text ? text : "", len, 0, &nt);
    if (rc == RAG_OK)
        *hash = nt.hash;
    return rc;
}

int rag_dedup_similarity(const rag_dedup_config *cfg, const char *a, size_t alen,
                         const char *b, size_t blen, double *sim)
{
    if (!sim || (!a && alen) || (!b && blen))
        return rag_fail(RAG_EINVAL, "dedup similarity: NULL argument");
    rag_dedup *d = NULL;
    normtext na = {0}, nb = {0};
    uint32_t *sa = NULL, *sb = NULL;
    int rc = rag_dedup_create(cfg, &d);
    if (rc != RAG_OK)
        goto cleanup;
    if ((rc = normalise(a ? a : "", alen, 1, &na)) != RAG_OK ||
        (rc = normalise(b ? b : "", blen, 1, &nb)) != RAG_OK)
        goto cleanup;
    sa = rag_malloc((size_t)d->cfg.num_perm * sizeof(uint32_t));
    sb = rag_malloc((size_t)d->cfg.num_perm * sizeof(uint32_t));
    if (!sa || !sb) {
        rc = RAG_ENOMEM;
        goto cleanup;
    }
    size_t n1 = minhash(&na, d->cfg.shingle_words, d->seeds, d->cfg.num_perm, sa);
    size_t n2 = minhash(&nb, d->cfg.shingle_words, d->seeds, d->cfg.num_perm, sb);
    *sim = (n1 && n2) ? sig_similarity(sa, sb, d->cfg.num_perm) : (n1 == n2 ? 1.0 : 0.0);
cleanup:
    free(sa);
    free(sb);
    free(na.words);
    free(nb.words);
    rag_dedup_free(d);
    return rc;
}

/* ---- signatures kept outside an index (the store's persistent duplicate index) --------- */

/* The seeds rag_dedup_create derives for num_perm permutations. */
static void make_seeds(uint64_t *seeds, int num_perm)
{
    uint64_t state = 0x5EED0F0DDBA11ull;
    for (int p = 0; p < num_perm; p++)
        seeds[p] = mix64(state += 0x9E3779B97F4A7C15ull);
}

int rag_dedup_signature(const char *text, size_t len, rag_dedup_sig *out)
{
    if (!out || (!text && len))
        return rag_fail(RAG_EINVAL, "dedup signature: NULL argument");
    memset(out, 0, sizeof *out);
    normtext nt;
    int rc = normalise(text ? text : "", len, 1, &nt);
    if (rc != RAG_OK)
        return rc;
    uint64_t seeds[RAG_DEDUP_PERM];
    make_seeds(seeds, RAG_DEDUP_PERM);
    out->hash = nt.hash;
    out->shingles = (uint32_t)minhash(&nt, RAG_DEDUP_SHINGLE_WORDS, seeds, RAG_DEDUP_PERM,
                                      out->sig);
    free(nt.words);
    return RAG_OK;
}

int rag_dedup_rows(double threshold)
{
    /* the last answer, per thread: runs ask for one threshold many times */
    static _Thread_local double last_threshold = -1;
    static _Thread_local int last_rows;
    if (!(threshold > 0.0))
        threshold = 1e-9;
    if (threshold > 1.0)
        threshold = 1.0;
    if (threshold != last_threshold) {
        last_rows = rows_for(RAG_DEDUP_PERM, threshold);
        last_threshold = threshold;
    }
    return last_rows;
}

uint64_t rag_dedup_band(const uint32_t *sig, int rows, int band)
{
    return XXH3_64bits_withSeed(sig + band * rows, (size_t)rows * sizeof(uint32_t),
                                (uint64_t)band + 1);
}

double rag_dedup_sig_similarity(const rag_dedup_sig *a, const rag_dedup_sig *b)
{
    if (!a->shingles || !b->shingles)
        return a->shingles == b->shingles ? 1.0 : 0.0;
    return sig_similarity(a->sig, b->sig, RAG_DEDUP_PERM);
}

int rag_dedup_add_sig(rag_dedup *d, const char *id, const rag_dedup_sig *s, rag_dup_match *match)
{
    if (!d || !s || !match)
        return rag_fail(RAG_EINVAL, "dedup: NULL argument");
    if (d->cfg.num_perm != RAG_DEDUP_PERM || d->cfg.shingle_words != RAG_DEDUP_SHINGLE_WORDS)
        return rag_fail(RAG_EINVAL, "dedup: signatures need num_perm %d and shingle_words %d",
                        RAG_DEDUP_PERM, RAG_DEDUP_SHINGLE_WORDS);
    return lookup_sig(d, id, s->hash, s->sig, d->cfg.near ? s->shingles : 0, match);
}
