/* check.c - consistency check and repair of a store (LMDB records and index files). */
#include "check_report.h"
#include "coll_index.h"
#include "crypt.h"
#include "embedder.h"
#include "lexical.h"
#include "lockfile.h"
#include "pagewalk.h"
#include "status.h"
#include "store.h"
#include "text.h"
#include "vindex.h"

#include <dirent.h>
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <xxhash.h>

#define MAX_LISTED 10      /* items listed per category and collection */
#define EMBED_BATCH 64
#define FILL_BATCH 4096       /* vectors per add when the repair rebuilds an index */

/* Categories cap how many findings of one sort are listed per collection. */
enum {
    CAT_STORE, CAT_VEC_BAD, CAT_CHUNK_BAD, CAT_DOC, CAT_ORPHAN_CHUNK, CAT_NO_VEC,
    CAT_ORPHAN_VEC, CAT_COUNTER, CAT_HASH, CAT_TOMB, CAT_IDS, CAT_INDEX, CAT_LEX, CAT_REPAIR,
    CAT_PAGES,
    N_CAT
};

typedef struct u64v {
    uint64_t *v;
    size_t n, cap;
} u64v;

typedef struct chunk_info {
    uint64_t id, text_hash, doc_hash;
    uint32_t flags;
    unsigned char claimed, damaged;
} chunk_info;

/* What a collection's check found and what a repair would do. */
typedef struct coll_plan {
    char name[129];
    uint32_t id;
    u64v del_chunks;      /* orphan chunks: chunk, vector and hash reference removed */
    u64v del_vecs;        /* orphan vectors */
    u64v reembed;         /* chunks whose vector is missing or damaged */
    u64v hash_keys, hash_counts;   /* chunk-hash counts to set (0: delete) */
    int fix_counters;
    uint64_t documents, chunks, duplicate_chunks, bytes_text;
    uint64_t max_id;      /* largest id seen in any table (+1 must be <= next id) */
    int rebuild_index;
    int rebuild_lex;      /* the lexical postings are rebuilt from the chunk texts */
    int store_fixes;      /* anything to write in the store */
} coll_plan;

typedef struct ck {
    rag_check_report *r;
    const char *dir;
    rag_store *st;
    rag_txn *txn;
    int dim;
    char *spec, *embedder;
    unsigned char store_id[16];  /* meta "store_id" (zeros when the store has none yet) */
    uint64_t next_id;
    const char *cname;     /* current collection ("" store-wide) */
    uint32_t cid;
    uint64_t cat_count[N_CAT];
    int cat_kind[N_CAT];
    int cat_index[N_CAT];
    /* per-collection scan state */
    u64v vids;             /* every vector id, ascending */
    u64v bad_vecs;         /* ids of vectors with a wrong dimension or non-finite values */
    chunk_info *chunks;
    size_t nchunks, cap_chunks;
    u64v tombs;
    uint64_t docs, bytes;
    coll_plan *plan;
    int ef_construction;   /* HNSW build depth of rebuilt index files (<= 0: FAISS's) */
} ck;

/* ---- report ------------------------------------------------------------------------------ */

static int u64v_push(u64v *a, uint64_t x)
{
    if (a->n == a->cap) {
        size_t cap = a->cap ? a->cap * 2 : 64;
        uint64_t *q = rag_realloc(a->v, cap * sizeof *q);
        if (!q)
            return RAG_ENOMEM;
        a->v = q;
        a->cap = cap;
    }
    a->v[a->n++] = x;
    return RAG_OK;
}

static void u64v_free(u64v *a)
{
    free(a->v);
    memset(a, 0, sizeof *a);
}

static int u64v_has(const u64v *a, uint64_t x)
{
    size_t lo = 0, hi = a->n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (a->v[mid] < x)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo < a->n && a->v[lo] == x;
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

/* Moves item `it` of another report into r as `kind` (its message goes with it, or is
 * freed when r cannot grow). */
static void move_item(rag_check_report *r, int kind, rag_check_item *it)
{
    rag_check_report_push(r, kind, it->collection, it->coll_id, it->index_file, (char *)it->message);
    it->message = NULL;
}

static char *vfmt(const char *fmt, va_list ap)
{
    char *s = NULL;
    if (vasprintf(&s, fmt, ap) < 0)
        return NULL;
    return s;
}

/* Records one finding of `kind` in category `cat`; lists it while the category has fewer
 * than MAX_LISTED listed in this collection. */
static void __attribute__((format(printf, 4, 5)))
finding(ck *k, int kind, int cat, const char *fmt, ...)
{
    k->r->counts[kind]++;
    if (++k->cat_count[cat] > MAX_LISTED) {
        k->cat_kind[cat] = kind;
        return;
    }
    va_list ap;
    va_start(ap, fmt);
    char *msg = vfmt(fmt, ap);
    va_end(ap);
    if (msg)
        rag_check_report_push(k->r, kind, k->cname, k->cid, cat == CAT_INDEX, msg);
}

/* The detail of error `rc`: the thread's message, or the code's name when a callee set
 * none, so that no finding ends in an empty reason. */
static const char *errtext(int rc)
{
    return *rag_errmsg() ? rag_errmsg() : rag_strerror(rc);
}

/* Starts a new listing scope (a collection, or the store). */
static void scope_begin(ck *k, const char *name, uint32_t cid)
{
    k->cname = name;
    k->cid = cid;
    memset(k->cat_count, 0, sizeof k->cat_count);
}

/* Adds one summary item per category that had more findings than were listed. */
static void scope_end(ck *k)
{
    for (int c = 0; c < N_CAT; c++) {
        if (k->cat_count[c] <= MAX_LISTED)
            continue;
        char *msg = NULL;
        if (asprintf(&msg, "... and %llu more like the above",
                     (unsigned long long)(k->cat_count[c] - MAX_LISTED)) >= 0)
            rag_check_report_push(k->r, k->cat_kind[c], k->cname, k->cid, c == CAT_INDEX, msg);
    }
}

/* ---- vectors, chunks, documents ---------------------------------------------------------- */

static int vec_visit(void *user, uint64_t id, const float *vec, int dim)
{
    ck *k = user;
    int rc = u64v_push(&k->vids, id);
    if (rc != RAG_OK)
        return rc;
    if (id > k->plan->max_id)
        k->plan->max_id = id;
    if (dim != k->dim) {
        finding(k, RAG_CHECK_PROBLEM, CAT_VEC_BAD,
                "vector of chunk %llu has dimension %d, the store's is %d",
                (unsigned long long)id, dim, k->dim);
        return u64v_push(&k->bad_vecs, id);
    }
    for (int i = 0; i < dim; i++) {
        if (!isfinite(vec[i])) {
            finding(k, RAG_CHECK_PROBLEM, CAT_VEC_BAD,
                    "vector of chunk %llu has a non-finite value at position %d",
                    (unsigned long long)id, i);
            return u64v_push(&k->bad_vecs, id);
        }
    }
    return 0;
}

static int chunk_id_visit(void *user, uint64_t id)
{
    ck *k = user;
    if (k->nchunks == k->cap_chunks) {
        size_t cap = k->cap_chunks ? k->cap_chunks * 2 : 256;
        chunk_info *q = rag_realloc(k->chunks, cap * sizeof *q);
        if (!q)
            return RAG_ENOMEM;
        k->chunks = q;
        k->cap_chunks = cap;
    }
    chunk_info *c = &k->chunks[k->nchunks++];
    memset(c, 0, sizeof *c);
    c->id = id;
    if (id > k->plan->max_id)
        k->plan->max_id = id;
    return 0;
}

static chunk_info *find_chunk(ck *k, uint64_t id)
{
    size_t lo = 0, hi = k->nchunks;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (k->chunks[mid].id < id)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo < k->nchunks && k->chunks[lo].id == id ? &k->chunks[lo] : NULL;
}

/* Decodes every chunk record, recording its document (as a hash of the id) and text hash. */
static int load_chunks(ck *k)
{
    int rc = rag_store_chunk_id_scan(k->txn, k->cid, chunk_id_visit, k);
    for (size_t i = 0; rc == RAG_OK && i < k->nchunks; i++) {
        chunk_info *c = &k->chunks[i];
        rag_chunk_rec *rec = NULL;
        int grc = rag_store_chunk_get(k->txn, k->cid, c->id, &rec);
        if (grc == RAG_ECORRUPT || grc == RAG_ENOTFOUND) {
            /* Not found by the key the scan just listed: the table's pages disagree. */
            c->damaged = 1;
            finding(k, RAG_CHECK_PROBLEM, CAT_CHUNK_BAD, "chunk %llu: %s",
                    (unsigned long long)c->id,
                    grc == RAG_ENOTFOUND ? "listed by a scan of the chunk table but not found by "
                                           "its key (damaged pages)"
                                         : rag_errmsg());
            rag_clear_error();
            continue;
        }
        if (grc != RAG_OK)
            return grc;
        c->text_hash = rec->text_hash;
        c->flags = rec->flags;
        if (rag_text_norm_hash(rec->text, rec->text_len) != rec->text_hash) {
            /* No copy of the text to mend it from: the document must be ingested again. */
            c->damaged = 1;
            finding(k, RAG_CHECK_PROBLEM, CAT_CHUNK_BAD,
                    "chunk %llu of document '%s': its text does not match the hash stored with "
                    "it (damaged text; re-ingest the document)", (unsigned long long)c->id,
                    rec->doc_id);
        }
        c->doc_hash = XXH3_64bits(rec->doc_id, strlen(rec->doc_id));
        if (rec->end < rec->start || rec->end - rec->start != rec->text_len)
            finding(k, RAG_CHECK_PROBLEM, CAT_CHUNK_BAD,
                    "chunk %llu: span %llu..%llu does not match its %zu bytes of text",
                    (unsigned long long)c->id, (unsigned long long)rec->start,
                    (unsigned long long)rec->end, rec->text_len);
        rag_chunk_rec_free(rec);
    }
    return rc;
}

static int doc_visit(void *user, const rag_doc_rec *d)
{
    ck *k = user;
    k->docs++;
    k->bytes += d->text_len;
    uint64_t h = XXH3_64bits(d->id, strlen(d->id));
    for (uint32_t i = 0; i < d->nchunks; i++) {
        uint64_t id = d->chunk_ids[i];
        chunk_info *c = find_chunk(k, id);
        if (!c) {
            finding(k, RAG_CHECK_PROBLEM, CAT_DOC,
                    "document '%s' lists chunk %llu, which does not exist (the document is "
                    "incomplete: re-ingest it)", d->id, (unsigned long long)id);
            continue;
        }
        if (c->claimed) {
            finding(k, RAG_CHECK_PROBLEM, CAT_DOC,
                    "chunk %llu is listed twice (again by document '%s')",
                    (unsigned long long)id, d->id);
            continue;
        }
        if (!c->damaged && c->doc_hash != h) {
            finding(k, RAG_CHECK_PROBLEM, CAT_DOC,
                    "document '%s' lists chunk %llu, which names another document", d->id,
                    (unsigned long long)id);
            continue;
        }
        c->claimed = 1;
    }
    return 0;
}

static int tomb_visit(void *user, uint64_t id)
{
    ck *k = user;
    return u64v_push(&k->tombs, id);
}

/* ---- chunk hashes ---------------------------------------------------------------------- */

typedef struct hash_cmp {
    ck *k;
    const uint64_t *want;     /* sorted hashes of live chunks (with repeats) */
    size_t nwant, pos;
} hash_cmp;

static void hash_mismatch(hash_cmp *h, uint64_t hash, uint32_t have, uint32_t want)
{
    finding(h->k, RAG_CHECK_PROBLEM, CAT_HASH,
            "chunk-hash %016llx is counted %u times, live chunks hold it %u times",
            (unsigned long long)hash, have, want);
    if (u64v_push(&h->k->plan->hash_keys, hash) == RAG_OK)
        u64v_push(&h->k->plan->hash_counts, want);
    h->k->plan->store_fixes = 1;
}

/* Emits the expected hashes below `limit` that the table lacks. */
static void hash_drain(hash_cmp *h, uint64_t limit, int all)
{
    while (h->pos < h->nwant && (all || h->want[h->pos] < limit)) {
        uint64_t x = h->want[h->pos];
        uint32_t n = 0;
        while (h->pos < h->nwant && h->want[h->pos] == x) {
            n++;
            h->pos++;
        }
        hash_mismatch(h, x, 0, n);
    }
}

static int hash_visit(void *user, uint64_t hash, uint32_t count)
{
    hash_cmp *h = user;
    hash_drain(h, hash, 0);
    uint32_t n = 0;
    while (h->pos < h->nwant && h->want[h->pos] == hash) {
        n++;
        h->pos++;
    }
    if (n != count)
        hash_mismatch(h, hash, count, n);
    return 0;
}

/* ---- index file ------------------------------------------------------------------------ */

typedef struct recon_ctx {
    ck *k;
    rag_vindex *ix;
    const u64v *file_ids;
    uint64_t covered;
    float *buf;
    double tol;
    int stop;
} recon_ctx;

static int recon_visit(void *user, uint64_t id, const float *vec, int dim)
{
    recon_ctx *x = user;
    if (id >= x->covered)
        return 1;
    if (dim != x->k->dim || !u64v_has(x->file_ids, id) || u64v_has(&x->k->bad_vecs, id))
        return 0;
    if (rag_vindex_reconstruct(x->ix, (int64_t)id, x->buf) != RAG_OK) {
        finding(x->k, RAG_CHECK_NOTE, CAT_INDEX,
                "vector values of the index file not compared (index '%s' cannot decode "
                "vectors: %s)", rag_vindex_spec(x->ix), rag_errmsg());
        rag_clear_error();
        x->stop = 1;
        return 1;
    }
    double worst = 0;
    for (int i = 0; i < dim; i++) {
        double d = fabs((double)x->buf[i] - (double)vec[i]);
        if (!(d <= worst))
            worst = d;
    }
    if (!(worst <= x->tol)) {
        finding(x->k, RAG_CHECK_PROBLEM, CAT_INDEX,
                "index file holds another vector for chunk %llu than the store (largest "
                "difference %.3g)", (unsigned long long)id, worst);
        x->k->plan->rebuild_index = 1;
    }
    return 0;
}

/* Tolerance for comparing decoded vectors (unit length) with stored ones; < 0: skip. */
static double decode_tolerance(const char *spec)
{
    /* IVF decodes only with a direct map, which IDMap2 over IVF does not keep. */
    if (strstr(spec, "PQ") || strstr(spec, "LSH") || strstr(spec, "RQ") || strstr(spec, "PCA") ||
        strstr(spec, "IVF"))
        return -1;
    if (strstr(spec, "SQ4"))
        return 0.2;
    if (strstr(spec, "SQ"))
        return 0.05;
    return 1e-4;
}

static void check_index(ck *k)
{
    char path[4096];
    rag_coll_index_path(k->dir, k->cid, path, sizeof path);
    struct stat sb;
    if (stat(path, &sb) != 0) {
        if (k->vids.n > 0)
            finding(k, RAG_CHECK_NOTE, CAT_INDEX,
                    "no index file yet: the index is built from the store when the collection "
                    "is opened");
        return;
    }
    rag_vindex *ix = NULL;
    uint64_t covered = 0;
    int64_t *raw = NULL;
    size_t nraw = 0;
    u64v ids = {0};
    float *buf = NULL;
    int rc = rag_vindex_load(path, k->spec, k->dim, 0, rag_store_crypt(k->st), &ix, &covered);
    if (rc != RAG_OK) {
        finding(k, RAG_CHECK_PROBLEM, CAT_INDEX, "index file cannot be used: %s", errtext(rc));
        rag_clear_error();
        k->plan->rebuild_index = 1;
        return;
    }
    rag_vindex_identity want = {k->cid, {0}};
    memcpy(want.store, k->store_id, sizeof want.store);
    if (rag_vindex_identity_check(rag_vindex_get_identity(ix), &want, path) != 0) {
        finding(k, RAG_CHECK_PROBLEM, CAT_INDEX, "%s (a copied file: it is rebuilt at open)",
                rag_errmsg());
        rag_clear_error();
        k->plan->rebuild_index = 1;
        rag_vindex_free(ix);
        return;
    }
    k->r->totals.index_files++;
    k->r->totals.index_vectors += rag_vindex_count(ix);
    if (covered > k->next_id) {
        /* A writer of another process may have checkpointed after the snapshot began. */
        rag_txn *now = NULL;
        uint64_t next_now = 0;
        if (rag_store_read(k->st, &now) == RAG_OK && rag_store_next_id(now, &next_now) == RAG_OK &&
            covered <= next_now) {
            rag_txn_end(now);
            finding(k, RAG_CHECK_NOTE, CAT_INDEX,
                    "index file was rewritten by a writer during the check: not compared");
            goto cleanup;
        }
        rag_txn_end(now);
        finding(k, RAG_CHECK_PROBLEM, CAT_INDEX,
                "index file covers ids below %llu but the store's next id is %llu (the file is "
                "newer than the store)", (unsigned long long)covered,
                (unsigned long long)k->next_id);
        k->plan->rebuild_index = 1;
        goto cleanup;
    }
    if ((rc = rag_vindex_ids(ix, &raw, &nraw)) != RAG_OK) {
        finding(k, RAG_CHECK_NOTE, CAT_INDEX, "index ids not compared: %s", errtext(rc));
        rag_clear_error();
        goto cleanup;
    }
    for (size_t i = 0; i < nraw; i++) {
        if (raw[i] < 0 || (uint64_t)raw[i] >= covered) {
            finding(k, RAG_CHECK_PROBLEM, CAT_INDEX,
                    "index file holds id %lld, outside its coverage (below %llu)",
                    (long long)raw[i], (unsigned long long)covered);
            k->plan->rebuild_index = 1;
            continue;
        }
        if (u64v_push(&ids, (uint64_t)raw[i]) != RAG_OK)
            goto cleanup;
    }
    if (ids.n)
        qsort(ids.v, ids.n, sizeof *ids.v, cmp_u64);
    for (size_t i = 0; i < ids.n; i++) {
        uint64_t id = ids.v[i];
        if (i > 0 && ids.v[i - 1] == id) {
            finding(k, RAG_CHECK_PROBLEM, CAT_INDEX, "index file holds chunk %llu twice",
                    (unsigned long long)id);
            k->plan->rebuild_index = 1;
        } else if (!u64v_has(&k->vids, id) && !find_chunk(k, id) && !u64v_has(&k->tombs, id)) {
            finding(k, RAG_CHECK_PROBLEM, CAT_INDEX,
                    "index file holds chunk %llu, which is neither live nor deleted (tombstoned)",
                    (unsigned long long)id);
            k->plan->rebuild_index = 1;
        }
    }
    for (size_t i = 0; i < k->vids.n && k->vids.v[i] < covered; i++) {
        if (!u64v_has(&ids, k->vids.v[i])) {
            finding(k, RAG_CHECK_PROBLEM, CAT_INDEX,
                    "index file lacks the vector of live chunk %llu (below its coverage %llu)",
                    (unsigned long long)k->vids.v[i], (unsigned long long)covered);
            k->plan->rebuild_index = 1;
        }
    }
    double tol = decode_tolerance(k->spec);
    if (tol >= 0 && (buf = rag_malloc((size_t)k->dim * sizeof(float)))) {
        recon_ctx x = {k, ix, &ids, covered, buf, tol, 0};
        rc = rag_store_vec_scan(k->txn, k->cid, 0, recon_visit, &x);
        if (rc < 0) {
            finding(k, RAG_CHECK_PROBLEM, CAT_STORE, "reading vectors: %s", errtext(rc));
            rag_clear_error();
        }
    }
cleanup:
    free(buf);
    free(raw);
    u64v_free(&ids);
    rag_vindex_free(ix);
}

/* ---- one collection ------------------------------------------------------------------------ */

static void scan_reset(ck *k)
{
    u64v_free(&k->vids);
    u64v_free(&k->bad_vecs);
    u64v_free(&k->tombs);
    free(k->chunks);
    k->chunks = NULL;
    k->nchunks = k->cap_chunks = 0;
    k->docs = k->bytes = 0;
}

/* Checks a collection's lexical tables against each other (rag_lexical_audit_coll) and
 * against its `live` chunks; any disagreement plans a rebuild from the chunk texts. */
static void check_lexical(ck *k, uint64_t live)
{
    rag_lexical_audit la;
    uint64_t before = k->r->counts[RAG_CHECK_PROBLEM];
    int rc = rag_lexical_audit_coll(k->txn, k->cid, &la);
    if (rc != RAG_OK) {
        finding(k, RAG_CHECK_PROBLEM, CAT_LEX, "lexical index cannot be read: %s", errtext(rc));
        rag_clear_error();
        k->plan->rebuild_lex = 1;
        return;
    }
    if (la.rebuilding)
        finding(k, RAG_CHECK_PROBLEM, CAT_LEX,
                "a rebuild of the lexical index was interrupted: the index is partial");
    if (la.chunks == 0 && la.postings == 0 && la.df_records == 0 && la.stat_chunks == 0) {
        if (live > 0)
            finding(k, RAG_CHECK_PROBLEM, CAT_LEX,
                    "lexical index is empty but the collection holds %llu live chunks (lexical "
                    "search finds nothing)", (unsigned long long)live);
    } else {
        uint64_t missing = 0;
        for (size_t i = 0; i < k->nchunks; i++)
            if (k->chunks[i].claimed && rag_lexical_indexed(k->txn, k->cid, k->chunks[i].id) != 1)
                missing++;
        rag_clear_error();
        uint64_t indexed_live = live - missing;
        uint64_t not_live = la.chunks > indexed_live ? la.chunks - indexed_live : 0;
        if (missing || not_live || la.stat_chunks != live)
            finding(k, RAG_CHECK_PROBLEM, CAT_LEX,
                    "lexical index holds %llu chunks, the store %llu live ones (%llu not indexed, "
                    "%llu indexed but not live)", (unsigned long long)la.stat_chunks,
                    (unsigned long long)live, (unsigned long long)missing,
                    (unsigned long long)not_live);
        if (la.stat_chunks != la.chunks || la.stat_len != la.sum_len)
            finding(k, RAG_CHECK_PROBLEM, CAT_LEX,
                    "lexical statistics count %llu chunks of %llu terms, the chunk entries %llu "
                    "of %llu", (unsigned long long)la.stat_chunks,
                    (unsigned long long)la.stat_len, (unsigned long long)la.chunks,
                    (unsigned long long)la.sum_len);
        if (la.bad_chunks)
            finding(k, RAG_CHECK_PROBLEM, CAT_LEX,
                    "lexical postings of %llu chunks do not add up to their entries (first: "
                    "chunk %llu)", (unsigned long long)la.bad_chunks,
                    (unsigned long long)la.first_bad_chunk);
        if (la.stray_postings)
            finding(k, RAG_CHECK_PROBLEM, CAT_LEX,
                    "%llu lexical postings belong to no indexed chunk or carry another chunk "
                    "length", (unsigned long long)la.stray_postings);
        if (!la.chunk_only && (la.stat_docs != la.docs || la.stat_doc_len != la.doc_len))
            finding(k, RAG_CHECK_PROBLEM, CAT_LEX,
                    "lexical statistics count %llu documents of %llu terms, the chunk entries "
                    "form %llu of %llu", (unsigned long long)la.stat_docs,
                    (unsigned long long)la.stat_doc_len, (unsigned long long)la.docs,
                    (unsigned long long)la.doc_len);
        if (la.bad_doc_postings)
            finding(k, RAG_CHECK_PROBLEM, CAT_LEX,
                    "%llu lexical postings carry another document ordinal or length than their "
                    "chunk entries give", (unsigned long long)la.bad_doc_postings);
        if (la.bad_df)
            finding(k, RAG_CHECK_PROBLEM, CAT_LEX,
                    "document frequencies of %llu terms do not match their postings (first: "
                    "'%s')", (unsigned long long)la.bad_df, la.first_bad_term);
        if (la.malformed)
            finding(k, RAG_CHECK_PROBLEM, CAT_LEX, "%llu lexical entries do not decode",
                    (unsigned long long)la.malformed);
    }
    if (k->r->counts[RAG_CHECK_PROBLEM] != before)
        k->plan->rebuild_lex = 1;
    else if (la.chunk_only && la.chunks > 0) {
        finding(k, RAG_CHECK_NOTE, CAT_LEX,
                "lexical index is in the chunk-only format of older versions: lexical search "
                "scores chunks, not documents, until --repair rebuilds it");
        k->plan->rebuild_lex = 1;
    }
}

/* Checks one collection inside k->txn, filling k->plan with the repairs it would need.
 * Returns a negative status only when the collection could not be read at all. */
static int check_collection(ck *k, const char *name, const rag_coll_rec *rec)
{
    coll_plan *p = k->plan;
    int rc;
    scope_begin(k, name, rec->id);
    k->r->totals.collections++;
    rag_check_stage(k->r, "table 'vectors' (collection '%s')", name);
    if ((rc = rag_store_vec_scan(k->txn, k->cid, 0, vec_visit, k)) != RAG_OK)
        goto unreadable;
    rag_check_stage(k->r, "table 'chunks' (collection '%s')", name);
    if ((rc = load_chunks(k)) != RAG_OK)
        goto unreadable;
    rag_check_stage(k->r, "table 'docs' (collection '%s')", name);
    if ((rc = rag_store_doc_scan(k->txn, k->cid, doc_visit, k)) != RAG_OK) {
        if (rc != RAG_ECORRUPT)
            goto unreadable;
        finding(k, RAG_CHECK_PROBLEM, CAT_DOC, "document table: %s (documents after it not checked)",
                errtext(rc));
        rag_clear_error();
    }
    rag_check_stage(k->r, "table 'tombstones' (collection '%s')", name);
    if ((rc = rag_store_tomb_scan(k->txn, k->cid, tomb_visit, k)) != RAG_OK)
        goto unreadable;
    k->r->totals.documents += k->docs;
    k->r->totals.vectors += k->vids.n;
    k->r->totals.tombstones += k->tombs.n;

    /* Chunks: owned by a document, with a vector. */
    uint64_t live = 0, dups = 0;
    u64v want_hashes = {0};
    for (size_t i = 0; i < k->nchunks; i++) {
        chunk_info *c = &k->chunks[i];
        if (!c->claimed) {
            finding(k, RAG_CHECK_PROBLEM, CAT_ORPHAN_CHUNK,
                    "chunk %llu is not listed by any document (orphan)", (unsigned long long)c->id);
            u64v_push(&p->del_chunks, c->id);
            p->store_fixes = 1;
            continue;
        }
        live++;
        if (c->flags & RAG_CHUNK_DUPLICATE)
            dups++;
        if (!c->damaged) /* in the form the table keeps */
            u64v_push(&want_hashes, rag_store_key_hash(k->txn, c->text_hash));
        if (!u64v_has(&k->vids, c->id)) {
            finding(k, RAG_CHECK_PROBLEM, CAT_NO_VEC, "chunk %llu has no vector",
                    (unsigned long long)c->id);
            if (!c->damaged)
                u64v_push(&p->reembed, c->id);
            p->store_fixes = 1;
        } else if (u64v_has(&k->bad_vecs, c->id) && !c->damaged) {
            u64v_push(&p->reembed, c->id);
            p->store_fixes = 1;
        }
    }
    k->r->totals.chunks += live;
    /* Vectors: belong to a chunk. */
    for (size_t i = 0; i < k->vids.n; i++) {
        uint64_t id = k->vids.v[i];
        chunk_info *c = find_chunk(k, id);
        if (!c) {
            finding(k, RAG_CHECK_PROBLEM, CAT_ORPHAN_VEC,
                    "vector %llu has no chunk (orphan)", (unsigned long long)id);
            u64v_push(&p->del_vecs, id);
            p->store_fixes = 1;
        }
    }
    /* Counters. */
    p->documents = k->docs;
    p->chunks = live;
    p->duplicate_chunks = dups;
    p->bytes_text = k->bytes;
    const struct {
        const char *what;
        uint64_t have, want;
    } counters[] = {{"documents", rec->documents, k->docs},
                    {"chunks", rec->chunks, live},
                    {"duplicate chunks", rec->duplicate_chunks, dups},
                    {"text bytes", rec->bytes_text, k->bytes}};
    for (size_t i = 0; i < sizeof counters / sizeof counters[0]; i++) {
        if (counters[i].have != counters[i].want) {
            finding(k, RAG_CHECK_PROBLEM, CAT_COUNTER,
                    "counter of %s says %llu, the store holds %llu", counters[i].what,
                    (unsigned long long)counters[i].have, (unsigned long long)counters[i].want);
            p->fix_counters = 1;
            p->store_fixes = 1;
        }
    }
    /* Chunk-hash reference counts. */
    if (want_hashes.n)
        qsort(want_hashes.v, want_hashes.n, sizeof *want_hashes.v, cmp_u64);
    hash_cmp hc = {k, want_hashes.v, want_hashes.n, 0};
    rag_check_stage(k->r, "table 'hashes' (collection '%s')", name);
    rc = rag_store_hash_scan(k->txn, k->cid, hash_visit, &hc);
    if (rc == RAG_OK)
        hash_drain(&hc, 0, 1);
    u64v_free(&want_hashes);
    if (rc != RAG_OK)
        goto unreadable;
    /* Tombstones: ids no longer live. */
    for (size_t i = 0; i < k->tombs.n; i++) {
        uint64_t id = k->tombs.v[i];
        if (find_chunk(k, id) || u64v_has(&k->vids, id)) {
            finding(k, RAG_CHECK_PROBLEM, CAT_TOMB,
                    "chunk %llu is both live and marked deleted (tombstone)",
                    (unsigned long long)id);
            p->rebuild_index = 1;
        }
        if (id > p->max_id)
            p->max_id = id;
    }
    if (k->nchunks + k->vids.n + k->tombs.n > 0 && p->max_id >= k->next_id) {
        finding(k, RAG_CHECK_PROBLEM, CAT_IDS,
                "id %llu is in use but the store's next id is %llu (ids would be reused)",
                (unsigned long long)p->max_id, (unsigned long long)k->next_id);
        p->store_fixes = 1;
    }
    rag_check_stage(k->r, "the index file of collection '%s'", name);
    check_index(k);
    rag_check_stage(k->r, "the lexical tables (collection '%s')", name);
    check_lexical(k, live);
    rag_clear_error();
    if (p->store_fixes)
        p->rebuild_index = 1;
    scope_end(k);
    scan_reset(k);
    return RAG_OK;
unreadable:
    finding(k, RAG_CHECK_PROBLEM, CAT_STORE, "collection cannot be read: %s", errtext(rc));
    scope_end(k);
    scan_reset(k);
    return rc;
}

/* ---- store-wide ---------------------------------------------------------------------------- */

typedef struct keycount_ctx {
    ck *k;
    const uint32_t *ids;
    size_t n;
    u64v orphan_colls;      /* collection ids with records but no collection */
    u64v orphan_docs;       /* of those, the ones holding documents */
} keycount_ctx;

static int keycount_visit(void *user, const char *table, uint32_t coll, uint64_t count)
{
    keycount_ctx *x = user;
    for (size_t i = 0; i < x->n; i++)
        if (x->ids[i] == coll)
            return 0;
    finding(x->k, RAG_CHECK_PROBLEM, CAT_STORE,
            "table '%s' holds %llu records of collection id %u, which does not exist", table,
            (unsigned long long)count, coll);
    int known = 0;
    for (size_t i = 0; i < x->orphan_colls.n; i++)
        known |= x->orphan_colls.v[i] == coll;
    if (!known)
        u64v_push(&x->orphan_colls, coll);
    if (strcmp(table, "docs") == 0)
        u64v_push(&x->orphan_docs, coll);
    return 0;
}

/* Notes index files that belong to no collection and leftover temporary files. */
static void check_index_dir(ck *k, const uint32_t *ids, size_t n, int repair)
{
    char path[4096];
    rag_coll_index_dir(k->dir, path, sizeof path);
    DIR *d = opendir(path);
    if (!d)
        return;
    struct dirent *e;
    while ((e = readdir(d))) {
        if (e->d_name[0] == '.')
            continue;
        char *end = NULL;
        unsigned long id = strtoul(e->d_name, &end, 10);
        int is_tmp = strstr(e->d_name, ".tmp") != NULL;
        int live = 0;
        if (end && strcmp(end, ".idx") == 0)
            for (size_t i = 0; i < n; i++)
                live |= ids[i] == id;
        if (live)
            continue;
        if (!is_tmp && !(end && strcmp(end, ".idx") == 0)) {
            finding(k, RAG_CHECK_NOTE, CAT_INDEX, "index/%s is not a ragcore file (ignored)",
                    e->d_name);
            continue;
        }
        finding(k, RAG_CHECK_NOTE, CAT_INDEX, "index/%s is %s", e->d_name,
                is_tmp ? "a temporary file left by an interrupted checkpoint"
                       : "the index file of a collection that no longer exists");
        if (repair) {
            snprintf(path, sizeof path, "%s/index/%s", k->dir, e->d_name);
            if (unlink(path) == 0)
                finding(k, RAG_CHECK_REPAIRED, CAT_REPAIR, "removed index/%s", e->d_name);
        }
    }
    closedir(d);
}

/* ---- repair -------------------------------------------------------------------------------- */

typedef struct repair_arg {
    coll_plan *p;
    const float *vecs;      /* p->reembed.n vectors, or NULL */
    int dim;
    uint64_t bump;          /* ids to allocate so that the next id passes every used id */
} repair_arg;

static int ok_or_absent(int rc)
{
    return rc == RAG_ENOTFOUND ? RAG_OK : rc;
}

static int repair_fn(rag_txn *txn, void *user)
{
    repair_arg *a = user;
    coll_plan *p = a->p;
    int rc = RAG_OK;
    for (size_t i = 0; rc == RAG_OK && i < p->del_chunks.n; i++) {
        rc = ok_or_absent(rag_store_chunk_del(txn, p->id, p->del_chunks.v[i]));
        if (rc == RAG_OK)
            rc = ok_or_absent(rag_store_vec_del(txn, p->id, p->del_chunks.v[i]));
        if (rc == RAG_OK)
            rc = rag_store_tomb_put(txn, p->id, p->del_chunks.v[i]);
    }
    for (size_t i = 0; rc == RAG_OK && i < p->del_vecs.n; i++) {
        rc = ok_or_absent(rag_store_vec_del(txn, p->id, p->del_vecs.v[i]));
        if (rc == RAG_OK)
            rc = rag_store_tomb_put(txn, p->id, p->del_vecs.v[i]);
    }
    for (size_t i = 0; rc == RAG_OK && a->vecs && i < p->reembed.n; i++)
        rc = rag_store_vec_put(txn, p->id, p->reembed.v[i], a->vecs + i * (size_t)a->dim, a->dim);
    for (size_t i = 0; rc == RAG_OK && i < p->hash_keys.n; i++)
        rc = rag_store_hash_set(txn, p->id, p->hash_keys.v[i], (uint32_t)p->hash_counts.v[i]);
    if (rc == RAG_OK && p->fix_counters) {
        rag_coll_rec rec;
        if ((rc = rag_store_coll_get(txn, p->name, &rec)) == RAG_OK) {
            rec.documents = p->documents;
            rec.chunks = p->chunks;
            rec.duplicate_chunks = p->duplicate_chunks;
            rec.bytes_text = p->bytes_text;
            rc = rag_store_coll_put(txn, p->name, &rec);
        }
    }
    if (rc == RAG_OK && a->bump > 0) {
        uint64_t first;
        rc = rag_store_alloc_ids(txn, a->bump, &first);
    }
    return rc;
}

/* Embeds the chunks of p->reembed with the store's embedder into *out, each with its
 * document's title in front as ingest embeds it (rag_lexical_chunk_text). */
static int reembed(ck *k, coll_plan *p, float **out)
{
    *out = NULL;
    rag_embedder *e = NULL;
    rag_txn *txn = NULL;
    float *vecs = NULL;
    rag_chunk_rec *recs[EMBED_BATCH] = {0};
    char *bufs[EMBED_BATCH] = {0};
    int rc = rag_embedder_create_recorded(
        k->embedder, strncmp(k->embedder, "hash", 4) == 0 ? k->dim : 0, &e);
    if (rc != RAG_OK)
        return rc;
    if (e->dim != k->dim) {
        rc = rag_fail(RAG_EMISMATCH, "embedder '%s' has dimension %d, the store %d", k->embedder,
                      e->dim, k->dim);
        goto cleanup;
    }
    if (!(vecs = rag_malloc(p->reembed.n * (size_t)k->dim * sizeof(float)))) {
        rc = RAG_ENOMEM;
        goto cleanup;
    }
    if ((rc = rag_store_read(k->st, &txn)) != RAG_OK)
        goto cleanup;
    for (size_t b = 0; b < p->reembed.n && rc == RAG_OK; b += EMBED_BATCH) {
        size_t m = p->reembed.n - b < EMBED_BATCH ? p->reembed.n - b : EMBED_BATCH;
        const char *texts[EMBED_BATCH];
        size_t lens[EMBED_BATCH];
        for (size_t i = 0; i < m && rc == RAG_OK; i++) {
            rag_doc_rec *doc = NULL;
            rc = rag_store_chunk_get(txn, p->id, p->reembed.v[b + i], &recs[i]);
            if (rc == RAG_OK) {
                int drc = rag_store_doc_get(txn, p->id, recs[i]->doc_id, &doc);
                if (drc != RAG_OK && drc != RAG_ENOTFOUND)
                    rc = drc;
            }
            if (rc == RAG_OK)
                rc = rag_lexical_chunk_text(doc ? doc->title : NULL, recs[i]->text,
                                            recs[i]->text_len, &bufs[i], &texts[i], &lens[i]);
            rag_doc_rec_free(doc);
        }
        if (rc == RAG_OK)
            rc = rag_embedder_embed(e, texts, lens, m, 0, vecs + b * (size_t)k->dim);
        for (size_t i = 0; i < m; i++) {
            rag_chunk_rec_free(recs[i]);
            recs[i] = NULL;
            free(bufs[i]);
            bufs[i] = NULL;
        }
    }
    if (rc == RAG_OK) {
        *out = vecs;
        vecs = NULL;
    }
cleanup:
    rag_txn_end(txn);
    free(vecs);
    rag_embedder_free(e);
    return rc;
}

/* Rebuilds a collection's index file from the store's vectors, leaving out the vectors it
 * could not mend (another dimension, non-finite values). */
static int rebuild_index(ck *k, coll_plan *p)
{
    char path[4096];
    rag_coll_index_path(k->dir, p->id, path, sizeof path);
    rag_vindex *ix = NULL;
    uint64_t next = 0;
    int rc = rag_coll_index_create(k->spec, k->dim, 0, k->ef_construction, &ix);
    if (rc != RAG_OK)
        return rc;
    rag_vindex_identity id = {p->id, {0}};
    memcpy(id.store, k->store_id, sizeof id.store);
    rag_vindex_set_identity(ix, &id);
    rag_coll_index_fill_opts fo = {0, FILL_BATCH, 1};
    rc = rag_coll_index_fill(k->st, p->id, ix, &fo, &next, NULL);
    char dirpath[4096];
    rag_coll_index_dir(k->dir, dirpath, sizeof dirpath);
    mkdir(dirpath, 0700);
    if (rc == RAG_EINDEX) {
        /* Too few vectors to train: no file; searches scan exactly until one can be built. */
        finding(k, RAG_CHECK_REPAIRED, CAT_REPAIR,
                "index not written (%s); removed the old file, searches scan exactly",
                rag_errmsg());
        rag_clear_error();
        unlink(path);
        rc = RAG_OK;
        goto clear;
    }
    if (rc != RAG_OK)
        goto cleanup;
    if ((rc = rag_vindex_save(ix, path, next, rag_store_crypt(k->st))) != RAG_OK)
        goto cleanup;
    finding(k, RAG_CHECK_REPAIRED, CAT_REPAIR, "rebuilt the index file from %zu stored vectors",
            rag_vindex_count(ix));
clear:
    rc = rag_coll_index_clear_tombs(k->st, p->id, UINT64_MAX);
cleanup:
    rag_vindex_free(ix);
    return rc;
}

static void repair_collection(ck *k, coll_plan *p)
{
    scope_begin(k, p->name, p->id);
    float *vecs = NULL;
    int rc = RAG_OK;
    if (p->reembed.n > 0) {
        rc = reembed(k, p, &vecs);
        if (rc != RAG_OK) {
            finding(k, RAG_CHECK_UNFIXED, CAT_REPAIR,
                    "%zu chunks lack a usable vector and cannot be re-embedded (%s): re-ingest "
                    "their documents", p->reembed.n, errtext(rc));
            rag_clear_error();
        }
    }
    uint64_t bump = 0;
    rag_txn *txn = NULL;
    uint64_t next = 0;
    if (rag_store_read(k->st, &txn) == RAG_OK) {
        if (rag_store_next_id(txn, &next) == RAG_OK && p->max_id >= next)
            bump = p->max_id + 1 - next;
        rag_txn_end(txn);
    }
    if (p->store_fixes) {
        repair_arg a = {p, vecs, k->dim, bump};
        rc = rag_store_write(k->st, repair_fn, &a);
        if (rc != RAG_OK) {
            finding(k, RAG_CHECK_UNFIXED, CAT_REPAIR, "store repair failed: %s", errtext(rc));
            rag_clear_error();
            p->rebuild_index = 1;
        } else {
            for (size_t i = 0; i < p->del_chunks.n; i++)
                finding(k, RAG_CHECK_REPAIRED, CAT_REPAIR,
                        "deleted orphan chunk %llu and its vector (no document lists it)",
                        (unsigned long long)p->del_chunks.v[i]);
            for (size_t i = 0; i < p->del_vecs.n; i++)
                finding(k, RAG_CHECK_REPAIRED, CAT_REPAIR,
                        "deleted orphan vector %llu (its chunk is gone)",
                        (unsigned long long)p->del_vecs.v[i]);
            if (vecs)
                finding(k, RAG_CHECK_REPAIRED, CAT_REPAIR, "re-embedded %zu chunks with '%s'",
                        p->reembed.n, k->embedder);
            if (p->hash_keys.n)
                finding(k, RAG_CHECK_REPAIRED, CAT_REPAIR, "set %zu chunk-hash counts",
                        p->hash_keys.n);
            if (p->fix_counters)
                finding(k, RAG_CHECK_REPAIRED, CAT_REPAIR,
                        "set counters: %llu documents, %llu chunks, %llu duplicate chunks, "
                        "%llu text bytes", (unsigned long long)p->documents,
                        (unsigned long long)p->chunks, (unsigned long long)p->duplicate_chunks,
                        (unsigned long long)p->bytes_text);
            if (bump)
                finding(k, RAG_CHECK_REPAIRED, CAT_REPAIR, "advanced the next id by %llu",
                        (unsigned long long)bump);
        }
    }
    if (p->rebuild_lex) {
        uint64_t indexed = 0;
        char lang[32];
        if ((rc = rag_lexical_rebuild(k->st, p->name, p->id, NULL, &indexed, lang, sizeof lang)) == RAG_OK) {
            finding(k, RAG_CHECK_REPAIRED, CAT_REPAIR,
                    "rebuilt the lexical index from the text of %llu live chunks (analyzer "
                    "'%s', stop words)", (unsigned long long)indexed, lang);
        } else {
            finding(k, RAG_CHECK_UNFIXED, CAT_REPAIR,
                    "lexical index rebuild failed: %s (the next --repair starts it again)",
                    errtext(rc));
            rag_clear_error();
        }
    }
    if (p->rebuild_index && (rc = rebuild_index(k, p)) != RAG_OK) {
        finding(k, RAG_CHECK_UNFIXED, CAT_REPAIR, "index rebuild failed: %s", errtext(rc));
        rag_clear_error();
    }
    free(vecs);
    scope_end(k);
}

static void plan_free(coll_plan *p)
{
    u64v_free(&p->del_chunks);
    u64v_free(&p->del_vecs);
    u64v_free(&p->reembed);
    u64v_free(&p->hash_keys);
    u64v_free(&p->hash_counts);
}

typedef struct purge_arg {
    uint32_t coll;
} purge_arg;

static int purge_fn(rag_txn *txn, void *user)
{
    return rag_store_coll_purge(txn, ((purge_arg *)user)->coll);
}

/* ---- entry point ----------------------------------------------------------------------------- */

static int read_identity(ck *k)
{
    char *version = NULL, *dim = NULL;
    int rc = rag_store_meta_get(k->txn, "schema_version", &version);
    if (rc == RAG_OK)
        rc = rag_store_meta_get(k->txn, "dim", &dim);
    if (rc == RAG_OK)
        rc = rag_store_meta_get(k->txn, "index_spec", &k->spec);
    if (rc == RAG_OK)
        rc = rag_store_meta_get(k->txn, "embedder", &k->embedder);
    if (rc == RAG_ENOTFOUND)
        rc = rag_fail(RAG_ECORRUPT, "store '%s' lacks its identity records", k->dir);
    if (rc == RAG_OK && strcmp(version, "1") != 0)
        rc = rag_fail(RAG_ECORRUPT, "store '%s' has schema version %s; this build reads 1",
                      k->dir, version);
    if (rc == RAG_OK && ((k->dim = atoi(dim)) <= 0 || k->dim > 65536))
        rc = rag_fail(RAG_ECORRUPT, "store '%s' records dimension '%s'", k->dir, dim);
    if (rc == RAG_OK)
        rc = rag_store_next_id(k->txn, &k->next_id);
    char *hex = NULL;
    if (rc == RAG_OK && rag_store_meta_get(k->txn, "store_id", &hex) == RAG_OK &&
        strlen(hex) == 32)
        for (int i = 0; i < 16; i++)
            sscanf(hex + 2 * i, "%2hhx", &k->store_id[i]);
    free(hex);
    rag_clear_error();
    free(version);
    free(dim);
    return rc;
}

/* One pass: checks everything in one snapshot, then repairs when asked. `secret` unlocks
 * an encrypted store (NULL: none given). */
static int check_pass(const char *dir, const char *secret, int repair, int ef_construction,
                      rag_check_report *r)
{
    ck k;
    memset(&k, 0, sizeof k);
    k.r = r;
    k.dir = dir;
    k.ef_construction = ef_construction;
    char **names = NULL;
    size_t n = 0;
    coll_plan *plans = NULL;
    uint32_t *ids = NULL;
    keycount_ctx kc;
    memset(&kc, 0, sizeof kc);
    char path[4096];
    struct stat sb;
    snprintf(path, sizeof path, "%s/data.mdb", dir);
    if (stat(path, &sb) != 0)
        return rag_fail(RAG_ENOTFOUND, "'%s' is not a ragcore store (no data.mdb)", dir);
    int rc = rag_store_open(dir, !repair, &k.st);
    if (rc != RAG_OK)
        return rc;
    if ((rc = rag_store_unlock(k.st, secret)) != RAG_OK)
        goto cleanup;
    rag_check_stage(r, "tables 'meta' and 'collections'");
    if ((rc = rag_store_read(k.st, &k.txn)) != RAG_OK)
        goto cleanup;
    if ((rc = read_identity(&k)) != RAG_OK)
        goto cleanup;
    if ((rc = rag_store_coll_list(k.txn, &names, &n)) != RAG_OK)
        goto cleanup;
    plans = rag_calloc(n ? n : 1, sizeof *plans);
    ids = rag_calloc(n ? n : 1, sizeof *ids);
    if (!plans || !ids) {
        rc = RAG_ENOMEM;
        goto cleanup;
    }
    scope_begin(&k, "", 0);
    for (size_t i = 0; i < n; i++) {
        rag_coll_rec rec;
        if ((rc = rag_store_coll_get(k.txn, names[i], &rec)) != RAG_OK)
            goto cleanup;
        ids[i] = rec.id;
        for (size_t j = 0; j < i; j++)
            if (ids[j] == rec.id)
                finding(&k, RAG_CHECK_PROBLEM, CAT_STORE,
                        "collections '%s' and '%s' share id %u", names[j], names[i], rec.id);
    }
    kc.k = &k;
    kc.ids = ids;
    kc.n = n;
    rag_check_stage(r, "the keys of tables 'docs', 'chunks', 'vectors', 'tombstones' and "
                    "'hashes'");
    if ((rc = rag_store_coll_key_counts(k.txn, keycount_visit, &kc)) != RAG_OK) {
        finding(&k, RAG_CHECK_PROBLEM, CAT_STORE, "%s", errtext(rc));
        rag_clear_error();
    }
    check_index_dir(&k, ids, n, 0);
    scope_end(&k);
    for (size_t i = 0; i < n; i++) {
        rag_coll_rec rec;
        if ((rc = rag_store_coll_get(k.txn, names[i], &rec)) != RAG_OK)
            goto cleanup;
        snprintf(plans[i].name, sizeof plans[i].name, "%s", names[i]);
        plans[i].id = rec.id;
        k.plan = &plans[i];
        check_collection(&k, names[i], &rec); /* reports what it could not read */
        rag_clear_error();
    }
    rag_txn_end(k.txn);
    k.txn = NULL;
    rc = RAG_OK;
    if (!repair)
        goto cleanup;
    /* Repairs, after the snapshot ended. */
    scope_begin(&k, "", 0);
    check_index_dir(&k, ids, n, 1);
    for (size_t i = 0; i < kc.orphan_colls.n; i++) {
        uint32_t cid = (uint32_t)kc.orphan_colls.v[i];
        int has_docs = 0;
        for (size_t j = 0; j < kc.orphan_docs.n; j++)
            has_docs |= kc.orphan_docs.v[j] == cid;
        if (has_docs) {
            finding(&k, RAG_CHECK_UNFIXED, CAT_REPAIR,
                    "documents of missing collection id %u kept (primary data): recover them by "
                    "hand", cid);
            continue;
        }
        purge_arg pa = {cid};
        if ((rc = rag_store_write(k.st, purge_fn, &pa)) == RAG_OK)
            finding(&k, RAG_CHECK_REPAIRED, CAT_REPAIR,
                    "removed the chunks, vectors and hashes of missing collection id %u", cid);
        else
            finding(&k, RAG_CHECK_UNFIXED, CAT_REPAIR, "cannot remove records of collection %u: %s",
                    cid, errtext(rc));
        rag_clear_error();
        rc = RAG_OK; /* reported; the other repairs go on */
    }
    scope_end(&k);
    for (size_t i = 0; i < n; i++)
        if (plans[i].rebuild_index || plans[i].store_fixes || plans[i].rebuild_lex)
            repair_collection(&k, &plans[i]);
cleanup:
    rag_txn_end(k.txn);
    rag_store_close(k.st);
    for (size_t i = 0; plans && i < n; i++)
        plan_free(&plans[i]);
    free(plans);
    free(ids);
    u64v_free(&kc.orphan_colls);
    u64v_free(&kc.orphan_docs);
    rag_strings_free(names, n);
    free(k.spec);
    free(k.embedder);
    scan_reset(&k);
    return rc;
}

/* ---- page damage -------------------------------------------------------------------------- */

static void page_damage(void *user, const char *table, uint64_t page, const char *reason)
{
    (void)page;
    finding(user, RAG_CHECK_PROBLEM, CAT_PAGES, "page damage in table '%s': %s",
            table[0] ? table : "(main)", reason);
}

/* Walks every page of data.mdb without LMDB (core/pagewalk.c) and reports the pages that
 * cannot be trusted, and a file shorter than its meta page says. *damaged is set when
 * anything was found; *truncated when LMDB must not map the file at all. */
static void page_pass(const char *dir, rag_check_report *r, int *damaged, int *unreadable)
{
    ck k;
    memset(&k, 0, sizeof k);
    k.r = r;
    k.dir = dir;
    char path[4096];
    snprintf(path, sizeof path, "%s/data.mdb", dir);
    scope_begin(&k, "", 0);
    rag_pagewalk_meta m;
    int rc = rag_pagewalk_meta_read(path, &m);
    if (rc != RAG_OK) {
        finding(&k, RAG_CHECK_PROBLEM, CAT_STORE, "%s", rag_errmsg());
        rag_clear_error();
        *unreadable = 1;
    }
    if (rc == RAG_OK || m.page_size) {
        rag_pagewalk_stats ps;
        if (rag_pagewalk(path, NULL, 1, NULL, page_damage, &k, &ps) != RAG_OK) {
            finding(&k, RAG_CHECK_PROBLEM, CAT_STORE, "%s", rag_errmsg());
            rag_clear_error();
        }
    }
    scope_end(&k);
    *damaged = r->counts[RAG_CHECK_PROBLEM] > 0;
}

/* The read-only pass through LMDB, run by rag_check_isolated; user is the secret. */
static int read_pass(const char *dir, void *user, rag_check_report *r)
{
    return check_pass(dir, user, 0, 0, r);
}

/* The whole read-only check: pages first, then LMDB's view in a checker process. A store
 * whose pages are damaged gets the reason the LMDB pass could not run as a problem instead
 * of an error. *damaged tells whether pages are damaged (the repair must not write then). */
static int check_all(const char *dir, char *secret, rag_check_report *r, int *damaged)
{
    int unreadable = 0, crashed = 0;
    page_pass(dir, r, damaged, &unreadable);
    if (unreadable)
        return RAG_OK; /* LMDB must not map it: a truncated file would fault */
    int rc = rag_check_isolated(dir, read_pass, secret, r, &crashed);
    if (crashed)
        *damaged = 1;
    if (rc != RAG_OK && *damaged) {
        char *msg = NULL;
        if (asprintf(&msg, "LMDB cannot read the store: %s", errtext(rc)) >= 0)
            rag_check_report_push(r, RAG_CHECK_PROBLEM, "", 0, 0, msg);
        r->counts[RAG_CHECK_PROBLEM]++;
        rag_clear_error();
        rc = RAG_OK;
    }
    return rc;
}

int rag_check(const char *dir, unsigned flags, int ef_construction, rag_check_report **out)
{
    return rag_check_keyed(dir, flags, ef_construction, NULL, NULL, out);
}

int rag_check_keyed(const char *dir, unsigned flags, int ef_construction, const char *store_key,
                    const char *store_key_file, rag_check_report **out)
{
    rag_clear_error();
    if (!out)
        return rag_fail(RAG_EINVAL, "rag_check: out is NULL");
    *out = NULL;
    if (!dir || !*dir)
        return rag_fail(RAG_EINVAL, "check: store directory is empty");
    int repair = (flags & RAG_CHECK_REPAIR) && 1;
    rag_lockfile *lock = NULL;
    char path[4096];
    struct stat sb;
    snprintf(path, sizeof path, "%s/data.mdb", dir);
    if (stat(path, &sb) != 0)
        return rag_fail(RAG_ENOTFOUND, "'%s' is not a ragcore store (no data.mdb)", dir);
    /* An encrypted store's key: given, from its file, else RAGCORE_STORE_KEY. */
    char *secret = NULL;
    int rc = rag_crypt_secret(store_key, store_key_file, "RAGCORE_STORE_KEY", &secret);
    if (rc != RAG_OK)
        return rc;
    /* A repair writes: it needs the store to itself for the whole check. */
    rc = repair ? rag_lockfile_acquire(dir, &lock, NULL) : RAG_OK;
    if (rc != RAG_OK) {
        rag_crypt_secret_free(secret);
        return rc;
    }
    rag_check_report *r = rag_check_report_new();
    if (!r) {
        rag_lockfile_release(lock, 0);
        rag_crypt_secret_free(secret);
        return RAG_ENOMEM;
    }
    int damaged = 0;
    rc = check_all(dir, secret, r, &damaged);
    if (rc == RAG_OK && repair && damaged) {
        /* LMDB writes through the same pages it reads: a repair in place would build on
         * damaged pages. The documents that can still be read are copied out instead. */
        char *msg = NULL;
        if (asprintf(&msg, "the store file's pages are damaged (see the problems above); a "
                     "repair does not write into a damaged file: copy every readable document "
                     "into a new store with 'ragcore check --db %s --salvage OUT' "
                     "(rag_salvage), which lists what is lost", dir) >= 0)
            rag_check_report_push(r, RAG_CHECK_UNFIXED, "", 0, 0, msg);
        r->counts[RAG_CHECK_UNFIXED]++;
    } else if (rc == RAG_OK && repair &&
               r->counts[RAG_CHECK_PROBLEM] + r->counts[RAG_CHECK_NOTE] > 0) {
        /* Repair from a fresh snapshot opened for writing, then verify. */
        rag_check_report *fix = rag_check_report_new(), *verify = NULL;
        if (!fix)
            rc = RAG_ENOMEM;
        if (rc == RAG_OK)
            rc = check_pass(dir, secret, 1, ef_construction, fix);
        for (size_t i = 0; fix && i < fix->n; i++) {
            if (fix->items[i].kind != RAG_CHECK_REPAIRED && fix->items[i].kind != RAG_CHECK_UNFIXED)
                continue;
            move_item(r, fix->items[i].kind, &fix->items[i]);
        }
        if (fix) {
            r->counts[RAG_CHECK_REPAIRED] += fix->counts[RAG_CHECK_REPAIRED];
            r->counts[RAG_CHECK_UNFIXED] += fix->counts[RAG_CHECK_UNFIXED];
        }
        rag_check_report_free(fix);
        int vdamaged = 0;
        if (rc == RAG_OK && (verify = rag_check_report_new()) &&
            (rc = check_all(dir, secret, verify, &vdamaged)) == RAG_OK) {
            for (size_t i = 0; i < verify->n; i++) {
                if (verify->items[i].kind != RAG_CHECK_PROBLEM)
                    continue;
                move_item(r, RAG_CHECK_UNFIXED, &verify->items[i]);
            }
            r->counts[RAG_CHECK_UNFIXED] += verify->counts[RAG_CHECK_PROBLEM];
        }
        rag_check_report_free(verify);
    }
    rag_lockfile_release(lock, 0);
    rag_crypt_secret_free(secret);
    if (rc != RAG_OK) {
        rag_check_report_free(r);
        return rc;
    }
    *out = r;
    return RAG_OK;
}
