/* bench_gemm_i8.c - the int8 GEMM kernels side by side on one encoder's linear layers, without a model or any library: a static binary for any x86-64 machine. */
/*
 * What decides query encoding speed is the int8 GEMMs (~80 % of a 21-token all-MiniLM-L6-v2
 * query, bench/JOURNAL.md). This program times them the way the encoder calls them, on
 * made-up weights: the four linear shapes of a layer (QKV fused 3H x H, output H x H, FFN up
 * NI x H, FFN down H x NI; H 384, NI 1536), six layers per encoder pass, the weights of 8
 * layers cycling so that they stream from memory as the model's do. For each token count T
 * and each kernel this CPU runs (scalar up to T 8, AVX2, AVX-VNNI, AVX-512 VNNI), in alternation
 * within each round, it reports the median over rounds of thread CPU time per encoder pass,
 * G multiply-adds a second, and the speed against the AVX2 kernel measured in the same
 * rounds. Before timing, every kernel's output is compared with the scalar kernel's, bit
 * for bit (they compute the same integers and floats, core/gemm_int8.h).
 *
 * Built static (libc and libm only), so the binary copied to a machine with VNNI runs
 * there as it is: `bench_gemm_i8 [--rounds R] [--tokens 1,8,21,64,128]`.
 */
#include "gemm_int8.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define H 384
#define NI 1536
#define LAYERS 6  /* one encoder pass */
#define WLAYERS 8 /* layers of weights cycled through (more than the caches hold) */
#define MAXT 128
#define MAXTOK 16
#define NKERN 4 /* scalar, AVX2, AVX-VNNI, AVX-512 VNNI (rag_i8_isa) */

static const int SHAPE[4][2] = {{3 * H, H}, {H, H}, {NI, H}, {H, NI}}; /* N, K */

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

/* Whether kernel k is timed at T tokens: one this CPU runs, the scalar one only up to 8
 * (too slow to matter past a few tokens). */
static int timed(int k, size_t T)
{
    return rag_gemm_i8_isa_has((rag_i8_isa)k) && !(k == RAG_I8_SCALAR && T > 8);
}

/* One encoder pass at T tokens through kernel isa: 6 layers x 4 GEMMs, weights w[isa][j]
 * for the j-th matrix in order, cycling over WLAYERS layers from *next. Seconds of CPU. */
static double encoder_pass(rag_i8_isa isa, rag_gemm_i8_w *const *w, size_t *next, size_t T,
                           const float *x, float *y, void *work)
{
    double t0 = cpu_now();
    for (int l = 0; l < LAYERS; l++)
        for (int s = 0; s < 4; s++) {
            rag_gemm_i8_isa_run(isa, T, w[*next], x, (size_t)SHAPE[s][1], y,
                                (size_t)SHAPE[s][0], work);
            *next = (*next + 1) % (4 * WLAYERS);
        }
    return cpu_now() - t0;
}

/* Parses "1,8,21" into ts (at most MAXTOK values in 1..MAXT); their count, or -1. */
static int parse_tokens(const char *s, size_t *ts)
{
    int n = 0;
    while (*s) {
        char *end;
        long v = strtol(s, &end, 10);
        if (end == s || v < 1 || v > MAXT || n == MAXTOK || (*end && *end != ','))
            return -1;
        ts[n++] = (size_t)v;
        s = *end ? end + 1 : end;
    }
    return n ? n : -1;
}

int main(int argc, char **argv)
{
    int rounds = 15, nt = 5, rc = 1;
    size_t ts[MAXTOK] = {1, 8, 21, 64, 128};
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--rounds") && i + 1 < argc && (rounds = atoi(argv[++i])) > 0)
            continue;
        if (!strcmp(argv[i], "--tokens") && i + 1 < argc && (nt = parse_tokens(argv[++i], ts)) > 0)
            continue;
        fprintf(stderr, "usage: bench_gemm_i8 [--rounds R (> 0, default 15)] "
                        "[--tokens T1,T2,... (1..%d, default 1,8,21,64,128)]\n", MAXT);
        return 2;
    }
    const rag_i8_isa best = rag_gemm_i8_isa();
    const size_t nw = (size_t)(4 * H + 2 * NI) * H * WLAYERS;
    float *W = malloc(nw * sizeof(float)), *x = malloc((size_t)MAXT * NI * sizeof(float));
    float *y = calloc((size_t)MAXT * 3 * NI, sizeof(float));
    float *ref = calloc((size_t)MAXT * 3 * NI, sizeof(float));
    void *work = aligned_alloc(64, (rag_gemm_i8_work(MAXT, NI) + 63) / 64 * 64);
    rag_gemm_i8_w *w[NKERN][4 * WLAYERS] = {{NULL}};
    double *times = malloc((size_t)rounds * sizeof(double));
    if (!W || !x || !y || !ref || !work || !times) {
        fprintf(stderr, "bench_gemm_i8: out of memory\n");
        goto cleanup;
    }
    uint32_t seed = 12345;
    for (size_t i = 0; i < nw; i++) {
        seed = seed * 1664525u + 1013904223u;
        W[i] = ((float)(seed >> 8) / 16777216.0f - 0.5f) * 0.1f;
    }
    for (size_t i = 0; i < (size_t)MAXT * NI; i++) {
        seed = seed * 1664525u + 1013904223u;
        x[i] = (float)(seed >> 8) / 16777216.0f * 4.0f - 1.0f;
    }
    for (int k = 0; k <= (int)best; k++) {
        if (!rag_gemm_i8_isa_has((rag_i8_isa)k))
            continue;
        size_t off = 0;
        for (int j = 0; j < 4 * WLAYERS; j++) {
            const size_t N = (size_t)SHAPE[j % 4][0], K = (size_t)SHAPE[j % 4][1];
            if (rag_gemm_i8_pack_isa((rag_i8_isa)k, W + off, N, K, K, &w[k][j]) != 0) {
                fprintf(stderr, "bench_gemm_i8: out of memory packing the weights\n");
                goto cleanup;
            }
            off += N * K;
        }
    }
    /* every kernel gives the scalar kernel's floats, bit for bit, on every shape */
    for (int s = 0; s < 4; s++) {
        const size_t N = (size_t)SHAPE[s][0], K = (size_t)SHAPE[s][1], T = 21;
        memset(ref, 0, T * N * sizeof(float));
        rag_gemm_i8_isa_run(RAG_I8_SCALAR, T, w[0][s], x, K, ref, N, work);
        for (int k = 1; k <= (int)best; k++) {
            if (!rag_gemm_i8_isa_has((rag_i8_isa)k))
                continue;
            memset(y, 0, T * N * sizeof(float));
            rag_gemm_i8_isa_run((rag_i8_isa)k, T, w[k][s], x, K, y, N, work);
            if (memcmp(y, ref, T * N * sizeof(float))) {
                fprintf(stderr, "bench_gemm_i8: the %s kernel's result differs from the "
                        "scalar kernel's (shape %zu x %zu, T %zu)\n",
                        rag_gemm_i8_isa_name((rag_i8_isa)k), N, K, T);
                goto cleanup;
            }
        }
    }
    const double macs_per_token = (double)LAYERS * (4.0 * H * H + 2.0 * NI * H);
    printf("bench_gemm_i8: best kernel %s; %d rounds; thread CPU per encoder pass (%d layers x "
           "4 GEMMs, H %d, NI %d), median of rounds; kernels bit-identical to scalar: yes\n",
           rag_gemm_i8_isa_name(best), rounds, LAYERS, H, NI);
    printf("%6s  %-14s %10s %10s %9s\n", "T", "kernel", "ms", "G MAC/s", "vs AVX2");
    for (int t = 0; t < nt; t++) {
        const size_t T = ts[t];
        double med[NKERN] = {0};
        for (int k = 0; k <= (int)best; k++) {
            if (!timed(k, T))
                continue;
            size_t next = 0;
            encoder_pass((rag_i8_isa)k, w[k], &next, T, x, y, work); /* warm */
        }
        /* the kernels in turn within each round, so that a drifting machine moves all alike */
        double *per = malloc((size_t)NKERN * rounds * sizeof(double));
        if (!per)
            goto cleanup;
        for (int r = 0; r < rounds; r++)
            for (int k = 0; k <= (int)best; k++) {
                if (!timed(k, T))
                    continue;
                size_t next = (size_t)(r % 2) * 4 * (WLAYERS / 2);
                per[k * rounds + r] = encoder_pass((rag_i8_isa)k, w[k], &next, T, x, y, work);
            }
        for (int k = 0; k <= (int)best; k++) {
            if (!timed(k, T))
                continue;
            memcpy(times, per + k * rounds, (size_t)rounds * sizeof(double));
            qsort(times, (size_t)rounds, sizeof(double), cmp_double);
            med[k] = times[rounds / 2];
        }
        free(per);
        for (int k = 0; k <= (int)best; k++) {
            if (!med[k])
                continue;
            char vs[32] = "-";
            if (best >= RAG_I8_AVX2 && med[RAG_I8_AVX2] > 0)
                snprintf(vs, sizeof vs, "%.2fx", med[RAG_I8_AVX2] / med[k]);
            printf("%6zu  %-14s %10.3f %10.1f %9s\n", T, rag_gemm_i8_isa_name((rag_i8_isa)k),
                   med[k] * 1e3, macs_per_token * (double)T / med[k] * 1e-9, vs);
        }
    }
    rc = 0;
cleanup:
    for (int k = 0; k < NKERN; k++)
        for (int j = 0; j < 4 * WLAYERS; j++)
            rag_gemm_i8_free(w[k][j]);
    free(W);
    free(x);
    free(y);
    free(ref);
    free(work);
    free(times);
    return rc;
}
