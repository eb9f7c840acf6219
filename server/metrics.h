/* metrics.h - Prometheus metrics: requests by route and status, latency histograms,
 * in-flight, ingest and embedder counters, per-collection gauges. */
#ifndef SRV_METRICS_H
#define SRV_METRICS_H

#include "ragcore.h"

#include <stddef.h>

typedef struct srv_metrics srv_metrics;

/* route_names[i] is "METHOD /path/{template}" (copied by reference: must outlive the
 * metrics). Returns NULL when out of memory. */
srv_metrics *metrics_create(size_t nroutes, const char *const *route_names);
void metrics_free(srv_metrics *m);

/* Counts one finished request. Lock-free; can't fail. */
void metrics_request(srv_metrics *m, int route, int status, double seconds);
void metrics_ingest(srv_metrics *m, const rag_ingest_stats *st, double seconds);
void metrics_embed(srv_metrics *m, size_t texts, double seconds);
void metrics_querylog_dropped(srv_metrics *m, size_t n);
/* The query log's size in the store, as last measured by its writer. */
void metrics_querylog_bytes(srv_metrics *m, uint64_t bytes);

/* What the connection table (conns.c) did: a connection closed past its header or body
 * deadline or to make room for a new one, or a new one refused. */
enum metric_conn_event {
    METRIC_CONN_HEADER_TIMEOUT,
    METRIC_CONN_BODY_TIMEOUT,
    METRIC_CONN_ROOM,
    METRIC_CONN_REFUSED,
    METRIC_CONN_EVENTS
};
/* Counts one event; m may be NULL. Lock-free; can't fail. */
void metrics_connection_event(srv_metrics *m, enum metric_conn_event ev);
/* The connection limit in force (after fitting it to the descriptor limit). */
void metrics_connection_limit(srv_metrics *m, int limit);
/* Counts a request refused with 429 by a per-key budget: requests (0) or tokens (1). */
void metrics_rate_limited(srv_metrics *m, int tokens);

/* Which collections' series a scrape may see: 1 when `collection` is shown. */
typedef int (*metrics_filter_fn)(void *user, const char *collection);

/* Renders the text exposition format (version 0.0.4): the process-level series, then the
 * gauges of each collection of `db` that filter(filter_user, name) accepts (none when db or
 * filter is NULL). loop_conns[0..nloops-1] are the connections open on each HTTP event
 * loop. Returns a malloc'd NUL-terminated string (length in *len) or NULL. */
char *metrics_render(srv_metrics *m, rag_db *db, metrics_filter_fn filter, void *filter_user,
                     long inflight, const int *loop_conns, int nloops, int ready, size_t *len);

#endif
