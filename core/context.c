/* context.c - prompt-ready context: retrieves, merges adjacent chunks of a document into
 * passages, fits a token budget and renders numbered, dated citations (text, Markdown, JSON). */
#include "context.h"

#include "db.h"
#include "embedder.h"
#include "status.h"

#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

struct rag_prompt_context {
    char *text;                  /* the context in the requested format (JSON for JSON) */
    char *json;                  /* always the JSON form */
    int tokens;                  /* tokens of the rendered (text or Markdown) context */
    int no_confident;
    int stale;
};

static const char TEXT_TEMPLATE[] = "[{n}] {title} \u2014 {source} (updated {date}, {age})";
static const char MARKDOWN_TEMPLATE[] =
    "### [{n}] {title}\nSource: {source} \u00b7 updated {date}, {age}";
static const char PASSAGE_JOIN[] = " \u2026 ";   /* between passages of one source */
static const char TRUNC_MARK[] = " \u2026";      /* after a truncated passage */
static const char BLOCK_SEP[] = "\n\n";          /* between sources */

/* ---- growable string -------------------------------------------------------------------- */

typedef struct sbuf {
    char *p;
    size_t len, cap;
    int oom;
} sbuf;

static void sb_add(sbuf *b, const char *s, size_t n)
{
    if (b->oom)
        return;
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 256;
        while (cap < b->len + n + 1)
            cap *= 2;
        char *p = rag_realloc(b->p, cap);
        if (!p) {
            b->oom = 1;
            return;
        }
        b->p = p;
        b->cap = cap;
    }
    memcpy(b->p + b->len, s, n);
    b->len += n;
    b->p[b->len] = '\0';
}

static void sb_str(sbuf *b, const char *s)
{
    sb_add(b, s, strlen(s));
}

/* Appends s with control characters (newlines included) replaced by spaces, so a title
 * cannot break the header line. */
static void sb_clean(sbuf *b, const char *s)
{
    for (const char *p = s; *p; p++) {
        char c = (unsigned char)*p < 0x20 || *p == 0x7F ? ' ' : *p;
        sb_add(b, &c, 1);
    }
}

/* ---- dates, ages, templates ------------------------------------------------------------- */

void rag_age_phrase(int64_t s, char *buf, size_t cap)
{
    const int64_t day = 86400;
    int64_t n;
    const char *unit;
    if (s < 60) {
        snprintf(buf, cap, "just now");
        return;
    }
    if (s < 3600) {
        n = s / 60, unit = "minute";
    } else if (s < day) {
        n = s / 3600, unit = "hour";
    } else if (s < 2 * day) {
        snprintf(buf, cap, "yesterday");
        return;
    } else if (s < 30 * day) {
        n = s / day, unit = "day";
    } else if (s < 365 * day) {
        n = s / (30 * day), unit = "month";
    } else {
        n = s / (365 * day), unit = "year";
    }
    snprintf(buf, cap, "%lld %s%s ago", (long long)n, unit, n == 1 ? "" : "s");
}

void rag_date_string(int64_t t, char *buf, size_t cap)
{
    struct tm tm;
    time_t tt = (time_t)t;
    if (t <= 0 || !gmtime_r(&tt, &tm)) {
        snprintf(buf, cap, "unknown");
        return;
    }
    snprintf(buf, cap, "%04d-%02d-%02d", tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday);
}

static const char *const PLACEHOLDERS[] = {"n",    "title", "source", "doc_id",
                                           "date", "age",   "score"};
#define N_PLACEHOLDERS (sizeof PLACEHOLDERS / sizeof PLACEHOLDERS[0])

static int is_name_char(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_';
}

/* Length of the placeholder name opened by the '{' at t (0 when "{" is literal), and its
 * index in PLACEHOLDERS in *which (-1 when unknown). */
static size_t placeholder_at(const char *t, int *which)
{
    size_t n = 0;
    while (is_name_char(t[1 + n]))
        n++;
    *which = -1;
    if (n == 0 || t[1 + n] != '}')
        return 0;
    for (size_t i = 0; i < N_PLACEHOLDERS; i++)
        if (strlen(PLACEHOLDERS[i]) == n && memcmp(PLACEHOLDERS[i], t + 1, n) == 0)
            *which = (int)i;
    return n;
}

int rag_context_template_check(const char *tmpl)
{
    for (const char *p = tmpl; *p; p++) {
        if (*p != '{')
            continue;
        int which;
        size_t n = placeholder_at(p, &which);
        if (n && which < 0)
            return rag_fail(RAG_EINVAL,
                            "source_template: unknown placeholder '{%.*s}' at byte %zu (known: "
                            "{n} {title} {source} {doc_id} {date} {age} {score})",
                            (int)n, p + 1, (size_t)(p - tmpl));
    }
    return RAG_OK;
}

/* ---- passages ----------------------------------------------------------------------------- */

typedef struct ctx_chunk {
    uint64_t id, start, end;
    float score;
} ctx_chunk;

typedef struct passage {
    size_t src;                  /* index in build.sources */
    uint64_t start, end;         /* merged byte span in the document */
    char *text;                  /* the document's text[start, end) */
    size_t len;
    size_t first_chunk, nchunks; /* range of build.chunks, document order */
    size_t rank;                 /* rank of its best hit (0: best) */
    int tokens;                  /* of the whole text; -1 until counted */
    size_t keep;                 /* bytes kept when included (len unless truncated) */
    int included, truncated;
} passage;

typedef struct source {
    const rag_hit *hit;          /* its best hit (owned by the results) */
    size_t rank;
    int64_t time;                /* source_mtime, else ingested_at */
    size_t first_pass, npass;    /* range of build.passages, document order */
    size_t nincluded;
} source;

typedef struct build {
    rag_embedder *emb;
    int base_tokens;             /* the counter's result for "" (special tokens) */
    int rc;                      /* first counting failure */
    const char *tmpl;
    rag_context_format fmt;      /* TEXT or MARKDOWN layout */
    int64_t now;
    ctx_chunk *chunks;
    size_t nchunks;
    passage *passages;
    size_t npass;
    source *sources;
    size_t nsources;
    size_t *src_order;           /* source indices by rank */
} build;

typedef struct ranked_hit {
    const rag_hit *h;
    size_t rank;
} ranked_hit;

static int cmp_doc_order(const void *a, const void *b)
{
    const ranked_hit *x = a, *y = b;
    int c = strcmp(x->h->doc_id, y->h->doc_id);
    if (c)
        return c;
    if (x->h->start != y->h->start)
        return x->h->start < y->h->start ? -1 : 1;
    if (x->h->end != y->h->end)
        return x->h->end > y->h->end ? -1 : 1;
    return x->rank < y->rank ? -1 : x->rank > y->rank;
}

/* Sets b up to count tokens with embedder emb (the count of "" is what every encoding
 * carries). */
static void counter_init(build *b, rag_embedder *emb)
{
    b->emb = emb;
    b->base_tokens = rag_embedder_count_tokens(emb, "", 0);
    if (b->base_tokens < 0)
        b->base_tokens = 0;
}

/* Tokens of s[0, n) without the tokenizer's fixed special tokens ([CLS] [SEP]: the count of
 * "" is subtracted). A counting failure is recorded in b->rc and counts as over any budget. */
static int count_tokens(build *b, const char *s, size_t n)
{
    if (n == 0)
        return 0;
    int t = rag_embedder_count_tokens(b->emb, s, n);
    if (t < 0) {
        if (b->rc == RAG_OK)
            b->rc = rag_fail(t, "counting tokens of the context failed");
        return RAG_CONTEXT_MAX_BUDGET + 1;
    }
    return t > b->base_tokens ? t - b->base_tokens : 0;
}

/* Groups hits by document and merges chunks whose spans overlap or touch into passages.
 * A chunk whose text length disagrees with its span is kept as a passage of its own. */
static int group_hits(build *b, const rag_results *res)
{
    size_t n = rag_results_count(res);
    int rc = RAG_OK;
    ranked_hit *rh = NULL;
    if (n == 0)
        return RAG_OK;
    if (!(rh = rag_malloc(n * sizeof *rh)) || !(b->chunks = rag_calloc(n, sizeof *b->chunks)) ||
        !(b->passages = rag_calloc(n, sizeof *b->passages)) ||
        !(b->sources = rag_calloc(n, sizeof *b->sources)) ||
        !(b->src_order = rag_malloc(n * sizeof *b->src_order))) {
        rc = RAG_ENOMEM;
        goto cleanup;
    }
    for (size_t i = 0; i < n; i++)
        rh[i] = (ranked_hit){rag_results_get(res, i), i};
    if (n)
        qsort(rh, n, sizeof *rh, cmp_doc_order);

    passage *cur = NULL;
    int mergeable = 0;
    for (size_t i = 0; i < n; i++) {
        const rag_hit *h = rh[i].h;
        int valid = h->end >= h->start && h->end - h->start == h->text_len;
        if (i == 0 || strcmp(h->doc_id, rh[i - 1].h->doc_id) != 0) {
            source *s = &b->sources[b->nsources++];
            s->hit = h;
            s->rank = rh[i].rank;
            s->time = h->source_mtime > 0 ? h->source_mtime : h->ingested_at;
            s->first_pass = b->npass;
            cur = NULL;
        }
        source *s = &b->sources[b->nsources - 1];
        if (rh[i].rank < s->rank) {
            s->rank = rh[i].rank;
            s->hit = h;
        }
        b->chunks[b->nchunks++] = (ctx_chunk){h->chunk_id, h->start, h->end, h->score};
        if (cur && mergeable && valid && h->start <= cur->end) {
            /* Overlapping or touching: append what lies past the passage's end. */
            if (h->end > cur->end) {
                size_t off = (size_t)(cur->end - h->start);
                while (off < h->text_len && ((unsigned char)h->text[off] & 0xC0) == 0x80)
                    off++; /* defensive: never start inside a UTF-8 sequence */
                char *t = rag_realloc(cur->text, cur->len + (h->text_len - off) + 1);
                if (!t) {
                    rc = RAG_ENOMEM;
                    goto cleanup;
                }
                memcpy(t + cur->len, h->text + off, h->text_len - off);
                cur->len += h->text_len - off;
                t[cur->len] = '\0';
                cur->text = t;
                cur->end = h->end;
            }
            cur->nchunks++;
            if (rh[i].rank < cur->rank)
                cur->rank = rh[i].rank;
            continue;
        }
        cur = &b->passages[b->npass++];
        cur->src = b->nsources - 1;
        cur->start = h->start;
        cur->end = valid ? h->end : h->start + h->text_len;
        if (!(cur->text = rag_strndup(h->text, h->text_len))) {
            rc = RAG_ENOMEM;
            goto cleanup;
        }
        cur->len = h->text_len;
        cur->first_chunk = b->nchunks - 1;
        cur->nchunks = 1;
        cur->rank = rh[i].rank;
        cur->tokens = -1;
        mergeable = valid;
        s->npass++;
    }
    for (size_t i = 0; i < b->nsources; i++)
        b->src_order[i] = i;

cleanup:
    free(rh);
    return rc;
}

static int cmp_src_rank(const void *a, const void *b, void *arg)
{
    const build *bd = arg;
    size_t ra = bd->sources[*(const size_t *)a].rank;
    size_t rb = bd->sources[*(const size_t *)b].rank;
    return ra < rb ? -1 : ra > rb;
}

static int cmp_pass_rank(const void *a, const void *b, void *arg)
{
    const build *bd = arg;
    size_t ra = bd->passages[*(const size_t *)a].rank;
    size_t rb = bd->passages[*(const size_t *)b].rank;
    return ra < rb ? -1 : ra > rb;
}

/* ---- rendering ---------------------------------------------------------------------------- */

/* Appends the header of source s, cited as number n. */
static void render_header(const build *b, const source *s, int n, sbuf *out)
{
    const rag_hit *h = s->hit;
    for (const char *p = b->tmpl; *p; p++) {
        int which;
        size_t len = *p == '{' ? placeholder_at(p, &which) : 0;
        if (!len || which < 0) {
            sb_add(out, p, 1);
            continue;
        }
        char tmp[64];
        switch (which) {
        case 0: snprintf(tmp, sizeof tmp, "%d", n); sb_str(out, tmp); break;
        case 1: sb_clean(out, h->title[0] ? h->title : h->doc_id); break;
        case 2: sb_clean(out, h->source[0] ? h->source : h->doc_id); break;
        case 3: sb_clean(out, h->doc_id); break;
        case 4: rag_date_string(s->time, tmp, sizeof tmp); sb_str(out, tmp); break;
        case 5:
            if (s->time > 0)
                rag_age_phrase(b->now - s->time, tmp, sizeof tmp);
            else
                snprintf(tmp, sizeof tmp, "age unknown");
            sb_str(out, tmp);
            break;
        default: snprintf(tmp, sizeof tmp, "%.3f", (double)h->score); sb_str(out, tmp); break;
        }
        p += len + 1;
    }
}

static const char *header_sep(const build *b)
{
    return b->fmt == RAG_CONTEXT_MARKDOWN ? "\n\n" : "\n";
}

/* Renders the included passages: sources by rank, numbered from 1, each a header and its
 * passages in document order. */
static void render(const build *b, sbuf *out)
{
    int n = 0;
    out->len = 0;
    sb_add(out, "", 0);
    for (size_t k = 0; k < b->nsources; k++) {
        const source *s = &b->sources[b->src_order[k]];
        if (!s->nincluded)
            continue;
        if (n++)
            sb_str(out, BLOCK_SEP);
        render_header(b, s, n, out);
        sb_str(out, header_sep(b));
        int first = 1, prev_trunc = 0;
        for (size_t i = s->first_pass; i < s->first_pass + s->npass; i++) {
            const passage *p = &b->passages[i];
            if (!p->included)
                continue;
            if (!first)
                sb_str(out, prev_trunc ? " " : PASSAGE_JOIN);
            sb_add(out, p->text, p->keep);
            if (p->truncated)
                sb_str(out, TRUNC_MARK);
            first = 0;
            prev_trunc = p->truncated;
        }
    }
}

/* ---- budget ------------------------------------------------------------------------------- */

static int is_space(char c)
{
    return c == ' ' || c == '\n' || c == '\t' || c == '\r';
}

/* Largest cut among cuts[0, n) whose prefix has at most `room` tokens; its token count
 * goes to *tokens. Returns 0 when none fits. Token counts grow with the prefix. */
static size_t best_cut(build *b, const char *text, const size_t *cuts, size_t n, int room,
                       int *tokens)
{
    size_t lo = 0, hi = n, best = 0;
    *tokens = 0;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int t = count_tokens(b, text, cuts[mid]);
        if (t <= room) {
            best = cuts[mid];
            *tokens = t;
            lo = mid + 1;
        } else {
            hi = mid;
        }
    }
    return best;
}

/* Picks where to cut passage p so that its prefix has at most `room` tokens: at the end
 * of a sentence (". " "! " "? " or after 。！？) when that keeps at least half of what a cut
 * between words would, else between words. Returns the kept byte count (0: nothing fits)
 * and its tokens in *tokens. */
static int truncate_point(build *b, const passage *p, int room, size_t *keep, int *tokens)
{
    const char *t = p->text;
    size_t *words = NULL, *sents = NULL, nw = 0, ns = 0;
    *keep = 0;
    *tokens = 0;
    if (!(words = rag_malloc((p->len + 1) * sizeof *words)) ||
        !(sents = rag_malloc((p->len + 1) * sizeof *sents))) {
        free(words);
        return RAG_ENOMEM;
    }
    for (size_t i = 1; i < p->len; i++) {
        if (is_space(t[i]) && !is_space(t[i - 1])) {
            words[nw++] = i;
            if (t[i - 1] == '.' || t[i - 1] == '!' || t[i - 1] == '?')
                sents[ns++] = i;
        }
        if (i >= 3 && ((unsigned char)t[i] & 0xC0) != 0x80 &&
            (memcmp(t + i - 3, "\u3002", 3) == 0 || memcmp(t + i - 3, "\uff01", 3) == 0 ||
             memcmp(t + i - 3, "\uff1f", 3) == 0) && (!ns || sents[ns - 1] != i)) {
            sents[ns++] = i;
            if (!nw || words[nw - 1] != i)
                words[nw++] = i;
        }
    }
    int wt, st;
    size_t w = best_cut(b, t, words, nw, room, &wt);
    size_t s = best_cut(b, t, sents, ns, room, &st);
    if (s && st * 2 >= wt) {
        *keep = s;
        *tokens = st;
    } else {
        *keep = w;
        *tokens = wt;
    }
    free(words);
    free(sents);
    return RAG_OK;
}

/* Includes passages in relevance order while the estimated total stays within the budget
 * (headers, separators and truncation marks counted), then renders and trims the last
 * inclusions until the exact count of the whole rendering fits. */
static int fit_budget(build *b, int budget, sbuf *out, int *tokens)
{
    int rc = RAG_OK;
    size_t *order = NULL, norder = 0;
    sbuf hdr = {0};
    if (b->npass && !(order = rag_malloc(b->npass * sizeof *order)))
        return RAG_ENOMEM;
    for (size_t i = 0; i < b->npass; i++)
        order[i] = i;
    if (b->npass)
        qsort_r(order, b->npass, sizeof *order, cmp_pass_rank, b);

    const int t_block = count_tokens(b, BLOCK_SEP, strlen(BLOCK_SEP));
    const int t_hsep = count_tokens(b, header_sep(b), strlen(header_sep(b)));
    const int t_join = count_tokens(b, PASSAGE_JOIN, strlen(PASSAGE_JOIN));
    const int t_trunc = count_tokens(b, TRUNC_MARK, strlen(TRUNC_MARK));
    long long used = 0;
    int nsrc = 0;
    for (size_t k = 0; k < b->npass; k++) {
        passage *p = &b->passages[order[k]];
        source *s = &b->sources[p->src];
        long long overhead;
        if (s->nincluded) {
            overhead = t_join;
        } else {
            hdr.len = 0;
            render_header(b, s, nsrc + 1, &hdr);
            if (hdr.oom) {
                rc = RAG_ENOMEM;
                goto cleanup;
            }
            overhead = (nsrc ? t_block : 0) + count_tokens(b, hdr.p, hdr.len) + t_hsep;
        }
        if (p->tokens < 0)
            p->tokens = count_tokens(b, p->text, p->len);
        if (used + overhead + p->tokens <= budget) {
            p->keep = p->len;
            used += overhead + p->tokens;
        } else {
            long long room = budget - used - overhead - t_trunc;
            if (room + t_trunc < RAG_CONTEXT_MIN_TRUNCATE || room <= 0)
                continue;
            size_t keep;
            int kt;
            if ((rc = truncate_point(b, p, (int)room, &keep, &kt)) != RAG_OK)
                goto cleanup;
            if (keep == 0)
                continue;
            p->keep = keep;
            p->truncated = 1;
            used += overhead + kt + t_trunc;
        }
        p->included = 1;
        order[norder++] = order[k]; /* reuse the array: inclusion order (k >= norder) */
        if (!s->nincluded++)
            nsrc++;
    }
    for (;;) {
        render(b, out);
        if (out->oom) {
            rc = RAG_ENOMEM;
            goto cleanup;
        }
        *tokens = count_tokens(b, out->p, out->len);
        if (b->rc != RAG_OK) {
            rc = b->rc;
            goto cleanup;
        }
        if (*tokens <= budget || norder == 0)
            break;
        passage *p = &b->passages[order[--norder]]; /* the estimate was short: drop the last */
        p->included = 0;
        b->sources[p->src].nincluded--;
    }

cleanup:
    free(order);
    free(hdr.p);
    return rc;
}

/* ---- JSON --------------------------------------------------------------------------------- */

static json_t *jnum(double v)
{
    return json_real(isfinite(v) ? v : 0.0);
}

static int build_json(const build *b, const char *context, int tokens, int no_conf, int stale,
                      char **out)
{
    json_t *root = json_object(), *srcs = json_array();
    int rc = RAG_ENOMEM;
    *out = NULL;
    if (!root || !srcs)
        goto cleanup;
    for (size_t k = 0; k < b->nsources; k++) {
        const source *s = &b->sources[b->src_order[k]];
        if (!s->nincluded)
            continue;
        json_t *o = json_object(), *chunks = json_array();
        if (!o || !chunks || json_array_append_new(srcs, o) != 0) {
            json_decref(o);
            json_decref(chunks);
            goto cleanup;
        }
        json_object_set_new(o, "doc_id", json_string(s->hit->doc_id));
        json_object_set_new(o, "source", json_string(s->hit->source));
        json_object_set_new(o, "title", json_string(s->hit->title));
        json_object_set_new(o, "source_mtime", json_integer(s->hit->source_mtime));
        json_object_set_new(o, "ingested_at", json_integer(s->hit->ingested_at));
        if (json_object_set_new(o, "chunks", chunks) != 0)
            goto cleanup;
        for (size_t i = s->first_pass; i < s->first_pass + s->npass; i++) {
            const passage *p = &b->passages[i];
            if (!p->included)
                continue;
            uint64_t kept_end = p->start + p->keep;
            for (size_t c = p->first_chunk; c < p->first_chunk + p->nchunks; c++) {
                const ctx_chunk *ck = &b->chunks[c];
                if (ck->start >= kept_end && ck->start != p->start)
                    continue; /* cut off by truncation */
                json_t *co = json_object();
                if (!co || json_array_append_new(chunks, co) != 0)
                    goto cleanup;
                json_object_set_new(co, "chunk_id", json_integer((json_int_t)ck->id));
                json_object_set_new(co, "start", json_integer((json_int_t)ck->start));
                uint64_t end = ck->end < kept_end ? ck->end : kept_end;
                json_object_set_new(co, "end", json_integer((json_int_t)end));
                json_object_set_new(co, "score", jnum(ck->score));
            }
        }
    }
    if (json_object_set_new(root, "context", json_string(context)) != 0 ||
        json_object_set_new(root, "sources", srcs) != 0)
        goto cleanup;
    srcs = NULL;
    json_object_set_new(root, "tokens", json_integer(tokens));
    json_object_set_new(root, "no_confident_context", json_boolean(no_conf));
    json_object_set_new(root, "stale_context", json_boolean(stale));
    if (!(*out = json_dumps(root, JSON_COMPACT)))
        goto cleanup;
    rc = RAG_OK;

cleanup:
    json_decref(srcs);
    json_decref(root);
    return rc == RAG_OK ? RAG_OK : rag_fail(RAG_ENOMEM, "building the context JSON: out of memory");
}

/* ---- public API --------------------------------------------------------------------------- */

void rag_context_options_init(rag_context_options *o)
{
    memset(o, 0, sizeof *o);
    o->version = RAG_CONTEXT_OPTIONS_VERSION;
    rag_search_options_init(&o->search);
    o->search.k = 0; /* rag_context's defaults: 20 chunks, MMR 0.7, 3 per document */
    o->budget_tokens = RAG_CONTEXT_DEFAULT_BUDGET;
    o->format = RAG_CONTEXT_TEXT;
}

static void build_free(build *b)
{
    for (size_t i = 0; i < b->npass; i++)
        free(b->passages[i].text);
    free(b->passages);
    free(b->chunks);
    free(b->sources);
    free(b->src_order);
}

int rag_context(rag_db *db, const char *query, const rag_context_options *opts,
                rag_prompt_context **out)
{
    rag_clear_error();
    if (!out)
        return rag_fail(RAG_EINVAL, "rag_context: out is NULL");
    *out = NULL;
    if (!db || !query)
        return rag_fail(RAG_EINVAL, "rag_context: %s is NULL", !db ? "db" : "query");
    rag_context_options o;
    rag_context_options_init(&o);
    if (opts) {
        if (opts->version < 1)
            return rag_fail(RAG_EINVAL,
                            "context options version is 0 (call rag_context_options_init)");
        o = *opts;
    }
    if (o.budget_tokens == 0)
        o.budget_tokens = RAG_CONTEXT_DEFAULT_BUDGET;
    if (o.budget_tokens < 0 || o.budget_tokens > RAG_CONTEXT_MAX_BUDGET)
        return rag_fail(RAG_EINVAL, "budget_tokens must be 1..%d, got %d", RAG_CONTEXT_MAX_BUDGET,
                        o.budget_tokens);
    if (o.format != RAG_CONTEXT_TEXT && o.format != RAG_CONTEXT_MARKDOWN &&
        o.format != RAG_CONTEXT_JSON)
        return rag_fail(RAG_EINVAL, "unknown context format %d (text 0, markdown 1, json 2)",
                        (int)o.format);
    if (o.stale_after < 0)
        return rag_fail(RAG_EINVAL, "stale_after must not be negative, got %lld",
                        (long long)o.stale_after);
    if (o.stale_after == 0)
        o.stale_after = RAG_CONTEXT_DEFAULT_STALE;
    if (o.source_template && !*o.source_template)
        return rag_fail(RAG_EINVAL, "source_template is empty (NULL selects the default)");
    if (o.source_template && rag_context_template_check(o.source_template) != RAG_OK)
        return RAG_EINVAL;
    if (o.search.version < 1)
        return rag_fail(RAG_EINVAL, "search options version is 0 (call rag_context_options_init)");
    if (o.search.k == 0)
        o.search.k = RAG_CONTEXT_DEFAULT_K;
    if (o.search.mmr_lambda == 0)
        o.search.mmr_lambda = RAG_CONTEXT_DEFAULT_MMR;
    if (o.search.per_doc == 0)
        o.search.per_doc = RAG_CONTEXT_DEFAULT_PER_DOC;

    build b;
    memset(&b, 0, sizeof b);
    counter_init(&b, db->emb);
    b.fmt = o.format == RAG_CONTEXT_MARKDOWN ? RAG_CONTEXT_MARKDOWN : RAG_CONTEXT_TEXT;
    b.tmpl = o.source_template ? o.source_template
             : b.fmt == RAG_CONTEXT_MARKDOWN ? MARKDOWN_TEMPLATE : TEXT_TEMPLATE;
    b.now = o.search.now ? o.search.now : (int64_t)rag_now();
    rag_results *res = NULL;
    rag_prompt_context *ctx = NULL;
    sbuf text = {0};
    int rc = rag_search(db, query, &o.search, &res);
    if (rc != RAG_OK)
        goto cleanup;
    if ((rc = group_hits(&b, res)) != RAG_OK)
        goto cleanup;
    if (b.nsources)
        qsort_r(b.src_order, b.nsources, sizeof *b.src_order, cmp_src_rank, &b);
    if (!(ctx = rag_calloc(1, sizeof *ctx))) {
        rc = RAG_ENOMEM;
        goto cleanup;
    }
    if ((rc = fit_budget(&b, o.budget_tokens, &text, &ctx->tokens)) != RAG_OK)
        goto cleanup;
    ctx->no_confident = rag_results_no_confident_context(res);
    int64_t freshest = 0;
    for (size_t i = 0; i < b.nsources; i++)
        if (b.sources[i].nincluded && b.sources[i].time > freshest)
            freshest = b.sources[i].time;
    ctx->stale = freshest > 0 && b.now - freshest > o.stale_after;
    if ((rc = build_json(&b, text.p, ctx->tokens, ctx->no_confident, ctx->stale, &ctx->json)) !=
        RAG_OK)
        goto cleanup;
    if (o.format == RAG_CONTEXT_JSON) {
        ctx->text = rag_strdup(ctx->json);
    } else {
        ctx->text = text.p;
        text.p = NULL;
    }
    if (!ctx->text)
        rc = RAG_ENOMEM;

cleanup:
    free(text.p);
    build_free(&b);
    rag_results_free(res);
    if (rc != RAG_OK) {
        rag_context_free(ctx);
        return rc == RAG_ENOMEM ? rag_fail(rc, "building the context: out of memory") : rc;
    }
    *out = ctx;
    return RAG_OK;
}

const char *rag_context_text(const rag_prompt_context *ctx)
{
    return ctx ? ctx->text : NULL;
}

const char *rag_context_json(const rag_prompt_context *ctx)
{
    return ctx ? ctx->json : NULL;
}

int rag_context_tokens(const rag_prompt_context *ctx)
{
    return ctx ? ctx->tokens : 0;
}

int rag_count_tokens(rag_db *db, const char *text, size_t len, size_t *tokens)
{
    rag_clear_error();
    if (!db || (!text && len) || !tokens)
        return rag_fail(RAG_EINVAL, "rag_count_tokens: NULL argument");
    *tokens = 0;
    build b;
    memset(&b, 0, sizeof b);
    counter_init(&b, db->emb);
    int t = count_tokens(&b, text, len);
    if (b.rc != RAG_OK)
        return b.rc;
    *tokens = (size_t)t;
    return RAG_OK;
}

int rag_context_no_confident(const rag_prompt_context *ctx)
{
    return ctx ? ctx->no_confident : 1;
}

int rag_context_stale(const rag_prompt_context *ctx)
{
    return ctx ? ctx->stale : 0;
}

void rag_context_free(rag_prompt_context *ctx)
{
    if (!ctx)
        return;
    free(ctx->text);
    free(ctx->json);
    free(ctx);
}
