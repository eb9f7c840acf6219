/* bench_embed.c - neural embedder throughput, per-query latency and dense nDCG@10 on SciFact. */
#include "bert.h"
#include "embedder.h"
#include "gemm_int8.h"
#include "gemm_small.h"
#include "model_registry.h"
#include "ragcore.h"
#include "status.h"
#include "tokenizer.h"

#include <cblas.h>
#include <jansson.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <zlib.h>

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

/* CPU time of the calling thread: on a shared machine it leaves out the time spent waiting
 * for a CPU. */
static double cpu_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* The q-quantile of v[0..n) (sorts v; nearest rank). */
static double quantile(double *v, size_t n, double q)
{
    if (!n)
        return 0;
    qsort(v, n, sizeof *v, cmp_double);
    size_t i = (size_t)ceil(q * (double)n);
    return v[i ? i - 1 : 0];
}

typedef struct {
    char **id, **text;
    size_t n, cap;
} docs;

static void docs_free(docs *d)
{
    for (size_t i = 0; i < d->n; i++) {
        free(d->id[i]);
        free(d->text[i]);
    }
    free(d->id);
    free(d->text);
}

static void push(docs *d, const char *id, const char *text)
{
    if (d->n == d->cap) {
        d->cap = d->cap ? d->cap * 2 : 1024;
        d->id = realloc(d->id, d->cap * sizeof *d->id);
        d->text = realloc(d->text, d->cap * sizeof *d->text);
    }
    d->id[d->n] = strdup(id);
    d->text[d->n++] = strdup(text);
}

/* Reads BEIR jsonl (optionally gzip): "title" + ". " + "text". */
static int read_jsonl(const char *path, docs *d, size_t limit)
{
    gzFile f = gzopen(path, "rb");
    if (!f) {
        fprintf(stderr, "cannot open %s\n", path);
        return -1;
    }
    static char line[1 << 20];
    while (d->n < limit && gzgets(f, line, sizeof line)) {
        json_t *j = json_loads(line, 0, NULL);
        if (!j)
            continue;
        const char *id = json_string_value(json_object_get(j, "_id"));
        const char *title = json_string_value(json_object_get(j, "title"));
        const char *text = json_string_value(json_object_get(j, "text"));
        if (id && text) {
            size_t len = strlen(text) + (title ? strlen(title) : 0) + 3;
            char *buf = malloc(len);
            snprintf(buf, len, "%s%s%s", title && *title ? title : "", title && *title ? ". " : "",
                     text);
            push(d, id, buf);
            free(buf);
        }
        json_decref(j);
    }
    gzclose(f);
    return 0;
}

/* sgemm GFLOP/s at the encoder's shapes for a batch of T tokens (H hidden, NI inner). */
/* OpenBLAS sgemm throughput at the encoder's shapes on `threads` threads (the encoder keeps
 * OpenBLAS at one thread and runs its own; the roofline is what OpenBLAS reaches with as
 * many cores). */
static double sgemm_gflops(int T, int H, int NI, double seconds, int threads)
{
    openblas_set_num_threads(threads);
    float *a = calloc((size_t)T * NI, sizeof(float)), *b = calloc((size_t)NI * 3 * H, sizeof(float)),
          *c = calloc((size_t)T * NI, sizeof(float));
    for (size_t i = 0; i < (size_t)T * NI; i++)
        a[i] = (float)(i % 7) * 0.1f;
    for (size_t i = 0; i < (size_t)NI * 3 * H; i++)
        b[i] = (float)(i % 5) * 0.1f;
    double flops = 0, t0 = now();
    do {
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, T, 3 * H, H, 1, a, H, b, H, 0, c, 3 * H);
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, T, H, H, 1, a, H, b, H, 1, c, H);
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, T, NI, H, 1, a, H, b, H, 1, c, NI);
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, T, H, NI, 1, a, NI, b, NI, 1, c, H);
        flops += 2.0 * T * H * (3.0 * H + H + 2.0 * NI);
    } while (now() - t0 < seconds);
    double g = flops / (now() - t0) / 1e9;
    openblas_set_num_threads(1);
    free(a);
    free(b);
    free(c);
    return g;
}

typedef struct {
    char *q, *d;
} qrel;

static double ndcg10(rag_embedder *e, const docs *corpus, const float *dv, const char *qpath,
                     const char *qrpath)
{
    docs qs = {0};
    if (read_jsonl(qpath, &qs, (size_t)-1))
        return -1;
    FILE *f = fopen(qrpath, "r");
    if (!f)
        return -1;
    qrel *qr = NULL;
    size_t nqr = 0, cap = 0;
    char a[256], b[256];
    int s;
    char hdr[256];
    if (!fgets(hdr, sizeof hdr, f)) {
        fclose(f);
        return -1;
    }
    while (fscanf(f, "%255s %255s %d", a, b, &s) == 3)
        if (s > 0) {
            if (nqr == cap) {
                cap = cap ? cap * 2 : 1024;
                qr = realloc(qr, cap * sizeof *qr);
            }
            qr[nqr].q = strdup(a);
            qr[nqr++].d = strdup(b);
        }
    fclose(f);
    int dim = e->dim;
    float *qv = malloc(qs.n * (size_t)dim * sizeof(float));
    size_t *lens = malloc(qs.n * sizeof *lens);
    for (size_t i = 0; i < qs.n; i++)
        lens[i] = strlen(qs.text[i]);
    rag_embedder_embed(e, (const char *const *)qs.text, lens, qs.n, 1, qv);
    float *scores = malloc(corpus->n * sizeof(float));
    double total = 0;
    size_t nq = 0;
    for (size_t qi = 0; qi < qs.n; qi++) {
        int nrel = 0;
        for (size_t k = 0; k < nqr; k++)
            nrel += strcmp(qr[k].q, qs.id[qi]) == 0;
        if (!nrel)
            continue;
        cblas_sgemv(CblasRowMajor, CblasNoTrans, (int)corpus->n, dim, 1, dv, dim,
                    qv + qi * (size_t)dim, 1, 0, scores, 1);
        double dcg = 0, idcg = 0;
        for (int r = 0; r < 10; r++) {
            size_t best = 0;
            for (size_t j = 1; j < corpus->n; j++)
                if (scores[j] > scores[best])
                    best = j;
            int rel = 0;
            for (size_t k = 0; k < nqr; k++)
                if (strcmp(qr[k].q, qs.id[qi]) == 0 && strcmp(qr[k].d, corpus->id[best]) == 0)
                    rel = 1;
            dcg += rel / log2(r + 2.0);
            if (r < nrel)
                idcg += 1 / log2(r + 2.0);
            scores[best] = -INFINITY;
        }
        total += dcg / idcg;
        nq++;
    }
    free(qv);
    free(lens);
    free(scores);
    return nq ? total / nq : 0;
}

/* Prints dense nDCG@10 of the corpus vectors dv against the BEIR queries and train qrels
 * of data directory `data`. */
static void print_ndcg10(rag_embedder *e, const docs *corpus, const float *dv, const char *data)
{
    char qp[4200], qrp[4200];
    snprintf(qp, sizeof qp, "%s/queries.jsonl", data);
    snprintf(qrp, sizeof qrp, "%s/qrels/train.tsv", data);
    printf("dense nDCG@10 (%zu docs): %.4f\n", corpus->n, ndcg10(e, corpus, dv, qp, qrp));
}

#define NPATH 4
static const char *const path_name[NPATH] = {"fp32 cblas_sgemm (RAGCORE_SMALL_GEMM=0)",
                                             "fp32 small-T, W in place (GEMM_PACK=0)",
                                             "fp32 small-T, W pre-packed (default)",
                                             "int8 (precision=int8)"};

/* Encodes every query of qpath alone (as rag_search does) through each path: fp32 through
 * cblas_sgemm, the small-T kernel reading W in place (a second embedder loaded with
 * RAGCORE_GEMM_PACK=0) and the small-T kernel on pre-packed W, and int8 (a third embedder
 * loaded with precision int8), rotating which goes first, and prints the per-query latency
 * of each: wall and thread-CPU p50 / p95 / mean, in ms, and its worst cosine to the
 * cblas_sgemm vector. */
static int query_latency(rag_embedder *e, const char *model, const rag_tokenizer *tok, int maxt,
                         const char *qpath)
{
    docs qs = {0};
    if (read_jsonl(qpath, &qs, (size_t)-1) || qs.n == 0)
        return -1;
    rag_embedder *inplace = NULL, *i8 = NULL;
    setenv("RAGCORE_GEMM_PACK", "0", 1);
    int crc = rag_embedder_bert_create_precision(model, "fp32", &inplace);
    unsetenv("RAGCORE_GEMM_PACK");
    if (crc == RAG_OK)
        crc = rag_embedder_bert_create_precision(model, "int8", &i8);
    if (crc != RAG_OK) {
        fprintf(stderr, "%s: %s\n", model, rag_errmsg());
        rag_embedder_free(inplace);
        return -1;
    }
    const int limit = rag_bert_set_small_gemm(-1);
    rag_embedder *emb[NPATH] = {e, inplace, e, i8};
    const int lim[NPATH] = {0, limit, limit, limit};
    const size_t n = qs.n, dim = (size_t)e->dim;
    double *wall[NPATH], *cpu[NPATH], *ntok = malloc(n * sizeof(double)), worst[NPATH] = {1, 1, 1, 1};
    float *v[NPATH];
    int32_t *ids = malloc((size_t)maxt * sizeof *ids);
    size_t small_n = 0;
    for (int p = 0; p < NPATH; p++) {
        wall[p] = malloc(n * sizeof(double));
        cpu[p] = malloc(n * sizeof(double));
        v[p] = malloc(dim * sizeof(float));
    }
    for (size_t i = 0; i < n && i < 20; i++) /* warm-up */
        for (int p = 0; p < NPATH; p++) {
            size_t len = strlen(qs.text[i]);
            rag_bert_set_small_gemm(lim[p]);
            rag_embedder_embed(emb[p], (const char *const *)&qs.text[i], &len, 1, 1, v[p]);
        }
    for (size_t i = 0; i < n; i++) {
        size_t len = strlen(qs.text[i]);
        int k = rag_tokenizer_encode(tok, qs.text[i], len, ids, maxt);
        ntok[i] = k;
        small_n += k <= limit;
        for (int j = 0; j < NPATH; j++) {
            int p = (int)((i + (size_t)j) % NPATH);
            rag_bert_set_small_gemm(lim[p]);
            double w0 = now(), c0 = cpu_now();
            int rc = rag_embedder_embed(emb[p], (const char *const *)&qs.text[i], &len, 1, 1, v[p]);
            if (rc != RAG_OK) {
                fprintf(stderr, "embed: %s\n", rag_errmsg());
                return -1;
            }
            cpu[p][i] = (cpu_now() - c0) * 1e3;
            wall[p][i] = (now() - w0) * 1e3;
        }
        for (int p = 1; p < NPATH; p++) {
            double ab = 0;
            for (size_t d = 0; d < dim; d++)
                ab += (double)v[0][d] * v[p][d];
            if (ab < worst[p])
                worst[p] = ab;
        }
    }
    rag_bert_set_small_gemm(limit);
    double tmean = 0;
    for (size_t i = 0; i < n; i++)
        tmean += ntok[i];
    printf("per-query encode: %zu queries, tokens mean %.1f p50 %.0f p95 %.0f max %.0f; small "
           "path limit %d tokens (%s kernel) covers %zu queries; int8 kernel %s\n", n,
           tmean / (double)n, quantile(ntok, n, 0.5), quantile(ntok, n, 0.95),
           quantile(ntok, n, 1.0), limit,
           rag_gemm_small_isa() == RAG_GEMM_AVX512 ? "AVX-512"
           : rag_gemm_small_isa() == RAG_GEMM_AVX2 ? "AVX2" : "no", small_n,
           rag_gemm_i8_isa_name(rag_gemm_i8_isa()));
    double p50[NPATH][2], p95[NPATH][2], mean[NPATH][2];
    for (int p = 0; p < NPATH; p++)
        for (int c = 0; c < 2; c++) {
            double *a = c ? cpu[p] : wall[p], sum = 0;
            for (size_t i = 0; i < n; i++)
                sum += a[i];
            mean[p][c] = sum / (double)n;
            p50[p][c] = quantile(a, n, 0.5);
            p95[p][c] = quantile(a, n, 0.95);
        }
    for (int p = 0; p < NPATH; p++)
        printf("  %-41s wall p50 %6.2f p95 %6.2f mean %6.2f ms | cpu p50 %6.2f p95 %6.2f mean "
               "%6.2f ms | min cosine to cblas %.7f\n", path_name[p], p50[p][0], p95[p][0],
               mean[p][0], p50[p][1], p95[p][1], mean[p][1], p ? worst[p] : 1.0);
    for (int p = 0; p < NPATH; p++) {
        free(wall[p]);
        free(cpu[p]);
        free(v[p]);
    }
    rag_embedder_free(inplace);
    rag_embedder_free(i8);
    free(ntok);
    free(ids);
    docs_free(&qs);
    return 0;
}

/* ---- concurrent callers: coalescing ---- */

typedef struct {
    rag_embedder *e;
    const docs *qs;
    int id, per;
} conc_job;

static void *conc_worker(void *user)
{
    conc_job *j = user;
    float v[4096];
    for (int i = 0; i < j->per; i++) {
        const char *t = j->qs->text[((size_t)j->id * 37 + (size_t)i) % j->qs->n];
        rag_embedder_embed(j->e, &t, NULL, 1, 1, v);
    }
    return NULL;
}

/* nthreads callers each embed `per` queries of qpath one at a time through one embedder,
 * once with coalescing off (RAGCORE_EMBED_BATCH=1) and once on (the default), twice each,
 * alternating: queries per second and process CPU per query. */
static int concurrent_callers(const char *model, const char *qpath, int nthreads, int per)
{
    docs qs = {0};
    if (read_jsonl(qpath, &qs, (size_t)-1) || qs.n == 0 || nthreads < 1 || nthreads > 64)
        return -1;
    printf("%d concurrent callers x %d queries each, one embedder:\n", nthreads, per);
    for (int r = 0; r < 4; r++) {
        const char *batch = r % 2 ? "32" : "1";
        setenv("RAGCORE_EMBED_BATCH", batch, 1);
        rag_embedder *e = NULL;
        int rc = rag_embedder_create(model, 0, &e);
        unsetenv("RAGCORE_EMBED_BATCH");
        if (rc != RAG_OK)
            return -1;
        pthread_t th[64];
        conc_job jobs[64];
        struct timespec c0, c1;
        clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &c0);
        double w0 = now();
        for (int t = 0; t < nthreads; t++) {
            jobs[t] = (conc_job){e, &qs, t, per};
            pthread_create(&th[t], NULL, conc_worker, &jobs[t]);
        }
        for (int t = 0; t < nthreads; t++)
            pthread_join(th[t], NULL);
        double w = now() - w0;
        clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &c1);
        double cpu = (double)(c1.tv_sec - c0.tv_sec) + (double)(c1.tv_nsec - c0.tv_nsec) * 1e-9;
        uint64_t calls, passes, texts;
        rag_embedder_bert_counters(e, &calls, &passes, &texts);
        printf("  RAGCORE_EMBED_BATCH=%-2s %8.1f queries/s, CPU %6.2f ms/query, %llu passes for "
               "%llu calls\n", batch, nthreads * per / w, cpu * 1e3 / (nthreads * per),
               (unsigned long long)passes, (unsigned long long)calls);
        rag_embedder_free(e);
    }
    docs_free(&qs);
    return 0;
}

/* The int8 copies of the weights layer_gemm_time cycles through: q[j] is the j-th matrix
 * of W, packed. */
typedef struct {
    rag_gemm_i8_w *const *q;
    void *work; /* rag_gemm_i8's work space */
} i8_weights;

#define PATH_SGEMM (-1)
#define PATH_INT8 (-2)

/* GEMM seconds (thread CPU, best of reps) for one encoder layer's four linear shapes at T
 * tokens, with weights cycling through `nw` floats (more than the caches hold, as in the
 * model); isa PATH_SGEMM: cblas_sgemm, PATH_INT8: rag_gemm_i8 on q8's copies, else that
 * small-T kernel. */
static double layer_gemm_time(int isa, int T, int H, int NI, const float *W, size_t nw,
                              const i8_weights *q8, const float *x, float *y, int reps)
{
    const int shape[4][2] = {{3 * H, H}, {H, H}, {NI, H}, {H, NI}};
    double best = 1e30;
    for (int r = 0; r < reps; r++) {
        size_t off = 0, j = 0;
        double t0 = cpu_now();
        for (int it = 0; it < 6; it++)
            for (int s = 0; s < 4; s++, j++) {
                int N = shape[s][0], K = shape[s][1];
                if (off + (size_t)N * K > nw)
                    off = j = 0;
                if (isa == PATH_INT8)
                    rag_gemm_i8((size_t)T, q8->q[j], x, (size_t)K, y, (size_t)N, q8->work);
                else if (isa == PATH_SGEMM)
                    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, T, N, K, 1, x, K,
                                W + off, K, 1, y, N);
                else
                    rag_gemm_small_nt_isa((rag_gemm_isa)isa, (size_t)T, (size_t)N, (size_t)K, 1,
                                          x, (size_t)K, W + off, (size_t)K, y, (size_t)N);
                off += (size_t)N * K;
            }
        double dt = (cpu_now() - t0) / 6;
        if (dt < best)
            best = dt;
    }
    return best;
}

/* Where the small path stops paying: for T tokens, (1) one layer's four linear GEMMs
 * (weights streamed from memory) through cblas_sgemm, each small-T kernel and the int8
 * kernel, and (2) the whole encoder on one T-token sequence (median of reps, thread CPU)
 * with the small path off and forced on. */
static void small_gemm_sweep(rag_bert *m, const char *text, int H, int NI)
{
    const int Ts[] = {1, 4, 8, 12, 16, 20, 24, 28, 32, 40, 48, 56, 64, 80, 96, 128};
    const size_t nw = (size_t)(4 * H + 2 * NI) * (size_t)H * 8; /* 8 layers' worth */
    float *W = malloc(nw * sizeof(float)), *x = malloc((size_t)128 * NI * sizeof(float)),
          *y = calloc((size_t)128 * NI, sizeof(float)), vec[4096];
    for (size_t i = 0; i < nw; i++)
        W[i] = (float)((i * 7) % 13) * 0.01f - 0.06f;
    for (size_t i = 0; i < (size_t)128 * NI; i++)
        x[i] = (float)(i % 11) * 0.1f - 0.5f;
    int maxt = rag_bert_max_tokens(m);
    int32_t *ids = malloc((size_t)maxt * sizeof *ids);
    int have = rag_tokenizer_encode(rag_bert_tokenizer(m), text, strlen(text), ids, maxt);
    const int limit = rag_bert_set_small_gemm(-1);
    /* the same 8 layers' worth of weights in int8: the 32 matrices layer_gemm_time reads */
    enum { NQ = 32 };
    rag_gemm_i8_w *q[NQ];
    {
        const int shape[4][2] = {{3 * H, H}, {H, H}, {NI, H}, {H, NI}};
        size_t off = 0;
        for (int j = 0; j < NQ; j++) {
            rag_gemm_i8_pack(W + off, (size_t)shape[j % 4][0], (size_t)shape[j % 4][1],
                             (size_t)shape[j % 4][1], &q[j]);
            off += (size_t)shape[j % 4][0] * (size_t)shape[j % 4][1];
        }
    }
    void *work = aligned_alloc(64, (rag_gemm_i8_work(128, (size_t)NI) + 63) / 64 * 64);
    const i8_weights q8 = {q, work};
    printf("small-T sweep (thread CPU; GEMM GFLOP/s for one layer's 4 linear shapes, int8 in "
           "GOP/s on the %s kernel; encoder ms per sequence, median of 15):\n",
           rag_gemm_i8_isa_name(rag_gemm_i8_isa()));
    printf("  %4s | %8s %8s %8s %8s | %9s %9s %6s\n", "T", "sgemm", "AVX2", "AVX-512", "int8",
           "enc sgemm", "enc small", "ratio");
    for (size_t ti = 0; ti < sizeof Ts / sizeof Ts[0]; ti++) {
        int T = Ts[ti];
        /* g[0]: cblas_sgemm, g[1]: AVX2 kernel, g[2]: AVX-512 kernel (0: not on this CPU) */
        double fl = 2.0 * T * H * (4.0 * H + 2.0 * NI), g[3] = {0, 0, 0};
        g[0] = fl / layer_gemm_time(PATH_SGEMM, T, H, NI, W, nw, NULL, x, y, 7) / 1e9;
        for (int isa = RAG_GEMM_AVX2; isa <= (int)rag_gemm_small_isa(); isa++)
            g[isa] = fl / layer_gemm_time(isa, T, H, NI, W, nw, NULL, x, y, 7) / 1e9;
        const double gi8 = fl / layer_gemm_time(PATH_INT8, T, H, NI, W, nw, &q8, x, y, 7) / 1e9;
        double enc[2] = {0, 0};
        if (T <= have) {
            double t[2][15];
            int len = T;
            const int32_t *ip = ids;
            for (int r = 0; r < 15; r++)
                for (int j = 0; j < 2; j++) {
                    int p = (r + j) % 2;
                    rag_bert_set_small_gemm(p ? 1 << 20 : 0);
                    double c0 = cpu_now();
                    rag_bert_encode_ids(m, &ip, &len, 1, vec);
                    t[p][r] = (cpu_now() - c0) * 1e3;
                }
            for (int p = 0; p < 2; p++)
                enc[p] = quantile(t[p], 15, 0.5);
        }
        printf("  %4d | %8.1f %8.1f %8.1f %8.1f | %9.2f %9.2f %6.2f\n", T, g[0], g[1], g[2], gi8,
               enc[0], enc[1], enc[1] > 0 ? enc[0] / enc[1] : 0);
        fflush(stdout);
    }
    rag_bert_set_small_gemm(limit);
    for (int j = 0; j < NQ; j++)
        rag_gemm_i8_free(q[j]);
    free(work);
    free(W);
    free(x);
    free(y);
    free(ids);
}

/* --serve: embeds the documents whose indices (0-based, in corpus order) make up each stdin
 * line and prints the wall seconds, until EOF. A peer driver (embed_peers.py --paired)
 * alternates this process with another engine chunk by chunk, so that both see the same
 * minutes of a noisy host. */
static int serve_chunks(rag_embedder *e, const docs *corpus, const size_t *lens, int threads)
{
    rag_bert_set_threads(threads);
    const size_t n = corpus->n;
    float *out = malloc(n * (size_t)e->dim * sizeof(float));
    const char **texts = malloc(n * sizeof *texts);
    size_t *tlens = malloc(n * sizeof *tlens);
    char *line = NULL;
    size_t cap = 0;
    int rc = out && texts && tlens ? 0 : 2;
    printf("ready %zu\n", n);
    fflush(stdout);
    while (!rc && getline(&line, &cap, stdin) > 0) {
        size_t count = 0;
        char *p = line, *end;
        for (unsigned long i; count < n && (i = strtoul(p, &end, 10), end != p); p = end) {
            if (i >= n) {
                fprintf(stderr, "serve: index %lu out of range (%zu documents)\n", i, n);
                rc = 2;
                break;
            }
            texts[count] = corpus->text[i];
            tlens[count++] = lens[i];
        }
        if (rc)
            break;
        double t0 = now();
        if (rag_embedder_embed(e, texts, tlens, count, 0, out) != RAG_OK) {
            fprintf(stderr, "embed: %s\n", rag_errmsg());
            rc = 2;
            break;
        }
        printf("%.6f\n", now() - t0);
        fflush(stdout);
    }
    free(line);
    free(tlens);
    free(texts);
    free(out);
    return rc;
}

/* --serve-queries: each stdin line is "fp32<TAB>text" or "int8<TAB>text"; the text is
 * encoded alone as a query (as rag_search does) by that precision's embedder, and the wall
 * and thread-CPU seconds are printed, until EOF. A peer driver (embed_peers.py
 * --paired-queries) interleaves these with ONNX Runtime's encodes of the same queries. */
static int serve_queries(const char *model)
{
    rag_embedder *emb[2] = {NULL, NULL};
    if (rag_embedder_bert_create_precision(model, "fp32", &emb[0]) != RAG_OK ||
        rag_embedder_bert_create_precision(model, "int8", &emb[1]) != RAG_OK) {
        fprintf(stderr, "%s: %s\n", model, rag_errmsg());
        rag_embedder_free(emb[0]);
        return 2;
    }
    rag_bert_set_threads(1);
    char *line = NULL;
    size_t cap = 0;
    ssize_t len;
    float v[4096];
    int rc = 0;
    printf("ready queries\n");
    fflush(stdout);
    while (!rc && (len = getline(&line, &cap, stdin)) > 0) {
        if (line[len - 1] == '\n')
            line[--len] = 0;
        char *tab = strchr(line, '\t');
        if (!tab || (strncmp(line, "fp32", 4) && strncmp(line, "int8", 4))) {
            fprintf(stderr, "serve-queries: expected fp32|int8<TAB>text\n");
            rc = 2;
            break;
        }
        const char *text = tab + 1;
        size_t tl = (size_t)(line + len - text);
        rag_embedder *e = emb[line[0] == 'i'];
        double w0 = now(), c0 = cpu_now();
        if (rag_embedder_embed(e, &text, &tl, 1, 1, v) != RAG_OK) {
            fprintf(stderr, "embed: %s\n", rag_errmsg());
            rc = 2;
            break;
        }
        printf("%.6f %.6f\n", now() - w0, cpu_now() - c0);
        fflush(stdout);
    }
    free(line);
    rag_embedder_free(emb[0]);
    rag_embedder_free(emb[1]);
    return rc;
}

int main(int argc, char **argv)
{
    const char *model = "all-MiniLM-L6-v2", *data = NULL, *threads_arg = "1,2", *serve_prec = "fp32";
    size_t limit = 1000;
    int eval = 0, qlat = 0, sweep = 0, conc = 0, serve = 0, int8 = 1;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--model") && i + 1 < argc)
            model = argv[++i];
        else if (!strcmp(argv[i], "--data") && i + 1 < argc)
            data = argv[++i];
        else if (!strcmp(argv[i], "--docs") && i + 1 < argc)
            limit = (size_t)atol(argv[++i]);
        else if (!strcmp(argv[i], "--threads") && i + 1 < argc)
            threads_arg = argv[++i];
        else if (!strcmp(argv[i], "--eval"))
            eval = 1;
        else if (!strcmp(argv[i], "--query-latency"))
            qlat = 1;
        else if (!strcmp(argv[i], "--sweep"))
            sweep = 1;
        else if (!strcmp(argv[i], "--concurrent") && i + 1 < argc)
            conc = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--serve"))
            serve = 1;
        else if (!strcmp(argv[i], "--serve-queries"))
            return serve_queries(model);
        else if (!strcmp(argv[i], "--no-int8"))
            int8 = 0;
        else if (!strcmp(argv[i], "--precision") && i + 1 < argc)
            serve_prec = argv[++i];
        else {
            fprintf(stderr, "usage: bench_embed [--model NAME|DIR] [--data DIR] [--docs N] "
                            "[--threads 1,2] [--no-int8] [--eval | --query-latency | --sweep |\n"
                            "                   --concurrent N | --serve [--precision fp32|int8] | --serve-queries]\n"
                            "  DIR defaults to ../shared/data/scifact-dev beside the source tree;\n"
                            "  by default the documents are embedded in fp32 and int8 side by side\n"
                            "    at each --threads count (--no-int8: fp32 only);\n"
                            "  --eval embeds the whole corpus and reports dense nDCG@10;\n"
                            "  --query-latency encodes each query of DIR/queries.jsonl alone,\n"
                            "    cblas_sgemm vs the small-T kernels (W in place, W pre-packed)\n"
                            "    vs int8, at the first --threads count;\n"
                            "  --sweep times both paths by token count (the small-T limit);\n"
                            "  --concurrent N: N threads embed queries through one embedder,\n"
                            "    coalescing off vs on;\n"
                            "  --serve: at the first --threads count, reads lines of document\n"
                            "    indices on stdin, embeds them (in --precision, default fp32),\n"
                            "    prints the seconds taken;\n"
                            "  --serve-queries (last option): reads lines \"fp32|int8<TAB>text\",\n"
                            "    encodes each text alone as a query on one thread, prints the\n"
                            "    wall and thread-CPU seconds (for embed_peers.py --paired-queries)\n"
                            "    (for embed_peers.py --paired, which alternates engines)\n");
            return 1;
        }
    }
    char dbuf[4096];
    if (!data) {
        snprintf(dbuf, sizeof dbuf, "%s/../shared/data/scifact-dev",
                 getenv("RAGCORE_SOURCE_DIR") ? getenv("RAGCORE_SOURCE_DIR") : ".");
        data = dbuf;
    }
    char path[4200];
    snprintf(path, sizeof path, "%s/corpus.jsonl.gz", data);
    docs corpus = {0};
    if (read_jsonl(path, &corpus, eval ? (size_t)-1 : limit) || corpus.n == 0)
        return 2;
    if (rag_model_find(model) && rag_model_pull(model, 0, NULL) != RAG_OK &&
        !rag_model_is_cached(rag_model_find(model))) {
        fprintf(stderr, "pull %s: %s\n", model, rag_errmsg());
        return 2;
    }
    /* a neural model in fp32 (whatever $RAGCORE_PRECISION says), else "hash" and the like */
    rag_embedder *e = NULL;
    int erc = rag_embedder_bert_create_precision(model, "fp32", &e);
    if (erc == RAG_ENOTFOUND)
        erc = rag_embedder_create(model, 0, &e);
    if (erc != RAG_OK) {
        fprintf(stderr, "%s: %s\n", model, rag_errmsg());
        return 2;
    }
    size_t n = corpus.n;
    size_t *lens = malloc(n * sizeof *lens);
    for (size_t i = 0; i < n; i++)
        lens[i] = strlen(corpus.text[i]);
    /* Tokens actually encoded (after truncation), and the model's FLOPs for them. */
    rag_bert *m = NULL;
    char *mdir = NULL;
    if (rag_model_find(model))
        rag_model_cache_dir(rag_model_find(model), &mdir);
    if (rag_bert_load(mdir ? mdir : model, &m) != RAG_OK) {
        /* not a neural model (e.g. "hash"): only the retrieval quality is meaningful */
        free(mdir);
        float *v = malloc(n * (size_t)e->dim * sizeof(float));
        double t0 = now();
        rag_embedder_embed(e, (const char *const *)corpus.text, lens, n, 0, v);
        printf("model %s: %zu texts in %.2f s\n", e->name, n, now() - t0);
        if (eval)
            print_ndcg10(e, &corpus, v, data);
        free(v);
        free(lens);
        rag_embedder_free(e);
        return 0;
    }
    free(mdir);
    const rag_tokenizer *tok = rag_bert_tokenizer(m);
    int maxt = rag_bert_max_tokens(m);
    double tokens = 0, flops = 0;
    int32_t *ids = malloc((size_t)maxt * sizeof *ids);
    /* layers and shapes from the model dimension: read back through the config */
    json_t *cfg = NULL;
    {
        char cp[4200];
        char *d2 = NULL;
        if (rag_model_find(model))
            rag_model_cache_dir(rag_model_find(model), &d2);
        snprintf(cp, sizeof cp, "%s/config.json", d2 ? d2 : model);
        free(d2);
        cfg = json_load_file(cp, 0, NULL);
    }
    int H = (int)json_integer_value(json_object_get(cfg, "hidden_size"));
    int NL = (int)json_integer_value(json_object_get(cfg, "num_hidden_layers"));
    int NI = (int)json_integer_value(json_object_get(cfg, "intermediate_size"));
    json_decref(cfg);
    for (size_t i = 0; i < n; i++) {
        int k = rag_tokenizer_encode(tok, corpus.text[i], lens[i], ids, maxt);
        tokens += k;
        flops += (double)NL * (2.0 * k * H * (4.0 * H + 2.0 * NI) + 4.0 * (double)k * k * H);
    }
    free(ids);
    if (qlat || sweep || conc) {
        int th = rag_bert_set_threads(atoi(threads_arg));
        double load = -1;
        if (getloadavg(&load, 1) != 1)
            load = -1;
        printf("OpenBLAS kernels: %s, %d thread(s); load average %.2f\n", rag_bert_blas_info(),
               th, load);
        int rc = 0;
        if (sweep) {
            size_t longest = 0;
            for (size_t i = 1; i < n; i++)
                if (lens[i] > lens[longest])
                    longest = i;
            small_gemm_sweep(m, corpus.text[longest], H, NI);
        }
        if (qlat) {
            char qp[4200];
            snprintf(qp, sizeof qp, "%s/queries.jsonl", data);
            rc = query_latency(e, model, tok, maxt, qp) ? 2 : 0;
        }
        if (conc && !rc) {
            char qp[4200];
            snprintf(qp, sizeof qp, "%s/queries.jsonl", data);
            rc = concurrent_callers(model, qp, conc, 40) ? 2 : 0;
        }
        rag_bert_free(m);
        free(lens);
        rag_embedder_free(e);
        return rc;
    }
    rag_bert_free(m);
    if (serve) {
        if (!strcmp(serve_prec, "int8")) {
            rag_embedder_free(e);
            e = NULL;
            if (rag_embedder_bert_create_precision(model, "int8", &e) != RAG_OK) {
                fprintf(stderr, "%s (int8): %s\n", model, rag_errmsg());
                return 2;
            }
        }
        int rc = serve_chunks(e, &corpus, lens, atoi(threads_arg));
        free(lens);
        rag_embedder_free(e);
        return rc;
    }
    double f128 = NL * (2.0 * 128 * H * (4.0 * H + 2.0 * NI) + 4.0 * 128.0 * 128 * H) / 1e9;
    printf("OpenBLAS kernels: %s\n", rag_bert_blas_info());
    printf("model %s: %zu texts, %.0f tokens (mean %.1f, max %d), %.2f GFLOP; %.2f GFLOP per "
           "128-token sequence\n", e->name, n, tokens, tokens / n, maxt, flops / 1e9, f128);
    /* fp32 and int8 side by side: each thread count runs both, the first alternating */
    rag_embedder *e8 = NULL;
    if (int8 && rag_embedder_bert_create_precision(model, "int8", &e8) != RAG_OK) {
        fprintf(stderr, "%s (int8): %s\n", model, rag_errmsg());
        return 2;
    }
    rag_embedder *emb[2] = {e, e8};
    float *out[2] = {malloc(n * (size_t)e->dim * sizeof(float)),
                     e8 ? malloc(n * (size_t)e->dim * sizeof(float)) : NULL};
    char targ[64];
    snprintf(targ, sizeof targ, "%s", threads_arg);
    int round = 0;
    for (char *t = strtok(targ, ","); t; t = strtok(NULL, ","), round++) {
        int th = rag_bert_set_threads(atoi(t));
        double roof = sgemm_gflops(2048, H, NI, 1.5, th);
        for (int j = 0; j < 2; j++) {
            const int p = (j + round) % 2;
            if (!emb[p])
                continue;
            rag_embedder_embed(emb[p], (const char *const *)corpus.text, lens, n < 16 ? n : 16, 0,
                               out[p]);
            struct timespec c0, c1;
            clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &c0);
            double t0 = now();
            if (rag_embedder_embed(emb[p], (const char *const *)corpus.text, lens, n, 0, out[p]) !=
                RAG_OK) {
                fprintf(stderr, "embed: %s\n", rag_errmsg());
                return 2;
            }
            double dt = now() - t0;
            clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &c1);
            const double cpu = (double)(c1.tv_sec - c0.tv_sec) + (double)(c1.tv_nsec - c0.tv_nsec) * 1e-9;
            double achieved = flops / dt / 1e9;
            if (p == 0)
                printf("fp32 threads=%d: %.0f tokens/s (%.0f per CPU-second), %.1f chunks/s, %.1f "
                       "GFLOP/s achieved; sgemm roofline %.1f GFLOP/s -> %.0f tokens/s ceiling; "
                       "%.0f%% of roofline\n", th, tokens / dt, tokens / cpu, n / dt, achieved, roof,
                       tokens / (flops / (roof * 1e9)), 100 * achieved / roof);
            else
                printf("int8 threads=%d: %.0f tokens/s (%.0f per CPU-second), %.1f chunks/s, %.1f "
                       "GOP/s (%s kernel)\n", th, tokens / dt, tokens / cpu, n / dt, achieved,
                       rag_gemm_i8_isa_name(rag_gemm_i8_isa()));
            fflush(stdout);
        }
    }
    if (e8) {
        double worst = 1, sum = 0;
        for (size_t i = 0; i < n; i++) {
            double ab = 0;
            for (int d = 0; d < e->dim; d++)
                ab += (double)out[0][i * (size_t)e->dim + (size_t)d] *
                      out[1][i * (size_t)e->dim + (size_t)d];
            worst = ab < worst ? ab : worst;
            sum += ab;
        }
        printf("int8 vs fp32 over %zu texts: min cosine %.5f, mean %.5f\n", n, worst, sum / (double)n);
    }
    for (int p = 0; eval && p < 2; p++)
        if (emb[p]) {
            printf("%s ", p ? "int8" : "fp32");
            print_ndcg10(emb[p], &corpus, out[p], data);
        }
    free(out[0]);
    free(out[1]);
    rag_embedder_free(e8);
    free(lens);
    rag_embedder_free(e);
    return 0;
}
