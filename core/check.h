/* check.h - consistency check and repair of a store: the LMDB records against each other
 * (documents, chunks, vectors, counters, chunk hashes, tombstones) and against the index
 * files derived from them.
 *
 * The check opens the store directory itself (not through rag_open, which would quietly
 * rebuild a damaged index) and reads one LMDB snapshot. A check runs beside a writer; a
 * repair rewrites index files and counters, so it takes the store's writer lock and is
 * refused (RAG_EBUSY, naming the holder) while another writer has the store open. */
#ifndef RAG_CHECK_H
#define RAG_CHECK_H

#include <stddef.h>
#include <stdint.h>

/* Kinds of report items. */
enum {
    RAG_CHECK_PROBLEM = 0,   /* an inconsistency found by the check */
    RAG_CHECK_NOTE = 1,      /* worth knowing, not wrong (e.g. an index file not written yet) */
    RAG_CHECK_REPAIRED = 2,  /* an action --repair took */
    RAG_CHECK_UNFIXED = 3    /* a problem still present after --repair */
};

/* Flags of rag_check_store. */
#define RAG_CHECK_REPAIR 1u

typedef struct rag_check_item {
    int kind;                /* RAG_CHECK_* */
    char collection[129];    /* "" for store-wide items */
    uint32_t coll_id;        /* 0 for store-wide items */
    int index_file;          /* 1 when the item concerns the collection's index file */
    char *message;
} rag_check_item;

typedef struct rag_check_totals {
    uint64_t collections, documents, chunks, vectors, tombstones;
    uint64_t index_files, index_vectors;
} rag_check_totals;

typedef struct rag_check_report rag_check_report;

/* Checks the store in `dir` and, with RAG_CHECK_REPAIR, repairs what can be derived again
 * from primary data: index files are rebuilt, counters and chunk-hash counts recomputed,
 * vectors that are missing or damaged re-embedded (when the store's embedder is built in),
 * orphan chunks and vectors (no document lists them) deleted, and records of collections
 * that no longer exist removed when they hold no documents. Documents are never deleted or
 * altered. After repairing, the store is checked again and what remains is reported as
 * RAG_CHECK_UNFIXED.
 * Returns RAG_OK when the check ran (whatever it found: see rag_check_report_count), or a
 * negative status when it could not run (RAG_ENOTFOUND: not a store; RAG_ECORRUPT: the
 * store cannot be read at all; RAG_EBUSY: a repair while another writer holds the store).
 * *out is freed with rag_check_report_free. */
int rag_check_store(const char *dir, unsigned flags, rag_check_report **out);

/* rag_check_store whose repairs rebuild HNSW index files at build depth ef_construction
 * (<= 0: FAISS's default, 40). The depth is not recorded in the store: pass the one the
 * store was ingested with (`ragcore ingest --ef-construction`) to keep its recall. */
int rag_check_store_with(const char *dir, unsigned flags, int ef_construction,
                         rag_check_report **out);

/* Number of findings of one kind (every finding, including those not listed as items:
 * at most 10 items per category and collection are kept, then one summary item). */
uint64_t rag_check_report_count(const rag_check_report *r, int kind);
size_t rag_check_report_size(const rag_check_report *r);
/* The i-th item (NULL when out of range); borrowed from the report. */
const rag_check_item *rag_check_report_item(const rag_check_report *r, size_t i);
const rag_check_totals *rag_check_report_totals(const rag_check_report *r);
/* "problem", "note", "repaired", "unfixed". */
const char *rag_check_kind_name(int kind);
void rag_check_report_free(rag_check_report *r);

#endif
