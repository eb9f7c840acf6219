/* quality.h - chunk quality filters (length, symbol ratio) and cross-document boilerplate lines. */
#ifndef RAG_QUALITY_H
#define RAG_QUALITY_H

#include <stddef.h>

typedef struct rag_quality_config {
    int min_chars;              /* chunks with fewer characters (code points, surrounding
                                   whitespace excluded) are rejected; 0: no minimum; default 20 */
    int max_chars;              /* chunks with more are rejected; 0: no maximum (default) */
    double max_symbol_ratio;    /* reject when the share of non-space characters that are
                                   not letters or digits (any script) exceeds it; 1: off;
                                   default 0.5 */
    double boilerplate_doc_frac; /* a line is boilerplate when it occurs in at least this
                                   share of a source's documents ... default 0.5 */
    int boilerplate_min_docs;   /* ... and in at least this many of them; default 3 */
} rag_quality_config;

typedef enum rag_quality_verdict {
    RAG_QUALITY_OK = 0,
    RAG_QUALITY_TOO_SHORT,
    RAG_QUALITY_TOO_LONG,
    RAG_QUALITY_SYMBOLS,        /* too many non-alphanumeric characters */
    RAG_QUALITY_NVERDICTS
} rag_quality_verdict;

/* Counters a caller accumulates over a run (zero it once; the functions only add). */
typedef struct rag_quality_stats {
    size_t checked;                          /* chunks passed to rag_quality_check */
    size_t verdicts[RAG_QUALITY_NVERDICTS];  /* per verdict, [RAG_QUALITY_OK] = kept */
    size_t boilerplate_lines;                /* lines removed by rag_boilerplate_strip */
    size_t boilerplate_bytes;
} rag_quality_stats;

/* Defaults as documented on the fields. Can't fail. */
void rag_quality_config_init(rag_quality_config *cfg);

/* RAG_OK, or RAG_EINVAL naming the first field out of range. */
int rag_quality_config_check(const rag_quality_config *cfg);

/* "ok", "too_short", "too_long", "symbols" ("unknown" otherwise). Can't fail. */
const char *rag_quality_verdict_name(rag_quality_verdict v);

/* Judges one chunk text[0, len) (UTF-8; invalid bytes count as symbols) under cfg (NULL:
 * defaults; assumed valid) and adds to *stats when not NULL. Checks run in the order
 * too_short, too_long, symbols; the first failing one is returned. Can't fail. */
rag_quality_verdict rag_quality_check(const rag_quality_config *cfg, const char *text,
                                      size_t len, rag_quality_stats *stats);

/* Line frequencies over the documents of one source. Use: add every document, then strip
 * each. Lines are compared after trimming, collapsing whitespace and ASCII case folding;
 * lines without any letter or digit are never counted or removed. */
typedef struct rag_boilerplate rag_boilerplate;

int rag_boilerplate_create(rag_boilerplate **out);
void rag_boilerplate_free(rag_boilerplate *b);

/* Counts each distinct line of one document once. Errors: RAG_EINVAL, RAG_ENOMEM. */
int rag_boilerplate_add(rag_boilerplate *b, const char *text, size_t len);

/* Documents added so far. */
size_t rag_boilerplate_docs(const rag_boilerplate *b);

/* Copies text[0, len) without its boilerplate lines (see rag_quality_config) into *out
 * (NUL-terminated, free with rag_free) of *out_len bytes; other lines are kept byte for
 * byte. stats (may be NULL) gets the removed lines and bytes added.
 * Errors: RAG_EINVAL, RAG_ENOMEM. */
int rag_boilerplate_strip(const rag_boilerplate *b, const rag_quality_config *cfg,
                          const char *text, size_t len, char **out, size_t *out_len,
                          rag_quality_stats *stats);

#endif
