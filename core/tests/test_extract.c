/* test_extract.c - extraction of plain text (encodings), Markdown, HTML and a generated PDF. */
#include "extract.h"
#include "status.h"
#include "test.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void test_plain_text(void)
{
    rag_extracted x;
    const char in[] = "\xEF\xBB\xBFline one\r\nline two\rline three\n";
    ASSERT_OK(rag_extract_buffer(in, sizeof in - 1, "notes.txt", &x));
    ASSERT_STR_EQ(x.text, "line one\nline two\nline three\n");
    ASSERT_EQ_INT(x.len, strlen("line one\nline two\nline three\n"));
    ASSERT_EQ_INT(x.format, RAG_FORMAT_TEXT);
    ASSERT_EQ_INT(x.kind, RAG_SOURCE_TEXT);
    ASSERT_TRUE(x.title == NULL && x.pages == NULL);
    ASSERT_STR_EQ(x.skip_reason, "");
    rag_extracted_free(&x);

    /* UTF-16 LE and BE with BOM: "Hé😀\r\nZ" */
    const char le[] = "\xFF\xFE" "H\0\xE9\0\x3D\xD8\x00\xDE\r\0\n\0Z\0";
    const char be[] = "\xFE\xFF" "\0H\0\xE9\xD8\x3D\xDE\x00\0\r\0\n\0Z";
    ASSERT_OK(rag_extract_buffer(le, sizeof le - 1, NULL, &x));
    ASSERT_STR_EQ(x.text, "H\xC3\xA9\xF0\x9F\x98\x80\nZ");
    rag_extracted_free(&x);
    ASSERT_OK(rag_extract_buffer(be, sizeof be - 1, "text/plain", &x));
    ASSERT_STR_EQ(x.text, "H\xC3\xA9\xF0\x9F\x98\x80\nZ");
    rag_extracted_free(&x);

    /* rejected inputs carry a reason */
    const char latin1[] = "caf\xE9 au lait\nna\xEFve";
    ASSERT_EQ_INT(rag_extract_buffer(latin1, sizeof latin1 - 1, "a.txt", &x), RAG_EENCODING);
    ASSERT_TRUE(strstr(x.skip_reason, "not UTF-8") && strstr(x.skip_reason, "offset 3"));
    ASSERT_TRUE(x.text == NULL);
    const char png[] = "\x89PNG\r\n\x1a\n\0\0\0\rIHDR";
    ASSERT_EQ_INT(rag_extract_buffer(png, sizeof png - 1, "image.png", &x), RAG_EUNSUPPORTED);
    ASSERT_TRUE(strstr(x.skip_reason, "binary") != NULL);
    ASSERT_TRUE(strstr(rag_errmsg(), "binary") != NULL);
    const char u32[] = "\xFF\xFE\0\0H\0\0\0";
    ASSERT_EQ_INT(rag_extract_buffer(u32, sizeof u32 - 1, NULL, &x), RAG_EENCODING);
    ASSERT_TRUE(strstr(x.skip_reason, "UTF-32") != NULL);
    const char odd[] = "\xFF\xFE" "H\0i";
    ASSERT_EQ_INT(rag_extract_buffer(odd, sizeof odd - 1, NULL, &x), RAG_EENCODING);
    const char lone[] = "\xFF\xFE" "\x3D\xD8" "A\0";
    ASSERT_EQ_INT(rag_extract_buffer(lone, sizeof lone - 1, NULL, &x), RAG_EENCODING);
    ASSERT_TRUE(strstr(x.skip_reason, "surrogate") != NULL);
    ASSERT_OK(rag_extract_buffer("", 0, NULL, &x));
    ASSERT_STR_EQ(x.text, "");
    rag_extracted_free(&x);
    rag_extracted_free(NULL);
}

static void test_markdown(void)
{
    rag_extracted x;
    const char *md = "Intro paragraph.\n\n```\n# not a heading\n```\n\n## Install\n\nSteps.\n\n"
                     "# The *Real* `Title`\n\ntext\n";
    ASSERT_OK(rag_extract_buffer(md, strlen(md), "README.md", &x));
    ASSERT_EQ_INT(x.format, RAG_FORMAT_MARKDOWN);
    ASSERT_EQ_INT(x.kind, RAG_SOURCE_MARKDOWN);
    ASSERT_STR_EQ(x.text, md); /* kept as is for the Markdown-aware chunker */
    ASSERT_STR_EQ(x.title, "The Real Title");
    rag_extracted_free(&x);

    const char *fm = "---\nauthor: me\ntitle: \"Front Matter Title\"\n---\n# Heading\n";
    ASSERT_OK(rag_extract_buffer(fm, strlen(fm), "text/markdown", &x));
    ASSERT_STR_EQ(x.title, "Front Matter Title");
    rag_extracted_free(&x);

    const char *setext = "Setext Title\n============\n\nbody\n";
    ASSERT_OK(rag_extract_buffer(setext, strlen(setext), ".markdown", &x));
    ASSERT_STR_EQ(x.title, "Setext Title");
    rag_extracted_free(&x);

    ASSERT_OK(rag_extract_buffer("no headings", 11, "md", &x));
    ASSERT_TRUE(x.title == NULL);
    rag_extracted_free(&x);
}

static void test_html(void)
{
    const char *html =
        "<!DOCTYPE html>\n<html><head><meta charset=\"iso-8859-1\">"
        "<title> Caf\xE9   Guide </title><style>body{color:red}</style>"
        "<script>var x = 'secret';</script></head>\n<body>\n"
        "<header><a href=/>Home</a> | <a href=/about>About</a></header>\n"
        "<nav><ul><li>Menu 1</li><li>Menu 2</li></ul></nav>\n"
        "<main><h1>Coffee   &amp; Tea</h1>\n<p>Good <b>coffee</b>\n is   "
        "<i>hot</i>.</p>\n<h2>Brewing</h2><p>Use fresh beans.<br>Grind them.</p>"
        "<ul><li>Espresso</li><li>Filter</li></ul>"
        "<table><tr><th>Size</th><th>Price</th></tr><tr><td>Small</td><td>2 EUR</td></tr></table>"
        "<pre>if (hot)\n    drink();</pre>"
        "<div hidden>invisible</div><div style=\"display:none\">gone</div>"
        "<aside>Related links</aside><noscript>Enable JS</noscript>"
        "<h3>Na\xEFve <span>notes</span></h3><p>End.</p></main>\n"
        "<footer>Copyright 2024</footer><script>track();</script></body></html>";
    rag_extracted x;
    ASSERT_OK(rag_extract_buffer(html, strlen(html), "page.html", &x));
    ASSERT_EQ_INT(x.kind, RAG_SOURCE_HTML);
    ASSERT_EQ_INT(x.format, RAG_FORMAT_MARKDOWN);
    ASSERT_STR_EQ(x.title, "Caf\xC3\xA9 Guide");
    ASSERT_STR_EQ(x.text, "# Coffee & Tea\n\n"
                          "Good coffee is hot.\n\n"
                          "## Brewing\n\n"
                          "Use fresh beans.\nGrind them.\n\n"
                          "- Espresso\n- Filter\n\n"
                          "Size | Price\nSmall | 2 EUR\n\n"
                          "```\nif (hot)\n    drink();\n```\n\n"
                          "### Na\xC3\xAFve notes\n\n"
                          "End.");
    ASSERT_EQ_INT(x.len, x.text ? strlen(x.text) : 0);
    ASSERT_TRUE(x.text && !strstr(x.text, "secret") && !strstr(x.text, "Menu") &&
                !strstr(x.text, "Copyright") && !strstr(x.text, "color"));
    rag_extracted_free(&x);

    /* sniffed without a hint; no <title>: the first h1 */
    const char *bare = "  <html><body><h1>Only &lt;H1&gt;</h1><p>x</p></body></html>";
    ASSERT_OK(rag_extract_buffer(bare, strlen(bare), NULL, &x));
    ASSERT_EQ_INT(x.kind, RAG_SOURCE_HTML);
    ASSERT_STR_EQ(x.title, "Only <H1>");
    ASSERT_STR_EQ(x.text, "# Only <H1>\n\nx");
    rag_extracted_free(&x);
}

/* Writes a 2-page PDF with standard-font text and an Info title; returns its size. */
static size_t make_pdf(char *buf, size_t cap)
{
    const char *contents[2] = {"BT /F1 18 Tf 72 700 Td (First page says hello) Tj ET",
                               "BT /F1 18 Tf 72 700 Td (Second page text) Tj ET"};
    size_t off[9], n = 0;
    n += (size_t)snprintf(buf + n, cap - n, "%%PDF-1.4\n");
    off[1] = n;
    n += (size_t)snprintf(buf + n, cap - n, "1 0 obj\n<< /Type /Catalog /Pages 2 0 R >>\nendobj\n");
    off[2] = n;
    n += (size_t)snprintf(buf + n, cap - n,
                          "2 0 obj\n<< /Type /Pages /Kids [3 0 R 5 0 R] /Count 2 >>\nendobj\n");
    for (int p = 0; p < 2; p++) {
        int page = 3 + 2 * p, cont = page + 1;
        off[page] = n;
        n += (size_t)snprintf(buf + n, cap - n,
                              "%d 0 obj\n<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] "
                              "/Resources << /Font << /F1 7 0 R >> >> /Contents %d 0 R >>\nendobj\n",
                              page, cont);
        off[cont] = n;
        n += (size_t)snprintf(buf + n, cap - n, "%d 0 obj\n<< /Length %zu >>\nstream\n%s\nendstream\nendobj\n",
                              cont, strlen(contents[p]) + 1, contents[p]);
    }
    off[7] = n;
    n += (size_t)snprintf(buf + n, cap - n,
                          "7 0 obj\n<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>\nendobj\n");
    off[8] = n;
    n += (size_t)snprintf(buf + n, cap - n, "8 0 obj\n<< /Title (Tiny Test PDF) >>\nendobj\n");
    size_t xref = n;
    n += (size_t)snprintf(buf + n, cap - n, "xref\n0 9\n0000000000 65535 f \n");
    for (int k = 1; k <= 8; k++)
        n += (size_t)snprintf(buf + n, cap - n, "%010zu 00000 n \n", off[k]);
    n += (size_t)snprintf(buf + n, cap - n,
                          "trailer\n<< /Size 9 /Root 1 0 R /Info 8 0 R >>\nstartxref\n%zu\n%%%%EOF\n", xref);
    return n;
}

static void test_pdf(void)
{
    char pdf[4096];
    size_t n = make_pdf(pdf, sizeof pdf);
    rag_extracted x;
    if (!rag_extract_have_pdf()) {
        ASSERT_EQ_INT(rag_extract_buffer(pdf, n, "doc.pdf", &x), RAG_EUNSUPPORTED);
        ASSERT_TRUE(strstr(x.skip_reason, "poppler") != NULL);
        return;
    }
    /* through a file, so rag_extract_file is covered too */
    const char *tmp = getenv("RAGCORE_TEST_TMP");
    char path[1024];
    snprintf(path, sizeof path, "%s/extract_test.pdf", tmp ? tmp : "/tmp");
    FILE *f = fopen(path, "wb");
    ASSERT_TRUE(f != NULL);
    if (!f)
        return;
    fwrite(pdf, 1, n, f);
    fclose(f);
    ASSERT_OK(rag_extract_file(path, &x));
    ASSERT_EQ_INT(x.kind, RAG_SOURCE_PDF);
    ASSERT_EQ_INT(x.format, RAG_FORMAT_TEXT);
    ASSERT_EQ_INT(x.npages, 2);
    ASSERT_STR_EQ(x.title, "Tiny Test PDF");
    if (x.npages == 2 && x.text) {
        ASSERT_EQ_INT(x.pages[0], 0);
        ASSERT_TRUE(strncmp(x.text, "First page says hello", 21) == 0);
        ASSERT_TRUE(strncmp(x.text + x.pages[1], "Second page text", 16) == 0);
        const char *second = strstr(x.text, "Second");
        ASSERT_TRUE(second != NULL);
        ASSERT_EQ_INT(rag_extract_page_of(&x, 0), 1);
        ASSERT_EQ_INT(rag_extract_page_of(&x, x.pages[1] - 1), 1);
        ASSERT_EQ_INT(rag_extract_page_of(&x, (size_t)(second - x.text)), 2);
        ASSERT_EQ_INT(rag_extract_page_of(&x, x.len + 100), 2);
        fprintf(stderr, "  pdf text: \"%s\" pages at %zu, %zu\n", x.text, x.pages[0], x.pages[1]);
    }
    rag_extracted_free(&x);
    ASSERT_EQ_INT(rag_extract_page_of(&x, 5), 0);

    /* sniffed by its header; a damaged one is refused with a reason */
    ASSERT_OK(rag_extract_buffer(pdf, n, NULL, &x));
    ASSERT_EQ_INT(x.npages, 2);
    rag_extracted_free(&x);
    const char *bad = "%PDF-1.4\nthis is not really a pdf\n";
    ASSERT_EQ_INT(rag_extract_buffer(bad, strlen(bad), "x.pdf", &x), RAG_EPARSE);
    ASSERT_TRUE(strstr(x.skip_reason, "PDF") != NULL);
}

static void test_file_errors(void)
{
    rag_extracted x;
    ASSERT_EQ_INT(rag_extract_file("/nonexistent/dir/file.md", &x), RAG_EIO);
    ASSERT_TRUE(strstr(rag_errmsg(), "/nonexistent/dir/file.md") != NULL);
    ASSERT_TRUE(strstr(x.skip_reason, "cannot open") != NULL);
    ASSERT_EQ_INT(rag_extract_file("/", &x), RAG_EUNSUPPORTED);
    ASSERT_EQ_INT(rag_extract_buffer(NULL, 3, NULL, &x), RAG_EINVAL);
}

int main(void)
{
    RUN_TEST(test_plain_text);
    RUN_TEST(test_markdown);
    RUN_TEST(test_html);
    RUN_TEST(test_pdf);
    RUN_TEST(test_file_errors);
    return TEST_REPORT();
}
