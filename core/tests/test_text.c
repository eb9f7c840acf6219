/* test_text.c - UTF-8 validation: offsets and line numbers of the first bad byte at every
 * position (the eight-byte ASCII path and the byte path alike), multibyte sequences. */
#include "test.h"

#include "text.h"

/* Builds a 40-byte ASCII text with a newline every 7 bytes, puts `bad` at position `at`
 * and checks the reported offset and line. */
static void check_bad_at(size_t at, const char *bad, size_t bad_len)
{
    char t[64];
    size_t lines_before = 1;
    for (size_t i = 0; i < 40; i++)
        t[i] = i % 7 == 6 ? '\n' : (char)('a' + i % 26);
    memcpy(t + at, bad, bad_len);
    for (size_t i = 0; i < at; i++)
        lines_before += t[i] == '\n';
    size_t off = 999, line = 999;
    ASSERT_EQ_INT(rag_utf8_valid(t, 40, &off, &line), 0);
    ASSERT_EQ_INT(off, at);
    ASSERT_EQ_INT(line, lines_before);
    /* the same text cut just before the bad byte is valid */
    ASSERT_EQ_INT(rag_utf8_valid(t, at, NULL, NULL), 1);
}

static void test_bad_byte_everywhere(void)
{
    for (size_t at = 0; at + 2 <= 40; at++) {
        check_bad_at(at, "\0", 1);      /* NUL */
        check_bad_at(at, "\xff", 1);    /* never in UTF-8 */
        check_bad_at(at, "\xc3(", 2);   /* lead byte without its continuation */
        check_bad_at(at, "\x80", 1);    /* continuation without a lead */
        check_bad_at(at, "\xc0\xaf", 2); /* overlong '/' */
    }
}

static void test_valid_texts(void)
{
    const char *ok[] = {"", "a", "plain ascii text longer than eight bytes\n",
                        "caf\xc3\xa9 na\xc3\xafve \xe2\x82\xac 12 \xf0\x9f\x98\x80 end",
                        "\xe6\x97\xa5\xe6\x9c\xac\xe8\xaa\x9e\xe3\x81\xae\xe6\x96\x87"};
    for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++)
        ASSERT_EQ_INT(rag_utf8_valid(ok[i], strlen(ok[i]), NULL, NULL), 1);
    /* a multibyte character cut at the end of the text */
    const char *cut = "0123456789\xe2\x82";
    size_t off = 0, line = 0;
    ASSERT_EQ_INT(rag_utf8_valid(cut, strlen(cut), &off, &line), 0);
    ASSERT_EQ_INT(off, 10);
    ASSERT_EQ_INT(line, 1);
    /* a surrogate encoded in UTF-8 after 17 ASCII bytes on line 3 */
    const char *sur = "ab\ncd\nefghijklmno\xed\xa0\x80";
    ASSERT_EQ_INT(rag_utf8_valid(sur, strlen(sur), &off, &line), 0);
    ASSERT_EQ_INT(off, 17);
    ASSERT_EQ_INT(line, 3);
}

/* The normalised-text hash is XXH3 of the case-folded text with whitespace runs collapsed,
 * by the ASCII path and the Unicode path alike (stored hashes depend on it). */
static void test_norm_hash(void)
{
    const char *a = "  Hello\t WORLD \n\n x ";
    ASSERT_EQ_INT(rag_text_norm_hash(a, strlen(a)), rag_hash_bytes("hello world x", 13));
    const char *u = "H\xc3\x89llo  WORLD"; /* "HÉllo  WORLD" */
    ASSERT_EQ_INT(rag_text_norm_hash(u, strlen(u)), rag_hash_bytes("h\xc3\xa9llo world", 12));
}

int main(void)
{
    RUN_TEST(test_bad_byte_everywhere);
    RUN_TEST(test_valid_texts);
    RUN_TEST(test_norm_hash);
    return TEST_REPORT();
}
