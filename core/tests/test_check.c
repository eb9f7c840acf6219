/* test_check.c - `check` finds each kind of injected inconsistency, and --repair fixes what
 * is derived (indexes, counters, hashes, vectors, orphans, lexical postings) without
 * touching documents. */
#include "test.h"

#include "lexical.h"
#include "ragcore.h"
#include "store.h"
#include "text.h"
#include "vindex.h"

#include <math.h>
#include <stdint.h>
#include <sys/stat.h>
#include <errno.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define NDOCS 40
#define DIM 64

static char base[4096];

static void make_store(const char *dir, const char *spec)
{
    char cmd[4200];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    ASSERT_EQ_INT(system(cmd), 0);
    rag_open_options o;
    rag_open_options_init(&o);
    o.embedder = "hash";
    o.dim = DIM;
    o.chunk_tokens = 24;
    o.chunk_overlap = 4;
    if (spec)
        o.index_spec = spec;
    rag_db *db = NULL;
    ASSERT_OK(rag_open(dir, &o, &db));
    if (!db)
        return;
    for (int i = 0; i < NDOCS; i++) {
        char id[32], text[600];
        snprintf(id, sizeof id, "doc%02d", i);
        snprintf(text, sizeof text,
                 "Document %d talks about rivers and mountains number %d.\n\n"
                 "A second paragraph of doc %d covers engines, turbines and generators.\n\n"
                 "Shared closing line about stars and distant galaxies.", i, i * 7, i);
        rag_document d;
        rag_document_init(&d);
        d.id = id;
        d.text = text;
        ASSERT_OK(rag_ingest(db, NULL, &d, 1, NULL));
    }
    ASSERT_OK(rag_delete(db, NULL, "doc03")); /* tombstones are legitimate */
    ASSERT_OK(rag_close(db));
}

/* Runs the check; returns the report (caller frees). */
static rag_check_report *check(const char *dir, unsigned flags)
{
    rag_check_report *r = NULL;
    int rc = rag_check(dir, flags, 0, &r);
    ASSERT_EQ_INT(rc, RAG_OK);
    if (rc != RAG_OK)
        fprintf(stderr, "check: %s\n", rag_errmsg());
    return r;
}

/* 1 when some item of `kind` contains `needle`. */
static int has_item(const rag_check_report *r, int kind, const char *needle)
{
    for (size_t i = 0; i < rag_check_report_size(r); i++) {
        const rag_check_item *it = rag_check_report_item(r, i);
        if (it->kind == kind && strstr(it->message, needle))
            return 1;
    }
    return 0;
}

static void dump(const rag_check_report *r)
{
    for (size_t i = 0; r && i < rag_check_report_size(r); i++) {
        const rag_check_item *it = rag_check_report_item(r, i);
        fprintf(stderr, "  %s [%s] %s\n", rag_check_kind_name(it->kind), it->collection,
                it->message);
    }
}

static uint64_t problems(const char *dir)
{
    rag_check_report *r = check(dir, 0);
    uint64_t n = rag_check_report_count(r, RAG_CHECK_PROBLEM);
    if (n)
        dump(r);
    rag_check_report_free(r);
    return n;
}

/* Runs fn in one write transaction on the closed store. */
static void inject(const char *dir, rag_write_fn fn, void *user)
{
    rag_store *st = NULL;
    ASSERT_OK(rag_store_open(dir, 0, &st));
    if (!st)
        return;
    ASSERT_OK(rag_store_write(st, fn, user));
    rag_store_close(st);
}

static uint32_t coll_id(const char *dir)
{
    rag_store *st = NULL;
    rag_txn *txn = NULL;
    rag_coll_rec rec = {0};
    ASSERT_OK(rag_store_open(dir, 1, &st));
    ASSERT_OK(rag_store_read(st, &txn));
    ASSERT_OK(rag_store_coll_get(txn, "default", &rec));
    rag_txn_end(txn);
    rag_store_close(st);
    return rec.id;
}

/* The chunk ids of a document. */
static uint32_t doc_chunks(const char *dir, const char *doc, uint64_t *ids, uint32_t max)
{
    rag_store *st = NULL;
    rag_txn *txn = NULL;
    rag_doc_rec *d = NULL;
    uint32_t n = 0;
    ASSERT_OK(rag_store_open(dir, 1, &st));
    ASSERT_OK(rag_store_read(st, &txn));
    ASSERT_OK(rag_store_doc_get(txn, coll_id(dir), doc, &d));
    if (d) {
        for (n = 0; n < d->nchunks && n < max; n++)
            ids[n] = d->chunk_ids[n];
    }
    rag_doc_rec_free(d);
    rag_txn_end(txn);
    rag_store_close(st);
    return n;
}

static int doc_count(const char *dir)
{
    rag_db *db = NULL;
    rag_open_options o;
    rag_open_options_init(&o);
    o.read_only = 1;
    rag_collection_info ci = {0};
    ASSERT_OK(rag_open(dir, &o, &db));
    if (db)
        ASSERT_OK(rag_collection_stats(db, "default", &ci));
    rag_close(db);
    return (int)ci.documents;
}

typedef struct inj {
    uint32_t coll;
    uint64_t id;
    int dim;
    float value;
} inj;

static void test_clean_store(void)
{
    char dir[4200];
    snprintf(dir, sizeof dir, "%s/clean", base);
    make_store(dir, NULL);
    rag_check_report *r = check(dir, 0);
    if (!r)
        return;
    ASSERT_EQ_INT(rag_check_report_count(r, RAG_CHECK_PROBLEM), 0);
    const rag_check_totals *t = rag_check_report_totals(r);
    ASSERT_EQ_INT(t->collections, 1);
    ASSERT_EQ_INT(t->documents, NDOCS - 1);
    ASSERT_TRUE(t->chunks >= NDOCS - 1);
    ASSERT_EQ_INT(t->vectors, t->chunks);
    ASSERT_EQ_INT(t->index_files, 1);
    ASSERT_TRUE(t->tombstones > 0);
    /* The index file still holds doc03's deleted vectors: live + tombstoned. */
    ASSERT_EQ_INT(t->index_vectors, t->chunks + t->tombstones);
    rag_check_report_free(r);
    /* A store that is not one. */
    ASSERT_EQ_INT(rag_check(base, 0, 0, &r), RAG_ENOTFOUND);
    ASSERT_TRUE(strstr(rag_errmsg(), "not a ragcore store") != NULL);
}

/* A checker child that waits on a lock without working (as one that inherited a lock another thread
 * held when it was forked does) is killed and replaced; when every try is stuck the check
 * fails with RAG_EIO saying so. No child is left behind either way. */
static void test_stuck_checker(void)
{
    char dir[4200];
    snprintf(dir, sizeof dir, "%s/stuck", base);
    make_store(dir, NULL);
    setenv("RAGCORE_CHECK_STALL_S", "1", 1);
    setenv("RAGCORE_CHECK_TEST_STALL", "1", 1); /* the next child is stuck */
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    rag_check_report *r = check(dir, 0);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    if (r) {
        ASSERT_EQ_INT(rag_check_report_count(r, RAG_CHECK_PROBLEM), 0);
        ASSERT_EQ_INT(rag_check_report_totals(r)->documents, NDOCS - 1);
        rag_check_report_free(r);
    }
    /* it waited for the stuck child's quiet second before it replaced it */
    ASSERT_TRUE((double)(t1.tv_sec - t0.tv_sec) + (t1.tv_nsec - t0.tv_nsec) / 1e9 >= 1.0);
    ASSERT_TRUE(waitpid(-1, NULL, WNOHANG) < 0 && errno == ECHILD);

    setenv("RAGCORE_CHECK_TEST_STALL", "4", 1); /* the next 3: every try */
    r = NULL;
    ASSERT_EQ_INT(rag_check(dir, 0, 0, &r), RAG_EIO);
    ASSERT_TRUE(strstr(rag_errmsg(), "stopped making progress 3 times") != NULL);
    ASSERT_TRUE(strstr(rag_errmsg(), dir) != NULL);
    ASSERT_TRUE(strstr(rag_errmsg(), "RAGCORE_CHECK_FORK=0") != NULL);
    ASSERT_TRUE(waitpid(-1, NULL, WNOHANG) < 0 && errno == ECHILD);
    rag_check_report_free(r);
    unsetenv("RAGCORE_CHECK_TEST_STALL");
    unsetenv("RAGCORE_CHECK_STALL_S");
}

static int orphan_fn(rag_txn *txn, void *user)
{
    inj *a = user;
    uint64_t first;
    int rc = rag_store_alloc_ids(txn, 1, &first);
    float v[DIM] = {0};
    v[0] = 1;
    rag_chunk_rec ch = {first, 0, 5, 1, 0, rag_text_norm_hash("hello", 5), "ghost-doc", "",
                        "hello", 5, NULL};
    if (rc == RAG_OK)
        rc = rag_store_chunk_put(txn, a->coll, &ch);
    if (rc == RAG_OK)
        rc = rag_store_vec_put(txn, a->coll, first, v, DIM);
    if (rc == RAG_OK)
        rc = rag_store_alloc_ids(txn, 1, &first);
    if (rc == RAG_OK) /* a vector without any chunk */
        rc = rag_store_vec_put(txn, a->coll, first, v, DIM);
    a->id = first;
    return rc;
}

static void test_orphans(void)
{
    char dir[4200];
    snprintf(dir, sizeof dir, "%s/orphans", base);
    make_store(dir, NULL);
    inj a = {coll_id(dir), 0, DIM, 0};
    inject(dir, orphan_fn, &a);
    rag_check_report *r = check(dir, 0);
    ASSERT_TRUE(has_item(r, RAG_CHECK_PROBLEM, "is not listed by any document (orphan)"));
    ASSERT_TRUE(has_item(r, RAG_CHECK_PROBLEM, "has no chunk (orphan)"));
    ASSERT_EQ_INT(rag_check_report_count(r, RAG_CHECK_PROBLEM), 2);
    rag_check_report_free(r);
    r = check(dir, RAG_CHECK_REPAIR);
    ASSERT_TRUE(has_item(r, RAG_CHECK_REPAIRED, "deleted orphan chunk"));
    ASSERT_TRUE(has_item(r, RAG_CHECK_REPAIRED, "deleted orphan vector"));
    ASSERT_EQ_INT(rag_check_report_count(r, RAG_CHECK_UNFIXED), 0);
    rag_check_report_free(r);
    ASSERT_EQ_INT(problems(dir), 0);
    ASSERT_EQ_INT(doc_count(dir), NDOCS - 1);
}

static int vec_fn(rag_txn *txn, void *user)
{
    inj *a = user;
    if (a->dim == 0)
        return rag_store_vec_del(txn, a->coll, a->id);
    float v[DIM + 1];
    for (int i = 0; i < DIM + 1; i++)
        v[i] = 0.1f;
    v[3] = a->value;
    return rag_store_vec_put(txn, a->coll, a->id, v, a->dim);
}

static void test_vectors(void)
{
    char dir[4200];
    snprintf(dir, sizeof dir, "%s/vectors", base);
    make_store(dir, NULL);
    uint64_t ids[16];
    ASSERT_TRUE(doc_chunks(dir, "doc05", ids, 16) >= 1);
    ASSERT_TRUE(doc_chunks(dir, "doc06", ids + 1, 15) >= 1);
    ASSERT_TRUE(doc_chunks(dir, "doc07", ids + 2, 14) >= 1);
    inj a = {coll_id(dir), ids[0], 0, 0};
    inject(dir, vec_fn, &a); /* missing */
    inj b = {a.coll, ids[1], DIM - 1, 0.1f};
    inject(dir, vec_fn, &b); /* wrong dimension */
    inj c = {a.coll, ids[2], DIM, NAN};
    inject(dir, vec_fn, &c); /* non-finite */
    rag_check_report *r = check(dir, 0);
    ASSERT_TRUE(has_item(r, RAG_CHECK_PROBLEM, "has no vector"));
    ASSERT_TRUE(has_item(r, RAG_CHECK_PROBLEM, "has dimension 63, the store's is 64"));
    ASSERT_TRUE(has_item(r, RAG_CHECK_PROBLEM, "non-finite value at position 3"));
    /* The index still has the old vectors of those chunks: all three disagree or are
     * reported; the missing one is also "lacking" from nothing (it is in the file). */
    rag_check_report_free(r);
    r = check(dir, RAG_CHECK_REPAIR);
    ASSERT_TRUE(has_item(r, RAG_CHECK_REPAIRED, "re-embedded 3 chunks with 'hash"));
    ASSERT_TRUE(has_item(r, RAG_CHECK_REPAIRED, "rebuilt the index file"));
    ASSERT_EQ_INT(rag_check_report_count(r, RAG_CHECK_UNFIXED), 0);
    dump(r);
    rag_check_report_free(r);
    ASSERT_EQ_INT(problems(dir), 0);
    /* The re-embedded vector is the embedding of the chunk text: a search for doc05's
     * text finds doc05 first. */
    rag_db *db = NULL;
    ASSERT_OK(rag_open(dir, NULL, &db));
    rag_results *res = NULL;
    rag_search_options so;
    rag_search_options_init(&so);
    so.mode = RAG_MODE_DENSE;
    so.k = 1;
    ASSERT_OK(rag_search(db, "Document 5 talks about rivers and mountains number 35.", &so, &res));
    ASSERT_TRUE(res && rag_results_count(res) == 1 &&
                strcmp(rag_results_get(res, 0)->doc_id, "doc05") == 0);
    rag_results_free(res);
    rag_close(db);
}

static int counters_fn(rag_txn *txn, void *user)
{
    (void)user;
    rag_coll_rec rec;
    int rc = rag_store_coll_get(txn, "default", &rec);
    rec.documents += 5;
    rec.bytes_text -= 3;
    if (rc == RAG_OK)
        rc = rag_store_coll_put(txn, "default", &rec);
    if (rc == RAG_OK)
        rc = rag_store_hash_set(txn, rec.id, 12345, 2); /* a hash no chunk has */
    return rc;
}

static void test_counters(void)
{
    char dir[4200];
    snprintf(dir, sizeof dir, "%s/counters", base);
    make_store(dir, NULL);
    inject(dir, counters_fn, NULL);
    rag_check_report *r = check(dir, 0);
    ASSERT_TRUE(has_item(r, RAG_CHECK_PROBLEM, "counter of documents says 44, the store holds 39"));
    ASSERT_TRUE(has_item(r, RAG_CHECK_PROBLEM, "counter of text bytes"));
    ASSERT_TRUE(has_item(r, RAG_CHECK_PROBLEM, "chunk-hash 0000000000003039 is counted 2 times"));
    ASSERT_EQ_INT(rag_check_report_count(r, RAG_CHECK_PROBLEM), 3);
    rag_check_report_free(r);
    r = check(dir, RAG_CHECK_REPAIR);
    ASSERT_TRUE(has_item(r, RAG_CHECK_REPAIRED, "set counters: 39 documents"));
    ASSERT_EQ_INT(rag_check_report_count(r, RAG_CHECK_UNFIXED), 0);
    rag_check_report_free(r);
    ASSERT_EQ_INT(problems(dir), 0);
    ASSERT_EQ_INT(doc_count(dir), NDOCS - 1);
}

static void flip_byte(const char *path, long off)
{
    FILE *f = fopen(path, "r+b");
    ASSERT_TRUE(f != NULL);
    if (!f)
        return;
    fseek(f, off, SEEK_SET);
    int ch = fgetc(f);
    fseek(f, off, SEEK_SET);
    fputc(ch ^ 0x5a, f);
    fclose(f);
}

static void test_index_damage(void)
{
    char dir[4200], path[4400];
    snprintf(dir, sizeof dir, "%s/damage", base);
    make_store(dir, NULL);
    snprintf(path, sizeof path, "%s/index/%u.idx", dir, coll_id(dir));
    struct stat sb;
    ASSERT_EQ_INT(stat(path, &sb), 0);
    flip_byte(path, (long)sb.st_size / 2);
    rag_check_report *r = check(dir, 0);
    ASSERT_TRUE(has_item(r, RAG_CHECK_PROBLEM, "fails its checksum"));
    rag_check_report_free(r);
    r = check(dir, RAG_CHECK_REPAIR);
    ASSERT_TRUE(has_item(r, RAG_CHECK_REPAIRED, "rebuilt the index file"));
    ASSERT_EQ_INT(rag_check_report_count(r, RAG_CHECK_UNFIXED), 0);
    rag_check_report_free(r);
    ASSERT_EQ_INT(problems(dir), 0);
    /* Truncated file. */
    ASSERT_EQ_INT(truncate(path, 100), 0);
    r = check(dir, 0);
    ASSERT_TRUE(has_item(r, RAG_CHECK_PROBLEM, "truncated"));
    rag_check_report_free(r);
}

/* 1 when the FAISS index file at `path` records HNSW efConstruction `efc`: FAISS writes
 * the HNSW graph's int32 fields ... efConstruction, efSearch, upper_beam (always 1) last. */
static int index_file_has_efc(const char *path, int32_t efc)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return 0;
    static unsigned char buf[1 << 22];
    size_t n = fread(buf, 1, sizeof buf, f);
    fclose(f);
    for (size_t i = 0; i + 12 <= n; i++) {
        int32_t a, c;
        memcpy(&a, buf + i, 4);
        memcpy(&c, buf + i + 8, 4);
        if (a == efc && c == 1)
            return 1;
    }
    return 0;
}

/* --repair rebuilds HNSW index files at the build depth it is given, else FAISS's 40. */
static void test_repair_ef_construction(void)
{
    char dir[4200], path[4400];
    snprintf(dir, sizeof dir, "%s/efc", base);
    make_store(dir, NULL);
    snprintf(path, sizeof path, "%s/index/%u.idx", dir, coll_id(dir));
    ASSERT_EQ_INT(truncate(path, 100), 0);
    rag_check_report *r = NULL;
    ASSERT_OK(rag_check(dir, RAG_CHECK_REPAIR, 123, &r));
    ASSERT_TRUE(has_item(r, RAG_CHECK_REPAIRED, "rebuilt the index file"));
    ASSERT_EQ_INT(rag_check_report_count(r, RAG_CHECK_UNFIXED), 0);
    rag_check_report_free(r);
    ASSERT_TRUE(index_file_has_efc(path, 123));
    ASSERT_EQ_INT(problems(dir), 0);
    ASSERT_EQ_INT(truncate(path, 100), 0);
    r = check(dir, RAG_CHECK_REPAIR);
    rag_check_report_free(r);
    ASSERT_TRUE(index_file_has_efc(path, 40));
    ASSERT_TRUE(!index_file_has_efc(path, 123));
}

/* Writes an index file holding every live vector except `skip`, plus a vector under an id
 * that is neither live nor deleted. */
typedef struct fill {
    rag_vindex *ix;
    uint64_t skip;
} fill;

static int fill_visit(void *user, uint64_t id, const float *vec, int dim)
{
    fill *f = user;
    (void)dim;
    if (id == f->skip)
        return 0;
    int64_t i = (int64_t)id;
    return rag_vindex_add(f->ix, 1, vec, &i);
}

static void test_index_contents(void)
{
    char dir[4200], path[4400];
    snprintf(dir, sizeof dir, "%s/contents", base);
    make_store(dir, "Flat");
    uint32_t cid = coll_id(dir);
    uint64_t ids[16];
    ASSERT_TRUE(doc_chunks(dir, "doc09", ids, 16) >= 1);
    rag_store *st = NULL;
    rag_txn *txn = NULL;
    rag_vindex *ix = NULL;
    uint64_t next = 0;
    ASSERT_OK(rag_store_open(dir, 1, &st));
    ASSERT_OK(rag_store_read(st, &txn));
    ASSERT_OK(rag_store_next_id(txn, &next));
    ASSERT_OK(rag_vindex_create("Flat", DIM, 0, &ix));
    fill f = {ix, ids[0]};
    ASSERT_OK(rag_store_vec_scan(txn, cid, 0, fill_visit, &f));
    float v[DIM];
    for (int i = 0; i < DIM; i++)
        v[i] = 1.0f / 8.0f;
    int64_t ghost = 0; /* ids start at 1: never used */
    ASSERT_OK(rag_vindex_add(ix, 1, v, &ghost));
    rag_txn_end(txn);
    rag_store_close(st);
    snprintf(path, sizeof path, "%s/index/%u.idx", dir, cid);
    ASSERT_OK(rag_vindex_save(ix, path, next, NULL));
    rag_vindex_free(ix);
    rag_check_report *r = check(dir, 0);
    char want[128];
    snprintf(want, sizeof want, "lacks the vector of live chunk %llu", (unsigned long long)ids[0]);
    ASSERT_TRUE(has_item(r, RAG_CHECK_PROBLEM, want));
    ASSERT_TRUE(has_item(r, RAG_CHECK_PROBLEM, "holds chunk 0, which is neither live nor deleted"));
    ASSERT_EQ_INT(rag_check_report_count(r, RAG_CHECK_PROBLEM), 2);
    rag_check_report_free(r);
    /* A file claiming more coverage than the store has (e.g. from a newer store). */
    ASSERT_OK(rag_vindex_create("Flat", DIM, 0, &ix));
    ASSERT_OK(rag_vindex_save(ix, path, next + 100, NULL));
    rag_vindex_free(ix);
    r = check(dir, 0);
    ASSERT_TRUE(has_item(r, RAG_CHECK_PROBLEM, "newer than the store"));
    rag_check_report_free(r);
    r = check(dir, RAG_CHECK_REPAIR);
    ASSERT_EQ_INT(rag_check_report_count(r, RAG_CHECK_UNFIXED), 0);
    rag_check_report_free(r);
    ASSERT_EQ_INT(problems(dir), 0);
}

static int lose_chunk_fn(rag_txn *txn, void *user)
{
    inj *a = user;
    int rc = rag_store_chunk_del(txn, a->coll, a->id);
    if (rc == RAG_OK)
        rc = rag_store_vec_del(txn, a->coll, a->id);
    return rc;
}

static void test_lost_chunk_is_not_hidden(void)
{
    char dir[4200];
    snprintf(dir, sizeof dir, "%s/lost", base);
    make_store(dir, NULL);
    uint64_t ids[16];
    ASSERT_TRUE(doc_chunks(dir, "doc11", ids, 16) >= 1);
    inj a = {coll_id(dir), ids[0], 0, 0};
    inject(dir, lose_chunk_fn, &a);
    /* Deleting the damaged document is refused with an error that names it and the way
     * out, and changes nothing ... */
    rag_db *db = NULL;
    ASSERT_OK(rag_open(dir, NULL, &db));
    ASSERT_EQ_INT(rag_delete(db, NULL, "doc11"), RAG_ECORRUPT);
    ASSERT_TRUE(strstr(rag_errmsg(), "document 'doc11'") != NULL);
    ASSERT_TRUE(strstr(rag_errmsg(), "check --repair") != NULL);
    rag_close(db);
    ASSERT_EQ_INT(doc_count(dir), NDOCS - 1);
    rag_check_report *r = check(dir, RAG_CHECK_REPAIR);
    ASSERT_TRUE(has_item(r, RAG_CHECK_PROBLEM, "document 'doc11' lists chunk"));
    /* Primary data is never patched over: the problem remains, the document stays. */
    ASSERT_TRUE(has_item(r, RAG_CHECK_UNFIXED, "document 'doc11' lists chunk"));
    rag_check_report_free(r);
    ASSERT_EQ_INT(doc_count(dir), NDOCS - 1);
    /* ... and after the repair the delete goes through. */
    db = NULL;
    ASSERT_OK(rag_open(dir, NULL, &db));
    ASSERT_OK(rag_delete(db, NULL, "doc11"));
    rag_close(db);
    ASSERT_EQ_INT(doc_count(dir), NDOCS - 2);
}

static int orphan_coll_fn(rag_txn *txn, void *user)
{
    (void)user;
    float v[DIM] = {0};
    return rag_store_vec_put(txn, 777, 5, v, DIM);
}

static void test_orphan_collection_and_files(void)
{
    char dir[4200], path[4400];
    snprintf(dir, sizeof dir, "%s/orphcoll", base);
    make_store(dir, NULL);
    inject(dir, orphan_coll_fn, NULL);
    snprintf(path, sizeof path, "%s/index/999.idx", dir);
    FILE *f = fopen(path, "w");
    fputs("x", f);
    fclose(f);
    snprintf(path, sizeof path, "%s/index/1.idx.tmp", dir);
    f = fopen(path, "w");
    fclose(f);
    rag_check_report *r = check(dir, 0);
    ASSERT_TRUE(has_item(r, RAG_CHECK_PROBLEM,
                         "table 'vectors' holds 1 records of collection id 777"));
    ASSERT_TRUE(has_item(r, RAG_CHECK_NOTE, "index/999.idx is the index file of a collection"));
    ASSERT_TRUE(has_item(r, RAG_CHECK_NOTE, "index/1.idx.tmp is a temporary file"));
    ASSERT_EQ_INT(rag_check_report_count(r, RAG_CHECK_PROBLEM), 1);
    rag_check_report_free(r);
    r = check(dir, RAG_CHECK_REPAIR);
    ASSERT_TRUE(has_item(r, RAG_CHECK_REPAIRED, "missing collection id 777"));
    ASSERT_TRUE(has_item(r, RAG_CHECK_REPAIRED, "removed index/999.idx"));
    rag_check_report_free(r);
    ASSERT_EQ_INT(access(path, F_OK), -1);
    ASSERT_EQ_INT(problems(dir), 0);
}

static void test_ivf_and_sq(void)
{
    /* Specs whose vectors cannot be decoded (IVF without a direct map) or are lossy (SQ8)
     * still check clean. */
    const char *specs[] = {"IVF4,Flat", "SQ8", "HNSW32,SQ8"};
    for (size_t i = 0; i < 3; i++) {
        char dir[4200];
        snprintf(dir, sizeof dir, "%s/spec%zu", base, i);
        make_store(dir, specs[i]);
        ASSERT_EQ_INT(problems(dir), 0);
    }
}


/* ---- lexical postings ------------------------------------------------------------------- */

#define LEX_DOCS 30
#define LEX_K 10

static const char *const lex_queries[] = {
    "rivers and mountains", "turbines generators", "distant galaxies", "harbours report 7",
    "document 17 lighthouse", "bridges bridges ferries"};
#define N_LEX_QUERIES (sizeof lex_queries / sizeof lex_queries[0])

typedef struct lex_hits {
    int n;
    uint64_t ids[LEX_K];
    float scores[LEX_K];
} lex_hits;

/* A store with two collections of titled documents (the title is indexed with each chunk):
 * "plain" analysed with language "none" (no stemming), "default" with english. */
static void make_lexical_store(const char *dir)
{
    static const char *const extra[] = {"lighthouse", "bridges", "ferries", "harbours", "canals"};
    char cmd[4300];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    ASSERT_EQ_INT(system(cmd), 0);
    for (int pass = 0; pass < 2; pass++) {
        rag_open_options o;
        rag_open_options_init(&o);
        o.embedder = "hash";
        o.dim = DIM;
        o.chunk_tokens = 24;
        o.chunk_overlap = 4;
        o.language = pass == 0 ? "none" : NULL;
        rag_db *db = NULL;
        ASSERT_OK(rag_open(dir, &o, &db));
        if (!db)
            return;
        for (int i = 0; i < LEX_DOCS; i++) {
            char id[32], title[64], text[700];
            snprintf(id, sizeof id, "doc%02d", i);
            snprintf(title, sizeof title, "Harbours report %d", i % 9);
            snprintf(text, sizeof text,
                     "Document %d talks about rivers and mountains number %d, %s.\n\n"
                     "A second paragraph of doc %d covers engines, turbines and generators %s "
                     "%s.\n\nShared closing line about stars and distant galaxies.",
                     i, i * 7, extra[i % 5], i, extra[(i * 3) % 5], i % 4 ? "" : extra[i % 5]);
            rag_document d;
            rag_document_init(&d);
            d.id = id;
            d.text = text;
            d.title = title;
            ASSERT_OK(rag_ingest(db, pass == 0 ? "plain" : "default", &d, 1, NULL));
        }
        ASSERT_OK(rag_delete(db, pass == 0 ? "plain" : "default", "doc04"));
        ASSERT_OK(rag_close(db));
    }
}

static uint32_t coll_id_of(const char *dir, const char *name)
{
    rag_store *st = NULL;
    rag_txn *txn = NULL;
    rag_coll_rec rec = {0};
    ASSERT_OK(rag_store_open(dir, 1, &st));
    ASSERT_OK(rag_store_read(st, &txn));
    ASSERT_OK(rag_store_coll_get(txn, name, &rec));
    rag_txn_end(txn);
    rag_store_close(st);
    return rec.id;
}

/* Runs every lexical query on a collection, BM25 by `unit` (RAG_LEXICAL_*). */
/* 1 when the BM25 statistics of collection coll for the first query carry document fields
 * (as a cluster's shard sends them), 0 when they do not. */
static int lex_stats_by_doc(const char *dir, const char *coll)
{
    rag_open_options o;
    rag_open_options_init(&o);
    o.read_only = 1;
    rag_db *db = NULL;
    rag_bm25_stats *st = NULL;
    ASSERT_OK(rag_open(dir, &o, &db));
    if (db)
        ASSERT_OK(rag_bm25_stats_get(db, coll, lex_queries[0], &st));
    int by_doc = st && st->doc_df && st->docs > 0;
    if (st) {
        ASSERT_TRUE(st->n_terms > 0 && st->chunks > 0);
        ASSERT_TRUE(by_doc || (st->docs == 0 && !st->doc_df));
    }
    rag_bm25_stats_free(st);
    rag_close(db);
    return by_doc;
}

static void lex_search_unit(const char *dir, const char *coll, int unit, lex_hits *out)
{
    rag_open_options o;
    rag_open_options_init(&o);
    o.read_only = 1;
    rag_db *db = NULL;
    ASSERT_OK(rag_open(dir, &o, &db));
    for (size_t q = 0; q < N_LEX_QUERIES; q++) {
        rag_search_options so;
        rag_search_options_init(&so);
        so.mode = RAG_MODE_LEXICAL;
        so.collection = coll;
        so.k = LEX_K;
        so.lexical_unit = unit;
        rag_results *res = NULL;
        memset(&out[q], 0, sizeof out[q]);
        if (db)
            ASSERT_OK(rag_search(db, lex_queries[q], &so, &res));
        out[q].n = (int)rag_results_count(res);
        for (int i = 0; i < out[q].n; i++) {
            out[q].ids[i] = rag_results_get(res, (size_t)i)->chunk_id;
            out[q].scores[i] = rag_results_get(res, (size_t)i)->lexical_score;
        }
        rag_results_free(res);
    }
    rag_close(db);
}

static void lex_search_all(const char *dir, const char *coll, lex_hits *out)
{
    lex_search_unit(dir, coll, RAG_LEXICAL_DOCUMENT, out);
}

/* 1 when both runs returned the same hits in the same order with the same scores. */
static int same_hits(const lex_hits *a, const lex_hits *b)
{
    for (size_t q = 0; q < N_LEX_QUERIES; q++) {
        if (a[q].n != b[q].n)
            return 0;
        for (int i = 0; i < a[q].n; i++)
            if (a[q].ids[i] != b[q].ids[i] || fabsf(a[q].scores[i] - b[q].scores[i]) > 1e-5f)
                return 0;
    }
    return 1;
}

/* Deletes every 7th posting of a collection and one chunk entry (keys built from the layout
 * documented in core/lexical.c). */
typedef struct lex_damage {
    uint32_t coll;
    unsigned char prefix[4];
    unsigned char keys[512][160];
    size_t lens[512], n, seen;
} lex_damage;

static int damage_collect(void *user, const void *key, size_t klen, const void *val, size_t vlen)
{
    lex_damage *d = user;
    (void)val;
    (void)vlen;
    if (klen < 4 || memcmp(key, d->prefix, 4) != 0 || d->n == 512)
        return 1;
    if (d->seen++ % 7 == 3 && klen <= sizeof d->keys[0]) {
        memcpy(d->keys[d->n], key, klen);
        d->lens[d->n++] = klen;
    }
    return 0;
}

static int lex_damage_fn(rag_txn *txn, void *user)
{
    lex_damage *d = user;
    unsigned char ck[12];
    d->n = d->seen = 0;
    d->prefix[0] = (unsigned char)(d->coll >> 24);
    d->prefix[1] = (unsigned char)(d->coll >> 16);
    d->prefix[2] = (unsigned char)(d->coll >> 8);
    d->prefix[3] = (unsigned char)d->coll;
    int rc = rag_store_kv_scan(txn, "lex_postings", d->prefix, 4, damage_collect, d);
    if (rc < 0)
        return rc;
    for (size_t i = 0; i < d->n; i++)
        if ((rc = rag_store_kv_del(txn, "lex_postings", d->keys[i], d->lens[i])) != RAG_OK)
            return rc;
    /* The first chunk entry of the collection: its key is the prefix and its chunk id. */
    memcpy(ck, d->keys[0], 4);
    memcpy(ck + 4, d->keys[0] + d->lens[0] - 8, 8);
    rc = rag_store_kv_del(txn, "lex_chunks", ck, 12);
    return rc;
}

typedef struct lex_cut {
    uint32_t coll;
    size_t max, deleted;
    int wipe;
} lex_cut;

/* What an interrupted rebuild leaves (its first transaction), or a wiped index. */
static int lex_cut_fn(rag_txn *txn, void *user)
{
    lex_cut *c = user;
    if (c->wipe)
        return rag_lexical_purge(txn, c->coll);
    int rc = rag_lexical_rebuild_mark(txn, c->coll, 1);
    if (rc == RAG_OK)
        rc = rag_lexical_purge_some(txn, c->coll, c->max, &c->deleted);
    return rc;
}

/* Exit status of `ragcore check --db dir [--repair]`, or -1 when the CLI is not at hand. */
static int cli_check(const char *dir, int repair)
{
    const char *bin = getenv("RAGCORE_BIN");
    char exe[4200], cmd[8400];
    if (!bin)
        return -1;
    snprintf(exe, sizeof exe, "%s/ragcore", bin);
    if (access(exe, X_OK) != 0)
        return -1;
    snprintf(cmd, sizeof cmd, "'%s' check --db '%s'%s >/dev/null 2>&1", exe, dir,
             repair ? " --repair" : "");
    int st = system(cmd);
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

/* Rewrites a collection's lexical index in the chunk-only format of older stores: every
 * chunk indexed on its own, under statistics of that format. */
typedef struct lex_old {
    uint32_t coll;
    rag_analyzer *an;
    rag_txn *txn;
    int rc;
} lex_old;

static int lex_old_doc(void *user, const rag_doc_rec *d)
{
    lex_old *o = user;
    for (uint32_t i = 0; o->rc == RAG_OK && i < d->nchunks; i++) {
        rag_chunk_rec *ch = NULL;
        char *buf = NULL;
        const char *t;
        size_t tl;
        o->rc = rag_store_chunk_get(o->txn, o->coll, d->chunk_ids[i], &ch);
        if (o->rc == RAG_OK)
            o->rc = rag_lexical_chunk_text(d->title, ch->text, ch->text_len, &buf, &t, &tl);
        if (o->rc == RAG_OK)
            o->rc = rag_lexical_add(o->txn, o->an, o->coll, ch->id, t, tl);
        free(buf);
        rag_chunk_rec_free(ch);
    }
    return o->rc == RAG_OK ? 0 : o->rc;
}

static int lex_old_fn(rag_txn *txn, void *user)
{
    lex_old *o = user;
    unsigned char k[4] = {(unsigned char)(o->coll >> 24), (unsigned char)(o->coll >> 16),
                          (unsigned char)(o->coll >> 8), (unsigned char)o->coll};
    unsigned char v[16] = {0};
    int rc = rag_lexical_purge(txn, o->coll);
    if (rc == RAG_OK) /* empty statistics of the old format: chunks added keep it */
        rc = rag_store_kv_put(txn, "lex_stats", k, 4, v, 16);
    o->txn = txn;
    o->rc = RAG_OK;
    if (rc == RAG_OK)
        rc = rag_store_doc_scan(txn, o->coll, lex_old_doc, o);
    return rc < 0 ? rc : o->rc;
}

/* Plants one inconsistency in a collection's document fields: the document length of its
 * first posting (doc_len) or the document count of its statistics. */
typedef struct lex_plant {
    uint32_t coll;
    int stats;
    unsigned char key[160];
    size_t klen;
} lex_plant;

static int first_key(void *user, const void *key, size_t klen, const void *val, size_t vlen)
{
    lex_plant *p = user;
    (void)val;
    (void)vlen;
    if (klen <= sizeof p->key) {
        memcpy(p->key, key, klen);
        p->klen = klen;
    }
    return 1;
}

static int lex_plant_fn(rag_txn *txn, void *user)
{
    lex_plant *p = user;
    unsigned char prefix[4] = {(unsigned char)(p->coll >> 24), (unsigned char)(p->coll >> 16),
                               (unsigned char)(p->coll >> 8), (unsigned char)p->coll};
    const char *table = p->stats ? "lex_stats" : "lex_postings";
    const void *val;
    size_t vl;
    unsigned char v[64];
    p->klen = 0;
    int rc = rag_store_kv_scan(txn, table, prefix, 4, first_key, p);
    if (rc < 0)
        return rc;
    if (p->stats) { /* the collection's record is its shortest key: the prefix */
        memcpy(p->key, prefix, 4);
        p->klen = 4;
    }
    if ((rc = rag_store_kv_get(txn, table, p->key, p->klen, &val, &vl)) != RAG_OK)
        return rc;
    if (vl != (p->stats ? 32u : 20u))
        return RAG_EINVAL;
    memcpy(v, val, vl);
    v[p->stats ? 23 : 15]++; /* low byte of the documents / the document length */
    return rag_store_kv_put(txn, table, p->key, p->klen, v, vl);
}

static void test_lexical_repair(void)
{
    char dir[4200];
    static lex_hits before[2][N_LEX_QUERIES], after[2][N_LEX_QUERIES];
    static const char *const colls[2] = {"plain", "default"};
    snprintf(dir, sizeof dir, "%s/lexical", base);
    make_lexical_store(dir);
    ASSERT_EQ_INT(problems(dir), 0);
    char want_plain[128], want_default[128];
    {
        rag_open_options o;
        rag_open_options_init(&o);
        o.read_only = 1;
        rag_db *db = NULL;
        rag_collection_info pi = {0}, di = {0};
        ASSERT_OK(rag_open(dir, &o, &db));
        if (db) {
            ASSERT_OK(rag_collection_stats(db, "plain", &pi));
            ASSERT_OK(rag_collection_stats(db, "default", &di));
        }
        rag_close(db);
        ASSERT_TRUE(pi.chunks >= 2 * (LEX_DOCS - 1));
        snprintf(want_plain, sizeof want_plain,
                 "rebuilt the lexical index from the text of %llu live chunks (analyzer 'none'",
                 (unsigned long long)pi.chunks);
        snprintf(want_default, sizeof want_default,
                 "rebuilt the lexical index from the text of %llu live chunks (analyzer 'english'",
                 (unsigned long long)di.chunks);
    }
    for (int c = 0; c < 2; c++) {
        lex_search_all(dir, colls[c], before[c]);
        ASSERT_TRUE(before[c][0].n > 0 && before[c][1].n > 0 && before[c][4].n > 0);
    }

    /* 1. Postings and a chunk entry deleted in both collections; also one vector, which
     * is re-embedded with its document's title in front, as ingest embedded it. */
    static lex_damage dmg;
    for (int c = 0; c < 2; c++) {
        dmg.coll = coll_id_of(dir, colls[c]);
        inject(dir, lex_damage_fn, &dmg);
        ASSERT_TRUE(dmg.n >= 20);
    }
    float vec_before[DIM], vec_after[DIM];
    inj lost = {coll_id_of(dir, "default"), 0, 0, 0};
    {
        rag_store *st = NULL;
        rag_txn *txn = NULL;
        rag_doc_rec *d = NULL;
        ASSERT_OK(rag_store_open(dir, 1, &st));
        ASSERT_OK(rag_store_read(st, &txn));
        ASSERT_OK(rag_store_doc_get(txn, lost.coll, "doc07", &d));
        if (d)
            lost.id = d->chunk_ids[1];
        ASSERT_OK(rag_store_vec_get(txn, lost.coll, lost.id, vec_before, DIM));
        rag_doc_rec_free(d);
        rag_txn_end(txn);
        rag_store_close(st);
    }
    inject(dir, vec_fn, &lost);
    rag_check_report *r = check(dir, 0);
    ASSERT_TRUE(has_item(r, RAG_CHECK_PROBLEM, "(1 not indexed, 0 indexed but not live)"));
    ASSERT_TRUE(has_item(r, RAG_CHECK_PROBLEM, "lexical postings of"));
    ASSERT_TRUE(has_item(r, RAG_CHECK_PROBLEM, "document frequencies of"));
    ASSERT_TRUE(rag_check_report_count(r, RAG_CHECK_PROBLEM) >= 6);
    rag_check_report_free(r);
    int cli = cli_check(dir, 0);
    ASSERT_TRUE(cli == -1 || cli == 2);
    for (int c = 0; c < 2; c++) {
        lex_search_all(dir, colls[c], after[c]);
        ASSERT_TRUE(!same_hits(before[c], after[c])); /* the damage is visible to searches */
    }
    r = check(dir, RAG_CHECK_REPAIR);
    ASSERT_TRUE(has_item(r, RAG_CHECK_REPAIRED, want_plain));
    ASSERT_TRUE(has_item(r, RAG_CHECK_REPAIRED, want_default));
    ASSERT_TRUE(has_item(r, RAG_CHECK_REPAIRED, "re-embedded 1 chunks"));
    ASSERT_EQ_INT(rag_check_report_count(r, RAG_CHECK_UNFIXED), 0);
    rag_check_report_free(r);
    ASSERT_EQ_INT(problems(dir), 0);
    {
        rag_store *st = NULL;
        rag_txn *txn = NULL;
        ASSERT_OK(rag_store_open(dir, 1, &st));
        ASSERT_OK(rag_store_read(st, &txn));
        ASSERT_OK(rag_store_vec_get(txn, lost.coll, lost.id, vec_after, DIM));
        rag_txn_end(txn);
        rag_store_close(st);
        ASSERT_EQ_INT(memcmp(vec_before, vec_after, sizeof vec_before), 0);
    }
    cli = cli_check(dir, 0);
    ASSERT_TRUE(cli == -1 || cli == 0);
    for (int c = 0; c < 2; c++) {
        lex_search_all(dir, colls[c], after[c]);
        ASSERT_TRUE(same_hits(before[c], after[c]));
    }

    /* 2. A rebuild killed after its first transaction: the mark stays, entries are gone. */
    lex_cut cut = {coll_id_of(dir, "default"), 300, 0, 0};
    inject(dir, lex_cut_fn, &cut);
    ASSERT_EQ_INT(cut.deleted, 300);
    r = check(dir, 0);
    ASSERT_TRUE(has_item(r, RAG_CHECK_PROBLEM, "a rebuild of the lexical index was interrupted"));
    rag_check_report_free(r);
    cli = cli_check(dir, 1);
    ASSERT_TRUE(cli == -1 || cli == 0);
    if (cli == -1) {
        r = check(dir, RAG_CHECK_REPAIR);
        ASSERT_EQ_INT(rag_check_report_count(r, RAG_CHECK_UNFIXED), 0);
        rag_check_report_free(r);
    }
    ASSERT_EQ_INT(problems(dir), 0);
    lex_search_all(dir, "default", after[1]);
    ASSERT_TRUE(same_hits(before[1], after[1]));

    /* 3. Every lexical entry of a collection gone. */
    lex_cut wipe = {coll_id_of(dir, "plain"), 0, 0, 1};
    inject(dir, lex_cut_fn, &wipe);
    r = check(dir, 0);
    ASSERT_TRUE(has_item(r, RAG_CHECK_PROBLEM, "lexical index is empty but the collection holds"));
    ASSERT_EQ_INT(rag_check_report_count(r, RAG_CHECK_PROBLEM), 1);
    rag_check_report_free(r);
    lex_search_all(dir, "plain", after[0]);
    ASSERT_EQ_INT(after[0][0].n, 0);
    r = check(dir, RAG_CHECK_REPAIR);
    ASSERT_TRUE(has_item(r, RAG_CHECK_REPAIRED, want_plain));
    ASSERT_EQ_INT(rag_check_report_count(r, RAG_CHECK_UNFIXED), 0);
    rag_check_report_free(r);
    ASSERT_EQ_INT(problems(dir), 0);
    lex_search_all(dir, "plain", after[0]);
    ASSERT_TRUE(same_hits(before[0], after[0]));

    /* 4. An index in the chunk-only format of older stores: searched by chunk whatever the
     * unit asked, noted by the check, rebuilt by document by the repair. */
    static lex_hits by_chunk[N_LEX_QUERIES];
    lex_search_unit(dir, "default", RAG_LEXICAL_CHUNK, by_chunk);
    ASSERT_TRUE(!same_hits(by_chunk, before[1])); /* the units rank differently here */
    lex_old old = {coll_id_of(dir, "default"), NULL, NULL, 0};
    ASSERT_OK(rag_analyzer_create("english", 1, &old.an));
    inject(dir, lex_old_fn, &old);
    rag_analyzer_free(old.an);
    r = check(dir, 0);
    ASSERT_EQ_INT(rag_check_report_count(r, RAG_CHECK_PROBLEM), 0);
    ASSERT_TRUE(has_item(r, RAG_CHECK_NOTE, "chunk-only format of older versions"));
    rag_check_report_free(r);
    lex_search_all(dir, "default", after[1]);
    ASSERT_TRUE(same_hits(by_chunk, after[1]));
    ASSERT_TRUE(!lex_stats_by_doc(dir, "default")); /* no document statistics either */
    r = check(dir, RAG_CHECK_REPAIR);
    ASSERT_TRUE(has_item(r, RAG_CHECK_REPAIRED, want_default));
    ASSERT_EQ_INT(rag_check_report_count(r, RAG_CHECK_UNFIXED), 0);
    rag_check_report_free(r);
    r = check(dir, 0);
    ASSERT_EQ_INT(rag_check_report_count(r, RAG_CHECK_PROBLEM), 0);
    ASSERT_TRUE(!has_item(r, RAG_CHECK_NOTE, "chunk-only format"));
    rag_check_report_free(r);
    lex_search_all(dir, "default", after[1]);
    ASSERT_TRUE(same_hits(before[1], after[1]));
    ASSERT_TRUE(lex_stats_by_doc(dir, "default"));

    /* 5. A posting's document length, then the statistics' document count, planted wrong. */
    lex_plant plant = {coll_id_of(dir, "default"), 0, {0}, 0};
    inject(dir, lex_plant_fn, &plant);
    r = check(dir, 0);
    ASSERT_TRUE(has_item(r, RAG_CHECK_PROBLEM, "carry another document ordinal or length"));
    rag_check_report_free(r);
    plant.stats = 1;
    inject(dir, lex_plant_fn, &plant);
    r = check(dir, 0);
    ASSERT_TRUE(has_item(r, RAG_CHECK_PROBLEM, "lexical statistics count 30 documents"));
    rag_check_report_free(r);
    r = check(dir, RAG_CHECK_REPAIR);
    ASSERT_TRUE(has_item(r, RAG_CHECK_REPAIRED, want_default));
    rag_check_report_free(r);
    ASSERT_EQ_INT(problems(dir), 0);
    lex_search_all(dir, "default", after[1]);
    ASSERT_TRUE(same_hits(before[1], after[1]));
}

int main(void)
{
    const char *tmp = getenv("RAGCORE_TEST_TMP");
    snprintf(base, sizeof base, "%s/check", tmp ? tmp : "/tmp");
    mkdir(base, 0755);
    RUN_TEST(test_clean_store);
    RUN_TEST(test_stuck_checker);
    RUN_TEST(test_orphans);
    RUN_TEST(test_vectors);
    RUN_TEST(test_counters);
    RUN_TEST(test_index_damage);
    RUN_TEST(test_repair_ef_construction);
    RUN_TEST(test_index_contents);
    RUN_TEST(test_lost_chunk_is_not_hidden);
    RUN_TEST(test_orphan_collection_and_files);
    RUN_TEST(test_ivf_and_sq);
    RUN_TEST(test_lexical_repair);
    return TEST_REPORT();
}
