/* logbatch.c - batches of a replicated log: building them, their wire format (versioned,
 * checksummed), applying them at a sequence, log positions and content digests. */
#include "logbatch.h"
#include "bytes.h"
#include "crypt.h"
#include "db.h"
#include "embedder.h"
#include "ingest.h"
#include "neardup.h"
#include "status.h"
#include "store.h"

#include <stdlib.h>
#include <string.h>
#include <xxhash.h>

#define LOG_MAGIC "RLB1"
#define LOG_FORMAT_VERSION 1u
#define STR_NULL 0xFFFFFFFFu

/* ---- building ------------------------------------------------------------------------ */

int rag_log_batch_create(rag_embedder *emb, int chunk_tokens, int chunk_overlap, int64_t now,
                         rag_log_batch **out)
{
    rag_clear_error();
    if (!out)
        return rag_fail(RAG_EINVAL, "rag_log_batch_create: out is NULL");
    *out = NULL;
    if (chunk_tokens < 0 || chunk_overlap < 0)
        return rag_fail(RAG_EINVAL, "log batch: chunk_tokens and chunk_overlap must not be "
                        "negative (%d, %d)", chunk_tokens, chunk_overlap);
    int tokens = chunk_tokens ? chunk_tokens : 256;
    int overlap = chunk_overlap ? chunk_overlap : 32;
    if (overlap >= tokens)
        return rag_fail(RAG_EINVAL, "log batch: chunk_overlap %d must be below chunk_tokens %d",
                        overlap, tokens);
    rag_log_batch *b = rag_calloc(1, sizeof *b);
    if (!b)
        return RAG_ENOMEM;
    b->emb = emb;
    b->chunk_tokens = tokens;
    b->chunk_overlap = overlap;
    b->now = now > 0 ? now : rag_now();
    *out = b;
    return RAG_OK;
}

static void op_free(rag_log_op *op)
{
    for (int k = 0; k < 5; k++)
        free(op->own[k]);
    memset(op, 0, sizeof *op);
}

void rag_log_batch_truncate(rag_log_batch *b, size_t nops, size_t nchunks)
{
    while (b->nops > nops)
        op_free(&b->ops[--b->nops]);
    while (b->nchunks > nchunks)
        free(b->chunks[--b->nchunks].heading);
    if (b->nchunks == 0)
        b->dim = b->emb ? b->emb->dim : 0;
}

void rag_log_batch_free(rag_log_batch *b)
{
    if (!b)
        return;
    rag_log_batch_truncate(b, 0, 0);
    rag_crypt_wipe(b->pii_key, sizeof b->pii_key);
    free(b->ops);
    free(b->chunks);
    free(b->vecs);
    free(b);
}

static int grow_ops(rag_log_batch *b, rag_log_op **op)
{
    if (b->nops == b->cap_ops) {
        size_t cap = b->cap_ops ? b->cap_ops * 2 : 16;
        rag_log_op *q = rag_realloc(b->ops, cap * sizeof *q);
        if (!q)
            return RAG_ENOMEM;
        b->ops = q;
        b->cap_ops = cap;
    }
    *op = &b->ops[b->nops];
    memset(*op, 0, sizeof **op);
    return RAG_OK;
}

/* Makes room for n more chunks (and their vectors of b->dim floats). */
static int grow_chunks(rag_log_batch *b, size_t n)
{
    if (b->nchunks + n > RAG_LOG_BATCH_MAX_CHUNKS)
        return rag_fail(RAG_EINVAL, "log batch: more than %zu chunks", RAG_LOG_BATCH_MAX_CHUNKS);
    if (b->nchunks + n <= b->cap_chunks)
        return RAG_OK;
    size_t cap = b->cap_chunks ? b->cap_chunks : 64;
    while (cap < b->nchunks + n)
        cap *= 2;
    rag_log_chunk *q = rag_realloc(b->chunks, cap * sizeof *q);
    if (!q)
        return RAG_ENOMEM;
    b->chunks = q;
    float *v = rag_realloc(b->vecs, cap * (size_t)(b->dim ? b->dim : 1) * sizeof *v);
    if (!v)
        return RAG_ENOMEM;
    b->vecs = v;
    b->cap_chunks = cap;
    return RAG_OK;
}

/* Copies s (len bytes) into *own and *view; NULL stays NULL. */
static int own_str(const char *s, size_t len, char **own, const char **view)
{
    if (!s)
        return RAG_OK;
    if (!(*own = rag_malloc(len + 1)))
        return RAG_ENOMEM;
    memcpy(*own, s, len);
    (*own)[len] = '\0';
    *view = *own;
    return RAG_OK;
}

static int set_doc_strings(rag_log_op *op, const char *id, const char *text, size_t text_len,
                           const char *title, const char *source, const char *metadata)
{
    rag_document_init(&op->doc);
    int rc = own_str(id, id ? strlen(id) : 0, &op->own[0], &op->doc.id);
    if (rc == RAG_OK)
        rc = own_str(text, text_len, &op->own[1], &op->doc.text);
    if (rc == RAG_OK)
        rc = own_str(title, title ? strlen(title) : 0, &op->own[2], &op->doc.title);
    if (rc == RAG_OK)
        rc = own_str(source, source ? strlen(source) : 0, &op->own[3], &op->doc.source);
    if (rc == RAG_OK)
        rc = own_str(metadata, metadata ? strlen(metadata) : 0, &op->own[4],
                     &op->doc.metadata_json);
    op->doc.text_len = text_len;
    return rc;
}

int rag_log_batch_push_upsert(rag_log_batch *b, const rag_document *d, size_t text_len,
                              const char *metadata, int64_t valid_until, size_t nchunks,
                              rag_log_chunk **chunks, float **vecs)
{
    rag_log_op *op = NULL;
    if (b->nchunks == 0 && b->emb)
        b->dim = b->emb->dim;
    int rc = grow_chunks(b, nchunks);
    if (rc == RAG_OK)
        rc = grow_ops(b, &op);
    if (rc != RAG_OK)
        return rc;
    rc = set_doc_strings(op, d->id, d->text, text_len, d->title, d->source, metadata);
    if (rc != RAG_OK) {
        op_free(op);
        return rc;
    }
    op->kind = RAG_LOG_UPSERT;
    op->doc.source_mtime = d->source_mtime;
    op->doc.format = d->format;
    op->doc.valid_until = valid_until;
    op->first = b->nchunks;
    op->n = nchunks;
    b->nops++;
    memset(b->chunks + b->nchunks, 0, nchunks * sizeof *b->chunks);
    *chunks = b->chunks + b->nchunks;
    *vecs = b->vecs + b->nchunks * (size_t)b->dim;
    b->nchunks += nchunks;
    return RAG_OK;
}

int rag_log_batch_add_documents(rag_log_batch *b, const rag_document *docs, size_t n)
{
    rag_clear_error();
    if (!b || (!docs && n))
        return rag_fail(RAG_EINVAL, "rag_log_batch_add_documents: NULL argument");
    return rag_ingest_log_add(b, docs, n);
}

int rag_log_batch_add_documents_policy(rag_log_batch *b, const rag_document *docs, size_t n,
                                       const rag_collection_options *policy,
                                       const rag_toxicity *tox, rag_ingest_summary *summary)
{
    rag_clear_error();
    if (!b || (!docs && n))
        return rag_fail(RAG_EINVAL, "rag_log_batch_add_documents_policy: NULL argument");
    return rag_ingest_log_add_policy(b, docs, n, policy, tox, summary);
}

int rag_log_batch_set_dedup(rag_log_batch *b, rag_log_dedup_fn fn, void *user)
{
    rag_clear_error();
    if (!b)
        return rag_fail(RAG_EINVAL, "rag_log_batch_set_dedup: NULL batch");
    b->dedup = fn;
    b->dedup_user = user;
    return RAG_OK;
}

/* rag_dup_key is the public twin of rag_dedup_sig. */
_Static_assert(sizeof(rag_dup_key) == sizeof(rag_dedup_sig) && RAG_DUP_PERM == RAG_DEDUP_PERM,
               "rag_dup_key and rag_dedup_sig differ");

int rag_dup_key_compute(const char *text, size_t len, rag_dup_key *out)
{
    rag_clear_error();
    if (!text || !out)
        return rag_fail(RAG_EINVAL, "rag_dup_key_compute: NULL argument");
    rag_dedup_sig s;
    int rc = rag_dedup_signature(text, len, &s);
    if (rc == RAG_OK) {
        out->hash = s.hash;
        out->shingles = s.shingles;
        memcpy(out->sig, s.sig, sizeof out->sig);
    }
    return rc;
}

int rag_dup_rows(double threshold)
{
    return threshold > 1.0 ? 0 : rag_dedup_rows(threshold <= 0 ? 0.8 : threshold);
}

uint64_t rag_dup_band(const rag_dup_key *k, int rows, int band)
{
    return rag_dedup_band(k->sig, rows, band);
}

double rag_dup_similarity(const rag_dup_key *a, const rag_dup_key *b)
{
    rag_dedup_sig x, y;
    x.hash = a->hash;
    x.shingles = a->shingles;
    memcpy(x.sig, a->sig, sizeof x.sig);
    y.hash = b->hash;
    y.shingles = b->shingles;
    memcpy(y.sig, b->sig, sizeof y.sig);
    return rag_dedup_sig_similarity(&x, &y);
}

int rag_log_batch_set_pii_key(rag_log_batch *b, const void *key, size_t klen)
{
    rag_clear_error();
    if (!b || (!key && klen))
        return rag_fail(RAG_EINVAL, "rag_log_batch_set_pii_key: NULL argument");
    if (klen && (klen < 16 || klen > sizeof b->pii_key))
        return rag_fail(RAG_EINVAL, "rag_log_batch_set_pii_key: the key is %zu bytes; a PII "
                        "hash key has 16..%zu", klen, sizeof b->pii_key);
    rag_crypt_wipe(b->pii_key, sizeof b->pii_key);
    if (klen)
        memcpy(b->pii_key, key, klen);
    b->pii_key_len = klen;
    return RAG_OK;
}

int rag_log_batch_add_delete(rag_log_batch *b, const char *id)
{
    rag_clear_error();
    if (!b || !id)
        return rag_fail(RAG_EINVAL, "rag_log_batch_add_delete: NULL argument");
    if (!*id || strlen(id) > RAG_DOC_ID_MAX)
        return rag_fail(RAG_EINVAL, "log batch: a deleted id must be 1..%d bytes", RAG_DOC_ID_MAX);
    rag_log_op *op = NULL;
    int rc = grow_ops(b, &op);
    if (rc == RAG_OK)
        rc = set_doc_strings(op, id, NULL, 0, NULL, NULL, NULL);
    if (rc != RAG_OK) {
        if (op)
            op_free(op);
        return rc;
    }
    op->kind = RAG_LOG_DELETE;
    b->nops++;
    return RAG_OK;
}

int rag_log_batch_add_expire(rag_log_batch *b, int64_t before)
{
    rag_clear_error();
    if (!b || before <= 0)
        return rag_fail(RAG_EINVAL, "rag_log_batch_add_expire: %s", b ? "time must be positive"
                                                                     : "NULL batch");
    rag_log_op *op = NULL;
    int rc = grow_ops(b, &op);
    if (rc != RAG_OK)
        return rc;
    op->kind = RAG_LOG_EXPIRE;
    op->expire_before = before;
    b->nops++;
    return RAG_OK;
}

size_t rag_log_batch_ops(const rag_log_batch *b)
{
    return b ? b->nops : 0;
}

size_t rag_log_batch_chunks(const rag_log_batch *b)
{
    return b ? b->nchunks : 0;
}

/* ---- wire format ----------------------------------------------------------------------
 * "RLB1", u32 version, i64 now, u32 dim, u64 ops, u64 chunks, then each operation:
 *   u8 kind; upsert: str id, text, title, source, metadata; i64 source_mtime, valid_until;
 *   u32 format; u64 n; n x (u64 start, u64 end, u32 tokens, str heading); n x dim float32
 *   (IEEE bits, big-endian); delete: str id; expire: i64 before;
 * then the XXH3-64 of everything before it. A str is a u32 length (0xFFFFFFFF: absent)
 * and its bytes. All integers big-endian. */

typedef struct wbuf {
    unsigned char *p;
    size_t len, cap;
    int rc;
} wbuf;

static unsigned char *wreserve(wbuf *w, size_t n)
{
    if (w->rc != RAG_OK)
        return NULL;
    if (w->len + n > w->cap) {
        size_t cap = w->cap ? w->cap : 4096;
        while (cap < w->len + n)
            cap *= 2;
        unsigned char *q = rag_realloc(w->p, cap);
        if (!q) {
            w->rc = RAG_ENOMEM;
            return NULL;
        }
        w->p = q;
        w->cap = cap;
    }
    unsigned char *at = w->p + w->len;
    w->len += n;
    return at;
}

static void w64(wbuf *w, uint64_t v)
{
    unsigned char *at = wreserve(w, 8);
    if (at)
        rag_put_be64(at, v);
}

static void w32(wbuf *w, uint32_t v)
{
    unsigned char *at = wreserve(w, 4);
    if (at)
        rag_put_be32(at, v);
}

static void wstr(wbuf *w, const char *s, size_t len)
{
    w32(w, s ? (uint32_t)len : STR_NULL);
    unsigned char *at = s && len ? wreserve(w, len) : NULL;
    if (at)
        memcpy(at, s, len);
}

static void wcstr(wbuf *w, const char *s)
{
    wstr(w, s, s ? strlen(s) : 0);
}

int rag_log_batch_encode(const rag_log_batch *b, void **bytes, size_t *len)
{
    rag_clear_error();
    if (!b || !bytes || !len)
        return rag_fail(RAG_EINVAL, "rag_log_batch_encode: NULL argument");
    *bytes = NULL;
    *len = 0;
    wbuf w = {NULL, 0, 0, RAG_OK};
    unsigned char *m = wreserve(&w, 4);
    if (m)
        memcpy(m, LOG_MAGIC, 4);
    w32(&w, LOG_FORMAT_VERSION);
    w64(&w, (uint64_t)b->now);
    w32(&w, (uint32_t)b->dim);
    w64(&w, b->nops);
    w64(&w, b->nchunks);
    for (size_t i = 0; i < b->nops && w.rc == RAG_OK; i++) {
        const rag_log_op *op = &b->ops[i];
        unsigned char *k = wreserve(&w, 1);
        if (k)
            *k = (unsigned char)op->kind;
        if (op->kind == RAG_LOG_EXPIRE) {
            w64(&w, (uint64_t)op->expire_before);
            continue;
        }
        wcstr(&w, op->doc.id);
        if (op->kind == RAG_LOG_DELETE)
            continue;
        wstr(&w, op->doc.text, op->doc.text_len);
        wcstr(&w, op->doc.title);
        wcstr(&w, op->doc.source);
        wcstr(&w, op->doc.metadata_json);
        w64(&w, (uint64_t)op->doc.source_mtime);
        w64(&w, (uint64_t)op->doc.valid_until);
        w32(&w, (uint32_t)op->doc.format);
        w64(&w, op->n);
        for (size_t c = op->first; c < op->first + op->n; c++) {
            w64(&w, b->chunks[c].start);
            w64(&w, b->chunks[c].end);
            w32(&w, b->chunks[c].tokens);
            wcstr(&w, b->chunks[c].heading);
        }
        size_t nf = op->n * (size_t)b->dim;
        const float *v = b->vecs + op->first * (size_t)b->dim;
        for (size_t f = 0; f < nf; f++) {
            uint32_t bits;
            memcpy(&bits, &v[f], 4);
            w32(&w, bits);
        }
    }
    if (w.rc == RAG_OK)
        w64(&w, XXH3_64bits(w.p, w.len));
    if (w.rc != RAG_OK) {
        free(w.p);
        return rag_fail(w.rc, "out of memory");
    }
    *bytes = w.p;
    *len = w.len;
    return RAG_OK;
}

typedef struct rbuf {
    const unsigned char *p;
    size_t len, at;
    const char *what;            /* the first field that ran past the end */
} rbuf;

static const unsigned char *rtake(rbuf *r, size_t n, const char *what)
{
    if (r->what || n > r->len - r->at) {
        if (!r->what)
            r->what = what;
        return NULL;
    }
    const unsigned char *at = r->p + r->at;
    r->at += n;
    return at;
}

static uint64_t r64(rbuf *r, const char *what)
{
    const unsigned char *at = rtake(r, 8, what);
    return at ? rag_get_be64(at) : 0;
}

static uint32_t r32(rbuf *r, const char *what)
{
    const unsigned char *at = rtake(r, 4, what);
    return at ? rag_get_be32(at) : 0;
}

/* A string field: *s points into the buffer (NULL when absent), *n its length. */
static void rstr(rbuf *r, const char *what, const char **s, size_t *n)
{
    uint32_t l = r32(r, what);
    *s = NULL;
    *n = 0;
    if (r->what || l == STR_NULL)
        return;
    const unsigned char *at = rtake(r, l, what);
    *s = (const char *)at;
    *n = l;
}

static int decode_upsert(rbuf *r, rag_log_batch *b, rag_log_op *op)
{
    const char *f[5];
    size_t n[5];
    static const char *const names[5] = {"id", "text", "title", "source", "metadata"};
    for (int k = 0; k < 5; k++)
        rstr(r, names[k], &f[k], &n[k]);
    if (r->what)
        return RAG_OK;
    if (!f[0] || !f[1])
        return rag_fail(RAG_ECORRUPT, "log batch: an upsert without %s", f[0] ? "text" : "id");
    int rc = RAG_OK;
    const char **views[5] = {&op->doc.id, &op->doc.text, &op->doc.title, &op->doc.source,
                             &op->doc.metadata_json};
    rag_document_init(&op->doc);
    for (int k = 0; k < 5 && rc == RAG_OK; k++)
        rc = own_str(f[k], n[k], &op->own[k], views[k]);
    if (rc != RAG_OK)
        return rc;
    op->doc.text_len = n[1];
    op->doc.source_mtime = (int64_t)r64(r, "source_mtime");
    op->doc.valid_until = (int64_t)r64(r, "valid_until");
    op->doc.format = (rag_format)r32(r, "format");
    uint64_t nch = r64(r, "chunk count");
    if (r->what)
        return RAG_OK;
    op->first = b->cap_chunks;
    op->n = (size_t)nch;
    if (nch > b->nchunks - op->first)
        return rag_fail(RAG_ECORRUPT, "log batch: document '%s' has more chunks than the "
                        "batch declares", op->doc.id);
    for (size_t c = 0; c < op->n && !r->what; c++) {
        rag_log_chunk *lc = &b->chunks[op->first + c];
        lc->start = r64(r, "chunk start");
        lc->end = r64(r, "chunk end");
        lc->tokens = r32(r, "chunk tokens");
        const char *h;
        size_t hl;
        rstr(r, "heading", &h, &hl);
        if (!r->what && !(lc->heading = rag_strndup(h ? h : "", h ? hl : 0)))
            return RAG_ENOMEM;
    }
    size_t nf = op->n * (size_t)b->dim;
    float *v = b->vecs + op->first * (size_t)b->dim;
    const unsigned char *raw = rtake(r, nf * 4, "vectors");
    for (size_t i = 0; raw && i < nf; i++) {
        uint32_t bits = rag_get_be32(raw + 4 * i);
        memcpy(&v[i], &bits, 4);
    }
    b->cap_chunks += op->n; /* while decoding: chunks filled so far */
    return RAG_OK;
}

int rag_log_batch_decode(const void *bytes, size_t len, rag_log_batch **out)
{
    *out = NULL;
    if (!bytes || len < 4 + 4 + 8 + 4 + 8 + 8 + 8 || memcmp(bytes, LOG_MAGIC, 4) != 0)
        return rag_fail(RAG_ECORRUPT, "not a log batch (%zu bytes, no " LOG_MAGIC " header)",
                        len);
    const unsigned char *p = bytes;
    uint64_t sum = rag_get_be64(p + len - 8);
    if (XXH3_64bits(p, len - 8) != sum)
        return rag_fail(RAG_ECORRUPT, "log batch: checksum mismatch (%zu bytes)", len);
    rbuf r = {p, len - 8, 4, NULL};
    uint32_t version = r32(&r, "version");
    if (version != LOG_FORMAT_VERSION)
        return rag_fail(RAG_ECORRUPT, "log batch: format version %u (this library reads %u)",
                        version, LOG_FORMAT_VERSION);
    rag_log_batch *b = rag_calloc(1, sizeof *b);
    if (!b)
        return RAG_ENOMEM;
    int rc = RAG_OK;
    b->now = (int64_t)r64(&r, "now");
    b->dim = (int)r32(&r, "dim");
    uint64_t nops = r64(&r, "op count"), nch = r64(&r, "chunk count");
    /* every operation takes at least 9 bytes and every chunk 24 + dim * 4 */
    if (b->dim < 0 || b->dim > 65536 || nops > len / 9 || nch > RAG_LOG_BATCH_MAX_CHUNKS ||
        nch * (24 + (uint64_t)b->dim * 4) > len)
        rc = rag_fail(RAG_ECORRUPT, "log batch: header counts (%llu operations, %llu chunks, "
                      "dimension %d) do not fit its %zu bytes", (unsigned long long)nops,
                      (unsigned long long)nch, b->dim, len);
    if (rc == RAG_OK && nops &&
        !(b->ops = rag_calloc((size_t)nops, sizeof *b->ops)))
        rc = RAG_ENOMEM;
    if (rc == RAG_OK && nch &&
        (!(b->chunks = rag_calloc((size_t)nch, sizeof *b->chunks)) ||
         !(b->vecs = rag_malloc((size_t)nch * (size_t)(b->dim ? b->dim : 1) * sizeof(float)))))
        rc = RAG_ENOMEM;
    /* headings are freed up to here (unset ones are NULL): none when the header was
     * refused or the array could not be made */
    b->nchunks = b->chunks ? (size_t)nch : 0;
    b->cap_chunks = 0;        /* chunks decoded so far */
    for (size_t i = 0; i < nops && rc == RAG_OK && !r.what; i++) {
        rag_log_op *op = &b->ops[i];
        const unsigned char *k = rtake(&r, 1, "operation kind");
        if (!k)
            break;
        op->kind = *k;
        b->nops = i + 1;
        if (op->kind == RAG_LOG_EXPIRE) {
            op->expire_before = (int64_t)r64(&r, "expiry time");
        } else if (op->kind == RAG_LOG_DELETE) {
            const char *id;
            size_t n;
            rstr(&r, "id", &id, &n);
            if (!r.what && !id)
                rc = rag_fail(RAG_ECORRUPT, "log batch: a delete without an id");
            if (rc == RAG_OK && !r.what) {
                rag_document_init(&op->doc);
                rc = own_str(id, n, &op->own[0], &op->doc.id);
            }
        } else if (op->kind == RAG_LOG_UPSERT) {
            rc = decode_upsert(&r, b, op);
        } else {
            rc = rag_fail(RAG_ECORRUPT, "log batch: operation %zu has unknown kind %d", i,
                          op->kind);
        }
    }
    if (rc == RAG_OK && r.what)
        rc = rag_fail(RAG_ECORRUPT, "log batch: %s runs past the end", r.what);
    if (rc == RAG_OK && (b->nops != nops || b->cap_chunks != nch || r.at != r.len))
        rc = rag_fail(RAG_ECORRUPT, "log batch: %zu of %llu operations and %zu of %llu chunks "
                      "decoded, %zu bytes left over", b->nops, (unsigned long long)nops,
                      b->cap_chunks, (unsigned long long)nch, r.len - r.at);
    b->cap_chunks = (size_t)nch;
    if (rc != RAG_OK) {
        rag_log_batch_free(b);
        return rc;
    }
    *out = b;
    return RAG_OK;
}

/* ---- applying, positions, digests ---------------------------------------------------- */

int rag_log_apply(rag_db *db, const char *collection, uint64_t seq, const void *bytes,
                  size_t len)
{
    rag_clear_error();
    if (!db || !collection || !bytes)
        return rag_fail(RAG_EINVAL, "rag_log_apply: NULL argument");
    if (db->opts.read_only)
        return rag_fail(RAG_EREADONLY, "store is open read-only");
    if (seq == 0 || seq > RAG_LOG_SEQ_MAX)
        return rag_fail(RAG_EINVAL, "log sequence %llu outside 1..%llu",
                        (unsigned long long)seq, (unsigned long long)RAG_LOG_SEQ_MAX);
    rag_log_batch *b = NULL;
    int rc = rag_log_batch_decode(bytes, len, &b);
    if (rc != RAG_OK)
        return rag_fail_prefix(rc, "sequence %llu", (unsigned long long)seq);
    rc = rag_ingest_log_apply(db, collection, seq, b);
    rag_log_batch_free(b);
    return rc;
}

int rag_log_position(rag_db *db, const char *collection, uint64_t *seq)
{
    rag_clear_error();
    if (!db || !collection || !seq)
        return rag_fail(RAG_EINVAL, "rag_log_position: NULL argument");
    *seq = 0;
    rag_txn *txn = NULL;
    rag_coll_rec rec;
    int rc = rag_store_read(db->st, &txn);
    if (rc == RAG_OK)
        rc = rag_store_coll_get(txn, collection, &rec);
    if (rc == RAG_OK)
        rc = rag_ingest_log_position(txn, rec.id, seq);
    else if (rc == RAG_ENOTFOUND) {
        rag_clear_error();
        rc = RAG_OK;
    }
    rag_txn_end(txn);
    return rc;
}

typedef struct digest_ctx {
    XXH3_state_t *st;
    uint64_t documents;
} digest_ctx;

static void hash_str(XXH3_state_t *st, const char *s)
{
    size_t n = s ? strlen(s) + 1 : 0; /* the NUL separates fields */
    XXH3_64bits_update(st, s ? s : "", n ? n : 1);
}

static int digest_visit(void *user, const rag_doc_rec *d)
{
    digest_ctx *c = user;
    unsigned char b[8];
    hash_str(c->st, d->id);
    hash_str(c->st, d->source);
    hash_str(c->st, d->title);
    hash_str(c->st, d->metadata);
    const uint64_t nums[] = {(uint64_t)d->source_mtime, (uint64_t)d->ingested_at,
                             (uint64_t)d->updated_at,   (uint64_t)d->valid_until,
                             d->content_hash,           d->text_len,
                             d->nchunks};
    for (size_t i = 0; i < sizeof nums / sizeof nums[0]; i++) {
        rag_put_be64(b, nums[i]);
        XXH3_64bits_update(c->st, b, 8);
    }
    for (uint32_t k = 0; k < d->nchunks; k++) {
        rag_put_be64(b, d->chunk_ids[k]);
        XXH3_64bits_update(c->st, b, 8);
    }
    c->documents++;
    return 0;
}

int rag_collection_digest(rag_db *db, const char *collection, uint64_t *seq, uint64_t *digest,
                          uint64_t *documents)
{
    rag_clear_error();
    if (!db || !collection)
        return rag_fail(RAG_EINVAL, "rag_collection_digest: NULL argument");
    rag_txn *txn = NULL;
    rag_coll_rec rec;
    uint64_t pos = 0;
    digest_ctx c = {XXH3_createState(), 0};
    if (!c.st)
        return rag_fail(RAG_ENOMEM, "out of memory");
    XXH3_64bits_reset(c.st);
    int rc = rag_store_read(db->st, &txn);
    if (rc == RAG_OK && (rc = rag_store_coll_get(txn, collection, &rec)) == RAG_ENOTFOUND)
        rc = rag_fail(RAG_ENOTFOUND, "collection '%s' does not exist", collection);
    if (rc == RAG_OK)
        rc = rag_ingest_log_position(txn, rec.id, &pos);
    if (rc == RAG_OK)
        rc = rag_store_doc_scan(txn, rec.id, digest_visit, &c);
    rag_txn_end(txn);
    if (rc == RAG_OK) {
        if (seq)
            *seq = pos;
        if (digest)
            *digest = XXH3_64bits_digest(c.st);
        if (documents)
            *documents = c.documents;
    }
    XXH3_freeState(c.st);
    return rc;
}
