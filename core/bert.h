/* bert.h - BERT-family sentence encoder (Hugging Face model directory) on OpenBLAS. */
#ifndef RAG_BERT_H
#define RAG_BERT_H

#include "model_registry.h"
#include "tokenizer.h"

#include <stddef.h>
#include <stdint.h>

typedef struct rag_bert rag_bert;
/* Activations of one forward pass (grown on demand). Each thread that encodes at the same
 * time as others needs its own; the model's weights are shared read-only. */
typedef struct rag_bert_scratch rag_bert_scratch;

/* Loads a Hugging Face BERT model directory: config.json (model_type bert, hidden_act gelu),
 * model.safetensors (F32/F16/BF16, names with or without "bert."), vocab.txt or
 * tokenizer.json, and the sentence-transformers files when present: modules.json +
 * <pooling dir>/config.json choose CLS or mean pooling (default mean),
 * sentence_bert_config.json gives max_seq_length (default min(512, max positions)).
 * Errors: RAG_ENOTFOUND (a required file is missing), RAG_EPARSE (bad config),
 * RAG_EUNSUPPORTED (another architecture or activation), RAG_ECORRUPT / RAG_EMISMATCH
 * (weights), RAG_ENOMEM; the message names the file. */
int rag_bert_load(const char *dir, rag_bert **out);

/* Arithmetic of the encoder's linear layers (LayerNorm, softmax, GELU and attention are
 * float32 either way). */
typedef enum {
    RAG_BERT_FP32 = 0, /* float32 weights: OpenBLAS, or gemm_small.c for a query */
    RAG_BERT_INT8 = 1  /* weights quantized to int8 at load (the float ones freed),
                        * activations per token on the fly: gemm_int8.c */
} rag_bert_precision;

/* rag_bert_load with a chosen precision (rag_bert_load is RAG_BERT_FP32). Errors as
 * rag_bert_load. */
int rag_bert_load_precision(const char *dir, rag_bert_precision precision, rag_bert **out);
rag_bert_precision rag_bert_get_precision(const rag_bert *m);

int rag_bert_dim(const rag_bert *m);
int rag_bert_max_tokens(const rag_bert *m);
rag_pooling rag_bert_pooling(const rag_bert *m);
const rag_tokenizer *rag_bert_tokenizer(const rag_bert *m);

/* Encodes n token sequences (ids[i] of lens[i] ids, [CLS]/[SEP] included, 1 <= lens[i] <=
 * max positions) into out[n * dim]: pooled and L2-normalised. Sequences are sorted by
 * length and packed into batches of about 4096 tokens (fewer with several threads, see
 * rag_bert_set_threads); attention runs over each sequence's own length (no padding).
 * Not thread-safe on one handle (scratch buffers are shared).
 * Errors: RAG_EINVAL (bad length or id), RAG_ENOMEM. */
int rag_bert_encode_ids(rag_bert *m, const int32_t *const *ids, const int *lens, size_t n,
                        float *out);

/* Tokenises (with `prefix` prepended to each text when not NULL, e.g. a query
 * instruction) and encodes n texts. Errors as above. */
int rag_bert_embed(rag_bert *m, const char *const *texts, const size_t *lens, size_t n,
                   const char *prefix, float *out);

/* The same with caller-owned scratch: calls on one model with different scratch objects
 * may run concurrently (the tokenizer and weights are only read). */
rag_bert_scratch *rag_bert_scratch_new(void); /* NULL: out of memory */
void rag_bert_scratch_free(rag_bert_scratch *s);
/* How many extra encoder threads' scratch objects s holds (created by the first call that
 * ran on that many threads). */
int rag_bert_scratch_helpers(const rag_bert_scratch *s);
int rag_bert_encode_ids_with(const rag_bert *m, rag_bert_scratch *s, const int32_t *const *ids,
                             const int *lens, size_t n, float *out);
int rag_bert_embed_with(const rag_bert *m, rag_bert_scratch *s, const char *const *texts,
                        const size_t *lens, size_t n, const char *prefix, float *out);

/* The one threads knob: how many threads encode a call's batches (n <= 0: $RAGCORE_THREADS,
 * else the number of online CPUs; at most 16). A call whose sequences make several batches
 * splits them among that many threads (the caller's and n - 1 started for the call), each
 * with its own scratch; OpenBLAS is set to one thread, so nothing oversubscribes. A call of
 * one batch (a query, a short document) runs on the calling thread. Process-wide. Returns
 * the number set. */
int rag_bert_set_threads(int n);

/* Sets the knob from $RAGCORE_THREADS or the CPU count unless it was set already. Called
 * once by the first rag_bert_load. */
void rag_bert_set_threads_default(void);

/* Batches of at most max_tokens tokens (a query) run the linear layers through the
 * small-T kernels of gemm_small.c, larger ones through cblas_sgemm; 0 turns the small
 * path off. max_tokens < 0: $RAGCORE_SMALL_GEMM when set (0 = off, N = limit), else the
 * measured default: 128 with AVX-512 (weights pre-packed at load, unless
 * $RAGCORE_GEMM_PACK is "0"), 6 on an AMD CPU without AVX-512 (OpenBLAS is faster there
 * from about 8 tokens), 48 otherwise; a model whose weights are not packed never uses the
 * small path past 48. Without AVX2+FMA the limit is always 0. Process-wide; read once per
 * batch, so it may be changed between calls. Returns the limit set. */
int rag_bert_set_small_gemm(int max_tokens);
/* 1 on an AMD x86-64 CPU (the small path's default limit depends on it), else 0. */
int rag_bert_amd_cpu(void);

/* Name of the OpenBLAS kernel set in use (e.g. "SkylakeX"), for benchmarks and reports. */
const char *rag_bert_blas_info(void);

void rag_bert_free(rag_bert *m);

#endif
