/* pagewalk.h - a bounds-checked reader of LMDB's data file that needs no LMDB.
 *
 * LMDB trusts its file: a truncated data.mdb faults (SIGBUS) when a page past the end is
 * touched, and a damaged page trips its assertions (abort) or sends it through garbage
 * pointers (SIGSEGV). This reader parses the same on-disk format (LMDB 0.9, 64-bit: two
 * meta pages, B+trees of branch, leaf and overflow pages) with pread and checks every
 * page number, flag, offset and size before using it, so a damaged file yields a list of
 * damaged pages, never a fault. The store uses it to refuse a truncated file before
 * mapping it; the check uses it to find page damage before LMDB reads the pages; the
 * salvage copies what it can reach. It reads the newest committed version of the file
 * (the valid meta page with the larger transaction id), which is what LMDB would read. */
#ifndef RAG_PAGEWALK_H
#define RAG_PAGEWALK_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

/* LMDB 0.9's page header on a 64-bit host (mdb.c: MDB_page), for every reader of raw pages
 * (this reader and the store's scrub of unused bytes): page number (8), pad (2), flags (2),
 * then the bounds of the free space, lower and upper (2 + 2), or an overflow page's page
 * count (4). Numbers are in the host's byte order. */
#define RAG_PG_HDRSZ 16
#define RAG_PG_FLAGS 10
#define RAG_PG_LOWER 12
#define RAG_PG_UPPER 14
#define RAG_PG_BRANCH 0x01
#define RAG_PG_LEAF 0x02
#define RAG_PG_OVERFLOW 0x04
#define RAG_PG_META 0x08
#define RAG_PG_LEAF2 0x20

static inline uint16_t rag_pg_u16(const unsigned char *p)
{
    uint16_t v;
    memcpy(&v, p, 2);
    return v;
}

static inline uint32_t rag_pg_u32(const unsigned char *p)
{
    uint32_t v;
    memcpy(&v, p, 4);
    return v;
}

static inline uint64_t rag_pg_u64(const unsigned char *p)
{
    uint64_t v;
    memcpy(&v, p, 8);
    return v;
}

/* What the meta pages say about data.mdb. */
typedef struct rag_pagewalk_meta {
    uint32_t page_size;
    uint64_t last_page;       /* the last page in use: the file needs (last_page + 1) pages */
    uint64_t txnid;           /* the transaction that wrote this meta page */
    uint64_t map_size;        /* the map size recorded by the last writer */
    uint64_t file_size;       /* bytes in the file now */
    int meta_used;            /* 0 or 1: the meta page in use */
    int other_meta_ok;        /* the other meta page is valid too */
} rag_pagewalk_meta;

/* Reads the meta pages of LMDB file `path`. Errors: RAG_ENOTFOUND (no such file), RAG_EIO,
 * RAG_ECORRUPT naming the file and what is wrong: neither meta page is valid, or the file
 * is shorter than the pages the meta page says are in use ("'x/data.mdb' is truncated: it
 * has 4194304 bytes, its last committed transaction uses 9793536 (2391 pages of 4096)").
 * *m is filled as far as it could be read. */
int rag_pagewalk_meta_read(const char *path, rag_pagewalk_meta *m);

/* One entry of a table, as the walk finds it. Pointers are valid during the callback. */
typedef struct rag_pagewalk_entry {
    const char *table;        /* the table's name in LMDB's main table ("docs", "kv:keys") */
    const void *key;
    size_t klen;
    const void *val;
    size_t vlen;
    uint64_t leaf;            /* the leaf page that holds it */
    uint64_t ovf_first;       /* first overflow page of a large value, 0 when inline */
    uint64_t ovf_pages;
    const uint64_t *path;     /* the branch pages from the table's root to the leaf */
    int depth;
} rag_pagewalk_entry;

/* Called for each entry in key order; a non-zero return stops the walk and is returned. */
typedef int (*rag_pagewalk_entry_fn)(void *user, const rag_pagewalk_entry *e);
/* Called for each damaged page found; `table` is "" for the main table and meta pages. */
typedef void (*rag_pagewalk_damage_fn)(void *user, const char *table, uint64_t page,
                                       const char *reason);

typedef struct rag_pagewalk_stats {
    uint64_t pages;           /* pages in use (last_page + 1) */
    uint64_t reached;         /* pages the walk reached and found sound */
    uint64_t damaged;         /* damaged pages reported */
    uint64_t entries;         /* entries visited */
    uint64_t tables;          /* named tables found */
} rag_pagewalk_stats;

/* Walks the named tables of LMDB file `path` (all when `only` is NULL, else only the one
 * named `only`), calling `entry` (may be NULL) for every entry it can reach and `damage`
 * (may be NULL) for every page it cannot trust: a page number beyond the file, a page
 * whose header does not name itself, wrong flags, offsets or sizes outside the page, an
 * entry at an odd offset, entries that overlap, keys out of order, a page reached twice.
 * The subtree under a damaged branch page is lost to the walk; the rest of the table is
 * still walked. Never faults on any file content.
 * Returns RAG_OK (damage is reported through `damage`, not as an error), the entry
 * callback's non-zero value, or an error of rag_pagewalk_meta_read (a truncated file is
 * walked as far as its pages go when `allow_truncated`). stats may be NULL. */
int rag_pagewalk(const char *path, const char *only, int allow_truncated,
                 rag_pagewalk_entry_fn entry, rag_pagewalk_damage_fn damage, void *user,
                 rag_pagewalk_stats *stats);

#endif
