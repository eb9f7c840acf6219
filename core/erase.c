/* erase.c - erasure: removing documents, collections and unmasked text so that no byte of
 * them stays readable in any file of the store directory, with a crash-safe intent. */
#include "erase.h"

#include "coll_index.h"
#include "db.h"
#include "embcache.h"
#include "hygiene_dedup.h"
#include "hygiene_policy.h"
#include "ingest.h"
#include "pii.h"
#include "status.h"
#include "store.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

/*
 * The intent lives in table "config" under ERASE_KEY, a JSON object:
 *   {"ops": [{"op": "delete", "collection": C, "ids": [...]},
 *            {"op": "drop", "collection": C},
 *            {"op": "pii_apply", "collection": C}],
 *    "rebuild": [C, ...]}
 * It is written before anything is removed. rag_erase_run then redoes every op (each is
 * idempotent: a deleted document or dropped collection is skipped), deletes the query-log
 * entries that reference what was removed and, in the same transaction, replaces the
 * intent by one without ops (no document id stays behind), then purges the embedding
 * cache, rewrites or removes index files, scrubs data.mdb and deletes the intent. A crash
 * at any point leaves the intent, and the next read-write open runs it again.
 */
#define ERASE_KEY "erase.intent"
#define ERASE_TABLE "config"
#define QLOG_TABLE "querylog"
#define SCRUB_WAIT_SECONDS 10.0
#define PII_APPLY_BATCH 64

/* Test hook (tests/test_erase.c): RAGCORE_TEST_ERASE_KILL=<step> SIGKILLs the process when
 * an erasure reaches that step, to check that the next open finishes it. */
static void kill_point(const char *step)
{
    const char *e = getenv("RAGCORE_TEST_ERASE_KILL");
    if (e && strcmp(e, step) == 0)
        raise(SIGKILL);
}

static double now_seconds(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

/* ---- the intent ------------------------------------------------------------------------ */

/* Reads the pending intent into *out (NULL when none). RAG_ECORRUPT when it is not JSON. */
static int intent_read(rag_db *db, json_t **out)
{
    rag_txn *txn = NULL;
    const void *v = NULL;
    size_t vl = 0;
    *out = NULL;
    int rc = rag_store_read(db->st, &txn);
    if (rc != RAG_OK)
        return rc;
    rc = rag_store_kv_get(txn, ERASE_TABLE, ERASE_KEY, strlen(ERASE_KEY), &v, &vl);
    if (rc == RAG_OK) {
        json_error_t err;
        if (!(*out = json_loadb(v, vl, 0, &err)) || !json_is_object(*out)) {
            json_decref(*out);
            *out = NULL;
            rc = rag_fail(RAG_ECORRUPT, "the store's pending erasure record is damaged: %s",
                          err.text);
        }
    } else if (rc == RAG_ENOTFOUND) {
        rag_clear_error();
        rc = RAG_OK;
    }
    rag_txn_end(txn);
    return rc;
}

static int intent_put(rag_txn *txn, const json_t *intent)
{
    if (!intent) {
        int rc = rag_store_kv_del(txn, ERASE_TABLE, ERASE_KEY, strlen(ERASE_KEY));
        if (rc == RAG_ENOTFOUND)
            rag_clear_error();
        return rc == RAG_ENOTFOUND ? RAG_OK : rc;
    }
    char *text = json_dumps(intent, JSON_COMPACT);
    if (!text)
        return rag_fail(RAG_ENOMEM, "out of memory");
    int rc = rag_store_kv_put(txn, ERASE_TABLE, ERASE_KEY, strlen(ERASE_KEY), text,
                              strlen(text));
    free(text);
    return rc;
}

static int intent_put_fn(rag_txn *txn, void *user)
{
    return intent_put(txn, user);
}

/* Adds `op` (reference stolen) and its collection to the pending intent, creating it. */
static int intent_add(rag_db *db, json_t *op, const char *collection)
{
    json_t *intent = NULL;
    int rc = intent_read(db, &intent);
    if (rc != RAG_OK) {
        json_decref(op);
        return rc;
    }
    if (!intent)
        intent = json_object();
    json_t *ops = json_object_get(intent, "ops"), *rebuild = json_object_get(intent, "rebuild");
    if (intent && !ops)
        json_object_set_new(intent, "ops", ops = json_array());
    if (intent && !rebuild)
        json_object_set_new(intent, "rebuild", rebuild = json_array());
    if (!intent || !json_is_array(ops) || !json_is_array(rebuild) ||
        (op && json_array_append_new(ops, op) != 0) ||
        json_array_append_new(rebuild, json_string(collection)) != 0) {
        json_decref(intent);
        return rag_fail(RAG_ENOMEM, "out of memory");
    }
    rc = rag_store_write(db->st, intent_put_fn, intent);
    json_decref(intent);
    return rc;
}

/* ---- the query log ----------------------------------------------------------------------- */

typedef struct log_refs {
    const char *collection;
    const json_t *ids;           /* doc ids (strings); NULL: every entry of the collection */
} log_refs;

static int doc_listed(const json_t *ids, const char *id)
{
    size_t i;
    json_t *v;
    json_array_foreach(ids, i, v) {
        if (json_is_string(v) && strcmp(json_string_value(v), id) == 0)
            return 1;
    }
    return 0;
}

/* 1 when an array of hits ({"doc_id": ...}) names a listed document. */
static int hits_refer(const json_t *hits, const json_t *ids)
{
    size_t i;
    json_t *h;
    json_array_foreach(hits, i, h) {
        const char *id = json_string_value(json_object_get(h, "doc_id"));
        if (id && doc_listed(ids, id))
            return 1;
    }
    return 0;
}

/* Whether a query-log entry references an erased document: an entry of the collection
 * whose "results" or "context" hits (or, in entries written before context entries held
 * hits only, "context"."sources") name one of the ids. */
static int entry_refers(const json_t *e, const log_refs *refs)
{
    const char *coll = json_string_value(json_object_get(e, "collection"));
    if (!coll || strcmp(coll, refs->collection) != 0)
        return 0;
    if (!refs->ids)
        return 1;
    const json_t *ctx = json_object_get(e, "context");
    return hits_refer(json_object_get(e, "results"), refs->ids) ||
           hits_refer(ctx, refs->ids) || hits_refer(json_object_get(ctx, "sources"), refs->ids);
}

typedef struct log_scan {
    const log_refs *refs;
    size_t nrefs;
    unsigned char (*keys)[64];
    size_t *klens;
    char **vals;                 /* the batch without the entries (NULL: delete the batch) */
    size_t n, cap;
    uint64_t removed;
    int rc;
} log_scan;

static int log_visit(void *user, const void *key, size_t klen, const void *val, size_t vlen)
{
    log_scan *s = user;
    json_t *batch = json_loadb(val, vlen, 0, NULL), *kept = NULL, *e;
    size_t i, dropped = 0;
    if (!json_is_array(batch) || klen > 64) {
        json_decref(batch);
        return 0; /* not the server's format: not ours to judge */
    }
    kept = json_array();
    json_array_foreach(batch, i, e) {
        int refers = 0;
        for (size_t r = 0; r < s->nrefs && !refers; r++)
            refers = entry_refers(e, &s->refs[r]);
        if (refers)
            dropped++;
        else
            json_array_append(kept, e);
    }
    json_decref(batch);
    if (!dropped) {
        json_decref(kept);
        return 0;
    }
    if (s->n == s->cap) {
        size_t cap = s->cap ? s->cap * 2 : 16;
        void *k = rag_realloc(s->keys, cap * sizeof *s->keys);
        if (k)
            s->keys = k;
        void *l = k ? rag_realloc(s->klens, cap * sizeof *s->klens) : NULL;
        if (l)
            s->klens = l;
        void *v = l ? rag_realloc(s->vals, cap * sizeof *s->vals) : NULL;
        if (!v) {
            json_decref(kept);
            return s->rc = RAG_ENOMEM;
        }
        s->vals = v;
        s->cap = cap;
    }
    memcpy(s->keys[s->n], key, klen);
    s->klens[s->n] = klen;
    s->vals[s->n] = json_array_size(kept) ? json_dumps(kept, JSON_COMPACT | JSON_PRESERVE_ORDER)
                                          : NULL;
    if (json_array_size(kept) && !s->vals[s->n]) {
        json_decref(kept);
        return s->rc = RAG_ENOMEM;
    }
    s->n++;
    s->removed += dropped;
    json_decref(kept);
    return 0;
}

/* Deletes the query-log entries that reference what the ops removed (batches rewritten
 * without them, or deleted when nothing is left). *removed counts entries. */
static int scrub_log(rag_txn *txn, const json_t *ops, uint64_t *removed)
{
    log_scan s;
    memset(&s, 0, sizeof s);
    size_t nops = json_array_size(ops), i;
    json_t *op;
    log_refs *refs = rag_calloc(nops + 1, sizeof *refs);
    int rc = refs ? RAG_OK : RAG_ENOMEM;
    json_array_foreach(ops, i, op) {
        const char *kind = json_string_value(json_object_get(op, "op"));
        const char *coll = json_string_value(json_object_get(op, "collection"));
        if (!refs || !kind || !coll || !strcmp(kind, "pii_apply"))
            continue;
        refs[s.nrefs].collection = coll;
        refs[s.nrefs++].ids = strcmp(kind, "drop") ? json_object_get(op, "ids") : NULL;
    }
    s.refs = refs;
    if (rc == RAG_OK && s.nrefs > 0) {
        rc = rag_store_kv_scan(txn, QLOG_TABLE, NULL, 0, log_visit, &s);
        if (rc == RAG_ENOTFOUND) {
            rag_clear_error();
            rc = RAG_OK;
        }
        if (rc > 0 || (rc == RAG_OK && s.rc != RAG_OK))
            rc = s.rc;
    }
    for (size_t k = 0; k < s.n && rc == RAG_OK; k++)
        rc = s.vals[k] ? rag_store_kv_put(txn, QLOG_TABLE, s.keys[k], s.klens[k], s.vals[k],
                                          strlen(s.vals[k]))
                       : rag_store_kv_del(txn, QLOG_TABLE, s.keys[k], s.klens[k]);
    for (size_t k = 0; k < s.n; k++)
        free(s.vals[k]);
    free(s.keys);
    free(s.klens);
    free(s.vals);
    free(refs);
    *removed = rc == RAG_OK ? s.removed : 0;
    return rc;
}

typedef struct settle_arg {
    json_t *intent;              /* its ops are cleared by the transaction */
    uint64_t log_removed;
} settle_arg;

/* One transaction: the query-log entries of the ops go, and the intent keeps only the
 * collections to rebuild (no document id stays in the store). */
static int settle_fn(rag_txn *txn, void *user)
{
    settle_arg *a = user;
    json_t *ops = json_object_get(a->intent, "ops");
    int rc = scrub_log(txn, ops, &a->log_removed);
    size_t i;
    json_t *op;
    json_array_foreach(ops, i, op) {
        const char *kind = json_string_value(json_object_get(op, "op"));
        const char *coll = json_string_value(json_object_get(op, "collection"));
        json_t *ids = json_object_get(op, "ids"), *id;
        size_t k;
        if (rc != RAG_OK || !kind || !coll || strcmp(kind, "delete"))
            continue;
        json_array_foreach(ids, k, id) { /* why a skipped duplicate was not stored */
            if (rc == RAG_OK && json_is_string(id))
                rc = rag_dedup_record_clear(txn, coll, json_string_value(id));
        }
    }
    if (rc != RAG_OK)
        return rc;
    json_t *settled = json_pack("{s:[],s:O}", "ops", "rebuild",
                                json_object_get(a->intent, "rebuild"));
    if (!settled)
        return rag_fail(RAG_ENOMEM, "out of memory");
    rc = intent_put(txn, settled);
    json_decref(settled);
    return rc;
}

/* ---- index files -------------------------------------------------------------------------- */

/* Overwrites a file with zeros, syncs it and removes it. An absent file is fine. */
static int shred_file(const char *path)
{
    int fd = open(path, O_WRONLY | O_CLOEXEC);
    if (fd < 0)
        return errno == ENOENT ? RAG_OK
                               : rag_fail(RAG_EIO, "cannot open '%s': %s", path, strerror(errno));
    struct stat sb;
    int rc = RAG_OK;
    char zeros[65536];
    memset(zeros, 0, sizeof zeros);
    if (fstat(fd, &sb) != 0) {
        rc = rag_fail(RAG_EIO, "cannot stat '%s': %s", path, strerror(errno));
    } else {
        for (off_t off = 0; off < sb.st_size && rc == RAG_OK;) {
            size_t n = (size_t)(sb.st_size - off) < sizeof zeros ? (size_t)(sb.st_size - off)
                                                                  : sizeof zeros;
            ssize_t w = pwrite(fd, zeros, n, off);
            if (w <= 0)
                rc = rag_fail(RAG_EIO, "cannot overwrite '%s': %s", path, strerror(errno));
            else
                off += w;
        }
    }
    if (rc == RAG_OK && fdatasync(fd) != 0)
        rc = rag_fail(RAG_EIO, "cannot sync '%s': %s", path, strerror(errno));
    close(fd);
    if (rc == RAG_OK && unlink(path) != 0 && errno != ENOENT)
        rc = rag_fail(RAG_EIO, "cannot remove '%s': %s", path, strerror(errno));
    return rc;
}

/* Takes the deleted vectors' bytes out of a collection's index and its file: zeroes them
 * in the index in memory (cost proportional to the vectors deleted since the last
 * compaction), or rebuilds the index from the store where its spec cannot be patched
 * (quantised, IVF), then writes the file after shredding the old one; a crash in between
 * leaves no file, and the next open rebuilds it. Caller holds db->write_lock. */
static int erase_index(rag_db *db, rag_coll *c, uint64_t *files)
{
    char path[4096];
    size_t wiped = 0;
    rag_coll_index_path(db->dir, c->id, path, sizeof path);
    int rc = rag_coll_index_wipe_deleted(db, c, &wiped);
    int rebuild = rc == RAG_EUNSUPPORTED;
    if (rebuild) {
        rag_clear_error();
        rc = RAG_OK;
    }
    if (rc == RAG_OK)
        rc = shred_file(path);
    if (rc == RAG_OK) {
        c->dirty = 1;
        rc = rag_coll_index_checkpoint(db, c, rebuild);
        (*files)++;
    }
    return rc;
}

/* Shreds every file of the index directory that is not the index of a live collection
 * (temporary files of interrupted checkpoints, indexes of dropped collections). */
static int shred_strays(rag_db *db, uint64_t *files)
{
    char dir[4096], path[4352];
    rag_coll_index_dir(db->dir, dir, sizeof dir);
    DIR *d = opendir(dir);
    if (!d)
        return RAG_OK;
    int rc = RAG_OK;
    struct dirent *e;
    while (rc == RAG_OK && (e = readdir(d)) != NULL) {
        if (e->d_name[0] == '.')
            continue;
        unsigned id = 0;
        char tail[8] = "";
        int live = 0;
        if (sscanf(e->d_name, "%u.%7s", &id, tail) == 2 && !strcmp(tail, "idx")) {
            pthread_mutex_lock(&db->colls_lock);
            for (size_t i = 0; i < db->ncolls && !live; i++)
                live = !db->colls[i]->dropped && db->colls[i]->id == id;
            pthread_mutex_unlock(&db->colls_lock);
        }
        if (live)
            continue;
        snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        rc = shred_file(path);
        (*files)++;
    }
    closedir(d);
    return rc;
}

/* ---- the ops ------------------------------------------------------------------------------- */

/* The ids of a collection's documents with PII under its policy (text, title or metadata). */
typedef struct pii_scan {
    rag_txn *txn;
    uint32_t coll;
    unsigned types;
    char **ids;
    size_t n, cap;
    int rc;
} pii_scan;

static int has_pii(const char *s, size_t len, unsigned types)
{
    rag_pii_match *m = NULL;
    size_t n = 0;
    if (!s || !len || rag_pii_scan(s, len, types, &m, &n) != RAG_OK)
        return 0;
    free(m);
    return n > 0;
}

static int pii_scan_visit(void *user, const rag_doc_rec *d)
{
    pii_scan *p = user;
    char *text = NULL;
    size_t len = 0;
    int found = has_pii(d->title, d->title ? strlen(d->title) : 0, p->types) ||
                has_pii(d->metadata, d->metadata ? strlen(d->metadata) : 0, p->types);
    if (!found) {
        if ((p->rc = rag_dedup_stored_text(p->txn, p->coll, d->id, &text, &len)) != RAG_OK)
            return 1;
        found = has_pii(text, len, p->types);
        free(text);
    }
    if (!found)
        return 0;
    if (p->n == p->cap) {
        size_t cap = p->cap ? p->cap * 2 : 64;
        char **grown = rag_realloc(p->ids, cap * sizeof *grown);
        if (!grown) {
            p->rc = RAG_ENOMEM;
            return 1;
        }
        p->ids = grown;
        p->cap = cap;
    }
    if (!(p->ids[p->n] = rag_strdup(d->id))) {
        p->rc = RAG_ENOMEM;
        return 1;
    }
    p->n++;
    return 0;
}

/* Stores documents ids[0, n) again from their stored text, title, metadata and dates
 * through the collection's pipeline, so that its current policy masks, hashes or drops
 * what it finds. Markdown is recognised by the heading paths of its chunks. */
static int reingest(rag_db *db, const char *collection, uint32_t coll, char **ids, size_t n,
                    uint64_t *documents)
{
    rag_txn *txn = NULL;
    rag_document *docs = rag_calloc(n, sizeof *docs);
    rag_doc_rec **recs = rag_calloc(n, sizeof *recs);
    char **texts = rag_calloc(n, sizeof *texts);
    size_t m = 0;
    int rc = docs && recs && texts ? rag_store_read(db->st, &txn) : RAG_ENOMEM;
    for (size_t i = 0; i < n && rc == RAG_OK; i++) {
        size_t len = 0;
        rc = rag_store_doc_get(txn, coll, ids[i], &recs[m]);
        if (rc == RAG_ENOTFOUND) { /* deleted meanwhile */
            rag_clear_error();
            rc = RAG_OK;
            continue;
        }
        if (rc == RAG_OK)
            rc = rag_dedup_stored_text(txn, coll, ids[i], &texts[m], &len);
        if (rc != RAG_OK)
            break;
        rag_document *d = &docs[m];
        const rag_doc_rec *r = recs[m];
        rag_document_init(d);
        d->id = r->id;
        d->text = texts[m];
        d->text_len = len;
        d->title = r->title && *r->title ? r->title : NULL;
        d->source = r->source && *r->source ? r->source : NULL;
        d->metadata_json = r->metadata && *r->metadata ? r->metadata : NULL;
        d->source_mtime = r->source_mtime;
        d->valid_until = r->valid_until;
        d->ttl_seconds = 0;
        for (uint32_t k = 0; k < r->nchunks && d->format == RAG_FORMAT_TEXT; k++) {
            rag_chunk_rec *ch = NULL;
            if (rag_store_chunk_get(txn, coll, r->chunk_ids[k], &ch) == RAG_OK && ch->heading &&
                *ch->heading)
                d->format = RAG_FORMAT_MARKDOWN;
            rag_chunk_rec_free(ch);
        }
        rag_clear_error();
        m++;
    }
    rag_txn_end(txn);
    if (rc == RAG_OK && m > 0) {
        rag_ingest_options o;
        rag_ingest_summary s;
        rag_ingest_options_init(&o);
        o.collection = collection;
        rc = rag_ingest_documents(db, docs, m, &o, &s);
        if (rc == RAG_OK && s.failed > 0)
            rc = rag_fail(RAG_EINVAL, "%llu stored documents of collection '%s' could not be "
                          "stored again under its policy", (unsigned long long)s.failed,
                          collection);
        if (rc == RAG_OK)
            *documents += m;
    }
    for (size_t i = 0; i < m; i++) {
        rag_doc_rec_free(recs[i]);
        free(texts[i]);
    }
    free(docs);
    free(recs);
    free(texts);
    return rc;
}

/* Re-applies collection `name`'s PII policy to its stored documents. */
static int op_pii_apply(rag_db *db, const char *name, uint64_t *documents)
{
    rag_collection_options pol;
    pii_scan p;
    memset(&p, 0, sizeof p);
    rag_coll *c = rag_db_find_coll(db, name);
    if (!c)
        return RAG_OK; /* dropped since */
    int rc = rag_store_read(db->st, &p.txn);
    if (rc != RAG_OK)
        return rc;
    p.coll = c->id;
    if ((rc = rag_policy_read(p.txn, c->id, &pol)) == RAG_OK && pol.pii != RAG_PII_OFF) {
        p.types = pol.pii_types;
        rc = rag_store_doc_scan(p.txn, c->id, pii_scan_visit, &p);
        if (rc > 0 || p.rc != RAG_OK)
            rc = p.rc;
    }
    rag_txn_end(p.txn);
    for (size_t i = 0; i < p.n && rc == RAG_OK; i += PII_APPLY_BATCH)
        rc = reingest(db, name, c->id, p.ids + i,
                      p.n - i < PII_APPLY_BATCH ? p.n - i : PII_APPLY_BATCH, documents);
    for (size_t i = 0; i < p.n; i++)
        free(p.ids[i]);
    free(p.ids);
    return rc;
}

static int op_drop(rag_db *db, const char *name, uint64_t *documents, uint64_t *files)
{
    rag_collection_info info;
    rag_coll *c = rag_db_find_coll(db, name);
    if (!c)
        return RAG_OK;
    char path[4096];
    rag_coll_index_path(db->dir, c->id, path, sizeof path);
    int rc = rag_collection_stats(db, name, &info);
    if (rc == RAG_OK && (rc = shred_file(path)) == RAG_OK) {
        (*files)++;
        rc = rag_collection_drop(db, name);
    }
    if (rc == RAG_OK)
        *documents += info.documents;
    return rc;
}

static int op_delete(rag_db *db, const char *coll, const json_t *ids, uint64_t *documents)
{
    size_t n = json_array_size(ids), m = 0;
    const char **list = rag_calloc(n ? n : 1, sizeof *list);
    if (!list)
        return RAG_ENOMEM;
    for (size_t i = 0; i < n; i++)
        if (json_is_string(json_array_get(ids, i)))
            list[m++] = json_string_value(json_array_get(ids, i));
    uint64_t deleted = 0;
    int rc = rag_db_find_coll(db, coll) ? rag_db_delete_docs(db, coll, list, m, 1, &deleted)
                                        : RAG_OK;
    free(list);
    *documents += deleted;
    return rc;
}

/* ---- running an intent ---------------------------------------------------------------------- */

/* 1 when the string at position i of `names` also appears before it (a collection named
 * by several ops of one intent has its index erased once). */
static int listed_before(const json_t *names, size_t i)
{
    const char *s = json_string_value(json_array_get(names, i));
    for (size_t k = 0; s && k < i; k++) {
        const char *t = json_string_value(json_array_get(names, k));
        if (t && !strcmp(s, t))
            return 1;
    }
    return 0;
}

int rag_erase_run(rag_db *db, rag_erase_stats *stats)
{
    double t0 = now_seconds();
    json_t *intent = NULL;
    rag_scrub_stats ss;
    memset(&ss, 0, sizeof ss);
    rag_erase_stats s;
    memset(&s, 0, sizeof s);
    int rc = intent_read(db, &intent);
    size_t i;
    json_t *op;
    kill_point("intent");
    json_array_foreach(intent ? json_object_get(intent, "ops") : NULL, i, op) {
        const char *kind = json_string_value(json_object_get(op, "op"));
        const char *coll = json_string_value(json_object_get(op, "collection"));
        if (rc != RAG_OK)
            break;
        if (!kind || !coll)
            rc = rag_fail(RAG_ECORRUPT, "pending erasure: op %zu has no kind or collection", i);
        else if (!strcmp(kind, "delete"))
            rc = op_delete(db, coll, json_object_get(op, "ids"), &s.documents);
        else if (!strcmp(kind, "drop"))
            rc = op_drop(db, coll, &s.documents, &s.index_files);
        else if (!strcmp(kind, "pii_apply"))
            rc = op_pii_apply(db, coll, &s.documents);
        else
            rc = rag_fail(RAG_ECORRUPT, "pending erasure: unknown op '%s'", kind);
    }
    kill_point("removed");
    if (rc == RAG_OK && intent) {
        settle_arg a = {intent, 0};
        rc = rag_store_write(db->st, settle_fn, &a);
        s.log_entries = a.log_removed;
    }
    if (rc == RAG_OK) {
        pthread_mutex_lock(&db->write_lock);
        kill_point("settled");
        rc = rag_embcache_gc(db, &s.cache_entries);
        const json_t *colls = intent ? json_object_get(intent, "rebuild") : NULL;
        json_t *name;
        json_array_foreach(colls, i, name) {
            rag_coll *c = json_is_string(name) ? rag_db_find_coll(db, json_string_value(name))
                                               : NULL;
            if (rc == RAG_OK && c && !listed_before(colls, i))
                rc = erase_index(db, c, &s.index_files);
        }
        if (rc == RAG_OK)
            rc = shred_strays(db, &s.index_files);
        kill_point("index");
        if (rc == RAG_OK)
            rc = rag_store_scrub(db->st, SCRUB_WAIT_SECONDS, &ss);
        kill_point("scrubbed");
        if (rc == RAG_OK && intent)
            rc = rag_store_write(db->st, intent_put_fn, NULL);
        pthread_mutex_unlock(&db->write_lock);
    }
    json_decref(intent);
    s.store_bytes = ss.file_bytes;
    s.bytes_zeroed = ss.pages_zeroed * ss.page_size + ss.gap_bytes_zeroed + ss.tail_bytes_zeroed;
    s.seconds = now_seconds() - t0;
    if (stats)
        *stats = s;
    return rc;
}

/* ---- public calls ------------------------------------------------------------------------- */

static int check_db(rag_db *db, const char *what)
{
    if (!db)
        return rag_fail(RAG_EINVAL, "%s: db is NULL", what);
    if (db->opts.read_only)
        return rag_fail(RAG_EREADONLY, "%s: store is open read-only", what);
    return RAG_OK;
}

/* Records `op` (reference stolen; NULL: out of memory) in the intent and runs it. */
static int record_and_run(rag_db *db, json_t *op, const char *collection, rag_erase_stats *stats)
{
    if (!op)
        return rag_fail(RAG_ENOMEM, "out of memory");
    int rc = intent_add(db, op, collection);
    return rc == RAG_OK ? rag_erase_run(db, stats) : rc;
}

int rag_erase_documents(rag_db *db, const char *collection, const char *const *ids, size_t n,
                        rag_erase_stats *stats)
{
    rag_clear_error();
    if (stats)
        memset(stats, 0, sizeof *stats);
    int rc = check_db(db, "rag_erase_documents");
    if (rc != RAG_OK)
        return rc;
    if (!ids && n)
        return rag_fail(RAG_EINVAL, "rag_erase_documents: ids is NULL");
    const char *coll = collection ? collection : RAG_DEFAULT_COLLECTION;
    rag_coll *c = rag_db_find_coll(db, coll);
    if (!c)
        return rag_fail(RAG_ENOTFOUND, "collection '%s' does not exist", coll);
    rag_txn *txn = NULL;
    json_t *list = json_array();
    if (!list || (rc = rag_store_read(db->st, &txn)) != RAG_OK) {
        json_decref(list);
        return list ? rc : RAG_ENOMEM;
    }
    for (size_t i = 0; i < n && rc == RAG_OK; i++) {
        rag_doc_rec *d = NULL;
        if (!ids[i])
            rc = rag_fail(RAG_EINVAL, "rag_erase_documents: ids[%zu] is NULL", i);
        else if ((rc = rag_store_doc_get(txn, c->id, ids[i], &d)) == RAG_ENOTFOUND)
            rc = rag_fail(RAG_ENOTFOUND, "document '%s' not found in collection '%s'", ids[i],
                          coll);
        else if (rc == RAG_OK && json_array_append_new(list, json_string(ids[i])) != 0)
            rc = RAG_ENOMEM;
        rag_doc_rec_free(d);
    }
    rag_txn_end(txn);
    if (rc != RAG_OK) {
        json_decref(list);
        return rc;
    }
    return record_and_run(db, json_pack("{s:s,s:s,s:o}", "op", "delete", "collection", coll,
                                        "ids", list), coll, stats);
}

int rag_collection_erase(rag_db *db, const char *name, rag_erase_stats *stats)
{
    rag_clear_error();
    if (stats)
        memset(stats, 0, sizeof *stats);
    int rc = check_db(db, "rag_collection_erase");
    if (rc != RAG_OK)
        return rc;
    if (!name || !rag_db_find_coll(db, name))
        return rag_fail(name ? RAG_ENOTFOUND : RAG_EINVAL, "collection '%s' does not exist",
                        name ? name : "(null)");
    return record_and_run(db, json_pack("{s:s,s:s}", "op", "drop", "collection", name), name,
                          stats);
}

int rag_collection_pii_apply(rag_db *db, const char *name, rag_erase_stats *stats)
{
    rag_clear_error();
    if (stats)
        memset(stats, 0, sizeof *stats);
    int rc = check_db(db, "rag_collection_pii_apply");
    if (rc != RAG_OK)
        return rc;
    rag_collection_options pol;
    if (!name)
        return rag_fail(RAG_EINVAL, "rag_collection_pii_apply: name is NULL");
    if ((rc = rag_collection_options_get(db, name, &pol)) != RAG_OK)
        return rc;
    if (pol.pii == RAG_PII_OFF)
        return rag_fail(RAG_EINVAL, "collection '%s' has PII handling off: set pii to mask, "
                        "hash or drop first (rag_collection_configure)", name);
    return record_and_run(db, json_pack("{s:s,s:s}", "op", "pii_apply", "collection", name),
                          name, stats);
}

int rag_erase_finish(rag_db *db, rag_erase_stats *stats)
{
    rag_clear_error();
    if (stats)
        memset(stats, 0, sizeof *stats);
    int rc = check_db(db, "rag_erase_finish");
    return rc == RAG_OK ? rag_erase_run(db, stats) : rc;
}

int rag_erase_begin_replace(rag_db *db, const char *collection)
{
    return intent_add(db, NULL, collection ? collection : RAG_DEFAULT_COLLECTION);
}

int rag_erase_pending(rag_db *db, int *pending)
{
    json_t *intent = NULL;
    int rc = intent_read(db, &intent);
    *pending = intent != NULL;
    json_decref(intent);
    return rc;
}
