/* ragcore.c - the public facade: options, opening and closing stores, collections, checkpoints. */
#include "coll_index.h"
#include "crypt.h"
#include "db.h"
#include "erase.h"
#include "hashrot.h"
#include "embedder.h"
#include "hygiene_policy.h"
#include "lexical.h"
#include "lockfile.h"
#include "status.h"
#include "store.h"
#include "toxicity.h"
#include "vindex.h"

#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define DEFAULT_SPEC "HNSW32"
#define DEFAULT_EF_CONSTRUCTION 40
#define DEFAULT_EMBED_CACHE_MAX 1000000

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
    snprintf(c->language, sizeof c->language, "%s", language && *language ? language : "english");
    c->id = id;
    if (rag_analyzer_create(c->language, 1, &c->an) != RAG_OK) {
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

static int set_store_id(rag_txn *txn, void *user)
{
    return rag_store_meta_put(txn, "store_id", user);
}

/* Reads the store's random identity (meta "store_id", 32 hex digits) into db->store_id;
 * gives a store that has none (made before identities were recorded) a new one when the
 * handle may write. A read-only handle of such a store keeps zeros (identity unknown). */
static int open_store_id(rag_db *db)
{
    rag_txn *txn = NULL;
    char *hex = NULL;
    int rc = rag_store_read(db->st, &txn);
    if (rc == RAG_OK)
        rc = rag_store_meta_get(txn, "store_id", &hex);
    rag_txn_end(txn);
    if (rc == RAG_OK) {
        for (int i = 0; i < 16 && strlen(hex) == 32; i++)
            sscanf(hex + 2 * i, "%2hhx", &db->store_id[i]);
        free(hex);
        return RAG_OK;
    }
    if (rc != RAG_ENOTFOUND)
        return rc;
    rag_clear_error();
    if (db->opts.read_only)
        return RAG_OK;
    unsigned char b[16];
    if (getrandom(b, sizeof b, 0) != (ssize_t)sizeof b)
        return rag_fail(RAG_EIO, "cannot draw the store's identity: %s", strerror(errno));
    char text[33];
    for (int i = 0; i < 16; i++)
        snprintf(text + 2 * i, 3, "%02x", b[i]);
    if ((rc = rag_store_write(db->st, set_store_id, text)) == RAG_OK)
        memcpy(db->store_id, b, sizeof b);
    return rc;
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
        int cmp = o->embedder ? rag_embedder_name_compare(want, emb) : RAG_EMBEDDER_SAME;
        if (cmp == RAG_EMBEDDER_OTHER_PRECISION) {
            /* its vectors come from the other arithmetic: queries must match them */
            rc = rag_fail(RAG_EMISMATCH, "store '%s' holds vectors of embedder '%s', not '%s' "
                          "(a model's fp32 and int8 vectors are not mixed; open it with the "
                          "bare model name to use the store's precision)",
                          db->dir, emb, o->embedder);
            goto cleanup;
        }
        if (cmp != RAG_EMBEDDER_SAME) {
            rc = rag_fail(RAG_EMISMATCH, "store '%s' was created with embedder '%s', not '%s'",
                          db->dir, emb, o->embedder);
            goto cleanup;
        }
        if (o->dim && o->dim != dim) {
            rc = rag_fail(RAG_EMISMATCH, "store '%s' has dimension %d, not %d", db->dir, dim,
                          o->dim);
            goto cleanup;
        }
        rc = rag_embedder_create_recorded(emb, strncmp(emb, "hash", 4) == 0 ? dim : 0,
                                          &db->emb);
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

/* Marks collection c dropped (it stays allocated: see rag_coll) and frees its index. */
static void coll_mark_dropped(rag_coll *c)
{
    pthread_rwlock_wrlock(&c->lock);
    c->dropped = 1;
    rag_vindex_free(c->ix);
    c->ix = NULL;
    pthread_rwlock_unlock(&c->lock);
}

/* Brings the handle's collections in line with the store's current snapshot: marks
 * dropped each live collection whose record is gone or now has another id (dropped and
 * created again), registers and loads the index of each collection not known yet, and
 * replays into the others' indexes the vectors committed after their coverage. At open,
 * every collection is new. Caller holds db->write_lock, or is rag_open. */
static int sync_collections(rag_db *db)
{
    rag_txn *txn = NULL;
    char **names = NULL;
    size_t n = 0;
    rag_coll_rec *recs = NULL;
    uint64_t next = 0;
    int rc = rag_store_read(db->st, &txn);
    if (rc != RAG_OK)
        return rc;
    if ((rc = rag_store_coll_list(txn, &names, &n)) == RAG_OK &&
        (rc = rag_store_next_id(txn, &next)) == RAG_OK &&
        !(recs = rag_calloc(n ? n : 1, sizeof *recs)))
        rc = RAG_ENOMEM;
    for (size_t i = 0; rc == RAG_OK && i < n; i++)
        rc = rag_store_coll_get(txn, names[i], &recs[i]);
    rag_txn_end(txn);
    /* Only this function and writers (who hold write_lock too) register collections, so
     * the array is stable here. */
    for (size_t i = 0; rc == RAG_OK && i < db->ncolls; i++) {
        rag_coll *c = db->colls[i];
        if (c->dropped)
            continue;
        size_t j = 0;
        while (j < n && !(recs[j].id == c->id && strcmp(names[j], c->name) == 0))
            j++;
        if (j == n)
            coll_mark_dropped(c);
        else if (c->covered < next)
            rag_coll_index_catch_up(db, c);
    }
    for (size_t i = 0; rc == RAG_OK && i < n; i++) {
        if (rag_db_find_coll(db, names[i]))
            continue;
        rag_coll *c = coll_new(names[i], recs[i].id, recs[i].language);
        if (!c) {
            rc = rag_fail(RAG_ECORRUPT, "collection '%s' has unknown language '%s'", names[i],
                          recs[i].language);
            break;
        }
        if (db->opts.read_only)
            atomic_store(&c->writing, 1); /* its index may lag the store: check each hit */
        rc = rag_coll_index_load(db, c);
        if (rc != RAG_OK)
            rag_fail_prefix(rc, "collection '%s'", names[i]);
        else
            rc = coll_register(db, c);
        if (rc != RAG_OK)
            coll_free(c);
    }
    free(recs);
    rag_strings_free(names, n);
    return rc;
}

int rag_db_refresh(rag_db *db)
{
    if (!db->opts.read_only || rag_store_last_txn(db->st) == atomic_load(&db->seen_txn))
        return RAG_OK;
    int rc = RAG_OK;
    pthread_mutex_lock(&db->write_lock);
    uint64_t last = rag_store_last_txn(db->st); /* before the snapshot sync_collections reads */
    if (last != atomic_load(&db->seen_txn) && (rc = sync_collections(db)) == RAG_OK)
        atomic_store(&db->seen_txn, last);
    pthread_mutex_unlock(&db->write_lock);
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

/* What a read-write rag_open created, so that a failed open can remove it again. */
enum { CREATED_DIR = 1, CREATED_LOCK = 2, CREATED_STORE = 4 };

/* Read-write open: creates the store directory when absent, takes the store's writer lock
 * (RAG_EBUSY naming the holder) and records in *created what this open creates. */
static int lock_store(rag_db *db, const char *dir, int *created)
{
    struct stat sb;
    if (stat(dir, &sb) != 0) {
        if (mkdir(dir, rag_store_dir_mode(db->opts.file_mode)) == 0)
            *created |= CREATED_DIR;
        else if (errno != EEXIST)
            return rag_fail(RAG_EIO, "cannot create store directory '%s': %s", dir,
                            strerror(errno));
    }
    int new_lock = 0;
    int rc = rag_lockfile_acquire(dir, &db->lock, &new_lock);
    if (rc != RAG_OK)
        return rc;
    char path[4096];
    if (new_lock) {
        *created |= CREATED_LOCK;
        snprintf(path, sizeof path, "%s/write.lock", dir);
        chmod(path, db->opts.file_mode);
    }
    snprintf(path, sizeof path, "%s/data.mdb", dir);
    if (stat(path, &sb) != 0 && errno == ENOENT)
        *created |= CREATED_STORE; /* no other writer can create it now: we hold the lock */
    return RAG_OK;
}

/* Removes what a failed read-write open created (see lock_store), so that the directory is
 * as it was: a new store's files, then the lock file and the directory when this open
 * created them. Never touches the files of a store that existed. Releases `lock`. */
static void undo_create(const char *dir, int created, rag_lockfile *lock)
{
    char path[4096];
    if (created & CREATED_STORE) {
        snprintf(path, sizeof path, "%s/data.mdb", dir);
        unlink(path);
        snprintf(path, sizeof path, "%s/lock.mdb", dir);
        unlink(path);
        rag_coll_index_dir(dir, path, sizeof path);
        rmdir(path); /* a new store has no index files yet */
    }
    rag_lockfile_release(lock, (created & CREATED_STORE) && (created & CREATED_LOCK));
    if (created & CREATED_DIR)
        rmdir(dir);
}

/* Finishes an erasure that a crash interrupted (see rag_erase_run). A reader of another
 * process that still holds freed pages does not fail the open: the intent stays for the
 * next erasure or open. */
static int resume_erasure(rag_db *db)
{
    int pending = 0;
    int rc = rag_erase_pending(db, &pending);
    if (rc == RAG_OK && pending && (rc = rag_erase_run(db, NULL)) != RAG_OK) {
        if (rc == RAG_EBUSY) {
            rag_clear_error();
            return RAG_OK;
        }
        rag_fail_prefix(rc, "finishing the erasure a crash interrupted");
    }
    return rc;
}

/* Applies the key from the options (store_key, else store_key_file) or the environment
 * (RAGCORE_STORE_KEY) to the just opened store. */
static int unlock_store(rag_store *st, const rag_open_options *o)
{
    char *secret = NULL;
    int rc = rag_crypt_secret(o->store_key, o->store_key_file, "RAGCORE_STORE_KEY", &secret);
    if (rc == RAG_OK)
        rc = rag_store_unlock(st, secret);
    rag_crypt_secret_free(secret);
    return rc;
}

/* Finishes a key rotation: re-seals what an older generation still holds, rewrites every
 * index file under the new generation, then drops the old one. The caller holds no
 * transaction; db->write_lock is taken here. */
static int rekey_finish(rag_db *db)
{
    long resealed = 0;
    pthread_mutex_lock(&db->write_lock);
    int rc = rag_store_rekey_records(db->st, 1000, &resealed);
    for (size_t i = 0; i < db->ncolls && rc == RAG_OK; i++) {
        rag_coll *c = db->colls[i];
        if (c->dropped || !c->ix)
            continue;
        c->dirty = 1;
        if ((rc = rag_coll_index_checkpoint(db, c, 0)) != RAG_OK)
            rag_fail_prefix(rc, "rewriting the index of collection '%s'", c->name);
    }
    if (rc == RAG_OK)
        rc = rag_store_rekey_finish(db->st);
    pthread_mutex_unlock(&db->write_lock);
    return rc;
}

int rag_rekey(rag_db *db, const char *new_key, const char *new_key_file)
{
    rag_rekey_options o = {new_key, new_key_file, 0};
    return rag_rekey_opts(db, &o);
}

int rag_rekey_opts(rag_db *db, const rag_rekey_options *opts)
{
    rag_clear_error();
    if (!db || !opts)
        return rag_fail(RAG_EINVAL, "rag_rekey: db or options is NULL");
    const char *new_key = opts->new_key, *new_key_file = opts->new_key_file;
    if (db->opts.read_only)
        return rag_fail(RAG_EREADONLY, "rag_rekey: store '%s' is open read-only", db->dir);
    char *secret = NULL;
    int rc = rag_crypt_secret(new_key, new_key_file, "RAGCORE_NEW_STORE_KEY", &secret);
    if (rc == RAG_OK && !secret)
        rc = rag_fail(RAG_EINVAL, "rag_rekey: no new key (new_key, new_key_file or "
                      "RAGCORE_NEW_STORE_KEY)");
    if (rc == RAG_OK && rag_store_rekey_pending(db->st))
        rc = rekey_finish(db); /* an interrupted rotation first */
    if (rc == RAG_OK) {
        pthread_mutex_lock(&db->write_lock);
        rc = rag_store_rekey_begin(db->st, secret);
        pthread_mutex_unlock(&db->write_lock);
    }
    if (rc == RAG_OK)
        rc = rekey_finish(db);
    if (rc == RAG_OK && opts->rotate_hash_key) {
        pthread_mutex_lock(&db->write_lock);
        if ((rc = rag_store_hashkey_begin(db->st)) == RAG_OK)
            rc = rag_hashrot_finish(db);
        pthread_mutex_unlock(&db->write_lock);
    }
    rag_crypt_secret_free(secret);
    if (rc != RAG_OK)
        rag_fail_prefix(rc, "rekey of store '%s'", db->dir);
    return rc;
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
        if (opts->version >= 5)
            o = *opts;
        else if (opts->version == 4)
            memcpy(&o, opts, offsetof(rag_open_options, store_key));
        else if (opts->version == 3)
            memcpy(&o, opts, offsetof(rag_open_options, file_mode));
        else if (opts->version == 2) /* built against an older header: a shorter struct */
            memcpy(&o, opts, offsetof(rag_open_options, default_collection));
        else
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
    if (o.file_mode == 0)
        o.file_mode = RAG_STORE_FILE_MODE;
    if (o.file_mode & ~0777u)
        return rag_fail(RAG_EINVAL, "file_mode %o has bits beyond 0777", o.file_mode);
    if (o.chunk_overlap >= o.chunk_tokens)
        return rag_fail(RAG_EINVAL, "chunk_overlap (%d) must be below chunk_tokens (%d)",
                        o.chunk_overlap, o.chunk_tokens);
    rag_db *db = rag_calloc(1, sizeof *db);
    if (!db)
        return RAG_ENOMEM;
    pthread_mutex_init(&db->write_lock, NULL);
    pthread_mutex_init(&db->colls_lock, NULL);
    pthread_mutex_init(&db->gc_lock, NULL);
    pthread_mutex_init(&db->tox_lock, NULL);
    pthread_cond_init(&db->gc_cond, NULL);
    db->opts = o;
    db->opts.default_collection = NULL;
    db->opts.embedder = NULL;
    db->opts.custom_embedder = NULL;
    db->opts.index_spec = NULL;
    int rc = RAG_ENOMEM, created = 0;
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
    if (o.default_collection) {
        rag_collection_options dc;
        if ((rc = rag_policy_from_user(o.default_collection, &dc)) != RAG_OK) {
            rag_fail_prefix(rc, "default_collection");
            goto fail;
        }
        if (!(db->default_policy = rag_policy_dup(&dc))) {
            rc = RAG_ENOMEM;
            goto fail;
        }
    }
    if (!o.read_only && (rc = lock_store(db, dir, &created)) != RAG_OK)
        goto fail;
    if ((rc = rag_store_open_mode(dir, o.read_only, o.file_mode, &db->st)) != RAG_OK ||
        (rc = unlock_store(db->st, &o)) != RAG_OK)
        goto fail;
    atomic_store(&db->seen_txn, rag_store_last_txn(db->st));
    if ((rc = open_identity(db, &o)) != RAG_OK || (rc = open_store_id(db)) != RAG_OK)
        goto fail;
    char idir[4096];
    rag_coll_index_dir(dir, idir, sizeof idir);
    if (!o.read_only && mkdir(idir, rag_store_dir_mode(o.file_mode)) != 0 && errno != EEXIST) {
        rc = rag_fail(RAG_EIO, "cannot create '%s': %s", idir, strerror(errno));
        goto fail;
    }
    if ((rc = sync_collections(db)) != RAG_OK)
        goto fail;
    if (!o.read_only && (rc = resume_erasure(db)) != RAG_OK)
        goto fail;
    if (!o.read_only && rag_store_rekey_pending(db->st) && (rc = rekey_finish(db)) != RAG_OK)
        goto fail;
    if (!o.read_only) { /* an interrupted hash-key rotation is redone before any use */
        pthread_mutex_lock(&db->write_lock);
        rc = rag_hashrot_finish(db);
        pthread_mutex_unlock(&db->write_lock);
        if (rc != RAG_OK)
            goto fail;
    }
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
        rag_lockfile *lock = db->lock;
        db->lock = NULL;
        rag_close(db);
        undo_create(dir, created, lock); /* after the store is closed, still locked */
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
    rag_lockfile_release(db->lock, 0); /* last: everything is written */
    pthread_mutex_destroy(&db->write_lock);
    pthread_mutex_destroy(&db->colls_lock);
    pthread_mutex_destroy(&db->gc_lock);
    pthread_cond_destroy(&db->gc_cond);
    rag_toxicity_db_free(db);
    pthread_mutex_destroy(&db->tox_lock);
    rag_policy_free(db->default_policy);
    free(db->dir);
    free(db);
    return rc;
}

/* ---- collections ------------------------------------------------------------------------ */

typedef struct coll_create_arg {
    const char *name;
    const char *language;
    const rag_collection_options *opts;  /* hygiene policy and TTL; NULL: none */
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
    if (a->opts)
        a->rec.ttl_seconds = a->opts->ttl_seconds;
    if ((rc = rag_store_coll_new_id(txn, &a->rec.id)) != RAG_OK)
        return rc;
    if ((rc = rag_store_coll_put(txn, a->name, &a->rec)) == RAG_OK && a->opts)
        rc = rag_policy_write(txn, a->rec.id, a->opts);
    return rc;
}

int rag_db_create_coll(rag_db *db, const char *name, const rag_collection_options *opts,
                       rag_coll **out)
{
    *out = NULL;
    if (!valid_name(name))
        return rag_fail(RAG_EINVAL, "invalid collection name '%s' (1..128 of A-Z a-z 0-9 _ - .)",
                        name ? name : "");
    if (db->opts.read_only)
        return rag_fail(RAG_EREADONLY, "store is open read-only");
    const char *lang = opts && opts->language && *opts->language ? opts->language : db->language;
    rag_analyzer *probe = NULL;
    int rc = rag_analyzer_create(lang, 1, &probe);
    rag_analyzer_free(probe);
    if (rc != RAG_OK)
        return rag_fail_prefix(rc, "collection '%s'", name);
    coll_create_arg a = {name, lang, opts, {0}, 0};
    if ((rc = rag_store_write(db->st, coll_create_fn, &a)) != RAG_OK)
        return rc;
    if (a.existed) /* created by another handle since this one looked */
        return rag_fail(RAG_EEXIST, "collection '%s' already exists", name);
    rag_coll *c = coll_new(name, a.rec.id, a.rec.language);
    if (!c)
        return RAG_ENOMEM;
    rc = rag_coll_index_new(db, c);
    if (rc == RAG_OK)
        rc = coll_register(db, c);
    if (rc != RAG_OK) {
        coll_free(c);
        return rc;
    }
    *out = c;
    return RAG_OK;
}

int rag_db_ensure_coll(rag_db *db, const char *name, int create, rag_coll **out,
                       int *created)
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
    int rc = rag_db_create_coll(db, name, db->default_policy, out);
    if (rc == RAG_OK && created)
        *created = 1;
    return rc;
}

int rag_collection_create(rag_db *db, const char *name)
{
    return rag_collection_create_with(db, name, NULL);
}

static int coll_drop_fn(rag_txn *txn, void *user)
{
    rag_coll *c = user;
    int rc = rag_store_coll_purge(txn, c->id);
    if (rc == RAG_OK)
        rc = rag_lexical_purge(txn, c->id);
    if (rc == RAG_OK)
        rc = rag_policy_drop(txn, c->id, c->name);
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
    int rc = db->opts.read_only ? rag_db_refresh(db) : RAG_OK;
    if (rc != RAG_OK)
        return rc;
    rag_coll *c = rag_db_find_coll(db, name);
    if (!c)
        return rag_fail(RAG_ENOTFOUND, "collection '%s' does not exist", name);
    rag_txn *txn = NULL;
    rag_coll_rec rec;
    pthread_rwlock_rdlock(&c->lock);
    rc = rag_store_read(db->st, &txn);
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
    int rc = rag_db_ensure_coll(db, collection, 1, &c, NULL);
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
