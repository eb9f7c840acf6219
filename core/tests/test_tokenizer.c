/* test_tokenizer.c - WordPiece rules on a tiny vocabulary, and exact ids against the reference. */
#include "model_registry.h"
#include "ragcore.h"
#include "test.h"
#include "tokenizer.h"

#include <jansson.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static char tmpdir[1024];

static void write_file(const char *path, const char *text)
{
    FILE *f = fopen(path, "wb");
    fputs(text, f);
    fclose(f);
}

static rag_tokenizer *tiny(int max_len)
{
    char path[1200];
    snprintf(path, sizeof path, "%s/tok_vocab.txt", tmpdir);
    /* ids: 0 [PAD] 1 [UNK] 2 [CLS] 3 [SEP] 4 [MASK] 5 un 6 ##aff 7 ##able 8 aff 9 ! 10 , 11 cafe
     *      12 ##s 13 a 14 ##a 15 中 16 hello 17 unaff */
    write_file(path, "[PAD]\n[UNK]\n[CLS]\n[SEP]\n[MASK]\nun\n##aff\n##able\naff\n!\n,\ncafe\n##s\n"
                     "a\n##a\n中\nhello\nunaff\n");
    rag_tokenizer *t = NULL;
    ASSERT_OK(rag_tokenizer_load_vocab(path, 1, max_len, &t));
    return t;
}

static int enc(rag_tokenizer *t, const char *s, int32_t *ids, int cap)
{
    return rag_tokenizer_encode(t, s, strlen(s), ids, cap);
}

static void test_wordpiece_rules(void)
{
    rag_tokenizer *t = tiny(512);
    if (!t)
        return;
    int32_t ids[64];
    int n = enc(t, "unaffable", ids, 64); /* longest match first: unaff + ##able */
    ASSERT_EQ_INT(n, 4);
    ASSERT_EQ_INT(ids[0], 2);
    ASSERT_EQ_INT(ids[1], 17);
    ASSERT_EQ_INT(ids[2], 7);
    ASSERT_EQ_INT(ids[3], 3);
    n = enc(t, "UNAFF, Hello!", ids, 64); /* lowercase, punctuation split */
    ASSERT_EQ_INT(n, 6);
    ASSERT_EQ_INT(ids[1], 17);
    ASSERT_EQ_INT(ids[2], 10);
    ASSERT_EQ_INT(ids[3], 16);
    ASSERT_EQ_INT(ids[4], 9);
    n = enc(t, "Cafés", ids, 64); /* accent stripped: cafe + ##s */
    ASSERT_EQ_INT(n, 4);
    ASSERT_EQ_INT(ids[1], 11);
    ASSERT_EQ_INT(ids[2], 12);
    n = enc(t, "unx hello", ids, 64); /* unmatchable piece: the whole word is [UNK] */
    ASSERT_EQ_INT(n, 4);
    ASSERT_EQ_INT(ids[1], 1);
    ASSERT_EQ_INT(ids[2], 16);
    char longw[102];
    memset(longw, 'a', 101);
    longw[101] = '\0';
    n = enc(t, longw, ids, 64); /* over 100 characters: [UNK] */
    ASSERT_EQ_INT(n, 3);
    ASSERT_EQ_INT(ids[1], 1);
    longw[100] = '\0'; /* exactly 100: a ##a ##a ... */
    n = rag_tokenizer_count(t, longw, 100);
    ASSERT_EQ_INT(n, 102);
    n = enc(t, "x中x", ids, 64); /* CJK split out */
    ASSERT_EQ_INT(n, 5);
    ASSERT_EQ_INT(ids[2], 15);
    n = enc(t, "hello [MASK]hello\x01\xff", ids, 64); /* literal special token; control + bad byte dropped */
    ASSERT_EQ_INT(n, 5);
    ASSERT_EQ_INT(ids[2], 4);
    ASSERT_EQ_INT(ids[3], 16);
    n = enc(t, "", ids, 64);
    ASSERT_EQ_INT(n, 2);
    n = enc(t, "hello hello hello hello hello", ids, 4); /* truncation keeps [SEP] */
    ASSERT_EQ_INT(n, 4);
    ASSERT_EQ_INT(ids[3], 3);
    ASSERT_EQ_INT(rag_tokenizer_count(t, "hello hello hello hello hello", 29), 7);
    ASSERT_EQ_INT(enc(t, "hello", ids, 1), RAG_EINVAL);
    ASSERT_STR_EQ(rag_tokenizer_token(t, 6), "##aff");
    ASSERT_EQ_INT(rag_tokenizer_id(t, "cafe"), 11);
    rag_tokenizer_free(t);
    t = tiny(3); /* the tokenizer's own max length */
    if (t) {
        ASSERT_EQ_INT(enc(t, "hello hello", ids, 64), 3);
        rag_tokenizer_free(t);
    }
}

static void test_bad_vocab(void)
{
    char path[1200];
    rag_tokenizer *t = NULL;
    snprintf(path, sizeof path, "%s/tok_bad1.txt", tmpdir);
    write_file(path, "[PAD]\n[UNK]\n[CLS]\nhello\n");
    ASSERT_EQ_INT(rag_tokenizer_load_vocab(path, 1, 16, &t), RAG_EINVAL);
    ASSERT_TRUE(strstr(rag_errmsg(), "[SEP]") != NULL);
    snprintf(path, sizeof path, "%s/tok_bad2.txt", tmpdir);
    write_file(path, "[UNK]\n[CLS]\n\n[SEP]\n");
    ASSERT_EQ_INT(rag_tokenizer_load_vocab(path, 1, 16, &t), RAG_EPARSE);
    ASSERT_TRUE(strstr(rag_errmsg(), "line 3") != NULL);
    ASSERT_EQ_INT(rag_tokenizer_load_vocab("/nonexistent/vocab.txt", 1, 16, &t), RAG_ENOTFOUND);
    ASSERT_TRUE(t == NULL);
}

/* Every fixture string gives exactly the reference ids, at both max lengths, from vocab.txt
 * and from tokenizer.json. */
static void check_fixtures(rag_tokenizer *t256, rag_tokenizer *t512, const char *what)
{
    char path[1200];
    snprintf(path, sizeof path, "%s/tokenizer_cases.json", getenv("RAGCORE_TEST_DATA"));
    json_error_t err;
    json_t *root = json_load_file(path, JSON_ALLOW_NUL, &err);
    if (!root)
        TEST_FAIL_("%s: %s", path, err.text);
    if (!root)
        return;
    json_t *cases = json_object_get(root, "cases");
    ASSERT_TRUE(json_array_size(cases) >= 200);
    size_t i, agree = 0, total = 0;
    json_t *c;
    int32_t ids[600];
    json_array_foreach(cases, i, c)
    {
        const char *text = json_string_value(json_object_get(c, "text"));
        size_t len = json_string_length(json_object_get(c, "text"));
        for (int k = 0; k < 2; k++) {
            json_t *want = json_object_get(c, k ? "ids_512" : "ids_256");
            int n = rag_tokenizer_encode(k ? t512 : t256, text, len, ids, 600);
            int same = n == (int)json_array_size(want);
            for (int j = 0; same && j < n; j++)
                same = ids[j] == json_integer_value(json_array_get(want, (size_t)j));
            total++;
            agree += same;
            if (!same) {
                TEST_FAIL_("%s: case %zu (max %d) differs: got %d ids, want %zu", what, i,
                           k ? 512 : 256, n, json_array_size(want));
            }
            if (!k && (json_array_size(want) < 256 || !same)) {
                int cnt = rag_tokenizer_count(t256, text, len);
                if (json_array_size(want) < 256)
                    ASSERT_EQ_INT(cnt, (long long)json_array_size(want));
            }
        }
    }
    fprintf(stderr, "%s: %zu/%zu fixture encodings identical\n", what, agree, total);
    json_decref(root);
}

static void test_reference_ids(void)
{
    char *dir = NULL;
    ASSERT_OK(rag_model_pull("all-MiniLM-L6-v2", 0, &dir));
    if (!dir)
        return;
    rag_tokenizer *a = NULL, *b = NULL;
    ASSERT_OK(rag_tokenizer_load(dir, 256, &a));
    ASSERT_OK(rag_tokenizer_load(dir, 512, &b));
    if (a && b) {
        ASSERT_EQ_INT(rag_tokenizer_vocab_size(a), 30522);
        check_fixtures(a, b, "vocab.txt");
    }
    rag_tokenizer_free(a);
    rag_tokenizer_free(b);
    /* The same vocabulary read from tokenizer.json alone. */
    char sub[1200], cmd[4200];
    snprintf(sub, sizeof sub, "%s/tokjson", tmpdir);
    snprintf(cmd, sizeof cmd, "rm -rf '%s' && mkdir -p '%s' && cp '%s/tokenizer.json' '%s/'", sub,
             sub, dir, sub);
    ASSERT_EQ_INT(system(cmd), 0);
    a = b = NULL;
    ASSERT_OK(rag_tokenizer_load(sub, 256, &a));
    ASSERT_OK(rag_tokenizer_load(sub, 512, &b));
    if (a && b)
        check_fixtures(a, b, "tokenizer.json");
    rag_tokenizer_free(a);
    rag_tokenizer_free(b);
    free(dir);
}

int main(void)
{
    snprintf(tmpdir, sizeof tmpdir, "%s", getenv("RAGCORE_TEST_TMP") ? getenv("RAGCORE_TEST_TMP")
                                                                      : "/tmp");
    RUN_TEST(test_wordpiece_rules);
    RUN_TEST(test_bad_vocab);
    RUN_TEST(test_reference_ids);
    return TEST_REPORT();
}
