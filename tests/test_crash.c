/* test_crash.c - crash consistency: a child process ingests batches and is SIGKILLed at
 * random moments; after each kill the store must reopen with every batch the child
 * reported committed fully searchable and no partially stored document or batch. */
#include "test.h"

#include "ragcore.h"

#include <fcntl.h>
#include <signal.h>
#include <stdint.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define DOCS_PER_BATCH 20
#define ITERATIONS 6

static char dir[4096], logpath[4200];

static void doc_text(char *buf, size_t n, int batch, int doc)
{
    snprintf(buf, n,
             "Batch %d document %d opening paragraph talks about apples and pears and more.\n\n"
             "Second paragraph of batch %d doc %d mentions rivers, mountains and valleys far away.\n\n"
             "Third paragraph %d/%d: engines, turbines, generators and other machines in a row.\n\n"
             "Closing words for %d-%d with stars, planets, comets and distant galaxies shining.",
             batch, doc, batch, doc, batch, doc, batch, doc);
}

static rag_open_options child_opts(void)
{
    rag_open_options o;
    rag_open_options_init(&o);
    o.embedder = "hash";
    o.chunk_tokens = 24;
    o.chunk_overlap = 4;
    o.checkpoint_every = 150; /* checkpoints happen while being killed too */
    return o;
}

/* Child: ingest batches forever, appending "batch N" to the log after each commit. */
static void child_main(int first_batch)
{
    rag_open_options o = child_opts();
    rag_db *db = NULL;
    if (rag_open(dir, &o, &db) != RAG_OK) {
        fprintf(stderr, "child open: %s\n", rag_errmsg());
        _exit(3);
    }
    int fd = open(logpath, O_WRONLY | O_APPEND | O_CREAT, 0644);
    for (int b = first_batch;; b++) {
        rag_document docs[DOCS_PER_BATCH];
        char ids[DOCS_PER_BATCH][32], texts[DOCS_PER_BATCH][600];
        for (int i = 0; i < DOCS_PER_BATCH; i++) {
            rag_document_init(&docs[i]);
            snprintf(ids[i], 32, "b%d-d%d", b, i);
            doc_text(texts[i], sizeof texts[i], b, i);
            docs[i].id = ids[i];
            docs[i].text = texts[i];
        }
        if (rag_ingest(db, "crash", docs, DOCS_PER_BATCH, NULL) != RAG_OK) {
            fprintf(stderr, "child ingest: %s\n", rag_errmsg());
            _exit(4);
        }
        char line[32];
        int n = snprintf(line, sizeof line, "batch %d\n", b);
        if (write(fd, line, (size_t)n) != n)
            _exit(5);
        fsync(fd);
    }
}

/* Number of chunks of document `id` (0 when absent). */
static int doc_chunks(rag_db *db, const char *id)
{
    rag_search_options so;
    rag_search_options_init(&so);
    so.collection = "crash";
    so.k = 100;
    const char *ids[1] = {id};
    so.doc_ids = ids;
    so.n_doc_ids = 1;
    rag_results *res = NULL;
    if (rag_search(db, "apples rivers engines stars", &so, &res) != RAG_OK)
        return -1;
    int n = (int)rag_results_count(res);
    rag_results_free(res);
    return n;
}

static int last_logged_batch(void)
{
    FILE *fp = fopen(logpath, "r");
    int last = -1, b;
    if (!fp)
        return -1;
    while (fscanf(fp, "batch %d\n", &b) == 1)
        last = b;
    fclose(fp);
    return last;
}

static void test_sigkill_during_ingest(void)
{
    const char *tmp = getenv("RAGCORE_TEST_TMP");
    snprintf(dir, sizeof dir, "%s/crash_store", tmp ? tmp : "/tmp");
    snprintf(logpath, sizeof logpath, "%s/crash_store.log", tmp ? tmp : "/tmp");
    char cmd[9000];
    snprintf(cmd, sizeof cmd, "rm -rf '%s' '%s'", dir, logpath);
    ASSERT_EQ_INT(system(cmd), 0);
    /* Chunks per document, measured on a reference store with the same options. */
    int expect = 0;
    {
        char ref[4200];
        snprintf(ref, sizeof ref, "%s.ref", dir);
        snprintf(cmd, sizeof cmd, "rm -rf '%s'", ref);
        ASSERT_EQ_INT(system(cmd), 0);
        rag_open_options o = child_opts();
        rag_db *db = NULL;
        ASSERT_OK(rag_open(ref, &o, &db));
        rag_document d;
        char text[600];
        rag_document_init(&d);
        doc_text(text, sizeof text, 1, 1);
        d.id = "b1-d1";
        d.text = text;
        rag_ingest_stats st;
        ASSERT_OK(rag_ingest(db, "crash", &d, 1, &st));
        expect = (int)st.chunks;
        ASSERT_OK(rag_close(db));
    }
    ASSERT_TRUE(expect >= 3);
    srand((unsigned)time(NULL) ^ (unsigned)getpid());
    int next_batch = 0, kills = 0;
    static char committed[100000];
    uint64_t want_docs = 0;
    for (int it = 0; it < ITERATIONS; it++) {
        pid_t pid = fork();
        if (pid == 0)
            child_main(next_batch);
        ASSERT_TRUE(pid > 0);
        /* Let it open (and rebuild) and then kill it at a random moment. */
        usleep(150000 + (useconds_t)(rand() % 900000));
        kill(pid, SIGKILL);
        int status = 0;
        waitpid(pid, &status, 0);
        if (WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL)
            kills++;
        else
            fprintf(stderr, "child exited on its own with status %d\n", status);
        int logged = last_logged_batch();
        rag_open_options o = child_opts();
        rag_db *db = NULL;
        ASSERT_OK(rag_open(dir, &o, &db));
        if (!db)
            return;
        /* Every reported batch is fully there. */
        int missing = 0;
        for (int b = next_batch; b <= logged; b++) {
            committed[b] = 1;
            want_docs += DOCS_PER_BATCH;
        }
        for (int b = 0; b <= logged; b++)
            for (int i = 0; committed[b] && i < DOCS_PER_BATCH; i += 7) {
                char id[32];
                snprintf(id, sizeof id, "b%d-d%d", b, i);
                if (doc_chunks(db, id) != expect)
                    missing++;
            }
        ASSERT_EQ_INT(missing, 0);
        /* The batch in flight is all there or not at all. */
        int inflight = 0, fb = logged >= next_batch ? logged + 1 : next_batch;
        for (int i = 0; i < DOCS_PER_BATCH; i++) {
            char id[32];
            snprintf(id, sizeof id, "b%d-d%d", fb, i);
            int n = doc_chunks(db, id);
            ASSERT_TRUE(n == 0 || n == expect);
            inflight += n == expect;
        }
        ASSERT_TRUE(inflight == 0 || inflight == DOCS_PER_BATCH);
        rag_collection_info ci;
        int have_coll = rag_collection_stats(db, "crash", &ci) == RAG_OK;
        if (inflight) {
            committed[fb] = 1;
            want_docs += DOCS_PER_BATCH;
        }
        if (have_coll) {
            ASSERT_EQ_INT(ci.documents, want_docs);
            ASSERT_EQ_INT(ci.chunks, want_docs * (uint64_t)expect);
            ASSERT_EQ_INT(ci.index_vectors - ci.tombstones, ci.chunks);
        } else {
            ASSERT_EQ_INT(want_docs, 0);
        }
        fprintf(stderr, "iteration %d: batches up to %d logged, in-flight batch %s, %llu documents\n",
                it, logged, inflight ? "committed" : "absent",
                (unsigned long long)want_docs);
        next_batch = fb + 1; /* never reuse the in-flight batch's ids */
        ASSERT_OK(rag_close(db));
    }
    ASSERT_TRUE(kills >= 5);
}

int main(void)
{
    RUN_TEST(test_sigkill_during_ingest);
    return TEST_REPORT();
}
