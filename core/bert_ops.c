/* bert_ops.c - the encoder's elementwise kernels (softmax, bias + GELU, residual + LayerNorm)
 * in scalar, AVX2+FMA and AVX-512F forms chosen at run time. */
#include "bert_ops.h"

#include <math.h>
#include <stdint.h>
#include <string.h>

/* ---- scalar reference forms ------------------------------------------------------------ */

/* e^x for x <= 0 (clamped at -87, where it underflows): 2^n * p(r) with n = round(x / ln 2),
 * r = x - n ln 2 in two parts, p a degree-7 polynomial (relative error ~2e-7). The vector
 * forms below use the same constants. */
#define EXP_LOG2E 1.44269504088896341f
#define EXP_LN2_HI 0.693359375f
#define EXP_LN2_LO (-2.12194440e-4f)
#define EXP_P0 1.9875691500e-4f
#define EXP_P1 1.3981999507e-3f
#define EXP_P2 8.3334519073e-3f
#define EXP_P3 4.1665795894e-2f
#define EXP_P4 1.6666665459e-1f
#define EXP_P5 5.0000001201e-1f

static inline float exp_approx(float x)
{
    x = fmaxf(x, -87.0f);
    float n = nearbyintf(x * EXP_LOG2E);
    float r = x - n * EXP_LN2_HI - n * EXP_LN2_LO;
    float p = EXP_P0;
    p = p * r + EXP_P1;
    p = p * r + EXP_P2;
    p = p * r + EXP_P3;
    p = p * r + EXP_P4;
    p = p * r + EXP_P5;
    p = p * r * r + r + 1.0f;
    int32_t bits = ((int32_t)n + 127) * (1 << 23);
    float scale;
    memcpy(&scale, &bits, 4);
    return p * scale;
}

/* erf-form GELU: 0.5 v (1 + erf(v / sqrt 2)), erf(z) = 1 - poly(t) e^(-z^2) with
 * t = 1 / (1 + A z) for z >= 0 (Abramowitz & Stegun 7.1.26). */
#define GELU_RSQRT2 0.70710678118654752f
#define GELU_A 0.3275911f
#define GELU_A1 0.254829592f
#define GELU_A2 (-0.284496736f)
#define GELU_A3 1.421413741f
#define GELU_A4 (-1.453152027f)
#define GELU_A5 1.061405429f

static inline float gelu1(float v)
{
    float z = v * GELU_RSQRT2, az = fabsf(z);
    float t = 1.0f / (1.0f + GELU_A * az);
    float poly = t * (GELU_A1 + t * (GELU_A2 + t * (GELU_A3 + t * (GELU_A4 + t * GELU_A5))));
    float e = copysignf(1.0f - poly * exp_approx(-az * az), z);
    return 0.5f * v * (1.0f + e);
}

/* s[j] = e^(s[j] - shift) for j < n; returns the sum. */
static float exp_sum_scalar(float *s, int n, float shift)
{
    float sum = 0;
    for (int j = 0; j < n; j++) {
        s[j] = exp_approx(s[j] - shift);
        sum += s[j];
    }
    return sum;
}

static void softmax_scalar(float *s, int n)
{
    float mx = s[0];
    for (int j = 1; j < n; j++)
        mx = s[j] > mx ? s[j] : mx;
    float inv = 1.0f / exp_sum_scalar(s, n, mx);
    for (int j = 0; j < n; j++)
        s[j] *= inv;
}

static void bias_gelu_scalar(float *x, const float *bias, size_t T, size_t n)
{
    for (size_t t = 0; t < T; t++, x += n)
        for (size_t j = 0; j < n; j++)
            x[j] = gelu1(x[j] + (bias ? bias[j] : 0.0f));
}

static void add_layer_norm_scalar(float *x, const float *res, const float *bias,
                                  const float *g, const float *b, int h, float eps)
{
    float mean = 0, var = 0;
    for (int j = 0; j < h; j++) {
        x[j] += (res ? res[j] : 0.0f) + (bias ? bias[j] : 0.0f);
        mean += x[j];
    }
    mean /= (float)h;
    for (int j = 0; j < h; j++)
        var += (x[j] - mean) * (x[j] - mean);
    var /= (float)h;
    float inv = 1.0f / sqrtf(var + eps);
    for (int j = 0; j < h; j++)
        x[j] = (x[j] - mean) * inv * g[j] + b[j];
}

#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>
#define HAVE_SIMD_OPS 1

/* ---- AVX2 + FMA: 8 lanes, scalar tails ---------------------------------------------------- */

__attribute__((target("avx2,fma"))) static inline __m256 exp8(__m256 x)
{
    x = _mm256_max_ps(x, _mm256_set1_ps(-87.0f));
    __m256 n = _mm256_round_ps(_mm256_mul_ps(x, _mm256_set1_ps(EXP_LOG2E)),
                               _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m256 r = _mm256_fnmadd_ps(n, _mm256_set1_ps(EXP_LN2_HI), x);
    r = _mm256_fnmadd_ps(n, _mm256_set1_ps(EXP_LN2_LO), r);
    __m256 p = _mm256_set1_ps(EXP_P0);
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(EXP_P1));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(EXP_P2));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(EXP_P3));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(EXP_P4));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(EXP_P5));
    p = _mm256_fmadd_ps(_mm256_mul_ps(p, r), r, _mm256_add_ps(r, _mm256_set1_ps(1.0f)));
    __m256i e = _mm256_slli_epi32(_mm256_add_epi32(_mm256_cvtps_epi32(n), _mm256_set1_epi32(127)), 23);
    return _mm256_mul_ps(p, _mm256_castsi256_ps(e));
}

__attribute__((target("avx2,fma"))) static inline float hsum8(__m256 v)
{
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

__attribute__((target("avx2,fma"))) static float exp_sum_avx2(float *s, int n, float shift)
{
    __m256 acc = _mm256_setzero_ps(), sh = _mm256_set1_ps(shift);
    int j = 0;
    for (; j + 8 <= n; j += 8) {
        __m256 e = exp8(_mm256_sub_ps(_mm256_loadu_ps(s + j), sh));
        _mm256_storeu_ps(s + j, e);
        acc = _mm256_add_ps(acc, e);
    }
    return hsum8(acc) + exp_sum_scalar(s + j, n - j, shift);
}

__attribute__((target("avx2,fma"))) static void softmax_avx2(float *s, int n)
{
    __m256 mx8 = _mm256_set1_ps(s[0]);
    int j = 0;
    for (; j + 8 <= n; j += 8)
        mx8 = _mm256_max_ps(mx8, _mm256_loadu_ps(s + j));
    float lanes[8], mx = s[0];
    _mm256_storeu_ps(lanes, mx8);
    for (int k = 0; k < 8; k++)
        mx = lanes[k] > mx ? lanes[k] : mx;
    for (; j < n; j++)
        mx = s[j] > mx ? s[j] : mx;
    const float inv = 1.0f / exp_sum_avx2(s, n, mx);
    __m256 inv8 = _mm256_set1_ps(inv);
    for (j = 0; j + 8 <= n; j += 8)
        _mm256_storeu_ps(s + j, _mm256_mul_ps(_mm256_loadu_ps(s + j), inv8));
    for (; j < n; j++)
        s[j] *= inv;
}

__attribute__((target("avx2,fma"))) static void bias_gelu_avx2(float *x, const float *bias,
                                                               size_t T, size_t n)
{
    const __m256 sign = _mm256_set1_ps(-0.0f), one = _mm256_set1_ps(1.0f);
    for (size_t t = 0; t < T; t++, x += n) {
        size_t j = 0;
        for (; j + 8 <= n; j += 8) {
            __m256 v = _mm256_loadu_ps(x + j);
            if (bias)
                v = _mm256_add_ps(v, _mm256_loadu_ps(bias + j));
            __m256 z = _mm256_mul_ps(v, _mm256_set1_ps(GELU_RSQRT2));
            __m256 az = _mm256_andnot_ps(sign, z);
            __m256 tt = _mm256_div_ps(one, _mm256_fmadd_ps(_mm256_set1_ps(GELU_A), az, one));
            __m256 p = _mm256_set1_ps(GELU_A5);
            p = _mm256_fmadd_ps(p, tt, _mm256_set1_ps(GELU_A4));
            p = _mm256_fmadd_ps(p, tt, _mm256_set1_ps(GELU_A3));
            p = _mm256_fmadd_ps(p, tt, _mm256_set1_ps(GELU_A2));
            p = _mm256_fmadd_ps(p, tt, _mm256_set1_ps(GELU_A1));
            p = _mm256_mul_ps(p, tt);
            __m256 ex = exp8(_mm256_sub_ps(_mm256_setzero_ps(), _mm256_mul_ps(az, az)));
            __m256 e = _mm256_fnmadd_ps(p, ex, one);
            e = _mm256_or_ps(e, _mm256_and_ps(z, sign));
            _mm256_storeu_ps(x + j, _mm256_mul_ps(_mm256_mul_ps(_mm256_set1_ps(0.5f), v),
                                                  _mm256_add_ps(one, e)));
        }
        for (; j < n; j++)
            x[j] = gelu1(x[j] + (bias ? bias[j] : 0.0f));
    }
}

__attribute__((target("avx2,fma"))) static void add_layer_norm_avx2(float *x, const float *res,
                                                                    const float *bias,
                                                                    const float *g,
                                                                    const float *b, int h,
                                                                    float eps)
{
    __m256 acc = _mm256_setzero_ps();
    int j = 0;
    float mean, var;
    for (; j + 8 <= h; j += 8) {
        __m256 v = _mm256_loadu_ps(x + j);
        if (res)
            v = _mm256_add_ps(v, _mm256_loadu_ps(res + j));
        if (bias)
            v = _mm256_add_ps(v, _mm256_loadu_ps(bias + j));
        _mm256_storeu_ps(x + j, v);
        acc = _mm256_add_ps(acc, v);
    }
    mean = hsum8(acc);
    for (; j < h; j++) {
        x[j] += (res ? res[j] : 0.0f) + (bias ? bias[j] : 0.0f);
        mean += x[j];
    }
    mean /= (float)h;
    __m256 m8 = _mm256_set1_ps(mean);
    acc = _mm256_setzero_ps();
    for (j = 0; j + 8 <= h; j += 8) {
        __m256 d = _mm256_sub_ps(_mm256_loadu_ps(x + j), m8);
        acc = _mm256_fmadd_ps(d, d, acc);
    }
    var = hsum8(acc);
    for (; j < h; j++)
        var += (x[j] - mean) * (x[j] - mean);
    var /= (float)h;
    float inv = 1.0f / sqrtf(var + eps);
    __m256 i8 = _mm256_set1_ps(inv);
    for (j = 0; j + 8 <= h; j += 8) {
        __m256 d = _mm256_mul_ps(_mm256_sub_ps(_mm256_loadu_ps(x + j), m8), i8);
        _mm256_storeu_ps(x + j, _mm256_fmadd_ps(d, _mm256_loadu_ps(g + j), _mm256_loadu_ps(b + j)));
    }
    for (; j < h; j++)
        x[j] = (x[j] - mean) * inv * g[j] + b[j];
}

/* ---- AVX-512F: 16 lanes, masked tails ------------------------------------------------------ */

#define A512 __attribute__((target("avx512f")))

/* Lanes [0, k) of a 16-lane mask (0 <= k <= 16). */
A512 static inline __mmask16 lanes_mask(int k)
{
    return (__mmask16)(k >= 16 ? 0xFFFFu : (1u << k) - 1u);
}

A512 static inline __m512 exp16(__m512 x)
{
    x = _mm512_max_ps(x, _mm512_set1_ps(-87.0f));
    __m512 n = _mm512_roundscale_ps(_mm512_mul_ps(x, _mm512_set1_ps(EXP_LOG2E)),
                                    _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m512 r = _mm512_fnmadd_ps(n, _mm512_set1_ps(EXP_LN2_HI), x);
    r = _mm512_fnmadd_ps(n, _mm512_set1_ps(EXP_LN2_LO), r);
    __m512 p = _mm512_set1_ps(EXP_P0);
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(EXP_P1));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(EXP_P2));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(EXP_P3));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(EXP_P4));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(EXP_P5));
    p = _mm512_fmadd_ps(_mm512_mul_ps(p, r), r, _mm512_add_ps(r, _mm512_set1_ps(1.0f)));
    return _mm512_scalef_ps(p, n); /* p * 2^n */
}

A512 static float exp_sum_avx512(float *s, int n, float shift)
{
    const __m512 sh = _mm512_set1_ps(shift);
    __m512 acc = _mm512_setzero_ps();
    for (int j = 0; j < n; j += 16) {
        __mmask16 k = lanes_mask(n - j);
        __m512 e = _mm512_maskz_mov_ps(k, exp16(_mm512_sub_ps(_mm512_maskz_loadu_ps(k, s + j), sh)));
        _mm512_mask_storeu_ps(s + j, k, e);
        acc = _mm512_add_ps(acc, e);
    }
    return _mm512_reduce_add_ps(acc);
}

A512 static void softmax_avx512(float *s, int n)
{
    __m512 mx = _mm512_set1_ps(-INFINITY);
    for (int j = 0; j < n; j += 16) {
        __mmask16 k = lanes_mask(n - j);
        mx = _mm512_mask_max_ps(mx, k, mx, _mm512_maskz_loadu_ps(k, s + j));
    }
    const __m512 inv = _mm512_set1_ps(1.0f / exp_sum_avx512(s, n, _mm512_reduce_max_ps(mx)));
    for (int j = 0; j < n; j += 16) {
        __mmask16 k = lanes_mask(n - j);
        _mm512_mask_storeu_ps(s + j, k, _mm512_mul_ps(_mm512_maskz_loadu_ps(k, s + j), inv));
    }
}

A512 static void bias_gelu_avx512(float *x, const float *bias, size_t T, size_t n)
{
    const __m512 one = _mm512_set1_ps(1.0f), two = _mm512_set1_ps(2.0f);
    for (size_t t = 0; t < T; t++, x += n)
        for (size_t j = 0; j < n; j += 16) {
            __mmask16 k = lanes_mask((int)(n - j < 16 ? n - j : 16));
            __m512 v = _mm512_maskz_loadu_ps(k, x + j);
            if (bias)
                v = _mm512_add_ps(v, _mm512_maskz_loadu_ps(k, bias + j));
            __m512 z = _mm512_mul_ps(v, _mm512_set1_ps(GELU_RSQRT2));
            __m512 az = _mm512_abs_ps(z);
            /* t = 1 / d by a 14-bit reciprocal and one Newton step (~2^-28 relative) */
            __m512 d = _mm512_fmadd_ps(_mm512_set1_ps(GELU_A), az, one);
            __m512 tt = _mm512_rcp14_ps(d);
            tt = _mm512_mul_ps(tt, _mm512_fnmadd_ps(d, tt, two));
            __m512 p = _mm512_set1_ps(GELU_A5);
            p = _mm512_fmadd_ps(p, tt, _mm512_set1_ps(GELU_A4));
            p = _mm512_fmadd_ps(p, tt, _mm512_set1_ps(GELU_A3));
            p = _mm512_fmadd_ps(p, tt, _mm512_set1_ps(GELU_A2));
            p = _mm512_fmadd_ps(p, tt, _mm512_set1_ps(GELU_A1));
            p = _mm512_mul_ps(p, tt);
            __m512 e = _mm512_fnmadd_ps(p, exp16(_mm512_mul_ps(_mm512_sub_ps(_mm512_setzero_ps(), az), az)), one);
            __mmask16 neg = _mm512_cmp_ps_mask(z, _mm512_setzero_ps(), _CMP_LT_OQ);
            e = _mm512_mask_sub_ps(e, neg, _mm512_setzero_ps(), e); /* erf is odd */
            _mm512_mask_storeu_ps(x + j, k, _mm512_mul_ps(_mm512_mul_ps(_mm512_set1_ps(0.5f), v),
                                                          _mm512_add_ps(one, e)));
        }
}

A512 static void add_layer_norm_avx512(float *x, const float *res, const float *bias,
                                       const float *g, const float *b, int h, float eps)
{
    __m512 acc = _mm512_setzero_ps();
    for (int j = 0; j < h; j += 16) {
        __mmask16 k = lanes_mask(h - j);
        __m512 v = _mm512_maskz_loadu_ps(k, x + j);
        if (res)
            v = _mm512_add_ps(v, _mm512_maskz_loadu_ps(k, res + j));
        if (bias)
            v = _mm512_add_ps(v, _mm512_maskz_loadu_ps(k, bias + j));
        _mm512_mask_storeu_ps(x + j, k, v);
        acc = _mm512_add_ps(acc, v);
    }
    const __m512 m16 = _mm512_set1_ps(_mm512_reduce_add_ps(acc) / (float)h);
    acc = _mm512_setzero_ps();
    for (int j = 0; j < h; j += 16) {
        __mmask16 k = lanes_mask(h - j);
        __m512 d = _mm512_maskz_sub_ps(k, _mm512_maskz_loadu_ps(k, x + j), m16);
        acc = _mm512_fmadd_ps(d, d, acc);
    }
    const __m512 i16 = _mm512_set1_ps(1.0f / sqrtf(_mm512_reduce_add_ps(acc) / (float)h + eps));
    for (int j = 0; j < h; j += 16) {
        __mmask16 k = lanes_mask(h - j);
        __m512 d = _mm512_mul_ps(_mm512_sub_ps(_mm512_maskz_loadu_ps(k, x + j), m16), i16);
        _mm512_mask_storeu_ps(x + j, k, _mm512_fmadd_ps(d, _mm512_maskz_loadu_ps(k, g + j),
                                                        _mm512_maskz_loadu_ps(k, b + j)));
    }
}
#endif

/* The requested level, lowered to what this CPU runs. */
static rag_gemm_isa lower(rag_gemm_isa isa)
{
    rag_gemm_isa best = rag_gemm_small_isa();
    return isa < best ? isa : best;
}

void rag_ops_softmax(rag_gemm_isa isa, float *s, int n)
{
    if (n < 1)
        return;
#ifdef HAVE_SIMD_OPS
    switch (lower(isa)) {
    case RAG_GEMM_AVX512: softmax_avx512(s, n); return;
    case RAG_GEMM_AVX2: softmax_avx2(s, n); return;
    default: break;
    }
#else
    (void)lower(isa);
#endif
    softmax_scalar(s, n);
}

float rag_ops_exp_sum(rag_gemm_isa isa, float *s, int n, float shift)
{
    if (n < 1)
        return 0.0f;
#ifdef HAVE_SIMD_OPS
    switch (lower(isa)) {
    case RAG_GEMM_AVX512: return exp_sum_avx512(s, n, shift);
    case RAG_GEMM_AVX2: return exp_sum_avx2(s, n, shift);
    default: break;
    }
#else
    (void)lower(isa);
#endif
    return exp_sum_scalar(s, n, shift);
}

void rag_ops_bias_gelu(rag_gemm_isa isa, float *x, const float *bias, size_t T, size_t n)
{
#ifdef HAVE_SIMD_OPS
    switch (lower(isa)) {
    case RAG_GEMM_AVX512: bias_gelu_avx512(x, bias, T, n); return;
    case RAG_GEMM_AVX2: bias_gelu_avx2(x, bias, T, n); return;
    default: break;
    }
#else
    (void)lower(isa);
#endif
    bias_gelu_scalar(x, bias, T, n);
}

void rag_ops_add_layer_norm(rag_gemm_isa isa, float *x, const float *res, const float *bias,
                            const float *g, const float *b, size_t T, int h, float eps)
{
    const rag_gemm_isa use = lower(isa);
    for (size_t t = 0; t < T; t++) {
        float *row = x + t * (size_t)h;
        const float *r = res ? res + t * (size_t)h : NULL;
#ifdef HAVE_SIMD_OPS
        if (use == RAG_GEMM_AVX512) {
            add_layer_norm_avx512(row, r, bias, g, b, h, eps);
            continue;
        }
        if (use == RAG_GEMM_AVX2) {
            add_layer_norm_avx2(row, r, bias, g, b, h, eps);
            continue;
        }
#else
        (void)use;
#endif
        add_layer_norm_scalar(row, r, bias, g, b, h, eps);
    }
}
