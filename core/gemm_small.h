/* gemm_small.h - y += alpha * x * W^T for a few rows of x: W read in place, or pre-packed. */
#ifndef RAG_GEMM_SMALL_H
#define RAG_GEMM_SMALL_H

#include <stddef.h>

/* Kernels, in order of preference; each CPU runs the best one it supports. */
typedef enum {
    RAG_GEMM_SCALAR = 0, /* plain C loop */
    RAG_GEMM_AVX2 = 1,   /* AVX2 + FMA, 8 lanes */
    RAG_GEMM_AVX512 = 2  /* AVX-512F, 16 lanes */
} rag_gemm_isa;

/* The best kernel this CPU runs (detected at run time). Can't fail. */
rag_gemm_isa rag_gemm_small_isa(void);

/* y[t * ldy + n] += alpha * sum_k x[t * ldx + k] * w[n * ldw + k] for t < T, n < N, k < K:
 * cblas_sgemm(RowMajor, NoTrans, Trans, T, N, K, alpha, x, ldx, w, ldw, 1, y, ldy) for a
 * small T (a query's tokens). W is read where it lies, each weight from memory once per
 * call, nothing is packed: a block of 4 W rows stays in L1 while every group of tokens
 * (3 with AVX2, 6 with AVX-512) runs against it, the dot products accumulated lane-wise
 * in registers and summed horizontally at the end, K in chunks of 384; the next block of
 * W is prefetched meanwhile. Any T, N, K (a K tail uses masked loads); T, N or K of 0
 * leave y untouched. Sums in another order than BLAS, so results differ by rounding
 * only. Runs on the calling thread; pointers are borrowed; y must not overlap x or w.
 * Can't fail. */
void rag_gemm_small_nt(size_t T, size_t N, size_t K, float alpha, const float *x, size_t ldx,
                       const float *w, size_t ldw, float *y, size_t ldy);

/* The same with a chosen kernel (lowered to the best this CPU supports), for tests and
 * benchmarks. */
void rag_gemm_small_nt_isa(rag_gemm_isa isa, size_t T, size_t N, size_t K, float alpha,
                           const float *x, size_t ldx, const float *w, size_t ldw, float *y,
                           size_t ldy);

/* W laid out for rag_gemm_small_packed (opaque; built once, read by any thread). */
typedef struct rag_gemm_packed rag_gemm_packed;

/* Copies W[N, K] (row stride ldw) into panels of 64 rows, each stored k-major: one k step
 * of a panel is 64 consecutive floats. Only the AVX-512 kernel reads this layout, so on
 * other CPUs *out is set to NULL and nothing is allocated (callers keep using
 * rag_gemm_small_nt). Returns 0, or -1 when out of memory (*out NULL). */
int rag_gemm_pack(const float *w, size_t N, size_t K, size_t ldw, rag_gemm_packed **out);
void rag_gemm_packed_free(rag_gemm_packed *p);

/* rag_gemm_small_nt's result for a packed W: y[t * ldy + n] += alpha * sum_k x[t * ldx + k]
 * * W[n][k]. Each k step broadcasts one x value per token (6 tokens per register block)
 * against 4 weight vectors: 24 sums of 16 columns each stay in registers, no horizontal
 * sums; K runs in passes of 128 so that a panel's slice stays in L1 across the token
 * groups, while the groups share out the fetch of the next slice into L2. A query's whole
 * encode is 1.2x (21 tokens) to 1.5x (36) faster than on rag_gemm_small_nt; the same at
 * 1-6 tokens (memory bound).
 * Columns past N are never written. Sums in another order than BLAS (rounding only).
 * p must come from rag_gemm_pack; T of 0 leaves y untouched. Can't fail. */
void rag_gemm_small_packed(size_t T, const rag_gemm_packed *p, float alpha, const float *x,
                           size_t ldx, float *y, size_t ldy);

#endif
