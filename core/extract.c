/* extract.c - text extraction: encodings, Markdown titles (cmark), HTML (libxml2), PDF (poppler). */
#include "extract.h"

#include "frontmatter.h"

#include "status.h"
#include "text.h"

#include <cmark.h>
#include <errno.h>
#include <libxml/HTMLparser.h>
#include <libxml/tree.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <utf8proc.h>

#ifdef RAGCORE_HAVE_POPPLER
#include <poppler.h>
#endif

#define MAX_FILE_BYTES ((size_t)1 << 30)

/* Records the skip reason and the error message together. */
static int skip(rag_extracted *out, int rc, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int skip(rag_extracted *out, int rc, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(out->skip_reason, sizeof out->skip_reason, fmt, ap);
    va_end(ap);
    return rag_fail(rc, "%s", out->skip_reason);
}

/* ---- growable output --------------------------------------------------------------------- */

typedef struct sbuf {
    char *p;
    size_t len, cap;
    int failed;
} sbuf;

static void sb_put(sbuf *b, const char *s, size_t n)
{
    if (b->failed)
        return;
    if (b->len + n + 1 > b->cap) {
        size_t ncap = b->cap ? b->cap : 256;
        while (ncap < b->len + n + 1)
            ncap *= 2;
        char *g = rag_realloc(b->p, ncap);
        if (!g) {
            b->failed = 1;
            return;
        }
        b->p = g;
        b->cap = ncap;
    }
    memcpy(b->p + b->len, s, n);
    b->len += n;
    b->p[b->len] = '\0';
}

static void sb_puts(sbuf *b, const char *s) { sb_put(b, s, strlen(s)); }

/* ---- hints and sniffing -------------------------------------------------------------------- */

typedef enum { FMT_UNKNOWN = -1 } fmt_unknown;

static int kind_from_hint(const char *hint)
{
    if (!hint || !*hint)
        return FMT_UNKNOWN;
    static const struct { const char *name; int kind; } mimes[] = {
        {"text/html", RAG_SOURCE_HTML}, {"application/xhtml+xml", RAG_SOURCE_HTML},
        {"application/pdf", RAG_SOURCE_PDF}, {"text/markdown", RAG_SOURCE_MARKDOWN},
        {"text/x-markdown", RAG_SOURCE_MARKDOWN}, {"text/plain", RAG_SOURCE_TEXT},
    };
    for (size_t k = 0; k < sizeof mimes / sizeof mimes[0]; k++)
        if (strncasecmp(hint, mimes[k].name, strlen(mimes[k].name)) == 0)
            return mimes[k].kind;
    const char *base = strrchr(hint, '/');
    base = base ? base + 1 : hint;
    const char *dot = strrchr(base, '.');
    const char *ext = dot ? dot + 1 : base;
    if (!dot && strchr(hint, '/'))
        return FMT_UNKNOWN; /* a path without extension */
    static const struct { const char *ext; int kind; } exts[] = {
        {"md", RAG_SOURCE_MARKDOWN}, {"markdown", RAG_SOURCE_MARKDOWN},
        {"mdown", RAG_SOURCE_MARKDOWN}, {"mkd", RAG_SOURCE_MARKDOWN},
        {"html", RAG_SOURCE_HTML}, {"htm", RAG_SOURCE_HTML}, {"xhtml", RAG_SOURCE_HTML},
        {"pdf", RAG_SOURCE_PDF}, {"txt", RAG_SOURCE_TEXT}, {"text", RAG_SOURCE_TEXT},
    };
    for (size_t k = 0; k < sizeof exts / sizeof exts[0]; k++)
        if (strcasecmp(ext, exts[k].ext) == 0)
            return exts[k].kind;
    return FMT_UNKNOWN;
}

static int sniff(const char *data, size_t len)
{
    if (len >= 5 && memcmp(data, "%PDF-", 5) == 0)
        return RAG_SOURCE_PDF;
    size_t i = 0;
    if (len >= 3 && memcmp(data, "\xEF\xBB\xBF", 3) == 0)
        i = 3;
    while (i < len && (data[i] == ' ' || data[i] == '\t' || data[i] == '\r' || data[i] == '\n'))
        i++;
    static const char *const tags[] = {"<!doctype html", "<html", "<head", "<body", NULL};
    for (const char *const *t = tags; *t; t++)
        if (len - i >= strlen(*t) && strncasecmp(data + i, *t, strlen(*t)) == 0)
            return RAG_SOURCE_HTML;
    return RAG_SOURCE_TEXT;
}

/* ---- plain text decoding ---------------------------------------------------------------- */

static void put_utf8(sbuf *b, uint32_t cp)
{
    char u[4];
    size_t n;
    if (cp < 0x80) {
        u[0] = (char)cp;
        n = 1;
    } else if (cp < 0x800) {
        u[0] = (char)(0xC0 | (cp >> 6));
        u[1] = (char)(0x80 | (cp & 0x3F));
        n = 2;
    } else if (cp < 0x10000) {
        u[0] = (char)(0xE0 | (cp >> 12));
        u[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
        u[2] = (char)(0x80 | (cp & 0x3F));
        n = 3;
    } else {
        u[0] = (char)(0xF0 | (cp >> 18));
        u[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
        u[2] = (char)(0x80 | ((cp >> 6) & 0x3F));
        u[3] = (char)(0x80 | (cp & 0x3F));
        n = 4;
    }
    sb_put(b, u, n);
}

/* UTF-16 (after its BOM) to UTF-8 in b. */
static int decode_utf16(const unsigned char *d, size_t len, int big, sbuf *b, rag_extracted *out)
{
    if (len % 2)
        return skip(out, RAG_EENCODING, "UTF-16 text with an odd number of bytes (%zu)", len + 2);
    for (size_t i = 0; i < len; i += 2) {
        uint32_t u = big ? (uint32_t)(d[i] << 8 | d[i + 1]) : (uint32_t)(d[i + 1] << 8 | d[i]);
        if (u >= 0xD800 && u <= 0xDBFF) {
            if (i + 3 >= len)
                return skip(out, RAG_EENCODING, "UTF-16: unpaired surrogate at byte %zu", i + 2);
            uint32_t l = big ? (uint32_t)(d[i + 2] << 8 | d[i + 3])
                             : (uint32_t)(d[i + 3] << 8 | d[i + 2]);
            if (l < 0xDC00 || l > 0xDFFF)
                return skip(out, RAG_EENCODING, "UTF-16: unpaired surrogate at byte %zu", i + 2);
            u = 0x10000 + ((u - 0xD800) << 10) + (l - 0xDC00);
            i += 2;
        } else if (u >= 0xDC00 && u <= 0xDFFF) {
            return skip(out, RAG_EENCODING, "UTF-16: unpaired surrogate at byte %zu", i + 2);
        } else if (u == 0) {
            return skip(out, RAG_EUNSUPPORTED, "binary data (NUL character in UTF-16 text)");
        }
        put_utf8(b, u);
    }
    return RAG_OK;
}

/* Decodes a text file to UTF-8 with LF line ends into *text and *tlen (owned). */
static int decode_text(const char *data, size_t len, rag_extracted *out, char **text, size_t *tlen)
{
    const unsigned char *d = (const unsigned char *)data;
    sbuf b = {0};
    int rc = RAG_OK;
    *text = NULL;
    if (len >= 4 && (memcmp(d, "\xFF\xFE\0\0", 4) == 0 || memcmp(d, "\0\0\xFE\xFF", 4) == 0))
        return skip(out, RAG_EENCODING, "UTF-32 text is not supported; convert it to UTF-8");
    if (len >= 2 && (memcmp(d, "\xFF\xFE", 2) == 0 || memcmp(d, "\xFE\xFF", 2) == 0)) {
        sbuf u = {0};
        rc = decode_utf16(d + 2, len - 2, d[0] == 0xFE, &u, out);
        if (rc == RAG_OK && u.failed)
            rc = RAG_ENOMEM;
        if (rc != RAG_OK) {
            free(u.p);
            return rc;
        }
        rc = decode_text(u.p ? u.p : "", u.len, out, text, tlen);
        free(u.p);
        return rc;
    }
    if (len >= 3 && memcmp(d, "\xEF\xBB\xBF", 3) == 0) {
        d += 3;
        len -= 3;
    }
    const void *nul = memchr(d, 0, len);
    if (nul)
        return skip(out, RAG_EUNSUPPORTED, "binary data (NUL byte at offset %zu)",
                    (size_t)((const unsigned char *)nul - d));
    size_t bad = 0, line = 0;
    if (!rag_utf8_valid((const char *)d, len, &bad, &line))
        return skip(out, RAG_EENCODING,
                    "not UTF-8 text (invalid byte 0x%02x at offset %zu, line %zu); convert it "
                    "to UTF-8", d[bad], bad, line);
    sb_put(&b, "", 0);
    size_t run = 0;
    for (size_t i = 0; i < len; i++) {
        if (d[i] == '\r') {
            sb_put(&b, (const char *)d + run, i - run);
            sb_put(&b, "\n", 1);
            if (i + 1 < len && d[i + 1] == '\n')
                i++;
            run = i + 1;
        }
    }
    sb_put(&b, (const char *)d + run, len - run);
    if (b.failed) {
        free(b.p);
        return RAG_ENOMEM;
    }
    *text = b.p;
    *tlen = b.len;
    return RAG_OK;
}

/* ---- Markdown ---------------------------------------------------------------------------- */

static void collect_literal(cmark_node *node, sbuf *b)
{
    for (cmark_node *c = cmark_node_first_child(node); c; c = cmark_node_next(c)) {
        cmark_node_type t = cmark_node_get_type(c);
        if (t == CMARK_NODE_TEXT || t == CMARK_NODE_CODE) {
            const char *lit = cmark_node_get_literal(c);
            if (lit)
                sb_puts(b, lit);
        } else if (t == CMARK_NODE_SOFTBREAK || t == CMARK_NODE_LINEBREAK) {
            sb_put(b, " ", 1);
        } else {
            collect_literal(c, b);
        }
    }
}

/* Trims surrounding whitespace; returns an owned copy or NULL when empty/failed. */
static char *trimmed_copy(const char *s, size_t n)
{
    while (n && (*s == ' ' || *s == '\t' || *s == '\n' || *s == '\r'))
        s++, n--;
    while (n && (s[n - 1] == ' ' || s[n - 1] == '\t' || s[n - 1] == '\n' || s[n - 1] == '\r'))
        n--;
    if (n >= 2 && (s[0] == '"' || s[0] == '\'') && s[n - 1] == s[0])
        s++, n -= 2;
    return n ? rag_strndup(s, n) : NULL;
}

static int markdown_title(const char *text, size_t len, char **title)
{
    *title = NULL;
    cmark_node *doc = cmark_parse_document(text, len, CMARK_OPT_DEFAULT);
    if (!doc)
        return rag_fail(RAG_ENOMEM, "cmark could not parse the Markdown");
    cmark_iter *it = cmark_iter_new(doc);
    cmark_node *best = NULL;
    int best_level = 7;
    cmark_event_type ev;
    while (it && (ev = cmark_iter_next(it)) != CMARK_EVENT_DONE) {
        cmark_node *n = cmark_iter_get_node(it);
        if (ev == CMARK_EVENT_ENTER && cmark_node_get_type(n) == CMARK_NODE_HEADING &&
            cmark_node_get_heading_level(n) < best_level) {
            best = n;
            best_level = cmark_node_get_heading_level(n);
        }
    }
    int rc = RAG_OK;
    if (best) {
        sbuf b = {0};
        collect_literal(best, &b);
        if (b.failed)
            rc = RAG_ENOMEM;
        else if (b.p)
            *title = trimmed_copy(b.p, b.len);
        free(b.p);
    }
    cmark_iter_free(it);
    cmark_node_free(doc);
    return rc;
}

/* Front matter (YAML) becomes the metadata and is cut from the text; the title is its
 * "title", else the first heading of the highest level. */
static int extract_markdown(rag_extracted *out)
{
    size_t body = 0;
    int rc = rag_front_matter(out->text, out->len, &body, &out->metadata_json, &out->title);
    if (rc != RAG_OK)
        return skip(out, rc, "%s", rag_errmsg());
    if (body) {
        memmove(out->text, out->text + body, out->len - body + 1);
        out->len -= body;
    }
    return out->title ? RAG_OK : markdown_title(out->text, out->len, &out->title);
}

/* ---- HTML ------------------------------------------------------------------------------ */

typedef struct html_walk {
    sbuf out;
    int pending_space; /* a collapsed whitespace run waits to be written */
    char *title;       /* <title> */
    char *first_h1;
} html_walk;

static int name_is(const xmlNode *n, const char *name)
{
    return n->name && strcasecmp((const char *)n->name, name) == 0;
}

static int name_in(const xmlNode *n, const char *const *names)
{
    for (; *names; names++)
        if (name_is(n, *names))
            return 1;
    return 0;
}

static int is_hidden(xmlNode *n)
{
    if (xmlHasProp(n, (const xmlChar *)"hidden"))
        return 1;
    int hidden = 0;
    xmlChar *v = xmlGetProp(n, (const xmlChar *)"aria-hidden");
    if (v && strcasecmp((const char *)v, "true") == 0)
        hidden = 1;
    xmlFree(v);
    v = xmlGetProp(n, (const xmlChar *)"role");
    if (v && strcasecmp((const char *)v, "navigation") == 0)
        hidden = 1;
    xmlFree(v);
    v = xmlGetProp(n, (const xmlChar *)"style");
    if (v && (strstr((const char *)v, "display:none") || strstr((const char *)v, "display: none")))
        hidden = 1;
    xmlFree(v);
    return hidden;
}

/* Ends the output with at least `n` newlines (none at the very start). */
static void html_break(html_walk *w, int n)
{
    w->pending_space = 0;
    if (w->out.len == 0)
        return;
    while (w->out.len && w->out.p[w->out.len - 1] == ' ')
        w->out.p[--w->out.len] = '\0';
    int have = 0;
    for (size_t k = w->out.len; k > 0 && w->out.p[k - 1] == '\n'; k--)
        have++;
    for (; have < n; have++)
        sb_put(&w->out, "\n", 1);
}

/* Appends text with whitespace runs collapsed to one space. */
static void html_text(html_walk *w, const char *s)
{
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f') {
            w->pending_space = 1;
            continue;
        }
        if (w->pending_space && w->out.len && w->out.p[w->out.len - 1] != '\n')
            sb_put(&w->out, " ", 1);
        w->pending_space = 0;
        sb_put(&w->out, s, 1);
    }
}

static void collect_text(xmlNode *n, sbuf *b)
{
    for (xmlNode *c = n->children; c; c = c->next) {
        if (c->type == XML_TEXT_NODE || c->type == XML_CDATA_SECTION_NODE) {
            if (c->content)
                sb_puts(b, (const char *)c->content);
        } else if (c->type == XML_ELEMENT_NODE && !name_is(c, "script") && !name_is(c, "style")) {
            sb_put(b, " ", 1);
            collect_text(c, b);
        }
    }
}

/* Inline text of a subtree with whitespace collapsed; owned, NULL when empty. */
static char *inline_text(xmlNode *n)
{
    sbuf b = {0};
    collect_text(n, &b);
    if (!b.p)
        return NULL;
    size_t o = 0;
    int space = 0;
    for (size_t i = 0; i < b.len; i++) {
        char c = b.p[i];
        if (c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f') {
            space = 1;
            continue;
        }
        if (space && o)
            b.p[o++] = ' ';
        space = 0;
        b.p[o++] = c;
    }
    b.p[o] = '\0';
    if (!o) {
        free(b.p);
        return NULL;
    }
    return b.p;
}

static void html_walk_node(html_walk *w, xmlNode *n, int in_pre)
{
    static const char *const dropped[] = {"script", "style", "noscript", "template", "nav",
                                          "header", "footer", "aside", "svg", "iframe",
                                          "button", "select", "input", "textarea", "object",
                                          "canvas", "head", "menu", NULL};
    static const char *const blocks[] = {"p", "div", "section", "article", "main", "blockquote",
                                         "table", "ul", "ol", "dl", "dt", "dd", "figure",
                                         "figcaption", "hr", "address", "details", "summary",
                                         "form", "fieldset", "caption", "body", NULL};
    for (xmlNode *c = n; c; c = c->next) {
        if (c->type == XML_TEXT_NODE || c->type == XML_CDATA_SECTION_NODE) {
            if (!c->content)
                continue;
            if (in_pre)
                sb_puts(&w->out, (const char *)c->content);
            else
                html_text(w, (const char *)c->content);
            continue;
        }
        if (c->type != XML_ELEMENT_NODE)
            continue;
        if (name_is(c, "title") && !w->title) {
            w->title = inline_text(c);
            continue;
        }
        if (name_in(c, dropped) || is_hidden(c))
            continue;
        if (c->name && (c->name[0] == 'h' || c->name[0] == 'H') && c->name[1] >= '1' &&
            c->name[1] <= '6' && c->name[2] == '\0') {
            char *t = inline_text(c);
            if (t) {
                int level = c->name[1] - '0';
                if (level == 1 && !w->first_h1)
                    w->first_h1 = rag_strdup(t);
                html_break(w, 2);
                for (int k = 0; k < level; k++)
                    sb_put(&w->out, "#", 1);
                sb_put(&w->out, " ", 1);
                sb_puts(&w->out, t);
                html_break(w, 2);
                free(t);
            }
            continue;
        }
        if (name_is(c, "br")) {
            html_break(w, 1);
            continue;
        }
        if (name_is(c, "pre")) {
            html_break(w, 2);
            sb_puts(&w->out, "```\n");
            html_walk_node(w, c->children, 1);
            html_break(w, 1);
            sb_puts(&w->out, "```");
            html_break(w, 2);
            continue;
        }
        if (name_is(c, "li")) {
            html_break(w, 1);
            sb_puts(&w->out, "- ");
            html_walk_node(w, c->children, in_pre);
            html_break(w, 1);
            continue;
        }
        if (name_is(c, "tr")) {
            html_break(w, 1);
            int first = 1;
            for (xmlNode *cell = c->children; cell; cell = cell->next) {
                if (cell->type != XML_ELEMENT_NODE || !(name_is(cell, "td") || name_is(cell, "th")))
                    continue;
                if (!first)
                    sb_puts(&w->out, " | ");
                first = 0;
                char *t = inline_text(cell);
                if (t)
                    sb_puts(&w->out, t);
                free(t);
            }
            html_break(w, 1);
            continue;
        }
        int block = name_in(c, blocks);
        if (block)
            html_break(w, 2);
        html_walk_node(w, c->children, in_pre);
        if (block)
            html_break(w, 2);
    }
}

/* Replaces every invalid UTF-8 sequence (and NUL) in s[0, *len) with U+FFFD; returns the
 * (possibly reallocated) string, or NULL when out of memory (s is then freed). */
static char *utf8_scrub(char *s, size_t *len)
{
    if (!s || rag_utf8_valid(s, *len, NULL, NULL))
        return s;
    char *o = malloc(*len * 3 + 1);
    if (!o) {
        free(s);
        return NULL;
    }
    size_t i = 0, n = 0;
    while (i < *len) {
        utf8proc_int32_t cp;
        utf8proc_ssize_t step = utf8proc_iterate((const utf8proc_uint8_t *)s + i,
                                                 (utf8proc_ssize_t)(*len - i), &cp);
        if (step <= 0 || cp == 0) {
            memcpy(o + n, "\xEF\xBF\xBD", 3);
            n += 3;
            i += 1;
            continue;
        }
        memcpy(o + n, s + i, (size_t)step);
        n += (size_t)step;
        i += (size_t)step;
    }
    o[n] = '\0';
    free(s);
    *len = n;
    return o;
}

static int extract_html(const char *data, size_t len, rag_extracted *out)
{
    if (len > INT32_MAX)
        return skip(out, RAG_EUNSUPPORTED, "HTML document too large (%zu bytes)", len);
    htmlDocPtr doc = htmlReadMemory(data, (int)len, NULL, NULL,
                                    HTML_PARSE_RECOVER | HTML_PARSE_NOERROR |
                                    HTML_PARSE_NOWARNING | HTML_PARSE_NONET);
    if (!doc)
        return skip(out, RAG_EPARSE, "HTML could not be parsed");
    html_walk w = {0};
    xmlNode *root = xmlDocGetRootElement(doc);
    if (root) {
        /* the title lives in <head>, which the walk drops */
        for (xmlNode *c = root->children; c; c = c->next)
            if (c->type == XML_ELEMENT_NODE && name_is(c, "head"))
                for (xmlNode *h = c->children; h; h = h->next)
                    if (h->type == XML_ELEMENT_NODE && name_is(h, "title") && !w.title)
                        w.title = inline_text(h);
        html_walk_node(&w, root, 0);
    }
    xmlFreeDoc(doc);
    html_break(&w, 0);
    while (w.out.len && w.out.p[w.out.len - 1] == '\n')
        w.out.p[--w.out.len] = '\0';
    sb_put(&w.out, "", 0);
    int rc = RAG_OK;
    if (w.out.failed) {
        rc = RAG_ENOMEM;
        free(w.out.p);
        free(w.title);
    } else {
        out->text = w.out.p;
        out->len = w.out.len;
        out->title = w.title;
        w.title = NULL;
        if (!out->title) {
            out->title = w.first_h1;
            w.first_h1 = NULL;
        }
        /* libxml2 in recovery mode may pass malformed bytes through: never hand on
         * invalid UTF-8 (it would be rejected by ingest). */
        out->text = utf8_scrub(out->text, &out->len);
        if (out->title) {
            size_t tl = strlen(out->title);
            out->title = utf8_scrub(out->title, &tl);
        }
        if (!out->text)
            rc = RAG_ENOMEM;
    }
    free(w.first_h1);
    return rc;
}

/* ---- PDF ---------------------------------------------------------------------------------- */

int rag_extract_have_pdf(void)
{
#ifdef RAGCORE_HAVE_POPPLER
    return 1;
#else
    return 0;
#endif
}

static int extract_pdf(const char *data, size_t len, rag_extracted *out)
{
#ifndef RAGCORE_HAVE_POPPLER
    (void)data;
    (void)len;
    return skip(out, RAG_EUNSUPPORTED, "PDF support not built in (poppler-glib was not found)");
#else
    GError *err = NULL;
    GBytes *bytes = g_bytes_new_static(data, len);
    PopplerDocument *doc = poppler_document_new_from_bytes(bytes, NULL, &err);
    int rc = RAG_OK;
    sbuf b = {0};
    size_t *pages = NULL;
    if (!doc) {
        int encrypted = err && err->domain == POPPLER_ERROR && err->code == POPPLER_ERROR_ENCRYPTED;
        rc = skip(out, encrypted ? RAG_EUNSUPPORTED : RAG_EPARSE, "%s: %s",
                  encrypted ? "encrypted PDF" : "PDF could not be read",
                  err ? err->message : "unknown error");
        goto cleanup;
    }
    int n = poppler_document_get_n_pages(doc);
    pages = rag_calloc(n > 0 ? (size_t)n : 1, sizeof *pages);
    if (!pages) {
        rc = RAG_ENOMEM;
        goto cleanup;
    }
    sb_put(&b, "", 0);
    size_t nonspace = 0;
    for (int p = 0; p < n; p++) {
        if (p > 0)
            sb_put(&b, "\n\n", 2);
        pages[p] = b.len;
        PopplerPage *page = poppler_document_get_page(doc, p);
        char *t = page ? poppler_page_get_text(page) : NULL;
        if (t) {
            size_t tl = strlen(t);
            while (tl && (t[tl - 1] == '\n' || t[tl - 1] == ' '))
                tl--;
            for (size_t k = 0; k < tl; k++) {
                if (t[k] == '\r')
                    t[k] = '\n';
                nonspace += t[k] != ' ' && t[k] != '\n' && t[k] != '\t';
            }
            sb_put(&b, t, tl);
        }
        g_free(t);
        if (page)
            g_object_unref(page);
    }
    if (b.failed) {
        rc = RAG_ENOMEM;
        goto cleanup;
    }
    if (nonspace == 0) {
        rc = skip(out, RAG_EUNSUPPORTED, "PDF has no text layer (%d pages; scanned images?)", n);
        goto cleanup;
    }
    if (!rag_utf8_valid(b.p, b.len, NULL, NULL)) {
        rc = skip(out, RAG_EENCODING, "PDF text is not valid UTF-8");
        goto cleanup;
    }
    gchar *title = poppler_document_get_title(doc);
    if (title) {
        out->title = trimmed_copy(title, strlen(title));
        g_free(title);
    }
    out->text = b.p;
    out->len = b.len;
    out->pages = pages;
    out->npages = (size_t)n;
    b.p = NULL;
    pages = NULL;
cleanup:
    free(b.p);
    free(pages);
    if (doc)
        g_object_unref(doc);
    g_bytes_unref(bytes);
    if (err)
        g_error_free(err);
    return rc;
#endif
}

/* ---- entry points ------------------------------------------------------------------------ */

void rag_extracted_free(rag_extracted *x)
{
    if (!x)
        return;
    free(x->text);
    free(x->title);
    free(x->metadata_json);
    free(x->pages);
    memset(x, 0, sizeof *x);
}

int rag_extract_page_of(const rag_extracted *x, size_t offset)
{
    if (!x || !x->npages)
        return 0;
    size_t lo = 0, hi = x->npages - 1;
    while (lo < hi) {
        size_t mid = (lo + hi + 1) / 2;
        if (x->pages[mid] <= offset)
            lo = mid;
        else
            hi = mid - 1;
    }
    return (int)lo + 1;
}

int rag_extract_buffer(const char *data, size_t len, const char *hint, rag_extracted *out)
{
    if (!out)
        return rag_fail(RAG_EINVAL, "extract: NULL output");
    memset(out, 0, sizeof *out);
    if (!data && len)
        return rag_fail(RAG_EINVAL, "extract: NULL data");
    if (!data)
        data = "";
    int kind = kind_from_hint(hint);
    if (kind == FMT_UNKNOWN)
        kind = sniff(data, len);
    out->kind = (rag_source_kind)kind;
    int rc = RAG_OK;
    switch (kind) {
    case RAG_SOURCE_PDF:
        out->format = RAG_FORMAT_TEXT;
        rc = extract_pdf(data, len, out);
        break;
    case RAG_SOURCE_HTML: {
        /* a UTF-16 HTML page is decoded first (libxml2 then sees UTF-8) */
        char *dec = NULL;
        size_t dl = 0;
        if (len >= 2 && (memcmp(data, "\xFF\xFE", 2) == 0 || memcmp(data, "\xFE\xFF", 2) == 0)) {
            if ((rc = decode_text(data, len, out, &dec, &dl)) != RAG_OK)
                break;
        }
        out->format = RAG_FORMAT_MARKDOWN;
        rc = dec ? extract_html(dec, dl, out) : extract_html(data, len, out);
        free(dec);
        break;
    }
    case RAG_SOURCE_MARKDOWN:
        out->format = RAG_FORMAT_MARKDOWN;
        if ((rc = decode_text(data, len, out, &out->text, &out->len)) == RAG_OK)
            rc = extract_markdown(out);
        break;
    default:
        out->format = RAG_FORMAT_TEXT;
        rc = decode_text(data, len, out, &out->text, &out->len);
    }
    if (rc != RAG_OK) {
        char reason[sizeof out->skip_reason];
        memcpy(reason, out->skip_reason, sizeof reason);
        rag_source_kind k = out->kind;
        rag_extracted_free(out);
        memcpy(out->skip_reason, reason, sizeof reason);
        if (!out->skip_reason[0])
            snprintf(out->skip_reason, sizeof out->skip_reason, "%s", rag_errmsg());
        out->kind = k;
    }
    return rc;
}

int rag_extract_file(const char *path, rag_extracted *out)
{
    if (!out)
        return rag_fail(RAG_EINVAL, "extract: NULL output");
    memset(out, 0, sizeof *out);
    if (!path)
        return rag_fail(RAG_EINVAL, "extract: NULL path");
    FILE *f = fopen(path, "rb");
    char *data = NULL;
    int rc = RAG_OK;
    struct stat st;
    if (!f || fstat(fileno(f), &st) != 0) {
        rc = skip(out, RAG_EIO, "cannot open: %s", strerror(errno));
        goto cleanup;
    }
    if (!S_ISREG(st.st_mode)) {
        rc = skip(out, RAG_EUNSUPPORTED, "not a regular file");
        goto cleanup;
    }
    if ((size_t)st.st_size > MAX_FILE_BYTES) {
        rc = skip(out, RAG_EUNSUPPORTED, "file too large (%lld bytes, limit %zu)",
                  (long long)st.st_size, MAX_FILE_BYTES);
        goto cleanup;
    }
    size_t size = (size_t)st.st_size;
    data = rag_malloc(size + 1);
    if (!data) {
        rc = RAG_ENOMEM;
        goto cleanup;
    }
    if (size && fread(data, 1, size, f) != size) {
        rc = skip(out, RAG_EIO, "read failed: %s", ferror(f) ? strerror(errno) : "file shrank");
        goto cleanup;
    }
    rc = rag_extract_buffer(data, size, path, out);
cleanup:
    if (rc != RAG_OK)
        rag_fail_prefix(rc, "%s", path);
    free(data);
    if (f)
        fclose(f);
    return rc;
}
