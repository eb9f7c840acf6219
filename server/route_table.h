/* route_table.h - the HTTP API declared once: every route's method, path pattern, scope,
 * handler, request and response schemas and summary. The router (routes.c), the route ids
 * and metrics labels (routes.h) and the OpenAPI document's paths (openapi.c) are generated
 * from this one table, so a route cannot be served without being documented or the other
 * way round.
 *
 * X(ID, METHOD, PATTERN, SCOPE, HANDLER, FLAGS, REQUEST, STATUS, RESPONSE, PARAMS, SUMMARY,
 *   DESCRIPTION)
 *   ID          route id (enum route_id), also the index of the route's metrics series
 *   METHOD      "GET", "POST", "PATCH", "DELETE"
 *   PATTERN     path with {placeholders}, each one path segment; a last placeholder written
 *               {name+} takes the rest of the path, '/' included (document ids). The
 *               placeholders are handed to HANDLER in order.
 *   SCOPE       the key scope the router checks before the handler runs (SCOPE_READ, ...),
 *               with the grant of the {collection} placeholder when the pattern has one;
 *               ROUTE_PUBLIC: no key; ROUTE_SELF: the handler authorises (e.g. /metrics)
 *   HANDLER     void HANDLER(http_req *r, const char *const *params)
 *   FLAGS       ROUTE_F_* below
 *   REQUEST     components/schemas name of the JSON body, or NULL (no body)
 *   STATUS      the success status (200, 201)
 *   RESPONSE    components/schemas name of the success body; NULL: a text body of
 *               content type CTYPE (FLAGS ROUTE_F_TEXT, ROUTE_F_HTML)
 *   PARAMS      space-separated components/parameters names: the path placeholders (in
 *               order) and the query parameters
 *   SUMMARY     one line; DESCRIPTION: more (the scope is added to it), or ""
 *
 * The error responses documented for a route follow from the columns: 400 with a body or
 * parameters, 401/403/429 with a scope, 404 with path placeholders, 413 with a body, 503
 * for routes that need the store, plus the FLAGS' own. */
#ifndef SRV_ROUTE_TABLE_H
#define SRV_ROUTE_TABLE_H

#define ROUTE_PUBLIC 0u
#define ROUTE_SELF 0x100u

#define ROUTE_F_STORE 1u     /* needs the store open: 503 while starting or draining */
#define ROUTE_F_409 2u       /* may answer 409 (already exists) */
#define ROUTE_F_501 4u       /* may answer 501 (not in this build) */
#define ROUTE_F_503 8u       /* answers 503 itself (readiness) */
#define ROUTE_F_TEXT 16u     /* success body is text/plain */
#define ROUTE_F_HTML 32u     /* success body is text/html */

#define SRV_ROUTE_TABLE(X)                                                                 \
    X(ROUTE_DASHBOARD, "GET", "/", ROUTE_PUBLIC, h_dashboard, ROUTE_F_HTML, NULL, 200,      \
      NULL, "", "Dashboard (HTML)", "")                                                    \
    X(ROUTE_HEALTHZ, "GET", "/healthz", ROUTE_PUBLIC, h_healthz, 0, NULL, 200, "Health",    \
      "", "Liveness", "")                                               \
    X(ROUTE_READYZ, "GET", "/readyz", ROUTE_PUBLIC, h_readyz, ROUTE_F_503, NULL, 200,       \
      "Ready", "", "Readiness: store open and index loaded", "")                           \
    X(ROUTE_METRICS, "GET", "/metrics", ROUTE_SELF, h_metrics, ROUTE_F_TEXT, NULL, 200,     \
      NULL, "", "Prometheus metrics (text exposition format 0.0.4)",                      \
      "Needs a key with the metrics scope (admin implies it); per-collection series only " \
      "for the collections the key is granted. With --metrics-public, a request without " \
      "a key gets the process-level series.")                                              \
    X(ROUTE_OPENAPI, "GET", "/openapi.json", ROUTE_PUBLIC, h_openapi, 0, NULL, 200,         \
      "OpenApiDocument", "", "This document", "")                                          \
    X(ROUTE_EMBEDDINGS, "POST", "/v1/embeddings", SCOPE_READ, h_embeddings, ROUTE_F_STORE,  \
      "EmbeddingsRequest", 200, "EmbeddingsResponse", "",                                  \
      "Embed texts with the store's embedder (OpenAI-compatible)", "")                     \
    X(ROUTE_COLL_LIST, "GET", "/v1/collections", SCOPE_READ, h_coll_list, ROUTE_F_STORE,    \
      NULL, 200, "CollectionList", "",                                                     \
      "List the collections the key is granted, with statistics", "")                     \
    X(ROUTE_COLL_CREATE, "POST", "/v1/collections", SCOPE_WRITE, h_coll_create,             \
      ROUTE_F_STORE | ROUTE_F_409, "CollectionCreateRequest", 201, "Collection", "",       \
      "Create a collection, optionally with its settings (hygiene policy, TTL, language)", \
      "Granted the new name. Giving `settings` needs the admin scope.")                    \
    X(ROUTE_COLL_GET, "GET", "/v1/collections/{collection}", SCOPE_READ, h_coll_get,        \
      ROUTE_F_STORE, NULL, 200, "Collection", "Collection FreshnessObjective",             \
      "A collection's statistics, settings and freshness", "")                             \
    X(ROUTE_COLL_CONFIGURE, "PATCH", "/v1/collections/{collection}", SCOPE_ADMIN,           \
      h_coll_configure, ROUTE_F_STORE, "CollectionSettings", 200, "Collection",            \
      "Collection",                                                                        \
      "Change a collection's settings (only the fields given)",                            \
      "They apply to what is ingested afterwards; stored documents are not re-processed. " \
      "`language` cannot change.")                                                         \
    X(ROUTE_COLL_DELETE, "DELETE", "/v1/collections/{collection}", SCOPE_WRITE,             \
      h_coll_delete, ROUTE_F_STORE, NULL, 200, "CollectionDeleted", "Collection",                    \
      "Drop a collection with all its documents", "")                                      \
    X(ROUTE_DOCS_LIST, "GET", "/v1/collections/{collection}/documents", SCOPE_READ,         \
      h_docs_list, ROUTE_F_STORE, NULL, 200, "DocumentPage",                               \
      "Collection ListLimit ListAfter ListFilter ListIncludeExpired",                      \
      "Page through a collection's documents in id order",                                 \
      "Pass the reply's `next` as `after` for the next page; `next` is null after the "    \
      "last page. Every matching document is visited exactly once, whatever the limit.")   \
    X(ROUTE_DOCS_UPSERT, "POST", "/v1/collections/{collection}/documents", SCOPE_WRITE,     \
      h_docs_upsert, ROUTE_F_STORE, "UpsertRequest", 200, "IngestStats", "Collection",     \
      "Batch upsert of documents (one transaction: all or none)",                         \
      "An existing id is replaced. A missing collection is created with the server's "    \
      "default settings. The collection's hygiene policy applies.")                        \
    X(ROUTE_DOC_GET, "GET", "/v1/collections/{collection}/documents/{id+}", SCOPE_READ,     \
      h_doc_get, ROUTE_F_STORE, NULL, 200, "Document", "Collection DocumentId",            \
      "A whole document: every chunk in text order, metadata and freshness", "")           \
    X(ROUTE_DOC_DELETE, "DELETE", "/v1/collections/{collection}/documents/{id+}",           \
      SCOPE_WRITE, h_doc_delete, ROUTE_F_STORE, NULL, 200, "DocumentDeleted",                      \
      "Collection DocumentId", "Delete a document and its chunks", "")                     \
    X(ROUTE_SEARCH, "POST", "/v1/collections/{collection}/search", SCOPE_READ, h_search,    \
      ROUTE_F_STORE, "SearchRequest", 200, "SearchResponse", "Collection",                 \
      "Search by text or by vector",                                                       \
      "Every search is recorded in the query log.")                                               \
    X(ROUTE_CONTEXT, "POST", "/v1/collections/{collection}/context", SCOPE_READ, h_context, \
      ROUTE_F_STORE | ROUTE_F_501, "ContextRequest", 200, "ContextResponse", "Collection",  \
      "Prompt-ready context: passages merged from the best chunks, numbered citations "   \
      "with freshness, fitted to a token budget", "")            \
    X(ROUTE_ERASE, "POST", "/v1/collections/{collection}/erase", SCOPE_WRITE, h_erase,      \
      ROUTE_F_STORE, "EraseRequest", 200, "ErasureStats", "Collection",                    \
      "Erase documents, or the whole collection: when the call returns no byte of them "   \
      "remains readable in any file of the store",                                         \
      "Give either `ids` or `all: true` (the collection is dropped). Free pages are "      \
      "zeroed, index files rewritten, embedding-cache and query-log entries naming the "   \
      "documents deleted; one pass over the store for all the ids.")                       \
    X(ROUTE_PII_APPLY, "POST", "/v1/collections/{collection}/pii/apply", SCOPE_WRITE,       \
      h_pii_apply, ROUTE_F_STORE, NULL, 200, "ErasureStats", "Collection",                 \
      "Apply the collection's current PII policy to its stored documents, erasing the old " \
      "text",                                                                              \
      "Set the collection's `pii` setting first; 400 when it is off.")                     \
    X(ROUTE_KEYS_LIST, "GET", "/v1/keys", SCOPE_ADMIN, h_keys_list, ROUTE_F_STORE, NULL,    \
      200, "KeyList", "", "List API keys (never secrets or hashes)", "")                       \
    X(ROUTE_KEYS_CREATE, "POST", "/v1/keys", SCOPE_ADMIN, h_keys_create, ROUTE_F_STORE,     \
      "KeyRequest", 201, "KeyCreated", "",                                                  \
      "Create an API key (the secret is returned once)", "")     \
    X(ROUTE_KEYS_REVOKE, "DELETE", "/v1/keys/{key_id}", SCOPE_ADMIN, h_keys_revoke,         \
      ROUTE_F_STORE, NULL, 200, "Revoked", "KeyId", "Revoke an API key", "")               \
    X(ROUTE_QUERYLOG, "GET", "/v1/querylog", SCOPE_ADMIN, h_querylog, ROUTE_F_STORE, NULL,  \
      200, "QueryLogPage", "QueryLogAfter QueryLogSince QueryLogCollection QueryLogLimit", \
      "Page through the query log, oldest first", "")

#endif
