/* lexical.h - BM25 lexical index stored in the LMDB store and maintained inside the same
 * write transactions as the chunks it indexes (so it is never out of step with them). */
#ifndef RAG_LEXICAL_H
#define RAG_LEXICAL_H

#include "ragcore.h"
#include "store.h"

#include <stddef.h>
#include <stdint.h>

/* Text analysis: Unicode word split (utf8proc), case folding, optional stop words,
 * Snowball stemming (libstemmer) for a language. Shareable between threads. */
typedef struct rag_analyzer rag_analyzer;

/* Longest indexed term in bytes; longer tokens (hashes, base64) are skipped. */
#define RAG_LEX_MAX_TERM 128

/* language: a Snowball algorithm name ("english", "french", ...; NULL or "": english) or
 * "none" (no stemming). stopwords: 1 to drop stop words (Lucene's 33-word English list; only
 * english and none have one: RAG_EINVAL for other languages). RAG_EINVAL for an unknown
 * language. Words are runs of letters, digits and marks (hyphens split, "3.5", "10,000",
 * "don't" and "e.g" stay whole); each Han ideograph or Hiragana character is a term of its
 * own; text is NFKC case-folded; english and none also drop accents of Latin letters and
 * a possessive "'s". The analyzer keeps a mutex-protected pool of stemmers, so any number
 * of threads may call rag_analyze on one analyzer at once. */
int rag_analyzer_create(const char *language, int stopwords, rag_analyzer **out);
void rag_analyzer_free(rag_analyzer *an);

/* Calls emit for each term of text[0, len) in order (the term is borrowed for the call).
 * Invalid UTF-8 bytes act as separators. Returns RAG_OK or RAG_ENOMEM. */
typedef void (*rag_term_fn)(void *user, const char *term, size_t len);
int rag_analyze(const rag_analyzer *an, const char *text, size_t len, rag_term_fn emit,
                void *user);

typedef struct rag_bm25_params {
    float k1;   /* term-frequency saturation; default 0.9 */
    float b;    /* length normalisation; default 0.4 */
    int unit;   /* RAG_LEXICAL_DOCUMENT (default) or RAG_LEXICAL_CHUNK: what BM25 scores */
} rag_bm25_params;

/* Fills the defaults (k1 0.9, b 0.4, by document). Can't fail. */
void rag_bm25_params_init(rag_bm25_params *p);

/* One chunk of a document to index: its id and the text it is scored on (title and
 * chunk text, rag_lexical_chunk_text), and its own part of the document, which no other
 * chunk holds (own NULL: all of text; see rag_lexical_overlap). Borrowed. */
typedef struct rag_lex_chunk {
    uint64_t id;
    const char *text;
    size_t len;
    const char *own;
    size_t own_len;
} rag_lex_chunk;

/* Adds / removes one document: its n chunks, their postings, lengths and the collection
 * statistics, writing O(distinct terms of each chunk) entries. A document's chunks are
 * added and removed together, in one call (each posting carries the document's length);
 * its key is its lowest chunk id, and the ids must lie within 2^32 of it (RAG_EINVAL).
 * Removal must be given the same texts (and analyzer) as the addition (own parts are not
 * needed): RAG_ECORRUPT when the terms do not match what was indexed, or when the chunks
 * given are not the whole document. n 0: nothing done. add: RAG_EEXIST when a chunk is
 * already indexed. remove: a chunk that was never indexed (a store written before the
 * lexical index existed) is skipped. In a collection still in the chunk-only format of
 * older stores (see lexical.c) both keep that format. */
int rag_lexical_add_doc(rag_txn *txn, const rag_analyzer *an, uint32_t coll,
                        const rag_lex_chunk *chunks, size_t n);
int rag_lexical_remove_doc(rag_txn *txn, const rag_analyzer *an, uint32_t coll,
                           const rag_lex_chunk *chunks, size_t n);
/* How many bytes at the start of a chunk's text (len bytes from offset `start` of its
 * document's text) the chunk before it (ending at prev_end) already holds: the own part
 * of every chunk but the first is its text from there on. Can't fail. */
size_t rag_lexical_overlap(uint64_t start, uint64_t len, uint64_t prev_end);
/* The one-chunk document chunk_id (rag_lexical_add_doc with n 1). */
int rag_lexical_add(rag_txn *txn, const rag_analyzer *an, uint32_t coll, uint64_t chunk_id,
                    const char *text, size_t len);
int rag_lexical_remove(rag_txn *txn, const rag_analyzer *an, uint32_t coll, uint64_t chunk_id,
                       const char *text, size_t len);
/* Removes everything of a collection (its rebuild mark included). */
int rag_lexical_purge(rag_txn *txn, uint32_t coll);

/* ---- rebuilding from the chunk texts (check --repair) ------------------------------------ */

/* The text ingest indexes (and embeds) for a chunk: the document title, a blank line, then
 * the chunk text; the chunk text alone when the title is NULL or empty or the text already
 * begins with it. *out points into `text` or into *buf, which is malloc'd (NULL when not
 * needed) and freed by the caller after use. Returns RAG_OK or RAG_ENOMEM. */
int rag_lexical_chunk_text(const char *title, const char *text, size_t len, char **buf,
                           const char **out, size_t *out_len);

/* Sets (pending 1) or clears (0) a collection's "rebuild in progress" mark. A rebuild sets
 * it in its first transaction and clears it in its last, so an interrupted rebuild stays
 * visible to the check. Clearing an absent mark is RAG_OK. */
int rag_lexical_rebuild_mark(rag_txn *txn, uint32_t coll, int pending);
/* 1 when a rebuild of the collection was started and not finished, 0 when not, or a
 * negative status. */
int rag_lexical_rebuilding(rag_txn *txn, uint32_t coll);

/* Deletes at most max_keys entries of a collection's postings, chunk entries and
 * statistics (never its rebuild mark), so that a large collection is emptied in bounded
 * transactions. *deleted receives the count; fewer than max_keys means nothing is left. */
int rag_lexical_purge_some(rag_txn *txn, uint32_t coll, size_t max_keys, size_t *deleted);

/* Hooks of a rebuild (each may be NULL): purge runs in every transaction that deletes old
 * entries (it must be harmless to repeat), chunk in the transaction that indexes a live
 * chunk (once per chunk indexed), committed after each transaction commits. A non-zero
 * status from purge or chunk aborts the rebuild with it. */
typedef struct rag_lex_rebuild_hooks {
    int (*purge)(void *user, rag_txn *txn, uint32_t coll);
    int (*chunk)(void *user, rag_txn *txn, uint32_t coll, const rag_chunk_rec *ch);
    void (*committed)(void *user);
    void *user;
} rag_lex_rebuild_hooks;

/* Rebuilds collection `coll` (named coll_name)'s postings from the texts of its live
 * chunks with the analyzer ingest uses (the collection's language, stop words on; see
 * coll_new in ragcore.c), under the store's current hash key. Runs as bounded
 * transactions: the first sets the rebuild mark, the old entries are deleted 65,536 at a
 * time, the chunks indexed about 1,024 at a time (whole documents, in the document format,
 * each chunk's own part past the chunk before, as ingest gives it), and the last clears
 * the mark, so an interrupted rebuild is reported by the next check and done again by the
 * next repair.
 * A chunk that is gone or does not decode is left out. *indexed receives the chunks
 * indexed, lang[langsz] the analyzer's language. */
int rag_lexical_rebuild(rag_store *st, const char *coll_name, uint32_t coll,
                        const rag_lex_rebuild_hooks *hooks, uint64_t *indexed, char *lang,
                        size_t langsz);

/* What rag_lexical_audit found in a collection's lexical tables, compared with each
 * other (not with the chunk texts): all counts of disagreements are 0 in a sound index. */
typedef struct rag_lexical_audit {
    uint64_t chunks;          /* chunk entries (lex_chunks) */
    uint64_t sum_len;         /* sum of their lengths in terms */
    uint64_t stat_chunks;     /* the collection statistics: chunks ... */
    uint64_t stat_len;        /* ... and total length (0, 0 when absent) */
    uint64_t postings;        /* postings read */
    uint64_t terms;           /* distinct terms with postings */
    uint64_t df_records;      /* document-frequency records */
    uint64_t bad_chunks;      /* chunk entries whose postings do not add up to their distinct
                               * terms, length and own length */
    uint64_t stray_postings;  /* postings of no chunk entry, or carrying another length */
    uint64_t docs;            /* documents the chunk entries form (document format) ... */
    uint64_t doc_len;         /* ... and the sum of their lengths (own lengths) */
    uint64_t stat_docs;       /* the collection statistics: documents ... */
    uint64_t stat_doc_len;    /* ... and their total length */
    uint64_t bad_doc_postings; /* postings whose ordinal or document length is not what the
                                * chunk entries give, or whose own tf exceeds their tf */
    int chunk_only;           /* the chunk-only format of older stores (no document fields) */
    uint64_t bad_df;          /* terms whose document frequency is not their posting count
                               * (including records of terms without postings) */
    uint64_t malformed;       /* entries that do not decode */
    uint64_t first_bad_chunk; /* the first chunk counted in bad_chunks */
    char first_bad_term[RAG_LEX_MAX_TERM + 1];  /* the first term counted in bad_df */
    int rebuilding;           /* the rebuild mark is set */
} rag_lexical_audit;

/* Reads every lexical entry of a collection in `txn` (cost linear in its postings) and
 * fills *out. Returns RAG_OK whatever it found, RAG_ENOMEM, or a store error. */
int rag_lexical_audit_coll(rag_txn *txn, uint32_t coll, rag_lexical_audit *out);

/* Number of indexed chunks and the sum of their lengths in terms (0, 0 when none). */
int rag_lexical_stats(rag_txn *txn, uint32_t coll, uint64_t *n_chunks, uint64_t *total_len);
/* Number of indexed documents into *n_docs; returns 1 when the collection is in the
 * document format (or empty), 0 when in the chunk-only format of older stores (*n_docs 0:
 * lexical search then scores chunks whatever the unit asked), or a negative status. */
int rag_lexical_docs(rag_txn *txn, uint32_t coll, uint64_t *n_docs);
/* Document frequency of an already analysed term (0 when absent). */
int rag_lexical_df(rag_txn *txn, uint32_t coll, const char *term, size_t len, uint32_t *df);
/* 1 when the chunk is in the lexical index, 0 when not, or a negative status. */
int rag_lexical_indexed(rag_txn *txn, uint32_t coll, uint64_t chunk_id);

/* Predicate deciding whether a chunk may be returned (filters, deletions). */
typedef int (*rag_chunk_pred)(void *user, uint64_t chunk_id);

/* BM25 top-k over a collection for `query`: fills up to k (scores, ids) best first (ties:
 * lower chunk id first) and returns the count (>= 0) or a negative status. `allow` may be
 * NULL; otherwise only chunks for which it returns non-zero take a slot, and it is called
 * in score order only until k are accepted. params NULL: defaults. given NULL: the
 * store's own N, average length and dfs; otherwise those, so stores holding parts of a
 * collection score as one (a given df below the store's own, or a term `given` lacks,
 * takes the store's df). k >= 1 (RAG_EINVAL). RAG_EBUSY while a hash-key rotation is
 * pending (hashrot.h): the postings may be under two keys.
 * By document (params->unit, the default): documents are scored (see lexical.c) and each
 * is returned once, as its best chunk by chunk-level BM25 that `allow` accepts, with the
 * document's score (ties: lower document key, then the better chunk); `given` with
 * document statistics (docs > 0 and doc_df) supplies N, the total length and the dfs by
 * document as its chunk fields do by chunk (a given doc_df below the store's own count, or
 * a term it lacks, takes the store's). Scoring is by chunk when params->unit asks for it,
 * when `given` has no document statistics (its chunk fields weigh), or in a collection
 * still in the chunk-only format.
 * score = sum over query terms (repeats count) of
 *         idf * tf * (k1 + 1) / (tf + k1 * (1 - b + b * dl / avgdl)),
 * idf = ln(1 + (N - df + 0.5) / (df + 0.5)), lengths in indexed terms. Term-at-a-time over
 * each term's posting range; cost O(sum of the query terms' document frequencies). Each
 * thread keeps its accumulator tables between searches (at most about 10 MiB: enough
 * for collections of 32,768 chunks; larger ones are freed after the search that needed
 * them) and frees them when it exits.
 * RAG_ECORRUPT when the terms' postings outnumber what their frequency records say (a
 * damaged index: 'ragcore check --repair' rebuilds it). */
int rag_lexical_search(rag_txn *txn, const rag_analyzer *an, uint32_t coll, const char *query,
                       size_t len, const rag_bm25_params *params, const rag_bm25_stats *given,
                       int k, rag_chunk_pred allow, void *allow_user, float *scores,
                       uint64_t *ids);

/* The statistics rag_lexical_search weighs `query` with: N, the total length and the df of
 * each distinct analysed term, by chunk and, unless the collection is in the chunk-only
 * format (docs 0, doc_df NULL), by document (each term's document count read from its
 * postings, as a search by document counts it). *out is one malloc'd block (free() or
 * rag_bm25_stats_free). */
int rag_lexical_query_stats(rag_txn *txn, const rag_analyzer *an, uint32_t coll,
                            const char *query, size_t len, rag_bm25_stats **out);

#endif
