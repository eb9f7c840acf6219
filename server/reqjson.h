/* reqjson.h - validation of JSON request bodies: each helper answers 400 naming the
 * offending field (e.g. "documents[3].id") when a value is missing or wrong. */
#ifndef SRV_REQJSON_H
#define SRV_REQJSON_H

#include "http.h"

#include <jansson.h>

/* Parses the body as a JSON object. NULL after answering 400 (empty body, malformed JSON
 * with its line and column, or not an object). */
json_t *rj_body(http_req *r);

/* rj_body with one member kept out of jansson: when the top-level object has exactly one
 * member `key` whose value is a string of at least `min_len` bytes without escapes, that
 * string's bytes are not lexed by jansson (2 KB of base64 cost a search ~10 % of its CPU
 * there): the rest of the body is parsed with the value replaced by "", and *lifted /
 * *lifted_len point at the value's text inside r->body. Otherwise (absent, shorter, escaped,
 * not a string, duplicated, or a body the replacement would not parse) the whole body goes
 * through rj_body and *lifted is NULL. Same object, same errors as rj_body either way, but
 * for that member's value. */
json_t *rj_body_lift(http_req *r, const char *key, size_t min_len, const char **lifted,
                     size_t *lifted_len);

/* Answers 400 when obj has a member not in `allowed` (NULL-terminated). `prefix` is the
 * field path of obj ("" for the top level). Returns 0 or -1. */
int rj_only(http_req *r, json_t *obj, const char *prefix, const char *const *allowed);

/* The string member `key` of obj: 1 found (*out borrowed from obj), 0 absent (or null)
 * and not required, -1 after answering 400 (missing when required, not a string, empty
 * when min_len >= 1, longer than max_len bytes). */
int rj_string(http_req *r, json_t *obj, const char *prefix, const char *key, int required,
              size_t min_len, size_t max_len, const char **out);

/* The integer member `key`: 1 found, 0 absent and not required, -1 after 400. */
int rj_int(http_req *r, json_t *obj, const char *prefix, const char *key, int required,
           long long min, long long max, long long *out);

/* Writes "prefix.key" (or "key" when prefix is "") into buf. */
const char *rj_path(char *buf, size_t len, const char *prefix, const char *key);

#endif
