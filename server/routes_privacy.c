/* routes_privacy.c - erasure endpoints: documents, whole collections, re-masking. */
#include "handlers.h"

#include "auth.h"
#include "querylog.h"
#include "reqjson.h"
#include "server.h"

#include <jansson.h>
#include <stdlib.h>
#include <string.h>

typedef struct erase_job {
    char *collection;
    char **ids;                  /* NULL with all set */
    size_t n;
    int all;
    int pii_apply;
} erase_job;

static void erase_job_free(void *p)
{
    erase_job *j = p;
    if (!j)
        return;
    for (size_t i = 0; i < j->n; i++)
        free(j->ids[i]);
    free(j->ids);
    free(j->collection);
    free(j);
}

static json_t *stats_json(const erase_job *j, const rag_erase_stats *st)
{
    return json_pack("{s:s,s:I,s:I,s:I,s:I,s:I,s:I,s:f}", "collection", j->collection,
                     "documents", (json_int_t)st->documents, "log_entries",
                     (json_int_t)st->log_entries, "cache_entries", (json_int_t)st->cache_entries,
                     "index_files", (json_int_t)st->index_files, "store_bytes",
                     (json_int_t)st->store_bytes, "bytes_zeroed", (json_int_t)st->bytes_zeroed,
                     "seconds", st->seconds);
}

/* On the writer thread: the query log's pending entries go to the store first, so that
 * the erasure finds those naming the documents. */
static void w_erase(http_req *r, void *arg)
{
    erase_job *j = arg;
    rag_erase_stats st;
    int rc;
    qlog_flush(r->s->qlog);
    if (j->pii_apply)
        rc = rag_collection_pii_apply(r->s->db, j->collection, &st);
    else if (j->all)
        rc = rag_collection_erase(r->s->db, j->collection, &st);
    else
        rc = rag_erase_documents(r->s->db, j->collection, (const char *const *)j->ids, j->n, &st);
    if (rc == RAG_ENOTFOUND) {
        http_error(r, 404, "not_found", NULL, "%s", rag_errmsg());
        return;
    }
    if (rc != RAG_OK) {
        reply_rag_error(r, rc, NULL, j->pii_apply ? "pii apply" : "erase");
        return;
    }
    http_reply_json(r, 200, stats_json(j, &st));
}

static erase_job *job_new(http_req *r, const char *c)
{
    erase_job *j = calloc(1, sizeof *j);
    if (!j || !(j->collection = strdup(c))) {
        free(j);
        http_error(r, 500, "internal", NULL, "out of memory");
        return NULL;
    }
    return j;
}

/* {"ids": [...]} erases those documents, {"all": true} the whole collection (it is
 * dropped). Runs on the writer thread, after the query log's pending entries are written,
 * so that the erasure removes those that name the documents. */
void h_erase(http_req *r, const char *const *params)
{
    const char *c = params[0];
    static const char *const OWN[] = {"ids", "all", NULL};
    json_t *body = NULL, *ids, *all;
    erase_job *j = NULL;
    if (authorize(r, SCOPE_WRITE, c) < 0 || require_collection(r, c, NULL) < 0 ||
        !(body = rj_body(r)) || rj_only(r, body, "", OWN) < 0)
        goto cleanup;
    ids = json_object_get(body, "ids");
    all = json_object_get(body, "all");
    if ((all && !json_is_boolean(all)) || (ids && !json_is_array(ids)) ||
        !(json_is_true(all) != (ids != NULL)) || (ids && json_array_size(ids) == 0) ||
        json_array_size(ids) > 10000) {
        http_error(r, 400, "invalid_field", ids ? "ids" : "all",
                   "give either 'ids' (an array of 1..10000 document ids) or 'all': true");
        goto cleanup;
    }
    if (!(j = job_new(r, c)))
        goto cleanup;
    j->all = json_is_true(all);
    if (ids && !(j->ids = calloc(json_array_size(ids), sizeof *j->ids))) {
        http_error(r, 500, "internal", NULL, "out of memory");
        goto cleanup;
    }
    for (size_t i = 0; i < json_array_size(ids); i++) {
        const char *id = json_string_value(json_array_get(ids, i));
        if (!id || !*id || strlen(id) > RAG_DOC_ID_MAX) {
            http_error(r, 400, "invalid_field", "ids", "ids[%zu] must be a document id of "
                       "1..%d bytes", i, RAG_DOC_ID_MAX);
            goto cleanup;
        }
        if (!(j->ids[j->n] = strdup(id))) {
            http_error(r, 500, "internal", NULL, "out of memory");
            goto cleanup;
        }
        j->n++;
    }
    http_defer(r, w_erase, j, erase_job_free);
    j = NULL;
cleanup:
    erase_job_free(j);
    json_decref(body);
}

/* Re-masks the collection's stored text under its current PII policy. */
void h_pii_apply(http_req *r, const char *const *params)
{
    const char *c = params[0];
    erase_job *j = NULL;
    if (authorize(r, SCOPE_WRITE, c) < 0 || require_collection(r, c, NULL) < 0 ||
        !(j = job_new(r, c)))
        return;
    j->pii_apply = 1;
    http_defer(r, w_erase, j, erase_job_free);
}
