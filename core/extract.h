/* extract.h - turning files (plain text, Markdown, HTML, PDF) into UTF-8 text and metadata. */
#ifndef RAG_EXTRACT_H
#define RAG_EXTRACT_H

#include "ragcore.h"

#include <stddef.h>

typedef enum rag_source_kind {
    RAG_SOURCE_TEXT = 0,
    RAG_SOURCE_MARKDOWN,
    RAG_SOURCE_HTML,
    RAG_SOURCE_PDF
} rag_source_kind;

/* What extraction produced. The text is ready for rag_document.text:
 *   text:     decoded to UTF-8 (UTF-8 BOM dropped, UTF-16 LE/BE with BOM converted),
 *             CRLF and lone CR turned into LF. Format RAG_FORMAT_TEXT.
 *   Markdown: the decoded source without its YAML front matter (the chunker reads
 *             headings, code blocks and tables from it); the front matter becomes
 *             metadata_json (frontmatter.h); title = its "title", else the first heading of
 *             the highest level, found with cmark. Format RAG_FORMAT_MARKDOWN. Front matter
 *             that is not a valid YAML mapping fails with RAG_EPARSE.
 *   HTML:     visible text of the body (libxml2's HTML parser, so the document's own
 *             charset is honoured) with script, style, noscript, template, nav, header,
 *             footer, aside, svg, iframe, form controls and hidden elements dropped;
 *             headings become "# ..." lines (so chunks get section paths), list items
 *             "- ..." lines, <pre> a ``` block, table cells " | "-separated rows.
 *             title = <title>, else the first <h1>. Format RAG_FORMAT_MARKDOWN.
 *   PDF:      text of each page (poppler-glib), pages separated by a blank line; pages[i]
 *             is the byte offset in text where page i + 1 starts. title = document info
 *             title. Format RAG_FORMAT_TEXT. */
typedef struct rag_extracted {
    char *text;             /* owned, NUL-terminated; never NULL after success */
    size_t len;
    char *title;            /* owned; NULL when none */
    char *metadata_json;    /* owned JSON object (Markdown front matter); NULL when none */
    rag_format format;
    rag_source_kind kind;
    size_t *pages;          /* owned; PDF only (NULL otherwise) */
    size_t npages;
    char skip_reason[256];  /* after a failure: why the input was skipped, for a summary
                               ("binary data (NUL byte at offset 12)", ...); "" on success */
} rag_extracted;

/* Extracts data[0, len). `hint` picks the format: a MIME type ("text/html",
 * "application/pdf", "text/markdown", "text/plain"), an extension ("md", ".html") or a
 * file name/path whose extension is used; NULL or an unknown extension: the content is
 * sniffed (%PDF- header, <html>/<!doctype html>), else read as plain text.
 * On success *out (overwritten) must be released with rag_extracted_free.
 * Errors (out->skip_reason and rag_errmsg() say why; *out holds no memory):
 *   RAG_EENCODING    not UTF-8/UTF-16 text (invalid byte offset given), UTF-32;
 *   RAG_EUNSUPPORTED binary data, PDF without poppler support, encrypted PDF, PDF
 *                    without a text layer;
 *   RAG_EPARSE       an HTML or PDF the parser cannot read;
 *   RAG_EINVAL, RAG_ENOMEM. */
int rag_extract_buffer(const char *data, size_t len, const char *hint, rag_extracted *out);

/* Reads the file at `path` (at most 1 GiB) and extracts it with its name as the hint.
 * Errors as rag_extract_buffer, plus RAG_EIO (cannot open/read, with errno text). */
int rag_extract_file(const char *path, rag_extracted *out);

/* Frees what *x owns and zeroes it. NULL-safe. */
void rag_extracted_free(rag_extracted *x);

/* 1-based page holding byte `offset` of x->text, or 0 when x has no pages. Can't fail. */
int rag_extract_page_of(const rag_extracted *x, size_t offset);

/* 1 when this build reads PDF (poppler-glib was found at build time). */
int rag_extract_have_pdf(void);

#endif
