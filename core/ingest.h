/* ingest.h - the ingest pipeline: hygiene, chunking, embedding and the write transaction of
 * each batch, for every front door (rag_ingest, rag_ingest_documents, rag_ingest_paths,
 * rag_sync_*), and deleting documents.
 *
 * A run takes documents one at a time (rag_ingest_run_add): each is validated, passed
 * through the collection's hygiene policy (hygiene.h: boilerplate, quality, PII), checked
 * for duplicates against the store and the run (hygiene_dedup.h) and queued. A batch is
 * chunked and embedded before any lock is taken; then, holding the store's write lock,
 * one write transaction stores its documents, chunks, vectors, postings, embedding-cache
 * entries, duplicate-index entries and counters (replacing a document removes its old
 * chunks and index entries in the same transaction; the final duplicate decision is taken
 * there, against everything committed), and the collection's index takes the new vectors
 * (coll_index.h). Outcomes are reported (rag_ingest_options.on_event) and counted once the
 * batch is committed. */
#ifndef RAG_INGEST_H
#define RAG_INGEST_H

#include "ragcore.h"

#include <stddef.h>
#include <stdint.h>

typedef struct rag_ingest_run rag_ingest_run;

/* What the caller knows about an offered document beyond its rag_document. */
typedef struct rag_ingest_src {
    const char *path;          /* file it came from, for events ("" or NULL: none) */
    const char *group;         /* documents sharing boilerplate (a directory, a JSONL file) */
    const size_t *pages;       /* PDF page offsets in the text (also in the metadata) */
    size_t npages;
    int borrowed;              /* 1: the document outlives the run (nothing is copied) */
} rag_ingest_src;

/* What rag_ingest_run_add decided. */
typedef enum rag_run_outcome {
    RAG_RUN_QUEUED = 0,        /* queued for storage (a new id) */
    RAG_RUN_QUEUED_UPDATE,     /* queued, replacing a stored version (sync runs) */
    RAG_RUN_UNCHANGED,         /* sync: the stored version is the same */
    RAG_RUN_REJECTED,          /* the policy does not store it */
    RAG_RUN_FAILED             /* invalid (reported) */
} rag_run_outcome;

/* Starts a run (opts NULL: defaults; sum may be NULL). db may be NULL only for a dry run.
 * `sync`: documents are compared with their stored version first (unchanged ones skipped).
 * Errors: RAG_EINVAL, RAG_EREADONLY, RAG_ENOMEM, store errors. */
int rag_ingest_run_begin(rag_db *db, const rag_ingest_options *opts, int sync,
                         rag_ingest_summary *sum, rag_ingest_run **out);

/* Offers one document (`index`: its position, for error messages). Invalid documents are
 * reported and counted (RAG_RUN_FAILED, RAG_OK returned) unless the run is single-
 * transaction (the error is returned). Returns RAG_ECANCELED once a callback asked to
 * stop, or the error of a batch commit. */
int rag_ingest_run_add(rag_ingest_run *r, const rag_document *doc, size_t index,
                       const rag_ingest_src *src, rag_run_outcome *outcome);

/* Boilerplate pass 1: counts a document's lines in its group. */
int rag_ingest_run_collect(rag_ingest_run *r, const rag_document *doc, const char *group);

/* Reports and counts a file that was not ingested (rc: the extractor's status, msg: why;
 * masked when the policy masks PII). Returns RAG_ECANCELED when the callback stops. */
int rag_ingest_run_skip_file(rag_ingest_run *r, const char *path, int rc, const char *msg);

/* Status and reason (masked under a PII policy) of the last invalid document. */
const char *rag_ingest_run_last_failure(const rag_ingest_run *r, int *rc);

/* Reports one event as is (sync's deleted and kept documents). */
int rag_ingest_run_event(rag_ingest_run *r, const rag_ingest_event *ev);

/* The skip kind of an extractor's failure (status and wording). */
rag_skip_kind rag_ingest_skip_kind(int rc, const char *msg);

/* The document's metadata merged under `extra` (a JSON object; the document's own keys
 * win) into *out (compact JSON, malloc'd); *out NULL when extra is NULL or "".
 * Errors: RAG_EPARSE (the document's metadata is not an object), RAG_ENOMEM. */
int rag_ingest_merge_metadata(const char *extra, const rag_document *d, char **out);

/* Sync runs: `seen` tells whether an id was offered in this sync. A document that would be
 * skipped as the duplicate of one NOT offered (perhaps the new name of a file whose old
 * name vanishes) is deferred; rag_ingest_run_retry decides again on every deferred
 * document (after the sync deleted what vanished) and stores what is left. */
void rag_ingest_run_set_seen(rag_ingest_run *r, int (*seen)(void *user, const char *id),
                             void *user);
int rag_ingest_run_retry(rag_ingest_run *r);

/* Stores the queued batch now. */
int rag_ingest_run_flush(rag_ingest_run *r);

/* The run's summary, collection name (valid until the run ends) and whether its policy
 * masks messages; and the masking itself (see rag_hygiene_mask_message). */
rag_ingest_summary *rag_ingest_run_summary(rag_ingest_run *r);
const char *rag_ingest_run_collection(const rag_ingest_run *r);
void rag_ingest_run_mask(const rag_ingest_run *r, const char *msg, char *buf, size_t cap);

/* Input progress: bytes read so far / in all (0: unknown); reported at most every 200 ms. */
void rag_ingest_run_progress(rag_ingest_run *r, uint64_t done, uint64_t total);

/* Ends the run: when rc is RAG_OK stores what is queued (else drops it), finishes the
 * summary, reports the last progress and frees the run. Returns rc, or the flush's error. */
int rag_ingest_run_end(rag_ingest_run *r, int rc);

/* Deletes documents in one transaction; absent ids fail with RAG_ENOTFOUND unless
 * missing_ok. *deleted (may be NULL) receives the number deleted. */
int rag_db_delete_docs(rag_db *db, const char *collection, const char *const *ids, size_t n,
                       int missing_ok, uint64_t *deleted);

/* ---- replicated logs (logbatch.h) ---- */

struct rag_log_batch;
struct rag_txn;

/* Validates, chunks and embeds docs with the batch's embedder and chunk sizes, as a store
 * would (no hygiene), and appends them to the batch as upserts; nothing is added on error. */
int rag_ingest_log_add(struct rag_log_batch *b, const rag_document *docs, size_t n);
/* rag_log_batch_add_documents_policy: the stateless hygiene stage, then
 * rag_ingest_log_add per stored document, a delete per rejected one. */
int rag_ingest_log_add_policy(struct rag_log_batch *b, const rag_document *docs, size_t n,
                              const rag_collection_options *policy, const rag_toxicity *tox,
                              rag_ingest_summary *summary);

/* Applies a decoded batch at sequence seq to collection (created when absent) in one write
 * transaction that checks and records the collection's log position (RAG_ESEQUENCE). */
int rag_ingest_log_apply(rag_db *db, const char *collection, uint64_t seq,
                         const struct rag_log_batch *b);

/* The log position recorded for collection id `coll` in the transaction (0: none). */
int rag_ingest_log_position(struct rag_txn *txn, uint32_t coll, uint64_t *seq);

#endif
