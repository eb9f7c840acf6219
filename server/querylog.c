/* querylog.c - the query log, batched into the store's "querylog" table. */
#include "querylog.h"

#include "clock.h"
#include "json_writer.h"
#include "log.h"

#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>

#define QLOG_TABLE "querylog"
#define QLOG_MAX_PENDING 100000
#define QLOG_KEY_LEN 12
#define QLOG_SHRINK_BATCHES 64

struct srv_querylog {
    rag_db *db;
    srv_limits *limits;
    srv_metrics *metrics;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    pthread_mutex_t flush_mu;     /* one flush at a time (the writer thread, qlog_flush) */
    jw pending;               /* entries not yet written: JSON objects joined by ',' */
    size_t n_pending;
    unsigned char last_key[QLOG_KEY_LEN];
    uint64_t last_us;
    uint32_t seq;
    int stop;
    pthread_t thread;
    time_t last_trim;
    /* a shrink under way (querylog_max_bytes): the last step hit QLOG_SHRINK_BATCHES, so
     * the next flush drops more; what the steps so far dropped, and the longest step */
    int shrinking;
    long shrink_batches;
    double shrink_step_max;
};

/* Keys are big-endian so that byte order is time order. */
static void put_be32(unsigned char *p, uint32_t v)
{
    for (int i = 3; i >= 0; i--, v >>= 8)
        p[i] = (unsigned char)v;
}

static void put_be64(unsigned char *p, uint64_t v)
{
    put_be32(p, (uint32_t)(v >> 32));
    put_be32(p + 4, (uint32_t)v);
}

static void key_hex(const unsigned char *k, char out[25])
{
    static const char D[] = "0123456789abcdef";
    for (int i = 0; i < QLOG_KEY_LEN; i++) {
        out[2 * i] = D[k[i] >> 4];
        out[2 * i + 1] = D[k[i] & 15];
    }
    out[24] = 0;
}

static int unhex(const char *s, unsigned char *out, size_t n)
{
    if (strlen(s) != 2 * n)
        return -1;
    for (size_t i = 0; i < 2 * n; i++) {
        char c = s[i];
        int v = c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
        if (v < 0)
            return -1;
        out[i / 2] = (unsigned char)(i % 2 ? out[i / 2] | v : v << 4);
    }
    return 0;
}

/* An empty batch: one ' ' that jw_finish's caller turns into the array's '['. */
static void batch_init(jw *w)
{
    jw_init(w, 4096);
    jw_lit(w, " ");
}

/* Bounds the log by limits->querylog_max_bytes after a write (`wrote`) or while a shrink is
 * under way: past the bound, drops the oldest batches down to 90 % of it (so a steady
 * stream trims now and then), at most QLOG_SHRINK_BATCHES per flush so that the store's
 * writer is held briefly; an oversized log (a bound lowered, an upgrade) shrinks over
 * successive flushes. One log line per shrink, when it ends. Keeps the size gauge. */
static void shrink(srv_querylog *q, int wrote)
{
    long max_bytes = atomic_load(&q->limits->querylog_max_bytes);
    uint64_t bytes = 0, max = (uint64_t)max_bytes;
    if (!wrote && !q->shrinking)
        return;
    if (max_bytes <= 0) { /* no bound: the size is still reported */
        q->shrinking = 0;
        if (rag_table_bytes(q->db, QLOG_TABLE, &bytes) == RAG_OK)
            metrics_querylog_bytes(q->metrics, bytes);
        return;
    }
    uint64_t target = max - max / 10;
    double t0 = srv_monotonic();
    uint64_t deleted = 0;
    int rc = rag_table_shrink(q->db, QLOG_TABLE, q->shrinking ? target : max, target,
                              QLOG_SHRINK_BATCHES, &deleted, &bytes);
    double step = srv_monotonic() - t0;
    if (rc != RAG_OK) {
        log_msg("error", "querylog_shrink", "%s: %s", rag_strerror(rc), rag_errmsg());
        q->shrinking = 0;
        return;
    }
    metrics_querylog_bytes(q->metrics, bytes);
    if (deleted > 0 && step > q->shrink_step_max)
        q->shrink_step_max = step;
    q->shrink_batches += (long)deleted;
    q->shrinking = deleted == QLOG_SHRINK_BATCHES;
    if (!q->shrinking && q->shrink_batches > 0) {
        log_msg("info", "querylog_shrink",
                "dropped the %ld oldest batches of entries: now %llu bytes, bound %ld "
                "(longest step %.0f ms)", q->shrink_batches, (unsigned long long)bytes,
                max_bytes, q->shrink_step_max * 1e3);
        q->shrink_batches = 0;
        q->shrink_step_max = 0;
    }
}

/* Writes the pending batch (if any) and trims old entries when due. */
static void flush_locked(srv_querylog *q, int force_trim)
{
    jw batch;
    batch_init(&batch);
    pthread_mutex_lock(&q->mu);
    jw swap = q->pending; /* the batch taken; a fresh buffer for the searches meanwhile */
    q->pending = batch;
    batch = swap;
    size_t n = q->n_pending;
    q->n_pending = 0;
    unsigned char key[QLOG_KEY_LEN];
    memcpy(key, q->last_key, sizeof key);
    pthread_mutex_unlock(&q->mu);

    size_t len = 0;
    char *text = jw_finish(&batch, &len);
    if (n > 0) {
        int rc = RAG_ENOMEM;
        if (text) { /* the entries, joined by ',', become a JSON array in place */
            text[0] = '[';
            text[len] = ']';
            rc = rag_table_put(q->db, QLOG_TABLE, key, sizeof key, text, len + 1);
        }
        if (rc != RAG_OK) {
            log_msg("error", "querylog_write", "dropping %zu entries: %s: %s", n,
                    rag_strerror(rc), rc == RAG_ENOMEM ? "out of memory" : rag_errmsg());
            metrics_querylog_dropped(q->metrics, n);
        }
    }
    free(text);

    shrink(q, n > 0 || force_trim);

    time_t now = time(NULL);
    long retention = atomic_load(&q->limits->querylog_retention);
    if (retention > 0 && (force_trim || now - q->last_trim >= 60)) {
        unsigned char end[8];
        put_be64(end, (uint64_t)(now - retention) * 1000000u);
        int rc = rag_table_trim(q->db, QLOG_TABLE, end, sizeof end, NULL);
        if (rc != RAG_OK)
            log_msg("error", "querylog_trim", "%s: %s", rag_strerror(rc), rag_errmsg());
        q->last_trim = now;
    }
}

static void flush(srv_querylog *q, int force_trim)
{
    pthread_mutex_lock(&q->flush_mu);
    flush_locked(q, force_trim);
    pthread_mutex_unlock(&q->flush_mu);
}

void qlog_flush(srv_querylog *q)
{
    if (q)
        flush(q, 0);
}

char *qlog_text(srv_querylog *q, const char *text)
{
    int policy = atomic_load(&q->limits->querylog_text);
    char *out = NULL;
    if (policy == QLOG_TEXT_OFF || !text)
        return NULL;
    if (policy == QLOG_TEXT_RAW)
        return strdup(text);
    if (rag_pii_redact(q->db, text, strlen(text), policy == QLOG_TEXT_HASH ? RAG_PII_HASH
                                                                         : RAG_PII_MASK,
                       0, &out, NULL) != RAG_OK)
        return NULL;
    char *copy = strdup(out); /* the caller frees with free() */
    rag_free(out);
    return copy;
}

static void *writer_main(void *arg)
{
    srv_querylog *q = arg;
    flush(q, 1);
    pthread_mutex_lock(&q->mu);
    while (!q->stop) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_nsec += 200 * 1000000L;
        if (ts.tv_nsec >= 1000000000L) {
            ts.tv_sec++;
            ts.tv_nsec -= 1000000000L;
        }
        pthread_cond_timedwait(&q->cv, &q->mu, &ts);
        pthread_mutex_unlock(&q->mu);
        flush(q, 0);
        pthread_mutex_lock(&q->mu);
    }
    pthread_mutex_unlock(&q->mu);
    flush(q, 0);
    return NULL;
}

srv_querylog *qlog_start(rag_db *db, srv_limits *limits, srv_metrics *metrics)
{
    srv_querylog *q = calloc(1, sizeof *q);
    if (!q)
        return NULL;
    q->db = db;
    q->limits = limits;
    q->metrics = metrics;
    batch_init(&q->pending);
    pthread_mutex_init(&q->mu, NULL);
    pthread_mutex_init(&q->flush_mu, NULL);
    pthread_cond_init(&q->cv, NULL);
    if (q->pending.oom || pthread_create(&q->thread, NULL, writer_main, q) != 0) {
        free(q->pending.buf);
        pthread_mutex_destroy(&q->flush_mu);
        pthread_mutex_destroy(&q->mu);
        pthread_cond_destroy(&q->cv);
        free(q);
        return NULL;
    }
    return q;
}

void qlog_stop(srv_querylog *q)
{
    if (!q)
        return;
    pthread_mutex_lock(&q->mu);
    q->stop = 1;
    pthread_cond_signal(&q->cv);
    pthread_mutex_unlock(&q->mu);
    pthread_join(q->thread, NULL);
    free(q->pending.buf);
    pthread_mutex_destroy(&q->flush_mu);
    pthread_mutex_destroy(&q->mu);
    pthread_cond_destroy(&q->cv);
    free(q);
}

void qlog_record_fields(srv_querylog *q, const char *fields, size_t len, char id_out[25])
{
    struct timeval tv;
    unsigned char key[QLOG_KEY_LEN];
    char head[64];
    gettimeofday(&tv, NULL);
    uint64_t us = (uint64_t)tv.tv_sec * 1000000u + (uint64_t)tv.tv_usec;

    pthread_mutex_lock(&q->mu);
    if (us <= q->last_us) { /* same microsecond or clock stepped back: keep ids ordered */
        us = q->last_us;
        q->seq++;
    } else {
        q->last_us = us;
        q->seq = 0;
    }
    put_be64(key, us);
    put_be32(key + 8, q->seq);
    key_hex(key, id_out);
    if (q->pending.oom) { /* out of memory, here or at the last flush: start afresh */
        metrics_querylog_dropped(q->metrics, q->n_pending);
        q->n_pending = 0;
        free(q->pending.buf);
        batch_init(&q->pending);
    }
    if (q->n_pending >= QLOG_MAX_PENDING || q->pending.oom) {
        pthread_mutex_unlock(&q->mu);
        metrics_querylog_dropped(q->metrics, 1);
        return;
    }
    int n = snprintf(head, sizeof head, "%s{\"id\":\"%s\",\"ts_us\":%llu%s",
                     q->n_pending ? "," : "", id_out, (unsigned long long)us, len ? "," : "");
    jw_raw(&q->pending, head, (size_t)n);
    jw_raw(&q->pending, fields, len);
    jw_lit(&q->pending, "}");
    q->n_pending++;
    memcpy(q->last_key, key, sizeof key);
    pthread_mutex_unlock(&q->mu);
}

void qlog_record(srv_querylog *q, json_t *entry, char id_out[25])
{
    char *text = json_dumps(entry, JSON_COMPACT | JSON_PRESERVE_ORDER);
    json_decref(entry);
    if (!text) {
        metrics_querylog_dropped(q->metrics, 1);
        snprintf(id_out, 25, "%s", "");
        return;
    }
    size_t len = strlen(text); /* "{...}": the members only */
    qlog_record_fields(q, text + 1, len > 2 ? len - 2 : 0, id_out);
    free(text);
}

typedef struct page_ctx {
    char after[25];      /* entries must have id > after ("" none) */
    char from[25];       /* and id >= from */
    const char *collection;
    long limit;
    json_t *entries;
    int full;
} page_ctx;

static int page_visit(void *user, const void *key, size_t klen, const void *val, size_t vlen)
{
    page_ctx *c = user;
    json_t *batch = json_loadb(val, vlen, 0, NULL), *e;
    size_t i;
    (void)key;
    (void)klen;
    json_array_foreach(batch, i, e) {
        const char *id = json_string_value(json_object_get(e, "id"));
        if (!id || strcmp(id, c->after) <= 0 || strcmp(id, c->from) < 0)
            continue;
        if (c->collection) {
            const char *coll = json_string_value(json_object_get(e, "collection"));
            if (!coll || strcmp(coll, c->collection))
                continue;
        }
        if ((long)json_array_size(c->entries) >= c->limit) {
            c->full = 1;
            break;
        }
        json_array_append(c->entries, e);
    }
    json_decref(batch);
    return c->full;
}

int qlog_page(srv_querylog *q, const char *after, long long since, const char *collection,
              long limit, json_t **out)
{
    unsigned char start[QLOG_KEY_LEN] = {0}, tmp[QLOG_KEY_LEN];
    page_ctx c = {.collection = collection, .limit = limit};
    int rc;
    *out = NULL;
    if (after && *after) {
        if (unhex(after, tmp, sizeof tmp) < 0)
            return RAG_EINVAL;
        memcpy(start, tmp, sizeof start);
        snprintf(c.after, sizeof c.after, "%s", after);
    }
    if (since > 0) {
        put_be64(tmp, (uint64_t)since * 1000000u);
        memset(tmp + 8, 0, 4);
        key_hex(tmp, c.from);
        if (memcmp(tmp, start, sizeof tmp) > 0)
            memcpy(start, tmp, sizeof start);
    }
    c.entries = json_array();
    if (!c.entries)
        return RAG_ENOMEM;
    rc = rag_table_scan(q->db, QLOG_TABLE, start, sizeof start, page_visit, &c);
    if (rc < 0) { /* > 0: the visitor stopped the scan */
        json_decref(c.entries);
        return rc;
    }
    size_t n = json_array_size(c.entries);
    json_t *next = c.full && n ? json_deep_copy(json_object_get(json_array_get(c.entries, n - 1), "id"))
                               : json_null();
    *out = json_pack("{s:o,s:o}", "entries", c.entries, "next", next);
    return *out ? RAG_OK : RAG_ENOMEM;
}
