/* cmd_ingest.c - `ragcore ingest`: walk a corpus and store it in batches with progress. */
#include "cli.h"

#include "corpus.h"
#include "ragcore.h"

#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define MAX_GLOBS 64

typedef struct batch_doc {
    rag_document doc;
    char *id, *text, *title, *source, *meta;
} batch_doc;

typedef struct ingest_state {
    rag_db *db;
    const char *collection;
    batch_doc *docs;
    size_t n, cap;
    size_t batch_docs;
    size_t batch_bytes, bytes_pending;
    /* totals */
    uint64_t documents, replaced, chunks, duplicates, bytes, errors;
    uint64_t total_bytes;
    double start, last_progress;
    int tty, quiet, json;
    int fatal;
} ingest_state;

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

static char *dup_or_null(const char *s, size_t n)
{
    if (!s)
        return NULL;
    char *d = malloc(n + 1);
    if (d) {
        memcpy(d, s, n);
        d[n] = '\0';
    }
    return d;
}

static void batch_clear(ingest_state *st)
{
    for (size_t i = 0; i < st->n; i++) {
        batch_doc *b = &st->docs[i];
        free(b->id);
        free(b->text);
        free(b->title);
        free(b->source);
        free(b->meta);
    }
    st->n = 0;
    st->bytes_pending = 0;
}

static void progress(ingest_state *st, int final)
{
    double t = now_s();
    if (st->quiet || (!final && t - st->last_progress < (st->tty ? 0.2 : 5.0)))
        return;
    st->last_progress = t;
    double el = t - st->start;
    double docs_s = el > 0 ? st->documents / el : 0, chunks_s = el > 0 ? st->chunks / el : 0;
    uint64_t done = rag_corpus_progress();
    double frac = st->total_bytes ? (double)done / st->total_bytes : 0;
    if (frac > 1)
        frac = 1;
    double eta = frac > 0.001 ? el * (1 - frac) / frac : 0;
    if (st->tty) {
        int width = 30, fill = (int)(frac * width);
        fprintf(stderr, "\r[%.*s%*s] %3.0f%% %llu docs %llu chunks  %.0f docs/s %.0f chunks/s  ETA %.0fs ",
                fill, "##############################", width - fill, "", frac * 100,
                (unsigned long long)st->documents, (unsigned long long)st->chunks, docs_s,
                chunks_s, eta);
        if (final)
            fputc('\n', stderr);
    } else if (!final) {
        fprintf(stderr, "ingest: %.0f%% %llu docs %llu chunks %.0f docs/s %.0f chunks/s ETA %.0fs\n",
                frac * 100, (unsigned long long)st->documents, (unsigned long long)st->chunks,
                docs_s, chunks_s, eta);
    }
}

static void count_stats(ingest_state *st, const rag_ingest_stats *s)
{
    st->documents += s->documents;
    st->replaced += s->replaced;
    st->chunks += s->chunks;
    st->duplicates += s->duplicate_chunks;
    st->bytes += s->bytes;
}

/* Stores the pending batch in one transaction; when that fails on bad data, retries the
 * documents one by one so that one bad document costs only itself. */
static int flush(ingest_state *st)
{
    if (st->n == 0)
        return 0;
    rag_document *docs = malloc(st->n * sizeof *docs);
    if (!docs) {
        cli_error("ingest", "out of memory");
        st->fatal = 1;
        return -1;
    }
    for (size_t i = 0; i < st->n; i++)
        docs[i] = st->docs[i].doc;
    rag_ingest_stats s;
    int rc = rag_ingest(st->db, st->collection, docs, st->n, &s);
    if (rc == RAG_OK) {
        count_stats(st, &s);
    } else if (rc == RAG_EINVAL || rc == RAG_EPARSE || rc == RAG_EENCODING) {
        for (size_t i = 0; i < st->n; i++) {
            rc = rag_ingest(st->db, st->collection, &docs[i], 1, &s);
            if (rc == RAG_OK) {
                count_stats(st, &s);
            } else if (rc == RAG_EINVAL || rc == RAG_EPARSE || rc == RAG_EENCODING) {
                fprintf(stderr, "%sragcore ingest: %s: %s; skipped\n", st->tty ? "\n" : "",
                        docs[i].source ? docs[i].source : docs[i].id, rag_errmsg());
                st->errors++;
            } else {
                break;
            }
        }
    }
    free(docs);
    batch_clear(st);
    if (rc != RAG_OK && rc != RAG_EINVAL && rc != RAG_EPARSE && rc != RAG_EENCODING) {
        cli_error("ingest", "%s: %s (documents committed before this batch are kept)",
                  rag_strerror(rc), rag_errmsg());
        st->fatal = 1;
        return -1;
    }
    progress(st, 0);
    return 0;
}

static int on_doc(void *user, const rag_document *d)
{
    ingest_state *st = user;
    if (st->n == st->cap) {
        size_t cap = st->cap ? st->cap * 2 : 64;
        batch_doc *q = realloc(st->docs, cap * sizeof *q);
        if (!q)
            return RAG_ENOMEM;
        st->docs = q;
        st->cap = cap;
    }
    batch_doc *b = &st->docs[st->n];
    memset(b, 0, sizeof *b);
    size_t tl = d->text_len == (size_t)-1 ? strlen(d->text) : d->text_len;
    b->id = dup_or_null(d->id, strlen(d->id));
    b->text = dup_or_null(d->text, tl);
    b->title = dup_or_null(d->title, d->title ? strlen(d->title) : 0);
    b->source = dup_or_null(d->source, d->source ? strlen(d->source) : 0);
    b->meta = dup_or_null(d->metadata_json, d->metadata_json ? strlen(d->metadata_json) : 0);
    b->doc = *d;
    b->doc.id = b->id;
    b->doc.text = b->text;
    b->doc.text_len = tl;
    b->doc.title = b->title;
    b->doc.source = b->source;
    b->doc.metadata_json = b->meta;
    st->n++;
    if (!b->id || !b->text) {
        batch_clear(st);
        return RAG_ENOMEM;
    }
    st->bytes_pending += tl;
    if (st->n >= st->batch_docs || st->bytes_pending >= st->batch_bytes)
        if (flush(st) != 0)
            return RAG_EIO;
    return RAG_OK;
}

static void on_error(void *user, const char *where, int rc, const char *msg)
{
    ingest_state *st = user;
    st->errors++;
    fprintf(stderr, "%sragcore ingest: %s: %s\n", st->tty ? "\n" : "", where, msg);
    (void)rc;
}

static void ingest_usage(FILE *out)
{
    fprintf(out,
            "usage: ragcore ingest --db DIR [--collection NAME] [--embedder NAME] [options] PATH...\n"
            "\n"
            "Stores files (.txt, .md), directories (recursive) and BEIR-style JSONL corpora\n"
            "(.jsonl, .jsonl.gz with _id, title, text) in the store DIR. An existing document id\n"
            "is replaced. Bad files or lines are reported and skipped; the rest is stored.\n"
            "\n"
            "  --db DIR            store directory (created when absent)\n"
            "  --collection NAME   collection (default: default)\n"
            "  --embedder NAME     embedder of a new store: hash, hash-<dim>, or a model name\n"
            "  --index SPEC        FAISS index spec of a new store (default HNSW32)\n"
            "  --chunk-tokens N    target chunk size in tokens (default 256)\n"
            "  --overlap N         overlap between chunks in tokens (default 32)\n"
            "  --include GLOB      only files whose name matches (repeatable)\n"
            "  --exclude GLOB      skip files or paths that match (repeatable)\n"
            "  --batch N           documents per transaction (default 256)\n"
            "  --json              print the summary as JSON\n"
            "  --quiet             no progress output\n");
}

int cmd_ingest(int argc, char **argv)
{
    static const struct option longopts[] = {
        {"db", required_argument, 0, 'd'},      {"collection", required_argument, 0, 'c'},
        {"embedder", required_argument, 0, 'e'}, {"index", required_argument, 0, 'x'},
        {"chunk-tokens", required_argument, 0, 't'}, {"overlap", required_argument, 0, 'o'},
        {"include", required_argument, 0, 'i'}, {"exclude", required_argument, 0, 'X'},
        {"batch", required_argument, 0, 'b'},   {"json", no_argument, 0, 'j'},
        {"quiet", no_argument, 0, 'q'},         {"help", no_argument, 0, 'h'},
        {0, 0, 0, 0}};
    const char *dbdir = NULL, *include[MAX_GLOBS], *exclude[MAX_GLOBS];
    size_t ninc = 0, nexc = 0;
    rag_open_options oo;
    rag_open_options_init(&oo);
    ingest_state st;
    memset(&st, 0, sizeof st);
    st.collection = RAG_DEFAULT_COLLECTION;
    st.batch_docs = 256;
    st.batch_bytes = 8u << 20;
    int opt;
    optind = 1;
    while ((opt = getopt_long(argc, argv, "d:c:e:x:t:o:i:X:b:jqh", longopts, NULL)) != -1) {
        switch (opt) {
        case 'd': dbdir = optarg; break;
        case 'c': st.collection = optarg; break;
        case 'e': oo.embedder = optarg; break;
        case 'x': oo.index_spec = optarg; break;
        case 't': oo.chunk_tokens = atoi(optarg); break;
        case 'o': oo.chunk_overlap = atoi(optarg); if (!oo.chunk_overlap) oo.chunk_overlap = -1; break;
        case 'i':
            if (ninc == MAX_GLOBS) { cli_error("ingest", "too many --include"); return CLI_USAGE; }
            include[ninc++] = optarg;
            break;
        case 'X':
            if (nexc == MAX_GLOBS) { cli_error("ingest", "too many --exclude"); return CLI_USAGE; }
            exclude[nexc++] = optarg;
            break;
        case 'b':
            st.batch_docs = (size_t)atol(optarg);
            if (st.batch_docs < 1 || st.batch_docs > 100000) {
                cli_error("ingest", "--batch must be 1..100000");
                return CLI_USAGE;
            }
            break;
        case 'j': st.json = 1; break;
        case 'q': st.quiet = 1; break;
        case 'h': ingest_usage(stdout); return CLI_OK;
        default: ingest_usage(stderr); return CLI_USAGE;
        }
    }
    if (!dbdir || optind >= argc) {
        cli_error("ingest", "%s", !dbdir ? "--db DIR is required" : "no PATH to ingest");
        ingest_usage(stderr);
        return CLI_USAGE;
    }
    if (oo.chunk_tokens < 0 || (oo.chunk_tokens && oo.chunk_tokens < 8)) {
        cli_error("ingest", "--chunk-tokens must be at least 8");
        return CLI_USAGE;
    }
    int rc = rag_open(dbdir, &oo, &st.db);
    if (rc != RAG_OK) {
        cli_error("ingest", "cannot open store: %s", rag_errmsg());
        return rc == RAG_EINVAL || rc == RAG_EMISMATCH ? CLI_USAGE : CLI_DATA;
    }
    rag_corpus_options co = {include, ninc, exclude, nexc};
    const char *const *paths = (const char *const *)argv + optind;
    size_t npaths = (size_t)(argc - optind);
    st.tty = isatty(2) && !st.quiet;
    st.total_bytes = rag_corpus_size(paths, npaths, &co);
    st.start = now_s();
    rc = rag_corpus_walk(paths, npaths, &co, on_doc, on_error, &st);
    if (rc == RAG_OK && !st.fatal)
        flush(&st);
    batch_clear(&st);
    free(st.docs);
    if (rc != RAG_OK && !st.fatal)
        cli_error("ingest", "%s", rag_errmsg());
    progress(&st, 1);
    int crc = rag_close(st.db);
    if (crc != RAG_OK)
        cli_error("ingest", "checkpoint failed: %s (data is committed; the index is rebuilt "
                  "on next open)", rag_errmsg());
    double el = now_s() - st.start;
    if (st.json) {
        printf("{\"documents\":%llu,\"replaced\":%llu,\"chunks\":%llu,\"duplicate_chunks\":%llu,"
               "\"bytes\":%llu,\"errors\":%llu,\"elapsed_s\":%.3f}\n",
               (unsigned long long)st.documents, (unsigned long long)st.replaced,
               (unsigned long long)st.chunks, (unsigned long long)st.duplicates,
               (unsigned long long)st.bytes, (unsigned long long)st.errors, el);
    } else {
        printf("ingested %llu documents (%llu replaced), %llu chunks, %llu duplicate chunks, "
               "%llu errors skipped, %.2f MB in %.2fs (%.0f docs/s, %.0f chunks/s)\n",
               (unsigned long long)st.documents, (unsigned long long)st.replaced,
               (unsigned long long)st.chunks, (unsigned long long)st.duplicates,
               (unsigned long long)st.errors, st.bytes / 1e6, el, el > 0 ? st.documents / el : 0,
               el > 0 ? st.chunks / el : 0);
    }
    if (st.fatal || rc != RAG_OK)
        return CLI_DATA;
    return st.errors ? CLI_DATA : CLI_OK;
}
