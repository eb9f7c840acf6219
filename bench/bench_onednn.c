/* bench_onednn.c - oneDNN int8/f32 matmul vs rag_gemm_i8 on the encoder's shapes, 1 thread. */
/*
 * A measurement, not a dependency: built only where libdnnl-dev is installed (see
 * bench/CMakeLists.txt). For each of the four linear shapes of one encoder layer (as
 * core/bert.c calls rag_gemm_i8: QKV fused 1152x384, output 384x384, FFN up 1536x384, FFN
 * down 384x1536) and each token count T, it times in alternation, on thread CPU time:
 *   ragcore    rag_gemm_i8 (W packed once; the call quantizes x itself),
 *   dnnl-full  the same numbers through oneDNN: x quantized to u8 per row here, oneDNN
 *              matmul u8 x s8 -> s32, then y += s_t s_n (acc - z_t colsum_n) here (oneDNN
 *              2.6 takes a source zero point and scales only per tensor / per column, not per
 *              row, so that part stays in C, vectorized with AVX2),
 *   dnnl-mm    the oneDNN u8 x s8 -> s32 matmul alone on already quantized x (its best case),
 *   dnnl-f32   oneDNN matmul in f32 (reference),
 * with the weights of 8 layers cycling (so they stream from memory as in the model, like
 * bench_embed --sweep). Weights are reordered once to the layout the primitive asks for
 * ("any"), primitives are created once per shape and T. Then it checks exactness: oneDNN's
 * s32 sums against exact sums computed in plain C, with 8-bit weights in [-127, 127] (what
 * ragcore uses) and 7-bit weights in [-63, 63].
 * Usage: bench_onednn [--rounds R] [--exact-only]. oneDNN runs on OpenMP; the program sets
 * OMP_NUM_THREADS=1 and re-executes itself so that everything runs on the timed thread.
 * ONEDNN_VERBOSE=1 prints the implementation oneDNN chose.
 */
#include "gemm_int8.h"

#include <dnnl.h>
#include <immintrin.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define NL 8     /* layers' worth of weights cycled through */
#define TMAX 256 /* largest token count timed */
#define NS 4     /* linear shapes per layer */
#define NP 4     /* timed paths */

enum { P_RAG, P_FULL, P_MM, P_F32 };
static const char *const PATH_NAME[NP] = {"ragcore", "dnnl-full", "dnnl-mm", "dnnl-f32"};
static const char *const SHAPE_NAME[NS] = {"QKV", "out", "FFN up", "FFN down"};

#define CHECK(call)                                                                          \
    do {                                                                                     \
        dnnl_status_t st_ = (call);                                                          \
        if (st_ != dnnl_success) {                                                           \
            fprintf(stderr, "bench_onednn: %s failed (status %d) at line %d\n", #call,       \
                    (int)st_, __LINE__);                                                     \
            exit(1);                                                                         \
        }                                                                                    \
    } while (0)

static dnnl_engine_t engine;
static dnnl_stream_t stream;

static double cpu_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

static uint64_t rng_state = 0x9e3779b97f4a7c15ull;
static uint32_t rng(void)
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return (uint32_t)(rng_state >> 16);
}
static float frand(float lo, float hi)
{
    return lo + (hi - lo) * (float)(rng() & 0xffffff) / (float)0x1000000;
}
/* A standard normal deviate (Box-Muller). */
static float gauss(void)
{
    const float u = frand(1e-7f, 1.0f), v = frand(0.0f, 1.0f);
    return sqrtf(-2.0f * logf(u)) * cosf(6.2831853f * v);
}

/* One weight matrix W[N][K] in the three forms the paths read. */
typedef struct {
    int N, K;
    float *w;            /* W as floats, row n at w + n * K */
    rag_gemm_i8_w *rag;  /* ragcore's packing */
    int8_t *q;           /* per-channel s8 in [-127, 127], rows as w */
    float *scale;        /* s_n */
    int32_t *colsum;     /* sum_k q[n][k] */
    dnnl_memory_t m_s8;  /* q reordered for the current int8 primitive */
    dnnl_memory_t m_f32; /* w reordered for the current f32 primitive */
} mat;

/* Quantizes W per output channel to [-qmax, qmax]: gemm_int8.h's numbers with qmax 127
 * (s_n = max |W| / 127). */
static void quantize_weights(mat *m, int qmax)
{
    for (int n = 0; n < m->N; n++) {
        const float *r = m->w + (size_t)n * m->K;
        float mx = 0;
        for (int k = 0; k < m->K; k++)
            mx = fabsf(r[k]) > mx ? fabsf(r[k]) : mx;
        const float s = mx / (float)qmax, inv = mx > 0 ? (float)qmax / mx : 0;
        int32_t sum = 0;
        for (int k = 0; k < m->K; k++) {
            int v = (int)rintf(r[k] * inv);
            v = v > qmax ? qmax : v < -qmax ? -qmax : v;
            m->q[(size_t)n * m->K + k] = (int8_t)v;
            sum += v;
        }
        m->scale[n] = s;
        m->colsum[n] = sum;
    }
}

/* Quantizes T rows of x[T][K] to u8 with a per-row scale and zero point, in gemm_int8.h's
 * numbers (rint to nearest even; the [0, 255] clamp is the packs' saturation). */
__attribute__((target("avx2,fma"))) static void quantize_rows(int T, int K, const float *x,
                                                              uint8_t *xq, float *sx, int32_t *zx)
{
    for (int t = 0; t < T; t++) {
        const float *r = x + (size_t)t * K;
        __m256 mn = _mm256_setzero_ps(), mx = _mm256_setzero_ps();
        for (int k = 0; k < K; k += 8) { /* K is a multiple of 32 in every shape */
            mn = _mm256_min_ps(mn, _mm256_loadu_ps(r + k));
            mx = _mm256_max_ps(mx, _mm256_loadu_ps(r + k));
        }
        float a[8], b[8], lo = 0, hi = 0;
        _mm256_storeu_ps(a, mn);
        _mm256_storeu_ps(b, mx);
        for (int i = 0; i < 8; i++) {
            lo = a[i] < lo ? a[i] : lo;
            hi = b[i] > hi ? b[i] : hi;
        }
        float s = (hi - lo) / 255.0f;
        s = s > 0 ? s : 1.0f;
        const float inv = 1.0f / s;
        const float zf = rintf(-lo * inv);
        const int32_t z = zf < 0 ? 0 : zf > 255 ? 255 : (int32_t)zf;
        sx[t] = s;
        zx[t] = z;
        const __m256 vi = _mm256_set1_ps(inv);
        const __m256i vz = _mm256_set1_epi32(z), perm = _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7);
        for (int k = 0; k < K; k += 32) {
            __m256i c[4];
            for (int i = 0; i < 4; i++) {
                const __m256 f = _mm256_mul_ps(_mm256_loadu_ps(r + k + 8 * i), vi);
                c[i] = _mm256_add_epi32(_mm256_cvtps_epi32(f), vz);
            }
            const __m256i u = _mm256_packus_epi16(_mm256_packs_epi32(c[0], c[1]),
                                                  _mm256_packs_epi32(c[2], c[3]));
            _mm256_storeu_si256((__m256i *)(xq + (size_t)t * K + k),
                                _mm256_permutevar8x32_epi32(u, perm));
        }
    }
}

/* y[t][n] += (s_t s_n) (acc[t][n] - z_t colsum_n): ragcore's epilogue on oneDNN's sums. */
__attribute__((target("avx2,fma"))) static void dequantize(int T, const mat *m, const int32_t *acc,
                                                           const float *sx, const int32_t *zx,
                                                           float *y)
{
    for (int t = 0; t < T; t++) {
        const __m256 st = _mm256_set1_ps(sx[t]);
        const __m256i zt = _mm256_set1_epi32(zx[t]);
        const int32_t *a = acc + (size_t)t * m->N;
        float *yr = y + (size_t)t * m->N;
        for (int n = 0; n < m->N; n += 8) { /* N is a multiple of 8 in every shape */
            const __m256i cs = _mm256_loadu_si256((const __m256i *)(m->colsum + n));
            const __m256i d = _mm256_sub_epi32(_mm256_loadu_si256((const __m256i *)(a + n)),
                                               _mm256_mullo_epi32(zt, cs));
            __m256 v = _mm256_fmadd_ps(_mm256_mul_ps(st, _mm256_loadu_ps(m->scale + n)),
                                       _mm256_cvtepi32_ps(d), _mm256_loadu_ps(yr + n));
            _mm256_storeu_ps(yr + n, v);
        }
    }
}

/* A oneDNN matmul x[T][K] * W^T for weights of shape N x K in data type `wt` (source `st`,
 * destination `dt`), weights in the layout the primitive prefers. */
typedef struct {
    dnnl_primitive_t prim;
    dnnl_memory_desc_t wmd; /* the weights layout it wants */
    dnnl_memory_t src, dst; /* on caller buffers */
} matmul;

static void matmul_create(matmul *mm, int T, int N, int K, dnnl_data_type_t st, dnnl_data_type_t wt,
                          dnnl_data_type_t dt, void *src, void *dst)
{
    dnnl_memory_desc_t smd, wmd, dmd;
    const dnnl_dims_t sd = {T, K}, wd = {K, N}, dd = {T, N};
    CHECK(dnnl_memory_desc_init_by_tag(&smd, 2, sd, st, dnnl_ab));
    CHECK(dnnl_memory_desc_init_by_tag(&wmd, 2, wd, wt, dnnl_format_tag_any));
    CHECK(dnnl_memory_desc_init_by_tag(&dmd, 2, dd, dt, dnnl_ab));
    dnnl_matmul_desc_t desc;
    CHECK(dnnl_matmul_desc_init(&desc, &smd, &wmd, NULL, &dmd));
    dnnl_primitive_desc_t pd;
    CHECK(dnnl_primitive_desc_create(&pd, &desc, NULL, engine, NULL));
    mm->wmd = *dnnl_primitive_desc_query_md(pd, dnnl_query_weights_md, 0);
    CHECK(dnnl_primitive_create(&mm->prim, pd));
    CHECK(dnnl_primitive_desc_destroy(pd));
    CHECK(dnnl_memory_create(&mm->src, &smd, engine, src));
    CHECK(dnnl_memory_create(&mm->dst, &dmd, engine, dst));
}

static void matmul_destroy(matmul *mm)
{
    dnnl_primitive_destroy(mm->prim);
    dnnl_memory_destroy(mm->src);
    dnnl_memory_destroy(mm->dst);
}

static void matmul_run(const matmul *mm, dnnl_memory_t weights)
{
    dnnl_exec_arg_t args[3] = {
        {DNNL_ARG_SRC, mm->src}, {DNNL_ARG_WEIGHTS, weights}, {DNNL_ARG_DST, mm->dst}};
    CHECK(dnnl_primitive_execute(mm->prim, stream, 3, args));
    CHECK(dnnl_stream_wait(stream));
}

/* Copies W (N x K rows, data type `dt`, i.e. the K x N matrix in layout "ba") into a new
 * memory in layout `to`; the old one (if any) is destroyed. */
static void reorder_weights(dnnl_memory_t *out, const dnnl_memory_desc_t *to, int N, int K,
                            dnnl_data_type_t dt, void *w)
{
    dnnl_memory_desc_t from;
    const dnnl_dims_t d = {K, N};
    CHECK(dnnl_memory_desc_init_by_tag(&from, 2, d, dt, dnnl_ba));
    dnnl_memory_t src, dst;
    CHECK(dnnl_memory_create(&src, &from, engine, w));
    CHECK(dnnl_memory_create(&dst, to, engine, DNNL_MEMORY_ALLOCATE));
    dnnl_primitive_desc_t pd;
    CHECK(dnnl_reorder_primitive_desc_create(&pd, &from, engine, to, engine, NULL));
    dnnl_primitive_t r;
    CHECK(dnnl_primitive_create(&r, pd));
    dnnl_exec_arg_t args[2] = {{DNNL_ARG_FROM, src}, {DNNL_ARG_TO, dst}};
    CHECK(dnnl_primitive_execute(r, stream, 2, args));
    CHECK(dnnl_stream_wait(stream));
    dnnl_primitive_destroy(r);
    dnnl_primitive_desc_destroy(pd);
    dnnl_memory_destroy(src);
    if (*out)
        dnnl_memory_destroy(*out);
    *out = dst;
}

/* Buffers every path reads or writes: x (floats), its quantized copy, sums, outputs. */
typedef struct {
    float *x, *y, *sx;
    uint8_t *xq;
    int32_t *acc, *zx;
    void *work; /* rag_gemm_i8's */
} bufs;

/* One timed block: `inner` times over the NL layers' matrices of shape s, path p. */
static double run_block(int p, int T, mat *m, matmul *mi, matmul *mf, const bufs *b, int inner)
{
    const double t0 = cpu_now();
    for (int i = 0; i < inner; i++)
        for (int l = 0; l < NL; l++) {
            mat *w = &m[l];
            switch (p) {
            case P_RAG:
                rag_gemm_i8((size_t)T, w->rag, b->x, (size_t)w->K, b->y, (size_t)w->N, b->work);
                break;
            case P_FULL:
                quantize_rows(T, w->K, b->x, b->xq, b->sx, b->zx);
                matmul_run(mi, w->m_s8);
                dequantize(T, w, b->acc, b->sx, b->zx, b->y);
                break;
            case P_MM:
                matmul_run(mi, w->m_s8);
                break;
            default:
                matmul_run(mf, w->m_f32);
            }
        }
    return cpu_now() - t0;
}

/* acc[t][n] = sum_k x[t][k] w[n][k] in plain int32 arithmetic: the exact sums. */
static void exact_sums(int T, int N, int K, const uint8_t *x, const int8_t *w, int32_t *acc)
{
    for (int t = 0; t < T; t++)
        for (int n = 0; n < N; n++) {
            int32_t sum = 0;
            for (int k = 0; k < K; k++)
                sum += (int32_t)x[(size_t)t * K + k] * w[(size_t)n * K + k];
            acc[(size_t)t * N + n] = sum;
        }
}

static int cmp_double(const void *a, const void *b)
{
    const double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* Exactness of oneDNN's u8 x s8 -> s32 sums, weights in [-wmax, wmax]: on uniform random
 * bytes, or (model_like) on normal floats quantized as ragcore does (x per row, u8 with a
 * zero point; W per channel). Prints the outputs that differ from the exact int32 sums, the
 * largest difference, and that relative to the largest exact sum. */
static void exactness(int wmax, int model_like)
{
    const int Ts[] = {1, 8, 64};
    for (size_t ti = 0; ti < sizeof Ts / sizeof Ts[0]; ti++) {
        const int T = Ts[ti];
        const int shape[NS][2] = {{1152, 384}, {384, 384}, {1536, 384}, {384, 1536}};
        for (int s = 0; s < NS; s++) {
            const int N = shape[s][0], K = shape[s][1];
            uint8_t *x = malloc((size_t)T * K);
            int8_t *w = malloc((size_t)N * K);
            int32_t *got = malloc((size_t)T * N * sizeof(int32_t));
            if (model_like) {
                float *xf = malloc((size_t)T * K * sizeof(float)), sx[64];
                int32_t zx[64];
                mat m = {.N = N, .K = K, .w = malloc((size_t)N * K * sizeof(float)), .q = w,
                         .scale = malloc((size_t)N * sizeof(float)),
                         .colsum = malloc((size_t)N * sizeof(int32_t))};
                for (size_t i = 0; i < (size_t)T * K; i++)
                    xf[i] = gauss();
                for (size_t i = 0; i < (size_t)N * K; i++)
                    m.w[i] = 0.05f * gauss();
                quantize_rows(T, K, xf, x, sx, zx);
                quantize_weights(&m, wmax);
                free(xf);
                free(m.w);
                free(m.scale);
                free(m.colsum);
            } else {
                for (size_t i = 0; i < (size_t)T * K; i++)
                    x[i] = (uint8_t)(rng() & 255);
                for (size_t i = 0; i < (size_t)N * K; i++)
                    w[i] = (int8_t)((int)(rng() % (uint32_t)(2 * wmax + 1)) - wmax);
            }
            matmul mm;
            matmul_create(&mm, T, N, K, dnnl_u8, dnnl_s8, dnnl_s32, x, got);
            dnnl_memory_t wm = NULL;
            reorder_weights(&wm, &mm.wmd, N, K, dnnl_s8, w);
            matmul_run(&mm, wm);
            int32_t *want = malloc((size_t)T * N * sizeof(int32_t));
            exact_sums(T, N, K, x, w, want);
            long bad = 0, maxerr = 0, maxabs = 0;
            for (int t = 0; t < T; t++)
                for (int n = 0; n < N; n++) {
                    const int32_t exact = want[(size_t)t * N + n];
                    const long e = labs((long)got[(size_t)t * N + n] - exact);
                    bad += e != 0;
                    maxabs = labs((long)exact) > maxabs ? labs((long)exact) : maxabs;
                    maxerr = e > maxerr ? e : maxerr;
                }
            printf("  %-7s W in [-%3d, %3d]  T %2d  %-8s %4dx%-4d: %6ld of %6ld sums differ, "
                   "max |err| %6ld (%.1f%% of max |sum|)\n", model_like ? "normal" : "uniform",
                   wmax, wmax, T, SHAPE_NAME[s], N, K, bad, (long)T * N, maxerr,
                   100.0 * (double)maxerr / (double)(maxabs ? maxabs : 1));
            fflush(stdout);
            dnnl_memory_destroy(wm);
            matmul_destroy(&mm);
            free(x);
            free(w);
            free(got);
            free(want);
        }
    }
}

/* The same on the worst case for a 16-bit pair sum: x all 255, W all 127 (exact: 255 * 127 * K). */
static void worst_case(void)
{
    const int T = 1, N = 384, K = 384;
    uint8_t *x = malloc((size_t)T * K);
    int8_t *w = malloc((size_t)N * K);
    int32_t *got = malloc((size_t)T * N * sizeof(int32_t));
    memset(x, 255, (size_t)T * K);
    memset(w, 127, (size_t)N * K);
    matmul mm;
    matmul_create(&mm, T, N, K, dnnl_u8, dnnl_s8, dnnl_s32, x, got);
    dnnl_memory_t wm = NULL;
    reorder_weights(&wm, &mm.wmd, N, K, dnnl_s8, w);
    matmul_run(&mm, wm);
    printf("  x = 255, W = 127, K = %d: exact %d, oneDNN %d\n", K, 255 * 127 * K, got[0]);
    dnnl_memory_destroy(wm);
    matmul_destroy(&mm);
    free(x);
    free(w);
    free(got);
}

static const char *isa_name(dnnl_cpu_isa_t isa)
{
    switch (isa) {
    case dnnl_cpu_isa_sse41: return "sse41";
    case dnnl_cpu_isa_avx: return "avx";
    case dnnl_cpu_isa_avx2: return "avx2";
    case dnnl_cpu_isa_avx2_vnni: return "avx2_vnni";
    case dnnl_cpu_isa_avx512_core: return "avx512_core";
    case dnnl_cpu_isa_avx512_core_vnni: return "avx512_core_vnni";
    default: return "other";
    }
}

int main(int argc, char **argv)
{
    const char *omp = getenv("OMP_NUM_THREADS");
    if (!omp || strcmp(omp, "1")) { /* OpenMP reads it when it loads: set it and start again */
        setenv("OMP_NUM_THREADS", "1", 1);
        execv("/proc/self/exe", argv);
        perror("bench_onednn: re-executing with OMP_NUM_THREADS=1");
        return 1;
    }
    int rounds = 15, exact_only = 0;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--rounds") && i + 1 < argc)
            rounds = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--exact-only"))
            exact_only = 1;
        else {
            fprintf(stderr, "usage: bench_onednn [--rounds R] [--exact-only]\n");
            return 2;
        }
    }
    if (rounds < 1 || rounds > 1000)
        rounds = 15;
    CHECK(dnnl_engine_create(&engine, dnnl_cpu, 0));
    CHECK(dnnl_stream_create(&stream, engine, dnnl_stream_default_flags));
    const dnnl_version_t *v = dnnl_version();
    printf("oneDNN %d.%d.%d (%s), effective ISA %s, OMP_NUM_THREADS=1; ragcore int8 kernel %s\n",
           v->major, v->minor, v->patch, v->hash, isa_name(dnnl_get_effective_cpu_isa()),
           rag_gemm_i8_isa_name(rag_gemm_i8_isa()));

    printf("exactness of oneDNN u8 x s8 -> s32 against exact int32 sums (uniform: random bytes; "
           "normal: N(0,1) x and W quantized as ragcore does):\n");
    for (int model_like = 0; model_like < 2; model_like++) {
        exactness(127, model_like);
        exactness(63, model_like);
    }
    worst_case();
    if (exact_only)
        return 0;

    const int shape[NS][2] = {{1152, 384}, {384, 384}, {1536, 384}, {384, 1536}};
    static mat M[NS][NL];
    for (int s = 0; s < NS; s++)
        for (int l = 0; l < NL; l++) {
            mat *m = &M[s][l];
            m->N = shape[s][0];
            m->K = shape[s][1];
            const size_t nk = (size_t)m->N * m->K;
            m->w = malloc(nk * sizeof(float));
            m->q = malloc(nk);
            m->scale = malloc((size_t)m->N * sizeof(float));
            m->colsum = malloc((size_t)m->N * sizeof(int32_t));
            if (!m->w || !m->q || !m->scale || !m->colsum) {
                fprintf(stderr, "bench_onednn: out of memory\n");
                return 1;
            }
            for (size_t i = 0; i < nk; i++)
                m->w[i] = frand(-0.1f, 0.1f);
            quantize_weights(m, 127);
            if (rag_gemm_i8_pack(m->w, (size_t)m->N, (size_t)m->K, (size_t)m->K, &m->rag)) {
                fprintf(stderr, "bench_onednn: out of memory packing\n");
                return 1;
            }
        }
    bufs b;
    b.x = malloc((size_t)TMAX * 1536 * sizeof(float));
    b.y = calloc((size_t)TMAX * 1536, sizeof(float));
    b.sx = malloc(TMAX * sizeof(float));
    b.zx = malloc(TMAX * sizeof(int32_t));
    b.xq = malloc((size_t)TMAX * 1536);
    b.acc = malloc((size_t)TMAX * 1536 * sizeof(int32_t));
    float *yf = malloc((size_t)TMAX * 1536 * sizeof(float));
    b.work = aligned_alloc(64, (rag_gemm_i8_work(TMAX, 1536) + 63) / 64 * 64);
    for (size_t i = 0; i < (size_t)TMAX * 1536; i++)
        b.x[i] = frand(-2.0f, 2.0f);

    printf("\nG MAC/s, thread CPU, median of %d alternating rounds, weights of %d layers "
           "cycling:\n", rounds, NL);
    printf("  %4s %-9s | %8s %9s %8s %8s | %9s %8s | %s\n", "T", "shape", PATH_NAME[0],
           PATH_NAME[1], PATH_NAME[2], PATH_NAME[3], "full/rag", "mm/rag",
           "max |y - ragcore's y|: exact sums, oneDNN's");
    const int Ts[] = {1, 8, 20, 64, 128, 256};
    for (size_t ti = 0; ti < sizeof Ts / sizeof Ts[0]; ti++) {
        const int T = Ts[ti];
        double layer[NP] = {0};
        for (int s = 0; s < NS; s++) {
            mat *m = M[s];
            const int N = shape[s][0], K = shape[s][1];
            matmul mi, mf;
            /* the full path quantizes x into b.xq itself; dnnl-mm reads whatever is there */
            matmul_create(&mi, T, N, K, dnnl_u8, dnnl_s8, dnnl_s32, b.xq, b.acc);
            matmul_create(&mf, T, N, K, dnnl_f32, dnnl_f32, dnnl_f32, b.x, yf);
            for (int l = 0; l < NL; l++) {
                reorder_weights(&m[l].m_s8, &mi.wmd, N, K, dnnl_s8, m[l].q);
                reorder_weights(&m[l].m_f32, &mf.wmd, N, K, dnnl_f32, m[l].w);
            }
            /* the numbers both ways on layer 0: ragcore's y, then the full path's y from
             * exact int32 sums (the same quantization and epilogue: should differ only by
             * float rounding) and from oneDNN's sums */
            float *ye = calloc((size_t)T * N, sizeof(float));
            float *yd = calloc((size_t)T * N, sizeof(float));
            memset(b.y, 0, (size_t)T * N * sizeof(float));
            rag_gemm_i8((size_t)T, m[0].rag, b.x, (size_t)K, b.y, (size_t)N, b.work);
            quantize_rows(T, K, b.x, b.xq, b.sx, b.zx);
            exact_sums(T, N, K, b.xq, m[0].q, b.acc);
            dequantize(T, &m[0], b.acc, b.sx, b.zx, ye);
            matmul_run(&mi, m[0].m_s8);
            dequantize(T, &m[0], b.acc, b.sx, b.zx, yd);
            double de = 0, dd = 0, mag = 0;
            for (size_t i = 0; i < (size_t)T * N; i++) {
                de = fmax(de, fabs((double)ye[i] - b.y[i]));
                dd = fmax(dd, fabs((double)yd[i] - b.y[i]));
                mag = fmax(mag, fabs((double)b.y[i]));
            }
            free(ye);
            free(yd);
            /* each timed block does ~40 M MAC so that the clock's resolution does not matter */
            const double macs = (double)NL * T * N * K;
            const int inner = macs >= 40e6 ? 1 : (int)(40e6 / macs) + 1;
            double g[NP][1000];
            for (int r = 0; r < rounds; r++)
                for (int i = 0; i < NP; i++) {
                    /* the order changes each round: forwards, backwards, shifted by r */
                    const int p = (r % 2 ? NP - 1 - i + r : i + r) % NP;
                    g[p][r] = macs * inner / run_block(p, T, m, &mi, &mf, &b, inner) / 1e9;
                }
            double med[NP];
            for (int p = 0; p < NP; p++) {
                qsort(g[p], (size_t)rounds, sizeof(double), cmp_double);
                med[p] = g[p][rounds / 2];
                layer[p] += (double)T * N * K / (med[p] * 1e9);
            }
            printf("  %4d %-9s | %8.1f %9.1f %8.1f %8.1f | %9.2f %8.2f | %.2g, %.2g "
                   "(max |y| %.2g)\n", T, SHAPE_NAME[s], med[0], med[1], med[2], med[3],
                   med[1] / med[0], med[2] / med[0], de, dd, mag);
            fflush(stdout);
            matmul_destroy(&mi);
            matmul_destroy(&mf);
        }
        const double lm = (double)T * (4.0 * 384 * 384 + 2.0 * 1536 * 384);
        printf("  %4d %-9s | %8.1f %9.1f %8.1f %8.1f | %9.2f %8.2f |\n", T, "layer",
               lm / layer[0] / 1e9, lm / layer[1] / 1e9, lm / layer[2] / 1e9,
               lm / layer[3] / 1e9, layer[0] / layer[1], layer[0] / layer[2]);
    }
    for (int s = 0; s < NS; s++)
        for (int l = 0; l < NL; l++) {
            mat *m = &M[s][l];
            free(m->w);
            free(m->q);
            free(m->scale);
            free(m->colsum);
            rag_gemm_i8_free(m->rag);
            dnnl_memory_destroy(m->m_s8);
            dnnl_memory_destroy(m->m_f32);
        }
    free(b.x);
    free(b.y);
    free(b.sx);
    free(b.zx);
    free(b.xq);
    free(b.acc);
    free(yf);
    free(b.work);
    dnnl_stream_destroy(stream);
    dnnl_engine_destroy(engine);
    return 0;
}
