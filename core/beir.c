/* beir.c - loading BEIR-format queries and qrels for retrieval evaluation. */
#include "status.h"

#include <errno.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

/* Reads one line (without its newline) into *buf; returns its length, -1 at end of file,
 * -2 on a read error. */
static long read_line(gzFile f, char **buf, size_t *cap)
{
    size_t len = 0;
    int c;
    while ((c = gzgetc(f)) != -1) {
        if (len + 2 > *cap) {
            size_t ncap = *cap ? *cap * 2 : 4096;
            char *p = realloc(*buf, ncap);
            if (!p)
                return -2;
            *buf = p;
            *cap = ncap;
        }
        if (c == '\n')
            break;
        (*buf)[len++] = (char)c;
    }
    if (c == -1 && len == 0) {
        int err = 0;
        gzerror(f, &err);
        return err != Z_OK && err != Z_STREAM_END ? -2 : -1;
    }
    if (len > 0 && (*buf)[len - 1] == '\r')
        len--;
    (*buf)[len] = 0;
    return (long)len;
}

static int cmp_query_id(const void *a, const void *b)
{
    return strcmp(((const rag_beir_query *)a)->id, ((const rag_beir_query *)b)->id);
}

static void free_query(rag_beir_query *q)
{
    free((char *)q->id);
    free((char *)q->text);
    for (size_t j = 0; j < q->n_judged; j++)
        free((char *)q->judged[j].doc_id);
    free((rag_beir_judgment *)q->judged);
}

static int load_queries(const char *path, rag_beir_query **out, size_t *n)
{
    gzFile f = gzopen(path, "rb");
    char *line = NULL;
    size_t cap = 0, nq = 0, qcap = 0, lineno = 0;
    rag_beir_query *qs = NULL;
    long len;
    int rc = RAG_OK;
    if (!f)
        return rag_fail(RAG_EIO, "cannot open queries file '%s': %s", path, strerror(errno));
    while ((len = read_line(f, &line, &cap)) >= 0) {
        lineno++;
        if (len == 0)
            continue;
        json_error_t jerr;
        json_t *o = json_loadb(line, (size_t)len, 0, &jerr);
        if (!o || !json_is_object(o)) {
            rc = rag_fail(RAG_EPARSE, "%s line %zu: %s", path, lineno,
                          o ? "not a JSON object" : jerr.text);
            json_decref(o);
            goto cleanup;
        }
        json_t *id = json_object_get(o, "_id"), *text = json_object_get(o, "text");
        char idbuf[32];
        const char *ids = json_is_string(id) ? json_string_value(id) : NULL;
        if (json_is_integer(id)) {
            snprintf(idbuf, sizeof idbuf, "%lld", (long long)json_integer_value(id));
            ids = idbuf;
        }
        if (!ids || !*ids || !json_is_string(text)) {
            rc = rag_fail(RAG_EPARSE, "%s line %zu: need a string \"_id\" and \"text\"", path,
                          lineno);
            json_decref(o);
            goto cleanup;
        }
        if (nq == qcap) {
            qcap = qcap ? qcap * 2 : 256;
            rag_beir_query *p = rag_realloc(qs, qcap * sizeof *p);
            if (!p) {
                json_decref(o);
                rc = RAG_ENOMEM;
                goto cleanup;
            }
            qs = p;
        }
        memset(&qs[nq], 0, sizeof qs[nq]);
        qs[nq].id = rag_strdup(ids);
        qs[nq].text = rag_strdup(json_string_value(text));
        nq++;
        json_decref(o);
        if (!qs[nq - 1].id || !qs[nq - 1].text) {
            rc = RAG_ENOMEM;
            goto cleanup;
        }
    }
    if (len == -2) {
        rc = rag_fail(RAG_EIO, "%s: read error after line %zu", path, lineno);
        goto cleanup;
    }
    if (nq)
        qsort(qs, nq, sizeof *qs, cmp_query_id);
    for (size_t i = 1; i < nq; i++)
        if (strcmp(qs[i - 1].id, qs[i].id) == 0) {
            rc = rag_fail(RAG_EPARSE, "%s: query id '%s' appears twice", path, qs[i].id);
            goto cleanup;
        }
cleanup:
    gzclose(f);
    free(line);
    if (rc != RAG_OK) {
        for (size_t i = 0; i < nq; i++)
            free_query(&qs[i]);
        free(qs);
        qs = NULL;
        nq = 0;
    }
    *out = qs;
    *n = nq;
    return rc;
}

static int add_judgment(rag_beir_query *q, const char *doc, double gain)
{
    rag_beir_judgment *p = rag_realloc((rag_beir_judgment *)q->judged,
                                       (q->n_judged + 1) * sizeof *p);
    if (!p)
        return RAG_ENOMEM;
    q->judged = p;
    p[q->n_judged].doc_id = rag_strdup(doc);
    if (!p[q->n_judged].doc_id)
        return RAG_ENOMEM;
    p[q->n_judged++].gain = gain;
    if (gain > 0)
        q->n_relevant++;
    return RAG_OK;
}

static int load_qrels(const char *path, rag_beir_query *qs, size_t nq, size_t *orphans)
{
    gzFile f = gzopen(path, "rb");
    char *line = NULL;
    size_t cap = 0, lineno = 0;
    long len;
    int rc = RAG_OK;
    if (!f)
        return rag_fail(RAG_EIO, "cannot open qrels file '%s': %s", path, strerror(errno));
    while ((len = read_line(f, &line, &cap)) >= 0) {
        lineno++;
        if (len == 0)
            continue;
        char *fields[4] = {NULL};
        int nf = 0;
        for (char *s = line, *tok; nf < 4 && (tok = strsep(&s, "\t")) != NULL;)
            fields[nf++] = tok;
        if (nf != 3) {
            rc = rag_fail(RAG_EPARSE, "%s line %zu: expected 3 tab-separated fields "
                          "(query-id corpus-id score), got %d", path, lineno, nf);
            goto cleanup;
        }
        char *end;
        errno = 0;
        double gain = strtod(fields[2], &end);
        if (end == fields[2] || *end || errno) {
            if (lineno == 1)
                continue; /* header: query-id corpus-id score */
            rc = rag_fail(RAG_EPARSE, "%s line %zu: score '%s' is not a number", path, lineno,
                          fields[2]);
            goto cleanup;
        }
        if (!*fields[0] || !*fields[1]) {
            rc = rag_fail(RAG_EPARSE, "%s line %zu: empty query or corpus id", path, lineno);
            goto cleanup;
        }
        rag_beir_query key = {.id = fields[0]};
        rag_beir_query *q = bsearch(&key, qs, nq, sizeof *qs, cmp_query_id);
        if (!q) {
            (*orphans)++;
            continue;
        }
        if ((rc = add_judgment(q, fields[1], gain)) != RAG_OK)
            goto cleanup;
    }
    if (len == -2)
        rc = rag_fail(RAG_EIO, "%s: read error after line %zu", path, lineno);
cleanup:
    gzclose(f);
    free(line);
    return rc;
}

int rag_beir_load(const char *queries_path, const char *qrels_path, rag_beir_set **out)
{
    rag_beir_query *qs = NULL;
    size_t nq = 0, orphans = 0;
    rag_clear_error();
    if (!out)
        return rag_fail(RAG_EINVAL, "rag_beir_load: out is NULL");
    *out = NULL;
    if (!queries_path || !qrels_path)
        return rag_fail(RAG_EINVAL, "rag_beir_load: NULL path");
    int rc = load_queries(queries_path, &qs, &nq);
    if (rc != RAG_OK)
        return rc;
    rag_beir_set *set = rag_calloc(1, sizeof *set);
    if (!set) {
        rc = RAG_ENOMEM;
        goto fail;
    }
    if ((rc = load_qrels(qrels_path, qs, nq, &orphans)) != RAG_OK)
        goto fail;
    /* keep the judged queries, in id order */
    size_t kept = 0;
    for (size_t i = 0; i < nq; i++) {
        if (qs[i].n_relevant > 0)
            qs[kept++] = qs[i];
        else {
            free_query(&qs[i]);
            set->unjudged++;
        }
    }
    nq = kept;
    if (kept == 0) {
        rc = rag_fail(RAG_EINVAL, "no query of '%s' has a relevant document in '%s'",
                      queries_path, qrels_path);
        goto fail;
    }
    set->queries = qs;
    set->n = kept;
    set->orphan_qrels = orphans;
    *out = set;
    return RAG_OK;
fail:
    for (size_t i = 0; i < nq; i++)
        free_query(&qs[i]);
    free(qs);
    free(set);
    return rc;
}

void rag_beir_free(rag_beir_set *set)
{
    if (!set)
        return;
    rag_beir_query *qs = (rag_beir_query *)set->queries;
    for (size_t i = 0; i < set->n; i++)
        free_query(&qs[i]);
    free(qs);
    free(set);
}

double rag_beir_gain(const rag_beir_query *q, const char *doc_id)
{
    for (size_t i = 0; i < q->n_judged; i++)
        if (strcmp(q->judged[i].doc_id, doc_id) == 0)
            return q->judged[i].gain;
    return 0;
}
