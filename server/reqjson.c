/* reqjson.c - validation of JSON request bodies with errors naming the field. */
#include "reqjson.h"
#include "json_number.h"

#include <stdio.h>
#include <stdlib.h>
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

/* The index of the first byte of b[i..n) that is not JSON whitespace (n: none). */
static size_t skip_blank(const char *b, size_t n, size_t i)
{
    while (i < n && (b[i] == ' ' || b[i] == '\t' || b[i] == '\n' || b[i] == '\r'))
        i++;
    return i;
}

/* When b[j] opens an array of JSON numbers only (blanks allowed, no trailing comma):
 * the index of its closing ']' and the count in *count; 0 otherwise (b[j] is never ']' at
 * index 0 of a member value). With `out` (room for the count an earlier call gave), the
 * numbers are also read into it as jansson reads them, narrowed to float; 0 where jansson
 * refuses one (json_number_read). */
static size_t number_array_end(const char *b, size_t n, size_t j, size_t *count, float *out)
{
    size_t i = skip_blank(b, n, j + 1), c = 0;
    if (i < n && b[i] == ']') {
        *count = 0;
        return i;
    }
    for (;;) {
        size_t e = json_number_end(b, n, i), len;
        double v;
        if (e == i || (out && json_number_read(b + i, &len, &v) != 0))
            return 0;
        if (out)
            out[c] = (float)v;
        c++;
        i = skip_blank(b, n, e);
        if (i < n && b[i] == ']') {
            *count = c;
            return i;
        }
        if (i >= n || b[i] != ',')
            return 0;
        i = skip_blank(b, n, i + 1);
    }
}

/* Finds the value of the top-level member `key` of the JSON text b[0..n) when that value is
 * a string without escapes (1, its text at b[*vs..*ve)) or an array of numbers only (2,
 * the array from '[' to ']' at b[*vs..*ve), *count numbers). 0 when the text does not
 * start with an object, the member is absent, its value is neither, or the key occurs
 * twice. Only strings and nesting are tokenised; anything else wrong is left to jansson. */
static int find_member(const char *b, size_t n, const char *key, size_t *vs, size_t *ve,
                       size_t *count)
{
    const size_t klen = strlen(key);
    size_t i = skip_blank(b, n, 0);
    int depth = 0, want_key = 0, found = 0;
    if (i >= n || b[i] != '{')
        return 0;
    for (; i < n; i++) {
        const char c = b[i];
        if (c == '{' || c == '[') {
            depth++;
            want_key = c == '{' && depth == 1;
        } else if (c == '}' || c == ']') {
            depth--;
        } else if (c == ',') {
            want_key = depth == 1;
        } else if (c == '"') {
            const size_t s = ++i;
            int escaped = 0;
            for (; i < n && b[i] != '"'; i++)
                if (b[i] == '\\') {
                    escaped = 1;
                    i++;
                }
            if (i >= n)
                return 0;
            if (!want_key || escaped || i - s != klen || memcmp(b + s, key, klen) != 0) {
                want_key = 0;
                continue;
            }
            want_key = 0;
            if (found)
                return 0; /* twice: jansson refuses it, with its message */
            size_t j = skip_blank(b, n, i + 1);
            if (j < n && b[j] == ':')
                j = skip_blank(b, n, j + 1);
            if (j < n && b[j] == '[') {
                size_t e = number_array_end(b, n, j, count, NULL);
                if (!e)
                    return 0; /* not numbers only: jansson reads it, and its errors */
                *vs = j;
                *ve = e + 1;
                found = 2;
                i = e; /* the loop steps past the closing bracket */
                continue;
            }
            if (j >= n || b[j] != '"')
                return 0; /* neither: nothing to lift */
            size_t e = j + 1;
            while (e < n && b[e] != '"' && b[e] != '\\')
                e++;
            if (e >= n || b[e] != '"')
                return 0; /* escapes: jansson decodes them */
            *vs = j + 1;
            *ve = e;
            found = 1;
            i = e; /* the loop steps past the closing quote */
        }
    }
    return found;
}

json_t *rj_body_lift(http_req *r, const char *key, size_t min_len, rj_lifted *out)
{
    size_t vs = 0, ve = 0, count = 0;
    memset(out, 0, sizeof *out);
    int kind = r->body ? find_member(r->body, r->body_len, key, &vs, &ve, &count) : 0;
    if (!kind || ve - vs < min_len)
        return rj_body(r);
    if (kind == 2) {
        if (!(out->numbers = malloc((count ? count : 1) * sizeof *out->numbers)))
            return rj_body(r);
        if (!number_array_end(r->body, r->body_len, vs, &count, out->numbers)) {
            rj_lifted_free(out);
            return rj_body(r); /* jansson's own error */
        }
        out->count = count;
    }
    /* the body without the value's text: ..."key":""... or ..."key":[]... */
    const size_t keep = kind == 2 ? 1 : 0;
    char *rest = malloc(r->body_len - (ve - vs) + 2 * keep);
    json_t *root = NULL;
    if (rest) {
        size_t m = vs + keep;
        memcpy(rest, r->body, m);
        if (keep)
            rest[m++] = ']';
        memcpy(rest + m, r->body + ve, r->body_len - ve);
        m += r->body_len - ve;
        root = json_loadb(rest, m, JSON_REJECT_DUPLICATES, NULL);
        free(rest);
    }
    json_t *v = json_object_get(root, key);
    int same = json_is_object(root) &&
               (kind == 1 ? json_is_string(v) && json_string_length(v) == 0
                          : json_is_array(v) && json_array_size(v) == 0);
    if (!same) {
        json_decref(root); /* not what the scan saw: the whole body, and its errors */
        rj_lifted_free(out);
        return rj_body(r);
    }
    out->kind = kind == 1 ? RJ_LIFT_STRING : RJ_LIFT_NUMBERS;
    out->text = r->body + vs;
    out->len = ve - vs;
    return root;
}

void rj_lifted_free(rj_lifted *l)
{
    free(l->numbers);
    memset(l, 0, sizeof *l);
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
