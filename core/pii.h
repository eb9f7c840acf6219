/* pii.h - detection, masking and keyed hashing of personal data and secrets in text. */
#ifndef RAG_PII_H
#define RAG_PII_H

#include "ragcore.h"

#include <stddef.h>

/* The types (rag_pii_type: RAG_PII_EMAIL ... RAG_PII_SECRET, RAG_PII_NTYPES) and modes
 * (rag_pii_mode) are public (ragcore.h), as they are part of a collection's policy. For
 * RAG_PII_HASH the caller passes the key; RAG_PII_DROP: a text with any finding must be
 * dropped as a whole. */
#define RAG_PII_ALL ((1u << RAG_PII_NTYPES) - 1u)

typedef struct rag_pii_match {
    size_t start, end;  /* byte span [start, end) in the scanned text */
    rag_pii_type type;
} rag_pii_match;

typedef struct rag_pii_config {
    rag_pii_mode mode;
    unsigned types;             /* bit mask of (1u << rag_pii_type); 0: all types */
    const unsigned char *key;   /* RAG_PII_HASH only: the per-store key, >= 16 bytes */
    size_t key_len;
} rag_pii_config;

typedef struct rag_pii_result {
    char *text;         /* NUL-terminated output (owned; free with rag_pii_result_free).
                           NULL when `drop` is set, so dropped raw text is never handed on */
    size_t len;         /* bytes of text */
    int drop;           /* RAG_PII_DROP: 1 when the text contained anything detected */
    size_t counts[RAG_PII_NTYPES]; /* findings per type */
    size_t total;       /* sum of counts */
} rag_pii_result;

/* Parses "off", "mask", "hash" or "drop". RAG_EINVAL (with the bad word in the message)
 * for anything else. */
int rag_pii_parse_mode(const char *s, rag_pii_mode *mode);

/* Finds the PII in text[0, len) (bytes; any encoding that is ASCII-compatible, normally
 * UTF-8) for the types in mask `types` (0: all). Findings never overlap and come in text
 * order; *matches (free with rag_free, NULL when *n is 0) receives *n of them.
 * Errors: RAG_EINVAL (NULL arguments), RAG_ENOMEM. */
int rag_pii_scan(const char *text, size_t len, unsigned types, rag_pii_match **matches,
                 size_t *n);

/* Applies cfg->mode to text[0, len) and fills *out (overwritten; free it with
 * rag_pii_result_free). OFF and texts without findings give an unchanged copy.
 * Errors: RAG_EINVAL (NULL arguments, unknown mode, HASH without a key of >= 16 bytes),
 * RAG_ENOMEM, RAG_EIO (the HMAC failed); *out is then empty. */
int rag_pii_apply(const rag_pii_config *cfg, const char *text, size_t len,
                  rag_pii_result *out);

/* Frees the output text and zeroes *r. NULL-safe. */
void rag_pii_result_free(rag_pii_result *r);

#endif
