/* metrics.c - Prometheus metrics kept in lock-free counters, rendered on scrape. */
#include "metrics.h"

#include <stdarg.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static const int STATUSES[] = {200, 201, 204, 400, 401, 403, 404, 405, 409,
                               413, 429, 500, 501, 503, 0 /* other */};
#define NSTATUS (sizeof STATUSES / sizeof STATUSES[0])
static const double BUCKETS[] = {0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05,
                                 0.1,    0.25,  0.5,    1,     2.5,   5,     10};
#define NBUCKET (sizeof BUCKETS / sizeof BUCKETS[0])

typedef struct route_stats {
    _Atomic uint64_t by_status[NSTATUS];
    _Atomic uint64_t buckets[NBUCKET + 1]; /* non-cumulative; last is +Inf */
    _Atomic uint64_t sum_us;
} route_stats;

struct srv_metrics {
    size_t nroutes;
    const char *const *names;
    route_stats *routes;
    _Atomic uint64_t ingest_docs, ingest_chunks, ingest_bytes, ingest_requests, ingest_us;
    _Atomic uint64_t embed_texts, embed_us;
    _Atomic uint64_t qlog_dropped, qlog_bytes;
    _Atomic uint64_t conn_events[METRIC_CONN_EVENTS];
    _Atomic int conn_limit;
    _Atomic uint64_t rate_limited[2];
    time_t started;
};

srv_metrics *metrics_create(size_t nroutes, const char *const *route_names)
{
    srv_metrics *m = calloc(1, sizeof *m);
    if (!m)
        return NULL;
    m->routes = calloc(nroutes, sizeof *m->routes);
    if (!m->routes) {
        free(m);
        return NULL;
    }
    m->nroutes = nroutes;
    m->names = route_names;
    m->started = time(NULL);
    return m;
}

void metrics_free(srv_metrics *m)
{
    if (!m)
        return;
    free(m->routes);
    free(m);
}

void metrics_request(srv_metrics *m, int route, int status, double seconds)
{
    if (!m || route < 0 || (size_t)route >= m->nroutes)
        return;
    route_stats *rs = &m->routes[route];
    size_t si = NSTATUS - 1;
    for (size_t i = 0; i + 1 < NSTATUS; i++)
        if (STATUSES[i] == status)
            si = i;
    atomic_fetch_add_explicit(&rs->by_status[si], 1, memory_order_relaxed);
    size_t b = 0;
    while (b < NBUCKET && seconds > BUCKETS[b])
        b++;
    atomic_fetch_add_explicit(&rs->buckets[b], 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&rs->sum_us, (uint64_t)(seconds * 1e6), memory_order_relaxed);
}

void metrics_ingest(srv_metrics *m, const rag_ingest_stats *st, double seconds)
{
    atomic_fetch_add(&m->ingest_requests, 1);
    atomic_fetch_add(&m->ingest_docs, st->documents);
    atomic_fetch_add(&m->ingest_chunks, st->chunks);
    atomic_fetch_add(&m->ingest_bytes, st->bytes);
    atomic_fetch_add(&m->ingest_us, (uint64_t)(seconds * 1e6));
}

void metrics_embed(srv_metrics *m, size_t texts, double seconds)
{
    atomic_fetch_add(&m->embed_texts, texts);
    atomic_fetch_add(&m->embed_us, (uint64_t)(seconds * 1e6));
}

void metrics_querylog_dropped(srv_metrics *m, size_t n)
{
    atomic_fetch_add(&m->qlog_dropped, n);
}

void metrics_querylog_bytes(srv_metrics *m, uint64_t bytes)
{
    atomic_store(&m->qlog_bytes, bytes);
}

void metrics_connection_event(srv_metrics *m, enum metric_conn_event ev)
{
    if (m && (unsigned)ev < METRIC_CONN_EVENTS)
        atomic_fetch_add_explicit(&m->conn_events[ev], 1, memory_order_relaxed);
}

void metrics_connection_limit(srv_metrics *m, int limit)
{
    if (m)
        atomic_store(&m->conn_limit, limit);
}

void metrics_rate_limited(srv_metrics *m, int tokens)
{
    if (m)
        atomic_fetch_add_explicit(&m->rate_limited[tokens ? 1 : 0], 1, memory_order_relaxed);
}

/* Growable text buffer. */
typedef struct buf {
    char *p;
    size_t len, cap;
    int oom;
} buf;

__attribute__((format(printf, 2, 3))) static void bprintf(buf *b, const char *fmt, ...)
{
    if (b->oom)
        return;
    for (;;) {
        va_list ap;
        va_start(ap, fmt);
        /* b->p is NULL until the first growth (NULL + 0 is undefined behaviour) */
        int n = vsnprintf(b->p ? b->p + b->len : NULL, b->cap - b->len, fmt, ap);
        va_end(ap);
        if (n < 0) {
            b->oom = 1;
            return;
        }
        if (b->len + (size_t)n < b->cap) {
            b->len += (size_t)n;
            return;
        }
        size_t cap = (b->cap + (size_t)n + 1) * 2;
        char *p = realloc(b->p, cap);
        if (!p) {
            b->oom = 1;
            return;
        }
        b->p = p;
        b->cap = cap;
    }
}

/* "GET /v1/x" -> method and path labels. */
static void route_labels(const char *name, char *method, size_t mlen, const char **path)
{
    size_t n = strcspn(name, " ");
    snprintf(method, mlen, "%.*s", (int)n, name);
    *path = name[n] ? name + n + 1 : name;
}

static void render_collections(buf *b, rag_db *db, metrics_filter_fn filter, void *user)
{
    char **names = NULL;
    size_t count = 0;
    if (rag_collection_list(db, &names, &count) != RAG_OK)
        return;
    static const char *const G[][2] = {
        {"documents", "Live documents per collection."},
        {"chunks", "Live chunks per collection."},
        {"duplicate_chunks", "Live chunks whose text already existed."},
        {"tombstones", "Deleted vectors still in the index."},
        {"index_vectors", "Vectors in the in-memory index (index size)."},
        {"text_bytes", "Bytes of document text."},
        {"last_ingest_timestamp_seconds", "Unix time of the latest ingest (0: none)."},
        {"ingest_age_seconds", "Seconds since the latest ingest (-1: never ingested)."},
        {"freshness_lag_seconds", "Age of the newest source time (mtime, else ingest) in seconds."},
        {"oldest_source_age_seconds", "Age of the oldest source time in seconds."},
        {"stale_documents", "Documents older than the freshness objective (30 days)."},
        {"expired_documents", "Documents past valid_until, not yet purged."},
        {"sync_lag_seconds", "Seconds since the last completed sync (-1: never synced)."},
    };
    rag_collection_info *infos = calloc(count ? count : 1, sizeof *infos);
    rag_freshness_info *fresh = calloc(count ? count : 1, sizeof *fresh);
    int *ok = calloc(count ? count : 1, sizeof *ok);
    time_t now = time(NULL);
    if (!infos || !fresh || !ok)
        goto cleanup;
    for (size_t i = 0; i < count; i++)
        ok[i] = filter(user, names[i]) &&
                rag_collection_stats(db, names[i], &infos[i]) == RAG_OK &&
                rag_collection_freshness(db, names[i], 0, (int64_t)now, &fresh[i]) == RAG_OK;
    for (size_t g = 0; g < sizeof G / sizeof G[0]; g++) {
        bprintf(b, "# HELP ragcore_collection_%s %s\n# TYPE ragcore_collection_%s gauge\n",
                G[g][0], G[g][1], G[g][0]);
        for (size_t i = 0; i < count; i++) {
            if (!ok[i])
                continue;
            const rag_collection_info *in = &infos[i];
            long long v = 0;
            switch (g) {
            case 0: v = (long long)in->documents; break;
            case 1: v = (long long)in->chunks; break;
            case 2: v = (long long)in->duplicate_chunks; break;
            case 3: v = (long long)in->tombstones; break;
            case 4: v = (long long)in->index_vectors; break;
            case 5: v = (long long)in->bytes_text; break;
            case 6: v = (long long)in->newest_ingest; break;
            case 7: v = in->newest_ingest ? (long long)(now - in->newest_ingest) : -1; break;
            case 8: v = fresh[i].newest_source ? (long long)(now - fresh[i].newest_source) : -1; break;
            case 9: v = fresh[i].oldest_source ? (long long)(now - fresh[i].oldest_source) : -1; break;
            case 10: v = (long long)fresh[i].stale; break;
            case 11: v = (long long)fresh[i].expired; break;
            default: v = fresh[i].sync_lag; break;
            }
            bprintf(b, "ragcore_collection_%s{collection=\"%s\"} %lld\n", G[g][0], names[i], v);
        }
    }
cleanup:
    free(infos);
    free(fresh);
    free(ok);
    rag_strings_free(names, count);
}

char *metrics_render(srv_metrics *m, rag_db *db, metrics_filter_fn filter, void *filter_user,
                     long inflight, const int *loop_conns, int nloops, int ready, size_t *len)
{
    static const char *const CONN_EVENTS[METRIC_CONN_EVENTS] = {
        [METRIC_CONN_HEADER_TIMEOUT] = "header_timeout",
        [METRIC_CONN_BODY_TIMEOUT] = "body_timeout",
        [METRIC_CONN_ROOM] = "room",
        [METRIC_CONN_REFUSED] = "refused",
    };
    buf b = {0};
    char method[16];
    const char *path;

    bprintf(&b, "# HELP ragcore_requests_total HTTP requests by route, method and status.\n"
                "# TYPE ragcore_requests_total counter\n");
    for (size_t r = 0; r < m->nroutes; r++) {
        route_labels(m->names[r], method, sizeof method, &path);
        for (size_t s = 0; s < NSTATUS; s++) {
            uint64_t v = atomic_load_explicit(&m->routes[r].by_status[s], memory_order_relaxed);
            if (!v)
                continue;
            if (STATUSES[s])
                bprintf(&b, "ragcore_requests_total{route=\"%s\",method=\"%s\",status=\"%d\"} %llu\n",
                        path, method, STATUSES[s], (unsigned long long)v);
            else
                bprintf(&b, "ragcore_requests_total{route=\"%s\",method=\"%s\",status=\"other\"} %llu\n",
                        path, method, (unsigned long long)v);
        }
    }
    bprintf(&b, "# HELP ragcore_request_duration_seconds Request latency by route.\n"
                "# TYPE ragcore_request_duration_seconds histogram\n");
    for (size_t r = 0; r < m->nroutes; r++) {
        route_stats *rs = &m->routes[r];
        uint64_t counts[NBUCKET + 1], total = 0;
        for (size_t i = 0; i <= NBUCKET; i++) {
            counts[i] = atomic_load_explicit(&rs->buckets[i], memory_order_relaxed);
            total += counts[i];
        }
        if (!total)
            continue;
        route_labels(m->names[r], method, sizeof method, &path);
        uint64_t cum = 0;
        for (size_t i = 0; i < NBUCKET; i++) {
            cum += counts[i];
            bprintf(&b, "ragcore_request_duration_seconds_bucket{route=\"%s\",method=\"%s\",le=\"%g\"} %llu\n",
                    path, method, BUCKETS[i], (unsigned long long)cum);
        }
        bprintf(&b, "ragcore_request_duration_seconds_bucket{route=\"%s\",method=\"%s\",le=\"+Inf\"} %llu\n",
                path, method, (unsigned long long)total);
        bprintf(&b, "ragcore_request_duration_seconds_sum{route=\"%s\",method=\"%s\"} %.6f\n", path,
                method, atomic_load(&rs->sum_us) / 1e6);
        bprintf(&b, "ragcore_request_duration_seconds_count{route=\"%s\",method=\"%s\"} %llu\n",
                path, method, (unsigned long long)total);
    }
    bprintf(&b, "# HELP ragcore_requests_in_flight Requests being served.\n"
                "# TYPE ragcore_requests_in_flight gauge\nragcore_requests_in_flight %ld\n",
            inflight);
    bprintf(&b, "# HELP ragcore_http_connections Connections open on each HTTP event loop.\n"
                "# TYPE ragcore_http_connections gauge\n");
    for (int i = 0; i < nloops; i++)
        bprintf(&b, "ragcore_http_connections{loop=\"%d\"} %d\n", i, loop_conns[i]);
    bprintf(&b, "# HELP ragcore_http_connection_limit Connections that may be open at once.\n"
                "# TYPE ragcore_http_connection_limit gauge\nragcore_http_connection_limit %d\n",
            atomic_load(&m->conn_limit));
    bprintf(&b, "# HELP ragcore_http_connections_closed_total Connections closed by the server "
                "(header_timeout, body_timeout, room: to admit a new one) or refused at accept.\n"
                "# TYPE ragcore_http_connections_closed_total counter\n");
    for (int i = 0; i < METRIC_CONN_EVENTS; i++)
        bprintf(&b, "ragcore_http_connections_closed_total{reason=\"%s\"} %llu\n", CONN_EVENTS[i],
                (unsigned long long)atomic_load(&m->conn_events[i]));
    bprintf(&b, "# HELP ragcore_rate_limited_total Requests refused (429) by a per-key budget.\n"
                "# TYPE ragcore_rate_limited_total counter\n"
                "ragcore_rate_limited_total{budget=\"requests\"} %llu\n"
                "ragcore_rate_limited_total{budget=\"tokens\"} %llu\n",
            (unsigned long long)atomic_load(&m->rate_limited[0]),
            (unsigned long long)atomic_load(&m->rate_limited[1]));
    bprintf(&b, "# HELP ragcore_ready 1 when the store is open and serving.\n"
                "# TYPE ragcore_ready gauge\nragcore_ready %d\n", ready);
    bprintf(&b, "# HELP ragcore_start_time_seconds Unix time the server started.\n"
                "# TYPE ragcore_start_time_seconds gauge\nragcore_start_time_seconds %lld\n",
            (long long)m->started);
    bprintf(&b, "# HELP ragcore_ingest_requests_total Ingest requests committed.\n"
                "# TYPE ragcore_ingest_requests_total counter\nragcore_ingest_requests_total %llu\n"
                "# HELP ragcore_ingest_documents_total Documents written.\n"
                "# TYPE ragcore_ingest_documents_total counter\nragcore_ingest_documents_total %llu\n"
                "# HELP ragcore_ingest_chunks_total Chunks written.\n"
                "# TYPE ragcore_ingest_chunks_total counter\nragcore_ingest_chunks_total %llu\n"
                "# HELP ragcore_ingest_bytes_total Text bytes ingested.\n"
                "# TYPE ragcore_ingest_bytes_total counter\nragcore_ingest_bytes_total %llu\n"
                "# HELP ragcore_ingest_seconds_total Time spent in ingest transactions.\n"
                "# TYPE ragcore_ingest_seconds_total counter\nragcore_ingest_seconds_total %.6f\n",
            (unsigned long long)atomic_load(&m->ingest_requests),
            (unsigned long long)atomic_load(&m->ingest_docs),
            (unsigned long long)atomic_load(&m->ingest_chunks),
            (unsigned long long)atomic_load(&m->ingest_bytes), atomic_load(&m->ingest_us) / 1e6);
    bprintf(&b, "# HELP ragcore_embed_texts_total Texts embedded by /v1/embeddings.\n"
                "# TYPE ragcore_embed_texts_total counter\nragcore_embed_texts_total %llu\n"
                "# HELP ragcore_embed_seconds_total Time spent embedding for /v1/embeddings.\n"
                "# TYPE ragcore_embed_seconds_total counter\nragcore_embed_seconds_total %.6f\n"
                "# HELP ragcore_querylog_dropped_total Query-log entries dropped (queue full).\n"
                "# TYPE ragcore_querylog_dropped_total counter\nragcore_querylog_dropped_total %llu\n"
                "# HELP ragcore_querylog_bytes Store bytes the query log occupies.\n"
                "# TYPE ragcore_querylog_bytes gauge\nragcore_querylog_bytes %llu\n",
            (unsigned long long)atomic_load(&m->embed_texts), atomic_load(&m->embed_us) / 1e6,
            (unsigned long long)atomic_load(&m->qlog_dropped),
            (unsigned long long)atomic_load(&m->qlog_bytes));
    if (db && filter)
        render_collections(&b, db, filter, filter_user);
    if (b.oom || !b.p) {
        free(b.p);
        return NULL;
    }
    *len = b.len;
    return b.p;
}
