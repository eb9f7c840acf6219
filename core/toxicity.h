/* toxicity.h - the toxicity filter's detectors behind one handle (the public rag_toxicity_*
 * calls), and the detectors a store handle loads once and shares between its ingest runs. */
#ifndef RAG_TOXICITY_H
#define RAG_TOXICITY_H

#include "ragcore.h"

struct rag_db;

/* A handle on db's detectors (`detectors` bits; 0: both), each loaded from the model cache
 * on the first call that needs it and kept until rag_close (guarded by db->tox_lock). The
 * handle only borrows them: rag_toxicity_close frees the handle, not the detectors.
 * Errors as rag_toxicity_open. */
int rag_toxicity_for_db(struct rag_db *db, unsigned detectors, rag_toxicity **out);

/* Frees the detectors db loaded (rag_close). */
void rag_toxicity_db_free(struct rag_db *db);

/* The detectors a handle runs (bits). Can't fail. */
unsigned rag_toxicity_detectors(const rag_toxicity *t);

#endif
