/* test_toxicity.c - the toxicity filter through the public header: the rag_toxicity_*
 * calls on the pulled detectors, and the per-collection policy on the ingest path (flag:
 * metadata a filter can exclude; drop: not stored, counted by reason; settings by name,
 * JSON, version-1 structs). The detectors' internals are tested in
 * core/tests/test_profanity.c. */
#include "test.h"

#include "ragcore.h"

#include <sys/stat.h>

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
    ASSERT_EQ_INT(o.toxicity_detectors, RAG_TOXICITY_CLASSIFIER);
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
    RUN_TEST(test_public_api);
    RUN_TEST(test_policy);
    return TEST_REPORT();
}
