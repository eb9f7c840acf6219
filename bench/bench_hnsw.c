/* bench_hnsw.c - HNSW parameter study on real vectors: build time per efConstruction and,
 * per efSearch, recall@k against exact search and single-thread CPU time per query.
 *
 * usage: bench_hnsw --base FILE --queries FILE [--dim D] [--n N] [--nq Q] [--k K]
 *                   [--spec SPEC] [--efc E[,E...]] [--ef E[,E...]]
 *
 * FILE holds little-endian float32 vectors back to back (dim floats each), L2-normalised,
 * e.g. docs.f32 / queries.f32 written by bench/server_bench.py or `ragcore embed`. The
 * index is the library's own (core/vindex.c: IDMap2 over SPEC, inner product), built with
 * every core; searches run on one thread, as a server worker runs them. Ground truth is
 * rag_exact_topk over the first N base vectors. Prints one Markdown row per (efc, ef). */
#include "ragcore.h"
#include "vindex.h"

#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define MAX_LIST 16

typedef struct config {
    const char *base, *queries, *spec;
    int dim, k, nefc, nef;
    size_t n, nq;
    int efc[MAX_LIST], ef[MAX_LIST];
} config;

static double now(clockid_t clk)
{
    struct timespec ts;
    clock_gettime(clk, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* Reads up to `max` vectors of `dim` floats from `path`; returns how many (0 on error). */
static size_t read_vectors(const char *path, int dim, size_t max, float **out)
{
    *out = NULL;
    FILE *fp = fopen(path, "rb");
    if (!fp) {
        perror(path);
        return 0;
    }
    fseek(fp, 0, SEEK_END);
    long bytes = ftell(fp);
    fseek(fp, 0, SEEK_SET);
    size_t have = bytes > 0 ? (size_t)bytes / ((size_t)dim * sizeof(float)) : 0;
    if (max && have > max)
        have = max;
    float *v = have ? malloc(have * (size_t)dim * sizeof *v) : NULL;
    if (!v || fread(v, sizeof *v * (size_t)dim, have, fp) != have) {
        fprintf(stderr, "bench_hnsw: cannot read %zu vectors of dim %d from %s\n", have, dim, path);
        free(v);
        have = 0;
        v = NULL;
    }
    fclose(fp);
    *out = v;
    return have;
}

static int parse_list(const char *s, int *out)
{
    int n = 0;
    while (*s && n < MAX_LIST) {
        char *end;
        long v = strtol(s, &end, 10);
        if (end == s || v <= 0)
            return -1;
        out[n++] = (int)v;
        s = *end == ',' ? end + 1 : end;
    }
    return n;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static int usage(void)
{
    fprintf(stderr,
            "usage: bench_hnsw --base FILE --queries FILE [--dim D] [--n N] [--nq Q] [--k K]\n"
            "                  [--spec SPEC] [--efc E[,E...]] [--ef E[,E...]]\n"
            "  defaults: --dim 384 --n all --nq 200 --k 10 --spec HNSW32 --efc 40,80\n"
            "            --ef 16,32,64,128,256\n");
    return 2;
}

static int parse_args(int argc, char **argv, config *cf)
{
    memset(cf, 0, sizeof *cf);
    cf->dim = 384;
    cf->k = 10;
    cf->nq = 200;
    cf->spec = "HNSW32";
    cf->nefc = parse_list("40,80", cf->efc);
    cf->nef = parse_list("16,32,64,128,256", cf->ef);
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!v)
            return usage();
        if (!strcmp(a, "--base"))
            cf->base = v;
        else if (!strcmp(a, "--queries"))
            cf->queries = v;
        else if (!strcmp(a, "--spec"))
            cf->spec = v;
        else if (!strcmp(a, "--dim"))
            cf->dim = atoi(v);
        else if (!strcmp(a, "--k"))
            cf->k = atoi(v);
        else if (!strcmp(a, "--n"))
            cf->n = strtoul(v, NULL, 10);
        else if (!strcmp(a, "--nq"))
            cf->nq = strtoul(v, NULL, 10);
        else if (!strcmp(a, "--efc"))
            cf->nefc = parse_list(v, cf->efc);
        else if (!strcmp(a, "--ef"))
            cf->nef = parse_list(v, cf->ef);
        else
            return usage();
        i++;
    }
    if (!cf->base || !cf->queries || cf->dim <= 0 || cf->k <= 0 || cf->nefc <= 0 || cf->nef <= 0)
        return usage();
    return 0;
}

/* Runs every query at each efSearch on one thread and prints the rows for one build. */
static int query_rows(const config *cf, rag_vindex *ix, int efc, double build_s,
                      const float *q, size_t nq, const int64_t *truth)
{
    float *scores = malloc((size_t)cf->k * sizeof *scores);
    int64_t *ids = malloc((size_t)cf->k * sizeof *ids);
    double *cpu = malloc(nq * sizeof *cpu);
    if (!scores || !ids || !cpu)
        goto fail;
    omp_set_num_threads(1);
    for (int e = 0; e < cf->nef; e++) {
        rag_vindex_set_ef_search(ix, cf->ef[e]);
        size_t hits = 0;
        double sum = 0;
        for (size_t i = 0; i < nq; i++) {
            double t0 = now(CLOCK_THREAD_CPUTIME_ID);
            int m = rag_vindex_search(ix, q + i * (size_t)cf->dim, cf->k, scores, ids);
            cpu[i] = (now(CLOCK_THREAD_CPUTIME_ID) - t0) * 1e6;
            if (m < 0)
                goto fail;
            sum += cpu[i];
            for (int a = 0; a < m; a++)
                for (int b = 0; b < cf->k; b++)
                    hits += ids[a] == truth[i * (size_t)cf->k + (size_t)b];
        }
        qsort(cpu, nq, sizeof *cpu, cmp_double);
        printf("| %s | %d | %.1f | %d | %.4f | %.0f | %.0f | %.0f |\n", cf->spec, efc, build_s,
               cf->ef[e], (double)hits / (double)(nq * (size_t)cf->k), sum / (double)nq,
               cpu[nq / 2], cpu[(size_t)((double)nq * 0.95)]);
        fflush(stdout);
    }
    free(scores);
    free(ids);
    free(cpu);
    return 0;
fail:
    fprintf(stderr, "bench_hnsw: search failed: %s\n", rag_errmsg());
    free(scores);
    free(ids);
    free(cpu);
    return 1;
}

int main(int argc, char **argv)
{
    config cf;
    if (parse_args(argc, argv, &cf) != 0)
        return 2;
    float *base = NULL, *q = NULL;
    int64_t *ids = NULL, *truth = NULL;
    float *tscore = NULL;
    int status = 1;
    size_t n = read_vectors(cf.base, cf.dim, cf.n, &base);
    size_t nq = read_vectors(cf.queries, cf.dim, cf.nq, &q);
    if (!n || !nq)
        goto cleanup;
    ids = malloc(n * sizeof *ids);
    truth = malloc(nq * (size_t)cf.k * sizeof *truth);
    tscore = malloc((size_t)cf.k * sizeof *tscore);
    if (!ids || !truth || !tscore)
        goto cleanup;
    for (size_t i = 0; i < n; i++)
        ids[i] = (int64_t)i;
    for (size_t i = 0; i < nq; i++) {
        int m = rag_exact_topk(q + i * (size_t)cf.dim, base, ids, n, cf.dim, cf.k, tscore,
                               truth + i * (size_t)cf.k);
        for (int j = m; j < cf.k; j++)
            truth[i * (size_t)cf.k + (size_t)j] = -1;
    }
    printf("%zu base vectors (dim %d) from %s, %zu queries from %s, k = %d, %d build threads\n\n",
           n, cf.dim, cf.base, nq, cf.queries, cf.k, omp_get_num_procs());
    printf("| spec | efConstruction | build s (wall) | efSearch | recall@%d | CPU us/query mean "
           "| p50 | p95 |\n", cf.k);
    printf("|---|---|---|---|---|---|---|---|\n");
    for (int c = 0; c < cf.nefc; c++) {
        rag_vindex *ix = NULL;
        if (rag_vindex_create(cf.spec, cf.dim, 0, &ix) != 0 ||
            rag_vindex_set_ef_construction(ix, cf.efc[c]) != 0) {
            fprintf(stderr, "bench_hnsw: %s\n", rag_errmsg());
            rag_vindex_free(ix);
            goto cleanup;
        }
        omp_set_num_threads(omp_get_num_procs());
        double t0 = now(CLOCK_MONOTONIC);
        int rc = rag_vindex_add(ix, n, base, ids);
        double build_s = now(CLOCK_MONOTONIC) - t0;
        if (rc != 0) {
            fprintf(stderr, "bench_hnsw: add: %s\n", rag_errmsg());
            rag_vindex_free(ix);
            goto cleanup;
        }
        rc = query_rows(&cf, ix, cf.efc[c], build_s, q, nq, truth);
        rag_vindex_free(ix);
        if (rc != 0)
            goto cleanup;
    }
    status = 0;
cleanup:
    free(base);
    free(q);
    free(ids);
    free(truth);
    free(tscore);
    return status;
}
