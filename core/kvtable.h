/* kvtable.h - key-value tables kept in a store beside its documents: the library's access
 * to its own tables (the public application tables, rag_table_*, are in ragcore.h). */
#ifndef RAG_KVTABLE_H
#define RAG_KVTABLE_H

#include "ragcore.h"

#include <stddef.h>
#include <stdint.h>

/* These take any table of the store, the library's own included ("config", "sources",
 * ...), each call one transaction. Keys are compared bytewise. */

/* Stores val under key (replacing). RAG_EREADONLY on a read-only store. */
int rag_db_kv_put(rag_db *db, const char *table, const void *key, size_t klen,
                  const void *val, size_t vlen);

/* Copies the value of key into *val (malloc'd; free with rag_free) and its length into
 * *vlen. RAG_ENOTFOUND when absent. */
int rag_db_kv_get(rag_db *db, const char *table, const void *key, size_t klen,
                  void **val, size_t *vlen);

/* Visits entries with key >= start (start may be NULL) in key order, in one read
 * snapshot, until `visit` returns non-zero or the table ends. Pointers are valid only
 * during the callback. */
typedef int (*rag_kv_visit_fn)(void *user, const void *key, size_t klen, const void *val,
                               size_t vlen);
int rag_db_kv_scan(rag_db *db, const char *table, const void *start, size_t slen,
                   rag_kv_visit_fn visit, void *user);

#endif
