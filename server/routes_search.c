/* routes_search.c - search and prompt-ready context over HTTP: request parsing (the
 * library's search-option table, restrictions, filters as expressions or JSON objects,
 * query vectors), hits written without a JSON tree, query-log entries. */
#include "handlers.h"

#include "clock.h"
#include "filter_json.h"
#include "json_writer.h"
#include "querylog.h"
#include "reqjson.h"
#include "vector_b64.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int json_depth(json_t *v)
{
    int best = 0;
    size_t i;
    const char *k;
    json_t *x;
    if (json_is_object(v)) {
        json_object_foreach(v, k, x) {
            int d = json_depth(x);
            if (d > best)
                best = d;
        }
        return best + 1;
    }
    if (json_is_array(v)) {
        json_array_foreach(v, i, x) {
            int d = json_depth(x);
            if (d > best)
                best = d;
        }
        return best + 1;
    }
    return 0;
}

/* Restriction parsed from a search request. Strings borrow from the request body. */
typedef struct search_req {
    const char *query;
    float *vector;
    const char **doc_ids;
    size_t n_doc_ids;
    const char *source_prefix;
    const char *filter;          /* library filter expression */
    char *filter_owned;          /* the expression translated from a JSON filter object */
} search_req;

/* Appends the strings of `v` (a string or an array of strings) to sr->doc_ids. */
static int add_doc_ids(http_req *r, search_req *sr, json_t *v, const char *path)
{
    size_t n = json_is_array(v) ? json_array_size(v) : 1;
    const char **p = realloc(sr->doc_ids, (sr->n_doc_ids + n + 1) * sizeof *p);
    if (!p) {
        http_error(r, 500, "internal", NULL, "out of memory");
        return -1;
    }
    sr->doc_ids = p;
    if (json_is_string(v)) {
        sr->doc_ids[sr->n_doc_ids++] = json_string_value(v);
        return 0;
    }
    if (!json_is_array(v) || json_array_size(v) == 0) {
        http_error(r, 400, "invalid_field", path, "'%s' must be a string or a non-empty array "
                   "of strings", path);
        return -1;
    }
    size_t i;
    json_t *x;
    json_array_foreach(v, i, x) {
        if (!json_is_string(x)) {
            http_error(r, 400, "invalid_field", path, "'%s[%zu]' must be a string", path, i);
            return -1;
        }
        sr->doc_ids[sr->n_doc_ids++] = json_string_value(x);
    }
    return 0;
}

/* "filter" is either a filter expression string passed to the library (e.g.
 * `lang = "en" AND year >= 2020`), or a JSON filter object translated into one
 * (filter_json.h: {"lang": "de", "year": {"$gte": 2015}}), of which "doc_id": ID |
 * {"$in": [IDs]} restricts the search to those documents and "source": {"$prefix": P} to
 * those sources. Nesting is limited to max-filter-depth (parentheses or JSON levels). */
static int parse_filter(http_req *r, search_req *sr, json_t *filter)
{
    const char *key;
    json_t *v;
    char path[256];
    long max_depth = atomic_load(&r->s->cfg.limits.max_filter_depth);
    if (json_is_string(filter)) {
        const char *f = json_string_value(filter);
        long depth = 0, worst = 0;
        for (const char *p = f; *p; p++) {
            depth += *p == '(' ? 1 : *p == ')' ? -1 : 0;
            worst = depth > worst ? depth : worst;
        }
        if (worst > max_depth) {
            http_error(r, 400, "invalid_field", "filter",
                       "'filter' nests %ld parentheses deep; the limit is %ld", worst, max_depth);
            return -1;
        }
        if (json_string_length(filter) > 8192) {
            http_error(r, 400, "invalid_field", "filter", "'filter' is longer than 8192 bytes");
            return -1;
        }
        sr->filter = *f ? f : NULL;
        return 0;
    }
    if (!json_is_object(filter)) {
        http_error(r, 400, "invalid_field", "filter",
                   "'filter' must be an expression string or an object");
        return -1;
    }
    if (json_depth(filter) > max_depth) {
        http_error(r, 400, "invalid_field", "filter", "'filter' nests deeper than %ld levels",
                   max_depth);
        return -1;
    }
    json_t *rest = json_object(); /* members for the filter language */
    int rc = -1;
    json_object_foreach(filter, key, v) {
        rj_path(path, sizeof path, "filter", key);
        json_t *in = json_is_object(v) && json_object_size(v) == 1 ? json_object_get(v, "$in")
                                                                   : NULL;
        json_t *pre = !strcmp(key, "source") && json_is_object(v) && json_object_size(v) == 1
                          ? json_object_get(v, "$prefix")
                          : NULL;
        if (!strcmp(key, "doc_id") && (json_is_string(v) || json_is_array(in))) {
            /* a restriction to documents: searched exactly, not filtered afterwards */
            if (add_doc_ids(r, sr, in ? in : v, path) < 0)
                goto cleanup;
        } else if (json_is_string(pre) && !sr->source_prefix) {
            sr->source_prefix = json_string_value(pre);
        } else {
            json_object_set(rest, key, v);
        }
    }
    if (json_object_size(rest)) {
        char field[256], msg[512];
        sr->filter_owned = filter_json_expr(rest, "filter", field, sizeof field, msg, sizeof msg);
        if (!sr->filter_owned) {
            if (*field)
                http_error(r, 400, "invalid_field", field, "%s", msg);
            else
                http_error(r, 500, "internal", NULL, "out of memory");
            goto cleanup;
        }
        sr->filter = sr->filter_owned;
    }
    rc = 0;
cleanup:
    json_decref(rest);
    return rc;
}

/* One hit as a JSON object (json_writer: a search's hits through jansson cost more CPU
 * than the vector search). The metadata is the store's own compact JSON text (validated
 * and re-dumped by the library at upsert), written as is. */
static void hit_write(jw *w, const rag_hit *h)
{
    jw_lit(w, "{\"doc_id\":");
    jw_cstr(w, h->doc_id);
    jw_field_int(w, "chunk_id", (long long)h->chunk_id);
    jw_field_real(w, "score", h->score);
    jw_lit(w, ",\"text\":");
    jw_str(w, h->text, h->text_len);
    jw_field_str(w, "title", h->title);
    jw_field_str(w, "source", h->source);
    jw_field_str(w, "heading_path", h->heading_path);
    jw_lit(w, ",\"metadata\":");
    if (h->metadata_json && *h->metadata_json)
        jw_raw(w, h->metadata_json, strlen(h->metadata_json));
    else
        jw_lit(w, "{}");
    jw_field_int(w, "start", (long long)h->start);
    jw_field_int(w, "end", (long long)h->end);
    jw_field_int(w, "token_count", h->token_count);
    jw_field_int(w, "source_mtime", h->source_mtime);
    jw_field_int(w, "ingested_at", h->ingested_at);
    jw_field_real(w, "dense_score", h->dense_score); /* NaN (not ranked by that side): null */
    jw_field_real(w, "lexical_score", h->lexical_score);
    jw_field_int(w, "dense_rank", h->dense_rank);
    jw_field_int(w, "lexical_rank", h->lexical_rank);
    jw_lit(w, "}");
}

/* Search options a handler reads itself: k (bounded by the server's max_k), the filter
 * (an expression or a JSON object) and source_prefix (also settable through the filter). */
static int handled_apart(const char *name)
{
    return !strcmp(name, "k") || !strcmp(name, "filter") || !strcmp(name, "source_prefix");
}

/* rj_only over the search options' names plus a handler's own fields `own`. */
static int only_search_fields(http_req *r, json_t *body, const char *const *own)
{
    const char *allowed[64];
    size_t n = 0;
    for (size_t i = 0; own[i] && n < 32; i++)
        allowed[n++] = own[i];
    for (size_t i = 0; i < rag_search_option_count() && n < 63; i++)
        allowed[n++] = rag_search_option_info(i)->name;
    allowed[n] = NULL;
    return rj_only(r, body, "", allowed);
}

/* Fills so from the search-option fields of a body, as the library declares them
 * (rag_search_option_*: names, types, ranges); *mode receives the "mode" text when given.
 * 0, or -1 after 400. */
static int parse_tuning(http_req *r, json_t *body, rag_search_options *so, const char **mode)
{
    for (size_t i = 0; i < rag_search_option_count(); i++) {
        const rag_option_info *in = rag_search_option_info(i);
        json_t *v = json_object_get(body, in->name);
        if (!v || json_is_null(v) || handled_apart(in->name))
            continue;
        char num[64];
        const char *text;
        int numeric = in->type == RAG_OPTION_INT || in->type == RAG_OPTION_REAL;
        if (numeric && (in->type == RAG_OPTION_INT ? !json_is_integer(v) : !json_is_number(v))) {
            http_error(r, 400, "invalid_field", in->name, "'%s' must be %s", in->name,
                       in->type == RAG_OPTION_INT ? "an integer" : "a number");
            return -1;
        }
        if (!numeric && !json_is_string(v)) {
            http_error(r, 400, "invalid_field", in->name, "'%s' must be a string", in->name);
            return -1;
        }
        if (numeric) {
            snprintf(num, sizeof num, "%.17g", json_number_value(v));
            text = num;
        } else {
            text = json_string_value(v);
        }
        if (rag_search_option_set(so, in->name, text) != RAG_OK) {
            http_error(r, 400, "invalid_field", in->name, "%s", rag_errmsg());
            return -1;
        }
        if (!strcmp(in->name, "mode"))
            *mode = text;
    }
    return 0;
}

/* Parses "vector" into sr->vector (dim floats): an array of dim numbers, or a string, the
 * base64 of dim little-endian float32 values (OpenAI's encoding_format "base64"). Either may
 * have been read by rj_body_lift (`lifted`; v is then "" or []); an array's numbers are
 * taken over from it. 0, or -1 after a 400 or 500. */
static int parse_vector(http_req *r, json_t *v, rj_lifted *lifted, search_req *sr)
{
    const size_t dim = (size_t)r->s->dim;
    double norm = 0;
    const int numbers = lifted->kind == RJ_LIFT_NUMBERS;
    if (!(json_is_array(v) && (numbers ? lifted->count : json_array_size(v)) == dim) &&
        !json_is_string(v)) {
        http_error(r, 400, "invalid_field", "vector",
                   "'vector' must be an array of %zu numbers (the store's dimension) or the "
                   "base64 of %zu little-endian float32 values",
                   dim, dim);
        return -1;
    }
    if (numbers) { /* read by rj_body_lift, as jansson would have */
        sr->vector = lifted->numbers;
        lifted->numbers = NULL;
    } else if (!(sr->vector = malloc(dim * sizeof *sr->vector))) {
        http_error(r, 500, "internal", NULL, "out of memory");
        return -1;
    }
    const int lifted_text = lifted->kind == RJ_LIFT_STRING;
    const char *text = lifted_text ? lifted->text : json_string_value(v);
    const size_t text_len = lifted_text ? lifted->len : json_string_length(v);
    int b64 = json_is_string(v) ? vector_b64_decode(text, text_len, sr->vector, dim) : 0;
    if (b64 == -2) {
        http_error(r, 500, "internal", NULL, "out of memory");
        return -1;
    }
    if (b64 < 0) {
        http_error(r, 400, "invalid_field", "vector",
                   "'vector' as a string must be the base64 of %zu little-endian float32 values "
                   "(%zu bytes: %zu characters, padded, no whitespace), got %zu characters",
                   dim, dim * 4, (dim * 4 + 2) / 3 * 4, text_len);
        return -1;
    }
    for (size_t i = 0; i < dim; i++) {
        if (json_is_array(v) && !numbers) {
            json_t *x = json_array_get(v, i);
            sr->vector[i] = json_is_number(x) ? (float)json_number_value(x) : NAN;
        }
        if (!isfinite(sr->vector[i])) {
            http_error(r, 400, "invalid_field", "vector",
                       "'vector[%zu]' must be a finite %s", i,
                       json_is_array(v) ? "number" : "float32 (not NaN or infinite)");
            return -1;
        }
        norm += (double)sr->vector[i] * sr->vector[i];
    }
    if (norm == 0) {
        http_error(r, 400, "invalid_field", "vector", "'vector' must not be all zeros");
        return -1;
    }
    return 0;
}

/* A text query whose toxicity score reaches this is counted as flagged in /metrics. */
#define QUERY_TOXICITY_THRESHOLD 0.5

/* Queues the query-log entry of a search (written as text: no JSON tree per search): the
 * collection, request and key ids, k, mode, latency, confidence, each hit's chunk id, doc
 * id and score, the query text (or the vector's dimension), its toxicity score (when the
 * detectors are pulled) and the tuning fields given. */
static void search_log(http_req *r, json_t *body, const search_req *sr,
                       const rag_search_options *so, const rag_results *res,
                       const char *mode_name, double took, char qid[25])
{
    static const char *const LOGGED[] = {"filter",     "doc_ids",    "source_prefix", "fusion",
                                         "rrf_k",      "dense_weight", "candidates",
                                         "mmr_lambda", "per_doc",    "collapse_threshold", NULL};
    const size_t n = rag_results_count(res);
    jw e;
    json_t *v;
    jw_init(&e, 512 + 96 * n);
    jw_lit(&e, "\"collection\":");
    jw_cstr(&e, so->collection);
    jw_field_str(&e, "request_id", r->request_id);
    jw_field_str(&e, "key_id", auth_key_id(r->key));
    jw_field_int(&e, "k", so->k);
    jw_field_str(&e, "mode", mode_name);
    jw_field_real(&e, "latency_ms", took);
    jw_lit(&e, ",\"no_confident_context\":");
    jw_bool(&e, rag_results_no_confident_context(res));
    jw_lit(&e, ",\"results\":[");
    for (size_t i = 0; i < n; i++) {
        const rag_hit *h = rag_results_get(res, i);
        if (i)
            jw_lit(&e, ",");
        jw_lit(&e, "{\"chunk_id\":");
        jw_int(&e, (long long)h->chunk_id);
        jw_field_str(&e, "doc_id", h->doc_id);
        jw_field_real(&e, "score", h->score);
        jw_lit(&e, "}");
    }
    jw_lit(&e, "]");
    char *query = sr->query ? qlog_text(r->s->qlog, sr->query) : NULL;
    if (query)
        jw_field_str(&e, "query", query);
    else if (!sr->query)
        jw_field_int(&e, "vector_dim", r->s->dim);
    free(query);
    rag_toxicity_result tr;
    if (sr->query && r->s->tox &&
        rag_toxicity_score(r->s->tox, sr->query, strlen(sr->query), &tr) == RAG_OK) {
        jw_field_real(&e, "toxicity", tr.score);
        metrics_query_toxicity(r->s->metrics, tr.score >= QUERY_TOXICITY_THRESHOLD);
    }
    for (size_t i = 0; LOGGED[i]; i++) {
        if (!(v = json_object_get(body, LOGGED[i])) || json_is_null(v))
            continue;
        char *text = json_dumps(v, JSON_COMPACT | JSON_PRESERVE_ORDER | JSON_ENCODE_ANY);
        char *kept = text && (json_is_string(v) || json_is_array(v) || json_is_object(v))
                         ? qlog_text(r->s->qlog, text) : text; /* may quote data */
        json_t *check = kept ? json_loads(kept, JSON_DECODE_ANY, NULL) : NULL;
        if (check) /* a detector's span crossed the JSON syntax: the field is not kept */
            jw_field_raw(&e, LOGGED[i], kept, strlen(kept));
        json_decref(check);
        if (kept != text)
            free(kept);
        free(text);
    }
    size_t len;
    char *fields = jw_finish(&e, &len);
    if (fields)
        qlog_record_fields(r->s->qlog, fields, len, qid);
    free(fields);
}

void h_search(http_req *r, const char *const *params)
{
    const char *c = params[0];
    static const char *const OWN[] = {"query", "vector", "doc_ids", NULL};
    static const char *const MODES[] = {"hybrid", "dense", "lexical"};
    srv *s = r->s;
    search_req sr;
    rag_search_options so;
    json_t *body = NULL, *v;
    rag_results *res = NULL;
    const char *mode = NULL;
    rj_lifted lifted = {0};
    long long k = 10;
    double t0 = srv_monotonic();

    memset(&sr, 0, sizeof sr);
    rag_search_options_init(&so);
    /* a "vector" (2 KB of base64 or 384 numbers) is read from the body itself */
    if (!(body = rj_body_lift(r, "vector", 256, &lifted)) ||
        only_search_fields(r, body, OWN) < 0 || parse_tuning(r, body, &so, &mode) < 0)
        goto cleanup;
    if (rj_string(r, body, "", "query", 0, 1, (size_t)atomic_load(&s->cfg.limits.max_query_bytes),
                  &sr.query) < 0 ||
        rj_int(r, body, "", "k", 0, 1, atomic_load(&s->cfg.limits.max_k), &k) < 0 ||
        rj_string(r, body, "", "source_prefix", 0, 0, 4096, &sr.source_prefix) < 0)
        goto cleanup;
    v = json_object_get(body, "vector");
    if (v && !json_is_null(v)) {
        if (sr.query) {
            http_error(r, 400, "invalid_field", "vector", "give either 'query' or 'vector', not both");
            goto cleanup;
        }
        if (mode && so.mode != RAG_MODE_DENSE) {
            http_error(r, 400, "invalid_field", "mode",
                       "a 'vector' search is dense; mode \"%s\" needs a text 'query'", mode);
            goto cleanup;
        }
        so.mode = RAG_MODE_DENSE;
        if (parse_vector(r, v, &lifted, &sr) < 0)
            goto cleanup;
    } else if (!sr.query) {
        http_error(r, 400, "missing_field", "query", "give 'query' (text) or 'vector'");
        goto cleanup;
    }
    if ((v = json_object_get(body, "doc_ids")) && !json_is_null(v) &&
        add_doc_ids(r, &sr, v, "doc_ids") < 0)
        goto cleanup;
    if ((v = json_object_get(body, "filter")) && !json_is_null(v) && parse_filter(r, &sr, v) < 0)
        goto cleanup;

    so.collection = c;
    so.k = (int)k;
    so.doc_ids = sr.doc_ids;
    so.n_doc_ids = sr.n_doc_ids;
    so.source_prefix = sr.source_prefix && *sr.source_prefix ? sr.source_prefix : NULL;
    so.filter = sr.filter;
    int rc = sr.vector ? rag_search_vector(s->db, sr.vector, s->dim, &so, &res)
                       : rag_search(s->db, sr.query, &so, &res);
    if (rc != RAG_OK) {
        if (rc == RAG_ENOTFOUND)
            http_error(r, 404, "not_found", NULL, "collection '%s' does not exist", c);
        else if (rc == RAG_EPARSE && sr.filter)
            reply_rag_error(r, rc, "filter", "filter");
        else
            reply_rag_error(r, rc, sr.vector ? "vector" : "query", "search");
        goto cleanup;
    }
    size_t n = rag_results_count(res);
    if (n == 0 && require_collection(r, c, NULL) < 0)
        goto cleanup;
    const char *mode_name = (unsigned)so.mode < 3 ? MODES[so.mode] : "hybrid";
    jw w;
    jw_init(&w, 1024 + 768 * n);
    jw_lit(&w, "{\"results\":[");
    for (size_t i = 0; i < n; i++) {
        if (i)
            jw_lit(&w, ",");
        hit_write(&w, rag_results_get(res, i));
    }
    int unconfident = rag_results_no_confident_context(res);
    double took = (srv_monotonic() - t0) * 1000.0;
    char qid[25] = "";
    if (atomic_load(&s->cfg.limits.querylog) && s->qlog)
        search_log(r, body, &sr, &so, res, mode_name, took, qid);
    jw_lit(&w, "],\"no_confident_context\":");
    jw_bool(&w, unconfident);
    jw_field_str(&w, "mode", mode_name);
    jw_field_str(&w, "query_id", qid);
    jw_field_str(&w, "collection", c);
    jw_field_real(&w, "took_ms", took);
    jw_lit(&w, "}");
    size_t len;
    char *text = jw_finish(&w, &len);
    http_reply_json_text(r, 200, text, len);
cleanup:
    rag_results_free(res);
    free(sr.vector);
    free(sr.doc_ids);
    free(sr.filter_owned);
    rj_lifted_free(&lifted);
    json_decref(body);
}

/* What the query log keeps of a context: the chunk ids, documents and scores of its
 * passages ([{"chunk_id", "doc_id", "score"}]), never their text. */
static json_t *context_hits(const json_t *passages)
{
    json_t *hits = json_array(), *src, *ch;
    size_t i, k;
    json_array_foreach(json_object_get(passages, "sources"), i, src) {
        json_array_foreach(json_object_get(src, "chunks"), k, ch) {
            json_array_append_new(hits, json_pack("{s:O,s:O,s:O}", "chunk_id",
                                                  json_object_get(ch, "chunk_id"), "doc_id",
                                                  json_object_get(src, "doc_id"), "score",
                                                  json_object_get(ch, "score")));
        }
    }
    return hits;
}

#ifdef RAG_CONTEXT_OPTIONS_VERSION
/* Prompt-ready context (rag_context): the search fields plus budget_tokens, format
 * ("text", "markdown", "json"), stale_after (seconds) and source_template. */
void h_context(http_req *r, const char *const *params)
{
    const char *c = params[0];
    static const char *const OWN[] = {"query",  "doc_ids",     "budget_tokens",
                                      "format", "stale_after", "source_template", NULL};
    srv *s = r->s;
    search_req sr;
    rag_context_options co;
    rag_prompt_context *ctx = NULL;
    json_t *body = NULL, *v;
    const char *mode = NULL, *format = NULL, *tmpl = NULL;
    long long k = 0, budget = 0, stale = 0;
    double t0 = srv_monotonic();

    memset(&sr, 0, sizeof sr);
    rag_context_options_init(&co);
    if (!(body = rj_body(r)) || only_search_fields(r, body, OWN) < 0 ||
        parse_tuning(r, body, &co.search, &mode) < 0)
        goto cleanup;
    if (rj_string(r, body, "", "query", 1, 1, (size_t)atomic_load(&s->cfg.limits.max_query_bytes),
                  &sr.query) < 0 ||
        rj_int(r, body, "", "k", 0, 1, atomic_load(&s->cfg.limits.max_k), &k) < 0 ||
        rj_int(r, body, "", "budget_tokens", 0, 1, 1000000, &budget) < 0 ||
        rj_int(r, body, "", "stale_after", 0, 1, (long long)1 << 40, &stale) < 0 ||
        rj_string(r, body, "", "format", 0, 0, 16, &format) < 0 ||
        rj_string(r, body, "", "source_template", 0, 1, 4096, &tmpl) < 0 ||
        rj_string(r, body, "", "source_prefix", 0, 0, 4096, &sr.source_prefix) < 0)
        goto cleanup;
    if (format && strcmp(format, "text") && strcmp(format, "markdown") && strcmp(format, "json")) {
        http_error(r, 400, "invalid_field", "format",
                   "'format' must be \"text\", \"markdown\" or \"json\", got \"%s\"", format);
        goto cleanup;
    }
    if ((v = json_object_get(body, "doc_ids")) && !json_is_null(v) &&
        add_doc_ids(r, &sr, v, "doc_ids") < 0)
        goto cleanup;
    if ((v = json_object_get(body, "filter")) && !json_is_null(v) && parse_filter(r, &sr, v) < 0)
        goto cleanup;
    co.search.collection = c;
    if (k)
        co.search.k = (int)k;
    co.search.doc_ids = sr.doc_ids;
    co.search.n_doc_ids = sr.n_doc_ids;
    co.search.source_prefix = sr.source_prefix && *sr.source_prefix ? sr.source_prefix : NULL;
    co.search.filter = sr.filter;
    if (budget)
        co.budget_tokens = (int)budget;
    if (stale)
        co.stale_after = stale;
    if (tmpl)
        co.source_template = tmpl;
    if (format)
        co.format = !strcmp(format, "markdown") ? RAG_CONTEXT_MARKDOWN
                    : !strcmp(format, "json")   ? RAG_CONTEXT_JSON
                                                : RAG_CONTEXT_TEXT;
    int rc = rag_context(s->db, sr.query, &co, &ctx);
    if (rc != RAG_OK) {
        if (rc == RAG_ENOTFOUND)
            http_error(r, 404, "not_found", NULL, "collection '%s' does not exist", c);
        else
            reply_rag_error(r, rc, rc == RAG_EPARSE && sr.filter ? "filter" : NULL, "context");
        goto cleanup;
    }
    json_t *passages = json_loads(rag_context_json(ctx), 0, NULL);
    double took = (srv_monotonic() - t0) * 1000.0;
    char qid[25] = "";
    if (atomic_load(&s->cfg.limits.querylog) && s->qlog) {
        char *query = qlog_text(s->qlog, sr.query);
        json_t *e = json_pack("{s:s,s:s,s:s,s:s,s:i,s:f,s:b}", "endpoint", "context",
                              "collection", c, "request_id", r->request_id, "key_id",
                              auth_key_id(r->key), "budget_tokens", co.budget_tokens,
                              "latency_ms", took, "no_confident_context",
                              rag_context_no_confident(ctx));
        if (e && query)
            json_object_set_new(e, "query", json_string(query));
        free(query);
        if (e)
            json_object_set_new(e, "context", context_hits(passages));
        qlog_record(s->qlog, e, qid);
    }
    http_reply_json(r, 200, json_pack("{s:s,s:s,s:i,s:b,s:i,s:o,s:s,s:f}", "context",
                                      rag_context_text(ctx), "format", format ? format : "text",
                                      "tokens", rag_context_tokens(ctx), "no_confident_context",
                                      rag_context_no_confident(ctx), "stale",
                                      rag_context_stale(ctx), "passages",
                                      passages ? passages : json_null(), "query_id", qid,
                                      "took_ms", took));
cleanup:
    rag_context_free(ctx);
    free(sr.doc_ids);
    free(sr.filter_owned);
    json_decref(body);
}
#else
void h_context(http_req *r, const char *const *params)
{
    const char *c = params[0];
    if (require_collection(r, c, NULL) < 0)
        return;
    http_error(r, 501, "not_implemented", NULL,
               "prompt-ready context is not available in this build of the library");
}
#endif

