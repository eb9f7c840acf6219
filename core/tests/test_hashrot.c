/* test_hashrot.c - replacing an encrypted store's hash key (rag_rekey_opts with
 * rotate_hash_key): lexical and hybrid results are the same before and after, the old
 * keyed hash of a corpus word is in no byte of data.mdb after it (and was before), the
 * chunk-hash counts and the duplicate index work under the new key, and a pending
 * rotation refuses lexical searches and is redone by the next read-write open. */
#include "crypt.h"
#include "db.h"
#include "ragcore.h"
#include "store.h"
#include "test.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static char dir[4096];

#define NDOCS 120
#define WORD "zorbulax" /* a corpus word the English stemmer leaves as it is */
static const char *const KEY1 = "a passphrase for the hash rotation test";
static const char *const KEY2 = "another passphrase for the hash rotation test";

/* 1 when the n bytes of `want` occur in data.mdb, 0 when not, -1 when it cannot be read. */
static int file_has(const unsigned char *want, size_t n)
{
    char path[4200];
    snprintf(path, sizeof path, "%s/data.mdb", dir);
    FILE *f = fopen(path, "rb");
    if (!f)
        return -1;
    fseek(f, 0, SEEK_END);
    long len = ftell(f);
    fseek(f, 0, SEEK_SET);
    unsigned char *buf = malloc((size_t)len);
    int found = -1;
    if (buf && fread(buf, 1, (size_t)len, f) == (size_t)len)
        found = memmem(buf, (size_t)len, want, n) != NULL;
    free(buf);
    fclose(f);
    return found;
}

static rag_db *open_db(const char *key, int read_only)
{
    rag_open_options o;
    rag_open_options_init(&o);
    o.embedder = "hash";
    o.store_key = key;
    o.read_only = read_only;
    rag_db *db = NULL;
    ASSERT_OK(rag_open(dir, &o, &db));
    return db;
}

/* The ids and scores of the top 10 for a few queries in lexical and hybrid mode, as text. */
static void results(rag_db *db, char *out, size_t cap)
{
    static const char *const queries[] = {"topic 3 " WORD, "document about topic",
                                          "marmalade 7"};
    size_t used = 0;
    out[0] = 0;
    for (int mode = 0; mode < 2; mode++) {
        for (size_t q = 0; q < sizeof queries / sizeof queries[0]; q++) {
            rag_search_options so;
            rag_search_options_init(&so);
            so.mode = mode ? RAG_MODE_HYBRID : RAG_MODE_LEXICAL;
            so.k = 10;
            rag_results *res = NULL;
            ASSERT_OK(rag_search(db, queries[q], &so, &res));
            for (size_t i = 0; res && i < rag_results_count(res) && used + 64 < cap; i++) {
                const rag_hit *h = rag_results_get(res, i);
                used += (size_t)snprintf(out + used, cap - used, "%d %zu %llu %.6f\n", mode, q,
                                         (unsigned long long)h->chunk_id, (double)h->score);
            }
            rag_results_free(res);
        }
    }
}

/* The term's keyed hash under the store's current hash key, as keys hold it. */
static size_t term_hash(rag_db *db, unsigned char out[RAG_CRYPT_TERM_MAX])
{
    return rag_crypt_term(rag_store_crypt(db->st), WORD, strlen(WORD), out);
}

/* NDOCS documents in the default collection, then exact-duplicate skipping switched on
 * (which indexes them in the duplicate index). */
static void fill(rag_db *db)
{
    static rag_document docs[NDOCS];
    static char ids[NDOCS][16], texts[NDOCS][96];
    for (int i = 0; i < NDOCS; i++) {
        rag_document_init(&docs[i]);
        snprintf(ids[i], sizeof ids[i], "doc%d", i);
        snprintf(texts[i], sizeof texts[i], "document %d about topic %d%s marmalade %d", i,
                 i % 17, i % 5 ? "" : " " WORD, i % 9);
        docs[i].id = ids[i];
        docs[i].text = texts[i];
    }
    ASSERT_OK(rag_ingest(db, NULL, docs, NDOCS, NULL));
    rag_collection_options co;
    rag_collection_options_init(&co);
    co.dedup = RAG_DEDUP_SKIP;
    ASSERT_OK(rag_collection_configure(db, RAG_DEFAULT_COLLECTION, &co));
}

/* A fresh filled store `name` under KEY1, open read-write, with its results in before. */
static rag_db *setup(const char *name, char *before, size_t cap)
{
    test_fresh_dir(dir, sizeof dir, name);
    rag_db *db = open_db(KEY1, 0);
    fill(db);
    results(db, before, cap);
    ASSERT_TRUE(strlen(before) > 100);
    return db;
}

static void test_rotation(void)
{
    static char before[16384], after[16384];
    rag_db *db = setup("hashrot_rotate", before, sizeof before);
    unsigned char old[RAG_CRYPT_TERM_MAX], now[RAG_CRYPT_TERM_MAX];
    size_t n = term_hash(db, old);
    ASSERT_OK(rag_checkpoint(db));
    ASSERT_EQ_INT(file_has(old, n), 1); /* the search below can fail */

    rag_rekey_options ro = {KEY2, NULL, 1};
    ASSERT_OK(rag_rekey_opts(db, &ro));
    ASSERT_TRUE(term_hash(db, now) == n && memcmp(old, now, n) != 0);
    results(db, after, sizeof after);
    ASSERT_STR_EQ(after, before);
    ASSERT_OK(rag_close(db));
    ASSERT_EQ_INT(file_has(old, n), 0);
    ASSERT_EQ_INT(file_has(now, n), 1);

    /* reopened with the new key: same results; the chunk-hash counts and the duplicate
     * index find copies under the new hash key */
    db = open_db(KEY2, 0);
    results(db, after, sizeof after);
    ASSERT_STR_EQ(after, before);
    rag_document copy;
    rag_document_init(&copy);
    copy.id = "copy";
    copy.text = "document 7 about topic 7 marmalade 7";
    rag_ingest_stats stats;
    ASSERT_OK(rag_ingest(db, NULL, &copy, 1, &stats));
    ASSERT_EQ_INT(stats.documents, 0); /* skipped: an exact duplicate of doc7 */
    rag_collection_options co;
    rag_collection_options_init(&co);
    ASSERT_OK(rag_collection_configure(db, RAG_DEFAULT_COLLECTION, &co)); /* dedup off */
    ASSERT_OK(rag_ingest(db, NULL, &copy, 1, &stats));
    ASSERT_EQ_INT(stats.documents, 1);
    ASSERT_EQ_INT(stats.duplicate_chunks, 1); /* its chunk text is counted already */
    ASSERT_OK(rag_close(db));
}

/* A rotation marked but not done (as a kill right after its first transaction leaves it):
 * a read-only open refuses lexical searches, the next read-write open redoes it. */
static void test_resume(void)
{
    static char before[16384], after[16384];
    rag_db *db = setup("hashrot_resume", before, sizeof before);
    pthread_mutex_lock(&db->write_lock);
    ASSERT_OK(rag_store_hashkey_begin(db->st));
    pthread_mutex_unlock(&db->write_lock);
    ASSERT_EQ_INT(rag_store_hashkey_pending(db->st), 1);
    ASSERT_OK(rag_close(db));

    db = open_db(KEY1, 1);
    rag_search_options so;
    rag_search_options_init(&so);
    so.mode = RAG_MODE_LEXICAL;
    rag_results *res = NULL;
    ASSERT_EQ_INT(rag_search(db, "topic", &so, &res), RAG_EBUSY);
    ASSERT_TRUE(strstr(rag_errmsg(), "hash key is being replaced") != NULL);
    rag_results_free(res);
    ASSERT_OK(rag_close(db));

    db = open_db(KEY1, 0);
    ASSERT_EQ_INT(rag_store_hashkey_pending(db->st), 0);
    results(db, after, sizeof after);
    ASSERT_STR_EQ(after, before);
    ASSERT_OK(rag_close(db));
}

static void test_plain_refused(void)
{
    test_fresh_dir(dir, sizeof dir, "hashrot_plain");
    rag_db *db = open_db(NULL, 0);
    rag_rekey_options ro = {KEY2, NULL, 1};
    ASSERT_EQ_INT(rag_rekey_opts(db, &ro), RAG_EINVAL);
    ASSERT_EQ_INT(rag_rekey_opts(db, NULL), RAG_EINVAL);
    ASSERT_OK(rag_close(db));
}

int main(void)
{
    RUN_TEST(test_rotation);
    RUN_TEST(test_resume);
    RUN_TEST(test_plain_refused);
    return TEST_REPORT();
}
