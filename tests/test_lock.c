/* test_lock.c - one writer per store: a second writer (another handle of this process or
 * another process) is refused at open with RAG_EBUSY naming the holder; the lock dies with
 * its holder; a repair and a restore take it too; read-only handles work beside the writer
 * and see what it commits after they opened; a failed create leaves the directory as it
 * was. */
#include "test.h"

#include "ragcore.h"

#include <dirent.h>
#include <errno.h>
#include <signal.h>
#include <stdint.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

static char dir[4096];

static rag_open_options writer_opts(void)
{
    rag_open_options o;
    rag_open_options_init(&o);
    o.embedder = "hash";
    o.checkpoint_every = -1; /* index files are written at close only */
    return o;
}

static rag_open_options reader_opts(void)
{
    rag_open_options o;
    rag_open_options_init(&o);
    o.read_only = 1;
    return o;
}

static void put(rag_db *db, const char *coll, const char *id, const char *text)
{
    rag_document d;
    rag_document_init(&d);
    d.id = id;
    d.text = text;
    ASSERT_OK(rag_ingest(db, coll, &d, 1, NULL));
}

/* A store with collection "docs" (doc "a" about apples and 30 fillers, so that a k = 1
 * dense search is answered by the index alone) and collection "gone" (doc "g1"). */
static void make_store(const char *name)
{
    test_fresh_dir(dir, sizeof dir, name);
    rag_open_options o = writer_opts();
    rag_db *db = NULL;
    ASSERT_OK(rag_open(dir, &o, &db));
    put(db, "docs", "a", "Apples are crisp red orchard apples picked in autumn.");
    for (int i = 0; i < 30; i++) {
        char id[16], text[160];
        snprintf(id, sizeof id, "f%02d", i);
        snprintf(text, sizeof text, "Filler number %d about granite quarries, tax law and "
                 "railway timetables in region %d.", i, i * 7);
        put(db, "docs", id, text);
    }
    put(db, "gone", "g1", "The first generation of this collection talks about ferries.");
    ASSERT_OK(rag_close(db));
}

/* Whether the message names the holder as the lock module words it. */
static int names_holder(const char *msg, long pid)
{
    char want[128];
    snprintf(want, sizeof want, "is open for writing by pid %ld (test_lock)", pid);
    return strstr(msg, want) != NULL && strstr(msg, dir) != NULL;
}

static void test_two_handles_one_process(void)
{
    make_store("lock_handles");
    rag_open_options o = writer_opts();
    rag_db *a = NULL, *b = NULL;
    ASSERT_OK(rag_open(dir, &o, &a));
    ASSERT_EQ_INT(rag_open(dir, &o, &b), RAG_EBUSY);
    ASSERT_TRUE(b == NULL);
    ASSERT_TRUE(names_holder(rag_errmsg(), (long)getpid()));
    ASSERT_TRUE(strstr(rag_errmsg(), "another handle of this process") != NULL);
    ASSERT_STR_EQ(rag_strerror(RAG_EBUSY), "store is in use by another writer");
    put(a, "docs", "n1", "Written by the one writer.");
    ASSERT_OK(rag_close(a));
    ASSERT_OK(rag_open(dir, &o, &b)); /* released by close */
    rag_collection_info ci;
    ASSERT_OK(rag_collection_stats(b, "docs", &ci));
    ASSERT_EQ_INT(ci.documents, 32);
    ASSERT_EQ_INT(ci.index_vectors, ci.chunks);
    ASSERT_OK(rag_close(b));
}

/* Child of a fork: opens the store for writing, writes one byte to `ready`, then waits to
 * be killed. Exits 1 when it could not open. */
static void hold_writer(int ready)
{
    rag_open_options o = writer_opts();
    rag_db *db = NULL;
    if (rag_open(dir, &o, &db) != RAG_OK) {
        fprintf(stderr, "child: %s\n", rag_errmsg());
        _exit(1);
    }
    if (write(ready, "w", 1) != 1)
        _exit(1);
    for (;;)
        pause();
}

static void test_other_process_and_kill9(void)
{
    make_store("lock_procs");
    int p[2];
    ASSERT_TRUE(pipe(p) == 0);
    pid_t child = fork();
    if (child == 0) {
        close(p[0]);
        hold_writer(p[1]);
    }
    close(p[1]);
    char c = 0;
    ASSERT_EQ_INT(read(p[0], &c, 1), 1);
    close(p[0]);
    rag_open_options o = writer_opts(), ro = reader_opts();
    rag_db *db = NULL;
    ASSERT_EQ_INT(rag_open(dir, &o, &db), RAG_EBUSY);
    ASSERT_TRUE(names_holder(rag_errmsg(), (long)child));
    /* A repair and a restore into the store are writers too; a plain check is not. */
    rag_check_report *rep = NULL;
    ASSERT_OK(rag_check(dir, 0, 0, &rep));
    ASSERT_EQ_INT(rag_check_report_count(rep, RAG_CHECK_PROBLEM), 0);
    rag_check_report_free(rep);
    rep = NULL;
    ASSERT_EQ_INT(rag_check(dir, RAG_CHECK_REPAIR, 0, &rep), RAG_EBUSY);
    ASSERT_TRUE(rep == NULL && names_holder(rag_errmsg(), (long)child));
    char bak[4200];
    test_fresh_dir(bak, sizeof bak, "lock_procs.bak");
    ASSERT_OK(rag_backup_dir(dir, bak, NULL));
    ASSERT_EQ_INT(rag_restore(bak, dir, 1, NULL), RAG_EBUSY);
    ASSERT_TRUE(names_holder(rag_errmsg(), (long)child));
    rag_db *r = NULL;
    ASSERT_OK(rag_open(dir, &ro, &r));
    ASSERT_OK(rag_close(r));
    /* The kernel releases the lock of a killed holder: the next writer opens at once. */
    kill(child, SIGKILL);
    int status = 0;
    ASSERT_EQ_INT(waitpid(child, &status, 0), child);
    ASSERT_TRUE(WIFSIGNALED(status));
    ASSERT_OK(rag_open(dir, &o, &db));
    ASSERT_EQ_INT(rag_check(dir, RAG_CHECK_REPAIR, 0, &rep), RAG_EBUSY);
    ASSERT_TRUE(names_holder(rag_errmsg(), (long)getpid()));
    ASSERT_OK(rag_close(db));
    ASSERT_OK(rag_check(dir, RAG_CHECK_REPAIR, 0, &rep));
    rag_check_report_free(rep);
    ASSERT_OK(rag_restore(bak, dir, 1, NULL));
}

/* A writer in another process while this one writes: refused, never a second writer. */
static void test_second_process_refused(void)
{
    make_store("lock_second");
    rag_open_options o = writer_opts();
    rag_db *db = NULL;
    ASSERT_OK(rag_open(dir, &o, &db));
    pid_t child = fork();
    if (child == 0) {
        rag_db *other = NULL;
        int rc = rag_open(dir, &o, &other);
        _exit(rc == RAG_EBUSY && names_holder(rag_errmsg(), (long)getppid()) ? 0 : 1);
    }
    int status = 0;
    ASSERT_EQ_INT(waitpid(child, &status, 0), child);
    ASSERT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    put(db, "docs", "n1", "Only one writer: this commit and its index stay consistent.");
    ASSERT_OK(rag_close(db));
    rag_check_report *rep = NULL;
    ASSERT_OK(rag_check(dir, 0, 0, &rep));
    ASSERT_EQ_INT(rag_check_report_count(rep, RAG_CHECK_PROBLEM), 0);
    rag_check_report_free(rep);
}

/* Searches `coll` in `mode` with k hits (a failure is a test failure); returns whether a
 * hit is document `id`; sets *deleted when a hit is document "a" (deleted by the writer). */
static int finds(rag_db *db, const char *coll, rag_mode mode, int k, const char *q,
                 const char *id, int *deleted)
{
    rag_search_options so;
    rag_search_options_init(&so);
    so.collection = coll;
    so.mode = mode;
    so.k = k;
    rag_results *res = NULL;
    int rc = rag_search(db, q, &so, &res), found = 0;
    if (rc != RAG_OK) {
        TEST_FAIL_("search '%s' in %s (mode %d): %s", q, coll, (int)mode, rag_errmsg());
        return 0;
    }
    for (size_t i = 0; i < rag_results_count(res); i++) {
        const char *d = rag_results_get(res, i)->doc_id;
        found |= strcmp(d, id) == 0;
        *deleted |= strcmp(d, "a") == 0;
    }
    rag_results_free(res);
    return found;
}

/* Child of test_readonly_sees_writer: opened read-only before the writer's changes, it
 * must see all of them. Exits with its number of failures. */
static void reader_child(int ready, int go)
{
    rag_open_options ro = reader_opts();
    rag_db *db = NULL;
    char c = 0;
    ASSERT_OK(rag_open(dir, &ro, &db));
    int deleted = 0;
    ASSERT_TRUE(finds(db, "docs", RAG_MODE_DENSE, 1, "crisp red orchard apples", "a", &deleted));
    ASSERT_TRUE(finds(db, "gone", RAG_MODE_HYBRID, 5, "ferries", "g1", &deleted));
    if (write(ready, "r", 1) != 1 || read(go, &c, 1) != 1)
        _exit(100);
    /* The writer added "b" to docs, deleted "a", created "fresh" with "c", dropped "gone"
     * and created it again with "g2" - all after this handle opened, none checkpointed. */
    const char *qb = "yellow bananas ripen on tropical banana plants";
    deleted = 0;
    ASSERT_TRUE(finds(db, "docs", RAG_MODE_DENSE, 1, qb, "b", &deleted));
    ASSERT_TRUE(finds(db, "docs", RAG_MODE_LEXICAL, 1, qb, "b", &deleted));
    ASSERT_TRUE(finds(db, "docs", RAG_MODE_HYBRID, 1, qb, "b", &deleted));
    const char *qa = "crisp red orchard apples picked in autumn";
    for (int mode = RAG_MODE_HYBRID; mode <= RAG_MODE_LEXICAL; mode++)
        for (int k = 1; k <= 40; k += 39)
            finds(db, "docs", (rag_mode)mode, k, qa, "a", &deleted);
    ASSERT_EQ_INT(deleted, 0);
    const char *qc = "lighthouse keepers log the tides";
    ASSERT_TRUE(finds(db, "fresh", RAG_MODE_DENSE, 1, qc, "c", &deleted));
    ASSERT_TRUE(finds(db, "fresh", RAG_MODE_LEXICAL, 1, qc, "c", &deleted));
    ASSERT_TRUE(finds(db, "fresh", RAG_MODE_HYBRID, 1, qc, "c", &deleted));
    int old = 0;
    ASSERT_TRUE(finds(db, "gone", RAG_MODE_HYBRID, 5, "ferries generation", "g2", &deleted));
    ASSERT_TRUE(!finds(db, "gone", RAG_MODE_HYBRID, 5, "ferries generation", "g1", &old));
    rag_collection_info ci;
    ASSERT_OK(rag_collection_stats(db, "docs", &ci));
    ASSERT_EQ_INT(ci.documents, 31);
    ASSERT_OK(rag_collection_stats(db, "fresh", &ci));
    ASSERT_EQ_INT(ci.documents, 1);
    ASSERT_EQ_INT(ci.index_vectors, 1);
    ASSERT_OK(rag_close(db));
    _exit(test_failures_ > 99 ? 99 : test_failures_);
}

static void test_readonly_sees_writer(void)
{
    make_store("lock_reader");
    int ready[2], go[2];
    ASSERT_TRUE(pipe(ready) == 0 && pipe(go) == 0);
    pid_t child = fork();
    if (child == 0) {
        close(ready[0]);
        close(go[1]);
        reader_child(ready[1], go[0]);
    }
    close(ready[1]);
    close(go[0]);
    char c = 0;
    ASSERT_EQ_INT(read(ready[0], &c, 1), 1);
    rag_open_options o = writer_opts();
    rag_db *db = NULL;
    ASSERT_OK(rag_open(dir, &o, &db));
    put(db, "docs", "b", "Yellow bananas ripen on tropical banana plants in bunches.");
    ASSERT_OK(rag_delete(db, "docs", "a"));
    put(db, "fresh", "c", "Lighthouse keepers log the tides and the passing ships.");
    ASSERT_OK(rag_collection_drop(db, "gone"));
    put(db, "gone", "g2", "The second generation of this collection also mentions ferries.");
    ASSERT_EQ_INT(write(go[1], "g", 1), 1);
    int status = 0;
    ASSERT_EQ_INT(waitpid(child, &status, 0), child);
    ASSERT_TRUE(WIFEXITED(status));
    if (WIFEXITED(status) && WEXITSTATUS(status) != 0)
        TEST_FAIL_("the read-only child failed %d checks (see above)", WEXITSTATUS(status));
    ASSERT_OK(rag_close(db));
    close(ready[0]);
    close(go[1]);
}

/* Number of entries in directory d (-1 when it does not exist). */
static int entries(const char *d)
{
    DIR *h = opendir(d);
    if (!h)
        return -1;
    int n = 0;
    struct dirent *e;
    while ((e = readdir(h)))
        n += strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0;
    closedir(h);
    return n;
}

static void test_failed_create_leaves_dir(void)
{
    rag_open_options o = writer_opts();
    rag_db *db = NULL;
    /* A directory that did not exist does not exist afterwards. */
    test_fresh_dir(dir, sizeof dir, "lock_create");
    o.embedder = "hash-3";
    ASSERT_EQ_INT(rag_open(dir, &o, &db), RAG_EINVAL);
    ASSERT_TRUE(db == NULL && strstr(rag_errmsg(), "hash-3") != NULL);
    ASSERT_EQ_INT(entries(dir), -1);
    /* An empty directory stays empty. */
    ASSERT_TRUE(mkdir(dir, 0755) == 0);
    o.embedder = "hash";
    o.index_spec = "NoSuchIndex99";
    ASSERT_TRUE(rag_open(dir, &o, &db) != RAG_OK);
    ASSERT_EQ_INT(entries(dir), 0);
    /* ... so it can still become a store. */
    o.index_spec = NULL;
    ASSERT_OK(rag_open(dir, &o, &db));
    put(db, "docs", "x", "A document that must survive failed opens.");
    ASSERT_OK(rag_close(db));
    /* A failed open of an existing store removes none of its files. */
    int before = entries(dir);
    o.index_spec = "NoSuchIndex99";
    ASSERT_TRUE(rag_open(dir, &o, &db) != RAG_OK);
    o.index_spec = NULL;
    o.embedder = "hash-64";
    ASSERT_EQ_INT(rag_open(dir, &o, &db), RAG_EMISMATCH);
    ASSERT_EQ_INT(entries(dir), before);
    rag_open_options ro = reader_opts();
    ASSERT_OK(rag_open(dir, &ro, &db));
    rag_collection_info ci;
    ASSERT_OK(rag_collection_stats(db, "docs", &ci));
    ASSERT_EQ_INT(ci.documents, 1);
    ASSERT_OK(rag_close(db));
}

int main(void)
{
    RUN_TEST(test_two_handles_one_process);
    RUN_TEST(test_other_process_and_kill9);
    RUN_TEST(test_second_process_refused);
    RUN_TEST(test_readonly_sees_writer);
    RUN_TEST(test_failed_create_leaves_dir);
    return TEST_REPORT();
}
