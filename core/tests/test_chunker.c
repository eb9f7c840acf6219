/* test_chunker.c - tests of the recursive, Markdown-aware chunker (core/chunker.c). */
#include "chunker.h"
#include "ragcore.h"
#include "status.h"
#include "test.h"

#include <stdint.h>

/* ---- helpers ---------------------------------------------------------------------- */

static int is_ws(unsigned char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f';
}

/* Independent UTF-8 validator (no utf8proc): 1 when s[0, n) is well-formed. */
static int valid_utf8(const unsigned char *s, size_t n)
{
    size_t i = 0;
    while (i < n) {
        unsigned char c = s[i];
        size_t k;
        uint32_t cp;
        if (c < 0x80) { i++; continue; }
        else if ((c & 0xE0) == 0xC0) { k = 1; cp = c & 0x1F; }
        else if ((c & 0xF0) == 0xE0) { k = 2; cp = c & 0x0F; }
        else if ((c & 0xF8) == 0xF0) { k = 3; cp = c & 0x07; }
        else return 0;
        for (size_t j = 1; j <= k; j++) {
            if (i + j >= n || (s[i + j] & 0xC0) != 0x80) return 0;
            cp = (cp << 6) | (s[i + j] & 0x3F);
        }
        if ((k == 1 && cp < 0x80) || (k == 2 && cp < 0x800) || (k == 3 && cp < 0x10000) ||
            cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
            return 0;
        i += k + 1;
    }
    return 1;
}

static size_t utf8_cps(const char *s, size_t n)
{
    size_t k = 0;
    for (size_t i = 0; i < n; i++)
        k += ((unsigned char)s[i] & 0xC0) != 0x80;
    return k;
}

static char *span(const char *text, const rag_chunk *c)
{
    return rag_strndup(text + c->start, c->end - c->start);
}

/* Checks every invariant of a chunk list for `text`: spans in range and on code point
 * boundaries, valid UTF-8, trimmed, in order, token counts right and within the target
 * (a single code point may exceed it), and all non-whitespace bytes covered. Returns
 * the number of failed checks. */
static int check_chunks(const rag_chunker_config *cfg, const char *text, size_t len,
                        const rag_chunk_list *l)
{
    int before = test_failures_;
    rag_token_count_fn count = cfg->count ? cfg->count : rag_approx_tokens;
    size_t covered = 0; /* end of coverage so far */
    for (size_t i = 0; i < l->count; i++) {
        const rag_chunk *c = &l->items[i];
        ASSERT_TRUE(c->start < c->end && c->end <= len);
        if (!(c->start < c->end && c->end <= len))
            return test_failures_ - before;
        const unsigned char *u = (const unsigned char *)text;
        ASSERT_TRUE((u[c->start] & 0xC0) != 0x80);
        ASSERT_TRUE(c->end == len || (u[c->end] & 0xC0) != 0x80);
        ASSERT_TRUE(valid_utf8(u + c->start, c->end - c->start));
        ASSERT_TRUE(!is_ws(u[c->start]) && !is_ws(u[c->end - 1]));
        ASSERT_TRUE(c->heading_path != NULL);
        int tok = count(cfg->count_user, text + c->start, c->end - c->start);
        ASSERT_EQ_INT(c->tokens, tok);
        if (tok > cfg->target_tokens)
            ASSERT_EQ_INT(utf8_cps(text + c->start, c->end - c->start), 1);
        if (i > 0) {
            ASSERT_TRUE(c->start >= l->items[i - 1].start);
            ASSERT_TRUE(c->end > l->items[i - 1].end);
        }
        for (size_t k = covered; k < c->start; k++)
            if (!is_ws(u[k])) {
                TEST_FAIL_("non-whitespace byte %zu ('%c') not in any chunk", k, u[k]);
                break;
            }
        if (c->end > covered)
            covered = c->end;
    }
    for (size_t k = covered; k < len; k++)
        if (!is_ws((unsigned char)text[k])) {
            TEST_FAIL_("trailing byte %zu not in any chunk", k);
            break;
        }
    return test_failures_ - before;
}

static rag_chunker_config config(int target, int overlap, int markdown)
{
    rag_chunker_config c;
    memset(&c, 0, sizeof c);
    c.target_tokens = target;
    c.overlap_tokens = overlap;
    c.markdown = markdown;
    return c;
}

/* Deterministic prose: sentences of 4-14 words, paragraphs of 2-6 sentences. */
static char *make_prose(size_t min_bytes, int paragraphs, size_t *len_out)
{
    static const char *words[] = {"the", "retrieval", "core", "stores", "chunks", "with",
                                  "their", "vectors", "and", "answers", "queries", "quickly",
                                  "a", "document", "is", "split", "into", "pieces", "of",
                                  "text", "embedding", "index", "search", "ranked"};
    size_t cap = min_bytes + 256, n = 0;
    char *s = malloc(cap);
    uint32_t r = 12345;
    int sent = 0;
    while (n < min_bytes) {
        r = r * 1103515245u + 12345u;
        int nw = 4 + (int)((r >> 16) % 11);
        for (int w = 0; w < nw; w++) {
            r = r * 1103515245u + 12345u;
            const char *word = words[(r >> 16) % (sizeof words / sizeof *words)];
            size_t wl = strlen(word);
            if (n + wl + 4 >= cap) {
                cap *= 2;
                s = realloc(s, cap);
            }
            memcpy(s + n, word, wl);
            n += wl;
            s[n++] = w + 1 == nw ? '.' : ' ';
        }
        sent++;
        r = r * 1103515245u + 12345u;
        if (paragraphs && (r >> 16) % 4 == 0) {
            s[n++] = '\n';
            s[n++] = '\n';
        } else {
            s[n++] = ' ';
        }
    }
    s[n] = '\0';
    *len_out = n;
    return s;
}

/* ---- tests ------------------------------------------------------------------------ */

static void test_offsets_and_overlap(void)
{
    size_t len;
    char *text = make_prose(20000, 1, &len);
    rag_chunker_config cfg = config(64, 8, 0);
    rag_chunk_list l = {0};
    ASSERT_OK(rag_chunk_text(&cfg, text, len, &l));
    ASSERT_TRUE(l.count > 20);
    ASSERT_EQ_INT(check_chunks(&cfg, text, len, &l), 0);
    int with_overlap = 0;
    for (size_t i = 0; i + 1 < l.count; i++) {
        const rag_chunk *a = &l.items[i], *b = &l.items[i + 1];
        /* no tiny fragments: every chunk but the last is at least a third of the target */
        ASSERT_TRUE(a->tokens >= 64 / 3);
        ASSERT_TRUE(b->start < a->end);
        if (b->start < a->end) {
            int ov = rag_approx_tokens(NULL, text + b->start, a->end - b->start);
            ASSERT_TRUE(ov > 0 && ov <= 8);
            with_overlap++;
        }
    }
    ASSERT_EQ_INT(with_overlap, l.count - 1);
    rag_chunk_list_free(&l);
    ASSERT_TRUE(l.items == NULL && l.count == 0);

    /* without overlap, chunks are disjoint */
    cfg = config(64, 0, 0);
    ASSERT_OK(rag_chunk_text(&cfg, text, len, &l));
    ASSERT_EQ_INT(check_chunks(&cfg, text, len, &l), 0);
    for (size_t i = 0; i + 1 < l.count; i++)
        ASSERT_TRUE(l.items[i + 1].start > l.items[i].end);
    rag_chunk_list_free(&l);
    free(text);
}

static void test_sentence_and_paragraph_cuts(void)
{
    /* sentences of 6 tokens: with a target of 20 every chunk ends at a sentence end */
    const char *text = "One two three four five. Six seven eight nine ten. "
                       "Alpha beta gamma delta epsilon. Zeta eta theta iota kappa. "
                       "Red green blue cyan magenta. Left right up down around.";
    rag_chunker_config cfg = config(20, 0, 0);
    rag_chunk_list l = {0};
    ASSERT_OK(rag_chunk_text(&cfg, text, strlen(text), &l));
    ASSERT_EQ_INT(check_chunks(&cfg, text, strlen(text), &l), 0);
    ASSERT_EQ_INT(l.count, 2);
    for (size_t i = 0; i < l.count; i++)
        ASSERT_TRUE(text[l.items[i].end - 1] == '.');
    rag_chunk_list_free(&l);

    /* paragraphs of 12 tokens, target 30: two whole paragraphs per chunk */
    const char *paras = "aa bb cc dd ee ff gg hh ii jj kk ll\n\n"
                        "mm nn oo pp qq rr ss tt uu vv ww xx\n\n"
                        "yy zz ab cd ef gh ij kl mn op qr st\n\n"
                        "uv wx yz ba dc fe hg ji lk nm po rq";
    cfg = config(30, 0, 0);
    ASSERT_OK(rag_chunk_text(&cfg, paras, strlen(paras), &l));
    ASSERT_EQ_INT(check_chunks(&cfg, paras, strlen(paras), &l), 0);
    ASSERT_EQ_INT(l.count, 2);
    if (l.count == 2) {
        ASSERT_EQ_INT(l.items[0].start, 0);
        ASSERT_EQ_INT(l.items[0].end, strstr(paras, "\n\nyy") - paras);
        ASSERT_EQ_INT(l.items[1].start, strstr(paras, "yy") - paras);
        ASSERT_EQ_INT(l.items[0].tokens, 24);
    }
    rag_chunk_list_free(&l);

    /* small text fits in one chunk, trimmed */
    const char *small = "  \n Hello world.\n\nSecond paragraph here.  \n";
    cfg = config(100, 10, 1);
    ASSERT_OK(rag_chunk_text(&cfg, small, strlen(small), &l));
    ASSERT_EQ_INT(l.count, 1);
    if (l.count == 1) {
        char *s = span(small, &l.items[0]);
        ASSERT_STR_EQ(s, "Hello world.\n\nSecond paragraph here.");
        ASSERT_STR_EQ(l.items[0].heading_path, "");
        rag_free(s);
    }
    rag_chunk_list_free(&l);
}

static void test_small_pieces_merged(void)
{
    /* 200 one-word lines: lines are merged up to the target, not emitted one by one */
    char text[2000];
    size_t n = 0;
    for (int i = 0; i < 200; i++)
        n += (size_t)sprintf(text + n, "w%d\n", i);
    rag_chunker_config cfg = config(20, 0, 0);
    rag_chunk_list l = {0};
    ASSERT_OK(rag_chunk_text(&cfg, text, n, &l));
    ASSERT_EQ_INT(check_chunks(&cfg, text, n, &l), 0);
    ASSERT_EQ_INT(l.count, 10);
    for (size_t i = 0; i < l.count; i++)
        ASSERT_EQ_INT(l.items[i].tokens, 20);
    rag_chunk_list_free(&l);
}

static const char *MD =
    "Intro text.\n"
    "\n"
    "# Install\n"
    "\n"
    "Install intro.\n"
    "\n"
    "## Linux ##\n"
    "\n"
    "apt-get install foo\n"
    "\n"
    "```sh\n"
    "# not a heading\n"
    "make install\n"
    "```\n"
    "\n"
    "## macOS\n"
    "brew install foo\n"
    "\n"
    "Setext Title\n"
    "============\n"
    "\n"
    "body\n"
    "\n"
    "# Empty\n"
    "### Child\n"
    "child text\n"
    "~~~\n"
    "## also not a heading\n"
    "~~~\n"
    "Sub\n"
    "---\n"
    "sub text\n";

static void test_markdown_heading_paths(void)
{
    static const char *want_text[] = {
        "Intro text.",
        "# Install\n\nInstall intro.",
        "## Linux ##\n\napt-get install foo\n\n```sh\n# not a heading\nmake install\n```",
        "## macOS\nbrew install foo",
        "Setext Title\n============\n\nbody",
        "# Empty\n### Child\nchild text\n~~~\n## also not a heading\n~~~",
        "Sub\n---\nsub text",
    };
    static const char *want_path[] = {
        "", "Install", "Install > Linux", "Install > macOS", "Setext Title",
        "Empty > Child", "Empty > Sub",
    };
    size_t len = strlen(MD);
    rag_chunker_config cfg = config(200, 20, 1);
    rag_chunk_list l = {0};
    ASSERT_OK(rag_chunk_text(&cfg, MD, len, &l));
    ASSERT_EQ_INT(check_chunks(&cfg, MD, len, &l), 0);
    ASSERT_EQ_INT(l.count, 7);
    for (size_t i = 0; i < l.count && i < 7; i++) {
        char *s = span(MD, &l.items[i]);
        ASSERT_STR_EQ(s, want_text[i]);
        ASSERT_STR_EQ(l.items[i].heading_path, want_path[i]);
        rag_free(s);
    }
    rag_chunk_list_free(&l);

    /* markdown off: one chunk, no path */
    cfg.markdown = 0;
    ASSERT_OK(rag_chunk_text(&cfg, MD, len, &l));
    ASSERT_EQ_INT(l.count, 1);
    if (l.count == 1)
        ASSERT_STR_EQ(l.items[0].heading_path, "");
    rag_chunk_list_free(&l);

    /* small target: every chunk still carries its section's path; sections never mix */
    cfg = config(4, 1, 1);
    ASSERT_OK(rag_chunk_text(&cfg, MD, len, &l));
    ASSERT_EQ_INT(check_chunks(&cfg, MD, len, &l), 0);
    const char *linux_at = strstr(MD, "## Linux"), *macos_at = strstr(MD, "## macOS");
    int linux_chunks = 0;
    for (size_t i = 0; i < l.count; i++) {
        const rag_chunk *c = &l.items[i];
        if (c->start >= (size_t)(linux_at - MD) && c->end <= (size_t)(macos_at - MD)) {
            ASSERT_STR_EQ(c->heading_path, "Install > Linux");
            linux_chunks++;
        }
        ASSERT_TRUE(!(c->start < (size_t)(macos_at - MD) && c->end > (size_t)(macos_at - MD)));
    }
    ASSERT_TRUE(linux_chunks >= 4);
    rag_chunk_list_free(&l);
}

static void test_code_fence_kept_whole(void)
{
    /* 6 tokens of prose (below a third of the target) then a 30-token code block:
     * the block is not cut although the prose chunk stays small */
    const char *text = "See the example below now:\n\n"
                       "```c\n"
                       "int main(void)\n"
                       "{\n"
                       "\n"
                       "    return add(1, 2) + add(3, 4);\n"
                       "}\n"
                       "```\n"
                       "\n"
                       "That is all there is to it, and more words follow here.";
    size_t len = strlen(text);
    rag_chunker_config cfg = config(34, 4, 1);
    rag_chunk_list l = {0};
    ASSERT_OK(rag_chunk_text(&cfg, text, len, &l));
    ASSERT_EQ_INT(check_chunks(&cfg, text, len, &l), 0);
    const char *fs = strstr(text, "```c"), *fe = strstr(fs + 3, "```") + 3;
    int whole = 0;
    for (size_t i = 0; i < l.count; i++)
        if (l.items[i].start == (size_t)(fs - text) && l.items[i].end == (size_t)(fe - text))
            whole = 1;
    ASSERT_TRUE(whole);
    rag_chunk_list_free(&l);
}

static void test_utf8_boundaries(void)
{
    const char *unit = "héllo wörld 日本語のテキストです。次の文！ emoji 😀👍🏽 👨‍👩‍👧 Ωμέγα "
                       "naïve café«quoted»\n\n中文没有空格也能切分吗？可以。";
    char text[4096];
    size_t n = 0;
    for (int i = 0; i < 8; i++) {
        size_t ul = strlen(unit);
        memcpy(text + n, unit, ul);
        n += ul;
    }
    text[n] = '\0';
    int targets[] = {1, 2, 3, 5, 17};
    for (size_t t = 0; t < sizeof targets / sizeof *targets; t++) {
        for (int ov = 0; ov < 2 && ov < targets[t]; ov++) {
            for (int md = 0; md < 2; md++) {
                rag_chunker_config cfg = config(targets[t], ov, md);
                rag_chunk_list l = {0};
                ASSERT_OK(rag_chunk_text(&cfg, text, n, &l));
                ASSERT_TRUE(l.count > 0);
                if (check_chunks(&cfg, text, n, &l))
                    fprintf(stderr, "  (target %d overlap %d markdown %d)\n", targets[t], ov, md);
                rag_chunk_list_free(&l);
            }
        }
    }

    /* CJK without spaces: cut after 。 when a sentence end is available */
    const char *cjk = "我们今天去公园散步。天气很好，阳光明媚。孩子们在草地上玩耍。"
                      "老人们在树下下棋。大家都很开心。";
    rag_chunker_config cfg = config(12, 0, 0);
    rag_chunk_list l = {0};
    ASSERT_OK(rag_chunk_text(&cfg, cjk, strlen(cjk), &l));
    ASSERT_EQ_INT(check_chunks(&cfg, cjk, strlen(cjk), &l), 0);
    ASSERT_TRUE(l.count >= 3);
    for (size_t i = 0; i < l.count; i++) {
        const rag_chunk *c = &l.items[i];
        ASSERT_TRUE(c->end - c->start >= 3 && memcmp(cjk + c->end - 3, "。", 3) == 0);
    }
    rag_chunk_list_free(&l);
}

static void test_huge_word(void)
{
    size_t n = 10000;
    char *text = malloc(n + 1);
    memset(text, 'a', n);
    text[n] = '\0';
    rag_chunker_config cfg = config(16, 4, 0);
    rag_chunk_list l = {0};
    ASSERT_OK(rag_chunk_text(&cfg, text, n, &l));
    ASSERT_EQ_INT(check_chunks(&cfg, text, n, &l), 0);
    ASSERT_TRUE(l.count > 100);
    /* pieces are filled close to the target (the approximation counts ~4 letters a token) */
    for (size_t i = 0; i + 1 < l.count; i++)
        ASSERT_TRUE(l.items[i].tokens >= 15);
    rag_chunk_list_free(&l);
    free(text);

    /* a long emoji run with no spaces, and a long word inside prose */
    char buf[8192];
    size_t k = 0;
    k += (size_t)sprintf(buf, "before the word ");
    for (int i = 0; i < 500; i++)
        k += (size_t)sprintf(buf + k, "%s", i % 3 ? "😀" : "x");
    k += (size_t)sprintf(buf + k, " after the word.");
    cfg = config(7, 2, 1);
    ASSERT_OK(rag_chunk_text(&cfg, buf, k, &l));
    ASSERT_EQ_INT(check_chunks(&cfg, buf, k, &l), 0);
    ASSERT_TRUE(l.count > 50);
    if (l.count > 0) {
        char *first = span(buf, &l.items[0]);
        ASSERT_STR_EQ(first, "before the word");
        rag_free(first);
    }
    rag_chunk_list_free(&l);
}

static void test_empty_input(void)
{
    rag_chunker_config cfg = config(10, 2, 1);
    rag_chunk_list l = {0};
    ASSERT_OK(rag_chunk_text(&cfg, "", 0, &l));
    ASSERT_EQ_INT(l.count, 0);
    ASSERT_OK(rag_chunk_text(&cfg, NULL, 0, &l));
    ASSERT_EQ_INT(l.count, 0);
    const char *ws = " \n\t\n  \r\n   ";
    ASSERT_OK(rag_chunk_text(&cfg, ws, strlen(ws), &l));
    ASSERT_EQ_INT(l.count, 0);
    cfg.markdown = 0;
    ASSERT_OK(rag_chunk_text(&cfg, ws, strlen(ws), &l));
    ASSERT_EQ_INT(l.count, 0);
    rag_chunk_list_free(&l);
    rag_chunk_list_free(NULL);
}

static void test_invalid_config(void)
{
    rag_chunk_list l = {0};
    rag_chunker_config cfg = config(0, 0, 0);
    ASSERT_EQ_INT(rag_chunk_text(&cfg, "abc", 3, &l), RAG_EINVAL);
    ASSERT_TRUE(strstr(rag_errmsg(), "target_tokens") != NULL);
    cfg = config(-5, 0, 0);
    ASSERT_EQ_INT(rag_chunk_text(&cfg, "abc", 3, &l), RAG_EINVAL);
    cfg = config(10, 10, 0);
    ASSERT_EQ_INT(rag_chunk_text(&cfg, "abc", 3, &l), RAG_EINVAL);
    ASSERT_TRUE(strstr(rag_errmsg(), "overlap_tokens") != NULL);
    cfg = config(10, -1, 0);
    ASSERT_EQ_INT(rag_chunk_text(&cfg, "abc", 3, &l), RAG_EINVAL);
    ASSERT_EQ_INT(rag_chunk_text(NULL, "abc", 3, &l), RAG_EINVAL);
    cfg = config(10, 1, 0);
    ASSERT_EQ_INT(rag_chunk_text(&cfg, "abc", 3, NULL), RAG_EINVAL);
    ASSERT_EQ_INT(rag_chunk_text(&cfg, NULL, 3, &l), RAG_EINVAL);
    /* invalid UTF-8 is reported with its offset */
    ASSERT_EQ_INT(rag_chunk_text(&cfg, "abcde\xC3(xyz", 10, &l), RAG_EENCODING);
    ASSERT_TRUE(strstr(rag_errmsg(), "byte 5") != NULL);
    ASSERT_EQ_INT(l.count, 0);
    /* a list that still holds chunks is refused, not leaked */
    ASSERT_OK(rag_chunk_text(&cfg, "abc", 3, &l));
    ASSERT_EQ_INT(l.count, 1);
    ASSERT_EQ_INT(rag_chunk_text(&cfg, "abc", 3, &l), RAG_EINVAL);
    ASSERT_EQ_INT(l.count, 1);
    rag_chunk_list_free(&l);
}

/* Counts every byte, spaces included: not additive over words, so the chunker must
 * verify each chunk with the counter. */
static int byte_counter(void *user, const char *text, size_t len)
{
    (void)text;
    (*(long *)user)++;
    return (int)len;
}

/* Three tokens per whitespace-separated word. */
static int triple_counter(void *user, const char *text, size_t len)
{
    (void)user;
    int words = 0, in = 0;
    for (size_t i = 0; i < len; i++) {
        int w = !is_ws((unsigned char)text[i]);
        words += w && !in;
        in = w;
    }
    return 3 * words;
}

static void test_custom_counter(void)
{
    size_t len;
    char *text = make_prose(5000, 1, &len);
    long calls = 0;
    rag_chunker_config cfg = config(60, 10, 0);
    cfg.count = byte_counter;
    cfg.count_user = &calls;
    rag_chunk_list l = {0};
    ASSERT_OK(rag_chunk_text(&cfg, text, len, &l));
    ASSERT_TRUE(calls > 0);
    ASSERT_EQ_INT(check_chunks(&cfg, text, len, &l), 0); /* includes tokens <= 60 bytes */
    ASSERT_TRUE(l.count > 5000 / 60);
    for (size_t i = 0; i < l.count; i++)
        ASSERT_TRUE(l.items[i].end - l.items[i].start <= 60);
    rag_chunk_list_free(&l);

    const char *words = "one two three four five six seven eight nine ten eleven";
    cfg = config(10, 0, 0);
    cfg.count = triple_counter;
    ASSERT_OK(rag_chunk_text(&cfg, words, strlen(words), &l));
    ASSERT_EQ_INT(check_chunks(&cfg, words, strlen(words), &l), 0);
    ASSERT_EQ_INT(l.count, 4); /* 3 + 3 + 3 + 2 words */
    if (l.count == 4) {
        ASSERT_EQ_INT(l.items[0].tokens, 9);
        ASSERT_EQ_INT(l.items[3].tokens, 6);
        char *s = span(words, &l.items[1]);
        ASSERT_STR_EQ(s, "four five six");
        rag_free(s);
    }
    rag_chunk_list_free(&l);
    free(text);
}

/* Always 3, whatever the span: a chunk can then only be a single code point. */
static int const_counter(void *user, const char *text, size_t len)
{
    (void)user;
    (void)text;
    (void)len;
    return 3;
}

/* Random mixes of prose, Markdown, code fences and multi-byte text under random
 * configurations and counters: every invariant must hold on each. */
static void test_random_documents(void)
{
    static const char *pieces[] = {
        "word ", "a", "Ωμέγα ", "日本", "。", "😀", "👨‍👩‍👧", "\n", "\n\n", "# H\n",
        "## Sub ##\n", "```\n", "~~~\n", "Title\n===\n", ". ", "! ", "    ", "\t", "-",
        "---\n", "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx",
        "e\xCC\x81", "end.", "「引用。」", "  * item\n", "#nohead ",
    };
    static const rag_token_count_fn counters[] = {NULL, NULL, byte_counter, triple_counter,
                                                  const_counter};
    uint32_t r = 777;
    char text[8192];
    long calls = 0;
    for (int iter = 0; iter < 600; iter++) {
        size_t n = 0;
        r = r * 1103515245u + 12345u;
        int np = (int)((r >> 16) % 150);
        for (int i = 0; i < np; i++) {
            r = r * 1103515245u + 12345u;
            const char *p = pieces[(r >> 16) % (sizeof pieces / sizeof *pieces)];
            size_t pl = strlen(p);
            if (n + pl >= sizeof text)
                break;
            memcpy(text + n, p, pl);
            n += pl;
        }
        r = r * 1103515245u + 12345u;
        int target = 1 + (int)((r >> 16) % 40);
        r = r * 1103515245u + 12345u;
        int overlap = (int)((r >> 16) % (unsigned)target);
        r = r * 1103515245u + 12345u;
        rag_chunker_config cfg = config(target, overlap, (int)((r >> 16) & 1));
        cfg.count = counters[(r >> 17) % (sizeof counters / sizeof *counters)];
        cfg.count_user = &calls;
        rag_chunk_list l = {0};
        int rc = rag_chunk_text(&cfg, text, n, &l);
        ASSERT_EQ_INT(rc, RAG_OK);
        if (rc == RAG_OK && check_chunks(&cfg, text, n, &l)) {
            fprintf(stderr, "  iteration %d: target %d overlap %d markdown %d\n", iter, target,
                    overlap, cfg.markdown);
            break;
        }
        rag_chunk_list_free(&l);
    }
}

static void test_markdown_details(void)
{
    /* thematic breaks are not content (the heading-only section still joins its child);
     * an indented fence inside a list item hides the '#' line inside it; the last chunk
     * of a section is not left as a scrap */
    const char *text = "# Top\n"
                       "***\n"
                       "## Child\n"
                       "- step one:\n"
                       "    ```sh\n"
                       "# comment, not a heading\n"
                       "    ```\n"
                       "- step two.\n";
    rag_chunker_config cfg = config(100, 0, 1);
    rag_chunk_list l = {0};
    ASSERT_OK(rag_chunk_text(&cfg, text, strlen(text), &l));
    ASSERT_EQ_INT(check_chunks(&cfg, text, strlen(text), &l), 0);
    ASSERT_EQ_INT(l.count, 1);
    if (l.count == 1)
        ASSERT_STR_EQ(l.items[0].heading_path, "Top > Child");
    rag_chunk_list_free(&l);

    /* 11 sentences of 6 tokens (66), target 60: not 60 + a 6-token scrap */
    char prose[1024];
    size_t n = 0;
    for (int i = 0; i < 11; i++)
        n += (size_t)sprintf(prose + n, "Sentence number %d has words. ", i);
    cfg = config(60, 0, 0);
    ASSERT_OK(rag_chunk_text(&cfg, prose, n, &l));
    ASSERT_EQ_INT(check_chunks(&cfg, prose, n, &l), 0);
    ASSERT_EQ_INT(l.count, 2);
    for (size_t i = 0; i < l.count; i++)
        ASSERT_TRUE(l.items[i].tokens >= 20);
    rag_chunk_list_free(&l);
}

static void test_approx_tokens(void)
{
    ASSERT_EQ_INT(rag_approx_tokens(NULL, "", 0), 0);
    ASSERT_EQ_INT(rag_approx_tokens(NULL, "hello world", 11), 2);
    ASSERT_EQ_INT(rag_approx_tokens(NULL, "hello, world!", 13), 4);
    ASSERT_EQ_INT(rag_approx_tokens(NULL, "abcdefg", 7), 2);        /* 6 + 1 letters */
    ASSERT_EQ_INT(rag_approx_tokens(NULL, "abcdefghij", 10), 2);    /* 6 + 4 */
    ASSERT_EQ_INT(rag_approx_tokens(NULL, "abcdefghijk", 11), 3);   /* 6 + 5 */
    ASSERT_EQ_INT(rag_approx_tokens(NULL, "日本語", 9), 3);
    ASSERT_EQ_INT(rag_approx_tokens(NULL, "café 😀", strlen("café 😀")), 2);
}

static void test_large_input_performance(void)
{
    size_t len;
    char *text = make_prose(5u << 20, 1, &len);
    rag_chunker_config cfg = config(256, 32, 1);
    rag_chunk_list l = {0};
    double t0 = rag_monotonic();
    ASSERT_OK(rag_chunk_text(&cfg, text, len, &l));
    double dt = rag_monotonic() - t0;
    fprintf(stderr, "  5 MB: %zu chunks in %.3f s\n", l.count, dt);
    ASSERT_TRUE(dt < 3.0);
    ASSERT_TRUE(l.count > len / 2000);
    ASSERT_EQ_INT(check_chunks(&cfg, text, len, &l), 0);
    rag_chunk_list_free(&l);

    /* one 2 MB word: split in linear-ish time too */
    memset(text, 'q', 2u << 20);
    t0 = rag_monotonic();
    ASSERT_OK(rag_chunk_text(&cfg, text, 2u << 20, &l));
    dt = rag_monotonic() - t0;
    fprintf(stderr, "  2 MB single word: %zu chunks in %.3f s\n", l.count, dt);
    ASSERT_TRUE(dt < 3.0);
    ASSERT_EQ_INT(check_chunks(&cfg, text, 2u << 20, &l), 0);
    rag_chunk_list_free(&l);
    free(text);
}

int main(void)
{
    RUN_TEST(test_approx_tokens);
    RUN_TEST(test_offsets_and_overlap);
    RUN_TEST(test_sentence_and_paragraph_cuts);
    RUN_TEST(test_small_pieces_merged);
    RUN_TEST(test_markdown_heading_paths);
    RUN_TEST(test_code_fence_kept_whole);
    RUN_TEST(test_utf8_boundaries);
    RUN_TEST(test_huge_word);
    RUN_TEST(test_empty_input);
    RUN_TEST(test_invalid_config);
    RUN_TEST(test_custom_counter);
    RUN_TEST(test_markdown_details);
    RUN_TEST(test_random_documents);
    RUN_TEST(test_large_input_performance);
    return TEST_REPORT();
}
