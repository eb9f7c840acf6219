/* embcache.h - the embedding cache: vectors a model computed before, kept in the store so
 * that re-ingesting an unchanged chunk never embeds it again; and embedding texts through
 * it (rag_embed).
 *
 * Entries live in auxiliary table "embcache": key = the embedder name's hash then a 128-bit
 * hash of the exact input text (24 bytes), value = float32 x dim. Only model embedders keep
 * a cache (hashing a text is cheaper than reading its vector back), and not when
 * opts.embed_cache_max is negative. */
#ifndef RAG_EMBCACHE_H
#define RAG_EMBCACHE_H

#include "ragcore.h"

#include <stddef.h>
#include <stdint.h>

#define RAG_EMBCACHE_KEY 24

struct rag_txn;

/* The cache's part in one ingest batch of n chunks. */
typedef struct rag_embcache_batch {
    unsigned char (*keys)[RAG_EMBCACHE_KEY]; /* per chunk; NULL when the store keeps no cache */
    unsigned char *cached;                   /* per chunk: 1 when its vector came from the cache */
    uint64_t hits, misses;
    uint64_t model;                          /* hash of the embedder's name */
} rag_embcache_batch;

/* 1 when this store keeps an embedding cache. */
int rag_embcache_on(const rag_db *db);

/* Prepares `b` for a batch of n (> 0) chunks embedded by db's embedder. RAG_ENOMEM; free
 * with rag_embcache_batch_free either way. */
int rag_embcache_batch_init(rag_embcache_batch *b, const rag_db *db, size_t n);
void rag_embcache_batch_free(rag_embcache_batch *b);

/* Looks chunk i's input text up in the cache as of `txn`: on a hit copies its vector into
 * out[dim], records the hit and returns 1; otherwise records a miss (the caller embeds the
 * text) and returns 0. Can't fail. */
int rag_embcache_lookup(rag_embcache_batch *b, struct rag_txn *txn, size_t i, const char *text,
                        size_t len, size_t dim, float *out);

/* Inside the ingest's write transaction: stores the vectors (vecs: the batch's n vectors of
 * dim floats) of the chunks that missed, adds the batch's hits and misses to the counters,
 * and evicts the oldest entries beyond `max` entries. */
int rag_embcache_commit(struct rag_txn *txn, const rag_embcache_batch *b, const float *vecs,
                        size_t n, int dim, int64_t max);

/* Embeds n texts as rag_embed does (each must be non-NULL valid UTF-8, else RAG_EINVAL or
 * RAG_EENCODING naming the text): queries by the embedder, documents from the cache where
 * it holds them (the cache is not written). Unlike rag_embed it keeps the caller's error
 * state and trusts db, texts and out to be valid, for the library's own callers. */
int rag_embcache_embed(rag_db *db, const char *const *texts, size_t n, int is_query,
                       float *out);

/* Erasure: deletes every cache entry (and its eviction-order record) whose text is not the
 * embedded text of a chunk stored now, in any collection, so that no vector of erased
 * text stays in the cache. Reads the store in one snapshot, then deletes in one write
 * transaction; *removed receives the number of entries deleted. Caller holds
 * db->write_lock, so nothing is stored in between. */
int rag_embcache_gc(rag_db *db, uint64_t *removed);

#endif
