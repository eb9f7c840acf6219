/* test_safetensors.c - the safetensors reader on good, damaged and hostile files. */
#include "model_registry.h"
#include "ragcore.h"
#include "safetensors.h"
#include "test.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static char tmpdir[1024];

/* Writes a safetensors file: header JSON (padded with spaces to `pad` extra bytes), then
 * `dlen` bytes of data. `hlen_override` (if nonzero) replaces the length prefix. */
static const char *write_st(const char *name, const char *header, const void *data, size_t dlen,
                            uint64_t hlen_override)
{
    static char path[1200];
    snprintf(path, sizeof path, "%s/%s", tmpdir, name);
    FILE *f = fopen(path, "wb");
    uint64_t hl = hlen_override ? hlen_override : strlen(header);
    unsigned char le[8];
    for (int i = 0; i < 8; i++)
        le[i] = (unsigned char)(hl >> (8 * i));
    fwrite(le, 1, 8, f);
    fwrite(header, 1, strlen(header), f);
    if (dlen)
        fwrite(data, 1, dlen, f);
    fclose(f);
    return path;
}

static void test_good_file(void)
{
    /* a: F32 [2,2]; h: F16 [3]; b: BF16 [2]; ids: I64 [2] (skipped by readers) */
    unsigned char data[16 + 6 + 4 + 16];
    float a[4] = {1.5f, -2.0f, 0.25f, 1e-3f};
    uint16_t h[3] = {0x3c00 /* 1.0 */, 0xc000 /* -2.0 */, 0x0001 /* smallest subnormal */};
    uint16_t b[2] = {0x3f80 /* 1.0 */, 0x4049 /* 3.140625 */};
    int64_t ids[2] = {7, 9};
    memcpy(data, a, 16);
    memcpy(data + 16, h, 6);
    memcpy(data + 22, b, 4);
    memcpy(data + 26, ids, 16);
    const char *hdr =
        "{\"__metadata__\":{\"format\":\"pt\"},"
        "\"bert.a\":{\"dtype\":\"F32\",\"shape\":[2,2],\"data_offsets\":[0,16]},"
        "\"h\":{\"dtype\":\"F16\",\"shape\":[3],\"data_offsets\":[16,22]},"
        "\"b\":{\"dtype\":\"BF16\",\"shape\":[2],\"data_offsets\":[22,26]},"
        "\"ids\":{\"dtype\":\"I64\",\"shape\":[2],\"data_offsets\":[26,42]}}   ";
    rag_safetensors *st = NULL;
    ASSERT_OK(rag_st_open(write_st("good.safetensors", hdr, data, sizeof data, 0), &st));
    if (!st)
        return;
    ASSERT_EQ_INT(rag_st_count(st), 4);
    float out[4];
    int64_t s22[2] = {2, 2}, s3[1] = {3}, s2[1] = {2};
    ASSERT_OK(rag_st_read_f32(st, "a", s22, 2, out)); /* found through the bert. prefix */
    ASSERT_NEAR(out[0], 1.5, 0);
    ASSERT_NEAR(out[3], 1e-3, 1e-9);
    ASSERT_OK(rag_st_read_f32(st, "bert.h", s3, 1, out)); /* and with the prefix removed */
    ASSERT_NEAR(out[0], 1.0, 0);
    ASSERT_NEAR(out[1], -2.0, 0);
    ASSERT_NEAR(out[2], 5.960464477539063e-08, 1e-15);
    ASSERT_OK(rag_st_read_f32(st, "b", s2, 1, out));
    ASSERT_NEAR(out[1], 3.140625, 0);
    ASSERT_EQ_INT(rag_st_read_f32(st, "ids", s2, 1, out), RAG_EUNSUPPORTED);
    ASSERT_TRUE(strstr(rag_errmsg(), "ids") != NULL);
    ASSERT_EQ_INT(rag_st_read_f32(st, "a", s3, 1, out), RAG_EMISMATCH);
    ASSERT_TRUE(strstr(rag_errmsg(), "[2,2]") != NULL);
    ASSERT_EQ_INT(rag_st_read_f32(st, "missing", s3, 1, out), RAG_ENOTFOUND);
    rag_st_close(st);
    ASSERT_NEAR(rag_f16_to_f32(0x7bff), 65504.0, 0);
    ASSERT_NEAR(rag_f16_to_f32(0x8000), 0.0, 0);
}

/* Each damaged file is refused with RAG_ECORRUPT and a message containing `what`. */
static void expect_corrupt(const char *name, const char *hdr, size_t dlen, uint64_t hl,
                           const char *what)
{
    static unsigned char zeros[256];
    rag_safetensors *st = NULL;
    int rc = rag_st_open(write_st(name, hdr, zeros, dlen, hl), &st);
    if (rc != RAG_ECORRUPT)
        TEST_FAIL_("%s: rc %d, expected RAG_ECORRUPT", name, rc);
    test_checks_++;
    if (!strstr(rag_errmsg(), what))
        TEST_FAIL_("%s: message \"%s\" lacks \"%s\"", name, rag_errmsg(), what);
    ASSERT_TRUE(st == NULL);
}

static void test_hostile_files(void)
{
    const char *ok1 = "{\"x\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}";
    expect_corrupt("huge_len", ok1, 8, 1ull << 62, "header length");
    expect_corrupt("len_past_end", ok1, 8, strlen(ok1) + 9, "header length");
    expect_corrupt("bad_json", "{\"x\":{\"dtype\":", 0, 0, "header JSON");
    expect_corrupt("not_object", "[1,2,3]", 0, 0, "not a JSON object");
    expect_corrupt("bad_dtype", "{\"x\":{\"dtype\":\"F128\",\"shape\":[1],\"data_offsets\":[0,16]}}",
                   16, 0, "unknown dtype");
    expect_corrupt("neg_shape", "{\"x\":{\"dtype\":\"F32\",\"shape\":[-1],\"data_offsets\":[0,4]}}",
                   4, 0, "shape[0]");
    expect_corrupt("overflow",
                   "{\"x\":{\"dtype\":\"F32\",\"shape\":[4294967296,4294967296,16],"
                   "\"data_offsets\":[0,4]}}", 4, 0, "overflows");
    expect_corrupt("past_end", "{\"x\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[0,16]}}",
                   8, 0, "outside");
    expect_corrupt("size_mismatch",
                   "{\"x\":{\"dtype\":\"F32\",\"shape\":[3],\"data_offsets\":[0,8]}}", 8, 0,
                   "bytes of data");
    expect_corrupt("overlap",
                   "{\"x\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
                   "\"y\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[4,12]}}", 12, 0,
                   "non-contiguous");
    expect_corrupt("gap",
                   "{\"x\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,8]}}", 8, 0,
                   "non-contiguous");
    expect_corrupt("trailing", ok1, 12, 0, "cover 8 of 12");
    expect_corrupt("reversed", "{\"x\":{\"dtype\":\"F32\",\"shape\":[0],\"data_offsets\":[8,0]}}",
                   8, 0, "outside");
    expect_corrupt("offsets_type",
                   "{\"x\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":\"0-4\"}}", 4, 0,
                   "data_offsets");
    expect_corrupt("dup_key",
                   "{\"x\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]},"
                   "\"x\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,8]}}", 8, 0,
                   "header JSON");
    expect_corrupt("no_dtype", "{\"x\":{\"shape\":[1],\"data_offsets\":[0,4]}}", 4, 0, "dtype");
    expect_corrupt("entry_type", "{\"x\":5}", 0, 0, "not an object");
    /* too short for the length prefix */
    char path[1200];
    snprintf(path, sizeof path, "%s/short.safetensors", tmpdir);
    FILE *f = fopen(path, "wb");
    fwrite("abc", 1, 3, f);
    fclose(f);
    rag_safetensors *st = NULL;
    ASSERT_EQ_INT(rag_st_open(path, &st), RAG_ECORRUPT);
    ASSERT_TRUE(strstr(rag_errmsg(), "too short") != NULL);
    ASSERT_EQ_INT(rag_st_open("/nonexistent/model.safetensors", &st), RAG_ENOTFOUND);
    ASSERT_EQ_INT(rag_st_open(tmpdir, &st), RAG_EIO); /* a directory */
}

/* Truncating the real model file anywhere gives an error, never a crash. */
static void test_truncated_model(void)
{
    char *dir = NULL;
    ASSERT_OK(rag_model_pull("all-MiniLM-L6-v2", 0, &dir));
    if (!dir)
        return;
    char src[1200], dst[1200];
    snprintf(src, sizeof src, "%s/model.safetensors", dir);
    snprintf(dst, sizeof dst, "%s/trunc.safetensors", tmpdir);
    rag_safetensors *st = NULL;
    ASSERT_OK(rag_st_open(src, &st));
    if (st) {
        ASSERT_TRUE(rag_st_count(st) >= 100);
        rag_st_close(st);
    }
    FILE *in = fopen(src, "rb");
    static unsigned char buf[1 << 16];
    size_t n = fread(buf, 1, sizeof buf, in);
    fclose(in);
    size_t cuts[] = {8, 100, n / 2, n - 1};
    for (size_t c = 0; c < sizeof cuts / sizeof cuts[0]; c++) {
        FILE *out = fopen(dst, "wb");
        fwrite(buf, 1, cuts[c], out);
        fclose(out);
        ASSERT_EQ_INT(rag_st_open(dst, &st), RAG_ECORRUPT);
    }
    /* A flipped byte in the header JSON. */
    FILE *out = fopen(dst, "wb");
    buf[20] = '}';
    fwrite(buf, 1, n, out);
    fclose(out);
    ASSERT_EQ_INT(rag_st_open(dst, &st), RAG_ECORRUPT);
    free(dir);
}

int main(void)
{
    snprintf(tmpdir, sizeof tmpdir, "%s", getenv("RAGCORE_TEST_TMP") ? getenv("RAGCORE_TEST_TMP")
                                                                      : "/tmp");
    RUN_TEST(test_good_file);
    RUN_TEST(test_hostile_files);
    RUN_TEST(test_truncated_model);
    return TEST_REPORT();
}
