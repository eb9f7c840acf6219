/* test_hugepages.c - huge-page advice: only new, largely resident anonymous mappings of the
 * asked size are advised, the kernel records the advice (VmFlags "hg"), the cheap check
 * sees what the advice would, and a missing mark is a no-op. */
#include "test.h"

#include "hugepages.h"

#include <stdint.h>
#include <sys/mman.h>
#include <unistd.h>

#define MIB (1u << 20)

/* 1 when the kernel has transparent huge pages (madvise then succeeds in any mode). */
static int thp_kernel(void)
{
    return access("/sys/kernel/mm/transparent_hugepage/enabled", F_OK) == 0;
}

/* 1 when the mapping holding p carries the huge-page advice, 0 when not, -1 when not found. */
static int advised(const void *p)
{
    FILE *fp = fopen("/proc/self/smaps", "r");
    char line[512];
    int in = 0, found = -1;
    if (!fp)
        return -1;
    while (fgets(line, sizeof line, fp)) {
        unsigned long s, e;
        /* a mapping's first line; field lines ("AnonHugePages: ...") stop before the '-' */
        if (sscanf(line, "%lx-%lx ", &s, &e) == 2) {
            in = (uintptr_t)p >= s && (uintptr_t)p < e;
            continue;
        }
        if (in && strncmp(line, "VmFlags:", 8) == 0) {
            found = strstr(line, " hg") != NULL;
            break;
        }
    }
    fclose(fp);
    return found;
}

/* A read-write anonymous mapping of len bytes between two inaccessible pages, which keep
 * it from merging with its neighbours into one larger mapping. Not touched. */
static unsigned char *map_isolated(size_t len)
{
    const size_t pg = (size_t)sysconf(_SC_PAGESIZE);
    unsigned char *area = mmap(NULL, len + 2 * pg, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS,
                               -1, 0);
    if (area == MAP_FAILED)
        return NULL;
    if (mprotect(area + pg, len, PROT_READ | PROT_WRITE) != 0) {
        munmap(area, len + 2 * pg);
        return NULL;
    }
    return area + pg;
}

static void unmap_isolated(unsigned char *p, size_t len)
{
    const size_t pg = (size_t)sysconf(_SC_PAGESIZE);
    if (p)
        munmap(p - pg, len + 2 * pg);
}

static void test_new_mapping_advised(void)
{
    rag_hugepage_mark *m = rag_hugepage_mark_take();
    ASSERT_TRUE(m != NULL);
    unsigned char *small = map_isolated(MIB), *big = map_isolated(16 * MIB);
    ASSERT_TRUE(small && big);
    if (!small || !big)
        return;
    memset(small, 1, MIB);
    memset(big, 1, 16 * MIB);
    size_t n = rag_hugepage_advise_since(m, 8 * MIB);
    if (thp_kernel()) {
        ASSERT_TRUE(n >= 16 * MIB);
        ASSERT_EQ_INT(advised(big), 1);
        ASSERT_EQ_INT(advised(small), 0);
    } else {
        ASSERT_EQ_INT(n, 0);
    }
    /* advice never changes the bytes */
    ASSERT_EQ_INT(big[0], 1);
    ASSERT_EQ_INT(big[16 * MIB - 1], 1);
    ASSERT_EQ_INT(small[MIB / 2], 1);
    unmap_isolated(big, 16 * MIB);
    unmap_isolated(small, MIB);
}

static void test_known_mapping_skipped(void)
{
    unsigned char *big = map_isolated(12 * MIB);
    ASSERT_TRUE(big != NULL);
    if (!big)
        return;
    memset(big, 1, 12 * MIB);
    rag_hugepage_mark *m = rag_hugepage_mark_take();
    ASSERT_TRUE(m != NULL);
    /* nothing allocated since the mark: the existing mapping is left alone */
    ASSERT_EQ_INT(rag_hugepage_advise_since(m, 8 * MIB), 0);
    if (thp_kernel())
        ASSERT_EQ_INT(advised(big), 0);
    unmap_isolated(big, 12 * MIB);
}

static void test_size_floor_and_null_mark(void)
{
    rag_hugepage_mark *m = rag_hugepage_mark_take();
    unsigned char *big = map_isolated(10 * MIB);
    ASSERT_TRUE(big != NULL);
    if (big)
        memset(big, 1, 10 * MIB);
    /* below the floor: not advised (1 GiB is larger than anything this test maps) */
    ASSERT_EQ_INT(rag_hugepage_advise_since(m, 1024u * MIB), 0);
    if (thp_kernel())
        ASSERT_EQ_INT(advised(big), 0);
    ASSERT_EQ_INT(rag_hugepage_advise_since(NULL, 0), 0);
    unmap_isolated(big, 10 * MIB);
}

static void test_sparse_mapping_skipped(void)
{
    rag_hugepage_mark *m = rag_hugepage_mark_take();
    const size_t len = 16 * MIB;
    unsigned char *p = map_isolated(len);
    ASSERT_TRUE(p != NULL);
    if (!p)
        return;
    memset(p, 1, len / 4); /* a quarter resident: a collapse would quadruple it */
    ASSERT_EQ_INT(rag_hugepage_advise_since(m, 8 * MIB), 0);
    if (thp_kernel())
        ASSERT_EQ_INT(advised(p), 0);
    unmap_isolated(p, len);
}

static void test_grown(void)
{
    rag_hugepage_mark *m = rag_hugepage_mark_take();
    ASSERT_TRUE(m != NULL);
    ASSERT_EQ_INT(rag_hugepage_grown(m, 8 * MIB), 0); /* nothing since the mark */
    unsigned char *small = map_isolated(MIB);
    ASSERT_EQ_INT(rag_hugepage_grown(m, 8 * MIB), 0); /* new, but under the floor */
    unsigned char *big = map_isolated(9 * MIB);
    ASSERT_EQ_INT(rag_hugepage_grown(m, 8 * MIB), 1);
    ASSERT_EQ_INT(rag_hugepage_grown(NULL, 8 * MIB), 0);
    unmap_isolated(big, 9 * MIB);
    unmap_isolated(small, MIB);
    rag_hugepage_mark_free(m);
}

static void test_switched_off(void)
{
    setenv("RAGCORE_HUGEPAGES", "0", 1);
    ASSERT_TRUE(rag_hugepage_mark_take() == NULL);
    unsetenv("RAGCORE_HUGEPAGES");
    rag_hugepage_mark *m = rag_hugepage_mark_take();
    ASSERT_TRUE(m != NULL);
    ASSERT_EQ_INT(rag_hugepage_advise_since(m, (size_t)1 << 40), 0); /* frees the mark */
}

int main(void)
{
    RUN_TEST(test_new_mapping_advised);
    RUN_TEST(test_known_mapping_skipped);
    RUN_TEST(test_size_floor_and_null_mark);
    RUN_TEST(test_sparse_mapping_skipped);
    RUN_TEST(test_grown);
    RUN_TEST(test_switched_off);
    return TEST_REPORT();
}
