/* kvtable.c - auxiliary key-value tables (API keys, query log, ...) kept in the store. */
#include "kvtable.h"
#include "db.h"
#include "status.h"
#include "store.h"

#include <stdlib.h>
#include <string.h>

typedef struct kv_arg {
    const char *table;
    const void *key, *val;
    size_t klen, vlen;
    long deleted;
    int op; /* 0 put, 1 del, 2 trim, 3 shrink */
    uint64_t target, bytes;      /* shrink: the size wanted, and the size after */
    long max_delete;             /* shrink: most entries one call deletes */
} kv_arg;

static int kv_fn(rag_txn *txn, void *user)
{
    kv_arg *a = user;
    if (a->op == 0)
        return rag_store_kv_put(txn, a->table, a->key, a->klen, a->val, a->vlen);
    if (a->op == 1)
        return rag_store_kv_del(txn, a->table, a->key, a->klen);
    if (a->op == 3) {
        int rc = rag_store_kv_shrink(txn, a->table, a->target, a->max_delete, &a->deleted);
        return rc == RAG_OK ? rag_store_kv_bytes(txn, a->table, &a->bytes) : rc;
    }
    return rag_store_kv_trim(txn, a->table, a->key, a->klen, &a->deleted);
}

int rag_db_kv_put(rag_db *db, const char *table, const void *key, size_t klen,
                  const void *val, size_t vlen)
{
    rag_clear_error();
    kv_arg a = {.table = table, .key = key, .val = val, .klen = klen, .vlen = vlen, .op = 0};
    return rag_store_write(db->st, kv_fn, &a);
}

int rag_db_kv_del(rag_db *db, const char *table, const void *key, size_t klen)
{
    rag_clear_error();
    kv_arg a = {.table = table, .key = key, .klen = klen, .op = 1};
    return rag_store_write(db->st, kv_fn, &a);
}

long rag_db_kv_trim(rag_db *db, const char *table, const void *end, size_t elen)
{
    rag_clear_error();
    kv_arg a = {.table = table, .key = end, .klen = elen, .op = 2};
    int rc = rag_store_write(db->st, kv_fn, &a);
    return rc == RAG_OK ? a.deleted : rc;
}

int rag_db_kv_bytes(rag_db *db, const char *table, uint64_t *bytes)
{
    rag_clear_error();
    rag_txn *txn = NULL;
    *bytes = 0;
    int rc = rag_store_read(db->st, &txn);
    if (rc == RAG_OK)
        rc = rag_store_kv_bytes(txn, table, bytes);
    rag_txn_end(txn);
    return rc;
}

long rag_db_kv_shrink(rag_db *db, const char *table, uint64_t max_bytes, uint64_t target,
                      long max_delete, uint64_t *bytes_after)
{
    uint64_t used = 0;
    int rc = rag_db_kv_bytes(db, table, &used);
    kv_arg a = {.table = table, .op = 3, .target = target < max_bytes ? target : max_bytes,
                .max_delete = max_delete, .bytes = used};
    if (rc == RAG_OK && used > max_bytes)
        rc = rag_store_write(db->st, kv_fn, &a);
    if (bytes_after)
        *bytes_after = a.bytes;
    return rc == RAG_OK ? a.deleted : rc;
}

int rag_db_kv_get(rag_db *db, const char *table, const void *key, size_t klen, void **val,
                  size_t *vlen)
{
    rag_clear_error();
    *val = NULL;
    rag_txn *txn = NULL;
    const void *v;
    int rc = rag_store_read(db->st, &txn);
    if (rc == RAG_OK)
        rc = rag_store_kv_get(txn, table, key, klen, &v, vlen);
    if (rc == RAG_OK) {
        *val = rag_malloc(*vlen + 1);
        if (*val) {
            memcpy(*val, v, *vlen);
            ((char *)*val)[*vlen] = '\0';
        } else {
            rc = RAG_ENOMEM;
        }
    }
    rag_txn_end(txn);
    return rc;
}

int rag_db_kv_scan(rag_db *db, const char *table, const void *start, size_t slen,
                   rag_kv_visit_fn visit, void *user)
{
    rag_clear_error();
    rag_txn *txn = NULL;
    int rc = rag_store_read(db->st, &txn);
    if (rc == RAG_OK)
        rc = rag_store_kv_scan(txn, table, start, slen, visit, user);
    rag_txn_end(txn);
    return rc;
}
