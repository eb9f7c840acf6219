/* openapi.h - the OpenAPI document served at /openapi.json. */
#ifndef SRV_OPENAPI_H
#define SRV_OPENAPI_H

#include <stddef.h>

/* The document: server/openapi.json (compiled in) with the search options of the
 * SearchRequest and ContextRequest schemas generated from the library's option table
 * (rag_search_option_*), so names, types, ranges and defaults are declared once. Built on
 * the first call (thread-safe) and kept for the process's life; NULL when building it
 * failed (out of memory, or a compiled-in file that is not JSON). */
const char *openapi_document(size_t *len);

#endif
