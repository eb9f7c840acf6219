/* ingest_files.h - files and directories into an ingest run (rag_ingest_paths, and the
 * sync of paths), or handed to a caller (rag_extract_paths). */
#ifndef RAG_INGEST_FILES_H
#define RAG_INGEST_FILES_H

#include "ingest.h"
#include "ragcore.h"

/* How a sync takes part in a walk. */
typedef struct rag_walk_hooks {
    /* Receives each extracted document instead of rag_ingest_run_add (NULL: that). */
    int (*add)(void *user, const rag_document *doc, const rag_ingest_src *src);
    /* Told of each file that failed (before it is reported as skipped). */
    void (*fail)(void *user, const char *path, int rc, const char *msg);
    void *user;
} rag_walk_hooks;

/* Walks paths (as rag_ingest_paths documents) into run r: boilerplate's first pass when
 * opts->strip_boilerplate, then every document to r (or hooks->add), every failed file
 * reported as skipped, input progress reported. Returns RAG_OK or the error that stopped
 * the walk (RAG_ECANCELED included). hooks may be NULL. */
int rag_ingest_walk(rag_ingest_run *r, const char *const *paths, size_t n,
                    const rag_ingest_options *opts, const rag_walk_hooks *hooks);

#endif
