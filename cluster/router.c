/* router.c - the router role (stateless): the HTTP API of a cluster. Writes are chunked and
 * embedded once, one log batch per shard, appended under a message id with retries
 * (exponential backoff with jitter; the broker drops duplicates) and answered with a write
 * token {shard: sequence}. Queries are embedded once and fanned out to one replica per shard
 * (queue groups; timeout, one retry to every replica of a silent shard); the dense lists are
 * merged by score, the BM25 lists by score, then fused (RRF or weighted) on the global
 * ranks, then selected as one store selects (rag_select: MMR, per-document cap, collapsing). */
#include "chttp.h"
#include "cluster.h"
#include "dedup.h"
#include "keys.h"
#include "port_file.h"
#include "ragcore.h"
#include "rpc.h"
#include "settings.h"
#include "vector_b64.h"

#include <getopt.h>
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#define MAX_EMBEDDERS 16

typedef struct router {
    cluster_config cfg;
    clog *log;
    cluster_keys *_Atomic keys;  /* API keys; set before the port file is written */
    unsigned char pii_key[64];   /* pii "hash"'s HMAC key (pii_key_file), the same on every */
    size_t pii_klen;             /* router; 0: none, pii "hash" refused */
    char name[128];
    pthread_mutex_t mu;          /* guards the embedders */
    struct {
        char key[300];
        rag_embedder *e;
    } emb[MAX_EMBEDDERS];
    size_t nemb;
    rag_toxicity *tox[4];        /* toxicity detectors by RAG_TOXICITY_* bits, loaded once;
                                  * guarded by mu */
    cdedup *dedup;               /* duplicate decisions across shards (dedup.h) */
    atomic_ullong writes, write_errors, publish_retries, searches, search_errors,
        shard_timeouts, shard_retries, behind, hedges, settings_conflicts;
} router;

/* ---- helpers ---------------------------------------------------------------------------- */

/* The embedder of a collection, created once per (name, dim) and shared. */
static rag_embedder *embedder_for(router *r, const cluster_coll *c, char *err, size_t errlen)
{
    char key[300];
    snprintf(key, sizeof key, "%s/%d", c->embedder, c->dim);
    rag_embedder *e = NULL;
    pthread_mutex_lock(&r->mu);
    for (size_t i = 0; i < r->nemb && !e; i++)
        if (!strcmp(r->emb[i].key, key))
            e = r->emb[i].e;
    if (!e && r->nemb < MAX_EMBEDDERS) {
        int rc = rag_embedder_create(c->embedder, c->dim, &e);
        if (rc == RAG_OK) {
            snprintf(r->emb[r->nemb].key, sizeof r->emb[r->nemb].key, "%s", key);
            r->emb[r->nemb++].e = e;
        } else {
            snprintf(err, errlen, "embedder '%s': %s", c->embedder, rag_errmsg());
        }
    }
    pthread_mutex_unlock(&r->mu);
    return e;
}

/* The toxicity detectors a collection's policy needs (NULL when it checks none), loaded once
 * and shared (a loaded detector is read-only). NULL with err set when they cannot be
 * loaded (not pulled on this machine). */
static const rag_toxicity *toxicity_for(router *r, const cluster_coll *c, int *status,
                                        char *err, size_t errlen)
{
    *status = 0;
    if (c->policy.toxicity == RAG_TOXICITY_OFF)
        return NULL;
    unsigned bits = c->policy.toxicity_detectors & RAG_TOXICITY_BOTH;
    bits = bits ? bits : RAG_TOXICITY_CLASSIFIER;
    pthread_mutex_lock(&r->mu);
    int rc = r->tox[bits] ? RAG_OK : rag_toxicity_open(bits, NULL, NULL, &r->tox[bits]);
    const rag_toxicity *t = r->tox[bits];
    pthread_mutex_unlock(&r->mu);
    if (rc != RAG_OK) {
        snprintf(err, errlen, "toxicity detectors of collection '%s': %s", c->name,
                 rag_errmsg());
        *status = 503;
    }
    return t;
}

/* Adds the counters of a shard's summary to the request's. */
static void summary_add(rag_ingest_summary *to, const rag_ingest_summary *s)
{
    to->seen += s->seen;
    to->documents += s->documents;
    to->quality_checked += s->quality_checked;
    to->filtered += s->filtered;
    to->filtered_too_short += s->filtered_too_short;
    to->filtered_too_long += s->filtered_too_long;
    to->filtered_symbols += s->filtered_symbols;
    to->pii_documents += s->pii_documents;
    to->pii_dropped += s->pii_dropped;
    for (int t = 0; t < RAG_PII_TYPES_MAX; t++)
        to->pii_found[t] += s->pii_found[t];
    to->toxicity_checked += s->toxicity_checked;
    to->toxicity_flagged += s->toxicity_flagged;
    to->toxicity_dropped += s->toxicity_dropped;
    to->toxicity_dropped_wordlist += s->toxicity_dropped_wordlist;
    to->toxicity_dropped_classifier += s->toxicity_dropped_classifier;
    to->dup_exact += s->dup_exact;
    to->dup_near += s->dup_near;
    to->dup_skipped += s->dup_skipped;
    to->dup_flagged += s->dup_flagged;
}

/* The hygiene part of a write's answer, as the single-node upsert reports it: not_stored,
 * pii_documents, pii_found by type and the counters by reason in "summary". */
static void summary_json(json_t *o, const rag_ingest_summary *s)
{
    json_t *found = json_object(), *sum = json_object();
    for (int t = 0; t < RAG_PII_NTYPES; t++)
        if (s->pii_found[t])
            json_object_set_new(found, rag_pii_type_name(t),
                                json_integer((json_int_t)s->pii_found[t]));
    const struct {
        const char *name;
        uint64_t v;
    } counts[] = {{"seen", s->seen}, {"documents", s->documents},
                  {"quality_checked", s->quality_checked}, {"filtered", s->filtered},
                  {"filtered_too_short", s->filtered_too_short},
                  {"filtered_too_long", s->filtered_too_long},
                  {"filtered_symbols", s->filtered_symbols}, {"pii_documents", s->pii_documents},
                  {"pii_dropped", s->pii_dropped}, {"toxicity_checked", s->toxicity_checked},
                  {"toxicity_flagged", s->toxicity_flagged},
                  {"toxicity_dropped", s->toxicity_dropped},
                  {"toxicity_dropped_wordlist", s->toxicity_dropped_wordlist},
                  {"toxicity_dropped_classifier", s->toxicity_dropped_classifier},
                  {"dup_exact", s->dup_exact}, {"dup_near", s->dup_near},
                  {"dup_skipped", s->dup_skipped}, {"dup_flagged", s->dup_flagged}};
    for (size_t i = 0; i < sizeof counts / sizeof counts[0]; i++)
        json_object_set_new(sum, counts[i].name, json_integer((json_int_t)counts[i].v));
    json_object_set_new(o, "not_stored",
                        json_integer((json_int_t)(s->filtered + s->pii_dropped +
                                                  s->dup_skipped + s->toxicity_dropped)));
    json_object_set_new(o, "duplicates", json_integer((json_int_t)(s->dup_exact + s->dup_near)));
    json_object_set_new(o, "pii_documents", json_integer((json_int_t)s->pii_documents));
    json_object_set_new(o, "pii_found", found);
    json_object_set_new(o, "summary", sum);
}

static void random_id(char *buf, size_t n)
{
    unsigned char b[12];
    if (getrandom(b, sizeof b, 0) != (ssize_t)sizeof b)
        for (size_t i = 0; i < sizeof b; i++)
            b[i] = (unsigned char)rand();
    size_t k = 0;
    for (size_t i = 0; i < sizeof b && k + 2 < n; i++)
        k += (size_t)snprintf(buf + k, n - k, "%02x", b[i]);
}

static int jitter_ms(int base)
{
    unsigned v = 0;
    if (getrandom(&v, sizeof v, 0) != (ssize_t)sizeof v)
        v = (unsigned)rand();
    return base > 0 ? (int)(v % (unsigned)base) : 0;
}

/* Appends with retries: attempt i waits 50 ms x 2^i plus up to as much again of jitter
 * before the next; the same message id makes a retry of an append that did land a
 * duplicate the broker drops (answering with the first append's sequence). */
static int append_retrying(router *r, const char *coll, int shard, const char *msg_id,
                           const void *data, size_t len, uint64_t *seq, char *err,
                           size_t errlen)
{
    for (int i = 0; i < r->cfg.publish_attempts; i++) {
        int dup = 0;
        if (clog_append(r->log, coll, shard, msg_id, data, len, r->cfg.publish_timeout_ms, seq,
                        &dup, err, errlen) == 0)
            return 0;
        if (i + 1 < r->cfg.publish_attempts) {
            atomic_fetch_add(&r->publish_retries, 1);
            int base = 50 << (i < 10 ? i : 10);
            cluster_sleep_ms(base + jitter_ms(base));
        }
    }
    return -1;
}

static int load_coll(router *r, const char *name, cluster_coll *c, chttp_reply *out)
{
    char err[512];
    int found = cluster_coll_load(r->log, name, c, err, sizeof err);
    if (found < 0)
        chttp_error(out, 503, "log_unavailable", "collection metadata: %s", err);
    else if (!found)
        chttp_error(out, 404, "not_found", "collection '%s' does not exist in the cluster",
                    name);
    return found == 1 ? 0 : -1;
}

/* ---- collections ------------------------------------------------------------------------ */

/* pii "hash" needs the cluster's HMAC key: 0, or -1 after a 400 naming the setting. */
static int pii_hash_possible(const router *r, int pii, chttp_reply *out)
{
    if (pii != RAG_PII_HASH || r->pii_klen)
        return 0;
    chttp_error(out, 400, "invalid_field", "settings: pii: \"hash\" needs the HMAC key every "
                "router shares: set pii_key_file in the cluster configuration");
    return -1;
}

/* PATCH /v1/collections/{c}: the settings given change (cluster_coll_patch); the next
 * write through any router reads the new value from the bucket. */
static void patch_collection(router *r, const char *name, json_t *body, chttp_reply *out)
{
    cluster_coll c;
    char err[512];
    int conflicts = 0;
    const char *pii = json_string_value(json_object_get(body, "pii"));
    if (pii && pii_hash_possible(r, strcmp(pii, "hash") ? RAG_PII_OFF : RAG_PII_HASH, out) < 0)
        return;
    int status = cluster_coll_patch(r->log, name, body, &c, &conflicts, err, sizeof err);
    atomic_fetch_add(&r->settings_conflicts, (unsigned long long)conflicts);
    if (status == 200)
        chttp_json(out, 200, cluster_coll_to_json(&c));
    else if (status < 500)
        chttp_error(out, status, status == 404 ? "not_found" : status == 409 ? "conflict"
                                                                              : "invalid_field",
                    "%s", err);
    else
        chttp_error(out, 503, "log_unavailable", "collection metadata: %s", err);
}

static void create_collection(router *r, json_t *body, chttp_reply *out)
{
    cluster_coll c;
    char err[512];
    if (cluster_coll_from_json(body, NULL, &c, err, sizeof err) < 0) {
        chttp_error(out, 400, "invalid", "%s", err);
        return;
    }
    if (pii_hash_possible(r, c.policy.pii, out) < 0)
        return;
    rag_embedder *e = embedder_for(r, &c, err, sizeof err);
    if (!e) {
        chttp_error(out, 400, "invalid", "%s", err);
        return;
    }
    c.dim = rag_embedder_dim(e);
    snprintf(c.embedder, sizeof c.embedder, "%s", rag_embedder_name(e));
    /* the logs first (with duplicate detection, its duplicate log, shard -1): a collection
     * whose metadata exists always has its logs */
    for (int s = c.policy.dedup != RAG_DEDUP_OFF ? -1 : 0; s < c.shards; s++)
        if (clog_ensure(r->log, c.name, s, r->cfg.stream_replicas, r->cfg.dedup_window_s, err,
                        sizeof err) < 0) {
            chttp_error(out, 503, "log_unavailable", "%s", err);
            return;
        }
    json_t *j = cluster_coll_to_json(&c);
    char *text = json_dumps(j, JSON_COMPACT | JSON_SORT_KEYS);
    int exists = 0;
    int rc = clog_meta_create(r->log, c.name, text, &exists, err, sizeof err);
    free(text);
    if (rc < 0) {
        json_decref(j);
        if (exists)
            chttp_error(out, 409, "exists", "collection '%s' already exists", c.name);
        else
            chttp_error(out, 503, "log_unavailable", "%s", err);
        return;
    }
    chttp_json(out, 201, j);
}

/* ---- writes ----------------------------------------------------------------------------- */

/* Reads one document of a request; strings borrowed from the JSON. */
static int doc_from_json(json_t *j, size_t i, const cluster_coll *c, rag_document *d,
                         char **meta_text, char *err, size_t errlen)
{
    rag_document_init(d);
    if (!json_is_object(j)) {
        snprintf(err, errlen, "documents[%zu] is not an object", i);
        return -1;
    }
    d->id = json_string_value(json_object_get(j, "id"));
    d->text = json_string_value(json_object_get(j, "text"));
    if (!d->id || !d->text) {
        snprintf(err, errlen, "documents[%zu]: \"id\" and \"text\" are required strings", i);
        return -1;
    }
    d->text_len = json_string_length(json_object_get(j, "text"));
    d->title = json_string_value(json_object_get(j, "title"));
    d->source = json_string_value(json_object_get(j, "source"));
    d->source_mtime = json_integer_value(json_object_get(j, "source_mtime"));
    d->valid_until = json_integer_value(json_object_get(j, "valid_until"));
    d->ttl_seconds = json_integer_value(json_object_get(j, "ttl_seconds"));
    if (!d->valid_until && !d->ttl_seconds)
        d->ttl_seconds = c->ttl_seconds; /* the collection's default TTL, made absolute */
    const char *fmt = json_string_value(json_object_get(j, "format"));
    d->format = fmt && !strcmp(fmt, "markdown") ? RAG_FORMAT_MARKDOWN : RAG_FORMAT_TEXT;
    json_t *m = json_object_get(j, "metadata");
    if (m && !json_is_null(m)) {
        if (!json_is_object(m)) {
            snprintf(err, errlen, "documents[%zu].metadata must be an object", i);
            return -1;
        }
        *meta_text = json_dumps(m, JSON_COMPACT);
        d->metadata_json = *meta_text;
    }
    return 0;
}

/* 503 log_unavailable with what was appended so far (token, stolen) and the request id to
 * send again. */
static void reply_unavailable(chttp_reply *out, const char *msg, json_t *token,
                              const char *request_id)
{
    chttp_json(out, 503, json_pack("{s:{s:s,s:s},s:o,s:s}", "error", "code", "log_unavailable",
                                   "message", msg, "write_token", token, "request_id",
                                   request_id));
}

/* The duplicate decision point of one batch (rag_log_dedup_fn): the collection's
 * duplicate log (dedup.h). A failure is kept in err for the answer (503). */
typedef struct decide_ctx {
    router *r;
    const cluster_coll *c;
    int failed;
    char err[512];
} decide_ctx;

static int decide(void *user, size_t n, const char *const *ids, const rag_dup_key *keys,
                  rag_dup_verdict *verdicts)
{
    decide_ctx *x = user;
    if (cdedup_decide(x->r->dedup, x->c, n, ids, keys, verdicts, x->err, sizeof x->err) == 0) {
        /* test hook: a router that dies between its claims and its append */
        const char *kill = getenv("RAGCORE_CLUSTER_TEST_KILL");
        if (kill && !strcmp(kill, "after_claim"))
            _exit(9);
        return RAG_OK;
    }
    x->failed = 1;
    return RAG_EIO;
}

/* Builds, encodes and appends one batch per shard that has operations; token receives
 * {shard: sequence}. docs NULL: the batch deletes del_id (and, with duplicate detection,
 * then releases its claims). */
static void write_batches(router *r, const cluster_coll *c, const rag_document *docs, size_t n,
                          const char *del_id, const char *request_id, chttp_reply *out)
{
    char err[1024];
    rag_embedder *e = docs ? embedder_for(r, c, err, sizeof err) : NULL;
    if (docs && !e) {
        chttp_error(out, 500, "embedder", "%s", err);
        return;
    }
    int tox_status = 0;
    const rag_toxicity *tox = docs ? toxicity_for(r, c, &tox_status, err, sizeof err) : NULL;
    if (tox_status) {
        chttp_error(out, tox_status, "toxicity_unavailable", "%s", err);
        return;
    }
    if (docs && c->policy.pii == RAG_PII_HASH && !r->pii_klen) {
        chttp_error(out, 503, "pii_key_missing", "collection '%s' hashes PII (pii \"hash\") "
                    "and this router's cluster configuration names no pii_key_file", c->name);
        return;
    }
    rag_document *mine = docs ? malloc((n ? n : 1) * sizeof *mine) : NULL;
    if (docs && !mine) {
        chttp_error(out, 500, "internal", "out of memory");
        return;
    }
    json_t *token = json_object();
    size_t chunks = 0;
    int64_t now = (int64_t)time(NULL);
    rag_ingest_summary total, part;
    rag_ingest_summary_init(&total);
    decide_ctx dc = {r, c, 0, ""};
    for (int s = 0; s < c->shards; s++) {
        rag_log_batch *b = NULL;
        int rc = rag_log_batch_create(e, c->chunk_tokens, c->chunk_overlap, now, &b);
        if (rc == RAG_OK && c->policy.dedup != RAG_DEDUP_OFF)
            rc = rag_log_batch_set_dedup(b, decide, &dc);
        if (rc == RAG_OK && r->pii_klen)
            rc = rag_log_batch_set_pii_key(b, r->pii_key, r->pii_klen);
        size_t nm = 0;
        for (size_t i = 0; docs && i < n; i++)
            if (cluster_shard_of(docs[i].id, c->shards) == s)
                mine[nm++] = docs[i];
        /* the collection's policy, by the core's own hygiene code (dropped documents
         * become deletes of their id) */
        if (rc == RAG_OK && nm) {
            rc = rag_log_batch_add_documents_policy(b, mine, nm, &c->policy, tox, &part);
            summary_add(&total, &part);
        }
        if (rc == RAG_OK && del_id && cluster_shard_of(del_id, c->shards) == s)
            rc = rag_log_batch_add_delete(b, del_id);
        if (rc != RAG_OK && dc.failed) {
            free(mine);
            reply_unavailable(out, dc.err, token, request_id);
            rag_log_batch_free(b);
            return;
        }
        if (rc != RAG_OK) {
            free(mine);
            int status = rc == RAG_EEMBED || rc == RAG_ENOMEM ? 500 : 400;
            chttp_error(out, status, status == 400 ? "invalid" : "internal", "%s",
                        rag_errmsg());
            rag_log_batch_free(b);
            json_decref(token);
            return;
        }
        if (rag_log_batch_ops(b) == 0) {
            rag_log_batch_free(b);
            continue;
        }
        chunks += rag_log_batch_chunks(b);
        void *bytes = NULL;
        size_t len = 0;
        rc = rag_log_batch_encode(b, &bytes, &len);
        rag_log_batch_free(b);
        char msg_id[256], key[16];
        snprintf(msg_id, sizeof msg_id, "%s/%d", request_id, s);
        uint64_t seq = 0;
        if (rc != RAG_OK ||
            append_retrying(r, c->name, s, msg_id, bytes, len, &seq, err, sizeof err) < 0) {
            rag_free(bytes);
            free(mine);
            atomic_fetch_add(&r->write_errors, 1);
            /* shards appended before stay appended: the token says which; repeating the
             * request with the same request_id appends the rest without duplicates */
            reply_unavailable(out, rc != RAG_OK ? rag_errmsg() : err, token, request_id);
            return;
        }
        rag_free(bytes);
        snprintf(key, sizeof key, "%d", s);
        json_object_set_new(token, key, json_integer((json_int_t)seq));
    }
    free(mine);
    /* a deleted canonical releases its keys (after the delete: a router that dies between
     * the two leaves a claim that the next copy finds absent and releases) */
    if (del_id && c->policy.dedup != RAG_DEDUP_OFF &&
        cdedup_release(r->dedup, c, del_id, err, sizeof err) < 0) {
        reply_unavailable(out, err, token, request_id);
        return;
    }
    atomic_fetch_add(&r->writes, 1);
    json_t *o = json_pack("{s:I,s:I,s:o,s:s}", "documents", (json_int_t)total.documents,
                          "chunks", (json_int_t)chunks, "write_token", token, "request_id",
                          request_id);
    if (o && docs)
        summary_json(o, &total);
    chttp_json(out, 200, o);
}

static void upsert(router *r, const char *coll, json_t *body, chttp_reply *out)
{
    cluster_coll c;
    if (load_coll(r, coll, &c, out) < 0)
        return;
    json_t *docs = json_object_get(body, "documents");
    if (!json_is_array(docs) || json_array_size(docs) == 0) {
        chttp_error(out, 400, "invalid", "\"documents\" must be a non-empty array");
        return;
    }
    size_t n = json_array_size(docs);
    rag_document *d = calloc(n, sizeof *d);
    char **metas = calloc(n, sizeof *metas);
    char err[512], rid[64];
    const char *request_id = json_string_value(json_object_get(body, "request_id"));
    if (!request_id) {
        random_id(rid, sizeof rid);
        request_id = rid;
    }
    int ok = d && metas;
    for (size_t i = 0; ok && i < n; i++)
        if (doc_from_json(json_array_get(docs, i), i, &c, &d[i], &metas[i], err, sizeof err) <
            0) {
            chttp_error(out, 400, "invalid", "%s", err);
            ok = 0;
        }
    if (ok)
        write_batches(r, &c, d, n, NULL, request_id, out);
    else if (!d || !metas)
        chttp_error(out, 500, "internal", "out of memory");
    for (size_t i = 0; metas && i < n; i++)
        free(metas[i]);
    free(metas);
    free(d);
}

/* ---- search ----------------------------------------------------------------------------- */

typedef struct merged {
    json_t *hit;                 /* borrowed from a shard reply */
    uint64_t chunk_id;
    int shard;
    float dense, lex;
    int drank, lrank;
    float score;
} merged;

static int cmp_side(const void *a, const void *b)
{
    const merged *x = a, *y = b;
    float sx = x->score, sy = y->score;
    if (sx != sy)
        return sx > sy ? -1 : 1;
    if (x->shard != y->shard)
        return x->shard < y->shard ? -1 : 1;
    return x->chunk_id < y->chunk_id ? -1 : x->chunk_id > y->chunk_id;
}

/* Every shard's list of one side, merged by score and cut to n. */
static merged *merge_side(json_t **replies, int shards, const char *side, size_t n,
                          size_t *count)
{
    size_t total = 0;
    for (int s = 0; s < shards; s++)
        total += json_array_size(json_object_get(replies[s], side));
    merged *m = calloc(total ? total : 1, sizeof *m);
    size_t k = 0;
    for (int s = 0; m && s < shards; s++) {
        json_t *list = json_object_get(replies[s], side);
        for (size_t i = 0; i < json_array_size(list); i++) {
            json_t *h = json_array_get(list, i);
            merged *x = &m[k++];
            x->hit = h;
            x->shard = s;
            x->chunk_id = (uint64_t)json_integer_value(json_object_get(h, "chunk_id"));
            x->score = (float)json_number_value(json_object_get(h, "score"));
        }
    }
    if (m)
        qsort(m, k, sizeof *m, cmp_side);
    *count = k < n ? k : n;
    return m;
}

/* RRF or weighted min-max fusion over the global ranks, as the library fuses one store's
 * two lists. */
static merged *fuse(merged *d, size_t nd, merged *l, size_t nl, const rag_search_options *o,
                    size_t *count)
{
    merged *f = calloc(nd + nl + 1, sizeof *f);
    size_t n = 0;
    float dmin = 0, dmax = 0, lmin = 0, lmax = 0;
    for (size_t i = 0; i < nd; i++) {
        dmin = i == 0 || d[i].score < dmin ? d[i].score : dmin;
        dmax = i == 0 || d[i].score > dmax ? d[i].score : dmax;
    }
    for (size_t i = 0; i < nl; i++) {
        lmin = i == 0 || l[i].score < lmin ? l[i].score : lmin;
        lmax = i == 0 || l[i].score > lmax ? l[i].score : lmax;
    }
    for (size_t i = 0; f && i < nd; i++) {
        f[n] = d[i];
        f[n].dense = d[i].score;
        f[n].drank = (int)i + 1;
        n++;
    }
    size_t ndense = n;
    for (size_t i = 0; f && i < nl; i++) {
        merged *x = NULL;
        for (size_t j = 0; j < ndense && !x; j++)
            if (f[j].shard == l[i].shard && f[j].chunk_id == l[i].chunk_id)
                x = &f[j];
        if (!x) {
            x = &f[n++];
            *x = l[i];
        }
        x->lex = l[i].score;
        x->lrank = (int)i + 1;
    }
    for (size_t i = 0; i < n; i++) {
        merged *x = &f[i];
        x->score = rag_fusion_score(o, (rag_fusion_side){x->dense, x->drank, dmin, dmax},
                                    (rag_fusion_side){x->lex, x->lrank, lmin, lmax});
    }
    if (f)
        qsort(f, n, sizeof *f, cmp_side);
    *count = n;
    return f;
}

/* The search options of a request by name, through the library's table (same names,
 * ranges and messages as a single store's server). */
static int read_options(json_t *body, rag_search_options *o, char *err, size_t errlen)
{
    rag_search_options_init(o);
    const char *key;
    json_t *v;
    json_object_foreach(body, key, v)
    {
        if (!strcmp(key, "query") || !strcmp(key, "write_token") || !strcmp(key, "idf") ||
            !strcmp(key, "hedge_ms") || json_is_null(v))
            continue;
        if (!strcmp(key, "k")) {
            if (!json_is_integer(v) || json_integer_value(v) < 1 ||
                json_integer_value(v) > 10000) {
                snprintf(err, errlen, "\"k\" must be an integer in 1..10000");
                return -1;
            }
            o->k = (int)json_integer_value(v);
            continue;
        }
        if (!rag_search_option_find(key)) {
            snprintf(err, errlen, "unknown field \"%s\"", key);
            return -1;
        }
        char num[64];
        const char *text = json_is_string(v) ? json_string_value(v) : num;
        if (json_is_integer(v))
            snprintf(num, sizeof num, "%lld", (long long)json_integer_value(v));
        else if (json_is_real(v))
            snprintf(num, sizeof num, "%.17g", json_real_value(v));
        else if (!json_is_string(v)) {
            snprintf(err, errlen, "\"%s\" must be a number or a string", key);
            return -1;
        }
        if (rag_search_option_set(o, key, text) != RAG_OK) {
            snprintf(err, errlen, "%s", rag_errmsg());
            return -1;
        }
    }
    if (o->k == 0)
        o->k = 10;
    return 0;
}

/* The router's own request fields: "idf" ("shard" | "exact") and "hedge_ms", defaulting to
 * the configuration's. */
static int read_router_options(const router *r, json_t *body, int *idf_exact, int *hedge_ms,
                               char *err, size_t errlen)
{
    json_t *idf = json_object_get(body, "idf"), *hedge = json_object_get(body, "hedge_ms");
    *idf_exact = r->cfg.idf_exact;
    *hedge_ms = r->cfg.hedge_ms;
    if (idf && !json_is_null(idf)) {
        const char *v = json_string_value(idf);
        if (!v || (strcmp(v, "shard") && strcmp(v, "exact"))) {
            snprintf(err, errlen, "\"idf\" must be \"shard\" or \"exact\", got %s%.64s%s",
                     v ? "\"" : "", v ? v : "a value that is not a string", v ? "\"" : "");
            return -1;
        }
        *idf_exact = !strcmp(v, "exact");
    }
    if (hedge && !json_is_null(hedge)) {
        if (!json_is_integer(hedge) || json_integer_value(hedge) < 0 ||
            json_integer_value(hedge) > 600000) {
            snprintf(err, errlen, "\"hedge_ms\" must be an integer in 0..600000 (milliseconds)");
            return -1;
        }
        *hedge_ms = (int)json_integer_value(hedge);
    }
    return 0;
}

static json_t *result_hit(const merged *x, int hybrid)
{
    json_t *h = json_deep_copy(x->hit);
    json_object_set_new(h, "score", json_real(x->score));
    json_object_set_new(h, "shard", json_integer(x->shard));
    if (hybrid) {
        json_object_set_new(h, "dense_score", x->drank ? json_real(x->dense) : json_null());
        json_object_set_new(h, "lexical_score", x->lrank ? json_real(x->lex) : json_null());
        json_object_set_new(h, "dense_rank", json_integer(x->drank));
        json_object_set_new(h, "lexical_rank", json_integer(x->lrank));
    }
    return h;
}

/* One request to every shard (its body `req` plus the shard's write-token sequence as
 * "min_seq"), hedged after hedge_ms and retried once, to every replica of the shard, for the
 * shards that did not answer; parsed[s] receives each reply and shard_info each shard's
 * sequence and replica. -1 when a shard failed: out then holds the 409 (behind the write
 * token) or 503 answer. */
static int ask_shards(router *r, const cluster_coll *c, json_t *req, json_t *token,
                      int hedge_ms, json_t **parsed, json_t *shard_info, chttp_reply *out)
{
    int S = c->shards, failed = 0, rc = -1;
    char **subjects = calloc((size_t)S, sizeof *subjects);
    char **hedges = calloc((size_t)S, sizeof *hedges);
    char **bodies = calloc((size_t)S, sizeof *bodies);
    size_t *lens = calloc((size_t)S, sizeof *lens), *rlens = calloc((size_t)S, sizeof *rlens);
    char **replies = calloc((size_t)S, sizeof *replies);
    int ok = subjects && hedges && bodies && lens && rlens && replies;
    for (int s = 0; ok && s < S; s++) {
        char key[16], subj[300];
        snprintf(key, sizeof key, "%d", s);
        json_object_set_new(req, "min_seq",
                            json_integer(json_integer_value(json_object_get(token, key))));
        snprintf(subj, sizeof subj, "rag.q.%s.%d", c->name, s);
        subjects[s] = strdup(subj);
        snprintf(subj, sizeof subj, "rag.qh.%s.%d", c->name, s);
        hedges[s] = strdup(subj);
        bodies[s] = json_dumps(req, JSON_COMPACT);
        lens[s] = bodies[s] ? strlen(bodies[s]) : 0;
        ok = subjects[s] && hedges[s] && bodies[s];
    }
    if (!ok) {
        chttp_error(out, 500, "internal", "out of memory");
        goto cleanup;
    }
    int timeout = r->cfg.query_timeout_ms;
    if (token)
        timeout += r->cfg.ryw_wait_ms;
    size_t nh = 0;
    size_t got = rpc_scatter_hedged(r->log, (size_t)S, (const char *const *)subjects,
                                    (const char *const *)hedges, (const char *const *)bodies,
                                    lens, timeout, hedge_ms, replies, rlens, &nh);
    if (got < (size_t)S) {
        /* One retry of the shards that did not answer, on their hedge subjects: every
         * replica of the shard gets it and the first answer wins. Through the queue group
         * again it would reach the replica that did not answer (hung, or partitioned with
         * its connection still open) as often as any other. */
        atomic_fetch_add(&r->shard_timeouts, (unsigned long long)S - got);
        atomic_fetch_add(&r->shard_retries, 1);
        got = rpc_scatter(r->log, (size_t)S, (const char *const *)hedges,
                          (const char *const *)bodies, lens, timeout, replies, rlens);
    }
    atomic_fetch_add(&r->hedges, (unsigned long long)nh);
    int behind = 0;
    for (int s = 0; s < S; s++) {
        char key[16];
        snprintf(key, sizeof key, "%d", s);
        parsed[s] = replies[s] ? json_loadb(replies[s], rlens[s], 0, NULL) : NULL;
        json_t *e = json_object_get(parsed[s], "error");
        int late = json_is_true(json_object_get(parsed[s], "behind"));
        if (!parsed[s] || e || late) {
            const char *why = !replies[s] ? "no replica answered in time"
                              : e         ? json_string_value(e)
                              : parsed[s] ? "behind the write token"
                                          : "unreadable reply";
            json_object_set_new(shard_info, key, json_pack("{s:s}", "error", why));
            if (late)
                atomic_fetch_add(&r->behind, 1);
            behind |= late;
            failed++;
            continue;
        }
        json_object_set_new(shard_info, key,
                            json_pack("{s:O,s:O}", "seq", json_object_get(parsed[s], "seq"),
                                      "replica", json_object_get(parsed[s], "replica")));
    }
    if (failed) {
        chttp_json(out, behind ? 409 : 503,
                   json_pack("{s:{s:s,s:s},s:O}", "error", "code",
                             behind ? "behind" : "shard_unavailable", "message",
                             behind ? "a replica has not applied the write token yet"
                                    : "a shard did not answer",
                             "shards", shard_info));
        goto cleanup;
    }
    rc = 0;
cleanup:
    for (int s = 0; s < S; s++) {
        if (subjects)
            free(subjects[s]);
        if (hedges)
            free(hedges[s]);
        if (bodies)
            free(bodies[s]);
        if (replies)
            free(replies[s]);
    }
    free(subjects);
    free(hedges);
    free(bodies);
    free(lens);
    free(rlens);
    free(replies);
    return rc;
}

/* Adds the integers of object `from` ({term: count}) into `into`, term by term. */
static void add_counts(json_t *into, json_t *from)
{
    const char *term;
    json_t *v;
    json_object_foreach(from, term, v)
    {
        json_int_t sum = json_integer_value(json_object_get(into, term));
        json_object_set_new(into, term, json_integer(sum + json_integer_value(v)));
    }
}

/* Exact-IDF mode: the shards' BM25 statistics for the query's terms, summed into the
 * collection's ({"chunks","total_len","df":{term:df}}, and "docs","doc_total_len",
 * "doc_df" when every shard sent them: a document lives on one shard, so the sums are the
 * collection's; a shard in the chunk-only lexical format sends none, and then the shards
 * score by chunk). */
static json_t *sum_bm25_stats(json_t **parsed, int shards)
{
    json_int_t chunks = 0, total = 0, docs = 0, doc_total = 0;
    json_t *df = json_object(), *doc_df = json_object();
    int by_doc = 1;
    for (int s = 0; s < shards; s++) {
        json_t *st = json_object_get(parsed[s], "bm25_stats");
        chunks += json_integer_value(json_object_get(st, "chunks"));
        total += json_integer_value(json_object_get(st, "total_len"));
        add_counts(df, json_object_get(st, "df"));
        by_doc &= json_is_object(json_object_get(st, "doc_df"));
        docs += json_integer_value(json_object_get(st, "docs"));
        doc_total += json_integer_value(json_object_get(st, "doc_total_len"));
        add_counts(doc_df, json_object_get(st, "doc_df"));
    }
    json_t *sum = json_pack("{s:I,s:I,s:o}", "chunks", chunks, "total_len", total, "df", df);
    if (!by_doc) {
        json_decref(doc_df);
        return sum;
    }
    json_object_set_new(sum, "docs", json_integer(docs));
    json_object_set_new(sum, "doc_total_len", json_integer(doc_total));
    json_object_set_new(sum, "doc_df", doc_df);
    return sum;
}

/* Recency weighting over the merged candidates, as one store weighs its own: score =
 * (1 - w) x relevance min-max normalised + w x 0.5^(age / half_life), then re-sorted. */
static void apply_recency(merged *l, size_t n, const rag_search_options *o, int64_t now)
{
    if (n == 0)
        return;
    float w = o->recency_weight > 0 ? o->recency_weight : 0.3f;
    float smin = l[0].score, smax = l[0].score;
    for (size_t i = 1; i < n; i++) {
        smin = l[i].score < smin ? l[i].score : smin;
        smax = l[i].score > smax ? l[i].score : smax;
    }
    for (size_t i = 0; i < n; i++) {
        int64_t mtime = json_integer_value(json_object_get(l[i].hit, "source_mtime"));
        int64_t t = o->time_basis == RAG_TIME_SOURCE && mtime > 0
                        ? mtime
                        : json_integer_value(json_object_get(l[i].hit, "ingested_at"));
        double age = (double)(now - t);
        if (age < 0)
            age = 0;
        float decay = (float)pow(0.5, age / (double)o->half_life);
        float rel = smax > smin ? (l[i].score - smin) / (smax - smin) : 1.0f;
        l[i].score = (1.0f - w) * rel + w * decay;
    }
    qsort(l, n, sizeof *l, cmp_side);
}

/* The merged candidates rag_select chooses from. */
typedef struct merged_src {
    const merged *l;
    int dim;
    char err[160];               /* why a candidate could not be described */
} merged_src;

/* rag_select's load callback: a merged hit's document, the key of its text (one store's
 * key for the same text) and, when asked, its vector as the replica sent it. */
static int merged_load(void *user, size_t i, rag_select_item *item, float *vec)
{
    merged_src *src = user;
    const json_t *h = src->l[i].hit;
    const char *text = json_string_value(json_object_get(h, "text"));
    item->doc_id = json_string_value(json_object_get(h, "doc_id"));
    item->text_key = rag_text_key(text, text ? strlen(text) : 0);
    if (vec) {
        const char *b64 = json_string_value(json_object_get(h, "vector"));
        if (!b64 || vector_b64_decode(b64, strlen(b64), vec, (size_t)src->dim)) {
            snprintf(src->err, sizeof src->err, "shard %d sent chunk %llu without its vector",
                     src->l[i].shard, (unsigned long long)src->l[i].chunk_id);
            return RAG_EINVAL;
        }
        item->has_vector = 1;
    }
    return RAG_OK;
}

static void search(router *r, const char *coll, json_t *body, chttp_reply *out)
{
    atomic_fetch_add(&r->searches, 1);
    cluster_coll c;
    if (load_coll(r, coll, &c, out) < 0)
        return;
    rag_search_options o;
    char err[1024];
    int idf_exact = 0, hedge_ms = 0;
    const char *query = json_string_value(json_object_get(body, "query"));
    if (!query) {
        chttp_error(out, 400, "invalid", "\"query\" is a required string");
        return;
    }
    if (read_options(body, &o, err, sizeof err) < 0 ||
        read_router_options(r, body, &idf_exact, &hedge_ms, err, sizeof err) < 0) {
        chttp_error(out, 400, "invalid", "%s", err);
        return;
    }
    int dense = o.mode != RAG_MODE_LEXICAL, lexical = o.mode != RAG_MODE_DENSE;
    int hybrid = dense && lexical;
    /* MMR and recency reorder the merged lists: the router shapes them as one store would
     * (per-document cap, duplicates, collapsing) from the candidates one store takes */
    int shaping = o.mmr_lambda > 0 || o.half_life > 0;
    /* candidates per side as one store takes them; one side alone asks each shard for k */
    int n_side = o.candidates > 0 ? o.candidates : (o.k * 4 > 100 ? o.k * 4 : 100);
    if (!hybrid && !shaping)
        n_side = o.k;
    else if (!hybrid && o.mmr_lambda <= 0 && o.per_doc <= 0 && o.candidates == 0)
        n_side = o.k + 8;
    if (n_side < o.k)
        n_side = o.k;
    int64_t now = o.now ? o.now : (int64_t)time(NULL);
    char *vec64 = NULL;
    if (dense) {
        rag_embedder *e = embedder_for(r, &c, err, sizeof err);
        float *v = e ? malloc((size_t)c.dim * sizeof *v) : NULL;
        if (!v || rag_embedder_embed(e, &query, NULL, 1, 1, v) != RAG_OK ||
            !(vec64 = vector_b64_encode(v, (size_t)c.dim))) {
            free(v);
            chttp_error(out, 500, "embedder", "query embedding failed: %s",
                        e ? rag_errmsg() : err);
            return;
        }
        free(v);
    }
    json_t *token = json_object_get(body, "write_token");
    int S = c.shards;
    json_t **parsed = calloc((size_t)S, sizeof *parsed);
    json_t *shard_info = json_object();
    json_t *req = json_pack("{s:s,s:i,s:I,s:i}", "query", query, "k", n_side, "now",
                            (json_int_t)now, "wait_ms", r->cfg.ryw_wait_ms);
    merged *dl = NULL, *ll = NULL, *f = NULL;
    size_t *order = NULL;
    if (!parsed) {
        chttp_error(out, 500, "internal", "out of memory");
        goto cleanup;
    }
    if (lexical && idf_exact) {
        /* one round first: every shard's statistics for the query's terms, summed */
        json_object_set_new(req, "bm25_stats_only", json_true());
        if (ask_shards(r, &c, req, token, hedge_ms, parsed, shard_info, out) < 0)
            goto failed;
        json_object_del(req, "bm25_stats_only");
        json_object_set_new(req, "bm25_stats", sum_bm25_stats(parsed, S));
        for (int s = 0; s < S; s++) {
            json_decref(parsed[s]);
            parsed[s] = NULL;
        }
    }
    json_t *sides = json_array();
    if (dense)
        json_array_append_new(sides, json_string("dense"));
    if (lexical)
        json_array_append_new(sides, json_string("lexical"));
    json_object_set_new(req, "sides", sides);
    json_object_set_new(req, "lexical_unit", json_string(o.lexical_unit == RAG_LEXICAL_CHUNK
                                                             ? "chunk"
                                                             : "document"));
    if (vec64)
        json_object_set_new(req, "vector", json_string(vec64));
    if (o.filter)
        json_object_set_new(req, "filter", json_string(o.filter));
    if (shaping) /* the router collapses and caps the merged lists itself */
        json_object_set_new(req, "collapse_threshold", json_real(2));
    else if (o.collapse_threshold > 0)
        json_object_set_new(req, "collapse_threshold", json_real(o.collapse_threshold));
    if (!hybrid && !shaping && o.per_doc > 0) /* a document lives on one shard */
        json_object_set_new(req, "per_doc", json_integer(o.per_doc));
    if (shaping && (o.mmr_lambda > 0 || o.collapse_threshold <= 1.0f))
        json_object_set_new(req, "vectors", json_true());
    if (o.max_age > 0)
        json_object_set_new(req, "max_age", json_integer(o.max_age));
    if (ask_shards(r, &c, req, token, hedge_ms, parsed, shard_info, out) < 0)
        goto failed;
    size_t nd = 0, nl = 0, nf = 0;
    dl = dense ? merge_side(parsed, S, "dense", (size_t)n_side, &nd) : NULL;
    ll = lexical ? merge_side(parsed, S, "lexical", (size_t)n_side, &nl) : NULL;
    f = hybrid ? fuse(dl, nd, ll, nl, &o, &nf) : NULL;
    merged *list = hybrid ? f : dense ? dl : ll;
    size_t nlist = hybrid ? nf : dense ? nd : nl;
    if (shaping && o.half_life > 0)
        apply_recency(list, nlist, &o, now);
    /* Selected as one store selects (rag_select). Without MMR or recency the shards have
     * collapsed near-duplicates (and, for one side, capped documents) already: the router
     * still skips equal texts and caps documents over the merged list. */
    rag_search_options so = o;
    if (!shaping)
        so.collapse_threshold = 2;
    merged_src src = {list, c.dim, ""};
    float *scores = malloc((nlist + 1) * sizeof *scores);
    order = malloc((nlist + 1) * sizeof *order);
    size_t n = 0;
    for (size_t i = 0; scores && i < nlist; i++)
        scores[i] = list[i].score;
    int rc = !scores || !order ? RAG_ENOMEM
                               : rag_select(&so, scores, nlist, c.dim, merged_load, &src, order, &n);
    free(scores);
    if (rc != RAG_OK) {
        chttp_error(out, 500, "internal", "result selection failed: %s",
                    *src.err ? src.err : rag_errmsg());
        goto failed;
    }
    json_t *hits = json_array();
    for (size_t i = 0; i < n; i++)
        json_array_append_new(hits, result_hit(&list[order[i]], hybrid));
    chttp_json(out, 200, json_pack("{s:o,s:O}", "hits", hits, "shards", shard_info));
    goto cleanup;
failed:
    atomic_fetch_add(&r->search_errors, 1);
cleanup:
    for (int s = 0; parsed && s < S; s++)
        json_decref(parsed[s]);
    free(parsed);
    free(order);
    free(dl);
    free(ll);
    free(f);
    free(vec64);
    json_decref(req);
    json_decref(shard_info);
}

/* ---- status ----------------------------------------------------------------------------- */

/* Every replica's stores (sequences, lag, digests), gathered for 500 ms, and each
 * collection's logs, compared: replicas at equal sequences must have equal digests. */
json_t *cluster_gather_status(clog *l, int wait_ms)
{
    char **replies = NULL, err[512];
    size_t n = rpc_broadcast(l, "rag.status", "{}", wait_ms, 1024, &replies);
    json_t *reps = json_array();
    for (size_t i = 0; i < n; i++) {
        json_t *j = json_loads(replies[i], 0, NULL);
        if (j)
            json_array_append_new(reps, j);
        free(replies[i]);
    }
    free(replies);
    json_t *colls = json_object();
    char **keys = NULL;
    size_t nk = 0;
    int meta_ok = clog_meta_keys(l, &keys, &nk, err, sizeof err) == 0;
    for (size_t i = 0; i < nk; i++) {
        cluster_coll c;
        if (cluster_coll_load(l, keys[i], &c, err, sizeof err) == 1) {
            json_t *shards = json_array();
            for (int s = 0; s < c.shards; s++) {
                uint64_t last = 0;
                int ok = clog_last(l, c.name, s, &last, err, sizeof err) == 0;
                json_t *sh = json_pack("{s:i,s:o,s:o}", "shard", s, "log_last",
                                       ok ? json_integer((json_int_t)last) : json_null(),
                                       "replicas", json_array());
                /* replicas of the shard; digests at equal positions must agree */
                json_t *digests = json_object();
                int diverged = 0;
                size_t ri;
                json_t *rep;
                json_array_foreach(reps, ri, rep)
                {
                    size_t si;
                    json_t *st;
                    json_array_foreach(json_object_get(rep, "stores"), si, st)
                    {
                        if (strcmp(json_string_value(json_object_get(st, "collection")),
                                   c.name) ||
                            json_integer_value(json_object_get(st, "shard")) != s)
                            continue;
                        json_array_append(json_object_get(sh, "replicas"), st);
                        json_t *d = json_object_get(st, "digest");
                        char key[32];
                        snprintf(key, sizeof key, "%lld",
                                 (long long)json_integer_value(json_object_get(d, "seq")));
                        const char *hash = json_string_value(json_object_get(d, "hash"));
                        json_t *prev = json_object_get(digests, key);
                        if (hash && prev && strcmp(json_string_value(prev), hash))
                            diverged = 1;
                        else if (hash && !prev)
                            json_object_set_new(digests, key, json_string(hash));
                    }
                }
                json_decref(digests);
                json_object_set_new(sh, "diverged", json_boolean(diverged));
                json_array_append_new(shards, sh);
            }
            json_object_set_new(colls, c.name,
                                json_pack("{s:o,s:o}", "meta", cluster_coll_to_json(&c),
                                          "shards", shards));
        }
        free(keys[i]);
    }
    free(keys);
    return json_pack("{s:b,s:o,s:o}", "metadata_reachable", meta_ok, "collections", colls,
                     "replicas", reps);
}

/* ---- HTTP ------------------------------------------------------------------------------- */

static void metrics(router *r, chttp_reply *out)
{
    char *b = malloc(4096);
    if (!b) {
        chttp_error(out, 500, "internal", "out of memory");
        return;
    }
    snprintf(b, 4096,
             "# TYPE ragcore_cluster_router_writes_total counter\n"
             "ragcore_cluster_router_writes_total %llu\n"
             "ragcore_cluster_router_write_errors_total %llu\n"
             "ragcore_cluster_router_publish_retries_total %llu\n"
             "ragcore_cluster_router_searches_total %llu\n"
             "ragcore_cluster_router_search_errors_total %llu\n"
             "ragcore_cluster_router_shard_timeouts_total %llu\n"
             "ragcore_cluster_router_shard_retries_total %llu\n"
             "ragcore_cluster_router_behind_total %llu\n"
             "ragcore_cluster_router_hedges_total %llu\n"
             "ragcore_cluster_router_settings_conflicts_total %llu\n"
             "ragcore_cluster_router_broker_connected %d\n"
             "# HELP ragcore_rate_limited_total Requests refused (429) by a per-key budget.\n"
             "# TYPE ragcore_rate_limited_total counter\n"
             "ragcore_rate_limited_total{budget=\"requests\"} %llu\n",
             atomic_load(&r->writes), atomic_load(&r->write_errors),
             atomic_load(&r->publish_retries), atomic_load(&r->searches),
             atomic_load(&r->search_errors), atomic_load(&r->shard_timeouts),
             atomic_load(&r->shard_retries), atomic_load(&r->behind),
             atomic_load(&r->hedges), atomic_load(&r->settings_conflicts),
             clog_connected(r->log), cluster_keys_rate_limited(atomic_load(&r->keys)));
    out->status = 200;
    out->body = b;
    out->ctype = "text/plain; version=0.0.4";
}

/* /v1/collections/{c}[/rest]: copies c into coll and returns rest ("" when none). */
static const char *split_coll(const char *path, char *coll, size_t n)
{
    const char *p = path + strlen("/v1/collections/");
    const char *slash = strchr(p, '/');
    size_t len = slash ? (size_t)(slash - p) : strlen(p);
    snprintf(coll, n, "%.*s", (int)(len < n ? len : n - 1), p);
    return slash ? slash : "";
}

/* The scope a route needs and the collection it names (coll "" when none): 1, or 0 for
 * a route the router does not serve. Creating a collection with settings needs admin, as
 * on the single server. */
static int route_scope(const char *method, const char *path, json_t *body, unsigned *scope,
                       char *coll, size_t n)
{
    int get = !strcmp(method, "GET"), post = !strcmp(method, "POST");
    coll[0] = '\0';
    *scope = SCOPE_READ;
    if (!strcmp(path, "/metrics") || !strcmp(path, "/v1/cluster/status")) {
        *scope = SCOPE_METRICS;
        return get;
    }
    if (!strcmp(path, "/v1/keys") || !strncmp(path, "/v1/keys/", 9)) {
        *scope = SCOPE_ADMIN;
        return 1;
    }
    if (!strcmp(path, "/v1/collections") && post) {
        const char *name = json_string_value(json_object_get(body, "name"));
        snprintf(coll, n, "%s", name ? name : "");
        *scope = json_object_get(body, "settings") ? SCOPE_ADMIN : SCOPE_WRITE;
        return 1;
    }
    if (strncmp(path, "/v1/collections/", 16))
        return 0;
    const char *rest = split_coll(path, coll, n);
    if (!strcmp(rest, "") && (get || !strcmp(method, "PATCH")))
        *scope = get ? SCOPE_READ : SCOPE_ADMIN;
    else if ((!strcmp(rest, "/documents") && post) ||
             (!strncmp(rest, "/documents/", 11) && !strcmp(method, "DELETE")))
        *scope = SCOPE_WRITE;
    else if (!strcmp(rest, "/search") && post)
        *scope = SCOPE_READ;
    else
        return 0;
    return 1;
}

static void on_http(void *user, const char *method, const char *path, const char *api_key,
                    const char *body, size_t len, chttp_reply *out)
{
    router *r = user;
    int post = !strcmp(method, "POST"), patch = !strcmp(method, "PATCH");
    json_t *j = post || patch ? json_loadb(body, len, 0, NULL) : NULL;
    cluster_keys *keys = atomic_load(&r->keys);
    unsigned scope;
    char coll[129];
    if (!strcmp(path, "/healthz")) { /* open, for load balancers: 200 only when it serves */
        int connected = clog_connected(r->log);
        chttp_json(out, connected && keys ? 200 : 503,
                   json_pack("{s:s,s:s}", "status",
                             !connected ? "broker_unreachable" : keys ? "ok" : "starting",
                             "role", "router"));
    } else if (!route_scope(method, path, j, &scope, coll, sizeof coll)) {
        chttp_error(out, 404, "not_found", "no route %s %s", method, path);
    } else if (!keys) {
        chttp_error(out, 503, "starting", "the router is loading its API keys");
    } else if (cluster_authorize(keys, api_key, scope, coll[0] ? coll : NULL, out) < 0) {
        /* 401 or 403 set */
    } else if ((post || patch) && !json_is_object(j)) {
        chttp_error(out, 400, "invalid", "the request body must be a JSON object");
    } else if (!strcmp(path, "/metrics")) {
        metrics(r, out);
    } else if (!strcmp(path, "/v1/cluster/status")) {
        chttp_json(out, 200, cluster_gather_status(r->log, 500));
    } else if (cluster_keys_route(keys, method, path, j, out)) {
        /* a key route answered */
    } else if (!strcmp(path, "/v1/collections") && post) {
        create_collection(r, j, out);
    } else {
        const char *rest = split_coll(path, coll, sizeof coll);
        cluster_coll c;
        if (!strcmp(rest, "") && !strcmp(method, "GET")) {
            if (load_coll(r, coll, &c, out) == 0)
                chttp_json(out, 200, cluster_coll_to_json(&c));
        } else if (!strcmp(rest, "") && patch) {
            patch_collection(r, coll, j, out);
        } else if (!strcmp(rest, "/documents") && post) {
            upsert(r, coll, j, out);
        } else if (!strcmp(rest, "/search") && post) {
            search(r, coll, j, out);
        } else if (!strncmp(rest, "/documents/", 11) && !strcmp(method, "DELETE")) {
            char rid[64];
            random_id(rid, sizeof rid);
            if (load_coll(r, coll, &c, out) == 0)
                write_batches(r, &c, NULL, 0, rest + 11, rid, out);
        } else {
            chttp_error(out, 404, "not_found", "no route %s %s", method, path);
        }
    }
    json_decref(j);
}

int cluster_router_main(int argc, char **argv)
{
    static router r;
    const char *config = NULL, *listen = "127.0.0.1:8080", *port_file = NULL;
    int threads = 8;
    static const struct option opts[] = {{"config", 1, 0, 'c'},    {"listen", 1, 0, 'l'},
                                         {"name", 1, 0, 'n'},      {"port-file", 1, 0, 'p'},
                                         {"threads", 1, 0, 't'},   {"help", 0, 0, 'h'},
                                         {0, 0, 0, 0}};
    int c;
    snprintf(r.name, sizeof r.name, "router-%d", (int)getpid());
    while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (c) {
        case 'c': config = optarg; break;
        case 'l': listen = optarg; break;
        case 'n': snprintf(r.name, sizeof r.name, "%s", optarg); break;
        case 'p': port_file = optarg; break;
        case 't': threads = atoi(optarg); break;
        case 'h':
        default:
            fprintf(c == 'h' ? stdout : stderr,
                    "usage: ragcore-server cluster router --config FILE [--listen HOST:PORT]\n"
                    "         [--name NAME] [--port-file FILE] [--threads N]\n");
            return c == 'h' ? 0 : 1;
        }
    }
    if (!config) {
        fprintf(stderr, "ragcore-server cluster router: --config FILE is required\n");
        return 1;
    }
    pthread_mutex_init(&r.mu, NULL);
    if (!(r.dedup = cdedup_create(&r.log, &r.cfg))) {
        fprintf(stderr, "router %s: out of memory\n", r.name);
        return 2;
    }
    chttp *http = NULL;
    char err[1024];
    cluster_keys *keys = NULL;
    /* the port file is written once the keys are loaded (503 "starting" before) */
    int code = cluster_role_start("router", config, &r.cfg, r.name, &r.log, listen, threads,
                                  on_http, &r, NULL, &http);
    if (code == 0 && cluster_keys_open(r.log, &r.cfg, &keys, err, sizeof err) < 0) {
        fprintf(stderr, "ragcore-server cluster router: %s\n", err);
        code = 1;
    }
    atomic_store(&r.keys, keys);
    if (code == 0 && r.cfg.pii_key_file &&
        cluster_pii_key_load(r.cfg.pii_key_file, r.pii_key, sizeof r.pii_key, &r.pii_klen, err,
                             sizeof err) < 0) {
        fprintf(stderr, "ragcore-server cluster router: %s\n", err);
        code = 1;
    }
    if (code != 0)
        goto done;
    if (port_file && port_file_write(port_file, chttp_port(http)) < 0)
        fprintf(stderr, "ragcore-server cluster router: cannot write %s\n", port_file);
    while (!cluster_stopping())
        cluster_sleep_ms(200);
done:
    chttp_stop(http);
    cdedup_free(r.dedup);
    cluster_keys_close(keys);
    clog_close(r.log);
    for (size_t i = 0; i < r.nemb; i++)
        rag_embedder_free(r.emb[i].e);
    for (size_t i = 0; i < sizeof r.tox / sizeof r.tox[0]; i++)
        rag_toxicity_close(r.tox[i]);
    cluster_config_free(&r.cfg);
    memset(r.pii_key, 0, sizeof r.pii_key);
    fprintf(stderr, "router %s: stopped\n", r.name);
    return code;
}
