/* reqjson.c - validation of JSON request bodies with errors naming the field. */
#include "reqjson.h"

#include <stdio.h>
#include <string.h>

const char *rj_path(char *buf, size_t len, const char *prefix, const char *key)
{
    if (prefix && *prefix)
        snprintf(buf, len, "%s.%s", prefix, key);
    else
        snprintf(buf, len, "%s", key);
    return buf;
}

json_t *rj_body(http_req *r)
{
    json_error_t jerr;
    if (!r->body || r->body_len == 0) {
        http_error(r, 400, "invalid_json", NULL, "the request body is empty; expected a JSON object");
        return NULL;
    }
    json_t *root = json_loadb(r->body, r->body_len, JSON_REJECT_DUPLICATES, &jerr);
    if (!root) {
        http_error(r, 400, "invalid_json", NULL, "malformed JSON at line %d column %d: %s",
                   jerr.line, jerr.column, jerr.text);
        return NULL;
    }
    if (!json_is_object(root)) {
        json_decref(root);
        http_error(r, 400, "invalid_json", NULL, "expected a JSON object at the top level");
        return NULL;
    }
    return root;
}

int rj_only(http_req *r, json_t *obj, const char *prefix, const char *const *allowed)
{
    const char *key;
    json_t *v;
    char path[256];
    json_object_foreach(obj, key, v) {
        int ok = 0;
        for (size_t i = 0; allowed[i]; i++)
            if (!strcmp(allowed[i], key))
                ok = 1;
        if (!ok) {
            http_error(r, 400, "invalid_field", rj_path(path, sizeof path, prefix, key),
                       "unknown field '%s'", key);
            return -1;
        }
    }
    return 0;
}

int rj_string(http_req *r, json_t *obj, const char *prefix, const char *key, int required,
              size_t min_len, size_t max_len, const char **out)
{
    char path[256];
    json_t *v = json_object_get(obj, key);
    *out = NULL;
    if (!v || json_is_null(v)) {
        if (!required)
            return 0;
        http_error(r, 400, "missing_field", rj_path(path, sizeof path, prefix, key),
                   "'%s' is required", rj_path(path, sizeof path, prefix, key));
        return -1;
    }
    rj_path(path, sizeof path, prefix, key);
    if (!json_is_string(v)) {
        http_error(r, 400, "invalid_field", path, "'%s' must be a string", path);
        return -1;
    }
    size_t n = json_string_length(v);
    if (n < min_len) {
        http_error(r, 400, "invalid_field", path, "'%s' must not be empty", path);
        return -1;
    }
    if (n > max_len) {
        http_error(r, 400, "invalid_field", path, "'%s' is %zu bytes, more than the limit of %zu",
                   path, n, max_len);
        return -1;
    }
    if (strlen(json_string_value(v)) != n) {
        http_error(r, 400, "invalid_field", path, "'%s' contains a NUL character", path);
        return -1;
    }
    *out = json_string_value(v);
    return 1;
}

int rj_int(http_req *r, json_t *obj, const char *prefix, const char *key, int required,
           long long min, long long max, long long *out)
{
    char path[256];
    json_t *v = json_object_get(obj, key);
    if (!v || json_is_null(v)) {
        if (!required)
            return 0;
        http_error(r, 400, "missing_field", rj_path(path, sizeof path, prefix, key),
                   "'%s' is required", rj_path(path, sizeof path, prefix, key));
        return -1;
    }
    rj_path(path, sizeof path, prefix, key);
    if (!json_is_integer(v)) {
        http_error(r, 400, "invalid_field", path, "'%s' must be an integer", path);
        return -1;
    }
    long long x = json_integer_value(v);
    if (x < min || x > max) {
        http_error(r, 400, "invalid_field", path, "'%s' must be in %lld..%lld, got %lld", path,
                   min, max, x);
        return -1;
    }
    *out = x;
    return 1;
}
