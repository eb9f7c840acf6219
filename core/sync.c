/* sync.c - keeping collections in step with their sources: incremental sync (skip
 * unchanged, replace changed, delete vanished), TTL garbage collection and freshness
 * reports. */
#include "db.h"
#include "ingest.h"
#include "ingest_files.h"
#include "status.h"
#include "store.h"
#include "text.h"

#include <limits.h>
#include <stdlib.h>
#include <string.h>

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

/* A source prefix a sync must not delete under: a file that failed to extract keeps its
 * stored documents. */
typedef struct protect {
    char *prefix;              /* the file's absolute path */
    char *reason;              /* why it failed */
    int rc;
} protect;

struct rag_sync {
    rag_db *db;
    rag_ingest_run *run;
    rag_ingest_summary sum;
    str_set seen;
    protect *protects;
    size_t nprotects, cap_protects;
    size_t offered;            /* documents offered (the index of the next one) */
    double t0;
    int finished;
};

static int seen_fn(void *user, const char *id)
{
    const rag_sync *s = user;
    return str_set_has(&s->seen, id);
}

/* Starts a sync run with ingest options (NULL: defaults). */
static int sync_begin(rag_db *db, const rag_ingest_options *opts, rag_sync **out)
{
    *out = NULL;
    if (!db)
        return rag_fail(RAG_EINVAL, "rag_sync_begin: db is NULL");
    if (db->opts.read_only)
        return rag_fail(RAG_EREADONLY, "store is open read-only");
    rag_sync *s = rag_calloc(1, sizeof *s);
    if (!s)
        return RAG_ENOMEM;
    s->db = db;
    s->t0 = rag_monotonic();
    int rc = rag_ingest_run_begin(db, opts, 1, &s->sum, &s->run);
    if (rc != RAG_OK) {
        free(s);
        return rc;
    }
    rag_ingest_run_set_seen(s->run, seen_fn, s);
    *out = s;
    return RAG_OK;
}

int rag_sync_begin(rag_db *db, const char *collection, rag_sync **out)
{
    rag_clear_error();
    if (!out)
        return rag_fail(RAG_EINVAL, "rag_sync_begin: out is NULL");
    rag_ingest_options o;
    rag_ingest_options_init(&o);
    o.collection = collection;
    return sync_begin(db, &o, out);
}

/* Offers a document to the run, remembering its id as seen. */
static int sync_add(rag_sync *s, const rag_document *d, const rag_ingest_src *src,
                    rag_run_outcome *oc)
{
    int rc = str_set_add(&s->seen, d->id);
    if (rc != RAG_OK)
        return rc;
    return rag_ingest_run_add(s->run, d, s->offered++, src, oc);
}

int rag_sync_document(rag_sync *s, const rag_document *d, rag_sync_outcome *outcome)
{
    rag_clear_error();
    if (!s || !d || !d->id || !d->text)
        return rag_fail(RAG_EINVAL, "rag_sync_document: NULL argument");
    if (s->finished)
        return rag_fail(RAG_EINVAL, "rag_sync_document after rag_sync_finish");
    uint64_t failed = s->sum.failed;
    rag_run_outcome oc = RAG_RUN_FAILED;
    int rc = sync_add(s, d, NULL, &oc);
    if (rc == RAG_OK && s->sum.failed > failed) { /* invalid: the caller hears why */
        int frc = RAG_EINVAL;
        const char *why = rag_ingest_run_last_failure(s->run, &frc);
        return rag_fail(frc, "%s", why);
    }
    if (outcome)
        *outcome = oc == RAG_RUN_UNCHANGED      ? RAG_SYNC_UNCHANGED
                   : oc == RAG_RUN_QUEUED_UPDATE ? RAG_SYNC_UPDATED
                   : oc == RAG_RUN_REJECTED      ? RAG_SYNC_REJECTED
                                                 : RAG_SYNC_ADDED;
    return rc;
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

/* A document of the collection that the sync did not see. */
typedef struct gone {
    char *id;
    size_t root;               /* the prefix it lies under */
    long kept;                 /* >= 0: kept for protects[kept] (its file failed to extract) */
} gone;

typedef struct vanished_ctx {
    const rag_sync *s;
    const char *const *prefixes;
    size_t nprefixes;
    gone *items;
    size_t n, cap;
    int rc;
} vanished_ctx;

static int vanished_visit(void *user, const rag_doc_rec *d)
{
    vanished_ctx *v = user;
    if (str_set_has(&v->s->seen, d->id))
        return 0;
    size_t root = 0;
    while (root < v->nprefixes && !under_prefix(d->source, v->prefixes[root]))
        root++;
    if (root == v->nprefixes)
        return 0;
    long kept = -1;
    for (size_t i = 0; i < v->s->nprotects && kept < 0; i++)
        if (under_prefix(d->source, v->s->protects[i].prefix) &&
            strlen(d->source) >= strlen(v->s->protects[i].prefix) &&
            (d->source[strlen(v->s->protects[i].prefix)] == '\0' ||
             d->source[strlen(v->s->protects[i].prefix)] == '#'))
            kept = (long)i;
    if (v->n == v->cap) {
        size_t cap = v->cap ? v->cap * 2 : 64;
        gone *q = rag_realloc(v->items, cap * sizeof *q);
        if (!q)
            return v->rc = RAG_ENOMEM;
        v->items = q;
        v->cap = cap;
    }
    if (!(v->items[v->n].id = rag_strdup(d->id)))
        return v->rc = RAG_ENOMEM;
    v->items[v->n].root = root;
    v->items[v->n].kept = kept;
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

/* Finishes a sync: stores what is pending; then, under each prefix, documents not offered
 * are deleted, except those of files that failed to extract (kept). root_docs (may be
 * NULL) counts the documents offered under each prefix: a prefix under which none was
 * offered while the collection holds documents there is refused unless allow_empty. */
static int sync_finish(rag_sync *s, const char *const *prefixes, size_t n,
                       const uint64_t *root_docs, int allow_empty)
{
    s->finished = 1;
    int rc = rag_ingest_run_flush(s->run);
    const char *coll = rag_ingest_run_collection(s->run);
    vanished_ctx v = {s, prefixes, n, NULL, 0, 0, RAG_OK};
    rag_coll *c = rag_db_find_coll(s->db, coll);
    if (rc == RAG_OK && c && n > 0) {
        rag_txn *txn = NULL;
        if ((rc = rag_store_read(s->db->st, &txn)) == RAG_OK) {
            rc = rag_store_doc_scan(txn, c->id, vanished_visit, &v);
            rag_txn_end(txn);
        }
        if (rc == RAG_OK)
            rc = v.rc;
    }
    for (size_t r = 0; rc == RAG_OK && root_docs && !allow_empty && r < n; r++) {
        size_t held = 0;
        for (size_t i = 0; i < v.n; i++)
            held += v.items[i].root == r && v.items[i].kept < 0;
        if (root_docs[r] == 0 && held > 0)
            rc = rag_fail(RAG_EINVAL, "'%s' yielded no document while collection '%s' holds %zu "
                          "from it; nothing was deleted (allow an empty root to delete them: "
                          "allow_empty, --allow-empty)", prefixes[r], coll, held);
    }
    char **del = rc == RAG_OK && v.n ? rag_malloc(v.n * sizeof *del) : NULL;
    size_t ndel = 0;
    if (rc == RAG_OK && v.n && !del)
        rc = RAG_ENOMEM;
    for (size_t i = 0; rc == RAG_OK && i < v.n; i++) {
        rag_ingest_event ev;
        memset(&ev, 0, sizeof ev);
        ev.id = v.items[i].id;
        ev.canonical_id = ev.duplicate_kind = "";
        if (v.items[i].kept >= 0) {
            const protect *p = &s->protects[v.items[i].kept];
            ev.action = RAG_INGEST_KEPT;
            ev.path = p->prefix;
            ev.reason = p->reason;
            ev.status = p->rc;
            ev.skip_kind = rag_ingest_skip_kind(p->rc, p->reason);
            s->sum.kept++;
            rc = rag_ingest_run_event(s->run, &ev);
        } else {
            del[ndel++] = v.items[i].id;
        }
    }
    if (rc == RAG_OK)
        rc = delete_batches(s->db, coll, del, ndel, &s->sum.deleted);
    /* duplicates of documents that were not offered: stored now if their canonical vanished */
    if (rc == RAG_OK)
        rc = rag_ingest_run_retry(s->run);
    for (size_t i = 0; rc == RAG_OK && i < ndel; i++) {
        rag_ingest_event ev;
        memset(&ev, 0, sizeof ev);
        ev.action = RAG_INGEST_DELETED;
        ev.id = del[i];
        ev.path = ev.reason = ev.canonical_id = ev.duplicate_kind = "";
        rc = rag_ingest_run_event(s->run, &ev);
    }
    free(del);
    for (size_t i = 0; i < v.n; i++)
        free(v.items[i].id);
    free(v.items);
    if (rc == RAG_OK)
        rc = rag_db_coll_update(s->db, coll, -1, rag_now());
    return rc;
}

/* Fills the public stats from the run's summary. */
static void sync_stats(const rag_sync *s, rag_sync_stats *st)
{
    st->added = s->sum.documents - s->sum.replaced;
    st->updated = s->sum.replaced;
    st->unchanged = s->sum.unchanged;
    st->deleted = s->sum.deleted;
    st->chunks = s->sum.chunks;
    st->seconds = rag_monotonic() - s->t0;
}

int rag_sync_finish(rag_sync *s, const char *const *prefixes, size_t n, rag_sync_stats *stats)
{
    rag_clear_error();
    if (!s || (n && !prefixes))
        return rag_fail(RAG_EINVAL, "rag_sync_finish: NULL argument");
    if (s->finished)
        return rag_fail(RAG_EINVAL, "rag_sync_finish called twice");
    int rc = sync_finish(s, prefixes, n, NULL, 1);
    if (stats)
        sync_stats(s, stats);
    return rc;
}

static void sync_release(rag_sync *s)
{
    str_set_free(&s->seen);
    for (size_t i = 0; i < s->nprotects; i++) {
        free(s->protects[i].prefix);
        free(s->protects[i].reason);
    }
    free(s->protects);
    free(s);
}

void rag_sync_free(rag_sync *s)
{
    if (!s)
        return;
    /* pending documents are stored unless finish ran (which stored them) */
    rag_ingest_run_end(s->run, s->finished ? RAG_EINVAL : RAG_OK);
    sync_release(s);
}

/* ---- sync of files and directories ---------------------------------------------------------- */

typedef struct paths_sync {
    rag_sync *s;
    char **roots;
    size_t nroots;
    uint64_t *root_docs;
} paths_sync;

static int paths_add(void *user, const rag_document *d, const rag_ingest_src *src)
{
    paths_sync *ps = user;
    for (size_t r = 0; r < ps->nroots; r++)
        if (d->source && under_prefix(d->source, ps->roots[r]))
            ps->root_docs[r]++;
    return sync_add(ps->s, d, src, NULL);
}

/* A file that failed: its stored documents are kept (its absolute path protects them). */
static void paths_fail(void *user, const char *path, int rc, const char *msg)
{
    paths_sync *ps = user;
    rag_sync *s = ps->s;
    char abs[PATH_MAX];
    if (!realpath(path, abs))
        return; /* it does not exist (any more): its documents vanished */
    for (size_t r = 0; r < ps->nroots; r++)
        if (under_prefix(abs, ps->roots[r]))
            ps->root_docs[r]++; /* the root is not empty: it holds a file */
    if (s->nprotects == s->cap_protects) {
        size_t cap = s->cap_protects ? s->cap_protects * 2 : 16;
        protect *q = rag_realloc(s->protects, cap * sizeof *q);
        if (!q)
            return;
        s->protects = q;
        s->cap_protects = cap;
    }
    char masked[1024];
    rag_ingest_run_mask(s->run, msg, masked, sizeof masked);
    protect *p = &s->protects[s->nprotects];
    p->prefix = rag_strdup(abs);
    p->reason = rag_strdup(masked);
    p->rc = rc;
    if (p->prefix && p->reason)
        s->nprotects++;
    else {
        free(p->prefix);
        free(p->reason);
    }
}

int rag_sync_paths(rag_db *db, const char *const *paths, size_t n,
                   const rag_ingest_options *opts, rag_ingest_summary *summary)
{
    rag_clear_error();
    if (summary)
        rag_ingest_summary_init(summary);
    if (!db || (!paths && n))
        return rag_fail(RAG_EINVAL, "rag_sync_paths: NULL argument");
    paths_sync ps = {NULL, rag_calloc(n ? n : 1, sizeof(char *)),
                     n, rag_calloc(n ? n : 1, sizeof(uint64_t))};
    int rc = ps.roots && ps.root_docs ? RAG_OK : RAG_ENOMEM;
    for (size_t i = 0; rc == RAG_OK && i < n; i++) {
        char abs[PATH_MAX];
        if (!paths[i] || !realpath(paths[i], abs))
            rc = rag_fail(RAG_EINVAL, "'%s' does not exist (nothing synced: a vanished root "
                          "would delete everything synced from it)", paths[i] ? paths[i] : "");
        else if (!(ps.roots[i] = rag_strdup(abs)))
            rc = RAG_ENOMEM;
    }
    if (rc == RAG_OK)
        rc = sync_begin(db, opts, &ps.s);
    if (rc == RAG_OK) {
        rag_walk_hooks hooks = {paths_add, paths_fail, &ps};
        rc = rag_ingest_walk(ps.s->run, paths, n, opts, &hooks);
        /* deletion needs a complete scan: none after a walk that stopped */
        if (rc == RAG_OK)
            rc = sync_finish(ps.s, (const char *const *)ps.roots, n, ps.root_docs,
                             opts && opts->allow_empty);
        ps.s->finished = 1;
        rc = rag_ingest_run_end(ps.s->run, rc);
        if (summary) {
            *summary = ps.s->sum;
            summary->seconds = rag_monotonic() - ps.s->t0;
        }
        ps.s->run = NULL;
        sync_release(ps.s);
    }
    for (size_t i = 0; ps.roots && i < n; i++)
        free(ps.roots[i]);
    free(ps.roots);
    free(ps.root_docs);
    return rc;
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
