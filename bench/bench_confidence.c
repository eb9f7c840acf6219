/* bench_confidence.c - chooses the confidence thresholds: for every dev query, the score of
 * the best dense hit (cosine) and of the best lexical hit (BM25 per query term), split by
 * whether that hit is relevant; prints both distributions' quantiles and the threshold that
 * best separates them (maximum of correct "answer" + correct "don't know" decisions).
 * usage: bench_confidence --db DIR --queries Q.jsonl --qrels QRELS.tsv [--collection C]
 *                         [--lexical-unit document|chunk] */
#include "ragcore.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct sample {
    float score;
    int relevant;
} sample;

static int cmp_sample(const void *a, const void *b)
{
    float x = ((const sample *)a)->score, y = ((const sample *)b)->score;
    return x < y ? -1 : x > y;
}

static float quantile(const sample *s, size_t n, int relevant, double q)
{
    size_t m = 0;
    for (size_t i = 0; i < n; i++)
        m += s[i].relevant == relevant;
    if (!m)
        return NAN;
    size_t want = (size_t)(q * (double)(m - 1)), seen = 0;
    for (size_t i = 0; i < n; i++)
        if (s[i].relevant == relevant && seen++ == want)
            return s[i].score;
    return NAN;
}

/* Threshold maximising accuracy of "relevant iff score >= t". */
static void report(const char *name, sample *s, size_t n)
{
    qsort(s, n, sizeof *s, cmp_sample);
    size_t rel = 0;
    for (size_t i = 0; i < n; i++)
        rel += s[i].relevant;
    size_t best_correct = rel; /* t below everything: all answered */
    float best_t = n ? s[0].score : 0;
    size_t below_irrel = 0, below_rel = 0;
    for (size_t i = 0; i < n; i++) {
        below_irrel += !s[i].relevant;
        below_rel += s[i].relevant;
        size_t correct = below_irrel + (rel - below_rel);
        if (correct > best_correct && i + 1 < n) {
            best_correct = correct;
            best_t = (s[i].score + s[i + 1].score) / 2;
        }
    }
    printf("%s: %zu queries, top hit relevant in %zu\n", name, n, rel);
    printf("  relevant top hits:     p10 %.3f  p25 %.3f  median %.3f\n", quantile(s, n, 1, 0.10),
           quantile(s, n, 1, 0.25), quantile(s, n, 1, 0.5));
    printf("  non-relevant top hits: median %.3f  p75 %.3f  p90 %.3f\n", quantile(s, n, 0, 0.5),
           quantile(s, n, 0, 0.75), quantile(s, n, 0, 0.9));
    printf("  best threshold %.3f: %zu of %zu decisions correct (%.1f%%)\n", best_t, best_correct,
           n, n ? 100.0 * best_correct / n : 0);
}

int main(int argc, char **argv)
{
    const char *db_dir = NULL, *qpath = NULL, *qrels = NULL, *coll = NULL, *unit = "document";
    for (int i = 1; i + 1 < argc; i += 2) {
        if (!strcmp(argv[i], "--db"))
            db_dir = argv[i + 1];
        else if (!strcmp(argv[i], "--queries"))
            qpath = argv[i + 1];
        else if (!strcmp(argv[i], "--qrels"))
            qrels = argv[i + 1];
        else if (!strcmp(argv[i], "--collection"))
            coll = argv[i + 1];
        else if (!strcmp(argv[i], "--lexical-unit"))
            unit = argv[i + 1];
    }
    if (!db_dir || !qpath || !qrels) {
        fprintf(stderr, "usage: bench_confidence --db DIR --queries Q.jsonl --qrels QRELS.tsv\n");
        return 1;
    }
    rag_beir_set *set = NULL;
    rag_db *db = NULL;
    rag_open_options oo;
    rag_open_options_init(&oo);
    oo.read_only = 1;
    if (rag_beir_load(qpath, qrels, &set) != RAG_OK || rag_open(db_dir, &oo, &db) != RAG_OK) {
        fprintf(stderr, "bench_confidence: %s\n", rag_errmsg());
        return 2;
    }
    sample *dense = calloc(set->n, sizeof *dense), *lex = calloc(set->n, sizeof *lex);
    size_t nd = 0, nl = 0;
    for (size_t i = 0; i < set->n; i++) {
        rag_search_options so;
        rag_search_options_init(&so);
        so.collection = coll;
        so.k = 1;
        if (rag_search_option_set(&so, "lexical_unit", unit) != RAG_OK) {
            fprintf(stderr, "bench_confidence: %s\n", rag_errmsg());
            return 1;
        }
        rag_results *res = NULL;
        so.mode = RAG_MODE_DENSE;
        if (rag_search(db, set->queries[i].text, &so, &res) == RAG_OK && rag_results_count(res)) {
            const rag_hit *h = rag_results_get(res, 0);
            dense[nd].score = h->dense_score;
            dense[nd++].relevant = rag_beir_gain(&set->queries[i], h->doc_id) > 0;
        }
        rag_results_free(res);
        so.mode = RAG_MODE_LEXICAL;
        so.lexical_threshold = -1;
        if (rag_search(db, set->queries[i].text, &so, &res) == RAG_OK && rag_results_count(res)) {
            const rag_hit *h = rag_results_get(res, 0);
            /* per query term: count terms the way the library does (words of the query) */
            int terms = 0, in = 0;
            for (const char *p = set->queries[i].text; *p; p++) {
                int w = (*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9');
                terms += w && !in;
                in = w;
            }
            lex[nl].score = terms ? h->lexical_score / (float)terms : 0;
            lex[nl++].relevant = rag_beir_gain(&set->queries[i], h->doc_id) > 0;
        }
        rag_results_free(res);
    }
    printf("store %s, embedder %s\n", db_dir, rag_db_embedder(db));
    report("dense (cosine of the best hit)", dense, nd);
    report("lexical (BM25 of the best hit per query word)", lex, nl);
    free(dense);
    free(lex);
    rag_close(db);
    rag_beir_free(set);
    return 0;
}
