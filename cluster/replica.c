/* replica.c - the replica role: one store per (collection, shard) it hosts, each written only
 * by its applier (an ordered reader from the store's log position + 1 that applies every
 * batch in one transaction with its sequence, exactly +1), queries of the shard served in a
 * queue group it leaves while it lags, health and metrics with the apply lag per shard. */
#include "chttp.h"
#include "cluster.h"
#include "ragcore.h"
#include "replica.h"
#include "rpc.h"
#include "vector_b64.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <getopt.h>
#include <math.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#define MAX_STORES 256

typedef struct replica replica;

/* A backup of one of its stores that this replica made for a new replica (bootstrap, below):
 * made by its own thread, listed when ready, removed when the new replica says it is done or
 * when nobody asked about it for backup_idle_ms (a new replica that gave up or died). */
typedef struct backup_job {
    int used;
    char id[64];
    char token[200];             /* the asking replica's name for its request */
    struct shard_store *s;
    uint64_t seq;                /* the store's position when the backup began */
    enum { BK_MAKING, BK_READY, BK_FAILED } state;
    char error[600];
    double touched;              /* cluster_now_ms() of the last question about it */
    double started;              /* cluster_now_ms() when it began */
    int done;                    /* the new replica has it all, or gave up on it */
    double abandoned;            /* cluster_now_ms() when it was done while still being
                                  * made (the new replica waited longer than its
                                  * RAGCORE_CLUSTER_BACKUP_WAIT_S); 0 when not */
    pthread_t thread;
} backup_job;

#define MAX_BACKUPS 8

typedef struct shard_store {
    replica *r;
    cluster_coll meta;
    int shard;
    char dir[4096];              /* the store's directory */
    rag_db *db;                  /* read under dblock; replaced (a bootstrap while running)
                                  * under its write lock; NULL while being replaced */
    pthread_rwlock_t dblock;
    pthread_t applier;
    pthread_mutex_t mu;
    pthread_cond_t applied;      /* broadcast after each batch */
    uint64_t pos;                /* applied position (mu) */
    uint64_t last;               /* the log's last sequence as last seen (mu) */
    int log_ok;                  /* the log answered recently (mu) */
    char last_error[1024];       /* (mu) */
    atomic_ullong applied_total, apply_errors, queries, behind;
    rpc_sub *qsub;               /* member of the shard's queue group when not NULL */
    rpc_sub *bsub;               /* serves backups of the shard to new replicas */
    rpc_sub *hsub;               /* with it, the shard's hedge subject (no queue group) */
} shard_store;

struct replica {
    cluster_config cfg;
    clog *log;
    char name[128];
    char data[2048];
    int shards[CLUSTER_MAX_SHARDS];
    size_t nshards;
    pthread_mutex_t mu;          /* guards stores[] and n */
    shard_store *stores[MAX_STORES];
    size_t n;
    rpc_sub *status_sub;
    rpc_sub *peer_sub;           /* rag.peer.<name>: parts of the backups it made */
    atomic_uint backups;         /* backups made, for their names */
    pthread_mutex_t bk_mu;       /* guards jobs[] */
    pthread_cond_t bk_cv;        /* a job finished */
    backup_job jobs[MAX_BACKUPS];
    double backup_idle_ms;
    double backup_wait_ms;       /* how long its own bootstrap waits for a peer's backup */
    atomic_uint asks;            /* its own backup requests, for their tokens */
    /* Test hook: the drop_nth[op]-th request of op ("start", "get") gets no answer (the work
     * is done, the reply withheld), as if NATS had lost it. */
    long drop_nth[2];
    atomic_long answered[2];
    /* Test hook: the first backup this replica makes stays "making" for slow_s seconds before
     * it begins (a hung or very slow disk), or (fail) fails. */
    int test_backup_slow_s, test_backup_fail;
    atomic_int test_backup_used;
    /* Test hook (tests/test_cluster*.sh): the process dies at kill_point of the batch after
     * one of its stores has applied kill_after - 1 batches, as kill -9 would kill it there. */
    enum { KILL_NONE, KILL_BEFORE_COMMIT, KILL_AFTER_COMMIT } kill_point;
    long kill_after;
};

static void store_subject(const shard_store *s, char *buf, size_t n)
{
    snprintf(buf, n, "rag.q.%s.%d", s->meta.name, s->shard);
}

/* ---- queries ---------------------------------------------------------------------------- */

static json_t *hit_json(const rag_hit *h)
{
    json_t *meta = json_loads(h->metadata_json, 0, NULL);
    return json_pack("{s:I,s:f,s:s,s:s,s:s,s:s,s:s,s:o,s:I,s:I,s:i,s:I,s:I,s:I,s:I}",
                     "chunk_id", (json_int_t)h->chunk_id, "score", (double)h->score, "doc_id",
                     h->doc_id, "text", h->text, "title", h->title, "source", h->source,
                     "heading_path", h->heading_path, "metadata", meta ? meta : json_object(),
                     "start", (json_int_t)h->start, "end", (json_int_t)h->end, "token_count",
                     h->token_count, "source_mtime", (json_int_t)h->source_mtime,
                     "ingested_at", (json_int_t)h->ingested_at, "updated_at",
                     (json_int_t)h->updated_at, "valid_until", (json_int_t)h->valid_until);
}

/* The collection-wide BM25 statistics a router sends ({"chunks","total_len","df":{term:
 * df}}, and when every shard has them "docs","doc_total_len","doc_df":{term:df}) as a
 * rag_bm25_stats borrowing the JSON's strings; terms, df and doc_df sized by the caller to
 * the "df" object's size. Without "doc_df" the statistics have no document fields. */
static void bm25_from_json(json_t *j, rag_bm25_stats *st, const char **terms, uint64_t *df,
                           uint64_t *doc_df)
{
    const char *term;
    json_t *v, *dd = json_object_get(j, "doc_df");
    memset(st, 0, sizeof *st);
    st->chunks = (uint64_t)json_integer_value(json_object_get(j, "chunks"));
    st->total_len = (uint64_t)json_integer_value(json_object_get(j, "total_len"));
    st->terms = terms;
    st->df = df;
    if (json_is_object(dd)) {
        st->docs = (uint64_t)json_integer_value(json_object_get(j, "docs"));
        st->doc_total_len = (uint64_t)json_integer_value(json_object_get(j, "doc_total_len"));
        st->doc_df = doc_df;
    }
    json_object_foreach(json_object_get(j, "df"), term, v)
    {
        terms[st->n_terms] = term;
        doc_df[st->n_terms] = (uint64_t)json_integer_value(json_object_get(dd, term));
        df[st->n_terms++] = (uint64_t)json_integer_value(v);
    }
}

/* Adds each hit's stored vector ("vector", base64 float32) for a router that diversifies
 * (MMR) the merged lists. */
static int add_vectors(shard_store *s, json_t *list, char *err, size_t errlen)
{
    float *v = malloc((size_t)s->meta.dim * sizeof *v);
    size_t i;
    json_t *h;
    int rc = v ? RAG_OK : RAG_ENOMEM;
    json_array_foreach(list, i, h)
    {
        char *b64 = NULL;
        if (rc == RAG_OK)
            rc = rag_chunk_vector(s->db, s->meta.name,
                                  (uint64_t)json_integer_value(json_object_get(h, "chunk_id")),
                                  v, s->meta.dim);
        if (rc == RAG_OK && !(b64 = vector_b64_encode(v, (size_t)s->meta.dim)))
            rc = RAG_ENOMEM;
        if (rc == RAG_OK)
            json_object_set_new(h, "vector", json_string(b64));
        free(b64);
    }
    if (rc != RAG_OK)
        snprintf(err, errlen, "hit vectors: %s: %s", rag_strerror(rc), rag_errmsg());
    free(v);
    return rc;
}

static int side_search(shard_store *s, json_t *req, int lexical, const float *vec,
                       json_t **list, char *err, size_t errlen)
{
    rag_search_options so;
    rag_search_options_init(&so);
    json_t *bj = json_object_get(req, "bm25_stats");
    size_t nt = json_object_size(json_object_get(bj, "df"));
    const char **terms = calloc(nt + 1, sizeof *terms);
    uint64_t *df = calloc(2 * (nt + 1), sizeof *df);
    const char *unit = json_string_value(json_object_get(req, "lexical_unit"));
    rag_bm25_stats given;
    if (!terms || !df) {
        free(terms);
        free(df);
        snprintf(err, errlen, "out of memory");
        return RAG_ENOMEM;
    }
    /* the unit the request asks for (absent: the default, by document) */
    if (unit && rag_search_option_set(&so, "lexical_unit", unit) != RAG_OK) {
        free(terms);
        free(df);
        snprintf(err, errlen, "%s", rag_errmsg());
        return RAG_EINVAL;
    }
    if (lexical && json_is_object(bj)) {
        bm25_from_json(bj, &given, terms, df, df + nt + 1);
        so.bm25_stats = &given;
    }
    so.collection = s->meta.name;
    so.mode = lexical ? RAG_MODE_LEXICAL : RAG_MODE_DENSE;
    so.k = (int)json_integer_value(json_object_get(req, "k"));
    so.filter = json_string_value(json_object_get(req, "filter"));
    so.per_doc = (int)json_integer_value(json_object_get(req, "per_doc"));
    so.now = json_integer_value(json_object_get(req, "now"));
    so.max_age = json_integer_value(json_object_get(req, "max_age"));
    json_t *ct = json_object_get(req, "collapse_threshold");
    double ctv = json_number_value(ct);
    if (ct && !(json_is_number(ct) && ctv >= 0 && ctv <= 2)) { /* the option's range */
        free(terms);
        free(df);
        snprintf(err, errlen, "collapse_threshold: a number in 0..2 expected");
        return RAG_EINVAL;
    }
    if (ct)
        so.collapse_threshold = (float)ctv;
    so.dense_threshold = so.lexical_threshold = -1;
    rag_results *res = NULL;
    const char *q = json_string_value(json_object_get(req, "query"));
    int rc = lexical ? rag_search(s->db, q ? q : "", &so, &res)
                     : rag_search_vector(s->db, vec, s->meta.dim, &so, &res);
    free(terms);
    free(df);
    if (rc != RAG_OK) {
        snprintf(err, errlen, "%s: %s", rag_strerror(rc), rag_errmsg());
        return rc;
    }
    *list = json_array();
    for (size_t i = 0; i < rag_results_count(res); i++)
        json_array_append_new(*list, hit_json(rag_results_get(res, i)));
    rag_results_free(res);
    if (json_is_true(json_object_get(req, "vectors")) &&
        (rc = add_vectors(s, *list, err, errlen)) != RAG_OK) {
        json_decref(*list);
        *list = NULL;
    }
    return rc;
}

/* {term: count} of the query's terms in st, counts[i] for st->terms[i]. */
static json_t *term_counts(const rag_bm25_stats *st, const uint64_t *counts)
{
    json_t *o = json_object();
    for (size_t i = 0; i < st->n_terms; i++)
        json_object_set_new(o, st->terms[i], json_integer((json_int_t)counts[i]));
    return o;
}

/* A statistics request of exact-IDF mode: {"chunks","total_len","df":{term:df}} of the
 * query's terms in this shard's store, with "docs","doc_total_len","doc_df":{term:df}
 * unless the collection is in the chunk-only lexical format, for the router to sum over
 * the shards. */
static int shard_bm25_stats(shard_store *s, json_t *req, json_t *out, char *err, size_t errlen)
{
    const char *q = json_string_value(json_object_get(req, "query"));
    rag_bm25_stats *st = NULL;
    int rc = rag_bm25_stats_get(s->db, s->meta.name, q ? q : "", &st);
    if (rc != RAG_OK) {
        snprintf(err, errlen, "%s: %s", rag_strerror(rc), rag_errmsg());
        return rc;
    }
    json_t *bj = json_pack("{s:I,s:I,s:o}", "chunks", (json_int_t)st->chunks, "total_len",
                           (json_int_t)st->total_len, "df", term_counts(st, st->df));
    if (st->doc_df) {
        json_object_set_new(bj, "docs", json_integer((json_int_t)st->docs));
        json_object_set_new(bj, "doc_total_len", json_integer((json_int_t)st->doc_total_len));
        json_object_set_new(bj, "doc_df", term_counts(st, st->doc_df));
    }
    json_object_set_new(out, "bm25_stats", bj);
    rag_bm25_stats_free(st);
    return RAG_OK;
}

/* Waits, bounded, until the store applied min_seq. 1 when it has. */
static int wait_applied(shard_store *s, uint64_t min_seq, int wait_ms)
{
    struct timespec until;
    clock_gettime(CLOCK_REALTIME, &until);
    until.tv_sec += wait_ms / 1000;
    until.tv_nsec += (long)(wait_ms % 1000) * 1000000L;
    if (until.tv_nsec >= 1000000000L) {
        until.tv_sec++;
        until.tv_nsec -= 1000000000L;
    }
    pthread_mutex_lock(&s->mu);
    while (s->pos < min_seq && pthread_cond_timedwait(&s->applied, &s->mu, &until) == 0)
        ;
    int ok = s->pos >= min_seq;
    pthread_mutex_unlock(&s->mu);
    return ok;
}

/* A reply: j (consumed) as compact JSON, *rlen bytes. */
static char *reply_text(json_t *j, size_t *rlen)
{
    char *text = json_dumps(j, JSON_COMPACT);
    json_decref(j);
    *rlen = text ? strlen(text) : 0;
    return text;
}

/* The answer to a shard query (below) once the store has applied the request's min_seq
 * and is held (dblock): its fields into out, or a message in err. */
static void shard_answer(shard_store *s, json_t *req, json_t *out, char *err, size_t errlen)
{
    float *vec = NULL;
    if (json_is_true(json_object_get(req, "bm25_stats_only"))) {
        shard_bm25_stats(s, req, out, err, errlen);
        return;
    }
    const char *exists_id = json_string_value(json_object_get(req, "doc_exists"));
    if (exists_id) { /* a router verifying a canonical document (dedup.h) */
        rag_doc *doc = NULL;
        int rc = rag_document_get(s->db, s->meta.name, exists_id, &doc);
        rag_doc_free(doc);
        if (rc == RAG_OK || rc == RAG_ENOTFOUND)
            json_object_set_new(out, "exists", json_boolean(rc == RAG_OK));
        else
            snprintf(err, errlen, "document '%s': %s", exists_id, rag_errmsg());
        return;
    }
    json_t *sides = json_object_get(req, "sides");
    for (size_t i = 0; i < json_array_size(sides) && !*err; i++) {
        const char *side = json_string_value(json_array_get(sides, i));
        int lexical = side && !strcmp(side, "lexical");
        if (!lexical && !vec) {
            const char *b64 = json_string_value(json_object_get(req, "vector"));
            vec = malloc((size_t)s->meta.dim * sizeof *vec);
            if (!b64 || !vec ||
                vector_b64_decode(b64, strlen(b64), vec, (size_t)s->meta.dim) != 0) {
                snprintf(err, errlen, "vector: base64 of %d float32 values expected",
                         s->meta.dim);
                break;
            }
        }
        json_t *list = NULL;
        if (side_search(s, req, lexical, vec, &list, err, errlen) == RAG_OK)
            json_object_set_new(out, lexical ? "lexical" : "dense", list);
    }
    free(vec);
}

/* A shard query: {"query","vector"(base64),"sides":["dense","lexical"],"k","filter",
 * "per_doc","collapse_threshold","now","max_age","min_seq","wait_ms","bm25_stats",
 * "lexical_unit","vectors"} -> {"seq","dense":[hits],"lexical":[hits]} or
 * {"behind":true,"seq"} or {"error"}; {"query","bm25_stats_only":true,...} -> {"seq","bm25_stats"};
 * {"doc_exists":id,"min_seq","wait_ms"} -> {"seq","exists"}. */
static char *on_query(void *user, const char *body, size_t len, size_t *rlen)
{
    shard_store *s = user;
    atomic_fetch_add(&s->queries, 1);
    json_t *req = json_loadb(body, len, 0, NULL);
    json_t *out = json_object();
    char err[1200] = "";
    int locked = 0;
    uint64_t min_seq = (uint64_t)json_integer_value(json_object_get(req, "min_seq"));
    json_int_t wait = json_integer_value(json_object_get(req, "wait_ms"));
    /* bounded as the routers' ryw_wait_ms is: a delivery thread never waits longer */
    int wait_ms = wait < 0 ? 0 : wait > CLUSTER_RYW_WAIT_MAX_MS ? CLUSTER_RYW_WAIT_MAX_MS
                                                                : (int)wait;
    if (!json_is_object(req)) {
        snprintf(err, sizeof err, "request is not a JSON object");
        goto done;
    }
    if (min_seq && !wait_applied(s, min_seq, wait_ms)) {
        atomic_fetch_add(&s->behind, 1);
        json_object_set_new(out, "behind", json_true());
        goto done;
    }
    pthread_rwlock_rdlock(&s->dblock);
    locked = 1;
    if (!s->db) {
        snprintf(err, sizeof err, "the store of %s/%d is being replaced by a peer's copy",
                 s->meta.name, s->shard);
        goto done;
    }
    shard_answer(s, req, out, err, sizeof err);
done:
    if (locked)
        pthread_rwlock_unlock(&s->dblock);
    pthread_mutex_lock(&s->mu);
    json_object_set_new(out, "seq", json_integer((json_int_t)s->pos));
    pthread_mutex_unlock(&s->mu);
    json_object_set_new(out, "replica", json_string(s->r->name));
    if (*err)
        json_object_set_new(out, "error", json_string(err));
    json_decref(req);
    return reply_text(out, rlen);
}

char *cluster_shard_query(rag_db *db, const cluster_coll *meta, const char *body, size_t len,
                          size_t *rlen)
{
    shard_store *s = calloc(1, sizeof *s);
    json_t *req = json_loadb(body, len, 0, NULL);
    json_t *out = json_object();
    char err[1200] = "";
    if (!s)
        snprintf(err, sizeof err, "out of memory");
    else if (!json_is_object(req))
        snprintf(err, sizeof err, "request is not a JSON object");
    else {
        s->db = db;
        s->meta = *meta;
        shard_answer(s, req, out, err, sizeof err);
    }
    if (*err)
        json_object_set_new(out, "error", json_string(err));
    json_decref(req);
    free(s);
    return reply_text(out, rlen);
}

/* ---- the applier ------------------------------------------------------------------------ */

static void set_error(shard_store *s, const char *msg)
{
    pthread_mutex_lock(&s->mu);
    snprintf(s->last_error, sizeof s->last_error, "%s", msg);
    pthread_mutex_unlock(&s->mu);
}

/* Joins or leaves the shard's queue group by the lag: a replica further behind than
 * max_lag stops taking queries until it is back within half of it. */
static void manage_membership(shard_store *s, uint64_t lag)
{
    replica *r = s->r;
    if (s->qsub && lag > (uint64_t)r->cfg.max_lag) {
        rpc_unserve(s->qsub);
        rpc_unserve(s->hsub);
        s->qsub = s->hsub = NULL;
        fprintf(stderr, "replica %s: %s/%d lags %llu batches: left the queue group\n", r->name,
                s->meta.name, s->shard, (unsigned long long)lag);
    } else if (!s->qsub && lag <= (uint64_t)r->cfg.max_lag / 2) {
        char subj[300], err[512];
        store_subject(s, subj, sizeof subj);
        if (rpc_serve(r->log, subj, subj, on_query, s, &s->qsub, err, sizeof err) < 0)
            set_error(s, err);
        /* hedged requests: every member answers (rag.qh.<collection>.<shard>) */
        char hedge[310];
        snprintf(hedge, sizeof hedge, "rag.qh.%s", subj + strlen("rag.q."));
        if (s->qsub && !s->hsub &&
            rpc_serve(r->log, hedge, NULL, on_query, s, &s->hsub, err, sizeof err) < 0)
            set_error(s, err);
    }
}

/* The test hook: SIGKILLs the process at `point` (before the batch's transaction, or after
 * its commit where a consumer with acknowledgements would acknowledge it) of the
 * kill_after-th batch this process applies. */
static void test_kill(shard_store *s, int point, uint64_t seq)
{
    replica *r = s->r;
    if ((int)r->kill_point != point || r->kill_after <= 0 ||
        (long)atomic_load(&s->applied_total) + 1 < r->kill_after)
        return;
    fprintf(stderr, "replica %s: test hook: killed %s of %s/%d batch %llu\n", r->name,
            point == KILL_BEFORE_COMMIT ? "between fetch and commit" : "between commit and ack",
            s->meta.name, s->shard, (unsigned long long)seq);
    raise(SIGKILL);
}

static int open_db(const cluster_coll *meta, const char *dir, rag_db **db);
static int bootstrap_from_peer(replica *r, const cluster_coll *meta, int shard,
                               uint64_t min_seq, const char *dir, shard_store *live, char *err,
                               size_t errlen);

/* The applier found sequence seq after its position pos. When the log no longer holds pos
 * + 1 (retention passed it while this replica was stopped or slow), the running store is
 * replaced by a peer's copy (bootstrap_from_peer with the live store), as a restart would;
 * otherwise (a reader hiccup) the caller simply reads again from pos + 1. */
static void catch_up_from_peer(shard_store *s, uint64_t pos, uint64_t seq)
{
    char err[1024];
    uint64_t first = 0;
    if (clog_first(s->r->log, s->meta.name, s->shard, &first, err, sizeof err) < 0 ||
        first <= pos + 1) {
        snprintf(err, sizeof err, "log gap: got %llu after %llu, reading again",
                 (unsigned long long)seq, (unsigned long long)pos);
        set_error(s, err);
        return;
    }
    fprintf(stderr, "replica %s: %s/%d: the log starts at %llu, after position %llu: copying "
            "a peer's store while running\n", s->r->name, s->meta.name, s->shard,
            (unsigned long long)first, (unsigned long long)pos);
    if (bootstrap_from_peer(s->r, &s->meta, s->shard, first - 1, s->dir, s, err,
                            sizeof err) < 0) {
        char msg[sizeof s->last_error];
        snprintf(msg, sizeof msg, "the log starts at %llu, after position %llu: %.900s",
                 (unsigned long long)first, (unsigned long long)pos, err);
        set_error(s, msg);
        fprintf(stderr, "replica %s: %s/%d: %s\n", s->r->name, s->meta.name, s->shard, msg);
        cluster_sleep_ms(1000);
    }
}

static void *applier_main(void *arg)
{
    shard_store *s = arg;
    replica *r = s->r;
    clog_reader *rd = NULL;
    char err[1024];
    double next_probe = 0;
    while (!cluster_stopping()) {
        uint64_t pos;
        pthread_mutex_lock(&s->mu);
        pos = s->pos;
        pthread_mutex_unlock(&s->mu);
        if (!s->db) { /* a swap that could not open the store again */
            pthread_rwlock_wrlock(&s->dblock);
            int orc = open_db(&s->meta, s->dir, &s->db);
            if (orc != RAG_OK) {
                rag_close(s->db);
                s->db = NULL;
            }
            pthread_rwlock_unlock(&s->dblock);
            if (orc != RAG_OK) {
                snprintf(err, sizeof err, "store %.400s: %s", s->dir, rag_errmsg());
                set_error(s, err);
                catch_up_from_peer(s, pos, pos + 2); /* a peer's copy, when one can help */
                cluster_sleep_ms(1000);
            }
            continue;
        }
        if (!rd && clog_reader_open(r->log, s->meta.name, s->shard, pos + 1, &rd, err,
                                    sizeof err) < 0) {
            set_error(s, err);
            pthread_mutex_lock(&s->mu);
            s->log_ok = 0;
            pthread_mutex_unlock(&s->mu);
            cluster_sleep_ms(500);
            continue;
        }
        const void *data = NULL;
        size_t len = 0;
        uint64_t seq = 0, pending = 0;
        int got = clog_reader_next(rd, 200, &data, &len, &seq, &pending, err, sizeof err);
        if (got < 0) {
            set_error(s, err);
            clog_reader_close(rd);
            rd = NULL;
            cluster_sleep_ms(200);
            continue;
        }
        if (got == 0 || cluster_now_ms() >= next_probe) {
            uint64_t last = 0;
            int ok = clog_last(r->log, s->meta.name, s->shard, &last, err, sizeof err) == 0;
            pthread_mutex_lock(&s->mu);
            s->log_ok = ok;
            if (ok && last > s->last)
                s->last = last;
            pthread_mutex_unlock(&s->mu);
            next_probe = cluster_now_ms() + 1000;
            if (got == 0) {
                manage_membership(s, s->last > pos ? s->last - pos : 0);
                continue;
            }
        }
        if (seq <= pos)
            continue; /* delivered again after a reader restart: applied already */
        if (seq != pos + 1) {
            /* a gap: never apply out of order; read again from the position, or, when the
             * log's retention removed the next sequence, copy a peer's store first */
            clog_reader_close(rd);
            rd = NULL;
            catch_up_from_peer(s, pos, seq);
            continue;
        }
        test_kill(s, KILL_BEFORE_COMMIT, seq);
        int rc = rag_log_apply(s->db, s->meta.name, seq, data, len);
        if (rc == RAG_OK)
            test_kill(s, KILL_AFTER_COMMIT, seq);
        if (rc != RAG_OK) {
            snprintf(err, sizeof err, "batch %llu: %s: %s", (unsigned long long)seq,
                     rag_strerror(rc), rag_errmsg());
            set_error(s, err);
            atomic_fetch_add(&s->apply_errors, 1);
            if (rc == RAG_ESEQUENCE)
                rag_log_position(s->db, s->meta.name, &pos);
            pthread_mutex_lock(&s->mu);
            s->pos = pos;
            pthread_mutex_unlock(&s->mu);
            clog_reader_close(rd);
            rd = NULL;
            cluster_sleep_ms(rc == RAG_ESEQUENCE ? 0 : 1000);
            continue;
        }
        atomic_fetch_add(&s->applied_total, 1);
        pthread_mutex_lock(&s->mu);
        s->pos = seq;
        s->log_ok = 1;
        if (seq + pending > s->last)
            s->last = seq + pending;
        uint64_t lag = s->last - seq;
        pthread_cond_broadcast(&s->applied);
        pthread_mutex_unlock(&s->mu);
        manage_membership(s, lag);
    }
    clog_reader_close(rd);
    return NULL;
}

/* ---- bootstrap from a peer ---------------------------------------------------------------
 * A replica whose log no longer holds the sequence after its store's position (a new replica
 * with an empty store, or one down longer than the log's retention) copies a peer's store.
 * Every step is a short question that is asked again when no answer comes (core NATS drops a
 * message when a connection is lost), and asking again never makes a second backup:
 *   1. {"op":"start","collection","shard","min_seq","token"} on rag.backup.<collection>.
 *      <shard> (queue group of the replicas hosting it) -> the peer starts a backup of its
 *      store (rag_backup, under DATA/.backups/<id>, by a thread of its own) and answers at
 *      once {"peer":"rag.peer.<name>","id","seq" (the position when it began: the copy holds
 *      at least that),"state":"making"}; or {"error"} (behind min_seq, no such store). The
 *      same token again gets the same backup's state. A request without a token (an older
 *      replica) is answered when the backup is ready, as it used to be;
 *   2. {"op":"status","id"} on the peer's own subject until "state" is "ready", which lists
 *      "files":[{"name","size"}] (or an {"error"} when the backup failed: the new replica
 *      stops asking), for at most backup_wait_ms (RAGCORE_CLUSTER_BACKUP_WAIT_S, default
 *      1800 s): then the new replica gives up on that peer and sends it "done" (step 4),
 *      and until that backup is made the peer answers a start for the same store with
 *      {"error":"busy: ..."}, so that another replica of the shard is asked;
 *   3. {"op":"get","id","file","offset"} -> 'D' + up to BACKUP_CHUNK bytes of that file (of
 *      a ready backup this replica made, a name it lists), or 'E' + a message;
 *   4. {"op":"done","id"} -> the peer removes the backup (one still being made once it is
 *      made: its thread cannot be interrupted). A backup nobody asks about for
 *      backup_idle_ms (RAGCORE_CLUSTER_BACKUP_IDLE_S, default 300 s) is removed too: the
 *      new replica gave up, died, or asked again and was answered by another peer.
 * then restores the copy into its store directory (rag_restore) and reads the log from the
 * copy's saved position + 1. Each answer comes from another machine: the new replica checks
 * it before using it (cluster_backup_check_offer, cluster_backup_check, cluster_backup_part
 * in replica.h), and a backup's name ends in random bits, so that steps 2 to 4 need the
 * name step 1 answered. */

#define BACKUP_CHUNK CLUSTER_BACKUP_CHUNK
#define BACKUP_ASK_TIMEOUT_MS 5000 /* start, status: answered at once */
#define BACKUP_ASK_TRIES 6
#define BACKUP_POLL_MS 200
#define BACKUP_GET_TIMEOUT_MS 10000
#define BACKUP_GET_TRIES 3
#define BACKUP_IDLE_S_DEFAULT 300
#define BACKUP_WAIT_S_DEFAULT 1800
#define BACKUP_PROGRESS_S 30

enum { OP_START, OP_GET };

static int rm_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb;
    (void)flag;
    (void)ftw;
    return remove(path) != 0 && errno != ENOENT;
}

/* Removes a directory tree; missing is fine. */
static void rm_tree(const char *path)
{
    nftw(path, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

static char *reply_bytes(char tag, const char *data, size_t len, size_t *rlen)
{
    char *out = malloc(len + 1);
    if (!out)
        return NULL;
    out[0] = tag;
    memcpy(out + 1, data, len);
    *rlen = len + 1;
    return out;
}

static shard_store *find_store(replica *r, const char *coll, int shard)
{
    shard_store *found = NULL;
    pthread_mutex_lock(&r->mu);
    for (size_t i = 0; i < r->n && !found; i++)
        if (r->stores[i]->shard == shard && coll && !strcmp(r->stores[i]->meta.name, coll))
            found = r->stores[i];
    pthread_mutex_unlock(&r->mu);
    return found;
}

/* The files of backup directory dir: data.mdb and index/<name>. */
static json_t *backup_files(const char *dir)
{
    json_t *files = json_array();
    char path[4400];
    struct stat sb;
    snprintf(path, sizeof path, "%s/data.mdb", dir);
    if (stat(path, &sb) == 0)
        json_array_append_new(files, json_pack("{s:s,s:I}", "name", "data.mdb", "size",
                                               (json_int_t)sb.st_size));
    snprintf(path, sizeof path, "%s/index", dir);
    DIR *d = opendir(path);
    struct dirent *e;
    while (d && (e = readdir(d))) {
        char name[300];
        if (e->d_name[0] == '.' || strlen(e->d_name) > 250)
            continue;
        snprintf(name, sizeof name, "index/%s", e->d_name);
        snprintf(path, sizeof path, "%s/%s", dir, name);
        if (stat(path, &sb) == 0 && S_ISREG(sb.st_mode))
            json_array_append_new(files, json_pack("{s:s,s:I}", "name", name, "size",
                                                   (json_int_t)sb.st_size));
    }
    if (d)
        closedir(d);
    return files;
}

/* Whether name is one a backup lists (backup_files): "data.mdb" or "index/<file>", the
 * file 1..250 bytes without '/' that does not begin with '.' (so never "..", an empty
 * component, a deeper path or a path out of the backup). */
static int backup_file_name_ok(const char *name)
{
    if (!name)
        return 0;
    if (!strcmp(name, "data.mdb"))
        return 1;
    size_t n = strlen(name);
    return n > 6 && n <= 6 + 250 && !strncmp(name, "index/", 6) && name[6] != '.' &&
           !strchr(name + 6, '/');
}

/* Whether id has the form of a backup's name (backup_start): 1..63 bytes of [A-Za-z0-9_-]. */
static int backup_id_ok(const char *id)
{
    size_t n = id ? strlen(id) : 0;
    return n >= 1 && n < sizeof ((backup_job *)0)->id &&
           strspn(id, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-") == n;
}

/* Whether subject is a replica's own subject, "rag.peer.<name>": under 300 bytes, its name
 * printable ASCII without spaces or wildcards ('*', '>') and without empty tokens. */
static int peer_subject_ok(const char *subject)
{
    size_t n = subject ? strlen(subject) : 0;
    if (n <= 9 || n >= 300 || strncmp(subject, "rag.peer.", 9))
        return 0;
    for (size_t i = 9; i < n; i++) {
        unsigned char c = (unsigned char)subject[i];
        if (c <= ' ' || c >= 0x7f || c == '*' || c == '>' ||
            (c == '.' && (i == 9 || i + 1 == n || subject[i + 1] == '.')))
            return 0;
    }
    return 1;
}

static void backup_dir(const replica *r, const char *id, char *buf, size_t n)
{
    snprintf(buf, n, "%s/.backups/%s", r->data, id);
}

/* The job called id (or, id NULL, asked for by token for store s), touched; NULL when there
 * is none. Under bk_mu. */
static backup_job *find_job(replica *r, const char *id, const char *token, const shard_store *s)
{
    for (int i = 0; i < MAX_BACKUPS; i++) {
        backup_job *j = &r->jobs[i];
        if (j->used && ((id && !strcmp(j->id, id)) ||
                        (!id && token && j->s == s && !strcmp(j->token, token)))) {
            j->touched = cluster_now_ms();
            return j;
        }
    }
    return NULL;
}

/* A job's answer to start and status. Under bk_mu. */
static json_t *job_json(const replica *r, const backup_job *j)
{
    if (j->state == BK_FAILED)
        return json_pack("{s:s,s:s}", "id", j->id, "error", j->error);
    json_t *o = json_pack("{s:s+,s:s,s:I,s:s}", "peer", "rag.peer.", r->name, "id", j->id, "seq",
                          (json_int_t)j->seq, "state",
                          j->state == BK_READY ? "ready" : "making");
    if (j->state == BK_READY) {
        char dir[2300];
        backup_dir(r, j->id, dir, sizeof dir);
        json_object_set_new(o, "files", backup_files(dir));
    }
    return o;
}

/* The test hook RAGCORE_CLUSTER_TEST_BACKUP on the first backup this replica makes: waits
 * slow_s seconds (less when the process stops) and returns 0, or returns -1 (fail). */
static int test_backup_hook(replica *r, const backup_job *j)
{
    if ((!r->test_backup_slow_s && !r->test_backup_fail) ||
        atomic_exchange(&r->test_backup_used, 1))
        return 0;
    fprintf(stderr, "replica %s: test hook: backup %s %s\n", r->name, j->id,
            r->test_backup_fail ? "fails" : "stays \"making\" for a while");
    double until = cluster_now_ms() + 1000.0 * r->test_backup_slow_s;
    while (cluster_now_ms() < until && !cluster_stopping())
        cluster_sleep_ms(100);
    return r->test_backup_fail ? -1 : 0;
}

static void *backup_thread(void *arg)
{
    backup_job *j = arg;
    shard_store *s = j->s;
    replica *r = s->r;
    char dir[2300], err[sizeof j->error] = "";
    backup_dir(r, j->id, dir, sizeof dir);
    double t0 = cluster_now_ms();
    int rc = RAG_EIO;
    if (test_backup_hook(r, j) < 0) {
        snprintf(err, sizeof err, "backup: test hook: the backup failed");
    } else {
        pthread_rwlock_rdlock(&s->dblock);
        rc = s->db ? rag_backup(s->db, dir, NULL) : RAG_EBUSY;
        if (rc != RAG_OK)
            snprintf(err, sizeof err, "backup: %s",
                     rc == RAG_EBUSY ? "the store is being replaced" : rag_errmsg());
        pthread_rwlock_unlock(&s->dblock);
    }
    if (rc != RAG_OK)
        rm_tree(dir);
    fprintf(stderr, "replica %s: backup %s of %s/%d at position %llu+ for a new replica: %s "
            "(%.1f s)\n", r->name, j->id, s->meta.name, s->shard, (unsigned long long)j->seq,
            rc == RAG_OK ? "ready" : err, (cluster_now_ms() - t0) / 1000);
    pthread_mutex_lock(&r->bk_mu);
    j->state = rc == RAG_OK ? BK_READY : BK_FAILED;
    snprintf(j->error, sizeof j->error, "%s", err);
    j->touched = cluster_now_ms();
    pthread_cond_broadcast(&r->bk_cv);
    pthread_mutex_unlock(&r->bk_mu);
    return NULL;
}

/* Removes the finished jobs that are done, idle longer than backup_idle_ms, or (all true)
 * every one: their backups too. */
static void backup_sweep(replica *r, int all)
{
    double now = cluster_now_ms();
    pthread_mutex_lock(&r->bk_mu);
    for (int i = 0; i < MAX_BACKUPS; i++) {
        backup_job *j = &r->jobs[i];
        if (!j->used)
            continue;
        if (all)
            while (j->state == BK_MAKING)
                pthread_cond_wait(&r->bk_cv, &r->bk_mu);
        if (j->state == BK_MAKING || !(all || j->done || now - j->touched > r->backup_idle_ms))
            continue;
        pthread_join(j->thread, NULL); /* it has finished: its state is set last */
        char dir[2300];
        backup_dir(r, j->id, dir, sizeof dir);
        rm_tree(dir);
        if (!j->done && !all)
            fprintf(stderr, "replica %s: backup %s removed: nobody asked about it for %.0f s\n",
                    r->name, j->id, r->backup_idle_ms / 1000);
        else if (j->abandoned)
            fprintf(stderr, "replica %s: backup %s removed: the replica that asked for it gave "
                    "up waiting after %.0f s\n", r->name, j->id,
                    (j->abandoned - j->started) / 1000);
        memset(j, 0, sizeof *j);
    }
    pthread_mutex_unlock(&r->bk_mu);
}

static char *backup_start(replica *r, json_t *req, size_t *rlen)
{
    const char *coll = json_string_value(json_object_get(req, "collection"));
    const char *token = json_string_value(json_object_get(req, "token"));
    int shard = (int)json_integer_value(json_object_get(req, "shard"));
    uint64_t min_seq = (uint64_t)json_integer_value(json_object_get(req, "min_seq"));
    json_t *out = NULL;
    if (token && !*token)
        token = NULL;
    if (token && strlen(token) >= sizeof r->jobs[0].token)
        return reply_text(json_pack("{s:s}", "error", "token too long"), rlen);
    pthread_mutex_lock(&r->bk_mu);
    shard_store *s = find_store(r, coll, shard);
    backup_job *j = token && s ? find_job(r, NULL, token, s) : NULL;
    if (j) { /* asked again: the answer was lost */
        out = job_json(r, j);
        goto cleanup;
    }
    if (!s) {
        out = json_pack("{s:s}", "error", "no such store here");
        goto cleanup;
    }
    pthread_mutex_lock(&s->mu);
    uint64_t pos = s->pos;
    pthread_mutex_unlock(&s->mu);
    if (pos < min_seq) {
        out = json_pack("{s:s,s:I}", "error", "behind", "seq", (json_int_t)pos);
        goto cleanup;
    }
    /* a backup of this store that a new replica gave up waiting for is still being made:
     * another would most likely hang the same way (a stuck disk), so another replica of the
     * shard is better asked */
    for (int i = 0; i < MAX_BACKUPS; i++) {
        const backup_job *a = &r->jobs[i];
        if (a->used && a->s == s && a->abandoned && a->state == BK_MAKING) {
            char msg[300];
            snprintf(msg, sizeof msg, "busy: backup %s of this store on %.128s, given up on "
                     "by the replica that asked, is still being made after %.0f s", a->id,
                     r->name, (cluster_now_ms() - a->started) / 1000);
            out = json_pack("{s:s}", "error", msg);
            goto cleanup;
        }
    }
    for (int i = 0; i < MAX_BACKUPS && !j; i++)
        if (!r->jobs[i].used)
            j = &r->jobs[i];
    if (!j) {
        out = json_pack("{s:s}", "error", "busy: every backup slot is in use");
        goto cleanup;
    }
    /* the name ends in 64 random bits: status, get and done need the name that start
     * answered, so that another replica cannot read or remove a backup it did not ask for */
    uint64_t rnd;
    if (getrandom(&rnd, sizeof rnd, 0) != (ssize_t)sizeof rnd) {
        out = json_pack("{s:s}", "error", "backup: no random bytes for its name");
        goto cleanup;
    }
    char dir[2300];
    memset(j, 0, sizeof *j);
    snprintf(j->id, sizeof j->id, "bk-%d-%u-%016llx", (int)getpid(),
             atomic_fetch_add(&r->backups, 1), (unsigned long long)rnd);
    snprintf(j->token, sizeof j->token, "%s", token ? token : "");
    j->s = s;
    j->seq = pos;
    j->state = BK_MAKING;
    j->touched = j->started = cluster_now_ms();
    snprintf(dir, sizeof dir, "%s/.backups", r->data);
    mkdir(dir, 0700);
    if (pthread_create(&j->thread, NULL, backup_thread, j) != 0) {
        j->used = 0;
        out = json_pack("{s:s}", "error", "backup: cannot start a thread");
        goto cleanup;
    }
    j->used = 1;
    while (!token && j->state == BK_MAKING) /* an older replica waits for the whole backup */
        pthread_cond_wait(&r->bk_cv, &r->bk_mu);
    out = job_json(r, j);
cleanup:
    pthread_mutex_unlock(&r->bk_mu);
    return reply_text(out, rlen);
}

static char *backup_status(replica *r, json_t *req, size_t *rlen)
{
    const char *id = json_string_value(json_object_get(req, "id"));
    pthread_mutex_lock(&r->bk_mu);
    backup_job *j = id ? find_job(r, id, NULL, NULL) : NULL;
    char msg[200];
    snprintf(msg, sizeof msg, "no backup here called %.100s", id ? id : "(none)");
    json_t *out = j ? job_json(r, j) : json_pack("{s:s}", "error", msg);
    pthread_mutex_unlock(&r->bk_mu);
    return reply_text(out, rlen);
}

static char *backup_get(replica *r, json_t *req, size_t *rlen)
{
    const char *id = json_string_value(json_object_get(req, "id"));
    const char *file = json_string_value(json_object_get(req, "file"));
    json_t *jo = json_object_get(req, "offset");
    json_int_t offset = json_integer_value(jo);
    char path[4400], msg[600];
    if (!backup_id_ok(id) || !backup_file_name_ok(file) || !json_is_integer(jo) || offset < 0) {
        snprintf(msg, sizeof msg, "bad backup part request: expected \"id\" (a backup's name), "
                 "\"file\" (data.mdb or index/<file>) and \"offset\" (a whole number >= 0)");
        return reply_bytes('E', msg, strlen(msg), rlen);
    }
    pthread_mutex_lock(&r->bk_mu);
    const backup_job *j = find_job(r, id, NULL, NULL); /* touched: still in use */
    int ready = j && j->state == BK_READY;
    pthread_mutex_unlock(&r->bk_mu);
    if (!ready) {
        snprintf(msg, sizeof msg, "no ready backup here called %s", id);
        return reply_bytes('E', msg, strlen(msg), rlen);
    }
    char dir[2300];
    backup_dir(r, id, dir, sizeof dir);
    snprintf(path, sizeof path, "%s/%s", dir, file);
    int fd = open(path, O_RDONLY | O_NOFOLLOW);
    char *buf = fd >= 0 ? malloc(BACKUP_CHUNK) : NULL;
    if (fd >= 0 && !buf)
        errno = ENOMEM;
    ssize_t n = buf ? pread(fd, buf, BACKUP_CHUNK, (off_t)offset) : -1;
    char *out;
    if (n < 0) {
        snprintf(msg, sizeof msg, "%s of backup %s: %s", file, id, strerror(errno));
        out = reply_bytes('E', msg, strlen(msg), rlen);
    } else {
        out = reply_bytes('D', buf, (size_t)n, rlen);
    }
    if (fd >= 0)
        close(fd);
    free(buf);
    return out;
}

static char *backup_done(replica *r, json_t *req, size_t *rlen)
{
    const char *id = json_string_value(json_object_get(req, "id"));
    pthread_mutex_lock(&r->bk_mu);
    backup_job *j = id ? find_job(r, id, NULL, NULL) : NULL;
    if (j) {
        j->done = 1;
        if (j->state == BK_MAKING && !j->abandoned) {
            j->abandoned = cluster_now_ms();
            fprintf(stderr, "replica %s: backup %s: the replica that asked for it gave up "
                    "waiting after %.0f s; it is removed once made\n", r->name, j->id,
                    (j->abandoned - j->started) / 1000);
        }
    }
    pthread_mutex_unlock(&r->bk_mu);
    backup_sweep(r, 0);
    return reply_text(json_pack("{s:b}", "done", j != NULL), rlen);
}

/* rag.backup.<collection>.<shard> and rag.peer.<name>: the steps above. */
static char *on_backup(void *user, const char *body, size_t len, size_t *rlen)
{
    replica *r = user;
    json_t *req = json_loadb(body, len, 0, NULL);
    const char *op = json_string_value(json_object_get(req, "op"));
    char *out;
    int hook = -1;
    if (op && !strcmp(op, "start")) {
        out = backup_start(r, req, rlen);
        hook = OP_START;
    } else if (op && !strcmp(op, "status")) {
        out = backup_status(r, req, rlen);
    } else if (op && !strcmp(op, "get")) {
        out = backup_get(r, req, rlen);
        hook = OP_GET;
    } else if (op && !strcmp(op, "done")) {
        out = backup_done(r, req, rlen);
    } else {
        out = reply_text(json_pack("{s:s}", "error", "op must be start, status, get or done"),
                         rlen);
    }
    json_decref(req);
    if (hook >= 0 && r->drop_nth[hook] > 0 &&
        atomic_fetch_add(&r->answered[hook], 1) + 1 == r->drop_nth[hook]) {
        fprintf(stderr, "replica %s: test hook: no answer to %s request %ld\n", r->name,
                hook == OP_START ? "start" : "get", r->drop_nth[hook]);
        free(out);
        return NULL;
    }
    return out;
}

struct cluster_backup_host {
    replica r;
    shard_store s;
};

int cluster_backup_host_open(const char *name, const char *data, rag_db *db,
                             const cluster_coll *meta, int shard, cluster_backup_host **out)
{
    cluster_backup_host *h = calloc(1, sizeof *h);
    *out = NULL;
    if (!h)
        return -1;
    replica *r = &h->r;
    shard_store *s = &h->s;
    snprintf(r->name, sizeof r->name, "%s", name);
    snprintf(r->data, sizeof r->data, "%s", data);
    r->backup_idle_ms = 1000.0 * BACKUP_IDLE_S_DEFAULT;
    r->backup_wait_ms = 1000.0 * BACKUP_WAIT_S_DEFAULT;
    pthread_mutex_init(&r->mu, NULL);
    pthread_mutex_init(&r->bk_mu, NULL);
    pthread_cond_init(&r->bk_cv, NULL);
    s->r = r;
    s->meta = *meta;
    s->shard = shard;
    s->db = db;
    snprintf(s->dir, sizeof s->dir, "%s/%s/shard-%d", data, meta->name, shard);
    pthread_mutex_init(&s->mu, NULL);
    pthread_cond_init(&s->applied, NULL);
    pthread_rwlock_init(&s->dblock, NULL);
    r->stores[r->n++] = s;
    if (rag_log_position(db, meta->name, &s->pos) != RAG_OK) {
        cluster_backup_host_close(h);
        return -1;
    }
    *out = h;
    return 0;
}

char *cluster_backup_answer(cluster_backup_host *h, const char *body, size_t len,
                            size_t *rlen)
{
    *rlen = 0;
    return on_backup(&h->r, body, len, rlen);
}

void cluster_backup_host_close(cluster_backup_host *h)
{
    if (!h)
        return;
    backup_sweep(&h->r, 1);
    pthread_rwlock_destroy(&h->s.dblock);
    pthread_cond_destroy(&h->s.applied);
    pthread_mutex_destroy(&h->s.mu);
    pthread_cond_destroy(&h->r.bk_cv);
    pthread_mutex_destroy(&h->r.bk_mu);
    pthread_mutex_destroy(&h->r.mu);
    free(h);
}

/* One request, one reply (NULL when none came within timeout_ms): a cluster_backup_ask_fn
 * over the broker, ctx the replica. */
static char *ask_broker(void *ctx, const char *subject, const char *body, size_t len,
                        int timeout_ms, size_t *rlen)
{
    replica *r = ctx;
    const char *subjects[1] = {subject};
    const char *bodies[1] = {body};
    size_t lens[1] = {len};
    char *reply = NULL;
    *rlen = 0;
    rpc_scatter(r->log, 1, subjects, bodies, lens, timeout_ms, &reply, rlen);
    return reply;
}

/* One request (body consumed) through ask, one reply (NULL when none came). */
static char *ask_json(cluster_backup_ask_fn ask, void *ctx, const char *subject, json_t *body,
                      int timeout_ms, size_t *rlen)
{
    char *text = json_dumps(body, JSON_COMPACT);
    json_decref(body);
    char *reply = NULL;
    *rlen = 0;
    if (text)
        reply = ask(ctx, subject, text, strlen(text), timeout_ms, rlen);
    free(text);
    return reply;
}

static char *request(replica *r, const char *subject, json_t *body, int timeout_ms,
                     size_t *rlen)
{
    return ask_json(ask_broker, r, subject, body, timeout_ms, rlen);
}

int cluster_backup_check_offer(const json_t *st, char *err, size_t errlen)
{
    const char *peer = json_string_value(json_object_get(st, "peer"));
    const char *id = json_string_value(json_object_get(st, "id"));
    if (!peer_subject_ok(peer)) {
        snprintf(err, errlen, "\"peer\" is not a replica's subject rag.peer.<name>");
        return -1;
    }
    if (!backup_id_ok(id)) {
        snprintf(err, errlen, "\"id\" is not a backup's name (1 to 63 letters, digits, '-', '_')");
        return -1;
    }
    return 0;
}

int cluster_backup_check(const json_t *st, const char *peer, const char *id, uint64_t min_seq,
                         uint64_t *total, char *err, size_t errlen)
{
    const char *state = json_string_value(json_object_get(st, "state"));
    json_t *seq = json_object_get(st, "seq"), *files = json_object_get(st, "files");
    json_t *seen = NULL;
    uint64_t sum = 0;
    int rc = -1, mdb = 0;
    size_t i;
    json_t *f;
    if (cluster_backup_check_offer(st, err, errlen) < 0)
        return -1;
    if ((peer && strcmp(peer, json_string_value(json_object_get(st, "peer")))) ||
        (id && strcmp(id, json_string_value(json_object_get(st, "id"))))) {
        snprintf(err, errlen, "\"peer\" or \"id\" is not the backup asked about");
        return -1;
    }
    if (!state || strcmp(state, "ready")) {
        snprintf(err, errlen, "\"state\" is not \"ready\"");
        return -1;
    }
    if (!json_is_integer(seq) || json_integer_value(seq) < 0 ||
        (uint64_t)json_integer_value(seq) < min_seq) {
        snprintf(err, errlen, "\"seq\" is not a position at or after %llu",
                 (unsigned long long)min_seq);
        return -1;
    }
    if (!json_is_array(files) || json_array_size(files) < 1 ||
        json_array_size(files) > CLUSTER_BACKUP_MAX_FILES) {
        snprintf(err, errlen, "\"files\" is not an array of 1 to %d files",
                 CLUSTER_BACKUP_MAX_FILES);
        return -1;
    }
    if (!(seen = json_object())) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    json_array_foreach(files, i, f)
    {
        const char *name = json_string_value(json_object_get(f, "name"));
        json_t *size = json_object_get(f, "size");
        if (!backup_file_name_ok(name)) {
            snprintf(err, errlen, "files[%zu].name is not data.mdb or index/<file>", i);
            goto cleanup;
        }
        if (json_object_get(seen, name)) {
            snprintf(err, errlen, "files[%zu].name: %s is listed twice", i, name);
            goto cleanup;
        }
        if (!json_is_integer(size) || json_integer_value(size) < 0 ||
            json_integer_value(size) > CLUSTER_BACKUP_MAX_BYTES) {
            snprintf(err, errlen, "files[%zu].size (%s) is not a size from 0 to 2^50 bytes", i,
                     name);
            goto cleanup;
        }
        if (json_object_set_new(seen, name, json_true()) < 0) {
            snprintf(err, errlen, "out of memory");
            goto cleanup;
        }
        mdb += !strcmp(name, "data.mdb");
        sum += (uint64_t)json_integer_value(size); /* at most 2^12 * 2^50: no overflow */
    }
    if (!mdb) {
        snprintf(err, errlen, "\"files\" has no data.mdb");
        goto cleanup;
    }
    if (total)
        *total = sum;
    rc = 0;
cleanup:
    json_decref(seen);
    return rc;
}

long cluster_backup_part(const char *part, size_t len, int64_t off, int64_t size, char *err,
                         size_t errlen)
{
    if (!part || len == 0) {
        snprintf(err, errlen, "no answer");
        return -1;
    }
    if (part[0] == 'E') {
        snprintf(err, errlen, "%.*s", len - 1 > 500 ? 500 : (int)(len - 1), part + 1);
        return -1;
    }
    if (part[0] != 'D') {
        snprintf(err, errlen, "a reply that is neither data ('D') nor an error ('E')");
        return -1;
    }
    size_t n = len - 1;
    if (n == 0) {
        snprintf(err, errlen, "no data at offset %lld, before the announced size %lld",
                 (long long)off, (long long)size);
        return -1;
    }
    if (n > BACKUP_CHUNK) {
        snprintf(err, errlen, "a part of %zu bytes, more than the %d asked for", n,
                 BACKUP_CHUNK);
        return -1;
    }
    if (off < 0 || off > size || (int64_t)n > size - off) {
        snprintf(err, errlen, "data past the announced size %lld (%zu bytes at offset %lld)",
                 (long long)size, n, (long long)off);
        return -1;
    }
    /* a peer reads whole parts of a file that does not change: a shorter one (a peer
     * dripping bytes to hold the copy for ever) is refused */
    if ((int64_t)n < size - off && n < BACKUP_CHUNK) {
        snprintf(err, errlen, "a part of %zu bytes at offset %lld, short of the %lld asked for",
                 n, (long long)off,
                 (long long)(size - off < BACKUP_CHUNK ? size - off : BACKUP_CHUNK));
        return -1;
    }
    return (long)n;
}

/* Copies file `name` (size bytes) of backup id of peer into dir/name, a file it creates
 * (never one already there); a part that gets no answer is asked for again, up to
 * BACKUP_GET_TRIES times; every part is checked by cluster_backup_part. 0, or -1 with a
 * message. who names the replica in its log lines. */
static int fetch_file(cluster_backup_ask_fn ask, void *ctx, const char *who, const char *peer,
                      const char *id, const char *name, json_int_t size, const char *dir,
                      char *err, size_t errlen)
{
    char path[4800];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    if (!strncmp(name, "index/", 6)) {
        char sub[4500];
        snprintf(sub, sizeof sub, "%s/index", dir);
        mkdir(sub, 0700);
    }
    int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW, 0600), rc = -1;
    if (fd < 0) {
        snprintf(err, errlen, "cannot create %.400s: %s", path, strerror(errno));
        return -1;
    }
    json_int_t off = 0;
    int tries = 0;
    while (off < size) {
        size_t len = 0;
        char *part = ask_json(ask, ctx, peer,
                              json_pack("{s:s,s:s,s:s,s:I}", "op", "get", "id", id, "file",
                                        name, "offset", off),
                              BACKUP_GET_TIMEOUT_MS, &len);
        if (!part && ++tries < BACKUP_GET_TRIES && !cluster_stopping()) {
            fprintf(stderr, "replica %s: %s of backup %s from %s at %lld: no answer in %d s: "
                    "asking again\n", who, name, id, peer, (long long)off,
                    BACKUP_GET_TIMEOUT_MS / 1000);
            continue;
        }
        char why[600];
        long n = cluster_backup_part(part, len, off, size, why, sizeof why);
        if (n < 0) {
            snprintf(err, errlen, "%s of backup %s from %s: %s", name, id, peer, why);
            free(part);
            goto cleanup;
        }
        tries = 0;
        if (write(fd, part + 1, (size_t)n) != (ssize_t)n) {
            snprintf(err, errlen, "cannot write %.400s: %s", path, strerror(errno));
            free(part);
            goto cleanup;
        }
        off += n;
        free(part);
    }
    rc = fsync(fd) == 0 ? 0 : -1;
    if (rc < 0)
        snprintf(err, errlen, "cannot write %.400s: %s", path, strerror(errno));
cleanup:
    close(fd);
    return rc;
}

int cluster_backup_fetch(const json_t *st, const char *dir, cluster_backup_ask_fn ask,
                         void *ctx, const char *who, char *err, size_t errlen)
{
    const char *peer = json_string_value(json_object_get(st, "peer"));
    const char *id = json_string_value(json_object_get(st, "id"));
    uint64_t total = 0;
    char why[600];
    if (cluster_backup_check(st, NULL, NULL, 0, &total, why, sizeof why) < 0) {
        snprintf(err, errlen, "refused the description of backup %.63s from %.299s: %s",
                 backup_id_ok(id) ? id : "?", peer_subject_ok(peer) ? peer : "?", why);
        return -1;
    }
    struct statvfs vfs;
    if (statvfs(dir, &vfs) == 0 && total > (uint64_t)vfs.f_bavail * vfs.f_frsize) {
        snprintf(err, errlen, "backup %s from %s: its files (%llu bytes) do not fit in the "
                 "%llu bytes free on %.400s", id, peer, (unsigned long long)total,
                 (unsigned long long)vfs.f_bavail * vfs.f_frsize, dir);
        return -1;
    }
    size_t i;
    json_t *f;
    json_array_foreach(json_object_get(st, "files"), i, f)
    {
        if (fetch_file(ask, ctx, who, peer, id, json_string_value(json_object_get(f, "name")),
                       json_integer_value(json_object_get(f, "size")), dir, err, errlen) < 0)
            return -1;
    }
    return 0;
}

/* Opens (creating when absent) the store in dir with the collection's settings. */
static int open_db(const cluster_coll *meta, const char *dir, rag_db **db)
{
    rag_open_options oo;
    rag_open_options_init(&oo);
    oo.embedder = meta->embedder;
    oo.dim = meta->dim;
    oo.index_spec = meta->index_spec;
    oo.chunk_tokens = meta->chunk_tokens;
    oo.chunk_overlap = meta->chunk_overlap;
    oo.language = meta->language;
    int rc = rag_open(dir, &oo, db);
    if (rc == RAG_OK) {
        rc = rag_collection_create(*db, meta->name);
        if (rc == RAG_EEXIST)
            rc = RAG_OK;
    }
    return rc;
}

/* Closes live's store, restores the fetched copy in tmp over it and opens it again, under
 * the write lock of its dblock: a query meanwhile waits or is told the store is being
 * replaced, never reads a closed or half-restored store. */
static int swap_store(shard_store *live, const char *tmp, char *err, size_t errlen)
{
    pthread_rwlock_wrlock(&live->dblock);
    rag_close(live->db);
    live->db = NULL;
    int rc = rag_restore(tmp, live->dir, 1, NULL);
    if (rc != RAG_OK)
        snprintf(err, errlen, "restore of the peer's backup into %.400s: %s", live->dir,
                 rag_errmsg());
    /* the old store again when the restore failed: rag_restore leaves it as it was */
    int orc = open_db(&live->meta, live->dir, &live->db);
    uint64_t pos = 0;
    if (orc == RAG_OK)
        orc = rag_log_position(live->db, live->meta.name, &pos);
    if (orc != RAG_OK) {
        if (rc == RAG_OK)
            snprintf(err, errlen, "store %.400s after the restore: %s", live->dir,
                     rag_errmsg());
        rag_close(live->db);
        live->db = NULL;
        rc = orc;
    }
    if (live->db) {
        pthread_mutex_lock(&live->mu);
        live->pos = pos;
        pthread_cond_broadcast(&live->applied);
        pthread_mutex_unlock(&live->mu);
    }
    pthread_rwlock_unlock(&live->dblock);
    return rc == RAG_OK ? 0 : -1;
}

/* Step 4: tells peer (its subject) that this replica is done with backup id, so that the
 * peer removes it (at once, or once made); the answer is not awaited beyond 2 s. */
static void backup_tell_done(replica *r, const char *peer, const char *id)
{
    size_t len = 0;
    free(request(r, peer, json_pack("{s:s,s:s}", "op", "done", "id", id), 2000, &len));
}

/* Step 2: asks peer (its subject) about backup id, *st its "making" answer, every BACKUP_POLL_MS
 * until the answer is no longer "making" (ready, or the peer's {"error"}: 0, *st replaced by
 * that answer), or -1 with why: the peer stopped answering, the process is stopping, or the
 * backup was still being made after r->backup_wait_ms (the caller gives up on the peer).
 * While it waits it logs every BACKUP_PROGRESS_S, or a fifth of the limit when that is shorter
 * (at least 1 s), so that a short limit shows progress too. where names the shard. */
static int poll_backup(replica *r, const char *where, const char *peer, const char *id,
                       json_t **st, char *why, size_t whylen)
{
    double t0 = cluster_now_ms(), wait = r->backup_wait_ms;
    double every = fmin(BACKUP_PROGRESS_S * 1000.0, fmax(1000.0, wait / 5));
    double next_log = t0 + every;
    for (int silent = 0; !cluster_stopping();) {
        const char *state = json_string_value(json_object_get(*st, "state"));
        if (!state || strcmp(state, "making"))
            return 0;
        double now = cluster_now_ms();
        if (now - t0 >= wait) {
            snprintf(why, whylen, "backup %s from %s still being made after %.0f s (the "
                     "limit, RAGCORE_CLUSTER_BACKUP_WAIT_S): gave up on that peer", id, peer,
                     wait / 1000);
            return -1;
        }
        if (now >= next_log) {
            fprintf(stderr, "replica %s: %s: backup %s from %s still being made after %.0f s\n",
                    r->name, where, id, peer, (now - t0) / 1000);
            next_log += every;
        }
        cluster_sleep_ms(BACKUP_POLL_MS);
        size_t len = 0;
        char *text = request(r, peer, json_pack("{s:s,s:s}", "op", "status", "id", id),
                             BACKUP_ASK_TIMEOUT_MS, &len);
        json_t *next = text ? json_loadb(text, len, 0, NULL) : NULL;
        free(text);
        if (!next) {
            if (++silent >= BACKUP_ASK_TRIES) {
                snprintf(why, whylen, "%s stopped answering about backup %s", peer, id);
                return -1;
            }
            continue;
        }
        silent = 0;
        json_decref(*st);
        *st = next;
    }
    snprintf(why, whylen, "stopping");
    return -1;
}

/* Steps 1 and 2: a peer's backup of the shard at min_seq or later, ready ({"peer","id",
 * "seq","files"}), or NULL with a message (no peer answered or every one declined; the peer's
 * backup failed, with its message; the peer stopped answering; the backup was not ready
 * within r->backup_wait_ms). A peer whose backup failed or took too long is told it is done
 * with it, so that it removes the backup now or once made. */
static json_t *ready_backup(replica *r, const cluster_coll *meta, int shard, uint64_t min_seq,
                            char *err, size_t errlen)
{
    char subject[300], token[200], where[200];
    snprintf(subject, sizeof subject, "rag.backup.%s.%d", meta->name, shard);
    snprintf(where, sizeof where, "%.150s/%d", meta->name, shard);
    /* random too: a peer answers the same token with the same backup (its name included) */
    uint64_t rnd = 0;
    if (getrandom(&rnd, sizeof rnd, 0) != (ssize_t)sizeof rnd)
        rnd = (uint64_t)cluster_now_ms();
    snprintf(token, sizeof token, "%.120s/%d/%u/%016llx", r->name, (int)getpid(),
             atomic_fetch_add(&r->asks, 1), (unsigned long long)rnd);
    json_t *st = NULL;
    char why[1000] = "no answer";
    int offered = 0;
    for (int tries = 0; tries < BACKUP_ASK_TRIES && !cluster_stopping(); tries++) {
        size_t len = 0;
        char *text = request(r, subject,
                             json_pack("{s:s,s:s,s:i,s:I,s:s}", "op", "start", "collection",
                                       meta->name, "shard", shard, "min_seq",
                                       (json_int_t)min_seq, "token", token),
                             BACKUP_ASK_TIMEOUT_MS, &len);
        json_decref(st);
        st = text ? json_loadb(text, len, 0, NULL) : NULL;
        free(text);
        if (json_object_get(st, "peer")) {
            char bad[300];
            if (cluster_backup_check_offer(st, bad, sizeof bad) == 0) {
                offered = 1;
                break;
            }
            /* never asks a subject that is not a replica's (another one may answer next) */
            snprintf(why, sizeof why, "refused the answer to the backup request: %s", bad);
            fprintf(stderr, "replica %s: %s: %s\n", r->name, where, why);
            json_decref(st);
            st = NULL;
            cluster_sleep_ms(BACKUP_POLL_MS);
            continue;
        }
        const char *e = json_string_value(json_object_get(st, "error"));
        if (e && strcmp(e, "behind") && strcmp(e, "no such store here") &&
            strncmp(e, "busy", 4))
            break; /* the backup failed: the caller tries again later */
        if (!st)
            fprintf(stderr, "replica %s: %s: no answer to the backup request in %d s: "
                    "asking again\n", r->name, where, BACKUP_ASK_TIMEOUT_MS / 1000);
        else
            cluster_sleep_ms(BACKUP_POLL_MS); /* another replica of the shard may be ahead */
    }
    if (offered) {
        char peer_subject[300], id[64], bad[600];
        snprintf(peer_subject, sizeof peer_subject, "%s",
                 json_string_value(json_object_get(st, "peer")));
        snprintf(id, sizeof id, "%s", json_string_value(json_object_get(st, "id")));
        int waited = poll_backup(r, where, peer_subject, id, &st, why, sizeof why);
        const char *e = json_string_value(json_object_get(st, "error"));
        if (waited == 0 && e) {
            snprintf(why, sizeof why, "backup %.63s from %.299s failed: %.500s", id,
                     peer_subject, e);
        } else if (waited == 0 &&
                   cluster_backup_check(st, peer_subject, id, min_seq, NULL, bad,
                                        sizeof bad) < 0) {
            snprintf(why, sizeof why, "refused the description of backup %.63s from %.299s: "
                     "%.500s", id, peer_subject, bad);
            fprintf(stderr, "replica %s: %s: %s\n", r->name, where, why);
            e = why;
        }
        if ((waited == 0 && e) || (waited < 0 && !cluster_stopping()))
            backup_tell_done(r, peer_subject, id);
        if (waited < 0 || e) {
            json_decref(st);
            st = NULL;
        }
    }
    if (!offered || !st) {
        const char *e = json_string_value(json_object_get(st, "error"));
        snprintf(err, errlen, "no peer gave a backup of %s at sequence %llu or later: %.700s",
                 where, (unsigned long long)min_seq,
                 e ? e : cluster_stopping() ? "stopping" : why);
        json_decref(st);
        return NULL;
    }
    return st;
}

/* Replaces the store in dir by a copy of a peer's that holds at least sequence min_seq.
 * live NULL: the store in dir is closed. Else it is live's running store, which keeps
 * answering queries while the copy is fetched and is then swapped (swap_store). 0, or -1
 * with a message (no peer answered, the copy failed). */
static int bootstrap_from_peer(replica *r, const cluster_coll *meta, int shard,
                               uint64_t min_seq, const char *dir, shard_store *live, char *err,
                               size_t errlen)
{
    char tmp[4400];
    snprintf(tmp, sizeof tmp, "%s.bootstrap", dir);
    rm_tree(tmp);
    json_t *st = ready_backup(r, meta, shard, min_seq, err, errlen);
    if (!st)
        return -1;
    const char *peer = json_string_value(json_object_get(st, "peer"));
    const char *id = json_string_value(json_object_get(st, "id"));
    int rc = -1;
    if (mkdir(tmp, 0700) != 0) {
        snprintf(err, errlen, "cannot create %.400s: %s", tmp, strerror(errno));
        goto cleanup;
    }
    rc = cluster_backup_fetch(st, tmp, ask_broker, r, r->name, err, errlen);
    backup_tell_done(r, peer, id);
    if (rc == 0 && live)
        rc = swap_store(live, tmp, err, errlen);
    else if (rc == 0 && rag_restore(tmp, dir, 1, NULL) != RAG_OK) {
        snprintf(err, errlen, "restore of the peer's backup into %.400s: %s", dir,
                 rag_errmsg());
        rc = -1;
    }
    if (rc == 0)
        fprintf(stderr, "replica %s: %s/%d bootstrapped from %s (backup %s at position %lld)\n",
                r->name, meta->name, shard, peer, id,
                (long long)json_integer_value(json_object_get(st, "seq")));
cleanup:
    rm_tree(tmp);
    json_decref(st);
    return rc;
}

/* ---- stores ----------------------------------------------------------------------------- */

static int open_store(replica *r, const cluster_coll *meta, int shard)
{
    char dir[4096], err[512];
    snprintf(dir, sizeof dir, "%s/%s", r->data, meta->name);
    mkdir(r->data, 0755);
    mkdir(dir, 0755);
    snprintf(dir, sizeof dir, "%s/%s/shard-%d", r->data, meta->name, shard);
    shard_store *s = calloc(1, sizeof *s);
    if (!s)
        return -1;
    s->r = r;
    s->meta = *meta;
    s->shard = shard;
    snprintf(s->dir, sizeof s->dir, "%s", dir);
    pthread_mutex_init(&s->mu, NULL);
    pthread_cond_init(&s->applied, NULL);
    /* writers first: a steady stream of queries must not starve a store swap */
    pthread_rwlockattr_t ra;
    pthread_rwlockattr_init(&ra);
    pthread_rwlockattr_setkind_np(&ra, PTHREAD_RWLOCK_PREFER_WRITER_NONRECURSIVE_NP);
    pthread_rwlock_init(&s->dblock, &ra);
    pthread_rwlockattr_destroy(&ra);
    int rc = open_db(meta, dir, &s->db);
    if (rc == RAG_OK)
        rc = rag_log_position(s->db, meta->name, &s->pos);
    /* The log no longer holds the next sequence (retention removed it): copy a peer's
     * store, then read the log from the copy's position. */
    uint64_t first = 0;
    if (rc == RAG_OK && clog_first(r->log, meta->name, shard, &first, err, sizeof err) == 0 &&
        first > s->pos + 1) {
        rag_close(s->db);
        s->db = NULL;
        if (bootstrap_from_peer(r, meta, shard, first - 1, dir, NULL, err, sizeof err) < 0) {
            fprintf(stderr, "replica %s: %s/%d: the log starts at %llu, after position %llu: %s\n",
                    r->name, meta->name, shard, (unsigned long long)first,
                    (unsigned long long)s->pos, err);
            free(s);
            return -1;
        }
        rc = open_db(meta, dir, &s->db);
        if (rc == RAG_OK)
            rc = rag_log_position(s->db, meta->name, &s->pos);
    }
    if (rc != RAG_OK) {
        fprintf(stderr, "replica %s: store %s: %s: %s\n", r->name, dir, rag_strerror(rc),
                rag_errmsg());
        rag_close(s->db);
        free(s);
        return -1;
    }
    s->last = s->pos;
    char bsubj[300];
    snprintf(bsubj, sizeof bsubj, "rag.backup.%s.%d", meta->name, shard);
    if (rpc_serve(r->log, bsubj, bsubj, on_backup, r, &s->bsub, err, sizeof err) < 0)
        set_error(s, err);
    if (pthread_create(&s->applier, NULL, applier_main, s) != 0) {
        snprintf(err, sizeof err, "cannot start the applier");
        rag_close(s->db);
        free(s);
        return -1;
    }
    pthread_mutex_lock(&r->mu);
    r->stores[r->n++] = s;
    pthread_mutex_unlock(&r->mu);
    fprintf(stderr, "replica %s: hosting %s/%d from position %llu\n", r->name, meta->name, shard,
            (unsigned long long)s->pos);
    return 0;
}

/* Opens a store for every collection in the metadata bucket and every shard of it this
 * replica hosts. */
static void discover(replica *r)
{
    char **keys = NULL, err[512];
    size_t n = 0;
    if (clog_meta_keys(r->log, &keys, &n, err, sizeof err) < 0)
        return;
    for (size_t i = 0; i < n; i++) {
        cluster_coll meta;
        if (cluster_coll_load(r->log, keys[i], &meta, err, sizeof err) != 1)
            continue;
        for (size_t k = 0; k < r->nshards && r->n < MAX_STORES; k++)
            if (r->shards[k] < meta.shards && !find_store(r, meta.name, r->shards[k]))
                open_store(r, &meta, r->shards[k]);
    }
    for (size_t i = 0; i < n; i++)
        free(keys[i]);
    free(keys);
}

/* ---- status, health, metrics ----------------------------------------------------------- */

static json_t *store_status(shard_store *s, int digest)
{
    pthread_mutex_lock(&s->mu);
    uint64_t pos = s->pos, last = s->last;
    int log_ok = s->log_ok;
    char lerr[1024];
    snprintf(lerr, sizeof lerr, "%s", s->last_error);
    pthread_mutex_unlock(&s->mu);
    json_t *j = json_pack("{s:s,s:i,s:s,s:I,s:I,s:I,s:b,s:b,s:I,s:I}", "collection",
                          s->meta.name, "shard", s->shard, "replica", s->r->name, "seq",
                          (json_int_t)pos, "log_last", (json_int_t)last, "lag",
                          (json_int_t)(last > pos ? last - pos : 0), "in_queue_group",
                          s->qsub != NULL, "log_reachable", log_ok, "applied",
                          (json_int_t)atomic_load(&s->applied_total), "apply_errors",
                          (json_int_t)atomic_load(&s->apply_errors));
    if (*lerr)
        json_object_set_new(j, "last_error", json_string(lerr));
    uint64_t dseq = 0, dig = 0, docs = 0;
    pthread_rwlock_rdlock(&s->dblock);
    int drc = digest && s->db ? rag_collection_digest(s->db, s->meta.name, &dseq, &dig, &docs)
                              : RAG_ENOTFOUND;
    pthread_rwlock_unlock(&s->dblock);
    if (drc == RAG_OK) {
        char hex[17];
        snprintf(hex, sizeof hex, "%016llx", (unsigned long long)dig);
        json_object_set_new(j, "digest", json_pack("{s:I,s:s,s:I}", "seq", (json_int_t)dseq,
                                                   "hash", hex, "documents",
                                                   (json_int_t)docs));
    }
    return j;
}

static json_t *replica_status(replica *r, int digest)
{
    json_t *arr = json_array();
    pthread_mutex_lock(&r->mu);
    size_t n = r->n;
    pthread_mutex_unlock(&r->mu);
    for (size_t i = 0; i < n; i++)
        json_array_append_new(arr, store_status(r->stores[i], digest));
    return json_pack("{s:s,s:b,s:o}", "replica", r->name, "broker_connected",
                     clog_connected(r->log), "stores", arr);
}

static char *on_status(void *user, const char *req, size_t len, size_t *rlen)
{
    json_t *j = replica_status(user, 1);
    char *text = json_dumps(j, JSON_COMPACT);
    json_decref(j);
    *rlen = text ? strlen(text) : 0;
    return text;
}

static void metrics_text(replica *r, chttp_reply *out)
{
    size_t cap = 1 << 16, len = 0;
    char *b = malloc(cap);
    if (!b) {
        chttp_error(out, 500, "internal", "out of memory");
        return;
    }
    static const char *const names[] = {
        "ragcore_cluster_apply_position", "ragcore_cluster_log_last",
        "ragcore_cluster_apply_lag", "ragcore_cluster_in_queue_group",
        "ragcore_cluster_applied_total", "ragcore_cluster_apply_errors_total",
        "ragcore_cluster_queries_total", "ragcore_cluster_queries_behind_total"};
    pthread_mutex_lock(&r->mu);
    size_t n = r->n;
    pthread_mutex_unlock(&r->mu);
    for (size_t m = 0; m < sizeof names / sizeof names[0]; m++) {
        len += (size_t)snprintf(b + len, cap - len, "# TYPE %s %s\n", names[m],
                                strstr(names[m], "_total") ? "counter" : "gauge");
        for (size_t i = 0; i < n && len < cap - 512; i++) {
            shard_store *s = r->stores[i];
            pthread_mutex_lock(&s->mu);
            uint64_t pos = s->pos, last = s->last;
            pthread_mutex_unlock(&s->mu);
            uint64_t v[] = {pos, last, last > pos ? last - pos : 0, s->qsub != NULL,
                            atomic_load(&s->applied_total), atomic_load(&s->apply_errors),
                            atomic_load(&s->queries), atomic_load(&s->behind)};
            len += (size_t)snprintf(b + len, cap - len,
                                    "%s{collection=\"%s\",shard=\"%d\"} %llu\n", names[m],
                                    s->meta.name, s->shard, (unsigned long long)v[m]);
        }
    }
    out->status = 200;
    out->body = b;
    out->ctype = "text/plain; version=0.0.4";
}

/* Health, metrics and status only: no collection data and no writes, so no key is asked
 * (bind it to loopback or an operations network). */
static void on_http(void *user, const char *method, const char *path, const char *api_key,
                    const char *body, size_t len, chttp_reply *out)
{
    replica *r = user;
    if (!strcmp(path, "/metrics")) {
        metrics_text(r, out);
    } else if (!strcmp(path, "/healthz")) {
        json_t *st = replica_status(r, 0);
        int ok = clog_connected(r->log);
        json_t *stores = json_object_get(st, "stores");
        for (size_t i = 0; i < json_array_size(stores); i++)
            ok &= json_integer_value(json_object_get(json_array_get(stores, i), "lag")) <=
                  r->cfg.max_lag;
        json_object_set_new(st, "status", json_string(ok ? "ok" : "lagging"));
        chttp_json(out, ok ? 200 : 503, st);
    } else if (!strcmp(path, "/v1/cluster/status")) {
        chttp_json(out, 200, replica_status(r, 1));
    } else {
        chttp_error(out, 404, "not_found", "no route %s %s on a replica", method, path);
    }
}

/* ---- main ------------------------------------------------------------------------------- */

/* Environment variable name in seconds, a positive integer (def when unset), as
 * milliseconds in *ms: 0, or -1 with a message naming the variable on stderr. */
static int env_seconds(const char *name, long def, double *ms)
{
    const char *v = getenv(name);
    char *end = NULL;
    errno = 0;
    long n = v ? strtol(v, &end, 10) : def;
    if (v && (end == v || *end || errno || n <= 0 || n > 100000000L)) {
        fprintf(stderr, "ragcore-server cluster replica: %s='%s': expected a positive whole "
                "number of seconds (default %ld)\n", name, v, def);
        return -1;
    }
    *ms = 1000.0 * (double)n;
    return 0;
}

static void usage(FILE *f)
{
    fprintf(f, "usage: ragcore-server cluster replica --config FILE --data DIR --shards N[,N...]\n"
               "         [--listen HOST:PORT] [--name NAME] [--port-file FILE]\n");
}

int cluster_replica_main(int argc, char **argv)
{
    static replica r;
    const char *config = NULL, *listen = "127.0.0.1:0", *port_file = NULL, *shards = NULL;
    char err[1024];
    static const struct option opts[] = {{"config", 1, 0, 'c'}, {"data", 1, 0, 'd'},
                                         {"shards", 1, 0, 's'}, {"listen", 1, 0, 'l'},
                                         {"name", 1, 0, 'n'},   {"port-file", 1, 0, 'p'},
                                         {"help", 0, 0, 'h'},   {0, 0, 0, 0}};
    int c;
    snprintf(r.name, sizeof r.name, "replica-%d", (int)getpid());
    while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (c) {
        case 'c': config = optarg; break;
        case 'd': snprintf(r.data, sizeof r.data, "%s", optarg); break;
        case 's': shards = optarg; break;
        case 'l': listen = optarg; break;
        case 'n': snprintf(r.name, sizeof r.name, "%s", optarg); break;
        case 'p': port_file = optarg; break;
        case 'h': usage(stdout); return 0;
        default: usage(stderr); return 1;
        }
    }
    if (!config || !*r.data || !shards) {
        usage(stderr);
        return 1;
    }
    for (const char *p = shards; *p;) {
        char *end;
        long v = strtol(p, &end, 10);
        if (end == p || v < 0 || v >= CLUSTER_MAX_SHARDS || r.nshards == CLUSTER_MAX_SHARDS) {
            fprintf(stderr, "ragcore-server cluster replica: --shards '%s': expected shard "
                    "numbers 0..%d separated by commas\n", shards, CLUSTER_MAX_SHARDS - 1);
            return 1;
        }
        r.shards[r.nshards++] = (int)v;
        p = *end == ',' ? end + 1 : end;
        if (*end && *end != ',') {
            fprintf(stderr, "ragcore-server cluster replica: --shards '%s': unexpected '%c'\n",
                    shards, *end);
            return 1;
        }
    }
    /* RAGCORE_CLUSTER_TEST_KILL=before_commit:N|after_commit:N; the older
     * RAGCORE_CLUSTER_TEST_EXIT_BEFORE_COMMIT=N means before_commit:N */
    const char *kill = getenv("RAGCORE_CLUSTER_TEST_KILL");
    const char *before = getenv("RAGCORE_CLUSTER_TEST_EXIT_BEFORE_COMMIT");
    if (kill && !strncmp(kill, "before_commit:", 14)) {
        r.kill_point = KILL_BEFORE_COMMIT;
        r.kill_after = atol(kill + 14);
    } else if (kill && !strncmp(kill, "after_commit:", 13)) {
        r.kill_point = KILL_AFTER_COMMIT;
        r.kill_after = atol(kill + 13);
    } else if (before) {
        r.kill_point = KILL_BEFORE_COMMIT;
        r.kill_after = atol(before);
    }
    /* RAGCORE_CLUSTER_TEST_DROP=start:N,get:M (test hook): the N-th start and M-th get
     * request this replica answers get no answer */
    const char *drop = getenv("RAGCORE_CLUSTER_TEST_DROP");
    for (const char *p = drop; p && *p; p = strchr(p, ',') ? strchr(p, ',') + 1 : "") {
        if (!strncmp(p, "start:", 6))
            r.drop_nth[OP_START] = atol(p + 6);
        else if (!strncmp(p, "get:", 4))
            r.drop_nth[OP_GET] = atol(p + 4);
    }
    /* RAGCORE_CLUSTER_TEST_BACKUP=slow:S|fail (test hook): the first backup this replica
     * makes stays "making" for S s before it begins, or fails */
    const char *tb = getenv("RAGCORE_CLUSTER_TEST_BACKUP");
    if (tb && !strncmp(tb, "slow:", 5))
        r.test_backup_slow_s = atoi(tb + 5);
    else if (tb && !strcmp(tb, "fail"))
        r.test_backup_fail = 1;
    if (env_seconds("RAGCORE_CLUSTER_BACKUP_IDLE_S", BACKUP_IDLE_S_DEFAULT,
                    &r.backup_idle_ms) < 0 ||
        env_seconds("RAGCORE_CLUSTER_BACKUP_WAIT_S", BACKUP_WAIT_S_DEFAULT,
                    &r.backup_wait_ms) < 0)
        return 1;
    pthread_mutex_init(&r.mu, NULL);
    pthread_mutex_init(&r.bk_mu, NULL);
    pthread_cond_init(&r.bk_cv, NULL);
    chttp *http = NULL;
    int code = cluster_role_start("replica", config, &r.cfg, r.name, &r.log, listen, 2, on_http,
                                  &r, port_file, &http);
    char peer[300], backups[2200];
    snprintf(peer, sizeof peer, "rag.peer.%s", r.name);
    snprintf(backups, sizeof backups, "%s/.backups", r.data);
    rm_tree(backups); /* left by a replica killed while a new one copied its store */
    if (code == 0 &&
        (rpc_serve(r.log, "rag.status", NULL, on_status, &r, &r.status_sub, err, sizeof err) < 0 ||
         rpc_serve(r.log, peer, NULL, on_backup, &r, &r.peer_sub, err, sizeof err) < 0)) {
        fprintf(stderr, "ragcore-server cluster replica: %s\n", err);
        code = 2;
    }
    if (code != 0)
        goto done;
    while (!cluster_stopping()) {
        discover(&r);
        backup_sweep(&r, 0);
        cluster_sleep_ms(1000);
    }
done:
    chttp_stop(http);
    rpc_unserve(r.status_sub);
    rpc_unserve(r.peer_sub);
    for (size_t i = 0; i < r.n; i++) {
        rpc_unserve(r.stores[i]->bsub);
        r.stores[i]->bsub = NULL;
    }
    backup_sweep(&r, 1); /* no new backup can start now; those being made finish first */
    for (size_t i = 0; i < r.n; i++) {
        shard_store *s = r.stores[i];
        pthread_join(s->applier, NULL);
        rpc_unserve(s->qsub);
        rpc_unserve(s->hsub);
        int rc = rag_close(s->db);
        if (rc != RAG_OK)
            code = 1;
    }
    clog_close(r.log);
    cluster_config_free(&r.cfg);
    fprintf(stderr, "replica %s: stopped\n", r.name);
    return code;
}
