/* safetensors.h - validating, memory-mapped reader of .safetensors weight files. */
#ifndef RAG_SAFETENSORS_H
#define RAG_SAFETENSORS_H

#include <stddef.h>
#include <stdint.h>

typedef struct rag_safetensors rag_safetensors;

typedef enum {
    RAG_ST_F32, RAG_ST_F16, RAG_ST_BF16, RAG_ST_F64,
    RAG_ST_I64, RAG_ST_I32, RAG_ST_I16, RAG_ST_I8, RAG_ST_U8, RAG_ST_BOOL,
    RAG_ST_U16, RAG_ST_U32, RAG_ST_U64, RAG_ST_F8_E4M3, RAG_ST_F8_E5M2
} rag_st_dtype;

#define RAG_ST_MAX_DIMS 8

typedef struct rag_st_tensor {
    const char *name;          /* as written in the file */
    rag_st_dtype dtype;
    int ndim;
    int64_t shape[RAG_ST_MAX_DIMS];
    const unsigned char *data; /* inside the mapping; valid until rag_st_close */
    size_t nbytes;
} rag_st_tensor;

/* Maps and validates `path`: 8-byte little-endian header length inside the file and at
 * most 100 MB, a JSON object header, known dtypes, non-negative shapes whose byte size
 * (overflow-checked) equals the span of data_offsets, spans inside the data section that
 * tile it exactly (contiguous, no overlap, no gap). Errors: RAG_ENOTFOUND / RAG_EIO (open,
 * map), RAG_ECORRUPT (anything malformed; the message names the file, tensor and field),
 * RAG_ENOMEM. */
int rag_st_open(const char *path, rag_safetensors **out);

size_t rag_st_count(const rag_safetensors *st);
const rag_st_tensor *rag_st_at(const rag_safetensors *st, size_t i);

/* Finds a tensor by name, also trying it with a "bert." prefix added or removed.
 * NULL when absent. */
const rag_st_tensor *rag_st_find(const rag_safetensors *st, const char *name);

/* Copies tensor `name` into out[] as F32 (F32, F16, BF16 and F64 are converted), checking
 * its shape against shape[0..ndim). Errors: RAG_ENOTFOUND (absent), RAG_EUNSUPPORTED
 * (integer or other non-float dtype), RAG_EMISMATCH (shape), each naming the tensor. */
int rag_st_read_f32(const rag_safetensors *st, const char *name, const int64_t *shape, int ndim,
                    float *out);

/* Unmaps the file. NULL is a no-op. */
void rag_st_close(rag_safetensors *st);

/* Half-precision conversions (exposed for tests). */
float rag_f16_to_f32(uint16_t h);
float rag_bf16_to_f32(uint16_t h);

#endif
