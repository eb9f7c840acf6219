/* attention.c - the encoder's multi-head self-attention: a fused AVX-512 kernel, and two
 * BLAS calls per head elsewhere. */
#include "attention.h"
#include "bert_ops.h"

#include <cblas.h>
#include <math.h>
#include <stdint.h>
#include <string.h>

/* Query rows per register block of the fused kernel: 6 rows x 2 vectors of scores (or
 * x up to 4 vectors of a head's context) stay in 12-24 of the 32 zmm registers. */
#define ROWS 6

static size_t pad16(int n) { return ((size_t)n + 15) & ~(size_t)15; }

size_t rag_attention_work(int L, int heads, int head_dim)
{
    const size_t lp = pad16(L), H = (size_t)heads * (size_t)head_dim;
    /* queries and values per head [heads][lp][D], keys transposed [H][lp], scores
     * [ROWS][lp], 64-byte alignment */
    const size_t fused = 3 * H * lp + ROWS * lp + 16;
    const size_t blas = (size_t)L * (size_t)L;
    return fused > blas ? fused : blas;
}

/* The portable form: scores = scale Q Kᵀ through cblas_sgemm, a softmax per row, then
 * ctx = P V through cblas_sgemm, one head at a time. */
static void attention_blas(rag_gemm_isa isa, const float *qkv, size_t ldq, int L, int NH, int D,
                           float scale, float *ctx, size_t ldc, float *scores)
{
    const int H = NH * D;
    for (int h = 0; h < NH; h++) {
        const float *q = qkv + h * D, *k = qkv + H + h * D, *v = qkv + 2 * H + h * D;
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, L, L, D, scale, q, (int)ldq, k,
                    (int)ldq, 0.0f, scores, L);
        for (int r = 0; r < L; r++)
            rag_ops_softmax(isa, scores + (size_t)r * (size_t)L, L);
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, L, D, L, 1.0f, scores, L, v,
                    (int)ldq, 0.0f, ctx + h * D, (int)ldc);
    }
}

#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>
#define HAVE_FUSED 1
#define A512 __attribute__((target("avx512f")))
#define INLINE512 __attribute__((target("avx512f"), always_inline)) static inline
/* The register blocks must be unrolled whatever the optimisation level (at -O2 GCC left
 * them as loops over arrays on the stack, 3x slower). */
#define UNROLL _Pragma("GCC unroll 8")

/* Lanes [0, k) of a 16-lane mask (k <= 0: none, k >= 16: all). */
INLINE512 __mmask16 lanes(long k)
{
    return (__mmask16)(k >= 16 ? 0xFFFFu : k <= 0 ? 0u : (1u << k) - 1u);
}

/* S[r][j0 .. j0 + 16 nv) = scale * q[r] . k_j for the ROWS rows of a block, and mx[r] the
 * running lane-wise max over keys j < L: kt holds the keys transposed (row d: the d-th
 * component of every key, lp floats apart), q[r] a row's query (D floats). nv (1 or 2
 * vectors of 16 keys) is a constant at each call, so each use is specialised. */
INLINE512 void qk_block(const float *const q[ROWS], const float *kt, size_t lp, int D, size_t j0,
                        int nv, int L, __m512 scale, float *S, __m512 mx[ROWS])
{
    __m512 acc[ROWS][2];
    UNROLL for (int r = 0; r < ROWS; r++)
        acc[r][0] = acc[r][1] = _mm512_setzero_ps();
    for (int d = 0; d < D; d++) {
        const float *kr = kt + (size_t)d * lp + j0;
        const __m512 k0 = _mm512_load_ps(kr);
        const __m512 k1 = nv == 2 ? _mm512_load_ps(kr + 16) : k0;
        UNROLL for (int r = 0; r < ROWS; r++) {
            const __m512 qv = _mm512_set1_ps(q[r][d]);
            acc[r][0] = _mm512_fmadd_ps(qv, k0, acc[r][0]);
            if (nv == 2)
                acc[r][1] = _mm512_fmadd_ps(qv, k1, acc[r][1]);
        }
    }
    const __mmask16 m0 = lanes((long)L - (long)j0), m1 = lanes((long)L - (long)j0 - 16);
    UNROLL for (int r = 0; r < ROWS; r++) {
        const __m512 s0 = _mm512_mul_ps(acc[r][0], scale);
        _mm512_store_ps(S + (size_t)r * lp + j0, s0);
        mx[r] = _mm512_mask_max_ps(mx[r], m0, mx[r], s0);
        if (nv == 2) {
            const __m512 s1 = _mm512_mul_ps(acc[r][1], scale);
            _mm512_store_ps(S + (size_t)r * lp + j0 + 16, s1);
            mx[r] = _mm512_mask_max_ps(mx[r], m1, mx[r], s1);
        }
    }
}

/* out[r][0 .. 16 nv) = inv[r] * sum_{j < L} S[r][j] v_j for the first `rows` rows of a
 * block: vp holds the head's values packed (row j: D = 16 nv floats). nv is a constant at
 * each call. */
INLINE512 void pv_block(const float *S, size_t lp, const float *vp, int L, int nv,
                        float *const out[ROWS], const float inv[ROWS], int rows)
{
    __m512 acc[ROWS][4];
    UNROLL for (int r = 0; r < ROWS; r++)
        UNROLL for (int c = 0; c < nv; c++)
            acc[r][c] = _mm512_setzero_ps();
    for (int j = 0; j < L; j++) {
        const float *vr = vp + (size_t)j * (size_t)(16 * nv);
        __m512 v[4];
        UNROLL for (int c = 0; c < nv; c++)
            v[c] = _mm512_load_ps(vr + 16 * c);
        UNROLL for (int r = 0; r < ROWS; r++) {
            const __m512 p = _mm512_set1_ps(S[(size_t)r * lp + (size_t)j]);
            UNROLL for (int c = 0; c < nv; c++)
                acc[r][c] = _mm512_fmadd_ps(p, v[c], acc[r][c]);
        }
    }
    UNROLL for (int r = 0; r < ROWS; r++)
        if (r < rows) {
            const __m512 f = _mm512_set1_ps(inv[r]);
            UNROLL for (int c = 0; c < nv; c++)
                _mm512_storeu_ps(out[r] + 16 * c, _mm512_mul_ps(acc[r][c], f));
        }
}

/* One head's context for all L rows from the packed queries qp and values vp ([L][D] each)
 * and the transposed keys kt ([D][lp]), nv = D / 16. Per block of ROWS query rows: scores
 * and their row maxima in registers, e^(s - max) and its sum by rag_ops_exp_sum, then P V
 * scaled by 1 / sum. Rows past L in the last block repeat row L - 1; their results are
 * dropped. */
INLINE512 void head_fused(const float *qp, const float *kt, const float *vp, int L, int nv,
                          float scale, float *ctx, size_t ldc, float *S)
{
    const int D = 16 * nv;
    const size_t lp = pad16(L);
    const __m512 sc = _mm512_set1_ps(scale);
    for (int r0 = 0; r0 < L; r0 += ROWS) {
        const int rows = L - r0 < ROWS ? L - r0 : ROWS;
        const float *q[ROWS];
        float *out[ROWS];
        __m512 mx[ROWS];
        float inv[ROWS];
        for (int r = 0; r < ROWS; r++) {
            const int t = r < rows ? r0 + r : L - 1;
            q[r] = qp + (size_t)t * (size_t)D;
            out[r] = ctx + (size_t)t * ldc;
            mx[r] = _mm512_set1_ps(-INFINITY);
        }
        size_t j0 = 0;
        for (; j0 + 32 <= lp; j0 += 32)
            qk_block(q, kt, lp, D, j0, 2, L, sc, S, mx);
        if (j0 < lp)
            qk_block(q, kt, lp, D, j0, 1, L, sc, S, mx);
        for (int r = 0; r < ROWS; r++)
            inv[r] = r < rows ? 1.0f / rag_ops_exp_sum(RAG_GEMM_AVX512, S + (size_t)r * lp, L,
                                                       _mm512_reduce_max_ps(mx[r]))
                              : 0.0f;
        pv_block(S, lp, vp, L, nv, out, inv, rows);
    }
}

/* Packs the sequence once for all heads, reading each qkv row front to back: the queries and
 * the values of head h to [h][j][D] (the key of token j transposed to kt[c][j], c < H, so
 * that head h's keys are the D rows from h D), the padded key columns zeroed. */
A512 static void attention_avx512(const float *qkv, size_t ldq, int L, int NH, int D, float scale,
                                  float *ctx, size_t ldc, float *work)
{
    const size_t lp = pad16(L), H = (size_t)NH * (size_t)D, Dz = (size_t)D;
    float *qp = (float *)(((uintptr_t)work + 63) & ~(uintptr_t)63);
    float *vp = qp + H * lp, *kt = vp + H * lp, *S = kt + H * lp; /* multiples of 16 floats */
    for (int j = 0; j < L; j++) {
        const float *row = qkv + (size_t)j * ldq;
        for (int h = 0; h < NH; h++) {
            memcpy(qp + ((size_t)h * lp + (size_t)j) * Dz, row + (size_t)h * Dz, Dz * sizeof(float));
            memcpy(vp + ((size_t)h * lp + (size_t)j) * Dz, row + 2 * H + (size_t)h * Dz,
                   Dz * sizeof(float));
        }
    }
    /* keys: 16 tokens' component c gathered into one store (element-wise stores to 16
     * different lines cost 4x more); padded key columns become 0 */
    const __m512i step = _mm512_mullo_epi32(_mm512_set_epi32(15, 14, 13, 12, 11, 10, 9, 8, 7, 6,
                                                              5, 4, 3, 2, 1, 0),
                                            _mm512_set1_epi32((int)ldq));
    for (size_t j0 = 0; j0 < lp; j0 += 16) {
        const __mmask16 m = lanes((long)L - (long)j0);
        const float *base = qkv + j0 * ldq + H;
        for (size_t c = 0; c < H; c++)
            _mm512_store_ps(kt + c * lp + j0,
                            _mm512_mask_i32gather_ps(_mm512_setzero_ps(), m, step, base + c, 4));
    }
    for (int h = 0; h < NH; h++) {
        const float *q = qp + (size_t)h * lp * Dz, *v = vp + (size_t)h * lp * Dz;
        const float *k = kt + (size_t)h * Dz * lp;
        float *c = ctx + (size_t)h * Dz;
        switch (D / 16) {
        case 1: head_fused(q, k, v, L, 1, scale, c, ldc, S); break;
        case 2: head_fused(q, k, v, L, 2, scale, c, ldc, S); break;
        case 3: head_fused(q, k, v, L, 3, scale, c, ldc, S); break;
        default: head_fused(q, k, v, L, 4, scale, c, ldc, S); break;
        }
    }
}
#endif

void rag_attention(rag_gemm_isa isa, const float *qkv, size_t ldq, int L, int heads,
                   int head_dim, float scale, float *ctx, size_t ldc, float *work)
{
#ifdef HAVE_FUSED
    if (isa >= RAG_GEMM_AVX512 && rag_gemm_small_isa() >= RAG_GEMM_AVX512 &&
        head_dim % 16 == 0 && head_dim >= 16 && head_dim <= 64 && ldq <= INT32_MAX / 16) {
        attention_avx512(qkv, ldq, L, heads, head_dim, scale, ctx, ldc, work);
        return;
    }
#endif
    attention_blas(isa, qkv, ldq, L, heads, head_dim, scale, ctx, ldc, work);
}
