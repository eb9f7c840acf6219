/* test_ingest.c - the ingest pipeline in the library: a collection's hygiene policy (stored,
 * reopened, changed) applied on every path with no raw PII byte anywhere in the store
 * directory, persistent duplicate detection across calls and reopen, front matter and
 * JSONL fields as metadata, --metadata-style extra metadata, skipped files with reasons,
 * and the sync of paths (failed extraction keeps, relative vs absolute roots, empty roots). */
#include "test.h"

#include "ragcore.h"

#include <limits.h>
#include <sys/stat.h>
#include <unistd.h>

static char dir[4096];   /* the store */
static char src[4096];   /* files to ingest */

/* ---- helpers ----------------------------------------------------------------------------- */

static void fresh(const char *name)
{
    char n[256];
    snprintf(n, sizeof n, "%s_store", name);
    test_fresh_dir(dir, sizeof dir, n);
    snprintf(n, sizeof n, "%s_src", name);
    test_fresh_dir(src, sizeof src, n);
    mkdir(src, 0755);
}

static rag_db *open_db(const rag_collection_options *def)
{
    rag_open_options o;
    rag_open_options_init(&o);
    o.embedder = "hash";
    o.default_collection = def;
    rag_db *db = NULL;
    ASSERT_OK(rag_open(dir, &o, &db));
    return db;
}

static void write_file(const char *name, const char *data, size_t len)
{
    char p[4400];
    snprintf(p, sizeof p, "%s/%s", src, name);
    FILE *f = fopen(p, "wb");
    ASSERT_TRUE(f != NULL);
    if (f) {
        fwrite(data, 1, len, f);
        fclose(f);
    }
}

static void write_text(const char *name, const char *text)
{
    write_file(name, text, strlen(text));
}

/* Hits of a lexical search (optionally filtered) in the default collection. */
static rag_results *search(rag_db *db, const char *coll, const char *q, const char *filter)
{
    rag_search_options so;
    rag_search_options_init(&so);
    so.collection = coll;
    so.k = 20;
    so.mode = RAG_MODE_LEXICAL;
    so.filter = filter;
    rag_results *res = NULL;
    ASSERT_OK(rag_search(db, q, &so, &res));
    return res;
}

static uint64_t doc_count(rag_db *db, const char *coll)
{
    rag_collection_info ci;
    memset(&ci, 0, sizeof ci);
    if (rag_collection_stats(db, coll ? coll : RAG_DEFAULT_COLLECTION, &ci) != RAG_OK)
        return 0;
    return ci.documents;
}

/* Events seen by a callback. */
typedef struct events {
    int count[RAG_INGEST_NACTIONS];
    char last_reason[RAG_INGEST_NACTIONS][512];
    char last_id[RAG_INGEST_NACTIONS][512];
    char canonical[512];
    int skip_kind;
    int stop_after;        /* > 0: ask to stop after this many events */
    int seen;
} events;

static int on_event(void *user, const rag_ingest_event *ev)
{
    events *e = user;
    e->count[ev->action]++;
    snprintf(e->last_reason[ev->action], sizeof e->last_reason[0], "%s", ev->reason);
    snprintf(e->last_id[ev->action], sizeof e->last_id[0], "%s", ev->id);
    if (*ev->canonical_id)
        snprintf(e->canonical, sizeof e->canonical, "%s", ev->canonical_id);
    if (ev->action == RAG_INGEST_SKIPPED)
        e->skip_kind = (int)ev->skip_kind;
    e->seen++;
    return e->stop_after > 0 && e->seen >= e->stop_after;
}

/* Options that report to e (cleared). */
static void ingest_options(rag_ingest_options *o, const char *coll, events *e)
{
    memset(e, 0, sizeof *e);
    rag_ingest_options_init(o);
    o->collection = coll;
    o->on_event = on_event;
    o->user = e;
}

/* ---- policy settings ------------------------------------------------------------------- */

static void test_policy_settings(void)
{
    fresh("policy");
    rag_db *db = open_db(NULL);
    rag_collection_options o, got;
    rag_collection_options_init(&o);
    ASSERT_EQ_INT(o.pii, RAG_PII_OFF);
    ASSERT_EQ_INT(o.dedup, RAG_DEDUP_OFF);
    ASSERT_EQ_INT(o.quality, 0);
    /* a collection without a policy record has every filter off */
    ASSERT_OK(rag_collection_create(db, "plain"));
    ASSERT_OK(rag_collection_options_get(db, "plain", &got));
    ASSERT_EQ_INT(got.pii, RAG_PII_OFF);
    ASSERT_EQ_INT(got.dedup, RAG_DEDUP_OFF);
    ASSERT_STR_EQ(got.language, "english");
    ASSERT_OK(rag_collection_option_set(&o, "pii", "hash"));
    ASSERT_OK(rag_collection_option_set(&o, "near_dup", "flag"));
    ASSERT_OK(rag_collection_option_set(&o, "near_dup_threshold", "0.6"));
    ASSERT_OK(rag_collection_option_set(&o, "quality", "on"));
    ASSERT_OK(rag_collection_option_set(&o, "max_chars", "5000"));
    ASSERT_OK(rag_collection_option_set(&o, "pii_types", "EMAIL,card"));
    ASSERT_OK(rag_collection_option_set(&o, "ttl_seconds", "3600"));
    ASSERT_EQ_INT(rag_collection_option_set(&o, "pii", "scramble"), RAG_EINVAL);
    ASSERT_TRUE(strstr(rag_errmsg(), "scramble") && strstr(rag_errmsg(), "off|mask|hash|drop"));
    ASSERT_EQ_INT(rag_collection_option_set(&o, "max_symbol_ratio", "2"), RAG_EINVAL);
    ASSERT_EQ_INT(rag_collection_option_set(&o, "colour", "red"), RAG_EINVAL);
    ASSERT_EQ_INT(o.pii, RAG_PII_HASH); /* unchanged by the failed calls */
    ASSERT_OK(rag_collection_create_with(db, "tuned", &o));
    ASSERT_EQ_INT(rag_collection_create_with(db, "tuned", &o), RAG_EEXIST);
    ASSERT_OK(rag_close(db));
    db = open_db(NULL);
    ASSERT_OK(rag_collection_options_get(db, "tuned", &got));
    ASSERT_EQ_INT(got.pii, RAG_PII_HASH);
    ASSERT_EQ_INT(got.dedup, RAG_DEDUP_FLAG);
    ASSERT_NEAR(got.near_dup_threshold, 0.6, 1e-9);
    ASSERT_EQ_INT(got.quality, 1);
    ASSERT_EQ_INT(got.max_chars, 5000);
    ASSERT_EQ_INT(got.min_chars, 20);
    ASSERT_EQ_INT(got.pii_types, (1u << RAG_PII_EMAIL) | (1u << RAG_PII_CARD));
    ASSERT_EQ_INT(got.ttl_seconds, 3600);
    char *json = NULL;
    ASSERT_OK(rag_collection_options_json(&got, &json));
    ASSERT_TRUE(json && strstr(json, "\"pii\":\"hash\"") && strstr(json, "\"dedup\":\"flag\"") &&
                strstr(json, "\"pii_types\":\"EMAIL,CARD\""));
    rag_free(json);
    /* an explicit change, and what cannot change */
    got.pii = RAG_PII_MASK;
    got.quality = 0;
    ASSERT_OK(rag_collection_configure(db, "tuned", &got));
    ASSERT_OK(rag_collection_options_get(db, "tuned", &o));
    ASSERT_EQ_INT(o.pii, RAG_PII_MASK);
    ASSERT_EQ_INT(o.quality, 0);
    o.language = "french";
    ASSERT_EQ_INT(rag_collection_configure(db, "tuned", &o), RAG_EINVAL);
    ASSERT_TRUE(strstr(rag_errmsg(), "language") != NULL);
    ASSERT_EQ_INT(rag_collection_configure(db, "absent", &o), RAG_ENOTFOUND);
    ASSERT_EQ_INT(rag_collection_options_get(db, "absent", &o), RAG_ENOTFOUND);
    rag_collection_options bad;
    rag_collection_options_init(&bad);
    bad.max_chars = 5;
    bad.min_chars = 10;
    ASSERT_EQ_INT(rag_collection_create_with(db, "bad", &bad), RAG_EINVAL);
    /* dropping a collection drops its policy: a new one of that name starts clean */
    ASSERT_OK(rag_collection_drop(db, "tuned"));
    ASSERT_OK(rag_collection_create(db, "tuned"));
    ASSERT_OK(rag_collection_options_get(db, "tuned", &got));
    ASSERT_EQ_INT(got.pii, RAG_PII_OFF);
    ASSERT_OK(rag_close(db));
    /* read-only handles read settings too */
    rag_open_options ro;
    rag_open_options_init(&ro);
    ro.read_only = 1;
    ASSERT_OK(rag_open(dir, &ro, &db));
    ASSERT_OK(rag_collection_options_get(db, "plain", &got));
    ASSERT_OK(rag_close(db));
}

/* ---- no raw PII anywhere, whatever the path ------------------------------------------------ */

#define PII_TEXT                                                                           \
    "Quarterly escalation notes. Contact john.doe@example.com or call +44 20 7946 0958 "   \
    "about the refund; the card on file is 4111 1111 1111 1111 and the payout goes to "    \
    "IBAN DE89 3704 0044 0532 0130 00. Employee SSN 078-05-1120 was verified. The leaked " \
    "deploy key AKIAIOSFODNN7EXAMPLE has been rotated since."
#define PII_TITLE "Escalations by jane.roe@example.org"
#define PII_META "{\"owner\":\"jane.roe@example.org\",\"tags\":[\"x\",\"john.doe@example.com\"]}"

static const char *const RAW[] = {"john.doe@example.com", "jane.roe@example.org",
                                  "+44 20 7946 0958",     "4111 1111 1111 1111",
                                  "4111111111111111",     "DE89 3704 0044 0532 0130 00",
                                  "DE89370400440532013000", "078-05-1120",
                                  "AKIAIOSFODNN7EXAMPLE"};
static const char *const MASKED[] = {"[EMAIL]", "[PHONE]", "[CARD]", "[IBAN]", "[SSN]",
                                     "[SECRET]"};
#define N_RAW (sizeof RAW / sizeof RAW[0])
#define N_MASKED (sizeof MASKED / sizeof MASKED[0])

static void pii_document(rag_document *d)
{
    rag_document_init(d);
    d->id = "escalations";
    d->text = PII_TEXT;
    d->title = PII_TITLE;
    d->metadata_json = PII_META;
    d->source = "crm://notes/7";
}

/* Every raw value absent from every byte of the store directory, every placeholder
 * present (so the scan could have failed). */
static void assert_no_raw(const char *path_name)
{
    for (size_t i = 0; i < N_RAW; i++) {
        long n = test_count_in_tree(dir, RAW[i]);
        if (n)
            TEST_FAIL_("%s: raw '%s' found %ld times under %s", path_name, RAW[i], n, dir);
        test_checks_++;
    }
    for (size_t i = 0; i < N_MASKED; i++) {
        long n = test_count_in_tree(dir, MASKED[i]);
        if (!n)
            TEST_FAIL_("%s: placeholder '%s' not found under %s", path_name, MASKED[i], dir);
        test_checks_++;
    }
}

static rag_collection_options mask_policy(void)
{
    rag_collection_options o;
    rag_collection_options_init(&o);
    o.pii = RAG_PII_MASK;
    return o;
}

static void test_pii_every_path(void)
{
    rag_collection_options mask = mask_policy();
    rag_document d;
    pii_document(&d);
    rag_ingest_summary s;

    /* control: without a policy the raw values are in the store, so the scan can fail */
    fresh("pii_control");
    rag_db *db = open_db(NULL);
    ASSERT_OK(rag_ingest(db, NULL, &d, 1, NULL));
    ASSERT_OK(rag_close(db));
    ASSERT_TRUE(test_count_in_tree(dir, "john.doe@example.com") > 0);
    ASSERT_TRUE(test_count_in_tree(dir, "AKIAIOSFODNN7EXAMPLE") > 0);

    /* rag_ingest into a collection created implicitly with the handle's default policy */
    fresh("pii_ingest");
    db = open_db(&mask);
    rag_ingest_stats st;
    ASSERT_OK(rag_ingest(db, "notes", &d, 1, &st));
    ASSERT_EQ_INT(st.documents, 1);
    rag_results *res = search(db, "notes", "escalation refund", NULL);
    ASSERT_TRUE(rag_results_count(res) >= 1);
    const rag_hit *h = rag_results_get(res, 0);
    ASSERT_TRUE(h && strstr(h->text, "[EMAIL]") && !strstr(h->text, "john.doe"));
    ASSERT_TRUE(h && strstr(h->title, "[EMAIL]") && strstr(h->metadata_json, "[EMAIL]"));
    rag_results_free(res);
    ASSERT_OK(rag_close(db));
    assert_no_raw("rag_ingest");

    /* rag_ingest_documents into a collection created with the policy */
    fresh("pii_documents");
    db = open_db(NULL);
    ASSERT_OK(rag_collection_create_with(db, "notes", &mask));
    rag_ingest_options io;
    rag_ingest_options_init(&io);
    io.collection = "notes";
    ASSERT_OK(rag_ingest_documents(db, &d, 1, &io, &s));
    ASSERT_EQ_INT(s.documents, 1);
    ASSERT_EQ_INT(s.pii_documents, 1);
    ASSERT_TRUE(s.pii_found[RAG_PII_EMAIL] >= 3 && s.pii_found[RAG_PII_CARD] == 1 &&
                s.pii_found[RAG_PII_IBAN] == 1 && s.pii_found[RAG_PII_SSN] == 1 &&
                s.pii_found[RAG_PII_SECRET] == 1 && s.pii_found[RAG_PII_PHONE] == 1);
    ASSERT_OK(rag_close(db));
    assert_no_raw("rag_ingest_documents");

    /* rag_ingest_paths: a Markdown file with the values in front matter, title and text */
    fresh("pii_paths");
    write_text("notes.md", "---\ntitle: " PII_TITLE "\nowner: jane.roe@example.org\n---\n"
                           "# Escalations\n\n" PII_TEXT "\n");
    db = open_db(&mask);
    const char *paths[] = {src};
    io.collection = "notes";
    ASSERT_OK(rag_ingest_paths(db, paths, 1, &io, &s));
    ASSERT_EQ_INT(s.documents, 1);
    ASSERT_OK(rag_close(db));
    assert_no_raw("rag_ingest_paths");

    /* rag_sync_begin / rag_sync_document / rag_sync_finish */
    fresh("pii_sync");
    db = open_db(&mask);
    rag_sync *sy = NULL;
    rag_sync_outcome oc;
    ASSERT_OK(rag_sync_begin(db, "notes", &sy));
    ASSERT_OK(rag_sync_document(sy, &d, &oc));
    ASSERT_EQ_INT(oc, RAG_SYNC_ADDED);
    const char *prefixes[] = {"crm://notes"};
    rag_sync_stats ss;
    ASSERT_OK(rag_sync_finish(sy, prefixes, 1, &ss));
    rag_sync_free(sy);
    ASSERT_EQ_INT(ss.added, 1);
    /* the same document again: unchanged (compared after masking) */
    ASSERT_OK(rag_sync_begin(db, "notes", &sy));
    ASSERT_OK(rag_sync_document(sy, &d, &oc));
    ASSERT_EQ_INT(oc, RAG_SYNC_UNCHANGED);
    ASSERT_OK(rag_sync_finish(sy, prefixes, 1, &ss));
    rag_sync_free(sy);
    ASSERT_EQ_INT(ss.unchanged, 1);
    ASSERT_OK(rag_close(db));
    assert_no_raw("rag_sync_*");

    /* rag_sync_paths: a text file and a JSONL record with the values in extra fields */
    fresh("pii_sync_paths");
    write_text("notes.txt", PII_TITLE "\n\n" PII_TEXT "\n");
    write_text("crm.jsonl", "{\"_id\":\"r1\",\"title\":\"" PII_TITLE "\",\"text\":\"" PII_TEXT
                            "\",\"owner\":\"jane.roe@example.org\"}\n");
    db = open_db(&mask);
    ASSERT_OK(rag_sync_paths(db, paths, 1, &io, &s));
    ASSERT_EQ_INT(s.documents, 2);
    ASSERT_OK(rag_sync_paths(db, paths, 1, &io, &s));
    ASSERT_EQ_INT(s.unchanged, 2);
    ASSERT_OK(rag_close(db));
    assert_no_raw("rag_sync_paths");

    /* drop mode: nothing stored, and an older version under the id is removed */
    fresh("pii_drop");
    db = open_db(NULL);
    ASSERT_OK(rag_ingest(db, NULL, &d, 1, NULL));
    ASSERT_EQ_INT(doc_count(db, NULL), 1);
    rag_collection_options drop = mask_policy();
    drop.pii = RAG_PII_DROP;
    ASSERT_OK(rag_collection_configure(db, RAG_DEFAULT_COLLECTION, &drop));
    ASSERT_OK(rag_ingest(db, NULL, &d, 1, &st));
    ASSERT_EQ_INT(st.documents, 0);
    ASSERT_EQ_INT(doc_count(db, NULL), 0);
    rag_document clean;
    rag_document_init(&clean);
    clean.id = "clean";
    clean.text = "Nothing personal in this note about turbines and wind.";
    io.collection = NULL;
    ASSERT_OK(rag_ingest_documents(db, (rag_document[]){d, clean}, 2, &io, &s));
    ASSERT_EQ_INT(s.documents, 1);
    ASSERT_EQ_INT(s.pii_dropped, 1);
    ASSERT_OK(rag_close(db));
}

/* ---- duplicates, across calls and reopen ---------------------------------------------------- */

#define BASE_TEXT                                                                            \
    "Lighthouses guided ships along dangerous rocky coastlines for centuries, and their "   \
    "keepers lived isolated lives maintaining lamps, lenses and fog signals through storms, " \
    "long winters and endless nights while recording weather observations in careful "      \
    "logbooks for the coast guard."

static rag_document text_doc(const char *id, const char *text)
{
    rag_document d;
    rag_document_init(&d);
    d.id = id;
    d.text = text;
    return d;
}

static void test_dedup_persistent(void)
{
    fresh("dedup");
    rag_collection_options o;
    rag_collection_options_init(&o);
    o.dedup = RAG_DEDUP_SKIP;
    rag_db *db = open_db(&o);
    events e;
    rag_ingest_options io;
    ingest_options(&io, NULL, &e);
    rag_ingest_summary s;
    rag_document a = text_doc("a", BASE_TEXT);
    ASSERT_OK(rag_ingest_documents(db, &a, 1, &io, &s));
    ASSERT_EQ_INT(s.documents, 1);
    /* a near duplicate, in a separate call */
    char near[1024];
    snprintf(near, sizeof near, "%s", BASE_TEXT);
    memcpy(strstr(near, "careful"), "precise", 7);
    rag_document b = text_doc("b", near);
    ASSERT_OK(rag_ingest_documents(db, &b, 1, &io, &s));
    ASSERT_EQ_INT(s.documents, 0);
    ASSERT_EQ_INT(s.dup_near, 1);
    ASSERT_EQ_INT(s.dup_skipped, 1);
    ASSERT_EQ_INT(s.dup_recorded, 1);
    ASSERT_EQ_INT(e.count[RAG_INGEST_DUPLICATE], 1);
    ASSERT_STR_EQ(e.canonical, "a");
    /* rag_ingest applies it too */
    rag_ingest_stats st;
    ASSERT_OK(rag_ingest(db, NULL, &b, 1, &st));
    ASSERT_EQ_INT(st.documents, 0);
    ASSERT_OK(rag_close(db));
    /* after reopening (another process would see the same): an exact duplicate */
    db = open_db(NULL);
    char upper[1024];
    snprintf(upper, sizeof upper, "  %s  ", BASE_TEXT);
    for (char *p = upper; *p; p++)
        if (*p >= 'a' && *p <= 'z')
            *p = (char)(*p - 'a' + 'A');
    rag_document c = text_doc("c", upper);
    memset(&e, 0, sizeof e);
    ASSERT_OK(rag_ingest_documents(db, &c, 1, &io, &s));
    ASSERT_EQ_INT(s.documents, 0);
    ASSERT_EQ_INT(s.dup_exact, 1);
    ASSERT_STR_EQ(e.canonical, "a");
    /* re-ingesting a document under its own id is not a duplicate of itself */
    ASSERT_OK(rag_ingest_documents(db, &a, 1, &io, &s));
    ASSERT_EQ_INT(s.documents, 1);
    ASSERT_EQ_INT(s.replaced, 1);
    ASSERT_EQ_INT(s.dup_exact + s.dup_near, 0);
    /* deleting the canonical removes it from the index: b is stored now */
    ASSERT_OK(rag_delete(db, NULL, "a"));
    ASSERT_OK(rag_ingest_documents(db, &b, 1, &io, &s));
    ASSERT_EQ_INT(s.documents, 1);
    ASSERT_EQ_INT(doc_count(db, NULL), 1);
    /* within one call: the second of two equal texts */
    rag_document pair[2] = {
        text_doc("p1", "Glaciers carve valleys slowly over many thousands of years."),
        text_doc("p2", "glaciers carve valleys slowly over many thousands of years.")};
    ASSERT_OK(rag_ingest_documents(db, pair, 2, &io, &s));
    ASSERT_EQ_INT(s.documents, 1);
    ASSERT_EQ_INT(s.dup_exact, 1);
    /* flag mode keeps it with metadata; turning detection on indexes what is stored */
    rag_collection_options f;
    rag_collection_options_init(&f);
    ASSERT_OK(rag_collection_create(db, "late"));
    rag_document first = text_doc("first", BASE_TEXT);
    ASSERT_OK(rag_ingest(db, "late", &first, 1, NULL));
    f.dedup = RAG_DEDUP_FLAG;
    ASSERT_OK(rag_collection_configure(db, "late", &f));
    rag_document again = text_doc("again", BASE_TEXT);
    io.collection = "late";
    ASSERT_OK(rag_ingest_documents(db, &again, 1, &io, &s));
    ASSERT_EQ_INT(s.documents, 1);
    ASSERT_EQ_INT(s.dup_flagged, 1);
    rag_results *res = search(db, "late", "lighthouses keepers", "duplicate_of = \"first\"");
    ASSERT_EQ_INT(rag_results_count(res), 1);
    rag_results_free(res);
    ASSERT_OK(rag_close(db));
}

/* ---- metadata from files ------------------------------------------------------------------- */

static int collect_doc(void *user, const rag_document *d)
{
    int *n = user;
    (*n)++;
    ASSERT_TRUE(d->id[0] == '/' || strcmp(d->id, "j1") == 0);
    ASSERT_TRUE(d->metadata_json && strstr(d->metadata_json, "\"batch\":7"));
    return 0;
}

static void test_file_metadata(void)
{
    fresh("meta");
    write_text("guide.md", "---\ntitle: Turbine Guide\nlang: de\nyear: 2021\nversion: 1.10\n"
                           "tags: [wind, \"blades\"]\ndraft: false\nteam: alpha\n---\n"
                           "# Maintenance\n\nInspect the rotor blades every spring.\n");
    write_text("corpus.jsonl",
               "{\"_id\":\"j1\",\"title\":\"Dams\",\"text\":\"Hydroelectric dams store "
               "water.\",\"author\":\"Ann\",\"year\":2019,\"metadata\":{\"k\":\"v\"},"
               "\"valid_until\":4102444800,\"format\":\"markdown\"}\n");
    rag_db *db = open_db(NULL);
    rag_ingest_options io;
    rag_ingest_options_init(&io);
    io.metadata_json = "{\"batch\":7,\"team\":\"ops\"}";
    const char *paths[] = {src};
    rag_ingest_summary s;
    ASSERT_OK(rag_ingest_paths(db, paths, 1, &io, &s));
    ASSERT_EQ_INT(s.documents, 2);
    /* front matter: filterable metadata, not in the chunk text; its title is the title */
    rag_results *res = search(db, NULL, "rotor blades", "lang = \"de\" AND year >= 2020");
    ASSERT_EQ_INT(rag_results_count(res), 1);
    const rag_hit *h = rag_results_get(res, 0);
    if (h) {
        ASSERT_STR_EQ(h->title, "Turbine Guide");
        ASSERT_TRUE(!strstr(h->text, "lang:") && !strstr(h->text, "---"));
        ASSERT_TRUE(strstr(h->metadata_json, "\"team\":\"alpha\"") != NULL); /* its own wins */
        ASSERT_TRUE(strstr(h->metadata_json, "\"batch\":7") != NULL);
        ASSERT_TRUE(strstr(h->metadata_json, "\"version\":\"1.10\"") ||
                    strstr(h->metadata_json, "\"version\":1.1"));
        ASSERT_TRUE(strstr(h->metadata_json, "\"draft\":false") != NULL);
        ASSERT_TRUE(h->doc_id[0] == '/');
    }
    rag_results_free(res);
    /* JSONL: fields that are not the record's own go into the metadata */
    res = search(db, NULL, "hydroelectric", "author = \"Ann\" AND year = 2019 AND k = \"v\"");
    ASSERT_EQ_INT(rag_results_count(res), 1);
    h = rag_results_get(res, 0);
    if (h) {
        ASSERT_STR_EQ(h->doc_id, "j1");
        ASSERT_EQ_INT(h->valid_until, 4102444800LL);
        ASSERT_TRUE(!strstr(h->metadata_json, "\"text\"") && !strstr(h->metadata_json, "_id"));
    }
    rag_results_free(res);
    /* extraction alone gives the same ids and metadata */
    int n = 0;
    ASSERT_OK(rag_extract_paths(paths, 1, &io, collect_doc, &n));
    ASSERT_EQ_INT(n, 2);
    /* bad front matter: the file is skipped with the reason */
    write_text("broken.md", "---\ntitle: [unclosed\n---\nBody text here.\n");
    events e;
    memset(&e, 0, sizeof e);
    ingest_options(&io, NULL, &e);
    ASSERT_OK(rag_ingest_paths(db, paths, 1, &io, &s));
    ASSERT_EQ_INT(s.skipped, 1);
    ASSERT_EQ_INT(s.skipped_reasons[RAG_SKIP_MALFORMED], 1);
    ASSERT_TRUE(strstr(e.last_reason[RAG_INGEST_SKIPPED], "front matter") != NULL);
    ASSERT_OK(rag_close(db));
}

/* ---- skipped files ------------------------------------------------------------------------- */

static void test_skipped_files(void)
{
    fresh("skipped");
    static const char zip[] = "PK\x03\x04\x14\x00\x06\x00\x08\x00\x00\x00!\x00word/document.xml";
    write_file("report.docx", zip, sizeof zip - 1);
    write_file("photo.png", "\x89PNG\r\n\x1a\n\0\0\0\rIHDR", 16);
    write_text("notes.txt", "Plain notes about the wind farm maintenance schedule.\n");
    write_text("script.py", "print('not a document format the walk takes')\n");
    rag_db *db = open_db(NULL);
    events e;
    rag_ingest_options io;
    ingest_options(&io, NULL, &e);
    const char *paths[] = {src};
    rag_ingest_summary s;
    ASSERT_OK(rag_ingest_paths(db, paths, 1, &io, &s));
    ASSERT_EQ_INT(s.documents, 1);
    ASSERT_EQ_INT(s.skipped, 2); /* the .docx and the image; the .py is not a document */
    ASSERT_EQ_INT(s.skipped_reasons[RAG_SKIP_UNSUPPORTED], 2);
    ASSERT_EQ_INT(e.count[RAG_INGEST_SKIPPED], 2);
    ASSERT_TRUE(strstr(e.last_reason[RAG_INGEST_SKIPPED], "unsupported format") != NULL);
    /* named explicitly: the same reason, not "binary data" */
    char docx[4400];
    snprintf(docx, sizeof docx, "%s/report.docx", src);
    const char *one[] = {docx};
    memset(&e, 0, sizeof e);
    ASSERT_OK(rag_ingest_paths(db, one, 1, &io, &s));
    ASSERT_EQ_INT(s.skipped_reasons[RAG_SKIP_UNSUPPORTED], 1);
    ASSERT_EQ_INT(e.skip_kind, RAG_SKIP_UNSUPPORTED);
    ASSERT_TRUE(strstr(e.last_reason[RAG_INGEST_SKIPPED], "unsupported format (.docx") != NULL);
    ASSERT_TRUE(strstr(e.last_reason[RAG_INGEST_SKIPPED], "binary") == NULL);
    /* a callback that asks to stop */
    e.stop_after = 1;
    e.seen = 0;
    ASSERT_EQ_INT(rag_ingest_paths(db, paths, 1, &io, &s), RAG_ECANCELED);
    ASSERT_OK(rag_close(db));
}

/* ---- sync of paths ------------------------------------------------------------------------- */

static void test_sync_paths(void)
{
    fresh("syncpaths");
    char sub[4400];
    snprintf(sub, sizeof sub, "%s/docs", src);
    mkdir(sub, 0755);
    write_text("docs/a.md", "# Alpha\n\nAlpha notes about anemometers.\n");
    write_text("docs/b.txt", "Beta notes about bearings.\n");
    write_text("docs/c.txt", "Gamma notes about gearboxes.\n");
    rag_db *db = open_db(NULL);
    events e;
    rag_ingest_options io;
    ingest_options(&io, NULL, &e);
    rag_ingest_summary s;
    /* relative first, then absolute: the same ids, nothing re-keyed */
    char cwd[PATH_MAX];
    ASSERT_TRUE(getcwd(cwd, sizeof cwd) != NULL);
    ASSERT_EQ_INT(chdir(src), 0);
    const char *rel[] = {"docs"};
    ASSERT_OK(rag_sync_paths(db, rel, 1, &io, &s));
    ASSERT_EQ_INT(s.documents, 3);
    ASSERT_EQ_INT(chdir(cwd), 0);
    const char *abs[] = {sub};
    ASSERT_OK(rag_sync_paths(db, abs, 1, &io, &s));
    ASSERT_EQ_INT(s.documents, 0);
    ASSERT_EQ_INT(s.deleted, 0);
    ASSERT_EQ_INT(s.unchanged, 3);
    /* ingest_paths uses the same id rule: nothing new */
    rag_ingest_options plain;
    rag_ingest_options_init(&plain);
    ASSERT_OK(rag_ingest_paths(db, abs, 1, &plain, &s));
    ASSERT_EQ_INT(s.replaced, 3);
    ASSERT_EQ_INT(doc_count(db, NULL), 3);
    /* a file that exists but fails to extract keeps its stored version */
    write_file("docs/b.txt", "Beta\0binary now", 15);
    memset(&e, 0, sizeof e);
    ASSERT_OK(rag_sync_paths(db, abs, 1, &io, &s));
    ASSERT_EQ_INT(s.kept, 1);
    ASSERT_EQ_INT(s.deleted, 0);
    ASSERT_EQ_INT(s.skipped, 1);
    ASSERT_EQ_INT(e.count[RAG_INGEST_KEPT], 1);
    ASSERT_TRUE(strstr(e.last_id[RAG_INGEST_KEPT], "docs/b.txt") != NULL);
    ASSERT_TRUE(strstr(e.last_reason[RAG_INGEST_KEPT], "binary") != NULL);
    ASSERT_EQ_INT(doc_count(db, NULL), 3);
    rag_results *res = search(db, NULL, "bearings", NULL);
    ASSERT_EQ_INT(rag_results_count(res), 1);
    rag_results_free(res);
    /* a renamed file is stored under its new id even though duplicates are skipped */
    rag_collection_options skip;
    rag_collection_options_init(&skip);
    skip.dedup = RAG_DEDUP_SKIP;
    ASSERT_OK(rag_collection_configure(db, RAG_DEFAULT_COLLECTION, &skip));
    char from[4400], to[4400];
    snprintf(from, sizeof from, "%s/docs/c.txt", src);
    snprintf(to, sizeof to, "%s/docs/d.txt", src);
    ASSERT_EQ_INT(rename(from, to), 0);
    ASSERT_OK(rag_sync_paths(db, abs, 1, &io, &s));
    ASSERT_EQ_INT(s.documents, 1);
    ASSERT_EQ_INT(s.deleted, 1);
    ASSERT_EQ_INT(s.dup_skipped, 0);
    res = search(db, NULL, "gearboxes", NULL);
    ASSERT_EQ_INT(rag_results_count(res), 1);
    if (rag_results_count(res))
        ASSERT_STR_EQ(rag_results_get(res, 0)->doc_id, to);
    rag_results_free(res);
    /* an emptied root is refused, nothing deleted; allowed explicitly */
    char p[4400];
    const char *names[] = {"docs/a.md", "docs/b.txt", "docs/d.txt"};
    for (int i = 0; i < 3; i++) {
        snprintf(p, sizeof p, "%s/%s", src, names[i]);
        unlink(p);
    }
    ASSERT_EQ_INT(rag_sync_paths(db, abs, 1, &io, &s), RAG_EINVAL);
    ASSERT_TRUE(strstr(rag_errmsg(), "yielded no document") != NULL);
    ASSERT_EQ_INT(doc_count(db, NULL), 3);
    io.allow_empty = 1;
    ASSERT_OK(rag_sync_paths(db, abs, 1, &io, &s));
    ASSERT_EQ_INT(s.deleted, 3);
    ASSERT_EQ_INT(doc_count(db, NULL), 0);
    /* a root that does not exist is refused */
    rmdir(sub);
    ASSERT_EQ_INT(rag_sync_paths(db, abs, 1, &io, &s), RAG_EINVAL);
    ASSERT_OK(rag_close(db));
}

int main(void)
{
    RUN_TEST(test_policy_settings);
    RUN_TEST(test_pii_every_path);
    RUN_TEST(test_dedup_persistent);
    RUN_TEST(test_file_metadata);
    RUN_TEST(test_skipped_files);
    RUN_TEST(test_sync_paths);
    return TEST_REPORT();
}
