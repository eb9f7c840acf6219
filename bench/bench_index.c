/* bench_index.c - vector index and store benchmark: inserts/s through rag_ingest vs raw
 * FAISS, single-thread query latency and recall@10 of rag_search_vector vs a raw FAISS
 * search on the very same in-memory index, peak RSS and store size on disk.
 *
 * usage: bench_index [--n N] [--queries Q] [--ef E[,E...]] [--k K] [--batch B]
 *                    [--raw-insert M] [--insert-threads T] [--store DIR] [--reuse]
 *                    [--seed S] [--index SPEC]
 *
 * Order: library insert (rag_ingest, then rag_checkpoint), memory and disk figures, exact
 * ground truth, query phases (one per efSearch), then the raw FAISS insert of the same
 * vectors into a fresh index (skipped with --reuse or --raw-insert 0).
 *
 * Vectors are random, L2-normalised, 384-d (Gaussian components), generated on the fly
 * from (seed, i) so the bench never holds the whole data set: vector i is document "v<i>"
 * with one chunk, and a custom embedder (rag_embedder_def) turns the text "v<i>" back into
 * vector i. Ground truth is an exact inner-product top-k (blocked sgemm, cross-checked
 * against rag_exact_topk). Insert phases use T OpenMP threads (default: OpenMP's default);
 * query phases run with OpenMP and OpenBLAS at one thread. For each efSearch in the list the
 * store is reopened with rag_open_options.hnsw_ef_search = E, so the library path and the
 * raw path (rag_vindex_search on the collection's own index object) see the same index. */
#include "db.h"
#include "ragcore.h"
#include "vindex.h"

#include <cblas.h>
#include <dirent.h>
#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define DIM 384
#define MAX_EF 16

typedef struct config {
    size_t n, queries, batch, raw_insert;
    int k, insert_threads, reuse, nef;
    int ef[MAX_EF];
    uint64_t seed;
    const char *store, *spec;
} config;

/* ---- timing, memory ------------------------------------------------------------------ */

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

static double cpu_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

static double peak_rss_mb(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return ru.ru_maxrss / 1024.0;
}

/* User + system CPU seconds of the whole process (all threads). */
static double proc_cpu(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return ru.ru_utime.tv_sec + ru.ru_utime.tv_usec * 1e-6 + ru.ru_stime.tv_sec +
           ru.ru_stime.tv_usec * 1e-6;
}

static double cur_rss_mb(void)
{
    long pages = 0, resident = 0;
    FILE *f = fopen("/proc/self/statm", "r");
    if (f) {
        if (fscanf(f, "%ld %ld", &pages, &resident) != 2)
            resident = 0;
        fclose(f);
    }
    return resident * (double)sysconf(_SC_PAGESIZE) / (1024.0 * 1024.0);
}

/* Apparent and allocated bytes of every file under `path`. */
static void du(const char *path, unsigned long long *apparent, unsigned long long *alloc)
{
    struct stat st;
    if (lstat(path, &st) != 0)
        return;
    if (S_ISDIR(st.st_mode)) {
        DIR *d = opendir(path);
        struct dirent *e;
        while (d && (e = readdir(d))) {
            if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
                continue;
            char sub[4096];
            snprintf(sub, sizeof sub, "%s/%s", path, e->d_name);
            du(sub, apparent, alloc);
        }
        if (d)
            closedir(d);
        return;
    }
    *apparent += (unsigned long long)st.st_size;
    *alloc += (unsigned long long)st.st_blocks * 512ULL;
}

/* ---- deterministic random vectors ----------------------------------------------------- */

static uint64_t splitmix(uint64_t *s)
{
    uint64_t z = (*s += 0x9E3779B97F4A7C15ULL);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return z ^ (z >> 31);
}

/* Vector i of stream `stream` (0: data set, 1: queries): Gaussian, L2-normalised. */
static void gen_vec(uint64_t seed, int stream, size_t i, float *out)
{
    uint64_t s = seed * 0xD1342543DE82EF95ULL + (uint64_t)stream * 0xA24BAED4963EE407ULL +
                 (uint64_t)i * 0x9FB21C651E98DF25ULL;
    double norm = 0;
    for (int d = 0; d < DIM; d += 2) {
        double u1 = ((splitmix(&s) >> 11) + 1.0) * (1.0 / 9007199254740993.0);
        double u2 = (splitmix(&s) >> 11) * (1.0 / 9007199254740992.0);
        double r = sqrt(-2.0 * log(u1));
        out[d] = (float)(r * cos(2 * M_PI * u2));
        out[d + 1] = (float)(r * sin(2 * M_PI * u2));
        norm += (double)out[d] * out[d] + (double)out[d + 1] * out[d + 1];
    }
    float inv = (float)(1.0 / sqrt(norm));
    for (int d = 0; d < DIM; d++)
        out[d] *= inv;
}

/* ---- the custom embedder: "v<i>" -> vector i ------------------------------------------- */

typedef struct emb_state {
    uint64_t seed;
    size_t n;
    double seconds; /* wall time spent inside the callback (vector generation) */
    long calls;
} emb_state;

static int parse_vid(const char *t, size_t len, size_t *i)
{
    if (len < 2 || len > 24 || t[0] != 'v')
        return -1;
    size_t v = 0;
    for (size_t p = 1; p < len; p++) {
        if (t[p] < '0' || t[p] > '9')
            return -1;
        v = v * 10 + (size_t)(t[p] - '0');
    }
    *i = v;
    return 0;
}

static int bench_embed(void *user, const char *const *texts, const size_t *lens, size_t n,
                       int is_query, float *out)
{
    emb_state *e = user;
    double t0 = now();
    for (size_t j = 0; j < n; j++) {
        size_t i;
        if (parse_vid(texts[j], lens[j], &i) != 0 || i >= e->n) {
            fprintf(stderr, "bench embedder: unexpected text '%.*s'\n", (int)lens[j], texts[j]);
            return 1;
        }
        gen_vec(e->seed, 0, i, out + j * DIM);
    }
    e->seconds += now() - t0;
    e->calls++;
    return 0;
}

static int open_db(const config *cf, emb_state *es, int ef, rag_db **db)
{
    rag_embedder_def def = {RAG_EMBEDDER_DEF_VERSION, "bench-precomputed", DIM, bench_embed, es,
                            NULL};
    rag_open_options o;
    rag_open_options_init(&o);
    o.custom_embedder = &def;
    o.index_spec = cf->spec;
    o.hnsw_ef_search = ef;
    int rc = rag_open(cf->store, &o, db);
    if (rc != RAG_OK)
        fprintf(stderr, "rag_open %s: %s: %s\n", cf->store, rag_strerror(rc), rag_errmsg());
    return rc;
}

/* ---- ground truth --------------------------------------------------------------------- */

/* Inserts (s, id) into a best-first list of k; list[k-1] is the current threshold. */
static void topk_push(float *sc, int64_t *ids, int k, float s, int64_t id)
{
    if (s <= sc[k - 1])
        return;
    int p = k - 1;
    while (p > 0 && sc[p - 1] < s) {
        sc[p] = sc[p - 1];
        ids[p] = ids[p - 1];
        p--;
    }
    sc[p] = s;
    ids[p] = id;
}

/* Exact top-k of every query against the whole data set, blocked through sgemm. */
static int ground_truth(const config *cf, const float *qv, int64_t *gt)
{
    size_t nq = cf->queries, k = (size_t)cf->k;
    enum { BLK = 8192 };
    float *base = malloc((size_t)BLK * DIM * sizeof(float));
    float *ip = malloc(nq * BLK * sizeof(float));
    float *sc = malloc(nq * k * sizeof(float));
    if (!base || !ip || !sc) {
        free(base);
        free(ip);
        free(sc);
        return -1;
    }
    for (size_t i = 0; i < nq * k; i++) {
        sc[i] = -INFINITY;
        gt[i] = -1;
    }
    for (size_t b = 0; b < cf->n; b += BLK) {
        size_t m = cf->n - b < BLK ? cf->n - b : BLK;
        for (size_t j = 0; j < m; j++)
            gen_vec(cf->seed, 0, b + j, base + j * DIM);
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)nq, (int)m, DIM, 1.0f, qv, DIM,
                    base, DIM, 0.0f, ip, (int)m);
        for (size_t q = 0; q < nq; q++)
            for (size_t j = 0; j < m; j++)
                topk_push(sc + q * k, gt + q * k, (int)k, ip[q * m + j], (int64_t)(b + j));
    }
    /* Cross-check the first queries against the library's own exact scan. */
    int bad = 0;
    size_t nchk = cf->n <= 200000 ? 3 : 1;
    float *all = malloc(cf->n * DIM * sizeof(float));
    int64_t *allid = malloc(cf->n * sizeof(int64_t));
    if (all && allid) {
        for (size_t i = 0; i < cf->n; i++) {
            gen_vec(cf->seed, 0, i, all + i * DIM);
            allid[i] = (int64_t)i;
        }
        for (size_t q = 0; q < nchk && q < nq; q++) {
            float s2[64];
            int64_t id2[64];
            int got = rag_exact_topk(qv + q * DIM, all, allid, cf->n, DIM, cf->k, s2, id2);
            for (int j = 0; j < got; j++)
                if (id2[j] != gt[q * k + (size_t)j] && fabsf(s2[j] - sc[q * k + (size_t)j]) > 1e-5f)
                    bad++;
        }
        printf("ground truth: cross-checked %zu queries against rag_exact_topk: %s\n", nchk,
               bad ? "MISMATCH" : "identical");
    }
    free(all);
    free(allid);
    free(base);
    free(ip);
    free(sc);
    return bad ? -1 : 0;
}

/* ---- inserts -------------------------------------------------------------------------- */

static int ingest_all(const config *cf, rag_db *db, emb_state *es)
{
    size_t B = cf->batch;
    rag_document *docs = calloc(B, sizeof *docs);
    char (*names)[24] = calloc(B, sizeof *names);
    double *bt = calloc((cf->n + B - 1) / B, sizeof *bt);
    if (!docs || !names || !bt)
        return -1;
    rag_open_options defaults;
    rag_open_options_init(&defaults);
    long every = defaults.checkpoint_every;
    double ckpt_time = 0;
    size_t since = 0, nckpt = 0, nb = 0;
    int rc = RAG_OK;
    es->seconds = 0;
    double t0 = now(), cpu0 = proc_cpu();
    for (size_t b = 0; b < cf->n && rc == RAG_OK; b += B, nb++) {
        size_t m = cf->n - b < B ? cf->n - b : B;
        for (size_t j = 0; j < m; j++) {
            snprintf(names[j], sizeof names[j], "v%zu", b + j);
            rag_document_init(&docs[j]);
            docs[j].id = names[j];
            docs[j].text = names[j];
            docs[j].source = "bench://random";
        }
        double tb = now();
        rag_ingest_stats st;
        rc = rag_ingest(db, NULL, docs, m, &st);
        bt[nb] = now() - tb;
        if (rc != RAG_OK) {
            fprintf(stderr, "rag_ingest batch at %zu: %s: %s\n", b, rag_strerror(rc),
                    rag_errmsg());
            break;
        }
        if (st.chunks != m) {
            fprintf(stderr, "batch at %zu: %llu chunks for %zu docs\n", b,
                    (unsigned long long)st.chunks, m);
            rc = -1;
            break;
        }
        /* Mirror the library's automatic checkpoint rule to attribute its cost. */
        since += m;
        if (every > 0 && since >= (size_t)every) {
            ckpt_time += bt[nb];
            nckpt++;
            since = 0;
        }
        if (nb % 100 == 99) {
            double el = now() - t0;
            fprintf(stderr, "  ingested %zu/%zu (%.0f docs/s, rss %.0f MB)\n", b + m, cf->n,
                    (b + m) / el, cur_rss_mb());
        }
    }
    double el = now() - t0, cpu = proc_cpu() - cpu0;
    if (rc == RAG_OK) {
        double tc = now();
        rc = rag_checkpoint(db);
        double ck = now() - tc;
        printf("library insert: %zu docs (1 chunk each) in %.1f s = %.0f docs/s "
               "(batches of %zu; embedder callback %.1f s; excluding it %.0f docs/s)\n",
               cf->n, el, cf->n / el, B, es->seconds, cf->n / (el - es->seconds));
        printf("  process CPU time %.1f s = %.0f docs per CPU-second\n", cpu, cf->n / cpu);
        double rest = el - ckpt_time;
        printf("  automatic checkpoints (every %ld vectors): %zu, the batches containing them "
               "took %.1f s; other batches: %.0f docs/s\n",
               every, nckpt, ckpt_time, rest > 0 ? (cf->n - nckpt * B) / rest : 0.0);
        printf("  final rag_checkpoint: %.1f s (%s)\n", ck, rag_strerror(rc));
        if (nb) {
            double mx = 0;
            for (size_t i = 0; i < nb; i++)
                mx = bt[i] > mx ? bt[i] : mx;
            printf("  slowest batch: %.2f s\n", mx);
        }
    }
    free(docs);
    free(names);
    free(bt);
    return rc;
}

static int raw_insert(const config *cf)
{
    size_t n = cf->raw_insert, B = cf->batch;
    rag_vindex *ix = NULL;
    int rc = rag_vindex_create(cf->spec, DIM, 0, &ix);
    float *v = malloc(B * DIM * sizeof(float));
    int64_t *ids = malloc(B * sizeof(int64_t));
    if (rc != RAG_OK || !v || !ids) {
        fprintf(stderr, "raw index: %s\n", rag_errmsg());
        rc = -1;
        goto cleanup;
    }
    double spent = 0, cpu = 0;
    for (size_t b = 0; b < n && rc == RAG_OK; b += B) {
        size_t m = n - b < B ? n - b : B;
        for (size_t j = 0; j < m; j++) {
            gen_vec(cf->seed, 0, b + j, v + j * DIM);
            ids[j] = (int64_t)(b + j);
        }
        double t0 = now(), c0 = proc_cpu();
        rc = rag_vindex_add(ix, m, v, ids);
        spent += now() - t0;
        cpu += proc_cpu() - c0;
    }
    if (rc == RAG_OK)
        printf("raw FAISS insert (rag_vindex_add, IDMap2,%s, batches of %zu): %zu vectors in "
               "%.1f s = %.0f vectors/s; process CPU %.1f s = %.0f vectors per CPU-second\n",
               cf->spec, B, n, spent, n / spent, cpu, n / cpu);
    else
        fprintf(stderr, "raw insert: %s\n", rag_errmsg());
cleanup:
    rag_vindex_free(ix);
    free(v);
    free(ids);
    return rc;
}

/* ---- queries -------------------------------------------------------------------------- */

static int cmp_dbl(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* Nearest-rank percentile of a sorted array. */
static double pct(const double *s, size_t n, double p)
{
    size_t r = (size_t)ceil(p * (double)n);
    return s[r ? r - 1 : 0];
}

typedef struct lat {
    double *wall, *cpu;
    size_t n;
    double hits, wall_sum;
} lat;

static void lat_report(const char *name, lat *l, size_t nq, int k)
{
    qsort(l->wall, l->n, sizeof(double), cmp_dbl);
    qsort(l->cpu, l->n, sizeof(double), cmp_dbl);
    printf("  %-8s recall@%d %.4f | wall p50 %.1f us p99 %.1f us mean %.1f us | "
           "cpu p50 %.1f us p99 %.1f us\n",
           name, k, l->hits / (double)(nq * (size_t)k), pct(l->wall, l->n, 0.5) * 1e6,
           pct(l->wall, l->n, 0.99) * 1e6, l->wall_sum / l->n * 1e6, pct(l->cpu, l->n, 0.5) * 1e6,
           pct(l->cpu, l->n, 0.99) * 1e6);
}

static int in_gt(const int64_t *gt, int k, int64_t id)
{
    for (int j = 0; j < k; j++)
        if (gt[j] == id)
            return 1;
    return 0;
}

static int query_phase(const config *cf, rag_db *db, int ef, const float *qv, const int64_t *gt)
{
    int k = cf->k, rc = RAG_OK;
    size_t nq = cf->queries;
    rag_coll *c = rag_db_find_coll(db, RAG_DEFAULT_COLLECTION);
    if (!c || !c->ix) {
        fprintf(stderr, "collection has no usable index\n");
        return -1;
    }
    rag_search_options so;
    rag_search_options_init(&so);
    so.k = k;
    so.mode = RAG_MODE_DENSE;
    lat L = {calloc(nq, sizeof(double)), calloc(nq, sizeof(double)), nq, 0, 0};
    lat R = {calloc(nq, sizeof(double)), calloc(nq, sizeof(double)), nq, 0, 0};
    float sc[256];
    int64_t ids[256];
    int64_t offset = INT64_MIN;
    size_t offset_bad = 0, agree = 0, prov_bad = 0;
    /* Warm-up: fault in the index and LMDB pages touched by typical queries. */
    for (size_t q = 0; q < (nq < 100 ? nq : 100); q++) {
        rag_results *res = NULL;
        if (rag_search_vector(db, qv + q * DIM, DIM, &so, &res) == RAG_OK)
            rag_results_free(res);
        rag_vindex_search(c->ix, qv + q * DIM, k, sc, ids);
    }
    for (size_t q = 0; q < nq && rc == RAG_OK; q++) {
        const float *v = qv + q * DIM;
        const int64_t *g = gt + q * (size_t)k;
        int64_t lib_ids[256];
        int nlib = 0, nraw = 0;
        for (int pass = 0; pass < 2; pass++) {
            int lib = (pass == 0) == (q % 2 == 0); /* alternate which path runs first */
            double w0 = now(), c0 = cpu_now();
            if (lib) {
                rag_results *res = NULL;
                rc = rag_search_vector(db, v, DIM, &so, &res);
                double w = now() - w0, cp = cpu_now() - c0;
                if (rc != RAG_OK) {
                    fprintf(stderr, "rag_search_vector: %s: %s\n", rag_strerror(rc), rag_errmsg());
                    break;
                }
                L.wall[q] = w;
                L.cpu[q] = cp;
                L.wall_sum += w;
                nlib = (int)rag_results_count(res);
                for (int j = 0; j < nlib; j++) {
                    const rag_hit *h = rag_results_get(res, (size_t)j);
                    size_t i;
                    if (parse_vid(h->doc_id, strlen(h->doc_id), &i) != 0 ||
                        strcmp(h->text, h->doc_id) != 0 || strcmp(h->source, "bench://random")) {
                        prov_bad++;
                        continue;
                    }
                    if (offset == INT64_MIN)
                        offset = (int64_t)h->chunk_id - (int64_t)i;
                    else if ((int64_t)h->chunk_id - (int64_t)i != offset)
                        offset_bad++;
                    lib_ids[j] = (int64_t)i;
                    L.hits += in_gt(g, k, (int64_t)i);
                }
                rag_results_free(res);
            } else {
                nraw = rag_vindex_search(c->ix, v, k, sc, ids);
                double w = now() - w0, cp = cpu_now() - c0;
                if (nraw < 0) {
                    rc = nraw;
                    break;
                }
                R.wall[q] = w;
                R.cpu[q] = cp;
                R.wall_sum += w;
            }
        }
        if (rc != RAG_OK)
            break;
        for (int j = 0; j < nraw; j++) {
            int64_t i = ids[j] - (offset == INT64_MIN ? 0 : offset);
            R.hits += in_gt(g, k, i);
            for (int t = 0; t < nlib; t++)
                if (lib_ids[t] == i) {
                    agree++;
                    break;
                }
        }
    }
    if (rc == RAG_OK) {
        printf("efSearch %d: %zu queries, k=%d, single thread (chunk id = doc index + %lld)\n",
               ef, nq, k, (long long)offset);
        double lp50, rp50, lp99, rp99, lmean = L.wall_sum / nq, rmean = R.wall_sum / nq;
        lat_report("library", &L, nq, k);
        lat_report("raw", &R, nq, k);
        lp50 = pct(L.wall, nq, 0.5);
        rp50 = pct(R.wall, nq, 0.5);
        lp99 = pct(L.wall, nq, 0.99);
        rp99 = pct(R.wall, nq, 0.99);
        printf("  overhead library/raw: p50 %.3fx  p99 %.3fx  mean %.3fx  (cpu p50 %.3fx)\n",
               lp50 / rp50, lp99 / rp99, lmean / rmean,
               pct(L.cpu, nq, 0.5) / pct(R.cpu, nq, 0.5));
        printf("  library and raw agree on %.4f of hits; provenance errors %zu; id-map errors %zu\n",
               agree / (double)(nq * (size_t)k), prov_bad, offset_bad);
        if (prov_bad || offset_bad)
            rc = -1;
    }
    free(L.wall);
    free(L.cpu);
    free(R.wall);
    free(R.cpu);
    return rc;
}

/* ---- main ----------------------------------------------------------------------------- */

static void usage(void)
{
    fprintf(stderr,
            "usage: bench_index [--n N] [--queries Q] [--ef E[,E...]] [--k K] [--batch B]\n"
            "                   [--raw-insert M] [--insert-threads T] [--store DIR] [--reuse]\n"
            "                   [--seed S] [--index SPEC]\n"
            "  --n N            data set size (default 100000)\n"
            "  --queries Q      timed queries per efSearch (default 1000)\n"
            "  --ef LIST        efSearch values, comma-separated (default 256)\n"
            "  --raw-insert M   vectors for the raw FAISS insert rate (default N; 0 skips)\n"
            "  --reuse          query an existing store built with the same N and seed\n"
            "  --store DIR      store directory (default $TMPDIR/bench_index_store); wiped\n"
            "                   unless --reuse\n");
}

int main(int argc, char **argv)
{
    config cf = {100000, 1000, 1000, (size_t)-1, 10, 0, 0, 1, {256}, 42, NULL, "HNSW32"};
    char defstore[1024];
    const char *tmp = getenv("TMPDIR");
    snprintf(defstore, sizeof defstore, "%s/bench_index_store", tmp && *tmp ? tmp : "/tmp");
    cf.store = defstore;
    for (int a = 1; a < argc; a++) {
        const char *o = argv[a], *v = a + 1 < argc ? argv[a + 1] : NULL;
        if (!strcmp(o, "--reuse")) {
            cf.reuse = 1;
            continue;
        }
        if (!strcmp(o, "--help") || !strcmp(o, "-h")) {
            usage();
            return 0;
        }
        if (!v) {
            fprintf(stderr, "bench_index: %s needs a value (or is unknown)\n", o);
            usage();
            return 1;
        }
        a++;
        if (!strcmp(o, "--n"))
            cf.n = strtoull(v, NULL, 10);
        else if (!strcmp(o, "--queries"))
            cf.queries = strtoull(v, NULL, 10);
        else if (!strcmp(o, "--k"))
            cf.k = atoi(v);
        else if (!strcmp(o, "--batch"))
            cf.batch = strtoull(v, NULL, 10);
        else if (!strcmp(o, "--raw-insert"))
            cf.raw_insert = strtoull(v, NULL, 10);
        else if (!strcmp(o, "--insert-threads"))
            cf.insert_threads = atoi(v);
        else if (!strcmp(o, "--store"))
            cf.store = v;
        else if (!strcmp(o, "--seed"))
            cf.seed = strtoull(v, NULL, 10);
        else if (!strcmp(o, "--index"))
            cf.spec = v;
        else if (!strcmp(o, "--ef")) {
            cf.nef = 0;
            for (const char *p = v; *p && cf.nef < MAX_EF;) {
                cf.ef[cf.nef++] = atoi(p);
                p = strchr(p, ',');
                if (!p)
                    break;
                p++;
            }
        } else {
            fprintf(stderr, "bench_index: unknown option %s\n", o);
            usage();
            return 1;
        }
    }
    if (cf.n < 1 || cf.queries < 1 || cf.k < 1 || cf.k > 256 || cf.batch < 1 || cf.nef < 1) {
        fprintf(stderr, "bench_index: need --n >= 1, --queries >= 1, --k 1..256, --batch >= 1, "
                        "at least one --ef\n");
        return 1;
    }
    for (int e = 0; e < cf.nef; e++)
        if (cf.ef[e] < 1) {
            fprintf(stderr, "bench_index: efSearch values must be >= 1\n");
            return 1;
        }
    if (cf.raw_insert == (size_t)-1)
        cf.raw_insert = cf.n;
    if (cf.insert_threads > 0)
        omp_set_num_threads(cf.insert_threads);
    int ins_threads = omp_get_max_threads();

    printf("bench_index: N=%zu dim=%d index=%s queries=%zu k=%d batch=%zu seed=%llu "
           "insert threads=%d store=%s\n",
           cf.n, DIM, cf.spec, cf.queries, cf.k, cf.batch, (unsigned long long)cf.seed,
           ins_threads, cf.store);
    fflush(stdout);
    emb_state es = {cf.seed, cf.n, 0, 0};
    rag_db *db = NULL;
    int rc = 0;
    float *qv = malloc(cf.queries * DIM * sizeof(float));
    int64_t *gt = malloc(cf.queries * (size_t)cf.k * sizeof(int64_t));
    if (!qv || !gt)
        return 2;
    for (size_t q = 0; q < cf.queries; q++)
        gen_vec(cf.seed, 1, q, qv + q * DIM);

    if (!cf.reuse) {
        char cmd[2100];
        snprintf(cmd, sizeof cmd, "rm -rf '%s'", cf.store);
        if (system(cmd) != 0)
            fprintf(stderr, "could not remove %s\n", cf.store);
    }
    if ((rc = open_db(&cf, &es, cf.ef[0], &db)) != RAG_OK)
        return 2;
    rag_collection_info info;
    memset(&info, 0, sizeof info);
    if (rag_collection_stats(db, RAG_DEFAULT_COLLECTION, &info) != RAG_OK)
        info.chunks = 0;
    if (cf.reuse && info.chunks == cf.n) {
        printf("reusing store with %llu chunks (no insert phase)\n",
               (unsigned long long)info.chunks);
    } else {
        if (info.chunks != 0) {
            fprintf(stderr, "store %s holds %llu chunks, expected 0 or %zu\n", cf.store,
                    (unsigned long long)info.chunks, cf.n);
            rag_close(db);
            return 2;
        }
        double rss0 = cur_rss_mb();
        if ((rc = ingest_all(&cf, db, &es)) != RAG_OK) {
            rag_close(db);
            return 2;
        }
        printf("memory after library insert: current RSS %.0f MB (before: %.0f MB), peak RSS "
               "%.0f MB\n",
               cur_rss_mb(), rss0, peak_rss_mb());
        unsigned long long ap = 0, al = 0;
        du(cf.store, &ap, &al);
        printf("store on disk: %.1f MB apparent, %.1f MB allocated (%.0f bytes/vector)\n",
               ap / 1048576.0, al / 1048576.0, (double)al / cf.n);
        fflush(stdout);
    }
    fflush(stdout);

    openblas_set_num_threads(ins_threads);
    double tg = now();
    if (ground_truth(&cf, qv, gt) != 0) {
        fprintf(stderr, "ground truth failed\n");
        rag_close(db);
        return 2;
    }
    printf("ground truth (exact top-%d, sgemm): %.1f s\n", cf.k, now() - tg);
    fflush(stdout);

    omp_set_num_threads(1);
    openblas_set_num_threads(1);
    for (int e = 0; e < cf.nef && rc == RAG_OK; e++) {
        if (e > 0 && cf.ef[e] != cf.ef[e - 1]) {
            rag_close(db);
            db = NULL;
            double to = now();
            if ((rc = open_db(&cf, &es, cf.ef[e], &db)) != RAG_OK)
                break;
            printf("reopened store with hnsw_ef_search=%d in %.1f s\n", cf.ef[e], now() - to);
        }
        rc = query_phase(&cf, db, cf.ef[e], qv, gt);
        fflush(stdout);
    }
    printf("peak RSS after queries: %.0f MB\n", peak_rss_mb());
    int crc = rag_close(db);
    /* Raw insert last, so the store's figures above are not disturbed by it. */
    if (rc == RAG_OK && !cf.reuse && cf.raw_insert > 0) {
        omp_set_num_threads(ins_threads);
        fflush(stdout);
        rc = raw_insert(&cf);
    }
    free(qv);
    free(gt);
    return rc == RAG_OK && crc == RAG_OK ? 0 : 2;
}
