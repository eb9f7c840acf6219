/* search.c - top-k retrieval over a collection: ANN with adaptive over-fetch past deleted
 * or filtered-out chunks, exact scans for small candidate sets, and hit materialisation. */
#include "db.h"
#include "embedder.h"
#include "status.h"
#include "store.h"
#include "vindex.h"

#include <stdlib.h>
#include <string.h>

/* Candidate sets up to this many chunks are scanned exactly instead of via the ANN. */
#define EXACT_SCAN_MAX 20000

struct rag_results {
    rag_hit *hits;
    size_t count, cap;
};

void rag_search_options_init(rag_search_options *o)
{
    memset(o, 0, sizeof *o);
    o->version = RAG_SEARCH_OPTIONS_VERSION;
    o->k = 10;
}

size_t rag_results_count(const rag_results *res)
{
    return res ? res->count : 0;
}

const rag_hit *rag_results_get(const rag_results *res, size_t i)
{
    return res && i < res->count ? &res->hits[i] : NULL;
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

/* Sorted set of chunk ids that pass the restrictions (NULL set: everything passes). */
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

typedef struct prefix_ctx {
    const char *prefix;
    size_t plen;
    id_set *set;
} prefix_ctx;

static int prefix_visit(void *user, const rag_doc_rec *d)
{
    prefix_ctx *p = user;
    if (strncmp(d->source, p->prefix, p->plen) != 0)
        return 0;
    for (uint32_t i = 0; i < d->nchunks; i++)
        if (id_set_add(p->set, d->chunk_ids[i]) != RAG_OK)
            return RAG_ENOMEM;
    return 0;
}

/* Builds the set of chunk ids allowed by the options' restrictions. *restricted is 0 when
 * there are none (the set stays empty and means "all"). */
static int build_candidates(rag_txn *txn, rag_coll *c, const rag_search_options *o, id_set *set,
                            int *restricted)
{
    *restricted = 0;
    int rc = RAG_OK;
    if (o->n_doc_ids > 0) {
        *restricted = 1;
        for (size_t i = 0; i < o->n_doc_ids && rc == RAG_OK; i++) {
            rag_doc_rec *d = NULL;
            if (!o->doc_ids[i])
                return rag_fail(RAG_EINVAL, "doc_ids[%zu] is NULL", i);
            rc = rag_store_doc_get(txn, c->id, o->doc_ids[i], &d);
            if (rc == RAG_ENOTFOUND) {
                rc = RAG_OK;
                continue;
            }
            for (uint32_t k = 0; rc == RAG_OK && d && k < d->nchunks; k++)
                rc = id_set_add(set, d->chunk_ids[k]);
            rag_doc_rec_free(d);
        }
    }
    if (rc == RAG_OK && o->source_prefix && *o->source_prefix) {
        id_set by_prefix = {0};
        prefix_ctx p = {o->source_prefix, strlen(o->source_prefix), &by_prefix};
        rc = rag_store_doc_scan(txn, c->id, prefix_visit, &p);
        if (rc == RAG_OK && *restricted) {
            /* Intersect with the document restriction. */
            qsort(by_prefix.ids, by_prefix.n, sizeof(uint64_t), cmp_u64);
            size_t w = 0;
            for (size_t i = 0; i < set->n; i++)
                if (id_set_has(&by_prefix, set->ids[i]))
                    set->ids[w++] = set->ids[i];
            set->n = w;
            free(by_prefix.ids);
        } else if (rc == RAG_OK) {
            free(set->ids);
            *set = by_prefix;
        } else {
            free(by_prefix.ids);
        }
        *restricted = 1;
    }
    if (rc == RAG_OK && *restricted)
        qsort(set->ids, set->n, sizeof(uint64_t), cmp_u64);
    return rc;
}

/* Appends the hit for chunk `id` unless it was deleted. Returns RAG_ENOTFOUND for a
 * deleted chunk (the caller skips it). */
static int add_hit(rag_txn *txn, rag_coll *c, rag_results *res, uint64_t id, float score)
{
    rag_chunk_rec *ch = NULL;
    rag_doc_rec *d = NULL;
    int rc = rag_store_chunk_get(txn, c->id, id, &ch);
    if (rc != RAG_OK)
        return rc;
    rc = rag_store_doc_get(txn, c->id, ch->doc_id, &d);
    if (rc == RAG_ENOTFOUND) /* orphan chunk: treat as deleted */
        goto cleanup;
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
    }
    rag_hit *h = &res->hits[res->count];
    memset(h, 0, sizeof *h);
    h->chunk_id = id;
    h->score = score;
    h->doc_id = ch->doc_id;
    ch->doc_id = NULL;
    h->text = ch->text;
    h->text_len = ch->text_len;
    ch->text = NULL;
    h->heading_path = ch->heading;
    ch->heading = NULL;
    h->title = d->title;
    d->title = NULL;
    h->source = d->source;
    d->source = NULL;
    h->metadata_json = d->metadata && *d->metadata ? d->metadata : NULL;
    if (h->metadata_json)
        d->metadata = NULL;
    else
        h->metadata_json = rag_strdup("{}");
    h->start = ch->start;
    h->end = ch->end;
    h->token_count = (int)ch->tokens;
    h->source_mtime = d->source_mtime;
    h->ingested_at = d->ingested_at;
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

typedef struct scan_ctx {
    const id_set *set;   /* NULL: all */
    float *vecs;
    int64_t *ids;
    size_t n, cap;
    int dim;
} scan_ctx;

static int scan_visit(void *user, uint64_t id, const float *vec, int dim)
{
    scan_ctx *s = user;
    if (s->set && !id_set_has(s->set, id))
        return 0;
    if (dim != s->dim)
        return rag_fail(RAG_ECORRUPT, "vector of chunk %llu has dimension %d",
                        (unsigned long long)id, dim);
    if (s->n == s->cap) {
        size_t cap = s->cap ? s->cap * 2 : 1024;
        float *v = rag_realloc(s->vecs, cap * (size_t)dim * sizeof(float));
        if (!v)
            return RAG_ENOMEM;
        s->vecs = v;
        int64_t *q = rag_realloc(s->ids, cap * sizeof *q);
        if (!q)
            return RAG_ENOMEM;
        s->ids = q;
        s->cap = cap;
    }
    memcpy(s->vecs + s->n * (size_t)dim, vec, (size_t)dim * sizeof(float));
    s->ids[s->n++] = (int64_t)id;
    return 0;
}

/* Exact search over the candidate set (or every vector when set is NULL). */
static int exact_search(rag_txn *txn, rag_coll *c, int dim, const float *q, const id_set *set,
                        int k, rag_results *res)
{
    scan_ctx s = {set, NULL, NULL, 0, 0, dim};
    int rc = RAG_OK;
    if (set) {
        /* Look the candidates up directly: cheaper than scanning the collection. */
        float *tmp = rag_malloc((size_t)dim * sizeof(float));
        if (!tmp)
            return RAG_ENOMEM;
        for (size_t i = 0; i < set->n && rc == RAG_OK; i++) {
            rc = rag_store_vec_get(txn, c->id, set->ids[i], tmp, dim);
            if (rc == RAG_ENOTFOUND) {
                rc = RAG_OK;
                continue;
            }
            if (rc == RAG_OK)
                rc = scan_visit(&s, set->ids[i], tmp, dim);
        }
        free(tmp);
    } else {
        rc = rag_store_vec_scan(txn, c->id, 0, scan_visit, &s);
    }
    float *scores = NULL;
    int64_t *ids = NULL;
    if (rc != RAG_OK)
        goto cleanup;
    scores = rag_malloc((size_t)k * sizeof *scores);
    ids = rag_malloc((size_t)k * sizeof *ids);
    if (!scores || !ids) {
        rc = RAG_ENOMEM;
        goto cleanup;
    }
    int m = rag_exact_topk(q, s.vecs, s.ids, s.n, dim, k, scores, ids);
    for (int i = 0; i < m && rc == RAG_OK; i++) {
        rc = add_hit(txn, c, res, (uint64_t)ids[i], scores[i]);
        if (rc == RAG_ENOTFOUND)
            rc = RAG_OK;
    }
cleanup:
    free(scores);
    free(ids);
    free(s.vecs);
    free(s.ids);
    return rc;
}

/* ANN search with over-fetch: asks the index for more neighbours than k, drops deleted
 * and filtered-out ids, and widens the request until k hits are found or the index is
 * exhausted. */
static int ann_search(rag_txn *txn, rag_coll *c, const float *q, const id_set *set, int k,
                      rag_results *res)
{
    size_t total = rag_vindex_count(c->ix);
    size_t want = (size_t)k + (size_t)c->tombstones;
    if (set)
        want = (size_t)k * 4;
    if (want > total)
        want = total;
    if (want < (size_t)k)
        want = (size_t)k;
    float *scores = NULL;
    int64_t *ids = NULL;
    int rc = RAG_OK;
    size_t seen = 0;
    for (;;) {
        float *s2 = rag_realloc(scores, want * sizeof *s2);
        if (!s2) {
            rc = RAG_ENOMEM;
            break;
        }
        scores = s2;
        int64_t *i2 = rag_realloc(ids, want * sizeof *i2);
        if (!i2) {
            rc = RAG_ENOMEM;
            break;
        }
        ids = i2;
        int m = rag_vindex_search(c->ix, q, (int)want, scores, ids);
        if (m < 0) {
            rc = m;
            break;
        }
        /* Results of a wider search start with those of the narrower one (same graph
         * walk order is not guaranteed), so rebuild the hit list from scratch. */
        for (size_t i = 0; i < res->count; i++)
            hit_clear(&res->hits[i]);
        res->count = 0;
        for (int i = 0; i < m && res->count < (size_t)k && rc == RAG_OK; i++) {
            if (set && !id_set_has(set, (uint64_t)ids[i]))
                continue;
            rc = add_hit(txn, c, res, (uint64_t)ids[i], scores[i]);
            if (rc == RAG_ENOTFOUND)
                rc = RAG_OK;
        }
        seen = (size_t)m;
        if (rc != RAG_OK || res->count >= (size_t)k || want >= total || seen < want)
            break;
        want = want * 4 > total ? total : want * 4;
    }
    free(scores);
    free(ids);
    if (rc == RAG_OK && res->count < (size_t)k && (want >= total || seen < want)) {
        /* The graph walk could not reach k live hits (heavy deletion, or k above the
         * live count): an exact scan is the only way to keep the promise. */
        for (size_t i = 0; i < res->count; i++)
            hit_clear(&res->hits[i]);
        res->count = 0;
        rc = exact_search(txn, c, rag_vindex_dim(c->ix), q, set, k, res);
    }
    return rc;
}

static int search_impl(rag_db *db, const float *qvec, const rag_search_options *opts,
                       rag_results **out)
{
    rag_search_options o;
    rag_search_options_init(&o);
    if (opts) {
        if (opts->version < 1)
            return rag_fail(RAG_EINVAL, "search options version is 0 (call rag_search_options_init)");
        o = *opts;
    }
    if (o.k == 0)
        o.k = 10;
    if (o.k < 1 || o.k > 10000)
        return rag_fail(RAG_EINVAL, "k must be 1..10000, got %d", o.k);
    const char *name = o.collection ? o.collection : RAG_DEFAULT_COLLECTION;
    rag_coll *c = rag_db_find_coll(db, name);
    if (!c)
        return rag_fail(RAG_ENOTFOUND, "collection '%s' does not exist", name);
    rag_results *res = rag_calloc(1, sizeof *res);
    if (!res)
        return RAG_ENOMEM;
    rag_txn *txn = NULL;
    id_set set = {0};
    int restricted = 0;
    pthread_rwlock_rdlock(&c->lock);
    int rc = c->dropped ? rag_fail(RAG_ENOTFOUND, "collection '%s' was dropped", name)
                        : rag_store_read(db->st, &txn);
    if (rc == RAG_OK)
        rc = build_candidates(txn, c, &o, &set, &restricted);
    if (rc == RAG_OK) {
        int usable = c->ix && rag_vindex_is_trained(c->ix) && rag_vindex_count(c->ix) > 0;
        if (restricted && (set.n <= EXACT_SCAN_MAX || !usable))
            rc = exact_search(txn, c, db->dim, qvec, &set, o.k, res);
        else if (!usable)
            rc = exact_search(txn, c, db->dim, qvec, restricted ? &set : NULL, o.k, res);
        else
            rc = ann_search(txn, c, qvec, restricted ? &set : NULL, o.k, res);
    }
    rag_txn_end(txn);
    pthread_rwlock_unlock(&c->lock);
    free(set.ids);
    if (rc != RAG_OK) {
        rag_results_free(res);
        return rc;
    }
    *out = res;
    return RAG_OK;
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
    rag_l2_normalize(q, dim);
    int rc = search_impl(db, q, opts, out);
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
    float *q = rag_malloc((size_t)db->dim * sizeof *q);
    if (!q)
        return RAG_ENOMEM;
    int rc = rag_embed(db, &query, 1, 1, q);
    if (rc == RAG_OK)
        rc = search_impl(db, q, opts, out);
    free(q);
    return rc;
}
