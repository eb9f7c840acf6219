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
/* One text query scored for toxicity; flagged when its score reached the threshold. */
void metrics_query_toxicity(srv_metrics *m, int flagged);
/* The query log's size in the store, as last measured by its writer. */
void metrics_querylog_bytes(srv_metrics *m, uint64_t bytes);

/* Renders the text exposition format (version 0.0.4). `db` may be NULL (no collection
 * gauges then); loop_conns[0..nloops-1] are the connections open on each HTTP event
 * loop. Returns a malloc'd NUL-terminated string (length in *len) or NULL. */
char *metrics_render(srv_metrics *m, rag_db *db, long inflight, const int *loop_conns,
                     int nloops, int ready, size_t *len);

#endif
