/* test_store.c - LMDB store: records round-trip, reopen, automatic map growth, aux tables. */
#include "test.h"

#include "db.h"
#include "hygiene_dedup.h"
#include "ragcore.h"
#include "status.h"
#include "store.h"

#include <stdint.h>
#include <sys/stat.h>
#include <unistd.h>

static char dir[4096];

static void fresh_dir(const char *name)
{
    test_fresh_dir(dir, sizeof dir, name);
}

typedef struct write_docs_arg {
    int n;
    int textlen;
} write_docs_arg;

static int write_docs(rag_txn *txn, void *user)
{
    write_docs_arg *a = user;
    rag_coll_rec rec;
    int rc = rag_store_coll_get(txn, "c1", &rec);
    if (rc == RAG_ENOTFOUND) {
        memset(&rec, 0, sizeof rec);
        if ((rc = rag_store_coll_new_id(txn, &rec.id)) != RAG_OK)
            return rc;
    } else if (rc != RAG_OK) {
        return rc;
    }
    char *text = malloc((size_t)a->textlen + 1);
    memset(text, 'x', (size_t)a->textlen);
    text[a->textlen] = 0;
    uint64_t first;
    if ((rc = rag_store_alloc_ids(txn, (uint64_t)a->n, &first)) != RAG_OK)
        goto done;
    for (int i = 0; i < a->n && rc == RAG_OK; i++) {
        char id[32];
        snprintf(id, sizeof id, "doc-%06d", (int)(first + (uint64_t)i));
        uint64_t cid = first + (uint64_t)i;
        rag_doc_rec d = {id, "src", "title", "{\"a\":1}", 11, 22, 33, 44, 55,
                         (uint64_t)a->textlen, 1, &cid};
        rag_chunk_rec c = {cid, 0, (uint64_t)a->textlen, 7, 0, 99, id, "H > I", text,
                           (size_t)a->textlen, &d};
        float v[4] = {1, 2, 3, (float)i};
        rc = rag_store_doc_put(txn, rec.id, &d);
        if (rc == RAG_OK)
            rc = rag_store_chunk_put(txn, rec.id, &c);
        if (rc == RAG_OK)
            rc = rag_store_vec_put(txn, rec.id, cid, v, 4);
        rec.documents++;
    }
    if (rc == RAG_OK)
        rc = rag_store_coll_put(txn, "c1", &rec);
done:
    free(text);
    return rc;
}

static void test_roundtrip_and_reopen(void)
{
    fresh_dir("store_roundtrip");
    rag_store *st = NULL;
    ASSERT_OK(rag_store_open(dir, 0, &st));
    write_docs_arg a = {3, 10};
    ASSERT_OK(rag_store_write(st, write_docs, &a));
    rag_store_close(st);
    st = NULL;
    ASSERT_OK(rag_store_open(dir, 1, &st));
    rag_txn *txn = NULL;
    ASSERT_OK(rag_store_read(st, &txn));
    rag_coll_rec rec;
    ASSERT_OK(rag_store_coll_get(txn, "c1", &rec));
    ASSERT_EQ_INT(rec.documents, 3);
    rag_doc_rec *d = NULL;
    ASSERT_OK(rag_store_doc_get(txn, rec.id, "doc-000002", &d));
    if (d) {
        ASSERT_STR_EQ(d->source, "src");
        ASSERT_STR_EQ(d->metadata, "{\"a\":1}");
        ASSERT_EQ_INT(d->source_mtime, 11);
        ASSERT_EQ_INT(d->valid_until, 44);
        ASSERT_EQ_INT(d->nchunks, 1);
        ASSERT_EQ_INT(d->chunk_ids[0], 2);
    }
    rag_doc_rec_free(d);
    d = NULL;
    rag_chunk_rec *c = NULL;
    ASSERT_OK(rag_store_chunk_get(txn, rec.id, 2, &c));
    if (c) {
        ASSERT_STR_EQ(c->heading, "H > I");
        ASSERT_STR_EQ(c->text, "xxxxxxxxxx");
        ASSERT_EQ_INT(c->tokens, 7);
    }
    rag_chunk_rec_free(c);
    c = NULL;
    float v[4];
    ASSERT_OK(rag_store_vec_get(txn, rec.id, 3, v, 4));
    ASSERT_NEAR(v[3], 2.0, 0);
    ASSERT_EQ_INT(rag_store_vec_get(txn, rec.id, 3, v, 8), RAG_ECORRUPT);
    ASSERT_EQ_INT(rag_store_doc_get(txn, rec.id, "nope", &d), RAG_ENOTFOUND);
    ASSERT_EQ_INT(rag_store_chunk_get(txn, rec.id + 1, 2, &c), RAG_ENOTFOUND);
    uint64_t next = 0;
    ASSERT_OK(rag_store_next_id(txn, &next));
    ASSERT_EQ_INT(next, 4);
    rag_txn_end(txn);
    rag_doc_rec_free(d);
    rag_chunk_rec_free(c);
    /* Writing to a read-only store is refused, not crashed. */
    ASSERT_EQ_INT(rag_store_write(st, write_docs, &a), RAG_EREADONLY);
    rag_store_close(st);
}

static void test_map_grows(void)
{
    fresh_dir("store_growth");
    setenv("RAGCORE_INITIAL_MAP_SIZE", "1048576", 1);
    rag_store *st = NULL;
    ASSERT_OK(rag_store_open(dir, 0, &st));
    size_t before = rag_store_map_size(st);
    ASSERT_EQ_INT(before, 1048576);
    /* 40 batches of 50 docs x 10 KB = 20 MB through a 1 MB initial map. */
    for (int i = 0; i < 40; i++) {
        write_docs_arg a = {50, 10000};
        ASSERT_OK(rag_store_write(st, write_docs, &a));
    }
    ASSERT_TRUE(rag_store_map_size(st) >= 16u << 20);
    rag_txn *txn = NULL;
    rag_coll_rec rec;
    ASSERT_OK(rag_store_read(st, &txn));
    ASSERT_OK(rag_store_coll_get(txn, "c1", &rec));
    ASSERT_EQ_INT(rec.documents, 2000);
    rag_txn_end(txn);
    rag_store_close(st);
    unsetenv("RAGCORE_INITIAL_MAP_SIZE");
    /* Reopening picks a map large enough for the file. */
    ASSERT_OK(rag_store_open(dir, 0, &st));
    ASSERT_TRUE(rag_store_map_size(st) >= 16u << 20);
    rag_store_close(st);
}

static int count_visit(void *user, const void *k, size_t kl, const void *v, size_t vl)
{
    (*(int *)user)++;
    return 0;
}

typedef struct kv_arg {
    int op;
} kv_arg;

static int kv_write(rag_txn *txn, void *user)
{
    kv_arg *a = user;
    int rc = RAG_OK;
    if (a->op == 0) {
        for (int i = 0; i < 10 && rc == RAG_OK; i++) {
            char k[8];
            snprintf(k, sizeof k, "k%02d", i);
            rc = rag_store_kv_put(txn, "querylog", k, 3, "value", 5);
        }
        return rc;
    }
    long n = 0;
    rc = rag_store_kv_trim(txn, "querylog", "k05", 3, &n);
    return rc == RAG_OK && n == 5 ? RAG_OK : RAG_ESTORE;
}

static void test_aux_tables(void)
{
    fresh_dir("store_aux");
    rag_store *st = NULL;
    ASSERT_OK(rag_store_open(dir, 0, &st));
    kv_arg a = {0};
    ASSERT_OK(rag_store_write(st, kv_write, &a));
    a.op = 1;
    ASSERT_OK(rag_store_write(st, kv_write, &a));
    rag_txn *txn = NULL;
    ASSERT_OK(rag_store_read(st, &txn));
    int n = 0;
    ASSERT_OK(rag_store_kv_scan(txn, "querylog", NULL, 0, count_visit, &n));
    ASSERT_EQ_INT(n, 5);
    const void *v;
    size_t vl;
    ASSERT_EQ_INT(rag_store_kv_get(txn, "querylog", "k04", 3, &v, &vl), RAG_ENOTFOUND);
    ASSERT_OK(rag_store_kv_get(txn, "querylog", "k05", 3, &v, &vl));
    ASSERT_EQ_INT(vl, 5);
    /* a table never opened is absent, a name no table can have is refused */
    ASSERT_EQ_INT(rag_store_kv_get(txn, "nosuchtable", "k05", 3, &v, &vl), RAG_ENOTFOUND);
    ASSERT_EQ_INT(rag_store_kv_get(txn, "", "k05", 3, &v, &vl), RAG_EINVAL);
    rag_txn_end(txn);
    rag_store_close(st);

    /* what the store's writers put into "querylog" before application tables existed is
     * what the public calls read, and the library's own tables are not reachable */
    rag_open_options o;
    rag_open_options_init(&o);
    o.embedder = "hash";
    rag_db *db = NULL;
    ASSERT_OK(rag_open(dir, &o, &db));
    if (!db)
        return;
    void *val = NULL;
    size_t len = 0;
    ASSERT_OK(rag_table_get(db, "querylog", "k07", 3, &val, &len));
    ASSERT_EQ_INT(len, 5);
    ASSERT_TRUE(val && memcmp(val, "value", 5) == 0);
    rag_free(val);
    ASSERT_EQ_INT(rag_table_get(db, "embcache", "#stats", 6, &val, &len), RAG_EINVAL);
    ASSERT_TRUE(rag_store_kv_is_library("lex_postings") && rag_store_kv_is_library("config") &&
                rag_store_kv_is_library("dedup_anything") && !rag_store_kv_is_library("keys"));
    ASSERT_OK(rag_close(db));
}

static void test_not_a_store(void)
{
    fresh_dir("store_missing");
    rag_store *st = NULL;
    ASSERT_EQ_INT(rag_store_open(dir, 1, &st), RAG_ENOTFOUND);
    ASSERT_TRUE(st == NULL);
    /* A directory holding garbage named data.mdb. */
    mkdir(dir, 0755);
    char path[4200];
    snprintf(path, sizeof path, "%s/data.mdb", dir);
    FILE *fp = fopen(path, "wb");
    for (int i = 0; i < 20000; i++)
        fputc(i * 7, fp);
    fclose(fp);
    int rc = rag_store_open(dir, 0, &st);
    ASSERT_TRUE(rc == RAG_ECORRUPT || rc == RAG_ESTORE);
    ASSERT_TRUE(strlen(rag_errmsg()) > 0);
    ASSERT_TRUE(st == NULL);
}

/* Tombstones every id below the store's next id that is not a live chunk. */
static int tomb_dead_ids(rag_txn *txn, void *user)
{
    uint64_t next = 0, *count = user;
    rag_coll_rec rec;
    int rc = rag_store_coll_get(txn, RAG_DEFAULT_COLLECTION, &rec);
    if (rc == RAG_OK)
        rc = rag_store_next_id(txn, &next);
    for (uint64_t id = 0; rc == RAG_OK && id < next; id++) {
        rag_chunk_rec *ch = NULL;
        rc = rag_store_chunk_get(txn, rec.id, id, &ch);
        rag_chunk_rec_free(ch);
        if (rc == RAG_ENOTFOUND) {
            rag_clear_error();
            rc = rag_store_tomb_put(txn, rec.id, id);
            ++*count;
        }
    }
    return rc;
}

/* A compaction killed after writing its index file but before clearing the tombstones
 * leaves tombstones of ids the file no longer holds: reopening must not count them. */
static void test_stale_tombstones_not_counted(void)
{
    fresh_dir("store_stale_tombs");
    rag_open_options o;
    rag_open_options_init(&o);
    o.embedder = "hash";
    o.checkpoint_every = -1;
    rag_db *db = NULL;
    ASSERT_OK(rag_open(dir, &o, &db));
    rag_document docs[300];
    char ids[300][16], texts[300][64];
    for (int i = 0; i < 300; i++) {
        rag_document_init(&docs[i]);
        snprintf(ids[i], sizeof ids[i], "doc%d", i);
        snprintf(texts[i], sizeof texts[i], "document %d about topic %d", i, i % 17);
        docs[i].id = ids[i];
        docs[i].text = texts[i];
    }
    ASSERT_OK(rag_ingest(db, NULL, docs, 300, NULL));
    for (int i = 0; i < 100; i++)
        ASSERT_OK(rag_delete(db, NULL, ids[i]));
    rag_collection_info ci;
    ASSERT_OK(rag_collection_stats(db, RAG_DEFAULT_COLLECTION, &ci));
    ASSERT_EQ_INT(ci.tombstones, 100);
    ASSERT_OK(rag_checkpoint(db)); /* compacts: 100 > 20 % of 300 */
    ASSERT_OK(rag_collection_stats(db, RAG_DEFAULT_COLLECTION, &ci));
    ASSERT_EQ_INT(ci.tombstones, 0);
    ASSERT_EQ_INT(ci.index_vectors, 200);
    ASSERT_OK(rag_close(db));
    /* Put the tombstones back, as if the compaction had died before clearing them. */
    rag_store *st = NULL;
    uint64_t added = 0;
    ASSERT_OK(rag_store_open(dir, 0, &st));
    ASSERT_OK(rag_store_write(st, tomb_dead_ids, &added));
    rag_store_close(st);
    ASSERT_TRUE(added >= 100);
    ASSERT_OK(rag_open(dir, &o, &db));
    ASSERT_OK(rag_collection_stats(db, RAG_DEFAULT_COLLECTION, &ci));
    ASSERT_EQ_INT(ci.index_vectors, 200);
    ASSERT_EQ_INT(ci.tombstones, 0);
    /* A later delete is counted as usual. */
    ASSERT_OK(rag_delete(db, NULL, ids[150]));
    ASSERT_OK(rag_collection_stats(db, RAG_DEFAULT_COLLECTION, &ci));
    ASSERT_EQ_INT(ci.tombstones, 1);
    ASSERT_OK(rag_close(db));
}

/* The content hashes written where an observer of the file sees them. */
#define TEXT_HASH 0x0123456789abcdefULL
#define DOC_HASH 0xfedcba9876543210ULL

static int write_hashes(rag_txn *txn, void *user)
{
    (void)user;
    uint32_t before = 9;
    rag_dedup_sig s;
    memset(&s, 0, sizeof s); /* no shingles: the exact key only */
    s.hash = DOC_HASH;
    int rc = rag_store_hash_incr(txn, 7, TEXT_HASH, &before);
    if (rc == RAG_OK && before != 0)
        rc = RAG_ECORRUPT;
    if (rc == RAG_OK)
        rc = rag_dedup_store_add(txn, 7, "doc-a", &s, 2.0);
    return rc;
}

/* Whether data.mdb of `dir` holds the big-endian bytes of h (as the keys store it). */
static int file_has_hash(uint64_t h)
{
    char path[4200];
    snprintf(path, sizeof path, "%s/data.mdb", dir);
    FILE *f = fopen(path, "rb");
    if (!f)
        return -1;
    unsigned char want[8], *buf = malloc(1 << 20);
    for (int i = 0; i < 8; i++)
        want[i] = (unsigned char)(h >> (56 - 8 * i));
    size_t n, keep = 0;
    int found = 0;
    while (!found && (n = fread(buf + keep, 1, (1 << 20) - keep, f)) > 0) {
        n += keep;
        for (size_t i = 0; i + 8 <= n && !found; i++)
            found = memcmp(buf + i, want, 8) == 0;
        keep = n >= 7 ? 7 : n;
        memmove(buf, buf + n - keep, keep);
    }
    free(buf);
    fclose(f);
    return found;
}

/* On an encrypted store the chunk-hash counts and the duplicate index's exact keys are
 * keyed: the plain hash of a known text is in no byte of the file (it is in a plain
 * store's, so the search can fail), and counting and duplicate lookups still work. */
static void test_keyed_hashes(void)
{
    static const char *const secrets[] = {NULL, "a passphrase for the keyed hash test"};
    for (int enc = 0; enc < 2; enc++) {
        fresh_dir(enc ? "store_keyed_hashes" : "store_plain_hashes");
        rag_store *st = NULL;
        ASSERT_OK(rag_store_open(dir, 0, &st));
        ASSERT_OK(rag_store_unlock(st, secrets[enc]));
        ASSERT_OK(rag_store_write(st, write_hashes, NULL));
        rag_store_close(st);
        ASSERT_EQ_INT(file_has_hash(TEXT_HASH), !enc);
        ASSERT_EQ_INT(file_has_hash(DOC_HASH), !enc);
        ASSERT_OK(rag_store_open(dir, 1, &st));
        ASSERT_OK(rag_store_unlock(st, secrets[enc]));
        rag_txn *txn = NULL;
        ASSERT_OK(rag_store_read(st, &txn));
        rag_dedup_sig s;
        memset(&s, 0, sizeof s);
        s.hash = DOC_HASH;
        rag_dedup_found found;
        ASSERT_OK(rag_dedup_store_find(txn, 7, &s, 2.0, NULL, &found));
        ASSERT_EQ_INT(found.kind, RAG_DUP_EXACT);
        ASSERT_STR_EQ(found.canonical, "doc-a");
        s.hash = DOC_HASH + 1;
        ASSERT_OK(rag_dedup_store_find(txn, 7, &s, 2.0, NULL, &found));
        ASSERT_EQ_INT(found.kind, RAG_DUP_NONE);
        rag_txn_end(txn);
        rag_store_close(st);
        /* the count is found again under its keyed form */
        ASSERT_OK(rag_store_open(dir, 0, &st));
        ASSERT_OK(rag_store_unlock(st, secrets[enc]));
        ASSERT_EQ_INT(rag_store_write(st, write_hashes, NULL), RAG_ECORRUPT);
        rag_store_close(st);
    }
}

static int put_titled_doc(rag_txn *txn, void *user)
{
    uint64_t cid = 1;
    rag_doc_rec d = {"doc-r", "src", (char *)user, "{}", 1, 2, 3, 0, 5, 10, 1, &cid};
    return rag_store_doc_put(txn, 3, &d);
}

/* Reads an encrypted store's document "doc-r" in a fresh read transaction: its title. */
static void read_title(rag_store *st, char *out, size_t cap)
{
    rag_txn *txn = NULL;
    rag_doc_rec *d = NULL;
    ASSERT_OK(rag_store_read(st, &txn));
    ASSERT_OK(rag_store_doc_get(txn, 3, "doc-r", &d));
    snprintf(out, cap, "%s", d ? d->title : "");
    rag_doc_rec_free(d);
    rag_txn_end(txn);
}

/* Records opened by reads of an encrypted store are kept opened in memory (read again
 * without decrypting): a read after a replacement still gets the new record, and the
 * same record read twice is the same. */
static void test_encrypted_reread(void)
{
    fresh_dir("store_reread");
    rag_store *st = NULL;
    char title[64];
    ASSERT_OK(rag_store_open(dir, 0, &st));
    ASSERT_OK(rag_store_unlock(st, "a passphrase for the reread test"));
    ASSERT_OK(rag_store_write(st, put_titled_doc, "first title"));
    read_title(st, title, sizeof title);
    ASSERT_STR_EQ(title, "first title");
    read_title(st, title, sizeof title);
    ASSERT_STR_EQ(title, "first title");
    ASSERT_OK(rag_store_write(st, put_titled_doc, "second title"));
    read_title(st, title, sizeof title);
    ASSERT_STR_EQ(title, "second title");
    read_title(st, title, sizeof title);
    ASSERT_STR_EQ(title, "second title");
    rag_store_close(st);
}

static int put_chunks_with_doc(rag_txn *txn, void *user)
{
    (void)user;
    uint64_t cid = 5;
    rag_doc_rec d = {"doc-f", "a/source.md", "The title", "{\"k\":\"v\"}", 11, 22, 33, 44,
                     55, 5, 1, &cid};
    rag_chunk_rec with = {5, 0, 5, 1, RAG_CHUNK_DUPLICATE, 77, "doc-f", "H", "hello", 5, &d};
    rag_chunk_rec without = {6, 0, 5, 1, 0, 78, "doc-f", "", "world", 5, NULL};
    int rc = rag_store_chunk_put(txn, 3, &with);
    return rc == RAG_OK ? rag_store_chunk_put(txn, 3, &without) : rc;
}

/* An encrypted store's chunk record carries its document's hit fields (read back with the
 * record, so a hit opens one sealed record); a plain store's does not (its document record
 * is cheap to read), and a record written without them reads back without them. The
 * chunk's own fields are the same either way. */
static void test_chunk_doc_fields(void)
{
    static const char *const secrets[] = {NULL, "a passphrase for the doc fields test"};
    for (int enc = 0; enc < 2; enc++) {
        fresh_dir(enc ? "store_doc_fields_enc" : "store_doc_fields_plain");
        rag_store *st = NULL;
        ASSERT_OK(rag_store_open(dir, 0, &st));
        ASSERT_OK(rag_store_unlock(st, secrets[enc]));
        ASSERT_OK(rag_store_write(st, put_chunks_with_doc, NULL));
        rag_txn *txn = NULL;
        rag_chunk_rec *c = NULL, *c2 = NULL;
        ASSERT_OK(rag_store_read(st, &txn));
        ASSERT_OK(rag_store_chunk_get(txn, 3, 5, &c));
        ASSERT_OK(rag_store_chunk_get(txn, 3, 6, &c2));
        ASSERT_TRUE(c && c2);
        if (c && c2) {
            ASSERT_STR_EQ(c->text, "hello");
            ASSERT_STR_EQ(c->doc_id, "doc-f");
            ASSERT_EQ_INT(c->flags & RAG_CHUNK_DUPLICATE, RAG_CHUNK_DUPLICATE);
            ASSERT_EQ_INT(c->flags & RAG_CHUNK_DOC_FIELDS, enc ? RAG_CHUNK_DOC_FIELDS : 0);
            ASSERT_EQ_INT(c->doc != NULL, enc);
            if (enc && c->doc) {
                ASSERT_STR_EQ(c->doc->id, "doc-f");
                ASSERT_STR_EQ(c->doc->source, "a/source.md");
                ASSERT_STR_EQ(c->doc->title, "The title");
                ASSERT_STR_EQ(c->doc->metadata, "{\"k\":\"v\"}");
                ASSERT_EQ_INT(c->doc->source_mtime, 11);
                ASSERT_EQ_INT(c->doc->ingested_at, 22);
                ASSERT_EQ_INT(c->doc->updated_at, 33);
                ASSERT_EQ_INT(c->doc->valid_until, 44);
            }
            ASSERT_STR_EQ(c2->text, "world");
            ASSERT_EQ_INT(c2->flags, 0);
            ASSERT_TRUE(c2->doc == NULL);
        }
        rag_chunk_rec_free(c);
        rag_chunk_rec_free(c2);
        rag_txn_end(txn);
        rag_store_close(st);
    }
}

#define COMPAT_KEY "a passphrase for the compatibility test"

/* Rewrites every chunk record of collection "default" without its document's fields, as
 * builds before them wrote an encrypted store's chunks. */
typedef struct strip_arg {
    rag_txn *txn;
    uint32_t coll;
    int rc, stripped;
} strip_arg;

static int strip_one(void *user, uint64_t id)
{
    strip_arg *a = user;
    rag_chunk_rec *c = NULL;
    a->rc = rag_store_chunk_get(a->txn, a->coll, id, &c);
    if (a->rc == RAG_OK) {
        a->stripped += c->doc != NULL;
        rag_doc_rec_free(c->doc);
        c->doc = NULL;
        a->rc = rag_store_chunk_put(a->txn, a->coll, c);
    }
    rag_chunk_rec_free(c);
    return a->rc != RAG_OK;
}

static int strip_doc_fields(rag_txn *txn, void *user)
{
    strip_arg *a = user;
    rag_coll_rec rec;
    int rc = rag_store_coll_get(txn, "default", &rec);
    if (rc != RAG_OK)
        return rc;
    a->txn = txn;
    a->coll = rec.id;
    rc = rag_store_chunk_id_scan(txn, rec.id, strip_one, a);
    return a->rc != RAG_OK ? a->rc : rc < 0 ? rc : RAG_OK;
}

/* The hits of `query` in every mode as one line each: chunk id, score, document id,
 * title, source, metadata and times. */
static void hits_text(const char *path, const char *query, char *out, size_t cap)
{
    rag_open_options o;
    rag_open_options_init(&o);
    o.store_key = COMPAT_KEY;
    rag_db *db = NULL;
    size_t len = 0;
    out[0] = 0;
    ASSERT_OK(rag_open(path, &o, &db));
    for (int mode = RAG_MODE_HYBRID; db && mode <= RAG_MODE_LEXICAL; mode++) {
        rag_search_options so;
        rag_search_options_init(&so);
        so.mode = (rag_mode)mode;
        so.k = 4;
        rag_results *res = NULL;
        ASSERT_OK(rag_search(db, query, &so, &res));
        for (size_t i = 0; res && i < rag_results_count(res) && len < cap; i++) {
            const rag_hit *h = rag_results_get(res, i);
            len += (size_t)snprintf(out + len, cap - len, "%llu %.6f %s|%s|%s|%s|%lld %lld\n",
                                    (unsigned long long)h->chunk_id, h->score, h->doc_id,
                                    h->title, h->source, h->metadata_json,
                                    (long long)h->source_mtime, (long long)h->updated_at);
        }
        rag_results_free(res);
    }
    rag_close(db);
}

/* An encrypted store whose chunk records do not carry their document's fields (written by
 * a build before them) gives the same hits, titles, sources and metadata included, as
 * when they do. */
static void test_hits_without_doc_fields(void)
{
    fresh_dir("store_doc_fields_compat");
    rag_open_options o;
    rag_open_options_init(&o);
    o.embedder = "hash";
    o.dim = 64;
    o.store_key = COMPAT_KEY;
    rag_db *db = NULL;
    ASSERT_OK(rag_open(dir, &o, &db));
    if (!db)
        return;
    rag_document docs[3];
    static const char *const texts[] = {"rivers and mountains of the north",
                                        "engines and turbines in the mountains",
                                        "a river delta with turbines"};
    static const char *const titles[] = {"North", "Machines", "Delta"};
    static const char *const metas[] = {"{\"n\":1}", NULL, "{\"n\":3}"};
    char ids[3][8];
    for (int i = 0; i < 3; i++) {
        rag_document_init(&docs[i]);
        snprintf(ids[i], sizeof ids[i], "d%d", i);
        docs[i].id = ids[i];
        docs[i].text = texts[i];
        docs[i].title = titles[i];
        docs[i].source = i == 1 ? NULL : "notes/file.md";
        docs[i].metadata_json = metas[i];
        docs[i].source_mtime = 1000 + i;
    }
    ASSERT_OK(rag_ingest(db, "default", docs, 3, NULL));
    rag_close(db);
    char before[4096], after[4096];
    hits_text(dir, "mountains turbines", before, sizeof before);
    ASSERT_TRUE(strstr(before, "|Machines||{}|1001 ") != NULL);
    ASSERT_TRUE(strstr(before, "|North|notes/file.md|{\"n\":1}|1000 ") != NULL);
    rag_store *st = NULL;
    strip_arg a = {0};
    ASSERT_OK(rag_store_open(dir, 0, &st));
    ASSERT_OK(rag_store_unlock(st, COMPAT_KEY));
    ASSERT_OK(rag_store_write(st, strip_doc_fields, &a));
    rag_store_close(st);
    ASSERT_EQ_INT(a.stripped, 3); /* they were there */
    hits_text(dir, "mountains turbines", after, sizeof after);
    ASSERT_STR_EQ(after, before);
}

/* ---- prefix scans ------------------------------------------------------------------------ */

#define PFX_KEYS 150 /* "p000".."p149" */

/* Writes "o9", "p", "p000".."p149" and "q0" into "querylog", each valued "v" + its key. */
static int pfx_write(rag_txn *txn, void *user)
{
    char k[16], v[24];
    int rc = RAG_OK;
    (void)user;
    for (int i = -3; i < PFX_KEYS && rc == RAG_OK; i++) {
        if (i == -3)
            snprintf(k, sizeof k, "o9");
        else if (i == -2)
            snprintf(k, sizeof k, "p");
        else if (i == -1)
            snprintf(k, sizeof k, "q0");
        else
            snprintf(k, sizeof k, "p%03d", i);
        snprintf(v, sizeof v, "v%s", k);
        rc = rag_store_kv_put(txn, "querylog", k, strlen(k), v, strlen(v));
    }
    return rc;
}

typedef struct pfx_seen {
    char keys[PFX_KEYS + 4][16];
    int n, runs, max_run, stop_at, bad_value;
} pfx_seen;

static int pfx_visit(void *user, const rag_store_kv_ent *ents, size_t n)
{
    pfx_seen *p = user;
    p->runs++;
    if ((int)n > p->max_run)
        p->max_run = (int)n;
    for (size_t i = 0; i < n && p->n < PFX_KEYS + 4; i++) {
        char *k = p->keys[p->n++];
        snprintf(k, 16, "%.*s", (int)(ents[i].klen < 15 ? ents[i].klen : 15),
                 (const char *)ents[i].key);
        if (ents[i].vlen != ents[i].klen + 1 || ((const char *)ents[i].val)[0] != 'v' ||
            memcmp((const char *)ents[i].val + 1, ents[i].key, ents[i].klen) != 0)
            p->bad_value++;
    }
    return p->runs == p->stop_at ? 7 : 0;
}

static int pfx_scan(rag_store *st, const char *table, const char *prefix, size_t plen,
                    pfx_seen *p, int stop_at)
{
    rag_txn *txn = NULL;
    memset(p, 0, sizeof *p);
    p->stop_at = stop_at;
    int rc = rag_store_read(st, &txn);
    if (rc == RAG_OK)
        rc = rag_store_kv_prefix_scan(txn, table, prefix, plen, pfx_visit, p);
    rag_txn_end(txn);
    return rc;
}

/* rag_store_kv_prefix_scan visits exactly the keys under the prefix, in order, in runs of
 * at most RAG_STORE_KV_RUN, with their values (opened on an encrypted store, whose
 * "querylog" is sealed); stops where visit says and returns its status; refuses empty
 * prefixes; sees nothing in a table not open; an encrypted store without its key is
 * RAG_EKEY. */
static void test_prefix_scan(void)
{
    static const char *const secrets[] = {NULL, "a passphrase for the prefix scan test"};
    for (int enc = 0; enc < 2; enc++) {
        fresh_dir(enc ? "store_prefix_scan_enc" : "store_prefix_scan");
        rag_store *st = NULL;
        pfx_seen p;
        ASSERT_OK(rag_store_open(dir, 0, &st));
        ASSERT_OK(rag_store_unlock(st, secrets[enc]));
        ASSERT_OK(rag_store_write(st, pfx_write, NULL));

        ASSERT_OK(pfx_scan(st, "querylog", "p", 1, &p, 0));
        ASSERT_EQ_INT(p.n, PFX_KEYS + 1);
        ASSERT_STR_EQ(p.keys[0], "p");
        ASSERT_STR_EQ(p.keys[1], "p000");
        ASSERT_STR_EQ(p.keys[PFX_KEYS], "p149");
        ASSERT_EQ_INT(p.runs, (PFX_KEYS + 1 + RAG_STORE_KV_RUN - 1) / RAG_STORE_KV_RUN);
        ASSERT_EQ_INT(p.max_run, RAG_STORE_KV_RUN);
        ASSERT_EQ_INT(p.bad_value, 0);
        for (int i = 1; i < p.n; i++)
            ASSERT_TRUE(strcmp(p.keys[i - 1], p.keys[i]) < 0);

        /* the range ends at the first key past the prefix, within a run */
        ASSERT_OK(pfx_scan(st, "querylog", "p07", 3, &p, 0));
        ASSERT_EQ_INT(p.n, 10);
        ASSERT_EQ_INT(p.runs, 1);
        ASSERT_STR_EQ(p.keys[0], "p070");
        ASSERT_STR_EQ(p.keys[9], "p079");
        ASSERT_OK(pfx_scan(st, "querylog", "p149", 4, &p, 0));
        ASSERT_EQ_INT(p.n, 1);
        ASSERT_OK(pfx_scan(st, "querylog", "q", 1, &p, 0));
        ASSERT_EQ_INT(p.n, 1);
        ASSERT_STR_EQ(p.keys[0], "q0");
        /* no key under the prefix, before the first key, past the last */
        ASSERT_OK(pfx_scan(st, "querylog", "p2", 2, &p, 0));
        ASSERT_EQ_INT(p.runs, 0);
        ASSERT_OK(pfx_scan(st, "querylog", "a", 1, &p, 0));
        ASSERT_EQ_INT(p.runs, 0);
        ASSERT_OK(pfx_scan(st, "querylog", "z", 1, &p, 0));
        ASSERT_EQ_INT(p.runs, 0);

        /* visit's non-zero status stops the scan after its run and is returned */
        ASSERT_EQ_INT(pfx_scan(st, "querylog", "p", 1, &p, 2), 7);
        ASSERT_EQ_INT(p.runs, 2);
        ASSERT_EQ_INT(p.n, 2 * RAG_STORE_KV_RUN);

        /* argument errors, and tables that are not open */
        ASSERT_EQ_INT(pfx_scan(st, "querylog", "p", 0, &p, 0), RAG_EINVAL);
        char big[600];
        memset(big, 'p', sizeof big);
        ASSERT_EQ_INT(pfx_scan(st, "querylog", big, 512, &p, 0), RAG_EINVAL);
        ASSERT_EQ_INT(pfx_scan(st, "", "p", 1, &p, 0), RAG_EINVAL);
        ASSERT_OK(pfx_scan(st, "nosuchtable", "p", 1, &p, 0));
        ASSERT_EQ_INT(p.runs, 0);
        rag_store_close(st);

        /* the sealed values of an encrypted store need its key */
        if (enc) {
            ASSERT_OK(rag_store_open(dir, 1, &st));
            ASSERT_EQ_INT(pfx_scan(st, "querylog", "p", 1, &p, 0), RAG_EKEY);
            ASSERT_EQ_INT(p.runs, 0);
            rag_store_close(st);
        }
    }
}

int main(void)
{
    RUN_TEST(test_roundtrip_and_reopen);
    RUN_TEST(test_map_grows);
    RUN_TEST(test_aux_tables);
    RUN_TEST(test_not_a_store);
    RUN_TEST(test_stale_tombstones_not_counted);
    RUN_TEST(test_keyed_hashes);
    RUN_TEST(test_encrypted_reread);
    RUN_TEST(test_chunk_doc_fields);
    RUN_TEST(test_hits_without_doc_fields);
    RUN_TEST(test_prefix_scan);
    return TEST_REPORT();
}
