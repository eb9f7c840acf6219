/* salvage.c - copies every readable document of a damaged store into a new store (rag_salvage). */
#include "backup.h"
#include "bytes.h"
#include "check_report.h"
#include "crypt.h"
#include "pagewalk.h"
#include "status.h"
#include "store.h"
#include "text.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define BATCH_BYTES (8u << 20)   /* bytes of records per write transaction of the copy */

struct rag_salvage_report {
    rag_salvage_totals t;
    rag_salvage_lost *lost;
    size_t nlost, cap;
    rag_check_report *check;
};

/* A document record found on a sound page. */
typedef struct sdoc {
    uint32_t coll;
    char *id;
    unsigned char *val;      /* the record as stored */
    size_t vlen;
    uint32_t nchunks;
    uint64_t *chunk_ids;
    const char *why;         /* why it cannot be copied (static text), NULL while it can */
    uint64_t why_chunk;
} sdoc;

/* A chunk some document lists. */
typedef struct schunk {
    uint32_t coll;
    uint64_t id;
    size_t doc;              /* index into docs */
    int state;               /* 0 unseen, 1 verified, -1 wrong */
    const char *why;
} schunk;

/* A collection record. */
typedef struct scoll {
    char name[129];
    uint32_t id;
    uint64_t documents;      /* its counter, for the documents no page names */
    unsigned char *val;
    size_t vlen;
} scoll;

/* A record waiting to be written to the new store. */
typedef struct pending {
    const char *table;       /* static or owned by the salvage */
    unsigned char *key, *val;
    size_t klen, vlen;
} pending;

typedef struct salvage {
    rag_salvage_report *r;
    const char *dir;         /* the damaged store */
    const char *src;         /* <dir>/data.mdb */
    /* An encrypted store: its key header (meta "crypt"), opened with the user's key. Every
     * record is opened to be verified and decoded, and copied as it is stored (sealed). */
    char *secret;            /* the user's key, NULL when none is given */
    unsigned char *hdr;
    size_t hdrlen;
    rag_crypt *crypt;
    unsigned char *plain;    /* the record opened last (open_value) */
    size_t plain_cap;
    int dim;
    scoll *colls;
    size_t ncolls, cap_colls;
    sdoc *docs;
    size_t ndocs, cap_docs;
    size_t *doc_order;       /* docs indices in (coll, id) order */
    schunk *chunks;          /* sorted by (coll, id) after the document walk */
    size_t nchunks, cap_chunks;
    rag_store *out;
    pending *batch;
    size_t nbatch, cap_batch, batch_bytes;
    char tables[64][64];     /* auxiliary tables opened in the new store */
    size_t ntables;
    int phase;               /* what the entry callback does (PH_*) */
    int rc;
} salvage;

enum { PH_META, PH_COLLS, PH_DOCS, PH_VERIFY, PH_CHUNKS, PH_VECTORS, PH_AUX };

static int grow(void **p, size_t *cap, size_t n, size_t size)
{
    if (n < *cap)
        return RAG_OK;
    size_t c = *cap ? *cap * 2 : 64;
    void *q = rag_realloc(*p, c * size);
    if (!q)
        return RAG_ENOMEM;
    *p = q;
    *cap = c;
    return RAG_OK;
}

static void *dup_bytes(const void *p, size_t n)
{
    unsigned char *d = rag_malloc(n + 1);
    if (d) {
        if (n)
            memcpy(d, p, n);
        d[n] = 0;
    }
    return d;
}

/* ---- writing the new store ------------------------------------------------------------- */

static void batch_clear(salvage *s)
{
    for (size_t i = 0; i < s->nbatch; i++) {
        free(s->batch[i].key);
        free(s->batch[i].val);
    }
    s->nbatch = 0;
    s->batch_bytes = 0;
}

static int batch_fn(rag_txn *txn, void *user)
{
    salvage *s = user;
    int rc = RAG_OK;
    for (size_t i = 0; rc == RAG_OK && i < s->nbatch; i++) {
        pending *p = &s->batch[i];
        rc = rag_store_raw_put(txn, p->table, p->key, p->klen, p->val, p->vlen);
    }
    return rc;
}

static int flush(salvage *s)
{
    int rc = s->nbatch ? rag_store_write(s->out, batch_fn, s) : RAG_OK;
    batch_clear(s);
    return rc;
}

/* Queues a copy of one record for the new store. */
static int emit(salvage *s, const char *table, const void *k, size_t kl, const void *v, size_t vl)
{
    int rc = grow((void **)&s->batch, &s->cap_batch, s->nbatch, sizeof *s->batch);
    if (rc != RAG_OK)
        return rc;
    pending *p = &s->batch[s->nbatch];
    p->table = table;
    p->key = dup_bytes(k, kl);
    p->val = dup_bytes(v, vl);
    p->klen = kl;
    p->vlen = vl;
    if (!p->key || !p->val) {
        free(p->key);
        free(p->val);
        return RAG_ENOMEM;
    }
    s->nbatch++;
    s->batch_bytes += kl + vl;
    return s->batch_bytes >= BATCH_BYTES ? flush(s) : RAG_OK;
}

/* ---- reading the old store ------------------------------------------------------------- */

static int cmp_chunk(const void *a, const void *b)
{
    const schunk *x = a, *y = b;
    if (x->coll != y->coll)
        return x->coll < y->coll ? -1 : 1;
    return x->id < y->id ? -1 : x->id > y->id;
}

static schunk *find_chunk(salvage *s, uint32_t coll, uint64_t id)
{
    schunk key = {coll, id, 0, 0, NULL};
    if (s->nchunks == 0)
        return NULL;
    return bsearch(&key, s->chunks, s->nchunks, sizeof key, cmp_chunk);
}

/* (collection, id) order of documents (qsort_r over indices into `docs`), for find_doc. */
static int cmp_doc_order(const void *a, const void *b, void *docs)
{
    const sdoc *x = (const sdoc *)docs + *(const size_t *)a;
    const sdoc *y = (const sdoc *)docs + *(const size_t *)b;
    if (x->coll != y->coll)
        return x->coll < y->coll ? -1 : 1;
    return strcmp(x->id, y->id);
}

static sdoc *find_doc(salvage *s, uint32_t coll, const char *id, size_t len)
{
    size_t lo = 0, hi = s->doc_order ? s->ndocs : 0;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        sdoc *d = &s->docs[s->doc_order[mid]];
        int c = d->coll != coll ? (d->coll < coll ? -1 : 1) : 0;
        if (!c) {
            size_t dl = strlen(d->id);
            c = memcmp(d->id, id, dl < len ? dl : len);
            if (!c)
                c = (dl > len) - (dl < len);
        }
        if (c == 0)
            return d;
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return NULL;
}

static int lost_push(salvage *s, uint32_t coll, const char *id, size_t idlen, const char *why)
{
    rag_salvage_report *r = s->r;
    for (size_t i = 0; i < r->nlost; i++) /* a document lost twice is listed once */
        if (r->lost[i].coll_id == coll && strlen(r->lost[i].id) == idlen &&
            memcmp(r->lost[i].id, id, idlen) == 0)
            return RAG_OK;
    int rc = grow((void **)&r->lost, &r->cap, r->nlost, sizeof *r->lost);
    if (rc != RAG_OK)
        return rc;
    rag_salvage_lost *l = &r->lost[r->nlost];
    memset(l, 0, sizeof *l);
    l->coll_id = coll;
    for (size_t i = 0; i < s->ncolls; i++)
        if (s->colls[i].id == coll)
            snprintf(l->collection, sizeof l->collection, "%s", s->colls[i].name);
    l->id = rag_strndup(id, idlen);
    l->reason = rag_strdup(why);
    if (!l->id || !l->reason) {
        free((char *)l->id);
        free((char *)l->reason);
        return RAG_ENOMEM;
    }
    r->nlost++;
    r->t.documents_lost++;
    return RAG_OK;
}

/* The value of entry e as plaintext: itself in a plain store, else opened with the key
 * (AD: the table's name without "kv:", and the key) into s->plain, valid until the next
 * call. RAG_ECORRUPT (error cleared) when it fails authentication: damaged, or not a
 * record of this store. */
static int open_value(salvage *s, const rag_pagewalk_entry *e, const void **v, size_t *vl)
{
    *v = e->val;
    *vl = e->vlen;
    if (!s->crypt)
        return RAG_OK;
    if (e->vlen < RAG_CRYPT_OVERHEAD)
        return RAG_ECORRUPT;
    if (e->vlen + 1 > s->plain_cap) {
        rag_crypt_wipe(s->plain, s->plain_cap);
        free(s->plain);
        s->plain_cap = 0;
        if (!(s->plain = rag_malloc(e->vlen + 1)))
            return RAG_ENOMEM;
        s->plain_cap = e->vlen + 1;
    }
    const char *name = strncmp(e->table, "kv:", 3) == 0 ? e->table + 3 : e->table;
    if (rag_crypt_unseal(s->crypt, name, strlen(name), e->key, e->klen, e->val, e->vlen,
                         s->plain) != RAG_OK) {
        rag_clear_error();
        return RAG_ECORRUPT;
    }
    *v = s->plain;
    *vl = e->vlen - RAG_CRYPT_OVERHEAD;
    return RAG_OK;
}

static int on_meta(salvage *s, const rag_pagewalk_entry *e)
{
    if (e->klen == 5 && memcmp(e->key, "crypt", 5) == 0) {
        free(s->hdr);
        if (!(s->hdr = dup_bytes(e->val, e->vlen)))
            return RAG_ENOMEM;
        s->hdrlen = e->vlen;
    }
    if (e->klen == 3 && memcmp(e->key, "dim", 3) == 0) {
        char buf[16];
        snprintf(buf, sizeof buf, "%.*s", (int)(e->vlen < 15 ? e->vlen : 15), (const char *)e->val);
        s->dim = atoi(buf);
    }
    return emit(s, "meta", e->key, e->klen, e->val, e->vlen);
}

static int on_coll(salvage *s, const rag_pagewalk_entry *e)
{
    rag_coll_rec rec;
    const void *v;
    size_t vl;
    int rc = open_value(s, e, &v, &vl);
    if (rc == RAG_ECORRUPT || e->klen == 0 || e->klen > 128 || vl < 4)
        return RAG_OK; /* not a collection record: its page lied */
    if (rc != RAG_OK)
        return rc;
    memset(&rec, 0, sizeof rec);
    memcpy(&rec, v, vl < sizeof rec ? vl : sizeof rec);
    rc = grow((void **)&s->colls, &s->cap_colls, s->ncolls, sizeof *s->colls);
    if (rc != RAG_OK)
        return rc;
    scoll *c = &s->colls[s->ncolls];
    memset(c, 0, sizeof *c);
    memcpy(c->name, e->key, e->klen);
    c->id = rec.id;
    c->documents = rec.documents;
    if (!(c->val = dup_bytes(e->val, e->vlen)))
        return RAG_ENOMEM;
    c->vlen = e->vlen;
    s->ncolls++;
    return RAG_OK;
}

static int on_doc(salvage *s, const rag_pagewalk_entry *e)
{
    rag_doc_rec *d = NULL;
    const void *v;
    size_t vl;
    int rc = open_value(s, e, &v, &vl);
    if (rc == RAG_OK)
        rc = rag_store_doc_decode(e->key, e->klen, v, vl, &d);
    if (rc == RAG_ECORRUPT) {
        rag_clear_error();
        if (e->klen > 4)
            return lost_push(s, rag_get_be32(e->key), (const char *)e->key + 4, e->klen - 4,
                             "its document record does not decode");
        return RAG_OK;
    }
    if (rc != RAG_OK)
        return rc;
    if ((rc = grow((void **)&s->docs, &s->cap_docs, s->ndocs, sizeof *s->docs)) != RAG_OK)
        goto cleanup;
    sdoc *x = &s->docs[s->ndocs];
    memset(x, 0, sizeof *x);
    x->coll = rag_get_be32(e->key);
    x->id = d->id;
    d->id = NULL;
    x->nchunks = d->nchunks;
    x->chunk_ids = d->chunk_ids;
    d->chunk_ids = NULL;
    if (!(x->val = dup_bytes(e->val, e->vlen))) {
        free(x->id);
        free(x->chunk_ids);
        rc = RAG_ENOMEM;
        goto cleanup;
    }
    x->vlen = e->vlen;
    for (uint32_t i = 0; rc == RAG_OK && i < x->nchunks; i++) {
        if ((rc = grow((void **)&s->chunks, &s->cap_chunks, s->nchunks, sizeof *s->chunks)))
            break;
        s->chunks[s->nchunks++] = (schunk){x->coll, x->chunk_ids[i], s->ndocs, 0, NULL};
    }
    s->ndocs++;
cleanup:
    rag_doc_rec_free(d);
    return rc;
}

/* Verifies a chunk record against the document that lists it. */
static int on_verify(salvage *s, const rag_pagewalk_entry *e)
{
    if (e->klen != 12)
        return RAG_OK;
    uint32_t coll = rag_get_be32(e->key);
    uint64_t id = rag_get_be64((const unsigned char *)e->key + 4);
    schunk *c = find_chunk(s, coll, id);
    rag_chunk_rec *ch = NULL;
    const void *v;
    size_t vl;
    int rc = open_value(s, e, &v, &vl);
    if (rc == RAG_OK)
        rc = rag_store_chunk_decode(id, v, vl, &ch);
    if (rc == RAG_ECORRUPT) {
        rag_clear_error();
        if (c) {
            c->state = -1;
            c->why = "does not decode";
        }
        return RAG_OK;
    }
    if (rc != RAG_OK)
        return rc;
    size_t dl = strlen(ch->doc_id);
    if (!c) {
        /* No readable document lists it: its document's record was on a damaged page (or
         * it is an orphan chunk, whose document is copied or absent). */
        if (!find_doc(s, coll, ch->doc_id, dl))
            rc = lost_push(s, coll, ch->doc_id, dl, "its document record is on a damaged page");
    } else if (strcmp(ch->doc_id, s->docs[c->doc].id) != 0) {
        c->state = -1;
        c->why = "names another document";
    } else if (ch->end < ch->start || ch->end - ch->start != ch->text_len ||
               rag_text_norm_hash(ch->text, ch->text_len) != ch->text_hash) {
        c->state = -1;
        c->why = "fails its text hash";
    } else {
        c->state = 1;
    }
    rag_chunk_rec_free(ch);
    return rc;
}

/* Chunks of documents that are copied whole. */
static int on_chunk(salvage *s, const rag_pagewalk_entry *e)
{
    if (e->klen != 12)
        return RAG_OK;
    schunk *c = find_chunk(s, rag_get_be32(e->key), rag_get_be64((const unsigned char *)e->key + 4));
    if (!c || c->state != 1 || s->docs[c->doc].why)
        return RAG_OK;
    s->r->t.chunks++;
    return emit(s, "chunks", e->key, e->klen, e->val, e->vlen);
}

static int on_vector(salvage *s, const rag_pagewalk_entry *e)
{
    const void *v;
    size_t vl;
    int rc = open_value(s, e, &v, &vl);
    if (rc == RAG_ECORRUPT || e->klen != 12 || vl != (size_t)s->dim * sizeof(float))
        return RAG_OK; /* damaged or of another size: embedded again by the repair */
    if (rc != RAG_OK)
        return rc;
    schunk *c = find_chunk(s, rag_get_be32(e->key), rag_get_be64((const unsigned char *)e->key + 4));
    if (!c || c->state != 1 || s->docs[c->doc].why)
        return RAG_OK;
    s->r->t.vectors_reembedded--; /* counted up for every copied chunk beforehand */
    return emit(s, "vectors", e->key, e->klen, e->val, e->vlen);
}

/* Auxiliary tables that are primary data: the rest (lexical postings, the embedding cache)
 * is derived and rebuilt. */
static int aux_copied(const char *table)
{
    return strncmp(table, "kv:", 3) == 0 && strncmp(table, "kv:lex_", 7) != 0 &&
           strncmp(table, "kv:embcache", 11) != 0;
}

static int on_aux(salvage *s, const rag_pagewalk_entry *e)
{
    if (!aux_copied(e->table))
        return RAG_OK;
    const void *v;
    size_t vl;
    int rc = open_value(s, e, &v, &vl);
    if (rc == RAG_ECORRUPT) {
        s->r->t.entries_lost++;
        return RAG_OK;
    }
    if (rc != RAG_OK)
        return rc;
    size_t i = 0;
    while (i < s->ntables && strcmp(s->tables[i], e->table) != 0)
        i++;
    if (i == s->ntables) {
        if (s->ntables == sizeof s->tables / sizeof *s->tables || strlen(e->table) >= 64)
            return RAG_OK;
        rc = flush(s); /* a table is opened outside any transaction */
        if (rc == RAG_OK)
            rc = rag_store_kv_open(s->out, e->table + 3, 1);
        if (rc != RAG_OK)
            return rc;
        snprintf(s->tables[s->ntables++], 64, "%s", e->table);
        s->r->t.tables++;
    }
    return emit(s, s->tables[i], e->key, e->klen, e->val, e->vlen);
}

static int on_entry(void *user, const rag_pagewalk_entry *e)
{
    salvage *s = user;
    int rc = RAG_OK;
    switch (s->phase) {
    case PH_META: rc = on_meta(s, e); break;
    case PH_COLLS: rc = on_coll(s, e); break;
    case PH_DOCS: rc = on_doc(s, e); break;
    case PH_VERIFY: rc = on_verify(s, e); break;
    case PH_CHUNKS: rc = on_chunk(s, e); break;
    case PH_VECTORS: rc = on_vector(s, e); break;
    case PH_AUX: rc = on_aux(s, e); break;
    }
    if (rc != RAG_OK)
        s->rc = rc;
    return rc != RAG_OK;
}

static void on_damage(void *user, const char *table, uint64_t page, const char *reason)
{
    (void)table;
    (void)page;
    (void)reason;
    salvage *s = user;
    if (s->phase == PH_AUX && aux_copied(table))
        s->r->t.entries_lost++; /* at least one */
}

/* Walks one table (NULL: all) with the callbacks of `phase`. */
static int walk(salvage *s, const char *table, int phase)
{
    s->phase = phase;
    s->rc = RAG_OK;
    int rc = rag_pagewalk(s->src, table, 1, on_entry, on_damage, s, NULL);
    if (s->rc != RAG_OK)
        return s->rc;
    if (rc > 0) /* stopped by a callback without an error: not expected */
        rc = RAG_OK;
    return rc;
}

/* Decides which documents are copied, after the chunks were verified. */
static int settle_docs(salvage *s)
{
    int rc = RAG_OK;
    for (size_t i = 0; i < s->ndocs && rc == RAG_OK; i++) {
        sdoc *d = &s->docs[i];
        for (uint32_t j = 0; j < d->nchunks && !d->why; j++) {
            schunk *c = find_chunk(s, d->coll, d->chunk_ids[j]);
            if (!c || c->state == 0) {
                d->why = "is on a damaged page";
                d->why_chunk = d->chunk_ids[j];
            } else if (c->state < 0 || c->doc != i) {
                d->why = c->state < 0 ? c->why : "is listed by another document too";
                d->why_chunk = d->chunk_ids[j];
            }
        }
        if (d->why) {
            char why[160];
            snprintf(why, sizeof why, "chunk %llu %s", (unsigned long long)d->why_chunk, d->why);
            rc = lost_push(s, d->coll, d->id, strlen(d->id), why);
        } else {
            s->r->t.documents++;
            s->r->t.vectors_reembedded += d->nchunks;
        }
    }
    return rc;
}

/* Collection records: copied as they are (the repair sets their counters); a collection
 * whose record is lost but which has documents gets a new record named salvaged-<id>. */
static int emit_colls(salvage *s)
{
    int rc = RAG_OK;
    for (size_t i = 0; i < s->ncolls && rc == RAG_OK; i++)
        rc = emit(s, "collections", s->colls[i].name, strlen(s->colls[i].name), s->colls[i].val,
                  s->colls[i].vlen);
    s->r->t.collections = s->ncolls;
    for (size_t i = 0; i < s->ndocs && rc == RAG_OK; i++) {
        sdoc *d = &s->docs[i];
        int known = 0;
        for (size_t j = 0; j < s->ncolls && !known; j++)
            known = s->colls[j].id == d->coll;
        if (known || d->why)
            continue;
        rag_coll_rec rec;
        memset(&rec, 0, sizeof rec);
        rec.id = d->coll;
        rec.created_at = rag_now();
        if ((rc = grow((void **)&s->colls, &s->cap_colls, s->ncolls, sizeof *s->colls)))
            break;
        scoll *c = &s->colls[s->ncolls];
        memset(c, 0, sizeof *c);
        snprintf(c->name, sizeof c->name, "salvaged-%u", d->coll);
        c->id = d->coll;
        if (!(c->val = dup_bytes(&rec, sizeof rec))) {
            rc = RAG_ENOMEM;
            break;
        }
        c->vlen = sizeof rec;
        s->ncolls++;
        s->r->t.collections++;
        if (s->crypt) { /* sealed as the store would seal it */
            unsigned char sealed[sizeof rec + RAG_CRYPT_OVERHEAD];
            rag_crypt_seal(s->crypt, "collections", 11, c->name, strlen(c->name), &rec,
                           sizeof rec, sealed);
            rc = emit(s, "collections", c->name, strlen(c->name), sealed, sizeof sealed);
        } else {
            rc = emit(s, "collections", c->name, strlen(c->name), &rec, sizeof rec);
        }
    }
    return rc;
}

/* Documents whose ids no readable page names: the collection counter's surplus. */
static void count_unknown(salvage *s)
{
    for (size_t i = 0; i < s->ncolls; i++) {
        uint64_t known = 0;
        for (size_t j = 0; j < s->ndocs; j++)
            known += s->docs[j].coll == s->colls[i].id;
        for (size_t j = 0; j < s->r->nlost; j++)
            known += s->r->lost[j].coll_id == s->colls[i].id &&
                     !find_doc(s, s->colls[i].id, s->r->lost[j].id, strlen(s->r->lost[j].id));
        if (s->colls[i].documents > known)
            s->r->t.documents_unknown += s->colls[i].documents - known;
    }
}

static int cmp_lost(const void *a, const void *b)
{
    const rag_salvage_lost *x = a, *y = b;
    if (x->coll_id != y->coll_id)
        return x->coll_id < y->coll_id ? -1 : 1;
    return strcmp(x->id, y->id);
}

static void salvage_free(salvage *s)
{
    for (size_t i = 0; i < s->ndocs; i++) {
        free(s->docs[i].id);
        free(s->docs[i].val);
        free(s->docs[i].chunk_ids);
    }
    for (size_t i = 0; i < s->ncolls; i++)
        free(s->colls[i].val);
    free(s->docs);
    free(s->colls);
    free(s->chunks);
    free(s->doc_order);
    batch_clear(s);
    free(s->batch);
    free(s->hdr);
    rag_crypt_free(s->crypt);
    rag_crypt_wipe(s->plain, s->plain_cap);
    free(s->plain);
}

/* Opens the key header found in meta with the user's key, as opening the store would. */
static int open_keys(salvage *s)
{
    if (!s->hdr && s->secret)
        return rag_fail(RAG_EKEY, "store '%s' is not encrypted, but a key was given", s->dir);
    if (!s->hdr)
        return RAG_OK;
    if (!s->secret)
        return rag_fail(RAG_EKEY, "store '%s' is encrypted and no key was given (give it with "
                        "store_key or store_key_file, --key-file, or RAGCORE_STORE_KEY)",
                        s->dir);
    return rag_crypt_open(s->secret, s->hdr, s->hdrlen, s->dir, &s->crypt);
}

/* The copy into the store directory `tmp`. */
static int copy_into(salvage *s, const char *tmp)
{
    int rc = walk(s, "meta", PH_META);
    if (rc == RAG_OK && s->dim <= 0)
        rc = rag_fail(RAG_ECORRUPT, "'%s': the store's identity records (meta table) are on "
                      "damaged pages: nothing can be salvaged without them", s->src);
    if (rc == RAG_OK)
        rc = open_keys(s);
    if (rc == RAG_OK)
        rc = walk(s, "collections", PH_COLLS);
    if (rc == RAG_OK)
        rc = walk(s, "docs", PH_DOCS);
    if (rc != RAG_OK)
        return rc;
    if (s->nchunks)
        qsort(s->chunks, s->nchunks, sizeof *s->chunks, cmp_chunk);
    if (!(s->doc_order = rag_malloc((s->ndocs ? s->ndocs : 1) * sizeof *s->doc_order)))
        return RAG_ENOMEM;
    for (size_t i = 0; i < s->ndocs; i++)
        s->doc_order[i] = i;
    if (s->ndocs)
        qsort_r(s->doc_order, s->ndocs, sizeof *s->doc_order, cmp_doc_order, s->docs);
    if ((rc = walk(s, "chunks", PH_VERIFY)) != RAG_OK || (rc = settle_docs(s)) != RAG_OK)
        return rc;
    /* The old store was readable enough: write the new one. */
    if ((rc = rag_store_open(tmp, 0, &s->out)) != RAG_OK)
        return rc;
    rc = flush(s); /* meta, queued by the first walk */
    if (rc == RAG_OK)
        rc = emit_colls(s);
    if (rc == RAG_OK)
        rc = walk(s, "chunks", PH_CHUNKS);
    if (rc == RAG_OK)
        rc = walk(s, "vectors", PH_VECTORS);
    for (size_t i = 0; rc == RAG_OK && i < s->ndocs; i++) {
        sdoc *d = &s->docs[i];
        if (d->why)
            continue;
        size_t kl = strlen(d->id);
        unsigned char *k = rag_malloc(4 + kl);
        if (!k) {
            rc = RAG_ENOMEM;
            break;
        }
        rag_put_be32(k, d->coll);
        memcpy(k + 4, d->id, kl);
        rc = emit(s, "docs", k, 4 + kl, d->val, d->vlen);
        free(k);
    }
    if (rc == RAG_OK)
        rc = walk(s, NULL, PH_AUX);
    if (rc == RAG_OK)
        rc = flush(s);
    rag_store_close(s->out);
    s->out = NULL;
    return rc;
}

int rag_salvage(const char *dir, const char *outdir, rag_salvage_report **out)
{
    return rag_salvage_keyed(dir, outdir, NULL, NULL, out);
}

int rag_salvage_keyed(const char *dir, const char *outdir, const char *store_key,
                      const char *store_key_file, rag_salvage_report **out)
{
    rag_clear_error();
    if (!out)
        return rag_fail(RAG_EINVAL, "rag_salvage: out is NULL");
    *out = NULL;
    if (!dir || !*dir || !outdir || !*outdir)
        return rag_fail(RAG_EINVAL, "salvage: the store directory and the output directory "
                        "must be given");
    double t0 = rag_monotonic();
    char src[4096], tmp[4096], lockpath[4200];
    snprintf(src, sizeof src, "%s/data.mdb", dir);
    struct stat sb;
    if (stat(src, &sb) != 0)
        return rag_fail(RAG_ENOTFOUND, "'%s' is not a ragcore store (no data.mdb)", dir);
    int state = rag_dir_state(outdir);
    if (state >= 2)
        return rag_fail(RAG_EEXIST, "salvage target '%s' %s", outdir,
                        state == 3 ? "is not a directory" : "is not empty");
    snprintf(tmp, sizeof tmp, "%s.partial-%ld", outdir, (long)getpid());
    salvage s;
    memset(&s, 0, sizeof s);
    s.dir = dir;
    s.src = src;
    int rc = rag_crypt_secret(store_key, store_key_file, "RAGCORE_STORE_KEY", &s.secret);
    if (rc != RAG_OK)
        return rc;
    if (!(s.r = rag_calloc(1, sizeof *s.r))) {
        rag_crypt_secret_free(s.secret);
        return RAG_ENOMEM;
    }
    rag_pagewalk_stats ps;
    rc = rag_pagewalk(src, NULL, 1, NULL, NULL, NULL, &ps);
    if (rc == RAG_OK) {
        s.r->t.pages = ps.pages;
        s.r->t.damaged_pages = ps.damaged;
        rc = copy_into(&s, tmp);
    }
    if (rc == RAG_OK) {
        count_unknown(&s);
        if (s.r->nlost)
            qsort(s.r->lost, s.r->nlost, sizeof *s.r->lost, cmp_lost);
        /* Derive again what was not copied: postings, hash counts, counters, vectors. */
        rag_check_report *cr = NULL;
        if (rag_check_keyed(tmp, RAG_CHECK_REPAIR, 0, s.secret, NULL, &cr) == RAG_OK)
            s.r->check = cr;
        rag_clear_error();
        snprintf(lockpath, sizeof lockpath, "%s/write.lock", tmp);
        unlink(lockpath);
        rc = rag_dir_publish(tmp, outdir);
    }
    salvage_free(&s);
    rag_crypt_secret_free(s.secret);
    if (rc != RAG_OK) {
        snprintf(lockpath, sizeof lockpath, "%s/write.lock", tmp);
        unlink(lockpath);
        rag_store_files_remove(tmp);
        rag_salvage_report_free(s.r);
        return rc;
    }
    s.r->t.seconds = rag_monotonic() - t0;
    *out = s.r;
    return RAG_OK;
}

const rag_salvage_totals *rag_salvage_report_totals(const rag_salvage_report *r)
{
    return r ? &r->t : NULL;
}

size_t rag_salvage_report_lost_count(const rag_salvage_report *r)
{
    return r ? r->nlost : 0;
}

const rag_salvage_lost *rag_salvage_report_lost(const rag_salvage_report *r, size_t i)
{
    return r && i < r->nlost ? &r->lost[i] : NULL;
}

const rag_check_report *rag_salvage_report_check(const rag_salvage_report *r)
{
    return r ? r->check : NULL;
}

void rag_salvage_report_free(rag_salvage_report *r)
{
    if (!r)
        return;
    for (size_t i = 0; i < r->nlost; i++) {
        free((char *)r->lost[i].id);
        free((char *)r->lost[i].reason);
    }
    free(r->lost);
    rag_check_report_free(r->check);
    free(r);
}
