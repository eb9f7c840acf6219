/* http_support.c - seed collection and state bounds shared by the fuzz_http* targets. */
#include "http_support.h"

#include "auth.h"
#include "querylog.h"
#include "writer.h"

#include <jansson.h>
#include <stdio.h>
#include <string.h>

int fuzz_seed_docs(rag_db *db)
{
    static const char *const TEXT[] = {
        "# Refunds\n\nRefunds are processed within five business days.",
        "Vitamin D and calcium prevent fractures in older adults.",
        "HNSW graphs answer nearest-neighbour queries in logarithmic time.",
    };
    static const char *const META[] = {"{\"lang\":\"en\",\"year\":2021}",
                                       "{\"lang\":\"de\",\"year\":2015,\"tags\":[\"a\"]}", NULL};
    rag_document d[3];
    char ids[3][8];
    int rc = rag_collection_create(db, "docs");
    if (rc != RAG_OK && rc != RAG_EEXIST)
        return rc;
    for (int i = 0; i < 3; i++) {
        rag_document_init(&d[i]);
        snprintf(ids[i], sizeof ids[i], "d%d", i);
        d[i].id = ids[i];
        d[i].text = TEXT[i];
        d[i].source = "https://example.org/faq";
        d[i].title = "Title";
        d[i].metadata_json = META[i];
        d[i].format = i == 0 ? RAG_FORMAT_MARKDOWN : RAG_FORMAT_TEXT;
    }
    return rag_ingest(db, "docs", d, 3, NULL);
}

int fuzz_bound_state(srv *s)
{
    char **names = NULL;
    size_t n = 0;
    rag_collection_info info;
    int rc = rag_collection_stats(s->db, "docs", &info);
    if (rc == RAG_OK && info.chunks > 2000) {
        rag_collection_drop(s->db, "docs");
        rc = RAG_ENOTFOUND;
    }
    rc = rc == RAG_ENOTFOUND ? fuzz_seed_docs(s->db) : RAG_OK;
    if (rag_collection_list(s->db, &names, &n) == RAG_OK && n > 16)
        for (size_t i = 0; i < n; i++)
            if (strcmp(names[i], "docs"))
                rag_collection_drop(s->db, names[i]);
    rag_strings_free(names, n);
    json_t *keys = auth_list(s->auth);
    if (json_array_size(keys) > 32) {
        size_t i;
        json_t *k;
        json_array_foreach(keys, i, k) {
            const char *id = json_string_value(json_object_get(k, "id"));
            if (id && strcmp(id, "bootstrap"))
                auth_revoke(s->auth, id);
        }
    }
    json_decref(keys);
    return rc;
}

const char *fuzz_server_open(srv *s, const char *admin_key)
{
    rag_open_options oo;
    rag_open_options_init(&oo);
    oo.embedder = s->cfg.embedder;
    oo.dim = s->cfg.dim;
    if (rag_open(s->cfg.db, &oo, &s->db) != RAG_OK)
        return "rag_open";
    s->dim = rag_db_dim(s->db);
    if (auth_open(s->db, admin_key, &s->auth) != RAG_OK)
        return "auth_open";
    if (!(s->qlog = qlog_start(s->db, &s->cfg.limits, s->metrics)) ||
        !(s->writer = writer_start()))
        return "start of the query log or writer thread";
    if (fuzz_seed_docs(s->db) != RAG_OK)
        return "seed documents";
    return NULL;
}
