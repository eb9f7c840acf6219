/* pagewalk.c - bounds-checked reader of LMDB's data file (meta pages, B+trees), no LMDB. */
#include "pagewalk.h"
#include "status.h"

#include <errno.h>
#include <stdarg.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* LMDB 0.9's on-disk layout on a 64-bit host (mdb.c: MDB_node, MDB_meta, MDB_db; the page
 * header is in pagewalk.h). */
#define NODESIZE 8            /* lo (2), hi (2), flags (2), ksize (2) */
#define P_SUBP 0x40
#define F_BIGDATA 0x01
#define F_SUBDATA 0x02
#define F_DUPDATA 0x04
#define MDB_MAGIC 0xBEEFC0DEu
#define MDB_DATA_VERSION 1u
#define DB_RECORD 48          /* MDB_db: pad 4, flags 2, depth 2, 5 x 8 */
#define META_LAST_PG 120      /* offsets inside MDB_meta */
#define META_TXNID 128
#define META_DBS 24
#define P_INVALID UINT64_MAX
#define MAX_DEPTH 32

/* One meta page: 1 when it is valid, with its fields in *m. */
static int meta_parse(const unsigned char *page, uint64_t pgno, rag_pagewalk_meta *m)
{
    const unsigned char *mm = page + RAG_PG_HDRSZ;
    if (rag_pg_u64(page) != pgno || !(rag_pg_u16(page + RAG_PG_FLAGS) & RAG_PG_META) || rag_pg_u32(mm) != MDB_MAGIC ||
        rag_pg_u32(mm + 4) != MDB_DATA_VERSION)
        return 0;
    uint32_t ps = rag_pg_u32(mm + META_DBS); /* the free table's md_pad holds the page size */
    if (ps < 512 || ps > 65536 || (ps & (ps - 1)) != 0)
        return 0;
    uint64_t last = rag_pg_u64(mm + META_LAST_PG);
    if (last < 1 || last > (UINT64_MAX / ps) - 1)
        return 0;
    m->page_size = ps;
    m->last_page = last;
    m->txnid = rag_pg_u64(mm + META_TXNID);
    m->map_size = rag_pg_u64(mm + 16);
    return 1;
}

/* Reads both meta pages of the open file `fd`. */
static int meta_read_fd(int fd, const char *path, rag_pagewalk_meta *m)
{
    struct stat sb;
    memset(m, 0, sizeof *m);
    if (fstat(fd, &sb) != 0)
        return rag_fail(RAG_EIO, "cannot stat '%s': %s", path, strerror(errno));
    m->file_size = (uint64_t)sb.st_size;
    unsigned char page[RAG_PG_HDRSZ + 136];
    rag_pagewalk_meta cand[2];
    int ok[2] = {0, 0};
    memset(cand, 0, sizeof cand);
    if (pread(fd, page, sizeof page, 0) == (ssize_t)sizeof page)
        ok[0] = meta_parse(page, 0, &cand[0]);
    /* The second meta page follows the first; take its offset from a valid first page,
     * else try the usual page sizes. */
    static const uint32_t sizes[] = {4096, 8192, 16384, 32768, 65536, 2048, 1024, 512};
    for (size_t i = 0; i < sizeof sizes / sizeof *sizes && !ok[1]; i++) {
        uint32_t ps = ok[0] ? cand[0].page_size : sizes[i];
        if (pread(fd, page, sizeof page, ps) == (ssize_t)sizeof page)
            ok[1] = meta_parse(page, 1, &cand[1]) && cand[1].page_size == ps;
        if (ok[0])
            break;
    }
    if (!ok[0] && !ok[1])
        return rag_fail(RAG_ECORRUPT,
                        "'%s' is not a readable LMDB file: neither of its two meta pages is valid "
                        "(%llu bytes)", path, (unsigned long long)m->file_size);
    int use = ok[0] && (!ok[1] || cand[0].txnid >= cand[1].txnid) ? 0 : 1;
    uint64_t fsz = m->file_size;
    *m = cand[use];
    m->file_size = fsz;
    m->meta_used = use;
    m->other_meta_ok = ok[!use];
    uint64_t need = (m->last_page + 1) * m->page_size;
    if (m->file_size < need)
        return rag_fail(RAG_ECORRUPT,
                        "'%s' is truncated: it has %llu bytes, its last committed transaction "
                        "uses %llu (%llu pages of %u)", path, (unsigned long long)m->file_size,
                        (unsigned long long)need, (unsigned long long)(m->last_page + 1),
                        m->page_size);
    return RAG_OK;
}

int rag_pagewalk_meta_read(const char *path, rag_pagewalk_meta *m)
{
    memset(m, 0, sizeof *m);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return rag_fail(errno == ENOENT ? RAG_ENOTFOUND : RAG_EIO, "cannot open '%s': %s", path,
                        strerror(errno));
    int rc = meta_read_fd(fd, path, m);
    close(fd);
    return rc;
}

/* ---- the walk ------------------------------------------------------------------------ */

/* The bytes of one entry of a page: [off, end). */
typedef struct extent {
    uint32_t off, end;
} extent;

typedef struct walker {
    int fd;
    uint32_t ps;
    uint64_t npages;          /* pages in use */
    uint64_t file_pages;      /* pages the file holds */
    unsigned char *seen;      /* one bit per page */
    unsigned char *bufs[MAX_DEPTH + 1];
    unsigned char *ovf;       /* a large value being assembled */
    size_t ovf_cap;
    extent *ext;              /* the entries of the page being checked (ps / 2 of them) */
    const char *table;
    uint64_t path[MAX_DEPTH + 1];
    int integer_keys;         /* the free table: keys are native integers, not ordered bytes */
    rag_pagewalk_entry_fn entry;
    rag_pagewalk_damage_fn damage;
    void *user;
    rag_pagewalk_stats st;
    int stop;                 /* the entry callback's non-zero value */
} walker;

static void __attribute__((format(printf, 3, 4)))
damaged(walker *w, uint64_t pgno, const char *fmt, ...)
{
    char reason[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(reason, sizeof reason, fmt, ap);
    va_end(ap);
    w->st.damaged++;
    if (w->damage)
        w->damage(w->user, w->table, pgno, reason);
}

/* Marks page p seen; 0 when it was seen before (a cycle or a shared page: damage). */
static int mark_seen(walker *w, uint64_t p)
{
    if (w->seen[p >> 3] & (1u << (p & 7)))
        return 0;
    w->seen[p >> 3] |= (unsigned char)(1u << (p & 7));
    return 1;
}

/* Reads page `p` into buf after checking that it can exist; 0 when it cannot be read
 * (reported). */
static int read_page(walker *w, uint64_t p, unsigned char *buf)
{
    if (p < 2 || p >= w->npages) {
        damaged(w, p, "page number %llu is outside the pages in use (2..%llu)",
                (unsigned long long)p, (unsigned long long)w->npages - 1);
        return 0;
    }
    if (p >= w->file_pages) {
        damaged(w, p, "page %llu lies beyond the end of the file (truncated)",
                (unsigned long long)p);
        return 0;
    }
    if (!mark_seen(w, p)) {
        damaged(w, p, "page %llu is reached twice (a damaged page points to it)",
                (unsigned long long)p);
        return 0;
    }
    if (pread(w->fd, buf, w->ps, (off_t)(p * w->ps)) != (ssize_t)w->ps) {
        damaged(w, p, "page %llu cannot be read: %s", (unsigned long long)p, strerror(errno));
        return 0;
    }
    if (rag_pg_u64(buf) != p) {
        damaged(w, p, "page %llu: its header names page %llu", (unsigned long long)p,
                (unsigned long long)rag_pg_u64(buf));
        return 0;
    }
    return 1;
}

/* LMDB's default key order: bytes, then length. */
static int key_cmp(const void *a, size_t al, const void *b, size_t bl)
{
    int c = memcmp(a, b, al < bl ? al : bl);
    return c ? c : (al > bl) - (al < bl);
}

static int extent_cmp(const void *a, const void *b)
{
    const extent *x = a, *y = b;
    return (x->off > y->off) - (x->off < y->off);
}

/* 1 when no two of the n entries' bytes overlap (sorts ext). LMDB sizes its moves and
 * merges by the entries' sizes: entries grown into each other by damage would make it
 * write past a page. */
static int extents_apart(extent *ext, unsigned n)
{
    qsort(ext, n, sizeof *ext, extent_cmp);
    for (unsigned i = 1; i < n; i++)
        if (ext[i - 1].end > ext[i].off)
            return 0;
    return 1;
}

/* Checks a branch or leaf page's header and node table; 1 when sound (else reported). */
static int page_sound(walker *w, uint64_t p, const unsigned char *pg, int leaf)
{
    uint16_t flags = rag_pg_u16(pg + RAG_PG_FLAGS), lower = rag_pg_u16(pg + RAG_PG_LOWER), upper = rag_pg_u16(pg + RAG_PG_UPPER);
    uint16_t want = leaf ? RAG_PG_LEAF : RAG_PG_BRANCH;
    if ((flags & (RAG_PG_BRANCH | RAG_PG_LEAF | RAG_PG_OVERFLOW | RAG_PG_META | RAG_PG_LEAF2 | P_SUBP)) != want) {
        damaged(w, p, "page %llu: flags 0x%x, expected a %s page", (unsigned long long)p, flags,
                leaf ? "leaf" : "branch");
        return 0;
    }
    if (lower < RAG_PG_HDRSZ || lower > upper || upper > w->ps || (lower - RAG_PG_HDRSZ) % 2) {
        damaged(w, p, "page %llu: free-space bounds %u..%u are impossible",
                (unsigned long long)p, lower, upper);
        return 0;
    }
    unsigned n = (lower - RAG_PG_HDRSZ) / 2;
    if (n == 0) {
        damaged(w, p, "page %llu: %s page with %u entries", (unsigned long long)p,
                leaf ? "leaf" : "branch", n);
        return 0;
    }
    const unsigned char *pk = NULL;
    size_t pkl = 0;
    extent *ext = w->ext;
    for (unsigned i = 0; i < n; i++) {
        unsigned off = rag_pg_u16(pg + RAG_PG_HDRSZ + 2 * i);
        if (off < upper || off + NODESIZE > w->ps) {
            damaged(w, p, "page %llu: entry %u lies at offset %u, outside the node area",
                    (unsigned long long)p, i, off);
            return 0;
        }
        /* LMDB places entries at even offsets and moves them by their size rounded up to
         * even: one at an odd offset reaches a byte past its own, past the page when last. */
        if (off & 1) {
            damaged(w, p, "page %llu: entry %u lies at odd offset %u", (unsigned long long)p, i,
                    off);
            return 0;
        }
        const unsigned char *nd = pg + off;
        unsigned nflags = rag_pg_u16(nd + 4), ksize = rag_pg_u16(nd + 6);
        uint64_t dsize = (uint64_t)rag_pg_u16(nd) | (uint64_t)rag_pg_u16(nd + 2) << 16;
        uint64_t end = (uint64_t)off + NODESIZE + ksize;
        if (leaf) {
            if (nflags & ~(unsigned)(F_BIGDATA | F_SUBDATA)) {
                damaged(w, p, "page %llu: entry %u has flags 0x%x", (unsigned long long)p, i,
                        nflags);
                return 0;
            }
            end += nflags & F_BIGDATA ? 8 : dsize;
        }
        if (end > w->ps) {
            damaged(w, p, "page %llu: entry %u (key %u bytes) runs past the page end",
                    (unsigned long long)p, i, ksize);
            return 0;
        }
        /* Keys ascend (a branch page's first key is empty: everything before the second). */
        if ((leaf || i > 0) && pk && !w->integer_keys && key_cmp(pk, pkl, nd + NODESIZE, ksize) >= 0) {
            damaged(w, p, "page %llu: keys %u and %u are out of order", (unsigned long long)p,
                    i - 1, i);
            return 0;
        }
        if (leaf || i > 0) {
            pk = nd + NODESIZE;
            pkl = ksize;
        }
        ext[i].off = off;
        ext[i].end = (uint32_t)end;
    }
    if (!extents_apart(ext, n)) {
        damaged(w, p, "page %llu: entries overlap (a size grown by damage)",
                (unsigned long long)p);
        return 0;
    }
    return 1;
}

/* Assembles a large value from its overflow pages into w->ovf; 0 when they are damaged. */
static int read_overflow(walker *w, uint64_t leaf, uint64_t first, uint64_t size,
                         uint64_t *npages)
{
    uint64_t need = (RAG_PG_HDRSZ - 1 + size) / w->ps + 1;
    unsigned char hdr[RAG_PG_HDRSZ];
    if (first < 2 || first >= w->npages || need > w->npages - first) {
        damaged(w, leaf, "page %llu: a value of %llu bytes points to overflow pages %llu..%llu, "
                "outside the pages in use", (unsigned long long)leaf, (unsigned long long)size,
                (unsigned long long)first, (unsigned long long)(first + need - 1));
        return 0;
    }
    if (first + need > w->file_pages) {
        damaged(w, first, "overflow pages %llu..%llu lie beyond the end of the file (truncated)",
                (unsigned long long)first, (unsigned long long)(first + need - 1));
        return 0;
    }
    if (pread(w->fd, hdr, sizeof hdr, (off_t)(first * w->ps)) != (ssize_t)sizeof hdr ||
        rag_pg_u64(hdr) != first || !(rag_pg_u16(hdr + RAG_PG_FLAGS) & RAG_PG_OVERFLOW) || rag_pg_u32(hdr + RAG_PG_LOWER) < need) {
        damaged(w, first, "overflow page %llu (a value of %llu bytes on page %llu) has a "
                "damaged header", (unsigned long long)first, (unsigned long long)size,
                (unsigned long long)leaf);
        return 0;
    }
    for (uint64_t q = first; q < first + need; q++) {
        if (!mark_seen(w, q)) {
            damaged(w, q, "overflow page %llu is reached twice (a damaged page points to it)",
                    (unsigned long long)q);
            return 0;
        }
    }
    if (size + 1 > w->ovf_cap) {
        unsigned char *b = realloc(w->ovf, size + 1);
        if (!b)
            return -1;
        w->ovf = b;
        w->ovf_cap = size + 1;
    }
    if (pread(w->fd, w->ovf, size, (off_t)(first * w->ps + RAG_PG_HDRSZ)) != (ssize_t)size) {
        damaged(w, first, "overflow pages from %llu cannot be read", (unsigned long long)first);
        return 0;
    }
    w->st.reached += need;
    *npages = need;
    return 1;
}

/* A named table found in the main table. */
typedef struct named {
    char name[64];
    uint64_t root;
    uint16_t flags;
} named;

typedef struct walk_ctx {
    named *tables;
    size_t n, cap;
    int main;                 /* walking the main table: collect names */
    int quiet;                /* the free table: report damage only */
} walk_ctx;

/* The key range a page's keys must lie in: [lo, hi), from the separator keys of the branch
 * entries that lead to it (NULL: unbounded). */
typedef struct key_range {
    const unsigned char *lo, *hi;
    size_t lol, hil;
} key_range;

/* Whether every key of a sound page lies in its range (the page's keys ascend already). */
static int in_range(const walker *w, const unsigned char *pg, int leaf, const key_range *kr)
{
    unsigned n = (rag_pg_u16(pg + RAG_PG_LOWER) - RAG_PG_HDRSZ) / 2;
    if (w->integer_keys || (!leaf && n < 2))
        return 1;
    const unsigned char *first = pg + rag_pg_u16(pg + RAG_PG_HDRSZ + 2 * (leaf ? 0 : 1)) + NODESIZE;
    const unsigned char *last = pg + rag_pg_u16(pg + RAG_PG_HDRSZ + 2 * (n - 1)) + NODESIZE;
    if (kr->lo && key_cmp(first, rag_pg_u16(first - 2), kr->lo, kr->lol) < 0)
        return 0;
    return !kr->hi || key_cmp(last, rag_pg_u16(last - 2), kr->hi, kr->hil) < 0;
}

/* Emits a sound leaf page's entries; -1 on allocation failure. */
static int leaf_entries(walker *w, walk_ctx *x, uint64_t p, const unsigned char *pg, int depth)
{
    unsigned n = (rag_pg_u16(pg + RAG_PG_LOWER) - RAG_PG_HDRSZ) / 2;
    w->st.reached++;
    for (unsigned i = 0; i < n && !w->stop; i++) {
        const unsigned char *nd = pg + rag_pg_u16(pg + RAG_PG_HDRSZ + 2 * i);
        unsigned nflags = rag_pg_u16(nd + 4), ksize = rag_pg_u16(nd + 6);
        uint64_t dsize = (uint64_t)rag_pg_u16(nd) | (uint64_t)rag_pg_u16(nd + 2) << 16;
        rag_pagewalk_entry e;
        memset(&e, 0, sizeof e);
        e.table = w->table;
        e.key = nd + NODESIZE;
        e.klen = ksize;
        e.leaf = p;
        e.path = w->path;
        e.depth = depth;
        if (nflags & F_SUBDATA) {
            if (!x->main || dsize != DB_RECORD || ksize == 0 || ksize >= sizeof x->tables->name) {
                damaged(w, p, "page %llu: entry %u is a table record where none can be",
                        (unsigned long long)p, i);
                continue;
            }
            if (x->n == x->cap) {
                size_t cap = x->cap ? 2 * x->cap : 32;
                named *t = realloc(x->tables, cap * sizeof *t);
                if (!t)
                    return -1;
                x->tables = t;
                x->cap = cap;
            }
            named *t = &x->tables[x->n++];
            memcpy(t->name, e.key, ksize);
            t->name[ksize] = '\0';
            const unsigned char *db = nd + NODESIZE + ksize;
            t->flags = rag_pg_u16(db + 4);
            t->root = rag_pg_u64(db + 40);
            continue;
        }
        if (nflags & F_BIGDATA) {
            int r = read_overflow(w, p, rag_pg_u64(nd + NODESIZE + ksize), dsize, &e.ovf_pages);
            if (r < 0)
                return -1;
            if (r == 0)
                continue;
            e.ovf_first = rag_pg_u64(nd + NODESIZE + ksize);
            e.val = w->ovf;
        } else {
            e.val = nd + NODESIZE + ksize;
        }
        e.vlen = dsize;
        w->st.entries++;
        if (w->entry && !x->quiet && !x->main)
            w->stop = w->entry(w->user, &e);
    }
    return 0;
}

/* Walks the subtree at page p (depth = number of branch pages above it), whose keys must
 * lie in `kr`. */
static int walk_page(walker *w, walk_ctx *x, uint64_t p, int depth, const key_range *kr)
{
    if (depth > MAX_DEPTH) {
        damaged(w, p, "the tree is deeper than %d pages at page %llu", MAX_DEPTH,
                (unsigned long long)p);
        return 0;
    }
    if (!w->bufs[depth] && !(w->bufs[depth] = malloc(w->ps)))
        return -1;
    unsigned char *pg = w->bufs[depth];
    if (!read_page(w, p, pg))
        return 0;
    uint16_t flags = rag_pg_u16(pg + RAG_PG_FLAGS);
    int leaf = (flags & RAG_PG_LEAF) != 0;
    if (!page_sound(w, p, pg, leaf))
        return 0;
    if (!in_range(w, pg, leaf, kr)) {
        damaged(w, p, "page %llu: its keys lie outside the range its parent page gives it",
                (unsigned long long)p);
        return 0;
    }
    if (leaf)
        return leaf_entries(w, x, p, pg, depth);
    w->st.reached++;
    w->path[depth] = p;
    unsigned n = (rag_pg_u16(pg + RAG_PG_LOWER) - RAG_PG_HDRSZ) / 2;
    for (unsigned i = 0; i < n && !w->stop; i++) {
        const unsigned char *nd = pg + rag_pg_u16(pg + RAG_PG_HDRSZ + 2 * i);
        uint64_t child = (uint64_t)rag_pg_u16(nd) | (uint64_t)rag_pg_u16(nd + 2) << 16 |
                         (uint64_t)rag_pg_u16(nd + 4) << 32;
        key_range sub = *kr;
        if (i > 0) {
            sub.lo = nd + NODESIZE;
            sub.lol = rag_pg_u16(nd + 6);
        }
        if (i + 1 < n) {
            const unsigned char *next = pg + rag_pg_u16(pg + RAG_PG_HDRSZ + 2 * (i + 1));
            sub.hi = next + NODESIZE;
            sub.hil = rag_pg_u16(next + 6);
        }
        if (walk_page(w, x, child, depth + 1, &sub) < 0)
            return -1;
    }
    return 0;
}

static int walk_table(walker *w, walk_ctx *x, const char *name, uint64_t root)
{
    key_range all = {NULL, NULL, 0, 0};
    w->table = name;
    if (root == P_INVALID)
        return 0;
    return walk_page(w, x, root, 0, &all);
}

int rag_pagewalk(const char *path, const char *only, int allow_truncated,
                 rag_pagewalk_entry_fn entry, rag_pagewalk_damage_fn damage, void *user,
                 rag_pagewalk_stats *stats)
{
    walker w;
    walk_ctx x;
    rag_pagewalk_meta m;
    memset(&w, 0, sizeof w);
    memset(&x, 0, sizeof x);
    if (stats)
        memset(stats, 0, sizeof *stats);
    w.fd = open(path, O_RDONLY | O_CLOEXEC);
    if (w.fd < 0)
        return rag_fail(errno == ENOENT ? RAG_ENOTFOUND : RAG_EIO, "cannot open '%s': %s", path,
                        strerror(errno));
    int rc = meta_read_fd(w.fd, path, &m);
    if (rc != RAG_OK && !(allow_truncated && m.page_size)) {
        close(w.fd);
        return rc;
    }
    rag_clear_error();
    rc = RAG_OK;
    w.ps = m.page_size;
    w.npages = m.last_page + 1;
    w.file_pages = m.file_size / m.page_size;
    w.entry = entry;
    w.damage = damage;
    w.user = user;
    w.st.pages = w.npages;
    w.table = "";
    if (!(w.seen = calloc(w.npages / 8 + 1, 1)) || !(w.ext = malloc(w.ps / 2 * sizeof *w.ext))) {
        rc = rag_fail(RAG_ENOMEM, "out of memory walking '%s'", path);
        goto cleanup;
    }
    /* The meta page in use names the free table's and the main table's roots. */
    unsigned char page[RAG_PG_HDRSZ + 136];
    if (pread(w.fd, page, sizeof page, (off_t)m.meta_used * m.page_size) != (ssize_t)sizeof page) {
        rc = rag_fail(RAG_EIO, "cannot read '%s': %s", path, strerror(errno));
        goto cleanup;
    }
    w.seen[0] |= 3;
    w.st.reached = 2;
    if (!m.other_meta_ok)
        damaged(&w, (uint64_t)!m.meta_used, "meta page %d is damaged (the other one is used)",
                !m.meta_used);
    uint64_t free_root = rag_pg_u64(page + RAG_PG_HDRSZ + META_DBS + 40);
    uint64_t main_root = rag_pg_u64(page + RAG_PG_HDRSZ + META_DBS + DB_RECORD + 40);
    int r = 0;
    if (!only) {
        x.quiet = w.integer_keys = 1;
        r = walk_table(&w, &x, "(free pages)", free_root);
        x.quiet = w.integer_keys = 0;
    }
    x.main = 1;
    if (r == 0)
        r = walk_table(&w, &x, "", main_root);
    x.main = 0;
    w.st.tables = x.n;
    for (size_t i = 0; r == 0 && i < x.n && !w.stop; i++) {
        if (only && strcmp(only, x.tables[i].name) != 0)
            continue;
        if (x.tables[i].flags != 0) {
            w.table = x.tables[i].name;
            damaged(&w, x.tables[i].root, "table '%s' is recorded with flags 0x%x that ragcore "
                    "never sets", x.tables[i].name, x.tables[i].flags);
            continue;
        }
        r = walk_table(&w, &x, x.tables[i].name, x.tables[i].root);
    }
    if (r < 0)
        rc = rag_fail(RAG_ENOMEM, "out of memory walking '%s'", path);
    else if (w.stop)
        rc = w.stop;
cleanup:
    if (stats)
        *stats = w.st;
    for (int i = 0; i <= MAX_DEPTH; i++)
        free(w.bufs[i]);
    free(w.ovf);
    free(w.ext);
    free(w.seen);
    free(x.tables);
    close(w.fd);
    return rc;
}
