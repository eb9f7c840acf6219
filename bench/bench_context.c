/* bench_context.c - latency of rag_context (prompt-ready context) against the search it
 * runs, over the queries of a BEIR set, on an existing store.
 *
 * usage: bench_context [--store DIR] [--queries FILE] [--budget N] [--format text|markdown|json]
 *                      [--limit N]
 * The store (default /tmp/ctx-sf) is built beforehand, e.g.
 *   ragcore ingest --db /tmp/ctx-sf --embedder hash /work/shared/data/scifact-dev/corpus.jsonl.gz
 * FILE (default /work/shared/data/scifact-dev/queries.jsonl) has one {"_id","text"} per line.
 * Prints one JSON line: per-query wall and CPU milliseconds (mean, p50, p95) of the plain
 * search (k 20, MMR 0.7, 3 per document) and of rag_context, plus mean tokens and sources. */
#include "ragcore.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static double clock_s(clockid_t id)
{
    struct timespec ts;
    clock_gettime(id, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* Sorts v[n] and returns {mean, p50, p95} in milliseconds as a JSON object. */
static json_t *summary(double *v, size_t n)
{
    double sum = 0;
    for (size_t i = 0; i < n; i++)
        sum += v[i];
    qsort(v, n, sizeof *v, cmp_double);
    return json_pack("{s:f,s:f,s:f}", "mean", n ? 1e3 * sum / n : 0.0, "p50",
                     n ? 1e3 * v[n / 2] : 0.0, "p95", n ? 1e3 * v[(n * 95) / 100] : 0.0);
}

int main(int argc, char **argv)
{
    const char *store = "/tmp/ctx-sf", *qfile = "/work/shared/data/scifact-dev/queries.jsonl";
    int budget = 1024, limit = 0;
    rag_context_format fmt = RAG_CONTEXT_TEXT;
    for (int i = 1; i + 1 < argc; i += 2) {
        if (!strcmp(argv[i], "--store")) {
            store = argv[i + 1];
        } else if (!strcmp(argv[i], "--queries")) {
            qfile = argv[i + 1];
        } else if (!strcmp(argv[i], "--budget")) {
            budget = atoi(argv[i + 1]);
        } else if (!strcmp(argv[i], "--limit")) {
            limit = atoi(argv[i + 1]);
        } else if (!strcmp(argv[i], "--format")) {
            fmt = !strcmp(argv[i + 1], "markdown") ? RAG_CONTEXT_MARKDOWN
                  : !strcmp(argv[i + 1], "json")   ? RAG_CONTEXT_JSON
                                                   : RAG_CONTEXT_TEXT;
        } else {
            fprintf(stderr, "bench_context: unknown option %s\n", argv[i]);
            return 1;
        }
    }
    FILE *f = fopen(qfile, "r");
    if (!f) {
        perror(qfile);
        return 1;
    }
    char **queries = NULL;
    size_t nq = 0, cap = 0;
    char line[65536];
    while (fgets(line, sizeof line, f) && (!limit || nq < (size_t)limit)) {
        json_t *o = json_loads(line, 0, NULL);
        const char *t = o ? json_string_value(json_object_get(o, "text")) : NULL;
        if (t) {
            if (nq == cap) {
                cap = cap ? 2 * cap : 256;
                queries = realloc(queries, cap * sizeof *queries);
            }
            queries[nq++] = strdup(t);
        }
        json_decref(o);
    }
    fclose(f);

    rag_open_options oo;
    rag_open_options_init(&oo);
    oo.read_only = 1;
    rag_db *db = NULL;
    if (rag_open(store, &oo, &db) != RAG_OK) {
        fprintf(stderr, "bench_context: %s: %s\n", store, rag_errmsg());
        return 1;
    }
    double *sw = calloc(nq + 1, sizeof *sw), *sc = calloc(nq + 1, sizeof *sc);
    double *cw = calloc(nq + 1, sizeof *cw), *cc = calloc(nq + 1, sizeof *cc);
    double tokens = 0, sources = 0, full = 0;
    rag_context_options co;
    rag_context_options_init(&co);
    co.budget_tokens = budget;
    co.format = fmt;
    rag_search_options so = co.search;
    so.k = 20;
    so.mmr_lambda = 0.7f;
    so.per_doc = 3;
    /* warm-up: the first call may load indexes */
    rag_results *res = NULL;
    if (nq && rag_search(db, queries[0], &so, &res) != RAG_OK) {
        fprintf(stderr, "bench_context: search: %s\n", rag_errmsg());
        return 1;
    }
    rag_results_free(res);
    for (size_t i = 0; i < nq; i++) {
        double w0 = clock_s(CLOCK_MONOTONIC), c0 = clock_s(CLOCK_THREAD_CPUTIME_ID);
        if (rag_search(db, queries[i], &so, &res) != RAG_OK) {
            fprintf(stderr, "bench_context: search: %s\n", rag_errmsg());
            return 1;
        }
        rag_results_free(res);
        double w1 = clock_s(CLOCK_MONOTONIC), c1 = clock_s(CLOCK_THREAD_CPUTIME_ID);
        rag_prompt_context *ctx = NULL;
        if (rag_context(db, queries[i], &co, &ctx) != RAG_OK) {
            fprintf(stderr, "bench_context: context: %s\n", rag_errmsg());
            return 1;
        }
        double w2 = clock_s(CLOCK_MONOTONIC), c2 = clock_s(CLOCK_THREAD_CPUTIME_ID);
        sw[i] = w1 - w0, sc[i] = c1 - c0, cw[i] = w2 - w1, cc[i] = c2 - c1;
        tokens += rag_context_tokens(ctx);
        full += rag_context_tokens(ctx) >= budget - 30;
        json_t *j = json_loads(rag_context_json(ctx), 0, NULL);
        sources += (double)json_array_size(json_object_get(j, "sources"));
        json_decref(j);
        rag_context_free(ctx);
    }
    json_t *out = json_pack("{s:s,s:s,s:i,s:i,s:{s:o,s:o},s:{s:o,s:o},s:f,s:f,s:f}", "store",
                            store, "embedder", rag_db_embedder(db), "budget", budget, "queries",
                            (int)nq, "search_ms", "wall", summary(sw, nq), "cpu",
                            summary(sc, nq), "context_ms", "wall", summary(cw, nq), "cpu",
                            summary(cc, nq), "mean_tokens", nq ? tokens / nq : 0.0,
                            "mean_sources", nq ? sources / nq : 0.0, "budget_filled_share",
                            nq ? full / nq : 0.0);
    json_dumpf(out, stdout, JSON_COMPACT);
    fputc('\n', stdout);
    json_decref(out);
    for (size_t i = 0; i < nq; i++)
        free(queries[i]);
    free(queries);
    free(sw);
    free(sc);
    free(cw);
    free(cc);
    rag_close(db);
    return 0;
}
