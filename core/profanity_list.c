/* profanity_list.c - the word-list toxicity detector: entries in a character trie, matched
 * word by word over case-folded text with leetspeak variants. */
#include "profanity_list.h"

#include "status.h"
#include "text.h"

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <utf8proc.h>

/* Between the words of a multi-word entry the trie has this edge. */
#define SEP 0x20
/* Longest run of single-character words read as one word ("f.o.o"). */
#define MAX_SPELLED 32

/* The trie's edges (parent node, code point) -> child in one open-addressing table. */
struct rag_wordlist {
    uint64_t *keys;          /* (parent << 21 | cp) + 1; 0: empty slot */
    uint32_t *child;
    size_t cap, nedges;
    unsigned char *terminal; /* per node: an entry ends here */
    size_t nnodes, cap_nodes;
    size_t entries;
    int max_words;           /* most words in one entry */
};

static uint64_t edge_key(uint32_t node, int32_t cp)
{
    return (((uint64_t)node << 21) | (uint64_t)(uint32_t)cp) + 1;
}

static size_t edge_slot(const rag_wordlist *wl, uint64_t key)
{
    uint64_t h = key * 0x9E3779B97F4A7C15ull;
    return (size_t)(h >> 17) & (wl->cap - 1);
}

/* The child of node by cp, or 0 (the root is never a child). */
static uint32_t edge_get(const rag_wordlist *wl, uint32_t node, int32_t cp)
{
    uint64_t key = edge_key(node, cp);
    for (size_t i = edge_slot(wl, key);; i = (i + 1) & (wl->cap - 1)) {
        if (wl->keys[i] == key)
            return wl->child[i];
        if (!wl->keys[i])
            return 0;
    }
}

static int edges_grow(rag_wordlist *wl)
{
    size_t ocap = wl->cap, cap = ocap ? ocap * 2 : 1024;
    uint64_t *ok = wl->keys;
    uint32_t *oc = wl->child;
    wl->keys = rag_calloc(cap, sizeof *wl->keys);
    wl->child = rag_malloc(cap * sizeof *wl->child);
    if (!wl->keys || !wl->child) {
        free(wl->keys);
        free(wl->child);
        wl->keys = ok;
        wl->child = oc;
        return RAG_ENOMEM;
    }
    wl->cap = cap;
    for (size_t i = 0; i < ocap; i++) {
        if (!ok[i])
            continue;
        size_t j = edge_slot(wl, ok[i]);
        while (wl->keys[j])
            j = (j + 1) & (cap - 1);
        wl->keys[j] = ok[i];
        wl->child[j] = oc[i];
    }
    free(ok);
    free(oc);
    return RAG_OK;
}

/* The child of node by cp, created when absent. 0 on ENOMEM. */
static uint32_t edge_add(rag_wordlist *wl, uint32_t node, int32_t cp)
{
    uint32_t c = edge_get(wl, node, cp);
    if (c)
        return c;
    if ((wl->nedges + 1) * 2 > wl->cap && edges_grow(wl) != RAG_OK)
        return 0;
    if (wl->nnodes == wl->cap_nodes) {
        size_t cap = wl->cap_nodes * 2;
        unsigned char *t = rag_realloc(wl->terminal, cap);
        if (!t)
            return 0;
        memset(t + wl->cap_nodes, 0, cap - wl->cap_nodes);
        wl->terminal = t;
        wl->cap_nodes = cap;
    }
    c = (uint32_t)wl->nnodes++;
    uint64_t key = edge_key(node, cp);
    size_t i = edge_slot(wl, key);
    while (wl->keys[i])
        i = (i + 1) & (wl->cap - 1);
    wl->keys[i] = key;
    wl->child[i] = c;
    wl->nedges++;
    return c;
}

/* ---- normalisation ---------------------------------------------------------------------- */

static int is_word_cp(int32_t cp)
{
    return cp == '@' || cp == '$' || cp == '*' || rag_cp_is_alnum(cp);
}

static int is_letter(int32_t cp)
{
    utf8proc_category_t c = utf8proc_category(cp);
    return c >= UTF8PROC_CATEGORY_LU && c <= UTF8PROC_CATEGORY_LO;
}

/* A run of word characters in the normalised code points. */
typedef struct word {
    size_t a, b;
} word;

/* Normalised text as code points (*cps, malloc'd) and its words (*words, malloc'd). */
static int normalise(const char *text, size_t len, int32_t **cps, size_t *ncp, word **words,
                     size_t *nwords)
{
    *cps = NULL;
    *words = NULL;
    *ncp = *nwords = 0;
    if (!len)
        return RAG_OK;
    utf8proc_uint8_t *folded = NULL;
    utf8proc_ssize_t fl = utf8proc_map((const utf8proc_uint8_t *)text, (utf8proc_ssize_t)len,
                                       &folded, UTF8PROC_STABLE | UTF8PROC_COMPAT |
                                                    UTF8PROC_COMPOSE | UTF8PROC_CASEFOLD |
                                                    UTF8PROC_STRIPMARK);
    if (fl < 0)
        return fl == UTF8PROC_ERROR_NOMEM ? rag_fail(RAG_ENOMEM, "out of memory")
                                          : rag_fail(RAG_EENCODING, "text is not valid UTF-8");
    int rc = RAG_OK;
    int32_t *c = rag_malloc(((size_t)fl + 1) * sizeof *c);
    word *w = rag_malloc(((size_t)fl / 2 + 2) * sizeof *w);
    if (!c || !w) {
        rc = RAG_ENOMEM;
        goto cleanup;
    }
    size_t n = 0, nw = 0;
    for (utf8proc_ssize_t i = 0; i < fl;) {
        utf8proc_int32_t cp;
        utf8proc_ssize_t step = utf8proc_iterate(folded + i, fl - i, &cp);
        if (step <= 0) {
            cp = 0xFFFD;
            step = 1;
        }
        i += step;
        if (is_word_cp(cp)) {
            if (!n || !is_word_cp(c[n - 1]))
                w[nw++].a = n;
            w[nw - 1].b = n + 1;
        }
        c[n++] = cp;
    }
    *cps = c;
    *words = w;
    *ncp = n;
    *nwords = nw;
    c = NULL;
    w = NULL;
cleanup:
    free(folded);
    free(c);
    free(w);
    return rc;
}

/* ---- loading ------------------------------------------------------------------------------ */

/* Adds one entry (a line) to the trie. */
static int add_entry(rag_wordlist *wl, const char *line, size_t len, size_t lineno)
{
    int32_t *c = NULL;
    word *w = NULL;
    size_t n = 0, nw = 0;
    int rc = normalise(line, len, &c, &n, &w, &nw);
    if (rc == RAG_EENCODING)
        rc = rag_fail(RAG_EENCODING, "line %zu is not valid UTF-8", lineno);
    if (rc != RAG_OK || !nw)
        goto cleanup;
    uint32_t node = 0;
    for (size_t k = 0; k < nw && rc == RAG_OK; k++) {
        if (k && !(node = edge_add(wl, node, SEP)))
            rc = RAG_ENOMEM;
        for (size_t i = w[k].a; i < w[k].b && rc == RAG_OK; i++)
            if (!(node = edge_add(wl, node, c[i])))
                rc = RAG_ENOMEM;
    }
    if (rc == RAG_OK) {
        wl->entries += !wl->terminal[node];
        wl->terminal[node] = 1;
        if ((int)nw > wl->max_words)
            wl->max_words = (int)nw;
    }
cleanup:
    free(c);
    free(w);
    return rc;
}

int rag_wordlist_load(const char *path, rag_wordlist **out)
{
    *out = NULL;
    FILE *f = fopen(path, "rb");
    if (!f)
        return rag_fail(RAG_EIO, "word list %s: %s", path, strerror(errno));
    int rc = RAG_OK;
    char *line = NULL;
    size_t lcap = 0, lineno = 0;
    rag_wordlist *wl = rag_calloc(1, sizeof *wl);
    if (!wl || !(wl->terminal = rag_calloc(256, 1)) || edges_grow(wl) != RAG_OK) {
        rc = RAG_ENOMEM;
        goto cleanup;
    }
    wl->cap_nodes = 256;
    wl->nnodes = 1; /* the root */
    ssize_t got;
    while ((got = getline(&line, &lcap, f)) >= 0) {
        lineno++;
        size_t a = 0, b = (size_t)got;
        while (a < b && (line[a] == ' ' || line[a] == '\t' || line[a] == '\r' || line[a] == '\n'))
            a++;
        while (b > a && (line[b - 1] == ' ' || line[b - 1] == '\t' || line[b - 1] == '\r' ||
                         line[b - 1] == '\n'))
            b--;
        if (a < b && (rc = add_entry(wl, line + a, b - a, lineno)) != RAG_OK)
            break;
    }
    if (rc == RAG_OK && ferror(f))
        rc = rag_fail(RAG_EIO, "word list %s: read error", path);
    if (rc == RAG_OK && !wl->entries)
        rc = rag_fail(RAG_EPARSE, "word list %s has no entry", path);
    if (rc != RAG_OK)
        rag_fail_prefix(rc, "word list %s", path);
cleanup:
    free(line);
    fclose(f);
    if (rc != RAG_OK)
        rag_wordlist_free(wl);
    else
        *out = wl;
    return rc;
}

void rag_wordlist_free(rag_wordlist *wl)
{
    if (!wl)
        return;
    free(wl->keys);
    free(wl->child);
    free(wl->terminal);
    free(wl);
}

size_t rag_wordlist_size(const rag_wordlist *wl)
{
    return wl ? wl->entries : 0;
}

/* ---- matching ------------------------------------------------------------------------------ */

/* The letters a text character may stand for: itself, then its leetspeak readings. */
static int variants(int32_t cp, int32_t out[8])
{
    int n = 0;
    out[n++] = cp;
    const char *alt = NULL;
    switch (cp) {
    case '@': alt = "ao"; break;
    case '*': alt = "aiouve"; break;
    case '4': alt = "a"; break;
    case '1': alt = "il"; break;
    case 'l': alt = "i"; break;
    case '0': alt = "o"; break;
    case '3': alt = "e"; break;
    case '$': case '5': alt = "s"; break;
    case '7': alt = "t"; break;
    case 'u': alt = "v"; break;
    case 'v': alt = "u"; break;
    default: break;
    }
    for (; alt && *alt; alt++)
        out[n++] = (unsigned char)*alt;
    return n;
}

typedef struct walk_ctx {
    const rag_wordlist *wl;
    const int32_t *c;
    const word *w;
    size_t nw;
    size_t first, last;      /* the words of a hit */
} walk_ctx;

/* 1 when an entry can be read from character pos of word k on, at trie node `node`;
 * `words` counts the entry's words so far, `spelled` the single characters joined. */
static int walk(walk_ctx *x, size_t k, size_t pos, uint32_t node, int words, int spelled)
{
    const word *cur = &x->w[k];
    if (pos == cur->b) {
        if (x->wl->terminal[node]) {
            x->last = k;
            return 1;
        }
        if (k + 1 >= x->nw)
            return 0;
        const word *next = &x->w[k + 1];
        uint32_t s = words < x->wl->max_words ? edge_get(x->wl, node, SEP) : 0;
        if (s && walk(x, k + 1, next->a, s, words + 1, 0))
            return 1;
        /* a word spelled out one letter at a time reads as one word (letters only: runs
         * of single digits and symbols are common in numbers and formulas) */
        return cur->b - cur->a == 1 && next->b - next->a == 1 && spelled < MAX_SPELLED &&
               is_letter(x->c[cur->a]) && is_letter(x->c[next->a]) &&
               walk(x, k + 1, next->a, node, words, spelled + 1);
    }
    int32_t v[8];
    int nv = variants(x->c[pos], v);
    for (int i = 0; i < nv; i++) {
        uint32_t child = edge_get(x->wl, node, v[i]);
        if (child && walk(x, k, pos + 1, child, words, spelled))
            return 1;
    }
    return 0;
}

/* The normalised words first..last (spaces between) into match[0, cap). */
static void copy_match(const walk_ctx *x, char *match, size_t cap)
{
    size_t n = 0;
    for (size_t k = x->first; k <= x->last; k++) {
        for (size_t i = x->w[k].a - (k > x->first); i < x->w[k].b; i++) {
            utf8proc_uint8_t buf[4];
            int32_t cp = i < x->w[k].a ? ' ' : x->c[i];
            utf8proc_ssize_t bl = utf8proc_encode_char(cp, buf);
            if (n + (size_t)bl + 1 > cap)
                goto done;
            memcpy(match + n, buf, (size_t)bl);
            n += (size_t)bl;
        }
    }
done:
    match[n] = '\0';
}

int rag_wordlist_find(const rag_wordlist *wl, const char *text, size_t len, char *match,
                      size_t cap)
{
    if (match && cap)
        match[0] = '\0';
    int32_t *c = NULL;
    word *w = NULL;
    size_t n = 0, nw = 0;
    int rc = normalise(text, len, &c, &n, &w, &nw);
    if (rc != RAG_OK)
        return rc;
    walk_ctx x = {wl, c, w, nw, 0, 0};
    int hit = 0;
    for (size_t k = 0; k < nw && !hit; k++) {
        x.first = k;
        hit = walk(&x, k, w[k].a, 0, 1, 0);
    }
    if (hit && match && cap)
        copy_match(&x, match, cap);
    free(c);
    free(w);
    return hit;
}
