/* test_freshness.c - sync (unchanged skipped, changed replaced, vanished deleted), atomic
 * replacement seen by concurrent searches and across SIGKILL, TTL expiry and gc, max_age,
 * recency decay ordering, freshness reports. */
#include "test.h"

#include "ragcore.h"

#include <pthread.h>
#include <stdatomic.h>
#include <signal.h>
#include <stdint.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static char dir[4096];

static void fresh_dir(const char *name)
{
    test_fresh_dir(dir, sizeof dir, name);
}

static rag_db *open_hash(int chunk_tokens)
{
    rag_open_options o;
    rag_open_options_init(&o);
    o.embedder = "hash";
    if (chunk_tokens) {
        o.chunk_tokens = chunk_tokens;
        o.chunk_overlap = 2;
    }
    rag_db *db = NULL;
    ASSERT_OK(rag_open(dir, &o, &db));
    return db;
}

/* A document of several chunks whose every chunk names its version. */
static void versioned_text(char *buf, size_t n, int doc, int version)
{
    snprintf(buf, n,
             "Doc %d version %d alpha. Alpha words for version %d here.\n\n"
             "Doc %d version %d beta. Beta words for version %d here.\n\n"
             "Doc %d version %d gamma. Gamma words for version %d here.",
             doc, version, version, doc, version, version, doc, version, version);
}

/* Chunks of document `id`: count, and how many mention "version <v>". */
static int doc_chunks(rag_db *db, const char *id, int v, int *with_v)
{
    rag_search_options so;
    rag_search_options_init(&so);
    so.k = 50;
    so.mode = RAG_MODE_DENSE;
    const char *ids[1] = {id};
    so.doc_ids = ids;
    so.n_doc_ids = 1;
    rag_results *res = NULL;
    if (rag_search(db, "words", &so, &res) != RAG_OK)
        return -1;
    char needle[32];
    snprintf(needle, sizeof needle, "version %d ", v);
    int n = (int)rag_results_count(res);
    *with_v = 0;
    for (int i = 0; i < n; i++)
        *with_v += strstr(rag_results_get(res, (size_t)i)->text, needle) != NULL;
    rag_results_free(res);
    return n;
}

static void offer(rag_sync *s, int doc, int version, int64_t mtime, rag_sync_outcome want)
{
    char id[32], text[512], src[64];
    snprintf(id, sizeof id, "d%d", doc);
    snprintf(src, sizeof src, "/src/d%d.txt", doc);
    versioned_text(text, sizeof text, doc, version);
    rag_document d;
    rag_document_init(&d);
    d.id = id;
    d.text = text;
    d.source = src;
    d.source_mtime = mtime;
    rag_sync_outcome got = 0;
    ASSERT_OK(rag_sync_document(s, &d, &got));
    ASSERT_EQ_INT(got, want);
}

static void test_sync_outcomes(void)
{
    fresh_dir("fresh_sync");
    rag_db *db = open_hash(16);
    rag_sync *s = NULL;
    rag_sync_stats st;
    ASSERT_OK(rag_sync_begin(db, NULL, &s));
    for (int i = 0; i < 5; i++)
        offer(s, i, 1, 1000, RAG_SYNC_ADDED);
    const char *prefix[] = {"/src"};
    ASSERT_OK(rag_sync_finish(s, prefix, 1, &st));
    rag_sync_free(s);
    ASSERT_EQ_INT(st.added, 5);
    int chunks_per_doc = (int)(st.chunks / 5);
    ASSERT_TRUE(chunks_per_doc >= 2);
    /* Second pass: d0 unchanged, d1 touched (new mtime, same text), d2 modified, d3 gone,
     * d4 renamed to d5. */
    ASSERT_OK(rag_sync_begin(db, NULL, &s));
    offer(s, 0, 1, 1000, RAG_SYNC_UNCHANGED);
    offer(s, 1, 1, 2000, RAG_SYNC_UNCHANGED);
    offer(s, 2, 2, 2000, RAG_SYNC_UPDATED);
    offer(s, 5, 1, 1000, RAG_SYNC_ADDED);
    ASSERT_OK(rag_sync_finish(s, prefix, 1, &st));
    rag_sync_free(s);
    ASSERT_EQ_INT(st.unchanged, 2);
    ASSERT_EQ_INT(st.updated, 1);
    ASSERT_EQ_INT(st.added, 1);
    ASSERT_EQ_INT(st.deleted, 2);
    ASSERT_EQ_INT(st.chunks, 2 * chunks_per_doc);
    int with = 0;
    ASSERT_EQ_INT(doc_chunks(db, "d0", 1, &with), chunks_per_doc);
    ASSERT_EQ_INT(with, chunks_per_doc);
    ASSERT_EQ_INT(doc_chunks(db, "d2", 2, &with), chunks_per_doc);
    ASSERT_EQ_INT(with, chunks_per_doc); /* every chunk of d2 is the new version */
    ASSERT_EQ_INT(doc_chunks(db, "d3", 1, &with), 0);
    ASSERT_EQ_INT(doc_chunks(db, "d4", 1, &with), 0);
    ASSERT_EQ_INT(doc_chunks(db, "d5", 1, &with), chunks_per_doc);
    rag_collection_info ci;
    ASSERT_OK(rag_collection_stats(db, RAG_DEFAULT_COLLECTION, &ci));
    ASSERT_EQ_INT(ci.documents, 4);
    ASSERT_EQ_INT(ci.chunks, 4 * chunks_per_doc);
    /* Documents outside the synced prefix are left alone. */
    rag_document other;
    rag_document_init(&other);
    other.id = "elsewhere";
    other.text = "kept";
    other.source = "/srcx/kept.txt";
    ASSERT_OK(rag_ingest(db, NULL, &other, 1, NULL));
    ASSERT_OK(rag_sync_begin(db, NULL, &s));
    ASSERT_OK(rag_sync_finish(s, prefix, 1, &st));
    rag_sync_free(s);
    ASSERT_EQ_INT(st.deleted, 4);
    ASSERT_OK(rag_collection_stats(db, RAG_DEFAULT_COLLECTION, &ci));
    ASSERT_EQ_INT(ci.documents, 1);
    rag_freshness_info fi;
    ASSERT_OK(rag_collection_freshness(db, RAG_DEFAULT_COLLECTION, 60, 0, &fi));
    ASSERT_TRUE(fi.last_sync > 0 && fi.sync_lag >= 0 && fi.sync_lag < 60);
    ASSERT_EQ_INT(fi.documents, 1);
    ASSERT_OK(rag_close(db));
}

/* ---- concurrent searches during a sync see whole versions only ---- */

typedef struct watcher {
    rag_db *db;
    int docs;
    atomic_int stop;
    long checks, bad;
    int expect;
} watcher;

static void *watch_main(void *arg)
{
    watcher *w = arg;
    while (!atomic_load(&w->stop)) {
        for (int d = 0; d < w->docs && !atomic_load(&w->stop); d += 3) {
            char id[32];
            snprintf(id, sizeof id, "d%d", d);
            int v1 = 0, v2 = 0;
            int n = doc_chunks(w->db, id, 1, &v1);
            int n2 = doc_chunks(w->db, id, 2, &v2); /* a second snapshot: counts only */
            (void)n2;
            w->checks++;
            /* all chunks of one version, never a mix, never missing, never duplicated */
            if (n != w->expect || (v1 != 0 && v1 != n))
                w->bad++;
        }
    }
    return NULL;
}

static void test_searches_during_sync(void)
{
    fresh_dir("fresh_concurrent");
    rag_db *db = open_hash(16);
    enum { DOCS = 60 };
    rag_sync *s = NULL;
    const char *prefix[] = {"/src"};
    ASSERT_OK(rag_sync_begin(db, NULL, &s));
    for (int i = 0; i < DOCS; i++)
        offer(s, i, 1, 1000, RAG_SYNC_ADDED);
    rag_sync_stats st;
    ASSERT_OK(rag_sync_finish(s, prefix, 1, &st));
    rag_sync_free(s);
    watcher w = {db, DOCS, 0, 0, 0, (int)(st.chunks / DOCS)};
    pthread_t th;
    pthread_create(&th, NULL, watch_main, &w);
    for (int round = 2; round <= 6; round++) {
        ASSERT_OK(rag_sync_begin(db, NULL, &s));
        for (int i = 0; i < DOCS; i++)
            offer(s, i, round % 2 ? 1 : 2, 1000 + round, RAG_SYNC_UPDATED);
        ASSERT_OK(rag_sync_finish(s, prefix, 1, &st));
        rag_sync_free(s);
    }
    atomic_store(&w.stop, 1);
    pthread_join(th, NULL);
    fprintf(stderr, "concurrent checks: %ld, inconsistent: %ld\n", w.checks, w.bad);
    ASSERT_TRUE(w.checks > 0);
    ASSERT_EQ_INT(w.bad, 0);
    ASSERT_OK(rag_close(db));
}

/* ---- SIGKILL during a sync: every document is old or new, never a mix ---- */

static void test_kill_during_sync(void)
{
    fresh_dir("fresh_kill");
    enum { DOCS = 400 };
    const char *prefix[] = {"/src"};
    rag_db *db = open_hash(16);
    rag_sync *s = NULL;
    rag_sync_stats st;
    ASSERT_OK(rag_sync_begin(db, NULL, &s));
    for (int i = 0; i < DOCS; i++)
        offer(s, i, 1, 1000, RAG_SYNC_ADDED);
    ASSERT_OK(rag_sync_finish(s, prefix, 1, &st));
    rag_sync_free(s);
    int per = (int)(st.chunks / DOCS);
    ASSERT_OK(rag_close(db));
    srand((unsigned)time(NULL));
    for (int it = 0; it < 3; it++) {
        pid_t pid = fork();
        if (pid == 0) {
            rag_db *cdb = open_hash(16);
            rag_sync *cs = NULL;
            if (!cdb || rag_sync_begin(cdb, NULL, &cs) != RAG_OK)
                _exit(3);
            for (int i = 0; i < DOCS; i++) {
                char id[32], text[512], src[64];
                snprintf(id, sizeof id, "d%d", i);
                snprintf(src, sizeof src, "/src/d%d.txt", i);
                versioned_text(text, sizeof text, i, it % 2 ? 1 : 2);
                rag_document d;
                rag_document_init(&d);
                d.id = id;
                d.text = text;
                d.source = src;
                d.source_mtime = 5000 + it;
                if (rag_sync_document(cs, &d, NULL) != RAG_OK)
                    _exit(4);
            }
            rag_sync_finish(cs, prefix, 1, NULL);
            _exit(0);
        }
        usleep(100000 + (useconds_t)(rand() % 600000));
        kill(pid, SIGKILL);
        waitpid(pid, NULL, 0);
        db = open_hash(16);
        int mixed = 0, missing = 0, v1docs = 0;
        for (int i = 0; i < DOCS; i++) {
            char id[32];
            snprintf(id, sizeof id, "d%d", i);
            int with = 0;
            int n = doc_chunks(db, id, 1, &with);
            if (n != per)
                missing++;
            else if (with != 0 && with != n)
                mixed++;
            v1docs += with == n;
        }
        fprintf(stderr, "kill %d: %d documents at version 1, %d mixed, %d missing\n", it, v1docs,
                mixed, missing);
        ASSERT_EQ_INT(mixed, 0);
        ASSERT_EQ_INT(missing, 0);
        ASSERT_OK(rag_close(db));
    }
}

/* ---- TTL, gc, max_age, recency ---- */

static void test_ttl_and_gc(void)
{
    fresh_dir("fresh_ttl");
    rag_db *db = open_hash(0);
    int64_t now = (int64_t)time(NULL);
    rag_document d[3];
    for (int i = 0; i < 3; i++)
        rag_document_init(&d[i]);
    d[0].id = "past";
    d[0].text = "expired lighthouse keeper notes";
    d[0].valid_until = now - 10;
    d[1].id = "future";
    d[1].text = "future lighthouse keeper notes";
    d[1].ttl_seconds = 3600;
    d[2].id = "forever";
    d[2].text = "permanent lighthouse keeper notes";
    ASSERT_OK(rag_ingest(db, NULL, d, 3, NULL));
    rag_search_options so;
    rag_search_options_init(&so);
    rag_results *res = NULL;
    ASSERT_OK(rag_search(db, "lighthouse keeper notes", &so, &res));
    ASSERT_EQ_INT(rag_results_count(res), 2); /* the expired one is never returned */
    for (size_t i = 0; i < rag_results_count(res); i++) {
        ASSERT_TRUE(strcmp(rag_results_get(res, i)->doc_id, "past") != 0);
        if (!strcmp(rag_results_get(res, i)->doc_id, "future"))
            ASSERT_TRUE(rag_results_get(res, i)->valid_until >= now + 3599);
    }
    rag_results_free(res);
    /* In two hours the TTL one has expired as well. */
    so.now = now + 7200;
    ASSERT_OK(rag_search(db, "lighthouse keeper notes", &so, &res));
    ASSERT_EQ_INT(rag_results_count(res), 1);
    ASSERT_STR_EQ(rag_results_get(res, 0)->doc_id, "forever");
    rag_results_free(res);
    rag_freshness_info fi;
    ASSERT_OK(rag_collection_freshness(db, RAG_DEFAULT_COLLECTION, 0, 0, &fi));
    ASSERT_EQ_INT(fi.expired, 1);
    uint64_t purged = 0;
    ASSERT_OK(rag_gc(db, NULL, 0, &purged));
    ASSERT_EQ_INT(purged, 1);
    ASSERT_OK(rag_gc(db, NULL, now + 7200, &purged));
    ASSERT_EQ_INT(purged, 1);
    rag_collection_info ci;
    ASSERT_OK(rag_collection_stats(db, RAG_DEFAULT_COLLECTION, &ci));
    ASSERT_EQ_INT(ci.documents, 1);
    /* A collection default TTL applies to later documents. */
    ASSERT_OK(rag_collection_set_ttl(db, RAG_DEFAULT_COLLECTION, 60));
    rag_document e;
    rag_document_init(&e);
    e.id = "short-lived";
    e.text = "short lived lighthouse";
    ASSERT_OK(rag_ingest(db, NULL, &e, 1, NULL));
    so.now = now + 120;
    ASSERT_OK(rag_search(db, "short lived lighthouse", &so, &res));
    for (size_t i = 0; i < rag_results_count(res); i++)
        ASSERT_TRUE(strcmp(rag_results_get(res, i)->doc_id, "short-lived") != 0);
    rag_results_free(res);
    ASSERT_EQ_INT(rag_collection_set_ttl(db, RAG_DEFAULT_COLLECTION, -1), RAG_EINVAL);
    ASSERT_OK(rag_close(db));
}

static void test_background_gc(void)
{
    fresh_dir("fresh_bggc");
    rag_open_options o;
    rag_open_options_init(&o);
    o.embedder = "hash";
    o.gc_interval = 1;
    rag_db *db = NULL;
    ASSERT_OK(rag_open(dir, &o, &db));
    rag_document d;
    rag_document_init(&d);
    d.id = "soon";
    d.text = "soon gone";
    d.ttl_seconds = 1;
    ASSERT_OK(rag_ingest(db, NULL, &d, 1, NULL));
    rag_collection_info ci;
    int gone = 0;
    for (int i = 0; i < 50 && !gone; i++) {
        usleep(100000);
        ASSERT_OK(rag_collection_stats(db, RAG_DEFAULT_COLLECTION, &ci));
        gone = ci.documents == 0;
    }
    ASSERT_TRUE(gone);
    ASSERT_OK(rag_close(db));
}

static void test_age_and_recency(void)
{
    fresh_dir("fresh_recency");
    rag_db *db = open_hash(0);
    int64_t now = 1800000000;
    rag_document d[3];
    const char *ids[] = {"old", "mid", "new"};
    int64_t mt[] = {now - 400 * 86400, now - 40 * 86400, now - 86400};
    for (int i = 0; i < 3; i++) {
        rag_document_init(&d[i]);
        d[i].id = ids[i];
        d[i].text = "quarterly revenue report for the widget division";
        d[i].source_mtime = mt[i];
    }
    /* Different ids, same text: relevance ties, recency decides. */
    ASSERT_OK(rag_ingest(db, NULL, d, 3, NULL));
    rag_search_options so;
    rag_search_options_init(&so);
    so.now = now;
    so.collapse_threshold = 2.0f; /* keep the identical texts apart for this test */
    so.half_life = 30 * 86400;
    so.mode = RAG_MODE_LEXICAL;
    rag_results *res = NULL;
    ASSERT_OK(rag_search(db, "quarterly revenue report", &so, &res));
    /* identical texts: the hash-collapse keeps only the newest-scored one */
    ASSERT_TRUE(rag_results_count(res) >= 1);
    ASSERT_STR_EQ(rag_results_get(res, 0)->doc_id, "new");
    rag_results_free(res);
    so.half_life = 0;
    so.max_age = 100 * 86400;
    so.mode = RAG_MODE_DENSE;
    so.k = 10;
    ASSERT_OK(rag_search(db, "quarterly revenue report", &so, &res));
    for (size_t i = 0; i < rag_results_count(res); i++)
        ASSERT_TRUE(strcmp(rag_results_get(res, i)->doc_id, "old") != 0);
    rag_results_free(res);
    ASSERT_OK(rag_close(db));
}

static void test_recency_order_distinct_texts(void)
{
    fresh_dir("fresh_recency2");
    rag_db *db = open_hash(0);
    int64_t now = 1800000000;
    rag_document d[3];
    const char *ids[] = {"old", "mid", "new"};
    const char *texts[] = {"release notes of the compiler version one",
                           "release notes of the compiler version two",
                           "release notes of the compiler version three"};
    int64_t mt[] = {now - 400 * 86400, now - 40 * 86400, now - 86400};
    for (int i = 0; i < 3; i++) {
        rag_document_init(&d[i]);
        d[i].id = ids[i];
        d[i].text = texts[i];
        d[i].source_mtime = mt[i];
    }
    ASSERT_OK(rag_ingest(db, NULL, d, 3, NULL));
    rag_search_options so;
    rag_search_options_init(&so);
    so.now = now;
    so.half_life = 7 * 86400;
    so.recency_weight = 0.9f;
    rag_results *res = NULL;
    ASSERT_OK(rag_search(db, "compiler release notes", &so, &res));
    ASSERT_EQ_INT(rag_results_count(res), 3);
    ASSERT_STR_EQ(rag_results_get(res, 0)->doc_id, "new");
    ASSERT_STR_EQ(rag_results_get(res, 1)->doc_id, "mid");
    ASSERT_STR_EQ(rag_results_get(res, 2)->doc_id, "old");
    rag_results_free(res);
    so.recency_weight = 2;
    ASSERT_EQ_INT(rag_search(db, "x", &so, &res), RAG_EINVAL);
    ASSERT_OK(rag_close(db));
}

int main(void)
{
    RUN_TEST(test_sync_outcomes);
    RUN_TEST(test_searches_during_sync);
    RUN_TEST(test_kill_during_sync);
    RUN_TEST(test_ttl_and_gc);
    RUN_TEST(test_background_gc);
    RUN_TEST(test_age_and_recency);
    RUN_TEST(test_recency_order_distinct_texts);
    return TEST_REPORT();
}
