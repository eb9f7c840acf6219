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
    void *impl;         /* provider state */
};

/* Wraps an application-supplied definition (copied). */
int rag_embedder_from_def(const rag_embedder_def *def, rag_embedder **out);

/* Token count with the provider's tokenizer, or the approximation when it has none. */
int rag_embedder_count_tokens(rag_embedder *e, const char *text, size_t len);

/* L2-normalises v[dim] in place; a zero vector is left as is. Can't fail. */
void rag_l2_normalize(float *v, int dim);

/* Feature-hashing provider (embed_hash.c). */
int rag_embedder_hash_create(int dim, rag_embedder **out);

/* Neural model provider (embed_bert.c): `name` is a known model name (looked up in the
 * model cache) or a path to a Hugging Face model directory. RAG_ENOTFOUND when `name`
 * is neither, so the factory can report unknown names. */
int rag_embedder_bert_create(const char *name, rag_embedder **out);

/* Counters of a neural embedder (one made by rag_embedder_bert_create): embed calls,
 * encoder passes (concurrent calls coalesced into one pass count once) and texts encoded. */
void rag_embedder_bert_counters(const rag_embedder *e, uint64_t *calls, uint64_t *passes,
                                uint64_t *texts);

#endif
