/* config.h - server configuration from flags, environment (RAGCORE_*) and a config file. */
#ifndef SRV_CONFIG_H
#define SRV_CONFIG_H

#include <stdatomic.h>
#include <stddef.h>

/* Limits and switches that SIGHUP may change while the server runs; read them with
 * atomic_load (they are shared by every request thread). */
typedef struct srv_limits {
    _Atomic long max_body;          /* request body bytes; larger bodies get 413 */
    _Atomic long max_k;             /* largest "k" of a search */
    _Atomic long max_query_bytes;   /* longest "query" text */
    _Atomic long max_batch;         /* documents per ingest */
    _Atomic long max_filter_depth;  /* nesting depth of a search "filter" */
    _Atomic long max_inflight;      /* concurrent requests above which new ones get 429 */
    _Atomic long write_queue;       /* queued write requests above which new ones get 429 */
    _Atomic long querylog_retention;/* seconds a query-log entry is kept; 0: forever */
    _Atomic long querylog_max_bytes;/* store bytes the query log may occupy; 0: no bound */
    _Atomic long max_embed_inputs;  /* inputs per /v1/embeddings call */
    _Atomic long max_embed_tokens;  /* estimated encoder tokens per /v1/embeddings call */
    _Atomic long key_request_rate;  /* requests a second per API key; 0: no limit */
    _Atomic long key_token_rate;    /* /v1/embeddings tokens a second per API key; 0: none */
    _Atomic long header_timeout;    /* seconds for a request's line and headers to arrive */
    _Atomic long body_timeout;      /* seconds for a request's body to arrive after them */
    _Atomic long max_conns_per_client; /* connections of one client address (IPv6: /64) */
    _Atomic int access_log;         /* 1: one JSON access-log line per request */
    _Atomic int querylog;           /* 1: record searches in the query log */
    _Atomic int metrics_public;     /* 1: /metrics without a key shows process-level series */
    _Atomic int querylog_text;      /* query texts in the query log: QLOG_TEXT_* (querylog.h) */
} srv_limits;

typedef struct srv_config {
    char *db;             /* store directory (required) */
    char *key_file;       /* file holding an encrypted store's key; NULL: RAGCORE_STORE_KEY */
    char *listen;         /* HOST:PORT, default 127.0.0.1:8080; port 0 picks a free one */
    char *embedder;       /* built-in embedder for a new store; NULL: the store's */
    int dim;              /* dimension of the hash embedder for a new store; 0: default */
    char *index_spec;     /* FAISS index description for new collections; NULL: default */
    int ef_search;        /* HNSW search depth; 0: the library's default */
    int ef_construction;  /* HNSW build depth of inserts; 0: the library's default */
    int checkpoint_every; /* vectors added between automatic checkpoints; 0: default */
    char *tls_cert;       /* PEM files; both or neither */
    char *tls_key;
    int threads;          /* HTTP worker threads; 0: number of CPUs (at least 2) */
    int timeout;          /* per-connection idle timeout, seconds */
    int max_connections;  /* open connections at most (lowered to fit the descriptor limit) */
    int drain_timeout;    /* seconds SIGTERM waits for in-flight requests */
    char *port_file;      /* when set, the bound port is written there once listening */
    char *config_file;    /* the file the settings were read from, for SIGHUP */
    char *querylog_text;  /* "off", "mask" (default), "hash" or "raw": limits.querylog_text */
    srv_limits limits;
} srv_config;

/* Fills defaults. Can't fail. */
void config_init(srv_config *cfg);

/* Frees the strings of cfg (not cfg itself). */
void config_free(srv_config *cfg);

/* Reads settings in increasing precedence: the config file (--config F or RAGCORE_CONFIG),
 * the environment (RAGCORE_<NAME> with '-' as '_', e.g. RAGCORE_TLS_CERT), then flags
 * (--name value or --name=value). Returns 0, 1 when --help was asked (usage printed),
 * or -1 with a message naming the bad setting and its origin written to err. */
int config_load(srv_config *cfg, int argc, char **argv, char *err, size_t errlen);

/* Re-reads the config file and the environment for SIGHUP, applying only the reloadable
 * limits. Returns 0 or -1 with a message in err (nothing is changed then). */
int config_reload(srv_config *cfg, char *err, size_t errlen);

/* Prints the flag summary to `out` (a FILE *). */
void config_usage(void *out);

#endif
