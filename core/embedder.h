/* embedder.h - the small interface every embedding provider implements (creating, using
 * and freeing an embedder are public: rag_embedder_* in ragcore.h). */
#ifndef RAG_EMBEDDER_H
#define RAG_EMBEDDER_H

#include "ragcore.h"

#include <stddef.h>
#include <stdint.h>

/* Provider operations. `embed` writes n * dim floats (L2-normalised by the caller of
 * rag_embedder_embed, so providers may skip it) and returns RAG_OK or a negative status
 * with rag_fail() detail. `count_tokens` (optional) gives exact token counts for the
 * chunker; `max_tokens` (0: unlimited) is the longest input the model reads. */
typedef struct rag_embedder_ops {
    int (*embed)(rag_embedder *e, const char *const *texts, const size_t *lens, size_t n,
                 int is_query, float *out);
    int (*count_tokens)(rag_embedder *e, const char *text, size_t len);
    void (*destroy)(rag_embedder *e);
} rag_embedder_ops;

struct rag_embedder {
    const rag_embedder_ops *ops;
    char name[128];     /* recorded in the store */
    int dim;
    int max_tokens;     /* 0: no limit */
    char precision[8];  /* a neural model's arithmetic ("fp32", "int8"); "" for others */
    void *impl;         /* provider state */
};

/* Creates the embedder a store recorded under `name` (its "embedder" identity record):
 * as rag_embedder_create, except that a neural model's bare name means fp32, the only
 * precision such names had when they were written (int8 is recorded as "<model>:int8"),
 * whatever the default precision is now. Errors as rag_embedder_create. */
int rag_embedder_create_recorded(const char *name, int dim, rag_embedder **out);

/* How embedder name `asked` (as rag_open_options.embedder takes it) relates to the name a
 * store recorded: RAG_EMBEDDER_SAME when it names that embedder (the same string; a bare
 * model name, which takes the store's precision; or "<model>:fp32" for a bare recorded
 * name), RAG_EMBEDDER_OTHER_PRECISION when it names the same model in the other
 * precision, RAG_EMBEDDER_OTHER otherwise. Can't fail. */
enum { RAG_EMBEDDER_SAME = 0, RAG_EMBEDDER_OTHER = 1, RAG_EMBEDDER_OTHER_PRECISION = 2 };
int rag_embedder_name_compare(const char *asked, const char *recorded);

/* Wraps an application-supplied definition (copied). */
int rag_embedder_from_def(const rag_embedder_def *def, rag_embedder **out);

/* Token count with the provider's tokenizer, or the approximation when it has none. */
int rag_embedder_count_tokens(rag_embedder *e, const char *text, size_t len);

/* L2-normalises v[dim] in place; a zero vector is left as is. Can't fail. */
void rag_l2_normalize(float *v, int dim);

/* Feature-hashing provider (embed_hash.c). */
int rag_embedder_hash_create(int dim, rag_embedder **out);

/* Neural model provider (embed_bert.c): `name` is a known model name (looked up in the
 * model cache) or a path to a Hugging Face model directory, either optionally followed by
 * the precision (":int8", ":fp32"); RAG_ENOTFOUND when it is neither, so the factory can
 * report unknown names. `precision`: "fp32" (float32 weights), "int8" (weights quantized
 * at load, activations per token: 4x less weight memory, vectors within cosine 0.99 of
 * fp32's) or NULL for the name's suffix, else rag_embedder_default_precision(). An int8
 * embedder's name (e->name, which a store records and its embedding cache is keyed by)
 * ends in ":int8", an fp32 one's is the bare model name as before, so that a store's
 * vectors and the queries searched against them come from the same arithmetic, and
 * stores made before int8 existed keep meaning fp32.
 * Errors: RAG_EINVAL (another precision string, or a suffix that contradicts `precision`),
 * RAG_ENOTFOUND, RAG_EIO / RAG_ECORRUPT (model files), RAG_ENOMEM. */
int rag_embedder_bert_create_precision(const char *name, const char *precision,
                                       rag_embedder **out);

/* The precision of a neural model whose name carries none (a new store, a standalone
 * embedder): $RAGCORE_PRECISION when set, else "int8", chosen by the measurements in
 * docs/performance.md. The string is not checked here (creating the embedder does).
 * Can't fail. */
const char *rag_embedder_default_precision(void);

/* Counters of a neural embedder (one made by rag_embedder_bert_create_precision): embed calls,
 * encoder passes (concurrent calls coalesced into one pass count once) and texts encoded. */
void rag_embedder_bert_counters(const rag_embedder *e, uint64_t *calls, uint64_t *passes,
                                uint64_t *texts);

#endif
