/* routes_privacy.h - the HTTP API's erasure endpoints: POST /v1/collections/{c}/erase and
 * POST /v1/collections/{c}/pii/apply. */
#ifndef SRV_ROUTES_PRIVACY_H
#define SRV_ROUTES_PRIVACY_H

#include "http.h"

/* {"ids": [...]} erases those documents, {"all": true} the whole collection (it is
 * dropped); scope write. Runs on the writer thread, after the query log's pending
 * entries are written, so that the erasure removes those that name the documents. */
void h_erase(http_req *r, const char *collection);

/* Re-masks the collection's stored text under its current PII policy; scope write. */
void h_pii_apply(http_req *r, const char *collection);

#endif
