/* test_filter.c - the filter expression language: operators, precedence, values, errors. */
#include "filter.h"
#include "ragcore.h"
#include "test.h"

#include <jansson.h>
#include <pthread.h>
#include <stdint.h>
#include <time.h>

static const char *const META =
    "{\"lang\":\"en\",\"year\":2021,\"score\":0.75,\"draft\":false,\"reviewed\":true,"
    "\"note\":null,\"tags\":[\"ml\",\"nlp\"],\"scores\":[0.2,0.9],\"empty\":[],"
    "\"author\":{\"name\":\"Ada\",\"born\":1815,\"address\":{\"city\":\"London\"}},"
    "\"authors\":[{\"name\":\"Ada\"},{\"name\":\"Charles\",\"langs\":[\"fr\",\"en\"]}],"
    "\"published\":\"2024-02-29\",\"published_at\":\"2024-02-29T02:00:00+02:00\","
    "\"stamp\":1709164800,\"quote\":\"say \\\"hi\\\"\\\\n\",\"emoji\":\"\\ud83d\\ude00\","
    "\"cafe\":\"caf\\u00e9\",\"content type\":\"pdf\",\"and\":1,\"source\":\"meta-source\","
    "\"big\":9007199254740993,\"mixed\":[\"1\",2],\"nested\":[[\"deep\"]]}";

static rag_filter_doc make_doc(void)
{
    rag_filter_doc d = {"doc-7", "/docs/guide/intro.md", "Intro", META,
                        1767225600 /* 2026-01-01T00:00:00Z */,
                        1795168800 /* 2026-11-20T10:00:00Z */, 0};
    return d;
}

/* 1 / 0: the match result; -1: the expression did not parse (the message is printed). */
static int m(const char *expr, const rag_filter_doc *d)
{
    rag_filter *f = NULL;
    int rc = rag_filter_parse(expr, 0, &f);
    if (rc != RAG_OK) {
        fprintf(stderr, "  parse of [%s] failed: %s\n", expr, rag_errmsg());
        return -1;
    }
    int r = rag_filter_match(f, d);
    rag_filter_free(f);
    return r;
}

/* Asserts `expr` fails with rc and exactly `msg`. */
#define ASSERT_PARSE_ERR(expr, rc, msg)                                                      \
    do {                                                                                   \
        rag_filter *f_ = (rag_filter *)1;                                                  \
        ASSERT_EQ_INT(rag_filter_parse((expr), 0, &f_), (rc));                             \
        ASSERT_TRUE(f_ == NULL);                                                           \
        ASSERT_STR_EQ(rag_errmsg(), (msg));                                                \
    } while (0)

static void test_equality_and_inequality(void)
{
    rag_filter_doc d = make_doc();
    ASSERT_EQ_INT(m("lang = \"en\"", &d), 1);
    ASSERT_EQ_INT(m("lang = \"de\"", &d), 0);
    ASSERT_EQ_INT(m("lang != \"de\"", &d), 1);
    ASSERT_EQ_INT(m("lang != \"en\"", &d), 0);
    ASSERT_EQ_INT(m("lang=\"en\"", &d), 1); /* no spaces needed */
    ASSERT_EQ_INT(m("year = 2021", &d), 1);
    ASSERT_EQ_INT(m("year = 2021.0", &d), 1);   /* int and float compare as numbers */
    ASSERT_EQ_INT(m("year = 2.021e3", &d), 1);
    ASSERT_EQ_INT(m("score = 0.75", &d), 1);
    ASSERT_EQ_INT(m("score = 75e-2", &d), 1);
    ASSERT_EQ_INT(m("year != 2020", &d), 1);
    ASSERT_EQ_INT(m("draft = false", &d), 1);
    ASSERT_EQ_INT(m("draft = true", &d), 0);
    ASSERT_EQ_INT(m("reviewed = TRUE", &d), 1);
    ASSERT_EQ_INT(m("draft != true", &d), 1);
    ASSERT_EQ_INT(m("note = null", &d), 1);
    ASSERT_EQ_INT(m("lang = null", &d), 0);
    ASSERT_EQ_INT(m("note != null", &d), 0);
    ASSERT_EQ_INT(m("lang != null", &d), 1);
    ASSERT_EQ_INT(m("author != null", &d), 1); /* present objects differ from null */
    /* integers compare exactly past 2^53 */
    ASSERT_EQ_INT(m("big = 9007199254740993", &d), 1);
    ASSERT_EQ_INT(m("big = 9007199254740992", &d), 0);
    ASSERT_EQ_INT(m("big > 9007199254740992", &d), 1);
    ASSERT_EQ_INT(m("year = -2021", &d), 0);
    ASSERT_EQ_INT(m("year > -1", &d), 1);
}

static void test_in_lists(void)
{
    rag_filter_doc d = make_doc();
    ASSERT_EQ_INT(m("lang IN (\"en\",\"de\")", &d), 1);
    ASSERT_EQ_INT(m("lang IN (\"fr\", \"de\")", &d), 0);
    ASSERT_EQ_INT(m("lang in (\"en\")", &d), 1);
    ASSERT_EQ_INT(m("year IN (2019, 2020, 2021)", &d), 1);
    ASSERT_EQ_INT(m("year IN (\"2021\", true, null)", &d), 0); /* no type conversion */
    ASSERT_EQ_INT(m("lang NOT IN (\"fr\", \"de\")", &d), 1);
    ASSERT_EQ_INT(m("lang NOT IN (\"fr\", \"en\")", &d), 0);
    ASSERT_EQ_INT(m("missing NOT IN (\"fr\")", &d), 0);
    ASSERT_EQ_INT(m("year not in (1, 2)", &d), 1);
}

static void test_ranges(void)
{
    rag_filter_doc d = make_doc();
    ASSERT_EQ_INT(m("year >= 2020", &d), 1);
    ASSERT_EQ_INT(m("year >= 2021", &d), 1);
    ASSERT_EQ_INT(m("year >= 2022", &d), 0);
    ASSERT_EQ_INT(m("year > 2021", &d), 0);
    ASSERT_EQ_INT(m("year > 2020.5", &d), 1);
    ASSERT_EQ_INT(m("year < 2022", &d), 1);
    ASSERT_EQ_INT(m("year < 2021", &d), 0);
    ASSERT_EQ_INT(m("year <= 2021", &d), 1);
    ASSERT_EQ_INT(m("year <= 2020", &d), 0);
    ASSERT_EQ_INT(m("year BETWEEN 2019 AND 2021", &d), 1); /* inclusive */
    ASSERT_EQ_INT(m("year BETWEEN 2021 AND 2023", &d), 1);
    ASSERT_EQ_INT(m("year between 2022 and 2023", &d), 0);
    ASSERT_EQ_INT(m("year BETWEEN 2022 AND 2019", &d), 0); /* reversed: empty range */
    ASSERT_EQ_INT(m("score BETWEEN 0.5 AND 1", &d), 1);
    /* strings order bytewise */
    ASSERT_EQ_INT(m("lang > \"de\"", &d), 1);
    ASSERT_EQ_INT(m("lang < \"en-GB\"", &d), 1);
    ASSERT_EQ_INT(m("lang BETWEEN \"a\" AND \"f\"", &d), 1);
    ASSERT_EQ_INT(m("lang >= \"f\"", &d), 0);
    /* a BETWEEN inside an AND chain keeps its own AND */
    ASSERT_EQ_INT(m("year BETWEEN 2019 AND 2021 AND lang = \"en\"", &d), 1);
    ASSERT_EQ_INT(m("year BETWEEN 2019 AND 2021 AND lang = \"de\"", &d), 0);
}

static void test_builtin_fields(void)
{
    rag_filter_doc d = make_doc();
    ASSERT_EQ_INT(m("doc_id = \"doc-7\"", &d), 1);
    ASSERT_EQ_INT(m("doc_id = \"doc-8\"", &d), 0);
    ASSERT_EQ_INT(m("doc_id IN (\"a\", \"doc-7\")", &d), 1);
    ASSERT_EQ_INT(m("doc_id NOT IN (\"a\", \"doc-7\")", &d), 0);
    ASSERT_EQ_INT(m("source PREFIX \"/docs/\"", &d), 1);
    ASSERT_EQ_INT(m("source prefix \"/docs/guide/intro.md\"", &d), 1);
    ASSERT_EQ_INT(m("source PREFIX \"/docs/guide/intro.md/\"", &d), 0);
    ASSERT_EQ_INT(m("source ^= \"/doc\"", &d), 1);
    ASSERT_EQ_INT(m("source ^= \"/blog/\"", &d), 0);
    ASSERT_EQ_INT(m("source ^= \"\"", &d), 1);
    ASSERT_EQ_INT(m("title = \"Intro\"", &d), 1);
    ASSERT_EQ_INT(m("title PREFIX \"In\"", &d), 1);
    ASSERT_EQ_INT(m("source_mtime = 1767225600", &d), 1);
    ASSERT_EQ_INT(m("ingested_at > 1795168799 AND ingested_at < 1795168801", &d), 1);
    /* metadata. forces the metadata meaning */
    ASSERT_EQ_INT(m("metadata.source = \"meta-source\"", &d), 1);
    ASSERT_EQ_INT(m("source = \"meta-source\"", &d), 0);
    ASSERT_EQ_INT(m("metadata.lang = \"en\"", &d), 1);
    ASSERT_EQ_INT(m("metadata.author.name = \"Ada\"", &d), 1);
    /* field names are case-sensitive: Doc_ID is a metadata key */
    ASSERT_EQ_INT(m("Doc_ID = \"doc-7\"", &d), 0);
    /* missing built-ins: NULL / "" strings, 0 times */
    rag_filter_doc e = {"x", NULL, "", NULL, 0, 0, 0};
    ASSERT_EQ_INT(m("source PREFIX \"\"", &e), 0);
    ASSERT_EQ_INT(m("title = \"\"", &e), 0);
    ASSERT_EQ_INT(m("EXISTS source OR EXISTS title OR EXISTS source_mtime", &e), 0);
    ASSERT_EQ_INT(m("EXISTS doc_id", &e), 1);
    ASSERT_EQ_INT(m("source_mtime < 99999999999", &e), 0);
    ASSERT_EQ_INT(m("NOT EXISTS updated_at", &d), 1);
    ASSERT_EQ_INT(m("EXISTS ingested_at", &d), 1);
}

static void test_dates(void)
{
    rag_filter_doc d = make_doc();
    ASSERT_EQ_INT(m("source_mtime >= \"2026-01-01\"", &d), 1);
    ASSERT_EQ_INT(m("source_mtime = \"2026-01-01\"", &d), 1);
    ASSERT_EQ_INT(m("source_mtime > \"2026-01-01\"", &d), 0);
    ASSERT_EQ_INT(m("source_mtime < \"2026-01-01T00:00:01Z\"", &d), 1);
    ASSERT_EQ_INT(m("source_mtime >= \"2025-12-31T23:59:59.5Z\"", &d), 1);
    ASSERT_EQ_INT(m("source_mtime <= \"2025-12-31T23:59:59.5Z\"", &d), 0);
    ASSERT_EQ_INT(m("ingested_at > \"2026-11-20T10:00:00Z\"", &d), 0);
    ASSERT_EQ_INT(m("ingested_at >= \"2026-11-20T10:00:00Z\"", &d), 1);
    ASSERT_EQ_INT(m("ingested_at = \"2026-11-20T10:00:00Z\"", &d), 1);
    ASSERT_EQ_INT(m("ingested_at = \"2026-11-20T10:00:00z\"", &d), 1);
    ASSERT_EQ_INT(m("ingested_at = \"2026-11-20 10:00:00\"", &d), 1);   /* no offset: UTC */
    ASSERT_EQ_INT(m("ingested_at = \"2026-11-20T10:00\"", &d), 1);
    ASSERT_EQ_INT(m("ingested_at = \"2026-11-20T12:00:00+02:00\"", &d), 1);
    ASSERT_EQ_INT(m("ingested_at = \"2026-11-20T12:00:00+0200\"", &d), 1);
    ASSERT_EQ_INT(m("ingested_at = \"2026-11-20T07:30:00-02:30\"", &d), 1);
    ASSERT_EQ_INT(m("ingested_at = \"2026-11-20T12:00:00+02\"", &d), 1);
    ASSERT_EQ_INT(m("ingested_at = \"2026-11-20T10:00:00.000Z\"", &d), 1);
    ASSERT_EQ_INT(m("ingested_at BETWEEN \"2026-11-20\" AND \"2026-11-21\"", &d), 1);
    ASSERT_EQ_INT(m("ingested_at BETWEEN \"2026-11-21\" AND \"2026-11-22\"", &d), 0);
    ASSERT_EQ_INT(m("ingested_at IN (\"2026-11-20T10:00:00Z\", 5)", &d), 1);
    /* leap years and dates before 1970 */
    rag_filter_doc e = {"x", NULL, NULL, NULL, 1709164800, -1, 951868800};
    ASSERT_EQ_INT(m("source_mtime = \"2024-02-29\"", &e), 1);
    ASSERT_EQ_INT(m("ingested_at = \"1969-12-31T23:59:59Z\"", &e), 1);
    ASSERT_EQ_INT(m("updated_at = \"2000-03-01\"", &e), 1);
    /* metadata numbers compare as unix seconds with an ISO literal */
    ASSERT_EQ_INT(m("stamp = \"2024-02-29\"", &d), 1);
    ASSERT_EQ_INT(m("stamp < \"2024-02-29T00:00:01Z\"", &d), 1);
    ASSERT_EQ_INT(m("stamp > \"2024-02-29\"", &d), 0);
    /* metadata ISO strings compare as instants, also across offsets */
    ASSERT_EQ_INT(m("published >= \"2024-01-01\"", &d), 1);
    ASSERT_EQ_INT(m("published = \"2024-02-29T00:00:00Z\"", &d), 1);
    ASSERT_EQ_INT(m("published_at = \"2024-02-29T00:00:00Z\"", &d), 1);
    ASSERT_EQ_INT(m("published_at < \"2024-02-29T00:00:01Z\"", &d), 1);
    /* a non-date string literal does not convert: "2021" is a string, year a number */
    ASSERT_EQ_INT(m("year = \"2021\"", &d), 0);
    ASSERT_EQ_INT(m("year >= \"2021\"", &d), 0);
    /* invalid calendar dates are plain strings for metadata... */
    ASSERT_EQ_INT(m("stamp = \"2023-02-29\"", &d), 0);
    ASSERT_EQ_INT(m("published = \"2024-02-29\"", &d), 1);
    /* ...and parse errors for the built-in time fields */
    ASSERT_PARSE_ERR("source_mtime >= \"2023-02-29\"", RAG_EPARSE,
                     "filter: position 16: 'source_mtime' holds unix seconds; expected a number "
                     "or an ISO-8601 date such as \"2026-01-01\" or \"2026-01-01T10:00:00Z\", "
                     "found '\"2023-02-29\"'");
    const char *bad[] = {"2026-13-01", "2026-00-10", "2026-04-31", "2026-1-01", "2026-01-01T",
                         "2026-01-01T24:00", "2026-01-01T10:60", "2026-01-01T10:00:61",
                         "2026-01-01T10", "2026-01-01T10:00:00.", "2026-01-01T10:00Zx",
                         "2026-01-01T10:00+25:00", "2026-01-01T10:00+02:6", "2026-01-01X",
                         "yesterday", "2026"};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        char expr[96];
        rag_filter *f = NULL;
        snprintf(expr, sizeof expr, "updated_at < \"%s\"", bad[i]);
        int rc = rag_filter_parse(expr, 0, &f);
        if (rc != RAG_EPARSE)
            fprintf(stderr, "  accepted bad date %s\n", bad[i]);
        ASSERT_EQ_INT(rc, RAG_EPARSE);
        ASSERT_TRUE(strstr(rag_errmsg(), "position 13: 'updated_at' holds unix seconds") != NULL);
        rag_filter_free(f);
    }
}

static void test_precedence_and_logic(void)
{
    rag_filter_doc d = make_doc();
    /* AND binds tighter than OR: a OR (b AND c) */
    ASSERT_EQ_INT(m("lang = \"en\" OR year = 1 AND draft = true", &d), 1);
    ASSERT_EQ_INT(m("(lang = \"en\" OR year = 1) AND draft = true", &d), 0);
    ASSERT_EQ_INT(m("draft = true AND year = 1 OR lang = \"en\"", &d), 1);
    ASSERT_EQ_INT(m("draft = true AND (year = 1 OR lang = \"en\")", &d), 0);
    /* NOT binds tighter than AND: (NOT a) AND b */
    ASSERT_EQ_INT(m("NOT lang = \"en\" AND year = 2021", &d), 0);
    ASSERT_EQ_INT(m("NOT lang = \"de\" AND year = 2021", &d), 1);
    ASSERT_EQ_INT(m("NOT (lang = \"de\" AND year = 2021)", &d), 1);
    ASSERT_EQ_INT(m("NOT lang = \"de\" OR year = 1", &d), 1);
    ASSERT_EQ_INT(m("NOT (lang = \"en\" OR year = 1)", &d), 0);
    ASSERT_EQ_INT(m("NOT NOT lang = \"en\"", &d), 1);
    ASSERT_EQ_INT(m("not not not lang = \"en\"", &d), 0);
    ASSERT_EQ_INT(m("lang = \"de\" OR year = 1 OR draft = false", &d), 1);
    ASSERT_EQ_INT(m("lang = \"en\" AND year = 2021 AND draft = false AND tags = \"ml\"", &d), 1);
    ASSERT_EQ_INT(m("lang = \"en\" AND year = 2021 AND draft = true", &d), 0);
    ASSERT_EQ_INT(m("((((lang = \"en\"))))", &d), 1);
    ASSERT_EQ_INT(m("  ( lang = \"en\" )\n\tAND\r\n(year=2021)  ", &d), 1);
    /* keywords are case-insensitive */
    ASSERT_EQ_INT(m("lang = \"en\" and year = 2021 Or NoT lang = \"en\"", &d), 1);
    ASSERT_EQ_INT(m("Year = 2021", &d), 0); /* field names are case-sensitive */
    ASSERT_EQ_INT(m("Exists lang aNd year BeTwEeN 2020 AnD 2022", &d), 1);
    ASSERT_EQ_INT(m("lang In (\"en\") and lang Not In (\"de\")", &d), 1);
}

static void test_exists(void)
{
    rag_filter_doc d = make_doc();
    ASSERT_EQ_INT(m("EXISTS lang", &d), 1);
    ASSERT_EQ_INT(m("EXISTS missing", &d), 0);
    ASSERT_EQ_INT(m("NOT EXISTS missing", &d), 1);
    ASSERT_EQ_INT(m("EXISTS note", &d), 1);   /* null is present */
    ASSERT_EQ_INT(m("EXISTS empty", &d), 1);  /* so is [] */
    ASSERT_EQ_INT(m("EXISTS author.address.city", &d), 1);
    ASSERT_EQ_INT(m("EXISTS author.address.zip", &d), 0);
    ASSERT_EQ_INT(m("EXISTS lang.sub", &d), 0); /* a string has no keys */
    ASSERT_EQ_INT(m("EXISTS authors.langs", &d), 1); /* in some element */
    ASSERT_EQ_INT(m("EXISTS metadata.tags", &d), 1);
    ASSERT_EQ_INT(m("exists metadata", &d), 0); /* the key "metadata" */
}

static void test_paths_and_arrays(void)
{
    rag_filter_doc d = make_doc();
    ASSERT_EQ_INT(m("author.name = \"Ada\"", &d), 1);
    ASSERT_EQ_INT(m("author.name = \"Bob\"", &d), 0);
    ASSERT_EQ_INT(m("author.born < 1900", &d), 1);
    ASSERT_EQ_INT(m("author.address.city = \"London\"", &d), 1);
    ASSERT_EQ_INT(m("author . address . city = \"London\"", &d), 1);
    ASSERT_EQ_INT(m("author.missing.city = \"London\"", &d), 0);
    ASSERT_EQ_INT(m("metadata.\"content type\" = \"pdf\"", &d), 1);
    ASSERT_EQ_INT(m("metadata.and = 1", &d), 1);        /* keyword as a later key */
    ASSERT_EQ_INT(m("author.\"name\" = \"Ada\"", &d), 1);
    /* arrays: any element */
    ASSERT_EQ_INT(m("tags = \"ml\"", &d), 1);
    ASSERT_EQ_INT(m("tags = \"nlp\"", &d), 1);
    ASSERT_EQ_INT(m("tags = \"cv\"", &d), 0);
    ASSERT_EQ_INT(m("tags IN (\"cv\", \"nlp\")", &d), 1);
    ASSERT_EQ_INT(m("tags != \"cv\"", &d), 1);
    ASSERT_EQ_INT(m("tags != \"ml\"", &d), 0);  /* no element may equal it */
    ASSERT_EQ_INT(m("tags NOT IN (\"cv\", \"ml\")", &d), 0);
    ASSERT_EQ_INT(m("tags PREFIX \"nl\"", &d), 1);
    ASSERT_EQ_INT(m("scores > 0.5", &d), 1);
    ASSERT_EQ_INT(m("scores > 0.95", &d), 0);
    ASSERT_EQ_INT(m("scores BETWEEN 0.3 AND 0.8", &d), 0); /* one element must satisfy both */
    ASSERT_EQ_INT(m("empty = \"x\"", &d), 0);
    ASSERT_EQ_INT(m("empty != \"x\"", &d), 0);  /* nothing comparable */
    ASSERT_EQ_INT(m("mixed = 2", &d), 1);
    ASSERT_EQ_INT(m("mixed = \"1\"", &d), 1);
    ASSERT_EQ_INT(m("mixed = 1", &d), 0);
    ASSERT_EQ_INT(m("nested = \"deep\"", &d), 0); /* one level of arrays only */
    /* arrays of objects: the path looks into each element */
    ASSERT_EQ_INT(m("authors.name = \"Charles\"", &d), 1);
    ASSERT_EQ_INT(m("authors.name = \"Bob\"", &d), 0);
    ASSERT_EQ_INT(m("authors.langs = \"fr\"", &d), 1);
    /* numeric keys index arrays */
    ASSERT_EQ_INT(m("authors.1.name = \"Charles\"", &d), 1);
    ASSERT_EQ_INT(m("authors.0.name = \"Charles\"", &d), 0);
    ASSERT_EQ_INT(m("authors . 1 . langs.0 = \"fr\"", &d), 1);
    ASSERT_EQ_INT(m("tags.1 = \"nlp\"", &d), 1);
    ASSERT_EQ_INT(m("tags.0 = \"nlp\"", &d), 0);
    ASSERT_EQ_INT(m("EXISTS tags.2", &d), 0);
    ASSERT_EQ_INT(m("EXISTS tags.99999999999999999999999", &d), 0);
    ASSERT_EQ_INT(m("EXISTS tags.1x", &d), 0);
    rag_filter_doc e = make_doc();
    e.metadata_json = "{\"m\":{\"0\":\"zero\",\"1e\":2}}";
    ASSERT_EQ_INT(m("m.0 = \"zero\"", &e), 1);  /* on an object: the key "0" */
    ASSERT_EQ_INT(m("m.1e = 2", &e), 1);
    /* whole objects compare with nothing */
    ASSERT_EQ_INT(m("author = \"Ada\"", &d), 0);
    ASSERT_EQ_INT(m("author != \"Ada\"", &d), 0);
}

static void test_escapes(void)
{
    rag_filter_doc d = make_doc();
    ASSERT_EQ_INT(m("quote = \"say \\\"hi\\\"\\\\n\"", &d), 1);
    ASSERT_EQ_INT(m("quote = \"say \\\"hi\\\"\\n\"", &d), 0); /* \n is a newline, not \\n */
    ASSERT_EQ_INT(m("cafe = \"caf\\u00e9\"", &d), 1);
    ASSERT_EQ_INT(m("cafe = \"caf\\u00E9\"", &d), 1);
    ASSERT_EQ_INT(m("cafe = \"caf\xc3\xa9\"", &d), 1);  /* raw UTF-8 */
    ASSERT_EQ_INT(m("emoji = \"\\ud83d\\ude00\"", &d), 1);
    ASSERT_EQ_INT(m("emoji = \"\xf0\x9f\x98\x80\"", &d), 1);
    ASSERT_EQ_INT(m("source PREFIX \"\\/docs\\/\"", &d), 1);
    rag_filter_doc e = {"x", "a\tb\nc\r\b\f", "q\"\\", NULL, 0, 0, 0};
    ASSERT_EQ_INT(m("source = \"a\\tb\\nc\\r\\b\\f\"", &e), 1);
    ASSERT_EQ_INT(m("title = \"q\\\"\\\\\"", &e), 1);
    /* a literal holding NUL never equals a C-string field */
    ASSERT_EQ_INT(m("doc_id = \"x\\u0000\"", &e), 0);
    ASSERT_EQ_INT(m("doc_id PREFIX \"x\\u0000\"", &e), 0);
}

static void test_type_mismatches(void)
{
    rag_filter_doc d = make_doc();
    ASSERT_EQ_INT(m("year = \"2021\"", &d), 0);
    ASSERT_EQ_INT(m("year != \"2021\"", &d), 0);  /* mismatch is no match, both ways */
    ASSERT_EQ_INT(m("lang = 1", &d), 0);
    ASSERT_EQ_INT(m("lang > 1", &d), 0);
    ASSERT_EQ_INT(m("draft = 0", &d), 0);
    ASSERT_EQ_INT(m("draft != 0", &d), 0);
    ASSERT_EQ_INT(m("draft = \"false\"", &d), 0);
    ASSERT_EQ_INT(m("note = 0", &d), 0);
    ASSERT_EQ_INT(m("year PREFIX \"20\"", &d), 0);
    ASSERT_EQ_INT(m("draft < 1", &d), 0);
    /* built-ins of a known type refuse a value that could never match */
    ASSERT_PARSE_ERR("doc_id = 5", RAG_EPARSE,
                     "filter: position 9: 'doc_id' holds a string; expected a \"string\", found '5'");
    ASSERT_PARSE_ERR("source IN (\"a\", null)", RAG_EPARSE,
                     "filter: position 16: 'source' holds a string; expected a \"string\", "
                     "found 'null'");
    ASSERT_PARSE_ERR("ingested_at = true", RAG_EPARSE,
                     "filter: position 14: 'ingested_at' holds unix seconds; expected a number or "
                     "an ISO-8601 date such as \"2026-01-01\" or \"2026-01-01T10:00:00Z\", found "
                     "'true'");
    ASSERT_PARSE_ERR("source_mtime PREFIX \"2026\"", RAG_EPARSE,
                     "filter: position 13: PREFIX needs a string field; 'source_mtime' holds unix "
                     "seconds");
    ASSERT_PARSE_ERR("year < true", RAG_EPARSE,
                     "filter: position 7: expected a number or a string to order by, found 'true'");
    ASSERT_PARSE_ERR("year BETWEEN null AND 3", RAG_EPARSE,
                     "filter: position 13: expected a number or a string to order by, found "
                     "'null'");
}

static void test_missing_fields_and_metadata(void)
{
    rag_filter_doc d = make_doc();
    const char *ops[] = {"missing = 1", "missing != 1", "missing < 1", "missing >= 1",
                         "missing IN (1)", "missing NOT IN (1)", "missing BETWEEN 0 AND 2",
                         "missing PREFIX \"\"", "missing = null", "missing != null",
                         "author.missing = 1"};
    for (size_t i = 0; i < sizeof ops / sizeof *ops; i++) {
        ASSERT_EQ_INT(m(ops[i], &d), 0);
        char neg[64];
        snprintf(neg, sizeof neg, "NOT (%s)", ops[i]);
        ASSERT_EQ_INT(m(neg, &d), 1);
    }
    ASSERT_EQ_INT(m("NOT missing = \"en\"", &d), 1);
    /* no metadata, empty, malformed or not an object: every metadata field is missing */
    const char *metas[] = {NULL, "", "{", "[1,2]", "\"lang\"", "{\"lang\":\"en\"} trailing"};
    for (size_t i = 0; i < sizeof metas / sizeof *metas; i++) {
        rag_filter_doc e = make_doc();
        e.metadata_json = metas[i];
        ASSERT_EQ_INT(m("lang = \"en\"", &e), 0);
        ASSERT_EQ_INT(m("EXISTS lang", &e), 0);
        ASSERT_EQ_INT(m("NOT EXISTS lang AND doc_id = \"doc-7\"", &e), 1);
    }
    rag_filter_doc e = make_doc();
    e.metadata_json = "{\"lang\":\"en\",\"nul\":\"a\\u0000b\"}";
    ASSERT_EQ_INT(m("nul = \"a\\u0000b\"", &e), 1);
    ASSERT_EQ_INT(m("nul = \"a\"", &e), 0);
    ASSERT_EQ_INT(m("lang = \"en\"", &e), 1);
    ASSERT_EQ_INT(rag_filter_match(NULL, &d), 0);
}

static void test_syntax_errors(void)
{
    ASSERT_PARSE_ERR("", RAG_EPARSE, "filter: position 0: empty filter expression");
    ASSERT_PARSE_ERR("   \t\n", RAG_EPARSE, "filter: position 5: empty filter expression");
    ASSERT_PARSE_ERR("lang = ", RAG_EPARSE,
                     "filter: position 7: expected a value (a \"string\", a number, true, false "
                     "or null) after '=', found end of input");
    ASSERT_PARSE_ERR("lang = \"en\" AND year >= ", RAG_EPARSE,
                     "filter: position 24: expected a value (a \"string\", a number, true, false "
                     "or null) after '>=', found end of input");
    ASSERT_PARSE_ERR("lang = en", RAG_EPARSE,
                     "filter: position 7: expected a value (a \"string\", a number, true, false "
                     "or null) after '=', found 'en'");
    ASSERT_PARSE_ERR("lang \"en\"", RAG_EPARSE,
                     "filter: position 5: expected an operator (=, !=, <, <=, >, >=, IN, NOT IN, "
                     "BETWEEN, PREFIX, ^=) after 'lang', found '\"en\"'");
    ASSERT_PARSE_ERR("author.name", RAG_EPARSE,
                     "filter: position 11: expected an operator (=, !=, <, <=, >, >=, IN, NOT IN, "
                     "BETWEEN, PREFIX, ^=) after 'name', found end of input");
    ASSERT_PARSE_ERR("lang == \"en\"", RAG_EPARSE,
                     "filter: position 6: expected a value (a \"string\", a number, true, false "
                     "or null) after '=', found '='");
    ASSERT_PARSE_ERR("= \"en\"", RAG_EPARSE,
                     "filter: position 0: expected a condition (a field name, '(', NOT or "
                     "EXISTS), found '='");
    ASSERT_PARSE_ERR("lang = \"en\" AND", RAG_EPARSE,
                     "filter: position 15: expected a condition (a field name, '(', NOT or "
                     "EXISTS) after 'AND', found end of input");
    ASSERT_PARSE_ERR("lang = \"en\" OR OR x = 1", RAG_EPARSE,
                     "filter: position 15: expected a condition (a field name, '(', NOT or "
                     "EXISTS) after 'OR', found 'OR'");
    ASSERT_PARSE_ERR("NOT", RAG_EPARSE,
                     "filter: position 3: expected a condition (a field name, '(', NOT or "
                     "EXISTS) after 'NOT', found end of input");
    ASSERT_PARSE_ERR("and = 1", RAG_EPARSE,
                     "filter: position 0: expected a condition (a field name, '(', NOT or "
                     "EXISTS), found 'and'");
    ASSERT_PARSE_ERR("lang = \"en\" year = 1", RAG_EPARSE,
                     "filter: position 12: expected AND, OR or the end of the filter after "
                     "'\"en\"', found 'year'");
    ASSERT_PARSE_ERR("lang = \"en\")", RAG_EPARSE,
                     "filter: position 11: expected AND, OR or the end of the filter after "
                     "'\"en\"', found ')'");
    ASSERT_PARSE_ERR("(lang = \"en\" OR (x = 1)", RAG_EPARSE,
                     "filter: position 23: expected AND, OR or ')' closing the '(' at position 0 "
                     "after ')', found end of input");
    ASSERT_PARSE_ERR("()", RAG_EPARSE,
                     "filter: position 1: expected a condition (a field name, '(', NOT or "
                     "EXISTS) after '(', found ')'");
    ASSERT_PARSE_ERR("EXISTS", RAG_EPARSE,
                     "filter: position 6: expected a field name after 'EXISTS', found end of "
                     "input");
    ASSERT_PARSE_ERR("EXISTS 5", RAG_EPARSE,
                     "filter: position 7: expected a field name after 'EXISTS', found '5'");
    ASSERT_PARSE_ERR("author. = 1", RAG_EPARSE,
                     "filter: position 8: expected a key (a name or a \"string\") after '.', "
                     "found '='");
    ASSERT_PARSE_ERR("lang IN \"en\"", RAG_EPARSE,
                     "filter: position 8: expected '(' after 'IN', found '\"en\"'");
    ASSERT_PARSE_ERR("lang IN ()", RAG_EPARSE,
                     "filter: position 9: expected a value (a \"string\", a number, true, false "
                     "or null) after '(', found ')'");
    ASSERT_PARSE_ERR("lang IN (\"en\" \"de\")", RAG_EPARSE,
                     "filter: position 14: expected ',' or ')' in the IN list after '\"en\"', "
                     "found '\"de\"'");
    ASSERT_PARSE_ERR("lang IN (\"en\",)", RAG_EPARSE,
                     "filter: position 14: expected a value (a \"string\", a number, true, false "
                     "or null) after ',', found ')'");
    ASSERT_PARSE_ERR("lang NOT \"en\"", RAG_EPARSE,
                     "filter: position 9: expected IN after 'NOT', found '\"en\"'");
    ASSERT_PARSE_ERR("year BETWEEN 1 OR 2", RAG_EPARSE,
                     "filter: position 15: expected AND (BETWEEN low AND high) after '1', found "
                     "'OR'");
    ASSERT_PARSE_ERR("source PREFIX 5", RAG_EPARSE,
                     "filter: position 14: expected a \"string\" after 'PREFIX', found '5'");
    ASSERT_PARSE_ERR("source ^= doc", RAG_EPARSE,
                     "filter: position 10: expected a \"string\" after '^=', found 'doc'");
    /* lexical errors */
    ASSERT_PARSE_ERR("lang = \"en", RAG_EPARSE,
                     "filter: position 7: unterminated string (no closing '\"')");
    ASSERT_PARSE_ERR("lang = \"en\\\"", RAG_EPARSE,
                     "filter: position 7: unterminated string (no closing '\"')");
    ASSERT_PARSE_ERR("lang = \"e\\qn\"", RAG_EPARSE,
                     "filter: position 9: invalid escape '\\q' in string (valid: \\\" \\\\ \\/ \\b "
                     "\\f \\n \\r \\t \\uXXXX)");
    ASSERT_PARSE_ERR("lang = \"\\u12G4\"", RAG_EPARSE,
                     "filter: position 8: invalid \\u escape in string: expected 4 hex digits");
    ASSERT_PARSE_ERR("lang = \"\\u12\"", RAG_EPARSE,
                     "filter: position 8: invalid \\u escape in string: expected 4 hex digits");
    ASSERT_PARSE_ERR("lang = \"ab\\udc00\"", RAG_EPARSE,
                     "filter: position 10: invalid \\u escape in string: lone low surrogate");
    ASSERT_PARSE_ERR("lang = \"\\ud83dx\"", RAG_EPARSE,
                     "filter: position 8: invalid \\u escape in string: high surrogate not "
                     "followed by a \\u low surrogate");
    ASSERT_PARSE_ERR("year = 12abc", RAG_EPARSE, "filter: position 7: malformed number '12abc'");
    ASSERT_PARSE_ERR("year = 1.2.3", RAG_EPARSE, "filter: position 7: malformed number '1.2.3'");
    ASSERT_PARSE_ERR("year = 1.", RAG_EPARSE, "filter: position 7: malformed number '1.'");
    ASSERT_PARSE_ERR("year = 1e", RAG_EPARSE, "filter: position 7: malformed number '1e'");
    ASSERT_PARSE_ERR("year = -", RAG_EPARSE, "filter: position 7: malformed number '-'");
    ASSERT_PARSE_ERR("year = 2026-01-01", RAG_EPARSE,
                     "filter: position 7: malformed number '2026-01-01'");
    ASSERT_PARSE_ERR("year = 1e999", RAG_EPARSE, "filter: position 7: number out of range '1e999'");
    ASSERT_PARSE_ERR("lang = \"en\" # c", RAG_EPARSE,
                     "filter: position 12: unexpected character '#'");
    ASSERT_PARSE_ERR("lang = \"en\" && x = 1", RAG_EPARSE,
                     "filter: position 12: unexpected character '&'");
    ASSERT_PARSE_ERR("!lang = \"en\"", RAG_EPARSE,
                     "filter: position 0: unexpected character '!' (did you mean '!=' or NOT?)");
    ASSERT_PARSE_ERR("source ^ \"x\"", RAG_EPARSE,
                     "filter: position 7: unexpected character '^' (did you mean '^='?)");
    ASSERT_PARSE_ERR("lang = \xe2\x80\x9c" "en\xe2\x80\x9d", RAG_EPARSE,
                     "filter: position 7: unexpected byte 0xE2");
    /* long tokens are shortened in messages */
    ASSERT_PARSE_ERR("lang \"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\"", RAG_EPARSE,
                     "filter: position 5: expected an operator (=, !=, <, <=, >, >=, IN, NOT IN, "
                     "BETWEEN, PREFIX, ^=) after 'lang', found '\"aaaaaaaaaaaaaaaaaaaaaaa...'");
    /* NULL arguments */
    rag_filter *f = NULL;
    ASSERT_EQ_INT(rag_filter_parse(NULL, 0, &f), RAG_EINVAL);
    ASSERT_EQ_INT(rag_filter_parse("a = 1", 0, NULL), RAG_EINVAL);
}

static void test_nesting_limit(void)
{
    char expr[4096];
    rag_filter *f = NULL;
    rag_filter_doc d = make_doc();
    /* depth 3 = two levels of parentheses around a comparison */
    ASSERT_OK(rag_filter_parse("((lang = \"en\"))", 3, &f));
    ASSERT_EQ_INT(rag_filter_match(f, &d), 1);
    rag_filter_free(f);
    f = (rag_filter *)1;
    ASSERT_EQ_INT(rag_filter_parse("(((lang = \"en\")))", 3, &f), RAG_EINVAL);
    ASSERT_TRUE(f == NULL);
    ASSERT_STR_EQ(rag_errmsg(), "filter: position 2: nesting deeper than the limit of 3 levels");
    ASSERT_EQ_INT(rag_filter_parse("NOT NOT NOT lang = \"en\"", 3, &f), RAG_EINVAL);
    ASSERT_STR_EQ(rag_errmsg(), "filter: position 8: nesting deeper than the limit of 3 levels");
    ASSERT_OK(rag_filter_parse("NOT (lang = \"en\")", 3, &f));
    rag_filter_free(f);
    /* AND / OR chains and sibling groups do not nest */
    ASSERT_OK(rag_filter_parse("(a = 1) AND (b = 1) OR (c = 1) AND NOT d = 1", 2, &f));
    rag_filter_free(f);
    ASSERT_OK(rag_filter_parse("a = 1 AND b = 1 OR c = 1", 1, &f));
    rag_filter_free(f);
    ASSERT_EQ_INT(rag_filter_parse("(a = 1)", 1, &f), RAG_EINVAL);
    /* the default (0) is 32 levels */
    size_t n = 0;
    for (int i = 0; i < 31; i++)
        expr[n++] = '(';
    n += (size_t)snprintf(expr + n, sizeof expr - n, "lang = \"en\"");
    for (int i = 0; i < 31; i++)
        expr[n++] = ')';
    expr[n] = '\0';
    ASSERT_OK(rag_filter_parse(expr, 0, &f));
    ASSERT_EQ_INT(rag_filter_match(f, &d), 1);
    rag_filter_free(f);
    memmove(expr + 1, expr, n + 1);
    expr[0] = '(';
    strcat(expr, ")");
    ASSERT_EQ_INT(rag_filter_parse(expr, 0, &f), RAG_EINVAL);
    ASSERT_STR_EQ(rag_errmsg(), "filter: position 31: nesting deeper than the limit of 32 levels");
    /* a very deep input is refused without deep recursion */
    char *deep = malloc(200001);
    memset(deep, '(', 200000);
    deep[200000] = '\0';
    ASSERT_EQ_INT(rag_filter_parse(deep, 1024, &f), RAG_EINVAL);
    memset(deep, ' ', 200000);
    for (int i = 0; i < 50000; i++)
        memcpy(deep + 4 * i, "NOT ", 4);
    ASSERT_EQ_INT(rag_filter_parse(deep, 0, &f), RAG_EINVAL);
    free(deep);
    ASSERT_EQ_INT(rag_filter_parse("a = 1", -1, &f), RAG_EINVAL);
    ASSERT_EQ_INT(rag_filter_parse("a = 1", 1025, &f), RAG_EINVAL);
    ASSERT_STR_EQ(rag_errmsg(), "filter: max_depth 1025 is outside 0..1024");
}

static void test_fields_and_doc_ids(void)
{
    rag_filter *f = NULL;
    size_t n = 99;
    ASSERT_OK(rag_filter_parse("doc_id = \"a\" AND source ^= \"/\" AND ingested_at > 0", 0, &f));
    ASSERT_EQ_INT(rag_filter_fields(f), RAG_FILTER_FIELD_DOC_ID | RAG_FILTER_FIELD_SOURCE |
                                            RAG_FILTER_FIELD_INGESTED_AT);
    const char *const *ids = rag_filter_doc_ids(f, &n);
    ASSERT_EQ_INT(n, 1);
    ASSERT_TRUE(ids && n == 1 && strcmp(ids[0], "a") == 0);
    rag_filter_free(f);

    ASSERT_OK(rag_filter_parse("tags = \"x\" OR EXISTS title OR source_mtime > 0 OR "
                               "updated_at > 0 OR metadata.doc_id = \"a\"", 0, &f));
    ASSERT_EQ_INT(rag_filter_fields(f), RAG_FILTER_FIELD_METADATA | RAG_FILTER_FIELD_TITLE |
                                            RAG_FILTER_FIELD_SOURCE_MTIME |
                                            RAG_FILTER_FIELD_UPDATED_AT);
    ASSERT_TRUE(rag_filter_doc_ids(f, &n) == NULL);
    ASSERT_EQ_INT(n, 0);
    rag_filter_free(f);

    /* union over OR, deduplicated and sorted */
    ASSERT_OK(rag_filter_parse("doc_id IN (\"c\", \"a\", \"c\") OR (doc_id = \"b\" AND x = 1)",
                               0, &f));
    ids = rag_filter_doc_ids(f, &n);
    ASSERT_EQ_INT(n, 3);
    ASSERT_TRUE(ids && n == 3 && !strcmp(ids[0], "a") && !strcmp(ids[1], "b") &&
                !strcmp(ids[2], "c"));
    rag_filter_free(f);
    /* intersection over AND; an empty set means nothing can match */
    ASSERT_OK(rag_filter_parse("doc_id IN (\"a\", \"b\") AND doc_id IN (\"b\", \"c\")", 0, &f));
    ids = rag_filter_doc_ids(f, &n);
    ASSERT_TRUE(ids && n == 1 && !strcmp(ids[0], "b"));
    rag_filter_free(f);
    ASSERT_OK(rag_filter_parse("doc_id = \"a\" AND doc_id = \"b\"", 0, &f));
    ASSERT_TRUE(rag_filter_doc_ids(f, &n) != NULL);
    ASSERT_EQ_INT(n, 0);
    rag_filter_free(f);
    /* unbounded: an OR with an unconstrained side, NOT, != */
    const char *unb[] = {"doc_id = \"a\" OR x = 1", "NOT doc_id = \"a\"", "doc_id != \"a\"",
                         "doc_id NOT IN (\"a\")", "doc_id PREFIX \"a\"", "doc_id > \"a\""};
    for (size_t i = 0; i < sizeof unb / sizeof *unb; i++) {
        ASSERT_OK(rag_filter_parse(unb[i], 0, &f));
        ASSERT_TRUE(rag_filter_doc_ids(f, &n) == NULL);
        rag_filter_free(f);
    }
    rag_filter_free(NULL);
    ASSERT_EQ_INT(rag_filter_fields(NULL), 0);
}

#if defined(__SANITIZE_ADDRESS__)
#define SANITIZED 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define SANITIZED 1
#endif
#endif
#ifndef SANITIZED
#define SANITIZED 0
#endif

static double seconds_since(const struct timespec *t0)
{
    struct timespec t1;
    clock_gettime(CLOCK_MONOTONIC, &t1);
    return (double)(t1.tv_sec - t0->tv_sec) + (double)(t1.tv_nsec - t0->tv_nsec) * 1e-9;
}

/* Matches filters over 100k documents, as a filtered search's planner would: checks the
 * counts against a direct computation and bounds the time, absolutely and relative to
 * the bare jansson parse of the same metadata (the floor for a metadata filter). */
static void test_performance(void)
{
    enum { N = 100000 };
    char **metas = malloc(N * sizeof *metas);
    char **ids = malloc(N * sizeof *ids);
    const char *langs[] = {"en", "de", "fr", "es"};
    int want0 = 0;
    for (int i = 0; i < N; i++) {
        char buf[512], name[16];
        snprintf(buf, sizeof buf,
                 "{\"lang\":\"%s\",\"year\":%d,\"tags\":[\"t%d\",\"t%d\",\"common\"],"
                 "\"author\":{\"name\":\"author %d\",\"org\":\"org %d\"},"
                 "\"score\":%d.%d,\"title\":\"A fairly ordinary document title number %d\"}",
                 langs[i % 4], 2000 + i % 25, i % 97, i % 13, i % 1000, i % 50, i % 10, i % 7, i);
        metas[i] = strdup(buf);
        snprintf(buf, sizeof buf, "doc-%06d", i);
        ids[i] = strdup(buf);
        snprintf(name, sizeof name, "%d", i % 1000);
        int y = 2000 + i % 25;
        want0 += (i % 4 < 2) && y >= 2010 && y <= 2014 && i % 97 != 5 && i % 13 != 5 &&
                 name[0] == '1';
    }
    struct timespec t0;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    size_t keys = 0;
    for (int i = 0; i < N; i++) {
        json_t *j = json_loads(metas[i], 0, NULL);
        keys += json_object_size(j);
        json_decref(j);
    }
    double bare = seconds_since(&t0);
    ASSERT_EQ_INT(keys, 6 * N);
    fprintf(stderr, "  %d docs: bare json_loads %.3f s (%.2f us/doc)\n", N, bare, bare * 1e6 / N);
    struct { const char *expr; int expect; int reads_meta; } cases[] = {
        {"lang IN (\"en\", \"de\") AND year BETWEEN 2010 AND 2014 AND NOT tags = \"t5\" AND "
         "author.name PREFIX \"author 1\"", want0, 1},
        /* built-ins decide first, so the metadata is parsed for one document only */
        {"tags = \"common\" AND doc_id = \"doc-000042\"", 1, 0},
        {"source PREFIX \"/docs/\" AND ingested_at >= \"2026-01-01\"", N / 2, 0},
    };
    for (size_t c = 0; c < sizeof cases / sizeof *cases; c++) {
        rag_filter *f = NULL;
        ASSERT_OK(rag_filter_parse(cases[c].expr, 0, &f));
        clock_gettime(CLOCK_MONOTONIC, &t0);
        int hits = 0;
        for (int i = 0; i < N; i++) {
            rag_filter_doc d = {ids[i], i % 2 ? "/docs/a.md" : "/blog/b.md", "t", metas[i],
                                1767225600, 1767225600 + i, 0};
            hits += rag_filter_match(f, &d);
        }
        double s = seconds_since(&t0);
        fprintf(stderr, "  %d docs, filter %zu: %d matches in %.3f s (%.2f us/doc)\n", N, c, hits,
                s, s * 1e6 / N);
        ASSERT_EQ_INT(hits, cases[c].expect);
        ASSERT_TRUE(hits > 0);
        /* a sanity bound that holds on a busy machine; sanitizers slow malloc several-fold */
        ASSERT_TRUE(s < (SANITIZED ? 120.0 : 30.0));
        if (cases[c].reads_meta)
            ASSERT_TRUE(s < 2.0 * bare + 0.1); /* evaluation adds little to the parse */
        else
            ASSERT_TRUE(s < 0.2 * bare + 0.02); /* no parse at all */
        rag_filter_free(f);
    }
    for (int i = 0; i < N; i++) {
        free(metas[i]);
        free(ids[i]);
    }
    free(metas);
    free(ids);
}

typedef struct shared_job {
    const rag_filter *f;
    int hits;
} shared_job;

static void *match_worker(void *arg)
{
    shared_job *j = arg;
    rag_filter_doc d = make_doc();
    for (int i = 0; i < 20000; i++) {
        d.source_mtime = i % 3 ? 1767225600 : 1;
        j->hits += rag_filter_match(j->f, &d);
    }
    return NULL;
}

static void test_shared_between_threads(void)
{
    rag_filter *f = NULL;
    ASSERT_OK(rag_filter_parse("tags = \"ml\" AND source_mtime >= \"2026-01-01\"", 0, &f));
    shared_job jobs[4];
    pthread_t th[4];
    for (int i = 0; i < 4; i++) {
        jobs[i].f = f;
        jobs[i].hits = 0;
        ASSERT_EQ_INT(pthread_create(&th[i], NULL, match_worker, &jobs[i]), 0);
    }
    for (int i = 0; i < 4; i++) {
        pthread_join(th[i], NULL);
        ASSERT_EQ_INT(jobs[i].hits, 13333);
    }
    rag_filter_free(f);
}

int main(void)
{
    RUN_TEST(test_equality_and_inequality);
    RUN_TEST(test_in_lists);
    RUN_TEST(test_ranges);
    RUN_TEST(test_builtin_fields);
    RUN_TEST(test_dates);
    RUN_TEST(test_precedence_and_logic);
    RUN_TEST(test_exists);
    RUN_TEST(test_paths_and_arrays);
    RUN_TEST(test_escapes);
    RUN_TEST(test_type_mismatches);
    RUN_TEST(test_missing_fields_and_metadata);
    RUN_TEST(test_syntax_errors);
    RUN_TEST(test_nesting_limit);
    RUN_TEST(test_fields_and_doc_ids);
    RUN_TEST(test_performance);
    RUN_TEST(test_shared_between_threads);
    return TEST_REPORT();
}
