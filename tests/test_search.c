/* test_search.c - public API end to end: ingest, search with restrictions, deletes and
 * tombstones, replace, reopen with index replay, corrupt index rebuild, embedder checks. */
#include "test.h"

#include "ragcore.h"

#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <unistd.h>

static char dir[4096];

static void fresh_dir(const char *name)
{
    test_fresh_dir(dir, sizeof dir, name);
}

/* Deterministic test embedder: text "v<i>" (optionally followed by words) maps to a
 * random unit vector seeded by i, so the nearest neighbour of query "v<i>" is doc v<i>. */
#define TDIM 32
static int test_embed(void *user, const char *const *texts, const size_t *lens, size_t n,
                      int is_query, float *out)
{
    (void)user;
    (void)is_query;
    for (size_t t = 0; t < n; t++) {
        unsigned long seed = 0;
        if (lens[t] > 1 && texts[t][0] == 'v')
            seed = strtoul(texts[t] + 1, NULL, 10) + 1;
        uint64_t x = seed * 0x9E3779B97F4A7C15ULL + 12345;
        for (int j = 0; j < TDIM; j++) {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            out[t * TDIM + j] = (float)((double)(x >> 11) / 9007199254740992.0 - 0.5);
        }
    }
    return 0;
}

static rag_embedder_def test_def = {RAG_EMBEDDER_DEF_VERSION, "test-embedder", TDIM, test_embed,
                                    NULL, NULL};

static rag_db *open_db(const char *spec)
{
    rag_open_options o;
    rag_open_options_init(&o);
    o.custom_embedder = &test_def;
    if (spec)
        o.index_spec = spec;
    rag_db *db = NULL;
    ASSERT_OK(rag_open(dir, &o, &db));
    return db;
}

static void ingest_range(rag_db *db, const char *coll, int from, int to, const char *source_dir)
{
    int n = to - from;
    rag_document *docs = calloc((size_t)n, sizeof *docs);
    char (*ids)[32] = calloc((size_t)n, 32), (*src)[64] = calloc((size_t)n, 64);
    for (int i = 0; i < n; i++) {
        rag_document_init(&docs[i]);
        snprintf(ids[i], 32, "v%d", from + i);
        snprintf(src[i], 64, "%s/v%d.txt", source_dir, from + i);
        docs[i].id = ids[i];
        docs[i].text = ids[i];
        docs[i].source = src[i];
        docs[i].source_mtime = 1000 + from + i;
    }
    rag_ingest_stats st;
    ASSERT_OK(rag_ingest(db, coll, docs, (size_t)n, &st));
    ASSERT_EQ_INT(st.documents, n);
    ASSERT_EQ_INT(st.chunks, n);
    free(docs);
    free(ids);
    free(src);
}

static void test_basic_search_and_provenance(void)
{
    fresh_dir("search_basic");
    rag_db *db = open_db(NULL);
    ingest_range(db, "a", 0, 500, "/data/a");
    rag_results *res = NULL;
    rag_search_options so;
    rag_search_options_init(&so);
    so.collection = "a";
    so.k = 5;
    ASSERT_OK(rag_search(db, "v42", &so, &res));
    ASSERT_EQ_INT(rag_results_count(res), 5);
    const rag_hit *h = rag_results_get(res, 0);
    ASSERT_STR_EQ(h->doc_id, "v42");
    ASSERT_STR_EQ(h->text, "v42");
    ASSERT_STR_EQ(h->source, "/data/a/v42.txt");
    ASSERT_NEAR(h->dense_score, 1.0, 1e-4); /* hybrid by default: score is fused */
    ASSERT_EQ_INT(h->dense_rank, 1);
    ASSERT_EQ_INT(h->start, 0);
    ASSERT_EQ_INT(h->end, 3);
    ASSERT_EQ_INT(h->source_mtime, 1042);
    ASSERT_TRUE(h->ingested_at > 1700000000);
    ASSERT_STR_EQ(h->metadata_json, "{}");
    ASSERT_TRUE(rag_results_get(res, 5) == NULL);
    for (size_t i = 1; i < rag_results_count(res); i++)
        ASSERT_TRUE(rag_results_get(res, i - 1)->score >= rag_results_get(res, i)->score);
    rag_results_free(res);
    /* Search by vector gives the same top hit. */
    float q[TDIM];
    const char *t = "v7";
    size_t l = 2;
    test_embed(NULL, &t, &l, 1, 1, q);
    ASSERT_OK(rag_search_vector(db, q, TDIM, &so, &res));
    ASSERT_STR_EQ(rag_results_get(res, 0)->doc_id, "v7");
    rag_results_free(res);
    ASSERT_EQ_INT(rag_search_vector(db, q, TDIM - 1, &so, &res), RAG_EINVAL);
    so.collection = "nope";
    ASSERT_EQ_INT(rag_search(db, "v1", &so, &res), RAG_ENOTFOUND);
    ASSERT_TRUE(strstr(rag_errmsg(), "nope") != NULL);
    so.collection = "a";
    so.k = 0;
    so.k = -3;
    ASSERT_EQ_INT(rag_search(db, "v1", &so, &res), RAG_EINVAL);
    ASSERT_OK(rag_close(db));
}

static void test_collections_are_isolated(void)
{
    fresh_dir("search_colls");
    rag_db *db = open_db(NULL);
    ingest_range(db, "a", 0, 100, "/a");
    ingest_range(db, "b", 100, 200, "/b");
    rag_search_options so;
    rag_search_options_init(&so);
    so.collection = "a";
    so.k = 100;
    rag_results *res = NULL;
    ASSERT_OK(rag_search(db, "v150", &so, &res));
    ASSERT_EQ_INT(rag_results_count(res), 100);
    for (size_t i = 0; i < rag_results_count(res); i++)
        ASSERT_TRUE(strncmp(rag_results_get(res, i)->source, "/a/", 3) == 0);
    rag_results_free(res);
    char **names = NULL;
    size_t n = 0;
    ASSERT_OK(rag_collection_list(db, &names, &n));
    ASSERT_EQ_INT(n, 2);
    ASSERT_STR_EQ(names[0], "a");
    rag_strings_free(names, n);
    ASSERT_EQ_INT(rag_collection_create(db, "a"), RAG_EEXIST);
    ASSERT_EQ_INT(rag_collection_create(db, "bad name!"), RAG_EINVAL);
    ASSERT_OK(rag_collection_drop(db, "b"));
    so.collection = "b";
    ASSERT_EQ_INT(rag_search(db, "v150", &so, &res), RAG_ENOTFOUND);
    ASSERT_OK(rag_close(db));
    /* The drop survives a reopen and the other collection is intact. */
    db = open_db(NULL);
    ASSERT_EQ_INT(rag_search(db, "v150", &so, &res), RAG_ENOTFOUND);
    rag_collection_info ci;
    ASSERT_OK(rag_collection_stats(db, "a", &ci));
    ASSERT_EQ_INT(ci.documents, 100);
    ASSERT_EQ_INT(ci.chunks, 100);
    ASSERT_OK(rag_close(db));
}

static void test_restrictions(void)
{
    fresh_dir("search_restrict");
    rag_db *db = open_db(NULL);
    ingest_range(db, "c", 0, 300, "/x");
    ingest_range(db, "c", 300, 600, "/y");
    rag_search_options so;
    rag_search_options_init(&so);
    so.collection = "c";
    so.k = 10;
    const char *ids[] = {"v3", "v400", "v599", "missing"};
    so.doc_ids = ids;
    so.n_doc_ids = 4;
    rag_results *res = NULL;
    ASSERT_OK(rag_search(db, "v400", &so, &res));
    ASSERT_EQ_INT(rag_results_count(res), 3);
    ASSERT_STR_EQ(rag_results_get(res, 0)->doc_id, "v400");
    rag_results_free(res);
    so.n_doc_ids = 0;
    so.source_prefix = "/y/";
    so.k = 50;
    ASSERT_OK(rag_search(db, "v10", &so, &res));
    ASSERT_EQ_INT(rag_results_count(res), 50);
    for (size_t i = 0; i < rag_results_count(res); i++)
        ASSERT_TRUE(strncmp(rag_results_get(res, i)->source, "/y/", 3) == 0);
    rag_results_free(res);
    /* Both restrictions intersect. */
    so.doc_ids = ids;
    so.n_doc_ids = 4;
    ASSERT_OK(rag_search(db, "v3", &so, &res));
    ASSERT_EQ_INT(rag_results_count(res), 2);
    rag_results_free(res);
    ASSERT_OK(rag_close(db));
}

/* Deleting most documents leaves tombstones in the HNSW graph; a search must still
 * return k live hits whenever k exist. */
static void test_deletes_keep_k_live_hits(void)
{
    fresh_dir("search_deletes");
    rag_db *db = open_db(NULL);
    ingest_range(db, "d", 0, 2000, "/d");
    for (int i = 0; i < 2000; i++) {
        if (i % 10 == 0)
            continue; /* keep 200 */
        char id[32];
        snprintf(id, sizeof id, "v%d", i);
        ASSERT_OK(rag_delete(db, "d", id));
    }
    ASSERT_EQ_INT(rag_delete(db, "d", "v1"), RAG_ENOTFOUND);
    rag_collection_info ci;
    ASSERT_OK(rag_collection_stats(db, "d", &ci));
    ASSERT_EQ_INT(ci.documents, 200);
    ASSERT_EQ_INT(ci.tombstones, 1800);
    rag_search_options so;
    rag_search_options_init(&so);
    so.collection = "d";
    so.k = 50;
    rag_results *res = NULL;
    ASSERT_OK(rag_search(db, "v1", &so, &res));
    ASSERT_EQ_INT(rag_results_count(res), 50);
    for (size_t i = 0; i < rag_results_count(res); i++) {
        int num = atoi(rag_results_get(res, i)->doc_id + 1);
        ASSERT_EQ_INT(num % 10, 0);
    }
    rag_results_free(res);
    so.k = 300; /* more than exist: all 200 live ones */
    ASSERT_OK(rag_search(db, "v10", &so, &res));
    ASSERT_EQ_INT(rag_results_count(res), 200);
    ASSERT_STR_EQ(rag_results_get(res, 0)->doc_id, "v10");
    rag_results_free(res);
    /* A checkpoint compacts: tombstones over the threshold trigger a rebuild. */
    ASSERT_OK(rag_checkpoint(db));
    ASSERT_OK(rag_collection_stats(db, "d", &ci));
    ASSERT_EQ_INT(ci.tombstones, 0);
    ASSERT_EQ_INT(ci.index_vectors, 200);
    ASSERT_OK(rag_close(db));
    db = open_db(NULL);
    ASSERT_OK(rag_collection_stats(db, "d", &ci));
    ASSERT_EQ_INT(ci.tombstones, 0);
    ASSERT_EQ_INT(ci.index_vectors, 200);
    ASSERT_OK(rag_close(db));
}

static void test_replace_document(void)
{
    fresh_dir("search_replace");
    rag_db *db = open_db(NULL);
    rag_document d;
    rag_document_init(&d);
    d.id = "doc";
    d.text = "v1 first version";
    d.metadata_json = "{\"lang\": \"en\"}";
    ASSERT_OK(rag_ingest(db, NULL, &d, 1, NULL));
    d.text = "v2 second version";
    rag_ingest_stats st;
    ASSERT_OK(rag_ingest(db, NULL, &d, 1, &st));
    ASSERT_EQ_INT(st.replaced, 1);
    rag_collection_info ci;
    ASSERT_OK(rag_collection_stats(db, RAG_DEFAULT_COLLECTION, &ci));
    ASSERT_EQ_INT(ci.documents, 1);
    ASSERT_EQ_INT(ci.chunks, 1);
    rag_results *res = NULL;
    ASSERT_OK(rag_search(db, "v1", NULL, &res));
    ASSERT_EQ_INT(rag_results_count(res), 1);
    ASSERT_STR_EQ(rag_results_get(res, 0)->text, "v2 second version");
    ASSERT_STR_EQ(rag_results_get(res, 0)->metadata_json, "{\"lang\":\"en\"}");
    rag_results_free(res);
    /* Bad input names the problem and stores nothing of the batch. */
    rag_document bad[2];
    rag_document_init(&bad[0]);
    rag_document_init(&bad[1]);
    bad[0].id = "ok";
    bad[0].text = "v5";
    bad[1].id = "broken";
    bad[1].text = "v6 \xff\xfe bytes";
    ASSERT_EQ_INT(rag_ingest(db, NULL, bad, 2, NULL), RAG_EENCODING);
    ASSERT_TRUE(strstr(rag_errmsg(), "broken") && strstr(rag_errmsg(), "byte 3"));
    bad[1].text = "fine";
    bad[1].metadata_json = "{\"a\": ";
    ASSERT_EQ_INT(rag_ingest(db, NULL, bad, 2, NULL), RAG_EPARSE);
    bad[1].metadata_json = "[1,2]";
    ASSERT_EQ_INT(rag_ingest(db, NULL, bad, 2, NULL), RAG_EPARSE);
    bad[1].metadata_json = NULL;
    bad[1].id = "";
    ASSERT_EQ_INT(rag_ingest(db, NULL, bad, 2, NULL), RAG_EINVAL);
    ASSERT_OK(rag_collection_stats(db, RAG_DEFAULT_COLLECTION, &ci));
    ASSERT_EQ_INT(ci.documents, 1);
    ASSERT_OK(rag_close(db));
}

/* ---- searches while documents are replaced ------------------------------------------- */

#define RACE_DOCS 300
#define RACE_ROUNDS 40
#define RACE_BATCH 50

typedef struct race_writer {
    rag_db *db;
    atomic_int done;
    int rc;
} race_writer;

/* Replaces RACE_BATCH documents per call, RACE_ROUNDS times: same ids, same vectors (the
 * embedder keys on the "v<i>" prefix), new text. Every replacement tombstones the old
 * chunk, whose vector stays in the index next to an identical new one. */
static void *race_write(void *arg)
{
    race_writer *w = arg;
    rag_document docs[RACE_BATCH];
    char ids[RACE_BATCH][32], texts[RACE_BATCH][64];
    for (int r = 0; r < RACE_ROUNDS && w->rc == RAG_OK; r++) {
        for (int i = 0; i < RACE_BATCH; i++) {
            int n = (r * RACE_BATCH + i * 7) % RACE_DOCS;
            rag_document_init(&docs[i]);
            snprintf(ids[i], sizeof ids[i], "v%d", n);
            snprintf(texts[i], sizeof texts[i], "v%d round %d", n, r);
            docs[i].id = ids[i];
            docs[i].text = texts[i];
        }
        w->rc = rag_ingest(w->db, NULL, docs, RACE_BATCH, NULL);
        if (w->rc == RAG_OK && r % 10 == 9) { /* and a delete + re-add */
            const char *gone = ids[0];
            w->rc = rag_delete(w->db, NULL, gone);
            if (w->rc == RAG_OK)
                w->rc = rag_ingest(w->db, NULL, &docs[0], 1, NULL);
        }
    }
    atomic_store(&w->done, 1);
    return NULL;
}

/* Searches run while another thread replaces documents (commits happen outside the
 * collection lock, index inserts in slices): every search succeeds, and no replaced or
 * deleted chunk is ever returned — each document appears at most once and every hit's
 * text belongs to its document. */
static void test_searches_during_replacements(void)
{
    fresh_dir("search_race");
    rag_open_options o;
    rag_open_options_init(&o);
    o.custom_embedder = &test_def;
    o.checkpoint_every = 700; /* index checkpoints and compactions during the run too */
    rag_db *db = NULL;
    ASSERT_OK(rag_open(dir, &o, &db));
    ingest_range(db, NULL, 0, RACE_DOCS, "/race");
    race_writer w = {db, 0, RAG_OK};
    pthread_t th;
    ASSERT_EQ_INT(pthread_create(&th, NULL, race_write, &w), 0);
    long searches = 0, hits = 0, failures = 0, dup = 0, mismatched = 0;
    unsigned q = 1;
    while (!atomic_load(&w.done) || searches < 50) {
        char qt[32];
        float vec[TDIM];
        q = q * 1103515245u + 12345u;
        snprintf(qt, sizeof qt, "v%u", (q >> 8) % RACE_DOCS);
        const char *texts[1] = {qt};
        size_t lens[1] = {strlen(qt)};
        test_embed(NULL, texts, lens, 1, 1, vec);
        rag_search_options so;
        rag_search_options_init(&so);
        so.k = 8;
        rag_results *res = NULL;
        int rc = searches % 2 ? rag_search_vector(db, vec, TDIM, &so, &res)
                              : rag_search(db, qt, &so, &res);
        searches++;
        if (rc != RAG_OK) {
            failures++;
            continue;
        }
        size_t n = rag_results_count(res);
        for (size_t i = 0; i < n; i++) {
            const rag_hit *h = rag_results_get(res, i);
            size_t dl = strlen(h->doc_id);
            hits++;
            mismatched +=
                strncmp(h->text, h->doc_id, dl) != 0 || (h->text[dl] != ' ' && h->text[dl]);
            for (size_t j = 0; j < i; j++)
                dup += strcmp(rag_results_get(res, j)->doc_id, h->doc_id) == 0;
        }
        rag_results_free(res);
    }
    pthread_join(th, NULL);
    fprintf(stderr, "%ld searches (%ld hits) during %d replacement batches\n", searches, hits,
            RACE_ROUNDS);
    ASSERT_OK(w.rc);
    ASSERT_EQ_INT(failures, 0);
    ASSERT_EQ_INT(dup, 0);
    ASSERT_EQ_INT(mismatched, 0);
    ASSERT_TRUE(hits > 0);
    rag_collection_info ci;
    ASSERT_OK(rag_collection_stats(db, RAG_DEFAULT_COLLECTION, &ci));
    ASSERT_EQ_INT(ci.documents, RACE_DOCS);
    ASSERT_EQ_INT(ci.chunks, RACE_DOCS);
    ASSERT_OK(rag_close(db));
}

static void test_reopen_replays_and_rebuilds(void)
{
    fresh_dir("search_replay");
    rag_open_options o;
    rag_open_options_init(&o);
    o.custom_embedder = &test_def;
    o.checkpoint_every = -1; /* only explicit checkpoints */
    rag_db *db = NULL;
    ASSERT_OK(rag_open(dir, &o, &db));
    ingest_range(db, "r", 0, 300, "/r");
    ASSERT_OK(rag_checkpoint(db));
    char idx[4200];
    snprintf(idx, sizeof idx, "%s/index/1.idx", dir);
    /* Keep a copy of the older checkpoint, add more, close (checkpoints again). */
    char cmd[9000];
    snprintf(cmd, sizeof cmd, "cp '%s' '%s.old'", idx, idx);
    ASSERT_EQ_INT(system(cmd), 0);
    ingest_range(db, "r", 300, 600, "/r");
    ASSERT_OK(rag_close(db));
    /* Put the older index file back: opening replays the 300 newer vectors. */
    snprintf(cmd, sizeof cmd, "cp '%s.old' '%s'", idx, idx);
    ASSERT_EQ_INT(system(cmd), 0);
    ASSERT_OK(rag_open(dir, &o, &db));
    rag_collection_info ci;
    ASSERT_OK(rag_collection_stats(db, "r", &ci));
    ASSERT_EQ_INT(ci.index_vectors, 600);
    rag_search_options so;
    rag_search_options_init(&so);
    so.collection = "r";
    rag_results *res = NULL;
    ASSERT_OK(rag_search(db, "v555", &so, &res));
    ASSERT_STR_EQ(rag_results_get(res, 0)->doc_id, "v555");
    rag_results_free(res);
    ASSERT_OK(rag_close(db));
    /* Damage the index file: it is rebuilt from the store, nothing is lost. */
    FILE *fp = fopen(idx, "r+b");
    ASSERT_TRUE(fp != NULL);
    fseek(fp, 4000, SEEK_SET);
    fputs("garbage garbage garbage", fp);
    fclose(fp);
    ASSERT_OK(rag_open(dir, &o, &db));
    ASSERT_OK(rag_collection_stats(db, "r", &ci));
    ASSERT_EQ_INT(ci.index_vectors, 600);
    ASSERT_OK(rag_search(db, "v123", &so, &res));
    ASSERT_STR_EQ(rag_results_get(res, 0)->doc_id, "v123");
    rag_results_free(res);
    ASSERT_OK(rag_close(db));
    /* Missing file: rebuilt as well. */
    unlink(idx);
    ASSERT_OK(rag_open(dir, &o, &db));
    ASSERT_OK(rag_search(db, "v9", &so, &res));
    ASSERT_STR_EQ(rag_results_get(res, 0)->doc_id, "v9");
    rag_results_free(res);
    ASSERT_OK(rag_close(db));
}

static void test_embedder_identity(void)
{
    fresh_dir("search_identity");
    rag_open_options o;
    rag_open_options_init(&o);
    o.embedder = "hash";
    rag_db *db = NULL;
    ASSERT_OK(rag_open(dir, &o, &db));
    ASSERT_STR_EQ(rag_db_embedder(db), "hash");
    ASSERT_EQ_INT(rag_db_dim(db), 384);
    rag_document d;
    rag_document_init(&d);
    d.id = "x";
    d.text = "The quick brown fox jumps over the lazy dog.";
    ASSERT_OK(rag_ingest(db, NULL, &d, 1, NULL));
    ASSERT_OK(rag_close(db));
    o.embedder = "hash-128";
    ASSERT_EQ_INT(rag_open(dir, &o, &db), RAG_EMISMATCH);
    ASSERT_TRUE(strstr(rag_errmsg(), "hash") != NULL);
    o.embedder = NULL;
    o.custom_embedder = &test_def;
    ASSERT_EQ_INT(rag_open(dir, &o, &db), RAG_EMISMATCH);
    o.custom_embedder = NULL;
    ASSERT_OK(rag_open(dir, &o, &db)); /* recorded embedder by default */
    rag_results *res = NULL;
    ASSERT_OK(rag_search(db, "quick fox", NULL, &res));
    ASSERT_EQ_INT(rag_results_count(res), 1);
    ASSERT_TRUE(rag_results_get(res, 0)->dense_score > 0.3);
    ASSERT_EQ_INT(rag_results_get(res, 0)->lexical_rank, 1);
    rag_results_free(res);
    ASSERT_OK(rag_close(db));
    o.embedder = "no-such-model";
    fresh_dir("search_identity2");
    ASSERT_EQ_INT(rag_open(dir, &o, &db), RAG_ENOTFOUND);
    ASSERT_TRUE(strstr(rag_errmsg(), "no-such-model") != NULL);
    o.embedder = "hash";
    o.index_spec = "Bogus99";
    ASSERT_EQ_INT(rag_open(dir, &o, &db), RAG_EINVAL);
    ASSERT_TRUE(db == NULL);
    /* Version and error helpers. */
    ASSERT_STR_EQ(rag_version(), RAGCORE_VERSION_STRING);
    ASSERT_STR_EQ(rag_strerror(RAG_EMISMATCH), "store was created with a different configuration");
    ASSERT_STR_EQ(rag_strerror(-999), "unknown status");
    ASSERT_OK(rag_close(NULL));
}

static void test_other_index_specs(void)
{
    const char *specs[] = {"Flat", "HNSW32,SQ8", "IVF16,Flat"};
    for (int s = 0; s < 3; s++) {
        fresh_dir("search_specs");
        rag_db *db = open_db(specs[s]);
        ASSERT_STR_EQ(rag_db_index_spec(db), specs[s]);
        ingest_range(db, "s", 0, 50, "/s"); /* IVF: too few to train, exact scans */
        ingest_range(db, "s", 50, 1000, "/s");
        rag_results *res = NULL;
        rag_search_options so;
        rag_search_options_init(&so);
        so.collection = "s";
        ASSERT_OK(rag_search(db, "v777", &so, &res));
        ASSERT_EQ_INT(rag_results_count(res), 10);
        ASSERT_STR_EQ(rag_results_get(res, 0)->doc_id, "v777");
        rag_results_free(res);
        ASSERT_OK(rag_close(db));
    }
}

/* Near-duplicate collapsing compares candidate vectors: read from the index's memory when
 * it keeps exact floats (HNSW32, Flat), else from the store (quantised SQ8, IVF). "dup"
 * has its own text but v777's vector, so it collapses into v777 in every case. */
static void test_collapse_vectors_from_index_or_store(void)
{
    const char *specs[] = {"HNSW32", "Flat", "HNSW32,SQ8", "IVF16,Flat"};
    for (int s = 0; s < 4; s++) {
        fresh_dir("search_collapse_specs");
        rag_db *db = open_db(specs[s]);
        ingest_range(db, "s", 0, 1000, "/s");
        rag_document d;
        rag_document_init(&d);
        d.id = "dup";
        d.text = "v777 twin";
        ASSERT_OK(rag_ingest(db, "s", &d, 1, NULL));
        rag_search_options so;
        rag_search_options_init(&so);
        so.collection = "s";
        so.mode = RAG_MODE_DENSE;
        for (int collapse = 1; collapse >= 0; collapse--) {
            so.collapse_threshold = collapse ? 0 : 2.0f;
            rag_results *res = NULL;
            ASSERT_OK(rag_search(db, "v777", &so, &res));
            ASSERT_EQ_INT(rag_results_count(res), 10);
            int twins = 0;
            for (size_t i = 0; i < rag_results_count(res); i++) {
                const char *id = rag_results_get(res, i)->doc_id;
                twins += !strcmp(id, "v777") || !strcmp(id, "dup");
            }
            if (twins != (collapse ? 1 : 2))
                TEST_FAIL_("%s, collapse %s: %d of v777 and its twin returned", specs[s],
                           collapse ? "on" : "off", twins);
            const char *top = rag_results_get(res, 0)->doc_id;
            ASSERT_TRUE(!strcmp(top, "v777") || !strcmp(top, "dup"));
            rag_results_free(res);
        }
        ASSERT_OK(rag_close(db));
    }
}

static int embed_calls;

static int counting_embed(void *user, const char *const *texts, const size_t *lens, size_t n,
                          int is_query, float *out)
{
    if (!is_query)
        embed_calls += (int)n;
    return test_embed(user, texts, lens, n, is_query, out);
}

/* With a neural embedder a chunk fills the model's length: the special tokens and the
 * document title (embedded before each chunk) are reserved once, not charged per word. */
static void test_neural_chunks_fill_the_model(void)
{
    char *mdir = NULL;
    if (rag_model_pull("all-MiniLM-L6-v2", 0, &mdir) != RAG_OK) {
        fprintf(stderr, "     (all-MiniLM-L6-v2 cannot be pulled: %s; skipped)\n", rag_errmsg());
        return;
    }
    rag_free(mdir);
    fresh_dir("search_neural_chunks");
    rag_open_options o;
    rag_open_options_init(&o);
    o.embedder = "all-MiniLM-L6-v2";
    o.index_spec = "Flat";
    rag_db *db = NULL;
    ASSERT_OK(rag_open(dir, &o, &db));
    if (!db)
        return;
    static char text[16384];
    size_t pos = 0;
    for (int i = 0; i < 60; i++)
        pos += (size_t)snprintf(text + pos, sizeof text - pos,
                                "Stage %d: chloroplasts convert light energy into sugar. ", i);
    const char *title = "Photosynthesis and the light reactions";
    rag_document d;
    rag_document_init(&d);
    d.id = "photo";
    d.title = title;
    d.text = text;
    rag_ingest_stats st;
    ASSERT_OK(rag_ingest(db, NULL, &d, 1, &st));
    size_t content = 0; /* WordPiece tokens without [CLS] and [SEP] */
    ASSERT_OK(rag_count_tokens(db, text, pos, &content));
    /* about content / (256 - title - overlap) chunks, not three times as many */
    ASSERT_TRUE(content > 700);
    ASSERT_TRUE(st.chunks >= 3 && st.chunks <= (uint64_t)(content / 180 + 1));
    rag_search_options so;
    rag_search_options_init(&so);
    so.k = 100;
    so.per_doc = 100;
    so.collapse_threshold = 2;
    rag_results *res = NULL;
    ASSERT_OK(rag_search(db, "chloroplasts light energy", &so, &res));
    ASSERT_EQ_INT(rag_results_count(res), st.chunks);
    int full = 0;
    for (size_t i = 0; i < rag_results_count(res); i++) {
        const rag_hit *h = rag_results_get(res, i);
        char buf[8192];
        int n = snprintf(buf, sizeof buf, "%s\n\n%s", title, h->text);
        size_t body = 0;
        ASSERT_OK(rag_count_tokens(db, buf, (size_t)n, &body));
        size_t tokens = body + 2; /* the encoding adds [CLS] and [SEP] */
        if (tokens > 256)
            TEST_FAIL_("chunk %zu: %zu tokens with the title, over the model's 256", i, tokens);
        full += tokens >= 220;
    }
    ASSERT_TRUE(full >= (int)st.chunks - 1); /* all but the last are (nearly) full */
    rag_results_free(res);
    ASSERT_OK(rag_close(db));
}

/* Re-ingesting unchanged chunks never calls the embedder again. */
static void test_embedding_cache(void)
{
    fresh_dir("search_embcache");
    rag_embedder_def def = {RAG_EMBEDDER_DEF_VERSION, "counting-embedder", TDIM, counting_embed,
                            NULL, NULL};
    rag_open_options o;
    rag_open_options_init(&o);
    o.custom_embedder = &def;
    rag_db *db = NULL;
    ASSERT_OK(rag_open(dir, &o, &db));
    rag_document d[2];
    rag_document_init(&d[0]);
    rag_document_init(&d[1]);
    d[0].id = "a";
    d[0].text = "v1 alpha";
    d[1].id = "b";
    d[1].text = "v2 beta";
    embed_calls = 0;
    ASSERT_OK(rag_ingest(db, NULL, d, 2, NULL));
    ASSERT_EQ_INT(embed_calls, 2);
    ASSERT_OK(rag_ingest(db, NULL, d, 2, NULL)); /* replaced, same texts */
    ASSERT_EQ_INT(embed_calls, 2);
    d[1].text = "v2 beta changed";
    ASSERT_OK(rag_ingest(db, NULL, d, 2, NULL));
    ASSERT_EQ_INT(embed_calls, 3);
    uint64_t hits = 0, misses = 0;
    ASSERT_OK(rag_embed_cache_stats(db, &hits, &misses));
    ASSERT_EQ_INT(hits, 3);
    ASSERT_EQ_INT(misses, 3);
    rag_results *res = NULL;
    ASSERT_OK(rag_search(db, "v2", NULL, &res));
    ASSERT_STR_EQ(rag_results_get(res, 0)->text, "v2 beta changed");
    rag_results_free(res);
    /* rag_embed answers an ingested chunk's text from the cache (the same vector the
     * embedder gives) and encodes only the new one; the cache is not written by it. */
    const char *texts[] = {"v1 alpha", "v3 gamma"};
    float got[2 * TDIM], want[2 * TDIM];
    embed_calls = 0;
    ASSERT_OK(rag_embed(db, texts, 2, 0, got));
    ASSERT_EQ_INT(embed_calls, 1);
    ASSERT_OK(rag_embed(db, texts, 2, 0, got));
    ASSERT_EQ_INT(embed_calls, 2);
    ASSERT_OK(test_embed(NULL, texts, (const size_t[]){8, 8}, 2, 0, want));
    for (int i = 0; i < 2; i++) {
        double ss = 0;
        for (int j = 0; j < TDIM; j++)
            ss += (double)want[i * TDIM + j] * want[i * TDIM + j];
        for (int j = 0; j < TDIM; j++)
            want[i * TDIM + j] /= (float)sqrt(ss);
    }
    for (int i = 0; i < 2 * TDIM; i++)
        ASSERT_NEAR(got[i], want[i], 1e-6);
    ASSERT_OK(rag_close(db));
}

/* The cache keeps at most embed_cache_max entries, evicting the oldest first. */
static void test_embedding_cache_bound(void)
{
    fresh_dir("search_embcache_bound");
    rag_embedder_def def = {RAG_EMBEDDER_DEF_VERSION, "counting-embedder", TDIM, counting_embed,
                            NULL, NULL};
    rag_open_options o;
    rag_open_options_init(&o);
    o.custom_embedder = &def;
    o.embed_cache_max = 5;
    rag_db *db = NULL;
    ASSERT_OK(rag_open(dir, &o, &db));
    rag_document d[8];
    char ids[8][16], texts[8][32];
    for (int i = 0; i < 8; i++) {
        rag_document_init(&d[i]);
        snprintf(ids[i], sizeof ids[i], "d%d", i);
        snprintf(texts[i], sizeof texts[i], "v%d text %d", i, i);
        d[i].id = ids[i];
        d[i].text = texts[i];
    }
    embed_calls = 0;
    ASSERT_OK(rag_ingest(db, NULL, d, 8, NULL)); /* 8 misses; d0..d2 evicted */
    ASSERT_EQ_INT(embed_calls, 8);
    ASSERT_OK(rag_ingest(db, NULL, d + 5, 3, NULL)); /* newest: still cached */
    ASSERT_EQ_INT(embed_calls, 8);
    ASSERT_OK(rag_ingest(db, NULL, d, 1, NULL)); /* evicted: embedded again */
    ASSERT_EQ_INT(embed_calls, 9);
    ASSERT_OK(rag_close(db));
    /* The bound holds across handles; -1 turns the cache off. */
    ASSERT_OK(rag_open(dir, &o, &db));
    ASSERT_OK(rag_ingest(db, NULL, d + 4, 4, NULL)); /* d3 evicted by d0: d4..d7 cached */
    ASSERT_EQ_INT(embed_calls, 9);
    ASSERT_OK(rag_close(db));
    o.embed_cache_max = -1;
    ASSERT_OK(rag_open(dir, &o, &db));
    ASSERT_OK(rag_ingest(db, NULL, d + 4, 4, NULL));
    ASSERT_EQ_INT(embed_calls, 13);
    uint64_t hits = 0, misses = 0;
    ASSERT_OK(rag_embed_cache_stats(db, &hits, &misses));
    ASSERT_EQ_INT(hits, 7);
    ASSERT_EQ_INT(misses, 9);
    ASSERT_OK(rag_close(db));
}


/* rag_hit.score per mode, as the header documents it. */
static void test_score_per_mode(void)
{
    rag_db *db = open_db(NULL);
    ingest_range(db, "modes", 0, 20, "/data/m");
    rag_search_options so;
    rag_search_options_init(&so);
    so.collection = "modes";
    so.k = 5;
    rag_results *res = NULL;
    so.mode = RAG_MODE_DENSE;
    ASSERT_OK(rag_search(db, "v7", &so, &res));
    const rag_hit *h = rag_results_get(res, 0);
    ASSERT_TRUE(h && h->score == h->dense_score && h->score <= 1.0f && h->score >= -1.0f);
    rag_results_free(res);
    so.mode = RAG_MODE_LEXICAL;
    ASSERT_OK(rag_search(db, "v7", &so, &res));
    h = rag_results_get(res, 0);
    ASSERT_TRUE(h && h->score == h->lexical_score && h->score > 0);
    rag_results_free(res);
    so.mode = RAG_MODE_HYBRID;
    so.fusion = RAG_FUSION_RRF;
    ASSERT_OK(rag_search(db, "v7", &so, &res));
    for (size_t i = 0; i < rag_results_count(res); i++) {
        h = rag_results_get(res, i);
        double rrf = (h->dense_rank ? 1.0 / (60 + h->dense_rank) : 0) +
                     (h->lexical_rank ? 1.0 / (60 + h->lexical_rank) : 0);
        ASSERT_NEAR(h->score, rrf, 1e-6);
    }
    rag_results_free(res);
    /* The default fusion is weighted, dense weight 0.5: each side min-max normalised over
     * its candidates (all 20 chunks are hits here, so the hits hold every candidate). */
    rag_search_options_init(&so);
    ASSERT_EQ_INT(so.fusion, RAG_FUSION_WEIGHTED);
    so.collection = "modes";
    so.k = 20;
    ASSERT_OK(rag_search(db, "v7", &so, &res));
    ASSERT_EQ_INT(rag_results_count(res), 20);
    double dmin = 0, dmax = 0, lmin = 0, lmax = 0;
    int nd = 0, nl = 0;
    for (size_t i = 0; i < rag_results_count(res); i++) {
        h = rag_results_get(res, i);
        if (h->dense_rank) {
            dmin = nd == 0 || h->dense_score < dmin ? h->dense_score : dmin;
            dmax = nd++ == 0 || h->dense_score > dmax ? h->dense_score : dmax;
        }
        if (h->lexical_rank) {
            lmin = nl == 0 || h->lexical_score < lmin ? h->lexical_score : lmin;
            lmax = nl++ == 0 || h->lexical_score > lmax ? h->lexical_score : lmax;
        }
    }
    ASSERT_TRUE(nd == 20 && nl >= 1 && dmax > dmin);
    for (size_t i = 0; i < rag_results_count(res); i++) {
        h = rag_results_get(res, i);
        double dn = h->dense_rank ? (h->dense_score - dmin) / (dmax - dmin) : 0;
        double ln = !h->lexical_rank ? 0 : lmax > lmin ? (h->lexical_score - lmin) / (lmax - lmin) : 1;
        ASSERT_NEAR(h->score, 0.5 * dn + 0.5 * ln, 1e-5);
    }
    ASSERT_TRUE(strcmp(rag_results_get(res, 0)->doc_id, "v7") == 0);
    rag_results_free(res);
    rag_close(db);
}

/* The search-option table: every option set by name round-trips into its field, bad values
 * are refused naming the option and its range, and rag_search checks the same ranges. */
static void test_search_options_by_name(void)
{
    rag_search_options so;
    rag_search_options_init(&so);
    ASSERT_TRUE(rag_search_option_count() >= 17);
    for (size_t i = 0; i < rag_search_option_count(); i++) {
        const rag_option_info *in = rag_search_option_info(i);
        ASSERT_TRUE(in && in->name && in->help && in->default_text);
        ASSERT_TRUE(rag_search_option_find(in->name) == in);
    }
    ASSERT_TRUE(rag_search_option_info(rag_search_option_count()) == NULL);
    ASSERT_TRUE(rag_search_option_find("no_such_option") == NULL);
    ASSERT_OK(rag_search_option_set(&so, "k", "25"));
    ASSERT_EQ_INT(so.k, 25);
    ASSERT_OK(rag_search_option_set(&so, "candidates", "400"));
    ASSERT_EQ_INT(so.candidates, 400);
    ASSERT_OK(rag_search_option_set(&so, "mmr", "0.7")); /* alias of mmr_lambda */
    ASSERT_NEAR(so.mmr_lambda, 0.7, 1e-6);
    ASSERT_OK(rag_search_option_set(&so, "mode", "lexical"));
    ASSERT_EQ_INT(so.mode, RAG_MODE_LEXICAL);
    ASSERT_OK(rag_search_option_set(&so, "mode", "vector"));
    ASSERT_EQ_INT(so.mode, RAG_MODE_DENSE);
    ASSERT_OK(rag_search_option_set(&so, "fusion", "weighted"));
    ASSERT_EQ_INT(so.fusion, RAG_FUSION_WEIGHTED);
    ASSERT_OK(rag_search_option_set(&so, "time_basis", "ingested"));
    ASSERT_EQ_INT(so.time_basis, RAG_TIME_INGESTED);
    ASSERT_OK(rag_search_option_set(&so, "max_age", "86400"));
    ASSERT_EQ_INT(so.max_age, 86400);
    const char *f = "lang = \"en\"";
    ASSERT_OK(rag_search_option_set(&so, "filter", f));
    ASSERT_TRUE(so.filter == f);
    /* refusals name the option, its range and the value; the field keeps its value */
    ASSERT_EQ_INT(rag_search_option_set(&so, "candidates", "100000"), RAG_EINVAL);
    ASSERT_TRUE(strstr(rag_errmsg(), "candidates must be an integer in 1..10000, got '100000'"));
    ASSERT_EQ_INT(so.candidates, 400);
    ASSERT_EQ_INT(rag_search_option_set(&so, "k", "2.5"), RAG_EINVAL);
    ASSERT_EQ_INT(rag_search_option_set(&so, "k", "12abc"), RAG_EINVAL);
    ASSERT_EQ_INT(rag_search_option_set(&so, "dense_weight", "nan"), RAG_EINVAL);
    ASSERT_EQ_INT(rag_search_option_set(&so, "mode", "fast"), RAG_EINVAL);
    ASSERT_TRUE(strstr(rag_errmsg(), "mode must be one of hybrid,dense,lexical,vector"));
    ASSERT_EQ_INT(rag_search_option_set(&so, "bogus", "1"), RAG_EINVAL);
    ASSERT_TRUE(strstr(rag_errmsg(), "unknown search option 'bogus'"));
    ASSERT_EQ_INT(so.lexical_unit, RAG_LEXICAL_DOCUMENT);
    ASSERT_OK(rag_search_option_set(&so, "lexical_unit", "chunk"));
    ASSERT_EQ_INT(so.lexical_unit, RAG_LEXICAL_CHUNK);
    ASSERT_OK(rag_search_option_set(&so, "lexical_unit", "document"));
    ASSERT_EQ_INT(so.lexical_unit, RAG_LEXICAL_DOCUMENT);
    ASSERT_EQ_INT(rag_search_option_set(&so, "lexical_unit", "paragraph"), RAG_EINVAL);
    ASSERT_TRUE(
        strstr(rag_errmsg(), "lexical_unit must be one of document,chunk, got 'paragraph'"));

    /* rag_search validates a struct filled directly against the same table */
    rag_db *db = open_db(NULL);
    ingest_range(db, "opts", 0, 5, "/data/o");
    rag_search_options bad;
    rag_search_options_init(&bad);
    bad.collection = "opts";
    bad.candidates = 20000;
    rag_results *res = NULL;
    ASSERT_EQ_INT(rag_search(db, "v1", &bad, &res), RAG_EINVAL);
    ASSERT_TRUE(strstr(rag_errmsg(), "candidates must be an integer in 1..10000, got 20000"));
    bad.candidates = 0;
    bad.recency_weight = 1.5f;
    ASSERT_EQ_INT(rag_search(db, "v1", &bad, &res), RAG_EINVAL);
    ASSERT_TRUE(strstr(rag_errmsg(), "recency_weight"));
    bad.recency_weight = 0;
    bad.lexical_unit = 5;
    ASSERT_EQ_INT(rag_search(db, "v1", &bad, &res), RAG_EINVAL);
    ASSERT_TRUE(strstr(rag_errmsg(), "unknown lexical_unit 5"));
    bad.lexical_unit = 0;
    ASSERT_OK(rag_search(db, "v1", &bad, &res)); /* zeros mean the defaults */
    ASSERT_EQ_INT(rag_results_count(res), 5);
    rag_results_free(res);
    rag_close(db);
}

/* lexical_unit through rag_search: by document each document is one hit (its best chunk),
 * by chunk every matching chunk is; restrictions apply to the chunk returned; hybrid fuses
 * the document-level list. */
static void test_lexical_unit(void)
{
    fresh_dir("lexical_unit");
    rag_open_options o;
    rag_open_options_init(&o);
    o.custom_embedder = &test_def;
    o.chunk_tokens = 8;
    o.chunk_overlap = 2;
    rag_db *db = NULL;
    ASSERT_OK(rag_open(dir, &o, &db));
    if (!db)
        return;
    static const char *const texts[] = {
        "alpha one two three four five six seven eight nine ten eleven twelve beta thirteen "
        "fourteen alpha",
        "alpha beta gamma delta epsilon zeta eta theta iota kappa lambda mu nu xi omicron pi "
        "rho sigma"};
    static const char *const ids[] = {"spread", "packed"};
    for (int i = 0; i < 2; i++) {
        rag_document d;
        rag_document_init(&d);
        d.id = ids[i];
        d.text = texts[i];
        ASSERT_OK(rag_ingest(db, "units", &d, 1, NULL));
    }
    rag_search_options so;
    rag_search_options_init(&so);
    so.collection = "units";
    so.mode = RAG_MODE_LEXICAL;
    so.collapse_threshold = 2;
    rag_results *res = NULL;
    ASSERT_OK(rag_search(db, "alpha beta", &so, &res));
    ASSERT_EQ_INT(rag_results_count(res), 2);
    const rag_hit *h0 = rag_results_get(res, 0), *h1 = rag_results_get(res, 1);
    ASSERT_TRUE(h0 && h1 && strcmp(h0->doc_id, h1->doc_id) != 0);
    for (size_t i = 0; i < rag_results_count(res); i++) {
        const rag_hit *h = rag_results_get(res, i);
        if (strcmp(h->doc_id, "packed") == 0) /* both words in its first chunk */
            ASSERT_EQ_INT(h->start, 0);
    }
    rag_results_free(res);
    so.lexical_unit = RAG_LEXICAL_CHUNK;
    ASSERT_OK(rag_search(db, "alpha beta", &so, &res));
    ASSERT_TRUE(rag_results_count(res) >= 4); /* spread: 3 chunks match, packed: 1 */
    rag_results_free(res);
    /* a restriction to one document: its best chunk */
    const char *only[] = {"spread"};
    so.lexical_unit = RAG_LEXICAL_DOCUMENT;
    so.doc_ids = only;
    so.n_doc_ids = 1;
    ASSERT_OK(rag_search(db, "alpha beta", &so, &res));
    ASSERT_EQ_INT(rag_results_count(res), 1);
    ASSERT_TRUE(strcmp(rag_results_get(res, 0)->doc_id, "spread") == 0);
    rag_results_free(res);
    /* hybrid: the lexical side ranks documents */
    so.doc_ids = NULL;
    so.n_doc_ids = 0;
    so.mode = RAG_MODE_HYBRID;
    so.k = 20;
    ASSERT_OK(rag_search(db, "alpha beta", &so, &res));
    int lexical_hits = 0;
    for (size_t i = 0; i < rag_results_count(res); i++)
        lexical_hits += rag_results_get(res, i)->lexical_rank > 0;
    ASSERT_EQ_INT(lexical_hits, 2);
    rag_results_free(res);
    rag_close(db);
}

/* Exact BM25 over a split collection: one store holding every document, and two stores
 * each holding half of them (part 0 or 1; -1: all). With the statistics of the halves
 * summed and given to each half's search, every lexical score equals the whole store's.
 * Short documents are one chunk each; long ones (20 to 137 words, chunks of 16 tokens
 * overlapping by 4) several, so that scoring by document and by chunk differ. */
#define SPLIT_DOCS 40
#define SPLIT_HITS 512 /* more than the chunks of the long documents */
#define DOC RAG_LEXICAL_DOCUMENT
#define CHUNK RAG_LEXICAL_CHUNK
static const char *split_vocab[] = {"raft", "log", "replica", "shard", "vector", "index",
                                    "query", "stream", "commit", "leader"};

/* Document i's number of words and its word w: varied lengths and term frequencies. */
static int split_words(int i, int longdocs)
{
    return longdocs ? 20 + i * 3 : 3 + i % 7;
}

static const char *split_word(int i, int w)
{
    return split_vocab[(i * 7 + w * w * 3) % 10];
}

static rag_db *open_split(const char *name, int part, int longdocs)
{
    fresh_dir(name);
    rag_open_options o;
    rag_open_options_init(&o);
    o.custom_embedder = &test_def;
    o.chunk_tokens = longdocs ? 16 : 0;
    o.chunk_overlap = longdocs ? 4 : 0;
    rag_db *db = NULL;
    ASSERT_OK(rag_open(dir, &o, &db));
    for (int i = 0; i < SPLIT_DOCS; i++) {
        if (part >= 0 && i % 2 != part)
            continue;
        char id[16], text[2048];
        size_t len = 0;
        snprintf(id, sizeof id, "d%d", i);
        for (int w = 0; w < split_words(i, longdocs); w++)
            len += (size_t)snprintf(text + len, sizeof text - len, "%s ", split_word(i, w));
        rag_document d;
        rag_document_init(&d);
        d.id = id;
        d.text = text;
        ASSERT_OK(rag_ingest(db, "split", &d, 1, NULL));
    }
    return db;
}

static int lexical_scores(rag_db *db, const char *q, const rag_bm25_stats *st,
                               unsigned version, int unit, char ids[][16], float *scores)
{
    rag_search_options so;
    rag_search_options_init(&so);
    so.version = version;
    so.lexical_unit = unit;
    so.collection = "split";
    so.mode = RAG_MODE_LEXICAL;
    so.k = SPLIT_HITS;
    so.collapse_threshold = 2;
    so.bm25_stats = st;
    rag_results *res = NULL;
    ASSERT_OK(rag_search(db, q, &so, &res));
    int n = (int)rag_results_count(res);
    for (int i = 0; i < n; i++) {
        snprintf(ids[i], 16, "%s@%lld", rag_results_get(res, i)->doc_id,
                 (long long)rag_results_get(res, i)->start);
        scores[i] = rag_results_get(res, i)->score;
    }
    rag_results_free(res);
    return n;
}

/* Searches each half by document with `sum` and with its own statistics: with `sum` every
 * hit of the whole store (n_all ids and scores) is found in its half with its score; with
 * its own statistics some score differs. */
static void halves_match(rag_db *half[2], const char *q, const rag_bm25_stats *sum,
                         char ids_all[][16], const float *sc_all, int n_all)
{
    char ids[SPLIT_HITS][16];
    float sc[SPLIT_HITS];
    int matched = 0, differ_own = 0;
    for (int p = 0; p < 2; p++) {
        for (int own = 0; own < 2; own++) {
            int n = lexical_scores(half[p], q, own ? NULL : sum, RAG_SEARCH_OPTIONS_VERSION,
                                   DOC, ids, sc);
            for (int i = 0; i < n; i++)
                for (int j = 0; j < n_all; j++) {
                    if (strcmp(ids[i], ids_all[j]))
                        continue;
                    if (own) {
                        differ_own |= fabsf(sc[i] - sc_all[j]) > 1e-3f;
                    } else {
                        ASSERT_NEAR(sc[i], sc_all[j], 1e-6);
                        matched++;
                    }
                }
        }
    }
    ASSERT_EQ_INT(matched, n_all); /* every hit of the whole store, found in its half */
    ASSERT_TRUE(differ_own);       /* the halves' own statistics do not give those scores */
}

static void test_bm25_stats_split_stores(void)
{
    rag_db *all = open_split("bm25_all", -1, 0), *half[2];
    half[0] = open_split("bm25_half0", 0, 0);
    half[1] = open_split("bm25_half1", 1, 0);
    const char *q = "replica replica shard leader unknownword";
    rag_bm25_stats *sa = NULL, *sh[2] = {NULL, NULL};
    ASSERT_OK(rag_bm25_stats_get(all, "split", q, &sa));
    ASSERT_OK(rag_bm25_stats_get(half[0], "split", q, &sh[0]));
    ASSERT_OK(rag_bm25_stats_get(half[1], "split", q, &sh[1]));
    /* distinct analysed terms: the repeat counts once, the unknown word has df 0 */
    ASSERT_EQ_INT(sa->n_terms, 4);
    ASSERT_EQ_INT(sa->chunks, SPLIT_DOCS);
    ASSERT_EQ_INT(sh[0]->chunks + sh[1]->chunks, sa->chunks);
    ASSERT_EQ_INT(sh[0]->total_len + sh[1]->total_len, sa->total_len);
    ASSERT_TRUE(sa->total_len > sa->chunks * 3);
    /* the statistics summed term by term (the halves list the same terms) */
    uint64_t df[8] = {0};
    const char *terms[8];
    int seen_unknown = 0;
    for (size_t i = 0; i < sa->n_terms; i++) {
        terms[i] = sa->terms[i];
        for (int p = 0; p < 2; p++)
            for (size_t j = 0; j < sh[p]->n_terms; j++)
                if (!strcmp(sh[p]->terms[j], terms[i]))
                    df[i] += sh[p]->df[j];
        ASSERT_EQ_INT(df[i], sa->df[i]);
        seen_unknown |= !strcmp(terms[i], "unknownword") && sa->df[i] == 0;
        if (strcmp(terms[i], "unknownword"))
            ASSERT_TRUE(sa->df[i] > 0 && sa->df[i] < SPLIT_DOCS);
    }
    ASSERT_TRUE(seen_unknown);
    rag_bm25_stats sum = {sh[0]->chunks + sh[1]->chunks, sh[0]->total_len + sh[1]->total_len,
                          sa->n_terms, terms, df, 0, 0, NULL};
    char ids_all[SPLIT_HITS][16], ids_half[SPLIT_HITS][16];
    float sc_all[SPLIT_HITS], sc_half[SPLIT_HITS];
    int n_all = lexical_scores(all, q, NULL, RAG_SEARCH_OPTIONS_VERSION, DOC, ids_all, sc_all);
    ASSERT_TRUE(n_all > 5);
    halves_match(half, q, &sum, ids_all, sc_all, n_all);
    /* a version-1 struct (built against the older header) has no bm25_stats field: the
     * search reads no further than version 1's fields and scores with its own statistics */
    char ids_v1[SPLIT_HITS][16];
    float sc_v1[SPLIT_HITS];
    int n_v1 = lexical_scores(half[0], q, &sum, 1, DOC, ids_v1, sc_v1);
    int n_own = lexical_scores(half[0], q, NULL, RAG_SEARCH_OPTIONS_VERSION, DOC, ids_half,
                               sc_half);
    ASSERT_EQ_INT(n_v1, n_own);
    for (int i = 0; i < n_v1 && i < n_own; i++)
        ASSERT_TRUE(!strcmp(ids_v1[i], ids_half[i]) && sc_v1[i] == sc_half[i]);
    rag_bm25_stats_free(sh[0]);
    ASSERT_EQ_INT(rag_bm25_stats_get(all, "nope", q, &sh[0]), RAG_ENOTFOUND);
    ASSERT_TRUE(sh[0] == NULL);
    rag_bm25_stats_free(sa);
    rag_bm25_stats_free(sh[1]);
    rag_bm25_stats_free(NULL);
    for (int p = 0; p < 2; p++)
        rag_close(half[p]);
    rag_close(all);
}

/* Scoring by document over a split collection of multi-chunk documents: the store's own
 * statistics given back to it change nothing; the halves' statistics summed (a document
 * lives in one half, so document counts add up) give each half the whole store's document
 * scores and best chunks; statistics without the document fields, or given through
 * options of version 2, score by chunk with their chunk fields. */
static void test_bm25_doc_stats_split_stores(void)
{
    rag_db *all = open_split("bm25d_all", -1, 1), *half[2];
    half[0] = open_split("bm25d_half0", 0, 1);
    half[1] = open_split("bm25d_half1", 1, 1);
    const char *q = "replica replica shard leader commit unknownword";
    const unsigned V = RAG_SEARCH_OPTIONS_VERSION;
    rag_bm25_stats *sa = NULL, *sh[2] = {NULL, NULL};
    ASSERT_OK(rag_bm25_stats_get(all, "split", q, &sa));
    ASSERT_OK(rag_bm25_stats_get(half[0], "split", q, &sh[0]));
    ASSERT_OK(rag_bm25_stats_get(half[1], "split", q, &sh[1]));
    ASSERT_EQ_INT(sa->n_terms, 5);
    ASSERT_EQ_INT(sa->docs, SPLIT_DOCS);
    ASSERT_TRUE(sa->chunks > 2 * sa->docs); /* several chunks per document */
    ASSERT_TRUE(sa->doc_df && sh[0]->doc_df && sh[1]->doc_df);
    ASSERT_EQ_INT(sh[0]->docs + sh[1]->docs, sa->docs);
    ASSERT_EQ_INT(sh[0]->doc_total_len + sh[1]->doc_total_len, sa->doc_total_len);
    ASSERT_TRUE(sa->doc_total_len < sa->total_len); /* chunks overlap */
    uint64_t df[8] = {0}, doc_df[8] = {0};
    const char *terms[8];
    int fewer_docs = 0, counted = 0;
    for (size_t i = 0; i < sa->n_terms; i++) {
        terms[i] = sa->terms[i];
        for (int p = 0; p < 2; p++)
            for (size_t j = 0; j < sh[p]->n_terms; j++)
                if (!strcmp(sh[p]->terms[j], terms[i])) {
                    df[i] += sh[p]->df[j];
                    doc_df[i] += sh[p]->doc_df[j];
                }
        ASSERT_EQ_INT(df[i], sa->df[i]);
        ASSERT_EQ_INT(doc_df[i], sa->doc_df[i]);
        ASSERT_TRUE(sa->doc_df[i] <= sa->df[i]);
        fewer_docs |= sa->doc_df[i] > 0 && sa->doc_df[i] < sa->df[i];
        /* the documents holding the term, counted from the generator (unknownword: 0) */
        uint64_t expect = 0;
        for (int d = 0; d < SPLIT_DOCS; d++) {
            int has = 0;
            for (int w = 0; w < split_words(d, 1); w++)
                has |= !strcmp(split_word(d, w), terms[i]);
            expect += has;
        }
        if (expect > 0 || !strcmp(terms[i], "unknownword")) {
            ASSERT_EQ_INT(sa->doc_df[i], expect);
            counted++;
        }
    }
    ASSERT_TRUE(fewer_docs); /* a term in several chunks of a document counts it once */
    ASSERT_EQ_INT(counted, 5);
    rag_bm25_stats sum = {sh[0]->chunks + sh[1]->chunks, sh[0]->total_len + sh[1]->total_len,
                          sa->n_terms, terms, df, sh[0]->docs + sh[1]->docs,
                          sh[0]->doc_total_len + sh[1]->doc_total_len, doc_df};
    char ids_all[SPLIT_HITS][16], ids[SPLIT_HITS][16], ids_c[SPLIT_HITS][16];
    float sc_all[SPLIT_HITS], sc[SPLIT_HITS], sc_c[SPLIT_HITS];
    /* the store's own statistics given back: exactly its own results */
    int n_all = lexical_scores(all, q, NULL, V, DOC, ids_all, sc_all);
    ASSERT_TRUE(n_all > 10 && n_all <= SPLIT_DOCS); /* each document once */
    ASSERT_TRUE(lexical_scores(all, q, NULL, V, CHUNK, ids, sc) > n_all);
    ASSERT_EQ_INT(lexical_scores(all, q, sa, V, DOC, ids, sc), n_all);
    for (int i = 0; i < n_all; i++)
        ASSERT_TRUE(!strcmp(ids[i], ids_all[i]) && sc[i] == sc_all[i]);
    /* each half with the summed statistics: the whole store's documents, best chunks and
     * scores; with its own statistics, other scores */
    halves_match(half, q, &sum, ids_all, sc_all, n_all);
    /* without the document fields (or through version 2's options, which have none): by
     * chunk, with the given chunk statistics */
    rag_bm25_stats chunk_only = sum;
    chunk_only.doc_df = NULL;
    for (int p = 0; p < 2; p++) {
        int n_c = lexical_scores(half[p], q, &chunk_only, V, CHUNK, ids_c, sc_c);
        ASSERT_TRUE(n_c > 0);
        ASSERT_EQ_INT(lexical_scores(half[p], q, &chunk_only, V, DOC, ids, sc), n_c);
        for (int i = 0; i < n_c; i++)
            ASSERT_TRUE(!strcmp(ids[i], ids_c[i]) && sc[i] == sc_c[i]);
        ASSERT_EQ_INT(lexical_scores(half[p], q, &sum, 2, DOC, ids, sc), n_c);
        for (int i = 0; i < n_c; i++)
            ASSERT_TRUE(!strcmp(ids[i], ids_c[i]) && sc[i] == sc_c[i]);
    }
    rag_bm25_stats_free(sa);
    for (int p = 0; p < 2; p++) {
        rag_bm25_stats_free(sh[p]);
        rag_close(half[p]);
    }
    rag_close(all);
}

/* Six hand-made candidates for rag_select, in ranked order (2-d unit vectors):
 *   0 doc A "alpha"  (1, 0)            1.00
 *   1 doc A "beta"   (0.6, 0.8)        0.90
 *   2 doc B " ALPHA" (0, 1)            0.80   same text key as 0 (case and spacing)
 *   3 doc C "gamma"  (0.995, 0.0999)   0.70   dot 0.995 with 0: a near-duplicate
 *   4 doc D "delta"  (0, 1)            0.65
 *   5 doc E "eps"    (0.8, 0.6)        0.50 */
typedef struct sel_fixture {
    int loads[6];
    int fail_at;                 /* candidate whose load fails, -1: none */
} sel_fixture;

static int sel_load(void *user, size_t i, rag_select_item *item, float *vec)
{
    static const char *docs[] = {"A", "A", "B", "C", "D", "E"};
    static const char *texts[] = {"alpha", "beta", " ALPHA", "gamma", "delta", "eps"};
    static const float v[6][2] = {{1, 0}, {0.6f, 0.8f}, {0, 1}, {0.995f, 0.09987f}, {0, 1},
                                  {0.8f, 0.6f}};
    sel_fixture *f = user;
    f->loads[i]++;
    if ((int)i == f->fail_at)
        return RAG_EIO;
    item->doc_id = docs[i];
    item->text_key = rag_text_key(texts[i], strlen(texts[i]));
    if (vec) {
        vec[0] = v[i][0];
        vec[1] = v[i][1];
        item->has_vector = 1;
    }
    return RAG_OK;
}

/* Runs rag_select over the six candidates with o and checks that it chose want[0, n_want)
 * in that order (label names the case); returns how many candidates it described. */
static int select_expect(const char *label, const rag_search_options *o, const size_t *want,
                         size_t n_want)
{
    static const float scores[6] = {1.0f, 0.9f, 0.8f, 0.7f, 0.65f, 0.5f};
    sel_fixture f = {{0}, -1};
    size_t order[6], n = 99;
    ASSERT_OK(rag_select(o, scores, 6, 2, sel_load, &f, order, &n));
    if (n != n_want || memcmp(order, want, n_want * sizeof *want) != 0)
        TEST_FAIL_("%s: chose %zu candidates, first %zu (want %zu, first %zu)", label, n,
                   n ? order[0] : 99, n_want, want[0]);
    int loads = 0;
    for (int i = 0; i < 6; i++) {
        ASSERT_TRUE(f.loads[i] <= 1); /* each described at most once */
        loads += f.loads[i];
    }
    return loads;
}

static void test_select_by_hand(void)
{
    static const float scores[6] = {1.0f, 0.9f, 0.8f, 0.7f, 0.65f, 0.5f};
    rag_search_options o;
    size_t order[6], n = 99;
    ASSERT_TRUE(rag_text_key("alpha", 5) == rag_text_key(" ALPHA", 6));
    ASSERT_TRUE(rag_text_key("alpha", 5) != rag_text_key("beta", 4));

    /* Ranked, k 3, one chunk per document, default collapse (0.98): 0; 1 is document A's
     * second; 2 has 0's text; 3 is 0.995 similar to 0; then 4 and 5. */
    rag_search_options_init(&o);
    o.k = 3;
    o.per_doc = 1;
    ASSERT_EQ_INT(select_expect("ranked, per_doc 1", &o, (size_t[]){0, 4, 5}, 3), 6);

    /* Ranked, no cap, collapsing off: only the equal text (2) is skipped. k 1 describes
     * only the first candidate (lazy). */
    o.per_doc = 0;
    o.collapse_threshold = 2;
    ASSERT_EQ_INT(select_expect("ranked, no collapsing", &o, (size_t[]){0, 1, 3}, 3), 4);
    o.k = 1;
    ASSERT_EQ_INT(select_expect("ranked, k 1", &o, (size_t[]){0}, 1), 1);

    /* MMR, lambda 0.5, k 3; relevance (s - 0.5) / 0.5 = 1, .8, .6, .4, .3, 0.
     * Round 1: 0 (0.5 x 1). Round 2, against 0: 1 -> .4 - .3 = .1, 2 equal text,
     * 3 -> .2 - .4975, 4 -> .15 - 0 = .15, 5 -> 0 - .4: 4. Round 3, against 0 and 4:
     * 1 -> .4 - .4 = 0, 3 -> .2 - .4975, 5 -> 0 - .4: 1. */
    o.k = 3;
    o.mmr_lambda = 0.5f;
    ASSERT_EQ_INT(select_expect("MMR 0.5", &o, (size_t[]){0, 4, 1}, 3), 6);

    /* The callback's status ends the selection; bad arguments are named. */
    sel_fixture f = {{0}, 3};
    o.mmr_lambda = 0;
    ASSERT_EQ_INT(rag_select(&o, scores, 6, 2, sel_load, &f, order, &n), RAG_EIO);
    ASSERT_EQ_INT(n, 0);
    ASSERT_EQ_INT(rag_select(&o, scores, 6, 2, NULL, &f, order, &n), RAG_EINVAL);
    ASSERT_TRUE(strstr(rag_errmsg(), "required") != NULL);
    o.collapse_threshold = 0;
    ASSERT_EQ_INT(rag_select(&o, scores, 6, 0, sel_load, &f, order, &n), RAG_EINVAL);
    ASSERT_TRUE(strstr(rag_errmsg(), "dimension") != NULL);
    ASSERT_OK(rag_select(NULL, scores, 0, 0, sel_load, &f, order, &n));
    ASSERT_EQ_INT(n, 0);
}

int main(void)
{
    RUN_TEST(test_embedding_cache);
    RUN_TEST(test_neural_chunks_fill_the_model);
    RUN_TEST(test_embedding_cache_bound);
    RUN_TEST(test_basic_search_and_provenance);
    RUN_TEST(test_collections_are_isolated);
    RUN_TEST(test_restrictions);
    RUN_TEST(test_deletes_keep_k_live_hits);
    RUN_TEST(test_replace_document);
    RUN_TEST(test_searches_during_replacements);
    RUN_TEST(test_reopen_replays_and_rebuilds);
    RUN_TEST(test_embedder_identity);
    RUN_TEST(test_other_index_specs);
    RUN_TEST(test_collapse_vectors_from_index_or_store);
    RUN_TEST(test_search_options_by_name);
    RUN_TEST(test_score_per_mode);
    RUN_TEST(test_lexical_unit);
    RUN_TEST(test_bm25_stats_split_stores);
    RUN_TEST(test_bm25_doc_stats_split_stores);
    RUN_TEST(test_select_by_hand);
    return TEST_REPORT();
}
