/* routes_admin.c - operational and admin endpoints: health, readiness, metrics, the
 * OpenAPI document, the dashboard, API keys and the query log. */
#include "handlers.h"

#include "assets.h"
#include "openapi.h"
#include "querylog.h"
#include "reqjson.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void h_healthz(http_req *r, const char *const *params)
{
    (void)params;
    static const char OK[] = "{\"status\":\"ok\"}";
    http_reply(r, 200, "application/json", OK, sizeof OK - 1, 1);
}

void h_readyz(http_req *r, const char *const *params)
{
    (void)params;
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
void h_metrics(http_req *r, const char *const *params)
{
    (void)params;
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

void h_openapi(http_req *r, const char *const *params)
{
    (void)params;
    size_t len = 0;
    const char *doc = openapi_document(&len);
    if (!doc) {
        http_error(r, 500, "internal", NULL, "cannot build the OpenAPI document");
        return;
    }
    http_reply(r, 200, "application/json", doc, len, 1);
}

void h_dashboard(http_req *r, const char *const *params)
{
    (void)params;
    http_reply(r, 200, "text/html; charset=utf-8", (const char *)srv_asset_dashboard,
               srv_asset_dashboard_len, 1);
}

void h_keys_list(http_req *r, const char *const *params)
{
    (void)params;
    http_reply_json(r, 200, json_pack("{s:o}", "keys", auth_list(r->s->auth)));
}

void h_keys_create(http_req *r, const char *const *params)
{
    (void)params;
    json_t *body = rj_body(r), *created = NULL;
    const char *code = NULL;
    char field[64], msg[256];
    int status = 500;
    if (!body)
        return;
    int rc = auth_create_request(r->s->auth, body, valid_collection_name, &created, &status,
                                 &code, field, sizeof field, msg, sizeof msg);
    if (rc == RAG_OK)
        http_reply_json(r, 201, created);
    else if (status == 400)
        http_error(r, 400, code, field[0] ? field : NULL, "%s", msg);
    else
        reply_rag_error(r, rc, NULL, "create key");
    json_decref(body);
}

void h_keys_revoke(http_req *r, const char *const *params)
{
    const char *id = params[0];
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

void h_querylog(http_req *r, const char *const *params)
{
    (void)params;
    long long limit = 100, since = 0;
    const char *after = http_query(r, "after"), *coll = http_query(r, "collection");
    json_t *page = NULL;
    if (query_long(r, "limit", 1, 1000, &limit) < 0 ||
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

