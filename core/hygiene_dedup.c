/* hygiene_dedup.c - the persistent duplicate index of a collection (exact keys, MinHash LSH
 * bands) and the records of skipped duplicates, inside the store's transactions. */
#include "hygiene_dedup.h"

#include "bytes.h"
#include "status.h"
#include "store.h"
#include "text.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define T_DOCS "dedup_docs"
#define T_KEYS "dedup_keys"
#define T_SOURCES "sources"
#define REC_HEAD 16                                   /* rows, pad, shingles, hash */
#define REC_BYTES (REC_HEAD + RAG_DEDUP_PERM * 4)
#define KEY_MAX 32

/* ---- keys and records -------------------------------------------------------------------- */

static size_t doc_key(uint32_t coll, const char *id, unsigned char *k)
{
    size_t n = strlen(id);
    rag_put_be32(k, coll);
    memcpy(k + 4, id, n);
    return 4 + n;
}

/* The keys carry text hashes in the store's visible form (rag_store_key_hash: keyed on an
 * encrypted store). */
static size_t exact_key(const rag_txn *txn, uint32_t coll, uint64_t hash, uint64_t idh,
                        unsigned char *k)
{
    rag_put_be32(k, coll);
    k[4] = 'E';
    rag_put_be64(k + 5, rag_store_key_hash(txn, hash));
    rag_put_be64(k + 13, idh);
    return 21;
}

static size_t band_key(const rag_txn *txn, uint32_t coll, int rows, int band, uint64_t key,
                       uint64_t idh, unsigned char *k)
{
    rag_put_be32(k, coll);
    k[4] = 'B';
    k[5] = (unsigned char)rows;
    k[6] = (unsigned char)band;
    rag_put_be64(k + 7, rag_store_key_hash(txn, key));
    rag_put_be64(k + 15, idh);
    return 23;
}

static uint64_t id_hash(const char *id)
{
    return rag_hash_bytes(id, strlen(id));
}

static void rec_encode(const rag_dedup_sig *s, int rows, unsigned char *r)
{
    memset(r, 0, REC_HEAD);
    r[0] = (unsigned char)rows;
    rag_put_be32(r + 4, s->shingles);
    rag_put_be64(r + 8, s->hash);
    for (int p = 0; p < RAG_DEDUP_PERM; p++)
        rag_put_be32(r + REC_HEAD + 4 * p, s->sig[p]);
}

static int rec_decode(const void *v, size_t vl, rag_dedup_sig *s, int *rows)
{
    const unsigned char *r = v;
    if (vl != REC_BYTES)
        return rag_fail(RAG_ECORRUPT, "duplicate index record of %zu bytes (expected %d)", vl,
                        REC_BYTES);
    *rows = r[0];
    s->shingles = rag_get_be32(r + 4);
    s->hash = rag_get_be64(r + 8);
    for (int p = 0; p < RAG_DEDUP_PERM; p++)
        s->sig[p] = rag_get_be32(r + REC_HEAD + 4 * p);
    return RAG_OK;
}

/* Band height for a threshold; 0: exact keys only. */
static int rows_of(double threshold)
{
    return threshold > 1.0 ? 0 : rag_dedup_rows(threshold);
}

/* ---- prefix scans ---------------------------------------------------------------------------- */

/* Collects the values (ids) or keys of entries that start with a prefix. */
typedef struct prefix_scan {
    const unsigned char *prefix;
    size_t plen;
    int want_keys;          /* collect keys instead of values */
    char **items;
    size_t *lens;
    size_t n, cap;
    int rc;
} prefix_scan;

static int prefix_visit(void *user, const void *key, size_t klen, const void *val, size_t vlen)
{
    prefix_scan *p = user;
    if (klen < p->plen || memcmp(key, p->prefix, p->plen) != 0)
        return 1;
    if (p->n == p->cap) {
        size_t cap = p->cap ? p->cap * 2 : 16;
        char **q = rag_realloc(p->items, cap * sizeof *q);
        size_t *l = q ? rag_realloc(p->lens, cap * sizeof *l) : NULL;
        if (q)
            p->items = q;
        if (!q || !l) {
            p->rc = RAG_ENOMEM;
            return 1;
        }
        p->lens = l;
        p->cap = cap;
    }
    const void *src = p->want_keys ? key : val;
    size_t len = p->want_keys ? klen : vlen;
    if (!(p->items[p->n] = rag_malloc(len + 1))) {
        p->rc = RAG_ENOMEM;
        return 1;
    }
    memcpy(p->items[p->n], src, len);
    p->items[p->n][len] = '\0';
    p->lens[p->n++] = len;
    return 0;
}

static int scan_prefix(rag_txn *txn, const char *table, const void *prefix, size_t plen,
                       int want_keys, prefix_scan *p)
{
    memset(p, 0, sizeof *p);
    p->prefix = prefix;
    p->plen = plen;
    p->want_keys = want_keys;
    int rc = rag_store_kv_scan(txn, table, prefix, plen, prefix_visit, p);
    if (rc == 1)
        rc = RAG_OK;
    return rc != RAG_OK ? rc : p->rc;
}

static void scan_free(prefix_scan *p)
{
    for (size_t i = 0; i < p->n; i++)
        free(p->items[i]);
    free(p->items);
    free(p->lens);
    memset(p, 0, sizeof *p);
}

/* Deletes every key collected by a scan of `table`. */
static int delete_keys(rag_txn *txn, const char *table, const prefix_scan *p)
{
    int rc = RAG_OK;
    for (size_t i = 0; i < p->n && rc == RAG_OK; i++) {
        rc = rag_store_kv_del(txn, table, p->items[i], p->lens[i]);
        if (rc == RAG_ENOTFOUND)
            rc = RAG_OK;
    }
    return rc;
}

/* ---- lookups ------------------------------------------------------------------------------- */

/* Reads the indexed signature of document id; RAG_ENOTFOUND when it is not indexed. */
static int read_sig(rag_txn *txn, uint32_t coll, const char *id, rag_dedup_sig *s, int *rows)
{
    unsigned char k[4 + RAG_DOC_ID_MAX + 1];
    if (strlen(id) > RAG_DOC_ID_MAX)
        return RAG_ENOTFOUND;
    const void *v = NULL;
    size_t vl = 0;
    int rc = rag_store_kv_get(txn, T_DOCS, k, doc_key(coll, id, k), &v, &vl);
    if (rc != RAG_OK)
        return rc;
    return rec_decode(v, vl, s, rows);
}

static void set_found(rag_dedup_found *out, rag_dup_kind kind, const char *id, size_t len,
                      double sim)
{
    out->kind = kind;
    if (len > RAG_DOC_ID_MAX)
        len = RAG_DOC_ID_MAX;
    memcpy(out->canonical, id, len);
    out->canonical[len] = '\0';
    out->similarity = sim;
}

/* 1 when a candidate id (len bytes) is the document itself. */
static int is_self(const char *self, const char *id, size_t len)
{
    return self && strlen(self) == len && memcmp(self, id, len) == 0;
}

int rag_dedup_store_find(rag_txn *txn, uint32_t coll, const rag_dedup_sig *s, double threshold,
                         const char *self, rag_dedup_found *out)
{
    memset(out, 0, sizeof *out);
    unsigned char k[KEY_MAX];
    prefix_scan p;
    /* exact: coll 'E' hash */
    size_t kl = exact_key(txn, coll, s->hash, 0, k) - 8;
    int rc = scan_prefix(txn, T_KEYS, k, kl, 0, &p);
    for (size_t i = 0; rc == RAG_OK && i < p.n; i++)
        if (!is_self(self, p.items[i], p.lens[i])) {
            set_found(out, RAG_DUP_EXACT, p.items[i], p.lens[i], 1.0);
            break;
        }
    scan_free(&p);
    int rows = rows_of(threshold);
    if (rc != RAG_OK || out->kind != RAG_DUP_NONE || rows == 0 || s->shingles == 0)
        return rc;
    /* near: candidates sharing a band, verified on their whole signatures */
    double best = -1;
    rag_dedup_sig other;
    for (int b = 0; rc == RAG_OK && b < RAG_DEDUP_PERM / rows; b++) {
        kl = band_key(txn, coll, rows, b, rag_dedup_band(s->sig, rows, b), 0, k) - 8;
        if ((rc = scan_prefix(txn, T_KEYS, k, kl, 0, &p)) != RAG_OK)
            break;
        for (size_t i = 0; rc == RAG_OK && i < p.n; i++) {
            int orows = 0;
            if (is_self(self, p.items[i], p.lens[i]) ||
                (out->kind && strcmp(out->canonical, p.items[i]) == 0))
                continue;
            rc = read_sig(txn, coll, p.items[i], &other, &orows);
            if (rc == RAG_ENOTFOUND) { /* a stale band entry: ignore it */
                rc = RAG_OK;
                continue;
            }
            double sim = rc == RAG_OK ? rag_dedup_sig_similarity(s, &other) : 0;
            if (rc == RAG_OK && sim >= threshold && sim > best) {
                best = sim;
                set_found(out, RAG_DUP_NEAR, p.items[i], p.lens[i], sim);
            }
        }
        scan_free(&p);
    }
    return rc;
}

/* ---- updates ------------------------------------------------------------------------------ */

/* Deletes the exact key and band entries of an indexed signature. */
static int delete_entries(rag_txn *txn, uint32_t coll, const char *id, const rag_dedup_sig *s,
                          int rows)
{
    unsigned char k[KEY_MAX];
    uint64_t idh = id_hash(id);
    int rc = rag_store_kv_del(txn, T_KEYS, k, exact_key(txn, coll, s->hash, idh, k));
    if (rc == RAG_ENOTFOUND)
        rc = RAG_OK;
    for (int b = 0; rc == RAG_OK && rows > 0 && s->shingles && b < RAG_DEDUP_PERM / rows; b++) {
        uint64_t band = rag_dedup_band(s->sig, rows, b);
        rc = rag_store_kv_del(txn, T_KEYS, k, band_key(txn, coll, rows, b, band, idh, k));
        if (rc == RAG_ENOTFOUND)
            rc = RAG_OK;
    }
    return rc;
}

int rag_dedup_store_remove(rag_txn *txn, uint32_t coll, const char *id)
{
    rag_dedup_sig s;
    int rows = 0;
    int rc = read_sig(txn, coll, id, &s, &rows);
    if (rc == RAG_ENOTFOUND) {
        rag_clear_error();
        return RAG_OK;
    }
    if (rc == RAG_OK)
        rc = delete_entries(txn, coll, id, &s, rows);
    unsigned char k[4 + RAG_DOC_ID_MAX + 1];
    if (rc == RAG_OK)
        rc = rag_store_kv_del(txn, T_DOCS, k, doc_key(coll, id, k));
    return rc == RAG_ENOTFOUND ? RAG_OK : rc;
}

int rag_dedup_store_add(rag_txn *txn, uint32_t coll, const char *id, const rag_dedup_sig *s,
                        double threshold)
{
    if (strlen(id) > RAG_DOC_ID_MAX)
        return rag_fail(RAG_EINVAL, "document id longer than %d bytes", RAG_DOC_ID_MAX);
    int rc = rag_dedup_store_remove(txn, coll, id);
    if (rc != RAG_OK)
        return rc;
    int rows = rows_of(threshold);
    unsigned char rec[REC_BYTES], dk[4 + RAG_DOC_ID_MAX + 1], k[KEY_MAX];
    rec_encode(s, rows, rec);
    size_t idl = strlen(id);
    uint64_t idh = id_hash(id);
    rc = rag_store_kv_put(txn, T_DOCS, dk, doc_key(coll, id, dk), rec, sizeof rec);
    if (rc == RAG_OK)
        rc = rag_store_kv_put(txn, T_KEYS, k, exact_key(txn, coll, s->hash, idh, k), id, idl);
    for (int b = 0; rc == RAG_OK && rows > 0 && s->shingles && b < RAG_DEDUP_PERM / rows; b++)
        rc = rag_store_kv_put(txn, T_KEYS, k,
                              band_key(txn, coll, rows, b, rag_dedup_band(s->sig, rows, b), idh, k),
                              id, idl);
    return rc;
}

/* "dup:<collection>/<id>" into buf; 0 when it does not fit an aux key (511 bytes). */
static size_t skip_key(const char *collection, const char *id, char *buf, size_t cap)
{
    int n = snprintf(buf, cap, "dup:%s/%s", collection, id);
    return n > 0 && (size_t)n < cap && n <= 511 ? (size_t)n : 0;
}

/* Deletes every entry of a collection's index (both tables). */
static int clear_index(rag_txn *txn, uint32_t coll)
{
    unsigned char k[4];
    rag_put_be32(k, coll);
    prefix_scan p;
    int rc = scan_prefix(txn, T_DOCS, k, 4, 1, &p);
    if (rc == RAG_OK)
        rc = delete_keys(txn, T_DOCS, &p);
    scan_free(&p);
    if (rc == RAG_OK && (rc = scan_prefix(txn, T_KEYS, k, 4, 1, &p)) == RAG_OK)
        rc = delete_keys(txn, T_KEYS, &p);
    scan_free(&p);
    return rc;
}

int rag_dedup_store_purge(rag_txn *txn, uint32_t coll, const char *name)
{
    int rc = clear_index(txn, coll);
    prefix_scan p;
    memset(&p, 0, sizeof p);
    char sk[600];
    size_t sl = name ? skip_key(name, "", sk, sizeof sk) : 0;
    if (rc == RAG_OK && sl && (rc = scan_prefix(txn, T_SOURCES, sk, sl, 1, &p)) == RAG_OK)
        rc = delete_keys(txn, T_SOURCES, &p);
    scan_free(&p);
    return rc;
}

typedef struct id_list {
    char **ids;
    size_t n, cap;
    int rc;
} id_list;

static int collect_id(void *user, const rag_doc_rec *d)
{
    id_list *l = user;
    if (l->n == l->cap) {
        size_t cap = l->cap ? l->cap * 2 : 64;
        char **q = rag_realloc(l->ids, cap * sizeof *q);
        if (!q)
            return l->rc = RAG_ENOMEM;
        l->ids = q;
        l->cap = cap;
    }
    if (!(l->ids[l->n] = rag_strdup(d->id)))
        return l->rc = RAG_ENOMEM;
    l->n++;
    return 0;
}

/* The stored text of a document rebuilt from its chunks (gaps between chunks become
 * spaces, which normalisation collapses). *text is owned by the caller. */
int rag_dedup_stored_text(rag_txn *txn, uint32_t coll, const char *id, char **text, size_t *len)
{
    rag_doc_rec *d = NULL;
    int rc = rag_store_doc_get(txn, coll, id, &d);
    if (rc != RAG_OK)
        return rc;
    char *buf = rag_malloc(d->text_len + 1);
    if (!buf) {
        rag_doc_rec_free(d);
        return RAG_ENOMEM;
    }
    memset(buf, ' ', d->text_len);
    buf[d->text_len] = '\0';
    for (uint32_t i = 0; rc == RAG_OK && i < d->nchunks; i++) {
        rag_chunk_rec *ch = NULL;
        rc = rag_store_chunk_get(txn, coll, d->chunk_ids[i], &ch);
        if (rc == RAG_OK && ch->start <= d->text_len && ch->text_len <= d->text_len - ch->start)
            memcpy(buf + ch->start, ch->text, ch->text_len);
        rag_chunk_rec_free(ch);
    }
    *len = d->text_len;
    rag_doc_rec_free(d);
    if (rc != RAG_OK) {
        free(buf);
        return rc;
    }
    *text = buf;
    return RAG_OK;
}

int rag_dedup_store_rebuild(rag_txn *txn, uint32_t coll, double threshold, uint64_t *indexed)
{
    *indexed = 0;
    int rc = clear_index(txn, coll);
    id_list l = {NULL, 0, 0, RAG_OK};
    if (rc == RAG_OK && (rc = rag_store_doc_scan(txn, coll, collect_id, &l)) == RAG_OK)
        rc = l.rc;
    rag_dedup_sig *s = rag_malloc(sizeof *s);
    if (!s)
        rc = RAG_ENOMEM;
    for (size_t i = 0; rc == RAG_OK && i < l.n; i++) {
        char *text = NULL;
        size_t len = 0;
        rag_dedup_found f;
        if ((rc = rag_dedup_stored_text(txn, coll, l.ids[i], &text, &len)) == RAG_OK &&
            (rc = rag_dedup_signature(text, len, s)) == RAG_OK &&
            (rc = rag_dedup_store_find(txn, coll, s, threshold, l.ids[i], &f)) == RAG_OK &&
            f.kind == RAG_DUP_NONE && (rc = rag_dedup_store_add(txn, coll, l.ids[i], s,
                                                               threshold)) == RAG_OK)
            (*indexed)++;
        free(text);
    }
    free(s);
    for (size_t i = 0; i < l.n; i++)
        free(l.ids[i]);
    free(l.ids);
    return rc;
}

int rag_dedup_record_skip(rag_txn *txn, const char *collection, const char *id,
                          const char *source, const rag_dedup_found *f, int *recorded)
{
    *recorded = 0;
    char key[600];
    size_t kl = skip_key(collection, id, key, sizeof key);
    if (!kl)
        return RAG_OK;
    json_t *v = json_pack("{s:s, s:s, s:f, s:s}", "canonical", f->canonical, "kind",
                          f->kind == RAG_DUP_EXACT ? "exact" : "near", "similarity",
                          f->similarity, "source", source ? source : "");
    char *val = v ? json_dumps(v, JSON_COMPACT | JSON_PRESERVE_ORDER) : NULL;
    json_decref(v);
    if (!val)
        return rag_fail(RAG_ENOMEM, "out of memory");
    int rc = rag_store_kv_put(txn, T_SOURCES, key, kl, val, strlen(val));
    free(val);
    *recorded = rc == RAG_OK;
    return rc;
}

int rag_dedup_record_clear(rag_txn *txn, const char *collection, const char *id)
{
    char key[600];
    size_t kl = skip_key(collection, id, key, sizeof key);
    int rc = kl ? rag_store_kv_del(txn, T_SOURCES, key, kl) : RAG_OK;
    return rc == RAG_ENOTFOUND ? RAG_OK : rc;
}
