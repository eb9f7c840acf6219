/* vindex.h - the vector index of one collection: a FAISS index (IDMap2 over the
 * configured spec, inner product) and its crash-safe file format.
 *
 * Only vindex.c includes FAISS headers. An index is derived data: the store can always
 * rebuild it, so every load failure is reported as RAG_ECORRUPT for the caller to rebuild. */
#ifndef RAG_VINDEX_H
#define RAG_VINDEX_H

#include <stddef.h>
#include <stdint.h>

typedef struct rag_crypt rag_crypt;

typedef struct rag_vindex rag_vindex;

/* Creates an empty index of dimension `dim` from a FAISS factory description such as
 * "HNSW32", "Flat", "SQ8", "HNSW32,SQ8" or "IVF256,Flat" (wrapped in IDMap2, inner-product
 * metric). `ef_search` sets HNSW's search depth (0: leave FAISS's default).
 * Errors: RAG_EINVAL naming the spec when FAISS rejects it. */
int rag_vindex_create(const char *spec, int dim, int ef_search, rag_vindex **out);
void rag_vindex_free(rag_vindex *ix);

/* Changes HNSW's search depth (as ef_search of rag_vindex_create). Not while searches run. */
void rag_vindex_set_ef_search(rag_vindex *ix, int ef_search);

/* Sets HNSW's build depth (efConstruction: candidates examined when linking a new vector;
 * larger gives a better graph, hence better recall at a given ef_search, for slower
 * inserts). Affects vectors added afterwards; a no-op for non-HNSW specs and for values
 * <= 0. Errors: RAG_EINVAL when FAISS rejects it. */
int rag_vindex_set_ef_construction(rag_vindex *ix, int ef_construction);

/* Adds n vectors (n * dim floats) with their ids. An untrained index (IVF, PQ) is
 * trained on these vectors first when there are enough of them (>= rag_vindex_min_train);
 * otherwise RAG_EINDEX. */
int rag_vindex_add(rag_vindex *ix, size_t n, const float *vecs, const int64_t *ids);
int rag_vindex_is_trained(const rag_vindex *ix);
size_t rag_vindex_min_train(const rag_vindex *ix);

/* Searches one query vector for its k nearest (largest inner product). Fills up to k
 * (scores, ids) pairs, best first, and returns how many were found (>= 0) or a negative
 * status. Safe to call from many threads at once while no add runs. */
int rag_vindex_search(const rag_vindex *ix, const float *query, int k, float *scores,
                      int64_t *ids);

/* Number of vectors in the index, and the dimension. */
size_t rag_vindex_count(const rag_vindex *ix);
int rag_vindex_dim(const rag_vindex *ix);
const char *rag_vindex_spec(const rag_vindex *ix);

/* Writes the index to `path` atomically (temporary file, fsync, rename, fsync of the
 * directory) with a header recording `covered` (every vector with an id below it is in
 * the file) and a checksum of the FAISS payload. With `crypt` (an encrypted store) the
 * payload is sealed under the store's current key generation. */
int rag_vindex_save(const rag_vindex *ix, const char *path, uint64_t covered,
                    const rag_crypt *crypt);

/* Loads an index file written by rag_vindex_save. RAG_ENOTFOUND when the file does not
 * exist; RAG_ECORRUPT (with the reason) when it is damaged or was written for another
 * dimension or spec, or when it is sealed and `crypt` (the store's keys, NULL for a plain
 * store) does not open it. *covered receives the recorded position. */
int rag_vindex_load(const char *path, const char *spec, int dim, int ef_search,
                    const rag_crypt *crypt, rag_vindex **out, uint64_t *covered);

/* Whose index a file is: the collection id and the store's random identity (meta
 * "store_id"), recorded in the header of every file written, so that a file copied from
 * another collection or store is recognised and rebuilt instead of served. All zero: not
 * known (files written before identities were recorded). */
typedef struct rag_vindex_identity {
    uint32_t coll;
    unsigned char store[16];
} rag_vindex_identity;

/* Sets the identity recorded by later rag_vindex_save calls. Can't fail. */
void rag_vindex_set_identity(rag_vindex *ix, const rag_vindex_identity *id);
/* The identity of the index: from its file after rag_vindex_load, else as set. */
const rag_vindex_identity *rag_vindex_get_identity(const rag_vindex *ix);
/* 0 when an index of identity `have` may serve `want` (equal, or `have` unknown), else -1
 * with RAG_ECORRUPT's message naming both ("index file '<path>' belongs to collection 2 of
 * store 3f2a..., not collection 1 of store 9b41..."). */
int rag_vindex_identity_check(const rag_vindex_identity *have, const rag_vindex_identity *want,
                              const char *path);

/* Exact top-k by inner product of `query` against n vectors (n * dim floats, row i has
 * id ids[i]). Writes up to k results best first; returns the count. Can't fail. */
int rag_exact_topk(const float *query, const float *vecs, const int64_t *ids, size_t n,
                   int dim, int k, float *scores, int64_t *out_ids);

#endif

/* ---- inspection (appended for check.c) ---------------------------------------------- */

/* Copies the ids of every vector in the index (in insertion order) into a malloc'd array
 * *ids of *n entries (free with free()). RAG_EUNSUPPORTED when the index has no id map. */
int rag_vindex_ids(const rag_vindex *ix, int64_t **ids, size_t *n);

/* Decodes the stored vector of `id` into out[dim] (lossy for quantised specs).
 * RAG_EUNSUPPORTED when the spec cannot reconstruct (IVF without a direct map) or the id
 * is absent. */
int rag_vindex_reconstruct(const rag_vindex *ix, int64_t id, float *out);

/* Copies the stored vector of `id` into out[dim] when the index keeps each vector exactly
 * as added (Flat storage: "Flat", "HNSW32", "HNSW32,Flat") and holds `id`, and returns 1;
 * returns 0, setting no error, for quantised and IVF specs and for an id not (yet) in the
 * index. A search uses it to read its candidates' vectors from memory instead of the
 * store. Safe beside searches; not while an add runs. */
int rag_vindex_vector(const rag_vindex *ix, int64_t id, float *out);

/* ---- erasure (appended for erase.c) -------------------------------------------------- */

/* Overwrites with zeros, in memory, the stored vectors of those ids[0, n) that the index
 * holds; they stay in the graph and the id map (as tombstoned entries do until the next
 * compaction: searches drop deleted ids). Only for specs that keep plain floats (Flat,
 * HNSW<M>): the index is written to a buffer, the vectors' bytes are located there (each
 * checked against its reconstruction), zeroed, and the index is read back from the
 * buffer. *wiped receives how many vectors were zeroed. RAG_EUNSUPPORTED (nothing
 * changed) for other specs or a layout not recognised: the caller rebuilds instead;
 * RAG_ENOMEM; RAG_EINDEX when FAISS fails. Not while searches or adds run. */
int rag_vindex_wipe(rag_vindex *ix, const int64_t *ids, size_t n, size_t *wiped);
