/* bench_vsearch.c - single-thread search time of a saved collection index, as loaded by
 * the library (huge pages unless RAGCORE_HUGEPAGES=0), for side-by-side runs; with --db,
 * also the whole library search (rag_search_vector) on the same queries.
 *
 * usage: bench_vsearch --index FILE --queries FILE [--spec SPEC] [--dim D] [--ef E]
 *                      [--nq Q] [--rounds R] [--db DIR --collection NAME [--plain]]
 *                      [--vs FILE --vs-spec SPEC]
 *
 * --index is a store's <store>/index/<collection id>.idx; --queries holds little-endian
 * float32 vectors back to back (dim floats each), e.g. queries.f32 of bench/server_bench.py.
 * Each round searches the Q queries (k 10) once on the calling thread; prints the median and
 * best microseconds per query over the rounds and the process's AnonHugePages. Alternate
 * runs with and without RAGCORE_HUGEPAGES=0 on a shared machine and compare in pairs.
 *
 * --db opens the store read-only (ef_search --ef) and alternates each round of the index
 * alone with a round of dense rag_search_vector (k 10, default options) on collection
 * NAME (--plain: collapse_threshold 2, the plain top-k of bench_server.sh's request
 * bodies), so both see the same host; it prints the library's median and the median over
 * rounds of the difference, the library's own cost around FAISS (store reads of the hits,
 * duplicate collapsing, copies).
 *
 * --vs loads a second index file (of spec --vs-spec, e.g. the same vectors stored as
 * "HNSW32,SQfp16") and searches it right after the first in every round, printing its
 * median and the median over rounds of its time divided by the first's: two storage
 * layouts compared under the same host, round by round. */
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

/* Microseconds per query of one pass of the nq queries (k 10) through `ix`; -1 on error. */
static double time_index(const rag_vindex *ix, const float *q, size_t nq, int dim)
{
    float scores[10];
    int64_t ids[10];
    double t0 = now();
    for (size_t i = 0; i < nq; i++)
        if (rag_vindex_search(ix, q + i * (size_t)dim, 10, scores, ids) < 0) {
            fprintf(stderr, "bench_vsearch: %s\n", rag_errmsg());
            return -1;
        }
    return (now() - t0) * 1e6 / (double)nq;
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
    const char *index = NULL, *queries = NULL, *spec = "HNSW32", *dbdir = NULL, *coll = NULL;
    const char *vs = NULL, *vs_spec = NULL;
    int dim = 384, ef = 32, rounds = 9, plain = 0;
    size_t nq = 500;
    for (int i = 1; i < argc; i++) {
        const char *o = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(o, "--plain")) {
            plain = 1;
            continue;
        }
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
        else if (!strcmp(o, "--db"))
            dbdir = v;
        else if (!strcmp(o, "--collection"))
            coll = v;
        else if (!strcmp(o, "--vs"))
            vs = v;
        else if (!strcmp(o, "--vs-spec"))
            vs_spec = v;
        else
            goto usage;
        i++;
    }
    if (!index || !queries || dim <= 0 || ef <= 0 || nq == 0 || rounds < 1 ||
        rounds > ROUNDS_MAX || !dbdir != !coll || !vs != !vs_spec)
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
    if (rag_vindex_load(index, spec, dim, ef, NULL, &ix, &covered) != RAG_OK) {
        fprintf(stderr, "bench_vsearch: %s\n", rag_errmsg());
        return 2;
    }
    double load_s = now() - t0;
    rag_vindex *ix2 = NULL;
    if (vs && rag_vindex_load(vs, vs_spec, dim, ef, NULL, &ix2, &covered) != RAG_OK) {
        fprintf(stderr, "bench_vsearch: %s: %s\n", vs, rag_errmsg());
        return 2;
    }
    rag_db *db = NULL;
    if (dbdir) {
        rag_open_options oo;
        rag_open_options_init(&oo);
        oo.read_only = 1;
        oo.hnsw_ef_search = ef;
        if (rag_open(dbdir, &oo, &db) != RAG_OK) {
            fprintf(stderr, "bench_vsearch: %s: %s\n", dbdir, rag_errmsg());
            return 2;
        }
    }
    omp_set_num_threads(1);
    rag_search_options so;
    rag_search_options_init(&so);
    so.collection = coll;
    so.mode = RAG_MODE_DENSE;
    so.k = 10;
    if (plain)
        so.collapse_threshold = 2.0f;
    double us[ROUNDS_MAX], lib_us[ROUNDS_MAX], vs_us[ROUNDS_MAX];
    for (int r = 0; r < rounds; r++) {
        if ((us[r] = time_index(ix, q, nq, dim)) < 0)
            return 2;
        if (ix2 && (vs_us[r] = time_index(ix2, q, nq, dim)) < 0)
            return 2;
        if (!db)
            continue;
        t0 = now();
        for (size_t i = 0; i < nq; i++) {
            rag_results *res = NULL;
            if (rag_search_vector(db, q + i * (size_t)dim, dim, &so, &res) != RAG_OK ||
                rag_results_count(res) == 0) {
                fprintf(stderr, "bench_vsearch: search %zu: %s\n", i,
                        res ? "no hits" : rag_errmsg());
                return 2;
            }
            rag_results_free(res);
        }
        lib_us[r] = (now() - t0) * 1e6 / (double)nq;
    }
    if (db) {
        /* the library's own cost: the median over rounds of (library - index alone), each
         * pair measured back to back */
        double d[ROUNDS_MAX], lib[ROUNDS_MAX];
        for (int r = 0; r < rounds; r++) {
            d[r] = lib_us[r] - us[r];
            lib[r] = lib_us[r];
        }
        qsort(d, (size_t)rounds, sizeof d[0], cmp_double);
        qsort(lib, (size_t)rounds, sizeof lib[0], cmp_double);
        printf("rag_search_vector us/query median %.1f best %.1f  library around the index:"
               " median %.1f us/query (rounds: %.1f .. %.1f)\n", lib[rounds / 2], lib[0],
               d[rounds / 2], d[0], d[rounds - 1]);
        rag_close(db);
    }
    if (ix2) {
        double ratio[ROUNDS_MAX];
        for (int r = 0; r < rounds; r++)
            ratio[r] = vs_us[r] / us[r];
        qsort(ratio, (size_t)rounds, sizeof ratio[0], cmp_double);
        qsort(vs_us, (size_t)rounds, sizeof vs_us[0], cmp_double);
        printf("%s us/query median %.1f best %.1f  time / first index's: median %.3f "
               "(rounds: %.3f .. %.3f)\n", vs_spec, vs_us[rounds / 2], vs_us[0],
               ratio[rounds / 2], ratio[0], ratio[rounds - 1]);
        rag_vindex_free(ix2);
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
                    " [--ef E] [--nq Q] [--rounds R] [--db DIR --collection NAME [--plain]]"
                    " [--vs FILE --vs-spec SPEC]\n");
    return 1;
}
