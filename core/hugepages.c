/* hugepages.c - transparent huge pages for the anonymous memory a step allocated. */
#include "hugepages.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#ifndef MADV_COLLAPSE
#define MADV_COLLAPSE 25 /* Linux 6.1 */
#endif

typedef struct span {
    uintptr_t start, end;
    size_t rss; /* resident bytes; read from smaps only after the step */
} span;

struct rag_hugepage_mark {
    span *v;
    size_t n, cap;
};

/* Reads the anonymous private read-write mappings of /proc/self/maps (with_rss: of
 * /proc/self/smaps, with their resident bytes) into m. Returns 0, or -1 when the file
 * cannot be read or memory runs out. */
static int read_anon_spans(struct rag_hugepage_mark *m, int with_rss)
{
    FILE *fp = fopen(with_rss ? "/proc/self/smaps" : "/proc/self/maps", "re");
    char line[512];
    int rc = 0, last_is_anon = 0;
    if (!fp)
        return -1;
    while (fgets(line, sizeof line, fp)) {
        unsigned long start, end, inode, kb;
        char perms[8];
        int name_at = 0;
        if (with_rss && last_is_anon && sscanf(line, "Rss: %lu kB", &kb) == 1) {
            m->v[m->n - 1].rss = (size_t)kb * 1024;
            continue;
        }
        if (sscanf(line, "%lx-%lx %7s %*s %*s %lu %n", &start, &end, perms, &inode,
                   &name_at) < 4)
            continue; /* a field line of smaps */
        last_is_anon = 0;
        /* Anonymous: no inode, and no name or malloc's brk heap (not [stack], [vvar], ...). */
        if (inode != 0 || strcmp(perms, "rw-p") != 0 ||
            (line[name_at] != '\0' && strcmp(line + name_at, "[heap]\n") != 0))
            continue;
        if (m->n == m->cap) {
            size_t cap = m->cap ? m->cap * 2 : 64;
            span *v = realloc(m->v, cap * sizeof *v);
            if (!v) {
                rc = -1;
                break;
            }
            m->v = v;
            m->cap = cap;
        }
        m->v[m->n++] = (span){start, end, 0};
        last_is_anon = 1;
    }
    fclose(fp);
    return rc;
}

rag_hugepage_mark *rag_hugepage_mark_take(void)
{
    const char *env = getenv("RAGCORE_HUGEPAGES");
    if (env && strcmp(env, "0") == 0)
        return NULL;
    rag_hugepage_mark *m = calloc(1, sizeof *m);
    if (m && read_anon_spans(m, 0) != 0) {
        free(m->v);
        free(m);
        m = NULL;
    }
    return m;
}

/* Whether span s is new since mark m (no marked span starts where it starts) or has grown
 * by at least min_bytes since. A heap growing by small steps is thus not "new" on every
 * step, and a new mapping that merged into a neighbour shows as that neighbour grown. */
static int span_new(const rag_hugepage_mark *m, span s, size_t min_bytes)
{
    for (size_t i = 0; i < m->n; i++)
        if (m->v[i].start == s.start)
            return s.end > m->v[i].end && s.end - m->v[i].end >= min_bytes;
    return 1;
}

int rag_hugepage_grown(const rag_hugepage_mark *mark, size_t min_bytes)
{
    rag_hugepage_mark now = {0};
    int grown = 0;
    if (mark && read_anon_spans(&now, 0) == 0)
        for (size_t i = 0; i < now.n && !grown; i++)
            grown = now.v[i].end - now.v[i].start >= min_bytes &&
                    span_new(mark, now.v[i], min_bytes);
    free(now.v);
    return grown;
}

size_t rag_hugepage_advise_since(rag_hugepage_mark *mark, size_t min_bytes)
{
    rag_hugepage_mark now = {0};
    size_t advised = 0;
    if (!mark || read_anon_spans(&now, 1) != 0)
        goto cleanup;
    for (size_t i = 0; i < now.n; i++) {
        span s = now.v[i];
        size_t len = s.end - s.start;
        /* Largely resident only: a huge page is filled whole, so a sparse mapping (a
         * thread's stack, a sanitizer's shadow, reserved address space) would grow its
         * memory up to 512-fold. */
        if (len < min_bytes || s.rss < len / 5 * 2 || !span_new(mark, s, min_bytes))
            continue;
        if (madvise((void *)s.start, len, MADV_HUGEPAGE) != 0)
            continue;
        advised += len;
        /* Best effort: EINVAL before 6.1, EAGAIN/ENOMEM when no huge page is free. */
        (void)madvise((void *)s.start, len, MADV_COLLAPSE);
    }
cleanup:
    free(now.v);
    rag_hugepage_mark_free(mark);
    return advised;
}

void rag_hugepage_mark_free(rag_hugepage_mark *mark)
{
    if (mark) {
        free(mark->v);
        free(mark);
    }
}
