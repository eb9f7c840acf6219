/* hashrot.c - rewriting every hashed key of an encrypted store after its hash key changed. */
#include "hashrot.h"
#include "db.h"
#include "hygiene_dedup.h"
#include "hygiene_policy.h"
#include "lexical.h"
#include "status.h"
#include "store.h"

#include <signal.h>
#include <stdlib.h>

#define EMBCACHE_DROP 10000 /* embedding-cache entries deleted per transaction */

typedef struct hashrot_run {
    long kill_after, txns;  /* RAGCORE_TEST_HASHROT_KILL: die after kill_after transactions */
    uint32_t coll;          /* the collection being rewritten */
    long dropped;           /* entries the last embedding-cache step deleted */
} hashrot_run;

/* Counts a committed transaction; the test kill point. */
static void committed(void *user)
{
    hashrot_run *r = user;
    if (r->kill_after > 0 && ++r->txns >= r->kill_after)
        raise(SIGKILL);
}

/* The chunk-hash counts of the collection go with its old postings ... */
static int purge_hashes(void *user, rag_txn *txn, uint32_t coll)
{
    (void)user;
    return rag_store_hash_clear(txn, coll);
}

/* ... and are counted again, under the new key, as each live chunk is indexed. */
static int count_hash(void *user, rag_txn *txn, uint32_t coll, const rag_chunk_rec *ch)
{
    (void)user;
    return rag_store_hash_incr(txn, coll, ch->text_hash, NULL);
}

/* Re-indexes the duplicate index of the collection (when its policy keeps one) from the
 * stored texts: one transaction, as a change of the near-duplicate threshold does. */
static int dedup_fn(rag_txn *txn, void *user)
{
    hashrot_run *r = user;
    rag_collection_options o;
    uint64_t indexed = 0;
    int rc = rag_policy_read(txn, r->coll, &o);
    if (rc == RAG_OK && o.dedup != RAG_DEDUP_OFF)
        rc = rag_dedup_store_rebuild(txn, r->coll, o.near_dup_threshold, &indexed);
    return rc;
}

/* Deletes up to EMBCACHE_DROP entries of the embedding cache (its counters included). */
static int embcache_drop_fn(rag_txn *txn, void *user)
{
    hashrot_run *r = user;
    long a = 0, b = 0;
    int rc = rag_store_kv_shrink(txn, "embcache_fifo", 0, EMBCACHE_DROP, &a);
    if (rc == RAG_OK)
        rc = rag_store_kv_shrink(txn, "embcache", 0, EMBCACHE_DROP - a, &b);
    r->dropped = a + b;
    return rc;
}

int rag_hashrot_finish(rag_db *db)
{
    int rc = rag_store_hashkey_pending(db->st);
    if (rc <= 0)
        return rc;
    const char *kill_env = getenv("RAGCORE_TEST_HASHROT_KILL");
    hashrot_run r = {kill_env ? atol(kill_env) : 0, 0, 0, 0};
    rag_lex_rebuild_hooks hooks = {purge_hashes, count_hash, committed, &r};
    committed(&r); /* the transaction that marked it */
    rc = RAG_OK;
    for (size_t i = 0; i < db->ncolls && rc == RAG_OK; i++) {
        rag_coll *c = db->colls[i];
        if (c->dropped)
            continue;
        uint64_t indexed = 0;
        char lang[32];
        r.coll = c->id;
        if ((rc = rag_lexical_rebuild(db->st, c->name, c->id, &hooks, &indexed, lang,
                                      sizeof lang)) != RAG_OK)
            rag_fail_prefix(rc, "rewriting the lexical index of collection '%s'", c->name);
        else if ((rc = rag_store_write(db->st, dedup_fn, &r)) != RAG_OK)
            rag_fail_prefix(rc, "rewriting the duplicate index of collection '%s'", c->name);
        else
            committed(&r);
    }
    do {
        if (rc == RAG_OK && (rc = rag_store_write(db->st, embcache_drop_fn, &r)) == RAG_OK)
            committed(&r);
    } while (rc == RAG_OK && r.dropped == EMBCACHE_DROP);
    if (rc == RAG_OK) /* before the mark goes: a kill in the scrub redoes the rotation */
        rc = rag_store_scrub(db->st, 10.0, NULL);
    if (rc == RAG_OK)
        rc = rag_store_hashkey_done(db->st);
    if (rc != RAG_OK)
        rag_fail_prefix(rc, "hash-key rotation");
    return rc;
}
