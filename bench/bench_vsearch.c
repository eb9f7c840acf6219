/* bench_vsearch.c - single-thread search time of a saved collection index, as loaded by
 * the library (huge pages unless RAGCORE_HUGEPAGES=0), for side-by-side runs.
 *
 * usage: bench_vsearch --index FILE --queries FILE [--spec SPEC] [--dim D] [--ef E]
 *                      [--nq Q] [--rounds R]
 *
 * --index is a store's <store>/index/<collection id>.idx; --queries holds little-endian
 * float32 vectors back to back (dim floats each), e.g. queries.f32 of bench/server_bench.py.
 * Each round searches the Q queries (k 10) once on the calling thread; prints the median and
 * best microseconds per query over the rounds and the process's AnonHugePages. Alternate
 * runs with and without RAGCORE_HUGEPAGES=0 on a shared machine and compare in pairs. */
#include "ragcore.h"
#include "vindex.h"

#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define ROUNDS_MAX 64

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* The process's AnonHugePages in kB, or -1 when /proc cannot tell. */
static long anon_huge_kb(void)
{
    FILE *fp = fopen("/proc/self/smaps_rollup", "r");
    char line[256];
    long kb = -1;
    while (fp && fgets(line, sizeof line, fp))
        if (sscanf(line, "AnonHugePages: %ld kB", &kb) == 1)
            break;
    if (fp)
        fclose(fp);
    return kb;
}

int main(int argc, char **argv)
{
    const char *index = NULL, *queries = NULL, *spec = "HNSW32";
    int dim = 384, ef = 32, rounds = 9;
    size_t nq = 500;
    for (int i = 1; i < argc; i++) {
        const char *o = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!v)
            goto usage;
        if (!strcmp(o, "--index"))
            index = v;
        else if (!strcmp(o, "--queries"))
            queries = v;
        else if (!strcmp(o, "--spec"))
            spec = v;
        else if (!strcmp(o, "--dim"))
            dim = atoi(v);
        else if (!strcmp(o, "--ef"))
            ef = atoi(v);
        else if (!strcmp(o, "--nq"))
            nq = (size_t)atol(v);
        else if (!strcmp(o, "--rounds"))
            rounds = atoi(v);
        else
            goto usage;
        i++;
    }
    if (!index || !queries || dim <= 0 || ef <= 0 || nq == 0 || rounds < 1 ||
        rounds > ROUNDS_MAX)
        goto usage;

    float *q = malloc(nq * (size_t)dim * sizeof *q);
    FILE *fp = fopen(queries, "rb");
    size_t got = fp && q ? fread(q, (size_t)dim * sizeof *q, nq, fp) : 0;
    if (fp)
        fclose(fp);
    if (got == 0) {
        fprintf(stderr, "bench_vsearch: cannot read vectors of dim %d from %s\n", dim, queries);
        return 2;
    }
    nq = got;
    rag_vindex *ix = NULL;
    uint64_t covered = 0;
    double t0 = now();
    if (rag_vindex_load(index, spec, dim, ef, &ix, &covered) != RAG_OK) {
        fprintf(stderr, "bench_vsearch: %s\n", rag_errmsg());
        return 2;
    }
    double load_s = now() - t0;
    omp_set_num_threads(1);
    float scores[10];
    int64_t ids[10];
    double us[ROUNDS_MAX];
    for (int r = 0; r < rounds; r++) {
        t0 = now();
        for (size_t i = 0; i < nq; i++)
            if (rag_vindex_search(ix, q + i * (size_t)dim, 10, scores, ids) < 0) {
                fprintf(stderr, "bench_vsearch: %s\n", rag_errmsg());
                return 2;
            }
        us[r] = (now() - t0) * 1e6 / (double)nq;
    }
    qsort(us, (size_t)rounds, sizeof us[0], cmp_double);
    const char *env = getenv("RAGCORE_HUGEPAGES");
    printf("huge pages %-3s  vectors %zu  ef %d  load %.2f s  AnonHugePages %ld MB  "
           "us/query median %.1f best %.1f\n",
           env && !strcmp(env, "0") ? "off" : "on", rag_vindex_count(ix), ef, load_s,
           anon_huge_kb() / 1024, us[rounds / 2], us[0]);
    rag_vindex_free(ix);
    free(q);
    return 0;
usage:
    fprintf(stderr, "usage: bench_vsearch --index FILE --queries FILE [--spec SPEC] [--dim D]"
                    " [--ef E] [--nq Q] [--rounds R]\n");
    return 1;
}
