/* gemm_int8_emu.h - the int8 GEMM's entry points as a table: the library's, or a second build whose VNNI kernels run on SIMDe. */
#ifndef RAG_GEMM_INT8_EMU_H
#define RAG_GEMM_INT8_EMU_H

#include "gemm_int8.h"

/* One build of core/gemm_int8.c, as test_bert drives it. A packed W belongs to the build
 * that packed it (the two builds' structs are alike, but keep them apart). */
typedef struct {
    const char *what; /* "native" or "VNNI on SIMDe" */
    rag_i8_isa (*isa)(void);
    int (*has)(rag_i8_isa isa);
    int (*pack_isa)(rag_i8_isa isa, const float *w, size_t N, size_t K, size_t ldw,
                    rag_gemm_i8_w **out);
    void (*run)(rag_i8_isa isa, size_t T, const rag_gemm_i8_w *w, const float *x, size_t ldx,
                float *y, size_t ldy, void *work);
    void (*free)(rag_gemm_i8_w *w);
} gemm_i8_build;

/* core/gemm_int8.c built with RAG_GEMM_I8_EMULATE_VNNI (gemm_int8_emu.c): on any CPU with
 * AVX2 and FMA it has every kernel, its best the AVX-512 VNNI one, whose AVX-512
 * instructions SIMDe computes in portable C, as it does the AVX-VNNI kernel's vpdpbusd
 * (the rest of that kernel is native AVX2). Slow; for checking both VNNI kernels' code
 * where no CPU has them. */
extern const gemm_i8_build gemm_i8_vnni_emulated;

#endif
