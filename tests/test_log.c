/* test_log.c - replicated log batches through the public API: a store fed by batches answers
 * dense searches exactly as a store fed by rag_ingest; a batch applies only at position + 1,
 * once, with its position in the same transaction (survives reopening); deletes and expiries
 * travel in the log; replicas fed the same batches have equal digests; damaged batches are
 * refused. */
#include "test.h"

#include "ragcore.h"

#include <math.h>
#define XXH_INLINE_ALL /* checksums of hand-made batches (header-only) */
#include <xxhash.h>
#include <stdint.h>

#define DIM 32
#define NDOCS 60

static char dir_single[4096], dir_a[4096], dir_b[4096];
static char texts[NDOCS][400];
static char ids[NDOCS][32];

static rag_db *open_store(const char *dir)
{
    rag_open_options o;
    rag_open_options_init(&o);
    o.embedder = "hash";
    o.dim = DIM;
    o.index_spec = "Flat";
    o.chunk_tokens = 24;
    o.chunk_overlap = 4;
    rag_db *db = NULL;
    ASSERT_OK(rag_open(dir, &o, &db));
    return db;
}

static void make_corpus(void)
{
    static const char *words[] = {"raft", "log", "replica", "shard", "vector", "index",
                                  "query", "stream", "lmdb", "faiss", "token", "router",
                                  "lag", "digest", "batch", "sequence", "commit", "leader"};
    for (int i = 0; i < NDOCS; i++) {
        snprintf(ids[i], sizeof ids[i], "doc-%03d", i);
        size_t len = 0;
        for (int w = 0; w < 40; w++)
            len += (size_t)snprintf(texts[i] + len, sizeof texts[i] - len, "%s%s%s",
                                    w ? " " : "", words[(i * 7 + w * (i % 5 + 1)) % 18],
                                    w % 9 == 8 ? "." : "");
    }
}

static void fill_doc(rag_document *d, int i)
{
    rag_document_init(d);
    d->id = ids[i];
    d->text = texts[i];
    d->title = "T";
    d->source = "/corpus";
    d->metadata_json = "{\"n\": 1}";
    d->source_mtime = 1700000000 + i;
}

/* Encodes a batch of documents [from, to) (or deletes when del). */
static void *batch_of(rag_embedder *e, int from, int to, int del, int64_t now, size_t *len)
{
    rag_log_batch *b = NULL;
    void *bytes = NULL;
    ASSERT_OK(rag_log_batch_create(e, 24, 4, now, &b));
    for (int i = from; i < to; i++) {
        if (del) {
            ASSERT_OK(rag_log_batch_add_delete(b, ids[i]));
        } else {
            rag_document d;
            fill_doc(&d, i);
            ASSERT_OK(rag_log_batch_add_documents(b, &d, 1));
        }
    }
    ASSERT_OK(rag_log_batch_encode(b, &bytes, len));
    rag_log_batch_free(b);
    return bytes;
}

/* Dense results of the two stores: the same documents, spans and scores, in order. */
static void compare_dense(rag_db *x, rag_db *y, const char *query)
{
    rag_search_options so;
    rag_search_options_init(&so);
    so.mode = RAG_MODE_DENSE;
    so.k = 15;
    so.collapse_threshold = 2;
    so.collection = "c";
    rag_results *rx = NULL, *ry = NULL;
    ASSERT_OK(rag_search(x, query, &so, &rx));
    ASSERT_OK(rag_search(y, query, &so, &ry));
    ASSERT_EQ_INT(rag_results_count(rx), rag_results_count(ry));
    ASSERT_EQ_INT(rag_results_count(rx), 15);
    for (size_t i = 0; i < rag_results_count(rx) && i < rag_results_count(ry); i++) {
        const rag_hit *a = rag_results_get(rx, i), *b = rag_results_get(ry, i);
        ASSERT_STR_EQ(a->doc_id, b->doc_id);
        ASSERT_EQ_INT(a->start, b->start);
        ASSERT_EQ_INT(a->end, b->end);
        ASSERT_TRUE(a->score == b->score);
        ASSERT_STR_EQ(a->metadata_json, b->metadata_json);
        ASSERT_EQ_INT(a->source_mtime, b->source_mtime);
    }
    rag_results_free(rx);
    rag_results_free(ry);
}

static void test_apply_equals_ingest(void)
{
    test_fresh_dir(dir_single, sizeof dir_single, "log_single");
    test_fresh_dir(dir_a, sizeof dir_a, "log_a");
    test_fresh_dir(dir_b, sizeof dir_b, "log_b");
    rag_db *single = open_store(dir_single), *a = open_store(dir_a), *b = open_store(dir_b);
    rag_embedder *e = NULL;
    ASSERT_OK(rag_embedder_create("hash", DIM, &e));
    if (!single || !a || !b || !e)
        return;
    rag_document docs[NDOCS];
    for (int i = 0; i < NDOCS; i++)
        fill_doc(&docs[i], i);
    ASSERT_OK(rag_ingest(single, "c", docs, NDOCS, NULL));

    /* three batches; replica b applies them too */
    size_t len[3];
    void *msg[3];
    msg[0] = batch_of(e, 0, 20, 0, 1700001000, &len[0]);
    msg[1] = batch_of(e, 20, 45, 0, 1700001001, &len[1]);
    msg[2] = batch_of(e, 45, NDOCS, 0, 1700001002, &len[2]);
    uint64_t pos = 99;
    ASSERT_OK(rag_log_position(a, "c", &pos));
    ASSERT_EQ_INT(pos, 0);
    /* out of order: refused, nothing written */
    ASSERT_EQ_INT(rag_log_apply(a, "c", 2, msg[1], len[1]), RAG_ESEQUENCE);
    ASSERT_TRUE(strstr(rag_errmsg(), "expected 1") != NULL);
    for (int i = 0; i < 3; i++) {
        ASSERT_OK(rag_log_apply(a, "c", (uint64_t)i + 1, msg[i], len[i]));
        ASSERT_OK(rag_log_apply(b, "c", (uint64_t)i + 1, msg[i], len[i]));
    }
    /* applied twice: refused */
    ASSERT_EQ_INT(rag_log_apply(a, "c", 3, msg[2], len[2]), RAG_ESEQUENCE);
    ASSERT_OK(rag_log_position(a, "c", &pos));
    ASSERT_EQ_INT(pos, 3);
    rag_collection_info info;
    ASSERT_OK(rag_collection_stats(a, "c", &info));
    ASSERT_EQ_INT(info.documents, NDOCS);
    compare_dense(single, a, "replica shard stream");
    compare_dense(single, a, "vector index lmdb commit");

    /* a document is stored with the batch's clock and chunk ids from the log position */
    rag_doc *d = NULL;
    ASSERT_OK(rag_document_get(a, "c", ids[30], &d));
    if (d) {
        ASSERT_EQ_INT(rag_doc_get_info(d)->ingested_at, 1700001001);
        ASSERT_EQ_INT(rag_doc_chunk(d, 0)->chunk_id >> 24, 2);
    }
    rag_doc_free(d);

    uint64_t sa, sb, da, db_, na, nb;
    ASSERT_OK(rag_collection_digest(a, "c", &sa, &da, &na));
    ASSERT_OK(rag_collection_digest(b, "c", &sb, &db_, &nb));
    ASSERT_EQ_INT(sa, 3);
    ASSERT_EQ_INT(sb, 3);
    ASSERT_TRUE(da == db_);
    ASSERT_EQ_INT(na, NDOCS);

    /* deletes, a replacement and an expiry in the log */
    size_t dl;
    void *del = batch_of(e, 0, 5, 1, 1700001003, &dl);
    ASSERT_OK(rag_log_apply(a, "c", 4, del, dl));
    rag_log_batch *xb = NULL;
    void *xbytes = NULL;
    size_t xl = 0;
    ASSERT_OK(rag_log_batch_create(e, 24, 4, 1700002000, &xb));
    rag_document dd;
    fill_doc(&dd, 10);
    dd.ttl_seconds = 100; /* expires at 1700002100 */
    ASSERT_OK(rag_log_batch_add_documents(xb, &dd, 1));
    ASSERT_OK(rag_log_batch_add_expire(xb, 1700002050)); /* not yet */
    ASSERT_EQ_INT(rag_log_batch_ops(xb), 2);
    ASSERT_OK(rag_log_batch_encode(xb, &xbytes, &xl));
    rag_log_batch_free(xb);
    ASSERT_OK(rag_log_apply(a, "c", 5, xbytes, xl));
    ASSERT_OK(rag_document_get(a, "c", ids[10], &d));
    if (d) {
        ASSERT_EQ_INT(rag_doc_get_info(d)->valid_until, 1700002100);
        ASSERT_EQ_INT(rag_doc_get_info(d)->ingested_at, 1700001000); /* first ingest kept */
        ASSERT_EQ_INT(rag_doc_get_info(d)->updated_at, 1700002000);
    }
    rag_doc_free(d);
    ASSERT_OK(rag_log_batch_create(NULL, 0, 0, 1700003000, &xb));
    ASSERT_OK(rag_log_batch_add_expire(xb, 1700002100));
    rag_free(xbytes);
    ASSERT_OK(rag_log_batch_encode(xb, &xbytes, &xl));
    rag_log_batch_free(xb);
    ASSERT_OK(rag_log_apply(a, "c", 6, xbytes, xl));
    ASSERT_EQ_INT(rag_document_get(a, "c", ids[10], &d), RAG_ENOTFOUND);
    ASSERT_EQ_INT(rag_document_get(a, "c", ids[2], &d), RAG_ENOTFOUND);
    ASSERT_OK(rag_collection_stats(a, "c", &info));
    ASSERT_EQ_INT(info.documents, NDOCS - 6);
    ASSERT_OK(rag_collection_digest(a, "c", &sa, &da, &na));
    ASSERT_TRUE(da != db_);
    ASSERT_EQ_INT(na, NDOCS - 6);

    /* damaged batches */
    unsigned char *bad = msg[0];
    bad[len[0] / 2] ^= 0x40;
    ASSERT_EQ_INT(rag_log_apply(b, "c", 4, bad, len[0]), RAG_ECORRUPT);
    ASSERT_EQ_INT(rag_log_apply(b, "c", 4, "RLB1", 4), RAG_ECORRUPT);
    ASSERT_EQ_INT(rag_log_apply(b, "c", 0, msg[1], len[1]), RAG_EINVAL);
    ASSERT_OK(rag_log_position(b, "c", &pos));
    ASSERT_EQ_INT(pos, 3);

    /* the position survives reopening, with the batch it came with */
    ASSERT_OK(rag_close(a));
    a = open_store(dir_a);
    ASSERT_OK(rag_log_position(a, "c", &pos));
    ASSERT_EQ_INT(pos, 6);
    uint64_t sa2, da2;
    ASSERT_OK(rag_collection_digest(a, "c", &sa2, &da2, NULL));
    ASSERT_TRUE(da2 == da);
    compare_dense(b, b, "raft leader");

    for (int i = 0; i < 3; i++)
        rag_free(msg[i]);
    rag_free(del);
    rag_free(xbytes);
    rag_embedder_free(e);
    rag_close(single);
    rag_close(a);
    rag_close(b);
}

/* Invalid input names what was wrong. */
static void test_bad_input(void)
{
    rag_log_batch *b = NULL;
    ASSERT_EQ_INT(rag_log_batch_create(NULL, 10, 10, 0, &b), RAG_EINVAL);
    ASSERT_OK(rag_log_batch_create(NULL, 0, 0, 0, &b));
    rag_document d;
    fill_doc(&d, 0);
    ASSERT_EQ_INT(rag_log_batch_add_documents(b, &d, 1), RAG_EINVAL);
    ASSERT_TRUE(strstr(rag_errmsg(), "embedder") != NULL);
    ASSERT_EQ_INT(rag_log_batch_add_delete(b, ""), RAG_EINVAL);
    ASSERT_EQ_INT(rag_log_batch_ops(b), 0);
    rag_log_batch_free(b);
    rag_embedder *e = NULL;
    ASSERT_OK(rag_embedder_create("hash", DIM, &e));
    ASSERT_OK(rag_log_batch_create(e, 0, 0, 0, &b));
    rag_document two[2];
    fill_doc(&two[0], 1);
    fill_doc(&two[1], 2);
    two[1].text = "\xff\xfe bad";
    ASSERT_EQ_INT(rag_log_batch_add_documents(b, two, 2), RAG_EENCODING);
    ASSERT_EQ_INT(rag_log_batch_ops(b), 0); /* nothing added */
    ASSERT_EQ_INT(rag_log_batch_chunks(b), 0);
    rag_log_batch_free(b);
    rag_embedder_free(e);
}

/* Settings read from JSON with the library's own parser, errors naming the field. */
static void test_settings_json(void)
{
    rag_collection_options o;
    char lang[24];
    rag_collection_options_init(&o);
    ASSERT_OK(rag_collection_options_from_json(
        &o, "{\"pii\":\"mask\",\"quality\":\"on\",\"min_chars\":30,"
            "\"max_symbol_ratio\":0.25,\"toxicity\":null,\"language\":\"french\"}",
        lang, sizeof lang));
    ASSERT_EQ_INT(o.pii, RAG_PII_MASK);
    ASSERT_EQ_INT(o.quality, 1);
    ASSERT_EQ_INT(o.min_chars, 30);
    ASSERT_NEAR(o.max_symbol_ratio, 0.25, 1e-12);
    ASSERT_EQ_INT(o.toxicity, RAG_TOXICITY_OFF);
    ASSERT_STR_EQ(o.language, "french");
    ASSERT_TRUE(o.language == lang);
    /* what rag_collection_options_json writes reads back the same */
    char *text = NULL;
    rag_collection_options back;
    rag_collection_options_init(&back);
    ASSERT_OK(rag_collection_options_json(&o, &text));
    ASSERT_OK(rag_collection_options_from_json(&back, text, lang, sizeof lang));
    ASSERT_EQ_INT(back.pii, o.pii);
    ASSERT_EQ_INT(back.min_chars, o.min_chars);
    ASSERT_EQ_INT(back.quality, o.quality);
    rag_free(text);
    ASSERT_EQ_INT(rag_collection_options_from_json(&o, "{\"pii\":\"shred\"}", NULL, 0),
                  RAG_EINVAL);
    ASSERT_TRUE(strstr(rag_errmsg(), "pii") && strstr(rag_errmsg(), "shred"));
    ASSERT_EQ_INT(rag_collection_options_from_json(&o, "{\"min_chars\":\"ten\"}", NULL, 0),
                  RAG_EINVAL);
    ASSERT_TRUE(strstr(rag_errmsg(), "min_chars") && strstr(rag_errmsg(), "integer"));
    ASSERT_EQ_INT(rag_collection_options_from_json(&o, "{\"colour\":\"red\"}", NULL, 0),
                  RAG_EINVAL);
    ASSERT_TRUE(strstr(rag_errmsg(), "colour") != NULL);
    ASSERT_EQ_INT(rag_collection_options_from_json(&o, "{\"language\":\"german\"}", NULL, 0),
                  RAG_EINVAL);
    ASSERT_EQ_INT(rag_collection_options_from_json(&o, "[1]", NULL, 0), RAG_EPARSE);
}

/* The stateless hygiene policy on a batch: masked text reaches the store, a filtered
 * document becomes a delete of its id (an older version goes), counts by reason. */
static void test_policy(void)
{
    test_fresh_dir(dir_a, sizeof dir_a, "log_policy");
    rag_db *db = open_store(dir_a);
    rag_embedder *e = NULL;
    ASSERT_OK(rag_embedder_create("hash", DIM, &e));
    size_t len = 0;
    void *bytes = batch_of(e, 0, 2, 0, 1700000000, &len); /* doc-000, doc-001 stored */
    ASSERT_OK(rag_log_apply(db, "c", 1, bytes, len));
    rag_free(bytes);

    rag_collection_options pol;
    rag_collection_options_init(&pol);
    pol.pii = RAG_PII_MASK;
    pol.quality = 1;
    pol.min_chars = 20;
    rag_document d[2];
    rag_document_init(&d[0]);
    d[0].id = "doc-000";
    d[0].text = "Write to jane.doe@example.org or call +1 415 555 0100 about the replica.";
    d[0].title = "mail jane.doe@example.org";
    rag_document_init(&d[1]);
    d[1].id = "doc-001";
    d[1].text = "too short";
    rag_log_batch *b = NULL;
    rag_ingest_summary sum;
    ASSERT_OK(rag_log_batch_create(e, 24, 4, 1700000100, &b));
    ASSERT_OK(rag_log_batch_add_documents_policy(b, d, 2, &pol, NULL, &sum));
    ASSERT_EQ_INT(sum.seen, 2);
    ASSERT_EQ_INT(sum.documents, 1);
    ASSERT_EQ_INT(sum.filtered, 1);
    ASSERT_EQ_INT(sum.filtered_too_short, 1);
    ASSERT_EQ_INT(sum.pii_documents, 1);
    ASSERT_EQ_INT(sum.pii_found[RAG_PII_EMAIL], 2);
    ASSERT_EQ_INT(sum.pii_found[RAG_PII_PHONE], 1);
    ASSERT_EQ_INT(rag_log_batch_ops(b), 2); /* the upsert and the delete */
    ASSERT_OK(rag_log_batch_encode(b, &bytes, &len));
    ASSERT_TRUE(!memmem(bytes, len, "jane.doe", 8)); /* nothing raw travels in the log */
    rag_log_batch_free(b);
    ASSERT_OK(rag_log_apply(db, "c", 2, bytes, len));
    rag_free(bytes);
    rag_doc *doc = NULL;
    ASSERT_OK(rag_document_get(db, "c", "doc-000", &doc));
    if (doc) {
        ASSERT_TRUE(rag_doc_chunk_count(doc) >= 1);
        ASSERT_TRUE(strstr(rag_doc_chunk(doc, 0)->text, "[EMAIL]") != NULL);
        ASSERT_TRUE(!strstr(rag_doc_chunk(doc, 0)->text, "jane.doe"));
        ASSERT_STR_EQ(rag_doc_chunk(doc, 0)->title, "mail [EMAIL]");
    }
    rag_doc_free(doc);
    ASSERT_EQ_INT(rag_document_get(db, "c", "doc-001", &doc), RAG_ENOTFOUND);

    /* hash needs a store's key: refused, nothing added */
    pol.pii = RAG_PII_HASH;
    ASSERT_OK(rag_log_batch_create(e, 24, 4, 0, &b));
    ASSERT_EQ_INT(rag_log_batch_add_documents_policy(b, d, 1, &pol, NULL, NULL),
                  RAG_EUNSUPPORTED);
    ASSERT_TRUE(strstr(rag_errmsg(), "hash") != NULL);
    ASSERT_EQ_INT(rag_log_batch_ops(b), 0);
    /* with a key: [EMAIL:<hex>], the same under the same key in any batch, another under
     * another key; neither the raw value nor the key travels */
    ASSERT_EQ_INT(rag_log_batch_set_pii_key(b, "short", 5), RAG_EINVAL);
    static const char KEY_A[] = "0123456789abcdef0123456789abcdef";
    static const char KEY_B[] = "fedcba9876543210fedcba9876543210";
    char tag[3][32];
    for (int k = 0; k < 3; k++) {
        rag_log_batch *hb = NULL;
        void *hbytes = NULL;
        size_t hlen = 0;
        ASSERT_OK(rag_log_batch_create(e, 24, 4, 0, &hb));
        ASSERT_OK(rag_log_batch_set_pii_key(hb, k == 2 ? KEY_B : KEY_A, 32));
        ASSERT_OK(rag_log_batch_add_documents_policy(hb, d, 1, &pol, NULL, &sum));
        ASSERT_EQ_INT(sum.pii_found[RAG_PII_EMAIL], 2);
        ASSERT_OK(rag_log_batch_encode(hb, &hbytes, &hlen));
        ASSERT_TRUE(!memmem(hbytes, hlen, "jane.doe", 8));
        ASSERT_TRUE(!memmem(hbytes, hlen, k == 2 ? KEY_B : KEY_A, 32));
        const char *at = memmem(hbytes, hlen, "[EMAIL:", 7);
        ASSERT_TRUE(at != NULL);
        snprintf(tag[k], sizeof tag[k], "%.20s", at ? at : "");
        rag_free(hbytes);
        rag_log_batch_free(hb);
    }
    ASSERT_STR_EQ(tag[0], tag[1]);
    ASSERT_TRUE(strcmp(tag[0], tag[2]) != 0);
    /* an invalid document: the error, nothing of the call added */
    pol.pii = RAG_PII_DROP;
    d[1].text = "\xff\xfe bad";
    ASSERT_EQ_INT(rag_log_batch_add_documents_policy(b, d, 2, &pol, NULL, NULL),
                  RAG_EENCODING);
    ASSERT_EQ_INT(rag_log_batch_ops(b), 0);
    /* PII drop: a delete of the id instead of the document */
    ASSERT_OK(rag_log_batch_add_documents_policy(b, d, 1, &pol, NULL, &sum));
    ASSERT_EQ_INT(sum.pii_dropped, 1);
    ASSERT_EQ_INT(sum.documents, 0);
    ASSERT_EQ_INT(rag_log_batch_ops(b), 1);
    ASSERT_EQ_INT(rag_log_batch_chunks(b), 0);
    rag_log_batch_free(b);
    /* toxicity flag with the word list: stored with its score, counted as flagged */
    ASSERT_OK(rag_model_pull("better-profanity", 0, NULL));
    rag_collection_options_init(&pol);
    pol.toxicity = RAG_TOXICITY_FLAG;
    pol.toxicity_detectors = RAG_TOXICITY_WORDLIST;
    d[1].text = "what a sh1t day, you b1tch";
    ASSERT_OK(rag_log_batch_create(e, 24, 4, 0, &b));
    ASSERT_OK(rag_log_batch_add_documents_policy(b, &d[1], 1, &pol, NULL, &sum));
    ASSERT_EQ_INT(sum.documents, 1);
    ASSERT_EQ_INT(sum.toxicity_checked, 1);
    ASSERT_EQ_INT(sum.toxicity_flagged, 1);
    ASSERT_EQ_INT(sum.chunks, rag_log_batch_chunks(b));
    ASSERT_EQ_INT(sum.bytes, strlen(d[1].text));
    rag_log_batch_free(b);
    rag_embedder_free(e);
    rag_close(db);
}

/* A stub decision point: "copy" duplicates "orig" (exact when their keys' hashes agree,
 * else near with their similarity); fails the call when asked to. */
typedef struct stub_point {
    int calls, fail;
    size_t n;
    double sim;
} stub_point;

static int stub_decide(void *user, size_t n, const char *const *id, const rag_dup_key *keys,
                       rag_dup_verdict *v)
{
    stub_point *p = user;
    p->calls++;
    p->n = n;
    if (p->fail)
        return RAG_EIO;
    for (size_t i = 0; i < n; i++) {
        if (strcmp(id[i], "copy") != 0)
            continue;
        for (size_t j = 0; j < n; j++)
            if (!strcmp(id[j], "orig")) {
                p->sim = rag_dup_similarity(&keys[i], &keys[j]);
                v[i].kind = keys[i].hash == keys[j].hash ? 1 : 2;
                snprintf(v[i].canonical, sizeof v[i].canonical, "%s", "orig");
                v[i].similarity = p->sim;
            }
    }
    return RAG_OK;
}

/* Duplicate detection through a decision point outside the store: the point sees the
 * documents the rest of the policy kept (cleaned) and its verdicts skip (a delete of the
 * id, in input order) or flag (duplicate_of in the metadata) as a store's ingest does. */
static void test_policy_dedup(void)
{
    test_fresh_dir(dir_b, sizeof dir_b, "log_dedup");
    rag_db *db = open_store(dir_b);
    rag_embedder *e = NULL;
    ASSERT_OK(rag_embedder_create("hash", DIM, &e));
    const char *t = "the replica applies every batch of the log in order and answers queries "
                    "with the shard it hosts while the router merges the lists";
    rag_document d[3];
    for (int i = 0; i < 3; i++)
        rag_document_init(&d[i]);
    d[0].id = "orig";
    d[0].text = t;
    d[1].id = "short";
    d[1].text = "tiny";
    d[2].id = "copy";
    d[2].text = "THE replica  applies every batch of the log in order and answers queries "
                "with the shard it hosts while the router merges the lists";
    rag_collection_options pol;
    rag_collection_options_init(&pol);
    pol.dedup = RAG_DEDUP_SKIP;
    pol.quality = 1;
    pol.min_chars = 20;
    stub_point p = {0, 0, 0, 0};
    rag_log_batch *b = NULL;
    rag_ingest_summary sum;
    /* without a decision point duplicate detection stays off */
    ASSERT_OK(rag_log_batch_create(e, 24, 4, 0, &b));
    ASSERT_OK(rag_log_batch_add_documents_policy(b, d, 3, &pol, NULL, &sum));
    ASSERT_EQ_INT(sum.documents, 2);
    ASSERT_EQ_INT(sum.dup_exact, 0);
    rag_log_batch_free(b);
    /* skip: one call for the kept documents; the copy becomes a delete */
    ASSERT_OK(rag_log_batch_create(e, 24, 4, 0, &b));
    ASSERT_EQ_INT(rag_log_batch_set_dedup(NULL, stub_decide, &p), RAG_EINVAL);
    ASSERT_OK(rag_log_batch_set_dedup(b, stub_decide, &p));
    ASSERT_OK(rag_log_batch_add_documents_policy(b, d, 3, &pol, NULL, &sum));
    ASSERT_EQ_INT(p.calls, 1);
    ASSERT_EQ_INT(p.n, 2); /* the short one was filtered first */
    ASSERT_TRUE(p.sim == 1.0);
    ASSERT_EQ_INT(sum.documents, 1);
    ASSERT_EQ_INT(sum.filtered, 1);
    ASSERT_EQ_INT(sum.dup_exact, 1);
    ASSERT_EQ_INT(sum.dup_skipped, 1);
    ASSERT_EQ_INT(rag_log_batch_ops(b), 3); /* orig, delete short, delete copy */
    void *bytes = NULL;
    size_t len = 0;
    ASSERT_OK(rag_log_batch_encode(b, &bytes, &len));
    rag_log_batch_free(b);
    ASSERT_OK(rag_log_apply(db, "c", 1, bytes, len));
    rag_free(bytes);
    rag_doc *doc = NULL;
    ASSERT_EQ_INT(rag_document_get(db, "c", "copy", &doc), RAG_ENOTFOUND);
    ASSERT_OK(rag_document_get(db, "c", "orig", &doc));
    rag_doc_free(doc);
    doc = NULL;
    /* flag: a near copy is stored with duplicate_of */
    pol.dedup = RAG_DEDUP_FLAG;
    d[2].text = "the replica applies every batch of the log in order and answers queries "
                "with the shard it hosts while the router merges the results";
    ASSERT_OK(rag_log_batch_create(e, 24, 4, 0, &b));
    ASSERT_OK(rag_log_batch_set_dedup(b, stub_decide, &p));
    ASSERT_OK(rag_log_batch_add_documents_policy(b, d, 3, &pol, NULL, &sum));
    ASSERT_TRUE(p.sim > 0.5 && p.sim < 1.0);
    ASSERT_EQ_INT(sum.documents, 2);
    ASSERT_EQ_INT(sum.dup_near, 1);
    ASSERT_EQ_INT(sum.dup_flagged, 1);
    ASSERT_OK(rag_log_batch_encode(b, &bytes, &len));
    rag_log_batch_free(b);
    ASSERT_OK(rag_log_apply(db, "c", 2, bytes, len));
    rag_free(bytes);
    ASSERT_OK(rag_document_get(db, "c", "copy", &doc));
    const char *meta = doc ? rag_doc_get_info(doc)->metadata_json : NULL;
    ASSERT_TRUE(meta && strstr(meta, "\"duplicate_of\":\"orig\"") &&
                strstr(meta, "\"duplicate_kind\":\"near\""));
    rag_doc_free(doc);
    /* a failing decision point fails the call and adds nothing */
    p.fail = 1;
    ASSERT_OK(rag_log_batch_create(e, 24, 4, 0, &b));
    ASSERT_OK(rag_log_batch_set_dedup(b, stub_decide, &p));
    ASSERT_EQ_INT(rag_log_batch_add_documents_policy(b, d, 3, &pol, NULL, &sum), RAG_EIO);
    ASSERT_TRUE(strstr(rag_errmsg(), "duplicate decision") != NULL);
    ASSERT_EQ_INT(rag_log_batch_ops(b), 0);
    rag_log_batch_free(b);
    /* keys: computed as the store's index computes them */
    rag_dup_key k1, k2;
    ASSERT_OK(rag_dup_key_compute(d[0].text, strlen(d[0].text), &k1));
    ASSERT_OK(rag_dup_key_compute(d[2].text, strlen(d[2].text), &k2));
    ASSERT_TRUE(k1.hash != k2.hash && k1.shingles > 0);
    ASSERT_EQ_INT(rag_dup_rows(2.0), 0);
    ASSERT_TRUE(rag_dup_rows(0.8) > 0 && rag_dup_rows(0.8) <= RAG_DUP_PERM);
    ASSERT_TRUE(rag_dup_band(&k1, 4, 0) == rag_dup_band(&k1, 4, 0));
    ASSERT_EQ_INT(rag_dup_key_compute(NULL, 0, &k1), RAG_EINVAL);
    rag_embedder_free(e);
    rag_close(db);
}

/* Hand-made messages whose checksum is right but whose content is not: refused with what
 * is wrong, nothing applied, the store still usable. */
static void test_corrupt_batches(void)
{
    char dir[4096];
    test_fresh_dir(dir, sizeof dir, "log_corrupt");
    rag_db *db = open_store(dir);
    /* "RLB1", version 1, now, dim 0, 0 operations, 2^58 chunks: the header is refused
     * before the chunk array exists (freeing the batch walked that many chunks of it) */
    unsigned char m[44] = {'R', 'L', 'B', '1', 0, 0, 0, 1};
    m[28] = 0x04; /* chunk count, big-endian at offset 28 */
    uint64_t sum = XXH3_64bits(m, 36);
    for (int i = 0; i < 8; i++)
        m[36 + i] = (unsigned char)(sum >> (56 - 8 * i));
    ASSERT_EQ_INT(rag_log_apply(db, "c", 1, m, sizeof m), RAG_ECORRUPT);
    ASSERT_TRUE(strstr(rag_errmsg(), "header counts") != NULL);
    uint64_t seq = 9;
    ASSERT_OK(rag_log_position(db, "c", &seq));
    ASSERT_EQ_INT(seq, 0);
    rag_close(db);
}

int main(void)
{
    make_corpus();
    test_bad_input();
    test_corrupt_batches();
    test_settings_json();
    test_policy();
    test_policy_dedup();
    test_apply_equals_ingest();
    printf("%d checks, %d failures\n", test_checks_, test_failures_);
    return test_failures_ ? 1 : 0;
}
