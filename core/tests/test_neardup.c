/* test_neardup.c - exact/near-duplicate index: normalisation, API contract, measured P/R. */
#include "neardup.h"
#include "status.h"
#include "test.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static rag_dup_match add(rag_dedup *d, const char *id, const char *text)
{
    rag_dup_match m;
    int rc = rag_dedup_add(d, id, text, strlen(text), &m);
    if (rc != RAG_OK) {
        TEST_FAIL_("rag_dedup_add(%s): %d %s", id, rc, rag_errmsg());
        memset(&m, 0, sizeof m);
    }
    return m;
}

static void test_exact_normalisation(void)
{
    rag_dedup *d = NULL;
    ASSERT_OK(rag_dedup_create(NULL, &d));
    if (!d)
        return;
    rag_dup_match m = add(d, "a", "Hello   World,\n\tthis is  the first text.");
    ASSERT_EQ_INT(m.kind, RAG_DUP_NONE);
    ASSERT_TRUE(m.canonical_id == NULL);
    /* case, whitespace, full-width letters (NFKC) and a soft hyphen do not matter */
    m = add(d, "b", "  hello world, this is the FIRST te\xc2\xadxt.  ");
    ASSERT_EQ_INT(m.kind, RAG_DUP_EXACT);
    ASSERT_STR_EQ(m.canonical_id, "a");
    ASSERT_NEAR(m.similarity, 1.0, 1e-9);
    m = add(d, "c", "\xef\xbc\xa8\xef\xbd\x85llo World, this is the first text.");
    ASSERT_EQ_INT(m.kind, RAG_DUP_EXACT);
    /* punctuation counts for the exact hash but not for shingles: a near duplicate */
    m = add(d, "d", "Hello World this is the first text");
    ASSERT_EQ_INT(m.kind, RAG_DUP_NEAR);
    ASSERT_STR_EQ(m.canonical_id, "a");
    ASSERT_NEAR(m.similarity, 1.0, 1e-9);
    m = add(d, "e", "Something else entirely, about a different subject.");
    ASSERT_EQ_INT(m.kind, RAG_DUP_NONE);
    ASSERT_EQ_INT(rag_dedup_count(d), 2);

    uint64_t h1 = 0, h2 = 1;
    ASSERT_OK(rag_dedup_text_hash("A  b", 4, &h1));
    ASSERT_OK(rag_dedup_text_hash("a b\n", 4, &h2));
    ASSERT_TRUE(h1 == h2);

    /* check() never records */
    ASSERT_OK(rag_dedup_check(d, "a brand new text", 16, &m));
    ASSERT_EQ_INT(m.kind, RAG_DUP_NONE);
    ASSERT_EQ_INT(rag_dedup_count(d), 2);

    /* invalid UTF-8 is refused with its offset and leaves the index unchanged */
    ASSERT_EQ_INT(rag_dedup_add(d, "bad", "ok \xff here", 9, &m), RAG_EENCODING);
    ASSERT_TRUE(strstr(rag_errmsg(), "byte 3") != NULL);
    ASSERT_EQ_INT(rag_dedup_count(d), 2);
    ASSERT_EQ_INT(rag_dedup_add(d, NULL, "x", 1, &m), RAG_EINVAL);
    rag_dedup_free(d);
    rag_dedup_free(NULL);
}

static void test_config(void)
{
    rag_dedup_config c;
    rag_dedup *d = NULL;
    rag_dedup_config_init(&c);
    ASSERT_EQ_INT(c.num_perm, 128);
    c.threshold = 1.5;
    ASSERT_EQ_INT(rag_dedup_create(&c, &d), RAG_EINVAL);
    ASSERT_TRUE(strstr(rag_errmsg(), "threshold") != NULL);
    ASSERT_TRUE(d == NULL);
    rag_dedup_config_init(&c);
    c.shingle_words = 0;
    ASSERT_EQ_INT(rag_dedup_create(&c, &d), RAG_EINVAL);
    ASSERT_TRUE(strstr(rag_errmsg(), "shingle_words") != NULL);

    /* exact-only mode: a near duplicate is a new text */
    rag_dedup_config_init(&c);
    c.near = 0;
    ASSERT_OK(rag_dedup_create(&c, &d));
    if (!d)
        return;
    ASSERT_EQ_INT(add(d, "a", "one two three four five").kind, RAG_DUP_NONE);
    ASSERT_EQ_INT(add(d, "b", "one two three four five!").kind, RAG_DUP_NONE);
    ASSERT_EQ_INT(add(d, "c", "ONE two three four five").kind, RAG_DUP_EXACT);
    rag_dedup_free(d);
}

/* ---- generated corpus with known edits ---------------------------------------------------- */

#define NBASE 500
#define NVOCAB 5000

static uint64_t rng_state = 0x1234567ull;
static uint64_t rnd(void)
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return rng_state;
}

static char vocab[NVOCAB][12];
static double zipf_cdf[NVOCAB];

static void make_vocab(void)
{
    static const char *syl[] = {"ka", "lo", "mi", "ne", "ru", "sa", "to", "vi", "an", "el",
                                "or", "tra", "ple", "con", "ber", "dis", "fo", "gu", "in", "ly"};
    double total = 0;
    for (int w = 0; w < NVOCAB; w++) {
        int n = 1 + (int)(rnd() % 4);
        vocab[w][0] = '\0';
        for (int k = 0; k < n; k++)
            strcat(vocab[w], syl[rnd() % 20]);
        total += 1.0 / (w + 1);
        zipf_cdf[w] = total;
    }
    for (int w = 0; w < NVOCAB; w++)
        zipf_cdf[w] /= total;
}

static int random_word(void)
{
    double u = (double)(rnd() % 1000000) / 1e6;
    int lo = 0, hi = NVOCAB - 1;
    while (lo < hi) {
        int mid = (lo + hi) / 2;
        if (zipf_cdf[mid] < u)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

typedef struct wdoc {
    int *w;
    int n;
} wdoc;

static wdoc random_doc(void)
{
    wdoc d;
    d.n = 150 + (int)(rnd() % 250);
    d.w = malloc((size_t)d.n * 2 * sizeof(int));
    for (int i = 0; i < d.n; i++)
        d.w[i] = random_word();
    return d;
}

/* A copy of `base` with round(frac * n) random word edits (substitute/insert/delete). */
static wdoc edited(const wdoc *base, double frac)
{
    wdoc d;
    d.w = malloc((size_t)base->n * 2 * sizeof(int));
    memcpy(d.w, base->w, (size_t)base->n * sizeof(int));
    d.n = base->n;
    int edits = (int)(frac * base->n + 0.5);
    if (edits < 1)
        edits = 1;
    for (int e = 0; e < edits; e++) {
        int op = (int)(rnd() % 3), pos = (int)(rnd() % (uint64_t)d.n);
        if (op == 0) {
            d.w[pos] = random_word();
        } else if (op == 1) {
            memmove(d.w + pos + 1, d.w + pos, (size_t)(d.n - pos) * sizeof(int));
            d.w[pos] = random_word();
            d.n++;
        } else if (d.n > 10) {
            memmove(d.w + pos, d.w + pos + 1, (size_t)(d.n - pos - 1) * sizeof(int));
            d.n--;
        }
    }
    return d;
}

/* Renders words as sentences of 8..20 words ("Word word ... word."). */
static char *render(const wdoc *d)
{
    size_t cap = (size_t)d->n * 14 + 2, o = 0;
    char *s = malloc(cap);
    int in_sentence = 0, left = 0;
    for (int i = 0; i < d->n; i++) {
        const char *w = vocab[d->w[i]];
        if (!in_sentence) {
            left = 8 + (int)(d->w[i] % 13);
            in_sentence = 1;
            s[o++] = (char)(w[0] - 32);
            w++;
        }
        size_t wl = strlen(w);
        memcpy(s + o, w, wl);
        o += wl;
        if (--left == 0 || i == d->n - 1) {
            s[o++] = '.';
            in_sentence = 0;
        }
        s[o++] = ' ';
    }
    s[o] = '\0';
    return s;
}

#define NLEVELS 5
static const double LEVELS[NLEVELS] = {0.01, 0.02, 0.05, 0.10, 0.30};

typedef struct eval {
    int flagged_correct[NLEVELS]; /* variant flagged as a duplicate of its own base */
    int flagged_wrong[NLEVELS];   /* flagged against another document */
    int exact_ok;                 /* case/space variants reported EXACT */
    int unrelated_flagged;
    double seconds;
} eval;

static void run_eval(double threshold, char **bases, char **unrelated, char **queries_unrel,
                     char *(*variants)[NLEVELS], char **exact_variants, eval *ev)
{
    memset(ev, 0, sizeof *ev);
    rag_dedup_config c;
    rag_dedup_config_init(&c);
    c.threshold = threshold;
    rag_dedup *d = NULL;
    ASSERT_OK(rag_dedup_create(&c, &d));
    if (!d)
        return;
    clock_t t0 = clock();
    char id[32];
    for (int i = 0; i < NBASE; i++) {
        snprintf(id, sizeof id, "base%d", i);
        rag_dup_match m = add(d, id, bases[i]);
        ASSERT_EQ_INT(m.kind, RAG_DUP_NONE);
        snprintf(id, sizeof id, "other%d", i);
        add(d, id, unrelated[i]);
    }
    for (int i = 0; i < NBASE; i++) {
        char want[32];
        snprintf(want, sizeof want, "base%d", i);
        rag_dup_match m;
        for (int l = 0; l < NLEVELS; l++) {
            ASSERT_OK(rag_dedup_check(d, variants[i][l], strlen(variants[i][l]), &m));
            if (m.kind != RAG_DUP_NONE) {
                if (strcmp(m.canonical_id, want) == 0)
                    ev->flagged_correct[l]++;
                else
                    ev->flagged_wrong[l]++;
            }
        }
        ASSERT_OK(rag_dedup_check(d, exact_variants[i], strlen(exact_variants[i]), &m));
        ev->exact_ok += m.kind == RAG_DUP_EXACT && strcmp(m.canonical_id, want) == 0;
        ASSERT_OK(rag_dedup_check(d, queries_unrel[i], strlen(queries_unrel[i]), &m));
        ev->unrelated_flagged += m.kind != RAG_DUP_NONE;
    }
    ev->seconds = (double)(clock() - t0) / CLOCKS_PER_SEC;
    ASSERT_EQ_INT(rag_dedup_count(d), 2 * NBASE);
    rag_dedup_free(d);
}

static void test_generated_corpus(void)
{
    make_vocab();
    static char *bases[NBASE], *unrelated[NBASE], *queries_unrel[NBASE], *exact_variants[NBASE];
    static char *variants[NBASE][NLEVELS];
    for (int i = 0; i < NBASE; i++) {
        wdoc b = random_doc(), u = random_doc(), q = random_doc();
        bases[i] = render(&b);
        unrelated[i] = render(&u);
        queries_unrel[i] = render(&q);
        for (int l = 0; l < NLEVELS; l++) {
            wdoc v = edited(&b, LEVELS[l]);
            variants[i][l] = render(&v);
            free(v.w);
        }
        /* upper-cased first word, doubled spaces: same normalised text */
        size_t n = strlen(bases[i]);
        char *e = malloc(2 * n + 2);
        size_t o = 0;
        for (size_t k = 0; k < n; k++) {
            char ch = bases[i][k];
            e[o++] = (k < 6 && ch >= 'a' && ch <= 'z') ? (char)(ch - 32) : ch;
            if (ch == ' ' && k % 3 == 0)
                e[o++] = '\n';
        }
        e[o] = '\0';
        exact_variants[i] = e;
        free(b.w);
        free(u.w);
        free(q.w);
    }

    static const double thresholds[] = {0.3, 0.5, 0.7, 0.8};
    fprintf(stderr, "\nnear-duplicate detection, %d bases + %d unrelated indexed; per level %d "
                    "variants queried (3-word shingles, 128 permutations)\n", NBASE, NBASE, NBASE);
    fprintf(stderr, "thresh | recall  1%%    2%%    5%%   10%% | flagged 30%% | unrelated FP | "
                    "wrong-doc | prec(<=10%% true) | exact | secs\n");
    for (size_t t = 0; t < sizeof thresholds / sizeof thresholds[0]; t++) {
        eval ev;
        run_eval(thresholds[t], bases, unrelated, queries_unrel, variants, exact_variants, &ev);
        double r[NLEVELS];
        int wrong = 0, tp = 0, flagged = ev.unrelated_flagged;
        for (int l = 0; l < NLEVELS; l++) {
            r[l] = (double)ev.flagged_correct[l] / NBASE;
            wrong += ev.flagged_wrong[l];
            flagged += ev.flagged_correct[l] + ev.flagged_wrong[l];
            if (LEVELS[l] <= 0.10)
                tp += ev.flagged_correct[l];
        }
        double prec = flagged ? (double)tp / flagged : 1.0;
        fprintf(stderr, "  %.1f  |       %.3f %.3f %.3f %.3f |    %.3f    |   %3d/%d    |    %3d    |"
                        "      %.3f       | %3d/%d | %.2f\n",
                thresholds[t], r[0], r[1], r[2], r[3], r[4], ev.unrelated_flagged, NBASE, wrong,
                prec, ev.exact_ok, NBASE, ev.seconds);
        ASSERT_EQ_INT(ev.exact_ok, NBASE);
        ASSERT_EQ_INT(wrong, 0);
        ASSERT_EQ_INT(ev.unrelated_flagged, 0);
        if (thresholds[t] == 0.5) { /* the default */
            ASSERT_TRUE(r[0] >= 0.99 && r[1] >= 0.99 && r[2] >= 0.98);
            ASSERT_TRUE(r[3] >= 0.85);
            ASSERT_TRUE(r[4] <= 0.05);
            ASSERT_TRUE(prec >= 0.97);
        }
        if (thresholds[t] == 0.8) /* strict: only light edits */
            ASSERT_TRUE(r[0] >= 0.97 && r[3] <= 0.1);
    }
    fprintf(stderr, "\n");
    for (int i = 0; i < NBASE; i++) {
        free(bases[i]);
        free(unrelated[i]);
        free(queries_unrel[i]);
        free(exact_variants[i]);
        for (int l = 0; l < NLEVELS; l++)
            free(variants[i][l]);
    }
}

static void test_similarity_helper(void)
{
    double s = 0;
    const char *a = "the quick brown fox jumps over the lazy dog near the river bank";
    const char *b = "the quick brown fox jumps over the lazy cat near the river bank";
    ASSERT_OK(rag_dedup_similarity(NULL, a, strlen(a), b, strlen(b), &s));
    /* 12 shingles each, 3 differ on each side: true Jaccard 9/15 = 0.6 */
    ASSERT_NEAR(s, 0.6, 0.15);
    ASSERT_OK(rag_dedup_similarity(NULL, a, strlen(a), a, strlen(a), &s));
    ASSERT_NEAR(s, 1.0, 1e-9);
}

int main(void)
{
    RUN_TEST(test_exact_normalisation);
    RUN_TEST(test_config);
    RUN_TEST(test_similarity_helper);
    RUN_TEST(test_generated_corpus);
    return TEST_REPORT();
}
