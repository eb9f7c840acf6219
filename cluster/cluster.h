/* cluster.h - ragcore-server's cluster mode: the cluster configuration file, collection
 * metadata, document placement, and the entry points of the router and replica roles. */
#ifndef CLUSTER_CLUSTER_H
#define CLUSTER_CLUSTER_H

#include "chttp.h"
#include "log.h"
#include "ragcore.h"

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#define CLUSTER_MAX_SHARDS 256
#define CLUSTER_MAX_URLS 16
/* The longest read-your-writes wait (config "ryw_wait_ms"; a replica bounds a query's
 * "wait_ms" by it). */
#define CLUSTER_RYW_WAIT_MAX_MS 600000

/* The cluster configuration file (JSON), shared by every process of a cluster. */
typedef struct cluster_config {
    char *nats[CLUSTER_MAX_URLS];    /* "nats": broker URLs */
    size_t n_nats;
    char *bucket;                    /* "meta_bucket": metadata bucket; "ragcore_meta" */
    int stream_replicas;             /* "stream_replicas": copies of each log; 3 */
    int dedup_window_s;              /* "dedup_window_s": message-id window; 120 */
    int stream_max_msgs;             /* "stream_max_msgs": retention, messages; 0 none */
    int stream_max_age_s;            /* "stream_max_age_s": retention, seconds; 0 none */
    int dup_compact_every;           /* "dup_compact_every": a duplicate log is compacted
                                      * (snapshot, purge) every this many messages; 0 never */
    int max_lag;                     /* "max_lag": a replica further behind leaves its
                                      * queue group; 1000 */
    int query_timeout_ms;            /* "query_timeout_ms": per shard request; 1000 */
    int ryw_wait_ms;                 /* "ryw_wait_ms": read-your-writes bound; 2000 */
    int publish_timeout_ms;          /* "publish_timeout_ms": per attempt; 2000 */
    int publish_attempts;            /* "publish_attempts": with backoff and jitter; 6 */
    int idf_exact;                   /* "idf": "shard" (0, default) or "exact" (1): BM25
                                      * statistics of every shard gathered first */
    int hedge_ms;                    /* "hedge_ms": a shard's request goes to a second
                                      * replica after this long without answer; 0: never */
    char *keys_bucket;               /* "keys_bucket": the API keys' bucket; "ragcore_keys" */
    int key_request_rate;            /* "key_request_rate": requests a second per API key
                                      * (the single server's limit of that name); 10000,
                                      * 0: no limit */
    int key_rate_router;             /* "key_rate_scope": "cluster" (0, default: the
                                      * routers report what they let through to each
                                      * other, so the rate holds for the cluster) or
                                      * "router" (1: each router's own) */
    char *admin_key_file;            /* "admin_key_file": a file holding the bootstrap admin
                                      * key of every router; NULL: none */
    char *pii_key_file;              /* "pii_key_file": pii "hash"'s HMAC key, the same file
                                      * on every router; NULL: pii "hash" refused */
} cluster_config;

/* Loads path; -1 with a message naming the file and field. cluster_config_free frees. */
int cluster_config_load(const char *path, cluster_config *cfg, char *err, size_t errlen);
void cluster_config_free(cluster_config *cfg);
/* Reads pii_key_file: one line of 32..128 hex digits (16..64 bytes; openssl rand -hex 32)
 * into key (cap bytes), *klen its length. -1 with a message naming the file. */
int cluster_pii_key_load(const char *path, unsigned char *key, size_t cap, size_t *klen,
                         char *err, size_t errlen);
/* Connects to the configured broker as `name`. */
int cluster_connect(const cluster_config *cfg, const char *name, clog **out, char *err,
                    size_t errlen);

/* A clustered collection's metadata (the value of its key in the metadata bucket). */
typedef struct cluster_coll {
    char name[129];
    int shards;
    char embedder[256];
    int dim;
    char index_spec[96];
    int chunk_tokens, chunk_overlap;
    char language[24];
    int64_t ttl_seconds;
    /* "settings": the hygiene policy, the single-node CollectionSettings (the library's
     * collection options; "language" and "ttl_seconds" there set the fields above). The
     * router applies its stateless part (quality, toxicity, PII mask or drop) before
     * chunking, pii "hash" with the cluster's key, and duplicate detection at the
     * collection's duplicate log (dedup.h). language is NULL. */
    rag_collection_options policy;
} cluster_coll;

/* Reads metadata JSON (or a create request, with defaults filled) into c; -1 with the
 * field named. `name` overrides the JSON's name when not NULL. */
int cluster_coll_from_json(json_t *j, const char *name, cluster_coll *c, char *err,
                           size_t errlen);
json_t *cluster_coll_to_json(const cluster_coll *c);
/* Loads a collection's metadata: 1 found, 0 absent, -1 error. */
int cluster_coll_load(clog *l, const char *name, cluster_coll *c, char *err, size_t errlen);

/* 1 when s can name a collection of a cluster (a stream name and subject token): 1..128
 * letters, digits, '_' or '-'. */
int cluster_valid_name(const char *s);

/* FNV-1a 64 of a document id (stable across processes, releases and machines). */
uint64_t cluster_id_hash(const char *doc_id);
/* The shard of a document: cluster_id_hash of its id modulo shards. */
int cluster_shard_of(const char *doc_id, int shards);

/* Every replica's stores (sequences, lag, digests; gathered for wait_ms) and each
 * collection's logs, per shard, with "diverged" true when two replicas at the same
 * sequence have different digests. */
json_t *cluster_gather_status(clog *l, int wait_ms);

/* Roles; each returns the process exit code. argv[0] is the role's name. */
int cluster_router_main(int argc, char **argv);
int cluster_replica_main(int argc, char **argv);
int cluster_status_main(int argc, char **argv);
/* `ragcore-server cluster ROLE ...` */
int cluster_main(int argc, char **argv);

/* Start of a role: loads the configuration file, installs the signal handlers, connects to
 * the broker as `name` (trying again for up to 30 s while it is not ready, e.g. electing
 * its JetStream leader) and starts the HTTP front on `listen` (its port written to port_file
 * when not NULL). Returns 0, else the exit code after printing why: 1 (configuration), 2
 * (broker or listener; whatever was started is left in *log and *http for the caller to
 * stop). */
int cluster_role_start(const char *role, const char *config, cluster_config *cfg,
                       const char *name, clog **log, const char *listen, int threads,
                       chttp_handler h, void *user, const char *port_file, chttp **http);

/* Process plumbing shared by the roles: SIGTERM/SIGINT set the flag returned by
 * cluster_stopping(). */
void cluster_signals(void);
int cluster_stopping(void);
double cluster_now_ms(void);
void cluster_sleep_ms(int ms);

#endif
