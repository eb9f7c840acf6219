/* test_retrieval.c - retrieval quality features: filtered search that keeps its promise
 * across selectivities (against an exact filtered ground truth), lexical and hybrid modes,
 * fusion, per-document cap, duplicate collapsing, MMR and the confidence signal. */
#include "test.h"

#include "ragcore.h"

#include <math.h>
#include <stdint.h>

#define TDIM 24
#define NDOCS 50000
#define NQ 25
#define K 10

static char dir[4096];

static void fresh_dir(const char *name)
{
    test_fresh_dir(dir, sizeof dir, name);
}

/* Text "v<i>" embeds to pseudo-random unit vector i (the test knows every vector). */
static void vec_of(unsigned long i, float *out)
{
    uint64_t x = (i + 1) * 0x9E3779B97F4A7C15ULL + 777;
    double s = 0;
    for (int j = 0; j < TDIM; j++) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        out[j] = (float)((double)(x >> 11) / 9007199254740992.0 - 0.5);
        s += out[j] * out[j];
    }
    for (int j = 0; j < TDIM; j++)
        out[j] /= (float)sqrt(s);
}

static int vec_embed(void *user, const char *const *texts, const size_t *lens, size_t n,
                     int is_query, float *out)
{
    for (size_t t = 0; t < n; t++)
        vec_of(strtoul(texts[t] + 1, NULL, 10), out + t * TDIM);
    return 0;
}

static rag_embedder_def vec_def = {RAG_EMBEDDER_DEF_VERSION, "vec-test", TDIM, vec_embed, NULL,
                                   NULL};

static float *all_vecs;

static void build_filter_store(rag_db **out)
{
    fresh_dir("retrieval_filter");
    rag_open_options o;
    rag_open_options_init(&o);
    o.custom_embedder = &vec_def;
    o.language = "none";
    ASSERT_OK(rag_open(dir, &o, out));
    all_vecs = malloc(sizeof(float) * NDOCS * TDIM);
    enum { B = 5000 };
    static rag_document docs[B];
    static char ids[B][16], meta[B][64];
    for (int b = 0; b < NDOCS; b += B) {
        for (int i = 0; i < B; i++) {
            int d = b + i;
            rag_document_init(&docs[i]);
            snprintf(ids[i], 16, "v%d", d);
            snprintf(meta[i], 64, "{\"bucket\": %d, \"tag\": \"%s\"}", d % 1000,
                     d % 2 ? "odd" : "even");
            docs[i].id = ids[i];
            docs[i].text = ids[i];
            docs[i].metadata_json = meta[i];
            vec_of((unsigned long)d, all_vecs + (size_t)d * TDIM);
        }
        ASSERT_OK(rag_ingest(*out, "f", docs, B, NULL));
    }
}

/* Exact filtered top-K by brute force: documents with bucket < limit. */
static int truth(const float *q, int limit, int *ids)
{
    float best[K];
    int n = 0;
    for (int d = 0; d < NDOCS; d++) {
        if (d % 1000 >= limit)
            continue;
        float s = 0;
        for (int j = 0; j < TDIM; j++)
            s += q[j] * all_vecs[(size_t)d * TDIM + j];
        if (n < K) {
            best[n] = s;
            ids[n++] = d;
        } else {
            int w = 0;
            for (int i = 1; i < K; i++)
                if (best[i] < best[w])
                    w = i;
            if (s > best[w]) {
                best[w] = s;
                ids[w] = d;
            }
        }
    }
    return n;
}

static void test_filters_across_selectivity(void)
{
    rag_db *db = NULL;
    build_filter_store(&db);
    if (!db)
        return;
    /* bucket < limit selects limit/1000 of the documents: 0.1% .. 100%. */
    const int limits[] = {1, 10, 100, 500, 1000};
    for (size_t li = 0; li < sizeof limits / sizeof limits[0]; li++) {
        int limit = limits[li];
        char filter[64];
        snprintf(filter, sizeof filter, "bucket < %d", limit);
        int found = 0, wanted = 0, short_results = 0;
        for (int qi = 0; qi < NQ; qi++) {
            float q[TDIM];
            vec_of((unsigned long)(900000 + qi * 7919), q);
            int tid[K];
            int tn = truth(q, limit, tid);
            rag_search_options so;
            rag_search_options_init(&so);
            so.collection = "f";
            so.k = K;
            so.mode = RAG_MODE_DENSE;
            so.filter = filter;
            rag_results *res = NULL;
            ASSERT_OK(rag_search_vector(db, q, TDIM, &so, &res));
            size_t n = rag_results_count(res);
            if ((int)n != (tn < K ? tn : K))
                short_results++;
            for (size_t i = 0; i < n; i++) {
                int d = atoi(rag_results_get(res, i)->doc_id + 1);
                ASSERT_TRUE(d % 1000 < limit); /* never a non-matching hit */
                for (int t = 0; t < tn; t++)
                    if (tid[t] == d)
                        found++;
            }
            wanted += tn < K ? tn : K;
            rag_results_free(res);
        }
        double recall = wanted ? (double)found / wanted : 1.0;
        fprintf(stderr, "filter selectivity %5.1f%%: recall@10 %.3f, %d short result lists\n",
                limit / 10.0, recall, short_results);
        ASSERT_TRUE(recall >= 0.95);
        ASSERT_EQ_INT(short_results, 0);
    }
    /* Restriction by document id and source prefix inside a filter; a tag filter. */
    rag_search_options so;
    rag_search_options_init(&so);
    so.collection = "f";
    so.mode = RAG_MODE_DENSE;
    so.k = 5;
    so.filter = "doc_id IN (\"v3\", \"v40000\") OR (tag = \"odd\" AND bucket = 999)";
    rag_results *res = NULL;
    ASSERT_OK(rag_search(db, "v3", &so, &res));
    ASSERT_EQ_INT(rag_results_count(res), 5);
    ASSERT_STR_EQ(rag_results_get(res, 0)->doc_id, "v3");
    rag_results_free(res);
    /* A malformed filter names the position. */
    so.filter = "bucket < ";
    ASSERT_EQ_INT(rag_search(db, "v3", &so, &res), RAG_EPARSE);
    ASSERT_TRUE(strstr(rag_errmsg(), "position 9") != NULL);
    so.filter = "(bucket < 3";
    ASSERT_EQ_INT(rag_search(db, "v3", &so, &res), RAG_EPARSE);
    ASSERT_TRUE(strstr(rag_errmsg(), "position") != NULL);
    free(all_vecs);
    ASSERT_OK(rag_close(db));
}

static rag_db *text_store(void)
{
    fresh_dir("retrieval_text");
    rag_open_options o;
    rag_open_options_init(&o);
    o.embedder = "hash";
    rag_db *db = NULL;
    ASSERT_OK(rag_open(dir, &o, &db));
    static const char *texts[][2] = {
        {"zebra", "The zebra crossing regulation XQ-771 applies to all municipal roads."},
        {"zebra-copy", "The zebra crossing regulation XQ-771 applies to all municipal roads."},
        {"zebra-near", "The zebra crossing regulation XQ-771 applies to all municipal roads!"},
        {"horses", "Horses and zebras are equids that graze on open grassland."},
        {"cars", "Electric cars charge at municipal stations along the roads."},
        {"long", "Paragraph one is about roads and traffic law.\n\nParagraph two discusses "
                 "crossing regulations for pedestrians.\n\nParagraph three covers municipal "
                 "road maintenance budgets."},
        {"bread", "Sourdough bread needs a starter culture, flour, water and salt."},
    };
    rag_document d[7];
    for (int i = 0; i < 7; i++) {
        rag_document_init(&d[i]);
        d[i].id = texts[i][0];
        d[i].text = texts[i][1];
    }
    rag_ingest_stats st;
    ASSERT_OK(rag_ingest(db, "t", d, 7, &st));
    ASSERT_EQ_INT(st.duplicate_chunks, 1);
    return db;
}

static void test_modes_and_shaping(void)
{
    rag_db *db = text_store();
    rag_search_options so;
    rag_search_options_init(&so);
    so.collection = "t";
    so.k = 7;
    rag_results *res = NULL;
    /* Lexical: the rare code wins; only documents containing a query term come back. */
    so.mode = RAG_MODE_LEXICAL;
    so.lexical_threshold = 0.3f; /* the defaults are tuned on a large corpus */
    ASSERT_OK(rag_search(db, "XQ-771", &so, &res));
    ASSERT_TRUE(rag_results_count(res) >= 1);
    ASSERT_TRUE(strncmp(rag_results_get(res, 0)->doc_id, "zebra", 5) == 0);
    ASSERT_TRUE(rag_results_get(res, 0)->lexical_score > 0);
    ASSERT_TRUE(isnan(rag_results_get(res, 0)->dense_score));
    for (size_t i = 0; i < rag_results_count(res); i++)
        ASSERT_TRUE(strncmp(rag_results_get(res, i)->doc_id, "zebra", 5) == 0);
    /* The exact duplicate "zebra-copy" is collapsed into "zebra". */
    for (size_t i = 0; i < rag_results_count(res); i++)
        ASSERT_TRUE(strcmp(rag_results_get(res, i)->doc_id, "zebra-copy") != 0 ||
                    strcmp(rag_results_get(res, 0)->doc_id, "zebra") != 0);
    ASSERT_EQ_INT(rag_results_no_confident_context(res), 0);
    rag_results_free(res);
    so.lexical_threshold = 0;
    ASSERT_EQ_INT(rag_search_vector(db, (float[384]){1}, 384, &so, &res), RAG_EINVAL);
    /* Hybrid carries both ranks. */
    so.mode = RAG_MODE_HYBRID;
    ASSERT_OK(rag_search(db, "zebra crossing regulation", &so, &res));
    const rag_hit *h = rag_results_get(res, 0);
    ASSERT_TRUE(h && h->dense_rank >= 1 && h->lexical_rank >= 1);
    ASSERT_TRUE(strncmp(h->doc_id, "zebra", 5) == 0);
    size_t nh = rag_results_count(res);
    rag_results_free(res);
    /* Weighted fusion gives scores in [0,1]. */
    so.fusion = RAG_FUSION_WEIGHTED;
    so.dense_weight = 0.3f;
    ASSERT_OK(rag_search(db, "zebra crossing regulation", &so, &res));
    ASSERT_TRUE(rag_results_get(res, 0)->score <= 1.0f && rag_results_get(res, 0)->score > 0.5f);
    rag_results_free(res);
    so.fusion = RAG_FUSION_RRF;
    /* Near-identical chunks collapse at the default threshold, not when disabled. */
    so.mode = RAG_MODE_DENSE;
    ASSERT_OK(rag_search(db, "zebra crossing regulation XQ-771", &so, &res));
    int zebras = 0;
    for (size_t i = 0; i < rag_results_count(res); i++)
        zebras += strncmp(rag_results_get(res, i)->doc_id, "zebra", 5) == 0;
    ASSERT_EQ_INT(zebras, 1);
    rag_results_free(res);
    so.collapse_threshold = 2.0f;
    ASSERT_OK(rag_search(db, "zebra crossing regulation XQ-771", &so, &res));
    zebras = 0;
    for (size_t i = 0; i < rag_results_count(res); i++)
        zebras += strncmp(rag_results_get(res, i)->doc_id, "zebra", 5) == 0;
    ASSERT_EQ_INT(zebras, 2); /* the exact text duplicate still collapses */
    rag_results_free(res);
    /* MMR: with a low lambda the second hit is not the near-duplicate. */
    so.mmr_lambda = 0.3f;
    ASSERT_OK(rag_search(db, "zebra crossing regulation XQ-771", &so, &res));
    ASSERT_TRUE(rag_results_count(res) >= 2);
    ASSERT_TRUE(strncmp(rag_results_get(res, 1)->doc_id, "zebra", 5) != 0);
    rag_results_free(res);
    so.mmr_lambda = 0;
    so.collapse_threshold = 0;
    /* Per-document cap on a multi-chunk document: tiny chunks make "long" split. */
    ASSERT_TRUE(nh >= 1);
    /* Confidence: gibberish has no confident context. */
    so.mode = RAG_MODE_HYBRID;
    ASSERT_OK(rag_search(db, "qwxzv plmokn", &so, &res));
    ASSERT_EQ_INT(rag_results_no_confident_context(res), 1);
    rag_results_free(res);
    so.dense_threshold = -1;
    ASSERT_OK(rag_search(db, "qwxzv plmokn", &so, &res));
    ASSERT_EQ_INT(rag_results_no_confident_context(res), 0);
    rag_results_free(res);
    /* Bad options are named. */
    so.mmr_lambda = 2;
    ASSERT_EQ_INT(rag_search(db, "x", &so, &res), RAG_EINVAL);
    so.mmr_lambda = 0;
    so.mode = (rag_mode)7;
    ASSERT_EQ_INT(rag_search(db, "x", &so, &res), RAG_EINVAL);
    ASSERT_OK(rag_close(db));
}

static void test_per_doc_cap(void)
{
    fresh_dir("retrieval_perdoc");
    rag_open_options o;
    rag_open_options_init(&o);
    o.embedder = "hash";
    o.chunk_tokens = 12;
    o.chunk_overlap = 2;
    rag_db *db = NULL;
    ASSERT_OK(rag_open(dir, &o, &db));
    rag_document d[2];
    rag_document_init(&d[0]);
    rag_document_init(&d[1]);
    d[0].id = "many";
    d[0].text = "Volcano lava flows. Volcano ash clouds rise high.\n\nVolcano eruptions shake "
                "the ground. Volcano gases smell of sulphur.\n\nVolcano monitoring uses "
                "seismometers and volcano cameras.";
    d[1].id = "one";
    d[1].text = "A short note that mentions a volcano once.";
    rag_ingest_stats st;
    ASSERT_OK(rag_ingest(db, NULL, d, 2, &st));
    ASSERT_TRUE(st.chunks >= 4);
    rag_search_options so;
    rag_search_options_init(&so);
    so.k = 10;
    rag_results *res = NULL;
    ASSERT_OK(rag_search(db, "volcano", &so, &res));
    ASSERT_TRUE(rag_results_count(res) >= 4);
    rag_results_free(res);
    so.per_doc = 1;
    ASSERT_OK(rag_search(db, "volcano", &so, &res));
    ASSERT_EQ_INT(rag_results_count(res), 2);
    ASSERT_TRUE(strcmp(rag_results_get(res, 0)->doc_id, rag_results_get(res, 1)->doc_id) != 0);
    rag_results_free(res);
    ASSERT_OK(rag_close(db));
}

int main(void)
{
    RUN_TEST(test_modes_and_shaping);
    RUN_TEST(test_per_doc_cap);
    RUN_TEST(test_filters_across_selectivity);
    return TEST_REPORT();
}
