/* test_erase.c - erasure through the public API: after rag_erase_documents, a replacing
 * ingest with erase set, rag_collection_pii_apply and rag_collection_erase, and after a
 * kill -9 at each step of an erasure followed by a read-write open, and after a sync of a
 * changed or removed file and a re-ingest of the same id with erasure (each also killed
 * at every step, then reopened), no file of the store
 * directory holds any removed value (as UTF-8, UTF-16LE and digit-only forms) nor the
 * removed chunk's vector; query-log entries that named the document are gone; store files
 * are created 0600 in a 0700 directory. */
#include "test.h"

#include "ragcore.h"

#include <signal.h>
#include <stdint.h>
#include <sys/wait.h>
#include <unistd.h>

#define DIM 64

static char dir[4096];

/* The removed values. */
static const char *const VALUES[] = {"zelda.quux@example.org", "4111 1111 1111 1111",
                                     "+44 20 7946 0111",       "DE89 3704 0044 0532 0130 00",
                                     "078-05-1120",            "Xylophonequartz"};
#define NVALUES (sizeof VALUES / sizeof VALUES[0])
#define MARKER "Xylophonequartz"

static const char *SECRET_TEXT =
    "Customer record. Xylophonequartz asked to be forgotten. Write to zelda.quux@example.org "
    "or call +44 20 7946 0111. Card 4111 1111 1111 1111, IBAN DE89 3704 0044 0532 0130 00, "
    "SSN 078-05-1120.";
static const char *OTHER_TEXT = "Unrelated notes about gardening: tomatoes need sun and water.";

/* A deterministic embedder ("test-model", cached by the store): 16 of the 64 components
 * are +-0.25 (chosen by a hash of the text), so the vector has norm 1 exactly and the
 * library stores its bytes unchanged. The vector of a text holding MARKER is kept. */
static float marker_vec[DIM];
static int have_marker;

static int embed(void *user, const char *const *texts, const size_t *lens, size_t n,
                 int is_query, float *out)
{
    (void)user;
    (void)is_query;
    for (size_t i = 0; i < n; i++) {
        uint64_t h = 1469598103934665603ull;
        for (size_t k = 0; k < lens[i]; k++)
            h = (h ^ (unsigned char)texts[i][k]) * 1099511628211ull;
        float *v = out + i * DIM;
        memset(v, 0, DIM * sizeof *v);
        for (int k = 0, set = 0; set < 16; k++) {
            h = h * 6364136223846793005ull + 1442695040888963407ull;
            int pos = (int)(h >> 58);
            if (v[pos] != 0)
                continue;
            v[pos] = (h >> 20) & 1 ? 0.25f : -0.25f;
            set++;
        }
        if (memmem(texts[i], lens[i], MARKER, strlen(MARKER))) {
            memcpy(marker_vec, v, sizeof marker_vec);
            have_marker = 1;
        }
    }
    return 0;
}

/* Tombstones over this share of an index's vectors make a checkpoint rebuild it. The
 * stores here are tiny (one deletion is a third of them), so most tests raise it: the
 * erasure then patches the index in place, the path a large store takes. */
static double compact_threshold = 10.0;

static rag_db *open_store(const char *name, int fresh)
{
    static rag_embedder_def def;
    def.version = RAG_EMBEDDER_DEF_VERSION;
    def.name = "test-model";
    def.dim = DIM;
    def.embed = embed;
    if (fresh)
        test_fresh_dir(dir, sizeof dir, name);
    rag_open_options o;
    rag_open_options_init(&o);
    o.custom_embedder = &def;
    o.compact_threshold = compact_threshold;
    rag_db *db = NULL;
    ASSERT_OK(rag_open(dir, &o, &db));
    return db;
}

/* Occurrences of bytes needle[0, n) in every file under path. */
static long count_bytes(const char *path, const void *needle, size_t n)
{
    struct stat sb;
    long count = 0;
    if (stat(path, &sb) != 0)
        return 0;
    if (S_ISDIR(sb.st_mode)) {
        DIR *d = opendir(path);
        struct dirent *e;
        while (d && (e = readdir(d))) {
            char child[4400];
            if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
                continue;
            snprintf(child, sizeof child, "%s/%s", path, e->d_name);
            count += count_bytes(child, needle, n);
        }
        if (d)
            closedir(d);
        return count;
    }
    FILE *f = fopen(path, "rb");
    char *buf = f ? malloc((size_t)sb.st_size + 1) : NULL;
    size_t len = buf ? fread(buf, 1, (size_t)sb.st_size, f) : 0;
    for (const char *p = buf; p && (p = memmem(p, len - (size_t)(p - buf), needle, n)); p++)
        count++;
    free(buf);
    if (f)
        fclose(f);
    return count;
}

/* Occurrences of every form of every removed value: UTF-8, UTF-16LE, the digits alone
 * (numbers), and the removed chunk's vector. */
static long count_removed_(int report)
{
    long total = 0;
    for (size_t i = 0; i < NVALUES; i++) {
        const char *v = VALUES[i];
        size_t n = strlen(v), nd = 0;
        char u16[128], digits[64];
        for (size_t k = 0; k < n; k++) {
            u16[2 * k] = v[k];
            u16[2 * k + 1] = 0;
            if (v[k] >= '0' && v[k] <= '9')
                digits[nd++] = v[k];
        }
        long here = count_bytes(dir, v, n) + count_bytes(dir, u16, 2 * n);
        if (nd >= 9)
            here += count_bytes(dir, digits, nd);
        if (here && report)
            fprintf(stderr, "  '%s' still found %ld times\n", v, here);
        total += here;
    }
    if (have_marker) {
        long here = count_bytes(dir, marker_vec, sizeof marker_vec);
        if (here && report)
            fprintf(stderr, "  the removed chunk's vector still found %ld times\n", here);
        total += here;
    }
    return total;
}

/* Reports what it finds when an erasure should have left nothing. */
#define count_removed() count_removed_(1)

static rag_ingest_options ingest_options(const char *coll, int erase)
{
    rag_ingest_options o;
    rag_ingest_options_init(&o);
    o.collection = coll;
    o.erase = erase;
    return o;
}

static void ingest(rag_db *db, const char *coll, const char *id, const char *text, int erase)
{
    rag_document d;
    rag_document_init(&d);
    d.id = id;
    d.text = text;
    d.title = !strcmp(id, "secret") ? "Record of zelda.quux@example.org" : NULL;
    d.metadata_json = !strcmp(id, "secret") ? "{\"owner\":\"zelda.quux@example.org\"}" : NULL;
    rag_ingest_options o = ingest_options(coll, erase);
    ASSERT_OK(rag_ingest_documents(db, &d, 1, &o, NULL));
}

/* A store with the secret document, another one, a query log naming both, and an index
 * file on disk. */
static rag_db *setup(const char *name)
{
    have_marker = 0;
    rag_db *db = open_store(name, 1);
    if (!db)
        return NULL;
    ingest(db, "c", "secret", SECRET_TEXT, 0);
    ingest(db, "c", "other", OTHER_TEXT, 0);
    const char *batch =
        "[{\"id\":\"a\",\"collection\":\"c\",\"query\":\"[EMAIL]\",\"results\":[{\"chunk_id\":1,"
        "\"doc_id\":\"secret\",\"score\":0.9}]},{\"id\":\"b\",\"collection\":\"c\",\"query\":"
        "\"tomatoes\",\"results\":[{\"chunk_id\":2,\"doc_id\":\"other\",\"score\":0.8}]}]";
    ASSERT_OK(rag_table_put(db, "querylog", "k1", 2, batch, strlen(batch)));
    ASSERT_OK(rag_checkpoint(db));
    ASSERT_TRUE(have_marker);
    ASSERT_TRUE(count_removed_(0) > 0); /* the check can fail */
    return db;
}

static int log_has(rag_db *db, const char *doc)
{
    void *v = NULL;
    size_t vl = 0;
    char pat[64];
    snprintf(pat, sizeof pat, "\"doc_id\":\"%s\"", doc);
    if (rag_table_get(db, "querylog", "k1", 2, &v, &vl) != RAG_OK)
        return 0;
    int found = memmem(v, vl, pat, strlen(pat)) != NULL;
    rag_free(v);
    return found;
}

static uint64_t doc_count(rag_db *db, const char *coll)
{
    rag_collection_info info;
    memset(&info, 0, sizeof info);
    return rag_collection_stats(db, coll, &info) == RAG_OK ? info.documents : 0;
}

/* A plain delete leaves the text in the file: what an erasure is for. */
static void test_plain_delete_leaves_bytes(void)
{
    rag_db *db = setup("erase_plain");
    if (!db)
        return;
    ASSERT_OK(rag_delete(db, "c", "secret"));
    ASSERT_OK(rag_checkpoint(db));
    ASSERT_TRUE(count_removed_(0) > 0);
    rag_close(db);
}

static void test_erase_documents(void)
{
    rag_db *db = setup("erase_docs");
    if (!db)
        return;
    const char *ids[] = {"secret"};
    rag_erase_stats st;
    ASSERT_EQ_INT(rag_erase_documents(db, "c", (const char *[]){"absent"}, 1, &st), RAG_ENOTFOUND);
    ASSERT_OK(rag_erase_documents(db, "c", ids, 1, &st));
    ASSERT_EQ_INT(st.documents, 1);
    ASSERT_EQ_INT(st.log_entries, 1);
    ASSERT_TRUE(st.cache_entries >= 1);
    ASSERT_TRUE(st.store_bytes > 0 && st.bytes_zeroed > 0);
    ASSERT_EQ_INT(count_removed(), 0);
    ASSERT_TRUE(!log_has(db, "secret") && log_has(db, "other"));
    ASSERT_EQ_INT(doc_count(db, "c"), 1);
    /* the index was patched in place, not rebuilt: the erased vector is still an entry of
     * it (zeroed, tombstoned), and its bytes are in no file (count_removed above) */
    rag_collection_info info;
    ASSERT_OK(rag_collection_stats(db, "c", &info));
    ASSERT_TRUE(info.tombstones >= 1);
    ASSERT_EQ_INT(info.index_vectors, info.chunks + info.tombstones);
    /* the store still works: the other document is found, new ones are stored */
    rag_results *res = NULL;
    rag_search_options so;
    rag_search_options_init(&so);
    so.collection = "c";
    ASSERT_OK(rag_search(db, "tomatoes sun", &so, &res));
    ASSERT_TRUE(res && rag_results_count(res) == 1 &&
                !strcmp(rag_results_get(res, 0)->doc_id, "other"));
    rag_results_free(res);
    ingest(db, "c", "later", "A later note about pumpkins.", 0);
    ASSERT_OK(rag_close(db));
    db = open_store(NULL, 0);
    ASSERT_EQ_INT(doc_count(db, "c"), 2);
    ASSERT_EQ_INT(count_removed(), 0);
    rag_close(db);
    /* the lexical index counts the documents left, as check's audit verifies */
    rag_check_report *r = NULL;
    ASSERT_OK(rag_check(dir, 0, 0, &r));
    ASSERT_EQ_INT(rag_check_report_count(r, RAG_CHECK_PROBLEM), 0);
    rag_check_report_free(r);
}

static void test_erase_replace_and_pii_apply(void)
{
    /* replacing under a masking policy, with erase set */
    rag_db *db = setup("erase_replace");
    if (!db)
        return;
    rag_collection_options co;
    rag_collection_options_init(&co);
    co.pii = RAG_PII_MASK;
    ASSERT_OK(rag_collection_configure(db, "c", &co));
    ingest(db, "c", "secret", SECRET_TEXT, 1);
    ASSERT_EQ_INT(doc_count(db, "c"), 2);
    /* the masked text still holds the marker word; only the values must be gone */
    have_marker = 0;
    long left = 0;
    for (size_t i = 0; i + 1 < NVALUES; i++)
        left += count_bytes(dir, VALUES[i], strlen(VALUES[i]));
    ASSERT_EQ_INT(left, 0);
    rag_close(db);

    /* re-masking stored text under the collection's new policy */
    db = setup("erase_pii_apply");
    if (!db)
        return;
    ASSERT_EQ_INT(rag_collection_pii_apply(db, "c", NULL), RAG_EINVAL); /* policy is off */
    ASSERT_OK(rag_collection_configure(db, "c", &co));
    rag_erase_stats st;
    ASSERT_OK(rag_collection_pii_apply(db, "c", &st));
    ASSERT_EQ_INT(st.documents, 1); /* the other document has nothing to mask */
    ASSERT_EQ_INT(doc_count(db, "c"), 2);
    left = 0;
    for (size_t i = 0; i + 1 < NVALUES; i++)
        left += count_bytes(dir, VALUES[i], strlen(VALUES[i]));
    ASSERT_EQ_INT(left, 0);
    rag_doc *doc = NULL;
    ASSERT_OK(rag_document_get(db, "c", "secret", &doc));
    ASSERT_TRUE(doc && rag_doc_chunk_count(doc) > 0 &&
                strstr(rag_doc_chunk(doc, 0)->text, "[EMAIL]") != NULL);
    rag_doc_free(doc);
    rag_close(db);
}

static void test_collection_erase(void)
{
    compact_threshold = 0; /* the library's default */
    rag_db *db = setup("erase_coll");
    compact_threshold = 10.0;
    if (!db)
        return;
    ingest(db, "keep", "k", OTHER_TEXT, 0);
    ASSERT_OK(rag_collection_erase(db, "c", NULL));
    ASSERT_EQ_INT(count_removed(), 0);
    ASSERT_TRUE(!log_has(db, "secret") && !log_has(db, "other"));
    ASSERT_EQ_INT(doc_count(db, "keep"), 1);
    ASSERT_EQ_INT(rag_collection_erase(db, "c", NULL), RAG_ENOTFOUND);
    rag_close(db);
}

/* The steps of an erasure where RAGCORE_TEST_ERASE_KILL can stop it. */
static const char *const KILL_STEPS[] = {"intent", "removed", "settled", "index", "scrubbed"};
#define NKILL_STEPS (sizeof KILL_STEPS / sizeof KILL_STEPS[0])

/* Runs act(db, arg) in a child process on the closed store of `dir`; the child must die
 * of SIGKILL at erasure step `step`. */
static void run_killed(const char *step, void (*act)(rag_db *, int), int arg)
{
    pid_t pid = fork();
    if (pid == 0) {
        rag_db *child = open_store(NULL, 0);
        setenv("RAGCORE_TEST_ERASE_KILL", step, 1);
        act(child, arg);
        _exit(3); /* the kill point was not reached */
    }
    int status = 0;
    waitpid(pid, &status, 0);
    ASSERT_TRUE(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);
}

static void erase_secret(rag_db *db, int unused)
{
    (void)unused;
    const char *ids[] = {"secret"};
    rag_erase_documents(db, "c", ids, 1, NULL);
}

/* kill -9 at each step: the next read-write open finishes the erasure. */
static void test_kill_mid_erasure(void)
{
    const char *const *steps = KILL_STEPS;
    for (size_t s = 0; s < NKILL_STEPS; s++) {
        char name[64];
        snprintf(name, sizeof name, "erase_kill_%s", steps[s]);
        rag_db *db = setup(name);
        if (!db)
            return;
        rag_close(db);
        run_killed(steps[s], erase_secret, 0);
        db = open_store(NULL, 0); /* finishes the erasure */
        ASSERT_EQ_INT(doc_count(db, "c"), 1);
        ASSERT_TRUE(!log_has(db, "secret") && log_has(db, "other"));
        rag_close(db);
        if (count_removed() != 0)
            TEST_FAIL_("killed at step '%s': removed values remain", steps[s]);
    }
}

/* ---- erasure through sync and replace ---------------------------------------------------- */

static char src[4200];

static void write_file(const char *name, const char *text)
{
    char path[4400];
    snprintf(path, sizeof path, "%s/%s", src, name);
    FILE *f = fopen(path, "w");
    ASSERT_TRUE(f != NULL);
    if (f) {
        fputs(text, f);
        fclose(f);
    }
}

static void sync_src(rag_db *db, int erase, uint64_t *deleted, uint64_t *replaced)
{
    const char *paths[] = {src};
    rag_ingest_options o = ingest_options("c", erase);
    rag_ingest_summary s;
    rag_ingest_summary_init(&s);
    ASSERT_OK(rag_sync_paths(db, paths, 1, &o, &s));
    if (deleted)
        *deleted = s.deleted;
    if (replaced)
        *replaced = s.replaced;
}

/* How the secret document leaves the store. */
enum path_kind { VIA_SYNC_CHANGED, VIA_SYNC_REMOVED, VIA_REPLACE };
static const char *const PATH_NAMES[] = {"sync_changed", "sync_removed", "replace"};
#define REPLACED_TEXT "Customer record, rewritten: nothing personal is left in it."

/* A store whose collection "c" holds the secret document and another one, synced from
 * files outside the store (src) or ingested as documents; the index file on disk. */
static rag_db *setup_source(const char *name, enum path_kind kind)
{
    have_marker = 0;
    rag_db *db = open_store(name, 1);
    if (!db)
        return NULL;
    snprintf(src, sizeof src, "%s_src", dir);
    char cmd[8600];
    snprintf(cmd, sizeof cmd, "rm -rf '%s' && mkdir -p '%s'", src, src);
    ASSERT_TRUE(system(cmd) == 0);
    if (kind == VIA_REPLACE) {
        ingest(db, "c", "secret", SECRET_TEXT, 0);
        ingest(db, "c", "other", OTHER_TEXT, 0);
    } else {
        write_file("secret.txt", SECRET_TEXT);
        write_file("other.txt", OTHER_TEXT);
        sync_src(db, 0, NULL, NULL);
    }
    ASSERT_OK(rag_checkpoint(db));
    ASSERT_TRUE(have_marker);
    ASSERT_TRUE(count_removed_(0) > 0); /* the check can fail */
    return db;
}

/* Takes the secret document out along `kind` with erasure: the file changed or removed
 * and a sync, or the document re-ingested with new text. */
static void remove_secret(rag_db *db, enum path_kind kind)
{
    uint64_t deleted = 0, replaced = 0;
    char path[4400];
    switch (kind) {
    case VIA_SYNC_CHANGED:
        write_file("secret.txt", REPLACED_TEXT);
        sync_src(db, 1, &deleted, &replaced);
        ASSERT_EQ_INT(replaced, 1);
        break;
    case VIA_SYNC_REMOVED:
        snprintf(path, sizeof path, "%s/secret.txt", src);
        ASSERT_TRUE(unlink(path) == 0);
        sync_src(db, 1, &deleted, &replaced);
        ASSERT_EQ_INT(deleted, 1);
        break;
    case VIA_REPLACE: {
        rag_document d;
        rag_document_init(&d);
        d.id = "secret";
        d.text = REPLACED_TEXT;
        rag_ingest_options o = ingest_options("c", 1);
        rag_ingest_summary sum;
        rag_ingest_summary_init(&sum);
        ASSERT_OK(rag_ingest_documents(db, &d, 1, &o, &sum));
        ASSERT_EQ_INT(sum.replaced, 1);
        break;
    }
    }
}

static void remove_secret_kind(rag_db *db, int kind)
{
    remove_secret(db, (enum path_kind)kind);
}

static void test_erase_sync_and_replace(void)
{
    for (int k = VIA_SYNC_CHANGED; k <= VIA_REPLACE; k++) {
        char name[64];
        snprintf(name, sizeof name, "erase_%s", PATH_NAMES[k]);
        rag_db *db = setup_source(name, (enum path_kind)k);
        if (!db)
            return;
        remove_secret(db, (enum path_kind)k);
        if (count_removed() != 0)
            TEST_FAIL_("%s: removed values remain", PATH_NAMES[k]);
        ASSERT_EQ_INT(doc_count(db, "c"), k == VIA_SYNC_REMOVED ? 1 : 2);
        ASSERT_OK(rag_close(db));
        db = open_store(NULL, 0);
        ASSERT_EQ_INT(doc_count(db, "c"), k == VIA_SYNC_REMOVED ? 1 : 2);
        rag_close(db);
        if (count_removed() != 0)
            TEST_FAIL_("%s: removed values remain after reopening", PATH_NAMES[k]);
    }
}

/* kill -9 at each step of the erasure that ends a sync or a replacing ingest: the next
 * read-write open finishes it. */
static void test_kill_sync_and_replace(void)
{
    const char *const *steps = KILL_STEPS;
    for (int k = VIA_SYNC_CHANGED; k <= VIA_REPLACE; k++) {
        for (size_t s = 0; s < NKILL_STEPS; s++) {
            char name[96];
            snprintf(name, sizeof name, "erase_kill_%s_%s", PATH_NAMES[k], steps[s]);
            rag_db *db = setup_source(name, (enum path_kind)k);
            if (!db)
                return;
            rag_close(db);
            run_killed(steps[s], remove_secret_kind, k);
            db = open_store(NULL, 0); /* finishes the erasure */
            ASSERT_EQ_INT(doc_count(db, "c"), k == VIA_SYNC_REMOVED ? 1 : 2);
            rag_close(db);
            if (count_removed() != 0)
                TEST_FAIL_("%s killed at step '%s': removed values remain", PATH_NAMES[k],
                           steps[s]);
        }
    }
}

static void test_file_modes(void)
{
    char path[4200];
    struct stat sb;
    mode_t old = umask(022);
    rag_db *db = setup("erase_modes");
    if (!db)
        return;
    rag_close(db);
    const char *files[] = {"data.mdb", "lock.mdb", "write.lock"};
    ASSERT_TRUE(stat(dir, &sb) == 0 && (sb.st_mode & 0777) == 0700);
    for (size_t i = 0; i < 3; i++) {
        snprintf(path, sizeof path, "%s/%s", dir, files[i]);
        ASSERT_TRUE(stat(path, &sb) == 0 && (sb.st_mode & 0777) == 0600);
    }
    snprintf(path, sizeof path, "%s/index", dir);
    ASSERT_TRUE(stat(path, &sb) == 0 && (sb.st_mode & 0777) == 0700);
    int idx = 0;
    DIR *d = opendir(path);
    struct dirent *e;
    while (d && (e = readdir(d))) {
        char f[4600];
        if (e->d_name[0] == '.')
            continue;
        snprintf(f, sizeof f, "%s/%s", path, e->d_name);
        ASSERT_TRUE(stat(f, &sb) == 0 && (sb.st_mode & 0777) == 0600);
        idx++;
    }
    if (d)
        closedir(d);
    ASSERT_TRUE(idx > 0);

    /* configured otherwise */
    test_fresh_dir(dir, sizeof dir, "erase_modes_0640");
    rag_open_options o;
    rag_open_options_init(&o);
    o.embedder = "hash";
    o.file_mode = 0640;
    ASSERT_OK(rag_open(dir, &o, &db));
    rag_close(db);
    ASSERT_TRUE(stat(dir, &sb) == 0 && (sb.st_mode & 0777) == 0750);
    snprintf(path, sizeof path, "%s/data.mdb", dir);
    ASSERT_TRUE(stat(path, &sb) == 0 && (sb.st_mode & 0777) == 0640);
    o.file_mode = 01777;
    ASSERT_EQ_INT(rag_open(dir, &o, &db), RAG_EINVAL);
    umask(old);
}

int main(void)
{
    test_plain_delete_leaves_bytes();
    test_erase_documents();
    test_erase_replace_and_pii_apply();
    test_collection_erase();
    test_kill_mid_erasure();
    test_erase_sync_and_replace();
    test_kill_sync_and_replace();
    test_file_modes();
    printf("%d checks, %d failures\n", test_checks_, test_failures_);
    return test_failures_ ? 1 : 0;
}
