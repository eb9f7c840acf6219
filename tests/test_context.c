/* test_context.c - prompt-ready context: passages merged at the right offsets, budgets never
 * exceeded, formats, templates, age phrases, staleness, JSON shape and errors. */
#include "test.h"

#include "ragcore.h"

#include <jansson.h>
#include <stdint.h>
#include <time.h>

static char dir[4096];
static rag_db *counting_db; /* the store whose tokens approx() counts */

/* Fixed reference time: 2025-11-27 00:00:00 UTC; documents are dated relative to it. */
#define NOW 1764201600LL
#define DAY 86400LL

/* Single-paragraph documents (no blank lines, so context blocks split at "\n\n"). Each is
 * long enough for several overlapping chunks at chunk_tokens 24 / overlap 6. */
static const char *DOC_A =
    "Zanzibar opens this note on photosynthesis in green plants. Chlorophyll absorbs red and "
    "blue light while reflecting green light back to the observer. The light reactions split "
    "water and release oxygen into the atmosphere of the planet. Electrons flow through "
    "photosystem two and photosystem one in the thylakoid membranes. The café naïve résumé "
    "words test multibyte characters — and dashes — inside chunks. ATP synthase turns a proton "
    "gradient into chemical energy for the Calvin cycle. Rubisco fixes carbon dioxide into "
    "three carbon sugars during the dark reactions. Plants store the sugars as starch in "
    "their leaves and roots for later growth. The closing sentence mentions Zanzibar";
static const char *DOC_B =
    "Volcanoes form where magma rises through the crust of the earth. Basaltic lava flows "
    "quickly while rhyolitic magma is thick and explosive. Eruptions release ash, steam and "
    "sulfur dioxide high into the stratosphere. Calderas collapse after the magma chamber "
    "empties during very large eruptions. Geologists monitor seismic tremors and ground "
    "deformation to forecast activity.";
static const char *DOC_C =
    "Glaciers are rivers of ice that move slowly under their own weight. Snow compacts into "
    "firn and then into dense glacial ice over many decades. Moraines mark where glaciers "
    "deposited rock and sediment at their edges. Climate warming makes many mountain glaciers "
    "retreat each summer season.";

#define NDOCS 3
static const char *ids[NDOCS] = {"a", "b", "c"};
static const char **texts[NDOCS] = {&DOC_A, &DOC_B, &DOC_C};
static const char *titles[NDOCS] = {"Photosynthesis", "Volcanoes", ""};
static const char *sources[NDOCS] = {"/notes/plants.txt", "/notes/volcano.txt", ""};
static const int64_t mtimes[NDOCS] = {NOW - 7 * DAY, NOW - 40 * DAY, 0};

static const char *doc_text(const char *id)
{
    for (int i = 0; i < NDOCS; i++)
        if (strcmp(ids[i], id) == 0)
            return *texts[i];
    return NULL;
}

static rag_db *open_store_with(const char *embedder)
{
    const char *tmp = getenv("RAGCORE_TEST_TMP");
    snprintf(dir, sizeof dir, "%s/context", tmp ? tmp : "/tmp");
    char cmd[4200];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    ASSERT_EQ_INT(system(cmd), 0);
    rag_open_options oo;
    rag_open_options_init(&oo);
    oo.embedder = embedder;
    oo.chunk_tokens = 24;
    oo.chunk_overlap = 6;
    oo.index_spec = "Flat";
    rag_db *db = NULL;
    int rc = rag_open(dir, &oo, &db);
    if (rc == RAG_ENOTFOUND && strcmp(embedder, "hash") != 0)
        return NULL; /* model not in the cache */
    ASSERT_OK(rc);
    if (!db)
        return NULL;
    counting_db = db;
    rag_document docs[NDOCS];
    for (int i = 0; i < NDOCS; i++) {
        rag_document_init(&docs[i]);
        docs[i].id = ids[i];
        docs[i].text = *texts[i];
        docs[i].title = titles[i];
        docs[i].source = sources[i];
        docs[i].source_mtime = mtimes[i];
    }
    rag_ingest_stats st;
    ASSERT_OK(rag_ingest(db, NULL, docs, NDOCS, &st));
    ASSERT_TRUE(st.chunks > 10); /* several chunks per document */
    return db;
}

static rag_db *open_store(void)
{
    return open_store_with("hash");
}

/* Tokens of s as the library counts them against a budget (the approximation for the
 * "hash" embedder). */
static int approx(const char *s)
{
    size_t n = 0;
    ASSERT_OK(rag_count_tokens(counting_db, s, strlen(s), &n));
    return (int)n;
}

static void opts_at(rag_context_options *o, int budget)
{
    rag_context_options_init(o);
    o->budget_tokens = budget;
    o->search.now = NOW;
}

/* One passage per JSON source, rebuilt from its chunk spans: spans that overlap or touch
 * merge. Fills spans[] (pairs start, end) and returns how many passages. */
static size_t merge_spans(json_t *chunks, uint64_t *spans, size_t cap, size_t *nchunks)
{
    size_t n = 0, nc = json_array_size(chunks);
    uint64_t (*cs)[2] = calloc(nc ? nc : 1, sizeof *cs);
    for (size_t i = 0; i < nc; i++) {
        json_t *c = json_array_get(chunks, i);
        cs[i][0] = (uint64_t)json_integer_value(json_object_get(c, "start"));
        cs[i][1] = (uint64_t)json_integer_value(json_object_get(c, "end"));
        if (i) /* chunks come in document order */
            ASSERT_TRUE(cs[i][0] >= cs[i - 1][0]);
    }
    for (size_t i = 0; i < nc; i++) {
        if (n && cs[i][0] <= spans[2 * n - 1]) {
            if (cs[i][1] > spans[2 * n - 1])
                spans[2 * n - 1] = cs[i][1];
        } else if (n < cap) {
            spans[2 * n] = cs[i][0];
            spans[2 * n + 1] = cs[i][1];
            n++;
        }
    }
    free(cs);
    *nchunks = nc;
    return n;
}

/* Checks a context against its JSON: tokens within budget and equal to the counter on the
 * text, one block per source cited [1], [2], ... in order, and each block's body made of the
 * documents' bytes between the passage offsets (joined by " … "; a truncated passage ends
 * with " …" and stops at a word boundary). Returns the number of merged chunks seen
 * (chunks minus passages). */
static size_t check_context(const rag_prompt_context *ctx, int budget, rag_context_format fmt)
{
    size_t merged = 0;
    const char *text = rag_context_text(ctx);
    json_error_t err;
    json_t *root = json_loads(rag_context_json(ctx), 0, &err);
    ASSERT_TRUE(root != NULL);
    if (!root) {
        fprintf(stderr, "JSON error: %s\n", err.text);
        return 0;
    }
    const char *context = json_string_value(json_object_get(root, "context"));
    ASSERT_TRUE(context != NULL);
    if (fmt != RAG_CONTEXT_JSON)
        ASSERT_STR_EQ(context, text);
    else
        ASSERT_STR_EQ(text, rag_context_json(ctx));
    int tokens = (int)json_integer_value(json_object_get(root, "tokens"));
    ASSERT_EQ_INT(tokens, rag_context_tokens(ctx));
    ASSERT_EQ_INT(tokens, approx(context));
    ASSERT_TRUE(tokens <= budget);
    ASSERT_TRUE(json_is_boolean(json_object_get(root, "no_confident_context")));
    ASSERT_TRUE(json_is_boolean(json_object_get(root, "stale_context")));
    json_t *srcs = json_object_get(root, "sources");
    ASSERT_TRUE(json_is_array(srcs));
    ASSERT_EQ_INT(json_object_size(root), 5);

    const char *p = context;
    for (size_t i = 0; i < json_array_size(srcs); i++) {
        json_t *s = json_array_get(srcs, i);
        ASSERT_EQ_INT(json_object_size(s), 6);
        const char *id = json_string_value(json_object_get(s, "doc_id"));
        const char *doc = id ? doc_text(id) : NULL;
        ASSERT_TRUE(doc != NULL);
        ASSERT_TRUE(json_is_string(json_object_get(s, "source")));
        ASSERT_TRUE(json_is_string(json_object_get(s, "title")));
        ASSERT_TRUE(json_is_integer(json_object_get(s, "source_mtime")));
        ASSERT_TRUE(json_is_integer(json_object_get(s, "ingested_at")));
        json_t *chunks = json_object_get(s, "chunks");
        for (size_t c = 0; c < json_array_size(chunks); c++) {
            json_t *ck = json_array_get(chunks, c);
            ASSERT_TRUE(json_is_integer(json_object_get(ck, "chunk_id")));
            ASSERT_TRUE(json_is_real(json_object_get(ck, "score")));
            ASSERT_EQ_INT(json_object_size(ck), 4);
        }
        if (!doc)
            break;
        /* The header: "[n] " in text, "### [n] " in Markdown. */
        char head[32];
        snprintf(head, sizeof head, "%s[%zu] ", fmt == RAG_CONTEXT_MARKDOWN ? "### " : "",
                 i + 1);
        if (i) {
            ASSERT_TRUE(strncmp(p, "\n\n", 2) == 0);
            p += 2;
        }
        ASSERT_TRUE(strncmp(p, head, strlen(head)) == 0);
        const char *body = strstr(p, fmt == RAG_CONTEXT_MARKDOWN ? "\n\n" : "\n");
        ASSERT_TRUE(body != NULL);
        if (!body)
            break;
        body += fmt == RAG_CONTEXT_MARKDOWN ? 2 : 1;
        uint64_t spans[64];
        size_t nchunks, np = merge_spans(chunks, spans, 32, &nchunks);
        ASSERT_TRUE(np >= 1);
        merged += nchunks - np;
        const char *q = body;
        for (size_t k = 0; k < np; k++) {
            size_t len = (size_t)(spans[2 * k + 1] - spans[2 * k]);
            ASSERT_TRUE(spans[2 * k + 1] <= strlen(doc));
            if (k) {
                if (strncmp(q, " \u2026 ", 5) == 0)
                    q += 5;
                else if (strncmp(q, " ", 1) == 0 && strncmp(q - 4, " \u2026", 4) == 0)
                    q += 1;
                else
                    ASSERT_TRUE(!"passages are joined by \" … \"");
            }
            if (strncmp(q, doc + spans[2 * k], len) != 0) {
                TEST_FAIL_("source %zu passage %zu: text differs from document bytes %llu-%llu",
                           i + 1, k, (unsigned long long)spans[2 * k],
                           (unsigned long long)spans[2 * k + 1]);
                break;
            }
            q += len;
            if (strncmp(q, " \u2026", 4) == 0 && (q[4] == '\0' || q[4] == '\n' || q[4] == ' ')) {
                /* truncated: cut at a word boundary of the document */
                char next = doc[spans[2 * k + 1]];
                ASSERT_TRUE(next == ' ' || next == '\n');
                q += 4;
            }
        }
        ASSERT_TRUE(*q == '\0' || strncmp(q, "\n\n", 2) == 0);
        p = q;
    }
    ASSERT_TRUE(*p == '\0');
    json_decref(root);
    return merged;
}

/* All chunks of one document merge back into exactly its text. */
static void test_merge_whole_document(void)
{
    rag_db *db = open_store();
    rag_context_options o;
    opts_at(&o, 100000);
    const char *only_a[] = {"a"};
    o.search.doc_ids = only_a;
    o.search.n_doc_ids = 1;
    o.search.k = 100;
    o.search.per_doc = 100;
    rag_prompt_context *ctx = NULL;
    ASSERT_OK(rag_context(db, "photosynthesis chlorophyll light", &o, &ctx));
    const char *t = rag_context_text(ctx);
    const char *expect_head = "[1] Photosynthesis \u2014 /notes/plants.txt (updated 2025-11-20, "
                              "7 days ago)\n";
    ASSERT_TRUE(strncmp(t, expect_head, strlen(expect_head)) == 0);
    ASSERT_STR_EQ(t + strlen(expect_head), DOC_A);
    json_t *root = json_loads(rag_context_json(ctx), 0, NULL);
    json_t *chunks = json_object_get(json_array_get(json_object_get(root, "sources"), 0), "chunks");
    ASSERT_TRUE(json_array_size(chunks) >= 4);
    /* consecutive chunks overlap (the merge removed the repeated bytes) */
    int overlaps = 0;
    for (size_t i = 1; i < json_array_size(chunks); i++)
        overlaps += json_integer_value(json_object_get(json_array_get(chunks, i), "start")) <
                    json_integer_value(json_object_get(json_array_get(chunks, i - 1), "end"));
    ASSERT_TRUE(overlaps >= 3);
    ASSERT_EQ_INT(json_integer_value(json_object_get(json_array_get(chunks, 0), "start")), 0);
    ASSERT_EQ_INT(json_integer_value(json_object_get(
                      json_array_get(chunks, json_array_size(chunks) - 1), "end")),
                  strlen(DOC_A));
    check_context(ctx, 100000, RAG_CONTEXT_TEXT);
    json_decref(root);
    rag_context_free(ctx);
    ASSERT_OK(rag_close(db));
}

/* Chunks far apart in one document stay separate passages joined by " … ". */
static void test_gap_separate_passages(void)
{
    rag_db *db = open_store();
    rag_context_options o;
    opts_at(&o, 100000);
    o.search.mode = RAG_MODE_LEXICAL;
    o.search.lexical_unit = RAG_LEXICAL_CHUNK; /* both chunks naming it, not the document once */
    rag_prompt_context *ctx = NULL;
    ASSERT_OK(rag_context(db, "zanzibar", &o, &ctx));
    json_t *root = json_loads(rag_context_json(ctx), 0, NULL);
    json_t *srcs = json_object_get(root, "sources");
    ASSERT_EQ_INT(json_array_size(srcs), 1);
    json_t *chunks = json_object_get(json_array_get(srcs, 0), "chunks");
    ASSERT_EQ_INT(json_array_size(chunks), 2);
    uint64_t s0 = (uint64_t)json_integer_value(json_object_get(json_array_get(chunks, 0), "start"));
    uint64_t e0 = (uint64_t)json_integer_value(json_object_get(json_array_get(chunks, 0), "end"));
    uint64_t s1 = (uint64_t)json_integer_value(json_object_get(json_array_get(chunks, 1), "start"));
    uint64_t e1 = (uint64_t)json_integer_value(json_object_get(json_array_get(chunks, 1), "end"));
    ASSERT_EQ_INT(s0, 0);
    ASSERT_EQ_INT(e1, strlen(DOC_A));
    ASSERT_TRUE(s1 > e0);
    char expect[4096];
    snprintf(expect, sizeof expect,
             "[1] Photosynthesis \u2014 /notes/plants.txt (updated 2025-11-20, 7 days ago)\n"
             "%.*s \u2026 %.*s",
             (int)(e0 - s0), DOC_A + s0, (int)(e1 - s1), DOC_A + s1);
    ASSERT_STR_EQ(rag_context_text(ctx), expect);
    ASSERT_EQ_INT(check_context(ctx, 100000, RAG_CONTEXT_TEXT), 0);
    json_decref(root);
    rag_context_free(ctx);
    ASSERT_OK(rag_close(db));
}

/* Sources follow their best hit, passages hold the document bytes, merging happens. */
static void test_citations_and_order(void)
{
    rag_db *db = open_store();
    rag_context_options o;
    opts_at(&o, 100000);
    o.search.per_doc = 20;
    rag_prompt_context *ctx = NULL;
    const char *q = "volcano magma eruptions photosynthesis light glaciers";
    ASSERT_OK(rag_context(db, q, &o, &ctx));
    size_t merged = check_context(ctx, 100000, RAG_CONTEXT_TEXT);
    ASSERT_TRUE(merged >= 2);
    json_t *root = json_loads(rag_context_json(ctx), 0, NULL);
    json_t *srcs = json_object_get(root, "sources");
    ASSERT_EQ_INT(json_array_size(srcs), 3);
    /* The same search ranks documents in the context's order (first appearance). */
    rag_search_options so = o.search;
    so.k = 20;
    so.mmr_lambda = 0.7f;
    rag_results *res = NULL;
    ASSERT_OK(rag_search(db, q, &so, &res));
    const char *seen[3];
    size_t nseen = 0;
    for (size_t i = 0; i < rag_results_count(res) && nseen < 3; i++) {
        const char *id = rag_results_get(res, i)->doc_id;
        int dup = 0;
        for (size_t j = 0; j < nseen; j++)
            dup |= strcmp(seen[j], id) == 0;
        if (!dup)
            seen[nseen++] = id;
    }
    ASSERT_EQ_INT(nseen, 3);
    for (size_t i = 0; i < nseen; i++)
        ASSERT_STR_EQ(json_string_value(json_object_get(json_array_get(srcs, i), "doc_id")),
                      seen[i]);
    /* Every chunk id and score in the JSON is one of the search's hits. */
    for (size_t i = 0; i < json_array_size(srcs); i++) {
        json_t *chunks = json_object_get(json_array_get(srcs, i), "chunks");
        for (size_t c = 0; c < json_array_size(chunks); c++) {
            json_t *ck = json_array_get(chunks, c);
            uint64_t cid = (uint64_t)json_integer_value(json_object_get(ck, "chunk_id"));
            int found = 0;
            for (size_t h = 0; h < rag_results_count(res); h++) {
                const rag_hit *hit = rag_results_get(res, h);
                if (hit->chunk_id == cid) {
                    found = 1;
                    ASSERT_EQ_INT(hit->start, json_integer_value(json_object_get(ck, "start")));
                    ASSERT_EQ_INT(hit->end, json_integer_value(json_object_get(ck, "end")));
                    ASSERT_NEAR(hit->score, json_real_value(json_object_get(ck, "score")), 1e-6);
                    ASSERT_STR_EQ(hit->doc_id, json_string_value(json_object_get(
                                                   json_array_get(srcs, i), "doc_id")));
                }
            }
            ASSERT_TRUE(found);
        }
    }
    /* A document without title or source is named by its id. */
    ASSERT_TRUE(strstr(rag_context_text(ctx), "] c \u2014 c (updated ") != NULL);
    rag_results_free(res);
    json_decref(root);
    rag_context_free(ctx);
    ASSERT_OK(rag_close(db));
}

/* Over a sweep of budgets the context never exceeds the budget, stays well formed, and
 * truncation (at word boundaries) happens for some budgets. */
static void test_budget_sweep(void)
{
    rag_db *db = open_store();
    const char *q = "photosynthesis light volcano magma glaciers ice";
    int truncated = 0, empty = 0, full = 0, prev = -1, monotone_breaks = 0;
    rag_context_format fmts[] = {RAG_CONTEXT_TEXT, RAG_CONTEXT_MARKDOWN, RAG_CONTEXT_JSON};
    for (int f = 0; f < 3; f++) {
        prev = -1;
        for (int budget = 1; budget <= 420; budget += f == 0 ? 1 : 3) {
            rag_context_options o;
            opts_at(&o, budget);
            o.format = fmts[f];
            o.search.per_doc = 20;
            rag_prompt_context *ctx = NULL;
            ASSERT_OK(rag_context(db, q, &o, &ctx));
            if (!ctx)
                continue;
            int t = rag_context_tokens(ctx);
            if (t > budget)
                TEST_FAIL_("format %d budget %d: %d tokens", f, budget, t);
            check_context(ctx, budget, fmts[f]);
            json_t *root = json_loads(rag_context_json(ctx), 0, NULL);
            const char *c = json_string_value(json_object_get(root, "context"));
            truncated += c && strstr(c, " \u2026\n") != NULL;
            truncated += c && strlen(c) > 4 && strcmp(c + strlen(c) - 4, " \u2026") == 0;
            empty += t == 0;
            full += t > 0 && t >= budget - 30;
            monotone_breaks += t < prev - 40;
            prev = t;
            json_decref(root);
            rag_context_free(ctx);
        }
    }
    ASSERT_TRUE(truncated > 20);
    ASSERT_TRUE(empty >= 3);   /* budgets below one header give an empty context */
    ASSERT_TRUE(full > 100);   /* the budget is used, not just respected */
    ASSERT_EQ_INT(monotone_breaks, 0);
    ASSERT_OK(rag_close(db));
}

/* With a neural model the budget is counted in exact WordPiece tokens. */
static void test_budget_wordpiece(void)
{
    rag_db *db = open_store_with("all-MiniLM-L6-v2");
    if (!db) {
        fprintf(stderr, "     (all-MiniLM-L6-v2 not in the model cache: skipped)\n");
        return;
    }
    /* the counter is the model's WordPiece tokenizer (counts from the reference tokenizer,
     * tests/data/tokenizer_cases.json, without [CLS] and [SEP]), not the approximation */
    size_t wp = 0;
    ASSERT_OK(rag_count_tokens(db, "U.S.A. vs. u.s.a.", 17, &wp));
    ASSERT_EQ_INT(wp, 14);
    const char *greek = "\u0391\u0392\u0393 \u03a3\u03af\u03c3\u03c5\u03c6\u03bf\u03c2 "
                        "\u1f40\u03b4\u03c5\u03c3\u03c3\u03b5\u03cd\u03c2";
    ASSERT_OK(rag_count_tokens(db, greek, strlen(greek), &wp));
    ASSERT_EQ_INT(wp, 17);
    ASSERT_OK(rag_count_tokens(db, "", 0, &wp));
    ASSERT_EQ_INT(wp, 0);
    int all = -1; /* tokens when everything retrieved fits */
    for (int budget = 100000; budget >= 10; budget = budget == 100000 ? 400 : budget - 13) {
        rag_context_options o;
        opts_at(&o, budget);
        o.search.per_doc = 20;
        rag_prompt_context *ctx = NULL;
        ASSERT_OK(rag_context(db, "how do plants turn light into sugar", &o, &ctx));
        if (!ctx)
            continue;
        const char *t = rag_context_text(ctx);
        size_t n = 0;
        ASSERT_OK(rag_count_tokens(db, t, strlen(t), &n));
        int exact = (int)n;
        ASSERT_EQ_INT(rag_context_tokens(ctx), exact);
        if (exact > budget)
            TEST_FAIL_("budget %d: %d WordPiece tokens", budget, exact);
        if (all < 0)
            all = exact;
        /* the budget is used: what is left is less than a new source's header (about 25
         * tokens) plus the shortest cut passage (RAG_CONTEXT_MIN_TRUNCATE) */
        if (budget >= 40 && exact < (budget < all ? budget : all) - 60)
            TEST_FAIL_("budget %d: only %d of %d tokens used", budget, exact, all);
        rag_context_free(ctx);
    }
    ASSERT_TRUE(all > 100);
    ASSERT_OK(rag_close(db));
}

static void test_formats(void)
{
    rag_db *db = open_store();
    const char *only_a[] = {"a"};
    rag_context_options o;
    opts_at(&o, 2000);
    o.search.doc_ids = only_a;
    o.search.n_doc_ids = 1;
    o.search.k = 100;
    o.search.per_doc = 100;
    o.format = RAG_CONTEXT_MARKDOWN;
    rag_prompt_context *ctx = NULL;
    ASSERT_OK(rag_context(db, "chlorophyll", &o, &ctx));
    char expect[4096];
    snprintf(expect, sizeof expect,
             "### [1] Photosynthesis\nSource: /notes/plants.txt \u00b7 updated 2025-11-20, "
             "7 days ago\n\n%s",
             DOC_A);
    ASSERT_STR_EQ(rag_context_text(ctx), expect);
    ASSERT_EQ_INT(rag_context_tokens(ctx), approx(expect));
    check_context(ctx, 2000, RAG_CONTEXT_MARKDOWN);
    rag_context_free(ctx);

    o.format = RAG_CONTEXT_JSON;
    ASSERT_OK(rag_context(db, "chlorophyll", &o, &ctx));
    ASSERT_STR_EQ(rag_context_text(ctx), rag_context_json(ctx));
    json_t *root = json_loads(rag_context_text(ctx), 0, NULL);
    ASSERT_TRUE(root != NULL);
    const char *c = json_string_value(json_object_get(root, "context"));
    const char *want = "[1] Photosynthesis \u2014 ";
    ASSERT_TRUE(c && strncmp(c, want, strlen(want)) == 0);
    ASSERT_TRUE(json_is_false(json_object_get(root, "stale_context")));
    json_t *s0 = json_array_get(json_object_get(root, "sources"), 0);
    ASSERT_STR_EQ(json_string_value(json_object_get(s0, "doc_id")), "a");
    ASSERT_STR_EQ(json_string_value(json_object_get(s0, "title")), "Photosynthesis");
    ASSERT_STR_EQ(json_string_value(json_object_get(s0, "source")), "/notes/plants.txt");
    ASSERT_EQ_INT(json_integer_value(json_object_get(s0, "source_mtime")), NOW - 7 * DAY);
    ASSERT_TRUE(json_integer_value(json_object_get(s0, "ingested_at")) > NOW);
    check_context(ctx, 2000, RAG_CONTEXT_JSON);
    json_decref(root);
    rag_context_free(ctx);

    /* NULL options: defaults (text, 1024 tokens, current time) */
    ASSERT_OK(rag_context(db, "glaciers ice", NULL, &ctx));
    ASSERT_TRUE(rag_context_tokens(ctx) > 0 && rag_context_tokens(ctx) <= 1024);
    ASSERT_TRUE(strncmp(rag_context_text(ctx), "[1] ", 4) == 0);
    rag_context_free(ctx);
    ASSERT_OK(rag_close(db));
}

static void test_template(void)
{
    rag_db *db = open_store();
    const char *only_b[] = {"b"};
    rag_context_options o;
    opts_at(&o, 5000);
    o.search.doc_ids = only_b;
    o.search.n_doc_ids = 1;
    o.search.k = 1;
    o.source_template = "<{n}|{doc_id}|{title}|{source}|{date}|{age}|{ x }|{score}>";
    rag_prompt_context *ctx = NULL;
    ASSERT_OK(rag_context(db, "magma", &o, &ctx));
    const char *t = rag_context_text(ctx);
    const char *head = "<1|b|Volcanoes|/notes/volcano.txt|2025-10-18|1 month ago|{ x }|";
    ASSERT_TRUE(strncmp(t, head, strlen(head)) == 0);
    json_t *root = json_loads(rag_context_json(ctx), 0, NULL);
    json_t *s0 = json_array_get(json_object_get(root, "sources"), 0);
    double score = json_real_value(
        json_object_get(json_array_get(json_object_get(s0, "chunks"), 0), "score"));
    char tail[64];
    snprintf(tail, sizeof tail, "%.3f>\n", score);
    ASSERT_TRUE(strncmp(t + strlen(head), tail, strlen(tail)) == 0);
    ASSERT_TRUE(rag_context_stale(ctx)); /* 40 days > 30 */
    json_decref(root);
    rag_context_free(ctx);

    o.source_template = "[{n}] {nope}";
    ASSERT_EQ_INT(rag_context(db, "magma", &o, &ctx), RAG_EINVAL);
    ASSERT_TRUE(ctx == NULL);
    ASSERT_TRUE(strstr(rag_errmsg(), "{nope}") != NULL);
    ASSERT_TRUE(strstr(rag_errmsg(), "byte 6") != NULL);
    /* braces that are no placeholder are text */
    o.source_template = "{n}{title}{ {source}} {}";
    ASSERT_OK(rag_context(db, "magma", &o, &ctx));
    const char *braces = "1Volcanoes{ /notes/volcano.txt} {}\n";
    ASSERT_TRUE(ctx && strncmp(rag_context_text(ctx), braces, strlen(braces)) == 0);
    rag_context_free(ctx);
    ASSERT_OK(rag_close(db));
}

/* The age phrase of a source, through the {age} placeholder: document "a" was modified
 * 7 days before NOW, and "now" moves its age. */
static void test_age_phrases(void)
{
    static const struct {
        int64_t s;
        const char *want;
    } cases[] = {
        {-5, "just now"},        {0, "just now"},           {59, "just now"},
        {60, "1 minute ago"},    {300, "5 minutes ago"},    {3599, "59 minutes ago"},
        {3600, "1 hour ago"},    {3 * 3600, "3 hours ago"}, {DAY - 1, "23 hours ago"},
        {DAY, "yesterday"},      {2 * DAY - 1, "yesterday"}, {2 * DAY, "2 days ago"},
        {7 * DAY, "7 days ago"}, {29 * DAY, "29 days ago"}, {30 * DAY, "1 month ago"},
        {65 * DAY, "2 months ago"}, {364 * DAY, "12 months ago"}, {365 * DAY, "1 year ago"},
        {3 * 365 * DAY + 10, "3 years ago"},
    };
    rag_db *db = open_store();
    const char *only_a[] = {"a"};
    rag_context_options o;
    opts_at(&o, 5000);
    o.search.doc_ids = only_a;
    o.search.n_doc_ids = 1;
    o.search.k = 1;
    o.source_template = "{age}|{date}";
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        o.search.now = NOW - 7 * DAY + cases[i].s;
        rag_prompt_context *ctx = NULL;
        ASSERT_OK(rag_context(db, "photosynthesis", &o, &ctx));
        char want[64];
        snprintf(want, sizeof want, "%s|2025-11-20\n", cases[i].want);
        if (!ctx || strncmp(rag_context_text(ctx), want, strlen(want)) != 0)
            TEST_FAIL_("age %lld: got \"%.40s\", want \"%s\"", (long long)cases[i].s,
                       ctx ? rag_context_text(ctx) : "(none)", want);
        rag_context_free(ctx);
    }
    ASSERT_OK(rag_close(db));
}

/* stale_context: the freshest supporting source against stale_after; source_mtime 0 falls
 * back to the ingest time. */
static void test_stale(void)
{
    rag_db *db = open_store();
    rag_context_options o;
    opts_at(&o, 5000);
    o.search.k = 50;
    o.search.per_doc = 50;
    rag_prompt_context *ctx = NULL;
    const char *only_b[] = {"b"}, *only_a[] = {"a"}, *a_b[] = {"a", "b"}, *only_c[] = {"c"};

    o.search.doc_ids = only_b; /* 40 days old */
    o.search.n_doc_ids = 1;
    ASSERT_OK(rag_context(db, "magma", &o, &ctx));
    ASSERT_EQ_INT(rag_context_stale(ctx), 1);
    json_t *root = json_loads(rag_context_json(ctx), 0, NULL);
    ASSERT_TRUE(json_is_true(json_object_get(root, "stale_context")));
    json_decref(root);
    rag_context_free(ctx);

    o.stale_after = 41 * DAY;
    ASSERT_OK(rag_context(db, "magma", &o, &ctx));
    ASSERT_EQ_INT(rag_context_stale(ctx), 0);
    rag_context_free(ctx);
    o.stale_after = 39 * DAY;
    ASSERT_OK(rag_context(db, "magma", &o, &ctx));
    ASSERT_EQ_INT(rag_context_stale(ctx), 1);
    rag_context_free(ctx);

    o.stale_after = 0; /* 30 days */
    o.search.doc_ids = only_a; /* 7 days old */
    ASSERT_OK(rag_context(db, "photosynthesis", &o, &ctx));
    ASSERT_EQ_INT(rag_context_stale(ctx), 0);
    rag_context_free(ctx);

    o.search.doc_ids = a_b; /* the freshest (7 days) decides */
    o.search.n_doc_ids = 2;
    ASSERT_OK(rag_context(db, "photosynthesis magma", &o, &ctx));
    ASSERT_TRUE(strstr(rag_context_text(ctx), "Volcanoes") != NULL);
    ASSERT_EQ_INT(rag_context_stale(ctx), 0);
    rag_context_free(ctx);
    o.stale_after = 6 * DAY;
    ASSERT_OK(rag_context(db, "photosynthesis magma", &o, &ctx));
    ASSERT_EQ_INT(rag_context_stale(ctx), 1);
    rag_context_free(ctx);

    /* No mtime: the ingest time (just now) counts. */
    o.stale_after = 0;
    o.search.doc_ids = only_c;
    o.search.n_doc_ids = 1;
    o.search.now = 0;
    ASSERT_OK(rag_context(db, "glaciers", &o, &ctx));
    ASSERT_EQ_INT(rag_context_stale(ctx), 0);
    ASSERT_TRUE(strstr(rag_context_text(ctx), ", just now)\n") != NULL);
    rag_context_free(ctx);
    o.search.now = (int64_t)time(NULL) + 31 * DAY;
    ASSERT_OK(rag_context(db, "glaciers", &o, &ctx));
    ASSERT_EQ_INT(rag_context_stale(ctx), 1);
    ASSERT_TRUE(strstr(rag_context_text(ctx), ", 1 month ago)\n") != NULL);
    rag_context_free(ctx);
    ASSERT_OK(rag_close(db));
}

static void test_no_hits_and_errors(void)
{
    rag_db *db = open_store();
    rag_context_options o;
    opts_at(&o, 500);
    o.search.mode = RAG_MODE_LEXICAL;
    rag_prompt_context *ctx = NULL;
    ASSERT_OK(rag_context(db, "qqqxyzzy", &o, &ctx));
    ASSERT_STR_EQ(rag_context_text(ctx), "");
    ASSERT_EQ_INT(rag_context_tokens(ctx), 0);
    ASSERT_EQ_INT(rag_context_no_confident(ctx), 1);
    ASSERT_EQ_INT(rag_context_stale(ctx), 0);
    ASSERT_STR_EQ(rag_context_json(ctx), "{\"context\":\"\",\"sources\":[],\"tokens\":0,"
                                         "\"no_confident_context\":true,\"stale_context\":false}");
    rag_context_free(ctx);
    o.search.mode = RAG_MODE_HYBRID;
    o.search.dense_threshold = -1; /* never flag */
    o.search.lexical_threshold = -1;
    ASSERT_OK(rag_context(db, "chlorophyll", &o, &ctx));
    ASSERT_EQ_INT(rag_context_no_confident(ctx), 0);
    rag_context_free(ctx);

    static const struct {
        int budget;
        int format;
        int64_t stale;
        const char *msg;
    } bad[] = {{-1, 0, 0, "budget_tokens"},   {1000001, 0, 0, "budget_tokens"},
               {100, 9, 0, "format"},         {100, 0, -1, "stale_after"}};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        opts_at(&o, bad[i].budget);
        o.format = (rag_context_format)bad[i].format;
        o.stale_after = bad[i].stale;
        ctx = (rag_prompt_context *)&o; /* must be reset to NULL */
        ASSERT_EQ_INT(rag_context(db, "x", &o, &ctx), RAG_EINVAL);
        ASSERT_TRUE(ctx == NULL);
        ASSERT_TRUE(strstr(rag_errmsg(), bad[i].msg) != NULL);
    }
    opts_at(&o, 1000000); /* the largest budget is accepted */
    ASSERT_OK(rag_context(db, "x", &o, &ctx));
    rag_context_free(ctx);
    opts_at(&o, 100);
    o.version = 0;
    ASSERT_EQ_INT(rag_context(db, "x", &o, &ctx), RAG_EINVAL);
    ASSERT_TRUE(strstr(rag_errmsg(), "version") != NULL);
    opts_at(&o, 100);
    ASSERT_EQ_INT(rag_context(db, NULL, &o, &ctx), RAG_EINVAL);
    ASSERT_TRUE(strstr(rag_errmsg(), "query") != NULL);
    ASSERT_EQ_INT(rag_context(NULL, "x", &o, &ctx), RAG_EINVAL);
    ASSERT_EQ_INT(rag_context(db, "x", &o, NULL), RAG_EINVAL);
    o.search.collection = "missing";
    ASSERT_EQ_INT(rag_context(db, "x", &o, &ctx), RAG_ENOTFOUND);
    ASSERT_TRUE(strstr(rag_errmsg(), "missing") != NULL);
    opts_at(&o, 100);
    o.search.filter = "title = ";
    ASSERT_EQ_INT(rag_context(db, "x", &o, &ctx), RAG_EPARSE);
    rag_context_free(NULL);
    ASSERT_TRUE(rag_context_text(NULL) == NULL);
    ASSERT_EQ_INT(rag_context_no_confident(NULL), 1);
    ASSERT_OK(rag_close(db));
}

int main(void)
{
    RUN_TEST(test_age_phrases);
    RUN_TEST(test_merge_whole_document);
    RUN_TEST(test_gap_separate_passages);
    RUN_TEST(test_citations_and_order);
    RUN_TEST(test_formats);
    RUN_TEST(test_template);
    RUN_TEST(test_budget_sweep);
    RUN_TEST(test_budget_wordpiece);
    RUN_TEST(test_stale);
    RUN_TEST(test_no_hits_and_errors);
    return TEST_REPORT();
}
