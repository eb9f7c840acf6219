/* kvtable.h - auxiliary key-value tables of in-tree programs kept in a store beside its
 * documents. */
#ifndef RAG_KVTABLE_H
#define RAG_KVTABLE_H

#include "ragcore.h"

#include <stddef.h>
#include <stdint.h>

/* Auxiliary tables hold data of in-tree programs (API keys, the query log, ...) in the
 * same LMDB environment, so they share its durability and backups. `table` is a short
 * name ("keys", "querylog"; at most 16 tables). Keys are compared bytewise. */

/* Stores val under key (replacing). RAG_EREADONLY on a read-only store. */
int rag_db_kv_put(rag_db *db, const char *table, const void *key, size_t klen,
                  const void *val, size_t vlen);

/* Copies the value of key into *val (malloc'd; free with rag_free) and its length into
 * *vlen. RAG_ENOTFOUND when absent. */
int rag_db_kv_get(rag_db *db, const char *table, const void *key, size_t klen,
                  void **val, size_t *vlen);

/* Deletes key. RAG_ENOTFOUND when absent. */
int rag_db_kv_del(rag_db *db, const char *table, const void *key, size_t klen);

/* Visits entries with key >= start (start may be NULL) in key order, in one read
 * snapshot, until `visit` returns non-zero or the table ends. Pointers are valid only
 * during the callback. */
typedef int (*rag_kv_visit_fn)(void *user, const void *key, size_t klen, const void *val,
                               size_t vlen);
int rag_db_kv_scan(rag_db *db, const char *table, const void *start, size_t slen,
                   rag_kv_visit_fn visit, void *user);

/* Deletes every entry whose key is < end (retention of time-keyed logs). Returns the
 * number deleted (>= 0) or a negative status. */
long rag_db_kv_trim(rag_db *db, const char *table, const void *end, size_t elen);

/* Bytes of store pages the table occupies now (0 when it was never written). */
int rag_db_kv_bytes(rag_db *db, const char *table, uint64_t *bytes);

/* Bounds a log's size: when the table occupies more than max_bytes of store pages,
 * deletes its entries with the lowest keys (the oldest of a time-keyed log) until it
 * occupies at most target bytes (<= max_bytes; some room below the bound means a log
 * that grows steadily is trimmed now and then, not at every write), but at most
 * max_delete entries, so that one call holds the store's writer briefly: while it
 * returns max_delete, call again with max_bytes = target to go on. A table within max_bytes costs a read transaction only.
 * Returns the number deleted (>= 0) or a negative status; *bytes_after (may be NULL)
 * receives the size then. */
long rag_db_kv_shrink(rag_db *db, const char *table, uint64_t max_bytes, uint64_t target,
                      long max_delete, uint64_t *bytes_after);

#endif
