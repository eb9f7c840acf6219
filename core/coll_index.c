/* coll_index.c - a collection's vector index: build, load and replay, insert, checkpoint. */
#include "coll_index.h"
#include "db.h"
#include "status.h"
#include "store.h"
#include "vindex.h"

#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* Vectors per add when the facade builds or replays an index. */
#define REBUILD_BATCH 16384

/* Index inserts per exclusive hold of c->lock: a search waits for at most one slice. */
#define INDEX_ADD_SLICE 16

/* ---- on a store -------------------------------------------------------------------------- */

void rag_coll_index_dir(const char *dir, char *out, size_t n)
{
    snprintf(out, n, "%s/index", dir);
}

void rag_coll_index_path(const char *dir, uint32_t coll, char *out, size_t n)
{
    snprintf(out, n, "%s/index/%u.idx", dir, coll);
}

int rag_coll_index_create(const char *spec, int dim, int ef_search, int ef_construction,
                          rag_vindex **out)
{
    int rc = rag_vindex_create(spec, dim, ef_search, out);
    if (rc == RAG_OK && (rc = rag_vindex_set_ef_construction(*out, ef_construction)) != RAG_OK) {
        rag_vindex_free(*out);
        *out = NULL;
    }
    return rc;
}

typedef struct fill_ctx {
    rag_vindex *ix;
    float *vecs;
    int64_t *ids;
    size_t n, batch;
    int dim;
    int skip_bad;
} fill_ctx;

static int fill_flush(fill_ctx *f)
{
    if (f->n == 0)
        return RAG_OK;
    int rc = rag_vindex_add(f->ix, f->n, f->vecs, f->ids);
    f->n = 0;
    return rc;
}

static int fill_visit(void *user, uint64_t id, const float *vec, int dim)
{
    fill_ctx *f = user;
    if (dim != f->dim) {
        if (f->skip_bad)
            return 0;             /* a damaged vector that could not be re-embedded */
        return rag_fail(RAG_ECORRUPT, "vector of chunk %llu has dimension %d, store has %d",
                        (unsigned long long)id, dim, f->dim);
    }
    for (int i = 0; f->skip_bad && i < dim; i++)
        if (!isfinite(vec[i]))
            return 0;
    memcpy(f->vecs + f->n * (size_t)dim, vec, (size_t)dim * sizeof(float));
    f->ids[f->n++] = (int64_t)id;
    return f->n == f->batch ? fill_flush(f) : 0;
}

int rag_coll_index_fill(rag_store *st, uint32_t coll, rag_vindex *ix,
                        const rag_coll_index_fill_opts *o, uint64_t *next, size_t *added)
{
    rag_txn *txn = NULL;
    fill_ctx f = {ix, NULL, NULL, 0, o->batch, rag_vindex_dim(ix), o->skip_bad};
    int rc = rag_store_read(st, &txn);
    if (rc != RAG_OK)
        return rc;
    f.vecs = rag_malloc(f.batch * (size_t)f.dim * sizeof(float));
    f.ids = rag_malloc(f.batch * sizeof(int64_t));
    if (!f.vecs || !f.ids) {
        rc = RAG_ENOMEM;
        goto cleanup;
    }
    if ((rc = rag_store_next_id(txn, next)) != RAG_OK)
        goto cleanup;
    size_t before = rag_vindex_count(ix);
    rc = rag_store_vec_scan(txn, coll, o->from, fill_visit, &f);
    if (rc == RAG_OK)
        rc = fill_flush(&f);
    if (added)
        *added = rag_vindex_count(ix) - before;
cleanup:
    free(f.vecs);
    free(f.ids);
    rag_txn_end(txn);
    return rc;
}

typedef struct tomb_clear_arg {
    uint32_t coll;
    uint64_t below;
} tomb_clear_arg;

static int tomb_clear_fn(rag_txn *txn, void *user)
{
    tomb_clear_arg *a = user;
    return rag_store_tomb_clear(txn, a->coll, a->below);
}

int rag_coll_index_clear_tombs(rag_store *st, uint32_t coll, uint64_t below)
{
    tomb_clear_arg arg = {coll, below};
    return rag_store_write(st, tomb_clear_fn, &arg);
}

/* ---- on a collection of an open rag_db ----------------------------------------------------- */

/* The identity a collection's index files record. */
static rag_vindex_identity coll_identity(const rag_db *db, const rag_coll *c)
{
    rag_vindex_identity id;
    id.coll = c->id;
    memcpy(id.store, db->store_id, sizeof id.store);
    return id;
}

/* Creates an empty index of the store's spec with the handle's search and build depths,
 * recording collection c's identity. */
static int index_create(rag_db *db, rag_coll *c, rag_vindex **out)
{
    int rc = rag_coll_index_create(db->index_spec, db->dim, db->opts.hnsw_ef_search,
                                   db->opts.hnsw_ef_construction, out);
    if (rc == RAG_OK) {
        rag_vindex_identity id = coll_identity(db, c);
        rag_vindex_set_identity(*out, &id);
    }
    return rc;
}

/* Builds a fresh index for a collection from the store. On failure *out stays NULL and
 * searches fall back to exact scans (correct, slower); the error is returned. */
static int index_rebuild(rag_db *db, rag_coll *c, rag_vindex **out, uint64_t *covered)
{
    rag_vindex *ix = NULL;
    *out = NULL;
    int rc = index_create(db, c, &ix);
    if (rc != RAG_OK)
        return rc;
    rag_coll_index_fill_opts fo = {0, REBUILD_BATCH, 0};
    rc = rag_coll_index_fill(db->st, c->id, ix, &fo, covered, NULL);
    if (rc != RAG_OK) {
        rag_vindex_free(ix);
        return rc;
    }
    *out = ix;
    return RAG_OK;
}

int rag_coll_index_new(rag_db *db, rag_coll *c)
{
    int rc = index_create(db, c, &c->ix);
    if (rc != RAG_OK)
        return rc;
    uint64_t next = 0;
    rag_txn *txn = NULL;
    if (rag_store_read(db->st, &txn) == RAG_OK) {
        rag_store_next_id(txn, &next);
        rag_txn_end(txn);
    }
    c->covered = next;
    c->dirty = 1;
    return RAG_OK;
}

typedef struct tomb_in_index {
    const int64_t *ids;          /* the index's ids, sorted */
    size_t n;
    uint64_t below, count;
} tomb_in_index;

static int cmp_i64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return x < y ? -1 : x > y;
}

static int tomb_in_index_visit(void *user, uint64_t id)
{
    tomb_in_index *t = user;
    if (id >= t->below)
        return 1; /* tombstones come in id order */
    int64_t key = (int64_t)id;
    t->count += bsearch(&key, t->ids, t->n, sizeof key, cmp_i64) != NULL;
    return 0;
}

/* Counts the collection's tombstones below `covered` that the loaded index really holds.
 * Usually all of them; but a compaction killed after writing its file and before clearing
 * the tombstones leaves tombstones of ids the new file no longer has, which must not
 * count (they would trigger early compactions and over-fetching). */
static int indexed_tombstones(rag_txn *txn, uint32_t coll, const rag_vindex *ix,
                              uint64_t covered, uint64_t *out)
{
    int rc = rag_store_tomb_count(txn, coll, covered, out);
    if (rc != RAG_OK || *out == 0)
        return rc;
    int64_t *ids = NULL;
    size_t n = 0;
    if (rag_vindex_ids(ix, &ids, &n) != RAG_OK) {
        rag_clear_error(); /* no id map to consult: keep the plain count */
        return RAG_OK;
    }
    qsort(ids, n, sizeof *ids, cmp_i64);
    tomb_in_index t = {ids, n, covered, 0};
    rc = rag_store_tomb_scan(txn, coll, tomb_in_index_visit, &t);
    free(ids);
    if (rc < 0)
        return rc;
    *out = t.count;
    return RAG_OK;
}

int rag_coll_index_load(rag_db *db, rag_coll *c)
{
    char path[4096];
    rag_coll_index_path(db->dir, c->id, path, sizeof path);
    uint64_t covered = 0, next = 0;
    rag_vindex *ix = NULL;
    rag_txn *txn = NULL;
    int rc = rag_vindex_load(path, db->index_spec, db->dim, db->opts.hnsw_ef_search,
                             rag_store_crypt(db->st), &ix,
                             &covered);
    rag_vindex_identity want = coll_identity(db, c);
    if (rc == RAG_OK && (rag_vindex_identity_check(rag_vindex_get_identity(ix), &want, path) != 0 ||
                         rag_vindex_set_ef_construction(ix, db->opts.hnsw_ef_construction) !=
                             RAG_OK)) {
        /* Another collection's or store's file, or the depth failed: rebuilt below (where a
         * depth failure is reported again). */
        rag_vindex_free(ix);
        ix = NULL;
    }
    if (ix)
        rag_vindex_set_identity(ix, &want); /* a file without one gets it when next written */
    if (rc == RAG_OK && ix) {
        if ((rc = rag_store_read(db->st, &txn)) != RAG_OK)
            goto cleanup;
        rc = rag_store_next_id(txn, &next);
        if (rc == RAG_OK && covered > next) {
            /* The file is newer than the store (e.g. a restored store): not trusted. */
            rag_vindex_free(ix);
            ix = NULL;
        } else if (rc == RAG_OK) {
            rc = indexed_tombstones(txn, c->id, ix, covered, &c->tombstones);
        }
        rag_txn_end(txn);
        txn = NULL;
        if (rc != RAG_OK)
            goto cleanup;
        if (ix) {
            size_t added = 0;
            rag_coll_index_fill_opts fo = {covered, REBUILD_BATCH, 0};
            rc = rag_coll_index_fill(db->st, c->id, ix, &fo, &c->covered, &added);
            if (rc != RAG_OK) {
                rag_vindex_free(ix);
                ix = NULL;
            }
            c->dirty = added > 0;
        }
    }
    if (!ix) {
        rag_clear_error();
        c->tombstones = 0;
        rc = index_rebuild(db, c, &ix, &c->covered);
        c->dirty = 1;
        if (rc != RAG_OK && rc != RAG_EINDEX)
            goto cleanup;
        rc = RAG_OK; /* an untrainable index (too few vectors) means exact scans */
    }
    c->ix = ix;
    ix = NULL;
cleanup:
    rag_vindex_free(ix);
    return rc;
}

void rag_coll_index_catch_up(rag_db *db, rag_coll *c)
{
    pthread_rwlock_wrlock(&c->lock);
    if (c->ix) {
        rag_coll_index_fill_opts fo = {c->covered, REBUILD_BATCH, 0};
        uint64_t next = c->covered;
        if (rag_coll_index_fill(db->st, c->id, c->ix, &fo, &next, NULL) == RAG_OK) {
            c->covered = next;
        } else {
            rag_vindex_free(c->ix);
            c->ix = NULL;
            rag_clear_error();
        }
    }
    pthread_rwlock_unlock(&c->lock);
}

int rag_coll_index_checkpoint(rag_db *db, rag_coll *c, int force_rebuild)
{
    if (db->opts.read_only || c->dropped)
        return RAG_OK;
    size_t count = c->ix ? rag_vindex_count(c->ix) : 0;
    int rebuild = force_rebuild || !c->ix ||
                  (count > 0 && (double)c->tombstones > db->opts.compact_threshold * (double)count);
    int rc = RAG_OK;
    if (rebuild) {
        rag_vindex *ix = NULL;
        uint64_t covered = 0;
        rc = index_rebuild(db, c, &ix, &covered);
        if (rc == RAG_EINDEX) { /* still too small to train: keep exact scans */
            rag_clear_error();
            return RAG_OK;
        }
        if (rc != RAG_OK)
            return rc;
        pthread_rwlock_wrlock(&c->lock);
        rag_vindex *old = c->ix;
        c->ix = ix;
        c->covered = covered;
        c->tombstones = 0;
        c->dirty = 1;
        pthread_rwlock_unlock(&c->lock);
        rag_vindex_free(old);
    }
    if (!c->dirty)
        return RAG_OK;
    char path[4096];
    rag_coll_index_path(db->dir, c->id, path, sizeof path);
    pthread_rwlock_rdlock(&c->lock);
    rc = rag_vindex_save(c->ix, path, c->covered, rag_store_crypt(db->st));
    pthread_rwlock_unlock(&c->lock);
    if (rc != RAG_OK)
        return rc;
    c->dirty = 0;
    c->added_since_ckpt = 0;
    if (rebuild) /* the new file no longer holds any deleted id below its coverage */
        rc = rag_coll_index_clear_tombs(db->st, c->id, c->covered);
    return rc;
}

void rag_coll_index_after_commit(rag_db *db, rag_coll *c, const float *vecs, size_t n,
                                 uint64_t first_id, uint64_t ntombs)
{
    pthread_rwlock_wrlock(&c->lock);
    c->tombstones += ntombs;
    c->dirty = 1;
    pthread_rwlock_unlock(&c->lock);
    c->covered = first_id + n;
    c->added_since_ckpt += n;
    if (!c->ix || n == 0)
        return;
    int64_t *ids = malloc(n * sizeof *ids);
    int rc = ids ? RAG_OK : RAG_ENOMEM;
    for (size_t i = 0; ids && i < n; i++)
        ids[i] = (int64_t)(first_id + i);
    /* An untrained index (IVF, PQ) must see its training vectors in one call. */
    size_t slice = rag_vindex_is_trained(c->ix) ? INDEX_ADD_SLICE : n;
    for (size_t off = 0; off < n && rc == RAG_OK; off += slice) {
        size_t m = n - off < slice ? n - off : slice;
        pthread_rwlock_wrlock(&c->lock);
        rc = rag_vindex_add(c->ix, m, vecs + off * (size_t)db->dim, ids + off);
        pthread_rwlock_unlock(&c->lock);
    }
    free(ids);
    if (rc != RAG_OK) {
        pthread_rwlock_wrlock(&c->lock);
        rag_vindex_free(c->ix);
        c->ix = NULL;
        pthread_rwlock_unlock(&c->lock);
        rag_clear_error();
    }
}

void rag_coll_index_drop(rag_db *db, rag_coll *c)
{
    char path[4096];
    rag_coll_index_path(db->dir, c->id, path, sizeof path);
    unlink(path);
    rag_vindex_free(c->ix);
    c->ix = NULL;
}

/* ---- erasure ------------------------------------------------------------------------------ */

typedef struct id_list {
    int64_t *ids;
    size_t n, cap;
} id_list;

static int id_list_visit(void *user, uint64_t id)
{
    id_list *l = user;
    if (l->n == l->cap) {
        size_t cap = l->cap ? l->cap * 2 : 256;
        int64_t *grown = rag_realloc(l->ids, cap * sizeof *grown);
        if (!grown)
            return RAG_ENOMEM;
        l->ids = grown;
        l->cap = cap;
    }
    l->ids[l->n++] = (int64_t)id;
    return 0;
}

int rag_coll_index_wipe_deleted(rag_db *db, rag_coll *c, size_t *wiped)
{
    *wiped = 0;
    if (!c->ix)
        return rag_fail(RAG_EUNSUPPORTED, "collection '%s' has no index in memory", c->name);
    id_list l = {NULL, 0, 0};
    rag_txn *txn = NULL;
    int rc = rag_store_read(db->st, &txn);
    if (rc == RAG_OK) {
        rc = rag_store_tomb_scan(txn, c->id, id_list_visit, &l);
        rag_txn_end(txn);
    }
    if (rc == RAG_OK && l.n > 0) {
        pthread_rwlock_wrlock(&c->lock);
        rc = rag_vindex_wipe(c->ix, l.ids, l.n, wiped);
        if (rc == RAG_OK && *wiped > 0)
            c->dirty = 1;
        pthread_rwlock_unlock(&c->lock);
    }
    free(l.ids);
    return rc;
}
