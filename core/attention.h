/* attention.h - the encoder's multi-head self-attention over one sequence: per head,
 * softmax(scale * Q Kᵀ) V. */
#ifndef RAG_ATTENTION_H
#define RAG_ATTENTION_H

#include "gemm_small.h" /* rag_gemm_isa */

#include <stddef.h>

/* Floats of work space rag_attention needs for a sequence of up to L tokens, `heads`
 * heads of `head_dim` each (the larger of the two forms' needs). */
size_t rag_attention_work(int L, int heads, int head_dim);

/* Self-attention of one sequence of L >= 1 tokens. Row t of `qkv` (row stride ldq floats)
 * holds the token's queries, keys and values side by side: head h's query at
 * [h * head_dim], its key at [heads * head_dim + h * head_dim], its value at
 * [2 * heads * head_dim + h * head_dim]. Writes head h's context for token t to
 * ctx[t * ldc + h * head_dim .. + head_dim): sum over u of softmax_u(scale q_t . k_u) v_u.
 *
 * Two forms, equal up to float rounding:
 *  - AVX-512 (isa RAG_GEMM_AVX512 on a CPU that has it, head_dim a multiple of 16 up to
 *    64): fused. The sequence's queries and values are first packed per head and its keys
 *    transposed (gathered 16 tokens at a time); then per head and per block of 6 query
 *    rows the scores (6 x L, in L1) and their row maxima are computed in registers,
 *    exponentiated and summed by rag_ops_exp_sum, and multiplied by V in registers, the
 *    sums divided out at the end: no L x L matrix goes through memory, no BLAS call.
 *  - otherwise two cblas_sgemm per head and a softmax pass over the L x L scores.
 * `work` must hold rag_attention_work(L, heads, head_dim) floats. Runs on the calling
 * thread; ctx must not overlap qkv or work. Can't fail. */
void rag_attention(rag_gemm_isa isa, const float *qkv, size_t ldq, int L, int heads,
                   int head_dim, float scale, float *ctx, size_t ldc, float *work);

#endif
