/* ingest.c - the ingest pipeline: validation, the collection's hygiene policy, chunking and
 * embedding, the write transaction of each batch (with the duplicate index), and delete. */
#include "ingest.h"
#include "bytes.h"
#include "chunker.h"
#include "coll_index.h"
#include "db.h"
#include "embcache.h"
#include "embedder.h"
#include "erase.h"
#include "hygiene.h"
#include "hygiene_dedup.h"
#include "hygiene_policy.h"
#include "lexical.h"
#include "logbatch.h"
#include "status.h"
#include "store.h"
#include "text.h"
#include "toxicity.h"

#include <jansson.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#define EMBED_BATCH 64
#define DEFAULT_BATCH_DOCS 256
#define DEFAULT_BATCH_BYTES ((size_t)8 << 20)
#define PROGRESS_EVERY 0.2
/* A run document's transaction outcome: a sync defers it (not an action of the API). */
#define RAG_INGEST_DEFERRED ((rag_ingest_action)RAG_INGEST_NACTIONS)

void rag_document_init(rag_document *d)
{
    memset(d, 0, sizeof *d);
    d->version = RAG_DOCUMENT_VERSION;
    d->text_len = (size_t)-1;
    d->format = RAG_FORMAT_TEXT;
}

void rag_ingest_options_init(rag_ingest_options *o)
{
    memset(o, 0, sizeof *o);
    o->version = RAG_INGEST_OPTIONS_VERSION;
    o->batch_documents = DEFAULT_BATCH_DOCS;
    o->batch_bytes = DEFAULT_BATCH_BYTES;
}

void rag_ingest_summary_init(rag_ingest_summary *s)
{
    memset(s, 0, sizeof *s);
    s->version = RAG_INGEST_SUMMARY_VERSION;
}

const char *rag_ingest_action_name(int action)
{
    static const char *const names[] = {
#define RAG_ACTION_NAME_(name, text) text,
        RAG_INGEST_ACTION_TABLE(RAG_ACTION_NAME_)
#undef RAG_ACTION_NAME_
    };
    return action >= 0 && action < RAG_INGEST_NACTIONS ? names[action] : "unknown";
}

const char *rag_skip_kind_name(int kind)
{
    static const char *const names[] = {
#define RAG_SKIP_NAME_(name, text) text,
        RAG_SKIP_TABLE(RAG_SKIP_NAME_)
#undef RAG_SKIP_NAME_
    };
    return kind >= 0 && kind < RAG_SKIP_NKINDS ? names[kind] : "unknown";
}

rag_skip_kind rag_ingest_skip_kind(int rc, const char *msg)
{
    if (!msg)
        msg = "";
    if (strstr(msg, "unsupported format"))
        return RAG_SKIP_UNSUPPORTED;
    if (rc == RAG_EENCODING)
        return strncmp(msg, "binary", 6) == 0 ? RAG_SKIP_BINARY : RAG_SKIP_ENCODING;
    if (rc == RAG_EUNSUPPORTED) {
        if (strncmp(msg, "binary", 6) == 0)
            return RAG_SKIP_BINARY;
        if (strncmp(msg, "encrypted", 9) == 0)
            return RAG_SKIP_ENCRYPTED;
        if (strstr(msg, "no text layer"))
            return RAG_SKIP_NO_TEXT;
        return RAG_SKIP_UNSUPPORTED;
    }
    if (rc == RAG_EPARSE)
        return RAG_SKIP_MALFORMED;
    if (rc == RAG_EIO)
        return RAG_SKIP_IO;
    return RAG_SKIP_OTHER;
}

/* ---- a run's documents ------------------------------------------------------------------ */

/* What becomes of a queued document in its batch's transaction. */
enum doc_action {
    DOC_STORE = 0,   /* store it (the final duplicate check happens in the transaction) */
    DOC_REJECT,      /* the policy rejected it: only an older stored version is removed */
    DOC_DUP          /* a duplicate found before embedding (RAG_DEDUP_SKIP): not stored */
};

typedef struct run_doc {
    rag_document doc;          /* as stored; strings point into own[] or the caller's */
    char *own[5];              /* owned copies: id, text, title, source, metadata */
    char *path;                /* file it came from (owned; NULL: none) */
    enum doc_action action;
    int validated;             /* its text was checked for UTF-8 when it was offered */
    rag_ingest_action reject;  /* DOC_REJECT: why (already reported and counted) */
    size_t pii_found;
    double toxicity;           /* its toxicity score; -1: not checked */
    unsigned toxic_by;         /* the detectors that fired (flagged when stored) */
    rag_dedup_sig *sig;        /* duplicate detection on and DOC_STORE: its signature */
    rag_dedup_found pre;       /* match found before the transaction ... */
    uint64_t pre_snapshot;     /* ... against this store snapshot and the run's documents */
    /* outcome of the write transaction (reset on each attempt) */
    rag_ingest_action out;
    rag_dedup_found found;
    int replaced, stale, recorded;
    char *flag_meta;           /* RAG_DEDUP_FLAG: metadata naming the canonical (owned) */
} run_doc;

static void run_doc_free(run_doc *rd)
{
    if (rd->own[1])
        memset(rd->own[1], 0, rd->doc.text_len == (size_t)-1 ? 0 : rd->doc.text_len);
    for (int k = 0; k < 5; k++)
        free(rd->own[k]);
    free(rd->path);
    free(rd->sig);
    free(rd->flag_meta);
    memset(rd, 0, sizeof *rd);
}

struct rag_ingest_run {
    rag_db *db;                     /* NULL: a dry run without a store */
    rag_ingest_options opts;
    rag_ingest_summary own_sum, *sum;
    char collection[RAG_DOC_ID_MAX + 1];
    rag_collection_options policy;
    rag_hygiene *hy;                /* NULL when no per-document filter is on */
    rag_toxicity *tox;              /* the toxicity detectors; NULL when the filter is off */
    rag_dedup *mem;                 /* canonical documents of this run (duplicate pre-check) */
    int sync, single;
    int erase;                      /* opts.erase: the run ends with rag_erase_run */
    run_doc *docs;
    size_t n, cap, bytes;
    double t0, last_progress;
    uint64_t in_done, in_total;
    int cancelled;
    int last_fail;                  /* status and (masked) reason of the last invalid document */
    char last_reason[1024];
    /* sync: ids offered so far, and duplicates of documents not offered (yet), decided again
     * once the vanished documents are deleted (rag_ingest_run_retry) */
    int (*seen)(void *user, const char *id);
    void *seen_user;
    run_doc *deferred;
    size_t ndeferred, cap_deferred;
    int retrying;
};

const char *rag_ingest_run_last_failure(const rag_ingest_run *r, int *rc)
{
    *rc = r->last_fail;
    return r->last_reason;
}

rag_ingest_summary *rag_ingest_run_summary(rag_ingest_run *r)
{
    return r->sum;
}

const char *rag_ingest_run_collection(const rag_ingest_run *r)
{
    return r->collection;
}

void rag_ingest_run_mask(const rag_ingest_run *r, const char *msg, char *buf, size_t cap)
{
    rag_hygiene_mask_message(r->policy.pii != RAG_PII_OFF ? r->hy : NULL, msg, buf, cap);
}

/* Calls the event callback; a non-zero answer stops the run. */
static int emit(rag_ingest_run *r, const rag_ingest_event *ev)
{
    if (r->opts.on_event && !r->cancelled && r->opts.on_event(r->opts.user, ev) != 0)
        r->cancelled = 1;
    return r->cancelled ? RAG_ECANCELED : RAG_OK;
}

int rag_ingest_run_event(rag_ingest_run *r, const rag_ingest_event *ev)
{
    return emit(r, ev);
}

static void event_init(rag_ingest_event *ev, rag_ingest_action action, const char *id,
                       const char *path)
{
    memset(ev, 0, sizeof *ev);
    ev->action = action;
    ev->id = id ? id : "";
    ev->path = path ? path : "";
    ev->reason = "";
    ev->canonical_id = "";
    ev->duplicate_kind = "";
    ev->toxicity = -1;
    ev->toxicity_detector = "";
}

static void report_progress(rag_ingest_run *r, int final)
{
    if (!r->opts.on_progress || r->cancelled)
        return;
    double t = rag_monotonic();
    if (!final && t - r->last_progress < PROGRESS_EVERY)
        return;
    r->last_progress = t;
    rag_ingest_progress pr = {r->in_done, r->in_total, r->sum->documents, r->sum->chunks,
                              t - r->t0};
    if (r->opts.on_progress(r->opts.user, &pr) != 0)
        r->cancelled = 1;
}

void rag_ingest_run_progress(rag_ingest_run *r, uint64_t done, uint64_t total)
{
    r->in_done = done;
    if (total)
        r->in_total = total;
    report_progress(r, 0);
}

int rag_ingest_run_skip_file(rag_ingest_run *r, const char *path, int rc, const char *msg)
{
    char masked[1024];
    rag_ingest_run_mask(r, msg ? msg : "", masked, sizeof masked);
    rag_skip_kind kind = rag_ingest_skip_kind(rc, masked);
    r->sum->skipped++;
    r->sum->skipped_reasons[kind]++;
    rag_ingest_event ev;
    event_init(&ev, RAG_INGEST_SKIPPED, "", path);
    ev.reason = masked;
    ev.status = rc;
    ev.skip_kind = kind;
    return emit(r, &ev);
}

/* ---- preparing a batch, outside any lock ----------------------------------------------- */

/* A batch on its way into the store: its documents, their chunks and vectors. */
typedef struct prep_chunk {
    size_t doc;
    size_t start, end;
    int tokens;
    char *heading;
    uint64_t hash;
} prep_chunk;

/* What a prepared entry does in the write transaction. Ingest runs only store; a log batch
 * (rag_log_apply) also deletes and expires, in its order. */
enum prep_op {
    PREP_STORE = 0,
    PREP_DELETE,           /* doc->id: remove it when stored */
    PREP_EXPIRE            /* remove every document with valid_until <= expire_before */
};

typedef struct prep_doc {
    const rag_document *doc;
    enum prep_op op;
    int64_t expire_before;
    size_t len;
    int skip;              /* a later document in the batch has the same id */
    size_t first, n;       /* its chunks in prep.chunks */
    char *metadata;        /* compact JSON */
    uint64_t content_hash;
} prep_doc;

typedef struct prep {
    rag_coll *coll;
    run_doc **rds;               /* per document: its hygiene decisions (NULL: none) */
    const rag_collection_options *policy; /* NULL: every filter off */
    prep_doc *docs;
    size_t ndocs;
    prep_chunk *chunks;
    size_t nchunks, cap;
    float *vecs;
    rag_embcache_batch cache;    /* cache.keys NULL: the store keeps no embedding cache */
    int64_t cache_max;           /* opts.embed_cache_max */
    int coll_dim;
    int64_t now;
    /* > 0: a log batch at this sequence (chunk ids follow from it, the position is checked
     * and recorded in the transaction, expiry times are the batch's) */
    uint64_t log_seq;
    int borrowed;                /* chunks' headings and vecs belong to a log batch */
    /* outputs of the write transaction, reset on every attempt */
    uint64_t first_id;
    uint64_t ntombs;
    rag_ingest_stats stats;
    uint64_t dup_recorded, stale_removed;
    /* sync: whether a document id was offered in this sync (a duplicate of one that was not
     * may be the new name of a file whose old name vanishes: it is deferred); NULL: none */
    int (*seen)(void *user, const char *id);
    void *seen_user;
} prep;

static void prep_free(prep *p)
{
    for (size_t i = 0; !p->borrowed && i < p->nchunks; i++)
        free(p->chunks[i].heading);
    for (size_t i = 0; i < p->ndocs; i++)
        free(p->docs[i].metadata);
    free(p->chunks);
    free(p->docs);
    if (!p->borrowed)
        free(p->vecs);
    rag_embcache_batch_free(&p->cache);
}

/* The chunker's counter: the embedder's token count of a span without the tokens every
 * encoded text carries ([CLS] and [SEP] for BERT models), which the chunker would
 * otherwise add once per word (chunker.h: counts must be about additive over words). */
typedef struct {
    rag_embedder *emb;
    int overhead; /* the count of an empty text */
} token_counter;

/* The least chunk target a long title leaves (tokens). */
#define CHUNK_TOKENS_FLOOR 32

static int count_tokens_cb(void *user, const char *text, size_t len)
{
    const token_counter *tc = user;
    int n = rag_embedder_count_tokens(tc->emb, text, len);
    return n < 0 ? n : n > tc->overhead ? n - tc->overhead : 0;
}

static void token_counter_init(rag_embedder *emb, token_counter *tc)
{
    tc->emb = emb;
    int ov = rag_embedder_count_tokens(emb, "", 0);
    tc->overhead = ov > 0 ? ov : 0;
}

/* How a batch is chunked and embedded: the store's settings, or a log batch's. */
typedef struct prep_env {
    rag_embedder *emb;           /* NULL: dry run without a store (defaults, approximation) */
    int chunk_tokens, chunk_overlap;
    rag_db *db;                  /* for the embedding cache; NULL: none */
} prep_env;

static prep_env env_of_db(rag_db *db)
{
    prep_env e = {NULL, 256, 32, db};
    if (db) {
        e.emb = db->emb;
        e.chunk_tokens = db->opts.chunk_tokens;
        e.chunk_overlap = db->opts.chunk_overlap;
    }
    return e;
}

/* The chunker's settings for one document. A chunk is embedded as "title\n\nchunk"
 * (rag_lexical_chunk_text): with a model of limited length, the title's tokens and the
 * special tokens come off the target so that nothing of the chunk is truncated by the
 * encoder. Without an embedder (dry runs without a store): the defaults and the approximate
 * token count. */
static void chunk_config(const prep_env *env, token_counter *tc, const rag_document *d,
                         rag_chunker_config *cfg)
{
    memset(cfg, 0, sizeof *cfg);
    cfg->markdown = d->format == RAG_FORMAT_MARKDOWN;
    if (!env->emb) {
        cfg->target_tokens = 256;
        cfg->overlap_tokens = 32;
        return;
    }
    cfg->target_tokens = env->chunk_tokens;
    cfg->overlap_tokens = env->chunk_overlap;
    cfg->count = count_tokens_cb;
    cfg->count_user = tc;
    if (env->emb->max_tokens > 0) {
        int avail = env->emb->max_tokens - tc->overhead;
        if (d->title && *d->title) {
            int tt = count_tokens_cb(tc, d->title, strlen(d->title));
            avail -= tt > 0 ? tt : 0;
        }
        if (avail < CHUNK_TOKENS_FLOOR)
            avail = CHUNK_TOKENS_FLOOR; /* a title that long is truncated instead */
        if (cfg->target_tokens > avail)
            cfg->target_tokens = avail;
        if (cfg->overlap_tokens >= cfg->target_tokens)
            cfg->overlap_tokens = cfg->target_tokens / 8;
    }
}

/* Validates one document; names the document in the error. `checked`: its text was
 * validated before (a run's documents), only its length is taken. */
static int validate_doc(const rag_document *d, size_t i, prep_doc *pd, int checked)
{
    if (d->version < 1)
        return rag_fail(RAG_EINVAL, "document %zu: version is 0 (call rag_document_init)", i);
    if (!d->id || !*d->id || strlen(d->id) > RAG_DOC_ID_MAX)
        return rag_fail(RAG_EINVAL, "document %zu: id must be 1..%d bytes", i, RAG_DOC_ID_MAX);
    if (!rag_utf8_valid(d->id, strlen(d->id), NULL, NULL))
        return rag_fail(RAG_EENCODING, "document %zu: id is not valid UTF-8", i);
    if (!d->text)
        return rag_fail(RAG_EINVAL, "document '%s': text is NULL", d->id);
    pd->len = d->text_len == (size_t)-1 ? strlen(d->text) : d->text_len;
    size_t bad = 0, line = 0;
    if (!checked && !rag_utf8_valid(d->text, pd->len, &bad, &line))
        return rag_fail(RAG_EENCODING, "document '%s': invalid UTF-8 at byte %zu (line %zu)",
                        d->id, bad, line);
    if (d->valid_until < 0 || d->ttl_seconds < 0)
        return rag_fail(RAG_EINVAL, "document '%s': valid_until and ttl_seconds must not be "
                        "negative", d->id);
    if (d->format != RAG_FORMAT_TEXT && d->format != RAG_FORMAT_MARKDOWN)
        return rag_fail(RAG_EINVAL, "document '%s': unknown format %d", d->id, (int)d->format);
    const char *strs[2] = {d->title, d->source};
    for (int k = 0; k < 2; k++)
        if (strs[k] && !rag_utf8_valid(strs[k], strlen(strs[k]), NULL, NULL))
            return rag_fail(RAG_EENCODING, "document '%s': %s is not valid UTF-8", d->id,
                            k ? "source" : "title");
    if (d->metadata_json && *d->metadata_json) {
        json_error_t err;
        json_t *j = json_loads(d->metadata_json, 0, &err);
        if (!j)
            return rag_fail(RAG_EPARSE, "document '%s': metadata is not JSON (column %d: %s)",
                            d->id, err.column, err.text);
        if (!json_is_object(j)) {
            json_decref(j);
            return rag_fail(RAG_EPARSE, "document '%s': metadata must be a JSON object", d->id);
        }
        pd->metadata = json_dumps(j, JSON_COMPACT);
        json_decref(j);
        if (!pd->metadata)
            return rag_fail(RAG_ENOMEM, "out of memory");
    }
    pd->doc = d;
    pd->content_hash = rag_hash_bytes(d->text, pd->len);
    return RAG_OK;
}

/* Validates, chunks and embeds a batch outside any lock. */
static int prepare(const prep_env *env, const rag_document *docs, size_t n, prep *p)
{
    int rc = RAG_OK;
    if (!(p->docs = rag_calloc(n, sizeof *p->docs)))
        return RAG_ENOMEM;
    p->ndocs = n;
    for (size_t i = 0; i < n; i++)
        if ((rc = validate_doc(&docs[i], i, &p->docs[i],
                               p->rds && p->rds[i]->validated)) != RAG_OK)
            return rc;
    /* A repeated id within one batch: the last occurrence wins. */
    for (size_t i = 0; i < n; i++)
        for (size_t j = i + 1; j < n && !p->docs[i].skip; j++)
            if (strcmp(docs[i].id, docs[j].id) == 0)
                p->docs[i].skip = 1;
    token_counter tc;
    token_counter_init(env->emb, &tc);
    for (size_t i = 0; i < n; i++) {
        prep_doc *pd = &p->docs[i];
        if (pd->skip || (p->rds && p->rds[i]->action != DOC_STORE))
            continue;
        rag_chunker_config cfg;
        chunk_config(env, &tc, &docs[i], &cfg);
        rag_chunk_list list = {0};
        if ((rc = rag_chunk_text(&cfg, docs[i].text, pd->len, &list)) != RAG_OK) {
            rag_chunk_list_free(&list);
            return rag_fail_prefix(rc, "document '%s'", docs[i].id);
        }
        pd->first = p->nchunks;
        pd->n = list.count;
        if (p->nchunks + list.count > p->cap) {
            size_t cap = p->cap ? p->cap * 2 : 256;
            while (cap < p->nchunks + list.count)
                cap *= 2;
            prep_chunk *q = rag_realloc(p->chunks, cap * sizeof *q);
            if (!q) {
                rag_chunk_list_free(&list);
                return RAG_ENOMEM;
            }
            p->chunks = q;
            p->cap = cap;
        }
        for (size_t k = 0; k < list.count; k++) {
            prep_chunk *pc = &p->chunks[p->nchunks++];
            pc->doc = i;
            pc->start = list.items[k].start;
            pc->end = list.items[k].end;
            pc->tokens = list.items[k].tokens;
            pc->heading = list.items[k].heading_path;
            list.items[k].heading_path = NULL;
            pc->hash = rag_text_norm_hash(docs[i].text + pc->start, pc->end - pc->start);
        }
        rag_chunk_list_free(&list);
    }
    if (p->nchunks == 0)
        return RAG_OK;
    size_t dim = (size_t)env->emb->dim;
    if (!(p->vecs = rag_malloc(p->nchunks * dim * sizeof(float))))
        return RAG_ENOMEM;
    /* The embedding cache: a chunk whose exact input text was embedded before by this
     * model is not embedded again. */
    rag_db *db = env->db;
    int use_cache = db && rag_embcache_on(db);
    rag_txn *txn = NULL;
    if (use_cache) {
        if ((rc = rag_embcache_batch_init(&p->cache, db, p->nchunks)) != RAG_OK)
            return rc;
        if ((rc = rag_store_read(db->st, &txn)) != RAG_OK)
            return rc;
    }
    const char *texts[EMBED_BATCH];
    size_t lens[EMBED_BATCH], slot[EMBED_BATCH];
    char *bufs[EMBED_BATCH];
    float *tmp = rag_malloc(EMBED_BATCH * dim * sizeof(float));
    if (!tmp)
        rc = RAG_ENOMEM;
    for (size_t b = 0; b < p->nchunks && rc == RAG_OK; b += EMBED_BATCH) {
        size_t m = p->nchunks - b < EMBED_BATCH ? p->nchunks - b : EMBED_BATCH, miss = 0;
        memset(bufs, 0, sizeof bufs);
        for (size_t k = 0; k < m && rc == RAG_OK; k++) {
            prep_chunk *pc = &p->chunks[b + k];
            const char *t;
            size_t l;
            char *buf = NULL;
            rc = rag_lexical_chunk_text(docs[pc->doc].title, docs[pc->doc].text + pc->start,
                                        pc->end - pc->start, &buf, &t, &l);
            if (rc != RAG_OK)
                break;
            if (use_cache &&
                rag_embcache_lookup(&p->cache, txn, b + k, t, l, dim, p->vecs + (b + k) * dim)) {
                free(buf);
                continue;
            }
            bufs[miss] = buf;
            texts[miss] = t;
            lens[miss] = l;
            slot[miss++] = b + k;
        }
        if (rc == RAG_OK && miss > 0) {
            rc = rag_embedder_embed(env->emb, texts, lens, miss, 0, tmp);
            for (size_t k = 0; rc == RAG_OK && k < miss; k++)
                memcpy(p->vecs + slot[k] * dim, tmp + k * dim, dim * sizeof(float));
        }
        for (size_t k = 0; k < miss; k++)
            free(bufs[k]);
    }
    free(tmp);
    rag_txn_end(txn);
    return rc;
}

/* ---- the write transaction ----------------------------------------------------------------- */

/* Removes a stored document's lexical postings: those of its chunks still stored, all in
 * one call (rag_lexical_remove_doc), with the texts ingest indexed. */
static int remove_doc_lexical(rag_txn *txn, const rag_analyzer *an, uint32_t coll,
                              const rag_doc_rec *old, rag_chunk_rec *const *chs)
{
    size_t n = old->nchunks ? old->nchunks : 1, m = 0;
    rag_lex_chunk *lc = rag_calloc(n, sizeof *lc);
    char **bufs = rag_calloc(n, sizeof *bufs);
    int rc = lc && bufs ? RAG_OK : RAG_ENOMEM;
    for (uint32_t k = 0; k < old->nchunks && rc == RAG_OK; k++) {
        if (!chs[k])
            continue;
        lc[m].id = chs[k]->id;
        rc = rag_lexical_chunk_text(old->title, chs[k]->text, chs[k]->text_len, &bufs[m],
                                    &lc[m].text, &lc[m].len);
        m++;
    }
    if (rc == RAG_OK)
        rc = rag_lexical_remove_doc(txn, an, coll, lc, m);
    /* A document's postings are removed as a whole, so a lost chunk record (store damage)
     * stops it; the repair rebuilds the lexical index from the chunks that remain. */
    if (rc == RAG_ECORRUPT)
        rag_fail_prefix(rc, "document '%s': its lexical index entries do not match its stored "
                            "chunks (rag_check with RAG_CHECK_REPAIR, `ragcore check --repair`, "
                            "rebuilds them)", old->id);
    for (size_t i = 0; bufs && i < m; i++)
        free(bufs[i]);
    free(lc);
    free(bufs);
    return rc;
}

/* Removes a stored document's chunks (tombstoning their vectors) and its counters. */
static int remove_doc(rag_txn *txn, const rag_analyzer *an, uint32_t coll,
                      const rag_doc_rec *old, rag_coll_rec *rec, uint64_t *ntombs)
{
    rag_chunk_rec **chs = rag_calloc(old->nchunks ? old->nchunks : 1, sizeof *chs);
    int rc = chs ? RAG_OK : RAG_ENOMEM;
    for (uint32_t k = 0; k < old->nchunks && rc == RAG_OK; k++) {
        rc = rag_store_chunk_get(txn, coll, old->chunk_ids[k], &chs[k]);
        if (rc == RAG_ENOTFOUND)
            rc = RAG_OK;
    }
    if (rc == RAG_OK)
        rc = remove_doc_lexical(txn, an, coll, old, chs);
    for (uint32_t k = 0; k < old->nchunks && rc == RAG_OK; k++) {
        rag_chunk_rec *ch = chs[k];
        if (!ch)
            continue;
        if (ch->flags & RAG_CHUNK_DUPLICATE)
            rec->duplicate_chunks--;
        rc = rag_store_hash_decr(txn, coll, ch->text_hash);
        if (rc == RAG_OK)
            rc = rag_store_chunk_del(txn, coll, old->chunk_ids[k]);
        if (rc == RAG_OK) {
            rc = rag_store_vec_del(txn, coll, old->chunk_ids[k]);
            if (rc == RAG_ENOTFOUND)
                rc = RAG_OK;
        }
        if (rc == RAG_OK)
            rc = rag_store_tomb_put(txn, coll, old->chunk_ids[k]);
        if (rc == RAG_OK) {
            rec->chunks--;
            (*ntombs)++;
        }
    }
    for (uint32_t k = 0; chs && k < old->nchunks; k++)
        rag_chunk_rec_free(chs[k]);
    free(chs);
    if (rc == RAG_OK)
        rc = rag_store_doc_del(txn, coll, old->id);
    if (rc == RAG_OK)
        rc = rag_dedup_store_remove(txn, coll, old->id);
    if (rc == RAG_OK) {
        rec->documents--;
        rec->bytes_text -= old->text_len;
        if (old->valid_until && rec->expiring_docs)
            rec->expiring_docs--;
    }
    return rc;
}

/* The metadata of a flagged duplicate: its own plus duplicate_of, duplicate_kind and
 * duplicate_similarity (compact JSON, owned by the caller). */
static char *flag_metadata(const char *meta, const rag_dedup_found *f)
{
    json_t *m = meta && *meta ? json_loads(meta, 0, NULL) : json_object();
    if (!json_is_object(m)) {
        json_decref(m);
        m = json_object();
    }
    char *out = NULL;
    if (m && json_object_set_new(m, "duplicate_of", json_string(f->canonical)) == 0 &&
        json_object_set_new(m, "duplicate_kind",
                            json_string(f->kind == RAG_DUP_EXACT ? "exact" : "near")) == 0 &&
        json_object_set_new(m, "duplicate_similarity", json_real(f->similarity)) == 0)
        out = json_dumps(m, JSON_COMPACT | JSON_PRESERVE_ORDER);
    json_decref(m);
    return out;
}

/* A document that is not stored (rejected by the policy, or a skipped duplicate): an older
 * version under its id goes (it could hold what was just refused); a skipped duplicate is
 * recorded with its canonical. */
static int reject_doc(prep *p, rag_txn *txn, rag_coll_rec *rec, rag_doc_rec *old, run_doc *rd,
                      int dup)
{
    rag_coll *c = p->coll;
    int rc = RAG_OK;
    if (old) {
        rc = remove_doc(txn, c->an, c->id, old, rec, &p->ntombs);
        rd->stale = rc == RAG_OK;
        p->stale_removed += (uint64_t)rd->stale;
    }
    rd->out = dup ? RAG_INGEST_DUPLICATE : rd->reject;
    if (rc == RAG_OK && dup && p->policy->dedup == RAG_DEDUP_SKIP) {
        rc = rag_dedup_record_skip(txn, c->name, rd->doc.id, rd->doc.source, &rd->found,
                                   &rd->recorded);
        p->dup_recorded += (uint64_t)rd->recorded;
    }
    return rc;
}

/* The duplicate decision of a document about to be stored, against everything committed
 * (this batch's earlier documents included): under RAG_DEDUP_SKIP a duplicate becomes a
 * DOC_DUP; under FLAG its metadata names the canonical. *dup receives 1 for a skip. */
static int decide_duplicate(prep *p, rag_txn *txn, prep_doc *pd, run_doc *rd, int *dup)
{
    *dup = 0;
    const rag_collection_options *po = p->policy;
    if (!rd || !rd->sig || po->dedup == RAG_DEDUP_OFF)
        return RAG_OK;
    int rc = RAG_OK;
    if (rd->pre_snapshot && rd->pre_snapshot + 1 == rag_txn_id(txn))
        rd->found = rd->pre; /* nothing was committed since the pre-check, which also saw this
                              * run's earlier documents: its answer stands */
    else
        rc = rag_dedup_store_find(txn, p->coll->id, rd->sig, po->near_dup_threshold,
                                  rd->doc.id, &rd->found);
    if (rc != RAG_OK || rd->found.kind == RAG_DUP_NONE)
        return rc;
    if (po->dedup == RAG_DEDUP_SKIP && p->seen && !p->seen(p->seen_user, rd->found.canonical)) {
        rd->out = RAG_INGEST_DEFERRED;
        *dup = 1;
    } else if (po->dedup == RAG_DEDUP_SKIP) {
        *dup = 1;
    } else if (po->dedup == RAG_DEDUP_FLAG) {
        if (!(rd->flag_meta = flag_metadata(pd->metadata, &rd->found)))
            return rag_fail(RAG_ENOMEM, "out of memory");
    }
    return RAG_OK;
}

/* Clears a run document's transaction outputs before an attempt. */
static void reset_outputs(run_doc *rd)
{
    rd->out = RAG_INGEST_STORED;
    memset(&rd->found, 0, sizeof rd->found);
    rd->replaced = rd->stale = rd->recorded = 0;
    free(rd->flag_meta);
    rd->flag_meta = NULL;
}

/* ---- log positions ------------------------------------------------------------------------ */

#define LOG_POS_TABLE "config"

static size_t log_pos_key(uint32_t coll, char *key, size_t cap)
{
    return (size_t)snprintf(key, cap, "logseq/%u", coll);
}

int rag_ingest_log_position(rag_txn *txn, uint32_t coll, uint64_t *seq)
{
    char key[32];
    size_t klen = log_pos_key(coll, key, sizeof key);
    const void *v = NULL;
    size_t vlen = 0;
    *seq = 0;
    int rc = rag_store_kv_get(txn, LOG_POS_TABLE, key, klen, &v, &vlen);
    if (rc == RAG_ENOTFOUND) {
        rag_clear_error();
        return RAG_OK;
    }
    if (rc != RAG_OK)
        return rc;
    if (vlen != 8)
        return rag_fail(RAG_ECORRUPT, "collection %u: log position record of %zu bytes", coll,
                        vlen);
    *seq = rag_get_be64(v);
    return RAG_OK;
}

/* Checks that p->log_seq follows the recorded position, records it, and gives the batch its
 * chunk ids (sequence x 2^24 + ordinal), keeping the store's counter above them. */
static int log_begin(prep *p, rag_txn *txn)
{
    uint64_t pos = 0, next = 0;
    int rc = rag_ingest_log_position(txn, p->coll->id, &pos);
    if (rc != RAG_OK)
        return rc;
    if (p->log_seq != pos + 1)
        return rag_fail(RAG_ESEQUENCE, "collection '%s': log batch %llu does not follow the "
                        "applied position %llu (expected %llu)", p->coll->name,
                        (unsigned long long)p->log_seq, (unsigned long long)pos,
                        (unsigned long long)(pos + 1));
    /* Chunk keys are per collection, so another log collection's ids may pass these; the
     * store's counter is only kept above them for ids allocated outside logs. */
    p->first_id = p->log_seq << RAG_LOG_ID_SHIFT;
    if ((rc = rag_store_next_id(txn, &next)) != RAG_OK)
        return rc;
    uint64_t first = 0;
    if (next < p->first_id + p->nchunks &&
        (rc = rag_store_alloc_ids(txn, p->first_id + p->nchunks - next, &first)) != RAG_OK)
        return rc;
    char key[32];
    size_t klen = log_pos_key(p->coll->id, key, sizeof key);
    unsigned char b[8];
    rag_put_be64(b, p->log_seq);
    return rag_store_kv_put(txn, LOG_POS_TABLE, key, klen, b, sizeof b);
}

typedef struct expire_ctx {
    int64_t before;
    char **ids;
    size_t n, cap;
} expire_ctx;

static int expire_visit(void *user, const rag_doc_rec *rec)
{
    expire_ctx *e = user;
    if (!rec->valid_until || rec->valid_until > e->before)
        return 0;
    if (e->n == e->cap) {
        size_t cap = e->cap ? e->cap * 2 : 64;
        char **q = rag_realloc(e->ids, cap * sizeof *q);
        if (!q)
            return RAG_ENOMEM;
        e->ids = q;
        e->cap = cap;
    }
    if (!(e->ids[e->n] = rag_strdup(rec->id)))
        return RAG_ENOMEM;
    e->n++;
    return 0;
}

/* Removes one stored document by id when it exists (a log's delete). */
static int remove_by_id(prep *p, rag_txn *txn, rag_coll_rec *rec, const char *id)
{
    rag_doc_rec *old = NULL;
    int rc = rag_store_doc_get(txn, p->coll->id, id, &old);
    if (rc == RAG_ENOTFOUND) {
        rag_clear_error();
        return RAG_OK;
    }
    if (rc == RAG_OK)
        rc = remove_doc(txn, p->coll->an, p->coll->id, old, rec, &p->ntombs);
    rag_doc_rec_free(old);
    return rc;
}

/* A log's delete or expiry inside the batch's transaction. */
static int apply_removal(prep *p, rag_txn *txn, rag_coll_rec *rec, const prep_doc *pd)
{
    if (pd->op == PREP_DELETE)
        return remove_by_id(p, txn, rec, pd->doc->id);
    expire_ctx e = {pd->expire_before, NULL, 0, 0};
    int rc = rec->expiring_docs ? rag_store_doc_scan(txn, p->coll->id, expire_visit, &e)
                                : RAG_OK;
    for (size_t i = 0; i < e.n && rc == RAG_OK; i++)
        rc = remove_by_id(p, txn, rec, e.ids[i]);
    for (size_t i = 0; i < e.n; i++)
        free(e.ids[i]);
    free(e.ids);
    return rc;
}

/* Stores a prepared batch in one write transaction (rag_store_write may run it again). */
static int ingest_fn(rag_txn *txn, void *user)
{
    prep *p = user;
    rag_coll *c = p->coll;
    rag_coll_rec rec;
    p->ntombs = 0;
    p->dup_recorded = p->stale_removed = 0;
    memset(&p->stats, 0, sizeof p->stats);
    int rc = rag_store_coll_get(txn, c->name, &rec);
    if (rc == RAG_ENOTFOUND)
        return rag_fail(RAG_ENOTFOUND, "collection '%s' was dropped", c->name);
    if (rc != RAG_OK)
        return rc;
    rc = p->log_seq ? log_begin(p, txn) : rag_store_alloc_ids(txn, p->nchunks, &p->first_id);
    if (rc != RAG_OK)
        return rc;
    for (size_t i = 0; i < p->ndocs && rc == RAG_OK; i++) {
        prep_doc *pd = &p->docs[i];
        run_doc *rd = p->rds ? p->rds[i] : NULL;
        const rag_document *d = pd->doc;
        if (rd)
            reset_outputs(rd);
        if (pd->skip)
            continue;
        if (pd->op != PREP_STORE) {
            rc = apply_removal(p, txn, &rec, pd);
            continue;
        }
        rag_doc_rec *old = NULL;
        int64_t ingested_at = p->now;
        rc = rag_store_doc_get(txn, c->id, d->id, &old);
        if (rc == RAG_ENOTFOUND)
            rc = RAG_OK;
        int dup = 0;
        if (rc == RAG_OK && rd && rd->action == DOC_DUP) {
            rd->found = rd->pre;
            dup = 1;
        } else if (rc == RAG_OK && rd && rd->action == DOC_STORE) {
            rc = decide_duplicate(p, txn, pd, rd, &dup);
        }
        if (rc == RAG_OK && rd && rd->out == RAG_INGEST_DEFERRED) {
            rag_doc_rec_free(old); /* decided again at the end of the sync */
            continue;
        }
        if (rc == RAG_OK && rd && (rd->action == DOC_REJECT || dup)) {
            rc = reject_doc(p, txn, &rec, old, rd, dup);
            rag_doc_rec_free(old);
            continue;
        }
        if (rc == RAG_OK && old) {
            ingested_at = old->ingested_at;
            rc = remove_doc(txn, c->an, c->id, old, &rec, &p->ntombs);
            p->stats.replaced++;
            if (rd)
                rd->replaced = 1;
        }
        rag_doc_rec_free(old);
        if (rc != RAG_OK)
            break;
        /* the chunk ids, and the chunks as the lexical index takes the whole document */
        size_t nn = pd->n ? pd->n : 1;
        uint64_t *ids = rag_malloc(nn * sizeof *ids);
        rag_lex_chunk *lc = rag_calloc(nn, sizeof *lc);
        char **lbufs = rag_calloc(nn, sizeof *lbufs);
        if (!ids || !lc || !lbufs) {
            free(ids);
            free(lc);
            free(lbufs);
            return RAG_ENOMEM;
        }
        int64_t valid_until = d->valid_until || p->log_seq ? d->valid_until
                              : d->ttl_seconds > 0 ? p->now + d->ttl_seconds
                              : rec.ttl_seconds > 0 ? p->now + rec.ttl_seconds
                                                    : 0;
        if (valid_until)
            rec.expiring_docs++;
        const char *meta = rd && rd->flag_meta ? rd->flag_meta : pd->metadata ? pd->metadata : "";
        /* the document record (written after its chunks, which carry its fields on an
         * encrypted store) */
        rag_doc_rec dr = {(char *)d->id, (char *)(d->source ? d->source : ""),
                          (char *)(d->title ? d->title : ""), (char *)meta,
                          d->source_mtime, ingested_at, p->now, valid_until, pd->content_hash,
                          pd->len, (uint32_t)pd->n, ids};
        for (size_t k = 0; k < pd->n && rc == RAG_OK; k++) {
            prep_chunk *pc = &p->chunks[pd->first + k];
            ids[k] = p->first_id + pd->first + k;
            uint32_t before = 0;
            rc = rag_store_hash_incr(txn, c->id, pc->hash, &before);
            rag_chunk_rec ch = {ids[k], pc->start, pc->end, (uint32_t)pc->tokens,
                                before ? RAG_CHUNK_DUPLICATE : 0, pc->hash, (char *)d->id,
                                pc->heading, (char *)d->text + pc->start, pc->end - pc->start,
                                &dr};
            if (before) {
                rec.duplicate_chunks++;
                p->stats.duplicate_chunks++;
            }
            if (rc == RAG_OK)
                rc = rag_store_chunk_put(txn, c->id, &ch);
            if (rc == RAG_OK)
                rc = rag_lexical_chunk_text(d->title, ch.text, ch.text_len, &lbufs[k],
                                            &lc[k].text, &lc[k].len);
            if (rc == RAG_OK && k > 0) { /* past what the chunk before holds */
                size_t ov = rag_lexical_overlap(pc->start, ch.text_len, pc[-1].end);
                lc[k].own = ch.text + ov;
                lc[k].own_len = ch.text_len - ov;
            }
            lc[k].id = ids[k];
            if (rc == RAG_OK)
                rc = rag_store_vec_put(txn, c->id, ids[k],
                                       p->vecs + (pd->first + k) * (size_t)p->coll_dim, p->coll_dim);
        }
        if (rc == RAG_OK)
            rc = rag_lexical_add_doc(txn, c->an, c->id, lc, pd->n);
        if (rc == RAG_OK)
            rc = rag_store_doc_put(txn, c->id, &dr);
        for (size_t k = 0; k < pd->n; k++)
            free(lbufs[k]);
        free(ids);
        free(lc);
        free(lbufs);
        /* duplicate index: a canonical document is indexed; any record of it as a skipped
         * duplicate is stale now */
        if (rc == RAG_OK && rd && rd->sig && p->policy->dedup != RAG_DEDUP_OFF) {
            if (rd->found.kind == RAG_DUP_NONE)
                rc = rag_dedup_store_add(txn, c->id, d->id, rd->sig,
                                         p->policy->near_dup_threshold);
            if (rc == RAG_OK)
                rc = rag_dedup_record_clear(txn, c->name, d->id);
            if (rd->found.kind != RAG_DUP_NONE && p->policy->dedup == RAG_DEDUP_FLAG)
                rd->out = RAG_INGEST_FLAGGED;
        }
        rec.documents++;
        rec.chunks += pd->n;
        rec.bytes_text += pd->len;
        p->stats.documents++;
        p->stats.chunks += pd->n;
        p->stats.bytes += pd->len;
    }
    if (rc != RAG_OK)
        return rc;
    if (p->cache.keys)
        rc = rag_embcache_commit(txn, &p->cache, p->vecs, p->nchunks, p->coll_dim, p->cache_max);
    if (rc != RAG_OK)
        return rc;
    rec.newest_ingest = p->now;
    return rag_store_coll_put(txn, c->name, &rec);
}

/* ---- committing a batch -------------------------------------------------------------------- */

static int store_prepared(rag_db *db, const char *collection, prep *p);

/* Prepares and stores docs[0, n) in one write transaction (rds: their run decisions, may be
 * NULL). *p is filled for the caller, who frees it with prep_free. */
static int commit_batch(rag_db *db, const char *collection, const rag_document *docs, size_t n,
                        run_doc **rds, const rag_collection_options *policy,
                        const rag_ingest_run *r, prep *p)
{
    memset(p, 0, sizeof *p);
    if (r && !r->retrying) {
        p->seen = r->seen;
        p->seen_user = r->seen_user;
    }
    p->now = rag_now();
    p->coll_dim = db->dim;
    p->cache_max = db->opts.embed_cache_max;
    p->rds = rds;
    p->policy = policy;
    prep_env env = env_of_db(db);
    int rc = prepare(&env, docs, n, p);
    if (rc != RAG_OK)
        return rc;
    return store_prepared(db, collection, p);
}

/* Stores a prepared batch: holding the handle's write lock, one write transaction, then the
 * collection's index takes the new vectors. */
static int store_prepared(rag_db *db, const char *collection, prep *p)
{
    int rc;
    pthread_mutex_lock(&db->write_lock);
    if ((rc = rag_db_ensure_coll(db, collection, 1, &p->coll, NULL)) == RAG_OK) {
        rag_coll *c = p->coll;
        atomic_fetch_add(&c->writing, 1);
        rc = rag_store_write(db->st, ingest_fn, p);
        if (rc == RAG_OK)
            rag_coll_index_after_commit(db, c, p->vecs, p->nchunks, p->first_id, p->ntombs);
        atomic_fetch_sub(&c->writing, 1);
        if (rc == RAG_OK && db->opts.checkpoint_every > 0 &&
            c->added_since_ckpt >= (uint64_t)db->opts.checkpoint_every) {
            int crc = rag_coll_index_checkpoint(db, c, 0);
            if (crc != RAG_OK)
                rag_clear_error(); /* data is committed; the index is rewritten later */
        }
    }
    pthread_mutex_unlock(&db->write_lock);
    return rc;
}

/* ---- hygiene counters ------------------------------------------------------------------ */

/* Counts what the hygiene stage found in a document it judged (every verdict). */
static void count_judged(rag_ingest_summary *s, const rag_collection_options *pol,
                         const rag_hygiene_result *res)
{
    if (res->pii_found) {
        s->pii_documents++;
        for (int t = 0; t < RAG_PII_NTYPES; t++)
            s->pii_found[t] += res->pii[t];
    }
    if (pol->quality)
        s->quality_checked++;
    s->toxicity_checked += res->toxicity >= 0;
}

/* Counts a document the hygiene stage rejected, by reason. */
static void count_rejected(rag_ingest_summary *s, const rag_hygiene_result *res)
{
    if (res->verdict == RAG_HYGIENE_FILTERED) {
        s->filtered++;
        s->filtered_too_short += res->quality == RAG_QUALITY_TOO_SHORT;
        s->filtered_too_long += res->quality == RAG_QUALITY_TOO_LONG;
        s->filtered_symbols += res->quality == RAG_QUALITY_SYMBOLS;
    } else if (res->verdict == RAG_HYGIENE_TOXIC) {
        s->toxicity_dropped++;
        s->toxicity_dropped_wordlist += (res->toxic_by & RAG_TOXICITY_WORDLIST) != 0;
        s->toxicity_dropped_classifier += (res->toxic_by & RAG_TOXICITY_CLASSIFIER) != 0;
    } else if (res->verdict == RAG_HYGIENE_PII_DROPPED) {
        s->pii_dropped++;
    }
}

/* ---- replicated log batches ------------------------------------------------------------ */

int rag_ingest_log_add(rag_log_batch *b, const rag_document *docs, size_t n)
{
    if (!b->emb)
        return rag_fail(RAG_EINVAL, "log batch: documents need an embedder (the batch was "
                        "created without one)");
    prep p;
    memset(&p, 0, sizeof p);
    prep_env env = {b->emb, b->chunk_tokens, b->chunk_overlap, NULL};
    size_t ops0 = b->nops, chunks0 = b->nchunks;
    size_t dim = (size_t)b->emb->dim;
    int rc = prepare(&env, docs, n, &p);
    for (size_t i = 0; i < n && rc == RAG_OK; i++) {
        prep_doc *pd = &p.docs[i];
        const rag_document *d = &docs[i];
        if (pd->skip)
            continue; /* a later occurrence of the id wins */
        int64_t valid_until = d->valid_until         ? d->valid_until
                              : d->ttl_seconds > 0 ? b->now + d->ttl_seconds
                                                   : 0;
        rag_log_chunk *ch = NULL;
        float *vecs = NULL;
        rc = rag_log_batch_push_upsert(b, d, pd->len, pd->metadata, valid_until, pd->n, &ch,
                                       &vecs);
        for (size_t k = 0; k < pd->n && rc == RAG_OK; k++) {
            const prep_chunk *pc = &p.chunks[pd->first + k];
            ch[k].start = pc->start;
            ch[k].end = pc->end;
            ch[k].tokens = (uint32_t)pc->tokens;
            if (!(ch[k].heading = rag_strdup(pc->heading ? pc->heading : "")))
                rc = RAG_ENOMEM;
            memcpy(vecs + k * dim, p.vecs + (pd->first + k) * dim, dim * sizeof(float));
        }
    }
    if (rc != RAG_OK)
        rag_log_batch_truncate(b, ops0, chunks0);
    prep_free(&p);
    return rc;
}

/* Adds one document the policy kept (cur: its cleaned form) to a log batch, as the verdict
 * of the batch's duplicate decision point says (v NULL: not decided): a skipped duplicate
 * becomes a delete of its id, a flagged one carries duplicate_of; counts in s. */
static int log_add_kept(rag_log_batch *b, const rag_collection_options *pol, rag_document cur,
                        const rag_hygiene_result *res, const rag_dup_verdict *v,
                        rag_ingest_summary *s)
{
    rag_dedup_found f;
    memset(&f, 0, sizeof f);
    if (v && v->kind != RAG_DUP_NONE) {
        f.kind = v->kind == RAG_DUP_EXACT ? RAG_DUP_EXACT : RAG_DUP_NEAR;
        snprintf(f.canonical, sizeof f.canonical, "%s", v->canonical);
        f.similarity = v->similarity;
        s->dup_exact += f.kind == RAG_DUP_EXACT;
        s->dup_near += f.kind == RAG_DUP_NEAR;
    }
    if (f.kind != RAG_DUP_NONE && pol->dedup == RAG_DEDUP_SKIP) {
        s->dup_skipped++;
        return rag_log_batch_add_delete(b, cur.id);
    }
    char *flagged = NULL;
    if (f.kind != RAG_DUP_NONE && pol->dedup == RAG_DEDUP_FLAG) {
        if (!(flagged = flag_metadata(cur.metadata_json, &f)))
            return rag_fail(RAG_ENOMEM, "out of memory");
        cur.metadata_json = flagged;
        s->dup_flagged++;
    }
    size_t chunks = b->nchunks;
    int rc = rag_ingest_log_add(b, &cur, 1);
    if (rc == RAG_OK) {
        s->documents++;
        s->chunks += b->nchunks - chunks;
        s->bytes += cur.text_len;
        s->toxicity_flagged += res->toxic_by != 0;
    }
    free(flagged);
    return rc;
}

/* Asks the batch's decision point about the n kept documents (cleaned texts in kept[]);
 * verdicts[] receives the answers. */
static int log_decide(rag_log_batch *b, const rag_document *kept, size_t n,
                      rag_dup_verdict *verdicts)
{
    const char **ids = rag_calloc(n ? n : 1, sizeof *ids);
    rag_dup_key *keys = rag_calloc(n ? n : 1, sizeof *keys);
    int rc = ids && keys ? RAG_OK : RAG_ENOMEM;
    for (size_t i = 0; i < n && rc == RAG_OK; i++) {
        ids[i] = kept[i].id;
        rc = rag_dup_key_compute(kept[i].text, kept[i].text_len, &keys[i]);
    }
    if (rc == RAG_OK && n) {
        memset(verdicts, 0, n * sizeof *verdicts);
        rc = b->dedup(b->dedup_user, n, ids, keys, verdicts);
        if (rc != RAG_OK && !*rag_errmsg())
            rc = rag_fail(rc, "duplicate decision: %s", rag_strerror(rc));
    }
    free(ids);
    free(keys);
    return rc;
}

int rag_ingest_log_add_policy(rag_log_batch *b, const rag_document *docs, size_t n,
                              const rag_collection_options *policy, const rag_toxicity *tox,
                              rag_ingest_summary *summary)
{
    rag_ingest_summary own;
    rag_ingest_summary *s = summary ? summary : &own;
    rag_ingest_summary_init(s);
    rag_collection_options pol;
    rag_toxicity *loaded = NULL;
    rag_hygiene *hy = NULL;
    size_t ops0 = b->nops, chunks0 = b->nchunks, nkept = 0;
    /* the documents the policy keeps wait here for the duplicate decision; rejected[i]:
     * document i becomes a delete (added in input order with the kept ones) */
    rag_document *kept = rag_calloc(n ? n : 1, sizeof *kept);
    rag_hygiene_result *res = rag_calloc(n ? n : 1, sizeof *res);
    unsigned char *rejected = rag_calloc(n ? n : 1, 1);
    rag_dup_verdict *verdicts = NULL;
    int rc = kept && res && rejected ? rag_policy_from_user(policy, &pol) : RAG_ENOMEM;
    int dedup = rc == RAG_OK && pol.dedup != RAG_DEDUP_OFF && b->dedup;
    if (rc == RAG_OK && pol.pii == RAG_PII_HASH && !b->pii_key_len)
        rc = rag_fail(RAG_EUNSUPPORTED, "pii \"hash\" needs a key: give the batch one with "
                      "rag_log_batch_set_pii_key (a cluster: the configuration's "
                      "pii_key_file)");
    if (rc == RAG_OK && pol.toxicity != RAG_TOXICITY_OFF && !tox &&
        (rc = rag_toxicity_open(pol.toxicity_detectors, NULL, NULL, &loaded)) == RAG_OK)
        tox = loaded;
    if (rc == RAG_OK && (pol.pii != RAG_PII_OFF || pol.quality ||
                         pol.toxicity != RAG_TOXICITY_OFF))
        rc = rag_hygiene_create(&pol, b->pii_key, b->pii_key_len, tox, 0, &hy);
    for (size_t i = 0; i < n && rc == RAG_OK; i++) {
        prep_doc pd;
        memset(&pd, 0, sizeof pd);
        rag_hygiene_result *r = &res[nkept];
        s->seen++;
        if ((rc = validate_doc(&docs[i], i, &pd, 0)) != RAG_OK)
            break;
        free(pd.metadata);
        rag_document cur = docs[i];
        cur.text_len = pd.len;
        if (hy && (rc = rag_hygiene_apply(hy, &cur, NULL, NULL, 0, r)) != RAG_OK)
            break;
        if (hy)
            count_judged(s, &pol, r);
        if (r->verdict != RAG_HYGIENE_STORE) {
            count_rejected(s, r);
            rejected[i] = 1;
            if (!dedup)
                rc = rag_log_batch_add_delete(b, cur.id);
            rag_hygiene_result_free(r);
            memset(r, 0, sizeof *r);
            continue;
        }
        if (r->text) {
            cur.text = r->text;
            cur.text_len = r->len;
        }
        if (r->title)
            cur.title = r->title;
        if (r->metadata_json)
            cur.metadata_json = r->metadata_json;
        kept[nkept++] = cur;
        if (!dedup) /* no decision to wait for: add it now */
            rc = log_add_kept(b, &pol, cur, r, NULL, s);
    }
    if (rc == RAG_OK && dedup) {
        if (!(verdicts = rag_calloc(nkept ? nkept : 1, sizeof *verdicts)))
            rc = RAG_ENOMEM;
        else if (nkept)
            rc = log_decide(b, kept, nkept, verdicts);
        for (size_t i = 0, k = 0; i < n && rc == RAG_OK; i++) {
            if (rejected[i]) {
                rc = rag_log_batch_add_delete(b, docs[i].id);
            } else {
                rc = log_add_kept(b, &pol, kept[k], &res[k], &verdicts[k], s);
                k++;
            }
        }
    }
    for (size_t i = 0; res && i < nkept; i++)
        rag_hygiene_result_free(&res[i]);
    free(res);
    free(kept);
    free(rejected);
    free(verdicts);
    if (rc != RAG_OK) {
        rag_log_batch_truncate(b, ops0, chunks0);
        if (hy) { /* an error may quote the document: never raw personal data */
            char msg[512];
            rag_hygiene_mask_message(hy, rag_errmsg(), msg, sizeof msg);
            rag_fail(rc, "%s", msg);
        }
    }
    rag_hygiene_free(hy);
    rag_toxicity_close(loaded);
    return rc;
}

/* Builds the prepared view of a decoded batch: its operations in order, its chunks (text
 * hashes computed here) and its vectors (borrowed). */
static int log_view(const rag_log_batch *b, prep *p)
{
    p->borrowed = 1;
    p->vecs = b->vecs;
    p->nchunks = b->nchunks;
    if (!(p->docs = rag_calloc(b->nops ? b->nops : 1, sizeof *p->docs)) ||
        !(p->chunks = rag_calloc(b->nchunks ? b->nchunks : 1, sizeof *p->chunks)))
        return RAG_ENOMEM;
    p->ndocs = b->nops;
    for (size_t i = 0; i < b->nops; i++) {
        const rag_log_op *op = &b->ops[i];
        prep_doc *pd = &p->docs[i];
        pd->doc = &op->doc;
        if (op->kind == RAG_LOG_DELETE || op->kind == RAG_LOG_EXPIRE) {
            pd->op = op->kind == RAG_LOG_DELETE ? PREP_DELETE : PREP_EXPIRE;
            pd->expire_before = op->expire_before;
            continue;
        }
        int rc = validate_doc(&op->doc, i, pd, 0);
        if (rc != RAG_OK)
            return rag_fail_prefix(rc, "log batch");
        pd->first = op->first;
        pd->n = op->n;
        for (size_t k = op->first; k < op->first + op->n; k++) {
            const rag_log_chunk *lc = &b->chunks[k];
            if (lc->start > lc->end || lc->end > pd->len)
                return rag_fail(RAG_ECORRUPT, "log batch: chunk %zu of document '%s' spans "
                                "bytes %llu..%llu of %zu", k - op->first, op->doc.id,
                                (unsigned long long)lc->start, (unsigned long long)lc->end,
                                pd->len);
            prep_chunk *pc = &p->chunks[k];
            pc->doc = i;
            pc->start = lc->start;
            pc->end = lc->end;
            pc->tokens = (int)lc->tokens;
            pc->heading = lc->heading;
            pc->hash = rag_text_norm_hash(op->doc.text + pc->start, pc->end - pc->start);
        }
    }
    return RAG_OK;
}

int rag_ingest_log_apply(rag_db *db, const char *collection, uint64_t seq,
                         const rag_log_batch *b)
{
    if (b->nchunks > 0 && b->dim != db->dim)
        return rag_fail(RAG_EMISMATCH, "log batch %llu: vectors of dimension %d, the store's "
                        "embedder has %d", (unsigned long long)seq, b->dim, db->dim);
    prep p;
    memset(&p, 0, sizeof p);
    p.now = b->now;
    p.coll_dim = db->dim;
    p.log_seq = seq;
    int rc = log_view(b, &p);
    if (rc == RAG_OK)
        rc = store_prepared(db, collection, &p);
    prep_free(&p);
    return rc;
}

/* Counts a document's final outcome and reports it. */
static void finish_doc(rag_ingest_run *r, run_doc *rd, rag_ingest_action action, size_t chunks)
{
    rag_ingest_summary *s = r->sum;
    /* a dry run's decisions are those taken before the transaction */
    const rag_dedup_found *f = r->opts.dry_run ? &rd->pre : &rd->found;
    if (f->kind == RAG_DUP_EXACT)
        s->dup_exact++;
    else if (f->kind == RAG_DUP_NEAR)
        s->dup_near++;
    if (action == RAG_INGEST_DUPLICATE) {
        s->dup_skipped++;
        s->dup_recorded += (uint64_t)rd->recorded;
    } else if (action == RAG_INGEST_STORED || action == RAG_INGEST_FLAGGED) {
        s->documents++;
        s->replaced += (uint64_t)rd->replaced;
        s->chunks += chunks;
        s->bytes += rd->doc.text_len;
        if (action == RAG_INGEST_FLAGGED)
            s->dup_flagged++;
        s->toxicity_flagged += rd->toxic_by != 0;
    }
    s->stale_removed += (uint64_t)rd->stale;
    if (action == RAG_INGEST_FILTERED || action == RAG_INGEST_PII_DROPPED ||
        action == RAG_INGEST_TOXIC)
        return; /* reported when it was offered */
    rag_ingest_event ev;
    event_init(&ev, action, rd->doc.id, rd->path);
    ev.pii_found = rd->pii_found;
    ev.toxicity = rd->toxicity;
    if (rd->toxic_by)
        ev.toxicity_detector = rag_toxicity_detector_name(rd->toxic_by);
    if (f->kind != RAG_DUP_NONE) {
        ev.canonical_id = f->canonical;
        ev.similarity = f->similarity;
        ev.duplicate_kind = f->kind == RAG_DUP_EXACT ? "exact" : "near";
    }
    emit(r, &ev);
}

/* Keeps a document for rag_ingest_run_retry (its strings are owned: a sync copies every
 * document it is offered). The run_doc is emptied. */
static int defer(rag_ingest_run *r, run_doc *rd)
{
    if (r->ndeferred == r->cap_deferred) {
        size_t cap = r->cap_deferred ? r->cap_deferred * 2 : 16;
        run_doc *q = rag_realloc(r->deferred, cap * sizeof *q);
        if (!q)
            return RAG_ENOMEM;
        r->deferred = q;
        r->cap_deferred = cap;
    }
    run_doc *d = &r->deferred[r->ndeferred++];
    *d = *rd;
    d->sig = NULL;
    d->flag_meta = NULL;
    d->action = DOC_STORE;
    memset(&d->pre, 0, sizeof d->pre);
    free(rd->sig);
    free(rd->flag_meta);
    memset(rd, 0, sizeof *rd);
    return RAG_OK;
}

void rag_ingest_run_set_seen(rag_ingest_run *r, int (*seen)(void *user, const char *id),
                             void *user)
{
    r->seen = seen;
    r->seen_user = user;
}

int rag_ingest_run_retry(rag_ingest_run *r)
{
    int rc = rag_ingest_run_flush(r);
    r->retrying = 1;
    rag_ingest_src src = {NULL, NULL, NULL, 0, 1};
    for (size_t i = 0; i < r->ndeferred && rc == RAG_OK; i++) {
        src.path = r->deferred[i].path;
        r->sum->seen--; /* counted when it was first offered */
        rc = rag_ingest_run_add(r, &r->deferred[i].doc, i, &src, NULL);
    }
    if (rc == RAG_OK)
        rc = rag_ingest_run_flush(r);
    for (size_t i = 0; i < r->ndeferred; i++)
        run_doc_free(&r->deferred[i]);
    r->ndeferred = 0;
    r->retrying = 0;
    return rc;
}

int rag_ingest_run_flush(rag_ingest_run *r)
{
    if (r->n == 0 || !r->db || r->opts.dry_run) {
        for (size_t i = 0; i < r->n; i++)
            run_doc_free(&r->docs[i]);
        r->n = r->bytes = 0;
        return RAG_OK;
    }
    rag_document *docs = rag_malloc(r->n * sizeof *docs);
    run_doc **rds = rag_malloc(r->n * sizeof *rds);
    prep p;
    memset(&p, 0, sizeof p);
    int rc = docs && rds ? RAG_OK : RAG_ENOMEM;
    for (size_t i = 0; rc == RAG_OK && i < r->n; i++) {
        docs[i] = r->docs[i].doc;
        rds[i] = &r->docs[i];
    }
    if (rc == RAG_OK)
        rc = commit_batch(r->db, r->collection, docs, r->n, rds, &r->policy, r, &p);
    if (rc == RAG_OK) {
        r->sum->duplicate_chunks += p.stats.duplicate_chunks;
        for (size_t i = 0; i < r->n && rc == RAG_OK; i++) {
            if (p.docs[i].skip)
                continue;
            if (r->docs[i].out == RAG_INGEST_DEFERRED)
                rc = defer(r, &r->docs[i]);
            else
                finish_doc(r, &r->docs[i], r->docs[i].out, p.docs[i].n);
        }
    } else if (r->policy.pii != RAG_PII_OFF) {
        char masked[1024];
        rag_ingest_run_mask(r, rag_errmsg(), masked, sizeof masked);
        rag_fail(rc, "%s", masked);
    }
    prep_free(&p);
    free(docs);
    free(rds);
    for (size_t i = 0; i < r->n; i++)
        run_doc_free(&r->docs[i]);
    r->n = r->bytes = 0;
    report_progress(r, 0);
    if (rc == RAG_OK && r->cancelled)
        rc = rag_fail(RAG_ECANCELED, "ingest cancelled by the caller (batches committed "
                      "before are kept)");
    return rc;
}

/* ---- runs ----------------------------------------------------------------------------------- */

int rag_ingest_run_begin(rag_db *db, const rag_ingest_options *opts, int sync,
                         rag_ingest_summary *sum, rag_ingest_run **out)
{
    *out = NULL;
    rag_ingest_options o;
    rag_ingest_options_init(&o);
    if (opts) {
        if (opts->version < 1)
            return rag_fail(RAG_EINVAL, "ingest options: version is 0 (call "
                            "rag_ingest_options_init)");
        /* a caller built against an older header passes a shorter struct */
        if (opts->version >= 3)
            o = *opts;
        else
            memcpy(&o, opts, opts->version >= 2 ? offsetof(rag_ingest_options, erase)
                                                : offsetof(rag_ingest_options, skip_unchanged));
        o.version = RAG_INGEST_OPTIONS_VERSION;
        if (!o.batch_documents)
            o.batch_documents = DEFAULT_BATCH_DOCS;
        if (!o.batch_bytes)
            o.batch_bytes = DEFAULT_BATCH_BYTES;
    }
    if (!db && !o.dry_run)
        return rag_fail(RAG_EINVAL, "ingest: db is NULL (only a dry run needs no store)");
    if (db && db->opts.read_only && !o.dry_run)
        return rag_fail(RAG_EREADONLY, "store is open read-only");
    const char *coll = o.collection ? o.collection : RAG_DEFAULT_COLLECTION;
    if (strlen(coll) > 128)
        return rag_fail(RAG_EINVAL, "invalid collection name (longer than 128 bytes)");
    if (o.metadata_json && *o.metadata_json) {
        json_t *m = json_loads(o.metadata_json, 0, NULL);
        int ok = json_is_object(m);
        json_decref(m);
        if (!ok)
            return rag_fail(RAG_EPARSE, "ingest options: metadata_json must be a JSON object");
    }
    rag_ingest_run *r = rag_calloc(1, sizeof *r);
    if (!r)
        return RAG_ENOMEM;
    r->db = db;
    r->opts = o;
    r->sync = sync;
    r->single = o.single_transaction;
    rag_ingest_summary_init(&r->own_sum);
    r->sum = sum ? sum : &r->own_sum;
    rag_ingest_summary_init(r->sum);
    snprintf(r->collection, sizeof r->collection, "%s", coll);
    r->t0 = r->last_progress = rag_monotonic();
    int rc = RAG_OK;
    /* The policy: the collection's own, else what a new collection would get. */
    rag_coll *c = db ? rag_db_find_coll(db, coll) : NULL;
    if (c) {
        rag_txn *txn = NULL;
        if ((rc = rag_store_read(db->st, &txn)) == RAG_OK)
            rc = rag_policy_read(txn, c->id, &r->policy);
        rag_txn_end(txn);
    } else {
        rc = rag_policy_from_user(db ? db->default_policy : o.policy, &r->policy);
    }
    r->policy.language = NULL;
    unsigned char key[64];
    size_t klen = 0;
    if (rc == RAG_OK && r->policy.pii == RAG_PII_HASH)
        rc = rag_policy_pii_key(db, !o.dry_run, key, &klen);
    if (rc == RAG_OK && r->policy.toxicity != RAG_TOXICITY_OFF)
        rc = db ? rag_toxicity_for_db(db, r->policy.toxicity_detectors, &r->tox)
                : rag_toxicity_open(r->policy.toxicity_detectors, NULL, NULL, &r->tox);
    if (rc == RAG_OK && (r->policy.pii != RAG_PII_OFF || r->policy.quality ||
                         r->policy.toxicity != RAG_TOXICITY_OFF || o.strip_boilerplate))
        rc = rag_hygiene_create(&r->policy, key, klen, r->tox, o.strip_boilerplate, &r->hy);
    memset(key, 0, sizeof key);
    if (rc == RAG_OK && r->policy.dedup != RAG_DEDUP_OFF) {
        rag_dedup_config dc;
        rag_dedup_config_init(&dc);
        dc.threshold = r->policy.near_dup_threshold > 1 ? 1 : r->policy.near_dup_threshold;
        dc.near = r->policy.near_dup_threshold <= 1;
        rc = rag_dedup_create(&dc, &r->mem);
    }
    if (rc == RAG_OK && o.erase && db && !o.dry_run && (rc = rag_erase_begin_replace(db, coll)) ==
        RAG_OK)
        r->erase = 1;
    if (rc != RAG_OK) {
        rag_hygiene_free(r->hy);
        rag_toxicity_close(r->tox);
        rag_dedup_free(r->mem);
        free(r);
        return rc;
    }
    *out = r;
    return RAG_OK;
}

int rag_ingest_run_collect(rag_ingest_run *r, const rag_document *doc, const char *group)
{
    if (!r->hy)
        return RAG_OK;
    size_t len = doc->text_len == (size_t)-1 ? strlen(doc->text) : doc->text_len;
    return rag_hygiene_collect(r->hy, group, doc->text, len);
}

int rag_ingest_merge_metadata(const char *extra, const rag_document *d, char **out)
{
    *out = NULL;
    if (!extra || !*extra)
        return RAG_OK;
    json_t *base = json_loads(extra, 0, NULL);
    json_t *own = d->metadata_json && *d->metadata_json ? json_loads(d->metadata_json, 0, NULL)
                                                        : NULL;
    int rc = RAG_OK;
    if (own && !json_is_object(own))
        rc = rag_fail(RAG_EPARSE, "document '%s': metadata must be a JSON object", d->id);
    else if (!base || (own && json_object_update(base, own) != 0) ||
             !(*out = json_dumps(base, JSON_COMPACT | JSON_PRESERVE_ORDER)))
        rc = rag_fail(RAG_ENOMEM, "out of memory");
    json_decref(base);
    json_decref(own);
    return rc;
}

/* Reports an invalid document (its message masked under a PII policy). */
static int fail_doc(rag_ingest_run *r, const rag_document *d, const char *path, int rc)
{
    char masked[1024];
    rag_ingest_run_mask(r, rag_errmsg(), masked, sizeof masked);
    if (r->single)
        return rag_fail(rc, "%s", masked);
    r->sum->failed++;
    r->last_fail = rc;
    snprintf(r->last_reason, sizeof r->last_reason, "%s", masked);
    rag_ingest_event ev;
    event_init(&ev, RAG_INGEST_FAILED, d->id, path);
    ev.reason = masked;
    ev.status = rc;
    rag_clear_error();
    return emit(r, &ev);
}

/* Sync: 1 when the collection holds this document with the same text, title, source and
 * metadata (same size and modification time, else same content hash); *exists says
 * whether it holds the id at all. */
static int same_as_stored(rag_ingest_run *r, const rag_document *d, size_t len, const char *meta,
                          int *exists, int *same)
{
    *exists = *same = 0;
    rag_coll *c = rag_db_find_coll(r->db, r->collection);
    if (!c)
        return RAG_OK;
    rag_txn *txn = NULL;
    rag_doc_rec *old = NULL;
    int rc = rag_store_read(r->db->st, &txn);
    if (rc != RAG_OK)
        return rc;
    rc = rag_store_doc_get(txn, c->id, d->id, &old);
    rag_txn_end(txn);
    if (rc == RAG_ENOTFOUND) {
        rag_clear_error();
        return RAG_OK;
    }
    if (rc != RAG_OK)
        return rc;
    *exists = 1;
    int same_meta = strcmp(old->title, d->title ? d->title : "") == 0 &&
                    strcmp(old->source, d->source ? d->source : "") == 0;
    if (same_meta) {
        json_t *j = meta && *meta ? json_loads(meta, 0, NULL) : NULL;
        char *m = j ? json_dumps(j, JSON_COMPACT) : NULL;
        same_meta = strcmp(old->metadata, m ? m : "") == 0;
        free(m);
        json_decref(j);
    }
    *same = same_meta && old->text_len == len &&
            ((d->source_mtime && old->source_mtime == d->source_mtime) ||
             old->content_hash == rag_hash_bytes(d->text, len));
    rag_doc_rec_free(old);
    return RAG_OK;
}

/* The duplicate pre-check of a cleaned document against the store's snapshot and this run's
 * canonical documents; a document that is none's duplicate becomes canonical in the run. */
static int precheck_duplicate(rag_ingest_run *r, run_doc *rd)
{
    if (!(rd->sig = rag_malloc(sizeof *rd->sig)))
        return RAG_ENOMEM;
    int rc = rag_dedup_signature(rd->doc.text, rd->doc.text_len, rd->sig);
    rag_coll *c = r->db ? rag_db_find_coll(r->db, r->collection) : NULL;
    if (rc == RAG_OK && c) {
        rag_txn *txn = NULL;
        if ((rc = rag_store_read(r->db->st, &txn)) == RAG_OK)
            rc = rag_dedup_store_find(txn, c->id, rd->sig, r->policy.near_dup_threshold,
                                      rd->doc.id, &rd->pre);
        rd->pre_snapshot = rc == RAG_OK ? rag_txn_id(txn) : 0;
        rag_txn_end(txn);
    }
    if (rc != RAG_OK || rd->pre.kind != RAG_DUP_NONE)
        return rc;
    rag_dup_match m;
    if ((rc = rag_dedup_add_sig(r->mem, NULL, rd->sig, &m)) != RAG_OK)
        return rc;
    if (m.kind != RAG_DUP_NONE && strcmp(m.canonical_id, rd->doc.id) != 0) {
        rd->pre.kind = m.kind;
        snprintf(rd->pre.canonical, sizeof rd->pre.canonical, "%s", m.canonical_id);
        rd->pre.similarity = m.similarity;
        return RAG_OK;
    }
    return m.kind == RAG_DUP_NONE ? rag_dedup_add_sig(r->mem, rd->doc.id, rd->sig, &m) : RAG_OK;
}

/* Makes room for one more queued document; flushes first when the batch is full or already
 * holds this id (so a repeated id is stored in order, the later version replacing). */
static int make_room(rag_ingest_run *r, const char *id)
{
    int rc = RAG_OK;
    if (!r->single) {
        int again = 0;
        for (size_t i = 0; i < r->n && !again; i++)
            again = strcmp(r->docs[i].doc.id, id) == 0;
        if (again)
            rc = rag_ingest_run_flush(r);
    }
    if (rc == RAG_OK && r->n == r->cap) {
        size_t cap = r->cap ? r->cap * 2 : 64;
        run_doc *q = rag_realloc(r->docs, cap * sizeof *q);
        if (!q)
            return RAG_ENOMEM;
        r->docs = q;
        r->cap = cap;
    }
    return rc;
}

/* Points rd->doc's strings at owned copies where the caller's are not kept (borrowed 0),
 * taking what the hygiene stage made (res, may be NULL) and the merged metadata (*meta). */
static int own_strings(run_doc *rd, const rag_document *d, size_t len, int borrowed,
                       rag_hygiene_result *res, char **meta)
{
    char *made[5] = {NULL, NULL, NULL, NULL, NULL};
    rd->doc = *d;
    rd->doc.text_len = len;
    if (res && res->text) {
        made[1] = res->text;
        rd->doc.text_len = res->len;
        res->text = NULL;
    }
    if (res && res->title) {
        made[2] = res->title;
        res->title = NULL;
    }
    if (res && res->metadata_json) {
        made[4] = res->metadata_json;
        res->metadata_json = NULL;
    } else if (*meta) {
        made[4] = *meta;
        *meta = NULL;
    }
    const char *src[5] = {d->id, d->text, d->title, d->source, d->metadata_json};
    const char **dst[5] = {&rd->doc.id, &rd->doc.text, &rd->doc.title, &rd->doc.source,
                           &rd->doc.metadata_json};
    int rc = RAG_OK;
    for (int k = 0; k < 5; k++) {
        if (made[k])
            rd->own[k] = made[k];
        else if (!borrowed && src[k] && rc == RAG_OK &&
                 !(rd->own[k] = k == 1 ? rag_strndup(src[k], len) : rag_strdup(src[k])))
            rc = RAG_ENOMEM;
        if (rd->own[k])
            *dst[k] = rd->own[k];
    }
    return rc;
}

int rag_ingest_run_add(rag_ingest_run *r, const rag_document *d, size_t index,
                       const rag_ingest_src *src, rag_run_outcome *outcome)
{
    rag_run_outcome oc = RAG_RUN_FAILED;
    if (outcome)
        *outcome = oc;
    if (r->cancelled)
        return rag_fail(RAG_ECANCELED, "ingest cancelled by the caller");
    const char *path = src && src->path && *src->path ? src->path : NULL;
    int borrowed = src ? src->borrowed : 0;
    rag_ingest_summary *s = r->sum;
    s->seen++;
    char *meta = NULL;
    rag_hygiene_result res;
    memset(&res, 0, sizeof res);
    int dedup = r->policy.dedup != RAG_DEDUP_OFF;
    /* Validation first (a single transaction without any filter leaves it to the commit). */
    prep_doc pd;
    memset(&pd, 0, sizeof pd);
    size_t len = d->text && d->text_len == (size_t)-1 ? strlen(d->text) : d->text_len;
    int rc = RAG_OK, validated = 0;
    if (!r->single || r->hy || dedup || r->sync || r->opts.metadata_json) {
        rc = validate_doc(d, index, &pd, 0);
        validated = 1;
        free(pd.metadata);
        if (rc == RAG_ENOMEM)
            return rc;
        if (rc != RAG_OK)
            return fail_doc(r, d, path, rc);
    }
    if ((rc = rag_ingest_merge_metadata(r->opts.metadata_json, d, &meta)) != RAG_OK) {
        rc = rc == RAG_EPARSE ? fail_doc(r, d, path, rc) : rc;
        goto cleanup;
    }
    rag_document cur = *d;
    cur.text_len = len;
    if (meta)
        cur.metadata_json = meta;
    if (r->hy) {
        rc = rag_hygiene_apply(r->hy, &cur, src ? src->group : NULL, src ? src->pages : NULL,
                               src ? src->npages : 0, &res);
        if (rc == RAG_EPARSE) {
            rc = fail_doc(r, d, path, rc);
            goto cleanup;
        }
        if (rc != RAG_OK)
            goto cleanup;
        count_judged(s, &r->policy, &res);
    }
    if ((rc = make_room(r, d->id)) != RAG_OK)
        goto cleanup;
    run_doc *rd = &r->docs[r->n];
    memset(rd, 0, sizeof *rd);
    rd->pii_found = res.pii_found;
    rd->toxicity = r->hy ? res.toxicity : -1;
    rd->toxic_by = res.toxic_by;
    rd->validated = validated; /* (the hygiene stage keeps text valid UTF-8) */
    if (path && !(rd->path = rag_strdup(path))) {
        rc = RAG_ENOMEM;
        goto cleanup;
    }
    if (res.verdict != RAG_HYGIENE_STORE) {
        /* rejected: only the id goes on (an older version of it is removed) */
        rag_document stub;
        rag_document_init(&stub);
        stub.id = d->id;
        stub.text = "";
        stub.source = d->source;
        rd->action = DOC_REJECT;
        rd->reject = res.verdict == RAG_HYGIENE_FILTERED ? RAG_INGEST_FILTERED
                     : res.verdict == RAG_HYGIENE_TOXIC  ? RAG_INGEST_TOXIC
                                                         : RAG_INGEST_PII_DROPPED;
        char *none = NULL;
        rc = own_strings(rd, &stub, 0, 0, NULL, &none);
        r->n++;
        if (rc != RAG_OK)
            goto cleanup;
        rag_ingest_event ev;
        char why[64];
        event_init(&ev, rd->reject, d->id, path);
        ev.pii_found = res.pii_found;
        count_rejected(s, &res);
        if (rd->reject == RAG_INGEST_FILTERED) {
            ev.reason = rag_quality_verdict_name(res.quality);
        } else if (rd->reject == RAG_INGEST_TOXIC) {
            snprintf(why, sizeof why, "toxicity %.3f (%s)", res.toxicity,
                     rag_toxicity_detector_name(res.toxic_by));
            ev.reason = why;
            ev.toxicity = res.toxicity;
            ev.toxicity_detector = rag_toxicity_detector_name(res.toxic_by);
        } else {
            ev.reason = "personal data found";
        }
        oc = RAG_RUN_REJECTED;
        rc = emit(r, &ev);
        goto queued;
    }
    rc = own_strings(rd, &cur, len, borrowed, &res, &meta);
    r->n++;
    if (rc != RAG_OK)
        goto cleanup;
    oc = RAG_RUN_QUEUED;
    if (r->sync) {
        int exists = 0, same = 0;
        if ((rc = same_as_stored(r, &rd->doc, rd->doc.text_len, rd->doc.metadata_json, &exists,
                                 &same)) != RAG_OK)
            goto cleanup;
        if (same) {
            s->unchanged++;
            run_doc_free(rd);
            r->n--;
            rag_ingest_event ev;
            event_init(&ev, RAG_INGEST_UNCHANGED, d->id, path);
            oc = RAG_RUN_UNCHANGED;
            rc = emit(r, &ev);
            goto cleanup;
        }
        oc = exists ? RAG_RUN_QUEUED_UPDATE : RAG_RUN_QUEUED;
    }
    if (dedup) {
        if ((rc = precheck_duplicate(r, rd)) != RAG_OK)
            goto cleanup;
        if (rd->pre.kind != RAG_DUP_NONE && r->policy.dedup == RAG_DEDUP_SKIP) {
            if (r->seen && !r->retrying && !r->opts.dry_run &&
                !r->seen(r->seen_user, rd->pre.canonical)) {
                /* perhaps the new name of a file whose old name vanishes: decided again
                 * once the sync has deleted what vanished */
                r->n--;
                rc = defer(r, rd);
                goto cleanup;
            }
            rd->action = DOC_DUP;
            oc = RAG_RUN_REJECTED;
        }
    }
queued:
    r->bytes += rd->doc.text_len;
    if (r->opts.dry_run) {
        /* nothing is stored: the decision taken now is final */
        size_t chunks = 0;
        if (rd->action == DOC_STORE) {
            token_counter tc;
            rag_chunker_config cfg;
            rag_chunk_list cl = {0};
            prep_env env = env_of_db(r->db);
            if (r->db)
                token_counter_init(r->db->emb, &tc);
            chunk_config(&env, &tc, &rd->doc, &cfg);
            if (rag_chunk_text(&cfg, rd->doc.text, rd->doc.text_len, &cl) == RAG_OK)
                chunks = cl.count;
            rag_chunk_list_free(&cl);
        }
        rag_ingest_action a = rd->action == DOC_DUP ? RAG_INGEST_DUPLICATE
                              : rd->action == DOC_REJECT ? rd->reject
                              : rd->pre.kind && r->policy.dedup == RAG_DEDUP_FLAG
                                  ? RAG_INGEST_FLAGGED
                                  : RAG_INGEST_STORED;
        finish_doc(r, rd, a, chunks);
        run_doc_free(rd);
        r->n--;
        r->bytes = 0;
    } else if (!r->single &&
               (r->n >= r->opts.batch_documents || r->bytes >= r->opts.batch_bytes)) {
        rc = rag_ingest_run_flush(r);
    }
    if (rc == RAG_OK && r->cancelled)
        rc = rag_fail(RAG_ECANCELED, "ingest cancelled by the caller (batches committed before "
                      "are kept)");
cleanup:
    if (outcome)
        *outcome = oc;
    free(meta);
    rag_hygiene_result_free(&res);
    return rc;
}

int rag_ingest_run_end(rag_ingest_run *r, int rc)
{
    if (!r)
        return rc;
    if (rc == RAG_OK)
        rc = rag_ingest_run_flush(r);
    for (size_t i = 0; i < r->n; i++)
        run_doc_free(&r->docs[i]);
    free(r->docs);
    for (size_t i = 0; i < r->ndeferred; i++)
        run_doc_free(&r->deferred[i]);
    free(r->deferred);
    if (r->hy) {
        const rag_quality_stats *q = rag_hygiene_stats(r->hy);
        r->sum->boilerplate_lines = q->boilerplate_lines;
        r->sum->boilerplate_bytes = q->boilerplate_bytes;
    }
    r->sum->seconds = rag_monotonic() - r->t0;
    report_progress(r, 1);
    if (rc == RAG_OK && r->cancelled)
        rc = rag_fail(RAG_ECANCELED, "ingest cancelled by the caller");
    rag_hygiene_free(r->hy);
    rag_toxicity_close(r->tox);
    rag_dedup_free(r->mem);
    /* an erasure: what the run replaced or removed leaves no bytes behind (an error left the
     * intent in the store: the next erasure or read-write open finishes it) */
    if (r->erase && rc == RAG_OK)
        rc = rag_erase_run(r->db, NULL);
    free(r);
    return rc;
}

/* ---- public entry points ------------------------------------------------------------------ */

int rag_ingest_documents(rag_db *db, const rag_document *docs, size_t n,
                         const rag_ingest_options *opts, rag_ingest_summary *summary)
{
    rag_clear_error();
    if (summary)
        rag_ingest_summary_init(summary);
    if ((!db && !(opts && opts->dry_run)) || (!docs && n))
        return rag_fail(RAG_EINVAL, "rag_ingest_documents: NULL argument");
    rag_ingest_run *r = NULL;
    int skip_unchanged = opts && opts->version >= 2 && opts->skip_unchanged && db;
    int rc = rag_ingest_run_begin(db, opts, skip_unchanged, summary, &r);
    if (rc != RAG_OK)
        return rc;
    rag_ingest_src src = {NULL, NULL, NULL, 0, 1};
    for (size_t i = 0; i < n && rc == RAG_OK; i++) {
        rc = rag_ingest_run_add(r, &docs[i], i, &src, NULL);
        rag_ingest_run_progress(r, r->in_done + (docs[i].text ? (docs[i].text_len == (size_t)-1
                                                                    ? strlen(docs[i].text)
                                                                    : docs[i].text_len)
                                                              : 0), 0);
    }
    char coll[RAG_DOC_ID_MAX + 1];
    snprintf(coll, sizeof coll, "%s", rag_ingest_run_collection(r));
    rc = rag_ingest_run_end(r, rc);
    if (rc == RAG_OK && skip_unchanged && !opts->dry_run)
        rc = rag_db_coll_update(db, coll, -1, rag_now());
    return rc;
}

int rag_ingest(rag_db *db, const char *collection, const rag_document *docs, size_t n,
               rag_ingest_stats *stats)
{
    rag_clear_error();
    if (stats)
        memset(stats, 0, sizeof *stats);
    if (!db || (!docs && n))
        return rag_fail(RAG_EINVAL, "rag_ingest: NULL argument");
    if (db->opts.read_only)
        return rag_fail(RAG_EREADONLY, "store is open read-only");
    rag_ingest_options o;
    rag_ingest_options_init(&o);
    o.collection = collection;
    o.single_transaction = 1;
    rag_ingest_summary s;
    int rc = rag_ingest_documents(db, docs, n, &o, &s);
    if (rc == RAG_OK && stats) {
        stats->documents = s.documents;
        stats->replaced = s.replaced;
        stats->chunks = s.chunks;
        stats->duplicate_chunks = s.duplicate_chunks;
        stats->bytes = s.bytes;
    }
    return rc;
}
/* ---- delete ------------------------------------------------------------------------------ */

typedef struct delete_arg {
    rag_coll *coll;
    const char *const *ids;
    size_t n;
    int missing_ok;              /* skip absent ids instead of failing */
    uint64_t ntombs, deleted;
} delete_arg;

static int delete_fn(rag_txn *txn, void *user)
{
    delete_arg *a = user;
    rag_coll_rec rec;
    a->ntombs = a->deleted = 0;
    int rc = rag_store_coll_get(txn, a->coll->name, &rec);
    for (size_t i = 0; i < a->n && rc == RAG_OK; i++) {
        rag_doc_rec *old = NULL;
        rc = rag_store_doc_get(txn, a->coll->id, a->ids[i], &old);
        if (rc == RAG_ENOTFOUND) {
            if (a->missing_ok) {
                rc = RAG_OK;
                continue;
            }
            return rag_fail(RAG_ENOTFOUND, "document '%s' not found in collection '%s'",
                            a->ids[i], a->coll->name);
        }
        if (rc == RAG_OK)
            rc = remove_doc(txn, a->coll->an, a->coll->id, old, &rec, &a->ntombs);
        if (rc == RAG_OK)
            a->deleted++;
        rag_doc_rec_free(old);
    }
    if (rc == RAG_OK)
        rc = rag_store_coll_put(txn, a->coll->name, &rec);
    return rc;
}

int rag_db_delete_docs(rag_db *db, const char *collection, const char *const *ids, size_t n,
                       int missing_ok, uint64_t *deleted)
{
    if (deleted)
        *deleted = 0;
    if (db->opts.read_only)
        return rag_fail(RAG_EREADONLY, "store is open read-only");
    pthread_mutex_lock(&db->write_lock);
    delete_arg a = {NULL, ids, n, missing_ok, 0, 0};
    int rc = rag_db_ensure_coll(db, collection, 0, &a.coll, NULL);
    if (rc == RAG_OK) {
        atomic_fetch_add(&a.coll->writing, 1);
        rc = rag_store_write(db->st, delete_fn, &a);
        if (rc == RAG_OK) {
            pthread_rwlock_wrlock(&a.coll->lock);
            a.coll->tombstones += a.ntombs;
            a.coll->dirty = a.coll->dirty || a.ntombs > 0;
            pthread_rwlock_unlock(&a.coll->lock);
        }
        atomic_fetch_sub(&a.coll->writing, 1);
    }
    pthread_mutex_unlock(&db->write_lock);
    if (rc == RAG_OK && deleted)
        *deleted = a.deleted;
    return rc;
}

int rag_delete(rag_db *db, const char *collection, const char *doc_id)
{
    rag_clear_error();
    if (!db || !doc_id)
        return rag_fail(RAG_EINVAL, "rag_delete: NULL argument");
    return rag_db_delete_docs(db, collection ? collection : RAG_DEFAULT_COLLECTION, &doc_id, 1,
                              0, NULL);
}
