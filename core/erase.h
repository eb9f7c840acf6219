/* erase.h - erasure: removing documents, collections and unmasked text so that no byte of
 * them stays readable in any file of the store directory (public calls in ragcore.h:
 * rag_erase_documents, rag_collection_erase, rag_collection_pii_apply, rag_erase_finish,
 * rag_ingest_options.erase).
 *
 * An erasure records its intent in the store first, then removes what it names (through
 * the ordinary delete, drop and ingest paths), deletes the query-log entries that
 * reference it, purges the embedding cache of texts no longer stored (embcache.h),
 * rewrites the affected index files from the store after overwriting the old ones with
 * zeros, and scrubs data.mdb (store.h: rag_store_scrub); the intent is deleted last, so
 * a crash at any point is finished by the next read-write open. */
#ifndef RAG_ERASE_H
#define RAG_ERASE_H

#include "ragcore.h"

/* Runs the pending intent (redoing its removals; none pending: the purge and the scrub
 * only) and deletes it. Takes db->write_lock for the purge, index files and scrub; the
 * caller must not hold it. stats (may be NULL) is filled. */
int rag_erase_run(rag_db *db, rag_erase_stats *stats);

/* Records that collection `collection` will have documents replaced as an erasure
 * (rag_ingest_options.erase): a crash before rag_erase_run finishes still scrubs. */
int rag_erase_begin_replace(rag_db *db, const char *collection);

/* *pending receives 1 when an erasure intent is recorded in the store. */
int rag_erase_pending(rag_db *db, int *pending);

#endif
