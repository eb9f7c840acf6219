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
    static const char *const FIELDS[] = {"name", "scopes", "collections", NULL};
    json_t *body = NULL, *scopes, *colls, *record = NULL, *x;
    const char **names = NULL;
    const char *name;
    char *secret = NULL;
    unsigned mask = 0;
    size_t i, ncoll = 0;
    char path[64];

    if (!(body = rj_body(r)) ||
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

