/* beir.h - BEIR-format evaluation data: queries (JSONL) and relevance judgements (qrels TSV). */
#ifndef RAG_BEIR_H
#define RAG_BEIR_H

#include <stddef.h>

typedef struct rag_beir_judgment {
    char *doc_id;
    double gain;                /* the qrels score; > 0 means relevant */
} rag_beir_judgment;

typedef struct rag_beir_query {
    char *id;
    char *text;
    rag_beir_judgment *judged;  /* every judgement of the query, file order */
    size_t n_judged;
    size_t n_relevant;          /* judgements with gain > 0 */
} rag_beir_query;

typedef struct rag_beir_set {
    rag_beir_query *queries;    /* queries with at least one relevant document, id order */
    size_t n;
    size_t unjudged;            /* queries skipped: no relevant judgement */
    size_t orphan_qrels;        /* qrels lines naming a query absent from the queries file */
} rag_beir_set;

/* Loads queries (JSONL, optionally gzip-compressed: {"_id": ..., "text": ...} per line;
 * `_id` may be a string or an integer) and qrels (TSV "query-id corpus-id score" with an
 * optional header line; blank lines ignored). Only queries with a relevant judgement are
 * kept, as BEIR evaluates them. Errors name the file and line: RAG_EIO (unreadable),
 * RAG_EPARSE (malformed line, duplicate query id), RAG_EINVAL (no query left to evaluate).
 * Free *out with rag_beir_free. */
int rag_beir_load(const char *queries_path, const char *qrels_path, rag_beir_set **out);
void rag_beir_free(rag_beir_set *set);

/* Gain of doc_id for the query (0 when unjudged). */
double rag_beir_gain(const rag_beir_query *q, const char *doc_id);

#endif
