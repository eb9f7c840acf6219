/* hygiene.h - the per-document part of a collection's hygiene policy: boilerplate lines
 * removed, quality filters, PII masked, hashed or dropped in text, title and metadata.
 * Duplicates depend on what is stored and are found by the ingest pipeline
 * (hygiene_dedup.h) on the text this stage returns. */
#ifndef RAG_HYGIENE_H
#define RAG_HYGIENE_H

#include "pii.h"
#include "quality.h"
#include "ragcore.h"

#include <stddef.h>

typedef struct rag_hygiene rag_hygiene;

/* Creates the stage for a policy (checked by rag_policy_from_user). key (klen 16..64
 * bytes, copied) is required for RAG_PII_HASH; tox (borrowed, must outlive the stage) for
 * a toxicity mode other than off. strip_boilerplate: documents are first counted with
 * rag_hygiene_collect, per group. Errors: RAG_EINVAL, RAG_ENOMEM. Free with
 * rag_hygiene_free (NULL-safe; wipes the key). */
int rag_hygiene_create(const rag_collection_options *policy, const unsigned char *key,
                       size_t klen, const rag_toxicity *tox, int strip_boilerplate,
                       rag_hygiene **out);
void rag_hygiene_free(rag_hygiene *h);

/* 1 when the stage can change or reject a document (some filter is on). */
int rag_hygiene_active(const rag_hygiene *h);

/* First pass of boilerplate stripping: counts the text's lines in `group` (documents that
 * share boilerplate: a directory, a JSONL file). Errors: RAG_ENOMEM. */
int rag_hygiene_collect(rag_hygiene *h, const char *group, const char *text, size_t len);

typedef enum rag_hygiene_verdict {
    RAG_HYGIENE_STORE = 0,     /* store it (text, title, metadata below) */
    RAG_HYGIENE_FILTERED,      /* a quality filter (result.quality says which) */
    RAG_HYGIENE_PII_DROPPED,   /* PII found under RAG_PII_DROP */
    RAG_HYGIENE_TOXIC          /* toxic under RAG_TOXICITY_DROP (result.toxic_by says why) */
} rag_hygiene_verdict;

typedef struct rag_hygiene_result {
    rag_hygiene_verdict verdict;
    rag_quality_verdict quality;
    size_t pii[RAG_PII_NTYPES];   /* findings per type in text, title and metadata */
    size_t pii_found;             /* their sum */
    double toxicity;              /* the toxicity score of text and title; -1: not checked */
    unsigned toxic_by;            /* the detectors that reached the threshold (bits) */
    /* RAG_HYGIENE_STORE: the cleaned fields (owned), or NULL where the document's own are
     * unchanged. */
    char *text;
    size_t len;
    char *title;
    char *metadata_json;
} rag_hygiene_result;

/* Runs the stage on one document (validated UTF-8), in this order: boilerplate lines of its
 * group removed (per PDF page, so page offsets stay right), quality filters on the whole
 * text, toxicity of title and text read as one (under RAG_TOXICITY_FLAG the
 * metadata gets "toxicity" and, when a detector fired, "toxicity_detector"), PII handling
 * of text, title and every string of the metadata. PDF page offsets
 * (pages, npages; may be NULL) are moved to match the cleaned text and written into the
 * metadata as "pages". *res is overwritten; free it with rag_hygiene_result_free.
 * Errors: RAG_ENOMEM, RAG_EIO (HMAC failure), RAG_EPARSE (metadata not an object). */
int rag_hygiene_apply(rag_hygiene *h, const rag_document *doc, const char *group,
                      const size_t *pages, size_t npages, rag_hygiene_result *res);

/* Frees what res owns (wiping a rejected document's text) and zeroes it. NULL-safe. */
void rag_hygiene_result_free(rag_hygiene_result *res);

/* Quality verdicts and boilerplate lines/bytes removed so far. */
const rag_quality_stats *rag_hygiene_stats(const rag_hygiene *h);

/* Copies msg into buf (cap bytes, truncated) with any PII masked when the policy's PII mode
 * is not off, so messages that quote input never carry raw personal data. h may be NULL
 * (copied as is). Can't fail. */
void rag_hygiene_mask_message(const rag_hygiene *h, const char *msg, char *buf, size_t cap);

#endif
