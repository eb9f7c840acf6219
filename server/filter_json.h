/* filter_json.h - metadata filters written as JSON objects ({"lang": "de"},
 * {"year": {"$gte": 2015}}) translated into the library's filter language (see rag_search
 * in ragcore.h), for search bodies and the documents listing. */
#ifndef SRV_FILTER_JSON_H
#define SRV_FILTER_JSON_H

#include <jansson.h>
#include <stddef.h>

/* Translates `filter`, a JSON object, into a filter expression (malloc'd). Members are
 * ANDed. A member "FIELD": VALUE (a string, number, true, false or null) is FIELD = VALUE;
 * "FIELD": {"$op": VALUE, ...} applies each operator ($eq, $ne, $gt, $gte, $lt, $lte,
 * $in and $nin with a non-empty array of such values, $exists with true or false, $prefix
 * with a string), ANDed; "$and" / "$or" take a non-empty array of filter objects, "$not"
 * one. FIELD is a built-in (doc_id, source, title, source_mtime, ingested_at, updated_at)
 * or a metadata key, '.' separating nested keys ("author.name"; a leading "metadata."
 * forces the metadata meaning). `prefix` is the object's field path in the request
 * ("filter"). Returns NULL when out of memory (*field "" then) or when the object is not a
 * valid filter: *field (field_len bytes) then names the offending member
 * ("filter.year.$regex") and *msg says what is wrong. */
char *filter_json_expr(json_t *filter, const char *prefix, char *field, size_t field_len,
                       char *msg, size_t msg_len);

#endif
