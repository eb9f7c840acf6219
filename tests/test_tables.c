/* test_tables.c - application tables through the public API: put/get/del/scan/trim in key
 * order, size bounds with shrink, read-only handles, persistence, and the refusal of the
 * library's own table names and of bad names and keys. */
#include "test.h"

#include "ragcore.h"

#include <stdint.h>

static char dir[4096];

static rag_db *open_store(int read_only)
{
    rag_open_options o;
    rag_open_options_init(&o);
    o.embedder = "hash";
    o.read_only = read_only;
    rag_db *db = NULL;
    ASSERT_OK(rag_open(dir, &o, &db));
    return db;
}

typedef struct collect {
    char keys[64][16];
    int n;
    int stop_after;             /* > 0: return 7 after this many entries */
} collect;

static int collect_visit(void *user, const void *k, size_t kl, const void *v, size_t vl)
{
    collect *c = user;
    if (c->n < 64 && kl < 16) {
        memcpy(c->keys[c->n], k, kl);
        c->keys[c->n][kl] = 0;
    }
    c->n++;
    return c->stop_after && c->n >= c->stop_after ? 7 : 0;
}

static void test_put_get_scan_trim(void)
{
    test_fresh_dir(dir, sizeof dir, "tables_basic");
    rag_db *db = open_store(0);
    if (!db)
        return;
    void *v = NULL;
    size_t vl = 99;
    /* a table that was never written: empty, not an error */
    ASSERT_EQ_INT(rag_table_get(db, "app.notes", "a", 1, &v, &vl), RAG_ENOTFOUND);
    ASSERT_TRUE(v == NULL);
    ASSERT_EQ_INT(vl, 0);
    collect c = {0};
    ASSERT_OK(rag_table_scan(db, "app.notes", NULL, 0, collect_visit, &c));
    ASSERT_EQ_INT(c.n, 0);
    uint64_t bytes = 1, deleted = 1;
    ASSERT_OK(rag_table_bytes(db, "app.notes", &bytes));
    ASSERT_EQ_INT(bytes, 0);
    ASSERT_OK(rag_table_trim(db, "app.notes", "z", 1, &deleted));
    ASSERT_EQ_INT(deleted, 0);
    ASSERT_EQ_INT(rag_table_del(db, "app.notes", "a", 1), RAG_ENOTFOUND);

    for (int i = 9; i >= 0; i--) {
        char k[8], val[16];
        snprintf(k, sizeof k, "k%02d", i);
        snprintf(val, sizeof val, "value %d", i);
        ASSERT_OK(rag_table_put(db, "app.notes", k, 3, val, strlen(val)));
    }
    ASSERT_OK(rag_table_put(db, "app.notes", "k03", 3, "replaced", 8));
    ASSERT_OK(rag_table_put(db, "app.notes", "empty", 5, NULL, 0));
    ASSERT_OK(rag_table_get(db, "app.notes", "k03", 3, &v, &vl));
    ASSERT_EQ_INT(vl, 8);
    ASSERT_STR_EQ((const char *)v, "replaced"); /* NUL-terminated copy */
    rag_free(v);
    ASSERT_OK(rag_table_get(db, "app.notes", "empty", 5, &v, &vl));
    ASSERT_EQ_INT(vl, 0);
    rag_free(v);
    /* another table is another key space */
    ASSERT_EQ_INT(rag_table_get(db, "other", "k03", 3, &v, &vl), RAG_ENOTFOUND);

    /* scans run in key order from the start key and stop when asked */
    memset(&c, 0, sizeof c);
    ASSERT_OK(rag_table_scan(db, "app.notes", "k05", 3, collect_visit, &c));
    ASSERT_EQ_INT(c.n, 5);
    ASSERT_STR_EQ(c.keys[0], "k05");
    ASSERT_STR_EQ(c.keys[4], "k09");
    memset(&c, 0, sizeof c);
    c.stop_after = 2;
    ASSERT_EQ_INT(rag_table_scan(db, "app.notes", NULL, 0, collect_visit, &c), 7);
    ASSERT_EQ_INT(c.n, 2);
    ASSERT_STR_EQ(c.keys[0], "empty");
    ASSERT_STR_EQ(c.keys[1], "k00");

    ASSERT_OK(rag_table_del(db, "app.notes", "k09", 3));
    ASSERT_EQ_INT(rag_table_del(db, "app.notes", "k09", 3), RAG_ENOTFOUND);
    /* trim: every key below the end goes ("empty" < "k" too) */
    ASSERT_OK(rag_table_trim(db, "app.notes", "k04", 3, &deleted));
    ASSERT_EQ_INT(deleted, 5);
    memset(&c, 0, sizeof c);
    ASSERT_OK(rag_table_scan(db, "app.notes", NULL, 0, collect_visit, &c));
    ASSERT_EQ_INT(c.n, 5);
    ASSERT_STR_EQ(c.keys[0], "k04");
    ASSERT_OK(rag_table_bytes(db, "app.notes", &bytes));
    ASSERT_TRUE(bytes > 0);
    ASSERT_OK(rag_close(db));

    /* the data persists; a read-only handle reads it and refuses writes */
    db = open_store(1);
    if (!db)
        return;
    ASSERT_OK(rag_table_get(db, "app.notes", "k08", 3, &v, &vl));
    ASSERT_STR_EQ((const char *)v, "value 8");
    rag_free(v);
    ASSERT_EQ_INT(rag_table_put(db, "app.notes", "x", 1, "y", 1), RAG_EREADONLY);
    ASSERT_EQ_INT(rag_table_put(db, "brand-new", "x", 1, "y", 1), RAG_EREADONLY);
    ASSERT_EQ_INT(rag_table_trim(db, "app.notes", "k09", 3, NULL), RAG_EREADONLY);
    ASSERT_EQ_INT(rag_table_get(db, "brand-new", "x", 1, &v, &vl), RAG_ENOTFOUND);
    ASSERT_OK(rag_close(db));
}

/* Names of the library's own tables, malformed names and keys are refused. */
static void test_refusals(void)
{
    test_fresh_dir(dir, sizeof dir, "tables_refusals");
    rag_db *db = open_store(0);
    if (!db)
        return;
    const char *library[] = {"embcache", "embcache_fifo", "config", "sources", "sync", "misc",
                             "lex_postings", "lex_chunks", "lex_stats", "lex_new",
                             "dedup_hashes"};
    void *v = NULL;
    size_t vl = 0;
    collect c = {0};
    uint64_t n = 0;
    for (size_t i = 0; i < sizeof library / sizeof *library; i++) {
        ASSERT_EQ_INT(rag_table_put(db, library[i], "k", 1, "v", 1), RAG_EINVAL);
        ASSERT_TRUE(strstr(rag_errmsg(), "reserved") != NULL);
        ASSERT_EQ_INT(rag_table_get(db, library[i], "k", 1, &v, &vl), RAG_EINVAL);
        ASSERT_EQ_INT(rag_table_scan(db, library[i], NULL, 0, collect_visit, &c), RAG_EINVAL);
        ASSERT_EQ_INT(rag_table_del(db, library[i], "k", 1), RAG_EINVAL);
        ASSERT_EQ_INT(rag_table_trim(db, library[i], "k", 1, &n), RAG_EINVAL);
        ASSERT_EQ_INT(rag_table_bytes(db, library[i], &n), RAG_EINVAL);
        ASSERT_EQ_INT(rag_table_shrink(db, library[i], 0, 0, 1, &n, NULL), RAG_EINVAL);
    }
    /* the library's tables are untouched: its config table still works for the store */
    ASSERT_EQ_INT(c.n, 0);
    ASSERT_EQ_INT(rag_table_put(db, "", "k", 1, "v", 1), RAG_EINVAL);
    ASSERT_EQ_INT(rag_table_put(db, "a/b", "k", 1, "v", 1), RAG_EINVAL);
    ASSERT_TRUE(strstr(rag_errmsg(), "byte 1") != NULL);
    ASSERT_EQ_INT(rag_table_put(db, "abcdefghijklmnopqrstuvwxyz0123456", "k", 1, "v", 1),
                  RAG_EINVAL); /* 33 bytes */
    ASSERT_OK(rag_table_put(db, "abcdefghijklmnopqrstuvwxyz012345", "k", 1, "v", 1));
    ASSERT_EQ_INT(rag_table_put(db, NULL, "k", 1, "v", 1), RAG_EINVAL);
    ASSERT_EQ_INT(rag_table_put(NULL, "t", "k", 1, "v", 1), RAG_EINVAL);
    char big[512];
    memset(big, 'k', sizeof big);
    ASSERT_EQ_INT(rag_table_put(db, "t", big, 512, "v", 1), RAG_EINVAL);
    ASSERT_OK(rag_table_put(db, "t", big, 511, "v", 1));
    ASSERT_EQ_INT(rag_table_put(db, "t", "", 0, "v", 1), RAG_EINVAL);
    ASSERT_EQ_INT(rag_table_put(db, "t", NULL, 3, "v", 1), RAG_EINVAL);
    ASSERT_EQ_INT(rag_table_put(db, "t", "k", 1, NULL, 3), RAG_EINVAL);
    ASSERT_EQ_INT(rag_table_get(db, "t", "k", 1, NULL, &vl), RAG_EINVAL);
    ASSERT_EQ_INT(rag_table_scan(db, "t", NULL, 0, NULL, NULL), RAG_EINVAL);
    /* at most 16 application tables besides "keys" and "querylog" (two made above) */
    int made = 2, full = 0;
    for (int i = 0; i < 20; i++) {
        char name[16];
        snprintf(name, sizeof name, "t%02d", i);
        int rc = rag_table_put(db, name, "k", 1, "v", 1);
        if (rc == RAG_OK)
            made++;
        else if (rc == RAG_EFULL)
            full++;
    }
    ASSERT_EQ_INT(made, 16);
    ASSERT_EQ_INT(full, 6);
    ASSERT_OK(rag_table_put(db, "keys", "k", 1, "v", 1));
    ASSERT_OK(rag_table_put(db, "querylog", "k", 1, "v", 1));
    /* the store itself still works */
    rag_document d;
    rag_document_init(&d);
    d.id = "doc";
    d.text = "The store still ingests after all this.";
    ASSERT_OK(rag_ingest(db, NULL, &d, 1, NULL));
    ASSERT_OK(rag_close(db));
}

/* rag_table_shrink bounds a log: the oldest keys go first, at most max_delete per call,
 * down to the target; a table within the bound is left alone. 40 entries of 20 kB
 * (overflow pages) make about 860 kB. */
static void test_table_shrink(void)
{
    test_fresh_dir(dir, sizeof dir, "tables_shrink");
    rag_db *db = open_store(0);
    if (!db)
        return;
    static char val[20000];
    uint64_t bytes = 0, after = 0, got = 0;
    ASSERT_OK(rag_table_bytes(db, "querylog", &bytes));
    ASSERT_EQ_INT(bytes, 0); /* never written */
    for (int i = 0; i < 40; i++) {
        char key[8];
        snprintf(key, sizeof key, "k%02d", i);
        memset(val, 'a' + i % 26, sizeof val);
        ASSERT_OK(rag_table_put(db, "querylog", key, 3, val, sizeof val));
    }
    ASSERT_OK(rag_table_bytes(db, "querylog", &bytes));
    ASSERT_TRUE(bytes >= 40 * sizeof val && bytes < 40 * (sizeof val + 8192));
    /* within the bound: nothing deleted, the size reported */
    ASSERT_OK(rag_table_shrink(db, "querylog", bytes, 0, 100, &got, &after));
    ASSERT_EQ_INT(got, 0);
    ASSERT_EQ_INT(after, bytes);
    /* past it: at most 5 per call, the lowest keys first */
    ASSERT_OK(rag_table_shrink(db, "querylog", 400000, 300000, 5, &got, &after));
    ASSERT_EQ_INT(got, 5);
    ASSERT_TRUE(after < bytes && after > 300000);
    void *v = NULL;
    size_t vl = 0;
    ASSERT_EQ_INT(rag_table_get(db, "querylog", "k04", 3, &v, &vl), RAG_ENOTFOUND);
    ASSERT_OK(rag_table_get(db, "querylog", "k05", 3, &v, &vl));
    rag_free(v);
    uint64_t total = 5;
    /* continued with the target as the bound, as the limit cut the first call short */
    int rc;
    while ((rc = rag_table_shrink(db, "querylog", 300000, 300000, 5, &got, &after)) == RAG_OK &&
           got == 5)
        total += got;
    ASSERT_OK(rc);
    total += got;
    if (!(after <= 300000 && after > 200000)) /* stops at the target */
        TEST_FAIL_("%llu bytes after %llu deleted", (unsigned long long)after,
                   (unsigned long long)total);
    ASSERT_OK(rag_table_bytes(db, "querylog", &bytes));
    ASSERT_EQ_INT(bytes, after);
    char oldest[32];
    snprintf(oldest, sizeof oldest, "k%02llu", (unsigned long long)total - 1);
    ASSERT_EQ_INT(rag_table_get(db, "querylog", oldest, 3, &v, &vl), RAG_ENOTFOUND);
    snprintf(oldest, sizeof oldest, "k%02llu", (unsigned long long)total);
    ASSERT_OK(rag_table_get(db, "querylog", oldest, 3, &v, &vl));
    ASSERT_EQ_INT(vl, sizeof val);
    rag_free(v);
    ASSERT_OK(rag_table_get(db, "querylog", "k39", 3, &v, &vl));
    rag_free(v);
    /* NULL outputs are allowed */
    ASSERT_OK(rag_table_shrink(db, "querylog", 0, 0, 1, NULL, NULL));
    ASSERT_OK(rag_close(db));
}

/* Application tables share the store's backups: a restored copy holds them. */
static void test_backup_keeps_tables(void)
{
    test_fresh_dir(dir, sizeof dir, "tables_backup");
    char out[4200], restored[4200];
    snprintf(out, sizeof out, "%s.bak", dir);
    snprintf(restored, sizeof restored, "%s.restored", dir);
    char cmd[9000];
    snprintf(cmd, sizeof cmd, "rm -rf '%s' '%s'", out, restored);
    ASSERT_EQ_INT(system(cmd), 0);
    rag_db *db = open_store(0);
    if (!db)
        return;
    ASSERT_OK(rag_table_put(db, "app.notes", "n1", 2, "first note", 10));
    ASSERT_OK(rag_table_put(db, "keys", "k1", 2, "{\"scope\":\"read\"}", 16));
    ASSERT_OK(rag_backup(db, out, NULL));
    ASSERT_OK(rag_close(db));
    ASSERT_OK(rag_restore(out, restored, 0, NULL));
    rag_open_options o;
    rag_open_options_init(&o);
    o.read_only = 1;
    ASSERT_OK(rag_open(restored, &o, &db));
    if (!db)
        return;
    void *v = NULL;
    size_t vl = 0;
    ASSERT_OK(rag_table_get(db, "app.notes", "n1", 2, &v, &vl));
    ASSERT_STR_EQ((const char *)v, "first note");
    rag_free(v);
    ASSERT_OK(rag_table_get(db, "keys", "k1", 2, &v, &vl));
    ASSERT_EQ_INT(vl, 16);
    rag_free(v);
    ASSERT_OK(rag_close(db));
}

int main(void)
{
    RUN_TEST(test_put_get_scan_trim);
    RUN_TEST(test_refusals);
    RUN_TEST(test_table_shrink);
    RUN_TEST(test_backup_keeps_tables);
    return TEST_REPORT();
}
