/* corpus.h - walking a document corpus: files, directories and BEIR-style JSONL(.gz). */
#ifndef RAG_CORPUS_H
#define RAG_CORPUS_H

#include "ragcore.h"

#include <stddef.h>
#include <stdint.h>

typedef struct rag_corpus_options {
    const char *const *include;   /* basename globs; NULL: the built-in text formats */
    size_t n_include;
    const char *const *exclude;   /* globs matched against relative path and basename */
    size_t n_exclude;
} rag_corpus_options;

/* Receives each document. The document and its strings are valid only during the call.
 * Return RAG_OK to continue, anything else to stop the walk (returned by the walk). */
typedef int (*rag_corpus_doc_fn)(void *user, const rag_document *doc);

/* Receives each problem that skips an item ("corpus.jsonl line 12: invalid JSON ...");
 * the walk continues afterwards. */
typedef void (*rag_corpus_err_fn)(void *user, const char *where, int rc, const char *msg);

/* Walks `paths`: regular files by extension (.txt, .md/.markdown, .jsonl, .jsonl.gz;
 * explicit file arguments are read whatever their name says, JSONL when it ends so,
 * text otherwise), directories recursively in name order (hidden entries skipped).
 * Document ids: the path as walked for files, `_id` for JSONL lines. Sources: the
 * absolute path (plus "#<_id>" for JSONL lines). Returns RAG_OK, or the first status a
 * callback returned to stop. Unreadable items go to `err` and are skipped. */
int rag_corpus_walk(const char *const *paths, size_t npaths, const rag_corpus_options *opts,
                    rag_corpus_doc_fn emit, rag_corpus_err_fn err, void *user);

/* Total bytes of the files the walk would read (for progress estimates). */
uint64_t rag_corpus_size(const char *const *paths, size_t npaths, const rag_corpus_options *opts);

/* Bytes consumed so far by the current walk of this thread (compressed bytes for .gz). */
uint64_t rag_corpus_progress(void);

#endif
