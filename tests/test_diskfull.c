/* test_diskfull.c - a store on a small tmpfs (8 MiB) is filled until ingest fails: the
 * failure is a clean RAG_EFULL naming the cause, committed documents stay whole and
 * searchable, the previous index checkpoint is kept, the store reopens and passes the
 * check, and it accepts writes again once space is available. Needs root (mount); skips
 * with a message otherwise. */
#include "test.h"

#include "ragcore.h"

#include <dirent.h>
#include <errno.h>
#include <stdint.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>

#define DOCS_PER_BATCH 5
#define MAX_BATCHES 5000
#define DIM 256

static char mnt[4096], dir[4200];
static int mounted;

static rag_open_options opts(void)
{
    rag_open_options o;
    rag_open_options_init(&o);
    o.embedder = "hash";
    o.dim = DIM;
    o.chunk_tokens = 32;
    o.chunk_overlap = 4;
    o.checkpoint_every = 200;
    o.index_spec = "Flat";
    return o;
}

static int ingest_batch(rag_db *db, int b)
{
    rag_document docs[DOCS_PER_BATCH];
    char ids[DOCS_PER_BATCH][32], texts[DOCS_PER_BATCH][1200];
    for (int i = 0; i < DOCS_PER_BATCH; i++) {
        rag_document_init(&docs[i]);
        snprintf(ids[i], sizeof ids[i], "b%d-d%d", b, i);
        snprintf(texts[i], sizeof texts[i],
                 "Batch %d document %d: orchards of apples %d and pears, rivers %d, valleys.\n\n"
                 "Engines %d and turbines turn while generators hum beside pumps %d/%d.\n\n"
                 "Stars, planets and comets %d drift through galaxies far from batch %d.\n\n"
                 "Closing notes %d-%d mention storms, clouds, winds and summer rain.",
                 b, i, b * 3 + i, b + i * 11, b, i, b, b * 7 + i, b, b, i);
        docs[i].id = ids[i];
        docs[i].text = texts[i];
    }
    return rag_ingest(db, NULL, docs, DOCS_PER_BATCH, NULL);
}

/* Digest (FNV-1a) of the index file of collection cid, 0 when there is none: a checkpoint
 * that is kept leaves it unchanged, a new one changes it. */
static uint64_t index_digest(uint32_t cid)
{
    char path[4400];
    snprintf(path, sizeof path, "%s/index/%u.idx", dir, cid);
    FILE *f = fopen(path, "rb");
    if (!f)
        return 0;
    uint64_t h = 1469598103934665603ull;
    int c;
    while ((c = getc(f)) != EOF)
        h = (h ^ (unsigned char)c) * 1099511628211ull;
    fclose(f);
    return h;
}

static int tmp_files(void)
{
    char path[4400];
    snprintf(path, sizeof path, "%s/index", dir);
    DIR *d = opendir(path);
    int n = 0;
    struct dirent *e;
    while (d && (e = readdir(d)))
        n += strstr(e->d_name, ".tmp") != NULL;
    if (d)
        closedir(d);
    return n;
}

/* Documents of batch b present whole (every chunk the record lists). */
static int batch_present(rag_db *db, int b)
{
    int n = 0;
    for (int i = 0; i < DOCS_PER_BATCH; i++) {
        char id[32];
        rag_doc *d = NULL;
        snprintf(id, sizeof id, "b%d-d%d", b, i);
        if (rag_document_get(db, NULL, id, &d) == RAG_OK &&
            rag_doc_chunk_count(d) == rag_doc_get_info(d)->chunks && rag_doc_chunk_count(d) > 0)
            n++;
        rag_doc_free(d);
    }
    return n;
}

static void test_disk_full(void)
{
    if (!mounted) {
        fprintf(stderr, "SKIP test_disk_full: cannot mount a tmpfs at %s (%s); run as root to "
                "test disk-full behaviour\n", mnt, strerror(errno));
        return;
    }
    /* A small initial map: the map also grows (doubling and retrying) on the way. */
    setenv("RAGCORE_INITIAL_MAP_SIZE", "262144", 1);
    rag_open_options o = opts();
    rag_db *db = NULL;
    ASSERT_OK(rag_open(dir, &o, &db));
    if (!db)
        return;
    int b, rc = RAG_OK;
    const uint32_t cid = 1; /* the first collection of a fresh store */
    uint64_t digest_before = 0;
    for (b = 0; b < MAX_BATCHES; b++)
        if ((rc = ingest_batch(db, b)) != RAG_OK)
            break;
    int committed = b;
    fprintf(stderr, "disk full after %d batches (%d documents): rc %d (%s): %s\n", committed,
            committed * DOCS_PER_BATCH, rc, rag_strerror(rc), rag_errmsg());
    ASSERT_TRUE(committed > 10);
    ASSERT_TRUE(committed < MAX_BATCHES);
    ASSERT_EQ_INT(rc, RAG_EFULL);
    ASSERT_TRUE(strstr(rag_errmsg(), "no space left") != NULL);
    digest_before = index_digest(cid);
    ASSERT_TRUE(digest_before != 0); /* an automatic checkpoint was written before */

    /* Further writes fail the same clean way; searches keep working. */
    ASSERT_EQ_INT(ingest_batch(db, committed), RAG_EFULL);
    rag_search_options so;
    rag_search_options_init(&so);
    so.mode = RAG_MODE_DENSE;
    so.k = 3;
    rag_results *res = NULL;
    ASSERT_OK(rag_search(db, "Batch 3 document 2: orchards of apples", &so, &res));
    ASSERT_TRUE(res && rag_results_count(res) == 3);
    rag_results_free(res);

    /* A checkpoint that cannot be written keeps the previous file, leaving no temporary. */
    int crc = rag_checkpoint(db);
    fprintf(stderr, "checkpoint on a full disk: rc %d: %s\n", crc, rag_errmsg());
    ASSERT_TRUE(crc == RAG_OK || crc == RAG_EFULL || crc == RAG_EIO);
    uint64_t digest_after = index_digest(cid);
    ASSERT_TRUE(digest_after != 0);
    if (crc != RAG_OK)
        ASSERT_TRUE(digest_after == digest_before);
    ASSERT_EQ_INT(tmp_files(), 0);
    rag_close(db);

    /* Reopen: consistent, every committed batch whole, the failed one absent. */
    rag_check_report *r = NULL;
    ASSERT_OK(rag_check(dir, 0, 0, &r));
    ASSERT_EQ_INT(rag_check_report_count(r, RAG_CHECK_PROBLEM), 0);
    for (size_t i = 0; r && i < rag_check_report_size(r); i++)
        fprintf(stderr, "  %s: %s\n", rag_check_kind_name(rag_check_report_item(r, i)->kind),
                rag_check_report_item(r, i)->message);
    rag_check_report_free(r);
    rag_open_options ro = opts();
    ro.embedder = NULL;
    ro.read_only = 1;
    ASSERT_OK(rag_open(dir, &ro, &db));
    if (!db)
        return;
    int whole = 0;
    for (int k = 0; k <= committed; k++) {
        int n = batch_present(db, k);
        if (k < committed)
            whole += n == DOCS_PER_BATCH;
        else
            ASSERT_EQ_INT(n, 0);
    }
    ASSERT_EQ_INT(whole, committed);
    ASSERT_OK(rag_close(db));

    /* With more space the same store takes writes again and checkpoints. */
    ASSERT_EQ_INT(mount("tmpfs", mnt, "tmpfs", MS_REMOUNT, "size=64m"), 0);
    o.embedder = NULL; /* the store's own ("hash-256") */
    ASSERT_OK(rag_open(dir, &o, &db));
    if (!db)
        return;
    for (int k = 0; k < 5; k++)
        ASSERT_OK(ingest_batch(db, committed + k));
    ASSERT_EQ_INT(batch_present(db, committed + 4), DOCS_PER_BATCH);
    ASSERT_OK(rag_close(db));
    ASSERT_TRUE(index_digest(cid) != digest_before && index_digest(cid) != 0);
    ASSERT_OK(rag_check(dir, 0, 0, &r));
    ASSERT_EQ_INT(rag_check_report_count(r, RAG_CHECK_PROBLEM), 0);
    rag_check_report_free(r);
    unsetenv("RAGCORE_INITIAL_MAP_SIZE");
}

int main(void)
{
    const char *tmp = getenv("RAGCORE_TEST_TMP");
    char base[3000];
    snprintf(base, sizeof base, "%s/diskfull", tmp ? tmp : "/tmp");
    mkdir(base, 0755);
    snprintf(mnt, sizeof mnt, "%s/mnt", base);
    mkdir(mnt, 0755);
    umount2(mnt, MNT_DETACH); /* left over from an interrupted run */
    mounted = mount("tmpfs", mnt, "tmpfs", 0, "size=8m") == 0;
    snprintf(dir, sizeof dir, "%s/store", mnt);
    RUN_TEST(test_disk_full);
    if (mounted)
        umount2(mnt, MNT_DETACH);
    return TEST_REPORT();
}
