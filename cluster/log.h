/* log.h - the cluster's ordered, replicated write log and its metadata bucket, behind a small
 * interface (implemented on NATS JetStream by log_nats.c; another broker, e.g. a
 * Kafka-compatible one, would implement these calls).
 *
 * One log per (collection, shard): appends are de-duplicated by message id within the
 * broker's window and get consecutive sequences from 1; a reader delivers messages in
 * sequence order from a given sequence. Collection metadata is a key-value bucket
 * replicated by the same broker. The same connection carries the request-reply traffic of
 * queries (rpc.h). Every call returns 0 or -1 with a message in err. A shard of -1 names
 * the collection's duplicate log (dedup.h), read and appended like a shard's, and
 * CLOG_DUPSNAP its snapshot stream (dupsnap.h). */
#ifndef CLUSTER_LOG_H
#define CLUSTER_LOG_H

#include <stddef.h>
#include <stdint.h>

/* The shard number of a collection's duplicate-log snapshot stream. */
#define CLOG_DUPSNAP (-2)

typedef struct clog clog;
typedef struct clog_reader clog_reader;

/* Connects to the broker (urls: n server URLs; `name` names the client). Reconnects
 * forever in the background once connected. */
int clog_connect(const char *const *urls, size_t n, const char *name, const char *bucket,
                 int replicas, clog **out, char *err, size_t errlen);
void clog_close(clog *l);
/* 1 while the connection to the broker is up. */
int clog_connected(clog *l);
/* The underlying connection (a natsConnection *) for rpc.c. */
void *clog_connection(clog *l);
/* rpc.c's state for this connection (its reply subscription), NULL until set. clog_close
 * calls free_fn(state) first, while the connection is still open. */
void *clog_rpc_state(clog *l);
void clog_set_rpc_state(clog *l, void *state, void (*free_fn)(void *));

/* Creates the log of (collection, shard) when absent: file storage, `replicas` copies,
 * a de-duplication window of dedup_s seconds. */
int clog_ensure(clog *l, const char *coll, int shard, int replicas, int dedup_s, char *err,
                size_t errlen);
/* Appends data under message id msg_id; *seq receives its sequence (the first append's,
 * when this one is a duplicate within the window: *dup then 1). timeout_ms bounds the
 * wait for the broker's acknowledgement. */
int clog_append(clog *l, const char *coll, int shard, const char *msg_id, const void *data,
                size_t len, int timeout_ms, uint64_t *seq, int *dup, char *err, size_t errlen);
/* The log's last sequence (0: empty). */
int clog_last(clog *l, const char *coll, int shard, uint64_t *last, char *err, size_t errlen);
/* The first sequence the log still holds (retention removes older messages; after the
 * removal of every message, the last + 1). */
int clog_first(clog *l, const char *coll, int shard, uint64_t *first, char *err, size_t errlen);
/* Message seq of the log: 1 and a copy of its bytes in *data (free()), 0 when the log no
 * longer (or never) held it, -1 on error. */
int clog_get(clog *l, const char *coll, int shard, uint64_t seq, void **data, size_t *len,
             char *err, size_t errlen);
/* Removes every message of the log below sequence `below` (the sequences go on). */
int clog_purge_below(clog *l, const char *coll, int shard, uint64_t below, char *err,
                     size_t errlen);
/* Retention of the logs clog_ensure creates from now on: at most max_msgs messages, none
 * older than max_age_s seconds (0: no limit). */
void clog_set_retention(clog *l, int64_t max_msgs, int64_t max_age_s);

/* An ordered reader from sequence `from` (>= 1). */
int clog_reader_open(clog *l, const char *coll, int shard, uint64_t from, clog_reader **out,
                     char *err, size_t errlen);
/* Waits up to timeout_ms for the next message: 1 and its bytes (valid until the next call
 * or close), sequence and the count still pending after it; 0 on timeout; -1 on error. */
int clog_reader_next(clog_reader *r, int timeout_ms, const void **data, size_t *len,
                     uint64_t *seq, uint64_t *pending, char *err, size_t errlen);
void clog_reader_close(clog_reader *r);

/* Metadata bucket: create (fails with *exists 1 when the key exists), get (*json NULL
 * when absent; free()), list keys (free each and the array). */
int clog_meta_create(clog *l, const char *key, const char *json, int *exists, char *err,
                     size_t errlen);
int clog_meta_get(clog *l, const char *key, char **json, char *err, size_t errlen);
int clog_meta_keys(clog *l, char ***keys, size_t *n, char *err, size_t errlen);
/* Compare-and-set of a metadata value: get with its revision (*rev; *json NULL when
 * absent), and update that succeeds only while the value is still at revision `rev`
 * (*conflict 1 when another write came first: read again and re-apply). */
int clog_meta_get_rev(clog *l, const char *key, char **json, uint64_t *rev, char *err,
                      size_t errlen);
int clog_meta_update(clog *l, const char *key, const char *json, uint64_t rev, int *conflict,
                     char *err, size_t errlen);

/* Another replicated key-value bucket of the same broker (e.g. the API keys), with a
 * watch: clog_kv_wait returns 1 once any value of the bucket was written since the last
 * call (or since open), 0 after timeout_ms without a change, -1 on error. Keys are
 * letters, digits, '_', '-', '=', '.' and '/'. */
typedef struct clog_kv clog_kv;
int clog_kv_open(clog *l, const char *bucket, int replicas, clog_kv **out, char *err,
                 size_t errlen);
void clog_kv_close(clog_kv *kv);
int clog_kv_put(clog_kv *kv, const char *key, const char *value, char *err, size_t errlen);
/* *value NULL when absent; free(). */
int clog_kv_get(clog_kv *kv, const char *key, char **value, char *err, size_t errlen);
/* Every key (free each and the array). */
int clog_kv_keys(clog_kv *kv, char ***keys, size_t *n, char *err, size_t errlen);
int clog_kv_wait(clog_kv *kv, int timeout_ms, char *err, size_t errlen);

#endif
