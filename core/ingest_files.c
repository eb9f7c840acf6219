/* ingest_files.c - files and directories into the ingest pipeline (rag_ingest_paths) or to a
 * caller (rag_extract_paths): the corpus walk, boilerplate's first pass, skipped files,
 * input progress. */
#include "ingest_files.h"

#include "corpus.h"
#include "status.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct files_walk {
    rag_ingest_run *run;            /* NULL: extraction only */
    const rag_ingest_options *opts;
    const rag_walk_hooks *hooks;
    int pass;                       /* 1: boilerplate counting, 2: the documents */
    size_t index;                   /* documents delivered so far */
    uint64_t total;                 /* input bytes (progress) */
    rag_document_fn emit;           /* extraction: the caller's receiver */
    void *emit_user;
    int cancelled;
} files_walk;

static int on_doc(void *user, const rag_document *d, const rag_corpus_info *info)
{
    files_walk *w = user;
    if (w->pass == 1)
        return rag_ingest_run_collect(w->run, d, info ? info->group : NULL);
    rag_ingest_src src = {d->source, info ? info->group : NULL, info ? info->pages : NULL,
                          info ? info->npages : 0, 0};
    int rc;
    if (w->hooks && w->hooks->add)
        rc = w->hooks->add(w->hooks->user, d, &src);
    else
        rc = rag_ingest_run_add(w->run, d, w->index, &src, NULL);
    w->index++;
    rag_ingest_run_progress(w->run, rag_corpus_progress(), w->total);
    return rc;
}

static void on_fail(void *user, const char *path, const char *where, int rc, const char *msg)
{
    files_walk *w = user;
    if (w->pass == 1)
        return; /* the second pass reports it */
    if (w->hooks && w->hooks->fail)
        w->hooks->fail(w->hooks->user, path, rc, msg);
    char full[1536];
    snprintf(full, sizeof full, "%s", msg);
    (void)where;
    if (strcmp(where, path) != 0) /* "line N: ..." for a JSONL record */
        snprintf(full, sizeof full, "%s: %s", where + strlen(path) + (where[strlen(path)] == ' '),
                 msg);
    if (rag_ingest_run_skip_file(w->run, path, rc, full) == RAG_ECANCELED)
        w->cancelled = 1;
}

/* The corpus options of an ingest's include and exclude globs. */
static void corpus_options(const rag_ingest_options *o, rag_corpus_options *co)
{
    memset(co, 0, sizeof *co);
    if (o) {
        co->include = o->include;
        co->n_include = o->n_include;
        co->exclude = o->exclude;
        co->n_exclude = o->n_exclude;
    }
}

int rag_ingest_walk(rag_ingest_run *r, const char *const *paths, size_t n,
                    const rag_ingest_options *opts, const rag_walk_hooks *hooks)
{
    files_walk w = {r, opts, hooks, 2, 0, 0, NULL, NULL, 0};
    rag_corpus_options co;
    corpus_options(opts, &co);
    co.emit_info = on_doc;
    co.on_fail = on_fail;
    w.total = rag_corpus_size(paths, n, &co);
    int rc = RAG_OK;
    if (opts && opts->strip_boilerplate) {
        w.pass = 1;
        rc = rag_corpus_walk(paths, n, &co, NULL, NULL, &w);
        w.pass = 2;
    }
    if (rc == RAG_OK)
        rc = rag_corpus_walk(paths, n, &co, NULL, NULL, &w);
    if (rc == RAG_OK && w.cancelled)
        rc = rag_fail(RAG_ECANCELED, "ingest cancelled by the caller");
    return rc;
}

int rag_ingest_paths(rag_db *db, const char *const *paths, size_t n,
                     const rag_ingest_options *opts, rag_ingest_summary *summary)
{
    rag_clear_error();
    if (summary)
        rag_ingest_summary_init(summary);
    if ((!db && !(opts && opts->dry_run)) || (!paths && n))
        return rag_fail(RAG_EINVAL, "rag_ingest_paths: NULL argument");
    for (size_t i = 0; i < n; i++)
        if (!paths[i] || !*paths[i])
            return rag_fail(RAG_EINVAL, "rag_ingest_paths: path %zu is empty", i);
    rag_ingest_run *r = NULL;
    int rc = rag_ingest_run_begin(db, opts, 0, summary, &r);
    if (rc != RAG_OK)
        return rc;
    rc = rag_ingest_walk(r, paths, n, opts, NULL);
    return rag_ingest_run_end(r, rc);
}

/* ---- extraction only ---------------------------------------------------------------------- */

static int extract_doc(void *user, const rag_document *d, const rag_corpus_info *info)
{
    files_walk *w = user;
    (void)info;
    char *meta = NULL;
    int rc = rag_ingest_merge_metadata(w->opts ? w->opts->metadata_json : NULL, d, &meta);
    if (rc != RAG_OK)
        return rc;
    rag_document c = *d;
    if (meta)
        c.metadata_json = meta;
    rc = w->emit(w->emit_user, &c) != 0 ? rag_fail(RAG_ECANCELED, "extraction stopped by the "
                                                   "caller") : RAG_OK;
    free(meta);
    return rc;
}

static void extract_fail(void *user, const char *path, const char *where, int rc, const char *msg)
{
    files_walk *w = user;
    if (!w->opts || !w->opts->on_event || w->cancelled)
        return;
    char full[1536];
    snprintf(full, sizeof full, "%s", msg);
    if (strcmp(where, path) != 0)
        snprintf(full, sizeof full, "%s: %s", where + strlen(path) + (where[strlen(path)] == ' '),
                 msg);
    rag_ingest_event ev;
    memset(&ev, 0, sizeof ev);
    ev.action = RAG_INGEST_SKIPPED;
    ev.id = "";
    ev.path = path;
    ev.reason = full;
    ev.canonical_id = ev.duplicate_kind = "";
    ev.status = rc;
    ev.skip_kind = rag_ingest_skip_kind(rc, full);
    if (w->opts->on_event(w->opts->user, &ev) != 0)
        w->cancelled = 1;
}

int rag_extract_paths(const char *const *paths, size_t n, const rag_ingest_options *opts,
                      rag_document_fn emit, void *user)
{
    rag_clear_error();
    if ((!paths && n) || !emit)
        return rag_fail(RAG_EINVAL, "rag_extract_paths: NULL argument");
    if (opts && opts->version < 1)
        return rag_fail(RAG_EINVAL, "ingest options: version is 0 (call rag_ingest_options_init)");
    files_walk w = {NULL, opts, NULL, 2, 0, 0, emit, user, 0};
    rag_corpus_options co;
    corpus_options(opts, &co);
    co.emit_info = extract_doc;
    co.on_fail = extract_fail;
    int rc = rag_corpus_walk(paths, n, &co, NULL, NULL, &w);
    if (rc == RAG_OK && w.cancelled)
        rc = rag_fail(RAG_ECANCELED, "extraction stopped by the caller");
    return rc;
}
