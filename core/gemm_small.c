/* gemm_small.c - y += alpha * x * W^T for a few rows of x: W read in place, or pre-packed. */
#include "gemm_small.h"

#include <stdlib.h>

/* The scalar form: the fallback on CPUs without AVX2+FMA. */
static void gemm_nt_scalar(size_t T, size_t N, size_t K, float alpha, const float *x, size_t ldx,
                           const float *w, size_t ldw, float *y, size_t ldy)
{
    for (size_t n = 0; n < N; n++) {
        const float *wr = w + n * ldw;
        for (size_t t = 0; t < T; t++) {
            const float *xr = x + t * ldx;
            float s = 0;
            for (size_t k = 0; k < K; k++)
                s += xr[k] * wr[k];
            y[t * ldy + n] += alpha * s;
        }
    }
}

#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>
#define HAVE_SIMD_GEMM 1

/* Register blocks: MR rows of W against TR tokens, MR * TR accumulators. AVX2 has 16
 * vector registers: 4 x 3 = 12 accumulators, 3 token vectors, 1 weight vector. AVX-512
 * has 32: 4 x 6 = 24 accumulators, 6 token vectors, 1 weight vector. */
#define MR 4
#define TR2 3
#define TR5 6

/* K is split into chunks of KC (the last one takes up to 1.5 KC), each added onto y in
 * turn, so that a group of tokens' slice of x (6 x 1.5 KB) and a block's slice of W stay
 * in L1 together: 5-20 % faster for the 1536-wide GEMM of an FFN than one pass over K. */
#define KC 384

#define AVX2_INLINE static inline __attribute__((always_inline, target("avx2,fma")))
#define AVX512_INLINE static inline __attribute__((always_inline, target("avx512f,avx2,fma")))

/* The weights of the next block of W rows are fetched into cache a few lines per step
 * while the current block runs against all the tokens, so that the memory stream of W
 * (the whole cost at small T) overlaps the arithmetic instead of stalling the first
 * group of tokens of every block. */
typedef struct {
    const char *row;   /* next row to fetch (NULL: none) */
    size_t off, row_bytes, stride;
    int rows_left;
    int per_step; /* 64-byte lines per vector step */
} prefetch;

/* Plans the prefetch of the K floats of MR rows from wnext (stride ldw) over `steps`
 * vector steps; wnext NULL: nothing to fetch. */
static prefetch prefetch_plan(const float *wnext, size_t ldw, size_t K, size_t steps)
{
    prefetch pf = {NULL, 0, 0, 0, 0, 0};
    if (wnext) {
        size_t lines = MR * ((K * sizeof(float) + 63) / 64);
        pf.row = (const char *)wnext;
        pf.row_bytes = K * sizeof(float);
        pf.stride = ldw * sizeof(float);
        pf.rows_left = MR;
        pf.per_step = (int)((lines + steps - 1) / (steps ? steps : 1));
    }
    return pf;
}

static inline __attribute__((always_inline)) void prefetch_step(prefetch *pf)
{
    for (int q = 0; q < pf->per_step && pf->rows_left; q++) {
        _mm_prefetch(pf->row + pf->off, _MM_HINT_T0);
        pf->off += 64;
        if (pf->off >= pf->row_bytes) {
            pf->off = 0;
            pf->row += pf->stride;
            pf->rows_left--;
        }
    }
}

/* ---- AVX2 + FMA: 8 lanes ---- */

/* {sum of a0's lanes, a1's, a2's, a3's}. */
AVX2_INLINE __m128 hsum4_256(__m256 a0, __m256 a1, __m256 a2, __m256 a3)
{
    __m256 s = _mm256_hadd_ps(_mm256_hadd_ps(a0, a1), _mm256_hadd_ps(a2, a3));
    return _mm_add_ps(_mm256_castps256_ps128(s), _mm256_extractf128_ps(s, 1));
}

AVX2_INLINE float hsum_256(__m256 a)
{
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(a), _mm256_extractf128_ps(a, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

/* One register block: W rows w[0..nr) against tokens x[0..tr) (nr <= MR, tr <= TR2, both
 * constants after inlining, so the arrays live in registers): 8-wide steps up to k8, one
 * masked step over the K - k8 tail lanes, then y += alpha * sums. */
AVX2_INLINE void block_avx2(int nr, int tr, size_t K, size_t k8, __m256i tail, float alpha,
                            const float *x, size_t ldx, const float *w, size_t ldw, float *y,
                            size_t ldy, prefetch *pf)
{
    __m256 acc[TR2][MR];
    for (int t = 0; t < tr; t++)
        for (int r = 0; r < nr; r++)
            acc[t][r] = _mm256_setzero_ps();
    size_t k = 0;
    for (; k < k8; k += 8) {
        __m256 xv[TR2];
        prefetch_step(pf);
        for (int t = 0; t < tr; t++)
            xv[t] = _mm256_loadu_ps(x + (size_t)t * ldx + k);
        for (int r = 0; r < nr; r++) {
            __m256 wv = _mm256_loadu_ps(w + (size_t)r * ldw + k);
            for (int t = 0; t < tr; t++)
                acc[t][r] = _mm256_fmadd_ps(xv[t], wv, acc[t][r]);
        }
    }
    if (k < K) {
        __m256 xv[TR2];
        for (int t = 0; t < tr; t++)
            xv[t] = _mm256_maskload_ps(x + (size_t)t * ldx + k, tail);
        for (int r = 0; r < nr; r++) {
            __m256 wv = _mm256_maskload_ps(w + (size_t)r * ldw + k, tail);
            for (int t = 0; t < tr; t++)
                acc[t][r] = _mm256_fmadd_ps(xv[t], wv, acc[t][r]);
        }
    }
    for (int t = 0; t < tr; t++) {
        float *yr = y + (size_t)t * ldy;
        if (nr == MR) {
            __m128 s = hsum4_256(acc[t][0], acc[t][1], acc[t][2], acc[t][3]);
            _mm_storeu_ps(yr, _mm_fmadd_ps(_mm_set1_ps(alpha), s, _mm_loadu_ps(yr)));
        } else {
            for (int r = 0; r < nr; r++)
                yr[r] += alpha * hsum_256(acc[t][r]);
        }
    }
}

/* All token groups of x against nr W rows (nr constant after inlining); the MR rows from
 * wnext on (NULL: none) are prefetched meanwhile. */
AVX2_INLINE void rows_avx2(int nr, size_t T, size_t K, size_t k8, __m256i tail, float alpha,
                           const float *x, size_t ldx, const float *w, size_t ldw, float *y,
                           size_t ldy, const float *wnext)
{
    prefetch pf = prefetch_plan(wnext, ldw, K, (T + TR2 - 1) / TR2 * (k8 / 8));
    size_t t = 0;
    for (; t + TR2 <= T; t += TR2)
        block_avx2(nr, TR2, K, k8, tail, alpha, x + t * ldx, ldx, w, ldw, y + t * ldy, ldy, &pf);
    if (T - t == 2)
        block_avx2(nr, 2, K, k8, tail, alpha, x + t * ldx, ldx, w, ldw, y + t * ldy, ldy, &pf);
    else if (T - t == 1)
        block_avx2(nr, 1, K, k8, tail, alpha, x + t * ldx, ldx, w, ldw, y + t * ldy, ldy, &pf);
}

__attribute__((target("avx2,fma"))) static void gemm_nt_avx2(size_t T, size_t N, size_t K,
                                                             float alpha, const float *x,
                                                             size_t ldx, const float *w,
                                                             size_t ldw, float *y, size_t ldy)
{
    for (size_t k0 = 0; k0 < K; k0 += KC) {
        const size_t kc = K - k0 < KC + KC / 2 ? K - k0 : KC, k8 = kc & ~(size_t)7;
        const __m256i tail = _mm256_cmpgt_epi32(_mm256_set1_epi32((int)(kc - k8)),
                                                _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
        const float *xk = x + k0, *wk = w + k0;
        size_t n = 0;
        for (; n + MR <= N; n += MR)
            rows_avx2(MR, T, kc, k8, tail, alpha, xk, ldx, wk + n * ldw, ldw, y + n, ldy,
                      n + 2 * MR <= N ? wk + (n + MR) * ldw : NULL);
        for (; n < N; n++)
            rows_avx2(1, T, kc, k8, tail, alpha, xk, ldx, wk + n * ldw, ldw, y + n, ldy, NULL);
        if (kc != KC)
            break;
    }
}

/* ---- AVX-512F: 16 lanes, same structure ---- */

AVX512_INLINE __m256 fold_512(__m512 a)
{
    return _mm256_add_ps(_mm512_castps512_ps256(a),
                         _mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(a), 1)));
}

AVX512_INLINE void block_avx512(int nr, int tr, size_t K, size_t k16, __mmask16 tail,
                                float alpha, const float *x, size_t ldx, const float *w,
                                size_t ldw, float *y, size_t ldy, prefetch *pf)
{
    __m512 acc[TR5][MR];
    for (int t = 0; t < tr; t++)
        for (int r = 0; r < nr; r++)
            acc[t][r] = _mm512_setzero_ps();
    size_t k = 0;
    for (; k < k16; k += 16) {
        __m512 xv[TR5];
        prefetch_step(pf);
        for (int t = 0; t < tr; t++)
            xv[t] = _mm512_loadu_ps(x + (size_t)t * ldx + k);
        for (int r = 0; r < nr; r++) {
            __m512 wv = _mm512_loadu_ps(w + (size_t)r * ldw + k);
            for (int t = 0; t < tr; t++)
                acc[t][r] = _mm512_fmadd_ps(xv[t], wv, acc[t][r]);
        }
    }
    if (k < K) {
        __m512 xv[TR5];
        for (int t = 0; t < tr; t++)
            xv[t] = _mm512_maskz_loadu_ps(tail, x + (size_t)t * ldx + k);
        for (int r = 0; r < nr; r++) {
            __m512 wv = _mm512_maskz_loadu_ps(tail, w + (size_t)r * ldw + k);
            for (int t = 0; t < tr; t++)
                acc[t][r] = _mm512_fmadd_ps(xv[t], wv, acc[t][r]);
        }
    }
    for (int t = 0; t < tr; t++) {
        float *yr = y + (size_t)t * ldy;
        if (nr == MR) {
            __m128 s = hsum4_256(fold_512(acc[t][0]), fold_512(acc[t][1]), fold_512(acc[t][2]),
                                 fold_512(acc[t][3]));
            _mm_storeu_ps(yr, _mm_fmadd_ps(_mm_set1_ps(alpha), s, _mm_loadu_ps(yr)));
        } else {
            for (int r = 0; r < nr; r++)
                yr[r] += alpha * hsum_256(fold_512(acc[t][r]));
        }
    }
}

AVX512_INLINE void rows_avx512(int nr, size_t T, size_t K, size_t k16, __mmask16 tail,
                               float alpha, const float *x, size_t ldx, const float *w,
                               size_t ldw, float *y, size_t ldy, const float *wnext)
{
    prefetch pf = prefetch_plan(wnext, ldw, K, (T + TR5 - 1) / TR5 * (k16 / 16));
    size_t t = 0;
    for (; t + TR5 <= T; t += TR5)
        block_avx512(nr, TR5, K, k16, tail, alpha, x + t * ldx, ldx, w, ldw, y + t * ldy, ldy,
                     &pf);
    x += t * ldx;
    y += t * ldy;
    switch (T - t) {
    case 5: block_avx512(nr, 5, K, k16, tail, alpha, x, ldx, w, ldw, y, ldy, &pf); break;
    case 4: block_avx512(nr, 4, K, k16, tail, alpha, x, ldx, w, ldw, y, ldy, &pf); break;
    case 3: block_avx512(nr, 3, K, k16, tail, alpha, x, ldx, w, ldw, y, ldy, &pf); break;
    case 2: block_avx512(nr, 2, K, k16, tail, alpha, x, ldx, w, ldw, y, ldy, &pf); break;
    case 1: block_avx512(nr, 1, K, k16, tail, alpha, x, ldx, w, ldw, y, ldy, &pf); break;
    default: break;
    }
}

__attribute__((target("avx512f,avx2,fma"))) static void
gemm_nt_avx512(size_t T, size_t N, size_t K, float alpha, const float *x, size_t ldx,
               const float *w, size_t ldw, float *y, size_t ldy)
{
    for (size_t k0 = 0; k0 < K; k0 += KC) {
        const size_t kc = K - k0 < KC + KC / 2 ? K - k0 : KC;
        const size_t k16 = kc & ~(size_t)15;
        const __mmask16 tail = (__mmask16)((1u << (kc - k16)) - 1);
        const float *xk = x + k0, *wk = w + k0;
        size_t n = 0;
        for (; n + MR <= N; n += MR)
            rows_avx512(MR, T, kc, k16, tail, alpha, xk, ldx, wk + n * ldw, ldw, y + n, ldy,
                        n + 2 * MR <= N ? wk + (n + MR) * ldw : NULL);
        for (; n < N; n++)
            rows_avx512(1, T, kc, k16, tail, alpha, xk, ldx, wk + n * ldw, ldw, y + n, ldy, NULL);
        if (kc != KC)
            break;
    }
}

/* ---- AVX-512F on pre-packed W: no horizontal sums ---- */

/* Packed layout: W's N rows cut into panels of PANEL consecutive rows (the last one
 * zero-padded) and K into passes of PKC; for each pass, each panel holds, for its k, the
 * PANEL weights W[64p + j][k] side by side. One k step of a panel is 4 aligned vectors,
 * and the kernel reads the whole array once, strictly in order. */
#define PANEL 64
#define PTR 6   /* tokens per register block: 6 x 4 accumulators, 4 weight vectors, 1 broadcast */
#define PKC 128 /* K per pass: a panel's slice (32 KB) stays in L1 across the token groups */

struct rag_gemm_packed {
    size_t N, K;
    float *panels; /* ceil(N / PANEL) * K * PANEL floats, 64-byte aligned */
};

#define PREFETCH_AHEAD 2048 /* floats (8 KB) ahead of the k step being read */

/* y[t][0..ncols) += alpha * sum_k x[t][k] * panel[k][0..ncols) for t < tr (tr and fetch
 * constant after inlining): every k step broadcasts one x value per token against the 4
 * weight vectors, the 24 sums stay in registers and are added to y once. Meanwhile
 * [l2, l2_end) - this group's share of the next panel slice - is fetched into L2, l2_step
 * bytes per k step, so that the next slice's first group finds its weights in cache
 * instead of waiting on memory: 12-20 % less time at 12-48 tokens. */
AVX512_INLINE void pblock_avx512(int tr, size_t kc, float alpha, const float *x, size_t ldx,
                                 const float *pw, float *y, size_t ldy, size_t ncols, int fetch,
                                 const char *l2, const char *l2_end, size_t l2_step)
{
    __m512 acc[PTR][4];
    for (int t = 0; t < tr; t++)
        for (int v = 0; v < 4; v++)
            acc[t][v] = _mm512_setzero_ps();
    for (size_t k = 0; k < kc; k++, pw += PANEL) {
        if (fetch) /* first token group: bring the weights further on into cache */
            for (int l = 0; l < 4; l++)
                _mm_prefetch((const char *)(pw + PREFETCH_AHEAD + 16 * l), _MM_HINT_T0);
        if (l2 < l2_end) {
            for (size_t l = 0; l < l2_step; l += 64)
                _mm_prefetch(l2 + l, _MM_HINT_T1);
            l2 += l2_step;
        }
        const __m512 w0 = _mm512_load_ps(pw), w1 = _mm512_load_ps(pw + 16);
        const __m512 w2 = _mm512_load_ps(pw + 32), w3 = _mm512_load_ps(pw + 48);
        for (int t = 0; t < tr; t++) {
            const __m512 b = _mm512_set1_ps(x[(size_t)t * ldx + k]);
            acc[t][0] = _mm512_fmadd_ps(b, w0, acc[t][0]);
            acc[t][1] = _mm512_fmadd_ps(b, w1, acc[t][1]);
            acc[t][2] = _mm512_fmadd_ps(b, w2, acc[t][2]);
            acc[t][3] = _mm512_fmadd_ps(b, w3, acc[t][3]);
        }
    }
    const __m512 a = _mm512_set1_ps(alpha);
    for (int t = 0; t < tr; t++) {
        float *yr = y + (size_t)t * ldy;
        for (int v = 0; v < 4; v++) {
            size_t c = (size_t)v * 16;
            if (c >= ncols)
                break;
            __mmask16 m = ncols - c >= 16 ? (__mmask16)0xFFFF
                                          : (__mmask16)((1u << (ncols - c)) - 1);
            _mm512_mask_storeu_ps(yr + c, m, _mm512_fmadd_ps(a, acc[t][v],
                                                             _mm512_maskz_loadu_ps(m, yr + c)));
        }
    }
}

/* Each (tokens, fetch) form of pblock_avx512 is its own function: inlined together into
 * one caller, GCC ran out of registers and kept a weight vector (and at -O3 some of the
 * accumulators) on the stack inside the k loop. */
typedef void (*pblock_fn)(size_t kc, float alpha, const float *x, size_t ldx, const float *pw,
                          float *y, size_t ldy, size_t ncols, const char *l2,
                          const char *l2_end, size_t l2_step);
#define PBLOCK_FORM(tr, fetch)                                                                 \
    static __attribute__((noinline, target("avx512f,avx2,fma"))) void pblock_##tr##_##fetch(   \
        size_t kc, float alpha, const float *x, size_t ldx, const float *pw, float *y,         \
        size_t ldy, size_t ncols, const char *l2, const char *l2_end, size_t l2_step)          \
    {                                                                                          \
        pblock_avx512(tr, kc, alpha, x, ldx, pw, y, ldy, ncols, fetch, l2, l2_end, l2_step);   \
    }
PBLOCK_FORM(1, 0) PBLOCK_FORM(2, 0) PBLOCK_FORM(3, 0) PBLOCK_FORM(4, 0) PBLOCK_FORM(5, 0)
PBLOCK_FORM(6, 0) PBLOCK_FORM(1, 1) PBLOCK_FORM(2, 1) PBLOCK_FORM(3, 1) PBLOCK_FORM(4, 1)
PBLOCK_FORM(5, 1) PBLOCK_FORM(6, 1)
/* [fetch][tokens]: the first token group of a panel prefetches the weights further on. */
static const pblock_fn PBLOCK[2][PTR + 1] = {
    {NULL, pblock_1_0, pblock_2_0, pblock_3_0, pblock_4_0, pblock_5_0, pblock_6_0},
    {NULL, pblock_1_1, pblock_2_1, pblock_3_1, pblock_4_1, pblock_5_1, pblock_6_1}};

__attribute__((target("avx512f,avx2,fma"))) static void
gemm_packed_avx512(size_t T, const rag_gemm_packed *p, float alpha, const float *x, size_t ldx,
                   float *y, size_t ldy)
{
    const size_t N = p->N, K = p->K, np = (N + PANEL - 1) / PANEL;
    const float *pw = p->panels;
    const char *end = (const char *)(p->panels + np * K * PANEL);
    for (size_t k0 = 0; k0 < K; k0 += PKC) {
        const size_t kc = K - k0 < PKC ? K - k0 : PKC;
        for (size_t q = 0; q < np; q++, pw += kc * PANEL) {
            const size_t ncols = N - q * PANEL < PANEL ? N - q * PANEL : PANEL;
            const float *xq = x + k0;
            float *yq = y + q * PANEL;
            /* The next kc * PANEL floats (the array is in read order) are shared out evenly
             * among the G token groups: each fetches `step` bytes per k step into L2. With
             * one group there is nothing to overlap the fetch with. */
            const char *next = (const char *)(pw + kc * PANEL);
            const size_t G = (T + PTR - 1) / PTR;
            const size_t step = G == 1 ? 0 : (PANEL * sizeof(float) + G - 1) / G;
            size_t span = (size_t)(end - next);
            if (span > kc * PANEL * sizeof(float))
                span = kc * PANEL * sizeof(float);
            if (!step)
                span = 0;
            for (size_t t = 0; t < T; t += PTR) {
                const size_t tr = T - t < PTR ? T - t : PTR, off = t / PTR * kc * step;
                PBLOCK[t == 0][tr](kc, alpha, xq + t * ldx, ldx, pw, yq + t * ldy, ldy, ncols,
                                   next + (off < span ? off : span), next + span, step);
            }
        }
    }
}
#endif

int rag_gemm_pack(const float *w, size_t N, size_t K, size_t ldw, rag_gemm_packed **out)
{
    *out = NULL;
#ifdef HAVE_SIMD_GEMM
    if (rag_gemm_small_isa() != RAG_GEMM_AVX512 || !N || !K)
        return 0;
    rag_gemm_packed *p = malloc(sizeof *p);
    const size_t np = (N + PANEL - 1) / PANEL;
    float *panels = p ? aligned_alloc(64, np * K * PANEL * sizeof(float)) : NULL;
    if (!panels) {
        free(p);
        return -1;
    }
    float *dst = panels; /* in the order gemm_packed_avx512 reads */
    for (size_t k0 = 0; k0 < K; k0 += PKC) {
        const size_t kc = K - k0 < PKC ? K - k0 : PKC;
        for (size_t q = 0; q < np; q++)
            for (size_t k = k0; k < k0 + kc; k++, dst += PANEL)
                for (size_t j = 0; j < PANEL; j++) {
                    size_t n = q * PANEL + j;
                    dst[j] = n < N ? w[n * ldw + k] : 0.0f;
                }
    }
    p->N = N;
    p->K = K;
    p->panels = panels;
    *out = p;
#else
    (void)w, (void)N, (void)K, (void)ldw;
#endif
    return 0;
}

void rag_gemm_packed_free(rag_gemm_packed *p)
{
    if (!p)
        return;
    free(p->panels);
    free(p);
}

void rag_gemm_small_packed(size_t T, const rag_gemm_packed *p, float alpha, const float *x,
                           size_t ldx, float *y, size_t ldy)
{
#ifdef HAVE_SIMD_GEMM
    if (T)
        gemm_packed_avx512(T, p, alpha, x, ldx, y, ldy);
#else
    (void)T, (void)p, (void)alpha, (void)x, (void)ldx, (void)y, (void)ldy;
#endif
}

/* The CPU's best kernel, detected once: it is asked for every softmax row of an encode
 * (bert_ops.c). Every thread computes the same value, so a relaxed atomic suffices. */
rag_gemm_isa rag_gemm_small_isa(void)
{
    static int cached = -1;
    int v = __atomic_load_n(&cached, __ATOMIC_RELAXED);
    if (v >= 0)
        return (rag_gemm_isa)v;
    v = RAG_GEMM_SCALAR;
#ifdef HAVE_SIMD_GEMM
    if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx2") &&
        __builtin_cpu_supports("fma"))
        v = RAG_GEMM_AVX512;
    else if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma"))
        v = RAG_GEMM_AVX2;
#endif
    __atomic_store_n(&cached, v, __ATOMIC_RELAXED);
    return (rag_gemm_isa)v;
}

void rag_gemm_small_nt_isa(rag_gemm_isa isa, size_t T, size_t N, size_t K, float alpha,
                           const float *x, size_t ldx, const float *w, size_t ldw, float *y,
                           size_t ldy)
{
    if (!T || !N || !K)
        return;
    rag_gemm_isa best = rag_gemm_small_isa();
    if (isa > best)
        isa = best;
#ifdef HAVE_SIMD_GEMM
    if (isa == RAG_GEMM_AVX512) {
        gemm_nt_avx512(T, N, K, alpha, x, ldx, w, ldw, y, ldy);
        return;
    }
    if (isa == RAG_GEMM_AVX2) {
        gemm_nt_avx2(T, N, K, alpha, x, ldx, w, ldw, y, ldy);
        return;
    }
#endif
    gemm_nt_scalar(T, N, K, alpha, x, ldx, w, ldw, y, ldy);
}

void rag_gemm_small_nt(size_t T, size_t N, size_t K, float alpha, const float *x, size_t ldx,
                       const float *w, size_t ldw, float *y, size_t ldy)
{
    rag_gemm_small_nt_isa(rag_gemm_small_isa(), T, N, K, alpha, x, ldx, w, ldw, y, ldy);
}
