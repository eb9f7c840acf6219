/* openapi.h - the OpenAPI document served at /openapi.json. */
#ifndef SRV_OPENAPI_H
#define SRV_OPENAPI_H

#include <stddef.h>

/* The document, generated from declarations: its paths from the route table
 * (route_table.h: methods, parameters, request and response schemas, the error responses
 * each route can give), the search options of SearchRequest and ContextRequest from the
 * library's option table (rag_search_option_*) and the CollectionSettings schema from the
 * collection-option table (rag_collection_option_*); the rest (info, security, schemas,
 * parameters, responses) is server/openapi.json, compiled in. Built on the first call
 * (thread-safe) and kept for the process's life; NULL when building it failed (out of
 * memory, a compiled-in file that is not JSON, or a route naming a schema or parameter the
 * file lacks). */
const char *openapi_document(size_t *len);

#endif
