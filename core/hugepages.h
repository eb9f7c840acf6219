/* hugepages.h - backs the large anonymous memory a step has just allocated (a vector
 * index read or grown) with transparent huge pages.
 *
 * HNSW search reads a few hundred vectors at random addresses per query; on 4 KiB pages
 * nearly every one costs a TLB miss and a page walk (a two-level walk under a hypervisor).
 * Linux's default THP mode, "madvise", gives huge pages only to memory that asks for them,
 * and FAISS's C API does not hand out its buffers, so the step takes a mark of the
 * process's anonymous mappings before it allocates and asks afterwards for every mapping
 * that is new or grown, at least two fifths resident and at least `min_bytes` long.
 *
 * Advice only: on kernels without THP, in mode "never", or where /proc is not mounted,
 * nothing happens and nothing fails. */
#ifndef RAG_HUGEPAGES_H
#define RAG_HUGEPAGES_H

#include <stddef.h>

typedef struct rag_hugepage_mark rag_hugepage_mark;

/* Records the process's current anonymous private mappings. Returns NULL when they
 * cannot be read (no /proc, out of memory) or RAGCORE_HUGEPAGES=0 is set in the
 * environment; rag_hugepage_advise_since(NULL, ...) is then a no-op. */
rag_hugepage_mark *rag_hugepage_mark_take(void);

/* Advises MADV_HUGEPAGE on each anonymous private read-write mapping (malloc's brk heap
 * included) of at least `min_bytes` that is at least two fifths resident (a vector just
 * doubled by reallocation is half; a thread's stack or a sanitizer's shadow far less) and
 * is new since `mark` (no marked mapping starts where it starts) or has grown by
 * `min_bytes` or more since; then asks the kernel to collapse it into huge pages at once
 * (MADV_COLLAPSE, Linux >= 6.1; older kernels leave it to khugepaged). Frees `mark`.
 * Returns the bytes advised (0 when nothing qualified or the kernel refused). Can't fail. */
size_t rag_hugepage_advise_since(rag_hugepage_mark *mark, size_t min_bytes);

/* Whether rag_hugepage_advise_since(mark, min_bytes) would find a mapping new or grown
 * enough, judged on /proc/self/maps alone (tens of microseconds; the advice itself reads
 * /proc/self/smaps, milliseconds). 0 for a NULL mark. Can't fail. */
int rag_hugepage_grown(const rag_hugepage_mark *mark, size_t min_bytes);

/* Frees a mark without advising anything. NULL is a no-op. */
void rag_hugepage_mark_free(rag_hugepage_mark *mark);

#endif
