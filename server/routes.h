/* routes.h - the HTTP API: routing table and request handlers. */
#ifndef SRV_ROUTES_H
#define SRV_ROUTES_H

#include "http.h"

enum route_id {
    ROUTE_OTHER,
    ROUTE_DASHBOARD,
    ROUTE_HEALTHZ,
    ROUTE_READYZ,
    ROUTE_METRICS,
    ROUTE_OPENAPI,
    ROUTE_EMBEDDINGS,
    ROUTE_COLL_LIST,
    ROUTE_COLL_CREATE,
    ROUTE_COLL_GET,
    ROUTE_COLL_DELETE,
    ROUTE_DOCS_UPSERT,
    ROUTE_DOC_GET,
    ROUTE_DOC_DELETE,
    ROUTE_SEARCH,
    ROUTE_CONTEXT,
    ROUTE_KEYS_LIST,
    ROUTE_KEYS_CREATE,
    ROUTE_KEYS_REVOKE,
    ROUTE_QUERYLOG,
    ROUTE_ERASE,
    ROUTE_PII_APPLY,
    ROUTE_COUNT
};

/* "METHOD /path/{template}" of a route id (for metrics and the access log). */
const char *route_name(int id);
const char *const *route_names(void);

/* Shared by the handler files (routes.c, routes_privacy.c). authorize: 0 when r's API key
 * has `scope` for `collection`, else -1 after answering 401/403. require_collection: 0 when
 * collection c exists (its statistics into *info, may be NULL), else -1 after 404.
 * reply_rag_error: answers a library error rc of operation `what` (field: the request
 * field it concerns, or NULL) with the matching HTTP status and rag_errmsg(). */
int authorize(http_req *r, unsigned scope, const char *collection);
struct rag_collection_info;
int require_collection(http_req *r, const char *c, struct rag_collection_info *info);
void reply_rag_error(http_req *r, int rc, const char *field, const char *what);

/* Routes r to its handler, which sets the response or defers it. Can't fail. */
void routes_dispatch(http_req *r);

#endif
