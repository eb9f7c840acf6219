/* kvtable.c - key-value tables kept in the store beside its documents: the public
 * application tables (rag_table_*) and the library's internal access to its own. */
#include "kvtable.h"
#include "db.h"
#include "status.h"
#include "store.h"

#include <limits.h>
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

static int kv_write(rag_db *db, kv_arg *a)
{
    return rag_store_write(db->st, kv_fn, a);
}

int rag_db_kv_put(rag_db *db, const char *table, const void *key, size_t klen,
                  const void *val, size_t vlen)
{
    rag_clear_error();
    kv_arg a = {.table = table, .key = key, .val = val, .klen = klen, .vlen = vlen, .op = 0};
    return kv_write(db, &a);
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

static int kv_bytes(rag_db *db, const char *table, uint64_t *bytes)
{
    rag_txn *txn = NULL;
    *bytes = 0;
    int rc = rag_store_read(db->st, &txn);
    if (rc == RAG_OK)
        rc = rag_store_kv_bytes(txn, table, bytes);
    rag_txn_end(txn);
    return rc;
}

/* ---- application tables ------------------------------------------------------------------ */

/* Checks an application's table name and opens the table, creating it when `create`.
 * RAG_ENOTFOUND (no message) when it does not exist and !create. */
static int app_table(rag_db *db, const char *table, int create)
{
    rag_clear_error();
    if (!db || !table)
        return rag_fail(RAG_EINVAL, "table: NULL argument");
    size_t n = strlen(table);
    if (n == 0 || n > RAG_TABLE_NAME_MAX)
        return rag_fail(RAG_EINVAL, "table name '%s' must be 1..%d bytes", table,
                        RAG_TABLE_NAME_MAX);
    for (size_t i = 0; i < n; i++) {
        char c = table[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '_' || c == '-' || c == '.'))
            return rag_fail(RAG_EINVAL, "table name '%s': byte %zu is not a letter, digit, "
                            "'_', '-' or '.'", table, i);
    }
    if (rag_store_kv_is_library(table))
        return rag_fail(RAG_EINVAL, "table name '%s' is reserved for the library's own data",
                        table);
    if (create && db->opts.read_only)
        return rag_fail(RAG_EREADONLY, "table '%s': store is open read-only", table);
    int rc = rag_store_kv_open(db->st, table, create);
    if (rc == RAG_ENOTFOUND)
        rag_clear_error();
    return rc;
}

static int check_key(const char *table, const void *key, size_t klen)
{
    if (!key || klen == 0 || klen > 511)
        return rag_fail(RAG_EINVAL, "table '%s': key must be 1..511 bytes, got %zu", table,
                        key ? klen : 0);
    return RAG_OK;
}

int rag_table_put(rag_db *db, const char *table, const void *key, size_t klen,
                  const void *val, size_t vlen)
{
    int rc = app_table(db, table, 1);
    if (rc == RAG_OK)
        rc = check_key(table, key, klen);
    if (rc == RAG_OK && !val && vlen)
        rc = rag_fail(RAG_EINVAL, "table '%s': value is NULL", table);
    if (rc != RAG_OK)
        return rc;
    kv_arg a = {.table = table, .key = key, .val = val ? val : "", .klen = klen,
                .vlen = vlen, .op = 0};
    return kv_write(db, &a);
}

int rag_table_get(rag_db *db, const char *table, const void *key, size_t klen, void **val,
                  size_t *vlen)
{
    if (!val || !vlen)
        return rag_fail(RAG_EINVAL, "rag_table_get: NULL argument");
    *val = NULL;
    *vlen = 0;
    int rc = app_table(db, table, 0);
    if (rc == RAG_OK)
        rc = check_key(table, key, klen);
    if (rc == RAG_OK)
        rc = rag_db_kv_get(db, table, key, klen, val, vlen);
    return rc;
}

int rag_table_del(rag_db *db, const char *table, const void *key, size_t klen)
{
    int rc = app_table(db, table, 0);
    if (rc == RAG_OK)
        rc = check_key(table, key, klen);
    if (rc != RAG_OK)
        return rc;
    kv_arg a = {.table = table, .key = key, .klen = klen, .op = 1};
    return kv_write(db, &a);
}

int rag_table_scan(rag_db *db, const char *table, const void *start, size_t slen,
                   rag_table_visit_fn visit, void *user)
{
    int rc = app_table(db, table, 0);
    if (rc == RAG_OK && !visit)
        rc = rag_fail(RAG_EINVAL, "rag_table_scan: visit is NULL");
    if (rc == RAG_OK && start && slen > 511)
        rc = rag_fail(RAG_EINVAL, "table '%s': start key longer than 511 bytes", table);
    if (rc == RAG_OK)
        rc = rag_db_kv_scan(db, table, start, start ? slen : 0, visit, user);
    return rc == RAG_ENOTFOUND ? RAG_OK : rc;
}

int rag_table_trim(rag_db *db, const char *table, const void *end, size_t elen,
                   uint64_t *deleted)
{
    if (deleted)
        *deleted = 0;
    int rc = app_table(db, table, 0);
    if (rc == RAG_OK && db->opts.read_only)
        rc = rag_fail(RAG_EREADONLY, "table '%s': store is open read-only", table);
    if (rc == RAG_OK)
        rc = check_key(table, end, elen);
    if (rc != RAG_OK)
        return rc == RAG_ENOTFOUND ? RAG_OK : rc;
    kv_arg a = {.table = table, .key = end, .klen = elen, .op = 2};
    rc = kv_write(db, &a);
    if (rc == RAG_OK && deleted)
        *deleted = (uint64_t)a.deleted;
    return rc;
}

int rag_table_bytes(rag_db *db, const char *table, uint64_t *bytes)
{
    if (!bytes)
        return rag_fail(RAG_EINVAL, "rag_table_bytes: bytes is NULL");
    *bytes = 0;
    int rc = app_table(db, table, 0);
    if (rc == RAG_OK)
        rc = kv_bytes(db, table, bytes);
    return rc == RAG_ENOTFOUND ? RAG_OK : rc;
}

int rag_table_shrink(rag_db *db, const char *table, uint64_t max_bytes, uint64_t target,
                     uint64_t max_delete, uint64_t *deleted, uint64_t *bytes_after)
{
    uint64_t used = 0;
    if (deleted)
        *deleted = 0;
    if (bytes_after)
        *bytes_after = 0;
    int rc = app_table(db, table, 0);
    if (rc == RAG_OK)
        rc = kv_bytes(db, table, &used);
    if (rc != RAG_OK)
        return rc == RAG_ENOTFOUND ? RAG_OK : rc;
    kv_arg a = {.table = table, .op = 3, .target = target < max_bytes ? target : max_bytes,
                .max_delete = max_delete > (uint64_t)LONG_MAX ? LONG_MAX : (long)max_delete,
                .bytes = used};
    if (used > max_bytes) {
        if (db->opts.read_only)
            return rag_fail(RAG_EREADONLY, "table '%s': store is open read-only", table);
        rc = kv_write(db, &a);
    }
    if (rc == RAG_OK && deleted)
        *deleted = (uint64_t)a.deleted;
    if (rc == RAG_OK && bytes_after)
        *bytes_after = a.bytes;
    return rc;
}
