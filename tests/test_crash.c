/* test_crash.c - crash consistency: child processes ingest, delete (driving index
 * compaction) and sync a directory, and are SIGKILLed at random moments; after each kill the
 * store passes rag_check with no problem and reopens with every operation the child
 * reported committed fully there and nothing partial. Iterations per phase:
 * RAGCORE_CRASH_ITERATIONS (default 4); RAGCORE_CRASH_PHASES (e.g. "delete,sync") runs
 * only the phases named (ingest, delete, sync). Children are fresh processes (this executable run
 * with --child): a child forked from a parent that already ran OpenMP work hangs in its
 * first parallel region (libgomp's thread pool does not survive fork). */
#include "test.h"

#include "ragcore.h"

#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define DOCS_PER_BATCH 20
#define DEFAULT_ITERATIONS 4

/* Delete phase: a base of documents never deleted, then rounds of one 20-document batch,
 * 20 single deletes (of the batch two rounds back) and a checkpoint, which compacts the
 * index once tombstones pass 20 % of it. */
#define BASE_DOCS 100
#define OPS_PER_ROUND (2 + DOCS_PER_BATCH)

/* Sync phase: files f00..f39 of a directory; generation g holds a deterministic subset of
 * them in deterministic versions (see file_exists / file_version). */
#define SYNC_FILES 40

static char root[4096];
static int iterations = DEFAULT_ITERATIONS;
static int expect;            /* chunks of every generated document */

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

/* Appends one line to the child's log and makes it durable before going on. */
static void __attribute__((format(printf, 2, 3))) log_line(int fd, const char *fmt, ...)
{
    char line[256];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    if (n <= 0 || write(fd, line, (size_t)n) != n)
        _exit(5);
    fsync(fd);
}

static void fresh(const char *path)
{
    char cmd[4300];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", path);
    ASSERT_EQ_INT(system(cmd), 0);
}

/* Hits of every chunk of document `id` (NULL on error). */
static rag_results *doc_hits(rag_db *db, const char *coll, const char *id)
{
    rag_search_options so;
    rag_search_options_init(&so);
    so.collection = coll;
    so.k = 100;
    const char *ids[1] = {id};
    so.doc_ids = ids;
    so.n_doc_ids = 1;
    rag_results *res = NULL;
    if (rag_search(db, "apples rivers engines stars", &so, &res) != RAG_OK)
        return NULL;
    return res;
}

/* Number of chunks of document `id` (0 when absent, also when its collection is: a child
 * killed before its first commit leaves none; -1 on error). */
static int doc_chunks(rag_db *db, const char *coll, const char *id)
{
    rag_collection_info ci;
    if (rag_collection_stats(db, coll, &ci) == RAG_ENOTFOUND)
        return 0;
    rag_results *res = doc_hits(db, coll, id);
    int n = res ? (int)rag_results_count(res) : -1;
    rag_results_free(res);
    return n;
}

/* Problems rag_check finds in the store as the kill left it (listed on stderr). */
static uint64_t check_problems(const char *dir)
{
    rag_check_report *r = NULL;
    int rc = rag_check(dir, 0, 0, &r);
    ASSERT_OK(rc);
    if (rc != RAG_OK)
        return 1;
    uint64_t n = rag_check_report_count(r, RAG_CHECK_PROBLEM);
    for (size_t i = 0; n && i < rag_check_report_size(r); i++) {
        const rag_check_item *it = rag_check_report_item(r, i);
        fprintf(stderr, "  check: %s [%s] %s\n", rag_check_kind_name(it->kind), it->collection,
                it->message);
    }
    rag_check_report_free(r);
    return n;
}

/* SIGKILLs the child; 1 when the signal ended it (it never exits on its own otherwise). */
static int kill_child(pid_t pid)
{
    int status = 0;
    kill(pid, SIGKILL);
    waitpid(pid, &status, 0);
    if (WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL)
        return 1;
    fprintf(stderr, "child exited on its own with status %d\n", status);
    return 0;
}

/* Starts this executable as a child: --child KIND DIR LOG N [SRC]. */
static pid_t spawn(const char *kind, const char *dir, const char *logpath, int n,
                   const char *src)
{
    char num[32];
    snprintf(num, sizeof num, "%d", n);
    fflush(NULL);
    pid_t pid = fork();
    if (pid == 0) {
        execl("/proc/self/exe", "test_crash", "--child", kind, dir, logpath, num, src,
              (char *)NULL);
        _exit(127);
    }
    return pid;
}

static void random_pause(void)
{
    usleep(150000 + (useconds_t)(rand() % 900000));
}

/* Opens the store as the children do (rebuilding or replaying the index as needed). */
static rag_db *reopen(const char *dir)
{
    rag_open_options o = child_opts();
    rag_db *db = NULL;
    ASSERT_OK(rag_open(dir, &o, &db));
    return db;
}

/* Creates the store before the first child starts: a child killed before its own
 * rag_open finished (a slow start under sanitizers and load) then leaves an empty store,
 * not a directory that is no store yet. */
static void create_store(const char *dir)
{
    rag_db *db = reopen(dir);
    if (db)
        ASSERT_OK(rag_close(db));
}

/* Child side: opens the store or exits with status 3. */
static rag_db *child_open(const char *dir)
{
    rag_open_options o = child_opts();
    rag_db *db = NULL;
    if (rag_open(dir, &o, &db) != RAG_OK) {
        fprintf(stderr, "child open: %s\n", rag_errmsg());
        _exit(3);
    }
    return db;
}

/* ---- phase 1: ingest ------------------------------------------------------------------ */

/* Child: ingest batches forever, appending "batch N" to the log after each commit. */
static void ingest_child(const char *dir, const char *logpath, int first_batch)
{
    rag_db *db = child_open(dir);
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
        log_line(fd, "batch %d\n", b);
    }
}

static int last_logged_batch(const char *logpath)
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
    char dir[4200], logpath[4200];
    snprintf(dir, sizeof dir, "%s/crash_store", root);
    snprintf(logpath, sizeof logpath, "%s/crash_store.log", root);
    fresh(dir);
    fresh(logpath);
    create_store(dir);
    int next_batch = 0, kills = 0, inflight_there = 0;
    static char committed[1000000];
    uint64_t want_docs = 0;
    for (int it = 0; it < iterations; it++) {
        pid_t pid = spawn("ingest", dir, logpath, next_batch, NULL);
        ASSERT_TRUE(pid > 0);
        random_pause(); /* let it open (and rebuild), then kill it at a random moment */
        kills += kill_child(pid);
        int logged = last_logged_batch(logpath);
        ASSERT_EQ_INT(check_problems(dir), 0);
        rag_db *db = reopen(dir);
        if (!db)
            return;
        /* Every reported batch is fully there (every 7th document of each looked up). */
        int missing = 0;
        for (int b = next_batch; b <= logged; b++) {
            committed[b] = 1;
            want_docs += DOCS_PER_BATCH;
        }
        for (int b = 0; b <= logged; b++)
            for (int i = (b * 3) % 7; committed[b] && i < DOCS_PER_BATCH; i += 7) {
                char id[32];
                snprintf(id, sizeof id, "b%d-d%d", b, i);
                if (doc_chunks(db, "crash", id) != expect)
                    missing++;
            }
        ASSERT_EQ_INT(missing, 0);
        /* The batch in flight is all there or not at all. */
        int inflight = 0, fb = logged >= next_batch ? logged + 1 : next_batch;
        for (int i = 0; i < DOCS_PER_BATCH; i++) {
            char id[32];
            snprintf(id, sizeof id, "b%d-d%d", fb, i);
            int n = doc_chunks(db, "crash", id);
            ASSERT_TRUE(n == 0 || n == expect);
            inflight += n == expect;
        }
        ASSERT_TRUE(inflight == 0 || inflight == DOCS_PER_BATCH);
        rag_collection_info ci;
        int have_coll = rag_collection_stats(db, "crash", &ci) == RAG_OK;
        if (inflight) {
            committed[fb] = 1;
            want_docs += DOCS_PER_BATCH;
            inflight_there++;
        }
        if (have_coll) {
            ASSERT_EQ_INT(ci.documents, want_docs);
            ASSERT_EQ_INT(ci.chunks, want_docs * (uint64_t)expect);
            ASSERT_EQ_INT(ci.index_vectors - ci.tombstones, ci.chunks);
        } else {
            ASSERT_EQ_INT(want_docs, 0);
        }
        fprintf(stderr, "ingest %d: batches up to %d logged, in-flight batch %s, %llu documents\n",
                it, logged, inflight ? "committed" : "absent", (unsigned long long)want_docs);
        next_batch = fb + 1; /* never reuse the in-flight batch's ids */
        ASSERT_OK(rag_close(db));
    }
    fprintf(stderr, "ingest phase: %d kills; the unlogged batch was committed after %d of them "
            "(killed between commit and log) and absent after %d\n", kills, inflight_there,
            iterations - inflight_there);
    ASSERT_EQ_INT(kills, iterations);
}

/* ---- phase 2: deletes and compaction ------------------------------------------------------ */

/* Op `op` of the delete phase: round r = op / OPS_PER_ROUND, step s = op % OPS_PER_ROUND;
 * s 0: ingest batch r ("r<r>-d<i>"); s 1..20: delete "r<r-2>-d<s-1>" (a no-op while r < 2);
 * s 21: rag_checkpoint. */
static void del_id(char *buf, size_t n, int round, int doc)
{
    snprintf(buf, n, "r%d-d%d", round, doc);
}

static int run_op(rag_db *db, int op, int fd)
{
    int r = op / OPS_PER_ROUND, s = op % OPS_PER_ROUND, rc = RAG_OK;
    if (s == 0) {
        rag_document docs[DOCS_PER_BATCH];
        char ids[DOCS_PER_BATCH][32], texts[DOCS_PER_BATCH][600];
        for (int i = 0; i < DOCS_PER_BATCH; i++) {
            rag_document_init(&docs[i]);
            del_id(ids[i], sizeof ids[i], r, i);
            doc_text(texts[i], sizeof texts[i], 5000 + r, i);
            docs[i].id = ids[i];
            docs[i].text = texts[i];
        }
        rc = rag_ingest(db, "del", docs, DOCS_PER_BATCH, NULL);
    } else if (s <= DOCS_PER_BATCH) {
        char id[32];
        del_id(id, sizeof id, r - 2, s - 1);
        if (r >= 2 && (rc = rag_delete(db, "del", id)) == RAG_ENOTFOUND)
            rc = RAG_OK; /* deleted by the killed child before it could log it */
    } else {
        rag_collection_info ci;
        if ((rc = rag_collection_stats(db, "del", &ci)) != RAG_OK)
            return rc;
        int compact = ci.index_vectors > 0 && (double)ci.tombstones > 0.2 * (double)ci.index_vectors;
        log_line(fd, "ckpt %d %d %llu %llu\n", op, compact, (unsigned long long)ci.tombstones,
                 (unsigned long long)ci.index_vectors);
        struct timespec t0, t1;
        clock_gettime(CLOCK_MONOTONIC, &t0);
        if ((rc = rag_checkpoint(db)) != RAG_OK)
            return rc;
        clock_gettime(CLOCK_MONOTONIC, &t1);
        rag_collection_info after;
        if ((rc = rag_collection_stats(db, "del", &after)) != RAG_OK)
            return rc;
        long ms = (t1.tv_sec - t0.tv_sec) * 1000 + (t1.tv_nsec - t0.tv_nsec) / 1000000;
        /* Compacted: tombstones were over the threshold and the rebuilt index has none. */
        log_line(fd, "ckpt-done %d %d %ld\n", op, compact && after.tombstones == 0 &&
                 after.index_vectors == after.chunks, ms);
    }
    return rc;
}

static void delete_child(const char *dir, const char *logpath, int first_op)
{
    rag_db *db = child_open(dir);
    int fd = open(logpath, O_WRONLY | O_APPEND | O_CREAT, 0644);
    for (int op = first_op;; op++) {
        if (run_op(db, op, fd) != RAG_OK) {
            fprintf(stderr, "child op %d: %s\n", op, rag_errmsg());
            _exit(4);
        }
        log_line(fd, "op %d\n", op);
    }
}

/* What the delete log says: the last op logged, compactions finished and their time, and
 * whether the last line announces a compaction (the kill landed inside one). */
typedef struct del_log {
    int last_op;
    int compactions;
    long compact_ms;
    int in_compaction;
} del_log;

static del_log read_del_log(const char *logpath)
{
    del_log d = {-1, 0, 0, 0};
    FILE *fp = fopen(logpath, "r");
    char line[256];
    while (fp && fgets(line, sizeof line, fp)) {
        int op, flag;
        long ms;
        unsigned long long t, c;
        d.in_compaction = 0;
        if (sscanf(line, "op %d", &op) == 1)
            d.last_op = op;
        else if (sscanf(line, "ckpt-done %d %d %ld", &op, &flag, &ms) == 3 && flag) {
            d.compactions++;
            d.compact_ms += ms;
        } else if (sscanf(line, "ckpt %d %d %llu %llu", &op, &flag, &t, &c) == 4)
            d.in_compaction = flag;
    }
    if (fp)
        fclose(fp);
    return d;
}

/* Log events the parent waits for before it aims a kill. */
enum { EV_ANY_OP, EV_DELETE_NEXT, EV_COMPACTION, EV_COMPACTED };

static int is_event(const char *line, int ev)
{
    int op, flag;
    unsigned long long t, c;
    long ms;
    switch (ev) {
    case EV_ANY_OP:        /* the child is open and working */
        return sscanf(line, "op %d", &op) == 1;
    case EV_DELETE_NEXT:   /* an op done that at least 10 deletes follow */
        return sscanf(line, "op %d", &op) == 1 && op % OPS_PER_ROUND < DOCS_PER_BATCH - 10 &&
               op >= 2 * OPS_PER_ROUND;
    case EV_COMPACTION:    /* a checkpoint that compacts has begun */
        return sscanf(line, "ckpt %d %d %llu %llu", &op, &flag, &t, &c) == 4 && flag;
    default:               /* a compaction has finished */
        return sscanf(line, "ckpt-done %d %d %ld", &op, &flag, &ms) == 3 && flag;
    }
}

/* Waits (up to 30 s) for event `ev` in the log after byte `from`. */
static int wait_for(const char *logpath, long from, int ev)
{
    for (int i = 0; i < 30000; i++) {
        FILE *fp = fopen(logpath, "r");
        char line[256];
        int found = 0;
        if (fp && fseek(fp, from, SEEK_SET) == 0)
            while (!found && fgets(line, sizeof line, fp))
                found = is_event(line, ev);
        if (fp)
            fclose(fp);
        if (found)
            return 1;
        usleep(1000);
    }
    return 0;
}

/* 1 when document "r<round>-d<doc>" is live after ops [0, done) of the delete phase. */
static int del_live(int round, int doc, int done)
{
    int add_op = round * OPS_PER_ROUND;
    int del_op = (round + 2) * OPS_PER_ROUND + 1 + doc;
    return add_op < done && del_op >= done;
}

static void test_sigkill_during_deletes_and_compaction(void)
{
    char dir[4200], logpath[4200];
    snprintf(dir, sizeof dir, "%s/crash_del", root);
    snprintf(logpath, sizeof logpath, "%s/crash_del.log", root);
    fresh(dir);
    fresh(logpath);
    {
        /* The base: documents that stay, so that compactions rebuild a real index. */
        rag_db *db = reopen(dir);
        if (!db)
            return;
        static rag_document docs[BASE_DOCS];
        static char ids[BASE_DOCS][32], texts[BASE_DOCS][600];
        for (int i = 0; i < BASE_DOCS; i++) {
            rag_document_init(&docs[i]);
            snprintf(ids[i], sizeof ids[i], "base-%d", i);
            doc_text(texts[i], sizeof texts[i], 9000 + i / DOCS_PER_BATCH, i % DOCS_PER_BATCH);
            docs[i].id = ids[i];
            docs[i].text = texts[i];
        }
        rag_ingest_stats st;
        ASSERT_OK(rag_ingest(db, "del", docs, BASE_DOCS, &st));
        ASSERT_EQ_INT(st.chunks, (uint64_t)BASE_DOCS * (uint64_t)expect);
        ASSERT_OK(rag_close(db));
    }
    int next_op = 0, kills = 0, in_compaction = 0, in_op[3] = {0, 0, 0}, it = 0;
    /* `iterations` kills, then (when there are at least 3) up to 8 more, aimed at what the
     * first ones missed by chance: a kill inside a compaction and one inside a delete. */
    for (;; it++) {
        int covered = in_compaction >= 1 && in_op[1] >= 1;
        if (it >= iterations && (iterations < 3 || covered || it >= iterations + 8))
            break;
        int aim = it < iterations ? it % 3 : in_compaction == 0 ? 1 : 2;
        struct stat sb;
        long from = stat(logpath, &sb) == 0 ? (long)sb.st_size : 0;
        del_log before = read_del_log(logpath);
        pid_t pid = spawn("delete", dir, logpath, next_op, NULL);
        ASSERT_TRUE(pid > 0);
        /* Where the kill is aimed, in turn: anywhere in the child's work once it is open
         * (the first child only after a finished compaction), inside a compaction (at a
         * random point of the first half of their mean duration), inside a run of deletes. */
        if (aim == 1) {
            long mean = before.compactions ? before.compact_ms / before.compactions : 100;
            ASSERT_TRUE(wait_for(logpath, from, EV_COMPACTION));
            usleep((useconds_t)(rand() % (mean * 500 + 1))); /* their first half */
        } else if (aim == 2) {
            ASSERT_TRUE(wait_for(logpath, from, EV_DELETE_NEXT));
            usleep((useconds_t)(rand() % 20000));
        } else {
            ASSERT_TRUE(wait_for(logpath, from, it == 0 ? EV_COMPACTED : EV_ANY_OP));
            usleep((useconds_t)(rand() % 1500000));
        }
        kills += kill_child(pid);
        del_log d = read_del_log(logpath);
        in_compaction += d.in_compaction;
        ASSERT_EQ_INT(check_problems(dir), 0);
        rag_db *db = reopen(dir);
        if (!db)
            return;
        int done = d.last_op + 1; /* ops [0, done) were reported committed */
        int inflight = done, r_in = inflight / OPS_PER_ROUND, s_in = inflight % OPS_PER_ROUND;
        int round_max = r_in + 1, wrong = 0;
        in_op[s_in == 0 ? 0 : s_in <= DOCS_PER_BATCH ? 1 : 2]++;
        /* The in-flight op: a batch is all there or absent, a deleted document whole or gone. */
        int batch_in = 0;
        for (int i = 0; s_in == 0 && i < DOCS_PER_BATCH; i++) {
            char id[32];
            del_id(id, sizeof id, r_in, i);
            int n = doc_chunks(db, "del", id);
            ASSERT_TRUE(n == 0 || n == expect);
            batch_in += n == expect;
        }
        ASSERT_TRUE(batch_in == 0 || batch_in == DOCS_PER_BATCH);
        int del_in = -1; /* the document the in-flight delete removes: present (1) or not (0) */
        if (s_in >= 1 && s_in <= DOCS_PER_BATCH && r_in >= 2) {
            char id[32];
            del_id(id, sizeof id, r_in - 2, s_in - 1);
            int n = doc_chunks(db, "del", id);
            ASSERT_TRUE(n == 0 || n == expect);
            del_in = n == expect;
        }
        /* Every document of the recent rounds is live exactly as the log says. */
        uint64_t live = BASE_DOCS;
        for (int r = 0; r <= round_max; r++) {
            for (int i = 0; i < DOCS_PER_BATCH; i++) {
                int want = del_live(r, i, done);
                if (s_in == 0 && r == r_in)
                    want = batch_in > 0;
                if (del_in >= 0 && r == r_in - 2 && i == s_in - 1)
                    want = del_in;
                live += want;
                if (r + 4 < r_in && !want && i != r % DOCS_PER_BATCH)
                    continue; /* long-deleted rounds: one document each */
                char id[32];
                del_id(id, sizeof id, r, i);
                int n = doc_chunks(db, "del", id);
                if (n != (want ? expect : 0)) {
                    fprintf(stderr, "  %s: %d chunks, expected %d\n", id, n, want ? expect : 0);
                    wrong++;
                }
            }
        }
        for (int i = it % 13; i < BASE_DOCS; i += 13) {
            char id[32];
            snprintf(id, sizeof id, "base-%d", i);
            wrong += doc_chunks(db, "del", id) != expect;
        }
        ASSERT_EQ_INT(wrong, 0);
        rag_collection_info ci;
        ASSERT_OK(rag_collection_stats(db, "del", &ci));
        ASSERT_EQ_INT(ci.documents, live);
        ASSERT_EQ_INT(ci.chunks, live * (uint64_t)expect);
        /* The index holds every live chunk (the check above verified the file against the
         * store) and, besides them, exactly its tombstoned ids: also after a compaction
         * killed between writing the new file and clearing the tombstones (opening counts
         * only the tombstones the loaded file holds). */
        ASSERT_TRUE(ci.index_vectors >= ci.chunks);
        ASSERT_EQ_INT(ci.index_vectors - ci.tombstones, ci.chunks);
        fprintf(stderr, "delete %d: %d ops logged, killed %s, %llu documents, %d compactions so far\n",
                it, done, d.in_compaction ? "during a compaction" : "elsewhere",
                (unsigned long long)live, d.compactions);
        next_op = done; /* the in-flight op again: a batch replaces, a delete tolerates absence */
        ASSERT_OK(rag_close(db));
    }
    del_log d = read_del_log(logpath);
    fprintf(stderr, "delete phase: %d kills (in an ingest %d, a delete %d, a checkpoint %d of "
            "which %d compacting), %d compactions completed (mean %ld ms)\n", kills, in_op[0],
            in_op[1], in_op[2], in_compaction, d.compactions,
            d.compactions ? d.compact_ms / d.compactions : 0);
    ASSERT_EQ_INT(kills, it);
    ASSERT_TRUE(d.compactions >= 1);
    if (iterations >= 3)
        ASSERT_TRUE(in_compaction >= 1 && in_op[1] >= 1);
}

/* ---- phase 3: sync ------------------------------------------------------------------------- */

static int file_exists(int k, int g)
{
    return g >= 0 && (k * 7 + g) % 6 != 0;
}

static int file_version(int k, int g)
{
    return (g + k) / (1 + k % 3);
}

static void file_text(char *buf, size_t n, int k, int v)
{
    snprintf(buf, n,
             "File %d version %d opening paragraph talks about apples and pears and more.\n\n"
             "Second paragraph of file %d version %d mentions rivers, mountains and valleys.\n\n"
             "Third paragraph %d/%d: engines, turbines, generators and other machines in a row.\n\n"
             "Closing words for file %d version %d with stars, planets and distant galaxies.",
             k, v, k, v, k, v, k, v);
}

/* Writes generation g of the source directory: files absent in g are removed, the others
 * written with an mtime that names their version (so an update never looks unchanged). */
static int write_generation(const char *src, int g)
{
    for (int k = 0; k < SYNC_FILES; k++) {
        char path[4200], text[600];
        snprintf(path, sizeof path, "%s/f%02d.txt", src, k);
        if (!file_exists(k, g)) {
            unlink(path);
            continue;
        }
        int v = file_version(k, g);
        file_text(text, sizeof text, k, v);
        FILE *f = fopen(path, "w");
        if (!f || fputs(text, f) < 0 || fclose(f) != 0)
            return -1;
        struct timespec ts[2] = {{1600000000 + v * 100 + k, 0}, {1600000000 + v * 100 + k, 0}};
        if (utimensat(AT_FDCWD, path, ts, 0) != 0)
            return -1;
    }
    return 0;
}

/* Offers every file of generation `src` to the sync as `ragcore sync` does: id and source
 * the file's path, title its name, source_mtime its modification time. */
static int offer_files(rag_sync *s, const char *src)
{
    for (int k = 0; k < SYNC_FILES; k++) {
        char path[4200], text[600];
        struct stat sb;
        snprintf(path, sizeof path, "%s/f%02d.txt", src, k);
        FILE *f = fopen(path, "r");
        if (!f)
            continue;
        size_t n = fread(text, 1, sizeof text - 1, f);
        fclose(f);
        if (stat(path, &sb) != 0)
            return RAG_EIO;
        text[n] = 0;
        rag_document d;
        rag_document_init(&d);
        d.id = path;
        d.source = path;
        d.title = strrchr(path, '/') + 1;
        d.text = text;
        d.text_len = n;
        d.source_mtime = (int64_t)sb.st_mtime;
        int rc = rag_sync_document(s, &d, NULL);
        if (rc != RAG_OK)
            return rc;
    }
    return RAG_OK;
}

/* Child: for g = first, first + 1, ...: writes generation g and syncs the directory. */
static void sync_child(const char *dir, const char *src, const char *logpath, int first)
{
    rag_db *db = child_open(dir);
    int fd = open(logpath, O_WRONLY | O_APPEND | O_CREAT, 0644);
    for (int g = first;; g++) {
        rag_sync *s = NULL;
        const char *paths[1] = {src};
        if (write_generation(src, g) != 0)
            _exit(6);
        int rc = rag_sync_begin(db, "sync", &s);
        if (rc == RAG_OK)
            rc = offer_files(s, src);
        if (rc == RAG_OK)
            rc = rag_sync_finish(s, paths, 1, NULL);
        rag_sync_free(s);
        if (rc != RAG_OK) {
            fprintf(stderr, "child sync %d: %s\n", g, rag_errmsg());
            _exit(4);
        }
        log_line(fd, "sync %d\n", g);
    }
}

/* 1 when the hits are exactly the chunks of `text`: each hit's span holds its text and
 * the spans cover the whole text. */
static int hits_are_whole(const rag_results *res, const char *text)
{
    size_t len = strlen(text), n = rag_results_count(res);
    static unsigned char covered[1024];
    if (len > sizeof covered || n == 0)
        return 0;
    memset(covered, 0, len);
    for (size_t i = 0; i < n; i++) {
        const rag_hit *h = rag_results_get(res, i);
        if (h->end > len || h->start > h->end || h->end - h->start != h->text_len ||
            memcmp(text + h->start, h->text, h->text_len) != 0)
            return 0;
        memset(covered + h->start, 1, h->end - h->start);
    }
    for (size_t i = 0; i < len; i++)
        if (!covered[i])
            return 0;
    return 1;
}

static void test_sigkill_during_sync(void)
{
    char dir[4200], logpath[4200], src0[4200], src[PATH_MAX];
    snprintf(dir, sizeof dir, "%s/crash_sync", root);
    snprintf(logpath, sizeof logpath, "%s/crash_sync.log", root);
    snprintf(src0, sizeof src0, "%s/crash_sync_src", root);
    fresh(dir);
    fresh(logpath);
    fresh(src0);
    ASSERT_EQ_INT(mkdir(src0, 0755), 0);
    ASSERT_TRUE(realpath(src0, src) != NULL);
    create_store(dir);
    int next = 0, kills = 0, synced = 0, mixed = 0;
    for (int it = 0; it < iterations; it++) {
        pid_t pid = spawn("sync", dir, logpath, next, src);
        ASSERT_TRUE(pid > 0);
        random_pause();
        kills += kill_child(pid);
        int gl = -1, g;
        FILE *fp = fopen(logpath, "r");
        while (fp && fscanf(fp, "sync %d\n", &g) == 1)
            gl = g;
        if (fp)
            fclose(fp);
        ASSERT_EQ_INT(check_problems(dir), 0);
        rag_db *db = reopen(dir);
        if (!db)
            return;
        /* Each file's document is whole in the version of the last completed sync or of the
         * one in flight; it may be missing only where one of the two lacks the file. */
        int wrong = 0, in_new = 0;
        rag_collection_info ci;
        int have_coll = rag_collection_stats(db, "sync", &ci) == RAG_OK;
        for (int k = 0; k < SYNC_FILES; k++) {
            char id[4300], text_old[600], text_new[600];
            snprintf(id, sizeof id, "%s/f%02d.txt", src, k);
            int old_ok = file_exists(k, gl), new_ok = file_exists(k, gl + 1);
            file_text(text_old, sizeof text_old, k, file_version(k, gl));
            file_text(text_new, sizeof text_new, k, file_version(k, gl + 1));
            rag_results *res = have_coll ? doc_hits(db, "sync", id) : NULL;
            size_t n = res ? rag_results_count(res) : 0;
            int ok = 0;
            if (have_coll && !res)
                ok = 0;                          /* the search failed */
            else if (n == 0)
                ok = !old_ok || !new_ok;
            else if (old_ok && hits_are_whole(res, text_old))
                ok = 1;
            else if (new_ok && hits_are_whole(res, text_new))
                ok = ++in_new > 0;
            if (!ok) {
                fprintf(stderr, "  %s: %zu chunks, neither generation %d nor %d\n", id, n, gl,
                        gl + 1);
                wrong++;
            }
            rag_results_free(res);
        }
        ASSERT_EQ_INT(wrong, 0);
        mixed += in_new > 0;
        fprintf(stderr, "sync %d: generations up to %d synced, %d files already in the next\n",
                it, gl, in_new);
        synced += gl + 1 - next;
        next = gl + 1; /* the in-flight generation again: sync converges from any state */
        ASSERT_OK(rag_close(db));
    }
    fprintf(stderr, "sync phase: %d kills, %d of them with the store between two generations, "
            "%d syncs completed\n", kills, mixed, synced);
    ASSERT_EQ_INT(kills, iterations);
}

int main(int argc, char **argv)
{
    if (argc >= 6 && strcmp(argv[1], "--child") == 0) {
        if (strcmp(argv[2], "ingest") == 0)
            ingest_child(argv[3], argv[4], atoi(argv[5]));
        if (strcmp(argv[2], "delete") == 0)
            delete_child(argv[3], argv[4], atoi(argv[5]));
        if (strcmp(argv[2], "sync") == 0 && argc >= 7)
            sync_child(argv[3], argv[6], argv[4], atoi(argv[5]));
        return 2;
    }
    const char *tmp = getenv("RAGCORE_TEST_TMP"), *env = getenv("RAGCORE_CRASH_ITERATIONS");
    snprintf(root, sizeof root, "%s", tmp ? tmp : "/tmp");
    if (env && atoi(env) > 0)
        iterations = atoi(env);
    srand((unsigned)time(NULL) ^ (unsigned)getpid());
    {
        /* Chunks per generated document, measured on a reference store. */
        char ref[4200];
        snprintf(ref, sizeof ref, "%s/crash_store.ref", root);
        fresh(ref);
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
        ASSERT_TRUE(expect >= 3);
    }
    const char *phases = getenv("RAGCORE_CRASH_PHASES");
    if (!phases || strstr(phases, "ingest"))
        RUN_TEST(test_sigkill_during_ingest);
    if (!phases || strstr(phases, "delete"))
        RUN_TEST(test_sigkill_during_deletes_and_compaction);
    if (!phases || strstr(phases, "sync"))
        RUN_TEST(test_sigkill_during_sync);
    return TEST_REPORT();
}
