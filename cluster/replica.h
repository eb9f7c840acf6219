/* replica.h - a replica's answer to a shard query, callable without a broker (the query
 * subscription's handler runs it once the store has applied the request's min_seq). */
#ifndef CLUSTER_REPLICA_H
#define CLUSTER_REPLICA_H
#include "cluster.h"
#include "ragcore.h"
#include <stddef.h>
/* Answers shard query `body` (len bytes; the request format above on_query in replica.c:
 * dense and lexical sides, BM25 statistics, doc_exists) from collection meta->name of
 * store db: the reply JSON (malloc'd, *rlen bytes; NULL when out of memory), with an
 * "error" naming what the request got wrong. min_seq and wait_ms are not waited for. */
char *cluster_shard_query(rag_db *db, const cluster_coll *meta, const char *body, size_t len,
                          size_t *rlen);
#endif
