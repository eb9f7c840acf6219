/* test_documents.c - reading documents back through the public API: rag_document_get returns
 * every chunk of a document in text order (more than any search k), its record and
 * freshness; rag_document_list pages through a collection in id order exactly once, with
 * filters, cursors, limits and expiry. */
#include "test.h"

#include "ragcore.h"

#include <math.h>
#include <stdint.h>
#include <time.h>

static char dir[4096];

static rag_db *open_small(int chunk_tokens)
{
    rag_open_options o;
    rag_open_options_init(&o);
    o.embedder = "hash";
    o.dim = 16;
    o.index_spec = "Flat";
    if (chunk_tokens) {
        o.chunk_tokens = chunk_tokens;
        o.chunk_overlap = -1;
    }
    rag_db *db = NULL;
    ASSERT_OK(rag_open(dir, &o, &db));
    return db;
}

/* A document longer than any search may return: more than 10,000 chunks of one short
 * paragraph each, every one of them distinct. */
static void test_get_all_chunks(void)
{
    test_fresh_dir(dir, sizeof dir, "documents_many");
    rag_db *db = open_small(4);
    if (!db)
        return;
    enum { PARAS = 10500 };
    size_t cap = (size_t)PARAS * 24, len = 0;
    char *text = malloc(cap);
    for (int i = 0; i < PARAS; i++)
        len += (size_t)snprintf(text + len, cap - len, "%sp%d q%d.", i ? "\n\n" : "", i, i);
    rag_document d;
    rag_document_init(&d);
    d.id = "big";
    d.text = text;
    d.text_len = len;
    d.title = "Big";
    d.source = "/src/big.txt";
    d.metadata_json = "{\"lang\":\"en\"}";
    d.source_mtime = 1700000000;
    rag_ingest_stats st;
    ASSERT_OK(rag_ingest(db, NULL, &d, 1, &st));
    ASSERT_TRUE(st.chunks > 10000);

    /* a search cannot return them all */
    rag_search_options so;
    rag_search_options_init(&so);
    so.k = 10000;
    so.mode = RAG_MODE_LEXICAL;
    rag_results *res = NULL;
    ASSERT_OK(rag_search(db, "q1", &so, &res));
    ASSERT_TRUE(rag_results_count(res) <= 10000);
    rag_results_free(res);

    rag_doc *doc = NULL;
    ASSERT_OK(rag_document_get(db, NULL, "big", &doc));
    const rag_doc_info *in = rag_doc_get_info(doc);
    ASSERT_EQ_INT(rag_doc_chunk_count(doc), st.chunks);
    ASSERT_EQ_INT(in->chunks, st.chunks);
    ASSERT_STR_EQ(in->id, "big");
    ASSERT_STR_EQ(in->title, "Big");
    ASSERT_STR_EQ(in->source, "/src/big.txt");
    ASSERT_STR_EQ(in->metadata_json, "{\"lang\":\"en\"}");
    ASSERT_EQ_INT(in->source_mtime, 1700000000);
    ASSERT_EQ_INT(in->text_bytes, len);
    ASSERT_EQ_INT(in->valid_until, 0);
    ASSERT_EQ_INT(in->expired, 0);
    ASSERT_TRUE(in->ingested_at > 0 && in->updated_at >= in->ingested_at);
    rag_collection_info ci;
    ASSERT_OK(rag_collection_stats(db, RAG_DEFAULT_COLLECTION, &ci));
    ASSERT_EQ_INT(rag_doc_chunk_count(doc), ci.chunks);

    /* text order, every chunk's text is its span of the document, the spans cover it */
    size_t bad_order = 0, bad_text = 0, bad_fields = 0;
    uint64_t prev_end = 0;
    for (size_t i = 0; i < rag_doc_chunk_count(doc); i++) {
        const rag_hit *h = rag_doc_chunk(doc, i);
        if (i > 0 && h->start < prev_end)
            bad_order++;
        prev_end = h->end;
        if (h->end > len || h->text_len != h->end - h->start ||
            memcmp(h->text, text + h->start, h->text_len) != 0)
            bad_text++;
        if (strcmp(h->doc_id, "big") || strcmp(h->title, "Big") ||
            strcmp(h->metadata_json, in->metadata_json) || !isnan(h->score) ||
            !isnan(h->dense_score) || h->dense_rank != 0 || h->lexical_rank != 0 ||
            h->token_count <= 0 || !h->heading_path)
            bad_fields++;
    }
    ASSERT_EQ_INT(bad_order, 0);
    ASSERT_EQ_INT(bad_text, 0);
    ASSERT_EQ_INT(bad_fields, 0);
    ASSERT_EQ_INT(rag_doc_chunk(doc, 0)->start, 0);
    ASSERT_EQ_INT(prev_end, len);
    ASSERT_TRUE(rag_doc_chunk(doc, rag_doc_chunk_count(doc)) == NULL);
    rag_doc_free(doc);
    free(text);
    ASSERT_OK(rag_close(db));
}

/* Expired documents are returned by get (flagged) and listed only on request; absent ids
 * and collections are RAG_ENOTFOUND; bad arguments RAG_EINVAL. */
static void test_get_expired_and_errors(void)
{
    test_fresh_dir(dir, sizeof dir, "documents_expired");
    rag_db *db = open_small(0);
    if (!db)
        return;
    int64_t now = (int64_t)time(NULL);
    rag_document d[3];
    const char *ids[3] = {"fresh", "old", "later"};
    int64_t until[3] = {0, now - 10, now + 3600};
    for (int i = 0; i < 3; i++) {
        rag_document_init(&d[i]);
        d[i].id = ids[i];
        d[i].text = "Alpha beta gamma delta.";
        d[i].valid_until = until[i];
    }
    ASSERT_OK(rag_ingest(db, "c", d, 3, NULL));

    rag_doc *doc = NULL;
    ASSERT_OK(rag_document_get(db, "c", "old", &doc));
    ASSERT_EQ_INT(rag_doc_get_info(doc)->expired, 1);
    ASSERT_EQ_INT(rag_doc_get_info(doc)->valid_until, now - 10);
    ASSERT_EQ_INT(rag_doc_chunk_count(doc), 1);
    /* no title, source or metadata: "" and "{}" */
    ASSERT_STR_EQ(rag_doc_get_info(doc)->title, "");
    ASSERT_STR_EQ(rag_doc_get_info(doc)->source, "");
    ASSERT_STR_EQ(rag_doc_get_info(doc)->metadata_json, "{}");
    ASSERT_STR_EQ(rag_doc_chunk(doc, 0)->heading_path, "");
    rag_doc_free(doc);
    doc = NULL;
    ASSERT_OK(rag_document_get(db, "c", "later", &doc));
    ASSERT_EQ_INT(rag_doc_get_info(doc)->expired, 0);
    rag_doc_free(doc);

    rag_list_options lo;
    rag_list_options_init(&lo);
    lo.collection = "c";
    rag_doc_list *l = NULL;
    ASSERT_OK(rag_document_list(db, &lo, &l));
    ASSERT_EQ_INT(rag_doc_list_count(l), 2);
    ASSERT_STR_EQ(rag_doc_list_get(l, 0)->id, "fresh");
    ASSERT_STR_EQ(rag_doc_list_get(l, 1)->id, "later");
    ASSERT_TRUE(rag_doc_list_next(l) == NULL);
    rag_doc_list_free(l);
    lo.include_expired = 1;
    ASSERT_OK(rag_document_list(db, &lo, &l));
    ASSERT_EQ_INT(rag_doc_list_count(l), 3);
    ASSERT_STR_EQ(rag_doc_list_get(l, 1)->id, "later");
    ASSERT_STR_EQ(rag_doc_list_get(l, 2)->id, "old");
    ASSERT_EQ_INT(rag_doc_list_get(l, 2)->expired, 1);
    ASSERT_TRUE(rag_doc_list_get(l, 3) == NULL);
    rag_doc_list_free(l);

    /* after gc the expired document is gone */
    uint64_t purged = 0;
    ASSERT_OK(rag_gc(db, "c", 0, &purged));
    ASSERT_EQ_INT(purged, 1);
    doc = (rag_doc *)1;
    ASSERT_EQ_INT(rag_document_get(db, "c", "old", &doc), RAG_ENOTFOUND);
    ASSERT_TRUE(doc == NULL);
    ASSERT_TRUE(strstr(rag_errmsg(), "'old'") != NULL);
    ASSERT_EQ_INT(rag_document_get(db, "nosuch", "fresh", &doc), RAG_ENOTFOUND);
    ASSERT_TRUE(strstr(rag_errmsg(), "collection 'nosuch'") != NULL);
    ASSERT_EQ_INT(rag_document_get(db, NULL, "fresh", &doc), RAG_ENOTFOUND);
    ASSERT_EQ_INT(rag_document_get(db, "c", "", &doc), RAG_EINVAL);
    ASSERT_EQ_INT(rag_document_get(db, "c", NULL, &doc), RAG_EINVAL);
    ASSERT_EQ_INT(rag_document_get(NULL, "c", "fresh", &doc), RAG_EINVAL);
    ASSERT_EQ_INT(rag_document_get(db, "c", "fresh", NULL), RAG_EINVAL);
    char longid[RAG_DOC_ID_MAX + 2];
    memset(longid, 'x', sizeof longid - 1);
    longid[sizeof longid - 1] = 0;
    ASSERT_EQ_INT(rag_document_get(db, "c", longid, &doc), RAG_EINVAL);
    /* NULL-safe accessors and frees */
    ASSERT_TRUE(rag_doc_get_info(NULL) == NULL);
    ASSERT_EQ_INT(rag_doc_chunk_count(NULL), 0);
    ASSERT_TRUE(rag_doc_chunk(NULL, 0) == NULL);
    ASSERT_EQ_INT(rag_doc_list_count(NULL), 0);
    ASSERT_TRUE(rag_doc_list_next(NULL) == NULL);
    rag_doc_free(NULL);
    rag_doc_list_free(NULL);
    ASSERT_OK(rag_close(db));
}

enum { NDOCS = 257 };

/* Pages through collection "p" with page size `limit` (and `filter`), checking that the ids
 * come in strictly increasing byte order; returns how many were seen, -1 on an error. */
static int page_all(rag_db *db, size_t limit, const char *filter, int seen[NDOCS], int *pages)
{
    rag_list_options lo;
    rag_list_options_init(&lo);
    lo.collection = "p";
    lo.limit = limit;
    lo.filter = filter;
    char cursor[64] = "", prev[64] = "";
    int total = 0;
    *pages = 0;
    for (;;) {
        rag_doc_list *l = NULL;
        lo.after = *cursor ? cursor : NULL;
        int rc = rag_document_list(db, &lo, &l);
        if (rc != RAG_OK) {
            TEST_FAIL_("list: %s", rag_errmsg());
            return -1;
        }
        (*pages)++;
        size_t n = rag_doc_list_count(l);
        if (n > (limit ? limit : 100))
            TEST_FAIL_("page of %zu documents over limit %zu", n, limit);
        for (size_t i = 0; i < n; i++) {
            const rag_doc_info *in = rag_doc_list_get(l, i);
            if (*prev && strcmp(prev, in->id) >= 0)
                TEST_FAIL_("ids out of order: '%s' then '%s'", prev, in->id);
            snprintf(prev, sizeof prev, "%s", in->id);
            int k = atoi(in->id + 4);
            if (k >= 0 && k < NDOCS)
                seen[k]++;
            total++;
        }
        const char *next = rag_doc_list_next(l);
        if (next && n && strcmp(next, rag_doc_list_get(l, n - 1)->id) != 0)
            TEST_FAIL_("cursor '%s' is not the page's last id", next);
        if (next)
            snprintf(cursor, sizeof cursor, "%s", next);
        rag_doc_list_free(l);
        if (!next)
            break;
    }
    return total;
}

/* Paging visits every id exactly once at every page size, with and without filters. */
static void test_list_paging(void)
{
    test_fresh_dir(dir, sizeof dir, "documents_list");
    rag_db *db = open_small(0);
    if (!db)
        return;
    rag_document d[NDOCS];
    char ids[NDOCS][32], meta[NDOCS][64];
    for (int i = 0; i < NDOCS; i++) {
        /* ids whose byte order differs from numeric order ("doc-10" < "doc-9") */
        snprintf(ids[i], sizeof ids[i], "doc-%d", i);
        snprintf(meta[i], sizeof meta[i], "{\"n\": %d, \"even\": %s}", i,
                 i % 2 ? "false" : "true");
        rag_document_init(&d[i]);
        d[i].id = ids[i];
        d[i].text = "Some words of a small document.";
        d[i].metadata_json = meta[i];
    }
    ASSERT_OK(rag_ingest(db, "p", d, NDOCS, NULL));

    size_t limits[] = {1, 7, 100, 256, 257, RAG_LIST_LIMIT_MAX, 0};
    for (size_t li = 0; li < sizeof limits / sizeof limits[0]; li++) {
        int seen[NDOCS] = {0}, pages = 0, dup = 0, missing = 0;
        ASSERT_EQ_INT(page_all(db, limits[li], NULL, seen, &pages), NDOCS);
        for (int i = 0; i < NDOCS; i++) {
            dup += seen[i] > 1;
            missing += seen[i] == 0;
        }
        ASSERT_EQ_INT(dup, 0);
        ASSERT_EQ_INT(missing, 0);
        size_t lim = limits[li] ? limits[li] : 100;
        ASSERT_EQ_INT(pages, (NDOCS + lim - 1) / lim);
    }

    /* a metadata filter: exactly the matching documents, paged */
    int seen[NDOCS] = {0}, pages = 0, wrong = 0;
    ASSERT_EQ_INT(page_all(db, 7, "n >= 100 AND n < 150 AND even = true", seen, &pages), 25);
    for (int i = 0; i < NDOCS; i++)
        wrong += seen[i] != (i >= 100 && i < 150 && i % 2 == 0);
    ASSERT_EQ_INT(wrong, 0);
    ASSERT_EQ_INT(pages, 4);
    /* a filter on ids (a finite candidate set), with an absent id among them */
    memset(seen, 0, sizeof seen);
    ASSERT_EQ_INT(page_all(db, 2, "doc_id IN (\"doc-5\", \"doc-50\", \"doc-nope\", \"doc-7\")",
                           seen, &pages), 3);
    ASSERT_TRUE(seen[5] == 1 && seen[50] == 1 && seen[7] == 1);
    ASSERT_EQ_INT(pages, 2);

    /* a cursor that is not a stored id starts after it; documents added behind the cursor
     * are seen on the next page, those before it are not */
    rag_list_options lo;
    rag_list_options_init(&lo);
    lo.collection = "p";
    lo.after = "doc-25";
    lo.limit = 2;
    rag_doc_list *l = NULL;
    ASSERT_OK(rag_document_list(db, &lo, &l));
    ASSERT_STR_EQ(rag_doc_list_get(l, 0)->id, "doc-250");
    ASSERT_STR_EQ(rag_doc_list_next(l), "doc-251");
    rag_doc_list_free(l);
    lo.after = "doc-259"; /* not stored: between "doc-256" and "doc-26" */
    ASSERT_OK(rag_document_list(db, &lo, &l));
    ASSERT_STR_EQ(rag_doc_list_get(l, 0)->id, "doc-26");
    rag_doc_list_free(l);
    lo.after = "doc-99";
    ASSERT_OK(rag_document_list(db, &lo, &l));
    ASSERT_EQ_INT(rag_doc_list_count(l), 0);
    ASSERT_TRUE(rag_doc_list_next(l) == NULL);
    rag_doc_list_free(l);
    rag_document extra[2];
    rag_document_init(&extra[0]);
    extra[0].id = "doc-999";
    extra[0].text = "after the cursor";
    rag_document_init(&extra[1]);
    extra[1].id = "aaa";
    extra[1].text = "before the cursor";
    ASSERT_OK(rag_ingest(db, "p", extra, 2, NULL));
    ASSERT_OK(rag_document_list(db, &lo, &l));
    ASSERT_EQ_INT(rag_doc_list_count(l), 1);
    ASSERT_STR_EQ(rag_doc_list_get(l, 0)->id, "doc-999");
    rag_doc_list_free(l);

    /* limits and errors */
    l = (rag_doc_list *)1;
    lo.after = NULL;
    lo.limit = RAG_LIST_LIMIT_MAX + 1;
    ASSERT_EQ_INT(rag_document_list(db, &lo, &l), RAG_EINVAL);
    ASSERT_TRUE(l == NULL);
    ASSERT_TRUE(strstr(rag_errmsg(), "limit") != NULL);
    lo.limit = 0;
    ASSERT_OK(rag_document_list(db, &lo, &l));
    ASSERT_EQ_INT(rag_doc_list_count(l), 100);
    rag_doc_list_free(l);
    char longid[RAG_DOC_ID_MAX + 2];
    memset(longid, 'z', sizeof longid - 1);
    longid[sizeof longid - 1] = 0;
    lo.after = longid;
    ASSERT_EQ_INT(rag_document_list(db, &lo, &l), RAG_EINVAL);
    ASSERT_TRUE(strstr(rag_errmsg(), "cursor") != NULL);
    lo.after = NULL;
    lo.filter = "n >= ";
    ASSERT_EQ_INT(rag_document_list(db, &lo, &l), RAG_EPARSE);
    ASSERT_TRUE(strstr(rag_errmsg(), "position") != NULL);
    lo.filter = NULL;
    lo.collection = "nosuch";
    ASSERT_EQ_INT(rag_document_list(db, &lo, &l), RAG_ENOTFOUND);
    lo.version = 0;
    ASSERT_EQ_INT(rag_document_list(db, &lo, &l), RAG_EINVAL);
    ASSERT_EQ_INT(rag_document_list(db, NULL, NULL), RAG_EINVAL);
    ASSERT_EQ_INT(rag_document_list(NULL, NULL, &l), RAG_EINVAL);
    /* NULL options: the default collection, which does not exist here */
    ASSERT_EQ_INT(rag_document_list(db, NULL, &l), RAG_ENOTFOUND);
    ASSERT_OK(rag_close(db));
}

int main(void)
{
    RUN_TEST(test_get_all_chunks);
    RUN_TEST(test_get_expired_and_errors);
    RUN_TEST(test_list_paging);
    return TEST_REPORT();
}
