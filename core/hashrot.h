/* hashrot.h - replacing an encrypted store's hash key and rewriting every key hashed under
 * it: BM25 postings and document frequencies, chunk-hash counts, the duplicate index; the
 * embedding cache is emptied.
 *
 * Kill safety: rag_store_hashkey_begin replaces the key and marks the rotation pending in
 * one transaction; from then on every hashed key written under the old key is stale, so
 * the rewrite runs before anything else may use them: rag_rekey runs it to the end, and a
 * read-write rag_open of a store whose rotation is pending runs it again from the start
 * (each step deletes what it rewrites first, so a repeat is harmless) before it returns.
 * The mark is cleared in the last transaction. */
#ifndef RAG_HASHROT_H
#define RAG_HASHROT_H

struct rag_db;
struct rag_txn;

/* Rewrites every hashed key of a store whose hash-key rotation is pending (see above) in
 * bounded transactions, scrubs data.mdb so that no key under the old hash key stays
 * readable in the file, then clears the mark. The caller holds db->write_lock and no
 * transaction. RAGCORE_TEST_HASHROT_KILL=N (tests) kills the process after N
 * transactions of the rotation, the one that marked it counted first (1: nothing
 * rewritten yet). RAG_OK at once when none is pending. */
int rag_hashrot_finish(struct rag_db *db);

#endif
