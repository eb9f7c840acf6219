/* test_toxicity.c - the toxicity filter: the word-list detector (whole words, normalisation,
 * leetspeak, spelled-out words, multi-word entries, load errors), the linear classifier
 * against the Python package's probabilities on >= 2,000 texts (within 1e-5, decisions
 * 100 % equal) and on a hand-computed model, the public rag_toxicity_* calls, and the
 * per-collection policy on the ingest path (flag: metadata a filter can exclude; drop: not
 * stored, counted by reason; settings by name, JSON, version-1 structs). */
#include "test.h"

#include "model_registry.h"
#include "profanity_list.h"
#include "profanity_model.h"
#include "ragcore.h"

#include <jansson.h>
#include <math.h>

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

/* ---- the public calls --------------------------------------------------------------------- */

static void test_public_api(void)
{
    ASSERT_OK(rag_model_pull("better-profanity", 0, NULL));
    ASSERT_OK(rag_model_pull("profanity-check", 0, NULL));
    rag_toxicity *t = NULL;
    ASSERT_EQ_INT(rag_toxicity_open(8, NULL, NULL, &t), RAG_EINVAL);
    ASSERT_EQ_INT(rag_toxicity_open(RAG_TOXICITY_WORDLIST, "/nonexistent", NULL, &t), RAG_EIO);
    ASSERT_OK(rag_toxicity_open(0, NULL, NULL, &t));
    if (!t)
        return;
    rag_toxicity_result r;
    ASSERT_OK(rag_toxicity_score(t, "Scunthorpe is a town in Lincolnshire.", (size_t)-1, &r));
    ASSERT_EQ_INT(r.wordlist_hit, 0);
    ASSERT_TRUE(r.probability >= 0 && r.probability < 0.5);
    ASSERT_NEAR(r.score, r.probability, 0);
    ASSERT_EQ_INT(rag_toxicity_fired(&r, 0.5), 0);
    ASSERT_OK(rag_toxicity_score(t, "what a sh1t day, you b1tch", (size_t)-1, &r));
    ASSERT_EQ_INT(r.wordlist_hit, 1);
    ASSERT_NEAR(r.score, 1, 0);
    ASSERT_TRUE(rag_toxicity_fired(&r, 0.5) & RAG_TOXICITY_WORDLIST);
    ASSERT_TRUE(r.match[0] != '\0');
    ASSERT_EQ_INT(rag_toxicity_score(t, "bad \xff", 5, &r), RAG_EENCODING);
    ASSERT_EQ_INT(rag_toxicity_score(NULL, "x", 1, &r), RAG_EINVAL);
    rag_toxicity_close(t);
    /* the classifier alone */
    t = NULL;
    ASSERT_OK(rag_toxicity_open(RAG_TOXICITY_CLASSIFIER, NULL, NULL, &t));
    ASSERT_OK(rag_toxicity_score(t, "you stupid idiot", (size_t)-1, &r));
    ASSERT_EQ_INT(r.wordlist_hit, -1);
    ASSERT_TRUE(r.probability > 0.5);
    ASSERT_EQ_INT(rag_toxicity_fired(&r, 0.5), RAG_TOXICITY_CLASSIFIER);
    ASSERT_EQ_INT(rag_toxicity_fired(&r, 1.0), r.probability >= 1.0 ? RAG_TOXICITY_CLASSIFIER : 0);
    rag_toxicity_close(t);
    rag_toxicity_close(NULL);
    ASSERT_STR_EQ(rag_toxicity_detector_name(RAG_TOXICITY_BOTH), "wordlist+classifier");
    ASSERT_STR_EQ(rag_toxicity_detector_name(RAG_TOXICITY_WORDLIST), "wordlist");
    ASSERT_STR_EQ(rag_toxicity_detector_name(0), "none");
}

/* ---- the policy on the ingest path -------------------------------------------------------- */

typedef struct seen {
    int toxic, stored_flagged;
    char reason[256], detector[64];
} seen;

static int on_event(void *user, const rag_ingest_event *ev)
{
    seen *s = user;
    if (ev->action == RAG_INGEST_TOXIC) {
        s->toxic++;
        snprintf(s->reason, sizeof s->reason, "%s", ev->reason);
        snprintf(s->detector, sizeof s->detector, "%s", ev->toxicity_detector);
    }
    if (ev->action == RAG_INGEST_STORED && *ev->toxicity_detector)
        s->stored_flagged++;
    return 0;
}

static void test_policy(void)
{
    rag_collection_options o;
    rag_collection_options_init(&o);
    ASSERT_EQ_INT(o.toxicity, RAG_TOXICITY_OFF);
    ASSERT_EQ_INT(rag_collection_option_set(&o, "toxicity", "maybe"), RAG_EINVAL);
    ASSERT_TRUE(strstr(rag_errmsg(), "off|flag|drop") != NULL);
    ASSERT_EQ_INT(rag_collection_option_set(&o, "toxicity_threshold", "1.5"), RAG_EINVAL);
    ASSERT_EQ_INT(rag_collection_option_set(&o, "toxicity_detectors", "regex"), RAG_EINVAL);
    ASSERT_OK(rag_collection_option_set(&o, "toxicity", "flag"));
    ASSERT_OK(rag_collection_option_set(&o, "toxicity_threshold", "0.5"));
    ASSERT_OK(rag_collection_option_set(&o, "toxicity_detectors", "both"));
    char *json = NULL;
    ASSERT_OK(rag_collection_options_json(&o, &json));
    ASSERT_TRUE(json && strstr(json, "\"toxicity\":\"flag\"") &&
                strstr(json, "\"toxicity_detectors\":\"both\""));
    rag_free(json);

    char dir[4096];
    test_fresh_dir(dir, sizeof dir, "toxicity_store");
    rag_open_options oo;
    rag_open_options_init(&oo);
    oo.embedder = "hash";
    rag_db *db = NULL;
    ASSERT_OK(rag_open(dir, &oo, &db));
    if (!db)
        return;
    ASSERT_OK(rag_collection_create_with(db, "flagged", &o));
    rag_collection_options back;
    ASSERT_OK(rag_collection_options_get(db, "flagged", &back));
    ASSERT_EQ_INT(back.toxicity, RAG_TOXICITY_FLAG);
    ASSERT_NEAR(back.toxicity_threshold, 0.5, 0);
    ASSERT_EQ_INT(back.toxicity_detectors, RAG_TOXICITY_BOTH);

    rag_document d[3];
    for (int i = 0; i < 3; i++)
        rag_document_init(&d[i]);
    d[0].id = "clean";
    d[0].text = "Mitochondria produce most of the chemical energy of the cell.";
    d[1].id = "rude";
    d[1].text = "Shut up, the cell produces energy, you pathetic loser.";
    d[2].id = "leet";
    d[2].text = "The cell is sh1t at producing energy.";
    d[2].metadata_json = "{\"lang\":\"en\"}";
    rag_ingest_options io;
    rag_ingest_options_init(&io);
    io.collection = "flagged";
    seen s;
    memset(&s, 0, sizeof s);
    io.on_event = on_event;
    io.user = &s;
    rag_ingest_summary sum;
    ASSERT_OK(rag_ingest_documents(db, d, 3, &io, &sum));
    ASSERT_EQ_INT(sum.documents, 3);
    ASSERT_EQ_INT(sum.toxicity_checked, 3);
    ASSERT_EQ_INT(sum.toxicity_flagged, 2);
    ASSERT_EQ_INT(sum.toxicity_dropped, 0);
    ASSERT_EQ_INT(s.stored_flagged, 2);
    /* every checked document carries its score; a filter leaves the flagged ones out */
    rag_search_options so;
    rag_search_options_init(&so);
    so.collection = "flagged";
    so.k = 10;
    so.mode = RAG_MODE_LEXICAL;
    so.filter = "toxicity < 0.5";
    rag_results *res = NULL;
    ASSERT_OK(rag_search(db, "cell energy", &so, &res));
    ASSERT_EQ_INT(rag_results_count(res), 1);
    if (rag_results_count(res) == 1)
        ASSERT_STR_EQ(rag_results_get(res, 0)->doc_id, "clean");
    rag_results_free(res);
    so.filter = "toxicity_detector = \"wordlist\"";
    res = NULL;
    ASSERT_OK(rag_search(db, "cell energy", &so, &res));
    ASSERT_EQ_INT(rag_results_count(res), 1);
    if (rag_results_count(res) == 1) {
        const rag_hit *h = rag_results_get(res, 0);
        ASSERT_STR_EQ(h->doc_id, "leet");
        ASSERT_TRUE(strstr(h->metadata_json, "\"lang\":\"en\"") != NULL);
        ASSERT_TRUE(strstr(h->metadata_json, "\"toxicity\":1") != NULL);
    }
    rag_results_free(res);

    /* drop: not stored, counted by reason, an older stored version removed */
    ASSERT_OK(rag_collection_option_set(&o, "toxicity", "drop"));
    ASSERT_OK(rag_collection_configure(db, "flagged", &o));
    memset(&s, 0, sizeof s);
    ASSERT_OK(rag_ingest_documents(db, d, 3, &io, &sum));
    ASSERT_EQ_INT(sum.documents, 1);
    ASSERT_EQ_INT(sum.toxicity_dropped, 2);
    ASSERT_EQ_INT(sum.toxicity_dropped_wordlist, 1);
    ASSERT_EQ_INT(sum.toxicity_dropped_classifier, 1);
    ASSERT_EQ_INT(sum.stale_removed, 2);
    ASSERT_EQ_INT(s.toxic, 2);
    ASSERT_TRUE(strstr(s.reason, "toxicity") != NULL);
    rag_collection_info ci;
    ASSERT_OK(rag_collection_stats(db, "flagged", &ci));
    ASSERT_EQ_INT(ci.documents, 1);
    /* the word list alone: the classifier's verdict no longer counts */
    ASSERT_OK(rag_collection_option_set(&o, "toxicity_detectors", "wordlist"));
    ASSERT_OK(rag_collection_configure(db, "flagged", &o));
    ASSERT_OK(rag_ingest_documents(db, d, 3, &io, &sum));
    ASSERT_EQ_INT(sum.documents, 2);
    ASSERT_EQ_INT(sum.toxicity_dropped, 1);
    ASSERT_EQ_INT(sum.toxicity_dropped_classifier, 0);
    ASSERT_STR_EQ(s.detector, "wordlist");

    /* a version-1 options struct (no toxicity fields) reads as toxicity off */
    rag_collection_options v1;
    rag_collection_options_init(&v1);
    v1.version = 1;
    v1.toxicity = (rag_toxicity_mode)77; /* beyond a version-1 struct: never read */
    ASSERT_OK(rag_collection_create_with(db, "old", &v1));
    ASSERT_OK(rag_collection_options_get(db, "old", &back));
    ASSERT_EQ_INT(back.toxicity, RAG_TOXICITY_OFF);
    ASSERT_OK(rag_close(db));
}

int main(void)
{
    test_fresh_dir(tmp, sizeof tmp, "toxicity");
    if (mkdir(tmp, 0755) != 0)
        TEST_FAIL_("cannot create %s", tmp);
    RUN_TEST(test_wordlist);
    RUN_TEST(test_linear_by_hand);
    RUN_TEST(test_classifier_reference);
    RUN_TEST(test_public_api);
    RUN_TEST(test_policy);
    return TEST_REPORT();
}
