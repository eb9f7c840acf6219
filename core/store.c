/* store.c - LMDB-backed store of collections, documents, chunks, vectors and aux tables. */
#include "store.h"
#include "bytes.h"
#include "crypt.h"
#include "pagewalk.h"
#include "sealcache.h"
#include "status.h"

#include <errno.h>
#include <lmdb.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define INITIAL_MAP_SIZE ((size_t)1 << 30) /* 1 GiB, grows by doubling */

/* Fixed auxiliary tables, opened with the store. "keys" and "querylog" hold application
 * data (the server's API keys and query log); the others are the library's own. */
static const char *const kv_tables[] = {"keys", "querylog", "embcache", "sources",
                                        "config", "sync", "misc", "lex_postings",
                                        "lex_chunks", "lex_stats", "embcache_fifo",
                                        "dedup_docs", "dedup_keys"};
#define N_KV (sizeof kv_tables / sizeof kv_tables[0])
#define N_KV_APP 2 /* the first N_KV_APP fixed tables are application tables */
/* Name prefixes of library tables, present and future: never application tables. */
static const char *const kv_library_prefixes[] = {"embcache", "lex_", "dedup_"};
/* Other application tables are opened on first use, up to this many per store. */
#define N_APP 16
/* Tables whose values an encrypted store keeps in plaintext: the BM25 postings, lengths
 * and document frequencies (numbers under keyed term hashes; sealing them would cost a
 * decryption per posting on every lexical search) and the embedding cache's eviction
 * order (keyed hashes). */
static const char *const kv_plain_tables[] = {"lex_postings", "lex_chunks", "lex_stats",
                                              "embcache_fifo"};
#define MAX_DBI 64 /* above every handle the environment hands out (maxdbs + 2) */
/* Plaintext an encrypted store keeps of records opened by reads (sealcache.h): emptied by
 * every write transaction this process commits, so that deleted or replaced text does
 * not outlive its erasure in this process's memory. */
#define SEAL_CACHE_BYTES ((size_t)32 << 20)

enum { DB_META, DB_COLLS, DB_DOCS, DB_CHUNKS, DB_VECS, DB_TOMBS, DB_HASHES, N_CORE_DB };
static const char *const core_db_names[N_CORE_DB] = {"meta", "collections", "docs", "chunks",
                                                     "vectors", "tombstones", "hashes"};

struct rag_store {
    MDB_env *env;
    MDB_dbi dbi[N_CORE_DB];
    MDB_dbi kv[N_KV];
    /* application tables opened since the store was opened: entries below n_app are
     * complete and never change (readers look them up without a lock) */
    char app_name[N_APP][RAG_TABLE_NAME_MAX + 1];
    MDB_dbi app_dbi[N_APP];
    atomic_size_t n_app;
    pthread_mutex_t app_lock;     /* held by whoever opens an application table */
    int read_only;
    size_t map_size;
    pthread_rwlock_t resize_lock; /* readers/writers hold it shared; a resize holds it alone */
    pthread_mutex_t write_lock;   /* one write transaction at a time in this process */
    char *dir;                    /* the store directory (reopening the environment) */
    /* encryption at rest: `encrypted` when the store has a key header (meta "crypt");
     * `crypt` once unlocked. enc_name[dbi] names each table whose values are sealed. */
    int encrypted;
    rag_crypt *crypt;
    const char *enc_name[MAX_DBI];
    rag_sealcache *cache;         /* opened records read again without decrypting */
};

/* Values opened from sealed records, kept until their transaction ends. */
typedef struct arena_blk {
    struct arena_blk *next;
    unsigned char data[];
} arena_blk;

struct rag_txn {
    rag_store *st;
    MDB_txn *txn;
    int write;
    int map_full;                 /* a put hit MDB_MAP_FULL: rag_store_write grows and retries */
    float *scratch;               /* aligned copy buffer for vector scans */
    int scratch_dim;
    unsigned char *seal;          /* sealed copy of the value being written */
    size_t seal_cap;
    unsigned char *cur;           /* opened value of the cursor's current record */
    size_t cur_cap;
    arena_blk *arena;             /* opened values of gets (borrowed until the end) */
};

/* ---- reading a damaged file without faulting ------------------------------------------ */

/* LMDB trusts its pages: a damaged one can make a read trip an assertion (abort) or follow
 * a garbage offset out of the map (SIGSEGV, SIGBUS). Every LMDB read of this file runs
 * "guarded": a per-thread jump buffer is armed around the call and around a touch of every
 * page of the key and value it returns, and the process's SIGSEGV/SIGBUS handler (installed
 * once, at the first open) and the environments' assertion callback jump back to it while
 * it is armed, so the read fails with GUARD_FAULT instead of killing the process. A fault
 * while no guard is armed goes to the handler that was installed before (or the default
 * action), so a fault elsewhere still crashes as it would without ragcore.
 * RAGCORE_FAULT_GUARD=0 leaves the signal handlers alone. */
#define GUARD_FAULT (-30000) /* outside LMDB's and errno's codes */

/* The default TLS model, not initial-exec: a library loaded with dlopen (the Python
 * extension) gets no static TLS block to spare. The handler only reads these on a thread
 * that armed a guard, whose TLS block therefore exists already (no allocation in the
 * handler); on a thread that never armed one the first read may allocate its block in the
 * handler, on a path that ends in the previous handler (a crash) anyway. */
static __thread sigjmp_buf *guard_jb;
static __thread volatile sig_atomic_t guard_armed;
static __thread int guard_sig;
static struct sigaction guard_old_segv, guard_old_bus;
static pthread_once_t guard_once = PTHREAD_ONCE_INIT;
static long guard_page = 4096;

/* Leaves the armed guard of this thread: its read returns GUARD_FAULT. */
static void guard_jump(int sig)
{
    guard_armed = 0;
    guard_sig = sig;
    siglongjmp(*guard_jb, 1);
}

static void guard_handler(int sig, siginfo_t *si, void *uc)
{
    (void)si;
    (void)uc;
    if (guard_armed)
        guard_jump(sig);
    /* Not a guarded read: put the earlier disposition back; returning re-runs the
     * faulting instruction under it. */
    sigaction(sig, sig == SIGBUS ? &guard_old_bus : &guard_old_segv, NULL);
}

static void guard_install(void)
{
    long ps = sysconf(_SC_PAGESIZE);
    if (ps > 0)
        guard_page = ps;
    const char *env = getenv("RAGCORE_FAULT_GUARD");
    if (env && strcmp(env, "0") == 0)
        return;
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_sigaction = guard_handler;
    sa.sa_flags = SA_SIGINFO | SA_NODEFER | SA_ONSTACK;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGSEGV, &sa, &guard_old_segv);
    sigaction(SIGBUS, &sa, &guard_old_bus);
}

/* LMDB's assertion callback: a failed assertion during a guarded read is a damaged page. */
static void guard_assert(MDB_env *env, const char *msg)
{
    (void)env;
    (void)msg;
    if (guard_armed)
        guard_jump(SIGABRT);
}

/* Arms this thread's guard in the calling function's frame, which returns GUARD_FAULT when a
 * fault or an assertion jumps back; GUARD_LEAVE disarms it. */
#define GUARD_ENTER(jb)                                                                   \
    do {                                                                                  \
        if (sigsetjmp(jb, 0))                                                             \
            return GUARD_FAULT;                                                           \
        guard_jb = &(jb);                                                                 \
        guard_armed = 1;                                                                  \
    } while (0)
#define GUARD_LEAVE() (guard_armed = 0)

/* Reads one byte of every page of [p, p + n): faults here when LMDB handed out a range that
 * runs past the file or the map. */
static void guard_touch(const void *p, size_t n)
{
    const volatile unsigned char *b = p;
    if (!b || n == 0)
        return;
    for (size_t off = 0; off < n; off += (size_t)guard_page)
        (void)b[off];
    (void)b[n - 1];
}

/* mdb_get, guarded. */
static int g_get(MDB_txn *txn, MDB_dbi dbi, MDB_val *key, MDB_val *val)
{
    sigjmp_buf jb;
    GUARD_ENTER(jb);
    int rc = mdb_get(txn, dbi, key, val);
    if (rc == 0)
        guard_touch(val->mv_data, val->mv_size);
    GUARD_LEAVE();
    return rc;
}

/* mdb_cursor_get, guarded. */
static int g_cget(MDB_cursor *c, MDB_val *key, MDB_val *val, MDB_cursor_op op)
{
    sigjmp_buf jb;
    GUARD_ENTER(jb);
    int rc = mdb_cursor_get(c, key, val, op);
    if (rc == 0) {
        guard_touch(key->mv_data, key->mv_size);
        guard_touch(val->mv_data, val->mv_size);
    }
    GUARD_LEAVE();
    return rc;
}

/* mdb_dbi_open, guarded (it reads the main table's pages). */
static int g_dbi_open(MDB_txn *txn, const char *name, unsigned flags, MDB_dbi *dbi)
{
    sigjmp_buf jb;
    GUARD_ENTER(jb);
    int rc = mdb_dbi_open(txn, name, flags, dbi);
    GUARD_LEAVE();
    return rc;
}

/* Maps an LMDB or errno code to a status with a message naming the operation. */
static int mdb_status(rag_txn *txn, int rc, const char *what)
{
    if (rc == MDB_SUCCESS)
        return RAG_OK;
    if (rc == GUARD_FAULT)
        return rag_fail(RAG_ECORRUPT, "%s: the store file's pages are damaged (reading them "
                        "failed with %s); 'ragcore check' lists the damage", what,
                        guard_sig == SIGABRT ? "an LMDB assertion" : strsignal(guard_sig));
    if (rc == MDB_NOTFOUND)
        return RAG_ENOTFOUND;
    if (rc == MDB_MAP_FULL) {
        if (txn)
            txn->map_full = 1;
        return rag_fail(RAG_EFULL, "%s: store map is full", what);
    }
    if (rc == ENOSPC || rc == EDQUOT)
        return rag_fail(RAG_EFULL, "%s: no space left on device", what);
    if (rc == MDB_CORRUPTED || rc == MDB_INVALID || rc == MDB_VERSION_MISMATCH ||
        rc == MDB_PAGE_NOTFOUND)
        return rag_fail(RAG_ECORRUPT, "%s: %s", what, mdb_strerror(rc));
    if (rc == EACCES || rc == ENOENT || rc == EROFS || rc == EIO)
        return rag_fail(RAG_EIO, "%s: %s", what, mdb_strerror(rc));
    return rag_fail(RAG_ESTORE, "%s: %s", what, mdb_strerror(rc));
}

/* ---- byte helpers ------------------------------------------------------------------- */

/* A growable byte buffer for encoding records. */
typedef struct buf {
    unsigned char *p;
    size_t len, cap;
    int oom;
} buf;

static void buf_add(buf *b, const void *data, size_t n)
{
    if (b->oom)
        return;
    if (b->len + n > b->cap) {
        size_t cap = b->cap ? b->cap * 2 : 256;
        while (cap < b->len + n)
            cap *= 2;
        unsigned char *q = realloc(b->p, cap);
        if (!q) {
            b->oom = 1;
            return;
        }
        b->p = q;
        b->cap = cap;
    }
    memcpy(b->p + b->len, data, n);
    b->len += n;
}

static void buf_str(buf *b, const char *s)
{
    uint32_t n = s ? (uint32_t)strlen(s) : 0;
    buf_add(b, &n, 4);
    if (n)
        buf_add(b, s, n);
}

/* A bounds-checked reader over a record. */
typedef struct rd {
    const unsigned char *p;
    size_t len, off;
    int bad;
} rd;

static void rd_get(rd *r, void *out, size_t n)
{
    if (r->bad || r->off + n > r->len) {
        r->bad = 1;
        memset(out, 0, n);
        return;
    }
    memcpy(out, r->p + r->off, n);
    r->off += n;
}

static char *rd_str(rd *r)
{
    uint32_t n = 0;
    rd_get(r, &n, 4);
    if (r->bad || r->off + n > r->len) {
        r->bad = 1;
        return NULL;
    }
    char *s = rag_strndup((const char *)r->p + r->off, n);
    r->off += n;
    if (!s)
        r->bad = 1;
    return s;
}

/* ---- environment -------------------------------------------------------------------- */

int rag_store_open(const char *dir, int read_only, rag_store **out)
{
    return rag_store_open_mode(dir, read_only, RAG_STORE_FILE_MODE, out);
}

int rag_store_open_mode(const char *dir, int read_only, unsigned mode, rag_store **out)
{
    *out = NULL;
    rag_store *st = rag_calloc(1, sizeof *st);
    MDB_txn *txn = NULL;
    int rc;
    if (!st)
        return RAG_ENOMEM;
    pthread_rwlock_init(&st->resize_lock, NULL);
    pthread_mutex_init(&st->write_lock, NULL);
    pthread_mutex_init(&st->app_lock, NULL);
    st->read_only = read_only;
    if (!(st->dir = rag_strdup(dir))) {
        rc = RAG_ENOMEM;
        goto fail;
    }
    if (!read_only && mkdir(dir, rag_store_dir_mode(mode)) != 0 && errno != EEXIST) {
        rc = rag_fail(RAG_EIO, "cannot create store directory '%s': %s", dir, strerror(errno));
        goto fail;
    }
    struct stat sb;
    if (stat(dir, &sb) != 0 || !S_ISDIR(sb.st_mode)) {
        rc = rag_fail(read_only ? RAG_ENOTFOUND : RAG_EIO, "store directory '%s' does not exist",
                      dir);
        goto fail;
    }
    if ((rc = mdb_env_create(&st->env)) != 0) {
        rc = mdb_status(NULL, rc, "create LMDB environment");
        goto fail;
    }
    pthread_once(&guard_once, guard_install);
    mdb_env_set_assert(st->env, guard_assert);
    mdb_env_set_maxdbs(st->env, N_CORE_DB + N_KV + N_APP + 4);
    mdb_env_set_maxreaders(st->env, 510);
    /* Use the existing map size when larger than the default. */
    char path[4096];
    snprintf(path, sizeof path, "%s/data.mdb", dir);
    size_t map = INITIAL_MAP_SIZE;
    const char *env = getenv("RAGCORE_INITIAL_MAP_SIZE"); /* small maps for tests/devices */
    if (env && atol(env) >= 65536)
        map = (size_t)atol(env);
    if (stat(path, &sb) == 0) {
        /* LMDB maps the file and trusts it: a page past the end of a truncated file would
         * fault (SIGBUS) on first touch. Refuse a file shorter than its meta page says. */
        rag_pagewalk_meta meta;
        if (sb.st_size > 0 && (rc = rag_pagewalk_meta_read(path, &meta)) != RAG_OK) {
            rag_fail_prefix(rc, "store '%s' cannot be opened", dir);
            goto fail;
        }
        while (map < (size_t)sb.st_size)
            map *= 2;
    } else if (read_only) {
        rc = rag_fail(RAG_ENOTFOUND, "'%s' is not a ragcore store (no data.mdb)", dir);
        goto fail;
    }
    mdb_env_set_mapsize(st->env, map);
    st->map_size = map;
    unsigned flags = MDB_NOTLS | (read_only ? MDB_RDONLY : 0);
    if ((rc = mdb_env_open(st->env, dir, flags, (mdb_mode_t)(mode & 0777))) != 0) {
        rc = mdb_status(NULL, rc, "open LMDB environment");
        rag_fail_prefix(rc, "store '%s'", dir);
        goto fail;
    }
    MDB_envinfo info;
    mdb_env_info(st->env, &info);
    st->map_size = info.me_mapsize;
    if ((rc = mdb_txn_begin(st->env, NULL, read_only ? MDB_RDONLY : 0, &txn)) != 0) {
        rc = mdb_status(NULL, rc, "begin transaction");
        goto fail;
    }
    unsigned dflags = read_only ? 0 : MDB_CREATE;
    for (int i = 0; i < N_CORE_DB; i++) {
        if ((rc = g_dbi_open(txn, core_db_names[i], dflags, &st->dbi[i])) != 0) {
            rc = rc == MDB_NOTFOUND
                     ? rag_fail(RAG_ECORRUPT, "'%s' is not a ragcore store (no '%s' table)", dir,
                                core_db_names[i])
                     : mdb_status(NULL, rc, "open table");
            goto fail;
        }
    }
    for (size_t i = 0; i < N_KV; i++) {
        char name[32];
        snprintf(name, sizeof name, "kv:%s", kv_tables[i]);
        if ((rc = g_dbi_open(txn, name, dflags, &st->kv[i])) != 0) {
            if (rc == MDB_NOTFOUND && read_only) {
                st->kv[i] = (MDB_dbi)-1;
                continue;
            }
            rc = mdb_status(NULL, rc, "open aux table");
            goto fail;
        }
    }
    {
        MDB_val hk = {5, "crypt"}, hv;
        st->encrypted = g_get(txn, st->dbi[DB_META], &hk, &hv) == 0;
    }
    static const int sealed_core[] = {DB_COLLS, DB_DOCS, DB_CHUNKS, DB_VECS};
    for (size_t i = 0; i < sizeof sealed_core / sizeof sealed_core[0]; i++)
        st->enc_name[st->dbi[sealed_core[i]]] = core_db_names[sealed_core[i]];
    for (size_t i = 0; i < N_KV; i++) {
        int plain = st->kv[i] == (MDB_dbi)-1;
        for (size_t j = 0; j < sizeof kv_plain_tables / sizeof kv_plain_tables[0]; j++)
            plain |= strcmp(kv_tables[i], kv_plain_tables[j]) == 0;
        if (!plain)
            st->enc_name[st->kv[i]] = kv_tables[i];
    }
    if ((rc = mdb_txn_commit(txn)) != 0) {
        txn = NULL;
        rc = mdb_status(NULL, rc, "commit table creation");
        goto fail;
    }
    *out = st;
    return RAG_OK;
fail:
    if (txn)
        mdb_txn_abort(txn);
    if (st->env)
        mdb_env_close(st->env);
    pthread_rwlock_destroy(&st->resize_lock);
    pthread_mutex_destroy(&st->write_lock);
    pthread_mutex_destroy(&st->app_lock);
    free(st->dir);
    free(st);
    return rc;
}

void rag_store_close(rag_store *st)
{
    if (!st)
        return;
    mdb_env_close(st->env);
    rag_crypt_free(st->crypt);
    rag_sealcache_free(st->cache);
    pthread_rwlock_destroy(&st->resize_lock);
    pthread_mutex_destroy(&st->write_lock);
    pthread_mutex_destroy(&st->app_lock);
    free(st->dir);
    free(st);
}

size_t rag_store_map_size(rag_store *st)
{
    return st->map_size;
}

uint64_t rag_store_last_txn(rag_store *st)
{
    MDB_envinfo info;
    pthread_rwlock_rdlock(&st->resize_lock); /* the meta page lies in the map */
    mdb_env_info(st->env, &info);
    pthread_rwlock_unlock(&st->resize_lock);
    return (uint64_t)info.me_last_txnid;
}

static int txn_begin(rag_store *st, int write, rag_txn **out)
{
    *out = NULL;
    rag_txn *t = rag_calloc(1, sizeof *t);
    if (!t)
        return RAG_ENOMEM;
    pthread_rwlock_rdlock(&st->resize_lock);
    int rc = mdb_txn_begin(st->env, NULL, write ? 0 : MDB_RDONLY, &t->txn);
    if (rc == MDB_MAP_RESIZED) { /* another process grew the map */
        pthread_rwlock_unlock(&st->resize_lock);
        pthread_rwlock_wrlock(&st->resize_lock);
        mdb_env_set_mapsize(st->env, 0);
        MDB_envinfo info;
        mdb_env_info(st->env, &info);
        st->map_size = info.me_mapsize;
        pthread_rwlock_unlock(&st->resize_lock);
        pthread_rwlock_rdlock(&st->resize_lock);
        rc = mdb_txn_begin(st->env, NULL, write ? 0 : MDB_RDONLY, &t->txn);
    }
    if (rc != 0) {
        pthread_rwlock_unlock(&st->resize_lock);
        free(t);
        return mdb_status(NULL, rc, "begin transaction");
    }
    t->st = st;
    t->write = write;
    *out = t;
    return RAG_OK;
}

int rag_store_read(rag_store *st, rag_txn **out)
{
    return txn_begin(st, 0, out);
}

uint64_t rag_txn_id(rag_txn *txn)
{
    return txn && txn->txn ? (uint64_t)mdb_txn_id(txn->txn) : 0;
}

void rag_txn_end(rag_txn *txn)
{
    if (!txn)
        return;
    if (txn->txn)
        mdb_txn_abort(txn->txn);
    pthread_rwlock_unlock(&txn->st->resize_lock);
    free(txn->scratch);
    free(txn->seal);
    free(txn->cur);
    for (arena_blk *b = txn->arena, *next; b; b = next) {
        next = b->next;
        free(b);
    }
    free(txn);
}


/* Commits write transaction t (its handle is gone afterwards; t itself is still to be
 * ended) and, on an encrypted store, empties the read cache of opened records: the
 * transaction may have deleted or replaced some (see SEAL_CACHE_BYTES). */
static int write_commit(rag_store *st, rag_txn *t)
{
    int mrc = mdb_txn_commit(t->txn);
    t->txn = NULL;
    if (mrc != 0)
        return rag_store_io_status(st, mdb_status(t, mrc, "commit"));
    if (st->cache)
        rag_sealcache_clear(st->cache);
    return RAG_OK;
}

/* Doubles the map; called with no transaction of this process open. */
static int grow_map(rag_store *st)
{
    pthread_rwlock_wrlock(&st->resize_lock);
    size_t want = st->map_size * 2;
    int rc = mdb_env_set_mapsize(st->env, want);
    if (rc == 0)
        st->map_size = want;
    pthread_rwlock_unlock(&st->resize_lock);
    return rc == 0 ? RAG_OK : mdb_status(NULL, rc, "grow store map");
}

int rag_store_write(rag_store *st, rag_write_fn fn, void *user)
{
    if (st->read_only)
        return rag_fail(RAG_EREADONLY, "store is open read-only");
    pthread_mutex_lock(&st->write_lock);
    int rc;
    for (int attempt = 0;; attempt++) {
        rag_txn *t = NULL;
        rc = txn_begin(st, 1, &t);
        if (rc != RAG_OK)
            break;
        rc = fn(t, user);
        if (rc == RAG_OK)
            rc = write_commit(st, t);
        int full = t->map_full;
        rag_txn_end(t);
        if (rc == RAG_OK || !full || attempt >= 16)
            break;
        if ((rc = grow_map(st)) != RAG_OK)
            break;
        rag_clear_error();
    }
    pthread_mutex_unlock(&st->write_lock);
    return rc;
}

/* ---- generic put/get/del ------------------------------------------------------------ */

/* The table name of dbi when its values are sealed, else NULL. Can't fail. */
static const char *sealed_table(const rag_store *st, MDB_dbi dbi)
{
    return st->encrypted && dbi < MAX_DBI ? st->enc_name[dbi] : NULL;
}

static int no_key(const rag_store *st)
{
    return rag_fail(RAG_EKEY, "store '%s' is encrypted and was opened without its key "
                    "(give it with the open option store_key or store_key_file, --key-file, "
                    "or RAGCORE_STORE_KEY)", st->dir);
}

/* Grows *b to at least n bytes. */
static int grow(unsigned char **b, size_t *cap, size_t n)
{
    if (n <= *cap)
        return RAG_OK;
    unsigned char *q = rag_realloc(*b, n);
    if (!q)
        return RAG_ENOMEM;
    *b = q;
    *cap = n;
    return RAG_OK;
}

/* Opens the sealed value *v of `key` in table `name` into dst (v->mv_size bytes at
 * least) and points *v at it. */
static int unseal_into(rag_txn *t, const char *name, const MDB_val *key, MDB_val *v,
                       unsigned char *dst)
{
    if (!t->st->crypt)
        return no_key(t->st);
    int rc = rag_crypt_unseal(t->st->crypt, name, strlen(name), key->mv_data, key->mv_size,
                              v->mv_data, v->mv_size, dst);
    if (rc != RAG_OK)
        return rag_fail_prefix(rc, "store '%s', table '%s'", t->st->dir, name);
    v->mv_size -= RAG_CRYPT_OVERHEAD;
    v->mv_data = dst;
    return RAG_OK;
}

/* A cursor read of dbi: opens a sealed value into the transaction's cursor buffer, valid
 * until the next cursor read. */
static int cur_open(rag_txn *t, MDB_dbi dbi, const MDB_val *key, MDB_val *v)
{
    const char *name = sealed_table(t->st, dbi);
    if (!name)
        return RAG_OK;
    if (grow(&t->cur, &t->cur_cap, v->mv_size + 1) != RAG_OK)
        return RAG_ENOMEM;
    return unseal_into(t, name, key, v, t->cur);
}

static int put(rag_txn *t, MDB_dbi dbi, const void *k, size_t kl, const void *v, size_t vl,
               const char *what)
{
    MDB_val key = {kl, (void *)k}, val = {vl, (void *)v};
    const char *name = sealed_table(t->st, dbi);
    if (name) {
        if (!t->st->crypt)
            return no_key(t->st);
        if (grow(&t->seal, &t->seal_cap, vl + RAG_CRYPT_OVERHEAD) != RAG_OK)
            return RAG_ENOMEM;
        rag_crypt_seal(t->st->crypt, name, strlen(name), k, kl, v, vl, t->seal);
        val = (MDB_val){vl + RAG_CRYPT_OVERHEAD, t->seal};
    }
    return mdb_status(t, mdb_put(t->txn, dbi, &key, &val, 0), what);
}

/* Reads the value of key k: a sealed one is opened into the transaction's arena, so that
 * like LMDB's own values it stays valid until the transaction ends. */
static int get(rag_txn *t, MDB_dbi dbi, const void *k, size_t kl, MDB_val *val)
{
    MDB_val key = {kl, (void *)k};
    int rc = g_get(t->txn, dbi, &key, val);
    if (rc != 0)
        return rc == MDB_NOTFOUND ? RAG_ENOTFOUND : mdb_status(t, rc, "read");
    const char *name = sealed_table(t->st, dbi);
    if (!name)
        return RAG_OK;
    arena_blk *b = rag_malloc(sizeof *b + val->mv_size + 1);
    if (!b)
        return RAG_ENOMEM;
    b->next = t->arena;
    t->arena = b;
    /* reads go through the cache of opened records; writes neither use nor fill it */
    rag_sealcache *cache = t->write ? NULL : t->st->cache;
    if (cache && rag_sealcache_get(cache, dbi, k, kl, val->mv_data, val->mv_size, b->data)) {
        val->mv_size -= RAG_CRYPT_OVERHEAD;
        val->mv_data = b->data;
        return RAG_OK;
    }
    MDB_val sealed = *val;
    rc = unseal_into(t, name, &key, val, b->data);
    if (rc == RAG_OK && cache)
        rag_sealcache_put(cache, dbi, k, kl, sealed.mv_data, sealed.mv_size, b->data);
    return rc;
}

static int del(rag_txn *t, MDB_dbi dbi, const void *k, size_t kl, const char *what)
{
    MDB_val key = {kl, (void *)k};
    int rc = mdb_del(t->txn, dbi, &key, NULL);
    return rc == MDB_NOTFOUND ? RAG_ENOTFOUND : mdb_status(t, rc, what);
}

static void coll_id_key(unsigned char *k, uint32_t coll, uint64_t id)
{
    rag_put_be32(k, coll);
    rag_put_be64(k + 4, id);
}

/* Deletes every key of `dbi` that starts with `prefix` and is below prefix+`end` (when
 * end is given), counting them. */
static int del_range(rag_txn *t, MDB_dbi dbi, const unsigned char *prefix, size_t plen,
                     const void *end, size_t elen, long *count)
{
    MDB_cursor *c = NULL;
    int rc = mdb_cursor_open(t->txn, dbi, &c);
    if (rc != 0)
        return mdb_status(t, rc, "open cursor");
    MDB_val k = {plen, (void *)prefix}, v;
    long n = 0;
    rc = g_cget(c, &k, &v, plen ? MDB_SET_RANGE : MDB_FIRST);
    while (rc == 0) {
        if (k.mv_size < plen || memcmp(k.mv_data, prefix, plen) != 0)
            break;
        if (end) {
            size_t m = k.mv_size < elen ? k.mv_size : elen;
            int cmp = memcmp(k.mv_data, end, m);
            if (cmp > 0 || (cmp == 0 && k.mv_size >= elen))
                break;
        }
        if ((rc = mdb_cursor_del(c, 0)) != 0)
            break;
        n++;
        rc = g_cget(c, &k, &v, MDB_GET_CURRENT);
        if (rc == MDB_NOTFOUND || rc == EINVAL)
            rc = g_cget(c, &k, &v, MDB_NEXT);
        /* after a delete the cursor already points at the next item */
    }
    mdb_cursor_close(c);
    if (count)
        *count = n;
    return rc == MDB_NOTFOUND || rc == 0 ? RAG_OK : mdb_status(t, rc, "delete range");
}

/* ---- meta ---------------------------------------------------------------------------- */

int rag_store_meta_get(rag_txn *t, const char *key, char **val)
{
    MDB_val v;
    int rc = get(t, t->st->dbi[DB_META], key, strlen(key), &v);
    if (rc != RAG_OK)
        return rc;
    *val = rag_strndup(v.mv_data, v.mv_size);
    return *val ? RAG_OK : RAG_ENOMEM;
}

int rag_store_meta_put(rag_txn *t, const char *key, const char *val)
{
    return put(t, t->st->dbi[DB_META], key, strlen(key), val, strlen(val), "write meta");
}

static int meta_u64(rag_txn *t, const char *key, uint64_t *v)
{
    MDB_val val;
    int rc = get(t, t->st->dbi[DB_META], key, strlen(key), &val);
    if (rc == RAG_ENOTFOUND) {
        *v = 1;
        return RAG_OK;
    }
    if (rc != RAG_OK)
        return rc;
    if (val.mv_size != 8)
        return rag_fail(RAG_ECORRUPT, "meta '%s' has %zu bytes, expected 8", key, val.mv_size);
    *v = rag_get_be64(val.mv_data);
    return RAG_OK;
}

int rag_store_next_id(rag_txn *t, uint64_t *next)
{
    return meta_u64(t, "next_chunk_id", next);
}

int rag_store_alloc_ids(rag_txn *t, uint64_t n, uint64_t *first)
{
    uint64_t next;
    int rc = meta_u64(t, "next_chunk_id", &next);
    if (rc != RAG_OK)
        return rc;
    unsigned char b[8];
    rag_put_be64(b, next + n);
    *first = next;
    return put(t, t->st->dbi[DB_META], "next_chunk_id", 13, b, 8, "allocate chunk ids");
}

int rag_store_coll_new_id(rag_txn *t, uint32_t *id)
{
    uint64_t next;
    int rc = meta_u64(t, "next_collection_id", &next);
    if (rc != RAG_OK)
        return rc;
    unsigned char b[8];
    rag_put_be64(b, next + 1);
    *id = (uint32_t)next;
    return put(t, t->st->dbi[DB_META], "next_collection_id", 18, b, 8, "allocate collection id");
}

/* ---- collections --------------------------------------------------------------------- */

int rag_store_coll_get(rag_txn *t, const char *name, rag_coll_rec *rec)
{
    MDB_val v;
    int rc = get(t, t->st->dbi[DB_COLLS], name, strlen(name), &v);
    if (rc != RAG_OK)
        return rc;
    memset(rec, 0, sizeof *rec);
    memcpy(rec, v.mv_data, v.mv_size < sizeof *rec ? v.mv_size : sizeof *rec);
    return RAG_OK;
}

int rag_store_coll_put(rag_txn *t, const char *name, const rag_coll_rec *rec)
{
    return put(t, t->st->dbi[DB_COLLS], name, strlen(name), rec, sizeof *rec, "write collection");
}

int rag_store_coll_del(rag_txn *t, const char *name)
{
    return del(t, t->st->dbi[DB_COLLS], name, strlen(name), "delete collection");
}

int rag_store_coll_list(rag_txn *t, char ***names, size_t *count)
{
    *names = NULL;
    *count = 0;
    MDB_cursor *c = NULL;
    int rc = mdb_cursor_open(t->txn, t->st->dbi[DB_COLLS], &c);
    if (rc != 0)
        return mdb_status(t, rc, "open cursor");
    MDB_val k, v;
    size_t n = 0, cap = 0;
    char **arr = NULL;
    rc = RAG_OK;
    for (int mrc = g_cget(c, &k, &v, MDB_FIRST); mrc == 0;
         mrc = g_cget(c, &k, &v, MDB_NEXT)) {
        if (n == cap) {
            cap = cap ? cap * 2 : 8;
            char **q = rag_realloc(arr, cap * sizeof *q);
            if (!q) {
                rc = RAG_ENOMEM;
                break;
            }
            arr = q;
        }
        if (!(arr[n] = rag_strndup(k.mv_data, k.mv_size))) {
            rc = RAG_ENOMEM;
            break;
        }
        n++;
    }
    mdb_cursor_close(c);
    if (rc != RAG_OK) {
        for (size_t i = 0; i < n; i++)
            free(arr[i]);
        free(arr);
        return rc;
    }
    *names = arr;
    *count = n;
    return RAG_OK;
}

/* ---- documents ----------------------------------------------------------------------- */

static unsigned char *doc_key(uint32_t coll, const char *id, size_t *klen)
{
    size_t n = strlen(id);
    unsigned char *k = rag_malloc(4 + n);
    if (!k)
        return NULL;
    rag_put_be32(k, coll);
    memcpy(k + 4, id, n);
    *klen = 4 + n;
    return k;
}

int rag_store_doc_decode(const void *key, size_t klen, const void *val, size_t vlen,
                         rag_doc_rec **out)
{
    *out = NULL;
    if (klen < 4)
        return rag_fail(RAG_ECORRUPT, "document key of %zu bytes", klen);
    rag_doc_rec *d = rag_calloc(1, sizeof *d);
    if (!d)
        return RAG_ENOMEM;
    rd r = {val, vlen, 0, 0};
    rd_get(&r, &d->source_mtime, 8);
    rd_get(&r, &d->ingested_at, 8);
    rd_get(&r, &d->updated_at, 8);
    rd_get(&r, &d->valid_until, 8);
    rd_get(&r, &d->content_hash, 8);
    rd_get(&r, &d->text_len, 8);
    rd_get(&r, &d->nchunks, 4);
    d->id = rag_strndup((const char *)key + 4, klen - 4);
    d->source = rd_str(&r);
    d->title = rd_str(&r);
    d->metadata = rd_str(&r);
    if (!r.bad && (uint64_t)d->nchunks * 8 <= r.len - r.off) {
        d->chunk_ids = rag_malloc((size_t)d->nchunks * 8 + 1);
        if (d->chunk_ids)
            rd_get(&r, d->chunk_ids, (size_t)d->nchunks * 8);
        else
            r.bad = 1;
    } else {
        r.bad = 1;
    }
    if (r.bad || !d->id) {
        rag_doc_rec_free(d);
        return rag_fail(RAG_ECORRUPT, "damaged document record (%zu bytes)", vlen);
    }
    *out = d;
    return RAG_OK;
}

int rag_store_doc_get(rag_txn *t, uint32_t coll, const char *id, rag_doc_rec **out)
{
    *out = NULL;
    size_t kl;
    unsigned char *k = doc_key(coll, id, &kl);
    if (!k)
        return RAG_ENOMEM;
    MDB_val v;
    int rc = get(t, t->st->dbi[DB_DOCS], k, kl, &v);
    if (rc == RAG_OK)
        rc = rag_store_doc_decode(k, kl, v.mv_data, v.mv_size, out);
    free(k);
    return rc;
}

int rag_store_doc_put(rag_txn *t, uint32_t coll, const rag_doc_rec *d)
{
    buf b = {0};
    buf_add(&b, &d->source_mtime, 8);
    buf_add(&b, &d->ingested_at, 8);
    buf_add(&b, &d->updated_at, 8);
    buf_add(&b, &d->valid_until, 8);
    buf_add(&b, &d->content_hash, 8);
    buf_add(&b, &d->text_len, 8);
    buf_add(&b, &d->nchunks, 4);
    buf_str(&b, d->source);
    buf_str(&b, d->title);
    buf_str(&b, d->metadata);
    buf_add(&b, d->chunk_ids, (size_t)d->nchunks * 8);
    size_t kl;
    unsigned char *k = doc_key(coll, d->id, &kl);
    int rc;
    if (b.oom || !k)
        rc = rag_fail(RAG_ENOMEM, "out of memory encoding document");
    else
        rc = put(t, t->st->dbi[DB_DOCS], k, kl, b.p, b.len, "write document");
    free(k);
    free(b.p);
    return rc;
}

int rag_store_doc_del(rag_txn *t, uint32_t coll, const char *id)
{
    size_t kl;
    unsigned char *k = doc_key(coll, id, &kl);
    if (!k)
        return RAG_ENOMEM;
    int rc = del(t, t->st->dbi[DB_DOCS], k, kl, "delete document");
    free(k);
    return rc;
}

int rag_store_doc_scan(rag_txn *t, uint32_t coll, rag_doc_visit_fn visit, void *user)
{
    return rag_store_doc_scan_after(t, coll, NULL, visit, user);
}

int rag_store_doc_scan_after(rag_txn *t, uint32_t coll, const char *after,
                             rag_doc_visit_fn visit, void *user)
{
    MDB_cursor *c = NULL;
    size_t alen = after ? strlen(after) : 0;
    unsigned char *start = alen ? doc_key(coll, after, &alen) : NULL;
    if (after && *after && !start)
        return RAG_ENOMEM;
    int rc = mdb_cursor_open(t->txn, t->st->dbi[DB_DOCS], &c);
    if (rc != 0) {
        free(start);
        return mdb_status(t, rc, "open cursor");
    }
    unsigned char prefix[4];
    rag_put_be32(prefix, coll);
    MDB_val k = start ? (MDB_val){alen, start} : (MDB_val){4, prefix}, v;
    int mrc = g_cget(c, &k, &v, MDB_SET_RANGE);
    /* the cursor's id itself is not "after" it */
    if (mrc == 0 && start && k.mv_size == alen && memcmp(k.mv_data, start, alen) == 0)
        mrc = g_cget(c, &k, &v, MDB_NEXT);
    free(start);
    rc = RAG_OK;
    while (mrc == 0 && k.mv_size >= 4 && memcmp(k.mv_data, prefix, 4) == 0) {
        rag_doc_rec *d = NULL;
        if ((rc = cur_open(t, t->st->dbi[DB_DOCS], &k, &v)) != RAG_OK ||
            (rc = rag_store_doc_decode(k.mv_data, k.mv_size, v.mv_data, v.mv_size, &d)) != RAG_OK)
            break;
        rc = visit(user, d);
        rag_doc_rec_free(d);
        if (rc != 0)
            break;
        mrc = g_cget(c, &k, &v, MDB_NEXT);
    }
    mdb_cursor_close(c);
    if (rc == RAG_OK && mrc != 0 && mrc != MDB_NOTFOUND)
        rc = mdb_status(t, mrc, "scan documents");
    return rc;
}

void rag_doc_rec_free(rag_doc_rec *d)
{
    if (!d)
        return;
    free(d->id);
    free(d->source);
    free(d->title);
    free(d->metadata);
    free(d->chunk_ids);
    free(d);
}

/* ---- chunks --------------------------------------------------------------------------- */

/* The document fields an encrypted store's chunk record ends with (RAG_CHUNK_DOC_FIELDS),
 * in the document record's order: four times, then source, title and metadata. */
static void doc_fields_write(buf *b, const rag_doc_rec *d)
{
    buf_add(b, &d->source_mtime, 8);
    buf_add(b, &d->ingested_at, 8);
    buf_add(b, &d->updated_at, 8);
    buf_add(b, &d->valid_until, 8);
    buf_str(b, d->source);
    buf_str(b, d->title);
    buf_str(b, d->metadata);
}

/* Reads what doc_fields_write wrote into c->doc (its id a copy of c->doc_id); sets r->bad
 * when the record is short or memory runs out. */
static void doc_fields_read(rd *r, rag_chunk_rec *c)
{
    rag_doc_rec *d = c->doc = rag_calloc(1, sizeof *d);
    if (!d) {
        r->bad = 1;
        return;
    }
    rd_get(r, &d->source_mtime, 8);
    rd_get(r, &d->ingested_at, 8);
    rd_get(r, &d->updated_at, 8);
    rd_get(r, &d->valid_until, 8);
    d->source = rd_str(r);
    d->title = rd_str(r);
    d->metadata = rd_str(r);
    d->id = c->doc_id ? rag_strdup(c->doc_id) : NULL;
    if (!d->id)
        r->bad = 1;
}

int rag_store_chunk_decode(uint64_t id, const void *val, size_t vlen, rag_chunk_rec **out)
{
    *out = NULL;
    rag_chunk_rec *c = rag_calloc(1, sizeof *c);
    if (!c)
        return RAG_ENOMEM;
    rd r = {val, vlen, 0, 0};
    c->id = id;
    rd_get(&r, &c->start, 8);
    rd_get(&r, &c->end, 8);
    rd_get(&r, &c->text_hash, 8);
    rd_get(&r, &c->tokens, 4);
    rd_get(&r, &c->flags, 4);
    c->doc_id = rd_str(&r);
    c->heading = rd_str(&r);
    uint32_t tl = 0;
    rd_get(&r, &tl, 4);
    if (!r.bad && tl <= r.len - r.off) {
        c->text = rag_strndup((const char *)r.p + r.off, tl);
        c->text_len = tl;
        r.off += tl;
        if (!c->text)
            r.bad = 1;
    } else {
        r.bad = 1;
    }
    if (!r.bad && (c->flags & RAG_CHUNK_DOC_FIELDS))
        doc_fields_read(&r, c);
    if (r.bad) {
        rag_chunk_rec_free(c);
        return rag_fail(RAG_ECORRUPT, "damaged chunk record %llu", (unsigned long long)id);
    }
    *out = c;
    return RAG_OK;
}

int rag_store_chunk_get(rag_txn *t, uint32_t coll, uint64_t id, rag_chunk_rec **out)
{
    *out = NULL;
    unsigned char k[12];
    coll_id_key(k, coll, id);
    MDB_val v;
    int rc = get(t, t->st->dbi[DB_CHUNKS], k, 12, &v);
    if (rc != RAG_OK)
        return rc;
    return rag_store_chunk_decode(id, v.mv_data, v.mv_size, out);
}

int rag_store_chunk_put(rag_txn *t, uint32_t coll, const rag_chunk_rec *c)
{
    buf b = {0};
    /* only an encrypted store carries the document's fields: there they save a hit the
     * decryption of its document record; a plain store reads that record cheaply */
    int doc_fields = c->doc && t->st->encrypted;
    uint32_t flags = doc_fields ? c->flags | RAG_CHUNK_DOC_FIELDS : c->flags & ~RAG_CHUNK_DOC_FIELDS;
    buf_add(&b, &c->start, 8);
    buf_add(&b, &c->end, 8);
    buf_add(&b, &c->text_hash, 8);
    buf_add(&b, &c->tokens, 4);
    buf_add(&b, &flags, 4);
    buf_str(&b, c->doc_id);
    buf_str(&b, c->heading);
    uint32_t tl = (uint32_t)c->text_len;
    buf_add(&b, &tl, 4);
    buf_add(&b, c->text, c->text_len);
    if (doc_fields)
        doc_fields_write(&b, c->doc);
    unsigned char k[12];
    coll_id_key(k, coll, c->id);
    int rc = b.oom ? rag_fail(RAG_ENOMEM, "out of memory encoding chunk")
                   : put(t, t->st->dbi[DB_CHUNKS], k, 12, b.p, b.len, "write chunk");
    free(b.p);
    return rc;
}

int rag_store_chunk_del(rag_txn *t, uint32_t coll, uint64_t id)
{
    unsigned char k[12];
    coll_id_key(k, coll, id);
    return del(t, t->st->dbi[DB_CHUNKS], k, 12, "delete chunk");
}

int rag_store_chunk_head(rag_txn *t, uint32_t coll, uint64_t id, const char **doc_id,
                         size_t *doc_len, uint64_t *text_hash, uint32_t *flags)
{
    unsigned char k[12];
    coll_id_key(k, coll, id);
    MDB_val v;
    int rc = get(t, t->st->dbi[DB_CHUNKS], k, 12, &v);
    if (rc != RAG_OK)
        return rc;
    rd r = {v.mv_data, v.mv_size, 0, 0};
    uint64_t skip[2], h = 0;
    uint32_t tokens = 0, fl = 0, dl = 0;
    rd_get(&r, skip, 16);
    rd_get(&r, &h, 8);
    rd_get(&r, &tokens, 4);
    rd_get(&r, &fl, 4);
    rd_get(&r, &dl, 4);
    if (r.bad || dl > r.len - r.off)
        return rag_fail(RAG_ECORRUPT, "damaged chunk record %llu", (unsigned long long)id);
    *doc_id = (const char *)r.p + r.off;
    *doc_len = dl;
    if (text_hash)
        *text_hash = h;
    if (flags)
        *flags = fl;
    return RAG_OK;
}

int rag_store_chunk_live(rag_txn *t, uint32_t coll, uint64_t id)
{
    unsigned char k[12];
    coll_id_key(k, coll, id);
    MDB_val key = {12, k}, v;
    int rc = g_get(t->txn, t->st->dbi[DB_CHUNKS], &key, &v);
    return rc == 0 ? 1 : rc == MDB_NOTFOUND ? 0 : mdb_status(t, rc, "read chunk");
}

void rag_chunk_rec_free(rag_chunk_rec *c)
{
    if (!c)
        return;
    free(c->doc_id);
    free(c->heading);
    free(c->text);
    rag_doc_rec_free(c->doc);
    free(c);
}

/* ---- vectors -------------------------------------------------------------------------- */

int rag_store_vec_get(rag_txn *t, uint32_t coll, uint64_t id, float *out, int dim)
{
    unsigned char k[12];
    coll_id_key(k, coll, id);
    MDB_val v;
    int rc = get(t, t->st->dbi[DB_VECS], k, 12, &v);
    if (rc != RAG_OK)
        return rc;
    if (v.mv_size != (size_t)dim * sizeof(float))
        return rag_fail(RAG_ECORRUPT, "vector of chunk %llu has %zu bytes, expected %zu",
                        (unsigned long long)id, v.mv_size, (size_t)dim * sizeof(float));
    memcpy(out, v.mv_data, v.mv_size);
    return RAG_OK;
}

int rag_store_vec_put(rag_txn *t, uint32_t coll, uint64_t id, const float *vec, int dim)
{
    unsigned char k[12];
    coll_id_key(k, coll, id);
    return put(t, t->st->dbi[DB_VECS], k, 12, vec, (size_t)dim * sizeof(float), "write vector");
}

int rag_store_vec_del(rag_txn *t, uint32_t coll, uint64_t id)
{
    unsigned char k[12];
    coll_id_key(k, coll, id);
    return del(t, t->st->dbi[DB_VECS], k, 12, "delete vector");
}

int rag_store_vec_scan(rag_txn *t, uint32_t coll, uint64_t from, rag_vec_visit_fn visit,
                       void *user)
{
    MDB_cursor *c = NULL;
    int rc = mdb_cursor_open(t->txn, t->st->dbi[DB_VECS], &c);
    if (rc != 0)
        return mdb_status(t, rc, "open cursor");
    unsigned char start[12];
    coll_id_key(start, coll, from);
    MDB_val k = {12, start}, v;
    int mrc = g_cget(c, &k, &v, MDB_SET_RANGE);
    rc = RAG_OK;
    while (mrc == 0 && k.mv_size == 12 && rag_get_be32(k.mv_data) == coll) {
        if ((rc = cur_open(t, t->st->dbi[DB_VECS], &k, &v)) != RAG_OK)
            break;
        int dim = (int)(v.mv_size / sizeof(float));
        if (dim > t->scratch_dim) {
            float *s = rag_realloc(t->scratch, (size_t)dim * sizeof(float));
            if (!s) {
                rc = RAG_ENOMEM;
                break;
            }
            t->scratch = s;
            t->scratch_dim = dim;
        }
        memcpy(t->scratch, v.mv_data, (size_t)dim * sizeof(float));
        if ((rc = visit(user, rag_get_be64((const unsigned char *)k.mv_data + 4), t->scratch, dim)))
            break;
        mrc = g_cget(c, &k, &v, MDB_NEXT);
    }
    mdb_cursor_close(c);
    if (rc == RAG_OK && mrc != 0 && mrc != MDB_NOTFOUND)
        rc = mdb_status(t, mrc, "scan vectors");
    return rc;
}

/* ---- tombstones and hashes ------------------------------------------------------------ */

int rag_store_tomb_put(rag_txn *t, uint32_t coll, uint64_t id)
{
    unsigned char k[12];
    coll_id_key(k, coll, id);
    return put(t, t->st->dbi[DB_TOMBS], k, 12, "", 0, "write tombstone");
}

typedef struct tomb_count_ctx {
    uint64_t below, count;
} tomb_count_ctx;

static int tomb_count_visit(void *user, uint64_t id)
{
    tomb_count_ctx *x = user;
    if (id >= x->below)
        return 1; /* ids come in order: done */
    x->count++;
    return 0;
}

int rag_store_tomb_count(rag_txn *t, uint32_t coll, uint64_t below, uint64_t *count)
{
    tomb_count_ctx x = {below, 0};
    int rc = rag_store_tomb_scan(t, coll, tomb_count_visit, &x);
    *count = x.count;
    return rc == 1 ? RAG_OK : rc;
}

int rag_store_tomb_clear(rag_txn *t, uint32_t coll, uint64_t below)
{
    unsigned char prefix[4], end[12];
    rag_put_be32(prefix, coll);
    coll_id_key(end, coll, below);
    return del_range(t, t->st->dbi[DB_TOMBS], prefix, 4, below == UINT64_MAX ? NULL : end, 12,
                     NULL);
}

uint64_t rag_store_key_hash(const rag_txn *t, uint64_t hash)
{
    return t->st->crypt ? rag_crypt_hash64(t->st->crypt, hash) : hash;
}

int rag_store_hash_incr(rag_txn *t, uint32_t coll, uint64_t hash, uint32_t *before)
{
    unsigned char k[12];
    coll_id_key(k, coll, rag_store_key_hash(t, hash));
    MDB_val v;
    uint32_t n = 0;
    int rc = get(t, t->st->dbi[DB_HASHES], k, 12, &v);
    if (rc == RAG_OK && v.mv_size == 4)
        memcpy(&n, v.mv_data, 4);
    else if (rc != RAG_OK && rc != RAG_ENOTFOUND)
        return rc;
    if (before)
        *before = n;
    n++;
    return put(t, t->st->dbi[DB_HASHES], k, 12, &n, 4, "write chunk hash");
}

int rag_store_hash_decr(rag_txn *t, uint32_t coll, uint64_t hash)
{
    unsigned char k[12];
    coll_id_key(k, coll, rag_store_key_hash(t, hash));
    MDB_val v;
    uint32_t n = 0;
    int rc = get(t, t->st->dbi[DB_HASHES], k, 12, &v);
    if (rc == RAG_ENOTFOUND)
        return RAG_OK;
    if (rc != RAG_OK)
        return rc;
    if (v.mv_size == 4)
        memcpy(&n, v.mv_data, 4);
    if (n <= 1)
        return del(t, t->st->dbi[DB_HASHES], k, 12, "delete chunk hash");
    n--;
    return put(t, t->st->dbi[DB_HASHES], k, 12, &n, 4, "write chunk hash");
}

int rag_store_coll_purge(rag_txn *t, uint32_t coll)
{
    unsigned char prefix[4];
    rag_put_be32(prefix, coll);
    int rc = RAG_OK;
    for (int i = DB_DOCS; i <= DB_HASHES && rc == RAG_OK; i++)
        rc = del_range(t, t->st->dbi[i], prefix, 4, NULL, 0, NULL);
    return rc;
}

/* ---- auxiliary tables ----------------------------------------------------------------- */

/* The handle of table `table`: RAG_ENOTFOUND when it does not exist in the store (a
 * fixed table of a read-only store made by an older version) or is an application table
 * not opened yet (rag_store_kv_open); RAG_EINVAL for a name no table can have. */
static int kv_lookup(rag_store *st, const char *table, MDB_dbi *dbi)
{
    for (size_t i = 0; i < N_KV; i++) {
        if (strcmp(kv_tables[i], table) == 0 && st->kv[i] != (MDB_dbi)-1) {
            *dbi = st->kv[i];
            return RAG_OK;
        }
    }
    size_t n = atomic_load_explicit(&st->n_app, memory_order_acquire);
    for (size_t i = 0; i < n; i++) {
        if (strcmp(st->app_name[i], table) == 0) {
            *dbi = st->app_dbi[i];
            return RAG_OK;
        }
    }
    if (!*table || strlen(table) > RAG_TABLE_NAME_MAX)
        return rag_fail(RAG_EINVAL, "aux table name '%s' is not 1..%d bytes", table,
                        RAG_TABLE_NAME_MAX);
    return RAG_ENOTFOUND;
}

static int kv_dbi(rag_txn *t, const char *table, MDB_dbi *dbi)
{
    return kv_lookup(t->st, table, dbi);
}

int rag_store_kv_is_library(const char *table)
{
    for (size_t i = N_KV_APP; i < N_KV; i++)
        if (strcmp(kv_tables[i], table) == 0)
            return 1;
    for (size_t i = 0; i < sizeof kv_library_prefixes / sizeof *kv_library_prefixes; i++)
        if (strncmp(table, kv_library_prefixes[i], strlen(kv_library_prefixes[i])) == 0)
            return 1;
    return 0;
}

typedef struct app_open {
    char name[RAG_TABLE_NAME_MAX + 4];  /* "kv:<table>" */
    MDB_dbi dbi;
} app_open;

static int app_create_fn(rag_txn *t, void *user)
{
    app_open *a = user;
    int rc = g_dbi_open(t->txn, a->name, MDB_CREATE, &a->dbi);
    return rc ? mdb_status(t, rc, "create aux table") : RAG_OK;
}

/* Opens an existing table in a read transaction that is committed, so that its handle
 * stays open in the environment. RAG_ENOTFOUND when the store has no such table. */
static int app_find(rag_store *st, app_open *a)
{
    rag_txn *t = NULL;
    int rc = txn_begin(st, 0, &t);
    if (rc != RAG_OK)
        return rc;
    int mrc = g_dbi_open(t->txn, a->name, 0, &a->dbi);
    if (mrc == 0) {
        mrc = mdb_txn_commit(t->txn);
        t->txn = NULL;
    }
    rag_txn_end(t);
    return mrc == MDB_NOTFOUND ? RAG_ENOTFOUND : mdb_status(NULL, mrc, "open aux table");
}

int rag_store_kv_open(rag_store *st, const char *table, int create)
{
    MDB_dbi dbi;
    int rc = kv_lookup(st, table, &dbi);
    if (rc != RAG_ENOTFOUND)
        return rc;
    /* LMDB: a transaction that opens a database must end before another may open one */
    pthread_mutex_lock(&st->app_lock);
    size_t n = atomic_load_explicit(&st->n_app, memory_order_relaxed);
    app_open a;
    snprintf(a.name, sizeof a.name, "kv:%s", table);
    if ((rc = kv_lookup(st, table, &dbi)) != RAG_ENOTFOUND) {
        /* opened meanwhile */
    } else if (n == N_APP) {
        rc = rag_fail(RAG_EFULL, "aux table '%s': a store holds at most %d application tables",
                      table, N_APP);
    } else if ((rc = create ? rag_store_write(st, app_create_fn, &a) : app_find(st, &a)) ==
               RAG_OK) {
        snprintf(st->app_name[n], sizeof st->app_name[n], "%s", table);
        st->app_dbi[n] = a.dbi;
        if (a.dbi < MAX_DBI)
            st->enc_name[a.dbi] = st->app_name[n];
        atomic_store_explicit(&st->n_app, n + 1, memory_order_release);
    }
    pthread_mutex_unlock(&st->app_lock);
    return rc;
}

int rag_store_kv_put(rag_txn *t, const char *table, const void *key, size_t klen,
                     const void *val, size_t vlen)
{
    MDB_dbi dbi = 0;
    int rc = kv_dbi(t, table, &dbi);
    if (rc != RAG_OK)
        return rc;
    if (klen == 0 || klen > 511)
        return rag_fail(RAG_EINVAL, "aux key length %zu outside 1..511", klen);
    return put(t, dbi, key, klen, val, vlen, "write aux entry");
}

int rag_store_kv_get(rag_txn *t, const char *table, const void *key, size_t klen,
                     const void **val, size_t *vlen)
{
    MDB_dbi dbi = 0;
    int rc = kv_dbi(t, table, &dbi);
    if (rc != RAG_OK)
        return rc;
    if (klen == 0 || klen > 511)
        return rag_fail(RAG_EINVAL, "aux key length %zu outside 1..511", klen);
    MDB_val v;
    if ((rc = get(t, dbi, key, klen, &v)) != RAG_OK)
        return rc;
    *val = v.mv_data;
    *vlen = v.mv_size;
    return RAG_OK;
}

int rag_store_kv_del(rag_txn *t, const char *table, const void *key, size_t klen)
{
    MDB_dbi dbi = 0;
    int rc = kv_dbi(t, table, &dbi);
    if (rc != RAG_OK)
        return rc;
    if (klen == 0 || klen > 511)
        return rag_fail(RAG_EINVAL, "aux key length %zu outside 1..511", klen);
    return del(t, dbi, key, klen, "delete aux entry");
}

int rag_store_kv_scan(rag_txn *t, const char *table, const void *start, size_t slen,
                      rag_store_kv_visit_fn visit, void *user)
{
    MDB_dbi dbi = 0;
    int rc = kv_dbi(t, table, &dbi);
    if (rc == RAG_ENOTFOUND)
        return RAG_OK;
    if (rc != RAG_OK)
        return rc;
    MDB_cursor *c = NULL;
    if ((rc = mdb_cursor_open(t->txn, dbi, &c)) != 0)
        return mdb_status(t, rc, "open cursor");
    MDB_val k = {slen, (void *)start}, v;
    int mrc = start && slen ? g_cget(c, &k, &v, MDB_SET_RANGE)
                            : g_cget(c, &k, &v, MDB_FIRST);
    rc = RAG_OK;
    while (mrc == 0) {
        if ((rc = cur_open(t, dbi, &k, &v)) != RAG_OK ||
            (rc = visit(user, k.mv_data, k.mv_size, v.mv_data, v.mv_size)) != 0)
            break;
        mrc = g_cget(c, &k, &v, MDB_NEXT);
    }
    mdb_cursor_close(c);
    if (rc == RAG_OK && mrc != 0 && mrc != MDB_NOTFOUND)
        rc = mdb_status(t, mrc, "scan aux table");
    return rc;
}

/* Reads up to `max` entries of cursor c under one guard: the first with `op` (*k holding
 * its key for MDB_SET_RANGE), then MDB_NEXT, while their keys begin with prefix[0, plen).
 * *n receives the count read. Returns 0 when the run is full, MDB_NOTFOUND when the range
 * (or the table) ended, GUARD_FAULT or another LMDB code. */
static int g_crun(MDB_cursor *c, MDB_cursor_op op, MDB_val *k, const unsigned char *prefix,
                  size_t plen, rag_store_kv_ent *ents, size_t max, size_t *n)
{
    sigjmp_buf jb;
    MDB_val v;
    *n = 0;
    GUARD_ENTER(jb);
    size_t i = 0;
    int rc = 0;
    for (MDB_cursor_op o = op; i < max; o = MDB_NEXT) {
        if ((rc = mdb_cursor_get(c, k, &v, o)) != 0)
            break;
        guard_touch(k->mv_data, k->mv_size);
        if (k->mv_size < plen || memcmp(k->mv_data, prefix, plen) != 0) {
            rc = MDB_NOTFOUND;
            break;
        }
        guard_touch(v.mv_data, v.mv_size);
        ents[i++] = (rag_store_kv_ent){k->mv_data, v.mv_data, k->mv_size, v.mv_size};
    }
    GUARD_LEAVE();
    guard_jb = NULL; /* (jb dies with this frame) */
    *n = i;
    return rc;
}

/* Opens the sealed values of ents[0, n) of table `name` into the transaction's cursor
 * buffer, pointing each entry at its plaintext. */
static int run_open(rag_txn *t, const char *name, rag_store_kv_ent *ents, size_t n)
{
    size_t total = 1, off = 0;
    for (size_t i = 0; i < n; i++)
        total += ents[i].vlen;
    if (grow(&t->cur, &t->cur_cap, total) != RAG_OK)
        return RAG_ENOMEM;
    for (size_t i = 0; i < n; i++) {
        MDB_val key = {ents[i].klen, (void *)ents[i].key};
        MDB_val v = {ents[i].vlen, (void *)ents[i].val};
        int rc = unseal_into(t, name, &key, &v, t->cur + off);
        if (rc != RAG_OK)
            return rc;
        off += ents[i].vlen;
        ents[i].val = v.mv_data;
        ents[i].vlen = v.mv_size;
    }
    return RAG_OK;
}

int rag_store_kv_prefix_scan(rag_txn *t, const char *table, const void *prefix, size_t plen,
                             rag_store_kv_run_fn visit, void *user)
{
    rag_store_kv_ent ents[RAG_STORE_KV_RUN];
    MDB_dbi dbi = 0;
    MDB_cursor *c = NULL;
    int rc = kv_dbi(t, table, &dbi);
    if (rc == RAG_ENOTFOUND)
        return RAG_OK;
    if (rc != RAG_OK)
        return rc;
    if (plen == 0 || plen > 511)
        return rag_fail(RAG_EINVAL, "aux key prefix length %zu outside 1..511", plen);
    if ((rc = mdb_cursor_open(t->txn, dbi, &c)) != 0)
        return mdb_status(t, rc, "open cursor");
    const char *sealed = sealed_table(t->st, dbi);
    MDB_val k = {plen, (void *)prefix};
    MDB_cursor_op op = MDB_SET_RANGE;
    int mrc = 0;
    while (mrc == 0) {
        size_t n = 0;
        mrc = g_crun(c, op, &k, prefix, plen, ents, RAG_STORE_KV_RUN, &n);
        op = MDB_NEXT;
        if (n == 0)
            break;
        if (sealed && (rc = run_open(t, sealed, ents, n)) != RAG_OK)
            break;
        if ((rc = visit(user, ents, n)) != 0)
            break;
    }
    mdb_cursor_close(c);
    if (rc == RAG_OK && mrc != 0 && mrc != MDB_NOTFOUND)
        rc = mdb_status(t, mrc, "scan aux table");
    return rc;
}

int rag_store_kv_trim(rag_txn *t, const char *table, const void *end, size_t elen,
                      long *deleted)
{
    MDB_dbi dbi = 0;
    int rc = kv_dbi(t, table, &dbi);
    if (rc != RAG_OK)
        return rc;
    return del_range(t, dbi, (const unsigned char *)"", 0, end, elen, deleted);
}

/* Bytes of pages of `dbi` as this transaction sees it. */
static int dbi_bytes(rag_txn *t, MDB_dbi dbi, uint64_t *bytes)
{
    MDB_stat s;
    int rc = mdb_stat(t->txn, dbi, &s);
    if (rc != 0)
        return mdb_status(t, rc, "table size");
    *bytes = ((uint64_t)s.ms_branch_pages + s.ms_leaf_pages + s.ms_overflow_pages) * s.ms_psize;
    return RAG_OK;
}

int rag_store_kv_bytes(rag_txn *t, const char *table, uint64_t *bytes)
{
    MDB_dbi dbi = 0;
    *bytes = 0;
    int rc = kv_dbi(t, table, &dbi);
    if (rc == RAG_ENOTFOUND)
        return RAG_OK; /* never written: empty */
    return rc == RAG_OK ? dbi_bytes(t, dbi, bytes) : rc;
}

int rag_store_kv_shrink(rag_txn *t, const char *table, uint64_t target, long max_delete,
                        long *deleted)
{
    MDB_dbi dbi = 0;
    MDB_cursor *c = NULL;
    uint64_t used = 0;
    long n = 0;
    *deleted = 0;
    int rc = kv_dbi(t, table, &dbi);
    if (rc != RAG_OK)
        return rc == RAG_ENOTFOUND ? RAG_OK : rc;
    if ((rc = dbi_bytes(t, dbi, &used)) != RAG_OK || used <= target)
        return rc;
    int mrc = mdb_cursor_open(t->txn, dbi, &c);
    if (mrc != 0)
        return mdb_status(t, mrc, "open cursor");
    MDB_val k, v;
    /* the table's size is kept in the transaction's copy of its record: exact after
     * each delete */
    while (rc == RAG_OK && used > target && n < max_delete &&
           (mrc = g_cget(c, &k, &v, MDB_FIRST)) == 0) {
        if ((mrc = mdb_cursor_del(c, 0)) != 0)
            break;
        n++;
        rc = dbi_bytes(t, dbi, &used);
    }
    mdb_cursor_close(c);
    if (rc == RAG_OK && mrc != 0 && mrc != MDB_NOTFOUND)
        rc = mdb_status(t, mrc, "shrink table");
    *deleted = n;
    return rc;
}

/* ---- integrity checks and backups (check.c, backup.c) ---------------------------------- */


/* Visits the 12-byte (collection, u64) keys of `dbi` for one collection with their values. */
static int id_table_scan(rag_txn *t, MDB_dbi dbi, uint32_t coll, const char *what,
                         int (*visit)(void *, uint64_t, const MDB_val *), void *user)
{
    MDB_cursor *c = NULL;
    int rc = mdb_cursor_open(t->txn, dbi, &c);
    if (rc != 0)
        return mdb_status(t, rc, "open cursor");
    unsigned char start[12];
    coll_id_key(start, coll, 0);
    MDB_val k = {12, start}, v;
    int mrc = g_cget(c, &k, &v, MDB_SET_RANGE);
    rc = RAG_OK;
    while (mrc == 0 && k.mv_size >= 4 && rag_get_be32(k.mv_data) == coll) {
        if (k.mv_size != 12) {
            rc = rag_fail(RAG_ECORRUPT, "%s key of collection %u has %zu bytes, expected 12", what,
                          coll, k.mv_size);
            break;
        }
        if ((rc = visit(user, rag_get_be64((const unsigned char *)k.mv_data + 4), &v)) != 0)
            break;
        mrc = g_cget(c, &k, &v, MDB_NEXT);
    }
    mdb_cursor_close(c);
    if (rc == RAG_OK && mrc != 0 && mrc != MDB_NOTFOUND)
        rc = mdb_status(t, mrc, what);
    return rc;
}

typedef struct tomb_visit_ctx {
    rag_id_visit_fn visit;
    void *user;
} tomb_visit_ctx;

static int tomb_visit(void *user, uint64_t id, const MDB_val *v)
{
    (void)v;
    tomb_visit_ctx *x = user;
    return x->visit(x->user, id);
}

int rag_store_chunk_id_scan(rag_txn *t, uint32_t coll, rag_id_visit_fn visit, void *user)
{
    tomb_visit_ctx x = {visit, user};
    return id_table_scan(t, t->st->dbi[DB_CHUNKS], coll, "scan chunks", tomb_visit, &x);
}

int rag_store_tomb_scan(rag_txn *t, uint32_t coll, rag_id_visit_fn visit, void *user)
{
    tomb_visit_ctx x = {visit, user};
    return id_table_scan(t, t->st->dbi[DB_TOMBS], coll, "scan tombstones", tomb_visit, &x);
}

typedef struct hash_visit_ctx {
    rag_hash_visit_fn visit;
    void *user;
} hash_visit_ctx;

static int hash_visit(void *user, uint64_t hash, const MDB_val *v)
{
    hash_visit_ctx *x = user;
    uint32_t n = 0;
    if (v->mv_size == 4)
        memcpy(&n, v->mv_data, 4);
    else
        return rag_fail(RAG_ECORRUPT, "chunk-hash count has %zu bytes, expected 4", v->mv_size);
    return x->visit(x->user, hash, n);
}

int rag_store_hash_scan(rag_txn *t, uint32_t coll, rag_hash_visit_fn visit, void *user)
{
    hash_visit_ctx x = {visit, user};
    return id_table_scan(t, t->st->dbi[DB_HASHES], coll, "scan chunk hashes", hash_visit, &x);
}

int rag_store_hash_set(rag_txn *t, uint32_t coll, uint64_t hash, uint32_t count)
{
    unsigned char k[12];
    coll_id_key(k, coll, hash);
    if (count == 0) {
        int rc = del(t, t->st->dbi[DB_HASHES], k, 12, "delete chunk hash");
        return rc == RAG_ENOTFOUND ? RAG_OK : rc;
    }
    return put(t, t->st->dbi[DB_HASHES], k, 12, &count, 4, "write chunk hash");
}

int rag_store_hash_clear(rag_txn *t, uint32_t coll)
{
    unsigned char prefix[4];
    rag_put_be32(prefix, coll);
    return del_range(t, t->st->dbi[DB_HASHES], prefix, 4, NULL, 0, NULL);
}

int rag_store_coll_key_counts(rag_txn *t, rag_keycount_fn visit, void *user)
{
    static const int tables[] = {DB_DOCS, DB_CHUNKS, DB_VECS, DB_TOMBS, DB_HASHES};
    int rc = RAG_OK;
    for (size_t i = 0; i < sizeof tables / sizeof tables[0] && rc == RAG_OK; i++) {
        MDB_cursor *c = NULL;
        if ((rc = mdb_cursor_open(t->txn, t->st->dbi[tables[i]], &c)) != 0)
            return mdb_status(t, rc, "open cursor");
        MDB_val k, v;
        int mrc = g_cget(c, &k, &v, MDB_FIRST);
        uint32_t cur = 0;
        uint64_t n = 0, bad = 0;
        while (mrc == 0) {
            if (k.mv_size < 4) {
                bad++;
            } else {
                uint32_t id = rag_get_be32(k.mv_data);
                if (n > 0 && id != cur) {
                    if ((rc = visit(user, core_db_names[tables[i]], cur, n)) != 0)
                        break;
                    n = 0;
                }
                cur = id;
                n++;
            }
            mrc = g_cget(c, &k, &v, MDB_NEXT);
        }
        mdb_cursor_close(c);
        if (rc == RAG_OK && n > 0)
            rc = visit(user, core_db_names[tables[i]], cur, n);
        if (rc == RAG_OK && bad > 0)
            rc = rag_fail(RAG_ECORRUPT, "table '%s' holds %llu keys shorter than 4 bytes",
                          core_db_names[tables[i]], (unsigned long long)bad);
        if (rc == RAG_OK && mrc != 0 && mrc != MDB_NOTFOUND)
            rc = mdb_status(t, mrc, "count keys");
    }
    return rc;
}

int rag_store_backup(rag_store *st, const char *outdir)
{
    if (mkdir(outdir, 0700) != 0 && errno != EEXIST)
        return rag_fail(errno == ENOSPC ? RAG_EFULL : RAG_EIO, "cannot create '%s': %s", outdir,
                        strerror(errno));
    /* Held shared so that no map resize of this process runs during the copy. */
    pthread_rwlock_rdlock(&st->resize_lock);
    int rc = mdb_env_copy2(st->env, outdir, MDB_CP_COMPACT);
    pthread_rwlock_unlock(&st->resize_lock);
    if (rc != 0) {
        rc = mdb_status(NULL, rc, "compacting copy");
        return rag_fail_prefix(rc, "backup to '%s'", outdir);
    }
    char path[4096];
    snprintf(path, sizeof path, "%s/data.mdb", outdir);
    chmod(path, RAG_STORE_FILE_MODE); /* LMDB creates it 0666 less the umask */
    return RAG_OK;
}

#include <sys/statvfs.h>

int rag_store_io_status(rag_store *st, int rc)
{
    if (rc != RAG_EIO)
        return rc;
    const char *path = NULL;
    struct statvfs vfs;
    if (mdb_env_get_path(st->env, &path) != 0 || !path || statvfs(path, &vfs) != 0)
        return rc;
    unsigned long long avail = (unsigned long long)vfs.f_bavail * vfs.f_frsize;
    if (avail >= (1ull << 20))
        return rc;
    char cause[512];
    snprintf(cause, sizeof cause, "%s", rag_errmsg());
    return rag_fail(RAG_EFULL, "no space left on device (%llu KiB free on the file system of "
                    "'%s'): %s", avail >> 10, path, cause);
}

int rag_store_raw_put(rag_txn *t, const char *table, const void *key, size_t klen,
                      const void *val, size_t vlen)
{
    for (int i = 0; i < N_CORE_DB; i++)
        if (strcmp(table, core_db_names[i]) == 0)
            return put(t, t->st->dbi[i], key, klen, val, vlen, "write record");
    if (strncmp(table, "kv:", 3) == 0)
        return rag_store_kv_put(t, table + 3, key, klen, val, vlen);
    return rag_fail(RAG_EINVAL, "no table '%s' in a ragcore store", table);
}

/* ---- erasure: scrubbing what the environment no longer references ------------------ */
/*
 * LMDB never overwrites a page in place: a deleted record stays readable in the freed
 * page that held it until a later transaction reuses that page, and in the unused middle
 * of live pages (the bytes between a page's node pointers and its nodes, which a delete
 * leaves as they were and which LMDB copies from recycled page buffers of this process).
 * rag_store_scrub overwrites all of them with zeros in place, through its own descriptor,
 * while readers run: a reader reads only the used parts of the pages of its snapshot.
 */

/* Pages 0 and 1 are the meta pages; the page header's layout is in pagewalk.h. */

unsigned rag_store_dir_mode(unsigned file_mode)
{
    return (file_mode & 0777) | ((file_mode & 0444) >> 2);
}

/* Closes and reopens the environment, so that no page buffer LMDB recycles within this
 * process still holds bytes of records deleted before (see above). Called with
 * st->write_lock held; takes resize_lock alone, so no transaction of this process is open
 * meanwhile. Table handles are reopened in their original order, which gives them their
 * original numbers (checked). */
static int env_reopen(rag_store *st)
{
    int rc = RAG_OK;
    MDB_txn *txn = NULL;
    pthread_rwlock_wrlock(&st->resize_lock);
    mdb_env_close(st->env);
    st->env = NULL;
    if ((rc = mdb_env_create(&st->env)) != 0) {
        st->env = NULL;
        rc = mdb_status(NULL, rc, "create LMDB environment");
        goto cleanup;
    }
    mdb_env_set_maxdbs(st->env, N_CORE_DB + N_KV + N_APP + 4);
    mdb_env_set_maxreaders(st->env, 510);
    mdb_env_set_mapsize(st->env, st->map_size);
    if ((rc = mdb_env_open(st->env, st->dir, MDB_NOTLS, 0600)) != 0 ||
        (rc = mdb_txn_begin(st->env, NULL, 0, &txn)) != 0) {
        rc = mdb_status(NULL, rc, "reopen LMDB environment");
        goto cleanup;
    }
    size_t n_app = atomic_load(&st->n_app);
    for (size_t i = 0; i < N_CORE_DB + N_KV + n_app && rc == 0; i++) {
        char name[RAG_TABLE_NAME_MAX + 4];
        MDB_dbi want, got;
        if (i < N_CORE_DB) {
            snprintf(name, sizeof name, "%s", core_db_names[i]);
            want = st->dbi[i];
        } else if (i < N_CORE_DB + N_KV) {
            snprintf(name, sizeof name, "kv:%s", kv_tables[i - N_CORE_DB]);
            want = st->kv[i - N_CORE_DB];
        } else {
            snprintf(name, sizeof name, "kv:%s", st->app_name[i - N_CORE_DB - N_KV]);
            want = st->app_dbi[i - N_CORE_DB - N_KV];
        }
        if ((rc = mdb_dbi_open(txn, name, 0, &got)) == 0 && got != want)
            rc = MDB_INCOMPATIBLE;
    }
    if (rc == 0) {
        rc = mdb_txn_commit(txn);
        txn = NULL;
    }
    if (rc != 0)
        rc = mdb_status(NULL, rc, "reopen the store's tables");
cleanup:
    if (txn)
        mdb_txn_abort(txn);
    pthread_rwlock_unlock(&st->resize_lock);
    return rc;
}

/* Commits a write transaction that changes only the meta key "scrub" (its value counts
 * scrubs), so that the two meta pages both point past the transactions before it. */
static int scrub_commit(rag_store *st)
{
    int rc = RAG_OK;
    for (int attempt = 0; attempt < 8; attempt++) {
        rag_txn *t = NULL;
        if ((rc = txn_begin(st, 1, &t)) != RAG_OK)
            return rc;
        uint64_t n = 0;
        unsigned char v[8];
        if ((rc = meta_u64(t, "scrub", &n)) == RAG_OK) {
            rag_put_be64(v, n + 1);
            rc = put(t, t->st->dbi[DB_META], "scrub", 5, v, 8, "count scrubs");
        }
        if (rc == RAG_OK)
            rc = write_commit(st, t);
        int full = t->map_full;
        rag_txn_end(t);
        if (rc == RAG_OK || !full)
            break;
        if ((rc = grow_map(st)) != RAG_OK)
            break;
    }
    return rc;
}

/* mdb_reader_list's lines: "<pid> <thread> <txnid or ->". Keeps the oldest snapshot. */
typedef struct oldest_reader {
    uint64_t txnid;   /* UINT64_MAX: none */
    int pid;
} oldest_reader;

static int reader_line(const char *msg, void *ctx)
{
    oldest_reader *o = ctx;
    int pid;
    unsigned long long tid, txnid;
    if (sscanf(msg, "%d %llx %llu", &pid, &tid, &txnid) == 3 && txnid < o->txnid) {
        o->txnid = txnid;
        o->pid = pid;
    }
    return 0;
}

/* Free pages of the store, from its freelist (LMDB's table 0: key = id of the
 * transaction that freed them, value = count then page numbers), split by whether a
 * transaction older than `oldest` freed them (no snapshot can read them: they may be
 * zeroed) or not. Bitmaps of last_pgno + 1 bits; *pinned counts free pages freed before
 * `need` that a reader still sees. */
typedef struct free_map {
    unsigned char *zero, *keep;
    uint64_t npages, nfree, pinned;
} free_map;

static void bit_set(unsigned char *b, uint64_t i) { b[i >> 3] |= (unsigned char)(1u << (i & 7)); }
static int bit_get(const unsigned char *b, uint64_t i) { return b[i >> 3] >> (i & 7) & 1; }

static int free_map_read(rag_txn *t, uint64_t npages, uint64_t oldest, uint64_t need,
                         free_map *fm)
{
    MDB_cursor *c = NULL;
    fm->npages = npages;
    fm->nfree = fm->pinned = 0;
    fm->zero = rag_calloc(npages / 8 + 1, 1);
    fm->keep = rag_calloc(npages / 8 + 1, 1);
    if (!fm->zero || !fm->keep)
        return RAG_ENOMEM;
    int rc = mdb_cursor_open(t->txn, 0, &c);
    if (rc != 0)
        return mdb_status(t, rc, "open the free-page list");
    MDB_val k, v;
    for (rc = mdb_cursor_get(c, &k, &v, MDB_FIRST); rc == 0; rc = mdb_cursor_get(c, &k, &v, MDB_NEXT)) {
        size_t freed_by = 0, count = 0;
        if (k.mv_size != sizeof freed_by || v.mv_size < sizeof count)
            continue;
        memcpy(&freed_by, k.mv_data, sizeof freed_by);
        memcpy(&count, v.mv_data, sizeof count);
        if (v.mv_size < (count + 1) * sizeof count)
            count = v.mv_size / sizeof count - 1;
        for (size_t i = 1; i <= count; i++) {
            size_t pg;
            memcpy(&pg, (const char *)v.mv_data + i * sizeof pg, sizeof pg);
            if (pg < 2 || pg >= npages)
                continue;
            fm->nfree++;
            if (freed_by < oldest) {
                bit_set(fm->zero, pg);
            } else {
                bit_set(fm->keep, pg);
                if (freed_by < need)
                    fm->pinned++;
            }
        }
    }
    mdb_cursor_close(c);
    return rc == MDB_NOTFOUND ? RAG_OK : mdb_status(t, rc, "read the free-page list");
}

static int all_zero(const unsigned char *p, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (p[i])
            return 0;
    return 1;
}

/* Zeroes in memory what page `pg` (its bytes read into p) holds unused: all of a free page
 * of fm->zero, the unused middle of a branch or leaf page. *skip counts the overflow
 * pages still to pass (their bytes are a record's). Returns 1 when it changed the page. */
static int scrub_page(unsigned char *p, uint64_t pg, size_t psize, const free_map *fm,
                      uint64_t *skip, rag_scrub_stats *s)
{
    size_t from = 0, to = psize;
    if (pg < 2 || bit_get(fm->keep, pg))
        return 0; /* a meta page, or a free page a reader's snapshot may still read */
    if (bit_get(fm->zero, pg)) {
        *skip = 0;
    } else if (*skip > 0) {
        (*skip)--;
        return 0;
    } else {
        unsigned flags = rag_pg_u16(p + RAG_PG_FLAGS);
        if (flags & RAG_PG_OVERFLOW) {
            uint32_t np = rag_pg_u32(p + RAG_PG_LOWER);
            *skip = np > 0 ? np - 1 : 0;
            return 0;
        }
        if (!(flags & (RAG_PG_BRANCH | RAG_PG_LEAF)) || (flags & RAG_PG_LEAF2))
            return 0;
        from = rag_pg_u16(p + RAG_PG_LOWER);
        to = rag_pg_u16(p + RAG_PG_UPPER);
        if (from < RAG_PG_HDRSZ || from > to || to > psize)
            return 0; /* not a page header we understand: leave it */
    }
    if (to == from || all_zero(p + from, to - from))
        return 0;
    memset(p + from, 0, to - from);
    if (to - from == psize)
        s->pages_zeroed++;
    else
        s->gap_bytes_zeroed += to - from;
    return 1;
}

/* Writes the changed pages [from, to) of the block that starts at page `first` back
 * whole: one write per run of changed pages rather than one per gap (a store's first
 * scrub changes nearly every page). Their other bytes go back as they were read: the
 * caller holds the store's writer lock, so no write can come between. */
static int write_run(int fd, const char *path, const unsigned char *blk, size_t psize,
                     uint64_t first, uint64_t from, uint64_t to)
{
    size_t len = (size_t)(to - from) * psize;
    if (from < to &&
        pwrite(fd, blk + (from - first) * psize, len, (off_t)(from * psize)) != (ssize_t)len)
        return rag_fail(errno == ENOSPC ? RAG_EFULL : RAG_EIO, "cannot write '%s': %s", path,
                        strerror(errno));
    return RAG_OK;
}

/* Zeroes, in the file open as fd, the free pages of fm->zero, the unused middle of every
 * other branch and leaf page and everything after the last page; pages of fm->keep are
 * left alone (a reader may still read them). */
static int scrub_file(int fd, const char *path, size_t psize, const free_map *fm,
                      rag_scrub_stats *s)
{
    enum { BLOCK = 256 };
    unsigned char *blk = rag_malloc(psize * BLOCK);
    int rc = RAG_OK;
    uint64_t skip = 0; /* overflow pages still to pass */
    if (!blk)
        return RAG_ENOMEM;
    for (uint64_t first = 0; first < fm->npages && rc == RAG_OK; first += BLOCK) {
        uint64_t n = fm->npages - first < BLOCK ? fm->npages - first : BLOCK;
        ssize_t got = pread(fd, blk, n * psize, (off_t)(first * psize));
        if (got < 0) {
            rc = rag_fail(RAG_EIO, "cannot read '%s': %s", path, strerror(errno));
            break;
        }
        n = (uint64_t)got / psize;
        uint64_t run = first; /* first page of the run of changed pages */
        for (uint64_t i = 0; i < n && rc == RAG_OK; i++) {
            s->pages++;
            if (!scrub_page(blk + i * psize, first + i, psize, fm, &skip, s)) {
                rc = write_run(fd, path, blk, psize, first, run, first + i);
                run = first + i + 1;
            }
        }
        if (rc == RAG_OK)
            rc = write_run(fd, path, blk, psize, first, run, first + n);
    }
    /* past the last page: pages a crashed or aborted transaction wrote */
    struct stat sb;
    if (rc == RAG_OK && fstat(fd, &sb) == 0 && (uint64_t)sb.st_size > fm->npages * psize) {
        for (off_t off = (off_t)(fm->npages * psize); off < sb.st_size && rc == RAG_OK;) {
            size_t m = (size_t)(sb.st_size - off) < psize * BLOCK ? (size_t)(sb.st_size - off)
                                                                   : psize * BLOCK;
            ssize_t got = pread(fd, blk, m, off);
            if (got <= 0)
                break;
            if (!all_zero(blk, (size_t)got)) {
                memset(blk, 0, (size_t)got);
                if (pwrite(fd, blk, (size_t)got, off) != got)
                    rc = rag_fail(RAG_EIO, "cannot write '%s': %s", path, strerror(errno));
                s->tail_bytes_zeroed += (uint64_t)got;
            }
            off += got;
        }
    }
    if (rc == RAG_OK && fdatasync(fd) != 0)
        rc = rag_fail(RAG_EIO, "cannot sync '%s': %s", path, strerror(errno));
    free(blk);
    return rc;
}

int rag_store_scrub(rag_store *st, double wait_seconds, rag_scrub_stats *stats)
{
    rag_scrub_stats s;
    memset(&s, 0, sizeof s);
    if (st->read_only)
        return rag_fail(RAG_EREADONLY, "store is open read-only");
    char path[4096];
    snprintf(path, sizeof path, "%s/data.mdb", st->dir);
    free_map fm = {0};
    int fd = -1, rc;
    pthread_mutex_lock(&st->write_lock);
    /* 1. No recycled page buffer of this process holds deleted bytes any more. 2. Two
     * commits: every page freed before them is out of both meta pages' snapshots. */
    if ((rc = env_reopen(st)) != RAG_OK || (rc = scrub_commit(st)) != RAG_OK ||
        (rc = scrub_commit(st)) != RAG_OK)
        goto cleanup;
    uint64_t need = rag_store_last_txn(st); /* pages freed before it must all be zeroed */
    double waited = 0;
    for (;;) {
        int dead = 0;
        mdb_reader_check(st->env, &dead);
        oldest_reader o = {UINT64_MAX, 0};
        mdb_reader_list(st->env, reader_line, &o);
        rag_txn *t = NULL;
        if ((rc = txn_begin(st, 0, &t)) != RAG_OK)
            goto cleanup;
        MDB_envinfo info;
        MDB_stat ms;
        mdb_env_info(st->env, &info);
        mdb_env_stat(st->env, &ms);
        uint64_t last = (uint64_t)mdb_txn_id(t->txn), oldest = last;
        if (o.txnid != UINT64_MAX && o.txnid + 1 < oldest)
            oldest = o.txnid + 1;
        free(fm.zero);
        free(fm.keep);
        s.page_size = ms.ms_psize;
        rc = free_map_read(t, (uint64_t)info.me_last_pgno + 1, oldest, need, &fm);
        rag_txn_end(t);
        if (rc != RAG_OK)
            goto cleanup;
        if (fm.pinned == 0)
            break;
        if (waited >= wait_seconds) {
            rc = rag_fail(RAG_EBUSY, "%llu freed pages of the store are still read by a "
                          "snapshot of pid %d (a long read transaction); the erasure "
                          "completes when it ends (at the next erasure or open)",
                          (unsigned long long)fm.pinned, o.pid);
            goto cleanup;
        }
        struct timespec ts = {0, 10 * 1000000L};
        nanosleep(&ts, NULL);
        waited += 0.01;
    }
    s.file_bytes = fm.npages * s.page_size;
    s.free_pages = fm.nfree;
    if ((fd = open(path, O_RDWR | O_CLOEXEC)) < 0) {
        rc = rag_fail(RAG_EIO, "cannot open '%s': %s", path, strerror(errno));
        goto cleanup;
    }
    rc = scrub_file(fd, path, s.page_size, &fm, &s);
cleanup:
    pthread_mutex_unlock(&st->write_lock);
    if (fd >= 0)
        close(fd);
    free(fm.zero);
    free(fm.keep);
    if (stats)
        *stats = s;
    return rc == RAG_OK ? rc : rag_fail_prefix(rc, "scrub of '%s'", path);
}

/* ---- encryption at rest (the keys and the sealing are crypt.c's) ---------------------- */

const rag_crypt *rag_store_crypt(const rag_store *st)
{
    return st ? st->crypt : NULL;
}

const rag_crypt *rag_txn_crypt(const rag_txn *txn)
{
    return txn->st->crypt;
}

int rag_store_encrypted(const rag_store *st)
{
    return st->encrypted;
}

/* Writes the header of st->crypt (meta "crypt"). */
static int header_put(rag_txn *t)
{
    unsigned char *h = NULL;
    size_t len = 0;
    int rc = rag_crypt_header(t->st->crypt, &h, &len);
    if (rc == RAG_OK)
        rc = put(t, t->st->dbi[DB_META], "crypt", 5, h, len, "write the encryption header");
    free(h);
    return rc;
}

static int header_put_fn(rag_txn *t, void *user)
{
    (void)user;
    return header_put(t);
}

/* rag_store_unlock without the record cache. */
static int unlock_keys(rag_store *st, const char *secret)
{
    rag_txn *t = NULL;
    MDB_val hv, sv;
    int rc = rag_store_read(st, &t);
    if (rc != RAG_OK)
        return rc;
    int have = get(t, st->dbi[DB_META], "crypt", 5, &hv);
    if (have != RAG_OK && have != RAG_ENOTFOUND) { /* a damaged page: keep its message */
        rag_txn_end(t);
        return rag_fail_prefix(have, "store '%s': cannot read its encryption header", st->dir);
    }
    int fresh = get(t, st->dbi[DB_META], "schema_version", 14, &sv) == RAG_ENOTFOUND;
    rag_clear_error();
    int create = 0;
    if (have == RAG_OK) {
        st->encrypted = 1;
        rc = secret ? rag_crypt_open(secret, hv.mv_data, hv.mv_size, st->dir, &st->crypt)
                    : no_key(st);
    } else if (have != RAG_ENOTFOUND) {
        rc = have;
    } else if (!secret || (fresh && st->read_only)) {
        rc = RAG_OK; /* a plain store (a missing read-only one fails later, by name) */
    } else if (!fresh) {
        rc = rag_fail(RAG_EKEY, "store '%s' is not encrypted, but a key was given (a store is "
                      "encrypted when it is created; copy a plain one into a new encrypted "
                      "store to encrypt it)", st->dir);
    } else {
        create = 1;
    }
    rag_txn_end(t);
    if (!create)
        return rc;
    if ((rc = rag_crypt_create(secret, &st->crypt)) != RAG_OK)
        return rc;
    st->encrypted = 1;
    if ((rc = rag_store_write(st, header_put_fn, NULL)) != RAG_OK) {
        rag_crypt_free(st->crypt);
        st->crypt = NULL;
        st->encrypted = 0;
    }
    return rc;
}

int rag_store_unlock(rag_store *st, const char *secret)
{
    int rc = unlock_keys(st, secret);
    if (rc == RAG_OK && st->crypt && !st->cache)
        rc = rag_sealcache_create(SEAL_CACHE_BYTES, &st->cache);
    return rc;
}

int rag_store_rekey_pending(const rag_store *st)
{
    return st->crypt && rag_crypt_generations(st->crypt) > 1;
}

static int rotate_fn(rag_txn *t, void *user)
{
    int rc = RAG_OK;
    if (rag_crypt_generations(t->st->crypt) == 1) /* not on a retry */
        rc = rag_crypt_rotate(t->st->crypt, user);
    return rc == RAG_OK ? header_put(t) : rc;
}

int rag_store_rekey_begin(rag_store *st, const char *new_secret)
{
    if (!st->crypt)
        return st->encrypted ? no_key(st)
                             : rag_fail(RAG_EINVAL, "store '%s' is not encrypted", st->dir);
    if (rag_store_rekey_pending(st))
        return rag_fail(RAG_EBUSY, "store '%s': a key rotation is unfinished", st->dir);
    return rag_store_write(st, rotate_fn, (void *)new_secret);
}

/* One bounded step of a rotation over one table: from `start`, re-seals at most `batch`
 * records of an older generation under the current one. */
typedef struct reseal_step {
    MDB_dbi dbi;
    const char *name;
    unsigned char start[512], next[512], key[512];
    size_t slen, nlen;
    long batch, resealed;
    int at_end;
} reseal_step;

static int reseal_fn(rag_txn *t, void *user)
{
    reseal_step *r = user;
    MDB_cursor *c = NULL;
    unsigned cur = rag_crypt_current(t->st->crypt);
    int mrc = mdb_cursor_open(t->txn, r->dbi, &c);
    if (mrc != 0)
        return mdb_status(t, mrc, "open cursor");
    MDB_val k = {r->slen, r->start}, v;
    mrc = r->slen ? g_cget(c, &k, &v, MDB_SET_RANGE) : g_cget(c, &k, &v, MDB_FIRST);
    long n = 0, seen = 0;
    int rc = RAG_OK;
    r->resealed = 0;
    r->nlen = r->slen;
    memcpy(r->next, r->start, r->slen);
    while (mrc == 0 && n < r->batch && seen < 16 * r->batch) {
        seen++;
        if (rag_crypt_record_gen(v.mv_data, v.mv_size) != cur) {
            if ((rc = cur_open(t, r->dbi, &k, &v)) != RAG_OK ||
                (rc = grow(&t->seal, &t->seal_cap, v.mv_size + RAG_CRYPT_OVERHEAD)) != RAG_OK)
                break;
            rag_crypt_seal(t->st->crypt, r->name, strlen(r->name), k.mv_data, k.mv_size,
                           v.mv_data, v.mv_size, t->seal);
            MDB_val nv = {v.mv_size + RAG_CRYPT_OVERHEAD, t->seal};
            /* The key is passed as a copy: k points into the leaf page, and LMDB replaces a
             * value on overflow pages (records over about 2 KB) by deleting the node and
             * adding it again, which moves the page's bytes under k, so the re-added key
             * was garbage (keys out of order, the record lost to its key). */
            if (k.mv_size > sizeof r->key) {
                rc = rag_fail(RAG_ECORRUPT, "key of %zu bytes in table '%s'", k.mv_size, r->name);
                break;
            }
            memcpy(r->key, k.mv_data, k.mv_size);
            k = (MDB_val){k.mv_size, r->key};
            if ((mrc = mdb_cursor_put(c, &k, &nv, MDB_CURRENT)) != 0)
                break;
            n++;
        }
        r->nlen = k.mv_size < sizeof r->next ? k.mv_size : sizeof r->next;
        memcpy(r->next, k.mv_data, r->nlen);
        mrc = g_cget(c, &k, &v, MDB_NEXT);
    }
    mdb_cursor_close(c);
    if (rc == RAG_OK && mrc != 0 && mrc != MDB_NOTFOUND)
        rc = mdb_status(t, mrc, "re-seal records");
    r->at_end = rc == RAG_OK && mrc == MDB_NOTFOUND;
    r->resealed = n;
    return rc;
}

int rag_store_rekey_records(rag_store *st, long batch, long *resealed)
{
    const char *kill_env = getenv("RAGCORE_TEST_REKEY_KILL"); /* tests: die after N batches */
    long kill_after = kill_env ? atol(kill_env) : 0, batches = 0;
    *resealed = 0;
    if (!rag_store_rekey_pending(st))
        return RAG_OK;
    reseal_step *r = rag_calloc(1, sizeof *r);
    if (!r)
        return RAG_ENOMEM;
    int rc = RAG_OK;
    for (MDB_dbi dbi = 0; dbi < MAX_DBI && rc == RAG_OK; dbi++) {
        if (!st->enc_name[dbi])
            continue;
        memset(r, 0, sizeof *r);
        r->dbi = dbi;
        r->name = st->enc_name[dbi];
        r->batch = batch > 0 ? batch : 1000;
        while (rc == RAG_OK && !r->at_end) {
            if ((rc = rag_store_write(st, reseal_fn, r)) != RAG_OK)
                break;
            *resealed += r->resealed;
            memcpy(r->start, r->next, r->nlen);
            r->slen = r->nlen;
            if (r->resealed && kill_after > 0 && ++batches >= kill_after)
                raise(SIGKILL);
        }
    }
    free(r);
    return rc;
}

static int rotate_done_fn(rag_txn *t, void *user)
{
    (void)user;
    rag_crypt_rotate_done(t->st->crypt);
    return header_put(t);
}

int rag_store_rekey_finish(rag_store *st)
{
    return rag_store_rekey_pending(st) ? rag_store_write(st, rotate_done_fn, NULL) : RAG_OK;
}

/* ---- hash-key rotation ------------------------------------------------------------------ */

#define HASHROT_META "hash_rotation"

typedef struct hashkey_begin {
    int replaced;                            /* the key in memory is the new one */
    unsigned char old[RAG_CRYPT_HASH_KEY];   /* the replaced key, to put back on failure */
} hashkey_begin;

static int hashkey_begin_fn(rag_txn *t, void *user)
{
    hashkey_begin *b = user;
    MDB_val v;
    int rc = get(t, t->st->dbi[DB_META], HASHROT_META, strlen(HASHROT_META), &v);
    if (rc == RAG_OK)
        return RAG_OK; /* pending already: resume under the key the header holds */
    if (rc != RAG_ENOTFOUND)
        return rc;
    if (!b->replaced) { /* not again when rag_store_write runs this a second time */
        rag_crypt_hash_key_replace(t->st->crypt, NULL, b->old);
        b->replaced = 1;
    }
    if ((rc = header_put(t)) == RAG_OK)
        rc = put(t, t->st->dbi[DB_META], HASHROT_META, strlen(HASHROT_META), "1", 1,
                 "mark the hash-key rotation");
    return rc;
}

int rag_store_hashkey_begin(rag_store *st)
{
    if (!st->crypt)
        return st->encrypted ? no_key(st)
                             : rag_fail(RAG_EINVAL, "store '%s' is not encrypted: it has no "
                                        "hash key to rotate", st->dir);
    hashkey_begin *b = rag_calloc(1, sizeof *b);
    if (!b)
        return RAG_ENOMEM;
    int rc = rag_store_write(st, hashkey_begin_fn, b);
    if (rc != RAG_OK && b->replaced) /* not committed: the header still wraps the old key */
        rag_crypt_hash_key_replace(st->crypt, b->old, NULL);
    rag_crypt_wipe(b->old, sizeof b->old);
    free(b);
    return rc;
}

int rag_store_hashkey_pending_txn(rag_txn *t)
{
    MDB_val v;
    int rc = get(t, t->st->dbi[DB_META], HASHROT_META, strlen(HASHROT_META), &v);
    if (rc == RAG_ENOTFOUND) {
        rag_clear_error();
        return 0;
    }
    return rc == RAG_OK ? 1 : rc;
}

int rag_store_hashkey_pending(rag_store *st)
{
    rag_txn *t = NULL;
    int rc = rag_store_read(st, &t);
    if (rc != RAG_OK)
        return rc;
    rc = rag_store_hashkey_pending_txn(t);
    rag_txn_end(t);
    return rc;
}

static int hashkey_done_fn(rag_txn *t, void *user)
{
    (void)user;
    int rc = del(t, t->st->dbi[DB_META], HASHROT_META, strlen(HASHROT_META),
                 "clear the hash-key rotation mark");
    return rc == RAG_ENOTFOUND ? RAG_OK : rc;
}

int rag_store_hashkey_done(rag_store *st)
{
    return rag_store_write(st, hashkey_done_fn, NULL);
}
