/* sync.c - keeping collections in step with their sources: incremental sync (skip
 * unchanged, replace changed, delete vanished), TTL garbage collection and freshness
 * reports. */
#include "db.h"
#include "ingest.h"
#include "status.h"
#include "store.h"
#include "text.h"

#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#define SYNC_BATCH_DOCS 256
#define SYNC_BATCH_BYTES (8u << 20)
#define DELETE_BATCH 256

/* A set of strings (document ids seen by a sync). */
typedef struct str_set {
    char **keys;
    size_t cap, used;
} str_set;

static int str_set_add(str_set *s, const char *key)
{
    if (s->used * 2 >= s->cap) {
        size_t cap = s->cap ? s->cap * 2 : 1024;
        char **keys = rag_calloc(cap, sizeof *keys);
        if (!keys)
            return RAG_ENOMEM;
        for (size_t i = 0; i < s->cap; i++) {
            if (!s->keys[i])
                continue;
            size_t j = (size_t)rag_hash_bytes(s->keys[i], strlen(s->keys[i])) & (cap - 1);
            while (keys[j])
                j = (j + 1) & (cap - 1);
            keys[j] = s->keys[i];
        }
        free(s->keys);
        s->keys = keys;
        s->cap = cap;
    }
    size_t i = (size_t)rag_hash_bytes(key, strlen(key)) & (s->cap - 1);
    while (s->keys[i]) {
        if (strcmp(s->keys[i], key) == 0)
            return RAG_OK;
        i = (i + 1) & (s->cap - 1);
    }
    if (!(s->keys[i] = rag_strdup(key)))
        return RAG_ENOMEM;
    s->used++;
    return RAG_OK;
}

static int str_set_has(const str_set *s, const char *key)
{
    if (!s->cap)
        return 0;
    size_t i = (size_t)rag_hash_bytes(key, strlen(key)) & (s->cap - 1);
    while (s->keys[i]) {
        if (strcmp(s->keys[i], key) == 0)
            return 1;
        i = (i + 1) & (s->cap - 1);
    }
    return 0;
}

static void str_set_free(str_set *s)
{
    for (size_t i = 0; i < s->cap; i++)
        free(s->keys[i]);
    free(s->keys);
    memset(s, 0, sizeof *s);
}

/* An owned copy of a document waiting in a sync batch. */
typedef struct pending_doc {
    rag_document doc;
    char *id, *text, *title, *source, *meta;
} pending_doc;

struct rag_sync {
    rag_db *db;
    char *collection;
    str_set seen;
    pending_doc *pending;
    size_t npending, cap, pending_bytes;
    rag_sync_stats stats;
    double t0;
    int finished;
};

int rag_sync_begin(rag_db *db, const char *collection, rag_sync **out)
{
    rag_clear_error();
    if (!out)
        return rag_fail(RAG_EINVAL, "rag_sync_begin: out is NULL");
    *out = NULL;
    if (!db)
        return rag_fail(RAG_EINVAL, "rag_sync_begin: db is NULL");
    if (db->opts.read_only)
        return rag_fail(RAG_EREADONLY, "store is open read-only");
    rag_sync *s = rag_calloc(1, sizeof *s);
    if (!s)
        return RAG_ENOMEM;
    s->db = db;
    s->collection = rag_strdup(collection ? collection : RAG_DEFAULT_COLLECTION);
    s->t0 = rag_monotonic();
    if (!s->collection) {
        free(s);
        return RAG_ENOMEM;
    }
    *out = s;
    return RAG_OK;
}

static void pending_clear(rag_sync *s)
{
    for (size_t i = 0; i < s->npending; i++) {
        pending_doc *p = &s->pending[i];
        free(p->id);
        free(p->text);
        free(p->title);
        free(p->source);
        free(p->meta);
    }
    s->npending = 0;
    s->pending_bytes = 0;
}

/* Stores the pending batch in one transaction. */
static int sync_flush(rag_sync *s)
{
    if (s->npending == 0)
        return RAG_OK;
    rag_document *docs = rag_malloc(s->npending * sizeof *docs);
    if (!docs)
        return RAG_ENOMEM;
    for (size_t i = 0; i < s->npending; i++)
        docs[i] = s->pending[i].doc;
    rag_ingest_stats st;
    int rc = rag_ingest(s->db, s->collection, docs, s->npending, &st);
    free(docs);
    if (rc == RAG_OK)
        s->stats.chunks += st.chunks;
    pending_clear(s);
    return rc;
}

static char *dup_opt(const char *p)
{
    return p ? rag_strdup(p) : NULL;
}

/* Compact JSON of a metadata string, as the store keeps it ("" when none). */
static char *compact_meta(const char *meta)
{
    if (!meta || !*meta)
        return rag_strdup("");
    json_t *j = json_loads(meta, 0, NULL);
    char *out = j ? json_dumps(j, JSON_COMPACT) : NULL;
    json_decref(j);
    return out ? out : rag_strdup(meta); /* invalid JSON: rag_ingest reports it */
}

static int same_str(const char *stored, const char *given)
{
    return strcmp(stored ? stored : "", given ? given : "") == 0;
}

int rag_sync_document(rag_sync *s, const rag_document *d, rag_sync_outcome *outcome)
{
    rag_clear_error();
    if (!s || !d || !d->id || !d->text)
        return rag_fail(RAG_EINVAL, "rag_sync_document: NULL argument");
    if (s->finished)
        return rag_fail(RAG_EINVAL, "rag_sync_document after rag_sync_finish");
    size_t len = d->text_len == (size_t)-1 ? strlen(d->text) : d->text_len;
    int rc = str_set_add(&s->seen, d->id);
    if (rc != RAG_OK)
        return rc;
    /* Compare with the stored version. */
    rag_sync_outcome out = RAG_SYNC_ADDED;
    rag_coll *c = rag_db_find_coll(s->db, s->collection);
    if (c) {
        rag_txn *txn = NULL;
        rag_doc_rec *old = NULL;
        if ((rc = rag_store_read(s->db->st, &txn)) != RAG_OK)
            return rc;
        rc = rag_store_doc_get(txn, c->id, d->id, &old);
        rag_txn_end(txn);
        if (rc == RAG_OK) {
            out = RAG_SYNC_UPDATED;
            int same_meta = same_str(old->title, d->title) && same_str(old->source, d->source);
            if (same_meta) {
                char *m = compact_meta(d->metadata_json);
                same_meta = m && strcmp(old->metadata, m) == 0;
                free(m);
            }
            /* Fast path: the same modification time and size; else compare content. */
            int same_text = old->text_len == len &&
                            ((d->source_mtime && old->source_mtime == d->source_mtime) ||
                             old->content_hash == rag_hash_bytes(d->text, len));
            if (same_meta && same_text)
                out = RAG_SYNC_UNCHANGED;
        } else if (rc != RAG_ENOTFOUND) {
            return rc;
        }
        rag_doc_rec_free(old);
    }
    if (outcome)
        *outcome = out;
    if (out == RAG_SYNC_UNCHANGED) {
        s->stats.unchanged++;
        return RAG_OK;
    }
    if (out == RAG_SYNC_ADDED)
        s->stats.added++;
    else
        s->stats.updated++;
    if (s->npending == s->cap) {
        size_t cap = s->cap ? s->cap * 2 : 64;
        pending_doc *q = rag_realloc(s->pending, cap * sizeof *q);
        if (!q)
            return RAG_ENOMEM;
        s->pending = q;
        s->cap = cap;
    }
    pending_doc *p = &s->pending[s->npending];
    memset(p, 0, sizeof *p);
    p->doc = *d;
    p->id = rag_strdup(d->id);
    p->text = rag_strndup(d->text, len);
    p->title = dup_opt(d->title);
    p->source = dup_opt(d->source);
    p->meta = dup_opt(d->metadata_json);
    s->npending++;
    if (!p->id || !p->text || (d->title && !p->title) || (d->source && !p->source) ||
        (d->metadata_json && !p->meta))
        return RAG_ENOMEM;
    p->doc.id = p->id;
    p->doc.text = p->text;
    p->doc.text_len = len;
    p->doc.title = p->title;
    p->doc.source = p->source;
    p->doc.metadata_json = p->meta;
    s->pending_bytes += len;
    if (s->npending >= SYNC_BATCH_DOCS || s->pending_bytes >= SYNC_BATCH_BYTES)
        return sync_flush(s);
    return RAG_OK;
}

/* Whether `source` lies under `prefix`: equal, or continuing with '/' or '#' (a file in
 * a directory, a record in a JSONL file), or prefix ends with '/'. */
static int under_prefix(const char *source, const char *prefix)
{
    size_t n = strlen(prefix);
    if (n == 0 || strncmp(source, prefix, n) != 0)
        return 0;
    return prefix[n - 1] == '/' || source[n] == '\0' || source[n] == '/' || source[n] == '#';
}

typedef struct vanished_ctx {
    const str_set *seen;
    const char *const *prefixes;
    size_t nprefixes;
    char **ids;
    size_t n, cap;
    int rc;
} vanished_ctx;

static int vanished_visit(void *user, const rag_doc_rec *d)
{
    vanished_ctx *v = user;
    if (str_set_has(v->seen, d->id))
        return 0;
    int under = 0;
    for (size_t i = 0; i < v->nprefixes && !under; i++)
        under = under_prefix(d->source, v->prefixes[i]);
    if (!under)
        return 0;
    if (v->n == v->cap) {
        size_t cap = v->cap ? v->cap * 2 : 64;
        char **q = rag_realloc(v->ids, cap * sizeof *q);
        if (!q)
            return v->rc = RAG_ENOMEM;
        v->ids = q;
        v->cap = cap;
    }
    if (!(v->ids[v->n] = rag_strdup(d->id)))
        return v->rc = RAG_ENOMEM;
    v->n++;
    return 0;
}

/* Deletes the listed documents in batches. */
static int delete_batches(rag_db *db, const char *collection, char **ids, size_t n,
                          uint64_t *deleted)
{
    int rc = RAG_OK;
    for (size_t b = 0; b < n && rc == RAG_OK; b += DELETE_BATCH) {
        size_t m = n - b < DELETE_BATCH ? n - b : DELETE_BATCH;
        uint64_t d = 0;
        rc = rag_db_delete_docs(db, collection, (const char *const *)ids + b, m, 1, &d);
        *deleted += d;
    }
    return rc;
}

int rag_sync_finish(rag_sync *s, const char *const *prefixes, size_t n, rag_sync_stats *stats)
{
    rag_clear_error();
    if (!s || (n && !prefixes))
        return rag_fail(RAG_EINVAL, "rag_sync_finish: NULL argument");
    if (s->finished)
        return rag_fail(RAG_EINVAL, "rag_sync_finish called twice");
    s->finished = 1;
    int rc = sync_flush(s);
    vanished_ctx v = {&s->seen, prefixes, n, NULL, 0, 0, RAG_OK};
    rag_coll *c = rag_db_find_coll(s->db, s->collection);
    if (rc == RAG_OK && c && n > 0) {
        rag_txn *txn = NULL;
        if ((rc = rag_store_read(s->db->st, &txn)) == RAG_OK) {
            rc = rag_store_doc_scan(txn, c->id, vanished_visit, &v);
            rag_txn_end(txn);
        }
        if (rc == RAG_OK)
            rc = v.rc;
        if (rc == RAG_OK)
            rc = delete_batches(s->db, s->collection, v.ids, v.n, &s->stats.deleted);
    }
    for (size_t i = 0; i < v.n; i++)
        free(v.ids[i]);
    free(v.ids);
    if (rc == RAG_OK)
        rc = rag_db_coll_update(s->db, s->collection, -1, rag_now());
    s->stats.seconds = rag_monotonic() - s->t0;
    if (stats)
        *stats = s->stats;
    return rc;
}

void rag_sync_free(rag_sync *s)
{
    if (!s)
        return;
    if (!s->finished && s->npending)
        sync_flush(s);
    pending_clear(s);
    free(s->pending);
    str_set_free(&s->seen);
    free(s->collection);
    free(s);
}

/* ---- expiry ------------------------------------------------------------------------------ */

typedef struct expired_ctx {
    int64_t now;
    char **ids;
    size_t n, cap;
    int rc;
} expired_ctx;

static int expired_visit(void *user, const rag_doc_rec *d)
{
    expired_ctx *e = user;
    if (!d->valid_until || d->valid_until > e->now)
        return 0;
    if (e->n == e->cap) {
        size_t cap = e->cap ? e->cap * 2 : 64;
        char **q = rag_realloc(e->ids, cap * sizeof *q);
        if (!q)
            return e->rc = RAG_ENOMEM;
        e->ids = q;
        e->cap = cap;
    }
    if (!(e->ids[e->n] = rag_strdup(d->id)))
        return e->rc = RAG_ENOMEM;
    e->n++;
    return 0;
}

static int gc_collection(rag_db *db, rag_coll *c, int64_t now, uint64_t *purged)
{
    expired_ctx e = {now, NULL, 0, 0, RAG_OK};
    rag_txn *txn = NULL;
    rag_coll_rec rec;
    int rc = rag_store_read(db->st, &txn);
    if (rc != RAG_OK)
        return rc;
    rc = rag_store_coll_get(txn, c->name, &rec);
    if (rc == RAG_OK && rec.expiring_docs > 0) {
        rc = rag_store_doc_scan(txn, c->id, expired_visit, &e);
        if (rc == RAG_OK)
            rc = e.rc;
    }
    rag_txn_end(txn);
    if (rc == RAG_OK)
        rc = delete_batches(db, c->name, e.ids, e.n, purged);
    for (size_t i = 0; i < e.n; i++)
        free(e.ids[i]);
    free(e.ids);
    return rc;
}

int rag_gc(rag_db *db, const char *collection, int64_t now, uint64_t *purged)
{
    rag_clear_error();
    uint64_t total = 0;
    if (purged)
        *purged = 0;
    if (!db)
        return rag_fail(RAG_EINVAL, "rag_gc: db is NULL");
    if (db->opts.read_only)
        return rag_fail(RAG_EREADONLY, "store is open read-only");
    if (now <= 0)
        now = rag_now();
    int rc = RAG_OK;
    if (collection) {
        rag_coll *c = rag_db_find_coll(db, collection);
        if (!c)
            return rag_fail(RAG_ENOTFOUND, "collection '%s' does not exist", collection);
        rc = gc_collection(db, c, now, &total);
    } else {
        pthread_mutex_lock(&db->colls_lock);
        size_t n = db->ncolls;
        pthread_mutex_unlock(&db->colls_lock);
        for (size_t i = 0; i < n && rc == RAG_OK; i++) {
            rag_coll *c = db->colls[i];
            if (!c->dropped)
                rc = gc_collection(db, c, now, &total);
        }
    }
    if (purged)
        *purged = total;
    return rc;
}

/* ---- freshness report ------------------------------------------------------------------- */

typedef struct fresh_ctx {
    rag_freshness_info *info;
    int64_t now;
} fresh_ctx;

static int fresh_visit(void *user, const rag_doc_rec *d)
{
    fresh_ctx *f = user;
    rag_freshness_info *in = f->info;
    int64_t t = d->source_mtime > 0 ? d->source_mtime : d->ingested_at;
    if (in->documents == 0 || t > in->newest_source)
        in->newest_source = t;
    if (in->documents == 0 || t < in->oldest_source)
        in->oldest_source = t;
    in->documents++;
    if (t < f->now - in->objective)
        in->stale++;
    if (d->valid_until && d->valid_until <= f->now)
        in->expired++;
    return 0;
}

int rag_collection_freshness(rag_db *db, const char *collection, int64_t objective, int64_t now,
                             rag_freshness_info *info)
{
    rag_clear_error();
    if (!db || !collection || !info)
        return rag_fail(RAG_EINVAL, "rag_collection_freshness: NULL argument");
    if (objective < 0)
        return rag_fail(RAG_EINVAL, "objective must not be negative");
    memset(info, 0, sizeof *info);
    info->objective = objective ? objective : 30 * 86400;
    if (now <= 0)
        now = rag_now();
    rag_coll *c = rag_db_find_coll(db, collection);
    if (!c)
        return rag_fail(RAG_ENOTFOUND, "collection '%s' does not exist", collection);
    rag_txn *txn = NULL;
    rag_coll_rec rec;
    int rc = rag_store_read(db->st, &txn);
    if (rc != RAG_OK)
        return rc;
    rc = rag_store_coll_get(txn, collection, &rec);
    fresh_ctx f = {info, now};
    if (rc == RAG_OK)
        rc = rag_store_doc_scan(txn, c->id, fresh_visit, &f);
    rag_txn_end(txn);
    if (rc == RAG_OK) {
        info->last_sync = rec.last_sync;
        info->sync_lag = rec.last_sync ? now - rec.last_sync : -1;
    }
    return rc;
}
