/* ingest_hygiene.h - the corpus-hygiene stage of `ragcore ingest`: boilerplate stripping,
 * quality filters, PII masking and duplicate detection applied to each document before any
 * of it reaches the library. */
#ifndef RAG_INGEST_HYGIENE_H
#define RAG_INGEST_HYGIENE_H

#include "corpus.h"
#include "neardup.h"
#include "pii.h"
#include "quality.h"

#include <stddef.h>

typedef enum hygiene_dup_mode {
    HYGIENE_DUP_OFF = 0, /* no duplicate detection */
    HYGIENE_DUP_SKIP,    /* duplicates are not stored (recorded with their canonical) */
    HYGIENE_DUP_KEEP,    /* duplicates are counted and stored */
    HYGIENE_DUP_FLAG     /* duplicates are stored with metadata "duplicate_of" */
} hygiene_dup_mode;

typedef struct hygiene_config {
    rag_pii_mode pii;
    const unsigned char *pii_key;  /* HASH: per-store key (copied), >= 16 bytes */
    size_t pii_key_len;
    hygiene_dup_mode dup;
    double dup_threshold;          /* near-duplicate Jaccard threshold in (0, 1] */
    rag_quality_config quality;    /* document-level length and symbol filters; boilerplate */
    int strip_boilerplate;         /* 1: two passes, hygiene_collect then hygiene_process */
} hygiene_config;

/* Counters over a run. */
typedef struct hygiene_counts {
    size_t seen;                        /* documents given to hygiene_process */
    size_t dup_exact, dup_near;         /* duplicates found (whatever the mode did) */
    size_t pii[RAG_PII_NTYPES];         /* findings per type (text, title, metadata) */
    size_t pii_documents;               /* documents with at least one finding */
    size_t pii_dropped;                 /* documents dropped by --pii drop */
    rag_quality_stats quality;          /* verdicts per document; boilerplate lines/bytes */
} hygiene_counts;

typedef enum hygiene_verdict {
    HYGIENE_STORE = 0,     /* store it (possibly a kept or flagged duplicate) */
    HYGIENE_FILTERED,      /* rejected by a quality filter (see result.quality) */
    HYGIENE_PII_DROPPED,   /* contained PII under --pii drop */
    HYGIENE_DUPLICATE      /* a duplicate under --near-dup skip (see result.dup) */
} hygiene_verdict;

typedef struct hygiene_result {
    hygiene_verdict verdict;
    rag_quality_verdict quality;
    rag_dup_match dup;       /* canonical_id valid until hygiene_free */
    size_t pii_found;        /* findings in this document */
    /* HYGIENE_STORE only (owned; free with hygiene_result_free): the cleaned document.
     * metadata_json is NULL when the document has none. */
    char *text;
    size_t len;
    char *title;
    char *metadata_json;
} hygiene_result;

typedef struct ingest_hygiene ingest_hygiene;

/* Creates the stage. Errors: RAG_EINVAL (a setting out of range, named in the message;
 * HASH without a key), RAG_ENOMEM. Free with hygiene_free. */
int hygiene_create(const hygiene_config *cfg, ingest_hygiene **out);
void hygiene_free(ingest_hygiene *h);

/* First pass of boilerplate stripping: counts the document's lines in its group
 * (info->group). Errors: RAG_ENOMEM, RAG_EINVAL. */
int hygiene_collect(ingest_hygiene *h, const rag_document *doc, const rag_corpus_info *info);

/* Runs the stage on one document, in this order: boilerplate lines removed (per PDF page,
 * so page offsets stay right), quality filters on the whole text, PII applied to text,
 * title and every string of the metadata, duplicate check of the masked text (a stored
 * document becomes canonical; duplicates never do). PDF page offsets in the metadata
 * ("pages") are moved to match the cleaned text. *res is overwritten.
 * Errors: RAG_ENOMEM, RAG_EIO (HMAC failure), RAG_EENCODING. */
int hygiene_process(ingest_hygiene *h, const rag_document *doc, const rag_corpus_info *info,
                    hygiene_result *res);

/* Frees what res owns and zeroes it. NULL-safe. */
void hygiene_result_free(hygiene_result *res);

const hygiene_counts *hygiene_get_counts(const ingest_hygiene *h);

/* Copies msg into buf (cap bytes, truncated) with any PII masked when the stage's mode is
 * not OFF, so error messages that quote input never print raw personal data. Can't fail. */
void hygiene_mask_message(ingest_hygiene *h, const char *msg, char *buf, size_t cap);

/* "off", "skip", "keep", "flag"; RAG_EINVAL naming the bad word otherwise. */
int hygiene_parse_dup_mode(const char *s, hygiene_dup_mode *mode);
const char *hygiene_dup_mode_name(hygiene_dup_mode mode);

#endif
