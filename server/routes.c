/* routes.c - the HTTP API: routing, authorisation and the request handlers. */
#include "routes.h"

#include "assets.h"
#include "clock.h"
#include "log.h"
#include "openapi.h"
#include "json_writer.h"
#include "ratelimit.h"
#include "reqjson.h"
#include "vector_b64.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

static const char *const ROUTE_NAMES[ROUTE_COUNT] = {
    [ROUTE_OTHER] = "ANY other",
    [ROUTE_DASHBOARD] = "GET /",
    [ROUTE_HEALTHZ] = "GET /healthz",
    [ROUTE_READYZ] = "GET /readyz",
    [ROUTE_METRICS] = "GET /metrics",
    [ROUTE_OPENAPI] = "GET /openapi.json",
    [ROUTE_EMBEDDINGS] = "POST /v1/embeddings",
    [ROUTE_COLL_LIST] = "GET /v1/collections",
    [ROUTE_COLL_CREATE] = "POST /v1/collections",
    [ROUTE_COLL_GET] = "GET /v1/collections/{collection}",
    [ROUTE_COLL_DELETE] = "DELETE /v1/collections/{collection}",
    [ROUTE_DOCS_UPSERT] = "POST /v1/collections/{collection}/documents",
    [ROUTE_DOC_GET] = "GET /v1/collections/{collection}/documents/{id}",
    [ROUTE_DOC_DELETE] = "DELETE /v1/collections/{collection}/documents/{id}",
    [ROUTE_SEARCH] = "POST /v1/collections/{collection}/search",
    [ROUTE_CONTEXT] = "POST /v1/collections/{collection}/context",
    [ROUTE_KEYS_LIST] = "GET /v1/keys",
    [ROUTE_KEYS_CREATE] = "POST /v1/keys",
    [ROUTE_KEYS_REVOKE] = "DELETE /v1/keys/{id}",
    [ROUTE_QUERYLOG] = "GET /v1/querylog",
};

const char *route_name(int id)
{
    return id >= 0 && id < ROUTE_COUNT ? ROUTE_NAMES[id] : ROUTE_NAMES[ROUTE_OTHER];
}

const char *const *route_names(void)
{
    return ROUTE_NAMES;
}

/* ------------------------------------------------------------------------------------ */
/* Authorisation and error mapping.                                                      */

/* Identifies the caller (Authorization: Bearer KEY, or X-API-Key) and checks `scope` and,
 * when not NULL, the grant of `collection`. 0, or -1 after answering 401/403. */
static int authorize(http_req *r, unsigned scope, const char *collection)
{
    if (!r->key) {
        const char *presented = http_header(r, "X-API-Key");
        const char *authz = http_header(r, "Authorization");
        if (authz && !strncasecmp(authz, "Bearer ", 7)) {
            presented = authz + 7;
            while (*presented == ' ')
                presented++;
        }
        if (!presented || !*presented) {
            http_error(r, 401, "unauthorized", NULL,
                       "an API key is required (Authorization: Bearer KEY or X-API-Key: KEY)");
            r->hdr_name = "WWW-Authenticate";
            snprintf(r->hdr_value, sizeof r->hdr_value, "Bearer");
            return -1;
        }
        r->key = auth_check(r->s->auth, presented);
        if (!r->key) {
            http_error(r, 401, "unauthorized", NULL, "unknown or revoked API key");
            r->hdr_name = "WWW-Authenticate";
            snprintf(r->hdr_value, sizeof r->hdr_value, "Bearer error=\"invalid_token\"");
            return -1;
        }
        if (ratelimit_request(r) < 0)
            return -1;
    }
    if (!auth_allows(r->key, scope, NULL)) {
        http_error(r, 403, "forbidden", NULL, "API key '%s' lacks the '%s' scope",
                   auth_key_id(r->key),
                   scope == SCOPE_ADMIN     ? "admin"
                   : scope == SCOPE_WRITE   ? "write"
                   : scope == SCOPE_METRICS ? "metrics"
                                            : "read");
        return -1;
    }
    if (collection && !auth_allows(r->key, scope, collection)) {
        http_error(r, 403, "forbidden", NULL, "API key '%s' is not granted collection '%s'",
                   auth_key_id(r->key), collection);
        return -1;
    }
    return 0;
}

/* Answers a failed library call with the status its code calls for. `field` names the
 * request field an EINVAL-like code is about (may be NULL). */
static void reply_rag_error(http_req *r, int rc, const char *field, const char *what)
{
    const char *msg = rag_errmsg();
    if (!msg || !*msg)
        msg = rag_strerror(rc);
    switch (rc) {
    case RAG_EINVAL:
    case RAG_EPARSE:
    case RAG_EENCODING:
        http_error(r, 400, "invalid_field", field, "%s: %s", what, msg);
        break;
    case RAG_ENOTFOUND:
        http_error(r, 404, "not_found", NULL, "%s: %s", what, msg);
        break;
    case RAG_EEXIST:
        http_error(r, 409, "already_exists", field, "%s: %s", what, msg);
        break;
    case RAG_EREADONLY:
        http_error(r, 403, "read_only", NULL, "%s: the store is open read-only", what);
        break;
    case RAG_EFULL:
        http_error(r, 507, "store_full", NULL, "%s: %s", what, msg);
        break;
    default:
        log_msg("error", "internal", "%s: %s (%s)", what, msg, rag_strerror(rc));
        http_error(r, 500, "internal", NULL, "%s: %s (%s)", what, msg, rag_strerror(rc));
        break;
    }
}

/* 404 unless collection c exists; fills info when not NULL. 0 or -1 (answered). */
static int require_collection(http_req *r, const char *c, rag_collection_info *info)
{
    rag_collection_info tmp;
    int rc = rag_collection_stats(r->s->db, c, info ? info : &tmp);
    if (rc == RAG_ENOTFOUND) {
        http_error(r, 404, "not_found", NULL, "collection '%s' does not exist", c);
        return -1;
    }
    if (rc != RAG_OK) {
        reply_rag_error(r, rc, NULL, "collection stats");
        return -1;
    }
    return 0;
}

static int valid_collection_name(const char *s)
{
    size_t n = strlen(s);
    if (n < 1 || n > 128)
        return 0;
    for (; *s; s++)
        if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') ||
              (*s >= '0' && *s <= '9') || *s == '_' || *s == '-' || *s == '.'))
            return 0;
    return 1;
}

static json_t *info_json(const char *name, const rag_collection_info *in)
{
    return json_pack("{s:s,s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I}", "name", name, "documents",
                     (json_int_t)in->documents, "chunks", (json_int_t)in->chunks,
                     "duplicate_chunks", (json_int_t)in->duplicate_chunks, "tombstones",
                     (json_int_t)in->tombstones, "index_vectors", (json_int_t)in->index_vectors,
                     "bytes_text", (json_int_t)in->bytes_text, "created_at",
                     (json_int_t)in->created_at, "newest_ingest", (json_int_t)in->newest_ingest);
}

/* ------------------------------------------------------------------------------------ */
/* Operational endpoints.                                                                */

static void h_healthz(http_req *r)
{
    static const char OK[] = "{\"status\":\"ok\"}";
    http_reply(r, 200, "application/json", OK, sizeof OK - 1, 1);
}

static void h_readyz(http_req *r)
{
    srv *s = r->s;
    if (atomic_load(&s->draining)) {
        http_error(r, 503, "draining", NULL, "the server is shutting down");
        return;
    }
    if (!atomic_load(&s->ready)) {
        http_error(r, 503, "not_ready", NULL, "the store is still opening");
        return;
    }
    http_reply_json(r, 200, json_pack("{s:s,s:s,s:i,s:s,s:s}", "status", "ready", "embedder",
                                      rag_db_embedder(s->db), "dim", s->dim, "index",
                                      rag_db_index_spec(s->db), "version", rag_version()));
}

/* metrics_render's filter: the collections r->key may read metrics of. */
static int metrics_granted(void *user, const char *collection)
{
    return auth_allows(((http_req *)user)->key, SCOPE_METRICS, collection);
}

/* Needs a key with the metrics scope, which sees the series of its granted collections;
 * with --metrics-public, a request without a key sees the process-level series only. */
static void h_metrics(http_req *r)
{
    srv *s = r->s;
    size_t len = 0;
    int ready = atomic_load(&s->ready);
    int conns[1024]; /* --threads is at most 1024 */
    int anonymous = atomic_load(&s->cfg.limits.metrics_public) &&
                    !http_header(r, "Authorization") && !http_header(r, "X-API-Key");
    if (!anonymous && authorize(r, SCOPE_METRICS, NULL) < 0)
        return;
    int nloops = http_loop_connections(s, conns, (int)(sizeof conns / sizeof *conns));
    char *text = metrics_render(s->metrics, ready ? s->db : NULL,
                                anonymous ? NULL : metrics_granted, r,
                                atomic_load(&s->inflight), conns, nloops, ready, &len);
    if (!text) {
        http_error(r, 500, "internal", NULL, "out of memory rendering metrics");
        return;
    }
    http_reply(r, 200, "text/plain; version=0.0.4; charset=utf-8", text, len, 0);
    free(text);
}

static void h_openapi(http_req *r)
{
    size_t len = 0;
    const char *doc = openapi_document(&len);
    if (!doc) {
        http_error(r, 500, "internal", NULL, "cannot build the OpenAPI document");
        return;
    }
    http_reply(r, 200, "application/json", doc, len, 1);
}

static void h_dashboard(http_req *r)
{
    http_reply(r, 200, "text/html; charset=utf-8", (const char *)srv_asset_dashboard,
               srv_asset_dashboard_len, 1);
}

/* ------------------------------------------------------------------------------------ */
/* Collections.                                                                          */

static void h_coll_list(http_req *r)
{
    char **names = NULL;
    size_t count = 0;
    if (authorize(r, SCOPE_READ, NULL) < 0)
        return;
    int rc = rag_collection_list(r->s->db, &names, &count);
    if (rc != RAG_OK) {
        reply_rag_error(r, rc, NULL, "list collections");
        return;
    }
    json_t *arr = json_array();
    for (size_t i = 0; i < count; i++) {
        rag_collection_info in;
        if (!auth_allows(r->key, SCOPE_READ, names[i]))
            continue;
        if (rag_collection_stats(r->s->db, names[i], &in) == RAG_OK)
            json_array_append_new(arr, info_json(names[i], &in));
    }
    rag_strings_free(names, count);
    http_reply_json(r, 200, json_pack("{s:o}", "collections", arr));
}

typedef struct name_job {
    char *name;
    char *id;
} name_job;

static void name_job_free(void *p)
{
    name_job *j = p;
    free(j->name);
    free(j->id);
    free(j);
}

static name_job *name_job_new(const char *name, const char *id)
{
    name_job *j = calloc(1, sizeof *j);
    if (!j || !(j->name = strdup(name)) || (id && !(j->id = strdup(id)))) {
        if (j)
            name_job_free(j);
        return NULL;
    }
    return j;
}

static void w_coll_create(http_req *r, void *arg)
{
    name_job *j = arg;
    rag_collection_info in;
    int rc = rag_collection_create(r->s->db, j->name);
    if (rc == RAG_EEXIST) {
        http_error(r, 409, "already_exists", "name", "collection '%s' already exists", j->name);
        return;
    }
    if (rc != RAG_OK) {
        reply_rag_error(r, rc, "name", "create collection");
        return;
    }
    if (rag_collection_stats(r->s->db, j->name, &in) != RAG_OK)
        memset(&in, 0, sizeof in);
    http_reply_json(r, 201, info_json(j->name, &in));
}

static void h_coll_create(http_req *r)
{
    const char *name;
    static const char *const FIELDS[] = {"name", NULL};
    json_t *body = NULL;
    if (authorize(r, SCOPE_WRITE, NULL) < 0 || !(body = rj_body(r)))
        goto cleanup;
    if (rj_only(r, body, "", FIELDS) < 0 || rj_string(r, body, "", "name", 1, 1, 128, &name) < 0)
        goto cleanup;
    if (!valid_collection_name(name)) {
        http_error(r, 400, "invalid_field", "name",
                   "'name' must be 1..128 letters, digits, '_', '-' or '.'");
        goto cleanup;
    }
    if (authorize(r, SCOPE_WRITE, name) < 0)
        goto cleanup;
    name_job *j = name_job_new(name, NULL);
    if (!j) {
        http_error(r, 500, "internal", NULL, "out of memory");
        goto cleanup;
    }
    http_defer(r, w_coll_create, j, name_job_free);
cleanup:
    json_decref(body);
}

static void h_coll_get(http_req *r, const char *c)
{
    rag_collection_info in;
    if (authorize(r, SCOPE_READ, c) < 0 || require_collection(r, c, &in) < 0)
        return;
    http_reply_json(r, 200, info_json(c, &in));
}

static void w_coll_delete(http_req *r, void *arg)
{
    name_job *j = arg;
    int rc = rag_collection_drop(r->s->db, j->name);
    if (rc == RAG_ENOTFOUND) {
        http_error(r, 404, "not_found", NULL, "collection '%s' does not exist", j->name);
        return;
    }
    if (rc != RAG_OK) {
        reply_rag_error(r, rc, NULL, "drop collection");
        return;
    }
    http_reply_json(r, 200, json_pack("{s:s,s:b}", "name", j->name, "deleted", 1));
}

static void h_coll_delete(http_req *r, const char *c)
{
    if (authorize(r, SCOPE_WRITE, c) < 0)
        return;
    name_job *j = name_job_new(c, NULL);
    if (!j) {
        http_error(r, 500, "internal", NULL, "out of memory");
        return;
    }
    http_defer(r, w_coll_delete, j, name_job_free);
}

/* ------------------------------------------------------------------------------------ */
/* Documents.                                                                            */

typedef struct ingest_job {
    char *collection;
    json_t *body;           /* keeps the strings the documents borrow */
    rag_document *docs;
    char **metadata;        /* serialised metadata objects, one per document (or NULL) */
    size_t n;
} ingest_job;

static void ingest_job_free(void *p)
{
    ingest_job *j = p;
    if (!j)
        return;
    for (size_t i = 0; i < j->n; i++)
        free(j->metadata[i]);
    free(j->metadata);
    free(j->docs);
    json_decref(j->body);
    free(j->collection);
    free(j);
}

static void w_ingest(http_req *r, void *arg)
{
    ingest_job *j = arg;
    rag_ingest_stats st;
    double t0 = srv_monotonic();
    memset(&st, 0, sizeof st);
    int rc = rag_ingest(r->s->db, j->collection, j->docs, j->n, &st);
    if (rc != RAG_OK) {
        reply_rag_error(r, rc, "documents", "ingest");
        return;
    }
    metrics_ingest(r->s->metrics, &st, srv_monotonic() - t0);
    http_reply_json(r, 200, json_pack("{s:s,s:I,s:I,s:I,s:I,s:I}", "collection", j->collection,
                                      "documents", (json_int_t)st.documents, "replaced",
                                      (json_int_t)st.replaced, "chunks", (json_int_t)st.chunks,
                                      "duplicate_chunks", (json_int_t)st.duplicate_chunks, "bytes",
                                      (json_int_t)st.bytes));
}

static void h_docs_upsert(http_req *r, const char *c)
{
    static const char *const FIELDS[] = {"documents", NULL};
    static const char *const DOC_FIELDS[] = {"id",           "text",   "title", "source",
                                             "metadata",     "format", "source_mtime", NULL};
    ingest_job *j = NULL;
    json_t *body = NULL, *docs;
    char prefix[64], path[128];

    if (authorize(r, SCOPE_WRITE, c) < 0 || !(body = rj_body(r)) ||
        rj_only(r, body, "", FIELDS) < 0)
        goto cleanup;
    docs = json_object_get(body, "documents");
    if (!docs) {
        http_error(r, 400, "missing_field", "documents", "'documents' is required");
        goto cleanup;
    }
    if (!json_is_array(docs) || json_array_size(docs) == 0) {
        http_error(r, 400, "invalid_field", "documents", "'documents' must be a non-empty array");
        goto cleanup;
    }
    long max_batch = atomic_load(&r->s->cfg.limits.max_batch);
    if ((long)json_array_size(docs) > max_batch) {
        http_error(r, 400, "invalid_field", "documents",
                   "%zu documents in one request; the limit is %ld", json_array_size(docs),
                   max_batch);
        goto cleanup;
    }
    if (!(j = calloc(1, sizeof *j)) || !(j->collection = strdup(c)) ||
        !(j->docs = calloc(json_array_size(docs), sizeof *j->docs)) ||
        !(j->metadata = calloc(json_array_size(docs), sizeof *j->metadata))) {
        http_error(r, 500, "internal", NULL, "out of memory");
        goto cleanup;
    }
    size_t i;
    json_t *d;
    json_array_foreach(docs, i, d) {
        rag_document *doc = &j->docs[i];
        const char *fmt = NULL;
        long long mtime = 0;
        snprintf(prefix, sizeof prefix, "documents[%zu]", i);
        if (!json_is_object(d)) {
            http_error(r, 400, "invalid_field", prefix, "'%s' must be an object", prefix);
            goto cleanup;
        }
        rag_document_init(doc);
        j->n = i + 1;
        if (rj_only(r, d, prefix, DOC_FIELDS) < 0 ||
            rj_string(r, d, prefix, "id", 1, 1, RAG_DOC_ID_MAX, &doc->id) < 0 ||
            rj_string(r, d, prefix, "text", 1, 0, (size_t)-1, &doc->text) < 0 ||
            rj_string(r, d, prefix, "title", 0, 0, 4096, &doc->title) < 0 ||
            rj_string(r, d, prefix, "source", 0, 0, 4096, &doc->source) < 0 ||
            rj_string(r, d, prefix, "format", 0, 0, 16, &fmt) < 0 ||
            rj_int(r, d, prefix, "source_mtime", 0, 0, (long long)1 << 40, &mtime) < 0)
            goto cleanup;
        doc->text_len = json_string_length(json_object_get(d, "text"));
        doc->source_mtime = mtime;
        if (fmt && !strcmp(fmt, "markdown"))
            doc->format = RAG_FORMAT_MARKDOWN;
        else if (fmt && strcmp(fmt, "text")) {
            http_error(r, 400, "invalid_field", rj_path(path, sizeof path, prefix, "format"),
                       "'%s' must be \"text\" or \"markdown\"", path);
            goto cleanup;
        }
        json_t *meta = json_object_get(d, "metadata");
        if (meta && !json_is_null(meta)) {
            if (!json_is_object(meta)) {
                http_error(r, 400, "invalid_field", rj_path(path, sizeof path, prefix, "metadata"),
                           "'%s' must be an object", path);
                goto cleanup;
            }
            j->metadata[i] = json_dumps(meta, JSON_COMPACT | JSON_PRESERVE_ORDER);
            doc->metadata_json = j->metadata[i];
        }
    }
    if (require_collection(r, c, NULL) < 0)
        goto cleanup;
    j->body = body;
    body = NULL;
    http_defer(r, w_ingest, j, ingest_job_free);
    j = NULL;
cleanup:
    ingest_job_free(j);
    json_decref(body);
}

static int cmp_hit_start(const void *a, const void *b)
{
    const rag_hit *x = *(const rag_hit *const *)a, *y = *(const rag_hit *const *)b;
    return x->start < y->start ? -1 : x->start > y->start;
}

static json_t *metadata_value(const char *text)
{
    json_t *v = text && *text ? json_loads(text, 0, NULL) : NULL;
    return v ? v : json_object();
}

static void h_doc_get(http_req *r, const char *c, const char *id)
{
    rag_results *res = NULL;
    const rag_hit **hits = NULL;
    float *probe = NULL;
    if (authorize(r, SCOPE_READ, c) < 0 || require_collection(r, c, NULL) < 0)
        return;
    /* The chunks of one document: a vector search restricted to its id returns all of
     * them (the restriction never lets other chunks take a slot). */
    rag_search_options so;
    rag_search_options_init(&so);
    so.collection = c;
    so.k = 10000;
    so.doc_ids = &id;
    so.n_doc_ids = 1;
    if (!(probe = calloc((size_t)r->s->dim, sizeof *probe))) {
        http_error(r, 500, "internal", NULL, "out of memory");
        goto cleanup;
    }
    probe[0] = 1.0f;
    int rc = rag_search_vector(r->s->db, probe, r->s->dim, &so, &res);
    if (rc != RAG_OK) {
        reply_rag_error(r, rc, NULL, "get document");
        goto cleanup;
    }
    size_t n = rag_results_count(res);
    if (n == 0) {
        http_error(r, 404, "not_found", NULL, "document '%s' does not exist in collection '%s'",
                   id, c);
        goto cleanup;
    }
    if (!(hits = calloc(n, sizeof *hits))) {
        http_error(r, 500, "internal", NULL, "out of memory");
        goto cleanup;
    }
    for (size_t i = 0; i < n; i++)
        hits[i] = rag_results_get(res, i);
    if (n)
        qsort(hits, n, sizeof *hits, cmp_hit_start);
    json_t *chunks = json_array();
    for (size_t i = 0; i < n; i++) {
        const rag_hit *h = hits[i];
        json_array_append_new(chunks, json_pack("{s:I,s:I,s:I,s:i,s:s,s:s%}", "chunk_id",
                                                (json_int_t)h->chunk_id, "start",
                                                (json_int_t)h->start, "end", (json_int_t)h->end,
                                                "token_count", h->token_count, "heading_path",
                                                h->heading_path, "text", h->text, h->text_len));
    }
    const rag_hit *h = hits[0];
    http_reply_json(r, 200, json_pack("{s:s,s:s,s:s,s:s,s:o,s:I,s:I,s:o}", "collection", c, "id",
                                      h->doc_id, "title", h->title, "source", h->source,
                                      "metadata", metadata_value(h->metadata_json),
                                      "source_mtime", (json_int_t)h->source_mtime, "ingested_at",
                                      (json_int_t)h->ingested_at, "chunks", chunks));
cleanup:
    free(hits);
    free(probe);
    rag_results_free(res);
}

static void w_doc_delete(http_req *r, void *arg)
{
    name_job *j = arg;
    int rc = rag_delete(r->s->db, j->name, j->id);
    if (rc == RAG_ENOTFOUND) {
        http_error(r, 404, "not_found", NULL, "document '%s' does not exist in collection '%s'",
                   j->id, j->name);
        return;
    }
    if (rc != RAG_OK) {
        reply_rag_error(r, rc, NULL, "delete document");
        return;
    }
    http_reply_json(r, 200, json_pack("{s:s,s:s,s:b}", "collection", j->name, "id", j->id,
                                      "deleted", 1));
}

static void h_doc_delete(http_req *r, const char *c, const char *id)
{
    if (authorize(r, SCOPE_WRITE, c) < 0 || require_collection(r, c, NULL) < 0)
        return;
    name_job *j = name_job_new(c, id);
    if (!j) {
        http_error(r, 500, "internal", NULL, "out of memory");
        return;
    }
    http_defer(r, w_doc_delete, j, name_job_free);
}

/* ------------------------------------------------------------------------------------ */
/* Search.                                                                               */

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
 * `lang = "en" AND year >= 2020`), or an object {"doc_id": ID | {"$in": [IDs]}, "source":
 * {"$prefix": P}}. Nesting is limited to max-filter-depth (parentheses or JSON levels). */
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
    json_object_foreach(filter, key, v) {
        rj_path(path, sizeof path, "filter", key);
        if (!strcmp(key, "doc_id")) {
            if (json_is_object(v)) {
                json_t *in = json_object_get(v, "$in");
                if (!json_is_array(in) || json_object_size(v) != 1) {
                    http_error(r, 400, "invalid_field", path,
                               "'%s' supports a string or {\"$in\": [ids]}", path);
                    return -1;
                }
                if (add_doc_ids(r, sr, in, path) < 0)
                    return -1;
            } else if (add_doc_ids(r, sr, v, path) < 0) {
                return -1;
            }
        } else if (!strcmp(key, "source")) {
            json_t *pre = json_is_object(v) ? json_object_get(v, "$prefix") : NULL;
            if (!pre || json_object_size(v) != 1 || !json_is_string(pre)) {
                http_error(r, 400, "invalid_field", path,
                           "'%s' supports {\"$prefix\": \"string\"}", path);
                return -1;
            }
            sr->source_prefix = json_string_value(pre);
        } else {
            http_error(r, 400, "unsupported_filter", path,
                       "filter object key '%s' is not supported (doc_id, source; use a filter "
                       "expression string for metadata)", key);
            return -1;
        }
    }
    return 0;
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

/* Queues the query-log entry of a search (written as text: no JSON tree per search): the
 * collection, request and key ids, k, mode, latency, confidence, each hit's chunk id, doc
 * id and score, the query text (or the vector's dimension) and the tuning fields given. */
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
    if (sr->query)
        jw_field_str(&e, "query", sr->query);
    else
        jw_field_int(&e, "vector_dim", r->s->dim);
    for (size_t i = 0; LOGGED[i]; i++) {
        if (!(v = json_object_get(body, LOGGED[i])) || json_is_null(v))
            continue;
        char *text = json_dumps(v, JSON_COMPACT | JSON_PRESERVE_ORDER | JSON_ENCODE_ANY);
        if (text)
            jw_field_raw(&e, LOGGED[i], text, strlen(text));
        free(text);
    }
    size_t len;
    char *fields = jw_finish(&e, &len);
    if (fields)
        qlog_record_fields(r->s->qlog, fields, len, qid);
    free(fields);
}

static void h_search(http_req *r, const char *c)
{
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
    if (authorize(r, SCOPE_READ, c) < 0 ||
        !(body = rj_body_lift(r, "vector", 256, &lifted)) ||
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
    rj_lifted_free(&lifted);
    json_decref(body);
}

#ifdef RAG_CONTEXT_OPTIONS_VERSION
/* Prompt-ready context (rag_context): the search fields plus budget_tokens, format
 * ("text", "markdown", "json"), stale_after (seconds) and source_template. */
static void h_context(http_req *r, const char *c)
{
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
    if (authorize(r, SCOPE_READ, c) < 0 || !(body = rj_body(r)) ||
        only_search_fields(r, body, OWN) < 0 || parse_tuning(r, body, &co.search, &mode) < 0)
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
        json_t *e = json_pack("{s:s,s:s,s:s,s:s,s:s,s:i,s:f,s:b}", "endpoint", "context",
                              "collection", c, "request_id", r->request_id, "key_id",
                              auth_key_id(r->key), "query", sr.query, "budget_tokens",
                              co.budget_tokens, "latency_ms", took, "no_confident_context",
                              rag_context_no_confident(ctx));
        if (passages)
            json_object_set(e, "context", passages);
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
    json_decref(body);
}
#else
static void h_context(http_req *r, const char *c)
{
    if (authorize(r, SCOPE_READ, c) < 0 || require_collection(r, c, NULL) < 0)
        return;
    http_error(r, 501, "not_implemented", NULL,
               "prompt-ready context is not available in this build of the library");
}
#endif

/* ------------------------------------------------------------------------------------ */
/* Embeddings (OpenAI-compatible).                                                       */

static size_t count_words(const char *s)
{
    size_t n = 0;
    int in = 0;
    for (; *s; s++) {
        int sp = *s == ' ' || *s == '\n' || *s == '\t' || *s == '\r';
        if (!sp && !in)
            n++;
        in = !sp;
    }
    return n;
}

static void h_embeddings(http_req *r)
{
    static const char *const FIELDS[] = {"input", "model", "encoding_format", "dimensions",
                                         "user",  "input_type", NULL};
    srv *s = r->s;
    json_t *body = NULL, *input;
    const char **texts = NULL;
    float *out = NULL;
    const char *model = NULL, *enc = NULL, *user = NULL, *itype = NULL;
    long long dims = 0;
    size_t n = 0;

    if (authorize(r, SCOPE_READ, NULL) < 0 || !(body = rj_body(r)) ||
        rj_only(r, body, "", FIELDS) < 0 ||
        rj_string(r, body, "", "model", 0, 0, 256, &model) < 0 ||
        rj_string(r, body, "", "encoding_format", 0, 0, 16, &enc) < 0 ||
        rj_string(r, body, "", "user", 0, 0, 256, &user) < 0 ||
        rj_string(r, body, "", "input_type", 0, 0, 16, &itype) < 0 ||
        rj_int(r, body, "", "dimensions", 0, 1, 65536, &dims) < 0)
        goto cleanup;
    if (enc && strcmp(enc, "float") && strcmp(enc, "base64")) {
        http_error(r, 400, "invalid_field", "encoding_format",
                   "'encoding_format' must be \"float\" or \"base64\"");
        goto cleanup;
    }
    if (itype && strcmp(itype, "query") && strcmp(itype, "document")) {
        http_error(r, 400, "invalid_field", "input_type",
                   "'input_type' must be \"query\" or \"document\"");
        goto cleanup;
    }
    if (dims && dims != s->dim) {
        http_error(r, 400, "invalid_field", "dimensions",
                   "'dimensions' must be %d (the embedder's dimension)", s->dim);
        goto cleanup;
    }
    input = json_object_get(body, "input");
    if (!input) {
        http_error(r, 400, "missing_field", "input", "'input' is required");
        goto cleanup;
    }
    n = json_is_array(input) ? json_array_size(input) : 1;
    if (!json_is_string(input) && !(json_is_array(input) && n > 0)) {
        http_error(r, 400, "invalid_field", "input",
                   "'input' must be a string or a non-empty array of strings");
        goto cleanup;
    }
    long max_inputs = atomic_load(&s->cfg.limits.max_embed_inputs);
    if ((long)n > max_inputs) {
        http_error(r, 400, "invalid_field", "input", "%zu inputs; the limit is %ld", n,
                   max_inputs);
        goto cleanup;
    }
    if (!(texts = calloc(n, sizeof *texts)) ||
        !(out = malloc(n * (size_t)s->dim * sizeof *out))) {
        http_error(r, 500, "internal", NULL, "out of memory");
        goto cleanup;
    }
    size_t tokens = 0;
    double cost = 0; /* estimated encoder tokens: the per-call cap and the key's budget */
    for (size_t i = 0; i < n; i++) {
        json_t *x = json_is_array(input) ? json_array_get(input, i) : input;
        if (!json_is_string(x) || json_string_length(x) == 0) {
            char path[64];
            snprintf(path, sizeof path, json_is_array(input) ? "input[%zu]" : "input", i);
            http_error(r, 400, "invalid_field", path, "'%s' must be a non-empty string "
                       "(token arrays are not supported)", path);
            goto cleanup;
        }
        texts[i] = json_string_value(x);
        tokens += count_words(texts[i]);
        size_t t = 0;
        if (rag_count_tokens(s->db, texts[i], json_string_length(x), &t) != RAG_OK)
            t = json_string_length(x) / 4 + 1; /* a tokenizer failure is the embed's to report */
        cost += (double)t;
    }
    long max_cost = atomic_load(&s->cfg.limits.max_embed_tokens);
    if (cost > (double)max_cost) {
        http_error(r, 400, "invalid_field", "input",
                   "the inputs hold about %.0f tokens; the limit per call is %ld", cost,
                   max_cost);
        goto cleanup;
    }
    if (ratelimit_tokens(r, cost) < 0)
        goto cleanup;
    double t0 = srv_monotonic();
    int rc = rag_embed(s->db, texts, n, itype && !strcmp(itype, "query"), out);
    if (rc != RAG_OK) {
        reply_rag_error(r, rc, "input", "embed");
        goto cleanup;
    }
    metrics_embed(s->metrics, n, srv_monotonic() - t0);
    json_t *data = json_array();
    for (size_t i = 0; i < n; i++) {
        json_t *emb;
        if (enc && !strcmp(enc, "base64")) {
            char *b64 = vector_b64_encode(out + i * (size_t)s->dim, (size_t)s->dim);
            emb = b64 ? json_string(b64) : json_null();
            free(b64);
        } else {
            emb = json_array();
            for (int d = 0; d < s->dim; d++)
                json_array_append_new(emb, json_real(out[i * (size_t)s->dim + (size_t)d]));
        }
        json_array_append_new(data, json_pack("{s:s,s:I,s:o}", "object", "embedding", "index",
                                              (json_int_t)i, "embedding", emb));
    }
    http_reply_json(r, 200, json_pack("{s:s,s:o,s:s,s:{s:I,s:I}}", "object", "list", "data", data,
                                      "model", rag_db_embedder(s->db), "usage", "prompt_tokens",
                                      (json_int_t)tokens, "total_tokens", (json_int_t)tokens));
cleanup:
    free(texts);
    free(out);
    json_decref(body);
}

/* ------------------------------------------------------------------------------------ */
/* Admin: keys and the query log.                                                        */

static void h_keys_list(http_req *r)
{
    if (authorize(r, SCOPE_ADMIN, NULL) < 0)
        return;
    http_reply_json(r, 200, json_pack("{s:o}", "keys", auth_list(r->s->auth)));
}

static void h_keys_create(http_req *r)
{
    static const char *const FIELDS[] = {"name", "scopes", "collections", NULL};
    json_t *body = NULL, *scopes, *colls, *record = NULL, *x;
    const char **names = NULL;
    const char *name;
    char *secret = NULL;
    unsigned mask = 0;
    size_t i, ncoll = 0;
    char path[64];

    if (authorize(r, SCOPE_ADMIN, NULL) < 0 || !(body = rj_body(r)) ||
        rj_only(r, body, "", FIELDS) < 0 || rj_string(r, body, "", "name", 1, 1, 128, &name) < 0)
        goto cleanup;
    scopes = json_object_get(body, "scopes");
    if (!json_is_array(scopes) || json_array_size(scopes) == 0) {
        http_error(r, 400, scopes ? "invalid_field" : "missing_field", "scopes",
                   "'scopes' must be a non-empty array of " AUTH_SCOPE_NAMES);
        goto cleanup;
    }
    json_array_foreach(scopes, i, x) {
        unsigned sc = json_is_string(x) ? auth_scope_parse(json_string_value(x)) : 0;
        if (!sc) {
            snprintf(path, sizeof path, "scopes[%zu]", i);
            http_error(r, 400, "invalid_field", path, "'%s' must be " AUTH_SCOPE_NAMES, path);
            goto cleanup;
        }
        mask |= sc;
    }
    colls = json_object_get(body, "collections");
    if (json_is_null(colls))
        colls = NULL; /* null means absent, as for every optional field */
    if (!colls && !(mask & SCOPE_ADMIN)) {
        http_error(r, 400, "missing_field", "collections",
                   "'collections' is required (collection names, or [\"*\"] for all)");
        goto cleanup;
    }
    if (colls && !json_is_array(colls)) {
        http_error(r, 400, "invalid_field", "collections", "'collections' must be an array");
        goto cleanup;
    }
    ncoll = json_array_size(colls);
    if (!(names = calloc(ncoll + 1, sizeof *names))) {
        http_error(r, 500, "internal", NULL, "out of memory");
        goto cleanup;
    }
    json_array_foreach(colls, i, x) {
        const char *c = json_string_value(x);
        if (!c || (strcmp(c, "*") && !valid_collection_name(c))) {
            snprintf(path, sizeof path, "collections[%zu]", i);
            http_error(r, 400, "invalid_field", path,
                       "'%s' must be a collection name or \"*\"", path);
            goto cleanup;
        }
        names[i] = c;
    }
    int rc = auth_create(r->s->auth, name, mask, names, ncoll, &secret, &record);
    if (rc != RAG_OK) {
        reply_rag_error(r, rc, NULL, "create key");
        goto cleanup;
    }
    json_object_set_new(record, "key", json_string(secret));
    http_reply_json(r, 201, record);
    record = NULL;
cleanup:
    if (secret)
        memset(secret, 0, strlen(secret));
    free(secret);
    free(names);
    json_decref(record);
    json_decref(body);
}

static void h_keys_revoke(http_req *r, const char *id)
{
    if (authorize(r, SCOPE_ADMIN, NULL) < 0)
        return;
    int rc = auth_revoke(r->s->auth, id);
    if (rc == RAG_ENOTFOUND) {
        http_error(r, 404, "not_found", NULL, "no API key with id '%s'", id);
        return;
    }
    if (rc == RAG_EINVAL) {
        http_error(r, 400, "invalid_field", "id",
                   "the bootstrap key comes from RAGCORE_ADMIN_KEY and cannot be revoked here");
        return;
    }
    if (rc != RAG_OK) {
        reply_rag_error(r, rc, NULL, "revoke key");
        return;
    }
    http_reply_json(r, 200, json_pack("{s:s,s:b}", "id", id, "revoked", 1));
}

static int query_long(http_req *r, const char *name, long long min, long long max,
                      long long *out)
{
    const char *v = http_query(r, name);
    char *end;
    if (!v)
        return 0;
    long long x = strtoll(v, &end, 10);
    if (!*v || *end || x < min || x > max) {
        http_error(r, 400, "invalid_field", name, "query parameter '%s' must be an integer in "
                   "%lld..%lld", name, min, max);
        return -1;
    }
    *out = x;
    return 1;
}

static void h_querylog(http_req *r)
{
    long long limit = 100, since = 0;
    const char *after = http_query(r, "after"), *coll = http_query(r, "collection");
    json_t *page = NULL;
    if (authorize(r, SCOPE_ADMIN, NULL) < 0 || query_long(r, "limit", 1, 1000, &limit) < 0 ||
        query_long(r, "since", 0, (long long)1 << 40, &since) < 0)
        return;
    int rc = after && !*after ? RAG_EINVAL /* as documented: 24 hex digits when given */
                              : qlog_page(r->s->qlog, after, since, coll, (long)limit, &page);
    if (rc == RAG_EINVAL) {
        http_error(r, 400, "invalid_field", "after",
                   "query parameter 'after' must be an entry id (24 hex digits)");
        return;
    }
    if (rc != RAG_OK) {
        reply_rag_error(r, rc, NULL, "query log");
        return;
    }
    http_reply_json(r, 200, page);
}

/* ------------------------------------------------------------------------------------ */
/* Routing.                                                                              */

static int is(const http_req *r, const char *method)
{
    return strcmp(r->method, method) == 0;
}

static void method_not_allowed(http_req *r, const char *allow)
{
    http_error(r, 405, "method_not_allowed", NULL, "%s is not allowed on %s (allowed: %s)",
               r->method, r->path, allow);
    r->hdr_name = "Allow";
    snprintf(r->hdr_value, sizeof r->hdr_value, "%s", allow);
}

/* Picks the route of r from its method and path; sets r->route and *a, *b to the path
 * parameters (pointers into buf). Returns a route id, or -1 after answering 404/405. */
static int match(http_req *r, char *buf, const char **a, const char **b)
{
    const char *p = r->path;
    *a = *b = NULL;
#define ONLY(m, id)                                                                        \
    do {                                                                                   \
        if (!is(r, m)) {                                                                   \
            method_not_allowed(r, m);                                                      \
            return -1;                                                                     \
        }                                                                                  \
        return id;                                                                         \
    } while (0)
    if (!strcmp(p, "/"))
        ONLY("GET", ROUTE_DASHBOARD);
    if (!strcmp(p, "/healthz"))
        ONLY("GET", ROUTE_HEALTHZ);
    if (!strcmp(p, "/readyz"))
        ONLY("GET", ROUTE_READYZ);
    if (!strcmp(p, "/metrics"))
        ONLY("GET", ROUTE_METRICS);
    if (!strcmp(p, "/openapi.json"))
        ONLY("GET", ROUTE_OPENAPI);
    if (!strcmp(p, "/v1/embeddings"))
        ONLY("POST", ROUTE_EMBEDDINGS);
    if (!strcmp(p, "/v1/querylog"))
        ONLY("GET", ROUTE_QUERYLOG);
    if (!strcmp(p, "/v1/collections") || !strcmp(p, "/v1/collections/")) {
        if (is(r, "GET"))
            return ROUTE_COLL_LIST;
        if (is(r, "POST"))
            return ROUTE_COLL_CREATE;
        method_not_allowed(r, "GET, POST");
        return -1;
    }
    if (!strcmp(p, "/v1/keys")) {
        if (is(r, "GET"))
            return ROUTE_KEYS_LIST;
        if (is(r, "POST"))
            return ROUTE_KEYS_CREATE;
        method_not_allowed(r, "GET, POST");
        return -1;
    }
    if (!strncmp(p, "/v1/keys/", 9) && p[9] && !strchr(p + 9, '/')) {
        *a = p + 9;
        ONLY("DELETE", ROUTE_KEYS_REVOKE);
    }
    if (!strncmp(p, "/v1/collections/", 16)) {
        strcpy(buf, p + 16);
        char *slash = strchr(buf, '/');
        *a = buf;
        if (!slash) {
            if (is(r, "GET"))
                return ROUTE_COLL_GET;
            if (is(r, "DELETE"))
                return ROUTE_COLL_DELETE;
            method_not_allowed(r, "GET, DELETE");
            return -1;
        }
        *slash = 0;
        const char *rest = slash + 1;
        if (!*buf)
            goto not_found;
        if (!strcmp(rest, "search"))
            ONLY("POST", ROUTE_SEARCH);
        if (!strcmp(rest, "context"))
            ONLY("POST", ROUTE_CONTEXT);
        if (!strcmp(rest, "documents"))
            ONLY("POST", ROUTE_DOCS_UPSERT);
        if (!strncmp(rest, "documents/", 10) && rest[10]) {
            *b = rest + 10; /* the id may itself contain '/' */
            if (is(r, "GET"))
                return ROUTE_DOC_GET;
            if (is(r, "DELETE"))
                return ROUTE_DOC_DELETE;
            method_not_allowed(r, "GET, DELETE");
            return -1;
        }
    }
#undef ONLY
not_found:
    http_error(r, 404, "not_found", NULL, "no route for %s %s", r->method, r->path);
    return -1;
}

void routes_dispatch(http_req *r)
{
    const char *a, *b;
    char *buf = malloc(strlen(r->path) + 1);
    if (!buf) {
        http_error(r, 500, "internal", NULL, "out of memory");
        return;
    }
    int id = match(r, buf, &a, &b);
    r->route = id < 0 ? ROUTE_OTHER : id;
    if (id >= ROUTE_EMBEDDINGS && !atomic_load(&r->s->ready)) {
        if (atomic_load(&r->s->draining))
            http_error(r, 503, "draining", NULL, "the server is shutting down");
        else
            http_error(r, 503, "not_ready", NULL, "the store is still opening; retry shortly");
        r->hdr_name = "Retry-After";
        snprintf(r->hdr_value, sizeof r->hdr_value, "1");
        id = -1;
    }
    switch (id) {
    case ROUTE_DASHBOARD: h_dashboard(r); break;
    case ROUTE_HEALTHZ: h_healthz(r); break;
    case ROUTE_READYZ: h_readyz(r); break;
    case ROUTE_METRICS: h_metrics(r); break;
    case ROUTE_OPENAPI: h_openapi(r); break;
    case ROUTE_EMBEDDINGS: h_embeddings(r); break;
    case ROUTE_COLL_LIST: h_coll_list(r); break;
    case ROUTE_COLL_CREATE: h_coll_create(r); break;
    case ROUTE_COLL_GET: h_coll_get(r, a); break;
    case ROUTE_COLL_DELETE: h_coll_delete(r, a); break;
    case ROUTE_DOCS_UPSERT: h_docs_upsert(r, a); break;
    case ROUTE_DOC_GET: h_doc_get(r, a, b); break;
    case ROUTE_DOC_DELETE: h_doc_delete(r, a, b); break;
    case ROUTE_SEARCH: h_search(r, a); break;
    case ROUTE_CONTEXT: h_context(r, a); break;
    case ROUTE_KEYS_LIST: h_keys_list(r); break;
    case ROUTE_KEYS_CREATE: h_keys_create(r); break;
    case ROUTE_KEYS_REVOKE: h_keys_revoke(r, a); break;
    case ROUTE_QUERYLOG: h_querylog(r); break;
    default: break;
    }
    free(buf);
}
