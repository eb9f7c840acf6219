/* embcache.c - the embedding cache in the store, and embedding texts through it (rag_embed). */
#include "embcache.h"
#include "bytes.h"
#include "crypt.h"
#include "db.h"
#include "embedder.h"
#include "lexical.h"
#include "status.h"
#include "store.h"
#include "text.h"

#include <stdlib.h>
#include <string.h>

int rag_embcache_on(const rag_db *db)
{
    return strncmp(db->emb->name, "hash", 4) != 0 && db->opts.embed_cache_max > 0;
}

static uint64_t model_hash(const rag_db *db)
{
    return rag_hash_bytes(db->emb->name, strlen(db->emb->name));
}

/* Embedding-cache key: the model's hash then a 128-bit hash of the exact input text, keyed
 * (crypt.h) in an encrypted store so that a key does not confirm a guessed text. */
static void embcache_key(const rag_crypt *cr, unsigned char key[RAG_EMBCACHE_KEY],
                         uint64_t model, const char *text, size_t len)
{
    memcpy(key, &model, 8);
    if (cr) {
        rag_crypt_text_hash(cr, text, len, key + 8);
        return;
    }
    uint64_t a = rag_hash_bytes(text, len), b = rag_hash_bytes2(text, len);
    memcpy(key + 8, &a, 8);
    memcpy(key + 16, &b, 8);
}

/* Copies the cached vector under `key` into out[dim]; 1 on a hit, 0 when absent (or of
 * another dimension). */
static int embcache_read(rag_txn *txn, const unsigned char key[RAG_EMBCACHE_KEY], size_t dim,
                         float *out)
{
    const void *v;
    size_t vl;
    if (rag_store_kv_get(txn, "embcache", key, RAG_EMBCACHE_KEY, &v, &vl) != RAG_OK ||
        vl != dim * sizeof(float))
        return 0;
    memcpy(out, v, vl);
    return 1;
}

int rag_embcache_batch_init(rag_embcache_batch *b, const rag_db *db, size_t n)
{
    memset(b, 0, sizeof *b);
    b->keys = rag_calloc(n, sizeof *b->keys);
    b->cached = rag_calloc(n, 1);
    b->model = model_hash(db);
    return b->keys && b->cached ? RAG_OK : RAG_ENOMEM;
}

void rag_embcache_batch_free(rag_embcache_batch *b)
{
    free(b->keys);
    free(b->cached);
    b->keys = NULL;
    b->cached = NULL;
}

int rag_embcache_lookup(rag_embcache_batch *b, rag_txn *txn, size_t i, const char *text,
                        size_t len, size_t dim, float *out)
{
    embcache_key(rag_txn_crypt(txn), b->keys[i], b->model, text, len);
    if (embcache_read(txn, b->keys[i], dim, out)) {
        b->cached[i] = 1;
        b->hits++;
        return 1;
    }
    b->misses++;
    return 0;
}

/* The counters live under key "#stats" of table "embcache": hits, misses, entries, next
 * sequence number (stores made before the bound have only the first two). Table
 * "embcache_fifo" maps each entry's sequence number (8 bytes, big-endian) to its key, so
 * the oldest entries are evicted first once there are more than opts.embed_cache_max.
 * Entries older than the fifo are not counted and never evicted. */
#define EMBCACHE_STATS 4

static int embcache_stats_get(rag_txn *txn, uint64_t st[EMBCACHE_STATS])
{
    const void *v;
    size_t vl;
    memset(st, 0, EMBCACHE_STATS * sizeof *st);
    int rc = rag_store_kv_get(txn, "embcache", "#stats", 6, &v, &vl);
    if (rc == RAG_ENOTFOUND) {
        rag_clear_error();
        return RAG_OK;
    }
    if (rc == RAG_OK && (vl == 2 * sizeof *st || vl == EMBCACHE_STATS * sizeof *st))
        memcpy(st, v, vl);
    return rc;
}

typedef struct fifo_oldest {
    unsigned char (*keys)[8];
    size_t n, want;
} fifo_oldest;

static int fifo_oldest_visit(void *user, const void *key, size_t klen, const void *val,
                             size_t vlen)
{
    (void)val;
    (void)vlen;
    fifo_oldest *f = user;
    if (klen == 8)
        memcpy(f->keys[f->n++], key, 8);
    return f->n == f->want;
}

int rag_embcache_commit(rag_txn *txn, const rag_embcache_batch *b, const float *vecs,
                        size_t n, int dim, int64_t max)
{
    uint64_t st[EMBCACHE_STATS];
    int rc = embcache_stats_get(txn, st);
    size_t bytes = (size_t)dim * sizeof(float);
    for (size_t i = 0; i < n && rc == RAG_OK; i++) {
        const void *v;
        size_t vl;
        if (b->cached[i] ||
            rag_store_kv_get(txn, "embcache", b->keys[i], RAG_EMBCACHE_KEY, &v, &vl) == 0)
            continue; /* a hit, or the same text earlier in this batch */
        rag_clear_error();
        unsigned char seq[8];
        rag_put_be64(seq, st[3]);
        rc = rag_store_kv_put(txn, "embcache", b->keys[i], RAG_EMBCACHE_KEY,
                              vecs + i * (size_t)dim, bytes);
        if (rc == RAG_OK)
            rc = rag_store_kv_put(txn, "embcache_fifo", seq, 8, b->keys[i], RAG_EMBCACHE_KEY);
        st[2]++;
        st[3]++;
    }
    while (rc == RAG_OK && st[2] > (uint64_t)max) {
        fifo_oldest f = {NULL, 0, 0};
        f.want = st[2] - (uint64_t)max > 1024 ? 1024 : (size_t)(st[2] - (uint64_t)max);
        if (!(f.keys = rag_malloc(f.want * sizeof *f.keys)))
            return RAG_ENOMEM;
        rc = rag_store_kv_scan(txn, "embcache_fifo", NULL, 0, fifo_oldest_visit, &f);
        if (rc > 0)
            rc = RAG_OK;
        for (size_t i = 0; i < f.n && rc == RAG_OK; i++) {
            const void *key;
            size_t kl;
            rc = rag_store_kv_get(txn, "embcache_fifo", f.keys[i], 8, &key, &kl);
            if (rc == RAG_OK && kl == RAG_EMBCACHE_KEY) {
                unsigned char k[RAG_EMBCACHE_KEY];
                memcpy(k, key, RAG_EMBCACHE_KEY); /* LMDB's copy is invalid after the next write */
                rc = rag_store_kv_del(txn, "embcache", k, RAG_EMBCACHE_KEY);
                if (rc == RAG_ENOTFOUND)
                    rc = RAG_OK;
            }
            if (rc == RAG_OK)
                rc = rag_store_kv_del(txn, "embcache_fifo", f.keys[i], 8);
            st[2]--;
        }
        free(f.keys);
        if (f.n == 0)
            st[2] = 0; /* nothing left to evict: the count was off (older store) */
    }
    if (rc != RAG_OK)
        return rc;
    st[0] += b->hits;
    st[1] += b->misses;
    return rag_store_kv_put(txn, "embcache", "#stats", 6, st, sizeof st);
}

int rag_embed_cache_stats(rag_db *db, uint64_t *hits, uint64_t *misses)
{
    rag_clear_error();
    if (!db || !hits || !misses)
        return rag_fail(RAG_EINVAL, "rag_embed_cache_stats: NULL argument");
    *hits = *misses = 0;
    rag_txn *txn = NULL;
    int rc = rag_store_read(db->st, &txn);
    if (rc != RAG_OK)
        return rc;
    uint64_t st[EMBCACHE_STATS];
    rc = embcache_stats_get(txn, st);
    rag_txn_end(txn);
    *hits = st[0];
    *misses = st[1];
    return rc;
}

/* Document embeddings for rag_embed: a text that the store's embedding cache holds for this
 * model (an ingested chunk's exact input) is read from it; only the others are encoded. The
 * cache is not written here: it holds what the store's chunks were embedded from. */
static int embed_documents_cached(rag_db *db, const char *const *texts, const size_t *lens,
                                  size_t n, float *out)
{
    if (n == 0 || !rag_embcache_on(db))
        return rag_embedder_embed(db->emb, texts, lens, n, 0, out);
    size_t dim = (size_t)db->dim, miss = 0;
    uint64_t model = model_hash(db);
    const char **mtexts = rag_malloc(n * sizeof *mtexts);
    size_t *mlens = rag_malloc(n * sizeof *mlens), *slot = rag_malloc(n * sizeof *slot);
    float *tmp = NULL;
    rag_txn *txn = NULL;
    int rc = RAG_ENOMEM;
    if (!mtexts || !mlens || !slot)
        goto cleanup;
    if ((rc = rag_store_read(db->st, &txn)) != RAG_OK)
        goto cleanup;
    for (size_t i = 0; i < n; i++) {
        unsigned char key[RAG_EMBCACHE_KEY];
        embcache_key(rag_txn_crypt(txn), key, model, texts[i], lens[i]);
        if (embcache_read(txn, key, dim, out + i * dim))
            continue;
        mtexts[miss] = texts[i];
        mlens[miss] = lens[i];
        slot[miss++] = i;
    }
    rag_txn_end(txn);
    txn = NULL;
    rc = RAG_OK;
    if (miss == 0)
        goto cleanup;
    if (!(tmp = rag_malloc(miss * dim * sizeof *tmp))) {
        rc = RAG_ENOMEM;
        goto cleanup;
    }
    if ((rc = rag_embedder_embed(db->emb, mtexts, mlens, miss, 0, tmp)) != RAG_OK)
        goto cleanup;
    for (size_t k = 0; k < miss; k++)
        memcpy(out + slot[k] * dim, tmp + k * dim, dim * sizeof *tmp);
cleanup:
    rag_txn_end(txn);
    free(mtexts);
    free(mlens);
    free(slot);
    free(tmp);
    return rc;
}

int rag_embcache_embed(rag_db *db, const char *const *texts, size_t n, int is_query, float *out)
{
    size_t *lens = rag_malloc((n ? n : 1) * sizeof *lens);
    if (!lens)
        return RAG_ENOMEM;
    int rc = RAG_OK;
    for (size_t i = 0; i < n && rc == RAG_OK; i++) {
        if (!texts[i])
            rc = rag_fail(RAG_EINVAL, "text %zu is NULL", i);
        else if (!rag_utf8_valid(texts[i], (lens[i] = strlen(texts[i])), NULL, NULL))
            rc = rag_fail(RAG_EENCODING, "text %zu is not valid UTF-8", i);
    }
    if (rc == RAG_OK)
        rc = is_query ? rag_embedder_embed(db->emb, texts, lens, n, 1, out)
                      : embed_documents_cached(db, texts, lens, n, out);
    free(lens);
    return rc;
}

int rag_embed(rag_db *db, const char *const *texts, size_t n, int is_query, float *out)
{
    rag_clear_error();
    if (!db || (!texts && n) || (!out && n))
        return rag_fail(RAG_EINVAL, "rag_embed: NULL argument");
    return rag_embcache_embed(db, texts, n, is_query, out);
}

/* ---- erasure: entries of texts no longer stored ------------------------------------------ */

typedef struct live_keys {
    rag_txn *txn;
    uint32_t coll;
    uint64_t model;
    unsigned char (*keys)[RAG_EMBCACHE_KEY];
    size_t n, cap;
    int rc;
} live_keys;

/* Adds the cache keys of a document's chunks (their embedded text: title and chunk). */
static int live_doc_visit(void *user, const rag_doc_rec *d)
{
    live_keys *l = user;
    for (uint32_t i = 0; i < d->nchunks && l->rc == RAG_OK; i++) {
        rag_chunk_rec *ch = NULL;
        int rc = rag_store_chunk_get(l->txn, l->coll, d->chunk_ids[i], &ch);
        if (rc == RAG_ENOTFOUND) {
            rag_clear_error();
            continue;
        }
        char *buf = NULL;
        const char *t = NULL;
        size_t tl = 0;
        if (rc == RAG_OK)
            rc = rag_lexical_chunk_text(d->title, ch->text, ch->text_len, &buf, &t, &tl);
        if (rc == RAG_OK && l->n == l->cap) {
            size_t cap = l->cap ? l->cap * 2 : 1024;
            void *grown = rag_realloc(l->keys, cap * sizeof *l->keys);
            if (grown) {
                l->keys = grown;
                l->cap = cap;
            } else {
                rc = RAG_ENOMEM;
            }
        }
        if (rc == RAG_OK)
            embcache_key(rag_txn_crypt(l->txn), l->keys[l->n++], l->model, t, tl);
        free(buf);
        rag_chunk_rec_free(ch);
        l->rc = rc;
    }
    return l->rc != RAG_OK;
}

static int key_cmp(const void *a, const void *b)
{
    return memcmp(a, b, RAG_EMBCACHE_KEY);
}

typedef struct dead_keys {
    const live_keys *live;
    int fifo;                    /* scanning embcache_fifo (values are keys) */
    unsigned char (*keys)[RAG_EMBCACHE_KEY];
    size_t n, cap;
} dead_keys;

static int dead_visit(void *user, const void *key, size_t klen, const void *val, size_t vlen)
{
    dead_keys *d = user;
    const void *probe = d->fifo ? val : key;
    size_t plen = d->fifo ? vlen : klen;
    if ((d->fifo ? klen != 8 : klen != RAG_EMBCACHE_KEY) || plen != RAG_EMBCACHE_KEY)
        return 0; /* "#stats" */
    if (bsearch(probe, d->live->keys, d->live->n, RAG_EMBCACHE_KEY, key_cmp))
        return 0;
    if (d->n == d->cap) {
        size_t cap = d->cap ? d->cap * 2 : 256;
        void *grown = rag_realloc(d->keys, cap * sizeof *d->keys);
        if (!grown)
            return RAG_ENOMEM;
        d->keys = grown;
        d->cap = cap;
    }
    memset(d->keys[d->n], 0, RAG_EMBCACHE_KEY);
    memcpy(d->keys[d->n++], key, d->fifo ? 8 : RAG_EMBCACHE_KEY);
    return 0;
}

typedef struct gc_arg {
    const live_keys *live;
    uint64_t removed;
} gc_arg;

static int gc_fn(rag_txn *txn, void *user)
{
    gc_arg *a = user;
    dead_keys d = {a->live, 0, NULL, 0, 0};
    uint64_t st[EMBCACHE_STATS];
    int rc = embcache_stats_get(txn, st);
    a->removed = 0;
    for (int fifo = 0; fifo < 2 && rc == RAG_OK; fifo++) {
        const char *table = fifo ? "embcache_fifo" : "embcache";
        d.fifo = fifo;
        d.n = 0;
        rc = rag_store_kv_scan(txn, table, NULL, 0, dead_visit, &d);
        if (rc == RAG_ENOTFOUND) {
            rag_clear_error();
            rc = RAG_OK;
        }
        for (size_t i = 0; i < d.n && rc == RAG_OK; i++)
            rc = rag_store_kv_del(txn, table, d.keys[i], fifo ? 8 : RAG_EMBCACHE_KEY);
        if (!fifo)
            a->removed = d.n;
    }
    free(d.keys);
    if (rc == RAG_OK && a->removed > 0) {
        st[2] = st[2] > a->removed ? st[2] - a->removed : 0;
        rc = rag_store_kv_put(txn, "embcache", "#stats", 6, st, sizeof st);
    }
    return rc;
}

int rag_embcache_gc(rag_db *db, uint64_t *removed)
{
    live_keys l = {NULL, 0, model_hash(db), NULL, 0, 0, RAG_OK};
    char **names = NULL;
    size_t nnames = 0;
    *removed = 0;
    int rc = rag_store_read(db->st, &l.txn);
    if (rc != RAG_OK)
        return rc;
    if ((rc = rag_store_coll_list(l.txn, &names, &nnames)) == RAG_OK) {
        for (size_t i = 0; i < nnames && rc == RAG_OK; i++) {
            rag_coll_rec rec;
            if ((rc = rag_store_coll_get(l.txn, names[i], &rec)) != RAG_OK)
                break;
            l.coll = rec.id;
            rc = rag_store_doc_scan(l.txn, rec.id, live_doc_visit, &l);
            if (rc > 0 || l.rc != RAG_OK)
                rc = l.rc;
        }
    }
    for (size_t i = 0; i < nnames; i++)
        free(names[i]);
    free(names);
    rag_txn_end(l.txn);
    if (rc == RAG_OK) {
        if (l.n)
            qsort(l.keys, l.n, RAG_EMBCACHE_KEY, key_cmp);
        gc_arg a = {&l, 0};
        rc = rag_store_write(db->st, gc_fn, &a);
        *removed = a.removed;
    }
    free(l.keys);
    return rc;
}
