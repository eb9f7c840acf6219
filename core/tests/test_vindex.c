/* test_vindex.c - vector index: HNSW recall against exact search, persistence, damaged
 * files, exact top-k, huge-page advice on load. */
#include "test.h"

#include "ragcore.h"
#include "status.h"
#include "vindex.h"

#include <math.h>
#include <stdint.h>
#include <unistd.h>

#define DIM 384
#define N 10000
#define NQ 200
#define K 10

static uint64_t rng = 0x243F6A8885A308D3ULL;

static float frand(void)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return (float)((rng >> 11) * (1.0 / 9007199254740992.0)) * 2.0f - 1.0f;
}

static void random_unit(float *v, int n)
{
    for (int i = 0; i < n; i++) {
        double s = 0;
        for (int j = 0; j < DIM; j++) {
            v[i * DIM + j] = frand();
            s += v[i * DIM + j] * v[i * DIM + j];
        }
        for (int j = 0; j < DIM; j++)
            v[i * DIM + j] /= (float)sqrt(s);
    }
}

static float *data, *queries;
static int64_t *ids;

static void path_in_tmp(char *out, size_t n, const char *name)
{
    const char *tmp = getenv("RAGCORE_TEST_TMP");
    snprintf(out, n, "%s/%s", tmp ? tmp : "/tmp", name);
}

static void test_hnsw_recall_vs_flat(void)
{
    rag_vindex *hnsw = NULL, *flat = NULL;
    ASSERT_OK(rag_vindex_create("HNSW32", DIM, 512, &hnsw));
    ASSERT_OK(rag_vindex_create("Flat", DIM, 0, &flat));
    ASSERT_OK(rag_vindex_add(hnsw, N, data, ids));
    ASSERT_OK(rag_vindex_add(flat, N, data, ids));
    ASSERT_EQ_INT(rag_vindex_count(hnsw), N);
    int found = 0;
    for (int q = 0; q < NQ; q++) {
        float s1[K], s2[K], s3[K];
        int64_t i1[K], i2[K], i3[K];
        ASSERT_EQ_INT(rag_vindex_search(hnsw, queries + q * DIM, K, s1, i1), K);
        ASSERT_EQ_INT(rag_vindex_search(flat, queries + q * DIM, K, s2, i2), K);
        /* The exact BLAS scan agrees with FAISS's Flat index. */
        ASSERT_EQ_INT(rag_exact_topk(queries + q * DIM, data, ids, N, DIM, K, s3, i3), K);
        for (int a = 0; a < K; a++) {
            ASSERT_NEAR(s3[a], s2[a], 1e-4);
            for (int b = 0; b < K; b++)
                if (i1[a] == i2[b]) {
                    found++;
                    break;
                }
        }
        for (int a = 1; a < K; a++)
            ASSERT_TRUE(s1[a - 1] >= s1[a]);
    }
    double recall = (double)found / (NQ * K);
    fprintf(stderr, "HNSW32 (efSearch 512) recall@10 vs Flat on %d random vectors: %.4f\n", N, recall);
    ASSERT_TRUE(recall >= 0.95);
    rag_vindex_free(hnsw);
    rag_vindex_free(flat);
}

/* recall@K of `ix` (at its efSearch) against exact search over the first n vectors. */
static double recall_at_k(rag_vindex *ix, size_t n)
{
    int found = 0;
    for (int q = 0; q < NQ; q++) {
        float s1[K], s2[K];
        int64_t i1[K], i2[K];
        int m = rag_vindex_search(ix, queries + q * DIM, K, s1, i1);
        rag_exact_topk(queries + q * DIM, data, ids, n, DIM, K, s2, i2);
        for (int a = 0; a < m; a++)
            for (int b = 0; b < K; b++)
                found += i1[a] == i2[b];
    }
    return (double)found / (NQ * K);
}

/* efConstruction reaches FAISS: a deeper build gives a better graph, so clearly higher
 * recall at the same (small) efSearch; non-HNSW specs ignore it. */
static void test_ef_construction(void)
{
    const size_t n = 3000;
    double r[2];
    const int efc[2] = {4, 200};
    for (int i = 0; i < 2; i++) {
        rag_vindex *ix = NULL;
        ASSERT_OK(rag_vindex_create("HNSW32", DIM, 16, &ix));
        ASSERT_OK(rag_vindex_set_ef_construction(ix, efc[i]));
        ASSERT_OK(rag_vindex_add(ix, n, data, ids));
        r[i] = recall_at_k(ix, n);
        rag_vindex_set_ef_search(ix, 512);
        ASSERT_TRUE(recall_at_k(ix, n) > r[i]); /* efSearch reaches FAISS too */
        rag_vindex_free(ix);
    }
    fprintf(stderr, "HNSW32 efSearch 16 on %zu random vectors: recall@10 %.4f at "
            "efConstruction 4, %.4f at 200\n", n, r[0], r[1]);
    ASSERT_TRUE(r[1] > r[0] + 0.1);
    rag_vindex *flat = NULL;
    ASSERT_OK(rag_vindex_create("Flat", DIM, 0, &flat));
    ASSERT_OK(rag_vindex_set_ef_construction(flat, 100));
    rag_vindex_free(flat);
}

static void test_save_load_roundtrip(void)
{
    char path[4096];
    path_in_tmp(path, sizeof path, "vindex_roundtrip.idx");
    rag_vindex *ix = NULL, *back = NULL;
    ASSERT_OK(rag_vindex_create("HNSW32", DIM, 64, &ix));
    ASSERT_OK(rag_vindex_add(ix, 1000, data, ids));
    ASSERT_OK(rag_vindex_save(ix, path, 4242, NULL));
    uint64_t covered = 0;
    ASSERT_OK(rag_vindex_load(path, "HNSW32", DIM, 64, NULL, &back, &covered));
    ASSERT_EQ_INT(covered, 4242);
    ASSERT_EQ_INT(rag_vindex_count(back), 1000);
    float s1[K], s2[K];
    int64_t i1[K], i2[K];
    ASSERT_EQ_INT(rag_vindex_search(ix, data + 5 * DIM, K, s1, i1), K);
    ASSERT_EQ_INT(rag_vindex_search(back, data + 5 * DIM, K, s2, i2), K);
    ASSERT_EQ_INT(i2[0], ids[5]);
    for (int a = 0; a < K; a++)
        ASSERT_EQ_INT(i1[a], i2[a]);
    rag_vindex_free(back);
    back = NULL;
    /* Wrong dimension or spec: reported as corrupt so the caller rebuilds. */
    ASSERT_EQ_INT(rag_vindex_load(path, "HNSW32", 128, 64, NULL, &back, &covered), RAG_ECORRUPT);
    ASSERT_EQ_INT(rag_vindex_load(path, "Flat", DIM, 64, NULL, &back, &covered), RAG_ECORRUPT);
    ASSERT_TRUE(back == NULL);
    /* Flip one byte in the payload: checksum failure. */
    FILE *fp = fopen(path, "r+b");
    ASSERT_TRUE(fp != NULL);
    fseek(fp, 256 + 5000, SEEK_SET);
    int c = fgetc(fp);
    fseek(fp, 256 + 5000, SEEK_SET);
    fputc(c ^ 0x40, fp);
    fclose(fp);
    ASSERT_EQ_INT(rag_vindex_load(path, "HNSW32", DIM, 64, NULL, &back, &covered), RAG_ECORRUPT);
    ASSERT_TRUE(strstr(rag_errmsg(), "checksum") != NULL);
    /* Truncated file. */
    ASSERT_OK(rag_vindex_save(ix, path, 1, NULL));
    ASSERT_EQ_INT(truncate(path, 1000), 0);
    ASSERT_EQ_INT(rag_vindex_load(path, "HNSW32", DIM, 64, NULL, &back, &covered), RAG_ECORRUPT);
    /* Missing file. */
    unlink(path);
    ASSERT_EQ_INT(rag_vindex_load(path, "HNSW32", DIM, 64, NULL, &back, &covered), RAG_ENOTFOUND);
    rag_vindex_free(ix);
}

/* rag_vindex_vector gives the added floats back exactly for Flat storage, and 0 without
 * an error for quantised specs and absent ids. */
static void test_vector_from_memory(void)
{
    const char *exact[] = {"HNSW32", "Flat", "HNSW16,Flat"};
    float out[DIM];
    for (int s = 0; s < 3; s++) {
        rag_vindex *ix = NULL;
        ASSERT_OK(rag_vindex_create(exact[s], DIM, 64, &ix));
        ASSERT_OK(rag_vindex_add(ix, 1000, data, ids));
        rag_clear_error();
        ASSERT_EQ_INT(rag_vindex_vector(ix, ids[7], out), 1);
        ASSERT_TRUE(memcmp(out, data + 7 * DIM, sizeof out) == 0);
        ASSERT_EQ_INT(rag_vindex_vector(ix, ids[7] + 1, out), 0); /* ids step by 3 */
        ASSERT_EQ_INT(rag_vindex_vector(ix, ids[999] + 3, out), 0);
        ASSERT_STR_EQ(rag_errmsg(), "");
        rag_vindex_free(ix);
    }
    rag_vindex *sq = NULL;
    ASSERT_OK(rag_vindex_create("HNSW32,SQ8", DIM, 64, &sq));
    ASSERT_OK(rag_vindex_add(sq, 1000, data, ids));
    ASSERT_EQ_INT(rag_vindex_vector(sq, ids[7], out), 0);
    ASSERT_OK(rag_vindex_reconstruct(sq, ids[7], out)); /* lossy, but there */
    rag_vindex_free(sq);
    /* a loaded index keeps the property */
    char path[4096];
    path_in_tmp(path, sizeof path, "vindex_vector.idx");
    rag_vindex *ix = NULL, *back = NULL;
    uint64_t covered = 0;
    ASSERT_OK(rag_vindex_create("HNSW32", DIM, 64, &ix));
    ASSERT_OK(rag_vindex_add(ix, 100, data, ids));
    ASSERT_OK(rag_vindex_save(ix, path, 100, NULL));
    ASSERT_OK(rag_vindex_load(path, "HNSW32", DIM, 64, NULL, &back, &covered));
    ASSERT_EQ_INT(rag_vindex_vector(back, ids[42], out), 1);
    ASSERT_TRUE(memcmp(out, data + 42 * DIM, sizeof out) == 0);
    rag_vindex_free(back);
    rag_vindex_free(ix);
    unlink(path);
}

/* Bytes of this process's mappings that carry the huge-page advice (VmFlags "hg"). */
static size_t advised_bytes(void)
{
    FILE *fp = fopen("/proc/self/smaps", "r");
    char line[512];
    size_t total = 0, len = 0;
    if (!fp)
        return 0;
    while (fgets(line, sizeof line, fp)) {
        unsigned long s, e;
        if (sscanf(line, "%lx-%lx ", &s, &e) == 2)
            len = e - s;
        else if (strncmp(line, "VmFlags:", 8) == 0 && strstr(line, " hg"))
            total += len;
    }
    fclose(fp);
    return total;
}

/* A loaded index asks for huge pages for its vectors (hugepages.c), and searches the same. */
static void test_load_advises_huge_pages(void)
{
    if (access("/sys/kernel/mm/transparent_hugepage/enabled", F_OK) != 0) {
        fprintf(stderr, "skip: kernel without transparent huge pages\n");
        return;
    }
    /* AddressSanitizer's allocator places FAISS's buffers in regions of its own, which
     * need not be new mappings (measured: no new advised bytes there), so the count below
     * says nothing under it; test_hugepages checks the advice under the sanitizers too. */
    const char *san = getenv("RAGCORE_SANITIZE");
    if (san && strcmp(san, "ON") == 0) {
        fprintf(stderr, "skip: sanitizer allocator\n");
        return;
    }
    char path[4096];
    path_in_tmp(path, sizeof path, "vindex_huge.idx");
    rag_vindex *ix = NULL, *back = NULL;
    uint64_t covered = 0;
    ASSERT_OK(rag_vindex_create("Flat", DIM, 0, &ix));
    ASSERT_OK(rag_vindex_add(ix, N, data, ids));
    ASSERT_OK(rag_vindex_save(ix, path, 1, NULL));
    size_t before = advised_bytes();
    ASSERT_OK(rag_vindex_load(path, "Flat", DIM, 0, NULL, &back, &covered));
    /* the N * DIM floats (15 MB) arrived in new mappings that now carry the advice */
    ASSERT_TRUE(advised_bytes() >= before + (size_t)N * DIM * sizeof(float));
    float s[K];
    int64_t got[K];
    ASSERT_EQ_INT(rag_vindex_search(back, data + 77 * DIM, K, s, got), K);
    ASSERT_EQ_INT(got[0], ids[77]);
    /* FAISS grows its buffers by reallocation: the first vectors added move all of them to
     * a new mapping, which the index advises once 256 vectors were added */
    int64_t more[256];
    for (int i = 0; i < 256; i++)
        more[i] = 9000000 + i;
    before = advised_bytes();
    for (int i = 0; i < 256; i += 16)
        ASSERT_OK(rag_vindex_add(back, 16, data + (size_t)i * DIM, more + i));
    ASSERT_TRUE(advised_bytes() >= before + (size_t)N * DIM * sizeof(float));
    rag_vindex_free(back);
    rag_vindex_free(ix);
    unlink(path);
}

static void test_bad_spec_and_training(void)
{
    rag_vindex *ix = NULL;
    ASSERT_EQ_INT(rag_vindex_create("NoSuchIndex77", DIM, 0, &ix), RAG_EINVAL);
    ASSERT_TRUE(strstr(rag_errmsg(), "index spec") != NULL);
    ASSERT_EQ_INT(rag_vindex_create("IDMap,Flat", DIM, 0, &ix), RAG_EINVAL);
    ASSERT_OK(rag_vindex_create("IVF16,Flat", DIM, 0, &ix));
    ASSERT_TRUE(!rag_vindex_is_trained(ix));
    ASSERT_EQ_INT(rag_vindex_add(ix, 10, data, ids), RAG_EINDEX);
    ASSERT_OK(rag_vindex_add(ix, 2000, data, ids));
    ASSERT_TRUE(rag_vindex_is_trained(ix));
    ASSERT_EQ_INT(rag_vindex_count(ix), 2000);
    rag_vindex_free(ix);
    ASSERT_OK(rag_vindex_create("HNSW32,SQ8", DIM, 64, &ix));
    ASSERT_OK(rag_vindex_add(ix, 2000, data, ids));
    float s[K];
    int64_t i[K];
    ASSERT_EQ_INT(rag_vindex_search(ix, data + 7 * DIM, K, s, i), K);
    ASSERT_EQ_INT(i[0], ids[7]);
    rag_vindex_free(ix);
}

static void test_exact_topk_small(void)
{
    float v[4 * DIM], q[DIM], s[10];
    int64_t id[4] = {10, 11, 12, 13}, out[10];
    memset(v, 0, sizeof v);
    memset(q, 0, sizeof q);
    for (int i = 0; i < 4; i++)
        v[i * DIM] = (float)i; /* scores 0,1,2,3 against q = e0 */
    q[0] = 1;
    ASSERT_EQ_INT(rag_exact_topk(q, v, id, 4, DIM, 10, s, out), 4);
    ASSERT_EQ_INT(out[0], 13);
    ASSERT_EQ_INT(out[3], 10);
    ASSERT_EQ_INT(rag_exact_topk(q, v, id, 4, DIM, 2, s, out), 2);
    ASSERT_EQ_INT(out[0], 13);
    ASSERT_EQ_INT(out[1], 12);
    ASSERT_NEAR(s[1], 2.0, 1e-6);
    ASSERT_EQ_INT(rag_exact_topk(q, v, id, 0, DIM, 2, s, out), 0);
}

int main(void)
{
    data = malloc(sizeof(float) * N * DIM);
    queries = malloc(sizeof(float) * NQ * DIM);
    ids = malloc(sizeof(int64_t) * N);
    random_unit(data, N);
    random_unit(queries, NQ);
    for (int i = 0; i < N; i++)
        ids[i] = 1000 + 3 * i;
    RUN_TEST(test_exact_topk_small);
    RUN_TEST(test_hnsw_recall_vs_flat);
    RUN_TEST(test_ef_construction);
    RUN_TEST(test_save_load_roundtrip);
    RUN_TEST(test_vector_from_memory);
    RUN_TEST(test_bad_spec_and_training);
    RUN_TEST(test_load_advises_huge_pages);
    free(data);
    free(queries);
    free(ids);
    return TEST_REPORT();
}
