/* neardup.h - exact and near-duplicate detection of texts (normalised hash, MinHash + LSH). */
#ifndef RAG_NEARDUP_H
#define RAG_NEARDUP_H

#include <stddef.h>
#include <stdint.h>

/* An in-memory index of "canonical" texts. Each added text is compared with the canonical
 * texts added before it:
 *   exact: same XXH3-64 of the normalised text (NFKC, case folded, default-ignorable code
 *          points removed, every whitespace run collapsed to one space, ends trimmed);
 *   near:  estimated Jaccard similarity of the sets of word shingles (`shingle_words`
 *          consecutive words; words are runs of letters, digits and marks of the normalised
 *          text, punctuation ignored) >= `threshold`. The estimate comes from a MinHash
 *          signature of `num_perm` 32-bit minima; candidates are found by LSH banding
 *          (bands of r rows chosen so a pair exactly at the threshold becomes a candidate
 *          with probability >= 0.99), then verified on the full signatures.
 * A text that duplicates a canonical one is reported and NOT added (the first one seen
 * stays canonical, so chains of small edits do not drift). One handle is not thread-safe. */
typedef struct rag_dedup rag_dedup;

typedef struct rag_dedup_config {
    int num_perm;        /* MinHash signature length, 16..1024; default 128 */
    int shingle_words;   /* words per shingle, 1..16; default 3 */
    double threshold;    /* near-duplicate Jaccard threshold in (0, 1]; default 0.5.
                            With 3-word shingles: ~1% word edits -> J~0.94, 5% -> ~0.75,
                            10% -> ~0.57, 30% -> ~0.2 */
    int near;            /* 0: exact duplicates only; default 1 */
} rag_dedup_config;

typedef enum rag_dup_kind {
    RAG_DUP_NONE = 0,    /* new canonical text (added to the index) */
    RAG_DUP_EXACT,       /* same normalised text as canonical_id */
    RAG_DUP_NEAR         /* estimated Jaccard >= threshold with canonical_id */
} rag_dup_kind;

typedef struct rag_dup_match {
    rag_dup_kind kind;
    const char *canonical_id; /* owned by the index, valid until rag_dedup_free; NULL for NONE */
    double similarity;        /* estimated Jaccard (1.0 for exact); 0 for NONE */
} rag_dup_match;

/* Defaults as documented on the fields. Can't fail. */
void rag_dedup_config_init(rag_dedup_config *cfg);

/* Creates an empty index (cfg NULL: defaults). Errors: RAG_EINVAL (a field out of range,
 * named in the message), RAG_ENOMEM. Free with rag_dedup_free. */
int rag_dedup_create(const rag_dedup_config *cfg, rag_dedup **out);

/* NULL-safe. */
void rag_dedup_free(rag_dedup *d);

/* Checks text[0, len) (UTF-8) against the index and fills *match; when it is not a
 * duplicate, records it as canonical under `id` (copied; ids need not be unique).
 * Errors: RAG_EINVAL (NULL arguments), RAG_EENCODING (invalid UTF-8, with the byte
 * offset), RAG_ENOMEM; the index is then unchanged. */
int rag_dedup_add(rag_dedup *d, const char *id, const char *text, size_t len,
                  rag_dup_match *match);

/* Same check without recording anything (for dry runs). */
int rag_dedup_check(rag_dedup *d, const char *text, size_t len, rag_dup_match *match);

/* Canonical texts recorded so far. */
size_t rag_dedup_count(const rag_dedup *d);

/* The exact-duplicate key used above: XXH3-64 of the normalised text.
 * Errors: RAG_EINVAL, RAG_EENCODING, RAG_ENOMEM. */
int rag_dedup_text_hash(const char *text, size_t len, uint64_t *hash);

/* Estimated Jaccard similarity of two texts' shingle sets under cfg (NULL: defaults);
 * *sim receives it. For tests and tuning. Errors as rag_dedup_add. */
int rag_dedup_similarity(const rag_dedup_config *cfg, const char *a, size_t alen,
                         const char *b, size_t blen, double *sim);

/* ---- signatures for an index kept elsewhere (the store's persistent duplicate index) --- */

#define RAG_DEDUP_PERM 128          /* signature length (the default num_perm) */
#define RAG_DEDUP_SHINGLE_WORDS 3   /* words per shingle (the default) */

/* A text's exact key and MinHash signature under the default configuration. */
typedef struct rag_dedup_sig {
    uint64_t hash;                  /* XXH3-64 of the normalised text (rag_dedup_text_hash) */
    uint32_t shingles;              /* shingles seen; 0: no words (sig meaningless) */
    uint32_t sig[RAG_DEDUP_PERM];
} rag_dedup_sig;

/* Computes *out for text[0, len). Errors as rag_dedup_text_hash. */
int rag_dedup_signature(const char *text, size_t len, rag_dedup_sig *out);

/* LSH rows per band for a near-duplicate threshold (bands: RAG_DEDUP_PERM / rows), as
 * rag_dedup_create chooses them: a pair at the threshold is a candidate with p >= 0.99. */
int rag_dedup_rows(double threshold);

/* The key of band `band` of a signature cut in bands of `rows` rows. */
uint64_t rag_dedup_band(const uint32_t *sig, int rows, int band);

/* Estimated Jaccard similarity of two signatures (1 when neither has shingles). */
double rag_dedup_sig_similarity(const rag_dedup_sig *a, const rag_dedup_sig *b);

/* rag_dedup_add (id NULL: rag_dedup_check) with a precomputed signature. The index must use
 * the default num_perm and shingle_words (RAG_EINVAL otherwise). */
int rag_dedup_add_sig(rag_dedup *d, const char *id, const rag_dedup_sig *s, rag_dup_match *match);

#endif
