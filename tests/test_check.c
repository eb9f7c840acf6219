/* test_check.c - `check` finds each kind of injected inconsistency, and --repair fixes what
 * is derived (indexes, counters, hashes, vectors, orphans) without touching documents. */
#include "test.h"

#include "check.h"
#include "ragcore.h"
#include "store.h"
#include "vindex.h"

#include <math.h>
#include <stdint.h>
#include <sys/stat.h>
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
    int rc = rag_check_store(dir, flags, &r);
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
    ASSERT_EQ_INT(rag_check_store(base, 0, &r), RAG_ENOTFOUND);
    ASSERT_TRUE(strstr(rag_errmsg(), "not a ragcore store") != NULL);
}

static int orphan_fn(rag_txn *txn, void *user)
{
    inj *a = user;
    uint64_t first;
    int rc = rag_store_alloc_ids(txn, 1, &first);
    float v[DIM] = {0};
    v[0] = 1;
    rag_chunk_rec ch = {first, 0, 5, 1, 0, 42, "ghost-doc", "", "hello", 5};
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
    ASSERT_OK(rag_vindex_save(ix, path, next));
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
    ASSERT_OK(rag_vindex_save(ix, path, next + 100));
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
    rag_check_report *r = check(dir, RAG_CHECK_REPAIR);
    ASSERT_TRUE(has_item(r, RAG_CHECK_PROBLEM, "document 'doc11' lists chunk"));
    /* Primary data is never patched over: the problem remains, the document stays. */
    ASSERT_TRUE(has_item(r, RAG_CHECK_UNFIXED, "document 'doc11' lists chunk"));
    rag_check_report_free(r);
    ASSERT_EQ_INT(doc_count(dir), NDOCS - 1);
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

int main(void)
{
    const char *tmp = getenv("RAGCORE_TEST_TMP");
    snprintf(base, sizeof base, "%s/check", tmp ? tmp : "/tmp");
    mkdir(base, 0755);
    RUN_TEST(test_clean_store);
    RUN_TEST(test_orphans);
    RUN_TEST(test_vectors);
    RUN_TEST(test_counters);
    RUN_TEST(test_index_damage);
    RUN_TEST(test_index_contents);
    RUN_TEST(test_lost_chunk_is_not_hidden);
    RUN_TEST(test_orphan_collection_and_files);
    RUN_TEST(test_ivf_and_sq);
    return TEST_REPORT();
}
