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
    ROUTE_COUNT
};

/* "METHOD /path/{template}" of a route id (for metrics and the access log). */
const char *route_name(int id);
const char *const *route_names(void);

/* Routes r to its handler, which sets the response or defers it. Can't fail. */
void routes_dispatch(http_req *r);

#endif
