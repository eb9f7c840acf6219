/* ingest.c - ingest and delete: validation, chunking and embedding, the write transaction. */
#include "ingest.h"
#include "chunker.h"
#include "coll_index.h"
#include "db.h"
#include "embcache.h"
#include "embedder.h"
#include "lexical.h"
#include "status.h"
#include "store.h"
#include "text.h"

#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#define EMBED_BATCH 64

void rag_document_init(rag_document *d)
{
    memset(d, 0, sizeof *d);
    d->version = RAG_DOCUMENT_VERSION;
    d->text_len = (size_t)-1;
    d->format = RAG_FORMAT_TEXT;
}

/* ---- preparing a batch, outside any lock ----------------------------------------------- */

/* A batch on its way into the store: its documents, their chunks and vectors. */
typedef struct prep_chunk {
    size_t doc;
    size_t start, end;
    int tokens;
    char *heading;
    uint64_t hash;
} prep_chunk;

typedef struct prep_doc {
    const rag_document *doc;
    size_t len;
    int skip;              /* a later document in the batch has the same id */
    size_t first, n;       /* its chunks in prep.chunks */
    char *metadata;        /* compact JSON */
    uint64_t content_hash;
} prep_doc;

typedef struct prep {
    rag_coll *coll;
    prep_doc *docs;
    size_t ndocs;
    prep_chunk *chunks;
    size_t nchunks, cap;
    float *vecs;
    rag_embcache_batch cache;    /* cache.keys NULL: the store keeps no embedding cache */
    int64_t cache_max;           /* opts.embed_cache_max */
    int coll_dim;
    int64_t now;
    /* outputs of the write transaction, reset on every attempt */
    uint64_t first_id;
    uint64_t ntombs;
    rag_ingest_stats stats;
} prep;

static void prep_free(prep *p)
{
    for (size_t i = 0; i < p->nchunks; i++)
        free(p->chunks[i].heading);
    for (size_t i = 0; i < p->ndocs; i++)
        free(p->docs[i].metadata);
    free(p->chunks);
    free(p->docs);
    free(p->vecs);
    rag_embcache_batch_free(&p->cache);
}

/* The chunker's counter: the embedder's token count of a span without the tokens every
 * encoded text carries ([CLS] and [SEP] for BERT models), which the chunker would
 * otherwise add once per word (chunker.h: counts must be about additive over words). */
typedef struct {
    rag_embedder *emb;
    int overhead; /* the count of an empty text */
} token_counter;

/* The least chunk target a long title leaves (tokens). */
#define CHUNK_TOKENS_FLOOR 32

static int count_tokens_cb(void *user, const char *text, size_t len)
{
    const token_counter *tc = user;
    int n = rag_embedder_count_tokens(tc->emb, text, len);
    return n < 0 ? n : n > tc->overhead ? n - tc->overhead : 0;
}

/* Validates one document; names the document in the error. */
static int validate_doc(const rag_document *d, size_t i, prep_doc *pd)
{
    if (d->version < 1)
        return rag_fail(RAG_EINVAL, "document %zu: version is 0 (call rag_document_init)", i);
    if (!d->id || !*d->id || strlen(d->id) > RAG_DOC_ID_MAX)
        return rag_fail(RAG_EINVAL, "document %zu: id must be 1..%d bytes", i, RAG_DOC_ID_MAX);
    if (!rag_utf8_valid(d->id, strlen(d->id), NULL, NULL))
        return rag_fail(RAG_EENCODING, "document %zu: id is not valid UTF-8", i);
    if (!d->text)
        return rag_fail(RAG_EINVAL, "document '%s': text is NULL", d->id);
    pd->len = d->text_len == (size_t)-1 ? strlen(d->text) : d->text_len;
    size_t bad = 0, line = 0;
    if (!rag_utf8_valid(d->text, pd->len, &bad, &line))
        return rag_fail(RAG_EENCODING, "document '%s': invalid UTF-8 at byte %zu (line %zu)",
                        d->id, bad, line);
    if (d->valid_until < 0 || d->ttl_seconds < 0)
        return rag_fail(RAG_EINVAL, "document '%s': valid_until and ttl_seconds must not be "
                        "negative", d->id);
    if (d->format != RAG_FORMAT_TEXT && d->format != RAG_FORMAT_MARKDOWN)
        return rag_fail(RAG_EINVAL, "document '%s': unknown format %d", d->id, (int)d->format);
    const char *strs[2] = {d->title, d->source};
    for (int k = 0; k < 2; k++)
        if (strs[k] && !rag_utf8_valid(strs[k], strlen(strs[k]), NULL, NULL))
            return rag_fail(RAG_EENCODING, "document '%s': %s is not valid UTF-8", d->id,
                            k ? "source" : "title");
    if (d->metadata_json && *d->metadata_json) {
        json_error_t err;
        json_t *j = json_loads(d->metadata_json, 0, &err);
        if (!j)
            return rag_fail(RAG_EPARSE, "document '%s': metadata is not JSON (column %d: %s)",
                            d->id, err.column, err.text);
        if (!json_is_object(j)) {
            json_decref(j);
            return rag_fail(RAG_EPARSE, "document '%s': metadata must be a JSON object", d->id);
        }
        pd->metadata = json_dumps(j, JSON_COMPACT);
        json_decref(j);
        if (!pd->metadata)
            return rag_fail(RAG_ENOMEM, "out of memory");
    }
    pd->doc = d;
    pd->content_hash = rag_hash_bytes(d->text, pd->len);
    return RAG_OK;
}

/* Validates, chunks and embeds a batch outside any lock. */
static int prepare(rag_db *db, const rag_document *docs, size_t n, prep *p)
{
    int rc = RAG_OK;
    if (!(p->docs = rag_calloc(n, sizeof *p->docs)))
        return RAG_ENOMEM;
    p->ndocs = n;
    for (size_t i = 0; i < n; i++)
        if ((rc = validate_doc(&docs[i], i, &p->docs[i])) != RAG_OK)
            return rc;
    /* A repeated id within one batch: the last occurrence wins. */
    for (size_t i = 0; i < n; i++)
        for (size_t j = i + 1; j < n && !p->docs[i].skip; j++)
            if (strcmp(docs[i].id, docs[j].id) == 0)
                p->docs[i].skip = 1;
    token_counter tc = {db->emb, 0};
    int ov = rag_embedder_count_tokens(db->emb, "", 0);
    tc.overhead = ov > 0 ? ov : 0;
    for (size_t i = 0; i < n; i++) {
        prep_doc *pd = &p->docs[i];
        if (pd->skip)
            continue;
        /* A chunk is embedded as "title\n\nchunk" (rag_lexical_chunk_text): with a model of
         * limited length, the title's tokens and the special tokens come off the target so
         * that nothing of the chunk is truncated by the encoder. */
        rag_chunker_config cfg = {db->opts.chunk_tokens, db->opts.chunk_overlap, 0,
                                  count_tokens_cb, &tc};
        if (db->emb->max_tokens > 0) {
            int avail = db->emb->max_tokens - tc.overhead;
            if (docs[i].title && *docs[i].title) {
                int tt = count_tokens_cb(&tc, docs[i].title, strlen(docs[i].title));
                avail -= tt > 0 ? tt : 0;
            }
            if (avail < CHUNK_TOKENS_FLOOR)
                avail = CHUNK_TOKENS_FLOOR; /* a title that long is truncated instead */
            if (cfg.target_tokens > avail)
                cfg.target_tokens = avail;
            if (cfg.overlap_tokens >= cfg.target_tokens)
                cfg.overlap_tokens = cfg.target_tokens / 8;
        }
        rag_chunk_list list = {0};
        cfg.markdown = docs[i].format == RAG_FORMAT_MARKDOWN;
        if ((rc = rag_chunk_text(&cfg, docs[i].text, pd->len, &list)) != RAG_OK) {
            rag_chunk_list_free(&list);
            return rag_fail_prefix(rc, "document '%s'", docs[i].id);
        }
        pd->first = p->nchunks;
        pd->n = list.count;
        if (p->nchunks + list.count > p->cap) {
            size_t cap = p->cap ? p->cap * 2 : 256;
            while (cap < p->nchunks + list.count)
                cap *= 2;
            prep_chunk *q = rag_realloc(p->chunks, cap * sizeof *q);
            if (!q) {
                rag_chunk_list_free(&list);
                return RAG_ENOMEM;
            }
            p->chunks = q;
            p->cap = cap;
        }
        for (size_t k = 0; k < list.count; k++) {
            prep_chunk *pc = &p->chunks[p->nchunks++];
            pc->doc = i;
            pc->start = list.items[k].start;
            pc->end = list.items[k].end;
            pc->tokens = list.items[k].tokens;
            pc->heading = list.items[k].heading_path;
            list.items[k].heading_path = NULL;
            pc->hash = rag_text_norm_hash(docs[i].text + pc->start, pc->end - pc->start);
        }
        rag_chunk_list_free(&list);
    }
    if (p->nchunks == 0)
        return RAG_OK;
    size_t dim = (size_t)db->dim;
    if (!(p->vecs = rag_malloc(p->nchunks * dim * sizeof(float))))
        return RAG_ENOMEM;
    /* The embedding cache: a chunk whose exact input text was embedded before by this
     * model is not embedded again. */
    int use_cache = rag_embcache_on(db);
    rag_txn *txn = NULL;
    if (use_cache) {
        if ((rc = rag_embcache_batch_init(&p->cache, db, p->nchunks)) != RAG_OK)
            return rc;
        if ((rc = rag_store_read(db->st, &txn)) != RAG_OK)
            return rc;
    }
    const char *texts[EMBED_BATCH];
    size_t lens[EMBED_BATCH], slot[EMBED_BATCH];
    char *bufs[EMBED_BATCH];
    float *tmp = rag_malloc(EMBED_BATCH * dim * sizeof(float));
    if (!tmp)
        rc = RAG_ENOMEM;
    for (size_t b = 0; b < p->nchunks && rc == RAG_OK; b += EMBED_BATCH) {
        size_t m = p->nchunks - b < EMBED_BATCH ? p->nchunks - b : EMBED_BATCH, miss = 0;
        memset(bufs, 0, sizeof bufs);
        for (size_t k = 0; k < m && rc == RAG_OK; k++) {
            prep_chunk *pc = &p->chunks[b + k];
            const char *t;
            size_t l;
            char *buf = NULL;
            rc = rag_lexical_chunk_text(docs[pc->doc].title, docs[pc->doc].text + pc->start,
                                        pc->end - pc->start, &buf, &t, &l);
            if (rc != RAG_OK)
                break;
            if (use_cache &&
                rag_embcache_lookup(&p->cache, txn, b + k, t, l, dim, p->vecs + (b + k) * dim)) {
                free(buf);
                continue;
            }
            bufs[miss] = buf;
            texts[miss] = t;
            lens[miss] = l;
            slot[miss++] = b + k;
        }
        if (rc == RAG_OK && miss > 0) {
            rc = rag_embedder_embed(db->emb, texts, lens, miss, 0, tmp);
            for (size_t k = 0; rc == RAG_OK && k < miss; k++)
                memcpy(p->vecs + slot[k] * dim, tmp + k * dim, dim * sizeof(float));
        }
        for (size_t k = 0; k < miss; k++)
            free(bufs[k]);
    }
    free(tmp);
    rag_txn_end(txn);
    return rc;
}

/* ---- the write transaction ----------------------------------------------------------------- */

/* Removes a stored document's chunks (tombstoning their vectors) and its counters. */
static int remove_doc(rag_txn *txn, const rag_analyzer *an, uint32_t coll,
                      const rag_doc_rec *old, rag_coll_rec *rec, uint64_t *ntombs)
{
    int rc = RAG_OK;
    for (uint32_t k = 0; k < old->nchunks && rc == RAG_OK; k++) {
        rag_chunk_rec *ch = NULL;
        rc = rag_store_chunk_get(txn, coll, old->chunk_ids[k], &ch);
        if (rc == RAG_ENOTFOUND) {
            rc = RAG_OK;
            continue;
        }
        if (rc != RAG_OK)
            break;
        if (ch->flags & RAG_CHUNK_DUPLICATE)
            rec->duplicate_chunks--;
        rc = rag_store_hash_decr(txn, coll, ch->text_hash);
        if (rc == RAG_OK) {
            char *buf = NULL;
            const char *lt;
            size_t ll;
            rc = rag_lexical_chunk_text(old->title, ch->text, ch->text_len, &buf, &lt, &ll);
            if (rc == RAG_OK)
                rc = rag_lexical_remove(txn, an, coll, ch->id, lt, ll);
            free(buf);
        }
        rag_chunk_rec_free(ch);
        if (rc == RAG_OK)
            rc = rag_store_chunk_del(txn, coll, old->chunk_ids[k]);
        if (rc == RAG_OK) {
            rc = rag_store_vec_del(txn, coll, old->chunk_ids[k]);
            if (rc == RAG_ENOTFOUND)
                rc = RAG_OK;
        }
        if (rc == RAG_OK)
            rc = rag_store_tomb_put(txn, coll, old->chunk_ids[k]);
        if (rc == RAG_OK) {
            rec->chunks--;
            (*ntombs)++;
        }
    }
    if (rc == RAG_OK)
        rc = rag_store_doc_del(txn, coll, old->id);
    if (rc == RAG_OK) {
        rec->documents--;
        rec->bytes_text -= old->text_len;
        if (old->valid_until && rec->expiring_docs)
            rec->expiring_docs--;
    }
    return rc;
}

/* Stores a prepared batch in one write transaction (rag_store_write may run it again). */
static int ingest_fn(rag_txn *txn, void *user)
{
    prep *p = user;
    rag_coll *c = p->coll;
    rag_coll_rec rec;
    p->ntombs = 0;
    memset(&p->stats, 0, sizeof p->stats);
    int rc = rag_store_coll_get(txn, c->name, &rec);
    if (rc == RAG_ENOTFOUND)
        return rag_fail(RAG_ENOTFOUND, "collection '%s' was dropped", c->name);
    if (rc != RAG_OK)
        return rc;
    if ((rc = rag_store_alloc_ids(txn, p->nchunks, &p->first_id)) != RAG_OK)
        return rc;
    for (size_t i = 0; i < p->ndocs && rc == RAG_OK; i++) {
        prep_doc *pd = &p->docs[i];
        const rag_document *d = pd->doc;
        if (pd->skip)
            continue;
        rag_doc_rec *old = NULL;
        int64_t ingested_at = p->now;
        rc = rag_store_doc_get(txn, c->id, d->id, &old);
        if (rc == RAG_OK) {
            ingested_at = old->ingested_at;
            rc = remove_doc(txn, c->an, c->id, old, &rec, &p->ntombs);
            p->stats.replaced++;
        } else if (rc == RAG_ENOTFOUND) {
            rc = RAG_OK;
        }
        rag_doc_rec_free(old);
        if (rc != RAG_OK)
            break;
        uint64_t *ids = rag_malloc((pd->n ? pd->n : 1) * sizeof *ids);
        if (!ids)
            return RAG_ENOMEM;
        for (size_t k = 0; k < pd->n && rc == RAG_OK; k++) {
            prep_chunk *pc = &p->chunks[pd->first + k];
            ids[k] = p->first_id + pd->first + k;
            uint32_t before = 0;
            rc = rag_store_hash_incr(txn, c->id, pc->hash, &before);
            rag_chunk_rec ch = {ids[k], pc->start, pc->end, (uint32_t)pc->tokens,
                                before ? RAG_CHUNK_DUPLICATE : 0, pc->hash, (char *)d->id,
                                pc->heading, (char *)d->text + pc->start, pc->end - pc->start};
            if (before) {
                rec.duplicate_chunks++;
                p->stats.duplicate_chunks++;
            }
            if (rc == RAG_OK)
                rc = rag_store_chunk_put(txn, c->id, &ch);
            if (rc == RAG_OK) {
                char *buf = NULL;
                const char *lt;
                size_t ll;
                rc = rag_lexical_chunk_text(d->title, ch.text, ch.text_len, &buf, &lt, &ll);
                if (rc == RAG_OK)
                    rc = rag_lexical_add(txn, c->an, c->id, ids[k], lt, ll);
                free(buf);
            }
            if (rc == RAG_OK)
                rc = rag_store_vec_put(txn, c->id, ids[k],
                                       p->vecs + (pd->first + k) * (size_t)p->coll_dim, p->coll_dim);
        }
        int64_t valid_until = d->valid_until       ? d->valid_until
                              : d->ttl_seconds > 0 ? p->now + d->ttl_seconds
                              : rec.ttl_seconds > 0 ? p->now + rec.ttl_seconds
                                                    : 0;
        if (valid_until)
            rec.expiring_docs++;
        rag_doc_rec dr = {(char *)d->id, (char *)(d->source ? d->source : ""),
                          (char *)(d->title ? d->title : ""), pd->metadata ? pd->metadata : "",
                          d->source_mtime, ingested_at, p->now, valid_until, pd->content_hash,
                          pd->len, (uint32_t)pd->n, ids};
        if (rc == RAG_OK)
            rc = rag_store_doc_put(txn, c->id, &dr);
        free(ids);
        rec.documents++;
        rec.chunks += pd->n;
        rec.bytes_text += pd->len;
        p->stats.documents++;
        p->stats.chunks += pd->n;
        p->stats.bytes += pd->len;
    }
    if (rc != RAG_OK)
        return rc;
    if (p->cache.keys)
        rc = rag_embcache_commit(txn, &p->cache, p->vecs, p->nchunks, p->coll_dim, p->cache_max);
    if (rc != RAG_OK)
        return rc;
    rec.newest_ingest = p->now;
    return rag_store_coll_put(txn, c->name, &rec);
}

int rag_ingest(rag_db *db, const char *collection, const rag_document *docs, size_t n,
               rag_ingest_stats *stats)
{
    rag_clear_error();
    if (stats)
        memset(stats, 0, sizeof *stats);
    if (!db || (!docs && n))
        return rag_fail(RAG_EINVAL, "rag_ingest: NULL argument");
    if (db->opts.read_only)
        return rag_fail(RAG_EREADONLY, "store is open read-only");
    if (!collection)
        collection = RAG_DEFAULT_COLLECTION;
    prep p;
    memset(&p, 0, sizeof p);
    p.now = rag_now();
    p.coll_dim = db->dim;
    p.cache_max = db->opts.embed_cache_max;
    int rc = prepare(db, docs, n, &p);
    if (rc != RAG_OK)
        goto cleanup;
    pthread_mutex_lock(&db->write_lock);
    if ((rc = rag_db_ensure_coll(db, collection, 1, &p.coll, NULL)) == RAG_OK) {
        rag_coll *c = p.coll;
        atomic_fetch_add(&c->writing, 1);
        rc = rag_store_write(db->st, ingest_fn, &p);
        if (rc == RAG_OK)
            rag_coll_index_after_commit(db, c, p.vecs, p.nchunks, p.first_id, p.ntombs);
        atomic_fetch_sub(&c->writing, 1);
        if (rc == RAG_OK && db->opts.checkpoint_every > 0 &&
            c->added_since_ckpt >= (uint64_t)db->opts.checkpoint_every) {
            int crc = rag_coll_index_checkpoint(db, c, 0);
            if (crc != RAG_OK)
                rag_clear_error(); /* data is committed; the index is rewritten later */
        }
    }
    pthread_mutex_unlock(&db->write_lock);
    if (rc == RAG_OK && stats)
        *stats = p.stats;
cleanup:
    prep_free(&p);
    return rc;
}

/* ---- delete ------------------------------------------------------------------------------ */

typedef struct delete_arg {
    rag_coll *coll;
    const char *const *ids;
    size_t n;
    int missing_ok;              /* skip absent ids instead of failing */
    uint64_t ntombs, deleted;
} delete_arg;

static int delete_fn(rag_txn *txn, void *user)
{
    delete_arg *a = user;
    rag_coll_rec rec;
    a->ntombs = a->deleted = 0;
    int rc = rag_store_coll_get(txn, a->coll->name, &rec);
    for (size_t i = 0; i < a->n && rc == RAG_OK; i++) {
        rag_doc_rec *old = NULL;
        rc = rag_store_doc_get(txn, a->coll->id, a->ids[i], &old);
        if (rc == RAG_ENOTFOUND) {
            if (a->missing_ok) {
                rc = RAG_OK;
                continue;
            }
            return rag_fail(RAG_ENOTFOUND, "document '%s' not found in collection '%s'",
                            a->ids[i], a->coll->name);
        }
        if (rc == RAG_OK)
            rc = remove_doc(txn, a->coll->an, a->coll->id, old, &rec, &a->ntombs);
        if (rc == RAG_OK)
            a->deleted++;
        rag_doc_rec_free(old);
    }
    if (rc == RAG_OK)
        rc = rag_store_coll_put(txn, a->coll->name, &rec);
    return rc;
}

int rag_db_delete_docs(rag_db *db, const char *collection, const char *const *ids, size_t n,
                       int missing_ok, uint64_t *deleted)
{
    if (deleted)
        *deleted = 0;
    if (db->opts.read_only)
        return rag_fail(RAG_EREADONLY, "store is open read-only");
    pthread_mutex_lock(&db->write_lock);
    delete_arg a = {NULL, ids, n, missing_ok, 0, 0};
    int rc = rag_db_ensure_coll(db, collection, 0, &a.coll, NULL);
    if (rc == RAG_OK) {
        atomic_fetch_add(&a.coll->writing, 1);
        rc = rag_store_write(db->st, delete_fn, &a);
        if (rc == RAG_OK) {
            pthread_rwlock_wrlock(&a.coll->lock);
            a.coll->tombstones += a.ntombs;
            a.coll->dirty = a.coll->dirty || a.ntombs > 0;
            pthread_rwlock_unlock(&a.coll->lock);
        }
        atomic_fetch_sub(&a.coll->writing, 1);
    }
    pthread_mutex_unlock(&db->write_lock);
    if (rc == RAG_OK && deleted)
        *deleted = a.deleted;
    return rc;
}

int rag_delete(rag_db *db, const char *collection, const char *doc_id)
{
    rag_clear_error();
    if (!db || !doc_id)
        return rag_fail(RAG_EINVAL, "rag_delete: NULL argument");
    return rag_db_delete_docs(db, collection ? collection : RAG_DEFAULT_COLLECTION, &doc_id, 1,
                              0, NULL);
}
