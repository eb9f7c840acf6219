/* routes_docs.c - documents over HTTP: batch upsert (through the library's ingest path,
 * hygiene policy included; a missing collection is created), listing in pages with a
 * filter, a whole document with all its chunks, delete. */
#include "handlers.h"

#include "clock.h"
#include "filter_json.h"
#include "reqjson.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct ingest_job {
    char *collection;
    json_t *body;           /* keeps the strings the documents borrow */
    rag_document *docs;
    char **metadata;        /* serialised metadata objects, one per document (or NULL) */
    size_t n;
    int skip_unchanged;     /* a sync's batch: documents stored unchanged are skipped */
    int erase;              /* the versions replaced are erased (rag_ingest_options.erase) */
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

/* Collects the documents the collection's hygiene policy did not store as they were given
 * (rejected, or stored masked or flagged), for the upsert's reply. */
static int upsert_event(void *user, const rag_ingest_event *ev)
{
    json_t *list = user;
    json_t *o = NULL;
    switch (ev->action) {
    case RAG_INGEST_FILTERED:
    case RAG_INGEST_PII_DROPPED:
    case RAG_INGEST_TOXIC:
    case RAG_INGEST_DUPLICATE:
    case RAG_INGEST_FLAGGED:
        o = json_pack("{s:s, s:s, s:b}", "id", ev->id, "action",
                      rag_ingest_action_name((int)ev->action), "stored",
                      ev->action == RAG_INGEST_FLAGGED);
        if (o && *ev->reason)
            json_object_set_new(o, "reason", json_string(ev->reason));
        if (o && *ev->canonical_id) {
            json_object_set_new(o, "duplicate_of", json_string(ev->canonical_id));
            json_object_set_new(o, "duplicate_kind", json_string(ev->duplicate_kind));
            json_object_set_new(o, "similarity", json_real(ev->similarity));
        }
        break;
    case RAG_INGEST_STORED:
        if (ev->pii_found)
            o = json_pack("{s:s, s:s, s:b, s:I}", "id", ev->id, "action", "pii-masked", "stored",
                          1, "pii_found", (json_int_t)ev->pii_found);
        break;
    default:
        break;
    }
    if (o)
        json_array_append_new(list, o);
    return 0;
}

/* The upsert's reply: the IngestStats fields, every counter of the library's summary in
 * "summary" (what a remote `ragcore ingest` or `sync` prints), and the hygiene list. */
static json_t *upsert_reply(const char *collection, const rag_ingest_summary *s, json_t *hygiene)
{
    json_t *found = json_object();
    for (int t = 0; t < RAG_PII_NTYPES; t++)
        if (s->pii_found[t])
            json_object_set_new(found, rag_pii_type_name(t), json_integer((json_int_t)s->pii_found[t]));
    json_t *o = json_pack("{s:s,s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:o,s:o}", "collection",
                          collection, "documents", (json_int_t)s->documents, "replaced",
                          (json_int_t)s->replaced, "unchanged", (json_int_t)s->unchanged,
                          "chunks", (json_int_t)s->chunks, "duplicate_chunks",
                          (json_int_t)s->duplicate_chunks, "bytes", (json_int_t)s->bytes,
                          "not_stored", (json_int_t)(s->filtered + s->pii_dropped + s->dup_skipped +
                                                        s->toxicity_dropped),
                          "pii_documents", (json_int_t)s->pii_documents, "duplicates",
                          (json_int_t)(s->dup_exact + s->dup_near), "stale_removed",
                          (json_int_t)s->stale_removed, "pii_found", found, "hygiene", hygiene);
    const struct {
        const char *name;
        uint64_t v;
    } counts[] = {{"seen", s->seen}, {"documents", s->documents}, {"replaced", s->replaced},
                  {"unchanged", s->unchanged}, {"chunks", s->chunks},
                  {"duplicate_chunks", s->duplicate_chunks}, {"bytes", s->bytes},
                  {"failed", s->failed}, {"quality_checked", s->quality_checked},
                  {"filtered", s->filtered}, {"filtered_too_short", s->filtered_too_short},
                  {"filtered_too_long", s->filtered_too_long},
                  {"filtered_symbols", s->filtered_symbols}, {"pii_documents", s->pii_documents},
                  {"pii_dropped", s->pii_dropped}, {"dup_exact", s->dup_exact},
                  {"dup_near", s->dup_near}, {"dup_skipped", s->dup_skipped},
                  {"dup_flagged", s->dup_flagged}, {"dup_recorded", s->dup_recorded},
                  {"stale_removed", s->stale_removed},
                  {"toxicity_checked", s->toxicity_checked},
                  {"toxicity_flagged", s->toxicity_flagged},
                  {"toxicity_dropped", s->toxicity_dropped},
                  {"toxicity_dropped_wordlist", s->toxicity_dropped_wordlist},
                  {"toxicity_dropped_classifier", s->toxicity_dropped_classifier}};
    json_t *sum = json_object();
    for (size_t i = 0; i < sizeof counts / sizeof counts[0]; i++)
        json_object_set_new(sum, counts[i].name, json_integer((json_int_t)counts[i].v));
    json_object_set_new(o, "summary", sum);
    return o;
}

static void w_ingest(http_req *r, void *arg)
{
    ingest_job *j = arg;
    rag_ingest_summary sum;
    rag_ingest_options io;
    rag_ingest_options_init(&io);
    io.collection = j->collection;
    io.single_transaction = 1; /* all or nothing, as rag_ingest */
    io.skip_unchanged = j->skip_unchanged;
    io.erase = j->erase;
    json_t *hygiene = json_array();
    io.on_event = upsert_event;
    io.user = hygiene;
    double t0 = srv_monotonic();
    int rc = rag_ingest_documents(r->s->db, j->docs, j->n, &io, &sum);
    if (rc != RAG_OK) {
        json_decref(hygiene);
        reply_rag_error(r, rc, "documents", "ingest");
        return;
    }
    rag_ingest_stats st = {sum.documents, sum.replaced, sum.chunks, sum.duplicate_chunks,
                           sum.bytes};
    metrics_ingest(r->s->metrics, &st, srv_monotonic() - t0);
    http_reply_json(r, 200, upsert_reply(j->collection, &sum, hygiene));
}

void h_docs_upsert(http_req *r, const char *const *params)
{
    const char *c = params[0];
    static const char *const FIELDS[] = {"documents", "skip_unchanged", "erase", NULL};
    static const char *const DOC_FIELDS[] = {"id",           "text",   "title", "source",
                                             "metadata",     "format", "source_mtime", "valid_until",
                                             "ttl_seconds", NULL};
    ingest_job *j = NULL;
    json_t *body = NULL, *docs;
    char prefix[64], path[128];

    if (!(body = rj_body(r)) || rj_only(r, body, "", FIELDS) < 0)
        goto cleanup;
    json_t *skip = json_object_get(body, "skip_unchanged"), *erase = json_object_get(body, "erase");
    if (skip && !json_is_boolean(skip)) {
        http_error(r, 400, "invalid_field", "skip_unchanged", "'skip_unchanged' must be true or false");
        goto cleanup;
    }
    if (erase && !json_is_boolean(erase)) {
        http_error(r, 400, "invalid_field", "erase", "'erase' must be true or false");
        goto cleanup;
    }
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
    j->skip_unchanged = json_is_true(skip);
    j->erase = json_is_true(erase);
    size_t i;
    json_t *d;
    json_array_foreach(docs, i, d) {
        rag_document *doc = &j->docs[i];
        const char *fmt = NULL;
        long long mtime = 0, valid_until = 0, ttl = 0;
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
            rj_int(r, d, prefix, "source_mtime", 0, 0, (long long)1 << 40, &mtime) < 0 ||
            rj_int(r, d, prefix, "valid_until", 0, 0, (long long)1 << 40, &valid_until) < 0 ||
            rj_int(r, d, prefix, "ttl_seconds", 0, 0, (long long)1 << 40, &ttl) < 0)
            goto cleanup;
        doc->valid_until = valid_until;
        doc->ttl_seconds = ttl;
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
    /* a missing collection is created by the ingest, with the store's default settings */
    j->body = body;
    body = NULL;
    http_defer(r, w_ingest, j, ingest_job_free);
    j = NULL;
cleanup:
    ingest_job_free(j);
    json_decref(body);
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

void h_doc_delete(http_req *r, const char *const *params)
{
    if (require_collection(r, params[0], NULL) < 0)
        return;
    name_job *j = name_job_new(r, params[0], params[1]);
    if (j)
        http_defer(r, w_doc_delete, j, name_job_free);
}


/* What the store records about a document, as JSON (the Document schema's fields but the
 * chunks). The content hash is 16 hex digits (a JSON number cannot hold 64 bits). */
static json_t *doc_info_json(const rag_doc_info *d)
{
    char hash[17];
    snprintf(hash, sizeof hash, "%016llx", (unsigned long long)d->content_hash);
    return json_pack("{s:s,s:s,s:s,s:o,s:I,s:I,s:I,s:I,s:b,s:I,s:i,s:s}", "id", d->id, "title",
                     d->title, "source", d->source, "metadata", metadata_value(d->metadata_json),
                     "source_mtime", (json_int_t)d->source_mtime, "ingested_at",
                     (json_int_t)d->ingested_at, "updated_at", (json_int_t)d->updated_at,
                     "valid_until", (json_int_t)d->valid_until, "expired", d->expired,
                     "text_bytes", (json_int_t)d->text_bytes, "chunk_count", (int)d->chunks,
                     "content_hash", hash);
}

/* ?filter=: an expression of the filter language, or (starting with '{') a JSON filter
 * object. *expr is the text to pass (*owned to free, when translated). 0, or -1 after 400. */
static int list_filter(http_req *r, const char **expr, char **owned)
{
    const char *f = http_query(r, "filter");
    *expr = NULL;
    *owned = NULL;
    if (!f || !*f)
        return 0;
    if (strlen(f) > 8192) {
        http_error(r, 400, "invalid_field", "filter", "query parameter 'filter' is longer than "
                   "8192 bytes");
        return -1;
    }
    const char *p = f + strspn(f, " \t\r\n");
    if (*p != '{') {
        *expr = f;
        return 0;
    }
    json_error_t jerr;
    json_t *obj = json_loads(f, 0, &jerr);
    char field[256], msg[512];
    if (!obj) {
        http_error(r, 400, "invalid_field", "filter",
                   "query parameter 'filter' starts with '{' but is not JSON: %s (column %d)",
                   jerr.text, jerr.column);
        return -1;
    }
    *owned = filter_json_expr(obj, "filter", field, sizeof field, msg, sizeof msg);
    json_decref(obj);
    if (!*owned) {
        if (*field)
            http_error(r, 400, "invalid_field", field, "%s", msg);
        else
            http_error(r, 500, "internal", NULL, "out of memory");
        return -1;
    }
    *expr = *owned;
    return 0;
}

void h_docs_list(http_req *r, const char *const *params)
{
    const char *c = params[0];
    const char *after = http_query(r, "after"), *inc = http_query(r, "include_expired");
    long long limit = 100;
    char *owned = NULL;
    rag_doc_list *list = NULL;
    rag_list_options lo;
    rag_list_options_init(&lo);
    if (query_long(r, "limit", 1, RAG_LIST_LIMIT_MAX, &limit) < 0)
        goto cleanup;
    if (after && (!*after || strlen(after) > RAG_DOC_ID_MAX)) {
        http_error(r, 400, "invalid_field", "after", "query parameter 'after' must be a "
                   "document id (1..%d bytes): the previous page's 'next'", RAG_DOC_ID_MAX);
        goto cleanup;
    }
    if (inc && strcmp(inc, "true") && strcmp(inc, "false")) {
        http_error(r, 400, "invalid_field", "include_expired",
                   "query parameter 'include_expired' must be true or false");
        goto cleanup;
    }
    if (list_filter(r, &lo.filter, &owned) < 0)
        goto cleanup;
    lo.collection = c;
    lo.after = after;
    lo.limit = (size_t)limit;
    lo.include_expired = inc && !strcmp(inc, "true");
    int rc = rag_document_list(r->s->db, &lo, &list);
    if (rc == RAG_ENOTFOUND) {
        http_error(r, 404, "not_found", NULL, "collection '%s' does not exist", c);
        goto cleanup;
    }
    if (rc != RAG_OK) {
        reply_rag_error(r, rc, rc == RAG_EPARSE ? "filter" : NULL, "list documents");
        goto cleanup;
    }
    json_t *docs = json_array();
    for (size_t i = 0; i < rag_doc_list_count(list); i++)
        json_array_append_new(docs, doc_info_json(rag_doc_list_get(list, i)));
    const char *next = rag_doc_list_next(list);
    http_reply_json(r, 200, json_pack("{s:s,s:o,s:o}", "collection", c, "documents", docs,
                                      "next", next ? json_string(next) : json_null()));
cleanup:
    rag_doc_list_free(list);
    free(owned);
}

void h_doc_get(http_req *r, const char *const *params)
{
    const char *c = params[0], *id = params[1];
    rag_doc *doc = NULL;
    if (strlen(id) > RAG_DOC_ID_MAX) {
        http_error(r, 400, "invalid_field", "id", "a document id has at most %d bytes",
                   RAG_DOC_ID_MAX);
        return;
    }
    int rc = rag_document_get(r->s->db, c, id, &doc);
    if (rc == RAG_ENOTFOUND) {
        if (require_collection(r, c, NULL) == 0)
            http_error(r, 404, "not_found", NULL,
                       "document '%s' does not exist in collection '%s'", id, c);
        return;
    }
    if (rc != RAG_OK) {
        reply_rag_error(r, rc, NULL, "get document");
        return;
    }
    json_t *o = doc_info_json(rag_doc_get_info(doc));
    json_t *chunks = json_array();
    for (size_t i = 0; i < rag_doc_chunk_count(doc); i++) {
        const rag_hit *h = rag_doc_chunk(doc, i);
        json_array_append_new(chunks, json_pack("{s:I,s:I,s:I,s:i,s:s,s:s%}", "chunk_id",
                                                (json_int_t)h->chunk_id, "start",
                                                (json_int_t)h->start, "end", (json_int_t)h->end,
                                                "token_count", h->token_count, "heading_path",
                                                h->heading_path, "text", h->text, h->text_len));
    }
    json_object_set_new(o, "collection", json_string(c));
    json_object_set_new(o, "chunks", chunks);
    http_reply_json(r, 200, o);
    rag_doc_free(doc);
}
