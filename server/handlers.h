/* handlers.h - what the request handlers (routes_*.c) share: the handlers' declarations
 * (from route_table.h), authorisation, mapping library errors to HTTP statuses, collection
 * checks, query parameters and the job of a deferred write that names a collection. */
#ifndef SRV_HANDLERS_H
#define SRV_HANDLERS_H

#include "http.h"
#include "route_table.h"

#include <jansson.h>

#define HANDLER_DECL_(id, method, pattern, scope, handler, ...)                             \
    void handler(http_req *r, const char *const *params);
SRV_ROUTE_TABLE(HANDLER_DECL_)
#undef HANDLER_DECL_

/* Identifies the caller (Authorization: Bearer KEY, or X-API-Key) once per request and
 * checks `scope` and, when not NULL, the grant of `collection`. 0, or -1 after answering
 * 401/403 (or 429 when the key is over its request rate). */
int authorize(http_req *r, unsigned scope, const char *collection);

/* Answers a failed library call with the status its code calls for. `field` names the
 * request field an EINVAL-like code is about (may be NULL); `what` prefixes the message. */
void reply_rag_error(http_req *r, int rc, const char *field, const char *what);

/* 404 unless collection c exists; fills info when not NULL. 0 or -1 (answered). */
int require_collection(http_req *r, const char *c, rag_collection_info *info);

/* 1 when s is 1..128 letters, digits, '_', '-' or '.'. */
int valid_collection_name(const char *s);

/* Query parameter `name` as an integer in [min, max]: 1 and *out set, 0 absent, -1 after
 * answering 400 naming it. */
int query_long(http_req *r, const char *name, long long min, long long max, long long *out);

/* The job of a deferred write that names a collection and perhaps an id (both copied). */
typedef struct name_job {
    char *name;
    char *id;
    void *extra;                /* a job's own data, freed with free() */
} name_job;

/* NULL when out of memory (after answering 500). */
name_job *name_job_new(http_req *r, const char *name, const char *id);
void name_job_free(void *job);

/* The document metadata text `text` as a JSON value ({} when empty or not JSON). */
json_t *metadata_value(const char *text);

#endif
