/* server.h - the state shared by the server's modules: configuration, store handle,
 * readiness, and the auth, metrics, query-log and writer subsystems. */
#ifndef SRV_SERVER_H
#define SRV_SERVER_H

#include "auth.h"
#include "config.h"
#include "metrics.h"
#include "querylog.h"
#include "ragcore.h"
#include "writer.h"

#include <stdatomic.h>

struct http_server;

typedef struct srv {
    srv_config cfg;
    /* Set once before `ready` first becomes 1, then constant until shutdown. */
    rag_db *db;
    srv_auth *auth;
    srv_querylog *qlog;
    srv_writer *writer;
    int dim;
    srv_metrics *metrics;         /* created before the listener starts */
    /* Toxicity detectors scoring each text query for the query log and /metrics; NULL
     * when they are not pulled (then no query is scored). */
    rag_toxicity *tox;
    struct http_server *http;
    atomic_int ready;             /* 1: store open and serving; 0 while starting/draining */
    atomic_int draining;          /* 1 after SIGTERM */
    atomic_long inflight;         /* requests being served */
} srv;

#endif
