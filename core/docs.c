/* docs.c - reading stored documents back: one document with all its chunks, a chunk's
 * vector, and pages of a collection's documents in id order with an optional filter
 * (rag_document_get/list, rag_chunk_vector). */
#include "db.h"
#include "filter.h"
#include "status.h"
#include "store.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#define LIST_LIMIT_DEFAULT 100

struct rag_doc {
    rag_doc_info info;
    rag_hit *chunks;            /* text order; document strings point into info */
    size_t n;
};

struct rag_doc_list {
    rag_doc_info *docs;
    size_t n, cap;
    const char *next;           /* id of the last document when more follow, else NULL */
};

/* ---- document records -> rag_doc_info ------------------------------------------------ */

static void info_clear(rag_doc_info *in)
{
    free((char *)in->id);
    free((char *)in->source);
    free((char *)in->title);
    free((char *)in->metadata_json);
}

static char *copy_or(const char *s, const char *fallback)
{
    return rag_strdup(s && *s ? s : fallback);
}

/* Fills `in` with copies of record `d`'s fields. RAG_ENOMEM leaves `in` cleared. */
static int info_from_rec(rag_doc_info *in, const rag_doc_rec *d, int64_t now)
{
    memset(in, 0, sizeof *in);
    in->id = rag_strdup(d->id);
    in->source = copy_or(d->source, "");
    in->title = copy_or(d->title, "");
    in->metadata_json = copy_or(d->metadata, "{}");
    in->source_mtime = d->source_mtime;
    in->ingested_at = d->ingested_at;
    in->updated_at = d->updated_at;
    in->valid_until = d->valid_until;
    in->text_bytes = d->text_len;
    in->chunks = d->nchunks;
    in->expired = d->valid_until != 0 && d->valid_until <= now;
    in->content_hash = d->content_hash;
    if (!in->id || !in->source || !in->title || !in->metadata_json) {
        info_clear(in);
        memset(in, 0, sizeof *in);
        return RAG_ENOMEM;
    }
    return RAG_OK;
}

/* Starts a snapshot and looks collection `name` up in it. */
static int open_coll(rag_db *db, const char *name, rag_txn **txn, uint32_t *coll)
{
    rag_coll_rec rec;
    int rc = rag_store_read(db->st, txn);
    if (rc == RAG_OK && (rc = rag_store_coll_get(*txn, name, &rec)) == RAG_ENOTFOUND)
        rc = rag_fail(RAG_ENOTFOUND, "collection '%s' does not exist", name);
    if (rc == RAG_OK)
        *coll = rec.id;
    return rc;
}

/* ---- one document ---------------------------------------------------------------------- */

const rag_doc_info *rag_doc_get_info(const rag_doc *doc)
{
    return doc ? &doc->info : NULL;
}

size_t rag_doc_chunk_count(const rag_doc *doc)
{
    return doc ? doc->n : 0;
}

const rag_hit *rag_doc_chunk(const rag_doc *doc, size_t i)
{
    return doc && i < doc->n ? &doc->chunks[i] : NULL;
}

void rag_doc_free(rag_doc *doc)
{
    if (!doc)
        return;
    for (size_t i = 0; i < doc->n; i++) {
        free((char *)doc->chunks[i].text);
        free((char *)doc->chunks[i].heading_path);
    }
    free(doc->chunks);
    info_clear(&doc->info);
    free(doc);
}

static int cmp_chunk_start(const void *a, const void *b)
{
    const rag_hit *x = a, *y = b;
    if (x->start != y->start)
        return x->start < y->start ? -1 : 1;
    return x->chunk_id < y->chunk_id ? -1 : x->chunk_id > y->chunk_id;
}

/* Reads the chunks `ids` of the document described by doc->info into doc->chunks. */
static int read_chunks(rag_txn *txn, uint32_t coll, const uint64_t *ids, rag_doc *doc)
{
    const rag_doc_info *in = &doc->info;
    doc->chunks = rag_calloc(in->chunks ? in->chunks : 1, sizeof *doc->chunks);
    if (!doc->chunks)
        return RAG_ENOMEM;
    for (uint32_t i = 0; i < in->chunks; i++) {
        rag_chunk_rec *ch = NULL;
        int rc = rag_store_chunk_get(txn, coll, ids[i], &ch);
        if (rc == RAG_ENOTFOUND)
            rc = rag_fail(RAG_ECORRUPT, "document '%s': chunk %llu is missing from the store "
                          "(run `ragcore check`)", in->id, (unsigned long long)ids[i]);
        if (rc != RAG_OK)
            return rc;
        rag_hit *h = &doc->chunks[doc->n++];
        h->chunk_id = ids[i];
        h->score = h->dense_score = h->lexical_score = NAN;
        h->doc_id = in->id;
        h->title = in->title;
        h->source = in->source;
        h->metadata_json = in->metadata_json;
        h->source_mtime = in->source_mtime;
        h->ingested_at = in->ingested_at;
        h->updated_at = in->updated_at;
        h->valid_until = in->valid_until;
        h->text = ch->text;
        h->text_len = ch->text_len;
        h->heading_path = ch->heading ? ch->heading : rag_strdup("");
        ch->text = ch->heading = NULL;
        h->start = ch->start;
        h->end = ch->end;
        h->token_count = (int)ch->tokens;
        rag_chunk_rec_free(ch);
        if (!h->text || !h->heading_path)
            return RAG_ENOMEM;
    }
    qsort(doc->chunks, doc->n, sizeof *doc->chunks, cmp_chunk_start);
    return RAG_OK;
}

int rag_document_get(rag_db *db, const char *collection, const char *id, rag_doc **out)
{
    rag_clear_error();
    if (!out)
        return rag_fail(RAG_EINVAL, "rag_document_get: out is NULL");
    *out = NULL;
    if (!db || !id)
        return rag_fail(RAG_EINVAL, "rag_document_get: NULL argument");
    if (!*id || strlen(id) > RAG_DOC_ID_MAX)
        return rag_fail(RAG_EINVAL, "document id must be 1..%d bytes, got %zu", RAG_DOC_ID_MAX,
                        strlen(id));
    const char *name = collection ? collection : RAG_DEFAULT_COLLECTION;
    rag_txn *txn = NULL;
    rag_doc_rec *d = NULL;
    rag_doc *doc = NULL;
    uint32_t coll = 0;
    int rc = open_coll(db, name, &txn, &coll);
    if (rc == RAG_OK && (rc = rag_store_doc_get(txn, coll, id, &d)) == RAG_ENOTFOUND)
        rc = rag_fail(RAG_ENOTFOUND, "document '%s' does not exist in collection '%s'", id, name);
    if (rc == RAG_OK && !(doc = rag_calloc(1, sizeof *doc)))
        rc = RAG_ENOMEM;
    if (rc == RAG_OK)
        rc = info_from_rec(&doc->info, d, rag_now());
    if (rc == RAG_OK)
        rc = read_chunks(txn, coll, d->chunk_ids, doc);
    rag_txn_end(txn);
    rag_doc_rec_free(d);
    if (rc != RAG_OK) {
        rag_doc_free(doc);
        return rc;
    }
    *out = doc;
    return RAG_OK;
}

int rag_chunk_vector(rag_db *db, const char *collection, uint64_t chunk_id, float *out,
                     int dim)
{
    rag_clear_error();
    if (!db || !out)
        return rag_fail(RAG_EINVAL, "rag_chunk_vector: NULL argument");
    if (dim != db->dim)
        return rag_fail(RAG_EINVAL, "rag_chunk_vector: dimension %d asked, the store has %d",
                        dim, db->dim);
    const char *name = collection ? collection : RAG_DEFAULT_COLLECTION;
    rag_txn *txn = NULL;
    uint32_t coll = 0;
    int rc = open_coll(db, name, &txn, &coll);
    if (rc == RAG_OK && (rc = rag_store_vec_get(txn, coll, chunk_id, out, dim)) == RAG_ENOTFOUND)
        rc = rag_fail(RAG_ENOTFOUND, "collection '%s' has no vector for chunk %llu", name,
                      (unsigned long long)chunk_id);
    rag_txn_end(txn);
    return rc;
}

/* ---- pages of documents ------------------------------------------------------------------ */

void rag_list_options_init(rag_list_options *o)
{
    memset(o, 0, sizeof *o);
    o->version = RAG_LIST_OPTIONS_VERSION;
    o->limit = LIST_LIMIT_DEFAULT;
}

size_t rag_doc_list_count(const rag_doc_list *l)
{
    return l ? l->n : 0;
}

const rag_doc_info *rag_doc_list_get(const rag_doc_list *l, size_t i)
{
    return l && i < l->n ? &l->docs[i] : NULL;
}

const char *rag_doc_list_next(const rag_doc_list *l)
{
    return l ? l->next : NULL;
}

void rag_doc_list_free(rag_doc_list *l)
{
    if (!l)
        return;
    for (size_t i = 0; i < l->n; i++)
        info_clear(&l->docs[i]);
    free(l->docs);
    free(l);
}

typedef struct list_scan {
    rag_doc_list *l;
    const rag_filter *filter;
    size_t limit;
    int include_expired;
    int64_t now;
    int more;                   /* a matching document follows the page */
    int rc;
} list_scan;

#define SCAN_STOP 1

/* Adds document `d` (borrowed) to the page when it qualifies; SCAN_STOP once the page is
 * full and one more match has been seen. */
static int list_visit(void *user, const rag_doc_rec *d)
{
    list_scan *s = user;
    if (!s->include_expired && d->valid_until && d->valid_until <= s->now)
        return 0;
    if (s->filter) {
        rag_filter_doc fd = {d->id, d->source, d->title, d->metadata, d->source_mtime,
                             d->ingested_at, d->updated_at};
        if (!rag_filter_match(s->filter, &fd))
            return 0;
    }
    rag_doc_list *l = s->l;
    if (l->n == s->limit) {
        s->more = 1;
        return SCAN_STOP;
    }
    if (l->n == l->cap) {
        size_t cap = l->cap ? l->cap * 2 : 16;
        rag_doc_info *p = rag_realloc(l->docs, cap * sizeof *p);
        if (!p) {
            s->rc = RAG_ENOMEM;
            return SCAN_STOP;
        }
        l->docs = p;
        l->cap = cap;
    }
    int rc = info_from_rec(&l->docs[l->n], d, s->now);
    if (rc != RAG_OK) {
        s->rc = rc;
        return SCAN_STOP;
    }
    l->n++;
    return 0;
}

/* Visits the documents of a finite candidate set (a filter on doc_id), in id order. */
static int scan_candidates(rag_txn *txn, uint32_t coll, const char *const *ids, size_t n,
                           const char *after, list_scan *s)
{
    for (size_t i = 0; i < n; i++) {
        if (after && strcmp(ids[i], after) <= 0)
            continue;
        if (strlen(ids[i]) > RAG_DOC_ID_MAX || !*ids[i])
            continue;
        rag_doc_rec *d = NULL;
        int rc = rag_store_doc_get(txn, coll, ids[i], &d);
        if (rc == RAG_ENOTFOUND)
            continue;
        if (rc != RAG_OK)
            return rc;
        rc = list_visit(s, d);
        rag_doc_rec_free(d);
        if (rc != 0)
            break;
    }
    return RAG_OK;
}

int rag_document_list(rag_db *db, const rag_list_options *opts, rag_doc_list **out)
{
    rag_clear_error();
    if (!out)
        return rag_fail(RAG_EINVAL, "rag_document_list: out is NULL");
    *out = NULL;
    if (!db)
        return rag_fail(RAG_EINVAL, "rag_document_list: db is NULL");
    rag_list_options o;
    rag_list_options_init(&o);
    if (opts) {
        if (opts->version < 1)
            return rag_fail(RAG_EINVAL, "list options version is 0 (call rag_list_options_init)");
        o = *opts;
    }
    if (o.limit == 0)
        o.limit = LIST_LIMIT_DEFAULT;
    if (o.limit > RAG_LIST_LIMIT_MAX)
        return rag_fail(RAG_EINVAL, "limit must be 1..%d, got %zu", RAG_LIST_LIMIT_MAX, o.limit);
    if (o.after && strlen(o.after) > RAG_DOC_ID_MAX)
        return rag_fail(RAG_EINVAL, "cursor 'after' is %zu bytes, longer than any id (%d)",
                        strlen(o.after), RAG_DOC_ID_MAX);
    const char *name = o.collection ? o.collection : RAG_DEFAULT_COLLECTION;
    rag_filter *filter = NULL;
    rag_txn *txn = NULL;
    uint32_t coll = 0;
    list_scan s = {NULL, NULL, o.limit, o.include_expired, rag_now(), 0, RAG_OK};
    int rc = o.filter && *o.filter ? rag_filter_parse(o.filter, 0, &filter) : RAG_OK;
    if (rc == RAG_OK && !(s.l = rag_calloc(1, sizeof *s.l)))
        rc = RAG_ENOMEM;
    if (rc == RAG_OK)
        rc = open_coll(db, name, &txn, &coll);
    if (rc == RAG_OK) {
        size_t n = 0;
        const char *const *ids = filter ? rag_filter_doc_ids(filter, &n) : NULL;
        s.filter = filter;
        if (ids)
            rc = scan_candidates(txn, coll, ids, n, o.after, &s);
        else
            rc = rag_store_doc_scan_after(txn, coll, o.after, list_visit, &s);
        if (rc == SCAN_STOP)
            rc = RAG_OK;
        if (rc == RAG_OK)
            rc = s.rc;
    }
    rag_txn_end(txn);
    rag_filter_free(filter);
    if (rc != RAG_OK) {
        rag_doc_list_free(s.l);
        return rc;
    }
    if (s.more)
        s.l->next = s.l->docs[s.l->n - 1].id;
    *out = s.l;
    return RAG_OK;
}
