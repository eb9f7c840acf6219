/* vindex.c - FAISS-backed vector index per collection, with checksummed atomic files. */
#include "vindex.h"
#include "crypt.h"
#include "hugepages.h"
#include "status.h"

#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <xxhash.h>

#include <faiss/c_api/AutoTune_c.h>
#include <faiss/c_api/Index_c.h>
#include <faiss/c_api/error_c.h>
#include <faiss/c_api/index_factory_c.h>
#include <faiss/c_api/index_io_c.h>
#include <faiss/c_api/utils/distances_c.h>

#define VINDEX_MAGIC "RAGVIDX1"
#define VINDEX_SEALED 3 /* header version of a file whose payload is sealed (crypt.h) */
#define VINDEX_HEADER 256
#define SPEC_MAX 96
/* Mappings smaller than this are left on small pages. */
#define HUGEPAGE_MIN_BYTES (4u << 20)

struct rag_vindex {
    FaissIndex *index;
    int dim;
    int ef_search;
    char spec[SPEC_MAX];
    /* the process's mappings when the index last asked for huge pages, and the vectors
     * added since it last looked */
    rag_hugepage_mark *hp_mark;
    size_t hp_added;
    int keeps_floats;            /* spec_keeps_floats(spec) */
    rag_vindex_identity id;
};

/* Vectors added between two looks at the mappings (about 100 us each on a server, against
 * milliseconds for the HNSW inserts of 16 vectors): a buffer FAISS reallocated waits at
 * most this many vectors for its huge pages. */
#define HUGEPAGE_CHECK_EVERY 256

/* Advises huge pages for what was allocated since the index's mark (FAISS's buffers grow by
 * reallocation, a new mapping each time) and takes a new mark. A look that finds nothing
 * large reads /proc/self/maps only. */
static void hugepage_check(rag_vindex *ix)
{
    ix->hp_added = 0;
    if (ix->hp_mark && !rag_hugepage_grown(ix->hp_mark, HUGEPAGE_MIN_BYTES))
        return;
    rag_hugepage_advise_since(ix->hp_mark, HUGEPAGE_MIN_BYTES);
    ix->hp_mark = rag_hugepage_mark_take();
}

/* File header (little-endian host layout; index files are not portable across ABIs and
 * are rebuilt from the store when they do not match). */
typedef struct vindex_header {
    char magic[8];
    uint32_t version;
    uint32_t dim;
    uint64_t count;
    uint64_t covered;
    uint64_t payload_len;
    uint64_t checksum;
    char spec[SPEC_MAX];
    /* version 2: whose index this is (version 1 files have zeros here) */
    uint32_t coll_id;
    unsigned char store_id[16];
} vindex_header;

/* FAISS's exception text without its "Error in <function> at <file>:<line>: " prefix. */
static const char *faiss_reason(const char *m)
{
    if (strncmp(m, "Error in ", 9) != 0)
        return m;
    const char *at = strstr(m, " at ");
    for (const char *p = at ? strchr(at + 4, ':') : NULL; p; p = strchr(p + 1, ':')) {
        size_t digits = strspn(p + 1, "0123456789");
        if (digits > 0 && p[1 + digits] == ':' && p[2 + digits] == ' ')
            return p + 3 + digits;
    }
    return m;
}

/* Copies FAISS's per-thread message at once (a later success does not clear it). The C
 * API is built with NDEBUG (tools/setup.sh), so FAISS itself prints nothing. */
static int faiss_status(int frc, int rc, const char *what)
{
    const char *m = faiss_get_last_error();
    char msg[400];
    snprintf(msg, sizeof msg, "%s", m && *m ? faiss_reason(m) : "no detail");
    char *nl = strchr(msg, '\n');
    if (nl)
        *nl = '\0';
    return rag_fail(rc, "%s: %s (FAISS error %d)", what, msg, frc);
}

/* Whether every component of `spec` stores plain floats: "Flat" or "HNSW<M>" (whose
 * default storage is Flat). */
static int spec_keeps_floats(const char *spec)
{
    for (const char *p = spec; *p;) {
        size_t len = strcspn(p, ",");
        int flat = len == 4 && !strncmp(p, "Flat", 4);
        int hnsw = len > 4 && !strncmp(p, "HNSW", 4) && strspn(p + 4, "0123456789") == len - 4;
        if (!flat && !hnsw)
            return 0;
        p += len;
        p += *p == ',';
    }
    return 1;
}

static void apply_ef(rag_vindex *ix)
{
    if (ix->ef_search <= 0 || !strstr(ix->spec, "HNSW"))
        return;
    FaissParameterSpace *ps = NULL;
    if (faiss_ParameterSpace_new(&ps) == 0) {
        faiss_ParameterSpace_set_index_parameter(ps, ix->index, "efSearch", ix->ef_search);
        faiss_ParameterSpace_free(ps);
    }
}

void rag_vindex_set_ef_search(rag_vindex *ix, int ef_search)
{
    ix->ef_search = ef_search;
    apply_ef(ix);
}

int rag_vindex_set_ef_construction(rag_vindex *ix, int ef_construction)
{
    if (ef_construction <= 0 || !strstr(ix->spec, "HNSW"))
        return RAG_OK;
    FaissParameterSpace *ps = NULL;
    int frc = faiss_ParameterSpace_new(&ps);
    if (frc == 0)
        frc = faiss_ParameterSpace_set_index_parameter(ps, ix->index, "efConstruction",
                                                      ef_construction);
    faiss_ParameterSpace_free(ps);
    if (frc != 0)
        return faiss_status(frc, RAG_EINVAL, "set efConstruction");
    return RAG_OK;
}

int rag_vindex_create(const char *spec, int dim, int ef_search, rag_vindex **out)
{
    *out = NULL;
    if (!spec || !*spec || strlen(spec) >= SPEC_MAX - 8)
        return rag_fail(RAG_EINVAL, "index spec must be 1..%d bytes", SPEC_MAX - 9);
    if (strstr(spec, "IDMap"))
        return rag_fail(RAG_EINVAL, "index spec '%s': IDMap is added by ragcore", spec);
    rag_vindex *ix = rag_calloc(1, sizeof *ix);
    if (!ix)
        return RAG_ENOMEM;
    char desc[SPEC_MAX + 8];
    snprintf(desc, sizeof desc, "IDMap2,%s", spec);
    int frc = faiss_index_factory(&ix->index, dim, desc, METRIC_INNER_PRODUCT);
    if (frc != 0) {
        free(ix);
        char what[SPEC_MAX + 16];
        snprintf(what, sizeof what, "index spec '%s'", spec);
        return faiss_status(frc, RAG_EINVAL, what);
    }
    ix->dim = dim;
    ix->ef_search = ef_search;
    snprintf(ix->spec, sizeof ix->spec, "%s", spec);
    ix->keeps_floats = spec_keeps_floats(ix->spec);
    ix->hp_mark = rag_hugepage_mark_take();
    apply_ef(ix);
    *out = ix;
    return RAG_OK;
}

void rag_vindex_free(rag_vindex *ix)
{
    if (!ix)
        return;
    faiss_Index_free(ix->index);
    rag_hugepage_mark_free(ix->hp_mark);
    free(ix);
}

int rag_vindex_is_trained(const rag_vindex *ix)
{
    return faiss_Index_is_trained(ix->index);
}

size_t rag_vindex_min_train(const rag_vindex *ix)
{
    const char *p = strstr(ix->spec, "IVF");
    if (p) {
        long nlist = strtol(p + 3, NULL, 10);
        return nlist > 0 ? (size_t)nlist * 4 : 256;
    }
    return 256; /* PQ and other trained quantizers */
}

int rag_vindex_add(rag_vindex *ix, size_t n, const float *vecs, const int64_t *ids)
{
    if (n == 0)
        return RAG_OK;
    if (!faiss_Index_is_trained(ix->index)) {
        if (n < rag_vindex_min_train(ix))
            return rag_fail(RAG_EINDEX, "index '%s' needs %zu vectors to train, got %zu",
                            ix->spec, rag_vindex_min_train(ix), n);
        int frc = faiss_Index_train(ix->index, (idx_t)n, vecs);
        if (frc != 0)
            return faiss_status(frc, RAG_EINDEX, "train index");
    }
    /* Inserts use every core (a search may have set this thread to one). */
    if (omp_get_max_threads() != omp_get_num_procs())
        omp_set_num_threads(omp_get_num_procs());
    int frc = faiss_Index_add_with_ids(ix->index, (idx_t)n, vecs, (const idx_t *)ids);
    if (frc != 0)
        return faiss_status(frc, RAG_EINDEX, "add vectors");
    ix->hp_added += n;
    if (ix->hp_added >= HUGEPAGE_CHECK_EVERY)
        hugepage_check(ix);
    return RAG_OK;
}

int rag_vindex_search(const rag_vindex *ix, const float *query, int k, float *scores,
                      int64_t *ids)
{
    if (k <= 0)
        return 0;
    /* One query gains nothing from FAISS's OpenMP team, whose idle threads spin: run it
     * on the calling thread (the setting is per thread). */
    if (omp_get_max_threads() != 1)
        omp_set_num_threads(1);
    int frc = faiss_Index_search(ix->index, 1, query, k, scores, (idx_t *)ids);
    if (frc != 0)
        return faiss_status(frc, RAG_EINDEX, "search");
    int n = 0;
    while (n < k && ids[n] >= 0)
        n++;
    return n;
}

size_t rag_vindex_count(const rag_vindex *ix)
{
    return (size_t)faiss_Index_ntotal(ix->index);
}

int rag_vindex_dim(const rag_vindex *ix)
{
    return ix->dim;
}

const char *rag_vindex_spec(const rag_vindex *ix)
{
    return ix->spec;
}

/* Streams `len` bytes of `fp` from its current position through XXH3-64. */
static int checksum_file(FILE *fp, uint64_t len, uint64_t *sum)
{
    XXH3_state_t *st = XXH3_createState();
    char *buf = malloc(1 << 20);
    int rc = RAG_OK;
    if (!st || !buf) {
        rc = rag_fail(RAG_ENOMEM, "out of memory checksumming index");
        goto cleanup;
    }
    XXH3_64bits_reset(st);
    while (len > 0) {
        size_t want = len < (1u << 20) ? (size_t)len : (1u << 20);
        size_t got = fread(buf, 1, want, fp);
        if (got != want) {
            rc = rag_fail(RAG_ECORRUPT, "index file is truncated");
            goto cleanup;
        }
        XXH3_64bits_update(st, buf, got);
        len -= got;
    }
    *sum = XXH3_64bits_digest(st);
cleanup:
    XXH3_freeState(st);
    free(buf);
    return rc;
}

static int fsync_dir_of(const char *path)
{
    char *copy = strdup(path);
    if (!copy)
        return rag_fail(RAG_ENOMEM, "out of memory");
    int fd = open(dirname(copy), O_RDONLY | O_DIRECTORY);
    free(copy);
    if (fd < 0)
        return RAG_OK;
    fsync(fd);
    close(fd);
    return RAG_OK;
}

/* Serialises the index in memory, seals it under the store's key (associated data
 * "vindex") and writes the sealed bytes to fp. RAG_ENOMEM, RAG_EFULL, RAG_EIO. */
static int write_sealed(const rag_vindex *ix, FILE *fp, const rag_crypt *crypt)
{
    char *mem = NULL;
    size_t n = 0;
    unsigned char *sealed = NULL;
    int rc = RAG_OK;
    FILE *mf = open_memstream(&mem, &n);
    if (!mf)
        return rag_fail(RAG_ENOMEM, "out of memory serialising the index");
    int frc = faiss_write_index(ix->index, mf);
    if (fclose(mf) != 0 && frc == 0)
        rc = rag_fail(RAG_ENOMEM, "out of memory serialising the index");
    if (frc != 0)
        rc = faiss_status(frc, RAG_ENOMEM, "serialise index");
    if (rc != RAG_OK)
        goto cleanup;
    if (!(sealed = malloc(n + RAG_CRYPT_OVERHEAD))) {
        rc = rag_fail(RAG_ENOMEM, "out of memory sealing the index");
        goto cleanup;
    }
    rag_crypt_seal(crypt, "vindex", 6, NULL, 0, mem, n, sealed);
    errno = 0;
    if (fwrite(sealed, 1, n + RAG_CRYPT_OVERHEAD, fp) != n + RAG_CRYPT_OVERHEAD)
        rc = rag_fail(errno == ENOSPC || errno == EDQUOT ? RAG_EFULL : RAG_EIO,
                      "cannot write the index: %s", strerror(errno));
cleanup:
    if (mem)
        rag_crypt_wipe(mem, n);
    free(mem);
    free(sealed);
    return rc;
}

int rag_vindex_save(const rag_vindex *ix, const char *path, uint64_t covered,
                    const rag_crypt *crypt)
{
    char tmp[4096];
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    /* the file takes its directory's permissions without execute bits (0700 -> 0600) */
    char dir[4096];
    struct stat ds;
    snprintf(dir, sizeof dir, "%s", path);
    mode_t mode = stat(dirname(dir), &ds) == 0 ? (ds.st_mode & 0666) : 0600;
    int fd = open(tmp, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, mode);
    FILE *fp = fd >= 0 ? fdopen(fd, "w+b") : NULL;
    if (fd >= 0 && !fp)
        close(fd);
    int rc = RAG_OK;
    if (!fp)
        return rag_fail(errno == ENOSPC ? RAG_EFULL : RAG_EIO, "cannot create '%s': %s", tmp,
                        strerror(errno));
    vindex_header h;
    memset(&h, 0, sizeof h);
    char pad[VINDEX_HEADER] = {0};
    if (fwrite(pad, 1, VINDEX_HEADER, fp) != VINDEX_HEADER) {
        rc = rag_fail(RAG_EIO, "cannot write '%s': %s", tmp, strerror(errno));
        goto fail;
    }
    errno = 0;
    if (crypt) {
        if ((rc = write_sealed(ix, fp, crypt)) != RAG_OK)
            goto fail;
    } else {
        int frc = faiss_write_index(ix->index, fp);
        if (frc != 0) {
            rc = faiss_status(frc, errno == ENOSPC || errno == EDQUOT ? RAG_EFULL : RAG_EIO,
                              "write index");
            goto fail;
        }
    }
    if (fflush(fp) != 0) {
        rc = rag_fail(errno == ENOSPC ? RAG_EFULL : RAG_EIO, "cannot write '%s': %s", tmp,
                      strerror(errno));
        goto fail;
    }
    long end = ftell(fp);
    memcpy(h.magic, VINDEX_MAGIC, 8);
    h.version = crypt ? VINDEX_SEALED : 2;
    h.coll_id = ix->id.coll;
    memcpy(h.store_id, ix->id.store, sizeof h.store_id);
    h.dim = (uint32_t)ix->dim;
    h.count = rag_vindex_count(ix);
    h.covered = covered;
    h.payload_len = (uint64_t)end - VINDEX_HEADER;
    snprintf(h.spec, sizeof h.spec, "%s", ix->spec);
    fseek(fp, VINDEX_HEADER, SEEK_SET);
    if ((rc = checksum_file(fp, h.payload_len, &h.checksum)) != RAG_OK)
        goto fail;
    fseek(fp, 0, SEEK_SET);
    if (fwrite(&h, sizeof h, 1, fp) != 1 || fflush(fp) != 0 || fsync(fileno(fp)) != 0) {
        rc = rag_fail(errno == ENOSPC ? RAG_EFULL : RAG_EIO, "cannot write '%s': %s", tmp,
                      strerror(errno));
        goto fail;
    }
    if (fclose(fp) != 0) {
        fp = NULL;
        rc = rag_fail(RAG_EIO, "cannot close '%s': %s", tmp, strerror(errno));
        goto fail;
    }
    fp = NULL;
    if (rename(tmp, path) != 0) {
        rc = rag_fail(RAG_EIO, "cannot rename '%s' to '%s': %s", tmp, path, strerror(errno));
        goto fail;
    }
    return fsync_dir_of(path);
fail:
    if (fp)
        fclose(fp);
    unlink(tmp);
    return rc;
}

int rag_vindex_load(const char *path, const char *spec, int dim, int ef_search,
                    const rag_crypt *crypt, rag_vindex **out, uint64_t *covered)
{
    *out = NULL;
    FILE *fp = fopen(path, "rb"), *mf = NULL;
    unsigned char *sealed = NULL, *plain = NULL;
    size_t plain_len = 0;
    FaissIndex *index = NULL;
    rag_hugepage_mark *mark = NULL; /* the mappings before the read */
    int rc;
    if (!fp) {
        if (errno == ENOENT)
            return rag_fail(RAG_ENOTFOUND, "index file '%s' does not exist", path);
        return rag_fail(RAG_EIO, "cannot open '%s': %s", path, strerror(errno));
    }
    vindex_header h;
    char pad[VINDEX_HEADER];
    if (fread(pad, 1, VINDEX_HEADER, fp) != VINDEX_HEADER) {
        rc = rag_fail(RAG_ECORRUPT, "index file '%s' is truncated", path);
        goto cleanup;
    }
    memcpy(&h, pad, sizeof h);
    h.spec[SPEC_MAX - 1] = '\0';
    if (h.version == 1) { /* no identity recorded: the bytes after the spec were zero */
        h.coll_id = 0;
        memset(h.store_id, 0, sizeof h.store_id);
    }
    if (memcmp(h.magic, VINDEX_MAGIC, 8) != 0 || h.version < 1 || h.version > VINDEX_SEALED) {
        rc = rag_fail(RAG_ECORRUPT, "'%s' is not a ragcore index file", path);
        goto cleanup;
    }
    if ((int)h.dim != dim || strcmp(h.spec, spec) != 0) {
        rc = rag_fail(RAG_ECORRUPT, "index file '%s' is for %s/%u, store wants %s/%d", path,
                      h.spec, h.dim, spec, dim);
        goto cleanup;
    }
    uint64_t sum = 0;
    if ((rc = checksum_file(fp, h.payload_len, &sum)) != RAG_OK) {
        rag_fail_prefix(rc, "index file '%s'", path);
        goto cleanup;
    }
    if (sum != h.checksum) {
        rc = rag_fail(RAG_ECORRUPT, "index file '%s' fails its checksum", path);
        goto cleanup;
    }
    if ((h.version == VINDEX_SEALED) != (crypt != NULL)) {
        /* an index of the store before it was encrypted or the other way round */
        rc = rag_fail(RAG_ECORRUPT, "index file '%s' is %s, the store %s", path,
                      crypt ? "not encrypted" : "encrypted", crypt ? "is" : "is not unlocked");
        goto cleanup;
    }
    fseek(fp, VINDEX_HEADER, SEEK_SET);
    FILE *src = fp;
    if (crypt) {
        if (h.payload_len < RAG_CRYPT_OVERHEAD || h.payload_len > SIZE_MAX / 2 ||
            !(sealed = malloc(h.payload_len)) ||
            !(plain = malloc((plain_len = h.payload_len - RAG_CRYPT_OVERHEAD) + 1))) {
            rc = rag_fail(RAG_ENOMEM, "out of memory reading index file '%s'", path);
            goto cleanup;
        }
        if (fread(sealed, 1, h.payload_len, fp) != h.payload_len) {
            rc = rag_fail(RAG_ECORRUPT, "index file '%s' is truncated", path);
            goto cleanup;
        }
        if ((rc = rag_crypt_unseal(crypt, "vindex", 6, NULL, 0, sealed, h.payload_len,
                                   plain)) != RAG_OK) {
            rag_fail_prefix(rc, "index file '%s'", path);
            goto cleanup;
        }
        if (!(mf = fmemopen(plain, plain_len, "rb"))) {
            rc = rag_fail(RAG_ENOMEM, "out of memory reading index file '%s'", path);
            goto cleanup;
        }
        src = mf;
    }
    mark = rag_hugepage_mark_take();
    int frc = faiss_read_index(src, 0, &index);
    if (frc != 0) {
        rc = faiss_status(frc, RAG_ECORRUPT, "read index");
        goto cleanup;
    }
    if ((uint64_t)faiss_Index_ntotal(index) != h.count || faiss_Index_d(index) != dim) {
        rc = rag_fail(RAG_ECORRUPT, "index file '%s' holds %lld vectors, header says %llu",
                      path, (long long)faiss_Index_ntotal(index), (unsigned long long)h.count);
        goto cleanup;
    }
    rag_vindex *ix = rag_calloc(1, sizeof *ix);
    if (!ix) {
        rc = RAG_ENOMEM;
        goto cleanup;
    }
    ix->index = index;
    index = NULL;
    ix->dim = dim;
    ix->ef_search = ef_search;
    snprintf(ix->spec, sizeof ix->spec, "%s", spec);
    ix->keeps_floats = spec_keeps_floats(ix->spec);
    ix->hp_mark = mark;
    mark = NULL;
    ix->id.coll = h.coll_id;
    memcpy(ix->id.store, h.store_id, sizeof ix->id.store);
    hugepage_check(ix);
    apply_ef(ix);
    *covered = h.covered;
    *out = ix;
    rc = RAG_OK;
cleanup:
    if (index)
        faiss_Index_free(index);
    rag_hugepage_mark_free(mark);
    fclose(fp);
    if (mf)
        fclose(mf);
    if (plain)
        rag_crypt_wipe(plain, plain_len);
    free(plain);
    free(sealed);
    return rc;
}

void rag_vindex_set_identity(rag_vindex *ix, const rag_vindex_identity *id)
{
    ix->id = *id;
}

const rag_vindex_identity *rag_vindex_get_identity(const rag_vindex *ix)
{
    return &ix->id;
}

static void hex16(const unsigned char *b, char *out)
{
    for (int i = 0; i < 16; i++)
        snprintf(out + 2 * i, 3, "%02x", b[i]);
}

int rag_vindex_identity_check(const rag_vindex_identity *have, const rag_vindex_identity *want,
                              const char *path)
{
    static const unsigned char zero[16];
    int store_differs = memcmp(have->store, zero, 16) != 0 && memcmp(have->store, want->store, 16);
    if (!store_differs && (have->coll == 0 || have->coll == want->coll))
        return 0;
    char hs[33], ws[33];
    hex16(have->store, hs);
    hex16(want->store, ws);
    rag_fail(RAG_ECORRUPT, "index file '%s' belongs to collection %u of store %s, not to "
             "collection %u of store %s", path, have->coll, hs, want->coll, ws);
    return -1;
}

/* Min-heap of (score, id) keeping the k best. */
static void heap_sift_down(float *s, int64_t *id, int n, int i)
{
    for (;;) {
        int l = 2 * i + 1, r = l + 1, m = i;
        if (l < n && s[l] < s[m])
            m = l;
        if (r < n && s[r] < s[m])
            m = r;
        if (m == i)
            return;
        float ts = s[i];
        s[i] = s[m];
        s[m] = ts;
        int64_t ti = id[i];
        id[i] = id[m];
        id[m] = ti;
        i = m;
    }
}

int rag_exact_topk(const float *query, const float *vecs, const int64_t *ids, size_t n,
                   int dim, int k, float *scores, int64_t *out_ids)
{
    if (k <= 0 || n == 0)
        return 0;
    enum { BLOCK = 4096 };
    float ip[BLOCK];
    int have = 0;
    for (size_t b = 0; b < n; b += BLOCK) {
        size_t m = n - b < BLOCK ? n - b : BLOCK;
        faiss_fvec_inner_products_ny(ip, query, vecs + b * (size_t)dim, (size_t)dim, m);
        for (size_t j = 0; j < m; j++) {
            if (have < k) {
                scores[have] = ip[j];
                out_ids[have] = ids[b + j];
                have++;
                if (have == k)
                    for (int i = k / 2 - 1; i >= 0; i--)
                        heap_sift_down(scores, out_ids, k, i);
            } else if (ip[j] > scores[0]) {
                scores[0] = ip[j];
                out_ids[0] = ids[b + j];
                heap_sift_down(scores, out_ids, k, 0);
            }
        }
    }
    if (have < k)
        for (int i = have / 2 - 1; i >= 0; i--)
            heap_sift_down(scores, out_ids, have, i);
    /* Heap-sort into descending order. */
    for (int end = have - 1; end > 0; end--) {
        float ts = scores[0];
        scores[0] = scores[end];
        scores[end] = ts;
        int64_t ti = out_ids[0];
        out_ids[0] = out_ids[end];
        out_ids[end] = ti;
        heap_sift_down(scores, out_ids, end, 0);
    }
    return have;
}

/* ---- inspection (check.c) ------------------------------------------------------------ */

#include <faiss/c_api/MetaIndexes_c.h>

int rag_vindex_ids(const rag_vindex *ix, int64_t **ids, size_t *n)
{
    *ids = NULL;
    *n = 0;
    FaissIndexIDMap2 *m = faiss_IndexIDMap2_cast(ix->index);
    if (!m)
        return rag_fail(RAG_EUNSUPPORTED, "index '%s' has no id map", ix->spec);
    idx_t *map = NULL;
    size_t count = 0;
    faiss_IndexIDMap2_id_map(m, &map, &count);
    int64_t *out = rag_malloc((count ? count : 1) * sizeof *out);
    if (!out)
        return RAG_ENOMEM;
    for (size_t i = 0; i < count; i++)
        out[i] = (int64_t)map[i];
    *ids = out;
    *n = count;
    return RAG_OK;
}

int rag_vindex_vector(const rag_vindex *ix, int64_t id, float *out)
{
    return ix->keeps_floats && faiss_Index_reconstruct(ix->index, (idx_t)id, out) == 0;
}

int rag_vindex_reconstruct(const rag_vindex *ix, int64_t id, float *out)
{
    int frc = faiss_Index_reconstruct(ix->index, (idx_t)id, out);
    if (frc != 0)
        return faiss_status(frc, RAG_EUNSUPPORTED, "reconstruct vector");
    return RAG_OK;
}

/* ---- erasure (erase.c) ----------------------------------------------------------------- */

static int cmp_i64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return x < y ? -1 : x > y;
}

/* Internal positions (into the flat storage) of the ids of the sorted list `del` that the
 * id map `map` holds, in a malloc'd array *pos of *npos. */
static int wipe_positions(const idx_t *map, size_t count, const int64_t *del, size_t n,
                          size_t **pos, size_t *npos)
{
    *pos = NULL;
    *npos = 0;
    size_t *out = rag_malloc((n ? n : 1) * sizeof *out), m = 0;
    if (!out)
        return RAG_ENOMEM;
    for (size_t i = 0; i < count && m < n; i++) {
        int64_t key = (int64_t)map[i];
        if (bsearch(&key, del, n, sizeof key, cmp_i64))
            out[m++] = i;
    }
    *pos = out;
    *npos = m;
    return RAG_OK;
}

/* Offset in buf[0, len) of the flat storage of an index of `count` vectors of `dim`
 * floats with id map `map`: found from the first non-zero vector, then checked against
 * the vectors at `pos` and the last one. -1 when not recognised. vec: dim floats scratch. */
static long flat_base(const FaissIndex *index, const unsigned char *buf, size_t len,
                      const idx_t *map, size_t count, int dim, const size_t *pos, size_t npos,
                      float *vec)
{
    size_t row = (size_t)dim * sizeof(float);
    long base = -1;
    for (size_t r = 0; r < count && base < 0; r++) {
        if (faiss_Index_reconstruct(index, map[r], vec) != 0)
            return -1;
        int nonzero = 0;
        for (int k = 0; k < dim && !nonzero; k++)
            nonzero = vec[k] != 0.0f;
        if (!nonzero)
            continue;
        const unsigned char *at = memmem(buf, len, vec, row);
        if (!at || (size_t)(at - buf) < r * row)
            return -1;
        base = (long)((size_t)(at - buf) - r * row);
    }
    if (base < 0 || (size_t)base + count * row > len)
        return -1;
    for (size_t i = 0; i <= npos; i++) {
        size_t r = i < npos ? pos[i] : count - 1;
        if (faiss_Index_reconstruct(index, map[r], vec) != 0 ||
            memcmp(buf + base + r * row, vec, row) != 0)
            return -1;
    }
    return base;
}

int rag_vindex_wipe(rag_vindex *ix, const int64_t *ids, size_t n, size_t *wiped)
{
    *wiped = 0;
    if (!ix->keeps_floats)
        return rag_fail(RAG_EUNSUPPORTED, "index '%s' does not keep plain vectors", ix->spec);
    FaissIndexIDMap2 *m = faiss_IndexIDMap2_cast(ix->index);
    if (!m)
        return rag_fail(RAG_EUNSUPPORTED, "index '%s' has no id map", ix->spec);
    idx_t *map = NULL;
    size_t count = 0, *pos = NULL, npos = 0, len = 0;
    int64_t *del = NULL;
    char *buf = NULL;
    float *vec = NULL;
    FILE *fp = NULL;
    FaissIndex *fresh = NULL;
    rag_hugepage_mark *mark = NULL;
    int rc = RAG_OK;
    faiss_IndexIDMap2_id_map(m, &map, &count);
    if (n == 0 || count == 0)
        goto cleanup;
    if (!(del = rag_malloc(n * sizeof *del)) || !(vec = rag_malloc((size_t)ix->dim * sizeof *vec))) {
        rc = RAG_ENOMEM;
        goto cleanup;
    }
    memcpy(del, ids, n * sizeof *del);
    qsort(del, n, sizeof *del, cmp_i64);
    if ((rc = wipe_positions(map, count, del, n, &pos, &npos)) != RAG_OK || npos == 0)
        goto cleanup;
    if (!(fp = open_memstream(&buf, &len))) {
        rc = RAG_ENOMEM;
        goto cleanup;
    }
    int frc = faiss_write_index(ix->index, fp);
    if (fclose(fp) != 0 && frc == 0)
        frc = -1;
    fp = NULL;
    if (frc != 0) {
        rc = faiss_status(frc, RAG_EINDEX, "write index to memory");
        goto cleanup;
    }
    long base = flat_base(ix->index, (const unsigned char *)buf, len, map, count, ix->dim, pos,
                          npos, vec);
    if (base < 0) {
        rc = rag_fail(RAG_EUNSUPPORTED, "index '%s': stored vectors not found where expected",
                      ix->spec);
        goto cleanup;
    }
    size_t row = (size_t)ix->dim * sizeof(float);
    for (size_t i = 0; i < npos; i++)
        memset(buf + base + pos[i] * row, 0, row);
    mark = rag_hugepage_mark_take();
    if (!(fp = fmemopen(buf, len, "rb"))) {
        rc = RAG_ENOMEM;
        goto cleanup;
    }
    if ((frc = faiss_read_index(fp, 0, &fresh)) != 0) {
        rc = faiss_status(frc, RAG_EINDEX, "read index from memory");
        goto cleanup;
    }
    faiss_Index_free(ix->index);
    ix->index = fresh;
    fresh = NULL;
    rag_hugepage_mark_free(ix->hp_mark);
    ix->hp_mark = mark;
    mark = NULL;
    hugepage_check(ix);
    apply_ef(ix);
    *wiped = npos;
cleanup:
    if (fp)
        fclose(fp);
    if (fresh)
        faiss_Index_free(fresh);
    rag_hugepage_mark_free(mark);
    if (buf)
        memset(buf, 0, len); /* the buffer held the vectors */
    free(buf);
    free(vec);
    free(del);
    free(pos);
    return rc;
}
