/* corpus.h - walking a document corpus: files (text, Markdown, HTML, PDF), directories and
 * BEIR-style JSONL(.gz). */
#ifndef RAG_CORPUS_H
#define RAG_CORPUS_H

#include "extract.h"
#include "ragcore.h"

#include <stddef.h>
#include <stdint.h>

/* What the walk knows about a document beyond its rag_document. Valid during the call. */
typedef struct rag_corpus_info {
    rag_source_kind kind;   /* how the file was extracted; RAG_SOURCE_TEXT for JSONL records */
    const size_t *pages;    /* PDF: pages[i] is the byte offset in doc->text where page i + 1
                               starts (also stored as metadata {"pages":[...]}); else NULL */
    size_t npages;
    const char *group;      /* documents that share boilerplate: the absolute directory of a
                               file, or the absolute path of a JSONL file for its records */
} rag_corpus_info;

/* Receives each document. The document and its strings are valid only during the call.
 * Return RAG_OK to continue, anything else to stop the walk (returned by the walk). */
typedef int (*rag_corpus_doc_fn)(void *user, const rag_document *doc);

/* Same with the walk's extra knowledge (see rag_corpus_options.emit_info). */
typedef int (*rag_corpus_info_fn)(void *user, const rag_document *doc,
                                  const rag_corpus_info *info);

/* Receives each problem that skips an item ("corpus.jsonl line 12: invalid JSON ...");
 * the walk continues afterwards. */
typedef void (*rag_corpus_err_fn)(void *user, const char *where, int rc, const char *msg);

/* Same with the file the problem is in (`path`, as walked; `where` adds a line number). */
typedef void (*rag_corpus_fail_fn)(void *user, const char *path, const char *where, int rc,
                                   const char *msg);

typedef struct rag_corpus_options {
    const char *const *include;   /* basename globs; NULL: the built-in formats */
    size_t n_include;
    const char *const *exclude;   /* globs matched against relative path and basename */
    size_t n_exclude;
    rag_corpus_info_fn emit_info; /* when set, called for each document instead of `emit`
                                     (which may then be NULL) */
    rag_corpus_fail_fn on_fail;   /* when set, called for each problem instead of `err` */
} rag_corpus_options;

/* Walks `paths`: regular files by extension (.txt, .md/.markdown, .html/.htm/.xhtml, .pdf,
 * .jsonl, .jsonl.gz; explicit file arguments are read whatever their name says, JSONL when
 * it ends so, otherwise by extension or sniffed content), directories recursively in name
 * order (hidden entries skipped). Files go through rag_extract_buffer: UTF-8 or UTF-16 with
 * BOM text, Markdown (YAML front matter as metadata, cut from the text; title from it or
 * the top heading), HTML (visible text with "# " heading lines, format Markdown; title from
 * <title> or <h1>), PDF (text with page offsets in the metadata {"pages":[0,...]}; title
 * from the document info). A file's title falls back to its name. JSONL records: "_id" (or
 * "id"), "text", "title", "source_mtime"/"mtime", "valid_until", "format"; "metadata" (an
 * object) and every other field become the metadata. Document ids: the canonical absolute
 * path for files (the same however the path was given), `_id` for JSONL lines. Sources:
 * the absolute path (plus "#<_id>" for JSONL lines). Returns RAG_OK, or the first status a
 * callback returned to stop. Unreadable items and files the extractor refuses (binary
 * data, unknown encoding, encrypted or image-only PDF, bad front matter) go to `err` (or
 * on_fail) with the reason (rc is the extractor's status) and are skipped; so do files of
 * formats the library does not read (office documents, archives, images: "unsupported
 * format"), in a directory walk only when the built-in formats are walked. */
int rag_corpus_walk(const char *const *paths, size_t npaths, const rag_corpus_options *opts,
                    rag_corpus_doc_fn emit, rag_corpus_err_fn err, void *user);

/* Total bytes of the files the walk would read (for progress estimates). */
uint64_t rag_corpus_size(const char *const *paths, size_t npaths, const rag_corpus_options *opts);

/* Bytes consumed so far by the current walk of this thread (compressed bytes for .gz). */
uint64_t rag_corpus_progress(void);

#endif
