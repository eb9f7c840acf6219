/* cmd_ingest.c - `ragcore ingest`: walk a corpus, clean it (ingest_hygiene.c) and store it in
 * batches with progress and a summary that counts every decision. */
#include "cli.h"

#include "chunker.h"
#include "corpus.h"
#include "db.h"
#include "ingest_hygiene.h"
#include "ragcore.h"
#include "store.h"

#include <errno.h>
#include <getopt.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#define MAX_GLOBS 64
#define PII_KEY_BYTES 32
#define AUX_CONFIG "config"     /* aux table of store-wide settings: "pii.key" */
#define AUX_SOURCES "sources"   /* aux table of per-source records: "dup:<coll>/<id>" */
#define PII_KEY_NAME "pii.key"

/* Why items were skipped, as counted in the summary. */
enum { SKIP_ENCODING, SKIP_BINARY, SKIP_ENCRYPTED, SKIP_NO_TEXT, SKIP_UNSUPPORTED,
       SKIP_MALFORMED, SKIP_IO, SKIP_OTHER, SKIP_NREASONS };
static const char *const skip_names[SKIP_NREASONS] = {
    "encoding", "binary", "encrypted", "no_text_layer", "unsupported", "malformed", "io", "other"};

typedef struct batch_doc {
    rag_document doc;
    char *id, *text, *title, *source, *meta;
} batch_doc;

/* A pending write to aux table "sources" (val NULL: delete), committed with each batch. */
typedef struct aux_op {
    char *key, *val;
    size_t klen, vlen;
} aux_op;

/* One per-document decision listed by --verbose. */
typedef struct ingest_event {
    const char *action;   /* static string */
    char *id, *detail;
} ingest_event;

typedef struct ingest_state {
    rag_db *db;           /* NULL in a dry run */
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
    /* hygiene */
    ingest_hygiene *hy;
    hygiene_dup_mode dup_mode;
    int pass;                       /* 1: collecting boilerplate lines, 2: ingesting */
    int dry_run, verbose;
    rag_chunker_config est;         /* dry run: chunk count estimate */
    uint64_t skips[SKIP_NREASONS], skipped, ingest_errors;
    uint64_t filtered, dup_skipped, dup_flagged, dup_records, stale_removed;
    int have_dup_records;           /* the store may hold "dup:" records of this collection */
    aux_op *ops;
    size_t nops, cap_ops;
    uint64_t ops_puts;
    ingest_event *events;
    size_t nevents, cap_events;
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

/* Records a --verbose event (silently dropped when memory runs out). */
static void add_event(ingest_state *st, const char *action, const char *id, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static void add_event(ingest_state *st, const char *action, const char *id, const char *fmt, ...)
{
    if (!st->verbose)
        return;
    if (st->nevents == st->cap_events) {
        size_t cap = st->cap_events ? st->cap_events * 2 : 64;
        ingest_event *e = realloc(st->events, cap * sizeof *e);
        if (!e)
            return;
        st->events = e;
        st->cap_events = cap;
    }
    char detail[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(detail, sizeof detail, fmt, ap);
    va_end(ap);
    ingest_event *e = &st->events[st->nevents];
    e->action = action;
    e->id = strdup(id);
    e->detail = strdup(detail);
    if (!e->id || !e->detail) {
        free(e->id);
        free(e->detail);
        return;
    }
    st->nevents++;
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

/* Prints "ragcore ingest: <where>: <msg><tail>" with PII masked when --pii is on. */
static void report_problem(ingest_state *st, const char *where, const char *msg, const char *tail)
{
    char line[2048], masked[2048];
    snprintf(line, sizeof line, "%s: %s%s", where, msg, tail);
    hygiene_mask_message(st->hy, line, masked, sizeof masked);
    fprintf(stderr, "%sragcore ingest: %s\n", st->tty ? "\n" : "", masked);
}

static int aux_write(rag_txn *txn, void *user)
{
    ingest_state *st = user;
    for (size_t i = 0; i < st->nops; i++) {
        aux_op *o = &st->ops[i];
        int rc = o->val ? rag_store_kv_put(txn, AUX_SOURCES, o->key, o->klen, o->val, o->vlen)
                        : rag_store_kv_del(txn, AUX_SOURCES, o->key, o->klen);
        if (rc != RAG_OK && !(rc == RAG_ENOTFOUND && !o->val))
            return rc;
    }
    return RAG_OK;
}

/* Commits the pending "sources" records in one write transaction (one sync for all). */
static void aux_flush(ingest_state *st)
{
    if (st->nops == 0)
        return;
    pthread_mutex_lock(&st->db->write_lock);
    int rc = rag_store_write(st->db->st, aux_write, st);
    pthread_mutex_unlock(&st->db->write_lock);
    if (rc == RAG_OK) {
        st->dup_records += st->ops_puts;
    } else {
        cli_error("ingest", "cannot record %llu duplicates in the store: %s",
                  (unsigned long long)st->ops_puts, rag_errmsg());
        st->errors++;
    }
    for (size_t i = 0; i < st->nops; i++) {
        free(st->ops[i].key);
        free(st->ops[i].val);
    }
    st->nops = 0;
    st->ops_puts = 0;
}

/* Queues a "sources" write; takes ownership of val (NULL: a delete). */
static int aux_queue(ingest_state *st, const char *key, size_t klen, char *val)
{
    if (st->nops == st->cap_ops) {
        size_t cap = st->cap_ops ? st->cap_ops * 2 : 64;
        aux_op *o = realloc(st->ops, cap * sizeof *o);
        if (!o) {
            free(val);
            return RAG_ENOMEM;
        }
        st->ops = o;
        st->cap_ops = cap;
    }
    aux_op *o = &st->ops[st->nops];
    o->key = dup_or_null(key, klen);
    o->klen = klen;
    o->val = val;
    o->vlen = val ? strlen(val) : 0;
    if (!o->key) {
        free(val);
        return RAG_ENOMEM;
    }
    st->nops++;
    st->ops_puts += val != NULL;
    return RAG_OK;
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
                report_problem(st, docs[i].source ? docs[i].source : docs[i].id, rag_errmsg(),
                               "; skipped");
                st->errors++;
                st->ingest_errors++;
            } else {
                break;
            }
        }
    }
    free(docs);
    batch_clear(st);
    aux_flush(st);
    if (rc != RAG_OK && rc != RAG_EINVAL && rc != RAG_EPARSE && rc != RAG_EENCODING) {
        cli_error("ingest", "%s: %s (documents committed before this batch are kept)",
                  rag_strerror(rc), rag_errmsg());
        st->fatal = 1;
        return -1;
    }
    progress(st, 0);
    return 0;
}

/* Queues a cleaned document; takes ownership of text, title and meta (freed on failure). */
static int queue_doc(ingest_state *st, const rag_document *d, char *text, size_t tl, char *title,
                     char *meta)
{
    if (st->n == st->cap) {
        size_t cap = st->cap ? st->cap * 2 : 64;
        batch_doc *q = realloc(st->docs, cap * sizeof *q);
        if (!q) {
            free(text);
            free(title);
            free(meta);
            return RAG_ENOMEM;
        }
        st->docs = q;
        st->cap = cap;
    }
    batch_doc *b = &st->docs[st->n];
    memset(b, 0, sizeof *b);
    b->id = dup_or_null(d->id, strlen(d->id));
    b->text = text;
    b->title = title;
    b->source = dup_or_null(d->source, d->source ? strlen(d->source) : 0);
    b->meta = meta;
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

/* "dup:<collection>/<id>" into buf; 0 when it does not fit an aux key (511 bytes). */
static size_t dup_key(const ingest_state *st, const char *id, char *buf, size_t cap)
{
    int n = snprintf(buf, cap, "dup:%s/%s", st->collection, id);
    return n > 0 && (size_t)n < cap && n <= 511 ? (size_t)n : 0;
}

/* Records in aux table "sources" why a duplicate is not in the store (committed with the
 * next batch): "dup:<collection>/<id>" -> {"canonical":..., "kind":..., "similarity":...,
 * "source":...}. */
static void record_duplicate(ingest_state *st, const rag_document *d, const rag_dup_match *m)
{
    char key[600];
    size_t kl = dup_key(st, d->id, key, sizeof key);
    if (!kl)
        return;
    json_t *v = json_pack("{s:s, s:s, s:f, s:s}", "canonical", m->canonical_id, "kind",
                          m->kind == RAG_DUP_EXACT ? "exact" : "near", "similarity",
                          m->similarity, "source", d->source ? d->source : "");
    char *val = v ? json_dumps(v, JSON_COMPACT) : NULL;
    json_decref(v);
    if (val && aux_queue(st, key, kl, val) == RAG_OK)
        st->have_dup_records = 1;
    else
        report_problem(st, d->id, "could not record the duplicate (out of memory)", "");
}

/* A document stored now is no longer a duplicate: removes an old record of it. */
static void clear_duplicate_record(ingest_state *st, const char *id)
{
    char key[600];
    size_t kl = dup_key(st, id, key, sizeof key);
    if (kl)
        aux_queue(st, key, kl, NULL);
}

/* A document this run rejects must not survive from an earlier run under its id (it could
 * hold the raw PII or the duplicate text that was just refused). */
static void remove_stale(ingest_state *st, const char *id)
{
    if (st->dry_run)
        return;
    if (rag_delete(st->db, st->collection, id) == RAG_OK)
        st->stale_removed++;
}

static int on_item(void *user, const rag_document *d, const rag_corpus_info *info)
{
    ingest_state *st = user;
    if (st->pass == 1)
        return hygiene_collect(st->hy, d, info);
    hygiene_result r;
    int rc = hygiene_process(st->hy, d, info, &r);
    if (rc == RAG_ENOMEM || rc == RAG_EIO)
        return rc;
    if (rc != RAG_OK) {
        report_problem(st, d->source ? d->source : d->id, rag_errmsg(), "; skipped");
        st->errors++;
        st->ingest_errors++;
        return RAG_OK;
    }
    const char *dk = r.dup.kind == RAG_DUP_EXACT ? "exact" : "near";
    switch (r.verdict) {
    case HYGIENE_FILTERED:
        st->filtered++;
        add_event(st, "filtered", d->id, "%s", rag_quality_verdict_name(r.quality));
        remove_stale(st, d->id);
        break;
    case HYGIENE_PII_DROPPED:
        add_event(st, "pii-drop", d->id, "%zu findings", r.pii_found);
        remove_stale(st, d->id);
        break;
    case HYGIENE_DUPLICATE:
        st->dup_skipped++;
        add_event(st, "duplicate", d->id, "of %s (%s, similarity %.2f)", r.dup.canonical_id, dk,
                  r.dup.similarity);
        if (!st->dry_run) {
            record_duplicate(st, d, &r.dup);
            if (strcmp(r.dup.canonical_id, d->id) != 0)
                remove_stale(st, d->id);
        }
        break;
    case HYGIENE_STORE:
        if (r.dup.kind != RAG_DUP_NONE) {
            if (st->dup_mode == HYGIENE_DUP_FLAG) {
                st->dup_flagged++;
                if (!st->dry_run)
                    record_duplicate(st, d, &r.dup);
            }
            add_event(st, st->dup_mode == HYGIENE_DUP_FLAG ? "dup-flagged" : "dup-kept", d->id,
                      "of %s (%s, similarity %.2f)", r.dup.canonical_id, dk, r.dup.similarity);
        }
        if (st->dry_run) {
            rag_chunk_list cl = {0};
            st->est.markdown = d->format == RAG_FORMAT_MARKDOWN;
            if (rag_chunk_text(&st->est, r.text, r.len, &cl) == RAG_OK)
                st->chunks += cl.count;
            rag_chunk_list_free(&cl);
            st->documents++;
            st->bytes += r.len;
            add_event(st, "store", d->id, "%zu bytes, %zu pages, %zu PII findings", r.len,
                      info ? info->npages : 0, r.pii_found);
            hygiene_result_free(&r);
            progress(st, 0);
            return RAG_OK;
        }
        if (r.pii_found)
            add_event(st, "pii-masked", d->id, "%zu findings", r.pii_found);
        if (st->have_dup_records && r.dup.kind == RAG_DUP_NONE)
            clear_duplicate_record(st, d->id);
        rc = queue_doc(st, d, r.text, r.len, r.title, r.metadata_json);
        r.text = r.title = r.metadata_json = NULL;
        break;
    }
    hygiene_result_free(&r);
    return rc;
}

/* Sorts a walk problem into a summary reason by its status and the extractor's wording. */
static int skip_reason(int rc, const char *msg)
{
    if (rc == RAG_EENCODING)
        return strncmp(msg, "binary", 6) == 0 ? SKIP_BINARY : SKIP_ENCODING;
    if (rc == RAG_EUNSUPPORTED) {
        if (strncmp(msg, "binary", 6) == 0)
            return SKIP_BINARY;
        if (strncmp(msg, "encrypted", 9) == 0)
            return SKIP_ENCRYPTED;
        if (strstr(msg, "no text layer"))
            return SKIP_NO_TEXT;
        return SKIP_UNSUPPORTED;
    }
    if (rc == RAG_EPARSE)
        return SKIP_MALFORMED;
    if (rc == RAG_EIO)
        return SKIP_IO;
    return SKIP_OTHER;
}

static void on_error(void *user, const char *where, int rc, const char *msg)
{
    ingest_state *st = user;
    st->errors++;
    st->skipped++;
    st->skips[skip_reason(rc, msg)]++;
    report_problem(st, where, msg, "");
}

/* Loads the store's PII hashing key from aux table "config", creating 32 random bytes on
 * first use, so hashed placeholders are stable across runs on one store. */
static int load_pii_key(rag_db *db, unsigned char *key, size_t *klen)
{
    void *v = NULL;
    size_t vl = 0;
    int rc = rag_db_kv_get(db, AUX_CONFIG, PII_KEY_NAME, strlen(PII_KEY_NAME), &v, &vl);
    if (rc == RAG_OK) {
        if (vl < 16 || vl > 64) {
            rag_free(v);
            cli_error("ingest", "the store's PII key has %zu bytes (expected 16..64)", vl);
            return RAG_ECORRUPT;
        }
        memcpy(key, v, vl);
        *klen = vl;
        memset(v, 0, vl);
        rag_free(v);
        return RAG_OK;
    }
    if (rc != RAG_ENOTFOUND) {
        cli_error("ingest", "cannot read the store's PII key: %s", rag_errmsg());
        return rc;
    }
    if (getrandom(key, PII_KEY_BYTES, 0) != PII_KEY_BYTES) {
        cli_error("ingest", "cannot generate a PII key: %s", strerror(errno));
        return RAG_EIO;
    }
    *klen = PII_KEY_BYTES;
    if ((rc = rag_db_kv_put(db, AUX_CONFIG, PII_KEY_NAME, strlen(PII_KEY_NAME), key,
                            PII_KEY_BYTES)) != RAG_OK)
        cli_error("ingest", "cannot store the PII key: %s", rag_errmsg());
    return rc;
}

typedef struct prefix_probe {
    const char *prefix;
    size_t len;
    int found;
} prefix_probe;

/* Looks at the first key at or after the prefix only. */
static int probe_first(void *user, const void *key, size_t klen, const void *val, size_t vlen)
{
    prefix_probe *p = user;
    (void)val;
    (void)vlen;
    p->found = klen >= p->len && memcmp(key, p->prefix, p->len) == 0;
    return 1;
}

/* 1 when aux table "sources" holds any "dup:<collection>/" record. */
static int has_dup_records(ingest_state *st)
{
    char prefix[160];
    snprintf(prefix, sizeof prefix, "dup:%s/", st->collection);
    prefix_probe p = {prefix, strlen(prefix), 0};
    if (rag_db_kv_scan(st->db, AUX_SOURCES, prefix, p.len, probe_first, &p) != RAG_OK)
        return 0;
    return p.found;
}

static void ingest_usage(FILE *out)
{
    fprintf(out,
            "usage: ragcore ingest --db DIR [--collection NAME] [--embedder NAME] [options] PATH...\n"
            "\n"
            "Stores files, directories (recursive) and BEIR-style JSONL corpora (.jsonl, .jsonl.gz\n"
            "with _id, title, text) in the store DIR. Files: .txt (UTF-8, or UTF-16 with BOM),\n"
            ".md/.markdown (headings give each chunk its section path), .html/.htm/.xhtml (visible\n"
            "text; headings kept as Markdown headings; scripts, styles, navigation dropped), .pdf\n"
            "(text per page; metadata {\"pages\":[offsets]} gives the page of a chunk's start).\n"
            "Binary files and unknown encodings are skipped with the reason. An existing document\n"
            "id is replaced. Bad files or lines are reported and skipped; the rest is stored.\n"
            "\n"
            "  --db DIR            store directory (created when absent)\n"
            "  --collection NAME   collection (default: default)\n"
            "  --embedder NAME     embedder of a new store: hash, hash-<dim>, or a model name\n"
            "                      [:int8|:fp32] (encoder precision; default int8, or\n"
            "                      $RAGCORE_PRECISION); an existing store keeps its own\n"
            "  --index SPEC        FAISS index spec of a new store (default HNSW32)\n"
            "  --ef-construction N HNSW build depth of these inserts (default 40): higher\n"
            "                      gives better recall per search cost, slower ingest\n"
            "  --chunk-tokens N    target chunk size in tokens (default 256)\n"
            "  --overlap N         overlap between chunks in tokens (default 32)\n"
            "  --include GLOB      only files whose name matches (repeatable)\n"
            "  --exclude GLOB      skip files or paths that match (repeatable)\n"
            "  --batch N           documents per transaction (default 256)\n"
            "  --json              print the summary as JSON\n"
            "  --quiet             no progress output\n"
            "  --verbose           list every duplicate, filtered, dropped and masked document\n"
            "\n"
            "Corpus hygiene (applied to each document before anything reaches the store):\n"
            "  --pii MODE          personal data and secrets (e-mail, phone, card, IBAN, IP, SSN,\n"
            "                      keys/tokens) in text, title and metadata: off (default; opt in),\n"
            "                      mask ([EMAIL], ...), hash ([EMAIL:<hmac>], stable within the\n"
            "                      store: its key is kept in the store), drop (the whole document\n"
            "                      is not stored). Error messages are masked too when not off;\n"
            "                      document ids and source paths are not.\n"
            "  --near-dup MODE     duplicate documents (same normalised text, or MinHash estimate\n"
            "                      of 3-word-shingle Jaccard >= threshold against an earlier\n"
            "                      document of this run): skip (default; recorded in the store's\n"
            "                      \"sources\" table as dup:<collection>/<id> with the canonical\n"
            "                      id), keep, flag (stored with metadata duplicate_of), off\n"
            "  --near-dup-threshold X  Jaccard threshold in (0, 1] (default 0.8; 0.5 catches\n"
            "                      ~10%% word edits)\n"
            "  --quality           turn on the recommended quality filters: --min-chars 20\n"
            "                      --max-symbol-ratio 0.5 (off by default: nothing is dropped\n"
            "                      for its shape unless asked)\n"
            "  --min-chars N       drop documents with fewer characters (default 0: off)\n"
            "  --max-chars N       drop documents with more characters (default 0: off)\n"
            "  --max-symbol-ratio X  drop documents whose share of non-space characters that are\n"
            "                      not letters or digits exceeds X (default 1: off)\n"
            "  --strip-boilerplate remove lines found in >= 50%% of (and >= 3) documents of one\n"
            "                      directory or JSONL file (reads the corpus twice)\n"
            "  --dry-run           report what would be extracted, filtered, deduplicated and\n"
            "                      masked; opens nothing for writing and stores nothing (--db is\n"
            "                      optional; chunk counts are estimates; hash placeholders use a\n"
            "                      throwaway key)\n"
            "A document rejected by a filter, by --pii drop or as a skipped duplicate also\n"
            "removes an older stored version with the same id. Quality filters judge whole\n"
            "documents; duplicates are found within one run.\n");
}

/* Strict number parsing for options; prints the error naming the option. */
static int parse_long(const char *opt, const char *s, long lo, long hi, long *out)
{
    long long v;
    if (cli_parse_int(s, lo, hi, &v) != 0) {
        cli_error("ingest", "%s expects an integer in %ld..%ld, got '%s'", opt, lo, hi, s);
        return -1;
    }
    *out = (long)v;
    return 0;
}

static int parse_double(const char *opt, const char *s, double lo, double hi, int lo_open,
                        double *out)
{
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (errno || end == s || *end || !(v <= hi) || (lo_open ? !(v > lo) : !(v >= lo))) {
        cli_error("ingest", "%s expects a number in %s%g, %g], got '%s'", opt, lo_open ? "(" : "[",
                  lo, hi, s);
        return -1;
    }
    *out = v;
    return 0;
}

static void print_summary(ingest_state *st, const hygiene_config *hc, double el)
{
    const hygiene_counts *c = hygiene_get_counts(st->hy);
    const rag_quality_stats *q = &c->quality;
    if (st->json) {
        json_t *o = json_object(), *skips = json_object(), *found = json_object();
        for (int i = 0; i < SKIP_NREASONS; i++)
            if (st->skips[i])
                json_object_set_new(skips, skip_names[i], json_integer((json_int_t)st->skips[i]));
        for (int t = 0; t < RAG_PII_NTYPES; t++)
            json_object_set_new(found, rag_pii_type_name((rag_pii_type)t),
                                json_integer((json_int_t)c->pii[t]));
        json_object_set_new(o, "documents", json_integer((json_int_t)st->documents));
        json_object_set_new(o, "replaced", json_integer((json_int_t)st->replaced));
        json_object_set_new(o, "chunks", json_integer((json_int_t)st->chunks));
        json_object_set_new(o, "duplicate_chunks", json_integer((json_int_t)st->duplicates));
        json_object_set_new(o, "bytes", json_integer((json_int_t)st->bytes));
        json_object_set_new(o, "errors", json_integer((json_int_t)st->errors));
        json_object_set_new(o, "elapsed_s", json_real(el));
        json_object_set_new(o, "dry_run", json_boolean(st->dry_run));
        json_object_set_new(o, "documents_seen", json_integer((json_int_t)c->seen));
        json_object_set_new(o, "skipped", json_pack("{s:I, s:o}", "total", (json_int_t)st->skipped,
                                                    "reasons", skips));
        json_object_set_new(o, "ingest_errors", json_integer((json_int_t)st->ingest_errors));
        json_object_set_new(
            o, "duplicates",
            json_pack("{s:s, s:f, s:I, s:I, s:I, s:I, s:I}", "mode",
                      hygiene_dup_mode_name(hc->dup), "threshold", hc->dup_threshold, "exact",
                      (json_int_t)c->dup_exact, "near", (json_int_t)c->dup_near, "skipped",
                      (json_int_t)st->dup_skipped, "flagged", (json_int_t)st->dup_flagged,
                      "recorded", (json_int_t)st->dup_records));
        json_object_set_new(o, "pii",
                            json_pack("{s:s, s:I, s:I, s:o}", "mode",
                                      hc->pii == RAG_PII_OFF    ? "off"
                                      : hc->pii == RAG_PII_MASK ? "mask"
                                      : hc->pii == RAG_PII_HASH ? "hash"
                                                                : "drop",
                                      "documents", (json_int_t)c->pii_documents, "dropped",
                                      (json_int_t)c->pii_dropped, "found", found));
        json_object_set_new(
            o, "quality",
            json_pack("{s:I, s:I, s:I, s:I, s:I}", "checked", (json_int_t)q->checked, "filtered",
                      (json_int_t)st->filtered, "too_short",
                      (json_int_t)q->verdicts[RAG_QUALITY_TOO_SHORT], "too_long",
                      (json_int_t)q->verdicts[RAG_QUALITY_TOO_LONG], "symbols",
                      (json_int_t)q->verdicts[RAG_QUALITY_SYMBOLS]));
        json_object_set_new(o, "boilerplate",
                            json_pack("{s:b, s:I, s:I}", "enabled", hc->strip_boilerplate,
                                      "lines_removed", (json_int_t)q->boilerplate_lines,
                                      "bytes_removed", (json_int_t)q->boilerplate_bytes));
        json_object_set_new(o, "stale_removed", json_integer((json_int_t)st->stale_removed));
        if (st->verbose) {
            json_t *ev = json_array();
            for (size_t i = 0; i < st->nevents; i++)
                json_array_append_new(ev, json_pack("{s:s, s:s, s:s}", "action",
                                                    st->events[i].action, "id", st->events[i].id,
                                                    "detail", st->events[i].detail));
            json_object_set_new(o, "events", ev);
        }
        char *s = json_dumps(o, JSON_COMPACT);
        if (s)
            printf("%s\n", s);
        free(s);
        json_decref(o);
        return;
    }
    if (st->dry_run)
        printf("dry run: would ingest %llu documents, ~%llu chunks (estimated), %.2f MB; "
               "%llu errors skipped; nothing was stored\n",
               (unsigned long long)st->documents, (unsigned long long)st->chunks, st->bytes / 1e6,
               (unsigned long long)st->errors);
    else
        printf("ingested %llu documents (%llu replaced), %llu chunks, %llu duplicate chunks, "
               "%llu errors skipped, %.2f MB in %.2fs (%.0f docs/s, %.0f chunks/s)\n",
               (unsigned long long)st->documents, (unsigned long long)st->replaced,
               (unsigned long long)st->chunks, (unsigned long long)st->duplicates,
               (unsigned long long)st->errors, st->bytes / 1e6, el,
               el > 0 ? st->documents / el : 0, el > 0 ? st->chunks / el : 0);
    printf("  documents: %zu extracted, %llu skipped items", c->seen,
           (unsigned long long)st->skipped);
    const char *sep = " (";
    for (int i = 0; i < SKIP_NREASONS; i++)
        if (st->skips[i]) {
            printf("%s%s %llu", sep, skip_names[i], (unsigned long long)st->skips[i]);
            sep = ", ";
        }
    printf("%s, %llu failed to store\n", *sep == ',' ? ")" : "",
           (unsigned long long)st->ingest_errors);
    printf("  duplicates (%s, threshold %.2f): %zu exact, %zu near; %llu skipped, %llu flagged, "
           "%llu recorded\n",
           hygiene_dup_mode_name(hc->dup), hc->dup_threshold, c->dup_exact, c->dup_near,
           (unsigned long long)st->dup_skipped, (unsigned long long)st->dup_flagged,
           (unsigned long long)st->dup_records);
    printf("  quality: %llu filtered of %zu checked (too_short %zu, too_long %zu, symbols %zu); "
           "boilerplate %s: %zu lines removed (%zu bytes)\n",
           (unsigned long long)st->filtered, q->checked, q->verdicts[RAG_QUALITY_TOO_SHORT],
           q->verdicts[RAG_QUALITY_TOO_LONG], q->verdicts[RAG_QUALITY_SYMBOLS],
           hc->strip_boilerplate ? "on" : "off", q->boilerplate_lines, q->boilerplate_bytes);
    static const char *const modes[] = {"off", "mask", "hash", "drop"};
    printf("  pii (%s): %zu documents with findings", modes[hc->pii], c->pii_documents);
    sep = " (";
    for (int t = 0; t < RAG_PII_NTYPES; t++)
        if (c->pii[t]) {
            printf("%s%s %zu", sep, rag_pii_type_name((rag_pii_type)t), c->pii[t]);
            sep = ", ";
        }
    printf("%s, %zu documents dropped\n", *sep == ',' ? ")" : "", c->pii_dropped);
    if (st->stale_removed)
        printf("  removed %llu older stored versions of rejected documents\n",
               (unsigned long long)st->stale_removed);
    for (size_t i = 0; i < st->nevents; i++)
        printf("  %-11s %s %s\n", st->events[i].action, st->events[i].id, st->events[i].detail);
}

int cmd_ingest(int argc, char **argv)
{
    enum { O_PII = 256, O_NEARDUP, O_NDTHRESH, O_MINC, O_MAXC, O_SYM, O_STRIP, O_DRY, O_VERB,
           O_QUALITY, O_EFC };
    static const struct option longopts[] = {
        {"db", required_argument, 0, 'd'},      {"collection", required_argument, 0, 'c'},
        {"embedder", required_argument, 0, 'e'}, {"index", required_argument, 0, 'x'},
        {"chunk-tokens", required_argument, 0, 't'}, {"overlap", required_argument, 0, 'o'},
        {"include", required_argument, 0, 'i'}, {"exclude", required_argument, 0, 'X'},
        {"batch", required_argument, 0, 'b'},   {"json", no_argument, 0, 'j'},
        {"quiet", no_argument, 0, 'q'},         {"help", no_argument, 0, 'h'},
        {"pii", required_argument, 0, O_PII},   {"near-dup", required_argument, 0, O_NEARDUP},
        {"near-dup-threshold", required_argument, 0, O_NDTHRESH},
        {"min-chars", required_argument, 0, O_MINC}, {"max-chars", required_argument, 0, O_MAXC},
        {"max-symbol-ratio", required_argument, 0, O_SYM}, {"quality", no_argument, 0, O_QUALITY},
        {"strip-boilerplate", no_argument, 0, O_STRIP}, {"dry-run", no_argument, 0, O_DRY},
        {"verbose", no_argument, 0, O_VERB},    {"ef-construction", required_argument, 0, O_EFC},
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
    hygiene_config hc;
    memset(&hc, 0, sizeof hc);
    hc.pii = RAG_PII_OFF;
    hc.dup = HYGIENE_DUP_SKIP;
    hc.dup_threshold = 0.8;
    rag_quality_config_init(&hc.quality);
    /* Quality filters are opt-in (--quality or the individual options). */
    int quality_on = 0, min_set = 0, sym_set = 0;
    int rec_min = hc.quality.min_chars;
    double rec_sym = hc.quality.max_symbol_ratio;
    hc.quality.min_chars = 0;
    hc.quality.max_symbol_ratio = 1.0;
    unsigned char key[64];
    size_t klen = 0;
    long lv;
    long long llv;
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
        case O_EFC:
            if (cli_parse_int(optarg, 1, 100000, &llv) != 0) {
                cli_error("ingest", "--ef-construction must be 1..100000, got '%s'", optarg);
                return CLI_USAGE;
            }
            oo.hnsw_ef_construction = (int)llv;
            break;
        case O_PII:
            if (rag_pii_parse_mode(optarg, &hc.pii) != RAG_OK) {
                cli_error("ingest", "--pii: %s", rag_errmsg());
                return CLI_USAGE;
            }
            break;
        case O_NEARDUP:
            if (hygiene_parse_dup_mode(optarg, &hc.dup) != RAG_OK) {
                cli_error("ingest", "--near-dup: %s", rag_errmsg());
                return CLI_USAGE;
            }
            break;
        case O_NDTHRESH:
            if (parse_double("--near-dup-threshold", optarg, 0, 1, 1, &hc.dup_threshold))
                return CLI_USAGE;
            break;
        case O_MINC:
            if (parse_long("--min-chars", optarg, 0, 1L << 30, &lv))
                return CLI_USAGE;
            hc.quality.min_chars = (int)lv;
            min_set = 1;
            break;
        case O_MAXC:
            if (parse_long("--max-chars", optarg, 0, 1L << 30, &lv))
                return CLI_USAGE;
            hc.quality.max_chars = (int)lv;
            break;
        case O_SYM:
            if (parse_double("--max-symbol-ratio", optarg, 0, 1, 0, &hc.quality.max_symbol_ratio))
                return CLI_USAGE;
            sym_set = 1;
            break;
        case O_QUALITY: quality_on = 1; break;
        case O_STRIP: hc.strip_boilerplate = 1; break;
        case O_DRY: st.dry_run = 1; break;
        case O_VERB: st.verbose = 1; break;
        default: ingest_usage(stderr); return CLI_USAGE;
        }
    }
    if ((!dbdir && !st.dry_run) || optind >= argc) {
        cli_error("ingest", "%s", optind >= argc ? "no PATH to ingest" : "--db DIR is required");
        ingest_usage(stderr);
        return CLI_USAGE;
    }
    if (oo.chunk_tokens < 0 || (oo.chunk_tokens && oo.chunk_tokens < 8)) {
        cli_error("ingest", "--chunk-tokens must be at least 8");
        return CLI_USAGE;
    }
    if (quality_on && !min_set)
        hc.quality.min_chars = rec_min;
    if (quality_on && !sym_set)
        hc.quality.max_symbol_ratio = rec_sym;
    if (hc.quality.max_chars && hc.quality.max_chars < hc.quality.min_chars) {
        cli_error("ingest", "--max-chars %d is below --min-chars %d", hc.quality.max_chars,
                  hc.quality.min_chars);
        return CLI_USAGE;
    }
    st.dup_mode = hc.dup;
    int rc = RAG_OK;
    if (!st.dry_run) {
        rc = rag_open(dbdir, &oo, &st.db);
        if (rc != RAG_OK) {
            cli_open_error("ingest", rc);
            return rc == RAG_EINVAL || rc == RAG_EMISMATCH ? CLI_USAGE : CLI_DATA;
        }
    }
    if (hc.pii == RAG_PII_HASH) {
        if (st.dry_run) {
            klen = PII_KEY_BYTES;
            if (getrandom(key, klen, 0) != (ssize_t)klen) {
                cli_error("ingest", "cannot generate a PII key: %s", strerror(errno));
                return CLI_DATA;
            }
        } else if (load_pii_key(st.db, key, &klen) != RAG_OK) {
            rag_close(st.db);
            return CLI_DATA;
        }
        hc.pii_key = key;
        hc.pii_key_len = klen;
    }
    rc = hygiene_create(&hc, &st.hy);
    memset(key, 0, sizeof key);
    if (rc != RAG_OK) {
        cli_error("ingest", "%s", rag_errmsg());
        rag_close(st.db);
        return CLI_USAGE;
    }
    if (!st.dry_run)
        st.have_dup_records = has_dup_records(&st);
    st.est.target_tokens = oo.chunk_tokens > 0 ? oo.chunk_tokens : 256;
    st.est.overlap_tokens = oo.chunk_overlap > 0 ? oo.chunk_overlap : oo.chunk_overlap < 0 ? 0 : 32;
    if (st.est.overlap_tokens >= st.est.target_tokens)
        st.est.overlap_tokens = st.est.target_tokens / 4;
    rag_corpus_options co = {include, ninc, exclude, nexc, on_item};
    const char *const *paths = (const char *const *)argv + optind;
    size_t npaths = (size_t)(argc - optind);
    st.tty = isatty(2) && !st.quiet;
    st.total_bytes = rag_corpus_size(paths, npaths, &co);
    st.start = now_s();
    if (hc.strip_boilerplate) {
        st.pass = 1; /* problems are reported by the second pass */
        rc = rag_corpus_walk(paths, npaths, &co, NULL, NULL, &st);
    }
    st.pass = 2;
    if (rc == RAG_OK)
        rc = rag_corpus_walk(paths, npaths, &co, NULL, on_error, &st);
    if (rc == RAG_OK && !st.fatal && !st.dry_run)
        flush(&st);
    if (!st.dry_run)
        aux_flush(&st); /* records queued after the last batch, or kept despite a failure */
    batch_clear(&st);
    free(st.docs);
    free(st.ops);
    if (rc != RAG_OK && !st.fatal)
        cli_error("ingest", "%s", rag_errmsg());
    progress(&st, 1);
    int crc = rag_close(st.db);
    if (crc != RAG_OK)
        cli_error("ingest", "checkpoint failed: %s (data is committed; the index is rebuilt "
                  "on next open)", rag_errmsg());
    print_summary(&st, &hc, now_s() - st.start);
    for (size_t i = 0; i < st.nevents; i++) {
        free(st.events[i].id);
        free(st.events[i].detail);
    }
    free(st.events);
    hygiene_free(st.hy);
    if (st.fatal || rc != RAG_OK)
        return CLI_DATA;
    return st.errors ? CLI_DATA : CLI_OK;
}
