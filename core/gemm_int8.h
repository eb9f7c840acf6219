/* gemm_int8.h - y += x * W^T in int8: W quantized per output channel once, x per row on the fly. */
#ifndef RAG_GEMM_INT8_H
#define RAG_GEMM_INT8_H

#include <stddef.h>
#include <stdint.h>

/* Kernels, in order of preference; each CPU runs the best one it supports. All of them
 * compute the same integers and the same float epilogue, so their results are identical
 * bit for bit: vectors made on one machine match queries encoded on another. The numbers
 * are never stored (a packed W lives in memory only). A CPU may have a kernel without
 * the one below it (AVX-512 VNNI without AVX-VNNI: Ice Lake, Cascade Lake). */
typedef enum {
    RAG_I8_SCALAR = 0,   /* plain C loops */
    RAG_I8_AVX2 = 1,     /* AVX2: vpmaddwd on int16-widened bytes, 8 channels per vector */
    RAG_I8_AVX_VNNI = 2, /* AVX-VNNI: vpdpbusd on ymm (VEX), 8 channels per vector */
    RAG_I8_VNNI = 3      /* AVX-512 VNNI: vpdpbusd on zmm, 16 channels per vector */
} rag_i8_isa;

/* The best kernel this CPU runs, detected once at run time; $RAGCORE_INT8_ISA ("scalar",
 * "avx2", "avx-vnni") lowers it to the best the CPU has at or below that one (never
 * raises it past what the CPU has). Can't fail. */
rag_i8_isa rag_gemm_i8_isa(void);
/* 1 when this CPU runs kernel isa and $RAGCORE_INT8_ISA does not lower past it (the
 * scalar one always), else 0. Can't fail. */
int rag_gemm_i8_isa_has(rag_i8_isa isa);
const char *rag_gemm_i8_isa_name(rag_i8_isa isa);
/* 1 when $RAGCORE_INT8_ISA is set to something that is not one of its values (it is then
 * ignored: the best kernel runs), for rag_kernels to say so. */
int rag_gemm_i8_limit_unknown(void);

/* The numbers (the same for every kernel):
 *  - weights, per output channel n: s_n = max_k |W[n][k]| / 127, q = rint(W / s_n) in
 *    [-127, 127] (a row of zeros gets s_n = 0 and q = 0);
 *  - activations, per row t: lo = min(0, min x), hi = max(0, max x), s_t = (hi - lo) / 255
 *    (1 when the row is all zeros), z_t = rint(-lo / s_t), q = clamp(rint(x / s_t) + z_t,
 *    0, 255): asymmetric u8, so that a one-sided input (GELU's output, the FFN's second
 *    GEMM) keeps all 256 levels;
 *  - y[t][n] += (s_t * s_n) * (float)(sum_k q_x q_w - z_t * sum_k q_w), the sums exact in
 *    int32 (no kernel saturates an intermediate). */

/* W quantized and laid out for the kernels (opaque; built once, read by any thread). */
typedef struct rag_gemm_i8_w rag_gemm_i8_w;

/* Quantizes W[N, K] (row stride ldw) into panels of 16 output channels laid out for this
 * CPU's kernel: for both VNNI kernels (and the scalar one) each group of 4 k holds the 16
 * channels' 4 bytes side by side (64 bytes; the AVX-VNNI kernel reads it as two vectors
 * of 8 channels), for the AVX2 kernel each pair of k holds their 2 bytes (32 bytes); K
 * padded to a multiple of 4 with zeros. Returns 0, or -1 when out of memory (*out NULL). */
int rag_gemm_i8_pack(const float *w, size_t N, size_t K, size_t ldw, rag_gemm_i8_w **out);
/* The same laid out for a chosen kernel (lowered to the best at or below it that
 * rag_gemm_i8_isa_has), for tests and benchmarks. */
int rag_gemm_i8_pack_isa(rag_i8_isa isa, const float *w, size_t N, size_t K, size_t ldw,
                         rag_gemm_i8_w **out);
void rag_gemm_i8_free(rag_gemm_i8_w *w);
/* Bytes held by a packed W (weights, scales and column sums). */
size_t rag_gemm_i8_bytes(const rag_gemm_i8_w *w);

/* Work space rag_gemm_i8 needs for T rows of K inputs, in bytes. */
size_t rag_gemm_i8_work(size_t T, size_t K);

/* y[t * ldy + n] += sum_k x[t * ldx + k] * W[n][k] for t < T, n < N in the numbers above:
 * the T rows of x are quantized into `work` (rag_gemm_i8_work(T, K) bytes, 64-byte
 * aligned), then each panel of W (4 with AVX-512 VNNI) runs against groups of 6 rows
 * with the int32 sums in registers over the whole K, in blocks of 64 rows so that their
 * quantized x stays in L2 while W streams through once per block. Columns past N are
 * never written. T of 0 leaves y untouched. Runs on the calling thread; x, w and work are
 * borrowed; y must not overlap x or work. Can't fail. */
void rag_gemm_i8(size_t T, const rag_gemm_i8_w *w, const float *x, size_t ldx, float *y,
                 size_t ldy, void *work);

/* The same with a chosen kernel; the scalar one when W was packed in another layout
 * than that kernel's or rag_gemm_i8_isa_has(isa) is 0. For tests and benchmarks. */
void rag_gemm_i8_isa_run(rag_i8_isa isa, size_t T, const rag_gemm_i8_w *w, const float *x,
                         size_t ldx, float *y, size_t ldy, void *work);

#endif
