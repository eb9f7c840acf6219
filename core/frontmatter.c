/* frontmatter.c - Markdown YAML front matter into JSON metadata, with libyaml's parser. */
#include "frontmatter.h"

#include "status.h"

#include <errno.h>
#include <jansson.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <yaml.h>

#define MAX_DEPTH 32

/* The end of the line starting at i (the offset of its '\n', or len). */
static size_t line_end(const char *t, size_t len, size_t i)
{
    const char *nl = memchr(t + i, '\n', len - i);
    return nl ? (size_t)(nl - t) : len;
}

/* 1 when t[i, e) is the marker line (trailing spaces allowed). */
static int is_marker(const char *t, size_t i, size_t e, const char *marker)
{
    size_t m = strlen(marker);
    if (e - i < m || memcmp(t + i, marker, m) != 0)
        return 0;
    for (size_t k = i + m; k < e; k++)
        if (t[k] != ' ' && t[k] != '\t' && t[k] != '\r')
            return 0;
    return 1;
}

/* A plain scalar as JSON: integers, reals, booleans and null as such, else a string. */
static json_t *plain_scalar(const char *v, size_t n)
{
    static const char *const nulls[] = {"", "~", "null", "Null", "NULL"};
    static const char *const trues[] = {"true", "True", "TRUE"};
    static const char *const falses[] = {"false", "False", "FALSE"};
    for (size_t k = 0; k < 5; k++)
        if (strlen(nulls[k]) == n && memcmp(v, nulls[k], n) == 0)
            return json_null();
    for (size_t k = 0; k < 3; k++) {
        if (strlen(trues[k]) == n && memcmp(v, trues[k], n) == 0)
            return json_true();
        if (strlen(falses[k]) == n && memcmp(v, falses[k], n) == 0)
            return json_false();
    }
    char buf[64];
    if (n > 0 && n < sizeof buf && (v[0] == '-' || v[0] == '+' || (v[0] >= '0' && v[0] <= '9'))) {
        memcpy(buf, v, n);
        buf[n] = '\0';
        char *end;
        errno = 0;
        long long iv = strtoll(buf, &end, 10);
        /* no leading zeros ("007" stays a string, as do version numbers and dates) */
        int sign = buf[0] == '-' || buf[0] == '+';
        int lead0 = buf[sign] == '0' && n > (size_t)sign + 1 && buf[sign + 1] != '.';
        if (!*end && !errno && !lead0)
            return json_integer(iv);
        double dv = strtod(buf, &end);
        if (!*end && !errno && isfinite(dv) && !lead0 && strchr(buf, '.'))
            return json_real(dv);
    }
    return json_stringn(v, n);
}

/* Converts node to JSON (NULL on ENOMEM or a node too deep). */
static json_t *to_json(yaml_document_t *doc, yaml_node_t *node, int depth)
{
    if (!node || depth > MAX_DEPTH)
        return NULL;
    switch (node->type) {
    case YAML_SCALAR_NODE: {
        const char *v = (const char *)node->data.scalar.value;
        size_t n = node->data.scalar.length;
        if (node->data.scalar.style == YAML_PLAIN_SCALAR_STYLE)
            return plain_scalar(v, n);
        return json_stringn(v, n);
    }
    case YAML_SEQUENCE_NODE: {
        json_t *a = json_array();
        for (yaml_node_item_t *it = node->data.sequence.items.start;
             a && it < node->data.sequence.items.top; it++) {
            json_t *c = to_json(doc, yaml_document_get_node(doc, *it), depth + 1);
            if (!c || json_array_append_new(a, c) != 0) {
                json_decref(a);
                return NULL;
            }
        }
        return a;
    }
    case YAML_MAPPING_NODE: {
        json_t *o = json_object();
        for (yaml_node_pair_t *p = node->data.mapping.pairs.start;
             o && p < node->data.mapping.pairs.top; p++) {
            yaml_node_t *k = yaml_document_get_node(doc, p->key);
            if (!k || k->type != YAML_SCALAR_NODE)
                continue; /* complex keys have no JSON form */
            char *key = rag_strndup((const char *)k->data.scalar.value, k->data.scalar.length);
            json_t *c = to_json(doc, yaml_document_get_node(doc, p->value), depth + 1);
            if (!key || !c || json_object_set_new(o, key, c) != 0) {
                free(key);
                json_decref(o);
                return NULL;
            }
            free(key);
        }
        return o;
    }
    default:
        return json_null();
    }
}

int rag_front_matter(const char *t, size_t len, size_t *body, char **json, char **title)
{
    *body = 0;
    *json = NULL;
    *title = NULL;
    size_t e = line_end(t, len, 0);
    if (e == len || !is_marker(t, 0, e, "---"))
        return RAG_OK;
    size_t start = e + 1, i = start, close = 0, after = 0;
    int found = 0;
    while (i <= len && !found) {
        e = line_end(t, len, i);
        if (is_marker(t, i, e, "---") || is_marker(t, i, e, "...")) {
            found = 1;
            close = i;
            after = e < len ? e + 1 : len;
        }
        if (e >= len)
            break;
        i = e + 1;
    }
    if (!found)
        return RAG_OK; /* a thematic break, not front matter */
    yaml_parser_t parser;
    yaml_document_t doc;
    int rc = RAG_OK, have_doc = 0;
    json_t *root = NULL;
    if (!yaml_parser_initialize(&parser))
        return rag_fail(RAG_ENOMEM, "out of memory");
    yaml_parser_set_input_string(&parser, (const unsigned char *)t + start, close - start);
    if (!yaml_parser_load(&parser, &doc)) {
        rc = rag_fail(RAG_EPARSE, "front matter is not valid YAML (line %zu: %s)",
                      parser.problem_mark.line + 2, parser.problem ? parser.problem : "error");
        goto cleanup;
    }
    have_doc = 1;
    yaml_node_t *top = yaml_document_get_root_node(&doc);
    if (!top) { /* empty front matter */
        *body = after;
        goto cleanup;
    }
    if (top->type != YAML_MAPPING_NODE) {
        rc = rag_fail(RAG_EPARSE, "front matter must be a YAML mapping (key: value lines)");
        goto cleanup;
    }
    if (!(root = to_json(&doc, top, 0))) {
        rc = rag_fail(RAG_EPARSE, "front matter nests deeper than %d levels", MAX_DEPTH);
        goto cleanup;
    }
    json_t *jt = json_object_get(root, "title");
    if (json_is_string(jt) && json_string_length(jt) > 0) {
        if (!(*title = rag_strdup(json_string_value(jt)))) {
            rc = RAG_ENOMEM;
            goto cleanup;
        }
        json_object_del(root, "title");
    }
    if (json_object_size(root) > 0 &&
        !(*json = json_dumps(root, JSON_COMPACT | JSON_PRESERVE_ORDER))) {
        rc = rag_fail(RAG_ENOMEM, "out of memory");
        goto cleanup;
    }
    *body = after;
cleanup:
    if (rc != RAG_OK) {
        free(*title);
        *title = NULL;
    }
    json_decref(root);
    if (have_doc)
        yaml_document_delete(&doc);
    yaml_parser_delete(&parser);
    return rc;
}
