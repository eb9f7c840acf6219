/* test_lexical.c - BM25 index: analyzer, exact scores, maintenance, Unicode, threads. */
#include "crypt.h"
#include "lexical.h"
#include "status.h"
#include "test.h"

#include <math.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* ---- helpers --------------------------------------------------------------------------- */

enum { OP_ADD, OP_REMOVE, OP_PURGE };

typedef struct op {
    int kind;
    uint32_t coll;
    uint64_t id;
    const char *text;
} op;

typedef struct op_list {
    const rag_analyzer *an;
    const op *ops;
    size_t n;
} op_list;

static int run_ops(rag_txn *txn, void *user)
{
    const op_list *l = user;
    for (size_t i = 0; i < l->n; i++) {
        const op *o = &l->ops[i];
        int rc = o->kind == OP_ADD
                     ? rag_lexical_add(txn, l->an, o->coll, o->id, o->text, strlen(o->text))
                 : o->kind == OP_REMOVE
                     ? rag_lexical_remove(txn, l->an, o->coll, o->id, o->text, strlen(o->text))
                     : rag_lexical_purge(txn, o->coll);
        if (rc != RAG_OK)
            return rc;
    }
    return RAG_OK;
}

static int apply(rag_store *st, const rag_analyzer *an, const op *ops, size_t n)
{
    op_list l = {an, ops, n};
    return rag_store_write(st, run_ops, &l);
}

static int apply1(rag_store *st, const rag_analyzer *an, int kind, uint32_t coll, uint64_t id,
                  const char *text)
{
    op o = {kind, coll, id, text};
    return apply(st, an, &o, 1);
}

static rag_store *open_store(const char *name)
{
    const char *tmp = getenv("RAGCORE_TEST_TMP");
    char dir[1024], cmd[1100];
    snprintf(dir, sizeof dir, "%s/%s", tmp ? tmp : "/tmp", name);
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (system(cmd) != 0)
        return NULL;
    rag_store *st = NULL;
    if (rag_store_open(dir, 0, &st) != RAG_OK)
        fprintf(stderr, "rag_store_open: %s\n", rag_errmsg());
    return st;
}

typedef struct search_out {
    int n;
    float scores[16];
    uint64_t ids[16];
} search_out;

static search_out search(rag_store *st, const rag_analyzer *an, uint32_t coll, const char *q,
                         int k, rag_chunk_pred allow, void *allow_user)
{
    search_out r;
    memset(&r, 0, sizeof r);
    rag_txn *txn = NULL;
    if (rag_store_read(st, &txn) != RAG_OK) {
        r.n = -100;
        return r;
    }
    r.n = rag_lexical_search(txn, an, coll, q, strlen(q), NULL, NULL, k, allow, allow_user,
                             r.scores, r.ids);
    rag_txn_end(txn);
    return r;
}

/* Collects emitted terms as "t1|t2|...". */
typedef struct joined {
    char buf[2048];
    size_t len;
} joined;

static void join_term(void *user, const char *term, size_t len)
{
    joined *j = user;
    if (j->len + len + 2 >= sizeof j->buf)
        return;
    if (j->len)
        j->buf[j->len++] = '|';
    memcpy(j->buf + j->len, term, len);
    j->len += len;
    j->buf[j->len] = 0;
}

static const char *terms_of(const rag_analyzer *an, const char *text, joined *j)
{
    memset(j, 0, sizeof *j);
    if (rag_analyze(an, text, strlen(text), join_term, j) != RAG_OK)
        return "(error)";
    return j->buf;
}

/* ---- analyzer ---------------------------------------------------------------------------- */

static void test_analyzer_english(void)
{
    rag_analyzer *an = NULL;
    joined j;
    ASSERT_OK(rag_analyzer_create("english", 1, &an));
    if (!an)
        return;
    /* stop words go, stems stay, hyphens split, numbers and contractions stay whole */
    ASSERT_STR_EQ(terms_of(an, "The Running dogs of the owner's COVID-19 trial", &j),
                  "run|dog|owner|covid|19|trial");
    ASSERT_STR_EQ(terms_of(an, "3.5 mg, 10,000 cells; don't e.g. end.", &j),
                  "3.5|mg|10,000|cell|don't|e.g|end");
    ASSERT_STR_EQ(terms_of(an, "  ...  --- ", &j), "");
    ASSERT_STR_EQ(terms_of(an, "", &j), "");
    /* "runs", "running" and "run" share a stem */
    joined a, b;
    ASSERT_STR_EQ(terms_of(an, "runs", &a), terms_of(an, "running", &b));
    rag_analyzer_free(an);

    ASSERT_OK(rag_analyzer_create("none", 0, &an));
    ASSERT_STR_EQ(terms_of(an, "The Running dogs", &j), "the|running|dogs");
    rag_analyzer_free(an);
    ASSERT_OK(rag_analyzer_create("none", 1, &an));
    ASSERT_STR_EQ(terms_of(an, "The Running dogs", &j), "running|dogs");
    rag_analyzer_free(an);
}

static void test_analyzer_unicode(void)
{
    rag_analyzer *an = NULL;
    joined j;
    ASSERT_OK(rag_analyzer_create("none", 0, &an));
    if (!an)
        return;
    /* case folding beyond ASCII, accents of Latin letters dropped, ligature expanded */
    ASSERT_STR_EQ(terms_of(an, "CAFÉ Café cafe\xCC\x81 Straße ÉCOLE \xEF\xAC\x81ne", &j),
                  "cafe|cafe|cafe|strasse|ecole|fine");
    /* curly apostrophe reads as a straight one */
    ASSERT_STR_EQ(terms_of(an, "don\xE2\x80\x99t", &j), "don't");
    /* Greek and Cyrillic are folded, not split */
    ASSERT_STR_EQ(terms_of(an, "ΑΛΦΑ-β Москва", &j), "αλφα|β|москва");
    /* Han and Hiragana: one term per character; Katakana runs stay whole */
    ASSERT_STR_EQ(terms_of(an, "東京大学で研究 コンピュータ", &j),
                  "東|京|大|学|で|研|究|コンピュータ");
    /* invalid UTF-8 bytes separate words */
    ASSERT_STR_EQ(terms_of(an, "abc\xFF" "def\xC3", &j), "abc|def");
    rag_analyzer_free(an);

    /* a non-English stemmer keeps accents for its algorithm */
    ASSERT_OK(rag_analyzer_create("french", 0, &an));
    if (an) {
        joined a, b;
        ASSERT_STR_EQ(terms_of(an, "continuellement", &a), terms_of(an, "continuel", &b));
        ASSERT_STR_EQ(terms_of(an, "été", &j), "été");
        rag_analyzer_free(an);
    }
}

static void test_analyzer_errors(void)
{
    rag_analyzer *an = (rag_analyzer *)1;
    ASSERT_EQ_INT(rag_analyzer_create("klingon", 0, &an), RAG_EINVAL);
    ASSERT_TRUE(an == NULL);
    ASSERT_TRUE(strstr(rag_errmsg(), "klingon") != NULL);
    ASSERT_EQ_INT(rag_analyzer_create("french", 1, &an), RAG_EINVAL);
    ASSERT_TRUE(strstr(rag_errmsg(), "stop-word") != NULL);
    ASSERT_OK(rag_analyzer_create(NULL, 1, &an)); /* default english */
    joined j;
    ASSERT_STR_EQ(terms_of(an, "the cats", &j), "cat");
    rag_analyzer_free(an);
    rag_analyzer_free(NULL);
}

/* ---- threads ------------------------------------------------------------------------------- */

static const char *thread_text =
    "Running experiments on generalized cellular differentiation: the organisms' responses "
    "were measured repeatedly, and CAFÉ-style naïve analyses of 東京 data were discarded.";

typedef struct thread_arg {
    const rag_analyzer *an;
    const char *expect;
    int mismatches;
} thread_arg;

static void *analyze_many(void *user)
{
    thread_arg *a = user;
    for (int i = 0; i < 300; i++) {
        joined j;
        if (strcmp(terms_of(a->an, thread_text, &j), a->expect) != 0)
            a->mismatches++;
    }
    return NULL;
}

static void test_analyzer_threads(void)
{
    rag_analyzer *an = NULL;
    ASSERT_OK(rag_analyzer_create("english", 1, &an));
    if (!an)
        return;
    joined ref;
    terms_of(an, thread_text, &ref);
    ASSERT_TRUE(strstr(ref.buf, "run|experi") == ref.buf);
    pthread_t th[6];
    thread_arg args[6];
    for (int i = 0; i < 6; i++) {
        args[i] = (thread_arg){an, ref.buf, 0};
        ASSERT_EQ_INT(pthread_create(&th[i], NULL, analyze_many, &args[i]), 0);
    }
    for (int i = 0; i < 6; i++) {
        pthread_join(th[i], NULL);
        ASSERT_EQ_INT(args[i].mismatches, 0);
    }
    rag_analyzer_free(an);
}

/* ---- index and scores ---------------------------------------------------------------------- */

static const op tiny[] = {
    {OP_ADD, 7, 1, "apple banana apple"},
    {OP_ADD, 7, 2, "banana cherry"},
    {OP_ADD, 7, 3, "cherry date elderberry fig"},
};

static int not_two(void *user, uint64_t id)
{
    (*(int *)user)++;
    return id != 2;
}

static void test_bm25_exact(void)
{
    rag_store *st = open_store("lexical_exact");
    rag_analyzer *an = NULL;
    ASSERT_TRUE(st != NULL);
    ASSERT_OK(rag_analyzer_create("none", 0, &an));
    if (!st || !an)
        goto done;
    ASSERT_OK(apply(st, an, tiny, 3));

    rag_txn *txn = NULL;
    ASSERT_OK(rag_store_read(st, &txn));
    uint64_t n = 0, total = 0;
    uint32_t df = 0;
    ASSERT_OK(rag_lexical_stats(txn, 7, &n, &total));
    ASSERT_EQ_INT(n, 3);
    ASSERT_EQ_INT(total, 9);
    ASSERT_OK(rag_lexical_df(txn, 7, "banana", 6, &df));
    ASSERT_EQ_INT(df, 2);
    ASSERT_OK(rag_lexical_df(txn, 7, "apple", 5, &df));
    ASSERT_EQ_INT(df, 1);
    ASSERT_OK(rag_lexical_df(txn, 7, "grape", 5, &df));
    ASSERT_EQ_INT(df, 0);
    ASSERT_EQ_INT(rag_lexical_indexed(txn, 7, 2), 1);
    ASSERT_EQ_INT(rag_lexical_indexed(txn, 7, 4), 0);
    ASSERT_EQ_INT(rag_lexical_indexed(txn, 8, 2), 0);
    rag_txn_end(txn);

    /* N=3, avgdl=3, k1=0.9, b=0.4; idf(df=1) = ln(1 + 2.5/1.5), idf(df=2) = ln(1.6).
     * apple in chunk 1: tf=2, dl=3: idf1 * 2*1.9 / (2 + 0.9) */
    search_out r = search(st, an, 7, "apple", 10, NULL, NULL);
    ASSERT_EQ_INT(r.n, 1);
    ASSERT_EQ_INT(r.ids[0], 1);
    ASSERT_NEAR(r.scores[0], 1.2852245384, 1e-5);

    /* chunk 2: 2 * ln1.6 * 1.9/(1 + 0.9*(0.6 + 0.4*2/3)); chunk 1: ln1.6 * 1.9/1.9;
     * chunk 3: ln1.6 * 1.9/(1 + 0.9*(0.6 + 0.4*4/3)) */
    r = search(st, an, 7, "Banana CHERRY", 10, NULL, NULL);
    ASSERT_EQ_INT(r.n, 3);
    ASSERT_EQ_INT(r.ids[0], 2);
    ASSERT_EQ_INT(r.ids[1], 1);
    ASSERT_EQ_INT(r.ids[2], 3);
    ASSERT_NEAR(r.scores[0], 1.0033785343, 1e-5);
    ASSERT_NEAR(r.scores[1], 0.4700036292, 1e-5);
    ASSERT_NEAR(r.scores[2], 0.4420826216, 1e-5);

    /* a repeated query term counts twice */
    r = search(st, an, 7, "apple apple", 10, NULL, NULL);
    ASSERT_NEAR(r.scores[0], 2 * 1.2852245384, 1e-5);

    /* k limits; the predicate is consulted and excluded chunks take no slot */
    r = search(st, an, 7, "banana cherry", 1, NULL, NULL);
    ASSERT_EQ_INT(r.n, 1);
    ASSERT_EQ_INT(r.ids[0], 2);
    int calls = 0;
    r = search(st, an, 7, "banana cherry", 2, not_two, &calls);
    ASSERT_EQ_INT(r.n, 2);
    ASSERT_EQ_INT(r.ids[0], 1);
    ASSERT_EQ_INT(r.ids[1], 3);
    ASSERT_EQ_INT(calls, 3);

    /* unknown terms, other collections, empty queries: no hits */
    ASSERT_EQ_INT(search(st, an, 7, "grape", 10, NULL, NULL).n, 0);
    ASSERT_EQ_INT(search(st, an, 8, "apple", 10, NULL, NULL).n, 0);
    ASSERT_EQ_INT(search(st, an, 7, " -- ", 10, NULL, NULL).n, 0);

    /* bad arguments */
    ASSERT_EQ_INT(search(st, an, 7, "apple", 0, NULL, NULL).n, RAG_EINVAL);
    ASSERT_OK(rag_store_read(st, &txn));
    rag_bm25_params p;
    rag_bm25_params_init(&p);
    ASSERT_NEAR(p.k1, 0.9, 1e-6);
    ASSERT_NEAR(p.b, 0.4, 1e-6);
    p.b = 1.5f;
    float sc[4];
    uint64_t ids[4];
    ASSERT_EQ_INT(rag_lexical_search(txn, an, 7, "apple", 5, &p, NULL, 4, NULL, NULL, sc, ids),
                  RAG_EINVAL);
    ASSERT_TRUE(strstr(rag_errmsg(), "b=1.5") != NULL);
    /* b = 0: no length normalisation: chunk 1 banana = ln1.6 * 1.9/1.9 */
    p.b = 0;
    p.k1 = 1.2f;
    ASSERT_EQ_INT(
        rag_lexical_search(txn, an, 7, "banana", 6, &p, NULL, 4, NULL, NULL, sc, ids), 2);
    ASSERT_NEAR(sc[0], 0.4700036292, 1e-5);
    ASSERT_NEAR(sc[1], 0.4700036292, 1e-5);
    ASSERT_EQ_INT(ids[0], 1); /* tie: lower id first */
    rag_txn_end(txn);
done:
    rag_analyzer_free(an);
    rag_store_close(st);
}

/* Serialises every entry of the three lexical tables into one buffer. */
typedef struct dump {
    unsigned char *buf;
    size_t len, cap;
    size_t entries;
} dump;

static int dump_entry(void *user, const void *key, size_t klen, const void *val, size_t vlen)
{
    dump *d = user;
    size_t need = d->len + klen + vlen + 16;
    if (need > d->cap) {
        d->cap = need * 2;
        d->buf = realloc(d->buf, d->cap);
    }
    memcpy(d->buf + d->len, &klen, sizeof klen);
    d->len += sizeof klen;
    memcpy(d->buf + d->len, key, klen);
    d->len += klen;
    memcpy(d->buf + d->len, &vlen, sizeof vlen);
    d->len += sizeof vlen;
    memcpy(d->buf + d->len, val, vlen);
    d->len += vlen;
    d->entries++;
    return 0;
}

static dump dump_tables(rag_store *st)
{
    dump d = {NULL, 0, 0, 0};
    rag_txn *txn = NULL;
    if (rag_store_read(st, &txn) != RAG_OK)
        return d;
    rag_store_kv_scan(txn, "lex_postings", NULL, 0, dump_entry, &d);
    rag_store_kv_scan(txn, "lex_chunks", NULL, 0, dump_entry, &d);
    rag_store_kv_scan(txn, "lex_stats", NULL, 0, dump_entry, &d);
    rag_txn_end(txn);
    return d;
}

static void test_remove_restores(void)
{
    rag_store *st = open_store("lexical_remove");
    rag_analyzer *an = NULL;
    ASSERT_TRUE(st != NULL);
    ASSERT_OK(rag_analyzer_create("english", 1, &an));
    if (!st || !an)
        goto done;
    ASSERT_OK(apply(st, an, tiny, 3));
    dump before = dump_tables(st);
    ASSERT_TRUE(before.entries > 10);

    const char *extra = "The runner ran; runners were running with apples and cherries.";
    ASSERT_OK(apply1(st, an, OP_ADD, 7, 99, extra));
    dump mid = dump_tables(st);
    ASSERT_TRUE(mid.entries > before.entries);
    /* stemming: "running" finds "runs"-family words; "apples" finds "apple" */
    search_out r = search(st, an, 7, "run", 10, NULL, NULL);
    ASSERT_EQ_INT(r.n, 1);
    ASSERT_EQ_INT(r.ids[0], 99);
    r = search(st, an, 7, "apples", 10, NULL, NULL);
    ASSERT_EQ_INT(r.n, 2);
    /* stop words are neither indexed nor searched */
    ASSERT_EQ_INT(search(st, an, 7, "the with and", 10, NULL, NULL).n, 0);

    /* adding twice is refused; removing with other text is detected; both leave no trace */
    ASSERT_EQ_INT(apply1(st, an, OP_ADD, 7, 99, extra), RAG_EEXIST);
    ASSERT_EQ_INT(apply1(st, an, OP_REMOVE, 7, 99, "something else entirely"), RAG_ECORRUPT);
    ASSERT_TRUE(strstr(rag_errmsg(), "99") != NULL);
    dump again = dump_tables(st);
    ASSERT_TRUE(again.len == mid.len && memcmp(again.buf, mid.buf, mid.len) == 0);
    free(again.buf);

    ASSERT_OK(apply1(st, an, OP_REMOVE, 7, 99, extra));
    dump after = dump_tables(st);
    ASSERT_EQ_INT(after.entries, before.entries);
    ASSERT_TRUE(after.len == before.len && memcmp(after.buf, before.buf, before.len) == 0);
    /* removing a chunk that was never indexed is a no-op */
    ASSERT_OK(apply1(st, an, OP_REMOVE, 7, 12345, "whatever"));

    /* removing everything deletes every entry, statistics included */
    op all[] = {{OP_REMOVE, 7, 1, tiny[0].text}, {OP_REMOVE, 7, 2, tiny[1].text},
                {OP_REMOVE, 7, 3, tiny[2].text}};
    ASSERT_OK(apply(st, an, all, 3));
    dump empty = dump_tables(st);
    ASSERT_EQ_INT(empty.entries, 0);
    ASSERT_EQ_INT(search(st, an, 7, "banana", 10, NULL, NULL).n, 0);
    free(empty.buf);
    free(before.buf);
    free(mid.buf);
    free(after.buf);
done:
    rag_analyzer_free(an);
    rag_store_close(st);
}

/* ---- document-level scoring ------------------------------------------------------------- */

/* Three documents of collection 9: A's words are spread over two chunks (the second
 * overlapping the first by "gamma"), B holds both query words in its one chunk, C is two
 * chunks. Chunk lengths 2, 3 | 5 | 2, 2 (14); own lengths 2, 2 | 5 | 2, 2: documents of
 * 4, 5 and 4 terms (13). */
static const rag_lex_chunk doc_a[] = {{10, "alpha gamma", 11, NULL, 0},
                                      {11, "gamma beta delta", 16, "beta delta", 10}};
static const rag_lex_chunk doc_b[] = {{20, "alpha beta epsilon zeta eta", 27, NULL, 0}};
static const rag_lex_chunk doc_c[] = {{30, "eta theta", 9, NULL, 0},
                                      {31, "alpha iota", 10, "alpha iota", 10}};

typedef struct doc_op {
    const rag_analyzer *an;
    uint32_t coll;
    const rag_lex_chunk *chunks;
    size_t n;
    int remove;
} doc_op;

static int run_doc_op(rag_txn *txn, void *user)
{
    const doc_op *d = user;
    return d->remove ? rag_lexical_remove_doc(txn, d->an, d->coll, d->chunks, d->n)
                     : rag_lexical_add_doc(txn, d->an, d->coll, d->chunks, d->n);
}

static int doc_apply(rag_store *st, const rag_analyzer *an, uint32_t coll,
                     const rag_lex_chunk *chunks, size_t n, int remove)
{
    doc_op d = {an, coll, chunks, n, remove};
    return rag_store_write(st, run_doc_op, &d);
}

static int add_abc(rag_store *st, const rag_analyzer *an, uint32_t coll)
{
    int rc = doc_apply(st, an, coll, doc_a, 2, 0);
    if (rc == RAG_OK)
        rc = doc_apply(st, an, coll, doc_b, 1, 0);
    return rc == RAG_OK ? doc_apply(st, an, coll, doc_c, 2, 0) : rc;
}

/* BM25 of one term with k1 0.9, b 0.4 (the formula in lexical.c). */
static double bm25(double tf, double dl, double avgdl, double df, double n)
{
    double idf = log(1.0 + (n - df + 0.5) / (df + 0.5));
    return idf * tf * 1.9 / (tf + 0.9 * (0.6 + 0.4 * dl / avgdl));
}

static search_out search_unit(rag_store *st, const rag_analyzer *an, uint32_t coll,
                              const char *q, int unit, rag_chunk_pred allow, void *allow_user)
{
    search_out r;
    rag_bm25_params p;
    rag_txn *txn = NULL;
    memset(&r, 0, sizeof r);
    rag_bm25_params_init(&p);
    p.unit = unit;
    if (rag_store_read(st, &txn) != RAG_OK) {
        r.n = -100;
        return r;
    }
    r.n = rag_lexical_search(txn, an, coll, q, strlen(q), &p, NULL, 16, allow, allow_user,
                             r.scores, r.ids);
    rag_txn_end(txn);
    return r;
}

/* Refuses the chunks listed (0-terminated) in user. */
static int refuse(void *user, uint64_t id)
{
    for (const uint64_t *r = user; *r; r++)
        if (*r == id)
            return 0;
    return 1;
}

static rag_lexical_audit audit_of(rag_store *st, uint32_t coll)
{
    rag_lexical_audit a;
    rag_txn *txn = NULL;
    memset(&a, 0xFF, sizeof a);
    if (rag_store_read(st, &txn) == RAG_OK) {
        if (rag_lexical_audit_coll(txn, coll, &a) != RAG_OK)
            memset(&a, 0xFF, sizeof a);
        rag_txn_end(txn);
    }
    return a;
}

static int audit_faults(const rag_lexical_audit *a)
{
    return a->bad_df + a->bad_chunks + a->malformed + a->stray_postings + a->bad_doc_postings !=
               0 || a->rebuilding;
}

/* The size of every posting value of collection coll when they are all alike, else 0. */
typedef struct post_sizes {
    unsigned char prefix[4];
    size_t size;
    int mixed;
} post_sizes;

static int post_size_visit(void *user, const void *key, size_t klen, const void *val, size_t vlen)
{
    post_sizes *p = user;
    (void)val;
    if (klen < 4 || memcmp(key, p->prefix, 4) != 0)
        return 1;
    p->mixed |= p->size && p->size != vlen;
    p->size = vlen;
    return 0;
}

static size_t posting_size(rag_store *st, uint32_t coll)
{
    post_sizes p = {{(unsigned char)(coll >> 24), (unsigned char)(coll >> 16),
                     (unsigned char)(coll >> 8), (unsigned char)coll}, 0, 0};
    rag_txn *txn = NULL;
    if (rag_store_read(st, &txn) != RAG_OK)
        return 0;
    rag_store_kv_scan(txn, "lex_postings", p.prefix, 4, post_size_visit, &p);
    rag_txn_end(txn);
    return p.mixed ? 0 : p.size;
}

static void test_document_scores(void)
{
    rag_store *st = open_store("lexical_documents");
    rag_analyzer *an = NULL;
    ASSERT_TRUE(st != NULL);
    ASSERT_OK(rag_analyzer_create("none", 0, &an));
    if (!st || !an)
        goto done;
    ASSERT_OK(add_abc(st, an, 9));
    rag_lexical_audit a = audit_of(st, 9);
    ASSERT_TRUE(!audit_faults(&a));
    ASSERT_EQ_INT(a.chunks, 5);
    ASSERT_EQ_INT(a.sum_len, 14);
    ASSERT_EQ_INT(a.docs, 3);
    ASSERT_EQ_INT(a.stat_docs, 3);
    ASSERT_EQ_INT(a.doc_len, 13);
    ASSERT_EQ_INT(a.stat_doc_len, 13);
    ASSERT_EQ_INT(a.chunk_only, 0);
    ASSERT_EQ_INT(posting_size(st, 9), 20);

    /* A (words in two chunks, 4 terms) outranks B (both words in one chunk, 5 terms) by
     * document, as each is returned once, as its best chunk by chunk-level BM25 (A: chunk
     * 11, as beta is rarer than alpha among chunks) */
    double avg = 13.0 / 3, sa = bm25(1, 4, avg, 3, 3) + bm25(1, 4, avg, 2, 3),
           sb = bm25(1, 5, avg, 3, 3) + bm25(1, 5, avg, 2, 3), sc = bm25(1, 4, avg, 3, 3);
    double c10 = bm25(1, 2, 2.8, 3, 5), c11 = bm25(1, 3, 2.8, 2, 5);
    ASSERT_TRUE(c11 > c10);
    search_out r = search_unit(st, an, 9, "alpha beta", RAG_LEXICAL_DOCUMENT, NULL, NULL);
    ASSERT_EQ_INT(r.n, 3);
    ASSERT_EQ_INT(r.ids[0], 11);
    ASSERT_EQ_INT(r.ids[1], 20);
    ASSERT_EQ_INT(r.ids[2], 31);
    ASSERT_NEAR(r.scores[0], sa, 1e-5);
    ASSERT_NEAR(r.scores[1], sb, 1e-5);
    ASSERT_NEAR(r.scores[2], sc, 1e-5);
    ASSERT_EQ_INT(search(st, an, 9, "alpha beta", 16, NULL, NULL).ids[0], 11); /* default */
    /* by chunk, B's one chunk wins */
    r = search_unit(st, an, 9, "alpha beta", RAG_LEXICAL_CHUNK, NULL, NULL);
    ASSERT_EQ_INT(r.n, 4);
    ASSERT_EQ_INT(r.ids[0], 20);
    ASSERT_NEAR(r.scores[0], bm25(1, 5, 2.8, 3, 5) + bm25(1, 5, 2.8, 2, 5), 1e-5);

    /* overlap: "gamma" is in both of A's chunks but in the document once */
    r = search_unit(st, an, 9, "gamma", RAG_LEXICAL_DOCUMENT, NULL, NULL);
    ASSERT_EQ_INT(r.n, 1);
    ASSERT_EQ_INT(r.ids[0], 10); /* the shorter chunk */
    ASSERT_NEAR(r.scores[0], bm25(1, 4, avg, 1, 3), 1e-5);

    /* the filter applies to the chunk returned: A falls back to its next chunk, with the
     * document's score, or is left out when none is allowed */
    uint64_t no11[] = {11, 0}, no_a[] = {10, 11, 0};
    r = search_unit(st, an, 9, "alpha beta", RAG_LEXICAL_DOCUMENT, refuse, no11);
    ASSERT_EQ_INT(r.n, 3);
    ASSERT_EQ_INT(r.ids[0], 10);
    ASSERT_NEAR(r.scores[0], sa, 1e-5);
    r = search_unit(st, an, 9, "alpha beta", RAG_LEXICAL_DOCUMENT, refuse, no_a);
    ASSERT_EQ_INT(r.n, 2);
    ASSERT_EQ_INT(r.ids[0], 20);
    ASSERT_EQ_INT(r.ids[1], 31);

    /* a document is removed whole: a part of it is refused and changes nothing */
    dump before = dump_tables(st);
    ASSERT_EQ_INT(doc_apply(st, an, 9, doc_a, 1, 1), RAG_ECORRUPT);
    ASSERT_TRUE(strstr(rag_errmsg(), "removed together") != NULL);
    dump same = dump_tables(st);
    ASSERT_TRUE(same.len == before.len && memcmp(same.buf, before.buf, before.len) == 0);
    ASSERT_OK(doc_apply(st, an, 9, doc_a, 2, 1));
    a = audit_of(st, 9);
    ASSERT_TRUE(!audit_faults(&a));
    ASSERT_EQ_INT(a.stat_docs, 2);
    ASSERT_EQ_INT(a.stat_doc_len, 9);
    ASSERT_EQ_INT(a.stat_chunks, 3);
    ASSERT_EQ_INT(a.stat_len, 9);
    r = search_unit(st, an, 9, "alpha", RAG_LEXICAL_DOCUMENT, NULL, NULL);
    ASSERT_EQ_INT(r.n, 2);
    ASSERT_NEAR(r.scores[0], bm25(1, 4, 4.5, 2, 2), 1e-5); /* C, the shorter */
    ASSERT_NEAR(r.scores[1], bm25(1, 5, 4.5, 2, 2), 1e-5);
    ASSERT_EQ_INT(search_unit(st, an, 9, "gamma", RAG_LEXICAL_DOCUMENT, NULL, NULL).n, 0);
    /* added again (an update), every entry is as before */
    ASSERT_OK(doc_apply(st, an, 9, doc_a, 2, 0));
    dump again = dump_tables(st);
    ASSERT_TRUE(again.len == before.len && memcmp(again.buf, before.buf, before.len) == 0);
    /* a chunk already indexed is refused */
    ASSERT_EQ_INT(doc_apply(st, an, 9, doc_b, 1, 0), RAG_EEXIST);
    free(before.buf);
    free(same.buf);
    free(again.buf);
done:
    rag_analyzer_free(an);
    rag_store_close(st);
}

/* The statistics of an empty collection in the chunk-only format of older stores: the
 * chunks added after it keep that format. */
static int put_chunk_only_stats(rag_txn *txn, void *user)
{
    unsigned char k[4], v[16];
    uint32_t coll = *(const uint32_t *)user;
    memset(v, 0, sizeof v);
    k[0] = (unsigned char)(coll >> 24);
    k[1] = (unsigned char)(coll >> 16);
    k[2] = (unsigned char)(coll >> 8);
    k[3] = (unsigned char)coll;
    return rag_store_kv_put(txn, "lex_stats", k, 4, v, 16);
}

static void test_chunk_only_format(void)
{
    rag_store *st = open_store("lexical_chunk_only");
    rag_analyzer *an = NULL;
    uint32_t coll = 9;
    ASSERT_TRUE(st != NULL);
    ASSERT_OK(rag_analyzer_create("none", 0, &an));
    if (!st || !an)
        goto done;
    ASSERT_OK(rag_store_write(st, put_chunk_only_stats, &coll));
    ASSERT_OK(add_abc(st, an, 9));
    ASSERT_EQ_INT(posting_size(st, 9), 8);
    rag_txn *txn = NULL;
    uint64_t docs = 99;
    ASSERT_OK(rag_store_read(st, &txn));
    ASSERT_EQ_INT(rag_lexical_docs(txn, 9, &docs), 0);
    rag_txn_end(txn);
    ASSERT_EQ_INT(docs, 0);
    rag_lexical_audit a = audit_of(st, 9);
    ASSERT_TRUE(!audit_faults(&a));
    ASSERT_EQ_INT(a.chunk_only, 1);
    ASSERT_EQ_INT(a.chunks, 5);

    /* searched by chunk whatever the unit asked */
    search_out d = search_unit(st, an, 9, "alpha beta", RAG_LEXICAL_DOCUMENT, NULL, NULL);
    search_out c = search_unit(st, an, 9, "alpha beta", RAG_LEXICAL_CHUNK, NULL, NULL);
    ASSERT_EQ_INT(d.n, 4);
    ASSERT_EQ_INT(d.ids[0], 20);
    ASSERT_TRUE(d.n == c.n && memcmp(d.ids, c.ids, sizeof d.ids) == 0 &&
                memcmp(d.scores, c.scores, sizeof d.scores) == 0);

    /* removal works; once empty, the collection takes the document format */
    ASSERT_OK(doc_apply(st, an, 9, doc_a, 2, 1));
    ASSERT_OK(doc_apply(st, an, 9, doc_b, 1, 1));
    ASSERT_OK(doc_apply(st, an, 9, doc_c, 2, 1));
    dump empty = dump_tables(st);
    ASSERT_EQ_INT(empty.entries, 0);
    free(empty.buf);
    ASSERT_OK(add_abc(st, an, 9));
    ASSERT_EQ_INT(posting_size(st, 9), 20);
    ASSERT_OK(rag_store_read(st, &txn));
    ASSERT_EQ_INT(rag_lexical_docs(txn, 9, &docs), 1);
    rag_txn_end(txn);
    ASSERT_EQ_INT(docs, 3);
    ASSERT_EQ_INT(search_unit(st, an, 9, "alpha beta", RAG_LEXICAL_DOCUMENT, NULL, NULL).ids[0],
                  11);
done:
    rag_analyzer_free(an);
    rag_store_close(st);
}

static void test_purge(void)
{
    rag_store *st = open_store("lexical_purge");
    rag_analyzer *an = NULL;
    ASSERT_TRUE(st != NULL);
    ASSERT_OK(rag_analyzer_create("english", 0, &an));
    if (!st || !an)
        goto done;
    dump empty = dump_tables(st);
    op other[] = {{OP_ADD, 8, 1, "banana split"}};
    ASSERT_OK(apply(st, an, other, 1));
    dump only8 = dump_tables(st);
    /* a collection big enough to need several purge batches */
    op *many = calloc(1500, sizeof *many);
    char (*texts)[64] = calloc(1500, 64);
    for (int i = 0; i < 1500; i++) {
        snprintf(texts[i], 64, "word%d common banana %d", i, i * 7);
        many[i] = (op){OP_ADD, 7, (uint64_t)i + 10, texts[i]};
    }
    ASSERT_OK(apply(st, an, many, 1500));
    ASSERT_EQ_INT(search(st, an, 7, "banana", 10, NULL, NULL).n, 10);
    ASSERT_OK(apply1(st, an, OP_PURGE, 7, 0, ""));
    dump after = dump_tables(st);
    ASSERT_TRUE(after.len == only8.len && memcmp(after.buf, only8.buf, only8.len) == 0);
    ASSERT_EQ_INT(search(st, an, 7, "banana", 10, NULL, NULL).n, 0);
    ASSERT_EQ_INT(search(st, an, 8, "banana", 10, NULL, NULL).n, 1);
    ASSERT_OK(apply1(st, an, OP_PURGE, 8, 0, ""));
    dump none = dump_tables(st);
    ASSERT_EQ_INT(none.entries, empty.entries);
    free(many);
    free(texts);
    free(empty.buf);
    free(only8.buf);
    free(after.buf);
    free(none.buf);
done:
    rag_analyzer_free(an);
    rag_store_close(st);
}

static void test_unicode_search(void)
{
    rag_store *st = open_store("lexical_unicode");
    rag_analyzer *an = NULL;
    ASSERT_TRUE(st != NULL);
    ASSERT_OK(rag_analyzer_create("english", 1, &an));
    if (!st || !an)
        goto done;
    op docs[] = {{OP_ADD, 1, 1, "東京大学で研究する"},
                 {OP_ADD, 1, 2, "Le café, École normale"},
                 {OP_ADD, 1, 3, "Kyoto daigaku"}};
    ASSERT_OK(apply(st, an, docs, 3));
    search_out r = search(st, an, 1, "大学", 10, NULL, NULL);
    ASSERT_EQ_INT(r.n, 1);
    ASSERT_EQ_INT(r.ids[0], 1);
    r = search(st, an, 1, "CAFE ecole", 10, NULL, NULL);
    ASSERT_EQ_INT(r.n, 1);
    ASSERT_EQ_INT(r.ids[0], 2);
    r = search(st, an, 1, "KYŌTO", 10, NULL, NULL);
    ASSERT_EQ_INT(r.n, 1);
    ASSERT_EQ_INT(r.ids[0], 3);
done:
    rag_analyzer_free(an);
    rag_store_close(st);
}

/* ---- encrypted stores: keyed term hashes, both key formats ------------------------------ */

#define ENC_KEY "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f"
#define NEW_KEY "1f1e1d1c1b1a191817161514131211100f0e0d0c0b0a09080706050403020100"

/* Keys of a lexical table, collected by a scan (a scan must not write). */
typedef struct key_set {
    unsigned char k[64][64];
    size_t len[64];
    size_t n;
} key_set;

static int collect_key(void *user, const void *key, size_t klen, const void *val, size_t vlen)
{
    key_set *ks = user;
    (void)val;
    (void)vlen;
    if (ks->n < 64 && klen <= 64) {
        memcpy(ks->k[ks->n], key, klen);
        ks->len[ks->n++] = klen;
    }
    return 0;
}

static key_set table_keys(rag_txn *txn, const char *table)
{
    key_set ks;
    memset(&ks, 0, sizeof ks);
    rag_store_kv_scan(txn, table, NULL, 0, collect_key, &ks);
    return ks;
}

/* 1 when every key of `table` that holds a term (longer than `fixed` bytes) is `fixed` plus
 * `term_len` bytes long. */
static int term_keys_are(rag_store *st, const char *table, size_t fixed, size_t term_len)
{
    rag_txn *txn = NULL;
    if (rag_store_read(st, &txn) != RAG_OK)
        return 0;
    key_set ks = table_keys(txn, table);
    rag_txn_end(txn);
    int ok = ks.n > 0;
    for (size_t i = 0; i < ks.n; i++)
        if (ks.len[i] > 5 && ks.len[i] != fixed + term_len)
            ok = 0;
    return ok;
}

/* 1 when every term of `table`'s keys is written in hex digits. */
static int term_keys_hex(rag_store *st, const char *table)
{
    rag_txn *txn = NULL;
    if (rag_store_read(st, &txn) != RAG_OK)
        return 0;
    key_set ks = table_keys(txn, table);
    rag_txn_end(txn);
    for (size_t i = 0; i < ks.n; i++)
        for (size_t j = 4; ks.len[i] > 5 && j < 4 + 32; j++)
            if (!strchr("0123456789abcdef", ks.k[i][j]) || !ks.k[i][j])
                return 0;
    return ks.n > 0;
}

/* Gives a new encrypted store the header of a store created before raw term hashes:
 * format version 1, without the byte naming the cipher (XChaCha20-Poly1305). */
static int write_v1_header(rag_txn *txn, void *user)
{
    (void)user;
    unsigned char *h = NULL;
    size_t len = 0;
    int rc = rag_crypt_header(rag_txn_crypt(txn), &h, &len);
    if (rc == RAG_OK) {
        h[8] = 1;
        rc = rag_store_raw_put(txn, "meta", "crypt", 5, h, len - 1);
    }
    free(h);
    return rc;
}

static rag_store *reopen_encrypted_with(rag_store *st, const char *name, const char *key)
{
    const char *tmp = getenv("RAGCORE_TEST_TMP");
    char dir[1024];
    snprintf(dir, sizeof dir, "%s/%s", tmp ? tmp : "/tmp", name);
    rag_store_close(st);
    st = NULL;
    if (rag_store_open(dir, 0, &st) != RAG_OK || rag_store_unlock(st, key) != RAG_OK) {
        fprintf(stderr, "reopen: %s\n", rag_errmsg());
        rag_store_close(st);
        return NULL;
    }
    return st;
}

static rag_store *reopen_encrypted(rag_store *st, const char *name)
{
    return reopen_encrypted_with(st, name, ENC_KEY);
}

/* The index's audit finds no fault and `terms` distinct terms in collection 7. */
static int audit_clean(rag_store *st, uint64_t terms)
{
    rag_txn *txn = NULL;
    rag_lexical_audit a;
    if (rag_store_read(st, &txn) != RAG_OK)
        return 0;
    int rc = rag_lexical_audit_coll(txn, 7, &a);
    rag_txn_end(txn);
    return rc == RAG_OK && a.terms == terms &&
           a.bad_df + a.bad_chunks + a.malformed + a.stray_postings == 0;
}

static void test_encrypted_terms(void)
{
    /* the same chunks in a new encrypted store (raw term hashes) and in one with the
     * header of the stores created before (hex term hashes, XChaCha20-Poly1305) */
    rag_store *st = open_store("lexical_encrypted"), *old = open_store("lexical_encrypted_v1");
    rag_analyzer *an = NULL;
    ASSERT_TRUE(st != NULL && old != NULL);
    ASSERT_OK(rag_analyzer_create("none", 0, &an));
    if (!st || !old || !an)
        goto done;
    ASSERT_OK(rag_store_unlock(st, ENC_KEY));
    setenv("RAGCORE_STORE_CIPHER", "xchacha20-poly1305", 1);
    ASSERT_OK(rag_store_unlock(old, ENC_KEY));
    unsetenv("RAGCORE_STORE_CIPHER");
    ASSERT_OK(rag_store_write(old, write_v1_header, NULL));
    old = reopen_encrypted(old, "lexical_encrypted_v1");
    ASSERT_TRUE(old != NULL);
    if (!old)
        goto done;
    ASSERT_OK(apply(st, an, tiny, 3));
    ASSERT_OK(apply(old, an, tiny, 3));
    /* documents of several chunks score as in a plain store */
    rag_store *plain = open_store("lexical_encrypted_plain");
    ASSERT_TRUE(plain != NULL);
    if (!plain)
        goto done;
    ASSERT_OK(add_abc(st, an, 9));
    ASSERT_OK(add_abc(old, an, 9));
    ASSERT_OK(add_abc(plain, an, 9));
    for (int unit = 0; unit < 2; unit++) {
        search_out p = search_unit(plain, an, 9, "alpha beta gamma", unit, NULL, NULL);
        search_out e = search_unit(st, an, 9, "alpha beta gamma", unit, NULL, NULL);
        search_out h = search_unit(old, an, 9, "alpha beta gamma", unit, NULL, NULL);
        ASSERT_EQ_INT(p.n, (unit == RAG_LEXICAL_DOCUMENT ? 3 : 4));
        ASSERT_TRUE(e.n == p.n && memcmp(e.ids, p.ids, sizeof p.ids) == 0 &&
                    memcmp(e.scores, p.scores, sizeof p.scores) == 0);
        ASSERT_TRUE(h.n == p.n && memcmp(h.ids, p.ids, sizeof p.ids) == 0 &&
                    memcmp(h.scores, p.scores, sizeof p.scores) == 0);
    }
    rag_store_close(plain);
    rag_lexical_audit ea = audit_of(st, 9), ha = audit_of(old, 9);
    ASSERT_TRUE(!audit_faults(&ea) && ea.docs == 3 && ea.stat_doc_len == 13);
    ASSERT_TRUE(!audit_faults(&ha) && ha.docs == 3 && ha.stat_doc_len == 13);
    ASSERT_OK(doc_apply(st, an, 9, doc_a, 2, 1));
    ASSERT_OK(doc_apply(old, an, 9, doc_a, 2, 1));
    ea = audit_of(st, 9);
    ASSERT_TRUE(!audit_faults(&ea) && ea.stat_docs == 2 && ea.stat_doc_len == 9);

    /* keys: 16 raw bytes of keyed hash in the new store, 32 hex digits in the old one, no
     * term text in either */
    ASSERT_TRUE(term_keys_are(st, "lex_postings", 4 + 9, 16));
    ASSERT_TRUE(term_keys_are(st, "lex_stats", 4, 16));
    ASSERT_TRUE(!term_keys_hex(st, "lex_postings"));
    ASSERT_TRUE(term_keys_are(old, "lex_postings", 4 + 9, 32));
    ASSERT_TRUE(term_keys_are(old, "lex_stats", 4, 32));
    ASSERT_TRUE(term_keys_hex(old, "lex_postings") && term_keys_hex(old, "lex_stats"));
    dump d = dump_tables(st), e = dump_tables(old);
    ASSERT_TRUE(d.entries > 0 && !memmem(d.buf, d.len, "banana", 6));
    ASSERT_TRUE(!memmem(d.buf, d.len, "alpha", 5) && !memmem(e.buf, e.len, "alpha", 5));
    ASSERT_TRUE(e.entries == d.entries && !memmem(e.buf, e.len, "banana", 6));
    free(d.buf);
    free(e.buf);

    /* both search like a plain store (test_bm25_exact's scores), bit for bit alike */
    search_out r = search(st, an, 7, "banana cherry", 10, NULL, NULL);
    search_out o = search(old, an, 7, "banana cherry", 10, NULL, NULL);
    ASSERT_EQ_INT(r.n, 3);
    ASSERT_EQ_INT(r.ids[0], 2);
    ASSERT_NEAR(r.scores[0], 1.0033785343, 1e-5);
    ASSERT_EQ_INT(o.n, r.n);
    ASSERT_TRUE(memcmp(o.ids, r.ids, sizeof r.ids) == 0);
    ASSERT_TRUE(memcmp(o.scores, r.scores, sizeof r.scores) == 0);
    ASSERT_TRUE(audit_clean(st, 6));
    ASSERT_TRUE(audit_clean(old, 6));

    /* the old store, reopened, keeps writing its own format */
    old = reopen_encrypted(old, "lexical_encrypted_v1");
    ASSERT_TRUE(old != NULL);
    if (!old)
        goto done;
    ASSERT_OK(apply1(old, an, OP_ADD, 7, 4, "apple grape"));
    ASSERT_TRUE(term_keys_are(old, "lex_postings", 4 + 9, 32));
    ASSERT_TRUE(term_keys_hex(old, "lex_stats"));
    r = search(old, an, 7, "grape", 10, NULL, NULL);
    ASSERT_EQ_INT(r.n, 1);
    ASSERT_EQ_INT(r.ids[0], 4);
    rag_txn *txn = NULL;
    uint32_t df = 0;
    ASSERT_OK(rag_store_read(old, &txn));
    ASSERT_OK(rag_lexical_df(txn, 7, "apple", 5, &df));
    rag_txn_end(txn);
    ASSERT_EQ_INT(df, 2);
    ASSERT_TRUE(audit_clean(old, 7));
    ASSERT_OK(apply1(old, an, OP_REMOVE, 7, 4, "apple grape"));
    ASSERT_EQ_INT(search(old, an, 7, "grape", 10, NULL, NULL).n, 0);

    /* a key rotation keeps the old store's format: it reopens with the new key only and
     * still searches its hex keys alike */
    long resealed = 0;
    ASSERT_OK(rag_store_rekey_begin(old, NEW_KEY));
    ASSERT_OK(rag_store_rekey_records(old, 0, &resealed));
    ASSERT_OK(rag_store_rekey_finish(old));
    old = reopen_encrypted_with(old, "lexical_encrypted_v1", NEW_KEY);
    ASSERT_TRUE(old != NULL);
    if (!old)
        goto done;
    ASSERT_TRUE(term_keys_hex(old, "lex_postings") && term_keys_hex(old, "lex_stats"));
    o = search(old, an, 7, "banana cherry", 10, NULL, NULL);
    r = search(st, an, 7, "banana cherry", 10, NULL, NULL);
    ASSERT_EQ_INT(o.n, 3);
    ASSERT_TRUE(memcmp(o.ids, r.ids, sizeof r.ids) == 0);
    ASSERT_TRUE(memcmp(o.scores, r.scores, sizeof r.scores) == 0);
done:
    rag_analyzer_free(an);
    rag_store_close(st);
    rag_store_close(old);
}

/* ---- selection of the best, scratch reuse, damaged frequency records -------------------- */

#define MANY 240 /* chunks of the "many" collection (one per document) */

/* Chunk i (1..MANY) holds "common" (i % 7 + 1) times and "rare" when i % 40 == 0, padded
 * to a length that varies with i % 11, so scores differ and some tie. */
static int add_many(rag_txn *txn, void *user)
{
    const rag_analyzer *an = user;
    char text[512];
    for (uint64_t i = 1; i <= MANY; i++) {
        size_t len = 0;
        for (uint64_t r = 0; r < i % 7 + 1; r++)
            len += (size_t)snprintf(text + len, sizeof text - len, "common ");
        for (uint64_t r = 0; r < i % 11; r++)
            len += (size_t)snprintf(text + len, sizeof text - len, "pad%u ", (unsigned)r);
        if (i % 40 == 0)
            len += (size_t)snprintf(text + len, sizeof text - len, "rare");
        int rc = rag_lexical_add(txn, an, 5, i, text, len);
        if (rc != RAG_OK)
            return rc;
    }
    return RAG_OK;
}

typedef struct ranked {
    int n;
    float scores[MANY];
    uint64_t ids[MANY];
} ranked;

static ranked search_all(rag_store *st, const rag_analyzer *an, const char *q, int unit, int k,
                         rag_chunk_pred allow, void *allow_user)
{
    ranked r;
    rag_bm25_params p;
    rag_txn *txn = NULL;
    memset(&r, 0, sizeof r);
    rag_bm25_params_init(&p);
    p.unit = unit;
    if (rag_store_read(st, &txn) != RAG_OK) {
        r.n = -100;
        return r;
    }
    r.n = rag_lexical_search(txn, an, 5, q, strlen(q), &p, NULL, k, allow, allow_user,
                             r.scores, r.ids);
    rag_txn_end(txn);
    return r;
}

/* Refuses the first `skip` chunks of the full ranking `full`, counting its calls. */
typedef struct refuse_top {
    const ranked *full;
    int skip, calls;
} refuse_top;

static int refuse_top_fn(void *user, uint64_t id)
{
    refuse_top *f = user;
    f->calls++;
    for (int i = 0; i < f->skip; i++)
        if (f->full->ids[i] == id)
            return 0;
    return 1;
}

/* The k best of many candidates (k small beside them, so selected without sorting them
 * all) are the head of the full ranking, bit for bit, by chunk and by document; when
 * `allow` refuses the first ones, the walk goes on past the k selected, in order, calling
 * it once per candidate. */
static void test_top_k_selection(void)
{
    rag_store *st = open_store("lexical_top_k");
    rag_analyzer *an = NULL;
    ASSERT_TRUE(st != NULL);
    ASSERT_OK(rag_analyzer_create("none", 0, &an));
    if (!st || !an)
        goto done;
    ASSERT_OK(rag_store_write(st, add_many, an));
    for (int unit = RAG_LEXICAL_DOCUMENT; unit <= RAG_LEXICAL_CHUNK; unit++) {
        ASSERT_TRUE(unit == RAG_LEXICAL_DOCUMENT || unit == RAG_LEXICAL_CHUNK);
        ranked full = search_all(st, an, "common rare", unit, MANY, NULL, NULL);
        ASSERT_EQ_INT(full.n, MANY);
        for (int i = 1; i < full.n; i++) /* best first, ties by lower id */
            ASSERT_TRUE(full.scores[i - 1] > full.scores[i] ||
                        (full.scores[i - 1] == full.scores[i] &&
                         full.ids[i - 1] < full.ids[i]));
        ASSERT_EQ_INT(full.ids[0] % 40, 0); /* "rare" ranks its chunks first */
        ranked top = search_all(st, an, "common rare", unit, 10, NULL, NULL);
        ASSERT_EQ_INT(top.n, 10);
        ASSERT_TRUE(memcmp(top.ids, full.ids, 10 * sizeof *top.ids) == 0);
        ASSERT_TRUE(memcmp(top.scores, full.scores, 10 * sizeof *top.scores) == 0);
        refuse_top f = {&full, 15, 0};
        top = search_all(st, an, "common rare", unit, 10, refuse_top_fn, &f);
        ASSERT_EQ_INT(top.n, 10);
        ASSERT_EQ_INT(f.calls, 25);
        ASSERT_TRUE(memcmp(top.ids, full.ids + 15, 10 * sizeof *top.ids) == 0);
        ASSERT_TRUE(memcmp(top.scores, full.scores + 15, 10 * sizeof *top.scores) == 0);
        /* refusing all but the last: found after every candidate was offered */
        f = (refuse_top){&full, MANY - 1, 0};
        top = search_all(st, an, "common rare", unit, 10, refuse_top_fn, &f);
        ASSERT_EQ_INT(top.n, 1);
        ASSERT_EQ_INT(f.calls, MANY);
        ASSERT_EQ_INT(top.ids[0], full.ids[MANY - 1]);
    }
done:
    rag_analyzer_free(an);
    rag_store_close(st);
}

/* A search from inside `allow` (the thread's scratch is then busy) gets its own results and
 * leaves the outer search's intact. */
typedef struct nested {
    rag_txn *txn;
    const rag_analyzer *an;
    int inner_n;
    uint64_t inner_first;
} nested;

static int nested_allow(void *user, uint64_t id)
{
    nested *x = user;
    float sc[4];
    uint64_t ids[4];
    (void)id;
    x->inner_n = rag_lexical_search(x->txn, x->an, 5, "rare", 4, NULL, NULL, 4, NULL, NULL, sc,
                                    ids);
    x->inner_first = ids[0];
    return 1;
}

static void test_nested_search(void)
{
    rag_store *st = open_store("lexical_nested");
    rag_analyzer *an = NULL;
    ASSERT_TRUE(st != NULL);
    ASSERT_OK(rag_analyzer_create("none", 0, &an));
    if (!st || !an)
        goto done;
    ASSERT_OK(rag_store_write(st, add_many, an));
    ranked plain = search_all(st, an, "common", RAG_LEXICAL_DOCUMENT, 20, NULL, NULL);
    ranked rare = search_all(st, an, "rare", RAG_LEXICAL_DOCUMENT, 4, NULL, NULL);
    ASSERT_EQ_INT(plain.n, 20);
    ASSERT_EQ_INT(rare.n, MANY / 40 < 4 ? MANY / 40 : 4);
    nested x = {NULL, an, 0, 0};
    ASSERT_OK(rag_store_read(st, &x.txn));
    ranked r;
    memset(&r, 0, sizeof r);
    r.n = rag_lexical_search(x.txn, an, 5, "common", 6, NULL, NULL, 20, nested_allow, &x,
                             r.scores, r.ids);
    rag_txn_end(x.txn);
    ASSERT_EQ_INT(r.n, 20);
    ASSERT_EQ_INT(x.inner_n, rare.n);
    ASSERT_EQ_INT(x.inner_first, rare.ids[0]);
    ASSERT_TRUE(memcmp(r.ids, plain.ids, 20 * sizeof *r.ids) == 0);
    ASSERT_TRUE(memcmp(r.scores, plain.scores, 20 * sizeof *r.scores) == 0);
done:
    rag_analyzer_free(an);
    rag_store_close(st);
}

/* Searches on several threads at once (each with its own scratch) give what one thread
 * alone gives. */
typedef struct search_thread {
    rag_store *st;
    const rag_analyzer *an;
    const ranked *want;
    const char *q;
    int bad;
} search_thread;

static void *search_many(void *user)
{
    search_thread *t = user;
    for (int i = 0; i < 50; i++) {
        ranked r = search_all(t->st, t->an, t->q, RAG_LEXICAL_DOCUMENT, 30, NULL, NULL);
        if (r.n != t->want->n || memcmp(r.ids, t->want->ids, sizeof r.ids) != 0 ||
            memcmp(r.scores, t->want->scores, sizeof r.scores) != 0)
            t->bad++;
    }
    return NULL;
}

static void test_search_threads(void)
{
    static const char *const queries[] = {"common", "rare pad3", "pad1 common", "rare"};
    rag_store *st = open_store("lexical_threads");
    rag_analyzer *an = NULL;
    ranked want[4];
    search_thread ts[4];
    pthread_t tid[4];
    ASSERT_TRUE(st != NULL);
    ASSERT_OK(rag_analyzer_create("none", 0, &an));
    if (!st || !an)
        goto done;
    ASSERT_OK(rag_store_write(st, add_many, an));
    for (int i = 0; i < 4; i++) {
        want[i] = search_all(st, an, queries[i], RAG_LEXICAL_DOCUMENT, 30, NULL, NULL);
        ASSERT_TRUE(want[i].n > 0);
        ts[i] = (search_thread){st, an, &want[i], queries[i], 0};
    }
    for (int i = 0; i < 4; i++)
        ASSERT_EQ_INT(pthread_create(&tid[i], NULL, search_many, &ts[i]), 0);
    for (int i = 0; i < 4; i++) {
        pthread_join(tid[i], NULL);
        ASSERT_EQ_INT(ts[i].bad, 0);
    }
done:
    rag_analyzer_free(an);
    rag_store_close(st);
}

/* A term's frequency record understating its postings (a damaged index: 1 where 240
 * chunks hold "common") fails the search with RAG_ECORRUPT, where the accumulator sized
 * from it would otherwise fill up. */
static int understate_df(rag_txn *txn, void *user)
{
    unsigned char k[4 + 6], v[4] = {0, 0, 0, 1};
    (void)user;
    k[0] = k[1] = k[2] = 0;
    k[3] = 5;
    memcpy(k + 4, "common", 6);
    return rag_store_kv_put(txn, "lex_stats", k, sizeof k, v, 4);
}

static void test_understated_df(void)
{
    rag_store *st = open_store("lexical_understated_df");
    rag_analyzer *an = NULL;
    ASSERT_TRUE(st != NULL);
    ASSERT_OK(rag_analyzer_create("none", 0, &an));
    if (!st || !an)
        goto done;
    ASSERT_OK(rag_store_write(st, add_many, an));
    ASSERT_EQ_INT(search_all(st, an, "common", RAG_LEXICAL_CHUNK, 10, NULL, NULL).n, 10);
    ASSERT_OK(rag_store_write(st, understate_df, NULL));
    for (int unit = RAG_LEXICAL_DOCUMENT; unit <= RAG_LEXICAL_CHUNK; unit++) {
        ASSERT_EQ_INT(search_all(st, an, "common", unit, 10, NULL, NULL).n, RAG_ECORRUPT);
        ASSERT_TRUE(strstr(rag_errmsg(), "frequency records") != NULL);
    }
    /* the next search on this thread starts from empty tables */
    ranked r = search_all(st, an, "rare", RAG_LEXICAL_CHUNK, 10, NULL, NULL);
    ASSERT_EQ_INT(r.n, MANY / 40);
    for (int i = 0; i < r.n; i++)
        ASSERT_EQ_INT(r.ids[i] % 40, 0);
done:
    rag_analyzer_free(an);
    rag_store_close(st);
}

int main(void)
{
    RUN_TEST(test_analyzer_english);
    RUN_TEST(test_analyzer_unicode);
    RUN_TEST(test_analyzer_errors);
    RUN_TEST(test_analyzer_threads);
    RUN_TEST(test_bm25_exact);
    RUN_TEST(test_remove_restores);
    RUN_TEST(test_document_scores);
    RUN_TEST(test_chunk_only_format);
    RUN_TEST(test_purge);
    RUN_TEST(test_unicode_search);
    RUN_TEST(test_encrypted_terms);
    RUN_TEST(test_top_k_selection);
    RUN_TEST(test_nested_search);
    RUN_TEST(test_search_threads);
    RUN_TEST(test_understated_df);
    return TEST_REPORT();
}
