/* store.h - the LMDB store: source of truth for collections, documents, chunks and vectors.
 *
 * Only store.c includes <lmdb.h>. Keys are big-endian so that every collection's
 * documents, chunks and vectors are contiguous and in id order. Chunk ids are allocated
 * from one store-wide counter that only grows, so "vectors newer than a checkpoint" is a
 * key range. Records returned by *_get functions are copies owned by the caller unless a
 * comment says "borrowed" (then valid until the transaction ends). */
#ifndef RAG_STORE_H
#define RAG_STORE_H

#include <stddef.h>
#include <stdint.h>

#define RAG_SCHEMA_VERSION 1

typedef struct rag_store rag_store;
typedef struct rag_txn rag_txn;

typedef struct rag_coll_rec {
    uint32_t id;
    int64_t created_at;
    uint64_t documents, chunks, duplicate_chunks, tombstones, bytes_text;
    int64_t newest_ingest;
    int64_t last_sync;           /* unix seconds of the last completed sync, 0: never */
    int64_t ttl_seconds;         /* default time to live of documents, 0: none */
    char language[24];           /* lexical analyzer language ("" means english) */
    uint64_t expiring_docs;      /* documents with a valid_until (expiry checks needed) */
} rag_coll_rec;

typedef struct rag_doc_rec {
    char *id;                    /* NUL-terminated copies */
    char *source, *title, *metadata;
    int64_t source_mtime, ingested_at, updated_at, valid_until;
    uint64_t content_hash, text_len;
    uint32_t nchunks;
    uint64_t *chunk_ids;
} rag_doc_rec;

typedef struct rag_chunk_rec {
    uint64_t id;
    uint64_t start, end;
    uint32_t tokens;
    uint32_t flags;              /* RAG_CHUNK_DUPLICATE ... */
    uint64_t text_hash;          /* XXH3 of the normalised text */
    char *doc_id;
    char *heading;
    char *text;
    size_t text_len;
    /* The fields of its document a search hit shows (source, title, metadata, times; no id
     * or chunk ids). rag_store_chunk_put reads it (may be NULL) and writes it into the
     * record on an encrypted store only, so that a hit there opens one sealed record, not
     * two; rag_store_chunk_decode sets it (owned, freed by rag_chunk_rec_free) when the
     * record carries it (flag RAG_CHUNK_DOC_FIELDS), else leaves it NULL. */
    rag_doc_rec *doc;
} rag_chunk_rec;

#define RAG_CHUNK_DUPLICATE 1u
#define RAG_CHUNK_DOC_FIELDS 2u      /* the record ends with its document's hit fields */

/* Opens or creates the LMDB environment in `dir` (created when absent unless
 * read_only). The map grows automatically; see rag_store_write. */
int rag_store_open(const char *dir, int read_only, rag_store **out);
void rag_store_close(rag_store *st);

/* Starts a read-only transaction (a consistent snapshot). End with rag_txn_end. */
int rag_store_read(rag_store *st, rag_txn **out);
void rag_txn_end(rag_txn *txn);
/* The transaction's id: a read snapshot has the id of the last commit it sees, a write
 * transaction that id + 1, so a write whose id is a snapshot's + 1 follows it with no
 * commit in between. */
uint64_t rag_txn_id(rag_txn *txn);

/* Runs fn inside one write transaction and commits. When LMDB reports that the map is
 * full, the transaction is aborted, the map doubled and fn run again from scratch, so fn
 * must only write to the transaction (no outside side effects). Returns fn's status or
 * the commit's; RAG_EFULL when the disk itself is full. */
typedef int (*rag_write_fn)(rag_txn *txn, void *user);
int rag_store_write(rag_store *st, rag_write_fn fn, void *user);

/* Bytes currently mapped (grows on demand). */
size_t rag_store_map_size(rag_store *st);

/* Id of the last transaction committed to the store by any process, read from LMDB's meta
 * page without a transaction: it changes whenever anything is committed. Can't fail. */
uint64_t rag_store_last_txn(rag_store *st);

/* Meta values: small strings under fixed keys. */
int rag_store_meta_get(rag_txn *txn, const char *key, char **val); /* RAG_ENOTFOUND */
int rag_store_meta_put(rag_txn *txn, const char *key, const char *val);

/* Allocates n consecutive chunk ids; *first receives the first. */
int rag_store_alloc_ids(rag_txn *txn, uint64_t n, uint64_t *first);
/* The next id that would be allocated (all existing ids are below it). */
int rag_store_next_id(rag_txn *txn, uint64_t *next);

/* Collections. */
int rag_store_coll_get(rag_txn *txn, const char *name, rag_coll_rec *rec); /* RAG_ENOTFOUND */
int rag_store_coll_put(rag_txn *txn, const char *name, const rag_coll_rec *rec);
int rag_store_coll_del(rag_txn *txn, const char *name);
/* Lists names in byte order into a malloc'd array of malloc'd strings. */
int rag_store_coll_list(rag_txn *txn, char ***names, size_t *count);
/* Allocates a fresh collection id. */
int rag_store_coll_new_id(rag_txn *txn, uint32_t *id);

/* Documents. */
int rag_store_doc_get(rag_txn *txn, uint32_t coll, const char *id, rag_doc_rec **out);
int rag_store_doc_put(rag_txn *txn, uint32_t coll, const rag_doc_rec *rec);
int rag_store_doc_del(rag_txn *txn, uint32_t coll, const char *id);
/* Visits every document of a collection in id order; visit returns non-zero to stop
 * (that value is returned). The record is borrowed for the callback. */
typedef int (*rag_doc_visit_fn)(void *user, const rag_doc_rec *rec);
int rag_store_doc_scan(rag_txn *txn, uint32_t coll, rag_doc_visit_fn visit, void *user);
/* Same, from the first document whose id is bytewise greater than `after` (NULL or "":
 * from the start), so a caller can page through a collection. */
int rag_store_doc_scan_after(rag_txn *txn, uint32_t coll, const char *after,
                             rag_doc_visit_fn visit, void *user);
void rag_doc_rec_free(rag_doc_rec *rec);

/* Chunks. */
int rag_store_chunk_get(rag_txn *txn, uint32_t coll, uint64_t id, rag_chunk_rec **out);
int rag_store_chunk_put(rag_txn *txn, uint32_t coll, const rag_chunk_rec *rec);
int rag_store_chunk_del(rag_txn *txn, uint32_t coll, uint64_t id);
void rag_chunk_rec_free(rag_chunk_rec *rec);
/* 1 when chunk `id` exists, 0 when not, a negative status on failure; reads no record
 * (an encrypted store opens nothing). */
int rag_store_chunk_live(rag_txn *txn, uint32_t coll, uint64_t id);
/* Reads only a chunk's identity without copying its text: the owning document id
 * (borrowed, NOT NUL-terminated: *doc_len bytes, valid until the transaction ends), its
 * normalised-text hash and flags. RAG_ENOTFOUND for a deleted chunk. */
int rag_store_chunk_head(rag_txn *txn, uint32_t coll, uint64_t id, const char **doc_id,
                         size_t *doc_len, uint64_t *text_hash, uint32_t *flags);

/* Vectors (dim floats each). vec_get copies into out[dim]; RAG_ECORRUPT when the stored
 * vector has another dimension. */
int rag_store_vec_get(rag_txn *txn, uint32_t coll, uint64_t id, float *out, int dim);
int rag_store_vec_put(rag_txn *txn, uint32_t coll, uint64_t id, const float *vec, int dim);
int rag_store_vec_del(rag_txn *txn, uint32_t coll, uint64_t id);
/* Visits vectors of a collection with id >= from in id order; the vector is an aligned
 * copy valid during the callback. */
typedef int (*rag_vec_visit_fn)(void *user, uint64_t id, const float *vec, int dim);
int rag_store_vec_scan(rag_txn *txn, uint32_t coll, uint64_t from, rag_vec_visit_fn visit,
                       void *user);

/* Tombstones: ids deleted from the store but possibly still present in an index. */
int rag_store_tomb_put(rag_txn *txn, uint32_t coll, uint64_t id);
/* Counts tombstones with id < below (UINT64_MAX: all). */
int rag_store_tomb_count(rag_txn *txn, uint32_t coll, uint64_t below, uint64_t *count);
int rag_store_tomb_clear(rag_txn *txn, uint32_t coll, uint64_t below);

/* The form a content hash takes where it is a visible lookup key (the chunk-hash counts,
 * the duplicate index's keys): `hash` itself on a plain store, its keyed 64-bit hash
 * (rag_crypt_hash64) on an unlocked encrypted one, so that a guessed text's plain hash
 * cannot be confirmed against the file. Can't fail. */
uint64_t rag_store_key_hash(const rag_txn *txn, uint64_t hash);

/* Reference counts of normalised chunk-text hashes (exact-duplicate detection), keyed by
 * rag_store_key_hash of the text hash. incr returns the count before the increment in
 * *before. */
int rag_store_hash_incr(rag_txn *txn, uint32_t coll, uint64_t hash, uint32_t *before);
int rag_store_hash_decr(rag_txn *txn, uint32_t coll, uint64_t hash);

/* Removes every document, chunk, vector, tombstone and hash of a collection. */
int rag_store_coll_purge(rag_txn *txn, uint32_t coll);

/* Auxiliary key-value tables ("kv:<table>"): the fixed ones, opened with the store, and
 * application tables, opened on first use by rag_store_kv_open. Using a table that is not
 * open (or absent from a read-only store) is RAG_ENOTFOUND: gets and deletes find
 * nothing, scans, sizes and trims see an empty table. */
/* Opens table `table` (creating it when absent and `create`; `create` needs a writable
 * store). Call it outside any transaction of this store. RAG_ENOTFOUND when it does not
 * exist and !create; RAG_EFULL when the store already has its maximum of application
 * tables. Can be called any number of times. */
int rag_store_kv_open(rag_store *st, const char *table, int create);
/* 1 when `table` is (or may become) one of the library's own tables, never an
 * application's. Can't fail. */
int rag_store_kv_is_library(const char *table);
int rag_store_kv_put(rag_txn *txn, const char *table, const void *key, size_t klen,
                     const void *val, size_t vlen);
int rag_store_kv_get(rag_txn *txn, const char *table, const void *key, size_t klen,
                     const void **val, size_t *vlen); /* borrowed */
int rag_store_kv_del(rag_txn *txn, const char *table, const void *key, size_t klen);
typedef int (*rag_store_kv_visit_fn)(void *user, const void *key, size_t klen,
                                     const void *val, size_t vlen);
int rag_store_kv_scan(rag_txn *txn, const char *table, const void *start, size_t slen,
                      rag_store_kv_visit_fn visit, void *user);
/* One entry of a prefix scan: key and value borrowed for the visit (see below). */
typedef struct rag_store_kv_ent {
    const void *key, *val;
    size_t klen, vlen;
} rag_store_kv_ent;
/* Longest run of entries rag_store_kv_prefix_scan hands to one visit. */
#define RAG_STORE_KV_RUN 64
typedef int (*rag_store_kv_run_fn)(void *user, const rag_store_kv_ent *ents, size_t n);
/* Visits the entries of `table` whose keys begin with prefix[0, plen), in key order, in
 * runs of 1..RAG_STORE_KV_RUN entries: each run is read under one crash-safety guard (a
 * damaged page fails the scan with RAG_ECORRUPT before its run is visited) and visited by
 * one call. The keys and values of a run are borrowed until visit returns (a sealed
 * table's values are opened into the transaction's cursor buffer). A non-zero return from
 * visit stops the scan and is returned as is. RAG_OK when the range ends (or the table is
 * not open); RAG_EINVAL for plen outside 1..511; RAG_EKEY, RAG_ENOMEM or a store error. */
int rag_store_kv_prefix_scan(rag_txn *txn, const char *table, const void *prefix, size_t plen,
                             rag_store_kv_run_fn visit, void *user);
/* Bytes of store pages (branch, leaf and overflow) that aux table `table` occupies. */
int rag_store_kv_bytes(rag_txn *txn, const char *table, uint64_t *bytes);
/* Deletes entries in key order, oldest first for time-keyed tables, while the table
 * occupies more than `target` bytes of pages, at most max_delete of them; *deleted
 * receives the number deleted. */
int rag_store_kv_shrink(rag_txn *txn, const char *table, uint64_t target, long max_delete,
                        long *deleted);
/* Deletes entries with key < end; *deleted receives the count. */
int rag_store_kv_trim(rag_txn *txn, const char *table, const void *end, size_t elen,
                      long *deleted);


/* ---- file permissions and erasure ----------------------------------------------------- */

/* Permissions of the files a store creates (data.mdb, lock.mdb, the lock file, index
 * files) unless configured otherwise; the directories get the same with execute bits
 * where there are read bits (rag_store_dir_mode: 0600 -> 0700, 0640 -> 0750). */
#define RAG_STORE_FILE_MODE 0600u
unsigned rag_store_dir_mode(unsigned file_mode);

/* rag_store_open creating the directory and the environment's files with permissions
 * `mode` (existing ones keep theirs). */
int rag_store_open_mode(const char *dir, int read_only, unsigned mode, rag_store **out);

typedef struct rag_scrub_stats {
    uint64_t file_bytes;        /* bytes of data.mdb up to its last page */
    uint64_t page_size;
    uint64_t pages;             /* pages read */
    uint64_t free_pages;        /* pages on LMDB's free list */
    uint64_t pages_zeroed;      /* free pages that held bytes and were zeroed */
    uint64_t gap_bytes_zeroed;  /* bytes zeroed in the unused middle of live pages */
    uint64_t tail_bytes_zeroed; /* bytes zeroed past the last page */
} rag_scrub_stats;

/* Overwrites with zeros every byte of data.mdb that no committed record uses: the pages
 * on LMDB's free list, the unused middle of every branch and leaf page and anything past
 * the last page, then fdatasyncs, so that no deleted record stays readable in the file.
 * Reopens the environment first (LMDB recycles page buffers within a process) and
 * commits two small transactions (meta key "scrub"). Readers keep running; freed pages
 * that a reader's snapshot still holds are waited for up to wait_seconds, then
 * RAG_EBUSY naming the reader's pid. No transaction of this process may be open in the
 * calling thread; other writers of this process wait. stats (may be NULL) is filled. */
int rag_store_scrub(rag_store *st, double wait_seconds, rag_scrub_stats *stats);

#endif

/* ---- integrity checks and backups (appended for check.c / backup.c) ------------------ */

/* Visits the ids of a collection's chunks (keys only) in id order; visit returns non-zero
 * to stop (that value is returned). RAG_ECORRUPT when a key is malformed. */
typedef int (*rag_id_visit_fn)(void *user, uint64_t id);
int rag_store_chunk_id_scan(rag_txn *txn, uint32_t coll, rag_id_visit_fn visit, void *user);
/* Visits a collection's tombstone ids in id order. */
int rag_store_tomb_scan(rag_txn *txn, uint32_t coll, rag_id_visit_fn visit, void *user);

/* Visits a collection's chunk-text hashes with their reference counts in hash order; the
 * hashes are in their stored form (rag_store_key_hash). */
typedef int (*rag_hash_visit_fn)(void *user, uint64_t hash, uint32_t count);
int rag_store_hash_scan(rag_txn *txn, uint32_t coll, rag_hash_visit_fn visit, void *user);
/* Sets a hash's reference count (0 deletes it); `hash` in its stored form. */
int rag_store_hash_set(rag_txn *txn, uint32_t coll, uint64_t hash, uint32_t count);

/* Visits, for each per-collection table ("docs", "chunks", "vectors", "tombstones",
 * "hashes") and each collection id that has keys in it, the number of keys. Finds records
 * of collections that no longer exist. */
typedef int (*rag_keycount_fn)(void *user, const char *table, uint32_t coll, uint64_t count);
int rag_store_coll_key_counts(rag_txn *txn, rag_keycount_fn visit, void *user);

/* Writes a compacting copy of the environment (one consistent read snapshot; writers of
 * this and other processes keep running) as `outdir`/data.mdb, creating outdir when
 * absent. Errors: RAG_EFULL (no space), RAG_EIO, RAG_ESTORE. */
int rag_store_backup(rag_store *st, const char *outdir);

/* LMDB reports a short write on a full disk as EIO: returns RAG_EFULL (naming the free
 * space) when rc is RAG_EIO and the store's file system has less than 1 MiB available,
 * otherwise rc unchanged. */
int rag_store_io_status(rag_store *st, int rc);

/* ---- salvage (salvage.c) ---------------------------------------------------------------- */

/* Decode a document record (key: collection id and document id; *out freed with
 * rag_doc_rec_free) and a chunk record (freed with rag_chunk_rec_free), as the scans and
 * gets do. RAG_ECORRUPT when the bytes do not decode, RAG_ENOMEM. */
int rag_store_doc_decode(const void *key, size_t klen, const void *val, size_t vlen,
                         rag_doc_rec **out);
int rag_store_chunk_decode(uint64_t id, const void *val, size_t vlen, rag_chunk_rec **out);

/* Writes one record as raw bytes into table `table`, named as in the file ("meta",
 * "collections", "docs", "chunks", "vectors", "tombstones", "hashes", or "kv:<name>" of a
 * table opened with rag_store_kv_open). RAG_EINVAL for another name. */
int rag_store_raw_put(rag_txn *t, const char *table, const void *key, size_t klen,
                      const void *val, size_t vlen);

/* ---- encryption at rest (crypt.c seals; the store decides what) ------------------------- */
/*
 * An encrypted store has a key header (meta "crypt") and seals the values of the tables
 * that carry content: collections, documents, chunks, vectors and every aux table except
 * the BM25 statistics ("lex_*": numbers under keyed term hashes) and "embcache_fifo".
 * Keys stay plaintext (ordered listing needs them). Gets open a sealed value into memory
 * the transaction owns (valid until it ends, like LMDB's); scans into a buffer valid for
 * the callback. Reading or writing a sealed table of a store opened without its key is
 * RAG_EKEY.
 */
typedef struct rag_crypt rag_crypt;

/* Applies the user's key `secret` (NULL: none) to an open store: opens the header of an
 * encrypted store, creates one for a new store (no schema yet) when a key is given.
 * RAG_EKEY: an encrypted store without a key or with the wrong one, a plain existing
 * store with a key. Call it once, right after rag_store_open*. */
int rag_store_unlock(rag_store *st, const char *secret);
/* The store's keys (NULL: plain or not unlocked), borrowed for the store's life. */
const rag_crypt *rag_store_crypt(const rag_store *st);
const rag_crypt *rag_txn_crypt(const rag_txn *txn);
/* 1 when the store has a key header. Can't fail. */
int rag_store_encrypted(const rag_store *st);

/* Key rotation, in three steps so that a kill between any two leaves a store that opens
 * with the new key: begin writes a header holding the old and a new data key, both
 * wrapped under `new_secret` (from then on the old key is refused); records re-seals every
 * record of an older generation in transactions of at most `batch` records (0: 1,000),
 * *resealed counting them; finish drops the old generation (call it after the index files
 * are rewritten). RAG_EBUSY from begin while a rotation is pending (finish that first:
 * records, then finish). RAGCORE_TEST_REKEY_KILL=N kills the process after N batches. */
int rag_store_rekey_begin(rag_store *st, const char *new_secret);
int rag_store_rekey_records(rag_store *st, long batch, long *resealed);
int rag_store_rekey_finish(rag_store *st);
/* 1 while a rotation is unfinished (the header holds two generations). Can't fail. */
int rag_store_rekey_pending(const rag_store *st);

/* Hash-key rotation, state in meta "hash_rotation". begin replaces the hash key by a
 * fresh one and marks the rotation pending in one transaction (the old key is gone from
 * the header from then on: everything hashed under it is stale until rewritten); done
 * clears the mark once every hashed key is rewritten (hashrot.c). pending: 1 while
 * marked, 0 when not, or a negative status. begin on a plain store is RAG_EINVAL; begin
 * while one is pending does not draw another key (RAG_OK: resume it). */
int rag_store_hashkey_begin(rag_store *st);
int rag_store_hashkey_pending(rag_store *st);
int rag_store_hashkey_done(rag_store *st);
/* rag_store_hashkey_pending in an open transaction. */
int rag_store_hashkey_pending_txn(rag_txn *txn);
/* Deletes every chunk-hash count of a collection (to be counted again under a new hash
 * key). */
int rag_store_hash_clear(rag_txn *txn, uint32_t coll);
