/* test_profanity.c - the toxicity detectors' internals: the word list (whole words,
 * normalisation, leetspeak, spelled-out and multi-word entries, load errors) and the linear
 * classifier, on a hand-computed model and, converted from alt-profanity-check, against the
 * Python package's probabilities on >= 2,000 texts (within 1e-5, decisions 100 % equal;
 * fixture tests/data/toxicity_reference.jsonl from tools/make_toxicity_fixture.py). */
#include "test.h"

#include "model_registry.h"
#include "profanity_list.h"
#include "profanity_model.h"
#include "ragcore.h"

#include <jansson.h>
#include <math.h>
#include <sys/stat.h>

static char tmp[4096];

static void write_file(const char *path, const char *text)
{
    FILE *f = fopen(path, "wb");
    ASSERT_TRUE(f != NULL);
    if (f) {
        fputs(text, f);
        fclose(f);
    }
}

/* ---- word list ---------------------------------------------------------------------------- */

static int find(const rag_wordlist *wl, const char *text)
{
    return rag_wordlist_find(wl, text, strlen(text), NULL, 0);
}

static void test_wordlist(void)
{
    char path[4400];
    snprintf(path, sizeof path, "%s/list.txt", tmp);
    /* invented entries: the real list is pulled, never committed */
    write_file(path, "darn\n  Skit  \n\nsmeg head\nfrack\ncunt\nvogel\n");
    rag_wordlist *wl = NULL;
    ASSERT_OK(rag_wordlist_load(path, &wl));
    if (!wl)
        return;
    ASSERT_EQ_INT(rag_wordlist_size(wl), 6);
    ASSERT_EQ_INT(find(wl, "Darn it."), 1);
    ASSERT_EQ_INT(find(wl, "DARN"), 1);
    ASSERT_EQ_INT(find(wl, "\xef\xbc\xa4\xef\xbc\xa1\xef\xbc\xb2\xef\xbc\xae"), 1); /* ＤＡＲＮ */
    ASSERT_EQ_INT(find(wl, "d\xc3\xa1rn"), 1);                  /* dárn: mark stripped */
    ASSERT_EQ_INT(find(wl, "d4rn"), 1);                         /* leetspeak */
    ASSERT_EQ_INT(find(wl, "d@rn d*rn"), 1);
    ASSERT_EQ_INT(find(wl, "sk1t"), 1);                         /* 1 for i */
    ASSERT_EQ_INT(find(wl, "skl7"), 1);                         /* l for i, 7 for t */
    ASSERT_EQ_INT(find(wl, "fr@ck"), 1);
    ASSERT_EQ_INT(find(wl, "d.a.r.n"), 1);                      /* spelled out */
    ASSERT_EQ_INT(find(wl, "oh d a r n"), 1);
    ASSERT_EQ_INT(find(wl, "smeg-head"), 1);                    /* two-word entry */
    ASSERT_EQ_INT(find(wl, "SMEG   head!"), 1);
    ASSERT_EQ_INT(find(wl, "v0gel"), 1);                        /* 0 for o */
    ASSERT_EQ_INT(find(wl, "vuge1"), 0);                        /* u never stands for o */
    /* whole words only: no substring hits */
    ASSERT_EQ_INT(find(wl, "Scunthorpe United"), 0);
    ASSERT_EQ_INT(find(wl, "undarnable darned darns"), 0);
    ASSERT_EQ_INT(find(wl, "smeg alone, head alone"), 0);
    ASSERT_EQ_INT(find(wl, "skits and frackers"), 0);
    ASSERT_EQ_INT(find(wl, "it's kit"), 0);                     /* "s kit" is not spelled out */
    ASSERT_EQ_INT(find(wl, ""), 0);
    ASSERT_EQ_INT(find(wl, "********** ____ @@@@ $$$$"), 0);
    char match[64];
    ASSERT_EQ_INT(rag_wordlist_find(wl, "well, SMEG-Head!", 16, match, sizeof match), 1);
    ASSERT_STR_EQ(match, "smeg head");
    ASSERT_EQ_INT(rag_wordlist_find(wl, "ab\xff", 3, NULL, 0), RAG_EENCODING);
    rag_wordlist_free(wl);

    /* load errors name the file and the line */
    wl = NULL;
    write_file(path, "\n  \n");
    ASSERT_EQ_INT(rag_wordlist_load(path, &wl), RAG_EPARSE);
    ASSERT_TRUE(strstr(rag_errmsg(), "no entry") != NULL);
    write_file(path, "ok\nbad\xff\n");
    ASSERT_EQ_INT(rag_wordlist_load(path, &wl), RAG_EENCODING);
    ASSERT_TRUE(strstr(rag_errmsg(), "line 2") != NULL);
    ASSERT_EQ_INT(rag_wordlist_load("/nonexistent/list.txt", &wl), RAG_EIO);
    ASSERT_TRUE(wl == NULL);
}

/* ---- linear classifier -------------------------------------------------------------------- */

static const char *MODEL_HEAD = "ragcore-tfidf-linear\t1\nlowercase\t1\n"
                                "token_pattern\t(?u)\\b\\w\\w+\\b\nngram\t1\t1\nnorm\tl2\n"
                                "sublinear_tf\t0\nclassifiers\t2\n"
                                "classifier\t0.5\t-1\t0\nclassifier\t-0.25\t-2\t0.5\n";

static void test_linear_by_hand(void)
{
    char path[4400], text[2048];
    snprintf(path, sizeof path, "%s/model.txt", tmp);
    snprintf(text, sizeof text, "%sterms\t3\ngood\t1\t-1\t-0.5\nbad\t2\t3\t1\n"
             "\xc3\xa9t\xc3\xa9\t0x1p+0\t0\t1\n", MODEL_HEAD);
    write_file(path, text);
    rag_linear_model *m = NULL;
    ASSERT_OK(rag_linear_model_load(path, &m));
    if (!m)
        return;
    ASSERT_EQ_INT(rag_linear_model_terms(m), 3);
    ASSERT_EQ_INT(rag_linear_model_classifiers(m), 2);
    /* "BAD bad, Good! a": x_bad = 2 * 2, x_good = 1 (the one-letter word is no token) */
    double p = 0, n = sqrt(17.0);
    double f1 = (4 * 3 + 1 * -1) / n + 0.5, f2 = (4 * 1 + 1 * -0.5) / n - 0.25;
    double want = (1 / (1 + exp(-1 * f1 + 0)) + 1 / (1 + exp(-2 * f2 + 0.5))) / 2;
    ASSERT_OK(rag_linear_model_score(m, "BAD bad, Good! a", 16, &p));
    ASSERT_NEAR(p, want, 1e-12);
    /* no known word: the intercepts alone */
    want = (1 / (1 + exp(-0.5)) + 1 / (1 + exp(-2 * -0.25 + 0.5))) / 2;
    ASSERT_OK(rag_linear_model_score(m, "nothing known", 13, &p));
    ASSERT_NEAR(p, want, 1e-12);
    /* Python's lower(): ÉTÉ is été; İ becomes i + a combining dot, which ends a word */
    double q = 0;
    ASSERT_OK(rag_linear_model_score(m, "\xc3\x89T\xc3\x89", 6, &p));
    ASSERT_OK(rag_linear_model_score(m, "\xc3\xa9t\xc3\xa9", 6, &q));
    ASSERT_NEAR(p, q, 0);
    ASSERT_TRUE(fabs(p - want) > 1e-3);
    ASSERT_OK(rag_linear_model_score(m, "\xc4\xb0" "bad", 5, &p)); /* İbad: tokens i, bad */
    ASSERT_OK(rag_linear_model_score(m, "bad", 3, &q));
    ASSERT_NEAR(p, q, 0);
    rag_linear_model_free(m);

    /* settings that are not implemented are refused, malformed lines named */
    m = NULL;
    snprintf(text, sizeof text, "ragcore-tfidf-linear\t1\nlowercase\t1\n"
             "token_pattern\t(?u)\\b\\w\\w+\\b\nngram\t1\t2\n");
    write_file(path, text);
    ASSERT_EQ_INT(rag_linear_model_load(path, &m), RAG_EUNSUPPORTED);
    ASSERT_TRUE(strstr(rag_errmsg(), "ngram") != NULL);
    snprintf(text, sizeof text, "%sterms\t2\ngood\t1\t-1\t-0.5\nbad\t2\tx\t1\n", MODEL_HEAD);
    write_file(path, text);
    ASSERT_EQ_INT(rag_linear_model_load(path, &m), RAG_EPARSE);
    ASSERT_TRUE(strstr(rag_errmsg(), "line 12") != NULL);
    snprintf(text, sizeof text, "%sterms\t2\ngood\t1\t-1\t-0.5\ngood\t2\t1\t1\n", MODEL_HEAD);
    write_file(path, text);
    ASSERT_EQ_INT(rag_linear_model_load(path, &m), RAG_EPARSE);
    ASSERT_TRUE(m == NULL);
}

/* The converted alt-profanity-check model (pulled) against the package's own outputs. */
static void test_classifier_reference(void)
{
    ASSERT_OK(rag_model_pull("profanity-check", 0, NULL));
    char *path = NULL;
    ASSERT_OK(rag_model_cache_file(rag_model_find("profanity-check"), "profanity_linear.txt",
                                   &path));
    rag_linear_model *m = NULL;
    ASSERT_OK(rag_linear_model_load(path, &m));
    free(path);
    if (!m)
        return;
    ASSERT_EQ_INT(rag_linear_model_terms(m), 15442);
    char fix[4400];
    snprintf(fix, sizeof fix, "%s/toxicity_reference.jsonl", getenv("RAGCORE_TEST_DATA"));
    FILE *f = fopen(fix, "rb");
    ASSERT_TRUE(f != NULL);
    char *line = NULL;
    size_t cap = 0;
    long n = 0, agree = 0, positive = 0, worst_line = 0;
    double worst = 0;
    while (f && getline(&line, &cap, f) > 0) {
        json_t *j = json_loads(line, 0, NULL);
        const char *text = json_string_value(json_object_get(j, "text"));
        size_t len = json_string_length(json_object_get(j, "text"));
        double ref = json_number_value(json_object_get(j, "p")), p = -1;
        long label = (long)json_integer_value(json_object_get(j, "label"));
        n++;
        if (text && rag_linear_model_score(m, text, len, &p) == RAG_OK) {
            if (fabs(p - ref) > worst) {
                worst = fabs(p - ref);
                worst_line = n;
            }
            agree += (p > 0.5) == (label == 1);
            positive += label == 1;
        }
        json_decref(j);
    }
    free(line);
    if (f)
        fclose(f);
    fprintf(stderr, "classifier: %ld texts (%ld positive), max |p - ref| %.3g (line %ld), "
            "%ld decisions agree\n", n, positive, worst, worst_line, agree);
    ASSERT_TRUE(n >= 2000);
    ASSERT_TRUE(positive >= 200 && positive <= n - 200);
    ASSERT_TRUE(worst <= 1e-5);
    ASSERT_EQ_INT(agree, n);
    rag_linear_model_free(m);
}

int main(void)
{
    test_fresh_dir(tmp, sizeof tmp, "profanity");
    if (mkdir(tmp, 0755) != 0)
        TEST_FAIL_("cannot create %s", tmp);
    RUN_TEST(test_wordlist);
    RUN_TEST(test_linear_by_hand);
    RUN_TEST(test_classifier_reference);
    return TEST_REPORT();
}
