/* test_quality.c - chunk quality verdicts and boilerplate-line removal across documents. */
#include "quality.h"
#include "status.h"
#include "test.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void test_verdicts(void)
{
    rag_quality_config c;
    rag_quality_config_init(&c);
    c.min_chars = 10;
    c.max_chars = 60;
    rag_quality_stats st;
    memset(&st, 0, sizeof st);
    const char *ok = "  A normal sentence with words.  \n";
    ASSERT_EQ_INT(rag_quality_check(&c, ok, strlen(ok), &st), RAG_QUALITY_OK);
    /* 9 characters once surrounding whitespace is removed */
    ASSERT_EQ_INT(rag_quality_check(&c, "   too short   ", 15, &st), RAG_QUALITY_TOO_SHORT);
    ASSERT_EQ_INT(rag_quality_check(&c, "exactly10!", 10, &st), RAG_QUALITY_OK);
    char longtext[100];
    memset(longtext, 'a', 61);
    ASSERT_EQ_INT(rag_quality_check(&c, longtext, 61, &st), RAG_QUALITY_TOO_LONG);
    ASSERT_EQ_INT(rag_quality_check(&c, longtext, 60, &st), RAG_QUALITY_OK);
    const char *table = "|---|---|---|\n|:-:|:--|--:|";
    ASSERT_EQ_INT(rag_quality_check(&c, table, strlen(table), &st), RAG_QUALITY_SYMBOLS);
    const char *code = "}}]); }); }; ?>";
    ASSERT_EQ_INT(rag_quality_check(&c, code, strlen(code), &st), RAG_QUALITY_SYMBOLS);
    /* letters of any script count as letters; multi-byte characters count once */
    const char *ja = "\xe6\x97\xa5\xe6\x9c\xac\xe8\xaa\x9e\xe3\x81\xae\xe6\x96\x87\xe7\xab\xa0"
                     "\xe3\x81\xa7\xe3\x81\x99\xe3\x80\x82\xe6\x97\xa5\xe6\x9c\xac"; /* 12 chars */
    ASSERT_EQ_INT(rag_quality_check(&c, ja, strlen(ja), &st), RAG_QUALITY_OK);
    ASSERT_EQ_INT(rag_quality_check(&c, ja, 9 * 3, &st), RAG_QUALITY_TOO_SHORT); /* 9 chars */
    ASSERT_EQ_INT(st.checked, 9);
    ASSERT_EQ_INT(st.verdicts[RAG_QUALITY_OK], 4);
    ASSERT_EQ_INT(st.verdicts[RAG_QUALITY_TOO_SHORT], 2);
    ASSERT_EQ_INT(st.verdicts[RAG_QUALITY_TOO_LONG], 1);
    ASSERT_EQ_INT(st.verdicts[RAG_QUALITY_SYMBOLS], 2);

    /* each filter can be switched off */
    c.min_chars = 0;
    c.max_chars = 0;
    c.max_symbol_ratio = 1.0;
    ASSERT_EQ_INT(rag_quality_check(&c, table, strlen(table), NULL), RAG_QUALITY_OK);
    ASSERT_EQ_INT(rag_quality_check(&c, "x", 1, NULL), RAG_QUALITY_OK);
    ASSERT_STR_EQ(rag_quality_verdict_name(RAG_QUALITY_SYMBOLS), "symbols");

    ASSERT_OK(rag_quality_config_check(&c));
    c.max_symbol_ratio = 1.5;
    ASSERT_EQ_INT(rag_quality_config_check(&c), RAG_EINVAL);
    ASSERT_TRUE(strstr(rag_errmsg(), "max_symbol_ratio") != NULL);
    rag_quality_config_init(&c);
    c.min_chars = 100;
    c.max_chars = 50;
    ASSERT_EQ_INT(rag_quality_config_check(&c), RAG_EINVAL);
    ASSERT_TRUE(strstr(rag_errmsg(), "max_chars") != NULL);
}

static void test_boilerplate(void)
{
    rag_boilerplate *b = NULL;
    ASSERT_OK(rag_boilerplate_create(&b));
    if (!b)
        return;
    enum { NDOCS = 20 };
    char *docs[NDOCS];
    for (int d = 0; d < NDOCS; d++) {
        docs[d] = malloc(1024);
        snprintf(docs[d], 1024,
                 "Home | Products | About us\n"
                 "%s"
                 "Article number %d talks about topic %d.\n"
                 "\n"
                 "%s"
                 "----\n"
                 "  Copyright 2024   EXAMPLE Corp. All rights reserved. \n",
                 d % 2 ? "Sponsored: buy widgets today\n" : "",
                 d, d * 7, d < 2 ? "A line shared by two documents only.\n" : "");
        ASSERT_OK(rag_boilerplate_add(b, docs[d], strlen(docs[d])));
    }
    ASSERT_EQ_INT(rag_boilerplate_docs(b), NDOCS);

    rag_quality_config c;
    rag_quality_config_init(&c);
    rag_quality_stats st;
    memset(&st, 0, sizeof st);
    char *out = NULL;
    size_t out_len = 0;
    /* doc 1: header, sponsored line (10/20 docs = 0.5) and footer (case/space variants) go;
     * the shared-by-two line stays (below min docs), "----" stays (no letters) */
    ASSERT_OK(rag_boilerplate_strip(b, &c, docs[1], strlen(docs[1]), &out, &out_len, &st));
    ASSERT_STR_EQ(out, "Article number 1 talks about topic 7.\n\nA line shared by two documents "
                       "only.\n----\n");
    ASSERT_EQ_INT(out_len, out ? strlen(out) : 0);
    ASSERT_EQ_INT(st.boilerplate_lines, 3);
    ASSERT_EQ_INT(st.boilerplate_bytes, strlen(docs[1]) - out_len);
    rag_free(out);

    /* a stricter share keeps the sponsored line (in half of the documents) */
    c.boilerplate_doc_frac = 0.8;
    ASSERT_OK(rag_boilerplate_strip(b, &c, docs[1], strlen(docs[1]), &out, &out_len, &st));
    ASSERT_TRUE(out && strstr(out, "Sponsored") != NULL && strstr(out, "Home") == NULL);
    ASSERT_EQ_INT(st.boilerplate_lines, 5);
    rag_free(out);

    /* a text that was never added: only lines counted elsewhere are removed; no final
     * newline is needed */
    const char *fresh = "Fresh content\nHOME | products | about us";
    ASSERT_OK(rag_boilerplate_strip(b, NULL, fresh, strlen(fresh), &out, &out_len, NULL));
    ASSERT_STR_EQ(out, "Fresh content\n");
    rag_free(out);

    /* too few documents: nothing is boilerplate */
    rag_boilerplate *small = NULL;
    ASSERT_OK(rag_boilerplate_create(&small));
    ASSERT_OK(rag_boilerplate_add(small, docs[0], strlen(docs[0])));
    ASSERT_OK(rag_boilerplate_add(small, docs[2], strlen(docs[2])));
    ASSERT_OK(rag_boilerplate_strip(small, NULL, docs[0], strlen(docs[0]), &out, &out_len, NULL));
    ASSERT_STR_EQ(out, docs[0]);
    rag_free(out);
    rag_boilerplate_free(small);
    ASSERT_EQ_INT(rag_boilerplate_add(NULL, "x", 1), RAG_EINVAL);

    for (int d = 0; d < NDOCS; d++)
        free(docs[d]);
    rag_boilerplate_free(b);
    rag_boilerplate_free(NULL);
}

static void test_boilerplate_many_lines(void)
{
    /* enough distinct lines to force the table to grow several times */
    rag_boilerplate *b = NULL;
    ASSERT_OK(rag_boilerplate_create(&b));
    if (!b)
        return;
    char *doc = malloc(200000);
    for (int d = 0; d < 4; d++) {
        size_t n = 0;
        for (int l = 0; l < 5000; l++)
            n += (size_t)sprintf(doc + n, "line %d of doc %d\nshared line %d\n", l, d, l % 700);
        ASSERT_OK(rag_boilerplate_add(b, doc, n));
    }
    char *out = NULL;
    size_t out_len = 0;
    rag_quality_stats st;
    memset(&st, 0, sizeof st);
    ASSERT_OK(rag_boilerplate_strip(b, NULL, "shared line 5\nline 5 of doc 9\n", 30, &out,
                                    &out_len, &st));
    ASSERT_STR_EQ(out, "line 5 of doc 9\n");
    ASSERT_EQ_INT(st.boilerplate_lines, 1);
    rag_free(out);
    free(doc);
    rag_boilerplate_free(b);
}

int main(void)
{
    RUN_TEST(test_verdicts);
    RUN_TEST(test_boilerplate);
    RUN_TEST(test_boilerplate_many_lines);
    return TEST_REPORT();
}
