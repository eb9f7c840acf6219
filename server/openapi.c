/* openapi.c - the OpenAPI document served at /openapi.json: the compiled-in components
 * (server/openapi.json) plus what is generated from declarations: the paths from the route
 * table, the search options and the collection settings from the library's tables. */
#include "openapi.h"

#include "assets.h"
#include "auth.h"
#include "ragcore.h"
#include "routes.h"

#include <jansson.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static pthread_once_t once = PTHREAD_ONCE_INIT;
static char *document;
static size_t document_len;

/* Request fields a handler reads apart from the table (see parse_tuning in
 * routes_search.c). */
static int handled_apart(const char *name)
{
    return !strcmp(name, "k") || !strcmp(name, "filter") || !strcmp(name, "source_prefix");
}

/* The JSON schema of one option (search option or collection setting); `nullable`: null
 * is accepted as "not given". */
static json_t *option_schema(const rag_option_info *in, int nullable)
{
    json_t *s = json_object();
    char desc[512];
    snprintf(desc, sizeof desc, "%s (default %s)", in->help, in->default_text);
    switch (in->type) {
    case RAG_OPTION_INT:
    case RAG_OPTION_REAL:
        json_object_set_new(s, "type", json_string(in->type == RAG_OPTION_INT ? "integer" : "number"));
        json_object_set_new(s, "minimum", json_real(in->min));
        json_object_set_new(s, "maximum", json_real(in->max));
        break;
    case RAG_OPTION_CHOICE: {
        json_t *e = json_array();
        const char *p = in->choices;
        while (*p) {
            const char *bar = strchr(p, '|');
            size_t n = bar ? (size_t)(bar - p) : strlen(p);
            json_array_append_new(e, json_stringn(p, n));
            p += n + (bar != NULL);
        }
        if (nullable)
            json_array_append_new(e, json_null());
        json_object_set_new(s, "type", json_string("string"));
        json_object_set_new(s, "enum", e);
        break;
    }
    default:
        json_object_set_new(s, "type", json_string("string"));
        break;
    }
    json_object_set_new(s, "description", json_string(desc));
    if (nullable)
        json_object_set_new(s, "nullable", json_true());
    return s;
}

static json_t *ref(const char *kind, const char *name)
{
    char buf[160];
    snprintf(buf, sizeof buf, "#/components/%s/%s", kind, name);
    return json_pack("{s:s}", "$ref", buf);
}

/* The error responses a route can give, from its declaration (see route_table.h). */
static void add_errors(json_t *responses, const route_def *rt)
{
    static const struct {
        const char *code, *name;
    } ERR[] = {{"400", "BadRequest"}, {"401", "Unauthorized"}, {"403", "Forbidden"},
               {"404", "NotFound"},   {"409", "Conflict"},     {"413", "TooLarge"},
               {"429", "Overloaded"}, {"501", "NotImplemented"}, {"503", "NotReady"}};
    int path_params = strchr(rt->pattern, '{') != NULL;
    int authed = rt->scope != ROUTE_PUBLIC;
    int has[] = {rt->request || *rt->params, authed, authed, path_params,
                 (rt->flags & ROUTE_F_409) != 0, rt->request != NULL, authed,
                 (rt->flags & ROUTE_F_501) != 0,
                 (rt->flags & (ROUTE_F_STORE | ROUTE_F_503)) != 0};
    for (size_t i = 0; i < sizeof ERR / sizeof ERR[0]; i++)
        if (has[i])
            json_object_set_new(responses, ERR[i].code, ref("responses", ERR[i].name));
}

static const char *scope_text(unsigned scope)
{
    return scope == SCOPE_ADMIN     ? "Scope: admin."
           : scope == SCOPE_WRITE   ? "Scope: write."
           : scope == SCOPE_METRICS ? "Scope: metrics."
           : scope == SCOPE_READ    ? "Scope: read."
                                    : "";
}

/* One operation from a route; NULL when it names a schema or parameter that `components`
 * lacks (the message goes to stderr: a defect of the table or the file). */
static json_t *operation(const route_def *rt, json_t *components)
{
    json_t *op = json_object(), *params = json_array(), *responses = json_object();
    char desc[1024];
    json_object_set_new(op, "summary", json_string(rt->summary));
    json_object_set_new(op, "operationId", json_string(rt->operation));
    snprintf(desc, sizeof desc, "%s%s%s", scope_text(rt->scope),
             *scope_text(rt->scope) && *rt->description ? " " : "", rt->description);
    if (*desc)
        json_object_set_new(op, "description", json_string(desc));
    if (rt->scope == ROUTE_PUBLIC)
        json_object_set_new(op, "security", json_array());
    const char *p = rt->params;
    while (*p) {
        char name[64];
        size_t n = strcspn(p, " ");
        snprintf(name, sizeof name, "%.*s", (int)n, p);
        if (!json_object_get(json_object_get(components, "parameters"), name)) {
            fprintf(stderr, "openapi: route %s names parameter '%s' absent from openapi.json\n",
                    rt->operation, name);
            goto fail;
        }
        json_array_append_new(params, ref("parameters", name));
        p += n + strspn(p + n, " ");
    }
    if (json_array_size(params))
        json_object_set(op, "parameters", params);
    json_t *schemas = json_object_get(components, "schemas");
    const char *names[2] = {rt->request, rt->response};
    for (int i = 0; i < 2; i++)
        if (names[i] && !json_object_get(schemas, names[i])) {
            fprintf(stderr, "openapi: route %s names schema '%s' absent from openapi.json\n",
                    rt->operation, names[i]);
            goto fail;
        }
    if (rt->request)
        json_object_set_new(op, "requestBody",
                            json_pack("{s:b,s:{s:{s:o}}}", "required", 1, "content",
                                      "application/json", "schema",
                                      ref("schemas", rt->request)));
    const char *ctype = rt->flags & ROUTE_F_HTML   ? "text/html"
                        : rt->flags & ROUTE_F_TEXT ? "text/plain"
                                                   : "application/json";
    json_t *body = rt->response ? ref("schemas", rt->response)
                                : json_pack("{s:s}", "type", "string");
    char status[8];
    snprintf(status, sizeof status, "%d", rt->status);
    json_object_set_new(responses, status,
                        json_pack("{s:s,s:{s:{s:o}}}", "description", rt->summary, "content",
                                  ctype, "schema", body));
    add_errors(responses, rt);
    json_object_set(op, "responses", responses);
    json_decref(params);
    json_decref(responses);
    return op;
fail:
    json_decref(params);
    json_decref(responses);
    json_decref(op);
    return NULL;
}

/* The paths object: one path item per pattern ("{id+}" written "{id}"), an operation per
 * route. NULL on a defect (see operation). */
static json_t *paths_from_routes(json_t *components)
{
    size_t n;
    const route_def *t = route_table(&n);
    json_t *paths = json_object();
    for (size_t i = 0; i < n; i++) {
        char path[256], method[16];
        size_t k = 0;
        for (const char *p = t[i].pattern; *p && k + 1 < sizeof path; p++)
            if (!(*p == '+' && p[1] == '}'))
                path[k++] = *p;
        path[k] = '\0';
        for (k = 0; t[i].method[k] && k + 1 < sizeof method; k++)
            method[k] = (char)(t[i].method[k] | 0x20); /* ASCII lower case */
        method[k] = '\0';
        json_t *op = operation(&t[i], components);
        if (!op) {
            json_decref(paths);
            return NULL;
        }
        json_t *item = json_object_get(paths, path);
        if (!item) {
            item = json_object();
            json_object_set_new(paths, path, item);
        }
        json_object_set_new(item, method, op);
    }
    return paths;
}

static void build(void)
{
    json_t *doc = json_loadb((const char *)srv_asset_openapi, srv_asset_openapi_len, 0, NULL);
    json_t *components = json_object_get(doc, "components");
    json_t *schemas = json_object_get(components, "schemas");
    static const char *const REQUESTS[] = {"SearchRequest", "ContextRequest"};
    for (size_t r = 0; schemas && r < 2; r++) {
        json_t *props = json_object_get(json_object_get(schemas, REQUESTS[r]), "properties");
        for (size_t i = 0; props && i < rag_search_option_count(); i++) {
            const rag_option_info *in = rag_search_option_info(i);
            if (!handled_apart(in->name))
                json_object_set_new(props, in->name, option_schema(in, 1));
        }
    }
    json_t *settings = json_object_get(json_object_get(schemas, "CollectionSettings"),
                                       "properties");
    for (size_t i = 0; settings && i < rag_collection_option_count(); i++) {
        const rag_option_info *in = rag_collection_option_info(i);
        json_object_set_new(settings, in->name, option_schema(in, 1));
    }
    json_t *paths = schemas ? paths_from_routes(components) : NULL;
    if (paths) {
        json_object_set_new(doc, "paths", paths);
        document = json_dumps(doc, JSON_INDENT(1) | JSON_PRESERVE_ORDER);
    }
    if (document)
        document_len = strlen(document);
    json_decref(doc);
}

const char *openapi_document(size_t *len)
{
    pthread_once(&once, build);
    *len = document_len;
    return document;
}
