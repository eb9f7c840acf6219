/* openapi.c - the OpenAPI document served at /openapi.json: the compiled-in file plus the
 * parts generated from declarations (the search options of the library's table). */
#include "openapi.h"

#include "assets.h"
#include "ragcore.h"

#include <jansson.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

static pthread_once_t once = PTHREAD_ONCE_INIT;
static char *document;
static size_t document_len;

/* Request fields a handler reads apart from the table (see parse_tuning in routes.c). */
static int handled_apart(const char *name)
{
    return !strcmp(name, "k") || !strcmp(name, "filter") || !strcmp(name, "source_prefix");
}

/* The JSON schema of one search option. */
static json_t *option_schema(const rag_option_info *in)
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
    json_object_set_new(s, "nullable", json_true());
    return s;
}

static void build(void)
{
    json_t *doc = json_loadb((const char *)srv_asset_openapi, srv_asset_openapi_len, 0, NULL);
    json_t *schemas = json_object_get(json_object_get(doc, "components"), "schemas");
    static const char *const REQUESTS[] = {"SearchRequest", "ContextRequest"};
    for (size_t r = 0; schemas && r < 2; r++) {
        json_t *props = json_object_get(json_object_get(schemas, REQUESTS[r]), "properties");
        for (size_t i = 0; props && i < rag_search_option_count(); i++) {
            const rag_option_info *in = rag_search_option_info(i);
            if (!handled_apart(in->name))
                json_object_set_new(props, in->name, option_schema(in));
        }
    }
    if (schemas)
        document = json_dumps(doc, JSON_INDENT(1) | JSON_PRESERVE_ORDER);
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
