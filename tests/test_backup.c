/* test_backup.c - backups taken while a writer thread ingests (in-process, and by the
 * `ragcore backup` CLI from another process): each restored store passes the check and
 * holds exactly a prefix of the committed batches, every document whole; an encrypted
 * store's backup from its open handle with the key given in code. */
#include "test.h"

#include "ragcore.h"

#include <pthread.h>
#include <stdatomic.h>
#include <sys/stat.h>
#include <unistd.h>

#define DOCS_PER_BATCH 10
#define MAX_BATCHES 2000

static char base[4096], dbdir[4200];
static atomic_int committed;   /* batches committed so far */
static atomic_int stop;
static atomic_int writer_done; /* the writer thread ended (stopped, failed or all batches) */
static rag_db *db;

static void doc_text(char *buf, size_t n, int b, int d)
{
    snprintf(buf, n,
             "Batch %d document %d begins with apples, pears and plums from the orchard.\n\n"
             "Its second paragraph (%d/%d) describes rivers, valleys and distant mountains.\n\n"
             "A third part of %d-%d lists engines, turbines, pumps and generators at work.",
             b, d, b, d, b, d);
}

static void *writer(void *arg)
{
    (void)arg;
    for (int b = 0; b < MAX_BATCHES && !atomic_load(&stop); b++) {
        rag_document docs[DOCS_PER_BATCH];
        char ids[DOCS_PER_BATCH][32], texts[DOCS_PER_BATCH][512];
        for (int i = 0; i < DOCS_PER_BATCH; i++) {
            rag_document_init(&docs[i]);
            snprintf(ids[i], sizeof ids[i], "b%d-d%d", b, i);
            doc_text(texts[i], sizeof texts[i], b, i);
            docs[i].id = ids[i];
            docs[i].text = texts[i];
        }
        if (rag_ingest(db, NULL, docs, DOCS_PER_BATCH, NULL) != RAG_OK) {
            fprintf(stderr, "writer: %s\n", rag_errmsg());
            break;
        }
        atomic_store(&committed, b + 1);
    }
    atomic_store(&writer_done, 1);
    return NULL;
}

/* Waits until the writer committed `batches` batches; fails when it ended before. */
static void wait_for(int batches)
{
    while (atomic_load(&committed) < batches && !atomic_load(&writer_done))
        usleep(2000);
    ASSERT_TRUE(atomic_load(&committed) >= batches);
}

/* Asserts that a search of `query` restricted to document `want` (mode RAG_MODE_*) finds
 * it: restricted, because these documents differ only in their numbers, and an
 * approximate (HNSW) top-1 among hundreds of near-duplicates is not exact. */
static void assert_finds(rag_db *h, const char *query, int mode, const char *want)
{
    const char *only[1] = {want};
    rag_search_options so;
    rag_search_options_init(&so);
    so.mode = mode;
    so.k = 1;
    so.doc_ids = only;
    so.n_doc_ids = 1;
    rag_results *res = NULL;
    ASSERT_OK(rag_search(h, query, &so, &res));
    ASSERT_TRUE(res && rag_results_count(res) == 1);
    if (res && rag_results_count(res) == 1)
        ASSERT_STR_EQ(rag_results_get(res, 0)->doc_id, want);
    rag_results_free(res);
}

/* Verifies a restored store: check clean, batches [0, P) whole and nothing else, with
 * lo <= P <= hi. Returns P. */
static int verify_restored(const char *dir, int lo, int hi)
{
    rag_check_report *r = NULL;
    ASSERT_OK(rag_check(dir, 0, 0, &r));
    ASSERT_EQ_INT(rag_check_report_count(r, RAG_CHECK_PROBLEM), 0);
    for (size_t i = 0; r && i < rag_check_report_size(r); i++)
        fprintf(stderr, "  %s: %s\n", rag_check_kind_name(rag_check_report_item(r, i)->kind),
                rag_check_report_item(r, i)->message);
    rag_check_report_free(r);

    rag_open_options ro;
    rag_open_options_init(&ro);
    ro.read_only = 1;
    rag_db *vdb = NULL;
    rag_collection_info rec = {0};
    ASSERT_OK(rag_open(dir, &ro, &vdb));
    if (!vdb)
        return -1;
    ASSERT_OK(rag_collection_stats(vdb, "default", &rec));
    int prefix = 0, ended = 0, partial = 0, beyond = 0;
    for (int b = 0; b < hi + 5; b++) {
        int present = 0;
        for (int i = 0; i < DOCS_PER_BATCH; i++) {
            char id[32];
            snprintf(id, sizeof id, "b%d-d%d", b, i);
            rag_doc *d = NULL;
            int rc = rag_document_get(vdb, "default", id, &d);
            if (rc == RAG_OK) {
                present++;
                ASSERT_TRUE(rag_doc_chunk_count(d) >= 1);
                ASSERT_EQ_INT(rag_doc_chunk_count(d), rag_doc_get_info(d)->chunks);
            } else if (rc != RAG_ENOTFOUND) {
                TEST_FAIL_("%s: %s", id, rag_errmsg());
            }
            rag_doc_free(d);
        }
        if (present != 0 && present != DOCS_PER_BATCH)
            partial++;
        if (present == DOCS_PER_BATCH && !ended)
            prefix = b + 1;
        else if (present == 0)
            ended = 1;
        else
            beyond++;
    }
    ASSERT_OK(rag_close(vdb));
    ASSERT_EQ_INT(partial, 0);
    ASSERT_EQ_INT(beyond, 0);
    ASSERT_TRUE(prefix >= lo);
    /* The writer counts a batch only after rag_ingest returns, so the snapshot may hold one
     * committed batch the counter did not show yet. */
    ASSERT_TRUE(prefix <= hi + 1);
    ASSERT_EQ_INT(rec.documents, (uint64_t)prefix * DOCS_PER_BATCH);

    /* The restored store opens (replaying or rebuilding its index) and finds the newest
     * document of the prefix. */
    rag_db *rdb = NULL;
    ASSERT_OK(rag_open(dir, NULL, &rdb));
    if (rdb && prefix > 0) {
        char q[512];
        doc_text(q, sizeof q, prefix - 1, 3);
        char want[32];
        snprintf(want, sizeof want, "b%d-d3", prefix - 1);
        assert_finds(rdb, q, RAG_MODE_DENSE, want);
    }
    rag_close(rdb);
    return prefix;
}

static void rm_rf(const char *dir)
{
    char cmd[4400];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    ASSERT_EQ_INT(system(cmd), 0);
}

static void test_backup_during_ingest(void)
{
    char out1[4300], out2[4300], res1[4300], res2[4300], cmd[9000];
    snprintf(dbdir, sizeof dbdir, "%s/live", base);
    snprintf(out1, sizeof out1, "%s/backup1", base);
    snprintf(out2, sizeof out2, "%s/backup2", base);
    snprintf(res1, sizeof res1, "%s/restored1", base);
    snprintf(res2, sizeof res2, "%s/restored2", base);
    const char *dirs[] = {dbdir, out1, out2, res1, res2};
    for (int i = 0; i < 5; i++)
        rm_rf(dirs[i]);
    rag_open_options o;
    rag_open_options_init(&o);
    o.embedder = "hash";
    o.dim = 64;
    o.chunk_tokens = 24;
    o.chunk_overlap = 4;
    o.checkpoint_every = 300; /* index checkpoints happen while backups run */
    ASSERT_OK(rag_open(dbdir, &o, &db));
    if (!db)
        return;
    pthread_t th;
    pthread_create(&th, NULL, writer, NULL);

    /* 1: in-process backup through the live handle. */
    wait_for(30);
    int lo1 = atomic_load(&committed);
    rag_backup_info info;
    ASSERT_OK(rag_backup(db, out1, &info));
    int hi1 = atomic_load(&committed);
    ASSERT_TRUE(info.bytes > 0);
    fprintf(stderr, "backup 1: batches %d..%d committed around it, %llu docs, %.3f s, "
            "%u index files (%u dropped)\n", lo1, hi1, (unsigned long long)info.documents,
            info.seconds, info.index_files, info.index_dropped);

    /* 2: `ragcore backup` from another process while this one writes. */
    const char *bin = getenv("RAGCORE_BIN");
    int lo2 = -1, hi2 = -1;
    snprintf(cmd, sizeof cmd, "%s/ragcore", bin ? bin : "");
    if (bin && access(cmd, X_OK) == 0) {
        wait_for(hi1 + 20);
        lo2 = atomic_load(&committed);
        snprintf(cmd, sizeof cmd, "'%s/ragcore' backup --db '%s' '%s' >&2", bin, dbdir, out2);
        ASSERT_EQ_INT(system(cmd), 0);
        hi2 = atomic_load(&committed);
        fprintf(stderr, "backup 2 (CLI): batches %d..%d committed around it\n", lo2, hi2);
    } else {
        fprintf(stderr, "SKIP: ragcore CLI not found; CLI backup not tested\n");
    }
    wait_for((hi2 > hi1 ? hi2 : hi1) + 10);
    atomic_store(&stop, 1);
    pthread_join(th, NULL);
    ASSERT_TRUE(atomic_load(&committed) < MAX_BATCHES); /* the backups overlapped ingest */
    ASSERT_OK(rag_close(db));
    db = NULL;

    /* A backup never overwrites. */
    ASSERT_EQ_INT(rag_backup(NULL, out1, NULL), RAG_EINVAL);
    ASSERT_EQ_INT(rag_backup_dir(dbdir, out1, NULL), RAG_EEXIST);
    ASSERT_TRUE(strstr(rag_errmsg(), "not empty") != NULL);

    ASSERT_OK(rag_restore(out1, res1, 0, &info));
    int p1 = verify_restored(res1, lo1, hi1);
    fprintf(stderr, "restored 1: %d whole batches (committed %d..%d)\n", p1, lo1, hi1);
    if (lo2 >= 0) {
        ASSERT_OK(rag_restore(out2, res2, 0, &info));
        int p2 = verify_restored(res2, lo2, hi2);
        fprintf(stderr, "restored 2: %d whole batches (committed %d..%d)\n", p2, lo2, hi2);
        /* Restoring over an existing store needs force; the result is the backup's. */
        ASSERT_EQ_INT(rag_restore(out2, res1, 0, NULL), RAG_EEXIST);
        ASSERT_TRUE(strstr(rag_errmsg(), "--force") != NULL);
        ASSERT_OK(rag_restore(out2, res1, 1, NULL));
        ASSERT_EQ_INT(verify_restored(res1, lo2, hi2), p2);
    }
    /* force never replaces a directory that is not a store. */
    char other[4300], file[4400];
    snprintf(other, sizeof other, "%s/notastore", base);
    rm_rf(other);
    mkdir(other, 0755);
    snprintf(file, sizeof file, "%s/keep.txt", other);
    FILE *f = fopen(file, "w");
    fputs("precious", f);
    fclose(f);
    ASSERT_EQ_INT(rag_restore(out1, other, 1, NULL), RAG_EINVAL);
    ASSERT_EQ_INT(access(file, F_OK), 0);
    ASSERT_EQ_INT(rag_restore(other, res2, 1, NULL), RAG_ENOTFOUND);
}

/* An encrypted store backed up from its open handle with the key given in code (nothing
 * in the environment): without the key or with another one the copy is refused with
 * RAG_EKEY naming the store; the copy holds none of the corpus words (a plain store's
 * copy holds them, so the count can fail), restores with the key and finds a document. */
static void test_encrypted_backup_from_handle(void)
{
    static const char *key = "4f1c0d5e9a7b3c2d1e0f9a8b7c6d5e4f3a2b1c0d9e8f7a6b5c4d3e2f1a0b9c8d";
    static const char *other = "0000000000000000000000000000000000000000000000000000000000000001";
    static const char *words[] = {"orchard", "turbines", "generators", "mountains"};
    char enc[4300], plain[4300], bk[4300], pbk[4300], res[4300], bad[4300];
    snprintf(enc, sizeof enc, "%s/enc", base);
    snprintf(plain, sizeof plain, "%s/plain", base);
    snprintf(bk, sizeof bk, "%s/enc-backup", base);
    snprintf(pbk, sizeof pbk, "%s/plain-backup", base);
    snprintf(res, sizeof res, "%s/enc-restored", base);
    snprintf(bad, sizeof bad, "%s/enc-badkey", base);
    const char *dirs[] = {enc, plain, bk, pbk, res, bad};
    for (int i = 0; i < 6; i++)
        rm_rf(dirs[i]);
    unsetenv("RAGCORE_STORE_KEY");

    rag_document docs[4];
    char ids[4][16], texts[4][512];
    for (int i = 0; i < 4; i++) {
        rag_document_init(&docs[i]);
        snprintf(ids[i], sizeof ids[i], "e%d", i);
        doc_text(texts[i], sizeof texts[i], 7, i);
        docs[i].id = ids[i];
        docs[i].text = texts[i];
    }
    rag_open_options o;
    rag_open_options_init(&o);
    o.embedder = "hash";
    o.dim = 64;
    rag_db *p = NULL, *e = NULL;
    ASSERT_OK(rag_open(plain, &o, &p));
    o.store_key = key;
    ASSERT_OK(rag_open(enc, &o, &e));
    if (!p || !e) {
        rag_close(p);
        rag_close(e);
        return;
    }
    ASSERT_OK(rag_ingest(p, NULL, docs, 4, NULL));
    ASSERT_OK(rag_ingest(e, NULL, docs, 4, NULL));
    ASSERT_OK(rag_backup(p, pbk, NULL));

    /* No key anywhere, then another key: RAG_EKEY naming the store, no directory left. */
    ASSERT_EQ_INT(rag_backup(e, bad, NULL), RAG_EKEY);
    ASSERT_TRUE(strstr(rag_errmsg(), enc) != NULL);
    rag_backup_options bo;
    rag_backup_options_init(&bo);
    bo.store_key = other;
    ASSERT_EQ_INT(rag_backup_with(e, bad, &bo, NULL), RAG_EKEY);
    ASSERT_TRUE(strstr(rag_errmsg(), enc) != NULL);
    ASSERT_TRUE(strstr(rag_errmsg(), "wrong key") != NULL);
    ASSERT_TRUE(access(bad, F_OK) != 0);
    rag_backup_options zero = {0};
    ASSERT_EQ_INT(rag_backup_with(e, bad, &zero, NULL), RAG_EINVAL);

    rag_backup_info info;
    bo.store_key = key;
    ASSERT_OK(rag_backup_with(e, bk, &bo, &info));
    ASSERT_EQ_INT(info.documents, 4);
    ASSERT_OK(rag_close(e));
    ASSERT_OK(rag_close(p));
    for (size_t i = 0; i < sizeof words / sizeof *words; i++) {
        ASSERT_TRUE(test_count_in_tree(pbk, words[i]) > 0);
        ASSERT_EQ_INT(test_count_in_tree(bk, words[i]), 0);
    }

    ASSERT_EQ_INT(rag_restore(bk, res, 0, NULL), RAG_EKEY);
    ASSERT_EQ_INT(rag_restore_keyed(bk, res, 0, other, NULL, NULL), RAG_EKEY);
    ASSERT_TRUE(strstr(rag_errmsg(), bk) != NULL);
    ASSERT_TRUE(access(res, F_OK) != 0);
    ASSERT_OK(rag_restore_keyed(bk, res, 0, key, NULL, &info));
    ASSERT_EQ_INT(info.documents, 4);
    rag_open_options ro;
    rag_open_options_init(&ro);
    ro.read_only = 1;
    ro.store_key = key;
    rag_db *r = NULL;
    ASSERT_OK(rag_open(res, &ro, &r));
    if (!r)
        return;
    assert_finds(r, "orchard turbines", RAG_MODE_LEXICAL, "e2");
    ASSERT_OK(rag_close(r));
}

int main(void)
{
    const char *tmp = getenv("RAGCORE_TEST_TMP");
    snprintf(base, sizeof base, "%s/backup", tmp ? tmp : "/tmp");
    mkdir(base, 0755);
    RUN_TEST(test_backup_during_ingest);
    RUN_TEST(test_encrypted_backup_from_handle);
    return TEST_REPORT();
}
