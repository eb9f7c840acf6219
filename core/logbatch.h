/* logbatch.h - batches of a replicated log (rag_log_batch): what they hold, their wire
 * format, and the view the ingest pipeline applies (ingest.c). */
#ifndef RAG_LOGBATCH_H
#define RAG_LOGBATCH_H

#include "ragcore.h"

#include <stddef.h>
#include <stdint.h>

/* A batch's chunk ids are its sequence << RAG_LOG_ID_SHIFT plus the chunk's ordinal. */
#define RAG_LOG_ID_SHIFT 24
/* Highest sequence whose chunk ids fit in FAISS's signed 64-bit ids. */
#define RAG_LOG_SEQ_MAX (((uint64_t)1 << (63 - RAG_LOG_ID_SHIFT)) - 1)

enum rag_log_op_kind {
    RAG_LOG_UPSERT = 1,
    RAG_LOG_DELETE = 2,
    RAG_LOG_EXPIRE = 3
};

typedef struct rag_log_chunk {
    uint64_t start, end;         /* byte span in the document's text */
    uint32_t tokens;
    char *heading;               /* owned; "" outside Markdown headings */
} rag_log_chunk;

typedef struct rag_log_op {
    int kind;                    /* enum rag_log_op_kind */
    rag_document doc;            /* upsert: the document as stored (valid_until absolute,
                                  * ttl_seconds 0); delete: the id. Strings in own[]. */
    char *own[5];                /* id, text, title, source, metadata (NULL when absent) */
    int64_t expire_before;       /* expire */
    size_t first, n;             /* upsert: its chunks, chunks[first, first + n) */
} rag_log_op;

struct rag_log_batch {
    rag_embedder *emb;           /* borrowed; NULL for decoded batches */
    int chunk_tokens, chunk_overlap;
    int64_t now;
    int dim;                     /* of vecs; 0 while the batch has no chunk */
    rag_log_op *ops;
    size_t nops, cap_ops;
    rag_log_chunk *chunks;
    size_t nchunks, cap_chunks;
    float *vecs;                 /* nchunks * dim */
    rag_log_dedup_fn dedup;      /* duplicate decision point (rag_log_batch_set_dedup) */
    void *dedup_user;
    unsigned char pii_key[64];   /* pii "hash"'s HMAC key (rag_log_batch_set_pii_key); */
    size_t pii_key_len;          /* 0: none */
};

/* Appends an upsert of d (strings copied; text_len bytes of text, metadata the compact
 * JSON or NULL, valid_until absolute) with room for nchunks chunks: *chunks and *vecs
 * point at the new, zeroed slots (valid until the batch grows again), which the caller
 * fills. Errors: RAG_EINVAL (too many chunks), RAG_ENOMEM. */
int rag_log_batch_push_upsert(rag_log_batch *b, const rag_document *d, size_t text_len,
                              const char *metadata, int64_t valid_until, size_t nchunks,
                              rag_log_chunk **chunks, float **vecs);

/* Drops operations and chunks added after the batch had nops operations and nchunks
 * chunks (undoing a failed add). Can't fail. */
void rag_log_batch_truncate(rag_log_batch *b, size_t nops, size_t nchunks);

/* Decodes rag_log_batch_encode's bytes into a new batch (free with rag_log_batch_free).
 * RAG_ECORRUPT naming what is wrong (magic, version, checksum, a length past the end, a
 * count that does not fit). */
int rag_log_batch_decode(const void *bytes, size_t len, rag_log_batch **out);

#endif
