/* filter_json.c - JSON-object metadata filters translated into the library's filter
 * language. */
#include "filter_json.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define OPERATORS "$eq, $ne, $gt, $gte, $lt, $lte, $in, $nin, $exists, $prefix"

typedef struct out {
    char *p;
    size_t n, cap;
    int oom;
    char *field, *msg;          /* the caller's error buffers */
    size_t field_len, msg_len;
} out;

static void put(out *o, const char *s, size_t n)
{
    if (o->oom)
        return;
    if (o->n + n + 1 > o->cap) {
        size_t cap = (o->n + n + 1) * 2;
        char *q = realloc(o->p, cap);
        if (!q) {
            o->oom = 1;
            return;
        }
        o->p = q;
        o->cap = cap;
    }
    memcpy(o->p + o->n, s, n);
    o->n += n;
    o->p[o->n] = '\0';
}

static void puts_(out *o, const char *s)
{
    put(o, s, strlen(s));
}

/* Records the error: `path` is the member's field path. Returns -1. */
static int fail(out *o, const char *path, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static int fail(out *o, const char *path, const char *fmt, ...)
{
    va_list ap;
    snprintf(o->field, o->field_len, "%s", path);
    va_start(ap, fmt);
    vsnprintf(o->msg, o->msg_len, fmt, ap);
    va_end(ap);
    return -1;
}

/* "path.key" into buf (cut to fit). */
static void member_path(char *buf, size_t len, const char *path, const char *key)
{
    int n = snprintf(buf, len, "%s.", path);
    if (n > 0 && (size_t)n < len)
        snprintf(buf + n, len - (size_t)n, "%s", key);
}

static const char *const BUILTIN[] = {"doc_id",      "source",     "title", "source_mtime",
                                      "ingested_at", "updated_at", NULL};

/* A JSON string literal (the filter language takes JSON escapes). */
static void put_string(out *o, const char *s, size_t len)
{
    json_t *j = json_stringn(s, len);
    char *t = j ? json_dumps(j, JSON_ENCODE_ANY) : NULL;
    if (t)
        puts_(o, t);
    else
        o->oom = 1;
    free(t);
    json_decref(j);
}

/* FIELD: a built-in's name, else metadata."k1"."k2"... */
static int put_field(out *o, const char *key, const char *path)
{
    const char *p = key;
    if (!strncmp(p, "metadata.", 9) && p[9])
        p += 9;
    else
        for (size_t i = 0; BUILTIN[i]; i++)
            if (!strcmp(key, BUILTIN[i])) {
                puts_(o, key);
                return 0;
            }
    puts_(o, "metadata");
    while (*p) {
        size_t n = strcspn(p, ".");
        if (n == 0)
            return fail(o, path, "'%s': an empty key in the field name '%s'", path, key);
        puts_(o, ".");
        put_string(o, p, n);
        p += n;
        if (*p == '.' && !*++p)
            return fail(o, path, "'%s': an empty key in the field name '%s'", path, key);
    }
    return 0;
}

/* A comparable value: string, number, true, false or null. */
static int put_value(out *o, json_t *v, const char *path)
{
    char num[64];
    switch (json_typeof(v)) {
    case JSON_STRING:
        put_string(o, json_string_value(v), json_string_length(v));
        return 0;
    case JSON_INTEGER:
        snprintf(num, sizeof num, "%lld", (long long)json_integer_value(v));
        puts_(o, num);
        return 0;
    case JSON_REAL:
        snprintf(num, sizeof num, "%.17g", json_real_value(v));
        puts_(o, num);
        return 0;
    case JSON_TRUE: puts_(o, "TRUE"); return 0;
    case JSON_FALSE: puts_(o, "FALSE"); return 0;
    case JSON_NULL: puts_(o, "NULL"); return 0;
    default:
        return fail(o, path, "'%s' must be a string, a number, true, false or null", path);
    }
}

static int put_object(out *o, json_t *obj, const char *path);

/* One operator applied to a field. */
static int put_op(out *o, const char *key, const char *path, const char *op, json_t *v)
{
    static const char *const CMP[][2] = {{"$eq", "="},  {"$ne", "!="}, {"$gt", ">"},
                                         {"$gte", ">="}, {"$lt", "<"},  {"$lte", "<="}};
    char sub[512];
    member_path(sub, sizeof sub, path, op);
    for (size_t i = 0; i < sizeof CMP / sizeof CMP[0]; i++)
        if (!strcmp(op, CMP[i][0])) {
            if (put_field(o, key, path) < 0)
                return -1;
            puts_(o, " ");
            puts_(o, CMP[i][1]);
            puts_(o, " ");
            return put_value(o, v, sub);
        }
    if (!strcmp(op, "$in") || !strcmp(op, "$nin")) {
        if (!json_is_array(v) || json_array_size(v) == 0)
            return fail(o, sub, "'%s' must be a non-empty array of values", sub);
        if (put_field(o, key, path) < 0)
            return -1;
        puts_(o, op[1] == 'n' ? " NOT IN (" : " IN (");
        size_t i;
        json_t *x;
        json_array_foreach(v, i, x) {
            char el[512];
            snprintf(el, sizeof el, "%.480s[%zu]", sub, i);
            if (i)
                puts_(o, ", ");
            if (put_value(o, x, el) < 0)
                return -1;
        }
        puts_(o, ")");
        return 0;
    }
    if (!strcmp(op, "$exists")) {
        if (!json_is_boolean(v))
            return fail(o, sub, "'%s' must be true or false", sub);
        puts_(o, json_is_true(v) ? "EXISTS " : "NOT EXISTS ");
        return put_field(o, key, path);
    }
    if (!strcmp(op, "$prefix")) {
        if (!json_is_string(v))
            return fail(o, sub, "'%s' must be a string", sub);
        if (put_field(o, key, path) < 0)
            return -1;
        puts_(o, " ^= ");
        put_string(o, json_string_value(v), json_string_length(v));
        return 0;
    }
    return fail(o, sub, "'%s': unsupported operator '%s' (supported: " OPERATORS ")", sub, op);
}

/* "$and" / "$or": a non-empty array of filter objects, each in parentheses. */
static int put_list(out *o, json_t *v, const char *path, const char *joiner)
{
    if (!json_is_array(v) || json_array_size(v) == 0)
        return fail(o, path, "'%s' must be a non-empty array of filter objects", path);
    size_t i;
    json_t *x;
    json_array_foreach(v, i, x) {
        char el[512];
        snprintf(el, sizeof el, "%.480s[%zu]", path, i);
        if (i)
            puts_(o, joiner);
        puts_(o, "(");
        if (put_object(o, x, el) < 0)
            return -1;
        puts_(o, ")");
    }
    return 0;
}

static int put_object(out *o, json_t *obj, const char *path)
{
    const char *key;
    json_t *v;
    size_t n = 0;
    if (!json_is_object(obj) || json_object_size(obj) == 0)
        return fail(o, path, "'%s' must be a non-empty filter object", path);
    json_object_foreach(obj, key, v) {
        char sub[512];
        member_path(sub, sizeof sub, path, key);
        if (n++)
            puts_(o, " AND ");
        if (!strcmp(key, "$and") || !strcmp(key, "$or")) {
            puts_(o, "(");
            if (put_list(o, v, sub, key[1] == 'a' ? " AND " : " OR ") < 0)
                return -1;
            puts_(o, ")");
        } else if (!strcmp(key, "$not")) {
            puts_(o, "NOT (");
            if (put_object(o, v, sub) < 0)
                return -1;
            puts_(o, ")");
        } else if (key[0] == '$') {
            return fail(o, sub, "'%s': unsupported operator '%s' here (a filter object's "
                        "members are fields, $and, $or or $not)", sub, key);
        } else if (json_is_object(v)) {
            const char *op;
            json_t *x;
            size_t m = 0;
            if (json_object_size(v) == 0)
                return fail(o, sub, "'%s' must name at least one operator (" OPERATORS ")",
                            sub);
            puts_(o, "(");
            json_object_foreach(v, op, x) {
                if (m++)
                    puts_(o, " AND ");
                if (put_op(o, key, sub, op, x) < 0)
                    return -1;
            }
            puts_(o, ")");
        } else if (json_is_array(v)) {
            return fail(o, sub, "'%s': an array matches nothing here; use {\"$in\": [...]}", sub);
        } else {
            if (put_field(o, key, sub) < 0)
                return -1;
            puts_(o, " = ");
            if (put_value(o, v, sub) < 0)
                return -1;
        }
    }
    return 0;
}

char *filter_json_expr(json_t *filter, const char *prefix, char *field, size_t field_len,
                       char *msg, size_t msg_len)
{
    out o = {NULL, 0, 0, 0, field, msg, field_len, msg_len};
    *field = *msg = '\0';
    int rc = put_object(&o, filter, prefix);
    if (rc < 0 || o.oom) {
        free(o.p);
        return NULL;
    }
    return o.p;
}
