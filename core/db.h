/* db.h - internals of the rag_db handle shared by the core's modules and in-tree programs
 * (server, CLI), which also get the auxiliary tables (kvtable.h) through it. */
#ifndef RAG_DB_H
#define RAG_DB_H

#include "kvtable.h"
#include "ragcore.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

struct rag_store;
struct rag_embedder;
struct rag_vindex;
struct rag_analyzer;
struct rag_lockfile;

/* In-memory state of one collection. Never freed before rag_close (a dropped collection
 * is only marked), so pointers to it stay valid. */
typedef struct rag_coll {
    char name[129];
    char language[24];        /* BM25 analyzer language it was created with */
    uint32_t id;
    int dropped;
    struct rag_vindex *ix;    /* NULL when unusable (untrained/failed): search scans exactly */
    struct rag_analyzer *an;  /* lexical analyzer of the collection's language */
    /* Searches share it; writers take it only to change ix and the counters below, one
     * short slice of index inserts at a time, never across an LMDB commit. Writers are
     * preferred, so a waiting insert slice is not starved by a stream of searches. */
    pthread_rwlock_t lock;
    /* > 0 while a write to this collection is between its LMDB commit and the moment ix
     * and tombstones reflect it: searches must then check each index hit against their
     * snapshot instead of assuming every indexed id is live. Always 1 on a read-only
     * handle, whose store another process may change at any time. */
    atomic_int writing;
    uint64_t covered;         /* every committed chunk id below it is in ix (write_lock) */
    uint64_t tombstones;      /* deleted ids still inside ix */
    uint64_t added_since_ckpt;
    int dirty;                /* ix changed since the last checkpoint */
} rag_coll;

struct rag_db {
    char *dir;
    struct rag_store *st;
    struct rag_embedder *emb;
    int dim;
    char index_spec[96];
    unsigned char store_id[16];  /* meta "store_id": recorded in every index file written */
    char language[24];           /* analyzer language for collections created here */
    rag_open_options opts;
    struct rag_lockfile *lock;   /* the store's writer lock (NULL on a read-only handle) */
    /* One writer at a time (ingest, delete, drop, checkpoint); on a read-only handle, one
     * refresh at a time (rag_db_refresh). */
    pthread_mutex_t write_lock;
    /* settings of collections created implicitly (opts.default_collection, copied); NULL:
     * rag_collection_options_init's */
    struct rag_collection_options *default_policy;
    /* Read-only handle: the store's last committed transaction when it last caught up. */
    _Atomic uint64_t seen_txn;
    pthread_mutex_t colls_lock;  /* guards the colls array */
    rag_coll **colls;
    size_t ncolls, cap_colls;
    /* background expiry purge (opts.gc_interval > 0) */
    pthread_t gc_thread;
    int gc_running, gc_stop;
    pthread_mutex_t gc_lock;
    pthread_cond_t gc_cond;
    /* toxicity detectors, loaded by the first run that needs them (core/toxicity.c) */
    pthread_mutex_t tox_lock;
    struct rag_wordlist *tox_wordlist;
    struct rag_linear_model *tox_model;
};

/* Makes a read-only handle see what other processes committed since it opened or last
 * caught up: collections created (registered, their index loaded), dropped or recreated
 * under the same name (the old one marked dropped), and vectors committed after each
 * index's coverage (replayed into it). A no-op when nothing was committed since (one read
 * of LMDB's meta page) and on a read-write handle, which is the only writer. Searches and
 * statistics call it first. */
int rag_db_refresh(rag_db *db);

/* Finds a live collection by name (NULL when absent). */
rag_coll *rag_db_find_coll(rag_db *db, const char *name);

/* Returns the collection `name`, creating it when absent (when `create`; else
 * RAG_ENOTFOUND). RAG_EINVAL for an invalid name, RAG_EREADONLY when it would be created in
 * a read-only store. Caller holds db->write_lock. *created (may be NULL) tells whether it
 * was created. */
int rag_db_ensure_coll(rag_db *db, const char *name, int create, rag_coll **out,
                       int *created);

/* Creates collection `name` with settings `opts` (checked by rag_policy_from_user; NULL:
 * the defaults, with the handle's language) and its index. RAG_EEXIST when it exists;
 * RAG_EINVAL for an invalid name or language; RAG_EREADONLY. Caller holds db->write_lock. */
int rag_db_create_coll(rag_db *db, const char *name, const struct rag_collection_options *opts,
                       rag_coll **out);

/* Updates a collection record (created when absent): ttl >= 0 sets the default TTL,
 * last_sync > 0 records a sync time. */
int rag_db_coll_update(rag_db *db, const char *collection, int64_t ttl, int64_t last_sync);

#endif
