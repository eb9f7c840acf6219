/* replica.h - what a replica answers to other machines and checks in their answers, callable
 * without a broker: a shard query (the query subscription's handler runs it once the store
 * has applied the request's min_seq), the backups it makes for new replicas, and the checks
 * a new replica makes of a peer's backup (the protocol above bootstrap_from_peer in
 * replica.c). */
#ifndef CLUSTER_REPLICA_H
#define CLUSTER_REPLICA_H
#include "cluster.h"
#include "ragcore.h"
#include <jansson.h>
#include <stddef.h>
#include <stdint.h>
/* Answers shard query `body` (len bytes; the request format above on_query in replica.c:
 * dense and lexical sides, BM25 statistics, doc_exists) from collection meta->name of
 * store db: the reply JSON (malloc'd, *rlen bytes; NULL when out of memory), with an
 * "error" naming what the request got wrong. min_seq and wait_ms are not waited for. */
char *cluster_shard_query(rag_db *db, const cluster_coll *meta, const char *body, size_t len,
                          size_t *rlen);

/* The most data one part of a backup ('D' reply to "get") holds: below NATS's default
 * 1 MiB payload limit. */
#define CLUSTER_BACKUP_CHUNK (512 * 1024)
/* What a new replica accepts in a peer's backup description: files listed, bytes a file. */
#define CLUSTER_BACKUP_MAX_FILES 4096
#define CLUSTER_BACKUP_MAX_BYTES ((int64_t)1 << 50)

/* A replica's backup service for one store, as rag.backup.<collection>.<shard> and
 * rag.peer.<name> run it, without a broker. */
typedef struct cluster_backup_host cluster_backup_host;

/* Opens the backup service of replica `name` (its subject rag.peer.<name>) for store db
 * (borrowed: it must outlive the host; its position is read now) holding shard `shard` of
 * collection meta->name, its backups made under data/.backups (data exists). 0, or -1
 * when out of memory or the store's position cannot be read. */
int cluster_backup_host_open(const char *name, const char *data, rag_db *db,
                             const cluster_coll *meta, int shard, cluster_backup_host **out);

/* Answers one request body (len bytes, {"op":"start"|"status"|"get"|"done",...}) as the
 * replica's subscriptions do: JSON for start, status and done (an "error" naming what was
 * wrong), 'D' + data or 'E' + a message for get; malloc'd, *rlen bytes; NULL when out of
 * memory. A start without a token returns once the backup is made. */
char *cluster_backup_answer(cluster_backup_host *h, const char *body, size_t len,
                            size_t *rlen);

/* Waits for the backups being made, removes every backup of h and frees it. NULL is fine. */
void cluster_backup_host_close(cluster_backup_host *h);

/* Checks a peer's answer to a start that offers a backup: "peer" is a replica's subject
 * rag.peer.<name> (no wildcard, no empty token, under 300 bytes) and "id" a backup's name
 * (1..63 bytes of letters, digits, '-', '_'). 0, or -1 with a message naming the field. */
int cluster_backup_check_offer(const json_t *st, char *err, size_t errlen);

/* Checks a peer's description of a ready backup ({"peer","id","seq","state":"ready",
 * "files":[{"name","size"}]}): the offer's checks; "peer" and "id" equal to peer and id
 * (when not NULL); "seq" at least min_seq; 1 to CLUSTER_BACKUP_MAX_FILES files, each named
 * data.mdb or index/<file> (no '/' in file, not beginning with '.'), none twice, data.mdb
 * among them, each of 0 to CLUSTER_BACKUP_MAX_BYTES bytes. 0 and their total in *total
 * (when not NULL), or -1 with a message naming the field. */
int cluster_backup_check(const json_t *st, const char *peer, const char *id, uint64_t min_seq,
                         uint64_t *total, char *err, size_t errlen);

/* Checks the reply (part, len bytes) to a "get" of the file of `size` bytes at offset off:
 * the number of data bytes it holds (CLUSTER_BACKUP_CHUNK, or what is left of the file when
 * less), or -1 with a message: no answer, the peer's 'E' message, not a data part, empty,
 * too long, past size, short. */
long cluster_backup_part(const char *part, size_t len, int64_t off, int64_t size, char *err,
                         size_t errlen);

/* Sends request body (len bytes) to subject and returns the reply (malloc'd, *rlen bytes),
 * or NULL when none came within timeout_ms. */
typedef char *(*cluster_backup_ask_fn)(void *ctx, const char *subject, const char *body,
                                       size_t len, int timeout_ms, size_t *rlen);

/* Copies every file of the ready backup st (checked first by cluster_backup_check) into
 * dir (an empty directory), asking its peer through ask for each part and checking each
 * with cluster_backup_part. Refuses a backup larger than the space free on dir. 0, or -1
 * with a message (files already copied stay: the caller removes dir). who names the
 * replica in the log lines (a part asked again). */
int cluster_backup_fetch(const json_t *st, const char *dir, cluster_backup_ask_fn ask,
                         void *ctx, const char *who, char *err, size_t errlen);
#endif
