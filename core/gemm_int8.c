/* gemm_int8.c - y += x * W^T in int8: W quantized per output channel once, x per row on the fly. */
#include "gemm_int8.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#define PW 16  /* output channels per panel */
#define QW 127 /* weights are quantized to [-QW, QW] */
#define MC 64 /* rows per block: their quantized x (64 x 1536 x 2 B) stays in L2 */

/* Panel layouts: how one panel (16 channels, K padded to K4) is ordered. */
enum {
    LAYOUT_QUADS = 0, /* per 4 k: 16 channels x 4 bytes (vpdpbusd's operand) */
    LAYOUT_PAIRS = 1  /* per 2 k: 16 channels x 2 bytes (sign-extended for vpmaddwd) */
};

struct rag_gemm_i8_w {
    size_t N, K, K4, np;
    int layout;
    int8_t *panels;  /* np * K4 * PW bytes, 64-byte aligned */
    float *scale;    /* np * PW: s_n (0 past N) */
    int32_t *colsum; /* np * PW: sum_k q_w (0 past N) */
};

static size_t round_up(size_t v, size_t m)
{
    return (v + m - 1) / m * m;
}

/* Quantized x: a row of K values, each stored in `width` bytes (1 for u8, 2 for the
 * int16 the AVX2 kernel multiplies), rows 64-byte aligned. */
static size_t x_stride(size_t K, size_t width)
{
    return round_up(round_up(K, 4) * width, 64);
}

size_t rag_gemm_i8_work(size_t T, size_t K)
{
    return T * x_stride(K, 2) + round_up(T * (sizeof(float) + sizeof(int32_t)), 64);
}

size_t rag_gemm_i8_bytes(const rag_gemm_i8_w *w)
{
    return w ? sizeof *w + w->np * w->K4 * PW + w->np * PW * (sizeof(float) + sizeof(int32_t))
             : 0;
}

/* Offset of weight (n, k) in the panels. */
static size_t w_at(const rag_gemm_i8_w *w, size_t n, size_t k)
{
    const size_t base = n / PW * w->K4 * PW, c = n % PW;
    return w->layout == LAYOUT_PAIRS ? base + k / 2 * 2 * PW + c * 2 + k % 2
                                     : base + k / 4 * 4 * PW + c * 4 + k % 4;
}

int rag_gemm_i8_pack(const float *w, size_t N, size_t K, size_t ldw, rag_gemm_i8_w **out)
{
    return rag_gemm_i8_pack_isa(rag_gemm_i8_isa(), w, N, K, ldw, out);
}

int rag_gemm_i8_pack_isa(rag_i8_isa isa, const float *w, size_t N, size_t K, size_t ldw,
                         rag_gemm_i8_w **out)
{
    *out = NULL;
    while (isa > RAG_I8_SCALAR && !rag_gemm_i8_isa_has(isa))
        isa = (rag_i8_isa)(isa - 1);
    rag_gemm_i8_w *p = calloc(1, sizeof *p);
    if (!p)
        return -1;
    p->N = N;
    p->K = K;
    p->K4 = round_up(K, 4);
    p->np = (N + PW - 1) / PW;
    p->layout = isa == RAG_I8_AVX2 ? LAYOUT_PAIRS : LAYOUT_QUADS;
    const size_t bytes = round_up(p->np * p->K4 * PW, 64);
    p->panels = bytes ? aligned_alloc(64, bytes) : NULL;
    p->scale = calloc(p->np * PW + 1, sizeof *p->scale);
    p->colsum = calloc(p->np * PW + 1, sizeof *p->colsum);
    if ((bytes && !p->panels) || !p->scale || !p->colsum) {
        rag_gemm_i8_free(p);
        return -1;
    }
    if (bytes)
        memset(p->panels, 0, bytes);
    for (size_t n = 0; n < N; n++) {
        const float *row = w + n * ldw;
        float amax = 0;
        for (size_t k = 0; k < K; k++)
            amax = fabsf(row[k]) > amax ? fabsf(row[k]) : amax;
        const float inv = amax > 0 ? QW / amax : 0;
        int32_t sum = 0;
        for (size_t k = 0; k < K; k++) {
            float q = rintf(row[k] * inv);
            q = q > QW ? QW : q < -QW ? -QW : q;
            p->panels[w_at(p, n, k)] = (int8_t)q;
            sum += (int32_t)q;
        }
        p->scale[n] = amax / QW;
        p->colsum[n] = sum;
    }
    *out = p;
    return 0;
}

void rag_gemm_i8_free(rag_gemm_i8_w *w)
{
    if (!w)
        return;
    free(w->panels);
    free(w->scale);
    free(w->colsum);
    free(w);
}

/* Scale, inverse and zero point of a row whose values lie in [lo, hi]. Shared by the
 * quantizers so that every kernel gets the same numbers. */
static void row_params(float lo, float hi, float *s, float *inv, int32_t *z)
{
    lo = lo < 0 ? lo : 0;
    hi = hi > 0 ? hi : 0;
    float sc = (hi - lo) / 255.0f;
    if (!(sc > 0))
        sc = 1.0f;
    *s = sc;
    *inv = 1.0f / sc;
    float zf = rintf(-lo * *inv);
    *z = zf < 0 ? 0 : zf > 255 ? 255 : (int32_t)zf;
}

static inline int32_t quant1(float x, float inv, int32_t z)
{
    int32_t q = (int32_t)rintf(x * inv) + z;
    return q < 0 ? 0 : q > 255 ? 255 : q;
}

/* Quantizes T rows of x into xq (u8, stride ldq bytes, K..ldq zero), sx and zx. */
static void quantize_scalar(size_t T, size_t K, const float *x, size_t ldx, uint8_t *xq,
                            size_t ldq, float *sx, int32_t *zx)
{
    for (size_t t = 0; t < T; t++) {
        const float *r = x + t * ldx;
        float lo = 0, hi = 0, inv;
        for (size_t k = 0; k < K; k++) {
            lo = r[k] < lo ? r[k] : lo;
            hi = r[k] > hi ? r[k] : hi;
        }
        row_params(lo, hi, &sx[t], &inv, &zx[t]);
        uint8_t *q = xq + t * ldq;
        for (size_t k = 0; k < K; k++)
            q[k] = (uint8_t)quant1(r[k], inv, zx[t]);
        memset(q + K, 0, ldq - K);
    }
}

/* The epilogue of one row and up to PW columns: y += (s_t * s_n) * (acc - z_t * colsum). */
static void store_scalar(const int32_t *acc, float st, int32_t zt, const float *sn,
                         const int32_t *colsum, float *y, size_t ncols)
{
    for (size_t c = 0; c < ncols; c++)
        y[c] = fmaf(st * sn[c], (float)(acc[c] - zt * colsum[c]), y[c]);
}

static void gemm_scalar(size_t T, const rag_gemm_i8_w *w, const uint8_t *xq, size_t ldq,
                        const float *sx, const int32_t *zx, float *y, size_t ldy)
{
    for (size_t p = 0; p < w->np; p++) {
        const size_t n0 = p * PW, ncols = w->N - n0 < PW ? w->N - n0 : PW;
        for (size_t t = 0; t < T; t++) {
            int32_t acc[PW] = {0};
            const uint8_t *xr = xq + t * ldq;
            for (size_t c = 0; c < ncols; c++)
                for (size_t k = 0; k < w->K; k++)
                    acc[c] += (int32_t)xr[k] * w->panels[w_at(w, n0 + c, k)];
            store_scalar(acc, sx[t], zx[t], w->scale + n0, w->colsum + n0, y + t * ldy + n0,
                         ncols);
        }
    }
}

#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>
#define HAVE_SIMD_I8 1

#define AVX2_INLINE static inline __attribute__((always_inline, target("avx2,fma")))
#ifdef RAG_GEMM_I8_EMULATE_VNNI
/* A test build (core/tests/gemm_int8_emu.c): the AVX-512 intrinsics of the VNNI kernel
 * below, and the AVX-VNNI kernel's one VNNI instruction, come from SIMDe, portable C that
 * computes what each instruction does, so that both kernels' code runs (slowly) on a CPU
 * with AVX2 only and is checked there against the scalar one. Only the names those kernels
 * use are redirected; the AVX2 code stays native. */
#include <simde/x86/avx512.h>
#define _mm256_dpbusd_avx_epi32 emu_dpbusd_avx
#define AVX_VNNI_TARGET "avx2,fma"
#define __m512 simde__m512
#define __m512i simde__m512i
#define __mmask16 simde__mmask16
#define _mm512_set1_ps simde_mm512_set1_ps
#define _mm512_set1_epi32 simde_mm512_set1_epi32
#define _mm512_setzero_si512 simde_mm512_setzero_si512
#define _mm512_load_si512 simde_mm512_load_si512
#define _mm512_loadu_si512 simde_mm512_loadu_si512
#define _mm512_store_si512 simde_mm512_store_si512
#define _mm512_loadu_ps simde_mm512_loadu_ps
#define _mm512_maskz_loadu_ps emu_maskz_loadu_ps
#define _mm512_mask_storeu_ps emu_mask_storeu_ps
#define _mm512_cvtepi32_ps emu_cvtepi32_ps
#define _mm512_sub_epi32 simde_mm512_sub_epi32
#define _mm512_mullo_epi32 simde_mm512_mullo_epi32
#define _mm512_mul_ps simde_mm512_mul_ps
#define _mm512_fmadd_ps emu_fmadd_ps
#define _mm512_dpbusd_epi32 simde_mm512_dpbusd_epi32
#define VNNI_TARGET "avx2,fma"
/* Lane by lane as the instructions define them: the three this SIMDe (0.7.4) lacks (masked
 * lanes neither read nor written), and a fused multiply-add with one rounding, which
 * SIMDe's portable one is only when the compiler contracts it. */
static inline simde__m512 emu_maskz_loadu_ps(simde__mmask16 m, const float *p)
{
    float f[16] = {0};
    for (int i = 0; i < 16; i++)
        if (m >> i & 1)
            f[i] = p[i];
    return simde_mm512_loadu_ps(f);
}
static inline void emu_mask_storeu_ps(float *p, simde__mmask16 m, simde__m512 v)
{
    float f[16];
    simde_mm512_storeu_ps(f, v);
    for (int i = 0; i < 16; i++)
        if (m >> i & 1)
            p[i] = f[i];
}
static inline simde__m512 emu_fmadd_ps(simde__m512 a, simde__m512 b, simde__m512 c)
{
    float fa[16], fb[16], fc[16];
    simde_mm512_storeu_ps(fa, a);
    simde_mm512_storeu_ps(fb, b);
    simde_mm512_storeu_ps(fc, c);
    for (int i = 0; i < 16; i++)
        fc[i] = fmaf(fa[i], fb[i], fc[i]);
    return simde_mm512_loadu_ps(fc);
}
static inline simde__m512 emu_cvtepi32_ps(simde__m512i v)
{
    int32_t n[16];
    float f[16];
    simde_mm512_storeu_si512(n, v);
    for (int i = 0; i < 16; i++)
        f[i] = (float)n[i];
    return simde_mm512_loadu_ps(f);
}
/* The VEX vpdpbusd (ymm) on SIMDe's: the same operation, whose operands are SIMDe's own
 * 256-bit type here (this file is compiled without -mavx2), hence the copies. */
static inline __attribute__((target("avx2,fma"))) __m256i emu_dpbusd_avx(__m256i src, __m256i a,
                                                                          __m256i b)
{
    _Static_assert(sizeof(simde__m256i) == sizeof(__m256i), "SIMDe's __m256i differs");
    simde__m256i s, u, v;
    memcpy(&s, &src, sizeof s);
    memcpy(&u, &a, sizeof u);
    memcpy(&v, &b, sizeof v);
    s = simde_mm256_dpbusd_epi32(s, u, v);
    memcpy(&src, &s, sizeof src);
    return src;
}
#else
#define VNNI_TARGET "avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma"
#define AVX_VNNI_TARGET "avxvnni,avx2,fma"
#endif
#define VNNI_INLINE static inline __attribute__((always_inline, target(VNNI_TARGET)))

/* ---- AVX2 ---- */

/* Quantizes T rows as quantize_scalar does (the same rint: cvtps rounds to nearest even;
 * the [0, 255] clamp is the packs' saturation), into u8 (width 1) or int16 (width 2) with
 * a stride of ldq elements. */
__attribute__((target("avx2,fma"))) static void quantize_avx2(size_t T, size_t K, const float *x,
                                                              size_t ldx, void *xq, size_t ldq,
                                                              int width, float *sx, int32_t *zx)
{
    const __m256i order = _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7);
    for (size_t t = 0; t < T; t++) {
        const float *r = x + t * ldx;
        __m256 vlo = _mm256_setzero_ps(), vhi = _mm256_setzero_ps();
        size_t k = 0;
        for (; k + 8 <= K; k += 8) {
            __m256 v = _mm256_loadu_ps(r + k);
            vlo = _mm256_min_ps(vlo, v);
            vhi = _mm256_max_ps(vhi, v);
        }
        float l8[8], h8[8], lo = 0, hi = 0, inv;
        _mm256_storeu_ps(l8, vlo);
        _mm256_storeu_ps(h8, vhi);
        for (int i = 0; i < 8; i++) {
            lo = l8[i] < lo ? l8[i] : lo;
            hi = h8[i] > hi ? h8[i] : hi;
        }
        for (; k < K; k++) {
            lo = r[k] < lo ? r[k] : lo;
            hi = r[k] > hi ? r[k] : hi;
        }
        row_params(lo, hi, &sx[t], &inv, &zx[t]);
        const __m256 vinv = _mm256_set1_ps(inv);
        const __m256i vz = _mm256_set1_epi32(zx[t]);
        uint8_t *q8 = (uint8_t *)xq + t * ldq;
        int16_t *q16 = (int16_t *)xq + t * ldq;
        k = 0;
        for (; k + 32 <= K; k += 32) {
            __m256i a[4];
            for (int i = 0; i < 4; i++)
                a[i] = _mm256_add_epi32(
                    _mm256_cvtps_epi32(_mm256_mul_ps(_mm256_loadu_ps(r + k + 8 * i), vinv)), vz);
            /* int16 with lanes interleaved as packs leaves them, then u8 in [0, 255] */
            const __m256i b01 = _mm256_packs_epi32(a[0], a[1]), b23 = _mm256_packs_epi32(a[2], a[3]);
            const __m256i u8 = _mm256_permutevar8x32_epi32(_mm256_packus_epi16(b01, b23), order);
            if (width == 1) {
                _mm256_storeu_si256((__m256i *)(q8 + k), u8);
            } else {
                _mm256_storeu_si256((__m256i *)(q16 + k),
                                    _mm256_cvtepu8_epi16(_mm256_castsi256_si128(u8)));
                _mm256_storeu_si256((__m256i *)(q16 + k + 16),
                                    _mm256_cvtepu8_epi16(_mm256_extracti128_si256(u8, 1)));
            }
        }
        for (; k < K; k++) {
            if (width == 1)
                q8[k] = (uint8_t)quant1(r[k], inv, zx[t]);
            else
                q16[k] = (int16_t)quant1(r[k], inv, zx[t]);
        }
        if (width == 1)
            memset(q8 + K, 0, ldq - K);
        else
            memset(q16 + K, 0, (ldq - K) * 2);
    }
}

/* The epilogue for one row, 8 columns: y += (s_t * s_n) * (float)(acc - z_t * colsum). */
AVX2_INLINE __m256 epi_avx2(__m256i acc, __m256 st, __m256i zt, const float *sn,
                            const int32_t *colsum, __m256 y)
{
    __m256i a = _mm256_sub_epi32(
        acc, _mm256_mullo_epi32(zt, _mm256_loadu_si256((const __m256i *)colsum)));
    return _mm256_fmadd_ps(_mm256_mul_ps(st, _mm256_loadu_ps(sn)), _mm256_cvtepi32_ps(a), y);
}

#define TR2 6 /* rows per block: 6 x 2 accumulators, 2 weight vectors, 1 broadcast */

/* The epilogue of tr rows and one panel (ncols <= PW columns), from their int32 sums. */
static __attribute__((noinline, target("avx2,fma"))) void
store_avx2(int tr, const int32_t (*sums)[PW], const float *sx, const int32_t *zx, const float *sn,
           const int32_t *colsum, float *y, size_t ldy, size_t ncols)
{
    for (int t = 0; t < tr; t++) {
        const __m256 st = _mm256_set1_ps(sx[t]);
        const __m256i zt = _mm256_set1_epi32(zx[t]);
        float *yr = y + (size_t)t * ldy, tmp[PW];
        float *dst = ncols == PW ? yr : tmp;
        if (dst == tmp)
            memcpy(tmp, yr, ncols * sizeof(float));
        for (int h = 0; h < PW; h += 8)
            _mm256_storeu_ps(dst + h,
                             epi_avx2(_mm256_load_si256((const __m256i *)(sums[t] + h)), st, zt,
                                      sn + h, colsum + h, _mm256_loadu_ps(dst + h)));
        if (dst == tmp)
            memcpy(yr, tmp, ncols * sizeof(float));
    }
}

/* The start of a block of tr rows against one panel: sums zeroed, y's rows (far apart and
 * last written long ago) fetched while the sums run. */
AVX2_INLINE void block_start(int tr, __m256i (*acc)[2], const float *y, size_t ldy)
{
#pragma GCC unroll 8
    for (int t = 0; t < tr; t++) {
        acc[t][0] = acc[t][1] = _mm256_setzero_si256();
        _mm_prefetch((const char *)(y + (size_t)t * ldy), _MM_HINT_T0);
        _mm_prefetch((const char *)(y + (size_t)t * ldy + PW - 1), _MM_HINT_T0);
    }
}

/* Its end: the epilogue of the tr rows' sums (16 channels each, two vectors) into y. */
AVX2_INLINE void block_end(int tr, __m256i (*acc)[2], const float *sx, const int32_t *zx,
                           const float *sn, const int32_t *colsum, float *y, size_t ldy,
                           size_t ncols)
{
    int32_t sums[TR2][PW] __attribute__((aligned(32)));
#pragma GCC unroll 8
    for (int t = 0; t < tr; t++) {
        _mm256_store_si256((__m256i *)sums[t], acc[t][0]);
        _mm256_store_si256((__m256i *)(sums[t] + 8), acc[t][1]);
    }
    store_avx2(tr, sums, sx, zx, sn, colsum, y, ldy, ncols);
}

/* tr rows (tr constant after inlining) against one panel (16 channels, two vectors) over
 * the whole K (G2 pairs of k). Per pair of k, the 16 channels' weights are sign-extended
 * to int16 and each row's two int16 values are broadcast: vpmaddwd adds both products
 * into int32 exactly.
 * (vpmaddubsw on the bytes as they are, then vpmaddwd by ones, runs the GEMM 1.2-1.5x
 * faster on Zen 3, but its int16 pair sum saturates at 255 * 127 * 2: exact only with
 * weights of 7 bits or fewer levels of x, which measured below the faithfulness targets.
 * Made exact at full range by storing x as q - 128 and moving its sign onto the weights
 * (vpsignb, |x| <= 128 keeps a pair within 2 * 128 * 127), it gave these integers bit for
 * bit but ran at 0.88-0.94x this kernel's speed: one more instruction per product pair.
 * bench/JOURNAL.md, 2026-12-07, "vpmaddubsw" and "sign".) */
AVX2_INLINE void block_avx2(int tr, size_t G2, const int16_t *xq, size_t ldq, const int8_t *pw,
                            const float *sx, const int32_t *zx, const float *sn,
                            const int32_t *colsum, float *y, size_t ldy, size_t ncols)
{
    __m256i acc[TR2][2];
    block_start(tr, acc, y, ldy);
    for (size_t g = 0; g < G2; g++, pw += 2 * PW) {
        const __m256i w0 = _mm256_cvtepi8_epi16(_mm_load_si128((const __m128i *)pw));
        const __m256i w1 = _mm256_cvtepi8_epi16(_mm_load_si128((const __m128i *)(pw + 16)));
#pragma GCC unroll 8
        for (int t = 0; t < tr; t++) {
            int32_t b2;
            memcpy(&b2, xq + (size_t)t * ldq + 2 * g, 4);
            const __m256i xb = _mm256_set1_epi32(b2);
            acc[t][0] = _mm256_add_epi32(acc[t][0], _mm256_madd_epi16(xb, w0));
            acc[t][1] = _mm256_add_epi32(acc[t][1], _mm256_madd_epi16(xb, w1));
        }
    }
    block_end(tr, acc, sx, zx, sn, colsum, y, ldy, ncols);
}

/* ---- AVX-VNNI ---- */

#define AVX_VNNI_INLINE static inline __attribute__((always_inline, target(AVX_VNNI_TARGET)))

/* tr rows against one panel over the whole K (G groups of 4 k), in the VNNI kernels'
 * layout: per group, the panel's 64 bytes are two vectors of 8 channels x 4 bytes and each
 * row's 4 u8 are broadcast; vpdpbusd (VEX, ymm) adds the four u8 x s8 products of each
 * channel straight into int32 (no intermediate saturation): 32 multiply-adds per
 * instruction, against the AVX2 kernel's 16 and an add. 6 rows x 2 sums, 2 weight vectors
 * and 1 broadcast fill the 16 ymm registers. */
AVX_VNNI_INLINE void block_avx_vnni(int tr, size_t G, const uint8_t *xq, size_t ldq,
                                    const int8_t *pw, const float *sx, const int32_t *zx,
                                    const float *sn, const int32_t *colsum, float *y,
                                    size_t ldy, size_t ncols)
{
    __m256i acc[TR2][2];
    block_start(tr, acc, y, ldy);
    for (size_t g = 0; g < G; g++, pw += 4 * PW) {
        const __m256i w0 = _mm256_load_si256((const __m256i *)pw);
        const __m256i w1 = _mm256_load_si256((const __m256i *)(pw + 32));
#pragma GCC unroll 8
        for (int t = 0; t < tr; t++) {
            int32_t b4;
            memcpy(&b4, xq + (size_t)t * ldq + 4 * g, 4);
            const __m256i xb = _mm256_set1_epi32(b4);
            acc[t][0] = _mm256_dpbusd_avx_epi32(acc[t][0], xb, w0);
            acc[t][1] = _mm256_dpbusd_avx_epi32(acc[t][1], xb, w1);
        }
    }
    block_end(tr, acc, sx, zx, sn, colsum, y, ldy, ncols);
}

/* ---- the one-panel kernels' blocks and loops (AVX2, AVX-VNNI) ---- */

/* Each kernel's row count is its own function, so that GCC keeps one form's registers
 * apart; xq is the block's first row of quantized x (int16 or u8), ldq its stride in
 * those elements, G the groups of k the kernel steps by (pairs or quads). */
typedef void (*block_fn)(size_t G, const void *xq, size_t ldq, const int8_t *pw,
                         const float *sx, const int32_t *zx, const float *sn,
                         const int32_t *colsum, float *y, size_t ldy, size_t ncols);
#define BLOCK_FN(kind, tgt, xtype, tr)                                                         \
    static __attribute__((noinline, target(tgt))) void block_##kind##_##tr(                    \
        size_t G, const void *xq, size_t ldq, const int8_t *pw, const float *sx,               \
        const int32_t *zx, const float *sn, const int32_t *colsum, float *y, size_t ldy,       \
        size_t ncols)                                                                          \
    {                                                                                          \
        block_##kind(tr, G, (const xtype *)xq, ldq, pw, sx, zx, sn, colsum, y, ldy, ncols);    \
    }
#define BLOCK_FNS(kind, tgt, xtype)                                                            \
    BLOCK_FN(kind, tgt, xtype, 1) BLOCK_FN(kind, tgt, xtype, 2) BLOCK_FN(kind, tgt, xtype, 3)  \
    BLOCK_FN(kind, tgt, xtype, 4) BLOCK_FN(kind, tgt, xtype, 5) BLOCK_FN(kind, tgt, xtype, 6)  \
    static const block_fn BLOCKS_##kind[TR2 + 1] = {NULL,            block_##kind##_1,         \
                                                    block_##kind##_2, block_##kind##_3,        \
                                                    block_##kind##_4, block_##kind##_5,        \
                                                    block_##kind##_6};
BLOCK_FNS(avx2, "avx2,fma", int16_t)
BLOCK_FNS(avx_vnni, AVX_VNNI_TARGET, uint8_t)

/* T rows of quantized x (elements of `width` bytes, stride ldq elements) against every
 * panel of W, one panel at a time, through a kernel's blocks. */
static void gemm_panels(const block_fn *blocks, size_t G, size_t T, const rag_gemm_i8_w *w,
                        const void *xq, size_t ldq, size_t width, const float *sx,
                        const int32_t *zx, float *y, size_t ldy)
{
    for (size_t t0 = 0; t0 < T; t0 += MC) {
        const size_t t1 = T - t0 < MC ? T : t0 + MC;
        for (size_t p = 0; p < w->np; p++) {
            const int8_t *pw = w->panels + p * w->K4 * PW;
            const size_t n0 = p * PW, ncols = w->N - n0 < PW ? w->N - n0 : PW;
            for (size_t t = t0; t < t1; t += TR2) {
                const size_t tr = t1 - t < TR2 ? t1 - t : TR2;
                blocks[tr](G, (const char *)xq + t * ldq * width, ldq, pw, sx + t, zx + t,
                           w->scale + n0, w->colsum + n0, y + t * ldy + n0, ldy, ncols);
            }
        }
    }
}

/* ---- AVX-512 VNNI ---- */

#define VP 4  /* panels (16 channels each) per block */
#define VTR 6 /* rows per block: 6 x 4 accumulators, 4 weight vectors, 1 broadcast */

/* The epilogue of tr rows and np4 panels (ncols <= np4 * PW columns), from their sums. */
static __attribute__((noinline, target(VNNI_TARGET))) void
store_vnni(int tr, int np4, const int32_t (*sums)[VP * PW], const float *sx, const int32_t *zx,
           const float *sn, const int32_t *colsum, float *y, size_t ldy, size_t ncols)
{
    for (int t = 0; t < tr; t++) {
        const __m512 st = _mm512_set1_ps(sx[t]);
        const __m512i zt = _mm512_set1_epi32(zx[t]);
        float *yr = y + (size_t)t * ldy;
        for (int v = 0; v < np4; v++) {
            const size_t c = (size_t)v * PW;
            if (c >= ncols)
                break;
            const __mmask16 m = ncols - c >= PW ? (__mmask16)0xFFFF
                                                : (__mmask16)((1u << (ncols - c)) - 1);
            const __m512i a = _mm512_sub_epi32(
                _mm512_load_si512((const void *)(sums[t] + c)),
                _mm512_mullo_epi32(zt, _mm512_loadu_si512(colsum + c)));
            const __m512 r = _mm512_fmadd_ps(_mm512_mul_ps(st, _mm512_loadu_ps(sn + c)),
                                             _mm512_cvtepi32_ps(a), _mm512_maskz_loadu_ps(m, yr + c));
            _mm512_mask_storeu_ps(yr + c, m, r);
        }
    }
}

/* tr rows against np4 (1..VP) consecutive panels over the whole K: vpdpbusd adds the four
 * u8 x s8 products of each channel straight into int32 (no intermediate saturation). */
VNNI_INLINE void block_vnni(int tr, int np4, size_t G, const uint8_t *xq, size_t ldq,
                            const int8_t *pw, size_t pstride, const float *sx, const int32_t *zx,
                            const float *sn, const int32_t *colsum, float *y, size_t ldy,
                            size_t ncols)
{
    __m512i acc[VTR][VP];
#pragma GCC unroll 8
    for (int t = 0; t < tr; t++) {
        for (int v = 0; v < np4; v++)
            acc[t][v] = _mm512_setzero_si512();
        for (int v = 0; v < np4; v++) /* y's rows: fetched while the sums run */
            _mm_prefetch((const char *)(y + (size_t)t * ldy + (size_t)v * PW), _MM_HINT_T0);
        _mm_prefetch((const char *)(y + (size_t)t * ldy + (size_t)np4 * PW - 1), _MM_HINT_T0);
    }
    for (size_t g = 0; g < G; g++, pw += 4 * PW) {
        __m512i wv[VP];
#pragma GCC unroll 8
        for (int v = 0; v < np4; v++)
            wv[v] = _mm512_load_si512((const void *)(pw + (size_t)v * pstride));
#pragma GCC unroll 8
        for (int t = 0; t < tr; t++) {
            int32_t b4;
            memcpy(&b4, xq + (size_t)t * ldq + 4 * g, 4);
            const __m512i xb = _mm512_set1_epi32(b4);
#pragma GCC unroll 8
            for (int v = 0; v < np4; v++)
                acc[t][v] = _mm512_dpbusd_epi32(acc[t][v], xb, wv[v]);
        }
    }
    int32_t sums[VTR][VP * PW] __attribute__((aligned(64)));
#pragma GCC unroll 8
    for (int t = 0; t < tr; t++)
#pragma GCC unroll 8
        for (int v = 0; v < np4; v++)
            _mm512_store_si512((void *)(sums[t] + v * PW), acc[t][v]);
    store_vnni(tr, np4, sums, sx, zx, sn, colsum, y, ldy, ncols);
}

typedef void (*vblock_fn)(size_t G, const uint8_t *xq, size_t ldq, const int8_t *pw,
                          size_t pstride, const float *sx, const int32_t *zx, const float *sn,
                          const int32_t *colsum, float *y, size_t ldy, size_t ncols);
#define BLOCK_VNNI(tr, np4)                                                                    \
    static __attribute__((noinline, target(VNNI_TARGET))) void block_vnni_##tr##_##np4(        \
        size_t G, const uint8_t *xq, size_t ldq, const int8_t *pw, size_t pstride,             \
        const float *sx, const int32_t *zx, const float *sn, const int32_t *colsum, float *y,  \
        size_t ldy, size_t ncols)                                                              \
    {                                                                                          \
        block_vnni(tr, np4, G, xq, ldq, pw, pstride, sx, zx, sn, colsum, y, ldy, ncols);       \
    }
#define BLOCK_VNNI_ROWS(np4)                                                                   \
    BLOCK_VNNI(1, np4) BLOCK_VNNI(2, np4) BLOCK_VNNI(3, np4) BLOCK_VNNI(4, np4)                \
    BLOCK_VNNI(5, np4) BLOCK_VNNI(6, np4)
BLOCK_VNNI_ROWS(1) BLOCK_VNNI_ROWS(2) BLOCK_VNNI_ROWS(3) BLOCK_VNNI_ROWS(4)
#define VROW(np4)                                                                              \
    {NULL, block_vnni_1_##np4, block_vnni_2_##np4, block_vnni_3_##np4, block_vnni_4_##np4,     \
     block_vnni_5_##np4, block_vnni_6_##np4}
/* [panels][rows] */
static const vblock_fn BLOCKS_VNNI[VP + 1][VTR + 1] = {{NULL}, VROW(1), VROW(2), VROW(3),
                                                       VROW(4)};

static void gemm_vnni(size_t T, const rag_gemm_i8_w *w, const uint8_t *xq, size_t ldq,
                      const float *sx, const int32_t *zx, float *y, size_t ldy)
{
    const size_t G = w->K4 / 4, pstride = w->K4 * PW;
    for (size_t t0 = 0; t0 < T; t0 += MC) {
        const size_t t1 = T - t0 < MC ? T : t0 + MC;
        for (size_t p = 0; p < w->np; p += VP) {
            const int np4 = w->np - p < VP ? (int)(w->np - p) : VP;
            const int8_t *pw = w->panels + p * pstride;
            const size_t n0 = p * PW, ncols = w->N - n0 < VP * PW ? w->N - n0 : VP * PW;
            for (size_t t = t0; t < t1; t += VTR) {
                const size_t tr = t1 - t < VTR ? t1 - t : VTR;
                BLOCKS_VNNI[np4][tr](G, xq + t * ldq, ldq, pw, pstride, sx + t, zx + t,
                                     w->scale + n0, w->colsum + n0, y + t * ldy + n0, ldy,
                                     ncols);
            }
        }
    }
}
#endif

/* The kernels this CPU runs (bit isa set) below $RAGCORE_INT8_ISA's limit, detected once:
 * bits 0-3, the best of them in bits 4-5, bit 6 when that variable names no limit. */
static int kernels(void)
{
    static int cached = -1;
    int v = __atomic_load_n(&cached, __ATOMIC_RELAXED);
    if (v >= 0)
        return v;
    unsigned has = 1u << RAG_I8_SCALAR;
#ifdef HAVE_SIMD_I8
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) {
        has |= 1u << RAG_I8_AVX2;
#ifdef RAG_GEMM_I8_EMULATE_VNNI
        has |= 1u << RAG_I8_AVX_VNNI | 1u << RAG_I8_VNNI;
#else
        if (__builtin_cpu_supports("avxvnni"))
            has |= 1u << RAG_I8_AVX_VNNI;
        if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
            __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512vnni"))
            has |= 1u << RAG_I8_VNNI;
#endif
    }
#endif
    static const char *const limits[] = {"scalar", "avx2", "avx-vnni"};
    const char *env = getenv("RAGCORE_INT8_ISA");
    int unknown = env && *env;
    for (unsigned i = 0; env && i < sizeof limits / sizeof *limits; i++)
        if (!strcmp(env, limits[i])) {
            has &= (2u << i) - 1; /* the kernels up to limits[i] */
            unknown = 0;
        }
    int best = RAG_I8_SCALAR;
    for (int i = RAG_I8_SCALAR; i <= RAG_I8_VNNI; i++)
        if (has >> i & 1)
            best = i;
    v = (int)has | best << 4 | unknown << 6;
    __atomic_store_n(&cached, v, __ATOMIC_RELAXED);
    return v;
}

rag_i8_isa rag_gemm_i8_isa(void)
{
    return (rag_i8_isa)(kernels() >> 4 & 3);
}

int rag_gemm_i8_limit_unknown(void)
{
    return kernels() >> 6 & 1;
}

int rag_gemm_i8_isa_has(rag_i8_isa isa)
{
    return (unsigned)isa <= RAG_I8_VNNI && (kernels() >> isa & 1);
}

const char *rag_gemm_i8_isa_name(rag_i8_isa isa)
{
    return isa == RAG_I8_VNNI       ? "AVX-512 VNNI"
           : isa == RAG_I8_AVX_VNNI ? "AVX-VNNI"
           : isa == RAG_I8_AVX2     ? "AVX2"
                                    : "scalar";
}

void rag_gemm_i8_isa_run(rag_i8_isa isa, size_t T, const rag_gemm_i8_w *w, const float *x,
                         size_t ldx, float *y, size_t ldy, void *work)
{
    if (!T || !w->N)
        return;
    /* the kernel asked for when it reads this W's layout and runs here, else the scalar
     * one (which reads either layout) */
    const int layout = isa == RAG_I8_AVX2 ? LAYOUT_PAIRS : LAYOUT_QUADS;
    if (isa != RAG_I8_SCALAR && (w->layout != layout || !rag_gemm_i8_isa_has(isa)))
        isa = RAG_I8_SCALAR;
    const size_t width = isa == RAG_I8_AVX2 ? 2 : 1, ldq = x_stride(w->K, width) / width;
    float *sx = (float *)((char *)work + T * ldq * width);
    int32_t *zx = (int32_t *)(sx + T);
#ifdef HAVE_SIMD_I8
    if (isa != RAG_I8_SCALAR) {
        quantize_avx2(T, w->K, x, ldx, work, ldq, (int)width, sx, zx);
        if (isa == RAG_I8_VNNI)
            gemm_vnni(T, w, work, ldq, sx, zx, y, ldy);
        else if (isa == RAG_I8_AVX_VNNI)
            gemm_panels(BLOCKS_avx_vnni, w->K4 / 4, T, w, work, ldq, width, sx, zx, y, ldy);
        else
            gemm_panels(BLOCKS_avx2, w->K4 / 2, T, w, work, ldq, width, sx, zx, y, ldy);
        return;
    }
#endif
    quantize_scalar(T, w->K, x, ldx, work, ldq, sx, zx);
    gemm_scalar(T, w, work, ldq, sx, zx, y, ldy);
}

void rag_gemm_i8(size_t T, const rag_gemm_i8_w *w, const float *x, size_t ldx, float *y,
                 size_t ldy, void *work)
{
    rag_gemm_i8_isa_run(rag_gemm_i8_isa(), T, w, x, ldx, y, ldy, work);
}
