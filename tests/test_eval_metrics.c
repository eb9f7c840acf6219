/* test_eval_metrics.c - the public evaluation API: nDCG, recall, MRR, quantiles and paired
 * tests against hand values; BEIR queries and qrels loading. */
#include "test.h"

#include "ragcore.h"

#include <math.h>

static void test_ndcg(void)
{
    /* relevant docs at ranks 2 (gain 1) and 4 (gain 2); ideal order 2, 1:
     * DCG = 1/log2(3) + 2/log2(5) = 1.492282, IDCG = 2 + 1/log2(3) = 2.630930 */
    double ranked[] = {0, 1, 0, 2, 0};
    double rel[] = {1, 2};
    ASSERT_NEAR(rag_eval_ndcg(ranked, 5, rel, 2, 10), 0.5672074170, 1e-9);
    /* cut at 3: DCG = 1/log2(3) = 0.630930; IDCG@3 unchanged */
    ASSERT_NEAR(rag_eval_ndcg(ranked, 5, rel, 2, 3), 0.6309297536 / 2.6309297536, 1e-9);
    /* perfect ranking */
    double perfect[] = {2, 1, 0};
    ASSERT_NEAR(rag_eval_ndcg(perfect, 3, rel, 2, 10), 1.0, 1e-12);
    /* a relevant document that was never retrieved still counts in the ideal DCG:
     * ranked = [1], rel = {1, 1}: 1 / (1 + 1/log2(3)) = 0.613147 */
    double one[] = {1};
    double rel11[] = {1, 1};
    ASSERT_NEAR(rag_eval_ndcg(one, 1, rel11, 2, 10), 0.6131471928, 1e-9);
    /* nothing relevant, nothing retrieved */
    ASSERT_NEAR(rag_eval_ndcg(ranked, 5, rel, 0, 10), 0, 0);
    ASSERT_NEAR(rag_eval_ndcg(NULL, 0, rel, 2, 10), 0, 0);
    /* more than 64 relevant documents (heap path) */
    double many[100], mranked[100];
    for (int i = 0; i < 100; i++)
        many[i] = mranked[i] = 1;
    ASSERT_NEAR(rag_eval_ndcg(mranked, 100, many, 100, 10), 1.0, 1e-12);
    ASSERT_NEAR(rag_eval_ndcg(mranked, 5, many, 100, 10),
                (1 + 1 / log2(3) + 0.5 + 1 / log2(5) + 1 / log2(6)) /
                    (1 + 1 / log2(3) + 0.5 + 1 / log2(5) + 1 / log2(6) + 1 / log2(7) +
                     1 / log2(8) + 1 / log2(9) + 1 / log2(10) + 1 / log2(11)),
                1e-12);
}

static void test_recall_mrr(void)
{
    double ranked[] = {0, 1, 0, 2, 0};
    ASSERT_NEAR(rag_eval_recall(ranked, 5, 2, 10), 1.0, 0);
    ASSERT_NEAR(rag_eval_recall(ranked, 5, 2, 2), 0.5, 0);
    ASSERT_NEAR(rag_eval_recall(ranked, 5, 3, 10), 2.0 / 3.0, 1e-12);
    ASSERT_NEAR(rag_eval_recall(ranked, 5, 0, 10), 0, 0);
    ASSERT_NEAR(rag_eval_mrr(ranked, 5, 10), 0.5, 0);
    ASSERT_NEAR(rag_eval_mrr(ranked, 5, 1), 0, 0);
    double first[] = {3, 0};
    ASSERT_NEAR(rag_eval_mrr(first, 2, 10), 1.0, 0);
    double none[] = {0, 0, 0};
    ASSERT_NEAR(rag_eval_mrr(none, 3, 10), 0, 0);
}

static void test_quantile(void)
{
    double v[] = {5, 1, 4, 2, 3};
    ASSERT_NEAR(rag_eval_quantile(v, 5, 0.5), 3, 1e-12);
    ASSERT_NEAR(v[0], 1, 0); /* sorted in place */
    ASSERT_NEAR(rag_eval_quantile(v, 5, 0.95), 4.8, 1e-12);
    ASSERT_NEAR(rag_eval_quantile(v, 5, 0), 1, 0);
    ASSERT_NEAR(rag_eval_quantile(v, 5, 1), 5, 0);
    double w[] = {10, 20};
    ASSERT_NEAR(rag_eval_quantile(w, 2, 0.5), 15, 1e-12);
    ASSERT_NEAR(rag_eval_quantile(NULL, 0, 0.5), 0, 0);
}

static void test_t_test(void)
{
    /* differences 1..5: mean 3, sd 1.581139, t = 4.242641, df 4, p = 0.0132356 */
    double a[] = {1, 2, 3, 4, 5}, z[] = {0, 0, 0, 0, 0};
    double t;
    ASSERT_NEAR(rag_eval_paired_t(a, z, 5, &t), 0.0132356, 2e-6);
    ASSERT_NEAR(t, 4.2426406871, 1e-9);
    /* sign of t follows a - b; p is symmetric */
    ASSERT_NEAR(rag_eval_paired_t(z, a, 5, &t), 0.0132356, 2e-6);
    ASSERT_NEAR(t, -4.2426406871, 1e-9);
    /* differences {.5,-.2,.3,.1,.4,-.1}: t = 1.455556, df 5, p = 0.2052815 */
    double b[] = {1.5, 0.8, 1.3, 1.1, 1.4, 0.9}, one[] = {1, 1, 1, 1, 1, 1};
    ASSERT_NEAR(rag_eval_paired_t(b, one, 6, &t), 0.2052815, 2e-6);
    ASSERT_NEAR(t, 1.4555562743, 1e-8);
    /* degenerate inputs */
    ASSERT_NEAR(rag_eval_paired_t(a, a, 5, &t), 1, 0);
    ASSERT_NEAR(t, 0, 0);
    ASSERT_NEAR(rag_eval_paired_t(a, z, 1, &t), 1, 0);
    double c[] = {2, 3, 4};
    double d[] = {1, 2, 3};
    ASSERT_NEAR(rag_eval_paired_t(c, d, 3, &t), 0, 0);
    ASSERT_TRUE(isinf(t) && t > 0);
    /* t distribution tails: df 1 is Cauchy, P(|T| >= 1) = 0.5; large df approaches normal */
    ASSERT_NEAR(rag_eval_t_pvalue(1.0, 1), 0.5, 1e-9);
    ASSERT_NEAR(rag_eval_t_pvalue(1.959964, 1e6), 0.05, 1e-5);
    ASSERT_NEAR(rag_eval_t_pvalue(0, 10), 1.0, 1e-12);
}

static void test_randomization(void)
{
    /* differences {1, 2, 3}: exactly 2 of the 8 sign patterns reach |sum| >= 6: p = 0.25 */
    double a[] = {1, 2, 3}, z[] = {0, 0, 0};
    double p = rag_eval_randomization_p(a, z, 3, 20000, 42);
    ASSERT_NEAR(p, 0.25, 0.015);
    /* same seed, same answer */
    ASSERT_NEAR(rag_eval_randomization_p(a, z, 3, 20000, 42), p, 0);
    /* identical systems: every flip is as extreme */
    ASSERT_NEAR(rag_eval_randomization_p(a, a, 3, 1000, 1), 1.0, 0);
    /* 30 queries all better by 0.1: only 2 of 2^30 patterns are as extreme */
    double x[30], y[30];
    for (int i = 0; i < 30; i++) {
        x[i] = 0.5 + 0.1;
        y[i] = 0.5;
    }
    ASSERT_NEAR(rag_eval_randomization_p(x, y, 30, 10000, 7), 1.0 / 10001.0, 1e-12);
    /* balanced wins and losses: no evidence */
    double u[] = {1, 0, 1, 0}, v[] = {0, 1, 0, 1};
    ASSERT_NEAR(rag_eval_randomization_p(u, v, 4, 1000, 3), 1.0, 0);
    ASSERT_NEAR(rag_eval_randomization_p(NULL, NULL, 0, 1000, 3), 1.0, 0);
    /* more than 64 pairs uses several random words per iteration: {1..70} vs 0 */
    double big[70], zero[70] = {0};
    for (int i = 0; i < 70; i++)
        big[i] = (i % 2) ? 1 : -1;
    big[0] = 1; /* sum = 2 of 70 unit differences: p = P(|S| >= 2) ~ 1 - P(S=0) = 0.905 */
    ASSERT_NEAR(rag_eval_randomization_p(big, zero, 70, 20000, 9), 0.905, 0.02);
}

static void write_file(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    if (!f || fputs(text, f) < 0 || fclose(f) != 0)
        TEST_FAIL_("cannot write %s", path);
}

/* Queries with string and integer ids, qrels with a header, graded and zero gains, a
 * query without relevant judgement, an orphan judgement; then malformed inputs. */
static void test_beir_load(void)
{
    char dir[4096], q[4200], r[4200];
    test_fresh_dir(dir, sizeof dir, "eval_beir");
    char cmd[4200];
    snprintf(cmd, sizeof cmd, "mkdir -p '%s'", dir);
    ASSERT_EQ_INT(system(cmd), 0);
    snprintf(q, sizeof q, "%s/queries.jsonl", dir);
    snprintf(r, sizeof r, "%s/qrels.tsv", dir);
    write_file(q, "{\"_id\": \"q2\", \"text\": \"second\"}\n\n"
                  "{\"_id\": 1, \"text\": \"first\"}\n"
                  "{\"_id\": \"q3\", \"text\": \"never relevant\"}\n");
    write_file(r, "query-id\tcorpus-id\tscore\nq2\td1\t2\nq2\td2\t0\n1\td3\t1\n"
                  "q3\td1\t0\nq9\td1\t1\n");
    rag_beir_set *set = NULL;
    ASSERT_OK(rag_beir_load(q, r, &set));
    if (!set)
        return;
    ASSERT_EQ_INT(set->n, 2);
    ASSERT_EQ_INT(set->unjudged, 1);
    ASSERT_EQ_INT(set->orphan_qrels, 1);
    ASSERT_STR_EQ(set->queries[0].id, "1"); /* id order */
    ASSERT_STR_EQ(set->queries[0].text, "first");
    ASSERT_STR_EQ(set->queries[1].id, "q2");
    ASSERT_EQ_INT(set->queries[1].n_judged, 2);
    ASSERT_EQ_INT(set->queries[1].n_relevant, 1);
    ASSERT_STR_EQ(set->queries[1].judged[1].doc_id, "d2");
    ASSERT_NEAR(rag_beir_gain(&set->queries[1], "d1"), 2.0, 0);
    ASSERT_NEAR(rag_beir_gain(&set->queries[1], "d3"), 0.0, 0);
    rag_beir_free(set);
    rag_beir_free(NULL);

    set = (rag_beir_set *)1;
    write_file(r, "q2\td1\t1\nq2\td2\tlots\n");
    ASSERT_EQ_INT(rag_beir_load(q, r, &set), RAG_EPARSE);
    ASSERT_TRUE(set == NULL);
    ASSERT_TRUE(strstr(rag_errmsg(), "line 2: score 'lots'") != NULL);
    write_file(r, "q2\td1\t1\nq2\td1\n");
    ASSERT_EQ_INT(rag_beir_load(q, r, &set), RAG_EPARSE);
    ASSERT_TRUE(strstr(rag_errmsg(), "line 2") != NULL);
    write_file(r, "q3\td1\t0\n");
    ASSERT_EQ_INT(rag_beir_load(q, r, &set), RAG_EINVAL);
    write_file(q, "{\"_id\": \"q2\", \"text\": \"a\"}\n{\"_id\": \"q2\", \"text\": \"b\"}\n");
    ASSERT_EQ_INT(rag_beir_load(q, r, &set), RAG_EPARSE);
    ASSERT_TRUE(strstr(rag_errmsg(), "twice") != NULL);
    snprintf(q, sizeof q, "%s/absent.jsonl", dir);
    ASSERT_EQ_INT(rag_beir_load(q, r, &set), RAG_EIO);
    ASSERT_EQ_INT(rag_beir_load(NULL, r, &set), RAG_EINVAL);
}

int main(void)
{
    RUN_TEST(test_ndcg);
    RUN_TEST(test_recall_mrr);
    RUN_TEST(test_quantile);
    RUN_TEST(test_t_test);
    RUN_TEST(test_randomization);
    RUN_TEST(test_beir_load);
    return TEST_REPORT();
}
