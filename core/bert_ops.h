/* bert_ops.h - the encoder's elementwise kernels: softmax, bias + GELU, residual + LayerNorm. */
#ifndef RAG_BERT_OPS_H
#define RAG_BERT_OPS_H

#include "gemm_small.h" /* rag_gemm_isa: the same scalar / AVX2 / AVX-512 levels */

#include <stddef.h>

/* Every kernel has a scalar form (the reference) and AVX2+FMA and AVX-512F forms; `isa` is
 * lowered to what this CPU supports (rag_gemm_small_isa() is the best). The forms differ by
 * float rounding only. All run on the calling thread and can't fail. */

/* In-place softmax of one row of n >= 1 scores. e^x by a degree-7 polynomial (relative
 * error ~2e-7). */
void rag_ops_softmax(rag_gemm_isa isa, float *s, int n);

/* s[j] = e^(s[j] - shift) for j < n, returning the sum: softmax without its max and its
 * normalisation, for callers that have the row's max already and can scale later (shift
 * must be >= every s[j], or e^ may overflow). n < 1: returns 0. */
float rag_ops_exp_sum(rag_gemm_isa isa, float *s, int n, float shift);

/* x[t, j] = gelu(x[t, j] + bias[j]) for T rows of n: the exact erf form of GELU (erf by
 * Abramowitz & Stegun 7.1.26, absolute error <= 1.5e-7). bias may be NULL. */
void rag_ops_bias_gelu(rag_gemm_isa isa, float *x, const float *bias, size_t T, size_t n);

/* x[t] = LayerNorm(x[t] + res[t] + bias) * g + b for T rows of h: the GEMM output, its
 * residual input and the GEMM's bias folded into one pass (res and bias may be NULL).
 * Mean, then the variance of the deviations (two passes, as PyTorch). x and res must not
 * overlap. */
void rag_ops_add_layer_norm(rag_gemm_isa isa, float *x, const float *res, const float *bias,
                            const float *g, const float *b, size_t T, int h, float eps);

#endif
