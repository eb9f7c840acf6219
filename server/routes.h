/* routes.h - the router: route ids and metrics labels, dispatch of a request to its
 * handler, and the route table for the OpenAPI document (all from route_table.h). */
#ifndef SRV_ROUTES_H
#define SRV_ROUTES_H

#include "http.h"
#include "route_table.h"

enum route_id {
    ROUTE_OTHER,
#define ROUTE_ENUM_(id, ...) id,
    SRV_ROUTE_TABLE(ROUTE_ENUM_)
#undef ROUTE_ENUM_
    ROUTE_COUNT
};

/* A handler: params are the path's placeholders in order, decoded (see route_table.h). */
typedef void route_fn(http_req *r, const char *const *params);

/* One row of the table. */
typedef struct route_def {
    int id;
    const char *method;
    const char *pattern;        /* as declared ("{id+}" for a rest-of-path placeholder) */
    unsigned scope;             /* SCOPE_*, ROUTE_PUBLIC or ROUTE_SELF */
    route_fn *handler;
    unsigned flags;             /* ROUTE_F_* */
    const char *request;        /* schema name or NULL */
    int status;
    const char *response;       /* schema name or NULL */
    const char *params;         /* parameter names, space-separated */
    const char *summary;
    const char *description;
    const char *operation;      /* the OpenAPI operationId: the handler's name without h_ */
} route_def;

/* The table's rows in declaration order (ROUTE_OTHER excluded): *n receives the count. */
const route_def *route_table(size_t *n);

/* "METHOD /path/{placeholder}" of a route id (for metrics and the access log; "ANY other"
 * for ROUTE_OTHER or an id out of range), and every id's name indexed by id. */
const char *route_name(int id);
const char *const *route_names(void);

/* Routes r to its handler after the checks the table declares (the store is open, the
 * key holds the scope and the collection's grant), which sets the response or defers it.
 * A path no route matches gets 404, a method the path does not take 405 with Allow.
 * Can't fail. */
void routes_dispatch(http_req *r);

#endif
