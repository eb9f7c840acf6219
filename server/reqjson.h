/* reqjson.h - validation of JSON request bodies: each helper answers 400 naming the
 * offending field (e.g. "documents[3].id") when a value is missing or wrong. */
#ifndef SRV_REQJSON_H
#define SRV_REQJSON_H

#include "http.h"

#include <jansson.h>

/* Parses the body as a JSON object. NULL after answering 400 (empty body, malformed JSON
 * with its line and column, or not an object). */
json_t *rj_body(http_req *r);

/* What rj_body_lift kept out of jansson. */
typedef enum { RJ_LIFT_NONE, RJ_LIFT_STRING, RJ_LIFT_NUMBERS } rj_lift_kind;
typedef struct rj_lifted {
    rj_lift_kind kind;
    const char *text; /* STRING: the string's text (no quotes); NUMBERS: the array's text */
    size_t len;       /* inside r->body, borrowed from it */
    float *numbers;   /* NUMBERS: the values, as jansson would read them narrowed to float */
    size_t count;     /* (owned: rj_lifted_free) */
} rj_lifted;

/* rj_body with one member kept out of jansson, whose lexer spends about 0.5 us on each
 * character of a string and about as much on each number of an array (2 KB of base64 or
 * 384 numbers were 10 % and over 40 % of a vector search's CPU): when the top-level object
 * has exactly one member `key` whose value text is at least `min_len` bytes and is either
 * a string without escapes or an array of JSON numbers only, the rest of the body is
 * parsed with that value replaced by "" or [], and *out describes the value: its text in
 * r->body and, for an array, its numbers read the way jansson reads them. Otherwise
 * (absent, shorter, escaped, other values, duplicated, an integer beyond long long, a real
 * beyond double, or a body the replacement would not parse) the whole body goes through
 * rj_body and out->kind is RJ_LIFT_NONE. Same object, same errors as rj_body either way,
 * but for that member's value. Free out with rj_lifted_free in every case. */
json_t *rj_body_lift(http_req *r, const char *key, size_t min_len, rj_lifted *out);
void rj_lifted_free(rj_lifted *l);

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
