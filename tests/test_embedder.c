/* test_embedder.c - embedders through the public header: a neural model's precision
 * (":int8" / ":fp32" names, the default, $RAGCORE_PRECISION) and a store that keeps
 * embedding queries in the precision its vectors were built with. */
#include "ragcore.h"
#include "test.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#define MODEL "all-MiniLM-L6-v2"
#define DIM 384

/* Vectors of TEXTS (document, query) from the standalone int8 and fp32 embedders. */
static float v8[2][DIM], v32[2][DIM];

static const char *TEXTS[] = {"Vitamin D deficiency raises the risk of fractures in adults.",
                              "what lowers blood pressure"};

static double cosine(const float *a, const float *b)
{
    double s = 0;
    for (int i = 0; i < DIM; i++)
        s += (double)a[i] * b[i];
    return s; /* both unit vectors */
}

/* Embeds TEXTS[0] as a document and TEXTS[1] as a query with standalone embedder `name`,
 * checking its recorded name. */
static void embed_standalone(const char *name, const char *want_name, float out[2][DIM])
{
    rag_embedder *e = NULL;
    ASSERT_OK(rag_embedder_create(name, 0, &e));
    if (!e)
        return;
    ASSERT_STR_EQ(rag_embedder_name(e), want_name);
    ASSERT_EQ_INT(rag_embedder_dim(e), DIM);
    ASSERT_OK(rag_embedder_embed(e, TEXTS, NULL, 1, 0, out[0]));
    ASSERT_OK(rag_embedder_embed(e, TEXTS + 1, NULL, 1, 1, out[1]));
    rag_embedder_free(e);
}

/* Opens store `dir` with embedder `name` (NULL: the recorded one); NULL when it fails. */
static rag_db *open_with(const char *dir, const char *name, int *rc)
{
    rag_open_options o;
    rag_open_options_init(&o);
    o.embedder = name;
    o.index_spec = "Flat";
    rag_db *db = NULL;
    *rc = rag_open(dir, &o, &db);
    return db;
}

/* The query vector store `dir` produces for TEXTS[1] (opened with `name`) is `want`, bit
 * for bit, and the store reports embedder `recorded`. */
static void check_store_queries(const char *dir, const char *name, const char *recorded,
                                const float *want)
{
    int rc;
    rag_db *db = open_with(dir, name, &rc);
    ASSERT_OK(rc);
    if (!db)
        return;
    ASSERT_STR_EQ(rag_db_embedder(db), recorded);
    float q[DIM];
    ASSERT_OK(rag_embed(db, TEXTS + 1, 1, 1, q));
    ASSERT_TRUE(memcmp(q, want, sizeof q) == 0);
    ASSERT_OK(rag_close(db));
}

/* Names choose the precision: the suffix, else $RAGCORE_PRECISION, else int8. An int8
 * embedder's name ends in ":int8", an fp32 one's is the bare model name. The two differ in
 * their vectors, within the faithfulness bound. */
static void test_precision_names(void)
{
    float vd[2][DIM], venv[2][DIM];
    unsetenv("RAGCORE_PRECISION");
    embed_standalone(MODEL ":int8", MODEL ":int8", v8);
    embed_standalone(MODEL ":fp32", MODEL, v32);
    embed_standalone(MODEL, MODEL ":int8", vd); /* the default is int8 */
    ASSERT_TRUE(memcmp(vd, v8, sizeof vd) == 0);
    setenv("RAGCORE_PRECISION", "fp32", 1);
    embed_standalone(MODEL, MODEL, venv);
    ASSERT_TRUE(memcmp(venv, v32, sizeof venv) == 0);
    embed_standalone(MODEL ":int8", MODEL ":int8", venv); /* the suffix wins */
    ASSERT_TRUE(memcmp(venv, v8, sizeof venv) == 0);
    setenv("RAGCORE_PRECISION", "int4", 1);
    rag_embedder *e = NULL;
    ASSERT_EQ_INT(rag_embedder_create(MODEL, 0, &e), RAG_EINVAL);
    ASSERT_TRUE(e == NULL && strstr(rag_errmsg(), "RAGCORE_PRECISION") &&
                strstr(rag_errmsg(), "int4"));
    unsetenv("RAGCORE_PRECISION");
    ASSERT_EQ_INT(rag_embedder_create("hash:int8", 0, &e), RAG_ENOTFOUND);
    for (int t = 0; t < 2; t++) {
        double c = cosine(v8[t], v32[t]);
        ASSERT_TRUE(c >= 0.99 && c < 0.999999);
    }
}

/* A store records the precision of its vectors and embeds queries in it whatever the
 * default: a bare model name opens it in that precision, the other suffix is refused. */
static void test_store_keeps_precision(void)
{
    const char *name[2] = {MODEL ":fp32", MODEL}; /* fp32 store, int8 store (default) */
    const char *recorded[2] = {MODEL, MODEL ":int8"};
    const char *other[2] = {MODEL ":int8", MODEL ":fp32"};
    const float *want[2] = {v32[1], v8[1]};
    const char *dirs[2] = {"embedder_fp32_store", "embedder_int8_store"};
    for (int s = 0; s < 2; s++) {
        char dir[4096];
        int rc;
        test_fresh_dir(dir, sizeof dir, dirs[s]);
        rag_db *db = open_with(dir, name[s], &rc);
        ASSERT_OK(rc);
        if (!db)
            continue;
        rag_document d;
        rag_document_init(&d);
        d.id = "d";
        d.text = TEXTS[0];
        ASSERT_OK(rag_ingest(db, NULL, &d, 1, NULL));
        ASSERT_OK(rag_close(db));
        check_store_queries(dir, NULL, recorded[s], want[s]);
        check_store_queries(dir, MODEL, recorded[s], want[s]);
        check_store_queries(dir, recorded[s], recorded[s], want[s]);
        setenv("RAGCORE_PRECISION", s == 0 ? "int8" : "fp32", 1); /* not the store's */
        check_store_queries(dir, NULL, recorded[s], want[s]);
        unsetenv("RAGCORE_PRECISION");
        ASSERT_TRUE(open_with(dir, other[s], &rc) == NULL);
        ASSERT_EQ_INT(rc, RAG_EMISMATCH);
        ASSERT_TRUE(strstr(rag_errmsg(), recorded[s]) && strstr(rag_errmsg(), other[s]) &&
                    strstr(rag_errmsg(), "fp32 and int8"));
    }
}

int main(void)
{
    char *mdir = NULL;
    if (rag_model_pull(MODEL, 0, &mdir) != RAG_OK) {
        fprintf(stderr, "(%s cannot be pulled: %s; skipped)\n", MODEL, rag_errmsg());
        return 0;
    }
    rag_free(mdir);
    RUN_TEST(test_precision_names);
    RUN_TEST(test_store_keeps_precision);
    return TEST_REPORT();
}
