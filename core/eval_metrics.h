/* eval_metrics.h - retrieval-quality metrics (nDCG, recall, MRR) and paired significance
 * tests, following the BEIR / trec_eval conventions. Pure functions: no allocation except
 * where stated, no global state, safe from any thread. */
#ifndef RAG_EVAL_METRICS_H
#define RAG_EVAL_METRICS_H

#include <stddef.h>
#include <stdint.h>

/* Every metric takes the ranking of one query as `ranked`: ranked[i] is the graded gain
 * (the qrels score, 0 when unjudged or not relevant) of the document at rank i + 1, with
 * each document appearing once. Only the first k ranks count. */

/* nDCG@k with linear gains (trec_eval's ndcg_cut, as BEIR reports it):
 * DCG = sum_{i<k} ranked[i] / log2(i + 2), divided by the DCG of the ideal ranking of the
 * query's relevant gains `rel` (n_rel values > 0, any order). 0 when n_rel is 0. */
double rag_eval_ndcg(const double *ranked, size_t n, const double *rel, size_t n_rel, size_t k);

/* Recall@k: relevant documents (gain > 0) in the first k ranks / n_rel; 0 when n_rel is 0. */
double rag_eval_recall(const double *ranked, size_t n, size_t n_rel, size_t k);

/* Reciprocal rank of the first relevant document within the first k ranks, else 0. */
double rag_eval_mrr(const double *ranked, size_t n, size_t k);

/* Two-sided paired randomization (sign-flip) test of mean(a - b) = 0 over n paired values:
 * `iterations` random sign assignments from a generator seeded with `seed` (so the result
 * is reproducible); returns (count of |mean| >= observed + 1) / (iterations + 1), or 1
 * when n is 0. */
double rag_eval_randomization_p(const double *a, const double *b, size_t n,
                                unsigned iterations, uint64_t seed);

/* Two-sided paired Student t-test of mean(a - b) = 0: *t receives the statistic and the
 * return value is the p-value (n - 1 degrees of freedom). With n < 2, or every difference
 * equal to zero, *t = 0 and p = 1; with identical non-zero differences *t = +-inf, p = 0. */
double rag_eval_paired_t(const double *a, const double *b, size_t n, double *t);

/* Two-sided tail probability P(|T| >= |t|) of Student's t with df degrees of freedom. */
double rag_eval_t_pvalue(double t, double df);

/* The q-quantile (0..1) of values by linear interpolation between order statistics; sorts
 * `values` in place. 0 when n is 0. */
double rag_eval_quantile(double *values, size_t n, double q);

#endif
