/* ragcore.c - the public facade: opening stores, collections, ingest, delete, checkpoints. */
#include "bytes.h"
#include "chunker.h"
#include "coll_index.h"
#include "db.h"
#include "embcache.h"
#include "embedder.h"
#include "lexical.h"
#include "status.h"
#include "store.h"
#include "text.h"
#include "vindex.h"

#include <errno.h>
#include <stddef.h>
#include <time.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define DEFAULT_SPEC "HNSW32"
#define DEFAULT_EF_CONSTRUCTION 40
#define DEFAULT_EMBED_CACHE_MAX 1000000
#define EMBED_BATCH 64

void rag_open_options_init(rag_open_options *o)
{
    memset(o, 0, sizeof *o);
    o->version = RAG_OPEN_OPTIONS_VERSION;
    o->index_spec = DEFAULT_SPEC;
    o->hnsw_ef_search = 256;
    o->hnsw_ef_construction = DEFAULT_EF_CONSTRUCTION;
    o->embed_cache_max = DEFAULT_EMBED_CACHE_MAX;
    o->chunk_tokens = 256;
    o->chunk_overlap = 32;
    o->compact_threshold = 0.2;
    o->checkpoint_every = 50000;
}

void rag_document_init(rag_document *d)
{
    memset(d, 0, sizeof *d);
    d->version = RAG_DOCUMENT_VERSION;
    d->text_len = (size_t)-1;
    d->format = RAG_FORMAT_TEXT;
}

const char *rag_db_embedder(const rag_db *db)
{
    return db->emb->name;
}

int rag_db_dim(const rag_db *db)
{
    return db->dim;
}

const char *rag_db_index_spec(const rag_db *db)
{
    return db->index_spec;
}

static int valid_name(const char *name)
{
    size_t n = name ? strlen(name) : 0;
    if (n == 0 || n > 128)
        return 0;
    for (size_t i = 0; i < n; i++) {
        char c = name[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '_' || c == '-' || c == '.'))
            return 0;
    }
    return name[0] != '.';
}

rag_coll *rag_db_find_coll(rag_db *db, const char *name)
{
    rag_coll *found = NULL;
    pthread_mutex_lock(&db->colls_lock);
    for (size_t i = 0; i < db->ncolls; i++)
        if (!db->colls[i]->dropped && strcmp(db->colls[i]->name, name) == 0) {
            found = db->colls[i];
            break;
        }
    pthread_mutex_unlock(&db->colls_lock);
    return found;
}

static rag_coll *coll_new(const char *name, uint32_t id, const char *language)
{
    rag_coll *c = rag_calloc(1, sizeof *c);
    if (!c)
        return NULL;
    snprintf(c->name, sizeof c->name, "%s", name);
    c->id = id;
    if (rag_analyzer_create(language && *language ? language : "english", 1, &c->an) != RAG_OK) {
        free(c);
        return NULL;
    }
    pthread_rwlockattr_t attr;
    pthread_rwlockattr_init(&attr);
#ifdef __GLIBC__
    pthread_rwlockattr_setkind_np(&attr, PTHREAD_RWLOCK_PREFER_WRITER_NONRECURSIVE_NP);
#endif
    pthread_rwlock_init(&c->lock, &attr);
    pthread_rwlockattr_destroy(&attr);
    return c;
}

static void coll_free(rag_coll *c)
{
    if (!c)
        return;
    rag_vindex_free(c->ix);
    rag_analyzer_free(c->an);
    pthread_rwlock_destroy(&c->lock);
    free(c);
}

static int coll_register(rag_db *db, rag_coll *c)
{
    pthread_mutex_lock(&db->colls_lock);
    if (db->ncolls == db->cap_colls) {
        size_t cap = db->cap_colls ? db->cap_colls * 2 : 8;
        rag_coll **q = rag_realloc(db->colls, cap * sizeof *q);
        if (!q) {
            pthread_mutex_unlock(&db->colls_lock);
            return RAG_ENOMEM;
        }
        db->colls = q;
        db->cap_colls = cap;
    }
    db->colls[db->ncolls++] = c;
    pthread_mutex_unlock(&db->colls_lock);
    return RAG_OK;
}

/* ---- open / close ------------------------------------------------------------------------ */

typedef struct init_ctx {
    const char *embedder;
    int dim;
    const char *spec;
} init_ctx;

static int init_meta(rag_txn *txn, void *user)
{
    init_ctx *m = user;
    char buf[32];
    int rc = rag_store_meta_put(txn, "schema_version", "1");
    if (rc == RAG_OK)
        rc = rag_store_meta_put(txn, "embedder", m->embedder);
    snprintf(buf, sizeof buf, "%d", m->dim);
    if (rc == RAG_OK)
        rc = rag_store_meta_put(txn, "dim", buf);
    if (rc == RAG_OK)
        rc = rag_store_meta_put(txn, "index_spec", m->spec);
    snprintf(buf, sizeof buf, "%lld", rag_now());
    if (rc == RAG_OK)
        rc = rag_store_meta_put(txn, "created_at", buf);
    return rc;
}

static int set_spec(rag_txn *txn, void *user)
{
    return rag_store_meta_put(txn, "index_spec", user);
}

/* Reads the store's identity (embedder, dimension, spec), creating it for a new store,
 * and creates the embedder. */
static int open_identity(rag_db *db, const rag_open_options *o)
{
    rag_txn *txn = NULL;
    char *version = NULL, *emb = NULL, *dimstr = NULL, *spec = NULL;
    int rc = rag_store_read(db->st, &txn);
    if (rc != RAG_OK)
        return rc;
    rc = rag_store_meta_get(txn, "schema_version", &version);
    if (rc == RAG_OK) {
        if ((rc = rag_store_meta_get(txn, "embedder", &emb)) == RAG_OK &&
            (rc = rag_store_meta_get(txn, "dim", &dimstr)) == RAG_OK)
            rc = rag_store_meta_get(txn, "index_spec", &spec);
        if (rc == RAG_ENOTFOUND)
            rc = rag_fail(RAG_ECORRUPT, "store '%s' lacks its identity records", db->dir);
    }
    rag_txn_end(txn);
    if (rc == RAG_ENOTFOUND) { /* a new store */
        rag_clear_error();
        if (o->read_only) {
            rc = rag_fail(RAG_ENOTFOUND, "'%s' is not a ragcore store", db->dir);
            goto cleanup;
        }
        const char *name = o->embedder;
        if (o->custom_embedder)
            rc = rag_embedder_from_def(o->custom_embedder, &db->emb);
        else {
            if (!name)
                name = rag_default_model_available() ? rag_default_model_available() : "hash";
            rc = rag_embedder_create(name, o->dim, &db->emb);
        }
        if (rc != RAG_OK)
            goto cleanup;
        init_ctx m = {db->emb->name, db->emb->dim, o->index_spec ? o->index_spec : DEFAULT_SPEC};
        /* Validate the spec before recording it. */
        rag_vindex *probe = NULL;
        if ((rc = rag_vindex_create(m.spec, db->emb->dim, 0, &probe)) != RAG_OK)
            goto cleanup;
        rag_vindex_free(probe);
        if ((rc = rag_store_write(db->st, init_meta, &m)) != RAG_OK)
            goto cleanup;
        db->dim = db->emb->dim;
        snprintf(db->index_spec, sizeof db->index_spec, "%s", m.spec);
        goto cleanup;
    }
    if (rc != RAG_OK)
        goto cleanup;
    if (strcmp(version, "1") != 0) {
        rc = rag_fail(RAG_ECORRUPT, "store '%s' has schema version %s; this build reads 1",
                      db->dir, version);
        goto cleanup;
    }
    int dim = atoi(dimstr);
    if (o->custom_embedder) {
        if (strcmp(o->custom_embedder->name, emb) != 0 || o->custom_embedder->dim != dim) {
            rc = rag_fail(RAG_EMISMATCH, "store '%s' was created with embedder %s (dim %d), not %s "
                          "(dim %d)", db->dir, emb, dim, o->custom_embedder->name,
                          o->custom_embedder->dim);
            goto cleanup;
        }
        rc = rag_embedder_from_def(o->custom_embedder, &db->emb);
    } else {
        char want[160];
        if (o->embedder && strcmp(o->embedder, "hash") == 0 && o->dim && o->dim != 384)
            snprintf(want, sizeof want, "hash-%d", o->dim); /* how such stores are recorded */
        else
            snprintf(want, sizeof want, "%s", o->embedder ? o->embedder : "");
        if (o->embedder && strcmp(want, emb) != 0) {
            rc = rag_fail(RAG_EMISMATCH, "store '%s' was created with embedder '%s', not '%s'",
                          db->dir, emb, o->embedder);
            goto cleanup;
        }
        if (o->dim && o->dim != dim) {
            rc = rag_fail(RAG_EMISMATCH, "store '%s' has dimension %d, not %d", db->dir, dim,
                          o->dim);
            goto cleanup;
        }
        rc = rag_embedder_create(emb, strncmp(emb, "hash", 4) == 0 ? dim : 0, &db->emb);
        if (rc != RAG_OK)
            rag_fail_prefix(rc, "store '%s' needs embedder '%s'", db->dir, emb);
    }
    if (rc != RAG_OK)
        goto cleanup;
    if (db->emb->dim != dim) {
        rc = rag_fail(RAG_EMISMATCH, "embedder '%s' now has dimension %d, store has %d", emb,
                      db->emb->dim, dim);
        goto cleanup;
    }
    db->dim = dim;
    snprintf(db->index_spec, sizeof db->index_spec, "%s", spec);
    if (o->index_spec && strcmp(o->index_spec, DEFAULT_SPEC) != 0 &&
        strcmp(o->index_spec, spec) != 0 && !o->read_only) {
        /* A new spec: record it; every index is rebuilt when loaded (files mismatch). */
        rag_vindex *probe = NULL;
        if ((rc = rag_vindex_create(o->index_spec, dim, 0, &probe)) != RAG_OK)
            goto cleanup;
        rag_vindex_free(probe);
        if ((rc = rag_store_write(db->st, set_spec, (void *)o->index_spec)) != RAG_OK)
            goto cleanup;
        snprintf(db->index_spec, sizeof db->index_spec, "%s", o->index_spec);
    }
cleanup:
    free(version);
    free(emb);
    free(dimstr);
    free(spec);
    return rc;
}

static int load_collections(rag_db *db)
{
    rag_txn *txn = NULL;
    char **names = NULL;
    size_t n = 0;
    int rc = rag_store_read(db->st, &txn);
    if (rc != RAG_OK)
        return rc;
    rc = rag_store_coll_list(txn, &names, &n);
    for (size_t i = 0; rc == RAG_OK && i < n; i++) {
        rag_coll_rec rec;
        if ((rc = rag_store_coll_get(txn, names[i], &rec)) != RAG_OK)
            break;
        rag_coll *c = coll_new(names[i], rec.id, rec.language);
        if (!c) {
            rc = rag_fail(RAG_ECORRUPT, "collection '%s' has unknown language '%s'", names[i],
                          rec.language);
            break;
        }
        if ((rc = coll_register(db, c)) != RAG_OK) {
            coll_free(c);
            break;
        }
    }
    rag_txn_end(txn);
    rag_strings_free(names, n);
    for (size_t i = 0; rc == RAG_OK && i < db->ncolls; i++) {
        rc = rag_coll_index_load(db, db->colls[i]);
        if (rc != RAG_OK)
            rag_fail_prefix(rc, "collection '%s'", db->colls[i]->name);
    }
    return rc;
}

/* Background purge of expired documents every opts.gc_interval seconds. */
static void *gc_main(void *arg)
{
    rag_db *db = arg;
    pthread_mutex_lock(&db->gc_lock);
    while (!db->gc_stop) {
        struct timespec until;
        clock_gettime(CLOCK_REALTIME, &until);
        until.tv_sec += (time_t)db->opts.gc_interval;
        pthread_cond_timedwait(&db->gc_cond, &db->gc_lock, &until);
        if (db->gc_stop)
            break;
        pthread_mutex_unlock(&db->gc_lock);
        uint64_t purged = 0;
        rag_gc(db, NULL, 0, &purged); /* errors are retried at the next interval */
        pthread_mutex_lock(&db->gc_lock);
    }
    pthread_mutex_unlock(&db->gc_lock);
    return NULL;
}

int rag_open(const char *dir, const rag_open_options *opts, rag_db **out)
{
    rag_clear_error();
    if (!out)
        return rag_fail(RAG_EINVAL, "rag_open: out is NULL");
    *out = NULL;
    if (!dir || !*dir)
        return rag_fail(RAG_EINVAL, "rag_open: store directory is empty");
    rag_open_options o;
    rag_open_options_init(&o);
    if (opts) {
        if (opts->version < 1)
            return rag_fail(RAG_EINVAL, "rag_open: options.version is 0 (call rag_open_options_init)");
        if (opts->version >= 2)
            o = *opts;
        else /* a caller built against version 1 passes the shorter struct */
            memcpy(&o, opts, offsetof(rag_open_options, hnsw_ef_construction));
        o.version = RAG_OPEN_OPTIONS_VERSION;
        if (o.hnsw_ef_construction <= 0)
            o.hnsw_ef_construction = DEFAULT_EF_CONSTRUCTION;
        if (o.embed_cache_max == 0)
            o.embed_cache_max = DEFAULT_EMBED_CACHE_MAX;
        if (!o.index_spec)
            o.index_spec = DEFAULT_SPEC;
        if (o.hnsw_ef_search <= 0)
            o.hnsw_ef_search = 256;
        if (o.chunk_tokens <= 0)
            o.chunk_tokens = 256;
        if (o.chunk_overlap <= 0)
            o.chunk_overlap = o.chunk_overlap < 0 ? 0 : 32;
        if (o.compact_threshold <= 0)
            o.compact_threshold = 0.2;
        if (o.checkpoint_every == 0)
            o.checkpoint_every = 50000;
    }
    if (o.chunk_overlap >= o.chunk_tokens)
        return rag_fail(RAG_EINVAL, "chunk_overlap (%d) must be below chunk_tokens (%d)",
                        o.chunk_overlap, o.chunk_tokens);
    rag_db *db = rag_calloc(1, sizeof *db);
    if (!db)
        return RAG_ENOMEM;
    pthread_mutex_init(&db->write_lock, NULL);
    pthread_mutex_init(&db->colls_lock, NULL);
    pthread_mutex_init(&db->gc_lock, NULL);
    pthread_cond_init(&db->gc_cond, NULL);
    db->opts = o;
    db->opts.embedder = NULL;
    db->opts.custom_embedder = NULL;
    db->opts.index_spec = NULL;
    int rc = RAG_ENOMEM;
    if (!(db->dir = rag_strdup(dir)))
        goto fail;
    {
        rag_analyzer *probe = NULL;
        const char *lang = o.language && *o.language ? o.language : "english";
        if ((rc = rag_analyzer_create(lang, 1, &probe)) != RAG_OK)
            goto fail;
        rag_analyzer_free(probe);
        snprintf(db->language, sizeof db->language, "%s", lang);
        db->opts.language = NULL;
    }
    if ((rc = rag_store_open(dir, o.read_only, &db->st)) != RAG_OK)
        goto fail;
    if ((rc = open_identity(db, &o)) != RAG_OK)
        goto fail;
    char idir[4096];
    rag_coll_index_dir(dir, idir, sizeof idir);
    if (!o.read_only && mkdir(idir, 0755) != 0 && errno != EEXIST) {
        rc = rag_fail(RAG_EIO, "cannot create '%s': %s", idir, strerror(errno));
        goto fail;
    }
    if ((rc = load_collections(db)) != RAG_OK)
        goto fail;
    if (o.gc_interval > 0 && !o.read_only) {
        if (pthread_create(&db->gc_thread, NULL, gc_main, db) != 0) {
            rc = rag_fail(RAG_ENOMEM, "cannot start the expiry thread");
            goto fail;
        }
        db->gc_running = 1;
    }
    *out = db;
    return RAG_OK;
fail:
    db->opts.read_only = 1; /* nothing to checkpoint */
    {
        char saved[1024];
        snprintf(saved, sizeof saved, "%s", rag_errmsg());
        rag_close(db);
        rag_fail(rc, "%s", saved);
    }
    return rc;
}

int rag_checkpoint(rag_db *db)
{
    rag_clear_error();
    if (!db)
        return rag_fail(RAG_EINVAL, "rag_checkpoint: db is NULL");
    if (db->opts.read_only)
        return RAG_OK;
    int rc = RAG_OK;
    pthread_mutex_lock(&db->write_lock);
    for (size_t i = 0; i < db->ncolls; i++) {
        int r = rag_coll_index_checkpoint(db, db->colls[i], 0);
        if (r != RAG_OK && rc == RAG_OK)
            rc = rag_fail_prefix(r, "checkpoint of collection '%s'", db->colls[i]->name);
    }
    pthread_mutex_unlock(&db->write_lock);
    return rc;
}

int rag_close(rag_db *db)
{
    if (!db)
        return RAG_OK;
    int rc = RAG_OK;
    if (db->gc_running) {
        pthread_mutex_lock(&db->gc_lock);
        db->gc_stop = 1;
        pthread_cond_signal(&db->gc_cond);
        pthread_mutex_unlock(&db->gc_lock);
        pthread_join(db->gc_thread, NULL);
    }
    if (db->st && !db->opts.read_only && db->emb)
        rc = rag_checkpoint(db);
    for (size_t i = 0; i < db->ncolls; i++)
        coll_free(db->colls[i]);
    free(db->colls);
    rag_embedder_free(db->emb);
    rag_store_close(db->st);
    pthread_mutex_destroy(&db->write_lock);
    pthread_mutex_destroy(&db->colls_lock);
    pthread_mutex_destroy(&db->gc_lock);
    pthread_cond_destroy(&db->gc_cond);
    free(db->dir);
    free(db);
    return rc;
}

/* ---- collections ------------------------------------------------------------------------ */

typedef struct coll_create_arg {
    const char *name;
    const char *language;
    rag_coll_rec rec;
    int existed;
} coll_create_arg;

static int coll_create_fn(rag_txn *txn, void *user)
{
    coll_create_arg *a = user;
    int rc = rag_store_coll_get(txn, a->name, &a->rec);
    a->existed = rc == RAG_OK;
    if (rc != RAG_ENOTFOUND)
        return rc;
    memset(&a->rec, 0, sizeof a->rec);
    a->rec.created_at = rag_now();
    snprintf(a->rec.language, sizeof a->rec.language, "%s", a->language);
    if ((rc = rag_store_coll_new_id(txn, &a->rec.id)) != RAG_OK)
        return rc;
    return rag_store_coll_put(txn, a->name, &a->rec);
}

/* Returns the collection `name`, creating it when absent (when `create`). Caller holds
 * db->write_lock. *created (may be NULL) tells whether it was created. */
static int ensure_coll(rag_db *db, const char *name, int create, rag_coll **out, int *created)
{
    *out = NULL;
    if (created)
        *created = 0;
    if (!valid_name(name))
        return rag_fail(RAG_EINVAL, "invalid collection name '%s' (1..128 of A-Z a-z 0-9 _ - .)",
                        name ? name : "");
    rag_coll *c = rag_db_find_coll(db, name);
    if (c) {
        *out = c;
        return RAG_OK;
    }
    if (!create)
        return rag_fail(RAG_ENOTFOUND, "collection '%s' does not exist", name);
    if (db->opts.read_only)
        return rag_fail(RAG_EREADONLY, "store is open read-only");
    coll_create_arg a = {name, db->language, {0}, 0};
    int rc = rag_store_write(db->st, coll_create_fn, &a);
    if (rc != RAG_OK)
        return rc;
    c = coll_new(name, a.rec.id, a.rec.language);
    if (!c)
        return RAG_ENOMEM;
    rc = rag_coll_index_new(db, c);
    if (rc == RAG_OK)
        rc = coll_register(db, c);
    if (rc != RAG_OK) {
        coll_free(c);
        return rc;
    }
    if (created)
        *created = !a.existed;
    *out = c;
    return RAG_OK;
}

int rag_collection_create(rag_db *db, const char *name)
{
    rag_clear_error();
    if (!db)
        return rag_fail(RAG_EINVAL, "db is NULL");
    pthread_mutex_lock(&db->write_lock);
    int created = 0;
    rag_coll *c = NULL;
    int rc = rag_db_find_coll(db, name ? name : "")
                 ? rag_fail(RAG_EEXIST, "collection '%s' already exists", name)
                 : ensure_coll(db, name, 1, &c, &created);
    pthread_mutex_unlock(&db->write_lock);
    return rc;
}

static int coll_drop_fn(rag_txn *txn, void *user)
{
    rag_coll *c = user;
    int rc = rag_store_coll_purge(txn, c->id);
    if (rc == RAG_OK)
        rc = rag_lexical_purge(txn, c->id);
    if (rc == RAG_OK)
        rc = rag_store_coll_del(txn, c->name);
    return rc;
}

int rag_collection_drop(rag_db *db, const char *name)
{
    rag_clear_error();
    if (!db || !name)
        return rag_fail(RAG_EINVAL, "db or name is NULL");
    if (db->opts.read_only)
        return rag_fail(RAG_EREADONLY, "store is open read-only");
    pthread_mutex_lock(&db->write_lock);
    rag_coll *c = rag_db_find_coll(db, name);
    int rc;
    if (!c) {
        rc = rag_fail(RAG_ENOTFOUND, "collection '%s' does not exist", name);
        goto cleanup;
    }
    pthread_rwlock_wrlock(&c->lock);
    rc = rag_store_write(db->st, coll_drop_fn, c);
    if (rc == RAG_OK) {
        c->dropped = 1;
        rag_coll_index_drop(db, c);
    }
    pthread_rwlock_unlock(&c->lock);
cleanup:
    pthread_mutex_unlock(&db->write_lock);
    return rc;
}

int rag_collection_list(rag_db *db, char ***names, size_t *count)
{
    rag_clear_error();
    if (!db || !names || !count)
        return rag_fail(RAG_EINVAL, "NULL argument");
    rag_txn *txn = NULL;
    int rc = rag_store_read(db->st, &txn);
    if (rc != RAG_OK)
        return rc;
    rc = rag_store_coll_list(txn, names, count);
    rag_txn_end(txn);
    return rc;
}

void rag_strings_free(char **strings, size_t count)
{
    if (!strings)
        return;
    for (size_t i = 0; i < count; i++)
        free(strings[i]);
    free(strings);
}

int rag_collection_stats(rag_db *db, const char *name, rag_collection_info *info)
{
    rag_clear_error();
    if (!db || !name || !info)
        return rag_fail(RAG_EINVAL, "NULL argument");
    memset(info, 0, sizeof *info);
    rag_coll *c = rag_db_find_coll(db, name);
    if (!c)
        return rag_fail(RAG_ENOTFOUND, "collection '%s' does not exist", name);
    rag_txn *txn = NULL;
    rag_coll_rec rec;
    pthread_rwlock_rdlock(&c->lock);
    int rc = rag_store_read(db->st, &txn);
    if (rc == RAG_OK)
        rc = rag_store_coll_get(txn, name, &rec);
    rag_txn_end(txn);
    if (rc == RAG_OK) {
        info->documents = rec.documents;
        info->chunks = rec.chunks;
        info->duplicate_chunks = rec.duplicate_chunks;
        info->bytes_text = rec.bytes_text;
        info->created_at = rec.created_at;
        info->newest_ingest = rec.newest_ingest;
        info->tombstones = c->tombstones;
        info->index_vectors = c->ix ? rag_vindex_count(c->ix) : 0;
    }
    pthread_rwlock_unlock(&c->lock);
    return rc;
}

/* ---- ingest ------------------------------------------------------------------------------ */

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
    if ((rc = ensure_coll(db, collection, 1, &p.coll, NULL)) == RAG_OK) {
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
    int rc = ensure_coll(db, collection, 0, &a.coll, NULL);
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

typedef struct coll_update_arg {
    const char *name;
    int64_t ttl;                 /* >= 0: set the default TTL */
    int64_t last_sync;           /* > 0: record a sync time */
} coll_update_arg;

static int coll_update_fn(rag_txn *txn, void *user)
{
    coll_update_arg *a = user;
    rag_coll_rec rec;
    int rc = rag_store_coll_get(txn, a->name, &rec);
    if (rc == RAG_ENOTFOUND)
        return rag_fail(RAG_ENOTFOUND, "collection '%s' does not exist", a->name);
    if (rc != RAG_OK)
        return rc;
    if (a->ttl >= 0)
        rec.ttl_seconds = a->ttl;
    if (a->last_sync > 0)
        rec.last_sync = a->last_sync;
    return rag_store_coll_put(txn, a->name, &rec);
}

int rag_db_coll_update(rag_db *db, const char *collection, int64_t ttl, int64_t last_sync)
{
    if (db->opts.read_only)
        return rag_fail(RAG_EREADONLY, "store is open read-only");
    pthread_mutex_lock(&db->write_lock);
    rag_coll *c = NULL;
    int rc = ensure_coll(db, collection, 1, &c, NULL);
    coll_update_arg a = {collection, ttl, last_sync};
    if (rc == RAG_OK)
        rc = rag_store_write(db->st, coll_update_fn, &a);
    pthread_mutex_unlock(&db->write_lock);
    return rc;
}

int rag_collection_set_ttl(rag_db *db, const char *collection, int64_t ttl_seconds)
{
    rag_clear_error();
    if (!db || !collection)
        return rag_fail(RAG_EINVAL, "rag_collection_set_ttl: NULL argument");
    if (ttl_seconds < 0)
        return rag_fail(RAG_EINVAL, "ttl_seconds must not be negative, got %lld",
                        (long long)ttl_seconds);
    return rag_db_coll_update(db, collection, ttl_seconds, 0);
}
