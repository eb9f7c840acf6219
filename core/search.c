/* search.c - query planning and execution: restrictions and filters (exact candidate sets
 * or lazily evaluated predicates), dense ANN with adaptive over-fetch, BM25, fusion, result
 * shaping (per-document cap, duplicate collapsing, MMR), confidence and hit materialisation. */
#include "db.h"
#include "embcache.h"
#include "embedder.h"
#include "filter.h"
#include "lexical.h"
#include "search_options.h"
#include "status.h"
#include "store.h"
#include "vindex.h"

#include <math.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <xxhash.h>

/* Candidate sets up to this many chunks are scanned exactly instead of via the ANN. */
#define EXACT_SCAN_MAX 20000
/* Documents sampled to estimate a filter's selectivity. */
#define SELECTIVITY_SAMPLE 512
/* Collections up to this many documents are always filtered by a full scan. */
#define FULL_SCAN_DOCS 4000

struct rag_results {
    rag_hit *hits;
    size_t count, cap;
    int no_confident_context;
};

void rag_search_options_init(rag_search_options *o)
{
    memset(o, 0, sizeof *o);
    o->version = RAG_SEARCH_OPTIONS_VERSION;
    o->k = 10;
    o->fusion = RAG_FUSION_WEIGHTED;
}

size_t rag_results_count(const rag_results *res)
{
    return res ? res->count : 0;
}

const rag_hit *rag_results_get(const rag_results *res, size_t i)
{
    return res && i < res->count ? &res->hits[i] : NULL;
}

int rag_results_no_confident_context(const rag_results *res)
{
    return !res || res->count == 0 || res->no_confident_context;
}

static void hit_clear(rag_hit *h)
{
    free((char *)h->doc_id);
    free((char *)h->text);
    free((char *)h->title);
    free((char *)h->source);
    free((char *)h->heading_path);
    free((char *)h->metadata_json);
}

void rag_results_free(rag_results *res)
{
    if (!res)
        return;
    for (size_t i = 0; i < res->count; i++)
        hit_clear(&res->hits[i]);
    free(res->hits);
    free(res);
}

/* ---- sets of chunk ids ---------------------------------------------------------------- */

typedef struct id_set {
    uint64_t *ids;
    size_t n, cap;
} id_set;

static int id_set_add(id_set *s, uint64_t id)
{
    if (s->n == s->cap) {
        size_t cap = s->cap ? s->cap * 2 : 256;
        uint64_t *q = rag_realloc(s->ids, cap * sizeof *q);
        if (!q)
            return RAG_ENOMEM;
        s->ids = q;
        s->cap = cap;
    }
    s->ids[s->n++] = id;
    return RAG_OK;
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

static int id_set_has(const id_set *s, uint64_t id)
{
    size_t lo = 0, hi = s->n;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if (s->ids[mid] < id)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo < s->n && s->ids[lo] == id;
}

/* ---- the plan: which chunks may be returned ----------------------------------------------- */

enum { PLAN_ALL, PLAN_SET, PLAN_PRED };

/* Small open-addressing map from a document id hash to its filter verdict. */
typedef struct verdict_cache {
    uint64_t *keys;
    unsigned char *vals;
    size_t cap, used;
} verdict_cache;

typedef struct plan {
    int kind;
    id_set set;                  /* PLAN_SET: sorted allowed chunk ids */
    double selectivity;          /* PLAN_PRED: estimated fraction of matching chunks */
    rag_txn *txn;
    rag_coll *coll;
    const rag_filter *filter;
    const char *source_prefix;
    size_t plen;
    const char *const *doc_ids;  /* explicit document restriction (sorted copy) */
    size_t n_doc_ids;
    verdict_cache cache;
    int64_t now;
    int64_t max_age;             /* > 0: documents older than this are excluded */
    int time_basis;
    int check_expiry;            /* the collection has documents with a valid_until */
    int rc;                      /* first error met inside a predicate */
} plan;

/* The time a document's age is measured from. */
static int64_t doc_time(const rag_doc_rec *d, int basis)
{
    if (basis == RAG_TIME_SOURCE && d->source_mtime > 0)
        return d->source_mtime;
    return d->ingested_at;
}

static int doc_allowed(plan *p, const rag_doc_rec *d)
{
    if (p->check_expiry && d->valid_until && d->valid_until <= p->now)
        return 0;
    if (p->max_age > 0 && doc_time(d, p->time_basis) < p->now - p->max_age)
        return 0;
    if (p->source_prefix && strncmp(d->source, p->source_prefix, p->plen) != 0)
        return 0;
    if (p->filter) {
        rag_filter_doc fd = {d->id, d->source, d->title, d->metadata, d->source_mtime,
                             d->ingested_at, d->updated_at};
        if (!rag_filter_match(p->filter, &fd))
            return 0;
    }
    return 1;
}

static int verdict_lookup(verdict_cache *c, uint64_t key, int *val)
{
    if (!c->cap)
        return 0;
    size_t i = (size_t)key & (c->cap - 1);
    while (c->keys[i]) {
        if (c->keys[i] == key) {
            *val = c->vals[i];
            return 1;
        }
        i = (i + 1) & (c->cap - 1);
    }
    return 0;
}

static void verdict_store(verdict_cache *c, uint64_t key, int val)
{
    if (c->used * 2 >= c->cap) {
        size_t cap = c->cap ? c->cap * 2 : 1024;
        uint64_t *keys = calloc(cap, sizeof *keys);
        unsigned char *vals = calloc(cap, 1);
        if (!keys || !vals) {
            free(keys);
            free(vals);
            return; /* the cache is an optimisation only */
        }
        for (size_t i = 0; i < c->cap; i++) {
            if (!c->keys[i])
                continue;
            size_t j = (size_t)c->keys[i] & (cap - 1);
            while (keys[j])
                j = (j + 1) & (cap - 1);
            keys[j] = c->keys[i];
            vals[j] = c->vals[i];
        }
        free(c->keys);
        free(c->vals);
        c->keys = keys;
        c->vals = vals;
        c->cap = cap;
    }
    size_t i = (size_t)key & (c->cap - 1);
    while (c->keys[i] && c->keys[i] != key)
        i = (i + 1) & (c->cap - 1);
    if (!c->keys[i])
        c->used++;
    c->keys[i] = key;
    c->vals[i] = (unsigned char)val;
}

/* Whether chunk `id` is live and passes the plan's restrictions. */
static int chunk_allowed(void *user, uint64_t id)
{
    plan *p = user;
    if (p->kind == PLAN_SET)
        return id_set_has(&p->set, id);
    if (p->kind == PLAN_ALL) { /* liveness only: no record to read (or decrypt) */
        int live = rag_store_chunk_live(p->txn, p->coll->id, id);
        if (live < 0 && p->rc == RAG_OK)
            p->rc = live;
        return live == 1;
    }
    const char *doc;
    size_t dl;
    int rc = rag_store_chunk_head(p->txn, p->coll->id, id, &doc, &dl, NULL, NULL);
    if (rc != RAG_OK) {
        if (rc != RAG_ENOTFOUND && p->rc == RAG_OK)
            p->rc = rc;
        return 0;
    }
    uint64_t key = XXH3_64bits(doc, dl) | 1;
    int v;
    if (verdict_lookup(&p->cache, key, &v))
        return v;
    char *docid = rag_strndup(doc, dl);
    rag_doc_rec *d = NULL;
    if (!docid)
        return 0;
    rc = rag_store_doc_get(p->txn, p->coll->id, docid, &d);
    free(docid);
    v = rc == RAG_OK && doc_allowed(p, d);
    if (rc != RAG_OK && rc != RAG_ENOTFOUND && p->rc == RAG_OK)
        p->rc = rc;
    rag_doc_rec_free(d);
    verdict_store(&p->cache, key, v);
    return v;
}

typedef struct scan_docs_ctx {
    plan *p;
    size_t seen, matched_chunks, total_chunks, limit;
    int build;                   /* add matching chunks to p->set */
    int rc;
} scan_docs_ctx;

static int scan_docs_visit(void *user, const rag_doc_rec *d)
{
    scan_docs_ctx *s = user;
    s->seen++;
    s->total_chunks += d->nchunks;
    if (doc_allowed(s->p, d)) {
        s->matched_chunks += d->nchunks;
        for (uint32_t i = 0; s->build && i < d->nchunks; i++)
            if ((s->rc = id_set_add(&s->p->set, d->chunk_ids[i])) != RAG_OK)
                return s->rc;
    }
    return s->limit && s->seen >= s->limit ? 1 : 0;
}

static void plan_free(plan *p)
{
    free(p->set.ids);
    free(p->cache.keys);
    free(p->cache.vals);
}

/* Decides how restrictions are applied: PLAN_SET for explicit documents and for filters
 * matching few chunks (estimated on a sample, then built exactly by a full scan), PLAN_PRED
 * (filter evaluated per candidate, cached per document) when many chunks match, PLAN_ALL
 * when there is no restriction. */
static int plan_build(plan *p, rag_txn *txn, rag_coll *c, const rag_search_options *o,
                      const rag_filter *f, uint64_t total_chunks, uint64_t total_docs,
                      int check_expiry)
{
    memset(p, 0, sizeof *p);
    p->now = o->now > 0 ? o->now : rag_now();
    p->max_age = o->max_age;
    p->time_basis = o->time_basis;
    p->check_expiry = check_expiry;
    p->txn = txn;
    p->coll = c;
    p->filter = f;
    p->source_prefix = o->source_prefix && *o->source_prefix ? o->source_prefix : NULL;
    p->plen = p->source_prefix ? strlen(p->source_prefix) : 0;
    p->kind = PLAN_ALL;
    p->selectivity = 1.0;
    /* Explicit document lists: from the options and from the filter (doc_id = / IN). */
    size_t nf = 0;
    const char *const *fids = f ? rag_filter_doc_ids(f, &nf) : NULL;
    if (o->n_doc_ids > 0 || fids) {
        p->kind = PLAN_SET;
        const char *const *ids = o->n_doc_ids > 0 ? o->doc_ids : fids;
        size_t n = o->n_doc_ids > 0 ? o->n_doc_ids : nf;
        for (size_t i = 0; i < n; i++) {
            if (!ids[i])
                return rag_fail(RAG_EINVAL, "doc_ids[%zu] is NULL", i);
            if (o->n_doc_ids > 0 && fids) { /* both: the intersection */
                int in = 0;
                for (size_t j = 0; j < nf && !in; j++)
                    in = strcmp(fids[j], ids[i]) == 0;
                if (!in)
                    continue;
            }
            rag_doc_rec *d = NULL;
            int rc = rag_store_doc_get(txn, c->id, ids[i], &d);
            if (rc == RAG_ENOTFOUND)
                continue;
            if (rc != RAG_OK)
                return rc;
            if (doc_allowed(p, d))
                for (uint32_t k = 0; k < d->nchunks && rc == RAG_OK; k++)
                    rc = id_set_add(&p->set, d->chunk_ids[k]);
            rag_doc_rec_free(d);
            if (rc != RAG_OK)
                return rc;
        }
        if (p->set.n)
            qsort(p->set.ids, p->set.n, sizeof(uint64_t), cmp_u64);
        /* A document listed twice would repeat its chunks. */
        size_t w = 0;
        for (size_t i = 0; i < p->set.n; i++)
            if (w == 0 || p->set.ids[w - 1] != p->set.ids[i])
                p->set.ids[w++] = p->set.ids[i];
        p->set.n = w;
        return RAG_OK;
    }
    if (!f && !p->source_prefix && !p->max_age && !p->check_expiry)
        return RAG_OK;
    /* Estimate selectivity on a sample of documents. */
    scan_docs_ctx s = {p, 0, 0, 0, SELECTIVITY_SAMPLE, 0, RAG_OK};
    int rc = RAG_OK;
    if (total_docs > FULL_SCAN_DOCS) {
        rc = rag_store_doc_scan(txn, c->id, scan_docs_visit, &s);
        if (rc < 0)
            return rc;
        p->selectivity = s.total_chunks ? (double)s.matched_chunks / (double)s.total_chunks : 1.0;
    }
    double expected = p->selectivity * (double)total_chunks;
    if (total_docs <= FULL_SCAN_DOCS || expected <= EXACT_SCAN_MAX) {
        scan_docs_ctx full = {p, 0, 0, 0, 0, 1, RAG_OK};
        rc = rag_store_doc_scan(txn, c->id, scan_docs_visit, &full);
        if (rc < 0 || full.rc != RAG_OK)
            return rc < 0 ? rc : full.rc;
        p->kind = PLAN_SET;
        if (p->set.n)
            qsort(p->set.ids, p->set.n, sizeof(uint64_t), cmp_u64);
        return RAG_OK;
    }
    p->kind = PLAN_PRED;
    if (p->selectivity < 0.001)
        p->selectivity = 0.001;
    return RAG_OK;
}

/* ---- candidates --------------------------------------------------------------------------- */

typedef struct cand {
    uint64_t id;
    float score;                 /* fused or single-side score */
    float dense, lex;
    int drank, lrank;
} cand;

typedef struct cand_list {
    cand *c;
    size_t n, cap;
} cand_list;

static int cand_push(cand_list *l, uint64_t id, float score)
{
    if (l->n == l->cap) {
        size_t cap = l->cap ? l->cap * 2 : 64;
        cand *q = rag_realloc(l->c, cap * sizeof *q);
        if (!q)
            return RAG_ENOMEM;
        l->c = q;
        l->cap = cap;
    }
    cand *x = &l->c[l->n++];
    x->id = id;
    x->score = score;
    x->dense = x->lex = NAN;
    x->drank = x->lrank = 0;
    return RAG_OK;
}

typedef struct vec_collect {
    plan *p;
    float *vecs;
    int64_t *ids;
    size_t n, cap;
    int dim;
    int filter_each;             /* apply chunk_allowed to each vector */
} vec_collect;

static int vec_collect_add(vec_collect *s, uint64_t id, const float *vec)
{
    if (s->n == s->cap) {
        size_t cap = s->cap ? s->cap * 2 : 1024;
        float *v = rag_realloc(s->vecs, cap * (size_t)s->dim * sizeof(float));
        if (!v)
            return RAG_ENOMEM;
        s->vecs = v;
        int64_t *q = rag_realloc(s->ids, cap * sizeof *q);
        if (!q)
            return RAG_ENOMEM;
        s->ids = q;
        s->cap = cap;
    }
    memcpy(s->vecs + s->n * (size_t)s->dim, vec, (size_t)s->dim * sizeof(float));
    s->ids[s->n++] = (int64_t)id;
    return RAG_OK;
}

static int vec_collect_visit(void *user, uint64_t id, const float *vec, int dim)
{
    vec_collect *s = user;
    if (dim != s->dim)
        return rag_fail(RAG_ECORRUPT, "vector of chunk %llu has dimension %d",
                        (unsigned long long)id, dim);
    if (s->filter_each && !chunk_allowed(s->p, id))
        return 0;
    return vec_collect_add(s, id, vec);
}

/* Exact dense top-n over the plan's candidates (or every vector). */
static int dense_exact(plan *p, int dim, const float *q, int n, cand_list *out)
{
    vec_collect s = {p, NULL, NULL, 0, 0, dim, p->kind == PLAN_PRED};
    int rc = RAG_OK;
    if (p->kind == PLAN_SET) {
        float *tmp = rag_malloc((size_t)dim * sizeof(float));
        if (!tmp)
            return RAG_ENOMEM;
        for (size_t i = 0; i < p->set.n && rc == RAG_OK; i++) {
            rc = rag_store_vec_get(p->txn, p->coll->id, p->set.ids[i], tmp, dim);
            if (rc == RAG_ENOTFOUND) {
                rc = RAG_OK;
                continue;
            }
            if (rc == RAG_OK)
                rc = vec_collect_add(&s, p->set.ids[i], tmp);
        }
        free(tmp);
    } else {
        rc = rag_store_vec_scan(p->txn, p->coll->id, 0, vec_collect_visit, &s);
    }
    float *scores = NULL;
    int64_t *ids = NULL;
    if (rc != RAG_OK)
        goto cleanup;
    scores = rag_malloc((size_t)n * sizeof *scores);
    ids = rag_malloc((size_t)n * sizeof *ids);
    if (!scores || !ids) {
        rc = RAG_ENOMEM;
        goto cleanup;
    }
    int m = rag_exact_topk(q, s.vecs, s.ids, s.n, dim, n, scores, ids);
    for (int i = 0; i < m && rc == RAG_OK; i++)
        rc = cand_push(out, (uint64_t)ids[i], scores[i]);
cleanup:
    free(scores);
    free(ids);
    free(s.vecs);
    free(s.ids);
    return rc;
}

/* Dense top-n through the ANN index: asks for more neighbours than needed, drops deleted
 * and disallowed ids, and widens until n survive or the index is exhausted; then falls
 * back to an exact scan so that min(n, allowed live chunks) is always returned. */
static int dense_ann(plan *p, const float *q, int n, cand_list *out)
{
    rag_coll *c = p->coll;
    size_t total = rag_vindex_count(c->ix);
    double want_d = (double)n + (double)c->tombstones;
    if (p->kind == PLAN_PRED)
        want_d = (double)n / p->selectivity * 2.0 + (double)c->tombstones;
    else if (p->kind == PLAN_SET)
        want_d = (double)n * (double)total / (double)(p->set.n ? p->set.n : 1) * 2.0;
    size_t want = want_d > (double)total ? total : (size_t)want_d;
    if (want < (size_t)n)
        want = (size_t)n;
    float *scores = NULL;
    int64_t *ids = NULL;
    int rc = RAG_OK, m = 0;
    for (;;) {
        float *s2 = rag_realloc(scores, want * sizeof *s2);
        int64_t *i2 = s2 ? rag_realloc(ids, want * sizeof *i2) : NULL;
        if (s2)
            scores = s2;
        if (!s2 || !i2) {
            rc = RAG_ENOMEM;
            break;
        }
        ids = i2;
        m = rag_vindex_search(c->ix, q, (int)want, scores, ids);
        if (m < 0) {
            rc = m;
            break;
        }
        out->n = 0;
        /* Without restrictions, tombstones and a write in flight (read after this search's
         * snapshot was taken) every id in the index is a live chunk of the snapshot: no
         * lookup needed. */
        int all_live = p->kind == PLAN_ALL && c->tombstones == 0 && atomic_load(&c->writing) == 0;
        for (int i = 0; i < m && out->n < (size_t)n && rc == RAG_OK; i++)
            if (all_live || chunk_allowed(p, (uint64_t)ids[i]))
                rc = cand_push(out, (uint64_t)ids[i], scores[i]);
        if (rc == RAG_OK)
            rc = p->rc;
        if (rc != RAG_OK || out->n >= (size_t)n || want >= total || (size_t)m < want)
            break;
        want = want * 4 > total ? total : want * 4;
    }
    free(scores);
    free(ids);
    if (rc == RAG_OK && out->n < (size_t)n) {
        out->n = 0;
        rc = dense_exact(p, rag_vindex_dim(c->ix), q, n, out);
    }
    return rc;
}

static int dense_side(rag_db *db, plan *p, const float *q, int n, cand_list *out)
{
    rag_coll *c = p->coll;
    int usable = c->ix && rag_vindex_is_trained(c->ix) && rag_vindex_count(c->ix) > 0;
    if (!usable || (p->kind == PLAN_SET && p->set.n <= EXACT_SCAN_MAX))
        return dense_exact(p, db->dim, q, n, out);
    return dense_ann(p, q, n, out);
}

static void count_term(void *user, const char *term, size_t len)
{
    (void)term;
    (void)len;
    (*(int *)user)++;
}

static int lexical_side(plan *p, const char *query, const rag_bm25_stats *stats, int unit,
                        int n, cand_list *out, int *nterms)
{
    rag_coll *c = p->coll;
    float *scores = rag_malloc((size_t)n * sizeof *scores);
    uint64_t *ids = rag_malloc((size_t)n * sizeof *ids);
    int rc = RAG_OK;
    if (!scores || !ids) {
        rc = RAG_ENOMEM;
        goto cleanup;
    }
    rag_bm25_params bp;
    rag_bm25_params_init(&bp);
    bp.unit = unit;
    int m = rag_lexical_search(p->txn, c->an, c->id, query, strlen(query), &bp, stats, n,
                               p->kind == PLAN_ALL ? NULL : chunk_allowed, p, scores, ids);
    if (m < 0) {
        rc = m;
        goto cleanup;
    }
    if ((rc = p->rc) != RAG_OK)
        goto cleanup;
    for (int i = 0; i < m && rc == RAG_OK; i++)
        rc = cand_push(out, ids[i], scores[i]);
    *nterms = 0;
    rag_analyze(c->an, query, strlen(query), count_term, nterms);
cleanup:
    free(scores);
    free(ids);
    return rc;
}

/* ---- fusion and shaping ---------------------------------------------------------------------- */

static int cmp_cand(const void *a, const void *b)
{
    const cand *x = a, *y = b;
    if (x->score != y->score)
        return x->score < y->score ? 1 : -1;
    return x->id < y->id ? -1 : x->id > y->id;
}

float rag_fusion_score(const rag_search_options *o, rag_fusion_side dense,
                       rag_fusion_side lexical)
{
    if (o->fusion == RAG_FUSION_WEIGHTED) {
        float w = o->dense_weight > 0 ? o->dense_weight : 0.5f;
        float dn = dense.rank ? (dense.max > dense.min ? (dense.score - dense.min) /
                                                             (dense.max - dense.min)
                                                       : 1.0f)
                              : 0.0f;
        float ln = lexical.rank ? (lexical.max > lexical.min ? (lexical.score - lexical.min) /
                                                                   (lexical.max - lexical.min)
                                                             : 1.0f)
                                : 0.0f;
        return w * dn + (1.0f - w) * ln;
    }
    int rrf_k = o->rrf_k > 0 ? o->rrf_k : 60;
    return (dense.rank ? 1.0f / (float)(rrf_k + dense.rank) : 0.0f) +
           (lexical.rank ? 1.0f / (float)(rrf_k + lexical.rank) : 0.0f);
}

/* Merges the dense and lexical lists into `out` with RRF or weighted normalised scores
 * (rag_fusion_score). */
static int fuse(const cand_list *d, const cand_list *l, const rag_search_options *o,
                cand_list *out)
{
    int rc = RAG_OK;
    float dmin = 0, dmax = 0, lmin = 0, lmax = 0;
    for (size_t i = 0; i < d->n; i++) {
        if (i == 0 || d->c[i].score < dmin)
            dmin = d->c[i].score;
        if (i == 0 || d->c[i].score > dmax)
            dmax = d->c[i].score;
    }
    for (size_t i = 0; i < l->n; i++) {
        if (i == 0 || l->c[i].score < lmin)
            lmin = l->c[i].score;
        if (i == 0 || l->c[i].score > lmax)
            lmax = l->c[i].score;
    }
    for (size_t i = 0; i < d->n && rc == RAG_OK; i++) {
        rc = cand_push(out, d->c[i].id, 0);
        if (rc == RAG_OK) {
            out->c[out->n - 1].dense = d->c[i].score;
            out->c[out->n - 1].drank = (int)i + 1;
        }
    }
    size_t nd = out->n;
    for (size_t i = 0; i < l->n && rc == RAG_OK; i++) {
        cand *x = NULL;
        for (size_t j = 0; j < nd; j++)
            if (out->c[j].id == l->c[i].id) {
                x = &out->c[j];
                break;
            }
        if (!x) {
            if ((rc = cand_push(out, l->c[i].id, 0)) != RAG_OK)
                break;
            x = &out->c[out->n - 1];
        }
        x->lex = l->c[i].score;
        x->lrank = (int)i + 1;
    }
    for (size_t i = 0; i < out->n; i++) {
        cand *x = &out->c[i];
        x->score = rag_fusion_score(o, (rag_fusion_side){x->dense, x->drank, dmin, dmax},
                                    (rag_fusion_side){x->lex, x->lrank, lmin, lmax});
    }
    if (out->n)
        qsort(out->c, out->n, sizeof *out->c, cmp_cand);
    return rc;
}

/* The chunk records of shape()'s candidates, read on first use by rag_select. */
typedef struct shape_ctx {
    plan *p;
    const cand_list *l;
    int dim;
    rag_chunk_rec **recs;        /* the candidates' chunk records, handed on to add_hit */
} shape_ctx;

/* rag_select's load callback: candidate i's chunk record and, when asked, its vector: from
 * the index's memory when it keeps exact floats (no store lookup, and the search has just
 * read it), else from the store. */
static int shape_load(void *user, size_t i, rag_select_item *item, float *vec)
{
    shape_ctx *s = user;
    rag_coll *c = s->p->coll;
    uint64_t id = s->l->c[i].id;
    int rc = rag_store_chunk_get(s->p->txn, c->id, id, &s->recs[i]);
    if (rc == RAG_ENOTFOUND) /* never deleted (that is checked before), so never stored */
        return rag_fail(RAG_EINDEX, "collection '%s': the index returned chunk %llu, which "
                        "the store does not hold; 'ragcore check' names the damaged index file "
                        "and '--repair' rebuilds it", c->name, (unsigned long long)id);
    if (rc != RAG_OK)
        return rc;
    item->doc_id = s->recs[i]->doc_id;
    item->text_key = s->recs[i]->text_hash;
    if (vec) {
        if (c->ix && rag_vindex_vector(c->ix, (int64_t)id, vec))
            item->has_vector = 1;
        else if ((rc = rag_store_vec_get(s->p->txn, c->id, id, vec, s->dim)) == RAG_OK)
            item->has_vector = 1;
        else if (rc == RAG_ENOTFOUND)
            rc = RAG_OK;
    }
    return rc;
}

/* Selects up to k candidates with rag_select (ranked order or MMR, per-document cap,
 * duplicate collapsing). The selection replaces the list, and *recs_out receives the chosen
 * candidates' chunk records in the same order (an array of l->n, each to be freed with
 * rag_chunk_rec_free). Candidate data is loaded lazily, so ranked order costs O(k)
 * lookups. */
static int shape(rag_db *db, plan *p, const rag_search_options *o, cand_list *l,
                 rag_chunk_rec ***recs_out)
{
    int rc = RAG_OK;
    size_t n = l->n, chosen = 0;
    *recs_out = NULL;
    shape_ctx s = {p, l, db->dim, NULL};
    size_t *order = rag_malloc((n ? n : 1) * sizeof *order);
    float *scores = rag_malloc((n ? n : 1) * sizeof *scores);
    s.recs = rag_calloc(n ? n : 1, sizeof *s.recs);
    if (!order || !scores || !s.recs) {
        rc = RAG_ENOMEM;
        goto cleanup;
    }
    for (size_t i = 0; i < n; i++)
        scores[i] = l->c[i].score;
    if ((rc = rag_select(o, scores, n, db->dim, shape_load, &s, order, &chosen)) != RAG_OK)
        goto cleanup;
    cand *sel = rag_malloc((chosen ? chosen : 1) * sizeof *sel);
    rag_chunk_rec **recs = rag_malloc((chosen ? chosen : 1) * sizeof *recs);
    if (!sel || !recs) {
        free(sel);
        free(recs);
        rc = RAG_ENOMEM;
        goto cleanup;
    }
    for (size_t j = 0; j < chosen; j++) {
        sel[j] = l->c[order[j]];
        recs[j] = s.recs[order[j]];
        s.recs[order[j]] = NULL;
    }
    if (chosen)
        memcpy(l->c, sel, chosen * sizeof *sel);
    l->n = chosen;
    free(sel);
    *recs_out = recs;
cleanup:
    for (size_t i = 0; s.recs && i < n; i++)
        rag_chunk_rec_free(s.recs[i]);
    free(s.recs);
    free(scores);
    free(order);
    return rc;
}

/* Blends relevance with exponential recency decay: score = (1 - w) * relevance + w *
 * 0.5^(age / half_life), relevance min-max normalised over the candidates; re-sorts. */
static int apply_recency(plan *p, const rag_search_options *o, cand_list *l)
{
    if (l->n == 0)
        return RAG_OK;
    float w = o->recency_weight > 0 ? o->recency_weight : 0.3f;
    float smin = l->c[0].score, smax = l->c[0].score;
    for (size_t i = 1; i < l->n; i++) {
        if (l->c[i].score < smin)
            smin = l->c[i].score;
        if (l->c[i].score > smax)
            smax = l->c[i].score;
    }
    for (size_t i = 0; i < l->n; i++) {
        const char *doc;
        size_t dl;
        int rc = rag_store_chunk_head(p->txn, p->coll->id, l->c[i].id, &doc, &dl, NULL, NULL);
        char *id = rc == RAG_OK ? rag_strndup(doc, dl) : NULL;
        rag_doc_rec *d = NULL;
        if (rc == RAG_OK && !id)
            return RAG_ENOMEM;
        if (rc == RAG_OK)
            rc = rag_store_doc_get(p->txn, p->coll->id, id, &d);
        free(id);
        if (rc != RAG_OK)
            return rc;
        double age = (double)(p->now - doc_time(d, o->time_basis));
        rag_doc_rec_free(d);
        if (age < 0)
            age = 0;
        float decay = (float)pow(0.5, age / (double)o->half_life);
        float rel = smax > smin ? (l->c[i].score - smin) / (smax - smin) : 1.0f;
        l->c[i].score = (1.0f - w) * rel + w * decay;
    }
    qsort(l->c, l->n, sizeof *l->c, cmp_cand);
    return RAG_OK;
}

/* ---- materialisation ------------------------------------------------------------------------ */

/* A hit already in res from document doc_id among the last 256 (a bound that keeps a
 * search of thousands of hits linear), or NULL. */
static const rag_hit *hit_of_doc(const rag_results *res, const char *doc_id)
{
    for (size_t i = res->count > 256 ? res->count - 256 : 0; i < res->count; i++)
        if (strcmp(res->hits[i].doc_id, doc_id) == 0)
            return &res->hits[i];
    return NULL;
}

/* Appends candidate x as a hit, with its chunk record `ch` (taken over and freed
 * whatever the outcome) and its document's fields: those the chunk record carries (an
 * encrypted store's: one decryption per hit), else copied from an earlier hit of the same
 * document when there is one, else read from the store (on an encrypted store written
 * before chunk records carried them, each document record costs a decryption, so a
 * document is opened once per search). */
static int add_hit(rag_txn *txn, rag_coll *c, rag_results *res, const cand *x,
                   rag_chunk_rec *ch)
{
    rag_doc_rec *d = ch->doc;
    ch->doc = NULL;
    const rag_hit *same = d ? NULL : hit_of_doc(res, ch->doc_id);
    int rc = d || same ? RAG_OK : rag_store_doc_get(txn, c->id, ch->doc_id, &d);
    if (rc != RAG_OK)
        goto cleanup;
    if (res->count == res->cap) {
        size_t cap = res->cap ? res->cap * 2 : 16;
        rag_hit *q = rag_realloc(res->hits, cap * sizeof *q);
        if (!q) {
            rc = RAG_ENOMEM;
            goto cleanup;
        }
        res->hits = q;
        res->cap = cap;
        if (same) /* it moved with the array */
            same = hit_of_doc(res, ch->doc_id);
    }
    rag_hit *h = &res->hits[res->count];
    memset(h, 0, sizeof *h);
    h->chunk_id = x->id;
    h->score = x->score;
    h->dense_score = x->dense;
    h->lexical_score = x->lex;
    h->dense_rank = x->drank;
    h->lexical_rank = x->lrank;
    h->doc_id = ch->doc_id;
    ch->doc_id = NULL;
    h->text = ch->text;
    h->text_len = ch->text_len;
    ch->text = NULL;
    h->heading_path = ch->heading;
    ch->heading = NULL;
    h->start = ch->start;
    h->end = ch->end;
    h->token_count = (int)ch->tokens;
    if (same) {
        h->title = rag_strdup(same->title);
        h->source = rag_strdup(same->source);
        h->metadata_json = rag_strdup(same->metadata_json);
        h->source_mtime = same->source_mtime;
        h->ingested_at = same->ingested_at;
        h->updated_at = same->updated_at;
        h->valid_until = same->valid_until;
    } else {
        h->title = d->title;
        d->title = NULL;
        h->source = d->source;
        d->source = NULL;
        if (d->metadata && *d->metadata) {
            h->metadata_json = d->metadata;
            d->metadata = NULL;
        } else {
            h->metadata_json = rag_strdup("{}");
        }
        h->source_mtime = d->source_mtime;
        h->ingested_at = d->ingested_at;
        h->updated_at = d->updated_at;
        h->valid_until = d->valid_until;
    }
    if (!h->doc_id || !h->text || !h->heading_path || !h->title || !h->source ||
        !h->metadata_json) {
        hit_clear(h);
        rc = RAG_ENOMEM;
        goto cleanup;
    }
    res->count++;
cleanup:
    rag_chunk_rec_free(ch);
    rag_doc_rec_free(d);
    return rc;
}

/* Default confidence thresholds per embedder family, chosen on the SciFact dev set as
 * the score above which most top hits are relevant (see bench/JOURNAL.md). */
static float default_dense_threshold(const char *embedder)
{
    if (strncmp(embedder, "bge", 3) == 0)
        return 0.70f;
    if (strstr(embedder, "MiniLM"))
        return 0.45f;
    if (strncmp(embedder, "hash", 4) == 0)
        return 0.25f;
    return 0.5f;
}

#define DEFAULT_LEXICAL_THRESHOLD 1.5f

/* ---- entry points ---------------------------------------------------------------------------- */

static int search_impl(rag_db *db, const char *query, const float *qvec,
                       const rag_search_options *opts, rag_results **out)
{
    rag_search_options o;
    rag_bm25_stats v2_stats; /* version 2's statistics: without the document fields */
    rag_search_options_init(&o);
    if (opts) {
        if (opts->version < 1)
            return rag_fail(RAG_EINVAL, "search options version is 0 (call rag_search_options_init)");
        if (opts->version >= 3)
            o = *opts;
        else /* built against an older header: a shorter struct */
            memcpy(&o, opts, opts->version == 2 ? offsetof(rag_search_options, lexical_unit)
                                                : offsetof(rag_search_options, bm25_stats));
        if (opts->version == 2 && o.bm25_stats) {
            memset(&v2_stats, 0, sizeof v2_stats);
            memcpy(&v2_stats, o.bm25_stats, offsetof(rag_bm25_stats, docs));
            o.bm25_stats = &v2_stats;
        }
        o.version = RAG_SEARCH_OPTIONS_VERSION;
    }
    int rc0 = rag_search_options_check(&o);
    if (rc0 != RAG_OK)
        return rc0;
    if (o.k == 0)
        o.k = 10;
    if (!query && o.mode == RAG_MODE_LEXICAL)
        return rag_fail(RAG_EINVAL, "lexical mode needs a query text, not a vector");
    int use_dense = o.mode != RAG_MODE_LEXICAL;
    int use_lex = query && o.mode != RAG_MODE_DENSE;
    /* A read-only handle first catches up with what the writer committed since. */
    if (db->opts.read_only && (rc0 = rag_db_refresh(db)) != RAG_OK)
        return rc0;
    rag_filter *filter = NULL;
    if (o.filter && *o.filter) {
        int rc = rag_filter_parse(o.filter, 0, &filter);
        if (rc != RAG_OK)
            return rc;
    }
    const char *name = o.collection ? o.collection : RAG_DEFAULT_COLLECTION;
    rag_coll *c = rag_db_find_coll(db, name);
    if (!c) {
        rag_filter_free(filter);
        return rag_fail(RAG_ENOTFOUND, "collection '%s' does not exist", name);
    }
    rag_results *res = rag_calloc(1, sizeof *res);
    if (!res) {
        rag_filter_free(filter);
        return RAG_ENOMEM;
    }
    int shaping = o.mmr_lambda > 0 || o.per_doc > 0;
    int single = !(use_dense && use_lex);
    /* How many candidates each side contributes. */
    int n_side = o.candidates > 0 ? o.candidates : (o.k * 4 > 100 ? o.k * 4 : 100);
    if (single && !shaping && o.candidates == 0)
        n_side = o.k + 8; /* a few spare for duplicate collapsing */
    if (n_side < o.k)
        n_side = o.k;
    rag_txn *txn = NULL;
    plan p;
    memset(&p, 0, sizeof p);
    cand_list dl = {0}, ll = {0}, fused = {0};
    int nterms = 0;
    pthread_rwlock_rdlock(&c->lock);
    int rc = c->dropped ? rag_fail(RAG_ENOTFOUND, "collection '%s' was dropped", name)
                        : rag_store_read(db->st, &txn);
    rag_coll_rec rec;
    if (rc == RAG_OK)
        rc = rag_store_coll_get(txn, c->name, &rec);
    if (rc == RAG_OK)
        rc = plan_build(&p, txn, c, &o, filter, rec.chunks, rec.documents,
                        rec.expiring_docs > 0);
    if (rc == RAG_OK && use_dense)
        rc = dense_side(db, &p, qvec, n_side, &dl);
    if (rc == RAG_OK && use_lex)
        rc = lexical_side(&p, query, o.bm25_stats, o.lexical_unit, n_side, &ll, &nterms);
    if (rc == RAG_OK) {
        if (use_dense && use_lex) {
            rc = fuse(&dl, &ll, &o, &fused);
        } else {
            cand_list *src = use_dense ? &dl : &ll;
            fused = *src;
            memset(src, 0, sizeof *src);
            for (size_t i = 0; i < fused.n; i++) {
                cand *x = &fused.c[i];
                if (use_dense) {
                    x->dense = x->score;
                    x->drank = (int)i + 1;
                } else {
                    x->lex = x->score;
                    x->lrank = (int)i + 1;
                }
            }
        }
    }
    if (rc == RAG_OK && o.half_life > 0)
        rc = apply_recency(&p, &o, &fused);
    rag_chunk_rec **recs = NULL;
    if (rc == RAG_OK)
        rc = shape(db, &p, &o, &fused, &recs);
    for (size_t i = 0; recs && i < fused.n; i++) {
        if (rc == RAG_OK)
            rc = add_hit(txn, c, res, &fused.c[i], recs[i]);
        else
            rag_chunk_rec_free(recs[i]);
    }
    free(recs);
    if (rc == RAG_OK) {
        /* Confident when either active side's best hit clears its threshold. */
        float td = o.dense_threshold != 0 ? o.dense_threshold : default_dense_threshold(db->emb->name);
        float tl = o.lexical_threshold != 0 ? o.lexical_threshold : DEFAULT_LEXICAL_THRESHOLD;
        int confident = 0;
        if (use_dense && dl.n + (use_lex ? 0 : fused.n) > 0) {
            float best = use_lex ? dl.c[0].score : fused.c[0].dense;
            confident |= td < 0 || best >= td;
        }
        if (use_lex && ll.n + (use_dense ? 0 : fused.n) > 0) {
            float best = use_dense ? ll.c[0].score : fused.c[0].lex;
            confident |= tl < 0 || (nterms > 0 && best / (float)nterms >= tl);
        }
        res->no_confident_context = !confident;
    }
    rag_txn_end(txn);
    pthread_rwlock_unlock(&c->lock);
    plan_free(&p);
    free(dl.c);
    free(ll.c);
    free(fused.c);
    rag_filter_free(filter);
    if (rc != RAG_OK) {
        rag_results_free(res);
        return rc;
    }
    *out = res;
    return RAG_OK;
}

int rag_bm25_stats_get(rag_db *db, const char *collection, const char *query,
                       rag_bm25_stats **out)
{
    rag_clear_error();
    if (!out)
        return rag_fail(RAG_EINVAL, "rag_bm25_stats_get: out is NULL");
    *out = NULL;
    if (!db || !query)
        return rag_fail(RAG_EINVAL, "rag_bm25_stats_get: NULL argument");
    int rc = RAG_OK;
    if (db->opts.read_only && (rc = rag_db_refresh(db)) != RAG_OK)
        return rc;
    const char *name = collection ? collection : RAG_DEFAULT_COLLECTION;
    rag_coll *c = rag_db_find_coll(db, name);
    if (!c)
        return rag_fail(RAG_ENOTFOUND, "collection '%s' does not exist", name);
    rag_txn *txn = NULL;
    pthread_rwlock_rdlock(&c->lock);
    rc = c->dropped ? rag_fail(RAG_ENOTFOUND, "collection '%s' was dropped", name)
                    : rag_store_read(db->st, &txn);
    if (rc == RAG_OK)
        rc = rag_lexical_query_stats(txn, c->an, c->id, query, strlen(query), out);
    rag_txn_end(txn);
    pthread_rwlock_unlock(&c->lock);
    return rc;
}

void rag_bm25_stats_free(rag_bm25_stats *stats)
{
    free(stats);
}

int rag_search_vector(rag_db *db, const float *vec, int dim, const rag_search_options *opts,
                      rag_results **out)
{
    rag_clear_error();
    if (!out)
        return rag_fail(RAG_EINVAL, "rag_search_vector: out is NULL");
    *out = NULL;
    if (!db || !vec)
        return rag_fail(RAG_EINVAL, "rag_search_vector: NULL argument");
    if (dim != db->dim)
        return rag_fail(RAG_EINVAL, "query vector has dimension %d, store has %d", dim, db->dim);
    float *q = rag_malloc((size_t)dim * sizeof *q);
    if (!q)
        return RAG_ENOMEM;
    memcpy(q, vec, (size_t)dim * sizeof *q);
    for (int i = 0; i < dim; i++)
        if (!isfinite(q[i])) {
            free(q);
            return rag_fail(RAG_EINVAL, "query vector element %d is not finite", i);
        }
    rag_l2_normalize(q, dim);
    int rc = search_impl(db, NULL, q, opts, out);
    free(q);
    return rc;
}

int rag_search(rag_db *db, const char *query, const rag_search_options *opts, rag_results **out)
{
    rag_clear_error();
    if (!out)
        return rag_fail(RAG_EINVAL, "rag_search: out is NULL");
    *out = NULL;
    if (!db || !query)
        return rag_fail(RAG_EINVAL, "rag_search: NULL argument");
    float *q = NULL;
    int rc = RAG_OK;
    if (!opts || opts->mode != RAG_MODE_LEXICAL) {
        if (!(q = rag_malloc((size_t)db->dim * sizeof *q)))
            return RAG_ENOMEM;
        rc = rag_embcache_embed(db, &query, 1, 1, q);
    }
    if (rc == RAG_OK)
        rc = search_impl(db, query, q, opts, out);
    free(q);
    return rc;
}
