/* ingest.h - writing documents: rag_ingest and rag_delete (ragcore.h), and deleting a batch
 * of documents for the library's own callers.
 *
 * A batch is validated, chunked and embedded before any lock is taken; then, holding the
 * store's write lock, one write transaction stores its documents, chunks, vectors, postings,
 * embedding-cache entries and counters (replacing a document removes its old chunks in the
 * same transaction), and the collection's index takes the new vectors (coll_index.h). */
#ifndef RAG_INGEST_H
#define RAG_INGEST_H

#include "ragcore.h"

#include <stddef.h>
#include <stdint.h>

/* Deletes documents in one transaction; absent ids fail with RAG_ENOTFOUND unless
 * missing_ok. *deleted (may be NULL) receives the number deleted. */
int rag_db_delete_docs(rag_db *db, const char *collection, const char *const *ids, size_t n,
                       int missing_ok, uint64_t *deleted);

#endif
