/* routes_collections.c - collections over HTTP: list, create (optionally with settings),
 * statistics with settings and freshness, change of settings, drop. */
#include "handlers.h"

#include "reqjson.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Statistics of a collection, with its settings when they can be read. */
static json_t *info_json(rag_db *db, const char *name, const rag_collection_info *in)
{
    json_t *o = json_pack("{s:s,s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I}", "name", name, "documents",
                          (json_int_t)in->documents, "chunks", (json_int_t)in->chunks,
                          "duplicate_chunks", (json_int_t)in->duplicate_chunks, "tombstones",
                          (json_int_t)in->tombstones, "index_vectors",
                          (json_int_t)in->index_vectors, "bytes_text",
                          (json_int_t)in->bytes_text, "created_at", (json_int_t)in->created_at,
                          "newest_ingest", (json_int_t)in->newest_ingest);
    rag_collection_options opts;
    char *text = NULL;
    if (o && rag_collection_options_get(db, name, &opts) == RAG_OK &&
        rag_collection_options_json(&opts, &text) == RAG_OK)
        json_object_set_new(o, "settings", json_loads(text, 0, NULL));
    rag_free(text);
    return o;
}

void h_coll_list(http_req *r, const char *const *params)
{
    char **names = NULL;
    size_t count = 0;
    (void)params;
    int rc = rag_collection_list(r->s->db, &names, &count);
    if (rc != RAG_OK) {
        reply_rag_error(r, rc, NULL, "list collections");
        return;
    }
    json_t *arr = json_array();
    for (size_t i = 0; i < count; i++) {
        rag_collection_info in;
        if (!auth_allows(r->key, SCOPE_READ, names[i]))
            continue;
        if (rag_collection_stats(r->s->db, names[i], &in) == RAG_OK)
            json_array_append_new(arr, info_json(r->s->db, names[i], &in));
    }
    rag_strings_free(names, count);
    http_reply_json(r, 200, json_pack("{s:o}", "collections", arr));
}

/* Collection settings given in a request, kept for the writer thread. */
typedef struct settings_job {
    rag_collection_options opts;
    int given;                  /* the request named settings */
    char language[64];
} settings_job;

/* Applies the members of `obj` (the CollectionSettings schema: the names of the library's
 * collection-option table with a string for choices and text, an integer or a number for
 * numbers; null as if absent) to sj->opts through rag_collection_option_set. `prefix` is
 * obj's field path.
 * 0, or -1 after a 400 naming the field. */
static int parse_settings(http_req *r, json_t *obj, const char *prefix, settings_job *sj)
{
    const char *key;
    json_t *v;
    char path[192], num[64];
    if (!json_is_object(obj)) {
        http_error(r, 400, "invalid_field", *prefix ? prefix : NULL, "'%s' must be an object",
                   *prefix ? prefix : "the body");
        return -1;
    }
    json_object_foreach(obj, key, v) {
        const rag_option_info *in = NULL;
        for (size_t i = 0; i < rag_collection_option_count() && !in; i++)
            if (!strcmp(rag_collection_option_info(i)->name, key))
                in = rag_collection_option_info(i);
        rj_path(path, sizeof path, prefix, key);
        if (!in) {
            http_error(r, 400, "unknown_field", path, "unknown setting '%s'", path);
            return -1;
        }
        if (json_is_null(v))
            continue; /* null: as if absent (the default at creation, unchanged by PATCH) */
        const char *text = NULL;
        if (in->type == RAG_OPTION_INT && json_is_integer(v)) {
            snprintf(num, sizeof num, "%lld", (long long)json_integer_value(v));
            text = num;
        } else if (in->type == RAG_OPTION_REAL && json_is_number(v)) {
            snprintf(num, sizeof num, "%.17g", json_number_value(v));
            text = num;
        } else if ((in->type == RAG_OPTION_CHOICE || in->type == RAG_OPTION_STRING) &&
                   json_is_string(v)) {
            text = json_string_value(v);
        }
        if (!text) {
            http_error(r, 400, "invalid_field", path, "'%s' must be %s", path,
                       in->type == RAG_OPTION_INT    ? "an integer"
                       : in->type == RAG_OPTION_REAL ? "a number"
                                                     : "a string");
            return -1;
        }
        if (!strcmp(in->name, "language")) {
            if (json_string_length(v) >= sizeof sj->language) {
                http_error(r, 400, "invalid_field", path, "'%s' is not a known language", path);
                return -1;
            }
            snprintf(sj->language, sizeof sj->language, "%s", text);
            text = sj->language; /* borrowed by opts: it must outlive the request body */
        }
        if (rag_collection_option_set(&sj->opts, in->name, text) != RAG_OK) {
            http_error(r, 400, "invalid_field", path, "%s", rag_errmsg());
            return -1;
        }
        sj->given = 1;
    }
    return 0;
}

/* Answers 200/201 with the collection's statistics and settings. */
static void reply_collection(http_req *r, int status, const char *name)
{
    rag_collection_info in;
    if (rag_collection_stats(r->s->db, name, &in) != RAG_OK)
        memset(&in, 0, sizeof in);
    http_reply_json(r, status, info_json(r->s->db, name, &in));
}

static void w_coll_create(http_req *r, void *arg)
{
    name_job *j = arg;
    settings_job *sj = j->extra;
    int rc = rag_collection_create_with(r->s->db, j->name, sj->given ? &sj->opts : NULL);
    if (rc == RAG_EEXIST) {
        http_error(r, 409, "already_exists", "name", "collection '%s' already exists", j->name);
        return;
    }
    if (rc != RAG_OK) {
        reply_rag_error(r, rc, sj->given ? "settings" : "name", "create collection");
        return;
    }
    reply_collection(r, 201, j->name);
}

void h_coll_create(http_req *r, const char *const *params)
{
    const char *name;
    static const char *const FIELDS[] = {"name", "settings", NULL};
    json_t *body = NULL, *settings;
    settings_job *sj = NULL;
    name_job *j = NULL;
    (void)params;
    if (!(body = rj_body(r)) || rj_only(r, body, "", FIELDS) < 0 ||
        rj_string(r, body, "", "name", 1, 1, 128, &name) < 0)
        goto cleanup;
    if (!valid_collection_name(name)) {
        http_error(r, 400, "invalid_field", "name",
                   "'name' must be 1..128 letters, digits, '_', '-' or '.'");
        goto cleanup;
    }
    if (!(sj = calloc(1, sizeof *sj))) {
        http_error(r, 500, "internal", NULL, "out of memory");
        goto cleanup;
    }
    rag_collection_options_init(&sj->opts);
    settings = json_object_get(body, "settings");
    if (settings && parse_settings(r, settings, "settings", sj) < 0)
        goto cleanup;
    /* settings are a policy: choosing them needs the admin scope */
    if (authorize(r, settings ? SCOPE_ADMIN : SCOPE_WRITE, name) < 0 ||
        !(j = name_job_new(r, name, NULL)))
        goto cleanup;
    j->extra = sj;
    sj = NULL;
    http_defer(r, w_coll_create, j, name_job_free);
cleanup:
    free(sj);
    json_decref(body);
}

void h_coll_get(http_req *r, const char *const *params)
{
    const char *c = params[0];
    rag_collection_info in;
    rag_freshness_info fi;
    long long objective = 0;
    if (query_long(r, "objective", 1, (long long)1 << 40, &objective) < 0 ||
        require_collection(r, c, &in) < 0)
        return;
    json_t *o = info_json(r->s->db, c, &in);
    if (rag_collection_freshness(r->s->db, c, objective, 0, &fi) == RAG_OK)
        json_object_set_new(
            o, "freshness",
            json_pack("{s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I}", "documents",
                      (json_int_t)fi.documents, "newest_source", (json_int_t)fi.newest_source,
                      "oldest_source", (json_int_t)fi.oldest_source, "last_sync",
                      (json_int_t)fi.last_sync, "sync_lag", (json_int_t)fi.sync_lag, "stale",
                      (json_int_t)fi.stale, "expired", (json_int_t)fi.expired, "objective",
                      (json_int_t)fi.objective));
    http_reply_json(r, 200, o);
}

static void w_coll_configure(http_req *r, void *arg)
{
    name_job *j = arg;
    settings_job *sj = j->extra;
    int rc = rag_collection_configure(r->s->db, j->name, &sj->opts);
    if (rc != RAG_OK) {
        reply_rag_error(r, rc, NULL, "configure collection");
        return;
    }
    reply_collection(r, 200, j->name);
}

/* PATCH: the fields given change, the others keep the collection's current values. */
void h_coll_configure(http_req *r, const char *const *params)
{
    const char *c = params[0];
    json_t *body = NULL;
    settings_job *sj = NULL;
    name_job *j = NULL;
    if (!(body = rj_body(r)) || require_collection(r, c, NULL) < 0)
        goto cleanup;
    if (!(sj = calloc(1, sizeof *sj))) {
        http_error(r, 500, "internal", NULL, "out of memory");
        goto cleanup;
    }
    int rc = rag_collection_options_get(r->s->db, c, &sj->opts);
    if (rc != RAG_OK) {
        reply_rag_error(r, rc, NULL, "collection settings");
        goto cleanup;
    }
    sj->opts.language = NULL; /* unchanged unless given */
    if (parse_settings(r, body, "", sj) < 0 || !(j = name_job_new(r, c, NULL)))
        goto cleanup;
    j->extra = sj;
    sj = NULL;
    http_defer(r, w_coll_configure, j, name_job_free);
cleanup:
    free(sj);
    json_decref(body);
}

static void w_coll_delete(http_req *r, void *arg)
{
    name_job *j = arg;
    int rc = rag_collection_drop(r->s->db, j->name);
    if (rc == RAG_ENOTFOUND) {
        http_error(r, 404, "not_found", NULL, "collection '%s' does not exist", j->name);
        return;
    }
    if (rc != RAG_OK) {
        reply_rag_error(r, rc, NULL, "drop collection");
        return;
    }
    http_reply_json(r, 200, json_pack("{s:s,s:b}", "name", j->name, "deleted", 1));
}

void h_coll_delete(http_req *r, const char *const *params)
{
    name_job *j = name_job_new(r, params[0], NULL);
    if (j)
        http_defer(r, w_coll_delete, j, name_job_free);
}
