/* safetensors.c - validating, memory-mapped reader of .safetensors weight files. */
#include "safetensors.h"
#include "status.h"

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#define MAX_HEADER (100u * 1000u * 1000u)

struct rag_safetensors {
    char *path;
    unsigned char *map;
    size_t size;
    json_t *header;        /* owns the tensor name strings */
    rag_st_tensor *t;
    size_t n;
};

static const struct {
    const char *name;
    rag_st_dtype dt;
    size_t size;
} dtypes[] = {
    {"F32", RAG_ST_F32, 4},   {"F16", RAG_ST_F16, 2},         {"BF16", RAG_ST_BF16, 2},
    {"F64", RAG_ST_F64, 8},   {"I64", RAG_ST_I64, 8},         {"I32", RAG_ST_I32, 4},
    {"I16", RAG_ST_I16, 2},   {"I8", RAG_ST_I8, 1},           {"U8", RAG_ST_U8, 1},
    {"BOOL", RAG_ST_BOOL, 1}, {"U16", RAG_ST_U16, 2},         {"U32", RAG_ST_U32, 4},
    {"U64", RAG_ST_U64, 8},   {"F8_E4M3", RAG_ST_F8_E4M3, 1}, {"F8_E5M2", RAG_ST_F8_E5M2, 1},
};

static int span_cmp(const void *a, const void *b)
{
    const rag_st_tensor *x = *(const rag_st_tensor *const *)a, *y = *(const rag_st_tensor *const *)b;
    return x->data < y->data ? -1 : x->data > y->data;
}

/* Validates one header entry into *t; `data`/`dlen` is the data section. */
static int parse_entry(const char *path, const char *name, json_t *v, const unsigned char *data,
                       size_t dlen, rag_st_tensor *t)
{
    if (!json_is_object(v))
        return rag_fail(RAG_ECORRUPT, "%s: tensor \"%s\": entry is not an object", path, name);
    json_t *dt = json_object_get(v, "dtype"), *shape = json_object_get(v, "shape"),
           *offs = json_object_get(v, "data_offsets");
    if (!json_is_string(dt))
        return rag_fail(RAG_ECORRUPT, "%s: tensor \"%s\": missing \"dtype\"", path, name);
    size_t esize = 0;
    for (size_t i = 0; i < sizeof dtypes / sizeof dtypes[0]; i++)
        if (strcmp(json_string_value(dt), dtypes[i].name) == 0) {
            t->dtype = dtypes[i].dt;
            esize = dtypes[i].size;
        }
    if (!esize)
        return rag_fail(RAG_ECORRUPT, "%s: tensor \"%s\": unknown dtype \"%s\"", path, name,
                        json_string_value(dt));
    if (!json_is_array(shape) || json_array_size(shape) > RAG_ST_MAX_DIMS)
        return rag_fail(RAG_ECORRUPT, "%s: tensor \"%s\": \"shape\" is not an array of at most %d "
                        "dimensions", path, name, RAG_ST_MAX_DIMS);
    t->ndim = (int)json_array_size(shape);
    uint64_t numel = 1;
    for (int d = 0; d < t->ndim; d++) {
        json_t *x = json_array_get(shape, (size_t)d);
        if (!json_is_integer(x) || json_integer_value(x) < 0)
            return rag_fail(RAG_ECORRUPT, "%s: tensor \"%s\": shape[%d] is not a non-negative "
                            "integer", path, name, d);
        t->shape[d] = json_integer_value(x);
        uint64_t dim = (uint64_t)t->shape[d];
        if (dim && numel > UINT64_MAX / dim)
            return rag_fail(RAG_ECORRUPT, "%s: tensor \"%s\": shape overflows", path, name);
        numel *= dim;
    }
    if (numel > SIZE_MAX / esize)
        return rag_fail(RAG_ECORRUPT, "%s: tensor \"%s\": shape overflows", path, name);
    if (!json_is_array(offs) || json_array_size(offs) != 2 ||
        !json_is_integer(json_array_get(offs, 0)) || !json_is_integer(json_array_get(offs, 1)))
        return rag_fail(RAG_ECORRUPT, "%s: tensor \"%s\": \"data_offsets\" is not [begin, end]",
                        path, name);
    json_int_t b = json_integer_value(json_array_get(offs, 0)),
               e = json_integer_value(json_array_get(offs, 1));
    if (b < 0 || e < b || (uint64_t)e > dlen)
        return rag_fail(RAG_ECORRUPT, "%s: tensor \"%s\": data_offsets [%lld, %lld] outside the "
                        "%zu-byte data section", path, name, (long long)b, (long long)e, dlen);
    if ((uint64_t)(e - b) != numel * esize)
        return rag_fail(RAG_ECORRUPT, "%s: tensor \"%s\": %lld bytes of data for a %s tensor of "
                        "%llu elements", path, name, (long long)(e - b), json_string_value(dt),
                        (unsigned long long)numel);
    t->name = name;
    t->data = data + b;
    t->nbytes = (size_t)(e - b);
    return RAG_OK;
}

int rag_st_open(const char *path, rag_safetensors **out)
{
    int rc = RAG_OK, fd = -1;
    rag_st_tensor **order = NULL;
    *out = NULL;
    rag_safetensors *st = rag_calloc(1, sizeof *st);
    if (!st || !(st->path = rag_strdup(path))) {
        free(st);
        return RAG_ENOMEM;
    }
    fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        rc = rag_fail(errno == ENOENT ? RAG_ENOTFOUND : RAG_EIO, "%s: %s", path, strerror(errno));
        goto cleanup;
    }
    struct stat sb;
    if (fstat(fd, &sb) != 0 || !S_ISREG(sb.st_mode)) {
        rc = rag_fail(RAG_EIO, "%s: not a regular file", path);
        goto cleanup;
    }
    st->size = (size_t)sb.st_size;
    if (st->size < 8) {
        rc = rag_fail(RAG_ECORRUPT, "%s: %zu bytes, too short for a safetensors header", path,
                      st->size);
        goto cleanup;
    }
    st->map = mmap(NULL, st->size, PROT_READ, MAP_PRIVATE, fd, 0);
    if (st->map == MAP_FAILED) {
        st->map = NULL;
        rc = rag_fail(RAG_EIO, "%s: mmap: %s", path, strerror(errno));
        goto cleanup;
    }
    uint64_t hlen = 0;
    for (int i = 7; i >= 0; i--)
        hlen = (hlen << 8) | st->map[i];
    if (hlen > MAX_HEADER || hlen > st->size - 8) {
        rc = rag_fail(RAG_ECORRUPT, "%s: header length %llu exceeds the file (%zu bytes) or the "
                      "%u-byte limit", path, (unsigned long long)hlen, st->size, MAX_HEADER);
        goto cleanup;
    }
    json_error_t jerr;
    st->header = json_loadb((const char *)st->map + 8, (size_t)hlen, JSON_REJECT_DUPLICATES, &jerr);
    if (!st->header) {
        rc = rag_fail(RAG_ECORRUPT, "%s: header JSON, byte %d: %s", path, jerr.position, jerr.text);
        goto cleanup;
    }
    if (!json_is_object(st->header)) {
        rc = rag_fail(RAG_ECORRUPT, "%s: header is not a JSON object", path);
        goto cleanup;
    }
    const unsigned char *data = st->map + 8 + hlen;
    size_t dlen = st->size - 8 - (size_t)hlen;
    size_t cap = json_object_size(st->header);
    st->t = rag_calloc(cap ? cap : 1, sizeof *st->t);
    if (!st->t) {
        rc = RAG_ENOMEM;
        goto cleanup;
    }
    const char *key;
    json_t *val;
    json_object_foreach(st->header, key, val)
    {
        if (strcmp(key, "__metadata__") == 0)
            continue;
        if ((rc = parse_entry(path, key, val, data, dlen, &st->t[st->n])))
            goto cleanup;
        st->n++;
    }
    /* The spans must tile the data section: sorted by start, each begins where the last
     * ended, the first at 0 and the last at the end. */
    order = rag_malloc((st->n ? st->n : 1) * sizeof *order);
    if (!order) {
        rc = RAG_ENOMEM;
        goto cleanup;
    }
    for (size_t i = 0; i < st->n; i++)
        order[i] = &st->t[i];
    if (st->n)
        qsort(order, st->n, sizeof *order, span_cmp);
    const unsigned char *pos = data;
    for (size_t i = 0; i < st->n; i++) {
        if (order[i]->data != pos) {
            rc = rag_fail(RAG_ECORRUPT, "%s: tensor \"%s\" starts at data byte %td, expected %td "
                          "(overlapping or non-contiguous data_offsets)", path, order[i]->name,
                          order[i]->data - data, pos - data);
            goto cleanup;
        }
        pos += order[i]->nbytes;
    }
    if (pos != data + dlen) {
        rc = rag_fail(RAG_ECORRUPT, "%s: tensors cover %td of %zu data bytes", path, pos - data,
                      dlen);
        goto cleanup;
    }
    *out = st;
    st = NULL;
cleanup:
    free(order);
    if (fd >= 0)
        close(fd);
    rag_st_close(st);
    return rc;
}

size_t rag_st_count(const rag_safetensors *st)
{
    return st->n;
}

const rag_st_tensor *rag_st_at(const rag_safetensors *st, size_t i)
{
    return i < st->n ? &st->t[i] : NULL;
}

static const rag_st_tensor *find_exact(const rag_safetensors *st, const char *name)
{
    for (size_t i = 0; i < st->n; i++)
        if (strcmp(st->t[i].name, name) == 0)
            return &st->t[i];
    return NULL;
}

const rag_st_tensor *rag_st_find(const rag_safetensors *st, const char *name)
{
    const rag_st_tensor *t = find_exact(st, name);
    if (t)
        return t;
    if (strncmp(name, "bert.", 5) == 0)
        return find_exact(st, name + 5);
    char buf[512];
    if ((size_t)snprintf(buf, sizeof buf, "bert.%s", name) >= sizeof buf)
        return NULL;
    return find_exact(st, buf);
}

float rag_f16_to_f32(uint16_t h)
{
    uint32_t sign = (uint32_t)(h & 0x8000) << 16, exp = (h >> 10) & 0x1f, man = h & 0x3ff, bits;
    if (exp == 0) {
        if (man == 0) {
            bits = sign;
        } else { /* subnormal: normalise */
            int e = -1;
            do {
                e++;
                man <<= 1;
            } while (!(man & 0x400));
            bits = sign | ((uint32_t)(127 - 15 - e) << 23) | ((man & 0x3ff) << 13);
        }
    } else if (exp == 31) {
        bits = sign | 0x7f800000u | (man << 13);
    } else {
        bits = sign | ((exp + 127 - 15) << 23) | (man << 13);
    }
    float f;
    memcpy(&f, &bits, 4);
    return f;
}

float rag_bf16_to_f32(uint16_t h)
{
    uint32_t bits = (uint32_t)h << 16;
    float f;
    memcpy(&f, &bits, 4);
    return f;
}

int rag_st_read_f32(const rag_safetensors *st, const char *name, const int64_t *shape, int ndim,
                    float *out)
{
    const rag_st_tensor *t = rag_st_find(st, name);
    if (!t)
        return rag_fail(RAG_ENOTFOUND, "%s: tensor \"%s\" not found", st->path, name);
    int same = t->ndim == ndim;
    for (int d = 0; same && d < ndim; d++)
        same = t->shape[d] == shape[d];
    if (!same) {
        char got[160] = "", want[160] = "";
        for (int d = 0; d < t->ndim; d++)
            snprintf(got + strlen(got), sizeof got - strlen(got), "%s%lld", d ? "," : "",
                     (long long)t->shape[d]);
        for (int d = 0; d < ndim; d++)
            snprintf(want + strlen(want), sizeof want - strlen(want), "%s%lld", d ? "," : "",
                     (long long)shape[d]);
        return rag_fail(RAG_EMISMATCH, "%s: tensor \"%s\" has shape [%s], the config implies [%s]",
                        st->path, t->name, got, want);
    }
    size_t n = 1;
    for (int d = 0; d < ndim; d++)
        n *= (size_t)shape[d];
    const unsigned char *p = t->data;
    switch (t->dtype) {
    case RAG_ST_F32:
        memcpy(out, p, n * 4);
        break;
    case RAG_ST_F16:
    case RAG_ST_BF16:
        for (size_t i = 0; i < n; i++) {
            uint16_t h = (uint16_t)(p[2 * i] | (p[2 * i + 1] << 8));
            out[i] = t->dtype == RAG_ST_F16 ? rag_f16_to_f32(h) : rag_bf16_to_f32(h);
        }
        break;
    case RAG_ST_F64:
        for (size_t i = 0; i < n; i++) {
            double d;
            memcpy(&d, p + 8 * i, 8);
            out[i] = (float)d;
        }
        break;
    default:
        return rag_fail(RAG_EUNSUPPORTED, "%s: tensor \"%s\" is not a floating-point tensor",
                        st->path, t->name);
    }
    return RAG_OK;
}

void rag_st_close(rag_safetensors *st)
{
    if (!st)
        return;
    if (st->map)
        munmap(st->map, st->size);
    json_decref(st->header);
    free(st->t);
    free(st->path);
    free(st);
}
