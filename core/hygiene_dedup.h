/* hygiene_dedup.h - the persistent duplicate index of a collection: exact keys and MinHash
 * LSH bands of its canonical documents, kept in the store so that documents stored by any
 * path and any process count, and skipped-duplicate records.
 *
 * Layout (aux tables, keys big-endian):
 *   dedup_docs  coll(4) id                                -> rows(1) 0(3) shingles(4)
 *                                                            hash(8) sig(128 x 4)
 *   dedup_keys  coll(4) 'E' hash(8) idhash(8)             -> id      (exact key)
 *               coll(4) 'B' rows(1) band(1) key(8) idhash(8) -> id   (LSH band)
 *   sources     "dup:<collection>/<id>"                   -> {"canonical","kind",
 *                                                            "similarity","source"}
 * hash and key are in the store's visible form (rag_store_key_hash: keyed under the
 * store's hash key on an encrypted store, so they confirm no guessed text).
 * rows is the band height the collection's threshold chose when the document was indexed
 * (0: exact keys only); changing the threshold re-indexes (rag_dedup_store_rebuild). Only
 * canonical documents (stored, not themselves duplicates) are indexed. All calls run inside
 * the caller's transaction. */
#ifndef RAG_HYGIENE_DEDUP_H
#define RAG_HYGIENE_DEDUP_H

#include "neardup.h"
#include "ragcore.h"

#include <stdint.h>

struct rag_txn;

typedef struct rag_dedup_found {
    rag_dup_kind kind;                  /* RAG_DUP_NONE: not a duplicate */
    char canonical[RAG_DOC_ID_MAX + 1];
    double similarity;                  /* 1 for exact */
} rag_dedup_found;

/* Looks s up among the collection's indexed documents other than `self` (may be NULL):
 * an exact key match first, else the best LSH candidate whose signature similarity is
 * >= threshold (threshold > 1: exact only). */
int rag_dedup_store_find(struct rag_txn *txn, uint32_t coll, const rag_dedup_sig *s,
                         double threshold, const char *self, rag_dedup_found *out);

/* Indexes document id as canonical (replacing an entry it had). */
int rag_dedup_store_add(struct rag_txn *txn, uint32_t coll, const char *id,
                        const rag_dedup_sig *s, double threshold);

/* Removes document id from the index (no-op when absent). */
int rag_dedup_store_remove(struct rag_txn *txn, uint32_t coll, const char *id);

/* Removes the collection's whole index and its skipped-duplicate records. */
int rag_dedup_store_purge(struct rag_txn *txn, uint32_t coll, const char *name);

/* Rebuilds the collection's index from the stored documents' text (in id order; a document
 * that duplicates one indexed before it is not indexed). *indexed receives the count. */
int rag_dedup_store_rebuild(struct rag_txn *txn, uint32_t coll, double threshold,
                            uint64_t *indexed);

/* Records why skipped duplicate `id` is not stored ("dup:<collection>/<id>" in aux table
 * "sources"); ids too long for a key are not recorded (*recorded 0). */
int rag_dedup_record_skip(struct rag_txn *txn, const char *collection, const char *id,
                          const char *source, const rag_dedup_found *f, int *recorded);

/* Removes such a record (a document stored now is no longer a skipped duplicate). */
int rag_dedup_record_clear(struct rag_txn *txn, const char *collection, const char *id);

/* The stored text of document `id` rebuilt from its chunks (gaps between chunks become
 * spaces) into *text (malloc'd, NUL-terminated) of *len bytes. RAG_ENOTFOUND when absent. */
int rag_dedup_stored_text(struct rag_txn *txn, uint32_t coll, const char *id, char **text,
                          size_t *len);

#endif
