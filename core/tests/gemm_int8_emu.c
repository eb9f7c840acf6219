/* gemm_int8_emu.c - core/gemm_int8.c built again with its VNNI kernels on SIMDe, under other names, for test_bert. */
#define RAG_GEMM_I8_EMULATE_VNNI 1
/* the library's names stay the library's: this build's functions get their own */
#define rag_gemm_i8_isa rag_gemm_i8_emu_isa
#define rag_gemm_i8_isa_name rag_gemm_i8_emu_isa_name
#define rag_gemm_i8_isa_has rag_gemm_i8_emu_isa_has
#define rag_gemm_i8_limit_unknown rag_gemm_i8_emu_limit_unknown
#define rag_gemm_i8_pack rag_gemm_i8_emu_pack
#define rag_gemm_i8_pack_isa rag_gemm_i8_emu_pack_isa
#define rag_gemm_i8_free rag_gemm_i8_emu_free
#define rag_gemm_i8_bytes rag_gemm_i8_emu_bytes
#define rag_gemm_i8_work rag_gemm_i8_emu_work
#define rag_gemm_i8 rag_gemm_i8_emu
#define rag_gemm_i8_isa_run rag_gemm_i8_emu_isa_run
#include "gemm_int8.c"

#include "gemm_int8_emu.h"

const gemm_i8_build gemm_i8_vnni_emulated = {"VNNI on SIMDe", rag_gemm_i8_isa, rag_gemm_i8_isa_has,
                                             rag_gemm_i8_pack_isa, rag_gemm_i8_isa_run,
                                             rag_gemm_i8_free};
