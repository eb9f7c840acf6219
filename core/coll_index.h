/* coll_index.h - the lifecycle of a collection's vector index: its file, building it from
 * the store, loading and replaying, inserts after a commit, checkpoints and compaction.
 *
 * The index is derived data (core/vindex.c holds FAISS and the file format): the store's
 * vectors can always rebuild it. The first group of functions works on a store alone, so
 * that the facade and the repair of core/check.c build index files the same way; the second
 * works on a collection of an open rag_db. */
#ifndef RAG_COLL_INDEX_H
#define RAG_COLL_INDEX_H

#include "ragcore.h"

#include <stddef.h>
#include <stdint.h>

struct rag_store;
struct rag_vindex;
struct rag_coll;

/* ---- on a store ---------------------------------------------------------------------- */

/* Writes the path of the directory that holds a store's index files ("<dir>/index"). */
void rag_coll_index_dir(const char *dir, char *out, size_t n);

/* Writes the path of collection `coll`'s index file ("<dir>/index/<coll>.idx"). */
void rag_coll_index_path(const char *dir, uint32_t coll, char *out, size_t n);

/* Creates an empty index of `spec` and dimension `dim` with HNSW's search and build depths
 * (<= 0: FAISS's defaults). On failure *out is NULL and the error is returned. */
int rag_coll_index_create(const char *spec, int dim, int ef_search, int ef_construction,
                          struct rag_vindex **out);

/* How rag_coll_index_fill reads the store's vectors. */
typedef struct rag_coll_index_fill_opts {
    uint64_t from;   /* the least chunk id added (0: every vector) */
    size_t batch;    /* vectors per add; an untrained index (IVF, PQ) trains on the first */
    int skip_bad;    /* 1: skip vectors of another dimension or with non-finite values (a
                        repair, which leaves what it could not mend out of the index);
                        0: a vector of another dimension is RAG_ECORRUPT */
} rag_coll_index_fill_opts;

/* Adds to `ix` every stored vector of collection `coll` with id >= o->from, all read from
 * one snapshot. *next receives the store's next chunk id at that snapshot (the coverage of
 * the index once the fill succeeded); *added (may be NULL) the number of vectors added.
 * Errors of the store or of rag_vindex_add (RAG_EINDEX: too few vectors to train) are
 * returned; `ix` then holds the batches added before the failure. */
int rag_coll_index_fill(struct rag_store *st, uint32_t coll, struct rag_vindex *ix,
                        const rag_coll_index_fill_opts *o, uint64_t *next, size_t *added);

/* Deletes collection `coll`'s tombstones with id < below (UINT64_MAX: all) in one write
 * transaction: the index file written last no longer holds those ids. */
int rag_coll_index_clear_tombs(struct rag_store *st, uint32_t coll, uint64_t below);

/* ---- on a collection of an open rag_db -------------------------------------------------- */

/* Gives a new collection an empty index of the store's spec with the handle's depths,
 * covering every id the store has allocated so far (a new collection has no vectors). */
int rag_coll_index_new(rag_db *db, struct rag_coll *c);

/* Loads a collection's index file, verifies it against the store and replays the vectors
 * committed after its coverage; rebuilds it from the store when the file is missing,
 * damaged or does not match (spec, dimension, a file newer than the store). A collection
 * too small to train its index is left without one (searches scan exactly): RAG_OK. */
int rag_coll_index_load(rag_db *db, struct rag_coll *c);

/* Read-only handle: adds to a collection's index the vectors another process committed
 * after its coverage, holding c->lock exclusively meanwhile. When that fails the
 * collection falls back to exact scans (which read the store); can't fail otherwise.
 * Caller holds db->write_lock. */
void rag_coll_index_catch_up(rag_db *db, struct rag_coll *c);

/* Writes a collection's index file when it changed since the last checkpoint; first
 * rebuilds it from the store (compaction) when `force_rebuild`, when it is unusable, or when
 * its tombstones exceed opts.compact_threshold of its vectors, and then deletes the
 * tombstones the new file no longer holds. A no-op on a read-only handle or a dropped
 * collection. Caller holds db->write_lock. */
int rag_coll_index_checkpoint(rag_db *db, struct rag_coll *c, int force_rebuild);

/* Makes the index and counters reflect a committed write: counts its `ntombs` tombstones,
 * then adds the n new vectors (ids first_id.., n * dim floats) in slices, taking c->lock
 * exclusively only for each slice (searches run in between; ids not added yet are simply
 * not found by the index for a moment). On failure the collection falls back to exact
 * scans until its next checkpoint rebuilds the index; can't fail otherwise. Caller holds
 * db->write_lock (so c->ix is not swapped meanwhile), not c->lock. */
void rag_coll_index_after_commit(rag_db *db, struct rag_coll *c, const float *vecs, size_t n,
                                 uint64_t first_id, uint64_t ntombs);

/* Deletes a dropped collection's index file and frees its index. Caller holds c->lock
 * exclusively. */
void rag_coll_index_drop(rag_db *db, struct rag_coll *c);

/* Erasure: overwrites with zeros, in the collection's index in memory, the vectors of its
 * tombstones (every vector deleted since the index was last compacted), holding c->lock
 * exclusively meanwhile, and marks the index for the next checkpoint. *wiped receives the
 * number of vectors zeroed. RAG_EUNSUPPORTED when the collection has no index in memory
 * or its spec cannot be patched (see rag_vindex_wipe): rebuild it instead. Caller holds
 * db->write_lock. */
int rag_coll_index_wipe_deleted(rag_db *db, struct rag_coll *c, size_t *wiped);

#endif
